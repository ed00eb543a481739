//! Sluice's Kafka benchmark: one million JSON records through a filter and projection, Kafka
//! to Kafka with a transaction per batch, against a plain librdkafka consumer draining the same
//! topic and Spark Structured Streaming with its Kafka source and sink; then the end-to-end
//! latency of a pipeline triggered every 100 ms. Run it with
//!
//! ```text
//! cargo bench --bench kafka                       # Sluice, the plain consumer, the latency
//! cargo bench --bench kafka -- --spark --runs 5   # and Spark (pip install 'pyspark==4.2.*')
//! cargo bench --bench kafka -- --latency-only --rate 2000 --seconds 30
//! ```
//!
//! The broker is the tests' Apache Kafka (`tests/servers/kafka/start`, started or reused), or
//! `SLUICE_KAFKA_BOOTSTRAP`. The input is `bench/stream.rs`'s click events, produced once into
//! a topic kept between runs (`bench-clicks-<records>-<partitions>`). Every figure is the
//! median of several runs; ratios are against runs in the same command.
//!
//! - plain consumer: an rdkafka `BaseConsumer` with librdkafka's defaults assigned every
//!   partition from the beginning, polling until each reaches its end: the rate at which this
//!   machine can take the records out of the broker at all;
//! - Sluice: an `available-now` pipeline, `max_records_per_batch` as given, decoding each value
//!   as JSON, writing each output row as a JSON value in one Kafka transaction per batch; the
//!   rows a `read_committed` consumer then sees are counted against the same SQL as one
//!   DataFusion query over the generated files;
//! - Spark: `bench/spark_kafka.py` (`local[2]`, `availableNow`, the same `maxOffsetsPerTrigger`);
//! - latency: records produced at a steady rate into a fresh topic while a pipeline triggered
//!   `every 100ms` copies them to another; each output row carries its input record's
//!   timestamp (Kafka's CreateTime, set when the producer sent it), and a `read_committed`
//!   consumer takes the time it sees the row: p50 and p99 of the differences.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice::driver::RunOptions;
use sluice::pipeline::Pipeline;
use sluice::progress::ProgressFormat;

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use common::{SCHEMA, batch_ms, generate, median};

const QUERY: &str = "SELECT ts, user_id, upper(page) AS page, country, duration_ms / 1000.0 AS seconds \
                     FROM clicks WHERE duration_ms > 1000";
const TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    records: u64,
    partitions: i32,
    per_batch: u64,
    runs: usize,
    spark: bool,
    latency_only: bool,
    /// Records per second produced during the latency run.
    rate: u64,
    /// Seconds the latency run produces for.
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        records: 1_000_000,
        partitions: 4,
        per_batch: 100_000,
        runs: 3,
        spark: false,
        latency_only: false,
        rate: 1000,
        seconds: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--records" => args.records = value(),
            "--partitions" => args.partitions = value() as i32,
            "--per-batch" => args.per_batch = value(),
            "--runs" => args.runs = value() as usize,
            "--rate" => args.rate = value(),
            "--seconds" => args.seconds = value(),
            "--spark" => args.spark = true,
            "--latency-only" => args.latency_only = true,
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// The broker: `SLUICE_KAFKA_BOOTSTRAP`, or the tests' broker, started where none listens.
fn broker() -> String {
    if let Ok(address) = std::env::var("SLUICE_KAFKA_BOOTSTRAP") {
        return address;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/kafka/start");
    let out = std::process::Command::new(script)
        .output()
        .expect("run tests/servers/kafka/start");
    assert!(
        out.status.success(),
        "the Kafka broker did not start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config.set("log_level", "3");
    config
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().expect("admin");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .expect("create topic")
    {
        r.expect("topic created");
    }
}

async fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().expect("admin");
    let _ = admin.delete_topics(&[topic], &AdminOptions::new()).await;
    // Deletion is asynchronous on the broker: wait until the name is free.
    for _ in 0..100 {
        if records_in(bootstrap, topic).is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("topic {topic} was not deleted");
}

/// Each partition of `topic` with its low and high watermarks; `None` where there is no such
/// topic.
fn watermarks(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, (i64, i64)>> {
    let consumer: BaseConsumer = client(bootstrap).create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    let t = metadata.topics().first()?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(
        t.partitions()
            .iter()
            .map(|p| {
                let marks = consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .expect("watermarks");
                (p.id(), marks)
            })
            .collect(),
    )
}

fn records_in(bootstrap: &str, topic: &str) -> Option<i64> {
    watermarks(bootstrap, topic).map(|w| w.values().map(|(lo, hi)| hi - lo).sum())
}

/// Sends `values` to `topic`, the `i`-th to partition `i % partitions`, as fast as the
/// producer takes them; returns when all are acknowledged.
fn produce_all(bootstrap: &str, topic: &str, partitions: i32, values: &[&[u8]]) {
    let producer: BaseProducer = client(bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()
        .expect("producer");
    for (i, value) in values.iter().enumerate() {
        let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic)
            .payload(*value)
            .partition(i as i32 % partitions);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(_), again)) => {
                    producer.poll(Duration::from_millis(5));
                    record = again;
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    producer.flush(TIMEOUT).expect("flush");
}

/// The input topic with the generated events, produced once and kept between runs.
async fn input_topic(bootstrap: &str, files: &Path, args: &Args) -> String {
    let topic = format!("bench-clicks-{}-{}", args.records, args.partitions);
    if records_in(bootstrap, &topic) == Some(args.records as i64) {
        return topic;
    }
    if records_in(bootstrap, &topic).is_some() {
        delete_topic(bootstrap, &topic).await;
    }
    println!("producing {} records into {topic} ...", args.records);
    create_topic(bootstrap, &topic, args.partitions).await;
    let mut names: Vec<PathBuf> = std::fs::read_dir(files)
        .expect("input files")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let texts: Vec<Vec<u8>> = names
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let values: Vec<&[u8]> = texts
        .iter()
        .flat_map(|t| t.split(|b| *b == b'\n').filter(|l| !l.is_empty()))
        .collect();
    assert_eq!(values.len() as u64, args.records, "generated lines");
    produce_all(bootstrap, &topic, args.partitions, &values);
    assert_eq!(records_in(bootstrap, &topic), Some(args.records as i64));
    topic
}

/// Reads every record of `topic` from the beginning to the end the partitions have now;
/// returns the records and the bytes of their values.
fn drain(bootstrap: &str, topic: &str, read_committed: bool) -> (u64, u64) {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "sluice-bench-drain")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .expect("consumer");
    let marks = watermarks(bootstrap, topic).expect("topic");
    let mut list = TopicPartitionList::new();
    for p in marks.keys() {
        list.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    let mut pending: Vec<i32> = marks
        .iter()
        .filter(|(_, (lo, hi))| hi > lo)
        .map(|(p, _)| *p)
        .collect();
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    while !pending.is_empty() {
        assert!(started.elapsed() < TIMEOUT, "draining {topic} timed out");
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => pending.retain(|q| *q != p),
            Some(Err(e)) => panic!("consume: {e}"),
        }
    }
    (records, bytes)
}

/// One Sluice run of `QUERY` from `input` into a new topic; returns its seconds, its batches'
/// durations and the output topic.
async fn sluice_run(
    bootstrap: &str,
    work: &Path,
    input: &str,
    args: &Args,
) -> (f64, Vec<f64>, String) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let output = unique("bench-out");
    create_topic(bootstrap, &output, args.partitions).await;
    let yaml = format!(
        "name: {name}\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: kafka\n    bootstrap_servers: {bootstrap}\n    topics: [{input}]\n    starting_offsets: earliest\n    max_records_per_batch: {per_batch}\n    format: json\n    schema: {SCHEMA}\nquery: |\n  {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {bootstrap}\n  topic: {output}\n",
        name = unique("bench").replace('-', "_"),
        ckpt = work.join("ckpt").display(),
        per_batch = args.per_batch,
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("bench-kafka.yaml")).expect("pipeline");
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
    assert_eq!(summary.rows_in, args.records, "records read");
    (
        seconds,
        batch_ms(&work.join("ckpt"), summary.batches).await,
        output,
    )
}

/// The rows `QUERY` gives over the generated files, as one DataFusion batch query.
async fn expected_rows(files: &Path) -> u64 {
    let ctx = datafusion::prelude::SessionContext::new();
    let schema = sluice::format::schema_from_sql_types(&common::parse_schema())
        .await
        .expect("schema");
    ctx.register_json(
        "clicks",
        &files.display().to_string(),
        datafusion::prelude::JsonReadOptions::default().schema(&schema),
    )
    .await
    .expect("register");
    ctx.sql(QUERY)
        .await
        .expect("sql")
        .count()
        .await
        .expect("count") as u64
}

/// Runs Spark's baseline; its summary, or `None` (with the reason printed) where it failed.
fn spark_run(
    bootstrap: &str,
    work: &Path,
    input: &str,
    output: &str,
    args: &Args,
) -> Option<serde_json::Value> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/spark-kafka");
    let lib = here.join("lib");
    if !lib.join(".complete").exists() {
        let status = std::process::Command::new("mvn")
            .args(["-q", "-f"])
            .arg(here.join("pom.xml"))
            .args(["dependency:copy-dependencies", "-DincludeScope=runtime"])
            .arg(format!("-DoutputDirectory={}", lib.display()))
            .status()
            .ok()?;
        if !status.success() {
            println!("spark: the Kafka jars did not download (mvn failed)");
            return None;
        }
        std::fs::write(lib.join(".complete"), "").ok()?;
    }
    // pyspark ships Spark, Scala and Hadoop: only the Kafka connector and its own needs.
    let jars: Vec<String> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| {
                [
                    "spark-sql-kafka",
                    "spark-token-provider-kafka",
                    "kafka-clients",
                    "commons-pool2",
                ]
                .iter()
                .any(|prefix| n.starts_with(prefix))
            })
        })
        .map(|p| p.display().to_string())
        .collect();
    let _ = std::fs::remove_dir_all(work);
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/spark_kafka.py"))
        .args([
            "--bootstrap",
            bootstrap,
            "--input",
            input,
            "--output",
            output,
        ])
        .args(["--checkpoint", &work.join("ckpt").display().to_string()])
        .args(["--per-batch", &args.per_batch.to_string()])
        .args(["--jars", &jars.join(",")])
        .output()
        .ok()?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = text.lines().collect();
        println!(
            "spark failed: {}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

/// The latency run: a pipeline triggered every 100 ms copies records produced at `args.rate`
/// per second for `args.seconds`; returns each record's latency in milliseconds (input
/// CreateTime to seen by a `read_committed` consumer) and the batches the run took.
async fn latency(bootstrap: &str, work: &Path, args: &Args) -> (Vec<f64>, u64) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("work");
    let (input, output) = (unique("bench-lat-in"), unique("bench-lat-out"));
    create_topic(bootstrap, &input, args.partitions).await;
    create_topic(bootstrap, &output, args.partitions).await;
    let yaml = format!(
        "name: {name}\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: kafka\n    bootstrap_servers: {bootstrap}\n    topics: [{input}]\n    starting_offsets: earliest\n    format: json\n    schema: {SCHEMA}\n    metadata_columns: [timestamp]\nquery: |\n  SELECT CAST(timestamp AS BIGINT) AS produced_us, user_id, page FROM clicks\ntrigger: every 100ms\nsink:\n  kind: kafka\n  bootstrap_servers: {bootstrap}\n  topic: {output}\n",
        name = unique("bench_lat").replace('-', "_"),
        ckpt = work.join("ckpt").display(),
    );
    let pipeline = Pipeline::parse(&yaml, Path::new("bench-latency.yaml")).expect("pipeline");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move {
        sluice::driver::run(
            &pipeline,
            RunOptions {
                progress: ProgressFormat::None,
                shutdown: Some(shutdown),
                ..RunOptions::default()
            },
        )
        .await
    });

    let total = args.rate * args.seconds;
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (bootstrap, output, done) = (bootstrap.to_string(), output.clone(), Arc::clone(&done));
        let partitions = args.partitions;
        std::thread::spawn(move || {
            let consumer: BaseConsumer = client(&bootstrap)
                .set("group.id", "sluice-bench-latency")
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .set("fetch.wait.max.ms", "5")
                .create()
                .expect("consumer");
            let mut list = TopicPartitionList::new();
            for p in 0..partitions {
                list.add_partition_offset(&output, p, Offset::Beginning)
                    .expect("partition");
            }
            consumer.assign(&list).expect("assign");
            let mut latencies = Vec::with_capacity(total as usize);
            let mut last = Instant::now();
            while (latencies.len() as u64) < total && last.elapsed() < TIMEOUT {
                if done.load(Ordering::Relaxed) && last.elapsed() > Duration::from_secs(10) {
                    break;
                }
                let Some(polled) = consumer.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let m = polled.expect("consume");
                let seen_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock")
                    .as_micros() as f64;
                let row: serde_json::Value =
                    serde_json::from_slice(m.payload().expect("value")).expect("json");
                let produced_us = row["produced_us"].as_f64().expect("produced_us");
                latencies.push((seen_us - produced_us) / 1000.0);
                last = Instant::now();
            }
            latencies
        })
    };

    // Let the pipeline start (its first batch reads the sink's progress topic) before the
    // clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    {
        let (bootstrap, input) = (bootstrap.to_string(), input.clone());
        let (rate, partitions) = (args.rate, args.partitions);
        tokio::task::spawn_blocking(move || {
            let producer: BaseProducer = client(&bootstrap)
                .set("linger.ms", "0")
                .create()
                .expect("producer");
            let started = Instant::now();
            for i in 0..total {
                let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let value = format!(
                    "{{\"ts\":\"2026-11-01T00:00:00Z\",\"user_id\":{i},\"page\":\"home\",\"referrer\":\"r\",\"country\":\"de\",\"duration_ms\":5}}"
                );
                let record: BaseRecord<'_, (), str> = BaseRecord::to(&input)
                    .payload(value.as_str())
                    .partition(i as i32 % partitions);
                producer.send(record).map_err(|(e, _)| e).expect("send");
                producer.poll(Duration::ZERO);
            }
            producer.flush(TIMEOUT).expect("flush");
        })
        .await
        .expect("producer");
    }
    done.store(true, Ordering::Relaxed);
    let latencies = consumer.join().expect("consumer");
    if std::env::var("SLUICE_BENCH_LATENCY_TRACE").is_ok() {
        for (i, l) in latencies.iter().enumerate() {
            if *l > 300.0 {
                println!("  record {i} of {total}: {l:.0} ms");
            }
        }
    }
    stop.send(true).expect("stop");
    let summary = run.await.expect("run").expect("latency run");
    assert_eq!(latencies.len() as u64, total, "rows seen by the consumer");
    (latencies, summary.batches)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let bootstrap = broker();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/data");
    let work = root.join("work-kafka");

    if !args.latency_only {
        let files = root.join(format!("clicks-{}-10", args.records));
        generate(&files, args.records, 10);
        let input = input_topic(&bootstrap, &files, &args).await;
        let expected = expected_rows(&files).await;

        let (mut plain, mut sl, mut batches) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0;
        for run in 0..args.runs {
            let started = Instant::now();
            let (records, b) = drain(&bootstrap, &input, false);
            plain.push(started.elapsed().as_secs_f64());
            assert_eq!(records, args.records, "records drained");
            bytes = b;
            let (seconds, ms, output) = sluice_run(&bootstrap, &work, &input, &args).await;
            let (written, _) = drain(&bootstrap, &output, true);
            assert_eq!(written, expected, "rows a read_committed consumer sees");
            println!(
                "run {run}: plain consumer {:.2} s, sluice {seconds:.2} s ({} batches, {written} rows out)",
                plain[run],
                ms.len()
            );
            sl.push(seconds);
            batches.extend(ms);
            delete_topic(&bootstrap, &output).await;
        }
        let paired = median(sl.iter().zip(&plain).map(|(s, p)| p / s).collect());
        let (plain_s, sl_s) = (median(plain), median(sl));
        let n = args.records as f64;
        println!(
            "\n== {} JSON records ({:.0} MB of values), {} partitions, {} per batch, median of {} runs",
            args.records,
            bytes as f64 / 1e6,
            args.partitions,
            args.per_batch,
            args.runs
        );
        println!(
            "plain consumer (drain)     {plain_s:>8.2} s   {:>12.0} records/s",
            n / plain_s
        );
        println!(
            "sluice kafka -> kafka      {sl_s:>8.2} s   {:>12.0} records/s   median batch {:.0} ms",
            n / sl_s,
            median(batches)
        );
        println!(
            "sluice rate / plain rate   {:>8.2} x   (ratio of medians; median of paired runs {paired:.2} x; target >= 0.5)",
            plain_s / sl_s
        );
        if args.spark {
            // Spark's sink needs the topic there (the broker makes none on its own).
            let output = unique("bench-spark-out");
            create_topic(&bootstrap, &output, args.partitions).await;
            match spark_run(&bootstrap, &work.join("spark"), &input, &output, &args) {
                Some(v) => {
                    let start = v["start_s"].as_f64().unwrap_or(f64::NAN);
                    let stream = v["stream_s"].as_f64().unwrap_or(f64::NAN);
                    let spark_rate = n / stream;
                    let (written, _) = drain(&bootstrap, &output, true);
                    println!(
                        "spark start {start:.1} s, stream {stream:.1} s, {spark_rate:.0} records/s, {} batches, median batch {} ms, {written} rows out",
                        v["batches"], v["median_batch_ms"]
                    );
                    println!(
                        "sluice rate / spark rate   {:>8.1} x   (target >= 10)",
                        n / sl_s / spark_rate
                    );
                    delete_topic(&bootstrap, &output).await;
                }
                None => println!("spark: not run (pip install 'pyspark==4.2.*'; Java 17; mvn)"),
            }
        }
    }

    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let mut maxes = Vec::new();
    let mut batches = 0;
    for run in 0..args.runs {
        let (lat, b) = latency(&bootstrap, &work.join("latency"), &args).await;
        let (p50, p99) = (percentile(lat.clone(), 0.5), percentile(lat.clone(), 0.99));
        let max = percentile(lat, 1.0);
        println!(
            "latency run {run}: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms, {b} batches"
        );
        p50s.push(p50);
        p99s.push(p99);
        maxes.push(max);
        batches = b;
    }
    println!(
        "\n== end-to-end latency, trigger every 100ms, {} records/s for {} s into {} partitions, median of {} runs",
        args.rate, args.seconds, args.partitions, args.runs
    );
    println!(
        "p50 {:.0} ms, p99 {:.0} ms (target < 300 ms), max {:.0} ms; {batches} batches in the last run",
        median(p50s),
        median(p99s),
        median(maxes)
    );
}
