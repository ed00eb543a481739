//! `sluice state`: an operator's state at a batch, as a table (or the result of SQL over it).

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::Error;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::{BatchId, Checkpoint, LogListing, paths, read_commit};
use crate::state::StateFiles;
use crate::storage::Location;

pub(super) async fn run(
    spec: &str,
    operator: Option<String>,
    batch: Option<u64>,
    sql: Option<String>,
) -> Result<(), Error> {
    let location = super::open_checkpoint(spec)?;
    if Checkpoint::read_metadata(&location).await?.is_none() {
        return Err(Error::Usage(crate::checkpoint::not_a_checkpoint(spec)));
    }
    let operators = StateFiles::operators(&location).await?;
    let operator = match (operator, operators.as_slice()) {
        (_, []) => {
            // Why there is none (audit 88c: a first batch still running, and a state folder
            // gone, were both said to be a query that keeps none).
            let logs = crate::checkpoint::LogListing::read(&location).await?;
            let Some(&last) = logs.commits.last() else {
                return Err(Error::Usage(match logs.offsets.last() {
                    None => format!("{spec} has no batch yet, and so no state"),
                    Some(pending) => format!(
                        "{spec} has no committed batch yet (batch {pending} is pending), and \
                         so no state to show"
                    ),
                }));
            };
            return match crate::checkpoint::read_commit(&location, last).await {
                // The state is gone: said as a run says it (exit 1), with its ways out.
                Ok(Some(commit)) if !commit.state.is_empty() => {
                    Err(Error::State(crate::state::StateError::Missing {
                        operator: commit.state[0].operator.clone(),
                        version: BatchId(0),
                        wanted: last,
                        checkpoint: Some(spec.to_string()),
                        sink: None,
                    }))
                }
                Ok(_) => Err(Error::Usage(format!(
                    "{spec} holds no operator state (its query keeps none)"
                ))),
                Err(e) => Err(Error::Usage(format!(
                    "{spec}: its newest commit, batch {last}, does not read, so which state it \
                     kept is not known, and no state folder is there: {}",
                    Error::from(e).shown_in(spec)
                ))),
            };
        }
        (Some(op), _) if operators.contains(&op) => op,
        (Some(op), _) => {
            return Err(Error::Usage(format!(
                "{spec} has no operator `{op}`; it has: {}",
                operators.join(", ")
            )));
        }
        (None, [only]) => only.clone(),
        // An aggregation with a state TTL or a deduplication below it: its groups, not the
        // stamps or the distinct rows, unless asked.
        (None, _)
            if operators
                .iter()
                .any(|o| o == crate::state::AGGREGATE_OPERATOR)
                && operators.iter().all(|o| {
                    o == crate::state::AGGREGATE_OPERATOR
                        || o == crate::state::DEDUP_OPERATOR
                        || o.ends_with("-ttl")
                }) =>
        {
            crate::state::AGGREGATE_OPERATOR.to_string()
        }
        // A join of two streams: each side's rows, one table after the other.
        (None, [left, right]) if left == JOIN_LEFT && right == JOIN_RIGHT && sql.is_none() => {
            show(&location, spec, left, batch, None).await?;
            return show(&location, spec, right, batch, None).await;
        }
        (None, _) => {
            return Err(Error::Usage(format!(
                "{spec} has several operators; choose one with --operator: {}",
                operators.join(", ")
            )));
        }
    };
    show(&location, spec, &operator, batch, sql).await
}

/// The operator state directories of a join of two streams, one per side.
const JOIN_LEFT: &str = "join-left";
const JOIN_RIGHT: &str = "join-right";

/// Shows `operator`'s state at `batch` (the last committed where `None`), or `sql` over it.
async fn show(
    location: &Location,
    spec: &str,
    operator: &str,
    batch: Option<u64>,
    sql: Option<String>,
) -> Result<(), Error> {
    let location = location.clone();
    let logs = LogListing::read(&location).await?;
    let last = *logs.commits.last().ok_or_else(|| {
        Error::Usage(match logs.offsets.last() {
            Some(pending) => format!(
                "{spec} has no committed batch yet (batch {pending} is pending), and so no \
                     state to show"
            ),
            None => format!("{spec} has no batch yet, and so no state"),
        })
    })?;
    let version = match batch {
        Some(n) if n > last.0 => {
            return Err(Error::Usage(format!(
                "batch {n} is not committed in {spec}; the last committed batch is {last}"
            )));
        }
        Some(n) => BatchId(n),
        None => last,
    };
    let files = StateFiles::new(location.clone(), operator);
    let Some(table) = files.read_version(version).await? else {
        // The oldest version still readable: a snapshot's, else the first delta's (a chain
        // from the first batch).
        let kept = files.list().await?;
        let oldest = kept
            .iter()
            .filter(|f| f.kind == crate::state::StateFileKind::Snapshot)
            .map(|f| f.version)
            .min()
            .or_else(|| kept.iter().map(|f| f.version).min());
        let available = match oldest {
            Some(oldest) => {
                format!("; it keeps batches {oldest} to {last}: choose one of them with --batch")
            }
            None => String::new(),
        };
        return Err(Error::Usage(format!(
            "operator `{operator}` has no state at or before batch {version} (older versions \
             are purged with the logs){available}"
        )));
    };
    let join_side;
    let (table, what) = if operator.starts_with("join-") && sql.is_some() {
        (table, "the rows this side of the join keeps")
    } else if operator.starts_with("join-") {
        // Which streams the side reads and when its rows go, from the query the batch ran.
        join_side = match within_ten_seconds(join_shape(&location, spec, version)).await {
            Ok(join) => describe_join_side(&join, operator == JOIN_LEFT),
            Err(_) => "the rows this side of the join keeps".to_string(),
        };
        (table, join_side.as_str())
    } else if operator == crate::state::DEDUP_OPERATOR {
        (
            dedup_rows(&table)?,
            "the rows the deduplication below the aggregation has seen (each distinct row; of \
             `DISTINCT ON`, each key's first row), kept until the watermark passes them where \
             they have an event time, else for ever (unless state_ttl drops them)",
        )
    } else if operator.ends_with("-ttl") {
        (
            table,
            "each group's key and the clock (watermark or batch timestamp) of the last batch that \
             saw it; state_ttl drops a group once the clock is that long past",
        )
    } else {
        // The query's names for the groups and aggregates, from the pipeline file the batch
        // ran with; DataFusion's own where that cannot be planned.
        let planned = within_ten_seconds(aggregate_names(&location, spec, version)).await;
        // Where the state's fields do not line up with the query's names, DataFusion's stay,
        // and the header says so.
        match planned {
            Ok(names) => match rename_columns(&table, &names)? {
                None => match kept_rows(&table, names.0)? {
                    Some(rows) => (
                        rows,
                        "the row `DISTINCT ON` keeps for each key, as its `ORDER BY` picked it \
                         so far",
                    ),
                    None => (
                        table,
                        "DataFusion's partial aggregate state, one row per group: the query's \
                         names did not line up with its fields",
                    ),
                },
                Some(renamed) if names.0 == table.num_columns() => (
                    renamed,
                    "the distinct rows seen so far (every column is a key; no aggregate), in \
                     the query's column names",
                ),
                Some(renamed) => (
                    renamed,
                    "partial aggregate state, one row per group, in the query's column names",
                ),
            },
            Err(e) => {
                crate::say!(
                    "(columns as DataFusion names them: the query could not be planned: {})",
                    e.shown_in(spec)
                );
                (
                    table,
                    "DataFusion's partial aggregate state, one row per group",
                )
            }
        }
    };
    crate::say!(
        "state/{operator} after batch {version}: {} rows ({what}; the table is `state`)",
        table.num_rows()
    );
    // Names made unique (`v`, `v_2`): two state fields of one name (an ordering's keys kept
    // by two aggregates) would fail `--sql` with an error nobody typed.
    let table = unique_names(&table)?;
    let ctx = SessionContext::new();
    let provider = MemTable::try_new(table.schema(), vec![vec![table]]).map_err(|source| {
        Error::Execution {
            batch: None,
            source,
            found: None,
        }
    })?;
    ctx.register_table("state", Arc::new(provider))
        .map_err(|source| Error::Execution {
            batch: None,
            source,
            found: None,
        })?;
    let sql = sql.unwrap_or_else(|| "SELECT * FROM state".to_string());
    // The one table there is `state`: a query naming the operator (`FROM dedup`) is told so.
    let said = |e: datafusion::error::DataFusionError| {
        let text = e.to_string();
        let hint = if text.contains("table '") && text.contains("' not found") {
            " (the operator's rows are the table `state`: `SELECT ... FROM state`)"
        } else {
            ""
        };
        Error::Usage(format!("--sql: {text}{hint}"))
    };
    // A query only: no `COPY ... TO` a file, no `CREATE EXTERNAL TABLE` over one, no `SET`
    // (walk 71 (10): `--sql` wrote files where the command is offered to read the state).
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(&sql, options).await.map_err(said)?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame
        .collect()
        .await
        .map_err(|e| Error::Usage(format!("--sql: {e}")))?;
    // No row: the columns still shown, and the count said.
    let empty = batches.iter().all(|b| b.num_rows() == 0);
    if empty {
        batches = vec![datafusion::arrow::record_batch::RecordBatch::new_empty(
            schema,
        )];
    }
    let shown = pretty_format_batches(&batches)
        .map_err(|e| Error::Usage(format!("cannot show the result: {e}")))?;
    super::emit(&format!("{shown}\n"));
    if empty {
        super::emit("(0 rows)\n");
    }
    Ok(())
}

/// What one side's state of `join` holds (the left's where `left`): the streams it reads,
/// how its rows are keyed, and how long they are kept ([`JoinShape::kept`]).
///
/// [`JoinShape::kept`]: crate::plan::JoinShape::kept
fn describe_join_side(join: &crate::plan::JoinShape, left: bool) -> String {
    let (side, streams, bounded, other) = match left {
        true => (
            "left",
            &join.side_streams[0],
            join.left_reach_ns.is_some(),
            "right",
        ),
        false => (
            "right",
            &join.side_streams[1],
            join.right_reach_ns.is_some(),
            "left",
        ),
    };
    let streams = streams
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let latest = match bounded {
        true => format!(" (the latest a {other} row may match it)"),
        false => String::new(),
    };
    format!(
        "the rows the join's {side} side ({streams}) keeps, keyed by the batch and position \
         that read them; each kept {}{latest}",
        join.kept(left)
    )
}

/// `planning`, given 10 s at most: planning opens the sources (a broker, say), and `state`
/// never hangs on one.
async fn within_ten_seconds<T>(
    planning: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(std::time::Duration::from_secs(10), planning)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Usage(
                "opening its sources took more than 10 s".into(),
            ))
        })
}

/// The pipeline file batch `version` ran with, as the checkpoint stores it.
async fn batch_pipeline(
    location: &Location,
    spec: &str,
    version: BatchId,
) -> Result<crate::pipeline::Pipeline, Error> {
    // The commit names it; its offsets entry too, where the commit does not read (audit 88c).
    let from_commit = read_commit(location, version).await;
    let fingerprint = match from_commit {
        Ok(Some(ref commit)) if commit.pipeline.is_some() => commit.pipeline.clone(),
        _ => crate::checkpoint::read_offsets(location, version)
            .await
            .ok()
            .flatten()
            .and_then(|entry| entry.info.pipeline),
    };
    let fingerprint = match (fingerprint, from_commit) {
        (Some(fingerprint), _) => fingerprint,
        (None, Err(e)) => return Err(e.into()),
        // Purged with the logs while a state version of it is kept (audit 88c: said as a
        // commit that names no pipeline file).
        (None, Ok(None)) => {
            return Err(Error::Usage(format!(
                "batch {version}'s log entries are purged (`retain_batches`), so the query it \
                 ran is not known"
            )));
        }
        (None, Ok(Some(_))) => {
            return Err(Error::Usage(format!(
                "commits/{version} names no pipeline file"
            )));
        }
    };
    crate::driver::stored_pipeline(location, spec, &fingerprint)
        .await?
        .ok_or_else(|| Error::Usage(format!("{} is not stored", paths::pipeline(&fingerprint))))
}

/// The join of two streams that the query batch `version` ran with plans as.
async fn join_shape(
    location: &Location,
    spec: &str,
    version: BatchId,
) -> Result<crate::plan::JoinShape, Error> {
    let pipeline = batch_pipeline(location, spec, version).await?;
    let mut recompute = crate::driver::Recompute::open(&pipeline, location).await?;
    recompute
        .join_shape(&pipeline.query)
        .await?
        .ok_or_else(|| Error::Usage("the query it ran joins no two streams".into()))
}

/// The aggregation's group-key count and output names as the query gives them, planned from
/// the pipeline file batch `version` ran with (its sources' schemas as the checkpoint pins
/// them).
async fn aggregate_names(
    location: &Location,
    spec: &str,
    version: BatchId,
) -> Result<(usize, Vec<String>), Error> {
    let pipeline = batch_pipeline(location, spec, version).await?;
    let mut recompute = crate::driver::Recompute::open(&pipeline, location).await?;
    recompute
        .aggregate_names(&pipeline.query)
        .await?
        .ok_or_else(|| Error::Usage("the query it ran does not aggregate".into()))
}

/// `table` (a `DISTINCT ON` deduplication's state) with each key's kept value named by its
/// column: `first_value(s.p)[first_value]` as `p` (and its `[first_value_is_set]` as
/// `p_is_set`), where no other column has that name.
fn first_values_named(table: &RecordBatch) -> Result<RecordBatch, Error> {
    let schema = table.schema();
    let taken: std::collections::HashSet<&str> =
        schema.fields().iter().map(|f| f.name().as_str()).collect();
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            // `first_value(s.p)`, then ` ORDER BY [...]` where the query sorts, then the
            // state field; a plain column only (not `first_value(s.a + s.b)`).
            let inner = |suffix: &str| {
                let (inner, after) = f.name().strip_prefix("first_value(")?.split_once(')')?;
                let plain = !inner.is_empty()
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
                (plain
                    && after.ends_with(suffix)
                    && (after == suffix || after.starts_with(" ORDER BY [")))
                .then(|| inner.rsplit('.').next().unwrap_or(inner).to_string())
            };
            let column = inner("[first_value]")
                .or_else(|| inner("[first_value_is_set]").map(|name| format!("{name}_is_set")))
                .filter(|name| !taken.contains(name.as_str()));
            match column {
                Some(name) => f.as_ref().clone().with_name(name),
                None => f.as_ref().clone(),
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), table.columns().to_vec()).map_err(|e| {
        Error::Execution {
            batch: None,
            source: e.into(),
            found: None,
        }
    })
}

/// `table` (a deduplication's state, its key columns first) as the rows it has seen: the keys,
/// then each kept value named by its column with whether it is set ([`first_values_named`]),
/// without the fields that only serve the choice of the first row (the `ORDER BY`'s values
/// `k@0`) or repeat a key (walk 70 (7): with every column selected a key, DataFusion's
/// `first_value(u.k) ORDER BY [...]`, `k@0`, `k_is_set` were all there was to see).
fn dedup_rows(table: &RecordBatch) -> Result<RecordBatch, Error> {
    let schema = table.schema();
    let fields = schema.fields();
    let groups = fields
        .iter()
        .position(|f| f.name().starts_with("first_value("))
        .unwrap_or(fields.len());
    let keys: Vec<&str> = fields[..groups].iter().map(|f| f.name().as_str()).collect();
    // A plain column's value only (`first_value(u.k)`; not `first_value(lower(u.k))`).
    let of_a_key = |name: &str| {
        name.strip_prefix("first_value(")
            .and_then(|rest| rest.split_once(')'))
            .is_some_and(|(inner, _)| {
                inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    && keys.contains(&inner.rsplit('.').next().unwrap_or(inner))
            })
    };
    let shown: Vec<usize> = (0..fields.len())
        .filter(|i| {
            let name = fields[*i].name();
            *i < groups || !(ordering_field(name) || of_a_key(name))
        })
        .collect();
    let table = table
        .project(&shown)
        .map_err(|e| Error::Usage(format!("cannot show the state: {e}")))?;
    first_values_named(&table)
}

/// Whether a state field holds an `ORDER BY`'s value for choosing a row (`k@0`, `ts@2_2`).
fn ordering_field(name: &str) -> bool {
    name.split_once('@').is_some_and(|(_, n)| {
        let n = n.split('_').next().unwrap_or(n);
        !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
    })
}

/// `table` with each column name that an earlier column already has given a suffix (`_2`).
fn unique_names(table: &RecordBatch) -> Result<RecordBatch, Error> {
    let mut seen = std::collections::HashSet::new();
    let fields: Vec<_> = table
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let mut name = f.name().clone();
            let mut n = 1;
            while !seen.insert(name.clone()) {
                n += 1;
                name = format!("{}_{n}", f.name());
            }
            f.as_ref().clone().with_name(name)
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), table.columns().to_vec()).map_err(|e| {
        Error::Execution {
            batch: None,
            source: e.into(),
            found: None,
        }
    })
}

/// `table` with its columns given the query's names (see [`query_column_names`]); `None`
/// where they do not line up with its fields.
/// `table` (a `DISTINCT ON (keys) ... ORDER BY ...` query's state, `groups` key columns first)
/// as the rows it keeps: the keys, then each `first_value(s.c) ORDER BY [...][first_value]` as
/// `c` (one of the keys left out: it is the key's own value), without the fields that only
/// serve the choice (`[first_value_is_set]`, the ORDER BY's values `k@0`). `None` where some
/// other field is there (an aggregate beside them).
fn kept_rows(table: &RecordBatch, groups: usize) -> Result<Option<RecordBatch>, Error> {
    let schema = table.schema();
    if groups > schema.fields().len() {
        return Ok(None);
    }
    let keys: Vec<&str> = schema.fields()[..groups]
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let ordering = |name: &str| {
        name.split_once('@')
            .is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        if i < groups {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(table.column(i)));
            continue;
        }
        if ordering(name) || name.ends_with("[first_value_is_set]") {
            continue;
        }
        let Some(inner) = name
            .strip_prefix("first_value(")
            .filter(|_| name.ends_with("[first_value]"))
            .and_then(|rest| rest.split_once(')'))
            .map(|(inner, _)| inner.rsplit('.').next().unwrap_or(inner))
        else {
            return Ok(None);
        };
        if keys.contains(&inner) {
            continue;
        }
        fields.push(Arc::new(field.as_ref().clone().with_name(inner)));
        columns.push(Arc::clone(table.column(i)));
    }
    if fields.len() == groups {
        return Ok(None);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map(Some)
        .map_err(|e| Error::Usage(format!("cannot show the state: {e}")))
}

fn rename_columns(
    table: &RecordBatch,
    names: &(usize, Vec<String>),
) -> Result<Option<RecordBatch>, Error> {
    let fields: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let Some(renamed) = query_column_names(&fields, names.0, &names.1) else {
        return Ok(None);
    };
    let schema = Schema::new(
        table
            .schema()
            .fields()
            .iter()
            .zip(&renamed)
            .map(|(f, name)| f.as_ref().clone().with_name(name))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), table.columns().to_vec())
        .map(Some)
        .map_err(|e| Error::Execution {
            batch: None,
            source: e.into(),
            found: None,
        })
}

/// The query's names for the columns of an aggregation's state, `fields` as DataFusion names
/// them: the first `groups` are the group keys, by position; then each aggregate's state
/// fields (`<state name>[<field>]`, consecutive), the i-th aggregate's by the i-th name after
/// the keys: the name itself for one field (`cnt`), `<name>_<field>` for several
/// (`mean_count`, `mean_sum`). Where the fields do not line up with the names, or a name
/// would clash with another column, DataFusion's names stay.
fn query_column_names(fields: &[String], groups: usize, names: &[String]) -> Option<Vec<String>> {
    let base = |f: &str| {
        f.strip_suffix(']')
            .and_then(|f| f.rsplit_once('['))
            .map(|(b, p)| (b.to_string(), p.to_string()))
    };
    // The aggregate state fields after the keys, grouped by consecutive state name.
    let mut aggregates: Vec<Vec<(usize, String)>> = Vec::new();
    let mut last: Option<String> = None;
    for (i, field) in fields.iter().enumerate().skip(groups) {
        // A field without `[<field>]` is a whole aggregate's value (a session's state).
        let Some((name, part)) = base(field) else {
            aggregates.push(vec![(i, String::new())]);
            last = None;
            continue;
        };
        if last.as_ref() != Some(&name) {
            aggregates.push(Vec::new());
            last = Some(name);
        }
        aggregates.last_mut().expect("pushed").push((i, part));
    }
    if fields.len() < groups || groups + aggregates.len() != names.len() {
        return None;
    }
    let mut renamed: Vec<String> = names[..groups].to_vec();
    for (aggregate, name) in aggregates.iter().zip(&names[groups..]) {
        for (_, part) in aggregate {
            renamed.push(if aggregate.len() == 1 {
                name.clone()
            } else {
                format!("{name}_{part}")
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    renamed
        .iter()
        .all(|n| seen.insert(n.clone()))
        .then_some(renamed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_columns_take_the_query_names() {
        let fields: Vec<String> = [
            "k",
            "date_bin(IntervalMonthDayNano(..),s.ts)",
            "count(Int64(1))[count]",
            "avg(s.v)[count]",
            "avg(s.v)[sum]",
            "max(s.v)[max]",
        ]
        .map(String::from)
        .to_vec();
        let names: Vec<String> = ["k", "window_start", "cnt", "mean", "max(s.v)"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            query_column_names(&fields, 2, &names).expect("renamed"),
            [
                "k",
                "window_start",
                "cnt",
                "mean_count",
                "mean_sum",
                "max(s.v)"
            ]
        );
        // Fields that do not line up with the names, or a clash, keep DataFusion's names.
        assert_eq!(query_column_names(&fields, 2, &names[..4]), None);
        let clash: Vec<String> = ["k", "k", "cnt", "mean", "m"].map(String::from).to_vec();
        assert_eq!(query_column_names(&fields, 2, &clash), None);
        // A session's state holds each aggregate's value whole (no `[field]`).
        let session: Vec<String> = ["user_id", "session_window(..)", "count(Int64(1))"]
            .map(String::from)
            .to_vec();
        let names: Vec<String> = ["user_id", "s", "clicks"].map(String::from).to_vec();
        assert_eq!(
            query_column_names(&session, 2, &names).expect("renamed"),
            ["user_id", "s", "clicks"]
        );
    }
}
