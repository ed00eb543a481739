//! Sluice's Delta Lake sink against DataFusion writing the same rows as Parquet files. Run it
//! with
//!
//! ```text
//! cargo bench --bench delta                          # 2 million events, 3 runs
//! cargo bench --bench delta -- --rows 200000 --files 10 --runs 5
//! ```
//!
//! The input is `bench/stream.rs`'s click events (JSON lines under `bench/data/`); each run
//! writes the stateless query's rows afresh:
//!
//! - DataFusion: the query as one batch query over every file, written as Parquet into a
//!   folder (what the Delta table's data files are, without the log);
//! - Sluice: an `available-now` pipeline, 2 files per batch, each batch one Delta commit (data
//!   files and log entry synced to disk, the batch as the pipeline's transaction version),
//!   every checkpoint write synced.
//!
//! The table's row count is read back by PyPI `deltalake` (`tests/readers/delta.py`'s reader;
//! skipped with a note where it is not installed) and checked against the batch query's. Every
//! figure is the median of several runs; the ratio is against runs in the same command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice::driver::RunOptions;
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::{SCHEMA, batch_ms, datafusion_batch, generate, median};

const QUERY: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                     FROM clicks WHERE duration_ms > 1000";

struct Args {
    rows: u64,
    files: u64,
    per_batch: u64,
    runs: usize,
}

fn parse_args() -> Args {
    let [rows, files, per_batch, runs] = common::numbers([
        ("rows", 2_000_000),
        ("files", 20),
        ("per-batch", 2),
        ("runs", 3),
    ]);
    Args {
        rows,
        files,
        per_batch,
        runs: runs as usize,
    }
}

/// The rows of the Delta table in `table`, as PyPI `deltalake` counts them; `None` where it
/// is not installed.
fn delta_rows(table: &Path) -> Option<u64> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys, deltalake; print(deltalake.DeltaTable(sys.argv[1]).to_pyarrow_dataset().count_rows(), flush=True); os._exit(0)",
        ])
        .arg(table)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The rows of the Parquet files DataFusion wrote into `folder`.
async fn parquet_rows(folder: &Path) -> u64 {
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet(
        "out",
        &format!("{}/", folder.display()),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .expect("register");
    let batches = ctx
        .sql("SELECT count(*) FROM out")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("count");
    let column = batches[0].column(0);
    datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(
        column.as_ref(),
    )
    .value(0) as u64
}

/// One Sluice run into a new table; its seconds and median batch milliseconds.
async fn sluice_run(work: &Path, input: &Path, args: &Args) -> (f64, f64) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: bench_delta\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {SCHEMA}\n    max_files_per_batch: {per_batch}\nquery: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: delta\n  path: {table}\n",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        per_batch = args.per_batch,
        table = work.join("table").display(),
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("bench-delta.yaml")).expect("pipeline");
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
    (seconds, median(batch_ms))
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let input = root.join(format!("clicks-{}-{}", args.rows, args.files));
    generate(&input, args.rows, args.files);
    let work = root.join("work-delta");
    let parquet = root.join("out-datafusion-delta");

    let (mut df, mut sl, mut batches) = (Vec::new(), Vec::new(), Vec::new());
    let mut out_rows = 0;
    for run in 0..args.runs {
        let df_s = datafusion_batch(&input, &parquet, QUERY).await;
        out_rows = parquet_rows(&parquet).await;
        let (seconds, batch) = sluice_run(&work, &input, &args).await;
        match delta_rows(&work.join("table")) {
            Some(rows) => assert_eq!(rows, out_rows, "the Delta table's rows"),
            None => println!("(PyPI deltalake not installed: the table's rows not counted)"),
        }
        println!("run {run}: datafusion {df_s:.2} s, sluice {seconds:.2} s");
        df.push(df_s);
        sl.push(seconds);
        batches.push(batch);
    }
    let paired = median(sl.iter().zip(&df).map(|(s, d)| s / d).collect());
    let (df_s, sl_s) = (median(df), median(sl));
    let n = out_rows as f64;
    println!(
        "\n== {} events in {} files -> {out_rows} rows, {} files per batch, median of {} runs",
        args.rows, args.files, args.per_batch, args.runs
    );
    println!(
        "datafusion batch query -> Parquet      {df_s:>7.2} s   {:>10.0} rows/s",
        n / df_s
    );
    println!(
        "sluice available-now -> Delta          {sl_s:>7.2} s   {:>10.0} rows/s   median batch {:.0} ms",
        n / sl_s,
        median(batches)
    );
    println!(
        "sluice / datafusion                    {:>7.2} x   (ratio of medians; median of paired runs {paired:.2} x)",
        sl_s / df_s
    );
}
