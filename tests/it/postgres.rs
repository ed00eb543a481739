//! The PostgreSQL sink against a real PostgreSQL server (Debian's PostgreSQL, started by
//! `tests/servers/postgres/start` or reused where one listens; `.ci/run` starts it). Every
//! table is read back with a plain client and compared with the same SQL as one DataFusion
//! batch query over the same input.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice::sink::SinkConnector;

use crate::common::*;
use crate::contract::{SinkFixture, sink_contract};

/// The shared server's connection string: `SLUICE_PG_URL`, or the server the start script
/// starts (or finds) on its default port.
pub fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("SLUICE_PG_URL") {
            return url;
        }
        start_server(None)
    })
}

/// Runs the start script (on `port`, with its own data folder, where given) and returns the
/// connection string it prints.
fn start_server(port: Option<(u16, &std::path::Path)>) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/postgres/start");
    let mut cmd = Command::new(&script);
    if let Some((port, dir)) = port {
        cmd.env("SLUICE_PG_PORT", port.to_string())
            .env("SLUICE_PG_DIR", dir);
    }
    let out = cmd.output().expect("run the PostgreSQL start script");
    assert!(
        out.status.success(),
        "PostgreSQL did not start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A plain client of `url`.
async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A table name no other test uses.
/// An append pipeline named `name` of the files source into `table` (made where missing),
/// with `batch_column: b` and the `extra` sink settings (whole lines), on checkpoint `ckpt`.
fn batch_column_pipeline(ws: &Workspace, name: &str, table: &str, extra: &str) -> String {
    format!(
        "name: {name}\ncheckpoint: {ckpt}\nsources:\n{source}query: |\n  {QUERY}\ntrigger: \
         available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  \
         create_table: true\n  batch_column: b\n{extra}",
        ckpt = ws.p("ckpt"),
        source = files_source(ws),
        url = server(),
    )
}

/// An update-mode pipeline counting rows per `page` (one file a batch) into `table`, with
/// `sink` (whole lines: `key:`, `create_table:`), on checkpoint `ckpt`.
fn page_count_pipeline(ws: &Workspace, table: &str, sink: &str) -> String {
    format!(
        "name: pages\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, format: json, schema: {{ page: string, v: bigint }}, max_files_per_batch: 1 }}\nquery: SELECT page, count(*) AS n FROM s GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n{sink}",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        url = server(),
    )
}

/// The rows of `page_count_pipeline`'s table, as `page|n`, sorted.
async fn page_counts(table: &str) -> Vec<String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    table_rows(server(), table, schema).await
}

/// Runs `statements` on the test server, as a user at `psql` would.
/// Runs the SQL a message advises: its first backquoted text that starts with `starting`.
async fn run_advised_sql(message: &str, starting: &str) {
    let statements = message
        .split('`')
        .find(|part| part.starts_with(starting))
        .unwrap_or_else(|| panic!("no `{starting} ...` in: {message}"));
    execute(statements).await;
}

async fn execute(statements: &str) {
    client(server())
        .await
        .batch_execute(statements)
        .await
        .unwrap_or_else(|e| panic!("{statements}: {e}"));
}

/// Runs `pipeline`, which must be refused (exit 2) with a message holding `says`; the message.
fn run_refused(pipeline: &std::path::Path, says: &str) -> String {
    let run = sluice_run(pipeline);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{said}");
    assert!(said.contains(says), "no `{says}` in: {said}");
    said
}

/// How many rows `table` holds.
async fn row_count(table: &str) -> usize {
    let n: i64 = client(server())
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0);
    usize::try_from(n).expect("a count")
}

pub fn unique_table(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The rows of `table` (its columns `schema` names) as a plain client reads them, decoded
/// into `schema`'s types and rendered as the oracle renders rows, sorted.
pub async fn table_rows(url: &str, table: &str, schema: SchemaRef) -> Vec<String> {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    let rows = client(url)
        .await
        .query(
            &format!(
                "SELECT row_to_json(r)::text FROM (SELECT {} FROM \"{table}\") r",
                columns.join(", ")
            ),
            &[],
        )
        .await
        .expect("read the table");
    let text: String = rows
        .iter()
        .map(|r| format!("{}\n", r.get::<_, String>(0)))
        .collect();
    crate::common::rows(&json_lines(schema, text.as_bytes()))
}

fn sink_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

const QUERY: &str = "SELECT id, page, amount FROM clicks WHERE amount > 30";

fn files_source(ws: &Workspace) -> String {
    format!(
        "  clicks:\n    kind: files\n    path: {}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 1\n",
        ws.p("in")
    )
}

fn sluice_run(pipeline: &std::path::Path) -> std::process::Output {
    run_quietly(pipeline, &[])
}

struct PostgresSinkFixture {
    table: String,
}

#[async_trait::async_trait]
impl SinkFixture for PostgresSinkFixture {
    fn connector(&self) -> Arc<dyn SinkConnector> {
        let yaml = format!(
            "url: {}\ntable: {}\ncreate_table: true\nbatch_column: _sluice_batch\nretry: {{ backoff: 100ms }}",
            server(),
            self.table
        );
        sluice::sink::configure("postgres", &serde_yaml::from_str(&yaml).expect("yaml"))
            .expect("postgres")
    }

    async fn visible_rows(&self) -> Option<Vec<String>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        Some(table_rows(server(), &self.table, schema).await)
    }

    fn log_entries(&self) -> Option<usize> {
        None
    }

    fn interrupted_through_stores(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn the_postgres_sink_keeps_the_sink_contract() {
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let table = unique_table("contract");
    sink_contract(&PostgresSinkFixture { table }, &checkpoint).await;
}

/// Files in, PostgreSQL out, in each output mode: append (a filter), update (an aggregation
/// written over its key) and complete (the same aggregation replacing the table each batch);
/// each table equals the batch query over every file.
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
        let table = unique_table(mode);
        let yaml = format!(
            "name: pg\ncheckpoint: {ckpt}\nsources:\n{source}query: {query}\noutput_mode: {mode}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n{extra}",
            ckpt = ws.p("ckpt"),
            source = files_source(&ws),
            url = server(),
        );
        let pipeline = write_pipeline(&ws, &yaml);
        let run = sluice_run(&pipeline);
        assert!(run.status.success(), "{mode}: {}", stderr(&run));
        let expected = oracle(&ws.path("in"), "json", query).await;
        assert_eq!(
            table_rows(server(), &table, schema).await,
            expected,
            "{mode}"
        );
        // Four batches, one progress row moved to the last.
        let progress = client(server())
            .await
            .query_one(
                "SELECT batch FROM _sluice_progress WHERE pipeline = $1",
                &[&checkpoint_id(&ws)],
            )
            .await
            .expect("progress row");
        assert_eq!(progress.get::<_, i64>(0), 3, "{mode}");
    }
}

/// The pipeline id of the checkpoint in `ws/ckpt`.
fn checkpoint_id(ws: &Workspace) -> String {
    let out = run_bin(&["inspect", "--json", &ws.p("ckpt")], ws.dir.path());
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    view["metadata"]["id"]
        .as_str()
        .expect("pipeline id")
        .to_string()
}

/// Files to PostgreSQL through every crash point: every checkpoint write and the sink's
/// commit, before, after, and after as a power loss; each crashed run is restarted in a fresh
/// process, and the table then holds each expected row exactly once.
#[tokio::test]
async fn every_crash_point_of_a_files_to_postgres_run_recovers_exactly_once() {
    let input = Workspace::new();
    write_clicks(&input.path("in"), "json", 3, 30, 0);
    let expected = oracle(&input.path("in"), "json", QUERY).await;
    let setup = |ws: &Workspace, table: &str| {
        format!(
            "name: crash\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\nretain_batches: 2\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
            ckpt = ws.p("ckpt"),
            source = files_source(&input),
            url = server(),
        )
    };
    let clean = Workspace::new();
    let clean_table = unique_table("crash");
    let pipeline = write_pipeline(&clean, &setup(&clean, &clean_table));
    let writes = clean_run_writes(&clean, &pipeline);
    assert!(
        writes
            .iter()
            .any(|w| w.contains("external postgresql://") && w.contains("commit batch 2")),
        "the sink's commit is a crash point: {writes:?}"
    );
    assert_eq!(
        table_rows(server(), &clean_table, sink_schema()).await,
        expected
    );
    let mut reached = 0;
    for (k, write) in (1..).zip(&writes) {
        for crash in Crash::ALL {
            let ws = Workspace::new();
            let table = unique_table("crash");
            let pipeline = write_pipeline(&ws, &setup(&ws, &table));
            let crashed = run_quietly(&pipeline, &crash.env(k, ""));
            assert!(
                stderr(&crashed).contains("sluice: crash point reached"),
                "{crash:?} write {write} not reached: {}",
                stderr(&crashed)
            );
            reached += 1;
            let again = sluice_run(&pipeline);
            assert!(
                again.status.success(),
                "restart after {crash:?} write {write}: {}",
                stderr(&again)
            );
            let got = table_rows(server(), &table, sink_schema()).await;
            let (_, dupes, lost) = compare(&expected, &got);
            assert_eq!((dupes, lost), (0, 0), "{crash:?} write {write}");
        }
    }
    println!(
        "postgres crash points: {} writes, {reached} crash points reached and recovered",
        writes.len()
    );
}

/// A run stopped (SIGSTOP) inside batch 1's transaction, right before its commit, while a
/// newer run takes over and finishes; resumed, it commits nothing (the newer run ended its
/// session) and exits 1. The checkpoint is on S3 (moto), where no lock keeps the newer run out.
#[tokio::test]
async fn a_run_paused_before_its_commit_commits_nothing_when_resumed() {
    let moto = crate::s3::Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 30, 0);
    let table = unique_table("zombie");
    // `now()` makes a late run's rows differ from the newer run's.
    let query =
        "SELECT id, page, amount, CAST(now() AS VARCHAR) AS at FROM clicks WHERE amount > 30";
    let yaml = format!(
        "name: zombie\ncheckpoint: s3://sluice/{ckpt}\nsources:\n{source}query: {query}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = unique_table("ckpt"),
        source = files_source(&ws),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let pipeline = pipeline.to_str().expect("utf-8");
    let mut old = moto
        .sluice()
        .args(["run", pipeline, "--progress", "none"])
        .env("SLUICE_STOP_AT", "commit batch 1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_stopped(&old);
    let newer = moto
        .sluice()
        .args(["run", pipeline, "--progress", "none"])
        .output()
        .expect("newer run");
    assert!(newer.status.success(), "{}", stderr(&newer));
    let at_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("at", DataType::Utf8, true),
    ]));
    let before = table_rows(server(), &table, Arc::clone(&at_schema)).await;
    Command::new("kill")
        .args(["-CONT", &old.id().to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = old.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the resumed run did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    old.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("a newer run (epoch 1)"), "{err}");
    assert_eq!(
        table_rows(server(), &table, at_schema).await,
        before,
        "the late run committed nothing"
    );
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(table_rows(server(), &table, sink_schema()).await, expected);
}

/// A run of an older epoch is refused by the progress row itself: after a newer run wrote a
/// batch, the older run's next transaction changes nothing.
#[tokio::test]
async fn a_transaction_of_an_older_epoch_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let location = sluice::storage::Location::open(
        &dir.path().join("ckpt").display().to_string(),
        true,
        false,
        None,
    )
    .expect("ckpt");
    let table = unique_table("epochs");
    let fixture = PostgresSinkFixture {
        table: table.clone(),
    };
    let older = sluice::checkpoint::Checkpoint::open(location.clone(), "epochs")
        .await
        .expect("checkpoint");
    let ctx = |id| sluice::sink::SinkContext {
        label: "",
        pipeline: id,
        replace: false,
        update: false,
        part: None,
        create: true,
        sync: false,
        hook: None,
    };
    let id = older.metadata().id;
    let old_fence = older.fence();
    let old_sink = fixture.connector().open(&ctx(id)).expect("open");
    let rows = |first: i64| crate::contract::output(first, 2);
    old_sink
        .commit(sluice::checkpoint::BatchId(0), &old_fence, rows(0))
        .await
        .expect("batch 0");
    // The older run lets go of the checkpoint's lock (as a paused or partitioned run would
    // lose it); its fence stays.
    drop(older);
    let newer = sluice::checkpoint::Checkpoint::open(location, "epochs")
        .await
        .expect("newer checkpoint");
    assert!(newer.fence().epoch() > old_fence.epoch());
    let new_sink = fixture.connector().open(&ctx(id)).expect("open");
    new_sink
        .commit(sluice::checkpoint::BatchId(1), &newer.fence(), rows(10))
        .await
        .expect("batch 1");
    let refused = old_sink
        .commit(sluice::checkpoint::BatchId(2), &old_fence, rows(20))
        .await
        .expect_err("an older epoch is refused");
    assert!(refused.to_string().contains("newer run"), "{refused}");
    let visible = fixture.visible_rows().await.expect("rows");
    assert_eq!(visible, ["0|row 0", "10|row 10", "11|row 11", "1|row 1"]);
}

/// No server: the run retries as configured, then exits 1 naming the server, having
/// committed nothing. A server that stops mid-run (here, while a batch's transaction is open):
/// exit 1 with a clear message; with the server back, the next run finishes with every row once.
#[tokio::test]
async fn a_server_down_at_start_or_mid_run_fails_the_run_cleanly_and_the_next_run_finishes() {
    // Down at start: nothing listens on port 1.
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 20, 0);
    let yaml = format!(
        "name: down\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: host=127.0.0.1 port=1 user=sluice dbname=sluice\n  table: t\n  create_table: true\n  retry: {{ attempts: 2, backoff: 100ms, timeout: 2s }}\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("table `t`: connecting to postgresql://127.0.0.1:1/sluice: ")
            && err.contains("Connection refused")
            && err.contains("after 2 attempts"),
        "{err}"
    );
    assert!(!ws.path("ckpt/commits/0").exists());
    // Found before a batch is planned: no batch keeps the unreachable `url` (a corrected one
    // takes effect at once).
    assert!(!ws.path("ckpt/offsets/0").exists());

    // Down mid-run: a server of this test's own.
    let ws = Workspace::new();
    let port = 25433 + (std::process::id() % 500) as u16;
    let dir = ws.path("server");
    let url = start_server(Some((port, &dir)));
    let stop = || {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/postgres/start");
        let out = Command::new(&script)
            .arg("--stop")
            .env("SLUICE_PG_PORT", port.to_string())
            .env("SLUICE_PG_DIR", &dir)
            .output()
            .expect("stop");
        assert!(out.status.success());
    };
    write_clicks(&ws.path("in"), "json", 4, 20, 0);
    let table = unique_table("down");
    let yaml = format!(
        "name: down\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n  retry: {{ attempts: 3, backoff: 200ms, timeout: 5s }}\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let mut child = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ])
        .env("SLUICE_STOP_AT", "commit batch 2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_stopped(&child);
    stop();
    Command::new("kill")
        .args(["-CONT", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("postgresql://127.0.0.1:{port}/sluice/{table}")),
        "{err}"
    );
    assert!(err.contains("after 3 attempts"), "{err}");
    assert!(ws.path("ckpt/commits/1").exists() && !ws.path("ckpt/commits/2").exists());
    let url = start_server(Some((port, &dir)));
    let again = sluice_run(&pipeline);
    assert!(again.status.success(), "{}", stderr(&again));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(table_rows(&url, &table, sink_schema()).await, expected);
    stop();
}

/// A column PostgreSQL has no type for is refused before the first batch, naming it; a
/// secret named as `${VAR}` in the connection string is filled in from the environment and
/// appears in nothing the run leaves: not its errors, not the checkpoint's copy of the
/// pipeline, not `inspect`.
#[tokio::test]
async fn an_unmappable_column_is_refused_by_name_and_a_secret_is_never_written() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let yaml = format!(
        "name: types\ncheckpoint: {ckpt}\nsources:\n{source}query: SELECT id, NULL AS nothing FROM clicks\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
        url = server(),
        table = unique_table("types"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    // A mistake in the pipeline file: exit 2, and the refused run leaves no checkpoint.
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("column `nothing` is Null"),
        "{}",
        stderr(&run)
    );
    assert!(!ws.path("ckpt").exists());

    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let secret = "s3cr3t-never-shown-4711";
    let table = unique_table("secret");
    let yaml = format!(
        "name: secret\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url} password=${{SLUICE_TEST_PG_PASSWORD}}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "json",
        ])
        .env("SLUICE_TEST_PG_PASSWORD", secret)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(table_rows(server(), &table, sink_schema()).await, expected);
    let inspect = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let mut seen = String::from_utf8_lossy(&run.stdout).to_string();
    seen.push_str(&stderr(&run));
    seen.push_str(&String::from_utf8_lossy(&inspect.stdout));
    seen.push_str(&stderr(&inspect));
    for entry in walk(&ws.path("ckpt")) {
        seen.push_str(&String::from_utf8_lossy(
            &std::fs::read(&entry).expect("checkpoint file"),
        ));
    }
    assert!(
        seen.contains("${SLUICE_TEST_PG_PASSWORD}"),
        "the pipeline copy keeps the name"
    );
    assert!(!seen.contains(secret), "the secret leaked");
    // Without the variable the run stops naming it, not its value, before it plans a batch
    // (the sink connects first), so no batch keeps a pipeline file it cannot run with. The
    // setting is at fault, as with any mistake in the pipeline file: exit 2.
    let planned = std::fs::read_dir(ws.path("ckpt/offsets"))
        .expect("offsets")
        .count();
    write_clicks(&ws.path("in"), "json", 1, 10, 2);
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("environment variable `SLUICE_TEST_PG_PASSWORD`"),
        "{}",
        stderr(&run)
    );
    assert_eq!(
        std::fs::read_dir(ws.path("ckpt/offsets"))
            .expect("offsets")
            .count(),
        planned
    );
    // Walk 78 (3b): a value filled in elsewhere than a password's, which the server's error
    // quotes (`database "..." does not exist`), is masked too.
    // (The last `dbname` of a connection string is the one used.)
    let text = std::fs::read_to_string(&pipeline).expect("pipeline");
    let url = format!("{} dbname=${{SLUICE_TEST_PG_DB}}", server());
    std::fs::write(&pipeline, text.replacen(server(), &url, 1)).expect("pipeline");
    let run = sluice_bin()
        .args(["run", pipeline.to_str().expect("utf-8")])
        .env("SLUICE_TEST_PG_PASSWORD", secret)
        .env("SLUICE_TEST_PG_DB", "SecretDb4712")
        .output()
        .expect("run");
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("database \"***\" does not exist")
            && !stderr(&run).contains("SecretDb4712"),
        "{}",
        stderr(&run)
    );
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_postgres_kind_is_registered() {
    assert!(sluice::sink::KINDS.iter().any(|k| k.name == "postgres"));
}

/// Walk 7: a null group key in update mode is a row of its own in a table Sluice makes
/// (`UNIQUE NULLS NOT DISTINCT`), updated by later batches like any key.
#[tokio::test]
async fn a_null_group_key_is_a_row_of_its_own() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path("in/0.json"),
        "{\"page\":\"a\",\"v\":1}\n{\"page\":null,\"v\":2}\n",
    )
    .expect("input");
    let table = unique_table("nullkey");
    let yaml = format!(
        "name: nullkey\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, format: json, schema: {{ page: string, v: bigint }} }}\nquery: SELECT page, count(*) AS n, sum(v) AS total FROM s GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n  key: [page]\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::write(ws.path("in/1.json"), "{\"page\":null,\"v\":5}\n").expect("input");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("total", DataType::Int64, true),
    ]));
    // Sorted as text: the null key renders empty.
    assert_eq!(
        table_rows(server(), &table, schema).await,
        ["a|1|1", "|2|7"]
    );
}

/// Walk 7: a batch that failed in PostgreSQL (an existing table whose primary key refuses a
/// null key) left pending; the advice names a rewind, which takes back a batch the sink never
/// took (the progress row says so) even without `batch_column`, and the edited query then
/// runs it.
#[tokio::test]
async fn a_pending_batch_the_server_refused_can_be_taken_back() {
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let table = unique_table("refused");
    client(server())
        .await
        .batch_execute(&format!(
            "CREATE TABLE \"{table}\" (page text PRIMARY KEY, n bigint, total bigint)"
        ))
        .await
        .expect("create");
    let yaml = |query: &str| {
        format!(
            "name: refused\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, format: json, schema: {{ page: string, v: bigint }} }}\nquery: {query}\noutput_mode: update\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  key: [page]\n",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            url = server(),
        )
    };
    let pipeline = write_pipeline(
        &ws,
        &yaml("SELECT page, count(*) AS n, sum(v) AS total FROM s GROUP BY page"),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::write(ws.path("in/1.json"), "{\"page\":null,\"v\":5}\n").expect("input");
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    // The edit leaves the group key as it is, so the state follows it.
    let fixed = "SELECT page, count(*) AS n, sum(v) AS total FROM s WHERE page IS NOT NULL \
                 GROUP BY page";
    write_pipeline(&ws, &yaml(fixed));
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let advice = format!("sluice rewind {} --to 0", ws.p("ckpt"));
    assert!(stderr(&run).contains(&advice), "{}", stderr(&run));
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("total", DataType::Int64, true),
    ]));
    assert_eq!(table_rows(server(), &table, schema).await, ["a|1|1"]);
}

/// Walk 7: in update mode a sink's `key` that is not the query's GROUP BY columns would keep
/// stale rows and write two groups over one row: refused before any batch, naming the key to
/// set.
#[tokio::test]
async fn an_update_key_that_is_not_the_group_key_is_refused() {
    let ws = Workspace::new();
    let table = unique_table("badkey");
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let yaml = format!(
        "name: badkey\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, format: json, schema: {{ page: string, v: bigint }} }}\nquery: SELECT page, count(*) AS n FROM s GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n  key: [n]\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("`sink.key` is [`n`]") && stderr(&run).contains("set `key: [page]`"),
        "{}",
        stderr(&run)
    );
    assert!(!ws.path("ckpt").exists());
    // Walk 44 (U1): into a table that exists, whose unique index is on the group key, the
    // table's own check came first and advised an index on the wrong key.
    let existing = unique_table("keyed");
    execute(&format!(
        "CREATE TABLE {existing} (page text, n bigint); \
         ALTER TABLE {existing} ADD UNIQUE NULLS NOT DISTINCT (page)"
    ))
    .await;
    let yaml = yaml.replace(
        &format!("  table: {table}\n  create_table: true\n"),
        &format!("  table: {existing}\n"),
    );
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{said}");
    assert!(
        said.contains("set `key: [page]`") && !said.contains("ALTER TABLE"),
        "{said}"
    );
}

/// Walk 48 (1): a new checkpoint appending to a table another pipeline fills was refused only
/// where both kept their progress rows in one progress table; given another
/// `progress_table`, every batch was added again. The other pipeline's row is found in any
/// progress table of the database, named with its table, and the advice, followed, works.
/// The refused run leaves no progress table of its own behind.
#[tokio::test]
async fn a_new_checkpoint_with_its_own_progress_table_is_refused_over_a_filled_table() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("owned_elsewhere");
    let progress = unique_table("progress_b");
    let yaml = format!(
        "name: owned\ncheckpoint: {ckpt}\nsources:\n{source}query: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
        url = server(),
    );
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let count = || async {
        client(server())
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get::<_, i64>(0) as usize
    };
    assert_eq!(count().await, expected.len());

    let other =
        yaml.replace(&ws.p("ckpt"), &ws.p("ckpt-b")) + &format!("  progress_table: {progress}\n");
    let pipeline = write_pipeline(&ws, &other);
    let refused = sluice_run(&pipeline);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("another pipeline or checkpoint")
            && said.contains("its row in public._sluice_progress is")
            // Walk 64 (3): the other pipeline is named, not only by its id.
            && said.contains(&format!("with checkpoint {}, created", ws.p("ckpt"))),
        "{said}"
    );
    assert_eq!(count().await, expected.len());
    // Walk 48 (11b): the refused run left its progress table behind; it makes it only to
    // record a batch.
    let progress_exists = || async {
        client(server())
            .await
            .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&progress])
            .await
            .expect("to_regclass")
            .get::<_, bool>(0)
    };
    assert!(!progress_exists().await, "a refused run made {progress}");
    run_advised_sql(&said, "TRUNCATE").await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(count().await, expected.len());
    assert!(progress_exists().await);
}

/// Audit 90b #4: a table dropped (and made again by the next run) was said to hold the
/// batches of the pipeline whose progress row names it, and the advice was to empty it. The
/// row names the table dropped: that is said, with the row to delete, which then lets the
/// run go on.
#[tokio::test]
async fn a_progress_row_of_a_dropped_table_is_said_to_name_the_table_dropped() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let table = unique_table("dropped_owner");
    let yaml = format!(
        "name: dropped\ncheckpoint: {ckpt}\nsources:\n{source}query: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!("DROP TABLE {table}")).await;
    std::fs::remove_dir_all(ws.path("ckpt")).expect("a new checkpoint");
    let said = run_refused(&pipeline, "was dropped and made again");
    assert!(!said.contains("TRUNCATE"), "{said}");
    run_advised_sql(&said, "DELETE FROM").await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
}

/// Issue 13: a new checkpoint appending to a table another checkpoint's pipeline fills would
/// add every batch again (it starts from batch 0 under a new pipeline id). It is refused
/// before any row is written, exit 2, with the statements that start over; following them
/// works. An update-mode pipeline on a new checkpoint rewrites its keys: no harm, not refused.
#[tokio::test]
async fn a_new_checkpoint_over_a_table_another_pipeline_fills_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("owned");
    let yaml = format!(
        "name: owned\ncheckpoint: {ckpt}\nsources:\n{source}query: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let count = |client: tokio_postgres::Client| {
        let table = table.clone();
        async move {
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count")
                .get::<_, i64>(0) as usize
        }
    };
    assert_eq!(count(client(server()).await).await, expected.len());

    // The checkpoint is lost (or another is set): the table is refused, untouched, however
    // the pipeline spells it.
    std::fs::rename(ws.path("ckpt"), ws.path("ckpt-old")).expect("set the checkpoint aside");
    let pipeline = write_pipeline(
        &ws,
        &yaml.replace(
            &format!("table: {table}"),
            &format!("table: public.{table}"),
        ),
    );
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("another pipeline or checkpoint") && said.contains("TRUNCATE"),
        "{said}"
    );
    assert_eq!(count(client(server()).await).await, expected.len());
    // Refused before a batch is planned (walk 15, F3): the new checkpoint is not left behind.
    assert!(
        !ws.path("ckpt").exists(),
        "a refused new checkpoint left behind"
    );

    // The advice, followed: the table is filled once, by the new checkpoint.
    run_advised_sql(&said, "TRUNCATE").await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(count(client(server()).await).await, expected.len());
    // Walk 21: the old checkpoint, run again, was advised to start over; the table is the
    // newer checkpoint's now, and that is said.
    let old = write_pipeline(&ws, &yaml.replace(&ws.p("ckpt"), &ws.p("ckpt-old")));
    let refused = sluice_run(&old);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("If the other checkpoint (`")
            && said.contains("`) is the one meant to write this table, run that one"),
        "{said}"
    );
    assert_eq!(count(client(server()).await).await, expected.len());

    let grouped = unique_table("owned_keys");
    let yaml = format!(
        "name: owned\ncheckpoint: {ckpt}\nsources:\n{source}query: SELECT page, count(*) AS n FROM clicks GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {grouped}\n  create_table: true\n  key: [page]\n",
        ckpt = ws.p("ckpt-keys"),
        source = files_source(&ws),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    for _ in 0..2 {
        let run = sluice_run(&pipeline);
        assert!(run.status.success(), "{}", stderr(&run));
        std::fs::remove_dir_all(ws.path("ckpt-keys")).expect("a new checkpoint next");
    }
}

/// Walk 8: a pending batch whose `url` names a `${VAR}` that is unset now (with the pipeline
/// file edited meanwhile) was told to rewind, which did not help (the file it was planned with
/// names the same variable). It is told to set the variable; once set, the batch finishes as
/// planned, each row once.
#[tokio::test]
async fn a_pending_batch_with_an_unset_url_variable_says_to_set_it() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let table = unique_table("unset");
    let yaml = |note: &str| {
        format!(
            "name: unset\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now{note}\nsink:\n  kind: postgres\n  url: {url} password=${{SLUICE_TEST_PG_UNSET}}\n  table: {table}\n  create_table: true\n",
            ckpt = ws.p("ckpt"),
            source = files_source(&ws),
            url = server(),
        )
    };
    let pipeline = write_pipeline(&ws, &yaml(""));
    let set = [("SLUICE_TEST_PG_UNSET", "any".to_string())];
    let run = run_quietly(&pipeline, &set);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 10, 1);
    let mut env = set.to_vec();
    env.extend(Crash::After.env(1, "offsets/"));
    assert!(crashed(&run_quietly(&pipeline, &env)));
    write_pipeline(&ws, &yaml("  # edited"));
    let run = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ])
        .env_remove("SLUICE_TEST_PG_UNSET")
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("`SLUICE_TEST_PG_UNSET`")
            && said.contains("set what it names")
            && !said.contains("sluice rewind"),
        "{said}"
    );
    let run = run_quietly(&pipeline, &set);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(table_rows(server(), &table, sink_schema()).await, expected);
}

/// Walk 9: a nanosecond time was sent cut to the microsecond PostgreSQL keeps. It is refused,
/// naming the column and the value; nothing reaches the table.
#[tokio::test]
async fn a_time_finer_than_the_table_keeps_is_refused_not_cut() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path("in/0.json"),
        "{\"page\":\"a\",\"at\":\"2026-01-01T10:00:00.123456789Z\"}\n",
    )
    .expect("input");
    let table = unique_table("nanos");
    let yaml = format!(
        "name: nanos\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, format: json, schema: {{ page: string, at: timestamp }} }}\nquery: SELECT page, at FROM s\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("column `at` holds 2026-01-01T10:00:00.123456789")
            && said.contains("finer than PostgreSQL keeps it")
            // Walk 21 (7): and how an edit of the query comes to apply.
            && said.contains("stays planned")
            && said.contains(&format!("remove {}", ws.p("ckpt"))),
        "{said}"
    );
    let rows = client(server())
        .await
        .query(
            "SELECT count(*) FROM pg_tables WHERE tablename = $1",
            &[&table.to_lowercase()],
        )
        .await
        .expect("query");
    let made: i64 = rows[0].get(0);
    if made == 1 {
        let schema = Arc::new(Schema::new(vec![Field::new("page", DataType::Utf8, true)]));
        assert!(
            table_rows(server(), &table, schema).await.is_empty(),
            "a cut time reached the table"
        );
    }
}

/// Walk 40 (8): a column changed by hand from `timestamp` to `timestamptz` took the next
/// batch without a word. It is said once, with how the value is written (the UTC instant,
/// whatever the server's `TimeZone`), and the value read back is that instant. A column
/// changed to a type the query's value does not fit is refused with the `ALTER` back.
#[tokio::test]
async fn a_column_changed_by_hand_is_said_with_how_it_is_written() {
    let ws = Workspace::new();
    let table = unique_table("zoned");
    let yaml = format!(
        "name: zoned\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
         format: json, max_files_per_batch: 1, schema: {{ page: string, at: timestamp, n: \
         bigint }} }}\nquery: SELECT \
         page, at, n FROM s\ntrigger: available-now\nsink:\n  kind: postgres\n  url: \
         {url}\n  table: {table}\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        url = server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let row =
        |page: &str| format!("{{\"page\":\"{page}\",\"at\":\"2026-01-01T10:00:00Z\",\"n\":1}}\n");
    std::fs::write(ws.path("in/0.json"), row("a")).expect("input");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    client(server())
        .await
        .batch_execute(&format!(
            "SET TimeZone = 'America/New_York'; ALTER TABLE {table} ALTER COLUMN at TYPE \
             timestamptz"
        ))
        .await
        .expect("alter");
    // Two batches in one run: said once.
    std::fs::write(ws.path("in/1.json"), row("b")).expect("input");
    std::fs::write(ws.path("in/2.json"), row("b2")).expect("input");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(ws.path("ckpt/commits/2").exists());
    let said = stderr(&run);
    assert_eq!(
        said.matches("column `at` is timestamptz in table").count(),
        1,
        "{said}"
    );
    assert!(said.contains("that time in UTC"), "{said}");
    let rows = client(server())
        .await
        .query(
            &format!(
                "SELECT to_char(at AT TIME ZONE 'UTC', 'HH24:MI') FROM {table} WHERE page = 'b'"
            ),
            &[],
        )
        .await
        .expect("query");
    let at: String = rows[0].get(0);
    assert_eq!(at, "10:00");
    client(server())
        .await
        .batch_execute(&format!("ALTER TABLE {table} ALTER COLUMN n TYPE integer"))
        .await
        .expect("alter");
    std::fs::write(ws.path("in/3.json"), row("c")).expect("input");
    let run = sluice_run(&pipeline);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!(
            "change it back (`ALTER TABLE \"{table}\" ALTER COLUMN \"n\" TYPE INT8 USING \
             \"n\"::INT8`)"
        )),
        "{}",
        stderr(&run)
    );
}

/// A table sink with `batch_column` whose progress row is gone said the folder was "moved,
/// emptied or deleted" and to start over with a new `sink.path`, which a PostgreSQL sink has
/// not. It names the progress table and `sink.table`; followed, the new run fills the new
/// table with what the batch query gives.
#[tokio::test]
async fn a_table_that_lost_its_progress_row_names_the_progress_table() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("progress_lost");
    let progress = format!("{table}_progress");
    let yaml = batch_column_pipeline(
        &ws,
        "lost",
        &table,
        &format!("  progress_table: {progress}\n"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    client(server())
        .await
        .batch_execute(&format!("DELETE FROM {progress}"))
        .await
        .expect("delete the progress row");
    write_clicks(&ws.path("in"), "json", 3, 40, 2);
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains(&format!(
            "the pipeline's row in the progress table `{progress}`"
        )) && said.contains("a new, empty `sink.table`")
            && !said.contains("folder"),
        "{said}"
    );
    // Walk 17: the statement that puts the row back, run as given: the run writes on, once.
    client(server())
        .await
        .batch_execute(&advised(&said, "INSERT INTO"))
        .await
        .expect("the advice runs");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len(), "each batch once");
    // The other way out it names: a new checkpoint and a new table.
    let fresh = unique_table("progress_fresh");
    let pipeline = write_pipeline(
        &ws,
        &yaml
            .replace(&format!("table: {table}\n"), &format!("table: {fresh}\n"))
            .replace(&ws.p("ckpt"), &ws.p("ckpt2")),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&fresh).await, expected.len());
}

/// Walk 15 (F1): a table dropped between runs was made anew by `create_table: true`, and the
/// run went on (exit 0) with the earlier batches' rows gone. It is refused (exit 2) naming the
/// progress row; the way out it names (a new checkpoint) fills a new table with what the batch
/// query gives.
#[tokio::test]
async fn a_dropped_table_is_not_made_anew_under_committed_batches() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("dropped");
    let yaml = batch_column_pipeline(&ws, "dropped", &table, "");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    client(server())
        .await
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains(
            "does not exist, but the progress table `_sluice_progress` records that \
                       this pipeline committed batches up to 1 into it"
        ),
        "{said}"
    );
    let exists: bool = client(server())
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .expect("regclass")
        .get(0);
    assert!(!exists, "not made anew");
    assert!(
        !ws.path("ckpt/offsets/2").exists(),
        "refused before batch 2 was planned"
    );
    // The way out, followed: the progress row dropped, a new checkpoint.
    client(server())
        .await
        .batch_execute(&advised(&said, "DELETE FROM"))
        .await
        .expect("the advice runs");
    let pipeline = write_pipeline(&ws, &yaml.replace(&ws.p("ckpt"), &ws.p("ckpt2")));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
}

/// Walk 15 (F2): `table:` pointed by mistake at another table that exists (without the batch
/// column) failed its batch, and the rewind the message advises failed too ("column does not
/// exist"), every run after it then stuck. Such a table is refused before a batch is planned,
/// and the right table runs on.
#[tokio::test]
async fn a_mistaken_table_is_refused_before_its_batch_and_the_right_one_runs_on() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = unique_table("right");
    let other = unique_table("other");
    client(server())
        .await
        .batch_execute(&format!("CREATE TABLE {other} (name text, total bigint)"))
        .await
        .expect("another table");
    let yaml = batch_column_pipeline(&ws, "mistaken", &table, "");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let mistaken = write_pipeline(
        &ws,
        &yaml.replace(&format!("table: {table}\n"), &format!("table: {other}\n")),
    );
    // Refused before the batch is planned (it was refused once planned, and then needed a
    // rewind: the rewind of such a table takes nothing from it).
    let failed = sluice_run(&mistaken);
    assert_eq!(failed.status.code(), Some(2), "{}", stderr(&failed));
    assert!(!ws.path("ckpt/offsets/1").exists(), "no batch planned");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
}

/// Walk 16 (B): after the refusal of a dropped table, moving the sink to a new table on the
/// same checkpoint (as a schema-change refusal advises) was refused as "dropped or renamed":
/// the check looked at the pipeline's progress row, not at which table it names. A new table
/// is made and takes the next batch; the old one keeps the batches it took.
#[tokio::test]
async fn a_sink_moved_to_a_new_table_is_made_and_takes_the_next_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = unique_table("before");
    let moved = unique_table("after");
    let yaml = batch_column_pipeline(&ws, "moved", &table, "");
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    assert!(run.status.success(), "{}", stderr(&run));
    let first = row_count(&table).await;
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let pipeline = write_pipeline(
        &ws,
        &yaml.replace(&format!("table: {table}\n"), &format!("table: {moved}\n")),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(
        row_count(&table).await,
        first,
        "the old table keeps its batch"
    );
    assert_eq!(
        row_count(&table).await + row_count(&moved).await,
        expected.len()
    );
    assert!(row_count(&moved).await > 0);
}

/// Walk 16 (A): a table dropped and made anew, empty, between runs (a migration, or a user
/// "restoring" it) was written on with exit 0, the committed batches gone from it without a
/// word. The progress row records the table's `oid`: a table made anew under the name that
/// lacks the newest committed batch (empty, or restored from an older copy: walk 17) is
/// refused before a batch is planned; one whose rows were all put back is taken as restored
/// and written on.
#[tokio::test]
async fn a_table_made_anew_empty_is_refused_and_one_restored_is_written_on() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = unique_table("anew");
    let yaml = batch_column_pipeline(&ws, "anew", &table, "");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let (stale, backup) = (format!("{table}_stale"), format!("{table}_backup"));
    execute(&format!("CREATE TABLE {stale} AS SELECT * FROM {table}")).await;
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "CREATE TABLE {backup} AS SELECT * FROM {table}; DROP TABLE {table}; \
             CREATE TABLE {table} (id bigint, page text, amount double precision, b bigint)"
    ))
    .await;
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("was dropped and made anew since this pipeline committed batches up to 1")
            && said.contains("no row with `b` = 1")
            && said.contains(&format!("delete the folder {}", ws.p("ckpt"))),
        "{said}"
    );
    assert!(
        !ws.path("ckpt/offsets/2").exists(),
        "refused before batch 2 was planned"
    );
    assert_eq!(row_count(&table).await, 0, "nothing written");
    // Restored from a copy older than the newest batch (walk 17): refused too.
    execute(&format!("INSERT INTO {table} SELECT * FROM {stale}")).await;
    run_refused(&pipeline, "lacks at least that batch");
    // Restored: the rows put back, the run takes it and writes on.
    execute(&format!(
        "TRUNCATE {table}; INSERT INTO {table} SELECT * FROM {backup}"
    ))
    .await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
    // Made anew again after the restored one took a batch: its `oid` was recorded then.
    execute(&format!(
        "DROP TABLE {table}; \
             CREATE TABLE {table} (id bigint, page text, amount double precision, b bigint)"
    ))
    .await;
    write_clicks(&ws.path("in"), "json", 1, 40, 3);
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("up to 2"), "{}", stderr(&refused));
}

/// Walk 16 (A), in update mode without a batch column: a keyed table made anew is refused
/// (nothing tells whether it holds the committed rows); the advice to write on with the old
/// batches left out of it runs, and the next run writes the new batch's keys.
#[tokio::test]
async fn a_keyed_table_made_anew_empty_is_refused_and_the_way_to_write_on_works() {
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let table = unique_table("keyed_anew");
    let pipeline = write_pipeline(
        &ws,
        &page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n"),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "DROP TABLE {table}; CREATE TABLE {table} (page text PRIMARY KEY, n bigint)"
    ))
    .await;
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"b\",\"v\":2}\n").expect("input");
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("without `batch_column` Sluice cannot tell whether it holds their rows"),
        "{said}"
    );
    // Walk 64 (1): starting over does not empty an update-mode table, which may hold other
    // pipelines' keys (following a TRUNCATE deleted a shard's rows for good).
    assert!(
        !said.contains("TRUNCATE") && said.contains("without emptying the table"),
        "{said}"
    );
    assert!(
        !ws.path("ckpt/offsets/1").exists(),
        "refused before batch 1 was planned"
    );
    execute(&advised(&said, "UPDATE")).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["b|1"]);
}

/// Walk 58 (3, 4): an output column renamed in the query took two refusals, one a run (the
/// table's `ADD COLUMN`, then the checkpoint's `allow_output_schema_change`), and the first
/// advised a new column, leaving the old one null in new rows. Both are said at once, with
/// the `RENAME COLUMN` that keeps the rows already there; followed, the run goes on.
#[tokio::test]
async fn a_renamed_output_column_says_every_step_at_once() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = unique_table("renamed");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "renamed", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let text = std::fs::read_to_string(&pipeline).expect("pipeline");
    std::fs::write(
        &pipeline,
        text.replace("page, amount FROM", "page, amount AS spent FROM"),
    )
    .expect("edit");
    let said = run_refused(
        &pipeline,
        "the query's column `spent` is not a column of the table",
    );
    assert!(
        said.contains(&format!(
            "or, where it is `amount` (which the query no longer writes) renamed, rename that \
             (`ALTER TABLE \"{table}\" RENAME COLUMN \"amount\" TO \"spent\"`)"
        )) && said.contains("Then also: the query's output changed")
            && said.contains("`allow_output_schema_change: true`"),
        "{said}"
    );
    execute(&format!(
        "ALTER TABLE {table} RENAME COLUMN amount TO spent"
    ))
    .await;
    let text = std::fs::read_to_string(&pipeline).expect("pipeline");
    std::fs::write(
        &pipeline,
        format!("{text}allow_output_schema_change: true\n"),
    )
    .expect("edit");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
}

/// Walk 16 (C): a table that lacks a column of the query was refused only when its batch
/// ran, with the batch planned, so that any edit then needed a rewind first. It is refused
/// before a batch is planned (exit 2), and the corrected table then takes the batch.
#[tokio::test]
async fn a_table_without_a_query_column_is_refused_before_a_batch_is_planned() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = unique_table("lacking");
    // Walk 26: with a column missing and another of the wrong type, each run named one.
    // Walk 29 (8): a NOT NULL column the query does not give came a run later still.
    execute(&format!(
        "CREATE TABLE {table} (id bigint, page bigint, b bigint, must text NOT NULL)"
    ))
    .await;
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "lacking", &table, ""));
    let said = run_refused(
        &pipeline,
        "the query's columns do not fit the table in 3 ways: (1) column `page` is int8 in the table",
    );
    assert!(
        said.contains("(2) the query's column `amount` is not a column of the table")
            && said.contains("(3) column \"must\" of the table is NOT NULL without a default"),
        "{said}"
    );
    assert!(!ws.path("ckpt/offsets/0").exists(), "no batch planned");
    execute(&format!(
        "ALTER TABLE {table} ALTER COLUMN page TYPE text; \
         ALTER TABLE {table} ADD COLUMN amount double precision; \
         ALTER TABLE {table} ALTER COLUMN must DROP NOT NULL"
    ))
    .await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
}

/// Walk 21 (1): complete mode into an existing table replaced the rows it held, which no
/// pipeline wrote, exit 0. Refused before a batch, rows untouched, naming the way out; an
/// emptied table then takes the result, and a rerun on it goes on.
#[tokio::test]
async fn complete_mode_does_not_replace_rows_sluice_did_not_write() {
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let table = unique_table("kept");
    execute(&format!(
        "CREATE TABLE {table} (page text, n bigint); INSERT INTO {table} VALUES ('precious', 9)"
    ))
    .await;
    let yaml = page_count_pipeline(&ws, &table, "")
        .replace("output_mode: update", "output_mode: complete");
    let pipeline = write_pipeline(&ws, &yaml);
    let said = run_refused(
        &pipeline,
        "holds rows no pipeline's row in a progress table names",
    );
    assert!(said.contains(&format!("TRUNCATE \"{table}\";")), "{said}");
    assert_eq!(page_counts(&table).await, ["precious|9"]);
    execute(&format!("TRUNCATE {table}")).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"a\",\"v\":2}\n").expect("input");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["a|2"]);
}

/// Walk 20 (6): `table: PageViews` made `"PageViews"`, which psql's `SELECT * FROM
/// PageViews` does not find. The name is SQL's, as in Spark's and Flink's JDBC sinks: it
/// makes and fills `pageviews`, and `'"PageViews"'` keeps the case.
#[tokio::test]
async fn a_table_name_with_capitals_is_the_one_sql_finds() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (plain, quoted) = (format!("Pv_{suffix}"), format!("Kept_{suffix}"));
    for (name, written) in [
        (&plain, plain.clone()),
        (&quoted, format!("'\"{quoted}\"'")),
    ] {
        let ckpt = format!("ckpt_{name}");
        let yaml = batch_column_pipeline(&ws, "capitals", &written, "")
            .replace(&ws.p("ckpt"), &ws.p(&ckpt));
        let pipeline = write_pipeline(&ws, &yaml);
        let run = sluice_run(&pipeline);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let expected = oracle(&ws.path("in"), "json", QUERY).await.len();
    // As a user at psql writes them: unquoted, and quoted where the case was kept.
    assert_eq!(row_count(&plain).await, expected);
    assert_eq!(row_count(&format!("\"{quoted}\"")).await, expected);
    let n: i64 = client(server())
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = ANY($1)",
            &[&vec![plain.to_lowercase(), quoted.clone()]],
        )
        .await
        .expect("tables")
        .get(0);
    assert_eq!(n, 2, "made as `{}` and `{quoted}`", plain.to_lowercase());
    // A table made with its capitals (by a tool that quotes names) is not passed over for a
    // new one under the folded name: refused, naming the quoting that writes it.
    let legacy = format!("Legacy_{suffix}");
    execute(&format!(
        "CREATE TABLE \"{legacy}\" (id bigint, page text, amount double precision, b bigint)"
    ))
    .await;
    let yaml = batch_column_pipeline(&ws, "capitals", &legacy, "")
        .replace(&ws.p("ckpt"), &ws.p("ckpt_legacy"));
    let pipeline = write_pipeline(&ws, &yaml);
    let said = run_refused(&pipeline, &format!("but \"{legacy}\" does"));
    assert!(said.contains(&format!("`table: '\"{legacy}\"'`")), "{said}");
    write_pipeline(
        &ws,
        &yaml.replace(
            &format!("table: {legacy}"),
            &format!("table: '\"{legacy}\"'"),
        ),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(row_count(&format!("\"{legacy}\"")).await, expected);
}

/// Walk 20 (9): a table with a column the query leaves out that is NOT NULL without a
/// default, or with a `varchar(n)` or NOT NULL column a row breaks, failed at COPY with the
/// server's words and SQLSTATE only. The first is refused before a batch, naming the column
/// and the statements that get out; a row the table refuses is named with what to change in
/// the query or the table and how the edit comes to apply (a rewind), which then works.
#[tokio::test]
async fn a_row_the_table_refuses_is_named_with_what_to_change() {
    let ws = Workspace::new();
    let row = |id: u32, page: &str| {
        format!(
            "{{\"id\":{id},\"user_id\":1,\"page\":{page},\"amount\":50.0,\
             \"ts\":\"2026-01-01T00:00:0{id}Z\"}}\n"
        )
    };
    std::fs::write(ws.path("in/0.json"), row(1, "\"home\"")).expect("input");
    let table = unique_table("required");
    execute(&format!(
        "CREATE TABLE {table} (id bigint, page varchar(8) NOT NULL, amount double precision, \
         b bigint, note text NOT NULL)"
    ))
    .await;
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "required", &table, ""));
    let said = run_refused(
        &pipeline,
        "column \"note\" of the table is NOT NULL without a default, and the query gives no value",
    );
    assert!(
        said.contains(&format!(
            "ALTER TABLE \"{table}\" ALTER COLUMN \"note\" SET DEFAULT"
        )),
        "{said}"
    );
    assert!(!ws.path("ckpt/offsets/0").exists(), "no batch planned");
    execute(&format!(
        "ALTER TABLE {table} ALTER COLUMN note SET DEFAULT ''"
    ))
    .await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    // A page too long for varchar(8), then a null page: each named, with the rewind.
    for (file, page, says) in [
        (
            "1.json",
            "\"a-much-longer-page\"",
            "a value of \"page\" is longer than its type in the table allows (`varchar(8)`): \
             shorten it in the query (`left(\"page\", 8) AS \"page\"`)",
        ),
        (
            "2.json",
            "null",
            "\"page\" is NOT NULL in the table and the query gave it a null",
        ),
    ] {
        std::fs::write(ws.path(&format!("in/{file}")), row(2, page)).expect("input");
        let run = sluice_run(&pipeline);
        let said = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{said}");
        let rewind = format!("`sluice rewind {} --to 0`", ws.p("ckpt"));
        assert!(
            said.contains("batch 1") && said.contains(says) && said.contains(&rewind),
            "{said}"
        );
        assert!(!said.contains("retrying"), "tried again: {said}");
        std::fs::remove_file(ws.path(&format!("in/{file}"))).expect("aside");
        let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
        assert!(rewind.status.success(), "{}", stderr(&rewind));
    }
    // As advised: the query edited, the batch planned again after the rewind.
    std::fs::write(ws.path("in/3.json"), row(3, "null") + &row(4, "\"about\"")).expect("input");
    let text = std::fs::read_to_string(&pipeline).expect("pipeline");
    std::fs::write(
        &pipeline,
        text.replace(QUERY, &format!("{QUERY} AND page IS NOT NULL")),
    )
    .expect("edit");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
    ]));
    assert_eq!(
        table_rows(server(), &table, schema).await,
        ["1|home", "4|about"]
    );
}

/// Walk 21: a table in a schema the database does not have (`analytics.pages`) failed the
/// first batch with SQLSTATE 3F000 and exit 1, the batch planned. Refused before a batch,
/// exit 2, with the schema to make; made, the run writes.
#[tokio::test]
async fn a_table_in_a_missing_schema_is_refused_before_a_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let schema = unique_table("analytics");
    let yaml = batch_column_pipeline(&ws, "schema", &format!("{schema}.pages"), "");
    let pipeline = write_pipeline(&ws, &yaml);
    run_refused(
        &pipeline,
        &format!(
            "is in the schema \"{schema}\", which the database does not have: make it \
             (`CREATE SCHEMA \"{schema}\"`)"
        ),
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left behind");
    execute(&format!("CREATE SCHEMA {schema}")).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(row_count(&format!("{schema}.pages")).await > 0);
}

/// A role without CREATE on the schema its table, or its progress table, was to be made in
/// learnt it only at batch 0's commit (exit 1, the batch left pending), told to grant CREATE
/// on "<schema>". It is refused before a batch is planned, naming the table, the schema and
/// the grant, with no checkpoint left behind; the grant lets the next run write.
#[tokio::test]
async fn a_role_that_may_not_make_its_tables_is_refused_before_a_batch() {
    let ws = Workspace::new();
    let schema = unique_table("w_nocreate");
    let role = format!("{schema}_role");
    execute(&format!(
        "CREATE SCHEMA {schema}; CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA {schema} TO {role}"
    ))
    .await;
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"a\"}\n");
    let yaml = typed_pipeline(
        &ws,
        "SELECT id, t FROM s",
        "append",
        &format!("{schema}.out"),
        &format!("  create_table: true\n  progress_table: {schema}.progress\n"),
    )
    .replace("user=sluice", &format!("user={role}"));
    assert!(yaml.contains(&format!("user={role}")), "{yaml}");
    let pipeline = write_pipeline(&ws, &yaml);
    let grant = format!("`GRANT CREATE ON SCHEMA \"{schema}\" TO \"{role}\";`");
    run_refused(
        &pipeline,
        &format!(
            "the table \"{schema}\".\"out\" does not exist, and the role \"{role}\" may not \
             make it: it has no CREATE on the schema \"{schema}\". Grant it ({grant})"
        ),
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left behind");
    // The table made for it in advance: the progress table is still to be made.
    execute(&format!(
        "CREATE TABLE {schema}.out (id bigint, t text); \
         GRANT SELECT, INSERT ON {schema}.out TO {role}"
    ))
    .await;
    run_refused(
        &pipeline,
        &format!(
            "the progress table \"{schema}\".\"progress\" does not exist, and the role \
             \"{role}\" may not make it: it has no CREATE on the schema \"{schema}\". Grant \
             it ({grant})"
        ),
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left behind");
    execute(&format!("GRANT CREATE ON SCHEMA {schema} TO {role}")).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(row_count(&format!("{schema}.out")).await, 1);
    execute(&format!(
        "DROP SCHEMA {schema} CASCADE; DROP OWNED BY {role}; DROP ROLE {role}"
    ))
    .await;
}

/// Walk 21: a rewind past batches written before `batch_column` was set said the sink takes
/// batches back "only in append mode with `batch_column`", which the pipeline had. It names
/// the batches written without it and the rewind that works, and that rewind works.
#[tokio::test]
async fn a_rewind_past_batches_before_batch_column_names_them() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let table = unique_table("batch_column_later");
    let yaml = batch_column_pipeline(&ws, "later", &table, "");
    let pipeline = write_pipeline(&ws, &yaml.replace("  batch_column: b\n", ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let before = row_count(&table).await;
    execute(&format!("ALTER TABLE {table} ADD COLUMN b bigint")).await;
    write_pipeline(&ws, &yaml);
    write_clicks(&ws.path("in"), "json", 2, 10, 2);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(row_count(&table).await > before);
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    let said = stderr(&rewind);
    assert_eq!(rewind.status.code(), Some(2), "{said}");
    assert!(
        said.contains("batch(es) 1 went to the `postgres` sink before it kept a record")
            && said.contains("rewind to batch 1 at the earliest"),
        "{said}"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "1"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    assert_eq!(row_count(&table).await, before);
}

/// Walk 23 (3): an update-mode query changed in a way its state cannot follow, into a table,
/// was advised a new checkpoint "with a new, empty `sink.path`", which a table sink has not.
/// It says the same table takes the new checkpoint's rows, and that works.
#[tokio::test]
async fn a_query_its_state_cannot_follow_is_named_with_the_tables_way_out() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let table = unique_table("state_follow");
    let yaml = page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let changed = yaml.replace("count(*) AS n", "count(*) AS n, max(v) AS mx");
    write_pipeline(&ws, &changed);
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"a\",\"v\":5}\n").expect("input");
    let said = run_refused(&pipeline, "changed in a way its state cannot follow");
    assert!(
        said.contains(
            "run the new ones on a new checkpoint into the same table (complete mode replaces \
             its rows; update mode writes each row over the row of its key, so where the new \
             query's keys are not the old one's (another window size, another key column), \
             empty the table first"
        ) && said.contains(&format!("`TRUNCATE \"{table}\"`"))
            && !said.contains("sink.path"),
        "{said}"
    );
    // As advised, with the column the table needs for the new query.
    execute(&format!("ALTER TABLE {table} ADD COLUMN mx bigint")).await;
    write_pipeline(&ws, &changed.replace(&ws.p("ckpt"), &ws.p("ckpt2")));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["a|2"]);
}

/// Walk 24 (2): session windows in update mode into a keyed table sent the user back and
/// forth: the key had to be the session struct `s`, which PostgreSQL cannot take as a column.
/// Refused before a batch, naming why (a session's key moves as rows join it) and append mode,
/// which then writes each closed session once.
#[tokio::test]
async fn session_windows_in_update_mode_into_a_keyed_table_are_refused_naming_append() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 20, 0);
    // A row long after the others moves the watermark past their sessions, which close.
    std::fs::write(
        ws.path("in/clicks-9999.json"),
        "{\"id\":999,\"user_id\":1,\"page\":\"x\",\"amount\":1.0,\"ts\":\"2030-01-01T00:00:00\"}\n",
    )
    .expect("input");
    let table = unique_table("sessions");
    let yaml = |mode: &str, key: &str| {
        format!(
            "name: sessions\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    \
             path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    watermark: \
             {{ column: ts, delay: 0s }}\nquery: |\n  SELECT user_id, s['start'] AS \
             session_start, s['end'] AS session_end, clicks FROM (SELECT user_id, \
             session_window(ts, INTERVAL '5 minutes') AS s, count(*) AS clicks FROM clicks \
             GROUP BY user_id, session_window(ts, INTERVAL '5 minutes'))\noutput_mode: {mode}\n\
             trigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  \
             create_table: true\n{key}",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            url = server(),
        )
    };
    let pipeline = write_pipeline(
        &ws,
        &yaml("update", "  key: [user_id, session_start, session_end]\n"),
    );
    run_refused(
        &pipeline,
        "a session window's key (its start and end) moves",
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left behind");
    write_pipeline(&ws, &yaml("append", ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(row_count(&table).await > 0);
}

/// Walk 21 (11): a query column `"PageName"` against the table's `pagename` was advised an
/// `ADD COLUMN "PageName"`. It is named with the table's column and the alias that fits it.
#[tokio::test]
async fn a_column_differing_in_capitals_is_named_with_the_alias() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let table = unique_table("capital_column");
    execute(&format!(
        "CREATE TABLE {table} (id bigint, pagename text, amount double precision, b bigint)"
    ))
    .await;
    let yaml = batch_column_pipeline(&ws, "capital", &table, "").replace(
        QUERY,
        "SELECT id, page AS \"PageName\", amount FROM clicks WHERE amount > 30",
    );
    let pipeline = write_pipeline(&ws, &yaml);
    run_refused(&pipeline, "whose column is `pagename`");
    write_pipeline(&ws, &yaml.replace("\"PageName\"", "\"pagename\""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Walk 16: a rewind said it took back "1 sink files" from a table. It counts the rows it
/// deleted, as rows, and the table then holds the batches before.
#[tokio::test]
async fn a_rewind_counts_the_rows_it_takes_back_from_a_table() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("rewound");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "rewound", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let second: i64 = client(server())
        .await
        .query_one(&format!("SELECT count(*) FROM {table} WHERE b = 1"), &[])
        .await
        .expect("count")
        .get(0);
    // `inspect` counts the table's rows, and no files.
    let inspect = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let shown = String::from_utf8_lossy(&inspect.stdout).to_string();
    assert!(
        shown.contains(&format!("holds batch 1 ({second} rows)\n")),
        "{shown}"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let said = String::from_utf8_lossy(&rewind.stdout).to_string();
    assert!(
        said.contains(&format!(": {second} sink rows and")),
        "{said}"
    );
    let left: i64 = client(server())
        .await
        .query_one(&format!("SELECT count(*) FROM {table} WHERE b = 1"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
}

/// Walk 17 (3): a rewind "took back" 0 rows from a table renamed away since its batch went
/// there, and the next run wrote the batch again beside the rows still in the renamed
/// table. Refused, naming the table; put back, the rewind takes the rows and nothing is
/// doubled.
#[tokio::test]
async fn a_rewind_from_a_table_gone_since_is_refused_until_it_is_back() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("renamed");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "renamed", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let away = format!("{table}_away");
    execute(&format!("ALTER TABLE {table} RENAME TO {away}")).await;
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!(
            "cannot take batch 1 back from table \"{table}\": the table the batch went into \
             is public.{away} now (renamed"
        )),
        "{}",
        stderr(&refused)
    );
    // Walk 18: the refusal leaves the checkpoint as it was (no unfinished rewind).
    assert!(!ws.path("ckpt/rewind").exists(), "a rewind record left");
    // Walk 116 (9): `replay --verify` said the table's columns were gone; it names the rename
    // and the statement that puts the table back, as the run does.
    let replay = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "1", "--verify"],
        ws.dir.path(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        stderr(&replay)
    );
    assert!(
        !replay.status.success()
            && said.contains(&format!("it was renamed to public.{away}"))
            && !said.contains("it has no column"),
        "{said}"
    );
    // Another table made under the name (walk 18): refused too.
    execute(&format!(
        "CREATE TABLE {table} (id bigint, page text, amount double precision, b bigint)"
    ))
    .await;
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!(
            "the table the batch went into is public.{away} now (renamed; its `oid` is the one \
             recorded), and another table, holding no row of the batch, has the name"
        )),
        "{}",
        stderr(&refused)
    );
    assert!(!ws.path("ckpt/rewind").exists(), "a rewind record left");
    execute(&format!(
        "DROP TABLE {table}; ALTER TABLE {away} RENAME TO {table}"
    ))
    .await;
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len(), "nothing doubled");
}

/// Walk 121 (1): `inspect` of another user's checkpoint filled in the `${VAR}`s of the servers
/// its stored pipeline file names from the caller's environment, and sent the caller's
/// password to them. For a checkpoint another user owns, no variable is filled in: the sink is
/// said not asked, and why. (Needs root to give the checkpoint away, as CI runs.)
#[tokio::test]
async fn inspect_of_another_users_checkpoint_fills_in_no_variable() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let table = unique_table("foreign");
    let yaml = batch_column_pipeline(&ws, "foreign", &table, "").replace(
        &format!("url: {}", server()),
        &format!("url: \"{} password=${{W121_PW}}\"", server()),
    );
    assert!(yaml.contains("${W121_PW}"), "{yaml}");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = run_quietly(&pipeline, &[("W121_PW", "hunter2w121".to_string())]);
    assert!(run.status.success(), "{}", stderr(&run));
    let inspect = || {
        sluice_bin()
            .args(["inspect", &ws.p("ckpt")])
            .env("W121_PW", "hunter2w121")
            .current_dir(ws.dir.path())
            .output()
            .expect("inspect")
    };
    let own = inspect();
    assert!(own.status.success(), "{}", stderr(&own));
    let shown = String::from_utf8_lossy(&own.stdout).to_string();
    assert!(shown.contains("holds batch 0"), "{shown}");
    std::os::unix::fs::chown(ws.path("ckpt/metadata"), Some(65534), None)
        .expect("give the checkpoint away (the test runs as root, as CI does)");
    let foreign = inspect();
    assert!(foreign.status.success(), "{}", stderr(&foreign));
    let shown = String::from_utf8_lossy(&foreign.stdout).to_string();
    assert!(
        shown.contains("cannot be read")
            && shown.contains("the checkpoint is another user's (uid 65534)")
            && !shown.contains("holds batch 0"),
        "{shown}"
    );
}

/// Walk 116 (1): a rule (or trigger) that keeps rows from being deleted made a rewind take
/// back "0 sink rows", exit 0, and the run after it wrote the batch again beside its rows.
/// The rewind is refused, naming the cause and nothing taken back; with the DELETE let
/// through, it takes the batch back and nothing is doubled. In complete mode, rows the DELETE
/// kept stop the batch, not written beside.
#[tokio::test]
async fn rows_a_rule_keeps_from_a_delete_stop_the_rewind_and_the_complete_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("undeletable");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "undeletable", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "CREATE RULE keep_{table} AS ON DELETE TO {table} DO INSTEAD NOTHING"
    ))
    .await;
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(!refused.status.success(), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("rows of the batch are still in it after their DELETE")
            && said.contains("DO INSTEAD NOTHING")
            && said.contains("Nothing of this batch was taken back"),
        "{said}"
    );
    execute(&format!("DROP RULE keep_{table} ON {table}")).await;
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len(), "nothing doubled");

    // Complete mode: the batch is refused while the rule keeps the old rows.
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let table = unique_table("replaced");
    let yaml = page_count_pipeline(&ws, &table, "  create_table: true\n")
        .replace("output_mode: update", "output_mode: complete");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "CREATE RULE keep_{table} AS ON DELETE TO {table} DO INSTEAD NOTHING"
    ))
    .await;
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"b\",\"v\":2}\n").expect("input");
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("rows are still in it after their DELETE"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(page_counts(&table).await, ["a|1"]);
    execute(&format!("DROP RULE keep_{table} ON {table}")).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["a|1", "b|1"]);
}

/// Walk 116 (2): rows a `BEFORE INSERT` trigger skipped were lost without a word in append
/// mode, and said to be rows that gave way to another of their key in update mode. Said as
/// rows the table's trigger or rule skipped, with how many.
#[tokio::test]
async fn rows_a_trigger_skips_are_said_as_such() {
    // A table whose trigger skips the rows of even ids.
    let skipping = |table: String| async move {
        execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, page text, amount double precision, \
             b bigint); CREATE FUNCTION skip_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$; CREATE \
             TRIGGER skip_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION \
             skip_{table}()"
        ))
        .await;
        table
    };
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = skipping(unique_table("skipping")).await;
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let sent = expected.len();
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "skipping", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let taken = row_count(&table).await;
    assert!(taken < sent, "{taken} of {sent}");
    assert!(
        stderr(&run).contains(&format!(
            "took {taken} of batch 0's {sent} rows: a trigger on it skipped or redirected \
             the other {}",
            sent - taken
        )),
        "{}",
        stderr(&run)
    );
    // Update mode, each key once: not said to be rows of one key.
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = skipping(unique_table("skipping_update")).await;
    let yaml = batch_column_pipeline(&ws, "skipping_update", &table, "  key: [id]\n")
        .replace("  batch_column: b\n", "")
        .replace(
            "trigger: available-now",
            "output_mode: update\ntrigger: available-now",
        );
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    assert!(run.status.success(), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("a trigger on it skipped or redirected")
            && !said.contains("gave way to another row of their key"),
        "{said}"
    );
}

/// Walk 116 (6): a table moved to another schema under its own name was given back by
/// `SET SCHEMA` and a `RENAME TO` its own name, which fails (the name is taken, by the table
/// itself) and rolls the move back with it. The statement given is the move alone, and
/// pasted as it is, it puts the table back: the rewind then takes the batch back once.
#[tokio::test]
async fn a_table_moved_to_another_schema_is_put_back_by_the_statement_given() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("moved_schema");
    let elsewhere = unique_table("elsewhere");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "moved", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "CREATE SCHEMA {elsewhere}; ALTER TABLE {table} SET SCHEMA {elsewhere}"
    ))
    .await;
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    let statement = advised(&said, "ALTER TABLE");
    assert!(!statement.contains("RENAME"), "{said}");
    execute(&statement).await;
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len(), "nothing doubled");
    execute(&format!("DROP SCHEMA {elsewhere}")).await;
}

/// Walk 17 (5, 6): in update mode a table made by hand without a unique index on the key
/// failed only when its batch ran (the batch then pending), and one with a plain `UNIQUE`
/// on a column that may be null got a new row for the null key each batch. Both are refused
/// before a batch is planned; the advised `ALTER TABLE` then runs and one row per key holds.
#[tokio::test]
async fn an_update_table_without_a_fitting_unique_index_is_refused_before_its_batch() {
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":null,\"v\":1}\n").expect("input");
    let table = unique_table("unindexed");
    execute(&format!("CREATE TABLE {table} (page text, n bigint)")).await;
    let pipeline = write_pipeline(&ws, &page_count_pipeline(&ws, &table, "  key: page\n"));
    let refused = sluice_run(&pipeline);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(said.contains("the table has none"), "{said}");
    assert!(!ws.path("ckpt/offsets/0").exists(), "no batch planned");
    execute(&format!("ALTER TABLE {table} ADD UNIQUE (page)")).await;
    run_refused(&pipeline, "takes a row per null key");
    // Walk 100 (3): a DEFERRABLE unique constraint on the key was taken for none, and with
    // the index the advice added, `ON CONFLICT` refused it on every batch. Named, with the
    // drop that gets out.
    execute(&format!(
        "ALTER TABLE {table} DROP CONSTRAINT {table}_page_key; ALTER TABLE {table} ADD \
         CONSTRAINT {table}_d UNIQUE NULLS NOT DISTINCT (page) DEFERRABLE INITIALLY DEFERRED"
    ))
    .await;
    let deferred = run_refused(
        &pipeline,
        &format!(
            "the table's unique constraint `{table}_d` on the key is DEFERRABLE, which \
             PostgreSQL's `ON CONFLICT` refuses"
        ),
    );
    execute(&advised(&deferred, "ALTER TABLE")).await;
    execute(&advised(&said, "ALTER TABLE")).await;
    std::fs::write(ws.path("in/1.json"), "{\"page\":null,\"v\":2}\n").expect("input");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["|2"]);
}

/// Walk 17 (4): in update mode, `table:` pointed at a new name moved the sink without a word,
/// and the new table held only the groups changed since. The run says the sink moved and what
/// that means in update mode; the way it gives (the old table renamed to the new name first)
/// keeps every group.
#[tokio::test]
async fn an_update_sink_moved_to_a_new_table_says_what_the_new_table_lacks() {
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let (table, moved) = (unique_table("kept"), unique_table("moved"));
    let yaml =
        |table: &str| page_count_pipeline(&ws, table, "  key: [page]\n  create_table: true\n");
    let run = sluice_run(&write_pipeline(&ws, &yaml(&table)));
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!("ALTER TABLE {table} RENAME TO {moved}")).await;
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"b\",\"v\":2}\n").expect("input");
    let run = sluice_run(&write_pipeline(&ws, &yaml(&moved)));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("in update mode each batch writes only the groups it changed"),
        "{}",
        stderr(&run)
    );
    assert_eq!(page_counts(&moved).await, ["a|1", "b|1"]);
}

/// Review: a table restored with all its rows (a dump reloaded: a new `oid`) is taken by a
/// run, and a rewind takes batches back from it too, as from the table they went into.
#[tokio::test]
async fn a_rewind_takes_batches_back_from_a_restored_table() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("reloaded");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "reloaded", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "CREATE TABLE {table}_copy AS SELECT * FROM {table}; DROP TABLE {table}; \
         ALTER TABLE {table}_copy RENAME TO {table}"
    ))
    .await;
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len(), "each batch once");
}

/// Review: where a batch's table is gone for good and an empty one made under the name, the
/// statement the refusal names lets the rewind go on, and the run after it writes each batch
/// into the new table once.
#[tokio::test]
async fn a_rewind_refused_for_a_table_gone_for_good_goes_on_by_the_statement_it_names() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let table = unique_table("lost");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "lost", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    // The rows of batches 1 and on, which the rewind takes back and the run writes again.
    let later = format!("{table}_later");
    execute(&format!(
        "CREATE TABLE {later} AS SELECT * FROM {table} WHERE b >= 1; DROP TABLE {table}; \
         CREATE TABLE {table} (id bigint, page text, amount double precision, b bigint)"
    ))
    .await;
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    let statement = said
        .split('`')
        .find(|part| part.contains("SET relation = NULL"))
        .unwrap_or_else(|| panic!("no statement named: {said}"));
    execute(statement).await;
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    // Batch 0's rows are gone for good; each later batch is written once.
    let expected = row_count(&later).await;
    assert!(expected > 0, "no batch after 0");
    assert_eq!(row_count(&table).await, expected, "batches 1 and on, once");
}

/// Runs `pipeline` until just before it logs batch 1, drops `table` meanwhile, and lets it go
/// on; its end.
fn dropped_while_stopped(
    pipeline: &std::path::Path,
    ws: &Workspace,
    table: &str,
) -> std::process::Output {
    let drop = format!("DROP TABLE {table}");
    run_stopped_while(pipeline, ws.dir.path(), "offsets/1", || {
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(execute(&drop))
        })
        .join()
        .expect("drop");
    })
}

/// Walk 58 (7): a table dropped while a run wrote into it failed the run with the server's
/// words alone, naming no batch and no way out. The batch is named, and so is what the next
/// run does, which then says how to go on; and a sink's way out names this checkpoint, not
/// `<checkpoint>`.
#[tokio::test]
async fn a_table_dropped_mid_run_is_said_with_the_batch_and_the_way_out() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 50, 0);
    let table = unique_table("dropped");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "dropped", &table, ""));
    let out = sluice_run(&pipeline);
    assert!(out.status.success(), "{}", stderr(&out));
    write_clicks(&ws.path("in"), "json", 1, 50, 1);
    let out = dropped_while_stopped(&pipeline, &ws, &table);
    // The table lost batch 0: said at once, with the way out in this checkpoint's name.
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("committed batches up to 0 into it")
            && said.contains(&format!("delete the folder {}", ws.p("ckpt")))
            && !said.contains("<checkpoint>"),
        "{said}"
    );
    let out = sluice_run(&pipeline);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A table dropped after the run's first batch: the write fails, naming the batch and
    // what the next run does.
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let table = unique_table("dropped_update");
    let pipeline = write_pipeline(
        &ws,
        &page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n"),
    );
    // Batch 0 in the same run: the table is checked when the run starts only.
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let out = dropped_while_stopped(&pipeline, &ws, &table);
    let said = stderr(&out);
    assert!(
        said.contains("batch 1: sink (postgres)")
            && said.contains("does not exist")
            && said.contains("The batch stays planned: the next run checks the sink"),
        "{said}"
    );
    // As it says: the next run checks the sink and says what to do (exit 2).
    let out = sluice_run(&pipeline);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Restore the table; or, to start this pipeline over"),
        "{}",
        stderr(&out)
    );
}

/// Walk 58 (5): a dropped table's "start over" advice named the sink's progress row but not
/// the `late_rows` table, whose own refusal came only after the first advice was followed.
/// Both are said at once, and following them, the pipeline runs.
#[tokio::test]
async fn a_dropped_tables_start_over_names_the_late_rows_table_too() {
    let ws = Workspace::new();
    let table = unique_table("dropped_late");
    late_input(&ws, "a", &[(1, "10"), (2, "40")]);
    let yaml = |checkpoint: &str, late: &str| {
        late_rows_yaml(&ws, late, true)
            .replace(&ws.p("ckpt"), &ws.p(checkpoint))
            .replace(
                &format!(
                    "sink: {{ kind: files, path: {}, format: json }}",
                    ws.p("out")
                ),
                &format!(
                    "sink: {{ kind: postgres, url: '{}', table: {table}, create_table: true }}",
                    server()
                ),
            )
    };
    let pipeline = write_pipeline(&ws, &yaml("ckpt", &format!("{table}_late")));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!("DROP TABLE {table}")).await;
    late_input(&ws, "b", &[(3, "12"), (4, "50")]);
    let run = sluice_run(&pipeline);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{said}");
    assert!(
        said.contains("to start this pipeline over, drop its progress row")
            && said.contains("Starting over with a new `late_rows` table or topic"),
        "{said}"
    );
    run_advised_sql(&said, "DELETE FROM").await;
    let pipeline = write_pipeline(&ws, &yaml("ckpt2", &format!("{table}_late2")));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(row_count(&format!("{table}_late2_s")).await, 1);
}

/// Walk 19 (3): `replay --verify` read back only the first 1024 rows of a batch from a
/// table, and called a batch of more rows "differs". Every row is read back: a batch of
/// thousands verifies, and one with a row changed does not.
#[tokio::test]
async fn replay_verify_reads_back_every_row_of_a_large_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 5000, 0);
    let table = unique_table("verify");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "verify", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        row_count(&table).await > 1024,
        "a batch of more than 1024 rows"
    );
    let verify = || {
        run_bin(
            &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
            ws.dir.path(),
        )
    };
    let out = verify();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{said}{}", stderr(&out));
    assert!(!said.contains("NOT VERIFIED"), "{said}");
    execute(&format!(
        "UPDATE {table} SET amount = amount + 1 WHERE id = (SELECT max(id) FROM {table})"
    ))
    .await;
    let out = verify();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}{}", stderr(&out));
    assert!(said.contains("the SINK differs"), "{said}");
    // Walk 58 (1): a column renamed since failed the replay with the server's words and no
    // report (`--json` printed nothing). The sink is unreadable, named, in the report.
    execute(&format!(
        "ALTER TABLE {table} RENAME COLUMN amount TO spent"
    ))
    .await;
    let out = run_bin(
        &[
            "replay",
            &ws.p("ckpt"),
            "--batch",
            "0",
            "--verify",
            "--json",
        ],
        ws.dir.path(),
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&said).expect("a JSON report");
    assert_eq!(report["sink"]["status"], "unreadable", "{said}");
    let reason = report["sink"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("table `{table}`: it has no column `amount` now")),
        "{said}"
    );
    assert_eq!(report["agreement"]["recomputed=committed"], true, "{said}");
}

/// A JSON file `in/<name>.json` of `{id, ts}` rows, `ts` the seconds past 2026-01-01 00:00.
fn late_input(ws: &Workspace, name: &str, rows: &[(i64, &str)]) {
    let text: String = rows
        .iter()
        .map(|(id, ts)| format!("{{\"id\":{id},\"ts\":\"2026-01-01T00:00:{ts}Z\"}}\n"))
        .collect();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path(&format!("in/{name}.json")), text).expect("file");
}

/// A windowed count of `in/` (a 5 s watermark, a file a batch) whose late rows go to the
/// PostgreSQL table `<table>_s`.
fn late_rows_yaml(ws: &Workspace, table: &str, create: bool) -> String {
    format!(
        "name: late\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
         format: json, max_files_per_batch: 1, schema: {{ id: bigint, ts: timestamp }}, \
         watermark: {{ column: ts, delay: 5s }} }}\nquery: SELECT date_bin(INTERVAL '10 \
         seconds', ts) AS w, count(*) AS n FROM s GROUP BY 1\noutput_mode: append\ntrigger: \
         available-now\nsink: {{ kind: files, path: {out}, format: json }}\nlate_rows:\n  \
         kind: postgres\n  url: {url}\n  table: {table}\n  create_table: {create}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        out = ws.p("out"),
        url = server(),
    )
}

/// Walk 53 (3): a late row with a time finer than PostgreSQL keeps stopped the run with the
/// advice to truncate it in the query, which late rows never pass through. The message says
/// so and gives what reaches them: the source's declared unit, or a sink that keeps it.
#[tokio::test]
async fn a_late_row_the_late_rows_table_cannot_keep_names_what_reaches_it() {
    let ws = Workspace::new();
    let table = unique_table("late_fine");
    let file = |name: &str, rows: &[(i64, &str)]| late_input(&ws, name, rows);
    file("a", &[(1, "10"), (2, "40")]);
    let pipeline = write_pipeline(&ws, &late_rows_yaml(&ws, &table, true));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    file("b", &[(3, "12.123456789"), (4, "50")]);
    let run = sluice_run(&pipeline);
    let said = stderr(&run);
    assert!(!run.status.success(), "{said}");
    assert!(
        said.contains("finer than PostgreSQL keeps it")
            && said.contains("This is a late row of source `s`")
            && said.contains("`timestamp(6)`"),
        "{said}"
    );
}

/// Audit 90b #3: a source column of a struct type, which no PostgreSQL column takes, was
/// refused for the late-rows table with the advice to split it in the query, which late rows
/// never pass through. The advice is what reaches them; followed (the column read as its
/// JSON text), the run goes on.
#[tokio::test]
async fn a_late_rows_column_postgresql_cannot_take_names_what_reaches_it() {
    let ws = Workspace::new();
    let table = unique_table("late_struct");
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/a.json"),
        "{\"id\":1,\"ts\":\"2026-01-01T00:00:10Z\",\"meta\":{\"a\":1}}\n",
    )
    .expect("input");
    let yaml = |meta: &str| {
        late_rows_yaml(&ws, &table, true).replace(
            "schema: { id: bigint, ts: timestamp }",
            &format!("schema: {{ id: bigint, ts: timestamp, meta: {meta} }}"),
        )
    };
    let pipeline = write_pipeline(&ws, &yaml("'struct<a bigint>'"));
    let said = run_refused(&pipeline, "which PostgreSQL cannot take as a column");
    assert!(
        said.contains("late rows are written as the source read them")
            && !said.contains("in the query (`meta['field']"),
        "{said}"
    );
    let pipeline = write_pipeline(&ws, &yaml("string"));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
}

/// Walk 28: a `late_rows` sink into PostgreSQL whose table was not there was found only
/// when the first late row came, failing that batch. It is checked before the first batch
/// (exit 2, naming the late rows' table and the way to make it, nothing left behind); made
/// then, it takes the late rows, each once.
#[tokio::test]
async fn a_late_rows_table_is_checked_before_the_first_batch() {
    let ws = Workspace::new();
    let table = unique_table("late");
    let file = |name: &str, rows: &[(i64, &str)]| late_input(&ws, name, rows);
    file("a", &[(1, "10"), (2, "40")]);
    let yaml = |create: bool| late_rows_yaml(&ws, &table, create);
    let pipeline = write_pipeline(&ws, &yaml(false));
    let said = run_refused(&pipeline, "`late_rows` (the late rows of source `s`)");
    assert!(
        said.contains(&format!("{table}_s")) && said.contains("create_table: true"),
        "{said}"
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left behind");
    assert!(!ws.path("out").exists(), "a sink folder left behind");
    let pipeline = write_pipeline(&ws, &yaml(true));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    // The watermark is at 35 s: a row at 12 s is late.
    file("b", &[(3, "12"), (4, "50")]);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows: Vec<String> = client(server())
        .await
        .query(&format!("SELECT id FROM {table}_s"), &[])
        .await
        .expect("late rows")
        .iter()
        .map(|r| r.get::<_, i64>(0).to_string())
        .collect();
    assert_eq!(rows, ["3"]);
    // Walk 28: a rewind said it took batches back "from out and <the sink's table>", the
    // late rows' table left as it was: the batches computed again found theirs taken and
    // left their late rows out. Refused, naming the late rows' table, before anything goes.
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    let said = stderr(&rewind);
    assert_eq!(rewind.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the late rows of source `s` went to postgresql://")
            && said.contains(&format!("/{table}_s, up to batch 2"))
            && said.contains("cannot be rewound below batch 2"),
        "{said}"
    );
    assert!(ws.path("ckpt/commits/2").exists(), "nothing taken back");
}

/// Walk 30 (1): `replay --verify` of an update-mode table with `batch_column` read back the
/// rows still marked with the batch (none, where later batches took their place) and said
/// the sink lost them (exit 1), with a rewind the sink then refused. The sink's side is not
/// available in update mode, as with Delta, and the batch verifies by its recomputation.
#[tokio::test]
async fn replay_verify_of_an_update_table_does_not_say_rows_lost() {
    let ws = Workspace::new();
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"a\",\"v\":2}\n").expect("input");
    let table = unique_table("verify_update");
    let pipeline = write_pipeline(
        &ws,
        &page_count_pipeline(
            &ws,
            &table,
            "  key: [page]\n  create_table: true\n  batch_column: b\n",
        ),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["a|2"]);
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
        ws.dir.path(),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("not available") && said.contains("in update or complete mode"),
        "{said}"
    );
    assert!(!said.contains("the SINK differs"), "{said}");
}

/// Walk 31 (3): a checkpoint older than its PostgreSQL table (a copy of the project ran on)
/// was told to take the sink's batches out "by hand (a files sink: its files `part-...`)",
/// and deleting the table's rows of those batches was not enough (the progress row still
/// named the newest). The message gives the statements for the table, and they work: the
/// old checkpoint then runs on, every row once.
#[tokio::test]
async fn a_checkpoint_older_than_its_table_gives_the_statements_that_take_batches_out() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let table = unique_table("older");
    let pipeline = write_pipeline(&ws, &batch_column_pipeline(&ws, "older", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    crate::cli::copy_dir(&ws.path("ckpt"), &ws.path("ckpt-copy"));
    write_clicks(&ws.path("in"), "json", 1, 40, 1);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::remove_dir_all(ws.path("ckpt")).expect("the newer checkpoint");
    std::fs::rename(ws.path("ckpt-copy"), ws.path("ckpt")).expect("the older one back");
    let said = run_refused(&pipeline, "the checkpoint is older than its sink");
    let statements = said
        .split("out by hand (`")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("statements in: {said}"));
    assert!(
        statements.contains(&format!("DELETE FROM \"{table}\" WHERE \"b\" > 0"))
            && statements.contains("SET batch = 0 WHERE pipeline = '"),
        "{said}"
    );
    assert!(!said.contains("part-"), "{said}");
    execute(statements).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(row_count(&table).await, expected.len());
}

/// Walk 34 (1): a second pipeline (another `name`, its own input) in update mode into a table
/// another pipeline writes went on without a word and wrote its counts over the first's rows
/// of the same keys. In update mode it is said, naming the other pipeline (pipelines that
/// each write their own keys, shards of one table, are a way to use it); in complete mode,
/// where each batch replaces every row, it is refused (exit 2) before any row is written. A
/// run of the first pipeline's name on a new checkpoint (the way out of a refused query
/// change) takes the table over without a word.
#[tokio::test]
async fn a_second_pipeline_writing_a_table_another_writes_is_said_or_refused() {
    let ws = Workspace::new();
    let table = unique_table("shared");
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"page\":\"home\",\"v\":1}\n{\"page\":\"home\",\"v\":2}\n",
    )
    .expect("input");
    let first = page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n");
    let run = sluice_run(&write_pipeline(&ws, &first));
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["home|2"]);

    std::fs::create_dir_all(ws.path("in-b")).expect("in-b");
    std::fs::write(ws.path("in-b/0.json"), "{\"page\":\"cart\",\"v\":9}\n").expect("input");
    let second = first
        .replace("name: pages", "name: pages_b")
        .replace(&ws.p("ckpt"), &ws.p("ckpt-b"))
        .replace(
            &format!("path: {},", ws.p("in")),
            &format!("path: {},", ws.p("in-b")),
        );
    let run = sluice_run(&write_pipeline(&ws, &second));
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains("is written by pipeline `pages` with checkpoint")
            && said.contains("a shard of the table"),
        "{said}"
    );
    assert_eq!(page_counts(&table).await, ["cart|1", "home|2"]);
    // Walk 64 (4): a third shard's run names both others, not one of them; retired as the
    // warning says, it is named no more.
    std::fs::create_dir_all(ws.path("in-c")).expect("in-c");
    std::fs::write(ws.path("in-c/0.json"), "{\"page\":\"shop\",\"v\":1}\n").expect("input");
    let third = second
        .replace("name: pages_b", "name: pages_c")
        .replace(&ws.p("ckpt-b"), &ws.p("ckpt-c3"))
        .replace(&ws.p("in-b"), &ws.p("in-c"));
    let run = sluice_run(&write_pipeline(&ws, &third));
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains("pipeline `pages` with checkpoint")
            && said.contains("pipeline `pages_b` with checkpoint")
            && said.contains(") too: in update mode"),
        "{said}"
    );
    execute(&format!(
        "DELETE FROM {table} WHERE page = 'shop'; DELETE FROM _sluice_progress WHERE label \
         LIKE 'pipeline `pages_c` %'"
    ))
    .await;
    let run = sluice_run(&write_pipeline(&ws, &second));
    assert!(
        run.status.success() && !stderr(&run).contains("pages_c"),
        "{}",
        stderr(&run)
    );

    // Complete mode, on a table of its own: refused, nothing written.
    let other_table = unique_table("replaced");
    let complete = |yaml: &str, ckpt: &str| {
        yaml.replace("output_mode: update", "output_mode: complete")
            .replace(&table, &other_table)
            .replace(&ws.p("ckpt-b"), &ws.p(ckpt))
            .replace(&ws.p("ckpt"), &ws.p(ckpt))
    };
    let run = sluice_run(&write_pipeline(&ws, &complete(&first, "ckpt-c")));
    assert!(run.status.success(), "{}", stderr(&run));
    let said = run_refused(
        &write_pipeline(&ws, &complete(&second, "ckpt-d")),
        "is written by pipeline `pages` with checkpoint",
    );
    assert!(
        said.contains("each batch of either replaces every row")
            && said.contains("give each pipeline its own table")
            && said.contains("DELETE FROM"),
        "{said}"
    );
    assert_eq!(
        page_counts(&other_table).await,
        ["home|2"],
        "nothing replaced"
    );

    // The same pipeline on a new checkpoint takes its table over, and writes what it reads.
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"home\",\"v\":3}\n").expect("input");
    let anew = first.replace(&ws.p("ckpt"), &ws.p("ckpt-new"));
    let run = sluice_run(&write_pipeline(&ws, &anew));
    assert!(run.status.success(), "{}", stderr(&run));
    // Its own old checkpoint is no other writer; the other pipeline still is.
    assert!(
        !stderr(&run).contains("is written by pipeline `pages` ")
            && stderr(&run)
                .matches("is written by pipeline `pages_b` ")
                .count()
                == 1,
        "{}",
        stderr(&run)
    );
    assert_eq!(page_counts(&table).await, ["cart|1", "home|3"]);
    // The old checkpoint run again is told of the newer one (update mode: shards of one
    // name are a use).
    let run = sluice_run(&write_pipeline(&ws, &first));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!(
            "is written by pipeline `pages` with checkpoint {}, created",
            ws.p("ckpt-new")
        )) && stderr(&run).contains("a newer checkpoint of this pipeline"),
        "{}",
        stderr(&run)
    );
    // In complete mode the newer checkpoint wins: the old one's runs write the table no more.
    let run = sluice_run(&write_pipeline(&ws, &complete(&first, "ckpt-c2")));
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::write(ws.path("in/2.json"), "{\"page\":\"home\",\"v\":4}\n").expect("input");
    let said = run_refused(
        &write_pipeline(&ws, &complete(&first, "ckpt-c")),
        &format!(
            "was taken over by pipeline `pages` with checkpoint {}, created",
            ws.p("ckpt-c2")
        ),
    );
    assert!(
        said.contains("stop this one's runs") && said.contains("DELETE FROM"),
        "{said}"
    );
    assert_eq!(page_counts(&other_table).await, ["home|3"]);
    // The newer one goes on.
    let run = sluice_run(&write_pipeline(&ws, &complete(&first, "ckpt-c2")));
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&other_table).await, ["home|4"]);
    // Walk 56 (16): the update-mode warning says how to retire a writer no longer run (each
    // checkpoint of `pages` left its row), and that way ends it.
    for retired in 0.. {
        let run = sluice_run(&write_pipeline(&ws, &second));
        let said = stderr(&run);
        assert!(run.status.success(), "{said}");
        if !said.contains("is written by pipeline `pages` ") {
            assert!(retired >= 2, "{retired} rows retired: {said}");
            break;
        }
        assert!(
            retired < 3,
            "still warned after {retired} rows retired: {said}"
        );
        assert!(
            said.contains("its row is all that is left of it: retire it"),
            "{said}"
        );
        run_advised_sql(&said, "DELETE FROM").await;
    }
}

/// Walk 38 (U1): a run into another table that committed no batch left the checkpoint's
/// sink record naming that table, and the next run into the first table warned that the sink
/// had moved from the table no batch ever reached. Where the batches went is what the
/// committed batches' pipeline files say.
#[tokio::test]
async fn a_run_that_wrote_no_batch_elsewhere_is_no_sink_move() {
    let ws = Workspace::new();
    let table = unique_table("stay");
    let other = unique_table("never");
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"home\",\"v\":1}\n").expect("input");
    let yaml = page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n");
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    assert!(run.status.success(), "{}", stderr(&run));
    // Into another table, with nothing new to read: said, no batch.
    let run = sluice_run(&write_pipeline(&ws, &yaml.replace(&table, &other)));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("the sink moved"), "{}", stderr(&run));
    // Back to the first table: no batch ever left it.
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"home\",\"v\":2}\n").expect("input");
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(!stderr(&run).contains("the sink moved"), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["home|2"]);
}

/// Walk 35 (1): a copy of a checkpoint (`cp -a`) run beside the original took the same epoch
/// in its own `epochs/`, so the progress row's epoch fence let both write, batch over batch,
/// and the table went back in time. The progress row keeps the label of the run that wrote
/// it: a run whose epoch is the row's but whose checkpoint is another is refused, naming it.
#[tokio::test]
async fn a_copy_of_the_checkpoint_at_the_same_epoch_is_refused() {
    let ws = Workspace::new();
    let table = unique_table("copied");
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"home\",\"v\":1}\n").expect("input");
    let yaml = page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    // The copy's run at the epoch the next run of the original takes, as if both ran at once.
    let next_epoch = std::fs::read_dir(ws.path("ckpt/epochs"))
        .expect("epochs/")
        .count();
    let id = std::fs::read_to_string(ws.path("ckpt/metadata")).expect("metadata");
    let id = id
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the pipeline id");
    execute(&format!(
        "UPDATE \"_sluice_progress\" SET epoch = {next_epoch}, \
         label = 'pipeline `pages` with checkpoint /elsewhere/ckpt' WHERE pipeline = '{id}'"
    ))
    .await;
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"home\",\"v\":2}\n").expect("input");
    let said = run_refused(
        &pipeline,
        "was written by pipeline `pages` with checkpoint /elsewhere/ckpt at this run's own epoch",
    );
    assert!(said.contains("a copy of this checkpoint"), "{said}");
    assert_eq!(
        page_counts(&table).await,
        ["home|1"],
        "nothing written over"
    );
    // Run again, it takes a newer epoch, which the copy's next batch would be fenced by.
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, ["home|2"]);
}

/// A pipeline of source `s` (JSON lines under `in`, `{ id: bigint, r: double, t: string }`)
/// running `query` in `mode` into PostgreSQL table `table`, with `extra` sink settings.
/// Walk 100 (2, 6): text that is not JSON into a `jsonb` column failed its batch with "the
/// next run ... finishes it" on every run, and a row no partition of a partitioned table takes
/// was said to break a CHECK constraint the table does not have. Each is a row the table
/// refuses: named with what to change, not tried again, with the rewind; the partition's
/// advice, followed, lets the batch through.
#[tokio::test]
async fn a_value_the_column_does_not_read_and_a_row_of_no_partition_are_named() {
    let ws = Workspace::new();
    typed_input(&ws, "0.json", "{\"id\":2,\"r\":1,\"t\":\"not json\"}\n");
    let table = unique_table("jsonb");
    execute(&format!("CREATE TABLE {table} (id bigint, t jsonb)")).await;
    let run = sluice_run(&write_pipeline(
        &ws,
        &typed_pipeline(&ws, "SELECT id, t FROM s", "append", &table, ""),
    ));
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("does not read as the column's type in the table")
            && said.contains(&format!("ALTER TABLE \"{table}\" ALTER COLUMN"))
            && said.contains("Batch 0 stays planned with this pipeline file and its input")
            && !said.contains("The batch stays planned: the next run")
            && !said.contains("retrying"),
        "{said}"
    );
    let ws = Workspace::new();
    typed_input(&ws, "0.json", "{\"id\":2,\"r\":1,\"t\":\"a\"}\n");
    let table = unique_table("parted");
    execute(&format!(
        "CREATE TABLE {table} (id bigint, t text) PARTITION BY LIST (id); CREATE TABLE \
         {table}_1 PARTITION OF {table} FOR VALUES IN (1)"
    ))
    .await;
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(&ws, "SELECT id, t FROM s", "append", &table, ""),
    );
    let run = sluice_run(&pipeline);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("has a partition key no partition of the table takes")
            && !said.contains("CHECK constraint"),
        "{said}"
    );
    let advice = advised(&said, "CREATE TABLE").replace("<name>", &format!("{table}_rest"));
    execute(&advice).await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(row_count(&table).await, 1);
}

/// Walk 100 (4): `replay --verify` of a batch with a `bytea` column the sink made never
/// passed: the column came back as PostgreSQL's text of it (`\\x...`), which Arrow's JSON
/// reader refused ("UNREADABLE"), and the rewind it advised changed nothing. It verifies.
#[tokio::test]
async fn replay_verify_reads_a_bytea_column_back() {
    let ws = Workspace::new();
    typed_input(
        &ws,
        "0.json",
        "{\"id\":1,\"r\":1,\"t\":\"hi\"}\n{\"id\":2,\"r\":2,\"t\":null}\n",
    );
    let table = unique_table("bytea");
    let run = sluice_run(&write_pipeline(
        &ws,
        &typed_pipeline(
            &ws,
            "SELECT id, CAST(t AS BYTEA) AS raw FROM s",
            "append",
            &table,
            "  create_table: true\n  batch_column: b\n",
        ),
    ));
    assert!(run.status.success(), "{}", stderr(&run));
    let (code, said) = verify_batch_0(&ws);
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("UNREADABLE"), "{said}");
}

/// `sluice replay ckpt --batch 0 --verify` in `ws`: its exit code and what it printed (standard
/// output, then standard error).
fn verify_batch_0(ws: &Workspace) -> (Option<i32>, String) {
    let verify = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
        ws.dir.path(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        stderr(&verify)
    );
    (verify.status.code(), said)
}

/// Walk 100 (1): the url's `options` that set `search_path` taken out between runs sent the
/// next batches into a new table of the same name in `public`, the earlier ones left in the
/// other schema, exit 0 without a word. Refused, naming where the batches went; the table
/// named with that schema, as advised, writes on there: every row in one table, once.
#[tokio::test]
async fn a_table_found_in_another_schema_than_its_batches_went_to_is_refused() {
    let ws = Workspace::new();
    let schema = unique_table("w100_path");
    let table = unique_table("pathed");
    execute(&format!("CREATE SCHEMA {schema}")).await;
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"a\"}\n");
    let yaml = typed_pipeline(
        &ws,
        "SELECT id, t FROM s",
        "append",
        &table,
        "  create_table: true\n",
    );
    let pathed = yaml.replace(
        &format!("url: {}", server()),
        &format!("url: {} options='-c search_path={schema}'", server()),
    );
    assert_ne!(pathed, yaml);
    let pipeline = write_pipeline(&ws, &pathed);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    typed_input(&ws, "1.json", "{\"id\":2,\"r\":1,\"t\":\"b\"}\n");
    let pipeline = write_pipeline(&ws, &yaml);
    let said = run_refused(
        &pipeline,
        &format!(
            "table `{table}` is public.{table} to this session (the first schema of its \
             `search_path` that has it, or where it would be made), but this checkpoint's \
             batches up to 0 went to {schema}.{table}"
        ),
    );
    let (table_line, progress_line) = (
        advised(&said, "table: "),
        advised(&said, "progress_table: "),
    );
    assert_eq!(
        progress_line,
        format!("progress_table: {schema}._sluice_progress")
    );
    let pipeline = write_pipeline(
        &ws,
        &yaml.replace(
            &format!("table: {table}\n"),
            &format!("{table_line}\n  {progress_line}\n"),
        ),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(row_count(&format!("{schema}.{table}")).await, 2);
    let public: i64 = client(server())
        .await
        .query_one(
            &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"),
            &[],
        )
        .await
        .expect("tables")
        .get(0);
    assert_eq!(public, 1, "a second table was made");
}

fn typed_pipeline(ws: &Workspace, query: &str, mode: &str, table: &str, extra: &str) -> String {
    format!(
        "name: typed\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: files\n    path: {input}\n    format: json\n    schema: {{ id: bigint, r: double, t: string }}\nquery: \"{query}\"\noutput_mode: {mode}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n{extra}",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        url = server(),
    )
}

fn typed_input(ws: &Workspace, name: &str, text: &str) {
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path(&format!("in/{name}")), text).expect("input");
}

/// Walk 85 (2): `DISTINCT ON (k)` where `k` is a selected expression (`CAST(id % 2 AS
/// VARCHAR) AS k`) was refused in update mode: "the group key `s.id` is not a column of the
/// query's output". The key is the output's `k`, and the table holds each key's first row.
#[tokio::test]
async fn distinct_on_a_selected_expression_is_keyed_by_its_name() {
    let ws = Workspace::new();
    let table = unique_table("distinct_on");
    typed_input(
        &ws,
        "0.json",
        "{\"id\":1,\"r\":1.5,\"t\":\"a\"}\n{\"id\":2,\"r\":2.5,\"t\":\"b\"}\n{\"id\":3,\"r\":3.5,\"t\":\"c\"}\n",
    );
    let query = "SELECT DISTINCT ON (k) CAST(id % 2 AS VARCHAR) AS k, r FROM s ORDER BY k, r DESC";
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(
            &ws,
            query,
            "update",
            &table,
            "  key: [k]\n  create_table: true\n",
        ),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows: Vec<(String, f64)> = client(server())
        .await
        .query(&format!("SELECT k, r FROM {table} ORDER BY k"), &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [("0".to_string(), 2.5), ("1".to_string(), 3.5)]);
}

/// Walk 87 (6): `batch_column` in update mode was taken without a word, where it takes no
/// batch back and reads none back; the run says so.
#[tokio::test]
async fn a_batch_column_in_update_mode_is_said_to_tell_no_batch_apart() {
    let ws = Workspace::new();
    let table = unique_table("batch_update");
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1.5,\"t\":\"a\"}\n");
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(
            &ws,
            "SELECT t, sum(r) AS r FROM s GROUP BY t",
            "update",
            &table,
            "  key: [t]\n  create_table: true\n  batch_column: b\n",
        ),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(
            "`batch_column: b` in update mode records the batch that last wrote each row, and \
             no more"
        ),
        "{}",
        stderr(&run)
    );
}

/// A review: in update mode two keys the query tells apart but the table's unique index does
/// not (`'a'` and `'a '` in a `char(3)` key) both went into the batch's upsert, and
/// PostgreSQL refused it ("cannot affect row a second time") on every run. Keys are compared
/// as the table compares them: one row of the key.
#[tokio::test]
async fn keys_one_to_the_table_are_one_key_of_the_batch() {
    let ws = Workspace::new();
    let table = unique_table("padded");
    execute(&format!(
        "CREATE TABLE {table} (t char(3) PRIMARY KEY, n int8)"
    ))
    .await;
    typed_input(
        &ws,
        "0.json",
        "{\"id\":1,\"r\":1,\"t\":\"a\"}\n{\"id\":2,\"r\":1,\"t\":\"a \"}\n{\"id\":3,\"r\":1,\"t\":\"b\"}\n",
    );
    let query = "SELECT t, count(*) AS n FROM s GROUP BY t";
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(&ws, query, "update", &table, "  key: [t]\n"),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let keys: Vec<String> = client(server())
        .await
        .query(&format!("SELECT t::text FROM {table} ORDER BY t"), &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert_eq!(keys, ["a", "b"]);
}

/// Walk 89 (U5): a stateless query in update mode whose batch had two rows of one key wrote
/// one of them without a word. It is said, with how to pick the newest by a column of the
/// rows; the table holds one row of each key (here, of one file, the last).
#[tokio::test]
async fn rows_of_one_key_in_one_batch_are_said() {
    let ws = Workspace::new();
    let table = unique_table("dupkeys");
    typed_input(
        &ws,
        "0.json",
        "{\"id\":1,\"r\":1,\"t\":\"a\"}\n{\"id\":2,\"r\":1,\"t\":\"a\"}\n{\"id\":3,\"r\":1,\"t\":\"b\"}\n",
    );
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(
            &ws,
            "SELECT t, id FROM s",
            "update",
            &table,
            "  key: [t]\n  create_table: true\n",
        ),
    );
    let run = sluice_run(&pipeline);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains("in batch 0, 1 rows gave way to another row of their key (`key: [t]`)")
            && said.contains("SELECT DISTINCT ON (t)"),
        "{said}"
    );
    let rows: Vec<String> = client(server())
        .await
        .query(
            &format!("SELECT t || '|' || id FROM {table} ORDER BY t"),
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert_eq!(rows, ["a|2", "b|3"]);
}

/// Walk 48 (3, 10): a table made by hand with wider columns than the query's (`int8` for an
/// `INT`, `float8` for a `REAL`) was refused, and a `json`/`jsonb` column refused text with
/// advice (`CAST(... AS JSON)`) DataFusion does not take. Both take the query's values, in
/// append and update mode; text that is not JSON stops the batch naming the type; `replay
/// --verify` reads them back (a column named `r`, as the read-back's own alias was, too), and
/// says why a `jsonb` column's text differs.
#[tokio::test]
async fn wider_columns_and_json_columns_take_the_query_values() {
    let query = "SELECT CAST(id AS INT) AS id, CAST(id AS SMALLINT) AS n, CAST(r AS REAL) AS r, \
                 t AS doc, t AS raw FROM s";
    for mode in ["append", "update"] {
        let ws = Workspace::new();
        let table = unique_table("wider");
        let key = if mode == "update" { " PRIMARY KEY" } else { "" };
        execute(&format!(
            "CREATE TABLE {table} (id int8{key}, n int8, r float8, doc jsonb, raw json, b bigint)"
        ))
        .await;
        typed_input(
            &ws,
            "0.json",
            "{\"id\":1,\"r\":1.5,\"t\":\"{\\\"b\\\": 1, \\\"a\\\": [1,2]}\"}\n{\"id\":2,\"r\":-2.25,\"t\":\"[1, 2]\"}\n",
        );
        let extra = if mode == "update" {
            "  key: [id]\n"
        } else {
            "  batch_column: b\n"
        };
        let pipeline = write_pipeline(&ws, &typed_pipeline(&ws, query, mode, &table, extra));
        let run = sluice_run(&pipeline);
        assert!(run.status.success(), "{mode}: {}", stderr(&run));
        let rows: Vec<String> = client(server())
            .await
            .query(
                &format!("SELECT id, n, r, doc::text, raw::text FROM {table} ORDER BY id"),
                &[],
            )
            .await
            .expect("rows")
            .iter()
            .map(|r| {
                format!(
                    "{}|{}|{}|{}|{}",
                    r.get::<_, i64>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, f64>(2),
                    r.get::<_, String>(3),
                    r.get::<_, String>(4)
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                r#"1|1|1.5|{"a": [1, 2], "b": 1}|{"b": 1, "a": [1,2]}"#,
                "2|2|-2.25|[1, 2]|[1, 2]"
            ],
            "{mode}"
        );
        if mode == "append" {
            let (code, said) = verify_batch_0(&ws);
            // The jsonb column reads back as jsonb keeps it, and that is said.
            assert_eq!(code, Some(1), "{said}");
            assert!(
                said.contains("A `jsonb` column keeps JSON its own way"),
                "{said}"
            );
        }
        typed_input(&ws, "1.json", "{\"id\":3,\"r\":0,\"t\":\"not json\"}\n");
        let run = sluice_run(&pipeline);
        let said = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{mode}: {said}");
        assert!(said.contains("type json"), "{mode}: {said}");
        execute(&format!("DROP TABLE {table}")).await;
    }
}

/// Walk 48 (5, 4): a view named by `table:` passed the checks and failed at the first batch,
/// planned ("cannot copy to view"); it is refused before a batch (exit 2), naming it. A table
/// renamed since the pipeline wrote it was said to be "dropped or renamed"; it is named by
/// its new name with the statement that puts it back, which works.
#[tokio::test]
async fn a_view_and_a_renamed_table_are_named_before_a_batch() {
    let ws = Workspace::new();
    let table = unique_table("named");
    let view = format!("{table}_view");
    execute(&format!(
        "CREATE TABLE {table} (id bigint, t text); CREATE VIEW {view} AS SELECT * FROM {table}"
    ))
    .await;
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"a\"}\n");
    let query = "SELECT id, t FROM s";
    let refused = sluice_run(&write_pipeline(
        &ws,
        &typed_pipeline(&ws, query, "append", &view, ""),
    ));
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("{view}\" is a view, not a table")),
        "{said}"
    );
    assert!(
        !ws.path("ckpt").exists(),
        "a refused run left its checkpoint"
    );

    let pipeline = write_pipeline(&ws, &typed_pipeline(&ws, query, "append", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    execute(&format!(
        "DROP VIEW {view}; ALTER TABLE {table} RENAME TO {table}_v2"
    ))
    .await;
    typed_input(&ws, "1.json", "{\"id\":2,\"r\":1,\"t\":\"b\"}\n");
    let refused = sluice_run(&pipeline);
    let said = stderr(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains(&format!("it was renamed to public.{table}_v2")),
        "{said}"
    );
    run_advised_sql(&said, "ALTER TABLE").await;
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let n: i64 = client(server())
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 2);
    execute(&format!("DROP TABLE {table}")).await;
}

/// Walk 48 (2): text with a NUL byte failed the batch with the server's `invalid byte
/// sequence for encoding "UTF8": 0x00`, naming no column. It is named by column and value,
/// with a rewrite of the query that works.
#[tokio::test]
async fn text_with_a_nul_byte_is_named_by_its_column() {
    let ws = Workspace::new();
    let table = unique_table("nul");
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"a\\u0000b\"}\n");
    let yaml = typed_pipeline(
        &ws,
        "SELECT id, t FROM s",
        "append",
        &table,
        "  create_table: true\n",
    );
    let failed = sluice_run(&write_pipeline(&ws, &yaml));
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("column `t` holds text with a NUL byte (\"a\\0b\")")
            && said.contains("replace(t, chr(0), '')")
            && said.contains("WHERE strpos(t, chr(0)) = 0"),
        "{said}"
    );
    // The batch stays planned with the query: a new checkpoint takes the rewrite.
    std::fs::remove_dir_all(ws.path("ckpt")).expect("start over");
    let fixed = yaml.replace(
        "SELECT id, t FROM s",
        "SELECT id, replace(t, chr(0), '') AS t FROM s",
    );
    let run = sluice_run(&write_pipeline(&ws, &fixed));
    assert!(run.status.success(), "{}", stderr(&run));
    let t: String = client(server())
        .await
        .query_one(&format!("SELECT t FROM {table}"), &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(t, "ab");
}

/// Walk 48 (6, 11): a lock held elsewhere ended the run with the server's "canceling
/// statement due to lock timeout", naming no one; a role without INSERT with "permission
/// denied". The session holding the lock is named (its pid, application and statement) with
/// the statement that ends it; the missing rights with the GRANT that gives them. A longer
/// `retry:` timeout, edited in, applies to the batch the lock failed.
#[tokio::test]
async fn a_lock_held_elsewhere_and_a_missing_right_are_named() {
    let ws = Workspace::new();
    let table = unique_table("locked");
    execute(&format!("CREATE TABLE {table} (id bigint, t text)")).await;
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"a\"}\n");
    let yaml = typed_pipeline(
        &ws,
        "SELECT id, t FROM s",
        "append",
        &table,
        "  retry: { attempts: 1, backoff: 100ms, timeout: 1s }\n",
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let holder = client(&format!("{} application_name=w_lock_holder", server())).await;
    holder
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .expect("lock");
    let failed = sluice_run(&pipeline);
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("lock timeout")
            && said.contains("application `w_lock_holder`")
            && said.contains("holds AccessExclusiveLock")
            && said.contains("pg_terminate_backend"),
        "{said}"
    );
    // Walk 48 (6): the failed batch stays planned with its `retry:`, and an edit of `retry:`
    // alone (how long the server is waited for, not what is written) applies to it: with a
    // longer timeout it waits until the lock's holder is gone.
    write_pipeline(&ws, &yaml.replace("timeout: 1s", "timeout: 30s"));
    let ender = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(3));
        let rt = tokio::runtime::Runtime::new().expect("rt");
        rt.block_on(async {
            client(server())
                .await
                .batch_execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'w_lock_holder'",
                )
                .await
                .expect("end the holder")
        });
    });
    let waited = sluice_run(&pipeline);
    ender.join().expect("ender");
    assert!(waited.status.success(), "{}", stderr(&waited));
    drop(holder);

    // A role that may read the table but not write it (emptied first: its rows are another
    // pipeline's, whose progress table this role may not read, which walk 105 refuses).
    execute(&format!("TRUNCATE {table}")).await;
    let role = unique_table("w_role");
    let progress = format!("{role}_progress");
    execute(&format!(
        "CREATE ROLE {role} LOGIN; GRANT SELECT ON {table} TO {role}; \
         CREATE TABLE {progress} (pipeline text PRIMARY KEY, batch bigint NOT NULL, \
         epoch bigint NOT NULL, rows bigint NOT NULL, committed_at timestamptz NOT NULL \
         DEFAULT now(), target text, relation oid, label text); \
         GRANT SELECT, INSERT, UPDATE ON {progress} TO {role}"
    ))
    .await;
    std::fs::remove_dir_all(ws.path("ckpt")).ok();
    let as_role = yaml
        .replace("user=sluice", &format!("user={role}"))
        .replace(
            "  retry:",
            &format!("  progress_table: {progress}\n  retry:"),
        );
    assert_ne!(as_role, yaml);
    let failed = sluice_run(&write_pipeline(&ws, &as_role));
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("permission denied")
            && said.contains(&format!(
                "GRANT SELECT, INSERT ON \"{table}\" TO \"{role}\";"
            )),
        "{said}"
    );
    execute(&format!(
        "DROP TABLE {table}; DROP TABLE {progress}; DROP OWNED BY {role}; DROP ROLE {role}"
    ))
    .await;
}

/// Walk 72: in update mode, a query's time without a zone into a `timestamptz` column (and
/// one with a zone into a `timestamp` column) was shifted by the offset of the role's
/// `TimeZone` (New York), where append mode wrote the same instant: update mode moves rows
/// from its staging table by SQL, which converts in the session's zone. Sluice's sessions
/// are in UTC. The connection string's own `options` (a `search_path` here) were dropped;
/// they are kept.
#[tokio::test]
async fn a_role_in_another_time_zone_writes_the_same_times_in_every_mode() {
    let schema = unique_table("w_zone");
    let role = format!("{schema}_role");
    execute(&format!(
        "CREATE SCHEMA {schema}; CREATE ROLE {role} LOGIN; \
         ALTER ROLE {role} SET timezone = 'America/New_York'; \
         GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}; \
         CREATE TABLE {schema}.upd (id bigint PRIMARY KEY, at timestamptz, local timestamp); \
         CREATE TABLE {schema}.app (id bigint, at timestamptz, local timestamp); \
         GRANT ALL ON {schema}.upd, {schema}.app TO {role}"
    ))
    .await;
    for (table, mode) in [("upd", "update\n  key: [id]"), ("app", "append")] {
        let ws = Workspace::new();
        std::fs::create_dir_all(ws.path("in")).expect("in");
        std::fs::write(
            ws.path("in/0.json"),
            "{\"id\":1,\"at\":\"2026-03-08 01:30:00\"}\n{\"id\":2,\"at\":\"2026-07-01T12:00:00\"}\n",
        )
        .expect("input");
        let url = format!(
            "{} options='-c search_path={schema}'",
            server().replace("user=sluice", &format!("user={role}"))
        );
        let (output_mode, key) = mode.split_once('\n').unwrap_or((mode, ""));
        let yaml = format!(
            "name: zone\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
             format: json, schema: {{ id: bigint, at: timestamp }} }}\nquery: |\n  SELECT id, \
             at, arrow_cast(at, 'Timestamp(Microsecond, Some(\"UTC\"))') AS local FROM s\n\
             output_mode: {output_mode}\ntrigger: available-now\nsink:\n  kind: postgres\n  \
             url: \"{url}\"\n  table: {table}\n{key}\n",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
        );
        let run = sluice_run(&write_pipeline(&ws, &yaml));
        assert!(run.status.success(), "{table}: {}", stderr(&run));
        let rows = client(server())
            .await
            .query(
                &format!(
                    "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), \
                     to_char(local, 'YYYY-MM-DD HH24:MI') FROM {schema}.{table} ORDER BY id"
                ),
                &[],
            )
            .await
            .expect("query");
        let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let want = |t: &str| (t.to_string(), t.to_string());
        assert_eq!(
            got,
            vec![want("2026-03-08 01:30"), want("2026-07-01 12:00")],
            "{table}"
        );
    }
    // The progress table went where the connection string's `search_path` put it.
    assert!(row_count(&format!("{schema}._sluice_progress")).await >= 2);
}

/// Walk 72: a `numeric(18,2)` column took a query's `decimal(18,4)` and PostgreSQL rounded
/// every value (12.3456 to 12.35), exit 0; a `timestamp(0)` column rounds a time's fraction
/// of a second the same way. Both are refused before a batch, with the `ALTER` and the
/// query's way; a `numeric(20,0)` column, which holds every bigint, takes one. So are a
/// `time(0)` column (10:00:00.7 went in as 10:00:01) and an `interval(0)` one.
#[tokio::test]
async fn a_column_that_would_round_the_querys_values_is_refused_before_a_batch() {
    let ws = Workspace::new();
    let table = unique_table("w_round");
    execute(&format!(
        "CREATE TABLE {table} (id numeric(20,0), amount numeric(18,2), at timestamp(0), \
         h numeric(10,-2), tm time(0), iv interval(0), ds interval day to second)"
    ))
    .await;
    typed_input(
        &ws,
        "0.json",
        "{\"id\":9223372036854775807,\"r\":1,\"t\":\"a\"}\n",
    );
    let query = "SELECT id, CAST('12.3456' AS DECIMAL(18,4)) AS amount, \
                 CAST('2026-01-01 10:00:00.5' AS TIMESTAMP) AS at, id AS h, \
                 CAST('10:00:00.7' AS TIME) AS tm, arrow_cast(1500, 'Duration(Millisecond)') \
                 AS iv, arrow_cast(1500, 'Duration(Millisecond)') AS ds FROM s";
    let pipeline = write_pipeline(&ws, &typed_pipeline(&ws, query, "append", &table, ""));
    let said = run_refused(
        &pipeline,
        "the query's columns do not fit the table in 5 ways",
    );
    for says in [
        "column `amount` is numeric(18,2) in the table, which keeps 2 decimal places, but the \
         query gives decimal(18,4): PostgreSQL would round each value to 2 places without a \
         word",
        "ALTER COLUMN \"amount\" TYPE numeric(20, 4)",
        "CAST(round(amount, 2) AS DECIMAL(18, 2)) AS amount",
        "column `at` is timestamp(0) without time zone in the table, which keeps 0 digits of a \
         second",
        "arrow_cast(date_trunc('second', at), 'Timestamp(Second, None)') AS at",
        // A negative scale (PostgreSQL 15) rounds an integer to hundreds.
        "column `h` is numeric(10,-2) in the table, which keeps -2 decimal places, but the \
         query gives bigint",
        "column `tm` is time(0) without time zone in the table, which keeps 0 digits of a \
         second, but the query's times carry 6",
        "column `iv` is interval(0) in the table, which keeps only part of an interval (fewer \
         digits of a second)",
    ] {
        assert!(said.contains(says), "no `{says}` in: {said}");
    }
    // `id` fits, and so does `ds` (an interval to the second cuts nothing).
    assert!(
        !said.contains("column `id`") && !said.contains("column `ds`"),
        "{said}"
    );
    // Done as the message says, the values go in exactly.
    let query = "SELECT id, CAST(round(CAST('12.3456' AS DECIMAL(18,4)), 2) AS DECIMAL(18, 2)) \
                 AS amount, arrow_cast(date_trunc('second', CAST('2026-01-01 10:00:00.5' AS \
                 TIMESTAMP)), 'Timestamp(Second, None)') AS at FROM s";
    let pipeline = write_pipeline(&ws, &typed_pipeline(&ws, query, "append", &table, ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let row = client(server())
        .await
        .query_one(
            &format!("SELECT id::text, amount::text, at::text FROM {table}"),
            &[],
        )
        .await
        .expect("query");
    let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        got,
        (
            "9223372036854775807".to_string(),
            "12.35".to_string(),
            "2026-01-01 10:00:00".to_string()
        )
    );
}

/// Walk 72: a complete-mode run failed "permission denied for schema" because another
/// pipeline's progress row named a table in a schema this role may not use, and advised
/// grants the role had. Tables are compared by name as the server gives them, and a
/// trigger's own `RAISE EXCEPTION` is named with what to change.
#[tokio::test]
async fn another_pipelines_table_in_a_closed_schema_does_not_stop_complete_mode() {
    let schema = unique_table("w_open");
    let closed = format!("{schema}_closed");
    let role = format!("{schema}_role");
    execute(&format!(
        "CREATE SCHEMA {schema}; CREATE SCHEMA {closed}; CREATE ROLE {role} LOGIN; \
         GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}; \
         CREATE TABLE {closed}.theirs (id bigint)"
    ))
    .await;
    let ws = Workspace::new();
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"a\"}\n");
    let yaml = typed_pipeline(
        &ws,
        "SELECT t, count(*) AS n FROM s GROUP BY t",
        "complete",
        &format!("{schema}.counts"),
        &format!("  create_table: true\n  progress_table: {schema}.progress\n"),
    )
    .replace("user=sluice", &format!("user={role}"));
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    // Another pipeline's row, naming a table this role cannot look up.
    execute(&format!(
        "INSERT INTO {schema}.progress (pipeline, batch, epoch, rows, target) \
         VALUES ('someone-else', 0, 1, 0, '{closed}.theirs')"
    ))
    .await;
    typed_input(&ws, "1.json", "{\"id\":2,\"r\":1,\"t\":\"a\"}\n");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(row_count(&format!("{schema}.counts")).await, 1);
    execute(&format!(
        "CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'no more counts'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON {schema}.counts \
         FOR EACH ROW EXECUTE FUNCTION {schema}.refuse()"
    ))
    .await;
    typed_input(&ws, "2.json", "{\"id\":3,\"r\":1,\"t\":\"b\"}\n");
    let run = sluice_run(&pipeline);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    for says in [
        "no more counts",
        "a trigger or rule of the table raised it for a row of the batch",
        "refuse()",
        "SELECT tgname FROM pg_trigger",
    ] {
        assert!(said.contains(says), "no `{says}` in: {said}");
    }
}

/// Walk 80 (4): a pending batch whose file was moved away after the PostgreSQL sink (update
/// mode) had taken the batch advised "restore the file; or `sluice rewind ... --to N`", and
/// that rewind was refused (the table cannot give the batch back). The message says so with
/// the advice, and the rewind's own way out; restoring the file finishes the batch once.
#[tokio::test]
async fn a_rewind_a_message_advises_that_the_sink_would_refuse_is_said_refused() {
    let ws = Workspace::new();
    let table = unique_table("refusedrewind");
    std::fs::write(ws.path("in/0.json"), "{\"page\":\"a\",\"v\":1}\n").expect("input");
    let pipeline = write_pipeline(
        &ws,
        &page_count_pipeline(&ws, &table, "  key: [page]\n  create_table: true\n"),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::write(ws.path("in/1.json"), "{\"page\":\"a\",\"v\":2}\n").expect("input");
    assert!(crashed(&run_quietly(
        &pipeline,
        &Crash::Before.env(1, "commits/")
    )));
    std::fs::rename(ws.path("in/1.json"), ws.path("moved.json")).expect("move");
    let run = sluice_run(&pipeline);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("`sluice rewind {} --to 0`", ws.p("ckpt")))
            && said.contains("The rewind it names would be refused now: cannot rewind")
            && said.contains("which cannot take batches back"),
        "{said}"
    );
    std::fs::rename(ws.path("moved.json"), ws.path("in/1.json")).expect("restore");
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(page_counts(&table).await, vec!["a|2".to_string()]);
}

/// Walk 82 (2): an aggregation without GROUP BY in update mode sent the user round in a
/// circle: `key: [n]` was answered "set `key: []`", and `key: []` (or none) "set `key:` to
/// the query's GROUP BY columns". Each says the one row has no key and names complete mode,
/// which writes it.
#[tokio::test]
async fn a_global_aggregate_in_update_mode_is_sent_to_complete_mode() {
    let ws = Workspace::new();
    let table = unique_table("global");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"page\":\"a\",\"v\":1}\n{\"page\":\"b\",\"v\":2}\n",
    )
    .expect("input");
    let yaml = |mode: &str, key: &str| {
        format!(
            "name: global\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
             format: json, schema: {{ page: string, v: bigint }} }}\nquery: SELECT count(*) AS \
             n, sum(v) AS sv FROM s\noutput_mode: {mode}\ntrigger: available-now\nsink:\n  \
             kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n{key}",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            url = server(),
        )
    };
    for key in ["  key: [n]\n", "  key: []\n", ""] {
        let pipeline = write_pipeline(&ws, &yaml("update", key));
        run_refused(&pipeline, "the query aggregates without GROUP BY");
        let said = run_refused(&pipeline, "`output_mode: complete`");
        assert!(!said.contains("set `key: []`"), "{said}");
    }
    let pipeline = write_pipeline(&ws, &yaml("complete", ""));
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = client(server())
        .await
        .query(&format!("SELECT n, sv FROM {table}"), &[])
        .await
        .expect("select");
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(2, 3)]);
}

/// Walk 105 (1): a role that could not read another pipeline's progress table (its schema's
/// `USAGE` not granted) did not see that pipeline's row naming the table, and a new
/// checkpoint appended every batch again: 1200 rows of 600, exit 0. Refused over a table
/// that holds rows, naming the tables it may not read with the grants; the grants followed,
/// the run is refused as another pipeline's table, and no row was added.
#[tokio::test]
async fn a_role_that_may_not_read_another_progress_table_is_refused_over_a_filled_table() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let schema = unique_table("w105_blind");
    let role = format!("{schema}_role");
    let table = format!("{schema}_out");
    // A database of its own: the progress tables other tests make at the same time are not
    // in it.
    execute(&format!("CREATE DATABASE {schema}")).await;
    execute(&format!("CREATE ROLE {role} LOGIN")).await;
    assert!(server().contains("dbname=sluice"), "{}", server());
    let url = server().replace("dbname=sluice", &format!("dbname={schema}"));
    let db = client(&url).await;
    let run_sql = |statements: String| {
        let db = &db;
        async move {
            db.batch_execute(&statements)
                .await
                .unwrap_or_else(|e| panic!("{statements}: {e}"))
        }
    };
    let count = || async {
        client(&url)
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    run_sql(format!("CREATE SCHEMA {schema}")).await;
    let yaml = format!(
        "name: owned\ncheckpoint: {ckpt}\nsources:\n{source}query: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n  progress_table: {schema}.progress\n",
        ckpt = ws.p("ckpt"),
        source = files_source(&ws),
    );
    let run = sluice_run(&write_pipeline(&ws, &yaml));
    assert!(run.status.success(), "{}", stderr(&run));
    let rows = count().await;
    assert!(rows > 0);
    // The other role may write the table and make the default progress table, and read
    // neither the first pipeline's progress table nor its schema.
    run_sql(format!(
        "GRANT SELECT, INSERT ON {table} TO {role}; \
         GRANT CREATE ON SCHEMA public TO {role}"
    ))
    .await;
    let other = yaml
        .replace(&ws.p("ckpt"), &ws.p("ckpt-b"))
        .replace(&format!("  progress_table: {schema}.progress\n"), "")
        .replace("user=sluice", &format!("user={role}"));
    assert!(other.contains(&format!("user={role}")), "{other}");
    let pipeline = write_pipeline(&ws, &other);
    let said = run_refused(&pipeline, "may not read");
    assert!(
        said.contains(&format!(
            "may not read, {schema}.progress, may hold the row of the pipeline that wrote them: \
             let it read them (`GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON \
             {schema}.progress TO {role};`)"
        )),
        "{said}"
    );
    assert_eq!(count().await, rows);
    // A table of its own, made by the run, as the message says where the grants cannot be
    // had: taken, and its next run (its own row there now) is not refused either.
    let own = format!("{table}_own");
    let apart = write_pipeline(
        &ws,
        &other
            .replace(&ws.p("ckpt-b"), &ws.p("ckpt-c"))
            .replace(&format!("table: {table}\n"), &format!("table: {own}\n")),
    );
    let run = sluice_run(&apart);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 3, 40, 2);
    let run = sluice_run(&apart);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let own_rows: i64 = db
        .query_one(&format!("SELECT count(*) FROM {own}"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(own_rows as usize, expected.len());
    write_pipeline(&ws, &other);
    let grants = said
        .split('`')
        .find(|part| part.starts_with("GRANT"))
        .expect("grants");
    run_sql(grants.to_string()).await;
    run_refused(&pipeline, "another pipeline or checkpoint");
    assert_eq!(count().await, rows);
    drop(db);
    execute(&format!("DROP DATABASE {schema} WITH (FORCE)")).await;
    execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

/// Walk 105 (2): citext, enum, domain and uuid columns were refused ("cast it in the query",
/// to types the query's SQL does not have). Text goes into citext, an enum, a domain of text
/// (and a domain of numeric takes a decimal) and uuid, in append and update mode, and reads
/// back as written; `replay --verify` agrees. A type Sluice does not send (inet) is named
/// with the way that works.
#[tokio::test]
async fn text_goes_into_citext_enum_domain_and_uuid_columns() {
    execute("CREATE EXTENSION IF NOT EXISTS citext").await;
    for mode in ["append", "update"] {
        let ws = Workspace::new();
        let table = unique_table("w105_types");
        let key = if mode == "update" { " PRIMARY KEY" } else { "" };
        execute(&format!(
            "CREATE TYPE {table}_mood AS ENUM ('sad', 'ok', 'happy'); \
             CREATE DOMAIN {table}_amount AS numeric(12, 2) CHECK (VALUE >= 0); \
             CREATE DOMAIN {table}_code AS text CHECK (VALUE <> ''); \
             CREATE TABLE {table} (id int8{key}, name citext, mood {table}_mood, \
             amount {table}_amount, code {table}_code, ref uuid, b int8)"
        ))
        .await;
        typed_input(
            &ws,
            "0.json",
            "{\"id\":1,\"r\":1.5,\"t\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}\n{\"id\":2,\"r\":2.25,\"t\":\"{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12}\"}\n",
        );
        let query = "SELECT id, CASE WHEN id = 1 THEN 'Ann' ELSE 'BOB' END AS name, CASE WHEN \
                     id = 1 THEN 'ok' ELSE 'happy' END AS mood, CAST(r AS DECIMAL(12, 2)) AS \
                     amount, CAST(id AS VARCHAR) AS code, t AS ref FROM s";
        let extra = if mode == "update" {
            "  key: [id]\n"
        } else {
            "  batch_column: b\n"
        };
        let pipeline = write_pipeline(&ws, &typed_pipeline(&ws, query, mode, &table, extra));
        let run = sluice_run(&pipeline);
        assert!(run.status.success(), "{mode}: {}", stderr(&run));
        let rows: Vec<String> = client(server())
            .await
            .query(
                &format!(
                    "SELECT id, name::text, mood::text, amount::text, code::text, ref::text \
                     FROM {table} WHERE name = 'ann' OR name = 'bob' ORDER BY id"
                ),
                &[],
            )
            .await
            .expect("rows")
            .iter()
            .map(|r| {
                (1..6).fold(r.get::<_, i64>(0).to_string(), |line, i| {
                    format!("{line}|{}", r.get::<_, String>(i))
                })
            })
            .collect();
        assert_eq!(
            rows,
            [
                "1|Ann|ok|1.50|1|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "2|BOB|happy|2.25|2|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"
            ],
            "{mode}"
        );
        if mode == "append" {
            // The uuid reads back in PostgreSQL's form, which the second input did not have,
            // and that is said.
            let (code, said) = verify_batch_0(&ws);
            assert!(!said.contains("UNREADABLE"), "{said}");
            assert_eq!(code, Some(1), "{said}");
            assert!(said.contains("so does a `uuid` column"), "{said}");
        }
        // A text that is no uuid is named, with its column.
        typed_input(&ws, "1.json", "{\"id\":3,\"r\":0,\"t\":\"not a uuid\"}\n");
        let run = sluice_run(&pipeline);
        let said = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{mode}: {said}");
        assert!(
            said.contains("column `ref` is uuid in the table, and \"not a uuid\" is not a uuid"),
            "{mode}: {said}"
        );
        execute(&format!(
            "DROP TABLE {table}; DROP TYPE {table}_mood; DROP DOMAIN {table}_amount; DROP \
             DOMAIN {table}_code"
        ))
        .await;
    }
    // A number into an enum is said by the enum's name, with the cast to text; a decimal of
    // more places into a domain of `numeric(12, 2)` is refused as it would round (a review).
    let ws = Workspace::new();
    let table = unique_table("w105_misfit");
    execute(&format!(
        "CREATE TYPE {table}_mood AS ENUM ('1', '2'); CREATE DOMAIN {table}_amount AS \
         numeric(12, 2); CREATE TABLE {table} (id int8, mood {table}_mood, amount \
         {table}_amount)"
    ))
    .await;
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1.125,\"t\":\"x\"}\n");
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(
            &ws,
            "SELECT id, id AS mood, CAST(r AS DECIMAL(20, 4)) AS amount FROM s",
            "append",
            &table,
            "",
        ),
    );
    let said = run_refused(
        &pipeline,
        &format!("column `mood` is {table}_mood in the table"),
    );
    assert!(
        said.contains("cast it in the query to text (`CAST(mood AS VARCHAR)`)")
            && said.contains("`amount`"),
        "{said}"
    );
    execute(&format!(
        "DROP TABLE {table}; DROP TYPE {table}_mood; DROP DOMAIN {table}_amount"
    ))
    .await;
    let ws = Workspace::new();
    let table = unique_table("w105_inet");
    execute(&format!("CREATE TABLE {table} (id int8, addr inet)")).await;
    typed_input(&ws, "0.json", "{\"id\":1,\"r\":1,\"t\":\"10.0.0.1\"}\n");
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(&ws, "SELECT id, t AS addr FROM s", "append", &table, ""),
    );
    let said = run_refused(
        &pipeline,
        "column `addr` is inet in the table, a type Sluice does not send",
    );
    assert!(
        said.contains(&format!(
            "ALTER TABLE \"{table}\" ALTER COLUMN \"addr\" TYPE text"
        )),
        "{said}"
    );
    execute(&format!("DROP TABLE {table}")).await;
}

/// Walk 105 (3, 4): a generated column the query wrote failed COPY at the first batch, planned,
/// and the next run failed the same way; it is refused before a batch, naming the column, and
/// the query without it runs. A duration written into an `interval` column (made by
/// `create_table`) never verified ("failed to parse \"1428:00:00.123456\" as Duration"); it
/// reads back as the batch wrote it.
#[tokio::test]
async fn a_generated_column_is_refused_before_a_batch_and_an_interval_verifies() {
    let ws = Workspace::new();
    let table = unique_table("w105_gen");
    execute(&format!(
        "CREATE TABLE {table} (id int8, r float8, twice float8 GENERATED ALWAYS AS (r * 2) STORED)"
    ))
    .await;
    typed_input(
        &ws,
        "0.json",
        "{\"id\":1,\"r\":1.5,\"t\":\"2026-01-03 12:00:00.123456\"}\n",
    );
    let query = "SELECT id, r, r * 2 AS twice FROM s";
    let pipeline = write_pipeline(&ws, &typed_pipeline(&ws, query, "append", &table, ""));
    let said = run_refused(&pipeline, "column \"twice\" of the table is generated");
    assert!(said.contains("leave it out of the query"), "{said}");
    assert!(
        !ws.path("ckpt/offsets/0").exists(),
        "a batch was planned: {said}"
    );
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(&ws, "SELECT id, r FROM s", "append", &table, ""),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let twice: f64 = client(server())
        .await
        .query_one(&format!("SELECT twice FROM {table}"), &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(twice, 3.0);
    execute(&format!("DROP TABLE {table}")).await;

    let ws = Workspace::new();
    let table = unique_table("w105_interval");
    typed_input(
        &ws,
        "0.json",
        "{\"id\":1,\"r\":1.5,\"t\":\"2026-01-03 12:00:00.123456\"}\n",
    );
    let query = "SELECT id, CAST(t AS TIMESTAMP) - TIMESTAMP '2026-01-01 00:00:00' AS since FROM s";
    let pipeline = write_pipeline(
        &ws,
        &typed_pipeline(
            &ws,
            query,
            "append",
            &table,
            "  create_table: true\n  batch_column: b\n",
        ),
    );
    let run = sluice_run(&pipeline);
    assert!(run.status.success(), "{}", stderr(&run));
    let since: String = client(server())
        .await
        .query_one(&format!("SELECT since::text FROM {table}"), &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(since, "60:00:00.123456");
    let (code, said) = verify_batch_0(&ws);
    assert_eq!(code, Some(0), "{said}");
    execute(&format!("DROP TABLE {table}")).await;
}
