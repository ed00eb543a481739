//! The rate source: a deterministic generator of `timestamp, value` rows at a configured rate,
//! as Spark's `rate` source, for trying pipelines and measuring them without input files.
//!
//! Row `i` (from 0) has `value = i` and `timestamp = start + i / rows_per_second` seconds
//! (microseconds, rounded down). An end offset is
//! `{"start_ms": S, "rows_per_second": R, "rows": N}`: the rows `0..N` exist, generated from
//! start time `S` (milliseconds since the Unix epoch) at rate `R`. The start is `start_time`
//! when set, or the time the first batch is planned (a `every` trigger only: `available-now`
//! and `once` need `start_time`, or no row would ever be due), and stays in every later offset
//! with the rate, so a range regenerates the same rows on every replay, whenever it runs; a
//! changed `start_time` or `rows_per_second` is refused once batches ran. Planning
//! takes the rows whose timestamps have passed (by the wall clock, or the time `available-now`
//! and `once` froze the input), at most `max_rows_per_batch` of them and `max_rows` in all. The
//! source keeps no log of its own: the offsets log is all it needs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::Deserialize;
use serde_json::json;

use super::{
    Admission, BatchInput, ConfigError, Source, SourceConnector, SourceError, SourceKind,
    parse_settings,
};
use crate::checkpoint::{BatchId, CheckpointError};
use crate::storage::{Location, StoreHook};

/// The rate source in the registry.
pub(super) const KIND: SourceKind = SourceKind {
    name: "rate",
    configure,
};

/// Rows per record batch of a read.
const ROWS_PER_RECORD_BATCH: u64 = 8192;

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SourceConnector>, ConfigError> {
    let mut config: RateConfig = parse_settings(settings)?;
    if config.rows_per_second == 0 {
        return Err(ConfigError::at(
            "rows_per_second",
            "`rows_per_second` must be at least 1",
        ));
    }
    if config.max_rows == Some(0) {
        return Err(ConfigError::at("max_rows", "`max_rows` must be at least 1"));
    }
    if config.max_rows_per_batch == Some(0) {
        return Err(ConfigError::at(
            "max_rows_per_batch",
            "`max_rows_per_batch` must be at least 1",
        ));
    }
    if let Some(text) = &config.start_time {
        let start = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
            ConfigError::at(
                "start_time",
                format!(
                    "`start_time: {text}` is not an RFC 3339 time ({e}); e.g. 2026-01-01T00:00:00Z"
                ),
            )
        })?;
        config.start_ms = Some(start.timestamp_millis());
    }
    Ok(Arc::new(config))
}

fn one() -> u64 {
    1
}

/// The settings of a rate source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Rows per second of generator time (Spark's `rowsPerSecond`); at least 1, 1 by default.
    #[serde(default = "one")]
    pub rows_per_second: u64,
    /// The timestamp of row 0, RFC 3339; the time the first batch is planned where absent.
    #[serde(default)]
    pub start_time: Option<String>,
    /// At most this many new rows per batch (all that are due where absent).
    #[serde(default)]
    pub max_rows_per_batch: Option<u64>,
    /// Generates this many rows in all, then no more (unbounded where absent).
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// `start_time` in milliseconds since the Unix epoch.
    #[serde(skip)]
    start_ms: Option<i64>,
}

impl RateConfig {
    /// The rows due at `now_ms` for a generator started at `start_ms`, within `max_rows`.
    fn due(&self, start_ms: i64, now_ms: i64) -> u64 {
        let elapsed = u128::try_from(now_ms.saturating_sub(start_ms)).unwrap_or(0);
        let due = elapsed.saturating_mul(u128::from(self.rows_per_second)) / 1000;
        let due = u64::try_from(due).unwrap_or(u64::MAX);
        self.max_rows.map_or(due, |max| due.min(max))
    }
}

#[async_trait]
impl SourceConnector for RateConfig {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    async fn open(
        &self,
        name: &str,
        checkpoint: &Location,
        _hook: Option<&StoreHook>,
        _sync: bool,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(RateSource::new(name, self.clone(), checkpoint)))
    }

    async fn peek_schema(&self, _name: &str) -> Result<Option<SchemaRef>, SourceError> {
        Ok(Some(schema()))
    }

    fn describe_offset(&self, _name: &str, offset: &serde_json::Value) -> String {
        match (
            offset.get("rows").and_then(serde_json::Value::as_u64),
            offset.get("start_ms").and_then(serde_json::Value::as_i64),
        ) {
            (Some(rows), Some(start_ms)) => format!(
                "{rows} rows generated from {}, {} a second",
                chrono::DateTime::from_timestamp_millis(start_ms)
                    .map_or_else(|| start_ms.to_string(), |t| t.to_rfc3339()),
                offset
                    .get("rows_per_second")
                    .map_or_else(|| "?".to_string(), ToString::to_string)
            ),
            _ => offset.to_string(),
        }
    }

    async fn check_forget(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _to: BatchId,
    ) -> Result<(), SourceError> {
        Ok(())
    }

    async fn forget_batch(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
    ) -> Result<u64, SourceError> {
        // Nothing of its own to forget: a batch's range is all in `offsets/N`.
        Ok(0)
    }
}

/// The columns of every rate source: `timestamp` (microseconds, UTC wall clock) and `value`.
fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("value", DataType::Int64, false),
    ]))
}

/// A running rate source.
#[derive(Debug)]
pub struct RateSource {
    name: String,
    config: RateConfig,
    checkpoint: Location,
    /// The start chosen by this run's first plan, when neither the settings nor an offset
    /// gave one.
    start_ms: Option<i64>,
    /// The time `available-now` or `once` froze the input at.
    frozen_ms: Option<i64>,
}

impl RateSource {
    /// A rate source named `name` (`checkpoint` only names the checkpoint in errors).
    pub fn new(name: &str, config: RateConfig, checkpoint: &Location) -> Self {
        Self {
            name: name.to_string(),
            start_ms: config.start_ms,
            config,
            checkpoint: checkpoint.clone(),
            frozen_ms: None,
        }
    }

    /// An offset's generator and rows; `None` for no offset (`null` or absent).
    fn parse(&self, offset: Option<&serde_json::Value>) -> Result<Option<RateOffset>, SourceError> {
        let Some(offset) = offset.filter(|o| !o.is_null()) else {
            return Ok(None);
        };
        let number = |key: &str| offset.get(key).and_then(serde_json::Value::as_u64);
        match (
            offset.get("start_ms").and_then(serde_json::Value::as_i64),
            number("rows_per_second"),
            number("rows"),
        ) {
            (Some(start_ms), Some(rows_per_second), Some(rows)) if rows_per_second > 0 => {
                Ok(Some(RateOffset {
                    start_ms,
                    rows_per_second,
                    rows,
                }))
            }
            _ => Err(CheckpointError::Corrupt {
                file: format!("offsets entry of source `{}`", self.name),
                line: 1,
                reason: format!(
                    "the rate offset {offset} has no numeric `start_ms`, `rows_per_second` \
                     and `rows`"
                ),
            }
            .into()),
        }
    }

    /// Refuses settings that differ from the generator the offsets were made with.
    fn check_unchanged(&self, offset: &RateOffset) -> Result<(), SourceError> {
        let changed = |key: &str, was: String| SourceError::Config {
            source_name: self.name.clone(),
            reason: format!(
                "`{key}` changed since the last batch (its rows were generated with {was}); a \
                 rate source's `start_time` and `rows_per_second` cannot change once batches \
                 ran: put them back, or use {}",
                super::NEW_START
            ),
        };
        if offset.rows_per_second != self.config.rows_per_second {
            return Err(changed(
                "rows_per_second",
                offset.rows_per_second.to_string(),
            ));
        }
        if let Some(start_ms) = self.config.start_ms
            && start_ms != offset.start_ms
        {
            return Err(changed(
                "start_time",
                chrono::DateTime::from_timestamp_millis(offset.start_ms)
                    .map_or_else(|| offset.start_ms.to_string(), |t| t.to_rfc3339()),
            ));
        }
        Ok(())
    }
}

/// A rate source's offset: its generator, and the rows generated so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RateOffset {
    start_ms: i64,
    rows_per_second: u64,
    rows: u64,
}

#[async_trait]
impl Source for RateSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> Option<SchemaRef> {
        Some(schema())
    }

    async fn resolve_schema(&mut self) -> Result<Option<SchemaRef>, SourceError> {
        Ok(Some(schema()))
    }

    async fn freeze(&mut self) -> Result<(), SourceError> {
        self.frozen_ms = Some(chrono::Utc::now().timestamp_millis());
        Ok(())
    }

    async fn plan(
        &mut self,
        _batch: BatchId,
        start: Option<&serde_json::Value>,
        admission: Admission,
    ) -> Result<Option<serde_json::Value>, SourceError> {
        let now_ms = self
            .frozen_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let (start_ms, before) = match self.parse(start)? {
            Some(offset) => {
                self.check_unchanged(&offset)?;
                (offset.start_ms, offset.rows)
            }
            None if self.start_ms.is_none() && self.frozen_ms.is_some() => {
                return Err(SourceError::Config {
                    source_name: self.name.clone(),
                    reason: "a rate source without `start_time` starts when its first batch is \
                             planned, so under `available-now` or `once` no row is ever due; \
                             set `start_time`, or run with `--trigger \"every 1s\"`"
                        .into(),
                });
            }
            None => (*self.start_ms.get_or_insert(now_ms), 0),
        };
        let mut end = self.config.due(start_ms, now_ms);
        if admission == Admission::SourceLimits
            && let Some(limit) = self.config.max_rows_per_batch
        {
            end = end.min(before.saturating_add(limit));
        }
        if end <= before {
            return Ok(None);
        }
        Ok(Some(json!({
            "start_ms": start_ms,
            "rows_per_second": self.config.rows_per_second,
            "rows": end,
        })))
    }

    async fn read(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
    ) -> Result<BatchInput, SourceError> {
        let full = schema();
        let indices = super::column_indices(&self.name, "a rate source", &full, columns)?;
        let projected = Arc::new(full.project(&indices).map_err(|e| SourceError::Read {
            file: self.name.clone(),
            reason: e.to_string(),
        })?);
        let end = self.parse(Some(end))?;
        let (first, last) = match (self.parse(start)?, end) {
            (None, None) => (0, 0),
            (Some(from), None) => {
                return Err(CheckpointError::Inconsistent {
                    location: self.checkpoint.to_string(),
                    reason: format!(
                        "source `{}` goes back from {from:?} to no offset",
                        self.name
                    ),
                }
                .into());
            }
            (None, Some(to)) => (0, to.rows),
            (Some(from), Some(to)) => {
                if (from.start_ms, from.rows_per_second) != (to.start_ms, to.rows_per_second)
                    || from.rows > to.rows
                {
                    return Err(CheckpointError::Inconsistent {
                        location: self.checkpoint.to_string(),
                        reason: format!(
                            "source `{}` goes from {from:?} to {to:?}, which is not a later \
                             offset of the same generator",
                            self.name
                        ),
                    }
                    .into());
                }
                (from.rows, to.rows)
            }
        };
        let start_us = end.map_or(0, |to| to.start_ms.saturating_mul(1000));
        let rate = i128::from(end.map_or(1, |to| to.rows_per_second));
        let mut batches = Vec::new();
        let mut at = first;
        while at < last {
            let upto = last.min(at.saturating_add(ROWS_PER_RECORD_BATCH));
            let values: Vec<i64> = (at..upto)
                .map(|i| i64::try_from(i).unwrap_or(i64::MAX))
                .collect();
            let times: Vec<i64> = values
                .iter()
                .map(|&i| {
                    let offset = i128::from(i) * 1_000_000 / rate;
                    start_us.saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
                })
                .collect();
            let all: [ArrayRef; 2] = [
                Arc::new(TimestampMicrosecondArray::from(times)),
                Arc::new(Int64Array::from(values)),
            ];
            let arrays: Vec<ArrayRef> = indices.iter().map(|&i| Arc::clone(&all[i])).collect();
            let options = RecordBatchOptions::new().with_row_count(Some((upto - at) as usize));
            let batch = RecordBatch::try_new_with_options(Arc::clone(&projected), arrays, &options)
                .map_err(|e| SourceError::Read {
                    file: self.name.clone(),
                    reason: e.to_string(),
                })?;
            batches.push(batch);
            at = upto;
        }
        Ok(BatchInput {
            schema: projected,
            partitions: vec![batches],
            rows: last - first,
            skipped: 0,
            lost: 0,
            unknown_rows: 0,
            unknown_fields: Default::default(),
            files: 0,
            part_names: Vec::new(),
        })
    }

    async fn commit(&mut self, _batch: BatchId, _oldest_kept: BatchId) -> Result<(), SourceError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> RateConfig {
        let settings: serde_yaml::Mapping = serde_yaml::from_str(text).expect("yaml");
        let mut config: RateConfig = parse_settings(&settings).expect("settings");
        if let Some(t) = &config.start_time {
            config.start_ms = Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .expect("time")
                    .timestamp_millis(),
            );
        }
        config
    }

    #[test]
    fn rows_are_due_at_the_rate_and_within_max_rows() {
        let c = config("rows_per_second: 3\nmax_rows: 10");
        assert_eq!(c.due(1_000, 1_000), 0);
        assert_eq!(c.due(1_000, 1_999), 2);
        assert_eq!(c.due(1_000, 2_000), 3);
        assert_eq!(c.due(1_000, 900), 0);
        assert_eq!(c.due(1_000, 100_000), 10);
    }

    #[tokio::test]
    async fn a_range_is_the_same_rows_with_timestamps_from_the_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ckpt =
            Location::open(&dir.path().display().to_string(), true, false, None).expect("location");
        let c = config(
            "rows_per_second: 4\nstart_time: 2026-01-01T00:00:00Z\nmax_rows_per_batch: 3\nmax_rows: 5",
        );
        let mut source = RateSource::new("r", c, &ckpt);
        source.freeze().await.expect("freeze");
        let first = source
            .plan(BatchId(0), None, Admission::SourceLimits)
            .await
            .expect("plan")
            .expect("rows are due");
        assert_eq!(first["rows"], 3);
        let second = source
            .plan(BatchId(1), Some(&first), Admission::SourceLimits)
            .await
            .expect("plan")
            .expect("two more");
        assert_eq!(second["rows"], 5);
        assert!(
            source
                .plan(BatchId(2), Some(&second), Admission::SourceLimits)
                .await
                .expect("plan")
                .is_none(),
            "max_rows reached"
        );
        let input = source
            .read(
                Some(&first),
                &second,
                Some(&["value".into(), "timestamp".into()]),
            )
            .await
            .expect("read");
        let batch = &input.partitions[0][0];
        let values = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("value");
        assert_eq!(values.values(), &[3, 4]);
        let times = batch
            .column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("timestamp");
        let start_us = 1_767_225_600_000_000_i64;
        assert_eq!(times.values(), &[start_us + 750_000, start_us + 1_000_000]);
    }

    #[tokio::test]
    async fn a_changed_generator_is_refused_and_available_now_needs_a_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ckpt =
            Location::open(&dir.path().display().to_string(), true, false, None).expect("location");
        let open = |text: &str| RateSource::new("r", config(text), &ckpt);
        let mut source = open("rows_per_second: 4\nstart_time: 2026-01-01T00:00:00Z");
        let first = source
            .plan(BatchId(0), None, Admission::SourceLimits)
            .await
            .expect("plan")
            .expect("rows are due");
        assert_eq!(first["rows_per_second"], 4);
        for (text, key) in [
            (
                "rows_per_second: 5\nstart_time: 2026-01-01T00:00:00Z",
                "rows_per_second",
            ),
            (
                "rows_per_second: 4\nstart_time: 2026-01-02T00:00:00Z",
                "start_time",
            ),
        ] {
            let err = open(text)
                .plan(BatchId(1), Some(&first), Admission::SourceLimits)
                .await
                .expect_err("a changed generator")
                .to_string();
            assert!(err.contains(&format!("`{key}` changed")), "{err}");
        }
        let mut unstarted = open("rows_per_second: 4");
        unstarted.freeze().await.expect("freeze");
        let err = unstarted
            .plan(BatchId(0), None, Admission::SourceLimits)
            .await
            .expect_err("no row is ever due")
            .to_string();
        assert!(err.contains("set `start_time`"), "{err}");
    }
}
