//! `sluice inspect`: what a checkpoint holds, for people (text) and tools (`--json`).

use serde::Serialize;

use crate::Error;
use crate::checkpoint::{
    self, BatchId, Checkpoint, CommitEntry, LogListing, Metadata, OffsetsEntry,
};
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
}

/// The whole checkpoint as inspect shows it.
#[derive(Debug, Serialize)]
struct CheckpointView {
    location: String,
    metadata: Metadata,
    batches_committed: usize,
    last_committed: Option<BatchId>,
    pending: Option<BatchId>,
    batches: Vec<BatchView>,
}

pub(super) async fn run(spec: &str, only: Option<u64>, json: bool) -> Result<(), Error> {
    let location = super::open_checkpoint(spec)?;
    let metadata = Checkpoint::read_metadata(&location).await?.ok_or_else(|| {
        Error::Usage(format!(
            "{spec} is not a Sluice checkpoint (it has no metadata)"
        ))
    })?;
    let logs = LogListing::read(&location).await?;
    let pending = logs
        .offsets
        .last()
        .copied()
        .filter(|b| !logs.commits.contains(b));
    let mut batches = Vec::new();
    for batch in &logs.offsets {
        if only.is_some_and(|n| n != batch.0) {
            continue;
        }
        batches.push(view_batch(&location, *batch, &logs).await?);
    }
    if let Some(n) = only
        && batches.is_empty()
    {
        return Err(Error::Usage(format!(
            "batch {n} is not in {spec} (retained batches: {})",
            describe_range(&logs.offsets)
        )));
    }
    let view = CheckpointView {
        location: spec.to_string(),
        metadata,
        batches_committed: logs.commits.len(),
        last_committed: logs.commits.last().copied(),
        pending,
        batches,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).expect("view serializes")
        );
    } else {
        print_text(&view);
    }
    Ok(())
}

async fn view_batch(
    location: &Location,
    batch: BatchId,
    logs: &LogListing,
) -> Result<BatchView, Error> {
    let offsets: Option<OffsetsEntry> = checkpoint::read_offsets(location, batch).await?;
    let commit = if logs.commits.contains(&batch) {
        checkpoint::read_commit(location, batch).await?
    } else {
        None
    };
    let mut files = std::collections::BTreeMap::new();
    if let Some(entry) = &offsets {
        for source in &entry.sources {
            let Some(log) = source.offset.get("log").and_then(serde_json::Value::as_u64) else {
                continue;
            };
            if log != batch.0 {
                continue;
            }
            let path = location.path(&format!(
                "{}/{log}",
                checkpoint::paths::source_dir(&source.source)
            ));
            if let Some(bytes) = location.get(&path).await? {
                let list = String::from_utf8_lossy(&bytes)
                    .lines()
                    .skip(1)
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v.get("path").and_then(|p| p.as_str()).map(str::to_string))
                    .collect();
                files.insert(source.source.clone(), list);
            }
        }
    }
    Ok(BatchView {
        batch,
        status: if commit.is_some() {
            "committed"
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
    })
}

fn describe_range(batches: &[BatchId]) -> String {
    match (batches.first(), batches.last()) {
        (Some(a), Some(b)) => format!("{a}..={b}"),
        _ => "none".into(),
    }
}

fn print_text(view: &CheckpointView) {
    println!("checkpoint  {}", view.location);
    println!(
        "pipeline    {} (id {})",
        view.metadata.name, view.metadata.id
    );
    println!("created     {}", view.metadata.created);
    println!(
        "committed   {} batches retained, last {}",
        view.batches_committed,
        view.last_committed.map_or("none".into(), |b| b.to_string())
    );
    println!(
        "pending     {}",
        view.pending.map_or("none".into(), |b| format!(
            "batch {b} (runs again on the next start)"
        ))
    );
    for b in &view.batches {
        let when = b
            .offsets
            .as_ref()
            .and_then(|o| o.get("batch_timestamp_ms"))
            .and_then(serde_json::Value::as_i64)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        print!("batch {:>6}  {:<9}  {when}", b.batch.0, b.status);
        if let Some(c) = &b.commit {
            print!(
                "  {} files, {} rows in, {} rows out, {:.1} ms (plan {:.1}, offsets {:.1}, execute {:.1}, commit {:.1})",
                c.files_in,
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
        }
        println!();
        if let Some(sources) = b.offsets.as_ref().and_then(|o| o.get("sources")) {
            println!("              offsets {sources}");
        }
        for (source, files) in &b.files {
            println!("              {source}: {}", files.join(", "));
        }
    }
}
