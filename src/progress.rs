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
    /// Input rows per second since the previous batch of this run started (Spark's rate of
    /// arrival; 0 for a run's first batch).
    pub input_rows_per_second: f64,
    /// The whole batch, in whole milliseconds (Spark: `batchDuration`).
    pub batch_duration: u64,
    /// Per-phase durations in whole milliseconds.
    pub duration_ms: DurationMs,
    /// The same, to the microsecond (the text line shows them).
    #[serde(skip)]
    pub phases: PhaseDurations,
    /// The batch's watermark, RFC 3339, when there is one (also in `eventTime.watermark`).
    pub watermark: Option<String>,
    /// Event time (Spark: `eventTime`, of which Sluice gives the watermark).
    pub event_time: EventTimeProgress,
    /// Each source (Spark: `sources`).
    pub sources: Vec<SourceProgress>,
    /// The sink (Spark: `sink`).
    pub sink: SinkProgress,
    /// The stateful operators (Spark: `stateOperators`).
    pub state_operators: Vec<StateOperatorProgress>,
    /// False when the sink already had the batch (a re-run after the sink's commit).
    pub sink_wrote: bool,
}

/// Event time of a batch, as Spark's `eventTime` (its `watermark` only).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTimeProgress {
    /// The batch's watermark, ISO 8601 in UTC with milliseconds, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// What a batch read from one source, as Spark's `SourceProgress`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceProgress {
    /// The source: `<kind>[<name>: <location>]`.
    pub description: String,
    /// Where the batch started reading (the previous batch's end offset; null for the first).
    pub start_offset: serde_json::Value,
    /// Where the batch stopped reading (its logged end offset).
    pub end_offset: serde_json::Value,
    /// Rows the batch read from this source.
    pub num_input_rows: u64,
    /// Those rows per second since the previous batch of this run started.
    pub input_rows_per_second: f64,
    /// Those rows per second of batch time.
    pub processed_rows_per_second: f64,
}

/// What a batch wrote, as Spark's `SinkProgress`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    /// The sink: `<kind>[<location>]`.
    pub description: String,
    /// Rows the batch wrote.
    pub num_output_rows: u64,
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

/// Per-phase durations in whole milliseconds (as Spark reports them), named as Spark names
/// them where there is a match. The commit log keeps them to the microsecond.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationMs {
    /// Finding new input (Spark: `latestOffset`).
    pub latest_offset: u64,
    /// Writing the offsets entry (Spark: `walCommit`).
    pub wal_commit: u64,
    /// Running the query and writing the sink (Spark: `addBatch`).
    pub add_batch: u64,
    /// Writing the commit entry (Spark: `commitOffsets`).
    pub commit_offsets: u64,
    /// The whole batch (Spark: `triggerExecution`).
    pub trigger_execution: u64,
}

impl From<&PhaseDurations> for DurationMs {
    fn from(d: &PhaseDurations) -> Self {
        let whole = |ms: f64| ms.round().max(0.0) as u64;
        Self {
            latest_offset: whole(d.plan_ms),
            wal_commit: whole(d.offsets_ms),
            add_batch: whole(d.execute_ms),
            commit_offsets: whole(d.commit_ms),
            trigger_execution: whole(d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms),
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
                let d = &self.phases;
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
                    d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms,
                    d.plan_ms,
                    d.offsets_ms,
                    d.execute_ms,
                    d.commit_ms,
                );
            }
        }
    }
}
