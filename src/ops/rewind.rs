//! Rewinding a checkpoint: make batch `N` the last committed batch, taking the later batches
//! back from the sink, the state and the logs, so the next run computes them again.
//!
//! Later batches are taken back newest first, and within a batch the sink's files and the
//! state version go before `commits/N` and `offsets/N`. From before the first delete to after
//! the last, the checkpoint holds a `rewind` record: a rewind cut short leaves batches whose
//! output is gone while their commits are still there, so until the same rewind (or one to an
//! earlier batch) is run again, a run refuses to start and inspect and repair name the command.

use crate::Error;
use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::{
    BatchId, Checkpoint, CheckpointError, LogListing, paths, read_commit, read_offsets, take_lock,
};
use crate::pipeline::{OutputMode, Pipeline};
use crate::sink::{Sink, SinkContext, SinkError};
use crate::state::StateFiles;
use crate::storage::{Location, StorageError};

/// What a rewind did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewound {
    /// The batch that is now the last committed one.
    pub to: BatchId,
    /// The batches taken back, newest first, each with how many sink files it deleted (its
    /// manifest, state version and log entries go with it).
    pub taken_back: Vec<(BatchId, u64)>,
    /// Where each batch taken back was taken from: its sink's folder or URL, and its late-rows
    /// sink's (`out and late_out`), as the pipeline file it ran with names them.
    pub sinks: BTreeMap<BatchId, String>,
    /// Whether a state version went with each batch (the query keeps state).
    pub stateful: bool,
    /// What each batch's count in `taken_back` counts (`files`, a table's `rows`).
    pub units: BTreeMap<BatchId, &'static str>,
    /// The pending batches taken back whose sink keeps no record now of what it took (a
    /// Kafka sink's progress topic deleted): whether it took them cannot be told, so their
    /// records may be there, and the next run writes them again.
    pub untold: BTreeSet<BatchId>,
}

/// Rewinds the checkpoint at `location` (shown as `shown` in messages) to batch `to`, under the
/// checkpoint's lock.
///
/// Errors: [`Error::Usage`] naming why the checkpoint cannot be rewound there (not a
/// checkpoint, a sink that cannot take batches back, complete mode, `to` not a retained
/// committed batch, a source log compacted past `to`); storage and checkpoint errors as they
/// come.
pub async fn rewind(location: &Location, shown: &str, to: BatchId) -> Result<Rewound, Error> {
    rewind_or_check(location, shown, to, false).await
}

/// Whether [`rewind`] would rewind the checkpoint at `location` to batch `to` as things are
/// now, changing nothing: its refusal, where it would refuse (a message that advises a rewind
/// says so with it).
///
/// Errors: as [`rewind`]'s.
pub async fn check_rewind(location: &Location, shown: &str, to: BatchId) -> Result<(), Error> {
    rewind_or_check(location, shown, to, true).await.map(|_| ())
}

/// `error`, where its advice names `sluice rewind <checkpoint> --to N` and that rewind would
/// be refused as the checkpoint and sink are now, with the refusal, which says what else to
/// do (walk 80: a pending batch's file gone advised a rewind its PostgreSQL sink, which had
/// taken the batch, refused; walk 81: so did messages gone from a stream). Else as it is.
pub async fn with_refused_rewind(error: Error, spec: &str) -> Error {
    let advised = format!("sluice rewind {} --to ", crate::vocab::shell_word(spec));
    let text = error.to_string();
    let Some(to) = text.find(&advised).and_then(|at| {
        let rest = &text[at + advised.len()..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..digits].parse::<u64>().ok()
    }) else {
        return error;
    };
    let Ok(location) = Location::open(spec, false, false, None) else {
        return error;
    };
    // Only the rewind's own refusals: a lock another run holds, or a store that does not
    // answer now, says nothing of the rewind the user would run later.
    match check_rewind(&location, spec, BatchId(to)).await {
        Err(refusal @ Error::Usage(_)) => Error::RewindRefused {
            source: Box::new(error),
            refusal: refusal.to_string(),
        },
        Ok(()) | Err(_) => error,
    }
}

/// [`rewind`], or with `check_only` its checks alone.
async fn rewind_or_check(
    location: &Location,
    shown: &str,
    to: BatchId,
    check_only: bool,
) -> Result<Rewound, Error> {
    let shown_sh = crate::vocab::shell_word(shown);
    let metadata = Checkpoint::read_metadata(location)
        .await?
        .ok_or_else(|| Error::Usage(crate::checkpoint::not_a_checkpoint(shown)))?;
    let _lock = take_lock(location)?;
    let refuse = |why: String| Error::Usage(format!("cannot rewind {shown} to batch {to}: {why}"));
    let logs = LogListing::read(location).await?;
    let target = to;
    if !logs.commits.contains(&target) || !logs.offsets.contains(&target) {
        // Before the oldest kept batch: purged by `retain_batches`, so no rewind writes that
        // batch again (walk 109: its lost output named this rewind and nothing else).
        let purged = logs.commits.first().is_some_and(|first| target < *first);
        return Err(refuse(format!(
            "batch {to} is not a committed batch the checkpoint still holds (retained: {}){}",
            match (logs.commits.first(), logs.commits.last()) {
                (Some(a), Some(b)) => crate::vocab::span(a, b),
                _ => "none".into(),
            },
            if purged {
                format!(
                    "; it was purged (`retain_batches`), so the oldest kept batch cannot be \
                     written again: where its output is lost, `sluice repair {shown_sh} \
                     --forget-lost-output` drops it from the sink's record and the run goes on \
                     without its rows (a copy from a backup, put back first, keeps them)"
                )
            } else {
                String::new()
            }
        )));
    }
    // The next run starts where batch `to` ended, which only its entry says.
    if let Err(CheckpointError::Corrupt { reason, line, .. }) = read_offsets(location, to).await {
        let earlier = crate::ops::repair::newest_readable_before(location, &logs, to).await;
        return Err(refuse(format!(
            "{} is damaged (line {line}: {reason}), and the next run would start where batch \
             {to} ended, which it records. {}",
            paths::offsets(to),
            match earlier {
                Some(before) => format!(
                    "`sluice repair {shown_sh}` rebuilds it where the sources' logs can; else \
                     rewind further, to the newest batch whose entry reads: `sluice rewind \
                     {shown_sh} --to {before}`"
                ),
                None => format!(
                    "`sluice repair {shown_sh}` rebuilds it where the sources' logs can; no \
                     earlier batch's entry reads"
                ),
            }
        )));
    }
    let newest = logs
        .offsets
        .iter()
        .chain(&logs.commits)
        .copied()
        .max()
        .expect("batch `to` exists");
    // A rewind cut short is finished by one to its batch or an earlier one; a later one would
    // leave the batches between half taken back.
    // A record that does not read is one this rewind writes over: it finishes whatever the
    // cut-short one was doing only if it goes as far back, which the user's `--to` decides.
    let unfinished = match crate::checkpoint::read_rewind(location).await {
        Ok(record) => record,
        Err(CheckpointError::Corrupt { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(record) = &unfinished
        && record.to < to
    {
        return Err(refuse(format!(
            "a rewind to batch {earlier} (started {started}) did not finish, and the batches \
             after {earlier} are partly taken back; finish it first: `sluice rewind {shown_sh} \
             --to {earlier}`",
            earlier = record.to,
            started = record.started
        )));
    }
    let mut rewound = Rewound {
        to,
        taken_back: Vec::new(),
        sinks: BTreeMap::new(),
        stateful: false,
        units: BTreeMap::new(),
        untold: BTreeSet::new(),
    };
    // The pipeline file the newest committed batch ran with stands in for a batch's own
    // where that one names none, or is missing or damaged.
    let newest_pipeline = match crate::driver::newest_stored_pipeline(location, shown, &logs).await
    {
        Ok(pipeline) => pipeline,
        Err(e) => {
            if !check_only {
                // Said without a damaged entry's advice, which is not this command's.
                let why = match &e {
                    Error::Checkpoint(CheckpointError::Corrupt { file, line, reason }) => {
                        format!("{file} line {line} does not read ({reason})")
                    }
                    other => other.shown_in(shown),
                };
                tracing::warn!(
                    "the newest batch's pipeline file cannot be read: {why}; each batch's own \
                     is used"
                );
            }
            None
        }
    };
    let after = AfterNewest {
        pipeline_id: metadata.id,
        newest,
        target,
        newest_pipeline: newest_pipeline.as_ref(),
        check_only,
        shown_sh: &shown_sh,
    };
    // Its refusals said as this rewind's.
    let refused = |e: Error| match e {
        Error::Usage(why) => refuse(why),
        other => other,
    };
    if newest == target {
        fence_then_forget(location, &after, &mut rewound)
            .await
            .map_err(refused)?;
        // A rewind cut short after its last batch (or whose record does not read) is done.
        if !check_only && location.exists(&location.path(paths::REWIND)).await? {
            // What the cut-short one took back stays so first.
            sync_taken_back(location, std::iter::empty()).await?;
            location.delete(&location.path(paths::REWIND)).await?;
            location.sync_folder(&location.path("")).await?;
        }
        return Ok(rewound);
    }
    // Each batch is taken back from the sink its own pipeline file named (a sink that moved
    // between runs keeps its earlier batches where they went).
    let mut pipelines: BTreeMap<String, Pipeline> = BTreeMap::new();
    let mut batch_pipeline = BTreeMap::new();
    // Each batch's offsets entry, read once: it names the batch's pipeline file, and its
    // sources' ends say what input the batch read.
    let mut entries = BTreeMap::new();
    for batch in (to.0 + 1..=newest.0).map(BatchId) {
        // A damaged entry of a batch taken back goes with it (its commit names its pipeline
        // file): rebuilt in memory where its sources' logs can, for the check that its input is
        // still there; where they cannot (a Kafka or NATS source keeps its ranges only there),
        // that check is left out: reading a range gone from the server fails, naming it.
        let entry = match read_offsets(location, batch).await {
            Err(CheckpointError::Corrupt { reason, line, .. }) => {
                match crate::ops::repair::rebuild_offsets(location, shown, batch, &logs).await {
                    Ok(entry) => Some(entry),
                    Err(why) => {
                        // (A check says nothing of its own: the message it adds to does.)
                        if !check_only {
                            tracing::warn!(
                                "{} is damaged (line {line}: {reason}) and cannot be rebuilt \
                                 ({why}); it goes with batch {batch}, whose input is not \
                                 checked to be still there",
                                paths::offsets(batch)
                            );
                        }
                        None
                    }
                }
            }
            read => read?,
        };
        let fingerprint = entry.as_ref().and_then(|e| e.info.pipeline.clone());
        if let Some(entry) = entry {
            entries.insert(batch, entry);
        }
        let fingerprint = match fingerprint {
            Some(f) => Some(f),
            None => read_commit(location, batch).await?.and_then(|c| c.pipeline),
        };
        // A batch's own file, where it names one that is stored and sound.
        let own = match fingerprint {
            Some(f) if pipelines.contains_key(&f) => Some(f),
            Some(f) => match crate::driver::stored_pipeline(location, shown, &f).await {
                Ok(Some(pipeline)) => {
                    pipelines.insert(f.clone(), pipeline);
                    Some(f)
                }
                Ok(None) | Err(_) => {
                    if !check_only {
                        tracing::warn!(
                            "batch {batch}'s pipeline file {} is missing or damaged; taking \
                             the batch back from the newest batch's sink",
                            paths::pipeline(&f)
                        );
                    }
                    None
                }
            },
            None => None,
        };
        let key = match own {
            Some(f) => f,
            None => {
                let pipeline = newest_pipeline.clone().ok_or_else(|| {
                    refuse(
                        "the checkpoint does not store the pipeline file its batches ran with \
                         (`pipelines/`), so their sink is not known. A run with the same, \
                         unchanged pipeline file stores it again (with no new input it commits \
                         nothing); then rewind"
                            .into(),
                    )
                })?;
                pipelines.entry(String::new()).or_insert(pipeline);
                String::new()
            }
        };
        batch_pipeline.insert(batch, key);
    }
    // A source as the next run reads it: where it was moved since a batch ran (its `path`
    // edited, the run warned), from where the newest batch's file names it (walk 127 (4),
    // walk 123 (2): a rewind looked in the old folder, and refused).
    let as_read_now = |name: &str, config: &'_ crate::pipeline::SourceConfig| {
        newest_pipeline
            .as_ref()
            .and_then(|newest| newest.sources.get(name))
            .filter(|now| now.connector().kind() == config.connector().kind())
            .cloned()
            .unwrap_or_else(|| config.clone())
    };
    for pipeline in pipelines.values() {
        for (name, config) in &pipeline.sources {
            as_read_now(name, config)
                .connector()
                .check_forget(name, location, to)
                .await
                .map_err(|e| refuse(e.to_string()))?;
        }
    }
    // A source log entry gone at or before `to` (a compact one): the run after the rewind
    // would refuse over it, after the sink gave the batches back (walk 99).
    if let Some((_, damage)) = super::repair::source_log_damage(location, shown, to)
        .await
        .into_iter()
        .next()
    {
        return Err(refuse(format!(
            "it does not get past what is wrong: {damage}"
        )));
    }
    // Every sink is opened (and every refusal made) before anything is deleted.
    let mut sinks = BTreeMap::new();
    for (key, pipeline) in &pipelines {
        // A sink that took batches after `to` holds this pipeline's records; one without them
        // is not where those batches went (a relative path read from another folder).
        let committed = batch_pipeline
            .iter()
            .any(|(batch, k)| k == key && logs.commits.contains(batch));
        // Where another batch's file has a sink of this kind that keeps records (set since,
        // `batch_column`), the batches of this one are the ones that cannot be taken back.
        let set_since = pipelines.values().any(|p| {
            p.sink.connector().kind() == pipeline.sink.connector().kind()
                && p.sink.connector().keeps_batches()
        });
        let written_before = set_since.then(|| {
            batch_pipeline
                .iter()
                .filter(|(_, k)| *k == key)
                .map(|(batch, _)| *batch)
                .collect::<Vec<BatchId>>()
        });
        // Where the sink moved since (the newest batch's file names another folder), the
        // folder the batches went to may be the one it moved to.
        let moved = batch_pipeline
            .get(&newest)
            .and_then(|k| pipelines.get(k))
            .map(|p| &p.sink)
            .filter(|s| s.connector().location() != pipeline.sink.connector().location());
        let batches_here: Vec<BatchId> = batch_pipeline
            .iter()
            .filter(|(b, k)| *k == key && **b > to)
            .map(|(b, _)| *b)
            .collect();
        let opened = open_sinks(
            pipeline,
            metadata.id,
            to,
            !committed,
            written_before.as_deref(),
            (moved, &batches_here),
            &refuse,
        )
        .await?;
        let records_owner = matches!(pipeline.sink.connector().kind(), "files" | "delta");
        if let (Some(sink), true, true) = (&opened.0, committed, records_owner) {
            let owner = sink.owner().await?;
            // A damaged manifest entry still says the folder is the pipeline's.
            let held = sink
                .summary()
                .await
                .map_or(1, |h| h.map_or(0, |h| h.entries));
            if owner.is_some_and(|o| o != metadata.id) || (owner.is_none() && held == 0) {
                let path = pipeline.sink.connector().location().unwrap_or_default();
                let resolved = std::path::Path::new(&path)
                    .is_relative()
                    .then(|| std::env::current_dir().ok())
                    .flatten()
                    .filter(|_| !path.contains("://"))
                    .map(|cwd| {
                        format!(
                            " (a relative path, resolved against the folder this command \
                             runs in: {})",
                            cwd.join(&path).display()
                        )
                    })
                    .unwrap_or_default();
                if owner.is_none()
                    && pipeline.sink.connector().kind() == "files"
                    && let Some(kept) = crate::sink::data_without_records(&path)
                {
                    return Err(refuse(format!(
                        "the sink {} has lost its records of the batches (its `_sluice/` \
                         folder: owner record and manifest), though {kept} of their data files \
                         are still there, so they cannot be taken back from it. Start the \
                         pipeline over on a new checkpoint with a new, empty `sink.path`, and \
                         remove the old folder's files (or read them apart); nothing was deleted",
                        crate::secret::redact_url(&path)
                    )));
                }
                // Where the path is the folder's wherever the rewind runs, the folder itself
                // was moved, or deleted and made again (walk 125 (9): a Delta table made anew
                // by another tool was said to be looked for from the wrong folder).
                let way = if resolved.is_empty() {
                    "Put the sink folder back where it was (one made again there, by another \
                     tool or by hand, holds none of the pipeline's records); or, where it is \
                     gone for good, start the pipeline over on a new checkpoint with a new, \
                     empty `sink.path`"
                } else {
                    "Run the rewind from the folder the pipeline runs in (relative paths in the \
                     pipeline file resolve against it), or put the sink folder back where it \
                     was"
                };
                return Err(refuse(format!(
                    "the sink {}{resolved} holds no record of this pipeline, though batches \
                     after {to} were committed to it, so they cannot be taken back from it. \
                     {way}; nothing was deleted",
                    crate::secret::redact_url(&path)
                )));
            }
        }
        sinks.insert(key.clone(), opened);
    }
    // A committed batch taken back is computed again from its input by the next run: input
    // gone since (a file deleted or moved) would lose its rows without a word.
    // (A rewind cut short has taken some of them back already: it is finished as it began.)
    let mut gone: Vec<(BatchId, String)> = Vec::new();
    for (batch, key) in &batch_pipeline {
        if !logs.commits.contains(batch) || unfinished.is_some() {
            continue;
        }
        let Some(entry) = entries.get(batch) else {
            continue;
        };
        for source in &entry.sources {
            let Some(config) = pipelines[key].sources.get(&source.source) else {
                continue;
            };
            for input in as_read_now(&source.source, config)
                .connector()
                .gone_inputs(&source.source, location, *batch, &source.offset)
                .await
                .map_err(|e| refuse(e.to_string()))?
            {
                gone.push((*batch, input));
            }
        }
    }
    if let Some(&(newest_gone, _)) = gone.iter().max_by_key(|(batch, _)| *batch) {
        return Err(refuse(format!(
            "the input of batches it would take back is gone: {}. Taking a batch back deletes \
             its output, and the next run computes it again from its input, so the rows of \
             what is gone would be lost. Put it back where it was, then rewind; or rewind to \
             batch {newest_gone} at the earliest. (To leave such rows out on purpose, rewind \
             with the input in place, then move it aside, to a name starting with `_`, before \
             the next run. Where it is gone for good, those batches cannot be computed again: \
             rewind no further back, or start the pipeline over. Where the run was refused \
             because their output files are gone too, a rewind to a later batch does not bring \
             them back: `sluice repair {shown_sh} --forget-lost-output` lets runs carry on \
             without their rows. Where it is another pipeline's files sink, whose own rewind \
             took it back, start this pipeline over on a new checkpoint with a new sink, which \
             reads that folder from its start.)",
            gone.iter()
                .map(|(batch, input)| format!("{input} (batch {batch})"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // Every batch a sink will not take back is found before any is taken back: a rewind
    // refused changes nothing.
    for batch in (to.0 + 1..=newest.0).rev().map(BatchId) {
        let Some(sink) = &sinks[&batch_pipeline[&batch]].0 else {
            continue;
        };
        match sink.check_take_back(batch).await {
            Err(e @ SinkError::TakeBackRefused { .. }) => return Err(refuse(e.to_string())),
            // Said by the sink as it is asked to take the batch back; a check says it now, as
            // the rewind would (walk 80: a PostgreSQL table in update mode).
            Err(e @ (SinkError::NotSupported { .. } | SinkError::Config { .. })) if check_only => {
                let pipeline = &pipelines[&batch_pipeline[&batch]];
                let way = if matches!(e, SinkError::NotSupported { .. }) {
                    format!(
                        ". To compute the batches after batch {to} again, start the pipeline \
                         over on a new checkpoint{}",
                        crate::driver::sink_advice(pipeline).start_over
                    )
                } else {
                    String::new()
                };
                return Err(refuse(format!("{e}{way}")));
            }
            _ => {}
        }
    }
    // A sink that holds a batch after this checkpoint's newest was written on by another copy
    // of it (a newer one, or the one this was restored from): the batches taken back would
    // be that copy's output, its committed rows (walk 69 (1): a stale copy's advised rewind
    // deleted the live run's batch, exit 0, and each round one more).
    if let Some(Some(sink)) = batch_pipeline.get(&newest).map(|key| &sinks[key].0)
        && let Ok(Some(held)) = sink.summary().await
        && let Some((held_last, ..)) = held.last
        // (The batch after the newest, whose offsets entry `sluice repair` moved aside as
        // damaged, may be in the sink: that one is this checkpoint's, and taken back with the
        // rest.)
        && held_last > newest.next()
    {
        // Or a run live on an object store committed them as the rewind read (walk 110:
        // said to be another copy, whose advice gave the checkpoint up).
        let now = LogListing::read(location).await?;
        if let Some(later) = now.commits.last().filter(|later| **later > newest) {
            return Err(refuse(format!(
                "a run is live on the checkpoint: it committed batches up to batch {later} \
                 while the rewind read the checkpoint (its newest was batch {newest}). Nothing \
                 was deleted; stop the run (Ctrl-C, or SIGTERM), then rewind: `sluice rewind \
                 {shown_sh} --to {to}`"
            )));
        }
        return Err(refuse(format!(
            "the sink holds batch {held_last}, after this checkpoint's newest (batch {newest}): \
             another copy of this checkpoint ran on and wrote it (this one is older than its \
             sink: restored from an older copy, or a copy of it), and the batches taken back \
             would be that copy's committed output. Nothing was deleted. Run and rewind the \
             checkpoint that wrote batch {held_last}; this older copy cannot go on with that \
             sink (start it over on a new checkpoint with a sink of its own, if it is to run)"
        )));
    }
    let operators = StateFiles::operators(location).await?;
    rewound.stateful = !operators.is_empty();
    // The next run loads each operator's state as of batch `to`: a version that load needs
    // and no longer finds would stop it (walk 68 (6): the rewind said done, the run then
    // failed naming an earlier batch). Refused here, with the batch to rewind to instead.
    // (A `-ttl` operator's missing stamps are only warned of when loaded; an operator batch
    // `to` wrote no state of, left by an earlier query, is not loaded.)
    let loaded: Option<Vec<String>> = match read_commit(location, to).await {
        Ok(Some(commit)) => Some(commit.state.into_iter().map(|s| s.operator).collect()),
        _ => None,
    };
    // With those batch `to` kept state of whose folder is gone altogether (the review of
    // audit 88c: such a rewind went on, took batches back, and the run failed the same).
    let mut checked = operators.clone();
    for operator in loaded.iter().flatten() {
        if !checked.contains(operator) {
            checked.push(operator.clone());
        }
    }
    for operator in checked
        .iter()
        .filter(|o| !o.ends_with("-ttl"))
        .filter(|o| loaded.as_ref().is_none_or(|loaded| loaded.contains(o)))
    {
        let files = StateFiles::new(location.clone(), operator);
        let missing = match files.missing_for(to).await? {
            Some(missing) => Some(missing),
            // No file of it up to `to`, though batch `to` kept state of it.
            None if loaded.as_ref().is_some_and(|l| l.contains(operator))
                && files.list().await?.iter().all(|f| f.version > to) =>
            {
                Some(BatchId(0))
            }
            None => None,
        };
        if let Some(missing) = missing {
            return Err(refuse(format!(
                "the state of operator `{operator}` lacks version {missing} (no delta or \
                 snapshot file in state/{operator}/), which the next run needs to load its \
                 state as of batch {to}; {}",
                match missing.prev() {
                    Some(before) => format!(
                        "rewind to the batch before it instead, whose state loads: `sluice \
                         rewind {shown} --to {before}`"
                    ),
                    None => "no earlier state loads: start the pipeline on a new checkpoint \
                             instead"
                        .to_string(),
                },
            )));
        }
    }
    if check_only {
        return Ok(rewound);
    }
    // A run live on an object store (no lock keeps it out) is fenced before anything is
    // deleted: it stops at its next check instead of committing batches beside the rewind.
    fence_then_forget(location, &after, &mut rewound)
        .await
        .map_err(refused)?;
    // From the first delete to the last, the checkpoint says a rewind is under way, so that
    // one cut short is named (by run, inspect and repair) with the command that finishes it.
    let record = crate::checkpoint::RewindRecord {
        to,
        from: newest,
        started: unfinished.map(|r| r.started).unwrap_or_else(|| {
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
    };
    location
        .put(
            &location.path(paths::REWIND),
            serde_json::to_vec(&record).expect("a rewind record serializes"),
        )
        .await?;
    for batch in (to.0 + 1..=newest.0).rev().map(BatchId) {
        let key = &batch_pipeline[&batch];
        let pipeline = &pipelines[key];
        let (main_sink, late_sinks, untold) = &sinks[key];
        if main_sink.is_none() && *untold {
            rewound.untold.insert(batch);
        }
        // A batch's sink goes first: a sink that cannot take it back says so before anything
        // of the batch is deleted. Every later batch was taken back whole, so the checkpoint
        // is whole again (its last batch is this one) and no rewind is under way.
        if let Some(sink) = main_sink {
            rewound.units.insert(batch, sink.forgotten_unit());
        }
        let mut deleted = match main_sink {
            Some(sink) => match sink.forget_batch(batch).await {
                // Refused before anything of the batch was deleted (a sink that cannot take
                // batches back, a table gone or made anew since the batch went into it).
                Err(
                    e @ (SinkError::NotSupported { .. }
                    | SinkError::Config { .. }
                    | SinkError::TakeBackRefused { .. }),
                ) => {
                    // The batches after it taken back stay so first.
                    sync_taken_back(location, std::iter::empty()).await?;
                    location.delete(&location.path(paths::REWIND)).await?;
                    location.sync_folder(&location.path("")).await?;
                    let taken: Vec<String> = rewound
                        .taken_back
                        .iter()
                        .map(|(b, _)| b.to_string())
                        .collect();
                    let before = match taken.as_slice() {
                        [] => String::new(),
                        [one] => format!(
                            "; batch {one} was taken back before it, so batch {batch} is now \
                             the last"
                        ),
                        many => format!(
                            "; batches {} were taken back before it, so batch {batch} is now \
                             the last",
                            many.join(", ")
                        ),
                    };
                    // A sink that cannot take batches back in this mode leaves one way to
                    // compute them again: starting over.
                    let way = if matches!(e, SinkError::NotSupported { .. }) {
                        format!(
                            ". To compute the batches after batch {to} again, start the \
                             pipeline over on a new checkpoint{}",
                            crate::driver::sink_advice(pipeline).start_over
                        )
                    } else {
                        String::new()
                    };
                    return Err(refuse(format!("{e}{before}{way}")));
                }
                other => other?,
            },
            // The sink never took a batch after `to`.
            None => 0,
        };
        for sink in late_sinks {
            deleted += sink.forget_batch(batch).await?;
        }
        for operator in &operators {
            StateFiles::new(location.clone(), operator)
                .delete_version(batch)
                .await?;
        }
        for (name, config) in &pipeline.sources {
            config
                .connector()
                .forget_batch(name, location, batch)
                .await?;
        }
        location
            .delete(&location.path(&paths::commits(batch)))
            .await?;
        location
            .delete(&location.path(&paths::offsets(batch)))
            .await?;
        rewound.taken_back.push((batch, deleted));
        if let Some(sink) = pipeline.sink.connector().location() {
            // Each watermarked source's late rows went to a part of their own.
            let late: String = pipeline
                .late_rows
                .as_ref()
                .filter(|late| late.connector().keeps_batches())
                .map(|late| {
                    pipeline
                        .sources
                        .iter()
                        .filter(|(_, config)| config.watermark.is_some())
                        .filter_map(|(source, _)| late.connector().part_location(source))
                        .map(|l| format!(" and {}", crate::secret::redact_url(&l)))
                        .collect()
                })
                .unwrap_or_default();
            rewound
                .sinks
                .insert(batch, format!("{}{late}", crate::secret::redact_url(&sink)));
        }
    }
    let check = LogListing::read(location).await?;
    if check.commits.last() != Some(&target) {
        // A run live on an object store when the rewind fenced it (no lock keeps one out)
        // commits the batch it was at: the rewind record stays, and the same rewind again
        // takes that one back too (walk 69 (4): this said to run `repair`, which sent back
        // to the rewind).
        return Err(refuse(format!(
            "batches were committed while it ran (the newest now is {}): a run was live on the \
             checkpoint and finished the batch it was at before the rewind fenced it. The \
             rewind is not finished; run it again, which takes those back too: `sluice rewind \
             {shown_sh} --to {to}`",
            check
                .commits
                .last()
                .map_or("none".to_string(), |b| format!("batch {b}")),
        )));
    }
    let operators_gone = operators.iter().map(|op| format!("state/{op}"));
    let sources_gone = pipelines
        .values()
        .flat_map(|p| p.sources.keys())
        .map(|name| format!("sources/{name}"));
    sync_taken_back(location, operators_gone.chain(sources_gone)).await?;
    location.delete(&location.path(paths::REWIND)).await?;
    location.sync_folder(&location.path("")).await?;
    Ok(rewound)
}

/// Syncs the checkpoint's folders a rewind deletes in (`commits/`, `offsets/`, each state
/// operator's and source's folder there now, and `folders`, which it may have emptied and so
/// removed), so that what it took back stays taken back through a power loss before its record
/// goes (audit 88b: the deletes were never synced, and a power loss brought back commits whose
/// output the sink had taken back, with no record to say so).
async fn sync_taken_back(
    location: &Location,
    folders: impl Iterator<Item = String>,
) -> Result<(), Error> {
    let mut all: std::collections::BTreeSet<String> = ["commits", "offsets", "state", "sources"]
        .map(String::from)
        .into();
    all.extend(folders);
    if let Some(root) = location.local_root() {
        for parent in ["state", "sources"] {
            for entry in std::fs::read_dir(root.join(parent))
                .into_iter()
                .flatten()
                .flatten()
            {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    all.insert(format!("{parent}/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
    }
    for folder in all {
        location.sync_folder(&location.path(&folder)).await?;
    }
    Ok(())
}

/// The files sink `moved` (opened with `ctx`), where its folder holds this pipeline's records
/// of every one of `batches` (see [`open_sinks`]).
async fn moved_here(
    moved: Option<&crate::pipeline::SinkConfig>,
    batches: &[BatchId],
    ctx: &SinkContext<'_>,
) -> Option<Box<dyn Sink>> {
    let moved = moved.filter(|s| s.connector().kind() == "files")?;
    let folder = moved.connector().location()?;
    let local = std::path::Path::new(&folder);
    if folder.contains("://")
        || batches.is_empty()
        || !batches.iter().all(|b| {
            local
                .join(crate::sink::FilesSink::manifest_file(*b))
                .is_file()
        })
    {
        return None;
    }
    let sink = moved.connector().open(ctx).ok()?;
    (sink.owner().await.ok()?? == ctx.pipeline).then_some(sink)
}

/// The main sink and the late-rows sinks of `pipeline`, opened to take the batches after
/// `to` back; no main sink where it took none of them (a pending batch that failed before
/// the sink's commit), so that taking them back asks nothing of it.
///
/// `pending_only`: no batch after `to` that went to this sink was committed, so a sink that
/// keeps no record of what it took (the console: printed rows stay printed) is asked
/// nothing, as a run that finishes such a batch asks it nothing either.
///
/// `written_before`: the batches that went to this sink, where a later pipeline file's sink
/// of the same kind keeps the records this one did not (a PostgreSQL sink's `batch_column`
/// set since): the refusal names them and the rewind that works.
///
/// `moved`, `batches`: the sink the pipeline file names now, where it names another folder
/// than this one, and the batches after `to` that went here: a files sink folder gone from
/// here whose batches' records are all in that one (moved there, as a run that meets the new
/// path advises) takes them back from there (walk 123 (2): the rewind sent the user to put
/// the old folder back, and then refused over the new one).
///
/// Errors: `refuse`'s error for complete mode or a sink that keeps no batches, where the sink
/// holds a batch after `to` (or cannot say); sink errors as they come. With the sinks, whether
/// the main sink (none opened) keeps no record now of the batches it took, so that whether it
/// took a pending batch cannot be told.
#[allow(clippy::type_complexity)]
async fn open_sinks(
    pipeline: &Pipeline,
    id: uuid::Uuid,
    to: BatchId,
    pending_only: bool,
    written_before: Option<&[BatchId]>,
    (moved, batches): (Option<&crate::pipeline::SinkConfig>, &[BatchId]),
    refuse: &(dyn Fn(String) -> Error + Sync),
) -> Result<(Option<Box<dyn Sink>>, Vec<Box<dyn Sink>>, bool), Error> {
    let ctx = SinkContext {
        label: "",
        pipeline: id,
        replace: pipeline.output_mode == OutputMode::Complete,
        update: pipeline.output_mode == OutputMode::Update,
        part: None,
        create: false,
        sync: true,
        hook: None,
    };
    let mut untold = false;
    let complete = pipeline.output_mode == OutputMode::Complete;
    let main_sink = if complete || !pipeline.sink.connector().keeps_batches() {
        // Where the sink says its newest batch is `to` or older, there is nothing to take
        // back from it.
        let (untouched, unknown) = match pipeline.sink.connector().open(&ctx) {
            Ok(sink) => match sink.summary().await {
                Ok(Some(held)) => {
                    // Its record of batch `to`, committed, is gone (a Kafka sink's progress
                    // topic deleted and made again): what it took after cannot be told.
                    untold = pending_only
                        && pipeline.sink.connector().kind() == "kafka"
                        && held.last.is_none_or(|(batch, ..)| batch < to);
                    (held.last.is_none_or(|(batch, ..)| batch <= to), None)
                }
                Ok(None) => {
                    // A Kafka sink keeps its record in a topic (gone, here); the console
                    // keeps none ever.
                    untold = pending_only && pipeline.sink.connector().kind() == "kafka";
                    (pending_only, None)
                }
                Err(e) => (false, Some(e.to_string())),
            },
            Err(e) => (false, Some(e.to_string())),
        };
        // Where what the sink holds could not be read, the refusal says why.
        let unknown = unknown
            .map(|e| format!(" (what the sink holds could not be read: {e})"))
            .unwrap_or_default();
        if !untouched && complete {
            return Err(refuse(format!(
                "in complete mode each batch's result table replaced the previous one's in \
                 the `{}` sink, so earlier batches cannot be taken back one by one{unknown}. \
                 To compute the whole result again from the input as it is now (a file \
                 corrected since it was read), start the pipeline over on a new checkpoint \
                 with a new, empty output (another `sink.path`, or table): in complete mode its \
                 first run writes the whole result",
                pipeline.sink.connector().kind()
            )));
        }
        if !untouched
            && !pending_only
            && let Some(batches) = written_before.filter(|b| !b.is_empty())
        {
            let last = batches.iter().max().copied().unwrap_or(to);
            return Err(refuse(format!(
                "batch(es) {} went to the `{kind}` sink before it kept a record of each row's \
                 batch{note}, so they cannot be taken back; later batches can: rewind to batch \
                 {last} at the earliest, or, to compute every batch again, start the pipeline \
                 on a new checkpoint with a new output{unknown}",
                batches
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                kind = pipeline.sink.connector().kind(),
                note = pipeline.sink.connector().take_back_note()
            )));
        }
        if !untouched {
            return Err(refuse(format!(
                "its sink is `{kind}`, which cannot take batches back (what a `{kind}` sink \
                 wrote stays where it went: printed, sent to a topic, committed to a table); \
                 to compute the batches again, start the pipeline on a new checkpoint{start_over}\
                 {unknown}{note}",
                kind = pipeline.sink.connector().kind(),
                note = pipeline.sink.connector().take_back_note(),
                // What a new checkpoint needs of the sink: in update and complete mode the
                // same table serves (walk 64: "a new output" said otherwise).
                start_over = crate::driver::sink_advice(pipeline).start_over,
            )));
        }
        None
    } else {
        match pipeline.sink.connector().open(&ctx) {
            Ok(sink) => Some(sink),
            // Moved where the pipeline file names now, with this folder's batches.
            Err(e)
                if e.to_string().contains("no such folder")
                    && let Some(sink) = moved_here(moved, batches, &ctx).await =>
            {
                tracing::info!("{e}: batches {batches:?} are taken back from where it moved");
                Some(sink)
            }
            // Nothing there to take back: what the batches wrote is gone with the folder.
            Err(e) if e.to_string().contains("no such folder") => {
                // A relative path the batch resolved in the folder it ran in, which still holds
                // it: the checkpoint moved (so the path resolves here, as a moved project's
                // does), not the sink. Not where the checkpoint is still where it was too (a
                // copy of the project): the sink there is the original's.
                if let Some(path) = pipeline.sink.connector().location()
                    && !path.contains("://")
                    && std::path::Path::new(&path).is_relative()
                    && let Some(folder) = pipeline.ran_in()
                    && folder.join(&path).is_dir()
                    && pipeline.checkpoint_was().is_some_and(|was| !was.exists())
                {
                    return Err(refuse(format!(
                        "{e}. The batches after {to} ran in folder {folder}, where their \
                         `sink.path: {path}` is {there}, which is there: the checkpoint was \
                         moved without the project, and a moved checkpoint's relative paths \
                         resolve in the folder a command runs in (as a moved or copied \
                         project's do). Run the rewind from that folder (`cd {folder}` first)",
                        folder = crate::vocab::shell_word(&folder.display().to_string()),
                        there = folder.join(&path).display(),
                    )));
                }
                return Err(refuse(format!(
                    "{e}. The sink the batches after {to} went to is gone, and with it what \
                     they wrote. Put it back where it was, then rewind; or, to go on without \
                     it, run the pipeline with a new, empty `sink.path` (no rewind: the next \
                     batch and on go there); or, to compute every batch again, start the \
                     pipeline over on a new checkpoint with a new, empty `sink.path`"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut late_sinks = Vec::new();
    // A late-rows sink that cannot take batches back (a PostgreSQL table without
    // `batch_column`, a Kafka topic) and holds one after `to`: a batch computed again would
    // find it taken and leave its own late rows out.
    if let Some(late) = pipeline
        .late_rows
        .as_ref()
        .filter(|l| !l.connector().keeps_batches() && l.connector().location().is_some())
    {
        for (source, config) in &pipeline.sources {
            if config.watermark.is_none() {
                continue;
            }
            let held = match late.connector().open(&SinkContext {
                label: "",
                part: Some(source),
                replace: false,
                update: false,
                ..ctx
            }) {
                Ok(sink) => sink.summary().await,
                Err(e) => Err(e),
            };
            let after = match held {
                Ok(Some(held)) => held.last.filter(|(batch, ..)| *batch > to).map(|l| l.0),
                Ok(None) => None,
                Err(e) => {
                    return Err(refuse(format!(
                        "what the `late_rows` sink holds of source `{source}` could not be \
                         read: {e}"
                    )));
                }
            };
            if let Some(last) = after {
                return Err(refuse(format!(
                    "the late rows of source `{source}` went to {place}, up to batch {last}, \
                     and a `{kind}` `late_rows` sink cannot take batches back{note}; batches \
                     computed again would find theirs there already and leave their late rows \
                     out. So the checkpoint cannot be rewound below batch {last}; to compute \
                     batches again, start the pipeline over on a new checkpoint with a new \
                     output and a new `late_rows`",
                    place = late
                        .connector()
                        .part_location(source)
                        .map(|l| crate::secret::redact_url(&l))
                        .unwrap_or_default(),
                    kind = late.connector().kind(),
                    note = late.connector().take_back_note(),
                )));
            }
        }
    }
    // A late-rows sink that keeps nothing (the console) has nothing to take back.
    if let Some(late) = pipeline
        .late_rows
        .as_ref()
        .filter(|l| l.connector().keeps_batches())
    {
        for (source, config) in &pipeline.sources {
            if config.watermark.is_none() {
                continue;
            }
            // Late rows are appended whatever the query's mode, as the run opens them.
            let part = SinkContext {
                label: "",
                part: Some(source),
                replace: false,
                update: false,
                ..ctx
            };
            // A folder another pipeline writes is refused before anything is taken back
            // (else the rewind would stop halfway, on every try).
            late.connector()
                .preflight(&part, false)
                .await
                .map_err(|e| refuse(crate::driver::late_rows_error(source, &e).to_string()))?;
            match late.connector().open(&part) {
                Ok(sink) => late_sinks.push(sink),
                // A source without late rows yet has no folder on local disk (an object store
                // has no folders, and opens whatever the prefix).
                Err(SinkError::Storage(StorageError::Open { location, .. }))
                    if !location.contains("://") => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((main_sink, late_sinks, untold))
}

/// What [`fence_then_forget`] needs to know of the rewind.
struct AfterNewest<'a> {
    /// The checkpoint's pipeline id.
    pipeline_id: uuid::Uuid,
    /// The newest batch the rewind found (logged or committed).
    newest: BatchId,
    /// The batch it rewinds to.
    target: BatchId,
    /// The pipeline file the newest batch ran with, where it reads.
    newest_pipeline: Option<&'a Pipeline>,
    /// Whether the rewind only checks (deletes nothing, fences nothing).
    check_only: bool,
    /// The checkpoint as a shell word, for the command said.
    shown_sh: &'a str,
}

/// Takes back what a run left after the newest batch, once a run live on an object store is
/// fenced (no lock keeps one out there; on local disk the rewind's lock does) (walk 110: a
/// rewind deleted, before its fence, a live run's planning of its next batch as one cut
/// short, and the checkpoint lost a source's log entry of a batch the run then committed):
/// where the rewind is to the newest batch, the batch after it that the sink holds and whose
/// offsets entry `sluice repair` moved aside as damaged; and each source's log entry of the
/// batch after the newest, written by a planning that was cut short (no offsets entry names
/// it), so that the batch is planned afresh. A check (`check_only`) checks the first only.
/// Refused where the fenced run logged a batch after the newest as the rewind read (before
/// the deletes: nothing deleted; after: the same rewind again takes it back too).
///
/// Errors: a refusal (`Error::Usage`, the reason alone), the store's.
async fn fence_then_forget(
    location: &Location,
    after: &AfterNewest<'_>,
    rewound: &mut Rewound,
) -> Result<(), Error> {
    let AfterNewest {
        pipeline_id,
        newest,
        target,
        newest_pipeline,
        check_only,
        shown_sh,
    } = *after;
    let went_on = |deleted: bool| async move {
        let now = LogListing::read(location).await?;
        Ok::<_, Error>(
            match now.offsets.iter().chain(&now.commits).copied().max() {
                Some(later) if later > newest => Some(Error::Usage(format!(
                    "a run is live on the checkpoint: it went on to batch {later} while the \
                     rewind read the checkpoint (its newest was batch {newest}). The rewind \
                     fenced it (it stops at its next check){}; run the rewind again, which \
                     takes batch {later} back too: `sluice rewind {shown_sh} --to {target}`",
                    if deleted { "" } else { " and deleted nothing" }
                ))),
                _ => None,
            },
        )
    };
    if !check_only {
        crate::checkpoint::fence_live_runs(location).await?;
        if let Some(refusal) = went_on(false).await? {
            return Err(refusal);
        }
    }
    // The batch after the newest, which the sink took before the run stopped and whose
    // offsets entry `sluice repair` moved aside as damaged, is this checkpoint's: where this
    // rewind takes no batch back that would take it too, it goes here, before its sources'
    // logs (audit 86: they went, and every later run then found the sink ahead of the
    // checkpoint, with no command that got out).
    // (Only where repair moved its entry aside here: a batch after the newest that another
    // copy of this checkpoint committed is that copy's, the review of audit 86.)
    if newest == target
        && let Some(pipeline) = newest_pipeline
        && pipeline.sink.connector().keeps_batches()
        && pipeline.output_mode != OutputMode::Complete
        && crate::checkpoint::offsets_moved_aside(location, newest.next()).await
    {
        let ctx = SinkContext {
            label: "",
            pipeline: pipeline_id,
            replace: false,
            update: pipeline.output_mode == OutputMode::Update,
            part: None,
            create: false,
            sync: true,
            hook: None,
        };
        let after = newest.next();
        if let Ok(sink) = pipeline.sink.connector().open(&ctx)
            && let Ok(Some(held)) = sink.summary().await
            && held.last.is_some_and(|(held_last, ..)| held_last == after)
        {
            if let Err(e) = sink.check_take_back(after).await {
                return Err(Error::Usage(format!(
                    "the sink holds batch {after}, which this checkpoint planned and did not \
                     commit, and cannot take it back: {e}"
                )));
            }
            if !check_only {
                let deleted = sink.forget_batch(after).await.map_err(|e| {
                    Error::Usage(format!("taking batch {after} back from the sink: {e}"))
                })?;
                rewound.units.insert(after, sink.forgotten_unit());
                rewound.taken_back.push((after, deleted));
            }
        }
    }
    if check_only {
        return Ok(());
    }
    // A source's log entry of the batch after the newest, written by a planning that was cut
    // short (no offsets entry names it), goes too, so that batch is planned afresh.
    if let Some(pipeline) = newest_pipeline {
        for (name, config) in &pipeline.sources {
            match config
                .connector()
                .forget_batch(name, location, newest.next())
                .await
            {
                Ok(_) | Err(crate::source::SourceError::NotSupported { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    // A fenced run that logged its batch between the look above and the deletes.
    match went_on(true).await? {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}
