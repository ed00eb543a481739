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
//! A part may also say, as data, how another process reads it (its remote form): then the
//! scan can be sent to `sluice worker` processes (`engine: distributed`). What a worker reads
//! comes back as the plan's metrics (`sluice_*` counters labelled with the scan and part),
//! which the driver takes in with [`ScanCounts::add_read_elsewhere`]; a part whose counts do not
//! come back is read again here when the batch settles, so the counts never depend on them.
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
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, Label, MetricBuilder, MetricValue, MetricsSet,
};
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
    /// Names this read in the metrics of a plan run elsewhere (a random id).
    id: String,
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
            tracing::debug!(part = %part.name, "reading a part the query did not, to count it");
            let decoded = (part.read)().await?;
            self.add(index, &decoded);
        }
        Ok(self.counts())
    }

    /// Takes in what other processes read of this scan, as the metrics `metrics` of the plan
    /// that ran there give it (every node's sets, per task): each part read there is counted
    /// here (once, however often it was read) and not read again by [`ScanCounts::finish`].
    pub fn add_read_elsewhere(&self, metrics: &[MetricsSet]) {
        let mut by_part: std::collections::BTreeMap<usize, (u64, Counts)> = Default::default();
        for set in metrics {
            for metric in set.iter() {
                let MetricValue::Count { name, count } = metric.value() else {
                    continue;
                };
                let label = |key: &str| {
                    metric
                        .labels()
                        .iter()
                        .find(|l| l.name() == key)
                        .map(|l| l.value().to_string())
                };
                if label(SCAN_LABEL).as_deref() != Some(self.id.as_str()) {
                    continue;
                }
                let Some(part) = label(PART_LABEL).and_then(|p| p.parse::<usize>().ok()) else {
                    continue;
                };
                let (reads, counts) = by_part.entry(part).or_default();
                let value = count.value() as u64;
                match name.as_ref() {
                    READS => *reads += value,
                    ROWS => counts.rows += value,
                    SKIPPED => counts.skipped += value,
                    UNKNOWN_ROWS => counts.unknown_rows += value,
                    UNKNOWN_FIELD => {
                        if let Some(field) = label(FIELD_LABEL) {
                            counts.unknown_fields.insert(field);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (part, (reads, counts)) in by_part {
            let Some(local) = self.parts.iter().position(|p| p.index == part) else {
                continue;
            };
            if reads == 0 {
                continue;
            }
            // A part read by several tasks (a query that reads its stream twice) counts once.
            let decoded = Counts {
                rows: counts.rows / reads,
                skipped: counts.skipped / reads,
                unknown_rows: counts.unknown_rows / reads,
                unknown_fields: counts.unknown_fields,
                files: 1,
            };
            self.add_counts(local, &decoded);
        }
    }

    /// How many bytes the scan's parts hold.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
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
        self.add_counts(
            index,
            &Counts {
                rows: decoded.rows,
                skipped: decoded.skipped,
                unknown_rows: decoded.unknown_rows,
                unknown_fields: decoded.unknown_fields.iter().cloned().collect(),
                files: 1,
            },
        );
    }

    /// Counts part `index` as `part` (one part's counts), unless it is counted already.
    fn add_counts(&self, index: usize, part: &Counts) {
        {
            let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            match counted.get_mut(index) {
                Some(done) if !*done => *done = true,
                _ => return,
            }
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.rows += part.rows;
        counts.skipped += part.skipped;
        counts.unknown_rows += part.unknown_rows;
        counts
            .unknown_fields
            .extend(part.unknown_fields.iter().cloned());
        counts.files += part.files;
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

/// The metric labels and names a scan's reads are counted under (module docs).
const SCAN_LABEL: &str = "sluice_scan";
const PART_LABEL: &str = "sluice_part";
const FIELD_LABEL: &str = "sluice_field";
const READS: &str = "sluice_reads";
const ROWS: &str = "sluice_rows";
const SKIPPED: &str = "sluice_skipped";
const UNKNOWN_ROWS: &str = "sluice_unknown_rows";
const UNKNOWN_FIELD: &str = "sluice_unknown_field";

/// One part, named for plans and messages, with its size in bytes (the statistics the
/// planner puts the smaller side of a join on the build side by).
#[derive(Clone)]
struct Part {
    /// The part's name (a file's path under its source's folder).
    name: String,
    /// Its size in bytes.
    size: u64,
    /// How this process reads it.
    read: ReadPart,
    /// How another process reads it, as data its source understands
    /// ([`super::remote_read`]); `None` where only this process can.
    remote: Option<RemoteForm>,
    /// Its index among all the parts of the batch's read of its source (the metrics' key).
    index: usize,
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
        parts: Vec<(String, u64, ReadPart, Option<RemoteForm>)>,
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
            id: uuid::Uuid::new_v4().to_string(),
            parts: parts
                .into_iter()
                .enumerate()
                .map(|(index, (name, size, read, remote))| Part {
                    name,
                    size,
                    read,
                    remote,
                    index,
                })
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

impl StreamedTable {
    /// Where `sought` is in the table's columns ([`super::find_text`]): its parts read
    /// again one at a time, in order, up to the first that holds it (for an error that quotes
    /// a value; a part that does not read now is passed over).
    pub async fn find_text(&self, sought: super::Sought<'_>) -> Option<super::FoundText> {
        for part in &self.counts.parts {
            let Ok(decoded) = (part.read)().await else {
                continue;
            };
            if let Some((column, row, rows)) = super::find_text(&decoded.batches, sought) {
                return Some(super::FoundText {
                    column,
                    part: Some(part.name.clone()),
                    row: Some(row + 1),
                    rows,
                    record: super::record_of_row(&decoded.batches, row),
                });
            }
        }
        None
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
            metrics: ExecutionPlanMetricsSet::new(),
            reports_reads: false,
        }))
    }
}

/// The plan node of a [`StreamedTable`]: partition `p` reads its parts in order.
#[derive(Debug)]
pub struct StreamedScanExec {
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    partitions: Arc<Vec<Vec<usize>>>,
    counts: Arc<ScanCounts>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// Whether it records what it reads in its metrics: a scan built from its remote form
    /// (a worker's task) does, for the driver to count; the driver's own counts directly.
    reports_reads: bool,
}

/// A [`StreamedScanExec`] as data, for another process: its output schema, the projection
/// of the parts' rows, and each partition's parts (with their indices among the scan's).
pub struct ScanParts {
    /// The node's output schema.
    pub schema: SchemaRef,
    /// The columns of a part's rows the node outputs (all where `None`).
    pub projection: Option<Vec<usize>>,
    /// The scan's id (its metrics' label).
    pub id: String,
    /// Each partition's parts.
    pub partitions: Vec<Vec<RemotePart>>,
}

/// A part as data: its index among the scan's parts, its name, its size in bytes, and how
/// another process reads it (its source's remote form).
pub type RemotePart = (usize, String, u64, Arc<serde_json::Value>);

/// A part's remote form, made when first asked for (only a batch that goes to workers asks,
/// so a local run never makes one): `None` where the part cannot be read elsewhere after all.
pub type RemoteForm = Arc<dyn Fn() -> Option<Arc<serde_json::Value>> + Send + Sync>;

impl StreamedScanExec {
    /// The node as data, where every part can be read elsewhere; `None` otherwise.
    pub fn to_parts(&self) -> Option<ScanParts> {
        let partitions = self
            .partitions
            .iter()
            .map(|parts| {
                parts
                    .iter()
                    .map(|&i| {
                        let part = &self.counts.parts[i];
                        let remote = (part.remote.as_ref()?)()?;
                        Some((part.index, part.name.clone(), part.size, remote))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ScanParts {
            schema: Arc::clone(&self.schema),
            projection: self.projection.clone(),
            id: self.counts.id.clone(),
            partitions,
        })
    }

    /// The node that reads `parts`, each part read as `read` makes of its index and remote
    /// form.
    pub fn from_parts(
        parts: ScanParts,
        read: impl Fn(usize, &serde_json::Value) -> Result<ReadPart>,
    ) -> Result<Self> {
        let mut all = Vec::new();
        let mut partitions = Vec::new();
        for list in parts.partitions {
            let mut indices = Vec::new();
            for (index, name, size, remote) in list {
                indices.push(all.len());
                all.push(Part {
                    name,
                    size,
                    read: read(index, &remote)?,
                    remote: Some(Arc::new(move || Some(Arc::clone(&remote)))),
                    index,
                });
            }
            partitions.push(indices);
        }
        let total = all.len();
        let counts = Arc::new(ScanCounts {
            id: parts.id,
            parts: all,
            counted: Mutex::new(vec![false; total]),
            ..ScanCounts::default()
        });
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&parts.schema)),
            Partitioning::UnknownPartitioning(partitions.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        if partitions.is_empty() {
            partitions.push(Vec::new());
        }
        Ok(Self {
            schema: parts.schema,
            projection: parts.projection,
            partitions: Arc::new(partitions),
            counts,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            reports_reads: true,
        })
    }

    /// The scan split into `tasks` scans of the same partitions, task `t` reading whole every
    /// `tasks`-th partition with parts from the `t`-th on (the others empty); `None` where a
    /// part can only be read here.
    ///
    /// Whole partitions, so that each partition's rows meet the query in the same order as
    /// they do here: a partial aggregation over a partition (a sum of doubles, an approximate
    /// percentile) is then the same on a worker as here, and a batch computed on the workers
    /// is the batch `replay` computes here.
    pub fn split(&self, tasks: usize) -> Option<Vec<Self>> {
        let parts = self.to_parts()?;
        let tasks = tasks.max(1);
        let mut split: Vec<ScanParts> = (0..tasks)
            .map(|_| ScanParts {
                schema: Arc::clone(&parts.schema),
                projection: parts.projection.clone(),
                id: parts.id.clone(),
                partitions: vec![Vec::new(); parts.partitions.len()],
            })
            .collect();
        let filled = parts
            .partitions
            .into_iter()
            .enumerate()
            .filter(|(_, list)| !list.is_empty());
        for (n, (p, list)) in filled.enumerate() {
            split[n % tasks].partitions[p] = list;
        }
        let reads: std::collections::HashMap<usize, ReadPart> = self
            .counts
            .parts
            .iter()
            .map(|p| (p.index, Arc::clone(&p.read)))
            .collect();
        // Each variant is sent to a worker, not run here; it keeps this process's readers.
        split
            .into_iter()
            .map(|parts| Self::from_parts(parts, |index, _| Ok(Arc::clone(&reads[&index]))).ok())
            .collect()
    }
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

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
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
        let metrics = self.reports_reads.then(|| self.metrics.clone());
        let stream = futures::stream::iter(parts)
            .then(move |index| {
                let counts = Arc::clone(&counts);
                let projection = projection.clone();
                let metrics = metrics.clone();
                async move {
                    let read = Arc::clone(&counts.parts[index].read);
                    let decoded = read().await.map_err(|e| counts.fail(e))?;
                    counts.add(index, &decoded);
                    if let Some(metrics) = &metrics {
                        count_read(metrics, &counts, index, partition, &decoded);
                    }
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

/// Records part `index` of `counts`, as `decoded` read it in `partition`, in `metrics`: how
/// the driver learns what a worker read (module docs).
fn count_read(
    metrics: &ExecutionPlanMetricsSet,
    counts: &ScanCounts,
    index: usize,
    partition: usize,
    decoded: &Decoded,
) {
    let part = counts.parts[index].index.to_string();
    let counter = |name: &'static str, field: Option<&str>| {
        let mut builder = MetricBuilder::new(metrics)
            .with_label(Label::new(SCAN_LABEL, counts.id.clone()))
            .with_label(Label::new(PART_LABEL, part.clone()));
        if let Some(field) = field {
            builder = builder.with_label(Label::new(FIELD_LABEL, field.to_string()));
        }
        builder.counter(name, partition)
    };
    let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    counter(READS, None).add(1);
    counter(ROWS, None).add(usize_of(decoded.rows));
    counter(SKIPPED, None).add(usize_of(decoded.skipped));
    counter(UNKNOWN_ROWS, None).add(usize_of(decoded.unknown_rows));
    for field in &decoded.unknown_fields {
        counter(UNKNOWN_FIELD, Some(field)).add(1);
    }
}

/// `schema` as an Arrow IPC stream of no batches (how a scan's schema travels to a worker).
pub fn schema_to_ipc(schema: &SchemaRef) -> Result<Vec<u8>> {
    let mut writer =
        datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema.as_ref())?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// The schema of an Arrow IPC stream written by [`schema_to_ipc`].
pub fn schema_from_ipc(bytes: &[u8]) -> std::result::Result<SchemaRef, String> {
    datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map(|reader| reader.schema())
        .map_err(|e| format!("a schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// A part that reads as `rows` rows, with a field the schema does not know.
    fn part(name: &str, rows: u64) -> (String, u64, ReadPart, Option<RemoteForm>) {
        let read: ReadPart = Arc::new(move || {
            Box::pin(async move {
                Ok(Decoded {
                    batches: Vec::new(),
                    rows,
                    skipped: 1,
                    unknown_rows: 1,
                    unknown_fields: ["extra".to_string()].into(),
                })
            })
        });
        let remote = Arc::new(serde_json::json!({ "kind": "test", "rows": rows }));
        let remote: RemoteForm = Arc::new(move || Some(Arc::clone(&remote)));
        (name.to_string(), 100, read, Some(remote))
    }

    #[tokio::test]
    async fn what_workers_read_is_counted_once_and_the_rest_is_read_here() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let (_, counts) =
            StreamedTable::new(schema, vec![part("a", 10), part("b", 20), part("c", 40)], 2);
        let table = StreamedScanExec {
            schema: Arc::new(Schema::empty()),
            projection: None,
            partitions: Arc::new(vec![vec![0, 1], vec![2]]),
            counts: Arc::clone(&counts),
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(Arc::new(Schema::empty())),
                Partitioning::UnknownPartitioning(2),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            metrics: ExecutionPlanMetricsSet::new(),
            reports_reads: false,
        };
        // Two tasks: every part in exactly one, with its index among the scan's.
        let tasks = table.split(2).expect("every part has a remote form");
        let mut seen: Vec<usize> = tasks
            .iter()
            .flat_map(|t| t.counts.parts.iter().map(|p| p.index))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
        // Whole partitions, in place: the first task reads partition 0 (parts 0 and 1), the
        // second partition 1, each keeping the scan's two partitions.
        let indices = |t: &StreamedScanExec| -> Vec<usize> {
            t.counts.parts.iter().map(|p| p.index).collect()
        };
        assert_eq!(indices(&tasks[0]), vec![0, 1]);
        assert_eq!(indices(&tasks[1]), vec![2]);
        assert!(tasks.iter().all(|t| t.partitions.len() == 2));
        assert!(tasks[1].partitions[0].is_empty());
        // The first task reads its parts on a "worker", its first part twice (a query that
        // reads the stream twice); the second task's counts never come back.
        let worker = &tasks[0];
        for (local, part) in worker.counts.parts.iter().enumerate() {
            let decoded = (part.read)().await.expect("reads");
            let times = if local == 0 { 2 } else { 1 };
            for _ in 0..times {
                count_read(&worker.metrics, &worker.counts, local, 0, &decoded);
            }
        }
        // Another scan's metrics are not this one's.
        let (_, other) = StreamedTable::new(Arc::new(Schema::empty()), vec![part("z", 1000)], 1);
        let other_metrics = ExecutionPlanMetricsSet::new();
        let decoded = (other.parts[0].read)().await.expect("reads");
        count_read(&other_metrics, &other, 0, 0, &decoded);

        counts.add_read_elsewhere(&[worker.metrics.clone_inner(), other_metrics.clone_inner()]);
        let read_there: u64 = worker
            .counts
            .parts
            .iter()
            .map(|p| [10, 20, 40][p.index])
            .sum();
        let after_workers = counts.counts();
        assert_eq!(
            after_workers.rows, read_there,
            "a part read twice counts once"
        );
        assert_eq!(after_workers.files, worker.counts.parts.len() as u64);
        assert_eq!(after_workers.skipped, worker.counts.parts.len() as u64);
        assert_eq!(
            after_workers.unknown_fields,
            ["extra".to_string()].into_iter().collect()
        );
        // What did not come back is read here: the whole batch, each part once.
        let all = counts.finish().await.expect("finish");
        assert_eq!(all.rows, 70);
        assert_eq!(all.files, 3);
        assert_eq!(all.skipped, 3);
    }
}
