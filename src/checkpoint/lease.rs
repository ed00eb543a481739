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

/// How long a run's end waits to delete its lease: 2 seconds, or the store's timeout where
/// shorter.
fn release_budget() -> Duration {
    crate::storage::store_timeout_or_default().min(Duration::from_secs(2))
}

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
    /// The holder's machine boot and process-id namespace ([`processes`]): a pid is only
    /// looked up where they are this process's own. Absent in an older Sluice's lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    processes: Option<String>,
}

/// Which processes a pid names here: this boot of the machine
/// (`/proc/sys/kernel/random/boot_id`) and this process-id namespace (`/proc/self/ns/pid`);
/// `None` where either cannot be read.
fn processes() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{} {}", boot.trim(), namespace.display()))
}

/// The machine's name, for a lease's `owner`.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this machine".to_string())
}

/// Reads the lease at `location`, with when the store last wrote it: `None` where there is
/// none, or one that does not read (a local checkpoint's empty `lock` file copied along does
/// not count either).
async fn read(
    location: &Location,
) -> Result<Option<(LeaseEntry, chrono::DateTime<chrono::Utc>)>, CheckpointError> {
    let Some((bytes, meta)) = location.get_with_meta(&location.path(LEASE)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&bytes)
        .ok()
        .map(|entry| (entry, meta.last_modified)))
}

/// How long ago a lease was renewed, by the younger of two clocks' accounts: the holder's
/// (`renewed`) and the store's (when it last wrote the object), each against this machine's,
/// so that a holder's clock behind this one's does not make a live lease look expired (a
/// lease copied along with a checkpoint counts as renewed when it was copied: for a minute).
fn age(entry: &LeaseEntry, written: chrono::DateTime<chrono::Utc>) -> Duration {
    let now = chrono::Utc::now();
    let since = |then: chrono::DateTime<chrono::Utc>| {
        // A clock ahead of this one's: renewed just now.
        now.signed_duration_since(then)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    let by_holder = chrono::DateTime::parse_from_rfc3339(&entry.renewed)
        .map(|t| since(t.with_timezone(&chrono::Utc)))
        .unwrap_or(Duration::MAX);
    by_holder.min(since(written))
}

/// Refuses (`CheckpointError::InUse`, exit 75) to start a run on the checkpoint at
/// `location` where another run's lease is live (renewed within [`EXPIRES_AFTER`]).
pub async fn check_idle(location: &Location) -> Result<(), CheckpointError> {
    let Some((entry, written)) = read(location).await? else {
        return Ok(());
    };
    let age = age(&entry, written);
    if age >= EXPIRES_AFTER {
        return Ok(());
    }
    // A holder on this machine whose process is gone (killed before deleting it).
    let gone = if holder_gone(&entry) {
        format!(
            "; {} is not running on this machine: that run ended without deleting its lease \
             (killed, or stopped mid-write), which counts for nothing {} s from now; to go on \
             before, delete \
             {location}/{LEASE} (the lease guards no data: epochs do, so a run still going \
             somewhere would be fenced, as without `--skip-if-running`)",
            entry.owner.split(" on ").next().unwrap_or_default(),
            EXPIRES_AFTER.saturating_sub(age).as_secs().max(1)
        )
    } else {
        String::new()
    };
    Err(CheckpointError::InUse {
        location: location.to_string(),
        advice: if gone.is_empty() {
            super::IN_USE_ADVICE.to_string()
        } else {
            "or wait until it lapses".to_string()
        },
        lock: format!(
            "its lease {location}/{LEASE}, renewed {} s ago by {} (epoch {}); a run renews it \
             every {} s and deletes it when it ends, and one not renewed for {} s counts for \
             nothing{gone}",
            age.as_secs(),
            entry.owner,
            entry.epoch,
            RENEW_EVERY.as_secs(),
            EXPIRES_AFTER.as_secs()
        ),
    })
}

/// Whether a lease names a process of this machine's boot and this process-id namespace
/// ([`processes`], so a container sharing the machine's name with its own pids never counts)
/// that is not running (no `/proc/N`); `false` where it names other processes, or an older
/// lease that does not say whose they are.
fn holder_gone(entry: &LeaseEntry) -> bool {
    let Some(pid) = entry
        .owner
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_once(" on "))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    else {
        return false;
    };
    entry.processes.is_some()
        && entry.processes == processes()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The lease this process holds, for the way out that skips destructors (a second Ctrl-C's
/// `exit(130)`): [`release_held`].
static HELD: std::sync::Mutex<Option<(Location, uuid::Uuid, Epoch)>> = std::sync::Mutex::new(None);

/// Deletes the lease this process holds, where it is still its own and no newer run has
/// started; for a process about to exit without running destructors.
pub async fn release_held() {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((location, run_id, epoch)) = held {
        let _ = tokio::time::timeout(release_budget(), release(&location, run_id, epoch)).await;
    }
}

/// Deletes the lease at `location` where no run newer than `epoch` has taken an epoch (that
/// one keeps its own lease, which this one may have written over for a moment) and the lease
/// is run `run_id`'s or an older epoch's: a run started just before this one, whose
/// check of the epochs passed before this one took its epoch, writes its lease over this
/// one's a moment later and is fenced at its first log write, leaving that lease behind it
/// (a later `--skip-if-running` run would wait on it for [`EXPIRES_AFTER`] with nothing
/// running).
async fn release(location: &Location, run_id: uuid::Uuid, epoch: Epoch) {
    let newer = super::list_numbers(location, super::paths::EPOCHS)
        .await
        .map(|taken| taken.last().is_some_and(|newest| *newest > epoch.0))
        .unwrap_or(true);
    if newer {
        return;
    }
    if let Ok(Some((held, _))) = read(location).await
        && (held.run_id == run_id || held.epoch < epoch.0)
        && let Err(e) = location.delete(&location.path(LEASE)).await
    {
        tracing::debug!("deleting the lease: {e}");
    }
}

/// A run's lease, renewed while it is held and deleted when it is dropped (where another
/// run's lease has not replaced it).
pub struct Lease {
    location: Location,
    run_id: uuid::Uuid,
    epoch: Epoch,
    renewing: Option<tokio::task::JoinHandle<()>>,
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
    /// every [`RENEW_EVERY`] until dropped. A renewal that finds a newer run's lease there
    /// (one that took the checkpoint over) stops renewing, this run being fenced at its next
    /// log write; one that finds an older run's (a late run's renewal that wrote over this
    /// one's) writes this one's back.
    pub async fn take(
        location: &Location,
        run_id: uuid::Uuid,
        epoch: Epoch,
    ) -> Result<Self, CheckpointError> {
        let owner = format!("pid {} on {}", std::process::id(), host());
        let here = processes();
        let entry = move || LeaseEntry {
            run_id,
            epoch: epoch.0,
            owner: owner.clone(),
            renewed: chrono::Utc::now().to_rfc3339(),
            processes: here.clone(),
        };
        let write = |location: Location, entry: LeaseEntry| async move {
            let bytes = serde_json::to_vec(&entry).unwrap_or_default();
            location.put(&location.path(LEASE), bytes).await
        };
        // A newer run's lease (one that took its epoch after this one's) is not written over:
        // this run is superseded already.
        if let Some((held, _)) = read(location).await?
            && held.epoch > epoch.0
        {
            return Err(super::Superseded {
                location: location.to_string(),
                epoch,
                newer: Epoch(held.epoch),
            }
            .into());
        }
        write(location.clone(), entry()).await?;
        let store = location.clone();
        let renewing = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                match read(&store).await {
                    Ok(Some((held, _))) if held.epoch > epoch.0 => {
                        tracing::debug!("the lease is {}'s now: not renewed", held.owner);
                        return;
                    }
                    // A store that does not answer now may answer at the next renewal.
                    Err(e) => tracing::debug!("reading the lease: {e}"),
                    Ok(_) => {
                        // A newer run took an epoch (and may have ended, deleting its lease):
                        // this one is fenced at its next log write, and a lease written now
                        // would keep the next `--skip-if-running` run waiting on a run that
                        // is gone (walk 69 (2): a run stopped and woken after another ran).
                        if let Ok(taken) = super::list_numbers(&store, super::paths::EPOCHS).await
                            && taken.last().is_some_and(|newest| *newest > epoch.0)
                        {
                            tracing::debug!("a newer run took an epoch: the lease is not renewed");
                            return;
                        }
                        if let Err(e) = write(store.clone(), entry()).await {
                            tracing::debug!("renewing the lease: {e}");
                        }
                    }
                }
            }
        });
        *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some((location.clone(), run_id, epoch));
        Ok(Self {
            location: location.clone(),
            run_id,
            epoch,
            renewing: Some(renewing),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
        let renewing = self.renewing.take();
        if let Some(renewing) = &renewing {
            renewing.abort();
        }
        let (location, run_id, epoch) = (self.location.clone(), self.run_id, self.epoch);
        let release = async move {
            // A renewal cut short mid-write may still land: waited for, so that it does not
            // land after the delete.
            if let Some(renewing) = renewing {
                let _ = renewing.await;
            }
            // Bounded: a lease left behind lapses by itself, and a store that does not answer
            // would hold the run's exit (a SIGTERM's too) for its timeout (walk 69 (3)).
            if tokio::time::timeout(release_budget(), release(&location, run_id, epoch))
                .await
                .is_err()
            {
                tracing::debug!("the store did not answer: the lease is left to lapse");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes epoch `n` of the checkpoint at `location`, as a run does.
    async fn take_epoch(location: &Location, n: u64) {
        let path = location.path(&super::super::paths::epoch(Epoch(n)));
        location.put(&path, vec![]).await.expect("epoch");
    }

    /// Walk 69 (2): a run stopped (SIGSTOP) while another took an epoch, ran and ended (its
    /// lease deleted), wrote its lease again when it woke, before its next log write fenced
    /// it; that lease kept the next `--skip-if-running` run waiting for a minute. A renewal
    /// after a newer run took an epoch writes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_a_newer_one_took_over_from_renews_no_lease() {
        let dir = tempfile::tempdir().expect("temp dir");
        let location =
            Location::open(dir.path().to_str().expect("utf-8"), true, false, None).expect("open");
        take_epoch(&location, 1).await;
        let lease = Lease::take(&location, uuid::Uuid::new_v4(), Epoch(1))
            .await
            .expect("take");
        // While it sleeps, a newer run takes an epoch, runs and ends, deleting its lease.
        take_epoch(&location, 2).await;
        location
            .delete(&location.path(LEASE))
            .await
            .expect("the newer run's lease deleted");
        tokio::time::sleep(RENEW_EVERY + Duration::from_secs(2)).await;
        assert!(
            read(&location).await.expect("read").is_none(),
            "the fenced run wrote its lease again"
        );
        drop(lease);
        check_idle(&location).await.expect("idle");
    }

    /// A run that began just before another (past its check of the epochs, its lease not yet
    /// written) writes its lease over the newer one's and is then fenced: the lease it leaves
    /// is deleted when the newer run ends, so a later `--skip-if-running` run does not wait
    /// on a run that is gone; the lease of a newer epoch than the ending run's stays.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_older_run_s_lease_written_over_a_newer_one_s_goes_with_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let location =
            Location::open(dir.path().to_str().expect("utf-8"), true, false, None).expect("open");
        take_epoch(&location, 1).await;
        take_epoch(&location, 2).await;
        let older = LeaseEntry {
            run_id: uuid::Uuid::new_v4(),
            epoch: 1,
            owner: "pid 1 on elsewhere".to_string(),
            renewed: chrono::Utc::now().to_rfc3339(),
            processes: None,
        };
        let write = |entry: &LeaseEntry| {
            let bytes = serde_json::to_vec(entry).expect("json");
            let location = location.clone();
            async move {
                location
                    .put(&location.path(LEASE), bytes)
                    .await
                    .expect("lease")
            }
        };
        let newer = Lease::take(&location, uuid::Uuid::new_v4(), Epoch(2))
            .await
            .expect("take");
        write(&older).await;
        assert!(
            check_idle(&location).await.is_err(),
            "the older lease counts while it is there"
        );
        drop(newer);
        assert!(
            read(&location).await.expect("read").is_none(),
            "the older run's lease is left"
        );
        check_idle(&location).await.expect("idle");

        // A newer run's lease is not the ending run's to delete.
        let ending = Lease::take(&location, uuid::Uuid::new_v4(), Epoch(2))
            .await
            .expect("take");
        take_epoch(&location, 3).await;
        let newest = LeaseEntry { epoch: 3, ..older };
        write(&newest).await;
        drop(ending);
        assert_eq!(
            read(&location).await.expect("read").expect("lease").0.epoch,
            3
        );
    }
}
