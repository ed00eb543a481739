//! Sinks (DESIGN 4): making the rows of batch `N` visible exactly once, even when called again
//! with the same `N` after a crash.

mod console;
mod files;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

pub use console::ConsoleSink;
pub use files::{FilesSink, HeldBatch, Manifest, ManifestFile};

use crate::checkpoint::{BatchId, Epoch};
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

/// The output of one batch: a list of record batches per output partition.
pub type BatchOutput = Vec<Vec<RecordBatch>>;

/// A sink that takes each batch exactly once.
#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Makes `output` visible as batch `batch`; does nothing if the sink already has it.
    async fn commit(
        &self,
        batch: BatchId,
        epoch: Epoch,
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
