//! The two distributed DataFusion engines docs/scale.md chose between, and DataFusion in one
//! process as the baseline, over the same files in one run:
//!
//! - `local`: a `SessionContext` in this process (2 partitions, the machine's 2 cores);
//! - `datafusion-distributed` 4.0: two workers (`Worker` gRPC services) on loopback ports of
//!   this process, the planner spreading each stage over both;
//! - Ballista 55: a scheduler and two executors (one task slot each) on loopback ports of this
//!   process, a client context submitting each query as a job.
//!
//! Each engine runs each query over each input `--runs` times; the table gives the medians and
//! the ratio to `local`. The small input is the fixed cost a batch pays (planning, job
//! submission, stage set-up); the large one the rows per second. Two queries: the stateless
//! filter and projection of `bench/distributed.rs` (its rows all come back to the client, as
//! a batch's rows come back to Sluice's driver for its sink), and an aggregation (partial
//! groups on the workers, little coming back).
//!
//! ```text
//! cargo bench --bench distributed -- --mb 2000 --runs 1    # generates bench/data/distributed-*
//! cargo run --release --manifest-path bench/engines/Cargo.toml -- --runs 5
//! cargo run --release --manifest-path bench/engines/Cargo.toml -- --large bench/data/distributed-300mb-9
//! ```
//!
//! Everything shares one 2-core machine, so no engine can beat `local` here: the figures are
//! each engine's own cost of going distributed, which is what the choice rests on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ballista::prelude::SessionContextExt;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{JsonReadOptions, SessionConfig, SessionContext};
use datafusion_distributed::{
    DistributedExt, SessionStateBuilderExt, Worker, WorkerResolver,
};
use url::Url;

/// `bench/distributed.rs`'s query: a filter and a projection, most rows kept.
const STATELESS: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                         FROM clicks WHERE duration_ms > 1000";
/// An aggregation: each worker's partial groups, then the final ones.
const AGGREGATE: &str = "SELECT page, country, count(*) AS n, sum(duration_ms) AS total, \
                         count(DISTINCT user_id) AS users FROM clicks GROUP BY page, country";

/// The click events' columns, as `bench/common.rs` writes them and its `SCHEMA` reads them
/// (`timestamp` is DataFusion's nanoseconds without a zone).
fn schema() -> Schema {
    Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("user_id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("referrer", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("duration_ms", DataType::Int64, true),
    ])
}

/// The workers' addresses, as datafusion-distributed's planner asks for them (a plain trait:
/// the planner calls it without awaiting).
#[derive(Clone)]
struct Workers(Vec<Url>);

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        Ok(self.0.clone())
    }
}

/// A datafusion-distributed worker serving on a free loopback port of this process.
async fn start_worker() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("address");
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(Worker::default().into_worker_server())
            .serve_with_incoming(incoming)
            .await
            .expect("the worker serves");
    });
    Url::parse(&format!("http://{addr}")).expect("url")
}

/// A Ballista scheduler and two executors of one task slot each, on loopback ports of this
/// process; the scheduler's address.
async fn start_ballista() -> SocketAddr {
    let scheduler = ballista_scheduler::standalone::new_standalone_scheduler()
        .await
        .expect("a Ballista scheduler");
    for _ in 0..2 {
        let client = loop {
            match SchedulerGrpcClient::connect(format!("http://{scheduler}")).await {
                Ok(client) => break client,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        ballista_executor::new_standalone_executor(client, 1, BallistaCodec::default())
            .await
            .expect("a Ballista executor");
    }
    scheduler
}

/// The engines, each a context with `clicks` over `input`, each planning 2 partitions.
///
/// datafusion-distributed sizes a scan's tasks by its bytes (16 MiB a partition by default,
/// which keeps the small input in one task, not distributed at all): one byte a partition
/// makes every scan as many tasks as workers, as Ballista always spreads a stage, so the
/// small input measures each engine's fixed cost of going to its workers. Ballista's client
/// would plan 16 partitions (its own default) without the 2 given here; it sends its settings
/// with each job, so the scheduler plans with them.
async fn contexts(
    input: &str,
    workers: &[Url],
    scheduler: SocketAddr,
) -> Vec<(&'static str, SessionContext)> {
    let config = || SessionConfig::new().with_target_partitions(2);
    let local = SessionContext::new_with_config(config());
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config())
        .with_distributed_worker_resolver(Workers(workers.to_vec()))
        .with_distributed_planner()
        .with_distributed_file_scan_config_bytes_per_partition(1)
        .expect("the distributed planner's settings")
        .build();
    let distributed = SessionContext::from(state);
    let client_state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config())
        .build();
    let ballista = SessionContext::remote_with_state(&format!("df://{scheduler}"), client_state)
        .await
        .expect("a Ballista client");
    let engines = vec![
        ("local", local),
        ("datafusion-distributed", distributed),
        ("Ballista", ballista),
    ];
    let schema = schema();
    for (_, ctx) in &engines {
        ctx.register_json(
            "clicks",
            input,
            JsonReadOptions::default()
                .file_extension(".json")
                .schema(&schema),
        )
        .await
        .expect("register the input");
    }
    engines
}

/// Runs `sql` in `ctx`, all its rows back here: its seconds and rows.
async fn timed(ctx: &SessionContext, sql: &str) -> Result<(f64, usize)> {
    let started = Instant::now();
    let batches = ctx.sql(sql).await?.collect().await?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    Ok((started.elapsed().as_secs_f64(), rows))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data");
    let mut small = data.join("distributed-small");
    let mut large = data.join("distributed-2000mb-62");
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--small" => small = args.next().map(PathBuf::from).expect("--small DIR"),
            "--large" => large = args.next().map(PathBuf::from).expect("--large DIR"),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            other => panic!("unknown argument {other}"),
        }
    }
    for input in [&small, &large] {
        if !input.is_dir() {
            return Err(DataFusionError::Configuration(format!(
                "{} is missing: `cargo bench --bench distributed` generates it",
                input.display()
            )));
        }
    }
    let workers = vec![start_worker().await, start_worker().await];
    let scheduler = start_ballista().await;
    let mut table = Vec::new();
    for (input_name, input) in [("two small files", &small), ("large batch", &large)] {
        let input = input.display().to_string();
        let engines = contexts(&input, &workers, scheduler).await;
        for (query_name, sql) in [("filter+project", STATELESS), ("aggregate", AGGREGATE)] {
            let mut medians = Vec::new();
            let mut rows_out = None;
            for (engine, ctx) in &engines {
                // One run first, untimed: the files in the page cache, connections open.
                timed(ctx, sql).await?;
                let mut times = Vec::new();
                for run in 0..runs {
                    let (seconds, rows) = timed(ctx, sql).await?;
                    assert_eq!(
                        *rows_out.get_or_insert(rows),
                        rows,
                        "{engine} returns every row"
                    );
                    println!("{input_name}, {query_name}, {engine}, run {run}: {seconds:.3} s");
                    times.push(seconds);
                }
                medians.push((*engine, median(times)));
            }
            table.push((input_name, query_name, rows_out.unwrap_or(0), medians));
        }
    }
    println!("\n== median of {runs} runs, 2 workers on loopback, one 2-core machine");
    println!("| input | query | rows out | local | datafusion-distributed | Ballista |");
    println!("|---|---|---|---|---|---|");
    for (input, query, rows, medians) in &table {
        let local = medians[0].1;
        let cells: Vec<String> = medians
            .iter()
            .map(|(engine, s)| match *engine {
                "local" => format!("{s:.3} s"),
                _ => format!("{s:.3} s ({:.2}x)", s / local),
            })
            .collect();
        println!("| {input} | {query} | {rows} | {} |", cells.join(" | "));
    }
    Ok(())
}
