//! The Delta Lake sink, its tables read back by readers independent of Sluice: PyPI
//! `deltalake` (delta-rs's Python reader) and DuckDB (over the same table version as an Arrow
//! dataset), through `tests/readers/delta.py`; compared with the same SQL as one DataFusion
//! batch query over the same input.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice::checkpoint::{BatchId, Checkpoint};
use sluice::sink::{SinkConnector, SinkContext};

use crate::common::*;
use crate::contract::{SinkFixture, output, sink_contract};

/// Which reader reads the table back.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    Deltalake,
    Duckdb,
}

/// The rows of the Delta table in `folder` as `reader` reads them, decoded into `schema`'s
/// types (by column name) and rendered as the oracle renders rows, sorted; none where the
/// folder holds no table yet.
pub fn table_rows(folder: &std::path::Path, reader: Reader, schema: SchemaRef) -> Vec<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/delta.py");
    let via = match reader {
        Reader::Deltalake => "deltalake",
        Reader::Duckdb => "duckdb",
    };
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(folder)
        .arg(via)
        .output()
        .expect("run tests/readers/delta.py (python3 with `deltalake` and `duckdb`)");
    if out.status.code() == Some(3) {
        return Vec::new();
    }
    assert!(
        out.status.success(),
        "reading {} with {via}: {}",
        folder.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    rows(&json_lines(schema, &out.stdout))
}

struct DeltaSinkFixture {
    table: std::path::PathBuf,
}

#[async_trait::async_trait]
impl SinkFixture for DeltaSinkFixture {
    fn connector(&self) -> Arc<dyn SinkConnector> {
        let yaml = format!("path: {}", self.table.display());
        sluice::sink::configure("delta", &serde_yaml::from_str(&yaml).expect("yaml"))
            .expect("delta")
    }

    async fn visible_rows(&self) -> Option<Vec<String>> {
        let schema = output(0, 0).schema;
        Some(table_rows(&self.table, Reader::Deltalake, schema))
    }

    fn log_entries(&self) -> Option<usize> {
        // The table's log is Delta's own, kept by the table's log retention.
        None
    }
}

#[tokio::test]
async fn the_delta_sink_keeps_the_sink_contract() {
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let fixture = DeltaSinkFixture {
        table: dir.path().join("table"),
    };
    sink_contract(&fixture, &checkpoint).await;
}

/// The columns of `SELECT page, count(*) AS n ... GROUP BY page`.
fn page_count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]))
}

fn sink_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
    ]))
}

const QUERY: &str = "SELECT id, page, amount, ts FROM clicks WHERE amount > 30";

fn files_source(ws: &Workspace) -> String {
    format!(
        "  clicks:\n    kind: files\n    path: {}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 1\n",
        ws.p("in")
    )
}

/// A pipeline file writing `query` over `ws/in` into the Delta table `ws/table`, with
/// checkpoint `ws/<ckpt>`, `extra` top-level keys (whole lines) and `sink_extra` sink keys
/// (whole lines, indented two spaces).
fn delta_pipeline(
    ws: &Workspace,
    ckpt: &str,
    query: &str,
    extra: &str,
    sink_extra: &str,
) -> std::path::PathBuf {
    let yaml = format!(
        "name: delta\ncheckpoint: {ckpt}\nsources:\n{source}query: {query}\n{extra}trigger: available-now\nsink:\n  kind: delta\n  path: {table}\n{sink_extra}",
        ckpt = ws.p(ckpt),
        source = files_source(ws),
        table = ws.p("table"),
    );
    let path = ws.path(&format!("{ckpt}.yaml"));
    std::fs::write(&path, yaml).expect("pipeline");
    path
}

/// Files in, Delta out, in each output mode: append (a filter), update (an aggregation merged
/// on its key) and complete (the same aggregation replacing the table each batch); each table,
/// read by PyPI `deltalake` and by DuckDB, equals the batch query over every file, and each
/// batch's commit carries the pipeline's transaction version.
#[tokio::test]
async fn each_output_mode_leaves_the_table_the_batch_query_gives() {
    // Integer sums: a float sum's last digits depend on the order of the additions.
    let aggregate = "SELECT page, count(*) AS n, sum(id) AS total FROM clicks GROUP BY page";
    let agg_schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("total", DataType::Int64, true),
    ]));
    for (mode, query, extra, schema) in [
        ("append", QUERY, "", sink_schema()),
        (
            "update",
            aggregate,
            "  key: [page]\n",
            Arc::clone(&agg_schema),
        ),
        ("complete", aggregate, "", agg_schema),
    ] {
        let ws = Workspace::new();
        write_clicks(&ws.path("in"), "json", 4, 40, 0);
        let pipeline = delta_pipeline(&ws, "ckpt", query, &format!("output_mode: {mode}\n"), extra);
        let run = run_quietly(&pipeline, &[]);
        assert!(run.status.success(), "{mode}: {}", stderr(&run));
        let expected = oracle(&ws.path("in"), "json", query).await;
        for reader in [Reader::Deltalake, Reader::Duckdb] {
            assert_eq!(
                table_rows(&ws.path("table"), reader, Arc::clone(&schema)),
                expected,
                "{mode}, read by {reader:?}"
            );
        }
        // Four batches: the newest commit names batch 3 as the pipeline's transaction.
        let log = std::fs::read_dir(ws.path("table/_delta_log"))
            .expect("_delta_log")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .max()
            .expect("a commit");
        let newest = std::fs::read_to_string(&log).expect("commit");
        assert!(
            newest.contains("\"txn\"") && newest.contains("\"version\":3"),
            "{mode}: {newest}"
        );
        // Running again writes nothing more.
        let again = run_quietly(&pipeline, &[]);
        assert!(again.status.success(), "{mode}: {}", stderr(&again));
        assert_eq!(
            table_rows(&ws.path("table"), Reader::Deltalake, Arc::clone(&schema)),
            expected,
            "{mode}: a second run"
        );
    }
}

/// `replay --verify` reads a batch back from the table and finds it as committed; `rewind`
/// takes batches back out of the table (a Delta commit removing their files), and the next
/// run writes them again, once.
#[tokio::test]
async fn replay_verifies_a_batch_and_rewind_takes_batches_back() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "  partition_by: [page]\n");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        expected
    );
    assert!(
        ws.path("table/page=home").is_dir(),
        "partitioned by page, as Spark lays it out"
    );
    assert_verified(&ws, "ckpt", 1);

    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let first_file = oracle_of_first_file(&ws).await;
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        first_file,
        "batches 1 and 2 taken back"
    );
    let again = run_quietly(&pipeline, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    for reader in [Reader::Deltalake, Reader::Duckdb] {
        assert_eq!(
            table_rows(&ws.path("table"), reader, sink_schema()),
            expected,
            "written again once, read by {reader:?}"
        );
    }
}

/// The rows batch 0 wrote: the query over the first input file alone.
async fn oracle_of_first_file(ws: &Workspace) -> Vec<String> {
    let first = Workspace::new();
    let mut names: Vec<_> = std::fs::read_dir(ws.path("in"))
        .expect("in/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    let name = names.first().expect("a file");
    std::fs::copy(name, first.path("in").join(name.file_name().expect("name"))).expect("copy");
    oracle(&first.path("in"), "json", QUERY).await
}

fn ctx(pipeline: uuid::Uuid) -> SinkContext<'static> {
    SinkContext {
        label: "",
        pipeline,
        replace: false,
        update: false,
        part: None,
        create: true,
        sync: false,
        hook: None,
    }
}

/// A late run (an older epoch) committing a batch the newer run already committed changes
/// nothing: the table's transaction version for the pipeline is already there, so the commit
/// is skipped. Past the fence, the older run is refused before it writes.
#[tokio::test]
async fn a_commit_for_a_batch_already_taken_is_skipped_and_an_older_epoch_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let location = checkpoint_in(dir.path());
    let fixture = DeltaSinkFixture {
        table: dir.path().join("table"),
    };
    let older = Checkpoint::open(location.clone(), "epochs")
        .await
        .expect("checkpoint");
    let id = older.metadata().id;
    let old_fence = older.fence();
    let old_sink = fixture.connector().open(&ctx(id)).expect("open");
    old_sink
        .commit(BatchId(0), &old_fence, output(0, 2))
        .await
        .expect("batch 0");
    drop(older);
    let newer = Checkpoint::open(location, "epochs")
        .await
        .expect("newer checkpoint");
    let new_sink = fixture.connector().open(&ctx(id)).expect("open");
    let written = new_sink
        .commit(BatchId(1), &newer.fence(), output(10, 2))
        .await
        .expect("batch 1");
    assert!(written.written);
    // The late run recomputed batch 1 differently (say, with `now()` in it): skipped.
    let late = old_sink
        .commit(BatchId(1), &old_fence, output(100, 5))
        .await
        .expect("a batch already taken is skipped, not an error");
    assert!(!late.written, "the late commit wrote nothing");
    // Its next batch is past the newer run's fence.
    let refused = old_sink
        .commit(BatchId(2), &old_fence, output(20, 2))
        .await
        .expect_err("an older epoch is refused");
    assert!(refused.to_string().contains("newer run"), "{refused}");
    let visible = fixture.visible_rows().await.expect("rows");
    assert_eq!(visible, ["0|row 0", "10|row 10", "11|row 11", "1|row 1"]);
}

/// Two runs committing the same batch at the same moment: Delta's conflict check lets one
/// commit in; the other finds the batch there and writes nothing.
#[tokio::test]
async fn two_commits_of_one_batch_at_once_write_it_once() {
    let dir = tempfile::tempdir().expect("dir");
    let location = checkpoint_in(dir.path());
    let fixture = DeltaSinkFixture {
        table: dir.path().join("table"),
    };
    let run = Checkpoint::open(location, "race")
        .await
        .expect("checkpoint");
    let id = run.metadata().id;
    let fence = run.fence();
    let first = fixture.connector().open(&ctx(id)).expect("open");
    first
        .commit(BatchId(0), &fence, output(0, 1))
        .await
        .expect("batch 0");
    for round in 1..6_u64 {
        let a = fixture.connector().open(&ctx(id)).expect("open");
        let b = fixture.connector().open(&ctx(id)).expect("open");
        let first_row = i64::try_from(round).expect("round") * 10;
        let (x, y) = tokio::join!(
            a.commit(BatchId(round), &fence, output(first_row, 3)),
            b.commit(BatchId(round), &fence, output(first_row, 3)),
        );
        let (x, y) = (x.expect("first writer"), y.expect("second writer"));
        assert_eq!(
            u8::from(x.written) + u8::from(y.written),
            1,
            "round {round}: exactly one commit wrote the batch"
        );
    }
    let visible = fixture.visible_rows().await.expect("rows");
    assert_eq!(visible.len(), 1 + 5 * 3, "{visible:?}");
}

/// A column Delta has no type for is refused once the query is planned, before any batch,
/// naming the column, and the run leaves no table behind.
#[tokio::test]
async fn a_column_delta_cannot_hold_is_refused_at_planning() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT id, ts - ts AS took FROM clicks",
        "",
        "",
    );
    let run = run_quietly(&pipeline, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("column `took`") && said.contains("Delta Lake has no type"),
        "{said}"
    );
    assert!(!ws.path("table").exists(), "no table folder left behind");
}

/// Walk 9: a nanosecond time went into the table cut to the microsecond Delta keeps, with exit
/// 0. A value finer than the table keeps is refused, naming its column and the value, with
/// the truncation to write in the query; with that truncation the batch runs and verifies
/// (the digest is of what the table holds).
#[tokio::test]
async fn a_time_finer_than_the_table_keeps_is_refused_not_cut() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"user_id\":1,\"page\":\"a\",\"amount\":40,\"ts\":\"2026-01-01T10:00:00.123456789Z\"}\n",
    )
    .expect("input");
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("column `ts` holds 2026-01-01T10:00:00.123456789")
            && said.contains("finer than Delta Lake keeps it")
            && said.contains("date_trunc('microsecond', ts)")
            // Walk 50 (11): said the first time, as other refused rows are.
            && said.contains("Batch 0 stays planned"),
        "{said}"
    );
    if ws.path("table/_delta_log").exists() {
        let rows = table_rows(&ws.path("table"), Reader::Deltalake, sink_schema());
        assert!(rows.is_empty(), "a cut time was committed: {rows:?}");
    }
    let truncated = QUERY.replace(", ts FROM", ", date_trunc('microsecond', ts) AS ts FROM");
    let pipeline = delta_pipeline(&ws, "ckpt2", &truncated, "", "");
    std::fs::remove_dir_all(ws.path("table")).ok();
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_verified(&ws, "ckpt2", 0);
    let rows = table_rows(&ws.path("table"), Reader::Deltalake, sink_schema());
    assert!(
        rows.len() == 1 && rows[0].contains("10:00:00.123456") && !rows[0].contains("789"),
        "{rows:?}"
    );
}

/// Review: a rewind the sink refuses (Delta cannot take a batch back in update mode) wrote
/// its `rewind` record first and left it, so every run then asked to finish a rewind that
/// always refused. The refusal leaves the checkpoint as it was, and the next run goes on.
#[tokio::test]
async fn a_rewind_the_sink_refuses_leaves_the_checkpoint_runnable() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        "output_mode: update\n",
        "  key: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert_eq!(rewind.status.code(), Some(2), "{}", stderr(&rewind));
    assert!(!ws.path("ckpt/rewind").exists(), "no rewind under way");
    write_clicks(&ws.path("in"), "json", 1, 10, 2);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Review: a partition value was read back with a safe cast straight to the query's type, so
/// a zoned time partition (written as UTC text without its zone) came back shifted by the
/// zone's offset, and `replay --verify` said the sink differed. It is read in the table's type.
#[tokio::test]
async fn a_zoned_time_partition_verifies() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let query = "SELECT id, page, arrow_cast(date_trunc('hour', ts), \
                 'Timestamp(Microsecond, Some(\"+02:00\"))') AS hour FROM clicks WHERE amount > 30";
    let pipeline = delta_pipeline(&ws, "ckpt", query, "", "  partition_by: [hour]\n");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_verified(&ws, "ckpt", 0);
    assert_verified(&ws, "ckpt", 1);
}

/// Walk 125 (3): a complete-mode table deleted stayed deleted, exit 0 ("0 batches"), until
/// new input came. The run writes it again whole from the state, with no new input, and it
/// is the batch query's again.
#[tokio::test]
async fn a_complete_mode_table_deleted_is_written_again_whole() {
    let query = "SELECT page, count(*) AS n, sum(id) AS total FROM clicks GROUP BY page";
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("total", DataType::Int64, true),
    ]));
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", query, "output_mode: complete\n", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", query).await;
    std::fs::remove_dir_all(ws.path("table")).expect("delete the table");
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains("the table batch 1 wrote (complete mode), is gone: batch 2 writes it again"),
        "{said}"
    );
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, schema),
        expected
    );
}

/// Walk 8 review: a column name Delta cannot hold without column mapping (DataFusion names an
/// unaliased `count(*)` so) is refused once the query is planned, with the alias to give it;
/// delta-rs would write a table Spark's Delta and delta-kernel refuse to read.
#[tokio::test]
async fn a_column_name_delta_cannot_hold_is_refused_with_an_alias() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) FROM clicks GROUP BY page",
        "output_mode: complete\n",
        "",
    );
    let run = run_quietly(&pipeline, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("column `count(*)` has a name a Delta table cannot hold")
            && said.contains("AS count"),
        "{said}"
    );
    assert!(!ws.path("table").exists(), "no table folder left behind");
}

/// `queries/delta/clicks_to_delta.yaml` runs on the shipped sample data as its comment says,
/// and the table it makes, read by PyPI `deltalake` and by DuckDB, is the batch query's.
#[tokio::test]
async fn the_files_to_delta_example_runs_on_the_sample_data() {
    let ws = Workspace::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate::cli::copy_dir(&root.join("queries"), &ws.path("queries"));
    let example = "queries/delta/clicks_to_delta.yaml";
    let run = run_bin(&["run", example, "--progress", "none"], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let pipeline = sluice::pipeline::Pipeline::load(&ws.path(example)).expect("the example parses");
    let expected =
        crate::common::sample_clicks_oracle(&ws.path("queries/data/clicks"), &pipeline.query).await;
    assert!(!expected.is_empty());
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("seconds", DataType::Float64, true),
    ]));
    for reader in [Reader::Deltalake, Reader::Duckdb] {
        assert_eq!(
            table_rows(&ws.path("out/clicks_delta"), reader, Arc::clone(&schema)),
            expected,
            "read by {reader:?}"
        );
    }
}

/// Walk 7: starting over on a new checkpoint (or another pipeline) into a table that holds a
/// pipeline's batches would write every batch again; it is refused before any batch, naming
/// the table and the pipeline that wrote it, and the table keeps its rows once.
#[tokio::test]
async fn a_table_another_checkpoint_wrote_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let first = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&first, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let second = delta_pipeline(&ws, "ckpt2", QUERY, "", "");
    let refused = run_quietly(&second, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("belongs to another pipeline or checkpoint")
            && said.contains("pipeline `delta` with checkpoint")
            && said.contains("a Delta table's commits"),
        "{said}"
    );
    assert!(
        !ws.path("ckpt2").exists(),
        "the refused run leaves no checkpoint"
    );
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        expected,
        "every row once"
    );
    // The first checkpoint carries on.
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    let run = run_quietly(&first, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await
    );
}

/// Walk 102 (2): once the table's log retention removed the commits that named their writer
/// (a Delta checkpoint made, old log entries cleaned up), a new checkpoint appended every
/// batch again, exit 0: the Delta checkpoint still keeps the writer's transaction, and the
/// new checkpoint is refused by it.
#[tokio::test]
async fn a_table_whose_log_retention_removed_the_writers_commits_is_still_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let first = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&first, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         t.alter.set_table_properties({'delta.logRetentionDuration': 'interval 0 seconds'}); \
         t.create_checkpoint(); t.cleanup_metadata()",
    );
    assert!(
        !ws.path("table/_delta_log/00000000000000000000.json")
            .exists(),
        "the first commit cleaned up"
    );
    // Walk 125 (8): `inspect` said the newest batch's rows and files as 0, its commit's
    // entry cleaned up; they are not told.
    let shown = run_bin(&["inspect", &ws.p("ckpt"), "--json"], ws.dir.path());
    let view: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(view["sink"]["last_batch"], 1, "{view}");
    assert!(view["sink"]["last_batch_rows"].is_null(), "{view}");
    let shown = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("holds batch 1 (its rows not told"), "{text}");
    let second = delta_pipeline(&ws, "ckpt2", QUERY, "", "");
    let refused = run_quietly(&second, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("belongs to another pipeline or checkpoint"),
        "{said}"
    );
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await,
        "every row once"
    );
    // The first checkpoint carries on.
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    let run = run_quietly(&first, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Walk 7: a commit gone from the table's log (deleted by hand) is a difference for
/// `replay --verify`, and the next run refuses to run past it, naming the batches and the
/// rewind that computes them again; following that advice gives the batch query's rows.
#[tokio::test]
async fn a_lost_log_entry_is_named_and_the_advice_mends_the_table() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let entries = log_commits(&ws);
    let newest = entries.last().expect("a commit").clone();
    let batch_1 = entries[entries.len() - 2].clone();
    // Batch 1's commit gone: verify names it.
    let kept = std::fs::read(&batch_1).expect("entry");
    std::fs::remove_file(&batch_1).expect("delete");
    std::fs::rename(&newest, &batch_1).expect("renumber");
    let verify = run_bin(
        &[
            "replay",
            &ws.p("ckpt"),
            "--batch",
            "1",
            "--verify",
            "--json",
        ],
        ws.dir.path(),
    );
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    let view: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("json");
    assert_eq!(view["verified"], false, "{view}");
    // Put it back as it was, then lose the newest commit instead.
    std::fs::rename(&batch_1, &newest).expect("back");
    std::fs::write(&batch_1, kept).expect("restore");
    std::fs::remove_file(&newest).expect("lose batch 2");
    write_clicks(&ws.path("in"), "json", 1, 40, 3);
    let refused = run_quietly(&pipeline, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    let advice = format!("sluice rewind {} --to 1", ws.p("ckpt"));
    assert!(
        said.contains("holds batches up to 1 only, but the checkpoint committed batches up to 2")
            && said.contains(&advice),
        "{said}"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "1"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await
    );
}

/// Walk 7: with `allow_output_schema_change`, a column the query gains joins the table
/// (Delta schema merge); older rows read it as null.
#[tokio::test]
async fn a_column_the_query_gains_joins_the_table_when_allowed() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let narrow = "SELECT id, page FROM clicks WHERE amount > 30";
    let pipeline = delta_pipeline(&ws, "ckpt", narrow, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let wide = "SELECT id, page, amount FROM clicks WHERE amount > 30";
    let pipeline = delta_pipeline(&ws, "ckpt", wide, "allow_output_schema_change: true\n", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("output changed (`amount` added)"),
        "the column joining the table is said: {}",
        stderr(&run)
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let expected = oracle(
        &ws.path("in"),
        "json",
        "SELECT id, page, CASE WHEN id >= 40 THEN amount END FROM clicks WHERE amount > 30",
    )
    .await;
    for reader in [Reader::Deltalake, Reader::Duckdb] {
        assert_eq!(
            table_rows(&ws.path("table"), reader, Arc::clone(&schema)),
            expected,
            "{reader:?}"
        );
    }
}

/// Walk 7: update mode with a `key` that is not the query's group key (`n` for `GROUP BY
/// page`) is refused before any batch: merged on it, the table kept stale rows of a page and
/// wrote two pages over one row.
#[tokio::test]
async fn an_update_key_that_is_not_the_group_key_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        "output_mode: update\n",
        "  key: [n]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("set `key: [page]`"),
        "{}",
        stderr(&run)
    );
    assert!(!ws.path("table").exists() && !ws.path("ckpt").exists());
    // Walk 34 (8): without a `key`, the refusal says which columns a key is.
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        "output_mode: update\n",
        "",
    );
    let run = run_quietly(&pipeline, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    // Walk 61 (16): named from the query's text, before it is planned.
    assert!(
        stderr(&run).contains("set `key: [page]` (the query's GROUP BY columns"),
        "{}",
        stderr(&run)
    );
    // The advice followed, the run writes the table.
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        "output_mode: update\n",
        "  key: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys; from deltalake import DeltaTable\n\
         rows = DeltaTable(sys.argv[1]).to_pyarrow_table().to_pylist()\n\
         pages = [r['page'] for r in rows]\n\
         assert len(pages) == len(set(pages)) and sum(r['n'] for r in rows) == 40, rows",
    );
}

/// Review: an update-mode batch with no output rows (here every row filtered out) still
/// commits its version (delta-rs makes no commit for a MERGE that changes nothing), so the
/// next run does not take the table for one that lost a commit.
#[tokio::test]
async fn an_update_batch_without_rows_still_commits_its_version() {
    let ws = Workspace::new();
    let query = "SELECT page, count(*) AS n FROM clicks WHERE amount > 30 GROUP BY page";
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        query,
        "output_mode: update\n",
        "  key: [page]\n",
    );
    for (i, amount) in [50.0, 1.0, 60.0].iter().enumerate() {
        let line = format!(
            "{{\"id\":{i},\"user_id\":1,\"page\":\"home\",\"amount\":{amount},\"ts\":\"2026-01-01T10:00:0{i}\"}}\n"
        );
        std::fs::write(ws.path(&format!("in/{i}.json")), line).expect("input");
        let run = run_quietly(&pipeline, &[]);
        assert!(run.status.success(), "after file {i}: {}", stderr(&run));
    }
    let schema = page_count_schema();
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, schema),
        oracle(&ws.path("in"), "json", query).await
    );
}

/// Walk 19 (4): a rewind refused because a batch's files were rewritten since (OPTIMIZE)
/// left its `rewind` record, so every run and repair then asked to finish a rewind that
/// always refused. The refusal leaves no record and names the way out, which works: the
/// table restored to its version before OPTIMIZE, the rewind takes the batches back.
#[tokio::test]
async fn a_rewind_refused_after_optimize_leaves_no_record_and_its_advice_works() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         open(sys.argv[1] + '.before', 'w').write(str(t.version())); t.optimize.compact()",
    );
    // Walk 61 (13): a batch after the OPTIMIZE was taken back before the refusal of the one
    // before it ("cannot rewind", yet the table and checkpoint changed). Every batch is
    // checked first: refused, nothing is taken back.
    write_clicks(&ws.path("in"), "json", 1, 40, 3);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let held = table_rows(&ws.path("table"), Reader::Deltalake, sink_schema());
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("was rewritten since")
            && said.contains(".restore(VERSION)")
            && said.contains("where a VACUUM has since deleted that version's files")
            && !said.contains("taken back before it"),
        "{said}"
    );
    assert!(!ws.path("ckpt/rewind").exists(), "a rewind record left");
    assert!(ws.path("ckpt/commits/3").exists(), "batch 3 was taken back");
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        held
    );
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         t.restore(int(open(sys.argv[1] + '.before').read()))",
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle_of_first_file(&ws).await,
        "batches 1 and 2 taken back"
    );
    let again = run_quietly(&pipeline, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        expected,
        "each batch once"
    );
}

/// Walk 19 (1): two pipelines started together on one new table both passed the check that
/// refuses another pipeline's table (neither had committed yet), and delta-rs put the second
/// first commit after the first: every row twice. The run whose first commit is overtaken
/// (stopped right before it, while the other runs) is refused, exit 2, and the table holds
/// the other pipeline's rows once.
#[tokio::test]
async fn two_pipelines_started_together_on_one_new_table_do_not_both_write() {
    use std::process::Stdio;
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let late = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let mut stopped = sluice_bin()
        .args(["run", late.to_str().expect("utf-8"), "--progress", "none"])
        .env("SLUICE_STOP_AT", "_delta_log/00000000000000000000.json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_stopped(&stopped);
    let other = delta_pipeline(&ws, "ckpt2", QUERY, "", "");
    let run = run_quietly(&other, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    std::process::Command::new("kill")
        .args(["-CONT", &stopped.id().to_string()])
        .status()
        .expect("kill");
    let status = stopped.wait().expect("wait");
    let mut said = String::new();
    std::io::Read::read_to_string(&mut stopped.stderr.take().expect("stderr"), &mut said)
        .expect("stderr");
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(
        said.contains("belongs to another pipeline or checkpoint"),
        "{said}"
    );
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await,
        "every row once"
    );
}

/// Walk 20 (12): an empty string in a partition column read back as null, without a word
/// (the Delta protocol keeps an empty partition value as null, as Spark's writer does). The
/// run says so, naming the column and the query that keeps such rows apart.
#[tokio::test]
async fn an_empty_partition_value_is_said_to_read_back_as_null() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"page\":\"\",\"amount\":1.0}\n{\"id\":2,\"page\":\"home\",\"amount\":2.0}\n",
    )
    .expect("input");
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT id, page FROM clicks",
        "",
        "  partition_by: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains(
            "1 row(s) with the empty string in partition column `page` are stored as null"
        ) && said.contains("CASE WHEN page = '' THEN '(empty)' ELSE page END AS page"),
        "{said}"
    );
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table(); \
         got = sorted(zip(t['id'].to_pylist(), t['page'].to_pylist())); \
         assert got == [(1, None), (2, 'home')], got",
    );
}

/// Walk 21 (2, 3, 6): in update mode keyed on the partition column, an empty string was
/// stored as null and merged with the null key's row (duplicate keys, wrong counts); Hive's
/// `__HIVE_DEFAULT_PARTITION__` read back as null, so `replay --verify` never agreed; a table
/// partitioned elsewhere took empty strings as nulls without a word, and a `partition_by`
/// other than its own was passed over. Each is refused (the first two as the batch's rows,
/// with the rewind after which an edit applies) or said.
#[tokio::test]
async fn partition_values_a_table_keeps_as_null_are_refused_or_said() {
    let row = |id: u32, page: &str| format!("{{\"id\":{id},\"page\":{page},\"amount\":1.0}}\n");
    // Update mode, the key partitioned: an empty key refused.
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.json"), row(1, "\"a\"") + &row(2, "\"\"")).expect("input");
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        "output_mode: update\n",
        "  key: [page]\n  partition_by: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("1 row(s) hold the empty string in partition column `page`, a column of the sink's `key`")
            && said.contains("stays planned"),
        "{said}"
    );
    // Hive's name for the null partition, in append mode too.
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        row(1, "\"__HIVE_DEFAULT_PARTITION__\""),
    )
    .expect("input");
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT id, page FROM clicks",
        "",
        "  partition_by: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the name Hive gives the null partition") && said.contains("stays planned"),
        "{said}"
    );
    // A table partitioned elsewhere: its partitioning is the one checked, and kept.
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    python_on_table(
        &ws,
        "import sys, deltalake, pyarrow as pa; deltalake.write_deltalake(sys.argv[1], \
         pa.table({'id': pa.array([0], pa.int64()), 'page': ['x']}), partition_by=['page'])",
    );
    std::fs::write(ws.path("in/0.json"), row(1, "\"\"")).expect("input");
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT id, page FROM clicks",
        "",
        "  partition_by: [id]\n",
    );
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the table is partitioned by [\"page\"]"),
        "{said}"
    );
    let pipeline = delta_pipeline(&ws, "ckpt", "SELECT id, page FROM clicks", "", "");
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains(
            "1 row(s) with the empty string in partition column `page` are stored as null"
        ),
        "{said}"
    );
}

/// Walk 21 (8): a null into a column a table made elsewhere declares NOT NULL failed with
/// delta-rs's "1 rows failed validation check", naming no column. It names the column and
/// what to write, and says how an edit of the query comes to apply.
#[tokio::test]
async fn a_null_into_a_not_null_column_is_named() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    python_on_table(
        &ws,
        "import sys, deltalake, pyarrow as pa; s = pa.schema([pa.field('id', pa.int64()), \
         pa.field('page', pa.string(), nullable=False)]); deltalake.write_deltalake(sys.argv[1], \
         pa.table({'id': [0], 'page': ['x']}, schema=s))",
    );
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"page\":null,\"amount\":1.0}\n",
    )
    .expect("input");
    let pipeline = delta_pipeline(&ws, "ckpt", "SELECT id, page FROM clicks", "", "");
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the table's column `page` takes no null")
            && said.contains("WHERE page IS NOT NULL")
            && said.contains("stays planned"),
        "{said}"
    );
}

/// Walk 111: into a table with a column the query does not write, the first batch merged the
/// table's schema with the output's (every column nullable), which took NOT NULL off the
/// table's `id`, and a later null id was appended (exit 0). The schema stays as the table
/// had it (no metadata action, NOT NULL, its column order with the partition column inside),
/// and the null is refused naming the column.
#[tokio::test]
async fn an_append_leaves_a_not_null_column_of_a_wider_table_not_null() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    python_on_table(
        &ws,
        "import sys, deltalake, pyarrow as pa; s = pa.schema([pa.field('id', pa.int64(), \
         nullable=False), pa.field('page', pa.string()), pa.field('extra', pa.int32())]); \
         deltalake.write_deltalake(sys.argv[1], pa.table({'id': [0], 'page': ['x'], 'extra': \
         [5]}, schema=s), partition_by=['page'])",
    );
    std::fs::write(ws.path("in/0.json"), "{\"id\":1,\"page\":\"a\"}\n").expect("input");
    let pipeline = delta_pipeline(&ws, "ckpt", "SELECT id, page FROM clicks", "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys, json, glob; logs = sorted(glob.glob(sys.argv[1] + '/_delta_log/*.json')); \
         assert len(logs) == 2, logs; assert 'metaData' not in open(logs[1]).read(), \
         open(logs[1]).read(); meta = [json.loads(l)['metaData'] for l in open(logs[0]) if \
         'metaData' in l][0]; fields = json.loads(meta['schemaString'])['fields']; assert \
         [(f['name'], f['nullable']) for f in fields] == [('id', False), ('page', True), \
         ('extra', True)], fields",
    );
    std::fs::write(ws.path("in/1.json"), "{\"id\":null,\"page\":\"b\"}\n").expect("input");
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the table's column `id` takes no null")
            && said.contains("(nothing of the batch was committed)"),
        "{said}"
    );
    python_on_table(
        &ws,
        "import sys, glob; assert len(glob.glob(sys.argv[1] + '/_delta_log/*.json')) == 2",
    );
}

/// Runs `code` in python3 with the table folder as `sys.argv[1]`. It leaves by `os._exit`
/// once `code` has run (an assertion that fails has raised before): `deltalake` 1.6 with
/// `pyarrow` 26 at times aborts in its teardown ("terminate called without an active
/// exception") after a table was read, whatever it read.
fn python_on_table(ws: &Workspace, code: &str) {
    let code =
        format!("{code}\nimport os, sys; sys.stdout.flush(); sys.stderr.flush(); os._exit(0)");
    let out = std::process::Command::new("python3")
        .args(["-c", &code, &ws.p("table")])
        .output()
        .expect("python3 with `deltalake`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Walk 111 (4): a query changed to a type the table refuses, with
/// `allow_output_schema_change`, was warned as taken ("the sink takes the new columns from
/// the next batch on") just before the refusal; the refusal alone is said.
#[tokio::test]
async fn a_type_change_the_table_refuses_is_not_first_said_taken() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", "SELECT id, page FROM clicks", "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT CAST(id AS DOUBLE) AS id, page FROM clicks",
        "allow_output_schema_change: true\n",
        "",
    );
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the query's column `id` is double, but the table's is bigint")
            && !said.contains("the sink takes the new columns"),
        "{said}"
    );
}

/// Walk 19 (2, 7): appending into a table Sluice did not make, delta-rs cast the query's
/// `bigint` into the table's `float` (16777217 became 16777216) and added the columns the
/// table lacked, exit 0. Checked before the first batch: a column of another type is refused
/// unless every value fits it (a wider integer or float), naming it; a column the table lacks
/// needs `allow_output_schema_change`. Each advice, followed, runs.
#[tokio::test]
async fn a_table_of_other_column_types_is_refused_before_a_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    python_on_table(
        &ws,
        "import sys, deltalake, pyarrow as pa; deltalake.write_deltalake(sys.argv[1], \
         pa.table({'id': pa.array([1.5], pa.float32()), 'page': ['x']}))",
    );
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let refused = run_quietly(&pipeline, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("the query's column `id` is bigint, but the table's is float")
            && said.contains("(`CAST(id AS FLOAT)` in the query)"),
        "{said}"
    );
    assert!(
        !ws.path("ckpt").exists(),
        "a checkpoint left by a refused run"
    );
    // Two columns of other types: both named in one refusal, each with its cast.
    let two = "SELECT id, length(page) AS page FROM clicks";
    let pipeline = delta_pipeline(&ws, "ckpt", two, "", "");
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("2 of the query's columns are not of the table's types")
            && said.contains("`id` is bigint (the table's is float: `CAST(id AS FLOAT)`)")
            && said.contains("`page` is int (the table's is"),
        "{said}"
    );
    // The column cast as advised: `amount`, which the table lacks, is refused next.
    let cast = "SELECT CAST(id AS REAL) AS id, page, amount FROM clicks WHERE amount > 30";
    let pipeline = delta_pipeline(&ws, "ckpt", cast, "", "");
    let refused = run_quietly(&pipeline, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("the table has no column `amount` double")
            && stderr(&refused).contains("allow_output_schema_change: true"),
        "{}",
        stderr(&refused)
    );
    let pipeline = delta_pipeline(&ws, "ckpt", cast, "allow_output_schema_change: true\n", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let mut expected = oracle(
        &ws.path("in"),
        "json",
        "SELECT page, amount FROM clicks WHERE amount > 30",
    )
    .await;
    expected.push("x|".to_string());
    expected.sort();
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, schema),
        expected,
        "the table's row kept, the query's rows added once"
    );
}

/// Walk 54 (5): a column renamed in the query (`amount` to `amt`) was refused with advice to
/// add the new one (`allow_output_schema_change`), saying nothing of the old: whether it stays,
/// and what the rows get. It says the old one stays, null in the rows written from then on,
/// and how to write on into it; with the change allowed, that is what the table holds.
#[tokio::test]
async fn a_renamed_column_says_the_old_one_stays_beside_it() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let renamed = "SELECT id, page, amount AS amt, ts FROM clicks WHERE amount > 30";
    let pipeline = delta_pipeline(&ws, "ckpt", renamed, "", "");
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the table has no column `amt` double")
            && said.contains(
                "The table's column `amount`, which the query does not write, stays in the \
                 table beside them, null in the rows written from now on"
            )
            && said.contains("(`... AS amount`)"),
        "{said}"
    );
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        renamed,
        "allow_output_schema_change: true\n",
        "",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Each row has one of the two: batch 0's `amount`, batch 1's `amt`.
    python_on_table(
        &ws,
        "import sys; from deltalake import DeltaTable\n\
         rows = DeltaTable(sys.argv[1]).to_pyarrow_table().to_pylist()\n\
         old = [r for r in rows if r['amount'] is not None and r['amt'] is None]\n\
         new = [r for r in rows if r['amount'] is None and r['amt'] is not None]\n\
         assert old and new and len(old) + len(new) == len(rows), rows",
    );
}

/// Audit 88b: a query's `amount` over a table's `AMOUNT` was refused as a column to add, with
/// advice (`AS AMOUNT`, which SQL lower-cases; `allow_output_schema_change`, whose batch then
/// failed in delta-rs's words at every run). It is refused before a batch, allowed or not,
/// naming the table's column and the quoted alias that writes into it; that alias runs.
#[tokio::test]
async fn a_column_named_but_for_case_is_named_with_the_alias_that_writes_into_it() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let upper = "SELECT id, page, amount AS \"AMOUNT\", ts FROM clicks WHERE amount > 30";
    let pipeline = delta_pipeline(&ws, "ckpt", upper, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    for extra in ["", "allow_output_schema_change: true\n"] {
        let pipeline = delta_pipeline(&ws, "ckpt", QUERY, extra, "");
        let refused = run_quietly(&pipeline, &[]);
        let said = stderr(&refused);
        assert_eq!(refused.status.code(), Some(2), "{extra}: {said}");
        assert!(
            said.contains("`amount` (the table's `AMOUNT`: `... AS \"AMOUNT\"`)")
                && said.contains("differ from the table's only in case"),
            "{said}"
        );
        assert!(!ws.path("ckpt/offsets/1").exists(), "{said}");
    }
    let pipeline = delta_pipeline(&ws, "ckpt", upper, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Walk 111: two of the query's columns alike but for case, into a new table, failed each
    // batch in delta-rs's words (exit 1); refused before a batch, naming both.
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 4, 0);
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT id AS \"ID\", page AS \"Id\" FROM clicks",
        "",
        "",
    );
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the query's columns `ID` and `Id` differ only in case"),
        "{said}"
    );
    assert!(!ws.path("ckpt/offsets/0").exists(), "{said}");
}

/// Walk 54 (6): an output mode changed to update on a checkpoint whose state was kept in
/// another asked first for `key:` alone; once it was set, the run refused the change of mode.
/// Both are said at once.
#[tokio::test]
async fn a_mode_changed_to_update_without_a_key_says_the_state_refuses_it_too() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let pipeline = delta_pipeline(&ws, "ckpt", query, "output_mode: complete\n", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let pipeline = delta_pipeline(&ws, "ckpt", query, "output_mode: update\n", "");
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("set `key: [page]` (the query's GROUP BY columns")
            && said.contains("the checkpoint's state was kept for complete mode")
            && said.contains("put `output_mode: complete` back"),
        "{said}"
    );
}

/// Walk 19 (5): a Delta table made in a files sink's folder (or one holding other files), and
/// a files sink into a Delta table's folder, were accepted: the table's `VACUUM` deletes the
/// other's files. Each is refused before any batch, naming the folder; a folder holding only
/// the data files of a first commit cut short is still taken.
#[tokio::test]
async fn a_delta_table_and_other_files_do_not_share_a_folder() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    // A files sink's output where the table is to be.
    let files = format!(
        "name: files\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {table}, format: parquet }}\n",
        ckpt = ws.p("files_ckpt"),
        source = files_source(&ws),
        table = ws.p("table"),
    );
    let files = write_pipeline(&ws, &files);
    let run = run_quietly(&files, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let refused = run_quietly(&pipeline, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("holds no Delta table but")
            && stderr(&refused).contains("a files sink's output"),
        "{}",
        stderr(&refused)
    );
    // A folder of its own: a first commit cut short (data files, no log) is taken there.
    std::fs::remove_dir_all(ws.path("table")).expect("remove");
    let cut = run_quietly(
        &pipeline,
        &[(
            "SLUICE_CRASH_AT",
            "before:1:_delta_log/00000000000000000000.json".into(),
        )],
    );
    assert!(
        stderr(&cut).contains("crash point reached"),
        "{}",
        stderr(&cut)
    );
    assert!(!ws.path("table/_delta_log").exists(), "no commit made");
    assert!(
        std::fs::read_dir(ws.path("table"))
            .expect("the table's folder")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".parquet")),
        "the cut-short commit's data files are there"
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await
    );
    // The files sink into the table's folder.
    std::fs::remove_dir_all(ws.path("files_ckpt")).expect("remove");
    let refused = run_quietly(&files, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("is a Delta table's folder"),
        "{}",
        stderr(&refused)
    );
}

/// Runs the Delta pipeline over one file (batch 0), keeps the table's version then in
/// `<table>.first`, and runs it again over two more (batches 1 and 2); the pipeline file.
fn three_batches_after_a_first_run(ws: &Workspace) -> std::path::PathBuf {
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let pipeline = delta_pipeline(ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         open(sys.argv[1] + '.first', 'w').write(str(t.version()))",
    );
    write_clicks(&ws.path("in"), "json", 2, 40, 1);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    pipeline
}

/// Walk 24 (1): a table RESTOREd to a version before some batches kept the pipeline's
/// transaction version, so `replay --verify` read the batch's file from the disk (no longer
/// in the table) and said it agreed, and the next run went on with those rows missing, exit
/// 0. The verify names the file the RESTORE took out; the run stops naming the batches the
/// table lost and the rewind that computes them again; that rewind and a run put every row
/// back once.
#[tokio::test]
async fn a_table_restored_to_before_its_batches_is_named_and_the_rewind_recomputes_them() {
    let ws = Workspace::new();
    let pipeline = three_batches_after_a_first_run(&ws);
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         t.restore(int(open(sys.argv[1] + '.first').read()))",
    );
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle_of_first_file(&ws).await,
        "the restore took batches 1 and 2 out"
    );
    let verify = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "2", "--verify"],
        ws.dir.path(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        stderr(&verify)
    );
    assert!(!verify.status.success(), "{said}");
    assert!(
        said.contains("(RESTORE to version ")
            && said.contains("took batch 2's commit out of the table")
            && said.contains("NOT VERIFIED"),
        "{said}"
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("the rows of batches 1 to 2 are no longer in it")
            && said.contains("`sluice rewind ")
            && said.contains(" --to 0`, then run again"),
        "{said}"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await,
        "each batch once"
    );
}

/// Walk 125 (1): a batch the table took before the run stopped (its `commits/N` not
/// written) was taken as done by the next run, though a RESTORE since had taken its rows out
/// (Delta keeps the transaction version through it): its rows lost, exit 0. The run stops
/// naming the batch; the restore it names says it takes out another writer's commit made
/// since; the rewind it names, then a run, put every row in once.
#[tokio::test]
async fn a_pending_batch_a_restore_took_out_of_the_table_is_not_taken_as_done() {
    let ws = Workspace::new();
    let pipeline = three_batches_after_a_first_run(&ws);
    // A run stopped between the table's commit of batch 2 and the checkpoint's.
    std::fs::remove_file(ws.path("ckpt/commits/2")).expect("commits/2");
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         t.restore(t.version() - 1)",
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("the rows of batch 2 are no longer in it")
            && said.contains(" --to 1`, then run again")
            && !said.contains("committed after the RESTORE"),
        "{said}"
    );
    // Another writer's append since the RESTORE: restoring the version before it takes that
    // out too, and the message says so.
    python_on_table(
        &ws,
        "import sys, deltalake, pyarrow as pa; t = deltalake.DeltaTable(sys.argv[1]); \
         deltalake.write_deltalake(sys.argv[1], t.to_pyarrow_table().slice(0, 1) \
         .set_column(0, 'id', pa.array([-1], pa.int64())), mode='append')",
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("which also takes out what was committed after the RESTORE (version "),
        "{said}"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "1"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut rows = table_rows(&ws.path("table"), Reader::Deltalake, sink_schema());
    let others = rows.len();
    rows.retain(|row| !row.starts_with("-1|"));
    assert_eq!(others, rows.len() + 1, "the other writer's row: {rows:?}");
    assert_eq!(
        rows,
        oracle(&ws.path("in"), "json", QUERY).await,
        "each batch once"
    );
}

/// The review of walk 24's fix: the RESTORE the refusal names as one way out (back to the
/// version before the first RESTORE) must be taken as putting the batches back, not as another
/// RESTORE past them; and a batch whose file an OPTIMIZE rewrote before a RESTORE took the
/// table back past it is taken back by the rewind the refusal names.
#[tokio::test]
async fn the_ways_out_of_a_restored_table_work_after_optimize_and_nested_restores() {
    for optimize in [false, true] {
        let ws = Workspace::new();
        let pipeline = three_batches_after_a_first_run(&ws);
        if optimize {
            python_on_table(
                &ws,
                "import sys, deltalake; deltalake.DeltaTable(sys.argv[1]).optimize.compact()",
            );
        }
        python_on_table(
            &ws,
            "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
             t.restore(int(open(sys.argv[1] + '.first').read()))",
        );
        let run = run_quietly(&pipeline, &[]);
        let said = stderr(&run);
        assert!(!run.status.success(), "{said}");
        let expected = oracle(&ws.path("in"), "json", QUERY).await;
        if optimize {
            // The rewind named, over a batch whose file OPTIMIZE rewrote before the RESTORE.
            let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
            assert!(rewind.status.success(), "{}", stderr(&rewind));
        } else {
            // The other way out: the table restored to its version before the RESTORE.
            let back: u64 = said
                .split(".restore(")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a version to restore in: {said}"));
            python_on_table(
                &ws,
                &format!(
                    "import sys, deltalake; deltalake.DeltaTable(sys.argv[1]).restore({back})"
                ),
            );
        }
        let run = run_quietly(&pipeline, &[]);
        assert!(run.status.success(), "{optimize}: {}", stderr(&run));
        assert_eq!(
            table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
            expected,
            "{optimize}: each batch once"
        );
        let verify = run_bin(
            &["replay", &ws.p("ckpt"), "--batch", "2", "--verify"],
            ws.dir.path(),
        );
        // After OPTIMIZE nothing reads batch 2 back by file; restored, it verifies.
        if !optimize {
            assert!(verify.status.success(), "{}", stderr(&verify));
        }
    }
}

/// Walk 102 (1): batches taken back by a rewind and written again, then the table restored
/// to its version before the rewind (to undo it): the restore puts the first writes back, and
/// the rewind the refusal names took back only the newer ones (none in the table), so the run
/// after it wrote the batches a second time, exit 0. The rewind takes back what the restore
/// put back too; every row once.
#[tokio::test]
async fn a_rewind_after_a_restore_to_before_an_earlier_rewind_takes_back_what_it_put_back() {
    let ws = Workspace::new();
    let pipeline = three_batches_after_a_first_run(&ws);
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         open(sys.argv[1] + '.all', 'w').write(str(t.version()))",
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         t.restore(int(open(sys.argv[1] + '.all').read()))",
    );
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(!run.status.success(), "{said}");
    let advised = format!("`sluice rewind {} --to 0`", ws.p("ckpt"));
    assert!(said.contains(&advised), "{said}");
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{advised}: {}", stderr(&rewind));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await,
        "each batch once"
    );
}

/// Walk 102 (3): a files source over a Delta table's folder read every Parquet file there,
/// the ones the table's log removed too (here by a rewind): refused, as Databricks refuses
/// it, naming the folder's log, for a source and for a table (`tables:`).
#[tokio::test]
async fn a_files_source_over_a_delta_table_is_refused() {
    let ws = Workspace::new();
    let _ = three_batches_after_a_first_run(&ws);
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "1"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    for key in ["sources", "tables"] {
        let yaml = format!(
            "name: downstream\ncheckpoint: {ckpt}\n{key}:\n  t: {{ kind: files, path: {table}, \
             format: parquet }}\nquery: SELECT count(*) AS n FROM t\noutput_mode: complete\n\
             trigger: once\nsink: {{ kind: console }}\n",
            ckpt = ws.p("downstream-ckpt"),
            table = ws.p("table"),
        );
        let yaml = if key == "tables" {
            yaml.replace(
                "query: SELECT count(*) AS n FROM t",
                "query: SELECT count(*) AS n FROM t JOIN clicks ON true",
            )
            .replace(
                "tables:",
                &format!("sources:\n{}tables:", files_source(&ws)),
            )
        } else {
            yaml
        };
        std::fs::write(ws.path("downstream.yaml"), yaml).expect("pipeline");
        let run = run_quietly(&ws.path("downstream.yaml"), &[]);
        let said = stderr(&run);
        assert!(!run.status.success(), "{key}: {said}");
        assert!(
            said.contains("is a Delta table's folder (it has `_delta_log`)")
                && said.contains("kind: files")
                && !said.contains("`t`: source `t`")
                && !said.contains("`t`: table `t`"),
            "{key}: {said}"
        );
    }
}

/// Walk 27 (23): a data file of the table deleted by hand stopped the next update-mode batch
/// with delta-rs's words alone (`Generic DeltaTable error: ... not found`). The error says
/// what is gone and the ways out.
#[tokio::test]
async fn a_deleted_data_file_of_the_table_is_named_with_the_way_out() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        "output_mode: update\n",
        "  key: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let data: Vec<std::path::PathBuf> = std::fs::read_dir(ws.path("table"))
        .expect("table")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!data.is_empty());
    for file in &data {
        std::fs::remove_file(file).expect("rm");
    }
    write_clicks(&ws.path("in"), "json", 1, 10, 1);
    let run = run_quietly(&pipeline, &[]);
    let said = stderr(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("data files that are gone from its folder") && said.contains("RESTORE"),
        "{said}"
    );
}

/// Walk 28: a rewind of an update-mode Delta table was refused ("not supported by the
/// `delta` sink connector") with no way on. It names the one there is, starting over on a new
/// checkpoint into the same table, and that way gives the batch query's table.
#[tokio::test]
async fn a_rewind_of_an_update_table_names_the_way_on() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 20, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        query,
        "output_mode: update\n",
        "  key: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("in update or complete mode")
            && said.contains(
                "To compute the batches after batch 0 again, start the pipeline over on a new \
                 checkpoint into the same table"
            ),
        "{said}"
    );
    assert!(ws.path("ckpt/commits/1").exists(), "nothing taken back");
    // Walk 35 (2): the same pipeline on a new checkpoint takes its table over.
    let text = std::fs::read_to_string(&pipeline)
        .expect("pipeline")
        .replace(&ws.p("ckpt"), &ws.p("ckpt2"));
    std::fs::write(&pipeline, text).expect("edit");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = page_count_schema();
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, schema),
        oracle(&ws.path("in"), "json", query).await
    );
}

/// Walk 35 (2): an update-mode Delta table whose checkpoint was lost or restored from an
/// older copy had no way on but a new table (a new checkpoint found the table "another
/// pipeline's"), where a PostgreSQL table is taken over. The same pipeline (its `name`) on a
/// new checkpoint takes the table over in update mode, and the table is the batch query's
/// result; a pipeline of another name is still refused.
#[tokio::test]
async fn the_same_pipeline_on_a_new_checkpoint_takes_its_update_table_over() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 30, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let update = "output_mode: update\n";
    let key = "  key: [page]\n";
    let run = run_quietly(&delta_pipeline(&ws, "ckpt", query, update, key), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 30, 2);
    let anew = delta_pipeline(&ws, "ckpt2", query, update, key);
    let run = run_quietly(&anew, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = page_count_schema();
    let expected = oracle(&ws.path("in"), "json", query).await;
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, Arc::clone(&schema)),
        expected
    );
    // The old checkpoint, run again, is told of the newer one (update mode: pipelines of
    // one name may write keys of their own).
    let old = delta_pipeline(&ws, "ckpt", query, update, key);
    let run = run_quietly(&old, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!(
            "is written by pipeline `delta` with checkpoint {}, created",
            ws.p("ckpt2")
        )),
        "{}",
        stderr(&run)
    );
    // Another pipeline (another `name`) is still refused.
    let other = delta_pipeline(&ws, "ckpt3", query, update, key);
    let text = std::fs::read_to_string(&other).expect("pipeline");
    std::fs::write(&other, text.replace("name: delta", "name: other")).expect("rename");
    let run = run_quietly(&other, &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("belongs to another pipeline or checkpoint"),
        "{}",
        stderr(&run)
    );
}

/// Walk 35's leftover, for Delta: a copy of the checkpoint (`cp -a`) run beside the original
/// takes its epochs; the batch the copy committed first is refused to the original, naming
/// the copy, and the table holds each row once.
#[tokio::test]
async fn a_copy_of_the_checkpoint_run_beside_it_is_refused_the_batch_the_other_wrote() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let copy = copy_checkpoint(&ws, &pipeline);
    write_clicks(&ws.path("in"), "json", 1, 20, 1);
    // The original stops before its commit of batch 1, while the copy, at the same epoch,
    // commits its own.
    let refused = run_stopped_while(
        &pipeline,
        ws.dir.path(),
        "_delta_log/00000000000000000001.json",
        || {
            let by_copy = run_quietly(&copy, &[]);
            assert!(by_copy.status.success(), "{}", stderr(&by_copy));
        },
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!(
            "was written by pipeline `delta` with checkpoint {}",
            ws.p("ckpt-copy")
        )) && stderr(&refused).contains("this run's own"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await
    );
}

/// Review of the takeover: a complete-mode table taken over by the same pipeline on a newer
/// checkpoint refuses the older checkpoint's runs (each batch of either would replace the
/// whole table), naming the newer one; the newer one goes on.
#[tokio::test]
async fn a_complete_table_taken_over_refuses_the_older_checkpoint() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 30, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let complete = "output_mode: complete\n";
    let run = run_quietly(&delta_pipeline(&ws, "ckpt", query, complete, ""), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let run = run_quietly(&delta_pipeline(&ws, "ckpt2", query, complete, ""), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 30, 1);
    let run = run_quietly(&delta_pipeline(&ws, "ckpt", query, complete, ""), &[]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!(
            "was taken over by pipeline `delta` with checkpoint {}, created",
            ws.p("ckpt2")
        )) && stderr(&run).contains("stop this one's runs"),
        "{}",
        stderr(&run)
    );
    let run = run_quietly(&delta_pipeline(&ws, "ckpt2", query, complete, ""), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = page_count_schema();
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, schema),
        oracle(&ws.path("in"), "json", query).await
    );
}

/// A data file of the table deleted by hand was found only by `replay --verify`; a run went on
/// writing beside a table no reader could read. The run refuses, naming the file; the way it
/// gives (the file taken out of the log) lets the next run go on.
#[tokio::test]
async fn a_data_file_deleted_by_hand_is_named_before_a_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let data: Vec<_> = std::fs::read_dir(ws.path("table"))
        .expect("table")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    let deleted = data.first().expect("a data file").clone();
    std::fs::remove_file(&deleted).expect("delete");
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    let name = deleted
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(
        said.contains("data files that are gone from its folder")
            && said.contains(&name)
            && said.contains(".repair()"),
        "{said}"
    );
    python_on_table(
        &ws,
        "import sys; from deltalake import DeltaTable; DeltaTable(sys.argv[1]).repair(dry_run=False)",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Walk 54 (3): the refusal of a table whose data file was deleted by hand named a backup, a
/// RESTORE and `repair()` (which loses the file's rows for good), not the way that loses
/// nothing in append mode: taking back the batch that wrote it, which `replay --verify`
/// named. It names that batch and the rewind, and following it gives the batch query's table.
#[tokio::test]
async fn a_deleted_data_file_names_the_batch_to_take_back() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Batch 1's files, as its commit (the log's entry with transaction version 1) added them.
    let batch_1 = std::fs::read_dir(ws.path("table/_delta_log"))
        .expect("_delta_log")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|entry| entry.contains("\"txn\"") && entry.contains("\"version\":1"))
        .expect("batch 1's commit");
    let added: Vec<String> = batch_1
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["add"]["path"].as_str().map(str::to_string))
        .collect();
    assert!(!added.is_empty(), "{batch_1}");
    for path in &added {
        std::fs::remove_file(ws.path(&format!("table/{path}"))).expect("delete");
    }
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    let rewind = format!("`sluice rewind {} --to 0`", ws.p("ckpt"));
    assert!(
        said.contains("take back batch 1, whose commit added it")
            && said.contains(&rewind)
            && said.contains("nothing lost"),
        "{said}"
    );
    let rewound = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewound.status.success(), "{}", stderr(&rewound));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await
    );
}

/// Walk 50 (5, 6, 7): a table made elsewhere that this sink cannot write as asked failed only
/// as the first batch committed (planned, and failing at every run): a column-mapped table
/// ("Schema evolution on column-mapped tables is not yet supported"), an append-only table in
/// update mode (at the second batch: "Delta table is append-only"), and a NOT NULL column the
/// query leaves out (blamed on "a CHECK constraint or an invariant", unnamed). Each is refused
/// before a batch (exit 2, no checkpoint left), naming what and the ways out.
#[tokio::test]
async fn a_table_the_sink_cannot_write_as_asked_is_refused_before_a_batch() {
    let count = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    for (columns, configuration, query, extra, expected) in [
        (
            "('id', pa.int64()), ('page', pa.string()), ('amount', pa.float64()), ('ts', pa.timestamp('us'))",
            "{'delta.columnMapping.mode': 'name', 'delta.minReaderVersion': '2', 'delta.minWriterVersion': '5'}",
            QUERY,
            "",
            "column mapping (`delta.columnMapping.mode: name`)",
        ),
        (
            "('page', pa.string()), ('n', pa.int64())",
            "{'delta.appendOnly': 'true'}",
            count,
            "  key: [page]\n",
            "append-only (`delta.appendOnly: true`), and update mode",
        ),
        (
            "('id', pa.int64()), ('page', pa.string()), ('amount', pa.float64()), ('ts', pa.timestamp('us')), pa.field('req', pa.string(), nullable=False)",
            "{}",
            QUERY,
            "",
            "column(s) `req` hold no null (NOT NULL)",
        ),
    ] {
        let ws = Workspace::new();
        write_clicks(&ws.path("in"), "json", 1, 20, 0);
        python_on_table(
            &ws,
            &format!(
                "import sys, pyarrow as pa, deltalake; \
                 schema = pa.schema([{columns}]); \
                 deltalake.write_deltalake(sys.argv[1], schema.empty_table(), \
                 configuration={configuration})"
            ),
        );
        let mode = if extra.is_empty() {
            ""
        } else {
            "output_mode: update\n"
        };
        let pipeline = delta_pipeline(&ws, "ckpt", query, mode, extra);
        let refused = run_quietly(&pipeline, &[]);
        let said = stderr(&refused);
        assert_eq!(refused.status.code(), Some(2), "{expected}: {said}");
        assert!(said.contains(expected), "{said}");
        assert!(!ws.path("ckpt").exists(), "{expected}: a checkpoint left");
    }
}

/// Walk 50 (4): a damaged `_delta_log` stopped every run, `rewind` and `replay` with the
/// kernel's words ("Truncated record whilst reading object", or a gap's dump of two paths)
/// and, with RUST_BACKTRACE set, an 84-frame backtrace, and `repair` found nothing. The
/// damaged file is named with the way out: the newest commit cut short, moved out as
/// advised, leaves the table as before it, and the run then names the rewind, which works; a
/// commit missing between two is named too.
#[tokio::test]
async fn a_damaged_table_log_is_named_with_the_way_out() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let log = ws.path("table/_delta_log");
    let newest = log.join("00000000000000000002.json");
    let text = std::fs::read(&newest).expect("newest commit");
    std::fs::write(&newest, &text[..100]).expect("cut short");
    write_clicks(&ws.path("in"), "json", 1, 40, 3);
    let refused = run_quietly(&pipeline, &[("RUST_BACKTRACE", "1".to_string())]);
    let said = stderr(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("the newest commit, `_delta_log/00000000000000000002.json`, is cut short")
            // (The kernel's own log line above it, which SLUICE_LOG=warn lets through, has it.)
            && !said
                .split("error: sink")
                .nth(1)
                .is_some_and(|error| error.contains("with_backtrace")),
        "{said}"
    );
    std::fs::rename(&newest, ws.path("torn.json")).expect("moved out, as advised");
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert!(!refused.status.success(), "{said}");
    let rewind = said
        .split('`')
        .find(|part| part.starts_with("sluice rewind"))
        .expect("the rewind to run")
        .to_string();
    let args: Vec<&str> = rewind.split_whitespace().skip(1).collect();
    let out = run_bin(&args, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        expected
    );
    // A commit missing between two.
    std::fs::remove_file(log.join("00000000000000000001.json")).expect("removed");
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert!(
        said.contains("`_delta_log/` has no commit between 00000000000000000000.json and"),
        "{said}"
    );
}

/// Walk 50 (2): after a row-level DELETE of one row of batch 2's file (the rest copied into a
/// new file), `replay --verify` said the DELETE "took it out, and batch 2's rows with it" and
/// advised a rewind, which was refused (the file was rewritten) and would have brought back
/// the row deleted on purpose. The batch is said to be rewritten by the DELETE, its rows not
/// to be read back by batch: verified against its commit, with no rewind advised.
#[tokio::test]
async fn a_batch_a_delete_rewrote_is_not_said_lost() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         t.delete('id = 119')",
    );
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "2", "--verify"],
        ws.dir.path(),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("was rewritten by version")
            && said.contains("(DELETE)")
            && !said.contains("sluice rewind"),
        "{said}"
    );
    // Walk 125 (5): another writer's overwrite (here with the same rows) was said to have
    // taken the batch out, with a rewind advised that is refused over a rewritten file.
    python_on_table(
        &ws,
        "import sys, deltalake; t = deltalake.DeltaTable(sys.argv[1]); \
         deltalake.write_deltalake(sys.argv[1], t.to_pyarrow_table(), mode='overwrite')",
    );
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "1", "--verify"],
        ws.dir.path(),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("was rewritten by version")
            && said.contains("(WRITE)")
            && said.contains("replaced by that commit (an overwrite)")
            && !said.contains("sluice rewind"),
        "{said}"
    );
}

/// Walk 83 (1): a rewind was refused for every batch with a file in a partition whose value
/// the folder name escapes (`a b` in `k=a%20b`), saying the file "was rewritten since", though
/// nothing had touched the table: the table's files were compared as URIs, decoded once more
/// than the log's. Such batches are taken back, and the next run writes them again, once.
#[tokio::test]
async fn a_rewind_takes_back_files_of_partitions_with_escaped_values() {
    let ws = Workspace::new();
    let values = ["a b", "c/d", "e=f", "x%y", "ünï", "t:1"];
    for (i, value) in values.iter().enumerate() {
        std::fs::write(
            ws.path(&format!("in/{i}.json")),
            format!("{{\"k\":\"{value}\",\"v\":{i}}}\n"),
        )
        .expect("input");
    }
    let yaml = format!(
        "name: escaped\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
         format: json, schema: {{ k: string, v: bigint }}, max_files_per_batch: 1 }}\n\
         query: SELECT k, v FROM s\ntrigger: available-now\nsink:\n  kind: delta\n  path: \
         {table}\n  partition_by: [k]\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        table = ws.p("table"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let row = |i: usize| format!("{}|{i}", values[i]);
    let all: Vec<String> = {
        let mut rows: Vec<String> = (0..values.len()).map(row).collect();
        rows.sort();
        rows
    };
    let table = || table_rows(&ws.path("table"), Reader::Deltalake, Arc::clone(&schema));
    assert_eq!(table(), all);
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    assert_eq!(table(), vec![row(0)]);
    let again = run_quietly(&pipeline, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(table(), all);
}

/// Walk 83 (3): in update mode, a table that lost its newest commit was answered "restore the
/// table's log from a backup; or start over", though taking the lost batch back (which takes
/// nothing out of the table) and running again mends it, as in append mode. The message says
/// so, and following it gives the batch query's table.
#[tokio::test]
async fn an_update_table_that_lost_its_newest_commit_is_mended_by_the_rewind_it_names() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let pipeline = delta_pipeline(
        &ws,
        "ckpt",
        query,
        "output_mode: update\n",
        "  key: [page]\n",
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let entries = log_commits(&ws);
    std::fs::remove_file(entries.last().expect("a commit")).expect("lose batch 2");
    write_clicks(&ws.path("in"), "json", 1, 40, 3);
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    let advice = format!("sluice rewind {} --to 1", ws.p("ckpt"));
    assert!(said.contains(&advice), "{said}");
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "1"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, page_count_schema()),
        oracle(&ws.path("in"), "json", query).await
    );
}

/// The commits of `ws/table`'s log (`_delta_log/<version>.json`), oldest first.
fn log_commits(ws: &Workspace) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(ws.path("table/_delta_log"))
        .expect("log")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    entries
}

/// Audit 94b (1): a rewind on an append-only table (`delta.appendOnly: true`) failed part way,
/// at delta-rs's commit, leaving its record, and the rewind it said to finish failed the same
/// way every time. Refused before anything is taken back, naming the property; set to false,
/// the rewind runs, and each batch is in the table once.
#[tokio::test]
async fn a_rewind_on_an_append_only_table_is_refused_before_anything_is_taken_back() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let pipeline = delta_pipeline(&ws, "ckpt", QUERY, "", "");
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    python_on_table(
        &ws,
        "import sys, deltalake; \
         deltalake.DeltaTable(sys.argv[1]).alter.set_table_properties({'delta.appendOnly': 'true'})",
    );
    let held = table_rows(&ws.path("table"), Reader::Deltalake, sink_schema());
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("append-only (`delta.appendOnly: true`)"),
        "{said}"
    );
    assert!(!ws.path("ckpt/rewind").exists(), "a rewind record left");
    assert!(ws.path("ckpt/commits/2").exists(), "batch 2 was taken back");
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        held
    );
    python_on_table(
        &ws,
        "import sys, deltalake; \
         deltalake.DeltaTable(sys.argv[1]).alter.set_table_properties({'delta.appendOnly': 'false'})",
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let again = run_quietly(&pipeline, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        table_rows(&ws.path("table"), Reader::Deltalake, sink_schema()),
        oracle(&ws.path("in"), "json", QUERY).await
    );
}

/// Audit 94b (2): a table whose protocol asks for a writer feature delta-rs does not write
/// (identity columns) failed only as the first batch committed, exit 1 with delta-rs's words
/// at every run. Refused before a batch (exit 2), saying why and the way out.
#[tokio::test]
async fn a_table_of_a_writer_feature_delta_rs_lacks_is_refused_before_a_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let log = ws.path("table/_delta_log");
    std::fs::create_dir_all(&log).expect("log");
    let schema = serde_json::json!({"type": "struct", "fields": [
        {"name": "id", "type": "long", "nullable": true, "metadata": {}},
        {"name": "page", "type": "string", "nullable": true, "metadata": {}},
    ]});
    let actions = [
        serde_json::json!({"commitInfo": {"operation": "CREATE"}}),
        serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 7,
            "writerFeatures": ["identityColumns"]}}),
        serde_json::json!({"metaData": {"id": "3f0b6a1e-0000-4000-8000-000000000001",
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema.to_string(), "partitionColumns": [],
            "configuration": {}, "createdTime": 0}}),
    ];
    let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
    std::fs::write(log.join("00000000000000000000.json"), text).expect("commit 0");
    let pipeline = delta_pipeline(&ws, "ckpt", "SELECT id, page FROM clicks", "", "");
    let refused = run_quietly(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the table's protocol asks its writers for what delta-rs")
            && said.contains("IdentityColumns")
            && said.contains("a new `sink.path`"),
        "{said}"
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left");
}
