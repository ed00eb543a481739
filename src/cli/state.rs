//! `sluice state`: an operator's state at a batch, as a table (or the result of SQL over it).

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::Error;
use crate::checkpoint::{BatchId, Checkpoint, LogListing};
use crate::state::StateFiles;

pub(super) async fn run(
    spec: &str,
    operator: Option<String>,
    batch: Option<u64>,
    sql: Option<String>,
) -> Result<(), Error> {
    let location = super::open_checkpoint(spec)?;
    if Checkpoint::read_metadata(&location).await?.is_none() {
        return Err(Error::Usage(format!(
            "{spec} is not a Sluice checkpoint (it has no metadata)"
        )));
    }
    let operators = StateFiles::operators(&location).await?;
    let operator = match (operator, operators.as_slice()) {
        (_, []) => {
            return Err(Error::Usage(format!(
                "{spec} holds no operator state (its query keeps none)"
            )));
        }
        (Some(op), _) if operators.contains(&op) => op,
        (Some(op), _) => {
            return Err(Error::Usage(format!(
                "{spec} has no operator `{op}`; it has: {}",
                operators.join(", ")
            )));
        }
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(Error::Usage(format!(
                "{spec} has several operators; choose one with --operator: {}",
                operators.join(", ")
            )));
        }
    };
    let logs = LogListing::read(&location).await?;
    let last = *logs
        .commits
        .last()
        .ok_or_else(|| Error::Usage(format!("{spec} has no committed batch yet")))?;
    let version = match batch {
        Some(n) if n > last.0 => {
            return Err(Error::Usage(format!(
                "batch {n} is not committed in {spec}; the last committed batch is {last}"
            )));
        }
        Some(n) => BatchId(n),
        None => last,
    };
    let files = StateFiles::new(location, &operator);
    let table = files.read_version(version).await?.ok_or_else(|| {
        Error::Usage(format!(
            "operator `{operator}` has no state at or before batch {version} (older versions are purged with the logs)"
        ))
    })?;
    let what = if operator.starts_with("join-") {
        "the rows this side of the join keeps, keyed by the batch and position that read them"
    } else {
        "DataFusion's partial aggregate state, one row per group"
    };
    eprintln!(
        "state/{operator} after batch {version}: {} rows ({what}; the table is `state`)",
        table.num_rows()
    );
    let ctx = SessionContext::new();
    let provider = MemTable::try_new(table.schema(), vec![vec![table]]).map_err(|source| {
        Error::Execution {
            batch: None,
            source,
        }
    })?;
    ctx.register_table("state", Arc::new(provider))
        .map_err(|source| Error::Execution {
            batch: None,
            source,
        })?;
    let sql = sql.unwrap_or_else(|| "SELECT * FROM state".to_string());
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| Error::Usage(format!("--sql: {e}")))?
        .collect()
        .await
        .map_err(|e| Error::Usage(format!("--sql: {e}")))?;
    let shown = pretty_format_batches(&batches)
        .map_err(|e| Error::Usage(format!("cannot show the result: {e}")))?;
    super::emit(&format!("{shown}\n"));
    Ok(())
}
