//! Peak memory of one `--trigger once` batch against the size of its input, and its time
//! against one DataFusion batch query over the same files. Run it with
//!
//! ```text
//! cargo bench --bench memory                                # 200 MB, 1 GB and 4 GB
//! cargo bench --bench memory -- --mb 200,1000 --runs 3 --file-mb 32
//! ```
//!
//! The input is `bench/stream.rs`'s click events as JSON lines (files of `--file-mb`
//! megabytes, generated once under `bench/data/`). For each size, every run is a fresh
//! process, so that its peak resident memory (the kernel's `ru_maxrss` of the child, read by
//! Python's `resource` module) is its own:
//!
//! - DataFusion: the stateless query as one batch query over every file, written as Parquet
//!   (this benchmark's own binary, run again with `--datafusion`);
//! - Sluice, stateless: `sluice run --trigger once`, the same query into a Parquet files sink;
//! - Sluice, aggregation: a complete-mode count per page and country over the same batch.
//!
//! Printed: per size, the median seconds and peak memory of each, and the ratios the
//! bounded-memory issue asks for: Sluice's peak at the largest size over the smallest (flat
//! within 1.5x), and Sluice's time over DataFusion's at the largest (within 1.3x).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::{datafusion_batch, first_commit, generate, median, once_pipeline};

const QUERY: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                     FROM clicks WHERE duration_ms > 1000";
const AGGREGATE: &str = "SELECT page, country, count(*) AS clicks, sum(duration_ms) AS total_ms \
                         FROM clicks GROUP BY page, country";
/// The generator's JSON lines average this many bytes (measured on its output).
const BYTES_PER_ROW: u64 = 138;

struct Args {
    sizes_mb: Vec<u64>,
    file_mb: u64,
    runs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes_mb: vec![200, 1000, 4000],
        file_mb: 32,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--mb" => {
                args.sizes_mb = it
                    .next()
                    .expect("--mb takes sizes, as 200,1000")
                    .split(',')
                    .map(|s| s.trim().parse().expect("--mb takes whole numbers"))
                    .collect();
            }
            "--file-mb" => {
                args.file_mb = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--file-mb takes a whole number")
            }
            "--runs" => {
                args.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--runs takes a whole number")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Runs `program args` and returns its seconds and peak resident memory in MiB.
fn measured(program: &Path, args: &[&str]) -> (f64, f64) {
    let script = "import resource, subprocess, sys, time\n\
                  t = time.monotonic()\n\
                  r = subprocess.run(sys.argv[1:])\n\
                  s = time.monotonic() - t\n\
                  if r.returncode != 0: sys.exit(r.returncode)\n\
                  print(s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(program)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let seconds: f64 = words.next().and_then(|w| w.parse().ok()).expect("seconds");
    let kib: f64 = words.next().and_then(|w| w.parse().ok()).expect("max rss");
    (seconds, kib / 1024.0)
}

/// A `--trigger once` pipeline over `input` into a new folder under `work`.
fn pipeline(work: &Path, input: &Path, query: &str, mode: &str) -> PathBuf {
    once_pipeline(
        work,
        input,
        "bench_memory",
        query,
        &format!("output_mode: {mode}\n"),
    )
}

/// The rows committed by the one batch of the run in `work`.
fn rows_out(work: &Path) -> u64 {
    first_commit(work)["rows_out"].as_u64().expect("rows_out")
}

struct Figures {
    mb: u64,
    df: (f64, f64),
    stateless: (f64, f64),
    aggregate: (f64, f64),
}

fn medians(runs: &[(f64, f64)]) -> (f64, f64) {
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

fn main() {
    // `--datafusion INPUT OUT`: the baseline, in a process of its own.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--datafusion") {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(datafusion_batch(
            Path::new(&argv[2]),
            Path::new(&argv[3]),
            QUERY,
        ));
        return;
    }
    let args = parse_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let me = std::env::current_exe().expect("this benchmark's binary");
    let mut figures = Vec::new();
    for &mb in &args.sizes_mb {
        let rows = mb * 1_000_000 / BYTES_PER_ROW;
        let files = (mb / args.file_mb).max(1);
        let input = root.join(format!("memory-{mb}mb-{files}"));
        generate(&input, rows, files);
        let work = root.join("work-memory");
        let df_out = root.join("out-datafusion-memory");
        let (mut df, mut stateless, mut aggregate) = (Vec::new(), Vec::new(), Vec::new());
        let mut expected = None;
        for run in 0..args.runs {
            let df_run = measured(
                &me,
                &[
                    "--datafusion",
                    &input.display().to_string(),
                    &df_out.display().to_string(),
                ],
            );
            let file = pipeline(&work, &input, QUERY, "append");
            let run_stateless = measured(
                &sluice,
                &["run", &file.display().to_string(), "--progress", "none"],
            );
            let out = rows_out(&work);
            assert!(
                expected.is_none_or(|e| e == out),
                "every run writes the same rows"
            );
            expected = Some(out);
            let file = pipeline(&work, &input, AGGREGATE, "complete");
            let run_aggregate = measured(
                &sluice,
                &["run", &file.display().to_string(), "--progress", "none"],
            );
            println!(
                "{mb} MB run {run}: datafusion {:.1} s {:.0} MiB; sluice stateless {:.1} s {:.0} MiB; aggregation {:.1} s {:.0} MiB",
                df_run.0,
                df_run.1,
                run_stateless.0,
                run_stateless.1,
                run_aggregate.0,
                run_aggregate.1
            );
            df.push(df_run);
            stateless.push(run_stateless);
            aggregate.push(run_aggregate);
        }
        figures.push(Figures {
            mb,
            df: medians(&df),
            stateless: medians(&stateless),
            aggregate: medians(&aggregate),
        });
    }
    println!(
        "\n== one `--trigger once` batch of JSON lines ({} MB files), median of {} runs; seconds and peak resident memory",
        args.file_mb, args.runs
    );
    println!(
        "| input | DataFusion batch query | Sluice stateless | Sluice aggregation | Sluice / DataFusion time |"
    );
    println!("|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} MB | {:.1} s, {:.0} MiB | {:.1} s, {:.0} MiB | {:.1} s, {:.0} MiB | {:.2}x |",
            f.mb,
            f.df.0,
            f.df.1,
            f.stateless.0,
            f.stateless.1,
            f.aggregate.0,
            f.aggregate.1,
            f.stateless.0 / f.df.0
        );
    }
    if let (Some(small), Some(large)) = (figures.first(), figures.last()) {
        println!(
            "\npeak memory, largest over smallest input ({} MB / {} MB): stateless {:.2}x, aggregation {:.2}x (target <= 1.5x; stateless under 1024 MiB: {})",
            large.mb,
            small.mb,
            large.stateless.1 / small.stateless.1,
            large.aggregate.1 / small.aggregate.1,
            large.stateless.1 < 1024.0
        );
        println!(
            "time at {} MB, Sluice stateless over DataFusion: {:.2}x (target <= 1.3x)",
            large.mb,
            large.stateless.0 / large.df.0
        );
    }
}
