//! Sinks (docs/design.md §4): making the rows of batch `N` visible exactly once, even when
//! called again with the same `N` after a crash.

mod console;
mod files;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

pub use console::ConsoleSink;
pub use files::{FilesSink, HeldBatch, Manifest, ManifestFile};

use crate::checkpoint::{BatchId, CheckpointError, Fence};
use crate::digest::OutputDigest;
use crate::storage::StorageError;

/// What can go wrong writing a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Encoding the output failed.
    #[error("writing batch {batch} as {format}: {reason}")]
    Encode {
        /// The batch.
        batch: BatchId,
        /// The output format.
        format: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// The output folder holds batches of another pipeline or checkpoint.
    #[error(
        "{location} already holds batch {batch} of another pipeline or checkpoint (id {owner}); \
         give each pipeline and checkpoint its own output folder"
    )]
    Foreign {
        /// The output folder.
        location: String,
        /// The batch found.
        batch: BatchId,
        /// The pipeline id in its manifest.
        owner: uuid::Uuid,
    },
    /// A newer run has taken over (the fence failed): this run writes nothing more.
    #[error(transparent)]
    Fenced(#[from] Box<CheckpointError>),
    /// A run whose batch's manifest entry is gone (purged) would publish over files a run
    /// already published: only a late run of an older epoch can get there.
    #[error(
        "{location}: batch {batch}'s manifest entry was purged long ago and {file} is already \
         published; this run is a late one (a newer run has taken over) and stops without \
         changing anything"
    )]
    AlreadyPublished {
        /// The output folder.
        location: String,
        /// The batch.
        batch: BatchId,
        /// The file that would have been replaced.
        file: String,
    },
    /// The sink's own log is damaged.
    #[error("sink manifest {file} is corrupt: {reason}")]
    Corrupt {
        /// The manifest entry.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a sink did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCommit {
    /// Rows the batch holds in the sink.
    pub rows: u64,
    /// False when the sink already had the batch and wrote nothing.
    pub written: bool,
}

/// The output of one batch: its schema, and a list of record batches per output partition.
#[derive(Debug, Clone)]
pub struct BatchOutput {
    /// The schema of every record batch (what a sink writes even when there is no row).
    pub schema: SchemaRef,
    /// The record batches of each output partition, in partition order.
    pub partitions: Vec<Vec<RecordBatch>>,
}

impl BatchOutput {
    /// The output's rows in partition order, as one list.
    pub fn batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.partitions.iter().flatten()
    }

    /// The number of rows.
    pub fn num_rows(&self) -> u64 {
        self.batches().map(|b| b.num_rows() as u64).sum()
    }
}

/// A sink that takes each batch exactly once.
#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Makes `output` visible as batch `batch`; does nothing if the sink already has it.
    /// `fence` is checked before anything becomes visible: a late run (an older epoch) stops
    /// with [`SinkError::Fenced`] instead.
    async fn commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError>;

    /// The content hash of the rows the sink holds for `batch`, read back in `schema`'s column
    /// types; `None` for a sink that keeps nothing to read back, or no longer has the batch.
    async fn held_digest(
        &self,
        _batch: BatchId,
        _schema: &SchemaRef,
    ) -> Result<Option<OutputDigest>, SinkError> {
        Ok(None)
    }

    /// Batches before `oldest_kept` are committed in the checkpoint and never run again: the
    /// sink may forget what it kept to recognize them (its log stays bounded).
    async fn purge(&self, _oldest_kept: BatchId) -> Result<(), SinkError> {
        Ok(())
    }
}
