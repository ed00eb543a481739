//! Operations on a checkpoint that a library user may call as well as the command line: the
//! command line only parses their arguments and prints what they return.

mod rename;
mod repair;
mod rewind;
mod verify;

pub use rename::{Renamed, rename};
pub(crate) use repair::source_log_damage;
pub use repair::{
    ForgottenOutput, RepairReport, forget_lost_output, local_sink_folders, owned_leftovers, repair,
    state_damage,
};
pub use rewind::{Rewound, check_rewind, rewind, with_refused_rewind};
pub use verify::{ReplayOptions, Replayed, Side, replay};
