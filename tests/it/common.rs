//! Shared test helpers: input generators, pipeline files, the oracle (the same SQL as one
//! DataFusion batch query over all the input), and reading back what a sink holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use sluice::driver::{RunOptions, RunSummary};
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;

pub const PAGES: [&str; 5] = ["home", "search", "product", "cart", "help"];

/// A test's own folder with `in/`, `out/` and `ckpt/`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("in")).expect("in/");
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }
}

/// The columns of the generated click events.
pub fn click_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
    ]))
}

/// The pipeline-file schema of the generated click events.
pub const CLICK_SCHEMA_YAML: &str =
    "{ id: bigint, user_id: bigint, page: string, amount: double, ts: timestamp }";

/// Deterministic click events `first..first+rows`.
pub fn clicks(first: i64, rows: i64) -> RecordBatch {
    let ids: Vec<i64> = (first..first + rows).collect();
    let users: Vec<i64> = ids.iter().map(|i| (i * 7919) % 23).collect();
    let pages: Vec<&str> = ids
        .iter()
        .map(|i| PAGES[(*i as usize * 31) % PAGES.len()])
        .collect();
    let amounts: Vec<f64> = ids
        .iter()
        .map(|i| ((i * 37) % 1000) as f64 / 10.0)
        .collect();
    let ts: Vec<i64> = ids
        .iter()
        .map(|i| 1_762_000_000_000_000_000 + i * 1_000_000_000)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int64Array::from(users)),
        Arc::new(StringArray::from(pages)),
        Arc::new(Float64Array::from(amounts)),
        Arc::new(TimestampNanosecondArray::from(ts)),
    ];
    RecordBatch::try_new(click_schema(), columns).expect("batch")
}

/// Writes `files` files of `rows` click events each into `dir` in `format`.
pub fn write_clicks(dir: &Path, format: &str, files: usize, rows: i64, first_file: usize) {
    std::fs::create_dir_all(dir).expect("input folder");
    for f in first_file..first_file + files {
        let batch = clicks(f as i64 * rows, rows);
        let path = dir.join(format!("clicks-{f:04}.{format}"));
        write_batch(&path, format, &batch);
    }
}

pub fn write_batch(path: &Path, format: &str, batch: &RecordBatch) {
    use datafusion::arrow::{csv, json};
    let mut out = Vec::new();
    match format {
        "json" => {
            let mut w = json::LineDelimitedWriter::new(&mut out);
            w.write(batch).expect("json");
            w.finish().expect("json");
        }
        "csv" => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(&mut out);
            w.write(batch).expect("csv");
        }
        "parquet" => {
            let mut w = ArrowWriter::try_new(&mut out, batch.schema(), None).expect("parquet");
            w.write(batch).expect("parquet");
            w.close().expect("parquet");
        }
        other => panic!("format {other}"),
    }
    // Write then rename, as a producer of a watched folder must.
    let tmp = path.with_file_name(format!(
        ".tmp-{}",
        path.file_name().expect("name").to_string_lossy()
    ));
    std::fs::write(&tmp, out).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A pipeline file over `in/` writing Parquet to `out/`.
pub fn pipeline_yaml(
    ws: &Workspace,
    format: &str,
    query: &str,
    max_files: usize,
    extra: &str,
) -> String {
    format!(
        "name: test\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: {format}\n    schema: {schema}\n    max_files_per_batch: {max_files}\n{extra}query: |\n  {query}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        out = ws.p("out"),
        schema = CLICK_SCHEMA_YAML,
    )
}

pub fn write_pipeline(ws: &Workspace, yaml: &str) -> PathBuf {
    let path = ws.path("pipeline.yaml");
    std::fs::write(&path, yaml).expect("pipeline file");
    path
}

/// Runs a pipeline in-process.
pub async fn run(yaml: &str, options: RunOptions) -> Result<RunSummary, sluice::Error> {
    let pipeline = Pipeline::parse(yaml, Path::new("test.yaml"))?;
    sluice::driver::run(
        &pipeline,
        RunOptions {
            progress: ProgressFormat::None,
            ..options
        },
    )
    .await
}

/// Renders rows as sorted strings, for comparing multisets of rows.
/// JSON lines decoded into `schema`'s types, every line (not a decoder's first 1024).
pub fn json_lines(schema: SchemaRef, text: &[u8]) -> Vec<RecordBatch> {
    datafusion::arrow::json::ReaderBuilder::new(schema)
        .build(std::io::Cursor::new(text))
        .expect("a JSON reader")
        .collect::<Result<_, _>>()
        .expect("decode JSON lines")
}

pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = rows_in_order(batches);
    out.sort();
    out
}

/// Renders rows as strings in the order they come, for comparing reads that must be alike.
pub fn rows_in_order(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| array_value_to_string(c, r).expect("display"))
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// The oracle: `query` as one DataFusion batch query over every input file, read by
/// DataFusion's own readers.
pub async fn oracle(input: &Path, format: &str, query: &str) -> Vec<String> {
    let ctx = SessionContext::new();
    let schema = click_schema();
    let dir = input.display().to_string();
    match format {
        "json" => ctx
            .register_json(
                "clicks",
                &dir,
                JsonReadOptions::default()
                    .schema(&schema)
                    .file_extension(".json"),
            )
            .await
            .expect("oracle json"),
        "csv" => ctx
            .register_csv(
                "clicks",
                &dir,
                CsvReadOptions::new().schema(&schema).file_extension(".csv"),
            )
            .await
            .expect("oracle csv"),
        "parquet" => ctx
            .register_parquet("clicks", &dir, ParquetReadOptions::default())
            .await
            .expect("oracle parquet"),
        other => panic!("format {other}"),
    }
    sql_rows(&ctx, query).await
}

/// What a plain reader sees in the sink folder: every `*.parquet` file, read by DataFusion.
pub async fn sink_rows(out: &Path) -> Vec<String> {
    if !out.exists() {
        return Vec::new();
    }
    let visible: Vec<_> = std::fs::read_dir(out)
        .expect("out/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    if visible.is_empty() {
        return Vec::new();
    }
    parquet_rows(
        &SessionContext::new(),
        &out.display().to_string(),
        "SELECT * FROM sink",
    )
    .await
}

/// Reads the Parquet files under `folder` (a path or a URL `ctx` has a store for) as the table
/// `sink`, and returns the rows of `sql` over it, as sorted strings.
pub async fn parquet_rows(ctx: &SessionContext, folder: &str, sql: &str) -> Vec<String> {
    ctx.register_parquet("sink", folder, ParquetReadOptions::default())
        .await
        .expect("read sink");
    sql_rows(ctx, sql).await
}

/// The rows of `sql` in `ctx`, as sorted strings.
pub async fn sql_rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx
        .sql(sql)
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    rows(&batches)
}

/// Checks sink against oracle and returns (rows compared, duplicates, losses).
pub fn compare(expected: &[String], got: &[String]) -> (usize, usize, usize) {
    use std::collections::BTreeMap;
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for r in expected {
        *counts.entry(r).or_default() += 1;
    }
    for r in got {
        *counts.entry(r).or_default() -= 1;
    }
    let dupes = counts.values().filter(|c| **c < 0).map(|c| -c).sum::<i64>() as usize;
    let losses = counts.values().filter(|c| **c > 0).sum::<i64>() as usize;
    (expected.len(), dupes, losses)
}

/// The `sluice` binary built with the tests.
/// Runs the `sluice` binary in `cwd` and waits for it.
pub fn run_bin(args: &[&str], cwd: &Path) -> std::process::Output {
    sluice_bin()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run sluice")
}

/// What a run of the binary said on standard error.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn sluice_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_LOG", "warn");
    cmd
}

/// Waits up to `limit` for `child` to exit; its status, or `None` if it is still running.
pub fn wait_timeout(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// Waits until process `child` is stopped (SIGSTOP), as `/proc` shows it.
/// Copies checkpoint `{ws}/ckpt` to `{ws}/ckpt-copy` as `cp -a` does, and pipeline file
/// `pipeline` to `{ws}/copy.yaml` pointing at the copy; the copy's file.
pub fn copy_checkpoint(ws: &Workspace, pipeline: &Path) -> PathBuf {
    let copied = std::process::Command::new("cp")
        .args(["-a", &ws.p("ckpt"), &ws.p("ckpt-copy")])
        .status()
        .expect("cp");
    assert!(copied.success());
    let copy = ws.path("copy.yaml");
    let text = std::fs::read_to_string(pipeline).expect("pipeline");
    std::fs::write(&copy, text.replace(&ws.p("ckpt"), &ws.p("ckpt-copy"))).expect("copy");
    copy
}

/// Runs `pipeline` in `cwd` until just before its write whose description holds `stop_at`
/// (`SLUICE_STOP_AT`), runs `meanwhile`, then lets it go on; its end.
pub fn run_stopped_while(
    pipeline: &Path,
    cwd: &Path,
    stop_at: &str,
    meanwhile: impl FnOnce(),
) -> std::process::Output {
    run_stopped_with(pipeline, cwd, stop_at, &[], meanwhile)
}

/// [`run_stopped_while`] with `env` added (a crash point after the stop, say).
pub fn run_stopped_with(
    pipeline: &Path,
    cwd: &Path,
    stop_at: &str,
    env: &[(&str, String)],
    meanwhile: impl FnOnce(),
) -> std::process::Output {
    let stopped = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ])
        .env("SLUICE_STOP_AT", stop_at)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_stopped(&stopped);
    meanwhile();
    std::process::Command::new("kill")
        .args(["-CONT", &stopped.id().to_string()])
        .status()
        .expect("kill -CONT");
    stopped.wait_with_output().expect("the run's end")
}

pub fn wait_stopped(child: &std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .chars()
            .next();
        if state == Some('T') {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached its stop point"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// How a run is ended at its crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The process aborts just before the write.
    Before,
    /// The process aborts right after the write (before Sluice syncs it).
    After,
    /// Right after the write, as a power loss: what no sync made durable is dropped first.
    PowerLoss,
}

impl Crash {
    pub const ALL: [Crash; 3] = [Crash::Before, Crash::After, Crash::PowerLoss];

    /// The environment that puts this crash at the `k`-th write whose path contains `filter`.
    pub fn env(self, k: u64, filter: &str) -> Vec<(&'static str, String)> {
        let point = match self {
            Crash::Before => "before",
            Crash::After | Crash::PowerLoss => "after",
        };
        let mut env = vec![("SLUICE_CRASH_AT", format!("{point}:{k}:{filter}"))];
        if self == Crash::PowerLoss {
            env.push(("SLUICE_CRASH_POWER_LOSS", "1".into()));
        }
        env
    }
}

/// `sluice run PIPELINE --progress none` as a fresh process with `env` added.
pub fn run_quietly(pipeline: &std::path::Path, env: &[(&str, String)]) -> std::process::Output {
    sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run sluice")
}

/// Whether `out` is a run that its crash point ended: aborted (SIGABRT), having said so.
pub fn crashed(out: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(6) && stderr(out).contains("sluice: crash point reached")
}

/// The writes of a clean run of `pipeline`, as the binary logs them (`N op path`).
pub fn clean_run_writes(ws: &Workspace, pipeline: &std::path::Path) -> Vec<String> {
    let log = ws.path("writes.log");
    let out = run_quietly(pipeline, &[("SLUICE_WRITE_LOG", log.display().to_string())]);
    assert!(out.status.success(), "clean run: {}", stderr(&out));
    std::fs::read_to_string(&log)
        .expect("write log")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The oracle over the shipped sample clicks (`queries/data/clicks`): `query` as one DataFusion
/// batch query over every file, with the columns the examples declare.
pub async fn sample_clicks_oracle(data: &std::path::Path, query: &str) -> Vec<String> {
    let ctx = datafusion::prelude::SessionContext::new();
    let schema = Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("duration_ms", DataType::Int64, true),
    ]);
    ctx.register_json(
        "clicks",
        &data.display().to_string(),
        datafusion::prelude::JsonReadOptions::default()
            .schema(&schema)
            .file_extension(".jsonl"),
    )
    .await
    .expect("sample clicks");
    sql_rows(&ctx, query).await
}

/// Runs `sluice replay <ckpt> --batch N --verify --json` and asserts that the batch verifies:
/// recomputed rows, the commit's content hash and the sink's rows agree.
pub fn assert_verified(ws: &Workspace, ckpt: &str, batch: u64) {
    let out = run_bin(
        &[
            "replay",
            &ws.p(ckpt),
            "--batch",
            &batch.to_string(),
            "--verify",
            "--json",
        ],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("replay --json");
    assert_eq!(view["verified"], true, "{view}");
}

/// The command or statement a message `said` gives between backticks that starts with
/// `start` (`sluice rewind`, `DELETE FROM`); panics naming the message where there is none.
pub fn advised(said: &str, start: &str) -> String {
    said.split('`')
        .find(|part| part.starts_with(start))
        .unwrap_or_else(|| panic!("no `{start} ...` in: {said}"))
        .to_string()
}

/// An empty local checkpoint folder, `ckpt` in `dir`, for a test that drives a source or sink
/// without a run.
/// `source`'s plan of batch `batch` from `start`, without admission limits.
pub async fn plan_next(
    source: &mut Box<dyn sluice::source::Source>,
    batch: u64,
    start: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>, sluice::source::SourceError> {
    source
        .plan(
            sluice::checkpoint::BatchId(batch),
            start,
            sluice::source::Admission::Unlimited,
        )
        .await
}

pub fn checkpoint_in(dir: &Path) -> sluice::storage::Location {
    sluice::storage::Location::open(&dir.join("ckpt").display().to_string(), true, false, None)
        .expect("ckpt")
}
