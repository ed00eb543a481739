//! Event time at the sources: the latest event time a batch saw, and the rows that arrived
//! too late for the query's state (docs/design.md §5.5).
//!
//! Which rows are late follows Spark's rules, decided by the stateful operator's event-time
//! key, not by the row's time alone:
//! - a group over event time is closed once its end is at or below the watermark (a window
//!   ends at `start + size`; a key that is the event time itself ends at that time, so a row
//!   whose time equals the watermark is late);
//! - a row is late when every group it would count in is closed; a row of a hopping window
//!   still counts in those of its windows that are open (the aggregation drops it from the
//!   closed ones);
//! - a row without an event time is in no window, so it is late too (Spark's `window()`
//!   drops it), and never kept in state;
//! - complete mode keeps every group, so the watermark makes no row late there; an
//!   aggregation whose key is not over this stream's event time drops nothing either;
//! - beyond Spark: a row further ahead of its batch's timestamp than the source's
//!   `max_future` does not move the watermark, so one producer with a wrong clock cannot make
//!   every row after it late; where the state is over this event time, it is quarantined
//!   with the late rows (it would open a group no watermark closes soon).

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::pipeline::OutputMode;
use crate::plan::{AggregateShape, EventTimeWindow, Shape};
use crate::source::BatchInput;
use crate::state::timestamp_ns;

/// Which rows of one stream the query's stateful operator takes as late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lateness {
    /// None: the operator keeps every group, or its state is not over this stream's event
    /// time.
    Never,
    /// Rows without an event time (windows in complete mode: such a row is in none).
    Untimed,
    /// Rows without an event time, and rows the last group of which, in any of these
    /// windows (one per stateful operator that keys on this event time), ends at or below the
    /// watermark.
    Closed(Vec<EventTimeWindow>),
}

impl Lateness {
    /// The rule for `stream`'s rows under a query of `shape` in `mode`.
    pub fn of(shape: &Shape, mode: OutputMode, stream: &str) -> Self {
        match shape {
            Shape::Stateless => Self::Never,
            // Each side's rows are matched while the watermark is below their event time;
            // on equal windows that bound the join, while it is below their window's end, as
            // in Spark, where the window column is the watermark's (audit 92a: a row older than
            // the watermark whose window was open, and whose match was still kept, was dropped
            // as late). Where a tighter bound beside the windows lets the match go first (`AND
            // l.ts = r.ts`), the row's own time decides (the review).
            Shape::Join(join) => Self::Closed(vec![match join.windows {
                Some((size_ns, origin_ns))
                    if join.left_reach_ns.is_some_and(|r| r >= size_ns)
                        && join.right_reach_ns.is_some_and(|r| r >= size_ns) =>
                {
                    EventTimeWindow::tumbling(stream, size_ns, origin_ns)
                }
                _ => EventTimeWindow::column(stream),
            }]),
            Shape::Aggregate(aggregate) => {
                let own = Self::of_aggregate(aggregate, mode, stream);
                match &aggregate.dedup {
                    // A row late for the deduplication below never reaches the aggregation;
                    // it emits each row once, as in append mode, whatever the query's mode.
                    Some(dedup) => own.or(Self::of_aggregate(dedup, OutputMode::Append, stream)),
                    None => own,
                }
            }
        }
    }

    fn of_aggregate(aggregate: &AggregateShape, mode: OutputMode, stream: &str) -> Self {
        match &aggregate.event_time {
            // The shape names a stream by its name in SQL.
            Some(key) if key.window.streams.contains(&crate::plan::sql_name(stream)) => {
                match mode {
                    OutputMode::Complete if key.window.is_column() => Self::Never,
                    OutputMode::Complete => Self::Untimed,
                    OutputMode::Append | OutputMode::Update => {
                        Self::Closed(vec![key.window.clone()])
                    }
                }
            }
            _ => Self::Never,
        }
    }

    /// The rows late for either rule (two operators, one feeding the other).
    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::Never, rule) | (rule, Self::Never) => rule,
            (Self::Untimed, Self::Untimed) => Self::Untimed,
            (Self::Untimed, Self::Closed(windows)) | (Self::Closed(windows), Self::Untimed) => {
                Self::Closed(windows)
            }
            (Self::Closed(mut windows), Self::Closed(more)) => {
                windows.extend(more);
                Self::Closed(windows)
            }
        }
    }

    /// Whether a row at event time `ts_ns` (`None`: null) is late at `watermark_ns`.
    fn is_late(&self, ts_ns: Option<i64>, watermark_ns: Option<i64>) -> bool {
        match (self, ts_ns) {
            (Self::Never, _) => false,
            (Self::Untimed | Self::Closed(_), None) => true,
            (Self::Untimed, Some(_)) => false,
            (Self::Closed(windows), Some(ts)) => watermark_ns
                .is_some_and(|wm| windows.iter().any(|window| window.last_end_ns(ts) <= wm)),
        }
    }
}

/// Keeps the rows of `input` for which `condition` (over its columns, unqualified) is true:
/// the query's conditions that Spark tests before a stream's watermark
/// (`plan::pre_watermark_filters`), so that a row the query removes anyway is neither late
/// nor counted in the watermark. A null is not true, as in a `WHERE`. Returns the rows kept.
///
/// Errors: DataFusion's, where the condition does not plan over the input or fails on a row;
/// `input` is then left whole.
pub fn keep_where(
    input: &mut BatchInput,
    condition: &datafusion::logical_expr::Expr,
) -> Result<u64, datafusion::error::DataFusionError> {
    let schema = datafusion::common::DFSchema::try_from(input.schema.as_ref().clone())?;
    let props = datafusion::execution::context::ExecutionProps::new();
    let planning =
        datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default();
    let condition =
        datafusion::physical_expr::create_physical_expr(condition, &schema, &props, &planning)?;
    let mut kept = Vec::with_capacity(input.partitions.len());
    for partition in &input.partitions {
        let mut rows = Vec::with_capacity(partition.len());
        for batch in partition {
            rows.push(kept_rows(batch, condition.as_ref())?);
        }
        kept.push(rows);
    }
    input.partitions = kept;
    Ok(input
        .partitions
        .iter()
        .flatten()
        .map(|b| b.num_rows() as u64)
        .sum())
}

/// The rows of `batch` for which `condition` is true.
fn kept_rows(
    batch: &RecordBatch,
    condition: &dyn datafusion::physical_expr::PhysicalExpr,
) -> Result<RecordBatch, datafusion::error::DataFusionError> {
    use datafusion::arrow::compute::prep_null_mask_filter;
    let keep = condition.evaluate(batch)?.into_array(batch.num_rows())?;
    let Some(keep) = keep.as_any().downcast_ref::<BooleanArray>() else {
        return datafusion::common::internal_err!(
            "a condition before the watermark gives {}",
            keep.data_type()
        );
    };
    let keep = match keep.null_count() {
        0 => keep.clone(),
        _ => prep_null_mask_filter(keep),
    };
    Ok(match keep.false_count() {
        0 => batch.clone(),
        _ => filter_record_batch(batch, &keep)?,
    })
}

/// What a batch's rows say about event time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTimeSeen {
    /// The latest event time among the rows, in milliseconds.
    pub max_ms: Option<i64>,
    /// Rows dropped as late.
    pub late: u64,
    /// Of those, rows whose event time was past `max_future` (a clock gone wrong), told
    /// apart from rows behind the watermark.
    pub beyond_max_future: u64,
    /// Those rows.
    pub late_rows: Vec<RecordBatch>,
}

/// Drops the rows of `input` that `lateness` takes as late at `watermark_ms`, judged by their
/// event time in `column`, and the rows whose event time is after `future_limit_ns` (a clock
/// gone wrong: quarantined with the late rows), and reports the latest event time seen among
/// the rest (rows late by the watermark included).
pub fn drop_late(
    input: &mut BatchInput,
    column: &str,
    lateness: &Lateness,
    watermark_ms: Option<i64>,
    future_limit_ns: Option<i64>,
) -> Result<EventTimeSeen, ArrowError> {
    let index = input.schema.index_of(column)?;
    let watermark_ns = watermark_ms.map(|w| w.saturating_mul(1_000_000));
    let mut seen = EventTimeSeen::default();
    for batch in input.partitions.iter_mut().flatten() {
        let ns = timestamp_ns(batch.column(index)).map_err(|e| {
            ArrowError::ComputeError(format!("the watermark column `{column}`: {e}"))
        })?;
        let time = |i: usize| (!ns.is_null(i)).then(|| ns.value(i));
        let in_future = |t: i64| future_limit_ns.is_some_and(|limit| t > limit);
        let present = (0..ns.len()).filter_map(time).filter(|t| !in_future(*t));
        if let Some(max_ns) = present.max() {
            let max_ms = max_ns.div_euclid(1_000_000);
            seen.max_ms = seen.max_ms.max(Some(max_ms));
        }
        // A query whose state is not over this event time drops nothing: a row from the
        // future only stays out of the watermark.
        if *lateness == Lateness::Never {
            continue;
        }
        let keep: BooleanArray = (0..ns.len())
            .map(|i| {
                let future = time(i).is_some_and(in_future);
                Some(!future && !lateness.is_late(time(i), watermark_ns))
            })
            .collect();
        let dropped = keep.false_count();
        if future_limit_ns.is_some() {
            seen.beyond_max_future += (0..ns.len())
                .filter(|i| time(*i).is_some_and(in_future))
                .count() as u64;
        }
        if dropped > 0 {
            seen.late += dropped as u64;
            seen.late_rows
                .push(filter_record_batch(batch, &not(&keep)?)?);
            *batch = filter_record_batch(batch, &keep)?;
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn tumbling(size: i64) -> EventTimeWindow {
        EventTimeWindow {
            size_ns: size,
            slide_ns: size,
            ..EventTimeWindow::column("s")
        }
    }

    #[test]
    fn a_row_at_the_watermark_is_late_for_a_key_that_is_the_event_time() {
        let rule = Lateness::Closed(vec![EventTimeWindow::column("s")]);
        assert!(rule.is_late(Some(S), Some(S)), "a tie is late");
        assert!(!rule.is_late(Some(S + 1), Some(S)));
        assert!(!rule.is_late(Some(0), None), "no watermark yet");
        assert!(rule.is_late(None, None), "no event time");
    }

    #[test]
    fn a_windowed_row_is_late_only_when_its_last_window_has_closed() {
        // 5 s windows, watermark 12 s: 11 s is in [10 s, 15 s), still open.
        let rule = Lateness::Closed(vec![tumbling(5 * S)]);
        assert!(!rule.is_late(Some(11 * S), Some(12 * S)));
        assert!(
            rule.is_late(Some(9 * S), Some(12 * S)),
            "[5 s, 10 s) closed"
        );
        assert!(
            rule.is_late(Some(14 * S), Some(15 * S)),
            "ends at the watermark"
        );
        // Hopping windows 10 s wide, every 5 s: 16 s is last in [15 s, 25 s).
        let hop = Lateness::Closed(vec![EventTimeWindow {
            size_ns: 10 * S,
            slide_ns: 5 * S,
            ..EventTimeWindow::column("s")
        }]);
        assert!(!hop.is_late(Some(16 * S), Some(22 * S)));
        assert!(hop.is_late(Some(16 * S), Some(25 * S)));
        // date_bin's origin shifts the windows: from 2 s, 11 s is in [7 s, 12 s).
        let shifted = Lateness::Closed(vec![EventTimeWindow {
            origin_ns: 2 * S,
            ..tumbling(5 * S)
        }]);
        assert!(shifted.is_late(Some(11 * S), Some(12 * S)));
        assert!(!shifted.is_late(Some(12 * S), Some(12 * S)));
        // Before the epoch, windows still start at multiples of the size.
        assert!(!Lateness::Closed(vec![tumbling(5 * S)]).is_late(Some(-S), Some(-S)));
    }

    #[test]
    fn complete_mode_and_keys_not_in_event_time_drop_nothing_timed() {
        assert!(!Lateness::Never.is_late(None, Some(S)));
        assert!(!Lateness::Untimed.is_late(Some(0), Some(S)));
        assert!(Lateness::Untimed.is_late(None, Some(S)));
    }
}
