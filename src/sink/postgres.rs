//! The PostgreSQL sink: each batch's rows written into one table in one PostgreSQL
//! transaction that also moves the pipeline's progress row, so a batch is in the table exactly
//! once, whatever crashes and whichever run is late.
//!
//! ```text
//!   attempt:  end the sessions of this pipeline's older epochs (pg_terminate_backend: each
//!             session names its pipeline and epoch in application_name)
//!   batch N:  BEGIN
//!   claim:    INSERT INTO progress (pipeline, batch, epoch) VALUES (P, N, E)
//!             ON CONFLICT (pipeline) DO UPDATE SET batch = N, epoch = E
//!             WHERE progress.epoch <= E AND progress.batch < N   RETURNING batch
//!             no row: batch N is there already (skip), or a newer epoch holds the pipeline
//!             (refused: this run is late). The row stays locked until the transaction ends.
//!   rows:     append: COPY FROM STDIN (FORMAT binary); complete: DELETE, then COPY;
//!             update: COPY into a temporary table, then INSERT ... SELECT DISTINCT ON (key)
//!             ... ON CONFLICT (key) DO UPDATE (the newest row of each key in the batch)
//!   fence:    no newer epoch in the checkpoint, else ROLLBACK
//!   COMMIT    the commit point
//! ```
//!
//! Rows are encoded as PostgreSQL's binary COPY format by `pgpq` (Arrow to PostgreSQL types:
//! `Int64` to `int8`, `Utf8` to `text`, timestamps to `timestamp`, or `timestamptz` for a
//! timestamp with a time zone, ...); nanosecond timestamps, times and durations are cast to
//! microseconds first (PostgreSQL's precision). A column of a type PostgreSQL cannot take is
//! refused before the first batch, naming it.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use futures::SinkExt;
use pgpq::ArrowToPostgresBinaryEncoder;
use serde::Deserialize;
use tokio_postgres::error::SqlState;

use super::{
    BatchOutput, HeldBatch, HeldSummary, Sink, SinkCommit, SinkConnector, SinkContext, SinkError,
    SinkKind,
};
use crate::checkpoint::{BatchId, Fence};
use crate::retry::RetrySettings;
use crate::source::{ConfigError, parse_settings};
use crate::storage::failpoint;

/// The PostgreSQL sink in the registry.
pub(super) const KIND: SinkKind = SinkKind {
    name: "postgres",
    configure,
};

fn default_progress_table() -> String {
    "_sluice_progress".into()
}

/// The settings of a PostgreSQL sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// The connection: a libpq key/value string (`host=... user=... dbname=...`) or URL
    /// (`postgresql://user@host:5432/db`); `${VAR}` is replaced by environment variable `VAR`
    /// when connecting, so a password need not be written in the pipeline file. TLS is not
    /// supported (`sslmode` must be `disable` or `prefer`).
    pub url: String,
    /// The table written: `name` or `schema.name` as SQL names it, so an unquoted name folds
    /// to lower case as PostgreSQL folds it (`PageViews` is `pageviews`) and a part in double
    /// quotes keeps its case (`'"PageViews"'` in YAML), as Spark's JDBC `dbtable` and Flink's
    /// `table-name` pass it into SQL. Held as the exact names of its parts (see [`sql_name`]).
    pub table: String,
    /// `table` as the pipeline file writes it, before [`sql_name`] read it.
    #[serde(skip)]
    pub table_as_written: String,
    /// Makes the table from the query's columns where it is missing (with the key as its
    /// unique key in update mode, nulls not distinct from PostgreSQL 15, else its primary
    /// key); without it, a missing table is an error.
    #[serde(default)]
    pub create_table: bool,
    /// Update mode: the columns that identify a row (the table needs a unique index or
    /// primary key on exactly them).
    #[serde(default, deserialize_with = "super::one_or_more")]
    pub key: Vec<String>,
    /// Where each row records the batch that wrote it (a `bigint` column), so a batch can be
    /// read back (`replay --verify`) and taken back (`rewind`) in append mode; none where
    /// absent.
    #[serde(default)]
    pub batch_column: Option<String>,
    /// The table of progress rows, one per pipeline (made when missing).
    #[serde(default = "default_progress_table")]
    pub progress_table: String,
    /// Retries of each batch's transaction and of connecting.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SinkConnector>, ConfigError> {
    let mut config: PostgresSinkConfig = parse_settings(settings)?;
    if config.table.trim().is_empty() {
        return Err(ConfigError::at("table", "`table` is empty"));
    }
    config.table_as_written = config.table.trim().to_string();
    config.table = sql_name(&config.table).map_err(|why| ConfigError::at("table", why))?;
    config.progress_table =
        sql_name(&config.progress_table).map_err(|why| ConfigError::at("progress_table", why))?;
    if config.table == config.progress_table {
        return Err(ConfigError::at(
            "progress_table",
            "the progress table must not be the table the rows go to",
        ));
    }
    config.retry.check()?;
    // The text is checked as written where it holds no `${VAR}` (those are filled in when
    // connecting, so that no secret is kept in the configuration).
    if !config.url.contains("${") {
        let parsed = tokio_postgres::Config::from_str(&config.url).map_err(|e| {
            ConfigError::at(
                "url",
                format!("not a PostgreSQL connection string or URL: {}", redact(&e)),
            )
        })?;
        check_dbname(&parsed).map_err(|why| ConfigError::at("url", why))?;
    }
    Ok(Arc::new(config))
}

/// The exact names of the parts of table name `text` as SQL writes it (`name` or
/// `schema.name`), joined by `.`: an unquoted part folds to lower case, as PostgreSQL folds
/// an unquoted identifier (ASCII letters only); a part in double quotes keeps its case, `""`
/// in it standing for one `"`. A quoted part holding a `.`, an empty part, a quote not closed
/// and more than two parts are errors saying so.
fn sql_name(text: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("`{text}`: a `\"` is not closed")),
                }
            }
            if part.contains('.') {
                return Err(format!(
                    "`{text}`: a name holding a `.` cannot be written here; rename the table"
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    '.' => break,
                    '"' => {
                        return Err(format!(
                            "`{text}`: a `\"` inside a name; quote a whole part (`\"PageViews\"` \
                             or `analytics.\"PageViews\"`)"
                        ));
                    }
                    _ => part.push(c.to_ascii_lowercase()),
                }
                chars.next();
            }
            part = part.trim_end().to_string();
        }
        if part.trim().is_empty() {
            return Err(format!(
                "`{text}`: a part of the name is empty; write `name` or `schema.name`"
            ));
        }
        parts.push(part);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => break,
            Some('.') => {}
            Some(c) => {
                return Err(format!(
                    "`{text}`: `{c}` after a quoted part; parts are separated by `.`"
                ));
            }
        }
    }
    if parts.len() > 2 {
        return Err(format!(
            "`{text}`: a table is `name` or `schema.name` (the database is the `url`'s)"
        ));
    }
    Ok(parts.join("."))
}

/// Refuses a database name with a `/` in it: a URL's path is the database alone, and a table
/// written after it (`postgres://host/db/events`) belongs in `table:`.
fn check_dbname(config: &tokio_postgres::Config) -> Result<(), String> {
    // Walk 105: `sslmode=require` tried a handshake three times, then failed the run.
    if !matches!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
    ) {
        return Err(
            "`sslmode=require` asks for TLS, which this sink does not support yet (it connects \
             without it, so no connection could be made as asked): reach the server over a \
             trusted network or a tunnel (`ssh -L`, a TLS-terminating proxy on this host) with \
             `sslmode=disable`"
                .to_string(),
        );
    }
    match config.get_dbname() {
        Some(name) if name.contains('/') => {
            let (db, rest) = name.split_once('/').unwrap_or((name, ""));
            Err(format!(
                "the URL's path names the database `{name}`, with a `/` in it: a PostgreSQL \
                 URL's path is the database alone (`{db}`); name the table (`{rest}`) with \
                 `table:`"
            ))
        }
        _ => Ok(()),
    }
}

/// Whether the connection text `url` has a password that is not an environment variable
/// (`${VAR}`) as a whole (checked by `Pipeline::check_secrets`).
pub(crate) fn holds_literal_password(url: &str) -> bool {
    const STAND_IN: &str = "sluiceenvvariable";
    let mut text = String::new();
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        text.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                text.push_str(STAND_IN);
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    text.push_str(rest);
    tokio_postgres::Config::from_str(&text)
        .ok()
        .and_then(|c| c.get_password().map(<[u8]>::to_vec))
        .is_some_and(|password| password != STAND_IN.as_bytes())
}

/// An error's text with nothing of the connection string in it (tokio-postgres does not echo
/// it, but a parse error may quote a part).
fn redact(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    if text.contains("password") {
        "the connection string does not parse (its text is not shown: it may hold a password)"
            .into()
    } else {
        text
    }
}

/// A name as PostgreSQL's `format('%I.%I', ...)` writes it (`public.t`, `"My Schema"."a.b"`),
/// split into its schema and table as written; `None` where it has no schema.
fn split_qualified(name: &str) -> Option<(String, String)> {
    let mut quoted = false;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => return Some((name[..i].to_string(), name[i + 1..].to_string())),
            _ => {}
        }
    }
    None
}

/// Why rows are still in a table after a DELETE of them, in words.
const DELETE_KEPT: &str = "a rule or trigger on the table keeps them from being deleted (a rule \
     `DO INSTEAD NOTHING`, a `BEFORE DELETE` trigger returning NULL)";

/// `name` (or `schema.name`) quoted as SQL identifiers.
fn quote_path(name: &str) -> String {
    name.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// `name` quoted as one SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl SinkConnector for PostgresSinkConfig {
    fn takes_back(&self, update: bool) -> bool {
        self.keeps_batches() && !update
    }

    fn start_over(&self, rewrites: bool) -> String {
        if rewrites {
            format!(
                " into the same table (complete mode replaces its rows; update mode writes \
                 each row over the row of its key, so where the new query's keys are not the \
                 old one's (another window size, another key column), empty the table first \
                 (`TRUNCATE {}`), or the old query's rows stay beside the new one's. Until \
                 the new checkpoint has caught up, a reader sees each key's row go back to an \
                 earlier value: the source's admission limit (`max_files_per_batch`, \
                 `max_records_per_batch`) raised for that run catches up in fewer batches. A new checkpoint reads its sources from their start: \
                 where one no longer holds its whole input (a Kafka topic's or NATS stream's \
                 retention or purge, files moved away), the new query sees part of it, and its \
                 rows for keys the old one completed (closed windows) would replace complete \
                 rows for good; write into a new table then)",
                quote_path(&self.table)
            )
        } else {
            format!(
                " with a new `sink.table`, or with this one emptied (`TRUNCATE {}`) and the \
                 pipeline's row in its progress table {} deleted (`sluice inspect` shows the \
                 pipeline's id, the row's key)",
                quote_path(&self.table),
                quote_path(&self.progress_table)
            )
        }
    }
    fn held_type(&self) -> Option<fn(&DataType) -> DataType> {
        Some(pg_type)
    }

    fn differs_note(&self) -> String {
        let table = quote_path(&self.table);
        format!(
            "; where a trigger or rule on the table changes rows as they go in, the batch is \
             written so again: drop or change it first (`SELECT tgname FROM pg_trigger WHERE \
             tgrelid = '{}'::regclass AND NOT tgisinternal` lists the table's triggers). A \
             `jsonb` column keeps JSON its own way (keys sorted, spaces taken out): text the \
             query writes otherwise reads back so, every time; so does a `uuid` column \
             that text went into (lower case, with hyphens)",
            table.replace('\'', "''")
        )
    }

    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn keeps_batches(&self) -> bool {
        self.batch_column.is_some()
    }

    /// The progress row as the batch's commit would have left it (epoch 0: any run's is
    /// newer; the rows count is for `inspect` only).
    fn restore_records(&self, pipeline: uuid::Uuid, last: BatchId) -> Option<String> {
        let progress = quote_path(&self.progress_table);
        let table = quote_path(&self.table).replace('\'', "''");
        Some(format!(
            "where the rows of the batches are all in the table, the row is put back by \
             `INSERT INTO {progress} (pipeline, batch, epoch, rows, target, relation) SELECT \
             '{pipeline}', {last}, 0, 0, format('%I.%I', n.nspname, c.relname), c.oid FROM \
             pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = \
             to_regclass('{table}');` (a progress table made by an older Sluice, without the \
             `target` and `relation` columns: leave those two and their values out; where the \
             progress table itself is gone, make it first: `{};`)",
            progress_table_ddl(&progress)
        ))
    }

    fn take_out_by_hand(
        &self,
        pipeline: uuid::Uuid,
        keep: Option<BatchId>,
        _held_last: BatchId,
        update: bool,
    ) -> Option<String> {
        // Rows told apart by batch: append mode with `batch_column` only.
        let column = self.batch_column.as_ref().filter(|_| !update)?;
        let (table, progress, column) = (
            quote_path(&self.table),
            quote_path(&self.progress_table),
            quote(column),
        );
        Some(match keep {
            Some(keep) => format!(
                "`DELETE FROM {table} WHERE {column} > {keep}; UPDATE {progress} SET batch = \
                 {keep} WHERE pipeline = '{pipeline}';`"
            ),
            None => format!(
                "`DELETE FROM {table} WHERE {column} >= 0; DELETE FROM {progress} WHERE \
                 pipeline = '{pipeline}';`"
            ),
        })
    }

    fn take_back_note(&self) -> &'static str {
        "; a PostgreSQL sink takes batches back only in append mode with `batch_column`, where \
         each row records its batch"
    }

    fn schema_change_note(&self) -> &'static str {
        " (a PostgreSQL table must then have the new columns: `ALTER TABLE` it first)"
    }

    fn lost_records(&self) -> (String, &'static str) {
        (
            format!(
                "its record of them (the pipeline's row in the progress table `{}`) is gone, so \
                 that row or table was deleted, or the database was restored from a copy older \
                 than the batches",
                self.progress_table
            ),
            "a new, empty `sink.table`",
        )
    }

    fn update_key(&self) -> Option<Vec<String>> {
        (!self.key.is_empty()).then(|| self.key.clone())
    }

    fn location(&self) -> Option<String> {
        // Host, port and database only: never a user or password.
        let place = tokio_postgres::Config::from_str(&self.url)
            .ok()
            .map(|c| {
                let host = c
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                    .unwrap_or_default();
                let port = c.get_ports().first().copied().unwrap_or(5432);
                format!("{host}:{port}/{}", c.get_dbname().unwrap_or_default())
            })
            .unwrap_or_default();
        Some(format!("postgresql://{place}/{}", self.table))
    }

    fn part_location(&self, part: &str) -> Option<String> {
        // The table beside the sink's own, as `sink` names it.
        self.location().map(|l| format!("{l}_{part}"))
    }

    /// Connects once before a run plans a batch, so that a server it cannot reach (a wrong
    /// `url`, a server down) stops the run before a batch is planned: a planned batch keeps
    /// the pipeline file it was planned with, and a corrected `url` then takes effect at once.
    /// An append into a table another pipeline's progress row claims is refused here too,
    /// before a batch is planned, so that a refused new checkpoint is left with nothing.
    async fn preflight(&self, ctx: &SinkContext<'_>, _create_only: bool) -> Result<(), SinkError> {
        let sink = self.sink(ctx)?;
        // Walk 87 (6): taken without a word where it tells no batch apart.
        if let Some(column) = &self.batch_column
            && sink.mode != Mode::Append
            && ctx.part.is_none()
        {
            tracing::warn!(
                "PostgreSQL sink: `batch_column: {column}` in {} mode records the batch that \
                 last wrote each row, and no more: a row holds one batch's value at a time, so \
                 batches cannot be taken back (`sluice rewind`) or read back (`sluice replay \
                 --verify`); those need append mode",
                if sink.mode == Mode::Update {
                    "update"
                } else {
                    "complete"
                }
            );
        }
        let mut guard = sink.live.lock().await;
        let live = sink.live(&mut guard, None).await?;
        let others_rows = sink.mode != Mode::Append && live.labels;
        if !live.targets {
            return Ok(());
        }
        let fatal = |e: Failure| sink.fatal(e);
        let tx = live
            .client
            .transaction()
            .await
            .map_err(|e| sink.error(describe(&e)))?;
        sink.check_same_schema(&tx).await.map_err(fatal)?;
        if sink.mode != Mode::Append && !others_rows {
            return tx.rollback().await.map_err(|e| sink.error(describe(&e)));
        }
        let target = sink.resolved_table(&tx).await.map_err(fatal)?;
        if sink.mode == Mode::Append {
            sink.check_table_owner(&tx, &target).await.map_err(fatal)?;
        } else {
            sink.check_not_retired(&tx, &target).await.map_err(fatal)?;
            sink.check_other_writer(&tx, &target).await.map_err(fatal)?;
        }
        tx.rollback().await.map_err(|e| sink.error(describe(&e)))
    }

    fn open(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(self.sink(ctx)?))
    }
}

impl PostgresSinkConfig {
    /// The sink `open` gives, as its own type.
    fn sink(&self, ctx: &SinkContext<'_>) -> Result<PostgresSink, SinkError> {
        let error = |e: &str| SinkError::Config {
            kind: KIND.name,
            reason: format!("table `{}`: {e}", self.table),
        };
        if ctx.update && self.key.is_empty() {
            return Err(error(crate::sink::UPDATE_KEY_MISSING));
        }
        if !ctx.update && !self.key.is_empty() && !ctx.replace {
            return Err(error(
                "`key:` is for update mode; in append mode every row is added. To upsert rows \
                 by their key (Flink's JDBC sink with a primary key), set `output_mode: \
                 update`: each batch then writes the rows it changed, merged by `key:`",
            ));
        }
        let mode = if ctx.replace {
            Mode::Complete
        } else if ctx.update {
            Mode::Update
        } else {
            Mode::Append
        };
        let progress_key = match ctx.part {
            Some(part) => format!("{}/{part}", ctx.pipeline),
            None => ctx.pipeline.to_string(),
        };
        let table = match ctx.part {
            Some(part) => format!("{}_{part}", self.table),
            None => self.table.clone(),
        };
        Ok(PostgresSink {
            config: Arc::new(self.clone()),
            location: self.location().unwrap_or_default(),
            table,
            pipeline: ctx.pipeline,
            progress_key,
            label: ctx.label.to_string(),
            mode,
            live: tokio::sync::Mutex::new(None),
            zone_said: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// How a batch's rows go into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Append,
    Update,
    Complete,
}

/// A PostgreSQL sink.
pub struct PostgresSink {
    config: Arc<PostgresSinkConfig>,
    location: String,
    table: String,
    pipeline: uuid::Uuid,
    progress_key: String,
    /// How a person tells this pipeline from another (`pipeline `name` with checkpoint
    /// ...`), kept in its progress row's `label`.
    label: String,
    mode: Mode,
    /// The connection, once made, and whether the tables are known to be ready.
    live: tokio::sync::Mutex<Option<Live>>,
    /// Whether a timestamp written to a column with the other zoning has been said.
    zone_said: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("location", &self.location)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// An open connection.
struct Live {
    client: tokio_postgres::Client,
    /// The epoch this session works for (named in its `application_name`); `None` for an
    /// operator command's session (inspect, replay, rewind), which no run ends.
    epoch: Option<u64>,
    /// The table's columns were checked against this schema.
    checked: Option<SchemaRef>,
    /// The table's columns and their `pg_type.typname`s, as checked (none for a table this
    /// run made): a column wider than the query's (`int8` for an `INT4`) or `json`/`jsonb`
    /// for text is sent in its own type ([`pg_schema`]).
    table_types: TableTypes,
    /// Whether the progress table has its `target` column (each row's table, by name), by
    /// which a table another pipeline writes, and one dropped since, are refused.
    targets: bool,
    /// Whether it has its `relation` column too (the table's `oid`), by which a table made
    /// anew under the name is refused.
    relations: bool,
    /// Whether it has its `label` column too (the pipeline's name and checkpoint), by which
    /// another pipeline writing the same update- or complete-mode table is named (refused in
    /// complete mode), and a copy of the checkpoint at the same epoch refused.
    labels: bool,
    /// Whether the progress table exists. A session of an operator command or of a run
    /// before its first batch (`epoch` none) does not make it: a run refused before a batch
    /// leaves the database as it found it. Where it is missing, no batch of any pipeline is
    /// recorded in it.
    progress_made: bool,
}

/// The statement that makes the progress table `progress` (quoted) where it is missing.
fn progress_table_ddl(progress: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {progress} (pipeline text PRIMARY KEY, batch bigint NOT \
         NULL, epoch bigint NOT NULL, rows bigint NOT NULL, committed_at timestamptz NOT NULL \
         DEFAULT now(), target text, relation oid, label text)"
    )
}

/// Another pipeline's progress row naming the same table (`other_writers`).
struct Writer {
    /// The progress table that holds it, as the server names it.
    progress: String,
    /// Its `pipeline` (the key of the row).
    owner: String,
    /// Its `label` (the pipeline's name and checkpoint).
    label: String,
    /// When it last committed a batch.
    committed_at: std::time::SystemTime,
}

/// Why an attempt at a batch failed.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt (the server went away, a lock waited too long, a serialization
    /// failure).
    Retry(String),
    /// Not worth one.
    Fatal(SinkError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry(e) => f.write_str(e),
            Self::Fatal(e) => write!(f, "{e}"),
        }
    }
}

/// What the claim of the progress row found.
enum Claim {
    /// This transaction holds the row for batch `N`; `first` where it made the row (the
    /// pipeline's first batch on this server, or its first since the row was deleted).
    Claimed { first: bool },
    /// Batch `N` (or a later one) is there already.
    Written,
    /// A newer epoch holds the pipeline.
    Newer { epoch: u64, batch: u64 },
}

/// The SQLSTATEs after which a batch's transaction is tried again.
fn retriable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() || e.as_db_error().is_none() {
        return true;
    }
    matches!(
        e.code(),
        Some(
            &SqlState::T_R_SERIALIZATION_FAILURE
                | &SqlState::T_R_DEADLOCK_DETECTED
                | &SqlState::LOCK_NOT_AVAILABLE
                | &SqlState::ADMIN_SHUTDOWN
                | &SqlState::CRASH_SHUTDOWN
                | &SqlState::CANNOT_CONNECT_NOW
                | &SqlState::CONNECTION_FAILURE
                | &SqlState::CONNECTION_EXCEPTION
                | &SqlState::QUERY_CANCELED
        )
    )
}

/// `url` (a libpq connection string: `key=value` pairs, or a `postgresql://` URL) with each
/// `${VAR}` filled in as one value, so that a value never sets another key (`x dbname=other`):
/// percent-encoded in a URL (a password with `@`, `/` or `:`); in a `key=value` string quoted
/// where it is a whole value (libpq's `'...'`, with `\\` and `\\'`), escaped where the file
/// quotes it already, and refused where it is part of a value and holds a space, quote or
/// backslash. A `url` that is one `${VAR}` as a whole is the variable's text as it is.
fn expand_connection_string(url: &str) -> Result<String, String> {
    if url.contains("${")
        && let Some(why) = crate::secret::withheld()
    {
        return Err(why);
    }
    connection_string_with(url, |name| std::env::var(name).ok())
}

/// [`expand_connection_string`] with the variables `lookup` gives.
fn connection_string_with(
    url: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if crate::secret::is_env_reference(url.trim()) {
        return crate::secret::expand_with(url, lookup, |value, _| value.to_string());
    }
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    // Whether the file's own text has opened a quote that is not closed yet.
    let mut quoted = false;
    while let Some(start) = rest.find("${") {
        let text = &rest[..start];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '\'' => quoted = !quoted,
                _ => {}
            }
        }
        out.push_str(text);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "`${` without its closing `}`".to_string())?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| {
            format!("environment variable `{name}` (named as `${{{name}}}`) is not set")
        })?;
        rest = &after[end + 1..];
        // A server's error may quote it (`database "..." does not exist`, walk 78).
        crate::secret::note_filled_in(&[&value]);
        if is_url {
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            continue;
        }
        let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
        let whole =
            out.trim_end().ends_with('=') && rest.chars().next().is_none_or(char::is_whitespace);
        if quoted {
            out.push_str(&escaped);
        } else if whole {
            out.push_str(&format!("'{escaped}'"));
        } else if value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
        {
            return Err(format!(
                "`${{{name}}}` is part of a value, and its value holds a space, quote or \
                 backslash, which cannot go into part of one: make it the whole value \
                 (`password=${{{name}}}`)"
            ));
        } else {
            out.push_str(&value);
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A server error in words: its message, detail and hint, never the connection string.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            // Without their closing period, which the sentence they end up in gives (walk
            // 116: "already exists..").
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {}", detail.trim_end_matches('.')));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {}", hint.trim_end_matches('.')));
            }
            text
        }
        // The client's own text ("error connecting to server") leaves the cause to its
        // sources ("Connection refused").
        None => redact(&crate::vocab::with_causes(e)),
    }
}

/// The way out of a server error that a row of the batch caused (a constraint or a column
/// type of the table that the query's values break), for the table `table` (quoted): such an
/// error comes back on every attempt, so it is named with what to change. `None` for other
/// errors.
fn row_error_advice(e: &tokio_postgres::Error, table: &str, mode: Mode) -> Option<String> {
    let db = e.as_db_error()?;
    // The server names the column of a constraint; of a value that does not fit, the COPY's
    // context does (`COPY t, line 1, column note: "..."`).
    let column = db.column().map(quote).or_else(|| {
        let at = db.where_()?.split(", column ").nth(1)?;
        Some(quote(at.split(':').next()?.trim()))
    });
    // Where the server does not say which column (a binary COPY's context may not), a
    // placeholder that reads as one, not a name the table may not have.
    let col = column
        .as_deref()
        .unwrap_or("a column (the server does not say which)");
    let name = column.as_deref().unwrap_or("<column>");
    let advice = match db.code() {
        c if c == &SqlState::NOT_NULL_VIOLATION => format!(
            "{col} is NOT NULL in the table and the query gave it a null: leave such rows out \
             (`WHERE {col} IS NOT NULL`), give them a value (`COALESCE({col}, ...)`), or let \
             the table take nulls (`ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL`; a \
             column of the primary key never does: replace the key with a unique index that \
             holds one null key, `ALTER TABLE {table} DROP CONSTRAINT <its primary key>, ADD \
             UNIQUE NULLS NOT DISTINCT (<its columns>)`, first)"
        ),
        c if c == &SqlState::STRING_DATA_RIGHT_TRUNCATION => {
            // The server's message gives the type: `value too long for type character
            // varying(8)`.
            let (kind, n) = ["character varying(", "character("]
                .iter()
                .find_map(|marker| {
                    let rest = db.message().split(marker).nth(1)?;
                    let n = rest.split(')').next()?;
                    n.parse::<u32>().ok().map(|n| {
                        let kind = if marker.starts_with("character v") {
                            "varchar"
                        } else {
                            "char"
                        };
                        (format!("`{kind}({n})`"), n.to_string())
                    })
                })
                .unwrap_or_else(|| ("`varchar(n)` or `char(n)`".to_string(), "n".to_string()));
            format!(
                "a value of {col} is longer than its type in the table allows ({kind}): \
                 shorten it in the query (`left({name}, {n}) AS {name}`), or widen the column \
                 (`ALTER TABLE {table} ALTER COLUMN {name} TYPE text`)"
            )
        }
        c if c == &SqlState::NUMERIC_VALUE_OUT_OF_RANGE => format!(
            "a value of {col} does not fit its type in the table (a `numeric(p, s)`, or a \
             smaller integer): bound or cast it in the query, or widen the column \
             (`ALTER TABLE {table} ALTER COLUMN {name} TYPE ...`)"
        ),
        // A partitioned table's refusal of a row no partition takes comes as a CHECK's
        // (walk 100: said as a CHECK constraint the table does not have).
        c if c == &SqlState::CHECK_VIOLATION && db.constraint().is_none() => {
            format!(
                "a row of the batch has a partition key no partition of the table takes{}: \
                 add a partition for it (a default one takes every such row: `CREATE TABLE \
                 <name> PARTITION OF {table} DEFAULT`), or leave such rows out in the query",
                db.detail()
                    .map(|d| format!(" ({})", d.trim_end_matches('.')))
                    .unwrap_or_default()
            )
        }
        c if c == &SqlState::CHECK_VIOLATION => format!(
            "a row breaks the table's CHECK constraint{}: leave such rows out in the query, or \
             change the constraint",
            db.constraint()
                .map(|c| format!(" `{c}`"))
                .unwrap_or_default()
        ),
        // A trigger's (or rule's) own `RAISE EXCEPTION`: the same rows raise it again.
        c if c == &SqlState::RAISE_EXCEPTION => format!(
            "a trigger or rule of the table raised it for a row of the batch{}, and does again \
             on every attempt: change or drop it (`SELECT tgname FROM pg_trigger WHERE tgrelid \
             = '{}'::regclass AND NOT tgisinternal;` lists the table's triggers), or leave \
             the rows it refuses out in the query",
            db.where_()
                .and_then(|w| w.lines().next())
                .map(|w| format!(" ({})", w.trim()))
                .unwrap_or_default(),
            table.replace('\'', "''"),
        ),
        c if c == &SqlState::FOREIGN_KEY_VIOLATION => format!(
            "a row refers to a row the table's foreign key{} does not find: leave such rows \
             out in the query, or add the rows they refer to first",
            db.constraint()
                .map(|c| format!(" `{c}`"))
                .unwrap_or_default()
        ),
        c if (c == &SqlState::UNIQUE_VIOLATION || c == &SqlState::EXCLUSION_VIOLATION)
            && mode == Mode::Complete =>
        {
            format!(
                "two rows of the query's result break the table's constraint{} (complete mode \
                 writes the whole result, so its rows must differ there): make them differ in \
                 the query, or drop that constraint",
                db.constraint()
                    .map(|c| format!(" `{c}`"))
                    .unwrap_or_default()
            )
        }
        c if (c == &SqlState::UNIQUE_VIOLATION || c == &SqlState::EXCLUSION_VIOLATION)
            && mode == Mode::Update =>
        {
            format!(
                "a row breaks the table's constraint{} on other columns than the sink's `key` \
                 (each key's row is written over, but two keys may not share those values): \
                 drop that constraint, or make the sink's `key` its columns",
                db.constraint()
                    .map(|c| format!(" `{c}`"))
                    .unwrap_or_default()
            )
        }
        c if c == &SqlState::UNIQUE_VIOLATION || c == &SqlState::EXCLUSION_VIOLATION => format!(
            "a row's key is in the table already (constraint{}): in append mode each row is \
             added; to write each key's newest row over the old one, use `output_mode: update` \
             with the sink's `key:`",
            db.constraint()
                .map(|c| format!(" `{c}`"))
                .unwrap_or_default()
        ),
        // A key too long for a btree index entry, a row past a page: the same row goes past
        // the limit on every attempt (walk 100: "the next run finishes it", every run).
        c if c == &SqlState::PROGRAM_LIMIT_EXCEEDED => format!(
            "a row of the batch goes past a limit of the server's (its words above; a btree \
             index, as a unique key's, holds values of at most about 2700 bytes): shorten or \
             leave out such values in the query ({col}), or change the table"
        ),
        // Any other value the column's type does not read (text that is not JSON into a
        // `json` column, a date past its range): a data exception, class 22.
        // Not 22P03/22P04: a binary COPY the server does not read is Sluice's own encoding.
        c if c.code().starts_with("22") && !matches!(c.code(), "22P03" | "22P04") => format!(
            "a value of {col} does not read as the column's type in the table (the server's \
             words above): change or leave out such values in the query, or give the column \
             a type that takes them (`ALTER TABLE {table} ALTER COLUMN {name} TYPE text`)"
        ),
        _ => return None,
    };
    Some(advice)
}

impl PostgresSink {
    /// The column that records each row's batch, by which `sluice rewind` takes a batch
    /// back; refused (before the server is asked anything) without `batch_column`, or in
    /// update or complete mode, whose rows overwrote older ones.
    fn batch_column_to_take_back(&self) -> Result<&String, SinkError> {
        let Some(batch_column) = &self.config.batch_column else {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "taking a batch back (`sluice rewind`) without `batch_column`",
            });
        };
        if self.mode != Mode::Append {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "taking a batch back (`sluice rewind`) in update or complete mode \
                            (its rows overwrote older ones)",
            });
        }
        Ok(batch_column)
    }

    /// A failure of writing batch `batch`'s rows (`doing`): an error a row caused is fatal
    /// and says what to change ([`row_error_advice`]); others as [`Self::failure`] has them.
    fn write_failure(&self, e: &tokio_postgres::Error, doing: &str, batch: BatchId) -> Failure {
        match row_error_advice(e, &quote_path(&self.table), self.mode) {
            Some(advice) => Failure::Fatal(SinkError::RowRefused {
                kind: KIND.name,
                reason: format!(
                    "table `{}`: batch {batch}: {doing}: {}. {advice} (nothing of the batch was \
                     committed)",
                    self.table,
                    describe(e).trim_end_matches('.')
                ),
            }),
            None => self.failure(e, doing),
        }
    }

    /// The server and database, `postgresql://host:port/db` (the location without its table).
    fn server(&self) -> &str {
        self.location
            .strip_suffix(&format!("/{}", self.config.table))
            .unwrap_or(&self.location)
    }

    fn error(&self, error: impl std::fmt::Display) -> SinkError {
        SinkError::Connector {
            kind: KIND.name,
            error: format!("table `{}`: {error}", self.table).into(),
        }
    }

    fn failure(&self, e: &tokio_postgres::Error, doing: &str) -> Failure {
        let mut text = format!("{doing}: {}", describe(e));
        if e.code() == Some(&SqlState::INVALID_SCHEMA_NAME) {
            text.push_str(
                ": make the schema (`CREATE SCHEMA ...`), or name a table (`table:`, \
                 `progress_table:`) in a schema that exists",
            );
        }
        // The role as the url names it, for the advice below.
        let role = || {
            tokio_postgres::Config::from_str(&self.config.url)
                .ok()
                .and_then(|c| c.get_user().filter(|u| !u.contains("${")).map(quote))
                .unwrap_or_else(|| "<role>".to_string())
        };
        let message = e.as_db_error().map(|db| db.message()).unwrap_or_default();
        // Walk 116: the server's words alone, and "the next run says what to do", which it
        // did not.
        if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
            && message.contains("row-level security")
        {
            text.push_str(&format!(
                ": the table has row-level security, under which PostgreSQL takes no COPY, and \
                 append and complete mode write by COPY. Let the role bypass it (`ALTER ROLE \
                 {} BYPASSRLS;`, or make it the table's owner), or turn it off for the table \
                 (`ALTER TABLE {} DISABLE ROW LEVEL SECURITY;`), then run again",
                role(),
                quote_path(&self.table)
            ));
        }
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            text.push_str(&format!(
                ": the role's sessions are read-only (`default_transaction_read_only`, or a \
                 standby server): let it write (`ALTER ROLE {} SET default_transaction_read_only \
                 = off;`), or point `url` at the primary, then run again",
                role()
            ));
        }
        // A row a row-level security policy refuses (update mode's INSERT): no grant helps.
        let policy = message.contains("row-level security policy");
        if policy {
            text.push_str(&format!(
                ": a row-level security policy of the table refuses the row: let the role \
                 bypass it (`ALTER ROLE {} BYPASSRLS;`), or widen the policy (`ALTER POLICY ... \
                 WITH CHECK (...)`), then run again",
                role()
            ));
        }
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) && !policy {
            // The role as the url names it (a `${VAR}` in it is not filled in here).
            let role = role();
            let rights = match self.mode {
                Mode::Append if self.config.batch_column.is_some() => "SELECT, INSERT, DELETE",
                Mode::Append => "SELECT, INSERT",
                Mode::Update => "SELECT, INSERT, UPDATE",
                Mode::Complete => "SELECT, INSERT, DELETE",
            };
            text.push_str(&if doing.contains("staging table") {
                // A TEMPORARY table needs the database's TEMP right.
                format!(
                    ": the role Sluice connects as needs to make temporary tables (update \
                     mode stages each batch in one): `GRANT TEMP ON DATABASE <database> TO \
                     {role};`"
                )
            } else if doing.starts_with("making the") {
                let made = if doing.contains("progress") {
                    &self.config.progress_table
                } else {
                    &self.table
                };
                let schema = made
                    .split_once('.')
                    .map_or_else(|| "<schema>".to_string(), |(schema, _)| quote(schema));
                format!(
                    ": the role Sluice connects as needs CREATE on the schema to make it \
                     (`GRANT CREATE ON SCHEMA {schema} TO {role};`), or make it in advance"
                )
            } else {
                // A schema's USAGE, without which no right on its tables counts (walk 116: the
                // table's grants alone were advised, and changed nothing).
                let usage = e
                    .as_db_error()
                    .and_then(|db| db.message().strip_prefix("permission denied for schema "))
                    .map(|schema| {
                        format!(
                            " USAGE on the schema (`GRANT USAGE ON SCHEMA {} TO {role};`) and",
                            quote(schema.trim())
                        )
                    })
                    .unwrap_or_default();
                format!(
                    ": the role Sluice connects as needs{usage}, on the table, `GRANT {rights} \
                     ON {} TO {role};`, and on the progress table `GRANT SELECT, INSERT, UPDATE \
                     ON {} TO {role};`",
                    quote_path(&self.table),
                    quote_path(&self.config.progress_table),
                )
            });
        }
        if retriable(e) {
            Failure::Retry(text)
        } else {
            Failure::Fatal(self.error(text))
        }
    }

    /// The name sessions of this pipeline's run of `epoch` give themselves (at most 63
    /// bytes); an operator command's session has a name no run ends.
    /// A failure as the error a check before any batch reports: there is no attempt to
    /// repeat there, so a retriable one is reported as it is.
    fn fatal(&self, failure: Failure) -> SinkError {
        match failure {
            Failure::Fatal(e) => e,
            Failure::Retry(text) => self.error(text),
        }
    }

    fn application_name(&self, epoch: Option<u64>) -> String {
        match epoch {
            Some(epoch) => format!("sluice:{}:{epoch}", self.pipeline.simple()),
            None => format!("sluice-tool:{}", self.pipeline.simple()),
        }
    }

    /// Connects as epoch `epoch`, with the attempt's timeouts.
    async fn connect(&self, epoch: Option<u64>) -> Result<Live, Failure> {
        // The text is the pipeline file's: what is wrong with it is the user's to fix (exit 2).
        let mistake = |why: String| {
            Failure::Fatal(SinkError::Config {
                kind: KIND.name,
                reason: format!("table `{}`: `url`: {why}", self.table),
            })
        };
        let url = expand_connection_string(&self.config.url).map_err(mistake)?;
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            // Once `${VAR}`s are filled in, the parser's message may quote a secret.
            let why = if self.config.url.contains("${") {
                "it does not parse once its `${VAR}`s are filled in (a variable that holds the \
                 whole `url` must hold a whole connection string; the text is not shown)"
                    .to_string()
            } else {
                redact(&e)
            };
            mistake(format!("not a PostgreSQL connection string or URL: {why}"))
        })?;
        check_dbname(&config).map_err(mistake)?;
        let timeout = self.config.retry.timeout;
        config
            .application_name(self.application_name(epoch))
            .connect_timeout(timeout);
        let millis = timeout.as_millis().max(1);
        // A lock is waited for at most the timeout, and a session left waiting inside a
        // transaction (its run paused or gone) is ended by the server after it, letting go of
        // its locks; a statement (a large COPY) may take longer. Keepalives find a server gone
        // without a word. The session's time zone is UTC, Sluice's own: update mode moves rows
        // from a staging table of the query's types into the table's by SQL, which converts a
        // time with a zone to one without (and back) in the session's zone (walk 72: a role
        // whose `TimeZone` was New York shifted every time by its offset). As `pg_dump` does,
        // the session has no statement timeout (a role's low one cancelled each large COPY, and
        // every retry, walk 116) and writes a float as the number it is (`extra_float_digits`
        // 3: a role's 0 printed `41.272` for the stored `41.272000000000006`, and a replay's
        // check took it for a changed value).
        // The connection string's own `options` go first, so that Sluice's are the ones the
        // server keeps where both set one (they were dropped before: a `search_path` given
        // there was not used).
        let given = config
            .get_options()
            .map(|o| format!("{o} "))
            .unwrap_or_default();
        config
            .options(format!(
                "{given}-c lock_timeout={millis} -c idle_in_transaction_session_timeout={millis} \
                 -c TimeZone=UTC -c statement_timeout=0 -c extra_float_digits=3"
            ))
            .keepalives(true)
            .keepalives_idle(timeout.min(std::time::Duration::from_secs(30)));
        let connected = tokio::time::timeout(timeout, config.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| {
                Failure::Retry(format!(
                    "connecting to {}: no answer within {}",
                    self.server(),
                    humantime::format_duration(timeout)
                ))
            })?;
        let (client, connection) = connected.map_err(|e| {
            let text = format!("connecting to {}: {}", self.server(), describe(&e));
            if e.as_db_error().is_some() && !retriable(&e) {
                Failure::Fatal(self.error(text))
            } else {
                Failure::Retry(text)
            }
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {}", describe(&e));
            }
        });
        let progress = quote_path(&self.config.progress_table);
        // Made only where missing (a role without CREATE on the schema can use a table made
        // for it in advance), and only by a run's session about to write a batch.
        let exists = client
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&progress])
            .await
            .map_err(|e| self.failure(&e, "looking for the progress table"))?
            .get::<_, bool>(0);
        let progress_made = exists || epoch.is_some();
        if !exists && epoch.is_some() {
            client
                .batch_execute(&progress_table_ddl(&progress))
                .await
                .or_else(|e| {
                    // Two sessions creating it at once: one wins, the other finds it made.
                    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| self.failure(&e, "making the progress table"))?;
        }
        // A table not made yet will have every column.
        let (targets, relations, labels) = if progress_made {
            self.progress_targets(&client, &progress, epoch.is_some())
                .await?
        } else {
            (true, true, true)
        };
        Ok(Live {
            client,
            epoch,
            checked: None,
            table_types: TableTypes::new(),
            targets,
            relations,
            labels,
            progress_made,
        })
    }

    /// Whether the progress table `progress` records each row's table (its `target` column,
    /// the table's name, and `relation`, the table's `oid`, which a table dropped and made
    /// anew under the same name does not keep), adding the columns to a table made before
    /// they were recorded where `alter` (a run's session; an operator command's changes
    /// nothing). Without the right to add them, the run goes on without the checks they
    /// serve, saying so.
    async fn progress_targets(
        &self,
        client: &tokio_postgres::Client,
        progress: &str,
        alter: bool,
    ) -> Result<(bool, bool, bool), Failure> {
        let has = client
            .query_one(
                "SELECT bool_or(attname = 'target'), bool_or(attname = 'relation'), \
                 bool_or(attname = 'label') \
                 FROM pg_attribute WHERE attrelid = to_regclass($1::text) \
                 AND attname IN ('target', 'relation', 'label') AND NOT attisdropped",
                &[&progress],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the progress table's columns"))?;
        let has: (bool, bool, bool) = (
            has.get::<_, Option<bool>>(0).unwrap_or(false),
            has.get::<_, Option<bool>>(1).unwrap_or(false),
            has.get::<_, Option<bool>>(2).unwrap_or(false),
        );
        if has == (true, true, true) || !alter {
            return Ok(has);
        }
        match client
            .batch_execute(&format!(
                "ALTER TABLE {progress} ADD COLUMN IF NOT EXISTS target text, \
                 ADD COLUMN IF NOT EXISTS relation oid, ADD COLUMN IF NOT EXISTS label text"
            ))
            .await
        {
            Ok(()) => Ok((true, true, true)),
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                let skipped: Vec<&str> = [
                    (!has.0).then_some(
                        "a new checkpoint over a table another pipeline appends to, and a \
                         table dropped since this pipeline wrote it, are not refused",
                    ),
                    (!has.1).then_some(
                        "a table dropped and made anew since this pipeline wrote it is not \
                         refused",
                    ),
                    (!has.2).then_some(
                        "another pipeline writing the same update- or complete-mode table, \
                         and a copy of this checkpoint, are not told apart",
                    ),
                ]
                .into_iter()
                .flatten()
                .collect();
                tracing::warn!(
                    "PostgreSQL sink: cannot add the `target`, `relation` and `label` columns \
                     to {progress} ({}): {}",
                    describe(&e),
                    skipped.join("; ")
                );
                Ok(has)
            }
            Err(e) => Err(self.failure(
                &e,
                "adding the progress table's `target`, `relation` and `label` columns",
            )),
        }
    }

    /// The table the rows go to as the server names it (`schema.table`, quoted where it needs
    /// to be), however the pipeline spells it: what the progress row's `target` records.
    async fn resolved_table(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<String, Failure> {
        let row = tx
            .query_opt(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "looking up the table"))?;
        Ok(row.map_or_else(|| quote_path(&self.table), |r| r.get(0)))
    }

    /// Refuses a table named without its schema that the session now finds in another schema
    /// (or would make in another) than the one this pipeline's batches went to, as its own
    /// progress row in any progress table records them (walk 100: the url's `options` took
    /// `search_path` out, and the batches from then on went into a new table of the name in
    /// `public`, the earlier ones left in the old, without a word; a role's or database's
    /// `search_path` changed does the same).
    async fn check_same_schema(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), Failure> {
        if self.table.contains('.') {
            return Ok(());
        }
        // No schema of the `search_path` exists: the run says so where it makes the table.
        let now: Option<String> = tx
            .query_one(
                "SELECT coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)), \
                   CASE WHEN current_schema() IS NOT NULL \
                     THEN format('%I.%I', current_schema(), $2::text) END)",
                &[&quote_path(&self.table), &self.table],
            )
            .await
            .map_err(|e| self.failure(&e, "looking up the table"))?
            .get(0);
        let Some(now) = now else {
            return Ok(());
        };
        let Some((schema, table)) = split_qualified(&now) else {
            return Ok(());
        };
        for (progress, _) in self.progress_tables(tx).await? {
            let rows = self
                .read_progress_table(
                    tx,
                    &format!(
                        "SELECT target, batch FROM {progress} WHERE pipeline = $1 AND target <> $2"
                    ),
                    &[&self.progress_key, &now],
                )
                .await?
                .unwrap_or_default();
            for row in rows {
                let (Ok(went), Ok(batch)) = (row.try_get::<_, String>(0), row.try_get::<_, i64>(1))
                else {
                    continue;
                };
                let Some((went_schema, went_table)) = split_qualified(&went) else {
                    continue;
                };
                if went_table != table || went_schema == schema {
                    continue;
                }
                return Err(Failure::Fatal(SinkError::Config {
                    kind: KIND.name,
                    reason: format!(
                        "table `{name}` is {now} to this session (the first schema of its \
                         `search_path` that has it, or where it would be made), but this \
                         checkpoint's batches up to {batch} went to {went} (its row in \
                         {progress}): the `search_path` changed (the url's `options`, or the \
                         role's or database's setting), and batches from now on would go to \
                         another table than the earlier ones (and a progress table named without \
                         its schema with them). Name both with their schemas (`table: {went}`, \
                         `progress_table: {progress}`) to write on where the batches went; to \
                         move the sink on purpose, name the new table with its schema (`table: \
                         {now}`, `progress_table` as above), and the run says what the move \
                         means",
                        name = self.table,
                        went = crate::vocab::yaml_scalar(&went),
                        progress = crate::vocab::yaml_scalar(&progress),
                        now = crate::vocab::yaml_scalar(&now),
                    ),
                }));
            }
        }
        Ok(())
    }

    /// Every progress table of the database this session may read, this sink's and those
    /// of pipelines configured with another `progress_table`, each as the server names it
    /// and whether it has the `label` column: the tables with a progress table's columns
    /// (`pipeline`, `batch`, `epoch`, `rows`, `committed_at` and `target`). A pipeline is
    /// told by its row in any of them, whichever `progress_table` it was given.
    async fn progress_tables(
        &self,
        tx: &impl tokio_postgres::GenericClient,
    ) -> Result<Vec<(String, bool)>, Failure> {
        self.progress_tables_where(tx, true).await
    }

    /// The progress tables of the database ([`Self::progress_tables`]) this session may not
    /// read (the schema's `USAGE` or the table's `SELECT` not granted to its role), with the
    /// role: a pipeline whose row is in one of them is not seen (walk 105: a role that could
    /// not read another pipeline's progress table appended its batches again, unsaid).
    async fn unreadable_progress_tables(
        &self,
        client: &impl tokio_postgres::GenericClient,
    ) -> Result<(Vec<String>, String), Failure> {
        let tables = self.progress_tables_where(client, false).await?;
        let role: String = client
            .query_one("SELECT format('%I', current_user)", &[])
            .await
            .map_err(|e| self.failure(&e, "reading the session's role"))?
            .get(0);
        Ok((tables.into_iter().map(|(t, _)| t).collect(), role))
    }

    /// What `unreadable` ([`Self::unreadable_progress_tables`]) means for `target`, as a
    /// sentence to put in a refusal, with the statements that let `role` read them; empty
    /// where there are none.
    fn unseen(&self, unreadable: &[String], role: &str) -> String {
        if unreadable.is_empty() {
            return String::new();
        }
        // A shared database may have many: the first few, with their grants, and how many more.
        const SHOWN: usize = 5;
        let more = match unreadable.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(
                " and {n} more (`SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace \
                 n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid WHERE \
                 a.attname = 'committed_at' AND NOT has_table_privilege('{role}', c.oid, \
                 'SELECT')` as a superuser lists them)"
            ),
        };
        let grants: Vec<String> = unreadable
            .iter()
            .take(SHOWN)
            .map(|t| {
                let schema = split_qualified(t).map_or_else(String::new, |(s, _)| {
                    format!("GRANT USAGE ON SCHEMA {s} TO {role}; ")
                });
                format!("{schema}GRANT SELECT ON {t} TO {role};")
            })
            .collect();
        format!(
            " Progress tables this role ({role}) may not read, {}{more}, may hold the row of \
             the pipeline that wrote them: let it read them (`{}`) and run again, and the run \
             says whose they are (where no row names the table, they were written \
             otherwise).",
            unreadable
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            grants.join(" ")
        )
    }

    /// The progress tables ([`Self::progress_tables`]) this session may read (`readable`), or
    /// those it may not.
    async fn progress_tables_where(
        &self,
        tx: &impl tokio_postgres::GenericClient,
        readable: bool,
    ) -> Result<Vec<(String, bool)>, Failure> {
        let rows = tx
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname),
                        bool_or(a.attname = 'label')
                 FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                   AND NOT a.attisdropped
                   AND (a.attname, a.atttypid) IN (('pipeline', 'text'::regtype),
                       ('batch', 'int8'::regtype), ('epoch', 'int8'::regtype),
                       ('rows', 'int8'::regtype), ('committed_at', 'timestamptz'::regtype),
                       ('target', 'text'::regtype), ('label', 'text'::regtype))
                 WHERE c.relkind IN ('r', 'p') AND (has_table_privilege(c.oid, 'SELECT')
                   AND has_schema_privilege(n.oid, 'USAGE')) = $1
                 GROUP BY 1
                 HAVING count(*) FILTER (WHERE a.attname <> 'label') = 6
                 ORDER BY 1",
                &[&readable],
            )
            .await
            .map_err(|e| self.failure(&e, "looking for progress tables"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The rows of `sql` (a query of one of [`Self::progress_tables`]) in `tx`, behind a
    /// savepoint: `None` where that table went (dropped since it was listed) or cannot be
    /// read, which leaves the batch's transaction as it was.
    async fn read_progress_table(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Vec<tokio_postgres::Row>>, Failure> {
        let step = |e: tokio_postgres::Error| self.failure(&e, "reading the progress tables");
        tx.batch_execute("SAVEPOINT sluice_progress_tables")
            .await
            .map_err(step)?;
        match tx.query(sql, params).await {
            Ok(rows) => {
                tx.batch_execute("RELEASE SAVEPOINT sluice_progress_tables")
                    .await
                    .map_err(step)?;
                Ok(Some(rows))
            }
            Err(e)
                if e.code() == Some(&SqlState::UNDEFINED_TABLE)
                    || e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                tx.batch_execute("ROLLBACK TO SAVEPOINT sluice_progress_tables")
                    .await
                    .map_err(step)?;
                Ok(None)
            }
            Err(e) => Err(self.failure(&e, "reading the progress table")),
        }
    }

    /// Refuses, in `tx` (before any row is written), an append into table `target` whose
    /// rows another pipeline or checkpoint writes (its progress row names the same table),
    /// when this pipeline's progress row is new (`first`): a run on a new checkpoint starts
    /// from batch 0, so every batch would be added again. A lock on the table's name keeps
    /// two new pipelines from both passing at once. Update and complete modes rewrite what
    /// they write, so a new checkpoint over their table is no harm.
    async fn check_table_owner(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        target: &str,
    ) -> Result<(), Failure> {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('sluice:' || $1::text))",
            &[&target],
        )
        .await
        .map_err(|e| self.failure(&e, "locking the table's name"))?;
        let other = self
            .others_rows(tx, target, "pipeline, batch", false)
            .await?
            .into_iter()
            .find_map(|(progress, row)| {
                Some((
                    progress,
                    row.try_get::<_, String>(0).ok()?,
                    row.try_get::<_, i64>(1).ok()?,
                ))
            });
        let Some((progress, owner, batch)) = other else {
            // Only where this pipeline has no row yet (it runs on a new checkpoint, from batch
            // 0), the table exists (`create_table` makes it after this) and holds rows.
            let own = quote_path(&self.config.progress_table);
            let ours = self
                .read_progress_table(
                    tx,
                    &format!("SELECT 1 FROM {own} WHERE pipeline = $1"),
                    &[&self.progress_key],
                )
                .await?
                .is_some_and(|rows| !rows.is_empty());
            let exists: bool = tx
                .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&target])
                .await
                .map_err(|e| self.failure(&e, "looking up the table"))?
                .get(0);
            if ours || !exists {
                return Ok(());
            }
            let (unreadable, role) = self.unreadable_progress_tables(tx).await?;
            if unreadable.is_empty() {
                return Ok(());
            }
            // A table this role may not read counts as holding rows.
            let holds = self
                .read_progress_table(tx, &format!("SELECT EXISTS (SELECT 1 FROM {target})"), &[])
                .await?
                .and_then(|rows| rows.first().map(|r| r.get::<_, bool>(0)))
                .unwrap_or(true);
            if !holds {
                return Ok(());
            }
            return Err(Failure::Fatal(SinkError::Config {
                kind: KIND.name,
                reason: format!(
                    "table {target} holds rows, and this checkpoint has written none of them: \
                     where another pipeline or checkpoint wrote them, appending from batch 0 \
                     would add them again.{} Where they cannot be granted, give this pipeline \
                     a table of its own (a new `sink.table`, made by `create_table: true`)",
                    self.unseen(&unreadable, &role)
                ),
            }));
        };
        // Which pipeline that is, where its row says (walk 64: the id alone named none).
        let who = self
            .others_rows(tx, target, "pipeline, label", true)
            .await?
            .into_iter()
            .find_map(|(_, row)| {
                (row.try_get::<_, String>(0).ok()? == owner)
                    .then(|| row.try_get::<_, String>(1).ok())
                    .flatten()
            })
            .map(|label| format!(", {label}"))
            .unwrap_or_default();
        // A row whose `relation` is another table's oid names a table dropped since: none of
        // its batches are in this one (audit 90b: a table just made, empty, was said to hold
        // them).
        let dropped = self
            .others_rows(tx, target, "pipeline, relation = to_regclass(target)", true)
            .await?
            .into_iter()
            .find_map(|(_, row)| {
                (row.try_get::<_, String>(0).ok()? == owner)
                    .then(|| row.try_get::<_, Option<bool>>(1).ok().flatten())
                    .flatten()
            })
            == Some(false);
        if dropped {
            return Err(Failure::Fatal(SinkError::Config {
                kind: KIND.name,
                reason: format!(
                    "table {target} was dropped and made again since another pipeline or \
                     checkpoint{who} wrote its batches (up to {batch}) into it: its row in \
                     {progress} (`{owner}`) names the table dropped, so none of them are in \
                     this one. If that pipeline no longer writes here, delete its row \
                     (`DELETE FROM {progress} WHERE pipeline = '{owner}';`) and run again; if \
                     it still does, give each pipeline its own table"
                ),
            }));
        }
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "table {target} holds the batches (up to {batch}) of another pipeline or \
                 checkpoint{who} (its row in {progress} is `{owner}`; this checkpoint's is `{ours}`; \
                 `sluice inspect <checkpoint>` shows a checkpoint's id), and appending would add \
                 them again: give each pipeline and checkpoint its own table. If the other \
                 checkpoint (`{owner}`) is the one meant to write this table, run that one, and \
                 remove this one or point it at another table. To have this pipeline \
                 write the table instead, empty it and drop the other's progress row \
                 (`TRUNCATE {target}; DELETE FROM {progress} WHERE pipeline = '{owner}';`), \
                 then run it on a checkpoint without committed batches, so that each is \
                 written",
                ours = self.progress_key,
            ),
        }))
    }

    /// Keeps this run's label in its progress row (in the transaction of a batch that found
    /// another there, or none), by which another pipeline writing the same update- or
    /// complete-mode table, and a copy of the checkpoint running elsewhere, are told apart.
    async fn write_label(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), Failure> {
        let progress = quote_path(&self.config.progress_table);
        tx.execute(
            &format!("UPDATE {progress} SET label = $2 WHERE pipeline = $1"),
            &[&self.progress_key, &self.label],
        )
        .await
        .map_err(|e| self.failure(&e, "labelling the progress row"))?;
        Ok(())
    }

    /// Refuses, in `tx`, a batch of this run (epoch `epoch`) where the pipeline's progress row
    /// was written at the same epoch by a run of a checkpoint elsewhere (another label): a
    /// copy of the checkpoint (`cp -a`), whose epochs are this one's, running beside it. The
    /// epoch fence cannot tell the two apart, and each would write its batches over the
    /// other's. A run of either taken again has a newer epoch, which fences the other.
    /// `Ok(true)` where the row holds this run's label already (nothing to write).
    async fn check_no_copy(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        epoch: u64,
    ) -> Result<bool, Failure> {
        let progress = quote_path(&self.config.progress_table);
        let row = tx
            .query_opt(
                &format!("SELECT epoch, label FROM {progress} WHERE pipeline = $1 FOR UPDATE"),
                &[&self.progress_key],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the progress row"))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let (theirs, label): (i64, Option<String>) = (row.get(0), row.get(1));
        if label.as_deref() == Some(self.label.as_str()) {
            return Ok(true);
        }
        let Some(label) = label.filter(|l| !l.is_empty()) else {
            return Ok(false);
        };
        if u64::try_from(theirs).ok() != Some(epoch) {
            return Ok(false);
        }
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "this pipeline's progress row in {progress} was written by {label} at this \
                 run's own epoch ({epoch}): that is a copy of this checkpoint (the same pipeline \
                 id and epochs), running or run beside it, and the two would write their \
                 batches over each other's. Keep the one that wrote the row, whose log matches \
                 what the table holds, and remove this one (a copy of a live checkpoint is no \
                 backup: stop the pipeline before copying)"
            ),
        }))
    }

    /// The other pipelines' progress rows for table `target` that carry a label, newest
    /// commit first: each row's key (`pipeline`) and label.
    async fn other_writers(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        target: &str,
    ) -> Result<Vec<Writer>, Failure> {
        let rows = self
            .others_rows(tx, target, "pipeline, label, committed_at", true)
            .await?;
        let mut writers: Vec<Writer> = rows
            .into_iter()
            .filter_map(|(progress, row)| {
                Some(Writer {
                    owner: row.try_get(0).ok()?,
                    label: row.try_get(1).ok()?,
                    committed_at: row.try_get(2).ok()?,
                    progress,
                })
            })
            .collect();
        writers.sort_by_key(|w| std::cmp::Reverse(w.committed_at));
        Ok(writers)
    }

    /// `columns` of the rows of other pipelines (not this one's key) naming table `target`, in
    /// every progress table of the database (with a `label` where `labelled`), each with the
    /// progress table that holds it; a table that went or cannot be read is passed over.
    async fn others_rows(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        target: &str,
        columns: &str,
        labelled: bool,
    ) -> Result<Vec<(String, tokio_postgres::Row)>, Failure> {
        let mut out = Vec::new();
        for (progress, labels) in self.progress_tables(tx).await? {
            if labelled && !labels {
                continue;
            }
            let rows = self
                .read_progress_table(
                    tx,
                    &format!(
                        "SELECT {columns} FROM {progress} WHERE target = $1 AND pipeline <> $2{}",
                        if labelled {
                            " AND label IS NOT NULL"
                        } else {
                            ""
                        }
                    ),
                    &[&target, &self.progress_key],
                )
                .await?
                .unwrap_or_default();
            out.extend(rows.into_iter().map(|row| (progress.clone(), row)));
        }
        Ok(out)
    }

    /// Refuses, in `tx`, an update- or complete-mode batch into table `target` where a newer
    /// checkpoint of this pipeline has taken the table over ([`super::retired_by`]): its
    /// progress row, another pipeline id's, is labelled with this pipeline's name and a
    /// checkpoint made later. In complete mode looked at every batch, so a run that was going
    /// when the newer one started stops at its next batch; in update mode said once, before
    /// the first batch (pipelines of one name may write keys of their own).
    async fn check_not_retired(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        target: &str,
    ) -> Result<(), Failure> {
        if super::pipeline_name(&self.label).is_none() {
            return Ok(());
        }
        let newer = self
            .other_writers(tx, target)
            .await?
            .into_iter()
            .find(|w| super::retired_by(&self.label, &w.label));
        let Some(Writer {
            progress,
            owner,
            label: by,
            ..
        }) = newer
        else {
            return Ok(());
        };
        if self.mode == Mode::Update {
            // Said once, before the first batch (the preflight).
            tracing::warn!(
                "PostgreSQL sink: table {target} is written by {by} too, a newer checkpoint \
                 of this pipeline (the same `name`; its row in {progress} is `{owner}`): \
                 where that one replaced this one, stop this one's runs, which would write \
                 their older rows of each key over that one's; where each writes keys of its \
                 own (a shard of the table), nothing is to be done"
            );
            return Ok(());
        }
        Err(Failure::Fatal(SinkError::Retired {
            location: format!("PostgreSQL table {target}"),
            by,
            undo: format!(
                "To write it from this one again instead, stop that one and delete its \
                 progress row first (`DELETE FROM {progress} WHERE pipeline = '{owner}';`)"
            ),
        }))
    }

    /// Refuses, in `tx`, an update- or complete-mode pipeline writing table `target` that
    /// another pipeline (another name: a pipeline of the same name on a new checkpoint takes
    /// its table over) writes too: each would write over the other's rows of a key (update)
    /// or all of them (complete), and the table would hold whichever wrote last.
    async fn check_other_writer(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        target: &str,
    ) -> Result<(), Failure> {
        let ours = super::pipeline_name(&self.label);
        if ours.is_none() {
            return Ok(());
        }
        // Two pipelines' first batches at once would each miss the other's row, not yet
        // committed: the second waits here, until the first's transaction ends, and then
        // finds it.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('sluice table ' || $1))",
            &[&target],
        )
        .await
        .map_err(|e| self.failure(&e, "locking the table's writers"))?;
        let others: Vec<Writer> = self
            .other_writers(tx, target)
            .await?
            .into_iter()
            .filter(|w| super::pipeline_name(&w.label) != ours)
            .collect();
        let Some(Writer {
            progress,
            owner,
            label,
            ..
        }) = others.first()
        else {
            return Ok(());
        };
        if self.mode == Mode::Update {
            // Pipelines that each write their own keys (a shard of the table) are a way to
            // use update mode: said, not refused. Every other writer is named (walk 64: one
            // of two was).
            let writers = others
                .iter()
                .map(|w| format!("{} (its row in {} is `{}`)", w.label, w.progress, w.owner))
                .collect::<Vec<_>>()
                .join("; ");
            tracing::warn!(
                "PostgreSQL sink: table {target} is written by {writers} too: in update mode \
                 each pipeline writes the rows of its keys over the others', so unless each \
                 writes keys of its own (a shard of the table), the table holds whichever \
                 wrote a key last. Give each pipeline its own table (and a view that combines \
                 them) where their keys meet. If one is no longer run (this pipeline under its \
                 name before a `sluice rename`, or a checkpoint given up), its row is all that \
                 is left of it: retire it (`DELETE FROM {progress} WHERE pipeline = \
                 '{owner}';`, for the first) and it is not named again"
            );
            return Ok(());
        }
        let how = "each batch of either replaces every row of the table";
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "table {target} is written by {label} too (its row in {progress} is \
                 `{owner}`), and {how}, so the table would hold whichever wrote last: give \
                 each pipeline its own table (and a view that combines them). If this \
                 pipeline replaces that one, drop that one's progress row first (`DELETE \
                 FROM {progress} WHERE pipeline = '{owner}';`). A pipeline of the same \
                 `name` on a new checkpoint takes the table over without this"
            ),
        }))
    }

    /// Ends every session of this pipeline working for an older epoch than `epoch`: a late
    /// run paused inside its transaction holds the progress row's lock, which a newer run
    /// would otherwise wait for; its next step then fails and it stops at its fence check.
    async fn end_older_sessions(&self, live: &Live) -> Result<(), Failure> {
        let prefix = format!("sluice:{}:", self.pipeline.simple());
        let ended = live
            .client
            .query(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE pid <> pg_backend_pid() AND starts_with(application_name, $1::text)
                   AND CASE WHEN substr(application_name, length($1::text) + 1) ~ '^[0-9]+$'
                       THEN substr(application_name, length($1::text) + 1)::bigint < $2::bigint
                       ELSE false END",
                &[
                    &prefix,
                    &i64::try_from(live.epoch.unwrap_or(0)).unwrap_or(i64::MAX),
                ],
            )
            .await;
        match ended {
            Ok(rows) if !rows.is_empty() => {
                tracing::info!(
                    "PostgreSQL sink: ended {} session(s) of an older run of this pipeline",
                    rows.len()
                );
                Ok(())
            }
            Ok(_) => Ok(()),
            // Without the right to end them, the lock and idle timeouts still bound the wait.
            Err(e) if e.as_db_error().is_some() => {
                tracing::warn!(
                    "PostgreSQL sink: cannot end the sessions of older runs: {}",
                    describe(&e)
                );
                Ok(())
            }
            Err(e) => Err(self.failure(&e, "looking for sessions of older runs")),
        }
    }

    /// Where the table of `oid` (the one a progress row records) is now, where it is not under
    /// the name `table:` gives (renamed, or moved to another schema): its name as the server
    /// gives it, and the statements that put it back. `None` where it is gone (or is the one
    /// under that name).
    async fn renamed(
        &self,
        client: &impl tokio_postgres::GenericClient,
        oid: u32,
    ) -> Result<Option<(String, String)>, tokio_postgres::Error> {
        let (schema, name) = match self.table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, self.table.as_str()),
        };
        let row = client
            .query_opt(
                "SELECT format('%I.%I', n.nspname, c.relname), n.nspname::text,
                        coalesce($2::text, current_schema()), c.relname::text
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.oid = $1 AND c.oid IS DISTINCT FROM to_regclass($3)",
                &[&oid, &schema, &quote_path(&self.table)],
            )
            .await?;
        Ok(row.map(|r| {
            let (now, in_schema, wanted, relname): (String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let undo = if in_schema == wanted {
                format!("ALTER TABLE {now} RENAME TO {};", quote(name))
            } else if relname == name {
                // Moved under its own name: a rename to it would fail on the table itself,
                // and roll the move back with it (walk 116).
                format!("ALTER TABLE {now} SET SCHEMA {};", quote(&wanted))
            } else {
                format!(
                    "ALTER TABLE {now} SET SCHEMA {}; ALTER TABLE {}.{} RENAME TO {};",
                    quote(&wanted),
                    quote(&wanted),
                    now.rsplit_once('.').map_or(now.as_str(), |(_, n)| n),
                    quote(name)
                )
            };
            (now, undo)
        }))
    }

    /// Refuses a table that lost the batches this pipeline committed into it: its progress
    /// row names this table, but the table is gone (dropped or renamed), or it is another
    /// table under the same name (its `oid` is not the one recorded: dropped and made anew)
    /// that does not hold the newest committed batch's rows (with `batch_column`: no row of
    /// that batch, or of any batch up to it where that batch wrote none; without it, nothing
    /// tells, so it is refused). A table made anew that holds them was restored, and is
    /// written on. Rows deleted from the same table are the user's business (a job that
    /// drains it). Nothing where the progress row names another table (the sink moved) or
    /// records none (a progress table without `target`). `columns`: the table's columns, as
    /// it has them now.
    async fn check_committed_table(
        &self,
        live: &Live,
        columns: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Failure> {
        // Complete mode writes the whole result each batch: the next one rewrites the table.
        if !live.targets || !live.progress_made || self.mode == Mode::Complete {
            return Ok(());
        }
        let progress = quote_path(&self.config.progress_table);
        let (schema, name) = match self.table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, self.table.as_str()),
        };
        let Some(row) = live
            .client
            .query_opt(
                &format!(
                    "SELECT batch, {}, to_regclass(target)::oid, rows FROM {progress} \
                     WHERE pipeline = $1 AND target = \
                     format('%I.%I', coalesce($2::text, current_schema()), $3::text)",
                    if live.relations {
                        "relation"
                    } else {
                        "NULL::oid"
                    },
                ),
                &[&self.progress_key, &schema, &name],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the progress table"))?
        else {
            return Ok(());
        };
        let batch: i64 = row.get(0);
        let (recorded, current): (Option<u32>, Option<u32>) = (row.get(1), row.get(2));
        let table = quote_path(&self.table);
        let start_over = format!(
            "to start this pipeline over, drop its progress row (`DELETE FROM {progress} WHERE \
             pipeline = '{}';`) and run it on a new checkpoint (delete the folder <checkpoint>, \
             or give `--checkpoint` a new one)",
            self.progress_key
        );
        // Where the table it wrote is now, asked only where it is not the one under the name.
        let moved = match recorded {
            Some(oid) if current != Some(oid) => self
                .renamed(&live.client, oid)
                .await
                .map_err(|e| self.failure(&e, "looking up the table it wrote"))?,
            _ => None,
        };
        if let (None, Some((now, undo))) = (current, &moved) {
            return Err(Failure::Fatal(SinkError::Lost {
                kind: KIND.name,
                reason: format!(
                    "the table {table} does not exist: it was renamed to {now} (the table this \
                     pipeline committed batches up to {batch} into, by the `oid` the progress \
                     table `{}` records). Put it back under its name (`{undo}`) and run again: \
                     each batch records the table by name, and `replay --verify` and `rewind` \
                     read it there",
                    self.config.progress_table,
                ),
            }));
        }
        let Some(current) = current else {
            return Err(Failure::Fatal(SinkError::Lost {
                kind: KIND.name,
                reason: format!(
                    "the table {table} does not exist, but the progress table `{}` records \
                     that this pipeline committed batches up to {batch} into it: it was \
                     dropped or renamed since, and a table made anew would hold none of their \
                     rows. Restore the table; or, {start_over} (with `create_table: true` the \
                     table is then made anew)",
                    self.config.progress_table,
                ),
            }));
        };
        if recorded.is_none_or(|recorded| recorded == current) {
            return Ok(());
        }
        // Whether it holds the newest committed batch's rows (those before it may have been
        // deleted on purpose; a table made anew from a copy older than the newest batch
        // lacks them): only a batch column tells.
        let rows: i64 = row.get(3);
        let holds = match &self.config.batch_column {
            Some(column) if columns.contains_key(column) => live
                .client
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} {} $1::bigint)",
                        if rows > 0 { "=" } else { "<=" },
                        column = quote(column),
                    ),
                    &[&batch],
                )
                .await
                .map_err(|e| self.failure(&e, "reading the table"))?
                .get::<_, bool>(0),
            _ => false,
        };
        if holds {
            tracing::info!(
                "PostgreSQL sink: {table} was made anew since batch {batch} and holds its rows: \
                 taken as restored"
            );
            return Ok(());
        }
        let which = match &self.config.batch_column {
            Some(column) if !columns.contains_key(column) => {
                format!("it has no `{column}` column, so it holds none of their rows")
            }
            Some(column) if rows > 0 => format!(
                "it holds none of the rows of batch {batch}, the newest (no row with `{column}` \
                 = {batch}), so it lacks at least that batch"
            ),
            Some(column) => {
                format!("it holds none of their rows (no row with `{column}` up to {batch})")
            }
            None => {
                "without `batch_column` Sluice cannot tell whether it holds their rows".to_string()
            }
        };
        let wrote = match &moved {
            Some((now, _)) => format!("; the table it wrote is {now} now"),
            None => String::new(),
        };
        Err(Failure::Fatal(SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "the table {table} was {how} since this pipeline committed batches up to \
                 {batch} into it (the progress table `{}` records the table it wrote, and this \
                 is another one under the same name{wrote}), and {which}: writing on could \
                 leave them out. {restore}; or, where the table holds what \
                 it should (every row put back, or those batches left out on purpose), write \
                 on: `UPDATE {progress} SET relation = NULL WHERE pipeline = '{}';`",
                self.config.progress_table,
                self.progress_key,
                how = if moved.is_some() {
                    "renamed and another made under its name"
                } else {
                    "dropped and made anew"
                },
                // Without a batch column rows put back are not told apart: the UPDATE says
                // they are all back.
                restore = {
                    // The table made anew may hold rows (an older copy): in append mode
                    // emptied first, or batch 0 and on would be added to them. Update and
                    // complete mode write over them, and an update-mode table may hold other
                    // pipelines' keys, which emptying it would delete (walk 64).
                    let start_over = match self.mode {
                        Mode::Append => start_over.replacen(
                            "drop its progress row (`DELETE",
                            &format!(
                                "empty the table and drop its progress row (`TRUNCATE \
                                 {table}; DELETE"
                            ),
                            1,
                        ),
                        Mode::Update => format!(
                            "{start_over} (without emptying the table: the new checkpoint \
                             writes each of this pipeline's keys over the row the table holds, \
                             and other pipelines' rows stay)"
                        ),
                        // Its first batch replaces the table's rows.
                        Mode::Complete => start_over,
                    };
                    if self.config.batch_column.is_some() {
                        format!("Put their rows back; or, {start_over}")
                    } else {
                        let mut said = start_over;
                        said[..1].make_ascii_uppercase();
                        said
                    }
                }
            ),
        }))
    }

    /// The table's columns and their `pg_type.typname`s; none where it does not exist.
    async fn table_columns(
        &self,
        live: &Live,
    ) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        let existing = live
            .client
            .query(
                // A domain as its base type; an enum, or a type received as text is (`citext`),
                // as `text`: binary COPY sends text's bytes, which they read as their input
                // (walk 105: citext, enum and domain columns were refused, with a cast that
                // does not exist in the query's SQL).
                "SELECT a.attname::text,
                        CASE WHEN b.typtype = 'e' OR (p.prosrc = 'textrecv' AND b.typname <> 'text')
                             THEN 'text' ELSE b.typname::text END
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 LEFT JOIN pg_type d1 ON d1.oid = t.typbasetype
                 JOIN pg_type b ON b.oid = CASE WHEN t.typtype <> 'd' THEN t.oid
                   WHEN d1.typtype = 'd' THEN d1.typbasetype ELSE d1.oid END
                 LEFT JOIN pg_proc p ON p.oid = b.typreceive
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the table's columns"))?;
        Ok(existing
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect())
    }

    /// Checks the table for the output's `schema`: its columns take the query's, and it has
    /// not lost the batches this pipeline committed into it (`check_committed_table`).
    /// `Ok(None)` where it does not exist and `create_table` is set (`prepare_table` makes
    /// it), else its columns' types; refused where it does not exist and is not to be made.
    async fn check_table(
        &self,
        live: &Live,
        schema: &SchemaRef,
    ) -> Result<Option<TableTypes>, Failure> {
        let columns = pg_columns(schema).map_err(|e| Failure::Fatal(self.error(e)))?;
        let have = self.table_columns(live).await?;
        self.check_committed_table(live, &have).await?;
        for k in &self.config.key {
            if schema.index_of(k).is_err() {
                return Err(Failure::Fatal(
                    self.error(super::key_not_in_query(k, schema)),
                ));
            }
        }
        if have.is_empty() {
            self.check_case_kept(live).await?;
            self.check_schema_exists(live).await?;
            if !self.config.create_table {
                return Err(Failure::Fatal(self.error(
                    "the table does not exist; make it, or set `create_table: true` to make it \
                     from the query's columns",
                )));
            }
            self.check_may_create(live, "the table", &self.table)
                .await?;
            return Ok(None);
        }
        self.check_is_table(live).await?;
        // The columns `table_columns` names by the type they are sent as (an enum, `citext`,
        // a domain), with their own types, for the messages.
        let shown: std::collections::BTreeMap<String, String> = live
            .client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 LEFT JOIN pg_proc p ON p.oid = t.typreceive
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                   AND (t.typtype IN ('e', 'd') OR (p.prosrc = 'textrecv' AND t.typname <> 'text'))",
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the table's columns"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        // Every column that does not fit, said at once: a table made by hand is mended in one
        // go, not one run per column.
        let mut misfits = Vec::new();
        // A column of the table the query no longer writes, where one of the query's is not
        // in the table: the same column renamed in the query, most likely.
        let unwritten: Vec<&String> = have
            .keys()
            .filter(|k| {
                !columns.iter().any(|c| c.name.eq_ignore_ascii_case(k))
                    && self.config.batch_column.as_ref() != Some(*k)
            })
            .collect();
        let new: Vec<&str> = columns
            .iter()
            .filter(|c| !have.keys().any(|k| k.eq_ignore_ascii_case(&c.name)))
            .map(|c| c.name.as_str())
            .collect();
        let renamed = match (unwritten.as_slice(), new.as_slice()) {
            ([old], [_]) => Some(*old),
            _ => None,
        };
        for c in &columns {
            match have.get(&c.name) {
                // Names are matched exactly; the table's has other capitals.
                None if let Some(theirs) =
                    have.keys().find(|k| k.eq_ignore_ascii_case(&c.name)) =>
                {
                    misfits.push(format!(
                        "the query's column `{}` is not a column of the table, whose column is \
                         `{theirs}`: names are matched exactly, capitals too; name it so in \
                         the query (`AS \"{theirs}\"`)",
                        c.name
                    ));
                }
                None => {
                    let rename = renamed.map_or(String::new(), |old| {
                        format!(
                            "; or, where it is `{old}` (which the query no longer writes) \
                             renamed, rename that (`ALTER TABLE {} RENAME COLUMN {} TO {}`), \
                             which keeps the rows already there in it",
                            quote_path(&self.table),
                            quote(old),
                            quote(&c.name),
                        )
                    });
                    misfits.push(format!(
                        "the query's column `{name}` is not a column of the table (its \
                         columns: {}): add it (`ALTER TABLE {} ADD COLUMN {} {}`; the rows \
                         already there have it null), or leave it out of the query{rename}",
                        have.keys().cloned().collect::<Vec<_>>().join(", "),
                        quote_path(&self.table),
                        quote(&c.name),
                        c.sql_type,
                        name = c.name,
                    ));
                }
                Some(typname) if !c.accepts.iter().any(|a| a == typname) && !sendable(typname) => {
                    misfits.push(format!(
                        "column `{}` is {typname} in the table, a type Sluice does not send \
                         (rows go by binary COPY, which takes the query's text only into text \
                         types, enums, domains and `citext`, and into `uuid`): make it text \
                         (`ALTER TABLE {} ALTER COLUMN {col} TYPE text`) and read it through a \
                         view that converts it (`{col}::{typname}`), or write the query's \
                         column into a table of its own",
                        c.name,
                        quote_path(&self.table),
                        col = quote(&c.name),
                    ));
                }
                // An enum, `citext` or a domain, by its own name (a review: said as the
                // type it is sent as, with an ALTER that would have undone it).
                Some(typname)
                    if !c.accepts.iter().any(|a| a == typname)
                        && let Some(own) = shown.get(&c.name) =>
                {
                    let cast = if typname == "text" {
                        format!("to text (`CAST({} AS VARCHAR)`)", c.name)
                    } else {
                        format!("to {typname}, which it is made of")
                    };
                    misfits.push(format!(
                        "column `{}` is {own} in the table, but the query gives {} ({}); cast \
                         it in the query {cast}",
                        c.name, c.sql_type, c.arrow,
                    ));
                }
                Some(typname) if !c.accepts.iter().any(|a| a == typname) => {
                    misfits.push(format!(
                        "column `{}` is {typname} in the table, but the query gives {} \
                         ({}); cast it in the query, or, where the table was changed, change \
                         it back (`ALTER TABLE {} ALTER COLUMN {col} TYPE {ty} USING \
                         {col}::{ty}`)",
                        c.name,
                        c.sql_type,
                        c.arrow,
                        quote_path(&self.table),
                        col = quote(&c.name),
                        ty = c.sql_type
                    ));
                }
                // A time with and without a zone meet: written as UTC either way (binary COPY
                // carries microseconds since 2000-01-01 UTC), whatever the server's TimeZone.
                Some(typname)
                    if (typname == "timestamptz") != (c.sql_type == "TIMESTAMPTZ")
                        && c.accepts.iter().any(|a| a == "timestamptz")
                        && !self
                            .zone_said
                            .swap(true, std::sync::atomic::Ordering::Relaxed) =>
                {
                    tracing::warn!(
                        "column `{}` is {typname} in table {}, and the query gives a timestamp \
                         {}: Sluice writes it as {}, whatever the server's `TimeZone`. Where \
                         the column was changed by `ALTER ... TYPE`, the rows already there \
                         were converted in that session's time zone instead",
                        c.name,
                        self.table,
                        if c.sql_type == "TIMESTAMPTZ" {
                            "with a zone"
                        } else {
                            "without a zone"
                        },
                        if c.sql_type == "TIMESTAMPTZ" {
                            "the time it is in UTC"
                        } else {
                            "that time in UTC (a timestamp without a zone is UTC in Sluice)"
                        }
                    );
                }
                Some(_) => {}
            }
        }
        misfits.extend(self.rounding_columns(live, schema).await?);
        misfits.extend(self.check_required_columns(live, &columns).await?);
        match misfits.as_slice() {
            [] => {}
            [one] => return Err(Failure::Fatal(self.error(one.clone()))),
            many => {
                let listed: Vec<String> = many
                    .iter()
                    .enumerate()
                    .map(|(i, misfit)| format!("({}) {misfit}", i + 1))
                    .collect();
                return Err(Failure::Fatal(self.error(format!(
                    "the query's columns do not fit the table in {} ways: {}",
                    many.len(),
                    listed.join("; ")
                ))));
            }
        }
        if let Some(batch_column) = &self.config.batch_column
            && have.get(batch_column).map(String::as_str) != Some("int8")
        {
            return Err(Failure::Fatal(self.error(format!(
                "`batch_column: {batch_column}` must be a bigint column of the table{}",
                match have.get(batch_column) {
                    None => format!(
                        " (add it: `ALTER TABLE {} ADD COLUMN {} bigint`; rows already there \
                         then have none, and no rewind takes them back)",
                        quote_path(&self.table),
                        quote(batch_column)
                    ),
                    Some(typname) => format!(" (it is {typname})"),
                }
            ))));
        }
        if self.mode == Mode::Update {
            self.check_key_index(live).await?;
        }
        if self.mode == Mode::Complete {
            self.check_complete_owns(live).await?;
        }
        Ok(Some(have))
    }

    /// Refuses a view or materialized view named by `table:` (it has columns, so the column
    /// checks pass): a batch goes in by COPY (and, in update mode, `INSERT ... ON CONFLICT`),
    /// which a view takes from no one, so it would fail only at the first batch, planned.
    async fn check_is_table(&self, live: &Live) -> Result<(), Failure> {
        let kind = live
            .client
            .query_opt(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)",
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "looking up the table"))?
            .map(|r| r.get::<_, String>(0));
        let what = match kind.as_deref() {
            Some("v") => "a view",
            Some("m") => "a materialized view",
            _ => return Ok(()),
        };
        Err(Failure::Fatal(self.error(format!(
            "{} is {what}, not a table: Sluice writes each batch into a table (by COPY{}), \
             which a view does not take. Point `table:` at the table the view reads (or at a \
             new table, `create_table: true`, and have the view read that one)",
            quote_path(&self.table),
            if self.mode == Mode::Update {
                ", then `INSERT ... ON CONFLICT` over the key"
            } else {
                ""
            },
        ))))
    }

    /// The columns of the table whose type modifier would round the query's values as the
    /// server stores them, each said with what to change: a `numeric(p, s)` of fewer decimal
    /// places than the query's decimal, a `timestamp(p)` or `timestamptz(p)` of fewer digits
    /// of a second than the query's times carry. PostgreSQL rounds there without a word
    /// (walk 72: `12.3456` into `numeric(18,2)` became 12.35, exit 0), where Sluice refuses
    /// a value that does not fit its column exactly.
    async fn rounding_columns(
        &self,
        live: &Live,
        schema: &SchemaRef,
    ) -> Result<Vec<String>, Failure> {
        let rows = live
            .client
            .query(
                // A domain by its base type and the modifier it gives it (`numeric(12, 2)`
                // under a domain's name: a review of walk 105's domains).
                "SELECT a.attname::text, b.typname::text, m.typmod,
                        format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 LEFT JOIN pg_type d1 ON d1.oid = t.typbasetype
                 JOIN pg_type b ON b.oid = CASE WHEN t.typtype <> 'd' THEN t.oid
                   WHEN d1.typtype = 'd' THEN d1.typbasetype ELSE d1.oid END
                 CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype <> 'd' THEN a.atttypmod
                   WHEN d1.typtype = 'd' THEN d1.typtypmod ELSE t.typtypmod END AS typmod) m
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                   AND m.typmod >= 0",
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the table's columns"))?;
        let table = quote_path(&self.table);
        let mut misfits = Vec::new();
        for row in rows {
            let (name, typname, typmod, shown): (String, String, i32, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let Ok(field) = schema.field_with_name(&name) else {
                continue;
            };
            let col = quote(&name);
            match (typname.as_str(), field.data_type()) {
                // A numeric's modifier is `(precision << 16 | scale & 0x7ff) + 4`, the scale an
                // 11-bit signed number (PostgreSQL 15 takes a negative one: `numeric(6, -2)`
                // keeps hundreds), as its `numeric.c` reads it.
                ("numeric", given) => {
                    let kept = (((typmod - 4) & 0x7ff) ^ 1024) - 1024;
                    let whole = (((typmod - 4) >> 16) & 0xffff) - kept;
                    let (p, s) = match given {
                        DataType::Decimal32(p, s)
                        | DataType::Decimal64(p, s)
                        | DataType::Decimal128(p, s)
                        | DataType::Decimal256(p, s) => (i32::from(*p), i32::from(*s)),
                        DataType::Int8 | DataType::Int16 => (5, 0),
                        DataType::Int32 => (10, 0),
                        DataType::Int64 => (19, 0),
                        _ => continue,
                    };
                    if s <= kept {
                        continue;
                    }
                    let given = match given {
                        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                            crate::format::sql_type_name(given)
                        }
                        _ => format!("decimal({p},{s})"),
                    };
                    // Rounding in the query fits a scale of 0 or more; a negative one keeps
                    // no value the query can give by type.
                    let round = if kept >= 0 {
                        format!(
                            ", or round in the query (`CAST(round({name}, {kept}) AS \
                             DECIMAL({}, {kept})) AS {name}`)",
                            (whole + kept).clamp(1, 38)
                        )
                    } else {
                        String::new()
                    };
                    misfits.push(format!(
                        "column `{name}` is {shown} in the table, which keeps {kept} decimal \
                         places, but the query gives {given}: PostgreSQL would round each \
                         value to {kept} places without a word. Widen the column (`ALTER \
                         TABLE {table} ALTER COLUMN {col} TYPE numeric({}, {s})`){round}",
                        (whole + s).clamp(1, 1000),
                    ));
                }
                // A time's modifier is its digits of a second.
                ("timestamp" | "timestamptz", DataType::Timestamp(unit, zone)) => {
                    let digits = match unit {
                        TimeUnit::Second => 0,
                        TimeUnit::Millisecond => 3,
                        TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
                    };
                    if typmod < digits {
                        let coarse = if typmod < 3 { "Second" } else { "Millisecond" };
                        let zone = zone
                            .as_ref()
                            .map_or("None".to_string(), |z| format!("Some(\"{z}\")"));
                        misfits.push(format!(
                            "column `{name}` is {shown} in the table, which keeps {typmod} \
                             digits of a second, but the query's times carry {digits}: \
                             PostgreSQL would round each to {typmod} digits without a word. \
                             Widen the column (`ALTER TABLE {table} ALTER COLUMN {col} TYPE \
                             {typname}`), or give the query's times in the table's unit \
                             (`arrow_cast(date_trunc('{}', {name}), 'Timestamp({coarse}, \
                             {zone})') AS {name}`)",
                            coarse.to_lowercase()
                        ));
                    }
                }
                // So is a time of day's (a review: a `time(0)` column took 10:00:00.7 as
                // 10:00:01).
                ("time" | "timetz", DataType::Time32(unit) | DataType::Time64(unit)) => {
                    let digits = match unit {
                        TimeUnit::Second => 0,
                        TimeUnit::Millisecond => 3,
                        TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
                    };
                    if typmod < digits {
                        misfits.push(format!(
                            "column `{name}` is {shown} in the table, which keeps {typmod} \
                             digits of a second, but the query's times carry {digits}: \
                             PostgreSQL would round each to {typmod} digits without a word. \
                             Widen the column (`ALTER TABLE {table} ALTER COLUMN {col} TYPE \
                             {typname}`), or cut the query's times to whole {} where that is \
                             meant",
                            if typmod < 3 {
                                "seconds"
                            } else {
                                "milliseconds"
                            }
                        ));
                    }
                }
                // An interval's modifier is its fields (`interval day`, high 16 bits, 0x7fff
                // for all) and its digits of a second (low 16 bits, 0xffff for all), as
                // PostgreSQL's `timestamp.h` packs them. Fields that end before the second
                // (`day`, `hour to minute`, `year to month`) cut each value; those ending at
                // it (`day to second`, bit 12) cut nothing but for the digits.
                ("interval", DataType::Duration(_) | DataType::Interval(_)) => {
                    let fields_kept = (typmod >> 16) & 0x7fff;
                    let precision = typmod & 0xffff;
                    let digits = match field.data_type() {
                        DataType::Duration(TimeUnit::Second)
                        | DataType::Interval(IntervalUnit::YearMonth) => 0,
                        DataType::Duration(TimeUnit::Millisecond)
                        | DataType::Interval(IntervalUnit::DayTime) => 3,
                        _ => 6,
                    };
                    let to_the_second = fields_kept == 0x7fff || fields_kept & (1 << 12) != 0;
                    if !to_the_second || (precision != 0xffff && precision < digits) {
                        misfits.push(format!(
                            "column `{name}` is {shown} in the table, which keeps only part of \
                             an interval ({}), but the query's intervals carry all of it: \
                             PostgreSQL would cut or round each without a word. Widen the \
                             column (`ALTER TABLE {table} ALTER COLUMN {col} TYPE interval`)",
                            if !to_the_second {
                                "some of its fields"
                            } else {
                                "fewer digits of a second"
                            }
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(misfits)
    }

    /// Refuses, in complete mode, a table that holds rows no pipeline's progress row claims
    /// (a table Sluice did not write): each batch replaces every row of the table, and would
    /// delete them. An empty table, made for the pipeline, is taken; so is one a progress row
    /// names (compared as the server resolves both names), another pipeline's too (complete
    /// mode rewrites what it writes), and any where this pipeline's row names no table yet (a
    /// progress table made by an older Sluice, its `target` added since). Nothing where the
    /// progress table does not record tables.
    async fn check_complete_owns(&self, live: &Live) -> Result<(), Failure> {
        if !live.targets {
            return Ok(());
        }
        let progress = quote_path(&self.config.progress_table);
        let table = quote_path(&self.table);
        // No progress table yet: no pipeline claims the table.
        let row = if live.progress_made {
            live.client
                .query_one(
                    // Targets are kept as the server names them (`resolved_table`), or, by
                    // an older Sluice, as the pipeline file wrote them: compared as text,
                    // since resolving another pipeline's (`to_regclass(target)`) fails in a
                    // schema this role may not use (walk 72).
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {progress} WHERE \
                         target = (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                         JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE c.oid = to_regclass($1::text)) \
                         OR target = $1::text \
                         OR (pipeline = $2::text AND target IS NULL)), \
                         EXISTS (SELECT 1 FROM {table})"
                    ),
                    &[&table, &self.progress_key],
                )
                .await
        } else {
            live.client
                .query_one(
                    &format!("SELECT false, EXISTS (SELECT 1 FROM {table})"),
                    &[],
                )
                .await
        }
        .map_err(|e| self.failure(&e, "reading the table and the progress table"))?;
        let (claimed, holds): (bool, bool) = (row.get(0), row.get(1));
        if claimed || !holds {
            return Ok(());
        }
        // Another pipeline's row, in a progress table of its own: the run's check of other
        // writers says who (walk 105: said as rows Sluice did not write, with a TRUNCATE).
        for (other, _) in self.progress_tables(&live.client).await? {
            let named = live
                .client
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {other} WHERE target = (SELECT \
                         format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN \
                         pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = \
                         to_regclass($1::text)) OR target = $1::text)"
                    ),
                    &[&table],
                )
                .await;
            if matches!(named, Ok(row) if row.get::<_, bool>(0)) {
                return Ok(());
            }
        }
        let (unreadable, role) = self.unreadable_progress_tables(&live.client).await?;
        let unseen = self.unseen(&unreadable, &role);
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "table {table} holds rows no pipeline's row in a progress table names ({progress} \
                 and the others this role may read), and complete mode replaces every row of \
                 its table with the query's result each batch, so they would be deleted.{unseen} \
                 Give the pipeline its own table (a new `sink.table`, made by `create_table: \
                 true`), or empty this one first if its rows may go (`TRUNCATE {table};`)"
            ),
        }))
    }

    /// Refuses a missing table whose name, written with capitals and unquoted, folds to
    /// lower case (see [`sql_name`]) where a table of the name with its capitals exists: the
    /// one meant, made so by a tool that quotes names (or by Sluice before it read names as
    /// SQL does), which would otherwise be passed over for a new one.
    async fn check_case_kept(&self, live: &Live) -> Result<(), Failure> {
        let written = &self.config.table_as_written;
        if self.table != self.config.table || written.contains('"') {
            return Ok(());
        }
        let exact = written
            .split('.')
            .map(|part| quote(part.trim()))
            .collect::<Vec<_>>()
            .join(".");
        let folded = quote_path(&self.table);
        if exact == folded {
            return Ok(());
        }
        let exists: bool = live
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&exact])
            .await
            .map_err(|e| self.failure(&e, "looking for the table"))?
            .get(0);
        if !exists {
            return Ok(());
        }
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "`table: {written}` names {folded}, which does not exist, but {exact} does: a \
                 name is read as SQL reads it, unquoted letters folding to lower case (as psql, \
                 Spark's JDBC sink and Flink's do). To write {exact}, quote it: `table: \
                 '{exact}'`; to make {folded}, write `table: {}`",
                self.table
            ),
        }))
    }

    /// Refuses a table named in a schema the database does not have (`analytics.pages`
    /// before `CREATE SCHEMA analytics`): neither made nor found, it would fail the first
    /// batch with the server's SQLSTATE 3F000.
    async fn check_schema_exists(&self, live: &Live) -> Result<(), Failure> {
        let Some((schema, _)) = self.table.split_once('.') else {
            return Ok(());
        };
        let exists: bool = live
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .await
            .map_err(|e| self.failure(&e, "looking for the table's schema"))?
            .get(0);
        if exists {
            return Ok(());
        }
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "`table: {}` is in the schema {}, which the database does not have: make it \
                 (`CREATE SCHEMA {}`), or name a table in a schema that exists (`public`)",
                self.config.table_as_written,
                quote(schema),
                quote(schema)
            ),
        }))
    }

    /// Refuses, before a batch is planned, a table (`what`, `name` as `schema.table` or
    /// `table`) that is to be made where the role may not make it (no CREATE on its schema,
    /// or no schema on the `search_path` to make it in): the first batch would fail there.
    async fn check_may_create(&self, live: &Live, what: &str, name: &str) -> Result<(), Failure> {
        let schema = name.split_once('.').map(|(schema, _)| schema.to_string());
        let row = live
            .client
            .query_one(
                "SELECT s, current_user::text, \
                 s IS NOT NULL AND has_schema_privilege(s, 'CREATE') \
                 FROM (SELECT coalesce($1::text, current_schema()::text) AS s) AS x",
                &[&schema],
            )
            .await
            .map_err(|e| self.failure(&e, "asking whether the role may make tables"))?;
        let (schema, role, may) = (
            row.get::<_, Option<String>>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2),
        );
        if may {
            return Ok(());
        }
        let reason = match schema {
            Some(schema) => format!(
                "{what} {} does not exist, and the role {} may not make it: it has no CREATE \
                 on the schema {}. Grant it (`GRANT CREATE ON SCHEMA {} TO {};`), or make the \
                 table in advance",
                quote_path(name),
                quote(&role),
                quote(&schema),
                quote(&schema),
                quote(&role),
            ),
            None => format!(
                "{what} {} does not exist, and there is no schema to make it in: no schema on \
                 the role's `search_path` exists. Name its schema (`schema.{name}`), or set \
                 the role's `search_path`",
                quote_path(name)
            ),
        };
        Err(Failure::Fatal(SinkError::Config {
            kind: KIND.name,
            reason,
        }))
    }

    /// The server's version as `server_version_num` gives it (150004 for 15.4).
    async fn server_version(&self, live: &Live) -> Result<i32, Failure> {
        Ok(live
            .client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| self.failure(&e, "asking the server's version"))?
            .get(0))
    }

    /// The table's columns that the query gives no value for and that take no null and have
    /// no default (nor an identity or generated value), each said with the ways to mend it:
    /// the server would refuse every row.
    async fn check_required_columns(
        &self,
        live: &Live,
        columns: &[PgColumn],
    ) -> Result<Vec<String>, Failure> {
        // Generated columns (PostgreSQL 12 on) take no value either.
        let generated = if self.server_version(live).await? >= 120_000 {
            "AND a.attgenerated = ''"
        } else {
            ""
        };
        let required = live
            .client
            .query(
                &format!(
                    "SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                       AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' {generated}
                     ORDER BY a.attnum"
                ),
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the table's columns"))?;
        let table = quote_path(&self.table);
        // A generated column the query writes: COPY refuses every batch ("column is a
        // generated column"), and a batch planned so stays so (walk 105: its advice looped).
        let mut misfits = Vec::new();
        if !generated.is_empty() {
            let written = live
                .client
                .query(
                    "SELECT a.attname::text, pg_get_expr(d.adbin, d.adrelid),
                            CASE a.attgenerated WHEN 'v' THEN 'VIRTUAL' ELSE 'STORED' END
                     FROM pg_attribute a
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                       AND a.attgenerated <> '' ORDER BY a.attnum",
                    &[&table],
                )
                .await
                .map_err(|e| self.failure(&e, "reading the table's columns"))?;
            for row in &written {
                let name: String = row.get(0);
                let expr: Option<String> = row.get(1);
                let kind: String = row.get(2);
                if columns.iter().any(|c| c.name == name) {
                    misfits.push(format!(
                        "column {} of the table is generated (`GENERATED ALWAYS AS ({}) \
                         {kind}`): the server computes it from the row and takes it from no \
                         one, so leave it out of the query (it is filled in as each row is \
                         written)",
                        quote(&name),
                        expr.unwrap_or_default()
                    ));
                }
            }
        }
        misfits.extend(
            required
                .iter()
                .map(|r| r.get::<_, String>(0))
                .filter(|name| {
                    // A query column of other capitals is said as that (`AS "amount"`).
                    columns.iter().all(|c| !c.name.eq_ignore_ascii_case(name))
                        && self.config.batch_column.as_ref() != Some(name)
                })
                .map(|name| {
                    let column = quote(&name);
                    format!(
                        "column {column} of the table is NOT NULL without a default, and the query \
                     gives no value for it, so the server would refuse every row: add it to the \
                     query, give it a default (`ALTER TABLE {table} ALTER COLUMN {column} SET \
                     DEFAULT ...`), or let it take nulls (`ALTER TABLE {table} ALTER COLUMN \
                     {column} DROP NOT NULL`)"
                    )
                }),
        );
        Ok(misfits)
    }

    /// Refuses, in update mode, a table the upsert cannot write over its rows by `key`: one
    /// with no unique index (or primary key) on exactly the key's columns (`ON CONFLICT`
    /// needs it), or one whose index takes two rows of a null key (a plain `UNIQUE` on a
    /// column that may be null: a null group key would then get a new row each batch).
    async fn check_key_index(&self, live: &Live) -> Result<(), Failure> {
        // Every unique index of plain columns, with whether it is checked at once (not
        // DEFERRABLE) and whole (not partial), and its constraint's name where it has one.
        let indexes = live
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname), bool_and(a.attnotnull), \
                 coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false), \
                 i.indimmediate, i.indpred IS NOT NULL, \
                 coalesce(min(con.conname::text), min(ci.relname::text)), \
                 min(con.conname::text) IS NOT NULL \
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
                   AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]) \
                 JOIN pg_class ci ON ci.oid = i.indexrelid \
                 LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid \
                   AND con.conrelid = i.indrelid AND con.contype IN ('u', 'p') \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique \
                   AND i.indisvalid AND i.indexprs IS NULL \
                 GROUP BY i.indexrelid, to_jsonb(i) ->> 'indnullsnotdistinct', i.indimmediate, \
                   i.indpred IS NOT NULL",
                &[&quote_path(&self.table)],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the table's indexes"))?;
        let mut key: Vec<String> = self.config.key.clone();
        key.sort();
        let of_key: Vec<_> = indexes
            .iter()
            .filter(|r| r.get::<_, Vec<String>>(0) == key)
            .collect();
        let columns = self
            .config
            .key
            .iter()
            .map(|k| quote(k))
            .collect::<Vec<_>>()
            .join(", ");
        let table = quote_path(&self.table);
        // `ON CONFLICT` takes every unique index of the key's columns as its arbiter, and
        // refuses a DEFERRABLE one (walk 100: taken for none, then every batch failed).
        if let Some(deferred) = of_key
            .iter()
            .find(|r| !r.get::<_, bool>(3) && !r.get::<_, bool>(4))
        {
            let name: String = deferred.get(5);
            let drop = if deferred.get::<_, bool>(6) {
                format!("ALTER TABLE {table} DROP CONSTRAINT {}", quote(&name))
            } else {
                format!("DROP INDEX {}", quote(&name))
            };
            return Err(Failure::Fatal(self.error(format!(
                "update mode writes each row over the row of its key with `ON CONFLICT \
                 ({columns})`, and the table's unique {} `{name}` on the key is DEFERRABLE, \
                 which PostgreSQL's `ON CONFLICT` refuses: make it one checked at once \
                 (`{drop}`, then `ALTER TABLE {table} ADD UNIQUE NULLS NOT DISTINCT \
                 ({columns})`)",
                if deferred.get::<_, bool>(6) {
                    "constraint"
                } else {
                    "index"
                }
            ))));
        }
        let on_key: Vec<(bool, bool)> = of_key
            .iter()
            .filter(|r| !r.get::<_, bool>(4))
            .map(|r| (r.get(1), r.get(2)))
            .collect();
        if on_key.is_empty() {
            let partial = of_key
                .iter()
                .map(|r| {
                    format!(
                        " (`{}` is partial: it covers only the rows of its WHERE)",
                        r.get::<_, String>(5)
                    )
                })
                .next()
                .unwrap_or_default();
            return Err(Failure::Fatal(self.error(format!(
                "update mode writes each row over the row of its key, which needs a unique \
                 index on exactly the key's columns ({columns}), and the table has none\
                 {partial}: `ALTER TABLE {table} ADD UNIQUE NULLS NOT DISTINCT ({columns})` \
                 (before PostgreSQL 15: `ADD PRIMARY KEY ({columns})`)"
            ))));
        }
        if !on_key
            .iter()
            .any(|(not_null, nulls_not_distinct)| *not_null || *nulls_not_distinct)
        {
            return Err(Failure::Fatal(self.error(format!(
                "the table's unique index on the key ({columns}) takes a row per null key, so \
                 a null group key would get a new row each batch instead of one row: make the \
                 key's columns `NOT NULL` (`ALTER TABLE {table} {}`; a null key is then \
                 refused by the server), or give the table a `UNIQUE NULLS NOT DISTINCT \
                 ({columns})` index in place of its own (PostgreSQL 15 and later)",
                self.config
                    .key
                    .iter()
                    .map(|k| format!("ALTER COLUMN {} SET NOT NULL", quote(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
        Ok(())
    }

    /// Checks (`check_table`), and with `create_table` makes, the table for the output's
    /// `schema`.
    async fn prepare_table(&self, live: &mut Live, schema: &SchemaRef) -> Result<(), Failure> {
        if live.checked.as_ref() == Some(schema) {
            return Ok(());
        }
        let types = self.check_table(live, schema).await?;
        let made = types.is_none();
        live.table_types = types.unwrap_or_default();
        if made {
            let columns = pg_columns(schema).map_err(|e| Failure::Fatal(self.error(e)))?;
            let table = quote_path(&self.table);
            let mut defs: Vec<String> = columns
                .iter()
                .map(|c| format!("{} {}", quote(&c.name), c.sql_type))
                .collect();
            if let Some(batch_column) = &self.config.batch_column {
                defs.push(format!("{} bigint NOT NULL", quote(batch_column)));
            }
            if self.mode == Mode::Update {
                // A group key may be null (GROUP BY a column with nulls): from PostgreSQL 15 a
                // unique key that takes one null row per key, as the upsert needs; before, a
                // primary key (a null key is then refused by the server).
                let constraint = if self.server_version(live).await? >= 150_000 {
                    "UNIQUE NULLS NOT DISTINCT"
                } else {
                    "PRIMARY KEY"
                };
                defs.push(format!(
                    "{constraint} ({})",
                    self.config
                        .key
                        .iter()
                        .map(|k| quote(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            live.client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {table} ({})",
                    defs.join(", ")
                ))
                .await
                .or_else(|e| {
                    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| self.failure(&e, "making the table"))?;
        }
        live.checked = Some(Arc::clone(schema));
        Ok(())
    }

    /// Takes the pipeline's progress row for batch `batch` in `tx`.
    async fn claim(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        batch: BatchId,
        epoch: u64,
        rows: u64,
        target: Option<&str>,
        relations: bool,
    ) -> Result<Claim, Failure> {
        let progress = quote_path(&self.config.progress_table);
        let n = i64::try_from(batch.0).unwrap_or(i64::MAX);
        let e = i64::try_from(epoch).unwrap_or(i64::MAX);
        let r = i64::try_from(rows).unwrap_or(i64::MAX);
        let targets = target.is_some();
        let claimed = tx
            .query_opt(
                &format!(
                    "INSERT INTO {progress} AS p (pipeline, batch, epoch, rows{target_column})
                     VALUES ($1, $2, $3, $4{target_value})
                     ON CONFLICT (pipeline) DO UPDATE
                       SET batch = EXCLUDED.batch, epoch = EXCLUDED.epoch,
                           rows = EXCLUDED.rows, committed_at = now(){target_set}
                       WHERE p.epoch <= EXCLUDED.epoch AND p.batch < EXCLUDED.batch
                     RETURNING p.batch, p.xmax = 0",
                    target_column = match (targets, relations) {
                        (true, true) => ", target, relation",
                        (true, false) => ", target",
                        _ => "",
                    },
                    target_value = match (targets, relations) {
                        (true, true) => ", $5, to_regclass($5::text)::oid",
                        (true, false) => ", $5",
                        _ => "",
                    },
                    target_set = if targets && relations {
                        ", target = EXCLUDED.target, relation = EXCLUDED.relation"
                    } else if targets {
                        ", target = EXCLUDED.target"
                    } else {
                        ""
                    },
                ),
                &if let Some(target) = &target {
                    vec![
                        &self.progress_key as &(dyn tokio_postgres::types::ToSql + Sync),
                        &n,
                        &e,
                        &r,
                        target,
                    ]
                } else {
                    vec![
                        &self.progress_key as &(dyn tokio_postgres::types::ToSql + Sync),
                        &n,
                        &e,
                        &r,
                    ]
                },
            )
            .await
            .map_err(|e| self.failure(&e, "taking the progress row"))?;
        if let Some(row) = claimed {
            // `xmax` 0: the row was inserted, not updated (the pipeline's first batch here).
            return Ok(Claim::Claimed {
                first: row.get::<_, bool>(1),
            });
        }
        let row = tx
            .query_one(
                &format!("SELECT batch, epoch FROM {progress} WHERE pipeline = $1"),
                &[&self.progress_key],
            )
            .await
            .map_err(|e| self.failure(&e, "reading the progress row"))?;
        let (held_batch, held_epoch): (i64, i64) = (row.get(0), row.get(1));
        let (held_batch, held_epoch) = (held_batch.max(0) as u64, held_epoch.max(0) as u64);
        if held_epoch > epoch {
            Ok(Claim::Newer {
                epoch: held_epoch,
                batch: held_batch,
            })
        } else {
            Ok(Claim::Written)
        }
    }

    /// Sends `batches` by binary COPY into `target` (the output's columns, then the batch
    /// column where there is one).
    async fn copy(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        target: &str,
        output: &BatchOutput,
        batch: BatchId,
        table_types: &TableTypes,
    ) -> Result<u64, Failure> {
        let schema = pg_schema(
            &output.schema,
            self.config.batch_column.as_deref(),
            table_types,
        );
        let mut encoder = pg_encoder(&schema, table_types)
            .map_err(|e| Failure::Fatal(self.error(format!("encoding the rows: {e}"))))?;
        let mut names: Vec<String> = output
            .schema
            .fields()
            .iter()
            .map(|f| quote(f.name()))
            .collect();
        if let Some(batch_column) = &self.config.batch_column {
            names.push(quote(batch_column));
        }
        let statement = format!(
            "COPY {target} ({}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        );
        let sink = tx
            .copy_in::<str, bytes::Bytes>(statement.as_str())
            .await
            .map_err(|e| self.failure(&e, "starting COPY"))?;
        futures::pin_mut!(sink);
        let mut buffer = BytesMut::new();
        let encode = |e: pgpq::error::ErrorKind| {
            Failure::Fatal(self.error(format!("encoding the rows for COPY: {e}")))
        };
        encoder.write_header(&mut buffer).map_err(encode)?;
        for rows in output.batches() {
            // A value the table cannot hold as it is: the batch's row, refused.
            let rows = pg_batch(rows, &schema, batch, self.config.batch_column.is_some()).map_err(
                |e| {
                    Failure::Fatal(SinkError::RowRefused {
                        kind: KIND.name,
                        reason: format!("table `{}`: batch {batch}: {e}", self.table),
                    })
                },
            )?;
            encoder.write_batch(&rows, &mut buffer).map_err(encode)?;
            // About a megabyte at a time: a batch is sent as it is encoded.
            if buffer.len() >= 1 << 20 {
                sink.send(buffer.split().freeze())
                    .await
                    .map_err(|e| self.write_failure(&e, "sending rows by COPY", batch))?;
            }
        }
        encoder.write_footer(&mut buffer).map_err(encode)?;
        sink.send(buffer.split().freeze())
            .await
            .map_err(|e| self.write_failure(&e, "sending rows by COPY", batch))?;
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| self.write_failure(&e, "finishing COPY", batch))
    }

    /// Says where the table took fewer of batch `batch`'s `sent` rows (or keys) than were sent
    /// (`taken`, as COPY or INSERT counts them): a rule or trigger skipped or redirected the
    /// others, which is the table's way (a trigger routing rows into child tables), or rows
    /// lost to it (walk 116: lost without a word).
    fn say_rows_not_taken(&self, batch: BatchId, sent: u64, taken: u64) {
        if taken < sent {
            tracing::warn!(
                "PostgreSQL sink: table `{}` took {taken} of batch {batch}'s {sent} rows: a \
                 trigger on it skipped or redirected the other {} (a `BEFORE INSERT` trigger \
                 returning NULL, or one putting rows into other tables). Rows it put into \
                 other tables are where it put them; rows it dropped are in no table",
                self.table,
                sent - taken
            );
        }
    }

    /// Refuses (nothing of it taken back: the transaction is dropped) a rewind's DELETE of
    /// batch `batch` that left rows of it in the table, or took fewer than the progress row
    /// records it wrote where the table holds rows whose `batch_column` is null: the batch
    /// written again would double what is left (walk 116: "0 sink rows", exit 0, doubled).
    async fn check_taken_back(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        batch: BatchId,
        batch_column: &str,
        removed: u64,
        progress_made: bool,
    ) -> Result<(), SinkError> {
        let n = i64::try_from(batch.0).unwrap_or(i64::MAX);
        let table = quote_path(&self.table);
        let column = quote(batch_column);
        let failed = |e: tokio_postgres::Error| {
            self.error(format!("taking batch {batch} back: {}", describe(&e)))
        };
        let refuse = |why: String| SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "cannot take batch {batch} back from table {table}: {why}, and the batch \
                 written again would double them. Nothing of this batch was taken back"
            ),
        };
        let left: bool = tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = $1)"),
                &[&n],
            )
            .await
            .map_err(failed)?
            .get(0);
        if left {
            return Err(refuse(format!(
                "rows of the batch are still in it after their DELETE ({removed} went): \
                 {DELETE_KEPT}. Let the DELETE through (`ALTER TABLE {table} DISABLE TRIGGER \
                 <name>` while the rewind runs, or drop the rule), then run the rewind again"
            )));
        }
        // The rows the batch wrote, as the progress row recorded them (the newest batch's).
        let wrote: Option<i64> = if progress_made {
            tx.query_opt(
                &format!(
                    "SELECT rows FROM {} WHERE pipeline = $1 AND batch = $2",
                    quote_path(&self.config.progress_table)
                ),
                &[&self.progress_key, &n],
            )
            .await
            .map_err(failed)?
            .and_then(|row| row.get(0))
        } else {
            None
        };
        let wrote = wrote.and_then(|w| u64::try_from(w).ok()).unwrap_or(0);
        if removed == 0 && wrote > 0 {
            let unnamed: i64 = tx
                .query_one(
                    &format!("SELECT count(*) FROM {table} WHERE {column} IS NULL"),
                    &[],
                )
                .await
                .map_err(failed)?
                .get(0);
            if unnamed > 0 {
                return Err(refuse(format!(
                    "its DELETE took none of the {wrote} rows the batch wrote, and the table \
                     holds {unnamed} rows whose `{batch_column}` is null (the column was added \
                     after they were written, or set so), which may be the batch's. Set \
                     `{batch_column}` of the batch's rows (`UPDATE {table} SET {column} = {n} \
                     WHERE ...`) or delete them by hand, then run the rewind again; where the \
                     batch's rows are gone from the table (a job drained it), mark the others \
                     as no batch's first (`UPDATE {table} SET {column} = -1 WHERE {column} IS \
                     NULL`)"
                )));
            }
        }
        Ok(())
    }

    /// One attempt at batch `batch`: `Ok` with what it did, once committed or found there.
    async fn attempt(
        &self,
        live: &mut Live,
        batch: BatchId,
        fence: &Fence,
        output: &BatchOutput,
    ) -> Result<SinkCommit, Failure> {
        self.end_older_sessions(live).await?;
        self.prepare_table(live, &output.schema).await?;
        let rows = output.num_rows();
        let epoch = live.epoch.unwrap_or(0);
        let table = quote_path(&self.table);
        let relations = live.relations;
        let labels = live.labels && !self.label.is_empty();
        // Read committed whatever the server's default: each statement sees what committed
        // before it, so a first batch that waited for another pipeline's (the advisory lock
        // of `check_other_writer`) then sees its progress row.
        let tx = live
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(|e| self.failure(&e, "starting the transaction"))?;
        let target = match live.targets {
            true => Some(self.resolved_table(&tx).await?),
            false => None,
        };
        // Whether the progress row's label is this run's already (read by the check).
        let labelled = labels && self.check_no_copy(&tx, epoch).await?;
        match self
            .claim(&tx, batch, epoch, rows, target.as_deref(), relations)
            .await?
        {
            Claim::Claimed { first } => {
                if let Some(target) = &target {
                    if labels && self.mode == Mode::Complete {
                        self.check_not_retired(&tx, target).await?;
                    }
                    if first && self.mode == Mode::Append {
                        self.check_table_owner(&tx, target).await?;
                    } else if first && labels && self.mode == Mode::Complete {
                        // Again in the batch (two started together); update mode's note
                        // was said before the first batch.
                        self.check_other_writer(&tx, target).await?;
                    }
                }
                if labels && !labelled {
                    self.write_label(&tx).await?;
                }
            }
            Claim::Written => {
                return Ok(SinkCommit {
                    rows,
                    written: false,
                });
            }
            Claim::Newer {
                epoch: newer,
                batch: theirs,
            } => {
                fence
                    .check()
                    .await
                    .map_err(|e| Failure::Fatal(SinkError::Fenced(Box::new(e))))?;
                return Err(Failure::Fatal(self.error(format!(
                    "refused: the progress row names epoch {newer} (batch {theirs}), newer \
                     than this run's {epoch}"
                ))));
            }
        }
        match self.mode {
            Mode::Append => {
                let copied = self
                    .copy(&tx, &table, output, batch, &live.table_types)
                    .await?;
                self.say_rows_not_taken(batch, rows, copied);
            }
            Mode::Complete => {
                tx.batch_execute(&format!("DELETE FROM {table}"))
                    .await
                    .map_err(|e| self.failure(&e, "replacing the table's rows"))?;
                // A rule or trigger that keeps rows from being deleted would leave the old
                // table's rows beside the new one's (walk 116: doubled, exit 0).
                let kept: bool = tx
                    .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                    .await
                    .map_err(|e| self.failure(&e, "replacing the table's rows"))?
                    .get(0);
                if kept {
                    return Err(Failure::Fatal(self.error(format!(
                        "batch {batch} replaces the table's rows (complete mode), but rows \
                         are still in it after their DELETE: {DELETE_KEPT} (or another session \
                         wrote into it meanwhile), and the batch's rows would be written beside \
                         them. Let the DELETE through, then run again; nothing of this batch \
                         was committed, and it stays planned"
                    ))));
                }
                let copied = self
                    .copy(&tx, &table, output, batch, &live.table_types)
                    .await?;
                self.say_rows_not_taken(batch, rows, copied);
            }
            Mode::Update => {
                let stage = quote("_sluice_stage");
                // The newest row of each key in the batch: later rows win, as they would
                // one batch after another. Keys compared as the table's unique index compares
                // them, in the column's own type and collation: `'a'` and `'a '` are one key
                // of a `char(3)` column (a review: both went in, and PostgreSQL refused the
                // batch, "cannot affect row a second time", on every run).
                let typed = tx
                    .query(
                        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
                                CASE WHEN co.oid IS NULL THEN NULL
                                     ELSE format('%I.%I', n.nspname, co.collname) END
                         FROM pg_attribute a
                         LEFT JOIN pg_collation co ON co.oid = a.attcollation
                         LEFT JOIN pg_namespace n ON n.oid = co.collnamespace
                         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0
                           AND NOT a.attisdropped",
                        &[&quote_path(&self.table)],
                    )
                    .await
                    .map_err(|e| self.failure(&e, "reading the table's key columns"))?;
                // Each column in the type it is sent as: the table's where that is wider, or
                // json (text would not go into a json column by `INSERT ... SELECT`).
                let mut defs: Vec<String> = pg_columns(&output.schema)
                    .map_err(|e| Failure::Fatal(self.error(e)))?
                    .iter()
                    .map(|c| {
                        let field = output.schema.field_with_name(&c.name).ok();
                        let theirs = live.table_types.get(&c.name).map(String::as_str);
                        // A column the table takes text into (an enum, a domain, `citext`)
                        // in the table's own type: `INSERT ... SELECT` casts no text into an
                        // enum.
                        let own = typed
                            .iter()
                            .find(|r| r.get::<_, String>(0) == c.name)
                            .map(|r| r.get::<_, String>(1));
                        let ty = match (field, theirs, own) {
                            (Some(_), Some("text"), Some(own)) if own != "text" => own,
                            (Some(f), Some(t), _)
                                if widened(&pg_type(f.data_type()), t).is_some() =>
                            {
                                t.to_string()
                            }
                            _ => c.sql_type.clone(),
                        };
                        format!("{} {ty}", quote(&c.name))
                    })
                    .collect();
                if let Some(batch_column) = &self.config.batch_column {
                    defs.push(format!("{} bigint", quote(batch_column)));
                }
                defs.push("_sluice_row bigint GENERATED ALWAYS AS IDENTITY".into());
                tx.batch_execute(&format!(
                    "CREATE TEMPORARY TABLE {stage} ({}) ON COMMIT DROP",
                    defs.join(", ")
                ))
                .await
                .map_err(|e| self.failure(&e, "making the staging table"))?;
                self.copy(&tx, &stage, output, batch, &live.table_types)
                    .await?;
                let mut columns: Vec<String> = output
                    .schema
                    .fields()
                    .iter()
                    .map(|f| quote(f.name()))
                    .collect();
                if let Some(batch_column) = &self.config.batch_column {
                    columns.push(quote(batch_column));
                }
                let keys: Vec<String> = self.config.key.iter().map(|k| quote(k)).collect();
                let updates: Vec<String> = columns
                    .iter()
                    .filter(|c| !keys.contains(c))
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect();
                let on_conflict = if updates.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                let compared: Vec<String> = self
                    .config
                    .key
                    .iter()
                    .map(|k| {
                        let row = typed.iter().find(|r| r.get::<_, String>(0) == *k);
                        match row.map(|r| (r.get::<_, String>(1), r.get::<_, Option<String>>(2))) {
                            Some((ty, Some(collation))) => {
                                format!("(CAST({} AS {ty}) COLLATE {collation})", quote(k))
                            }
                            Some((ty, None)) => format!("CAST({} AS {ty})", quote(k)),
                            None => quote(k),
                        }
                    })
                    .collect();
                let written = tx
                    .execute(
                        &format!(
                            "INSERT INTO {table} ({cols})
                             SELECT DISTINCT ON ({compared}) {cols} FROM {stage}
                             ORDER BY {compared}, _sluice_row DESC
                             ON CONFLICT ({keys}) {on_conflict}",
                            cols = columns.join(", "),
                            keys = keys.join(", "),
                            compared = compared.join(", "),
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| {
                        self.write_failure(&e, "writing the batch's rows over their keys", batch)
                    })?;
                // Rows of one key in one batch (a stateless query's): one of them wins,
                // unsaid until walk 89 (14 of 301 keys were not the newest by the rows' own
                // time).
                // Each key counts once inserted or updated; with `DO NOTHING` a key already
                // there counts none, so only the update tells. Keys the table's rule or
                // trigger skipped are not rows that gave way (walk 116: a trigger's 13 were
                // said to be duplicate keys).
                let keys_staged = if written < rows {
                    let keys: i64 = tx
                        .query_one(
                            &format!(
                                "SELECT count(*) FROM (SELECT DISTINCT {} FROM {stage}) k",
                                compared.join(", ")
                            ),
                            &[],
                        )
                        .await
                        .map_err(|e| self.failure(&e, "counting the batch's keys"))?
                        .get(0);
                    u64::try_from(keys).unwrap_or(0)
                } else {
                    rows
                };
                if !updates.is_empty() {
                    self.say_rows_not_taken(batch, keys_staged, written);
                }
                if !updates.is_empty() && keys_staged < rows {
                    tracing::warn!(
                        "PostgreSQL sink: in batch {batch}, {} rows gave way to another row \
                         of their key (`key: [{}]`) in the same batch: one row of each key \
                         was written, and which one is not fixed (a batch's files are read in \
                         parallel; PostgreSQL's own `ON CONFLICT` refuses such rows in one \
                         statement). Where the newest by a column of the rows is meant, pick \
                         it in the query: `SELECT DISTINCT ON ({}) ... ORDER BY {}, <time \
                         column> DESC`",
                        rows - keys_staged,
                        self.config.key.join(", "),
                        self.config.key.join(", "),
                        self.config.key.join(", "),
                    );
                }
            }
        }
        fence
            .check()
            .await
            .map_err(|e| Failure::Fatal(SinkError::Fenced(Box::new(e))))?;
        failpoint::external_async(
            &self.location,
            &format!("commit batch {batch}"),
            tx.commit(),
        )
        .await
        // A deferred constraint a row breaks fails here, and is named as at the COPY.
        .map_err(|e| self.write_failure(&e, "committing", batch))?;
        Ok(SinkCommit {
            rows,
            written: true,
        })
    }

    /// The progress row: batch, epoch and rows; `None` where the pipeline has none.
    async fn progress(&self, live: &Live) -> Result<Option<(u64, u64, u64)>, SinkError> {
        if !live.progress_made {
            return Ok(None);
        }
        let progress = quote_path(&self.config.progress_table);
        let row = live
            .client
            .query_opt(
                &format!("SELECT batch, epoch, rows FROM {progress} WHERE pipeline = $1"),
                &[&self.progress_key],
            )
            .await
            .map_err(|e| self.error(format!("reading the progress row: {}", describe(&e))))?;
        Ok(row.map(|r| {
            let (b, e, n): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            (b.max(0) as u64, e.max(0) as u64, n.max(0) as u64)
        }))
    }

    /// The sessions holding a lock on the table or the progress table, said after a lock
    /// waited for longer than `lock_timeout` (the server's message names none): each by its
    /// pid, user, application, state and last statement, with the statement that ends it.
    /// Empty where none is found (the lock went meanwhile) or they cannot be read.
    async fn lock_holders(&self) -> String {
        let Ok(live) = self.connect(None).await else {
            return String::new();
        };
        let rows = live
            .client
            .query(
                "SELECT DISTINCT a.pid, coalesce(a.usename::text, ''),
                        coalesce(a.application_name, ''), coalesce(a.state, ''),
                        coalesce(extract(epoch FROM now() - a.xact_start)::bigint, 0),
                        left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80),
                        l.mode
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.granted AND a.pid <> pg_backend_pid()
                   AND l.relation IN (to_regclass($1), to_regclass($2))
                   AND l.mode <> 'AccessShareLock'
                 ORDER BY a.pid",
                &[
                    &quote_path(&self.table),
                    &quote_path(&self.config.progress_table),
                ],
            )
            .await
            .unwrap_or_default();
        let holders: Vec<String> = rows
            .iter()
            .map(|r| {
                let (pid, user, application, state, seconds, query, mode): (
                    i32,
                    String,
                    String,
                    String,
                    i64,
                    String,
                    String,
                ) = (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                );
                format!(
                    "session {pid} (user {user}{application}, {state}, its transaction open \
                     for {seconds} s, last statement `{query}`) holds {mode}",
                    application = if application.is_empty() {
                        String::new()
                    } else {
                        format!(", application `{application}`")
                    },
                )
            })
            .collect();
        if holders.is_empty() {
            return String::new();
        }
        let pids: Vec<String> = rows
            .iter()
            .map(|r| r.get::<_, i32>(0).to_string())
            .collect();
        format!(
            "; {}: end its transaction (`SELECT pg_terminate_backend(pid) FROM \
             pg_stat_activity WHERE pid IN ({})`), or wait for it",
            holders.join("; "),
            pids.join(", ")
        )
    }

    /// The open connection (made for `epoch` where there is none, or one of another epoch).
    async fn live<'a>(
        &self,
        guard: &'a mut tokio::sync::MutexGuard<'_, Option<Live>>,
        epoch: Option<u64>,
    ) -> Result<&'a mut Live, SinkError> {
        let stale = guard
            .as_ref()
            .is_none_or(|l| l.epoch != epoch || l.client.is_closed());
        if stale {
            let live = self
                .config
                .retry
                .run(
                    &format!("PostgreSQL sink: connecting to {}", self.server()),
                    |e: &Failure| matches!(e, Failure::Retry(_)),
                    || self.connect(epoch),
                )
                .await
                .map_err(|e| match e.error {
                    Failure::Fatal(e) => e,
                    Failure::Retry(text) => self.error(format!(
                        "{text} (after {} attempt{}; `retry:` sets how many)",
                        e.attempts,
                        if e.attempts == 1 { "" } else { "s" }
                    )),
                })?;
            **guard = Some(live);
        }
        guard
            .as_mut()
            .ok_or_else(|| self.error("the connection is not open"))
    }
}

#[async_trait]
impl Sink for PostgresSink {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    async fn commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError> {
        let mut guard = self.live.lock().await;
        let mut attempts = 0;
        let mut backoff = self.config.retry.backoff;
        loop {
            attempts += 1;
            let live = self.live(&mut guard, Some(fence.epoch().0)).await?;
            // A server that stops answering mid-batch (paused, its host gone) leaves the
            // statement waiting with no error: said while it waits (walk 84: 45 silent
            // seconds, SIGTERM waiting on it too).
            let doing = format!(
                "PostgreSQL sink: writing batch {batch} to {}",
                self.location
            );
            let attempt = super::said_while_waiting(
                &doing,
                self.config
                    .retry
                    .timeout
                    .max(std::time::Duration::from_secs(10)),
                self.attempt(live, batch, fence, &output),
            );
            match attempt.await {
                Ok(done) => return Ok(done),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(text)) => {
                    // The session may be gone: the next attempt connects again.
                    *guard = None;
                    // A lock waited for too long: who holds it, said.
                    let text = if text
                        .contains(&format!("SQLSTATE {}", SqlState::LOCK_NOT_AVAILABLE.code()))
                    {
                        format!("{text}{}", self.lock_holders().await)
                    } else {
                        text
                    };
                    // A newer run stops this one: the checkpoint says which is newer.
                    fence
                        .check()
                        .await
                        .map_err(|e| SinkError::Fenced(Box::new(e)))?;
                    if attempts >= self.config.retry.attempts {
                        return Err(self.error(format!(
                            "batch {batch}: {text} (after {attempts} attempts; `retry:` sets \
                             how many)"
                        )));
                    }
                    tracing::warn!(
                        "PostgreSQL sink: batch {batch} failed (attempt {attempts} of {}): \
                         {text}; retrying in {}",
                        self.config.retry.attempts,
                        humantime::format_duration(backoff)
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
    }

    async fn read_batch(&self, batch: BatchId, schema: &SchemaRef) -> Result<HeldBatch, SinkError> {
        let Some(batch_column) = &self.config.batch_column else {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "reading a batch back (`sluice replay --verify`) without \
                            `batch_column`",
            });
        };
        // A later batch's rows take the place of an earlier one's (an upsert, a table
        // replaced): what a batch wrote is no longer told apart.
        if self.mode != Mode::Append {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "reading a batch back (`sluice replay --verify`) in update or \
                            complete mode (later batches' rows take the place of its rows)",
            });
        }
        let mut guard = self.live.lock().await;
        // An open run's session where there is one; else a session of the tool's own.
        let epoch = guard.as_ref().and_then(|l| l.epoch);
        let live = self.live(&mut guard, epoch).await?;
        let types = self.table_columns(live).await.map_err(|e| self.fatal(e))?;
        // No table under the name: renamed (found by the `oid` the progress row records, with
        // the statement that puts it back) or dropped, as a run says it (walk 116: its columns
        // were said to be gone, and the rewind named refused).
        if types.is_empty() {
            self.check_committed_table(live, &types)
                .await
                .map_err(|e| self.fatal(e))?;
        }
        // A column the batch wrote that the table no longer has (renamed or dropped since):
        // the batch's rows are not in the table as written, a finding about the sink.
        let gone: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| !types.contains_key(f.name()))
            .map(|f| format!("`{}`", f.name()))
            .collect();
        if !gone.is_empty() {
            return Err(SinkError::Corrupt {
                file: format!("table `{}`", self.table),
                reason: format!(
                    "it has no column {} now, which batch {batch} wrote (renamed or dropped \
                     since), so the batch's rows cannot be read back as they were written",
                    gone.join(", ")
                ),
            });
        }
        // A json or jsonb column as its text, as the query gave it (jsonb's as the server
        // keeps it: keys sorted, spaces taken out); a bytea column as hex.
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| match types.get(f.name()).map(String::as_str) {
                Some("json" | "jsonb") => format!("{c}::text AS {c}", c = quote(f.name())),
                // JSON gives bytea as PostgreSQL's text of it (`\\x6869`), where Arrow's
                // JSON reader takes bare hex (walk 100: never verified).
                Some("bytea") => format!("encode({c}, 'hex') AS {c}", c = quote(f.name())),
                // An interval a duration went into, as a whole number of its unit, which
                // Arrow's JSON reader takes (walk 105: `1428:00:00.123456`, PostgreSQL's
                // text of it, never verified).
                Some("interval") if let DataType::Duration(unit) = f.data_type() => {
                    let per = match unit {
                        TimeUnit::Second => "1",
                        TimeUnit::Millisecond => "1000",
                        TimeUnit::Microsecond => "1000000",
                        TimeUnit::Nanosecond => "1000000000",
                    };
                    format!(
                        "round(extract(epoch FROM {c}) * {per})::int8 AS {c}",
                        c = quote(f.name())
                    )
                }
                _ => quote(f.name()),
            })
            .collect();
        // Read back as text in JSON, then decoded into the schema's types, as the sink's rows
        // would be read by any client.
        let rows = live
            .client
            .query(
                &format!(
                    "SELECT row_to_json(r.*)::text FROM (SELECT {} FROM {} WHERE {} = $1) r",
                    columns.join(", "),
                    quote_path(&self.table),
                    quote(batch_column)
                ),
                &[&i64::try_from(batch.0).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| self.error(format!("reading batch {batch} back: {}", describe(&e))))?;
        let mut text = String::new();
        for row in &rows {
            text.push_str(&row.get::<_, String>(0));
            text.push('\n');
        }
        let mut decoder = datafusion::arrow::json::ReaderBuilder::new(Arc::clone(schema))
            .build_decoder()
            .map_err(|e| self.error(e))?;
        // The decoder takes a batch's worth of rows (1024) a call: on until all are read.
        // A value that does not read as the batch's type (the column's type changed since).
        let decoding = |e| SinkError::Corrupt {
            file: format!("table `{}`", self.table),
            reason: format!(
                "its rows of batch {batch} do not read as the types the batch wrote (a \
                 column's type changed since?): {e}"
            ),
        };
        let (mut rest, mut batches) = (text.as_bytes(), Vec::new());
        loop {
            let read = decoder.decode(rest).map_err(decoding)?;
            rest = &rest[read..];
            batches.extend(decoder.flush().map_err(decoding)?);
            if read == 0 || rest.is_empty() {
                break;
            }
        }
        Ok(HeldBatch::Rows {
            files: vec![format!("{} where {batch_column} = {batch}", self.location)],
            batches,
        })
    }

    fn forgotten_unit(&self) -> &'static str {
        "rows"
    }

    async fn check_take_back(&self, _batch: BatchId) -> Result<(), SinkError> {
        self.batch_column_to_take_back().map(|_| ())
    }

    async fn forget_batch(&self, batch: BatchId) -> Result<u64, SinkError> {
        let batch_column = self.batch_column_to_take_back()?;
        let mut guard = self.live.lock().await;
        // An open run's session where there is one; else a session of the tool's own.
        let epoch = guard.as_ref().and_then(|l| l.epoch);
        let live = self.live(&mut guard, epoch).await?;
        let n = i64::try_from(batch.0).unwrap_or(i64::MAX);
        let targets = live.targets && live.relations;
        let tx = live
            .client
            .transaction()
            .await
            .map_err(|e| self.error(describe(&e)))?;
        // A table that is gone (dropped or renamed) while the progress row records batches
        // up to this one: its rows cannot be taken back, and the batch written again would
        // double them where the table is put back.
        // Where the progress row records batches up to this one, the table must be there,
        // and be the one the row records (by `oid`) where the row names it.
        let (schema, name) = match self.table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, self.table.as_str()),
        };
        let progress = quote_path(&self.config.progress_table);
        // A progress table without `target` and `relation` (an older Sluice's, which an
        // operator command does not alter) records no table; a missing one records nothing.
        let recorded = if !live.progress_made {
            Ok(None)
        } else if targets {
            tx.query_opt(
                &format!(
                    "SELECT CASE WHEN target = format('%I.%I', coalesce($3::text, \
                     current_schema()), $4::text) THEN relation END FROM {progress} \
                     WHERE pipeline = $1 AND batch >= $2"
                ),
                &[&self.progress_key, &n, &schema, &name],
            )
            .await
        } else {
            tx.query_opt(
                &format!("SELECT NULL::oid FROM {progress} WHERE pipeline = $1 AND batch >= $2"),
                &[&self.progress_key, &n],
            )
            .await
        }
        .map_err(|e| self.error(format!("taking batch {batch} back: {}", describe(&e))))?;
        // A table without the batch column (or none at all) took no batch of this sink's: a
        // batch that failed there before writing (another table named by mistake) has nothing
        // to take back from it.
        let holds_batches = tx
            .query_opt(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 \
                 AND attnum > 0 AND NOT attisdropped",
                &[&quote_path(&self.table), batch_column],
            )
            .await
            .map_err(|e| self.error(format!("taking batch {batch} back: {}", describe(&e))))?
            .is_some();
        if let Some(row) = &recorded {
            let relation: Option<u32> = row.get(0);
            let current: Option<u32> = tx
                .query_one("SELECT to_regclass($1)::oid", &[&quote_path(&self.table)])
                .await
                .map_err(|e| self.error(format!("taking batch {batch} back: {}", describe(&e))))?
                .get(0);
            let why = match (current, relation) {
                (None, _) => Some(
                    "it does not exist (it was dropped or renamed since the batch \
                                   went into it)",
                ),
                // Made anew but holding the batch's rows: restored (from a dump), as a run
                // takes it; its `oid` is recorded at the next batch.
                (Some(current), Some(relation))
                    if current != relation
                        && !(holds_batches
                            && tx
                                .query_one(
                                    &format!(
                                        "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = $1)",
                                        quote_path(&self.table),
                                        quote(batch_column)
                                    ),
                                    &[&n],
                                )
                                .await
                                .map_err(|e| {
                                    self.error(format!(
                                        "taking batch {batch} back: {}",
                                        describe(&e)
                                    ))
                                })?
                                .get::<_, bool>(0)) =>
                {
                    Some(
                        "it is another table under that name (the one the batch went into was \
                         dropped or renamed since, and this one made), holding no row of the \
                         batch",
                    )
                }
                _ => None,
            };
            // The table the batch went into, renamed: named, with the way back.
            let moved = match relation {
                Some(oid) if why.is_some() => self.renamed(&tx, oid).await.map_err(|e| {
                    self.error(format!("taking batch {batch} back: {}", describe(&e)))
                })?,
                _ => None,
            };
            if let Some((now, undo)) = moved {
                return Err(SinkError::Config {
                    kind: KIND.name,
                    reason: format!(
                        "cannot take batch {batch} back from table {}: the table the batch \
                         went into is {now} now (renamed; its `oid` is the one recorded){}. \
                         Put it back under its name (`{undo}`), then run the rewind again; \
                         nothing of this batch was taken back",
                        quote_path(&self.table),
                        if current.is_some() {
                            ", and another table, holding no row of the batch, has the name: \
                             rename that one first"
                        } else {
                            ""
                        },
                    ),
                });
            }
            if let Some(why) = why {
                return Err(SinkError::Config {
                    kind: KIND.name,
                    reason: format!(
                        "cannot take batch {batch} back from table {}: {why}, so the batch's \
                         rows cannot be deleted, and the batch written again could double them. \
                         Put the table the batch went into back under that name, then run the \
                         rewind again; nothing of this batch was taken back. (Where the rows \
                         are gone for good, `UPDATE {} SET relation = NULL WHERE pipeline = \
                         '{}';` lets the rewind take the batches back from this table, which \
                         holds none of their rows.)",
                        quote_path(&self.table),
                        quote_path(&self.config.progress_table),
                        self.progress_key,
                    ),
                });
            }
        }
        let removed = if holds_batches {
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE {} = $1",
                    quote_path(&self.table),
                    quote(batch_column)
                ),
                &[&n],
            )
            .await
            .map_err(|e| self.error(format!("taking batch {batch} back: {}", describe(&e))))?
        } else {
            0
        };
        if holds_batches {
            self.check_taken_back(&tx, batch, batch_column, removed, live.progress_made)
                .await?;
        }
        if live.progress_made {
            tx.execute(
                &format!(
                    "UPDATE {} SET batch = $2::bigint - 1{} WHERE pipeline = $1::text AND batch >= \
                 $2::bigint",
                    quote_path(&self.config.progress_table),
                    // The rows of the batch now the newest, as its commit recorded them.
                    if holds_batches {
                        format!(
                            ", rows = (SELECT count(*) FROM {} WHERE {} = $2::bigint - 1)",
                            quote_path(&self.table),
                            quote(batch_column)
                        )
                    } else {
                        String::new()
                    }
                ),
                &[&self.progress_key, &n],
            )
            .await
            .map_err(|e| self.error(format!("moving the progress row back: {}", describe(&e))))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.error(format!("taking batch {batch} back: {}", describe(&e))))?;
        Ok(removed)
    }

    async fn summary(&self) -> Result<Option<HeldSummary>, SinkError> {
        let mut guard = self.live.lock().await;
        // An open run's session where there is one; else a session of the tool's own.
        let epoch = guard.as_ref().and_then(|l| l.epoch);
        let live = self.live(&mut guard, epoch).await?;
        // No progress row: the pipeline has committed no batch to this server.
        Ok(Some(match self.progress(live).await? {
            Some((batch, _, rows)) => HeldSummary {
                entries: 1,
                last: Some((BatchId(batch), Some(rows), Some(0))),
            },
            None => HeldSummary {
                entries: 0,
                last: None,
            },
        }))
    }

    /// Refuses, before a batch is planned, a table that lost the batches committed into it
    /// (`check_committed_table`).
    async fn check_held(&self, _last: BatchId) -> Result<(), SinkError> {
        let mut guard = self.live.lock().await;
        let epoch = guard.as_ref().and_then(|l| l.epoch);
        let live = self.live(&mut guard, epoch).await?;
        let columns = self.table_columns(live).await.map_err(|e| self.fatal(e))?;
        self.check_committed_table(live, &columns)
            .await
            .map_err(|e| self.fatal(e))
    }

    /// Checks the query's columns against the table (`check_table`) before a batch is
    /// planned, so that a table that cannot take them is refused with nothing planned.
    async fn check_output(&self, schema: &SchemaRef, _new_columns: bool) -> Result<(), SinkError> {
        pg_columns(schema).map(|_| ()).map_err(|e| self.error(e))?;
        let mut guard = self.live.lock().await;
        let epoch = guard.as_ref().and_then(|l| l.epoch);
        let live = self.live(&mut guard, epoch).await?;
        self.check_table(live, schema)
            .await
            .map_err(|e| self.fatal(e))?;
        // The progress table is made by the first batch's session where it is missing.
        let progress = quote_path(&self.config.progress_table);
        let exists = live
            .client
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&progress])
            .await
            .map_err(|e| self.error(describe(&e)))?
            .get::<_, bool>(0);
        if !exists {
            self.check_may_create(live, "the progress table", &self.config.progress_table)
                .await
                .map_err(|e| self.fatal(e))?;
        }
        Ok(())
    }
}

/// A column as the table holds it.
struct PgColumn {
    name: String,
    /// Its type in DDL.
    sql_type: String,
    /// The `pg_type.typname`s a table's column may have to take it by binary COPY.
    accepts: Vec<String>,
    /// The query's type, in words.
    arrow: String,
}

/// The type a column is sent as: nanoseconds become microseconds, dictionaries their values.
fn pg_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::Time64(TimeUnit::Nanosecond) => DataType::Time64(TimeUnit::Microsecond),
        DataType::Duration(TimeUnit::Nanosecond) => DataType::Duration(TimeUnit::Microsecond),
        DataType::Dictionary(_, value) => pg_type(value),
        DataType::BinaryView => DataType::Binary,
        DataType::Date64 => DataType::Date32,
        // pgpq sends Int8 as PostgreSQL's one-byte "char", which DDL cannot name.
        DataType::Int8 => DataType::Int16,
        other => other.clone(),
    }
}

/// A table's columns by name, each with its `pg_type.typname` (`int8`, `jsonb`, `_text`).
type TableTypes = std::collections::BTreeMap<String, String>;

/// Whether a table column of type `typname` (as [`PostgresSink::table_columns`] names it) takes
/// some type a query gives: the types pgpq sends, and arrays of them.
fn sendable(typname: &str) -> bool {
    let element = typname.strip_prefix('_').unwrap_or(typname);
    [
        "bool",
        "bytea",
        "int2",
        "int4",
        "int8",
        "text",
        "varchar",
        "bpchar",
        "name",
        "json",
        "jsonb",
        "float4",
        "float8",
        "numeric",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "uuid",
    ]
    .contains(&element)
}

/// The type a column sent as `sent` goes as into a table column of type `typname` where that
/// is not the query's own: a wider integer or float, an integer as a numeric (each value exact
/// in it), and text as
/// `json`/`jsonb` (the server parses it, and refuses text that is not JSON). `None` where it
/// goes as `sent`.
fn widened(sent: &DataType, typname: &str) -> Option<DataType> {
    match (sent, typname) {
        (DataType::Int16, "int4") => Some(DataType::Int32),
        (DataType::Int16 | DataType::Int32, "int8") => Some(DataType::Int64),
        (DataType::Float32, "float8") => Some(DataType::Float64),
        // Every integer is exact in a numeric of no negative scale (one of a negative scale
        // is refused before a batch, `rounding_columns`); one past a `numeric(p, s)`'s digits
        // is the server's error, naming the column.
        (DataType::Int16 | DataType::Int32 | DataType::Int64, "numeric") => {
            Some(DataType::Decimal128(38, 0))
        }
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, "json" | "jsonb") => {
            Some(DataType::Utf8)
        }
        // A uuid's binary form is its 16 bytes, parsed from the text ([`pg_batch`]).
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, "uuid") => {
            Some(DataType::FixedSizeBinary(16))
        }
        _ => None,
    }
}

/// The encoder of COPY's rows in `schema` ([`pg_schema`]'s): pgpq's for each type, but text
/// into a `json` or `jsonb` column of the table, sent in that type's binary form.
fn pg_encoder(
    schema: &Schema,
    table_types: &TableTypes,
) -> Result<ArrowToPostgresBinaryEncoder, pgpq::error::ErrorKind> {
    use pgpq::encoders::{EncoderBuilder, StringEncoderBuilder};
    use pgpq::pg_schema::PostgresType;
    let json = |f: &Field| match table_types.get(f.name()).map(String::as_str) {
        Some("json") if f.data_type() == &DataType::Utf8 => Some(PostgresType::Json),
        Some("jsonb") if f.data_type() == &DataType::Utf8 => Some(PostgresType::Jsonb),
        _ => None,
    };
    if !schema.fields().iter().any(|f| json(f).is_some()) {
        return ArrowToPostgresBinaryEncoder::try_new(schema);
    }
    let mut encoders = std::collections::HashMap::new();
    for (field, (name, encoder)) in schema
        .fields()
        .iter()
        .zip(pgpq::build_encoders(schema.fields())?)
    {
        let encoder = match json(field) {
            Some(output) => EncoderBuilder::String(StringEncoderBuilder::new_with_output(
                Arc::clone(field),
                output,
            )?),
            None => encoder,
        };
        encoders.insert(name, encoder);
    }
    ArrowToPostgresBinaryEncoder::try_new_with_encoders(schema, &encoders)
}

/// The schema sent by COPY: the output's columns in their sent types (the table's where
/// [`widened`]), then the batch column.
fn pg_schema(schema: &SchemaRef, batch_column: Option<&str>, table_types: &TableTypes) -> Schema {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let sent = pg_type(f.data_type());
            let sent = table_types
                .get(f.name())
                .and_then(|t| widened(&sent, t))
                .unwrap_or(sent);
            Field::new(f.name(), sent, true)
        })
        .collect();
    if let Some(name) = batch_column {
        fields.push(Field::new(name, DataType::Int64, false));
    }
    Schema::new(fields)
}

/// `rows` in `schema`'s types, with batch `batch` as the last column where asked; a time
/// finer than the microsecond PostgreSQL keeps is an error naming its column, never a cut.
fn pg_batch(
    rows: &RecordBatch,
    schema: &Schema,
    batch: BatchId,
    with_batch: bool,
) -> Result<RecordBatch, String> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, column) in rows.columns().iter().enumerate() {
        let target = schema.field(i).data_type();
        if column.data_type() == target {
            columns.push(Arc::clone(column));
        } else if *target == DataType::FixedSizeBinary(16) {
            columns.push(uuids(column, schema.field(i).name())?);
        } else {
            super::kept::check_kept(column, target, schema.field(i).name(), "PostgreSQL")?;
            // Exactly, never a value the cast cannot make turned into a null.
            let exact = datafusion::arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            columns.push(
                datafusion::arrow::compute::cast_with_options(column, target, &exact)
                    .map_err(|e| format!("column `{}`: {e}", schema.field(i).name()))?,
            );
        }
    }
    for (i, column) in columns.iter().enumerate() {
        if let Some(value) = nul_text(column) {
            let name = schema.field(i).name();
            return Err(format!(
                "column `{name}` holds text with a NUL byte ({value:?}), which PostgreSQL's \
                 text types cannot hold (DuckDB and Spark keep it): take it out in the query, \
                 `replace({name}, chr(0), '')`, or send the column as `bytea` \
                 (`CAST({name} AS BYTEA)`); or leave such rows out, `WHERE strpos({name}, \
                 chr(0)) = 0` (the one edit a query with state takes where the column is a \
                 group key: a changed filter is no changed state)"
            ));
        }
    }
    if with_batch {
        let id = i64::try_from(batch.0).unwrap_or(i64::MAX);
        columns.push(Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            id;
            rows.num_rows()
        ])));
    }
    RecordBatch::try_new(Arc::new(schema.clone()), columns).map_err(|e| e.to_string())
}

/// Text `column` (`name`) as the 16 bytes of each uuid it writes, for a `uuid` column of the
/// table (hyphenated or not, in braces, or with a `urn:uuid:` prefix, as the `uuid` crate
/// reads them); a text that is no uuid is an error naming
/// the column and the value.
fn uuids(
    column: &datafusion::arrow::array::ArrayRef,
    name: &str,
) -> Result<datafusion::arrow::array::ArrayRef, String> {
    let text = datafusion::arrow::compute::cast(column, &DataType::Utf8)
        .map_err(|e| format!("column `{name}`: {e}"))?;
    let text = text
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
        .ok_or_else(|| format!("column `{name}` is not text"))?;
    let mut bytes = datafusion::arrow::array::FixedSizeBinaryBuilder::with_capacity(
        datafusion::arrow::array::Array::len(text),
        16,
    );
    for value in text {
        match value {
            None => bytes.append_null(),
            Some(value) => {
                let id = uuid::Uuid::try_parse(value.trim()).map_err(|e| {
                    format!(
                        "column `{name}` is uuid in the table, and {value:?} is not a uuid \
                         ({e}): take such rows out in the query, or write the column as text"
                    )
                })?;
                bytes
                    .append_value(id.as_bytes())
                    .map_err(|e| format!("column `{name}`: {e}"))?;
            }
        }
    }
    Ok(Arc::new(bytes.finish()))
}

/// The first value of a text column that holds a NUL byte, which PostgreSQL refuses in any
/// text (`invalid byte sequence for encoding "UTF8": 0x00`, naming no column).
fn nul_text(column: &datafusion::arrow::array::ArrayRef) -> Option<String> {
    use datafusion::arrow::array::{AsArray, GenericStringArray, OffsetSizeTrait};
    fn first<'a>(mut values: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
        values
            .find(|v| v.is_some_and(|v| v.as_bytes().contains(&0)))
            .flatten()
            .map(str::to_string)
    }
    // Most text has none: one pass over all of a column's bytes first.
    fn offsets<O: OffsetSizeTrait>(strings: &GenericStringArray<O>) -> Option<String> {
        strings
            .values()
            .contains(&0)
            .then(|| first(strings.iter()))?
    }
    match column.data_type() {
        DataType::Utf8 => offsets(column.as_string::<i32>()),
        DataType::LargeUtf8 => offsets(column.as_string::<i64>()),
        DataType::Utf8View => first(column.as_string_view().iter()),
        _ => None,
    }
}

/// Each output column with its PostgreSQL type; an error naming the first column PostgreSQL
/// cannot take.
fn pg_columns(schema: &SchemaRef) -> Result<Vec<PgColumn>, String> {
    let mut out = Vec::with_capacity(schema.fields().len());
    /// Whether `t` holds a struct, map or union, which pgpq sends as a type of its own
    /// (`userdefined_t`) that no table has.
    fn composite(t: &DataType) -> bool {
        match t {
            DataType::Struct(_) | DataType::Map(..) | DataType::Union(..) => true,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                composite(f.data_type())
            }
            DataType::Dictionary(_, v) => composite(v),
            _ => false,
        }
    }
    for field in schema.fields() {
        if composite(field.data_type()) {
            let name = field.name();
            let way = match field.data_type() {
                DataType::Struct(_) => format!(
                    "write its fields as columns of their own in the query (`{name}['field'] \
                     AS {name}_field`)"
                ),
                _ => format!(
                    "make rows of its items in the query (`unnest({name})`) and columns of \
                     their fields, or leave it out"
                ),
            };
            return Err(format!(
                "column `{name}` is {}, a struct, map or union (or a list of them), which \
                 PostgreSQL cannot take as a column: {way}",
                field.data_type(),
            ));
        }
        let sent = pg_type(field.data_type());
        let one = Schema::new(vec![Field::new(field.name(), sent.clone(), true)]);
        let encoder = ArrowToPostgresBinaryEncoder::try_new(&one).map_err(|e| {
            // What to cast to (audit 92b: "cast it in the query" said not to what).
            let name = field.name();
            let cast = match field.data_type() {
                DataType::Interval(_) => format!(
                    "cast it in the query to a number of seconds (`date_part('epoch', {name}) AS \
                     {name}_seconds`, a `double precision` column) or to text (`CAST({name} AS \
                     VARCHAR)`, which PostgreSQL's `::interval` reads back)"
                ),
                DataType::Duration(_) => format!(
                    "cast it in the query to a number of its unit (`CAST({name} AS BIGINT)`)"
                ),
                _ => format!("cast it in the query (`CAST({name} AS VARCHAR)`, say)"),
            };
            format!(
                "column `{name}` is {}, which PostgreSQL cannot take: {e}; {cast}",
                field.data_type()
            )
        })?;
        let pg = encoder
            .schema()
            .columns
            .first()
            .and_then(|c| c.data_type.name())
            .ok_or_else(|| {
                format!(
                    "column `{}` is {}, which has no PostgreSQL type name",
                    field.name(),
                    field.data_type()
                )
            })?;
        let with_zone = matches!(sent, DataType::Timestamp(_, Some(_)));
        let sql_type = match field.data_type() {
            _ if with_zone => "TIMESTAMPTZ".to_string(),
            // A made table keeps the query's precision and scale, not an unbounded numeric.
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s)
                if pg.eq_ignore_ascii_case("numeric") && *s >= 0 =>
            {
                format!("NUMERIC({p}, {s})")
            }
            _ => pg.clone(),
        };
        // pgpq names types as DDL does (INT8, TEXT[]); pg_type names them int8, _text.
        let typname = |ddl: &str| match ddl.strip_suffix("[]") {
            Some(element) => format!("_{}", element.to_lowercase()),
            None => ddl.to_lowercase(),
        };
        let mut accepts = vec![typname(&pg)];
        if matches!(sent, DataType::Timestamp(..)) {
            accepts = vec!["timestamp".into(), "timestamptz".into()];
        }
        if matches!(
            sent,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            accepts.extend(["varchar".to_string(), "bpchar".into(), "name".into()]);
        }
        // Wider columns, and json for text, sent in the table's type.
        accepts.extend(
            ["int4", "int8", "float8", "numeric", "json", "jsonb", "uuid"]
                .into_iter()
                .filter(|t| widened(&sent, t).is_some())
                .map(str::to_string),
        );
        out.push(PgColumn {
            name: field.name().clone(),
            sql_type,
            accepts,
            arrow: field.data_type().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 49 (4): a `${VAR}`'s value was pasted into the connection string as is, so a
    /// password `x dbname=other` set the database, and one with `@` or `/` broke a URL. A value
    /// goes in as one value: quoted (or escaped inside the file's quotes), percent-encoded in
    /// a URL.
    #[test]
    fn a_variable_fills_in_one_value_of_the_connection_string() {
        let lookup = |name: &str| match name {
            "PW" => Some("x dbname=nosuchdb".to_string()),
            "Q" => Some("it's \\ odd".to_string()),
            "AT" => Some("p@ss/w:rd?#".to_string()),
            _ => None,
        };
        let parse = |text: &str| {
            let url = connection_string_with(text, lookup).expect("filled in");
            tokio_postgres::Config::from_str(&url).expect("parses")
        };
        let config = parse("host=h dbname=sluice password=${PW}");
        assert_eq!(config.get_dbname(), Some("sluice"));
        assert_eq!(config.get_password(), Some(&b"x dbname=nosuchdb"[..]));
        let config = parse("host=h dbname=sluice password='${Q}'");
        assert_eq!(config.get_password(), Some(&b"it's \\ odd"[..]));
        let config = parse("postgresql://app:${AT}@h:5432/sluice");
        assert_eq!(config.get_password(), Some(&b"p@ss/w:rd?#"[..]));
        assert_eq!(config.get_dbname(), Some("sluice"));
        // A whole url in one variable is its text as it is; part of a value goes in as it is
        // where it can, and is refused where it would break the value.
        let whole = |name: &str| match name {
            "URL" => Some("postgresql://app@h:5432/sluice".to_string()),
            "HOST" => Some("db1".to_string()),
            "PW" => Some("x dbname=nosuchdb".to_string()),
            _ => None,
        };
        let url = connection_string_with("${URL}", whole).expect("whole");
        assert_eq!(url, "postgresql://app@h:5432/sluice");
        let url =
            connection_string_with("host=${HOST}.example dbname=sluice", whole).expect("part");
        assert_eq!(url, "host=db1.example dbname=sluice");
        let refused = connection_string_with("host=h password=pre${PW}", whole).expect_err("part");
        assert!(refused.contains("make it the whole value"), "{refused}");
    }

    /// Walk 20 (6): `table: PageViews` made the table `"PageViews"`, which `SELECT * FROM
    /// PageViews` in psql does not find. A name is SQL's: unquoted parts fold to lower case,
    /// quoted ones keep their case, as Spark's and Flink's JDBC sinks pass them.
    #[test]
    fn a_table_name_is_read_as_sql_names_it() {
        for (written, held) in [
            ("PageViews", "pageviews"),
            ("Analytics.PageViews", "analytics.pageviews"),
            ("\"PageViews\"", "PageViews"),
            (
                "analytics.\"Page \"\"Views\"\"\"",
                "analytics.Page \"Views\"",
            ),
            ("  page_views ", "page_views"),
            ("analytics . \"Page Views\" ", "analytics.Page Views"),
        ] {
            assert_eq!(sql_name(written).as_deref(), Ok(held), "{written}");
        }
        for (written, says) in [
            ("\"open", "is not closed"),
            ("a.\"b.c\"", "holding a `.`"),
            ("a..b", "is empty"),
            ("db.schema.t", "`name` or `schema.name`"),
            ("Page\"Views\"", "quote a whole part"),
            ("\"a\"b", "after a quoted part"),
        ] {
            let err = sql_name(written).expect_err(written);
            assert!(err.contains(says), "{written}: {err}");
        }
    }

    #[test]
    fn types_map_to_postgres_and_a_type_it_cannot_take_is_named() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new(
                "at_utc",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("ok", DataType::Boolean, true),
        ]));
        let columns = pg_columns(&schema).expect("columns");
        let types: Vec<&str> = columns.iter().map(|c| c.sql_type.as_str()).collect();
        assert_eq!(types, ["INT8", "TEXT", "TIMESTAMP", "TIMESTAMPTZ", "BOOL"]);
        // Walk 27: `create_table` made a `decimal(10,2)` column an unbounded `numeric`.
        let decimal = Arc::new(Schema::new(vec![Field::new(
            "price",
            DataType::Decimal128(10, 2),
            true,
        )]));
        let columns = pg_columns(&decimal).expect("columns");
        assert_eq!(columns[0].sql_type, "NUMERIC(10, 2)");
        assert!(columns[0].accepts.contains(&"numeric".to_string()));
        let bad = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("nothing", DataType::Null, true),
        ]));
        let e = pg_columns(&bad).err().expect("refused");
        assert!(e.starts_with("column `nothing` is Null"), "{e}");
        // Walk 21: a struct became `userdefined_t`, refused only by the server at
        // `create_table`, with the batch planned.
        let fields = datafusion::arrow::datatypes::Fields::from(vec![Field::new(
            "a",
            DataType::Int64,
            true,
        )]);
        for data_type in [
            DataType::Struct(fields.clone()),
            DataType::new_list(DataType::Struct(fields), true),
        ] {
            let bad = Arc::new(Schema::new(vec![Field::new("s", data_type, true)]));
            let e = pg_columns(&bad).err().expect("refused");
            assert!(
                e.contains("a struct, map or union")
                    && (e.contains("s['field']") || e.contains("unnest(s)")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_table_written_into_the_url_is_refused_naming_the_key_to_use() {
        let settings: serde_yaml::Mapping =
            serde_yaml::from_str("url: postgres://u@localhost/db/events\ntable: t\n")
                .expect("yaml");
        let Err(e) = configure(&settings) else {
            panic!("a database name with a `/` was taken");
        };
        let said = e.to_string();
        assert!(
            said.contains("`db/events`") && said.contains("(`events`) with `table:`"),
            "{said}"
        );
        let settings: serde_yaml::Mapping =
            serde_yaml::from_str("url: postgres://u@localhost/db\ntable: t\n").expect("yaml");
        assert!(configure(&settings).is_ok());
        // Walk 105: TLS asked for is refused before a run, not tried three times.
        let settings: serde_yaml::Mapping =
            serde_yaml::from_str("url: host=localhost dbname=db sslmode=require\ntable: t\n")
                .expect("yaml");
        let Err(e) = configure(&settings) else {
            panic!("sslmode=require was taken");
        };
        assert!(e.to_string().contains("does not support yet"), "{e}");
    }

    /// Walk 16: `key: page` said only "expected a sequence"; one name is a key of one column,
    /// and anything else names what is expected.
    #[test]
    fn a_key_of_one_column_may_be_written_without_brackets() {
        let key = |yaml: &str| {
            let settings: serde_yaml::Mapping = serde_yaml::from_str(yaml).expect("yaml");
            configure(&settings).map(|c| c.update_key())
        };
        let one = key("url: host=localhost dbname=db\ntable: t\nkey: page\n").expect("one");
        assert_eq!(one, Some(vec!["page".to_string()]));
        let two = key("url: host=localhost dbname=db\ntable: t\nkey: [page, day]\n").expect("two");
        assert_eq!(two, Some(vec!["page".to_string(), "day".to_string()]));
        let Err(e) = key("url: host=localhost dbname=db\ntable: t\nkey: {page: 1}\n") else {
            panic!("a mapping was taken as a key");
        };
        assert!(
            e.to_string()
                .contains("expected a column name or a list of column names"),
            "{e}"
        );
    }

    #[test]
    fn a_password_written_in_the_url_is_refused_and_one_named_as_a_variable_is_not() {
        for literal in [
            "host=h user=u password=secret dbname=d",
            "postgresql://u:secret@h/d",
            "host=h password=${PGPASSWORD}x",
        ] {
            assert!(holds_literal_password(literal), "{literal}");
        }
        for fine in [
            "host=h user=u password=${PGPASSWORD} dbname=d",
            "postgresql://u:${PGPASSWORD}@h/d",
            "postgresql://u@h:5432/d",
            "host=h user=${PGUSER} dbname=d",
        ] {
            assert!(!holds_literal_password(fine), "{fine}");
        }
    }

    #[test]
    fn identifiers_are_quoted_part_by_part() {
        assert_eq!(
            quote_path("public.page \"views\""),
            "\"public\".\"page \"\"views\"\"\""
        );
    }
}
