//! The connector contract suite (in the style of object_store's `integration.rs`): one
//! function every source kind passes and one every sink kind passes, each run here for every
//! kind in the registries. A new connector adds a fixture and one call.
//!
//! A source: the same rows for the same range, every time and from a reopened source; ranges
//! compose; a projection reads the same rows; a forgotten batch plans again to the same rows;
//! a range whose data is gone is an error naming it.
//!
//! A sink: exactly once through repeated and interrupted commits; the batch reads back as
//! written; a forgotten batch can be written again; its log stays bounded by the purge.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use sluice::checkpoint::{BatchId, Checkpoint};
use sluice::sink::{BatchOutput, HeldBatch, SinkConnector, SinkContext, SinkError};
use sluice::source::{Admission, Source, SourceConnector, SourceError};
use sluice::storage::{Location, StoreHook};

use crate::common::{rows, rows_in_order};

/// A kind of source under test: its connector, and what the suite may do to its input.
pub trait SourceFixture {
    /// The source's connector, as a pipeline file configures it.
    fn connector(&self) -> Arc<dyn SourceConnector>;
    /// Makes more input available, round `round` of three; false for a kind whose input is
    /// all there from the start (a generator).
    fn add_input(&mut self, round: usize) -> bool;
    /// Removes input that the planned batches read, and returns what an error reading it must
    /// name; `None` for a kind whose input cannot go away.
    fn lose_input(&mut self) -> Option<String>;
}

async fn read(
    source: &dyn Source,
    start: Option<&serde_json::Value>,
    end: &serde_json::Value,
    columns: Option<&[String]>,
) -> Result<(Vec<RecordBatch>, u64), SourceError> {
    let input = source.read(start, end, columns).await?;
    let rows = input.rows;
    Ok((input.partitions.into_iter().flatten().collect(), rows))
}

/// The contract every source kind passes, over an empty checkpoint at `checkpoint`.
pub async fn source_contract(fixture: &mut dyn SourceFixture, checkpoint: &Location) {
    let connector = fixture.connector();
    let kind = connector.kind();
    let open = || async {
        connector
            .open("s", checkpoint, None, false)
            .await
            .unwrap_or_else(|e| panic!("{kind}: open: {e}"))
    };
    let mut source = open().await;
    let mut ends: Vec<serde_json::Value> = Vec::new();
    for round in 0..3 {
        let added = fixture.add_input(round);
        if round > 0 && !added {
            break;
        }
        let schema = source.resolve_schema().await.expect("resolve schema");
        assert!(schema.is_some(), "{kind}: input makes the schema known");
        loop {
            let batch = BatchId(ends.len() as u64);
            let planned = source
                .plan(batch, ends.last(), Admission::SourceLimits)
                .await
                .unwrap_or_else(|e| panic!("{kind}: plan batch {batch}: {e}"));
            match planned {
                Some(end) => ends.push(end),
                None => break,
            }
            assert!(ends.len() < 100, "{kind}: planning never runs dry");
        }
    }
    assert!(
        ends.len() >= 2,
        "{kind}: the fixture gives at least two batches"
    );
    let ranges: Vec<(Option<&serde_json::Value>, &serde_json::Value)> = ends
        .iter()
        .enumerate()
        .map(|(i, end)| (i.checked_sub(1).map(|p| &ends[p]), end))
        .collect();

    // The same rows for the same range, every time, and from a reopened source.
    let mut first_reads = Vec::new();
    for (i, (start, end)) in ranges.iter().enumerate() {
        let (batches, count) = read(source.as_ref(), *start, end, None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: read batch {i}: {e}"));
        let again = read(source.as_ref(), *start, end, None)
            .await
            .expect("again");
        assert_eq!(
            rows_in_order(&batches),
            rows_in_order(&again.0),
            "{kind}: batch {i} twice"
        );
        let n = batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        assert!(n > 0, "{kind}: batch {i} has rows");
        assert_eq!(count, n, "{kind}: batch {i} counts the rows it read");
        first_reads.push(batches);
    }
    let reopened = open().await;
    for (i, (start, end)) in ranges.iter().enumerate() {
        let (batches, _) = read(reopened.as_ref(), *start, end, None)
            .await
            .expect("reopened read");
        assert_eq!(
            rows_in_order(&batches),
            rows_in_order(&first_reads[i]),
            "{kind}: batch {i} from a reopened source"
        );
    }

    // Ranges compose: the batches together are the range from the start to the last end.
    let whole = read(source.as_ref(), None, ends.last().expect("ends"), None)
        .await
        .expect("whole range");
    let parts: Vec<RecordBatch> = first_reads.iter().flatten().cloned().collect();
    assert_eq!(rows(&whole.0), rows(&parts), "{kind}: ranges compose");

    // A projection reads the same rows' columns, in the order asked; none at all, the count.
    let schema = source.schema().expect("schema");
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let asked: Vec<String> = names.iter().rev().cloned().collect();
    let (start, end) = ranges[0];
    let (projected, _) = read(source.as_ref(), start, end, Some(&asked))
        .await
        .expect("projection");
    let full: Vec<RecordBatch> = first_reads[0]
        .iter()
        .map(|b| {
            let indices: Vec<usize> = asked
                .iter()
                .map(|c| b.schema().index_of(c).expect("column"))
                .collect();
            b.project(&indices).expect("project")
        })
        .collect();
    assert_eq!(
        rows_in_order(&projected),
        rows_in_order(&full),
        "{kind}: projection"
    );
    assert_eq!(
        projected
            .first()
            .map(|b| b.schema().field(0).name().clone()),
        asked.first().cloned(),
        "{kind}: the columns come in the order asked"
    );
    let (counted, n) = read(source.as_ref(), start, end, Some(&[]))
        .await
        .expect("no columns");
    let counted_rows: usize = counted.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(
        counted_rows as u64, n,
        "{kind}: a read of no columns counts rows"
    );
    assert_eq!(
        counted_rows,
        full.iter().map(RecordBatch::num_rows).sum::<usize>()
    );

    for i in 0..ends.len() {
        source
            .commit(BatchId(i as u64), BatchId(0))
            .await
            .unwrap_or_else(|e| panic!("{kind}: commit {i}: {e}"));
    }

    // A forgotten batch plans again to the same range.
    let last = BatchId(ends.len() as u64 - 1);
    match connector.forget_batch("s", checkpoint, last).await {
        Ok(_) => {
            let mut again = open().await;
            again.resolve_schema().await.expect("schema");
            let before = ranges[ranges.len() - 1].0;
            let end = again
                .plan(last, before, Admission::SourceLimits)
                .await
                .expect("plan again")
                .unwrap_or_else(|| panic!("{kind}: a forgotten batch has input again"));
            let (batches, _) = read(again.as_ref(), before, &end, None)
                .await
                .expect("read");
            assert_eq!(
                rows_in_order(&batches),
                rows_in_order(&first_reads[ranges.len() - 1]),
                "{kind}: a forgotten batch plans again to the same rows"
            );
        }
        Err(SourceError::NotSupported { kind: k, .. }) => assert_eq!(k, kind),
        Err(e) => panic!("{kind}: forget batch {last}: {e}"),
    }

    // A range whose data is gone is an error naming it.
    if let Some(named) = fixture.lose_input() {
        let reopened = open().await;
        let (start, end) = ranges[0];
        let err = read(reopened.as_ref(), start, end, None)
            .await
            .expect_err("a range whose data is gone")
            .to_string();
        assert!(
            err.contains(&named),
            "{kind}: the error names {named}: {err}"
        );
    }
}

fn settings(yaml: &str) -> serde_yaml::Mapping {
    serde_yaml::from_str(yaml).expect("settings")
}

fn checkpoint(dir: &std::path::Path) -> Location {
    Location::open(&dir.join("ckpt").display().to_string(), true, false, None).expect("ckpt")
}

/// JSON-lines files in a folder, two per round, one per batch.
struct FilesFixture {
    dir: std::path::PathBuf,
    written: Vec<std::path::PathBuf>,
}

impl SourceFixture for FilesFixture {
    fn connector(&self) -> Arc<dyn SourceConnector> {
        let yaml = format!(
            "path: {}\nformat: json\nmax_files_per_batch: 1",
            self.dir.join("in").display()
        );
        sluice::source::configure("files", "s", &settings(&yaml)).expect("files")
    }

    fn add_input(&mut self, round: usize) -> bool {
        let folder = self.dir.join("in");
        std::fs::create_dir_all(&folder).expect("in/");
        for file in 0..2 {
            let path = folder.join(format!("part-{round}-{file}.jsonl"));
            let text: String = (0..5)
                .map(|row| {
                    format!(
                        "{{\"id\":{},\"name\":\"r{round}f{file}\"}}\n",
                        row * 10 + file
                    )
                })
                .collect();
            std::fs::write(&path, text).expect("input file");
            self.written.push(path);
        }
        true
    }

    fn lose_input(&mut self) -> Option<String> {
        let first = self.written.first()?;
        std::fs::remove_file(first).expect("remove");
        Some(first.file_name()?.to_string_lossy().to_string())
    }
}

/// The rate generator, started in the past so that every row is due.
struct RateFixture;

impl SourceFixture for RateFixture {
    fn connector(&self) -> Arc<dyn SourceConnector> {
        let yaml = "rows_per_second: 1000\nstart_time: 2020-01-01T00:00:00Z\n\
                    max_rows_per_batch: 700\nmax_rows: 2000";
        sluice::source::configure("rate", "s", &settings(yaml)).expect("rate")
    }

    fn add_input(&mut self, _round: usize) -> bool {
        false
    }

    fn lose_input(&mut self) -> Option<String> {
        None
    }
}

/// The Nexmark generator's bids: every event exists from the start.
struct NexmarkFixture;

impl SourceFixture for NexmarkFixture {
    fn connector(&self) -> Arc<dyn SourceConnector> {
        let yaml = "table: bid\nseed: 5\nmax_events_per_batch: 700\nmax_events: 2000";
        sluice::source::configure("nexmark", "s", &settings(yaml)).expect("nexmark")
    }

    fn add_input(&mut self, _round: usize) -> bool {
        false
    }

    fn lose_input(&mut self) -> Option<String> {
        None
    }
}

#[tokio::test]
async fn the_files_source_keeps_the_source_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The folder exists before its first file: a source may start empty.
    std::fs::create_dir_all(dir.path().join("in")).expect("in/");
    let mut fixture = FilesFixture {
        dir: dir.path().to_path_buf(),
        written: Vec::new(),
    };
    source_contract(&mut fixture, &checkpoint(dir.path())).await;
}

#[tokio::test]
async fn the_rate_source_keeps_the_source_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    source_contract(&mut RateFixture, &checkpoint(dir.path())).await;
}

#[tokio::test]
async fn the_nexmark_source_keeps_the_source_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    source_contract(&mut NexmarkFixture, &checkpoint(dir.path())).await;
}

#[test]
fn every_registered_source_kind_has_a_contract_test() {
    let tested = ["files", "rate", "nexmark", "kafka", "nats"];
    for kind in sluice::source::KINDS {
        assert!(
            tested.contains(&kind.name),
            "source kind `{}` has no contract test in tests/it/contract.rs",
            kind.name
        );
    }
}

/// A kind of sink under test: its connector, and an independent reader of what it shows.
#[async_trait::async_trait]
pub trait SinkFixture: Send + Sync {
    /// The sink's connector, as a pipeline file configures it.
    fn connector(&self) -> Arc<dyn SinkConnector>;
    /// The rows a reader of the sink sees now (a plain reader, not Sluice's); `None` for a
    /// sink that keeps nothing to read.
    async fn visible_rows(&self) -> Option<Vec<String>>;
    /// How many entries the sink's own log holds; `None` for a sink with no log.
    fn log_entries(&self) -> Option<usize>;
    /// Whether the sink writes through the stores a [`StoreHook`] wraps, so that the suite
    /// can interrupt its commits there (a Kafka sink's crash points are its transaction's
    /// steps, enumerated in `tests/it/kafka.rs`).
    fn interrupted_through_stores(&self) -> bool {
        true
    }
}

/// A store that fails its `fail_at`-th write (a put, copy, rename or delete; 1-based), as a
/// crash or a lost connection there would, and lets every other call through.
#[derive(Debug)]
struct Interrupting {
    inner: Arc<dyn object_store::ObjectStore>,
    writes: Arc<std::sync::atomic::AtomicU64>,
    fail_at: u64,
}

impl std::fmt::Display for Interrupting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interrupting({})", self.inner)
    }
}

impl Interrupting {
    fn hook(fail_at: u64) -> (StoreHook, Arc<std::sync::atomic::AtomicU64>) {
        let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&writes);
        let hook: StoreHook = Arc::new(move |inner| {
            Arc::new(Interrupting {
                inner,
                writes: Arc::clone(&counter),
                fail_at,
            }) as Arc<dyn object_store::ObjectStore>
        });
        (hook, writes)
    }

    fn write(&self) -> object_store::Result<()> {
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n == self.fail_at {
            return Err(object_store::Error::Generic {
                store: "interrupting",
                source: format!("interrupted at write {n}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for Interrupting {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.write()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.write()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &object_store::path::Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        if let Err(e) = self.write() {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.write()?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.write()?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// Batch output of rows `first..first+rows`: `id` (bigint) and `name` (`row <id>`).
pub fn output(first: i64, rows: i64) -> BatchOutput {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (first..first + rows).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .expect("batch");
    BatchOutput {
        schema,
        partitions: vec![vec![batch]],
    }
}

fn expected_rows(batches: &[(i64, i64)]) -> Vec<String> {
    let mut rows: Vec<String> = batches
        .iter()
        .flat_map(|(first, n)| (*first..first + n).map(|i| format!("{i}|row {i}")))
        .collect();
    rows.sort();
    rows
}

/// The contract every sink kind passes; `checkpoint` is an empty folder for the fence.
pub async fn sink_contract(fixture: &dyn SinkFixture, checkpoint: &Location) {
    let connector = fixture.connector();
    let kind = connector.kind();
    let run = Checkpoint::open(checkpoint.clone(), "contract")
        .await
        .expect("checkpoint");
    let fence = run.fence();
    let ctx = SinkContext {
        label: "",
        pipeline: run.metadata().id,
        replace: false,
        update: false,
        part: None,
        create: true,
        sync: false,
        hook: None,
    };
    let sink = connector.open(&ctx).expect("open");

    // Exactly once through a repeated commit.
    let first = sink
        .commit(BatchId(0), &fence, output(0, 5))
        .await
        .expect("commit 0");
    assert_eq!((first.rows, first.written), (5, true), "{kind}: batch 0");
    let again = sink
        .commit(BatchId(0), &fence, output(0, 5))
        .await
        .expect("commit 0 again");
    if fixture.visible_rows().await.is_some() {
        assert!(!again.written, "{kind}: a repeated batch writes nothing");
    }
    if let Some(rows) = fixture.visible_rows().await {
        assert_eq!(rows, expected_rows(&[(0, 5)]), "{kind}: batch 0 once");
    }

    // Exactly once through a commit interrupted at each of its writes in turn, then retried.
    let mut interruptions = 0;
    for fail_at in 1.. {
        assert!(
            fail_at < 100,
            "{kind}: a commit makes fewer than 100 writes"
        );
        let (hook, _) = Interrupting::hook(fail_at);
        let interrupted = connector
            .open(&SinkContext {
                label: "",
                hook: Some(&hook),
                ..ctx
            })
            .expect("open");
        let result = interrupted.commit(BatchId(1), &fence, output(5, 3)).await;
        if let Some(rows) = fixture.visible_rows().await {
            let before = expected_rows(&[(0, 5)]);
            let after = expected_rows(&[(0, 5), (5, 3)]);
            assert!(
                rows == before || rows == after,
                "{kind}: interrupted at write {fail_at}, a reader sees a part of batch 1: {rows:?}"
            );
        }
        let retried = connector.open(&ctx).expect("open");
        retried
            .commit(BatchId(1), &fence, output(5, 3))
            .await
            .unwrap_or_else(|e| panic!("{kind}: retry after write {fail_at}: {e}"));
        if let Some(rows) = fixture.visible_rows().await {
            assert_eq!(
                rows,
                expected_rows(&[(0, 5), (5, 3)]),
                "{kind}: interrupted at write {fail_at} and retried, batch 1 once"
            );
        }
        if result.is_ok() {
            break;
        }
        interruptions += 1;
        // Take batch 1 back for the next crash point (where the sink can).
        match sink.forget_batch(BatchId(1)).await {
            Ok(_) => {}
            Err(SinkError::NotSupported { .. }) => break,
            Err(e) => panic!("{kind}: forget batch 1: {e}"),
        }
    }

    if fixture.visible_rows().await.is_some() && fixture.interrupted_through_stores() {
        assert!(
            interruptions > 1,
            "{kind}: a commit was interrupted at its writes"
        );
    }

    // The batch reads back as written.
    match sink.read_batch(BatchId(0), &output(0, 0).schema).await {
        Ok(HeldBatch::Rows { batches, .. }) => {
            assert_eq!(
                rows(&batches),
                expected_rows(&[(0, 5)]),
                "{kind}: read back"
            );
        }
        Ok(other) => panic!("{kind}: batch 0 reads back as {other:?}"),
        Err(SinkError::NotSupported { kind: k, .. }) => {
            assert_eq!(k, kind);
            assert!(
                fixture.visible_rows().await.is_none(),
                "{kind}: a sink that keeps rows reads them back"
            );
        }
        Err(e) => panic!("{kind}: read back: {e}"),
    }

    // A forgotten batch is gone, and is written again when committed again.
    match sink.forget_batch(BatchId(1)).await {
        Ok(_) => {
            if let Some(rows) = fixture.visible_rows().await {
                assert_eq!(rows, expected_rows(&[(0, 5)]), "{kind}: batch 1 forgotten");
            }
            let again = sink
                .commit(BatchId(1), &fence, output(5, 3))
                .await
                .expect("again");
            assert!(again.written, "{kind}: a forgotten batch is written again");
        }
        Err(SinkError::NotSupported { kind: k, .. }) => assert_eq!(k, kind),
        Err(e) => panic!("{kind}: forget batch 1: {e}"),
    }

    // The sink's log stays bounded: what the purge lets go is gone.
    for batch in 2..12_i64 {
        sink.commit(BatchId(batch as u64), &fence, output(batch * 10, 1))
            .await
            .expect("commit");
        sink.purge(BatchId((batch as u64).saturating_sub(2)))
            .await
            .expect("purge");
    }
    if let Some(entries) = fixture.log_entries() {
        assert!(
            entries <= 3,
            "{kind}: {entries} log entries kept for 2 retained batches"
        );
    }
    if let Some(rows) = fixture.visible_rows().await {
        let mut all = vec![(0, 5), (5, 3)];
        all.extend((2..12).map(|b| (b * 10, 1)));
        assert_eq!(rows, expected_rows(&all), "{kind}: every batch once");
    }
}

/// A files sink writing Parquet into a folder.
struct FilesSinkFixture {
    out: std::path::PathBuf,
}

#[async_trait::async_trait]
impl SinkFixture for FilesSinkFixture {
    fn connector(&self) -> Arc<dyn SinkConnector> {
        let yaml = format!("path: {}\nformat: parquet", self.out.display());
        sluice::sink::configure("files", &settings(&yaml)).expect("files sink")
    }

    async fn visible_rows(&self) -> Option<Vec<String>> {
        Some(crate::common::sink_rows(&self.out).await)
    }

    fn log_entries(&self) -> Option<usize> {
        let manifests = self.out.join("_sluice").join("manifest");
        Some(std::fs::read_dir(manifests).map_or(0, |d| d.count()))
    }
}

/// The console sink: prints, keeps nothing.
struct ConsoleFixture;

#[async_trait::async_trait]
impl SinkFixture for ConsoleFixture {
    fn connector(&self) -> Arc<dyn SinkConnector> {
        sluice::sink::configure("console", &settings("max_rows: 3")).expect("console")
    }

    async fn visible_rows(&self) -> Option<Vec<String>> {
        None
    }

    fn log_entries(&self) -> Option<usize> {
        None
    }
}

#[tokio::test]
async fn the_files_sink_keeps_the_sink_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = FilesSinkFixture {
        out: dir.path().join("out"),
    };
    sink_contract(&fixture, &checkpoint(dir.path())).await;
}

#[tokio::test]
async fn the_console_sink_keeps_the_sink_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    sink_contract(&ConsoleFixture, &checkpoint(dir.path())).await;
}

#[test]
fn every_registered_sink_kind_has_a_contract_test() {
    let tested = ["files", "console", "kafka", "postgres", "delta"];
    for kind in sluice::sink::KINDS {
        assert!(
            tested.contains(&kind.name),
            "sink kind `{}` has no contract test in tests/it/contract.rs",
            kind.name
        );
    }
}
