//! The checkpoint (docs/design.md §2): metadata, the offsets and commits logs, epochs, and the
//! query texts, on any object store.
//!
//! Invariants:
//! - every log entry is created, never replaced (`PutMode::Create`); finding an entry already
//!   there that this run did not write means another run got there first, and this run stops;
//! - a run takes a fresh, strictly increasing epoch before it writes anything else, and records
//!   it in every entry;
//! - before every write that can make output visible or change the log, a run checks its
//!   [`Fence`]: once a newer epoch exists, the older run writes nothing more, whatever entries
//!   retention has purged in the meantime;
//! - on local disk one run at a time holds the checkpoint's lock; a second run stops at once;
//! - retention never removes the entries recovery needs (the latest two batches at least).

mod entries;
pub mod lease;
pub mod paths;
pub mod recovery;
pub mod spark_sink;

pub use crate::vocab::{BatchId, Epoch, PinnedSettings};
pub use entries::{
    BatchInfo, CommitEntry, EpochEntry, FailureRecord, METADATA_FORMAT, Metadata, OffsetsEntry,
    PhaseDurations, SinkRecord, SourceOffset, StateCommit, parse_json_object, to_json,
};

use serde::{Deserialize, Serialize};

use crate::storage::{Location, StorageError};

/// `text` (an error, kept in the checkpoint) with what looks like a secret in it masked: a
/// URL's password and query values ([`crate::secret::redact_url`]), and the value of a
/// `password=` (or `secret=`, `token=`) pair, as a PostgreSQL connection string writes one.
fn without_secrets(text: &str) -> String {
    let text = crate::secret::masked(text);
    text.lines()
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    let lower = word.to_ascii_lowercase();
                    match ["password=", "secret=", "token="]
                        .iter()
                        .find(|key| lower.starts_with(**key))
                    {
                        Some(key) => format!("{}***", &word[..key.len()]),
                        None if word.contains("://") => crate::secret::redact_url(word),
                        None => word.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `metadata`'s text is a Spark Structured Streaming checkpoint's: an object with
/// Spark's query `id` alone (Spark's `StreamMetadata`; Sluice's has more, and one of Sluice's
/// that lost some of it is damage `repair` mends, not Spark's).
pub fn is_spark_metadata(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .is_some_and(|o| o.len() == 1 && o.contains_key("id"))
}

/// What can go wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An entry does not parse.
    #[error(
        "checkpoint file {file} line {line} is corrupt ({reason}). {}",
        advice("CHECKPOINT", .file)
    )]
    Corrupt {
        /// The entry, relative to the checkpoint.
        file: String,
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An entry is of a later format than this Sluice reads (its first line, `v2` where this
    /// one reads `v1`), as Spark's `UnsupportedLogVersion` says of its logs.
    #[error(
        "checkpoint file {file} is of format {found}, later than this Sluice ({}) reads: \
         it was written by a newer Sluice, which is the one to run on this checkpoint (upgrade \
         this one); nothing is wrong with the file",
        env!("CARGO_PKG_VERSION")
    )]
    NewerFormat {
        /// The entry, relative to the checkpoint.
        file: String,
        /// Its first line.
        found: String,
    },
    /// [`CheckpointError::Corrupt`] as a run reports it: with the checkpoint, so the command
    /// that repairs it can be given whole.
    #[error(
        "checkpoint file {checkpoint}/{file} line {line} is corrupt ({reason}). {}",
        advice(.checkpoint, .file)
    )]
    CorruptIn {
        /// The checkpoint, as the run was given it.
        checkpoint: String,
        /// The entry, relative to the checkpoint.
        file: String,
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint is Spark Structured Streaming's (its `metadata` holds Spark's query `id`
    /// alone): only `sluice inspect` reads it, and nothing writes to it.
    #[error(
        "checkpoint {location} is a Spark Structured Streaming checkpoint (its `metadata` holds \
         Spark's query id alone), not Sluice's: `sluice inspect {location}` reads it, and no \
         other command reads or changes it (nothing was changed). To run its pipeline in \
         Sluice, give the pipeline a new checkpoint"
    )]
    Spark {
        /// The checkpoint.
        location: String,
    },
    /// Another process holds the checkpoint's lock.
    #[error("checkpoint {location} is in use by another run (lock held on {lock}); {advice}")]
    InUse {
        /// The checkpoint.
        location: String,
        /// The lock file.
        lock: String,
        /// What to do ([`IN_USE_ADVICE`] but where more is known).
        advice: String,
    },
    /// Another run created an entry this run meant to create.
    #[error(
        "another run (epoch {other_epoch}) already wrote {file}; this run (epoch {epoch}) stops without changing anything"
    )]
    Fenced {
        /// The entry, relative to the checkpoint.
        file: String,
        /// This run's epoch.
        epoch: Epoch,
        /// The epoch recorded in the entry found.
        other_epoch: Epoch,
    },
    /// A newer run has taken the checkpoint over: this run must write nothing more.
    #[error(transparent)]
    Superseded(#[from] Superseded),
    /// This run's own `epochs/E` entry is gone: the checkpoint was deleted (or emptied, or
    /// replaced) while the run went on. Writing on would make a checkpoint of batch logs with
    /// no `metadata`, no epochs and no pipeline copies.
    #[error(
        "checkpoint {location}: this run's entry epochs/{epoch} is gone, so the checkpoint was \
         deleted or replaced while the run went on; the run stops and writes nothing more. \
         What it committed before is in the sink, but the checkpoint no longer records it: put \
         the checkpoint back from a backup, or start the pipeline over on a new checkpoint \
         with a new, empty sink path"
    )]
    Gone {
        /// The checkpoint.
        location: String,
        /// This run's epoch.
        epoch: Epoch,
    },
    /// The checkpoint belongs to a different pipeline.
    #[error(
        "checkpoint {location} belongs to pipeline `{found}`, not `{expected}`: where this is \
         that pipeline renamed, rename its checkpoint too (`sluice rename {} --to \
         {expected}`), or put `name: {found}` back; else give this pipeline its own checkpoint \
         (it starts from its sources' beginning)",
        crate::vocab::shell_word(.location)
    )]
    WrongPipeline {
        /// The checkpoint.
        location: String,
        /// The pipeline being run.
        expected: String,
        /// The pipeline recorded in the checkpoint.
        found: String,
    },
    /// `sluice repair` found damage it cannot fix without losing or doubling output.
    #[error("checkpoint {location} needs more than `sluice repair` can do: {problems}")]
    Unrepairable {
        /// The checkpoint.
        location: String,
        /// What is wrong, and what to restore.
        problems: String,
    },
    /// The checkpoint has batch logs but no `metadata` (deleted, or not copied with the rest):
    /// a run that made a new pipeline id over the old logs would orphan them.
    #[error(
        "checkpoint {location} has batch logs but no `metadata` file (it was deleted or not \
         copied with the rest); run `sluice repair {}`, which rebuilds it from the \
         commits and the sink",
        crate::vocab::shell_word(.location)
    )]
    MetadataMissing {
        /// The checkpoint.
        location: String,
    },
    /// A `sluice rewind` was cut short (its `rewind` record is still there): the batches
    /// after `to` are partly taken back, so running on would lose or repeat their output.
    #[error(
        "checkpoint {location}: `sluice rewind {0} --to {to}` (started {started}) did \
         not finish: the batches after {to} are partly taken back (sink files, state versions, \
         log entries), and running on would lose or repeat their output. Finish it: `sluice \
         rewind {0} --to {to}`",
        crate::vocab::shell_word(.location)
    )]
    RewindUnfinished {
        /// The checkpoint.
        location: String,
        /// The batch the rewind was taking the checkpoint back to.
        to: BatchId,
        /// When the rewind started (RFC 3339).
        started: String,
    },
    /// The logs do not describe a state recovery can continue from.
    #[error(
        "checkpoint {location} is inconsistent (run `sluice repair {}` first: it rebuilds what the other logs still tell, `--dry-run` shows what, and says so where they do not): {reason}",
        crate::vocab::shell_word(.location)
    )]
    Inconsistent {
        /// The checkpoint.
        location: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The record `sluice rewind` keeps in the checkpoint (`rewind`) from before its first delete
/// to after its last: while it is there, the batches after `to` are partly taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewindRecord {
    /// The batch the rewind takes the checkpoint back to.
    pub to: BatchId,
    /// The newest batch when it started.
    pub from: BatchId,
    /// When it started (RFC 3339).
    pub started: String,
}

/// The record of a rewind under way or cut short, if there is one.
///
/// Errors: store errors as they come. A record that does not parse still means a rewind was
/// cut short: it is [`CheckpointError::Corrupt`], naming `rewind`.
pub async fn read_rewind(location: &Location) -> Result<Option<RewindRecord>, CheckpointError> {
    let Some(bytes) = location.get(&location.path(paths::REWIND)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CheckpointError::Corrupt {
            file: paths::REWIND.to_string(),
            line: e.line(),
            reason: format!(
                "{e}: it is the record of a `sluice rewind` that did not finish; run that \
                 rewind again"
            ),
        })
}

/// Whether `sluice repair` moved a damaged `offsets/<batch>` aside here (`offsets/.<batch>
/// .damaged-<stamp>`): the batch was this checkpoint's, planned by it.
pub async fn offsets_moved_aside(location: &Location, batch: BatchId) -> bool {
    let hidden = format!(".{}.damaged-", batch.0);
    location.list(paths::OFFSETS).await.is_ok_and(|listed| {
        listed.iter().any(|meta| {
            location
                .relative(&meta.location)
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with(&hidden))
        })
    })
}

/// Refuses a checkpoint a rewind was cut short in: [`CheckpointError::RewindUnfinished`] with
/// the command that finishes it.
pub async fn check_no_rewind_under_way(location: &Location) -> Result<(), CheckpointError> {
    match read_rewind(location).await? {
        None => Ok(()),
        Some(record) => Err(CheckpointError::RewindUnfinished {
            location: location.to_string(),
            to: record.to,
            started: record.started,
        }),
    }
}

/// What gets a checkpoint with a damaged `file` (relative to it) going again, as the command
/// to run on `checkpoint`: `sluice repair` for the logs and `metadata` it rebuilds or moves
/// aside, `sluice rewind` for a batch's source log entry (which only that batch's input
/// names), a run for the files each run writes again.
fn advice(checkpoint: &str, file: &str) -> String {
    let checkpoint = crate::vocab::shell_word(checkpoint);
    let batch = |f: &str| f.rsplit('/').next().and_then(paths::entry_number);
    if file == paths::METADATA
        || file.starts_with(&format!("{}/", paths::COMMITS))
        || file.starts_with(&format!("{}/", paths::OFFSETS))
    {
        let older = batch(file)
            .and_then(|n| n.checked_sub(1))
            .map(|before| {
                format!(
                    "; where repair cannot, and the sink takes batches back (a files sink, a \
                     Delta one in append mode, a PostgreSQL one in append mode with \
                     `batch_column`; none in complete mode), `sluice rewind \
                     {checkpoint} --to {before}` takes the batch and the later ones back to be \
                     computed again"
                )
            })
            .unwrap_or_default();
        format!(
            "Run `sluice repair {checkpoint}`: it rebuilds what the other entries record, moves \
             a damaged newest entry aside so that batch runs again, and an older batch's \
             damaged commit aside as if deleted (`--dry-run` says what it would do){older}"
        )
    } else if file.starts_with(&format!("{}/", paths::SOURCES))
        && let Some(n) = batch(file)
    {
        match n.checked_sub(1) {
            Some(before) => format!(
                "It lists the input of batch {n}, which nothing else records: take that batch (and \
                 any later one) back and run again, `sluice rewind {checkpoint} --to {before}`"
            ),
            None => "It lists the input of batch 0, which nothing else records: run the pipeline \
                     on a new checkpoint (and sink)"
                .to_string(),
        }
    } else if file.starts_with(&format!("{}/", paths::SOURCES))
        && let Some(k) = file
            .strip_suffix(".compact")
            .and_then(|f| f.rsplit('/').next())
            .and_then(paths::entry_number)
    {
        // Audit 90c: the fallback sent users to `repair`, which found nothing to repair.
        format!(
            "It lists the files batches 0 to {k} read, which nothing else records (`repair` \
             cannot rebuild it): restore it from a backup, or run the pipeline on a new \
             checkpoint (and sink), which reads the input from its start again"
        )
    } else if file.starts_with(&format!("{}/", paths::SOURCES)) && file.ends_with("/schema") {
        let source = file.split('/').nth(1).unwrap_or_default();
        format!(
            "It pins the schema source `{source}` inferred from its first input: declare that \
             schema under the source (`schema:` in the pipeline file; `sluice inspect \
             {checkpoint}` and the sink's files show its columns) and run again, or restore the \
             file"
        )
    } else if file == paths::SINK {
        "The next run writes it again.".to_string()
    } else if file == paths::REWIND {
        format!(
            "Run that rewind again, with the batch you gave it: `sluice rewind {checkpoint} \
             --to N` (`sluice inspect {checkpoint}` shows the batches it has not taken back \
             yet)"
        )
    } else if file.starts_with(&format!("{}/", paths::PIPELINES)) {
        "It is the copy of a pipeline file a batch ran with: a run of that same file writes it \
         again; meanwhile `sluice replay --pipeline FILE` reads the file you give, and `sluice \
         rewind` takes the newest batch's copy in its place"
            .to_string()
    } else {
        format!(
            "Restore it from a backup; `sluice repair {checkpoint} --dry-run` says what it can fix"
        )
    }
}

/// What a run refused a checkpoint in use is told to do.
pub const IN_USE_ADVICE: &str = "wait for it to finish or stop it";

/// A run started with `--skip-if-running` that another run took over before it began a batch:
/// two started at the same moment both found the checkpoint idle and took an epoch, and the
/// newer goes on. Said as the lease of a run going on is ([`CheckpointError::InUse`], exit 75),
/// not as a failure: the older leaves the checkpoint to it.
pub fn left_to_newer(superseded: &Superseded) -> CheckpointError {
    CheckpointError::InUse {
        location: superseded.location.clone(),
        lock: format!(
            "its lease, taken by the run of epoch {}, which started at the same moment as this \
             one (epoch {}): both found it idle, and the newer goes on",
            superseded.newer, superseded.epoch
        ),
        advice: IN_USE_ADVICE.to_string(),
    }
}

/// A newer run (epoch `newer`) exists: the run of epoch `epoch` is a late one and stops.
#[derive(Debug, thiserror::Error)]
#[error(
    "a newer run (epoch {newer}) has taken over checkpoint {location}; this run (epoch {epoch}) \
     stops without changing anything (on an object store a `sluice rewind` takes an epoch too, \
     so that no run goes on beside it)"
)]
pub struct Superseded {
    /// The checkpoint.
    pub location: String,
    /// This run's epoch.
    pub epoch: Epoch,
    /// The newest epoch found.
    pub newer: Epoch,
}

/// A run's claim on its checkpoint, checked before each write that can make output visible or
/// change the log (docs/design.md §1.5: a newer epoch always wins).
///
/// Epochs are created create-only in increasing order (`epochs/<E>`), and a run purges only
/// entries older than its own, so the run of epoch `E` has been superseded exactly when the
/// `epochs/` folder holds a number above `E`. A check is one listing of that folder (at most
/// eleven entries): one LIST request on an object store, one `readdir` on local disk. Between
/// a check and the write it guards there is no lock: a run paused in that gap can still make
/// that one write (see the README's "The batch protocol" for what then contains it).
#[derive(Debug, Clone)]
pub struct Fence {
    location: Location,
    epoch: Epoch,
}

impl Fence {
    /// The epoch of the run this fence guards.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// `Ok` while no newer run exists; [`Superseded`] (naming the newest epoch) once one does;
    /// [`CheckpointError::Gone`] once this run's own epoch entry is gone (walk 78: a
    /// checkpoint deleted under a run went on to be written, its `metadata` gone).
    pub async fn check(&self) -> Result<(), CheckpointError> {
        let epochs = list_numbers(&self.location, paths::EPOCHS).await?;
        match epochs.last().copied() {
            Some(newest) if newest > self.epoch.0 => Err(Superseded {
                location: self.location.to_string(),
                epoch: self.epoch,
                newer: Epoch(newest),
            }
            .into()),
            _ if !epochs.contains(&self.epoch.0) => Err(CheckpointError::Gone {
                location: self.location.to_string(),
                epoch: self.epoch,
            }),
            _ => Ok(()),
        }
    }
}

/// An open checkpoint, owned by one run.
#[derive(Debug)]
pub struct Checkpoint {
    location: Location,
    metadata: Metadata,
    epoch: Epoch,
    run_id: uuid::Uuid,
    /// Held for the life of the run; the OS releases it if the process dies.
    _lock: Option<std::fs::File>,
    /// On an object store, where there is no lock: the run's lease, renewed while it runs.
    _lease: Option<lease::Lease>,
}

impl Checkpoint {
    /// Opens (creating where needed) the checkpoint of pipeline `name` for a new run: takes the
    /// lock (on an object store, the lease), writes `metadata` if absent and takes a fresh
    /// epoch. On an object store it takes the checkpoint over from a run still going, which
    /// is fenced ([`Self::open_run`] can leave such a run alone).
    pub async fn open(location: Location, name: &str) -> Result<Self, CheckpointError> {
        Self::open_run(location, name, false).await
    }

    /// [`Self::open`], but with `skip_if_running`, a checkpoint in an object store whose lease
    /// another live run holds is refused ([`CheckpointError::InUse`]), as the lock refuses it
    /// on local disk.
    pub async fn open_run(
        location: Location,
        name: &str,
        skip_if_running: bool,
    ) -> Result<Self, CheckpointError> {
        let lock = take_lock(&location)?;
        if skip_if_running && location.local_root().is_none() {
            lease::check_idle(&location).await?;
        }
        check_no_rewind_under_way(&location).await?;
        let mut created = false;
        let metadata = match Self::read_metadata(&location).await? {
            Some(m) => {
                if m.name != name {
                    return Err(CheckpointError::WrongPipeline {
                        location: location.to_string(),
                        expected: name.to_string(),
                        found: m.name,
                    });
                }
                m
            }
            None => {
                let fresh = Metadata {
                    id: uuid::Uuid::new_v4(),
                    name: name.to_string(),
                    created: chrono::Utc::now().to_rfc3339(),
                    format: METADATA_FORMAT,
                    renamed_from: None,
                };
                if !Self::create_metadata(&location, &fresh).await? {
                    // Another run created it between our read and write: use theirs.
                    return Box::pin(Self::open_run(location, name, skip_if_running)).await;
                }
                created = true;
                fresh
            }
        };
        let run_id = uuid::Uuid::new_v4();
        let epoch = take_epoch(&location, run_id).await?;
        if created && location.local_root().is_none() {
            MADE_IN_STORE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((location.to_string(), epoch));
        }
        // Another run that found the lease free at the same moment may have taken a newer
        // epoch already: this one leaves the checkpoint to it before writing its lease (one
        // that takes it later fences this run before its first batch: the driver says so too).
        if skip_if_running && location.local_root().is_none() {
            let fence = Fence {
                location: location.clone(),
                epoch,
            };
            if let Err(CheckpointError::Superseded(superseded)) = fence.check().await {
                return Err(left_to_newer(&superseded));
            }
        }
        let lease = match location.local_root() {
            None => Some(lease::Lease::take(&location, run_id, epoch).await?),
            Some(_) => None,
        };
        Ok(Self {
            location,
            metadata,
            epoch,
            run_id,
            _lock: lock,
            _lease: lease,
        })
    }

    /// Reads `metadata`, if the checkpoint has been created.
    ///
    /// Errors: [`CheckpointError::MetadataMissing`] when `metadata` is missing but batch logs
    /// are there (`sluice repair` rebuilds it); store and parse errors as they come.
    pub async fn read_metadata(location: &Location) -> Result<Option<Metadata>, CheckpointError> {
        let metadata = Self::read_metadata_file(location).await?;
        if metadata.is_none() {
            let logs = LogListing::read(location).await?;
            if !logs.offsets.is_empty() || !logs.commits.is_empty() {
                return Err(CheckpointError::MetadataMissing {
                    location: location.to_string(),
                });
            }
        }
        Ok(metadata)
    }

    /// Writes `metadata` unless one is there; whether this call wrote it.
    pub async fn create_metadata(
        location: &Location,
        metadata: &Metadata,
    ) -> Result<bool, CheckpointError> {
        let path = location.path(paths::METADATA);
        Ok(location
            .put_if_absent(&path, format!("{}\n", to_json(metadata)).into_bytes())
            .await?)
    }

    /// Reads the `metadata` file alone, whatever else the checkpoint holds.
    pub async fn read_metadata_file(
        location: &Location,
    ) -> Result<Option<Metadata>, CheckpointError> {
        let path = location.path(paths::METADATA);
        match location.get(&path).await? {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                if is_spark_metadata(&text) {
                    // Audit 88a: every command but inspect called Spark's checkpoint corrupt,
                    // and the repair it advised moved Spark's whole log aside.
                    return Err(CheckpointError::Spark {
                        location: location.to_string(),
                    });
                }
                // Walk 123: a `metadata` of a later format was read as this one's. Its
                // `format` is read first: a newer Sluice's may hold fields this one does not
                // know, which is no damage.
                let format = serde_json::from_str::<serde_json::Value>(text.trim_end())
                    .ok()
                    .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
                match format {
                    Some(later) if later > u64::from(METADATA_FORMAT) => {
                        return Err(CheckpointError::NewerFormat {
                            file: paths::METADATA.to_string(),
                            found: format!("`\"format\": {later}`"),
                        });
                    }
                    Some(other) if other != u64::from(METADATA_FORMAT) => {
                        return Err(CheckpointError::Corrupt {
                            file: paths::METADATA.to_string(),
                            line: 1,
                            reason: format!(
                                "`\"format\": {other}`, which no Sluice writes (it writes \
                                 {METADATA_FORMAT})"
                            ),
                        });
                    }
                    _ => {}
                }
                Ok(Some(parse_json_object(paths::METADATA, &text)?))
            }
            None => Ok(None),
        }
    }

    /// The checkpoint's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The pipeline's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// This run's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// This run's id.
    pub fn run_id(&self) -> uuid::Uuid {
        self.run_id
    }

    /// This run's fence, for the sinks it writes.
    pub fn fence(&self) -> Fence {
        Fence {
            location: self.location.clone(),
            epoch: self.epoch,
        }
    }

    /// Stops with [`Superseded`] when a newer run exists.
    pub async fn check_fence(&self) -> Result<(), CheckpointError> {
        self.fence().check().await
    }

    /// Writes `offsets/N`, create-only.
    pub async fn write_offsets(
        &self,
        batch: BatchId,
        entry: &OffsetsEntry,
    ) -> Result<(), CheckpointError> {
        let file = paths::offsets(batch);
        self.create_entry(&file, entry.to_text(), |text| {
            OffsetsEntry::parse(&file, text).map(|e| (e.info.epoch, e.info.run_id))
        })
        .await
    }

    /// Writes `commits/N`, create-only.
    pub async fn write_commit(
        &self,
        batch: BatchId,
        entry: &CommitEntry,
    ) -> Result<(), CheckpointError> {
        let file = paths::commits(batch);
        self.create_entry(&file, entry.to_text(), |text| {
            CommitEntry::parse(&file, text).map(|e| (e.epoch, e.run_id))
        })
        .await
    }

    /// Creates a log entry once the fence holds; when it exists already, reads it back: it is
    /// fine if this run wrote it (a retried write that landed), a conflict otherwise.
    async fn create_entry(
        &self,
        file: &str,
        text: String,
        owner: impl Fn(&str) -> Result<(Epoch, uuid::Uuid), CheckpointError>,
    ) -> Result<(), CheckpointError> {
        self.check_fence().await?;
        let path = self.location.path(file);
        if self
            .location
            .put_if_absent(&path, text.into_bytes())
            .await?
        {
            return Ok(());
        }
        let existing = self.read_text(file).await?.unwrap_or_default();
        let (other_epoch, other_run) = owner(&existing)?;
        if other_run == self.run_id {
            Ok(())
        } else {
            Err(CheckpointError::Fenced {
                file: file.to_string(),
                epoch: self.epoch,
                other_epoch,
            })
        }
    }

    /// Stores the query text under its fingerprint (once; a damaged copy is written again,
    /// as [`Checkpoint::write_pipeline`] does: audit 86, an emptied query file left every
    /// replay of its batches failing for good).
    pub async fn write_query(&self, fingerprint: &str, sql: &str) -> Result<(), CheckpointError> {
        let file = paths::query(fingerprint);
        let path = self.location.path(&file);
        if !self
            .location
            .put_if_absent(&path, sql.as_bytes().to_vec())
            .await?
            && let Err(CheckpointError::Corrupt { .. }) =
                read_fingerprinted(&self.location, &file, fingerprint).await
        {
            self.location.put(&path, sql.as_bytes().to_vec()).await?;
        }
        Ok(())
    }

    /// Records where this run's output goes (replacing an earlier run's record).
    pub async fn record_sink(&self, record: &SinkRecord) -> Result<(), CheckpointError> {
        // A run a newer one took over writes nothing (walk 92: one paused while it started,
        // then resumed, wrote back its older record, and the next run's check of a changed
        // output schema compared the query with that).
        self.check_fence().await?;
        self.put_sink_record(record).await
    }

    /// [`Checkpoint::record_sink`] by a caller that has just checked the fence itself (a
    /// failed run putting back the record it found: each store call is a timeout more where
    /// the store has stopped answering).
    pub async fn put_sink_record(&self, record: &SinkRecord) -> Result<(), CheckpointError> {
        let path = self.location.path(paths::SINK);
        self.location
            .put(&path, format!("{}\n", to_json(record)).into_bytes())
            .await?;
        Ok(())
    }

    /// Records how this run failed while batch `batch` was pending (`failure`), for
    /// `inspect` and `report`; a note of its own, so a failure to write it is passed over.
    pub async fn record_failure(&self, batch: BatchId, exit_code: i32, error: &str) {
        let record = FailureRecord {
            batch,
            at_ms: chrono::Utc::now().timestamp_millis(),
            run_id: self.run_id,
            exit_code,
            error: without_secrets(error),
        };
        let path = self.location.path(paths::FAILURE);
        if let Err(e) = self
            .location
            .put(&path, format!("{}\n", to_json(&record)).into_bytes())
            .await
        {
            // The failure itself is said; a store that fails this too is likely its cause.
            tracing::debug!("could not record the run's failure in the checkpoint: {e}");
        }
    }

    /// The failure recorded of pending batch `pending` (see [`Checkpoint::record_failure`]):
    /// `None` where none is, or the one there is of another batch, or older than the batch's
    /// offsets entry (logged again since, by a rewind), or unreadable.
    pub async fn read_failure(location: &Location, pending: BatchId) -> Option<FailureRecord> {
        let bytes = location.get(&location.path(paths::FAILURE)).await.ok()??;
        let record: FailureRecord =
            parse_json_object(paths::FAILURE, &String::from_utf8_lossy(&bytes)).ok()?;
        let logged = read_offsets(location, pending).await.ok()??;
        // The run that logged the batch, or one after it (a batch's timestamp may run ahead
        // of this machine's clock: it is never before the previous batch's).
        (record.batch == pending
            && (record.run_id == logged.info.run_id
                || record.at_ms >= logged.info.batch_timestamp_ms))
            .then_some(record)
    }

    /// Reads the sink record, if a run wrote one.
    pub async fn read_sink_record(
        location: &Location,
    ) -> Result<Option<SinkRecord>, CheckpointError> {
        match location.get(&location.path(paths::SINK)).await? {
            Some(bytes) => Ok(Some(parse_json_object(
                paths::SINK,
                &String::from_utf8_lossy(&bytes),
            )?)),
            None => Ok(None),
        }
    }

    /// Stores the pipeline file's text under its fingerprint (once).
    pub async fn write_pipeline(
        &self,
        fingerprint: &str,
        text: &str,
    ) -> Result<(), CheckpointError> {
        let file = paths::pipeline(fingerprint);
        let path = self.location.path(&file);
        if !self
            .location
            .put_if_absent(&path, text.as_bytes().to_vec())
            .await?
            && let Err(CheckpointError::Corrupt { .. }) =
                read_fingerprinted(&self.location, &file, fingerprint).await
        {
            // A damaged copy (truncated, edited) is written again from the file itself.
            self.location.put(&path, text.as_bytes().to_vec()).await?;
        }
        Ok(())
    }

    /// Reads the query text stored under `fingerprint`.
    pub async fn read_query(&self, fingerprint: &str) -> Result<String, CheckpointError> {
        read_fingerprinted(&self.location, &paths::query(fingerprint), fingerprint)
            .await?
            .ok_or_else(|| CheckpointError::Inconsistent {
                location: self.location.to_string(),
                reason: format!(
                    "{} is missing; a pending batch cannot be re-run without its query",
                    paths::query(fingerprint)
                ),
            })
    }

    /// Reads `offsets/N`, or `None` when it is not there.
    pub async fn read_offsets(
        &self,
        batch: BatchId,
    ) -> Result<Option<OffsetsEntry>, CheckpointError> {
        read_offsets(&self.location, batch).await
    }

    /// Reads `commits/N`, or `None` when it is not there.
    pub async fn read_commit(
        &self,
        batch: BatchId,
    ) -> Result<Option<CommitEntry>, CheckpointError> {
        read_commit(&self.location, batch).await
    }

    /// Syncs the newest offsets and commit entries to disk (local disk; nothing elsewhere): a
    /// run that crashed right after writing one, before syncing it, leaves it to the next run,
    /// which goes on from it.
    pub async fn sync_newest(&self, logs: &LogListing) -> Result<(), CheckpointError> {
        if let Some(batch) = logs.offsets.last() {
            self.location
                .sync(&self.location.path(&paths::offsets(*batch)))
                .await?;
        }
        if let Some(batch) = logs.commits.last() {
            self.location
                .sync(&self.location.path(&paths::commits(*batch)))
                .await?;
        }
        Ok(())
    }

    /// The batch numbers present in the offsets and commits logs.
    pub async fn list_logs(&self) -> Result<LogListing, CheckpointError> {
        LogListing::read(&self.location).await
    }

    async fn read_text(&self, file: &str) -> Result<Option<String>, CheckpointError> {
        read_text(&self.location, file).await
    }

    /// Removes offsets and commits older than the newest `retain` committed batches, and the
    /// stored pipeline files and query texts (`pipelines/`, `queries/`) only those batches
    /// ran with; never those of the fingerprints in `keep` (the running pipeline's). Never
    /// removes the latest two batches' entries.
    pub async fn purge(
        &self,
        latest: BatchId,
        retain: u64,
        keep: &[&str],
    ) -> Result<(), CheckpointError> {
        let retain = retain.max(2);
        let Some(oldest_kept) = latest.0.checked_sub(retain - 1) else {
            return Ok(());
        };
        self.check_fence().await?;
        let listing = self.list_logs().await?;
        // Commits first: an offsets entry without its commit is a pending batch, while a
        // commit without its offsets is an inconsistency.
        for batch in listing.commits.iter().filter(|b| b.0 < oldest_kept) {
            self.location
                .delete(&self.location.path(&paths::commits(*batch)))
                .await?;
        }
        // The fingerprints the removed batches ran with, read as they go.
        let mut dropped = std::collections::BTreeSet::new();
        for batch in listing.offsets.iter().filter(|b| b.0 < oldest_kept) {
            if let Ok(Some(entry)) = read_offsets(&self.location, *batch).await {
                dropped.extend(entry.info.pipeline.map(|f| paths::pipeline(&f)));
                dropped.insert(paths::query(&entry.info.query_fingerprint));
            }
            self.location
                .delete(&self.location.path(&paths::offsets(*batch)))
                .await?;
        }
        self.purge_stored_files(dropped, &listing, BatchId(oldest_kept), keep)
            .await
    }

    /// Removes the stored pipeline files and query texts of `dropped` that no batch from
    /// `oldest_kept` on (of `listing`) and no fingerprint in `keep` names (walk 99: a
    /// pipeline edited every day kept every version for ever). The oldest kept batch is read
    /// first, and every kept one only where a dropped file is not its (a pipeline changed);
    /// where one does not read, nothing is removed.
    async fn purge_stored_files(
        &self,
        mut dropped: std::collections::BTreeSet<String>,
        listing: &LogListing,
        oldest_kept: BatchId,
        keep: &[&str],
    ) -> Result<(), CheckpointError> {
        for fingerprint in keep {
            dropped.remove(&paths::pipeline(fingerprint));
            dropped.remove(&paths::query(fingerprint));
        }
        let kept: Vec<BatchId> = listing
            .offsets
            .iter()
            .copied()
            .filter(|b| *b >= oldest_kept)
            .collect();
        for batch in &kept {
            if dropped.is_empty() {
                return Ok(());
            }
            let Ok(Some(entry)) = read_offsets(&self.location, *batch).await else {
                return Ok(());
            };
            if let Some(f) = &entry.info.pipeline {
                dropped.remove(&paths::pipeline(f));
            }
            dropped.remove(&paths::query(&entry.info.query_fingerprint));
        }
        // A recovered batch's commit names the pipeline file of the run that finished it
        // (`replay --verify` reads it), which its offsets entry may not (the review).
        for batch in listing.commits.iter().filter(|b| **b >= oldest_kept) {
            if dropped.is_empty() {
                return Ok(());
            }
            let Ok(Some(commit)) = read_commit(&self.location, *batch).await else {
                return Ok(());
            };
            if let Some(f) = &commit.pipeline {
                dropped.remove(&paths::pipeline(f));
            }
        }
        for file in dropped {
            self.location.delete(&self.location.path(&file)).await?;
        }
        Ok(())
    }
}

/// The batch numbers present in a checkpoint's logs, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogListing {
    /// Batches with an offsets entry.
    pub offsets: Vec<BatchId>,
    /// Batches with a commit entry.
    pub commits: Vec<BatchId>,
}

impl LogListing {
    /// Lists the logs of the checkpoint at `location`.
    pub async fn read(location: &Location) -> Result<Self, CheckpointError> {
        let batches = |v: Vec<u64>| v.into_iter().map(BatchId).collect();
        Ok(Self {
            offsets: batches(list_numbers(location, paths::OFFSETS).await?),
            commits: batches(list_numbers(location, paths::COMMITS).await?),
        })
    }
}

/// Reads `offsets/N` of the checkpoint at `location`.
pub async fn read_offsets(
    location: &Location,
    batch: BatchId,
) -> Result<Option<OffsetsEntry>, CheckpointError> {
    let file = paths::offsets(batch);
    read_text(location, &file)
        .await?
        .map(|text| OffsetsEntry::parse(&file, &text))
        .transpose()
}

/// What shows that `offsets/N`, the pending newest entry of `logs`, was not written by the run
/// that planned batch `N` after batch `N - 1` (a copy of an older entry, one edited by hand):
/// `None` where nothing does. A run plans batch `N` only once `N - 1` is committed, at an
/// epoch no older than the one that committed it, at a batch timestamp no earlier than
/// `N - 1`'s (the timestamp never goes back); and it gives every source of the pipeline file
/// it planned with an offset (audit 94a: an old entry copied over a pending one read its
/// input again, doubling its rows; one with a source's line removed started that source's
/// bookkeeping over, both exit 0).
pub async fn pending_entry_damage(location: &Location, logs: &LogListing) -> Option<String> {
    let newest = *logs.offsets.last()?;
    if logs.commits.contains(&newest) {
        return None;
    }
    let entry = read_offsets(location, newest).await.ok()??;
    if let Some(prev) = newest.prev()
        && logs.commits.contains(&prev)
        && let Ok(Some(before)) = read_offsets(location, prev).await
        && let Ok(Some(commit)) = read_commit(location, prev).await
    {
        if entry.info.epoch < commit.epoch {
            return Some(format!(
                "offsets/{newest} was planned at epoch {}, before batch {prev} was committed \
                 at epoch {} (commits/{prev}): a run plans a batch only after the one before \
                 is committed, so it is a copy of an older entry, or edited",
                entry.info.epoch.0, commit.epoch.0
            ));
        }
        if entry.info.batch_timestamp_ms < before.info.batch_timestamp_ms {
            return Some(format!(
                "offsets/{newest} has a batch timestamp ({} ms) earlier than offsets/{prev}'s \
                 ({} ms), which a batch's never is: it is a copy of an older entry, or edited",
                entry.info.batch_timestamp_ms, before.info.batch_timestamp_ms
            ));
        }
    }
    let fingerprint = entry.info.pipeline.as_deref()?;
    let text = read_fingerprinted(location, &paths::pipeline(fingerprint), fingerprint)
        .await
        .ok()??;
    // Merge keys applied, as the pipeline file is read (`sources: {<<: *shared}`; the
    // review: `<<` was taken for a source).
    let mut planned: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    for _ in 0..8 {
        let before = planned.clone();
        planned.apply_merge().ok()?;
        if planned == before {
            break;
        }
    }
    let missing: Vec<String> = planned
        .get("sources")?
        .as_mapping()?
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|name| *name != "<<")
        .filter(|name| entry.sources.iter().all(|s| s.source != *name))
        .map(|name| format!("`{name}`"))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "offsets/{newest} has no offset for source {}, which the pipeline file that \
             planned it has (pipelines/{fingerprint}.yaml): a run gives every source one, so \
             the entry was edited",
            missing.join(", ")
        )
    })
}

/// Reads a text stored under its fingerprint (a query or a pipeline file), checking that it
/// still has that fingerprint; `None` when it is not there.
pub async fn read_fingerprinted(
    location: &Location,
    file: &str,
    fingerprint: &str,
) -> Result<Option<String>, CheckpointError> {
    let Some(text) = read_text(location, file).await? else {
        return Ok(None);
    };
    if crate::vocab::fingerprint(&text) != fingerprint {
        return Err(CheckpointError::Corrupt {
            file: file.to_string(),
            line: 1,
            reason: "the text does not match its fingerprint (its file name)".into(),
        });
    }
    Ok(Some(text))
}

/// What the newest commits that record a pipeline id say against `metadata`'s id: read once
/// at the start of a run and by repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitIdDamage {
    /// `metadata` names `id`, but the newest commit that records one names another (and the
    /// one before it, where there is one, does too): the metadata is wrong. The text says so.
    Metadata(String),
    /// The newest commit names another pipeline id, the one before it names `id`: that commit
    /// was copied from another checkpoint (audit 94a: the run blamed `metadata`, and repair,
    /// rebuilding that, came to a dead end). The batch and what is wrong.
    ForeignCommit(BatchId, String),
}

/// Compares `id` (`metadata`'s) with the pipeline ids of the two newest commits that record
/// one; `None` when they agree (or no commit records one).
pub async fn commit_id_damage(
    location: &Location,
    logs: &LogListing,
    id: &uuid::Uuid,
) -> Option<CommitIdDamage> {
    let ids = newest_commit_ids(location, logs, 2).await;
    match ids.as_slice() {
        [(batch, written_by), (before, ours), ..] if written_by != id && ours == id => {
            Some(CommitIdDamage::ForeignCommit(
                *batch,
                format!(
                    "commits/{batch} was written by pipeline id {written_by}, where metadata \
                     and commits/{before} name {id}: it was copied from another checkpoint \
                     (or edited)"
                ),
            ))
        }
        [(batch, written_by), ..] if written_by != id => Some(CommitIdDamage::Metadata(format!(
            "it names pipeline id {id}, but commits/{batch} was written by pipeline id \
             {written_by} (edited, or copied from another checkpoint)"
        ))),
        _ => None,
    }
}

/// The pipeline ids the `n` newest commits that record one name, newest first (a commit that
/// does not read is passed over: the run says what is wrong with it).
async fn newest_commit_ids(
    location: &Location,
    logs: &LogListing,
    n: usize,
) -> Vec<(BatchId, uuid::Uuid)> {
    let mut ids = Vec::new();
    for batch in logs.commits.iter().rev() {
        if ids.len() == n {
            break;
        }
        if let Ok(Some(commit)) = read_commit(location, *batch).await
            && let Some(written_by) = commit.pipeline_id
        {
            ids.push((*batch, written_by));
        }
    }
    ids
}

/// Reads `commits/N` of the checkpoint at `location`.
pub async fn read_commit(
    location: &Location,
    batch: BatchId,
) -> Result<Option<CommitEntry>, CheckpointError> {
    let file = paths::commits(batch);
    read_text(location, &file)
        .await?
        .map(|text| CommitEntry::parse(&file, &text))
        .transpose()
}

async fn read_text(location: &Location, file: &str) -> Result<Option<String>, CheckpointError> {
    let Some(bytes) = location.get(&location.path(file)).await? else {
        return Ok(None);
    };
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|e| CheckpointError::Corrupt {
            file: file.to_string(),
            line: 1,
            reason: format!("not UTF-8 text ({e})"),
        })
}

/// The numbered entries directly in `folder`, sorted; other names are ignored only when they
/// are hidden (`.` or `_` prefixed), and refused otherwise.
pub(crate) async fn list_numbers(
    location: &Location,
    folder: &str,
) -> Result<Vec<u64>, CheckpointError> {
    let mut numbers = Vec::new();
    for meta in location.list(folder).await? {
        let relative = location.relative(&meta.location);
        let name = relative.rsplit('/').next().unwrap_or_default();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        match paths::entry_number(name) {
            Some(n) => numbers.push(n),
            None => {
                return Err(CheckpointError::Corrupt {
                    file: relative.clone(),
                    line: 1,
                    reason: format!(
                        "`{name}` is not a batch number; only numbered entries belong in {folder}/"
                    ),
                });
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The operation [`take_lock`] names where the checkpoint's folder cannot be written.
pub(crate) const LOCK_UNWRITABLE: &str = "taking the checkpoint's lock";

/// Where the lock's holder (its line, `pid N ... on HOST, since ...`) is a process of this
/// host that is stopped (SIGSTOP, or Ctrl-Z in a shell): said, since waiting for it to finish
/// would wait for ever (walk 128 (2)); empty otherwise.
fn stopped_holder(line: &str) -> String {
    let Some(pid) = line
        .strip_prefix("pid ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return String::new();
    };
    if !line.contains(&format!(" on {},", lease::host())) {
        return String::new();
    }
    // `/proc/PID/stat`: `PID (COMM) STATE ...`, the command in parentheses (which may hold
    // spaces), the state the field after the last `)`.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
        });
    match state.as_deref() {
        Some("T" | "t") => format!(
            "; that process is stopped (SIGSTOP, or Ctrl-Z in its shell), and holds the lock \
             until it is resumed (`kill -CONT {pid}`) or ended"
        ),
        _ => String::new(),
    }
}

pub(crate) fn take_lock(location: &Location) -> Result<Option<std::fs::File>, CheckpointError> {
    let Some(root) = location.local_root() else {
        return Ok(None);
    };
    let lock_path = root.join(paths::LOCK);
    // Who holds it, as the holder wrote it in the file (an older Sluice wrote nothing).
    let in_use = || {
        // A run that has just taken the lock writes its line a moment later (walk 89: 5 of 40
        // refusals named no holder): read again for a little while before saying so.
        let read = || {
            std::fs::read_to_string(&lock_path)
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|text| text.starts_with("pid "))
        };
        let mut holder = read();
        for _ in 0..10 {
            if holder.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            holder = read();
        }
        let holder = match holder {
            Some(text) => format!(", by {text}{}", stopped_holder(&text)),
            None => ", by a run that has not said who it is (one that took it a moment ago, \
                      or an older Sluice)"
                .to_string(),
        };
        CheckpointError::InUse {
            location: location.to_string(),
            lock: format!("{}{holder}", lock_path.display()),
            advice: IN_USE_ADVICE.to_string(),
        }
    };
    // Not through a symbolic link: the holder's line is written into the file, and a link
    // placed there would have it written over whatever file the link names (the security
    // review of walk 71 (5)).
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(&lock_path).map_err(|e| {
        if std::fs::symlink_metadata(&lock_path).is_ok_and(|m| m.is_symlink()) {
            CheckpointError::Storage(StorageError::Refused {
                op: "opening the lock",
                path: lock_path.display().to_string(),
                reason: "it is a symbolic link, which a run does not write through (the lock \
                         file is the checkpoint's own): remove the link, and run again"
                    .to_string(),
            })
        } else if matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ) {
            // Walk 123 (6): "syncing .../lock to disk failed: Permission denied".
            CheckpointError::Storage(StorageError::Refused {
                op: LOCK_UNWRITABLE,
                path: lock_path.display().to_string(),
                reason: format!(
                    "the checkpoint folder {} cannot be written here ({e}: its permissions, an \
                     immutable flag or a read-only file system), and this command changes it \
                     under its lock: run it as the folder's owner, or where it can be written \
                     (`inspect`, `state`, `replay --verify`, `report` and `repair --dry-run` \
                     read it as it is)",
                    root.display()
                ),
            })
        } else {
            CheckpointError::Storage(StorageError::Sync {
                path: lock_path.clone(),
                source: e,
            })
        }
    })?;
    match file.try_lock() {
        Ok(()) => {
            // Who holds it, for a run refused while this one goes on (best effort: the lock
            // is the flock, not the text).
            use std::io::Write as _;
            // The command holding it, where this process is the command line's (a rewind or
            // a repair holds it as a run does: walk 128 (2), each was said as "another run").
            let command = std::env::args()
                .nth(1)
                .filter(|c| ["run", "rewind", "repair", "rename", "report"].contains(&c.as_str()))
                .map(|c| format!(" (`sluice {c}`)"))
                .unwrap_or_default();
            let holder = format!(
                "pid {}{command} on {}, since {}\n",
                std::process::id(),
                lease::host(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            let mut written = &file;
            if file.set_len(0).is_ok() {
                let _ = written.write_all(holder.as_bytes());
            }
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(in_use()),
        Err(std::fs::TryLockError::Error(e)) => Err(CheckpointError::Storage(StorageError::Sync {
            path: lock_path.clone(),
            source: e,
        })),
    }
}

/// Fences runs of the checkpoint at `location` for an operator command about to change it
/// (`sluice rewind`): on an object store, where no lock keeps a live run out, it takes an
/// epoch, so that a run of an older one stops at its next fence check instead of committing
/// on (a newer epoch always wins); on local disk the lock does that, and nothing is taken.
pub(crate) async fn fence_live_runs(location: &Location) -> Result<(), CheckpointError> {
    if location.local_root().is_some() {
        return Ok(());
    }
    take_epoch(location, uuid::Uuid::new_v4()).await.map(|_| ())
}

/// Checkpoints in an object store that a run of this process created (it wrote `metadata`),
/// each with the epoch the run took: a run refused before it logged a batch removes what it
/// wrote there ([`withdraw_made_in_store`]), as a refused run removes a local checkpoint
/// folder it made.
static MADE_IN_STORE: std::sync::Mutex<Vec<(String, Epoch)>> = std::sync::Mutex::new(Vec::new());

/// The epoch of the run of this process that created the checkpoint at `location` (in an
/// object store), taken from the record: `None` where no run here created it.
pub fn take_made_in_store(location: &Location) -> Option<Epoch> {
    let shown = location.to_string();
    let mut made = MADE_IN_STORE.lock().unwrap_or_else(|e| e.into_inner());
    let at = made.iter().position(|(l, _)| *l == shown)?;
    Some(made.remove(at).1)
}

/// Removes the checkpoint at `location` (in an object store), which a run of this process
/// that took `epoch` created ([`take_made_in_store`]), where it holds nothing a later run
/// needs: no batch logged, no other run's epoch, and, unless `refused` (the run was refused:
/// its configuration was wrong), no source's starting position logged (a next run starts
/// where this one was to, as Kafka's `latest`). Whether it removed it.
///
/// Errors: the store's, listing or deleting (what was deleted before stays deleted: every
/// object of such a checkpoint is written again by the next run).
pub async fn withdraw_made_in_store(
    location: &Location,
    epoch: Epoch,
    refused: bool,
) -> Result<bool, StorageError> {
    let listed = location.list("").await?;
    let ours = paths::epoch(epoch);
    let under = |name: &str, folder: &str| {
        name.strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    let needed = listed.iter().any(|meta| {
        let name = location.relative(&meta.location);
        under(&name, paths::OFFSETS)
            || under(&name, paths::COMMITS)
            || (under(&name, paths::EPOCHS) && name != ours)
            || (!refused && under(&name, paths::SOURCES) && !name.ends_with("/schema"))
    });
    if needed {
        return Ok(false);
    }
    // `metadata` first: a run that starts after makes its own checkpoint anew. One that read
    // it just before took an epoch: then it is put back, and the rest is left to that run.
    let metadata = location.path(paths::METADATA);
    let kept = location.get(&metadata).await?;
    location.delete(&metadata).await?;
    let others = location
        .list(paths::EPOCHS)
        .await?
        .iter()
        .any(|meta| location.relative(&meta.location) != ours);
    if others {
        if let Some(bytes) = kept {
            location.put_if_absent(&metadata, bytes.to_vec()).await?;
        }
        return Ok(false);
    }
    for meta in &listed {
        let name = location.relative(&meta.location);
        // The lease is whoever runs now's (this run's went as it ended).
        if name != paths::METADATA && name != paths::LEASE {
            location.delete(&meta.location).await?;
        }
    }
    Ok(true)
}

/// Takes the next epoch: one past the newest in `epochs/`, and, where that folder is empty,
/// past the newest a log entry records (the newest `offsets/N` and `commits/N`), so that an
/// `epochs/` folder deleted by hand does not start epochs again at 0 below the runs that
/// logged batches (audit 94a: a run paused at epoch 3 would then not be fenced by the next).
async fn take_epoch(location: &Location, run_id: uuid::Uuid) -> Result<Epoch, CheckpointError> {
    let taken = list_numbers(location, paths::EPOCHS).await?;
    let mut next = match taken.last() {
        Some(newest) => newest + 1,
        None => newest_logged_epoch(location).await?.map_or(0, |e| e + 1),
    };
    let entry = EpochEntry {
        run_id,
        started: chrono::Utc::now().to_rfc3339(),
        owner: format!("pid {}", std::process::id()),
    };
    let text = format!("{}\n", to_json(&entry));
    loop {
        let path = location.path(&paths::epoch(Epoch(next)));
        if location
            .put_if_absent(&path, text.clone().into_bytes())
            .await?
        {
            break;
        }
        next += 1;
    }
    // Entries of runs long gone are only history: keep the ten before this run's. Only older
    // entries go, so a listing always shows the newest epoch (what fences a late run).
    for old in taken.into_iter().filter(|e| e + 10 < next) {
        location
            .delete(&location.path(&paths::epoch(Epoch(old))))
            .await?;
    }
    Ok(Epoch(next))
}

/// The newest epoch the newest `offsets/N` and `commits/N` record, where there are any (an
/// entry that does not read records none here: the run says what is wrong with it).
async fn newest_logged_epoch(location: &Location) -> Result<Option<u64>, CheckpointError> {
    let mut newest = None;
    if let Some(batch) = list_numbers(location, paths::OFFSETS).await?.last()
        && let Ok(Some(entry)) = read_offsets(location, BatchId(*batch)).await
    {
        newest = newest.max(Some(entry.info.epoch.0));
    }
    if let Some(batch) = list_numbers(location, paths::COMMITS).await?.last()
        && let Ok(Some(entry)) = read_commit(location, BatchId(*batch)).await
    {
        newest = newest.max(Some(entry.epoch.0));
    }
    Ok(newest)
}

/// Why the folder `spec` is not a checkpoint (it has no `metadata`), naming the checkpoint
/// whose sink folder it is where it is one (its `_sluice/owner` record on local disk).
pub fn not_a_checkpoint(spec: &str) -> String {
    let owner = std::fs::read_to_string(std::path::Path::new(spec).join("_sluice/owner"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|record| Some(record.get("label")?.as_str()?.to_string()))
        .filter(|label| !label.is_empty());
    match owner {
        Some(label) => format!(
            "{spec} is not a Sluice checkpoint (it has no metadata): it is the sink folder of \
             {label}; give that checkpoint"
        ),
        None => format!("{spec} is not a Sluice checkpoint (it has no metadata)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure kept in the checkpoint keeps no secret its error quotes.
    #[test]
    fn a_failures_error_keeps_no_secret() {
        let said = without_secrets(
            "cannot reach host=db password=hunter2 dbname=x\nat s3://k:pw@bucket/x?sig=abc now",
        );
        assert!(
            !said.contains("hunter2") && !said.contains(":pw@") && !said.contains("abc"),
            "{said}"
        );
        assert!(
            said.contains("password=***") && said.contains("host=db") && said.contains("\nat "),
            "{said}"
        );
    }

    fn temp_location() -> (tempfile::TempDir, Location) {
        let dir = tempfile::tempdir().expect("temp dir");
        let loc =
            Location::open(dir.path().to_str().expect("utf-8"), true, false, None).expect("open");
        (dir, loc)
    }

    #[tokio::test]
    async fn runs_take_increasing_epochs_and_the_lock_excludes_a_second_run() {
        let (_dir, loc) = temp_location();
        let first = Checkpoint::open(loc.clone(), "p").await.expect("first run");
        let err = Checkpoint::open(loc.clone(), "p")
            .await
            .expect_err("in use");
        assert!(matches!(err, CheckpointError::InUse { .. }), "{err}");
        let first_epoch = first.epoch();
        let id = first.metadata().id;
        drop(first);
        let second = Checkpoint::open(loc.clone(), "p")
            .await
            .expect("second run");
        assert!(second.epoch() > first_epoch);
        assert_eq!(second.metadata().id, id, "the pipeline id survives runs");
        drop(second);
        let err = Checkpoint::open(loc, "other")
            .await
            .expect_err("wrong pipeline");
        assert!(
            matches!(err, CheckpointError::WrongPipeline { .. }),
            "{err}"
        );
    }

    /// Walk 89: a lock taken a moment ago, its holder's line not yet written, was said held
    /// with no word of by whom; the refusal waits for the line, and else says why there is none.
    #[test]
    fn a_lock_whose_holder_has_not_said_who_it_is_is_said_so() {
        let (dir, loc) = temp_location();
        let path = dir.path().join(paths::LOCK);
        let held = std::fs::File::create(&path).expect("lock file");
        held.lock().expect("lock");
        let err = take_lock(&loc).expect_err("held");
        assert!(err.to_string().contains("has not said who it is"), "{err}");
        // Written while the refused run reads again: named.
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                std::fs::write(path, "pid 42 on host, since then\n").expect("write");
            }
        });
        let err = take_lock(&loc).expect_err("held");
        writer.join().expect("writer");
        assert!(err.to_string().contains("by pid 42 on host"), "{err}");
    }

    /// A commit entry written by `cp`'s run.
    fn commit(cp: &Checkpoint) -> CommitEntry {
        CommitEntry {
            next_watermark_ms: None,
            event_time_max_ms: Default::default(),
            source_active_ms: Default::default(),
            rows_late: 0,
            rows_beyond_max_future: 0,
            state: Vec::new(),
            output: None,
            pipeline: None,
            pipeline_id: None,
            checkpoint_created: None,
            rows_in: 1,
            rows_out: 1,
            rows_skipped: 0,
            rows_lost: 0,
            rows_with_unknown_fields: 0,
            files_in: 1,
            epoch: cp.epoch(),
            run_id: cp.run_id(),
            committed_at_ms: 0,
            batch_timestamp_ms: None,
            settings: None,
            durations: PhaseDurations::default(),
        }
    }

    #[tokio::test]
    async fn an_entry_written_by_another_run_fences_this_one() {
        let (_dir, loc) = temp_location();
        let old = Checkpoint::open(loc.clone(), "p").await.expect("old run");
        let old_entry = commit(&old);
        // The old run writes the entry (a late write that slipped in before the newer run's
        // epoch existed, say); the newer run meets it and stops.
        old.write_commit(BatchId(0), &old_entry)
            .await
            .expect("old run commits");
        let (old_epoch, old_run) = (old.epoch(), old.run_id());
        drop(old);
        let new = Checkpoint::open(loc.clone(), "p").await.expect("new run");
        let err = new
            .write_commit(BatchId(0), &commit(&new))
            .await
            .expect_err("fenced by the entry");
        assert!(
            matches!(err, CheckpointError::Fenced { other_epoch, .. } if other_epoch == old_epoch),
            "{err}"
        );
        new.write_commit(BatchId(1), &commit(&new))
            .await
            .expect("new run commits");
        // A retried write of our own entry is fine.
        new.write_commit(BatchId(1), &commit(&new))
            .await
            .expect("own retry");
        // The old run, resumed, is fenced by the newer epoch before it looks at any entry.
        let old = Checkpoint {
            location: loc,
            metadata: new.metadata().clone(),
            epoch: old_epoch,
            run_id: old_run,
            _lock: None,
            _lease: None,
        };
        let err = old
            .write_commit(BatchId(2), &old_entry)
            .await
            .expect_err("superseded");
        assert!(matches!(err, CheckpointError::Superseded(_)), "{err}");
    }

    #[tokio::test]
    async fn a_newer_epoch_fences_an_older_run_even_after_its_entries_are_purged() {
        let (_dir, loc) = temp_location();
        let old = Checkpoint::open(loc.clone(), "p").await.expect("old run");
        let old_fence = old.fence();
        old_fence.check().await.expect("no newer run yet");
        drop(old);
        let newest = Checkpoint::open(loc.clone(), "p").await.expect("new run");
        let err = old_fence.check().await.expect_err("superseded");
        assert!(
            err.to_string().contains("a newer run (epoch 1)")
                && err.to_string().contains("this run (epoch 0)"),
            "{err}"
        );
        drop(newest);
        // Twelve more runs: the entries of epochs 0 and 1 are purged.
        let mut last = None;
        for _ in 0..12 {
            drop(last.take());
            last = Some(Checkpoint::open(loc.clone(), "p").await.expect("run"));
        }
        let last = last.expect("a run");
        assert!(
            !loc.exists(&loc.path(&paths::epoch(Epoch(1))))
                .await
                .expect("head"),
            "epoch 1's entry is purged"
        );
        let err = old_fence.check().await.expect_err("still superseded");
        assert!(err.to_string().contains("(epoch 13)"), "{err}");
        last.fence().check().await.expect("the newest run holds");
        last.write_commit(BatchId(0), &commit(&last))
            .await
            .expect("the newest run commits");
    }

    #[tokio::test]
    async fn purge_keeps_the_newest_batches() {
        let (dir, loc) = temp_location();
        let cp = Checkpoint::open(loc, "p").await.expect("open");
        for n in 0..10 {
            for folder in [paths::OFFSETS, paths::COMMITS] {
                let path = cp.location().path(&format!("{folder}/{n}"));
                cp.location()
                    .put(&path, b"v1\n".to_vec())
                    .await
                    .expect("put");
            }
        }
        cp.purge(BatchId(9), 3, &[]).await.expect("purge");
        let listing = cp.list_logs().await.expect("list");
        assert_eq!(listing.offsets, vec![BatchId(7), BatchId(8), BatchId(9)]);
        assert_eq!(listing.commits, vec![BatchId(7), BatchId(8), BatchId(9)]);
        std::fs::write(dir.path().join("offsets/garbage"), "x").expect("write");
        let err = cp.list_logs().await.expect_err("stray file");
        assert!(err.to_string().contains("offsets/garbage"), "{err}");
    }
}
