//! Nexmark: each query of `queries/nexmark/` over the same generated events in Sluice, Spark
//! Structured Streaming and Flink, in one run. Run it with
//!
//! ```text
//! pip install 'pyspark==4.3.*'                                     # Spark 4.3, needs Java 17
//! python3 -m venv ~/.cache/flink-venv && ~/.cache/flink-venv/bin/pip install 'apache-flink==2.3.*'
//! cargo bench --bench nexmark -- --flink-python ~/.cache/flink-venv/bin/python
//! cargo bench --bench nexmark -- --events 1000000 --runs 3 --queries q0,q3 --engines sluice,spark
//! cargo bench --bench nexmark -- --events 1000000 --runs 1 --check-rows   # Flink counts its rows
//! cargo bench --bench nexmark -- --runs 3 --baseline-runs 1   # Spark and Flink run once
//! ```
//!
//! `sluice gen nexmark --events N --format json` writes the events once under `bench/data/`
//! (10 files a table, each holding a tenth of the events; 10 000 events a second of event
//! time), and every engine reads those files, with the same declared columns:
//!
//! - Sluice: the query's pipeline from `queries/nexmark/` with each `nexmark` source replaced by
//!   a files source over the table's folder (its watermark kept; a source's own
//!   `events_per_second`, q11's, gives way to the files'), `--per-batch` files a batch,
//!   `available-now`, into its Parquet files sink with its checkpoint (every write synced);
//!   timed as the whole `sluice run` process.
//! - Spark (`bench/nexmark_spark.py`): `local[2]`, `availableNow`, `maxFilesPerTrigger` the same
//!   files a batch, into Parquet files (its file sink; in complete mode each batch rewrites the
//!   table by `foreachBatch`, as Sluice's files sink does); timed from the query's start to its
//!   end (the session's start is left out).
//! - Flink (`bench/nexmark_flink.py`): a local cluster of parallelism 2 in streaming mode, the
//!   files as bounded streams, Flink's Nexmark settings, into its `blackhole` sink; timed from the
//!   job's submission to its end (the environment's start is left out). Watermarks trail by more
//!   than the input's span, or Flink's parallel file reads drop rows as late.
//!
//! So Flink computes each query and drops its rows, while Sluice writes them as Parquet with
//! its checkpoint: that ratio favours Flink (writing Parquet from Flink takes `flink-parquet`
//! and Hadoop's jars). Printed: each run's seconds, then a Markdown table of events per second
//! (events generated over the median seconds) and Sluice's ratio to each baseline, then the
//! rows each engine wrote, where it reports them (Flink with `--check-rows`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_yaml::{Mapping, Value};

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::median;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Engine {
    Sluice,
    Spark,
    Flink,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Sluice => "sluice",
            Engine::Spark => "spark",
            Engine::Flink => "flink",
        }
    }
}

struct Args {
    events: u64,
    runs: usize,
    /// Runs of Spark and Flink (`--runs` unless given): a baseline's run at 10 million events
    /// takes minutes a query.
    baseline_runs: Option<usize>,
    per_batch: u64,
    queries: Option<Vec<String>>,
    engines: Vec<Engine>,
    flink_python: String,
    /// Have Flink count its rows out (a second, untimed job in the first run).
    check_rows: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        runs: 3,
        baseline_runs: None,
        per_batch: 2,
        queries: None,
        engines: vec![Engine::Sluice, Engine::Spark, Engine::Flink],
        flink_python: std::env::var("FLINK_PYTHON").unwrap_or_else(|_| "python3".into()),
        check_rows: false,
    };
    let mut it = std::env::args().skip(1);
    let list = |v: Option<String>, what: &str| -> Vec<String> {
        v.unwrap_or_else(|| panic!("{what} takes a comma-separated list"))
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    };
    let number = |v: Option<String>, what: &str| -> u64 {
        v.and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("{what} takes a whole number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bench" => {}
            "--events" => args.events = number(it.next(), "--events"),
            "--runs" => args.runs = number(it.next(), "--runs") as usize,
            "--baseline-runs" => {
                args.baseline_runs = Some(number(it.next(), "--baseline-runs") as usize)
            }
            "--per-batch" => args.per_batch = number(it.next(), "--per-batch"),
            "--queries" => args.queries = Some(list(it.next(), "--queries")),
            "--engines" => {
                args.engines = list(it.next(), "--engines")
                    .iter()
                    .map(|e| match e.as_str() {
                        "sluice" => Engine::Sluice,
                        "spark" => Engine::Spark,
                        "flink" => Engine::Flink,
                        other => panic!("--engines: unknown engine {other} (sluice, spark, flink)"),
                    })
                    .collect()
            }
            "--check-rows" => args.check_rows = true,
            "--flink-python" => args.flink_python = it.next().expect("--flink-python takes a path"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.runs > 0 && args.events > 0 && args.per_batch > 0);
    args
}

/// The files each table's events are written in, each covering the same range of events.
const FILES: u64 = 10;

/// The Nexmark tables' columns, as a Sluice pipeline declares them (`src/nexmark.rs`).
fn schema(table: &str) -> &'static str {
    match table {
        "person" => {
            "{ id: bigint, name: string, email_address: string, credit_card: string, city: string, state: string, date_time: timestamp, extra: string }"
        }
        "auction" => {
            "{ id: bigint, item_name: string, description: string, initial_bid: bigint, reserve: bigint, date_time: timestamp, expires: timestamp, seller: bigint, category: bigint, extra: string }"
        }
        "bid" => {
            "{ auction: bigint, bidder: bigint, price: bigint, channel: string, url: string, date_time: timestamp, extra: string }"
        }
        other => panic!("no Nexmark table {other}"),
    }
}

/// A query of `queries/nexmark/`, as this benchmark runs it.
struct Query {
    name: String,
    /// The pipeline, its sources turned into files sources (checkpoint and sink still to set).
    pipeline: Mapping,
    complete: bool,
}

/// `queries/nexmark/*.yaml`, in the benchmark's order (q0, q1, ... q22, then the others).
fn queries(root: &Path, input: &Path, per_batch: u64) -> Vec<Query> {
    let folder = root.join("queries/nexmark");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&folder).expect("queries/nexmark") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("query file");
        let Value::Mapping(mut pipeline) = serde_yaml::from_str(&text).expect("query YAML") else {
            panic!("{} is not a mapping", path.display());
        };
        let Some(Value::Mapping(sources)) = pipeline.get_mut("sources") else {
            panic!("{} has no sources", path.display());
        };
        for (_, source) in sources.iter_mut() {
            let Value::Mapping(source) = source else {
                panic!("a source of {} is not a mapping", path.display())
            };
            assert_eq!(source.get("kind"), Some(&Value::from("nexmark")));
            let table = source
                .get("table")
                .and_then(Value::as_str)
                .expect("a nexmark source names its table")
                .to_string();
            let mut files = Mapping::new();
            files.insert("kind".into(), "files".into());
            files.insert(
                "path".into(),
                input.join(&table).display().to_string().into(),
            );
            files.insert("format".into(), "json".into());
            files.insert(
                "schema".into(),
                serde_yaml::from_str(schema(&table)).expect("a schema is a YAML mapping"),
            );
            files.insert("max_files_per_batch".into(), per_batch.into());
            if let Some(watermark) = source.get("watermark") {
                files.insert("watermark".into(), watermark.clone());
            }
            *source = files;
        }
        if let Some(Value::Mapping(tables)) = pipeline.get_mut("tables") {
            for (_, table) in tables.iter_mut() {
                if let Some(Value::String(p)) = table.get_mut("path") {
                    *p = root.join(&*p).display().to_string();
                }
            }
        }
        pipeline.insert("trigger".into(), "available-now".into());
        let complete = pipeline.get("output_mode") == Some(&Value::from("complete"));
        found.push(Query {
            name,
            pipeline,
            complete,
        });
    }
    // q0, q1, q2, q3, q10, ... by number; the named queries after them.
    found.sort_by_key(|q| {
        let number = q.name.strip_prefix('q').and_then(|n| n.parse::<u32>().ok());
        (number.is_none(), number, q.name.clone())
    });
    found
}

/// What one run of one engine measured.
struct Run {
    seconds: f64,
    /// The engine's start, left out of `seconds` (Spark's session, Flink's environment).
    start_seconds: Option<f64>,
    rows_out: Option<u64>,
}

/// One query's runs by engine (an error: the engine cannot run the query, or failed).
type ByEngine = BTreeMap<Engine, Result<Vec<Run>, String>>;

/// Runs `query` in Sluice in a new `work` folder.
fn sluice_run(sluice: &Path, query: &Query, work: &Path) -> Run {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work folder");
    let mut pipeline = query.pipeline.clone();
    pipeline.insert(
        "checkpoint".into(),
        work.join("checkpoint").display().to_string().into(),
    );
    let Some(Value::Mapping(sink)) = pipeline.get_mut("sink") else {
        panic!("{} has no sink", query.name)
    };
    sink.insert("path".into(), work.join("out").display().to_string().into());
    let file = work.join("pipeline.yaml");
    std::fs::write(
        &file,
        serde_yaml::to_string(&Value::Mapping(pipeline)).expect("YAML"),
    )
    .expect("pipeline file");
    let started = Instant::now();
    let out = Command::new(sluice)
        .args(["run", &file.display().to_string(), "--progress", "none"])
        .output()
        .expect("sluice runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "sluice run {} failed: {}",
        query.name,
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows out: every batch's in append mode, the last batch's table in complete mode.
    let commits = work.join("checkpoint/commits");
    let mut per_batch = BTreeMap::new();
    for entry in std::fs::read_dir(&commits).expect("commits") {
        let path = entry.expect("entry").path();
        let Some(n) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("commit");
        let entry: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).expect("a commit's entry is on line 2"))
                .expect("commit JSON");
        per_batch.insert(n, entry["rows_out"].as_u64().expect("rows_out"));
    }
    let rows_out = if query.complete {
        per_batch.values().last().copied().unwrap_or(0)
    } else {
        per_batch.values().sum()
    };
    Run {
        seconds,
        start_seconds: None,
        rows_out: Some(rows_out),
    }
}

/// Runs `script` (a baseline) and reads the JSON object it prints last; an error where the
/// engine cannot run the query or failed (its reason printed).
fn baseline_run(python: &str, script: &Path, args: &[String], what: &str) -> Result<Run, String> {
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{python} {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(last) = last.filter(|_| out.status.success()) else {
        // A baseline that fails (out of memory, say) is reported, and the others go on.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .find(|l| l.contains("OutOfMemoryError"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no output");
        println!("{what}: failed: {}", why.trim());
        return Err(format!("failed: {}", why.trim()));
    };
    let value: serde_json::Value = serde_json::from_str(last).expect("JSON");
    if value["supported"] == serde_json::Value::Bool(false) {
        println!("{what}: not supported: {}", value["reason"]);
        return Err("not supported".into());
    }
    Ok(Run {
        seconds: value["stream_s"].as_f64().expect("stream_s"),
        start_seconds: value["start_s"].as_f64(),
        rows_out: value["rows_out"].as_u64(),
    })
}

/// Whether `python` imports `module`.
fn has_module(python: &str, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    let args = parse_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("bench/data");
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let mut engines = args.engines.clone();
    engines.retain(|&engine| match engine {
        Engine::Sluice => true,
        Engine::Spark => {
            let ok = has_module("python3", "pyspark");
            if !ok {
                println!("spark: left out, python3 has no pyspark (pip install 'pyspark==4.3.*')");
            }
            ok
        }
        Engine::Flink => {
            let ok = has_module(&args.flink_python, "pyflink");
            if !ok {
                println!(
                    "flink: left out, {} has no pyflink (install 'apache-flink==2.3.*' in a venv, pass its python with --flink-python)",
                    args.flink_python
                );
            }
            ok
        }
    });

    // The events, written once.
    let events_per_second: u64 = 10_000;
    let input = data.join(format!("nexmark-{}-{FILES}", args.events));
    let marker = input.join("_generated");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&input);
        let started = Instant::now();
        let out = Command::new(&sluice)
            .args([
                "gen",
                "nexmark",
                "--events",
                &args.events.to_string(),
                "--out",
                &input.display().to_string(),
                "--format",
                "json",
                "--events-per-second",
                &events_per_second.to_string(),
                "--events-per-file",
                &args.events.div_ceil(FILES).to_string(),
            ])
            .output()
            .expect("sluice gen runs");
        assert!(
            out.status.success(),
            "sluice gen nexmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "{} in {:.1} s",
            String::from_utf8_lossy(&out.stdout).trim_end(),
            started.elapsed().as_secs_f64()
        );
        std::fs::write(&marker, "").expect("marker");
    }
    let span_seconds = args.events.div_ceil(events_per_second);
    let side_input = root.join("queries/data/nexmark/side_input.csv");

    let mut all = queries(&root, &input, args.per_batch);
    if let Some(wanted) = &args.queries {
        for name in wanted {
            assert!(
                all.iter().any(|q| &q.name == name),
                "no query {name} in queries/nexmark/"
            );
        }
        all.retain(|q| wanted.contains(&q.name));
    }

    let work = data.join("work-nexmark");
    let mut results: Vec<(String, ByEngine)> = Vec::new();
    for query in &all {
        let mut by_engine = ByEngine::new();
        for run in 0..args.runs {
            for &engine in &engines {
                if matches!(by_engine.get(&engine), Some(Err(_))) {
                    continue;
                }
                if engine != Engine::Sluice && run >= args.baseline_runs.unwrap_or(args.runs) {
                    continue;
                }
                let _ = std::fs::remove_dir_all(&work);
                std::fs::create_dir_all(&work).expect("work folder");
                let what = format!("{} {} run {run}", engine.name(), query.name);
                let mut common_args = vec![
                    "--input".to_string(),
                    input.display().to_string(),
                    "--work".to_string(),
                    work.display().to_string(),
                    "--query".to_string(),
                    query.name.clone(),
                    "--side-input".to_string(),
                    side_input.display().to_string(),
                ];
                let measured = match engine {
                    Engine::Sluice => Ok(sluice_run(&sluice, query, &work)),
                    Engine::Spark => {
                        common_args.extend(["--per-batch".into(), args.per_batch.to_string()]);
                        baseline_run(
                            "python3",
                            &root.join("bench/nexmark_spark.py"),
                            &common_args,
                            &what,
                        )
                    }
                    Engine::Flink => {
                        common_args.extend([
                            "--watermark-delay-s".into(),
                            (span_seconds + 60).to_string(),
                        ]);
                        if args.check_rows && run == 0 {
                            common_args.push("--count".into());
                        }
                        baseline_run(
                            &args.flink_python,
                            &root.join("bench/nexmark_flink.py"),
                            &common_args,
                            &what,
                        )
                    }
                };
                match measured {
                    Ok(m) => {
                        println!(
                            "{what}: {:.2} s{}{}",
                            m.seconds,
                            m.start_seconds
                                .map(|s| format!(" (+ {s:.1} s start, left out)"))
                                .unwrap_or_default(),
                            m.rows_out
                                .map(|r| format!(", {r} rows out"))
                                .unwrap_or_default()
                        );
                        by_engine
                            .entry(engine)
                            .or_insert_with(|| Ok(Vec::new()))
                            .as_mut()
                            .expect("an engine that ran")
                            .push(m);
                    }
                    Err(why) => {
                        by_engine.insert(engine, Err(why));
                    }
                }
            }
        }
        results.push((query.name.clone(), by_engine));
    }
    let _ = std::fs::remove_dir_all(&work);

    let rate = |runs: &Result<Vec<Run>, String>| -> Result<f64, String> {
        runs.as_ref()
            .map(|r| args.events as f64 / median(r.iter().map(|r| r.seconds).collect()))
            .map_err(Clone::clone)
    };
    println!(
        "\n== Nexmark, {} events ({} a second of event time, JSON lines, {} files a batch), events/s over the median of {} runs ({} of Spark and Flink)",
        args.events,
        events_per_second,
        args.per_batch,
        args.runs,
        args.baseline_runs.unwrap_or(args.runs).min(args.runs)
    );
    let has = |e: Engine| engines.contains(&e);
    let mut header = String::from("| query | Sluice |");
    let mut rule = String::from("|---|---:|");
    for (engine, title) in [(Engine::Spark, "Spark"), (Engine::Flink, "Flink")] {
        if has(engine) {
            header.push_str(&format!(" {title} | Sluice / {title} |"));
            rule.push_str("---:|---:|");
        }
    }
    println!("{header}\n{rule}");
    let mut rows_line = Vec::new();
    for (name, by_engine) in &results {
        let sluice_rate = by_engine.get(&Engine::Sluice).and_then(|r| rate(r).ok());
        let mut line = format!(
            "| {name} | {} |",
            sluice_rate.map_or("-".into(), |r| format!("{r:.0}"))
        );
        for engine in [Engine::Spark, Engine::Flink] {
            if !has(engine) {
                continue;
            }
            match by_engine.get(&engine).map(rate) {
                Some(Ok(r)) => line.push_str(&format!(
                    " {r:.0} | {} |",
                    sluice_rate.map_or("-".into(), |s| format!("{:.1}x", s / r))
                )),
                Some(Err(why)) => line.push_str(&format!(" {why} | - |")),
                None => line.push_str(" - | - |"),
            }
        }
        println!("{line}");
        let rows: Vec<String> = by_engine
            .iter()
            .filter_map(|(engine, runs)| {
                let rows = runs.as_ref().ok()?.first()?.rows_out?;
                Some(format!("{} {rows}", engine.name()))
            })
            .collect();
        rows_line.push(format!("{name}: {}", rows.join(", ")));
    }
    println!("\nrows out (where the engine reports them):");
    for line in rows_line {
        println!("  {line}");
    }
}
