//! The lease a run keeps on a checkpoint in an object store, where no file lock tells a live
//! run from a dead one: an object `lease` naming the run, renewed every
//! [`RENEW_EVERY`] while it runs and deleted when it ends. It decides nothing about
//! correctness (epochs fence a second or late run, whatever the lease says); it lets a run
//! started with `--skip-if-running` (a cron job) leave a live run alone instead of taking the
//! checkpoint over, as the file lock does on local disk. A run that died without deleting it
//! leaves a lease that stops being renewed: after [`EXPIRES_AFTER`] it counts for nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::paths::LEASE;
use super::{CheckpointError, Epoch};
use crate::storage::Location;

/// How often a run renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How long after its last renewal a lease stops counting: a run that died (killed, its
/// machine gone) without deleting it frees the checkpoint this long after. Six renewals, so
/// that a run slowed down (a busy machine, a slow store) keeps it.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(60);

/// What the lease object holds (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseEntry {
    /// The run holding it ([`super::Checkpoint::run_id`]).
    run_id: uuid::Uuid,
    /// Its epoch.
    epoch: u64,
    /// Who it is: `pid N on HOST`.
    owner: String,
    /// When it was last renewed (RFC 3339, the holder's clock).
    renewed: String,
}

/// The machine's name, for a lease's `owner`.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this machine".to_string())
}

/// Reads the lease at `location`: `None` where there is none, or one that does not read (a
/// local checkpoint's empty `lock` file copied along does not count either).
async fn read(location: &Location) -> Result<Option<LeaseEntry>, CheckpointError> {
    let bytes = location.get(&location.path(LEASE)).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// How long ago `entry` was renewed; `None` where its time does not read.
fn age(entry: &LeaseEntry) -> Option<Duration> {
    let renewed = chrono::DateTime::parse_from_rfc3339(&entry.renewed).ok()?;
    let age = chrono::Utc::now().signed_duration_since(renewed);
    // A holder's clock ahead of this one's: renewed just now.
    Some(age.to_std().unwrap_or(Duration::ZERO))
}

/// Refuses (`CheckpointError::InUse`, exit 75) to start a run on the checkpoint at
/// `location` where another run's lease is live (renewed within [`EXPIRES_AFTER`]).
pub async fn check_idle(location: &Location) -> Result<(), CheckpointError> {
    let Some(entry) = read(location).await? else {
        return Ok(());
    };
    let Some(age) = age(&entry).filter(|age| *age < EXPIRES_AFTER) else {
        return Ok(());
    };
    Err(CheckpointError::InUse {
        location: location.to_string(),
        lock: format!(
            "its lease {location}/{LEASE}, renewed {} s ago by {} (epoch {}); a run renews it \
             every {} s and deletes it when it ends, and one not renewed for {} s counts for \
             nothing",
            age.as_secs(),
            entry.owner,
            entry.epoch,
            RENEW_EVERY.as_secs(),
            EXPIRES_AFTER.as_secs()
        ),
    })
}

/// A run's lease, renewed while it is held and deleted when it is dropped (where another
/// run's lease has not replaced it).
pub struct Lease {
    location: Location,
    run_id: uuid::Uuid,
    renewing: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Takes the lease of the checkpoint at `location` for run `run_id` of epoch `epoch`
    /// (written over any other: epochs decide, and this run's is the newest), and renews it
    /// every [`RENEW_EVERY`] until dropped. A renewal that finds another run's lease there
    /// (a newer run took the checkpoint over) stops renewing; this run is fenced at its next
    /// log write.
    pub async fn take(
        location: &Location,
        run_id: uuid::Uuid,
        epoch: Epoch,
    ) -> Result<Self, CheckpointError> {
        let owner = format!("pid {} on {}", std::process::id(), host());
        let entry = move || LeaseEntry {
            run_id,
            epoch: epoch.0,
            owner: owner.clone(),
            renewed: chrono::Utc::now().to_rfc3339(),
        };
        let write = |location: Location, entry: LeaseEntry| async move {
            let bytes = serde_json::to_vec(&entry).unwrap_or_default();
            location.put(&location.path(LEASE), bytes).await
        };
        write(location.clone(), entry()).await?;
        let store = location.clone();
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                match read(&store).await {
                    Ok(Some(held)) if held.run_id != run_id => {
                        tracing::debug!("the lease is {}'s now: not renewed", held.owner);
                        return;
                    }
                    // A store that does not answer now may answer at the next renewal.
                    Err(e) => tracing::debug!("reading the lease: {e}"),
                    Ok(_) => {
                        if let Err(e) = write(store.clone(), entry()).await {
                            tracing::debug!("renewing the lease: {e}");
                        }
                    }
                }
            }
        });
        Ok(Self {
            location: location.clone(),
            run_id,
            renewing,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewing.abort();
        let (location, run_id) = (self.location.clone(), self.run_id);
        let release = async move {
            if let Ok(Some(held)) = read(&location).await
                && held.run_id == run_id
                && let Err(e) = location.delete(&location.path(LEASE)).await
            {
                tracing::debug!("deleting the lease: {e}");
            }
        };
        // Deleted before the run ends where the runtime allows waiting (the binary's); else
        // (a test's single-threaded runtime) in the background, or left to expire.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| runtime.block_on(release));
        } else {
            runtime.spawn(release);
        }
    }
}
