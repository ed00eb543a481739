//! Progress: one line per batch for people, or one JSON event per batch for tools, shaped like
//! Spark's `StreamingQueryProgress` so that what reads one can read the other.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checkpoint::{BatchId, PhaseDurations};

/// Follows a field's name among a batch's unknown fields where its value did not fit its
/// column's type and was rescued into the source's `rescued_data_column` (its column null in
/// that row): `code (a value not of its column's type)`.
pub const MISFIT_FIELD: &str = " (a value not of its column's type)";

/// Writes a line to standard error as `eprintln!` does, but says nothing where standard error
/// is gone (`sluice run p.yaml 2>&1 | head -1`): `eprintln!` panics there, which ended a run
/// between batches with exit 101 (walk 73). What is lost is a message, never a batch.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// `text` for a terminal or a log: control characters (an escape sequence that sets a window's
/// title or clears the screen, a carriage return), which input data may carry into a message,
/// written as Rust escapes (`\u{1b}`); line breaks and tabs kept, as messages use them (walk 71
/// (2)).
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escaped(text, true)
}

/// `text` with its control characters written as Rust escapes, line breaks and tabs too
/// unless `keep_breaks`.
fn escaped(text: &str, keep_breaks: bool) -> std::borrow::Cow<'_, str> {
    let escape = |c: char| c.is_control() && !(keep_breaks && (c == '\n' || c == '\t'));
    if !text.chars().any(escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if escape(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// How many unknown fields a source's progress names a batch; the rest are counted.
pub const NAMED_UNKNOWN_FIELDS: usize = 20;

/// `fields` (unknown fields, per source) with at most [`NAMED_UNKNOWN_FIELDS`] names per
/// source, the rest said as one entry, `(and 99980 more)`: input with many distinct field
/// names made a progress line (and a JSON event) as long as all of them (walk 71 (3)).
pub fn at_most_named(
    fields: BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    fields
        .into_iter()
        .map(|(source, names)| {
            if names.len() <= NAMED_UNKNOWN_FIELDS {
                return (source, names);
            }
            let more = names.len() - NAMED_UNKNOWN_FIELDS;
            let mut kept: BTreeSet<String> = names.into_iter().take(NAMED_UNKNOWN_FIELDS).collect();
            kept.insert(format!("(and {more} more)"));
            (source, kept)
        })
        .collect()
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressFormat {
    /// One line per batch on standard error.
    #[default]
    Text,
    /// One JSON object per batch on standard output (on standard error where the console sink
    /// prints its rows on standard output).
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
    /// Rows gone from their source before the batch read them (retention, a purge), skipped
    /// where the source has `fail_on_data_loss: false`.
    pub num_lost_rows: u64,
    /// Input rows with fields their source's schema does not know, or (rescued into a
    /// `rescued_data_column`) with a value that does not fit its column's type.
    pub num_rows_with_unknown_fields: u64,
    /// Those fields, per source (a rescued misfit's name followed by [`MISFIT_FIELD`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unknown_fields: BTreeMap<String, BTreeSet<String>>,
    /// Input rows dropped because they were older than the watermark, or past their
    /// source's `max_future` (set aside with them).
    pub num_late_rows: u64,
    /// Of those, rows past `max_future` (Sluice's own).
    pub num_rows_beyond_max_future: u64,
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
    /// The batch's watermark, RFC 3339, once there is one (`eventTime.watermark` gives the
    /// epoch before that, as Spark's does).
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
    /// Whether the batch's reads (and the query over them) ran on workers (`engine:
    /// distributed`); false where it all ran on the driver.
    pub ran_on_workers: bool,
    /// Whether late rows go to a `late_rows` sink (else they are dropped); for the text line.
    #[serde(skip)]
    pub late_rows_kept: bool,
}

/// Event time of a batch, as Spark's `eventTime` (its `watermark` only).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTimeProgress {
    /// The batch's watermark, ISO 8601 in UTC with milliseconds, where a source declares
    /// one (the epoch, `1970-01-01T00:00:00.000Z`, until the first is known, as Spark's).
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
    /// Malformed rows of this source the batch skipped (`on_error: skip`; Sluice's own, of
    /// the batch's `numSkippedRows`).
    pub num_skipped_rows: u64,
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
    /// Rows the batch removed (closed by the watermark, or dropped by the state TTL).
    pub num_rows_removed: u64,
    /// Of those, rows the state TTL dropped (Sluice's own; `state_ttl`).
    pub num_rows_dropped_by_ttl: u64,
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

/// A trigger of a continuous run (`trigger: every ...`) that found no new input, for tools
/// reading `--progress json`: as Spark's progress event without data, at most one every
/// [`IDLE_EVERY`] (Spark's `spark.sql.streaming.noDataProgressEventInterval`, 10 s), so that
/// an idle run is told from a stuck one. JSON only.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdleProgress {
    /// The pipeline's id.
    pub id: uuid::Uuid,
    /// This run's id.
    pub run_id: uuid::Uuid,
    /// The pipeline's name.
    pub name: String,
    /// When the trigger found nothing, RFC 3339.
    pub timestamp: String,
    /// The batch the next input goes into.
    pub batch_id: BatchId,
    /// Always false: no batch ran (as a batch's event has it, so a scraper reads one shape).
    pub recovered: bool,
    /// Always 0.
    pub num_input_rows: u64,
    /// Always 0.
    pub num_output_rows: u64,
    /// Always 0 (as each count of a batch's event).
    pub num_skipped_rows: u64,
    /// Always 0.
    pub num_lost_rows: u64,
    /// Always 0.
    pub num_rows_with_unknown_fields: u64,
    /// Always 0.
    pub num_late_rows: u64,
    /// Always 0.
    pub num_rows_beyond_max_future: u64,
    /// Always 0.
    pub num_input_files: u64,
    /// The watermark the next batch starts with, RFC 3339, once there is one (Spark's event
    /// without data gives its current watermark).
    pub watermark: Option<String>,
    /// Always false.
    pub ran_on_workers: bool,
    /// Always 0.
    pub input_rows_per_second: f64,
    /// Always 0.
    pub processed_rows_per_second: f64,
    /// Always 0.
    pub batch_duration: u64,
    /// All 0: no batch ran.
    pub duration_ms: DurationMs,
    /// Always false.
    pub sink_wrote: bool,
    /// Always true: what tells this event from a batch's.
    pub idle: bool,
    /// Event time, as a batch's.
    pub event_time: EventTimeProgress,
    /// Each source, where the last batch left it (`startOffset` is `endOffset`, no rows).
    pub sources: Vec<SourceProgress>,
    /// The sink, with no rows.
    pub sink: SinkProgress,
}

/// How often at most a continuous run with no new input says so ([`IdleProgress`]).
pub const IDLE_EVERY: Duration = Duration::from_secs(10);

impl IdleProgress {
    /// Writes the event as one JSON line where `format` is JSON (to standard error where
    /// `stdout_taken`, as [`BatchProgress::report`]); nothing otherwise.
    pub fn report(&self, format: ProgressFormat, stdout_taken: bool) {
        if format != ProgressFormat::Json {
            return;
        }
        let line = serde_json::to_string(self).expect("progress serializes");
        let _ = if stdout_taken {
            writeln!(std::io::stderr().lock(), "{line}")
        } else {
            writeln!(std::io::stdout().lock(), "{line}")
        };
    }
}

impl BatchProgress {
    /// Shows the event in `format`; JSON goes to standard error where `stdout_taken` (the
    /// console sink prints its rows there, and a reader of either would meet the other's lines).
    pub fn report(&self, format: ProgressFormat, stdout_taken: bool) {
        match format {
            ProgressFormat::None => {}
            ProgressFormat::Json => {
                use std::io::Write;
                let line = serde_json::to_string(self).expect("progress serializes");
                // A reader that went away must not stop the pipeline.
                let _ = if stdout_taken {
                    writeln!(std::io::stderr().lock(), "{line}")
                } else {
                    writeln!(std::io::stdout().lock(), "{line}")
                };
            }
            ProgressFormat::Text => {
                clear_live_line();
                let d = &self.phases;
                let mut skipped = if self.num_skipped_rows > 0 {
                    format!(", {} malformed rows skipped", self.num_skipped_rows)
                } else {
                    String::new()
                };
                if self.num_lost_rows > 0 {
                    skipped.push_str(&format!(
                        ", {} rows gone from the source skipped (`fail_on_data_loss: false`)",
                        self.num_lost_rows
                    ));
                }
                if self.num_rows_with_unknown_fields > 0 {
                    let fields: Vec<String> = self
                        .unknown_fields
                        .iter()
                        .map(|(source, names)| {
                            // Names come from the input: a line break or an escape sequence in
                            // one would forge or garble the line (walk 71 (2)).
                            let names: Vec<String> = names
                                .iter()
                                .map(|name| escaped(name, false).into_owned())
                                .collect();
                            format!("{source}: {}", names.join(", "))
                        })
                        .collect();
                    let misfits = self
                        .unknown_fields
                        .values()
                        .flatten()
                        .any(|name| name.ends_with(MISFIT_FIELD));
                    skipped.push_str(&format!(
                        ", {} rows with fields the schema does not know{} ({})",
                        self.num_rows_with_unknown_fields,
                        if misfits {
                            " or values not of their column's type (rescued)"
                        } else {
                            ""
                        },
                        fields.join("; ")
                    ));
                }
                if self.num_late_rows > 0 {
                    let whither = if self.late_rows_kept {
                        "written to late_rows"
                    } else {
                        "dropped"
                    };
                    skipped.push_str(&format!(", {} late rows {whither}", self.num_late_rows));
                    if self.num_rows_beyond_max_future > 0 {
                        skipped.push_str(&format!(
                            " ({} of them past max_future)",
                            self.num_rows_beyond_max_future
                        ));
                    }
                }
                if let Some(w) = &self.watermark {
                    skipped.push_str(&format!(", watermark {w}"));
                }
                let several = self.state_operators.len() > 1;
                for s in &self.state_operators {
                    let ttl = if s.num_rows_dropped_by_ttl > 0 {
                        format!(", {} by state_ttl", s.num_rows_dropped_by_ttl)
                    } else {
                        String::new()
                    };
                    // Which store, where there are several (a join's sides, a deduplication).
                    let name = if several {
                        format!("{} ", s.operator_name)
                    } else {
                        String::new()
                    };
                    skipped.push_str(&format!(
                        ", state {name}{} rows ({} updated, {} removed{ttl}, {} B written)",
                        s.num_rows_total,
                        s.num_rows_updated,
                        s.num_rows_removed,
                        s.state_bytes_written
                    ));
                }
                // Sources that read no files (Kafka, NATS, the generators) count none.
                let files = match self.num_input_files {
                    0 => String::new(),
                    n => format!("{n} files, "),
                };
                crate::say!(
                    "batch {}{}: {files}{} rows in, {} rows out{skipped}, {:.0} rows/s, {:.1} ms \
                     (plan {:.1}, offsets {:.1}, execute+sink {:.1}, commit {:.1}){}",
                    self.batch_id,
                    if self.recovered { " (recovered)" } else { "" },
                    self.num_input_rows,
                    self.num_output_rows,
                    self.processed_rows_per_second,
                    d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms,
                    d.plan_ms,
                    d.offsets_ms,
                    d.execute_ms,
                    d.commit_ms,
                    if self.ran_on_workers {
                        ", on the workers"
                    } else {
                        ""
                    },
                );
            }
        }
    }
}

/// What the batch in progress has read so far, counted by the sources as they read (for the
/// live line on a terminal; one batch runs at a time in a process).
#[derive(Debug)]
pub struct Live {
    files_total: AtomicU64,
    files_read: AtomicU64,
    rows_read: AtomicU64,
    bytes_read: AtomicU64,
    /// Whether a live line is on the terminal now, and whether drawing has stopped; held while
    /// drawing or clearing, so the two never interleave.
    line: Mutex<LineState>,
}

#[derive(Debug, Default)]
struct LineState {
    shown: bool,
    stopped: bool,
}

/// The counters of the batch in progress.
pub static LIVE: Live = Live {
    files_total: AtomicU64::new(0),
    files_read: AtomicU64::new(0),
    rows_read: AtomicU64::new(0),
    bytes_read: AtomicU64::new(0),
    line: Mutex::new(LineState {
        shown: false,
        stopped: true,
    }),
};

impl Live {
    /// A source is about to read `files` more files in this batch.
    pub fn expect_files(&self, files: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
    }

    /// A source has read a file (or a range) of `rows` rows and `bytes` bytes.
    pub fn read_file(&self, rows: u64, bytes: u64) {
        self.files_read.fetch_add(1, Ordering::Relaxed);
        self.rows_read.fetch_add(rows, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    fn reset(&self) {
        for counter in [
            &self.files_total,
            &self.files_read,
            &self.rows_read,
            &self.bytes_read,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The live line of batch `batch`, `elapsed` into it: a bar of the files read where the
    /// batch's files are known, then rows and bytes read.
    fn line(&self, batch: BatchId, elapsed: Duration) -> String {
        let total = self.files_total.load(Ordering::Relaxed);
        let files = self.files_read.load(Ordering::Relaxed).min(total.max(1));
        let rows = self.rows_read.load(Ordering::Relaxed);
        let mb = self.bytes_read.load(Ordering::Relaxed) as f64 / 1e6;
        let secs = elapsed.as_secs_f64();
        if total == 0 {
            return format!("batch {batch}: {rows} rows read, {mb:.1} MB, {secs:.0} s");
        }
        const WIDTH: u64 = 24;
        let done = (files * WIDTH / total) as usize;
        let bar = format!("{}{}", "#".repeat(done), ".".repeat(WIDTH as usize - done));
        let then = if files == total {
            "; running the query and writing the sink"
        } else {
            ""
        };
        format!(
            "batch {batch} [{bar}] {files}/{total} files, {rows} rows, {mb:.1} MB read{then}, \
             {secs:.0} s"
        )
    }
}

/// Draws what the batch in progress has read on standard error, redrawn in place, from one
/// second into the batch (a short batch draws nothing); only where standard error is a
/// terminal. The line is cleared when this is dropped, or before a batch's text progress.
#[derive(Debug)]
pub struct LiveLine {
    task: tokio::task::JoinHandle<()>,
}

impl LiveLine {
    /// Starts the live line of batch `batch`; `None` where standard error is not a terminal.
    pub fn start(batch: BatchId) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        LIVE.reset();
        LIVE.line.lock().unwrap_or_else(|e| e.into_inner()).stopped = false;
        let started = Instant::now();
        // `SLUICE_PROGRESS_AFTER` (a duration) moves the first draw, for tests.
        let after = std::env::var("SLUICE_PROGRESS_AFTER")
            .ok()
            .and_then(|d| humantime::parse_duration(&d).ok())
            .unwrap_or(Duration::from_secs(1));
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            // Redrawn when what was read changes (looked at every 50 ms), at most every 250 ms
            // otherwise (the time in it moves).
            let mut last: Option<(String, Instant)> = None;
            loop {
                {
                    let mut state = LIVE.line.lock().unwrap_or_else(|e| e.into_inner());
                    if state.stopped {
                        return;
                    }
                    let counts = LIVE.line(batch, Duration::ZERO);
                    let due = last.as_ref().is_none_or(|(was, at)| {
                        *was != counts || at.elapsed() >= Duration::from_millis(250)
                    });
                    if due {
                        let line = LIVE.line(batch, started.elapsed());
                        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}");
                        state.shown = true;
                        last = Some((counts, Instant::now()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Some(Self { task })
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        self.task.abort();
        clear_live_line();
    }
}

/// Stops the live line and clears it from the terminal, if it is there.
pub fn clear_live_line() {
    let mut state = LIVE.line.lock().unwrap_or_else(|e| e.into_inner());
    state.stopped = true;
    if std::mem::take(&mut state.shown) {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
    }
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    /// Walk 71 (2, 3): input data's escape sequences reached the terminal in messages and
    /// progress lines, and a batch with thousands of unknown field names made a line of them
    /// all.
    #[test]
    fn input_text_cannot_drive_the_terminal_or_the_line_length() {
        assert_eq!(
            printable("Cannot cast '\u{1b}]0;PWNED\u{7}' to int\nnext"),
            "Cannot cast '\\u{1b}]0;PWNED\\u{7}' to int\nnext"
        );
        assert_eq!(escaped("a\nbatch 99", false), "a\\nbatch 99");
        let many: BTreeSet<String> = (0..100).map(|i| format!("f{i:03}")).collect();
        let shown = at_most_named(BTreeMap::from([("s".to_string(), many)]));
        assert_eq!(shown["s"].len(), NAMED_UNKNOWN_FIELDS + 1);
        assert!(shown["s"].contains("(and 80 more)"));
    }
}
