//! `sluice repair`: what can be fixed in a damaged checkpoint without losing or doubling
//! output, and what cannot.
//!
//! It fixes damage to the newest batch only, by moving the damaged entry aside (to a hidden
//! `.<N>.damaged-<time>` name that every reader skips) so that the batch runs again:
//! - a damaged newest `commits/N`: batch `N` becomes pending and runs again on its logged
//!   input; the sink already has it or takes it once, and its state version is rewritten;
//! - a damaged pending `offsets/N` (no commit): batch `N` is planned again, and the source
//!   reuses the file list it logged for it.
//!
//! Anything else (a damaged or missing entry that a committed batch's successor needs) cannot
//! be rebuilt from what the checkpoint holds: it is reported with what to restore.

use super::{CheckpointError, Location, LogListing, paths, read_commit, read_offsets, take_lock};
use crate::driver::recovery::{Decision, decide};

/// What `repair` did and what it could not do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The entries moved aside, and why.
    pub fixed: Vec<String>,
    /// What is still wrong, with what to do.
    pub unfixable: Vec<String>,
}

/// Repairs the checkpoint at `location` (or, with `dry_run`, says what it would do).
pub async fn repair(location: &Location, dry_run: bool) -> Result<RepairReport, CheckpointError> {
    let _lock = take_lock(location)?;
    let mut report = RepairReport::default();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut moved: Vec<String> = Vec::new();
    loop {
        let mut logs = LogListing::read(location).await?;
        // Entries moved aside in a dry run are only pretended away.
        logs.offsets
            .retain(|b| !moved.contains(&paths::offsets(*b)));
        logs.commits
            .retain(|b| !moved.contains(&paths::commits(*b)));
        let Some(newest) = logs.offsets.last().copied() else {
            break;
        };
        let committed = logs.commits.contains(&newest);
        let damaged = |file: String, result: Result<(), CheckpointError>| match result {
            Err(CheckpointError::Corrupt { reason, line, .. }) => {
                Some((file, format!("line {line}: {reason}")))
            }
            _ => None,
        };
        let commit_damage = if committed {
            damaged(
                paths::commits(newest),
                read_commit(location, newest).await.map(|_| ()),
            )
        } else {
            None
        };
        let offsets_damage = damaged(
            paths::offsets(newest),
            read_offsets(location, newest).await.map(|_| ()),
        );
        let (file, why, effect) = match (commit_damage, offsets_damage) {
            (Some((file, why)), _) => (
                file,
                why,
                format!("batch {newest} is pending again and runs again on its logged input"),
            ),
            (None, Some((file, why))) if !committed => (
                file,
                why,
                format!("batch {newest} is planned again from the files its source logged"),
            ),
            (None, Some((file, why))) => {
                report.unfixable.push(format!(
                    "{file} is damaged ({why}) and batch {newest} is committed: the next batch \
                     starts where it ended, which only that entry says. Restore {file} from a \
                     backup, or run the pipeline on a new checkpoint (the sink keeps its output)"
                ));
                break;
            }
            (None, None) => break,
        };
        let aside = aside_name(&file, &stamp);
        if !dry_run {
            location
                .rename(&location.path(&file), &location.path(&aside))
                .await?;
        }
        moved.push(file.clone());
        report
            .fixed
            .push(format!("moved {file} ({why}) aside to {aside}: {effect}"));
    }
    let mut logs = LogListing::read(location).await?;
    logs.offsets
        .retain(|b| !moved.contains(&paths::offsets(*b)));
    logs.commits
        .retain(|b| !moved.contains(&paths::commits(*b)));
    if let Decision::Inconsistent { reason } = decide(&logs) {
        report.unfixable.push(reason);
    }
    Ok(report)
}

/// `offsets/7` -> `offsets/.7.damaged-<stamp>`: hidden, so every reader skips it.
fn aside_name(file: &str, stamp: &str) -> String {
    match file.rsplit_once('/') {
        Some((folder, name)) => format!("{folder}/.{name}.damaged-{stamp}"),
        None => format!(".{file}.damaged-{stamp}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_entries_move_to_hidden_names() {
        assert_eq!(
            aside_name("commits/12", "20261127T000000Z"),
            "commits/.12.damaged-20261127T000000Z"
        );
    }
}
