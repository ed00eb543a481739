//! Crash tests that crash: a multi-batch run is ended for real at every write it makes (source
//! logs, offsets, each sink data file, the manifest, publishing, state files, the commit,
//! purging): a fresh `sluice` process aborts before the write, right after it, or right after
//! it as a power loss (unsynced writes dropped: `SLUICE_CRASH_AT`, `SLUICE_CRASH_POWER_LOSS`).
//! Another fresh process recovers, and the sink must hold exactly the rows of an oracle that
//! does not use Sluice (the same SQL as one DataFusion batch query).

use crate::common::*;

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

/// Runs the pipeline `setup` writes once, in a fresh process, to count its writes and take
/// the expected rows from `expected_of`; then for every write runs it again in a fresh
/// process that aborts before the write, right after it, and right after it as a power loss,
/// restarts it in another fresh process, and compares the sink with the expected rows.
async fn enumerate(
    label: &str,
    sink: &impl SinkUnderTest,
    setup: impl Fn(&Workspace) -> String,
    expected_of: impl AsyncFn(&Workspace) -> Vec<String>,
) {
    let clean = Workspace::new();
    let pipeline = write_pipeline(&clean, &setup(&clean));
    let writes = clean_run_writes(&clean, &pipeline);
    let expected = expected_of(&clean).await;
    assert!(!expected.is_empty());
    assert_eq!(sink.rows(&clean).await, expected, "the clean run");
    assert!(
        writes.len() > 10,
        "a multi-batch run has many writes, got {writes:?}"
    );

    let (mut reached, mut restarts, mut compared, mut dupes, mut losses) = (0, 0, 0, 0, 0);
    for (k, write) in (1..).zip(&writes) {
        for crash in Crash::ALL {
            let ws = Workspace::new();
            let pipeline = write_pipeline(&ws, &setup(&ws));
            let out = run_quietly(&pipeline, &crash.env(k, ""));
            assert!(
                crashed(&out),
                "{crash:?} write {write} was not reached ({}): {}",
                out.status,
                stderr(&out)
            );
            reached += 1;
            let again = run_quietly(&pipeline, &[]);
            restarts += 1;
            assert!(
                again.status.success(),
                "restart after {crash:?} write {write}: {}",
                stderr(&again)
            );
            let got = sink.rows(&ws).await;
            let (n, d, l) = compare(&expected, &got);
            assert_eq!(
                (d, l),
                (0, 0),
                "{crash:?} write {write}: {d} duplicates, {l} lost"
            );
            compared += n;
            dupes += d;
            losses += l;
        }
    }
    println!(
        "crash points ({label}; {}): {} writes, {reached} crash points reached in fresh processes \
         (before, after, and after as a power loss), {restarts} restarts, {compared} rows \
         compared, {dupes} duplicates, {losses} losses",
        sink.name(),
        writes.len()
    );
    assert_eq!(reached, 3 * writes.len());
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

/// A session-window aggregation in append mode: crashes while sessions merge across batches
/// (the state's deltas then remove the merged sessions' keys), while closed sessions are
/// written, and in the batch without input that closes the last ones. The oracle finds the
/// sessions with window functions (a new session where a click comes more than the gap after
/// the one before), independent of `session_window`.
#[tokio::test]
async fn every_crash_point_of_a_session_window_aggregation_recovers_exactly_once() {
    // Each user clicks every 23 s; dropping 10 ids in 50 breaks some sessions (gap 30 s).
    const SESSIONS: &str = "SELECT user_id, s['start'] AS session_start, s['end'] AS session_end, n, biggest FROM (SELECT user_id, session_window(ts, INTERVAL '30 seconds') AS s, count(*) AS n, max(amount) AS biggest FROM clicks WHERE id % 50 < 40 GROUP BY user_id, session_window(ts, INTERVAL '30 seconds'))";
    const BATCH_SESSIONS: &str = "WITH kept AS (SELECT user_id, ts, amount FROM clicks WHERE id % 50 < 40), \
        marked AS (SELECT *, CASE WHEN ts > lag(ts) OVER (PARTITION BY user_id ORDER BY ts) + INTERVAL '30 seconds' \
          OR lag(ts) OVER (PARTITION BY user_id ORDER BY ts) IS NULL THEN 1 ELSE 0 END AS starts FROM kept), \
        numbered AS (SELECT *, sum(starts) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS session FROM marked) \
        SELECT user_id, min(ts) AS session_start, max(ts) + INTERVAL '30 seconds' AS session_end, \
          count(*) AS n, max(amount) AS biggest FROM numbered GROUP BY user_id, session";
    // The last click is 199 s in: the final watermark (10 s delay) closes every session
    // ending by 189 s.
    let closed = format!(
        "SELECT user_id, session_start, session_end, n, biggest FROM ({BATCH_SESSIONS}) \
         WHERE session_end <= arrow_cast({}, 'Timestamp(Nanosecond, None)')",
        1_762_000_000_000_000_000i64 + 189 * 1_000_000_000
    );
    enumerate_crash_points(Scenario {
        format: "json",
        files: 5,
        per_batch: 1,
        query: SESSIONS,
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

/// A grouped aggregation in complete mode, `per_batch` files a batch.
fn complete_mode(per_batch: usize) -> Scenario<'static> {
    const GROUPED: &str = "SELECT page, count(*) AS n, max(amount) AS top, count(DISTINCT user_id) AS users FROM clicks GROUP BY page";
    Scenario {
        format: "json",
        files: 4,
        per_batch,
        query: GROUPED,
        source_extra: "",
        pipeline_extra: "retain_batches: 2\nsnapshot_every: 2\noutput_mode: complete\n".into(),
        expected_sql: GROUPED.to_string(),
    }
}

/// A grouped aggregation in complete mode: crashes while each batch's files replace the
/// earlier batches' files, and while the state snapshots and deltas are written.
#[tokio::test]
async fn every_crash_point_of_a_complete_mode_aggregation_recovers_exactly_once() {
    enumerate_crash_points(complete_mode(1)).await;
}

/// The enumerations above, unchanged but for `engine: distributed` over two `sluice worker`
/// processes, which live on through every crash and restart of the driver: a stateless run
/// and a grouped aggregation, two files a batch, so that each batch's reads (and the
/// aggregation's partial phase) run on the workers.
#[cfg(feature = "distributed")]
#[tokio::test]
async fn every_crash_point_of_a_distributed_run_recovers_exactly_once() {
    use crate::distributed::{distributed, read_files, two_workers};
    for mut scenario in [Scenario::stateless("json", 5, 2, 2), complete_mode(2)] {
        let ws = Workspace::new();
        let workers = two_workers(&ws);
        scenario
            .pipeline_extra
            .push_str(&distributed(&[&workers[0], &workers[1]], ""));
        enumerate_crash_points(scenario).await;
        for worker in &workers {
            assert!(read_files(worker), "the workers read: {}", worker.said());
        }
    }
}

/// A deduplication feeding an aggregation, complete mode: crashes while both operators'
/// states are written (the deduplication's forgetting what the watermark closed), and while
/// the table is replaced. 15 s windows straddle the files, so a (page, window) is seen again
/// by the next batch and must not count twice.
#[tokio::test]
async fn every_crash_point_of_a_deduplication_feeding_an_aggregation_recovers_exactly_once() {
    const DEDUP_THEN_COUNT: &str = "SELECT page, count(*) AS windows, max(w) AS last_window FROM \
        (SELECT DISTINCT page, date_bin(INTERVAL '15 seconds', ts) AS w FROM clicks) GROUP BY page";
    enumerate_crash_points(Scenario {
        format: "json",
        files: 4,
        per_batch: 1,
        query: DEDUP_THEN_COUNT,
        source_extra: "    watermark: { column: ts, delay: 10s }\n",
        pipeline_extra: "retain_batches: 2\nsnapshot_every: 2\noutput_mode: complete\n".into(),
        // The events are in order: no row is late, so the batch SQL over all of them.
        expected_sql: DEDUP_THEN_COUNT.to_string(),
    })
    .await;
}

/// An aggregation in update mode: the sink is a changelog. One file per batch, so batch `k`
/// changes exactly the users of file `k`: the changelog must be, for each `k`, the batch SQL
/// over files `0..=k` limited to the users in file `k` (computed by DataFusion alone).
#[tokio::test]
async fn every_crash_point_of_an_update_mode_aggregation_recovers_exactly_once() {
    const PER_USER: &str =
        "SELECT user_id, count(*) AS n, max(amount) AS top FROM clicks GROUP BY user_id";
    const FILES: i64 = 4;
    const ROWS: i64 = 40;
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), "json", FILES as usize, ROWS, 0);
        pipeline_yaml(ws, "json", PER_USER, 1, "").replace(
            "trigger:",
            "output_mode: update\nsnapshot_every: 3\nretain_batches: 2\ntrigger:",
        )
    };
    enumerate(
        "update mode, against each batch's changed users by batch SQL",
        &PARQUET,
        setup,
        async |clean: &Workspace| {
            let mut changelog = Vec::new();
            for k in 0..FILES {
                let (start, end) = (k * ROWS, (k + 1) * ROWS);
                let batch_k = format!(
                    "SELECT user_id, count(*) AS n, max(amount) AS top FROM clicks \
                     WHERE id < {end} GROUP BY user_id HAVING user_id IN \
                     (SELECT user_id FROM clicks WHERE id >= {start} AND id < {end})"
                );
                changelog.extend(oracle(&clean.path("in"), "json", &batch_k).await);
            }
            changelog.sort();
            changelog
        },
    )
    .await;
}

/// A join of two streams: crashes while each side's kept rows are written and purged. The
/// inner join, and the FULL join, whose kept rows also record whether they have matched and
/// whose rows without a match are emitted when the watermark lets them go.
#[tokio::test]
async fn every_crash_point_of_a_stream_stream_join_recovers_exactly_once() {
    for kind in ["", "FULL "] {
        join_crash_points(kind).await;
    }
}

async fn join_crash_points(kind: &'static str) {
    let join = format!(
        "SELECT v.id AS view, b.id AS buy, v.user_id FROM views v {kind}JOIN buys b \
         ON v.user_id = b.user_id AND b.ts BETWEEN v.ts AND v.ts + INTERVAL '20 seconds'"
    );
    let join = join.as_str();
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
            "name: join\ncheckpoint: {}\nsources:\n{}{}query: |\n  {join}\noutput_mode: append\nsnapshot_every: 2\nretain_batches: 2\ntrigger: available-now\nsink: {{ kind: files, path: {}, format: parquet }}\n",
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
            // Rows without a match that the final watermark (the views' last time, 119 s in,
            // less the 5 s delay) has not let go are not emitted yet.
            let watermark = 1_762_000_000_000_000_000i64 + 114_000_000_000;
            let until = format!("to_timestamp_nanos({watermark})");
            sql_rows(
                &ctx,
                &format!(
                    "{join} WHERE (v.id IS NOT NULL AND b.id IS NOT NULL) OR (b.id IS NULL AND \
                     v.ts + INTERVAL '20 seconds' < {until}) OR (v.id IS NULL AND b.ts < {until})"
                ),
            )
            .await
        },
    )
    .await;
}

/// Crashes again during recovery: batch 1 stops before its manifest; its recovery stops
/// there too, then right after its commit as a power loss (the commit is lost); the last run
/// finishes. Each crash point must be the one named.
#[test]
fn a_crash_during_recovery_recovers_too() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 40, 0);
    let pipeline = write_pipeline(&ws, &pipeline_yaml(&ws, "json", QUERY, 1, ""));
    for (crash, k, filter, names) in [
        (
            Crash::Before,
            2,
            "_sluice/manifest/",
            "out/_sluice/manifest/1)",
        ),
        (
            Crash::Before,
            1,
            "_sluice/manifest/",
            "out/_sluice/manifest/1)",
        ),
        (Crash::PowerLoss, 1, "commits/", "ckpt/commits/1)"),
    ] {
        let out = run_quietly(&pipeline, &crash.env(k, filter));
        assert!(crashed(&out), "{crash:?} {k} {filter}: {}", stderr(&out));
        assert!(stderr(&out).contains(names), "{}", stderr(&out));
    }
    assert!(
        !ws.path("ckpt/commits/1").exists(),
        "the power loss took the commit back"
    );
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", QUERY));
    assert_eq!(
        compare(&expected, &rt.block_on(sink_rows(&ws.path("out")))),
        (expected.len(), 0, 0)
    );
}

/// A pending batch finishes with the pipeline file it was planned with: a query, sink folder
/// and sink format edited while batch 1 was in flight take effect from batch 2.
#[test]
fn a_pending_batch_finishes_with_the_pipeline_file_it_was_planned_with() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let planned = "SELECT id, page FROM clicks";
    let v1 =
        pipeline_yaml(&ws, "json", planned, 1, "").replace("format: parquet }", "format: json }");
    let pipeline = write_pipeline(&ws, &v1);
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let out = run_quietly(&pipeline, &Crash::Before.env(1, "_sluice/manifest/"));
    assert!(crashed(&out), "{}", stderr(&out));

    let edited = "SELECT id, upper(page) AS page, amount FROM clicks";
    let v2 = pipeline_yaml(&ws, "json", edited, 1, "").replace(&ws.p("out"), &ws.p("out2"));
    write_pipeline(&ws, &v2);
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The run says so: the user edited the file and may expect the edit to apply at once.
    assert!(
        stderr(&out).contains("batch 1 was planned before pipeline `test`'s file changed")
            && stderr(&out).contains("the edit applies from batch 2"),
        "{}",
        stderr(&out)
    );

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let as_planned = rt.block_on(oracle(
        &ws.path("in"),
        "json",
        &format!("{planned} WHERE id < 80"),
    ));
    let json = FilesSinkUnderTest("json", "SELECT id, page FROM sink");
    assert_eq!(
        rt.block_on(json.rows(&ws)),
        as_planned,
        "batches 0 and 1 as the first pipeline file says: its query, into out/ as JSON"
    );
    let as_edited = rt.block_on(oracle(
        &ws.path("in"),
        "json",
        &format!("{edited} WHERE id >= 80"),
    ));
    assert_eq!(
        rt.block_on(sink_rows(&ws.path("out2"))),
        as_edited,
        "batch 2 as the edited file says: its query, into out2/ as Parquet"
    );
}

/// A source connector through every crash point: the rate source regenerates a batch's range
/// exactly, so whichever write a run dies at, the sink ends with each row once. The oracle is
/// the generator's definition (row `i`: `value = i` at `start + i / rows_per_second`).
#[tokio::test]
async fn every_crash_point_of_a_rate_source_recovers_exactly_once() {
    const START_US: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
    let setup = |ws: &Workspace| {
        format!(
            r#"
name: ticks
checkpoint: {ckpt}
sources:
  ticks:
    kind: rate
    rows_per_second: 50
    start_time: 2026-01-01T00:00:00Z
    max_rows_per_batch: 40
    max_rows: 130
query: SELECT value, CAST(timestamp AS BIGINT) AS us FROM ticks WHERE value % 3 <> 1
retain_batches: 2
trigger: available-now
sink: {sink}
"#,
            ckpt = ws.p("ckpt"),
            sink = PARQUET.sink_yaml(ws),
        )
    };
    enumerate(
        "rate source, 130 rows, 40 per batch",
        &PARQUET,
        setup,
        async |_: &Workspace| {
            let mut rows: Vec<String> = (0..130_i64)
                .filter(|v| v % 3 != 1)
                .map(|v| format!("{v}|{}", START_US + v * 1_000_000 / 50))
                .collect();
            rows.sort();
            rows
        },
    )
    .await;
}

/// The NATS source through every crash point, into an aggregation: whichever write a
/// run dies at, the table ends equal to the batch SQL over the same rows (written as a JSON
/// file, not read back from the server). The stream is filled once; every run reads it.
#[tokio::test]
async fn every_crash_point_of_a_nats_source_recovers_exactly_once() {
    // Integer sums and a max: the same whatever order the batches add them in.
    const QUERY: &str =
        "SELECT page, count(*) AS n, sum(id) AS ids, max(amount) AS top FROM clicks GROUP BY page";
    let stream = crate::nats::unique("crash");
    let js = crate::nats::context().await;
    crate::nats::create_stream(&js, &stream).await;
    let rows = clicks(0, 90);
    crate::nats::publish(
        &js,
        &format!("{stream}.x"),
        &crate::nats::json_values(&rows),
    )
    .await;
    let setup = |ws: &Workspace| {
        write_batch(&ws.path("in/clicks.json"), "json", &rows);
        format!(
            r#"
name: nats
checkpoint: {ckpt}
sources:
  clicks:
    kind: nats
    url: {url}
    stream: {stream}
    format: json
    schema: {CLICK_SCHEMA_YAML}
    max_records_per_batch: 25
query: {QUERY}
output_mode: complete
snapshot_every: 2
retain_batches: 2
trigger: available-now
sink: {sink}
"#,
            ckpt = ws.p("ckpt"),
            url = crate::nats::server(),
            sink = PARQUET.sink_yaml(ws),
        )
    };
    enumerate(
        "NATS source, 90 messages, 25 per batch, complete mode",
        &PARQUET,
        setup,
        async |clean: &Workspace| oracle(&clean.path("in"), "json", QUERY).await,
    )
    .await;
}

/// The nexmark source through every crash point, into a stateful query: whichever write a run
/// dies at, the table ends equal to the batch SQL over the same events, generated as files by
/// `sluice gen nexmark` (the generator's other path).
#[tokio::test]
async fn every_crash_point_of_a_nexmark_source_recovers_exactly_once() {
    const QUERY: &str =
        "SELECT channel, count(*) AS bids, max(price) AS top FROM bid GROUP BY channel";
    let setup = |ws: &Workspace| {
        format!(
            r#"
name: nexmark
checkpoint: {ckpt}
sources:
  bid: {{ kind: nexmark, table: bid, seed: 3, max_events: 2000, max_events_per_batch: 600 }}
query: {QUERY}
output_mode: complete
snapshot_every: 2
retain_batches: 2
trigger: available-now
sink: {sink}
"#,
            ckpt = ws.p("ckpt"),
            sink = PARQUET.sink_yaml(ws),
        )
    };
    enumerate(
        "nexmark source, 2000 events, 600 per batch, complete mode",
        &PARQUET,
        setup,
        async |clean: &Workspace| {
            let events = clean.p("events");
            let out = run_bin(
                &[
                    "gen", "nexmark", "--events", "2000", "--seed", "3", "--format", "parquet",
                    "--out", &events,
                ],
                clean.dir.path(),
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let ctx = datafusion::prelude::SessionContext::new();
            ctx.register_parquet(
                "bid",
                &format!("{events}/bid"),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .expect("bids");
            sql_rows(&ctx, QUERY).await
        },
    )
    .await;
}

/// The Delta Lake sink, its table read back by PyPI `deltalake` (`tests/readers/delta.py`).
#[cfg(feature = "delta")]
struct DeltaSinkUnderTest {
    extra: &'static str,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

#[cfg(feature = "delta")]
impl SinkUnderTest for DeltaSinkUnderTest {
    fn name(&self) -> String {
        "delta sink".into()
    }

    fn sink_yaml(&self, ws: &Workspace) -> String {
        format!("{{ kind: delta, path: {}{} }}", ws.p("table"), self.extra)
    }

    async fn rows(&self, ws: &Workspace) -> Vec<String> {
        crate::delta::table_rows(
            &ws.path("table"),
            crate::delta::Reader::Deltalake,
            std::sync::Arc::clone(&self.schema),
        )
    }
}

/// Files to Delta through every crash point: each checkpoint write and each write of the
/// Delta table (its data files, its log entry, its checkpoint of the log), before, after, and
/// after as a power loss; in append mode, and in update mode (each batch merged on its key,
/// so a crash mid-merge must neither lose nor double a key's change).
#[cfg(feature = "delta")]
#[tokio::test]
async fn every_crash_point_of_a_files_to_delta_run_recovers_exactly_once() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let columns = |fields: &[(&str, DataType)]| {
        std::sync::Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    };
    let append = DeltaSinkUnderTest {
        extra: "",
        schema: columns(&[
            ("id", DataType::Int64),
            ("page", DataType::Utf8),
            ("amount", DataType::Float64),
        ]),
    };
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), "json", 3, 40, 0);
        pipeline_yaml(ws, "json", QUERY, 1, "")
            .replace(&PARQUET.sink_yaml(ws), &append.sink_yaml(ws))
    };
    enumerate("append", &append, setup, async |clean: &Workspace| {
        oracle(&clean.path("in"), "json", QUERY).await
    })
    .await;

    const PER_PAGE: &str = "SELECT page, count(*) AS n, sum(id) AS total FROM clicks GROUP BY page";
    let update = DeltaSinkUnderTest {
        extra: ", key: [page]",
        schema: columns(&[
            ("page", DataType::Utf8),
            ("n", DataType::Int64),
            ("total", DataType::Int64),
        ]),
    };
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), "json", 3, 40, 0);
        pipeline_yaml(ws, "json", PER_PAGE, 1, "")
            .replace(&PARQUET.sink_yaml(ws), &update.sink_yaml(ws))
            .replace(
                "trigger:",
                "output_mode: update\nretain_batches: 2\ntrigger:",
            )
    };
    enumerate(
        "update mode, merged on page",
        &update,
        setup,
        async |clean: &Workspace| oracle(&clean.path("in"), "json", PER_PAGE).await,
    )
    .await;
}

/// Audit 88b: a rewind's deletes were never synced, so a power loss after it (or part-way)
/// brought back commits whose output the sink had taken back, with no rewind record to say so:
/// the run then blamed the sink. A rewind is crashed at each of its writes (before, after, after
/// as a power loss); the next run either carries on or names the unfinished rewind, and once
/// that is run again, the sink holds the oracle's rows exactly once.
#[tokio::test]
async fn every_crash_point_of_a_rewind_recovers_exactly_once() {
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), "json", 4, 40, 0);
        let pipeline = write_pipeline(ws, &pipeline_yaml(ws, "json", QUERY, 1, ""));
        let out = run_quietly(&pipeline, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        pipeline
    };
    let rewind = |ws: &Workspace, env: &[(&str, String)]| {
        sluice_bin()
            .args(["rewind", &ws.p("ckpt"), "--to", "1"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("rewind")
    };
    let clean = Workspace::new();
    setup(&clean);
    let log = clean.path("rewind-writes.log");
    let out = rewind(&clean, &[("SLUICE_WRITE_LOG", log.display().to_string())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let writes: Vec<String> = std::fs::read_to_string(&log)
        .expect("write log")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(writes.len() > 4, "{writes:?}");
    let expected = oracle(&clean.path("in"), "json", QUERY).await;
    let mut reached = 0;
    for (k, write) in (1..).zip(&writes) {
        for crash in Crash::ALL {
            let ws = Workspace::new();
            let pipeline = setup(&ws);
            let out = rewind(&ws, &crash.env(k, ""));
            assert!(crashed(&out), "{crash:?} {write}: {}", stderr(&out));
            reached += 1;
            let mut again = run_quietly(&pipeline, &[]);
            if !again.status.success() {
                let said = stderr(&again);
                assert!(
                    said.contains("did not finish") && said.contains("Finish it"),
                    "{crash:?} {write}: the run names the unfinished rewind, not another fault: \
                     {said}"
                );
                let out = rewind(&ws, &[]);
                assert!(out.status.success(), "{crash:?} {write}: {}", stderr(&out));
                again = run_quietly(&pipeline, &[]);
            }
            assert!(
                again.status.success(),
                "{crash:?} {write}: {}",
                stderr(&again)
            );
            let got = sink_rows(&ws.path("out")).await;
            let (_, d, l) = compare(&expected, &got);
            assert_eq!(
                (d, l),
                (0, 0),
                "{crash:?} {write}: {d} duplicates, {l} lost"
            );
        }
    }
    assert_eq!(reached, 3 * writes.len());
}
