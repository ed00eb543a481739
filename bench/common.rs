//! What the benchmarks share: the generated click events, medians, and the Spark baseline.

use std::path::Path;
use std::time::Instant;

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{JsonReadOptions, SessionContext};

/// The generated events' schema, as a pipeline file writes it.
pub const SCHEMA: &str = "{ ts: timestamp, user_id: bigint, page: string, referrer: string, country: string, duration_ms: bigint }";

/// Deterministic click events, `rows` in all, spread over `files` JSON-lines files.
pub fn generate(dir: &Path, rows: u64, files: u64) {
    let marker = dir.join(format!("_generated-{rows}-{files}"));
    if marker.exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("data folder");
    let pages = [
        "home", "search", "product", "cart", "checkout", "help", "account", "blog",
    ];
    let countries = ["de", "fr", "us", "jp", "br", "in", "gb", "ng"];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let per_file = rows / files;
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("time");
    let mut n: u64 = 0;
    for f in 0..files {
        let mut text = String::with_capacity((per_file * 100) as usize);
        for _ in 0..per_file {
            let ts = start + chrono::Duration::milliseconds((n * 20) as i64);
            let r = next();
            text.push_str(&format!(
                "{{\"ts\":\"{}\",\"user_id\":{},\"page\":\"{}\",\"referrer\":\"https://example.com/{}\",\"country\":\"{}\",\"duration_ms\":{}}}\n",
                ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                r % 100_000,
                pages[(r >> 20) as usize % pages.len()],
                (r >> 24) % 1000,
                countries[(r >> 32) as usize % countries.len()],
                (r >> 40) % 5000,
            ));
            n += 1;
        }
        std::fs::write(dir.join(format!("clicks-{f:05}.json")), text).expect("write");
    }
    std::fs::write(marker, "").expect("marker");
}

pub fn parse_schema() -> Vec<(String, String)> {
    SCHEMA
        .trim_matches(|c| c == '{' || c == '}' || c == ' ')
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once(':').expect("k: v");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `bench/spark_stream.py` with `query` (`stateless` or `window`) and returns its summary.
pub fn spark_run(
    input: &Path,
    work: &Path,
    per_batch: u64,
    query: &str,
) -> Option<serde_json::Value> {
    let _ = std::fs::remove_dir_all(work);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/spark_stream.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--input", &input.display().to_string()])
        .args(["--output", &work.join("out").display().to_string()])
        .args(["--checkpoint", &work.join("ckpt").display().to_string()])
        .args(["--per-batch", &per_batch.to_string()])
        .args(["--query", query])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("spark failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

/// Runs `query` as one DataFusion batch query over every file in `input` (the generated
/// click events), written as Parquet into `out`, and returns the seconds it took.
pub async fn datafusion_batch(input: &Path, out: &Path, query: &str) -> f64 {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let mut config = datafusion::prelude::SessionConfig::new();
    // The same Parquet compression as Sluice's sink.
    config.options_mut().execution.parquet.compression = Some("snappy".into());
    let ctx = SessionContext::new_with_config(config);
    let schema = sluice::format::schema_from_sql_types(&parse_schema())
        .await
        .expect("schema");
    ctx.register_json(
        "clicks",
        &input.display().to_string(),
        JsonReadOptions::default().schema(&schema),
    )
    .await
    .expect("register");
    ctx.sql(query)
        .await
        .expect("sql")
        .write_parquet(
            &format!("{}/", out.display()),
            DataFrameWriteOptions::new(),
            None,
        )
        .await
        .expect("write");
    started.elapsed().as_secs_f64()
}

/// Prints the medians of Sluice's and DataFusion's runs under `title` and their ratio (with
/// the median of the paired runs' ratios, less sensitive to the machine's load drifting);
/// returns Sluice's median seconds and rows per second.
pub fn report_runs(
    title: &str,
    rows: u64,
    df: Vec<f64>,
    sl: Vec<f64>,
    batch_ms: Vec<f64>,
    target: f64,
) -> (f64, f64) {
    let paired = median(sl.iter().zip(&df).map(|(s, d)| s / d).collect());
    let (df_s, sl_s) = (median(df), median(sl));
    let sl_rate = rows as f64 / sl_s;
    println!("\n== {title}");
    println!(
        "datafusion batch query   {df_s:>8.2} s   {:>12.0} rows/s",
        rows as f64 / df_s
    );
    println!(
        "sluice available-now     {sl_s:>8.2} s   {sl_rate:>12.0} rows/s   median batch {:.0} ms",
        median(batch_ms)
    );
    println!(
        "sluice / datafusion      {:>8.2} x   (ratio of medians; median of paired runs {paired:.2} x; target <= {target})",
        sl_s / df_s
    );
    (sl_s, sl_rate)
}

/// Prints Spark's summary (from `spark_run`) against Sluice's rows per second, or why Spark
/// did not run; returns Spark's start-up and streaming seconds when it ran.
pub fn report_spark(
    spark: Option<serde_json::Value>,
    rows: u64,
    sl_rate: f64,
    target: f64,
) -> Option<(f64, f64)> {
    let Some(v) = spark else {
        println!("spark: not run (install pyspark and Java 17)");
        return None;
    };
    let start = v["start_s"].as_f64().unwrap_or(f64::NAN);
    let stream = v["stream_s"].as_f64().unwrap_or(f64::NAN);
    let spark_rate = rows as f64 / stream;
    println!(
        "spark start {start:.1} s, stream {stream:.1} s, {spark_rate:.0} rows/s, median batch {} ms",
        v["median_batch_ms"]
    );
    println!(
        "sluice rows/s / spark rows/s   {:>8.1} x   (target >= {target})",
        sl_rate / spark_rate
    );
    Some((start, stream))
}

/// The durations (plan, offsets, execute, commit; milliseconds) of the first `batches` batches
/// of the run whose checkpoint is at `ckpt`, from its commit log.
#[allow(
    dead_code,
    reason = "bench/stateful.rs reads more of each commit itself"
)]
pub async fn batch_ms(ckpt: &Path, batches: u64) -> Vec<f64> {
    let location = sluice::storage::Location::open(&ckpt.display().to_string(), false, false, None)
        .expect("ckpt");
    let mut out = Vec::new();
    for n in 0..batches {
        if let Some(c) = sluice::checkpoint::read_commit(&location, sluice::checkpoint::BatchId(n))
            .await
            .expect("commit")
        {
            let d = c.durations;
            out.push(d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms);
        }
    }
    out
}

/// The command line's numbers: for each `(flag, default)` of `defaults`, the value given as
/// `--flag N` (the default where absent), in the same order; cargo's own `--bench` is
/// skipped. Panics naming an unknown flag or a value that is not a whole number.
#[allow(dead_code, reason = "not every benchmark takes numbers this way")]
pub fn numbers<const N: usize>(defaults: [(&str, u64); N]) -> [u64; N] {
    let mut values = defaults.map(|(_, v)| v);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--bench" {
            continue;
        }
        let i = defaults
            .iter()
            .position(|(flag, _)| arg.strip_prefix("--") == Some(flag))
            .unwrap_or_else(|| panic!("unknown argument {arg}"));
        values[i] = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{arg} takes a whole number"));
    }
    values
}

/// A test server's address: environment variable `var` where set, else what the start
/// script `tests/servers/<name>/start` prints (it starts the server, or finds it running).
#[allow(dead_code, reason = "only the benchmarks against a server use it")]
pub fn test_server(name: &str, var: &str) -> String {
    if let Ok(address) = std::env::var(var) {
        return address;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/servers/{name}/start"));
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "the {name} server did not start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `--trigger once` pipeline `name` over the click events in `input` into a fresh folder
/// `work` (its checkpoint and Parquet sink inside), running `query`, with `extra` top-level
/// keys (an output mode, an engine); the pipeline file's path.
#[allow(dead_code, reason = "only the one-batch benchmarks use it")]
pub fn once_pipeline(
    work: &Path,
    input: &Path,
    name: &str,
    query: &str,
    extra: &str,
) -> std::path::PathBuf {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: {name}\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {SCHEMA}\nquery: |\n  {query}\ntrigger: once\nsink:\n  kind: files\n  path: {out}\n  format: parquet\n{extra}",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        out = work.join("out").display(),
    );
    let file = work.join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("pipeline file");
    file
}

/// The entry of `commits/0` of the checkpoint in `work` (an [`once_pipeline`] run's batch).
#[allow(dead_code, reason = "only the one-batch benchmarks use it")]
pub fn first_commit(work: &Path) -> serde_json::Value {
    let commit = std::fs::read_to_string(work.join("ckpt/commits/0")).expect("commits/0");
    serde_json::from_str(commit.lines().nth(1).expect("the entry on line 2")).expect("commit JSON")
}
