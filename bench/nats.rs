//! Sluice's NATS JetStream source against a plain `async-nats` consumer draining the same
//! stream, on the same server. Run it with
//!
//! ```text
//! cargo bench --bench nats                             # 400 000 messages, 3 runs
//! cargo bench --bench nats -- --rows 100000 --runs 5
//! ```
//!
//! The server is the tests' `nats-server` (`tests/servers/nats/start`, started or reused), or
//! `SLUICE_NATS_URL`. The messages are `bench/stream.rs`'s click events, one JSON object per
//! message, published once into a stream of their own; then, each run:
//!
//! - plain: an ordered consumer from the stream's first sequence, draining every message (the
//!   client a program would write by hand, holding each payload, decoding nothing);
//! - Sluice, raw: an `available-now` pipeline reading the stream (`format: raw`, 50 000
//!   sequences per batch) into `SELECT count(*)` in complete mode, so the figure is the
//!   source's (each batch's offsets and commit synced);
//! - Sluice, JSON: the same with each payload decoded into the click columns
//!   (`format: json`, `schema:`) and counted per page.
//!
//! Each Sluice run's count is checked against the messages published. Every figure is the
//! median of several runs; ratios are against runs in the same command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use async_nats::jetstream;
use futures::StreamExt as _;
use sluice::driver::RunOptions;
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::{SCHEMA, generate, median};

struct Args {
    rows: u64,
    runs: usize,
}

fn parse_args() -> Args {
    let [rows, runs] = common::numbers([("rows", 400_000), ("runs", 3)]);
    Args {
        rows,
        runs: runs as usize,
    }
}

/// The server: `SLUICE_NATS_URL`, or the tests' server, started where none listens.
fn server() -> String {
    common::test_server("nats", "SLUICE_NATS_URL")
}

/// Publishes every line of the JSON-lines files in `input` as one message on `subject`,
/// acknowledged by the stream; the number published.
async fn publish(js: &jetstream::Context, subject: &str, input: &Path) -> u64 {
    let mut files: Vec<PathBuf> = std::fs::read_dir(input)
        .expect("input")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut acks = Vec::new();
    let mut published = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines() {
            acks.push(
                js.publish(subject.to_string(), line.as_bytes().to_vec().into())
                    .await
                    .expect("publish"),
            );
            published += 1;
            if acks.len() >= 2_000 {
                for ack in acks.drain(..) {
                    ack.await.expect("ack");
                }
            }
        }
    }
    for ack in acks {
        ack.await.expect("ack");
    }
    published
}

/// Drains `stream` from its first sequence with an ordered consumer; the seconds it took and
/// the messages read.
async fn plain_drain(js: &jetstream::Context, stream: &str, expected: u64) -> (f64, u64) {
    let started = Instant::now();
    let stream = js.get_stream(stream).await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let (mut read, mut bytes) = (0_u64, 0_usize);
    while read < expected {
        let message = messages.next().await.expect("a message").expect("message");
        bytes += message.payload.len();
        read += 1;
    }
    assert!(bytes > 0);
    (started.elapsed().as_secs_f64(), read)
}

/// One Sluice run of `query` over the stream; its seconds, and the number in the first
/// column of its output summed (the rows it counted).
async fn sluice_run(work: &Path, url: &str, stream: &str, decode: &str, query: &str) -> (f64, u64) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let yaml = format!(
        "name: bench_nats\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: nats\n    url: {url}\n    stream: {stream}\n    max_records_per_batch: 50000\n{decode}query: |\n  {query}\noutput_mode: complete\ntrigger: available-now\nsink:\n  kind: files\n  path: {out}\n  format: json\n",
        ckpt = work.join("ckpt").display(),
        out = work.join("out").display(),
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("bench-nats.yaml")).expect("pipeline");
    let started = Instant::now();
    sluice::driver::run(
        &pipeline,
        RunOptions {
            progress: ProgressFormat::None,
            ..RunOptions::default()
        },
    )
    .await
    .expect("sluice run");
    let seconds = started.elapsed().as_secs_f64();
    // Complete mode: the newest file holds the whole count.
    let mut files: Vec<PathBuf> = std::fs::read_dir(work.join("out"))
        .expect("out")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let newest = std::fs::read_to_string(files.last().expect("output")).expect("read");
    let counted = newest
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["n"].as_u64().expect("n")
        })
        .sum();
    (seconds, counted)
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let url = server();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let files = (args.rows / 20_000).max(1);
    let input = root.join(format!("clicks-{}-{files}", args.rows));
    generate(&input, args.rows, files);
    let work = root.join("work-nats");

    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let js = jetstream::new(client);
    let stream = format!("BENCH_{}", uuid::Uuid::new_v4().simple());
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{stream}.>")],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let published = publish(&js, &format!("{stream}.clicks"), &input).await;
    println!("published {published} messages into {stream}");

    let json = format!("    format: json\n    schema: {SCHEMA}\n");
    let (mut plain, mut raw, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..args.runs {
        let (plain_s, read) = plain_drain(&js, &stream, published).await;
        assert_eq!(read, published);
        let (raw_s, counted) =
            sluice_run(&work, &url, &stream, "", "SELECT count(*) AS n FROM clicks").await;
        assert_eq!(counted, published, "Sluice (raw) counted every message");
        let (json_s, counted) = sluice_run(
            &work,
            &url,
            &stream,
            &json,
            "SELECT page, count(*) AS n FROM clicks GROUP BY page",
        )
        .await;
        assert_eq!(counted, published, "Sluice (JSON) counted every message");
        println!(
            "run {run}: plain {plain_s:.2} s, sluice raw {raw_s:.2} s, sluice json {json_s:.2} s"
        );
        plain.push(plain_s);
        raw.push(raw_s);
        decoded.push(json_s);
    }
    let paired = median(plain.iter().zip(&raw).map(|(p, s)| p / s).collect());
    let (plain_s, raw_s, json_s) = (median(plain), median(raw), median(decoded));
    let n = published as f64;
    println!(
        "\n== {published} messages from one JetStream stream, median of {} runs",
        args.runs
    );
    println!(
        "plain async-nats ordered consumer      {plain_s:>7.2} s   {:>10.0} msgs/s",
        n / plain_s
    );
    println!(
        "sluice available-now, raw              {raw_s:>7.2} s   {:>10.0} msgs/s",
        n / raw_s
    );
    println!(
        "sluice available-now, JSON decoded     {json_s:>7.2} s   {:>10.0} msgs/s",
        n / json_s
    );
    println!(
        "sluice raw rate / plain rate           {:>7.2} x   (ratio of medians; median of paired runs {paired:.2} x; target >= 0.5)",
        plain_s / raw_s
    );
    js.delete_stream(&stream).await.expect("delete stream");
}
