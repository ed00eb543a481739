//! Replaying a committed batch, and verifying it (`sluice replay --batch N [--verify]`):
//! compute it again from the checkpoint (its offsets, its query, the pipeline file it ran
//! with, the state before it) and its sources, writing nothing.
//!
//! Verifying holds three accounts of the batch's output against each other: the rows computed
//! now, the content hash `commits/N` recorded when the batch committed, and the rows the sink
//! holds for the batch now. Any disagreement says which side differs and lists the rows by
//! which the recomputed and the sink's rows differ.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::Error;
use crate::checkpoint::{
    BatchId, Checkpoint, CheckpointError, LogListing, paths, read_commit, read_fingerprinted,
    read_offsets,
};
use crate::digest::{self, OutputDigest};
use crate::driver::Recompute;
use crate::pipeline::Pipeline;
use crate::sink::{HeldBatch, SinkContext, SinkError};
use crate::source::SourceError;
use crate::storage::Location;

/// How a batch is replayed.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Compare the recomputed rows with the commit's hash and the sink's rows.
    pub verify: bool,
    /// Recompute with this pipeline file instead of the one the batch ran with.
    pub pipeline: Option<std::path::PathBuf>,
    /// At most this many rows in each table of rows shown.
    pub limit: usize,
}

/// One account of the batch's output.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Side {
    /// Its rows (or, for the commit, its hash) are known.
    Known {
        /// Rows.
        rows: u64,
        /// The content hash (`digest`).
        hash: String,
        /// Where the rows are (sink files).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
    },
    /// It cannot be had, and why.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// It is there but cannot be read: itself a difference.
    Unreadable {
        /// Why.
        reason: String,
    },
}

impl Side {
    fn known(digest: &OutputDigest, files: Vec<String>) -> Self {
        Self::Known {
            rows: digest.rows,
            hash: digest.hash.clone(),
            files,
        }
    }

    /// The rows and hash, when known.
    pub fn hash(&self) -> Option<(u64, &str)> {
        match self {
            Self::Known { rows, hash, .. } => Some((*rows, hash)),
            _ => None,
        }
    }

    /// The side in words.
    pub fn describe(&self) -> String {
        match self {
            Self::Known { rows, hash, files } => {
                let files = match files.len() {
                    0 => String::new(),
                    1 => format!(" in {}", files[0]),
                    n => format!(" in {n} files ({} ...)", files[0]),
                };
                format!("{rows} rows, hash {hash}{files}")
            }
            Self::Unavailable { reason } => format!("not available: {reason}"),
            Self::Unreadable { reason } => format!("UNREADABLE: {reason}"),
        }
    }
}

/// Whether two sides agree: `None` when either is not known.
fn agree(a: &Side, b: &Side) -> Option<bool> {
    Some(a.hash()? == b.hash()?)
}

/// What a replay found: the `--json` form, and what the text form is made from.
#[derive(Debug, Serialize)]
pub struct Replayed {
    /// The checkpoint, as shown.
    pub checkpoint: String,
    /// The batch.
    pub batch: u64,
    /// `true` when every account that could be had agrees, and the recomputation and at least
    /// one other account were had; only with `--verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The rows computed now.
    pub recomputed: Side,
    /// The hash `commits/N` recorded.
    pub committed: Side,
    /// The rows the sink holds.
    pub sink: Side,
    /// Pairs compared, by name (`recomputed=committed`, ...): whether they agree.
    pub agreement: std::collections::BTreeMap<&'static str, Option<bool>>,
    /// What the replay used that a reader might not expect (`--pipeline FILE`'s query not
    /// used, its sink not the one the batch wrote to), in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What differs, in words (empty where nothing does).
    pub findings: Vec<String>,
    /// Rows the recomputation has and the sink lacks (up to `--limit`).
    pub only_recomputed: Vec<serde_json::Map<String, serde_json::Value>>,
    /// How many rows the recomputation has and the sink lacks, all of them (the list above
    /// stops at `--limit`); where the two were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_recomputed_rows: Option<usize>,
    /// Rows the sink has and the recomputation lacks (up to `--limit`).
    pub only_in_sink: Vec<serde_json::Map<String, serde_json::Value>>,
    /// How many rows the sink has and the recomputation lacks, all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_in_sink_rows: Option<usize>,
    /// Rows recomputed (without `--verify`, up to `--limit`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Tables to show a person, each with its title (rows recomputed, or the rows that
    /// differ), up to the limit.
    #[serde(skip)]
    pub tables: Vec<(String, RecordBatch)>,
}

/// Where committed batch `batch`'s offsets entry is gone though older ones are kept (deleted
/// by hand, not purged), what says so and how it comes back.
fn deleted_offsets(logs: &LogListing, batch: BatchId, spec: &str) -> Option<String> {
    let spec_sh = crate::vocab::shell_word(spec);
    let kept_before = logs.offsets.first().is_some_and(|oldest| *oldest < batch);
    (logs.commits.contains(&batch) && !logs.offsets.contains(&batch) && kept_before).then(|| {
        format!(
            "offsets/{batch} is missing though batch {batch} is committed (not purged: older \
             entries are kept): `sluice repair {spec_sh}` rebuilds it from commits/{batch} and the \
             sources' logs"
        )
    })
}

/// Computes committed batch `batch` of the checkpoint at `location` (shown as `spec`) again,
/// writing nothing: from its offsets, its query, the pipeline file it ran with (or
/// `options.pipeline`, which says where the sources, tables and sink are now: the query is
/// always the batch's own), the state before it and its sources. With
/// `options.verify`, holds the rows computed now, the hash `commits/N` recorded and the rows
/// the sink holds against each other ([`Replayed::verified`], [`Replayed::findings`]).
///
/// # Errors
/// [`Error::Usage`] when the checkpoint does not hold the batch as a committed, replayable one
/// or the pipeline file it ran with is missing; [`Error::Verify`] when the output cannot be
/// hashed; store and checkpoint errors as they come. A batch that recomputes differently is
/// not an error: it is a finding.
pub async fn replay(
    location: &Location,
    spec: &str,
    batch: BatchId,
    options: &ReplayOptions,
) -> Result<Replayed, Error> {
    let args = options;
    let location = location.clone();
    if Checkpoint::read_metadata(&location).await?.is_none() {
        return Err(Error::Usage(crate::checkpoint::not_a_checkpoint(spec)));
    }
    let logs = LogListing::read(&location).await?;
    let commit = read_commit(&location, batch).await?;
    let entry = read_offsets(&location, batch).await?;
    // An older batch whose commit entry alone is gone (deleted by hand): later batches ran
    // on from it, so it is replayed like a committed one, with the pipeline file its offsets
    // entry names and no committed hash to compare.
    // (Below the oldest commit, an offsets entry is a purge's leftover, not such a batch.)
    let commit_missing = commit.is_none()
        && entry.is_some()
        && logs.commits.first().is_some_and(|first| *first < batch)
        && logs.commits.last().is_some_and(|last| *last > batch);
    let commit = match (commit, &entry) {
        (Some(commit), _) => Some((commit.pipeline, commit.output, Some(commit.rows_in))),
        (None, Some(entry)) if commit_missing => Some((entry.info.pipeline.clone(), None, None)),
        (None, _) => None,
    };
    let (Some((committed_pipeline, committed_output, committed_rows_in)), Some(entry)) =
        (commit, entry)
    else {
        let retained = replayable_range(&logs);
        let pending = logs
            .offsets
            .last()
            .filter(|n| **n == batch && !logs.commits.contains(n))
            .map(|_| " it is pending (planned, not committed): the next run finishes it;")
            .unwrap_or_default();
        if let Some(missing) = deleted_offsets(&logs, batch, spec) {
            return Err(Error::Usage(format!("{spec}: batch {batch}: {missing}")));
        }
        if let Some(gone) = deleted_batch(&logs, batch) {
            return Err(Error::Usage(format!(
                "{spec}: batch {batch}: {gone}; {}",
                replayable_range(&logs)
            )));
        }
        return Err(Error::Usage(format!(
            "{spec}: batch {batch} is not a committed batch the checkpoint holds;{pending} {retained}"
        )));
    };
    let previous = match batch.prev() {
        Some(prev) => Some(read_offsets(&location, prev).await?.ok_or_else(|| {
            if let Some(missing) = deleted_offsets(&logs, prev, spec) {
                return Error::Usage(format!(
                    "{spec}: batch {batch} starts where batch {prev} ended, and {missing}"
                ));
            }
            if let Some(gone) = deleted_batch(&logs, prev) {
                return Error::Usage(format!(
                    "{spec}: batch {batch} starts where batch {prev} ended, and {gone}; {}",
                    replayable_range(&logs)
                ));
            }
            Error::Usage(format!(
                "{spec}: batch {batch} starts where batch {prev} ended, and offsets/{prev} is \
                 purged (the retention keeps only the last batches' logs); {}",
                replayable_range(&logs)
            ))
        })?),
        None => None,
    };
    // The pipeline file the batch ran with (`--pipeline FILE` stands in where it is
    // unreadable).
    let ran_with = match &committed_pipeline {
        Some(fingerprint) => {
            match crate::driver::stored_pipeline(&location, spec, fingerprint).await {
                Ok(stored) => stored,
                Err(_) if args.pipeline.is_some() => None,
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    let given = args.pipeline.as_deref().map(Pipeline::load).transpose()?;
    let query_file = paths::query(&entry.info.query_fingerprint);
    let sql = read_fingerprinted(&location, &query_file, &entry.info.query_fingerprint)
        .await?
        .ok_or_else(|| CheckpointError::Inconsistent {
            location: spec.to_string(),
            reason: format!("{query_file}, the query of batch {batch}, is missing"),
        })?;
    // `--pipeline FILE` says where the sources, tables and sink are now (a moved or copied
    // project); the query is what ran, so a replay recomputes what happened.
    let mut notes = Vec::new();
    // FILE, the sink it names, and the sink the batch wrote to, where they differ.
    let mut moved_sink: Option<(String, String, String)> = None;
    if let (Some(given), Some(path)) = (&given, args.pipeline.as_deref()) {
        if given.query.trim() != sql.trim() {
            notes.push(format!(
                "note: the query is batch {batch}'s own, as it ran ({query_file}); the query in \
                 {} differs and is not used (a replay recomputes what ran: a new query's \
                 output is what `sluice run` writes)",
                path.display()
            ));
        }
        let (now, then) = (
            given.sink.connector().location(),
            ran_with
                .as_ref()
                .and_then(|p| p.sink.connector().location()),
        );
        if args.verify
            && let Some(then) = then.filter(|then| now.as_ref() != Some(then))
        {
            moved_sink = Some((
                path.display().to_string(),
                now.unwrap_or_else(|| given.sink.connector().kind().to_string()),
                then,
            ));
        }
    }
    // What decides a batch's rows beside its query is also what ran: FILE says only where
    // things are now.
    let mut given = given;
    if let (Some(given), Some(ran), Some(path)) =
        (given.as_mut(), ran_with.as_ref(), args.pipeline.as_deref())
    {
        if given.output_mode != ran.output_mode {
            notes.push(format!(
                "note: the output mode is batch {batch}'s own, `{}`; the `output_mode: {}` in {} \
                 is not used (a replay recomputes what ran)",
                ran.output_mode,
                given.output_mode,
                path.display()
            ));
            given.output_mode = ran.output_mode;
        }
        // The sink as the batch wrote it: FILE's `format:` would read its files as another.
        let (now, then) = (given.sink.connector(), ran.sink.connector());
        if now.kind() == then.kind()
            && now.location() == then.location()
            && now.format() != then.format()
        {
            notes.push(format!(
                "note: the sink's files are read as batch {batch} wrote them, {}; the sink \
                 `format:` in {} differs and is not used",
                then.format().map_or("", |f| f.as_str()),
                path.display()
            ));
            given.sink = ran.sink.clone();
        }
        if given.state_ttl != ran.state_ttl {
            notes.push(format!(
                "note: the state TTL is batch {batch}'s own; the `state_ttl:` in {} differs and \
                 is not used (a replay recomputes what ran)",
                path.display()
            ));
            given.state_ttl = ran.state_ttl;
        }
    }
    // Where FILE names another sink, the one the batch wrote to is read too, for a batch
    // FILE's does not hold.
    let own_sink = ran_with.clone().filter(|_| moved_sink.is_some());
    // Whether the batch wrote late rows at all (`--pipeline FILE` may add a `late_rows:`).
    let ran_with_late_rows = ran_with.as_ref().map(|p| p.late_rows.is_some());
    let pipeline = match given.or(ran_with) {
        Some(pipeline) => pipeline,
        None => {
            return Err(Error::Usage(match &committed_pipeline {
                Some(fingerprint) => format!(
                    "{spec}/{}, the pipeline batch {batch} ran with, is missing; pass \
                     --pipeline FILE",
                    paths::pipeline(fingerprint)
                ),
                None => format!(
                    "{spec}: commits/{batch} does not name the pipeline file it ran with \
                     (written by an older Sluice); pass --pipeline FILE"
                ),
            }));
        }
    };

    // A folder the batch read that is not there now: the advice for `run` (make it, or fix
    // the path in the file) is not this command's, which reads the stored file.
    let mut engine = match Recompute::open(&pipeline, &location).await {
        Err(Error::Source(crate::source::SourceError::Config {
            source_name,
            reason,
        })) if args.pipeline.is_none() && reason.contains("no such folder") => {
            let reason = reason
                .split("; create the folder")
                .next()
                .unwrap_or(&reason)
                .to_string();
            let named = match &pipeline.ran_elsewhere {
                Some(folder) => format!(
                    "batch {batch} read it there (its pipeline file ran in {})",
                    folder.display()
                ),
                None => format!("the pipeline file batch {batch} ran with names it"),
            };
            return Err(Error::Usage(format!(
                "source `{source_name}`: {reason}; {named}. If it has moved, pass the pipeline \
                 file that names where it is now: `--pipeline FILE` (relative paths in FILE \
                 resolve against the folder this command runs in)"
            )));
        }
        other => other?,
    };
    let previous_commit = match batch.prev() {
        Some(prev) => read_commit(&location, prev).await.ok().flatten(),
        None => None,
    };
    let mut late_recomputed = None;
    let recomputed = match engine
        .batch(
            batch,
            &entry,
            previous.as_ref(),
            previous_commit.as_ref(),
            &sql,
        )
        .await
    {
        // Compared as the sink's files hold them; shown as computed.
        Ok((rows, late)) => {
            late_recomputed = Some(late);
            rows.iter()
                .map(|b| {
                    digest::as_held(
                        b,
                        if args.verify {
                            pipeline.sink_held()
                        } else {
                            digest::Held::default()
                        },
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the recomputed rows cannot be encoded: {e}"))
        }
        // Said without a rewind's advice: replaying a batch only reads, and taking it back
        // would take back every later batch too.
        Err(Error::Source(SourceError::FileGone { file, batch, .. })) => {
            // Every file of the batch that is gone, not the first the read met.
            let mut gone = Vec::new();
            for source in &entry.sources {
                if let Some(config) = pipeline.sources.get(&source.source)
                    && let Ok(files) = config
                        .connector()
                        .gone_inputs(&source.source, &location, batch, &source.offset)
                        .await
                {
                    gone.extend(files);
                }
            }
            Err(match gone.as_slice() {
                [_, _, ..] => format!(
                    "the batch's input is no longer what it read: {} files read by batch \
                     {batch} are gone ({}); restore them to verify the batch",
                    gone.len(),
                    gone.join(", ")
                ),
                _ => format!(
                    "the batch's input is no longer what it read: {file}, read by batch \
                     {batch}, is gone; restore it to verify the batch"
                ),
            })
        }
        Err(Error::Source(SourceError::FileChanged {
            file,
            batch,
            change,
            touch,
            ..
        })) => Err(format!(
            "the batch's input is no longer what it read: {file} changed since batch {batch} \
             logged it ({change}); put it back as it was to verify the batch{}",
            touch
                .map(|command| format!(
                    " (a copy that lost file times, `cp -r` without `-a`, looks like this: \
                     `{command}` puts its time back)"
                ))
                .unwrap_or_default()
        )),
        Err(Error::Source(e)) => {
            // A run's advice for input gone from a stream (skip it, then take the batch back)
            // is not a replay's, which only reads: the batch cannot be computed again.
            let text = e.to_string();
            let text = match text.find(". Set `fail_on_data_loss: false`") {
                Some(at) => format!(
                    "{}; the batch cannot be computed again to verify it",
                    &text[..at]
                ),
                None => text,
            };
            Err(format!("its input cannot be read as it was: {text}"))
        }
        Err(Error::State(e)) => Err(format!(
            "the state before it cannot be loaded: {}",
            e.to_string().replace(
                "<checkpoint>",
                &crate::vocab::shell_word(&crate::secret::redact_url(spec)),
            )
        )),
        Err(e) => return Err(e),
    };
    let schema: SchemaRef = match &recomputed {
        Ok(rows) if !rows.is_empty() => rows[0].schema(),
        _ => engine.output_schema(&sql).await?,
    };
    let hash_err = |e: datafusion::arrow::error::ArrowError| {
        Error::Verify(format!("the output of batch {batch} cannot be hashed: {e}"))
    };
    let recomputed_side = match &recomputed {
        Ok(rows) => Side::known(&digest::digest(rows).map_err(hash_err)?, Vec::new()),
        Err(reason) => Side::Unavailable {
            reason: reason.clone(),
        },
    };
    let mut report = Replayed {
        checkpoint: spec.to_string(),
        batch: batch.0,
        verified: None,
        recomputed: recomputed_side,
        committed: Side::Unavailable {
            reason: "not asked (--verify)".into(),
        },
        sink: Side::Unavailable {
            reason: "not asked (--verify)".into(),
        },
        agreement: Default::default(),
        notes,
        findings: Vec::new(),
        only_recomputed: Vec::new(),
        only_recomputed_rows: None,
        only_in_sink: Vec::new(),
        only_in_sink_rows: None,
        rows: Vec::new(),
        tables: Vec::new(),
    };
    if !args.verify {
        if let Ok(rows) = &recomputed {
            let all = datafusion::arrow::compute::concat_batches(&schema, rows)
                .map_err(|e| Error::Usage(e.to_string()))?;
            let shown = all.slice(0, all.num_rows().min(args.limit));
            report.rows = json_rows(&shown)?;
            report.tables.push((
                format!("batch {batch}: {} rows recomputed", all.num_rows()),
                shown,
            ));
        }
        return Ok(report);
    }

    report.committed = match &committed_output {
        _ if commit_missing => Side::Unavailable {
            reason: format!(
                "commits/{batch} is missing (later batches are committed, so runs carry on \
                 without it; nothing recomputes it)"
            ),
        },
        Some(d) if d.algorithm == digest::ALGORITHM => Side::known(d, Vec::new()),
        Some(d) => Side::Unavailable {
            reason: format!(
                "commits/{batch} holds a `{}` hash, not comparable",
                d.algorithm
            ),
        },
        None => Side::Unavailable {
            reason: format!(
                "commits/{batch} holds no content hash (an older Sluice, or an output type without one)"
            ),
        },
    };
    let mut held = read_sink(&pipeline, &location, batch, &schema).await;
    if let Some((file, now, then)) = &moved_sink {
        let fallback = match (&held, &own_sink) {
            (Ok(HeldBatch::Missing(_) | HeldBatch::Unreadable { .. }), Some(own)) => {
                match read_sink(own, &location, batch, &schema).await {
                    Ok(rows @ HeldBatch::Rows { .. }) => Some(rows),
                    _ => None,
                }
            }
            _ => None,
        };
        report.notes.push(match fallback {
            Some(rows) => {
                held = Ok(rows);
                format!(
                    "note: the sink {file} names ({now}) does not hold batch {batch}; the sink \
                     it wrote to ({then}) does, and is read instead"
                )
            }
            None => format!(
                "note: the sink read is the one {file} names ({now}); batch {batch} wrote to \
                 {then}"
            ),
        });
    }
    let sink_rows = match held {
        Err(Error::Sink(e @ SinkError::NotSupported { .. })) => {
            report.sink = Side::Unavailable {
                reason: format!(
                    "the {} sink keeps nothing to compare ({e})",
                    pipeline.sink.connector().kind()
                ),
            };
            None
        }
        Err(e) => return Err(e),
        Ok(HeldBatch::Rows { files, batches }) => {
            report.sink = Side::known(&digest::digest(&batches).map_err(hash_err)?, files);
            Some(batches)
        }
        Ok(HeldBatch::Missing(reason)) => {
            report.sink = Side::Unavailable { reason };
            None
        }
        Ok(HeldBatch::Unreadable { file, reason }) => {
            report.sink = Side::Unreadable {
                reason: format!("{file}: {reason}"),
            };
            None
        }
    };
    let rc = agree(&report.recomputed, &report.committed);
    let sc = agree(&report.sink, &report.committed);
    let rs = agree(&report.recomputed, &report.sink);
    report.agreement.insert("recomputed=committed", rc);
    report.agreement.insert("sink=committed", sc);
    report.agreement.insert("recomputed=sink", rs);
    let fresh = pipeline.sink.connector().lost_records().1;
    // The static tables the batch joined, read whole as it ran: one changed since changes
    // what the batch computes now.
    let tables: Vec<String> = pipeline
        .tables
        .iter()
        .map(|(name, config)| match config.connector().location() {
            Some(at) => format!("`{name}` ({})", crate::secret::redact_url(&at)),
            None => format!("`{name}`"),
        })
        .collect();
    // The run that planned the batch read the static tables when it started (one that
    // finished it after a crash read them later, or kept the first run's output).
    let read_at = epoch_started_ms(&location, entry.info.epoch)
        .await
        .unwrap_or(entry.info.batch_timestamp_ms);
    let changed = crate::driver::tables_changed_since(&pipeline, read_at).await;
    let note = pipeline.sink.connector().differs_note();
    // Fewer input rows read now than the batch read: records gone from its range (walk 101:
    // a compacted topic's cleaner; the message blamed the query's determinism).
    let read_fewer = match (committed_rows_in, engine.rows_in()) {
        (Some(then), Some(now)) if now < then => Some((now, then)),
        _ => None,
    };
    report.findings = findings(
        batch, &report, rc, sc, rs, fresh, &note, &tables, &changed, read_fewer,
    );
    if let (Ok(recomputed), Some(sink), Some(false)) = (&recomputed, &sink_rows, rs) {
        let (only_r, only_s) = digest::difference(&schema, recomputed, sink)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let limit = |b: &RecordBatch| b.slice(0, b.num_rows().min(args.limit));
        report.only_recomputed = json_rows(&limit(&only_r))?;
        report.only_in_sink = json_rows(&limit(&only_s))?;
        report.only_recomputed_rows = Some(only_r.num_rows());
        report.only_in_sink_rows = Some(only_s.num_rows());
        report.tables.push((
            format!(
                "rows recomputed but not in the sink ({}):",
                only_r.num_rows()
            ),
            limit(&only_r),
        ));
        report.tables.push((
            format!(
                "rows in the sink but not recomputed ({}):",
                only_s.num_rows()
            ),
            limit(&only_s),
        ));
    }
    // The late rows too, against what the `late_rows` sink holds of the batch (walk 77: a
    // late-rows file cut short verified).
    let mut late_differs = false;
    if let (Some(late), Some(recomputed), true) = (
        &pipeline.late_rows,
        &late_recomputed,
        ran_with_late_rows != Some(false),
    ) {
        for (source, late_schema) in engine.late_row_schemas() {
            let rows = recomputed
                .get(&source)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(finding) =
                check_late_rows(late, (&location, spec), batch, &source, &late_schema, rows).await?
            {
                report.findings.push(finding);
                late_differs = true;
            }
        }
    }
    let any_difference = [rc, sc, rs].contains(&Some(false))
        || matches!(report.sink, Side::Unreadable { .. })
        || late_differs;
    let compared = report.recomputed.hash().is_some() && (rc.is_some() || rs.is_some());
    let verified = !any_difference && compared;
    report.verified = Some(verified);
    if !verified && report.findings.is_empty() {
        report.findings.push(format!(
            "batch {batch} cannot be verified: fewer than two accounts of its output could be had"
        ));
    }
    Ok(report)
}

/// The sink's rows for `batch`, read through the sink the pipeline names.
async fn read_sink(
    pipeline: &Pipeline,
    checkpoint: &Location,
    batch: BatchId,
    schema: &SchemaRef,
) -> Result<HeldBatch, Error> {
    let ctx = SinkContext {
        label: "",
        pipeline: pipeline_id(checkpoint).await?,
        replace: pipeline.output_mode == crate::pipeline::OutputMode::Complete,
        update: pipeline.output_mode == crate::pipeline::OutputMode::Update,
        part: None,
        create: false,
        sync: false,
        hook: None,
    };
    Ok(read_held(&pipeline.sink, &ctx, batch, schema).await?)
}

/// What `sink` (opened with `ctx`, its part `ctx.part` where one is named) holds of `batch`,
/// read as `schema`. A store that cannot be opened, or a damaged manifest entry, is a finding
/// about the sink (`HeldBatch::Unreadable`), not a failure to verify.
async fn read_held(
    sink: &crate::pipeline::SinkConfig,
    ctx: &SinkContext<'_>,
    batch: BatchId,
    schema: &SchemaRef,
) -> Result<HeldBatch, SinkError> {
    let connector = sink.connector();
    let opened = match connector.open(ctx) {
        Ok(opened) => opened,
        Err(SinkError::Storage(e)) => {
            return Ok(HeldBatch::Unreadable {
                file: ctx
                    .part
                    .and_then(|part| connector.part_location(part))
                    .or_else(|| connector.location())
                    .unwrap_or_default(),
                reason: e.to_string(),
            });
        }
        Err(e) => return Err(e),
    };
    match opened.read_batch(batch, schema).await {
        Err(SinkError::Corrupt { file, reason }) => Ok(HeldBatch::Unreadable { file, reason }),
        other => other,
    }
}

/// The id of the pipeline the checkpoint at `checkpoint` belongs to (nil where its
/// `metadata` is gone), as a sink's records name it.
async fn pipeline_id(checkpoint: &Location) -> Result<uuid::Uuid, Error> {
    Ok(Checkpoint::read_metadata(checkpoint)
        .await?
        .map(|m| m.id)
        .unwrap_or_default())
}

/// What differs between the late rows of source `source` that batch `batch` computes now
/// (`rows`, of `schema`) and those the `late_rows` sink `late` holds of it, in words; `None`
/// where they agree, or where the sink keeps nothing to compare.
async fn check_late_rows(
    late: &crate::pipeline::SinkConfig,
    (checkpoint, spec): (&Location, &str),
    batch: BatchId,
    source: &str,
    schema: &SchemaRef,
    rows: &[RecordBatch],
) -> Result<Option<String>, Error> {
    let ctx = SinkContext {
        label: "",
        pipeline: pipeline_id(checkpoint).await?,
        replace: false,
        update: false,
        part: Some(source),
        create: false,
        sync: false,
        hook: None,
    };
    let connector = late.connector();
    let place = connector
        .part_location(source)
        .map(|at| crate::secret::redact_url(&at))
        .unwrap_or_else(|| connector.kind().to_string());
    let computed: usize = rows.iter().map(RecordBatch::num_rows).sum();
    let held = read_held(late, &ctx, batch, schema).await;
    let unreadable = |reason: String| {
        format!(
            "the late rows of source `{source}` cannot be compared: {place} cannot be read \
             ({reason}); batch {batch} computes {computed} late rows of it"
        )
    };
    let held = match held {
        Err(SinkError::NotSupported { .. }) => return Ok(None),
        // A batch without late rows wrote nothing there (its folder may not even be made):
        // only rows held of it differ.
        Ok(HeldBatch::Rows { batches, .. }) if computed == 0 => batches,
        _ if computed == 0 => return Ok(None),
        // A late-rows folder has an entry only for the batches that had late rows.
        Ok(HeldBatch::Unreadable { reason, .. }) if reason.starts_with("is missing") => {
            return Ok(Some(format!(
                "batch {batch} computes {computed} late rows of source `{source}`, and the \
                 late-rows sink {place} holds none of the batch"
            )));
        }
        Err(e @ SinkError::Storage(_)) => return Ok(Some(unreadable(e.to_string()))),
        Err(e) => return Err(e.into()),
        Ok(HeldBatch::Missing(reason)) => {
            return Ok(Some(format!(
                "batch {batch} computes {computed} late rows of source `{source}`, and the \
                 late-rows sink {place} holds none of the batch ({reason})"
            )));
        }
        Ok(HeldBatch::Unreadable { file, reason }) => {
            return Ok(Some(unreadable(format!("{file}: {reason}"))));
        }
        Ok(HeldBatch::Rows { batches, .. }) => batches,
    };
    let hash_err = |e: datafusion::arrow::error::ArrowError| {
        Error::Verify(format!(
            "the late rows of batch {batch} cannot be hashed: {e}"
        ))
    };
    let kept = digest::Held {
        format: connector.format(),
        column_type: connector.held_type(),
    };
    let now = digest::digest_as_held(rows, kept).map_err(hash_err)?;
    let then = digest::digest(&held).map_err(hash_err)?;
    if now == then {
        return Ok(None);
    }
    let in_sink: usize = held.iter().map(RecordBatch::num_rows).sum();
    Ok(Some(format!(
        "the late-rows sink {place} holds {in_sink} rows of batch {batch} for source \
         `{source}`, and the batch computes {computed} late rows of it, which differ (a file \
         of it edited or cut short): {}",
        match batch.prev() {
            Some(before) => format!(
                "`sluice rewind {} --to {before}` writes the batch's late rows again, with \
                 its output",
                crate::vocab::shell_word(&crate::secret::redact_url(spec))
            ),
            None => "start the pipeline over on a new checkpoint with a new, empty `path` for \
                     `late_rows` and the sink, which writes every batch again"
                .to_string(),
        }
    )))
}

/// When the run of epoch `epoch` started (milliseconds since 1970), from its `epochs/E`
/// entry; `None` where the entry is gone (only the newest are kept) or does not read.
async fn epoch_started_ms(location: &Location, epoch: crate::checkpoint::Epoch) -> Option<i64> {
    let bytes = location
        .get(&location.path(&paths::epoch(epoch)))
        .await
        .ok()??;
    let entry: crate::checkpoint::EpochEntry = serde_json::from_slice(&bytes).ok()?;
    chrono::DateTime::parse_from_rfc3339(&entry.started)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// What differs, in words, from which pairs agree; `fresh`: the sink's new place to write
/// that starts a pipeline over (`a new, empty `sink.path``); `note`: what else than an edit
/// changes the sink's rows (`SinkConnector::differs_note`); `changed`: the static tables
/// modified since the batch ran ([`crate::driver::tables_changed_since`]).
#[allow(clippy::too_many_arguments)]
fn findings(
    batch: BatchId,
    report: &Replayed,
    rc: Option<bool>,
    sc: Option<bool>,
    rs: Option<bool>,
    fresh: &str,
    note: &str,
    tables: &[String],
    changed: &[String],
    read_fewer: Option<(u64, u64)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let rows = |side: &Side| side.hash().map(|(rows, _)| rows).unwrap_or_default();
    // Why a recomputation may differ: input gone from the batch's range, or a static table
    // modified since, names itself.
    let gone = read_fewer.map(|(now, then)| {
        format!(
            "the recomputation read {now} input rows where the batch read {then}: records are \
             gone from the batch's input since (a Kafka topic's retention, compaction or \
             `DeleteRecords`; a NATS stream's limits, purge or message delete; a file cut \
             short), which explains it; the batch's output is what the input held then"
        )
    });
    let since = gone.unwrap_or_else(|| match (changed, tables) {
        ([one], _) => format!(
            "the static table {one} changed after batch {batch} ran (a table is read whole when \
             a run starts), which explains it; the batch's output is what the table held then"
        ),
        ([_, ..], _) => format!(
            "the static tables {} changed after batch {batch} ran (a table is read whole when a \
             run starts), which explains it; the batch's output is what the tables held then",
            changed.join(", ")
        ),
        ([], []) => "its input changed since, or the query is not deterministic".to_string(),
        ([], [one]) => format!(
            "its input or the static table {one} (read whole as the batch ran, and now) changed \
             since, or the query is not deterministic"
        ),
        ([], many) => format!(
            "its input or a static table ({}, read whole as the batch ran, and now) changed \
             since, or the query is not deterministic",
            many.join(", ")
        ),
    });
    match (rc, sc, rs) {
        (Some(true), Some(false), _) => out.push(format!(
            "the SINK differs: its rows for batch {batch} ({} rows) are not what the batch \
             committed ({} rows), and recomputing the batch gives what it committed",
            rows(&report.sink),
            rows(&report.committed)
        )),
        (Some(false), Some(true), _) => out.push(format!(
            "the RECOMPUTATION differs: batch {batch} computed now ({} rows) is not what it \
             committed and the sink holds ({} rows); {since}",
            rows(&report.recomputed),
            rows(&report.committed),
        )),
        (Some(false), Some(false), Some(true)) => out.push(format!(
            "the COMMIT differs: commits/{batch}'s hash matches neither the recomputed rows nor \
             the sink's, which agree; commits/{batch} was changed"
        )),
        (Some(false), Some(false), _) => out.push(format!(
            "ALL THREE differ: the recomputed rows, commits/{batch}'s hash and the sink's rows \
             each disagree with the others"
        )),
        (None, _, Some(false)) => out.push(format!(
            "the recomputed rows and the SINK's rows differ ({} and {} rows); commits/{batch} \
             has no hash to say which is right",
            rows(&report.recomputed),
            rows(&report.sink)
        )),
        (Some(false), None, _) => out.push(format!(
            "the RECOMPUTATION differs from what batch {batch} committed ({} and {} rows): \
             {since}; without the sink's rows there is nothing to list the differing rows \
             against",
            rows(&report.recomputed),
            rows(&report.committed)
        )),
        (None, Some(false), _) => out.push(format!(
            "the SINK differs: its rows for batch {batch} are not what the batch committed ({} \
             and {} rows); the batch cannot be recomputed to list which rows",
            rows(&report.sink),
            rows(&report.committed)
        )),
        _ => {}
    }
    if let Side::Unreadable { reason } = &report.sink {
        out.push(format!(
            "what the SINK holds of batch {batch} cannot be read: {reason}"
        ));
    }
    // The sink lost or changed rows the recomputation still has: write the batch again.
    let sink_wrong = matches!(report.sink, Side::Unreadable { .. })
        || (matches!((rc, sc), (Some(true), Some(false)) | (None, Some(false))));
    if sink_wrong && report.recomputed.hash().is_some() {
        out.push(match batch.prev() {
            Some(before) => format!(
                "to write batch {batch} again from its input: `sluice rewind {} --to {before}` \
                 (it takes back batch {batch} and the later ones, with what the sink holds of \
                 them), then run the pipeline{note}",
                crate::vocab::shell_word(&report.checkpoint)
            ),
            None => format!(
                "to write batch {batch} again from its input, run the pipeline on a new \
                 checkpoint with {fresh}{note}"
            ),
        });
    }
    if let Side::Unavailable { reason } = &report.recomputed {
        out.push(format!("batch {batch} cannot be recomputed: {reason}"));
    }
    out
}

fn json_rows(
    batch: &RecordBatch,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, Error> {
    use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
    let err = |e: String| Error::Usage(format!("the rows cannot be shown as JSON: {e}"));
    let mut buffer = Vec::new();
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(&mut buffer);
    writer.write(batch).map_err(|e| err(e.to_string()))?;
    writer.finish().map_err(|e| err(e.to_string()))?;
    drop(writer);
    if buffer.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buffer).map_err(|e| err(e.to_string()))
}

/// Which committed batches can be replayed, in words: each needs the offsets entry of the batch
/// before it (where it starts), so the oldest batch the retention keeps cannot (unless it is 0).
fn replayable_range(logs: &LogListing) -> String {
    // A committed batch with its offsets entry and the one before it (where it has one): in
    // spans, since entries deleted from the middle leave a gap (audit 94a: one span was said
    // across it).
    let replayable = logs
        .commits
        .iter()
        .filter(|b| logs.offsets.contains(b) && b.prev().is_none_or(|p| logs.offsets.contains(&p)));
    let mut spans: Vec<(BatchId, BatchId)> = Vec::new();
    for &b in replayable {
        match spans.last_mut() {
            Some((_, last)) if last.next() == b => *last = b,
            _ => spans.push((b, b)),
        }
    }
    if spans.is_empty() {
        return "no batch can be replayed".into();
    }
    let said: Vec<String> = spans
        .iter()
        .map(|(a, b)| crate::vocab::span(a, b))
        .collect();
    format!("batches that can be replayed: {}", said.join(", "))
}

/// Where batch `batch`'s offsets and commit entries are both gone though older entries are
/// kept (retention purges only the oldest batches' logs): deleted by hand, which nothing
/// rebuilds (Spark's offset log refuses such a gap as "not contiguous").
fn deleted_batch(logs: &LogListing, batch: BatchId) -> Option<String> {
    let kept_before = logs.offsets.first().is_some_and(|oldest| *oldest < batch);
    // Between kept entries: past the newest, a batch never ran (the review).
    let kept_after = logs.offsets.last().is_some_and(|newest| *newest > batch);
    let gone = !logs.offsets.contains(&batch) && !logs.commits.contains(&batch);
    (kept_before && kept_after && gone).then(|| {
        format!(
            "offsets/{batch} and commits/{batch} are both missing though older entries are kept \
             (the retention purges only the oldest batches' logs): they were deleted, and \
             nothing else records what batch {batch} read; restore them from a backup to \
             replay it and the batch after it"
        )
    })
}
