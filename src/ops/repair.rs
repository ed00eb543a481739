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
//! - a committed batch's missing or damaged `offsets/N` (which the next batch, or a pending
//!   one, starts from): rebuilt from `commits/N` and the sources' logs, which record exactly
//!   which files each batch read.
//!
//! - a missing `metadata` beside batch logs (a run refuses such a checkpoint rather than make
//!   a new pipeline id over them): rebuilt with the id every commit records (or the sink's
//!   owner record) and the name in the stored pipeline file.
//!
//! - a stored pipeline file (`pipelines/<fingerprint>.yaml`) gone: stored again from the
//!   pipeline file given (`--pipeline FILE`) where it is the one a batch ran with (its
//!   fingerprint is the one the batch logged: the same text, run from the same folder).
//!
//! - an older batch's damaged entries (runs read only the newest batch's): a committed
//!   batch's `offsets/N` is rebuilt as above; a `commits/N` a later commit follows is moved
//!   aside, as if deleted, since later batches ran on from it (`replay --verify` then holds
//!   its sink files against its recomputation); the newest commit, which a pending batch
//!   starts from, is not (the rewind that works is named);
//! - a file in `commits/`, `offsets/` or `epochs/` whose name is no batch number (a copy made
//!   by hand): moved aside to a hidden name.
//!
//! Anything else (a removed log, a source log folded past the batch) is reported with what to
//! restore.

use crate::Error;
use crate::checkpoint::recovery::{Decision, decide};
use crate::checkpoint::{
    BatchId, BatchInfo, Checkpoint, CheckpointError, LogListing, Metadata, OffsetsEntry,
    SourceOffset, paths, read_commit, read_offsets, take_lock,
};
use crate::pipeline::Pipeline;
use crate::sink::SinkContext;
use crate::storage::Location;

/// What `repair` did and what it could not do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The entries moved aside, and why.
    pub fixed: Vec<String>,
    /// What is still wrong, with what to do.
    pub unfixable: Vec<String>,
    /// What is amiss but needs no repair (runs carry on past it), with how to check it.
    pub notes: Vec<String>,
}

/// Repairs the checkpoint at `location`, shown as `shown` in messages (or, with `dry_run`,
/// says what it would do). A source's lost offset is rebuilt by its connector
/// ([`crate::source::SourceConnector::rebuild_offset`]), as the pipeline file the batch ran
/// with (stored in the checkpoint) configures it.
///
/// `given` is a pipeline file the user gave (`--pipeline FILE`) and how to show it: where a
/// batch ran with it and its stored copy is gone, it is stored again (and what is rebuilt
/// from the stored file, `metadata` among it, is).
///
/// # Errors
/// [`Error::Usage`] when `location` holds no checkpoint; a store or checkpoint error when the
/// logs cannot be read. What cannot be repaired is in [`RepairReport::unfixable`].
pub async fn repair(
    location: &Location,
    shown: &str,
    dry_run: bool,
    given: Option<(&Pipeline, &str)>,
) -> Result<RepairReport, Error> {
    let shown_sh = crate::vocab::shell_word(shown);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    // Names in the numbered folders that are not batch numbers (`commits/1.bak`, a copy made
    // by hand before an edit): every command refuses the checkpoint over them, this one
    // too until they are moved aside (audit 86: repair sent the user back to repair). Hidden
    // names, which every reader skips, as Spark's logs skip files that are not batches.
    // Only in a checkpoint (its `metadata` there, whole or not): another folder's files are
    // not this command's to move.
    let strays = match Checkpoint::read_metadata_file(location).await {
        Ok(None) => Vec::new(),
        // Spark's checkpoint is not this command's to change (audit 88a: its log was moved
        // aside).
        Err(e @ CheckpointError::Spark { .. }) => return Err(e.into()),
        _ => stray_entries(location).await?,
    };
    let early_lock = match strays.is_empty() || dry_run {
        true => None,
        false => Some(take_lock(location)?),
    };
    let mut moved_strays = Vec::new();
    for file in strays {
        let aside = hidden_name(&file, "stray", &stamp);
        if !dry_run {
            location
                .rename(&location.path(&file), &location.path(&aside))
                .await?;
        }
        let folder = file.split('/').next().unwrap_or_default();
        moved_strays.push(format!(
            "moved {file} aside to {aside}: not a batch number, and only numbered entries \
             belong in {folder}/ (every command refused the checkpoint over it)"
        ));
    }
    if dry_run && !moved_strays.is_empty() {
        return Ok(RepairReport {
            fixed: moved_strays,
            notes: vec![
                "what else needs repair is said once those are moved aside (run without \
                 `--dry-run`)"
                    .to_string(),
            ],
            ..RepairReport::default()
        });
    }
    // A missing `metadata` beside batch logs, or a damaged one, is rebuilt.
    let metadata_damage = match Checkpoint::read_metadata(location).await {
        // Whole, but naming another id than the commits' (edited, or copied from another
        // checkpoint): the sink would take this checkpoint for another pipeline.
        Ok(Some(metadata)) => {
            let logs = LogListing::read(location).await?;
            match crate::checkpoint::commit_id_damage(location, &logs, &metadata.id).await {
                Some(crate::checkpoint::CommitIdDamage::Metadata(reason)) => Some(Some(reason)),
                _ => None,
            }
        }
        Ok(None) => {
            return Err(Error::Usage(crate::checkpoint::not_a_checkpoint(shown)));
        }
        Err(CheckpointError::MetadataMissing { .. }) => Some(None),
        Err(CheckpointError::Corrupt { file, line, reason }) if file == paths::METADATA => {
            Some(Some(format!("line {line}: {reason}")))
        }
        Err(e) => return Err(e.into()),
    };
    let _lock =
        match early_lock {
            Some(lock) => lock,
            // A dry run changes nothing: a checkpoint that cannot be written is read as it is.
            None if dry_run => match take_lock(location) {
                Err(CheckpointError::Storage(crate::storage::StorageError::Refused {
                    op, ..
                })) if op == crate::checkpoint::LOCK_UNWRITABLE => None,
                other => other?,
            },
            None => take_lock(location)?,
        };
    let mut report = RepairReport {
        fixed: moved_strays,
        ..RepairReport::default()
    };
    // Half a rewind is finished by that rewind, not mended here: rebuilding or moving log
    // entries aside now could undo part of it.
    if let Err(e) = crate::checkpoint::check_no_rewind_under_way(location).await {
        report.unfixable.push(Error::from(e).shown_in(shown));
        return Ok(report);
    }
    // First, so that what is rebuilt from a stored pipeline file finds it.
    let restored = match given {
        Some((pipeline, file)) => {
            restore_pipeline(location, pipeline, file, dry_run, &mut report).await?
        }
        None => None,
    };
    // Half-written files a killed run left (local disk): never read, only litter, and in the
    // way of a shell's `ls offsets | sort -n`.
    remove_leftovers(
        &mut report,
        location,
        location.staged_leftovers(),
        "",
        dry_run,
    );
    // The same litter in the sinks' folders, which the pipeline file the newest batch ran
    // with names: only under a folder whose owner record names this checkpoint's pipeline,
    // since another's `NAME#N` may be a write still under way.
    if let Some(id) = Checkpoint::read_metadata(location)
        .await
        .ok()
        .flatten()
        .map(|m| m.id)
    {
        let pipeline = newest_pipeline(location, shown).await;
        for (folder, shown_sink) in pipeline
            .as_ref()
            .map(local_sink_folders)
            .unwrap_or_default()
        {
            let leftovers = owned_leftovers(&folder, id);
            let place = format!(" in the sink {shown_sink}");
            remove_leftovers(&mut report, &folder, leftovers, &place, dry_run);
        }
        if let Some(last) = LogListing::read(location).await?.commits.last() {
            for (folder, kept) in pipeline
                .as_ref()
                .map(crate::driver::late_rows_without_records)
                .unwrap_or_default()
            {
                report
                    .unfixable
                    .push(crate::driver::late_rows_lost_records(&folder, kept, *last));
            }
            // A files source read with an inferred schema whose pinned copy is gone.
            for (name, config) in pipeline.iter().flat_map(|p| &p.sources) {
                if config.infers_schema()
                    && let Some(lost) = crate::source::pinned_schema_lost(location, name).await?
                {
                    report.unfixable.push(lost);
                }
            }
        }
    }
    if let Some(damage) = metadata_damage {
        // Rebuilt first: a damaged one is moved aside only for its replacement.
        match rebuild_metadata(location, shown, restored.as_ref()).await {
            Ok((metadata, from)) => {
                if let Some(why) = damage {
                    let aside = aside_name(paths::METADATA, &stamp);
                    if !dry_run {
                        location
                            .rename(&location.path(paths::METADATA), &location.path(&aside))
                            .await?;
                    }
                    report
                        .fixed
                        .push(format!("moved metadata ({why}) aside to {aside}"));
                }
                if !dry_run && !Checkpoint::create_metadata(location, &metadata).await? {
                    report.unfixable.push(
                        "metadata appeared while repairing; run `sluice repair` again".into(),
                    );
                    return Ok(report);
                }
                report.fixed.push(format!(
                    "rebuilt metadata (pipeline `{}`, id {}) from {from}",
                    metadata.name, metadata.id
                ));
            }
            Err(reason) => report.unfixable.push(format!(
                "metadata is missing or damaged and cannot be rebuilt: {reason}. Restore it \
                 from a backup{}",
                match given {
                    Some(_) => String::new(),
                    None => format!(
                        ", or give the pipeline file the batches ran with, from the folder \
                         they ran in: `sluice repair {shown_sh} --pipeline FILE`"
                    ),
                }
            )),
        }
    }
    let mut moved: Vec<String> = Vec::new();
    // Where the newest committed batch's entry is lost for good, the rewind advised (to a batch,
    // or none: start over); the batches it takes back are not reported on their own.
    let mut rewound_to: Option<Option<BatchId>> = None;
    loop {
        let logs = listing_without(location, &moved).await?;
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
            match damaged(
                paths::commits(newest),
                read_commit(location, newest).await.map(|_| ()),
            ) {
                // One that reads but is another checkpoint's.
                None => match Checkpoint::read_metadata(location).await {
                    Ok(Some(metadata)) => {
                        match crate::checkpoint::commit_id_damage(location, &logs, &metadata.id)
                            .await
                        {
                            Some(crate::checkpoint::CommitIdDamage::ForeignCommit(batch, why))
                                if batch == newest =>
                            {
                                Some((paths::commits(newest), why))
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                },
                damage => damage,
            }
        } else {
            None
        };
        let offsets_damage = match damaged(
            paths::offsets(newest),
            read_offsets(location, newest).await.map(|_| ()),
        ) {
            // A pending entry that reads but was not planned after the batch before it.
            None if !committed => crate::checkpoint::pending_entry_damage(location, &logs)
                .await
                .map(|why| (paths::offsets(newest), why)),
            damage => damage,
        };
        let (file, why, effect) = match (commit_damage, offsets_damage) {
            // The batch before it not committed (its commit gone, or moved aside by an
            // earlier repair): moved aside, the batch would be two past the newest commit,
            // which no run carries on from (walk 89: said to run again, and the run then sent
            // the user back to repair). Left as it is, with the rewind that works.
            (Some((file, why)), _)
                if newest
                    .prev()
                    .is_some_and(|prev| !logs.commits.contains(&prev)) =>
            {
                let mut to = None;
                // Both its entries read, as the rewind needs.
                for &batch in logs.commits.iter().rev().filter(|b| **b < newest) {
                    if matches!(read_commit(location, batch).await, Ok(Some(_)))
                        && matches!(read_offsets(location, batch).await, Ok(Some(_)))
                    {
                        to = Some(batch);
                        break;
                    }
                }
                let way = match to {
                    Some(to) => format!(
                        "take the batches after {to}, the newest whose entries read, back \
                         (from the sink too) and run them again: `sluice rewind {shown_sh} \
                         --to {to}`"
                    ),
                    None => "no earlier commit reads to rewind to: restore the commits from \
                             a backup, or start the pipeline over on a new checkpoint (and a \
                             new, empty sink)"
                        .to_string(),
                };
                rewound_to = Some(to);
                report.unfixable.push(format!(
                    "{file} is damaged ({why}), and batch {} before it is not committed (its \
                     commit is gone), so no run can carry on from the batch: {way}",
                    newest.prev().expect("checked")
                ));
                break;
            }
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
                // Left as it is where nothing rebuilds it (a Kafka or NATS source keeps its
                // ranges only there): the batch is taken back and run again instead.
                let mut without = logs.clone();
                without.offsets.retain(|b| *b != newest);
                if let Err(reason) = rebuild_offsets(location, shown, newest, &without).await {
                    let way = if never_rebuilt(&reason) {
                        let (way, to) =
                            committed_batch_lost(location, shown, newest, &without).await;
                        rewound_to = Some(to);
                        way
                    } else {
                        "Run `sluice repair` again once that is put right".into()
                    };
                    report.unfixable.push(format!(
                        "{file} is damaged ({why}) and cannot be rebuilt: {reason}. {way}"
                    ));
                    break;
                }
                (
                    file,
                    why,
                    format!(
                        "batch {newest} is committed; its offsets entry is rebuilt from its \
                         commit and the sources' logs"
                    ),
                )
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
    // A committed batch whose offsets entry is gone (removed, or moved aside above) gets it
    // back from its commit and the sources' logs, where the next batch needs it.
    let mut rebuilt: Vec<BatchId> = Vec::new();
    // Those that cannot be, said once.
    let mut lost: Vec<BatchId> = Vec::new();
    loop {
        let mut logs = listing_without(location, &moved).await?;
        logs.offsets.extend(rebuilt.iter().copied());
        logs.offsets.sort_unstable();
        let target = match decide(&logs) {
            Decision::Inconsistent { reason } => {
                let newest_commit = logs.commits.last().copied();
                let pending = logs.offsets.last().copied();
                match (newest_commit, pending) {
                    (Some(c), _) if !logs.offsets.contains(&c) => c,
                    (_, Some(n))
                        if !logs.commits.contains(&n)
                            && n.prev().is_some_and(|p| {
                                logs.commits.contains(&p) && !logs.offsets.contains(&p)
                            }) =>
                    {
                        n.prev().expect("checked")
                    }
                    _ => {
                        let way_out = crate::checkpoint::recovery::way_out(&logs, shown);
                        report.unfixable.push(format!("{reason}{way_out}"));
                        break;
                    }
                }
            }
            _ => break,
        };
        if rebuilt.contains(&target) {
            break;
        }
        match rebuild_offsets(location, shown, target, &logs).await {
            Ok(entry) => {
                if !dry_run
                    && !location
                        .put_if_absent(
                            &location.path(&paths::offsets(target)),
                            entry.to_text().into_bytes(),
                        )
                        .await?
                {
                    report.unfixable.push(format!(
                        "offsets/{target} appeared while repairing; run `sluice repair` again"
                    ));
                    break;
                }
                report.fixed.push(format!(
                    "rebuilt offsets/{target} from commits/{target} and the sources' logs: {}",
                    entry
                        .sources
                        .iter()
                        .map(|s| format!("{} at {}", s.source, s.offset))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                rebuilt.push(target);
            }
            Err(reason) => {
                lost.push(target);
                let way = if never_rebuilt(&reason) {
                    let (way, to) = committed_batch_lost(location, shown, target, &logs).await;
                    rewound_to = Some(to);
                    way
                } else {
                    "Restore it from a backup, or run `sluice repair` again once that is put \
                     right"
                        .into()
                };
                report.unfixable.push(format!(
                    "offsets/{target} is missing and cannot be rebuilt: {reason}. {way}"
                ));
                break;
            }
        }
    }
    // An older batch's damaged entries (runs read only the newest batch's): a committed
    // batch's offsets entry, which replay and rewind read, is rebuilt from its commit and the
    // sources' logs; a commit, which only replay reads, is moved aside as if deleted, since
    // later batches ran on from it.
    let logs = listing_without(location, &moved).await?;
    let newest = logs.offsets.last().copied();
    let older = |b: &&BatchId| {
        Some(**b) != newest
            && match rewound_to {
                Some(Some(to)) => **b <= to,
                Some(None) => false,
                None => true,
            }
    };
    let corrupt = |result: Result<(), CheckpointError>| match result {
        Err(CheckpointError::Corrupt { reason, line, .. }) => {
            Some(format!("line {line}: {reason}"))
        }
        _ => None,
    };
    for &batch in logs.offsets.iter().filter(older) {
        let Some(why) = corrupt(read_offsets(location, batch).await.map(|_| ())) else {
            continue;
        };
        let file = paths::offsets(batch);
        let aside = aside_name(&file, &stamp);
        let entry = match logs.commits.contains(&batch) {
            true => rebuild_offsets(location, shown, batch, &logs).await,
            false => Err(format!("batch {batch} has no commit")),
        };
        match entry {
            Ok(entry) => {
                // Copied aside and then overwritten, so the entry is never missing.
                if !dry_run {
                    let damaged = location.get(&location.path(&file)).await?;
                    location
                        .put(&location.path(&aside), damaged.unwrap_or_default().to_vec())
                        .await?;
                    location
                        .put(&location.path(&file), entry.to_text().into_bytes())
                        .await?;
                }
                report.fixed.push(format!(
                    "copied {file} ({why}) aside to {aside} and rebuilt it from commits/{batch} \
                     and the sources' logs"
                ));
            }
            Err(reason) => report.unfixable.push(format!(
                "{file} is damaged ({why}) and cannot be rebuilt: {reason}. Runs carry on \
                 without it; restore it from a backup to replay batch {} or rewind to {batch}",
                batch.0 + 1
            )),
        }
    }
    // An older committed batch's offsets entry gone (deleted by hand): rebuilt as above, for
    // replay and rewind, which read it. (Below the oldest offsets entry, a purge took it.)
    let oldest = logs.offsets.first().copied();
    for &batch in logs
        .commits
        .iter()
        .filter(older)
        .filter(|b| oldest.is_some_and(|o| **b > o) && !logs.offsets.contains(b))
    {
        if rebuilt.contains(&batch) || lost.contains(&batch) {
            continue;
        }
        let file = paths::offsets(batch);
        match rebuild_offsets(location, shown, batch, &logs).await {
            Ok(entry) => {
                if !dry_run
                    && !location
                        .put_if_absent(&location.path(&file), entry.to_text().into_bytes())
                        .await?
                {
                    report.unfixable.push(format!(
                        "{file} appeared while repairing; run `sluice repair` again"
                    ));
                    continue;
                }
                report.fixed.push(format!(
                    "rebuilt {file} (missing) from commits/{batch} and the sources' logs"
                ));
            }
            Err(reason) => report.unfixable.push(format!(
                "{file} is missing and cannot be rebuilt: {reason}. Runs carry on without it; \
                 restore it from a backup to replay batch {batch} or {} or rewind to {batch}",
                batch.0 + 1
            )),
        }
    }
    // The newest commit's stored pipeline file gone: runs carry on (they store the file they
    // run with), but rewind and replay need it.
    if let Some(&last) = logs.commits.last()
        && Some(last) == newest
        && let Ok(Some(commit)) = read_commit(location, last).await
        && let Some(fingerprint) = commit.pipeline.as_deref()
        && matches!(
            crate::driver::stored_pipeline(location, shown, fingerprint).await,
            Ok(None)
        )
    {
        report.notes.push(format!(
            "{}, the pipeline file batch {last} ran with, is missing: runs carry on, but rewind \
             needs it (and replay `--pipeline FILE`). A run with the same, unchanged pipeline \
             file stores it again, as does `sluice repair {shown_sh} --pipeline FILE`",
            paths::pipeline(fingerprint)
        ));
    }
    // A pending batch whose stored pipeline file is gone: nothing here rebuilds it.
    if let Some(pending) = newest.filter(|n| !logs.commits.contains(n))
        && let Ok(Some(entry)) = read_offsets(location, pending).await
        && let Some(fingerprint) = entry.info.pipeline.as_deref()
        && !matches!(
            crate::driver::stored_pipeline(location, shown, fingerprint).await,
            Ok(Some(_))
        )
    {
        report.unfixable.push(
            crate::driver::planned_pipeline_missing(location, shown, pending, fingerprint).await,
        );
    }
    // Only a commit a later commit follows: the newest commit, with a later batch pending,
    // is what that batch starts from (audit 86: moved aside "as if deleted", it left a
    // checkpoint no run took, and repair had said the next run carries on).
    let newest_commit = logs.commits.last().copied();
    for &batch in logs.commits.iter().filter(older) {
        let Some(why) = corrupt(read_commit(location, batch).await.map(|_| ())) else {
            continue;
        };
        let file = paths::commits(batch);
        if Some(batch) == newest_commit {
            let way = match batch.0.checked_sub(1) {
                Some(before) => format!(
                    "take it and the batches after it back and run again: `sluice rewind \
                     {shown_sh} --to {before}`"
                ),
                None => "start the pipeline over on a new checkpoint".to_string(),
            };
            report.unfixable.push(format!(
                "{file} is damaged ({why}), and batch {batch} is the newest committed, which \
                 the pending batch after it starts from: restore it from a backup, or {way}"
            ));
            continue;
        }
        let aside = aside_name(&file, &stamp);
        if !dry_run {
            location
                .rename(&location.path(&file), &location.path(&aside))
                .await?;
        }
        moved.push(file.clone());
        report.fixed.push(format!(
            "moved {file} ({why}) aside to {aside}: later batches are committed, so runs carry \
             on without it, as they did"
        ));
    }
    // A damaged source log entry lists a batch's input, which nothing else records: only
    // taking the batch back gets past it, and the error says how.
    let logs = listing_without(location, &moved).await?;
    // Deleted entries, per source: the way out takes back from the first of them, once.
    let mut gone: std::collections::BTreeMap<String, (Vec<BatchId>, String, Pipeline)> =
        Default::default();
    for &batch in &logs.offsets {
        let Ok(Some(entry)) = read_offsets(location, batch).await else {
            continue;
        };
        let Some(fingerprint) = &entry.info.pipeline else {
            continue;
        };
        let Ok(Some(pipeline)) = crate::driver::stored_pipeline(location, shown, fingerprint).await
        else {
            continue;
        };
        for source in &entry.sources {
            let Some(config) = pipeline.sources.get(&source.source) else {
                continue;
            };
            match config
                .connector()
                .batch_inputs(&source.source, location, batch, &source.offset)
                .await
            {
                Err(crate::source::SourceError::Checkpoint(
                    e @ CheckpointError::Corrupt { .. },
                )) => {
                    report
                        .unfixable
                        .push(Error::from(e).in_checkpoint(shown).to_string());
                }
                // A deleted entry: the files it listed would be read again by the next batch.
                Err(crate::source::SourceError::Checkpoint(CheckpointError::Inconsistent {
                    reason,
                    ..
                })) => {
                    gone.entry(source.source.clone())
                        .or_insert_with(|| (Vec::new(), reason, pipeline.clone()))
                        .0
                        .push(batch);
                }
                _ => {}
            }
        }
    }
    for (source, (batches, reason, pipeline)) in gone {
        let (Some(&first), Some(&last)) = (batches.first(), batches.last()) else {
            continue;
        };
        let which = if first == last {
            format!("batch {first}")
        } else {
            format!(
                "batches {} ({} of them)",
                crate::vocab::span(first, last),
                batches.len()
            )
        };
        report.unfixable.push(format!(
            "source `{source}`, {which}: {reason}; nothing else records which files they read, \
             and the next batch would read them again. {}",
            match first.prev() {
                Some(before) if logs.commits.contains(&before) => format!(
                    "Take the batches from {first} back, which reads their files again, once: \
                     `sluice rewind {shown_sh} --to {before}`"
                ),
                _ => format!(
                    "No rewind gets past it (batch {first} is the first the checkpoint keeps): \
                     start over on a new checkpoint{}",
                    crate::driver::sink_advice(&pipeline).start_over
                ),
            }
        ));
    }
    // An entry no retained batch's own list shows gone (a compact one, folding the older
    // batches): the newest batch's count of files read says it (walk 99: repair found
    // nothing to repair, and the run refused).
    if let Some(&newest_planned) = logs.offsets.last() {
        for (source, damage) in source_log_damage(location, shown, newest_planned).await {
            if !report
                .unfixable
                .iter()
                .any(|u| u.starts_with(&format!("source `{source}`")))
            {
                report.unfixable.push(damage);
            }
        }
    }
    let committed = logs.commits.last().copied().unwrap_or(BatchId(0));
    let newest = crate::driver::newest_stored_pipeline(location, shown, &logs)
        .await
        .ok()
        .flatten();
    let (damage, older) = state_damage(location, shown, committed, false, newest.as_ref()).await;
    report.unfixable.extend(damage);
    report.notes.extend(older);
    // An older batch's commit deleted: later batches ran on from it, and nothing reads it.
    if let (Some(first), Some(last)) = (logs.commits.first(), logs.commits.last()) {
        // (Below the oldest commit, an offsets entry is a purge's leftover.)
        for batch in logs
            .offsets
            .iter()
            .filter(|b| *b > first && *b < last && !logs.commits.contains(b))
        {
            report.notes.push(format!(
                "commits/{batch} is missing, but later batches are committed, so runs carry on \
                 without it (nothing recomputes it); `sluice replay {shown_sh} --batch {batch} \
                 --verify` checks its sink files against its recomputation"
            ));
        }
    }
    Ok(report)
}

/// What each source of batch `batch` (in the checkpoint at `location`, shown as `shown`) finds
/// missing from its own log for the batches up to it
/// ([`crate::source::SourceConnector::log_damage`]), by source name, each said with the way
/// out: the entry from a backup, or a new start in the sink's terms. Empty where the batch's
/// offsets entry or stored pipeline file does not read (said elsewhere).
pub(crate) async fn source_log_damage(
    location: &Location,
    shown: &str,
    batch: BatchId,
) -> Vec<(String, String)> {
    let Ok(Some(entry)) = read_offsets(location, batch).await else {
        return Vec::new();
    };
    let Some(fingerprint) = &entry.info.pipeline else {
        return Vec::new();
    };
    let Ok(Some(pipeline)) = crate::driver::stored_pipeline(location, shown, fingerprint).await
    else {
        return Vec::new();
    };
    let logs = LogListing::read(location).await.unwrap_or_default();
    let shown_sh = crate::vocab::shell_word(shown);
    let mut damage = Vec::new();
    for source in &entry.sources {
        let Some(config) = pipeline.sources.get(&source.source) else {
            continue;
        };
        let connector = config.connector();
        let Ok(Some(what)) = connector
            .log_damage(&source.source, location, batch, &source.offset)
            .await
        else {
            continue;
        };
        // A kept batch's own entry deleted: the rewind to the batch before it reads its
        // files again, once, where nothing older is missing too (the review: a deleted
        // numbered entry was sent to a backup or a new start only).
        let mut way = None;
        for &kept in logs.offsets.iter().filter(|b| **b <= batch) {
            let Ok(Some(kept_entry)) = read_offsets(location, kept).await else {
                continue;
            };
            let Some(offset) = kept_entry.offset_of(&source.source) else {
                continue;
            };
            if !matches!(
                connector
                    .batch_inputs(&source.source, location, kept, offset)
                    .await,
                Err(crate::source::SourceError::Checkpoint(
                    CheckpointError::Inconsistent { .. }
                ))
            ) {
                continue;
            }
            let Some(before) = kept.prev().filter(|b| logs.commits.contains(b)) else {
                break;
            };
            let whole_before = match read_offsets(location, before).await {
                Ok(Some(e)) => match e.offset_of(&source.source) {
                    Some(o) => matches!(
                        connector
                            .log_damage(&source.source, location, before, o)
                            .await,
                        Ok(None)
                    ),
                    None => true,
                },
                _ => false,
            };
            if whole_before {
                way = Some(format!(
                    "Take the batches from {kept} back, which reads their files again, once: \
                     `sluice rewind {shown_sh} --to {before}`"
                ));
            }
            break;
        }
        let way = way.unwrap_or_else(|| {
            format!(
                "Put the entry back from a backup, or start over on a new checkpoint{}",
                crate::driver::sink_advice(&pipeline).start_over
            )
        });
        damage.push((
            source.source.clone(),
            format!("{what}; nothing else records which files it listed. {way}"),
        ));
    }
    damage
}

/// What is wrong with the state files the runs after batch `committed` load, each said with
/// how to get past it (the rewind that computes the state again, or the file to restore): a
/// version missing from the chain the next run loads (the newest snapshot, then every delta
/// after it), or a file that does not read (truncated, overwritten); and, apart, damaged
/// files older than that chain, which only a rewind would read. Both empty when all is well.
///
/// With `loaded_only`, only the files the next run loads are read (the newest snapshot and
/// the deltas after it); else every file up to `committed` (older ones serve a rewind).
pub async fn state_damage(
    location: &Location,
    shown: &str,
    committed: BatchId,
    loaded_only: bool,
    pipeline: Option<&crate::pipeline::Pipeline>,
) -> (Vec<String>, Vec<String>) {
    // Each said with the ways out the pipeline's sink allows, where its file is known.
    let said = |e: crate::state::StateError| {
        let e = Error::from(e);
        match pipeline {
            Some(pipeline) => crate::driver::with_sink_advice(e, pipeline),
            None => e,
        }
        .in_checkpoint(shown)
        .to_string()
    };
    // A state file that does not read (truncated, overwritten) stops the next run that loads
    // it, and nothing else records what it held: only taking back the batches from its
    // version on gets past it, and its message says how.
    // (Versions after the newest commit are rewritten by the run that finishes their batch.)
    let (mut damage, mut older) = (Vec::new(), Vec::new());
    // The operators the newest commit records state for: one whose folder is gone (a copy
    // that left `state/` behind) stops the next run too (audit 88c: inspect and repair called
    // such a checkpoint healthy).
    let recorded: Vec<String> = match crate::checkpoint::read_commit(location, committed).await {
        Ok(Some(commit)) => commit.state.into_iter().map(|s| s.operator).collect(),
        _ => Vec::new(),
    };
    let mut operators = crate::state::StateFiles::operators(location)
        .await
        .unwrap_or_default();
    for operator in &recorded {
        if !operators.contains(operator) {
            operators.push(operator.clone());
        }
    }
    for operator in operators {
        let files = crate::state::StateFiles::new(location.clone(), &operator);
        let listed = match files.list().await {
            Ok(listed) => listed,
            Err(e) => {
                damage.push(Error::from(e).in_checkpoint(shown).to_string());
                continue;
            }
        };
        let upto: Vec<_> = listed
            .into_iter()
            .filter(|f| f.version <= committed)
            .collect();
        if upto.is_empty() && recorded.contains(&operator) {
            // The load starts at version 0 where there is no snapshot: that is what it lacks.
            damage.push(said(crate::state::StateError::Missing {
                operator: operator.clone(),
                version: BatchId(0),
                wanted: committed,
                checkpoint: None,
                sink: None,
            }));
            continue;
        }
        // A version gone from the chain the next run loads (the newest snapshot, then every
        // delta after it) stops that run as surely as a damaged one.
        use crate::state::StateFileKind;
        let first = upto
            .iter()
            .filter(|f| f.kind == StateFileKind::Snapshot)
            .map(|f| f.version.0 + 1)
            .max()
            .unwrap_or(0);
        if !upto.is_empty()
            && let Some(version) = (first..=committed.0).find(|v| {
                !upto
                    .iter()
                    .any(|f| f.version.0 == *v && f.kind == StateFileKind::Delta)
            })
        {
            let missing = crate::state::StateError::Missing {
                operator: operator.clone(),
                version: BatchId(version),
                wanted: committed,
                checkpoint: None,
                sink: None,
            };
            damage.push(said(missing));
        }
        let loaded = |f: &crate::state::StateFile| f.version.0 + 1 >= first;
        for file in upto.into_iter().filter(|f| !loaded_only || loaded(f)) {
            if let Err(e @ crate::state::StateError::Corrupt { .. }) = files.read(&file).await {
                if loaded(&file) {
                    damage.push(said(e));
                } else {
                    // Older than the newest snapshot: no run loads it, only a rewind to
                    // before that snapshot would.
                    older.push(format!(
                        "state file {} is damaged, but runs do not load it (state version \
                         {} is a snapshot); only a rewind to a batch before {} would need it: \
                         restore it from a backup before such a rewind",
                        file.path,
                        first.saturating_sub(1),
                        first.saturating_sub(1)
                    ));
                }
            }
        }
    }
    (damage, older)
}

/// What to do where committed batch `batch`'s offsets entry is lost and nothing rebuilds it:
/// take the batch back (its output goes from the sink) and run it again from its input, from
/// where the newest earlier batch whose entry reads (in `logs`) ended; or restore the file.
/// Without such a batch, the pipeline starts over. With the batch the rewind goes to.
async fn committed_batch_lost(
    location: &Location,
    shown: &str,
    batch: BatchId,
    logs: &LogListing,
) -> (String, Option<BatchId>) {
    let shown_sh = crate::vocab::shell_word(shown);
    let to = newest_readable_before(location, logs, batch).await;
    let said = match to {
        Some(to) => format!(
            "Batch {batch} is committed: take it back{} and run it again from its input with \
             `sluice rewind {shown_sh} --to {to}`, then run the pipeline (or restore \
             offsets/{batch} from a backup)",
            if to.next() == batch {
                String::new()
            } else {
                format!(" with the batches after {to} (the newest whose offsets entry reads)")
            }
        ),
        None => format!(
            "Batch {batch} is committed, with no earlier batch whose offsets entry reads to \
             rewind to: restore offsets/{batch} from a backup, or start the pipeline over on a \
             new checkpoint (and a new, empty sink)"
        ),
    };
    (said, to)
}

/// The newest committed batch before `batch` (in `logs`) whose offsets entry reads: where a
/// rewind can go to run the batches after it again.
pub(crate) async fn newest_readable_before(
    location: &Location,
    logs: &LogListing,
    batch: BatchId,
) -> Option<BatchId> {
    for &before in logs.offsets.iter().rev().filter(|b| **b < batch) {
        if logs.commits.contains(&before)
            && matches!(read_offsets(location, before).await, Ok(Some(_)))
        {
            return Some(before);
        }
    }
    None
}

/// Whether `reason` (why an offsets entry could not be rebuilt) is that a source keeps its
/// ranges only there (Kafka, NATS): nothing rebuilds it, whereas another reason (a store that
/// failed) may pass.
fn never_rebuilt(reason: &str) -> bool {
    reason.contains("is not supported by the")
}

/// The logs' listing without the entries in `moved` (moved aside, or in a dry run only
/// pretended away).
async fn listing_without(
    location: &Location,
    moved: &[String],
) -> Result<LogListing, CheckpointError> {
    let mut logs = LogListing::read(location).await?;
    logs.offsets
        .retain(|b| !moved.contains(&paths::offsets(*b)));
    logs.commits
        .retain(|b| !moved.contains(&paths::commits(*b)));
    Ok(logs)
}

/// Removes `leftovers` (half-written files a killed run left, relative to local folder
/// `folder`; `place` says where, for the report) unless `dry_run`, and reports what was
/// removed, or would be, and what could not be.
fn remove_leftovers(
    report: &mut RepairReport,
    folder: &Location,
    mut leftovers: Vec<String>,
    place: &str,
    dry_run: bool,
) {
    if !dry_run && let Some(root) = folder.local_root() {
        leftovers.retain(|file| match std::fs::remove_file(root.join(file)) {
            Ok(()) => true,
            Err(e) => {
                report
                    .unfixable
                    .push(format!("could not remove {file}{place}: {e}"));
                false
            }
        });
    }
    if !leftovers.is_empty() {
        report.fixed.push(format!(
            "{} {} half-written file{} a killed run left{place} (never read): {}",
            if dry_run { "would remove" } else { "removed" },
            leftovers.len(),
            if leftovers.len() == 1 { "" } else { "s" },
            leftovers.join(", ")
        ));
    }
}

/// The half-written files a killed run left in local sink folder `folder` (see
/// [`Location::staged_leftovers`]), of those under a folder whose owner record names pipeline
/// `id`: another pipeline's may be writes still under way.
pub fn owned_leftovers(folder: &Location, id: uuid::Uuid) -> Vec<String> {
    let Some(root) = folder.local_root() else {
        return Vec::new();
    };
    let mut leftovers = folder.staged_leftovers();
    leftovers.retain(|file| owned_by(root, file, id));
    leftovers
}

/// Whether `file` (relative to local folder `root`) is under a folder whose sink owner record
/// (`_sluice/owner`, written by a files sink) names pipeline `id`.
fn owned_by(root: &std::path::Path, file: &str, id: uuid::Uuid) -> bool {
    let id = id.to_string();
    let parts: Vec<&str> = file.split('/').collect();
    let folders = &parts[..parts.len().saturating_sub(1)];
    let mut folder = root.to_path_buf();
    for i in 0..=folders.len() {
        let owner = folder.join(crate::sink::SLUICE_DIR).join("owner");
        if std::fs::read_to_string(owner).is_ok_and(|text| text.contains(&id)) {
            return true;
        }
        if let Some(part) = folders.get(i) {
            folder.push(part);
        }
    }
    false
}

/// What `sluice repair --forget-lost-output` did: the gone output files it dropped from the
/// sink's record, and those it left (their batch's input is still there).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForgottenOutput {
    /// Each file dropped (or, in a dry run, to be dropped): its batch and the file in words.
    pub forgotten: Vec<(BatchId, String)>,
    /// Each gone file left in the record, since its batch's input is there: a rewind
    /// writes it again.
    pub recoverable: Vec<(BatchId, String)>,
    /// Of `forgotten`, those whose input is there, but whose batch no rewind can write again:
    /// the batch before it is no longer kept (`retain_batches`; walk 109: the rewind named
    /// was refused, and this repair too).
    pub past_retention: Vec<BatchId>,
}

/// Drops from the sink's record of the committed batches the output files that are gone
/// (`sluice repair --forget-lost-output`), where their batch's input is gone too, so that
/// runs carry on without their rows: a run refuses a sink that lost a kept batch's files,
/// and no rewind can write a batch whose input is gone. A batch whose input is there is
/// left for the rewind that writes it again. The sink is the one the newest batch's
/// pipeline file names; with `dry_run` nothing changes.
///
/// # Errors
/// [`Error::Usage`] when `location` holds no checkpoint, or its sink keeps no record of files
/// (only a files sink does); store and sink errors as they come.
pub async fn forget_lost_output(
    location: &Location,
    shown: &str,
    dry_run: bool,
) -> Result<ForgottenOutput, Error> {
    let metadata = Checkpoint::read_metadata(location)
        .await?
        .ok_or_else(|| Error::Usage(crate::checkpoint::not_a_checkpoint(shown)))?;
    let _lock = take_lock(location)?;
    let logs = LogListing::read(location).await?;
    let Some(&last) = logs.commits.last() else {
        return Ok(ForgottenOutput::default());
    };
    let Some(pipeline) = newest_pipeline(location, shown).await else {
        return Ok(ForgottenOutput::default());
    };
    // The batches whose input is gone: no rewind writes them again.
    let mut input_gone = std::collections::BTreeSet::new();
    for &batch in &logs.commits {
        let Ok(Some(entry)) = read_offsets(location, batch).await else {
            continue;
        };
        for source in &entry.sources {
            let Some(config) = pipeline.sources.get(&source.source) else {
                continue;
            };
            if !config
                .connector()
                .gone_inputs(&source.source, location, batch, &source.offset)
                .await
                .map_err(|e| Error::Usage(e.to_string()))?
                .is_empty()
            {
                input_gone.insert(batch);
            }
        }
    }
    let sink = pipeline.sink.connector().open(&SinkContext {
        label: "",
        pipeline: metadata.id,
        replace: pipeline.output_mode == crate::pipeline::OutputMode::Complete,
        update: pipeline.output_mode == crate::pipeline::OutputMode::Update,
        part: None,
        create: false,
        sync: true,
        hook: None,
    })?;
    // A batch whose batch before is purged: no rewind reaches back before it.
    let unrewindable = |batch: BatchId| {
        batch
            .prev()
            .is_some_and(|before| !logs.commits.contains(&before))
    };
    let forget = |batch: BatchId| input_gone.contains(&batch) || unrewindable(batch);
    let Some(gone) = sink.forget_lost(last, &forget, dry_run).await? else {
        return Err(Error::Usage(format!(
            "--forget-lost-output: the `{}` sink keeps no record of files to forget",
            pipeline.sink.connector().kind()
        )));
    };
    let (forgotten, recoverable): (Vec<_>, Vec<_>) =
        gone.into_iter().partition(|(batch, _)| forget(*batch));
    let past_retention = forgotten
        .iter()
        .map(|(batch, _)| *batch)
        .filter(|batch| !input_gone.contains(batch))
        .collect();
    Ok(ForgottenOutput {
        forgotten,
        recoverable,
        past_retention,
    })
}

/// The pipeline file the newest batch ran with, as stored in the checkpoint; `None` when no
/// batch names one or it cannot be read (repair goes on without it).
async fn newest_pipeline(location: &Location, shown: &str) -> Option<Pipeline> {
    let logs = LogListing::read(location).await.ok()?;
    for batch in logs.offsets.iter().rev() {
        if let Ok(Some(entry)) = read_offsets(location, *batch).await {
            let fingerprint = entry.info.pipeline?;
            return crate::driver::stored_pipeline(location, shown, &fingerprint)
                .await
                .ok()
                .flatten();
        }
    }
    None
}

/// The folders on local disk of the sink and the late-rows sink, opened, with their paths as
/// the pipeline file gives them; a sink that is not a local folder (an object store, a
/// server, the console) is left out.
pub fn local_sink_folders(pipeline: &Pipeline) -> Vec<(Location, String)> {
    std::iter::once(&pipeline.sink)
        .chain(pipeline.late_rows.as_ref())
        .filter_map(|sink| {
            let shown = sink.connector().location()?;
            let folder = Location::open(&shown, false, false, None).ok()?;
            folder.local_root()?;
            Some((folder, shown))
        })
        .collect()
}

/// Stores `pipeline` (the file the user gave, shown as `file`) in the checkpoint at
/// `location` where a batch's log entry names its fingerprint and its stored copy is gone
/// (said in `report`; not written in a `dry_run`), or says that no batch ran with it. The
/// fingerprint and the pipeline as read back from its stored text, where it is one a batch
/// ran with.
///
/// Errors: the store's.
async fn restore_pipeline(
    location: &Location,
    pipeline: &Pipeline,
    file: &str,
    dry_run: bool,
    report: &mut RepairReport,
) -> Result<Option<(String, Pipeline)>, Error> {
    let text = pipeline.stored_text(location.local_root());
    let fingerprint = crate::plan::fingerprint(&text);
    let logs = LogListing::read(location).await?;
    let mut named = false;
    for batch in logs.offsets.iter().rev() {
        if let Ok(Some(entry)) = read_offsets(location, *batch).await
            && entry.info.pipeline.as_deref() == Some(fingerprint.as_str())
        {
            named = true;
            break;
        }
    }
    for batch in logs.commits.iter().rev() {
        if named {
            break;
        }
        if let Ok(Some(commit)) = read_commit(location, *batch).await {
            named = commit.pipeline.as_deref() == Some(fingerprint.as_str());
        }
    }
    if !named {
        report.notes.push(format!(
            "{file} is not the pipeline file a batch of this checkpoint ran with (its text, or \
             the folder it is given from, differ from theirs): nothing was taken from it"
        ));
        return Ok(None);
    }
    let stored = paths::pipeline(&fingerprint);
    let there = matches!(
        crate::checkpoint::read_fingerprinted(location, &stored, &fingerprint).await,
        Ok(Some(_))
    );
    if !there {
        if !dry_run {
            location
                .put(&location.path(&stored), text.as_bytes().to_vec())
                .await?;
        }
        report
            .fixed
            .push(format!("stored {stored} again from {file}"));
    }
    let read_back =
        Pipeline::parse_stored(&text, std::path::Path::new(&stored), location.local_root())?;
    Ok(Some((fingerprint, read_back)))
}

/// The checkpoint's lost `metadata`, rebuilt, and where its id came from: the id from the
/// newest commit that records it (every commit written since commits record it), else from the owner record of
/// the sink the pipeline file names; the name from that pipeline file; the creation time as
/// the newest commit that records it says, else from the oldest commit still held (the
/// checkpoint is at least that old).
async fn rebuild_metadata(
    location: &Location,
    shown: &str,
    restored: Option<&(String, Pipeline)>,
) -> Result<(Metadata, String), String> {
    let logs = LogListing::read(location)
        .await
        .map_err(|e| e.to_string())?;
    let mut id = None;
    let mut pipeline = None;
    let mut oldest_commit_ms = None;
    let mut created = None;
    for batch in logs.commits.iter().rev() {
        if let Ok(Some(commit)) = read_commit(location, *batch).await {
            id = id.or(commit
                .pipeline_id
                .map(|id| (id, format!("commits/{batch}"))));
            pipeline = pipeline.or(commit.pipeline);
            created = created.or(commit.checkpoint_created);
            oldest_commit_ms = Some(commit.committed_at_ms);
        }
    }
    for batch in logs.offsets.iter().rev() {
        if pipeline.is_some() {
            break;
        }
        if let Ok(Some(entry)) = read_offsets(location, *batch).await {
            pipeline = entry.info.pipeline;
        }
    }
    let fingerprint = pipeline.ok_or("no log entry names the pipeline file it ran with")?;
    // The file given, where it is the batches' (stored again, or to be in a dry run).
    let pipeline = match restored.filter(|(f, _)| *f == fingerprint) {
        Some((_, given)) => given.clone(),
        None => crate::driver::stored_pipeline(location, shown, &fingerprint)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} is not stored", paths::pipeline(&fingerprint)))?,
    };
    let (id, from) = match id {
        Some(found) => found,
        None => {
            let connector = pipeline.sink.connector();
            let sink = connector
                .open(&SinkContext {
                    label: "",
                    pipeline: uuid::Uuid::nil(),
                    replace: false,
                    update: false,
                    part: None,
                    create: false,
                    sync: true,
                    hook: None,
                })
                .map_err(|e| e.to_string())?;
            let owner = sink.owner().await.map_err(|e| e.to_string())?;
            let shown_sink = connector
                .location()
                .unwrap_or_else(|| connector.kind().into());
            match owner {
                Some(id) => (id, format!("the owner record of the sink {shown_sink}")),
                // No batch committed and no output claimed: no output can name another id.
                None if logs.commits.is_empty() => (
                    uuid::Uuid::new_v4(),
                    "a new id (no batch was committed, the sink records none)".into(),
                ),
                None => {
                    return Err(format!(
                        "no commit records the pipeline id (an older Sluice wrote them) and the \
                         sink ({shown_sink}) does not record it"
                    ));
                }
            }
        }
    };
    // As the commits recorded it; else (an older Sluice's commits) the oldest commit's time.
    let created = created.unwrap_or_else(|| {
        oldest_commit_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or_else(chrono::Utc::now)
            .to_rfc3339()
    });
    let metadata = Metadata {
        id,
        name: pipeline.name.clone(),
        created,
        format: crate::checkpoint::METADATA_FORMAT,
        renamed_from: None,
    };
    Ok((
        metadata,
        format!("{from} and {}", paths::pipeline(&fingerprint)),
    ))
}

/// The offsets entry of committed batch `batch`, rebuilt: its sources' end offsets from their
/// logs, its epoch, run and time from its commit, its query from a neighbouring entry.
pub(crate) async fn rebuild_offsets(
    location: &Location,
    shown: &str,
    batch: BatchId,
    logs: &LogListing,
) -> Result<OffsetsEntry, String> {
    let commit = read_commit(location, batch)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("commits/{batch} is missing too"))?;
    // The pipeline file the batch ran with says what kind each source is.
    let Some(fingerprint) = &commit.pipeline else {
        return Err(format!(
            "commits/{batch} does not name the pipeline file it ran with"
        ));
    };
    let pipeline = crate::driver::stored_pipeline(location, shown, fingerprint)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the pipeline file batch {batch} ran with is not stored"))?;
    // That file names the sources (in the order a run logs them) and holds the query.
    let names: Vec<String> = pipeline.sources.keys().cloned().collect();
    let fingerprint = crate::plan::fingerprint(&pipeline.query);
    let query = paths::query(&fingerprint);
    if !location
        .exists(&location.path(&query))
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!(
            "{query}, the query of the pipeline file batch {batch} ran with, is missing"
        ));
    }
    let mut sources = Vec::new();
    for name in names {
        let config = pipeline.sources.get(&name).ok_or_else(|| {
            format!("source `{name}` is not in the pipeline file batch {batch} ran with")
        })?;
        let offset = config
            .connector()
            .rebuild_offset(&name, location, batch)
            .await
            .map_err(|e| e.to_string())?;
        sources.push(SourceOffset {
            source: name,
            offset,
        });
    }
    let watermark_ms = match batch.prev() {
        Some(p) if logs.commits.contains(&p) => read_commit(location, p)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| c.next_watermark_ms),
        // Its predecessor's commit is purged: the batch's own commit bounds its watermark.
        _ => commit.next_watermark_ms,
    };
    Ok(OffsetsEntry {
        info: BatchInfo {
            // Exact where the commit keeps them (an older Sluice's does not: then the batch's
            // `now()` is its commit time, and its settings the defaults).
            batch_timestamp_ms: commit.batch_timestamp_ms.unwrap_or(commit.committed_at_ms),
            watermark_ms,
            epoch: commit.epoch,
            run_id: commit.run_id,
            settings: commit
                .settings
                .clone()
                .unwrap_or_else(crate::vocab::default_settings),
            query_fingerprint: fingerprint,
            pipeline: commit.pipeline.clone(),
        },
        sources,
    })
}

/// `offsets/7` -> `offsets/.7.damaged-<stamp>`: hidden, so every reader skips it.
fn aside_name(file: &str, stamp: &str) -> String {
    hidden_name(file, "damaged", stamp)
}

/// `commits/1.bak` -> `commits/.1.bak.<why>-<stamp>`: hidden, so every reader skips it.
fn hidden_name(file: &str, why: &str, stamp: &str) -> String {
    match file.rsplit_once('/') {
        Some((folder, name)) => format!("{folder}/.{name}.{why}-{stamp}"),
        None => format!(".{file}.{why}-{stamp}"),
    }
}

/// The files in `commits/`, `offsets/` and `epochs/` whose names are not batch (or epoch)
/// numbers, hidden ones left out, as paths relative to the checkpoint.
async fn stray_entries(location: &Location) -> Result<Vec<String>, Error> {
    let mut strays = Vec::new();
    for folder in [paths::COMMITS, paths::OFFSETS, paths::EPOCHS] {
        for meta in location.list(folder).await? {
            let relative = location.relative(&meta.location);
            let name = relative.rsplit('/').next().unwrap_or_default();
            if !(name.starts_with('.') || name.starts_with('_'))
                && paths::entry_number(name).is_none()
            {
                strays.push(relative);
            }
        }
    }
    Ok(strays)
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
