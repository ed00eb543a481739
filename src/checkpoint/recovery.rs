//! Recovery as a pure decision over what the logs hold (docs/design.md §1.3), tested without
//! storage.
//!
//! ```text
//!   latest offsets N, latest commit C
//!   none, none        -> start at batch 0
//!   N, C == N         -> plan batch N+1
//!   N, C == N-1       -> batch N was interrupted: run it again with its logged offsets
//!   N, none (N == 0)  -> batch 0 was interrupted
//!   anything else     -> inconsistent: stop and say what is wrong
//! ```

use super::{BatchId, LogListing};

/// What the driver does first, given the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Plan batch `next` from the end offsets of `next - 1` (if any).
    PlanNext {
        /// The batch to plan.
        next: BatchId,
    },
    /// Run `batch` again, exactly as logged.
    Rerun {
        /// The interrupted batch.
        batch: BatchId,
    },
    /// The logs cannot be continued from.
    Inconsistent {
        /// What is wrong, and what to do about it.
        reason: String,
    },
}

/// Decides how to continue from the logs.
pub fn decide(logs: &LogListing) -> Decision {
    let latest_offsets = logs.offsets.last().copied();
    let latest_commit = logs.commits.last().copied();
    let decision = match (latest_offsets, latest_commit) {
        (None, None) => Decision::PlanNext { next: BatchId(0) },
        (Some(n), Some(c)) if c == n => Decision::PlanNext { next: n.next() },
        (Some(n), Some(c)) if c.next() == n => Decision::Rerun { batch: n },
        (Some(BatchId(0)), None) => Decision::Rerun { batch: BatchId(0) },
        (Some(n), None) => Decision::Inconsistent {
            reason: format!(
                "offsets/{n} exists but there is no commit at all; the commits log was removed. \
                 Where repair cannot, restore commits/ or start over with a new checkpoint and a new, empty `sink.path` (a sink \
                 folder belongs to one checkpoint)"
            ),
        },
        (None, Some(c)) => Decision::Inconsistent {
            reason: format!(
                "commits/{c} exists without any offsets entry; the offsets log was removed. \
                 Where repair cannot, restore offsets/ or start over with a new checkpoint and a new, empty `sink.path` (a sink \
                 folder belongs to one checkpoint)"
            ),
        },
        (Some(n), Some(c)) if c > n => Decision::Inconsistent {
            reason: format!(
                "commits/{c} is newer than the newest offsets entry (offsets/{n}); offsets/{c} was removed. \
                 Where repair cannot, restore it or start over with a new checkpoint and a new, empty `sink.path` (a sink \
                 folder belongs to one checkpoint)"
            ),
        },
        (Some(n), Some(c)) => Decision::Inconsistent {
            reason: format!(
                "offsets/{n} is more than one batch ahead of the newest commit (commits/{c}); \
                 entries between them were removed"
            ),
        },
    };
    // A re-run starts where the previous batch ended, so it needs that batch's offsets entry.
    if let Decision::Rerun { batch } = decision
        && let Some(prev) = batch.prev().filter(|p| !logs.offsets.contains(p))
    {
        return Decision::Inconsistent {
            reason: format!(
                "offsets/{prev} is missing, and the pending batch {batch} starts where it ends; restore offsets/{prev}"
            ),
        };
    }
    decision
}

/// The way out of logs [`decide`] finds inconsistent where a rewind gets out of them, for the
/// checkpoint shown as `location`, as text to follow its reason; empty otherwise. Commits
/// removed between the newest one and a later offsets entry: batches whose output the sink
/// may hold, with no commit to say so; a rewind to the newest commit takes them back from the
/// sink and their logs, and the next run computes them again.
pub fn way_out(logs: &LogListing, location: &str) -> String {
    match (logs.offsets.last(), logs.commits.last()) {
        (Some(n), Some(c)) if c < n && c.next() != *n => format!(
            ". Take the batches after {c} back (from the sink too) and run them again: `sluice \
             rewind {location} --to {c}`"
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(offsets: &[u64], commits: &[u64]) -> LogListing {
        LogListing {
            offsets: offsets.iter().copied().map(BatchId).collect(),
            commits: commits.iter().copied().map(BatchId).collect(),
        }
    }

    #[test]
    fn fresh_checkpoint_starts_at_zero() {
        assert_eq!(
            decide(&logs(&[], &[])),
            Decision::PlanNext { next: BatchId(0) }
        );
    }

    #[test]
    fn finished_batch_plans_the_next() {
        assert_eq!(
            decide(&logs(&[0, 1, 2], &[0, 1, 2])),
            Decision::PlanNext { next: BatchId(3) }
        );
        // After retention only the newest entries remain.
        assert_eq!(
            decide(&logs(&[98, 99], &[98, 99])),
            Decision::PlanNext { next: BatchId(100) }
        );
    }

    #[test]
    fn interrupted_batch_is_rerun() {
        assert_eq!(
            decide(&logs(&[0, 1, 2], &[0, 1])),
            Decision::Rerun { batch: BatchId(2) }
        );
        assert_eq!(
            decide(&logs(&[0], &[])),
            Decision::Rerun { batch: BatchId(0) }
        );
    }

    #[test]
    fn inconsistent_logs_are_refused_with_a_reason() {
        for (offsets, commits, needle) in [
            (&[0u64, 1, 2][..], &[0u64][..], "more than one batch ahead"),
            (&[0, 1], &[0, 1, 2], "commits/2 is newer"),
            (&[], &[0], "without any offsets"),
            (&[3], &[], "no commit at all"),
            (&[2], &[1], "offsets/1 is missing"),
        ] {
            match decide(&logs(offsets, commits)) {
                Decision::Inconsistent { reason } => {
                    assert!(reason.contains(needle), "{offsets:?} {commits:?}: {reason}")
                }
                other => panic!("{offsets:?} {commits:?}: expected inconsistent, got {other:?}"),
            }
        }
    }
}
