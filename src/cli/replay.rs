//! `sluice replay CHECKPOINT --batch N [--verify]`: compute a committed batch again from the
//! checkpoint (its offsets, its query, the pipeline file it ran with, the state before it) and
//! its sources, writing nothing.
//!
//! With `--verify`, three accounts of the batch's output are held against each other: the rows
//! computed now, the content hash `commits/N` recorded when the batch committed, and the rows
//! the sink holds for the batch now. Any disagreement says which side differs and lists the
//! rows by which the recomputed and the sink's rows differ.

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

/// How the command was asked to run.
pub(super) struct Args<'a> {
    pub spec: &'a str,
    pub batch: u64,
    pub verify: bool,
    pub pipeline: Option<&'a std::path::Path>,
    pub json: bool,
    pub limit: usize,
}

/// One account of the batch's output.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum Side {
    /// Its rows (or, for the commit, its hash) are known.
    Known {
        rows: u64,
        hash: String,
        /// Where the rows are (sink files).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
    },
    /// It cannot be had, and why.
    Unavailable { reason: String },
    /// It is there but cannot be read: itself a difference.
    Unreadable { reason: String },
}

impl Side {
    fn known(digest: &OutputDigest, files: Vec<String>) -> Self {
        Self::Known {
            rows: digest.rows,
            hash: digest.hash.clone(),
            files,
        }
    }

    fn hash(&self) -> Option<(u64, &str)> {
        match self {
            Self::Known { rows, hash, .. } => Some((*rows, hash)),
            _ => None,
        }
    }

    fn describe(&self) -> String {
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

/// The `--json` form, and what the text form is made from.
#[derive(Debug, Serialize)]
struct Report {
    checkpoint: String,
    batch: u64,
    /// `true` when every account that could be had agrees, and the recomputation and at least
    /// one other account were had; only with `--verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    verified: Option<bool>,
    recomputed: Side,
    committed: Side,
    sink: Side,
    /// Pairs compared, by name (`recomputed=committed`, ...): whether they agree.
    agreement: std::collections::BTreeMap<&'static str, Option<bool>>,
    /// What differs, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    findings: Vec<String>,
    /// Rows the recomputation has and the sink lacks (up to `--limit`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    only_recomputed: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Rows the sink has and the recomputation lacks (up to `--limit`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    only_in_sink: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Rows recomputed (without `--verify`, up to `--limit`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip)]
    tables: Vec<(String, RecordBatch)>,
}

pub(super) async fn run(args: Args<'_>) -> Result<(), Error> {
    let spec = args.spec;
    let location = super::open_checkpoint(spec)?;
    if Checkpoint::read_metadata(&location).await?.is_none() {
        return Err(Error::Usage(format!(
            "{spec} is not a Sluice checkpoint (it has no metadata)"
        )));
    }
    let batch = BatchId(args.batch);
    let logs = LogListing::read(&location).await?;
    let commit = read_commit(&location, batch).await?;
    let entry = read_offsets(&location, batch).await?;
    let (Some(commit), Some(entry)) = (commit, entry) else {
        let retained = replayable_range(&logs);
        let pending = logs
            .offsets
            .last()
            .filter(|n| **n == batch && !logs.commits.contains(n))
            .map(|_| " it is pending (planned, not committed): the next run finishes it;")
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "{spec}: batch {batch} is not a committed batch the checkpoint holds;{pending} {retained}"
        )));
    };
    let previous = match batch.prev() {
        Some(prev) => Some(read_offsets(&location, prev).await?.ok_or_else(|| {
            Error::Usage(format!(
                "{spec}: batch {batch} starts where batch {prev} ended, and offsets/{prev} is \
                 purged (the retention keeps only the last batches' logs); {}",
                replayable_range(&logs)
            ))
        })?),
        None => None,
    };
    let pipeline = match (args.pipeline, &commit.pipeline) {
        (Some(path), _) => Pipeline::load(path)?,
        (None, Some(fingerprint)) => crate::driver::stored_pipeline(&location, spec, fingerprint)
            .await?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{spec}/{}, the pipeline batch {batch} ran with, is missing; pass \
                     --pipeline FILE",
                    paths::pipeline(fingerprint)
                ))
            })?,
        (None, None) => {
            return Err(Error::Usage(format!(
                "{spec}: commits/{batch} does not name the pipeline file it ran with (written \
                 by an older Sluice); pass --pipeline FILE"
            )));
        }
    };
    let query_file = paths::query(&entry.info.query_fingerprint);
    let sql = read_fingerprinted(&location, &query_file, &entry.info.query_fingerprint)
        .await?
        .ok_or_else(|| CheckpointError::Inconsistent {
            location: spec.to_string(),
            reason: format!("{query_file}, the query of batch {batch}, is missing"),
        })?;

    let mut engine = Recompute::open(&pipeline, &location).await?;
    let recomputed = match engine.batch(batch, &entry, previous.as_ref(), &sql).await {
        // Compared as the sink's files hold them; shown as computed.
        Ok(rows) => rows
            .iter()
            .map(|b| digest::as_held(b, pipeline.sink_format().filter(|_| args.verify)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the recomputed rows cannot be encoded: {e}")),
        Err(Error::Source(
            e @ (SourceError::FileGone { .. } | SourceError::FileChanged { .. }),
        )) => Err(format!("the batch's input is no longer what it read: {e}")),
        Err(Error::Source(e)) => Err(format!("its input cannot be read as it was: {e}")),
        Err(Error::State(e)) => Err(format!("the state before it cannot be loaded: {e}")),
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
    let mut report = Report {
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
        findings: Vec::new(),
        only_recomputed: Vec::new(),
        only_in_sink: Vec::new(),
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
        return finish(report, args.json);
    }

    report.committed = match &commit.output {
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
    let sink_rows = match read_sink(&pipeline, &location, batch, &schema).await {
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
    report.findings = findings(batch, &report, rc, sc, rs);
    if let (Ok(recomputed), Some(sink), Some(false)) = (&recomputed, &sink_rows, rs) {
        let (only_r, only_s) = digest::difference(&schema, recomputed, sink)
            .map_err(|e| Error::Usage(e.to_string()))?;
        let limit = |b: &RecordBatch| b.slice(0, b.num_rows().min(args.limit));
        report.only_recomputed = json_rows(&limit(&only_r))?;
        report.only_in_sink = json_rows(&limit(&only_s))?;
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
    let any_difference =
        [rc, sc, rs].contains(&Some(false)) || matches!(report.sink, Side::Unreadable { .. });
    let compared = report.recomputed.hash().is_some() && (rc.is_some() || rs.is_some());
    let verified = !any_difference && compared;
    report.verified = Some(verified);
    if !verified && report.findings.is_empty() {
        report.findings.push(format!(
            "batch {batch} cannot be verified: fewer than two accounts of its output could be had"
        ));
    }
    finish(report, args.json)?;
    if verified {
        Ok(())
    } else {
        Err(Error::Verify(format!("batch {batch} did not verify")))
    }
}

/// The sink's rows for `batch`, read through the sink the pipeline names.
async fn read_sink(
    pipeline: &Pipeline,
    checkpoint: &Location,
    batch: BatchId,
    schema: &SchemaRef,
) -> Result<HeldBatch, Error> {
    let id = Checkpoint::read_metadata(checkpoint)
        .await?
        .map(|m| m.id)
        .unwrap_or_default();
    let ctx = SinkContext {
        pipeline: id,
        replace: pipeline.output_mode == crate::pipeline::OutputMode::Complete,
        part: None,
        create: false,
        sync: false,
        hook: None,
    };
    let sink = match pipeline.sink.connector().open(&ctx) {
        Ok(sink) => sink,
        Err(SinkError::Storage(e)) => {
            return Ok(HeldBatch::Unreadable {
                file: pipeline.sink.connector().location().unwrap_or_default(),
                reason: e.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Ok(sink.read_batch(batch, schema).await?)
}

/// What differs, in words, from which pairs agree.
fn findings(
    batch: BatchId,
    report: &Report,
    rc: Option<bool>,
    sc: Option<bool>,
    rs: Option<bool>,
) -> Vec<String> {
    let mut out = Vec::new();
    let rows = |side: &Side| side.hash().map(|(rows, _)| rows).unwrap_or_default();
    match (rc, sc, rs) {
        (Some(true), Some(false), _) => out.push(format!(
            "the SINK differs: its rows for batch {batch} ({} rows) are not what the batch \
             committed ({} rows), and recomputing the batch gives what it committed",
            rows(&report.sink),
            rows(&report.committed)
        )),
        (Some(false), Some(true), _) => out.push(format!(
            "the RECOMPUTATION differs: batch {batch} computed now ({} rows) is not what it \
             committed and the sink holds ({} rows); its input or static tables changed since, \
             or the query is not deterministic",
            rows(&report.recomputed),
            rows(&report.committed)
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
            "the RECOMPUTATION differs from what batch {batch} committed ({} and {} rows); \
             without the sink's rows there is nothing to list the differing rows against",
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
            "the SINK's files for batch {batch} cannot be read: {reason}"
        ));
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

fn finish(report: Report, json: bool) -> Result<(), Error> {
    if json {
        super::emit_json(&report);
        return Ok(());
    }
    let mut text = format!("{} batch {}\n", report.checkpoint, report.batch);
    text.push_str(&format!("  recomputed: {}\n", report.recomputed.describe()));
    if report.verified.is_some() {
        text.push_str(&format!("  committed:  {}\n", report.committed.describe()));
        text.push_str(&format!("  sink:       {}\n", report.sink.describe()));
    }
    for finding in &report.findings {
        text.push_str(&format!("{finding}\n"));
    }
    for (title, table) in &report.tables {
        text.push_str(title);
        text.push('\n');
        if table.num_rows() > 0 {
            let pretty =
                datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(table))
                    .map_err(|e| Error::Usage(e.to_string()))?;
            text.push_str(&format!("{pretty}\n"));
        }
    }
    match report.verified {
        Some(true) => {
            let known: Vec<&str> = [
                ("the recomputed rows", &report.recomputed),
                ("the commit's hash", &report.committed),
                ("the sink's rows", &report.sink),
            ]
            .into_iter()
            .filter(|(_, side)| side.hash().is_some())
            .map(|(name, _)| name)
            .collect();
            text.push_str(&format!(
                "verified: {} of batch {} agree\n",
                known.join(", "),
                report.batch
            ));
        }
        Some(false) => text.push_str(&format!("NOT VERIFIED: batch {}\n", report.batch)),
        None => {}
    }
    super::emit(&text);
    Ok(())
}

/// Which committed batches can be replayed, in words: each needs the offsets entry of the batch
/// before it (where it starts), so the oldest batch the retention keeps cannot (unless it is 0).
fn replayable_range(logs: &LogListing) -> String {
    let first = logs
        .commits
        .iter()
        .find(|b| b.prev().is_none_or(|p| logs.offsets.contains(&p)));
    match (first, logs.commits.last()) {
        (Some(a), Some(b)) => format!("batches that can be replayed: {a}..={b}"),
        _ => "no batch can be replayed".into(),
    }
}
