//! A state time-to-live (`state_ttl`) for an aggregation's or deduplication's keys: each key is
//! stamped with the clock of the last batch that saw it, and dropped once the clock is `after`
//! past its stamp (Flink's state TTL, updated on write).
//!
//! ```text
//!   state/<operator>-ttl/<N>.{snapshot,delta,removed}.parquet   the group keys, and `_sluice_seen`
//! ```
//!
//! Invariants:
//! - on event time, a batch drops by its watermark and stamps what it sees with the watermark
//!   as its rows move it (the next batch's); on processing time, both are its logged
//!   timestamp; so a re-run of a batch stamps and drops the same keys;
//! - a key seen while there is no watermark yet is stamped with the first one a batch has;
//! - the stamps are versioned with the aggregation's state (version `N` after batch `N`,
//!   written before `commits/N`), so both load from the same batch;
//! - a key dropped by a batch and seen again by it starts afresh: the batch writes it as
//!   changed, not as removed.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, TimestampNanosecondArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::HashSet;

use super::keyed::{Key, not_among};
use super::{BatchTime, KeyedState, StateError, StateFiles};
use crate::checkpoint::BatchId;
use crate::pipeline::{StateTtl, TtlTime};
use crate::storage::Location;

/// The store of the key stamps of the query's aggregation, under `state/` (those of a
/// deduplication below it are in `dedup-ttl`).
pub const TTL_OPERATOR: &str = "aggregate-ttl";

/// The stamp column: the clock (nanoseconds since the epoch) of the last batch that saw the
/// key; null while the event-time clock had no value. (Named so as not to clash with a key.)
const SEEN: &str = "_sluice_seen";

/// What a batch did to the stamps, to be written as their version.
#[derive(Debug)]
struct Pending {
    batch: BatchId,
    upserted: RecordBatch,
    removed: RecordBatch,
    /// Written as a snapshot: the stamps were made afresh from the aggregation's state.
    whole: bool,
}

/// The stamps of one aggregation's keys.
#[derive(Debug)]
pub struct KeyStamps {
    after_ns: i64,
    time: TtlTime,
    files: StateFiles,
    stamps: Option<KeyedState>,
    /// Keys stamped while the clock had no value.
    untimed: HashSet<Key>,
    /// Rows stamped by this batch before its keys were seen (the first clock value).
    first_stamped: Option<RecordBatch>,
    /// Every group's stamp, made from the aggregation's state where the stamps lacked its
    /// version: the next version is written whole.
    initial: Option<RecordBatch>,
    pending: Option<Pending>,
}

impl KeyStamps {
    /// The stamps for `ttl` of the keys of `operator`, kept in the checkpoint at `checkpoint`
    /// (under `state/<operator>-ttl/`).
    pub fn new(ttl: StateTtl, checkpoint: Location, operator: &str) -> Self {
        Self {
            after_ns: i64::try_from(ttl.after.as_nanos()).unwrap_or(i64::MAX),
            time: ttl.time,
            files: StateFiles::new(checkpoint, &format!("{operator}-ttl")),
            stamps: None,
            untimed: HashSet::new(),
            first_stamped: None,
            initial: None,
            pending: None,
        }
    }

    fn compute(e: impl std::fmt::Display) -> StateError {
        StateError::Compute {
            operator: "state_ttl".into(),
            reason: e.to_string(),
        }
    }

    /// Loads stamp version `version` (none: empty) for the aggregation whose state (version
    /// `version` too) is `state`. Where the stamps lack that version (`state_ttl` added to a
    /// checkpoint with state, or added back), every group is stamped as one seen before the
    /// clock had a value, and the next version is written whole.
    pub async fn load(
        &mut self,
        version: Option<BatchId>,
        state: &KeyedState,
    ) -> Result<(), StateError> {
        let key_columns = state.key_columns();
        let after_ns = self.after_ns;
        let empty = || {
            KeyedState::new(
                stamps_schema(&state.schema().fields()[..key_columns]),
                key_columns,
                Some((key_columns, after_ns)),
            )
            .map_err(Self::compute)
        };
        let mut stamps = empty()?;
        self.initial = None;
        if let Some(version) = version {
            match self.files.load(version, &mut stamps).await {
                Ok(_) => {}
                Err(StateError::Missing { .. }) => {
                    tracing::warn!(
                        "state/{} lacks version {version} (state_ttl was not set \
                         when it was written): every group kept is stamped with the first \
                         clock from now on",
                        self.files.operator()
                    );
                    stamps = empty()?;
                    let rows = state
                        .all()
                        .and_then(|all| state.key_batch(&all))
                        .and_then(|keys| with_seen(&keys, None))
                        .map_err(Self::compute)?;
                    stamps.upsert(rows.clone()).map_err(Self::compute)?;
                    self.initial = Some(rows);
                }
                Err(e) => return Err(e),
            }
        }
        let all = stamps.all().map_err(Self::compute)?;
        let seen = all.column(key_columns);
        self.untimed = stamps
            .keys(&all)
            .map_err(Self::compute)?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| seen.is_null(*i))
            .map(|(_, key)| key)
            .collect();
        self.stamps = Some(stamps);
        self.first_stamped = None;
        Ok(())
    }

    /// The clock a batch at `time` drops groups by (nanoseconds): its watermark, or its
    /// timestamp; `None` on event time before the first watermark.
    pub fn clock(&self, time: &BatchTime) -> Option<i64> {
        match self.time {
            TtlTime::Event => time.watermark_ns,
            TtlTime::Processing => Some(time.timestamp_ms.saturating_mul(1_000_000)),
        }
    }

    /// The clock a batch at `time` stamps the groups it sees with (nanoseconds): the
    /// watermark as its rows move it (the event time they reach, less the delay), or its
    /// timestamp; `None` on event time while there is no watermark.
    pub fn stamp_clock(&self, time: &BatchTime) -> Option<i64> {
        match self.time {
            TtlTime::Event => time.next_watermark_ns,
            TtlTime::Processing => Some(time.timestamp_ms.saturating_mul(1_000_000)),
        }
    }

    /// Starts a batch at `clock`: stamps the keys seen before the clock had a value with it,
    /// and removes the keys whose stamp it is `after` past. Returns those keys, and their key
    /// columns.
    pub fn expire(&mut self, clock: Option<i64>) -> Result<(Vec<Key>, RecordBatch), StateError> {
        let stamps = self.stamps.as_mut().expect("loaded");
        self.first_stamped = None;
        if let Some(now) = clock
            && !self.untimed.is_empty()
        {
            let rows = stamps
                .rows(self.untimed.iter().map(|k| &k[..]))
                .and_then(|rows| stamps.key_batch(&rows))
                .and_then(|keys| with_seen(&keys, Some(now)))
                .map_err(Self::compute)?;
            stamps.upsert(rows.clone()).map_err(Self::compute)?;
            self.untimed.clear();
            self.first_stamped = Some(rows);
        }
        let Some(now) = clock else {
            let keys = stamps.key_batch(&RecordBatch::new_empty(Arc::clone(stamps.schema())));
            return Ok((Vec::new(), keys.map_err(Self::compute)?));
        };
        let expired = stamps.expired(now);
        let rows = stamps
            .rows(expired.iter().map(|k| &k[..]))
            .and_then(|rows| stamps.key_batch(&rows))
            .map_err(Self::compute)?;
        stamps.remove(&expired);
        Ok((expired, rows))
    }

    /// Ends batch `batch` at `clock`: stamps the keys it saw (`seen`, rows whose first columns
    /// are the keys) and records what to write: the stamps it set, and the keys it dropped
    /// (`expired`, with their key columns `expired_rows`) that it did not see again.
    pub fn stamp(
        &mut self,
        batch: BatchId,
        seen: &RecordBatch,
        clock: Option<i64>,
        expired: &[Key],
        expired_rows: &RecordBatch,
    ) -> Result<(), StateError> {
        let stamps = self.stamps.as_mut().expect("loaded");
        let keys = stamps.key_batch(seen).map_err(Self::compute)?;
        let stamped = with_seen(&keys, clock).map_err(Self::compute)?;
        let seen_keys = stamps.keys(&stamped).map_err(Self::compute)?;
        if clock.is_none() {
            self.untimed.extend(seen_keys.iter().cloned());
        }
        stamps.upsert(stamped.clone()).map_err(Self::compute)?;
        let again: HashSet<&[u8]> = seen_keys.iter().map(|k| &k[..]).collect();
        let not_again = |rows: &RecordBatch, keys: &[Key]| {
            datafusion::arrow::compute::filter_record_batch(rows, &not_among(keys, &again))
        };
        let mut upserted = vec![stamped.clone()];
        if let Some(first) = self.first_stamped.take() {
            let first_keys = stamps.keys(&first).map_err(Self::compute)?;
            upserted.insert(0, not_again(&first, &first_keys).map_err(Self::compute)?);
        }
        let upserted = concat_batches(stamps.schema(), upserted.iter()).map_err(Self::compute)?;
        let removed = not_again(expired_rows, expired).map_err(Self::compute)?;
        self.pending = Some(Pending {
            batch,
            upserted,
            removed,
            whole: self.initial.take().is_some(),
        });
        Ok(())
    }

    /// Writes the stamps batch `batch` set as their version `batch`; returns the bytes written.
    pub async fn commit(&mut self, batch: BatchId, snapshot_every: u64) -> Result<u64, StateError> {
        let pending = self
            .pending
            .take()
            .filter(|p| p.batch == batch)
            .ok_or_else(|| Self::compute(format!("batch {batch} has no key stamps to write")))?;
        let stamps = self.stamps.as_ref().expect("ran");
        self.files
            .write_version(
                batch,
                stamps,
                &pending.upserted,
                &pending.removed,
                if pending.whole { 1 } else { snapshot_every },
            )
            .await
    }

    /// Deletes stamp versions that no batch from `oldest_kept` on needs.
    pub async fn purge(&self, oldest_kept: BatchId) -> Result<(), StateError> {
        self.files.purge(oldest_kept).await
    }
}

/// The stamps' schema: the key columns `keys`, then the stamp column.
fn stamps_schema(keys: &[FieldRef]) -> SchemaRef {
    let mut fields: Vec<Field> = keys.iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(
        SEEN,
        DataType::Timestamp(TimeUnit::Nanosecond, None),
        true,
    ));
    Arc::new(Schema::new(fields))
}

/// The key columns `keys` with the stamp column set to `clock` on every row.
fn with_seen(keys: &RecordBatch, clock: Option<i64>) -> Result<RecordBatch, ArrowError> {
    let mut columns = keys.columns().to_vec();
    columns
        .push(Arc::new(TimestampNanosecondArray::from(vec![clock; keys.num_rows()])) as ArrayRef);
    RecordBatch::try_new(stamps_schema(keys.schema().fields()), columns)
}
