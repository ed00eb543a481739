//! The micro-batch loop and recovery (docs/design.md §1).
//!
//! ```text
//!   plan ──► sources/<s>/N ──► offsets/N ──► run query ──► sink.commit(N) ──► state N ──► commits/N ──► purge
//!   (new       (file lists,      (create-      (DataFusion,   (idempotent      (versioned   (create-
//!   input)      create-only)      only)         per batch)     per batch id)    by batch)    only)
//!    ▲              ▲                ▲                             ▲               ▲            ▲          ▲
//!    └──────────────┴── fence: no newer epoch exists, checked before each of these ┴────────────┴──────────┘
//! ```
//!
//! Invariants:
//! - batch `N` runs only once `offsets/N` exists, and is committed only after the sink has it;
//! - a re-run of `N` uses exactly what `offsets/N` logged: the sources' offsets, the batch
//!   timestamp, the pinned settings, the query text and the pipeline file it was planned with;
//! - a run whose epoch a newer run has passed writes nothing more (its fence fails first);
//! - the driver stops between batches when asked to; an interrupted batch is finished by the
//!   next run.

mod engine;
mod event_time;
mod watermark;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::watch;

use crate::Error;
use crate::checkpoint::recovery::{self, Decision};
use crate::checkpoint::{
    BatchId, BatchInfo, Checkpoint, CheckpointError, CommitEntry, CommitIdDamage, LogListing,
    OffsetsEntry, PhaseDurations, SourceOffset, StateCommit,
};
use crate::pipeline::{Fencing, OutputMode, Pipeline, Trigger};
use crate::plan;
use crate::progress::{
    BatchProgress, EventTimeProgress, ProgressFormat, SinkProgress, SourceProgress,
    StateOperatorProgress,
};
use crate::sink::{BatchOutput, Sink, SinkContext, SinkError};
use crate::source::Admission;
use crate::storage::{Location, StoreHook};
use engine::{Computed, Engine, Output, Start};
pub(crate) use engine::{check_late_rows, check_state_ttl, check_watermark_column};

/// How long a failing run spends on what it notes in the checkpoint on its way out (whether a
/// newer run fenced it, the failure beside its pending batch): 3 seconds, or the store's
/// timeout where shorter. A store that does not answer, likely the failure's cause, would
/// otherwise hold the exit for its whole timeout again, once for each.
fn exit_note_budget() -> std::time::Duration {
    crate::storage::store_timeout_or_default().min(std::time::Duration::from_secs(3))
}

/// How a run is started, beyond what the pipeline file says.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Overrides the pipeline's trigger.
    pub trigger: Option<Trigger>,
    /// Overrides the pipeline's checkpoint location.
    pub checkpoint: Option<String>,
    /// How progress is shown.
    pub progress: ProgressFormat,
    /// Wraps every object store the run opens (fault injection in tests).
    pub store_hook: Option<StoreHook>,
    /// Becomes `true` when the run should stop after the current batch.
    pub shutdown: Option<watch::Receiver<bool>>,
    /// On an object store, refuse (exit 75) a checkpoint another live run holds the lease
    /// of, instead of taking it over (`--skip-if-running`); on local disk the lock always does.
    pub skip_if_running: bool,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trigger", &self.trigger)
            .field("checkpoint", &self.checkpoint)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Batches run (including a recovered one).
    pub batches: u64,
    /// The interrupted batch this run finished, if any.
    pub recovered: Option<BatchId>,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// In append mode, the windows of an aggregation over event time still open in its state
    /// after the run's last batch: output not written yet, since each is written once the
    /// watermark passes its end (walk 93: a bounded run's last windows went unsaid).
    pub open_windows: Option<u64>,
}

/// Runs a pipeline until its trigger says stop (or it is asked to). A pending batch planned
/// with another pipeline file (an edit made while a batch was in flight) is first finished
/// with that file, as the checkpoint stores it; the edit takes effect from the next batch.
pub async fn run(pipeline: &Pipeline, options: RunOptions) -> Result<RunSummary, Error> {
    let checkpoint_spec = options
        .checkpoint
        .clone()
        .unwrap_or_else(|| pipeline.checkpoint_location());
    pipeline
        .check_file(&checkpoint_spec, options.checkpoint.is_some())
        .map_err(Error::Usage)?;
    // `memory://` is a store of this process alone: what is written there is gone at exit.
    let sink_location = pipeline.sink.connector().location();
    for (what, location) in [
        ("checkpoint", Some(checkpoint_spec.as_str())),
        ("sink", sink_location.as_deref()),
    ] {
        if let Some(location) = location.filter(|l| l.starts_with("memory://")) {
            tracing::warn!(
                "the {what} {location} is kept in this process's memory only and is gone when \
                 the run ends{}; give a folder or an object-store URL to keep it",
                if what == "checkpoint" {
                    ", so the next run starts over and reads all its input again"
                } else {
                    ""
                }
            );
        }
    }
    let made = new_local_folders(pipeline, &checkpoint_spec);
    // A folder there already that holds no checkpoint (made empty beforehand, or `~`): what
    // it held before, so that a refused run takes out only what it put there (walk 123 (5):
    // `metadata`, `lock`, `epochs/` and `pipelines/` were left in the home folder).
    let held_before: Option<(
        std::path::PathBuf,
        std::collections::HashSet<std::ffi::OsString>,
    )> = local_folder(&checkpoint_spec)
        .filter(|folder| {
            folder.is_dir() && !folder.join(crate::checkpoint::paths::METADATA).exists()
        })
        .and_then(|folder| {
            let names = std::fs::read_dir(&folder)
                .ok()?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            Some((folder, names))
        });
    // A source folder's symbolic link into what the run writes is refused as it is listed.
    for (what, folder) in [
        ("the checkpoint", Some(checkpoint_spec.clone())),
        ("the sink's folder", sink_location.clone()),
        (
            "the late-rows sink's folder",
            pipeline
                .late_rows
                .as_ref()
                .and_then(|late| late.connector().location()),
        ),
    ] {
        if let Some(folder) = folder {
            crate::storage::register_output_folder(&folder, what);
        }
    }
    let spec = checkpoint_spec.clone();
    let result = match run_from(pipeline, options, checkpoint_spec).await {
        Ok(summary) => Ok(summary),
        Err(e) => Err(with_edit_advice(
            with_sink_advice(with_schema_line(e, pipeline), pipeline),
            pipeline,
            &spec,
        )
        .await
        .in_checkpoint(&spec)),
    };
    // A run refused or failed before any batch on a checkpoint it made removes the
    // checkpoint and sink folders it made, as long as it logged no batch there (a batch
    // logged may have output to keep). One that failed while running (exit 1: a server, a
    // file that does not read) also keeps a source's starting offsets once logged: a next run
    // starts where this one was to (`latest`).
    let empty = |checkpoint: &std::path::Path, folder: &str| {
        std::fs::read_dir(checkpoint.join(folder))
            .ok()
            .is_none_or(|mut entries| entries.next().is_none())
    };
    // Whether a source logged where it starts (Kafka's starting offsets): anything under
    // `sources/` but a schema inferred and pinned, which the next run infers again.
    let starts_logged = |checkpoint: &std::path::Path| {
        let Ok(sources) = std::fs::read_dir(checkpoint.join(crate::checkpoint::paths::SOURCES))
        else {
            return false;
        };
        sources.flatten().any(|source| {
            std::fs::read_dir(source.path()).map_or(true, |files| {
                files
                    .flatten()
                    .any(|file| file.file_name() != std::ffi::OsStr::new("schema"))
            })
        })
    };
    // Only while no other run holds the checkpoint: of two runs started at once on one new
    // checkpoint, the one the lock refused removes nothing of the other's. The lock is held
    // until the folders are gone.
    let lock = made
        .first()
        .map(|(checkpoint, _)| checkpoint)
        .or(held_before.as_ref().map(|(folder, _)| folder))
        .and_then(|checkpoint| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(checkpoint.join(crate::checkpoint::paths::LOCK))
                .ok()
        });
    let free = lock.as_ref().is_none_or(|file| file.try_lock().is_ok());
    if let Err(e) = &result
        && free
        && let Some(((checkpoint, _), _)) = made.split_first()
        && empty(checkpoint, crate::checkpoint::paths::OFFSETS)
        && empty(checkpoint, crate::checkpoint::paths::COMMITS)
        && (e.exit_code() == 2 || !starts_logged(checkpoint))
    {
        for (folder, top) in made.iter().filter(|(f, _)| f.exists()) {
            if let Err(e) = std::fs::remove_dir_all(folder) {
                tracing::warn!("could not remove {}: {e}", folder.display());
            }
            // The folders above it the run made (`checkpoints/` of `checkpoints/<name>`),
            // each while empty: another run may have made its own in one since.
            let mut above = folder.parent();
            while let Some(parent) = above.filter(|p| p.starts_with(top)) {
                if std::fs::remove_dir(parent).is_err() {
                    break;
                }
                above = parent.parent();
            }
        }
    }
    // In a folder that was there: what the run put in it, of a checkpoint's own names only
    // (another program may have written other files there while the run waited).
    if let Err(e) = &result
        && free
        && let Some((checkpoint, before)) = &held_before
        && empty(checkpoint, crate::checkpoint::paths::OFFSETS)
        && empty(checkpoint, crate::checkpoint::paths::COMMITS)
        && (e.exit_code() == 2 || !starts_logged(checkpoint))
    {
        use crate::checkpoint::paths;
        let own = [
            paths::METADATA,
            paths::LOCK,
            paths::LEASE,
            paths::OFFSETS,
            paths::COMMITS,
            paths::EPOCHS,
            paths::QUERIES,
            paths::PIPELINES,
            paths::SINK,
            paths::REWIND,
            paths::SOURCES,
            paths::FAILURE,
            "state",
        ];
        for entry in std::fs::read_dir(checkpoint)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            if before.contains(&name) || !own.iter().any(|o| name == std::ffi::OsStr::new(o)) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!("could not remove {}: {e}", path.display());
            }
        }
    }
    // The same of a checkpoint in an object store that the run created (walk 78: a run
    // refused at planning left `metadata`, an epoch and its pipeline file in the bucket).
    if let Ok(location) = Location::open(&spec, false, false, None)
        && location.local_root().is_none()
        && let Some(epoch) = crate::checkpoint::take_made_in_store(&location)
        && let Err(e) = &result
        && let Err(cleanup) =
            crate::checkpoint::withdraw_made_in_store(&location, epoch, e.exit_code() == 2).await
    {
        tracing::warn!(
            "could not remove the checkpoint {} this run made: {cleanup}",
            crate::secret::redact_url(&spec)
        );
    }
    result
}

/// A declared column's type that does not read (found when the source opens) named with its
/// line of the pipeline file, as a mistake found when the file is read is.
fn with_schema_line(error: Error, pipeline: &Pipeline) -> Error {
    let Error::Source(crate::source::SourceError::Config {
        source_name,
        mut reason,
    }) = error
    else {
        return error;
    };
    let line = reason
        .strip_prefix("`schema:` key `")
        .and_then(|rest| rest.split('`').next())
        .and_then(|column| {
            ["sources", "tables"].iter().find_map(|group| {
                pipeline.key_line(&format!("{group}.{source_name}.schema.{column}"))
            })
        });
    if let Some(line) = line {
        reason.push_str(&format!(" (line {line} of the pipeline file)"));
    }
    Error::Source(crate::source::SourceError::Config {
        source_name,
        reason,
    })
}

/// A checkpoint beside the default one of pipeline `name` (`checkpoints/<name>`, which does
/// not exist) that `sluice rename` renamed to `name` (its `metadata` says so): the pipeline's
/// checkpoint, left in its old folder, which a file without `checkpoint:` would not find. (A
/// copy of a checkpoint, never renamed, is no such one.)
fn renamed_checkpoint(name: &str) -> Option<String> {
    let root = std::path::Path::new("checkpoints");
    if root.join(name).exists() {
        return None;
    }
    std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|folder| {
            std::fs::read_to_string(folder.join(crate::checkpoint::paths::METADATA))
                .ok()
                .and_then(|text| {
                    crate::checkpoint::parse_json_object::<crate::checkpoint::Metadata>(
                        crate::checkpoint::paths::METADATA,
                        &text,
                    )
                    .ok()
                })
                .is_some_and(|metadata| metadata.name == name && metadata.renamed_from.is_some())
        })
        .map(|folder| folder.display().to_string())
}

/// `error`, a sink refusing this pipeline's new checkpoint as another pipeline's, with the
/// way out where that other pipeline's name differs and its checkpoint is the default one of
/// that name: the pipeline's `name:` edited in a file without `checkpoint:` (so a new
/// checkpoint, `checkpoints/<new name>`) is no new pipeline (walk 127 (6c): the refusal never
/// said the name).
fn renamed_in_its_file(
    pipeline: &Pipeline,
    new_default_checkpoint: bool,
    error: crate::sink::SinkError,
) -> Error {
    use crate::sink::SinkError;
    let (SinkError::Foreign { owner_label, .. } | SinkError::ForeignFolder { owner_label, .. }) =
        &error
    else {
        return error.into();
    };
    let Some(old) = owner_label
        .strip_prefix("pipeline `")
        .and_then(|rest| rest.split('`').next())
        .filter(|old| *old != pipeline.name)
    else {
        return error.into();
    };
    let default = format!("checkpoints/{old}");
    // That pipeline's checkpoint is the default one of its name, in this folder.
    let theirs = std::env::current_dir()
        .map(|cwd| format!("with checkpoint {},", cwd.join(&default).display()))
        .unwrap_or_default();
    if !new_default_checkpoint
        || pipeline.checkpoint.is_some()
        || theirs.is_empty()
        || !owner_label.contains(&theirs)
    {
        return error.into();
    }
    Error::Usage(format!(
        "{error}. This file names pipeline `{new}`, and sets no `checkpoint:`, so its checkpoint \
         is checkpoints/{new}, a new one: where it is pipeline `{old}` renamed in its file, its \
         checkpoint is {default}: put `name: {old}` back, or rename the checkpoint with it \
         (`sluice rename {default} --to {new}`, then move that folder to checkpoints/{new}, or \
         set `checkpoint: {default}`)",
        new = pipeline.name
    ))
}

/// The sink committed batch `last` went to, as the pipeline file it ran with configures it:
/// its kind, its place and whether it keeps batch records; `None` where that file is not
/// known.
async fn last_batch_sink(
    location: &Location,
    last: BatchId,
) -> Option<(String, Option<String>, bool)> {
    let commit = crate::checkpoint::read_commit(location, last)
        .await
        .ok()??;
    let then = stored_pipeline_as_written(location, &location.to_string(), &commit.pipeline?)
        .await
        .ok()??;
    let sink = then.sink.connector();
    Some((
        sink.kind().to_string(),
        sink.location(),
        sink.keeps_batches(),
    ))
}

/// The late-rows sink's folders (one per watermarked source, `<late_rows.path>/<source>`, on
/// local disk) that still hold data files but lost their `_sluice/` records of them, each with
/// how many files it holds. Those records cannot be rebuilt from the files.
pub fn late_rows_without_records(pipeline: &Pipeline) -> Vec<(String, usize)> {
    let Some(path) = pipeline
        .late_rows
        .as_ref()
        .and_then(|s| s.connector().location())
    else {
        return Vec::new();
    };
    pipeline
        .sources
        .iter()
        .filter(|(_, source)| source.watermark.is_some())
        .filter_map(|(name, _)| {
            let folder = format!("{}/{name}", path.trim_end_matches('/'));
            let kept = crate::sink::data_without_records(&folder)?;
            Some((folder, kept))
        })
        .collect()
}

/// Checks the late-rows sink against the one the newest committed batch (in `logs`) wrote
/// to, as the sink is checked against its record (walk 127 (5): both went unsaid): another
/// `format` into a folder that holds late rows is refused (a reader of one format misses the
/// other's rows); a new `path` is said, where the earlier late rows stay.
///
/// Errors: [`Error::Usage`] for the format changed.
async fn check_late_rows_kept(
    pipeline: &Pipeline,
    checkpoint: &Checkpoint,
    logs: &LogListing,
) -> Result<(), Error> {
    let Some(late) = &pipeline.late_rows else {
        return Ok(());
    };
    let location = checkpoint.location();
    let Ok(Some(then)) = newest_stored_pipeline(location, &location.to_string(), logs).await else {
        return Ok(());
    };
    let Some(was) = &then.late_rows else {
        return Ok(());
    };
    let (now, before) = (late.connector(), was.connector());
    if now.kind() != before.kind() {
        return Ok(());
    }
    let (Some(path), Some(path_before)) = (now.location(), before.location()) else {
        return Ok(());
    };
    if crate::pipeline::overlap(&path, &path_before) != Some("is the same location as") {
        tracing::warn!(
            "`late_rows` moved: the late rows of earlier batches stay in {path_before}, those of \
             batches from now on go to {path} (`sluice rewind` takes each batch's back from \
             where they went)"
        );
        return Ok(());
    }
    let (Some(format), Some(format_before)) = (now.format(), before.format()) else {
        return Ok(());
    };
    let holds_rows = match crate::storage::Location::open(&path, false, false, None) {
        Ok(folder) => folder.list("").await.is_ok_and(|files| !files.is_empty()),
        Err(_) => false,
    };
    if format != format_before && holds_rows {
        return Err(Error::Usage(format!(
            "`late_rows` is `format: {}` here, but the late rows of earlier batches in {path} \
             are {}: a folder of two formats reads as neither (a reader of one misses the \
             other's rows). Put `format: {}` back; or give `late_rows` a new, empty `path` \
             (the earlier late rows stay where they are)",
            format.as_str(),
            format_before.as_str(),
            format_before.as_str()
        )));
    }
    Ok(())
}

/// `error` of the late-rows sink of source `source`, said as that sink's, with its key
/// (`late_rows.path`, not the sink's).
pub fn late_rows_error(source: &str, error: &crate::sink::SinkError) -> Error {
    Error::Usage(format!(
        "`late_rows` (the late rows of source `{source}`): {}",
        error
            .to_string()
            .replace("`sink.path`", "`late_rows.path`")
            .replace("`sink.table`", "`late_rows.table`")
    ))
}

/// Whether a run taken over before its first batch leaves the checkpoint to the newer run
/// (exit 75) rather than fails: a `--skip-if-running` run that does not wait for input (one
/// of `every` may have been taken over any time later: fenced, as usual).
fn leaves_to_newer(options: &RunOptions, trigger: Trigger) -> bool {
    options.skip_if_running && !matches!(trigger, Trigger::Every(_))
}

/// How the PostgreSQL sink says a column is of a type it cannot take, and the edits of the
/// query it then advises.
const PG_CANNOT_TAKE: &str = "which PostgreSQL cannot take";
const PG_QUERY_ADVICE: [&str; 3] = [
    ": write its fields as columns",
    ": make rows of its items",
    "; cast it in the query",
];

/// `error` of a late-rows sink with advice that reaches late rows: a column PostgreSQL cannot
/// take is advised an edit of the query, which late rows never pass through (audit 90b).
fn late_row_advice(error: crate::sink::SinkError) -> crate::sink::SinkError {
    use crate::sink::SinkError;
    match error {
        SinkError::Connector { kind, error } if error.to_string().contains(PG_CANNOT_TAKE) => {
            let said = error.to_string();
            let cut = PG_QUERY_ADVICE
                .iter()
                .filter_map(|advice| said.find(advice))
                .min()
                .unwrap_or(said.len());
            SinkError::Connector {
                kind,
                error: format!(
                    "{}: late rows are written as the source read them, which no edit of the \
                     query reaches; declare the column as another type in the source's \
                     `schema:` (a JSON source reads a nested value into a `string` column as \
                     its JSON text), or give `late_rows` a files sink, which keeps it as it is",
                    &said[..cut]
                )
                .into(),
            }
        }
        other => other,
    }
}

/// `error` of the late-rows sink of source `source`: a mistake of the pipeline file (a folder
/// or table of another pipeline, a setting that does not fit) said with the late-rows sink's
/// key ([`late_rows_error`]); any other (a server down) as it is, a failure (exit 1).
fn late_rows_failure(source: &str, error: crate::sink::SinkError) -> Error {
    use crate::sink::SinkError;
    match error {
        e @ (SinkError::Foreign { .. }
        | SinkError::ForeignFolder { .. }
        | SinkError::Config { .. }) => late_rows_error(source, &late_row_advice(e)),
        // A value finer than the late-rows sink keeps: its advice is an edit of the query,
        // which late rows, written as the source gave them, never pass through (walk 53).
        SinkError::RowRefused { kind, reason } if reason.contains(" finer than ") => {
            SinkError::RowRefused {
                kind,
                reason: format!(
                    "{reason}. This is a late row of source `{source}`, written to `late_rows` \
                     as the source read it, which no edit of the query reaches: declare the \
                     column in the source's `schema:` to the unit the sink keeps (a timestamp \
                     as `timestamp(6)`: a finer value is then a malformed row, skipped and \
                     counted under `on_error: skip`), or give `late_rows` a sink that keeps it \
                     (a files sink)"
                ),
            }
            .into()
        }
        other => other.into(),
    }
}

/// What to do when a late-rows folder lost its `_sluice/` records (see
/// [`late_rows_without_records`]); `last` is the newest committed batch.
pub fn late_rows_lost_records(folder: &str, kept: usize, last: BatchId) -> String {
    format!(
        "the late-rows folder {folder} still holds {kept} data file(s) of committed batches (up \
         to batch {last}), but its `_sluice/` records of them are gone (deleted or moved), and \
         they cannot be rebuilt from the files. Put `{folder}/_sluice/` back; or move the data \
         files out of {folder} (they are rows your query never saw, and stay readable where they \
         go) and run again: the late-rows sink starts its records anew with the next batch"
    )
}

/// Whether every source of `pipeline` logged the input of `batch` (`sources/<name>/<batch>`),
/// so that planning it again reads the same input. A source that keeps its range only in
/// `offsets/N` (Kafka, NATS, `rate`), or a files source that found no new file then, would
/// plan it anew over what has come since: the sink's copy of the batch would not hold that.
async fn logged_by_every_source(
    pipeline: &Pipeline,
    location: &Location,
    batch: BatchId,
) -> Result<bool, Error> {
    for name in pipeline.sources.keys() {
        let entry = format!("{}/{}", crate::checkpoint::paths::source_dir(name), batch.0);
        if !location.exists(&location.path(&entry)).await? {
            return Ok(false);
        }
    }
    Ok(!pipeline.sources.is_empty())
}

/// What stops a run over a sink that keeps each batch's records and holds none of the
/// batches up to `last` that checkpoint `id` committed to it (a sink of `kind` at `path`, as
/// its record names them): its folder moved, emptied or deleted. Said by the run, and by
/// `inspect` as what stops it.
pub(crate) fn sink_holds_none(
    pipeline: &Pipeline,
    (kind, path): (&str, &str),
    id: uuid::Uuid,
    last: BatchId,
) -> String {
    let kept = (kind == "files")
        .then(|| crate::sink::data_without_records(path))
        .flatten()
        .map(|n| {
            format!(
                " (the folder still holds {n} data file(s) of those batches, but not its \
                 `_sluice/` records of them, which cannot be rebuilt: after starting over, \
                 remove the old files, or read them apart)"
            )
        })
        .unwrap_or_default();
    let connector = pipeline.sink.connector();
    let (records, fresh) = connector.lost_records();
    let restore = connector
        .restore_records(id, last)
        .map(|how| format!(" ({how})"))
        .unwrap_or_default();
    format!(
        "the sink {path} holds none of the batches this checkpoint committed to it (the last \
         is batch {last}): {records}. Put it back where it was{restore}; or, to go on from \
         batch {next} without them, give the sink {fresh} (this checkpoint carries on there; \
         what the batches up to {last} wrote stays where it went); or, to start this pipeline \
         over, run it on a new checkpoint with {fresh}{kept}",
        next = last.0 + 1,
    )
}

/// Why no run of `pipeline` goes on from the checkpoint at `location` (pipeline `id`, its logs
/// `logs`) whose sink (`sink_path`, as its record names it) holds batch `held_last`, past any
/// this checkpoint planned: the checkpoint is older than its sink (restored from an older
/// copy, or a copy of it ran on), and its next batches would be planned anew under numbers the
/// sink takes as done. `None` where the sink holds no such batch (the batch after the newest,
/// planned again from the input every source logged, is the batch the sink holds). Said by a
/// run before a batch, and by `inspect` (walk 118: it showed such a checkpoint as healthy).
///
/// Errors: the store's, reading the sources' logs.
pub(crate) async fn sink_outran(
    pipeline: &Pipeline,
    location: &Location,
    id: uuid::Uuid,
    logs: &LogListing,
    sink_path: &str,
    held_last: BatchId,
) -> Result<Option<String>, Error> {
    let newest = logs.offsets.last().max(logs.commits.last());
    if newest.is_some_and(|planned| held_last <= *planned)
        || (newest.is_some_and(|planned| held_last == planned.next())
            && logged_by_every_source(pipeline, location, held_last).await?)
    {
        return Ok(None);
    }
    let plans = newest.map_or("has no batch".to_string(), |b| {
        format!("goes up to batch {b} (its next is {})", b.next())
    });
    let by_hand = pipeline
        .sink
        .connector()
        .take_out_by_hand(
            id,
            newest.copied(),
            held_last,
            pipeline.output_mode != OutputMode::Append,
        )
        .map(|how| {
            format!("; or, to keep this one, take the sink's batches after it out by hand ({how})")
        })
        .unwrap_or_default();
    // The batch after the newest, whose offsets entry was lost (`sluice repair` moved a
    // damaged one aside) where its input is logged by no source: a rewind to the newest takes
    // it back from the sink (audit 86).
    let moved_aside = match newest {
        Some(planned) if logs.commits.last() == Some(planned) => {
            crate::checkpoint::offsets_moved_aside(location, planned.next()).await
        }
        _ => false,
    };
    let rewind = newest
        .filter(|planned| moved_aside && held_last == planned.next())
        .map(|planned| {
            format!(
                ". Where this checkpoint planned batch {held_last} and lost its offsets entry \
                 (`sluice repair` moved a damaged one aside), take it back from the sink: \
                 `sluice rewind {} --to {planned}`",
                crate::vocab::shell_word(&location.to_string())
            )
        })
        .unwrap_or_default();
    Ok(Some(format!(
        "the sink {sink_path} holds batch {held_last}, but this checkpoint {plans}: the \
         checkpoint is older than its sink (restored from an older copy, or a copy of it ran \
         on), and its next batches would be planned anew under numbers the sink takes as done, \
         leaving their rows out. Put back the checkpoint that wrote batch \
         {held_last}{by_hand}; or start over on a new checkpoint{start_over}{rewind}",
        held_last = held_last.0,
        start_over = sink_advice(pipeline).start_over,
    )))
}

/// Refuses to run `pipeline` on a checkpoint whose batches it cannot carry on from exactly: a
/// renamed source (it would start again from its beginning, reading again what the old name
/// read), or another file format into the same sink folder (its files would no longer read
/// as one table, unless `allow_output_schema_change`). `previous` is the sink record of the
/// last run. (Another output mode over kept state is refused once the query is planned, by
/// `Driver::check_output_mode`.)
async fn check_continuity(
    pipeline: &Pipeline,
    location: &Location,
    logs: &LogListing,
    previous: Option<&crate::checkpoint::SinkRecord>,
    rebuilt: bool,
) -> Result<(), Error> {
    let Some(&newest) = logs.offsets.last() else {
        return Ok(());
    };
    let start_over = sink_advice(pipeline).start_over;
    let refuse = |what: String| {
        Error::Usage(format!(
            "{what}. Put it back as it was, or start over on a new checkpoint (`checkpoint:` \
             or `--checkpoint`){start_over}"
        ))
    };
    if let Ok(Some(entry)) = crate::checkpoint::read_offsets(location, newest).await {
        let logged: Vec<&str> = entry.sources.iter().map(|s| s.source.as_str()).collect();
        let ours: Vec<&str> = pipeline.sources.keys().map(String::as_str).collect();
        let gone: Vec<&str> = logged
            .iter()
            .copied()
            .filter(|s| !ours.contains(s))
            .collect();
        let new: Vec<&str> = ours
            .iter()
            .copied()
            .filter(|s| !logged.contains(s))
            .collect();
        // A source added starts at its beginning and one removed is dropped (docs/design.md
        // §1.6); both at once is a rename, whose input would be read again.
        if !gone.is_empty() && !new.is_empty() {
            let list = |names: &[&str]| {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(refuse(format!(
                "the checkpoint's newest batch ({newest}) read the sources {}; this pipeline \
                 has {} instead of {}: a renamed source starts from its beginning, reading again \
                 what {} read (a source dropped in a run that logged no batch is still among \
                 the newest batch's)",
                list(&logged),
                list(&new),
                list(&gone),
                list(&gone)
            )));
        }
        // A source that reads another folder now: its log knows files by their paths under
        // the folder, so a file there named like one read before is taken as read. Its
        // relative paths as the batches resolved them: against the folder they ran in where
        // the checkpoint is still there (walk 73: a run from another folder with
        // `--checkpoint` read that folder's `in/` without a word).
        if let Some(fingerprint) = &entry.info.pipeline
            && let Ok(Some(then)) =
                stored_pipeline(location, &location.to_string(), fingerprint).await
        {
            for (name, config) in &pipeline.sources {
                // A files source's folder is read in one format for the life of a
                // checkpoint: its schema was pinned from the files read so far, and files
                // not read yet were written in that format too.
                let format = |c: &crate::pipeline::SourceConfig| {
                    (c.kind == "files")
                        .then(|| c.settings.get("format").and_then(|v| v.as_str()))
                        .flatten()
                        .map(str::to_string)
                };
                if let (Some(now), Some(Some(was))) = (
                    format(config),
                    then.sources
                        .get(name)
                        .filter(|_| logged.contains(&name.as_str()))
                        .map(format),
                ) && now != was
                {
                    return Err(refuse(format!(
                        "source `{name}` reads `format: {now}` now, but the checkpoint's \
                         batches read its files as `format: {was}` (its schema is pinned from \
                         them, and a file is read in one format for the life of a checkpoint). \
                         To read files of another format, give them another folder and a \
                         source of another name (it starts at its beginning)"
                    )));
                }
                // Where a stream starts applies to a checkpoint's first batch only (Spark's
                // `startingOffsets`): an edit after it changes nothing, which is said.
                if let Some(before) = then
                    .sources
                    .get(name)
                    .filter(|_| logged.contains(&name.as_str()))
                {
                    for key in [
                        "starting_offsets",
                        "starting_timestamp",
                        "starting_sequence",
                    ] {
                        if config.settings.get(key) != before.settings.get(key) {
                            tracing::warn!(
                                "source `{name}`: `{key}` changed since the checkpoint's batches \
                                 ran; it applies to a checkpoint's first batch only (as Spark's \
                                 `startingOffsets`), so this run goes on from where the last \
                                 batch ended. To start from the new position, run on a new \
                                 checkpoint{}",
                                sink_advice(pipeline).start_over
                            );
                        }
                    }
                    // The topics a Kafka source reads (walk 113: a topic swapped for its copy
                    // under a kept state counted every record twice, unsaid).
                    let topics = |c: &crate::pipeline::SourceConfig| {
                        // (A pattern said as one: `topic_pattern: a` is not `topics: [a]`.)
                        let mut named: Vec<String> = ["topics", "topic_pattern"]
                            .iter()
                            .filter_map(|key| Some((*key, c.settings.get(*key)?)))
                            .flat_map(|(key, v)| {
                                let said = move |t: &str| match key {
                                    "topic_pattern" => format!("pattern {t}"),
                                    _ => t.to_string(),
                                };
                                match v {
                                    serde_yaml::Value::Sequence(items) => items
                                        .iter()
                                        .filter_map(|i| i.as_str().map(said))
                                        .collect::<Vec<_>>(),
                                    other => other.as_str().map(said).into_iter().collect(),
                                }
                            })
                            .collect();
                        named.sort();
                        named
                    };
                    let (was, now) = (topics(before), topics(config));
                    if config.kind == "kafka" && was != now {
                        tracing::warn!(
                            "source `{name}` reads topics {} now, where the checkpoint's \
                             batches read {}: a topic added is read from its first offset into \
                             the same output{} (`starting_offsets` applies to a checkpoint's \
                             first batch only), and one left out is read no more (Spark calls \
                             such a change's results unpredictable). \
                             Where an added topic holds records read before (a copy, a pipeline \
                             upstream started over), they count twice: start over on a new \
                             checkpoint{}",
                            now.join(", "),
                            was.join(", "),
                            if pipeline.output_mode == OutputMode::Append {
                                ""
                            } else {
                                " and state"
                            },
                            sink_advice(pipeline).start_over
                        );
                    }
                }
                let shown = |folder: String| crate::secret::redact_url(&resolved_folder(folder));
                let now = config.connector().location().map(shown);
                let was = then
                    .sources
                    .get(name)
                    .and_then(|c| c.connector().location())
                    .map(shown);
                // (A `/` more or less at the end is the same place: walk 110.)
                if let (Some(now), Some(was)) = (now, was)
                    && now != was
                    && crate::pipeline::overlap(&now, &was) != Some("is the same location as")
                {
                    // A folder around or inside the one read (audit 90c: widened from
                    // `in/sub` to `in`, every file read before was read again under its new
                    // path, exit 0): no move, and no path under it is a path read before.
                    let resolved = |c: &crate::pipeline::SourceConfig| {
                        c.connector().location().map(resolved_folder)
                    };
                    if let (Some(now_at), Some(was_at)) =
                        (resolved(config), then.sources.get(name).and_then(resolved))
                        && let Some(how @ ("is inside" | "holds")) =
                            crate::pipeline::overlap(&now_at, &was_at)
                    {
                        return Err(Error::Usage(format!(
                            "source `{name}` reads {now} now, which {how} {was}, the folder \
                             the checkpoint's batches read: a file is known by its path under \
                             the source's folder, so the files read before would be taken for \
                             new ones under their paths from {now}, and read again (Spark keeps \
                             whole paths). Give `path:` as it was ({was}), and read the rest as \
                             a source of another name (it starts at its beginning); or start \
                             over on a new checkpoint (`checkpoint:` or `--checkpoint`){}",
                            sink_advice(pipeline).start_over
                        )));
                    }
                    // Another file of a name read before is no move (a move keeps a file's
                    // size): reading on would take it as read, its rows never read (walk 78:
                    // a copied pipeline kept `name:` and `checkpoint:`, and read another
                    // team's folder of same-named files as read, with exit 0).
                    let other = config
                        .connector()
                        .other_files_named_as_read(name, location)
                        .await?;
                    if !other.is_empty() {
                        const SHOWN: usize = 5;
                        let more = other.len().saturating_sub(SHOWN);
                        let mut list = other[..other.len().min(SHOWN)].join(", ");
                        if more > 0 {
                            list.push_str(&format!(" and {more} more"));
                        }
                        return Err(Error::Usage(format!(
                            "source `{name}` reads {now} now, but the checkpoint's batches read \
                             {was}; files there are named like files those batches read but \
                             are other files, of another size: {list}. A file is known by its \
                             path under the source's folder, so these would be taken as read \
                             and their rows never read. If {now} holds other input than {was}, \
                             start over on a new checkpoint (`checkpoint:` or `--checkpoint`)\
                             {}, or read it as a source of another name (it starts at its \
                             beginning); else have it read {was} again (its `path:` as it \
                             was, in a run from the folder the batches ran in)",
                            sink_advice(pipeline).start_over
                        )));
                    }
                    tracing::warn!(
                        "source `{name}` moved: earlier batches read {was}, this run reads {now}; \
                         a file there named like one read before (by its path under the folder) \
                         is taken as read, not read again. If {now} holds other input, not {was} \
                         moved, start over on a new checkpoint{}",
                        sink_advice(pipeline).start_over
                    );
                }
            }
        }
    }
    let Some(previous) = previous else {
        return Ok(());
    };
    let format = pipeline
        .sink
        .connector()
        .format()
        .map(|f| f.as_str().to_string());
    // The place's own record: the last run's, or that of a place earlier batches went to and
    // the sink comes back to (walk 73: out, then out2, then out in another format).
    let (kind, path) = (
        pipeline.sink.connector().kind(),
        pipeline.sink.connector().location(),
    );
    let rebuilt = rebuilt && previous.is_at(kind, &path);
    if let Some(previous) = previous.of_place(kind, &path)
        && (previous.output_schema.is_some() || rebuilt)
        && previous.format.is_some()
        && previous.format != format
        && pipeline.output_mode != OutputMode::Complete
        && !pipeline.allow_output_schema_change
    {
        // A new folder takes the new format with the checkpoint as it is (the sink record
        // follows the move); starting over is not needed.
        return Err(Error::Usage(format!(
            "the sink writes `format: {}` into {}, which holds batches in {}: its files would \
             no longer read as one table. Put `format: {}` back; or give the sink a new, empty \
             `sink.path` for the new format (this checkpoint goes on from its last batch, and \
             earlier batches stay where they are); or set `allow_output_schema_change: true` \
             to write them into this folder anyway",
            format.unwrap_or_default(),
            previous.path.as_deref().unwrap_or_default(),
            previous.format.clone().unwrap_or_default(),
            previous.format.clone().unwrap_or_default(),
        )));
    }
    Ok(())
}

/// The local folder `spec` names: a path, or a `file://` URL's path where it is written
/// plainly (one with `%` escapes is left out: its folder is not the text's).
fn local_folder(spec: &str) -> Option<std::path::PathBuf> {
    match spec.strip_prefix("file://") {
        Some(path) if !path.contains('%') => Some(std::path::PathBuf::from(path)),
        _ if spec.contains("://") => None,
        _ => Some(std::path::PathBuf::from(spec)),
    }
}

/// The local folders a run of `pipeline` would make, when its checkpoint is a local folder
/// (or a plainly written `file://` URL) not there yet: the checkpoint first, then the sink's
/// and the late-rows sink's folders that are not there either. Only plain paths without `..`
/// count (a path through `..` may reach, once its missing parents are made, a folder that was
/// there), as absolute paths, each with the topmost folder above it that is not there either
/// (the run makes it too). Empty when the checkpoint is there, or is not such a path.
fn new_local_folders(
    pipeline: &Pipeline,
    checkpoint_spec: &str,
) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let plain = |l: &str| {
        let path = std::path::Path::new(l);
        let plain = !l.contains("://")
            && !l.is_empty()
            && path
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        plain
            .then(|| std::path::absolute(path).ok())
            .flatten()
            .filter(|p| !p.exists() && p.symlink_metadata().is_err())
            .map(|leaf| {
                // The topmost folder above it that is not there either.
                let mut top = leaf.clone();
                while let Some(parent) = top.parent()
                    && !parent.as_os_str().is_empty()
                    && parent.symlink_metadata().is_err()
                {
                    top = parent.to_path_buf();
                }
                (leaf, top)
            })
    };
    let Some(checkpoint) = local_folder(checkpoint_spec)
        .and_then(|folder| folder.to_str().map(str::to_string))
        .and_then(|folder| plain(&folder))
    else {
        return Vec::new();
    };
    let mut made = vec![checkpoint];
    let sinks = [
        pipeline.sink.connector().location(),
        pipeline
            .late_rows
            .as_ref()
            .and_then(|late| late.connector().location()),
    ];
    made.extend(sinks.iter().flatten().filter_map(|l| plain(l)));
    made
}

async fn run_from(
    pipeline: &Pipeline,
    options: RunOptions,
    checkpoint_spec: String,
) -> Result<RunSummary, Error> {
    let mut summary = RunSummary::default();
    if let Some((batch, planned, planned_file)) =
        planned_with_other_pipeline(pipeline, &checkpoint_spec, &options).await?
    {
        let pending_options = RunOptions {
            checkpoint: Some(checkpoint_spec.clone()),
            ..options.clone()
        };
        // What opening or running the batch itself hit (its sink, its input, its query) is the
        // edit's business; a checkpoint or store error is reported as it is.
        let finished = match Driver::open(&planned, pending_options).await {
            Ok(driver) => driver.finish_pending().await,
            Err(e) => Err(e),
        };
        summary = finished.map_err(|source| match source {
            Error::Checkpoint(_) | Error::Storage(_) => source,
            // The file the batch was planned with opened its sink and sources when the batch
            // was planned: a configuration error now comes from the environment (a `${VAR}`
            // unset), which taking the batch back would not change.
            source @ (Error::Sink(crate::sink::SinkError::Config { .. })
            | Error::Source(crate::source::SourceError::Config { .. }))
                if source.to_string().contains("environment variable") =>
            {
                Error::Pending {
                    batch,
                    planned: planned_file,
                    advice: format!(
                        "set what it names (the environment the file refers to) and run again: \
                     batch {batch} then finishes as planned (taking it back would not help: \
                     the file it was planned with names the same setting)"
                    ),
                    source: Box::new(source),
                }
            }
            source => Error::Pending {
                batch,
                planned: planned_file,
                advice: format!(
                    "to plan batch {batch} again with the edited file, {}",
                    take_back(batch, planned.output_mode, &checkpoint_spec)
                ),
                // The source's advice for records gone, where the edited file follows it
                // already, is not repeated.
                source: Box::new(reworded_data_loss(source, pipeline).0),
            },
        })?;
    }
    let rest = Driver::open(pipeline, options).await?.run().await?;
    Ok(RunSummary {
        batches: summary.batches + rest.batches,
        recovered: summary.recovered.or(rest.recovered),
        rows_in: summary.rows_in + rest.rows_in,
        rows_out: summary.rows_out + rest.rows_out,
        open_windows: rest.open_windows.or(summary.open_windows),
    })
}

/// How pending batch `batch` of a checkpoint (`checkpoint_spec`) in `mode` is taken back so
/// that it is planned again with an edited pipeline file, as words after "to plan it again,".
fn take_back(batch: BatchId, mode: OutputMode, checkpoint_spec: &str) -> String {
    let checkpoint_spec_sh = crate::vocab::shell_word(checkpoint_spec);
    match batch.prev() {
        // A pending batch that the sink has not taken comes back in complete mode too (only
        // a table already published cannot be taken back: `rewind` says so where it is).
        Some(last) if mode == OutputMode::Complete => format!(
            "take it back first: `sluice rewind {checkpoint_spec_sh} --to {last}` (in complete \
             mode a batch comes back while its sink has not taken it)"
        ),
        Some(last) => {
            format!("take it back first: `sluice rewind {checkpoint_spec_sh} --to {last}`")
        }
        None => format!(
            "start over on a new checkpoint (no batch was committed): remove {checkpoint_spec}, \
             or set another `checkpoint:`"
        ),
    }
}

/// `error`, where it is batch input that does not decode (a row `on_error: skip` would skip, a
/// file that does not fit the declared schema), with how an edit of the pipeline file comes to
/// apply to the batch: it stays planned with the file it has. Other errors, and a checkpoint
/// without a pending batch, as they are.
async fn with_edit_advice(error: Error, pipeline: &Pipeline, checkpoint_spec: &str) -> Error {
    let (error, data_loss) = reworded_data_loss(error, pipeline);
    let change = match &error {
        _ if let Some(change) = data_loss => change,
        Error::Source(crate::source::SourceError::Malformed { reason, .. })
            if reason.contains(crate::source::QUOTE_GOES_ON) =>
        {
            ESCAPE_APPLIES
        }
        // A line of a file, or a Kafka record or NATS message (named `source ...`).
        Error::Source(crate::source::SourceError::Malformed { line: Some(_), .. }) => {
            "to plan it again with an edited pipeline file (`on_error: skip`, say)"
        }
        Error::Source(crate::source::SourceError::Malformed { file, .. })
            if file.starts_with("source `") =>
        {
            "to plan it again with an edited pipeline file (`on_error: skip`, say)"
        }
        // The whole file does not read (compressed without its extension, not UTF-8): it
        // is put right under another name, which the batch does not list.
        Error::Source(crate::source::SourceError::Malformed { line: None, .. }) => {
            "to plan it again without the file as it is (put right under a new name, the old \
             one moved aside: a name starting with `.` or `_` is not read)"
        }
        Error::Source(crate::source::SourceError::SchemaMismatch { .. }) => {
            "to plan it again with a schema that fits, or without the file (moved aside: a name \
             starting with `.` or `_` is not read)"
        }
        // The query failed on the batch's rows (a cast or a sum that does not fit): it fails
        // the same way each time the batch runs. (A batch out of memory says what to raise,
        // which applies to the batch as it is.)
        Error::Execution {
            batch: Some(_),
            source,
            ..
        } if query_fails_on_rows(source) => "to plan it again with an edited query",
        Error::State(crate::state::StateError::Compute { reason, .. })
            if reason.contains(" overflow in `") || reason.contains("Arithmetic overflow") =>
        {
            "to plan it again with an edited query"
        }
        // The sink's server refuses a row of the batch each time it is written.
        Error::Sink(crate::sink::SinkError::RowRefused { .. }) => {
            "to plan it again with an edited query or sink settings (a change made on the \
             server instead, to the table or topic, applies by running again, with no rewind)"
        }
        _ => return error,
    };
    let pending = async {
        let location = Location::open(checkpoint_spec, false, false, None).ok()?;
        let logs = crate::checkpoint::LogListing::read(&location).await.ok()?;
        logs.offsets
            .last()
            .copied()
            .filter(|newest| !logs.commits.contains(newest))
    };
    // An aggregation's own sum that does not fit: the sum a wider type needs is kept in the
    // state with another type, which no rewind changes.
    let widened_sum = error.to_string().contains(" overflow in `sum(");
    match pending.await {
        Some(batch) if widened_sum && batch.prev().is_some() => Error::BadRow {
            batch,
            advice: format!(
                "the query's state keeps each sum with its type, and a rewind cannot change \
                 that type: run the query with the wider sum on a new checkpoint{} (it reads \
                 its sources from the start)",
                sink_advice(pipeline).start_over
            ),
            source: Box::new(error),
        },
        Some(batch) if change == DATA_LOSS_APPLIES || change == ESCAPE_APPLIES => Error::BadRow {
            batch,
            advice: change.to_string(),
            source: Box::new(error),
        },
        Some(batch) => Error::BadRow {
            batch,
            advice: format!(
                "{change}, {}",
                take_back(batch, pipeline.output_mode, checkpoint_spec)
            ),
            source: Box::new(error),
        },
        None => error,
    }
}

/// How `fail_on_data_loss: false` comes to apply to a batch planned with the file that did not
/// set it: at once, as how a batch runs (`same_but_for_how_it_runs`). A rewind first, as
/// before, took back the rows a sink took of the batch before its run stopped, which the
/// source could no longer give again (walk 115: 100 delivered rows lost).
const DATA_LOSS_APPLIES: &str = "`fail_on_data_loss` is the exception: set `fail_on_data_loss: \
     false` on the source, changing nothing else in the file, and run again, and the batch reads \
     on without what is gone, with no rewind (rows its sink took before a run stopped stay)";

/// How a CSV source's `escape:` comes to apply to a batch planned with the file that did not
/// set it: at once, as `fail_on_data_loss` does (`same_but_for_how_it_runs`): without it the
/// batch's files with escaped quotes fail it, and nothing of it was written.
const ESCAPE_APPLIES: &str = "`escape` applies to the planned batch: set it on the source, \
     changing nothing else in the file, and run again, with no rewind";

/// `error`, where it is records gone from a stream before the batch read them, with how the
/// edit that reads on (`fail_on_data_loss: false`) comes to apply to the planned batch; where
/// the pipeline file sets it already, without the source's advice to set it (its words come
/// from the file the batch was planned with).
fn reworded_data_loss(error: Error, pipeline: &Pipeline) -> (Error, Option<&'static str>) {
    use crate::source::{SKIP_WHAT_IS_GONE, SourceError};
    match error {
        Error::Source(SourceError::Connector {
            source_name,
            kind,
            error,
        }) if error.to_string().contains(SKIP_WHAT_IS_GONE) => {
            let set_now = pipeline.sources.get(&source_name).is_some_and(|c| {
                c.settings
                    .get("fail_on_data_loss")
                    .and_then(serde_yaml::Value::as_bool)
                    == Some(false)
            });
            let text = error.to_string();
            let (text, change) = if set_now {
                (
                    text.replace(SKIP_WHAT_IS_GONE, "").trim_end().to_string(),
                    "for the pipeline file's `fail_on_data_loss: false` to apply to it",
                )
            } else {
                (text, DATA_LOSS_APPLIES)
            };
            (
                Error::Source(SourceError::Connector {
                    source_name,
                    kind,
                    error: text.into(),
                }),
                Some(change),
            )
        }
        other => (other, None),
    }
}

/// Why a query without `GROUP BY` is refused in update mode by a keyed sink, and the mode
/// that writes it (walk 82: `key: [n]` was answered "set `key: []`", and `key: []` "set
/// `key:` to the GROUP BY columns").
const GLOBAL_AGGREGATE_IN_UPDATE: &str = "the query aggregates without GROUP BY, so its \
     result is one row with no key to write it over by, and update mode writes each changed \
     row over the row of its key: write it with `output_mode: complete`, which replaces the \
     table's one row each batch (or GROUP BY a column, and set `key:` to it)";

/// `reason`, a sink's refusal of update mode without `key:`
/// ([`crate::sink::UPDATE_KEY_MISSING`]), with the key `query` needs named where its text
/// says it ("set `key: [day, product]` (the query's GROUP BY columns ...)"); any other
/// `reason` as it is (walk 61: the refusal comes before the query is planned).
fn name_update_key(reason: String, query: &str) -> String {
    if reason.contains(crate::sink::UPDATE_KEY_MISSING) && crate::plan::is_global_aggregate(query) {
        return reason.replace(crate::sink::UPDATE_KEY_MISSING, GLOBAL_AGGREGATE_IN_UPDATE);
    }
    match crate::plan::grouping_output_names(query) {
        Some((what, names)) if reason.contains(crate::sink::UPDATE_KEY_MISSING) => reason.replace(
            crate::sink::UPDATE_KEY_MISSING,
            &format!(
                "update mode writes each changed row over the row of its key: set `key: [{}]` \
                 (the query's {what} columns, by the names its output gives them)",
                names.join(", ")
            ),
        ),
        _ => reason,
    }
}

/// Refuses an output column that holds a union (what `->` gives, the JSON functions' value of
/// any JSON type), which no sink writes: JSON lines failed at the batch with Arrow's dump of
/// the type, Parquet and PostgreSQL refused it with advice for other types (walk 126 (2)).
fn refuse_json_unions(output: &SchemaRef) -> Result<(), Error> {
    use datafusion::arrow::datatypes::DataType;
    fn holds_union(t: &DataType) -> bool {
        match t {
            DataType::Union(..) => true,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::FixedSizeList(f, _)
            | DataType::Map(f, _) => holds_union(f.data_type()),
            DataType::Struct(fields) => fields.iter().any(|f| holds_union(f.data_type())),
            DataType::Dictionary(_, v) => holds_union(v),
            _ => false,
        }
    }
    let Some(field) = output.fields().iter().find(|f| holds_union(f.data_type())) else {
        return Ok(());
    };
    Err(Error::Usage(format!(
        "the query's column `{}` holds JSON values of any type (a union: what `->` gives), \
         which no sink writes: write `->>` for the value's text (`u->>'name'`), \
         `json_get_json(u, 'name')` for its JSON text, or `json_get_int`, `json_get_float`, \
         `json_get_str`, `json_get_bool` for a value of one type",
        field.name()
    )))
}

/// The columns of `schema` as a sink record keeps them: each name with its type in Arrow's
/// words.
fn columns_of(schema: &SchemaRef) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

/// Whether two column types, as the sink record keeps them (Arrow's words), are one type:
/// the same, or the same but the names of nested fields (a list's item is `element` where
/// Parquet wrote it, `item` where the query's SQL declared it: walk 66, a declared
/// `'varchar[]'` for the inferred list was refused as a change).
fn same_type(a: &str, b: &str) -> bool {
    use datafusion::arrow::datatypes::DataType;
    a == b
        || matches!(
            (a.parse::<DataType>(), b.parse::<DataType>()),
            (Ok(a), Ok(b)) if as_written(&a).equals_datatype(&as_written(&b))
        )
}

/// `data_type` as every sink writes it, at any depth: Arrow's large and view forms of text,
/// binary and lists as their plain forms, a dictionary as its values (one Parquet, JSON or
/// table type each, which no reader tells apart: walk 97, pandas' `large_string` pinned from
/// its files and a declared `string` were refused as "string -> string").
fn as_written(
    data_type: &datafusion::arrow::datatypes::DataType,
) -> datafusion::arrow::datatypes::DataType {
    use datafusion::arrow::datatypes::{DataType as T, Field};
    let field =
        |f: &Field| std::sync::Arc::new(f.clone().with_data_type(as_written(f.data_type())));
    match data_type {
        T::LargeUtf8 | T::Utf8View => T::Utf8,
        T::LargeBinary | T::BinaryView => T::Binary,
        T::LargeList(item) | T::ListView(item) | T::LargeListView(item) => T::List(field(item)),
        T::List(item) => T::List(field(item)),
        T::Dictionary(_, values) => as_written(values),
        T::Struct(fields) => T::Struct(fields.iter().map(|f| field(f)).collect()),
        T::Map(entries, sorted) => T::Map(field(entries), *sorted),
        other => other.clone(),
    }
}

/// Whether two lists of columns (name and type, as the sink record keeps them) are the same
/// columns, in order, each of one type ([`same_type`]).
fn same_columns(a: &[(String, String)], b: &[(String, String)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((n, t), (m, u))| n == m && same_type(t, u))
}

/// What a start over on a new checkpoint needs of the pipeline's `late_rows` sink, as a
/// clause to add to the sink's own (empty without one, or to the console): the late-rows
/// sink's batches belong to the old checkpoint as much as the sink's do (it only appends; one
/// table or folder per watermarked source, named from the setting).
fn late_rows_start_over(pipeline: &Pipeline) -> &'static str {
    match pipeline
        .late_rows
        .as_ref()
        .map(|late| late.connector().kind())
    {
        None | Some("console") => "",
        Some("files" | "delta") => {
            ", and with a new, empty `late_rows.path` (the late rows written belong to the old \
             checkpoint too)"
        }
        Some(_) => {
            ", and with a new `late_rows` table or topic (the late rows written belong to the \
             old checkpoint too)"
        }
    }
}

/// `reason`, a sink's refusal, for this checkpoint: `<checkpoint>` in it is the checkpoint's
/// name (`shown`), and where it advises a new checkpoint, what that needs of the pipeline's
/// `late_rows` sink is said too (walk 58: it was a second refusal).
fn placed(reason: &str, shown: &str, pipeline: &Pipeline) -> String {
    let mut reason = reason.replace("<checkpoint>", &crate::vocab::shell_word(shown));
    let late = late_rows_start_over(pipeline);
    // The sinks' ways to start over ("to start this pipeline over, ... run it on a new
    // checkpoint"; "start over on a new checkpoint"), not a mention of one in passing.
    let starts_over = ["start this pipeline over", "start over on a new checkpoint"]
        .iter()
        .any(|words| reason.contains(words));
    if !late.is_empty() && starts_over && !reason.contains("late_rows") {
        let trimmed = reason.trim_end_matches('.').len();
        reason.truncate(trimmed);
        reason.push_str(&format!(
            ". Starting over{late}",
            late = &late[", and".len()..]
        ));
    }
    reason
}

/// What the pipeline's sink allows for the ways out of a stuck checkpoint: taking batches
/// back (a sink that keeps them, outside complete mode), and what a new start needs of it.
pub(crate) fn sink_advice(pipeline: &Pipeline) -> crate::state::SinkAdvice {
    let connector = pipeline.sink.connector();
    let complete = pipeline.output_mode == OutputMode::Complete;
    let mut start_over = connector.start_over(pipeline.output_mode != OutputMode::Append);
    start_over.push_str(late_rows_start_over(pipeline));
    crate::state::SinkAdvice {
        takes_back: !complete && connector.takes_back(pipeline.output_mode == OutputMode::Update),
        start_over,
    }
}

/// `error`, where it is damaged or incompatible state, with ways out that the pipeline's sink
/// allows (no rewind where it takes no batch back; a new start in its terms); a source's
/// message naming a new start ([`crate::source::NEW_START`]), in the sink's terms.
pub(crate) fn with_sink_advice(mut error: Error, pipeline: &Pipeline) -> Error {
    use crate::state::StateError;
    // A static table read without a `schema:` is inferred again at each start, so a table
    // re-exported with a value of another look (`07` for 7) changes a column's type under
    // the state unasked (walk 106 (5): said as a change of the query).
    if let Error::State(StateError::Incompatible { planned, .. }) = &mut error {
        let inferred: Vec<String> = pipeline
            .tables
            .iter()
            .filter(|(_, t)| t.infers_schema())
            .map(|(name, _)| format!("`tables.{name}`"))
            .collect();
        if !inferred.is_empty() && !planned.contains("is inferred again at each start") {
            planned.push_str(&format!(
                " (where the query's columns come from {}, read without a `schema:`: a table's \
                 schema is inferred again at each start, so a value of another look, `07` for \
                 7, changes a column's type; declare its `schema:` with the types the state \
                 kept)",
                inferred.join(" or ")
            ));
        }
    }
    if let Error::State(
        StateError::Missing { sink, .. }
        | StateError::Corrupt { sink, .. }
        | StateError::Incompatible { sink, .. },
    ) = &mut error
        && sink.is_none()
    {
        *sink = Some(sink_advice(pipeline));
        return error;
    }
    match error {
        // A source's words for a new start, in the sink's terms.
        Error::Source(crate::source::SourceError::Config {
            source_name,
            reason,
        }) if reason.contains(crate::source::NEW_START) => {
            Error::Source(crate::source::SourceError::Config {
                source_name,
                reason: reason.replace(
                    crate::source::NEW_START,
                    &format!("a new checkpoint{}", sink_advice(pipeline).start_over),
                ),
            })
        }
        Error::Source(crate::source::SourceError::Connector {
            source_name,
            kind,
            error,
        }) if error.to_string().contains(crate::source::NEW_START) => {
            Error::Source(crate::source::SourceError::Connector {
                source_name,
                kind,
                error: error
                    .to_string()
                    .replace(
                        crate::source::NEW_START,
                        &format!("a new checkpoint{}", sink_advice(pipeline).start_over),
                    )
                    .into(),
            })
        }
        other => other,
    }
}

/// Whether `error` is the query failing on a batch's rows, the same each time it runs: a
/// value that does not cast or overflows, a computation refused (not a disk, a store, memory
/// or a panicked task).
fn query_fails_on_rows(error: &datafusion::error::DataFusionError) -> bool {
    use datafusion::arrow::error::ArrowError;
    use datafusion::error::DataFusionError;
    match error.find_root() {
        DataFusionError::ArrowError(e, _) => matches!(
            e.as_ref(),
            ArrowError::CastError(_)
                | ArrowError::ArithmeticOverflow(_)
                | ArrowError::DivideByZero
                | ArrowError::ComputeError(_)
                | ArrowError::InvalidArgumentError(_)
                | ArrowError::ParseError(_)
        ),
        DataFusionError::Execution(message) => !message.contains("os error"),
        _ => false,
    }
}

/// The pending batch, the pipeline file it was planned with and where that file is stored,
/// when that file is not `pipeline` (read without taking the checkpoint: the run that finishes
/// the batch takes it).
async fn planned_with_other_pipeline(
    pipeline: &Pipeline,
    checkpoint_spec: &str,
    options: &RunOptions,
) -> Result<Option<(BatchId, Pipeline, String)>, Error> {
    // A checkpoint that is not there yet has no pending batch.
    let Ok(location) = Location::open(checkpoint_spec, false, false, options.store_hook.as_ref())
    else {
        return Ok(None);
    };
    // Another pipeline's checkpoint is refused when the run opens it, before any batch.
    let ours = Checkpoint::read_metadata(&location)
        .await?
        .is_some_and(|m| m.name == pipeline.name);
    if !ours {
        return Ok(None);
    }
    let Decision::Rerun { batch } = recovery::decide(&LogListing::read(&location).await?) else {
        return Ok(None);
    };
    let Some(entry) = crate::checkpoint::read_offsets(&location, batch).await? else {
        return Ok(None);
    };
    let Some(fingerprint) = entry.info.pipeline else {
        return Ok(None);
    };
    // The same file (stored with this run's folder lines, or as an older Sluice stored it).
    if fingerprint == plan::fingerprint(&pipeline.stored_text(location.local_root()))
        || fingerprint == plan::fingerprint(&pipeline.text)
    {
        return Ok(None);
    }
    // As written: a run resolves relative paths against its own folder.
    let Some(mut planned) =
        stored_pipeline_as_written(&location, checkpoint_spec, &fingerprint).await?
    else {
        return Err(CheckpointError::Inconsistent {
            location: checkpoint_spec.to_string(),
            reason: planned_pipeline_missing(&location, checkpoint_spec, batch, &fingerprint).await,
        }
        .into());
    };
    // What bounds how a batch runs, not what it writes, is the edited file's: a batch that
    // ran out of memory finishes with the memory the edit gives it, and an edit of nothing
    // else is no edit of what the batch writes. The same file stored with another folder's
    // lines (a run from another folder, a moved project) is no edit either.
    if same_but_for_how_it_runs(&planned.text, &pipeline.text)
        || crate::pipeline::without_stored_lines(&planned.text) == pipeline.text
    {
        return Ok(None);
    }
    planned.memory_limit = pipeline.memory_limit.clone();
    // The name is the checkpoint's (`sluice rename`), which the run was let in by.
    planned.name = pipeline.name.clone();
    // Where it runs is this run's (`engine`, `--engine`): its output is the same.
    planned.engine = pipeline.engine.clone();
    let shown = format!(
        "{}/{}",
        checkpoint_spec.trim_end_matches('/'),
        crate::checkpoint::paths::pipeline(&fingerprint)
    );
    // Said at every level: the user edited the file and expects the edit to apply now.
    tracing::warn!(
        "batch {batch} was planned before pipeline `{}`'s file changed: it finishes with the \
         file it was planned with ({shown}), so that it writes what it would have written; \
         the edit applies from batch {}",
        pipeline.name,
        batch.next()
    );
    Ok(Some((batch, planned, shown)))
}

/// Whether pipeline files `a` and `b` differ only in how a batch runs, not in what it writes:
/// `memory_limit`, `engine` (where it runs), `name` (how it is told apart, which `sluice
/// rename` changes), the `retry:` of the sink, the late-rows sink, a source or a table (how
/// long a server is waited for), a source's `fail_on_data_loss` (whether what is gone fails
/// the batch) and `escape` (whether a CSV file's escaped quotes do); their YAML the same
/// without those keys.
fn same_but_for_how_it_runs(a: &str, b: &str) -> bool {
    use serde_yaml::{Mapping, Value};
    let parse = |text: &str| serde_yaml::from_str::<Value>(text).ok();
    let (Some(mut a), Some(mut b)) = (parse(a), parse(b)) else {
        return false;
    };
    let (Some(a), Some(b)) = (a.as_mapping_mut(), b.as_mapping_mut()) else {
        return false;
    };
    // `escape` set where the batch had none (without it the batch's escaped quotes failed it,
    // nothing of it written); not one changed or taken out, which changes what it writes.
    let escape = |m: &Mapping, group: &Value, name: &Value| {
        m.get(group)
            .and_then(|g| g.get(name))
            .and_then(|c| c.get("escape"))
            .cloned()
    };
    if let Some(Value::Mapping(sources)) = a.get("sources") {
        let group = Value::from("sources");
        for name in sources.keys() {
            let was = escape(a, &group, name);
            if was.is_some() && was != escape(b, &group, name) {
                return false;
            }
        }
    }
    // The keys taken out of `m`, in a fixed order.
    let removed = |m: &mut Mapping| {
        let mut out: Vec<Option<Value>> = ["memory_limit", "engine", "name"]
            .map(|k| m.remove(k))
            .into();
        for connector in ["sink", "late_rows"] {
            if let Some(Value::Mapping(c)) = m.get_mut(connector) {
                out.push(c.remove("retry"));
            }
        }
        for group in ["sources", "tables"] {
            if let Some(Value::Mapping(named)) = m.get_mut(group) {
                for (name, c) in named.iter_mut() {
                    if let Value::Mapping(c) = c {
                        out.push(Some(name.clone()));
                        out.push(c.remove("retry"));
                        // Whether what is gone from a stream fails the batch or is skipped:
                        // the batch reads what is there either way (`DATA_LOSS_APPLIES`).
                        out.push(c.remove("fail_on_data_loss"));
                        // How a CSV file's escaped quotes read, where without it they fail
                        // the batch (`ESCAPE_APPLIES`).
                        out.push(c.remove("escape"));
                    }
                }
            }
        }
        out
    };
    removed(a) != removed(b) && a == b
}

/// The checkpoint's sink record rebuilt (its `sink` entry being missing or damaged, `why`)
/// from the pipeline file the newest committed batch ran with, and that file's query, whose
/// output columns stand in for the record's; `None` where no committed batch names a stored
/// pipeline file.
async fn rebuild_sink_record(
    location: &Location,
    logs: &LogListing,
    why: &str,
) -> Result<(Option<crate::checkpoint::SinkRecord>, Option<String>), Error> {
    let Some(&newest) = logs.commits.last() else {
        return Ok((None, None));
    };
    let stored = match crate::checkpoint::read_commit(location, newest).await {
        Ok(Some(commit)) => match commit.pipeline {
            Some(fingerprint) => {
                stored_pipeline_as_written(location, &location.to_string(), &fingerprint)
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        },
        _ => None,
    };
    let Some(stored) = stored else {
        tracing::warn!(
            "{why}, and the pipeline file of batch {newest} is not in the checkpoint to rebuild \
             it from: this run cannot check that the sink's format and columns stay the same"
        );
        return Ok((None, None));
    };
    tracing::warn!("{why}; rebuilt from the pipeline file batch {newest} ran with");
    let connector = stored.sink.connector();
    let record = crate::checkpoint::SinkRecord {
        kind: connector.kind().to_string(),
        path: connector.location(),
        format: connector.format().map(|f| f.as_str().to_string()),
        output_mode: stored.output_mode.as_str().to_string(),
        output_schema: None,
        earlier: Vec::new(),
    };
    Ok((Some(record), Some(stored.query.clone())))
}

/// A source's `location` as the folder it names on this machine: a relative local path
/// against this process's folder, and a local folder that exists by its canonical path (so
/// that `../a/in` from `b/` is `a/in`); a URL as it is.
fn resolved_folder(location: String) -> String {
    let path = std::path::Path::new(&location);
    if location.contains("://") {
        return location;
    }
    let absolute = match std::env::current_dir() {
        Ok(here) if path.is_relative() => here.join(path),
        _ => path.to_path_buf(),
    };
    std::fs::canonicalize(&absolute)
        .unwrap_or(absolute)
        .display()
        .to_string()
}

/// The pipeline file stored in the checkpoint at `location` (given as `spec`) under
/// `fingerprint`, if it is there, as a run reads it: relative paths against this process's
/// folder, whatever folder the file ran in.
pub async fn stored_pipeline_as_written(
    location: &Location,
    spec: &str,
    fingerprint: &str,
) -> Result<Option<Pipeline>, Error> {
    read_stored_pipeline(location, spec, fingerprint, false).await
}

/// The pipeline file the newest committed batch (of `logs`) ran with, as the checkpoint at
/// `location` (`shown` as the user named it) stores it; `None` where there is no batch or
/// its commit names none.
///
/// Errors: the store's, and a commit or stored file that does not read.
pub(crate) async fn newest_stored_pipeline(
    location: &Location,
    shown: &str,
    logs: &LogListing,
) -> Result<Option<Pipeline>, Error> {
    let Some(&newest) = logs.commits.last() else {
        return Ok(None);
    };
    let Some(fingerprint) = crate::checkpoint::read_commit(location, newest)
        .await?
        .and_then(|c| c.pipeline)
    else {
        return Ok(None);
    };
    stored_pipeline(location, shown, &fingerprint).await
}

/// The pipeline file stored in the checkpoint at `location` (given as `spec`) under
/// `fingerprint`, if it is there, as the commands that read a checkpoint (`inspect`, `state`,
/// `replay`, `rewind`, `repair`) read it: relative paths against the folder it ran in, where
/// the checkpoint is still where it was then ([`Pipeline::parse_stored`]).
pub async fn stored_pipeline(
    location: &Location,
    spec: &str,
    fingerprint: &str,
) -> Result<Option<Pipeline>, Error> {
    read_stored_pipeline(location, spec, fingerprint, true).await
}

/// [`stored_pipeline`] where `where_it_ran`, else [`stored_pipeline_as_written`].
async fn read_stored_pipeline(
    location: &Location,
    spec: &str,
    fingerprint: &str,
    where_it_ran: bool,
) -> Result<Option<Pipeline>, Error> {
    let file = crate::checkpoint::paths::pipeline(fingerprint);
    let Some(text) = crate::checkpoint::read_fingerprinted(location, &file, fingerprint).await?
    else {
        return Ok(None);
    };
    let shown = format!("{}/{file}", spec.trim_end_matches('/'));
    let shown = std::path::Path::new(&shown);
    Ok(Some(match where_it_ran {
        true => Pipeline::parse_stored(&text, shown, location.local_root())?,
        false => Pipeline::parse_copy(&text, shown)?,
    }))
}

/// Why pending batch `pending` of the checkpoint at `location` (given as `shown`) cannot run,
/// its stored pipeline file (`pipelines/<fingerprint>.yaml`) being missing or damaged, and the
/// ways on: the file it was planned with, or taking the batch back, where a rewind can (it
/// takes the batch from the sink that the batch before it names in its stored file).
pub async fn planned_pipeline_missing(
    location: &Location,
    shown: &str,
    pending: BatchId,
    fingerprint: &str,
) -> String {
    let shown_sh = crate::vocab::shell_word(shown);
    let back = match pending.prev() {
        Some(before) => {
            let stored_before = match crate::checkpoint::read_commit(location, before).await {
                Ok(Some(commit)) => match commit.pipeline {
                    Some(f) => matches!(stored_pipeline(location, shown, &f).await, Ok(Some(_))),
                    None => false,
                },
                _ => false,
            };
            if stored_before {
                format!("; or take the batch back: `sluice rewind {shown_sh} --to {before}`")
            } else {
                format!(
                    ". (Batch {before}'s stored file is gone too, so a rewind cannot find the sink \
                     to take the batch back from; restore {}/ from a backup if there is one.)",
                    crate::checkpoint::paths::PIPELINES
                )
            }
        }
        None => format!(
            "; or start over on a new checkpoint (no batch was committed): remove {shown}, or \
             set another `checkpoint:`"
        ),
    };
    format!(
        "{}, the pipeline file pending batch {pending} was planned with, is missing or damaged, \
         and nothing in the checkpoint rebuilds it (it holds the sources, query and sink the \
         batch must run with). Run that pipeline file, unedited, from the folder it ran in and \
         with the checkpoint where it was (a run stores its file under the fingerprint of its \
         text and those folders, {fingerprint}), to finish the batch{back}",
        crate::checkpoint::paths::pipeline(fingerprint)
    )
}

/// Whether this process is computing or writing a batch now (`run_batch`): a stop signal
/// lets such a batch end; outside one, a run may stop at once and lose nothing.
static IN_BATCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// See [`IN_BATCH`].
pub fn in_batch() -> bool {
    IN_BATCH.load(std::sync::atomic::Ordering::SeqCst)
}

/// Marks a batch in progress while it lives ([`in_batch`]).
struct InBatch;

impl InBatch {
    fn enter() -> Self {
        IN_BATCH.store(true, std::sync::atomic::Ordering::SeqCst);
        Self
    }
}

impl Drop for InBatch {
    fn drop(&mut self) {
        IN_BATCH.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The error of a sink that failed to take batch `batch`: a connector's failure (its server
/// refused, a table is gone) names the batch and what the next run does; any other (fenced,
/// refused by configuration) is said as it is.
/// `<checkpoint>` in a sink's advice is `checkpoint`, as the run names it.
fn sink_failure(batch: BatchId, error: SinkError, checkpoint: &str, pipeline: &Pipeline) -> Error {
    match error {
        SinkError::Connector { .. } => Error::SinkFailed {
            batch,
            source: error,
        },
        SinkError::Lost { kind, reason } => Error::Sink(SinkError::Lost {
            kind,
            reason: placed(&reason, checkpoint, pipeline),
        }),
        SinkError::Config { kind, reason } => Error::Sink(SinkError::Config {
            kind,
            reason: placed(&reason, checkpoint, pipeline),
        }),
        other => Error::Sink(other),
    }
}

/// `error` with `<checkpoint>` in a lost sink's advice as `shown` names the checkpoint (and
/// its ways to start over with the late-rows sink's); any other error as it is.
pub(crate) fn lost_placed(error: SinkError, shown: &str, pipeline: &Pipeline) -> SinkError {
    match error {
        SinkError::Lost { kind, reason } => SinkError::Lost {
            kind,
            reason: placed(&reason, shown, pipeline),
        },
        other => other,
    }
}

/// Recomputes committed batches of a checkpoint from their logged offsets and state, writing
/// nothing (`sluice replay`).
pub struct Recompute<'p> {
    engine: Engine<'p>,
    /// The input rows the batch computed last read, from every source.
    rows_in: Option<u64>,
}

impl<'p> Recompute<'p> {
    /// Opens `pipeline`'s sources and static tables over the checkpoint at `checkpoint`.
    pub async fn open(pipeline: &'p Pipeline, checkpoint: &Location) -> Result<Self, Error> {
        let mut engine = Engine::open(pipeline, checkpoint, None).await?;
        // A replay computes here, workers or not: the same output.
        engine.local_only = true;
        if let Some(source) = engine.sources.iter().find(|s| s.schema().is_none()) {
            let name = source.name();
            // A source whose log has entries was read by batches: its pinned schema is gone.
            return Err(Error::Usage(
                match crate::source::pinned_schema_lost(checkpoint, name).await? {
                    Some(lost) => lost,
                    None => format!(
                        "source `{name}` has no schema declared in the pipeline or pinned in \
                         the checkpoint (no batch has read from it)"
                    ),
                },
            ));
        }
        Ok(Self {
            engine,
            rows_in: None,
        })
    }

    /// The input rows the batch computed last ([`Self::batch`]) read, from every source;
    /// `None` before one is computed.
    pub fn rows_in(&self) -> Option<u64> {
        self.rows_in
    }

    /// The schema of `sql`'s output.
    pub async fn output_schema(&mut self, sql: &str) -> Result<SchemaRef, Error> {
        self.engine.output_schema(sql).await
    }

    /// For an aggregation `sql`: how many group keys it has, and the name the query's result
    /// gives each aggregation output (its alias: `window_start`, `cnt`), group keys first, in
    /// the order its state keeps them; `None` for a query that does not aggregate.
    pub async fn aggregate_names(
        &mut self,
        sql: &str,
    ) -> Result<Option<(usize, Vec<String>)>, Error> {
        self.engine.aggregate_names(sql).await
    }

    /// For a join of two streams `sql`: its shape (each side's streams, event times and
    /// reach); `None` for a query that joins no two streams.
    pub async fn join_shape(&mut self, sql: &str) -> Result<Option<plan::JoinShape>, Error> {
        Ok(match self.engine.plan(sql).await?.1 {
            plan::Shape::Join(join) => Some(join),
            _ => None,
        })
    }

    /// Computes batch `batch` again as `entry` logged it, starting where `previous` (the
    /// offsets entry of the batch before, if any) ended, with query `sql`; `previous_commit`
    /// (that batch's commit, where it is there) gives the event times the sources had seen,
    /// as the run had them (a source that read nothing in the batch is not taken for one
    /// that never read). Its output rows, and the rows it took as late, by source (those a
    /// `late_rows` sink takes; none without one).
    pub async fn batch(
        &mut self,
        batch: BatchId,
        entry: &OffsetsEntry,
        previous: Option<&OffsetsEntry>,
        previous_commit: Option<&crate::checkpoint::CommitEntry>,
        sql: &str,
    ) -> Result<LateAndOutput, Error> {
        let ends = previous.map(OffsetsEntry::ends).unwrap_or_default();
        let none = BTreeMap::new();
        let start = Start {
            ends: &ends,
            event_time_max_ms: previous_commit.map_or(&none, |c| &c.event_time_max_ms),
            source_active_ms: previous_commit.map_or(&none, |c| &c.source_active_ms),
            previous_timestamp_ms: previous.map(|p| p.info.batch_timestamp_ms),
        };
        let mut computed = self.engine.compute(batch, entry, &start, sql).await?;
        let output = match &computed.output {
            Output::Rows(output) => output.partitions.iter().flatten().cloned().collect(),
            Output::Plan { plan, task } => {
                datafusion::physical_plan::collect(Arc::clone(plan), Arc::clone(task))
                    .await
                    .map_err(|source| {
                        computed.scan_error().unwrap_or(Error::Execution {
                            batch: Some(batch),
                            source,
                            found: None,
                        })
                    })?
            }
        };
        computed.settle().await?;
        self.rows_in = Some(computed.rows_in);
        let mut late: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
        for (source, rows) in std::mem::take(&mut computed.late_rows) {
            late.entry(source).or_default().extend(rows);
        }
        Ok((output, late))
    }

    /// The columns of each source whose late rows a `late_rows` sink takes.
    pub fn late_row_schemas(&self) -> Vec<(String, SchemaRef)> {
        self.engine.late_row_schemas()
    }
}

/// A batch's output rows, and the rows it took as late, by source.
pub type LateAndOutput = (Vec<RecordBatch>, BTreeMap<String, Vec<RecordBatch>>);

struct Driver<'a> {
    pipeline: &'a Pipeline,
    options: RunOptions,
    trigger: Trigger,
    checkpoint: Checkpoint,
    engine: Engine<'a>,
    sink: Box<dyn Sink>,
    /// Where each watermarked source's late rows go, when the pipeline names a `late_rows` sink.
    late_sinks: BTreeMap<String, Box<dyn Sink>>,
    query_stored: bool,
    /// The fingerprint of the pipeline file, stored in the checkpoint by this run.
    pipeline_fingerprint: String,
    summary: RunSummary,
    /// When this run's previous batch started (for the rate of arrival in progress).
    last_trigger: Option<Instant>,
    /// When this run last reported progress (a batch, or none found), for the idle events.
    last_reported: Instant,
    /// When this run read its static tables (milliseconds since 1970), whether it has said that
    /// one changed since, and when it last looked.
    tables_read_ms: i64,
    tables_change_said: bool,
    tables_looked: Option<Instant>,
    /// What this run recorded of the sink in the checkpoint.
    sink_record: crate::checkpoint::SinkRecord,
    /// The query's output columns, to record with the sink once a batch has written them.
    unrecorded_output_schema: Option<Vec<(String, String)>>,
    /// The output mode the previous run recorded with the sink.
    previous_output_mode: Option<String>,
    /// That the sink moved since the last run, said once the run's checks are passed.
    sink_moved: Option<String>,
    /// The complete-mode table the newest committed batch wrote is gone: the next batch runs
    /// without new input, to write it again.
    table_gone: bool,
    /// The sink record as this run found it, where this run wrote its own: a run refused
    /// before its first batch, or failing before it began one (a sink it cannot reach), puts
    /// it back, so that the next run is checked against the sink the batches went to, and
    /// `inspect` names it, not a place no batch reached.
    sink_record_found: Option<Option<crate::checkpoint::SinkRecord>>,
    /// Whether this run began a batch (a pending one run again, or one it planned): from then
    /// on the batch's output may have reached the sink the record names.
    batch_begun: bool,
    /// Where the sink record was rebuilt (missing or damaged): the query of the newest
    /// committed batch, whose output columns are the ones the sink took.
    rebuilt_query: Option<String>,
}

/// How long a batch's phases before its commit took, and when its execution started.
struct Timings {
    plan_ms: f64,
    offsets_ms: f64,
    execute_started: Instant,
}

/// Where the previous batch left off.
struct Position {
    next: BatchId,
    ends: BTreeMap<String, serde_json::Value>,
    last_timestamp_ms: i64,
    /// The previous batch's watermark.
    watermark_ms: Option<i64>,
    /// The watermark the next batch starts with.
    next_watermark_ms: Option<i64>,
    /// The latest event time seen so far, per source with a watermark.
    event_time_max_ms: BTreeMap<String, i64>,
    /// When each source with an idle timeout last read rows.
    source_active_ms: BTreeMap<String, i64>,
}

impl<'a> Driver<'a> {
    async fn open(pipeline: &'a Pipeline, options: RunOptions) -> Result<Self, Error> {
        let hook = options.store_hook.as_ref();
        let sync = pipeline.sync;
        // Fail on a missing source folder before anything is created.
        for (name, config) in &pipeline.sources {
            config.connector().preflight(name, hook)?;
        }
        let checkpoint_spec = options
            .checkpoint
            .clone()
            .unwrap_or_else(|| pipeline.checkpoint_location());
        if options.checkpoint.is_none()
            && pipeline.checkpoint.is_none()
            && let Some(renamed) = renamed_checkpoint(&pipeline.name)
        {
            return Err(Error::Usage(format!(
                "pipeline `{name}`'s file sets no `checkpoint:`, so its checkpoint would be \
                 {checkpoint_spec}, a new one, but {renamed} is this pipeline's, renamed to \
                 `{name}` (`sluice rename`). To carry on from it, add `checkpoint: {renamed}` to \
                 the file, or move that folder to {checkpoint_spec}; to start over on a new \
                 checkpoint instead, set `checkpoint: {checkpoint_spec}`",
                name = pipeline.name,
            )));
        }
        let location = Location::open(&checkpoint_spec, true, sync, hook)?;
        let create_only = pipeline.fencing == Fencing::CreateOnly;
        if create_only {
            location.check_create_only().await?;
        }
        let checkpoint =
            Checkpoint::open_run(location, &pipeline.name, options.skip_if_running).await?;
        // The batch logs as the run starts, for the checks below.
        let logs = LogListing::read(checkpoint.location()).await?;
        // Logs that do not describe a state to go on from: the metadata another checkpoint's,
        // the newest commit another checkpoint's, a pending entry not planned after the batch
        // before it.
        let (location, id) = (checkpoint.location(), &checkpoint.metadata().id);
        let inconsistent = match crate::checkpoint::commit_id_damage(location, &logs, id).await {
            Some(CommitIdDamage::Metadata(reason)) => {
                Some(format!("its metadata is wrong: {reason}"))
            }
            Some(CommitIdDamage::ForeignCommit(batch, reason)) => Some(format!(
                "{reason}. Repair moves it aside: batch {batch} is then pending again and runs \
                 again on its logged input (a sink that took it is not written twice)"
            )),
            None => crate::checkpoint::pending_entry_damage(location, &logs).await,
        };
        if let Some(reason) = inconsistent {
            return Err(CheckpointError::Inconsistent {
                location: location.to_string(),
                reason,
            }
            .into());
        }
        let mut sink_record = crate::checkpoint::SinkRecord {
            kind: pipeline.sink.connector().kind().to_string(),
            path: pipeline.sink.connector().location(),
            format: pipeline
                .sink
                .connector()
                .format()
                .map(|f| f.as_str().to_string()),
            output_mode: pipeline.output_mode.as_str().to_string(),
            output_schema: None,
            earlier: Vec::new(),
        };
        // Each run rewrites the record; a missing or damaged one is rebuilt from the pipeline
        // file the newest committed batch ran with, so the checks below still hold.
        let (previous, rebuilt_query) =
            match Checkpoint::read_sink_record(checkpoint.location()).await {
                Ok(Some(previous)) => (Some(previous), None),
                Ok(None) => {
                    rebuild_sink_record(checkpoint.location(), &logs, "sink is missing").await?
                }
                Err(CheckpointError::Corrupt { file, reason, .. }) => {
                    rebuild_sink_record(
                        checkpoint.location(),
                        &logs,
                        &format!("{file} is damaged ({reason})"),
                    )
                    .await?
                }
                Err(e) => return Err(e.into()),
            };
        check_continuity(
            pipeline,
            checkpoint.location(),
            &logs,
            previous.as_ref(),
            rebuilt_query.is_some(),
        )
        .await?;
        let was_rebuilt = rebuilt_query.is_some();
        // The place the last batches went, by another spelling (a `/` at the end: walk 110),
        // is that place: recorded as it was, so that every check below takes it as the same.
        if let Some(previous) = &previous
            && previous.kind == sink_record.kind
            && let (Some(was), Some(now)) = (&previous.path, &sink_record.path)
            && was != now
            && crate::pipeline::overlap(was, now) == Some("is the same location as")
        {
            sink_record.path = previous.path.clone();
        }
        // Whether this run writes where the last batches went.
        let same_sink = previous
            .as_ref()
            .is_some_and(|p| (&p.kind, &p.path) == (&sink_record.kind, &sink_record.path));
        // The columns a rebuilt record stands for are those of the sink it names: a sink
        // moved since took none of them.
        let rebuilt_query = rebuilt_query.filter(|_| {
            previous
                .as_ref()
                .is_some_and(|p| (&p.kind, &p.path) == (&sink_record.kind, &sink_record.path))
        });
        // Where the newest committed batch went, as its own pipeline file says (read once).
        let last_sink = match logs.commits.last() {
            Some(&last) => last_batch_sink(checkpoint.location(), last).await,
            None => None,
        };
        // Whether the last batch went to the sink `record` names; `true` where not known (a
        // run that recorded a moved sink and then committed nothing leaves the record naming
        // a sink no batch reached).
        let last_went_to = |record: &crate::checkpoint::SinkRecord| {
            last_sink
                .as_ref()
                .is_none_or(|(kind, path, _)| (kind, path) == (&record.kind, &record.path))
        };
        // A sink that keeps batches records its columns once a batch wrote them: a record
        // without them was left by a run that wrote nothing there. Another sink's record is
        // written by every run. Which one the record's sink was, its own pipeline file says
        // (the newest committed batch's, where that batch went there).
        let previous_keeps = previous
            .as_ref()
            .and_then(|previous| {
                last_sink
                    .as_ref()
                    .filter(|(kind, path, _)| (kind, path) == (&previous.kind, &previous.path))
            })
            .map_or_else(
                || pipeline.sink.connector().keeps_batches(),
                |(_, _, keeps)| *keeps,
            );
        // Said once the run's checks are passed: a refused run moves nothing.
        let mut sink_moved = None;
        // Where the batches went: the record names the sink of the last run, which may have
        // committed nothing (and where no batch was committed, none went anywhere).
        let went_to = match (&previous, logs.commits.last()) {
            (Some(previous), Some(_)) => Some(
                last_sink
                    .as_ref()
                    .map(|(kind, path, _)| (kind.clone(), path.clone()))
                    .unwrap_or_else(|| (previous.kind.clone(), previous.path.clone())),
            ),
            _ => None,
        };
        // One place by another spelling (a `/` more or less at the end: walk 110) is no move.
        let apart = |kind: &str, path: &Option<String>| {
            kind != sink_record.kind
                || match (path, &sink_record.path) {
                    (Some(a), Some(b)) => {
                        crate::pipeline::overlap(a, b) != Some("is the same location as")
                    }
                    (a, b) => a != b,
                }
        };
        if let Some(previous) = &previous
            && (previous.output_schema.is_some() || was_rebuilt || !previous_keeps)
            && apart(&previous.kind, &previous.path)
            && let Some((went_kind, went_path)) = &went_to
            && apart(went_kind, went_path)
        {
            let shown = |kind: &str, path: &Option<String>| match path {
                Some(path) => format!("{kind} sink {path}"),
                None => format!("{kind} sink"),
            };
            // In update mode a batch writes only the groups it changed: the new place never
            // gets the others.
            let update = if pipeline.output_mode == OutputMode::Update {
                "; in update mode each batch writes only the groups it changed, so the new \
                 place gets no row of a group until it changes again: unless the old rows are \
                 there already (a table renamed to the new name before this run), move them \
                 there too (a table: rename the old one to the new name before running the \
                 moved pipeline, after dropping an empty one a run made there), or start over \
                 on a new checkpoint to write every group there"
            } else {
                ""
            };
            let rewind = if pipeline.sink.connector().keeps_batches() {
                " (`sluice rewind` takes each batch back from where it went)"
            } else {
                ""
            };
            sink_moved = Some(format!(
                "the sink moved: earlier batches went to the {}, batches from now on go to the \
                 {}{rewind}{update}. (Where both name the same place reached another way, \
                 another host name, port or proxy, nothing is to be done.)",
                shown(went_kind, went_path),
                shown(&sink_record.kind, &sink_record.path)
            ));
        }
        let previous_output_mode = previous.as_ref().map(|p| p.output_mode.clone());
        let sink_record_found = previous.clone();
        // The columns and format the sink took stay on record while the sink stays where it
        // is, until a batch writes others.
        let rebuilt = rebuilt_query.is_some();
        if let Some(previous) = previous {
            // The places earlier batches went to, this one aside: the last run's too, where
            // a batch went there and the sink has moved from it.
            let mut earlier = previous.earlier.clone();
            if !previous.is_at(&sink_record.kind, &sink_record.path)
                && previous.output_schema.is_some()
            {
                earlier.insert(
                    0,
                    crate::checkpoint::SinkRecord {
                        earlier: Vec::new(),
                        ..previous.clone()
                    },
                );
            }
            let mut seen = std::collections::HashSet::new();
            earlier.retain(|r| {
                !r.is_at(&sink_record.kind, &sink_record.path)
                    && seen.insert((r.kind.clone(), r.path.clone()))
            });
            // Back at a place earlier batches went to: held to what its files have, as a
            // sink that stayed is.
            let held = previous
                .of_place(&sink_record.kind, &sink_record.path)
                .cloned();
            if let Some(held) = held {
                let same = previous.is_at(&sink_record.kind, &sink_record.path);
                if held.output_schema.is_some() || (rebuilt && same) {
                    sink_record.format = held.format;
                    sink_record.output_mode = held.output_mode;
                }
                sink_record.output_schema = held.output_schema;
            }
            sink_record.earlier = earlier;
        }
        let stored = pipeline.stored_text(checkpoint.location().local_root());
        let pipeline_fingerprint = plan::fingerprint(&stored);
        checkpoint
            .write_pipeline(&pipeline_fingerprint, &stored)
            .await?;
        let id = checkpoint.metadata().id;
        let replace = pipeline.output_mode == OutputMode::Complete;
        // The checkpoint's absolute folder where local: a relative one would read as the
        // reader's own.
        // When the checkpoint was made tells a newer checkpoint of the pipeline, which takes
        // its table over, from an older one (`sink::retired_by`).
        let label = format!(
            "pipeline `{}` with checkpoint {}, created {}",
            pipeline.name,
            checkpoint.location().local_root().map_or_else(
                || checkpoint.location().to_string(),
                |p| p.display().to_string()
            ),
            checkpoint.metadata().created
        );
        let ctx = SinkContext {
            pipeline: id,
            label: &label,
            replace,
            update: pipeline.output_mode == OutputMode::Update,
            part: None,
            create: true,
            sync,
            hook,
        };
        // The sink's local folder where it was not there before this run made it: a refusal
        // below removes it again, so that putting the moved folder back is a plain `mv`.
        let made_sink_folder = pipeline
            .sink
            .connector()
            .location()
            .filter(|path| !path.contains("://"))
            .map(std::path::PathBuf::from)
            .filter(|root| !root.exists());
        let sink = match pipeline.sink.connector().open(&ctx) {
            Ok(sink) => sink,
            // An update-mode sink without `key:`, where the mode was changed on a checkpoint
            // whose state was kept in another: the key alone would not let it run, said at once
            // (`check_output_mode` refuses it once the key is set).
            Err(SinkError::Config { kind, reason })
                if pipeline.output_mode == OutputMode::Update
                    && reason.contains(crate::sink::UPDATE_KEY_MISSING)
                    && let Some(previous) = previous_output_mode.as_deref()
                    && previous != "update"
                    && !logs.commits.is_empty()
                    && !crate::state::StateFiles::operators(checkpoint.location())
                        .await?
                        .is_empty() =>
            {
                let reason = name_update_key(reason, &pipeline.query);
                return Err(SinkError::Config {
                    kind,
                    reason: format!(
                        "{reason}. And where the query keeps state, as it did (the \
                         checkpoint's state was kept for {previous} mode), its output mode \
                         cannot change on that state (the groups one mode has held back or \
                         already written, the other would write wrongly or never): put \
                         `output_mode: {previous}` back, or start over on a new checkpoint \
                         (`checkpoint:` or `--checkpoint`){}",
                        sink_advice(pipeline).start_over
                    ),
                }
                .into());
            }
            Err(SinkError::Config { kind, reason }) => {
                return Err(SinkError::Config {
                    kind,
                    reason: name_update_key(reason, &pipeline.query),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        pipeline
            .sink
            .connector()
            .preflight(&ctx, create_only)
            .await
            .map_err(|e| {
                let new = options.checkpoint.is_none() && logs.offsets.is_empty();
                renamed_in_its_file(pipeline, new, e)
            })?;
        if logs.offsets.is_empty() {
            pipeline.sink.connector().check_new_checkpoint(&ctx).await?;
        }
        // A sink that keeps each batch's records (a files sink's owner record and manifest)
        // holds none of them where batches were committed to it: the folder was moved, emptied
        // or deleted, and writing on into an empty one would leave a table without them. Not
        // where the last batch went elsewhere: the sink was moved in the pipeline file, and a
        // run since (with no batch to run) recorded the new place.
        if same_sink
            && pipeline.output_mode != OutputMode::Complete
            && pipeline.sink.connector().keeps_batches()
            && let Some(last) = logs.commits.last()
            && last_went_to(&sink_record)
            && sink.owner().await?.is_none()
            && sink.summary().await?.is_some_and(|held| held.entries == 0)
        {
            if let Some(root) = &made_sink_folder {
                // Only while empty: nothing of anyone's is removed.
                let _ = std::fs::remove_dir(root);
            }
            return Err(Error::Usage(sink_holds_none(
                pipeline,
                (
                    &sink_record.kind,
                    sink_record.path.as_deref().unwrap_or_default(),
                ),
                checkpoint.metadata().id,
                *last,
            )));
        }
        // A checkpoint that has committed nothing yet, over a files sink folder holding data
        // files that no `_sluice/` records name (another run's, whose records were deleted, or
        // another tool's): its batches would be written beside them under the same names, and
        // complete mode would delete them (walk 71 (7): a Spark job's `part-*` files and
        // `result.*` were deleted).
        if logs.commits.is_empty()
            && sink_record.kind == "files"
            && let Some(path) = sink_record.path.as_deref()
            && let Some(kept) = crate::sink::data_without_records_anywhere(path).await
        {
            return Err(Error::Usage(format!(
                "the sink folder {path} holds {kept} data file(s) (`part-*`, `result.*`) that no \
                 `_sluice/` records name: another run's output whose records were deleted, or \
                 files put there by hand. This checkpoint's batches would be written beside \
                 them, under the same names. Write to a new, empty `sink.path`; or move those \
                 files out of {path} and run again"
            )));
        }
        // A sink that holds a batch this checkpoint never planned has outrun it: the checkpoint
        // was restored from an older copy (or another copy ran on). Said before what the sink
        // lost of this checkpoint's batches: a newer copy's retention purges the records of
        // batches this one committed, and a rewind to write them again would take the newer
        // copy's output back (walk 69 (1)). Its next batch would be
        // planned anew under a number the sink takes as done, and its rows never written.
        // A checkpoint without a sink record (a copy made before its first run recorded one,
        // or a run killed that early) over a sink this pipeline owns is checked alike (walk
        // 123 (1): a copy holding only `metadata` ran batch 0 again into a sink that held it,
        // and the sink took it as done, its rows lost).
        let unrecorded_own =
            sink_record_found.is_none() && sink.owner().await? == Some(checkpoint.metadata().id);
        if (same_sink || unrecorded_own)
            // A damaged manifest entry is for the batch's own run to find, not this check.
            && let Ok(Some(held)) = sink.summary().await
            && let Some((held_last, ..)) = held.last
            && let Some(why) = sink_outran(
                pipeline,
                checkpoint.location(),
                checkpoint.metadata().id,
                &logs,
                sink_record.path.as_deref().unwrap_or_default(),
                held_last,
            )
            .await?
        {
            return Err(Error::Usage(why));
        }
        // A sink that lost some of the batches committed to it (a Delta table's log entry
        // deleted) says so before a batch runs past them; a complete-mode table deleted is
        // written again whole.
        let mut table_gone = false;
        if same_sink
            && let Some(last) = logs.commits.last()
            && last_went_to(&sink_record)
        {
            let shown = checkpoint.location().to_string();
            sink.check_held(*last)
                .await
                .map_err(|e| lost_placed(e, &shown, pipeline))?;
            // A batch planned and not committed, which the sink may have taken before the run
            // stopped: a sink that lost its record of the batches it took cannot tell.
            if let Some(pending) = logs.offsets.last().filter(|planned| *planned > last) {
                sink.check_pending(*last, *pending)
                    .await
                    .map_err(|e| lost_placed(e, &shown, pipeline))?;
            }
            // As a commit's purge would say it (a `retain_batches` lowered since applies from
            // the next record a sink writes).
            sink.keep_from(BatchId(
                (last.0 + 1).saturating_sub(pipeline.retain_batches.max(2)),
            ));
            if let Some(file) = sink.table_gone(*last).await? {
                tracing::warn!(
                    "{file}, the table batch {last} wrote (complete mode), is gone: batch {} \
                     writes it again whole from the state, whether or not new input has come",
                    last.next()
                );
                table_gone = true;
            }
        }
        check_late_rows_kept(pipeline, &checkpoint, &logs).await?;
        let mut late_sinks = BTreeMap::new();
        if let Some(late) = &pipeline.late_rows {
            for (name, config) in &pipeline.sources {
                if config.watermark.is_some() {
                    let ctx = SinkContext {
                        replace: false,
                        update: false,
                        part: Some(name),
                        ..ctx
                    };
                    // A late-rows folder another pipeline writes is refused before a batch,
                    // as the sink's is.
                    late.connector()
                        .preflight(&ctx, create_only)
                        .await
                        .map_err(|e| late_rows_failure(name, e))?;
                    let late_sink = late.connector().open(&ctx)?;
                    // Files of its batches deleted by hand are said, as the sink's are (walk
                    // 77: a late-rows file deleted went unnoticed).
                    if let Some(last) = logs.commits.last() {
                        let shown = checkpoint.location().to_string();
                        late_sink
                            .check_written_held(*last)
                            .await
                            .map_err(|e| lost_placed(e, &shown, pipeline))?;
                    }
                    late_sinks.insert(name.clone(), late_sink);
                }
            }
            // A late-rows folder that kept the files of committed batches but lost its records
            // of them: writing on would leave files no record names, which rewind and replay
            // never find.
            if let Some(last) = logs.commits.last()
                && let Some((folder, kept)) = late_rows_without_records(pipeline).into_iter().next()
            {
                return Err(Error::Usage(late_rows_lost_records(&folder, kept, *last)));
            }
        }
        // Static tables load after the lock, so a second run stops at once.
        let tables_read_ms = chrono::Utc::now().timestamp_millis();
        let engine = Engine::open(pipeline, checkpoint.location(), hook).await?;
        // Written once the refusals above are passed (a refused run leaves the record it
        // found). A rebuilt record is written once its columns are known
        // (`check_output_schema`): one written without them would read as whole and guard
        // nothing. Until then the next run rebuilds it again.
        let sink_record_found = if rebuilt {
            None
        } else {
            // Taken over meanwhile (its record is not written): a `--skip-if-running` run
            // leaves the checkpoint to the newer one (75), as it would a batch later.
            checkpoint
                .record_sink(&sink_record)
                .await
                .map_err(|e| match e {
                    CheckpointError::Superseded(superseded)
                        if leaves_to_newer(
                            &options,
                            options.trigger.unwrap_or(pipeline.trigger),
                        ) =>
                    {
                        crate::checkpoint::left_to_newer(&superseded)
                    }
                    other => other,
                })?;
            Some(sink_record_found)
        };
        Ok(Self {
            pipeline,
            trigger: options.trigger.unwrap_or(pipeline.trigger),
            options,
            checkpoint,
            engine,
            sink,
            late_sinks,
            query_stored: false,
            pipeline_fingerprint,
            summary: RunSummary::default(),
            last_trigger: None,
            last_reported: Instant::now(),
            tables_read_ms,
            tables_change_said: false,
            tables_looked: None,
            sink_record,
            unrecorded_output_schema: None,
            rebuilt_query,
            previous_output_mode,
            sink_moved,
            sink_record_found,
            table_gone,
            batch_begun: false,
        })
    }

    fn stopping(&self) -> bool {
        self.options
            .shutdown
            .as_ref()
            .is_some_and(|rx| *rx.borrow())
    }

    /// Waits `duration`, or less when asked to stop.
    async fn pause(&mut self, duration: std::time::Duration) {
        match self.options.shutdown.as_mut() {
            Some(rx) => {
                let _ = tokio::time::timeout(duration, rx.wait_for(|stop| *stop)).await;
            }
            None => tokio::time::sleep(duration).await,
        }
    }

    /// Finishes the pending batch, if any, and stops.
    async fn finish_pending(mut self) -> Result<RunSummary, Error> {
        match self.recover().await {
            Ok(_) => Ok(self.summary),
            Err(err) => Err(self.superseded_or(err).await),
        }
    }

    async fn run(mut self) -> Result<RunSummary, Error> {
        match self.run_batches().await {
            Ok(()) => Ok(self.summary),
            Err(err) => {
                // Refused before its first batch, or failed before it began one: the record
                // goes back to what it was (none where there was none).
                if (err.exit_code() == 2 || !self.batch_begun)
                    && self.summary.batches == 0
                    && let Some(found) = self.sink_record_found.take()
                    && found.as_ref() != Some(&self.sink_record)
                    // A run a newer one took over writes nothing more, this record included.
                    && self.checkpoint.check_fence().await.is_ok()
                {
                    let location = self.checkpoint.location();
                    let put_back = match &found {
                        Some(found) => self.checkpoint.put_sink_record(found).await,
                        None => location
                            .delete(&location.path(crate::checkpoint::paths::SINK))
                            .await
                            .map_err(Into::into),
                    };
                    if let Err(e) = put_back {
                        tracing::warn!("could not put the checkpoint's sink record back: {e}");
                    }
                }
                let err = self.superseded_or(err).await;
                // A batch left pending by a failure or a refusal: how, for `inspect` and
                // `report` to say beside it (not where a newer run took over).
                // (Bounded, as above: a note, not worth a hung store's timeout again.)
                if matches!(err.exit_code(), 1 | 2) {
                    let note = async {
                        if self.checkpoint.check_fence().await.is_ok()
                            && let Ok(logs) = LogListing::read(self.checkpoint.location()).await
                            && let Some(&pending) = logs.offsets.last()
                            && !logs.commits.contains(&pending)
                        {
                            self.checkpoint
                                .record_failure(
                                    pending,
                                    err.exit_code(),
                                    &err.shown_in(&self.checkpoint.location().to_string()),
                                )
                                .await;
                        }
                    };
                    if tokio::time::timeout(exit_note_budget(), note)
                        .await
                        .is_err()
                    {
                        tracing::debug!("the store did not answer: the failure is not recorded");
                    }
                }
                // A `--skip-if-running` run that another, started at the same moment, took
                // over before it began a batch: it leaves the checkpoint to that one (75).
                // (A run of `every` that waited for input may have been taken over any time
                // later: fenced, as usual.)
                match &err {
                    Error::Checkpoint(CheckpointError::Superseded(superseded))
                        if !self.batch_begun && leaves_to_newer(&self.options, self.trigger) =>
                    {
                        Err(crate::checkpoint::left_to_newer(superseded).into())
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// What a failed run reports: a run a newer epoch has passed can fail in any way (the
    /// newer run purges, rewrites and publishes under it), and whatever it hit, it stops
    /// because it was superseded (docs/design.md §1.5). Any other error is reported as it is.
    async fn superseded_or(&self, err: Error) -> Error {
        let fenced = |e: &CheckpointError| matches!(e, CheckpointError::Superseded(_));
        match &err {
            Error::Checkpoint(e) if fenced(e) => return err,
            Error::Sink(crate::sink::SinkError::Fenced(e)) if fenced(e) => return err,
            _ => {}
        }
        // Bounded: a store that does not answer (likely the failure's cause) would otherwise
        // hold the exit for its whole timeout again (walk 69 (3)).
        match tokio::time::timeout(exit_note_budget(), self.checkpoint.check_fence())
            .await
            .unwrap_or(Ok(()))
        {
            Err(fence @ CheckpointError::Superseded(_)) => {
                tracing::info!("a superseded run failed with: {err}");
                fence.into()
            }
            _ => err,
        }
    }

    async fn run_batches(&mut self) -> Result<(), Error> {
        if matches!(self.trigger, Trigger::AvailableNow | Trigger::Once) {
            for source in &mut self.engine.sources {
                source.freeze().await?;
            }
        }
        // Before recovery, whose pending batch would infer the schema again (and pin it).
        self.check_pinned_schemas().await?;
        let mut position = self.recover().await?;
        // The newest batch's progress, where a batch this run finished has not shown it.
        if let Some(newest) = position.next.prev()
            && self.summary.recovered != Some(newest)
        {
            for source in &mut self.engine.sources {
                if let Some(end) = position.ends.get(source.name()) {
                    // Progress for lag tools only: a server that does not answer does not
                    // hold the run back here (its first plan says so, with its retries).
                    let reported = source.report_progress(newest, end);
                    if tokio::time::timeout(std::time::Duration::from_secs(5), reported)
                        .await
                        .is_err()
                    {
                        tracing::debug!(
                            "source `{}`: showing batch {newest}'s progress timed out",
                            source.name()
                        );
                    }
                }
            }
        }
        self.say_longer_watermark_delay().await;
        // Sources without a declared or pinned schema take it from their first file. While no
        // source has one there is no input at all: wait for it. A source with no schema and no
        // file beside sources that have one would hold their input back (the query needs its
        // columns to plan), for ever if it stays empty: like Spark, require its schema.
        loop {
            let missing = self.engine.resolve_schemas().await?;
            if missing.is_empty() {
                break;
            }
            if missing.len() < self.engine.sources.len() {
                let unread: Vec<String> = missing
                    .iter()
                    .filter(|s| !plan::mentions_word(&self.pipeline.query, s))
                    .map(|s| format!("`{s}`"))
                    .collect();
                let unread = match unread.is_empty() {
                    true => String::new(),
                    false => format!(
                        "; the query does not read {}: remove it from `sources:`",
                        unread.join(", ")
                    ),
                };
                return Err(Error::Usage(format!(
                    "{}: no file to infer a schema from yet, so the query cannot be planned and \
                     the other sources' input would wait for it; declare `schema:` for {} (a \
                     source with a declared schema may stay empty){unread}",
                    missing
                        .iter()
                        .map(|s| format!("source `{s}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    missing
                        .iter()
                        .map(|s| format!("`sources.{s}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )));
            }
            match self.trigger {
                Trigger::Every(interval) if !self.stopping() => self.pause(interval).await,
                _ => {
                    // Said at the default level: under cron, a misspelled object-store prefix
                    // (which, having no folders, looks like an empty one) would go unseen.
                    let places: Vec<String> = missing
                        .iter()
                        .map(|name| {
                            let at = self
                                .pipeline
                                .sources
                                .get(name)
                                .and_then(|c| c.connector().location())
                                .map(|l| format!(" ({})", crate::secret::redact_url(&l)))
                                .unwrap_or_default();
                            format!("source `{name}`{at}")
                        })
                        .collect();
                    tracing::warn!(
                        "no input yet: {} holds no file with a value to infer its columns \
                         from, and no `schema:` is declared to plan the query without one, so \
                         nothing was done. If files are expected there, check the path (on an \
                         object store a misspelled prefix looks like an empty folder)",
                        places.join(", ")
                    );
                    return Ok(());
                }
            }
        }
        self.engine.validate_query().await?;
        self.check_state_kept().await?;
        self.check_ttl_clock().await?;
        self.engine.check_state(position.next).await?;
        self.check_output_mode().await?;
        // A sink refuses output it cannot take before the first batch (the batch itself
        // would fail there too, where this planning cannot tell).
        if let Ok(output) = self.engine.output_schema(&self.pipeline.query).await {
            refuse_json_unions(&output)?;
            // The key against the query first: a sink's own check of its table (an index on
            // the key, say) would otherwise advise building one on a key that is wrong.
            self.check_update_key(&output).await?;
            // A sink's refusal of the query's columns is a mistake in the pipeline file.
            let shown = self.checkpoint.location().to_string();
            if let Err(e) = self
                .sink
                .check_output(&output, self.pipeline.allow_output_schema_change)
                .await
            {
                // Both refusals at once: the sink's table and the checkpoint's record of the
                // columns written, each needing its own step.
                let mut said = e
                    .to_string()
                    .replace("<checkpoint>", &crate::vocab::shell_word(&shown));
                // (Its warning of a change allowed is not said: the run stops here.)
                if let Err(also) = self.check_output_schema(&output, false).await {
                    said.push_str(&format!(". Then also: {also}"));
                }
                return Err(Error::Usage(said));
            }
            self.check_output_schema(&output, true).await?;
        }
        if let Some(moved) = self.sink_moved.take() {
            tracing::warn!("{moved}");
        }
        let shown = self.checkpoint.location().to_string();
        self.sink
            .start()
            .await
            .map_err(|e| Error::Sink(lost_placed(e, &shown, self.pipeline)))?;
        // A `late_rows` sink is checked and reached now too, not when the first late row
        // comes (perhaps days later, failing that batch).
        for (source, schema) in self.engine.late_row_schemas() {
            if let Some(late) = self.late_sinks.get(&source) {
                let shown = self.checkpoint.location().to_string();
                late.check_output(&schema, self.pipeline.allow_output_schema_change)
                    .await
                    .map_err(|e| {
                        Error::Usage(
                            late_rows_error(&source, &late_row_advice(e))
                                .to_string()
                                .replace("<checkpoint>", &crate::vocab::shell_word(&shown)),
                        )
                    })?;
                late.start().await?;
            }
        }
        self.engine.probe_workers_at_start().await;
        loop {
            if self.stopping() {
                break;
            }
            let started = Instant::now();
            let admission = match self.trigger {
                Trigger::Once => Admission::Unlimited,
                _ => Admission::SourceLimits,
            };
            let ran = self.plan_and_run(&mut position, admission).await?;
            if ran {
                self.last_reported = Instant::now();
                self.say_changed_tables().await;
            }
            match self.trigger {
                Trigger::Once => break,
                Trigger::AvailableNow if !ran => break,
                Trigger::AvailableNow => {}
                Trigger::Every(interval) => {
                    if !ran && self.last_reported.elapsed() >= crate::progress::IDLE_EVERY {
                        self.report_idle(&position);
                        self.last_reported = Instant::now();
                    }
                    if let Some(rest) = interval.checked_sub(started.elapsed()) {
                        self.pause(rest).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Says once a run that a static table's files were modified since it read them at its
    /// start (by their modification times): its batches go on joining the table as it was
    /// (where Spark reads a file-backed table again each batch), until the run starts again.
    /// Looked at after a batch, every 10 s at most (a listing of each table's folder).
    async fn say_changed_tables(&mut self) {
        if self.tables_change_said
            || self.pipeline.tables.is_empty()
            || self
                .tables_looked
                .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(10))
        {
            return;
        }
        self.tables_looked = Some(Instant::now());
        let changed = tables_changed_since(self.pipeline, self.tables_read_ms).await;
        if changed.is_empty() {
            return;
        }
        self.tables_change_said = true;
        tracing::warn!(
            "the static table{} {} changed since this run read {} at its start: its batches go \
             on joining what {} held then (a table is read whole when a run starts, where Spark \
             reads a file-backed table again each batch). Stop the run and start it again to \
             read {} anew",
            if changed.len() > 1 { "s" } else { "" },
            changed.join(", "),
            if changed.len() > 1 { "them" } else { "it" },
            if changed.len() > 1 { "they" } else { "it" },
            if changed.len() > 1 { "them" } else { "it" },
        );
    }

    /// Progress's `eventTime` at watermark `watermark_ms`: Spark gives a query with a
    /// watermark `eventTime.watermark` from its first batch, the epoch until there is one.
    fn event_time_progress(&self, watermark_ms: Option<i64>) -> EventTimeProgress {
        EventTimeProgress {
            watermark: watermark_ms
                .or_else(|| (!self.pipeline.watermark_columns().is_empty()).then_some(0))
                .map(rfc3339),
        }
    }

    /// Reports a trigger that found no new input ([`crate::progress::IdleProgress`]), the
    /// sources where the last batch left them (`position`).
    fn report_idle(&self, position: &Position) {
        let sink = self.pipeline.sink.connector();
        crate::progress::IdleProgress {
            id: self.checkpoint.metadata().id,
            run_id: self.checkpoint.run_id(),
            name: self.pipeline.name.clone(),
            timestamp: rfc3339(chrono::Utc::now().timestamp_millis()),
            batch_id: position.next,
            recovered: false,
            num_input_rows: 0,
            num_output_rows: 0,
            num_skipped_rows: 0,
            num_lost_rows: 0,
            num_rows_with_unknown_fields: 0,
            num_late_rows: 0,
            num_rows_beyond_max_future: 0,
            num_input_files: 0,
            // The watermark a batch would start with now (walk 77: the previous batch's, the
            // epoch after the first), as Spark's event without data gives its current one.
            watermark: position
                .next_watermark_ms
                .or(position.watermark_ms)
                .map(rfc3339),
            ran_on_workers: false,
            input_rows_per_second: 0.0,
            processed_rows_per_second: 0.0,
            batch_duration: 0,
            duration_ms: (&PhaseDurations::default()).into(),
            sink_wrote: false,
            idle: true,
            event_time: self
                .event_time_progress(position.next_watermark_ms.or(position.watermark_ms)),
            sources: self
                .engine
                .sources
                .iter()
                .map(|source| {
                    let name = source.name();
                    let config = &self.pipeline.sources[name];
                    let at = position
                        .ends
                        .get(name)
                        .cloned()
                        .unwrap_or(serde_json::Value::Null);
                    SourceProgress {
                        description: source_description(name, config),
                        start_offset: at.clone(),
                        end_offset: at,
                        num_input_rows: 0,
                        num_skipped_rows: 0,
                        input_rows_per_second: 0.0,
                        processed_rows_per_second: 0.0,
                    }
                })
                .collect(),
            sink: SinkProgress {
                description: sink_description(sink.as_ref()),
                num_output_rows: 0,
            },
        }
        .report(self.options.progress, sink.prints_to_stdout());
    }

    /// In update mode, a sink that writes each row over the row of its key (`sink.key`) must
    /// be keyed by the aggregation's group keys as the query names them: another key keeps
    /// stale rows of a group, or merges two groups into one row. Refused before a batch.
    async fn check_update_key(&mut self, output: &SchemaRef) -> Result<(), Error> {
        if self.pipeline.output_mode != OutputMode::Update {
            return Ok(());
        }
        let Some(key) = self.pipeline.sink.connector().update_key() else {
            // A changelog (a files sink's) whose rows lack a group key cannot be folded into
            // the current table: nothing says which group a row updates. A session window's
            // rows are read by their spans (the README's way), whatever the query selects of
            // the session (walk 74: the README's own session query was warned of).
            let session = self
                .engine
                .session_key(&self.pipeline.query)
                .await
                .ok()
                .flatten();
            if let Some((groups, names)) = self
                .engine
                .aggregate_names(&self.pipeline.query)
                .await
                .ok()
                .flatten()
                && let Some(missing) = names[..groups.min(names.len())]
                    .iter()
                    .find(|g| output.index_of(g).is_err() && session.as_deref() != Some(g.as_str()))
            {
                tracing::warn!(
                    "{}: in update mode each output row is the newest of its group, but the \
                     group key `{missing}` is not a column of the query's output, so no reader \
                     of the changelog can tell which group a row updates: select every GROUP \
                     BY column",
                    self.pipeline.name
                );
            }
            return Ok(());
        };
        // A session's key (its start and end) moves as rows join it: its earlier rows would
        // stay under their old keys.
        if self.engine.groups_by_session(&self.pipeline.query).await? {
            return Err(Error::Usage(format!(
                "{}: in update mode the sink writes each row over the row of its `key`, but a \
                 session window's key (its start and end) moves as rows join the session, so \
                 the session's earlier rows would stay beside its newest: write session \
                 windows with `output_mode: append` (each session once, when the watermark \
                 closes it, as its fields: `s['start'] AS session_start, s['end'] AS \
                 session_end`), or in update mode to a sink without a `key` (files)",
                self.pipeline.name
            )));
        }
        let Some((groups, names)) = self.engine.aggregate_names(&self.pipeline.query).await? else {
            return Ok(());
        };
        let group_keys = &names[..groups.min(names.len())];
        let listed = |names: &[String]| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Where a group key is not a column of the output (projected away, or named in a way
        // this cannot follow), no key of the sink can name it.
        if let Some(missing) = group_keys.iter().find(|g| output.index_of(g).is_err()) {
            return Err(Error::Usage(format!(
                "{}: in update mode each output row is the newest of its group, and the sink \
                 writes it over the row of its `key`, but the group key `{missing}` is not a \
                 column of the query's output: select every GROUP BY column (with the name \
                 `key:` gives it)",
                self.pipeline.name
            )));
        }
        if group_keys.is_empty() && !key.is_empty() {
            return Err(Error::Usage(format!(
                "{}: `sink.key` is [{}], but {GLOBAL_AGGREGATE_IN_UPDATE}",
                self.pipeline.name,
                listed(&key),
            )));
        }
        let wanted: std::collections::BTreeSet<&String> = group_keys.iter().collect();
        let given: std::collections::BTreeSet<&String> = key.iter().collect();
        if wanted != given {
            return Err(Error::Usage(format!(
                "{}: `sink.key` is [{}], but in update mode each output row is the newest of \
                 its group ({}): the sink's key must be the GROUP BY columns, or it keeps stale \
                 rows of a group and writes two groups over one row; set `key: [{}]`",
                self.pipeline.name,
                listed(&key),
                listed(group_keys),
                group_keys.join(", ")
            )));
        }
        Ok(())
    }

    /// Refuses a files source that infers its schema where the batches so far read it with an
    /// inferred schema (the pipeline file the newest batch ran with declared none) whose
    /// pinned copy is gone: inferred again from the files there now, a column could be typed
    /// otherwise. A source whose schema the batches had declared may take to inference.
    async fn check_pinned_schemas(&self) -> Result<(), Error> {
        if !self.pipeline.sources.values().any(|c| c.infers_schema()) {
            return Ok(());
        }
        let location = self.checkpoint.location();
        let logs = LogListing::read(location).await?;
        let Some(&newest) = logs.offsets.last() else {
            return Ok(());
        };
        let Ok(Some(entry)) = crate::checkpoint::read_offsets(location, newest).await else {
            return Ok(());
        };
        let Some(fingerprint) = entry.info.pipeline else {
            return Ok(());
        };
        let Ok(Some(then)) = stored_pipeline(location, &location.to_string(), &fingerprint).await
        else {
            return Ok(());
        };
        for (name, config) in &self.pipeline.sources {
            // A source whose schema the batches had declared may take to inference.
            if !config.infers_schema() || !then.sources.get(name).is_some_and(|c| c.infers_schema())
            {
                continue;
            }
            if let Some(lost) = crate::source::pinned_schema_lost(location, name).await? {
                return Err(Error::Usage(lost));
            }
        }
        Ok(())
    }

    /// Warns where a source's watermark `delay` is longer than the one the newest committed
    /// batch ran with while a watermark is carried from it: the watermark never goes back
    /// (Spark's and Flink's do not either), so rows older than it stay late, and the longer
    /// delay holds only the watermark's next moves back.
    async fn say_longer_watermark_delay(&self) {
        let location = self.checkpoint.location();
        let Ok(logs) = LogListing::read(location).await else {
            return;
        };
        let Some(&last) = logs.commits.last() else {
            return;
        };
        let (Ok(Some(commit)), Ok(Some(entry))) = (
            self.checkpoint.read_commit(last).await,
            crate::checkpoint::read_offsets(location, last).await,
        ) else {
            return;
        };
        let (Some(watermark), Some(fingerprint)) = (commit.next_watermark_ms, entry.info.pipeline)
        else {
            return;
        };
        let Ok(Some(then)) = stored_pipeline(location, &location.to_string(), &fingerprint).await
        else {
            return;
        };
        let at = chrono::DateTime::from_timestamp_millis(watermark)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| watermark.to_string());
        for (name, config) in &self.pipeline.sources {
            let (Some(now), Some(was)) = (
                config.watermark.as_ref(),
                then.sources.get(name).and_then(|c| c.watermark.as_ref()),
            ) else {
                continue;
            };
            if now.delay > was.delay {
                tracing::warn!(
                    "source `{name}`: the watermark delay is {} now, {} when batch {last} ran; \
                     the watermark does not go back, so it stays at {at} (where the shorter \
                     delay took it) and rows older than that are still late. The longer delay \
                     holds back only its next moves; to judge every row by it, run on a new \
                     checkpoint (`checkpoint:` or `--checkpoint`){}, which reads the sources \
                     again from where their settings start",
                    humantime::format_duration(now.delay),
                    humantime::format_duration(was.delay),
                    sink_advice(self.pipeline).start_over,
                );
            }
        }
    }

    /// Refuses `state_ttl.time` changed since the newest committed batch while the state keeps
    /// its stamps: a key's stamp is on the clock it was made on (the watermark's, or the batch
    /// timestamps'), and held against the other clock every key would be let go at once or
    /// never (audit 88a: event to processing dropped every group, exit 0).
    async fn check_ttl_clock(&self) -> Result<(), Error> {
        let Some(now) = self.pipeline.state_ttl else {
            return Ok(());
        };
        let location = self.checkpoint.location();
        let logs = LogListing::read(location).await?;
        let Some(&last) = logs.commits.last() else {
            return Ok(());
        };
        let Ok(Some(commit)) = self.checkpoint.read_commit(last).await else {
            return Ok(());
        };
        // The stamps are kept beside their operator's state (not listed in the commit).
        let stamped: Vec<String> = crate::state::StateFiles::operators(location)
            .await?
            .into_iter()
            .filter(|op| op.ends_with("-ttl"))
            .collect();
        let Some(fingerprint) = commit.pipeline.as_deref() else {
            return Ok(());
        };
        if stamped.is_empty() {
            return Ok(());
        }
        let Ok(Some(then)) = stored_pipeline(location, &location.to_string(), fingerprint).await
        else {
            return Ok(());
        };
        let Some(was) = then.state_ttl else {
            return Ok(());
        };
        if was.time == now.time {
            return Ok(());
        }
        let clock = |time: crate::pipeline::TtlTime| match time {
            crate::pipeline::TtlTime::Event => "event (the watermark's clock)",
            crate::pipeline::TtlTime::Processing => "processing (the batch timestamps' clock)",
        };
        let word = |time: crate::pipeline::TtlTime| match time {
            crate::pipeline::TtlTime::Event => "event",
            crate::pipeline::TtlTime::Processing => "processing",
        };
        Err(Error::Usage(format!(
            "`state_ttl.time` is {} now, {} when batch {last} ran: the state's stamps of when \
             each key was last seen ({}) are on the old clock, and held against the new one \
             every key would be let go at once, or never. Put `time: {}` back, or start over on \
             a new checkpoint (`checkpoint:` or `--checkpoint`){}",
            clock(now.time),
            clock(was.time),
            stamped
                .iter()
                .map(|op| format!("state/{op}"))
                .collect::<Vec<_>>()
                .join(", "),
            word(was.time),
            sink_advice(self.pipeline).start_over
        )))
    }

    /// Refuses a query that keeps state over a checkpoint whose committed batches kept none,
    /// and one that keeps none over a checkpoint that holds state unless the pipeline allows
    /// its output to change (`allow_output_schema_change`): a stateless query changed
    /// into an aggregation would start its state at the next batch without the rows before
    /// (its first load finds no version to read), and an aggregation changed into a stateless
    /// query would mix rows of another meaning into the sink, leaving the state behind.
    async fn check_state_kept(&mut self) -> Result<(), Error> {
        let location = self.checkpoint.location();
        let logs = LogListing::read(location).await?;
        let Some(last) = logs.commits.last() else {
            return Ok(());
        };
        // What the newest commit records (a commit that does not read is damage, said
        // elsewhere): the state the query that wrote it kept, whatever is in `state/`.
        let Ok(Some(commit)) = self.checkpoint.read_commit(*last).await else {
            return Ok(());
        };
        let keeps = self.engine.keeps_state().await?;
        let why = match (keeps, commit.state.is_empty()) {
            (true, true) => {
                // The newest batch whose query kept state (a stateful query made stateless
                // and back, walk 127 (2)): a rewind to it computes the batches since with
                // this query, its state read on from there, in the output mode that batch's
                // state was kept for, where the file now says another (the run after the
                // rewind refuses another).
                let kept = self.newest_state_batch().await;
                let mode = match kept.as_ref().and_then(|(_, mode)| mode.as_deref()) {
                    Some(kept) if kept != self.pipeline.output_mode.as_str() => {
                        format!(", with `output_mode: {kept}` as it ran")
                    }
                    _ => String::new(),
                };
                let rewind = kept
                    .map(|(b, _)| {
                        format!(
                            "; or, to carry on from batch {b}, whose query kept state, take \
                             the batches since back, to be computed again with this query{mode}: \
                             `sluice rewind {} --to {b}`",
                            crate::vocab::shell_word(&location.to_string())
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "the query keeps state (an aggregation, a deduplication or a join of two \
                     streams), but the checkpoint's batches up to {last} were written by a \
                     query that kept none, so its state would begin at batch {} without the \
                     rows before, and its results would leave them out \
                     (`allow_output_schema_change` does not let this through: it lets a sink \
                     take other columns, not a state take rows it never saw){rewind}",
                    last.0 + 1
                )
            }
            // Asked for, the sink takes the new query's rows after theirs.
            (false, false) if self.pipeline.allow_output_schema_change => return Ok(()),
            (false, false) => format!(
                "the query keeps no state, but batch {last} was written by a query that did \
                 (its state: {}), so the sink would take rows of another meaning after \
                 theirs (to have it take them so, set `allow_output_schema_change: true`)",
                commit
                    .state
                    .iter()
                    .map(|s| format!("state/{}", s.operator))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => return Ok(()),
        };
        Err(Error::Usage(format!(
            "{why}. Put the old query back, or start over on a new checkpoint (`checkpoint:` or \
             `--checkpoint`){}",
            sink_advice(self.pipeline).start_over
        )))
    }

    /// Refuses another output mode than the previous run's where this query keeps state and
    /// the checkpoint holds some: the groups one mode has held back (append) or already
    /// written (update), the other would write wrongly or never. Complete mode after another
    /// is let through where the state holds every group seen (no window the watermark closed,
    /// no state TTL): it writes them all.
    async fn check_output_mode(&mut self) -> Result<(), Error> {
        let Some(recorded) = self.previous_output_mode.clone() else {
            return Ok(());
        };
        // The mode the state was kept in is that of the newest batch whose query kept state,
        // where its pipeline file says (walk 127 (2): an aggregation made stateless in append
        // mode, then rewound to its last batch, was refused as kept for append mode).
        if !self.engine.keeps_state().await? {
            return Ok(());
        }
        let previous = match self.newest_state_batch().await {
            Some((_, Some(mode))) => mode,
            _ => recorded,
        };
        let mode = self.pipeline.output_mode.as_str();
        if previous == mode {
            return Ok(());
        }
        let location = self.checkpoint.location();
        let operators = crate::state::StateFiles::operators(location).await?;
        if LogListing::read(location).await?.commits.is_empty() || operators.is_empty() {
            return Ok(());
        }
        // Complete mode writes every group the state holds: where it holds every group seen
        // (none closed by the watermark, none dropped by a state TTL, now or before), the
        // whole table is right from the first batch in the new mode.
        let query = self.pipeline.query.clone();
        let kept_in = previous.parse::<OutputMode>().ok();
        if mode == "complete"
            && self.pipeline.state_ttl.is_none()
            && !operators.iter().any(|o| o.ends_with("-ttl"))
            && let Some(kept_in) = kept_in
            && self.engine.keeps_every_group(&query, kept_in).await?
        {
            return Ok(());
        }
        // Why a new sink is not the way: the new mode would write only what changes from now.
        let why = match (previous.as_str(), mode) {
            ("complete", "update") => {
                " (a new sink is not enough: in update mode each batch writes only the groups \
                 it changes, so a sink started now would never get the groups that do not \
                 change again)"
            }
            _ => "",
        };
        Err(Error::Usage(format!(
            "`output_mode` is {mode} here, but the checkpoint's state was kept for {previous} \
             mode: the groups one mode has held back or already written, the other would write \
             wrongly or never{why}. Put `output_mode: {previous}` back, or start over on a new \
             checkpoint (`checkpoint:` or `--checkpoint`){}",
            sink_advice(self.pipeline).start_over
        )))
    }

    /// The newest committed batch whose query kept state, with the output mode its stored
    /// pipeline file says it ran in (`None` where that file does not say); `None` where no
    /// batch that still reads kept state.
    async fn newest_state_batch(&self) -> Option<(BatchId, Option<String>)> {
        let location = self.checkpoint.location();
        let logs = LogListing::read(location).await.ok()?;
        for batch in logs.commits.iter().rev() {
            let commit = self.checkpoint.read_commit(*batch).await.ok()??;
            if commit.state.is_empty() {
                continue;
            }
            let mode = match commit.pipeline.as_deref() {
                Some(fingerprint) => stored_pipeline(location, &location.to_string(), fingerprint)
                    .await
                    .ok()
                    .flatten()
                    .map(|then| then.output_mode.as_str().to_string()),
                None => None,
            };
            return Some((*batch, mode));
        }
        None
    }

    /// Refuses output columns other than those the sink took before (append and update modes:
    /// its batches would no longer read as one table), unless the pipeline allows the change;
    /// then records them, saying the change (where `say`; walk 111: said as taken just before
    /// the sink's refusal of it).
    async fn check_output_schema(&mut self, output: &SchemaRef, say: bool) -> Result<(), Error> {
        if !self.pipeline.sink.connector().holds_output() {
            return Ok(());
        }
        let planned = columns_of(output);
        let replaced = self.pipeline.output_mode == OutputMode::Complete;
        // A rebuilt record takes the columns the newest committed batch's query gave.
        if self.sink_record.output_schema.is_none()
            && let Some(query) = self.rebuilt_query.take()
            && let Ok(before) = self.engine.output_schema(&query).await
        {
            self.sink_record.output_schema = Some(columns_of(&before));
            self.checkpoint.record_sink(&self.sink_record).await?;
        }
        // A record made before the output's types were read after type coercion (walk 127
        // (1)) names a column the query coerces (a `UNION ALL` of `bigint` and `double`, a
        // `CASE` with such branches) in its first input's type, where the batches wrote the
        // coerced one: where the record is what the newest batch's own query reads as so,
        // it is made what that query's batches wrote, and then compared as any record is.
        if let Some(before) = &self.sink_record.output_schema
            && !same_columns(before, &planned)
            && let Some(query) = self.newest_batch_query().await
            && let Ok(as_read) = self.engine.output_schema_as_read(&query).await
            && same_columns(before, &columns_of(&as_read))
            && let Ok(written) = self.engine.output_schema(&query).await
            && !same_columns(before, &columns_of(&written))
        {
            self.sink_record.output_schema = Some(columns_of(&written));
            self.checkpoint.record_sink(&self.sink_record).await?;
        }
        if let Some(before) = &self.sink_record.output_schema
            && !same_columns(before, &planned)
            && !replaced
        {
            // Kept in Arrow's words (the record's form); said by their SQL names.
            let sql = |data_type: &str| {
                data_type
                    .parse::<datafusion::arrow::datatypes::DataType>()
                    .map(|t| crate::format::sql_type_name(&t))
                    .unwrap_or_else(|_| data_type.to_string())
            };
            let shown = |columns: &[(String, String)]| {
                columns
                    .iter()
                    .map(|(name, data_type)| format!("{name} {}", sql(data_type)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut changes = Vec::new();
            for (name, data_type) in &planned {
                match before.iter().find(|(n, _)| n == name) {
                    None => changes.push(format!("`{name}` added")),
                    // Said in Arrow's words where the SQL names are one.
                    Some((_, was)) if !same_type(was, data_type) => {
                        changes.push(match (sql(was), sql(data_type)) {
                            (a, b) if a == b => format!("`{name}` {was} -> {data_type}"),
                            (a, b) => format!("`{name}` {a} -> {b}"),
                        })
                    }
                    Some(_) => {}
                }
            }
            for (name, _) in before {
                if !planned.iter().any(|(n, _)| n == name) {
                    changes.push(format!("`{name}` removed"));
                }
            }
            if changes.is_empty() {
                changes.push("the columns' order".into());
            }
            if self.pipeline.allow_output_schema_change {
                // A files sink's folder then holds files of two schemas: a reader that takes
                // the first file's (DuckDB's plain glob) casts the rest to it, cutting 12.5 to
                // 12 where a column widened.
                let reader = if self.pipeline.sink.connector().kind() == "files" {
                    "; read the folder by column name, widening types (DuckDB: \
                     `read_parquet('out/*.parquet', union_by_name=true)`; without it DuckDB \
                     takes the first file's types and casts the rest to them, so a widened \
                     column's 12.5 reads as 12)"
                } else {
                    ""
                };
                if say {
                    tracing::warn!(
                        "the query's output changed ({}): it was ({}), it is now ({}); the sink \
                         takes the new columns from the next batch on \
                         (`allow_output_schema_change: true`){reader}",
                        changes.join(", "),
                        shown(before),
                        shown(&planned)
                    );
                }
            } else {
                return Err(self.output_schema_refusal(&changes, &shown(before), &shown(&planned)));
            }
        }
        // Recorded once a batch has written them (a run that writes nothing changes nothing).
        self.unrecorded_output_schema =
            (self.sink_record.output_schema.as_ref() != Some(&planned)).then_some(planned);
        Ok(())
    }

    /// The query text the newest committed batch ran (its `queries/` copy); `None` where
    /// there is no such batch or its copy is gone.
    async fn newest_batch_query(&self) -> Option<String> {
        let logs = LogListing::read(self.checkpoint.location()).await.ok()?;
        let last = *logs.commits.last()?;
        let entry = crate::checkpoint::read_offsets(self.checkpoint.location(), last)
            .await
            .ok()??;
        if entry.info.query_fingerprint == plan::fingerprint(&self.pipeline.query) {
            return Some(self.pipeline.query.clone());
        }
        self.checkpoint
            .read_query(&entry.info.query_fingerprint)
            .await
            .ok()
    }

    /// The refusal of a query whose output `changes` under a sink that holds batches of other
    /// columns (`before` and `now`, as said).
    fn output_schema_refusal(&self, changes: &[String], before: &str, now: &str) -> Error {
        let connector = self.pipeline.sink.connector();
        let (_, fresh) = connector.lost_records();
        let table = connector.schema_change_note();
        Error::Usage(format!(
            "the query's output changed under a sink that holds batches of other columns ({}): \
             it was ({before}), it is now ({now}); the sink's batches would no longer read as one \
             table (a topic's as one stream). Write to {fresh}, undo the change (to the query, \
             or to a source's schema or files that changed its columns' types), or set \
             `allow_output_schema_change: true` to write the new columns anyway{table}",
            changes.join(", "),
        ))
    }

    /// Reads the logs and finishes an interrupted batch, returning where to go on from.
    async fn recover(&mut self) -> Result<Position, Error> {
        let logs = self.checkpoint.list_logs().await?;
        self.checkpoint.sync_newest(&logs).await?;
        let inconsistent = |reason: String| CheckpointError::Inconsistent {
            location: self.checkpoint.location().to_string(),
            reason,
        };
        let batch = match recovery::decide(&logs) {
            Decision::Inconsistent { reason } => {
                let way_out = recovery::way_out(&logs, &self.checkpoint.location().to_string());
                return Err(inconsistent(format!("{reason}{way_out}")).into());
            }
            Decision::PlanNext { next } => {
                // The latest commit must be whole: a damaged one is named, never skipped.
                if let Some(last) = next.prev() {
                    self.checkpoint.read_commit(last).await?;
                }
                return self.position_after(next.prev()).await;
            }
            Decision::Rerun { batch } => batch,
        };
        let entry = self
            .checkpoint
            .read_offsets(batch)
            .await?
            .ok_or_else(|| inconsistent(format!("offsets/{batch} vanished")))?;
        let start = self.position_after(batch.prev()).await?;
        let sql = if entry.info.query_fingerprint == plan::fingerprint(&self.pipeline.query) {
            self.pipeline.query.clone()
        } else {
            tracing::warn!(
                "batch {batch} was planned before the query changed: it finishes with the \
                 query it was planned with; the new query applies from batch {}",
                batch.next()
            );
            self.checkpoint
                .read_query(&entry.info.query_fingerprint)
                .await?
        };
        self.engine.resolve_schemas().await?;
        self.run_batch(batch, &entry, &start, &sql, true, 0.0, 0.0)
            .await?;
        self.summary.recovered = Some(batch);
        self.position_after(Some(batch)).await
    }

    /// The position after `batch` (or the very start).
    async fn position_after(&self, batch: Option<BatchId>) -> Result<Position, Error> {
        let Some(batch) = batch else {
            return Ok(Position {
                next: BatchId(0),
                ends: BTreeMap::new(),
                last_timestamp_ms: 0,
                watermark_ms: None,
                next_watermark_ms: None,
                event_time_max_ms: BTreeMap::new(),
                source_active_ms: BTreeMap::new(),
            });
        };
        let entry = self.checkpoint.read_offsets(batch).await?.ok_or_else(|| {
            CheckpointError::Inconsistent {
                location: self.checkpoint.location().to_string(),
                reason: format!("offsets/{batch} is missing; the next batch starts where it ends"),
            }
        })?;
        let commit = self.checkpoint.read_commit(batch).await?;
        Ok(Position {
            next: batch.next(),
            ends: entry.ends(),
            last_timestamp_ms: entry.info.batch_timestamp_ms,
            watermark_ms: entry.info.watermark_ms,
            next_watermark_ms: commit.as_ref().and_then(|c| c.next_watermark_ms),
            source_active_ms: commit
                .as_ref()
                .map(|c| c.source_active_ms.clone())
                .unwrap_or_default(),
            event_time_max_ms: commit.map(|c| c.event_time_max_ms).unwrap_or_default(),
        })
    }

    /// Plans the next batch and runs it; `false` when there was nothing to do.
    async fn plan_and_run(
        &mut self,
        position: &mut Position,
        admission: Admission,
    ) -> Result<bool, Error> {
        let batch = position.next;
        let plan_started = Instant::now();
        // Planning writes the sources' logs of the batch: a late run must not.
        self.checkpoint.check_fence().await?;
        let mut ends = Vec::new();
        let mut any_new = false;
        for source in &mut self.engine.sources {
            // `null`: the source has had no offset yet.
            let start = position.ends.get(source.name()).filter(|o| !o.is_null());
            let end = match source.plan(batch, start, admission).await? {
                Some(end) => {
                    any_new = true;
                    end
                }
                None => start.cloned().unwrap_or(serde_json::Value::Null),
            };
            ends.push(SourceOffset {
                source: source.name().to_string(),
                offset: end,
            });
        }
        let stateful = self
            .engine
            .query
            .as_ref()
            .is_some_and(|q| q.operator.is_some());
        let watermark_ms = watermark::for_batch(stateful, position.next_watermark_ms);
        // Without new input, a batch still runs when the watermark has moved past the end of
        // something in the state (Spark's "no-data batch"): closed windows are final, and
        // append mode emits them now rather than when more input comes.
        let closes = watermark::no_data_batch_runs(watermark_ms, position.watermark_ms, |w| {
            self.engine.closes_by_watermark(w)
        });
        if !(any_new || closes || self.table_gone) {
            return Ok(false);
        }
        self.table_gone = false;
        let plan_ms = ms(plan_started);
        let offsets_started = Instant::now();
        let fingerprint = plan::fingerprint(&self.pipeline.query);
        if !self.query_stored {
            self.checkpoint
                .write_query(&fingerprint, &self.pipeline.query)
                .await?;
            self.query_stored = true;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let entry = OffsetsEntry {
            info: BatchInfo {
                batch_timestamp_ms: now_ms.max(position.last_timestamp_ms),
                watermark_ms,
                epoch: self.checkpoint.epoch(),
                run_id: self.checkpoint.run_id(),
                settings: self.new_batch_settings(),
                query_fingerprint: fingerprint,
                pipeline: Some(self.pipeline_fingerprint.clone()),
            },
            sources: ends,
        };
        self.checkpoint.write_offsets(batch, &entry).await?;
        let offsets_ms = ms(offsets_started);
        let sql = self.pipeline.query.clone();
        let commit = self
            .run_batch(batch, &entry, position, &sql, false, plan_ms, offsets_ms)
            .await?;
        *position = Position {
            next: batch.next(),
            ends: entry.ends(),
            last_timestamp_ms: entry.info.batch_timestamp_ms,
            watermark_ms: entry.info.watermark_ms,
            next_watermark_ms: commit.next_watermark_ms,
            event_time_max_ms: commit.event_time_max_ms,
            source_active_ms: commit.source_active_ms,
        };
        Ok(true)
    }

    /// Runs a batch whose offsets are logged: computes it (sources, query, state operator),
    /// then commits it.
    #[allow(clippy::too_many_arguments)]
    async fn run_batch(
        &mut self,
        batch: BatchId,
        entry: &OffsetsEntry,
        start: &Position,
        sql: &str,
        recovered: bool,
        plan_ms: f64,
        offsets_ms: f64,
    ) -> Result<CommitEntry, Error> {
        self.batch_begun = true;
        let _in_batch = InBatch::enter();
        let execute_started = Instant::now();
        // On a terminal, what the batch has read so far, from a second in.
        let _live = (self.options.progress == ProgressFormat::Text)
            .then(|| crate::progress::LiveLine::start(batch))
            .flatten();
        let timings = || Timings {
            plan_ms,
            offsets_ms,
            execute_started,
        };
        let start = Start {
            ends: &start.ends,
            event_time_max_ms: &start.event_time_max_ms,
            source_active_ms: &start.source_active_ms,
            previous_timestamp_ms: (batch.0 > 0).then_some(start.last_timestamp_ms),
        };
        // A batch that fails on the workers (one gone or silent, or an error there) is
        // computed again here from the same offsets, once: the same output, and a source's
        // error with its file and advice. Nothing of it was committed.
        loop {
            let committed = match self.engine.compute(batch, entry, &start, sql).await {
                Ok(computed) => {
                    self.commit_batch(batch, entry, computed, recovered, timings())
                        .await
                }
                Err(e) => Err(e),
            };
            match committed {
                Err(Error::Execution { source, .. })
                    if self.engine.tried_distributed && !self.engine.local_only =>
                {
                    // Walk 119: a worker seeing other files gave a rewind as advice, which
                    // did not help, and named no cause on the workers' side.
                    tracing::warn!(
                        %batch,
                        "the batch failed on the workers ({source}); computing it here instead. \
                         Where it computes here, the cause was on a worker's side (one gone, \
                         slower than `worker_timeout`, or seeing the source's files otherwise \
                         than this driver: every worker must read the same files under the \
                         same paths), and advice in the workers' words above is not for this \
                         checkpoint"
                    );
                    self.engine.probe_workers().await;
                    self.engine.local_only = true;
                }
                // A text value a state's operator casts (an outer join's key of text against
                // a number, cast as the state's rows meet the batch's): the query's cast, said
                // as one, with where the value is (walk 106: the state named alone).
                Err(Error::State(crate::state::StateError::Compute { ref reason, .. }))
                    if let Some((_, cast)) = reason.split_once("Cast error: ")
                        && cast.starts_with("Cannot cast string") =>
                {
                    self.engine.local_only = false;
                    let source = datafusion::error::DataFusionError::ArrowError(
                        Box::new(datafusion::arrow::error::ArrowError::CastError(
                            cast.to_string(),
                        )),
                        None,
                    );
                    let found = self.engine.find_quoted_value(&source).await;
                    self.engine.forget_batch_tables();
                    return Err(Error::Execution {
                        batch: Some(batch),
                        source,
                        found,
                    });
                }
                Err(Error::Execution {
                    batch: failed,
                    source,
                    found: None,
                }) => {
                    self.engine.local_only = false;
                    let found = self.engine.find_quoted_value(&source).await;
                    self.engine.forget_batch_tables();
                    return Err(Error::Execution {
                        batch: failed,
                        source,
                        found,
                    });
                }
                committed => {
                    self.engine.local_only = false;
                    self.engine.forget_batch_tables();
                    return committed;
                }
            }
        }
    }

    /// The settings a new batch is pinned to. Under `engine: distributed` a batch spreads
    /// over at most one task per partition that has parts, so it gets as many partitions as
    /// this machine has cores for each worker (their own cores are not known here; at most
    /// 256): each worker then reads several partitions at once.
    fn new_batch_settings(&self) -> crate::vocab::PinnedSettings {
        let mut settings = plan::default_settings();
        let engine = &self.pipeline.engine;
        if engine.kind == crate::pipeline::EngineKind::Distributed {
            let cores = settings.target_partitions;
            settings.target_partitions = cores
                .saturating_mul(engine.workers.len().max(1))
                .min(256)
                .max(cores);
        }
        settings
    }

    /// Commits a computed batch: its late rows and output to the sinks, its state version,
    /// `commits/N`, then the purge of what retention lets go, and its progress. Everything
    /// that makes the batch visible checks the fence first. The seam where a batch computed
    /// elsewhere (a distributed engine) joins the driver.
    async fn commit_batch(
        &mut self,
        batch: BatchId,
        entry: &OffsetsEntry,
        mut computed: Computed,
        recovered: bool,
        timings: Timings,
    ) -> Result<CommitEntry, Error> {
        let Timings {
            plan_ms,
            offsets_ms,
            execute_started,
        } = timings;
        let fence = self.checkpoint.fence();
        for (source, rows) in std::mem::take(&mut computed.late_rows) {
            if let (Some(sink), Some(first)) = (self.late_sinks.get(&source), rows.first()) {
                let output = BatchOutput {
                    schema: first.schema(),
                    partitions: vec![rows],
                };
                sink.commit(batch, &fence, output)
                    .await
                    .map_err(|e| late_rows_failure(&source, e))?;
            }
        }
        let format = self.pipeline.sink_held();
        let shown = self.checkpoint.location().to_string();
        let output = std::mem::replace(
            &mut computed.output,
            Output::Rows(BatchOutput {
                schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
                partitions: Vec::new(),
            }),
        );
        let (schema, committed, computed_digest) = match output {
            Output::Rows(output) => {
                let schema = Arc::clone(&output.schema);
                // The digest is computed beside the sink's encoding, over the same rows as
                // its files hold them.
                let digest = tokio::task::spawn_blocking({
                    let output: Vec<_> = output.batches().cloned().collect();
                    move || crate::digest::digest_as_held(&output, format)
                });
                let committed = self
                    .sink
                    .commit(batch, &fence, output)
                    .await
                    .map_err(|e| sink_failure(batch, e, &shown, self.pipeline))?;
                let digest = match digest.await {
                    Ok(Ok(digest)) => Ok(digest),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("computing it failed: {e}")),
                };
                (schema, committed, digest)
            }
            Output::Plan { plan, task } => {
                let schema = plan.schema();
                let (stream, watch) =
                    engine::output_streams(&plan, &task, format).map_err(|source| {
                        Error::Execution {
                            batch: Some(batch),
                            source,
                            found: None,
                        }
                    })?;
                let committed = self.sink.commit_stream(batch, &fence, stream).await;
                // A failure of the computation is the batch's own, whatever the sink made
                // of it: a source's error first, with its advice.
                if let Some(error) = computed.scan_error() {
                    return Err(error);
                }
                if let Some(source) = watch.take_error() {
                    return Err(Error::Execution {
                        batch: Some(batch),
                        source,
                        found: None,
                    });
                }
                (
                    schema,
                    committed.map_err(|e| sink_failure(batch, e, &shown, self.pipeline))?,
                    watch.digest(),
                )
            }
        };
        computed.settle().await?;
        let computed_digest = match computed_digest {
            Ok(digest) => Some(digest),
            Err(e) => {
                tracing::warn!(%batch, "the output has no content hash, replay --verify cannot check it: {e}");
                None
            }
        };
        let Computed {
            stateful,
            rows_in,
            skipped,
            lost,
            unknown_rows,
            unknown_fields,
            files_in,
            late,
            beyond_max_future,
            late_per_source,
            event_time_max_ms,
            rows_per_source,
            skipped_per_source,
            start_offsets,
            source_active_ms,
            next_watermark_ms,
            ran_on_workers,
            ..
        } = computed;
        let watermark_ms = entry.info.watermark_ms.filter(|_| stateful);
        // A join's streams per side, whose late rows are that side's.
        let join_sides = match self.engine.query.as_ref().map(|q| &q.shape) {
            Some(crate::plan::Shape::Join(j)) => Some(j.side_streams.clone()),
            _ => None,
        };
        // The shape names a stream by its name in SQL.
        let late_of = |streams: &[String]| -> u64 {
            late_per_source
                .iter()
                .filter(|(source, _)| streams.contains(&crate::plan::sql_name(source)))
                .map(|(_, late)| *late)
                .sum()
        };
        // A sink that already had the batch (a re-run after a crash, or another run first)
        // keeps its files: the commit records the hash of what it holds.
        let output_digest = if committed.written {
            computed_digest
        } else {
            match self.sink.held_digest(batch, &schema).await {
                Ok(Some(held)) => Some(held),
                Ok(None) => computed_digest,
                Err(e) => {
                    tracing::warn!(%batch, "the sink's rows cannot be read back to hash them: {e}");
                    computed_digest
                }
            }
        };
        let execute_ms = ms(execute_started);
        let commit_started = Instant::now();
        let query = self.engine.query.as_mut().expect("analyzed above");
        let state_commit = match query.operator.as_mut() {
            Some(operator) => {
                self.checkpoint.check_fence().await?;
                operator
                    .commit(batch)
                    .await?
                    .into_iter()
                    .map(|m| StateCommit {
                        operator: m.operator,
                        version: batch,
                        rows_total: m.metrics.rows_total,
                        rows_updated: m.metrics.rows_updated,
                        rows_removed: m.metrics.rows_removed,
                        rows_expired: m.metrics.rows_expired,
                        bytes_written: m.metrics.bytes_written,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let mut commit = CommitEntry {
            next_watermark_ms,
            event_time_max_ms,
            source_active_ms,
            rows_late: late,
            rows_beyond_max_future: beyond_max_future,
            state: state_commit,
            output: output_digest,
            pipeline: Some(self.pipeline_fingerprint.clone()),
            pipeline_id: Some(self.checkpoint.metadata().id),
            checkpoint_created: Some(self.checkpoint.metadata().created.clone()),
            rows_in,
            rows_out: committed.rows,
            // Every row skipped, malformed or gone from its source.
            rows_skipped: skipped + lost,
            rows_lost: lost,
            rows_with_unknown_fields: unknown_rows,
            files_in,
            epoch: self.checkpoint.epoch(),
            run_id: self.checkpoint.run_id(),
            committed_at_ms: chrono::Utc::now().timestamp_millis(),
            batch_timestamp_ms: Some(entry.info.batch_timestamp_ms),
            settings: Some(entry.info.settings.clone()),
            durations: PhaseDurations {
                plan_ms,
                offsets_ms,
                execute_ms,
                commit_ms: ms(commit_started),
            },
        };
        self.checkpoint.write_commit(batch, &commit).await?;
        // What a batch has now written into the sink goes on record.
        let format = self
            .pipeline
            .sink
            .connector()
            .format()
            .map(|f| f.as_str().to_string());
        let mut recorded = false;
        if let Some(columns) = self.unrecorded_output_schema.take() {
            self.sink_record.output_schema = Some(columns);
            recorded = true;
        }
        if self.sink_record.format != format {
            self.sink_record.format = format;
            recorded = true;
        }
        let mode = self.pipeline.output_mode.as_str();
        if self.sink_record.output_mode != mode {
            self.sink_record.output_mode = mode.to_string();
            recorded = true;
        }
        if recorded {
            self.checkpoint.record_sink(&self.sink_record).await?;
        }
        let retain = self.pipeline.retain_batches;
        let query = plan::fingerprint(&self.pipeline.query);
        self.checkpoint
            .purge(batch, retain, &[&self.pipeline_fingerprint, &query])
            .await?;
        let oldest_kept = BatchId((batch.0 + 1).saturating_sub(retain.max(2)));
        for source in &mut self.engine.sources {
            source.commit(batch, oldest_kept).await?;
            if let Some(end) = entry.offset_of(source.name()) {
                source.report_progress(batch, end).await;
            }
        }
        if let Some(operator) = self.engine.query.as_ref().and_then(|q| q.operator.as_ref()) {
            operator.purge(oldest_kept).await?;
        }
        self.sink.purge(oldest_kept).await?;
        for sink in self.late_sinks.values() {
            sink.purge(oldest_kept).await?;
        }
        commit.durations.commit_ms = ms(commit_started);
        // A checkpoint in a store that this run made holds a batch now: nothing for a failure
        // to withdraw, so none waits on a store that stopped answering to find that out.
        if self.summary.batches == 0 {
            let _ = crate::checkpoint::take_made_in_store(self.checkpoint.location());
        }
        self.summary.batches += 1;
        self.summary.rows_in += rows_in;
        self.summary.rows_out += committed.rows;
        let windowed = self.pipeline.output_mode == OutputMode::Append
            && self.engine.query.as_ref().is_some_and(|q| {
                matches!(&q.shape, crate::plan::Shape::Aggregate(a)
                    if !a.distinct_only && a.event_time.is_some())
            });
        if windowed {
            self.summary.open_windows = commit
                .state
                .iter()
                .find(|s| s.operator == "aggregate")
                .map(|s| s.rows_total);
        }
        let total_ms = commit.durations.plan_ms
            + commit.durations.offsets_ms
            + commit.durations.execute_ms
            + commit.durations.commit_ms;
        let total_s = total_ms / 1000.0;
        // The batch started when its planning did; Spark's rate of arrival is over the time
        // since the previous batch started.
        let trigger = execute_started
            .checked_sub(std::time::Duration::from_secs_f64(
                (plan_ms + offsets_ms).max(0.0) / 1000.0,
            ))
            .unwrap_or(execute_started);
        let since_last_s = self
            .last_trigger
            .replace(trigger)
            .map(|last| trigger.saturating_duration_since(last).as_secs_f64());
        let per_second = |rows: u64, seconds: Option<f64>| match seconds {
            Some(s) if s > 0.0 => rows as f64 / s,
            _ => 0.0,
        };
        let sources = self
            .engine
            .sources
            .iter()
            .map(|source| {
                let name = source.name();
                let config = &self.pipeline.sources[name];
                let rows = rows_per_source.get(name).copied().unwrap_or(0);
                SourceProgress {
                    description: source_description(name, config),
                    start_offset: start_offsets
                        .get(name)
                        .cloned()
                        .unwrap_or(serde_json::Value::Null),
                    end_offset: entry
                        .offset_of(name)
                        .cloned()
                        .unwrap_or(serde_json::Value::Null),
                    num_input_rows: rows,
                    num_skipped_rows: skipped_per_source.get(name).copied().unwrap_or(0),
                    input_rows_per_second: per_second(rows, since_last_s),
                    processed_rows_per_second: per_second(rows, Some(total_s)),
                }
            })
            .collect();
        let sink = self.pipeline.sink.connector();
        BatchProgress {
            id: self.checkpoint.metadata().id,
            run_id: self.checkpoint.run_id(),
            name: self.pipeline.name.clone(),
            // When this trigger started, as Spark's; a recovered batch's logged timestamp is
            // the interrupted run's (audit 88c: a re-run was dated before it ran).
            timestamp: rfc3339(
                chrono::Utc::now().timestamp_millis()
                    - i64::try_from(trigger.elapsed().as_millis()).unwrap_or(0),
            ),
            batch_id: batch,
            recovered,
            num_input_rows: rows_in,
            num_output_rows: committed.rows,
            num_skipped_rows: skipped,
            num_lost_rows: lost,
            num_rows_with_unknown_fields: unknown_rows,
            unknown_fields: crate::progress::at_most_named(unknown_fields),
            num_late_rows: late,
            num_rows_beyond_max_future: beyond_max_future,
            num_input_files: files_in,
            processed_rows_per_second: if total_s > 0.0 {
                rows_in as f64 / total_s
            } else {
                0.0
            },
            input_rows_per_second: per_second(rows_in, since_last_s),
            batch_duration: total_ms.round().max(0.0) as u64,
            duration_ms: (&commit.durations).into(),
            phases: commit.durations.clone(),
            watermark: watermark_ms.map(rfc3339),
            event_time: self.event_time_progress(watermark_ms),
            sources,
            sink: SinkProgress {
                description: sink_description(sink.as_ref()),
                num_output_rows: committed.rows,
            },
            state_operators: commit
                .state
                .iter()
                .enumerate()
                .map(|(i, s)| StateOperatorProgress {
                    operator_name: s.operator.clone(),
                    num_rows_total: s.rows_total,
                    num_rows_updated: s.rows_updated,
                    num_rows_removed: s.rows_removed,
                    num_rows_dropped_by_ttl: s.rows_expired,
                    // Late rows are dropped before the operator, once: counted on the first,
                    // or, for a join, on the side that reads their stream.
                    num_rows_dropped_by_watermark: match (&join_sides, s.operator.as_str()) {
                        (Some(sides), "join-left") => late_of(&sides[0]),
                        // A stream both sides read (a self-join) counts on the left.
                        (Some(sides), "join-right") => late_of(
                            &sides[1]
                                .iter()
                                .filter(|s| !sides[0].contains(s))
                                .cloned()
                                .collect::<Vec<_>>(),
                        ),
                        _ if i == 0 => late,
                        _ => 0,
                    },
                    state_bytes_written: s.bytes_written,
                })
                .collect(),
            sink_wrote: committed.written,
            ran_on_workers,
            late_rows_kept: !self.late_sinks.is_empty(),
        }
        .report(
            self.options.progress,
            self.pipeline.sink.connector().prints_to_stdout(),
        );
        Ok(commit)
    }
}

/// How progress names source `name` (of `config`): `<kind>[<name>: <location>]`.
fn source_description(name: &str, config: &crate::pipeline::SourceConfig) -> String {
    match config.connector().location() {
        Some(location) => format!("{}[{name}: {location}]", config.kind),
        None => format!("{}[{name}]", config.kind),
    }
}

/// How progress names `sink`: `<kind>[<location>]`.
fn sink_description(sink: &dyn crate::sink::SinkConnector) -> String {
    match sink.location() {
        Some(location) => format!("{}[{location}]", sink.kind()),
        None => sink.kind().to_string(),
    }
}

/// The static tables of `pipeline` with a file modified after `since_ms` (when the run that
/// read them started, milliseconds since 1970), each as `` `name` (path: modified time)``: a
/// table is read whole when a run starts, so the run goes on joining it as it was, and a batch
/// recomputed now reads it as it is now. Hidden files (`.` or `_`), which a table does not
/// read, are left out, and so is a table that cannot be listed.
pub async fn tables_changed_since(pipeline: &Pipeline, since_ms: i64) -> Vec<String> {
    let mut changed = Vec::new();
    for (name, config) in &pipeline.tables {
        let Some(at) = config.connector().location() else {
            continue;
        };
        let path = std::path::Path::new(&at);
        let newest: Option<(String, i64)> = if !at.contains("://") && path.is_file() {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).timestamp_millis())
                .map(|ms| (at.clone(), ms))
        } else {
            match Location::open(&at, false, false, None) {
                // A table of one file on an object store (`s3://b/labels.csv`): its own time.
                Ok(location) if let Some(meta) = location.own_object().await => {
                    Some((at.clone(), meta.last_modified.timestamp_millis()))
                }
                Ok(location) => location
                    .list_visible(crate::source::hidden)
                    .await
                    .ok()
                    .and_then(|files| {
                        files.iter().max_by_key(|m| m.last_modified).map(|m| {
                            (
                                format!("{at}/{}", location.relative(&m.location)),
                                m.last_modified.timestamp_millis(),
                            )
                        })
                    }),
                Err(_) => None,
            }
        };
        if let Some((file, ms)) = newest.filter(|(_, ms)| *ms > since_ms) {
            let when = chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            changed.push(format!(
                "`{name}` ({}: modified {when})",
                crate::secret::redact_url(&file)
            ));
        }
    }
    changed
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    /// Walk 97: pandas' `large_string` (pinned from its Parquet files) beside a declared
    /// `string` was refused as "string -> string": Arrow's large and view forms are the types
    /// every sink writes alike, at any depth; another type is still a change.
    #[test]
    fn large_and_view_forms_are_no_change_of_type() {
        let list = |item: DataType| DataType::LargeList(Arc::new(Field::new("item", item, true)));
        for (a, b) in [
            (DataType::Utf8, DataType::LargeUtf8),
            (DataType::Utf8View, DataType::Utf8),
            (DataType::Binary, DataType::LargeBinary),
            (
                list(DataType::LargeUtf8),
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            ),
        ] {
            assert!(same_type(&a.to_string(), &b.to_string()), "{a} {b}");
        }
        assert!(!same_type(
            &DataType::Utf8.to_string(),
            &DataType::Binary.to_string()
        ));
    }

    /// Walk 66 (6): a list's item named `element` (Parquet's) and `item` (SQL's) is one type
    /// to the output's record; another item type is not.
    #[test]
    fn a_lists_item_name_is_no_change_of_type() {
        let list = |name: &str, item: DataType| {
            DataType::List(Arc::new(Field::new(name, item, true))).to_string()
        };
        assert!(same_type(
            &list("element", DataType::Utf8),
            &list("item", DataType::Utf8)
        ));
        assert!(!same_type(
            &list("element", DataType::Utf8),
            &list("item", DataType::Int64)
        ));
        let column = |t: String| vec![("tags".to_string(), t)];
        assert!(same_columns(
            &column(list("element", DataType::Utf8)),
            &column(list("item", DataType::Utf8))
        ));
        assert!(!same_columns(&column(list("item", DataType::Utf8)), &[]));
    }
}
