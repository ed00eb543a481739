//! Sluice's PostgreSQL sink against a plain binary `COPY` of the same rows, on the same server.
//! Run it with
//!
//! ```text
//! cargo bench --bench postgres                          # 2 million events, 3 runs
//! cargo bench --bench postgres -- --rows 200000 --files 10 --runs 5
//! ```
//!
//! The server is the tests' PostgreSQL (`tests/servers/postgres/start`, started or reused), or
//! `SLUICE_PG_URL`. The input is `bench/stream.rs`'s click events (JSON lines under
//! `bench/data/`); every run writes a fresh table of the stateless query's rows:
//!
//! - plain COPY: the query as one DataFusion batch query over every file, its record batches
//!   encoded by pgpq and sent by one binary `COPY` in one transaction (the client a program
//!   would write by hand); and the `COPY` alone, timed from the rows in memory;
//! - Sluice: an `available-now` pipeline, 2 files per batch, each batch one transaction (the
//!   progress row, binary `COPY`, commit), every checkpoint write synced.
//!
//! Each table's row count is checked against the batch query's. Every figure is the median of
//! several runs; ratios are against runs in the same command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::BytesMut;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{JsonReadOptions, SessionContext};
use futures::SinkExt;
use sluice::driver::RunOptions;
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::{SCHEMA, batch_ms, generate, median};

const QUERY: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                     FROM clicks WHERE duration_ms > 1000";

struct Args {
    rows: u64,
    files: u64,
    per_batch: u64,
    runs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: 2_000_000,
        files: 20,
        per_batch: 2,
        runs: 3,
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
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The server: `SLUICE_PG_URL`, or the tests' server, started where none listens.
fn server() -> String {
    common::test_server("postgres", "SLUICE_PG_URL")
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

async fn count(url: &str, table: &str) -> u64 {
    let row = client(url)
        .await
        .query_one(&format!("SELECT count(*) FROM \"{table}\""), &[])
        .await
        .expect("count");
    row.get::<_, i64>(0) as u64
}

/// The query's rows over every file, as one DataFusion batch query.
async fn batch_query(input: &Path) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    let schema = sluice::format::schema_from_sql_types(&common::parse_schema())
        .await
        .expect("schema");
    ctx.register_json(
        "clicks",
        &input.display().to_string(),
        JsonReadOptions::default().schema(&schema),
    )
    .await
    .expect("register");
    ctx.sql(QUERY)
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect")
}

/// `batches` into a new table `table` by one binary COPY in one transaction; the seconds the
/// COPY took (from the first byte encoded to the commit).
async fn plain_copy(url: &str, table: &str, batches: &[RecordBatch]) -> f64 {
    let schema = batches.first().expect("rows").schema();
    // Nanosecond timestamps go as microseconds, as the sink sends them.
    let fields: Vec<datafusion::arrow::datatypes::Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            datafusion::arrow::datatypes::DataType::Timestamp(_, tz) => {
                datafusion::arrow::datatypes::Field::new(
                    f.name(),
                    datafusion::arrow::datatypes::DataType::Timestamp(
                        datafusion::arrow::datatypes::TimeUnit::Microsecond,
                        tz.clone(),
                    ),
                    true,
                )
            }
            _ => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    let target = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    let mut encoder = pgpq::ArrowToPostgresBinaryEncoder::try_new(&target).expect("encoder");
    let ddl: Vec<String> = encoder
        .schema()
        .columns
        .iter()
        .map(|c| format!("\"{}\" {}", c.name, c.data_type.name().expect("type")))
        .collect();
    let mut client = client(url).await;
    client
        .batch_execute(&format!("CREATE TABLE \"{table}\" ({})", ddl.join(", ")))
        .await
        .expect("create");
    let started = Instant::now();
    let tx = client.transaction().await.expect("begin");
    let sink = tx
        .copy_in::<str, bytes::Bytes>(&format!("COPY \"{table}\" FROM STDIN (FORMAT binary)"))
        .await
        .expect("copy");
    futures::pin_mut!(sink);
    let mut buffer = BytesMut::new();
    encoder.write_header(&mut buffer).expect("header");
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()).expect("cast"))
            .collect();
        let batch = RecordBatch::try_new(std::sync::Arc::clone(&target), columns).expect("batch");
        encoder.write_batch(&batch, &mut buffer).expect("encode");
        if buffer.len() >= 1 << 20 {
            sink.send(buffer.split().freeze()).await.expect("send");
        }
    }
    encoder.write_footer(&mut buffer).expect("footer");
    sink.send(buffer.split().freeze()).await.expect("send");
    sink.as_mut().finish().await.expect("finish");
    tx.commit().await.expect("commit");
    started.elapsed().as_secs_f64()
}

/// One Sluice run into a new table; its seconds and median batch milliseconds.
async fn sluice_run(url: &str, work: &Path, input: &Path, table: &str, args: &Args) -> (f64, f64) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: bench_pg\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {SCHEMA}\n    max_files_per_batch: {per_batch}\nquery: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  create_table: true\n",
        ckpt = work.join("ckpt").display(),
        input = input.display(),
        per_batch = args.per_batch,
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("bench-postgres.yaml")).expect("pipeline");
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
    let url = server();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let input = root.join(format!("clicks-{}-{}", args.rows, args.files));
    generate(&input, args.rows, args.files);
    let work = root.join("work-postgres");

    let (mut whole, mut copy_only, mut sl, mut batches) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut out_rows = 0;
    let admin = client(&url).await;
    for run in 0..args.runs {
        let plain_table = format!("bench_plain_{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let rows = batch_query(&input).await;
        let copy_s = plain_copy(&url, &plain_table, &rows).await;
        whole.push(started.elapsed().as_secs_f64());
        copy_only.push(copy_s);
        out_rows = rows.iter().map(|b| b.num_rows() as u64).sum();
        assert_eq!(count(&url, &plain_table).await, out_rows, "plain COPY rows");

        let table = format!("bench_sluice_{}", uuid::Uuid::new_v4().simple());
        let (seconds, batch_ms) = sluice_run(&url, &work, &input, &table, &args).await;
        assert_eq!(count(&url, &table).await, out_rows, "Sluice's rows");
        println!(
            "run {run}: plain (query + COPY) {:.2} s (COPY {copy_s:.2} s), sluice {seconds:.2} s",
            whole[run]
        );
        sl.push(seconds);
        batches.push(batch_ms);
        for t in [&plain_table, &table] {
            admin
                .batch_execute(&format!("DROP TABLE \"{t}\""))
                .await
                .expect("drop");
        }
    }
    let paired = median(whole.iter().zip(&sl).map(|(p, s)| p / s).collect());
    let (whole_s, copy_s, sl_s) = (median(whole), median(copy_only), median(sl));
    let n = out_rows as f64;
    println!(
        "\n== {} events in {} files -> {out_rows} rows into PostgreSQL, {} files per batch, median of {} runs",
        args.rows, args.files, args.per_batch, args.runs
    );
    println!(
        "plain: batch query + one binary COPY   {whole_s:>7.2} s   {:>10.0} rows/s",
        n / whole_s
    );
    println!(
        "plain: the COPY alone                  {copy_s:>7.2} s   {:>10.0} rows/s",
        n / copy_s
    );
    println!(
        "sluice available-now                   {sl_s:>7.2} s   {:>10.0} rows/s   median batch {:.0} ms",
        n / sl_s,
        median(batches)
    );
    println!(
        "sluice rate / plain rate               {:>7.2} x   (ratio of medians; median of paired runs {paired:.2} x; target >= 0.5)",
        whole_s / sl_s
    );
}
