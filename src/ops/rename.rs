//! Renaming the pipeline a checkpoint belongs to: `sluice rename CHECKPOINT --to NAME`.
//!
//! A checkpoint keeps its pipeline's name (`metadata`), and a run of a file whose `name:`
//! differs is refused, so that a file pointed at another pipeline's checkpoint by mistake does
//! not carry on from that pipeline's offsets. A rename is the way to change the name and keep
//! the checkpoint: the pipeline's id, its batches, state and offsets stay as they are. The
//! name is how a person tells pipelines apart; nothing a batch writes depends on it. The
//! sinks' own records of it (a PostgreSQL progress row's `label`, a files sink's owner record)
//! take the new name with the next batch.

use crate::Error;
use crate::checkpoint::{Checkpoint, Metadata, paths, take_lock};
use crate::storage::Location;

/// What a rename did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// The name the checkpoint had.
    pub from: String,
    /// The name it has now.
    pub to: String,
}

/// Renames the pipeline of the checkpoint at `location` (shown as `shown` in messages) to
/// `to`, under the checkpoint's lock. Renaming to the name it has changes nothing.
///
/// Errors: [`Error::Usage`] where `to` is not a pipeline name (letters, digits, `_`, `-`) or
/// `location` is not a checkpoint; [`crate::checkpoint::CheckpointError::InUse`] while a run
/// holds it (its lock on local disk, its lease on an object store); a rewind cut short ([`crate::checkpoint::CheckpointError::RewindUnfinished`]);
/// storage errors as they come.
pub async fn rename(location: &Location, shown: &str, to: &str) -> Result<Renamed, Error> {
    if to.is_empty()
        || !to
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::Usage(format!(
            "cannot rename {shown}'s pipeline to `{to}`: a pipeline name is letters, digits, \
             `_` or `-`"
        )));
    }
    let not_a_checkpoint = || Error::Usage(crate::checkpoint::not_a_checkpoint(shown));
    // Looked for before the lock is taken, which would leave a lock file in any folder.
    Checkpoint::read_metadata(location)
        .await?
        .ok_or_else(not_a_checkpoint)?;
    let _lock = take_lock(location)?;
    // On an object store no lock keeps a live run out: its lease does (audit 90c, walk 92: a
    // rename went on beside a live run, which kept writing batches under the old name).
    if location.local_root().is_none() {
        crate::checkpoint::lease::check_idle(location).await?;
    }
    crate::checkpoint::check_no_rewind_under_way(location).await?;
    let metadata = Checkpoint::read_metadata(location)
        .await?
        .ok_or_else(not_a_checkpoint)?;
    let renamed = Renamed {
        from: metadata.name.clone(),
        to: to.to_string(),
    };
    if metadata.name == to {
        return Ok(renamed);
    }
    let metadata = Metadata {
        renamed_from: Some(metadata.name.clone()),
        name: to.to_string(),
        ..metadata
    };
    // Replaced whole (a local file is written aside and renamed over; an object is put
    // whole), so a reader sees the old name or the new one.
    location
        .put(
            &location.path(paths::METADATA),
            format!("{}\n", crate::checkpoint::to_json(&metadata)).into_bytes(),
        )
        .await?;
    Ok(renamed)
}
