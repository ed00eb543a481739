//! The console sink: prints each batch for a person to read. Not idempotent: a re-run batch
//! prints again.

use async_trait::async_trait;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::{BatchOutput, Sink, SinkCommit, SinkError};
use crate::checkpoint::{BatchId, Fence};

/// Prints each batch's rows to standard output.
#[derive(Debug)]
pub struct ConsoleSink {
    max_rows: usize,
}

impl ConsoleSink {
    /// A console sink that prints at most `max_rows` rows per batch.
    pub fn new(max_rows: Option<usize>) -> Self {
        Self {
            max_rows: max_rows.unwrap_or(20),
        }
    }
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn commit(
        &self,
        batch: BatchId,
        _fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError> {
        let batches: Vec<_> = output.partitions.into_iter().flatten().collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut shown = Vec::new();
        let mut left = self.max_rows;
        for b in &batches {
            if left == 0 {
                break;
            }
            let take = left.min(b.num_rows());
            shown.push(b.slice(0, take));
            left -= take;
        }
        let table = pretty_format_batches(&shown).map_err(|e| SinkError::Encode {
            batch,
            format: "text",
            reason: e.to_string(),
        })?;
        let more = if rows > self.max_rows {
            format!("\n(showing {} of {rows} rows)", self.max_rows)
        } else {
            String::new()
        };
        println!(
            "-------------------------------------------\nBatch: {batch}\n-------------------------------------------\n{table}{more}"
        );
        Ok(SinkCommit {
            rows: rows as u64,
            written: true,
        })
    }
}
