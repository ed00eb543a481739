//! Sluice's stateless streaming benchmark, against a plain DataFusion batch query and Spark
//! Structured Streaming on the same input. Run it with
//!
//! ```text
//! cargo bench --bench stream                 # Sluice and DataFusion
//! cargo bench --bench stream -- --spark      # and Spark (needs `pip install pyspark` and Java 17)
//! cargo bench --bench stream -- --tiny 10000  # only: 10,000 one-row batches, early vs late
//! ```
//!
//! It generates deterministic click events (JSON lines) under `bench/data/`, then times:
//! - DataFusion: the query as one batch query over all files, written as Parquet;
//! - Sluice: the same query as an `available-now` pipeline, N files per batch, into Parquet;
//! - Spark: `bench/spark_stream.py`, `local[2]`, `availableNow`, the same `maxFilesPerTrigger`;
//! - the fixed cost of a batch: 60 batches of one 100-row file, with syncing on and off.
//!
//! Every figure is the median of several runs; ratios are against runs in the same command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice::driver::RunOptions;
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;

#[path = "common.rs"]
mod common;
use common::{
    SCHEMA, batch_ms, datafusion_batch, generate, median, report_runs, report_spark, spark_run,
};

const QUERY: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                     FROM clicks WHERE duration_ms > 1000";

struct Args {
    rows: u64,
    files: u64,
    per_batch: u64,
    runs: usize,
    spark: bool,
    /// Only the long-run check: this many one-row batches.
    tiny: Option<u64>,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: 2_000_000,
        files: 20,
        per_batch: 2,
        runs: 3,
        spark: false,
        tiny: None,
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
            "--spark" => args.spark = true,
            "--tiny" => args.tiny = Some(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

struct SluiceRun {
    seconds: f64,
    batches: u64,
    batch_ms: Vec<f64>,
}

async fn sluice_run(
    work: &Path,
    input: &Path,
    per_batch: u64,
    sync: bool,
    query: &str,
) -> SluiceRun {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: bench\ncheckpoint: {ckpt}\nsync: {sync}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {SCHEMA}\n    max_files_per_batch: {per_batch}\nquery: |\n  {query}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        out = work.join("out").display(),
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("bench.yaml")).expect("pipeline");
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
    let batch_ms = batch_ms(&work.join("ckpt"), summary.batches).await;
    SluiceRun {
        seconds,
        batches: summary.batches,
        batch_ms,
    }
}

/// Counts the files under `dir`, recursively.
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    count_files(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// `batches` one-row batches of a stateful query, fed in three stages: the first tenth, the
/// middle, the last tenth. The mean batch time of the first and last stages shows whether a
/// batch gets slower as the checkpoint ages; the file counts show what the retention bounds.
async fn tiny_batches(root: &Path, batches: u64) {
    let work = root.join("work/tiny");
    let input = work.join("in");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&input).expect("input");
    let yaml = format!(
        "name: tiny\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {{ user_id: bigint, page: string }}\n    max_files_per_batch: 1\nquery: |\n  SELECT page, count(*) AS n, count(DISTINCT user_id) AS users FROM clicks GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        out = work.join("out").display(),
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("tiny.yaml")).expect("pipeline");
    let tenth = (batches / 10).max(1);
    let stages = [tenth, batches - 2 * tenth, tenth];
    let (mut written, mut means) = (0u64, Vec::new());
    for stage in stages {
        for n in written..written + stage {
            std::fs::write(
                input.join(format!("c-{n:07}.json")),
                format!("{{\"user_id\":{},\"page\":\"p{}\"}}\n", n % 1000, n % 7),
            )
            .expect("write");
        }
        written += stage;
        let started = Instant::now();
        let summary = sluice::driver::run(
            &pipeline,
            RunOptions {
                progress: ProgressFormat::None,
                ..RunOptions::default()
            },
        )
        .await
        .expect("tiny run");
        assert_eq!(summary.batches, stage);
        means.push(started.elapsed().as_secs_f64() * 1000.0 / stage as f64);
    }
    println!(
        "\n== {batches} one-row batches of a stateful query (update mode, every write synced, retain 100)"
    );
    println!(
        "mean batch, first {tenth}: {:.2} ms; last {tenth}: {:.2} ms ({:.2} x)",
        means[0],
        means[2],
        means[2] / means[0]
    );
    println!(
        "files: checkpoint {}, sink manifest {}, sink data {}",
        count_files(&work.join("ckpt")),
        count_files(&work.join("out/_sluice")),
        count_files(&work.join("out")) - count_files(&work.join("out/_sluice"))
    );
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if let Some(batches) = args.tiny {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
        tiny_batches(&root, batches).await;
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let input = root.join(format!("clicks-{}-{}", args.rows, args.files));
    let work = root.join("work");
    println!("generating {} rows in {} files ...", args.rows, args.files);
    generate(&input, args.rows, args.files);
    let bytes: u64 = std::fs::read_dir(&input)
        .expect("input")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("input: {:.0} MB", bytes as f64 / 1e6);

    let mut df = Vec::new();
    let mut sl = Vec::new();
    let mut sl_batches = Vec::new();
    for run in 0..args.runs {
        df.push(datafusion_batch(&input, &work.join("df"), QUERY).await);
        let s = sluice_run(&work.join("sluice"), &input, args.per_batch, true, QUERY).await;
        sl_batches.extend(s.batch_ms.iter().copied());
        println!(
            "run {run}: datafusion batch {:.2} s, sluice {:.2} s ({} batches)",
            df[run], s.seconds, s.batches
        );
        sl.push(s.seconds);
    }
    let (sl_s, sl_rate) = report_runs(
        &format!(
            "stateless: {} rows, {} files, {} per batch, median of {} runs",
            args.rows, args.files, args.per_batch, args.runs
        ),
        args.rows,
        df,
        sl,
        sl_batches,
        1.3,
    );
    if args.spark {
        let spark = spark_run(&input, &work.join("spark"), args.per_batch, "stateless");
        if let Some((start, stream)) = report_spark(spark, args.rows, sl_rate, 10.0) {
            println!(
                "spark whole run / sluice run   {:>8.1} x   (target >= 15)",
                (start + stream) / sl_s
            );
        }
    }

    // Fixed cost of a batch: 60 batches of one 100-row file.
    let small = root.join("small-6000-60");
    generate(&small, 6000, 60);
    for sync in [true, false] {
        let mut medians = Vec::new();
        for _ in 0..args.runs {
            let s = sluice_run(&work.join("small"), &small, 1, sync, QUERY).await;
            medians.push(median(s.batch_ms));
        }
        println!(
            "fixed cost per batch (60 x 100 rows), sync {}: median {:.2} ms   (target <= {} ms)",
            if sync { "on " } else { "off" },
            median(medians),
            if sync { 30 } else { 5 }
        );
    }
    if args.spark
        && let Some(v) = spark_run(&small, &work.join("spark-small"), 1, "stateless")
    {
        println!(
            "spark fixed cost per batch: median {} ms",
            v["median_batch_ms"]
        );
    }
}
