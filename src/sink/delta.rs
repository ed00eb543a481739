//! The Delta Lake sink: each batch's rows written into a Delta table as one Delta commit that
//! also records the batch as the table's transaction version for this pipeline, so a batch
//! is in the table exactly once, whatever crashes and whichever run is late.
//!
//! ```text
//!   batch N:  load the table's newest version
//!             txn version of app id `sluice-<pipeline>` >= N: batch N is there (skip)
//!             fence: no newer epoch in the checkpoint, else stop
//!             data files: append: the batch's rows | complete: the batch's rows, every
//!                         older file removed in the same commit | update: MERGE on `key`
//!                         (the newest row of each key in the batch)
//!             commit:  _delta_log/<version>.json, created only if absent, carrying
//!                      txn(app id, N) and commitInfo `sluice.{pipeline,batch,epoch,rows}`
//!             a commit racing ours with the same app id fails Delta's conflict check
//!             (ConcurrentTransaction): the table is loaded again and batch N found there
//! ```
//!
//! The table is written by `deltalake` (delta-rs) through the sink location's store, so each
//! file it writes is a crash point and, on local disk, synced before the commit that names it
//! (`storage::Location::library_store`). Readers: Spark with Delta, PyPI `deltalake`,
//! DuckDB over it, Trino; the transaction version is Spark's `txnAppId`/`txnVersion`
//! mechanism (Delta protocol, "Transaction Identifiers").
//!
//! Column types follow Delta's: timestamps become microseconds (`timestamp_ntz`, or
//! `timestamp` for one with a time zone), unsigned integers the next signed type; a type Delta
//! has none for (times, durations, intervals) is refused before the first batch, naming the
//! column.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::{CastOptions, cast_with_options, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, Operator, binary_expr, col};
use deltalake::errors::DeltaTableError;
use deltalake::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake::kernel::{Action, Remove, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder};
use serde::Deserialize;

use super::{
    BatchOutput, HeldBatch, HeldSummary, Sink, SinkCommit, SinkConnector, SinkContext, SinkError,
    SinkKind,
};
use crate::checkpoint::{BatchId, Epoch, Fence};
use crate::format::FileFormat;
use crate::source::{ConfigError, parse_settings};
use crate::storage::Location;

/// The Delta Lake sink in the registry.
pub(super) const KIND: SinkKind = SinkKind {
    name: "delta",
    configure,
};

/// How many times a commit that lost a race to another writer's is tried again.
const CONFLICT_ATTEMPTS: usize = 10;

/// The retries delta-rs makes of a commit another writer's overtook, where it does not
/// conflict with it (its own default).
const DELTA_RETRIES: usize = 15;

/// The settings of a Delta Lake sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSinkConfig {
    /// The table's folder: a local path or an object-store URL (`s3://bucket/table`), opened
    /// as every other location is (credentials from the environment).
    pub path: String,
    /// Update mode: the columns that identify a row; each batch is merged into the table on
    /// them.
    #[serde(default, deserialize_with = "super::one_or_more")]
    pub key: Vec<String>,
    /// The columns the table is partitioned by where Sluice makes it (Hive-style folders, as
    /// Spark writes them); an existing table keeps its own.
    #[serde(default, deserialize_with = "super::one_or_more")]
    pub partition_by: Vec<String>,
}

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SinkConnector>, ConfigError> {
    let config: DeltaSinkConfig = parse_settings(settings)?;
    if config.path.trim().is_empty() {
        return Err(ConfigError::at("path", "`path` is empty"));
    }
    Ok(Arc::new(config))
}

impl DeltaSinkConfig {
    /// The table of part `part` (a table beside the sink's own: a folder inside a Delta
    /// table would be deleted by its `VACUUM`), or the sink's own.
    fn folder(&self, part: Option<&str>) -> String {
        match part {
            Some(part) => format!("{}_{part}", self.path.trim_end_matches('/')),
            None => self.path.clone(),
        }
    }
}

#[async_trait]
impl SinkConnector for DeltaSinkConfig {
    fn takes_back(&self, update: bool) -> bool {
        self.keeps_batches() && !update
    }

    fn start_over(&self, rewrites: bool) -> String {
        if rewrites {
            " into the same table (a new checkpoint of this pipeline, its `name` kept, takes \
             the table over: complete mode replaces its rows; update mode merges each row \
             over the row of its key, so where the new query's keys are not the old one's \
             (another window size, another key column), delete the table's rows first \
             (deltalake: `DeltaTable(path).delete()`), or the old query's rows stay beside \
             the new one's. A new checkpoint reads its sources from their start: where one no \
             longer holds its whole input (a Kafka topic's or NATS stream's retention or purge, \
             files moved away), the new query sees part of it, and its rows for keys the old \
             one completed (closed windows) would replace complete rows for good; write into a \
             new table then)"
                .to_string()
        } else {
            " with a new, empty `sink.path` (a Delta table Sluice appends to belongs to one \
             checkpoint)"
                .to_string()
        }
    }
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn location(&self) -> Option<String> {
        Some(self.path.clone())
    }

    fn part_location(&self, part: &str) -> Option<String> {
        Some(self.folder(Some(part)))
    }

    fn format(&self) -> Option<FileFormat> {
        Some(FileFormat::Parquet)
    }

    fn held_type(&self) -> Option<fn(&DataType) -> DataType> {
        Some(|t| delta_type(t).unwrap_or_else(|_| t.clone()))
    }

    fn keeps_batches(&self) -> bool {
        true
    }

    fn lost_records(&self) -> (String, &'static str) {
        (
            "its records of them (the table's `_delta_log`) are gone, so the table's folder was \
             moved, emptied or deleted"
                .into(),
            "a new, empty `sink.path`",
        )
    }

    fn update_key(&self) -> Option<Vec<String>> {
        (!self.key.is_empty()).then(|| self.key.clone())
    }

    fn schema_change_note(&self) -> &'static str {
        " (a Delta table takes new columns so, not a column of another type: where a column's \
         type changed, write it as the table's type where its values fit, or give the \
         pipeline a new `sink.path` with a new `checkpoint:`)"
    }

    /// Refuses a table another pipeline (or an earlier checkpoint of this one) has written
    /// batches into, as the files sink refuses its folder: this pipeline's batches would
    /// start again from its sources' beginning, adding their rows a second time. A table
    /// Sluice never wrote (Spark's, say) is appended to.
    async fn preflight(&self, ctx: &SinkContext<'_>, _create_only: bool) -> Result<(), SinkError> {
        if Location::open(&self.folder(ctx.part), false, ctx.sync, ctx.hook).is_err() {
            return Ok(());
        }
        let sink = self.sink(&SinkContext {
            create: false,
            ..*ctx
        })?;
        let (table, exists) = sink.table().await?;
        if !exists {
            return sink.check_no_other_files().await;
        }
        let held = sink.held(&table).await?.is_some();
        if held && sink.mode == Mode::Append {
            return Ok(());
        }
        let writer = sink.newest_writer(&table).await?;
        // A newer checkpoint of this pipeline took the table over: refused in complete mode,
        // said in update mode (pipelines of one name may write keys of their own).
        if let Some((owner, owner_label)) = &writer
            && *owner != ctx.pipeline
            && super::retired_by(ctx.label, owner_label)
        {
            match sink.mode {
                Mode::Complete => return Err(retired(&sink.location, owner_label.clone())),
                Mode::Update => tracing::warn!(
                    "Delta sink: {} is written by {owner_label} too, a newer checkpoint of \
                     this pipeline (the same `name`): where that one replaced this one, stop \
                     this one's runs, which would merge their older rows of each key over that \
                     one's; where each writes keys of its own, nothing is to be done",
                    sink.location
                ),
                Mode::Append => {}
            }
        }
        if held {
            return Ok(());
        }
        // The commits that named the writer gone by the table's log retention: the table's
        // Delta checkpoint still keeps each writer's transaction (walk 102: a new checkpoint
        // appended every batch again, exit 0).
        if writer.is_none()
            && sink.mode == Mode::Append
            && let Some(owner) = sink.checkpointed_writer().await?
        {
            return Err(SinkError::ForeignFolder {
                location: sink.location.to_string(),
                owner,
                owner_label: String::new(),
                ours: ctx.pipeline,
            });
        }
        if writer.is_none() && sink.mode == Mode::Complete {
            return Err(SinkError::Config {
                kind: KIND.name,
                reason: format!(
                    "{}: a Delta table Sluice did not write; complete mode would replace its \
                     rows and columns with the query's result. Give the pipeline its own table \
                     (a new `sink.path`)",
                    sink.location
                ),
            });
        }
        match writer {
            // The same pipeline on a new checkpoint (a checkpoint lost, restored from an older
            // copy, or a query change its state cannot follow) takes its table over where
            // rows are merged by key or replaced: nothing is added twice.
            Some((_, owner_label)) if takes_over(sink.mode, &owner_label, ctx.label) => Ok(()),
            Some((owner, owner_label)) if owner != ctx.pipeline => Err(SinkError::ForeignFolder {
                location: sink.location.to_string(),
                owner,
                owner_label,
                ours: ctx.pipeline,
            }),
            _ => Ok(()),
        }
    }

    fn open(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(self.sink(ctx)?))
    }
}

/// The refusal of a batch into the table at `location` that a newer checkpoint of the
/// pipeline, labelled `by`, took over ([`super::retired_by`]).
fn retired(location: &Location, by: String) -> SinkError {
    SinkError::Retired {
        location: format!("Delta table {location}"),
        by,
        undo: "To write it from another checkpoint of this pipeline instead, stop that one and \
               run this pipeline on a new checkpoint, which takes the table over in turn"
            .into(),
    }
}

/// Whether a pipeline labelled `ours` writing in `mode` takes over a table whose newest
/// commit is of the pipeline labelled `theirs`: the same pipeline (`name`) on another
/// checkpoint, in update or complete mode, whose batches merge by key or replace the table.
fn takes_over(mode: Mode, theirs: &str, ours: &str) -> bool {
    mode != Mode::Append
        && super::pipeline_name(ours).is_some()
        && super::pipeline_name(theirs) == super::pipeline_name(ours)
}

impl DeltaSinkConfig {
    /// The sink `open` gives, as its own type.
    fn sink(&self, ctx: &SinkContext<'_>) -> Result<DeltaSink, SinkError> {
        let location = Location::open(&self.folder(ctx.part), ctx.create, ctx.sync, ctx.hook)?;
        let error = |e: &str| SinkError::Config {
            kind: KIND.name,
            reason: format!("{location}: {e}"),
        };
        if ctx.update && self.key.is_empty() {
            return Err(error(crate::sink::UPDATE_KEY_MISSING));
        }
        if !ctx.update && !self.key.is_empty() {
            return Err(error(
                "`key:` is for update mode; in append and complete mode every row is written. \
                 To merge rows by their key (an upsert), set `output_mode: update`: each batch \
                 then writes the rows it changed, merged by `key:`",
            ));
        }
        let mode = if ctx.replace {
            Mode::Complete
        } else if ctx.update {
            Mode::Update
        } else {
            Mode::Append
        };
        let app_id = match ctx.part {
            Some(part) => format!("sluice-{}/{part}", ctx.pipeline),
            None => format!("sluice-{}", ctx.pipeline),
        };
        Ok(DeltaSink {
            location,
            pipeline: ctx.pipeline,
            label: ctx.label.to_string(),
            app_id,
            mode,
            key: self.key.clone(),
            partition_by: self.partition_by.clone(),
            seen_table: std::sync::atomic::AtomicBool::new(false),
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

/// A Delta Lake sink.
#[derive(Debug)]
pub struct DeltaSink {
    location: Location,
    pipeline: uuid::Uuid,
    /// How a person tells this pipeline from another (its name and checkpoint), kept in each
    /// commit so that another pipeline's refusal names it.
    label: String,
    /// The app id whose transaction version is the newest batch written.
    app_id: String,
    mode: Mode,
    key: Vec<String>,
    partition_by: Vec<String>,
    /// The table's log was found once: later loads need not look for it first.
    seen_table: std::sync::atomic::AtomicBool,
}

/// A commit of the table's log that wrote a batch, as read from its log entry.
struct BatchCommit {
    /// The table version the commit made.
    version: u64,
    /// The data files it added, as the log names them (relative, URL-encoded).
    adds: Vec<AddedFile>,
    /// The rows the batch wrote, where its commit says.
    rows: Option<u64>,
    /// The label and epoch of the run that wrote it, where its commit says.
    writer: Option<(String, Epoch)>,
}

/// A later commit that took a batch's file out of the table.
struct Removal {
    /// The table version that removed it.
    version: u64,
    /// Its operation, as its commit info names it (`RESTORE`, `OPTIMIZE`, `DELETE`).
    operation: String,
    /// Whether it took the rows out (`dataChange`): a RESTORE or a DELETE; an OPTIMIZE moves
    /// them into other files.
    data_change: bool,
}

/// A RESTORE that took the table back to before batches this pipeline committed.
struct Restored {
    /// The version the RESTORE made.
    version: u64,
    /// The version it restored.
    to: u64,
    /// The first batch whose commit came after version `to`: its rows and those of every
    /// later batch committed before the RESTORE are no longer in the table.
    first_batch: u64,
}

/// Where the table's log has a batch's commit.
enum Lookup {
    /// Its commit.
    Found(BatchCommit),
    /// Not written by this pipeline, or taken back since.
    NotWritten,
    /// Not found before a log entry cleaned up by the table's log retention.
    Expired,
    /// Missing, though the commit of batch `later` is there: the entry was deleted, or the
    /// log restored from an older copy.
    Lost { later: i64 },
}

/// A file a commit added.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddedFile {
    path: String,
    #[serde(default)]
    partition_values: HashMap<String, Option<String>>,
    #[serde(default)]
    size: i64,
}

/// The parts of a log entry's line the sink reads.
#[derive(Debug, Deserialize)]
struct LogLine {
    add: Option<AddedFile>,
    remove: Option<RemovedFile>,
    txn: Option<TxnLine>,
    #[serde(rename = "commitInfo")]
    commit_info: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A file a commit removed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemovedFile {
    path: String,
    #[serde(default)]
    data_change: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TxnLine {
    app_id: String,
    version: i64,
}

/// Whether the data file `path` (as the log writes it) is among the table's files `active`
/// ([`DeltaSink::active_files`]).
fn is_active(active: &HashSet<String>, path: &str) -> bool {
    active.contains(&decode_path(path))
}

/// A data file's path as the log writes it (URL-encoded), decoded.
fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The log stores of every object-store scheme Sluice opens: Delta's default log store
/// (commits by create-only puts), which `deltalake` itself registers only for local disk and
/// memory (its cloud crates bring their own, with other dependencies).
fn register_log_stores() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        struct CreateOnly;
        impl deltalake::logstore::LogStoreFactory for CreateOnly {
            fn with_options(
                &self,
                prefixed_store: deltalake::logstore::ObjectStoreRef,
                root_store: deltalake::logstore::ObjectStoreRef,
                location: &url::Url,
                options: &deltalake::logstore::StorageConfig,
            ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
                Ok(deltalake::logstore::default_logstore(
                    prefixed_store,
                    root_store,
                    location,
                    options,
                ))
            }
        }
        let registry = deltalake::logstore::logstore_factories();
        for scheme in [
            "s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "adl", "http", "https",
        ] {
            if let Ok(url) = url::Url::parse(&format!("{scheme}://"))
                && registry.get(&url).is_none()
            {
                registry.insert(url, Arc::new(CreateOnly));
            }
        }
    });
}

/// Whether `e` is a commit that lost a race with another writer's.
fn lost_race(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_)
                | TransactionError::VersionAlreadyExists(_)
                | TransactionError::MaxCommitAttempts(_)
        } | DeltaTableError::VersionAlreadyExists(_)
    )
}

/// The columns of `table` that hold no null (`nullable: false` in its schema); none for a
/// table not made yet.
fn not_null_columns(table: &DeltaTable) -> Vec<String> {
    table
        .snapshot()
        .map(|s| {
            s.snapshot()
                .arrow_schema()
                .fields()
                .iter()
                .filter(|f| !f.is_nullable())
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `data` with the table's columns `not_null` (top-level) marked not nullable in its schema,
/// so that a write merging the table's schema with the output's (`SchemaMode::Merge`, as a
/// table with a column the query does not write needs) keeps the table's NOT NULL: merged
/// with the output's nullable column it became nullable, and a later null was taken (walk
/// 111). `Err` where a row holds a null in one.
fn kept_not_null(data: &[RecordBatch], not_null: &[String]) -> Result<Vec<RecordBatch>, ()> {
    if not_null.is_empty() {
        return Ok(data.to_vec());
    }
    data.iter()
        .map(|rows| {
            let schema = rows.schema();
            let fields = schema
                .fields()
                .iter()
                .zip(rows.columns())
                .map(|(field, column)| {
                    if !field.is_nullable() || !not_null.contains(field.name()) {
                        return Ok(Arc::clone(field));
                    }
                    if column.null_count() > 0 {
                        return Err(());
                    }
                    Ok(Arc::new(field.as_ref().clone().with_nullable(false)))
                })
                .collect::<Result<Vec<_>, ()>>()?;
            let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
            // (No null is left to refuse: the batch as it was, where Arrow still would.)
            Ok(RecordBatch::try_new(schema, rows.columns().to_vec())
                .unwrap_or_else(|_| rows.clone()))
        })
        .collect()
}

impl DeltaSink {
    fn error(&self, error: impl std::fmt::Display) -> SinkError {
        let text = error.to_string();
        // delta-rs's words for a data file the log lists but the store has not (deleted by
        // hand, or by a VACUUM that kept too little): say what it is and the way out.
        let gone = (text.contains("not found") || text.contains("No such file"))
            && text.contains(".parquet")
            && !text.contains("_delta_log");
        let advice = if gone {
            "; a data file the table's log lists is gone (deleted by hand, or by a VACUUM that \
             kept too little), so every reader of the table fails on it too. Put the file back \
             from a backup; or restore the table to a version from before the commit that \
             added it (Delta's `RESTORE`), and the next run names the batches to take back"
        } else {
            ""
        };
        SinkError::Connector {
            kind: KIND.name,
            error: format!("{}: {text}{advice}", self.location).into(),
        }
    }

    /// Refuses a folder with no table yet that holds files other than a table's (delta-rs's
    /// `part-<n>-<uuid>...parquet`, in partition folders `name=value/`, and `_delta_log/`'s
    /// temporary files, which a first commit cut short leaves): a files sink's (`_sluice/`),
    /// or anything else. A table
    /// made there would hold none of them, and its `VACUUM` would delete them.
    async fn check_no_other_files(&self) -> Result<(), SinkError> {
        let files = self
            .location
            .list("")
            .await
            .map_err(|e| self.error(format!("listing the folder: {e}")))?;
        let table_file = |relative: &str| {
            // A log without its first commit: that commit was cut short (its temporary file).
            if relative.starts_with("_delta_log/") {
                return true;
            }
            let mut parts: Vec<&str> = relative.split('/').collect();
            let name = parts.pop().unwrap_or_default();
            parts.iter().all(|p| p.contains('=') && !p.starts_with('_'))
                && name.starts_with("part-")
                && name.ends_with(".parquet")
        };
        let others: Vec<String> = files
            .iter()
            .map(|meta| self.location.relative(&meta.location))
            .filter(|relative| !table_file(relative))
            .collect();
        let Some(first) = others.first() else {
            return Ok(());
        };
        let files_sink = others.iter().any(|o| o.starts_with("_sluice/"));
        Err(self.config(format!(
            "the folder holds no Delta table but {} other file(s) (`{first}`{}): a table made \
             there would take none of them for its own, and its `VACUUM` would delete them. \
             Give the table a folder of its own (a new `sink.path`)",
            others.len(),
            if files_sink {
                ", a files sink's output"
            } else {
                ""
            }
        )))
    }

    /// A mistake in the pipeline file for this table (exit 2).
    fn config(&self, reason: impl std::fmt::Display) -> SinkError {
        SinkError::Config {
            kind: KIND.name,
            reason: format!("{}: {reason}", self.location),
        }
    }

    /// Takes batch `batch` back (`Sink::forget_batch`), or, with `check_only`, only checks
    /// that it could be, whatever later batches the table holds (a rewind checks every batch
    /// before it takes any back): refused where its files were rewritten since.
    async fn take_back(&self, batch: BatchId, check_only: bool) -> Result<u64, SinkError> {
        // A batch the table never took (it failed before its commit) has nothing to take
        // back, in any mode.
        let (table, exists) = self.table().await?;
        if !exists {
            return Ok(0);
        }
        let wanted = i64::try_from(batch.0).unwrap_or(i64::MAX);
        let held = self.held(&table).await?;
        if held.is_none_or(|held| held < wanted) {
            return Ok(0);
        }
        if self.mode != Mode::Append {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "taking a batch back (`sluice rewind`) in update or complete mode \
                            (its rows replaced or overwrote older ones)",
            });
        }
        // An append-only table refuses the commit that removes the batch's files: checked
        // before a rewind deletes anything (audit 94b: refused part way, its record left, and
        // the rewind it said to finish failed the same way every time).
        let append_only = table
            .snapshot()
            .map_err(|e| self.error(e))?
            .metadata()
            .configuration()
            .get("delta.appendOnly")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if append_only {
            return Err(self.refused(format!(
                "the table is append-only (`delta.appendOnly: true`), which refuses the commit \
                 that removes batch {batch}'s files: set the property to false first \
                 (deltalake: `DeltaTable(path).alter.set_table_properties({{'delta.appendOnly': \
                 'false'}})`; Spark: `ALTER TABLE ... SET TBLPROPERTIES ('delta.appendOnly' = \
                 'false')`), rewind, and set it back"
            )));
        }
        if let Some(held) = held
            && held > wanted
            && !check_only
        {
            return Err(self.refused(format!(
                "batch {held} is still in the table: batches are taken back newest first"
            )));
        }
        let Lookup::Found(commit) = self.find_commit(&table, batch).await? else {
            return Err(self.refused(format!(
                "batch {batch}'s log entry is gone (past the table's log retention, or \
                 deleted): its files cannot be named to take them back. A rewind to batch \
                 {batch} or later takes back only batches whose commits the log still holds; \
                 to compute batch {batch} and those before it again, start the \
                 pipeline over on a new checkpoint with a new, empty `sink.path` (the table's \
                 `delta.logRetentionDuration` says how long its log keeps commits)"
            )));
        };
        // A commit a RESTORE undid holds none of its rows in the table any more: taken back
        // already, but for the transaction version. Files rewritten since (OPTIMIZE, another
        // writer's DELETE) hold the batch's rows in other files: removing the originals would
        // take nothing back.
        let undone_to = self
            .undone_by_restore(&table, commit.version)
            .await?
            .map(|(_, to)| to);
        let undone = undone_to.is_some();
        let active = self.active_files(&table)?;
        let inactive: Vec<&str> = commit
            .adds
            .iter()
            .map(|add| add.path.as_str())
            .filter(|path| undone || !is_active(&active, path))
            .collect();
        let removals = if undone || inactive.is_empty() {
            HashMap::new()
        } else {
            self.removals(&table, commit.version, &inactive).await?
        };
        let restored = |path: &str| {
            undone
                || removals
                    .get(&decode_path(path))
                    .is_some_and(|r| r.operation == "RESTORE")
        };
        if let Some(gone) = inactive.iter().find(|path| !restored(path)) {
            return Err(self.refused(format!(
                "batch {batch}'s file {gone} was rewritten since ({}): its rows are in other \
                 files now and cannot be taken back by file. Restore the table to its version \
                 before that rewrite (deltalake: `DeltaTable(\"{}\").restore(VERSION)`, \
                 `.history()` lists the versions; Spark: `RESTORE TABLE`), then run the rewind \
                 again: the batches committed after that version leave the table with the \
                 restore, and the rewind takes them back too, to be computed again (where a \
                 VACUUM has since deleted that version's files, the restore fails, `Find \
                 missing file`: then start the pipeline over on a new checkpoint with a new, \
                 empty `sink.path`, which computes every batch again); nothing was taken back",
                removals.get(&decode_path(gone)).map_or_else(
                    || "OPTIMIZE, or another writer's DELETE or UPDATE".to_string(),
                    |r| format!("version {}, {}", r.version, r.operation)
                ),
                self.location,
                gone = decode_path(gone),
            )));
        }
        if check_only {
            return Ok(0);
        }
        // Where a RESTORE undid it, the version restored may hold an earlier write of the
        // batch that a rewind had taken back: in the table again, and taken back with it
        // (walk 102: the rewind took back nothing, and the run wrote the batch again).
        let restored_writes = match undone_to {
            Some(to) => self.earlier_writes(&table, wanted, to, &active).await?,
            None => Vec::new(),
        };
        let inactive: Vec<String> = inactive.into_iter().map(str::to_string).collect();
        let now = chrono::Utc::now().timestamp_millis();
        let adds: Vec<AddedFile> = commit
            .adds
            .into_iter()
            .filter(|add| !inactive.contains(&add.path))
            .chain(restored_writes)
            .collect();
        let removed = adds.len() as u64;
        let actions: Vec<Action> = adds
            .into_iter()
            .map(|add| {
                // The log holds paths URL-encoded; `Remove` encodes its own.
                let path = percent_encoding::percent_decode_str(&add.path)
                    .decode_utf8_lossy()
                    .into_owned();
                Action::Remove(Remove {
                    path,
                    data_change: true,
                    deletion_timestamp: Some(now),
                    extended_file_metadata: Some(true),
                    partition_values: Some(add.partition_values),
                    size: Some(add.size),
                    tags: None,
                    deletion_vector: None,
                    base_row_id: None,
                    default_row_commit_version: None,
                })
            })
            .collect();
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, wanted - 1))
            .with_metadata([
                (
                    "sluice.pipeline".to_string(),
                    self.pipeline.to_string().into(),
                ),
                ("sluice.rewind".to_string(), batch.0.into()),
            ]);
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(snapshot),
                table.log_store(),
                // No predicate: delta-rs reads one as SQL when it checks for conflicts; the
                // commit info's `sluice.rewind` names the batch.
                DeltaOperation::Delete { predicate: None },
            )
            .await
            .map_err(|e| self.error(format!("taking batch {batch} back: {e}")))?;
        Ok(removed)
    }

    /// A batch this sink will not take back, said before anything of it is deleted.
    fn refused(&self, reason: impl std::fmt::Display) -> SinkError {
        SinkError::TakeBackRefused {
            kind: KIND.name,
            reason: format!("{}: {reason}", self.location),
        }
    }

    /// The table, and whether it exists (a table not made yet is made by the first write).
    async fn table(&self) -> Result<(DeltaTable, bool), SinkError> {
        register_log_stores();
        let (store, url) = self.location.library_store()?;
        let mut table = DeltaTableBuilder::from_url(url.clone())
            .and_then(|b| b.with_storage_backend(store, url).build())
            .map_err(|e| self.error(e))?;
        // No log yet: not a table (asked first, so that delta-rs has no failed load to log).
        // A table has its first commit, or a checkpoint of the log once old commits are
        // cleaned up. Once seen, a table is not asked for again (a batch's I/O).
        let mut has_log = self.seen_table.load(std::sync::atomic::Ordering::Relaxed);
        for first in [
            "_delta_log/00000000000000000000.json",
            "_delta_log/_last_checkpoint",
        ] {
            if has_log {
                break;
            }
            has_log = self
                .location
                .exists(&self.location.path(first))
                .await
                .map_err(|e| self.error(format!("looking for the table's log: {e}")))?;
        }
        if !has_log {
            return Ok((table, false));
        }
        match table.load().await {
            Ok(()) => {
                self.seen_table
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok((table, true))
            }
            Err(DeltaTableError::NotATable(_)) => Ok((table, false)),
            Err(e) => {
                // The kernel's words, without the backtrace it keeps where RUST_BACKTRACE is
                // set, then which log file is damaged and the way out.
                let damage = self.log_damage().await;
                let said = e.to_string();
                let said = if damage.is_empty() {
                    said.lines().next().unwrap_or_default().to_string()
                } else {
                    // Said better below (the kernel's gap is a dump of two paths).
                    "the log is damaged".to_string()
                };
                Err(self.error(format!("reading the table's log: {said}{damage}")))
            }
        }
    }

    /// Where the table's log is damaged, what and the way out, for an error reading it: a
    /// version missing between two commits (deleted by hand), or the newest commit cut
    /// short (a writer killed mid-write on a store without atomic writes, or an edit). Empty
    /// where neither is found.
    async fn log_damage(&self) -> String {
        let Ok(listed) = self.location.list("_delta_log/").await else {
            return String::new();
        };
        let mut versions: Vec<(u64, String)> = listed
            .iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                let version = name.strip_suffix(".json")?.parse::<u64>().ok()?;
                Some((version, name))
            })
            .collect();
        versions.sort();
        if let Some(pair) = versions.windows(2).find(|w| w[1].0 != w[0].0 + 1) {
            return format!(
                ": `_delta_log/` has no commit between {} and {} (deleted by hand?), so the \
                 table cannot be read past {}. Put the missing commit file(s) back from a \
                 backup (there is no other way to read the versions after it), or start the pipeline \
                 over on a new checkpoint and a new `sink.path`",
                pair[0].1, pair[1].1, pair[0].1
            );
        }
        let Some((_, newest)) = versions.last() else {
            return String::new();
        };
        let path = self.location.path(&format!("_delta_log/{newest}"));
        let Ok(Some(bytes)) = self.location.get(&path).await else {
            return String::new();
        };
        let whole = String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok());
        if whole {
            return String::new();
        }
        format!(
            ": the newest commit, `_delta_log/{newest}`, is cut short (a line of it is not \
             whole JSON). Put it back from a backup; or, if that commit never finished (a \
             writer stopped while writing it), move it out of `_delta_log/`: the table is \
             then as it was before it, and the next run says which of this pipeline's batches \
             the table lacks, with the rewind that writes them again"
        )
    }

    /// The newest batch the table holds for this pipeline (its transaction version).
    async fn held(&self, table: &DeltaTable) -> Result<Option<i64>, SinkError> {
        let state = table.snapshot().map_err(|e| self.error(e))?;
        state
            .transaction_version(table.log_store().as_ref(), &self.app_id)
            .await
            .map_err(|e| self.error(format!("reading the table's transaction versions: {e}")))
    }

    /// Refuses a table whose current version lists a data file that is gone from its folder
    /// (deleted by hand): every reader of the table fails on it, and the rows it held are lost,
    /// which running on would leave so. One listing of the folder; a file it does not show is
    /// looked for by name before it counts as gone.
    async fn check_files_there(&self, table: &DeltaTable) -> Result<(), SinkError> {
        let state = table.snapshot().map_err(|e| self.error(e))?;
        let listed: std::collections::HashSet<String> = self
            .location
            .list("")
            .await?
            .iter()
            .map(|meta| self.location.relative(&meta.location))
            .collect();
        let unlisted: Vec<String> = state
            .log_data()
            .into_iter()
            .map(|file| file.object_store_path().as_ref().to_string())
            // A file named by its own URL (a shallow clone's) is not under the folder.
            .filter(|path| !listed.contains(path) && !path.contains(":/"))
            .collect();
        let mut gone = Vec::new();
        for path in unlisted {
            if !self.location.exists(&self.location.path(&path)).await? {
                gone.push(path);
            }
        }
        let Some(first) = gone.first() else {
            return Ok(());
        };
        let more = match gone.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        // In append mode the batches that wrote them can be computed again from their input.
        let rewind = match self.mode {
            Mode::Append => self.first_batch_adding(table, &gone).await?.map(|batch| {
                match batch.checked_sub(1) {
                    Some(before) => format!(
                        "; or take back batch {batch}, whose commit added {}, and the batches \
                         after it, which computes them again from their input with nothing \
                         lost (where the sources still hold it): `sluice rewind <checkpoint> \
                         --to {before}`, then run again",
                        if gone.len() == 1 {
                            "it"
                        } else {
                            "the earliest of them"
                        }
                    ),
                    None => "; or, since batch 0's commit added one of them, start the \
                             pipeline over on a new checkpoint with a new, empty `sink.path`"
                        .to_string(),
                }
            }),
            _ => None,
        }
        .unwrap_or_default();
        Err(SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "{}: the table's current version lists data files that are gone from its \
                 folder ({first}{more}; deleted by hand, or by a VACUUM that kept too \
                 little): every reader of the table fails on them. Put them back from a \
                 backup{rewind}; or restore the table to a version from before the commit that added \
                 them (Delta's `RESTORE`), and the next run names the batches to take back; \
                 or take them out of the table's log (deltalake: \
                 `DeltaTable(\"{}\").repair()`; Spark: `FSCK REPAIR TABLE`), which leaves \
                 their rows out for good (`sluice replay <checkpoint> --batch N --verify` \
                 names a batch whose own files are gone; not one whose rows an OPTIMIZE had \
                 moved into a file that is gone, which it cannot read back by batch)",
                self.location, self.location,
            ),
        })
    }

    /// The lowest batch of this pipeline whose commit added one of the data files `paths`
    /// (relative to the table's folder), read from the log from its newest entry back; `None`
    /// unless a batch's commit added each of them (not an OPTIMIZE's or another pipeline's
    /// file, nor one whose entry is gone by the log's retention).
    async fn first_batch_adding(
        &self,
        table: &DeltaTable,
        paths: &[String],
    ) -> Result<Option<u64>, SinkError> {
        let Some(newest) = table.version() else {
            return Ok(None);
        };
        let mut unfound: std::collections::HashSet<&str> =
            paths.iter().map(String::as_str).collect();
        let mut first = None;
        for version in (0..=newest).rev() {
            if unfound.is_empty() {
                break;
            }
            let Some(lines) = self.log_entry(table, version).await? else {
                break;
            };
            let Some(batch) = self
                .our_txn(&lines)
                .and_then(|txn| u64::try_from(txn.version).ok())
            else {
                continue;
            };
            for add in lines.iter().filter_map(|l| l.add.as_ref()) {
                if let Ok(path) = object_store::path::Path::from_url_path(&add.path)
                    && unfound.remove(path.as_ref())
                {
                    first = Some(first.map_or(batch, |f: u64| f.min(batch)));
                }
            }
        }
        // Only where every one came from a batch: another's (an OPTIMIZE's, another
        // checkpoint's) is not computed again by a rewind.
        Ok(first.filter(|_| unfound.is_empty()))
    }

    /// The pipeline (and how it names itself) of the newest commit Sluice made to the table.
    async fn newest_writer(
        &self,
        table: &DeltaTable,
    ) -> Result<Option<(uuid::Uuid, String)>, SinkError> {
        let Some(newest) = table.version() else {
            return Ok(None);
        };
        for version in (0..=newest).rev() {
            let Some(lines) = self.log_entry(table, version).await? else {
                break;
            };
            let writer = lines
                .iter()
                .filter_map(|l| l.commit_info.as_ref())
                .find_map(|i| {
                    let id = i.get("sluice.pipeline")?.as_str()?.parse().ok()?;
                    let label = i
                        .get("sluice.label")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default();
                    Some((id, label.to_string()))
                });
            if writer.is_some() {
                return Ok(writer);
            }
        }
        Ok(None)
    }

    /// Another Sluice pipeline's id among the transactions the table's newest Delta checkpoint
    /// (`_delta_log/<version>.checkpoint*.parquet`) keeps, its `txn` app ids
    /// (`sluice-<pipeline>`): where the table's log retention removed the commits that named
    /// their writer, the checkpoint still keeps each writer's transaction version, as Spark's
    /// sink reads it. `None` where the table has no checkpoint or names no other pipeline.
    ///
    /// Errors: the store's; a checkpoint that does not read as Parquet.
    async fn checkpointed_writer(&self) -> Result<Option<uuid::Uuid>, SinkError> {
        use datafusion::parquet::arrow::ProjectionMask;
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let listed = self
            .location
            .list("_delta_log")
            .await
            .map_err(|e| self.error(e))?;
        let checkpoints: Vec<(u64, String)> = listed
            .iter()
            .filter_map(|meta| {
                let relative = self.location.relative(&meta.location);
                let name = relative.strip_prefix("_delta_log/")?;
                let (version, rest) = name.split_once('.')?;
                let checkpoint = rest.starts_with("checkpoint") && rest.ends_with(".parquet");
                Some((version.parse().ok().filter(|_| checkpoint)?, relative))
            })
            .collect();
        let Some(newest) = checkpoints.iter().map(|(v, _)| *v).max() else {
            return Ok(None);
        };
        for (_, file) in checkpoints.iter().filter(|(v, _)| *v == newest) {
            let unreadable = |e: &dyn std::fmt::Display| self.error(format!("{file}: {e}"));
            let Some(bytes) = self
                .location
                .get(&self.location.path(file))
                .await
                .map_err(|e| self.error(e))?
            else {
                continue;
            };
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| unreadable(&e))?;
            let Some(txn) = builder
                .schema()
                .fields()
                .iter()
                .position(|f| f.name() == "txn")
            else {
                continue;
            };
            let mask = ProjectionMask::roots(builder.parquet_schema(), [txn]);
            let reader = builder
                .with_projection(mask)
                .build()
                .map_err(|e| unreadable(&e))?;
            for batch in reader {
                let batch = batch.map_err(|e| unreadable(&e))?;
                let Some(app_ids) = batch
                    .column(0)
                    .as_struct_opt()
                    .and_then(|txn| txn.column_by_name("appId"))
                    .and_then(|ids| ids.as_string_opt::<i32>())
                else {
                    continue;
                };
                let other = app_ids.iter().flatten().find_map(|id| {
                    let pipeline = id.strip_prefix("sluice-")?.split('/').next()?;
                    pipeline
                        .parse::<uuid::Uuid>()
                        .ok()
                        .filter(|p| *p != self.pipeline)
                });
                if other.is_some() {
                    return Ok(other);
                }
            }
        }
        Ok(None)
    }

    /// The lines of log entry `version`; `None` where it is gone (cleaned up by the table's
    /// log retention).
    async fn log_entry(
        &self,
        table: &DeltaTable,
        version: u64,
    ) -> Result<Option<Vec<LogLine>>, SinkError> {
        let Some(bytes) = table
            .log_store()
            .read_commit_entry(version)
            .await
            .map_err(|e| self.error(format!("reading log entry {version}: {e}")))?
        else {
            return Ok(None);
        };
        let mut lines = Vec::new();
        for text in bytes.split(|b| *b == b'\n') {
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line: LogLine = serde_json::from_slice(text).map_err(|e| {
                self.error(format!("log entry {version} does not read as Delta's: {e}"))
            })?;
            lines.push(line);
        }
        Ok(Some(lines))
    }

    /// The commit that wrote `batch`, where the table holds it: found from the newest log
    /// entry back (past the commits of rewinds), stopping at this pipeline's first transaction
    /// version below `batch` (the batch was taken back, never written, or its commit lost).
    async fn find_commit(&self, table: &DeltaTable, batch: BatchId) -> Result<Lookup, SinkError> {
        let Some(newest) = table.version() else {
            return Ok(Lookup::NotWritten);
        };
        let wanted = i64::try_from(batch.0).unwrap_or(i64::MAX);
        // A later batch's commit seen on the way back.
        let mut later = None;
        for version in (0..=newest).rev() {
            let Some(lines) = self.log_entry(table, version).await? else {
                return Ok(Lookup::Expired);
            };
            let Some(txn) = self.our_txn(&lines) else {
                continue;
            };
            let info = lines.iter().find_map(|l| l.commit_info.as_ref());
            // A rewind's commit moves the version back to N after taking N + 1 back: batch
            // N's own commit is further back.
            let rewind = info.is_some_and(|i| i.contains_key("sluice.rewind"));
            if txn.version < wanted {
                return Ok(match later {
                    _ if rewind => Lookup::NotWritten,
                    Some(later) => Lookup::Lost { later },
                    None => Lookup::NotWritten,
                });
            }
            if txn.version == wanted && !rewind {
                let rows = info
                    .and_then(|i| i.get("sluice.rows"))
                    .and_then(serde_json::Value::as_u64);
                let writer = info.and_then(|i| {
                    let label = i.get("sluice.label")?.as_str()?.to_string();
                    let epoch = i.get("sluice.epoch")?.as_u64()?;
                    Some((label, Epoch(epoch)))
                });
                return Ok(Lookup::Found(BatchCommit {
                    version,
                    adds: lines.into_iter().filter_map(|l| l.add).collect(),
                    rows,
                    writer,
                }));
            }
            if txn.version > wanted && !rewind {
                later = later.or(Some(txn.version));
            }
        }
        Ok(match later {
            Some(later) => Lookup::Lost { later },
            None => Lookup::NotWritten,
        })
    }

    /// The files of this pipeline's writes of batch `wanted` at or before version `to` that
    /// are in the table now (`active`): writes a rewind took back, which a RESTORE to `to` or
    /// before put back. Read from `to` back, to the first log entry the table's log retention
    /// removed.
    async fn earlier_writes(
        &self,
        table: &DeltaTable,
        wanted: i64,
        to: u64,
        active: &HashSet<String>,
    ) -> Result<Vec<AddedFile>, SinkError> {
        let mut found: Vec<AddedFile> = Vec::new();
        for version in (0..=to).rev() {
            let Some(lines) = self.log_entry(table, version).await? else {
                break;
            };
            if self.batch_of(&lines) != Some(wanted) {
                continue;
            }
            for add in lines.into_iter().filter_map(|l| l.add) {
                if is_active(active, &add.path) && !found.iter().any(|f| f.path == add.path) {
                    found.push(add);
                }
            }
        }
        Ok(found)
    }

    /// The commits after version `after` that removed each of the files `paths` (as the log
    /// names them), by path; a file no later commit removed is left out. Log entries gone by
    /// the table's log retention end the search.
    async fn removals(
        &self,
        table: &DeltaTable,
        after: u64,
        paths: &[&str],
    ) -> Result<HashMap<String, Removal>, SinkError> {
        let wanted: Vec<String> = paths.iter().map(|p| decode_path(p)).collect();
        let mut found = HashMap::new();
        for version in after + 1..=table.version().unwrap_or(0) {
            let Some(lines) = self.log_entry(table, version).await? else {
                continue;
            };
            let operation = lines
                .iter()
                .find_map(|l| l.commit_info.as_ref())
                .and_then(|i| i.get("operation"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("a commit")
                .to_string();
            for removed in lines.iter().filter_map(|l| l.remove.as_ref()) {
                let path = decode_path(&removed.path);
                if wanted.contains(&path) && !found.contains_key(&path) {
                    found.insert(
                        path,
                        Removal {
                            version,
                            operation: operation.clone(),
                            data_change: removed.data_change,
                        },
                    );
                }
            }
        }
        Ok(found)
    }

    /// The table's data files, by their paths as the log writes them, decoded once (as
    /// [`decode_path`] decodes a commit's): compared as URIs, a partition folder's own
    /// escape (`k=a%20b`, for the value `a b`) was decoded a second time, and the file was
    /// taken for one rewritten since (walk 83: a rewind refused for every such batch).
    fn active_files(&self, table: &DeltaTable) -> Result<HashSet<String>, SinkError> {
        Ok(table
            .snapshot()
            .map_err(|e| self.error(e))?
            .log_data()
            .into_iter()
            .map(|file| file.path().into_owned())
            .collect())
    }

    /// The version a RESTORE commit (its lines `lines`) restored, where it is one and says so
    /// (delta-rs writes the number, Spark the number as text; a RESTORE by time gives none,
    /// and is not followed).
    fn restore_target(lines: &[LogLine]) -> Option<u64> {
        let info = lines.iter().find_map(|l| l.commit_info.as_ref())?;
        if info.get("operation").and_then(serde_json::Value::as_str) != Some("RESTORE") {
            return None;
        }
        let version = info.get("operationParameters")?.get("version")?;
        version.as_u64().or_else(|| version.as_str()?.parse().ok())
    }

    /// This pipeline's batch in log entry `lines`, where it is one of its batch commits (not
    /// a rewind's).
    fn batch_of(&self, lines: &[LogLine]) -> Option<i64> {
        let rewind = lines
            .iter()
            .find_map(|l| l.commit_info.as_ref())
            .is_some_and(|i| i.contains_key("sluice.rewind"));
        let txn = self.our_txn(lines)?;
        (!rewind).then_some(txn.version)
    }

    /// The transaction line of this pipeline in a log entry's `lines`, where it has one.
    fn our_txn<'a>(&self, lines: &'a [LogLine]) -> Option<&'a TxnLine> {
        lines
            .iter()
            .filter_map(|l| l.txn.as_ref())
            .find(|t| t.app_id == self.app_id)
    }

    /// A RESTORE since batch `last`'s commit that took the table back to before it (Delta
    /// keeps the pipeline's transaction version through a RESTORE, so the table still says it
    /// holds the batch); `None` where there was none, or the log no longer tells. The log is
    /// read from the newest entry back; a RESTORE to version `T` undoes the commits between
    /// `T` and itself (a later RESTORE undoing an earlier one among them), so the reading goes
    /// on at `T`.
    async fn restored_past(
        &self,
        table: &DeltaTable,
        last: BatchId,
    ) -> Result<Option<Restored>, SinkError> {
        let Some(mut version) = table.version() else {
            return Ok(None);
        };
        let wanted = i64::try_from(last.0).unwrap_or(i64::MAX);
        loop {
            let Some(lines) = self.log_entry(table, version).await? else {
                return Ok(None);
            };
            if let Some(to) = Self::restore_target(&lines).filter(|to| *to < version) {
                // This pipeline's batches up to `last` among the commits the RESTORE undid.
                let mut first_batch = None;
                for undone in (to + 1..version).rev() {
                    let Some(lines) = self.log_entry(table, undone).await? else {
                        return Ok(None);
                    };
                    if let Some(batch) = self.batch_of(&lines).filter(|b| *b <= wanted) {
                        first_batch = u64::try_from(batch).ok();
                    }
                }
                if let Some(first_batch) = first_batch {
                    return Ok(Some(Restored {
                        version,
                        to,
                        first_batch,
                    }));
                }
                version = to;
                continue;
            }
            // The newest batch's commit is in the table as it is.
            if self.batch_of(&lines).is_some_and(|b| b <= wanted) {
                return Ok(None);
            }
            let Some(before) = version.checked_sub(1) else {
                return Ok(None);
            };
            version = before;
        }
    }

    /// The error for batches up to `last` whose rows a RESTORE took out of the table
    /// ([`Self::restored_past`]), with both ways out: the version before the RESTORE, or
    /// the rewind that writes them again.
    /// `current` is the table's version now: commits after the RESTORE go too where the
    /// version before it is restored, and the message says so.
    fn restored_error(&self, restored: Restored, last: BatchId, current: Option<u64>) -> SinkError {
        let Restored {
            version,
            to,
            first_batch,
        } = restored;
        let way_out = match (self.mode, first_batch.checked_sub(1)) {
            (Mode::Append, Some(before)) => format!(
                "take those batches back, which computes them again from their input: \
                 `sluice rewind <checkpoint> --to {before}`, then run again"
            ),
            _ => "start the pipeline over on a new checkpoint with a new, empty \
                  `sink.path`"
                .to_string(),
        };
        // Walk 125 (7): restoring the version before the RESTORE also takes out another
        // writer's commits made since it.
        let since = match current.filter(|c| *c > version) {
            Some(current) => format!(
                ", which also takes out what was committed after the RESTORE (version{} {})",
                if current > version + 1 { "s" } else { "" },
                crate::vocab::span(version + 1, current)
            ),
            None => String::new(),
        };
        let batches = match first_batch == last.0 {
            true => format!("batch {first_batch} are"),
            false => format!("batches {first_batch} to {last} are"),
        };
        SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "{}: the table was restored to version {to} (RESTORE, its version \
                 {version}), from before batch {first_batch} went into it: the rows of \
                 {batches} no longer in it, though its log still records them, and running \
                 on would leave them out. Put them back by restoring the table to version {} \
                 (deltalake: `DeltaTable(\"{}\").restore({})`){since}; or {way_out}",
                self.location,
                version - 1,
                self.location,
                version - 1,
            ),
        }
    }

    /// The RESTORE that undid the commit of version `commit` (its version and the version it
    /// restored), where one did: read as [`Self::restored_past`] reads the log.
    async fn undone_by_restore(
        &self,
        table: &DeltaTable,
        commit: u64,
    ) -> Result<Option<(u64, u64)>, SinkError> {
        let Some(mut version) = table.version() else {
            return Ok(None);
        };
        while version > commit {
            let Some(lines) = self.log_entry(table, version).await? else {
                return Ok(None);
            };
            match Self::restore_target(&lines).filter(|to| *to < version) {
                Some(to) if to < commit => return Ok(Some((version, to))),
                Some(to) => version = to,
                None => version -= 1,
            }
        }
        Ok(None)
    }

    /// The output's record batches in the table's column types (at least one, so that an
    /// empty batch still carries its schema).
    fn conform(&self, batch: BatchId, output: &BatchOutput) -> Result<Vec<RecordBatch>, SinkError> {
        let schema = delta_schema(&output.schema).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for rows in output.batches() {
            // A value the table cannot hold as it is (a time finer than a microsecond): the
            // batch's rows, refused as such (with the way to edit the query it stays planned
            // with).
            out.push(
                delta_batch(rows, &schema).map_err(|e| SinkError::RowRefused {
                    kind: KIND.name,
                    reason: format!("{}: batch {batch}: {e}", self.location),
                })?,
            );
        }
        if out.is_empty() {
            out.push(RecordBatch::new_empty(schema));
        }
        Ok(out)
    }

    /// The error for rows of batch `batch` (`data`) that the table's own rules refuse
    /// (delta-rs's "rows failed validation check", `error`): a null in one of the table's
    /// columns `not_null` (`nullable: false` in its schema) is named with its column and
    /// what to write in the query; other rules (a `CHECK` constraint, an invariant) as
    /// delta-rs words them (`error`, where delta-rs refused the rows).
    fn invalid_rows(
        &self,
        batch: BatchId,
        not_null: &[String],
        data: &[RecordBatch],
        error: Option<&DeltaTableError>,
    ) -> SinkError {
        let nulls = not_null.iter().find(|column| {
            data.iter().any(|rows| {
                rows.schema()
                    .index_of(column)
                    .is_ok_and(|i| rows.column(i).null_count() > 0)
            })
        });
        let advice = match nulls {
            Some(column) => format!(
                "the table's column `{column}` takes no null (NOT NULL, `nullable: false` in \
                 its schema), and the query gave it one: leave such rows out (`WHERE {column} \
                 IS NOT NULL`) or give them a value (`COALESCE({column}, ...)`)"
            ),
            None => "a row breaks a rule of the table (a `CHECK` constraint or an \
                     invariant): leave such rows out in the query"
                .to_string(),
        };
        SinkError::RowRefused {
            kind: KIND.name,
            reason: format!(
                "{}: batch {batch}: {advice} ({}nothing of the batch was committed)",
                self.location,
                error
                    .map(|e| format!("delta-rs: {e}; "))
                    .unwrap_or_default()
            ),
        }
    }

    /// The partition columns of `table`, as its metadata records them (delta-rs keeps its
    /// accessor to itself: read from the metadata action's JSON form, `partitionColumns`, the
    /// protocol's own field).
    fn table_partition_columns(&self, table: &DeltaTable) -> Result<Vec<String>, SinkError> {
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        let metadata = serde_json::to_value(snapshot.metadata()).map_err(|e| self.error(e))?;
        Ok(metadata
            .get("partitionColumns")
            .and_then(|c| c.as_array())
            .map(|c| {
                c.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Checks the text partition columns `columns` of `data` (batch `batch`) for values the
    /// table keeps as null. The Delta protocol keeps a partition value as text in the log,
    /// where an empty value stands for null ("Partition Value Serialization"), so Spark,
    /// delta-rs and DuckDB read an empty string back as null, as Spark's own writer leaves it:
    /// said with a warning. Refused ([`SinkError::RowRefused`]): such a value in a column of
    /// the update key (its row would merge with the null key's, and each other's), and Hive's
    /// `__HIVE_DEFAULT_PARTITION__`, read back as null, which no replay can then verify.
    fn check_partition_values(
        &self,
        batch: BatchId,
        data: &[RecordBatch],
        columns: &[String],
    ) -> Result<(), SinkError> {
        const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";
        for column in columns {
            let (mut empty, mut hive) = (0, 0);
            for rows in data {
                let Ok(i) = rows.schema().index_of(column) else {
                    continue;
                };
                let values = rows.column(i);
                // A negative decimal partition value is kept right (`-0.01`), but the
                // deltalake Python package (1.x) fails to read such a table back ("The string
                // '0.-1' is not a valid decimal128 number"; its own writer fails on it too):
                // said, once a batch (audit 94b).
                if let DataType::Decimal128(..) = values.data_type()
                    && values
                        .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                        .iter()
                        .flatten()
                        .any(|v| v < 0)
                {
                    tracing::warn!(
                        "Delta sink: batch {batch}: partition column `{column}` holds negative \
                         decimals, kept right in the table's log, which the deltalake Python \
                         package (1.x) fails to read back (\"'0.-1' is not a valid decimal128 \
                         number\"); Spark and delta-rs's SQL reader read them. Where Python \
                         reads the table, partition by a text or integer form of the column"
                    );
                }
                if !matches!(
                    values.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    continue;
                }
                let Ok(text) = datafusion::arrow::compute::cast(values, &DataType::Utf8) else {
                    continue;
                };
                if let Some(text) = text.as_any().downcast_ref::<StringArray>() {
                    for value in text.iter().flatten() {
                        empty += usize::from(value.is_empty());
                        hive += usize::from(value == HIVE_NULL);
                    }
                }
            }
            let keep = format!(
                "give them a value of their own in the query: `CASE WHEN {column} = '' THEN \
                 '(empty)' ELSE {column} END AS {column}`"
            );
            if hive > 0 {
                return Err(SinkError::RowRefused {
                    kind: KIND.name,
                    reason: format!(
                        "{}: batch {batch}: {hive} row(s) hold the text `{HIVE_NULL}` in \
                         partition column `{column}`, the name Hive gives the null partition: \
                         the table would read them back as null, changed. Write another value \
                         in the query (`nullif({column}, '{HIVE_NULL}')` for a null), or leave \
                         such rows out (`WHERE {column} IS DISTINCT FROM '{HIVE_NULL}'`, which \
                         an aggregation's state takes where a changed group key is refused)",
                        self.location
                    ),
                });
            }
            if empty > 0 && self.mode == Mode::Update && self.key.contains(column) {
                return Err(SinkError::RowRefused {
                    kind: KIND.name,
                    reason: format!(
                        "{}: batch {batch}: {empty} row(s) hold the empty string in partition \
                         column `{column}`, a column of the sink's `key`: a Delta table keeps an \
                         empty partition value as null, so their rows would merge with the null \
                         key's row into one; {keep}",
                        self.location
                    ),
                });
            }
            if empty > 0 {
                tracing::warn!(
                    "Delta sink: batch {batch}: {empty} row(s) with the empty string in \
                     partition column `{column}` are stored as null: a Delta table keeps \
                     partition values as text in its log, where an empty one stands for null, \
                     so Spark, delta-rs and DuckDB read them back as null. To keep them apart \
                     from nulls, {keep}"
                );
            }
        }
        Ok(())
    }

    /// The newest row of each key, in the order the rows came (update mode).
    fn newest_by_key(&self, batches: &[RecordBatch]) -> Result<RecordBatch, SinkError> {
        let schema = batches
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| self.error("no output schema"))?;
        let all = concat_batches(&schema, batches).map_err(|e| self.error(e))?;
        // A float key as PostgreSQL compares it: every NaN one key, `-0.0` as `0.0`, in the
        // rows written too, so that the merge of a later batch finds them.
        let mut columns = all.columns().to_vec();
        let mut keys = Vec::with_capacity(self.key.len());
        for k in &self.key {
            let index = schema
                .index_of(k)
                .map_err(|_| self.error(super::key_not_in_query(k, &schema)))?;
            columns[index] = crate::floats::normalized_array(&columns[index]);
            keys.push(Arc::clone(&columns[index]));
        }
        let all = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| self.error(e))?;
        let converter = RowConverter::new(
            keys.iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )
        .map_err(|e| self.error(e))?;
        let rows = converter
            .convert_columns(&keys)
            .map_err(|e| self.error(e))?;
        let mut newest = HashMap::with_capacity(all.num_rows());
        for i in 0..all.num_rows() {
            newest.insert(rows.row(i).owned(), u32::try_from(i).unwrap_or(u32::MAX));
        }
        let mut picked: Vec<u32> = newest.into_values().collect();
        picked.sort_unstable();
        // As PostgreSQL's sink says it (audit 92b: Delta kept the last row unsaid).
        if picked.len() < all.num_rows() {
            tracing::warn!(
                "Delta sink: {} rows gave way to another row of their key (`key: [{}]`) in the \
                 same batch: one row of each key was merged, the last the batch gave, and \
                 which one that is is not fixed (a batch's files are read in parallel). Where \
                 the newest by a column of the rows is meant, pick it in the query: `SELECT \
                 DISTINCT ON ({}) ... ORDER BY {}, <time column> DESC`",
                all.num_rows() - picked.len(),
                self.key.join(", "),
                self.key.join(", "),
                self.key.join(", "),
            );
        }
        let indices = UInt32Array::from(picked);
        let columns = all
            .columns()
            .iter()
            .map(|c| take(c, &indices, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        RecordBatch::try_new(schema, columns).map_err(|e| self.error(e))
    }

    /// Writes `data` in one commit carrying `properties`; the table as the write left it.
    async fn write(
        &self,
        table: DeltaTable,
        exists: bool,
        data: Vec<RecordBatch>,
        properties: CommitProperties,
    ) -> Result<DeltaTable, DeltaTableError> {
        match self.mode {
            Mode::Update if exists => {
                let source_rows = self
                    .newest_by_key(&data)
                    .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
                let columns: Vec<String> = source_rows
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let source = datafusion::prelude::SessionContext::new()
                    .read_batch(source_rows)
                    .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
                let side =
                    |alias: &str, name: &str| -> Expr { col(Column::new(Some(alias), name)) };
                let predicate = self
                    .key
                    .iter()
                    .map(|k| {
                        binary_expr(
                            side("target", k),
                            Operator::IsNotDistinctFrom,
                            side("source", k),
                        )
                    })
                    .reduce(Expr::and)
                    .ok_or_else(|| DeltaTableError::Generic("no key".into()))?;
                // Columns the query gained (`allow_output_schema_change`) join the table.
                let merge = table
                    .merge(source, predicate)
                    .with_source_alias("source")
                    .with_target_alias("target")
                    .with_merge_schema(true)
                    .with_commit_properties(properties)
                    .when_matched_update(|update| {
                        columns.iter().fold(update, |u, c| {
                            u.update(Column::new_unqualified(c), side("source", c))
                        })
                    })?
                    .when_not_matched_insert(|insert| {
                        columns.iter().fold(insert, |i, c| {
                            i.set(Column::new_unqualified(c), side("source", c))
                        })
                    })?;
                merge.await.map(|(table, _)| table)
            }
            Mode::Update | Mode::Append | Mode::Complete => {
                let data = if self.mode == Mode::Update {
                    vec![
                        self.newest_by_key(&data)
                            .map_err(|e| DeltaTableError::Generic(e.to_string()))?,
                    ]
                } else {
                    data
                };
                let mut write = table
                    .write(data)
                    .with_save_mode(if self.mode == Mode::Complete {
                        SaveMode::Overwrite
                    } else {
                        SaveMode::Append
                    })
                    .with_commit_properties(properties)
                    // The query's columns changed (`allow_output_schema_change`): complete mode
                    // replaces the table's schema with the new output's, the others add the
                    // new columns to it.
                    .with_schema_mode(if self.mode == Mode::Complete {
                        SchemaMode::Overwrite
                    } else {
                        SchemaMode::Merge
                    });
                if !exists && !self.partition_by.is_empty() {
                    write = write.with_partition_columns(self.partition_by.clone());
                }
                write.await
            }
        }
    }

    /// Refuses, before the first batch, a table this sink cannot write as the pipeline asks,
    /// found otherwise only as a batch commits (planned, and failing each time): column
    /// mapping (`delta.columnMapping.mode`, which delta-rs does not write), an append-only
    /// table (`delta.appendOnly`) in update or complete mode (which remove files), and a
    /// `NOT NULL` column the query gives no value for (one with a generation expression is
    /// computed).
    fn check_table_properties(
        &self,
        table: &DeltaTable,
        schema: &SchemaRef,
    ) -> Result<(), SinkError> {
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        let configuration = snapshot.metadata().configuration();
        let set = |key: &str| configuration.get(key).map(|v| v.to_ascii_lowercase());
        if let Some(mode) = set("delta.columnmapping.mode")
            .or_else(|| set("delta.columnMapping.mode"))
            .filter(|m| m != "none")
        {
            return Err(self.config(format!(
                "the table uses column mapping (`delta.columnMapping.mode: {mode}`), which \
                 delta-rs, Sluice's Delta writer, cannot write yet (its rows would be written \
                 under names the table does not read): give the pipeline a new table (a new \
                 `sink.path`), or write this one with Spark"
            )));
        }
        // Writer features delta-rs does not write (identity columns, a newer one): found
        // otherwise only as the first batch commits, exit 1 with delta-rs's words at every
        // run (audit 94b).
        if let Err(e) = deltalake::kernel::transaction::PROTOCOL.can_write_to(snapshot) {
            return Err(self.config(format!(
                "the table's protocol asks its writers for what delta-rs, Sluice's Delta writer, \
                 does not support ({e}; the table's writer version {}): give the pipeline a new \
                 table (a new `sink.path`), or write this one with Spark",
                snapshot.protocol().min_writer_version()
            )));
        }
        if self.mode != Mode::Append && set("delta.appendOnly").as_deref() == Some("true") {
            return Err(self.config(format!(
                "the table is append-only (`delta.appendOnly: true`), and {} mode rewrites the \
                 table's files, which such a table refuses: use `output_mode: append`, give \
                 the pipeline a new table, or set the property to false (`ALTER TABLE ... SET \
                 TBLPROPERTIES ('delta.appendOnly' = 'false')`)",
                if self.mode == Mode::Update {
                    "update"
                } else {
                    "complete"
                }
            )));
        }
        let held = snapshot.snapshot().arrow_schema();
        let missing: Vec<String> = held
            .fields()
            .iter()
            .filter(|f| !f.is_nullable() && schema.field_with_name(f.name()).is_err())
            .filter(|f| !f.metadata().contains_key("delta.generationExpression"))
            .map(|f| format!("`{}`", f.name()))
            .collect();
        if !missing.is_empty() {
            return Err(self.config(format!(
                "the table's column(s) {} hold no null (NOT NULL), and the query gives them no \
                 value, so every row would be refused: add them to the query (`... AS {}`), or \
                 let the table take nulls there",
                missing.join(", "),
                missing[0].trim_matches('`'),
            )));
        }
        Ok(())
    }

    /// Commits batch version `version` with no data change where `table`, as a write left
    /// it, does not hold it (the write made no commit of its own).
    async fn commit_version_alone(
        &self,
        table: DeltaTable,
        version: i64,
        properties: CommitProperties,
    ) -> Result<(), SinkError> {
        if self.held(&table).await?.is_some_and(|held| held >= version) {
            return Ok(());
        }
        let snapshot = table.snapshot().map_err(|e| self.error(e))?;
        CommitBuilder::from(properties)
            .build(
                Some(snapshot),
                table.log_store(),
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: None,
                    predicate: None,
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| self.error(format!("committing batch {version} (no rows): {e}")))
    }

    /// Reads the rows of one data file of the table, in `schema`'s column types (partition
    /// columns from the log's partition values).
    async fn read_file(
        &self,
        table: &DeltaTable,
        file: &AddedFile,
        schema: &SchemaRef,
    ) -> Result<Vec<RecordBatch>, String> {
        use object_store::ObjectStoreExt as _;
        let path =
            object_store::path::Path::from_url_path(&file.path).map_err(|e| e.to_string())?;
        let bytes = table
            .object_store()
            .get(&path)
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes,
            )
            .and_then(|b| b.build())
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for read in reader {
            let read = read.map_err(|e| e.to_string())?;
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
            for field in schema.fields() {
                let column = match read.schema().index_of(field.name()) {
                    Ok(i) => Arc::clone(read.column(i)),
                    Err(_) => match file.partition_values.get(field.name()) {
                        Some(value) => {
                            let text: ArrayRef = Arc::new(StringArray::from(vec![
                                value.as_deref();
                                read.num_rows()
                            ]));
                            // Written in the table's type (a zoned time as UTC text without
                            // its zone): read as that, then given the query's type below.
                            let strict = CastOptions {
                                safe: false,
                                ..CastOptions::default()
                            };
                            cast_with_options(&text, &delta_type(field.data_type())?, &strict)
                                .map_err(|e| {
                                    format!("partition value {value:?} of `{}`: {e}", field.name())
                                })?
                        }
                        None => {
                            return Err(format!("has no column `{}`", field.name()));
                        }
                    },
                };
                columns.push(column);
            }
            let plain = RecordBatch::try_new(
                Arc::new(Schema::new(
                    columns
                        .iter()
                        .zip(schema.fields())
                        .map(|(c, f)| Field::new(f.name(), c.data_type().clone(), true))
                        .collect::<Vec<_>>(),
                )),
                columns,
            )
            .map_err(|e| e.to_string())?;
            out.push(crate::digest::conform(&plain, schema).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    async fn read_held(&self, batch: BatchId, schema: &SchemaRef) -> Result<HeldBatch, SinkError> {
        if self.mode == Mode::Update {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "reading a batch back (`sluice replay --verify`) in update mode (its \
                            rows were merged into the table's)",
            });
        }
        let (table, exists) = self.table().await?;
        if !exists {
            return Ok(HeldBatch::Missing(format!(
                "{} is not a Delta table (it has no _delta_log)",
                self.location
            )));
        }
        let held = self.held(&table).await?;
        let wanted = i64::try_from(batch.0).unwrap_or(i64::MAX);
        if self.mode == Mode::Complete
            && let Some(newest) = held
            && newest > wanted
        {
            return Ok(HeldBatch::Missing(format!(
                "{}: in complete mode batch {newest}'s table has replaced batch {batch}'s",
                self.location
            )));
        }
        let commit = match self.find_commit(&table, batch).await? {
            Lookup::Found(commit) => commit,
            Lookup::NotWritten => {
                return Ok(HeldBatch::Missing(format!(
                    "{}: batch {batch} is not in the table's log (taken back, or never written \
                     by this pipeline)",
                    self.location
                )));
            }
            Lookup::Expired => {
                return Ok(HeldBatch::Missing(format!(
                    "{}: batch {batch}'s log entry is past the table's log retention",
                    self.location
                )));
            }
            Lookup::Lost { later } => {
                return Ok(HeldBatch::Unreadable {
                    file: format!("{}/_delta_log", self.location),
                    reason: format!(
                        "has no commit of batch {batch}, though it has batch {later}'s: the \
                         entry was deleted, or the log restored from an older copy, and its \
                         rows are not in the table"
                    ),
                });
            }
        };
        // A commit a RESTORE undid, or a file no longer in the table, holds none of the
        // batch's rows there (read from the disk, it would verify rows the table has lost).
        if let Some((restore, to)) = self.undone_by_restore(&table, commit.version).await? {
            return Ok(HeldBatch::Unreadable {
                file: format!("{}/_delta_log", self.location),
                reason: format!(
                    "version {restore} (RESTORE to version {to}) took batch {batch}'s commit out \
                     of the table, and its rows with it"
                ),
            });
        }
        let active = self.active_files(&table)?;
        let paths: Vec<&str> = commit
            .adds
            .iter()
            .map(|a| a.path.as_str())
            .filter(|path| !is_active(&active, path))
            .collect();
        let removals = if paths.is_empty() {
            HashMap::new()
        } else {
            self.removals(&table, commit.version, &paths).await?
        };
        if let Some((path, removal)) = removals.iter().min_by_key(|(_, r)| r.version) {
            // Rows a RESTORE took out are a sink that no longer holds the batch (as a rewind
            // takes them: already taken back); rows moved into other files (OPTIMIZE) are
            // there, but not to be read by batch, and so are those a row-level edit (DELETE,
            // UPDATE, MERGE) rewrote, or another writer's overwrite replaced: what it took
            // out or changed it did so on purpose, and writing the batch again would bring it
            // back (walk 125 (5): an overwrite with the same rows was said to have taken them
            // out, and the rewind advised was refused as over a rewritten file).
            let edit = ["DELETE", "UPDATE", "MERGE"]
                .iter()
                .any(|op| removal.operation.eq_ignore_ascii_case(op));
            if removal.data_change && removal.operation.eq_ignore_ascii_case("RESTORE") {
                return Ok(HeldBatch::Unreadable {
                    file: format!("{}/{path}", self.location),
                    reason: format!(
                        "is no longer in the table: version {} ({}) took it out, and batch \
                         {batch}'s rows with it",
                        removal.version, removal.operation
                    ),
                });
            }
            let rows = if edit {
                "the rows it took out or changed are so on purpose, and the rest are in other \
                 files now, which cannot be read back by batch"
            } else if removal.data_change {
                "the table's files were replaced by that commit (an overwrite), so what the \
                 table holds now is what its writer put there, on purpose, which cannot be \
                 read back by batch"
            } else {
                "its rows are in other files now, with other batches' rows, and cannot be read \
                 back by batch"
            };
            return Ok(HeldBatch::Missing(format!(
                "{}: batch {batch}'s file {path} was rewritten by version {} ({}): {rows}",
                self.location, removal.version, removal.operation
            )));
        }
        let mut files = Vec::new();
        let mut batches = Vec::new();
        for file in &commit.adds {
            // As the folder and file are named, not as the log encodes them (walk 83).
            let name = format!("{}/{}", self.location, decode_path(&file.path));
            match self.read_file(&table, file, schema).await {
                Ok(read) => batches.extend(read),
                Err(reason) => return Ok(HeldBatch::Unreadable { file: name, reason }),
            }
            files.push(name);
        }
        Ok(HeldBatch::Rows { files, batches })
    }
}

#[async_trait]
impl Sink for DeltaSink {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    async fn commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError> {
        let rows = output.num_rows();
        let data = self.conform(batch, &output)?;
        let version = i64::try_from(batch.0).map_err(|e| self.error(e))?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (table, exists) = self.table().await?;
            let held = if exists {
                self.held(&table).await?
            } else {
                None
            };
            // Walk 125 (1): a RESTORE since this batch's commit (a pending batch the table
            // took before the run stopped) took its rows out, though the table's transaction
            // version still says it holds them: refused, but in complete mode, whose batch
            // replaces the whole table, and is written again.
            let restored = match held.is_some_and(|held| held >= version) {
                true => self.restored_past(&table, batch).await?,
                false => None,
            };
            let rewrite = restored.is_some();
            if let Some(restored) = restored.filter(|_| self.mode != Mode::Complete) {
                return Err(self.restored_error(restored, batch, table.version()));
            }
            if held.is_some_and(|held| held >= version) && !rewrite {
                // Written by a copy of this checkpoint, not by an earlier try of this batch?
                if let Lookup::Found(commit) = self.find_commit(&table, batch).await?
                    && let Some((label, epoch)) = &commit.writer
                {
                    super::check_no_copy(
                        KIND.name,
                        &self.location.to_string(),
                        batch,
                        (label, *epoch),
                        (&self.label, fence.epoch()),
                    )?;
                }
                return Ok(SinkCommit {
                    rows,
                    written: false,
                });
            }
            // The table's own partitioning where it has one (made elsewhere, say, or by
            // another writer since the last attempt).
            let columns = if exists {
                self.table_partition_columns(&table)?
            } else {
                self.partition_by.clone()
            };
            if attempts == 1 || columns != self.partition_by {
                self.check_partition_values(batch, &data, &columns)?;
            }
            // This pipeline's first commit into the table: another pipeline that committed
            // into it since this run opened it (two pipelines started together on one new
            // path) owns it now, as the preflight would have said.
            // In complete mode, every batch: a newer checkpoint of this pipeline that took the
            // table over since stops this run at its next batch.
            let first = held.is_none();
            let newest = if exists && (first || self.mode == Mode::Complete) {
                self.newest_writer(&table).await?
            } else {
                None
            };
            if let Some((owner, owner_label)) = newest
                && owner != self.pipeline
            {
                if self.mode == Mode::Complete && super::retired_by(&self.label, &owner_label) {
                    return Err(retired(&self.location, owner_label));
                }
                if first && !takes_over(self.mode, &owner_label, &self.label) {
                    return Err(SinkError::ForeignFolder {
                        location: self.location.to_string(),
                        owner,
                        owner_label,
                        ours: self.pipeline,
                    });
                }
            }
            // A newer run stops this one before anything becomes visible.
            fence
                .check()
                .await
                .map_err(|e| SinkError::Fenced(Box::new(e)))?;
            let properties = CommitProperties::default()
                // A table made by this commit that another writer made first (two pipelines
                // started together on one new path) is not written after it by delta-rs
                // (which would check only that the two do not conflict as data): it is tried
                // again here, after the check above. Into a table that is there, delta-rs's
                // own retries stand (other writers may be appending).
                .with_max_retries(if exists { DELTA_RETRIES } else { 0 })
                .with_application_transaction(Transaction::new(&self.app_id, version))
                .with_metadata([
                    (
                        "sluice.pipeline".to_string(),
                        self.pipeline.to_string().into(),
                    ),
                    ("sluice.label".to_string(), self.label.clone().into()),
                    ("sluice.batch".to_string(), batch.0.into()),
                    ("sluice.epoch".to_string(), fence.epoch().0.into()),
                    ("sluice.rows".to_string(), rows.into()),
                ]);
            // The columns the table holds no null in, to name one a row breaks.
            let not_null = not_null_columns(&table);
            let data = match kept_not_null(&data, &not_null) {
                Ok(kept) => kept,
                Err(_) => return Err(self.invalid_rows(batch, &not_null, &data, None)),
            };
            match self
                .write(table, exists, data.clone(), properties.clone())
                .await
            {
                Ok(written) => {
                    // delta-rs makes no commit for a MERGE that changes nothing (a batch with
                    // no rows): the batch's version is then committed alone, so that the
                    // table says it holds the batch.
                    if self.mode == Mode::Update {
                        self.commit_version_alone(written, version, properties)
                            .await?;
                    }
                    return Ok(SinkCommit {
                        rows,
                        written: true,
                    });
                }
                Err(e) if lost_race(&e) && attempts < CONFLICT_ATTEMPTS => {
                    // Once is the way of a shared table; more is said (walk 61: a run waited
                    // through every try without a word).
                    if attempts >= 2 {
                        tracing::warn!(
                            "{}: batch {batch}: another writer's commit overtook this batch's \
                             {attempts} times in a row; reading the table again and trying \
                             again ({attempts} of {CONFLICT_ATTEMPTS} tries)",
                            self.location
                        );
                    } else {
                        tracing::debug!(%batch, "Delta commit lost a race, loading again: {e}");
                    }
                    // Another writer committing as fast as this one loads: a pause, longer
                    // each time, lets this one's commit through.
                    let pause = 50 * (1 << attempts.min(6)) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(CommitConflictError::ConcurrentAppend),
                }) if self.mode == Mode::Update => {
                    return Err(self.error(format!(
                        "writing batch {batch}: another writer's commits to the table kept \
                         overtaking this batch's merge ({CONFLICT_ATTEMPTS} tries, each read \
                         again): by Delta's conflict rules a merge must read what is appended \
                         while it runs (only a commit marked a blind append, as Spark marks its \
                         appends, passes where the table's `delta.isolationLevel` is \
                         WriteSerializable; delta-rs's appends are not marked so), so update \
                         mode needs the table to itself while it merges: pause the other \
                         writer, or give it a table of its own, and run again (the batch is \
                         finished as it was planned)"
                    )));
                }
                Err(e)
                    if ["failed validation check", "validation check failed"]
                        .iter()
                        .any(|words| e.to_string().contains(words)) =>
                {
                    return Err(self.invalid_rows(batch, &not_null, &data, Some(&e)));
                }
                Err(e) => return Err(self.error(format!("writing batch {batch}: {e}"))),
            }
        }
    }

    async fn held_digest(
        &self,
        batch: BatchId,
        schema: &SchemaRef,
    ) -> Result<Option<crate::digest::OutputDigest>, SinkError> {
        if self.mode == Mode::Update {
            return Ok(None);
        }
        match self.read_held(batch, schema).await? {
            HeldBatch::Rows { batches, .. } => crate::digest::digest(&batches)
                .map(Some)
                .map_err(|e| self.error(format!("hashing the rows read back: {e}"))),
            HeldBatch::Missing(_) | HeldBatch::Unreadable { .. } => Ok(None),
        }
    }

    async fn read_batch(&self, batch: BatchId, schema: &SchemaRef) -> Result<HeldBatch, SinkError> {
        self.read_held(batch, schema).await
    }

    async fn forget_batch(&self, batch: BatchId) -> Result<u64, SinkError> {
        self.take_back(batch, false).await
    }

    async fn check_take_back(&self, batch: BatchId) -> Result<(), SinkError> {
        self.take_back(batch, true).await.map(|_| ())
    }

    async fn owner(&self) -> Result<Option<uuid::Uuid>, SinkError> {
        let (table, exists) = self.table().await?;
        if !exists {
            return Ok(None);
        }
        Ok(self.newest_writer(&table).await?.map(|(id, _)| id))
    }

    /// Walk 125 (3): a complete-mode table deleted (or one holding an older batch than
    /// `last`, its log restored from an older copy) stayed so, exit 0, until new input came;
    /// the run writes it again whole from the state, as a files sink's lost result is.
    async fn table_gone(&self, last: BatchId) -> Result<Option<String>, SinkError> {
        if self.mode != Mode::Complete {
            return Ok(None);
        }
        let (table, exists) = self.table().await?;
        let held = match exists {
            true => self.held(&table).await?,
            false => None,
        };
        let wanted = i64::try_from(last.0).unwrap_or(i64::MAX);
        Ok(held
            .is_none_or(|h| h < wanted)
            .then(|| format!("the Delta table {}", self.location)))
    }

    async fn check_held(&self, last: BatchId) -> Result<(), SinkError> {
        // A complete-mode batch rewrites the whole table: the next one mends a lost commit.
        if self.mode == Mode::Complete {
            return Ok(());
        }
        let (table, exists) = self.table().await?;
        let held = if exists {
            self.held(&table).await?
        } else {
            None
        };
        let wanted = i64::try_from(last.0).unwrap_or(i64::MAX);
        if held.is_some_and(|h| h >= wanted) {
            let Some(restored) = self.restored_past(&table, last).await? else {
                return self.check_files_there(&table).await;
            };
            // Delta keeps the transaction version through a RESTORE: the table says it
            // holds the batches whose rows the RESTORE took out.
            return Err(self.restored_error(restored, last, table.version()));
        }
        let holds = match held.and_then(|h| u64::try_from(h).ok()) {
            Some(h) => format!("holds batches up to {h} only"),
            None => "holds none of its batches".to_string(),
        };
        // In every mode: the table holds none of the batches taken back, so a rewind takes
        // nothing out of it, and the batches are computed again (update mode merges them
        // over what batch `h` left; walk 83: the advice named only a restore or a new start).
        let way_out = match held.and_then(|h| u64::try_from(h).ok()) {
            Some(h) => format!(
                "take the missing batches back, which computes them again from their input: \
                 `sluice rewind <checkpoint> --to {h}`, then run again"
            ),
            _ => "restore the table's log from a backup; or start the pipeline over on a new \
                  checkpoint with a new, empty `sink.path`"
                .to_string(),
        };
        Err(SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "{}: the table {holds}, but the checkpoint committed batches up to {last}: \
                 commits of its _delta_log are gone (deleted, or restored from an older copy), \
                 and running on would leave their rows out; {way_out}",
                self.location
            ),
        })
    }

    async fn summary(&self) -> Result<Option<HeldSummary>, SinkError> {
        let (table, exists) = self.table().await?;
        if !exists {
            return Ok(Some(HeldSummary {
                entries: 0,
                last: None,
            }));
        }
        let Some(held) = self.held(&table).await?.and_then(|v| u64::try_from(v).ok()) else {
            return Ok(Some(HeldSummary {
                entries: 0,
                last: None,
            }));
        };
        let commit = match self.find_commit(&table, BatchId(held)).await? {
            Lookup::Found(commit) => Some(commit),
            _ => None,
        };
        // A commit past the log's retention (its entry cleaned up into a checkpoint of the
        // log) tells no rows or files (walk 125 (8): said as 0 rows).
        Ok(Some(HeldSummary {
            entries: 1,
            last: Some((
                BatchId(held),
                commit.as_ref().and_then(|c| c.rows),
                commit.map(|c| c.adds.len()),
            )),
        }))
    }

    /// Also checks the query's columns against an existing table's (a table Sluice did not
    /// make, or one the query changed since): a column the table holds in another type is
    /// refused unless every value fits it exactly (a wider integer or float), as Spark's
    /// Delta writer refuses it, where delta-rs would cast (a `bigint` into a `float` loses
    /// digits); a column the table lacks joins it only with `allow_output_schema_change`
    /// (Spark's `mergeSchema`). Complete mode replaces the table's columns.
    async fn check_output(&self, schema: &SchemaRef, new_columns: bool) -> Result<(), SinkError> {
        for field in schema.fields() {
            check_column_name(field).map_err(|e| self.error(e))?;
        }
        // Delta tells column names apart regardless of case: two such columns of the query
        // failed each batch in delta-rs's words (walk 111: "Duplicate field name
        // (case-insensitive)").
        for (i, field) in schema.fields().iter().enumerate() {
            if let Some(other) = schema.fields()[..i]
                .iter()
                .find(|f| f.name().eq_ignore_ascii_case(field.name()))
            {
                return Err(self.config(format!(
                    "the query's columns `{}` and `{}` differ only in case, and Delta tells \
                     column names apart regardless of case, so a table cannot hold both: name \
                     one of them otherwise (`... AS {}_2`)",
                    other.name(),
                    field.name(),
                    field.name().to_lowercase()
                )));
            }
        }
        let written = delta_schema(schema).map_err(|e| self.error(e))?;
        let (table, exists) = self.table().await?;
        if exists && !self.partition_by.is_empty() {
            let held = self.table_partition_columns(&table)?;
            if held != self.partition_by {
                return Err(self.config(format!(
                    "the table is partitioned by {held:?}, and `partition_by: {:?}` cannot \
                     change a table's partitioning: leave `partition_by` out (the table's \
                     own is used), write {held:?}, or give the pipeline a new table (a new \
                     `sink.path`)",
                    self.partition_by
                )));
            }
        }
        if exists {
            self.check_table_properties(&table, schema)?;
        }
        if exists && self.mode != Mode::Complete {
            let held = table
                .snapshot()
                .map_err(|e| self.error(e))?
                .snapshot()
                .arrow_schema();
            let (mut added, mut misfits, mut by_case) = (Vec::new(), Vec::new(), Vec::new());
            for field in written.fields() {
                let Ok(column) = held.field_with_name(field.name()) else {
                    // Delta names columns without regard to case: `id` cannot join a table
                    // with `ID` (audit 88b: refused as a new column, then, allowed, failed
                    // every batch in delta-rs's words).
                    if let Some(column) = held
                        .fields()
                        .iter()
                        .find(|c| c.name().eq_ignore_ascii_case(field.name()))
                    {
                        by_case.push(format!(
                            "`{}` (the table's `{}`: `... AS {}`)",
                            field.name(),
                            column.name(),
                            crate::vocab::sql_identifier(column.name())
                        ));
                        continue;
                    }
                    added.push(format!(
                        "`{}` {}",
                        field.name(),
                        crate::format::sql_type_name(field.data_type())
                    ));
                    continue;
                };
                if !fits_column(field.data_type(), column.data_type()) {
                    misfits.push((field, column));
                }
            }
            if !by_case.is_empty() {
                return Err(self.config(format!(
                    "the query's column{} {} differ from the table's only in case, and Delta \
                     tells column names apart regardless of case, so they can neither be \
                     written into those nor added beside them. Name each as the table does, \
                     in double quotes (SQL keeps case only in quotes: an unquoted alias is \
                     lower-cased), or {NEW_TABLE}",
                    if by_case.len() == 1 { "" } else { "s" },
                    by_case.join(", ")
                )));
            }
            // Every column that does not fit, in one refusal (not one a run).
            match misfits.as_slice() {
                [] => {}
                [(field, column)] => {
                    return Err(self.config(format!(
                        "the query's column `{}` is {}, but the table's is {}: appended, its \
                         values would be cast and changed, or the batch fail. Where its values \
                         fit the table's type, write it as that (`{}` in the query); where they \
                         do not (a cast to INT of 5000000000 fails), the table cannot hold them: {NEW_TABLE}",
                        field.name(),
                        crate::format::sql_type_name(field.data_type()),
                        crate::format::sql_type_name(column.data_type()),
                        as_type(field.name(), column.data_type()),
                    )));
                }
                many => {
                    let columns: Vec<String> = many
                        .iter()
                        .map(|(field, column)| {
                            format!(
                                "`{}` is {} (the table's is {}: `{}`)",
                                field.name(),
                                crate::format::sql_type_name(field.data_type()),
                                crate::format::sql_type_name(column.data_type()),
                                as_type(field.name(), column.data_type()),
                            )
                        })
                        .collect();
                    return Err(self.config(format!(
                        "{} of the query's columns are not of the table's types: {}. Appended, \
                         their values would be cast and changed, or the batch fail. Where their \
                         values fit the table's types, write each as that (the cast given beside \
                         it, in the query); where they do not, the table cannot hold them: \
                         {NEW_TABLE}",
                        many.len(),
                        columns.join("; "),
                    )));
                }
            }
            if !added.is_empty() && !new_columns {
                // The table's columns the query no longer writes: with the new ones added they
                // stay, null in the rows written from then on (a rename is one of each).
                let left: Vec<String> = held
                    .fields()
                    .iter()
                    .filter(|f| written.field_with_name(f.name()).is_err())
                    .map(|f| format!("`{}`", f.name()))
                    .collect();
                let left = match left.as_slice() {
                    [] => String::new(),
                    [one] => format!(
                        ". The table's column {one}, which the query does not write, stays in \
                         the table beside them, null in the rows written from now on (the \
                         rows already there keep its values, and are null in the new columns): \
                         where a column was renamed, give it its old name in the query \
                         (`... AS {}`) to write on into it",
                        crate::vocab::sql_identifier(one.trim_matches('`'))
                    ),
                    many => format!(
                        ". The table's columns {}, which the query does not write, stay in the \
                         table beside them, null in the rows written from now on (the rows \
                         already there keep their values, and are null in the new columns): \
                         where columns were renamed, give them their old names in the query to \
                         write on into them",
                        many.join(", ")
                    ),
                };
                return Err(self.config(format!(
                    "the table has no column {} of the query's: set \
                     `allow_output_schema_change: true` to add them to the table (Spark's \
                     `mergeSchema`), or leave them out of the query{left}",
                    added.join(", ")
                )));
            }
        }
        for (what, columns) in [("key", &self.key), ("partition_by", &self.partition_by)] {
            for c in columns {
                if schema.index_of(c).is_err() {
                    return Err(self.error(format!(
                        "`{what}` column `{c}` is not a column of the query"
                    )));
                }
            }
        }
        // Audit 92b: a partition of 1e-300 made a folder name of 300 digits, longer than a
        // file name may be, and every run failed on it. Refused for a new table; a table
        // already partitioned so keeps its partitioning (the review).
        let new_table = !self.table().await?.1;
        for c in self.partition_by.iter().filter(|_| new_table) {
            if let Ok(field) = schema.field_with_name(c)
                && matches!(
                    field.data_type(),
                    DataType::Float16 | DataType::Float32 | DataType::Float64
                )
            {
                return Err(self.config(format!(
                    "`partition_by` column `{c}` is a {}: a partition's folder is named by its \
                     value's text, which delta-rs spells out in full (1e-300 as 300 digits, \
                     longer than a file name may be), and each distinct value makes a folder \
                     of its own. Partition by a column of few whole values made in the query \
                     (`CAST({c} AS BIGINT) AS {c}_bucket`, a decimal, or a date)",
                    crate::format::sql_type_name(field.data_type())
                )));
            }
        }
        Ok(())
    }
}

/// The way to a table of the query's own columns: a new table needs a new checkpoint too,
/// or the batches before stay in the old one (walk 102).
const NEW_TABLE: &str = "give the pipeline a new table, a new `sink.path` with a new \
                         `checkpoint:` (which writes every batch into it again; with this \
                         checkpoint, only the batches from now on would go there)";

/// The query's column `name` written as `table_type`, as SQL (`CAST(amount AS DOUBLE)`; a time
/// with a zone by `AT TIME ZONE`, which a cast to `TIMESTAMP WITH TIME ZONE` is not here).
fn as_type(name: &str, table_type: &datafusion::arrow::datatypes::DataType) -> String {
    use datafusion::arrow::datatypes::DataType;
    match table_type {
        DataType::Timestamp(_, Some(zone)) => format!("{name} AT TIME ZONE '{zone}'"),
        DataType::Timestamp(_, None) => format!("CAST({name} AS TIMESTAMP)"),
        other => format!(
            "CAST({name} AS {})",
            crate::format::sql_type_name(other).to_uppercase()
        ),
    }
}

/// Whether a column the sink writes as `written` (a Delta type, [`delta_type`]) goes into a
/// table's column of type `held` with every value kept: the same type (nested types by their
/// fields' types, whatever their names), or a wider integer or float (Delta's type widening).
fn fits_column(written: &DataType, held: &DataType) -> bool {
    use DataType::{Float32, Float64, Int8, Int16, Int32, Int64};
    match (written, held) {
        (Int8, Int16 | Int32 | Int64 | Float32 | Float64)
        | (Int16, Int32 | Int64 | Float32 | Float64)
        | (Int32, Int64 | Float64)
        | (Float32, Float64) => true,
        (DataType::Timestamp(_, a), DataType::Timestamp(_, b)) => a.is_some() == b.is_some(),
        // As many digits before the point and after it, or more (walk 111: `decimal(10,2)`
        // into `decimal(12,3)` was refused, though every value fits).
        (DataType::Decimal128(p, s), DataType::Decimal128(held_p, held_s)) => {
            held_s >= s && i16::from(*held_p) - i16::from(*held_s) >= i16::from(*p) - i16::from(*s)
        }
        (DataType::List(a), DataType::List(b) | DataType::LargeList(b)) => {
            fits_column(a.data_type(), b.data_type())
        }
        (DataType::Struct(a), DataType::Struct(b)) => a.iter().all(|field| {
            b.iter()
                .find(|f| f.name() == field.name())
                .is_some_and(|f| fits_column(field.data_type(), f.data_type()))
        }),
        (DataType::Map(a, _), DataType::Map(b, _)) => match (a.data_type(), b.data_type()) {
            (DataType::Struct(a), DataType::Struct(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| fits_column(x.data_type(), y.data_type()))
            }
            _ => false,
        },
        (DataType::Utf8, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        | (DataType::Binary, DataType::Binary | DataType::LargeBinary | DataType::BinaryView) => {
            true
        }
        _ => written == held,
    }
}

/// Characters no column name of a Delta table without column mapping holds (Parquet's schema
/// syntax): Spark's Delta ("Found invalid character(s) among ' ,;{}()\n\t='") and
/// delta-kernel refuse them; delta-rs writes them, into a table those cannot read.
const NOT_IN_COLUMN_NAMES: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// Refuses a column (or a struct field inside it) whose name holds a character of
/// [`NOT_IN_COLUMN_NAMES`], with the alias to give it (`count(*) AS count`).
fn check_column_name(field: &Field) -> Result<(), String> {
    let name = field.name();
    if name.contains(NOT_IN_COLUMN_NAMES) {
        let alias = name
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let alias = if alias.is_empty() {
            "value".into()
        } else {
            alias
        };
        return Err(format!(
            "column `{}` has a name a Delta table cannot hold (a space, tab, newline or one of \
             `,;{{}}()=`: Spark's Delta refuses such names): name it in the query, `... AS \
             {alias}` (for example `count(*) AS cnt`; a table that already holds batches under \
             the old name takes the new one with `allow_output_schema_change: true`, or write \
             to a new `sink.path`)",
            name.escape_debug()
        ));
    }
    match field.data_type() {
        DataType::Struct(fields) => fields.iter().try_for_each(|f| check_column_name(f)),
        DataType::List(item) | DataType::LargeList(item) => check_column_name(item),
        _ => Ok(()),
    }
}

/// The type Delta keeps a column of `data_type` in; an error naming what Delta has no type
/// for. Timestamps are microseconds (Delta's `timestamp_ntz`, or `timestamp` with a zone, kept
/// as UTC); unsigned integers widen to the next signed type that holds every value (`UInt64`
/// to `decimal(20,0)`); dictionaries are their values; views their plain types.
fn delta_type(data_type: &DataType) -> Result<DataType, String> {
    Ok(match data_type {
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Dictionary(_, value) => delta_type(value)?,
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        // Every u64 fits a decimal of 20 digits; none fits past 2^63 in a long.
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32 => data_type.clone(),
        DataType::Decimal128(precision, _) if *precision <= 38 => data_type.clone(),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => DataType::List(Arc::new(Field::new(
            item.name(),
            delta_type(item.data_type())?,
            true,
        ))),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Ok(Field::new(f.name(), delta_type(f.data_type())?, true)))
                .collect::<Result<Fields, String>>()?,
        ),
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!("{data_type} has no key and value"));
            };
            let fields = kv
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    // A map's key is never null.
                    Ok(Field::new(f.name(), delta_type(f.data_type())?, i > 0))
                })
                .collect::<Result<Fields, String>>()?;
            DataType::Map(
                Arc::new(Field::new(entries.name(), DataType::Struct(fields), false)),
                *sorted,
            )
        }
        other => return Err(format!("{other}")),
    })
}

/// The table's schema for output of `schema`: every column nullable, in Delta's types; an
/// error naming the first column Delta has no type for.
fn delta_schema(schema: &SchemaRef) -> Result<SchemaRef, String> {
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let data_type = delta_type(field.data_type()).map_err(|inner| {
            let within = if inner == field.data_type().to_string() {
                String::new()
            } else {
                format!(" (it holds {inner})")
            };
            let cast = if inner.starts_with("Decimal") {
                "a decimal of at most 38 digits (`CAST(... AS DECIMAL(38, 2))`) or a double"
            } else {
                "a time to text, a duration or interval to a number of seconds"
            };
            format!(
                "column `{}` is {}{within}, which Delta Lake has no type for; cast it in the \
                 query ({cast})",
                field.name(),
                field.data_type()
            )
        })?;
        fields.push(Field::new(field.name(), data_type, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// `batch` in `schema`'s types; a value that does not fit (a `UInt64` past `Int64`, a time
/// finer than the microsecond) is an error naming its column, never a null or a cut.
fn delta_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    super::kept::to_kept(batch, schema, "Delta Lake")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 111: `decimal(10,2)` into a table's `decimal(12,3)` was refused, though every
    /// value fits; one with fewer digits either side of the point is not.
    #[test]
    fn a_decimal_fits_a_column_with_as_many_digits_either_side_of_the_point() {
        use DataType::Decimal128;
        assert!(fits_column(&Decimal128(10, 2), &Decimal128(12, 3)));
        assert!(fits_column(&Decimal128(10, 2), &Decimal128(10, 2)));
        assert!(!fits_column(&Decimal128(10, 2), &Decimal128(10, 3)));
        assert!(!fits_column(&Decimal128(10, 2), &Decimal128(12, 1)));
    }

    #[test]
    fn types_map_to_delta_and_a_type_it_has_none_for_is_named() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new(
                "at_utc",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
                true,
            ),
            Field::new("name", DataType::Utf8View, true),
        ]));
        let delta = delta_schema(&schema).expect("delta schema");
        let types: Vec<DataType> = delta
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Decimal128(20, 0),
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                DataType::Utf8,
            ]
        );
        let bad = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("took", DataType::Duration(TimeUnit::Second), true),
        ]));
        let e = delta_schema(&bad).expect_err("refused");
        assert!(e.starts_with("column `took` is Duration(s)"), "{e}");
    }

    #[test]
    fn every_unsigned_value_keeps_its_value() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::UInt64, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(datafusion::arrow::array::UInt64Array::from(vec![
                1,
                u64::MAX,
            ]))],
        )
        .expect("batch");
        let target = delta_schema(&schema).expect("schema");
        let held = delta_batch(&batch, &target).expect("every u64 fits");
        let back =
            datafusion::arrow::compute::cast(held.column(0), &DataType::UInt64).expect("back");
        assert_eq!(back.as_ref(), batch.column(0).as_ref());
        let wide = Arc::new(Schema::new(vec![Field::new(
            "d",
            DataType::Decimal256(40, 2),
            true,
        )]));
        let e = delta_schema(&wide).expect_err("refused");
        assert!(e.contains("a decimal of at most 38 digits"), "{e}");
    }
}
