//! The Kafka source and sink against a real Apache Kafka broker (KRaft, one JVM), started by
//! `tests/servers/kafka/start` or reused where one listens (`.ci/run` starts it). Every result
//! is read back by a plain `read_committed` consumer and compared with the same SQL as one
//! DataFusion batch query over the same records.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{JsonReadOptions, SessionContext};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice::sink::SinkConnector;
use sluice::source::SourceConnector;

use crate::common::*;
use crate::contract::{SinkFixture, SourceFixture, sink_contract, source_contract};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The shared broker's bootstrap address: `SLUICE_KAFKA_BOOTSTRAP`, or the broker the start
/// script starts (or finds) on its default port.
pub fn broker() -> &'static str {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER.get_or_init(|| {
        if let Ok(address) = std::env::var("SLUICE_KAFKA_BOOTSTRAP") {
            return address;
        }
        start_broker(None)
    })
}

/// Runs the start script (on `port`, its own data folder, where given) and returns the
/// address it prints.
fn start_broker(port: Option<(u16, &std::path::Path)>) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/kafka/start");
    let mut cmd = Command::new(&script);
    if let Some((port, dir)) = port {
        cmd.env("SLUICE_KAFKA_PORT", port.to_string())
            .env("SLUICE_KAFKA_DIR", dir);
    }
    let out = cmd.output().expect("run the Kafka start script");
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
    config
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Makes `topic` with `partitions` partitions.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, topic, partitions, &[]).await;
}

/// Creates `topic` with `partitions` and the topic settings `configs` (`max.message.bytes`).
pub async fn create_topic_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().expect("admin");
    let new = configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |new, (key, value)| new.set(key, value),
    );
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create topic");
    for r in results {
        r.expect("topic created");
    }
}

/// Sends each of `values` to `topic` (partition `i % partitions` for the `i`-th, keyed by
/// `i`), and waits until all are acknowledged.
pub fn produce(bootstrap: &str, topic: &str, partitions: i32, values: &[Vec<u8>]) {
    let producer: BaseProducer = client(bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (i, value) in values.iter().enumerate() {
        let key = i.to_string();
        let mut record = BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(value.as_slice())
            .partition((i as i32) % partitions);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(_), again)) => {
                    producer.poll(Duration::from_millis(10));
                    record = again;
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(TIMEOUT).expect("flush");
}

/// The rows of `batch` as JSON objects, one per record value.
pub fn json_values(batch: &RecordBatch) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
    w.write(batch).expect("json");
    w.finish().expect("json");
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Every committed value of `topic`, as a `read_committed` consumer reads them (partition by
/// partition, to the last stable offset).
/// A `read_committed` consumer of the tests' group, which says where a partition ends.
fn committed_consumer(bootstrap: &str) -> BaseConsumer {
    client(bootstrap)
        .set("group.id", "sluice-tests")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer")
}

pub fn committed_values(bootstrap: &str, topic: &str) -> Vec<Vec<u8>> {
    committed_values_at(bootstrap, topic)
        .into_iter()
        .map(|(value, _)| value)
        .collect()
}

/// Every committed record of `topic`, as [`committed_values`] reads them: its value and its
/// timestamp (milliseconds since the epoch, as the record carries it).
fn committed_values_at(bootstrap: &str, topic: &str) -> Vec<(Vec<u8>, Option<i64>)> {
    let consumer = committed_consumer(bootstrap);
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    // A committed transaction's markers reach its partitions after the commit returns: until
    // they do, the last stable offset stays behind, and a read there misses the committed
    // records. It is waited for (for a while: a transaction left open holds it back for good).
    let uncommitted: BaseConsumer = client(bootstrap)
        .set("group.id", "sluice-tests")
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("consumer");
    let mut values = Vec::new();
    for p in partitions {
        let settled = Instant::now() + Duration::from_secs(3);
        let (low, high) = loop {
            let (low, stable) = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("watermarks");
            let (_, high) = uncommitted
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("watermarks");
            if stable >= high || Instant::now() > settled {
                break (low, stable);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if high <= low {
            continue;
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, p, Offset::Offset(low))
            .expect("tpl");
        consumer.assign(&list).expect("assign");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "reading {topic}/{p} timed out");
            match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => panic!("consume: {e}"),
                Some(Ok(m)) => {
                    values.push((
                        m.payload().unwrap_or_default().to_vec(),
                        m.timestamp().to_millis(),
                    ));
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
            }
        }
    }
    values
}

/// The committed values of `topic` read as JSON rows in `schema`, as `sql` over the table
/// `sink` gives them (sorted strings).
pub async fn committed_rows(
    bootstrap: &str,
    topic: &str,
    schema: SchemaRef,
    sql: &str,
) -> Vec<String> {
    let values = committed_values(bootstrap, topic);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("values.json");
    let mut text = Vec::new();
    for v in values {
        text.extend_from_slice(&v);
        text.push(b'\n');
    }
    std::fs::write(&file, text).expect("values");
    let ctx = SessionContext::new();
    ctx.register_json(
        "sink",
        file.to_str().expect("utf-8"),
        JsonReadOptions::default().schema(&schema),
    )
    .await
    .expect("register");
    sql_rows(&ctx, sql).await
}

/// Puts `rows` click events from `first` into `topic` (over `partitions`), and the same rows
/// as a JSON file under `ws/in/` for the oracle.
fn add_clicks(ws: &Workspace, topic: &str, partitions: i32, first: i64, rows: i64) {
    let batch = clicks(first, rows);
    produce(broker(), topic, partitions, &json_values(&batch));
    write_batch(
        &ws.path(&format!("in/clicks-{first:06}.json")),
        "json",
        &batch,
    );
}

/// A Kafka source of click events, as a pipeline file's `sources:` entry.
fn kafka_source_yaml(topic: &str, extra: &str) -> String {
    format!(
        "  clicks:\n    kind: kafka\n    bootstrap_servers: {broker}\n    topics: [{topic}]\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n{extra}",
        broker = broker()
    )
}

fn sink_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

fn sluice_run(pipeline: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        pipeline.to_str().expect("utf-8"),
        "--progress",
        "none",
    ];
    args.extend_from_slice(extra);
    sluice_bin().args(&args).output().expect("run sluice")
}

const QUERY: &str = "SELECT id, page, amount FROM clicks WHERE amount > 30";

/// Kafka in, Parquet out: three partitions, a few batches a run, two runs with more records
/// between them; the sink holds the batch query's rows over every record, once.
#[tokio::test]
async fn a_kafka_source_reads_every_record_once_across_runs() {
    let ws = Workspace::new();
    let topic = unique("clicks");
    create_topic(broker(), &topic, 3).await;
    add_clicks(&ws, &topic, 3, 0, 120);
    let yaml = format!(
        "name: k\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        source = kafka_source_yaml(&topic, "    max_records_per_batch: 50\n"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let first = sluice_run(&pipeline, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    add_clicks(&ws, &topic, 3, 120, 80);
    let second = sluice_run(&pipeline, &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    assert_eq!(got, expected);
    // 200 offsets at most 50 a batch: at least 4 batches.
    let offsets = std::fs::read_dir(ws.path("ckpt/offsets"))
        .expect("offsets")
        .count();
    assert!(offsets >= 4, "{offsets} batches");
    // The offsets are Spark's shape, and inspect shows them per partition.
    let out = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains(&format!("{topic}: partition 0 at ")) && text.contains("partition 2 at "),
        "{text}"
    );
    assert!(
        text.contains("lag         clicks: 0 offsets not yet read"),
        "{text}"
    );
    // Records added since the last run are the lag, per partition (30 over 3 partitions).
    add_clicks(&ws, &topic, 3, 200, 30);
    let out = run_bin(&["inspect", "--json", &ws.p("ckpt")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let lag = &view["source_lag"]["clicks"];
    assert_eq!(lag["total"], 30, "{view}");
    let parts = lag["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 3, "{lag}");
    for part in parts {
        assert_eq!(part["lag"], 10, "{lag}");
        assert_eq!(
            part["end"].as_i64(),
            part["offset"].as_i64().map(|o| o + 10),
            "{lag}"
        );
    }
}

/// Files in, Kafka out; then Kafka in (the first pipeline's output), an update-mode
/// aggregation, Kafka out keyed by the group: the newest record of each key is the batch
/// query's row for it.
#[tokio::test]
async fn files_to_kafka_and_kafka_to_a_keyed_aggregation_hold_the_batch_result() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 50, 0);
    let out = unique("filtered");
    create_topic(broker(), &out, 2).await;
    let yaml = format!(
        "name: f2k\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 1\nquery: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  key: CAST(id AS VARCHAR)\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    // Walk 27 (11): a mistake in `key:` was found once the batch was planned, so that the
    // fixed file was refused for the planned batch. It is found first, exit 2, nothing planned.
    // Walk 29 (8): with a header's mistake too, each was said in a run of its own, and a
    // header meant as text (`src: sluice`) was not told to be quoted. Both at once, and how.
    let pipeline = write_pipeline(
        &ws,
        &format!(
            "{}  headers: {{ src: sluice }}\n",
            yaml.replace("CAST(id AS", "CAST(orderid AS")
        ),
    );
    let run = sluice_run(&pipeline, &[]);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "`key: CAST(orderid AS VARCHAR)` is not an expression over the query's columns"
        ) && said.contains("; and `headers.src: sluice` is not an expression")
            && said.contains(
                "write it as SQL text, in single quotes inside YAML's double ones: \
                              `headers.src: \"'sluice'\"`"
            ),
        "{said}"
    );
    assert!(!ws.path("ckpt/offsets/0").exists(), "no batch planned");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = committed_rows(broker(), &out, sink_schema(), "SELECT * FROM sink").await;
    assert_eq!(got, expected);

    // The filtered rows, aggregated per page in update mode, keyed by page.
    let agg = unique("per-page");
    create_topic(broker(), &agg, 2).await;
    let ws2 = Workspace::new();
    let yaml = format!(
        "name: k2k\ncheckpoint: {ckpt}\nsources:\n  rows:\n    kind: kafka\n    bootstrap_servers: {broker}\n    topics: {out}\n    format: json\n    schema: {{ id: bigint, page: string, amount: double }}\n    max_records_per_batch: 40\noutput_mode: update\nquery: SELECT page, count(*) AS n, sum(amount) AS total FROM rows GROUP BY page\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {agg}\n  key: page\n  headers: {{ source: \"'sluice'\" }}\n",
        ckpt = ws2.p("ckpt"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws2, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("total", DataType::Float64, true),
    ]));
    // The newest record per key: records of one key share a partition, in order.
    let values = committed_values(broker(), &agg);
    let mut newest: std::collections::BTreeMap<String, serde_json::Value> = Default::default();
    for v in &values {
        let row: serde_json::Value = serde_json::from_slice(v).expect("json row");
        newest.insert(row["page"].as_str().expect("page").to_string(), row);
    }
    assert!(
        values.len() > newest.len(),
        "update mode wrote some keys more than once"
    );
    let dir = tempfile::tempdir().expect("dir");
    let text: String = newest.values().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.path().join("newest.json"), text).expect("write");
    let ctx = SessionContext::new();
    ctx.register_json(
        "sink",
        dir.path().join("newest.json").to_str().expect("utf-8"),
        JsonReadOptions::default().schema(&schema),
    )
    .await
    .expect("register");
    let got = sql_rows(&ctx, "SELECT page, n, round(total, 6) FROM sink").await;
    let expected = oracle(
        &ws.path("in"),
        "json",
        "SELECT page, count(*) AS n, round(sum(amount), 6) FROM clicks WHERE amount > 30 GROUP BY page",
    )
    .await;
    assert_eq!(got, expected);
}

/// A value that is not JSON of the schema fails the batch naming topic, partition and offset;
/// with `on_error: skip` the run goes on and counts it.
#[tokio::test]
async fn a_bad_value_is_named_by_topic_partition_and_offset() {
    let ws = Workspace::new();
    let topic = unique("bad");
    create_topic(broker(), &topic, 1).await;
    // Offset 2's value is cut short: a JSON decoder reading on would blame the next line.
    let mut values = json_values(&clicks(0, 3));
    values.insert(2, b"{\"id\": 2, \"page\": \"cut".to_vec());
    produce(broker(), &topic, 1, &values);
    // The pending batch keeps the pipeline file it was planned with: the skip run starts over.
    let yaml = |extra: &str, run: &str| {
        format!(
            "name: bad\ncheckpoint: {ckpt}\nsources:\n{source}query: SELECT id FROM clicks\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
            ckpt = ws.p(&format!("ckpt-{run}")),
            out = ws.p(&format!("out-{run}")),
            source = kafka_source_yaml(&topic, extra),
        )
    };
    let pipeline = write_pipeline(&ws, &yaml("", "fail"));
    let run = sluice_run(&pipeline, &[]);
    assert_eq!(run.status.code(), Some(1));
    let err = stderr(&run);
    assert!(
        err.contains(&format!("topic {topic} partition 0 offset 2")),
        "{err}"
    );
    let pipeline = write_pipeline(&ws, &yaml("    on_error: skip\n", "skip"));
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(sink_rows(&ws.path("out-skip")).await, vec!["0", "1", "2"]);
}

/// Walk 101 (2): a raw value that is not UTF-8, cast to text as the README's recipe casts it,
/// failed the batch with "Encountered non UTF-8 data ... from index 32" (a place in Arrow's
/// buffer), no record or way named. The error names the record and `TRY_CAST`, which,
/// followed, reads the other records and a null for it.
#[tokio::test]
async fn a_raw_value_that_is_not_utf8_is_named_by_its_record_with_the_cast_that_reads_it() {
    let ws = Workspace::new();
    let topic = unique("latin1");
    create_topic(broker(), &topic, 1).await;
    let values = vec![
        b"{\"id\":0}".to_vec(),
        b"{\"id\":1}".to_vec(),
        b"{\"id\":2,\"s\":\"\xe9t\xe9\"}".to_vec(),
        b"{\"id\":3}".to_vec(),
    ];
    produce(broker(), &topic, 1, &values);
    let yaml = |cast: &str, run: &str| {
        format!(
            "name: raw\ncheckpoint: {ckpt}\nsources:\n  ev:\n    kind: kafka\n    \
             bootstrap_servers: {broker}\n    topics: [{topic}]\n    format: raw\n\
             query: SELECT \"offset\", json_get_int({cast}(value AS VARCHAR), 'id') AS id FROM ev\n\
             trigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
            ckpt = ws.p(&format!("ckpt-{run}")),
            out = ws.p(&format!("out-{run}")),
            broker = broker(),
        )
    };
    let pipeline = write_pipeline(&ws, &yaml("CAST", "cast"));
    let run = sluice_run(&pipeline, &[]);
    let said = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "a value that is not UTF-8 text is in column `value` of source `ev`: topic {topic} \
             partition 0 offset 2"
        )) && said.contains("`TRY_CAST(value AS VARCHAR)`"),
        "{said}"
    );
    let pipeline = write_pipeline(&ws, &yaml("TRY_CAST", "try"));
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut lines: Vec<String> = std::fs::read_dir(ws.path("out-try"))
        .expect("out")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .expect("read")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "{\"offset\":0,\"id\":0}",
            "{\"offset\":1,\"id\":1}",
            "{\"offset\":2}",
            "{\"offset\":3,\"id\":3}",
        ],
        "every record once, null where the value is not text"
    );
}

/// Walk 101 (3): a topic whose every record retention had removed started at its end, and
/// the run said "0 batches" and nothing else. It says the records are gone, and where the
/// batches start; the records written after it are read.
#[tokio::test]
async fn a_topic_whose_records_are_all_gone_says_so() {
    let ws = Workspace::new();
    let topic = unique("emptied");
    create_topic(broker(), &topic, 1).await;
    add_clicks(&ws, &topic, 1, 0, 5);
    let admin: AdminClient<DefaultClientContext> = client(broker()).create().expect("admin");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&topic, 0, Offset::Offset(5))
        .expect("tpl");
    let deleted =
        admin.delete_records(&list, &AdminOptions::new().operation_timeout(Some(TIMEOUT)));
    assert!(
        deleted.await.expect("delete records").elements()[0]
            .error()
            .is_ok()
    );
    let yaml = format!(
        "name: emptied\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\n\
         trigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        source = kafka_source_yaml(&topic, ""),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains(&format!("topic {topic} holds no record now"))
            && said.contains("partition 0 at 5"),
        "{said}"
    );
    std::fs::remove_dir_all(ws.path("in")).expect("the deleted rows leave the oracle");
    std::fs::create_dir_all(ws.path("in")).expect("in");
    add_clicks(&ws, &topic, 1, 5, 5);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        sink_rows(&ws.path("out")).await,
        oracle(&ws.path("in"), "json", QUERY).await,
        "the records written since, once"
    );
}

/// Walk 101 (6): `replay --verify` of a batch whose range the log cleaner compacted since
/// blamed the query ("its input changed since, or the query is not deterministic"). It says
/// the recomputation read fewer records than the batch, which explains the difference.
#[tokio::test]
async fn a_replay_of_a_range_compacted_since_says_records_are_gone() {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let ws = Workspace::new();
    let topic = unique("cleaned");
    create_topic_with(broker(), &topic, 1, &[("segment.ms", "100")]).await;
    // Each key twice, in segments the cleaner may take (a later record rolls each).
    let producer: BaseProducer = client(broker()).create().expect("producer");
    for round in 0..3 {
        for key in ["a", "b", "c"] {
            let value = format!("{{\"k\":\"{key}\",\"round\":{round}}}");
            producer
                .send(BaseRecord::to(&topic).key(key).payload(value.as_bytes()))
                .expect("send");
        }
        producer.flush(TIMEOUT).expect("flush");
        std::thread::sleep(Duration::from_millis(300));
    }
    let yaml = format!(
        "name: cleaned\ncheckpoint: {ckpt}\nsources:\n  ev:\n    kind: kafka\n    \
         bootstrap_servers: {broker}\n    topics: [{topic}]\n    format: json\n    \
         schema: {{ k: string, round: bigint }}\nquery: SELECT k, round FROM ev\n\
         trigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Compacted from now on; one more record closes the segment the last round is in.
    let admin: AdminClient<DefaultClientContext> = client(broker()).create().expect("admin");
    let compact = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("cleanup.policy", "compact")
        .set("min.cleanable.dirty.ratio", "0.001")
        .set("min.compaction.lag.ms", "0")
        .set("delete.retention.ms", "0");
    admin
        .alter_configs(
            [&compact],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("alter configs")
        .into_iter()
        .for_each(|r| {
            r.expect("compact");
        });
    std::thread::sleep(Duration::from_millis(300));
    producer
        .send(
            BaseRecord::to(&topic)
                .key("z")
                .payload("{\"k\":\"z\",\"round\":9}"),
        )
        .expect("send");
    producer.flush(TIMEOUT).expect("flush");
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_values(broker(), &topic).len() >= 10 {
        assert!(
            Instant::now() < deadline,
            "the log cleaner did not compact {topic}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
        ws.dir.path(),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("input rows where the batch read 9: records are gone")
            && !said.contains("not deterministic"),
        "{said}"
    );
}

/// Walk 101 (1): records a producer compressed with zstd failed every read ("Decompression
/// (codec 0x4) ... failed", librdkafka built without zstd), and a sink refused
/// `compression.type: zstd`. Records of every codec Kafka has are read, and the sink writes
/// zstd.
#[tokio::test]
async fn records_of_every_compression_codec_are_read_and_the_sink_writes_zstd() {
    let ws = Workspace::new();
    let topic = unique("codecs");
    create_topic(broker(), &topic, 1).await;
    let mut expected = Vec::new();
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"]
        .into_iter()
        .enumerate()
    {
        let producer: BaseProducer = client(broker())
            .set("compression.type", codec)
            .create()
            .expect("producer");
        for j in 0..20 {
            let id = i * 100 + j;
            let value = format!("{{\"id\":{id},\"codec\":\"{codec}\"}}");
            producer
                .send(BaseRecord::<(), _>::to(&topic).payload(value.as_bytes()))
                .expect("send");
            expected.push(id.to_string());
        }
        producer.flush(TIMEOUT).expect("flush");
    }
    let out = unique("zstd-out");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: codecs\ncheckpoint: {ckpt}\nsources:\n  ev:\n    kind: kafka\n    \
         bootstrap_servers: {broker}\n    topics: [{topic}]\n    format: json\n    \
         schema: {{ id: bigint, codec: string }}\nquery: SELECT id, codec FROM ev\n\
         trigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  \
         topic: {out}\n  properties: {{ compression.type: zstd }}\n",
        ckpt = ws.p("ckpt"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut got: Vec<String> = committed_values(broker(), &out)
        .iter()
        .map(|v| {
            let row: serde_json::Value = serde_json::from_slice(v).expect("JSON");
            row["id"].to_string()
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every record once");
}

/// With `epoch_unit: milliseconds`, a JSON value's number in a `timestamp` column is epoch
/// milliseconds (Kafka's own unit), read exactly beside text times; without it the value is
/// refused, named by topic, partition and offset.
#[tokio::test]
async fn epoch_numbers_in_values_read_in_the_declared_unit() {
    let ws = Workspace::new();
    let topic = unique("epoch");
    create_topic(broker(), &topic, 1).await;
    let values: Vec<Vec<u8>> = [
        r#"{"ts":1767261601500,"n":1}"#,
        r#"{"ts":"2026-01-01T10:00:02Z","n":2}"#,
        r#"{"ts":-1,"n":3}"#,
    ]
    .iter()
    .map(|v| v.as_bytes().to_vec())
    .collect();
    produce(broker(), &topic, 1, &values);
    let yaml = |extra: &str, run: &str| {
        format!(
            "name: epoch\ncheckpoint: {ckpt}\nsources:\n  e:\n    kind: kafka\n    \
             bootstrap_servers: {broker}\n    topics: [{topic}]\n    format: json\n    \
             schema: {{ ts: timestamp, n: bigint }}\n{extra}query: SELECT ts, n FROM e\n\
             trigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
            broker = broker(),
            ckpt = ws.p(&format!("ckpt-{run}")),
            out = ws.p(&format!("out-{run}")),
        )
    };
    let run = sluice_run(&write_pipeline(&ws, &yaml("", "none")), &[]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains(&format!("topic {topic} partition 0 offset 0")) && err.contains("epoch_unit"),
        "{err}"
    );
    let extra = "    epoch_unit: milliseconds\n";
    let run = sluice_run(&write_pipeline(&ws, &yaml(extra, "ms")), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let written =
        std::fs::read_to_string(ws.path("out-ms/part-0000000000-0000.jsonl")).expect("written");
    assert_eq!(
        written.lines().collect::<Vec<_>>(),
        [
            r#"{"ts":"2026-01-01T10:00:01.500","n":1}"#,
            r#"{"ts":"2026-01-01T10:00:02","n":2}"#,
            r#"{"ts":"1969-12-31T23:59:59.999","n":3}"#,
        ]
    );
}

/// The consumer group's committed offsets, per partition, of `topic`.
fn group_offsets(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = client(broker())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, std::time::Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(rdkafka::Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// Walk 57 (1): `group_id` commits each batch's ends to the consumer group for lag tools,
/// but a batch finished by the next run (after a crash before `commits/N`), and one whose
/// run was killed between `commits/N` and the group commit, never reached the group: lag
/// tools showed records behind for good. The group holds the newest batch's ends in both.
#[tokio::test]
async fn the_consumer_group_holds_the_newest_batch_after_a_crash() {
    let ws = Workspace::new();
    let topic = unique("group-in");
    create_topic(broker(), &topic, 3).await;
    add_clicks(&ws, &topic, 3, 0, 30);
    let group = unique("group");
    let yaml = format!(
        "name: g\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        source = kafka_source_yaml(&topic, &format!("    group_id: {group}\n")),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let crashed = |at: &str| {
        let out = sluice_bin()
            .args([
                "run",
                pipeline.to_str().expect("utf-8"),
                "--progress",
                "none",
            ])
            .env("SLUICE_CRASH_AT", at)
            .output()
            .expect("run");
        assert!(
            stderr(&out).contains("sluice: crash point reached"),
            "{}",
            stderr(&out)
        );
    };
    // Batch 0 is finished by the next run.
    crashed("before:1:commits/0");
    let out = sluice_run(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(group_offsets(&group, &topic, 3), vec![10, 10, 10]);
    // Batch 1 is committed, then the run killed: the next run, with nothing new, shows it.
    add_clicks(&ws, &topic, 3, 30, 30);
    crashed("after:1:commits/1");
    assert_eq!(group_offsets(&group, &topic, 3), vec![10, 10, 10]);
    let out = sluice_run(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !ws.path("ckpt/offsets/2").exists(),
        "a batch with nothing new"
    );
    assert_eq!(group_offsets(&group, &topic, 3), vec![20, 20, 20]);
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

/// A run that crashed right after Kafka committed batch 0 (before `commits/0`) finds that
/// batch's progress record behind hundreds of other pipelines' records in the progress topic
/// (read back from its end a span at a time), and does not write the batch again.
#[tokio::test]
async fn a_committed_batch_is_found_behind_other_pipelines_progress_records() {
    let ws = Workspace::new();
    let input = unique("behind-in");
    create_topic(broker(), &input, 1).await;
    add_clicks(&ws, &input, 1, 0, 30);
    let out = unique("behind-out");
    create_topic(broker(), &out, 1).await;
    let progress = unique("behind-progress");
    let yaml = format!(
        "name: behind\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  progress_topic: {progress}\n",
        ckpt = ws.p("ckpt"),
        broker = broker(),
        source = kafka_source_yaml(&input, ""),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let crashed = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ])
        .env("SLUICE_CRASH_AT", "after:1:commit batch 0")
        .output()
        .expect("run");
    assert!(
        stderr(&crashed).contains("sluice: crash point reached"),
        "{}",
        stderr(&crashed)
    );
    assert!(!ws.path("ckpt/commits/0").exists());
    // Other pipelines' records (other keys) after batch 0's.
    produce(broker(), &progress, 1, &vec![b"{}".to_vec(); 700]);
    let again = sluice_run(&pipeline, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert!(!expected.is_empty());
    let got = committed_rows(broker(), &out, sink_schema(), "SELECT * FROM sink").await;
    assert_eq!(got, expected);
}

/// A review: the progress topic was read as a `read_committed` consumer up to its last
/// stable offset, so another pipeline's transaction open there hid this sink's records
/// committed after it began: a run that died after Kafka committed its batch (before
/// `commits/0`) found no batch written and wrote it again. The read waits for that
/// transaction to end, then finds the batch. And a progress topic made by hand with more
/// partitions than one had the record hashed to any of them, and only partition 0 read: it
/// goes to partition 0.
#[tokio::test]
async fn a_committed_batch_behind_another_producer_s_open_transaction_is_found() {
    let ws = Workspace::new();
    let input = unique("open-in");
    create_topic(broker(), &input, 1).await;
    add_clicks(&ws, &input, 1, 0, 30);
    let out = unique("open-out");
    create_topic(broker(), &out, 1).await;
    let progress = unique("open-progress");
    create_topic(broker(), &progress, 3).await;
    let yaml = format!(
        "name: open\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  progress_topic: {progress}\n",
        ckpt = ws.p("ckpt"),
        broker = broker(),
        source = kafka_source_yaml(&input, ""),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    // Stopped before batch 0's progress record, while another producer opens a transaction
    // in the progress topic; let go, it commits batch 0 in Kafka and dies before `commits/0`.
    let other: BaseProducer = client(broker())
        .set("transactional.id", unique("other-pipeline"))
        .create()
        .expect("producer");
    let crashed = run_stopped_with(
        &pipeline,
        ws.dir.path(),
        "progress of batch 0",
        &Crash::Before.env(1, "commits/0"),
        || {
            other.init_transactions(TIMEOUT).expect("init");
            other.begin_transaction().expect("begin");
            other
                .send(
                    BaseRecord::<[u8], [u8]>::to(&progress)
                        .partition(0)
                        .key(&b"another pipeline"[..])
                        .payload(&b"{}"[..]),
                )
                .expect("send");
            other.flush(TIMEOUT).expect("flush");
        },
    );
    assert!(
        stderr(&crashed).contains("sluice: crash point reached"),
        "{}",
        stderr(&crashed)
    );
    assert!(!ws.path("ckpt/commits/0").exists());
    // Run again with that transaction still open (committed two seconds in).
    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        other.commit_transaction(TIMEOUT).expect("commit");
    });
    let again = sluice_run(&pipeline, &[]);
    committer.join().expect("committer");
    assert!(again.status.success(), "{}", stderr(&again));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert!(!expected.is_empty());
    let got = committed_rows(broker(), &out, sink_schema(), "SELECT * FROM sink").await;
    assert_eq!(got, expected, "each row once");
}

/// Records of aborted transactions are never read; a range ends across the control records
/// at its end.
#[tokio::test]
async fn records_of_aborted_transactions_are_not_read() {
    let ws = Workspace::new();
    let topic = unique("txn");
    create_topic(broker(), &topic, 1).await;
    let producer: BaseProducer = client(broker())
        .set("transactional.id", unique("test-txn"))
        .create()
        .expect("producer");
    producer.init_transactions(TIMEOUT).expect("init");
    let committed = json_values(&clicks(0, 10));
    let aborted = json_values(&clicks(100, 5));
    for (values, commit) in [
        (&committed[..5], true),
        (&aborted[..], false),
        (&committed[5..], true),
    ] {
        producer.begin_transaction().expect("begin");
        for v in values {
            producer
                .send(BaseRecord::<[u8], [u8]>::to(&topic).payload(v.as_slice()))
                .expect("send");
        }
        producer.flush(TIMEOUT).expect("flush");
        if commit {
            producer.commit_transaction(TIMEOUT).expect("commit");
        } else {
            producer.abort_transaction(TIMEOUT).expect("abort");
        }
    }
    let yaml = format!(
        "name: txn\ncheckpoint: {ckpt}\nsources:\n{source}query: SELECT id FROM clicks\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        source = kafka_source_yaml(&topic, "    max_records_per_batch: 4\n"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    // Walk 57 (2): a transaction left open holds the end a `read_committed` read sees, and
    // inspect said 0 behind where lag tools count from the log's end. The records held back
    // are said, and `--json` gives the topic and partition as fields.
    producer.begin_transaction().expect("begin");
    for v in &aborted[..3] {
        producer
            .send(BaseRecord::<[u8], [u8]>::to(&topic).payload(v.as_slice()))
            .expect("send");
    }
    producer.flush(TIMEOUT).expect("flush");
    let out = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(0 behind; 3 more offsets held back by a transaction still open"),
        "{text}"
    );
    let out = run_bin(&["inspect", "--json", &ws.p("ckpt")], ws.dir.path());
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let part = &view["source_lag"]["clicks"]["parts"][0];
    assert_eq!(part["topic"], topic.as_str(), "{view}");
    assert_eq!(part["partition"], 0, "{view}");
    assert_eq!(part["held_back"], 3, "{view}");
    producer.abort_transaction(TIMEOUT).expect("abort");
}

/// Kafka to Kafka through every crash point: every checkpoint write and every step of the
/// sink's transaction (its rows, its progress record, its commit), before, after, and after
/// as a power loss; each crashed run is restarted in a fresh process, and a `read_committed`
/// reader of the output topic then holds each expected row exactly once.
#[tokio::test]
async fn every_crash_point_of_a_kafka_to_kafka_run_recovers_exactly_once() {
    let input = unique("crash-in");
    create_topic(broker(), &input, 2).await;
    let oracle_ws = Workspace::new();
    add_clicks(&oracle_ws, &input, 2, 0, 40);
    let expected = oracle(&oracle_ws.path("in"), "json", QUERY).await;
    let setup = |ws: &Workspace, out: &str| {
        format!(
            "name: crash\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\nretain_batches: 2\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n",
            ckpt = ws.p("ckpt"),
            broker = broker(),
            source = kafka_source_yaml(&input, "    max_records_per_batch: 20\n"),
        )
    };
    // A clean run counts the writes.
    let clean = Workspace::new();
    let clean_out = unique("crash-out");
    create_topic(broker(), &clean_out, 2).await;
    let pipeline = write_pipeline(&clean, &setup(&clean, &clean_out));
    let writes = clean_run_writes(&clean, &pipeline);
    assert!(
        writes
            .iter()
            .any(|w| w.contains("external kafka://") && w.contains("commit batch 1")),
        "the sink's steps are crash points: {writes:?}"
    );
    assert_eq!(
        committed_rows(broker(), &clean_out, sink_schema(), "SELECT * FROM sink").await,
        expected
    );
    let mut reached = 0;
    for (k, write) in (1..).zip(&writes) {
        for crash in Crash::ALL {
            let ws = Workspace::new();
            let out = unique("crash-out");
            create_topic(broker(), &out, 2).await;
            let pipeline = write_pipeline(&ws, &setup(&ws, &out));
            let crashed = run_quietly(&pipeline, &crash.env(k, ""));
            assert!(
                stderr(&crashed).contains("sluice: crash point reached"),
                "{crash:?} write {write} not reached: {}",
                stderr(&crashed)
            );
            reached += 1;
            let again = sluice_run(&pipeline, &[]);
            assert!(
                again.status.success(),
                "restart after {crash:?} write {write}: {}",
                stderr(&again)
            );
            let got = committed_rows(broker(), &out, sink_schema(), "SELECT * FROM sink").await;
            let (_, dupes, lost) = compare(&expected, &got);
            assert_eq!((dupes, lost), (0, 0), "{crash:?} write {write}");
        }
    }
    println!(
        "kafka crash points: {} writes, {reached} crash points reached and recovered",
        writes.len()
    );
}

/// A run stopped (SIGSTOP) inside a batch's Kafka transaction while a newer run takes over
/// and finishes, then resumed (SIGCONT), commits nothing to the output topic: stopped after
/// sending its rows, and stopped after its fence check, right before its commit. The
/// checkpoint is on S3 (moto), where no lock keeps the newer run out, as on any object store.
#[tokio::test]
async fn a_run_paused_inside_its_transaction_commits_nothing_when_resumed() {
    let moto = crate::s3::Moto::start();
    for stop_at in ["rows of batch 1", "commit batch 1"] {
        let ws = Workspace::new();
        let input = unique("zombie-in");
        let out = unique("zombie-out");
        create_topic(broker(), &input, 1).await;
        create_topic(broker(), &out, 1).await;
        add_clicks(&ws, &input, 1, 0, 30);
        // `now()` makes a late run's rows differ from the newer run's.
        let query =
            "SELECT id, page, amount, CAST(now() AS VARCHAR) AS at FROM clicks WHERE amount > 30";
        let yaml = format!(
            "name: zombie\ncheckpoint: s3://sluice/{ckpt}\nsources:\n{source}query: {query}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n",
            ckpt = unique("zombie-ckpt"),
            broker = broker(),
            source = kafka_source_yaml(&input, "    max_records_per_batch: 10\n"),
        );
        let pipeline = write_pipeline(&ws, &yaml);
        let pipeline = pipeline.to_str().expect("utf-8");
        let mut old = moto
            .sluice()
            .args(["run", pipeline, "--progress", "none"])
            .env("SLUICE_STOP_AT", stop_at)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        wait_stopped(&old);
        let newer = moto
            .sluice()
            .args(["run", pipeline, "--progress", "none"])
            .output()
            .expect("newer run");
        assert!(newer.status.success(), "{}", stderr(&newer));
        let before = committed_values(broker(), &out);
        Command::new("kill")
            .args(["-CONT", &old.id().to_string()])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = old.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the resumed run did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        old.stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("stderr");
        assert_eq!(status.code(), Some(1), "{stop_at}: {err}");
        assert!(err.contains("a newer run (epoch 1)"), "{stop_at}: {err}");
        assert_eq!(
            committed_values(broker(), &out),
            before,
            "{stop_at}: the late run committed nothing"
        );
        let expected = oracle(&ws.path("in"), "json", QUERY).await;
        let got = committed_rows(
            broker(),
            &out,
            sink_schema(),
            "SELECT id, page, amount FROM sink",
        )
        .await;
        assert_eq!(got, expected, "{stop_at}");
    }
}

/// No broker at the sink's address: each attempt is told at once that nothing listens there
/// (not after librdkafka's minute), and the run exits 1 naming the brokers, having committed
/// nothing.
#[test]
fn a_sink_whose_brokers_do_not_answer_names_them_after_its_retries() {
    let ws = Workspace::new();
    write_batch(&ws.path("in/clicks.json"), "json", &clicks(0, 5));
    // No `schema:`: the run infers one and pins it in the checkpoint.
    let yaml = format!(
        "name: nobroker
checkpoint: {ckpt}
sources:
  clicks: {{ kind: files, path: {input}, \
         format: json }}
query: {QUERY}
trigger: available-now
\
         sink:\n  kind: kafka\n  bootstrap_servers: 127.0.0.1:1\n  topic: t\n  \
         retry: {{ attempts: 2, backoff: 100ms, timeout: 2s }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
    );
    let started = Instant::now();
    let run = sluice_run(&write_pipeline(&ws, &yaml), &[]);
    let took = started.elapsed();
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("at 127.0.0.1:1")
            && err.contains("no broker takes a connection (127.0.0.1:1: connection refused)")
            && err.contains("after 2 attempts"),
        "{err}"
    );
    // Two attempts and a backoff, not a minute each.
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Walk 33 (2): failed before its first batch, the run leaves no checkpoint behind (its
    // pinned schema is inferred again), as a PostgreSQL sink's run does.
    assert!(!ws.path("ckpt").exists(), "the new checkpoint is removed");
}

/// Walk 121 (3): a broker address filled in from a `${VAR}` was masked in the final error but
/// shown in each retry's warning and in librdkafka's log lines. Every line written is masked.
#[test]
fn a_broker_filled_in_from_a_variable_is_masked_in_every_line() {
    let ws = Workspace::new();
    write_batch(&ws.path("in/clicks.json"), "json", &clicks(0, 5));
    let yaml = format!(
        "name: masked\ncheckpoint: {ckpt}\nsources:\n  clicks: {{ kind: files, path: {input}, \
         format: json }}\nquery: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  \
         bootstrap_servers: \"${{W121_BROKER}}:19092\"\n  topic: t\n  retry: {{ attempts: 2, \
         backoff: 100ms, timeout: 2s }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
    );
    let secret = "nosuchbrokerw121secret";
    let run = run_quietly(
        &write_pipeline(&ws, &yaml),
        &[("W121_BROKER", secret.to_string())],
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        !err.contains(secret) && err.contains("(attempt 1 of 2)") && err.contains("***"),
        "{err}"
    );
}

/// Walk 60 (9): a sink with SASL set against a PLAINTEXT listener (which closes the connection
/// without a word) was said as "no broker answered: is Kafka running there?". The protocol
/// set is named as what to check.
#[test]
fn a_sink_whose_protocol_the_listener_does_not_take_names_it() {
    let ws = Workspace::new();
    write_batch(&ws.path("in/clicks.json"), "json", &clicks(0, 5));
    let yaml = format!(
        "name: sasl\ncheckpoint: {ckpt}\nsources:\n  clicks: {{ kind: files, path: {input}, \
         format: json }}\nquery: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  \
         bootstrap_servers: {broker}\n  topic: t\n  properties: {{ security.protocol: \
         SASL_PLAINTEXT, sasl.mechanism: PLAIN, sasl.username: u, sasl.password: \
         \"${{HOME}}\" }}\n  retry: {{ attempts: 1, timeout: 3s }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let run = sluice_run(&write_pipeline(&ws, &yaml), &[]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("does its listener there take `security.protocol: SASL_PLAINTEXT`?"),
        "{err}"
    );
}

/// Walk 28: a Kafka source at a port where nothing listens took some 90 s (three attempts of
/// librdkafka's request timeout), logging each refused connection; it says so at once, per
/// attempt, naming the address, and exits 1 after its retries.
#[test]
fn a_source_whose_brokers_do_not_listen_is_said_at_once() {
    let ws = Workspace::new();
    let yaml = format!(
        "name: nolistener\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: kafka\n    \
         bootstrap_servers: 127.0.0.1:1\n    topics: [t]\n    retry: {{ attempts: 2, backoff: \
         100ms }}\nquery: SELECT * FROM clicks\ntrigger: available-now\nsink: {{ kind: files, \
         path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
    );
    let started = Instant::now();
    let run = sluice_run(&write_pipeline(&ws, &yaml), &[]);
    let took = started.elapsed();
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "cannot list the partitions and their offsets at 127.0.0.1:1: no broker \
                      takes a connection (127.0.0.1:1: connection refused)"
        ) && err.contains("after 2 attempts")
            && !err.contains("librdkafka"),
        "{err}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(!ws.path("ckpt").exists(), "a checkpoint left behind");
}

/// The broker stops mid-run: the run retries as configured, then exits 1 naming the brokers;
/// with the broker back, the next run finishes with every row once.
#[tokio::test]
async fn a_broker_that_stops_mid_run_fails_the_run_cleanly_and_the_next_run_finishes() {
    let ws = Workspace::new();
    let port = 29192 + (std::process::id() % 500) as u16 * 2;
    let dir = ws.path("broker");
    let bootstrap = start_broker(Some((port, &dir)));
    let stop = || {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/kafka/start");
        let out = Command::new(&script)
            .arg("--stop")
            .env("SLUICE_KAFKA_PORT", port.to_string())
            .env("SLUICE_KAFKA_DIR", &dir)
            .output()
            .expect("stop");
        assert!(out.status.success());
    };
    let input = unique("down-in");
    let out = unique("down-out");
    create_topic(&bootstrap, &input, 1).await;
    create_topic(&bootstrap, &out, 1).await;
    let batch = clicks(0, 40);
    produce(&bootstrap, &input, 1, &json_values(&batch));
    write_batch(&ws.path("in/clicks.json"), "json", &batch);
    let retry = "    retry: { attempts: 2, backoff: 200ms, timeout: 3s }\n";
    let yaml = format!(
        "name: down\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: kafka\n    bootstrap_servers: {bootstrap}\n    topics: [{input}]\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_records_per_batch: 10\n{retry}query: {QUERY}\ntrigger: \"every 1s\"\nsink:\n  kind: kafka\n  bootstrap_servers: {bootstrap}\n  topic: {out}\n  retry: {{ attempts: 2, backoff: 200ms, timeout: 3s }}\n",
        ckpt = ws.p("ckpt"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let mut run = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::BufRead;
        let mut events = std::io::BufReader::new(run.stdout.take().expect("stdout")).lines();
        let first = events.next().expect("a batch").expect("read");
        assert!(first.contains("\"batchId\":0"), "{first}");
    }
    stop();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not give up");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    run.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&bootstrap) || err.contains("after 2 attempts"),
        "the error names the brokers or the attempts: {err}"
    );
    let back = start_broker(Some((port, &dir)));
    assert_eq!(back, bootstrap);
    let finish = sluice_run(&pipeline, &["--trigger", "available-now"]);
    let got = committed_rows(&bootstrap, &out, sink_schema(), "SELECT * FROM sink").await;
    stop();
    assert!(finish.status.success(), "{}", stderr(&finish));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(got, expected);
}

/// JSON click records over two partitions, five per partition per round, at most six offsets
/// a batch.
struct KafkaSourceFixture {
    topic: String,
    sent: i64,
}

impl SourceFixture for KafkaSourceFixture {
    fn connector(&self) -> Arc<dyn SourceConnector> {
        let yaml = format!(
            "bootstrap_servers: {}\ntopics: [{}]\nformat: json\nschema: {{ id: bigint, name: string }}\nmetadata_columns: [partition, offset]\nmax_records_per_batch: 6",
            broker(),
            self.topic
        );
        sluice::source::configure("kafka", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
            .expect("kafka")
    }

    fn add_input(&mut self, round: usize) -> bool {
        let values: Vec<Vec<u8>> = (0..10)
            .map(|i| {
                format!("{{\"id\":{},\"name\":\"round {round}\"}}", self.sent + i).into_bytes()
            })
            .collect();
        self.sent += 10;
        produce(broker(), &self.topic, 2, &values);
        true
    }

    fn lose_input(&mut self) -> Option<String> {
        let admin: AdminClient<DefaultClientContext> = client(broker()).create().expect("admin");
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&self.topic, 0, Offset::Offset(2))
            .expect("tpl");
        let deleted = futures::executor::block_on(
            admin.delete_records(&list, &AdminOptions::new().operation_timeout(Some(TIMEOUT))),
        )
        .expect("delete records");
        assert!(deleted.elements()[0].error().is_ok());
        Some(format!("{} partition 0 offsets 0 to 1", self.topic))
    }
}

#[tokio::test]
async fn the_kafka_source_keeps_the_source_contract() {
    let topic = unique("contract-source");
    create_topic(broker(), &topic, 2).await;
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let mut fixture = KafkaSourceFixture { topic, sent: 0 };
    source_contract(&mut fixture, &checkpoint).await;

    // An empty range (a batch the watermark alone runs) is a table with no rows.
    let connector = fixture.connector();
    let mut source = connector
        .open("empty", &checkpoint, None, false)
        .await
        .expect("open");
    let end = source
        .plan(
            sluice::checkpoint::BatchId(0),
            None,
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan")
        .expect("records there");
    let input = source
        .read(Some(&end), &end, None)
        .await
        .expect("empty range");
    assert_eq!(input.rows, 0);
    let table = input.into_table().expect("an empty range is a table");
    drop(table);
}

/// An output topic of two partitions, keyed by id; read back by a `read_committed` consumer.
struct KafkaSinkFixture {
    topic: String,
}

#[async_trait::async_trait]
impl SinkFixture for KafkaSinkFixture {
    fn connector(&self) -> Arc<dyn SinkConnector> {
        let yaml = format!(
            "bootstrap_servers: {}\ntopic: {}\nkey: CAST(id AS VARCHAR)\nretry: {{ backoff: 100ms }}",
            broker(),
            self.topic
        );
        sluice::sink::configure("kafka", &serde_yaml::from_str(&yaml).expect("yaml"))
            .expect("kafka")
    }

    async fn visible_rows(&self) -> Option<Vec<String>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        Some(committed_rows(broker(), &self.topic, schema, "SELECT * FROM sink").await)
    }

    fn log_entries(&self) -> Option<usize> {
        None
    }

    fn interrupted_through_stores(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn the_kafka_sink_keeps_the_sink_contract() {
    let topic = unique("contract-sink");
    create_topic(broker(), &topic, 2).await;
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    sink_contract(&KafkaSinkFixture { topic }, &checkpoint).await;
}

/// What the `kafka` feature adds is refused by name without it: here, with it, the kinds are
/// registered.
#[test]
fn kafka_kinds_are_registered() {
    assert!(sluice::source::KINDS.iter().any(|k| k.name == "kafka"));
    assert!(sluice::sink::KINDS.iter().any(|k| k.name == "kafka"));
}

/// Walk 16: a topic that does not exist is the pipeline's mistake: exit 2 naming it and the
/// way out, and the new checkpoint and sink folders are not left behind; made, it is read.
#[tokio::test]
async fn a_topic_that_does_not_exist_is_refused_and_leaves_nothing_behind() {
    let ws = Workspace::new();
    let topic = unique("missing");
    let yaml = format!(
        "name: k\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        source = kafka_source_yaml(&topic, ""),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let refused = sluice_run(&pipeline, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!("topic `{topic}` does not exist at"))
            && stderr(&refused).contains("fix `topics:`"),
        "{}",
        stderr(&refused)
    );
    assert!(!ws.path("ckpt").exists(), "the checkpoint left behind");
    assert!(!ws.path("out").exists(), "the sink folder left behind");
    create_topic(broker(), &topic, 1).await;
    add_clicks(&ws, &topic, 1, 0, 30);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 20 (5): a per-partition starting offset past the partition's end was taken without
/// a word, and the run waited for records that the offset (of another cluster, or of the
/// topic before it was made anew) never names. Refused before a batch (exit 2), naming the
/// partition and what it holds; an offset inside it then starts there.
#[tokio::test]
async fn a_starting_offset_past_the_partition_end_is_refused() {
    let ws = Workspace::new();
    let topic = unique("past_end");
    create_topic(broker(), &topic, 1).await;
    add_clicks(&ws, &topic, 1, 0, 10);
    add_clicks(&ws, &topic, 1, 10, 20);
    let pipeline = |offset: i64| {
        let yaml = format!(
            "name: k\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
            ckpt = ws.p("ckpt"),
            out = ws.p("out"),
            source = kafka_source_yaml(
                &topic,
                &format!("    starting_offsets: {{{topic}: {{0: {offset}}}}}\n")
            ),
        );
        write_pipeline(&ws, &yaml)
    };
    let refused = sluice_run(&pipeline(500), &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "gives {topic} partition 0 the offset 500, past its end"
        )) && said.contains("holds offsets 0 to 29"),
        "{said}"
    );
    assert!(!ws.path("ckpt").exists(), "the checkpoint left behind");
    let run = sluice_run(&pipeline(10), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    // Walk 23: a start edited after the first batch changed nothing without a word.
    let run = sluice_run(&pipeline(20), &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains("`starting_offsets` changed since the checkpoint's batches ran")
            && said.contains("run on a new checkpoint with a new, empty `sink.path`"),
        "{said}"
    );
    std::fs::remove_file(ws.path("in/clicks-000000.json")).expect("before the start");
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert!(!expected.is_empty());
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    // Walk 21 (4): a partition a named topic's map leaves out started at the earliest offset
    // without a word; refused, as Spark refuses it.
    let ws = Workspace::new();
    let two = unique("two_partitions");
    create_topic(broker(), &two, 2).await;
    let yaml = format!(
        "name: k\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        source = kafka_source_yaml(
            &two,
            &format!("    starting_offsets: {{{two}: {{0: 0}}}}\n")
        ),
    );
    let refused = sluice_run(&write_pipeline(&ws, &yaml), &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("gives {two} no offset for partition(s) 1")),
        "{said}"
    );
    // Walk 22: a partition the topic does not have is named with the partitions it has, not
    // with end offsets that count transaction markers.
    let yaml = yaml.replace(
        &format!("{{{two}: {{0: 0}}}}"),
        &format!("{{{two}: {{0: 0, 1: 0, 5: 0}}}}"),
    );
    let refused = sluice_run(&write_pipeline(&ws, &yaml), &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "names {two} partition 5, which the source does not read: {two} has 2 partition(s), numbered 0, 1"
        )),
        "{said}"
    );
}

/// Walk 19 (6): a Kafka sink writing the topic its own source reads was accepted, and every
/// run read its own output again. Refused at planning (exit 2), by name or by pattern, on a
/// broker the source names; another topic runs.
#[test]
fn a_sink_topic_its_source_reads_is_refused() {
    let ws = Workspace::new();
    for (source, sink) in [
        (
            "topics: [loop]",
            "bootstrap_servers: 127.0.0.1:1\n  topic: loop",
        ),
        (
            "topic_pattern: \"lo.*\"",
            "bootstrap_servers: \"10.0.0.9:9, 127.0.0.1:1\"\n  topic: loop",
        ),
        // Walk 20: one broker under two names.
        (
            "topics: [loop]",
            "bootstrap_servers: localhost:1\n  topic: loop",
        ),
    ] {
        let yaml = format!(
            "name: loop\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: kafka\n    bootstrap_servers: 127.0.0.1:1\n    {source}\nquery: SELECT value FROM s\ntrigger: available-now\nsink:\n  kind: kafka\n  {sink}\n",
            ckpt = ws.p("ckpt"),
        );
        let out = sluice_run(&write_pipeline(&ws, &yaml), &[]);
        assert_eq!(out.status.code(), Some(2), "{source}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("`sink.topic` (kafka://")
                && stderr(&out).contains("is a stream that source `s` reads"),
            "{source}: {}",
            stderr(&out)
        );
        assert!(!ws.path("ckpt").exists(), "{source}: a checkpoint left");
    }
}

/// Writes pipeline `name`: the clicks files of `ws/in` (with `source_extra` source lines)
/// through `query` into `topic`, the sink trying a batch three times, 2 s apart.
fn files_to_kafka_retrying(
    ws: &Workspace,
    name: &str,
    query: &str,
    topic: &str,
    source_extra: &str,
) -> std::path::PathBuf {
    let yaml = format!(
        "name: {name}\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n{source_extra}query: {query}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {topic}\n  retry: {{ attempts: 3, backoff: 2s }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    write_pipeline(ws, &yaml)
}

/// Audit 89a: a progress record grown past `message.max.bytes` (it carries the offsets of
/// every batch the checkpoint keeps) failed its batch, and lowering `retain_batches`, as the
/// error said, changed nothing: the record kept what the last one had. Lowered, the next
/// record keeps what the pipeline now says, and every row is written once.
#[tokio::test]
async fn a_lowered_retain_batches_shrinks_the_progress_record_at_once() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 40, 1, 0);
    let out = unique("retained");
    create_topic(broker(), &out, 1).await;
    let yaml = |retain: u64| {
        format!(
            "name: retained\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    \
             path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    \
             max_files_per_batch: 1\nquery: SELECT id FROM clicks\ntrigger: available-now\n\
             retain_batches: {retain}\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  \
             topic: {out}\n  properties: {{ message.max.bytes: \"1500\" }}\n",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            broker = broker(),
        )
    };
    let failed = sluice_run(&write_pipeline(&ws, &yaml(100)), &[]);
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(said.contains("lower `retain_batches`"), "{said}");
    // The failed batch stays planned with the file it was planned with: the edit applies
    // from the next, and the failure names the rewind that plans it again with the edit.
    let pipeline = write_pipeline(&ws, &yaml(3));
    let again = sluice_run(&pipeline, &[]);
    let said = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{said}");
    let rewind = said
        .split('`')
        .find(|part| part.starts_with("sluice rewind "))
        .unwrap_or_else(|| panic!("no rewind in: {said}"));
    let args: Vec<&str> = rewind.split_whitespace().skip(1).collect();
    let rewound = run_bin(&args, ws.dir.path());
    assert!(rewound.status.success(), "{}", stderr(&rewound));
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut ids: Vec<String> = committed_values(broker(), &out)
        .iter()
        .map(|v| String::from_utf8_lossy(v).to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(committed_values(broker(), &out).len(), 40);
    assert_eq!(ids.len(), 40);
}

/// Walk 19 (9): a record larger than the producer takes was tried again as often as
/// `retry.attempts` says, though no attempt could write it, and the error named neither the
/// row nor its size. It fails at once, naming both and the way out, which works.
#[tokio::test]
async fn a_record_too_large_is_named_with_its_size_and_not_tried_again() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    let big = "x".repeat(1_500_000);
    std::fs::write(
        ws.path("in/0.json"),
        format!(
            "{{\"id\":1,\"page\":\"home\",\"amount\":1.0}}\n\
             {{\"id\":2,\"page\":\"{big}\",\"amount\":2.0}}\n"
        ),
    )
    .expect("input");
    let out = unique("large");
    create_topic(broker(), &out, 1).await;
    let pipeline = |query: &str| files_to_kafka_retrying(&ws, "large", query, &out, "");
    let failed = sluice_run(&pipeline("SELECT id, page FROM clicks"), &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let said = stderr(&failed);
    assert!(
        said.contains("the batch's row 1: its record is 1500")
            && said.contains("`message.max.bytes`")
            && !said.contains("retrying"),
        "{said}"
    );
    // Smaller in the query, on a new checkpoint, as the failure says (the failed batch
    // stays planned otherwise).
    assert!(
        said.contains("stays planned") && said.contains(&format!("remove {}", ws.p("ckpt"))),
        "{said}"
    );
    std::fs::remove_dir_all(ws.path("ckpt")).expect("fresh checkpoint");
    let run = sluice_run(
        &pipeline("SELECT id, substr(page, 1, 10) AS page FROM clicks"),
        &[],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
    ]));
    let got = committed_rows(broker(), &out, schema, "SELECT * FROM sink").await;
    assert_eq!(got, ["1|home", "2|xxxxxxxxxx"]);
}

/// Walk 19 (leftover): a record under the producer's limit but over the topic's
/// `max.message.bytes` was tried `retry.attempts` times and ended in librdkafka's "Erroneous
/// state". The broker's refusal is named at once, with the record's size and the topic's
/// setting, and the rewind the failure advises lets the edited query write every row once.
#[tokio::test]
async fn a_record_the_broker_refuses_as_too_large_is_named_and_not_tried_again() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"page\":\"home\",\"amount\":1.0}\n",
    )
    .expect("input");
    let out = unique("small_topic");
    create_topic_with(broker(), &out, 1, &[("max.message.bytes", "2000")]).await;
    let pipeline = |query: &str| {
        files_to_kafka_retrying(&ws, "small", query, &out, "    max_files_per_batch: 1\n")
    };
    let run = sluice_run(&pipeline("SELECT id, page FROM clicks"), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let big = "x".repeat(5_000);
    std::fs::write(
        ws.path("in/1.json"),
        // Rows after the refused one: their sends fail only with the transaction's state.
        format!(
            "{{\"id\":2,\"page\":\"{big}\",\"amount\":2.0}}\n\
             {{\"id\":3,\"page\":\"about\",\"amount\":3.0}}\n\
             {{\"id\":4,\"page\":\"cart\",\"amount\":4.0}}\n"
        ),
    )
    .expect("input");
    let failed = sluice_run(&pipeline("SELECT id, page FROM clicks"), &[]);
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the broker refused a record of")
            && said.contains("`max.message.bytes`")
            && !said.contains("retrying")
            && !said.contains("Erroneous state"),
        "{said}"
    );
    assert!(
        said.contains(&format!("`sluice rewind {} --to 0`", ws.p("ckpt"))),
        "{said}"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let run = sluice_run(
        &pipeline("SELECT id, substr(page, 1, 10) AS page FROM clicks"),
        &[],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
    ]));
    let got = committed_rows(broker(), &out, schema, "SELECT * FROM sink").await;
    assert_eq!(got, ["1|home", "2|xxxxxxxxxx", "3|about", "4|cart"]);
}

/// A `key:` expression that fails on one row (a cast of text that is no number) was tried
/// `retry.attempts` times, each with a new producer, as if the broker had failed, and the error
/// named neither the row nor the setting. It fails at once, naming both, and nothing of the
/// batch is visible; the expression mended, every row is written once.
#[tokio::test]
async fn a_key_expression_that_fails_on_a_row_is_named_and_not_tried_again() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"page\":\"12\",\"amount\":1.0}\n\
         {\"id\":2,\"page\":\"home\",\"amount\":2.0}\n",
    )
    .expect("input");
    let out = unique("bad_key");
    create_topic(broker(), &out, 1).await;
    let pipeline = |key: &str| {
        let yaml = format!(
            "name: badkey\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\nquery: SELECT id, page FROM clicks\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  key: \"{key}\"\n  retry: {{ attempts: 3, backoff: 2s }}\n",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            broker = broker(),
        );
        write_pipeline(&ws, &yaml)
    };
    let failed = sluice_run(&pipeline("CAST(page AS BIGINT)"), &[]);
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the batch's row 1: `key: CAST(page AS BIGINT)` fails on it")
            && said.contains("'home'")
            && !said.contains("retrying"),
        "{said}"
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("page", DataType::Utf8, true),
    ]));
    let none = committed_rows(broker(), &out, Arc::clone(&schema), "SELECT * FROM sink").await;
    assert!(none.is_empty(), "{none:?}");
    std::fs::remove_dir_all(ws.path("ckpt")).expect("fresh checkpoint");
    let run = sluice_run(&pipeline("coalesce(TRY_CAST(page AS BIGINT), id)"), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let got = committed_rows(broker(), &out, schema, "SELECT * FROM sink").await;
    assert_eq!(got, ["1|12", "2|home"]);
}

/// Walk 19 (9): a rewind of a batch that failed before it reached the Kafka sink said it took
/// back "0 sink files" from the topic. It says the sink never took the batch, and the rewind
/// the failure advised lets the edited pipeline write every row once.
#[tokio::test]
async fn a_rewind_of_a_batch_the_topic_never_took_says_so() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"page\":\"home\",\"amount\":1.0}\n",
    )
    .expect("input");
    let out = unique("never");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: never\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 1\nquery: SELECT id, page, amount FROM clicks\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::write(
        ws.path("in/1.json"),
        "{\"id\":2,\"page\":\"cart\",\"amount\":2.0}\n{\"id\":\"x\"}\n",
    )
    .expect("input");
    let failed = sluice_run(&pipeline, &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let advised = format!("sluice rewind {} --to 0", ws.p("ckpt"));
    assert!(stderr(&failed).contains(&advised), "{}", stderr(&failed));
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let said = String::from_utf8_lossy(&rewind.stdout);
    assert!(
        said.contains("took back batch 1 from kafka://")
            && said.contains("nothing from the sink (it never took the batch)"),
        "{said}"
    );
    std::fs::write(
        &pipeline,
        yaml.replace(
            "max_files_per_batch: 1\n",
            "max_files_per_batch: 1\n    on_error: skip\n",
        ),
    )
    .expect("edit");
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let got = committed_rows(broker(), &out, sink_schema(), "SELECT * FROM sink").await;
    assert_eq!(got, ["1|home|1.0", "2|cart|2.0"]);
}

/// A sink moved from a Kafka topic (which keeps no batch records) to a files folder (which
/// does): the warning that the sink moved was decided by the new sink's kind, and left out.
/// It is decided by the sink the batches went to.
#[tokio::test]
async fn a_sink_moved_from_a_topic_to_a_folder_is_said() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let out = unique("moved");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: moved\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 1\nquery: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let folder = format!(
        "sink: {{ kind: files, path: {}, format: parquet }}\n",
        ws.p("out")
    );
    let moved = yaml[..yaml.find("sink:").expect("sink")].to_string() + &folder;
    std::fs::write(&pipeline, moved).expect("edit");
    write_clicks(&ws.path("in"), "json", 1, 20, 1);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let said = stderr(&run);
    assert!(
        said.contains("the sink moved: earlier batches went to the kafka sink kafka://")
            && said.contains("batches from now on go to the files sink"),
        "{said}"
    );
}

/// Walks 52 and 53: a query edited to write other columns into a topic that holds batches
/// (a column added, retyped, removed) ran without a word, and the topic's consumers met
/// records of another shape mid-stream. Refused before a batch (exit 2), naming what changed,
/// as for the other sinks that hold their output; `allow_output_schema_change: true` lets it
/// through, and the topic then holds both shapes.
#[tokio::test]
async fn a_query_writing_other_columns_into_a_topic_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let out = unique("columns");
    create_topic(broker(), &out, 1).await;
    let pipeline = files_to_kafka_retrying(&ws, "columns", "SELECT id, page FROM clicks", &out, "");
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let written = committed_values(broker(), &out).len();
    assert_eq!(written, 20);
    write_clicks(&ws.path("in"), "json", 1, 20, 1);
    let edited = std::fs::read_to_string(&pipeline)
        .expect("pipeline")
        .replace("SELECT id, page FROM", "SELECT id, page, amount FROM");
    std::fs::write(&pipeline, &edited).expect("edit");
    let refused = sluice_run(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "the query's output changed under a sink that holds batches of other \
             columns (`amount` added)"
        ),
        "{said}"
    );
    assert_eq!(committed_values(broker(), &out).len(), written);
    std::fs::write(&pipeline, edited + "allow_output_schema_change: true\n").expect("allow");
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let values = committed_values(broker(), &out);
    assert_eq!(values.len(), 40);
    assert!(String::from_utf8_lossy(&values[39]).contains("\"amount\""));
}

/// Walk 20 (3), walk 94: a pipeline started over on a new checkpoint into the topic it
/// appended to wrote every batch again, said only in a warning (files, Delta and PostgreSQL
/// sinks refuse it): refused before a batch, naming the other checkpoint, and a new
/// `progress_topic:` writes them again on purpose. A pipeline of another name writing the same
/// topic (many producers into one topic) is said, not refused; a topic deleted and made again
/// empty holds none of the other's records, and is neither.
#[tokio::test]
async fn a_new_checkpoint_appending_into_a_topic_another_checkpoint_wrote_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let out = unique("again");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: again\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\nquery: {QUERY}\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        !stderr(&run).contains("another pipeline or checkpoint"),
        "{}",
        stderr(&run)
    );
    let written = committed_values(broker(), &out).len();
    assert!(written > 0);
    // Walk 64 (5): the other checkpoint named (not by an id alone).
    let newer = write_pipeline(&ws, &yaml.replace(&ws.p("ckpt"), &ws.p("ckpt2")));
    let refused = sluice_run(&newer, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "topic `{out}` holds the batches (up to 0) of another checkpoint of this pipeline \
             (pipeline `again` with checkpoint {},",
            ws.p("ckpt")
        )) && said.contains("a new `progress_topic:`"),
        "{said}"
    );
    assert_eq!(committed_values(broker(), &out).len(), written);
    assert!(!ws.path("ckpt2/offsets/0").exists(), "{said}");
    // Written again on purpose, as the refusal says.
    let progress = unique("again_progress");
    let again = write_pipeline(
        &ws,
        &format!(
            "{}  progress_topic: {progress}\n",
            yaml.replace(&ws.p("ckpt"), &ws.p("ckpt2"))
        ),
    );
    let run = sluice_run(&again, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(committed_values(broker(), &out).len(), 2 * written);
    // Another pipeline into the same topic: said.
    let other = write_pipeline(
        &ws,
        &yaml
            .replace(&ws.p("ckpt"), &ws.p("ckpt3"))
            .replace("name: again", "name: fan_in"),
    );
    let run = sluice_run(&other, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!(
            "topic `{out}` holds batches (up to 0) of another pipeline or checkpoint"
        )),
        "{}",
        stderr(&run)
    );
    assert_eq!(committed_values(broker(), &out).len(), 3 * written);
    // The topic deleted and made again, empty: nothing of the others' is there to repeat.
    delete_topic(&out).await;
    create_topic(broker(), &out, 1).await;
    let fresh = write_pipeline(&ws, &yaml.replace(&ws.p("ckpt"), &ws.p("ckpt4")));
    let run = sluice_run(&fresh, &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        !said.contains("holds batches") && !said.contains("holds the batches"),
        "{said}"
    );
    assert_eq!(committed_values(broker(), &out).len(), written);
}

/// Walk 21: a JSON value with a field named as a Kafka column (`offset`, `timestamp`) could not
/// have that Kafka column beside it: `metadata_columns: [offset]` was refused with no way to
/// rename it. `offset AS kafka_offset` gives it under another name; the clash names that form.
#[test]
fn a_metadata_column_is_given_under_another_name() {
    let ws = Workspace::new();
    let topic = unique("metadata_as");
    futures::executor::block_on(create_topic(broker(), &topic, 1));
    let values: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("{{\"id\":{i},\"offset\":{}}}", 100 + i).into_bytes())
        .collect();
    produce(broker(), &topic, 1, &values);
    let pipeline = |metadata: &str| {
        let yaml = format!(
            "name: k\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: kafka\n    bootstrap_servers: {broker}\n    topics: [{topic}]\n    format: json\n    schema: {{ id: bigint, offset: bigint }}\n    metadata_columns: [{metadata}]\nquery: SELECT id, \"offset\", kafka_offset, partition FROM s\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
            ckpt = ws.p("ckpt"),
            out = ws.p("out"),
            broker = broker(),
        );
        write_pipeline(&ws, &yaml)
    };
    let refused = sluice_run(&pipeline("offset, partition"), &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("metadata_columns.0") && said.contains("`offset AS offset_meta`"),
        "{said}"
    );
    let run = sluice_run(&pipeline("offset AS kafka_offset, partition"), &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let mut lines: Vec<String> = std::fs::read_dir(ws.path("out"))
        .expect("out")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .expect("part")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{"id":0,"offset":100,"kafka_offset":0,"partition":0}"#,
            r#"{"id":1,"offset":101,"kafka_offset":1,"partition":0}"#,
            r#"{"id":2,"offset":102,"kafka_offset":2,"partition":0}"#,
        ]
    );
}

/// Walk 28 (1): a topic deleted and made again, with fewer records than were read, was taken
/// for one with nothing new (`0 batches`), and later records below the old offset were never
/// read, without a word. Planning finds the partition ending below the offset read up to and
/// stops, naming it (Spark's "offset was changed"), with the ways out.
#[tokio::test]
async fn a_topic_made_again_with_fewer_records_is_named() {
    let topic = unique("made-again");
    create_topic(broker(), &topic, 1).await;
    let values = |n: i64| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"id\":{i},\"name\":\"n{i}\"}}").into_bytes())
            .collect()
    };
    produce(broker(), &topic, 1, &values(10));
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let yaml = format!(
        "bootstrap_servers: {}\ntopics: [{topic}]\nformat: json\nschema: {{ id: bigint, name: string }}",
        broker()
    );
    let connector =
        sluice::source::configure("kafka", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
            .expect("kafka");
    let mut source = connector
        .open("s", &checkpoint, None, false)
        .await
        .expect("open");
    let end = source
        .plan(
            sluice::checkpoint::BatchId(0),
            None,
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan")
        .expect("records there");
    make_topic_again(&topic).await;
    produce(broker(), &topic, 1, &values(3));
    let said = source
        .plan(
            sluice::checkpoint::BatchId(1),
            Some(&end),
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect_err("a partition ending below the offset read")
        .to_string();
    assert!(
        said.contains(&format!(
            "{topic} partition 0 ends at offset 3, below offset 10, which the batches so far \
             have read up to"
        )) && said.contains("deleted and made again")
            && said.contains("fail_on_data_loss: false"),
        "{said}"
    );
    // Walk 29 (1): the advice followed (`fail_on_data_loss: false`) waited for the old
    // offset, so records written after it below that offset were never read, without a word.
    // The source goes on from the partition's end now (as Spark's does), in a batch that
    // reads nothing, and reads every record written after; a replay of the batch that went
    // back reads nothing whatever the setting is then.
    let lenient = sluice::source::configure(
        "kafka",
        "s",
        &serde_yaml::from_str(&format!("{yaml}\nfail_on_data_loss: false")).expect("yaml"),
    )
    .expect("kafka");
    let mut lenient_source = lenient
        .open("s", &checkpoint, None, false)
        .await
        .expect("open");
    let back = lenient_source
        .plan(
            sluice::checkpoint::BatchId(1),
            Some(&end),
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan")
        .expect("a batch that goes back");
    assert_eq!(back[&topic]["0"], 3, "{back}");
    for reader in [&lenient_source, &source] {
        let input = reader.read(Some(&end), &back, None).await.expect("read");
        assert_eq!(input.rows, 0, "nothing read going back");
        // Walk 31 (2): the records below the new end were skipped with nothing counted.
        assert_eq!(
            input.lost, 3,
            "the topic's records below its end, never read"
        );
    }
    produce(broker(), &topic, 1, &values(4));
    let next = lenient_source
        .plan(
            sluice::checkpoint::BatchId(2),
            Some(&back),
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan")
        .expect("the records written since");
    for _ in 0..2 {
        let input = lenient_source
            .read(Some(&back), &next, None)
            .await
            .expect("read");
        assert_eq!(input.rows, 4, "every record written after going back");
    }
}

/// Audit 90a #1: a topic read under `topic_pattern`, deleted with records not yet read: its
/// offset was carried on for good and the records left out unsaid, `fail_on_data_loss: true`
/// too. As Spark's source: the run is refused naming the partition and the offset read; under
/// `fail_on_data_loss: false` the batch goes on without it (the other topic's records read),
/// and a topic of that name made again is read from its start.
#[tokio::test]
async fn a_topic_deleted_under_a_pattern_is_said_as_data_loss() {
    let base = unique("pattern-gone");
    let (gone, kept) = (format!("{base}-a"), format!("{base}-b"));
    create_topic(broker(), &gone, 1).await;
    create_topic(broker(), &kept, 1).await;
    produce(broker(), &gone, 1, &id_values(10));
    produce(broker(), &kept, 1, &id_values(5));
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let yaml = format!(
        "bootstrap_servers: {}\ntopic_pattern: \"{base}-.*\"\nformat: json\n\
         schema: {{ id: bigint, name: string }}\nmax_records_per_batch: 6\n",
        broker()
    );
    let open = |extra: &str| {
        let yaml = format!("{yaml}{extra}");
        let checkpoint = checkpoint.clone();
        async move {
            sluice::source::configure("kafka", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
                .expect("kafka")
                .open("s", &checkpoint, None, false)
                .await
                .expect("open")
        }
    };
    let mut source = open("").await;
    let end = source
        .plan(
            sluice::checkpoint::BatchId(0),
            None,
            sluice::source::Admission::SourceLimits,
        )
        .await
        .expect("plan")
        .expect("records there");
    let read_up_to = end[&gone]["0"].as_i64().expect("offset");
    assert!(read_up_to < 10, "records of {gone} left to read: {end}");
    delete_topic(&gone).await;
    produce(broker(), &kept, 1, &id_values(3));
    // Walk 122 (4): the lag (inspect's) left the partition gone out, and looked healthy.
    let lag = sluice::source::configure("kafka", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
        .expect("kafka")
        .lag("s", &end)
        .await
        .expect("lag")
        .expect("a lag");
    let part = lag
        .parts
        .iter()
        .find(|p| p.topic.as_deref() == Some(gone.as_str()))
        .unwrap_or_else(|| panic!("{gone} left out: {lag:?}"));
    assert!(part.gone && part.offset == Some(read_up_to), "{part:?}");
    let said = plan_next(&mut source, 1, Some(&end))
        .await
        .expect_err("a partition gone with records not read")
        .to_string();
    assert!(
        said.contains(&format!(
            "{gone} partition 0, read up to offset {read_up_to}"
        )) && said.contains("no longer have")
            && said.contains("fail_on_data_loss: false"),
        "{said}"
    );
    let mut lenient = open("fail_on_data_loss: false\n").await;
    let next = plan_next(&mut lenient, 1, Some(&end))
        .await
        .expect("plan")
        .expect("the other topic's records");
    assert!(next.get(&gone).is_none(), "{next}");
    assert_eq!(next[&kept]["0"], 8, "{next}");
    let input = lenient.read(Some(&end), &next, None).await.expect("read");
    let kept_before = end[&kept]["0"].as_i64().expect("offset");
    assert_eq!(input.rows, (8 - kept_before) as u64);
    // Made again: read from its start, as a new topic is.
    create_after_deletion(&gone).await;
    produce(broker(), &gone, 1, &id_values(2));
    let again = plan_next(&mut lenient, 2, Some(&next))
        .await
        .expect("plan")
        .expect("the topic made again");
    assert_eq!(again[&gone]["0"], 2, "{again}");
    let input = lenient.read(Some(&next), &again, None).await.expect("read");
    assert_eq!(input.rows, 2);
}

/// Audit 90a #2: under `read_committed` (the default) the brokers look a time up only below
/// the last stable offset: with a transaction open before the first record at the time, they
/// answered "none", which read as the last stable offset, and the first batch read records
/// older than `starting_timestamp`. Looked up as a `read_uncommitted` client, the start is
/// the first record at or after the time, read once the transaction ends.
#[tokio::test]
async fn a_starting_timestamp_past_an_open_transaction_starts_at_the_time() {
    let topic = unique("time-open");
    create_topic(broker(), &topic, 1).await;
    let at = chrono::Utc::now().timestamp_millis() - 60_000;
    let send = |producer: &BaseProducer, id: i64, ms: i64| {
        let value = format!("{{\"id\":{id},\"name\":\"n{id}\"}}");
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(&topic)
                    .partition(0)
                    .payload(value.as_bytes())
                    .timestamp(ms),
            )
            .expect("send");
        producer.flush(TIMEOUT).expect("flush");
    };
    let plain: BaseProducer = client(broker()).create().expect("producer");
    let open: BaseProducer = client(broker())
        .set("transactional.id", unique("time-open-tx"))
        .create()
        .expect("producer");
    for id in 0..3 {
        send(&plain, id, at - 10_000);
    }
    open.init_transactions(TIMEOUT).expect("init");
    open.begin_transaction().expect("begin");
    send(&open, 3, at - 10_000);
    for id in 4..6 {
        send(&plain, id, at - 10_000);
    }
    for id in 6..8 {
        send(&plain, id, at + 10_000);
    }
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let starting = chrono::DateTime::from_timestamp_millis(at)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut source = id_source(
        &topic,
        &format!("starting_timestamp: {starting}"),
        &checkpoint,
    )
    .await;
    let none = plan_next(&mut source, 0, None).await.expect("plan");
    assert!(
        none.is_none(),
        "nothing at the time is committed yet: {none:?}"
    );
    open.commit_transaction(TIMEOUT).expect("commit");
    let mut end = None;
    for _ in 0..50 {
        end = plan_next(&mut source, 0, None).await.expect("plan");
        if end.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = end.expect("the records at the time, once the transaction ended");
    let input = source.read(None, &end, None).await.expect("read");
    let ids: Vec<i64> = input
        .partitions
        .iter()
        .flatten()
        .flat_map(|batch| {
            let column = batch
                .column_by_name("id")
                .expect("id")
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .expect("bigint")
                .clone();
            column.values().to_vec()
        })
        .collect();
    assert_eq!(ids, vec![6, 7], "the records at or after the time: {end}");
}

/// Audit 91c (Spark's "malformed record timestamp throws detailed error"): a record whose
/// timestamp no timestamp holds (a producer's nanoseconds as milliseconds) was read as the
/// largest value, which a JSON sink wrote as an error's text, exit 0. The batch fails,
/// naming the record and its timestamp.
#[tokio::test]
async fn a_record_timestamp_past_what_a_timestamp_holds_is_named() {
    let topic = unique("time-past");
    create_topic_with(
        broker(),
        &topic,
        1,
        &[("message.timestamp.after.max.ms", "9223372036854775807")],
    )
    .await;
    let producer: BaseProducer = client(broker()).create().expect("producer");
    let nanos = 1_712_345_678_123_456_789_i64;
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to(&topic)
                .partition(0)
                .payload(&b"{\"id\":1,\"name\":\"a\"}"[..])
                .timestamp(nanos),
        )
        .expect("send");
    producer.flush(TIMEOUT).expect("flush");
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let mut source = id_source(&topic, "metadata_columns: [timestamp]", &checkpoint).await;
    let end = plan_next(&mut source, 0, None)
        .await
        .expect("plan")
        .expect("the record");
    let Err(err) = source.read(None, &end, None).await else {
        panic!("a timestamp past what a timestamp holds was read");
    };
    let err = err.to_string();
    assert!(
        err.contains(&format!("topic {topic} partition 0 offset 0"))
            && err.contains(&nanos.to_string()),
        "{err}"
    );
}

/// Deletes `topic` and waits until the brokers no longer list it.
async fn delete_topic(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(broker()).create().expect("admin");
    admin
        .delete_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("delete")
        .into_iter()
        .for_each(|r| {
            r.expect("deleted");
        });
    let consumer: BaseConsumer = client(broker()).create().expect("consumer");
    for _ in 0..100 {
        let listed = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
        if listed.topics().iter().all(|t| t.name() != topic) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{topic} still listed after its deletion");
}

/// A Kafka source (`name` s) over `topic` with `extra` settings, opened on `checkpoint`.
async fn id_source(
    topic: &str,
    extra: &str,
    checkpoint: &sluice::storage::Location,
) -> Box<dyn sluice::source::Source> {
    let yaml = format!(
        "bootstrap_servers: {}\ntopics: [{topic}]\nformat: json\nschema: {{ id: bigint, name: string }}\n{extra}",
        broker()
    );
    sluice::source::configure("kafka", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
        .expect("kafka")
        .open("s", checkpoint, None, false)
        .await
        .expect("open")
}

fn id_values(n: i64) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"id\":{i},\"name\":\"n{i}\"}}").into_bytes())
        .collect()
}

/// Audit 86 #2: a batch planned over a topic that was then deleted and made again with fewer
/// records, read again after a crash, read the new topic's records as the ones planned under
/// `read_committed` (the default; its end, the last stable offset, was not checked against
/// the range). Refused as under `read_uncommitted`, naming the offsets gone.
#[tokio::test]
async fn a_batch_read_after_its_topic_was_made_again_is_refused_under_read_committed() {
    let topic = unique("replay-made-again");
    create_topic(broker(), &topic, 1).await;
    produce(broker(), &topic, 1, &id_values(10));
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let mut source = id_source(&topic, "", &checkpoint).await;
    let end = plan_next(&mut source, 0, None)
        .await
        .expect("plan")
        .expect("records there");
    make_topic_again(&topic).await;
    produce(broker(), &topic, 1, &id_values(4));
    let said = source
        .read(None, &end, None)
        .await
        .expect_err("the batch's records are gone")
        .to_string();
    assert!(
        said.contains(&format!(
            "records the batch reads are gone: {topic} partition 0 offsets 4 to 9 (the \
             partition now ends at 4: was the topic deleted and made again?)"
        )),
        "{said}"
    );
}

/// Audit 86 #5: a source that read uncommitted records and is then set to `read_committed`
/// while a transaction is open below the offset read found the partition's last stable
/// offset below it and took the topic for made again. The log's end tells them apart: the
/// source waits for records past the offset read.
#[tokio::test]
async fn read_committed_set_while_a_transaction_is_open_is_not_a_topic_made_again() {
    let topic = unique("isolation-switch");
    create_topic(broker(), &topic, 1).await;
    produce(broker(), &topic, 1, &id_values(5));
    let open: BaseProducer = client(broker())
        .set("transactional.id", unique("open-txn"))
        .create()
        .expect("producer");
    open.init_transactions(TIMEOUT).expect("init");
    open.begin_transaction().expect("begin");
    for value in id_values(3) {
        open.send(
            BaseRecord::<[u8], [u8]>::to(&topic)
                .partition(0)
                .payload(&value),
        )
        .expect("send");
    }
    open.flush(TIMEOUT).expect("flush");
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let mut uncommitted = id_source(&topic, "read_committed: false", &checkpoint).await;
    let end = plan_next(&mut uncommitted, 0, None)
        .await
        .expect("plan")
        .expect("records there");
    assert_eq!(
        end[&topic]["0"], 8,
        "the open transaction's records too: {end}"
    );
    let mut committed = id_source(&topic, "", &checkpoint).await;
    let next = plan_next(&mut committed, 1, Some(&end))
        .await
        .expect("not a topic made again");
    assert!(next.is_none(), "nothing past the offset read yet: {next:?}");
    open.abort_transaction(TIMEOUT).expect("abort");
}

/// Deletes `topic` and makes it again, empty, with one partition (the broker lets the name
/// go a moment after the deletion).
async fn make_topic_again(topic: &str) {
    delete_topic(topic).await;
    create_after_deletion(topic).await;
}

/// Makes `topic` (one partition) again after its deletion.
async fn create_after_deletion(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(broker()).create().expect("admin");
    // The broker lets the name go a moment after the deletion.
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let mut made = false;
    for _ in 0..100 {
        let results = admin
            .create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .expect("create");
        if results.iter().all(Result::is_ok) {
            made = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(made, "topic made again");
}

/// Walk 57 (3): the sink's topic deleted (and made again by its `partitions:`, or by hand):
/// the next run wrote on into the empty topic without a word, the batches committed before
/// gone from it. Refused before a batch (exit 2), naming the partition, where the batch
/// wrote to and the ways out; with a new `progress_topic:` the run writes on.
#[tokio::test]
async fn a_sink_topic_made_again_is_refused_naming_what_it_lost() {
    let ws = Workspace::new();
    let input = unique("lost-in");
    create_topic(broker(), &input, 1).await;
    add_clicks(&ws, &input, 1, 0, 40);
    let out = unique("lost-out");
    let progress = unique("lost-progress");
    let yaml = |progress: &str| {
        format!(
            "name: lost\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: \
             available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: \
             {out}\n  partitions: 1\n  progress_topic: {progress}\n",
            ckpt = ws.p("ckpt"),
            broker = broker(),
            source = kafka_source_yaml(&input, ""),
        )
    };
    let pipeline = write_pipeline(&ws, &yaml(&progress));
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let written = committed_values(broker(), &out).len();
    assert!(written > 0, "batch 0 wrote records");
    make_topic_again(&out).await;
    add_clicks(&ws, &input, 1, 100, 5);
    let refused = sluice_run(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "topic `{out}` holds less than the batches committed to it wrote (partition 0 ends \
             at offset 0, where batch 0 wrote up to"
        )) && said.contains(&format!("delete the folder {}", ws.p("ckpt")))
            && said.contains("a new `progress_topic:`"),
        "{said}"
    );
    assert!(
        committed_values(broker(), &out).is_empty(),
        "nothing written"
    );
    // The way out to write on: a new progress topic.
    let pipeline = write_pipeline(&ws, &yaml(&unique("lost-progress-2")));
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        !committed_values(broker(), &out).is_empty(),
        "batch 1 written"
    );
}

/// Sinks audit #4 (2026-12-06): the progress topic deleted while a batch was pending (Kafka
/// had committed its transaction, the run stopped before `commits/1`): the next run could
/// not tell the batch was in the topic and wrote it again. Refused before a batch (exit 2),
/// nothing written, naming the rewind that writes it anyway; that rewind works.
#[tokio::test]
async fn a_pending_batch_whose_progress_record_is_gone_is_not_written_again_unsaid() {
    let ws = Workspace::new();
    let input = unique("pending-in");
    create_topic(broker(), &input, 1).await;
    add_clicks(&ws, &input, 1, 0, 20);
    let out = unique("pending-out");
    create_topic(broker(), &out, 1).await;
    let progress = unique("pending-progress");
    let yaml = format!(
        "name: pending\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: \
         available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  \
         progress_topic: {progress}\n",
        ckpt = ws.p("ckpt"),
        broker = broker(),
        source = kafka_source_yaml(&input, ""),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    add_clicks(&ws, &input, 1, 100, 10);
    let stopped = run_quietly(&pipeline, &Crash::Before.env(1, "commits/1"));
    assert!(crashed(&stopped), "{}", stderr(&stopped));
    let written = committed_values(broker(), &out).len();
    let admin: AdminClient<DefaultClientContext> = client(broker()).create().expect("admin");
    admin
        .delete_topics(
            &[progress.as_str()],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("delete")
        .into_iter()
        .for_each(|r| {
            r.expect("deleted");
        });
    let refused = sluice_run(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "batch 1 is pending (planned, not committed in the checkpoint), and the progress \
             topic `{progress}` holds no record of this pipeline's batches"
        )) && said.contains(&format!("`sluice rewind {} --to 0`", ws.p("ckpt"))),
        "{said}"
    );
    assert_eq!(
        committed_values(broker(), &out).len(),
        written,
        "nothing written"
    );
    let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    // Walk 122 (1): the rewind said the sink "never took the batch", which it had.
    let told = String::from_utf8_lossy(&rewind.stdout);
    assert!(
        told.contains("whether it took the batch cannot be told: if it did, its records are there")
            && !told.contains("never took"),
        "{told}"
    );
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        committed_values(broker(), &out).len() > written,
        "batch 1 written again"
    );
}

/// Walk 28: `starting_offsets: latest` run on a topic with records (no batch: nothing came
/// after), then edited to `earliest`: the run went on from the offsets `latest` resolved,
/// reading nothing, without a word. Said, naming both settings; still nothing is read (the
/// offsets are resolved once a checkpoint, as Spark's `startingOffsets`), and a new
/// checkpoint reads from the earliest.
#[tokio::test]
async fn an_edited_starting_offset_after_the_first_run_is_said() {
    let ws = Workspace::new();
    let topic = unique("latest-then-earliest");
    create_topic(broker(), &topic, 1).await;
    add_clicks(&ws, &topic, 1, 0, 30);
    let yaml = |starting: &str, ckpt: &str| {
        format!(
            "name: k\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
            ckpt = ws.p(ckpt),
            out = ws.p(&format!("out-{ckpt}")),
            source = kafka_source_yaml(&topic, &format!("    starting_offsets: {starting}\n")),
        )
    };
    let latest = write_pipeline(&ws, &yaml("latest", "ckpt"));
    let first = sluice_run(&latest, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        !stderr(&first).contains("resolved from"),
        "{}",
        stderr(&first)
    );
    let earliest = write_pipeline(&ws, &yaml("earliest", "ckpt"));
    let second = sluice_run(&earliest, &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(
            "this checkpoint's starting offsets were resolved from `starting_offsets: latest`, \
             this pipeline says `starting_offsets: earliest`"
        ) && stderr(&second).contains("run on a new checkpoint"),
        "{}",
        stderr(&second)
    );
    assert_eq!(
        stderr(&second)
            .matches("starting offsets were resolved from")
            .count(),
        1,
        "said once: {}",
        stderr(&second)
    );
    assert!(
        sink_rows(&ws.path("out-ckpt")).await.is_empty(),
        "the offsets resolved by the first run stand"
    );
    let anew = write_pipeline(&ws, &yaml("earliest", "ckpt2"));
    let third = sluice_run(&anew, &[]);
    assert!(third.status.success(), "{}", stderr(&third));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out-ckpt2")).await, expected);
}

/// Walk 28: an update-mode aggregation into Kafka whose key was null for a group, and an
/// append of records without a key into a compacted topic: the broker's refusal was tried
/// again as often as `retry` says, and named neither the row nor the cause. Each fails at
/// once (exit 1), naming the row or the topic and what to change.
#[tokio::test]
async fn a_record_without_a_key_where_one_is_needed_is_named_and_not_tried_again() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"page\":\"home\",\"amount\":1.0}\n{\"id\":2,\"amount\":2.0}\n",
    )
    .expect("input");
    let out = unique("null-key");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: nullkey\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\nquery: SELECT page, count(*) AS n FROM clicks GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  key: page\n  retry: {{ attempts: 3, backoff: 2s }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let failed = sluice_run(&write_pipeline(&ws, &yaml), &[]);
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains(
            "its key (`key: page`) is null, and update mode writes each row as the \
                       newest record of its key"
        ) && !said.contains("retrying"),
        "{said}"
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    assert!(
        committed_rows(broker(), &out, Arc::clone(&schema), "SELECT * FROM sink")
            .await
            .is_empty()
    );
    // Appended without a key into a compacted topic.
    let compacted = unique("compacted");
    create_topic_with(broker(), &compacted, 1, &[("cleanup.policy", "compact")]).await;
    std::fs::remove_dir_all(ws.path("ckpt")).expect("fresh checkpoint");
    let pipeline = files_to_kafka_retrying(
        &ws,
        "keyless",
        "SELECT id, page FROM clicks",
        &compacted,
        "",
    );
    let failed = sluice_run(&pipeline, &[]);
    let said = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "the broker refused a record without a key for topic `{compacted}` partition 0: a \
             compacted topic (`cleanup.policy=compact`) takes only keyed records"
        )) && !said.contains("retrying"),
        "{said}"
    );
}

/// Walk 31 (9): a Kafka topic made again, into a PostgreSQL table, said to start over "with
/// a new, empty `sink.path`", a key a table sink does not have. The way out is said in the
/// sink's terms.
#[tokio::test]
async fn a_topic_made_again_says_the_way_out_in_the_sinks_terms() {
    let ws = Workspace::new();
    let topic = unique("again-pg");
    create_topic(broker(), &topic, 1).await;
    add_clicks(&ws, &topic, 1, 0, 10);
    let table = crate::postgres::unique_table("kafka_again");
    let yaml = format!(
        "name: again\ncheckpoint: {ckpt}\nsources:\n{source}query: {QUERY}\ntrigger: \
         available-now\nsink:\n  kind: postgres\n  url: {url}\n  table: {table}\n  \
         create_table: true\n",
        ckpt = ws.p("ckpt"),
        source = kafka_source_yaml(&topic, ""),
        url = crate::postgres::server(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    make_topic_again(&topic).await;
    add_clicks(&ws, &topic, 1, 100, 2);
    let refused = sluice_run(&pipeline, &[]);
    let said = stderr(&refused);
    assert_ne!(refused.status.code(), Some(0), "{said}");
    assert!(
        said.contains("partition 0 ends at offset 2, below offset 10")
            && said.contains("`sink.table`")
            && !said.contains("`sink.path`"),
        "{said}"
    );
}

/// Audit 89a: in complete mode with a key, a progress topic emptied since the last batch (made
/// again, or kept with `delete` retention) left the keys of the previous table unknown, and
/// the next table wrote no tombstones for those it lacked, exit 0, unsaid. It is said.
#[tokio::test]
async fn complete_mode_without_its_progress_record_says_no_tombstones_can_be_written() {
    let ws = Workspace::new();
    let out = unique("complete_lost");
    let progress = unique("complete_lost_progress");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: complete\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: files\n    path: {input}\n    format: json\n    schema: {{ k: string, v: bigint }}\nquery: SELECT k, count(*) AS n FROM s GROUP BY k HAVING max(v) < 10\noutput_mode: complete\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  key: k\n  progress_topic: {progress}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.json"), "{\"k\":\"a\",\"v\":5}\n").expect("input");
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        !stderr(&run).contains("gets no tombstone"),
        "{}",
        stderr(&run)
    );
    make_topic_again(&progress).await;
    std::fs::write(ws.path("in/1.json"), "{\"k\":\"a\",\"v\":50}\n").expect("input");
    let run = sluice_run(&pipeline, &[]);
    let said = stderr(&run);
    assert!(run.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "the progress topic `{progress}` holds no record of batch 0"
        )) && said.contains("gets no tombstone"),
        "{said}"
    );
}

/// A record read back: its key, its value (none for a tombstone) and its `sluice-batch` header.
type ReadRecord = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);

/// Every committed record of one-partition `topic`, in offset order.
fn committed_records(topic: &str) -> Vec<ReadRecord> {
    use rdkafka::message::Headers as _;
    let consumer = committed_consumer(broker());
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&list).expect("assign");
    let mut records = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => {
                let batch = m.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "sluice-batch")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).to_string())
                });
                records.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                    batch,
                ));
            }
        }
    }
    records
}

/// Walk 82 (1): in complete mode a group that left the result (`HAVING` no longer passed)
/// stayed the newest record of its key, so a reader of the topic as compacted (newest per
/// key) saw it for ever, and no record told one batch's table from another's. Each record
/// names its batch (`sluice-batch`), and a key the previous table had and this one lacks
/// gets a tombstone: newest per key is the table, and so are the newest batch's records.
#[tokio::test]
async fn complete_mode_takes_back_the_keys_a_table_no_longer_has() {
    let ws = Workspace::new();
    let out = unique("complete");
    create_topic(broker(), &out, 1).await;
    let yaml = format!(
        "name: complete\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: files\n    path: {input}\n    format: json\n    schema: {{ k: string, v: bigint }}\nquery: SELECT k, count(*) AS n, max(v) AS mx FROM s GROUP BY k HAVING max(v) < 10\noutput_mode: complete\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n  key: k\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let inputs = [
        "{\"k\":\"a\",\"v\":5}\n{\"k\":\"b\",\"v\":7}\n{\"k\":\"c\",\"v\":1}\n",
        "{\"k\":\"a\",\"v\":50}\n",
        "{\"k\":\"b\",\"v\":60}\n{\"k\":null,\"v\":1}\n",
    ];
    let tables: [&[&str]; 3] = [
        &[
            "a {\"k\":\"a\",\"n\":1,\"mx\":5}",
            "b {\"k\":\"b\",\"n\":1,\"mx\":7}",
            "c {\"k\":\"c\",\"n\":1,\"mx\":1}",
        ],
        &[
            "b {\"k\":\"b\",\"n\":1,\"mx\":7}",
            "c {\"k\":\"c\",\"n\":1,\"mx\":1}",
        ],
        &["- {\"n\":1,\"mx\":1}", "c {\"k\":\"c\",\"n\":1,\"mx\":1}"],
    ];
    for (i, (input, table)) in inputs.iter().zip(tables).enumerate() {
        std::fs::write(ws.path(&format!("in/{i}.json")), input).expect("input");
        let run = sluice_run(&pipeline, &[]);
        assert!(run.status.success(), "{}", stderr(&run));
        let records = committed_records(&out);
        let shown = |key: &Option<Vec<u8>>, value: &[u8]| {
            format!(
                "{} {}",
                key.as_ref()
                    .map_or("-".to_string(), |k| String::from_utf8_lossy(k).to_string()),
                String::from_utf8_lossy(value)
            )
        };
        // Newest per key, as a compacted topic keeps it (a null key is no key's: the newest
        // batch's null-key records).
        let newest_batch = records
            .last()
            .and_then(|(_, _, batch)| batch.clone())
            .expect("a batch header");
        let mut newest: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            std::collections::BTreeMap::new();
        let mut rows: Vec<String> = Vec::new();
        for (key, value, batch) in &records {
            assert!(batch.is_some(), "a record without its batch: {records:?}");
            match key {
                Some(key) => {
                    newest.insert(key.clone(), value.clone());
                }
                None if batch.as_ref() == Some(&newest_batch) => {
                    rows.push(shown(&None, value.as_deref().unwrap_or_default()))
                }
                None => {}
            }
        }
        rows.extend(
            newest
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| shown(&Some(k.clone()), v))),
        );
        rows.sort();
        assert_eq!(rows, table, "after run {i}");
        // The newest batch's records are the table too.
        let mut latest: Vec<String> = records
            .iter()
            .filter(|(_, value, batch)| value.is_some() && batch.as_ref() == Some(&newest_batch))
            .map(|(key, value, _)| shown(key, value.as_deref().unwrap_or_default()))
            .collect();
        latest.sort();
        assert_eq!(latest, table, "newest batch after run {i}");
        // A batch that wrote tombstones verifies: they are no rows of its table.
        assert_verified(&ws, "ckpt", i as u64);
    }
    // Walk 107 (1): without a `key`, a table gone empty wrote no record, and the newest
    // batch's records were the previous table for ever. It is one marked record without a
    // value: the newest batch's records with a value are the table, none.
    let ws = Workspace::new();
    let out = unique("complete_empty");
    create_topic(broker(), &out, 1).await;
    let keyless = format!(
        "name: complete\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: files\n    path: {input}\n    format: json\n    schema: {{ k: string, v: bigint }}\nquery: SELECT k, count(*) AS n, max(v) AS mx FROM s GROUP BY k HAVING max(v) < 10\noutput_mode: complete\ntrigger: available-now\nsink:\n  kind: kafka\n  bootstrap_servers: {broker}\n  topic: {out}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        broker = broker(),
    );
    let pipeline = write_pipeline(&ws, &keyless);
    for (i, input) in ["{\"k\":\"a\",\"v\":5}\n", "{\"k\":\"a\",\"v\":50}\n"]
        .iter()
        .enumerate()
    {
        std::fs::create_dir_all(ws.path("in")).expect("in");
        std::fs::write(ws.path(&format!("in/{i}.json")), input).expect("input");
        let run = sluice_run(&pipeline, &[]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let records = committed_records(&out);
    let newest_batch = records
        .last()
        .and_then(|(_, _, batch)| batch.clone())
        .expect("a batch header");
    let latest: Vec<_> = records
        .iter()
        .filter(|(_, _, batch)| batch.as_ref() == Some(&newest_batch))
        .collect();
    assert_eq!(latest.len(), 1, "{records:?}");
    assert!(
        latest[0].0.is_none() && latest[0].1.is_none(),
        "{records:?}"
    );
    assert_verified(&ws, "ckpt", 1);
}

/// Walk 94: the sink's records carried the time they were written, not the rows' event time
/// (Kafka Streams keeps its input's, Flink's sink writes its `timestamp` column). `timestamp:`
/// gives each record's, to the millisecond; a setting of another type is refused naming it.
#[tokio::test]
async fn a_sink_record_carries_the_timestamp_its_setting_gives() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 6, 0);
    let out = unique("stamped");
    // The rows' times are long past: the broker's retention (7 days by default, counted from
    // a record's timestamp) would delete the records at its next check.
    create_topic_with(broker(), &out, 1, &[("retention.ms", "-1")]).await;
    let pipeline = files_to_kafka_retrying(&ws, "stamped", "SELECT id, ts FROM clicks", &out, "");
    let yaml = std::fs::read_to_string(&pipeline).expect("pipeline");
    std::fs::write(&pipeline, format!("{yaml}  timestamp: id\n")).expect("edit");
    let refused = sluice_run(&pipeline, &[]);
    let said = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(
        said.contains("`timestamp: id` gives values of type bigint, not a timestamp"),
        "{said}"
    );
    std::fs::write(&pipeline, format!("{yaml}  timestamp: ts\n")).expect("edit");
    let run = sluice_run(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let records = committed_values_at(broker(), &out);
    assert_eq!(records.len(), 6);
    for (value, stamp) in records {
        let row: serde_json::Value = serde_json::from_slice(&value).expect("JSON");
        let ts = chrono::DateTime::parse_from_rfc3339(&format!(
            "{}Z",
            row["ts"].as_str().expect("ts").trim_end_matches('Z')
        ))
        .expect("time");
        assert_eq!(stamp, Some(ts.timestamp_millis()), "{row}");
    }
}

/// Walk 113: a Kafka source's topic swapped for another (its copy, written by an upstream
/// pipeline started over) on the same checkpoint read the new topic from its start into the
/// kept state, doubling every count, unsaid. The change is said (as Spark calls it
/// unpredictable), with the start over that reads it alone.
#[tokio::test]
async fn a_kafka_source_whose_topics_changed_says_so() {
    let ws = Workspace::new();
    let (old, new) = (unique("clicks-old"), unique("clicks-new"));
    create_topic(broker(), &old, 1).await;
    create_topic(broker(), &new, 1).await;
    add_clicks(&ws, &old, 1, 0, 20);
    produce(broker(), &new, 1, &json_values(&clicks(0, 20)));
    let yaml = |topic: &str| {
        format!(
            "name: k\ncheckpoint: {ckpt}\nsources:\n{source}query: SELECT page, count(*) AS n \
             FROM clicks GROUP BY page\noutput_mode: update\ntrigger: available-now\nsink: {{ \
             kind: files, path: {out}, format: json }}\n",
            ckpt = ws.p("ckpt"),
            out = ws.p("out"),
            source = kafka_source_yaml(topic, ""),
        )
    };
    let pipeline = write_pipeline(&ws, &yaml(&old));
    let first = sluice_run(&pipeline, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let pipeline = write_pipeline(&ws, &yaml(&new));
    let second = sluice_run(&pipeline, &[]);
    let said = stderr(&second);
    assert!(second.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "source `clicks` reads topics {new} now, where the checkpoint's batches read {old}"
        )) && said.contains("into the same output and state")
            && said.contains("they count twice: start over on a new checkpoint"),
        "{said}"
    );
    // Said once: the next run reads on from the new topic.
    let third = sluice_run(&pipeline, &[]);
    assert!(
        !stderr(&third).contains("reads topics"),
        "{}",
        stderr(&third)
    );
}
