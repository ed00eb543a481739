//! Scale-out (`engine: distributed`): batches spread over two `sluice worker` processes on
//! loopback give the rows of the same SQL as one batch query, and the rows a local run gives;
//! the workers read the files (each its share); a batch whose worker is gone is computed
//! again on the driver, losing and doubling nothing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::common::*;
use sluice::driver::RunOptions;

/// A `sluice worker` process on a free loopback port, killed when dropped.
struct WorkerProcess {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl WorkerProcess {
    fn start(ws: &Workspace, name: &str) -> Self {
        let log = ws.path(&format!("{name}.log"));
        let mut child = sluice_bin()
            .args(["worker", "--listen", "127.0.0.1:0"])
            .env("SLUICE_LOG", "sluice=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("worker log"))
            .spawn()
            .expect("start a worker");
        let stdout = child.stdout.take().expect("worker stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the worker's address");
        let url = line
            .trim()
            .strip_prefix("sluice worker serving on ")
            .unwrap_or_else(|| panic!("a worker prints its address, not {line:?}"))
            .to_string();
        Self { child, url, log }
    }

    /// What the worker has logged so far.
    fn said(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two workers, logging to `worker-a.log` and `worker-b.log`.
fn two_workers(ws: &Workspace) -> [WorkerProcess; 2] {
    [
        WorkerProcess::start(ws, "worker-a"),
        WorkerProcess::start(ws, "worker-b"),
    ]
}

/// The `engine:` of a pipeline that distributes every batch over `workers`.
fn distributed(workers: &[&WorkerProcess], extra: &str) -> String {
    let urls: Vec<&str> = workers.iter().map(|w| w.url.as_str()).collect();
    format!(
        "{extra}engine:\n  kind: distributed\n  workers: [{}]\n  distribute_above: 0\n  worker_timeout: 5s\n",
        urls.join(", ")
    )
}

/// Whether a worker's log says it read a share of a batch's files.
fn read_files(worker: &WorkerProcess) -> bool {
    worker.said().contains("reading a share of a batch's files")
}

/// The rows in of every batch the checkpoint `ckpt` committed.
fn committed_rows_in(ckpt: &std::path::Path) -> u64 {
    std::fs::read_dir(ckpt.join("commits"))
        .expect("commits/")
        .map(|entry| {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("commit");
            let value: serde_json::Value =
                serde_json::from_str(text.lines().nth(1).expect("the entry on line 2"))
                    .expect("commit JSON");
            value["rows_in"].as_u64().expect("rows_in")
        })
        .sum()
}

const QUERY: &str = "SELECT id, user_id, upper(page) AS page, amount * 2 AS doubled, ts FROM clicks WHERE amount > 20";

async fn distributed_equals_batch(format: &str) {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    write_clicks(&ws.path("in"), format, 9, 250, 0);
    let engine = distributed(&[&workers[0], &workers[1]], "");
    let yaml = pipeline_yaml(&ws, format, QUERY, 4, &engine);
    let path = write_pipeline(&ws, &yaml);
    let out = sluice_bin()
        .args([
            "run",
            path.to_str().expect("utf-8 path"),
            "--progress",
            "none",
        ])
        .env("SLUICE_LOG", "sluice=debug")
        .output()
        .expect("run");
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    // 9 files at 4 per batch: the batches of 4 files ran on the workers (the last, of one
    // file, is one task, which the planner keeps on the driver), and what they read was
    // counted from what they said.
    assert_eq!(said.matches("run on the workers").count(), 2, "{said}");
    assert!(!said.contains("failed on the workers"), "{said}");
    assert!(!said.contains("reading a part the query did not"), "{said}");
    assert_eq!(committed_rows_in(&ws.path("ckpt")), 9 * 250);
    let expected = oracle(&ws.path("in"), format, QUERY).await;
    assert!(!expected.is_empty());
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    for worker in &workers {
        assert!(
            read_files(worker),
            "each worker reads its share of the files: {}",
            worker.said()
        );
    }
}

#[tokio::test]
async fn json_lines_on_two_workers_equal_batch() {
    distributed_equals_batch("json").await;
}

#[tokio::test]
async fn parquet_on_two_workers_equals_batch() {
    distributed_equals_batch("parquet").await;
}

/// The sink's rows after a run of `query` (in `mode`) over `files` files, on the workers or
/// here.
async fn sink_after(
    workers: Option<&[&WorkerProcess]>,
    query: &str,
    mode: &str,
    files: usize,
) -> (Vec<String>, u64) {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", files, 300, 0);
    let mode = format!("output_mode: {mode}\n");
    let extra = match workers {
        Some(workers) => distributed(workers, &mode),
        None => mode,
    };
    let yaml = pipeline_yaml(&ws, "json", query, 2, &extra);
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    (sink_rows(&ws.path("out")).await, summary.rows_in)
}

/// A stateful query's batches run on the driver (its operator takes the plan's phases apart):
/// under `engine: distributed` they write what a local run writes.
#[tokio::test]
async fn a_stateful_aggregation_under_engine_distributed_writes_what_a_local_run_writes() {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    let query = "SELECT user_id, count(*) AS n, sum(amount) AS total, max(page) AS last_page \
                 FROM clicks WHERE amount > 5 GROUP BY user_id";
    let (local, local_in) = sink_after(None, query, "update", 7).await;
    let (spread, spread_in) =
        sink_after(Some(&[&workers[0], &workers[1]]), query, "update", 7).await;
    assert!(!local.is_empty());
    assert_eq!(spread_in, local_in);
    assert_eq!(
        spread, local,
        "each batch's changed groups, as a local run writes them"
    );
}

#[tokio::test]
async fn a_batch_smaller_than_distribute_above_runs_on_the_driver() {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    write_clicks(&ws.path("in"), "json", 4, 250, 0);
    let engine = distributed(&[&workers[0], &workers[1]], "")
        .replace("distribute_above: 0", "distribute_above: 1M");
    let yaml = pipeline_yaml(&ws, "json", QUERY, 4, &engine);
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!(summary.rows_in, 4 * 250);
    assert_eq!(
        sink_rows(&ws.path("out")).await,
        oracle(&ws.path("in"), "json", QUERY).await
    );
    for worker in &workers {
        assert!(
            !read_files(worker),
            "a small batch stays here: {}",
            worker.said()
        );
    }
}

#[tokio::test]
async fn a_batch_whose_worker_is_gone_is_computed_on_the_driver() {
    let ws = Workspace::new();
    let alive = WorkerProcess::start(&ws, "worker-a");
    // Nothing serves on port 1.
    let engine = distributed(&[&alive], "").replace("workers: [", "workers: [http://127.0.0.1:1, ");
    write_clicks(&ws.path("in"), "json", 6, 250, 0);
    let yaml = pipeline_yaml(&ws, "json", QUERY, 3, &engine);
    let path = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", path.to_str().expect("utf-8 path")], &ws.path(""));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed on the workers"),
        "the driver says why it computes the batch itself: {}",
        stderr(&out)
    );
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing() {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    // One batch long enough to be caught in the middle: each worker reads 8 files of 20 000 rows.
    write_clicks(&ws.path("in"), "json", 16, 20_000, 0);
    let engine = distributed(&[&workers[0], &workers[1]], "");
    let yaml = pipeline_yaml(&ws, "json", QUERY, 16, &engine);
    let path = write_pipeline(&ws, &yaml);
    let run = sluice_bin()
        .args([
            "run",
            path.to_str().expect("utf-8 path"),
            "--progress",
            "none",
        ])
        .current_dir(ws.path(""))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // As soon as the first worker has its share, it dies (SIGKILL).
    let started = std::time::Instant::now();
    let [mut first, _second] = workers;
    while !read_files(&first) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the worker never got its share: {}",
            first.said()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    first.child.kill().expect("SIGKILL the worker");
    let out = run.wait_with_output().expect("the run ends");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed on the workers"),
        "the batch is computed again on the driver: {}",
        stderr(&out)
    );
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}
