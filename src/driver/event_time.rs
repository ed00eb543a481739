//! Event time at the sources: the latest event time a batch saw, and the rows that arrived
//! later than the watermark allows.

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::source::BatchInput;
use crate::state::timestamp_ns;

/// What a batch's rows say about event time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTimeSeen {
    /// The latest event time among the rows, in milliseconds.
    pub max_ms: Option<i64>,
    /// Rows dropped because their event time is below the watermark.
    pub late: u64,
    /// Those rows.
    pub late_rows: Vec<RecordBatch>,
}

/// Drops the rows of `input` whose `column` is below `watermark_ms` (rows without an event
/// time stay) and reports the latest event time seen.
pub fn drop_late(
    input: &mut BatchInput,
    column: &str,
    watermark_ms: Option<i64>,
) -> Result<EventTimeSeen, ArrowError> {
    let index = input.schema.index_of(column)?;
    let watermark_ns = watermark_ms.map(|w| w.saturating_mul(1_000_000));
    let mut seen = EventTimeSeen::default();
    for batch in input.partitions.iter_mut().flatten() {
        let ns = timestamp_ns(batch.column(index)).map_err(|e| {
            ArrowError::ComputeError(format!("the watermark column `{column}`: {e}"))
        })?;
        let max_ns = (0..ns.len())
            .filter(|i| !ns.is_null(*i))
            .map(|i| ns.value(i))
            .max();
        if let Some(max_ns) = max_ns {
            let max_ms = max_ns.div_euclid(1_000_000);
            seen.max_ms = seen.max_ms.max(Some(max_ms));
        }
        let Some(watermark_ns) = watermark_ns else {
            continue;
        };
        let keep: BooleanArray = (0..ns.len())
            .map(|i| Some(ns.is_null(i) || ns.value(i) >= watermark_ns))
            .collect();
        let dropped = keep.false_count();
        if dropped > 0 {
            seen.late += dropped as u64;
            seen.late_rows
                .push(filter_record_batch(batch, &not(&keep)?)?);
            *batch = filter_record_batch(batch, &keep)?;
        }
    }
    Ok(seen)
}
