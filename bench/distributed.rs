//! Local against distributed (`engine: distributed`, two `sluice worker` processes on
//! loopback) in one run: the fixed cost a batch pays for going to the workers, and rows per
//! second over one large batch. Run it with
//!
//! ```text
//! cargo bench --bench distributed                       # 2000 MB batch, 5 runs of each
//! cargo bench --bench distributed -- --mb 500 --runs 3
//! ```
//!
//! The input is `bench/stream.rs`'s click events as JSON lines (files of 32 MB, generated once
//! under `bench/data/`). Each run is a fresh `sluice run --trigger once` process over a fresh
//! checkpoint, the same query (the stateless filter and projection of `bench/stream.rs`) into a
//! Parquet files sink, with `engine.kind` local or distributed (`distribute_above: 0`):
//!
//! - fixed cost: one batch of two small files (1 000 rows), median seconds of each, and the
//!   difference (what the distributed planner, the plan's encoding and the streams' set-up
//!   cost per batch);
//! - throughput: one batch of every file of the large input, median seconds and rows/s, for
//!   the stateless query (every kept row streams back to the driver, whose sink writes it)
//!   and for an aggregation with state in complete mode (the workers send partial groups; the
//!   driver merges them with the state and writes a few rows).
//!
//! On one machine the workers share the driver's cores: the distributed figure is the cost of
//! the transport, not a speed-up (docs/scale.md's model, with `W·c` still the machine's cores).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::{first_commit, generate, median, once_pipeline};

const QUERY: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                     FROM clicks WHERE duration_ms > 1000";
/// An aggregation with state: partial groups on the workers, their merge with the state here.
const AGGREGATE: &str = "SELECT page, country, count(*) AS n, sum(duration_ms) AS total, \
                         max(user_id) AS top_user FROM clicks GROUP BY page, country";
/// The generator's JSON lines average this many bytes (measured on its output).
const BYTES_PER_ROW: u64 = 138;
const FILE_MB: u64 = 32;

/// A `sluice worker` on a free loopback port, killed when dropped.
struct WorkerProcess {
    child: Child,
    url: String,
}

impl WorkerProcess {
    fn start(sluice: &Path) -> Self {
        let mut child = Command::new(sluice)
            .args(["worker", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the worker's address");
        let url = line
            .trim()
            .strip_prefix("sluice worker serving on ")
            .expect("a worker prints its address")
            .to_string();
        Self { child, url }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `--trigger once` pipeline of `query` (with the top-level keys `extra`) over `input` into
/// a fresh folder `work`, on `engine`.
fn pipeline(work: &Path, input: &Path, query: &str, extra: &str, engine: &str) -> PathBuf {
    once_pipeline(
        work,
        input,
        "bench_distributed",
        query,
        &format!("{extra}{engine}"),
    )
}

/// Runs the pipeline `file` once; its seconds.
fn timed(sluice: &Path, file: &Path) -> f64 {
    let started = Instant::now();
    let out = Command::new(sluice)
        .args(["run", &file.display().to_string(), "--progress", "none"])
        .output()
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "{} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed().as_secs_f64()
}

/// The rows read by the one batch of the run in `work`.
fn rows_in(work: &Path) -> u64 {
    first_commit(work)["rows_in"].as_u64().expect("rows_in")
}

fn main() {
    let (mut mb, mut runs) = (2000u64, 5usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--mb" => mb = args.next().and_then(|v| v.parse().ok()).expect("--mb N"),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            other => panic!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    // Two files: a batch of one file is one task, which the planner keeps on the driver.
    let small = root.join("distributed-small");
    generate(&small, 1_000, 2);
    let files = (mb / FILE_MB).max(1);
    let large = root.join(format!("distributed-{mb}mb-{files}"));
    generate(&large, mb * 1_000_000 / BYTES_PER_ROW, files);

    let workers = [WorkerProcess::start(&sluice), WorkerProcess::start(&sluice)];
    let distributed = format!(
        "engine:\n  kind: distributed\n  workers: [{}, {}]\n  distribute_above: 0\n",
        workers[0].url, workers[1].url
    );
    let work = root.join("work-distributed");
    let mut figures = Vec::new();
    let complete = "output_mode: complete\n";
    for (name, input, query, extra) in [
        ("two small files", &small, QUERY, ""),
        ("large batch, filter", &large, QUERY, ""),
        ("large batch, aggregation", &large, AGGREGATE, complete),
    ] {
        let (mut local, mut spread) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for run in 0..runs {
            let l = timed(&sluice, &pipeline(&work, input, query, extra, ""));
            rows = rows_in(&work);
            let d = timed(&sluice, &pipeline(&work, input, query, extra, &distributed));
            assert_eq!(rows_in(&work), rows, "both engines read every row");
            println!("{name} run {run}: local {l:.2} s, distributed {d:.2} s");
            local.push(l);
            spread.push(d);
        }
        figures.push((name, rows, median(local), median(spread)));
    }
    println!(
        "\n== local against distributed (2 workers on loopback), `--trigger once`, median of {runs} runs"
    );
    println!("| batch | rows | local | distributed | distributed / local |");
    println!("|---|---|---|---|---|");
    for (name, rows, local, spread) in &figures {
        println!(
            "| {name} | {rows} | {local:.2} s ({:.0} rows/s) | {spread:.2} s ({:.0} rows/s) | {:.2}x |",
            *rows as f64 / local,
            *rows as f64 / spread,
            spread / local
        );
    }
    if let Some((_, _, local, spread)) = figures.first() {
        println!(
            "\nfixed cost of going to the workers, per batch: {:.0} ms",
            (spread - local) * 1000.0
        );
    }
}
