//! Sources (docs/design.md §3): turning "what is new" into offsets, and an offset range back
//! into the same rows, every time.
//!
//! Invariants:
//! - `read(start, end)` depends only on the offsets and what the source logged for them, never
//!   on what has arrived since;
//! - a source's log entry for batch `N` is written before `offsets/N`, and never changed once
//!   `offsets/N` exists.

mod decode;
mod files;
mod hive;
mod infer;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;

pub use decode::{Decoded, Reader, infer_schema};
pub use files::{FilesSource, load_table, open_folder, peek_schema, rebuild_offset};

use crate::checkpoint::{BatchId, CheckpointError};
use crate::storage::StorageError;

/// What can go wrong reading a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The source's log in the checkpoint is damaged.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A line or row does not parse.
    #[error("{file}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Malformed {
        /// The file.
        file: String,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// The decoder's message.
        reason: String,
    },
    /// A file's columns do not fit the source's schema.
    #[error("{file} does not fit the source's schema: {reason}")]
    SchemaMismatch {
        /// The file.
        file: String,
        /// What differs.
        reason: String,
    },
    /// No schema could be inferred.
    #[error("cannot infer a schema from {file}: {reason}; declare `schema:` for the source")]
    Infer {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The source's folder does not exist.
    #[error("source `{source_name}`: {reason}")]
    Config {
        /// The source.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read while running.
    #[error("reading {file}: {reason}")]
    Read {
        /// The file or folder.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A logged file no longer holds the bytes its batch logged: it is shorter, or the store
    /// identifies it otherwise (another ETag or version, or modification time where the store
    /// gives neither).
    #[error(
        "{file} changed since batch {batch} logged it: {change}; files must not change once \
         written (write elsewhere and rename into place)"
    )]
    FileChanged {
        /// The file.
        file: String,
        /// The batch that logged it.
        batch: BatchId,
        /// What changed: each of size, modification time, ETag and version that differs, as
        /// logged and as it is now.
        change: String,
    },
    /// A logged file is gone, so the batch cannot be recomputed.
    #[error(
        "{file}, read by batch {batch}, is gone; the batch cannot be recomputed. Restore the file"
    )]
    FileGone {
        /// The file.
        file: String,
        /// The batch that read it.
        batch: BatchId,
    },
}

/// How much a batch may take from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Everything available.
    Unlimited,
    /// The source's own limits (`max_files_per_batch`).
    SourceLimits,
}

/// The rows a batch reads from one source.
#[derive(Debug)]
pub struct BatchInput {
    /// The source's schema.
    pub schema: SchemaRef,
    /// Exactly the batch's rows, one partition per file.
    pub partitions: Vec<Vec<RecordBatch>>,
    /// Rows read.
    pub rows: u64,
    /// Malformed rows skipped.
    pub skipped: u64,
    /// Rows with a field the schema does not know (JSON: a top-level field; Parquet: a column).
    pub unknown_rows: u64,
    /// The names of those fields.
    pub unknown_fields: std::collections::BTreeSet<String>,
    /// Files read.
    pub files: u64,
}

impl BatchInput {
    /// A table over the batch's rows.
    pub fn into_table(self) -> Result<Arc<MemTable>, datafusion::error::DataFusionError> {
        MemTable::try_new(self.schema, self.partitions).map(Arc::new)
    }
}

/// A replayable source of rows.
#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The table name the query uses.
    fn name(&self) -> &str;

    /// The schema, once known (declared, pinned in the checkpoint, or inferred).
    fn schema(&self) -> Option<SchemaRef>;

    /// Makes the schema known if it can be (inferring from the first file and pinning it).
    async fn resolve_schema(&mut self) -> Result<Option<SchemaRef>, SourceError>;

    /// Takes the set of available input now; later plans choose only from it
    /// (for `available-now` and `once`).
    async fn freeze(&mut self) -> Result<(), SourceError>;

    /// Plans batch `batch`: logs what it reads and returns its end offset, or `None` when there
    /// is nothing new after `start`. A source with no input yet has no offset: the driver logs
    /// `null` for it, and `start` is absent or `null` until it has one.
    async fn plan(
        &mut self,
        batch: BatchId,
        start: Option<&serde_json::Value>,
        admission: Admission,
    ) -> Result<Option<serde_json::Value>, SourceError>;

    /// The rows in `(start, end]`, the same every time; only the named `columns` (in that
    /// order) where given. `start` absent or `null` is the very beginning; `end` `null` (no
    /// input yet) is an empty range, with the source's schema.
    async fn read(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
    ) -> Result<BatchInput, SourceError>;

    /// Batch `batch` is committed; logs older than `oldest_kept` may be compacted.
    async fn commit(&mut self, batch: BatchId, oldest_kept: BatchId) -> Result<(), SourceError>;
}
