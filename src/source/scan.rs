//! A batch's input as a table that reads it while the query runs, so a batch's resident
//! memory depends on how much is in flight, not on how much the batch reads (design §3.4).
//!
//! The table has a fixed number of partitions (the batch's pinned `target_partitions`), each
//! a list of parts (a source's files) read one after the other: at most one part per
//! partition is decoded at a time, and DataFusion pulls its record batches as it consumes
//! them. What the reading counts (rows, skipped rows, unknown fields, files) is only known
//! once the query has consumed every partition: [`ScanCounts`] fills in as parts are read.
//!
//! A part that fails keeps its [`SourceError`] in the counts (DataFusion carries only text
//! through its plan), so the driver can report the error as the source's, with its advice.
//!
//! Each part is counted once, however often the plan reads it (a query that reads a stream
//! twice, `UNION ALL` of two filters of it), and a part the plan never read (a join whose other
//! side was empty, a filter folded to nothing) is read when the batch settles its counts
//! ([`ScanCounts::finish`]), so the counts and the checks of every file (changed, gone, a
//! malformed row) are those of the whole batch, as when it was read whole.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use super::{Decoded, SourceError};

/// Reads one part of a batch's input (one file) into its rows, in the table's schema.
pub type ReadPart = Arc<dyn Fn() -> BoxFuture<'static, Result<Decoded, SourceError>> + Send + Sync>;

/// What a streamed read has counted so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Rows read.
    pub rows: u64,
    /// Malformed rows skipped.
    pub skipped: u64,
    /// Rows with a field the schema does not know.
    pub unknown_rows: u64,
    /// The names of those fields.
    pub unknown_fields: BTreeSet<String>,
    /// Parts (files) read.
    pub files: u64,
}

/// The counts of one source's streamed read, shared by its partitions, and the first error
/// a part met.
#[derive(Debug, Default)]
pub struct ScanCounts {
    counts: Mutex<Counts>,
    error: Mutex<Option<SourceError>>,
    /// Every part, in order, and whether it has been counted.
    parts: Vec<Part>,
    counted: Mutex<Vec<bool>>,
}

impl ScanCounts {
    /// What has been read so far.
    pub fn counts(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The error of the first part that failed, taken out.
    pub fn take_error(&self) -> Option<SourceError> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Reads (and counts, dropping the rows) every part the query did not read, one at a
    /// time; then the counts are the whole batch's. A part's error is the error.
    pub async fn finish(&self) -> Result<Counts, SourceError> {
        if let Some(error) = self.take_error() {
            return Err(error);
        }
        for (index, part) in self.parts.iter().enumerate() {
            if self.is_counted(index) {
                continue;
            }
            let decoded = (part.read)().await?;
            self.add(index, &decoded);
        }
        Ok(self.counts())
    }

    fn is_counted(&self, index: usize) -> bool {
        self.counted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .copied()
            .unwrap_or(true)
    }

    /// Counts part `index` as `decoded` read it, unless it is counted already.
    fn add(&self, index: usize, decoded: &Decoded) {
        {
            let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            match counted.get_mut(index) {
                Some(done) if !*done => *done = true,
                _ => return,
            }
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.rows += decoded.rows;
        counts.skipped += decoded.skipped;
        counts.unknown_rows += decoded.unknown_rows;
        counts
            .unknown_fields
            .extend(decoded.unknown_fields.iter().cloned());
        counts.files += 1;
    }

    /// Keeps `error` (the first one only) and returns what DataFusion carries instead.
    fn fail(&self, error: SourceError) -> DataFusionError {
        let text = error.to_string();
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(error);
        }
        DataFusionError::External(text.into())
    }
}

/// A table over a batch's input that reads its parts as the query runs.
#[derive(Debug)]
pub struct StreamedTable {
    schema: SchemaRef,
    /// Each partition's parts, as indices into the counts' parts.
    partitions: Arc<Vec<Vec<usize>>>,
    counts: Arc<ScanCounts>,
}

/// One part, named for plans and messages, with its size in bytes (the statistics the
/// planner puts the smaller side of a join on the build side by).
#[derive(Clone)]
struct Part {
    name: String,
    size: u64,
    read: ReadPart,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl StreamedTable {
    /// A table of `schema` over `parts` (each named, with its size in bytes and how to read
    /// it), in their order, spread over `partitions` partitions in contiguous runs (the first
    /// parts in the first partition), so that the same parts and the same number give the
    /// same partitions. At least one partition, even without parts. Returns the table and
    /// its counts.
    pub fn new(
        schema: SchemaRef,
        parts: Vec<(String, u64, ReadPart)>,
        partitions: usize,
    ) -> (Self, Arc<ScanCounts>) {
        let n = partitions.clamp(1, parts.len().max(1));
        let total = parts.len();
        let mut spread: Vec<Vec<usize>> = (0..n).map(|_| Vec::new()).collect();
        for i in 0..total {
            // Partition p holds parts [p * total / n, (p + 1) * total / n).
            spread[i * n / total].push(i);
        }
        let counts = Arc::new(ScanCounts {
            parts: parts
                .into_iter()
                .map(|(name, size, read)| Part { name, size, read })
                .collect(),
            counted: Mutex::new(vec![false; total]),
            ..ScanCounts::default()
        });
        let table = Self {
            schema,
            partitions: Arc::new(spread),
            counts: Arc::clone(&counts),
        };
        (table, counts)
    }
}

#[async_trait]
impl TableProvider for StreamedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => Arc::clone(&self.schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(self.partitions.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(StreamedScanExec {
            schema,
            projection: projection.cloned(),
            partitions: Arc::clone(&self.partitions),
            counts: Arc::clone(&self.counts),
            properties: Arc::new(properties),
        }))
    }
}

/// The plan node of a [`StreamedTable`]: partition `p` reads its parts in order.
#[derive(Debug)]
struct StreamedScanExec {
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    partitions: Arc<Vec<Vec<usize>>>,
    counts: Arc<ScanCounts>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for StreamedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let parts: usize = self.partitions.iter().map(Vec::len).sum();
        write!(
            f,
            "StreamedScanExec: partitions={}, parts={parts}",
            self.partitions.len()
        )
    }
}

impl ExecutionPlan for StreamedScanExec {
    fn name(&self) -> &'static str {
        "StreamedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    #[allow(deprecated)]
    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let parts: Vec<usize> = match partition {
            Some(p) => self.partitions.get(p).cloned().unwrap_or_default(),
            None => self.partitions.iter().flatten().copied().collect(),
        };
        let bytes: u64 = parts.iter().map(|&i| self.counts.parts[i].size).sum();
        let mut statistics = Statistics::new_unknown(&self.schema);
        // The files' bytes, as stored: an estimate of the table's size, enough for the
        // planner to build a join's hash table from the smaller side (a static table).
        statistics.total_byte_size =
            Precision::Inexact(usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(Arc::new(statistics))
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let parts = self.partitions.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "StreamedScanExec has {} partitions, not {}",
                self.partitions.len(),
                partition + 1
            ))
        })?;
        let counts = Arc::clone(&self.counts);
        let projection = self.projection.clone();
        let stream = futures::stream::iter(parts)
            .then(move |index| {
                let counts = Arc::clone(&counts);
                let projection = projection.clone();
                async move {
                    let read = Arc::clone(&counts.parts[index].read);
                    let decoded = read().await.map_err(|e| counts.fail(e))?;
                    counts.add(index, &decoded);
                    let batches = decoded.batches.into_iter().map(move |b| match &projection {
                        Some(indices) => b.project(indices).map_err(DataFusionError::from),
                        None => Ok(b),
                    });
                    Ok::<_, DataFusionError>(futures::stream::iter(batches))
                }
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}
