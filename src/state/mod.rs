//! Operator state (docs/design.md §5): rows keyed by group, kept in memory between batches and
//! versioned by batch in the checkpoint as Parquet.
//!
//! ```text
//!   state/<operator>/<N>.snapshot.parquet   every row live after batch N (every K versions)
//!   state/<operator>/<N>.delta.parquet      the rows batch N inserted or changed
//!   state/<operator>/<N>.removed.parquet    the keys batch N removed (key columns only)
//! ```
//!
//! Invariants:
//! - version `N` is the state after batch `N`; it is written before `commits/N`, and batch `N`
//!   reads version `N-1` only, so files a crashed attempt of `N` left behind are never read and
//!   are overwritten by the re-run with the same content;
//! - every version after the newest snapshot at or below `N` has its delta: loading checks it;
//! - the bytes a batch writes grow with the groups it changed, except on snapshot versions.

mod aggregate;
mod files;
mod join;
mod keyed;
mod ttl;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

pub use aggregate::{
    AGGREGATE_OPERATOR, AggregateOperator, DEDUP_OPERATOR, DedupAggregateOperator, Phases,
    StateMetrics, find_outer_phases, find_phases, splice_final, unfuse,
};
pub use files::{StateFile, StateFileKind, StateFiles};
pub use join::JoinOperator;
pub use keyed::KeyedState;
pub(crate) use keyed::timestamp_ns;
pub use ttl::{KeyStamps, TTL_OPERATOR};

/// What a batch did to one operator's state store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// The store (its folder under `state/`).
    pub operator: String,
    /// What changed.
    pub metrics: StateMetrics,
}

/// The clocks of a batch, each the same in every run of it (from the logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTime {
    /// The batch's watermark (nanoseconds since the epoch), if there is one yet.
    pub watermark_ns: Option<i64>,
    /// The watermark as the batch's rows move it (the next batch's).
    pub next_watermark_ns: Option<i64>,
    /// The batch's timestamp (milliseconds since the epoch), logged with its offsets.
    pub timestamp_ms: i64,
}

/// A stateful operator: runs its part of each batch's plan and keeps its state between
/// batches, versioned by batch in the checkpoint.
#[async_trait]
pub trait Operator: Send + Sync + std::fmt::Debug {
    /// Runs the stateful part of batch `batch`'s query `logical` (planned in `session`, over
    /// the batch's input, at `time`), reading state version `batch - 1`, and returns the plan
    /// of the rest. The state it computed is written by [`Operator::commit`].
    async fn run(
        &mut self,
        batch: BatchId,
        session: &SessionState,
        logical: &LogicalPlan,
        time: BatchTime,
    ) -> Result<Arc<dyn ExecutionPlan>, StateError>;

    /// Asks the next [`Operator::run`] to run the part of its batch under the state (the
    /// batch's reads and the partial phase over them) on the workers of `engine:
    /// distributed` where `wanted` (the batch reads enough to be worth it), or here. The
    /// default: everything runs here.
    fn spread_next(&mut self, _wanted: bool) {}

    /// Whether part of its batches can run on workers at all ([`Operator::spread_next`]
    /// does something). The default: no.
    fn can_spread(&self) -> bool {
        false
    }

    /// The plan of what the last [`Operator::run`] ran on workers (its metrics say what they
    /// read), taken; `None` where it all ran here.
    fn ran_elsewhere(&mut self) -> Option<Arc<dyn ExecutionPlan>> {
        None
    }

    /// Writes the state batch `batch` computed as version `batch`.
    async fn commit(&mut self, batch: BatchId) -> Result<Vec<OperatorMetrics>, StateError>;

    /// Deletes state versions that no batch from `oldest_kept` on needs.
    async fn purge(&self, oldest_kept: BatchId) -> Result<(), StateError>;

    /// Whether the state holds something that a watermark of `watermark_ns` closes (a window
    /// to emit, rows to drop); `None` while the state is not loaded.
    fn holds_ending_by(&self, watermark_ns: i64) -> Option<bool>;

    /// Loads state version `batch - 1` for the query `logical` (planned in `session` over
    /// empty inputs) before batch `batch` is planned, so that a query changed in a way its
    /// state cannot follow is refused ([`StateError::Incompatible`]) before the batch is
    /// logged. The default loads nothing.
    async fn check_state(
        &mut self,
        _batch: BatchId,
        _session: &SessionState,
        _logical: &LogicalPlan,
    ) -> Result<(), StateError> {
        Ok(())
    }
}

use crate::checkpoint::BatchId;
use crate::storage::StorageError;

/// What can go wrong keeping state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A state file does not read.
    #[error(
        "state file {file} is corrupt: {reason}. The checkpoint's state cannot be loaded; \
         restore the file, {}",
        corrupt_advice(file, checkpoint.as_deref(), sink.as_ref())
    )]
    Corrupt {
        /// The file, relative to the checkpoint.
        file: String,
        /// What is wrong.
        reason: String,
        /// The checkpoint, as given, where known (for the command in the advice).
        checkpoint: Option<String>,
        /// What the pipeline's sink allows, where known (for the ways out in the advice).
        sink: Option<SinkAdvice>,
    },
    /// A version needed to load the state is missing.
    #[error(
        "state of operator `{operator}` lacks version {version} (no delta or snapshot file in \
         state/{operator}/), which loading version {wanted} needs; restore it, {}",
        missing_advice(*version, checkpoint.as_deref(), sink.as_ref())
    )]
    Missing {
        /// The operator.
        operator: String,
        /// The missing version.
        version: BatchId,
        /// The version being loaded.
        wanted: BatchId,
        /// The checkpoint, as given, where known (for the command in the advice).
        checkpoint: Option<String>,
        /// What the pipeline's sink allows, where known (for the ways out in the advice).
        sink: Option<SinkAdvice>,
    },
    /// The stored state was written by a query whose state has other columns.
    #[error(
        "state/{operator} was written by a query whose state kept {stored} where this query's \
         keeps {planned}: the query, or the type of a column it reads (a source's `schema:`), \
         changed in a way its state cannot follow. Put the old query and source columns back, \
         or run the new ones on a new checkpoint{}",
        start_over(sink.as_ref())
    )]
    Incompatible {
        /// The operator.
        operator: String,
        /// The stored columns.
        stored: String,
        /// The planned columns.
        planned: String,
        /// What the pipeline's sink allows, where known (for the ways out in the advice).
        sink: Option<SinkAdvice>,
    },
    /// Arrow, Parquet or DataFusion failed on state rows.
    #[error(
        "state of operator `{operator}`: {reason}{}",
        if reason.contains("Resources exhausted") {
            format!(". {}", crate::MEMORY_ADVICE)
        } else {
            String::new()
        }
    )]
    Compute {
        /// The operator.
        operator: String,
        /// The library's message.
        reason: String,
    },
    /// The part of the batch under the state failed where it ran on workers (a worker gone or
    /// silent, an error there); the state is still the previous batch's.
    #[error("operator `{operator}`: the batch's partial phase failed on the workers: {source}")]
    Remote {
        /// The operator.
        operator: String,
        /// What failed.
        source: datafusion::error::DataFusionError,
    },
}

/// What a pipeline's sink allows for the ways out of damaged state: whether it takes batches
/// back (`sluice rewind`), and what starting over on a new checkpoint needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkAdvice {
    /// Whether `sluice rewind` can take its batches back.
    pub takes_back: bool,
    /// What follows "on a new checkpoint" ([`crate::sink::SinkConnector::start_over`]).
    pub start_over: String,
}

/// What follows "on a new checkpoint": the sink's, or a files sink's where unknown.
fn start_over(sink: Option<&SinkAdvice>) -> String {
    sink.map_or_else(
        || " with a new, empty `sink.path` (a sink folder belongs to one checkpoint)".to_string(),
        |s| s.start_over.clone(),
    )
}

/// What gets a checkpoint with the damaged state file `file` (`state/<op>/<N>.<kind>.parquet`)
/// going again: taking back the batches from version `N` on, which are computed again from
/// their input from version `N - 1`, where the sink takes batches back; else a new start.
fn corrupt_advice(file: &str, checkpoint: Option<&str>, sink: Option<&SinkAdvice>) -> String {
    let version = file
        .rsplit('/')
        .next()
        .and_then(|name| name.split('.').next())
        .and_then(|n| n.parse::<u64>().ok());
    let checkpoint = checkpoint.map_or("<checkpoint>".into(), crate::vocab::shell_word);
    let new_start = format!("start the pipeline on a new checkpoint{}", start_over(sink));
    match version.and_then(|n| n.checked_sub(1)) {
        Some(before) if sink.is_none_or(|s| s.takes_back) => format!(
            "or take back the batches from {} on, which are computed again from their input \
             (where the sources still hold it) over state version {before} (where the \
             checkpoint still keeps it): `sluice rewind {checkpoint} --to {before}`; or \
             {new_start}",
            before + 1
        ),
        _ => format!("or {new_start}"),
    }
}

/// What gets a checkpoint whose state lacks version `missing` going again: taking back the
/// batches from `missing` on, computed again over the versions before it, where the sink
/// takes batches back; none before version 0, so then only a new start.
fn missing_advice(missing: BatchId, checkpoint: Option<&str>, sink: Option<&SinkAdvice>) -> String {
    let checkpoint = checkpoint.map_or("<checkpoint>".into(), crate::vocab::shell_word);
    let new_start = format!("start the pipeline on a new checkpoint{}", start_over(sink));
    match missing.prev() {
        Some(before) if sink.is_none_or(|s| s.takes_back) => format!(
            "or take back the batches from {missing} on, which are computed again from their \
             input (where the sources still hold it) over state version {before}: `sluice \
             rewind {checkpoint} --to {before}`; or {new_start}"
        ),
        _ => format!("or {new_start}"),
    }
}

#[cfg(test)]
mod tests {
    use super::StateError;

    /// Walk 117: a stateful operator that ran out of its `memory_limit` said DataFusion's
    /// words alone ("Resources exhausted: Failed to allocate ..."), with nothing to change.
    #[test]
    fn a_state_operator_out_of_memory_says_what_to_change() {
        let said = StateError::Compute {
            operator: "aggregate".into(),
            reason: "Resources exhausted: Failed to allocate additional 5.1 MB for \
                     PartialHashAggregateStream[1]"
                .into(),
        }
        .to_string();
        assert!(
            said.starts_with("state of operator `aggregate`: Resources exhausted")
                && said.contains("raise `memory_limit` in the pipeline file")
                && said.contains("`--trigger available-now` keeps them"),
            "{said}"
        );
        let other = StateError::Compute {
            operator: "aggregate".into(),
            reason: "a column does not fit".into(),
        }
        .to_string();
        assert!(!other.contains("memory_limit"), "{other}");
    }
}
