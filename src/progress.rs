//! Progress: one line per batch for people, or one JSON event per batch for tools, shaped like
//! Spark's `StreamingQueryProgress` so that what reads one can read the other.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::checkpoint::{BatchId, PhaseDurations};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressFormat {
    /// One line per batch on standard error.
    #[default]
    Text,
    /// One JSON object per batch on standard output.
    Json,
    /// Nothing.
    None,
}

/// What one batch did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchProgress {
    /// The pipeline's id.
    pub id: uuid::Uuid,
    /// This run's id.
    pub run_id: uuid::Uuid,
    /// The pipeline's name.
    pub name: String,
    /// The batch timestamp, RFC 3339.
    pub timestamp: String,
    /// The batch.
    pub batch_id: BatchId,
    /// Whether this was a re-run of an interrupted batch.
    pub recovered: bool,
    /// Rows read.
    pub num_input_rows: u64,
    /// Rows written to the sink.
    pub num_output_rows: u64,
    /// Malformed input rows skipped.
    pub num_skipped_rows: u64,
    /// Input rows with fields their source's schema does not know.
    pub num_rows_with_unknown_fields: u64,
    /// Those fields, per source.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown_fields: BTreeMap<String, BTreeSet<String>>,
    /// Input rows dropped because they were older than the watermark.
    pub num_late_rows: u64,
    /// Files read.
    pub num_input_files: u64,
    /// Input rows per second of batch time.
    pub processed_rows_per_second: f64,
    /// Per-phase durations in milliseconds.
    pub duration_ms: DurationMs,
    /// The batch's watermark, RFC 3339, when there is one.
    pub watermark: Option<String>,
    /// The stateful operators (Spark: `stateOperators`).
    pub state_operators: Vec<StateOperatorProgress>,
    /// False when the sink already had the batch (a re-run after the sink's commit).
    pub sink_wrote: bool,
}

/// What a batch did to one stateful operator.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOperatorProgress {
    /// The operator (its folder under `state/`).
    pub operator_name: String,
    /// Rows in its state after the batch.
    pub num_rows_total: u64,
    /// Rows the batch inserted or changed.
    pub num_rows_updated: u64,
    /// Rows the batch removed (closed by the watermark).
    pub num_rows_removed: u64,
    /// Input rows dropped as late.
    pub num_rows_dropped_by_watermark: u64,
    /// Bytes of state files the batch wrote.
    pub state_bytes_written: u64,
}

/// Per-phase durations, named as Spark names them where there is a match.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationMs {
    /// Finding new input (Spark: `latestOffset`).
    pub latest_offset: f64,
    /// Writing the offsets entry (Spark: `walCommit`).
    pub wal_commit: f64,
    /// Running the query and writing the sink (Spark: `addBatch`).
    pub add_batch: f64,
    /// Writing the commit entry (Spark: `commitOffsets`).
    pub commit_offsets: f64,
    /// The whole batch (Spark: `triggerExecution`).
    pub trigger_execution: f64,
}

impl From<&PhaseDurations> for DurationMs {
    fn from(d: &PhaseDurations) -> Self {
        Self {
            latest_offset: d.plan_ms,
            wal_commit: d.offsets_ms,
            add_batch: d.execute_ms,
            commit_offsets: d.commit_ms,
            trigger_execution: d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms,
        }
    }
}

impl BatchProgress {
    /// Shows the event in `format`.
    pub fn report(&self, format: ProgressFormat) {
        match format {
            ProgressFormat::None => {}
            ProgressFormat::Json => {
                use std::io::Write;
                let line = serde_json::to_string(self).expect("progress serializes");
                // A reader that went away must not stop the pipeline.
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            ProgressFormat::Text => {
                let d = &self.duration_ms;
                let mut skipped = if self.num_skipped_rows > 0 {
                    format!(", {} malformed rows skipped", self.num_skipped_rows)
                } else {
                    String::new()
                };
                if self.num_rows_with_unknown_fields > 0 {
                    let fields: Vec<String> = self
                        .unknown_fields
                        .iter()
                        .map(|(source, names)| {
                            let names: Vec<&str> = names.iter().map(String::as_str).collect();
                            format!("{source}: {}", names.join(", "))
                        })
                        .collect();
                    skipped.push_str(&format!(
                        ", {} rows with fields the schema does not know ({})",
                        self.num_rows_with_unknown_fields,
                        fields.join("; ")
                    ));
                }
                if self.num_late_rows > 0 {
                    skipped.push_str(&format!(", {} late rows dropped", self.num_late_rows));
                }
                if let Some(w) = &self.watermark {
                    skipped.push_str(&format!(", watermark {w}"));
                }
                for s in &self.state_operators {
                    skipped.push_str(&format!(
                        ", state {} rows (+{} -{}, {} B written)",
                        s.num_rows_total,
                        s.num_rows_updated,
                        s.num_rows_removed,
                        s.state_bytes_written
                    ));
                }
                eprintln!(
                    "batch {}{}: {} files, {} rows in, {} rows out{skipped}, {:.0} rows/s, {:.1} ms \
                     (plan {:.1}, offsets {:.1}, execute+sink {:.1}, commit {:.1})",
                    self.batch_id,
                    if self.recovered { " (recovered)" } else { "" },
                    self.num_input_files,
                    self.num_input_rows,
                    self.num_output_rows,
                    self.processed_rows_per_second,
                    d.trigger_execution,
                    d.latest_offset,
                    d.wal_commit,
                    d.add_batch,
                    d.commit_offsets,
                );
            }
        }
    }
}
