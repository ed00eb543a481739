//! What a query needs across batches: nothing (stateless), or one aggregation whose state is
//! kept between batches, with the stateless parts below and above it.
//!
//! Invariants:
//! - a query is accepted only where every batch's output, put together, is what the output
//!   mode promises; every other shape is refused here, before any batch runs, naming the
//!   operator and what would work;
//! - an event-time key (a group key that is a watermarked column, or `date_bin` of one) is
//!   recognized only where the column comes unchanged from a stream's watermark column.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::Column;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan, Operator};

use super::{
    PlanError, check_not_volatile, check_stateless_above, keeps_static_rows, reads_stream,
};
use crate::pipeline::OutputMode;

/// What the query keeps between batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Each batch's output depends on its input only.
    Stateless,
    /// One aggregation over the stream, kept as DataFusion's partial state.
    Aggregate(AggregateShape),
    /// An inner join of two streams bounded in event time; each side's rows are kept until
    /// the watermark passes the last time a row of the other side could match them.
    Join(JoinShape),
}

/// The join of two streams of a stateful query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinShape {
    /// An outer join's kind (`LEFT`, `RIGHT`, `FULL`); `None` for an inner join.
    pub outer: Option<&'static str>,
    /// The streams each side reads (left, right), whose late rows are that side's.
    pub side_streams: [Vec<String>; 2],
    /// The left side's event-time column, as the join's left input names it.
    pub left_time: String,
    /// The right side's event-time column, as the join's right input names it.
    pub right_time: String,
    /// How much later than a left row's event time a matching right row's may be (ns);
    /// `None`: unbounded, so left rows are kept for ever (Spark keeps them too).
    pub left_reach_ns: Option<i64>,
    /// How much later than a right row's event time a matching left row's may be (ns);
    /// `None`: unbounded, so right rows are kept for ever.
    pub right_reach_ns: Option<i64>,
    /// Equal tumbling windows of both times (size and origin, ns), where the condition has
    /// them: a row of either side can match only rows of its own window, so it is kept at
    /// most until the watermark passes that window's end.
    pub windows: Option<(i64, i64)>,
    /// Its condition holds an interval of months or years, which bounds nothing (a month has
    /// no fixed length): said where a side is kept for ever.
    pub months: bool,
}

impl JoinShape {
    /// How long the join keeps a row of its left side (the right's where `!left`): "until the
    /// watermark passes its `ts` plus 5s", or "for ever (...)" where its condition sets no
    /// bound, for `explain` and `state`.
    pub fn kept(&self, left: bool) -> String {
        let (reach, time) = match left {
            true => (self.left_reach_ns, &self.left_time),
            false => (self.right_reach_ns, &self.right_time),
        };
        if let (Some((size, _)), Some(ns)) = (self.windows, reach)
            && ns >= size
        {
            return format!(
                "until the watermark passes the end of its `{time}`'s {} window",
                humantime::format_duration(std::time::Duration::from_nanos(
                    size.max(0).unsigned_abs()
                ))
            );
        }
        match reach {
            Some(ns) => format!(
                "until the watermark passes its `{time}` plus {}",
                humantime::format_duration(std::time::Duration::from_nanos(
                    ns.max(0).unsigned_abs()
                ))
            ),
            None => "for ever (the join sets no bound on how much later a row of the other \
                     side may come)"
                .into(),
        }
    }
}

/// The aggregation of a stateful query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShape {
    /// The operator, as a person would name it.
    pub operator: String,
    /// The aggregation's output column names (group keys first), as DataFusion names them.
    pub output_names: Vec<String>,
    /// `SELECT DISTINCT` (or a GROUP BY without aggregate functions): a group, once seen,
    /// never changes.
    pub distinct_only: bool,
    /// The group key that bounds the state in event time, if any.
    pub event_time: Option<EventTimeKey>,
    /// A deduplication below the aggregation (`SELECT DISTINCT`, or a GROUP BY without
    /// aggregate functions, over the stream; or `SELECT DISTINCT ON (keys)`), kept as state of
    /// its own, so that each distinct row, or each key, counts once across batches (Spark's
    /// `dropDuplicates()` or `dropDuplicates(keys)` followed by an aggregation). It emits each
    /// row once, the first time it is seen, whatever the query's output mode; a key's row
    /// first seen stays its row (a later batch's that sorts before it is dropped, as Spark
    /// drops it).
    pub dedup: Option<Box<AggregateShape>>,
    /// Groups by time windows (`date_bin`, `session_window` of a fixed length) that no
    /// watermark closes: every window's group is kept for ever.
    pub unclosed_windows: bool,
}

/// A group key over event time: a group whose end is at or below the watermark can get no
/// more rows (Spark's rule: a window ends at `start + size`; a key that is the event time
/// itself ends at that time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeKey {
    /// The key's output column name.
    pub name: String,
    /// What the key is over the event time.
    pub window: EventTimeWindow,
}

/// The event time of a stream, or the starts of windows over it: `date_bin(size, t, origin)`
/// (tumbling windows from `origin`), `hop(t, slide, size)` unnested (windows every `slide`
/// from the epoch), `t` itself (`size_ns` 0), or `session_window(t, gap)` (`session`, with
/// the gap as `size_ns`: a key that is a struct `{start, end}`, ending at `end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeWindow {
    /// The streams whose watermark columns the windows are over (several under a `UNION ALL`
    /// of streams, whose watermark is the smallest of theirs, as in Spark).
    pub streams: BTreeSet<String>,
    /// The width of a window, in nanoseconds; 0 for the event time itself.
    pub size_ns: i64,
    /// The distance between two windows' starts, in nanoseconds (the size for `date_bin`).
    pub slide_ns: i64,
    /// Where windows start from, in nanoseconds since the epoch (`date_bin`'s origin).
    pub origin_ns: i64,
    /// Session windows: each row opens `[t, t + size_ns)`, and the sessions of a group that
    /// overlap or touch are merged into one, which ends `size_ns` after its last row.
    pub session: bool,
}

impl EventTimeWindow {
    /// The event time of `stream` itself.
    pub fn column(stream: &str) -> Self {
        Self {
            streams: BTreeSet::from([stream.to_string()]),
            size_ns: 0,
            slide_ns: 1,
            origin_ns: 0,
            session: false,
        }
    }

    /// Tumbling windows `size_ns` wide from `origin_ns` over the event time of `stream`.
    pub fn tumbling(stream: &str, size_ns: i64, origin_ns: i64) -> Self {
        Self {
            size_ns,
            slide_ns: size_ns,
            origin_ns,
            ..Self::column(stream)
        }
    }

    /// Whether this is the event time itself, not windows over it.
    pub fn is_column(&self) -> bool {
        self.size_ns == 0
    }

    /// The end of the group whose key is `key_ns` (a window's start, or the event time).
    pub fn group_end_ns(&self, key_ns: i64) -> i64 {
        key_ns.saturating_add(self.size_ns)
    }

    /// The end of the last window that holds event time `ts_ns` (the time itself for a key
    /// that is the event time): a row is late once this is at or below the watermark, since
    /// every group it would count in has closed.
    pub fn last_end_ns(&self, ts_ns: i64) -> i64 {
        if self.is_column() {
            return ts_ns;
        }
        // A row's own session; a merged one that holds it ends no earlier (Spark's rule for
        // a late row of a session window).
        if self.session {
            return ts_ns.saturating_add(self.size_ns);
        }
        let since = ts_ns.saturating_sub(self.origin_ns);
        let start = self.origin_ns.saturating_add(
            since
                .div_euclid(self.slide_ns)
                .saturating_mul(self.slide_ns),
        );
        self.group_end_ns(start)
    }
}

/// DataFusion's functions that take a time format in strftime codes (after the time or text
/// they format or parse).
const TIME_FORMATS: [&str; 8] = [
    "to_char",
    "to_timestamp",
    "to_timestamp_seconds",
    "to_timestamp_millis",
    "to_timestamp_micros",
    "to_timestamp_nanos",
    "to_date",
    "to_unixtime",
];

/// The first strftime code in `format` that writes a time zone (`%Z`, `%z`, `%:z`, `%::z`,
/// `%:::z`, `%#z`), as chrono reads it (`%%` is a literal `%`).
fn zone_code(format: &str) -> Option<String> {
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let code = &rest[at..];
        let flagged = code[1..].trim_start_matches([':', '#']);
        match flagged.chars().next() {
            Some('%') => rest = &code[2..],
            Some('Z' | 'z') => {
                let len = code.len() - flagged.len() + 1;
                return Some(code[..len].to_string());
            }
            _ => rest = &code[1..],
        }
    }
    None
}

/// The units DataFusion 55's `date_trunc` takes (in any case).
const TRUNCATION_UNITS: [&str; 10] = [
    "microsecond",
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
];

/// DataFusion's name of `unit` where it is one of the other names Spark's `date_trunc` and
/// `trunc` take for it (`'MM'`, `'YYYY'`, `'DD'`; Spark's `TruncDate`), in any case.
fn spark_truncation_unit(unit: &str) -> Option<&'static str> {
    Some(match unit.to_uppercase().as_str() {
        "YYYY" | "YY" => "year",
        "MM" | "MON" => "month",
        "DD" => "day",
        _ => return None,
    })
}

/// Analyzes `plan` (as the SQL planner made it, before optimization). `watermarks` maps each
/// stream with a watermark to its event-time column.
pub fn analyze(
    plan: &LogicalPlan,
    streams: &BTreeSet<String>,
    watermarks: &BTreeMap<String, String>,
    mode: OutputMode,
) -> Result<Shape, PlanError> {
    // `hop` with a slide longer than its size, refused before any batch; and a time format
    // in Spark's pattern letters, which DataFusion's strftime codes would copy as text.
    let mut gaps = false;
    let mut spark_pattern = None;
    let mut joins_list_text = None;
    let mut zero_width = None;
    let mut truncated_by = None;
    let mut zone_of_none = None;
    let mut unknown_zone = None;
    plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                // Spark's `concat_ws` joins an array's elements; DataFusion's casts the array
                // to its text form (`[a, b]`), so the output would hold the brackets.
                if let Expr::ScalarFunction(f) = e
                    && joins_list_text.is_none()
                    && f.func.name() == "concat_ws"
                    && let [input] = inputs.as_slice()
                    && f.args.iter().skip(1).any(|arg| {
                        datafusion::logical_expr::ExprSchemable::get_type(arg, input.schema())
                            .is_ok_and(|t| {
                                matches!(
                                    t,
                                    datafusion::arrow::datatypes::DataType::List(_)
                                        | datafusion::arrow::datatypes::DataType::LargeList(_)
                                        | datafusion::arrow::datatypes::DataType::FixedSizeList(..)
                                )
                            })
                    })
                {
                    joins_list_text = Some(e.to_string());
                }
                // Formatting takes its format second; parsing (`to_timestamp(s, f1, f2)`)
                // takes any number after the text.
                if let Expr::ScalarFunction(f) = e
                    && spark_pattern.is_none()
                    && TIME_FORMATS.contains(&f.func.name())
                {
                    let formats = if f.func.name() == "to_char" {
                        f.args.get(1..2)
                    } else {
                        f.args.get(1..)
                    };
                    spark_pattern = formats.unwrap_or_default().iter().find_map(|arg| {
                        let Expr::Literal(
                            datafusion::common::ScalarValue::Utf8(Some(format))
                            | datafusion::common::ScalarValue::LargeUtf8(Some(format))
                            | datafusion::common::ScalarValue::Utf8View(Some(format)),
                            _,
                        ) = strip_alias(arg)
                        else {
                            return None;
                        };
                        // PostgreSQL's templates are `to_char`'s; Spark's letters are
                        // `date_format`'s, DataFusion's other name for it.
                        let (strftime, name, dialect) =
                            match super::functions::strftime_of_postgres(format) {
                                Some(strftime) => {
                                    (strftime, f.func.name(), "PostgreSQL's template patterns")
                                }
                                None => (
                                    super::functions::strftime_of_spark(format)?,
                                    match f.func.name() {
                                        "to_char" => "date_format",
                                        name => name,
                                    },
                                    "Spark's pattern letters",
                                ),
                            };
                        Some((name.to_string(), format.clone(), strftime, dialect))
                    });
                }
                // A zone code (`%Z`, `%z`) formatting a time without a zone fails each
                // batch in Arrow's words ("Cast error: Format error").
                if let Expr::ScalarFunction(f) = e
                    && zone_of_none.is_none()
                    && f.func.name() == "to_char"
                    && let [time, format] = f.args.as_slice()
                    && let Expr::Literal(
                        datafusion::common::ScalarValue::Utf8(Some(text))
                        | datafusion::common::ScalarValue::LargeUtf8(Some(text))
                        | datafusion::common::ScalarValue::Utf8View(Some(text)),
                        _,
                    ) = strip_alias(format)
                    && let Some(code) = zone_code(text)
                    && let [input] = inputs.as_slice()
                    && datafusion::logical_expr::ExprSchemable::get_type(time, input.schema())
                        .is_ok_and(|t| {
                            matches!(
                                t,
                                datafusion::arrow::datatypes::DataType::Timestamp(_, None)
                            )
                        })
                {
                    let time = match strip_alias(time) {
                        Expr::Column(c) => c.name.clone(),
                        other => other.to_string(),
                    };
                    zone_of_none = Some((format!("to_char({time}, '{text}')"), time, code));
                }
                // `ts AT TIME ZONE 'Mars/Olympus'` fails each batch in Arrow's words.
                if let Expr::Cast(cast) = e
                    && unknown_zone.is_none()
                    && let datafusion::arrow::datatypes::DataType::Timestamp(_, Some(zone)) =
                        cast.field.data_type()
                    && zone
                        .parse::<datafusion::arrow::array::timezone::Tz>()
                        .is_err()
                {
                    unknown_zone = Some((
                        format!("{} AT TIME ZONE '{zone}'", cast.expr),
                        zone.to_string(),
                    ));
                }
                if let Expr::ScalarFunction(f) = e
                    && f.func.name() == super::functions::HOP
                    && let [_, slide, size] = f.args.as_slice()
                    && let (Some(slide), Some(size)) = (interval_ns(slide), interval_ns(size))
                {
                    gaps |= slide > size;
                }
                // A unit `date_trunc` does not take (Spark's `'MM'`, a column) fails each
                // batch (walk 108).
                if let Expr::ScalarFunction(f) = e
                    && truncated_by.is_none()
                    && f.func.name() == "date_trunc"
                    && let Some(unit) = f.args.first()
                {
                    let unit = match strip_alias(unit) {
                        Expr::Literal(
                            datafusion::common::ScalarValue::Utf8(Some(unit))
                            | datafusion::common::ScalarValue::LargeUtf8(Some(unit))
                            | datafusion::common::ScalarValue::Utf8View(Some(unit)),
                            _,
                        ) => Some(unit.clone()),
                        _ => None,
                    };
                    // (A unit computed from constants, `lower('MONTH')`, folds to one: let be.)
                    let from_column = !f.args[0].column_refs().is_empty();
                    if match unit.as_deref() {
                        Some(unit) => !TRUNCATION_UNITS.contains(&unit.to_lowercase().as_str()),
                        None => from_column,
                    } {
                        truncated_by = Some((super::expr_sql(e), unit));
                    }
                }
                // A window of no length (`date_bin(INTERVAL '0 seconds', ts)`) fails each batch.
                if let Expr::ScalarFunction(f) = e
                    && zero_width.is_none()
                {
                    let lengths: &[usize] = match f.func.name() {
                        "date_bin" => &[0],
                        name if name == super::functions::HOP => &[1, 2],
                        name if name == super::functions::SESSION_WINDOW => &[1],
                        _ => &[],
                    };
                    // (`interval_ns` takes positive lengths only.)
                    let no_length = |arg: &Expr| match strip_alias(arg) {
                        Expr::Literal(
                            datafusion::common::ScalarValue::IntervalMonthDayNano(Some(v)),
                            _,
                        ) => v.months <= 0 && v.days <= 0 && v.nanoseconds <= 0,
                        Expr::Literal(
                            datafusion::common::ScalarValue::IntervalDayTime(Some(v)),
                            _,
                        ) => v.days <= 0 && v.milliseconds <= 0,
                        Expr::Literal(
                            datafusion::common::ScalarValue::IntervalYearMonth(Some(months)),
                            _,
                        ) => *months <= 0,
                        _ => false,
                    };
                    if lengths
                        .iter()
                        .any(|&i| f.args.get(i).is_some_and(no_length))
                    {
                        zero_width = Some(e.to_string());
                    }
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(PlanError::Sql)?;
    if let Some((function, format, strftime, dialect)) = spark_pattern {
        let would = if matches!(function.as_str(), "date_format" | "to_char") {
            "it would write the letters as they stand"
        } else {
            "no time would match it"
        };
        return Err(PlanError::Function {
            call: format!("{function}(..., '{format}')"),
            reason: format!(
                "reads its format as strftime codes, as DataFusion and DuckDB do, not as \
                 {dialect}, so {would}: write `{function}(..., '{strftime}')`"
            ),
        });
    }
    if let Some((call, time, code)) = zone_of_none {
        return Err(PlanError::Function {
            call,
            reason: format!(
                "writes `{code}`, a time zone, of `{time}`, a timestamp without one, so \
                 every row would fail: give it one (`{time} AT TIME ZONE 'UTC'`, or the \
                 source's `schema:` as `timestamp with time zone`), or leave `{code}` out"
            ),
        });
    }
    if let Some((call, zone)) = unknown_zone {
        return Err(PlanError::Function {
            call,
            reason: format!(
                "names `{zone}`, which is no time zone: write a name of the IANA time zone \
                 database (`'Europe/Paris'`, `'America/New_York'`, `'UTC'`) or an offset \
                 (`'+02:00'`)"
            ),
        });
    }
    if let Some((call, unit)) = truncated_by {
        let units = TRUNCATION_UNITS.map(|u| format!("'{u}'")).join(", ");
        let reason = match unit {
            None => format!(
                "takes its unit from a column, where DataFusion takes one written in the \
                 query: write the unit, one of {units} (a unit a row chooses: a `CASE` over \
                 its values with one `date_trunc` each)"
            ),
            Some(unit) => match spark_truncation_unit(&unit) {
                Some(ours) => format!(
                    "names its unit `'{unit}'` as Spark does; DataFusion names it \
                     `'{ours}'`: write `date_trunc('{ours}', ...)`"
                ),
                None => format!("names a unit `'{unit}'` DataFusion has not: write one of {units}"),
            },
        };
        return Err(PlanError::Function { call, reason });
    }
    if let Some(call) = zero_width {
        return Err(PlanError::Function {
            call,
            reason: "makes windows of no length (or less): a window's interval must be longer \
                     than zero, as `INTERVAL '1 minute'`"
                .into(),
        });
    }
    if let Some(call) = joins_list_text {
        return Err(PlanError::Function {
            call,
            reason: "is given an array, which DataFusion joins as the array's text form \
                     (`[a, b]`), not element by element as Spark does: write \
                     `array_to_string(array, separator)`, which joins the elements and leaves \
                     out nulls"
                .into(),
        });
    }
    if gaps {
        return Err(PlanError::Unsupported {
            operator: "hop(ts, slide, size)".into(),
            reason: "with a slide longer than its size is not supported: windows would leave \
                     gaps where a row is in none (make the slide at most the size)"
                .into(),
        });
    }
    let shape = analyze_shape(plan, streams, watermarks, mode)?;
    let sessions = matches!(&shape, Shape::Aggregate(AggregateShape {
        event_time: Some(key),
        ..
    }) if key.window.session);
    if !sessions && calls(plan, super::functions::SESSION_WINDOW) {
        return Err(PlanError::Unsupported {
            operator: "session_window".into(),
            reason: "makes sessions only as a group key of the query's aggregation over a \
                     source's watermark column, with a constant gap in whole units of that \
                     column, e.g. `GROUP BY user_id, session_window(ts, INTERVAL '5 minutes')`"
                .into(),
        });
    }
    Ok(shape)
}

/// Whether an expression of `plan` calls the function `name`.
fn calls(plan: &LogicalPlan, name: &str) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                found |= matches!(e, Expr::ScalarFunction(f) if f.func.name() == name);
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

fn analyze_shape(
    plan: &LogicalPlan,
    streams: &BTreeSet<String>,
    watermarks: &BTreeMap<String, String>,
    mode: OutputMode,
) -> Result<Shape, PlanError> {
    // Rows that come from no stream would be written again by every batch, so a result would
    // depend on how the input was cut into batches (Spark refuses both as well).
    if !reads_stream(plan, streams) {
        return Err(PlanError::Unsupported {
            operator: "a query that reads no stream".into(),
            reason: "would write the same rows again every batch: it reads only static tables \
                     (`tables:`) or constants. Read a source of `sources:` in it; a query over \
                     static tables alone is a batch query, run once (DuckDB, DataFusion)"
                .into(),
        });
    }
    // A volatile function anywhere: above an aggregation or a join of two streams, or in an
    // aggregate's own arguments, as in a stateless query (audit 87: `sum(v * random())` ran,
    // and a replay of its batch differed; design §6.1's known gap).
    check_not_volatile(plan)?;
    // A subquery over a stream anywhere but a filter (which says its own refusal): the SELECT
    // list, a group key, an aggregate's argument, a join's condition. What it computes moves
    // with every batch, and each batch would compute it over its own rows alone (audit 87:
    // `sum(v) / (SELECT sum(v) FROM s)` divided by the last batch's total, exit 0).
    let mut over_stream = false;
    plan.apply_with_subqueries(|node| {
        if !matches!(node, LogicalPlan::Filter(_))
            && node
                .expressions()
                .iter()
                .any(|e| subquery_over_stream(e, streams))
        {
            over_stream = true;
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .map_err(PlanError::Sql)?;
    if over_stream {
        return Err(PlanError::Unsupported {
            operator: "a subquery over a stream".into(),
            reason: "in the SELECT list, a GROUP BY key, an aggregate's argument or a join's \
                     condition is not supported: what it computes changes as the stream's rows \
                     come, and each batch would compute it over its own rows alone. A subquery \
                     over a static table (`tables:`) is read once and may be used there"
                .into(),
        });
    }
    let mut unions_static = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Union(union) = node
            && union
                .inputs
                .iter()
                .any(|input| !reads_stream(input, streams))
        {
            unions_static = true;
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .map_err(PlanError::Sql)?;
    if unions_static {
        return Err(PlanError::Unsupported {
            operator: "a UNION of a stream with rows that read no stream (a static table, \
                       constants)"
                .into(),
            reason: "would write those rows again every batch; join the stream with the static \
                     table instead, or write the static rows once, apart from the pipeline"
                .into(),
        });
    }
    let mut aggregations = 0;
    plan.apply_with_subqueries(|node| {
        if is_aggregation(node) && reads_stream(node, streams) {
            aggregations += 1;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .map_err(PlanError::Sql)?;
    let ctx = Walk {
        streams,
        watermarks,
        mode,
        under_aggregation: false,
    };
    let stream_joins = count(plan, |node| {
        matches!(node, LogicalPlan::Join(j)
            if reads_stream(&j.left, streams) && reads_stream(&j.right, streams))
    });
    if stream_joins > 0 {
        if aggregations > 0 {
            return Err(PlanError::Unsupported {
                operator: "an aggregation with a join of two streams".into(),
                reason: format!(
                    "is not supported yet; a query keeps state for one of them. {CHAIN}"
                ),
            });
        }
        if count(plan, |node| matches!(node, LogicalPlan::Join(_))) > 1 {
            return Err(PlanError::Unsupported {
                operator: "a join of two streams with other joins".into(),
                reason: format!("is not supported yet. {CHAIN}"),
            });
        }
        return ctx.join(plan).map(Shape::Join);
    }
    if aggregations == 0 {
        check_stateless_above(plan, streams, None)?;
        if mode == OutputMode::Complete {
            return Err(PlanError::Mode {
                mode: mode.as_str(),
                operator: "a query without aggregation".into(),
                reason: "complete mode rewrites the whole result table each batch, and only an \
                         aggregation has one"
                    .into(),
                works: "append, update",
            });
        }
        return Ok(Shape::Stateless);
    }
    ctx.above(plan).map(Shape::Aggregate)
}

fn count(plan: &LogicalPlan, matches: impl Fn(&LogicalPlan) -> bool) -> usize {
    let mut n = 0;
    let _ = plan.apply_with_subqueries(|node| {
        if matches(node) {
            n += 1;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    n
}

/// `column ± interval`, as a column and an offset in nanoseconds.
fn time_term(expr: &Expr) -> Option<(&Column, i64)> {
    match strip_alias(expr) {
        Expr::Column(c) => Some((c, 0)),
        Expr::BinaryExpr(b) => {
            let Expr::Column(c) = strip_alias(&b.left) else {
                return None;
            };
            let offset = interval_ns(&b.right)?;
            match b.op {
                Operator::Plus => Some((c, offset)),
                Operator::Minus => Some((c, -offset)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A time column plus an offset in nanoseconds.
type TimeTerm<'a> = (&'a Column, i64);

/// `low <= high` as `lc + lo <= hc + ho` over two time columns: each a column plus or minus
/// an interval ([`time_term`]), or a difference of two columns against an interval (`b.ts -
/// a.ts <= INTERVAL '30' DAY` is `b.ts <= a.ts + 30 days`).
fn time_bound<'a>(low: &'a Expr, high: &'a Expr) -> Option<(TimeTerm<'a>, TimeTerm<'a>)> {
    if let (Some(l), Some(h)) = (time_term(low), time_term(high)) {
        return Some((l, h));
    }
    // Of the columns themselves: a cast of one (to whole seconds, say) moves its time (a
    // review: the reach would be short by up to the cut).
    let difference = |e: &'a Expr| match strip_casts(e) {
        Expr::BinaryExpr(b) if b.op == Operator::Minus => {
            match (strip_alias(&b.left), strip_alias(&b.right)) {
                (Expr::Column(x), Expr::Column(y)) => Some((x, y)),
                _ => None,
            }
        }
        _ => None,
    };
    let interval = |e: &Expr| interval_ns(strip_casts(e));
    if let (Some((x, y)), Some(i)) = (difference(low), interval(high)) {
        // x - y <= i: x + 0 <= y + i.
        return Some(((x, 0), (y, i)));
    }
    if let (Some(i), Some((x, y))) = (interval(low), difference(high)) {
        // i <= x - y: y + i <= x + 0.
        return Some(((y, i), (x, 0)));
    }
    None
}

/// `expr` without the aliases and casts around it.
fn strip_casts(expr: &Expr) -> &Expr {
    match strip_alias(expr) {
        Expr::Cast(c) => strip_casts(&c.expr),
        Expr::TryCast(c) => strip_casts(&c.expr),
        other => other,
    }
}

/// Whether `expr` holds an interval literal of months or years, which has no length in
/// nanoseconds.
fn has_months(expr: &Expr) -> bool {
    use datafusion::common::ScalarValue;
    expr.exists(|e| {
        Ok(match e {
            Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) => v.months != 0,
            Expr::Literal(ScalarValue::IntervalYearMonth(Some(v)), _) => *v != 0,
            _ => false,
        })
    })
    .unwrap_or(false)
}

/// The `a = b` terms of a conjunction.
fn equalities(expr: &Expr) -> Vec<(&Expr, &Expr)> {
    match strip_alias(expr) {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            let mut out = equalities(&b.left);
            out.extend(equalities(&b.right));
            out
        }
        Expr::BinaryExpr(b) if b.op == Operator::Eq => vec![(&*b.left, &*b.right)],
        _ => Vec::new(),
    }
}

/// `low <= high` (or `<`) as `(low term, high term)`, from a comparison or one half of a
/// BETWEEN.
fn inequalities(expr: &Expr) -> Vec<(&Expr, &Expr)> {
    match strip_alias(expr) {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            let mut out = inequalities(&b.left);
            out.extend(inequalities(&b.right));
            out
        }
        Expr::BinaryExpr(b) => match b.op {
            Operator::LtEq | Operator::Lt => vec![(&*b.left, &*b.right)],
            Operator::GtEq | Operator::Gt => vec![(&*b.right, &*b.left)],
            _ => Vec::new(),
        },
        Expr::Between(b) if !b.negated => vec![(&*b.low, &*b.expr), (&*b.expr, &*b.high)],
        _ => Vec::new(),
    }
}

fn is_aggregation(node: &LogicalPlan) -> bool {
    matches!(node, LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_))
}

struct Walk<'a> {
    streams: &'a BTreeSet<String>,
    watermarks: &'a BTreeMap<String, String>,
    mode: OutputMode,
    /// Walking the deduplication under an aggregation, where `DISTINCT ON (keys)` keeps each
    /// key's first row seen and drops the rest (Spark's `dropDuplicates(keys)`).
    under_aggregation: bool,
}

impl Walk<'_> {
    /// Walks down from the root to the join of two streams: only projections and filters may
    /// lie above it.
    fn join(&self, node: &LogicalPlan) -> Result<JoinShape, PlanError> {
        self.join_below(node, None)
    }

    /// [`Walk::join`], `filter` the predicate of a filter right above `node` (a `WHERE` over
    /// the join): over an inner join it is as much the join's condition as its `ON` (Flink
    /// writes interval joins so: `FROM a, b WHERE a.k = b.k AND b.ts BETWEEN a.ts AND ...`;
    /// walk 62), so its bounds count; over an outer one it is not.
    fn join_below(
        &self,
        node: &LogicalPlan,
        filter: Option<&Expr>,
    ) -> Result<JoinShape, PlanError> {
        let j = match node {
            LogicalPlan::Projection(p) => return self.join(&p.input),
            LogicalPlan::Filter(f) if !has_subquery(&f.predicate) => {
                return self.join_below(&f.input, Some(&f.predicate));
            }
            LogicalPlan::SubqueryAlias(s) => return self.join(&s.input),
            LogicalPlan::Join(j) => j,
            other => {
                return Err(PlanError::Unsupported {
                    operator: operator_name(other),
                    reason: "over a join of two streams is not supported yet; only projections \
                             and filters may follow it"
                        .into(),
                });
            }
        };
        if self.mode == OutputMode::Complete {
            return Err(PlanError::Mode {
                mode: self.mode.as_str(),
                operator: "a join of two streams".into(),
                reason: "a join has no result table to rewrite; each match is emitted once".into(),
                works: "append, update",
            });
        }
        use datafusion::logical_expr::JoinType;
        let outer = match j.join_type {
            JoinType::Inner => None,
            JoinType::Left => Some("LEFT"),
            JoinType::Right => Some("RIGHT"),
            JoinType::Full => Some("FULL"),
            other => {
                return Err(PlanError::Unsupported {
                    operator: format!("a {} join of two streams", other.to_string().to_uppercase()),
                    reason: "is not supported yet; inner joins of two streams are, and outer \
                             ones (LEFT, RIGHT, FULL)"
                        .into(),
                });
            }
        };
        // A row without a match is emitted once no row of the other side can match it any
        // more, so it is final: append mode, as Spark's outer joins of two streams.
        if let Some(outer) = outer
            && self.mode != OutputMode::Append
        {
            return Err(PlanError::Mode {
                mode: self.mode.as_str(),
                operator: format!("a {outer} join of two streams"),
                reason: "a row without a match is emitted once, with nulls, when the watermark \
                         says no row of the other side can match it any more"
                    .into(),
                works: "append",
            });
        }
        check_stateless_above(&j.left, self.streams, None)?;
        check_stateless_above(&j.right, self.streams, None)?;
        // What keeps a bound written from counting (walk 106 (3, 4): a source without a
        // watermark, and an interval of months, were refused with the form already written).
        let why = |conditions: &[&Expr]| {
            let mut why = Vec::new();
            let unmarked: Vec<String> = [&j.left, &j.right]
                .iter()
                .flat_map(|side| super::streams_read(side, self.streams))
                .filter(|s| !self.watermarks.contains_key(s))
                .collect();
            if !unmarked.is_empty() {
                why.push(format!(
                    "a bound counts over the sources' watermark columns, and {} no \
                     `watermark:` (give {} `watermark: {{column: ts, delay: 1m}}`)",
                    unmarked
                        .iter()
                        .map(|s| format!("source `{s}` has"))
                        .collect::<Vec<_>>()
                        .join(" and "),
                    if unmarked.len() == 1 { "it" } else { "each" }
                ));
            }
            if conditions.iter().any(|c| has_months(c)) {
                why.push(
                    "an interval of months or years has no fixed length, so it bounds nothing: \
                     write days (`INTERVAL '30' DAY`)"
                        .to_string(),
                );
            }
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        };
        let unbounded = |conditions: &[&Expr]| PlanError::Unsupported {
            operator: "a join of two streams without an event-time bound".into(),
            reason: format!(
                "would keep every row of both streams forever{}; bound it over the sources' \
                 watermark columns, e.g. `ON a.k = b.k AND a.ts BETWEEN b.ts - INTERVAL '1 \
                 minute' AND b.ts + INTERVAL '1 minute'` (a bound one way keeps one side's rows \
                 for ever), or join on equal windows (`date_bin(INTERVAL '1 minute', a.ts) = \
                 date_bin(INTERVAL '1 minute', b.ts)`)",
                why(conditions)
            ),
        };
        let mut times: Option<(Column, Column)> = None;
        let (mut left_reach, mut right_reach) = (None::<i64>, None::<i64>);
        let mut windows = None;
        // The join's condition beside its keys: its own, and a WHERE right above an inner join.
        let conditions: Vec<&Expr> = j
            .filter
            .iter()
            .chain(filter.filter(|_| j.join_type == JoinType::Inner))
            .collect();
        // Equal tumbling windows: the two times are less than a window apart, either way.
        let filter_equalities = conditions.iter().flat_map(|c| equalities(c));
        for (left_key, right_key) in j.on.iter().map(|(l, r)| (l, r)).chain(filter_equalities) {
            // Either way round: `a = b` or `b = a`.
            let (left, right) = match (
                self.window_over(left_key, &j.left),
                self.window_over(right_key, &j.right),
            ) {
                (Some(l), Some(r)) => (Some(l), Some(r)),
                _ => (
                    self.window_over(right_key, &j.left),
                    self.window_over(left_key, &j.right),
                ),
            };
            let (Some((lc, lw)), Some((rc, rw))) = (left, right) else {
                continue;
            };
            if lw.is_column()
                || lw.slide_ns != lw.size_ns
                || (lw.size_ns, lw.origin_ns) != (rw.size_ns, rw.origin_ns)
            {
                continue;
            }
            match &times {
                Some((l, r)) if *l != lc || *r != rc => continue,
                _ => times = Some((lc, rc)),
            }
            left_reach = Some(left_reach.map_or(lw.size_ns, |b| b.min(lw.size_ns)));
            right_reach = Some(right_reach.map_or(lw.size_ns, |b| b.min(lw.size_ns)));
            windows = Some((lw.size_ns, lw.origin_ns));
        }
        // `a.ts = b.ts` (a key of the join, or in its condition) bounds both ways, as
        // `a.ts BETWEEN b.ts AND b.ts` does (audit 92a: Flink's
        // `testRowTimeInnerJoinWithEquiTimeAttrs` was refused as unbounded).
        let time_equalities =
            j.on.iter()
                .map(|(l, r)| (l, r))
                .chain(conditions.iter().flat_map(|c| equalities(c)))
                .flat_map(|(a, b)| [(a, b), (b, a)]);
        let bounds: Vec<(&Expr, &Expr)> = conditions
            .iter()
            .flat_map(|c| inequalities(c))
            .chain(time_equalities)
            .collect();
        for (low, high) in bounds {
            let Some(((lc, lo), (hc, ho))) = time_bound(low, high) else {
                continue;
            };
            // lc + lo <= hc + ho, so lc - hc <= ho - lo.
            let bound = ho - lo;
            let (left_col, right_col, reach) =
                if j.left.schema().has_column(lc) && j.right.schema().has_column(hc) {
                    // left - right <= bound: a left row is at most `bound` after a right row.
                    (lc, hc, &mut right_reach)
                } else if j.right.schema().has_column(lc) && j.left.schema().has_column(hc) {
                    (hc, lc, &mut left_reach)
                } else {
                    continue;
                };
            let is_event_time = |side: &LogicalPlan, c: &Column| {
                self.event_time_of(side, c).is_some_and(|w| w.is_column())
            };
            if !is_event_time(&j.left, left_col) || !is_event_time(&j.right, right_col) {
                continue;
            }
            match &times {
                Some((l, r)) if l != left_col || r != right_col => continue,
                _ => times = Some((left_col.clone(), right_col.clone())),
            }
            *reach = Some(reach.map_or(bound, |b| b.min(bound)));
        }
        // Bounded one way at least: the bounded side's rows leave the state (as in Spark).
        let Some((left, right)) = times.filter(|_| left_reach.is_some() || right_reach.is_some())
        else {
            return Err(unbounded(&conditions));
        };
        // An outer join's preserved side needs a bound: its rows without a match are emitted
        // when they leave the state, which an unbounded side's never do (Spark requires it).
        let unbounded_preserved: Vec<&str> = [
            (
                "left",
                matches!(j.join_type, JoinType::Left | JoinType::Full) && left_reach.is_none(),
            ),
            (
                "right",
                matches!(j.join_type, JoinType::Right | JoinType::Full) && right_reach.is_none(),
            ),
        ]
        .into_iter()
        .filter_map(|(side, unbounded)| unbounded.then_some(side))
        .collect();
        if let (Some(outer), [side, ..]) = (outer, unbounded_preserved.as_slice()) {
            return Err(PlanError::Unsupported {
                operator: format!("a {outer} join of two streams"),
                reason: format!(
                    "emits a {side} row without a match once no row of the other side can match \
                     it any more, but its condition sets no bound on how much later such a row \
                     may come, so it would never be emitted: bound it that way over the \
                     sources' watermark columns (`ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + \
                     INTERVAL '1 hour'` bounds how much later `b` rows come than `a` rows){}",
                    why(&conditions)
                ),
            });
        }
        Ok(JoinShape {
            outer,
            side_streams: [
                super::streams_read(&j.left, self.streams),
                super::streams_read(&j.right, self.streams),
            ],
            left_time: left.name,
            right_time: right.name,
            left_reach_ns: left_reach,
            right_reach_ns: right_reach,
            windows,
            months: conditions.iter().any(|c| has_months(c)),
        })
    }

    /// `date_bin(interval, t[, origin])` over the event-time column `t` of `input`: the
    /// column and the windows.
    fn window_over(&self, expr: &Expr, input: &LogicalPlan) -> Option<(Column, EventTimeWindow)> {
        let window = self.window_of(strip_alias(expr), input)?;
        let Expr::ScalarFunction(f) = strip_alias(expr) else {
            return None;
        };
        match strip_alias(&f.args[1]) {
            Expr::Column(c) => Some((c.clone(), window)),
            _ => None,
        }
    }

    /// Walks down from the root to the aggregation: what lies above it runs on its result.
    fn above(&self, node: &LogicalPlan) -> Result<AggregateShape, PlanError> {
        let unsupported = |operator: &str, reason: &str| PlanError::Unsupported {
            operator: operator.to_string(),
            reason: reason.to_string(),
        };
        if is_aggregation(node) && reads_stream(node, self.streams) {
            return self.aggregation(node);
        }
        let only_complete = |operator: &str| {
            if self.mode == OutputMode::Complete {
                Ok(())
            } else {
                Err(PlanError::Mode {
                    mode: self.mode.as_str(),
                    operator: format!("{operator} after an aggregation"),
                    reason: "only the whole result table can be sorted or cut, and only complete \
                             mode emits it each batch"
                        .into(),
                    works: "complete",
                })
            }
        };
        match node {
            LogicalPlan::Projection(p) => self.above(&p.input),
            LogicalPlan::Filter(f) => {
                if subquery_over_stream(&f.predicate, self.streams)
                    && !aggregates_stream(&f.input, self.streams)
                {
                    // The aggregation is the subquery's own (`WHERE v > (SELECT avg(v) FROM
                    // s)`): its value moves with every batch.
                    return Err(unsupported(
                        "a subquery over a stream",
                        "in a filter is not supported: what it computes changes as the \
                         stream's rows come, and rows written before would not be judged \
                         again. A subquery over a static table (`tables:`) is read once and \
                         may filter; a value per group is an aggregation's (`HAVING`)",
                    ));
                }
                if has_subquery(&f.predicate) {
                    return Err(unsupported(
                        "a subquery",
                        "in a filter over an aggregation is not supported; where it reads a \
                         static table, join its value in instead: `FROM (SELECT k, count(*) \
                         AS n FROM s GROUP BY k) a CROSS JOIN (SELECT count(*) AS c FROM t) x \
                         WHERE a.n > x.c`",
                    ));
                }
                self.above(&f.input)
            }
            LogicalPlan::SubqueryAlias(s) => self.above(&s.input),
            LogicalPlan::Sort(s) => {
                only_complete("ORDER BY")?;
                self.above(&s.input)
            }
            LogicalPlan::Limit(l) => {
                only_complete("LIMIT/OFFSET")?;
                self.above(&l.input)
            }
            LogicalPlan::Join(j) => {
                let on_left = reads_stream(&j.left, self.streams);
                let (stream_side, other) = if on_left {
                    (&j.left, &j.right)
                } else {
                    (&j.right, &j.left)
                };
                if reads_stream(other, self.streams) {
                    return Err(unsupported(
                        "a join of two streams",
                        "is not supported yet; join a stream with static tables (`tables:`)",
                    ));
                }
                // Over the whole result table (complete mode) every join type is right; over
                // the rows a batch emits, only one that keeps the aggregation's rows.
                if self.mode != OutputMode::Complete && keeps_static_rows(j.join_type, on_left) {
                    return Err(PlanError::Mode {
                        mode: self.mode.as_str(),
                        operator: format!(
                            "a {} join of an aggregation's result (on the {}) with a static \
                             table that keeps the table's rows",
                            j.join_type,
                            if on_left { "left" } else { "right" }
                        ),
                        reason: "a static row is unmatched only if no group of the whole result \
                                 table matches it, and only complete mode emits the whole table \
                                 each batch"
                            .into(),
                        works: "complete",
                    });
                }
                self.above(stream_side)
            }
            other => Err(unsupported(
                &operator_name(other),
                "over the result of an aggregation is not supported; \
                 only projections, filters (HAVING), joins with static tables and, in \
                 complete mode, `ORDER BY` with `LIMIT` (a top N) may follow it. \
                 Write each aggregation as a pipeline of its own (its own sink), or aggregate \
                 once here and the rest where the sink is read (in complete mode the sink \
                 holds the whole result table)",
            )),
        }
    }

    fn aggregation(&self, node: &LogicalPlan) -> Result<AggregateShape, PlanError> {
        let names = |plan: &LogicalPlan| {
            plan.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        };
        let (shape, input) = match node {
            LogicalPlan::Aggregate(a) => {
                if a.group_expr
                    .iter()
                    .any(|e| matches!(e, Expr::GroupingSet(_)))
                {
                    return Err(PlanError::Unsupported {
                        operator: "GROUPING SETS / ROLLUP / CUBE".into(),
                        reason: "over a stream is not supported; group by plain keys: by \
                                 every key of the finest grouping (`GROUP BY a, b`), and add \
                                 up its subtotals where the sink is read (complete mode keeps \
                                 the whole table there), or a pipeline per grouping"
                            .into(),
                    });
                }
                let output_names = names(node);
                let event_time = a.group_expr.iter().enumerate().find_map(|(i, expr)| {
                    self.event_time_window(expr, &a.input)
                        .map(|window| EventTimeKey {
                            name: output_names[i].clone(),
                            window,
                        })
                });
                let session = event_time.as_ref().is_some_and(|k| k.window.session);
                // A second key over the event time would cut each session into pieces.
                let over_event_time = a
                    .group_expr
                    .iter()
                    .filter(|expr| self.event_time_window(expr, &a.input).is_some())
                    .count();
                if session && over_event_time > 1 {
                    return Err(PlanError::Unsupported {
                        operator: "session_window with another key over the event time".into(),
                        reason: "would split each session by that key; group a session window \
                                 by keys that are not over the watermark column"
                            .into(),
                    });
                }
                let operator = if a.group_expr.is_empty() {
                    "a global aggregate"
                } else if session {
                    "a session window aggregation"
                } else if event_time.as_ref().is_some_and(|k| !k.window.is_column()) {
                    "an event-time window aggregation"
                } else {
                    "GROUP BY aggregation"
                };
                let shape = AggregateShape {
                    operator: operator.into(),
                    output_names,
                    // A session's key moves as rows join it: never final when first seen.
                    distinct_only: a.aggr_expr.is_empty() && !a.group_expr.is_empty() && !session,
                    event_time,
                    dedup: None,
                    unclosed_windows: false,
                };
                (shape, &a.input)
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let output_names = names(node);
                let event_time = input
                    .schema()
                    .columns()
                    .iter()
                    .enumerate()
                    .find_map(|(i, c)| {
                        self.event_time_of(input, c).map(|window| EventTimeKey {
                            name: output_names[i].clone(),
                            window,
                        })
                    });
                let session = event_time.as_ref().is_some_and(|k| k.window.session);
                let shape = AggregateShape {
                    operator: if session {
                        "a session window aggregation".into()
                    } else {
                        "DISTINCT".into()
                    },
                    output_names,
                    distinct_only: !session,
                    event_time,
                    dedup: None,
                    unclosed_windows: false,
                };
                (shape, input)
            }
            LogicalPlan::Distinct(Distinct::On(on)) => {
                // Under an aggregation, or in append mode (which writes a row once), a key's
                // row, once seen, stays: Spark's `dropDuplicates(keys)`. A key over the event
                // time lets the watermark drop it, in update mode too, as a window of a GROUP
                // BY (walk 104 (3): every closed window was kept).
                let first_seen = self.under_aggregation || self.mode == OutputMode::Append;
                let event_time = if first_seen || self.mode == OutputMode::Update {
                    on.on_expr.iter().find_map(|expr| {
                        self.event_time_window(expr, &on.input)
                            .filter(|w| !w.session)
                            .map(|window| EventTimeKey {
                                name: match strip_alias(expr) {
                                    Expr::Column(c) => c.name.clone(),
                                    other => other.schema_name().to_string(),
                                },
                                window,
                            })
                    })
                } else {
                    None
                };
                let shape = AggregateShape {
                    operator: "DISTINCT ON".into(),
                    output_names: names(node),
                    distinct_only: first_seen,
                    event_time,
                    dedup: None,
                    unclosed_windows: false,
                };
                (shape, &on.input)
            }
            _ => unreachable!("called on aggregations only"),
        };
        let mut shape = shape;
        shape.unclosed_windows =
            shape.event_time.is_none() && bins_by_time(node) && !bins_by_calendar(node);
        match self.dedup_under(input)? {
            Some((node, dedup)) => {
                check_stateless_above(input, self.streams, Some(node))?;
                shape.dedup = Some(Box::new(dedup));
            }
            None => check_stateless_above(input, self.streams, None)?,
        }
        if self.mode == OutputMode::Append && !shape.distinct_only && shape.event_time.is_none() {
            let reason = if bins_by_calendar(node) {
                "append mode writes each row once, when its window has closed, and a window of \
                 `date_bin` over months or years is no event-time window: a month has no fixed \
                 length, and windows close by a fixed length past the watermark (bin by days or \
                 hours, `INTERVAL '30 days'`, to emit each window once it is final; or keep \
                 months, rewritten as they change, in update or complete mode)"
                    .to_string()
            } else if (bins_by_time(node) || hops_below(input)) && self.watermarks.is_empty() {
                // Walk 96: `hop` (in a subquery, grouped by its column) was told to group by
                // `date_bin` over a watermark column, not that no source has one.
                "append mode writes each row once, when its window has closed, and the \
                 watermark says when that is: no source declares a `watermark:` (give the source \
                 the window reads one, `watermark: { column: ts, delay: 10s }`, its column the \
                 one `date_bin` or `hop` bins)"
                    .to_string()
            } else if bins_by_time(node) {
                format!(
                    "append mode writes each row once, when its window has closed, and the \
                     watermark says when that is: this window is not over a watermark column \
                     itself (the sources' are {}; a time made from one, as by `AT TIME ZONE`, \
                     is not it); bin that column, or give the source whose column it bins a \
                     `watermark:`",
                    self.watermarks
                        .iter()
                        .map(|(source, column)| format!("`{source}.{column}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else if let Some((unit, false)) = truncates_time(node) {
                format!(
                    "append mode writes each row once, when its window has closed, and only \
                     `date_bin` (and `hop`, `session_window`) over a source's watermark column \
                     itself makes windows whose end the watermark can pass, in UTC: \
                     `date_trunc('{unit}', ...)` of a time made from it (local time, `AT TIME \
                     ZONE`) is neither, so windows of local days are not supported in append \
                     mode. Group by `date_bin(INTERVAL '1 {unit}', ts)` for windows in UTC (an \
                     origin, `date_bin(.., ts, TIMESTAMP '2026-01-01 05:00:00')`, shifts them by \
                     a fixed offset, which daylight saving time does not follow), or keep local \
                     {unit}s, rewritten as they change, in update or complete mode"
                )
            } else if let Some((unit, true)) = truncates_time(node) {
                format!(
                    "append mode writes each row once, when its window has closed, and only \
                     `date_bin` (and `hop`, `session_window`) makes windows whose end the \
                     watermark can pass: `date_trunc('{unit}', ts)` is taken for a plain \
                     value, not a window. Group by `date_bin(INTERVAL '1 {unit}', ts)`, which \
                     bins the same way (in UTC; over a source's watermark column)"
                )
            } else {
                "append mode writes each row once, and this aggregation's rows change as more \
                 input arrives (to emit each group once it is final, group by \
                 `date_bin(INTERVAL ..., <column>)` over a source's watermark column)"
                    .to_string()
            };
            return Err(PlanError::Mode {
                mode: self.mode.as_str(),
                operator: shape.operator,
                reason,
                works: "update, complete",
            });
        }
        Ok(shape)
    }

    /// The deduplication the aggregation `input` feeds may run over: the first aggregation
    /// over a stream below it, when that is a `SELECT DISTINCT` (or a GROUP BY without
    /// aggregate functions) or a `SELECT DISTINCT ON (keys)`, and its shape (one that emits
    /// each row, or each key's first row, once, the first time it is seen). `None` when there is no aggregation below, or one of another kind (which
    /// [`super::check_stateless`] then refuses by name).
    fn dedup_under<'p>(
        &self,
        input: &'p LogicalPlan,
    ) -> Result<Option<(&'p LogicalPlan, AggregateShape)>, PlanError> {
        fn first<'p>(plan: &'p LogicalPlan, streams: &BTreeSet<String>) -> Option<&'p LogicalPlan> {
            if is_aggregation(plan) && reads_stream(plan, streams) {
                return Some(plan);
            }
            plan.inputs().into_iter().find_map(|i| first(i, streams))
        }
        let Some(node) = first(input, self.streams) else {
            return Ok(None);
        };
        let dedup_like = match node {
            LogicalPlan::Distinct(Distinct::All(_) | Distinct::On(_)) => true,
            LogicalPlan::Aggregate(a) => {
                a.aggr_expr.is_empty()
                    && !a.group_expr.is_empty()
                    && !a
                        .group_expr
                        .iter()
                        .any(|e| matches!(e, Expr::GroupingSet(_)))
            }
            _ => false,
        };
        if !dedup_like {
            return Ok(None);
        }
        // The deduplication emits each row once, the first time it is seen: as in append mode.
        let inner = Walk {
            mode: OutputMode::Append,
            under_aggregation: true,
            ..*self
        };
        let dedup = inner.aggregation(node)?;
        if !dedup.distinct_only || dedup.dedup.is_some() {
            return Ok(None);
        }
        Ok(Some((node, dedup)))
    }

    /// What a group key over a watermarked column is in event time, if it is over one.
    fn event_time_window(&self, expr: &Expr, input: &LogicalPlan) -> Option<EventTimeWindow> {
        match strip_alias(expr) {
            Expr::Column(c) => self.event_time_of(input, c),
            other => self.window_of(other, input),
        }
    }

    /// `date_bin(interval, t[, origin])` over the event time `t` (a column of `input`), with a
    /// fixed interval and a constant origin; or `session_window(t, gap)` with a constant gap.
    fn window_of(&self, expr: &Expr, input: &LogicalPlan) -> Option<EventTimeWindow> {
        let Expr::ScalarFunction(f) = expr else {
            return None;
        };
        if f.func.name() == super::functions::SESSION_WINDOW && f.args.len() == 2 {
            let gap_ns = interval_ns(&f.args[1])?;
            let Expr::Column(c) = strip_alias(&f.args[0]) else {
                return None;
            };
            let time = self.event_time_of(input, c).filter(|w| w.is_column())?;
            // A gap the column's unit cannot hold would fail every batch.
            use datafusion::arrow::datatypes::{DataType, TimeUnit};
            let per_unit = match input
                .schema()
                .qualified_field_from_column(c)
                .ok()?
                .1
                .data_type()
            {
                DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
                DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
                DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
                _ => 1,
            };
            if gap_ns % per_unit != 0 {
                return None;
            }
            return Some(EventTimeWindow {
                size_ns: gap_ns,
                slide_ns: 1,
                session: true,
                ..time
            });
        }
        if f.func.name() != "date_bin" || !(2..=3).contains(&f.args.len()) {
            return None;
        }
        let size_ns = interval_ns(&f.args[0])?;
        let origin_ns = match f.args.get(2) {
            Some(origin) => timestamp_literal_ns(origin)?,
            None => 0,
        };
        match strip_alias(&f.args[1]) {
            Expr::Column(c) => {
                let time = self.event_time_of(input, c).filter(|w| w.is_column())?;
                Some(EventTimeWindow {
                    size_ns,
                    slide_ns: size_ns,
                    origin_ns,
                    ..time
                })
            }
            _ => None,
        }
    }

    /// What `column` of `plan` is in event time: a stream's watermark column passed through
    /// unchanged, or the starts of windows over it (`date_bin`, or `hop` unnested); `None`
    /// otherwise.
    fn event_time_of(&self, plan: &LogicalPlan, column: &Column) -> Option<EventTimeWindow> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let table = scan.table_name.table();
                (self.streams.contains(table)
                    && self
                        .watermarks
                        .get(table)
                        .is_some_and(|wm| *wm == column.name))
                .then(|| EventTimeWindow::column(table))
            }
            LogicalPlan::Projection(p) => {
                let i = p.schema.index_of_column(column).ok()?;
                match strip_alias(&p.expr[i]) {
                    Expr::Column(c) => self.event_time_of(&p.input, c),
                    other => self.window_of(other, &p.input),
                }
            }
            LogicalPlan::SubqueryAlias(s) => {
                let i = s.schema.index_of_column(column).ok()?;
                let inner = Column::from(s.input.schema().qualified_field(i));
                self.event_time_of(&s.input, &inner)
            }
            LogicalPlan::Filter(f) => self.event_time_of(&f.input, column),
            // A deduplication's rows pass through unchanged.
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let i = plan.schema().index_of_column(column).ok()?;
                let inner = Column::from(input.schema().qualified_field(i));
                self.event_time_of(input, &inner)
            }
            LogicalPlan::Aggregate(a) if a.aggr_expr.is_empty() => {
                let i = a.schema.index_of_column(column).ok()?;
                self.event_time_window(a.group_expr.get(i)?, &a.input)
            }
            // Each key's row is one of the input's rows, whole.
            LogicalPlan::Distinct(Distinct::On(on)) => {
                let i = on.schema.index_of_column(column).ok()?;
                self.event_time_window(on.select_expr.get(i)?, &on.input)
            }
            // The same windows over the event time of each stream of the union.
            LogicalPlan::Union(u) => {
                let i = u.schema.index_of_column(column).ok()?;
                let mut each = u.inputs.iter().map(|input| {
                    let inner = Column::from(input.schema().qualified_field(i));
                    self.event_time_of(input, &inner)
                });
                let mut union = each.next()??;
                for window in each {
                    let window = window?;
                    if (
                        window.size_ns,
                        window.slide_ns,
                        window.origin_ns,
                        window.session,
                    ) != (
                        union.size_ns,
                        union.slide_ns,
                        union.origin_ns,
                        union.session,
                    ) {
                        return None;
                    }
                    union.streams.extend(window.streams);
                }
                Some(union)
            }
            LogicalPlan::Join(j) => {
                if j.left.schema().has_column(column) {
                    self.event_time_of(&j.left, column)
                } else {
                    self.event_time_of(&j.right, column)
                }
            }
            LogicalPlan::Unnest(u) => {
                let i = u.schema.index_of_column(column).ok()?;
                let from = *u.dependency_indices.get(i)?;
                let inner = Column::from(u.input.schema().qualified_field(from));
                if !u.list_type_columns.iter().any(|(c, _)| *c == from) {
                    return self.event_time_of(&u.input, &inner);
                }
                // An unnested list: `hop(t, slide, size)` over the event time `t`.
                let LogicalPlan::Projection(p) = u.input.as_ref() else {
                    return None;
                };
                let Expr::ScalarFunction(f) = strip_alias(p.expr.get(from)?) else {
                    return None;
                };
                if f.func.name() != super::functions::HOP || f.args.len() != 3 {
                    return None;
                }
                let slide_ns = interval_ns(&f.args[1])?;
                let size_ns = interval_ns(&f.args[2])?;
                match strip_alias(&f.args[0]) {
                    Expr::Column(c) => {
                        let time = self.event_time_of(&p.input, c).filter(|w| w.is_column())?;
                        Some(EventTimeWindow {
                            size_ns,
                            slide_ns,
                            origin_ns: 0,
                            ..time
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::SetComparison(_)
        ))
    })
    .unwrap_or(true)
}

/// Whether `plan` holds an aggregation over one of `streams` (a filter on it is a `HAVING`).
fn aggregates_stream(plan: &LogicalPlan, streams: &BTreeSet<String>) -> bool {
    (is_aggregation(plan) && reads_stream(plan, streams))
        || plan
            .inputs()
            .into_iter()
            .any(|input| aggregates_stream(input, streams))
}

/// Whether `expr` holds a subquery (scalar, `IN` or `EXISTS`) that reads one of `streams`.
fn subquery_over_stream(expr: &Expr, streams: &BTreeSet<String>) -> bool {
    expr.exists(|e| {
        Ok(match e {
            Expr::ScalarSubquery(q) => reads_stream(&q.subquery, streams),
            Expr::InSubquery(i) => reads_stream(&i.subquery.subquery, streams),
            Expr::Exists(x) => reads_stream(&x.subquery.subquery, streams),
            _ => false,
        })
    })
    .unwrap_or(false)
}

/// Whether aggregation `node` groups by a window over time (`date_bin`, `session_window`),
/// whatever column it bins.
fn bins_by_time(node: &LogicalPlan) -> bool {
    let LogicalPlan::Aggregate(a) = node else {
        return false;
    };
    a.group_expr.iter().any(|expr| {
        matches!(strip_alias(expr), Expr::ScalarFunction(f)
            if ["date_bin", super::functions::SESSION_WINDOW].contains(&f.func.name()))
    })
}

/// Whether `plan` (an aggregation's input) calls `hop` anywhere.
fn hops_below(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(node.expressions().iter().any(|expr| {
            expr.exists(|e| {
                Ok(matches!(e, Expr::ScalarFunction(f) if f.func.name() == super::functions::HOP))
            })
            .unwrap_or(false)
        }))
    })
    .unwrap_or(false)
}

/// How a query that does more than one stateful step is run: one pipeline a step, the next
/// reading the files the one before writes (their `_sluice/` records are left out by name).
const CHAIN: &str = "Join the two streams alone in this pipeline, into a files sink, and do the \
                     rest in a second pipeline whose source reads that sink's folder (`kind: \
                     files`, its `path:` and `format:`), with a `watermark:` where it needs \
                     one";

/// The unit of a `date_trunc('<unit>', ...)` aggregation `node` groups by (a window of
/// Spark's or PostgreSQL's habit that is not one here), where it groups by one whose bins
/// `date_bin` of one such unit makes too (seconds to days; weeks start on another day).
fn truncates_time(node: &LogicalPlan) -> Option<(String, bool)> {
    use datafusion::common::ScalarValue;
    let LogicalPlan::Aggregate(a) = node else {
        return None;
    };
    a.group_expr.iter().find_map(|expr| {
        let Expr::ScalarFunction(f) = strip_alias(expr) else {
            return None;
        };
        if !["date_trunc", "datetrunc"].contains(&f.func.name()) {
            return None;
        }
        match f.args.first().map(strip_alias) {
            Some(Expr::Literal(
                ScalarValue::Utf8(Some(unit))
                | ScalarValue::LargeUtf8(Some(unit))
                | ScalarValue::Utf8View(Some(unit)),
                _,
            )) if ["second", "minute", "hour", "day"]
                .contains(&unit.to_ascii_lowercase().as_str()) =>
            {
                // Of a column itself (perhaps cast), not of a time made from it (`ts AT TIME
                // ZONE 'America/New_York'`, local time).
                let plain = f.args.get(1).is_some_and(|arg| {
                    let mut arg = strip_alias(arg);
                    while let Expr::Cast(c) = arg {
                        // `AT TIME ZONE` is a cast into a zone: local time, not the column.
                        if let datafusion::arrow::datatypes::DataType::Timestamp(_, Some(zone)) =
                            c.field.data_type()
                            && !["UTC", "+00:00", "Z"].contains(&zone.as_ref())
                        {
                            return false;
                        }
                        arg = strip_alias(&c.expr);
                    }
                    matches!(arg, Expr::Column(_))
                });
                Some((unit.to_ascii_lowercase(), plain))
            }
            _ => None,
        }
    })
}

/// Whether aggregation `node` groups by `date_bin` of an interval of months or years, which
/// has no fixed length in nanoseconds.
fn bins_by_calendar(node: &LogicalPlan) -> bool {
    use datafusion::common::ScalarValue;
    let LogicalPlan::Aggregate(a) = node else {
        return false;
    };
    a.group_expr.iter().any(|expr| {
        let Expr::ScalarFunction(f) = strip_alias(expr) else {
            return false;
        };
        let calendar = match f.args.first().map(strip_alias) {
            Some(Expr::Literal(ScalarValue::IntervalYearMonth(Some(_)), _)) => true,
            Some(Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _)) => v.months != 0,
            _ => false,
        };
        f.func.name() == "date_bin" && calendar
    })
}

/// A constant timestamp (`date_bin`'s origin) in nanoseconds since the epoch.
fn timestamp_literal_ns(expr: &Expr) -> Option<i64> {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use datafusion::common::ScalarValue;
    let value = match strip_alias(expr) {
        Expr::Literal(value, _) => value.clone(),
        Expr::Cast(c) => match strip_alias(&c.expr) {
            Expr::Literal(value, _) => value.cast_to(c.field.data_type()).ok()?,
            _ => return None,
        },
        _ => return None,
    };
    let ns = value
        .cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, None))
        .ok()?;
    match ns {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v),
        _ => None,
    }
}

/// A fixed interval literal in nanoseconds (months have no fixed length).
fn interval_ns(expr: &Expr) -> Option<i64> {
    match strip_alias(expr) {
        Expr::Literal(value, _) => super::functions::interval_scalar_ns(value),
        _ => None,
    }
}

fn operator_name(node: &LogicalPlan) -> String {
    match node {
        LogicalPlan::Window(_) => "a window function (OVER)".into(),
        LogicalPlan::Union(_) => "UNION".into(),
        LogicalPlan::Unnest(_) => "UNNEST".into(),
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => "a second aggregation".into(),
        other => format!("`{}`", other.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::datasource::MemTable;

    use super::*;
    use crate::plan::{default_settings, plan_batch, session};

    /// Analyzes `sql` over streams `s` and `s2` (watermarked on `ts`) and the static table `t`.
    async fn analyze_sql(sql: &str, mode: OutputMode) -> Result<Shape, PlanError> {
        let watermarks = [
            ("s".to_string(), "ts".to_string()),
            ("s2".to_string(), "ts".to_string()),
        ]
        .into();
        analyze_sql_over(sql, mode, &watermarks).await
    }

    /// A unit of `date_trunc` made of constants (it folds to one DataFusion takes), or one of
    /// its names in another case, is taken (the review of walk 108's check).
    #[tokio::test]
    async fn a_truncation_unit_made_of_constants_is_taken() {
        for sql in [
            "SELECT date_trunc(lower('MONTH'), ts) AS m FROM s",
            "SELECT date_trunc('Month', ts) AS m FROM s",
        ] {
            let shape = analyze_sql(sql, OutputMode::Append).await;
            assert!(shape.is_ok(), "{sql}: {shape:?}");
        }
    }

    /// Analyzes `sql` over streams `s` and `s2` (with `watermarks`) and the static table `t`.
    async fn analyze_sql_over(
        sql: &str,
        mode: OutputMode,
        watermarks: &BTreeMap<String, String>,
    ) -> Result<Shape, PlanError> {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ]));
        for table in ["s", "s2", "t"] {
            let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
            ctx.register_table(table, Arc::new(mem)).expect("register");
        }
        let (_, plan) = plan_batch(&ctx, sql, 0).await?;
        let streams = ["s".to_string(), "s2".to_string()].into();
        analyze(&plan, &streams, watermarks, mode)
    }

    /// Walk 20 (15): a window over a column of a source without a `watermark:` was refused
    /// in append mode with the advice to group by `date_bin` over a watermark column, which
    /// the query did: the refusal says that no source has a watermark, or which columns do.
    #[tokio::test]
    async fn a_window_without_a_watermark_says_what_is_missing() {
        let sql = "SELECT date_bin(INTERVAL '1 minute', ts) AS w, count(*) FROM s GROUP BY 1";
        let err = analyze_sql_over(sql, OutputMode::Append, &BTreeMap::new())
            .await
            .expect_err("no watermark")
            .to_string();
        assert!(
            err.contains("no source declares a `watermark:`")
                && err.contains("watermark: { column: ts, delay: 10s }"),
            "{err}"
        );
        let other: BTreeMap<String, String> = [("s".to_string(), "at".to_string())].into();
        let err = analyze_sql_over(sql, OutputMode::Append, &other)
            .await
            .expect_err("another column")
            .to_string();
        assert!(
            err.contains("not over a watermark column itself (the sources' are `s.at`;"),
            "{err}"
        );
        assert!(analyze_sql(sql, OutputMode::Append).await.is_ok());
        // Walk 96: sliding windows too, grouped by the column `hop` makes in a subquery.
        let hopped = "SELECT w, count(*) FROM (SELECT unnest(hop(ts, INTERVAL '1 minute', \
                      INTERVAL '5 minutes')) AS w FROM s) GROUP BY w";
        let err = analyze_sql_over(hopped, OutputMode::Append, &BTreeMap::new())
            .await
            .expect_err("no watermark")
            .to_string();
        assert!(err.contains("no source declares a `watermark:`"), "{err}");
    }

    /// Walk 106 (3): a join bounded over the event times of two sources, one without a
    /// `watermark:`, was refused with the bound it had as the example; the source is named.
    #[tokio::test]
    async fn a_join_over_a_source_without_a_watermark_names_it() {
        let one: BTreeMap<String, String> = [("s".to_string(), "ts".to_string())].into();
        let err = analyze_sql_over(
            "SELECT s.a FROM s JOIN s2 ON s.a = s2.a AND s2.ts BETWEEN s.ts AND s.ts + \
             INTERVAL '10' MINUTE",
            OutputMode::Append,
            &one,
        )
        .await
        .expect_err("no watermark on s2")
        .to_string();
        assert!(
            err.contains("without an event-time bound")
                && err.contains("source `s2` has no `watermark:` (give it `watermark:")
                && !err.contains("source `s` has"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_window_of_months_is_named_in_append_mode() {
        // Walk 9: the refusal said to group by `date_bin`, which the query did.
        for sql in [
            "SELECT date_bin(INTERVAL '1 month', ts) AS m, count(*) FROM s GROUP BY 1",
            "SELECT date_bin(INTERVAL '1 year', ts) AS y, count(*) FROM s GROUP BY 1",
        ] {
            let err = analyze_sql(sql, OutputMode::Append)
                .await
                .expect_err("no event-time window")
                .to_string();
            assert!(err.contains("a month has no fixed length"), "{sql}: {err}");
            assert!(
                analyze_sql(sql, OutputMode::Update).await.is_ok(),
                "{sql}: update mode keeps month buckets"
            );
        }
        let err = analyze_sql("SELECT k, count(*) FROM s GROUP BY k", OutputMode::Append)
            .await
            .expect_err("no window")
            .to_string();
        assert!(!err.contains("a month"), "{err}");
    }

    #[tokio::test]
    async fn windows_over_the_watermark_column_run_in_append_mode() {
        for sql in [
            "SELECT date_bin(INTERVAL '1 minute', ts) AS w, count(*) FROM s GROUP BY 1",
            "SELECT date_bin(INTERVAL '5 seconds', t2, TIMESTAMP '2020-01-01') AS w, b, sum(a) \
             FROM (SELECT ts AS t2, a, b FROM s WHERE a > 1) x GROUP BY 1, 2",
            "SELECT date_bin(INTERVAL '1 hour', s.ts) AS w, t.b, count(*) FROM s JOIN t ON s.a = t.a GROUP BY 1, 2",
            "SELECT w, count(*) FROM (SELECT date_bin(INTERVAL '10 seconds', ts) AS w FROM s) GROUP BY w",
            "SELECT w, b, count(*) FROM (SELECT unnest(hop(ts, INTERVAL '1 minute', INTERVAL '5 minutes')) AS w, b FROM s) GROUP BY w, b",
        ] {
            let shape = analyze_sql(sql, OutputMode::Append)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let Shape::Aggregate(a) = shape else {
                panic!("{sql}: stateful")
            };
            let key = a.event_time.expect("an event-time key");
            assert_eq!(key.name, a.output_names[0], "{sql}");
            assert_eq!(
                key.window.streams,
                BTreeSet::from(["s".to_string()]),
                "{sql}"
            );
            assert!(
                key.window.size_ns >= 5_000_000_000,
                "{sql}: {:?}",
                key.window
            );
            if sql.contains("hop(") {
                assert_eq!(key.window.size_ns, 300_000_000_000, "{sql}: the hop's size");
                assert_eq!(
                    key.window.slide_ns, 60_000_000_000,
                    "{sql}: the hop's slide"
                );
            } else {
                assert_eq!(key.window.slide_ns, key.window.size_ns, "{sql}: tumbling");
            }
            if sql.contains("TIMESTAMP '2020-01-01'") {
                assert_eq!(
                    key.window.origin_ns, 1_577_836_800_000_000_000,
                    "{sql}: origin"
                );
            }
        }
        // A union of streams: the same windows over each stream's event time.
        for sql in [
            "SELECT date_bin(INTERVAL '5 seconds', ts) AS w, count(*) FROM \
             (SELECT ts FROM s UNION ALL SELECT ts FROM s2) u GROUP BY 1",
            "SELECT w, count(*) FROM (SELECT date_bin(INTERVAL '5 seconds', ts) AS w FROM s \
             UNION ALL SELECT date_bin(INTERVAL '5 seconds', ts) AS w FROM s2) u GROUP BY w",
        ] {
            let Shape::Aggregate(a) = analyze_sql(sql, OutputMode::Append)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
            else {
                panic!("{sql}: stateful")
            };
            let window = a.event_time.expect("an event-time key").window;
            assert_eq!(window.streams.len(), 2, "{sql}");
            assert_eq!(window.size_ns, 5_000_000_000, "{sql}");
        }
        let unequal = "SELECT w, count(*) FROM (SELECT date_bin(INTERVAL '5 seconds', ts) AS w \
                       FROM s UNION ALL SELECT date_bin(INTERVAL '6 seconds', ts) AS w FROM s2) u \
                       GROUP BY w";
        assert!(
            analyze_sql(unequal, OutputMode::Append).await.is_err(),
            "windows of different widths are no one event-time key"
        );
        let Shape::Aggregate(dedup) =
            analyze_sql("SELECT DISTINCT a, ts FROM s", OutputMode::Append)
                .await
                .expect("dedup")
        else {
            panic!("stateful")
        };
        assert!(dedup.distinct_only);
        assert!(
            dedup
                .event_time
                .expect("an event-time key")
                .window
                .is_column()
        );
    }

    #[tokio::test]
    async fn a_deduplication_under_an_aggregation_is_kept_as_its_own_state() {
        let Shape::Aggregate(a) = analyze_sql(
            "SELECT a, count(*) AS n FROM (SELECT DISTINCT a, ts FROM s) GROUP BY a",
            OutputMode::Update,
        )
        .await
        .expect("dedup then aggregation") else {
            panic!("stateful")
        };
        assert!(a.event_time.is_none());
        let dedup = a.dedup.expect("a deduplication below");
        assert!(dedup.distinct_only);
        assert!(dedup.event_time.expect("over ts").window.is_column());
        // Windows over the deduplicated rows close by the watermark, as over the stream.
        let Shape::Aggregate(a) = analyze_sql(
            "SELECT w, count(*) AS n FROM (SELECT b, date_bin(INTERVAL '5 seconds', ts) AS w \
             FROM s GROUP BY 1, 2) GROUP BY w",
            OutputMode::Append,
        )
        .await
        .expect("dedup then windows") else {
            panic!("stateful")
        };
        let key = a.event_time.expect("windows over the event time");
        assert_eq!(key.window.size_ns, 5_000_000_000);
        assert_eq!(
            a.dedup
                .expect("dedup")
                .event_time
                .expect("w")
                .window
                .size_ns,
            5_000_000_000
        );
        // A deduplication by key (Spark's `dropDuplicates(keys)`): a key's first row stays;
        // a key over the event time lets the watermark drop it.
        let Shape::Aggregate(a) = analyze_sql(
            "SELECT b, count(*) AS n FROM (SELECT DISTINCT ON (a) a, b FROM s ORDER BY a, ts) \
             GROUP BY b",
            OutputMode::Update,
        )
        .await
        .expect("dedup by key then aggregation") else {
            panic!("stateful")
        };
        let dedup = a.dedup.expect("a deduplication by key below");
        assert!(dedup.distinct_only);
        assert!(dedup.event_time.is_none());
        let Shape::Aggregate(a) = analyze_sql(
            "SELECT date_bin(INTERVAL '5 seconds', ts) AS w, count(*) AS n FROM \
             (SELECT DISTINCT ON (a, ts) a, b, ts FROM s) GROUP BY 1",
            OutputMode::Append,
        )
        .await
        .expect("dedup by key and time then windows") else {
            panic!("stateful")
        };
        let key = a.dedup.expect("dedup").event_time.expect("over ts");
        assert!(key.window.is_column());
        assert_eq!(key.name, "ts");
        // As the whole query in append mode, it is one too: each key's first row, once.
        let Shape::Aggregate(append) = analyze_sql(
            "SELECT DISTINCT ON (a) a, b FROM s ORDER BY a, b",
            OutputMode::Append,
        )
        .await
        .expect("distinct on, append") else {
            panic!("stateful")
        };
        assert!(append.distinct_only && append.event_time.is_none());
        // In update mode it is no deduplication: each key's row may change.
        let Shape::Aggregate(whole) = analyze_sql(
            "SELECT DISTINCT ON (a) a, b FROM s ORDER BY a, ts",
            OutputMode::Update,
        )
        .await
        .expect("distinct on") else {
            panic!("stateful")
        };
        assert!(!whole.distinct_only && whole.dedup.is_none());
        // Only a deduplication, and only one, may lie under the aggregation.
        for sql in [
            "SELECT a, count(*) FROM (SELECT DISTINCT a FROM (SELECT DISTINCT a, ts FROM s)) GROUP BY a",
            "SELECT a, count(*) FROM (SELECT a, max(ts) AS m FROM s GROUP BY a) GROUP BY a",
        ] {
            let err = analyze_sql(sql, OutputMode::Update)
                .await
                .expect_err(sql)
                .to_string();
            assert!(err.contains("under another aggregation"), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn joins_with_a_static_table_that_keep_the_stream_rows_run() {
        use OutputMode::{Append, Complete, Update};
        for (sql, mode) in [
            ("SELECT s.a, t.b FROM s LEFT JOIN t ON s.a = t.a", Append),
            (
                "SELECT s.a, t.b FROM t RIGHT OUTER JOIN s ON s.a = t.a",
                Update,
            ),
            ("SELECT s.a FROM s LEFT ANTI JOIN t ON s.a = t.a", Append),
            ("SELECT s.a FROM t RIGHT SEMI JOIN s ON s.a = t.a", Append),
            (
                "SELECT t.b, count(*) FROM s LEFT JOIN t ON s.a = t.a GROUP BY t.b",
                Update,
            ),
            (
                "SELECT c.a, c.n FROM (SELECT a, count(*) AS n FROM s GROUP BY a) c \
                 LEFT JOIN t ON c.a = t.a",
                Update,
            ),
            // The whole result table each batch: any join with a static table is right.
            (
                "SELECT t.b, c.n FROM (SELECT a, count(*) AS n FROM s GROUP BY a) c \
                 FULL JOIN t ON c.a = t.a",
                Complete,
            ),
        ] {
            analyze_sql(sql, mode)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[tokio::test]
    async fn a_join_of_two_streams_is_bounded_both_ways() {
        for (sql, left, right, time) in [
            (
                "SELECT s.a, s2.b FROM s JOIN s2 ON s.a = s2.a \
                 AND s2.ts BETWEEN s.ts - INTERVAL '10 seconds' AND s.ts + INTERVAL '1 minute'",
                Some(60_000_000_000),
                Some(10_000_000_000),
                "ts",
            ),
            (
                "SELECT x.a FROM (SELECT a, ts AS t FROM s WHERE a > 0) x JOIN s2 y ON x.a = y.a \
                 AND x.t <= y.ts + INTERVAL '5 seconds' AND y.ts < x.t + INTERVAL '2 seconds'",
                Some(2_000_000_000),
                Some(5_000_000_000),
                "t",
            ),
            // One way only: the right row is at or after the left one, so a right row is kept
            // until the watermark passes it, and left rows for ever.
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a AND s2.ts >= s.ts",
                None,
                Some(0),
                "ts",
            ),
            // Equal windows: less than a window apart, either way.
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a \
                 AND date_bin(INTERVAL '10 seconds', s.ts) = date_bin(INTERVAL '10 seconds', s2.ts)",
                Some(10_000_000_000),
                Some(10_000_000_000),
                "ts",
            ),
            // Walk 106 (4): a difference of the times against an interval.
            (
                "SELECT s.a FROM s LEFT JOIN s2 ON s.a = s2.a AND s2.ts - s.ts <= INTERVAL '30' \
                 DAY AND s2.ts >= s.ts",
                Some(30 * 86_400_000_000_000),
                Some(0),
                "ts",
            ),
            // Walk 62: the bound in a WHERE over an inner join, as Flink writes interval joins.
            (
                "SELECT s.a, s2.b FROM s, s2 WHERE s.a = s2.a \
                 AND s2.ts BETWEEN s.ts - INTERVAL '10 seconds' AND s.ts + INTERVAL '1 minute'",
                Some(60_000_000_000),
                Some(10_000_000_000),
                "ts",
            ),
            (
                "SELECT s.a, s2.b FROM s JOIN s2 ON s.a = s2.a \
                 WHERE s2.ts BETWEEN s.ts - INTERVAL '10 seconds' AND s.ts + INTERVAL '1 minute'",
                Some(60_000_000_000),
                Some(10_000_000_000),
                "ts",
            ),
        ] {
            let shape = analyze_sql(sql, OutputMode::Append)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let Shape::Join(j) = shape else {
                panic!("{sql}: a join")
            };
            assert_eq!((j.left_reach_ns, j.right_reach_ns), (left, right), "{sql}");
            assert_eq!(
                (j.left_time.as_str(), j.right_time.as_str()),
                (time, "ts"),
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn shapes_that_cannot_run_are_refused_by_name() {
        use OutputMode::{Append, Complete, Update};
        for (sql, mode, needles) in [
            (
                "SELECT b, count(*) FROM s GROUP BY b",
                Append,
                &["GROUP BY aggregation", "update, complete"][..],
            ),
            ("SELECT count(*) FROM s", Append, &["a global aggregate"]),
            // Walk 108: a unit DataFusion's `date_trunc` does not take failed each batch.
            (
                "SELECT date_trunc('MM', ts) AS m FROM s",
                Append,
                &[
                    "`date_trunc('MM', s.ts)`",
                    "as Spark does",
                    "`date_trunc('month', ...)`",
                ],
            ),
            (
                "SELECT date_trunc(b, ts) AS m FROM s",
                Append,
                &["from a column", "'quarter'"],
            ),
            (
                "SELECT date_trunc('decade', ts) AS m FROM s",
                Append,
                &["`'decade'` DataFusion has not", "'microsecond'"],
            ),
            (
                "SELECT date_bin(INTERVAL '1 minute', ts + INTERVAL '1 hour') AS w, count(*) FROM s GROUP BY 1",
                Append,
                &["append", "watermark column"],
            ),
            (
                "SELECT date_bin(INTERVAL '1 minute', ts) AS w, count(*) FROM t GROUP BY 1",
                Complete,
                &["a query that reads no stream", "static tables"],
            ),
            (
                "SELECT b, count(*) AS n FROM s GROUP BY b ORDER BY n",
                Update,
                &["ORDER BY after an aggregation", "complete"],
            ),
            (
                "SELECT b, count(*) AS n FROM s GROUP BY b LIMIT 3",
                Update,
                &["LIMIT/OFFSET after an aggregation"],
            ),
            (
                "SELECT n, count(*) FROM (SELECT b, count(*) AS n FROM s GROUP BY b) GROUP BY n",
                Update,
                &["under another aggregation"],
            ),
            // Walk 34 (7): a subquery over the stream in a filter was said to be "over an
            // aggregation" where the query has none.
            (
                "SELECT a, ts FROM s WHERE a > (SELECT avg(a) FROM s)",
                Append,
                &[
                    "a subquery over a stream in a filter is not supported",
                    "static table",
                ],
            ),
            (
                "SELECT b, count(*) AS n FROM s GROUP BY b \
                 HAVING count(*) > (SELECT count(*) FROM s)",
                Update,
                &["a subquery in a filter over an aggregation is not supported"],
            ),
            // Audit 87: computed over each batch's rows alone, exit 0; or failing every batch
            // (`EXISTS`, `IN`); or named as the scan "over the result of an aggregation".
            (
                "SELECT b, CAST(sum(a) AS DOUBLE) / (SELECT sum(a) FROM s) AS share FROM s \
                 GROUP BY b",
                Complete,
                &[
                    "a subquery over a stream in the SELECT list, a GROUP BY key, an \
                   aggregate's argument or a join's condition is not supported",
                ],
            ),
            (
                "SELECT b, sum(a + (SELECT max(a) FROM s)) AS t FROM s GROUP BY b",
                Update,
                &["a subquery over a stream in the SELECT list"],
            ),
            (
                "SELECT b, a > (SELECT avg(a) FROM s) AS big, count(*) FROM s GROUP BY b, \
                 a > (SELECT avg(a) FROM s)",
                Update,
                &["a subquery over a stream in the SELECT list"],
            ),
            (
                "SELECT b, count(*) AS n, EXISTS (SELECT 1 FROM s WHERE a > 5) AS e FROM s \
                 GROUP BY b",
                Complete,
                &["a subquery over a stream in the SELECT list"],
            ),
            (
                "SELECT a, b, (SELECT max(a) FROM s) AS m FROM s",
                Append,
                &["a subquery over a stream in the SELECT list"],
            ),
            // Audit 87 (design §6.1's known gap): a volatile function in an aggregate's
            // argument, or above the aggregation.
            (
                "SELECT b, sum(a * random()) AS t FROM s GROUP BY b",
                Update,
                &["the query calls `random()`"],
            ),
            (
                "SELECT b, sum(a) + random() AS t FROM s GROUP BY b",
                Update,
                &["the query calls `random()`"],
            ),
            // Walk 39 (U2): a zone that is none failed each batch, in Arrow's words.
            (
                "SELECT ts AT TIME ZONE 'Mars/Olympus' AS z FROM s",
                Append,
                &["`Mars/Olympus`, which is no time zone", "'Europe/Paris'"],
            ),
            // Walk 34 (2, 5): `ROW_NUMBER` or `LAG` name the form that runs or why none does;
            // a deduplication by key under two aggregations names the one it may be under.
            (
                "SELECT b, count(*) FROM (SELECT DISTINCT b FROM (SELECT DISTINCT ON (a) a, b \
                 FROM s ORDER BY a, ts)) GROUP BY b",
                Update,
                &[
                    "DISTINCT under another aggregation",
                    "`SELECT DISTINCT ON (key)`) right below it",
                ],
            ),
            (
                "SELECT a, b FROM (SELECT a, b, row_number() OVER (PARTITION BY a ORDER BY ts) \
                 AS rn FROM s) WHERE rn = 1",
                Append,
                &[
                    "a window function (OVER)",
                    "`SELECT DISTINCT ON (key) ... ORDER BY key, ts`",
                ],
            ),
            (
                "SELECT a, lag(a) OVER (ORDER BY ts) AS before FROM s",
                Append,
                &["a window function (OVER)", "(`LAG`, `LEAD`)"],
            ),
            // Walk 104 (2, 5): a rank, a first value and a running total are each said with
            // their own form, not ROW_NUMBER's or LAG's.
            (
                "SELECT a, b FROM (SELECT a, b, dense_rank() OVER (PARTITION BY a ORDER BY b \
                 DESC) AS r FROM s) WHERE r <= 3",
                Update,
                &[
                    "array_agg(DISTINCT v ORDER BY v DESC), 1, N)",
                    "`RANK()`, whose ties",
                ],
            ),
            (
                "SELECT a, first_value(b) OVER (PARTITION BY a ORDER BY ts) AS f FROM s",
                Update,
                &["first_value(v ORDER BY ts) AS first_v"],
            ),
            (
                "SELECT a, count(b) OVER (PARTITION BY a ORDER BY ts) AS running FROM s",
                Update,
                &["a running total per key is the aggregation itself"],
            ),
            (
                "SELECT s.a, count(*) FROM s JOIN s2 ON s.a = s2.a \
                 AND s2.ts BETWEEN s.ts AND s.ts + INTERVAL '1 minute' GROUP BY s.a",
                Update,
                &["an aggregation with a join of two streams"],
            ),
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a",
                Append,
                &["without an event-time bound", "BETWEEN"],
            ),
            // Walk 106 (4): an interval of months bounds nothing, and that is said.
            (
                "SELECT s.a FROM s LEFT JOIN s2 ON s.a = s2.a AND s2.ts BETWEEN s.ts AND s.ts + \
                 INTERVAL '1' MONTH",
                Append,
                &[
                    "a LEFT join of two streams",
                    "write days (`INTERVAL '30' DAY`)",
                ],
            ),
            // A WHERE over an outer join filters its result (rows without a match included):
            // no bound of the join.
            (
                "SELECT s.a FROM s LEFT JOIN s2 ON s.a = s2.a \
                 WHERE s2.ts BETWEEN s.ts AND s.ts + INTERVAL '1 minute'",
                Append,
                &["without an event-time bound"],
            ),
            (
                "SELECT w, count(*) FROM (SELECT unnest(hop(ts, INTERVAL '10 seconds', \
                 INTERVAL '5 seconds')) AS w FROM s) GROUP BY w",
                Update,
                &["hop(ts, slide, size) with a slide longer than its size is not supported"],
            ),
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a AND s2.a >= s.a",
                Append,
                &["without an event-time bound"],
            ),
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a \
                 AND date_bin(INTERVAL '10 seconds', s.ts) = date_bin(INTERVAL '20 seconds', s2.ts)",
                Append,
                &["without an event-time bound", "equal windows"],
            ),
            (
                "SELECT s.a FROM s LEFT JOIN s2 ON s.a = s2.a \
                 AND s2.ts BETWEEN s.ts AND s.ts + INTERVAL '1 minute'",
                Update,
                &[
                    "a LEFT join of two streams",
                    "Output modes that work: append",
                ],
            ),
            (
                "SELECT s.a FROM s LEFT JOIN s2 ON s.a = s2.a AND s2.ts >= s.ts",
                Append,
                &[
                    "a LEFT join of two streams",
                    "emits a left row without a match",
                ],
            ),
            (
                "SELECT s.a FROM s FULL JOIN s2 ON s.a = s2.a AND s2.ts <= s.ts",
                Append,
                &[
                    "a FULL join of two streams",
                    "emits a right row without a match",
                ],
            ),
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a \
                 AND s2.ts BETWEEN s.ts AND s.ts + INTERVAL '1 minute'",
                Complete,
                &["complete", "append, update"],
            ),
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a \
                 AND s2.ts BETWEEN s.ts AND s.ts + INTERVAL '1 minute' JOIN t ON t.a = s.a",
                Append,
                &["with other joins"],
            ),
            (
                "SELECT a, row_number() OVER (ORDER BY a) FROM s",
                Append,
                &["window function"],
            ),
            (
                "SELECT b, n, rank() OVER (ORDER BY n) FROM (SELECT b, count(*) AS n FROM s GROUP BY b)",
                Complete,
                &["window function", "over the result of an aggregation"],
            ),
            (
                "SELECT a, b, count(*) FROM s GROUP BY ROLLUP (a, b)",
                Complete,
                &["GROUPING SETS / ROLLUP / CUBE"],
            ),
            (
                "SELECT b, count(*) FROM s GROUP BY b UNION ALL SELECT b, count(*) FROM t GROUP BY b",
                Complete,
                &["UNION"],
            ),
            (
                "SELECT b, count(*) AS n FROM s GROUP BY b HAVING count(*) > (SELECT count(*) FROM t)",
                Update,
                &["subquery"],
            ),
            (
                "SELECT w, count(*) FROM (SELECT unnest(hop(ts + INTERVAL '1 hour', INTERVAL '1 minute', INTERVAL '5 minutes')) AS w FROM s) GROUP BY w",
                Append,
                &["append", "update, complete"],
            ),
            (
                "SELECT s.a, t.b FROM s FULL JOIN t ON s.a = t.a",
                Append,
                &[
                    "a Full join of a stream (on the left) with a static table (on the right)",
                    "`stream LEFT JOIN table`",
                ],
            ),
            (
                "SELECT s.a, t.b FROM t FULL OUTER JOIN s ON s.a = t.a",
                Update,
                &["a Full join of a stream (on the right) with a static table (on the left)"],
            ),
            (
                "SELECT t.b FROM t LEFT JOIN s ON s.a = t.a",
                Append,
                &["a Left join of a stream (on the right)"],
            ),
            (
                "SELECT t.b FROM s RIGHT JOIN t ON s.a = t.a",
                Append,
                &["a Right join of a stream (on the left)"],
            ),
            (
                "SELECT t.b FROM t LEFT SEMI JOIN s ON s.a = t.a",
                Append,
                &["a LeftSemi join of a stream (on the right)"],
            ),
            (
                "SELECT t.b FROM t LEFT ANTI JOIN s ON s.a = t.a",
                Append,
                &["a LeftAnti join of a stream (on the right)"],
            ),
            (
                "SELECT t.b FROM s RIGHT ANTI JOIN t ON s.a = t.a",
                Append,
                &["a RightAnti join of a stream (on the left)"],
            ),
            (
                "SELECT t.b, count(*) FROM s FULL JOIN t ON s.a = t.a GROUP BY t.b",
                Update,
                &["a Full join of a stream (on the left)"],
            ),
            (
                "SELECT t.b, c.n FROM (SELECT a, count(*) AS n FROM s GROUP BY a) c \
                 RIGHT JOIN t ON c.a = t.a",
                Update,
                &[
                    "a Right join of an aggregation's result (on the left)",
                    "complete",
                ],
            ),
        ] {
            let err = analyze_sql(sql, mode).await.expect_err(sql).to_string();
            for needle in needles {
                assert!(err.contains(needle), "{sql}: `{needle}` not in: {err}");
            }
        }
    }
}
