//! `sluice inspect`: what a checkpoint holds, for people (text) and tools (`--json`).

use std::fmt::Write;

use serde::Serialize;

use crate::Error;
use crate::checkpoint::{
    self, BatchId, Checkpoint, CommitEntry, LogListing, Metadata, OffsetsEntry,
};
use crate::state::{StateFileKind, StateFiles};
use crate::storage::Location;

/// One batch as inspect shows it.
#[derive(Debug, Serialize)]
struct BatchView {
    batch: BatchId,
    status: &'static str,
    offsets: Option<serde_json::Value>,
    commit: Option<CommitEntry>,
    /// Files read, per source, where the source logs them and the log is retained.
    files: std::collections::BTreeMap<String, Vec<String>>,
    /// Why the batch's entries cannot be read (truncated, edited), where they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    damaged: Option<String>,
}

/// A failure recorded of the pending batch, in one line: when (UTC), the exit code and the
/// error's first line.
pub(super) fn failure_line(failure: &crate::checkpoint::FailureRecord) -> String {
    let at = chrono::DateTime::from_timestamp_millis(failure.at_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let first = failure.error.lines().next().unwrap_or_default();
    format!("failed {at} (exit {}): {first}", failure.exit_code)
}

/// The whole checkpoint as inspect shows it.
#[derive(Debug, Serialize)]
struct CheckpointView {
    location: String,
    metadata: Metadata,
    batches_committed: usize,
    last_committed: Option<BatchId>,
    pending: Option<BatchId>,
    /// How the last run that failed with the pending batch failed, where one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_failure: Option<crate::checkpoint::FailureRecord>,
    /// A `sluice rewind` that was cut short, with the command that finishes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    rewind_unfinished: Option<String>,
    /// The batch that rewind takes the checkpoint back to (its `--to`), for a script that
    /// finishes it (walk 79: only the prose said it).
    #[serde(skip_serializing_if = "Option::is_none")]
    rewind_unfinished_to: Option<BatchId>,
    /// Why a run cannot go on from the logs as they are (entries removed), with the way out
    /// where there is one: a pending batch then does not run again by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    inconsistent: Option<String>,
    /// The watermark the next batch starts with (from the last commit).
    next_watermark_ms: Option<i64>,
    /// Each source's end offset after the last committed batch.
    source_offsets: std::collections::BTreeMap<String, serde_json::Value>,
    /// The same in words, as each source's connector describes it.
    source_descriptions: std::collections::BTreeMap<String, String>,
    /// How far each source's input runs ahead of that offset now, where its kind tells (a
    /// Kafka source: records per partition); asked of the source's servers when inspecting.
    source_lag: std::collections::BTreeMap<String, Option<crate::source::Lag>>,
    /// Why a source's lag is null in `source_lag`: its servers did not answer.
    source_lag_errors: std::collections::BTreeMap<String, String>,
    /// Each stateful operator's store.
    state: Vec<StateStoreView>,
    /// What stops the next run from loading the state (a missing or damaged state file), each
    /// with how to get past it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    state_damage: Vec<String>,
    /// Where the output goes and how far it has got, when a run recorded its sink.
    sink: Option<SinkView>,
    /// What the checkpoint keeps, by the pipeline file the last batch ran with.
    retention: Option<RetentionView>,
    batches: Vec<BatchView>,
}

/// The retention settings and what they leave.
#[derive(Debug, Serialize)]
struct RetentionView {
    /// Batches of logs kept (`retain_batches`).
    retain_batches: u64,
    /// A state store writes a snapshot every this many batches (`snapshot_every`).
    snapshot_every: u64,
    /// The oldest batch whose offsets entry is still held.
    oldest_batch: Option<BatchId>,
}

/// The sink as inspect shows it.
#[derive(Debug, Serialize)]
struct SinkView {
    kind: String,
    path: Option<String>,
    output_mode: String,
    /// The newest batch the sink's manifest holds, its rows and files.
    last_batch: Option<BatchId>,
    last_batch_rows: Option<u64>,
    last_batch_files: Option<usize>,
    /// Manifest entries kept (bounded by the retention); a files sink's alone (null for a
    /// table's or a topic's, which keep a progress record instead).
    manifest_entries: Option<usize>,
    /// The entries of the sink's own record of batches, whatever its kind (0: it records
    /// none), for the text.
    #[serde(skip)]
    held_entries: Option<usize>,
    /// Why the sink could not be read, when it could not.
    unreadable: Option<String>,
    /// Where the next batches go, where the pipeline file now names another sink than the
    /// one shown (where the newest batch went).
    next_batches_to: Option<String>,
    /// Whether the sink keeps a record of the batches it took (the console keeps none).
    keeps_records: bool,
}

/// One state store as inspect shows it.
#[derive(Debug, Serialize)]
struct StateStoreView {
    operator: String,
    /// Rows after the last committed batch, as its commit recorded.
    rows: Option<u64>,
    files: usize,
    bytes: u64,
    /// The oldest and newest versions with files.
    versions: Option<(BatchId, BatchId)>,
    /// The newest snapshot version.
    latest_snapshot: Option<BatchId>,
}

pub(super) async fn run(spec: &str, only: Option<u64>, json: bool) -> Result<(), Error> {
    let spec_sh = crate::vocab::shell_word(spec);
    let location = super::open_checkpoint(spec)?;
    if let Some(raw) = location.get(&location.path("metadata")).await?
        && crate::checkpoint::is_spark_metadata(&String::from_utf8_lossy(&raw))
    {
        let id = serde_json::from_slice::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_string))
            .unwrap_or_default();
        return super::spark::run(&location, spec, id, only, json).await;
    }
    if location.get(&location.path("metadata")).await?.is_none()
        && super::spark::is_spark_sink(&location).await?
    {
        return super::spark::run_sink(&location, spec, json).await;
    }
    // Another user's checkpoint (on a shared host): its stored pipeline file names the
    // servers inspect asks, so no `${VAR}` is filled in from this user's environment.
    if let Some(owner) = foreign_owner(&location) {
        crate::secret::withhold_env(format!(
            "not asked with this user's environment: the checkpoint is another user's (uid \
             {owner}), and `${{VAR}}`s in the servers its pipeline file names are not filled in \
             for them; run `sluice inspect` as that user to see what they say"
        ));
    }
    let metadata = match Checkpoint::read_metadata(&location).await {
        Ok(metadata) => {
            metadata.ok_or_else(|| Error::Usage(crate::checkpoint::not_a_checkpoint(spec)))?
        }
        // A monitor reading `--json` is told in the document too, as of other damage (walk
        // 118: stdout was empty): `metadata` null and `inconsistent` saying why; still exit 1.
        Err(
            e @ (checkpoint::CheckpointError::Corrupt { .. }
            | checkpoint::CheckpointError::MetadataMissing { .. }),
        ) if json => {
            let e = Error::from(e);
            let logs = LogListing::read(&location).await?;
            let pending = logs
                .offsets
                .last()
                .copied()
                .filter(|b| !logs.commits.contains(b));
            super::emit_json(&serde_json::json!({
                "location": spec,
                "metadata": null,
                "batches_committed": logs.commits.len(),
                "last_committed": logs.commits.last(),
                "pending": pending,
                "inconsistent": e.shown_in(spec),
            }));
            return Err(e);
        }
        Err(e) => return Err(e.into()),
    };
    let logs = LogListing::read(&location).await?;
    let leftovers = location.staged_leftovers();
    if !leftovers.is_empty() {
        tracing::warn!(
            "{spec} holds {} half-written file(s) a killed run left, never read ({}): \
             `sluice repair {spec_sh}` removes them",
            leftovers.len(),
            leftovers.join(", ")
        );
    }
    let (rewind_unfinished, rewind_unfinished_to) =
        match checkpoint::check_no_rewind_under_way(&location).await {
            Ok(()) => (None, None),
            Err(e) => {
                let to = match &e {
                    checkpoint::CheckpointError::RewindUnfinished { to, .. } => Some(*to),
                    _ => None,
                };
                (Some(crate::Error::from(e).shown_in(spec)), to)
            }
        };
    let pending = logs
        .offsets
        .last()
        .copied()
        .filter(|b| !logs.commits.contains(b));
    // The pipeline file the newest batch ran with says what each source and the sink are.
    let newest_pipeline = match logs.offsets.last() {
        Some(newest) => checkpoint::read_offsets(&location, *newest)
            .await
            .ok()
            .flatten()
            .and_then(|e| e.info.pipeline),
        None => None,
    };
    let pipeline = match &newest_pipeline {
        // A damaged pipeline file is said, and the rest of the checkpoint still shown.
        Some(fingerprint) => crate::driver::stored_pipeline(&location, spec, fingerprint)
            .await
            .inspect_err(|e| tracing::warn!("the pipeline file is not shown: {e}"))
            .ok()
            .flatten(),
        None => None,
    };
    for (folder, shown_sink) in pipeline
        .as_ref()
        .map(crate::ops::local_sink_folders)
        .unwrap_or_default()
    {
        let leftovers = crate::ops::owned_leftovers(&folder, metadata.id);
        if !leftovers.is_empty() {
            tracing::warn!(
                "the sink {shown_sink} holds {} half-written file(s) a killed run left, never \
                 read ({}): `sluice repair {spec_sh}` removes them",
                leftovers.len(),
                leftovers.join(", ")
            );
        }
    }
    if let Some(last) = logs.commits.last() {
        for (folder, kept) in pipeline
            .as_ref()
            .map(crate::driver::late_rows_without_records)
            .unwrap_or_default()
        {
            tracing::warn!(
                "{}",
                crate::driver::late_rows_lost_records(&folder, kept, *last)
            );
        }
    }
    let mut batches = Vec::new();
    // A committed batch whose offsets entry is gone is shown too, as damaged.
    let mut shown_batches: Vec<BatchId> = logs
        .offsets
        .iter()
        .chain(
            logs.commits
                .iter()
                .filter(|c| logs.offsets.first().is_some_and(|oldest| *c > oldest)),
        )
        .copied()
        .collect();
    shown_batches.sort_unstable();
    shown_batches.dedup();
    for batch in &shown_batches {
        if only.is_some_and(|n| n != batch.0) {
            continue;
        }
        batches.push(view_batch(&location, spec, *batch, &logs, pipeline.as_ref()).await?);
    }
    if let Some(n) = only
        && batches.is_empty()
    {
        return Err(Error::Usage(format!(
            "batch {n} is not in {spec} (retained batches: {})",
            describe_range(&logs.offsets)
        )));
    }
    // The newest commit that reads: a damaged one is shown in its batch's line, not an error.
    let mut last_commit = None;
    // The newest commit or offsets entry damaged stops every run, as `inconsistent` says
    // (walk 88: it was empty there, said only in the batch's line).
    let mut newest_damaged = None;
    for batch in logs.commits.iter().rev() {
        match checkpoint::read_commit(&location, *batch).await {
            Ok(commit) => {
                last_commit = commit;
                break;
            }
            Err(e @ checkpoint::CheckpointError::Corrupt { .. }) => {
                if Some(batch) == logs.commits.last() {
                    newest_damaged = Some(Error::from(e).shown_in(spec));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if newest_damaged.is_none()
        && let Some(newest) = logs.offsets.last()
        && let Err(e @ checkpoint::CheckpointError::Corrupt { .. }) =
            checkpoint::read_offsets(&location, *newest).await
    {
        newest_damaged = Some(Error::from(e).shown_in(spec));
    }
    // A source log entry deleted (a compact one among them) stops every run too (walk 99).
    if newest_damaged.is_none()
        && let Some(newest) = logs.offsets.last()
    {
        newest_damaged = crate::ops::source_log_damage(&location, spec, *newest)
            .await
            .into_iter()
            .map(|(_, damage)| damage)
            .next();
    }
    let mut state = Vec::new();
    for operator in StateFiles::operators(&location).await? {
        let files = StateFiles::new(location.clone(), &operator).list().await?;
        state.push(StateStoreView {
            rows: last_commit.as_ref().and_then(|c| {
                c.state
                    .iter()
                    .find(|s| s.operator == operator)
                    .map(|s| s.rows_total)
            }),
            files: files.len(),
            bytes: files.iter().map(|f| f.size).sum(),
            versions: files
                .first()
                .zip(files.last())
                .map(|(a, b)| (a.version, b.version)),
            latest_snapshot: files
                .iter()
                .filter(|f| f.kind == StateFileKind::Snapshot)
                .map(|f| f.version)
                .max(),
            operator,
        });
    }
    // With no state folder too: the newest commit may record state that is gone.
    // A rewind cut short leaves state and entries half taken back: its finishing is the one
    // way on, and what it leaves is not said as damage of its own, with other ways (walk 128
    // (1): a rewind to another batch and a repair were named beside it, each refused).
    let state_damage = match logs.commits.last() {
        _ if rewind_unfinished.is_some() => Vec::new(),
        None => Vec::new(),
        Some(&committed) => {
            crate::ops::state_damage(&location, spec, committed, true, pipeline.as_ref())
                .await
                .0
        }
    };
    // A damaged entry is shown as damaged among the batches (and `repair` named): the rest
    // of the checkpoint is still shown (audit 86: inspect failed whole over it).
    let source_offsets: std::collections::BTreeMap<String, serde_json::Value> =
        match logs.commits.last() {
            Some(last) => match checkpoint::read_offsets(&location, *last).await {
                Ok(entry) => entry,
                Err(checkpoint::CheckpointError::Corrupt { .. }) => None,
                Err(e) => return Err(e.into()),
            }
            .map(|e| {
                e.sources
                    .into_iter()
                    .map(|s| (s.source, s.offset))
                    .collect()
            })
            .unwrap_or_default(),
            None => Default::default(),
        };
    let source_descriptions = source_offsets
        .iter()
        .filter_map(|(name, offset)| {
            let config = pipeline.as_ref()?.sources.get(name)?;
            Some((
                name.clone(),
                config.connector().describe_offset(name, offset),
            ))
        })
        .collect();
    let mut source_lag = std::collections::BTreeMap::new();
    let mut source_lag_errors = std::collections::BTreeMap::new();
    for (name, offset) in &source_offsets {
        let Some(config) = pipeline.as_ref().and_then(|p| p.sources.get(name)) else {
            continue;
        };
        match config.connector().lag(name, offset).await {
            Ok(Some(lag)) => {
                source_lag.insert(name.clone(), Some(lag));
            }
            Ok(None) => {}
            // The checkpoint is still shown when the source's servers do not answer: the
            // source's lag null, and why in `source_lag_errors` (walk 118: left out, as of a
            // source that has no lag, a monitor saw a caught-up pipeline).
            Err(e) => {
                tracing::warn!("the lag of source `{name}` is not shown: {e}");
                source_lag.insert(name.clone(), None);
                source_lag_errors.insert(name.clone(), e.to_string());
            }
        }
    }
    // The sink the newest batch ran with as its file names it (relative paths as written,
    // as the sink record keeps them), to tell whether the record names another.
    let sink_as_written = match &newest_pipeline {
        Some(fingerprint) => sink_written(&location, spec, fingerprint).await,
        None => None,
    };
    let record = Checkpoint::read_sink_record(&location).await?;
    // The sink the newest committed batch went to, as its file names it: only a sink that took
    // the batches is asked what it lost of them, as a run asks it.
    let committed_to = match last_commit.as_ref().and_then(|c| c.pipeline.as_deref()) {
        Some(fingerprint) => sink_written(&location, spec, fingerprint).await,
        None => None,
    };
    let took_last = record
        .as_ref()
        .is_some_and(|r| committed_to.as_ref() == Some(&(r.kind.clone(), r.path.clone())));
    let (mut sink, opened) = match record {
        Some(record) => {
            let (view, opened) = sink_view(
                record,
                metadata.id,
                pipeline.as_ref(),
                sink_as_written.as_ref(),
            )
            .await;
            (Some(view), opened)
        }
        None => (None, None),
    };
    // What stops the next run before a batch, found as a run finds it, in its order (walk
    // 118: a checkpoint older than its sink, a sink file of a kept batch gone, a pinned schema
    // deleted were refused by every run while inspect showed nothing wrong).
    let mut blocked = None;
    if let (Some(p), Some(view)) = (&pipeline, &sink)
        && view.next_batches_to.is_none()
        && let Some(held_last) = view.last_batch
    {
        blocked = crate::driver::sink_outran(
            p,
            &location,
            metadata.id,
            &logs,
            view.path.as_deref().unwrap_or_default(),
            held_last,
        )
        .await?;
    }
    // A sink that keeps each batch's records holds none of those committed to it (its folder
    // deleted, emptied or moved), as a run finds it (walk 125 (4): `inconsistent` was empty
    // where the folder was gone, set where it was emptied).
    if blocked.is_none()
        && took_last
        && let (Some(p), Some(view), Some(last)) = (&pipeline, &sink, logs.commits.last())
        && p.output_mode != crate::pipeline::OutputMode::Complete
        && p.sink.connector().keeps_batches()
        && view.next_batches_to.is_none()
    {
        let path = view.path.as_deref().unwrap_or_default();
        let holds_none = match &opened {
            Some(opened) => {
                view.held_entries == Some(0) && matches!(opened.owner().await, Ok(None))
            }
            // Not opened: a local folder that is not there.
            None => {
                view.unreadable.is_some()
                    && !path.is_empty()
                    && !path.contains("://")
                    && !std::path::Path::new(path).exists()
            }
        };
        if holds_none {
            blocked = Some(crate::driver::sink_holds_none(
                p,
                (&view.kind, path),
                metadata.id,
                *last,
            ));
        }
    }
    if blocked.is_none()
        && took_last
        && let (Some(p), Some(opened), Some(last)) = (&pipeline, &opened, logs.commits.last())
        && let Err(lost @ crate::sink::SinkError::Lost { .. }) = opened.check_held(*last).await
    {
        blocked = Some(crate::driver::lost_placed(lost, spec, p).to_string());
    }
    if blocked.is_none()
        && let Some(p) = &pipeline
    {
        for (name, config) in &p.sources {
            if config.infers_schema()
                && let Some(lost) = crate::source::pinned_schema_lost(&location, name).await?
            {
                blocked = Some(lost);
                break;
            }
        }
    }
    // The sink is read as the pipeline file says: without it, what it holds is not known.
    if let (Some(view), None, Some(fingerprint)) = (sink.as_mut(), &pipeline, &newest_pipeline) {
        view.unreadable = Some(format!(
            "not read: {}, the pipeline file the newest batch ran with, is missing or damaged; \
             a run with the same, unchanged pipeline file stores it again",
            checkpoint::paths::pipeline(fingerprint)
        ));
    }
    let retention = match last_commit.as_ref().and_then(|c| c.pipeline.as_deref()) {
        // A damaged pipeline file is said, and the rest of the checkpoint still shown.
        Some(fingerprint) => crate::driver::stored_pipeline(&location, spec, fingerprint)
            .await
            .inspect_err(|e| tracing::warn!("the retention is not shown: {e}"))
            .ok()
            .flatten()
            .map(|p| RetentionView {
                retain_batches: p.retain_batches,
                snapshot_every: p.snapshot_every,
                oldest_batch: logs.offsets.first().copied(),
            }),
        None => None,
    };
    let view = CheckpointView {
        location: spec.to_string(),
        sink,
        retention,
        source_offsets,
        source_descriptions,
        source_lag,
        source_lag_errors,
        metadata,
        batches_committed: logs.commits.len(),
        last_committed: logs.commits.last().copied(),
        pending,
        pending_failure: match pending {
            Some(batch) => Checkpoint::read_failure(&location, batch).await,
            None => None,
        },
        rewind_unfinished,
        rewind_unfinished_to,
        inconsistent: match crate::checkpoint::recovery::decide(&logs) {
            crate::checkpoint::recovery::Decision::Inconsistent { reason } => Some(format!(
                "{reason}{}",
                crate::checkpoint::recovery::way_out(&logs, spec)
            )),
            _ => newest_damaged.or(blocked),
        },
        state_damage,
        next_watermark_ms: last_commit.and_then(|c| c.next_watermark_ms),
        state,
        batches,
    };
    if json {
        super::emit_json(&view);
    } else {
        super::emit(&render_text(&view));
    }
    Ok(())
}

/// The sink kind and location of the stored pipeline file `fingerprint`, as the file writes
/// them (relative paths as written, as the sink record keeps them); `None` where the file is
/// missing or does not read.
async fn sink_written(
    location: &Location,
    spec: &str,
    fingerprint: &str,
) -> Option<(String, Option<String>)> {
    crate::driver::stored_pipeline_as_written(location, spec, fingerprint)
        .await
        .ok()
        .flatten()
        .map(|p| {
            let connector = p.sink.connector();
            (connector.kind().to_string(), connector.location())
        })
}

/// The user id owning the local checkpoint at `location` (its `metadata`, or the folder),
/// where it is not this process's; `None` for one of this user's, or in an object store.
fn foreign_owner(location: &Location) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let root = location.local_root()?;
    let owner = std::fs::metadata(root.join("metadata"))
        .or_else(|_| std::fs::metadata(root))
        .ok()?
        .uid();
    // `/proc/self` is owned by the process's effective user.
    let own = std::fs::metadata("/proc/self").ok()?.uid();
    (owner != own).then_some(owner)
}

/// What the sink holds, as its connector (from the stored pipeline file) summarizes it; a
/// missing or unreadable sink is said, not an error: the checkpoint is still worth showing.
/// `as_written` is that file's sink kind and location as written: where the record names
/// another, the sink moved since and the next batches go there.
async fn sink_view(
    record: crate::checkpoint::SinkRecord,
    id: uuid::Uuid,
    pipeline: Option<&crate::pipeline::Pipeline>,
    as_written: Option<&(String, Option<String>)>,
) -> (SinkView, Option<Box<dyn crate::sink::Sink>>) {
    let mut view = SinkView {
        kind: record.kind.clone(),
        path: record.path.clone(),
        output_mode: record.output_mode.clone(),
        last_batch: None,
        last_batch_rows: None,
        last_batch_files: None,
        manifest_entries: None,
        held_entries: None,
        unreadable: None,
        next_batches_to: None,
        keeps_records: true,
    };
    let Some(pipeline) = pipeline else {
        return (view, None);
    };
    // The summary is of the sink the newest batch ran with; the record names the one the
    // last run found in the pipeline file, which may have moved since.
    let connector = pipeline.sink.connector();
    if as_written.is_some_and(|(kind, path)| (kind, path) != (&record.kind, &record.path)) {
        view.kind = connector.kind().to_string();
        view.path = connector.location();
        view.next_batches_to = Some(match &record.path {
            Some(path) => format!("the {} sink {path}", record.kind),
            None => format!("the {} sink", record.kind),
        });
    }
    let ctx = crate::sink::SinkContext {
        label: "",
        pipeline: id,
        replace: record.output_mode == "complete",
        update: record.output_mode == "update",
        part: None,
        create: false,
        sync: false,
        hook: None,
    };
    let sink = pipeline.sink.connector().open(&ctx);
    let summary = match &sink {
        Ok(sink) => sink.summary().await,
        Err(e) => {
            view.unreadable = Some(e.to_string());
            Ok(None)
        }
    };
    match summary {
        Ok(Some(summary)) => {
            // Files and a manifest are a files sink's (a table or a topic keeps a progress
            // record: walk 118 read its 0 files and 1 manifest entry as facts).
            let files_sink = view.kind == "files";
            view.held_entries = Some(summary.entries);
            view.manifest_entries = files_sink.then_some(summary.entries);
            if let Some((batch, rows, files)) = summary.last {
                view.last_batch = Some(batch);
                view.last_batch_rows = rows;
                view.last_batch_files = files.filter(|_| files_sink || view.kind == "delta");
            }
        }
        Ok(None) if sink.is_ok() => view.keeps_records = false,
        Ok(None) => {}
        Err(e) => view.unreadable = Some(e.to_string()),
    }
    let opened = sink.ok().filter(|_| view.unreadable.is_none());
    (view, opened)
}

async fn view_batch(
    location: &Location,
    spec: &str,
    batch: BatchId,
    logs: &LogListing,
    pipeline: Option<&crate::pipeline::Pipeline>,
) -> Result<BatchView, Error> {
    // A damaged entry is shown as such (runs no longer read an older batch's), not an error.
    let mut damaged = Vec::new();
    let offsets: Option<OffsetsEntry> = readable(
        checkpoint::read_offsets(location, batch).await,
        spec,
        &mut damaged,
    )?;
    if offsets.is_none() && damaged.is_empty() && logs.commits.contains(&batch) {
        damaged.push(format!(
            "{} is missing though the batch is committed (replay and rewind read it): `sluice \
             repair {spec}` rebuilds it from {} and the sources' logs",
            checkpoint::paths::offsets(batch),
            checkpoint::paths::commits(batch)
        ));
    }
    let commit = if logs.commits.contains(&batch) {
        readable(
            checkpoint::read_commit(location, batch).await,
            spec,
            &mut damaged,
        )?
    } else {
        None
    };
    let mut files = std::collections::BTreeMap::new();
    if let (Some(entry), Some(pipeline)) = (&offsets, pipeline) {
        for source in &entry.sources {
            let Some(config) = pipeline.sources.get(&source.source) else {
                continue;
            };
            // A damaged source log entry is shown with the batch, as a damaged log entry is.
            let inputs = match config
                .connector()
                .batch_inputs(&source.source, location, batch, &source.offset)
                .await
            {
                Ok(inputs) => inputs,
                Err(crate::source::SourceError::Checkpoint(
                    e @ (checkpoint::CheckpointError::Corrupt { .. }
                    | checkpoint::CheckpointError::Inconsistent { .. }),
                )) => {
                    damaged.push(Error::from(e).in_checkpoint(spec).to_string());
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            };
            if !inputs.is_empty() {
                files.insert(source.source.clone(), inputs);
            }
        }
    }
    Ok(BatchView {
        batch,
        status: if !damaged.is_empty() {
            "damaged"
        } else if commit.is_some() {
            "committed"
        } else if logs.commits.first().is_some_and(|first| *first < batch)
            && logs.commits.last().is_some_and(|last| *last > batch)
        {
            // Runs carry on past it; `replay --verify` checks its sink files against its
            // recomputation.
            "commit missing"
        } else {
            "pending"
        },
        offsets: offsets.map(|e| {
            serde_json::json!({
                "batch_timestamp_ms": e.info.batch_timestamp_ms,
                "watermark_ms": e.info.watermark_ms,
                "epoch": e.info.epoch,
                "query_fingerprint": e.info.query_fingerprint,
                "settings": e.info.settings,
                "sources": e.sources,
            })
        }),
        commit,
        files,
        damaged: (!damaged.is_empty()).then(|| damaged.join("; ")),
    })
}

/// An entry read, or `None` with the reason added to `damaged` where it is damaged (with the
/// commands that get past it, for checkpoint `spec`).
fn readable<T>(
    result: Result<Option<T>, checkpoint::CheckpointError>,
    spec: &str,
    damaged: &mut Vec<String>,
) -> Result<Option<T>, checkpoint::CheckpointError> {
    match result {
        Err(e @ checkpoint::CheckpointError::Corrupt { .. }) => {
            damaged.push(Error::from(e).in_checkpoint(spec).to_string());
            Ok(None)
        }
        // A newer Sluice's entry: said beside the batch, the rest shown (the review).
        Err(e @ checkpoint::CheckpointError::NewerFormat { .. }) => {
            damaged.push(e.to_string());
            Ok(None)
        }
        other => other,
    }
}

fn describe_range(batches: &[BatchId]) -> String {
    match (batches.first(), batches.last()) {
        (Some(a), Some(b)) => crate::vocab::span(a, b),
        _ => "none".into(),
    }
}

fn render_text(view: &CheckpointView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "checkpoint  {}", view.location);
    let _ = writeln!(
        out,
        "pipeline    {} (id {})",
        view.metadata.name, view.metadata.id
    );
    let _ = writeln!(out, "created     {}", view.metadata.created);
    // Damaged entries are said in the header too, not only in their batch's lines.
    let damaged: Vec<String> = view
        .batches
        .iter()
        .filter(|b| b.damaged.is_some())
        .map(|b| b.batch.to_string())
        .collect();
    // Batches missing between retained ones: their entries deleted (retention purges only
    // the oldest), which no run notices (audit 94a: said as retained batches alone).
    let listed: Vec<u64> = view.batches.iter().map(|b| b.batch.0).collect();
    let gaps: Vec<String> = listed
        .windows(2)
        .filter(|pair| pair[1] > pair[0] + 1)
        .map(|pair| crate::vocab::span(pair[0] + 1, pair[1] - 1))
        .collect();
    let _ = writeln!(
        out,
        "committed   {} batches retained, last {}{}{}",
        view.batches_committed,
        view.last_committed.map_or("none".into(), |b| b.to_string()),
        if damaged.is_empty() {
            String::new()
        } else if view.rewind_unfinished.is_some() {
            format!(
                "; entries of batch {} left half taken back by the unfinished rewind, which \
                 finishes them (see REWIND below)",
                damaged.join(", ")
            )
        } else {
            format!(
                "; DAMAGED entries of batch {} (see below: `sluice repair {}`)",
                damaged.join(", "),
                crate::vocab::shell_word(&view.location)
            )
        },
        if gaps.is_empty() {
            String::new()
        } else {
            format!(
                "; batch {} MISSING between them (their entries deleted: they and the batch \
                 after each cannot be replayed)",
                gaps.join(", ")
            )
        }
    );
    match &view.rewind_unfinished {
        Some(why) => {
            let _ = writeln!(out, "REWIND      UNFINISHED: {why}");
            if let Some(b) = view.pending {
                let _ = writeln!(out, "pending     batch {b} (part of the unfinished rewind)");
            }
        }
        None if view.inconsistent.is_some() => {
            let _ = writeln!(
                out,
                "INCONSISTENT {}",
                view.inconsistent.as_deref().unwrap_or_default()
            );
            if let Some(b) = view.pending {
                let _ = writeln!(
                    out,
                    "pending     batch {b} (does not run again until the checkpoint is mended)"
                );
            }
        }
        None => {
            let _ = writeln!(
                out,
                "pending     {}",
                view.pending.map_or("none".into(), |b| format!(
                    "batch {b} (runs again on the next start{})",
                    if view.pending_failure.is_some() {
                        "; the last run FAILED on it"
                    } else {
                        ""
                    }
                ))
            );
            if let Some(failure) = &view.pending_failure {
                let _ = writeln!(out, "            {}", failure_line(failure));
            }
        }
    }
    if let Some(w) = view
        .next_watermark_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        let _ = writeln!(out, "watermark   {} (the next batch's)", w.to_rfc3339());
    }
    if let Some(sink) = &view.sink {
        let _ = writeln!(
            out,
            "sink        {}{} ({} mode): {}",
            sink.kind,
            sink.path
                .as_deref()
                .filter(|path| !path.is_empty())
                .map(|path| format!(" {path}"))
                .unwrap_or_default(),
            sink.output_mode,
            match (&sink.unreadable, sink.last_batch) {
                (Some(reason), _) => format!("cannot be read: {reason}"),
                (None, Some(b)) if sink.kind == "files" => format!(
                    "holds batch {b} ({} rows, {} files), {} manifest entries kept",
                    sink.last_batch_rows.unwrap_or(0),
                    sink.last_batch_files.unwrap_or(0),
                    sink.manifest_entries.unwrap_or(0)
                ),
                // A table's sink (Delta, PostgreSQL) keeps no manifest of its own; one that
                // keeps rows, not files (PostgreSQL), has no files to count.
                (None, Some(b)) => match sink.last_batch_rows {
                    Some(rows) => format!(
                        "holds batch {b} ({rows} rows{})",
                        match sink.last_batch_files.unwrap_or(0) {
                            0 => String::new(),
                            files => format!(", {files} files"),
                        }
                    ),
                    // Its log entry cleaned up (walk 125 (8): said as 0 rows).
                    None => format!(
                        "holds batch {b} (its rows not told: the log entry of its commit is \
                         past the table's log retention)"
                    ),
                },
                // The checkpoint committed batches to it, and it records none of them.
                (None, None) if view.batches_committed > 0 && sink.held_entries == Some(0) => {
                    format!(
                        "holds none of the committed batches: its records of them{} are gone \
                         (`sluice run` says what is left, and the way on)",
                        if sink.kind == "files" {
                            " (`_sluice/`)"
                        } else {
                            ""
                        }
                    )
                }
                // A sink that keeps no record (the console): the checkpoint's commits are
                // the record of what it was given.
                (None, None)
                    if let Some(last) = view.last_committed.filter(|_| !sink.keeps_records) =>
                {
                    format!(
                        "keeps no record of the batches it took (what it wrote stays where it \
                         went); the checkpoint's commits are the record: up to batch {last}"
                    )
                }
                (None, None) => "no batch yet".to_string(),
            }
        );
        if let Some(next) = &sink.next_batches_to {
            let _ = writeln!(
                out,
                "            the sink moved: the next batches go to {next} (`sluice rewind` \
                 takes each batch back from where it went)"
            );
        }
    }
    if let Some(r) = &view.retention {
        let _ = writeln!(
            out,
            "retention   the last {} batches (oldest held: {}), a state snapshot every {} batches",
            r.retain_batches,
            r.oldest_batch.map_or("none".into(), |b| b.to_string()),
            r.snapshot_every
        );
    }
    for (source, offset) in &view.source_offsets {
        let words = view
            .source_descriptions
            .get(source)
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "source      {source}: {offset} after the last commit{words}"
        );
        if let Some(why) = view.source_lag_errors.get(source) {
            let _ = writeln!(out, "lag         {source}: not known ({why})");
        }
        if let Some(Some(lag)) = view.source_lag.get(source) {
            let parts = lag
                .parts
                .iter()
                .map(|p| match p.offset {
                    Some(at) if p.gone => format!(
                        "{} at {at}: the brokers no longer have it (its topic deleted, or made \
                         again with fewer partitions); the next run stops there and says what \
                         to do (with `fail_on_data_loss: false`, it leaves the partition out)",
                        p.part
                    ),
                    // Walk 122 (3): a Kafka source reads on from the partition's end, as
                    // Spark's does, not from its start, as this said; a NATS stream from its
                    // first sequence.
                    Some(at) if p.ends_below_read => format!(
                        "{} at {at} of {}: it ends below the position read, so it was deleted \
                         and made again since; the next run stops and says what to do (with \
                         `fail_on_data_loss: false`, {})",
                        p.part,
                        p.end,
                        if p.topic.is_some() {
                            "it reads on from the partition's end now: the records below it are \
                             not read, and are counted as lost rows"
                        } else {
                            "it reads the stream again from its first sequence"
                        }
                    ),
                    Some(at) if p.held_back > 0 => format!(
                        "{} at {at} of {} ({} behind; {} more offsets held back by a \
                         transaction still open, which a `read_committed` read waits for)",
                        p.part, p.end, p.lag, p.held_back
                    ),
                    Some(at) => format!("{} at {at} of {} ({} behind)", p.part, p.end, p.lag),
                    None => format!("{} new, {} to read", p.part, p.lag),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "lag         {source}: {} {} not yet read ({parts})",
                lag.total, lag.unit
            );
        }
    }
    for s in &view.state {
        let _ = writeln!(
            out,
            "state       {}: {} rows, {} files ({} bytes), versions {}, latest snapshot {}",
            s.operator,
            s.rows.map_or("?".into(), |r| r.to_string()),
            s.files,
            s.bytes,
            s.versions
                .map_or("none".into(), |(a, b)| crate::vocab::span(a, b)),
            s.latest_snapshot.map_or("none".into(), |b| b.to_string())
        );
    }
    for damage in &view.state_damage {
        let _ = writeln!(out, "STATE       DAMAGED: {damage}");
    }
    if view.batches.iter().any(|b| b.commit.is_some()) {
        let _ = writeln!(
            out,
            "times       in ms, as each commits/N recorded them: its `commit` is the state \
             version and the fence check before commits/N is written (that write and the purge \
             after it are in the run's progress lines, not here)"
        );
    }
    let mut query_before: Option<&serde_json::Value> = None;
    for b in &view.batches {
        let when = b
            .offsets
            .as_ref()
            .and_then(|o| o.get("batch_timestamp_ms"))
            .and_then(serde_json::Value::as_i64)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let _ = write!(out, "batch {:>6}  {:<9}  {when}", b.batch.0, b.status);
        if let Some(c) = &b.commit {
            // Files are counted only where a source reads files: a Kafka, NATS or
            // PostgreSQL batch would otherwise read as "0 files".
            let files = if c.files_in > 0 {
                format!("{} files, ", c.files_in)
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "  {files}{} rows in, {} rows out, {:.1} ms (plan {:.1}, offsets {:.1}, execute {:.1}, commit {:.1})",
                c.rows_in,
                c.rows_out,
                c.durations.plan_ms
                    + c.durations.offsets_ms
                    + c.durations.execute_ms
                    + c.durations.commit_ms,
                c.durations.plan_ms,
                c.durations.offsets_ms,
                c.durations.execute_ms,
                c.durations.commit_ms
            );
            // Rows read but not in the query's input: said where there were any.
            let malformed = c.rows_skipped.saturating_sub(c.rows_lost);
            if malformed > 0 {
                let _ = write!(out, "; {malformed} malformed rows skipped");
            }
            if c.rows_lost > 0 {
                let _ = write!(out, "; {} rows gone from the source skipped", c.rows_lost);
            }
            if c.rows_late > 0 {
                let _ = write!(out, "; {} late rows", c.rows_late);
                if c.rows_beyond_max_future > 0 {
                    let _ = write!(out, " ({} past max_future)", c.rows_beyond_max_future);
                }
            }
        }
        // Where the query was edited: "why does this batch differ from yesterday's".
        let query = b.offsets.as_ref().and_then(|o| o.get("query_fingerprint"));
        if let (Some(before), Some(now)) = (query_before, query)
            && before != now
        {
            let _ = write!(out, "; query changed");
        }
        if query.is_some() {
            query_before = query;
        }
        // The watermark the batch judged lateness by.
        if let Some(w) = b
            .offsets
            .as_ref()
            .and_then(|o| o.get("watermark_ms"))
            .and_then(serde_json::Value::as_i64)
            .and_then(chrono::DateTime::from_timestamp_millis)
        {
            let _ = write!(out, "; watermark {}", w.to_rfc3339());
        }
        out.push('\n');
        if let Some(why) = &b.damaged {
            let _ = writeln!(out, "              {why}");
        }
        if let Some(sources) = b.offsets.as_ref().and_then(|o| o.get("sources")) {
            let _ = writeln!(out, "              offsets {sources}");
        }
        for (source, files) in &b.files {
            let _ = writeln!(out, "              {source}: {}", files.join(", "));
        }
    }
    out
}
