//! Sluice's integration tests: one binary, one module per concern.

mod cli;
mod common;
mod contract;
mod crash;
#[cfg(feature = "delta")]
mod delta;
#[cfg(feature = "distributed")]
mod distributed;
mod event_time;
mod fault;
mod field;
#[cfg(feature = "kafka")]
mod kafka;
mod layout;
mod nats;
mod newcomer;
mod nexmark;
mod postgres;
mod replay;
mod report;
mod s3;
mod spark;
mod stateful;
mod streaming;
