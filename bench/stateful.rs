//! Sluice's stateful benchmarks. Run them with
//!
//! ```text
//! cargo bench --bench stateful                  # Sluice and DataFusion
//! cargo bench --bench stateful -- --spark       # and Spark (needs `pip install pyspark` and Java 17)
//! ```
//!
//! 1. A 1-minute tumbling window with a 10 s watermark in append mode, written to Parquet, over
//!    the click events of `bench/stream.rs` (2 million rows in 20 JSON-lines files, 2 files per
//!    batch): Sluice against the same SQL as one DataFusion batch query and against Spark
//!    Structured Streaming (`bench/spark_stream.py --query window`).
//! 2. The cost of state: with 10 thousand, 100 thousand and 1 million groups in state and about
//!    1,000 groups changed per batch, the median batch time and state bytes written per batch.
//!
//! Every figure is the median of several runs; ratios are against runs in the same command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice::checkpoint::{BatchId, read_commit};
use sluice::driver::RunOptions;
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;
use sluice::storage::Location;

#[path = "common.rs"]
mod common;
use common::{SCHEMA, datafusion_batch, generate, median, report_runs, report_spark, spark_run};

const WINDOW_QUERY: &str = "SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, page, count(*) AS views \
                            FROM clicks GROUP BY 1, 2";
const STATE_QUERY: &str = "SELECT user_id, count(*) AS n, sum(v) AS total, max(v) AS top \
                           FROM events GROUP BY user_id";

struct Args {
    rows: u64,
    files: u64,
    per_batch: u64,
    runs: usize,
    spark: bool,
    changed: u64,
    state_batches: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: 2_000_000,
        files: 20,
        per_batch: 2,
        runs: 3,
        spark: false,
        changed: 1000,
        state_batches: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--rows" => args.rows = value(),
            "--files" => args.files = value(),
            "--per-batch" => args.per_batch = value(),
            "--runs" => args.runs = value() as usize,
            "--changed" => args.changed = value(),
            "--state-batches" => args.state_batches = value(),
            "--spark" => args.spark = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One batch as its commit entry records it.
struct BatchFigures {
    ms: f64,
    state_bytes: u64,
    state_rows: u64,
}

async fn run_pipeline(yaml: &str, work: &Path) -> (f64, Vec<BatchFigures>) {
    let pipeline = Pipeline::parse(yaml, Path::new("bench.yaml")).expect("pipeline");
    let started = Instant::now();
    let summary = sluice::driver::run(
        &pipeline,
        RunOptions {
            progress: ProgressFormat::None,
            ..RunOptions::default()
        },
    )
    .await
    .expect("sluice run");
    let seconds = started.elapsed().as_secs_f64();
    let location =
        Location::open(&work.join("ckpt").display().to_string(), false, false, None).expect("ckpt");
    let mut batches = Vec::new();
    for n in 0..summary.batches {
        if let Some(c) = read_commit(&location, BatchId(n)).await.expect("commit") {
            let d = &c.durations;
            batches.push(BatchFigures {
                ms: d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms,
                state_bytes: c.state.iter().map(|s| s.bytes_written).sum(),
                state_rows: c.state.iter().map(|s| s.rows_total).sum(),
            });
        }
    }
    (seconds, batches)
}

async fn sluice_window(work: &Path, input: &Path, per_batch: u64) -> (f64, Vec<BatchFigures>) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: bench\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {SCHEMA}\n    max_files_per_batch: {per_batch}\n    watermark: {{ column: ts, delay: 10s }}\nquery: |\n  {WINDOW_QUERY}\noutput_mode: append\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        out = work.join("out").display(),
    );
    run_pipeline(&yaml, work).await
}

/// `groups` events with distinct keys in file 0, then `batches` files of `changed` events with
/// keys spread over all groups.
fn generate_state_input(dir: &Path, groups: u64, changed: u64, batches: u64) {
    let marker = dir.join(format!("_generated-{groups}-{changed}-{batches}"));
    if marker.exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("state input");
    let mut text = String::new();
    for g in 0..groups {
        text.push_str(&format!("{{\"user_id\":{g},\"v\":{}}}\n", g % 97));
    }
    std::fs::write(dir.join("events-00000.json"), text).expect("write");
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for b in 1..=batches {
        let mut text = String::new();
        for _ in 0..changed {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(&format!(
                "{{\"user_id\":{},\"v\":{}}}\n",
                state % groups,
                state >> 54
            ));
        }
        std::fs::write(dir.join(format!("events-{b:05}.json")), text).expect("write");
    }
    std::fs::write(marker, "").expect("marker");
}

async fn state_cost(work: &Path, input: &Path) -> Vec<BatchFigures> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: bench_state\ncheckpoint: {ckpt}\nsources:\n  events:\n    kind: files\n    path: {input}\n    format: json\n    schema: {{ user_id: bigint, v: bigint }}\n    max_files_per_batch: 1\nquery: |\n  {STATE_QUERY}\noutput_mode: update\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        out = work.join("out").display(),
    );
    let (_, batches) = run_pipeline(&yaml, work).await;
    batches
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let work = root.join("work");

    // 1. The windowed aggregation.
    let input = root.join(format!("clicks-{}-{}", args.rows, args.files));
    println!("generating {} rows in {} files ...", args.rows, args.files);
    generate(&input, args.rows, args.files);
    let (mut df, mut sl, mut batch_ms) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs {
        df.push(datafusion_batch(&input, &work.join("df-window"), WINDOW_QUERY).await);
        let (seconds, batches) =
            sluice_window(&work.join("sluice-window"), &input, args.per_batch).await;
        batch_ms.extend(batches.iter().map(|b| b.ms));
        println!(
            "run {run}: datafusion batch {:.2} s, sluice {seconds:.2} s ({} batches)",
            df[run],
            batches.len()
        );
        sl.push(seconds);
    }
    let (_, sl_rate) = report_runs(
        &format!(
            "1-minute tumbling window, 10 s watermark, append, Parquet: {} rows, {} files, {} per batch, median of {} runs",
            args.rows, args.files, args.per_batch, args.runs
        ),
        args.rows,
        df,
        sl,
        batch_ms,
        1.5,
    );
    if args.spark {
        let spark = spark_run(&input, &work.join("spark-window"), args.per_batch, "window");
        report_spark(spark, args.rows, sl_rate, 20.0);
    }

    // 2. The cost of state as it grows.
    println!(
        "\n== state cost: about {} groups changed per batch, {} batches after the state is built, median of {} runs",
        args.changed, args.state_batches, args.runs
    );
    let mut baseline: Option<(f64, f64)> = None;
    for groups in [10_000u64, 100_000, 1_000_000] {
        let input = root.join(format!("state-{groups}"));
        generate_state_input(&input, groups, args.changed, args.state_batches);
        let (mut ms, mut bytes, mut rows) = (Vec::new(), Vec::new(), 0);
        for _ in 0..args.runs {
            let batches = state_cost(&work.join("state"), &input).await;
            // Batch 0 builds the state; the rest change about `changed` groups each.
            for b in batches.iter().skip(1) {
                ms.push(b.ms);
                bytes.push(b.state_bytes as f64);
            }
            rows = batches.last().map_or(0, |b| b.state_rows);
        }
        let (m, b) = (median(ms), median(bytes));
        let (m0, b0) = *baseline.get_or_insert((m, b));
        println!(
            "{groups:>9} groups ({rows} in state): median batch {m:>7.2} ms ({:.2} x), state written per batch {:>8.0} bytes ({:.2} x)   (target: within 2 x of 10 thousand)",
            m / m0,
            b,
            b / b0
        );
    }
}
