//! Crash tests: stop the run at every write of a multi-batch run (offsets, source logs, each
//! sink data file, the manifest, publishing, the commit, purging), before and after the write,
//! restart, and check that the sink holds exactly the oracle's rows.

use crate::common::*;
use crate::fault::{CrashAt, Faults};
use sluice::driver::RunOptions;

const QUERY: &str = "SELECT id, page, amount FROM clicks WHERE amount > 30";

/// A sink as the crash enumeration sees it. A sink added later joins every enumeration below
/// by implementing this: how a pipeline writes to it, and what it holds.
trait SinkUnderTest {
    /// A name for the test output.
    fn name(&self) -> String;
    /// The pipeline's `sink:` value, writing into `ws`.
    fn sink_yaml(&self, ws: &Workspace) -> String;
    /// Every row the sink holds, rendered and sorted as `rows` does.
    async fn rows(&self, ws: &Workspace) -> Vec<String>;
}

/// The files sink in one format, writing to `out/`, read back by `select` over the table
/// `sink` (JSON lines come back with their columns sorted by name; `select` puts them back).
struct FilesSinkUnderTest(&'static str, &'static str);

/// The sink most tests use.
const PARQUET: FilesSinkUnderTest = FilesSinkUnderTest("parquet", "SELECT * FROM sink");

impl SinkUnderTest for FilesSinkUnderTest {
    fn name(&self) -> String {
        format!("files sink, {}", self.0)
    }

    fn sink_yaml(&self, ws: &Workspace) -> String {
        format!(
            "{{ kind: files, path: {}, format: {} }}",
            ws.p("out"),
            self.0
        )
    }

    async fn rows(&self, ws: &Workspace) -> Vec<String> {
        let out = ws.path("out");
        if !out.exists() {
            return Vec::new();
        }
        let ctx = datafusion::prelude::SessionContext::new();
        let folder = out.display().to_string();
        match self.0 {
            "parquet" => return sink_rows(&out).await,
            "csv" => ctx
                .register_csv(
                    "sink",
                    &folder,
                    datafusion::prelude::CsvReadOptions::new().file_extension(".csv"),
                )
                .await
                .expect("csv sink"),
            "json" => ctx
                .register_json(
                    "sink",
                    &folder,
                    datafusion::prelude::JsonReadOptions::default().file_extension(".jsonl"),
                )
                .await
                .expect("json sink"),
            other => panic!("format {other}"),
        }
        sql_rows(&ctx, self.1).await
    }
}

/// Runs a pipeline, crashing at `crash`, then restarts it (without faults) until it finishes.
/// Returns the number of restarts.
async fn crash_and_recover(ws: &Workspace, yaml: &str, crash: CrashAt) -> usize {
    let faults = Faults::new(crash);
    let result = run(
        yaml,
        RunOptions {
            store_hook: Some(faults.hook()),
            ..RunOptions::default()
        },
    )
    .await;
    assert!(faults.crashed(), "{crash:?} must be reached");
    let err = result.expect_err("a crashed run fails");
    assert!(
        err.to_string().contains("injected crash"),
        "{crash:?}: {err}"
    );
    let _ = ws;
    run(yaml, RunOptions::default())
        .await
        .expect("restart finishes");
    1
}

/// A pipeline to crash: its query, extra pipeline keys, and the SQL whose batch result the
/// sink must hold at the end.
struct Scenario<'a> {
    format: &'a str,
    files: usize,
    per_batch: usize,
    query: &'a str,
    /// Lines added under the source (indented 4 spaces).
    source_extra: &'a str,
    /// Top-level keys added before `trigger:`.
    pipeline_extra: String,
    expected_sql: String,
}

impl Scenario<'_> {
    fn stateless(format: &str, files: usize, per_batch: usize, retain: u64) -> Scenario<'_> {
        Scenario {
            format,
            files,
            per_batch,
            query: QUERY,
            source_extra: "",
            pipeline_extra: format!("retain_batches: {retain}\n"),
            expected_sql: QUERY.to_string(),
        }
    }
}

/// Counts a clean run's writes, then crashes at each of them in turn.
async fn enumerate_crash_points(scenario: Scenario<'_>) {
    let Scenario {
        format,
        files,
        per_batch,
        ..
    } = scenario;
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), format, files, 40, 0);
        pipeline_yaml(ws, format, scenario.query, per_batch, scenario.source_extra)
            .replace("trigger:", &format!("{}trigger:", scenario.pipeline_extra))
    };
    let label = format!(
        "{format}, {files} files, {per_batch} per batch, query `{}`",
        scenario.query
    );
    enumerate(&label, &PARQUET, setup, async |clean: &Workspace| {
        oracle(&clean.path("in"), format, &scenario.expected_sql).await
    })
    .await;
}

/// Runs the pipeline `setup` writes once to count its writes and take the expected rows from
/// `expected_of`, then for every write crashes before it and after it, restarts, and
/// compares the sink with the expected rows.
async fn enumerate(
    label: &str,
    sink: &impl SinkUnderTest,
    setup: impl Fn(&Workspace) -> String,
    expected_of: impl AsyncFn(&Workspace) -> Vec<String>,
) {
    let clean = Workspace::new();
    let yaml = setup(&clean);
    let counter = Faults::new(CrashAt::Never);
    run(
        &yaml,
        RunOptions {
            store_hook: Some(counter.hook()),
            ..RunOptions::default()
        },
    )
    .await
    .expect("clean run");
    let writes = counter.writes();
    let expected = expected_of(&clean).await;
    assert!(!expected.is_empty());
    assert_eq!(sink.rows(&clean).await, expected);
    assert!(
        writes > 10,
        "a multi-batch run has many writes, got {writes}"
    );

    let (mut points, mut restarts, mut compared, mut dupes, mut losses) = (0, 0, 0, 0, 0);
    for k in 1..=writes {
        for crash in [CrashAt::Before(k), CrashAt::After(k)] {
            let ws = Workspace::new();
            let yaml = setup(&ws);
            restarts += crash_and_recover(&ws, &yaml, crash).await;
            let got = sink.rows(&ws).await;
            let (n, d, l) = compare(&expected, &got);
            assert_eq!((d, l), (0, 0), "{crash:?}: {d} duplicates, {l} lost");
            points += 1;
            compared += n;
            dupes += d;
            losses += l;
        }
    }
    println!(
        "crash points ({label}; {}): {writes} writes, {points} crash points tried, {restarts} restarts, \
         {compared} rows compared, {dupes} duplicates, {losses} losses",
        sink.name()
    );
    assert_eq!(points as u64, 2 * writes);
}

#[tokio::test]
async fn every_crash_point_of_a_json_run_recovers_exactly_once() {
    enumerate_crash_points(Scenario::stateless("json", 5, 2, 2)).await;
}

#[tokio::test]
async fn every_crash_point_of_a_csv_run_recovers_exactly_once() {
    enumerate_crash_points(Scenario::stateless("csv", 4, 1, 100)).await;
}

/// A windowed aggregation in append mode: crashes while its state is written (deltas, removed
/// keys, snapshots), while the sink takes the closed windows, and in the batch without input
/// that closes the last windows.
#[tokio::test]
async fn every_crash_point_of_a_windowed_aggregation_recovers_exactly_once() {
    const WINDOWED: &str = "SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, page, count(*) AS n, max(amount) AS top, count(DISTINCT user_id) AS users FROM clicks GROUP BY 1, 2";
    // The events are one second apart from the first file's; the last is 199 s in, so the
    // final watermark (10 s delay) closes every window ending by 189 s.
    let closed = format!(
        "SELECT * FROM ({WINDOWED}) WHERE window_start + INTERVAL '1 minute' <= \
         arrow_cast({}, 'Timestamp(Nanosecond, None)')",
        1_762_000_000_000_000_000i64 + 189 * 1_000_000_000
    );
    enumerate_crash_points(Scenario {
        format: "json",
        files: 5,
        per_batch: 1,
        query: WINDOWED,
        source_extra: "    watermark: { column: ts, delay: 10s }\n",
        pipeline_extra: "retain_batches: 3\nsnapshot_every: 2\noutput_mode: append\n".into(),
        expected_sql: closed,
    })
    .await;
}

/// Every sink's own writes (each data file, the manifest, each publish) are crash points too:
/// the other formats of the files sink here; each sink added later implements
/// `SinkUnderTest` and joins this list.
#[tokio::test]
async fn every_crash_point_of_each_sink_recovers_exactly_once() {
    let columns = "SELECT id, page, amount FROM sink";
    for sink in [
        FilesSinkUnderTest("csv", columns),
        FilesSinkUnderTest("json", columns),
    ] {
        let setup = |ws: &Workspace| {
            write_clicks(&ws.path("in"), "json", 3, 40, 0);
            pipeline_yaml(ws, "json", QUERY, 1, "")
                .replace(&PARQUET.sink_yaml(ws), &sink.sink_yaml(ws))
        };
        enumerate("stateless", &sink, setup, async |clean: &Workspace| {
            oracle(&clean.path("in"), "json", QUERY).await
        })
        .await;
    }
}

/// A grouped aggregation in complete mode: crashes while each batch's files replace the
/// earlier batches' files, and while the state snapshots and deltas are written.
#[tokio::test]
async fn every_crash_point_of_a_complete_mode_aggregation_recovers_exactly_once() {
    const GROUPED: &str = "SELECT page, count(*) AS n, max(amount) AS top, count(DISTINCT user_id) AS users FROM clicks GROUP BY page";
    enumerate_crash_points(Scenario {
        format: "json",
        files: 4,
        per_batch: 1,
        query: GROUPED,
        source_extra: "",
        pipeline_extra: "retain_batches: 2\nsnapshot_every: 2\noutput_mode: complete\n".into(),
        expected_sql: GROUPED.to_string(),
    })
    .await;
}

/// An aggregation in update mode: the sink is a changelog, which after any crash must be
/// exactly the changelog of a run without one.
#[tokio::test]
async fn every_crash_point_of_an_update_mode_aggregation_recovers_exactly_once() {
    const PER_USER: &str =
        "SELECT user_id, count(*) AS n, max(amount) AS top FROM clicks GROUP BY user_id";
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), "json", 4, 40, 0);
        pipeline_yaml(ws, "json", PER_USER, 1, "").replace(
            "trigger:",
            "output_mode: update\nsnapshot_every: 3\nretain_batches: 2\ntrigger:",
        )
    };
    enumerate(
        "update mode, against the changelog of a run without crashes",
        &PARQUET,
        setup,
        async |clean: &Workspace| sink_rows(&clean.path("out")).await,
    )
    .await;
}

/// A join of two streams: crashes while each side's kept rows are written and purged.
#[tokio::test]
async fn every_crash_point_of_a_stream_stream_join_recovers_exactly_once() {
    const JOIN: &str = "SELECT v.id AS view, b.id AS buy, v.user_id FROM views v JOIN buys b \
                        ON v.user_id = b.user_id AND b.ts BETWEEN v.ts AND v.ts + INTERVAL '20 seconds'";
    let setup = |ws: &Workspace| {
        // Views one second apart, buys 1.5 s apart, in 3 files each.
        for (name, step, count) in [("views", 2, 0), ("buys", 3, 1)] {
            std::fs::create_dir_all(ws.path(name)).expect("folder");
            for f in 0..3 {
                let mut batch = clicks(f * 40, 40);
                let ts: Vec<i64> = (f * 40..f * 40 + 40)
                    .map(|i| 1_762_000_000_000_000_000 + i * step * 500_000_000 + count)
                    .collect();
                let mut columns = batch.columns().to_vec();
                columns[4] = std::sync::Arc::new(
                    datafusion::arrow::array::TimestampNanosecondArray::from(ts),
                );
                batch =
                    datafusion::arrow::record_batch::RecordBatch::try_new(batch.schema(), columns)
                        .expect("batch");
                write_batch(&ws.path(&format!("{name}/{f}.json")), "json", &batch);
            }
        }
        let source = |name: &str| {
            format!(
                "  {name}:\n    kind: files\n    path: {}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 1\n    watermark: {{ column: ts, delay: 5s }}\n",
                ws.p(name)
            )
        };
        format!(
            "name: join\ncheckpoint: {}\nsources:\n{}{}query: |\n  {JOIN}\noutput_mode: append\nsnapshot_every: 2\nretain_batches: 2\ntrigger: available-now\nsink: {{ kind: files, path: {}, format: parquet }}\n",
            ws.p("ckpt"),
            source("views"),
            source("buys"),
            ws.p("out"),
        )
    };
    enumerate(
        "a join of two streams",
        &PARQUET,
        setup,
        async |clean: &Workspace| {
            let ctx = datafusion::prelude::SessionContext::new();
            let schema = click_schema();
            for name in ["views", "buys"] {
                ctx.register_json(
                    name,
                    &clean.p(name),
                    datafusion::prelude::JsonReadOptions::default()
                        .schema(&schema)
                        .file_extension(".json"),
                )
                .await
                .expect("register");
            }
            sql_rows(&ctx, JOIN).await
        },
    )
    .await;
}

/// Crashes again during recovery: two faults in a row still lose and double nothing.
#[tokio::test]
async fn a_crash_during_recovery_recovers_too() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 40, 0);
    let yaml = pipeline_yaml(&ws, "json", QUERY, 1, "");
    for k in [7, 3, 5, 2] {
        let faults = Faults::new(CrashAt::After(k));
        let _ = run(
            &yaml,
            RunOptions {
                store_hook: Some(faults.hook()),
                ..RunOptions::default()
            },
        )
        .await;
    }
    run(&yaml, RunOptions::default()).await.expect("final run");
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(
        compare(&expected, &sink_rows(&ws.path("out")).await),
        (expected.len(), 0, 0)
    );
}
