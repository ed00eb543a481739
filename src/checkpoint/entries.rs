//! The log entries' formats: `offsets/N`, `commits/N` and `metadata`, as text a person can read.
//!
//! An entry is `v1`, then one JSON line of batch metadata, then (offsets only) one JSON line per
//! source. Parsing never guesses: a truncated or edited entry is an error naming the line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BatchId, CheckpointError, Epoch, PinnedSettings};

/// The format of `metadata` this Sluice writes and reads (its `format` field); a later one is
/// a newer Sluice's ([`CheckpointError::NewerFormat`]).
pub const METADATA_FORMAT: u32 = 1;

/// The checkpoint's `metadata` object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The pipeline's id, fixed for the checkpoint's life.
    pub id: uuid::Uuid,
    /// The pipeline's name: as the checkpoint was created with, or as `sluice rename` last
    /// set it.
    pub name: String,
    /// When the checkpoint was created (RFC 3339).
    pub created: String,
    /// The checkpoint format version.
    pub format: u32,
    /// The name `sluice rename` last took from it, where it was renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

/// Line 2 of `offsets/N`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchInfo {
    /// The batch's `now()`, in milliseconds since the epoch.
    pub batch_timestamp_ms: i64,
    /// The batch's watermark, when the pipeline has one.
    pub watermark_ms: Option<i64>,
    /// The epoch of the run that planned the batch.
    pub epoch: Epoch,
    /// The run that planned the batch.
    pub run_id: uuid::Uuid,
    /// Settings pinned for the batch.
    pub settings: PinnedSettings,
    /// The fingerprint of the query text; the text is under `queries/`.
    pub query_fingerprint: String,
    /// The fingerprint of the pipeline file the batch was planned with (under `pipelines/`):
    /// a re-run of a pending batch takes every setting from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

/// One source line of `offsets/N`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceOffset {
    /// The source's name.
    pub source: String,
    /// The source's end offset for the batch, in its own JSON shape; `null` while the source
    /// has had no input (Spark writes `-` there), which is a normal, valid entry.
    pub offset: serde_json::Value,
}

/// A whole `offsets/N` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetsEntry {
    /// Batch metadata.
    pub info: BatchInfo,
    /// Each source's end offset.
    pub sources: Vec<SourceOffset>,
}

/// Durations of a batch's phases, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PhaseDurations {
    /// Finding new input.
    pub plan_ms: f64,
    /// Writing the offsets entry and the sources' logs.
    pub offsets_ms: f64,
    /// Running the query and writing the sink.
    pub execute_ms: f64,
    /// Committing what the batch computed, after the sink has it: the state version and the
    /// fence check before `commits/N`. In `commits/N` itself this cannot include the entry's
    /// own write; progress reports add that write and the purge after it.
    pub commit_ms: f64,
}

/// Line 2 of `commits/N`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommitEntry {
    /// The watermark the next batch starts with.
    pub next_watermark_ms: Option<i64>,
    /// The latest event time seen up to this batch, per source with a watermark.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_time_max_ms: BTreeMap<String, i64>,
    /// The timestamp of the latest batch that read rows from it (or of the first batch, until
    /// one does), per source with an `idle_timeout`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_active_ms: BTreeMap<String, i64>,
    /// Rows dropped because they were older than the batch's watermark.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_late: u64,
    /// Of those, rows whose event time was past their source's `max_future` ahead of the
    /// batch's timestamp (quarantined with the late rows).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_beyond_max_future: u64,
    /// The state the batch wrote, per state store, for a stateful query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<StateCommit>,
    /// The content hash of the rows the batch wrote to the sink (for `sluice replay --verify`);
    /// absent where the output's types have no row encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<crate::digest::OutputDigest>,
    /// The fingerprint of the pipeline file the batch ran with (under `pipelines/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The checkpoint's pipeline id (as in `metadata`), so that `sluice repair` can rebuild a
    /// lost `metadata` from any commit; absent in commits of an older Sluice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<uuid::Uuid>,
    /// When the checkpoint was made (`metadata`'s `created`, RFC 3339 as written there), so
    /// that `sluice repair` rebuilds it exactly: sinks tell the newer of two checkpoints of a
    /// pipeline by it. Absent in commits of an older Sluice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_created: Option<String>,
    /// Rows read by the batch.
    pub rows_in: u64,
    /// Rows written to the sink.
    pub rows_out: u64,
    /// Input rows skipped: malformed (`on_error: skip`), and gone from their source before
    /// the batch read them (`rows_lost`).
    pub rows_skipped: u64,
    /// Of `rows_skipped`, those gone from their source (a Kafka topic's or NATS stream's
    /// retention) before the batch read them (`fail_on_data_loss: false`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_lost: u64,
    /// Input rows with fields their source's schema does not know (kept in a rescued-data
    /// column where the source has one, dropped otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_with_unknown_fields: u64,
    /// Files read by the batch.
    pub files_in: u64,
    /// The epoch of the run that committed the batch.
    pub epoch: Epoch,
    /// The run that committed the batch.
    pub run_id: uuid::Uuid,
    /// When the batch was committed, in milliseconds since the epoch.
    pub committed_at_ms: i64,
    /// The batch's timestamp as `offsets/N` logged it (what `now()` returns in it), so that
    /// `sluice repair` rebuilds a lost offsets entry exactly; absent in commits of an older
    /// Sluice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_timestamp_ms: Option<i64>,
    /// The settings `offsets/N` pinned for the batch, for the same reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<crate::vocab::PinnedSettings>,
    /// Phase durations.
    pub durations: PhaseDurations,
}

/// `sink`: where the pipeline's output goes, recorded by each run (for `sluice rewind`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SinkRecord {
    /// `files` or `console`.
    pub kind: String,
    /// The files sink's folder or URL.
    pub path: Option<String>,
    /// The files sink's format.
    pub format: Option<String>,
    /// The output mode.
    pub output_mode: String,
    /// The columns of the query's output the sink took (name and Arrow type), once a run has
    /// planned the query; kept while the sink stays where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Vec<(String, String)>>,
    /// The records of the other places earlier batches went to, newest first, each as it was
    /// when the sink moved away from it (its own `earlier` empty): a sink that comes back to
    /// one is held to the format and columns its files there have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<SinkRecord>,
}

impl SinkRecord {
    /// Whether this record is of the sink of kind `kind` at `path`.
    pub fn is_at(&self, kind: &str, path: &Option<String>) -> bool {
        self.kind == kind && &self.path == path
    }

    /// The record of the sink of kind `kind` at `path`: this one, or one of the places
    /// earlier batches went to.
    pub fn of_place(&self, kind: &str, path: &Option<String>) -> Option<&SinkRecord> {
        std::iter::once(self)
            .chain(&self.earlier)
            .find(|r| r.is_at(kind, path))
    }
}

/// `failure`: how the last run that failed while a batch was pending failed, for `inspect`
/// and `report` to say beside the pending batch. Written over by each such failure; it says
/// nothing once its batch is committed or logged again (a rewind).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailureRecord {
    /// The batch that was pending.
    pub batch: BatchId,
    /// When the run failed, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The run's id.
    pub run_id: uuid::Uuid,
    /// The run's exit code (1 a failure while running, 2 a refusal).
    pub exit_code: i32,
    /// The error, as the run said it.
    pub error: String,
}

/// What a batch did to an operator's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StateCommit {
    /// The operator (its folder under `state/`).
    pub operator: String,
    /// The version written (the batch).
    pub version: BatchId,
    /// Rows in the state after the batch.
    pub rows_total: u64,
    /// Rows the batch inserted or changed.
    pub rows_updated: u64,
    /// Rows the batch removed.
    pub rows_removed: u64,
    /// Of those, rows the state TTL dropped (`state_ttl`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_expired: u64,
    /// Bytes of state files written.
    pub bytes_written: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The content of an `epochs/E` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EpochEntry {
    /// The run that took the epoch.
    pub run_id: uuid::Uuid,
    /// When it started, RFC 3339.
    pub started: String,
    /// The host and process, for people reading the checkpoint.
    pub owner: String,
}

const VERSION: &str = "v1";

impl OffsetsEntry {
    /// The entry as written to `offsets/N`.
    pub fn to_text(&self) -> String {
        let mut text = format!("{VERSION}\n{}\n", to_json(&self.info));
        for s in &self.sources {
            text.push_str(&to_json(s));
            text.push('\n');
        }
        text
    }

    /// Parses `offsets/N`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, CheckpointError> {
        let mut lines = versioned_lines(file, text)?;
        let (n, line) = lines
            .next()
            .ok_or_else(|| corrupt(file, 2, "the batch metadata line is missing"))?;
        let info = from_json(file, n, line)?;
        let sources = lines
            .map(|(n, line)| from_json(file, n, line))
            .collect::<Result<_, _>>()?;
        Ok(Self { info, sources })
    }

    /// Each source's end offset, by source.
    pub fn ends(&self) -> BTreeMap<String, serde_json::Value> {
        self.sources
            .iter()
            .map(|s| (s.source.clone(), s.offset.clone()))
            .collect()
    }

    /// The offset logged for `source`, if any.
    pub fn offset_of(&self, source: &str) -> Option<&serde_json::Value> {
        self.sources
            .iter()
            .find(|s| s.source == source)
            .map(|s| &s.offset)
    }
}

impl CommitEntry {
    /// The entry as written to `commits/N`.
    pub fn to_text(&self) -> String {
        format!("{VERSION}\n{}\n", to_json(self))
    }

    /// Parses `commits/N`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, CheckpointError> {
        let mut lines = versioned_lines(file, text)?;
        let (n, line) = lines
            .next()
            .ok_or_else(|| corrupt(file, 2, "the commit metadata line is missing"))?;
        let entry = from_json(file, n, line)?;
        if let Some((n, _)) = lines.next() {
            return Err(corrupt(file, n, "unexpected extra line"));
        }
        Ok(entry)
    }
}

/// Parses a single JSON document stored in a checkpoint object.
pub fn parse_json_object<T: for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
) -> Result<T, CheckpointError> {
    serde_json::from_str(text.trim_end()).map_err(|e| corrupt(file, e.line(), &e.to_string()))
}

/// Serializes a value as compact JSON.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("checkpoint entries serialize to JSON")
}

fn versioned_lines<'a>(
    file: &str,
    text: &'a str,
) -> Result<impl Iterator<Item = (usize, &'a str)>, CheckpointError> {
    if !text.ends_with('\n') {
        return Err(corrupt(
            file,
            text.lines().count().max(1),
            "the entry does not end with a newline: it was truncated",
        ));
    }
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, VERSION)) => Ok(lines),
        // A later format (Spark's `UnsupportedLogVersion`): not damage, and not to be moved
        // aside by `sluice repair` (audit 94a: said corrupt, and repair discarded it).
        Some((_, other))
            if other
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n > 1) =>
        {
            Err(CheckpointError::NewerFormat {
                file: file.to_string(),
                found: other.to_string(),
            })
        }
        Some((_, other)) => Err(corrupt(
            file,
            1,
            &format!(
                "expected format version `{VERSION}`, found `{}`",
                truncate(other)
            ),
        )),
        None => Err(corrupt(file, 1, "the entry is empty")),
    }
}

fn from_json<T: for<'de> Deserialize<'de>>(
    file: &str,
    line_no: usize,
    line: &str,
) -> Result<T, CheckpointError> {
    serde_json::from_str(line).map_err(|e| {
        let reason = e.to_string();
        let reason = if reason.starts_with("unknown field") {
            format!(
                "{reason}: a field this Sluice does not know, so the entry was edited, or \
                 written by a newer Sluice (then run that one)"
            )
        } else {
            reason
        };
        corrupt(file, line_no, &reason)
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn corrupt(file: &str, line: usize, reason: &str) -> CheckpointError {
    CheckpointError::Corrupt {
        file: file.to_string(),
        line,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OffsetsEntry {
        OffsetsEntry {
            info: BatchInfo {
                batch_timestamp_ms: 1_700_000_000_000,
                watermark_ms: None,
                epoch: Epoch(3),
                run_id: uuid::Uuid::nil(),
                settings: PinnedSettings {
                    target_partitions: 2,
                    batch_size: 8192,
                    where_before_watermark: false,
                    join_keys_before_watermark: false,
                },
                query_fingerprint: "abc".into(),
                pipeline: Some("def".into()),
            },
            sources: vec![SourceOffset {
                source: "clicks".into(),
                offset: serde_json::json!({"log": 4, "files": 9}),
            }],
        }
    }

    #[test]
    fn offsets_round_trip() {
        let entry = sample();
        let text = entry.to_text();
        assert!(text.starts_with("v1\n{\"batch_timestamp_ms\":1700000000000"));
        assert_eq!(
            OffsetsEntry::parse("offsets/4", &text).expect("parse"),
            entry
        );
    }

    #[test]
    fn a_source_without_an_offset_round_trips() {
        let mut entry = sample();
        entry.sources.push(SourceOffset {
            source: "other".into(),
            offset: serde_json::Value::Null,
        });
        let text = entry.to_text();
        assert!(
            text.ends_with("{\"source\":\"other\",\"offset\":null}\n"),
            "{text}"
        );
        assert_eq!(
            OffsetsEntry::parse("offsets/4", &text).expect("parse"),
            entry
        );
    }

    #[test]
    fn truncated_entry_names_file_and_line() {
        let text = sample().to_text();
        let cut = &text[..text.len() - 10];
        let err = OffsetsEntry::parse("offsets/4", cut).expect_err("truncated");
        let msg = err.to_string();
        assert!(msg.contains("offsets/4"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn wrong_version_and_garbage_are_refused() {
        let err = OffsetsEntry::parse("offsets/1", "v0\n{}\n").expect_err("version");
        assert!(err.to_string().contains("line 1"), "{err}");
        // A later format is a newer Sluice's, not damage (audit 94a).
        let err = OffsetsEntry::parse("offsets/1", "v9\n{}\n").expect_err("version");
        assert!(
            matches!(err, CheckpointError::NewerFormat { .. })
                && err
                    .to_string()
                    .contains("offsets/1 is of format v9, later than"),
            "{err}"
        );
        let err = CommitEntry::parse("commits/1", "v1\nnot json\n").expect_err("garbage");
        assert!(err.to_string().contains("commits/1 line 2"), "{err}");
        let err = CommitEntry::parse("commits/1", "").expect_err("empty");
        assert!(err.to_string().contains("commits/1"), "{err}");
    }
}
