//! Scale-out (`engine: distributed`): batches spread over two `sluice worker` processes on
//! loopback give the rows of the same SQL as one batch query, and the rows a local run gives;
//! the workers read the files (each its share); a batch whose worker is gone is computed
//! again on the driver, losing and doubling nothing.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::common::*;
use sluice::driver::RunOptions;

/// A `sluice worker` process on a free loopback port, killed when dropped.
pub struct WorkerProcess {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl WorkerProcess {
    fn start(ws: &Workspace, name: &str) -> Self {
        Self::start_from(ws, name, sluice_bin())
    }

    /// A worker started by `sluice` (a `sluice` command with its environment), logging to
    /// `<name>.log` in `ws`.
    pub fn start_from(ws: &Workspace, name: &str, mut sluice: std::process::Command) -> Self {
        let log = ws.path(&format!("{name}.log"));
        let mut child = sluice
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
    pub fn said(&self) -> String {
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
pub fn two_workers(ws: &Workspace) -> [WorkerProcess; 2] {
    [
        WorkerProcess::start(ws, "worker-a"),
        WorkerProcess::start(ws, "worker-b"),
    ]
}

/// The `engine:` of a pipeline that distributes every batch over `workers`.
pub fn distributed(workers: &[&WorkerProcess], extra: &str) -> String {
    let urls: Vec<&str> = workers.iter().map(|w| w.url.as_str()).collect();
    format!(
        "{extra}engine:\n  kind: distributed\n  workers: [{}]\n  distribute_above: 0\n  worker_timeout: 30s\n",
        urls.join(", ")
    )
}

/// `sluice run PIPELINE --progress PROGRESS` through `sluice` (a `sluice` command with its
/// environment), logging at debug level, which must succeed: its output and what it said on
/// stderr.
pub fn run_logged(
    mut sluice: std::process::Command,
    pipeline: &std::path::Path,
    progress: &str,
) -> (std::process::Output, String) {
    let out = sluice
        .args([
            "run",
            pipeline.to_str().expect("utf-8 path"),
            "--progress",
            progress,
        ])
        .env("SLUICE_LOG", "sluice=debug")
        .output()
        .expect("run");
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    (out, said)
}

/// Whether a worker's log says it read a share of a batch's files.
pub fn read_files(worker: &WorkerProcess) -> bool {
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
    let (out, said) = run_logged(sluice_bin(), &path, "json");
    // 9 files at 4 per batch: the batches of 4 files ran on the workers (the last, of one
    // file, is one task, which the planner keeps on the driver), and what they read was
    // counted from what they said. Their progress says where they ran.
    assert_eq!(said.matches("run on the workers").count(), 2, "{said}");
    let progress = String::from_utf8_lossy(&out.stdout);
    let on_workers: Vec<bool> = progress
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("progress JSON");
            event["ranOnWorkers"].as_bool().expect("ranOnWorkers")
        })
        .collect();
    assert_eq!(on_workers, [true, true, false], "{progress}");
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

/// A run of `query` (in `mode`) over `files` files of 300 rows, two a batch, on the workers or
/// here: the sink's rows, the rows in of every commit, and what the driver said.
async fn sink_after(
    workers: Option<&[&WorkerProcess]>,
    query: &str,
    mode: &str,
    files: usize,
) -> (Vec<String>, u64, String) {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", files, 300, 0);
    let mode = format!("output_mode: {mode}\n");
    let extra = match workers {
        Some(workers) => distributed(workers, &mode),
        None => mode,
    };
    let yaml = pipeline_yaml(&ws, "json", query, 2, &extra);
    let path = write_pipeline(&ws, &yaml);
    let (_, said) = run_logged(sluice_bin(), &path, "none");
    // A batch computed on the workers recomputes here (`replay` runs locally) to the rows
    // and the content hash its commit holds.
    if workers.is_some() {
        for batch in 0..3 {
            assert_verified(&ws, "ckpt", batch);
        }
    }
    (
        sink_rows(&ws.path("out")).await,
        committed_rows_in(&ws.path("ckpt")),
        said,
    )
}

/// A stateful query under `engine: distributed`: each batch's reads and the aggregation's
/// partial phase run on the workers, the merge with the state here; the sink gets what a
/// local run writes.
async fn stateful_distributed_equals_local(query: &str, mode: &str) {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    let (local, local_in, _) = sink_after(None, query, mode, 7).await;
    let (spread, spread_in, said) =
        sink_after(Some(&[&workers[0], &workers[1]]), query, mode, 7).await;
    assert!(!local.is_empty());
    assert_eq!(local_in, 7 * 300);
    assert_eq!(spread_in, local_in);
    assert_eq!(spread, local, "what a local run writes");
    // 7 files at 2 a batch: the 3 batches of two files ran on the workers (the last, of one
    // file, is one task, which stays here), counted from what the workers said.
    assert_eq!(said.matches("run on the workers").count(), 3, "{said}");
    assert!(!said.contains("failed on the workers"), "{said}");
    assert!(!said.contains("reading a part the query did not"), "{said}");
    for worker in &workers {
        assert!(read_files(worker), "{}", worker.said());
    }
}

#[tokio::test]
async fn a_stateful_aggregation_on_the_workers_writes_what_a_local_run_writes() {
    stateful_distributed_equals_local(
        "SELECT user_id, count(*) AS n, sum(id) AS ids, max(amount) AS top, max(page) AS last_page \
         FROM clicks WHERE amount > 5 GROUP BY user_id",
        "update",
    )
    .await;
}

/// Windows of event time (tumbling, then hopping), each batch's partial windows computed
/// on the workers.
#[tokio::test]
async fn a_windowed_aggregation_on_the_workers_writes_what_a_local_run_writes() {
    stateful_distributed_equals_local(
        "SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, page, count(*) AS n, \
         max(amount) AS top, count(DISTINCT user_id) AS users FROM clicks GROUP BY 1, 2",
        "complete",
    )
    .await;
    stateful_distributed_equals_local(
        "SELECT window_start, count(DISTINCT user_id) AS users, sum(id) AS ids FROM \
         (SELECT unnest(hop(ts, INTERVAL '20 seconds', INTERVAL '1 minute')) AS window_start, \
         user_id, id FROM clicks) GROUP BY window_start",
        "update",
    )
    .await;
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

/// Walk 20 (15): with batches below `engine.distribute_above`, a worker that does not answer
/// was never probed, so a run said nothing of it. The workers are probed when a run starts:
/// one gone is named, and that fewer than two answer (the batches run on the driver).
#[test]
fn a_worker_that_does_not_answer_is_named_when_the_run_starts() {
    let ws = Workspace::new();
    let worker = WorkerProcess::start(&ws, "worker-alone");
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let gone = "http://127.0.0.1:1";
    let engine = distributed(&[&worker], "")
        .replace("distribute_above: 0", "distribute_above: 1G")
        .replace("workers: [", &format!("workers: [{gone}, "));
    let path = write_pipeline(&ws, &pipeline_yaml(&ws, "json", QUERY, 1, &engine));
    let out = run_quietly(&path, &[]);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert_eq!(
        said.matches(&format!("worker `{gone}/` is left out"))
            .count(),
        1,
        "{said}"
    );
    assert!(said.contains("1 of the 2 worker(s) answer"), "{said}");
}

/// Aggregates whose value depends on the order rows meet them (sums of doubles, a standard
/// deviation, an approximate percentile): a batch computed on the workers is the batch
/// `replay --verify` computes on the driver, bit for bit (`sink_after` verifies each), and two
/// runs write the same rows. Each worker reads whole partitions of the batch, and the partial
/// groups merge in the order of their values, not of their arrival.
#[tokio::test]
async fn order_sensitive_aggregates_on_the_workers_replay_to_the_same_bits() {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    let query = "SELECT page, sum(amount) AS total, avg(amount) AS mean, stddev(amount) AS sd, \
                 approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY amount) AS p90 \
                 FROM clicks GROUP BY page";
    let (first, _, said) =
        sink_after(Some(&[&workers[0], &workers[1]]), query, "complete", 7).await;
    assert_eq!(said.matches("run on the workers").count(), 3, "{said}");
    let (second, _, _) = sink_after(Some(&[&workers[0], &workers[1]]), query, "complete", 7).await;
    assert!(!first.is_empty());
    assert_eq!(first, second, "two runs, the same bits");
}

/// Of four workers, one is gone (nothing serves on its port) and one stopped (SIGSTOP: its
/// port takes connections, nothing answers). The driver probes them before the first batch
/// and leaves both out, naming each: every batch of `query` (in `mode`) runs on the two that
/// answer, none waits `worker_timeout` on a silent one or fails there, and the sink holds
/// what the batch SQL gives.
async fn workers_that_do_not_answer_are_left_out(query: &str, mode: &str) {
    let ws = Workspace::new();
    let [a, b] = two_workers(&ws);
    let stopped = WorkerProcess::start(&ws, "worker-stopped");
    let pid = stopped.child.id().to_string();
    let signal = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("kill");
    assert!(signal.success(), "SIGSTOP the worker");
    let gone = "http://127.0.0.1:1";
    let engine = distributed(&[&a, &b, &stopped], &format!("output_mode: {mode}\n"))
        .replace("workers: [", &format!("workers: [{gone}, "));
    write_clicks(&ws.path("in"), "json", 6, 250, 0);
    let yaml = pipeline_yaml(&ws, "json", query, 3, &engine);
    let path = write_pipeline(&ws, &yaml);
    let (_, said) = run_logged(sluice_bin(), &path, "none");
    for url in [gone, stopped.url.as_str()] {
        assert_eq!(
            said.matches(&format!("worker `{url}/` is left out"))
                .count(),
            1,
            "the driver names each worker it leaves out, once: {said}"
        );
    }
    assert!(said.contains("no answer within 5s"), "{said}");
    assert!(!said.contains("failed on the workers"), "{said}");
    assert_eq!(said.matches("run on the workers").count(), 2, "{said}");
    let expected = oracle(&ws.path("in"), "json", query).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    assert!(read_files(&a) && read_files(&b), "{}", a.said());
}

#[tokio::test]
async fn workers_that_do_not_answer_are_left_out_stateless() {
    workers_that_do_not_answer_are_left_out(QUERY, "append").await;
}

#[tokio::test]
async fn workers_that_do_not_answer_are_left_out_stateful() {
    workers_that_do_not_answer_are_left_out(STATEFUL, "complete").await;
}

/// An aggregation with state whose merge stays on the driver.
const STATEFUL: &str =
    "SELECT page, count(*) AS n, max(amount) AS top, sum(id) AS ids FROM clicks GROUP BY page";

/// One batch of `query` (in `mode`) whose worker is killed (SIGKILL) in the middle: it fails
/// on the workers, the driver leaves the dead worker out and computes the batch again here
/// from the same offsets (for an aggregation, its state still the previous batch's), losing
/// and doubling nothing.
async fn a_worker_killed_in_the_middle_of_a_batch(query: &str, mode: &str) {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    // One batch long enough to be caught in the middle: each worker reads 8 files of 20 000 rows.
    write_clicks(&ws.path("in"), "json", 16, 20_000, 0);
    let engine = distributed(
        &[&workers[0], &workers[1]],
        &format!("output_mode: {mode}\n"),
    );
    let yaml = pipeline_yaml(&ws, "json", query, 16, &engine);
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
    assert!(
        stderr(&out).contains(&format!("worker `{}/` is left out", first.url)),
        "the dead worker is left out of the next batches: {}",
        stderr(&out)
    );
    let expected = oracle(&ws.path("in"), "json", query).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_batch_loses_and_doubles_nothing() {
    a_worker_killed_in_the_middle_of_a_batch(QUERY, "append").await;
}

#[tokio::test]
async fn a_worker_killed_in_the_middle_of_a_stateful_batch_loses_and_doubles_nothing() {
    a_worker_killed_in_the_middle_of_a_batch(STATEFUL, "complete").await;
}

/// Walk 65 (3): a query whose every batch runs on the driver (a deduplication feeding an
/// aggregation) under `engine: distributed` said so only at `info`, batch by batch. Said
/// once a run at the default level; the output is a local run's.
#[tokio::test]
async fn a_query_that_runs_on_the_driver_under_distributed_says_so_once() {
    let ws = Workspace::new();
    let workers = two_workers(&ws);
    let query = "SELECT page, count(*) AS n FROM (SELECT DISTINCT ON (id) id, page FROM clicks \
                 ORDER BY id) GROUP BY page";
    let (local, _, _) = sink_after(None, query, "complete", 5).await;
    let (spread, _, said) =
        sink_after(Some(&[&workers[0], &workers[1]]), query, "complete", 5).await;
    assert_eq!(spread, local);
    assert_eq!(
        said.matches("`engine: distributed` has no effect on this query")
            .count(),
        1,
        "{said}"
    );
    for worker in &workers {
        assert!(!read_files(worker), "{}", worker.said());
    }
}
