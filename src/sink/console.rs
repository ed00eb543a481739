//! The console sink: prints each batch for a person to read. Not idempotent: a re-run batch
//! prints again.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::util::pretty::pretty_format_batches;
use serde::Deserialize;

use super::{BatchOutput, Sink, SinkCommit, SinkConnector, SinkContext, SinkError, SinkKind};
use crate::checkpoint::{BatchId, Fence};
use crate::source::{ConfigError, parse_settings};

/// The console sink in the registry.
pub(super) const KIND: SinkKind = SinkKind {
    name: "console",
    configure,
};

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SinkConnector>, ConfigError> {
    let config: ConsoleConfig = parse_settings(settings)?;
    Ok(Arc::new(config))
}

/// The settings of a console sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// How many rows to print per batch (20 where absent).
    #[serde(default)]
    pub max_rows: Option<usize>,
}

#[async_trait]
impl SinkConnector for ConsoleConfig {
    fn start_over(&self, _rewrites: bool) -> String {
        String::new()
    }
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn prints_to_stdout(&self) -> bool {
        true
    }

    fn open(&self, _ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(ConsoleSink::new(self.max_rows)))
    }
}

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
    fn kind(&self) -> &'static str {
        KIND.name
    }

    async fn commit(
        &self,
        batch: BatchId,
        _fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError> {
        let schema = Arc::clone(&output.schema);
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
        // A batch of no rows shows its columns, as Spark's console sink does.
        if shown.is_empty() {
            shown.push(datafusion::arrow::record_batch::RecordBatch::new_empty(
                schema,
            ));
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
        // Written, not `println!`: a reader that went away (`sluice run ... | head`) fails the
        // batch with a message instead of a panic, and the batch prints again on the next run.
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "-------------------------------------------\nBatch: {batch}\n-------------------------------------------\n{table}{more}"
        )
        .and_then(|()| out.flush())
        .map_err(|e| SinkError::Connector {
            kind: KIND.name,
            error: format!(
                "batch {batch} could not be printed: {e}{}",
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    " (whatever read the output, such as `head`, stopped reading); the batch \
                     stays pending and prints again on the next run"
                } else {
                    ""
                }
            )
            .into(),
        })?;
        Ok(SinkCommit {
            rows: rows as u64,
            written: true,
        })
    }
}
