//! SQL to per-batch plans: the session every batch runs in, the check that a query can run
//! without state, and the pieces of a plan that must not depend on the wall clock.
//!
//! Invariants:
//! - a batch's plan depends only on its input, its pinned settings and its batch timestamp:
//!   `now()`, `current_timestamp` and `current_date` read the batch timestamp, volatile
//!   functions (`random()`, `uuid()`) are refused, and no round-robin repartitioning (whose
//!   output depends on thread timing) is planned;
//! - a query that needs state across batches is refused before the first batch, naming the
//!   operator.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan, Volatility};
use datafusion::optimizer::Optimizer;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::vocab::PinnedSettings;

pub mod first_last;
pub mod float_keys;
pub mod functions;
pub mod min_max;
pub mod overflow;
pub mod shape;
pub use functions::register_functions;
pub use shape::{AggregateShape, EventTimeKey, EventTimeWindow, JoinShape, Shape, analyze};

/// DataFusion's words for `e`, without advice to change settings Sluice does not take, nor its
/// nearest name for a Spark function (`year`: "Did you mean 'mean'?"), which the advice names.
fn sql_text(e: &DataFusionError) -> String {
    let mut text = e.to_string().replace(
        " or disable the datafusion.sql_parser.enable_ident_normalization configuration",
        "",
    );
    // A constant the planner computes ahead (`CAST('2026-13-01' AS DATE)`) fails inside an
    // optimizer rule, whose name says nothing of the query.
    if let Some(at) = text.find("Optimizer rule '")
        && let Some(rest) = text[at..]
            .split_once("' failed\ncaused by\n")
            .map(|(_, rest)| rest.to_string())
    {
        text = format!(
            "{}a constant in the query does not compute: {rest}",
            &text[..at]
        );
    }
    let named = text
        .split("Invalid function '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .is_some_and(|name| {
            SPARK_FUNCTIONS
                .iter()
                .chain(&DUCKDB_FUNCTIONS)
                .chain(&FLINK_FUNCTIONS)
                .chain(&STATISTICS)
                .any(|(other, _)| name.eq_ignore_ascii_case(other))
        });
    // The JSON functions (`->`, `->>`, `json_get*`) name a column of another type by its
    // Rust form, a struct's every field (walk 126 (3)): said by its kind.
    if let Some(at) = text.find("Unexpected argument type to 'json_")
        && let Some(got) = text[at..].find(", got ")
    {
        let start = at + got + ", got ".len();
        let kind = &text[start..];
        let word = [
            ("Struct(", "a struct"),
            ("List(", "a list"),
            ("LargeList(", "a list"),
            ("FixedSizeList(", "a list"),
            ("Map(", "a map"),
        ]
        .iter()
        .find(|(prefix, _)| kind.starts_with(prefix))
        .map(|(_, word)| (*word).to_string());
        if let Some(word) = word {
            text = format!("{}{word}", &text[..start]);
        }
    }
    if let Some(said) = no_signature(&text) {
        return said;
    }
    if let Some(said) = not_grouped(&text) {
        return said;
    }
    match text.find("\nDid you mean") {
        Some(at) if named => text[..at].to_string(),
        _ => text,
    }
}

/// DataFusion's words for a selected column that is neither grouped nor aggregated, which
/// speak of "expanding wildcard" where the query has none (DataFusion 51: `Column in SELECT
/// must be in GROUP BY or an aggregate function: While expanding wildcard, column "t.c" must
/// appear in the GROUP BY clause ...`): the column, and the two ways to write it.
fn not_grouped(text: &str) -> Option<String> {
    let rest = text
        .split("Column in SELECT must be in GROUP BY or an aggregate function")
        .nth(1)?;
    let column = rest.split("column \"").nth(1)?.split('"').next()?;
    let name = column.rsplit('.').next().unwrap_or(column);
    Some(format!(
        "the query selects `{name}`, which is neither in its GROUP BY nor inside an aggregate \
         function, so a group has no one value of it: add it to the GROUP BY (`GROUP BY ..., \
         {name}`), or aggregate it (`min({name})`, `first_value({name})`)"
    ))
}

/// DataFusion's words for a function given arguments of types it takes none of (`sum` of a
/// text column), without the "likely a bug in DataFusion" it adds to them (DataFusion 51:
/// `No function matches the given name and argument types 'sum(Utf8)'. ... Candidate
/// functions: sum(Decimal) ...`): which call, the types it was given, and those it takes.
fn no_signature(text: &str) -> Option<String> {
    let call = text
        .split("No function matches the given name and argument types '")
        .nth(1)?
        .split('\'')
        .next()?;
    let (name, args) = call.split_once('(')?;
    // The call's own closing parenthesis alone: a type's (`Timestamp(ns)`) stays (audit 92a).
    let args = args.strip_suffix(')').unwrap_or(args);
    // Split at the commas between arguments, not inside a type (`Timestamp(ns, "UTC")`).
    let mut split = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                split.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    split.push(&args[start..]);
    let takes: Vec<&str> = text
        .split("Candidate functions:")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .map(str::trim)
                .filter(|l| l.starts_with(name))
                .collect()
        })
        .unwrap_or_default();
    Some(format!(
        "`{name}` takes no argument{s} of type{s} {given}{takes}",
        s = if split.len() > 1 { "s" } else { "" },
        given = split
            .iter()
            .map(|a| format!("`{}`", type_words(a.trim())))
            .collect::<Vec<_>>()
            .join(", "),
        takes = if takes.is_empty() {
            String::new()
        } else {
            format!("; it takes {}", takes.join(", "))
        }
    ))
}

/// An Arrow type as DataFusion's messages name it (`Utf8`), in SQL's words where they differ.
fn type_words(arrow: &str) -> String {
    match arrow {
        "Utf8" | "LargeUtf8" | "Utf8View" => "text".to_string(),
        "Int64" => "bigint".to_string(),
        "Int32" => "int".to_string(),
        "Float64" => "double".to_string(),
        "Boolean" => "boolean".to_string(),
        other => other.to_string(),
    }
}

/// Flink SQL's functions that DataFusion names or writes otherwise (walk 93: a bare "Invalid
/// function"), with what gives Flink's value here (over the test's row).
const FLINK_FUNCTIONS: [(&str, &str); 3] = [
    (
        "to_timestamp_ltz",
        "`to_timestamp_millis(n)` for Flink's `TO_TIMESTAMP_LTZ(n, 3)` (`to_timestamp_seconds(n)` \
         for precision 0), an instant as UTC",
    ),
    (
        "timestampdiff",
        "`CAST(date_part('epoch', ts - start_ts) AS BIGINT)` for `TIMESTAMPDIFF(SECOND, start_ts, \
         ts)` (whole seconds, cut toward zero as Flink's; `/ 60` of it for whole minutes, \
         `/ 3600` for hours)",
    ),
    (
        "listagg",
        "`string_agg(s, ',')` (Flink's default separator is `,`)",
    ),
];

/// DuckDB functions DataFusion names otherwise or does without, with what to write here, as
/// [`SPARK_FUNCTIONS`] (the test checks each against DuckDB 2.0's value for one row).
/// DuckDB's `quantile_disc(n, 0.5)` (and `quantile`, `percentile_disc`), in DataFusion's SQL:
/// the first of the group's values in order at or past the fraction, counted in whole numbers
/// (walk 103's review: `ceil(0.55 * 100)` is 56 in doubles).
const DISCRETE_QUANTILE: &str = "`array_element(array_sort(array_agg(n) FILTER (WHERE n IS NOT \
     NULL)), greatest((50 * count(n) + 99) / 100, 1))` (the first of the group's values in order \
     at or past that share of them, 50 in 100 here; DataFusion has no exact discrete \
     percentile, and `percentile_cont` interpolates)";

const DUCKDB_FUNCTIONS: [(&str, &str); 31] = [
    (
        "timezone",
        "`to_utc_timestamp(ts, 'Europe/Berlin')` of a timestamp without a zone (the instant of \
         that wall-clock time; a time shown twice is the earlier instant, where DuckDB takes \
         the later), `from_utc_timestamp(ts, 'Europe/Berlin')` of an instant (its wall-clock \
         time there)",
    ),
    (
        "time_bucket",
        "`date_bin(INTERVAL '1 minute', ts)` (the same buckets for a width that divides a day; \
         DuckDB's weeks start on a Monday: `date_bin(INTERVAL '7 days', ts, TIMESTAMP \
         '2000-01-03')`)",
    ),
    (
        "strftime",
        "`to_char(ts, '%Y-%m-%d %H:%M')` (the same % codes)",
    ),
    (
        "strptime",
        "`to_timestamp(t, '%Y-%m-%d %H:%M:%S')` (the same % codes)",
    ),
    (
        "epoch",
        "`CAST(to_timestamp_micros(ts) AS BIGINT) / 1e6` (seconds, with their fraction)",
    ),
    ("epoch_ms", "`CAST(to_timestamp_millis(ts) AS BIGINT)`"),
    ("epoch_us", "`CAST(to_timestamp_micros(ts) AS BIGINT)`"),
    ("string_split", "`string_to_array(s, ',')`"),
    ("str_split", "`string_to_array(s, ',')`"),
    (
        "arg_max",
        "`first_value(s ORDER BY n DESC) FILTER (WHERE s IS NOT NULL AND n IS NOT NULL)` \
         (DuckDB passes over a row whose `s` or `n` is null)",
    ),
    (
        "arg_min",
        "`first_value(s ORDER BY n) FILTER (WHERE s IS NOT NULL AND n IS NOT NULL)` (DuckDB \
         passes over a row whose `s` or `n` is null)",
    ),
    ("quantile_disc", DISCRETE_QUANTILE),
    ("quantile", DISCRETE_QUANTILE),
    ("percentile_disc", DISCRETE_QUANTILE),
    (
        "len",
        "`character_length(s)` of a text, `cardinality(list)` of a list (the length of \
         its text form otherwise)",
    ),
    (
        "regexp_matches",
        "`regexp_like(s, ',')` (true where the pattern matches; `regexp_match` gives the \
         groups it matched, a list)",
    ),
    ("struct_pack", "`named_struct('x', n)`"),
    (
        "json_extract_string",
        "`json_as_text(j, 'a', 'b')` (keys and list indexes as arguments, where DuckDB takes a \
         `$.a.b` path; `j->>'a'` for one key)",
    ),
    (
        "json_extract",
        "`json_get_json(j, 'a')` (the value's JSON text, as the input writes it; keys and list \
         indexes as arguments, where DuckDB takes a `$.a` path)",
    ),
    ("group_concat", "`string_agg(s, ',')`"),
    // Walk 103: DuckDB's aggregate suite's names, which got DataFusion's nearest name.
    (
        "arbitrary",
        "`first_value(n ORDER BY ts)` (with an order, so that a replay gives the same row)",
    ),
    (
        "fsum",
        "`sum(CAST(n AS DOUBLE))` (added in order, without Kahan's compensation)",
    ),
    (
        "sumkahan",
        "`sum(CAST(n AS DOUBLE))` (added in order, without Kahan's compensation)",
    ),
    (
        "kahan_sum",
        "`sum(CAST(n AS DOUBLE))` (added in order, without Kahan's compensation)",
    ),
    ("favg", "`avg(CAST(n AS DOUBLE))`"),
    (
        "sem",
        "`stddev_pop(n) / sqrt(count(n))` (the standard error of the mean)",
    ),
    // Walk 98 (7): "Invalid function 'list'. Did you mean 'left'?".
    (
        "list",
        "`array_agg(s)` (the aggregate; a list value is `make_array(a, b)`)",
    ),
    ("countif", "`count(*) FILTER (WHERE c)`"),
    (
        "date_diff",
        "`CAST(ts AS DATE) - CAST(t AS DATE)` for `date_diff('day', t, ts)` (the day \
         boundaries from the first to the second, as DuckDB counts them); for hours, minutes or \
         seconds, the boundaries of that unit: `(CAST(to_unixtime(date_trunc('minute', ts)) \
         AS BIGINT) - CAST(to_unixtime(date_trunc('minute', t)) AS BIGINT)) / 60` (3600 for \
         hours, 1 for seconds); for months, `(date_part('year', ts) - date_part('year', t)) * \
         12 + date_part('month', ts) - date_part('month', t)`",
    ),
    (
        "format",
        "`concat(n, ' items')` (no format strings here: the parts joined)",
    ),
    (
        "printf",
        "`concat(n, ' items')` (no format strings here: the parts joined; `to_char` formats \
         a number or a time)",
    ),
];

/// The group's second and fourth central moments of a double `x`, from averages a streaming
/// aggregation keeps (the raw-moment sums DuckDB's `kurtosis` uses), as an inner query.
macro_rules! moments_24 {
    () => {
        "count(x) AS c, avg(x * x) - avg(x) * avg(x) AS m2, avg(x * x * x * x) \
     - 4 * avg(x) * avg(x * x * x) + 6 * avg(x) * avg(x) * avg(x * x) - 3 * power(avg(x), 4) AS \
     m4 FROM s GROUP BY k)`"
    };
}

/// Statistical aggregates DuckDB and Spark have and DataFusion does without (walk 103: "Invalid
/// function 'kurtosis'. Did you mean 'strpos'?"), with what computes them here. The first code
/// in backquotes is a query over `s(k, x)`, or an expression of its group, of a double `x`
/// (the test runs each over groups DuckDB 2.0.1 computed); advice that starts with `- ` says
/// there is no such aggregate, and what does the job instead. DuckDB's `kurtosis` and
/// `skewness` are corrected for the sample's size, Spark's are not (DuckDB's `kurtosis_pop`).
const STATISTICS: [(&str, &str); 9] = [
    (
        "kurtosis",
        concat!(
            "`SELECT k, CASE WHEN c > 3 THEN (c - 1) * ((c + 1) * m4 / nullif(m2 * m2, 0) - 3 * \
             (c - 1)) / ((c - 2) * (c - 3)) END AS kurtosis FROM (SELECT k, ",
            moments_24!(),
            " (DuckDB's, corrected for the sample's size; Spark's `kurtosis` and DuckDB's \
             `kurtosis_pop` are `m4 / nullif(m2 * m2, 0) - 3`)"
        ),
    ),
    (
        "kurtosis_pop",
        concat!(
            "`SELECT k, m4 / nullif(m2 * m2, 0) - 3 AS kurtosis_pop FROM (SELECT k, ",
            moments_24!()
        ),
    ),
    (
        "skewness",
        "`SELECT k, CASE WHEN c > 2 THEN sqrt(c * (c - 1)) / (c - 2) * m3 / nullif(power(m2, \
         1.5), 0) END AS skewness FROM (SELECT k, count(x) AS c, avg(x * x) - avg(x) * avg(x) \
         AS m2, avg(x * x * x) - 3 * avg(x) * avg(x * x) + 2 * power(avg(x), 3) AS m3 FROM s \
         GROUP BY k)` (DuckDB's, corrected for the sample's size; Spark's `skewness` is `m3 / \
         nullif(power(m2, 1.5), 0)`)",
    ),
    (
        "product",
        "`CASE WHEN count(x) FILTER (WHERE x = 0) > 0 THEN 0 ELSE power(-1, count(x) FILTER \
         (WHERE x < 0)) * exp(sum(ln(abs(x)))) END` (to a double's precision: a product of \
         whole numbers may come out a little off, 120.00000000000003 for 120)",
    ),
    ("geomean", "`exp(avg(ln(x)))`"),
    ("geometric_mean", "`exp(avg(ln(x)))`"),
    (
        "mode",
        "- count each value in the query (`SELECT k, x, count(*) AS c FROM s GROUP BY k, x`) \
         and keep the value with the highest `c` of each `k` where you read the output",
    ),
    (
        "entropy",
        "- count each value in the query (`SELECT k, x, count(*) AS c FROM s GROUP BY k, x`) \
         and compute `-sum(p * log2(p))` over each `k`'s shares `p` where you read the output",
    ),
    (
        "histogram",
        "- count each value in the query (`SELECT k, x, count(*) AS c FROM s GROUP BY k, x`), \
         one row a value",
    ),
];

/// Where a query names a file as a table (DuckDB's `SELECT * FROM 'in/a.json'`), how files
/// are read here; nothing for another name.
fn file_as_table(name: &str) -> String {
    let file = name.contains('/')
        || [".csv", ".json", ".jsonl", ".parquet", ".tsv"]
            .iter()
            .any(|ext| name.to_ascii_lowercase().ends_with(ext));
    if file {
        " (a file is not read by its path in the query, as DuckDB reads it: a `files` source \
         with a `path:` and `format:` under `sources:` (a stream) or `tables:` (read whole) \
         reads it, and the query names the source)"
            .to_string()
    } else {
        String::new()
    }
}

/// DuckDB's table functions that read a file inside a query.
const DUCKDB_READERS: [&str; 8] = [
    "read_csv",
    "read_csv_auto",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_ndjson_auto",
    "read_parquet",
    "parquet_scan",
];

/// Spark functions DataFusion names otherwise or does without, with what to write here. The
/// first code in backquotes is an expression over the columns of the table's test (`ts`, `d`,
/// `start_date`, `s`, `n`, `arr`, `c`) that gives Spark's value (the test runs each one).
/// Advice that starts with `- ` says there is no such function, and what does the job instead.
const SPARK_FUNCTIONS: [(&str, &str); 108] = [
    (
        "window",
        "`date_bin(INTERVAL '1 minute', ts)` (the window's start; sliding windows: `hop`)",
    ),
    (
        "split",
        "`CASE WHEN s = '' THEN make_array('') ELSE string_to_array(s, ',') END` (a plain \
         delimiter, not a pattern; `string_to_array` alone gives `[]` for an empty text, where \
         Spark gives `['']`, a row its `explode` keeps; elements count from 1: Spark's \
         `split(s, ',')[0]` is `string_to_array(s, ',')[1]`)",
    ),
    (
        "regexp_extract",
        "`regexp_match(s, '([a-z]),')[1]` (the pattern's first group; null where the pattern \
         does not match, where Spark and DuckDB give `''`: `coalesce(regexp_match(s, p)[1], \
         '')` for theirs)",
    ),
    ("explode", "`unnest(arr)`"),
    (
        "explode_outer",
        "`unnest(arr)`, which leaves out a row whose array is empty or null",
    ),
    ("size", "`cardinality(arr)`"),
    ("array_size", "`cardinality(arr)`"),
    ("collect_list", "`array_agg(s)`"),
    ("collect_set", "`array_agg(DISTINCT s)`"),
    ("locate", "`strpos(s, 'b')` (the text searched first)"),
    ("year", "`date_part('year', ts)`"),
    ("month", "`date_part('month', ts)`"),
    ("day", "`date_part('day', ts)`"),
    ("dayofmonth", "`date_part('day', ts)`"),
    ("hour", "`date_part('hour', ts)`"),
    ("minute", "`date_part('minute', ts)`"),
    ("second", "`date_part('second', ts)`"),
    (
        "dayofweek",
        "`date_part('dow', ts) + 1` (DataFusion counts Sunday as 0, Spark as 1)",
    ),
    ("dayofyear", "`date_part('doy', ts)`"),
    ("weekofyear", "`date_part('week', ts)`"),
    ("quarter", "`date_part('quarter', ts)`"),
    (
        "unix_timestamp",
        "`to_unixtime(ts)` (of text in a format: `to_unixtime(s, '%Y-%m-%d %H:%M:%S')`, with \
         strftime codes)",
    ),
    ("unix_seconds", "`to_unixtime(ts)`"),
    ("unix_millis", "`CAST(to_timestamp_millis(ts) AS BIGINT)`"),
    (
        "try_divide",
        "`CAST(n AS DOUBLE) / NULLIF(2, 0)` (null where the divisor is 0, a double as Spark's)",
    ),
    ("lcase", "`lower(s)`"),
    ("ucase", "`upper(s)`"),
    (
        "regexp_substr",
        "`regexp_match(s, ',')[1]` (the first match, null where there is none)",
    ),
    ("timestamp_seconds", "`to_timestamp_seconds(n)`"),
    (
        "date_add",
        "`d + INTERVAL '7 days'` (days from a column: `CAST(CAST(d AS INT) + n AS DATE)`)",
    ),
    ("date_sub", "`d - INTERVAL '7 days'`"),
    (
        "datediff",
        "`d - start_date` (two dates subtracted give the days between them)",
    ),
    ("rlike", "`regexp_like(s, 'a')` (or `s ~ 'a'`)"),
    (
        "sha2",
        "`encode(sha256(s), 'hex')` (`sha224`, `sha384`, `sha512` for the other lengths)",
    ),
    (
        "percentile_approx",
        "`approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY n)` (a double, where Spark's \
         keeps the column's type)",
    ),
    (
        "approx_percentile",
        "`approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY n)` (a double, where Spark's \
         keeps the column's type)",
    ),
    (
        "percentile",
        "`percentile_cont(0.5) WITHIN GROUP (ORDER BY n)` (between the two nearest values as \
         Spark's, though DataFusion 55 cuts the fraction between them to 6 decimals: \
         `percentile_cont(0.3)` of 1 to 7 is 2.799999 where Spark gives 2.8)",
    ),
    ("approx_count_distinct", "`approx_distinct(n)`"),
    (
        "first",
        "`first_value(n ORDER BY ts)` (with an order, so that a replay gives the same row)",
    ),
    (
        "last",
        "`last_value(n ORDER BY ts)` (with an order, so that a replay gives the same row)",
    ),
    ("variance", "`var_samp(n)`"),
    ("count_if", "`count(*) FILTER (WHERE c)`"),
    ("every", "`bool_and(c)`"),
    ("any", "`bool_or(c)`"),
    (
        "max_by",
        "`first_value(s ORDER BY n DESC NULLS LAST)` (a row whose `n` is null last: Spark \
         passes over it)",
    ),
    ("min_by", "`first_value(s ORDER BY n)`"),
    ("isnull", "`s IS NULL`"),
    ("isnotnull", "`s IS NOT NULL`"),
    ("if", "`CASE WHEN c THEN 1 ELSE 2 END`"),
    ("pmod", "`((n % 3) + 3) % 3`"),
    ("div", "`n / 2` (integers divided keep the whole part)"),
    ("startswith", "`starts_with(s, 'a')`"),
    ("endswith", "`ends_with(s, 'b')`"),
    ("typeof", "`arrow_typeof(n)` (Arrow's type names)"),
    (
        "sequence",
        "`generate_series(1, 3)` (both ends included, as in Spark)",
    ),
    (
        "slice",
        "`array_slice(arr, 1, 1)` (from and to, both included, where Spark's takes a length)",
    ),
    (
        "sort_array",
        "`array_sort(arr)` (Spark's `sort_array(arr, false)` is `array_sort(arr, 'DESC', \
         'NULLS LAST')`)",
    ),
    (
        "get_json_object",
        "`json_as_text(j, 'a', 'b')` (keys and list indexes as arguments, where Spark takes a \
         `$.a.b` path; `j->>'a'` for one key)",
    ),
    (
        "from_json",
        "- no function makes a struct of JSON text: `json_get_int(j, 'a', 'b')`, \
         `json_as_text(j, 'a')` and the other `json_get_*` read its fields; a source's `format: \
         json` with `schema:` decodes a whole JSON record into columns",
    ),
    // Walk 108: Spark's names that DataFusion's "Did you mean" matched with another function.
    (
        "base64",
        "`encode(s, 'base64pad')` (`'base64'` leaves out the `=` padding Spark's writes)",
    ),
    (
        "unbase64",
        "`decode(b64, 'base64')` (binary, as Spark's; text with or without the `=` padding)",
    ),
    (
        "add_months",
        "`d + INTERVAL '3 months'` (a day past the month's end is its last day, as in Spark's; \
         months from a column: `d + CAST(n || ' months' AS INTERVAL)`)",
    ),
    (
        "last_day",
        "`CAST(date_trunc('month', d) + INTERVAL '1 month' - INTERVAL '1 day' AS DATE)`",
    ),
    (
        "months_between",
        "`round((date_part('year', d) - date_part('year', start_date)) * 12 + \
         date_part('month', d) - date_part('month', start_date) + (date_part('day', d) - \
         date_part('day', start_date)) / 31.0, 8)` for `months_between(d, start_date)` of \
         dates (Spark's gives whole months where both are a month's last day, and counts a \
         timestamp's time of day in the days)",
    ),
    ("array", "`make_array(a, b)`"),
    ("transform", NO_LAMBDA),
    ("filter", NO_LAMBDA),
    ("aggregate", NO_LAMBDA),
    ("reduce", NO_LAMBDA),
    ("forall", NO_LAMBDA),
    ("zip_with", NO_LAMBDA),
    ("map_filter", NO_LAMBDA),
    (
        "format_number",
        "`CAST(CAST(n AS DECIMAL(38, 2)) AS VARCHAR)` for `format_number(n, 2)` (without \
         Spark's thousands separators)",
    ),
    (
        "format_string",
        "`concat(n, ' items')` (no format strings here: the parts joined; `to_char` formats a \
         time)",
    ),
    (
        "weekday",
        "`(date_part('dow', d) + 6) % 7` (Monday 0, as Spark's)",
    ),
    (
        "make_timestamp",
        "`CAST(make_date(yy, mm, dd) AS TIMESTAMP) + CAST(hh || ' hours ' || mi || ' minutes \
         ' || ss || ' seconds' AS INTERVAL)`",
    ),
    (
        "hex",
        "`upper(to_hex(n))` of an integer, `upper(encode(s, 'hex'))` of text or binary",
    ),
    ("unhex", "`decode(hx, 'hex')`"),
    ("shiftleft", "`a << n`"),
    ("shiftright", "`a >> n`"),
    ("hash", NO_SPARK_HASH),
    ("xxhash64", NO_SPARK_HASH),
    ("crc32", NO_SPARK_HASH),
    ("sha1", NO_SPARK_HASH),
    (
        "monotonically_increasing_id",
        "- no function numbers rows here (a stream's rows have no order a replay keeps): a key \
         made of the row's own values, `md5(concat_ws('|', a, b))`, is the same in every replay",
    ),
    (
        "posexplode",
        "`unnest(generate_series(0, CAST(cardinality(arr) AS BIGINT) - 1))` for the positions \
         (from 0, as Spark's; a row with an empty array gives none), with `arr[pos + 1]` for \
         the elements: `SELECT pos, arr[pos + 1] AS col FROM (SELECT arr, \
         unnest(generate_series(0, CAST(cardinality(arr) AS BIGINT) - 1)) AS pos FROM s)`",
    ),
    (
        "to_timestamp_ntz",
        "`to_timestamp(t)` (a timestamp without a zone)",
    ),
    ("timestamp_millis", "`to_timestamp_millis(n)`"),
    ("timestamp_micros", "`to_timestamp_micros(n)`"),
    ("unix_micros", "`CAST(to_timestamp_micros(ts) AS BIGINT)`"),
    ("unix_date", "`CAST(d AS INT)` (days since 1970-01-01)"),
    ("date_from_unix_date", "`CAST(n AS DATE)`"),
    (
        "dateadd",
        "`ts + INTERVAL '7 days'` for `dateadd(DAY, 7, ts)` (a number from a column: `ts + \
         CAST(n || ' days' AS INTERVAL)`)",
    ),
    (
        "timestampadd",
        "`ts + INTERVAL '7 days'` for `timestampadd(DAY, 7, ts)` (a number from a column: `ts + \
         CAST(n || ' days' AS INTERVAL)`)",
    ),
    ("hypot", "`sqrt(a * a + b * b)`"),
    ("expm1", "`exp(x) - 1`"),
    ("log1p", "`ln(1 + x)`"),
    ("sign", "`signum(x)`"),
    ("e", "`exp(1)`"),
    ("equal_null", "`a IS NOT DISTINCT FROM b`"),
    ("zeroifnull", "`coalesce(n, 0)`"),
    ("std", "`stddev(x)`"),
    ("space", "`repeat(' ', n)`"),
    (
        "json_array_length",
        "`json_length(items)` (of an object it counts the keys, where Spark's gives null)",
    ),
    (
        "json_tuple",
        "`json_as_text(j, 'a')`, one call for each key",
    ),
    ("map_from_arrays", "`map(ks, vs)`"),
    (
        "to_number",
        "`CAST(num AS DECIMAL(10, 2))` (no format: take separators out first with `replace`)",
    ),
    (
        "bround",
        "- no function rounds half to even here: `round(x, 2)` rounds half away from zero, as \
         Spark's `round`",
    ),
];

/// What Spark's higher-order functions (`transform(arr, x -> ...)`) are here.
const NO_LAMBDA: &str = "- no function here takes a lambda (`x -> ...`): an array function of \
                         DataFusion's may do it (`array_replace`, `array_remove_all`, \
                         `array_distinct`, `array_sum`), or `unnest(arr)` in a subquery \
                         computes on each element";

/// What Spark's hashes (`hash`, `xxhash64`, `crc32`, `sha1`) are here.
const NO_SPARK_HASH: &str = "- no function gives its values: `md5(s)` or `encode(sha256(s), \
                             'hex')` give a stable digest, of other values";

/// The Spark functions of [`SPARK_FUNCTIONS`] that `sql` calls (a name followed by `(`),
/// in the order of their first call.
fn spark_calls(sql: &str) -> Vec<(&'static str, &'static str)> {
    calls_in(sql, SPARK_FUNCTIONS.iter())
}

/// The names of `table` that `sql` calls, by its text (a name followed by `(`, not part of a
/// longer name), each with its advice, in the order they are first called.
fn calls_in(
    sql: &str,
    table: impl Iterator<Item = &'static (&'static str, &'static str)>,
) -> Vec<(&'static str, &'static str)> {
    let lower = sql.to_ascii_lowercase();
    let mut found: Vec<(usize, (&'static str, &'static str))> = table
        .filter_map(|&(spark, here)| {
            lower
                .match_indices(spark)
                .find(|&(at, _)| {
                    let before = lower[..at].chars().next_back();
                    let after = lower[at + spark.len()..].trim_start();
                    // Not an aggregate's `FILTER (WHERE ...)`.
                    let after =
                        after.starts_with('(') && !after[1..].trim_start().starts_with("where");
                    after && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(|(at, _)| (at, (spark, here)))
        })
        .collect();
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, call)| call).collect()
}

/// The functions of other engines (every table of names here: Spark's, DuckDB's, Flink's,
/// the statistics) `sql` calls, by its text (a name followed by `(`, not part of a longer
/// name), in the order they are first called, each once.
fn other_engine_calls(sql: &str) -> Vec<&'static str> {
    let all = SPARK_FUNCTIONS
        .iter()
        .chain(&DUCKDB_FUNCTIONS)
        .chain(&STATISTICS)
        .chain(&FLINK_FUNCTIONS);
    let mut names: Vec<&'static str> = calls_in(sql, all).into_iter().map(|(n, _)| n).collect();
    names.dedup();
    names
}

/// The arguments of the first call of `name` in `sql` (a name followed by `(`, not part of a
/// longer name, in a string or in a `--` comment), as written, split at their top-level
/// commas.
fn call_arguments(sql: &str, name: &str) -> Option<Vec<String>> {
    // Without `--` comments (outside a string), each to its line's end.
    let mut uncommented = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '-') if chars.peek() == Some(&'-') => {
                if chars.by_ref().any(|rest| rest == '\n') {
                    uncommented.push('\n');
                }
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), _) if c == open => quote = None,
            _ => {}
        }
        uncommented.push(c);
    }
    let sql = uncommented.as_str();
    let lower = sql.to_ascii_lowercase();
    // The quote a string (or a quoted name) is open in.
    let step = |quote: &mut Option<char>, c: char| match *quote {
        None if c == '\'' || c == '"' => *quote = Some(c),
        Some(open) if c == open => *quote = None,
        _ => {}
    };
    let (mut quote, mut from) = (None, None);
    for (i, c) in lower.char_indices() {
        step(&mut quote, c);
        let before = lower[..i].chars().next_back();
        if quote.is_none()
            && lower[i..].starts_with(name)
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && lower[i + name.len()..].trim_start().starts_with('(')
        {
            from = Some(i + name.len() + lower[i + name.len()..].find('(')? + 1);
            break;
        }
    }
    let from = from?;
    let (mut depth, mut start, mut quote) = (0usize, from, None);
    let mut args = Vec::new();
    for (i, c) in sql[from..].char_indices() {
        let at = from + i;
        step(&mut quote, c);
        match c {
            _ if quote.is_some() || c == '\'' || c == '"' => {}
            '(' => depth += 1,
            ')' if depth == 0 => {
                args.push(sql[start..at].trim().to_string());
                return Some(args);
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(sql[start..at].trim().to_string());
                start = at + 1;
            }
            _ => {}
        }
    }
    None
}

/// What the query's call of Spark's `window(ts, size[, slide[, start]])` is here, with its
/// own column and durations (Spark's `'5 minutes'` as `INTERVAL '5 minutes'`): a tumbling
/// window (no slide, or the slide its size) is `date_bin`, its start; a sliding one is
/// `unnest(hop(ts, slide, size))` in a subquery's projection. `None` where the call does not
/// read as Spark's (its durations not text or intervals).
fn spark_window(sql: &str) -> Option<String> {
    let args = call_arguments(sql, "window")?;
    let interval = |arg: &String| {
        let arg = arg.trim();
        // Spark SQL's and PySpark's `"5 minutes"` as well as `'5 minutes'`.
        if let Some(text) = (arg.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')))
            .or_else(|| arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')))
        {
            Some(format!("INTERVAL '{}'", text.trim()))
        } else {
            arg.to_ascii_lowercase()
                .starts_with("interval")
                .then(|| arg.to_string())
        }
    };
    let (ts, size) = (args.first()?, interval(args.get(1)?)?);
    let slide = args.get(2).map(interval);
    let start = args.get(3).map(interval);
    let written = format!("window({})", args.join(", "));
    let tumbling = match &slide {
        None => true,
        Some(Some(slide)) => slide.eq_ignore_ascii_case(&size),
        Some(None) => return None,
    };
    let origin = match start {
        None => String::new(),
        Some(Some(start)) if tumbling => format!(", TIMESTAMP '1970-01-01 00:00:00' + {start}"),
        Some(Some(_)) => {
            return Some(format!(
                "Spark's `{written}` has no counterpart with a start offset here: `hop(ts, \
                 slide, size)` gives sliding windows from the epoch (`unnest(hop({ts}, {}, \
                 {size})) AS window_start` in a subquery's projection, grouped by \
                 `window_start`)",
                slide.flatten().unwrap_or_default()
            ));
        }
        Some(None) => return None,
    };
    Some(if tumbling {
        format!(
            "Spark's `{written}` is `date_bin({size}, {ts}{origin})`, the window's start (its \
             end that plus {size}; Spark's `window.start`), as a group key: `GROUP BY \
             date_bin({size}, {ts}{origin})`"
        )
    } else {
        format!(
            "Spark's sliding `{written}` is `unnest(hop({ts}, {slide}, {size}))`, named `AS \
             window_start` in a subquery's projection (each row in each window that holds \
             it) and grouped by `window_start` (Spark's `window.start`; its end that plus \
             {size})",
            slide = slide.flatten().unwrap_or_default()
        )
    })
}

/// Says what DataFusion writes for each of `calls` (Spark's names); for Spark's `window`,
/// `window` where the query's own call was read ([`spark_window`]).
fn spark_advice(calls: &[(&str, &str)], window: Option<&str>) -> String {
    let said: Vec<String> = calls
        .iter()
        .map(|(spark, here)| match (here.strip_prefix("- "), window) {
            (_, Some(window)) if *spark == "window" => window.to_string(),
            (Some(instead), _) => format!("Spark's `{spark}` has no counterpart: {instead}"),
            (None, _) => format!("Spark's `{spark}` is {here}"),
        })
        .collect();
    format!(
        " ({} in DataFusion's SQL, which Sluice runs)",
        said.join("; ")
    )
}

/// What another engine's function `name` (DuckDB's, a statistic DuckDB and Spark have, or
/// Flink's; not Spark's alone, [`spark_advice`]) is written as here, as words to put in
/// parentheses; `None` for a name of none of them.
fn function_advice(name: &str) -> Option<String> {
    let named = |table: &'static [(&'static str, &'static str)]| {
        table
            .iter()
            .find(|(other, _)| name.eq_ignore_ascii_case(other))
    };
    if let Some((duckdb, here)) = named(&DUCKDB_FUNCTIONS) {
        return Some(format!(
            "DuckDB's `{duckdb}` is {here} in DataFusion's SQL, which Sluice runs"
        ));
    }
    if let Some((name, here)) = named(&STATISTICS) {
        return Some(match here.strip_prefix("- ") {
            Some(instead) => {
                format!("no aggregate here is DuckDB's or Spark's `{name}`: {instead}")
            }
            None => format!(
                "DuckDB's and Spark's `{name}` is {here} in DataFusion's SQL, which Sluice runs; \
                 of a double `x`: `CAST(v AS DOUBLE)` of an integer"
            ),
        });
    }
    named(&FLINK_FUNCTIONS).map(|(flink, here)| {
        format!(
            "Flink's `{}` is {here} in DataFusion's SQL, which Sluice runs",
            flink.to_ascii_uppercase()
        )
    })
}

/// What DataFusion's planning error `e` leaves a reader to guess, said (empty where nothing
/// is): a Spark function by Spark's name, a struct's field written with a dot, or two of the
/// query's expressions with one name, where they were written differently. DataFusion names an expression after what it computes, leaving casts out, so `max(v)` and
/// `max(CAST(v AS INT))` are both `max(s.v)`; two such aggregates do not plan even when named
/// apart with `AS` (apache/datafusion#18975), so the way out is a column of its own for the
/// cast.
fn sql_advice(e: &DataFusionError) -> String {
    let text = e.to_string();
    // `Invalid function 'split'.`: another engine's name, with DataFusion's nearest name
    // beside it.
    if let Some(name) = text
        .split("Invalid function '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
    {
        if let Some(&call) = SPARK_FUNCTIONS
            .iter()
            .find(|(other, _)| name.eq_ignore_ascii_case(other))
        {
            return spark_advice(&[call], None);
        }
        if let Some(said) = function_advice(name) {
            return format!(" ({said})");
        }
    }
    // DuckDB's (and Python's) `//`, parsed as MySQL's `DIV`.
    if text.contains("Operator DIV is not yet supported") {
        return " (DuckDB's `a // b`, the whole part of a quotient, is `a / b` of two integers \
                here, which keeps the whole part as PostgreSQL's does; of doubles or decimals, \
                `floor(a / b)`)"
            .to_string();
    }
    let reads = "the query reads the pipeline's `sources:` (streams) and `tables:` (read \
                 whole) by their names: a `files` source with `format: csv`, `json` or \
                 `parquet` and a `path:` reads the files";
    if let Some(name) = text
        .split("table function '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
    {
        return if DUCKDB_READERS.contains(&name.to_ascii_lowercase().as_str()) {
            format!(" (DuckDB's `{name}` reads a file inside a query; here {reads})")
        } else {
            format!(" ({reads})")
        };
    }
    // Spark's `trunc(d, 'MM')`, which DataFusion's numeric `trunc` does not take.
    if ["trunc(Date", "trunc(Timestamp"]
        .iter()
        .any(|call| text.contains(&format!("argument types '{call}")))
    {
        return " (Spark's `trunc(d, 'MM')` of a date is `CAST(date_trunc('month', d) AS DATE)` \
                here, with `'year'`, `'quarter'`, `'week'` for Spark's other units)"
            .to_string();
    }
    if text.contains("No function matches the given name and argument types '")
        && let Some(args) = text
            .split("No function matches the given name and argument types '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
        && ["Utf8", "LargeUtf8", "Utf8View"]
            .iter()
            .any(|t| args.contains(&format!("({t}")) || args.contains(&format!(", {t}")))
    {
        return " (a column read as text: cast it to what it holds, as `CAST(n AS DOUBLE)`, or \
                declare its type in the source's `schema:`)"
            .to_string();
    }
    if let Some(rest) = text.split("Cannot coerce arithmetic expression ").nth(1)
        && rest.split(" to valid types").next().is_some_and(|e| {
            e.split_whitespace()
                .any(|t| matches!(t, "Utf8" | "LargeUtf8" | "Utf8View"))
        })
    {
        return " (text in arithmetic: cast the column to the number it holds, as `CAST(n AS \
                BIGINT)`, or declare its type in the source's `schema:`)"
            .to_string();
    }
    if text.contains("Unexpected argument type to 'json_") && text.contains(", got Struct(") {
        return " (`->`, `->>` and the `json_get` functions read JSON text; a field of a struct \
                column is written `col['field']`, as `u['name']`)"
            .to_string();
    }
    if text.contains("Dot access not supported") {
        return " (a field of a struct column is written `col['field']`, not `col.field`)"
            .to_string();
    }
    let cte = "where they are aggregates over one column, one of them with a CAST (`max(v)` \
               beside `max(CAST(v AS INT))`), DataFusion cannot plan both even so \
               (apache/datafusion#18975): make the cast a column of its own in a CTE, as `WITH t \
               AS (SELECT *, CAST(v AS INT) AS v_int FROM s) SELECT ..., max(v_int) FROM t ...`, \
               or leave out a cast to the type the column already has";
    // DataFusion 55: `Projections require unique expression names but the expression "A" at
    // position 1 and "B" at position 2 have the same name.` (positions count from 0).
    if let Some(rest) = text
        .split("Projections require unique expression names but the expression \"")
        .nth(1)
    {
        let quoted: Vec<&str> = rest.split('"').collect();
        let position = |s: &str| {
            s.split("position ")
                .nth(1)
                .and_then(|p| p.split_whitespace().next())
                .and_then(|p| p.parse::<usize>().ok())
        };
        if let (Some(first), Some(second), Some(a), Some(b)) = (
            quoted.first(),
            quoted.get(2),
            quoted.get(1).and_then(|s| position(s)),
            quoted.get(3).and_then(|s| position(s)),
        ) {
            // Written apart but named alike: a cast left out of one's name.
            let casts = if first.contains("CAST(") || second.contains("CAST(") {
                format!(
                    ": DataFusion names a column after what it computes, leaving out casts. \
                     Every output column needs a name of its own: write `AS <name>` after one \
                     of them; {cte}"
                )
            } else {
                ". Every output column needs a name of its own: write `AS <name>` after one of \
                 them"
                    .to_string()
            };
            return format!(
                " (columns {} and {} of a SELECT in the query, `{first}` and `{second}`, come \
                 out with the same name{casts})",
                a + 1,
                b + 1
            );
        }
    }
    // DataFusion 55, two aggregates named apart but equal once casts are left out.
    if let Some(name) = text
        .split("Schema contains duplicate unqualified field name \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
    {
        return format!(
            " (two of the query's expressions are both named `{name}`: DataFusion names an \
             expression after what it computes, leaving out casts; {cte})"
        );
    }
    String::new()
}

/// Refuses (`PlanError::DuplicateColumns`) a query whose output `plan` has two columns of
/// one name (audit 92a: `SELECT t2.key, t2.id, t1.id` wrote `{"id":..,"id":..}`, and a
/// pipeline reading it kept one). Names compare exactly, as Arrow and Parquet do.
pub fn check_output_names(plan: &LogicalPlan) -> Result<(), PlanError> {
    let schema = plan.schema();
    let mut seen: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, field) in schema.fields().iter().enumerate() {
        seen.entry(field.name().as_str()).or_default().push(i);
    }
    match seen.into_iter().find(|(_, at)| at.len() > 1) {
        Some((name, at)) => Err(PlanError::DuplicateColumns {
            name: name.to_string(),
            columns: at
                .into_iter()
                .map(|i| {
                    let (qualifier, field) = schema.qualified_field(i);
                    let shown = match qualifier {
                        Some(q) => format!("{q}.{}", field.name()),
                        None => field.name().clone(),
                    };
                    (i, shown)
                })
                .collect(),
        }),
        None => Ok(()),
    }
}

/// Where the query's `name` (in double quotes, with capitals) is a source or table of `known`
/// but for case: how to write it.
fn folded_name(name: &str, known: &[String]) -> String {
    match known
        .iter()
        .find(|k| k.as_str() != name && k.eq_ignore_ascii_case(name))
    {
        Some(k) => format!(
            ". The query reads the pipeline's sources and tables by their names folded to \
             lower case, as SQL reads a table's name: write `{name}` without double quotes, \
             or `\"{k}\"`"
        ),
        None => String::new(),
    }
}

/// Refuses (`PlanError::Function`) a query whose physical plan `physical` has an aggregate
/// function that cannot run on its arguments' types (DataFusion's `approx_distinct` of a
/// double: "Support for 'approx_distinct' for data type Float64 is not implemented"), which
/// DataFusion says only when the first batch's rows reach it: each aggregate's accumulators
/// are made once here, before a batch is logged.
pub fn check_accumulators(
    physical: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
) -> Result<(), PlanError> {
    use datafusion::physical_plan::aggregates::AggregateExec;
    let mut refused = None;
    let _ = physical.apply(|node| {
        let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
            return Ok(TreeNodeRecursion::Continue);
        };
        for function in aggregate.aggr_expr() {
            // DataFusion 55's grouped `bit_xor(DISTINCT v)` keeps a state of a type its
            // schema does not say, and fails every batch in Arrow's words (audit 92c).
            if function.fun().name() == "bit_xor"
                && function.is_distinct()
                && !aggregate.group_expr().is_empty()
            {
                refused = Some(PlanError::Function {
                    call: function.name().to_string(),
                    reason: "fails on every batch where the query groups its rows (DataFusion \
                             55's grouped `bit_xor(DISTINCT ...)` keeps a state of another type \
                             than it says): take the distinct values first, `SELECT k, \
                             bit_xor(v) FROM (SELECT DISTINCT k, v FROM s) GROUP BY k`"
                        .to_string(),
                });
                return Ok(TreeNodeRecursion::Stop);
            }
            let made = function.create_accumulator().and_then(|_| {
                if function.groups_accumulator_supported() {
                    function.create_groups_accumulator().map(|_| ())
                } else {
                    Ok(())
                }
            });
            if let Err(e) = made {
                refused = Some(PlanError::Function {
                    call: function.name().to_string(),
                    reason: format!(
                        "does not run on the type of what it is given: {}; cast its argument \
                         to a type it takes (`CAST(x AS BIGINT)`, `CAST(x AS VARCHAR)`)",
                        e.strip_backtrace()
                    ),
                });
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    refused.map_or(Ok(()), Err)
}

/// Refuses (`PlanError::Unsupported`) a stateful query whose state, kept between batches in
/// Parquet files, holds a column Parquet cannot hold (an interval of months, days and
/// nanoseconds): an aggregation's group keys and its aggregates' partial states (`max` of an
/// interval), or the rows a join of two streams keeps (`join`). Otherwise the first batch
/// wrote its output, then failed writing its state, at every run (audit 92c).
pub fn check_state_storable(
    physical: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    join: bool,
) -> Result<(), PlanError> {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::aggregates::AggregateExec;
    // The first field Parquet does not write, and its error: found by writing one null row
    // of each into memory (Arrow's writer takes an interval's schema, and fails on its rows).
    let unstorable = |fields: Vec<datafusion::arrow::datatypes::FieldRef>| {
        fields.into_iter().find_map(|field| {
            let field = Arc::new(field.as_ref().clone().with_nullable(true));
            let schema = Arc::new(Schema::new(vec![Arc::clone(&field)]));
            let column = datafusion::arrow::array::new_null_array(field.data_type(), 1);
            let written = datafusion::arrow::record_batch::RecordBatch::try_new(
                Arc::clone(&schema),
                vec![column],
            )
            .map_err(|e| e.to_string())
            .and_then(|row| {
                let mut writer =
                    datafusion::parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, None)
                        .map_err(|e| e.to_string())?;
                writer.write(&row).map_err(|e| e.to_string())?;
                writer.close().map(|_| ()).map_err(|e| e.to_string())
            });
            written.err().map(|e| {
                (
                    format!(
                        "`{}` ({})",
                        field.name(),
                        crate::format::sql_type_name(field.data_type())
                    ),
                    e,
                )
            })
        })
    };
    let mut refused = None;
    let _ = physical.apply(|node| {
        let found = if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
            let input = aggregate.input_schema();
            let mut fields: Vec<datafusion::arrow::datatypes::FieldRef> = Vec::new();
            for (expr, name) in aggregate.group_expr().expr() {
                if let Ok(data_type) = expr.data_type(&input) {
                    fields.push(Arc::new(Field::new(name, data_type, true)));
                }
            }
            for function in aggregate.aggr_expr() {
                fields.extend(function.state_fields().unwrap_or_default());
            }
            unstorable(fields).map(|found| ("an aggregation's state", found))
        } else if join && node.children().len() == 2 && node.name().contains("Join") {
            node.children()
                .iter()
                .find_map(|side| unstorable(side.schema().fields().iter().cloned().collect()))
                .map(|found| ("the rows a join of two streams keeps", found))
        } else {
            None
        };
        match found {
            Some((what, (column, error))) => {
                refused = Some(PlanError::Unsupported {
                    operator: format!("a query whose state holds {column}"),
                    reason: format!(
                        "cannot keep it between batches: {what} is kept in Parquet files, which \
                         cannot hold that type ({error}). Keep it as a type Parquet holds \
                         inside the query: an interval as a number of seconds to aggregate it \
                         (`max(date_part('epoch', i))`), or as text to group by it \
                         (`CAST(i AS VARCHAR)`)"
                    ),
                });
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    refused.map_or(Ok(()), Err)
}

/// Why a query cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// DataFusion refused the SQL.
    #[error("the query does not plan: {}{}", sql_text(.0), sql_advice(.0))]
    Sql(DataFusionError),
    /// The query calls Spark's functions that DataFusion names otherwise: more than one, or
    /// its `window` (said with the call's own arguments).
    #[error(
        "the query does not plan: {}{}",
        sql_text(.error),
        spark_advice(.calls, .window.as_deref())
    )]
    SparkFunctions {
        /// DataFusion's error, for the first of them.
        error: DataFusionError,
        /// Each Spark function called, with what DataFusion writes.
        calls: Vec<(&'static str, &'static str)>,
        /// The form of the query's own call of Spark's `window`, where it calls one.
        window: Option<String>,
    },
    /// The query calls other engines' functions that DataFusion names otherwise or does
    /// without (DuckDB's, Flink's, statistics), more than one: each said.
    #[error("the query does not plan: {} ({})", sql_text(.error), .said.join("; "))]
    Functions {
        /// DataFusion's error, for the first of them.
        error: DataFusionError,
        /// What each is written as here.
        said: Vec<String>,
    },
    /// The SQL does not plan where it is written as Flink SQL writes a streaming construct
    /// (a window table function, `EMIT`, a temporal join): with Sluice's way of writing it.
    #[error("the query does not plan: {} ({advice})", without_guess(&sql_text(.error)))]
    Flink {
        /// DataFusion's error.
        error: DataFusionError,
        /// What Sluice writes instead.
        advice: String,
    },
    /// A struct column named by an SQL keyword, its field taken with a dot (`user.id`): the
    /// word is read as the keyword (the function `user`), not the column.
    #[error(
        "the query does not plan: {error} (`{word}` is an SQL keyword, so `{word}.` does not \
         name the column: write the column in double quotes and its field in brackets, \
         `\"{word}\"['field']`)"
    )]
    KeywordStruct {
        /// DataFusion's error.
        error: DataFusionError,
        /// The keyword, as the query writes it.
        word: String,
    },
    /// The SQL does not parse where it names a column by an SQL keyword (a Kafka source's
    /// `offset`, `partition`, `timestamp`), which must be quoted.
    #[error(
        "the query does not plan: {error} (`{word}` is an SQL keyword and a column of `{table}`: \
         write the column in double quotes, `\"{word}\"`, as in `SELECT \"{word}\" FROM {table}`)"
    )]
    Keyword {
        /// The parser's error.
        error: DataFusionError,
        /// The keyword, as the column names it.
        word: String,
        /// A source or table that has such a column.
        table: String,
    },
    /// Two of the query's output columns have one name (`SELECT t2.id, t1.id`), which
    /// DataFusion allows where their tables differ, and a sink cannot write.
    #[error(
        "the query's output has {} columns named `{name}` ({}): a sink writes each column \
         under its name, so one would hide the other (a JSON reader keeps the last, Sluice's \
         files source too; Parquet readers and DuckDB refuse the file; Spark refuses it as \
         \"duplicate column(s)\"). Name each with `AS` (`{} AS {name}_1`)",
        columns.len(),
        columns.iter().map(|(i, c)| format!("column {} is `{c}`", i + 1)).collect::<Vec<_>>().join(", "),
        columns.get(1).map_or(name.as_str(), |(_, c)| c.as_str())
    )]
    DuplicateColumns {
        /// The name.
        name: String,
        /// Each column of that name: its 0-based position and its qualified name.
        columns: Vec<(usize, String)>,
    },
    /// The query has an expression DataFusion's SQL parser reads otherwise than SQL does
    /// (`a IS NOT DISTINCT FROM b AND c` as `a IS NOT DISTINCT FROM (b AND c)`).
    #[error(
        "the query has `{read_as}` where SQL reads `{meant}`: DataFusion's SQL parser (sqlparser \
         0.62) reads everything after `IS [NOT] DISTINCT FROM` into its right side, the `AND`s \
         and `OR`s that follow too (apache/datafusion-sqlparser-rs#2436, fixed in later \
         versions), which would change what the query computes without an error. Write the \
         comparison in parentheses: `{meant}`"
    )]
    Misread {
        /// What the parser made of it, with its parentheses.
        read_as: String,
        /// What PostgreSQL, Spark and DuckDB read, with parentheses that keep it so.
        meant: String,
    },
    /// The query reads a table that is neither a source nor a table of the pipeline.
    #[error(
        "the query reads `{name}`, which is not a source or table of the pipeline (it has: \
         {}){}",
        known.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
        file_as_table(name) + &folded_name(name, known)
    )]
    UnknownTable {
        /// The name the query used.
        name: String,
        /// The sources and tables there are.
        known: Vec<String>,
    },
    /// The query has an operator Sluice cannot run over a stream (there).
    #[error("the query cannot run as a stream: {operator} {reason}")]
    Unsupported {
        /// The operator at fault, as a person would name it.
        operator: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// The output mode cannot carry the query's results.
    #[error(
        "output_mode `{mode}` cannot run {operator}: {reason}. Output modes that work: {works}"
    )]
    Mode {
        /// The output mode chosen.
        mode: &'static str,
        /// The operator at fault.
        operator: String,
        /// Why.
        reason: String,
        /// The modes that would work.
        works: &'static str,
    },
    /// The query calls a function in a way that would not do what its words say (Spark's
    /// pattern letters given to DataFusion's `date_format`).
    #[error("the query calls `{call}`, which {reason}")]
    Function {
        /// The call, as the query writes it.
        call: String,
        /// What it would do instead, and what to write.
        reason: String,
    },
    /// The query divides by a literal zero (`v / 0`, `v % 0`), which fails on every row.
    #[error(
        "the query divides by zero ({}): the batch would fail on its first row, as in \
         PostgreSQL and Spark (DuckDB gives null). For null there, divide by `NULLIF(b, 0)`; \
         for a fraction, by a double (`v / 0.0` is infinity)",
        .0.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
    )]
    ZeroDivisor(Vec<String>),
    /// The query calls a function whose result changes on every call.
    #[error(
        "the query calls `{function}()`, whose result differs on every run, so a replayed batch would not \
         reproduce its output; remove it"
    )]
    Volatile {
        /// The function.
        function: String,
    },
}

pub use crate::vocab::{default_settings, fingerprint};

/// A session for running batches with `settings`, without a memory limit.
pub fn session(settings: &PinnedSettings) -> SessionContext {
    session_with_memory(settings, None)
}

/// A session for running batches with `settings` whose sorts, aggregations and joins take at
/// most `memory_limit` bytes between them before they spill to disk (DataFusion's
/// `FairSpillPool`, spilling to the system's temporary folder); no limit where `None`.
pub fn session_with_memory(
    settings: &PinnedSettings,
    memory_limit: Option<usize>,
) -> SessionContext {
    session_built_with(settings, memory_limit, |builder| builder)
}

/// [`session_with_memory`], with `finish` adding to the state's builder last (the distributed
/// planner of `engine: distributed`).
pub fn session_built_with(
    settings: &PinnedSettings,
    memory_limit: Option<usize>,
    finish: impl FnOnce(SessionStateBuilder) -> SessionStateBuilder,
) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(settings.target_partitions.max(1))
        .with_batch_size(settings.batch_size.max(1))
        .with_round_robin_repartition(false)
        .with_repartition_joins(false)
        .with_information_schema(false);
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    // A streaming aggregation runs DataFusion's two phases apart (partial state per batch,
    // merged with the stored state, finalized to emit), so the plan must keep them apart:
    // no rewriting of `count(DISTINCT x)` into two aggregations, no fusing of the phases, and
    // no answering an aggregation from the statistics of its input: a batch's table knows its
    // own row count exactly, so `aggregate_statistics` would replace `count(*)` (alone, no
    // WHERE) by that batch's count, a literal over a placeholder row, and both phases vanish.
    let logical_rules = Optimizer::new()
        .rules
        .into_iter()
        .filter(|rule| rule.name() != "single_distinct_aggregation_to_group_by")
        .collect();
    // Nor DataFusion 55's physical filter pushdown (both its phases: filters, and the dynamic
    // filters of joins and TopK): it finds a filter's columns in a child by name, so over a
    // join whose sides share column names (`v.id`, `b.id`) it can push a filter that reads
    // both sides into one, giving wrong rows (apache/datafusion#21246 and #25244, fixed by
    // #25259 after 55). The logical optimizer still pushes each filter down by qualified
    // column, into the scans.
    let physical_rules = PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|rule| {
            !matches!(
                rule.name(),
                "CombinePartialFinalAggregate"
                    | "aggregate_statistics"
                    | "FilterPushdown"
                    | "FilterPushdown(Post)"
            )
        })
        .collect();
    let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(
            datafusion::execution::memory_pool::FairSpillPool::new(limit),
        ));
    }
    let runtime = runtime
        .build_arc()
        .expect("a runtime of a memory pool and the default disk manager builds");
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_optimizer_rules(logical_rules)
        .with_physical_optimizer_rules(physical_rules)
        .with_analyzer_rule(Arc::new(overflow::CheckedIntegerArithmetic))
        .with_analyzer_rule(Arc::new(float_keys::NormalizeFloatKeys));
    let state = finish(builder).build();
    let ctx = SessionContext::new_with_state(state);
    register_sluice_functions(&ctx);
    ctx
}

/// Registers in `ctx` (after DataFusion's defaults) the functions a query may name: Sluice's
/// own ([`register_functions`]), the JSON functions of `datafusion-functions-json`, and the
/// checked `sum` and the grouped `first_value` and `last_value` ([`first_last`]), which
/// replace DataFusion's.
pub fn register_sluice_functions(ctx: &SessionContext) {
    register_functions(ctx);
    // JSON text's functions (datafusion-contrib's `datafusion-functions-json`):
    // `json_as_text(payload, 'sku')`, `payload->>'sku'` (walk 74: none could be read).
    if let Err(e) = datafusion_functions_json::register_all(&mut *ctx.state_ref().write()) {
        tracing::warn!("the JSON functions are not available: {e}");
    }
    ctx.register_udaf(overflow::CheckedSum::udaf());
    // Found by name where a plan is run elsewhere (a `sluice worker`).
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(
        float_keys::NormalizeNanAndZero::new(),
    ));
    ctx.register_udaf(first_last::FirstLast::first_value());
    ctx.register_udaf(first_last::FirstLast::last_value());
    ctx.register_udaf(min_max::MinMaxFloat::min());
    ctx.register_udaf(min_max::MinMaxFloat::max());
}

/// `plan` with each uncorrelated scalar subquery (`WHERE v > (SELECT avg(x) FROM t)`) computed
/// in `state` and written in as its value: a stateful operator runs parts of the batch's plan
/// on their own (an aggregation's partial phase, a join's sides), where DataFusion's
/// `ScalarSubqueryExec`, above them, would not have computed the value yet. Such a subquery
/// reads no stream (that is refused at planning), so its value is the same for the whole
/// batch. Each expression keeps its name.
///
/// Errors: DataFusion's, computing a subquery; a subquery that gives more than one row (as
/// DataFusion, PostgreSQL and Spark refuse it).
pub async fn inline_scalar_subqueries(
    state: &SessionState,
    plan: LogicalPlan,
) -> Result<LogicalPlan, DataFusionError> {
    use datafusion::common::ScalarValue;
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::Subquery;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    let mut found: Vec<Subquery> = Vec::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarSubquery(q) = e
                    && q.outer_ref_columns.is_empty()
                    && !found.contains(q)
                {
                    found.push(q.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    if found.is_empty() {
        return Ok(plan);
    }
    let mut values: Vec<(Subquery, ScalarValue)> = Vec::with_capacity(found.len());
    for q in found {
        let batches =
            datafusion::dataframe::DataFrame::new(state.clone(), q.subquery.as_ref().clone())
                .collect()
                .await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let value = match batches.iter().find(|b| b.num_rows() > 0) {
            _ if rows > 1 => {
                return Err(DataFusionError::Execution(format!(
                    "the scalar subquery `{}` gives {rows} rows, where it may give one at most",
                    q.subquery
                        .display_indent()
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or("")
                )));
            }
            Some(batch) => ScalarValue::try_from_array(batch.column(0), 0)?,
            None => ScalarValue::try_from(q.subquery.schema().field(0).data_type())?,
        };
        values.push((q, value));
    }
    // From the top down, so that a subquery is matched as found, before one inside it is
    // written in (its value holds the inner one's).
    plan.transform_down_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let name = names.save(&expr);
            expr.transform_down(|e| match e {
                Expr::ScalarSubquery(q) => match values.iter().find(|(v, _)| *v == q) {
                    Some((_, value)) => Ok(Transformed::new(
                        Expr::Literal(value.clone(), None),
                        true,
                        TreeNodeRecursion::Jump,
                    )),
                    None => Ok(Transformed::no(Expr::ScalarSubquery(q))),
                },
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// Plans `sql` in `ctx` with `now()` fixed to `batch_timestamp_ms`.
pub async fn plan_batch(
    ctx: &SessionContext,
    sql: &str,
    batch_timestamp_ms: i64,
) -> Result<(SessionState, LogicalPlan), PlanError> {
    let mut state = ctx.state();
    state.execution_props_mut().query_execution_start_time =
        chrono::DateTime::from_timestamp_millis(batch_timestamp_ms);
    let plan = match state.create_logical_plan(sql).await {
        Ok(plan) => plan,
        Err(e) => {
            // DataFusion names a missing table with its catalog and schema; say which exist.
            let text = e.to_string();
            if let Some(name) = text
                .split("table '")
                .nth(1)
                .and_then(|rest| rest.split("' not found").next())
                .filter(|_| text.contains("' not found"))
            {
                // `datafusion.public.clicks`, or a file's path (`in/a.json`) with its dots.
                let name = name
                    .strip_prefix("datafusion.public.")
                    .unwrap_or(name)
                    .to_string();
                let mut known: Vec<String> = ctx
                    .catalog("datafusion")
                    .and_then(|c| c.schema("public"))
                    .map(|s| s.table_names())
                    .unwrap_or_default();
                known.sort();
                return Err(PlanError::UnknownTable { name, known });
            }
            if let Some((word, table)) = keyword_column(ctx, sql, &text).await {
                return Err(PlanError::Keyword {
                    error: e,
                    word,
                    table,
                });
            }
            if let Some(advice) = flink_advice(sql) {
                return Err(PlanError::Flink { error: e, advice });
            }
            // Spark's `window.start` of a `GROUP BY window(ts, ...)`, which fails on the
            // column before the call (walk 112: no word of `window`'s form).
            let lower = text.to_ascii_lowercase();
            if (lower.contains("no field named window.start")
                || lower.contains("no field named window.end"))
                && let Some(window) = spark_window(sql)
                && let Some(&call) = SPARK_FUNCTIONS.iter().find(|(n, _)| *n == "window")
            {
                return Err(PlanError::SparkFunctions {
                    error: e,
                    calls: vec![call],
                    window: Some(window),
                });
            }
            // Walk 67: `user.id` was advised `col['field']`, which `user['id']` fails too.
            if text.contains("Dot access not supported")
                && let Some(word) = keyword_before_dot(sql)
            {
                return Err(PlanError::KeywordStruct { error: e, word });
            }
            // DataFusion stops at the first unknown function; where that is a Spark one, name
            // every Spark one called that the session does not have (by the SQL's text, so
            // `= ANY (...)` and a name in a string may be taken for calls: those it has).
            let unknown = text
                .split("Invalid function '")
                .nth(1)
                .and_then(|rest| rest.split('\'').next());
            if unknown.is_some_and(|name| {
                SPARK_FUNCTIONS
                    .iter()
                    .any(|(spark, _)| name.eq_ignore_ascii_case(spark))
            }) {
                let calls: Vec<(&'static str, &'static str)> = spark_calls(sql)
                    .into_iter()
                    .filter(|(spark, _)| {
                        use datafusion::execution::FunctionRegistry as _;
                        *spark != "any" && ctx.udf(spark).is_err() && ctx.udaf(spark).is_err()
                    })
                    .collect();
                // Spark's `window` said with the query's own size and slide (walk 96: a fixed
                // form of 1 minute, copied as shown, made windows of another size).
                let window = calls
                    .iter()
                    .any(|(spark, _)| *spark == "window")
                    .then(|| spark_window(sql))
                    .flatten();
                // Another engine's name beside them: each said by the general way below.
                let others = other_engine_calls(sql)
                    .into_iter()
                    .any(|called| function_advice(called).is_some());
                if (calls.len() > 1 || window.is_some()) && !others {
                    return Err(PlanError::SparkFunctions {
                        error: e,
                        calls,
                        window,
                    });
                }
            }
            // The same for DuckDB's and Flink's names, and the statistics (walk 104: of
            // `arg_max` and `max_by`, the first alone was named).
            if let Some(name) = unknown
                && (function_advice(name).is_some()
                    || SPARK_FUNCTIONS
                        .iter()
                        .any(|(spark, _)| name.eq_ignore_ascii_case(spark)))
            {
                use datafusion::execution::FunctionRegistry as _;
                // Not Spark's `any` (`= ANY (...)` reads as a call of it), as above.
                let said: Vec<String> = other_engine_calls(sql)
                    .into_iter()
                    .filter(|called| {
                        *called != "any" && ctx.udf(called).is_err() && ctx.udaf(called).is_err()
                    })
                    .filter_map(|called| {
                        function_advice(called).or_else(|| {
                            SPARK_FUNCTIONS
                                .iter()
                                .find(|(spark, _)| *spark == called)
                                .map(|call| {
                                    // `window` with the query's own size and slide.
                                    let window =
                                        (called == "window").then(|| spark_window(sql)).flatten();
                                    let said = spark_advice(&[*call], window.as_deref());
                                    said.trim_start_matches(" (")
                                        .trim_end_matches(')')
                                        .to_string()
                                })
                        })
                    })
                    .collect();
                if said.len() > 1 {
                    return Err(PlanError::Functions { error: e, said });
                }
            }
            return Err(PlanError::Sql(e));
        }
    };
    Ok((state, plan))
}

/// Whether `plan` has a `DISTINCT ON (keys)` over one of `streams` whose `ORDER BY` sorts by
/// more than its keys (`ORDER BY k, ts DESC`): the row it keeps is picked by that order, among
/// a batch's rows (one over a static table reads it whole: walk 104 (4)).
pub fn distinct_on_orders(plan: &LogicalPlan, streams: &BTreeSet<String>) -> bool {
    let mut orders = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Distinct(datafusion::logical_expr::Distinct::On(on)) = node
            && reads_stream(&on.input, streams)
            && on
                .sort_expr
                .as_ref()
                .is_some_and(|sort| sort.iter().any(|s| !on.on_expr.contains(&s.expr)))
        {
            orders = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    orders
}

/// The conditions of `plan` on an aggregation's results (`HAVING max(v) < 50`) or on the rows
/// a `DISTINCT ON` keeps (`WHERE op <> 'd'` over it): filters whose input is one, through
/// projections and aliases, each as DataFusion writes it, with whether it is over a `DISTINCT
/// ON`.
pub fn having_conditions(plan: &LogicalPlan) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Filter(filter) = node {
            let mut input = filter.input.as_ref();
            while let LogicalPlan::Projection(datafusion::logical_expr::Projection {
                input: inner,
                ..
            })
            | LogicalPlan::SubqueryAlias(datafusion::logical_expr::SubqueryAlias {
                input: inner,
                ..
            }) = input
            {
                input = inner.as_ref();
            }
            match input {
                LogicalPlan::Aggregate(_) => {
                    found.push((filter.predicate.human_display().to_string(), false));
                }
                LogicalPlan::Distinct(datafusion::logical_expr::Distinct::On(_)) => {
                    found.push((filter.predicate.human_display().to_string(), true));
                }
                _ => {}
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// `error` with a function named as query text `sql` calls it: DataFusion's `to_char` and
/// `date_format` are one function, which the plan names `to_char`, and the advice for Spark's
/// pattern letters names it `date_format`; a query that wrote `to_char` only reads that.
fn as_written(error: PlanError, sql: &str) -> PlanError {
    match error {
        PlanError::Function { call, reason }
            if call.starts_with("date_format(")
                && mentions_word(sql, "to_char")
                && !mentions_word(sql, "date_format") =>
        {
            PlanError::Function {
                call: call.replacen("date_format(", "to_char(", 1),
                reason: reason.replace("`date_format(", "`to_char("),
            }
        }
        other => other,
    }
}

/// The tokens of query text `sql` but its spaces, for matching its words: an unquoted word in
/// upper case, `(` as itself, any other token (a quoted name, a string, an operator) as an
/// empty string. `None` where `sql` does not tokenize.
fn sql_words(sql: &str) -> Option<Vec<String>> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    Some(
        tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .map(|t| match t {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                Token::LParen => "(".to_string(),
                _ => String::new(),
            })
            .collect(),
    )
}

/// The first unquoted SQL keyword of `sql` followed by a `.` (`user.id`), as written.
fn keyword_before_dot(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    tokens.windows(2).find_map(|pair| match pair {
        [Token::Word(w), Token::Period]
            if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword =>
        {
            Some(w.value.clone())
        }
        _ => None,
    })
}

/// `text` without DataFusion's guess at the function meant (`Did you mean 'date_part'?` for
/// `TUMBLE_START`), where Sluice's own advice follows (walk 62: the guess came first and led
/// astray).
fn without_guess(text: &str) -> String {
    match text.find("Did you mean '") {
        Some(at) => {
            let rest = &text[at..];
            let end = rest.find("'?").map_or(rest.len(), |e| e + 2);
            format!("{}{}", &text[..at], &rest[end..])
                .trim_end()
                .to_string()
        }
        None => text.to_string(),
    }
}

/// What Sluice writes for the Flink SQL streaming constructs `sql` uses (found by its words,
/// outside quotes), for a query that did not plan: window table functions (`TUMBLE`, `HOP`,
/// `SESSION`, `CUMULATE`, and the `TUMBLE_START` family), `EMIT`, a temporal join (`FOR
/// SYSTEM_TIME AS OF`), `PROCTIME()`. `None` where it uses none.
fn flink_advice(sql: &str) -> Option<String> {
    let words = sql_words(sql)?;
    let called = |name: &str| words.windows(2).any(|w| w[0] == name && w[1] == "(");
    let any_called = |names: &[&str]| names.iter().any(|n| called(n));
    let mut advice = Vec::new();
    // Sluice's own `hop(ts, slide, size)` is a call too: the window table function's form
    // has `DESCRIPTOR` or `TABLE` in it.
    let table_function = words.iter().any(|w| w == "DESCRIPTOR")
        || words.windows(2).any(|w| w[0] == "TABLE" && w[1] == "(");
    if any_called(&["TUMBLE", "TUMBLE_START", "TUMBLE_END", "TUMBLE_ROWTIME"]) {
        advice.push(
            "Flink's TUMBLE window is `date_bin(INTERVAL '1 minute', ts)` here, in the SELECT \
             and the GROUP BY (`SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, \
             count(*) FROM s GROUP BY 1`; the window ends at its start plus the size)",
        );
    }
    if any_called(&["HOP_START", "HOP_END", "HOP_ROWTIME"]) || (called("HOP") && table_function) {
        advice.push(
            "Flink's HOP window is `unnest(hop(ts, slide, size))` here, one row per window a \
             row is in (`SELECT w, count(*) FROM (SELECT unnest(hop(ts, INTERVAL '1 minute', \
             INTERVAL '5 minutes')) AS w FROM s) GROUP BY w`)",
        );
    }
    if any_called(&["SESSION", "SESSION_START", "SESSION_END", "SESSION_ROWTIME"]) {
        advice.push(
            "Flink's SESSION window is `session_window(ts, INTERVAL '30 seconds')` here, in the \
             SELECT and the GROUP BY",
        );
    }
    if called("CUMULATE") {
        advice.push(
            "Flink's CUMULATE window has no form here: a running total within each window is \
             an update-mode aggregation grouped by the window's `date_bin` (each batch writes \
             the window's total so far)",
        );
    }
    if words.windows(2).any(|w| {
        w[0] == "EMIT" && ["CHANGES", "FINAL", "WITH", "AFTER", "ON"].contains(&w[1].as_str())
    }) {
        advice.push(
            "there is no EMIT clause: the pipeline's `output_mode:` says what is written \
             (`append`: each row once, final; `update`: the rows a batch changed; `complete`: \
             the whole result)",
        );
    }
    if words
        .windows(3)
        .any(|w| w[0] == "FOR" && w[1] == "SYSTEM_TIME" && w[2] == "AS")
    {
        advice.push(
            "a temporal (lookup) join is a join with a static table here: declare it under \
             `tables:` (read whole when the run starts) and join it without `FOR SYSTEM_TIME \
             AS OF ...`",
        );
    }
    if called("CURRENT_WATERMARK") {
        advice.push(
            "Flink's CURRENT_WATERMARK has no form here: a source's watermark is declared in \
             the pipeline file (`watermark: { column: ts, delay: 5s }`), and rows behind it are \
             what windows, joins and deduplications drop as late; a `late_rows:` sink keeps \
             them, and `inspect` shows the watermark",
        );
    }
    if words
        .windows(2)
        .any(|w| w[0] == "WATERMARK" && w[1] == "FOR")
    {
        advice.push(
            "a watermark is declared on the source in the pipeline file, not in SQL DDL: \
             `sources: { c: { ..., watermark: { column: ts, delay: 5s } } }`, and `query:` is \
             one SELECT over the sources by name",
        );
    }
    if called("PROCTIME") {
        advice.push(
            "processing time is the batch's timestamp here: `now()` (logged with the batch, so \
             a replay sees the same)",
        );
    }
    (!advice.is_empty()).then(|| advice.join("; "))
}

/// Where `sql` does not parse (parser error `text`) and an unquoted SQL keyword in it, at or
/// before the place the parser stopped (`at Line: 1, Column: 30`), names a column of a source
/// or table in `ctx` (a Kafka source's `offset`, `partition`, `timestamp`): that column's
/// name and that source or table (the keyword nearest the place first, the first table by
/// name). The parser may stop past the keyword (`SELECT partition, offset FROM k` stops at
/// `k`, `OFFSET` having ended the column list).
async fn keyword_column(ctx: &SessionContext, sql: &str, text: &str) -> Option<(String, String)> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !text.contains("ParserError") {
        return None;
    }
    let at = text.split("at Line: ").nth(1).and_then(|rest| {
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((
            line.trim().parse::<u64>().ok()?,
            column.parse::<u64>().ok()?,
        ))
    });
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    // Byte offsets of each line's start, to find a token's text by its 1-based location.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let rest = sql.get(start..)?;
        let chars = usize::try_from(column).ok()?.checked_sub(1)?;
        Some(
            start
                + rest
                    .char_indices()
                    .nth(chars)
                    .map_or(rest.len(), |(i, _)| i),
        )
    };
    let schema = ctx.catalog("datafusion")?.schema("public")?;
    let mut names = schema.table_names();
    names.sort();
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        if let Ok(Some(table)) = schema.table(&name).await {
            tables.push((name, table.schema()));
        }
    }
    let column_of = |word: &str| {
        tables.iter().find_map(|(name, columns)| {
            columns
                .fields()
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(word))
                .map(|f| (f.name().clone(), name.clone()))
        })
    };
    // Unquoted keywords up to the place the parser stopped that name a column, with where
    // they are written (byte offsets).
    let candidates: Vec<((String, String), (usize, usize))> = tokens
        .iter()
        .filter(|t| at.is_none_or(|at| (t.span.start.line, t.span.start.column) <= at))
        .filter_map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => {
                let found = column_of(&w.value)?;
                let from = offset(t.span.start.line, t.span.start.column)?;
                let to = offset(t.span.end.line, t.span.end.column)?;
                Some((found, (from, to)))
            }
            _ => None,
        })
        .collect();
    // They are the fault only where the query parses with them in double quotes (`SELECT id
    // FRM t` is a typo of FROM, whatever `id` is).
    let mut quoted = sql.to_string();
    for (_, (from, to)) in candidates.iter().rev() {
        quoted.replace_range(*from..*to, &format!("\"{}\"", &sql[*from..*to]));
    }
    if datafusion::sql::parser::DFParser::parse_sql(&quoted).is_err() {
        return None;
    }
    candidates.last().map(|(found, _)| found.clone())
}

/// The first `a IS [NOT] DISTINCT FROM b <op> c` of query text `sql` whose right side the
/// parser took past `b` (an `AND`, `OR`, `XOR` or `IS ...` that binds looser than `IS` in
/// PostgreSQL, and follows it unparenthesized): `(read as, meant)`. sqlparser 0.62 parses
/// the right side of `IS [NOT] DISTINCT FROM` as a whole expression (audit 92a: Flink's
/// `testRowTimeInnerJoinWithIsNotDistinctFrom` read its join's time bound into the key).
fn distinct_from_misread(sql: &str) -> Option<PlanError> {
    use datafusion::sql::sqlparser::ast::Expr as Sql;
    /// The leftmost operand of `expr` through the operators that bind looser than `IS`
    /// (`AND`, `OR`, `XOR`, and the `IS ...` tests), with what follows it, in order.
    fn leftmost(expr: &Sql) -> (String, Vec<String>) {
        use datafusion::sql::sqlparser::ast::BinaryOperator;
        let (inner, after) = match expr {
            Sql::BinaryOp {
                left,
                op: op @ (BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor),
                right,
            } => (left, format!("{op} {right}")),
            Sql::IsNull(inner) => (inner, "IS NULL".into()),
            Sql::IsNotNull(inner) => (inner, "IS NOT NULL".into()),
            Sql::IsTrue(inner) => (inner, "IS TRUE".into()),
            Sql::IsNotTrue(inner) => (inner, "IS NOT TRUE".into()),
            Sql::IsFalse(inner) => (inner, "IS FALSE".into()),
            Sql::IsNotFalse(inner) => (inner, "IS NOT FALSE".into()),
            Sql::IsUnknown(inner) => (inner, "IS UNKNOWN".into()),
            Sql::IsNotUnknown(inner) => (inner, "IS NOT UNKNOWN".into()),
            other => return (other.to_string(), Vec::new()),
        };
        let (first, mut rest) = leftmost(inner);
        rest.push(after);
        (first, rest)
    }
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
    let statements = DFParser::parse_sql(sql).ok()?;
    let mut found = None;
    for statement in &statements {
        let Statement::Statement(s) = statement else {
            continue;
        };
        let _ = visit_expressions(s.as_ref(), |expr| {
            let (left, right, op) = match expr {
                SqlExpr::IsDistinctFrom(l, r) => (l, r, "IS DISTINCT FROM"),
                SqlExpr::IsNotDistinctFrom(l, r) => (l, r, "IS NOT DISTINCT FROM"),
                _ => return std::ops::ControlFlow::Continue(()),
            };
            // The right side's leftmost operand, where the parser took more than it, and
            // what follows it (`b AND c AND d`: `b`, then `AND c`, `AND d`; the review).
            let (first, rest) = leftmost(right);
            if rest.is_empty() {
                return std::ops::ControlFlow::Continue(());
            }
            found = Some(PlanError::Misread {
                read_as: format!("{left} {op} ({right})"),
                meant: format!("({left} {op} {first}) {}", rest.join(" ")),
            });
            std::ops::ControlFlow::Break(())
        });
        if found.is_some() {
            break;
        }
    }
    found
}

/// The first `INTERSECT ALL` or `EXCEPT ALL` of query text `sql`, refused: DataFusion 55 plans
/// them as a semi or an anti join, which keeps (or removes) every copy of a left row the right
/// side holds at all, not as many copies as it holds (walk 98: `EXCEPT ALL` against a table
/// holding each key once gave 650 rows where PostgreSQL, DuckDB and Spark give 798, exit 0);
/// `None` where there is none.
fn bag_set_operation(sql: &str) -> Option<PlanError> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::{
        Query, SetExpr, SetOperator, SetQuantifier, Visit, Visitor,
    };
    /// The first such operation of a query's body, through nested set operations.
    fn first(body: &SetExpr) -> Option<SetOperator> {
        match body {
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let all = matches!(
                    set_quantifier,
                    SetQuantifier::All | SetQuantifier::AllByName
                );
                match op {
                    SetOperator::Intersect | SetOperator::Except if all => Some(*op),
                    _ => first(left).or_else(|| first(right)),
                }
            }
            _ => None,
        }
    }
    struct Found(Option<SetOperator>);
    impl Visitor for Found {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> std::ops::ControlFlow<()> {
            self.0 = first(&query.body);
            if self.0.is_some() {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        }
    }
    let statements = DFParser::parse_sql(sql).ok()?;
    let mut found = Found(None);
    for statement in &statements {
        if let Statement::Statement(s) = statement {
            let _ = s.visit(&mut found);
        }
    }
    let reason = match found.0? {
        SetOperator::Except => {
            "is computed by DataFusion as removing every copy of a row the right side holds at \
             all, not as many copies as it holds (PostgreSQL, DuckDB and Spark remove n \
             copies for n), so rows would be lost: write `EXCEPT` for the distinct rows, or \
             `WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.k IS NOT DISTINCT FROM s.k)` to drop \
             every row the other side holds (as EXCEPT, null keys equal)"
        }
        _ => {
            "is computed by DataFusion as keeping every copy of a left row the right side holds \
             at all, not the fewer of the two sides' counts (PostgreSQL, DuckDB and Spark), so \
             rows would be doubled: write `INTERSECT` for the distinct rows, or `WHERE EXISTS \
             (SELECT 1 FROM t WHERE t.k IS NOT DISTINCT FROM s.k)` to keep every left row the \
             other side holds (as INTERSECT, null keys equal)"
        }
    };
    Some(PlanError::Unsupported {
        operator: format!("`{} ALL`", found.0?.to_string().to_uppercase()),
        reason: reason.into(),
    })
}

/// What `sql` is where it is not one query (`INSERT INTO ...`, two statements); `None` for a
/// query, and for text that does not parse (planning names its error).
fn not_one_query(sql: &str) -> Option<String> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    let statements = DFParser::parse_sql(sql).ok()?;
    if statements.len() > 1 {
        return Some(format!("`query:` with {} statements", statements.len()));
    }
    let keyword = |text: String| {
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_uppercase()
    };
    match statements.front()? {
        Statement::Statement(s) if matches!(**s, Sql::Query(_)) => None,
        Statement::Statement(s) => Some(format!("`{} ...`", keyword(s.to_string()))),
        other => Some(format!("`{} ...`", keyword(other.to_string()))),
    }
}

/// The outermost `SELECT` of query text `sql` (through parenthesized queries); `None` for text
/// that does not parse, or whose outermost query is no `SELECT` (a `UNION`, say).
fn outermost_select(sql: &str) -> Option<Box<datafusion::sql::sqlparser::ast::Select>> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement as Sql};
    let statements = DFParser::parse_sql(sql).ok()?;
    let Statement::Statement(statement) = statements.front()? else {
        return None;
    };
    let Sql::Query(query) = &**statement else {
        return None;
    };
    let mut body = &*query.body;
    while let SetExpr::Query(inner) = body {
        body = &*inner.body;
    }
    let SetExpr::Select(select) = body else {
        return None;
    };
    Some(select.clone())
}

/// The names the output of `sql` gives the columns its outermost SELECT groups by (`GROUP
/// BY`, or `DISTINCT ON`), as a sink's `key:` lists them, and which of the two it is: a
/// position (`GROUP BY 1`), a selected expression (by its alias or column name) or a
/// selected alias. `None` where that SELECT groups by neither, or one of its group columns is
/// not selected under a name (then the refusal stays general). Read from the text alone, for
/// advice before the query is planned; planning checks the key itself.
pub(crate) fn grouping_output_names(sql: &str) -> Option<(&'static str, Vec<String>)> {
    use datafusion::sql::sqlparser::ast::{self as sql_ast, Distinct, GroupByExpr, SelectItem};
    let select = outermost_select(sql)?;
    let (what, groups) = match (&select.distinct, &select.group_by) {
        (Some(Distinct::On(columns)), _) => ("DISTINCT ON", columns),
        (_, GroupByExpr::Expressions(columns, _)) if !columns.is_empty() => ("GROUP BY", columns),
        _ => return None,
    };
    // DataFusion folds an unquoted name to lower case.
    let folded = |ident: &sql_ast::Ident| match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    };
    let selected = |item: &SelectItem| -> Option<(sql_ast::Expr, Option<String>)> {
        match item {
            SelectItem::ExprWithAlias { expr, alias } => Some((expr.clone(), Some(folded(alias)))),
            SelectItem::UnnamedExpr(expr) => {
                let name = match expr {
                    sql_ast::Expr::Identifier(ident) => Some(folded(ident)),
                    sql_ast::Expr::CompoundIdentifier(parts) => parts.last().map(folded),
                    _ => None,
                };
                Some((expr.clone(), name))
            }
            _ => None,
        }
    };
    let items: Vec<Option<(sql_ast::Expr, Option<String>)>> =
        select.projection.iter().map(selected).collect();
    let mut names = Vec::with_capacity(groups.len());
    for group in groups {
        let by_position = match group {
            sql_ast::Expr::Value(value) => match &value.value {
                sql_ast::Value::Number(n, _) => n.to_string().parse::<usize>().ok(),
                _ => None,
            },
            _ => None,
        };
        let name = match by_position {
            Some(position) => items.get(position.checked_sub(1)?)?.as_ref()?.1.clone(),
            None => items
                .iter()
                .flatten()
                .find(|(expr, _)| {
                    // Unquoted names fold to lower case (near enough for advice).
                    expr == group
                        || expr.to_string().to_lowercase() == group.to_string().to_lowercase()
                })
                .and_then(|(_, name)| name.clone())
                .or_else(|| match group {
                    sql_ast::Expr::Identifier(ident) => items
                        .iter()
                        .flatten()
                        .filter_map(|(_, name)| name.as_ref())
                        .find(|name| **name == folded(ident))
                        .cloned(),
                    _ => None,
                }),
        };
        names.push(name?);
    }
    Some((what, names))
}

/// Whether `sql` is an aggregation without `GROUP BY` (`SELECT count(*), sum(v) FROM s`):
/// one row, with no key, whatever the input. Judged from the text: a top-level `SELECT`
/// without `GROUP BY` or `DISTINCT` that calls one of DataFusion's aggregate functions.
pub(crate) fn is_global_aggregate(sql: &str) -> bool {
    use datafusion::sql::sqlparser::ast::GroupByExpr;
    let Some(select) = outermost_select(sql) else {
        return false;
    };
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if grouped || select.distinct.is_some() {
        return false;
    }
    let aggregates: Vec<String> =
        datafusion::functions_aggregate::all_default_aggregate_functions()
            .iter()
            .flat_map(|f| std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()))
            .map(|n| n.to_lowercase())
            .collect();
    select.projection.iter().any(|item| {
        let text = item.to_string().to_lowercase();
        aggregates.iter().any(|name| {
            text.match_indices(&format!("{name}(")).any(|(at, _)| {
                !text[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
    })
}

/// The name a source or table of the pipeline has in SQL, as DataFusion reads a table's name:
/// folded to lower case (`Orders` is `orders`), so that `FROM Orders` reads the source
/// `Orders`, as Spark and DuckDB read table names. Plans name their scans so, and whatever a
/// plan says of a stream (its watermark, its columns, its late rows) is matched with the
/// pipeline's source by this name (audit 92a: a source `T1`, scanned as `t1`, had its
/// watermark kept under `T1` and never found).
pub fn sql_name(name: &str) -> String {
    datafusion::common::TableReference::from(name)
        .table()
        .to_string()
}

/// The reference a source or table of the pipeline is registered under ([`sql_name`]).
pub fn table_name(name: &str) -> datafusion::common::TableReference {
    datafusion::common::TableReference::bare(sql_name(name))
}

/// Plans `sql` in `ctx` over empty tables for the `streams` (name and schema) and analyzes
/// what it keeps between batches. The shape names streams by their names in SQL
/// ([`sql_name`]).
pub async fn plan_shape(
    ctx: &SessionContext,
    sql: &str,
    streams: &[(String, SchemaRef)],
    watermarks: &std::collections::BTreeMap<String, String>,
    mode: crate::pipeline::OutputMode,
) -> Result<(SessionState, LogicalPlan, Shape), PlanError> {
    // Checked once, where a run validates its query, not for every batch.
    if let Some(what) = not_one_query(sql) {
        return Err(PlanError::Unsupported {
            operator: what,
            reason: "is not a query: `query:` is one SELECT (or WITH ... SELECT), and its rows \
                     go to the sink"
                .into(),
        });
    }
    if let Some(misread) = distinct_from_misread(sql) {
        return Err(misread);
    }
    if let Some(refused) = bag_set_operation(sql) {
        return Err(refused);
    }
    for (name, schema) in streams {
        let empty = datafusion::datasource::MemTable::try_new(Arc::clone(schema), vec![vec![]])
            .map_err(PlanError::Sql)?;
        ctx.deregister_table(table_name(name))
            .and_then(|_| ctx.register_table(table_name(name), Arc::new(empty)))
            .map_err(PlanError::Sql)?;
    }
    let (state, logical) = plan_batch(ctx, sql, 0).await?;
    // The plan's scans name each stream by its name in SQL: so does the shape.
    let names: BTreeSet<String> = streams.iter().map(|(n, _)| sql_name(n)).collect();
    let watermarks: std::collections::BTreeMap<String, String> = watermarks
        .iter()
        .map(|(stream, column)| (sql_name(stream), column.clone()))
        .collect();
    let shape = analyze(&logical, &names, &watermarks, mode).map_err(|e| as_written(e, sql))?;
    Ok((state, logical, shape))
}

/// Checks that `plan` runs batch by batch without state: stateful operators over a stream and
/// volatile functions are refused.
pub fn check_stateless(plan: &LogicalPlan, streams: &BTreeSet<String>) -> Result<(), PlanError> {
    check_not_volatile(plan)?;
    check_stateless_above(plan, streams, None)
}

/// Refuses a volatile function anywhere in `plan` (its subqueries too): a replayed batch would
/// not reproduce its output.
pub(crate) fn check_not_volatile(plan: &LogicalPlan) -> Result<(), PlanError> {
    let mut volatile = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility == Volatility::Volatile
                {
                    volatile = Some(f.func.name().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(match volatile {
            Some(_) => TreeNodeRecursion::Stop,
            None => TreeNodeRecursion::Continue,
        })
    })
    .map_err(PlanError::Sql)?;
    volatile.map_or(Ok(()), |function| Err(PlanError::Volatile { function }))
}

/// Stateful operators over a stream refused in `plan` without the subtree `below` (a node of
/// `plan`, kept as state of its own); volatile functions are [`check_not_volatile`]'s.
pub(crate) fn check_stateless_above(
    plan: &LogicalPlan,
    streams: &BTreeSet<String>,
    below: Option<&LogicalPlan>,
) -> Result<(), PlanError> {
    let mut problem = None;
    plan.apply_with_subqueries(|node| {
        if below.is_some_and(|b| std::ptr::eq(node, b)) {
            return Ok(TreeNodeRecursion::Jump);
        }
        if let Some(refusal) = stateful_operator(node, streams) {
            problem = Some(refusal);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(PlanError::Sql)?;
    problem.map_or(Ok(()), Err)
}

/// An operator that needs state across batches where none can be kept, refused by name.
fn stateful_operator(node: &LogicalPlan, streams: &BTreeSet<String>) -> Option<PlanError> {
    const NESTED: &str = "under another aggregation: Sluice keeps the state of one aggregation \
                          per query, and of one deduplication (`SELECT DISTINCT`, `SELECT \
                          DISTINCT ON (key)`) right below it. Keep the inner aggregation as the \
                          query, in complete mode, and apply the outer one where the sink is \
                          read (it holds the whole result table); or, for windows of windows, \
                          write the inner one in append mode to a files sink and read that \
                          folder with a second pipeline, its watermark on `window_start`";
    let window_reason;
    let found = match node {
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => ("a global aggregate", NESTED),
        LogicalPlan::Aggregate(_) => ("GROUP BY aggregation", NESTED),
        LogicalPlan::Distinct(Distinct::On(_)) => ("DISTINCT ON", NESTED),
        LogicalPlan::Distinct(_) => ("DISTINCT", NESTED),
        LogicalPlan::Sort(_) => (
            "ORDER BY",
            "over a stream: rows keep arriving, so there is no last row to sort by; \
             sort the result of an aggregation with output_mode complete",
        ),
        LogicalPlan::Limit(_) => (
            "LIMIT/OFFSET",
            "over a stream: rows keep arriving, so there is no first N to keep; \
             limit the result of an aggregation with output_mode complete",
        ),
        LogicalPlan::Window(w) => {
            // What the function is for, and the streaming form that does it, where one does.
            let names: Vec<String> = w
                .window_expr
                .iter()
                .filter_map(|e| match e.clone().unalias() {
                    Expr::WindowFunction(f) => Some(f.fun.name().to_ascii_lowercase()),
                    _ => None,
                })
                .collect();
            let any = |of: &[&str]| names.iter().any(|n| of.contains(&n.as_str()));
            let mut ways = Vec::new();
            if any(&["row_number"]) {
                ways.push(
                    "to keep one row per key (`ROW_NUMBER() OVER (PARTITION BY key ORDER BY ts) \
                     = 1`), write `SELECT DISTINCT ON (key) ... ORDER BY key, ts`: as the whole \
                     query (append mode writes each key's first row seen once, as Spark's \
                     `dropDuplicates`; update or complete mode keep the row the `ORDER BY` \
                     puts first across batches), or under an aggregation, which then counts \
                     each key's first row seen once; to keep the top N per key (`... <= N`), \
                     aggregate them into a list in update or complete mode: `SELECT key, \
                     array_slice(array_agg(v ORDER BY v DESC), 1, N) AS top FROM s GROUP BY \
                     key` (the state keeps every value of a key)",
                );
            }
            // Walk 104 (2): the row_number form cut ties a rank keeps.
            if any(&["rank", "dense_rank"]) {
                ways.push(
                    "`DENSE_RANK() <= N` keeps every row of a key's N highest values: \
                     `SELECT key, array_slice(array_agg(DISTINCT v ORDER BY v DESC), 1, N) AS \
                     top FROM s GROUP BY key` gives those values in update or complete mode \
                     (the state keeps every value of a key); `RANK()`, whose ties take up \
                     ranks, has no streaming form here: rank the output of an aggregation in a \
                     batch query where it is read",
                );
            }
            if any(&["lag", "lead"]) {
                ways.push(
                    "a row's neighbours (`LAG`, `LEAD`) may come in a later batch, so they have \
                     no streaming form here: compute them over the output in a batch query",
                );
            }
            // Walk 104 (5): `first_value ... OVER` was told of LAG and LEAD.
            if any(&["first_value", "last_value", "nth_value"]) {
                ways.push(
                    "a key's first or last value by an order is an aggregate here: `SELECT key, \
                     first_value(v ORDER BY ts) AS first_v, last_value(v ORDER BY ts) AS \
                     last_v FROM s GROUP BY key` in update or complete mode (`ORDER BY ts, id` \
                     where two rows may share a time), which gives it for the key, not on \
                     each row",
                );
            }
            if any(&["sum", "count", "avg", "min", "max"]) {
                ways.push(
                    "a running total per key is the aggregation itself in update mode (`SELECT \
                     key, sum(v) AS total FROM s GROUP BY key` writes each key's total as of \
                     each batch); a total over the last span of event time is a sliding \
                     window (`unnest(hop(ts, INTERVAL '1 minute', INTERVAL '5 minutes')) AS \
                     window_start` in a subquery, grouped by `window_start`), one per span a \
                     tumbling one (`GROUP BY date_bin(INTERVAL '5 minutes', ts)`)",
                );
            }
            if ways.is_empty() {
                ways.push(
                    "rank or place rows over the output of an aggregation in a batch query \
                     where it is read (`ntile`, `percent_rank`, `cume_dist` need every row of \
                     their partition, which a stream never has)",
                );
            }
            window_reason = format!("over a stream is not supported; {}", ways.join("; "));
            ("a window function (OVER)", window_reason.as_str())
        }
        LogicalPlan::RecursiveQuery(_) => ("a recursive query", "over a stream is not supported"),
        LogicalPlan::Join(j) => {
            let (left, right) = (
                reads_stream(&j.left, streams),
                reads_stream(&j.right, streams),
            );
            return match (left, right) {
                (true, true) => Some(PlanError::Unsupported {
                    operator: "a join of two streams".into(),
                    reason: "is not supported yet; join a stream with static tables (`tables:`)"
                        .into(),
                }),
                (true, false) | (false, true) => stream_static_join(j.join_type, left),
                (false, false) => None,
            };
        }
        LogicalPlan::Subquery(_) => (
            "a subquery over a stream",
            "is not supported. Where it reads a static table, join with the table; where it \
             reads a stream, join the two streams, bounded in event time (append mode): an \
             aggregation over such a join does not run in one pipeline, so write the join to \
             a sink and aggregate that in a pipeline of its own",
        ),
        _ => return None,
    };
    reads_stream(node, streams).then(|| PlanError::Unsupported {
        operator: found.0.into(),
        reason: found.1.into(),
    })
}

/// Whether a `join_type` join of a stream (on the left when `stream_on_left`) with a static
/// table keeps or tests the static table's rows: a full join, or an outer, semi, anti or mark
/// join whose kept side is the static one. Whether such a join emits a static row depends on
/// the stream rows of every batch so far (a static row is unmatched only if no batch matched
/// it), which is state. The other joins (inner; LEFT ... with the stream on the left; RIGHT ...
/// with the stream on the right) make each output row of one stream row and the whole static
/// table, so batch by batch they give the join over the whole stream. Spark's
/// `UnsupportedOperationChecker` draws the same line for stream-static joins.
pub(crate) fn keeps_static_rows(join_type: JoinType, stream_on_left: bool) -> bool {
    match join_type {
        JoinType::Inner => false,
        JoinType::Full => true,
        JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
            !stream_on_left
        }
        JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
            stream_on_left
        }
    }
}

/// The refusal of a stream-static join that [`keeps_static_rows`].
fn stream_static_join(join_type: JoinType, stream_on_left: bool) -> Option<PlanError> {
    let (stream, table) = if stream_on_left {
        ("left", "right")
    } else {
        ("right", "left")
    };
    keeps_static_rows(join_type, stream_on_left).then(|| PlanError::Unsupported {
        operator: format!(
            "a {join_type} join of a stream (on the {stream}) with a static table (on the {table})"
        ),
        reason: "is not supported: which of the static table's rows it emits depends on the \
                 stream rows of every batch so far, and Sluice keeps no state for that (each \
                 batch would emit again the static rows its own rows did not match). Joins \
                 with a static table that run: inner joins, and joins that keep the stream's \
                 rows (`stream LEFT JOIN table`, `table RIGHT JOIN stream`, \
                 `stream LEFT SEMI JOIN table`, `stream LEFT ANTI JOIN table`). To keep every \
                 table row under an aggregation (zero counts too), join the table to the \
                 aggregation's result in complete mode: `SELECT t.k, coalesce(a.n, 0) AS n \
                 FROM t LEFT JOIN (SELECT k, count(*) AS n FROM s GROUP BY k) a ON a.k = t.k` \
                 with `output_mode: complete`"
            .into(),
    })
}

/// Whether `plan` calls a function of the batch's time (`now()`, `current_timestamp`,
/// `current_date`, `current_time`): the optimizer folds each into the time it plans with, and
/// a condition over it (`CASE WHEN now() > ... THEN v ...`) can drop a column at one time that
/// another batch's time needs, so [`stream_columns`] of a plan made at another time does not
/// hold for the batch.
pub fn reads_batch_time(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && ["now", "current_date", "current_time"].contains(&f.func.name())
                {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// The columns each stream's table must have for the query to plan and run, in the stream's
/// column order: those the `optimized` plan reads, and every column of the stream that the
/// query names anywhere in its `logical` plan (as the SQL planner made it), since each batch
/// plans the query's SQL again against a table of these columns alone: a column a subquery or
/// CTE selects and nothing above reads (`SELECT n FROM (SELECT n, v FROM s)`) is not read,
/// but must be there to plan. Streams read whole (or not at all) are absent.
pub fn stream_columns(
    logical: &LogicalPlan,
    optimized: &LogicalPlan,
    streams: &BTreeSet<String>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    // The names the query's expressions give each stream, by the qualifier they carry: the
    // stream's own name or an alias of it (`views v`); an unqualified one, every stream's (a
    // superset is safe). A column of a subquery or CTE (`x.n`) is its projection's, whose
    // own expressions name the stream's.
    let mut aliases: std::collections::BTreeMap<String, String> = Default::default();
    let _ = logical.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) if streams.contains(scan.table_name.table()) => {
                let name = scan.table_name.table().to_string();
                aliases.insert(name.clone(), name);
            }
            LogicalPlan::SubqueryAlias(alias) => {
                if let LogicalPlan::TableScan(scan) = alias.input.as_ref()
                    && streams.contains(scan.table_name.table())
                {
                    aliases.insert(
                        alias.alias.table().to_string(),
                        scan.table_name.table().to_string(),
                    );
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut named: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut whole = false;
    let mut name = |column: &datafusion::common::Column| {
        let of: Vec<&String> = match &column.relation {
            Some(relation) => aliases.get(relation.table()).into_iter().collect(),
            None => aliases.values().collect(),
        };
        for stream in of {
            named
                .entry(stream.clone())
                .or_default()
                .insert(column.name.clone());
        }
    };
    let _ = logical.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                match e {
                    Expr::Column(column) | Expr::OuterReferenceColumn(_, column) => name(column),
                    #[allow(deprecated)]
                    Expr::Wildcard { .. } => whole = true,
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    if whole {
        return Default::default();
    }
    let plan = optimized;
    let mut used: std::collections::BTreeMap<String, Option<BTreeSet<usize>>> = Default::default();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && streams.contains(scan.table_name.table())
        {
            let entry = used
                .entry(scan.table_name.table().to_string())
                .or_insert_with(|| Some(BTreeSet::new()));
            match (&scan.projection, entry.as_mut()) {
                (Some(indices), Some(set)) => {
                    set.extend(indices.iter().copied());
                    let schema = scan.source.schema();
                    let named = named.get(scan.table_name.table());
                    set.extend(
                        schema
                            .fields()
                            .iter()
                            .enumerate()
                            .filter(|(_, field)| named.is_some_and(|n| n.contains(field.name())))
                            .map(|(i, _)| i),
                    );
                }
                _ => *entry = None,
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut out = std::collections::BTreeMap::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(Some(indices)) = used.get(scan.table_name.table())
            && !out.contains_key(scan.table_name.table())
        {
            let schema = scan.source.schema();
            // A scan of no column still needs rows: keep the first column.
            let indices: Vec<usize> = if indices.is_empty() {
                vec![0]
            } else {
                indices.iter().copied().collect()
            };
            let names = indices
                .iter()
                .map(|i| schema.field(*i).name().clone())
                .collect();
            out.insert(scan.table_name.table().to_string(), names);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// The query's conditions on each stream's own rows that Spark would test before the rows
/// reach the watermark, by stream: its optimizer pushes a filter that does not read the
/// event-time column below `withWatermark` (`PushPredicateThroughNonJoin`, the
/// `EventTimeWatermark` case), so a row such a condition removes is neither late nor counted
/// in the watermark. Here, the conditions DataFusion's optimizer pushed down to the stream's
/// scan in `optimized`, less those that read the stream's event-time column (`watermarks`:
/// stream to column), a volatile function or a subquery; `None` for a stream one of whose
/// scans keeps every row. The conditions of several scans of one stream are ORed (a row
/// either keeps is kept). Columns are unqualified, as the stream's own schema names them.
pub fn pre_watermark_filters(
    optimized: &LogicalPlan,
    watermarks: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, Expr> {
    use datafusion::logical_expr::utils::{conjunction, disjunction, split_conjunction};
    // For each scan of a stream: the conditions pushed to it (none: every row).
    let mut scans: std::collections::BTreeMap<String, Vec<Option<Expr>>> = Default::default();
    let pushable = |e: &Expr, column: &str| {
        !e.exists(|e| {
            Ok(match e {
                Expr::Column(c) => c.name == column,
                Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Volatile,
                Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::Placeholder(_) => true,
                _ => false,
            })
        })
        .unwrap_or(true)
    };
    // The scans with a filter right above them, counted with that filter.
    let mut filtered: std::collections::HashSet<*const LogicalPlan> = Default::default();
    let _ = optimized.apply_with_subqueries(|node| {
        if let LogicalPlan::Filter(filter) = node
            && let LogicalPlan::TableScan(_) = filter.input.as_ref()
        {
            filtered.insert(Arc::as_ptr(&filter.input));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let _ = optimized.apply_with_subqueries(|node| {
        let (scan, above) = match node {
            LogicalPlan::Filter(filter) => match filter.input.as_ref() {
                LogicalPlan::TableScan(scan) => (scan, Some(&filter.predicate)),
                _ => return Ok(TreeNodeRecursion::Continue),
            },
            LogicalPlan::TableScan(scan) if !filtered.contains(&std::ptr::from_ref(node)) => {
                (scan, None)
            }
            _ => return Ok(TreeNodeRecursion::Continue),
        };
        let Some(column) = watermarks.get(scan.table_name.table()) else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let conditions: Vec<Expr> = above
            .into_iter()
            .flat_map(split_conjunction)
            .chain(scan.filters.iter().flat_map(split_conjunction))
            .filter(|e| pushable(e, column))
            .map(|e| datafusion::logical_expr::expr_rewriter::unnormalize_col(e.clone()))
            .collect();
        scans
            .entry(scan.table_name.table().to_string())
            .or_default()
            .push(conjunction(conditions));
        Ok(TreeNodeRecursion::Continue)
    });
    scans
        .into_iter()
        .filter_map(|(stream, conditions)| {
            let all: Option<Vec<Expr>> = conditions.into_iter().collect();
            Some((stream, disjunction(all?)?))
        })
        .collect()
}

/// The columns query text `sql` casts to a floating-point type itself (`CAST(d AS DOUBLE)`,
/// `d::float`, `TRY_CAST`), by their names in lowercase: a cast DataFusion's plan does not
/// tell from one its type coercion adds.
fn cast_to_float_in_sql(sql: &str) -> BTreeSet<String> {
    use datafusion::sql::parser::{DFParser, Statement};
    use datafusion::sql::sqlparser::ast::{
        DataType as SqlType, Expr as SqlExpr, visit_expressions,
    };
    let mut found = BTreeSet::new();
    let Ok(statements) = DFParser::parse_sql(sql) else {
        return found;
    };
    for statement in &statements {
        let Statement::Statement(s) = statement else {
            continue;
        };
        let _ = visit_expressions(s.as_ref(), |expr| {
            if let SqlExpr::Cast {
                expr, data_type, ..
            } = expr
                && matches!(
                    data_type,
                    SqlType::Double(_)
                        | SqlType::DoublePrecision
                        | SqlType::Float(_)
                        | SqlType::Float4
                        | SqlType::Float8
                        | SqlType::Float32
                        | SqlType::Float64
                        | SqlType::Real
                )
            {
                let name = match expr.as_ref() {
                    SqlExpr::Identifier(i) => Some(&i.value),
                    SqlExpr::CompoundIdentifier(parts) => parts.last().map(|i| &i.value),
                    _ => None,
                };
                if let Some(name) = name {
                    found.insert(name.to_lowercase());
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// Where `plan` (of query text `sql`) means another thing in DataFusion's SQL than in
/// PostgreSQL's and DuckDB's, each said with what to write for their meaning:
/// - a decimal column with a literal like `0.005`, which DataFusion reads as a double (they
///   and Spark read a decimal), so the arithmetic is in floating point;
/// - a decimal or double cast to an integer, whose fraction DataFusion (and Spark) cut off
///   where they round (2.7 to 3);
/// - `CAST(... AS TIMESTAMP WITH TIME ZONE)` (`timestamptz`), a timestamp without a zone
///   here, as DataFusion's SQL has no session time zone;
/// - `ts AT TIME ZONE 'z'` of a timestamp with a zone: the same instant, shown in `z`, where
///   they give the local time there, without a zone.
pub fn dialect_notes(sql: &str, plan: &LogicalPlan) -> Vec<String> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{BinaryExpr, Cast, ExprSchemable, TryCast};
    let mut notes: Vec<String> = Vec::new();
    let mut note = |text: String| {
        if !notes.contains(&text) {
            notes.push(text);
        }
    };
    // What the query uses as it is somewhere, not rounded (or cut on purpose) there: its
    // digits are said; and the `AT TIME ZONE`s used somewhere not taken to the local time
    // there (`to_local_time(...)`). By name, as a column above the aggregate that computes
    // it names it; one use that is not wrapped is enough (`avg(d) AS a, round(avg(d), 2)`).
    let unrounded = uses_outside(plan, &["round", "trunc", "floor", "ceil"], |e| {
        e.schema_name().to_string()
    });
    // By how it reads: a cast's name is its input's (`s.t`), which the query may use apart
    // (walk 70 (4): `CASE WHEN t > ... THEN to_local_time(t AT TIME ZONE ...)` was noted).
    let unlocalized = uses_outside(plan, &["to_local_time"], ToString::to_string);
    let cast_to_float = cast_to_float_in_sql(sql);
    // A descending order that does not say where nulls go (no `NULLS` in the query).
    let says_nulls = sql_words(sql).is_none_or(|words| words.iter().any(|w| w == "NULLS"));
    let nulls_first = |sort: &datafusion::logical_expr::SortExpr,
                       schema: &datafusion::common::DFSchema| {
        !says_nulls && !sort.asc && sort.nulls_first && sort.expr.nullable(schema).unwrap_or(true)
    };
    // `before` and `after` the order's `DESC`, where `NULLS LAST` goes.
    let nulls_note = |before: String, after: &str| {
        format!(
            "`{before} DESC{after}` puts nulls first, as PostgreSQL and DataFusion do; Spark \
             and DuckDB put them last (and leave them out of a top N): for theirs write \
             `{before} DESC NULLS LAST{after}`"
        )
    };
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let [input] = inputs.as_slice() else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let schema = input.schema();
        if let LogicalPlan::Sort(sort) = node {
            for order in sort.expr.iter().filter(|o| nulls_first(o, schema)) {
                note(nulls_note(
                    format!("ORDER BY {}", expr_sql(&order.expr)),
                    "",
                ));
            }
        }
        // The order that picks a `DISTINCT ON`'s row (walk 87: a change event without its
        // sequence number won its key for good, `lsn DESC` unwarned).
        if let LogicalPlan::Distinct(datafusion::logical_expr::Distinct::On(on)) = node {
            for order in on
                .sort_expr
                .iter()
                .flatten()
                .filter(|o| nulls_first(o, schema))
            {
                note(nulls_note(
                    format!("DISTINCT ON (...) ... ORDER BY {}", expr_sql(&order.expr)),
                    "",
                ));
            }
        }
        let type_of = |e: &Expr| e.get_type(schema).ok();
        // A cast's input and the type it gives.
        let cast = |e: &Expr| match e {
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                Some((expr.as_ref().clone(), field.data_type().clone()))
            }
            _ => None,
        };
        // A decimal, or a decimal cast to a double to meet a double (not by the query's own
        // `CAST(d AS DOUBLE)`: walk 98 (6a), told to make its double a decimal again).
        let decimal = |e: &Expr| match cast(e) {
            Some((expr, to)) if to.is_floating() => {
                type_of(&expr).is_some_and(|t| t.is_decimal())
                    && !matches!(&expr, Expr::Column(c)
                        if cast_to_float.contains(&c.name.to_lowercase()))
            }
            _ => type_of(e).is_some_and(|t| t.is_decimal()),
        };
        let double_literal = |e: &Expr| match e {
            Expr::Literal(ScalarValue::Float64(Some(v)), _) => Some(v.to_string()),
            _ => None,
        };
        let _ = node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    for said in spark_function_notes(f, schema) {
                        note(said);
                    }
                }
                if let Expr::AggregateFunction(aggregate) = e {
                    // A filter that leaves out the rows of a null order (DuckDB's `arg_max`
                    // as advised: walk 104 (6) was warned of nulls it cannot meet).
                    let kept = |order: &datafusion::logical_expr::SortExpr| {
                        aggregate.params.filter.as_ref().is_some_and(|f| {
                            f.exists(|x| {
                                Ok(matches!(x, Expr::IsNotNull(inner) if **inner == order.expr))
                            })
                            .unwrap_or(false)
                        })
                    };
                    for order in aggregate
                        .params
                        .order_by
                        .iter()
                        .filter(|o| nulls_first(o, schema) && !kept(o))
                    {
                        note(nulls_note(
                            format!(
                                "{}(... ORDER BY {}",
                                aggregate.func.name(),
                                expr_sql(&order.expr)
                            ),
                            ")",
                        ));
                    }
                }
                // A window function's order (walk 104 (1): `row_number() OVER (PARTITION BY k
                // ORDER BY valid_from DESC)` over a table took the undated row, unwarned).
                if let Expr::WindowFunction(window) = e {
                    for order in window
                        .params
                        .order_by
                        .iter()
                        .filter(|o| nulls_first(o, schema))
                    {
                        note(nulls_note(
                            format!(
                                "{}() OVER (... ORDER BY {}",
                                window.fun.name(),
                                expr_sql(&order.expr)
                            ),
                            ")",
                        ));
                    }
                }
                match e {
                    Expr::AggregateFunction(aggregate)
                        if aggregate.func.name() == "avg"
                            && aggregate.params.args.len() == 1
                            && unrounded.contains(&e.schema_name().to_string()) =>
                    {
                        let arg = &aggregate.params.args[0];
                        if let Some(DataType::Decimal128(_, places)) = type_of(e)
                            && decimal(arg)
                        {
                            note(format!(
                                "`{}` of a decimal keeps {places} places and cuts off the \
                                 rest (the average of 0.01, 0.01 and 0.00 is 0.006666), where \
                                 Spark and PostgreSQL round (0.006667) and DuckDB gives a \
                                 double. For a rounded decimal, average with one place more \
                                 and round: `round(avg(CAST({text} AS {wider})), {places})`; \
                                 for a double, `avg(CAST({text} AS DOUBLE))`",
                                expr_sql(e),
                                text = expr_sql(arg),
                                wider = one_place_more(type_of(arg)),
                            ));
                        }
                    }
                    Expr::BinaryExpr(BinaryExpr { left, op, right })
                        if op.is_numerical_operators() =>
                    {
                        // The operation itself, before `e` names its text below.
                        let operation = e;
                        let literal = match (double_literal(left), double_literal(right)) {
                            (Some(v), None) if decimal(right) => Some(v),
                            (None, Some(v)) if decimal(left) => Some(v),
                            _ => None,
                        };
                        // As written: the literal by its value, a side cast to meet it
                        // by what was cast.
                        let side = |side: &Expr| match (double_literal(side), cast(side)) {
                            (Some(v), _) => v,
                            (None, Some((expr, to))) if to.is_floating() => expr.to_string(),
                            _ => side.to_string(),
                        };
                        let e = format!("{} {op} {}", side(left), side(right));
                        if *op == datafusion::logical_expr::Operator::Divide
                            && unrounded.contains(&operation.schema_name().to_string())
                            && !divides_ten_thousand(right)
                            && let Some(DataType::Decimal128(_, places)) = type_of(operation)
                        {
                            note(format!(
                                "`{}` divides decimals: DataFusion keeps {places} places of \
                                 the quotient and cuts off the rest (2.00 / 3 is 0.666666), \
                                 where Spark and PostgreSQL round (0.666667) and DuckDB gives \
                                 a double. For a rounded decimal, give the dividend one place \
                                 more and round: `round(CAST({l} AS {wider}) / {r}, {places})`; \
                                 for a double, `CAST({l} AS DOUBLE) / {r}`",
                                expr_sql(operation),
                                l = expr_sql(left),
                                r = expr_sql(right),
                                wider = one_place_more(type_of(left)),
                            ));
                        }
                        if let Some(v) = literal {
                            note(format!(
                                "`{v}` meets a decimal column as a double (DataFusion reads a \
                                 literal with a point as a double; PostgreSQL, DuckDB and \
                                 Spark read a decimal), so `{e}` is computed in floating point \
                                 (0.075 may come out 0.07500000000000001): for decimal \
                                 arithmetic write the literal as a decimal, `CAST({v} AS \
                                 DECIMAL(p, s))`"
                            ));
                        }
                    }
                    // Walk 86: days of a zone's timestamps binned from UTC's midnights,
                    // which looked like the zone's calendar days.
                    Expr::ScalarFunction(f) if f.func.name() == "date_bin" => {
                        let days = match f.args.first() {
                            Some(Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(i)), _)) => {
                                i.days > 0 || i.nanoseconds >= 86_400_000_000_000
                            }
                            Some(Expr::Literal(ScalarValue::IntervalDayTime(Some(i)), _)) => {
                                i.days > 0 || i.milliseconds >= 86_400_000
                            }
                            _ => false,
                        };
                        if days
                            && f.args.len() == 2
                            && let Some(DataType::Timestamp(_, Some(zone))) =
                                f.args.get(1).and_then(type_of)
                            && !matches!(zone.as_ref(), "UTC" | "+00:00" | "Z")
                        {
                            let ts = expr_sql(&f.args[1]);
                            note(format!(
                                "`{}` bins by days from midnight UTC (1970-01-01T00:00:00Z), \
                                 not from {zone}'s midnights, whatever zone {ts} is shown in \
                                 (DuckDB's `time_bucket` does the same): for {zone}'s calendar \
                                 days write `date_trunc('day', to_local_time({ts}))` (update or \
                                 complete mode)",
                                expr_sql(e)
                            ));
                        }
                    }
                    Expr::Cast(_) | Expr::TryCast(_) => {
                        let Some((expr, to)) = cast(e) else {
                            return Ok(TreeNodeRecursion::Continue);
                        };
                        let from = type_of(&expr);
                        if to.is_integer()
                            && from
                                .as_ref()
                                .is_some_and(|t| t.is_decimal() || t.is_floating())
                        {
                            note(format!(
                                "`{e}` cuts off the fraction (2.7 becomes 2), as Spark does; \
                                 PostgreSQL and DuckDB round (3): where rounding is meant, \
                                 round first, `CAST(round({expr}) AS ...)`"
                            ));
                        }
                        if let DataType::Timestamp(_, Some(zone)) = &to
                            && matches!(e, Expr::Cast(_))
                            && matches!(from, Some(DataType::Timestamp(_, None)))
                            // A fixed offset (`+02:00`, `Etc/GMT-2`) has no change to skip.
                            && !matches!(zone.as_ref(), "UTC" | "Z")
                            && !zone.starts_with(['+', '-'])
                            && !zone.starts_with("Etc/")
                            && unlocalized.contains(&e.to_string())
                        {
                            note(format!(
                                "`{expr} AT TIME ZONE '{zone}'` reads {expr} as a wall-clock \
                                 time in {zone}: one its clocks skip or show twice (a \
                                 daylight-saving change) fails the batch; \
                                 `to_utc_timestamp({expr}, '{zone}')` reads those as Spark \
                                 does (a skipped time moves later by the gap, one shown twice \
                                 is the earlier instant)"
                            ));
                        }
                        // Walk 98 (4): keys and labels made of times did not match those
                        // other engines make.
                        if matches!(
                            to,
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                        ) && matches!(from, Some(DataType::Timestamp(_, _)))
                        {
                            note(format!(
                                "`{}` writes a time as text in ISO 8601 with a `T` and the \
                                 fraction in 3, 6 or 9 digits (`2024-01-31T10:05:03.500`), \
                                 where PostgreSQL, DuckDB and Spark write `2024-01-31 \
                                 10:05:03.5` (so does a `concat` or `||` of a time): \
                                 for their form to the second write `to_char({}, '%Y-%m-%d \
                                 %H:%M:%S')`",
                                expr_sql(e),
                                expr_sql(&expr)
                            ));
                        }
                        if let DataType::Timestamp(_, Some(zone)) = &to
                            && matches!(e, Expr::Cast(_))
                            && matches!(from, Some(DataType::Timestamp(_, Some(_))))
                            && unlocalized.contains(&e.to_string())
                        {
                            note(format!(
                                "`{expr} AT TIME ZONE '{zone}'` of a timestamp with a zone is \
                                 the same instant, shown in {zone} (a column with that zone); \
                                 PostgreSQL and DuckDB give the local time there, without a \
                                 zone: for that write `to_local_time({expr} AT TIME ZONE \
                                 '{zone}')`"
                            ));
                        }
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        Ok(TreeNodeRecursion::Continue)
    });
    if casts_to_timestamptz(sql) {
        notes.push(
            "`TIMESTAMP WITH TIME ZONE` (`timestamptz`) in the query is a timestamp without a \
             zone here (DataFusion's SQL has no session time zone): for an instant in UTC write \
             `ts AT TIME ZONE 'UTC'` (a source's `schema:` does read `timestamptz` as one)"
                .to_string(),
        );
    }
    notes
}

/// What call `f` (over `schema`) does otherwise than Spark's function of its name, where a
/// query ported from Spark would get other values without an error (walk 108): each with
/// what gives Spark's.
fn spark_function_notes(
    f: &datafusion::logical_expr::expr::ScalarFunction,
    schema: &datafusion::common::DFSchema,
) -> Vec<String> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::ExprSchemable;
    let text = |i: usize| {
        let mut arg = f.args.get(i)?;
        while let Expr::Cast(datafusion::logical_expr::Cast { expr, .. }) = arg {
            arg = expr;
        }
        match arg {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
                _,
            ) => Some(s.clone()),
            _ => None,
        }
    };
    let mut notes = Vec::new();
    match f.name() {
        "regexp_replace" if f.args.len() == 3 => notes.push(
            "`regexp_replace(s, p, r)` replaces the first match only, as PostgreSQL's and \
             DuckDB's do; Spark's replaces every one: for that write `regexp_replace(s, p, r, \
             'g')`"
                .to_string(),
        ),
        "concat"
            if f.args.len() > 1 && f.args.iter().any(|a| a.nullable(schema).unwrap_or(true)) =>
        {
            notes.push(
                "`concat(a, b)` passes over a null argument, as PostgreSQL's does; Spark's gives \
                 null where any argument is null: for that write `a || b`"
                    .to_string(),
            );
        }
        "array_remove" => notes.push(
            "`array_remove(arr, x)` removes the first `x` only (DataFusion's); Spark's removes \
             every one: for that write `array_remove_all(arr, x)`"
                .to_string(),
        ),
        "from_unixtime" if f.args.len() == 2 => notes.push(
            "the second argument of `from_unixtime(n, ...)` is a time zone here, not Spark's \
             format: for Spark's `from_unixtime(n, 'yyyy-MM-dd')` write \
             `to_char(to_timestamp_seconds(n), '%Y-%m-%d')`"
                .to_string(),
        ),
        _ => {}
    }
    // A pattern written with Spark's escaped backslashes (`'\\d'`), which SQL text here keeps
    // as two.
    let patterns = [
        "regexp_replace",
        "regexp_match",
        "regexp_like",
        "regexp_count",
        "regexp_instr",
    ];
    if patterns.contains(&f.name())
        && let Some(pattern) = text(1)
        && let Some(at) = pattern.find("\\\\")
        && pattern[at + 2..]
            .chars()
            .next()
            .is_some_and(|c| "dDsSwWbB.()[]{}|+*?".contains(c))
    {
        notes.push(format!(
            "the pattern `{pattern}` holds two backslashes, which SQL text here keeps as \
             written (as PostgreSQL's standard strings do), so the pattern matches a \
             backslash there; Spark's SQL reads `\\\\` in text as one backslash: for Spark's \
             pattern write `{}`",
            pattern.replace("\\\\", "\\")
        ));
    }
    notes
}

/// The names (`schema_name`) of the expressions `plan` uses somewhere outside a call of one of
/// `wrappers` (its first argument, where the rest say how: `round(x, 2)`), a column by the
/// name of what it carries. An aggregate's own computation (`avg(d)` in the aggregate that
/// gives it) is not a use: the nodes above it use its column.
fn uses_outside(
    plan: &LogicalPlan,
    wrappers: &[&str],
    key: fn(&Expr) -> String,
) -> std::collections::HashSet<String> {
    struct Walk<'a> {
        wrappers: &'a [&'a str],
        key: fn(&Expr) -> String,
        out: std::collections::HashSet<String>,
    }
    fn walk(e: &Expr, top: bool, w: &mut Walk<'_>) {
        if let Expr::ScalarFunction(call) = e
            && w.wrappers.contains(&call.name())
        {
            // The wrapped argument is not a use; what it is made of below may be (another
            // column's value inside it is wrapped too): nothing below is said unwrapped.
            for arg in call.args.iter().skip(1) {
                walk(arg, false, w);
            }
            return;
        }
        if !top {
            let key = (w.key)(e);
            w.out.insert(key);
        }
        let _ = e.apply_children(|child| {
            walk(child, false, w);
            Ok(TreeNodeRecursion::Continue)
        });
    }
    let mut w = Walk {
        wrappers,
        key,
        out: std::collections::HashSet::new(),
    };
    let _ = plan.apply_with_subqueries(|node| {
        let aggregate = matches!(node, LogicalPlan::Aggregate(_));
        let _ = node.apply_expressions(|expr| {
            // An aggregate's computation (under its alias) is its definition, not a use.
            let mut expr = expr;
            while let Expr::Alias(alias) = expr
                && aggregate
            {
                expr = &alias.expr;
            }
            let defined = aggregate && matches!(expr, Expr::AggregateFunction(_));
            walk(expr, defined, &mut w);
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(TreeNodeRecursion::Continue)
    });
    w.out
}

/// Whether `divisor` is an integer literal (under the casts coercion puts on it) that divides
/// 10,000: a decimal divided by it has a quotient of at most 4 more places, all kept, nothing
/// cut (`d / 2`, `d / 100`).
fn divides_ten_thousand(divisor: &Expr) -> bool {
    use datafusion::common::ScalarValue;
    let mut expr = divisor;
    while let Expr::Cast(datafusion::logical_expr::Cast { expr: inner, .. })
    | Expr::TryCast(datafusion::logical_expr::TryCast { expr: inner, .. }) = expr
    {
        expr = inner;
    }
    let value = match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => i128::from(*v),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => i128::from(*v),
        Expr::Literal(ScalarValue::Decimal128(Some(v), _, 0), _) => *v,
        _ => return false,
    };
    value != 0 && 10_000 % value == 0
}

/// `expr` as SQL text to write in a query (`CAST(3 AS DECIMAL(10,2))`, where DataFusion's own
/// display writes `CAST(Int64(3) AS Decimal128(10, 2))`), for advice.
/// A column an aggregate below gives (`sum(s.d)`) is written by its name as it is, which is
/// how the query wrote it.
fn expr_sql(expr: &Expr) -> String {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::expr::Placeholder;
    let written = expr.clone().transform_up(|e| match e {
        Expr::Column(column) if column.relation.is_none() && column.name.contains('(') => {
            Ok(Transformed::yes(Expr::Placeholder(Placeholder {
                id: column.name,
                field: None,
            })))
        }
        other => Ok(Transformed::no(other)),
    });
    let text = written
        .ok()
        .and_then(|w| datafusion::sql::unparser::expr_to_sql(&w.data).ok())
        .map_or_else(|| expr.to_string(), |sql| sql.to_string());
    without_outer_parentheses(&text).to_string()
}

/// `text` without one pair of parentheses around the whole of it (the unparser's around a
/// binary operation: `((a + 1) / b)`), where its first opens the pair its last closes.
fn without_outer_parentheses(text: &str) -> &str {
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return text;
    };
    // The first parenthesis must stay open until the very end.
    let mut depth = 1_i32;
    for c in inner.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth == 0 {
            return text;
        }
    }
    inner
}

/// The SQL type of a decimal like `data_type` with one place more (and one digit more, so its
/// whole part keeps its digits), for advice: `DECIMAL(13, 3)` for `decimal(12,2)`.
fn one_place_more(data_type: Option<datafusion::arrow::datatypes::DataType>) -> String {
    match data_type {
        Some(datafusion::arrow::datatypes::DataType::Decimal128(p, s)) => {
            format!("DECIMAL({}, {})", (p + 1).min(38), (s + 1).min(38))
        }
        // An integer's 20 digits (a `bigint unsigned`'s), and one place.
        _ => "DECIMAL(21, 1)".to_string(),
    }
}

/// Whether query text `sql` has `word` as a word outside quoted text (an identifier, quoted
/// or not, in any case, as Sluice registers tables in lower case): `false` means no table of
/// that name is read.
pub fn mentions_word(sql: &str, word: &str) -> bool {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return true;
    };
    tokens
        .iter()
        .any(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(word)))
}

/// Whether query text `sql` names the type `TIMESTAMP WITH TIME ZONE` or `TIMESTAMPTZ`
/// (outside quotes).
fn casts_to_timestamptz(sql: &str) -> bool {
    let Some(words) = sql_words(sql) else {
        return false;
    };
    words.iter().any(|w| w == "TIMESTAMPTZ")
        || words
            .windows(4)
            .any(|w| w == ["TIMESTAMP", "WITH", "TIME", "ZONE"])
}

/// Each binary operation of `plan`'s expressions (`left op right`) that `pick` takes, given
/// the schema its operands are typed in, as DataFusion writes it, once each. Nodes of one
/// input only (a join's condition is left out); a CASE's branches are left out where
/// `skip_case` (they run only for the rows their condition picks, maybe none).
fn binary_operations(
    plan: &LogicalPlan,
    skip_case: bool,
    pick: impl Fn(
        &Expr,
        &datafusion::logical_expr::Operator,
        &Expr,
        &datafusion::common::DFSchema,
    ) -> bool,
) -> Vec<String> {
    use datafusion::logical_expr::BinaryExpr;
    let mut found: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let [input] = inputs.as_slice() else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let schema = input.schema();
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if skip_case && matches!(e, Expr::Case(_)) {
                    return Ok(TreeNodeRecursion::Jump);
                }
                if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e
                    && pick(left, op, right, schema)
                {
                    // As SQL, with the parentheses the operands need.
                    let text = expr_sql(e);
                    if !found.contains(&text) {
                        found.push(text);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// The divisions of one integer by another in `plan` (as written, `sum(good) / sum(total)`):
/// DataFusion keeps their whole part (1 / 4 is 0), where Spark and DuckDB give a fraction.
pub fn integer_divisions(plan: &LogicalPlan) -> Vec<String> {
    use datafusion::logical_expr::{ExprSchemable, Operator};
    binary_operations(plan, false, |left, op, right, schema| {
        *op == Operator::Divide
            && [left, right]
                .iter()
                .all(|side| side.get_type(schema).is_ok_and(|t| t.is_integer()))
            // A constant divisor is written on purpose (`ms / 1000`).
            && !matches!(right, Expr::Literal(..))
    })
}

/// The divisions and remainders in `plan` (as DataFusion writes them, `s.v / Int64(0)`) whose
/// divisor is a literal integer or decimal zero: DataFusion fails the batch on the first row
/// that reaches one (as PostgreSQL and Spark with ANSI mode do; DuckDB gives null). A
/// floating-point zero is left out (it gives infinity or NaN, as IEEE 754 says), and so is a
/// branch of a CASE, which only the rows its condition picks reach.
pub fn zero_divisions(plan: &LogicalPlan) -> Vec<String> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{ExprSchemable, Operator};
    // A literal, under the casts type coercion puts on it, and its value.
    fn literal(e: &Expr) -> Option<&ScalarValue> {
        match e {
            Expr::Literal(value, _) => Some(value),
            Expr::Cast(c) => literal(&c.expr),
            Expr::TryCast(c) => literal(&c.expr),
            _ => None,
        }
    }
    binary_operations(plan, true, |left, op, right, schema| {
        matches!(op, Operator::Divide | Operator::Modulo)
            && literal(right).is_some_and(|value| {
                !value.is_null()
                    // As the divisor's type holds it (`CAST(0.4 AS BIGINT)` is 0), then read
                    // as a double (-0.0 is zero too).
                    && right
                        .get_type(schema)
                        .and_then(|t| value.cast_to(&t))
                        .and_then(|v| v.cast_to(&DataType::Float64))
                        .is_ok_and(|v| matches!(v, ScalarValue::Float64(Some(f)) if f == 0.0))
            })
            // Integer or decimal arithmetic, which fails on a zero divisor.
            && Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr {
                left: Box::new(left.clone()),
                op: *op,
                right: Box::new(right.clone()),
            })
            .get_type(schema)
            .is_ok_and(|t| t.is_integer() || t.is_decimal())
    })
}

/// The calls in `plan` that count positions as Spark does where DataFusion counts them as
/// PostgreSQL does, each said whole with what it gives here: from 0, `arr[0]` (null here;
/// Spark's first element) and `substr(s, 0, n)` (n - 1 characters here; Spark's first n); from
/// the end, `substr(s, -k)` (here before the first character, so the whole text or less, as
/// PostgreSQL counts; Spark and DuckDB give the last k characters).
pub fn spark_position_calls(plan: &LogicalPlan) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let integer = |e: &Expr| match e {
        Expr::Literal(v, _) if !v.is_null() && v.data_type().is_integer() => {
            v.to_string().parse::<i64>().ok()
        }
        _ => None,
    };
    let zero = |e: &Expr| integer(e) == Some(0);
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    let name = f.func.name();
                    let said = match (name, f.args.as_slice()) {
                        ("array_element", [array, index]) if zero(index) => Some(format!(
                            "the query counts from 0 as Spark does: `{array}[0]` is null here, where Spark gives the first element: \
                             arrays count from 1 (as in PostgreSQL and DuckDB), so write \
                             `[1]`"
                        )),
                        ("substr" | "substring", [text, from, ..]) if zero(from) => Some(format!(
                            "the query counts from 0 as Spark does: `{name}({text}, 0, ...)` \
                             starts before the first character, so it gives one character \
                             fewer than asked here (as in PostgreSQL), where Spark starts at \
                             the first: write `{name}(.., 1, ..)`"
                        )),
                        // Walk 98 (2): `substr(phone, -4)` gave the whole text.
                        ("substr" | "substring", [text, from, rest @ ..])
                            if integer(from).is_some_and(|k| k < 0) =>
                        {
                            let k = integer(from).unwrap_or_default().unsigned_abs();
                            let text = expr_sql(text);
                            let start = match k {
                                1 => format!("char_length({text})"),
                                k => format!("char_length({text}) - {}", k - 1),
                            };
                            let (asked, written) = match rest {
                                [] => (
                                    format!("{name}({text}, -{k})"),
                                    format!("`right({text}, {k})`"),
                                ),
                                [length, ..] => {
                                    let length = expr_sql(length);
                                    (
                                        format!("{name}({text}, -{k}, {length})"),
                                        format!("`{name}({text}, {start}, {length})`"),
                                    )
                                }
                            };
                            Some(format!(
                                "`{asked}` counts a negative start as PostgreSQL does, from \
                                 before the first character (`substr('hello', -2)` is \
                                 'hello' here), where Spark and DuckDB count it from the end \
                                 ('lo'): for their result write {written}"
                            ))
                        }
                        _ => None,
                    };
                    if let Some(said) = said
                        && !found.contains(&said)
                    {
                        found.push(said);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// Whether `sql` leaves columns out of a wildcard by name (`SELECT * EXCLUDE (c)`, `t.*
/// EXCEPT (c)`): the names are in its text, not in its plan.
pub fn excludes_columns(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.match_indices('*').any(|(at, _)| {
        let after = upper[at + 1..].trim_start();
        after.starts_with("EXCLUDE") || after.starts_with("EXCEPT")
    })
}

/// Whether `plan` (with its subqueries) scans one of the stream tables.
pub(crate) fn reads_stream(plan: &LogicalPlan, streams: &BTreeSet<String>) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        // DataFusion folds an unquoted name to lower case (`Orders` is scanned as `orders`).
        if let LogicalPlan::TableScan(scan) = node
            && streams
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scan.table_name.table()))
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The streams (of `streams`) that `plan` reads, as `streams` names them.
pub(crate) fn streams_read(plan: &LogicalPlan, streams: &BTreeSet<String>) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(stream) = streams
                .iter()
                .find(|s| s.eq_ignore_ascii_case(scan.table_name.table()))
            && !found.contains(stream)
        {
            found.push(stream.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Below Sort, Limit and Filter (`HAVING`): the node they pass rows on from.
fn under(mut node: &LogicalPlan) -> &LogicalPlan {
    while matches!(
        node,
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Filter(_)
    ) {
        node = node.inputs()[0];
    }
    node
}

/// The name the query's result gives aggregation output `name`: its name in the outermost
/// projection, through any aliases; where that does not name it (the aggregation is in a
/// subquery whose result the outer query reshapes, `s['start']`), its name in the projection
/// right above the aggregation; else `name` itself.
pub fn output_alias(plan: &LogicalPlan, name: &str) -> String {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    // `name`'s alias in projection `p`, where `p` passes it on.
    let alias_in = |p: &datafusion::logical_expr::Projection| {
        p.expr
            .iter()
            .zip(p.schema.fields())
            .find_map(|(expr, field)| {
                // `count(*) AS cnt` is planned as `count(Int64(1)) AS count(*) AS cnt`.
                let mut inner = expr;
                while let Expr::Alias(a) = inner {
                    inner = &a.expr;
                }
                matches!(inner, Expr::Column(c) if c.name == name).then(|| field.name().clone())
            })
    };
    if let LogicalPlan::Projection(p) = under(plan)
        && let Some(alias) = alias_in(p)
    {
        return alias;
    }
    let mut nearest = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::Projection(p) = node
            && matches!(under(&p.input), LogicalPlan::Aggregate(_))
        {
            nearest = alias_in(p);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    nearest.unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

    async fn plan(sql: &str) -> Result<(), PlanError> {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        for table in ["s", "s2", "t"] {
            let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
            ctx.register_table(table, Arc::new(mem)).expect("register");
        }
        let (_, plan) = plan_batch(&ctx, sql, 0).await?;
        check_stateless(&plan, &["s".to_string(), "s2".to_string()].into())
    }

    /// Walk 126 (3): `->` on a struct column said the struct's every field in Rust's form;
    /// said as a struct, with the way to read its field.
    #[tokio::test]
    async fn the_json_arrow_on_a_struct_says_how_a_field_is_read() {
        let ctx = session(&default_settings());
        let person = DataType::Struct(
            vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("age", DataType::Int64, true),
            ]
            .into(),
        );
        let schema = Arc::new(Schema::new(vec![Field::new("u", person, true)]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("ev", Arc::new(mem)).expect("register");
        let err = plan_batch(&ctx, "SELECT u->'name' AS n FROM ev", 0)
            .await
            .expect_err("a struct is no JSON text")
            .to_string();
        assert!(
            err.contains("got a struct")
                && err.contains("written `col['field']`, as `u['name']`")
                && !err.contains("Field {"),
            "{err}"
        );
    }

    /// Walk 20 (15): `SELECT offset FROM s` over a Kafka source ended in the parser's bare
    /// words; a keyword that names a column is said to need double quotes, and so quoted the
    /// query plans. A keyword that is no column (`SELECT a, FROM s`) gets no such advice.
    #[tokio::test]
    async fn a_column_named_by_a_keyword_is_said_to_need_quotes() {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("offset", DataType::Int64, true),
            Field::new("partition", DataType::Int32, true),
        ]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("k", Arc::new(mem)).expect("register");
        for sql in [
            "SELECT partition, offset FROM k",
            "SELECT \"partition\", offset FROM k WHERE \"offset\" > 3",
        ] {
            let err = plan_batch(&ctx, sql, 0).await.expect_err(sql).to_string();
            assert!(
                err.contains("is an SQL keyword and a column of `k`")
                    && err.contains("in double quotes"),
                "{sql}: {err}"
            );
        }
        plan_batch(&ctx, "SELECT \"offset\", \"partition\" FROM k", 0)
            .await
            .expect("quoted");
        let err = plan_batch(&ctx, "SELECT \"offset\" FROM k WHERE", 0)
            .await
            .expect_err("no condition")
            .to_string();
        assert!(!err.contains("SQL keyword"), "{err}");
        // Walk 39 (U1): a typo elsewhere is no keyword's fault, though one names a column.
        let err = plan_batch(&ctx, "SELECT partition FRM k", 0)
            .await
            .expect_err("a typo of FROM")
            .to_string();
        assert!(!err.contains("SQL keyword"), "{err}");
    }

    #[tokio::test]
    async fn stateless_shapes_are_accepted() {
        for sql in [
            "SELECT a + 1 AS x, upper(b) FROM s WHERE a > 3",
            "SELECT s.a, t.b FROM s JOIN t ON s.a = t.a",
            "SELECT s.a FROM s LEFT JOIN (SELECT a, count(*) AS n FROM t GROUP BY a) c ON s.a = c.a",
            "SELECT s.a, t.b FROM t RIGHT JOIN s ON s.a = t.a",
            "SELECT s.a FROM s LEFT SEMI JOIN t ON s.a = t.a",
            "SELECT s.a FROM s LEFT ANTI JOIN t ON s.a = t.a",
            "SELECT s.a FROM t RIGHT ANTI JOIN s ON s.a = t.a",
            "SELECT t.a FROM t FULL JOIN t AS u ON t.a = u.a",
            "SELECT a, now() AS at FROM s",
            "SELECT unnest(make_array(a, a)) FROM s",
            "SELECT a FROM s UNION ALL SELECT a FROM s2",
            "SELECT a FROM s WHERE a IN (SELECT a FROM t)",
        ] {
            plan(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[tokio::test]
    async fn stateful_shapes_are_refused_by_name() {
        for (sql, operator) in [
            ("SELECT count(*) FROM s", "global aggregate"),
            ("SELECT b, count(*) FROM s GROUP BY b", "GROUP BY"),
            ("SELECT DISTINCT b FROM s", "DISTINCT"),
            ("SELECT a FROM s ORDER BY a", "ORDER BY"),
            ("SELECT a FROM s LIMIT 3", "LIMIT"),
            (
                "SELECT a, row_number() OVER (ORDER BY a) FROM s",
                "window function",
            ),
            (
                "SELECT s.a FROM s JOIN s2 ON s.a = s2.a",
                "join of two streams",
            ),
            (
                "SELECT s.a FROM s FULL JOIN t ON s.a = t.a",
                "a Full join of a stream (on the left) with a static table (on the right)",
            ),
            (
                "SELECT a FROM t WHERE a IN (SELECT a FROM s)",
                "subquery over a stream",
            ),
        ] {
            let err = plan(sql).await.expect_err(sql).to_string();
            assert!(err.contains(operator), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn volatile_functions_are_refused() {
        let err = plan("SELECT a, random() FROM s").await.expect_err("random");
        assert!(err.to_string().contains("random()"), "{err}");
        let err = plan("SELECT uuid() FROM s").await.expect_err("uuid");
        assert!(err.to_string().contains("uuid()"), "{err}");
    }

    #[tokio::test]
    async fn bad_sql_carries_datafusions_message() {
        let err = plan("SELEC a FROM s")
            .await
            .expect_err("syntax")
            .to_string();
        assert!(err.contains("does not plan"), "{err}");
        let err = plan("SELECT nope FROM s")
            .await
            .expect_err("column")
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    /// Walk 27: a column a subquery or CTE selects and nothing above reads was left out of the
    /// stream's table, so the query, planned again against that table each batch, did not
    /// plan. Every column the query names is kept; one it never names is still left out.
    #[tokio::test]
    async fn a_stream_keeps_every_column_the_query_names() {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
            Field::new("w", DataType::Utf8, true),
        ]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        let streams: BTreeSet<String> = ["s".to_string()].into();
        for (sql, kept) in [
            ("SELECT n FROM s", vec!["n"]),
            ("SELECT n FROM (SELECT n, v FROM s) x", vec!["n", "v"]),
            (
                "WITH t AS (SELECT v, n FROM s) SELECT n FROM t",
                vec!["n", "v"],
            ),
            ("SELECT n FROM s WHERE w IS NOT NULL", vec!["n", "w"]),
        ] {
            let (state, logical) = plan_batch(&ctx, sql, 0).await.expect(sql);
            let optimized = state.optimize(&logical).expect(sql);
            let columns = stream_columns(&logical, &optimized, &streams);
            let got: Option<Vec<&str>> = columns
                .get("s")
                .map(|c| c.iter().map(String::as_str).collect());
            assert_eq!(got, Some(kept.clone()), "{sql}");
            // And the query plans against a table of those columns alone.
            let only = Arc::new(Schema::new(
                kept.iter()
                    .map(|c| schema.field_with_name(c).expect("field").clone())
                    .collect::<Vec<_>>(),
            ));
            let pruned = session(&default_settings());
            let mem = MemTable::try_new(only, vec![vec![]]).expect("table");
            pruned.register_table("s", Arc::new(mem)).expect("register");
            plan_batch(&pruned, sql, 0).await.expect(sql);
        }
        // Review: a name one stream's column has is not another's to keep (a join of two
        // streams would keep, in its state, a column of the other side that nothing reads).
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("s2", Arc::new(mem)).expect("register");
        let streams: BTreeSet<String> = ["s".to_string(), "s2".to_string()].into();
        let sql = "SELECT a.v FROM s a JOIN s2 b ON a.n = b.n";
        let (state, logical) = plan_batch(&ctx, sql, 0).await.expect(sql);
        let optimized = state.optimize(&logical).expect(sql);
        let columns = stream_columns(&logical, &optimized, &streams);
        assert_eq!(
            columns.get("s"),
            Some(&vec!["n".to_string(), "v".to_string()])
        );
        assert_eq!(columns.get("s2"), Some(&vec!["n".to_string()]));
    }

    /// The values `code` gives over the row `row` selects, as DataFusion displays them
    /// (`NULL` for a null), joined by `|`.
    async fn values_of(ctx: &SessionContext, row: &str, code: &str) -> String {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let sql = format!("SELECT {code} AS v FROM ({row}) t");
        let batches = ctx
            .sql(&sql)
            .await
            .expect(&sql)
            .collect()
            .await
            .expect(&sql);
        let options = FormatOptions::default().with_null("NULL");
        let mut values = Vec::new();
        for batch in &batches {
            let formatter = ArrayFormatter::try_new(batch.column(0), &options).expect("format");
            for i in 0..batch.num_rows() {
                values.push(formatter.value(i).to_string());
            }
        }
        values.join("|")
    }

    /// Checks that the code each advice of `table` gives first (between backticks) gives the
    /// other engine's value `expected` holds for it over `row`; advice of no function (`- `)
    /// has no value.
    async fn advice_gives(
        ctx: &SessionContext,
        row: &str,
        table: &[(&str, &str)],
        expected: &std::collections::BTreeMap<&str, &str>,
    ) {
        for (name, here) in table {
            if here.starts_with("- ") {
                assert!(!expected.contains_key(name), "{name}");
                continue;
            }
            let code = here.split('`').nth(1).expect("code");
            let value = expected
                .get(name)
                .unwrap_or_else(|| panic!("{name}: no value"));
            assert_eq!(&values_of(ctx, row, code).await, value, "{name}: {code}");
        }
    }

    /// Walk 96: Spark's `window` was said as one form of 1 minute whatever the call; it is
    /// said with the call's own column and durations, and the form runs in DataFusion giving
    /// the starts of Spark's windows for one row (Spark 4's `window` documentation: tumbling
    /// from the epoch, a slide's windows each holding the row, a start offset shifting them).
    #[tokio::test]
    async fn sparks_window_is_said_with_the_calls_own_durations() {
        let ctx = session(&default_settings());
        register_functions(&ctx);
        let row = "SELECT TIMESTAMP '2026-03-01 12:34:56' AS ts";
        for (call, form, starts) in [
            (
                "window(ts, '5 minutes')",
                "date_bin(INTERVAL '5 minutes', ts)",
                "2026-03-01T12:30:00",
            ),
            (
                "window(ts, '10 minutes', '10 minutes')",
                "date_bin(INTERVAL '10 minutes', ts)",
                "2026-03-01T12:30:00",
            ),
            (
                "window(ts, '5 minutes', '5 minutes', '2 minutes')",
                "date_bin(INTERVAL '5 minutes', ts, TIMESTAMP '1970-01-01 00:00:00' + INTERVAL \
                 '2 minutes')",
                "2026-03-01T12:32:00",
            ),
            (
                "window(ts, INTERVAL '1 hour')",
                "date_bin(INTERVAL '1 hour', ts)",
                "2026-03-01T12:00:00",
            ),
            (
                "WINDOW(ts, '5 minutes', '2 minutes')",
                "unnest(hop(ts, INTERVAL '2 minutes', INTERVAL '5 minutes'))",
                "2026-03-01T12:30:00|2026-03-01T12:32:00|2026-03-01T12:34:00",
            ),
        ] {
            let sql = format!("SELECT {call} AS w, count(*) AS n FROM s GROUP BY 1");
            let said = plan(&sql).await.expect_err(&sql).to_string();
            assert!(said.contains(&format!("`{form}`")), "{call}: {said}");
            assert!(!said.contains("INTERVAL '1 minute'"), "{call}: {said}");
            assert_eq!(values_of(&ctx, row, form).await, starts, "{call}");
        }
        // Spark SQL's double-quoted durations; a call in a `--` comment is not the query's
        // (the review).
        for sql in [
            "SELECT window(ts, \"10 minutes\") AS w, count(*) AS n FROM s GROUP BY 1",
            "SELECT -- was: window(ts, '1 minute') it's\n window(ts, '10 minutes') AS w, \
             count(*) AS n FROM s GROUP BY 1",
        ] {
            let said = plan(sql).await.expect_err(sql).to_string();
            assert!(
                said.contains("`date_bin(INTERVAL '10 minutes', ts)`")
                    && !said.contains("INTERVAL '1 minute'"),
                "{sql}: {said}"
            );
        }
        // A start offset of sliding windows has no counterpart: said, not a wrong form.
        let sql = "SELECT window(ts, '5 minutes', '1 minute', '30 seconds') AS w FROM s";
        let said = plan(sql).await.expect_err(sql).to_string();
        assert!(
            said.contains("has no counterpart with a start offset"),
            "{said}"
        );
    }

    /// Each Spark function's advice runs in DataFusion and gives Spark's value for one row
    /// (Spark 4's, worked out by hand from its documentation for this row): the advice is
    /// something to write, not a guess.
    #[tokio::test]
    async fn spark_functions_advice_gives_sparks_value() {
        let ctx = session(&default_settings());
        let row = "SELECT TIMESTAMP '2026-03-01 12:34:56' AS ts, DATE '2026-03-01' AS d, \
                   DATE '2026-02-22' AS start_date, 'a,b' AS s, CAST(7 AS BIGINT) AS n, \
                   make_array('a', 'b') AS arr, true AS c, '{\"a\":{\"b\":7}}' AS j, \
                   CAST(3 AS BIGINT) AS a, CAST(4 AS BIGINT) AS b, 0.5 AS x, 2026 AS yy, 1 AS mm, \
                   31 AS dd, 10 AS hh, 30 AS mi, 1.5 AS ss, 'YSxi' AS b64, '612C62' AS hx, \
                   '2026-03-01 12:34:56' AS t, '[1,2,3]' AS items, make_array('k1', 'k2') AS ks, \
                   make_array(1, 2) AS vs, '12.5' AS num";
        let value = |code: String| {
            let ctx = ctx.clone();
            async move { values_of(&ctx, row, &code).await }
        };
        let spark: std::collections::BTreeMap<&str, &str> = [
            ("window", "2026-03-01T12:34:00"),
            ("split", "[a, b]"),
            ("regexp_extract", "a"),
            ("explode", "a|b"),
            ("explode_outer", "a|b"),
            ("size", "2"),
            ("array_size", "2"),
            ("collect_list", "[a,b]"),
            ("collect_set", "[a,b]"),
            ("locate", "3"),
            ("year", "2026"),
            ("month", "3"),
            ("day", "1"),
            ("dayofmonth", "1"),
            ("hour", "12"),
            ("minute", "34"),
            ("second", "56"),
            ("dayofweek", "1"),
            ("dayofyear", "60"),
            ("weekofyear", "9"),
            ("quarter", "1"),
            ("unix_timestamp", "1772368496"),
            ("unix_seconds", "1772368496"),
            ("timestamp_seconds", "1970-01-01T00:00:07"),
            ("date_add", "2026-03-08"),
            ("date_sub", "2026-02-22"),
            ("datediff", "7"),
            ("rlike", "true"),
            (
                "sha2",
                "1eb7c54d52831bbfe8942af0b1c56b7409523a59ed6ca99c1174fef7eb32c1b5",
            ),
            ("percentile_approx", "7.0"),
            ("approx_percentile", "7.0"),
            ("percentile", "7.0"),
            ("approx_count_distinct", "1"),
            ("first", "7"),
            ("last", "7"),
            ("variance", "NULL"),
            ("count_if", "1"),
            ("every", "true"),
            ("any", "true"),
            ("max_by", "a,b"),
            ("min_by", "a,b"),
            ("isnull", "false"),
            ("isnotnull", "true"),
            ("if", "1"),
            ("pmod", "1"),
            ("div", "3"),
            ("startswith", "true"),
            ("endswith", "true"),
            ("typeof", "Int64"),
            ("sequence", "[1, 2, 3]"),
            ("slice", "[a]"),
            ("sort_array", "[a, b]"),
            ("unix_millis", "1772368496000"),
            ("try_divide", "3.5"),
            ("lcase", "a,b"),
            ("ucase", "A,B"),
            ("regexp_substr", ","),
            ("get_json_object", "7"),
            // Walk 108's, by Spark 4's documentation for this row.
            ("base64", "YSxi"),
            ("unbase64", "612c62"),
            ("add_months", "2026-06-01"),
            ("last_day", "2026-03-31"),
            // 1 + (1 - 22) / 31, to 8 places.
            ("months_between", "0.32258065"),
            ("array", "[3, 4]"),
            ("format_number", "7.00"),
            ("format_string", "7 items"),
            // 2026-03-01 is a Sunday.
            ("weekday", "6"),
            ("make_timestamp", "2026-01-31T10:30:01.500"),
            ("hex", "7"),
            ("unhex", "612c62"),
            ("shiftleft", "384"),
            ("shiftright", "0"),
            ("posexplode", "0|1"),
            ("to_timestamp_ntz", "2026-03-01T12:34:56"),
            ("timestamp_millis", "1970-01-01T00:00:00.007"),
            ("timestamp_micros", "1970-01-01T00:00:00.000007"),
            ("unix_micros", "1772368496000000"),
            ("unix_date", "20513"),
            ("date_from_unix_date", "1970-01-08"),
            ("dateadd", "2026-03-08T12:34:56"),
            ("timestampadd", "2026-03-08T12:34:56"),
            ("hypot", "5.0"),
            ("expm1", "0.6487212707001282"),
            ("log1p", "0.4054651081081644"),
            ("sign", "1.0"),
            ("e", "2.718281828459045"),
            ("equal_null", "false"),
            ("zeroifnull", "7"),
            ("std", "NULL"),
            ("space", "       "),
            ("json_array_length", "3"),
            ("json_tuple", "{\"b\":7}"),
            ("map_from_arrays", "{k1: 1, k2: 2}"),
            ("to_number", "12.50"),
        ]
        .into_iter()
        .collect();
        advice_gives(&ctx, row, &SPARK_FUNCTIONS, &spark).await;
        // Spark's `base64` pads to a multiple of 4; months from a column.
        assert_eq!(value("encode('ab', 'base64pad')".into()).await, "YWI=");
        assert_eq!(
            value("d + CAST(n || ' months' AS INTERVAL)".into()).await,
            "2026-10-01"
        );
        // The second ways some of them give.
        assert_eq!(
            value("CAST(CAST(d AS INT) + n AS DATE)".into()).await,
            "2026-03-08"
        );
        assert_eq!(
            value("to_unixtime('2026-03-01 12:34:56', '%Y-%m-%d %H:%M:%S')".into()).await,
            "1772368496"
        );
        // Named, not DataFusion's nearest name ("Did you mean 'mean'?").
        let err = plan("SELECT year(b) AS y FROM s")
            .await
            .expect_err("year")
            .to_string();
        assert!(
            err.contains("Spark's `year` is `date_part('year', ts)`") && !err.contains("mean"),
            "{err}"
        );
        // Walk 112: Spark's `window.start` failed on the column, before the call was seen.
        let err = plan(
            "SELECT window.start AS ws, count(*) AS n FROM s GROUP BY window(ts, '10 seconds', \
             '5 seconds')",
        )
        .await
        .expect_err("window.start")
        .to_string();
        assert!(
            err.contains(
                "Spark's sliding `window(ts, '10 seconds', '5 seconds')` is \
                          `unnest(hop(ts, INTERVAL '5 seconds', INTERVAL '10 seconds'))`"
            ),
            "{err}"
        );
        // Walk 108: "Invalid function 'base64'. Did you mean 'asin'?"; Spark's date `trunc`
        // was told of DataFusion's numeric one alone; an aggregate's `FILTER (WHERE ...)` is
        // no call of Spark's `filter`.
        let err = plan("SELECT base64(b) AS e, last_day(to_date(b)) AS l FROM s")
            .await
            .expect_err("base64")
            .to_string();
        assert!(
            err.contains("Spark's `base64` is `encode(s, 'base64pad')`")
                && err.contains("Spark's `last_day` is")
                && !err.contains("asin"),
            "{err}"
        );
        let err = plan("SELECT trunc(to_date(b), 'MM') AS m FROM s")
            .await
            .expect_err("trunc")
            .to_string();
        assert!(
            err.contains("`CAST(date_trunc('month', d) AS DATE)`"),
            "{err}"
        );
        assert!(
            calls_in(
                "SELECT count(*) FILTER (WHERE a > 1), filter(arr, x -> x > 1) FROM s",
                SPARK_FUNCTIONS.iter()
            )
            .len()
                == 1
        );
    }

    /// Walk 93: Flink's names (`TO_TIMESTAMP_LTZ`, `TIMESTAMPDIFF`, `LISTAGG`) got a bare
    /// "Invalid function". Each is named with what DataFusion writes, which gives Flink's value
    /// for the row (Flink 2.x's documented results).
    #[tokio::test]
    async fn flink_functions_advice_gives_flinks_value() {
        let ctx = session(&default_settings());
        let row = "SELECT TIMESTAMP '2026-03-01 12:34:56' AS ts, TIMESTAMP '2026-03-01 12:00:00' \
                   AS start_ts, 'a,b' AS s, CAST(7 AS BIGINT) AS n";
        let flink: std::collections::BTreeMap<&str, &str> = [
            ("to_timestamp_ltz", "1970-01-01T00:00:00.007"),
            ("timestampdiff", "2096"),
            ("listagg", "a,b"),
        ]
        .into_iter()
        .collect();
        advice_gives(&ctx, row, &FLINK_FUNCTIONS, &flink).await;
        // Whole seconds between times with fractions, as Flink counts them (the review).
        let fractions = "SELECT TIMESTAMP '2026-03-01 00:00:01.1' AS ts, TIMESTAMP \
                         '2026-03-01 00:00:00.9' AS start_ts";
        let code = FLINK_FUNCTIONS[1].1.split('`').nth(1).expect("code");
        assert_eq!(values_of(&ctx, fractions, code).await, "0");
        let err = plan("SELECT listagg(b, ',') AS l FROM s")
            .await
            .expect_err("listagg")
            .to_string();
        assert!(
            err.contains("Flink's `LISTAGG` is `string_agg(s, ',')`")
                && !err.contains("Did you mean"),
            "{err}"
        );
    }

    /// Walk 28: DuckDB's names (`time_bucket`, `strftime`, `epoch_ms`) got DataFusion's
    /// nearest name ("Did you mean 'list_except'?"). Each is named with what DataFusion
    /// writes, and that gives DuckDB's value: the values below are DuckDB 2.0.1's for the
    /// row (`SELECT <call> FROM (<row>)` in its Python client), as DataFusion displays them.
    #[tokio::test]
    async fn duckdb_functions_advice_gives_duckdbs_value() {
        let ctx = session(&default_settings());
        let row = "SELECT TIMESTAMP '2026-03-01 12:34:56.123' AS ts, 'a,b' AS s, CAST(7 AS \
                   BIGINT) AS n, '2026-03-01 12:34:56' AS t, true AS c, '{\"a\":{\"b\":7}}' AS j";
        let duckdb: std::collections::BTreeMap<&str, &str> = [
            ("time_bucket", "2026-03-01T12:34:00"),
            ("strftime", "2026-03-01 12:34"),
            ("strptime", "2026-03-01T12:34:56"),
            ("epoch", "1772368496.123"),
            ("epoch_ms", "1772368496123"),
            ("epoch_us", "1772368496123000"),
            ("string_split", "[a, b]"),
            ("str_split", "[a, b]"),
            ("arg_max", "a,b"),
            ("arg_min", "a,b"),
            ("len", "3"),
            ("regexp_matches", "true"),
            ("struct_pack", "{x: 7}"),
            ("json_extract_string", "7"),
            ("json_extract", "{\"b\":7}"),
            ("group_concat", "a,b"),
            ("list", "[a,b]"),
            ("countif", "1"),
            ("date_diff", "0"),
            ("format", "7 items"),
            ("printf", "7 items"),
            // DuckDB: timezone('Europe/Berlin', ts) = 2026-03-01 11:34:56.123+00.
            ("timezone", "2026-03-01T11:34:56.123Z"),
            ("quantile_disc", "7"),
            ("quantile", "7"),
            ("percentile_disc", "7"),
            ("arbitrary", "7"),
            ("fsum", "7.0"),
            ("sumkahan", "7.0"),
            ("kahan_sum", "7.0"),
            ("favg", "7.0"),
            ("sem", "0.0"),
        ]
        .into_iter()
        .collect();
        advice_gives(&ctx, row, &DUCKDB_FUNCTIONS, &duckdb).await;
        // Walk 103 (5): DuckDB's discrete quantile (0.3 of 1..4, of 1..5, of 6..1: 2; 0.55 of
        // 1..100: 55), which `percentile_cont` (DataFusion's nearest name) is not.
        let disc = DUCKDB_FUNCTIONS
            .iter()
            .find(|(n, _)| *n == "quantile_disc")
            .map(|(_, a)| a.split('`').nth(1).expect("code").replace("50 *", "30 *"))
            .expect("quantile_disc");
        for (rows, duckdb) in [
            ("(1), (2), (3), (4)", "2"),
            ("(1), (2), (NULL), (3), (4), (5)", "2"),
            ("(6), (5), (4), (3), (2), (1)", "2"),
        ] {
            let rows = format!("SELECT * FROM (VALUES {rows}) AS v(n)");
            assert_eq!(values_of(&ctx, &rows, &disc).await, duckdb, "{rows}");
        }
        let hundred = "SELECT CAST(value AS BIGINT) AS n FROM generate_series(1, 100)";
        assert_eq!(
            values_of(&ctx, hundred, &disc.replace("30 *", "55 *")).await,
            "55"
        );
        // Walk 103 (4): DuckDB's `arg_min`/`arg_max` pass over a row whose value or order is
        // null (DuckDB 2.0.1: `w` and `x` over these rows).
        let rows = "SELECT * FROM (VALUES (NULL, -1), ('x', 2), ('y', NULL), (NULL, 3), \
                    ('w', 0)) AS v(s, n)";
        for (name, duckdb) in [("arg_min", "w"), ("arg_max", "x")] {
            let advice = DUCKDB_FUNCTIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| a.split('`').nth(1).expect("code"))
                .expect(name);
            assert_eq!(values_of(&ctx, rows, advice).await, duckdb, "{name}");
        }
        // DuckDB's weeks start on a Monday (2026-02-23), as the advice's origin does.
        let monday = "date_bin(INTERVAL '7 days', ts, TIMESTAMP '2000-01-03')";
        assert_eq!(values_of(&ctx, row, monday).await, "2026-02-23T00:00:00");
        let err = plan("SELECT time_bucket(INTERVAL '1 minute', b) AS w FROM s")
            .await
            .expect_err("time_bucket")
            .to_string();
        assert!(
            err.contains("DuckDB's `time_bucket` is `date_bin(INTERVAL '1 minute', ts)`")
                && !err.contains("Did you mean"),
            "{err}"
        );
    }

    /// Walk 103: DuckDB's `kurtosis`, `skewness`, `product` (Spark has them too) got
    /// DataFusion's nearest name ("Did you mean 'strpos'?"). Each is said with a query or an
    /// expression that gives, over these groups, DuckDB 2.0.1's value (`kurtosis(x)` and the
    /// rest over the same rows in its Python client), to a double's last digits; Spark's
    /// uncorrected `skewness` is checked against the population moments computed apart
    /// (1.3608927294433224 for the first group).
    #[tokio::test]
    async fn statistics_other_engines_have_are_computed_as_they_compute_them() {
        let ctx = session(&default_settings());
        let rows = "SELECT k, CAST(x AS DOUBLE) AS x FROM (VALUES ('a', 1.0), ('a', 2.0), \
                    ('a', 2.0), ('a', 3.0), ('a', 10.0), ('a', NULL), ('b', 4.0), ('b', 4.0), \
                    ('b', 4.0), ('b', 4.0), ('c', 1.5), ('c', -2.0), ('d', NULL)) AS v(k, x)";
        let nan = f64::NAN;
        let duckdb: std::collections::BTreeMap<&str, [Option<f64>; 4]> = [
            ("kurtosis", [Some(4.272146531742894), None, None, None]),
            (
                "kurtosis_pop",
                [Some(0.0680366329357236), None, Some(-2.0), None],
            ),
            ("skewness", [Some(2.028699102080333), None, None, None]),
            ("product", [Some(120.0), Some(256.0), Some(-3.0), None]),
            (
                "geomean",
                [Some(2.605171084697352), Some(4.0), Some(nan), None],
            ),
            (
                "geometric_mean",
                [Some(2.605171084697352), Some(4.0), Some(nan), None],
            ),
        ]
        .into_iter()
        .collect();
        let run = |code: String| {
            let sql = if code.starts_with("SELECT") {
                let inner = code.replace(
                    "FROM s GROUP BY k",
                    &format!("FROM ({rows}) AS s GROUP BY k"),
                );
                format!("SELECT * FROM ({inner}) ORDER BY k")
            } else {
                format!("SELECT k, {code} AS v FROM ({rows}) AS s GROUP BY k ORDER BY k")
            };
            let ctx = ctx.clone();
            async move {
                let batches = ctx
                    .sql(&sql)
                    .await
                    .expect(&sql)
                    .collect()
                    .await
                    .expect(&sql);
                let mut values = Vec::new();
                for batch in &batches {
                    let column = datafusion::arrow::compute::cast(
                        batch.column(1),
                        &datafusion::arrow::datatypes::DataType::Float64,
                    )
                    .expect("cast");
                    let column = column
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::Float64Array>()
                        .expect("doubles");
                    values.extend(column.iter());
                }
                values
            }
        };
        let close = |got: &[Option<f64>], want: &[Option<f64>]| {
            got.len() == want.len()
                && got.iter().zip(want).all(|(g, w)| match (g, w) {
                    (Some(g), Some(w)) if w.is_nan() => g.is_nan(),
                    (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                    (None, None) => true,
                    _ => false,
                })
        };
        for (name, here) in &STATISTICS {
            if here.starts_with("- ") {
                assert!(!duckdb.contains_key(name), "{name}");
                continue;
            }
            let code = here.split('`').nth(1).expect("code").to_string();
            let want = duckdb
                .get(name)
                .unwrap_or_else(|| panic!("{name}: no value"));
            let got = run(code.clone()).await;
            assert!(
                close(&got, want),
                "{name}: {code}: {got:?}, DuckDB {want:?}"
            );
        }
        let spark_skewness = STATISTICS
            .iter()
            .find(|(n, _)| *n == "skewness")
            .map(|(_, a)| a.split('`').nth(5).expect("Spark's"))
            .expect("skewness");
        let skewness = STATISTICS[2].1.split('`').nth(1).expect("code");
        let at = skewness.find("CASE").expect("CASE");
        let end = skewness.find(" AS skewness").expect("AS");
        let spark = format!("{}{spark_skewness}{}", &skewness[..at], &skewness[end..]);
        let got = run(spark.clone()).await;
        assert!(
            close(&got, &[Some(1.3608927294433224), None, Some(0.0), None]),
            "{spark}: {got:?}"
        );
        let err = plan("SELECT kurtosis(b) AS x FROM s")
            .await
            .expect_err("kurtosis")
            .to_string();
        assert!(
            err.contains("DuckDB's and Spark's `kurtosis` is `SELECT k, CASE WHEN c > 3")
                && !err.contains("Did you mean"),
            "{err}"
        );
        // Walk 104 (6): each of several such names is said at once, Spark's too.
        let err = plan("SELECT max_by(b, ts) AS y, kurtosis(a) AS k, arg_max(b, ts) AS x FROM s")
            .await
            .expect_err("three names")
            .to_string();
        assert!(
            err.contains("DuckDB's and Spark's `kurtosis` is")
                && err.contains("; DuckDB's `arg_max` is `first_value(s ORDER BY n DESC)")
                && err.contains("(Spark's `max_by` is `first_value(s ORDER BY n DESC NULLS LAST)`")
                && !err.contains("Did you mean"),
            "{err}"
        );
        let err = plan("SELECT mode(b) AS x FROM s")
            .await
            .expect_err("mode")
            .to_string();
        assert!(
            err.contains("no aggregate here is DuckDB's or Spark's `mode`: count each value")
                && !err.contains("Did you mean"),
            "{err}"
        );
    }

    /// Walk 55's oracle (a RIGHT join of views and buys, both with `id` and `ts`): DataFusion
    /// 55's physical filter pushdown moved the `WHERE` above the join, which reads both sides,
    /// into the right side whole (its columns found there by name), and gave a row the `WHERE`
    /// refuses. Sluice's sessions keep the filter above the join: DuckDB's answer (no row).
    #[tokio::test]
    async fn a_filter_over_a_join_of_same_named_columns_reads_each_side() {
        let ctx = session(&default_settings());
        // Nullable columns, as a batch's tables have.
        for sql in [
            "CREATE TABLE views (id BIGINT, user_id BIGINT, page VARCHAR, ts TIMESTAMP)",
            "INSERT INTO views VALUES (294, 2, 'help', TIMESTAMP '2025-11-01T12:31:32'), \
             (277, 2, 'product', TIMESTAMP '2025-11-01T12:31:15')",
            "CREATE TABLE buys (id BIGINT, user_id BIGINT, page VARCHAR, ts TIMESTAMP)",
            "INSERT INTO buys VALUES (198, 2, 'cart', TIMESTAMP '2025-11-01T12:31:58')",
        ] {
            ctx.sql(sql).await.expect(sql).collect().await.expect(sql);
        }
        let sql = "SELECT v.id AS view, b.id AS buy FROM views v RIGHT JOIN buys b \
                   ON v.user_id = b.user_id AND b.ts BETWEEN v.ts - INTERVAL '5 seconds' \
                   AND v.ts + INTERVAL '40 seconds' AND v.page <> 'help' \
                   WHERE (v.id IS NOT NULL AND b.id IS NOT NULL) \
                   OR (v.id IS NULL AND b.ts + INTERVAL '5 seconds' < TIMESTAMP '2025-11-01T12:31:32')";
        let rows: usize = ctx
            .sql(sql)
            .await
            .expect(sql)
            .collect()
            .await
            .expect(sql)
            .iter()
            .map(datafusion::arrow::record_batch::RecordBatch::num_rows)
            .sum();
        assert_eq!(
            rows, 0,
            "the row of buy 198 without a view is not before the time"
        );
    }

    /// Walk 39 (W1 to W4): what means another thing in DataFusion's SQL than in PostgreSQL's
    /// and DuckDB's is said, and only that.
    /// Walk 61 (16): update mode without `key:` names the key from the query's text.
    #[test]
    fn the_grouping_columns_are_named_as_the_output_names_them() {
        let names = |sql: &str| grouping_output_names(sql).map(|(what, n)| (what, n.join(",")));
        let grouped = |n: &str| Some(("GROUP BY", n.to_string()));
        assert_eq!(
            names("SELECT page, count(*) AS n FROM clicks GROUP BY page"),
            grouped("page")
        );
        assert_eq!(
            names(
                "SELECT date_trunc('day', ts) AS day, c.Product, sum(v) FROM clicks c \
                 GROUP BY date_trunc('day', ts), c.product"
            ),
            grouped("day,product")
        );
        assert_eq!(
            names("SELECT \"Page\" AS p, count(*) FROM t GROUP BY 1"),
            grouped("p")
        );
        assert_eq!(
            names("SELECT upper(page) AS up, count(*) FROM t GROUP BY up"),
            grouped("up")
        );
        assert_eq!(
            names("SELECT DISTINCT ON (user_id) user_id, ts FROM t ORDER BY user_id, ts DESC"),
            Some(("DISTINCT ON", "user_id".to_string()))
        );
        // A group column not selected, or selected without a name, and no grouping at all.
        assert_eq!(names("SELECT count(*) FROM t GROUP BY page"), None);
        assert_eq!(
            names("SELECT upper(page), count(*) FROM t GROUP BY upper(page)"),
            None
        );
        assert_eq!(names("SELECT page, count(*) FROM t GROUP BY 3"), None);
        assert_eq!(names("SELECT * FROM t"), None);
        assert_eq!(names("not sql"), None);
    }

    #[tokio::test]
    async fn what_datafusion_means_otherwise_is_said() {
        use datafusion::arrow::datatypes::TimeUnit;
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new(
                "z",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                true,
            ),
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("n", DataType::Int64, true),
            Field::new("w", DataType::Utf8, true),
        ]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        let notes = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let (_, plan) = plan_batch(&ctx, sql, 0).await.expect(sql);
                dialect_notes(sql, &plan).join("\n")
            }
        };
        for (sql, says) in [
            (
                "SELECT d + 0.005 AS x FROM s",
                "`0.005` meets a decimal column as a double",
            ),
            ("SELECT d * 1.1 AS x FROM s", "`1.1` meets a decimal column"),
            ("SELECT CAST(d AS INT) AS x FROM s", "cuts off the fraction"),
            (
                "SELECT z AT TIME ZONE 'America/New_York' AS x FROM s",
                "to_local_time(s.z AT TIME ZONE 'America/New_York')",
            ),
            // Walk 59 (5): taken to the local time in one place, not in the other.
            (
                "SELECT to_local_time(z AT TIME ZONE 'America/New_York') AS a, \
                 z AT TIME ZONE 'America/New_York' AS b FROM s",
                "to_local_time(s.z AT TIME ZONE 'America/New_York')",
            ),
            (
                "SELECT z AT TIME ZONE 'America/New_York' AS b, count(*) AS c FROM s \
                 GROUP BY z AT TIME ZONE 'America/New_York'",
                "to_local_time(s.z AT TIME ZONE 'America/New_York')",
            ),
            (
                "SELECT CAST(t AS TIMESTAMP WITH TIME ZONE) AS x FROM s",
                "is a timestamp without a zone here",
            ),
            // Walk 86: a wall-clock time the clocks skip or repeat fails the batch.
            (
                "SELECT t AT TIME ZONE 'Europe/Berlin' AS x FROM s",
                "`to_utc_timestamp(s.t, 'Europe/Berlin')` reads those as Spark does",
            ),
            // Walk 59 (1): a top N of a nullable column took its nulls first.
            (
                "SELECT n, d FROM s ORDER BY d DESC LIMIT 2",
                "`ORDER BY s.d DESC` puts nulls first, as PostgreSQL and DataFusion do; Spark \
                 and DuckDB put them last (and leave them out of a top N): for theirs write \
                 `ORDER BY s.d DESC NULLS LAST`",
            ),
            (
                "SELECT array_agg(n ORDER BY d DESC) AS top FROM s",
                "`array_agg(... ORDER BY s.d DESC NULLS LAST)`",
            ),
            (
                "SELECT DISTINCT ON (n) n, d FROM s ORDER BY n, d DESC",
                "`DISTINCT ON (...) ... ORDER BY s.d DESC NULLS LAST`",
            ),
            // Walk 108: Spark's functions of these names give other values here.
            (
                "SELECT regexp_replace(w, ',', ';') AS x FROM s",
                "for that write `regexp_replace(s, p, r, 'g')`",
            ),
            (
                "SELECT concat(w, 'x') AS x FROM s",
                "for that write `a || b`",
            ),
            (
                "SELECT array_remove(make_array(n, n), n) AS x FROM s",
                "`array_remove_all(arr, x)`",
            ),
            (
                "SELECT from_unixtime(n, 'yyyy-MM-dd') AS x FROM s",
                "`to_char(to_timestamp_seconds(n), '%Y-%m-%d')`",
            ),
            (
                "SELECT regexp_match(w, '(\\\\d+)') AS x FROM s",
                "for Spark's pattern write `(\\d+)`",
            ),
            // Walk 104 (1): the newest row of a key by a window function.
            (
                "SELECT n FROM (SELECT n, row_number() OVER (PARTITION BY n ORDER BY d DESC) \
                 AS rn FROM s) WHERE rn = 1",
                "`row_number() OVER (... ORDER BY s.d DESC NULLS LAST)`",
            ),
            (
                "SELECT date_bin(INTERVAL '1 day', z AT TIME ZONE 'Europe/Berlin') AS d, \
                 count(*) AS c FROM s GROUP BY 1",
                "bins by days from midnight UTC (1970-01-01T00:00:00Z), not from \
                 Europe/Berlin's midnights",
            ),
            (
                "SELECT t::timestamptz AS x FROM s",
                "is a timestamp without a zone here",
            ),
            (
                "SELECT CAST(t AS VARCHAR) AS x FROM s",
                "writes a time as text in ISO 8601 with a `T`",
            ),
            (
                "SELECT CAST(z AS VARCHAR) AS x FROM s",
                "for their form to the second write `to_char(s.z, '%Y-%m-%d %H:%M:%S')`",
            ),
        ] {
            let said = notes(sql).await;
            assert!(said.contains(says), "{sql}: {said}");
        }
        for sql in [
            "SELECT d + 1 AS x, n * 1.5 AS y, d > 0.5 AS c FROM s",
            "SELECT CAST(n AS INT) AS x, round(d) AS r FROM s",
            "SELECT t AT TIME ZONE 'UTC' AS x, z > now() AS later FROM s",
            // Walk 55 (11): the note's own advice, taken, is not noted again.
            "SELECT to_local_time(z AT TIME ZONE 'Europe/Paris') AS x FROM s",
            "SELECT date_part('hour', to_local_time(z AT TIME ZONE 'Europe/Paris')) AS h FROM s",
            // Walk 70 (4): inside a `CASE` (a zone per site) too.
            "SELECT CASE WHEN n > 0 THEN to_local_time((t AT TIME ZONE 'UTC') AT TIME ZONE \
             'Europe/Berlin') ELSE to_local_time((t AT TIME ZONE 'UTC') AT TIME ZONE \
             'America/New_York') END AS l FROM s",
            "SELECT CASE WHEN t > TIMESTAMP '2000-01-01' THEN to_local_time((t AT TIME ZONE \
             'UTC') AT TIME ZONE 'Europe/Berlin') END AS l FROM s",
            "SELECT 'TIMESTAMP WITH TIME ZONE' AS x FROM s",
            "SELECT n FROM s ORDER BY d DESC NULLS FIRST, n",
            "SELECT n FROM s ORDER BY d, n DESC NULLS LAST",
            "SELECT array_agg(n ORDER BY d DESC NULLS LAST) AS top FROM s",
            // Walk 108: the forms the notes give, and a pattern of one backslash.
            "SELECT regexp_replace(w, ',', ';', 'g') AS x, w || 'x' AS y, \
             regexp_match(w, '(\\d+)') AS z, concat('a', 'b') AS c FROM s",
            // Walk 104 (6): DuckDB's `arg_max` as advised leaves the null orders out.
            "SELECT first_value(n ORDER BY d DESC) FILTER (WHERE n IS NOT NULL AND d IS NOT \
             NULL) AS f FROM s",
            "SELECT to_char(t, '%Y-%m-%d %H:%M:%S') AS x FROM s",
            // Walk 98 (6a): the query's own cast to a double, told to be a decimal again.
            "SELECT CAST(d AS DOUBLE) * 1.5 AS x, TRY_CAST(s.d AS FLOAT) + 0.5 AS y FROM s",
        ] {
            assert_eq!(notes(sql).await, "", "{sql}");
        }
    }

    /// Walk 59 (6): DuckDB's `//` got DataFusion's "Operator DIV is not yet supported"
    /// alone; the refusal says what to write, and what it says gives DuckDB's value.
    #[tokio::test]
    async fn duckdbs_integer_division_operator_is_answered() {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        let said = plan_batch(&ctx, "SELECT n // 7 AS d FROM s", 0)
            .await
            .expect_err("DIV")
            .to_string();
        assert!(
            said.contains(
                "DuckDB's `a // b`, the whole part of a quotient, is `a / b` of two \
                           integers here"
            ),
            "{said}"
        );
        let rows = ctx
            .sql("SELECT CAST(45 AS BIGINT) / 7 AS a, floor(-4.5 / 2) AS b")
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .expect("show")
            .to_string();
        // DuckDB: 45 // 7 = 6, -4.5 // 2 = -3.0.
        assert!(shown.contains("| 6 | -3.0 |"), "{shown}");
    }

    /// Walk 43 (W1): an average or a quotient of decimals cuts its digits off where Spark and
    /// PostgreSQL round. It is said, and the rounding the note gives rounds.
    #[tokio::test]
    async fn a_decimal_average_or_quotient_is_said_with_a_rounding_that_works() {
        use datafusion::arrow::array::{ArrayRef, Decimal128Array, Int64Array};
        use datafusion::arrow::record_batch::RecordBatch;
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("n", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(
                    Decimal128Array::from(vec![1, 1, 0])
                        .with_precision_and_scale(10, 2)
                        .expect("decimal"),
                ) as ArrayRef,
                Arc::new(Int64Array::from(vec![3_i64, 3, 3])),
            ],
        )
        .expect("rows");
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![rows]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        for (sql, cut, rounded) in [
            ("SELECT avg(d) AS x FROM s", "0.006666", "0.006667"),
            // Walk 59 (5): rounded in one place, not in the other (the first column).
            (
                "SELECT avg(d) AS x, round(avg(d), 2) AS r FROM s",
                "0.006666",
                "0.006667",
            ),
            (
                "SELECT sum(d) / 3 AS x, round(sum(d) / 3, 1) AS r FROM s",
                "0.006666",
                "0.006667",
            ),
            (
                "SELECT sum(d) / CAST(3 AS DECIMAL(10, 2)) AS x FROM s",
                "0.006666",
                "0.006667",
            ),
            ("SELECT d / n AS x FROM s", "0.003333", "0.003333"),
            ("SELECT d / 3 AS x FROM s", "0.003333", "0.003333"),
        ] {
            let (_, plan) = plan_batch(&ctx, sql, 0).await.expect(sql);
            let said = dialect_notes(sql, &plan).join("\n");
            let code = said
                .split("For a rounded decimal")
                .nth(1)
                .and_then(|advice| advice.split('`').nth(1))
                .unwrap_or_else(|| panic!("{sql}: {said}"));
            let value = |sql: String| {
                let ctx = ctx.clone();
                async move {
                    let batches = ctx.sql(&sql).await.expect(&sql).collect().await;
                    let batches = batches.expect(&sql);
                    datafusion::arrow::util::display::array_value_to_string(batches[0].column(0), 0)
                        .expect("text")
                }
            };
            assert_eq!(value(sql.to_string()).await, cut, "{sql}");
            let advised = format!("SELECT {code} AS v FROM s");
            assert_eq!(value(advised.clone()).await, rounded, "{sql}: {code}");
            // Walk 98 (6b): the advice, taken, was said again with another rounding.
            let (_, plan) = plan_batch(&ctx, &advised, 0).await.expect(&advised);
            let again = dialect_notes(&advised, &plan).join("\n");
            assert!(!again.contains("cuts off the rest"), "{advised}: {again}");
        }
        for sql in [
            "SELECT avg(n) AS x, avg(CAST(d AS DOUBLE)) AS y FROM s",
            "SELECT d * 2 AS x, n / 2 AS y FROM s",
            "SELECT round(avg(CAST(d AS DECIMAL(11, 3))), 6) AS x FROM s",
            "SELECT trunc(d / 3, 2) AS y FROM s",
            "SELECT d / 2 AS x, d / 100 AS y FROM s",
        ] {
            let (_, plan) = plan_batch(&ctx, sql, 0).await.expect(sql);
            let said = dialect_notes(sql, &plan).join("\n");
            assert!(!said.contains("cuts off the rest"), "{sql}: {said}");
        }
    }

    /// Walk 67 (7): `user.id` of a struct column `user` was advised `col['field']`; `user`
    /// is a keyword, so the column is quoted. The advice plans.
    #[tokio::test]
    async fn a_struct_column_named_by_a_keyword_is_answered_with_quotes() {
        let ctx = session(&default_settings());
        let user = DataType::Struct(vec![Field::new("id", DataType::Int64, true)].into());
        let schema = Arc::new(Schema::new(vec![Field::new("user", user, true)]));
        let mem = MemTable::try_new(schema, vec![vec![]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        let err = plan_batch(&ctx, "SELECT user.id FROM s", 0)
            .await
            .expect_err("a keyword")
            .to_string();
        assert!(
            err.contains("`user` is an SQL keyword") && err.contains("`\"user\"['field']`"),
            "{err}"
        );
        plan_batch(&ctx, "SELECT \"user\"['id'] AS id FROM s", 0)
            .await
            .expect("the advice plans");
    }

    /// Walk 45 (U1, U2): Flink SQL's window table functions, `EMIT` and temporal joins got
    /// the parser's words alone. Each names Sluice's way; the TUMBLE advice plans.
    #[tokio::test]
    async fn flink_streaming_sql_is_answered_with_sluices_way() {
        use datafusion::arrow::datatypes::TimeUnit;
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("k", DataType::Utf8, true),
        ]));
        for name in ["s", "t"] {
            let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
            ctx.register_table(name, Arc::new(mem)).expect("register");
        }
        for (sql, says) in [
            (
                "SELECT window_start, count(*) FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), \
                 INTERVAL '1' MINUTE)) GROUP BY window_start",
                "`date_bin(INTERVAL '1 minute', ts)`",
            ),
            (
                "SELECT TUMBLE_START(ts, INTERVAL '1' MINUTE), count(*) FROM s \
                 GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)",
                "`date_bin(INTERVAL '1 minute', ts)`",
            ),
            (
                "SELECT * FROM TABLE(HOP(TABLE s, DESCRIPTOR(ts), INTERVAL '1' MINUTE, \
                 INTERVAL '5' MINUTE))",
                "`unnest(hop(ts, slide, size))`",
            ),
            (
                "SELECT SESSION_START(ts, INTERVAL '30' SECOND) FROM s \
                 GROUP BY SESSION(ts, INTERVAL '30' SECOND)",
                "`session_window(ts, INTERVAL '30 seconds')`",
            ),
            (
                "SELECT * FROM TABLE(CUMULATE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' MINUTE, \
                 INTERVAL '1' HOUR))",
                "CUMULATE window has no form here",
            ),
            (
                "SELECT k, count(*) FROM s GROUP BY k EMIT CHANGES",
                "no EMIT clause",
            ),
            (
                "SELECT s.k FROM s JOIN t FOR SYSTEM_TIME AS OF s.ts AS u ON s.k = u.k",
                "declare it under `tables:`",
            ),
            // Walk 62 (12, 13).
            (
                "SELECT k, ts FROM s WHERE ts > CURRENT_WATERMARK(ts)",
                "CURRENT_WATERMARK has no form here",
            ),
            (
                "CREATE TABLE c2 (ts TIMESTAMP(3), k STRING, WATERMARK FOR ts AS ts - \
                 INTERVAL '5' SECOND) WITH ('connector' = 'x'); SELECT k FROM c2",
                "not in SQL DDL: `sources: { c: { ..., watermark: { column: ts, delay: 5s } } }`",
            ),
        ] {
            let err = plan_batch(&ctx, sql, 0).await.expect_err(sql).to_string();
            assert!(err.contains(says), "{sql}: {err}");
            assert!(!err.contains("Did you mean"), "{sql}: {err}");
        }
        // The advice, as written, plans.
        let advised = "SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, count(*) \
                       FROM s GROUP BY 1";
        plan_batch(&ctx, advised, 0).await.expect(advised);
        // A column named `emit` is no EMIT clause.
        let sql = "SELECT k AS emit FROM s GROUP BY nope";
        let err = plan_batch(&ctx, sql, 0).await.expect_err(sql).to_string();
        assert!(!err.contains("EMIT clause"), "{err}");
        // U4: a session gap written as text, as Spark takes it, is named as such.
        let sql = "SELECT session_window(ts, '30 seconds') AS w, count(*) FROM s GROUP BY 1";
        let err = plan_batch(&ctx, sql, 0).await.expect_err(sql).to_string();
        assert!(
            err.contains("takes an interval as its gap, as `INTERVAL '30 seconds'`"),
            "{err}"
        );
    }

    /// Walk 44 (U2): an integer division was said as DataFusion displays it, without the
    /// parentheses its operands need (`a.v + Int64(1) / a.v + Int64(3)`, which means another
    /// thing). It is said as SQL, as written.
    #[tokio::test]
    async fn an_integer_division_is_said_as_sql() {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        let sql = "SELECT (v + 1) / (v + 3) AS q FROM s";
        let (_, plan) = plan_batch(&ctx, sql, 0).await.expect(sql);
        assert_eq!(integer_divisions(&plan), ["(s.v + 1) / (s.v + 3)"]);
    }

    /// A literal integer or decimal zero divisor is found under the casts coercion puts on it;
    /// a column, a nonzero literal and a floating-point zero (infinity) are not.
    #[tokio::test]
    async fn a_literal_zero_divisor_is_found() {
        let ctx = session(&default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("f", DataType::Float64, true),
        ]));
        let mem = MemTable::try_new(Arc::clone(&schema), vec![vec![]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        for (sql, found) in [
            ("SELECT n / 0 AS x FROM s", "s.n / 0"),
            ("SELECT n % 0 AS x FROM s", "s.n % 0"),
            ("SELECT d / 0 AS x FROM s", "/ "),
            ("SELECT sum(n) / 0 AS x FROM s", "/ 0"),
            ("SELECT 1 / 0 AS x", "1 / 0"),
            ("SELECT n / CAST(0.4 AS BIGINT) AS x FROM s", "s.n / "),
            ("SELECT n / CAST(-0.0 AS BIGINT) AS x FROM s", "s.n / "),
        ] {
            let (_, plan) = plan_batch(&ctx, sql, 0).await.expect(sql);
            let said = zero_divisions(&plan).join("; ");
            assert!(said.contains(found), "{sql}: {said}");
            assert!(!said.contains("Int64("), "{sql}: {said}");
        }
        for sql in [
            "SELECT n / 2 AS x, n / n AS y FROM s",
            "SELECT f / 0 AS x, n / 0.0 AS y FROM s",
            "SELECT n / NULLIF(n, 0) AS x FROM s",
            "SELECT CASE WHEN n > 0 THEN n ELSE n / 0 END AS x FROM s",
        ] {
            let (_, plan) = plan_batch(&ctx, sql, 0).await.expect(sql);
            assert_eq!(zero_divisions(&plan), Vec::<String>::new(), "{sql}");
        }
    }

    /// Walk 29 (10): a constant that does not compute (`CAST('2026-13-01' AS DATE)`) was
    /// said as "Optimizer rule 'simplify_expressions' failed caused by ...".
    #[test]
    fn a_constant_that_does_not_compute_is_said_without_the_optimizer_rule() {
        let e = DataFusionError::Context(
            "Optimizer rule 'simplify_expressions' failed".into(),
            Box::new(DataFusionError::ArrowError(
                Box::new(datafusion::arrow::error::ArrowError::CastError(
                    "Cannot cast string '2026-13-01' to value of Date32 type".into(),
                )),
                None,
            )),
        );
        let said = sql_text(&e);
        assert!(
            said.starts_with("a constant in the query does not compute: ")
                && said.contains("'2026-13-01'")
                && !said.contains("Optimizer"),
            "{said}"
        );
    }

    /// Walk 34 (6): a selected column missing from GROUP BY was said as DataFusion's
    /// "While expanding wildcard", with no wildcard in the query.
    #[tokio::test]
    async fn a_column_neither_grouped_nor_aggregated_is_named() {
        let err = plan("SELECT a, b, count(*) AS n FROM s GROUP BY a")
            .await
            .expect_err("b is not grouped")
            .to_string();
        assert!(
            err.contains("the query selects `b`, which is neither in its GROUP BY nor inside an aggregate function")
                && err.contains("`GROUP BY ..., b`")
                && !err.contains("wildcard"),
            "{err}"
        );
    }

    /// Walk 28: `sum` over a text column said "likely caused by a bug in DataFusion's code";
    /// a file named as a table (`FROM 'in/a.json'`) was said to read `json`; DuckDB's
    /// `read_csv` got no word on how files are read here. Each is named with the way.
    #[tokio::test]
    async fn a_text_column_in_arithmetic_and_duckdb_habits_are_named() {
        let err = plan("SELECT sum(b) AS n FROM s")
            .await
            .expect_err("sum")
            .to_string();
        assert!(
            err.contains("`sum` takes no argument of type `text`; it takes sum(Decimal)")
                && err.contains("`CAST(n AS DOUBLE)`")
                && !err.contains("bug"),
            "{err}"
        );
        let err = plan("SELECT b + 1 AS n FROM s")
            .await
            .expect_err("+")
            .to_string();
        assert!(err.contains("text in arithmetic: cast the column"), "{err}");
        let err = plan("SELECT * FROM read_csv('in/a.csv')")
            .await
            .expect_err("read_csv")
            .to_string();
        assert!(
            err.contains("DuckDB's `read_csv` reads a file inside a query")
                && err.contains("a `files` source with `format: csv`"),
            "{err}"
        );
        let err = plan("SELECT * FROM 'in/a.json'")
            .await
            .expect_err("a path")
            .to_string();
        assert!(
            err.contains("the query reads `in/a.json`, which is not a source")
                && err.contains("a file is not read by its path in the query"),
            "{err}"
        );
        let err = plan("SELECT * FROM clicks")
            .await
            .expect_err("clicks")
            .to_string();
        assert!(
            err.contains(
                "the query reads `clicks`, which is not a source or table of the \
                          pipeline (it has: `s`, `s2`, `t`)"
            ) && !err.contains("by its path"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sql_type_names_are_read_as_datafusion_reads_them() {
        let cols: Vec<(String, String)> = [
            ("a", "bigint"),
            ("b", "string"),
            ("c", "timestamp"),
            ("d", "decimal(10,2)"),
            ("e", "double"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let schema = crate::format::schema_from_sql_types(&cols)
            .await
            .expect("types");
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert!(matches!(
            schema.field(2).data_type(),
            DataType::Timestamp(_, None)
        ));
        assert_eq!(schema.field(3).data_type(), &DataType::Decimal128(10, 2));
        // A timestamp with a time zone is an instant, not a wall-clock time.
        let zoned: Vec<(String, String)> = [
            "timestamptz",
            "timestamp with time zone",
            "TIMESTAMP WITH TIME ZONE",
            "timestamp(6) with time zone",
        ]
        .iter()
        .map(|t| ("t".to_string(), t.to_string()))
        .collect();
        for (column, type_name) in zoned {
            let schema = crate::format::schema_from_sql_types(&[(column, type_name.clone())])
                .await
                .expect("zoned type");
            assert!(
                matches!(schema.field(0).data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC"),
                "{type_name}: {}",
                schema.field(0).data_type()
            );
        }
        let err = crate::format::schema_from_sql_types(&[("x".into(), "bigintt".into())])
            .await
            .expect_err("bad type");
        assert!(err.to_string().contains("`x`"), "{err}");
        assert!(err.to_string().contains("did you mean `bigint`"), "{err}");
        let err = crate::format::schema_from_sql_types(&[("amount".into(), "dobule".into())])
            .await
            .expect_err("bad type");
        assert!(err.to_string().contains("did you mean `double`"), "{err}");
        assert!(!err.to_string().contains("not implemented"), "{err}");
    }

    #[test]
    fn fingerprint_is_stable() {
        assert_eq!(fingerprint("SELECT 1"), fingerprint("SELECT 1"));
        assert_ne!(fingerprint("SELECT 1"), fingerprint("SELECT 2"));
        assert_eq!(fingerprint("SELECT 1").len(), 16);
    }

    /// sqlparser 0.62 reads `a IS NOT DISTINCT FROM b AND c` as `a IS NOT DISTINCT FROM (b AND
    /// c)`: refused, with the parentheses that keep SQL's meaning; written with them, or with
    /// the comparison last, it is taken.
    #[test]
    fn is_distinct_from_followed_by_and_is_refused_with_its_parentheses() {
        let refused = |sql: &str| distinct_from_misread(sql).map(|e| e.to_string());
        let said =
            refused("SELECT * FROM l JOIN r ON l.k IS NOT DISTINCT FROM r.k AND l.ts = r.ts")
                .expect("refused");
        assert!(
            said.contains(
                "the query has `l.k IS NOT DISTINCT FROM (r.k AND l.ts = r.ts)` where SQL reads \
                 `(l.k IS NOT DISTINCT FROM r.k) AND l.ts = r.ts`"
            ),
            "{said}"
        );
        let said = refused("SELECT a IS DISTINCT FROM b IS NULL FROM t").expect("refused");
        assert!(said.contains("`(a IS DISTINCT FROM b) IS NULL`"), "{said}");
        assert!(refused("SELECT * FROM t WHERE flag IS DISTINCT FROM true OR id > 5").is_some());
        // The review: with three terms, the advice parenthesizes the comparison alone.
        let said = refused("SELECT * FROM t WHERE k IS NOT DISTINCT FROM 'a' AND v > 0 AND w > 0")
            .expect("refused");
        assert!(
            said.contains("`(k IS NOT DISTINCT FROM 'a') AND v > 0 AND w > 0`"),
            "{said}"
        );
        for taken in [
            "SELECT * FROM t WHERE (a IS NOT DISTINCT FROM b) AND c",
            "SELECT * FROM t WHERE c AND a IS NOT DISTINCT FROM b",
            "SELECT * FROM t WHERE a IS DISTINCT FROM b + 1",
            "SELECT * FROM t WHERE a IS DISTINCT FROM (b AND c)",
        ] {
            assert!(refused(taken).is_none(), "{taken}");
        }
    }

    /// Walk 98 (1): `EXCEPT ALL` and `INTERSECT ALL` gave set results (a semi or anti join
    /// over every copy) with exit 0; refused, naming what to write, wherever they are in the
    /// query. `UNION ALL` and the distinct forms are taken.
    #[test]
    fn intersect_all_and_except_all_are_refused() {
        let said = bag_set_operation("SELECT k FROM s EXCEPT ALL SELECT k FROM t")
            .expect("refused")
            .to_string();
        assert!(
            said.contains("`EXCEPT ALL` is computed by DataFusion as removing every copy")
                && said.contains("`WHERE NOT EXISTS"),
            "{said}"
        );
        let said = bag_set_operation(
            "SELECT count(*) FROM (SELECT k FROM s UNION ALL (SELECT k FROM s2 INTERSECT ALL \
             SELECT k FROM t)) x",
        )
        .expect("refused")
        .to_string();
        assert!(said.contains("`INTERSECT ALL` is computed"), "{said}");
        for taken in [
            "SELECT k FROM s EXCEPT SELECT k FROM t",
            "SELECT k FROM s INTERSECT SELECT k FROM t",
            "SELECT k FROM s UNION ALL SELECT k FROM t",
            "SELECT k FROM s WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.k = s.k)",
        ] {
            assert!(bag_set_operation(taken).is_none(), "{taken}");
        }
    }

    /// Audit 92a: the last argument's type lost its `)` (`Timestamp(ns`), and a type with a
    /// comma in it would have been split in two.
    #[test]
    fn a_call_of_no_signature_names_each_argument_type_whole() {
        let said = no_signature(
            "Error during planning: No function matches the given name and argument types \
             'hop(Timestamp(ns), Interval(MonthDayNano), Timestamp(ns, \"UTC\"))'. You might \
             need to add explicit type casts.\n\tCandidate functions:\n\thop(Any, Any, Any)",
        )
        .expect("said");
        assert_eq!(
            said,
            "`hop` takes no arguments of types `Timestamp(ns)`, `Interval(MonthDayNano)`, \
             `Timestamp(ns, \"UTC\")`; it takes hop(Any, Any, Any)"
        );
    }
}
