//! `sluice inspect` on a Spark Structured Streaming checkpoint, for people moving from Spark:
//! the same summary as for Sluice's own, read from Spark's layout (docs/design.md, appendix A):
//!
//! ```text
//!   metadata              {"id": <uuid>}
//!   offsets/<N>           v1, {"batchWatermarkMs", "batchTimestampMs", "conf"}, one line per source
//!   commits/<N>           v1, {"nextBatchWatermarkMs"}
//!   sources/<i>/<N>       the file source's log: v1, one {"path", "timestamp", "batchId"} per file
//!   state/<op>/<partition>/<version>.delta|.snapshot, state/<op>/_metadata/metadata
//! ```

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::Error;
use crate::checkpoint::spark_sink::{self, SinkLogError};
use crate::checkpoint::{BatchId, CheckpointError, paths::entry_number};
use crate::storage::Location;

#[derive(Debug, Serialize)]
struct SparkView {
    kind: &'static str,
    location: String,
    id: String,
    batches_committed: usize,
    last_committed: Option<BatchId>,
    pending: Option<BatchId>,
    next_watermark_ms: Option<i64>,
    source_offsets: BTreeMap<String, serde_json::Value>,
    state: Vec<SparkStateView>,
    batches: Vec<SparkBatchView>,
}

#[derive(Debug, Serialize)]
struct SparkStateView {
    operator: String,
    name: Option<String>,
    partitions: Option<u64>,
    files: usize,
    bytes: u64,
    versions: Option<(u64, u64)>,
}

#[derive(Debug, Serialize)]
struct SparkBatchView {
    batch: BatchId,
    status: &'static str,
    batch_timestamp_ms: Option<i64>,
    watermark_ms: Option<i64>,
    sources: BTreeMap<String, serde_json::Value>,
    next_watermark_ms: Option<i64>,
    files: BTreeMap<String, Vec<String>>,
}

async fn read(location: &Location, file: &str) -> Result<Option<String>, Error> {
    Ok(location
        .get(&location.path(file))
        .await?
        .map(|b| String::from_utf8_lossy(&b).to_string()))
}

async fn numbered(location: &Location, folder: &str) -> Result<Vec<(u64, String)>, Error> {
    Ok(spark_sink::numbered(location, folder).await?)
}

fn entry_lines(file: &str, text: &str) -> Result<Vec<serde_json::Value>, Error> {
    spark_sink::entry_lines(file, text).map_err(|e| match e {
        SinkLogError::Corrupt { file, line, reason } => {
            CheckpointError::Corrupt { file, line, reason }.into()
        }
        SinkLogError::Storage(e) => e.into(),
    })
}

pub(super) async fn run(
    location: &Location,
    spec: &str,
    id: String,
    only: Option<u64>,
    json: bool,
) -> Result<(), Error> {
    let offsets = numbered(location, "offsets").await?;
    let commits = numbered(location, "commits").await?;
    let committed: Vec<u64> = commits.iter().map(|(n, _)| *n).collect();
    // Source logs: sources/<i>/<N> (and compacted N.compact entries).
    let mut source_logs: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for meta in location.list("sources").await? {
        let relative = location.relative(&meta.location);
        let parts: Vec<&str> = relative.split('/').collect();
        if let [_, source, _] = parts.as_slice() {
            source_logs.entry(source.to_string()).or_default();
        }
    }
    for (source, entries) in source_logs.iter_mut() {
        *entries = numbered(location, &format!("sources/{source}")).await?;
    }
    let mut batches = Vec::new();
    let mut last_sources = BTreeMap::new();
    for (n, file) in &offsets {
        let lines = match read(location, file).await? {
            Some(text) => entry_lines(file, &text)?,
            None => continue,
        };
        let info = lines.first().cloned().unwrap_or_default();
        let sources: BTreeMap<String, serde_json::Value> = lines
            .iter()
            .skip(1)
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect();
        let commit = match commits.iter().find(|(c, _)| c == n) {
            Some((_, file)) => match read(location, file).await? {
                Some(text) => entry_lines(file, &text)?.first().cloned(),
                None => None,
            },
            None => None,
        };
        if commit.is_some() {
            last_sources = sources.clone();
        }
        let mut files = BTreeMap::new();
        for (source, entries) in &source_logs {
            if let Some((_, file)) = entries
                .iter()
                .find(|(e, f)| e == n && !f.ends_with(".compact"))
            {
                let text = read(location, file).await?.unwrap_or_default();
                let paths = entry_lines(file, &text)?
                    .iter()
                    .filter_map(|v| v.get("path")?.as_str().map(str::to_string))
                    .collect();
                files.insert(source.clone(), paths);
            }
        }
        if only.is_none_or(|o| o == *n) {
            batches.push(SparkBatchView {
                batch: BatchId(*n),
                status: if commit.is_some() {
                    "committed"
                } else {
                    "pending"
                },
                batch_timestamp_ms: info
                    .get("batchTimestampMs")
                    .and_then(serde_json::Value::as_i64),
                watermark_ms: info
                    .get("batchWatermarkMs")
                    .and_then(serde_json::Value::as_i64),
                sources,
                next_watermark_ms: commit
                    .as_ref()
                    .and_then(|c| c.get("nextBatchWatermarkMs")?.as_i64()),
                files,
            });
        }
    }
    if let Some(n) = only
        && batches.is_empty()
    {
        return Err(Error::Usage(format!("batch {n} is not in {spec}")));
    }
    let next_watermark_ms = match commits.last() {
        Some((_, file)) => read(location, file)
            .await?
            .and_then(|t| entry_lines(file, &t).ok())
            .and_then(|l| l.first()?.get("nextBatchWatermarkMs")?.as_i64()),
        None => None,
    };
    let mut state = Vec::new();
    let mut operators: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for meta in location.list("state").await? {
        let relative = location.relative(&meta.location);
        let parts: Vec<&str> = relative.split('/').collect();
        if let [_, op, _partition, name] = parts.as_slice() {
            let version = name
                .strip_suffix(".delta")
                .or_else(|| name.strip_suffix(".snapshot"))
                .and_then(entry_number);
            if let Some(v) = version {
                operators
                    .entry(op.to_string())
                    .or_default()
                    .push((v, meta.size));
            }
        }
    }
    for (op, files) in operators {
        let info = read(location, &format!("state/{op}/_metadata/metadata"))
            .await?
            .and_then(|t| entry_lines("metadata", &t).ok())
            .and_then(|l| l.first().cloned())
            .unwrap_or_default();
        state.push(SparkStateView {
            name: info
                .pointer("/operatorInfo/operatorName")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            partitions: info
                .pointer("/stateStoreInfo/0/numPartitions")
                .and_then(serde_json::Value::as_u64),
            files: files.len(),
            bytes: files.iter().map(|(_, s)| s).sum(),
            versions: files
                .iter()
                .map(|(v, _)| *v)
                .min()
                .zip(files.iter().map(|(v, _)| *v).max()),
            operator: op,
        });
    }
    let view = SparkView {
        kind: "spark",
        location: spec.to_string(),
        id,
        batches_committed: committed.len(),
        last_committed: committed.last().copied().map(BatchId),
        pending: offsets
            .last()
            .map(|(n, _)| *n)
            .filter(|n| !committed.contains(n))
            .map(BatchId),
        next_watermark_ms,
        source_offsets: last_sources,
        state,
        batches,
    };
    if json {
        super::emit_json(&view);
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "checkpoint  {} (Spark Structured Streaming)",
        view.location
    );
    let _ = writeln!(out, "query id    {}", view.id);
    let _ = writeln!(
        out,
        "committed   {} batches retained, last {}",
        view.batches_committed,
        view.last_committed.map_or("none".into(), |b| b.to_string())
    );
    let _ = writeln!(
        out,
        "pending     {}",
        view.pending.map_or("none".into(), |b| format!("batch {b}"))
    );
    if let Some(w) = view
        .next_watermark_ms
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        let _ = writeln!(out, "watermark   {} (the next batch's)", w.to_rfc3339());
    }
    for (source, offset) in &view.source_offsets {
        let _ = writeln!(out, "source {source}    {offset} after the last commit");
    }
    for s in &view.state {
        let _ = writeln!(
            out,
            "state       operator {} ({}): {} partitions, {} files ({} bytes), versions {}",
            s.operator,
            s.name.as_deref().unwrap_or("?"),
            s.partitions.map_or("?".into(), |p| p.to_string()),
            s.files,
            s.bytes,
            s.versions
                .map_or("none".into(), |(a, b)| crate::vocab::span(a, b))
        );
    }
    for b in &view.batches {
        let when = b
            .batch_timestamp_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "batch {:>6}  {:<9}  {when}  watermark {}  offsets {}",
            b.batch.0,
            b.status,
            b.watermark_ms.map_or("-".into(), |w| w.to_string()),
            serde_json::to_string(&b.sources).unwrap_or_default()
        );
        for (source, files) in &b.files {
            let _ = writeln!(out, "              source {source}: {}", files.join(", "));
        }
    }
    super::emit(&out);
    Ok(())
}

#[derive(Debug, Serialize)]
struct SparkSinkView {
    kind: &'static str,
    location: String,
    batches: usize,
    last_batch: Option<u64>,
    /// Entries of the log that fold earlier ones (`N.compact`).
    compact_entries: Vec<u64>,
    /// Files the log says are in the sink (added and not deleted).
    live_files: usize,
    live_bytes: u64,
    /// Per batch: files added and their bytes.
    per_batch: BTreeMap<u64, (usize, u64)>,
}

/// Whether `location` is a Spark file sink's folder (it has a `_spark_metadata` log).
pub(super) async fn is_spark_sink(location: &Location) -> Result<bool, Error> {
    Ok(!numbered(location, spark_sink::FOLDER).await?.is_empty())
}

/// `sluice inspect` on a Spark file sink's folder: what its `_spark_metadata` log holds.
pub(super) async fn run_sink(location: &Location, spec: &str, json: bool) -> Result<(), Error> {
    let log = spark_sink::read(location, true)
        .await
        .map_err(|e| match e {
            SinkLogError::Corrupt { file, line, reason } => {
                Error::from(CheckpointError::Corrupt { file, line, reason })
            }
            SinkLogError::Storage(e) => e.into(),
        })?
        .unwrap_or_default();
    let view = SparkSinkView {
        kind: "spark-sink",
        location: spec.to_string(),
        batches: log.entries.len(),
        last_batch: log.entries.last().map(|(n, _)| *n),
        compact_entries: log.compact_entries,
        live_files: log.live.len(),
        live_bytes: log.live.values().sum(),
        per_batch: log.per_batch,
    };
    if json {
        super::emit_json(&view);
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sink        {} (a Spark file sink's _spark_metadata)",
        view.location
    );
    let _ = writeln!(
        out,
        "batches     {}, last {}; compact entries {:?}",
        view.batches,
        view.last_batch.map_or("none".into(), |b| b.to_string()),
        view.compact_entries
    );
    let _ = writeln!(
        out,
        "live files  {} ({} bytes)",
        view.live_files, view.live_bytes
    );
    for (batch, (files, bytes)) in &view.per_batch {
        let _ = writeln!(out, "batch {batch:>6}  {files} files added ({bytes} bytes)");
    }
    super::emit(&out);
    Ok(())
}
