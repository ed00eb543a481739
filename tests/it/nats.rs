//! The NATS JetStream source against a real `nats-server` (started by
//! `tests/servers/nats/start`, or reused): messages read once across runs and batches, equal to
//! the batch query over the same rows; the source contract; a bad payload named by stream and
//! sequence; messages gone from the stream named by their sequences.

use std::sync::{Arc, OnceLock};

use async_nats::jetstream;
use sluice::source::SourceConnector;

use crate::common::*;
use crate::contract::{SourceFixture, source_contract};

/// The shared server's URL: `SLUICE_NATS_URL`, or the server the start script starts (or
/// finds) on its default port.
pub fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("SLUICE_NATS_URL") {
            return url;
        }
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/nats/start");
        let out = std::process::Command::new(&script)
            .output()
            .expect("run the NATS start script");
        assert!(
            out.status.success(),
            "the NATS server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// A stream name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    )
}

/// A JetStream context on the shared server.
pub async fn context() -> jetstream::Context {
    let client = async_nats::connect(server()).await.expect("connect");
    jetstream::new(client)
}

/// Makes stream `name` over the subjects `<name>.>`.
pub async fn create_stream(js: &jetstream::Context, name: &str) {
    js.create_stream(jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .expect("create stream");
}

/// Makes stream `name` over the subjects `<name>.>` that allows one consumer at a time.
async fn create_stream_of_one_consumer(js: &jetstream::Context, name: &str) {
    js.create_stream(jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        max_consumers: 1,
        ..Default::default()
    })
    .await
    .expect("create stream");
}

/// Makes stream `name` over the subjects `<name>.>`, keeping at most `max_messages` (the
/// oldest go first).
async fn create_limited_stream(js: &jetstream::Context, name: &str, max_messages: i64) {
    js.create_stream(jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        max_messages,
        ..Default::default()
    })
    .await
    .expect("create stream");
}

/// Publishes `payloads` to `subject`, each acknowledged by the stream.
pub async fn publish(js: &jetstream::Context, subject: &str, payloads: &[Vec<u8>]) {
    for payload in payloads {
        js.publish(subject.to_string(), payload.clone().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

/// Each row of `batch` as a JSON object's text.
pub fn json_values(batch: &datafusion::arrow::record_batch::RecordBatch) -> Vec<Vec<u8>> {
    let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch).expect("json");
    writer.finish().expect("json");
    writer
        .into_inner()
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Click events `first..first + rows` as JSON payloads, and the same rows as a JSON lines file
/// under `ws/in/` for the oracle.
fn clicks_json(ws: &Workspace, first: i64, rows: i64) -> Vec<Vec<u8>> {
    let batch = clicks(first, rows);
    write_batch(
        &ws.path(&format!("in/clicks-{first:06}.json")),
        "json",
        &batch,
    );
    json_values(&batch)
}

/// Runs `work` on a runtime of its own, on a thread of its own: the contract suite calls the
/// fixture from inside its own runtime, where another cannot block.
fn on_own_runtime<F: std::future::Future<Output = ()> + Send + 'static>(work: F) {
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(work);
    })
    .join()
    .expect("the fixture's work");
}

const QUERY: &str = "SELECT id, page, amount FROM clicks WHERE amount > 30";

/// `n` JSON payloads `{"id": i, "name": "n<i>"}`, `i` from `from`.
fn id_payloads(from: i64, n: i64) -> Vec<Vec<u8>> {
    (from..from + n)
        .map(|i| format!("{{\"id\":{i},\"name\":\"n{i}\"}}").into_bytes())
        .collect()
}

/// A NATS source `s` of the settings `yaml`, opened on `checkpoint`, with its connector.
async fn nats_source(
    yaml: &str,
    checkpoint: &sluice::storage::Location,
) -> (
    std::sync::Arc<dyn sluice::source::SourceConnector>,
    Box<dyn sluice::source::Source>,
) {
    let connector =
        sluice::source::configure("nats", "s", &serde_yaml::from_str(yaml).expect("yaml"))
            .expect("nats");
    let source = connector
        .open("s", checkpoint, None, false)
        .await
        .expect("open");
    (connector, source)
}

fn pipeline(ws: &Workspace, stream: &str, extra: &str) -> std::path::PathBuf {
    let yaml = format!(
        "name: n\ncheckpoint: {ckpt}\nsources:\n  clicks:\n    kind: nats\n    url: {url}\n    \
         stream: {stream}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\n{extra}query: \
         {QUERY}\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        url = server(),
    );
    write_pipeline(ws, &yaml)
}

/// NATS in, Parquet out: two runs with more messages between, a few batches each; the sink
/// holds the batch query's rows over every message, once. Messages on other subjects than
/// `filter_subject` are not read.
#[tokio::test]
async fn a_nats_source_reads_every_message_once_across_runs() {
    let ws = Workspace::new();
    let stream = unique("clicks");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 120)).await;
    // Not on the filter subject: never read.
    let other = json_values(&clicks(10_000, 30));
    publish(&js, &format!("{stream}.other"), &other).await;
    let extra = format!("    filter_subject: {stream}.web\n    max_records_per_batch: 50\n");
    let file = pipeline(&ws, &stream, &extra);
    let first = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 120, 80)).await;
    let second = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(second.status.success(), "{}", stderr(&second));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    assert_eq!(got, expected);
    // 230 sequences at most 50 a batch: at least 5 batches.
    let batches = std::fs::read_dir(ws.path("ckpt/commits"))
        .expect("commits")
        .count();
    assert!(batches >= 5, "{batches} batches");
    // Every batch verifies against a replay of its sequences.
    for batch in 0..batches {
        let out = run_bin(
            &[
                "replay",
                &ws.p("ckpt"),
                "--batch",
                &batch.to_string(),
                "--verify",
            ],
            ws.dir.path(),
        );
        assert!(out.status.success(), "batch {batch}: {}", stderr(&out));
    }
    // The offsets are sequences, and inspect says so.
    let out = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("stream {stream} through sequence 230 (from 1)")),
        "{text}"
    );
    // Walk 29 (9): the lag said "at 231 of 231" beside "through sequence 230": one position
    // in two terms. Both say the last sequence now.
    assert!(
        text.contains(&format!(
            "stream {stream} on `{stream}.web` at 230 of 230 (0 behind)"
        )),
        "{text}"
    );
}

/// Walk 40 (2): each batch's read left its consumer on the server for 30 s, so a backfill
/// of many batches on a stream with `max_consumers` failed once the limit was reached. Each
/// read's consumer goes once read: twelve batches run on a stream that allows one.
///
/// Walk 40 (1): the newest committed batch's offsets entry damaged (a NATS source keeps its
/// ranges only there): `repair` leaves it as it is and names the rewind that takes the batch
/// back; the rewind works past the damaged entry, and the next run writes every row once.
#[tokio::test]
async fn consumers_go_once_read_and_a_damaged_newest_entry_is_rewound() {
    let ws = Workspace::new();
    let stream = unique("one_consumer");
    let js = context().await;
    create_stream_of_one_consumer(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 120)).await;
    let file = pipeline(&ws, &stream, "    max_records_per_batch: 10\n");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let commits = std::fs::read_dir(ws.path("ckpt/commits"))
        .expect("commits")
        .count();
    assert_eq!(commits, 12);
    let mut handle = js.get_stream(stream.as_str()).await.expect("stream");
    assert_eq!(handle.info().await.expect("info").state.consumer_count, 0);
    // The two newest entries cut short, as a full disk leaves them.
    let cut = |batch: u64| {
        let path = ws.path(&format!("ckpt/offsets/{batch}"));
        let text = std::fs::read(&path).expect("offsets");
        std::fs::write(&path, &text[..20]).expect("truncate");
        (path, text[..20].to_vec())
    };
    let (newest, cut_text) = cut(11);
    cut(10);
    let repair = run_bin(&["repair", &ws.p("ckpt")], ws.dir.path());
    assert_eq!(repair.status.code(), Some(1), "{}", stderr(&repair));
    let said = stderr(&repair);
    assert!(
        said.contains("offsets/11 is damaged")
            && said.contains("not supported by the `nats` source connector")
            && said.contains("the newest whose offsets entry reads")
            && said.contains(&format!("`sluice rewind {} --to 9`", ws.p("ckpt")))
            && !said.contains("Runs carry on")
            && !said.contains("rebuilt from its commit"),
        "{said}"
    );
    assert_eq!(std::fs::read(&newest).expect("left as it was"), cut_text);
    // Not to batch 10, whose entry says where the next run would start.
    let refused = run_bin(&["rewind", &ws.p("ckpt"), "--to", "10"], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("offsets/10 is damaged")
            && stderr(&refused).contains(&format!("`sluice rewind {} --to 9`", ws.p("ckpt"))),
        "{}",
        stderr(&refused)
    );
    assert!(ws.path("ckpt/commits/11").exists(), "nothing taken back");
    let rewound = run_bin(&["rewind", &ws.p("ckpt"), "--to", "9"], ws.dir.path());
    assert!(rewound.status.success(), "{}", stderr(&rewound));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// A payload that does not decode is named by stream and sequence; with `on_error: skip` it is
/// skipped and counted. Messages gone from the front of the stream (a purge) are named by their
/// sequences when a replay needs them.
#[tokio::test]
async fn a_bad_payload_and_lost_messages_are_named_by_sequence() {
    let ws = Workspace::new();
    let stream = unique("bad");
    let js = context().await;
    create_stream(&js, &stream).await;
    let mut payloads = clicks_json(&ws, 0, 3);
    payloads.insert(2, b"{\"id\": 2, \"page\": \"cut".to_vec());
    publish(&js, &format!("{stream}.x"), &payloads).await;
    let file = pipeline(&ws, &stream, "");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("stream {stream} sequence 3")),
        "{}",
        stderr(&out)
    );
    // Walk 23 (5): the batch stays planned, and the first message says how an edited
    // pipeline file applies to it (here: no batch committed, so a new start), as a file's
    // bad line says; it said so only once `on_error: skip` was set and the run failed again.
    assert!(
        stderr(&out).contains("Batch 0 stays planned with this pipeline file")
            && stderr(&out).contains(&format!("remove {}", ws.p("ckpt"))),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(ws.path("ckpt")).expect("start over, as advised");
    // Walk 29 (5): a message without a payload was skipped without being named in the log,
    // where every other row skipped is.
    publish(&js, &format!("{stream}.x"), &[Vec::new()]).await;
    let file = pipeline(&ws, &stream, "    on_error: skip\n");
    let out = sluice_bin()
        .args(["run", file.to_str().expect("utf-8")])
        .env("SLUICE_LOG", "info")
        .current_dir(ws.dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("3 rows in") && said.contains("2 malformed rows skipped"),
        "{said}"
    );
    // Walk 21 (9): the skipped message said once, by its sequence, not by a line.
    let notes: Vec<&str> = said.lines().filter(|l| l.contains("skipping")).collect();
    assert_eq!(notes.len(), 2, "{said}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&format!("stream {stream} sequence 3:"))),
        "{said}"
    );
    assert!(
        notes.iter().any(|n| n.contains(&format!(
            "stream {stream} sequence 5: the message's payload is empty"
        ))),
        "{said}"
    );
    assert!(notes.iter().all(|n| !n.contains("on_error")), "{said}");
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    let shown = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown.contains("; 2 malformed rows skipped") && !shown.contains("gone from the source"),
        "{shown}"
    );
    // The stream loses its first messages: batch 0 can no longer be read as it was.
    js.get_stream(stream.as_str())
        .await
        .expect("stream")
        .purge()
        .await
        .expect("purge");
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
        ws.dir.path(),
    );
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("sequences 1 to 5") && said.contains("gone from the stream"),
        "{said}"
    );
}

/// No server at the address: the run retries as configured, then exits 1 naming it.
#[test]
fn a_server_that_does_not_answer_is_named_after_the_retries() {
    let ws = Workspace::new();
    let yaml = format!(
        "name: n\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: nats, url: \"nats://127.0.0.1:1\", \
         stream: s, retry: {{ attempts: 2, backoff: 100ms, timeout: 2s }} }}\nquery: SELECT \
         payload FROM s\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
    );
    let file = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("connecting to nats://127.0.0.1:1") && said.contains("after 2 attempts"),
        "{said}"
    );
}

/// Walk 115 (1): a list of servers, as the README writes it, was handed to the client as one
/// server: every run failed after its retries on "invalid port number" (exit 1). Each server
/// of the list is read (`nats://` or not, spaces around the comma); one that does not read is
/// refused before a run, naming it (exit 2, no retries).
#[tokio::test]
async fn a_list_of_servers_in_url_connects_and_a_bad_one_is_named() {
    let ws = Workspace::new();
    let stream = unique("servers");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 30)).await;
    let bare = server().trim_start_matches("nats://");
    let file = pipeline(&ws, &stream, "");
    let listed = std::fs::read_to_string(&file).expect("pipeline").replace(
        &format!("url: {}", server()),
        &format!("url: \"nats://127.0.0.1:1, {bare},{}\"", server()),
    );
    std::fs::write(&file, listed).expect("write");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    for (url, named) in [
        (
            format!("{},nats://h:x", server()),
            "the server nats://h:x does not read",
        ),
        (
            format!("{},,{}", server(), server()),
            "a server of the list is empty",
        ),
    ] {
        let yaml = std::fs::read_to_string(&file).expect("pipeline");
        let start = yaml.find("url: ").expect("url");
        let end = start + yaml[start..].find('\n').expect("line");
        let bad = ws.path("bad.yaml");
        std::fs::write(
            &bad,
            format!("{}url: \"{url}\"{}", &yaml[..start], &yaml[end..]),
        )
        .expect("write");
        let out = run_bin(&["run", bad.to_str().expect("utf-8")], ws.dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(named), "{}", stderr(&out));
    }
}

/// A password written in the URL is refused at planning (it would be kept in the
/// checkpoint's copy of the file); one given as `${VAR}` is taken, and never shown.
#[test]
fn a_password_in_the_url_is_refused_unless_it_is_a_variable() {
    let configure = |url: &str| {
        let yaml = format!("url: \"{url}\"\nstream: s\n");
        sluice::source::configure("nats", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = configure("nats://app:hunter2@127.0.0.1:4222").expect_err("a written password");
    assert!(
        err.contains("${NATS_PASSWORD}") && !err.contains("hunter2"),
        "{err}"
    );
    assert!(configure("nats://app:${NATS_PASSWORD}@127.0.0.1:4222").is_ok());
    // Walk 28 (20): NATS's token form was kept in the checkpoint's copy of the file.
    let err = configure("nats://tok3n@127.0.0.1:4222").expect_err("a written token");
    assert!(
        err.contains("${NATS_TOKEN}") && !err.contains("tok3n"),
        "{err}"
    );
    assert!(configure("nats://${NATS_TOKEN}@127.0.0.1:4222").is_ok());
    // Walk 49 (2): a token or password in the query string was taken and kept too.
    for url in [
        "nats://127.0.0.1:4222?token=MyTokenZZ",
        "nats://127.0.0.1:4222?user=bob&pass=PassZZ",
    ] {
        let err = configure(url).expect_err("a secret in the query");
        assert!(
            err.contains("carries a secret") && !err.contains("ZZ"),
            "{err}"
        );
    }
    assert!(configure("nats://127.0.0.1:4222,nats://127.0.0.1:4223").is_ok());
    // Walk 121 (2): without a scheme, a password or token was taken and kept.
    for url in [
        "u:plainpwZZ@127.0.0.1:4222",
        "plaintokZZ@127.0.0.1:4222",
        "127.0.0.1:4222, plaintokZZ@127.0.0.1:4222",
    ] {
        let err = configure(url).expect_err("a secret without a scheme");
        assert!(!err.contains("ZZ"), "{err}");
    }
    assert!(configure("127.0.0.1:4222, ${NATS_TOKEN}@127.0.0.1:4223").is_ok());
}

/// JSON click payloads, ten a round, at most six sequences a batch.
struct NatsSourceFixture {
    stream: String,
    sent: i64,
}

impl SourceFixture for NatsSourceFixture {
    fn connector(&self) -> Arc<dyn SourceConnector> {
        let yaml = format!(
            "url: {}\nstream: {}\nformat: json\nschema: {{ id: bigint, name: string }}\n\
             metadata_columns: [subject, sequence]\nmax_records_per_batch: 6",
            server(),
            self.stream
        );
        sluice::source::configure("nats", "s", &serde_yaml::from_str(&yaml).expect("yaml"))
            .expect("nats")
    }

    fn add_input(&mut self, round: usize) -> bool {
        let payloads: Vec<Vec<u8>> = (0..10)
            .map(|i| {
                format!("{{\"id\":{},\"name\":\"round {round}\"}}", self.sent + i).into_bytes()
            })
            .collect();
        self.sent += 10;
        let subject = format!("{}.x", self.stream);
        on_own_runtime(async move {
            let js = context().await;
            publish(&js, &subject, &payloads).await;
        });
        true
    }

    fn lose_input(&mut self) -> Option<String> {
        let stream = self.stream.clone();
        on_own_runtime(async move {
            let js = context().await;
            js.get_stream(stream.as_str())
                .await
                .expect("stream")
                .purge()
                .sequence(3)
                .await
                .expect("purge");
        });
        Some("sequences 1 to 2".to_string())
    }
}

#[tokio::test]
async fn the_nats_source_keeps_the_source_contract() {
    let stream = unique("contract");
    let js = context().await;
    create_stream(&js, &stream).await;
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let mut fixture = NatsSourceFixture { stream, sent: 0 };
    source_contract(&mut fixture, &checkpoint).await;
}

/// `queries/nats/views_per_minute_to_postgres.yaml`, pointed at the test servers and a stream
/// holding the shipped sample clicks: the PostgreSQL table it upserts is the batch query over
/// the same clicks, one row per window and page.
#[tokio::test]
async fn the_nats_to_postgres_example_upserts_each_window_once() {
    let ws = Workspace::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("queries/data/clicks");
    let stream = unique("CLICKS");
    let js = context().await;
    create_stream(&js, &stream).await;
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .expect("sample clicks")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("sample file");
        let lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
        publish(&js, &format!("{stream}.web"), &lines).await;
    }
    let table = crate::postgres::unique_table("nats_views");
    let example =
        std::fs::read_to_string(root.join("queries/nats/views_per_minute_to_postgres.yaml"))
            .expect("the example");
    let pg_url = "host=127.0.0.1 port=15432 user=sluice dbname=sluice";
    assert!(example.contains(pg_url) && example.contains("nats://127.0.0.1:14222"));
    let yaml = example
        .replace("nats://127.0.0.1:14222", server())
        .replace(pg_url, crate::postgres::server())
        .replace("stream: CLICKS", &format!("stream: {stream}"))
        .replace("table: nats_views_per_minute", &format!("table: {table}"))
        .replace(
            "checkpoint: checkpoints/nats_views_per_minute",
            &format!("checkpoint: {}", ws.p("ckpt")),
        )
        .replace("max_records_per_batch: 1000", "max_records_per_batch: 50");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let parsed = sluice::pipeline::Pipeline::load(&pipeline).expect("parses");
    let expected = crate::common::sample_clicks_oracle(&data, &parsed.query).await;
    assert!(!expected.is_empty());
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "window_start",
            datafusion::arrow::datatypes::DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Nanosecond,
                None,
            ),
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "page",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "views",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "users",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
    ]));
    assert_eq!(
        crate::postgres::table_rows(crate::postgres::server(), &table, schema).await,
        expected
    );
}

/// Walk 15 (F4): messages purged from the stream after a batch planned them stopped every run,
/// with no option and no next step (Kafka's `fail_on_data_loss` was refused as unknown). The
/// message names the option; set, and the pending batch taken back as the run then advises,
/// the run skips what is gone, counts it, and reads on.
#[tokio::test]
async fn messages_gone_before_their_batch_is_read_can_be_skipped() {
    let ws = Workspace::new();
    let stream = unique("gone");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.x"), &clicks_json(&ws, 0, 40)).await;
    let file = pipeline(&ws, &stream, "");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // 40 more, gone before they are read (batch 1 plans them with the 40 after).
    let gone = Workspace::new();
    publish(&js, &format!("{stream}.x"), &clicks_json(&gone, 40, 40)).await;
    js.get_stream(stream.as_str())
        .await
        .expect("stream")
        .purge()
        .await
        .expect("purge");
    // Walk 20: `replay --verify` of a batch whose messages are gone says it cannot compute
    // the batch again, not the run's advice (skip what is gone, then rewind).
    let replay = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
        ws.dir.path(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        stderr(&replay)
    );
    assert!(
        said.contains("the batch cannot be computed again to verify it")
            && !said.contains("fail_on_data_loss"),
        "{said}"
    );
    publish(&js, &format!("{stream}.x"), &clicks_json(&ws, 80, 40)).await;
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Walk 24 (5), walk 115 (3): the edit applies to the planned batch at once; a rewind
    // first, as once advised, took back rows a sink held of the batch, which the stream could
    // no longer give again.
    assert!(
        stderr(&out).contains("sequences 41 to 80 (of the batch's 41 to 120) are gone")
            && stderr(&out).contains("Set `fail_on_data_loss: false` on the source")
            && stderr(&out).contains("with no rewind")
            && !stderr(&out).contains("sluice rewind"),
        "{}",
        stderr(&out)
    );
    let file = pipeline(&ws, &stream, "    fail_on_data_loss: false\n");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("skipping what is gone")
            && said.contains(", 40 rows gone from the source skipped")
            && !said.contains("malformed rows skipped"),
        "{said}"
    );
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    // The commit log keeps them apart too, and inspect shows them.
    let shown = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(
        shown.contains("; 40 rows gone from the source skipped")
            && !shown.contains("malformed rows skipped"),
        "{shown}"
    );
    // Walk 95: the report said them as malformed rows skipped.
    let html = ws.path("report.html");
    let report = run_bin(
        &[
            "report",
            &ws.p("ckpt"),
            "--html",
            html.to_str().expect("utf-8"),
        ],
        ws.dir.path(),
    );
    assert!(report.status.success(), "{}", stderr(&report));
    let page = std::fs::read_to_string(&html).expect("report");
    assert!(
        page.contains("on_error: skip</code>)</th><td>0</td>")
            && page.contains("<td><strong>40</strong></td>"),
        "{page}"
    );
}

/// Walk 16: a stream that does not exist is the pipeline's mistake: exit 2 naming it and the
/// way out, and the new checkpoint and sink folders are not left behind; made, it is read.
#[tokio::test]
async fn a_stream_that_does_not_exist_is_refused_and_leaves_nothing_behind() {
    let ws = Workspace::new();
    let stream = unique("missing");
    let file = pipeline(&ws, &stream, "");
    let refused = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!("the NATS stream `{stream}` does not exist at"))
            && stderr(&refused).contains("`nats stream add`"),
        "{}",
        stderr(&refused)
    );
    assert!(!ws.path("ckpt").exists(), "the checkpoint left behind");
    assert!(!ws.path("out").exists(), "the sink folder left behind");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 30)).await;
    let run = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 20 (5): a `starting_sequence` past the stream's last message was taken without a
/// word, and the run waited for a message it names that may never come. Refused before a
/// batch (exit 2), naming the stream's last sequence; a sequence inside it then starts there.
#[tokio::test]
async fn a_starting_sequence_past_the_stream_end_is_refused() {
    let ws = Workspace::new();
    let stream = unique("past_end");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 10)).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 10, 20)).await;
    let file = pipeline(&ws, &stream, "    starting_sequence: 900\n");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "`starting_sequence: 900` is past the end of stream `{stream}`"
        )) && said.contains("its last message is sequence 30"),
        "{said}"
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left");
    // Sequences start at 1: the eleventh message is the first of the second file.
    let file = pipeline(&ws, &stream, "    starting_sequence: 11\n");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(ws.path("in/clicks-000000.json")).expect("before the start");
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert!(!expected.is_empty());
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 53 (1): `starting_sequence: latest` was taken again by every run that found nothing
/// new, so a run from cron never read a message: each passed over what was published since
/// the one before. It is resolved once, by the first run, and kept in the checkpoint (as
/// Kafka's `starting_offsets` are): what is published after the first run is read.
#[tokio::test]
async fn latest_is_where_the_first_run_found_the_stream_end() {
    let ws = Workspace::new();
    let stream = unique("latest");
    let js = context().await;
    create_stream(&js, &stream).await;
    // Before the first run: not read (`in/` is the oracle's copy, so this one is not kept).
    publish(&js, &format!("{stream}.web"), &json_values(&clicks(0, 10))).await;
    let latest = pipeline(&ws, &stream, "    starting_sequence: latest\n");
    let out = run_bin(&["run", latest.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 10, 20)).await;
    // An edit of the setting before any batch ran changes nothing either (the start is
    // kept): said, and nothing before the kept start is read.
    let earliest = pipeline(&ws, &stream, "    starting_sequence: earliest\n");
    let out = run_bin(&["run", earliest.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "`starting_sequence: earliest` applies to a checkpoint's first plan only, which \
             took `starting_sequence: latest` (sequence 11"
        ),
        "{}",
        stderr(&out)
    );
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 30, 20)).await;
    let out = run_bin(&["run", latest.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert!(!expected.is_empty());
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 115 (2): `starting_sequence: latest` kept sequence 11 of a stream that was then deleted
/// and made again; once the new stream had grown past 11, a run read it from 11, its first 10
/// messages passed over in silence. The kept start names when its stream was made: a stream
/// made since is refused before a batch (exit 2) with the ways out; the first advised (delete
/// the kept start) reads the new stream's messages published after it.
#[tokio::test]
async fn latest_kept_of_a_stream_made_again_is_refused() {
    let ws = Workspace::new();
    let stream = unique("latest_again");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &json_values(&clicks(0, 10))).await;
    let file = pipeline(&ws, &stream, "    starting_sequence: latest\n");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    js.delete_stream(stream.as_str()).await.expect("delete");
    create_stream(&js, &stream).await;
    publish(
        &js,
        &format!("{stream}.web"),
        &json_values(&clicks(100, 25)),
    )
    .await;
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("the first batch was to start at sequence 11")
            && said.contains("deleted and made again since (it was made at another time)"),
        "{said}"
    );
    assert!(!ws.path("out").exists() || sink_rows(&ws.path("out")).await.is_empty());
    // As advised: the kept start deleted, `latest` is taken of the stream as it is now.
    std::fs::remove_file(ws.path("ckpt/sources/clicks/initial-sequence")).expect("delete");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 200, 15)).await;
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(expected.len(), 15);
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 21 (4): a `filter_subject` changed after a batch read on from where the old filter
/// had read past, so the messages there that the new one takes were never read, without a
/// word. Refused before a batch (exit 2), naming the old filter; put back, the run goes on,
/// and a narrower filter than the old one (which loses nothing) is taken.
#[tokio::test]
async fn a_filter_subject_changed_after_a_batch_is_refused() {
    let ws = Workspace::new();
    let stream = unique("refiltered");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.app"), &clicks_json(&ws, 0, 5)).await;
    // A filter no message has come on yet makes no batch, so it passes nothing over.
    let typo = pipeline(&ws, &stream, &format!("    filter_subject: {stream}.ap\n"));
    let out = run_bin(&["run", typo.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !ws.path("ckpt/commits/0").exists(),
        "a batch that read nothing"
    );
    // Once one has, its batch reads past the other filter's messages.
    publish(&js, &format!("{stream}.ap"), &json_values(&clicks(100, 1))).await;
    let out = run_bin(&["run", typo.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let fixed = pipeline(&ws, &stream, &format!("    filter_subject: {stream}.app\n"));
    let out = run_bin(&["run", fixed.to_str().expect("utf-8")], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("`filter_subject` changed since the last batch")
            && said.contains(&format!("(which read `{stream}.ap` up to sequence 6)")),
        "{said}"
    );
    // Put back (one pipeline file, written again).
    let typo = pipeline(&ws, &stream, &format!("    filter_subject: {stream}.ap\n"));
    let out = run_bin(&["run", typo.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // From every subject to one: nothing the new filter takes was passed over.
    let ws = Workspace::new();
    let all = pipeline(&ws, &stream, "");
    let out = run_bin(&["run", all.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let narrower = pipeline(&ws, &stream, &format!("    filter_subject: {stream}.app\n"));
    let out = run_bin(&["run", narrower.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // Walk 58 (9): narrowing was taken without a word, and could not be undone.
    assert!(
        stderr(&out).contains(&format!(
            "`filter_subject` narrowed from every subject (which the last batch read, up to \
             sequence 6) to `{stream}.app`"
        )),
        "{}",
        stderr(&out)
    );
}

/// Walk 52 (8): with `filter_subject`, messages on the stream's other subjects made batches
/// that read nothing (`max_records_per_batch` sequences at a time, or one batch for each
/// message that came on them under `trigger: every`). A batch is planned only once a message
/// on the filter has come, and its limit counts from the first one: two batches, each with
/// rows, where five were made (three empty); messages on other subjects alone make none.
#[tokio::test]
async fn messages_on_other_subjects_make_no_batch() {
    let ws = Workspace::new();
    let stream = unique("sparse");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 10, 3)).await;
    let other = json_values(&clicks(10_000, 200));
    publish(&js, &format!("{stream}.other"), &other).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 20, 2)).await;
    let extra = format!("    filter_subject: {stream}.web\n    max_records_per_batch: 50\n");
    let file = pipeline(&ws, &stream, &extra);
    let commits = || {
        std::fs::read_dir(ws.path("ckpt/commits"))
            .expect("commits")
            .count()
    };
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(commits(), 2, "batches 1..=50 and 204..=205");
    publish(&js, &format!("{stream}.other"), &other[..20]).await;
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(commits(), 2, "a batch of other subjects' messages alone");
    // The lag counts from the filter's first message not read: none, though the stream
    // has 20 sequences past the position read.
    let out = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "stream {stream} on `{stream}.web` at 205 of 225 (0 behind)"
        )),
        "{text}"
    );
    publish(&js, &format!("{stream}.web"), &json_values(&clicks(30, 1))).await;
    publish(&js, &format!("{stream}.other"), &other[..4]).await;
    let out = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "stream {stream} on `{stream}.web` at 205 of 230 (5 behind)"
        )),
        "{text}"
    );
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert_eq!(
        expected.len(),
        5,
        "every message on the filter passes the query"
    );
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    for batch in ["0", "1"] {
        let out = run_bin(
            &["replay", &ws.p("ckpt"), "--batch", batch, "--verify"],
            ws.dir.path(),
        );
        assert!(out.status.success(), "batch {batch}: {}", stderr(&out));
    }
}

/// Review of walk 52 (8): with `filter_subject`, the position waits at the filter's last
/// message while other subjects' messages come; the stream's limits taking those from its
/// front was then said lost ("messages ... are gone from the stream") though none was on the
/// filter. Where a plan found none on the filter up to there, it is no loss; where no plan
/// saw them, it is still said (one of them may have been on the filter).
#[tokio::test]
async fn other_subjects_messages_the_limits_take_while_waiting_are_no_loss() {
    let ws = Workspace::new();
    let stream = unique("limited");
    let js = context().await;
    create_limited_stream(&js, &stream, 50).await;
    let (web, other) = (format!("{stream}.web"), format!("{stream}.other"));
    let others = json_values(&clicks(10_000, 120));
    publish(&js, &web, &clicks_json(&ws, 10, 1)).await;
    let file = pipeline(&ws, &stream, &format!("    filter_subject: {web}\n"));
    let run = || run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    let commits = || {
        std::fs::read_dir(ws.path("ckpt/commits"))
            .expect("commits")
            .count()
    };
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    publish(&js, &other, &others[..20]).await;
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(commits(), 1, "no batch of other subjects' messages");
    // Sequences 22 to 61, then the filter's 62: the limit of 50 takes 2 to 12, which the
    // run before found none on the filter among.
    publish(&js, &other, &others[20..60]).await;
    publish(&js, &web, &clicks_json(&ws, 20, 1)).await;
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(commits(), 2);
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(expected.len(), 2);
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "1", "--verify"],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Messages no plan saw, gone before the filter's next one came: said.
    publish(&js, &other, &others[60..120]).await;
    publish(&js, &web, &json_values(&clicks(30, 1))).await;
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("are gone from the stream"),
        "{}",
        stderr(&out)
    );
}

/// Walk 115 (5): messages a plan had found on other subjects than the filter's, then taken by
/// the stream's limits with ones no plan saw, were said lost with them (6 to 35, where 6 to 15
/// were checked). Only those after the checked ones are said, with the filter named.
#[tokio::test]
async fn checked_messages_are_not_said_lost_with_unchecked_ones() {
    let ws = Workspace::new();
    let stream = unique("checked");
    let js = context().await;
    create_limited_stream(&js, &stream, 30).await;
    let (web, other) = (format!("{stream}.web"), format!("{stream}.other"));
    let others = json_values(&clicks(10_000, 60));
    publish(&js, &web, &clicks_json(&ws, 0, 5)).await;
    let file = pipeline(&ws, &stream, &format!("    filter_subject: {web}\n"));
    let run = || run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    publish(&js, &other, &others[..10]).await;
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    // Sequences 16 to 65: the limit of 30 takes 6 to 35, of which a plan checked 6 to 15.
    publish(&js, &other, &others[10..60]).await;
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("the messages at sequences 16 to 35 (of the batch's 16 to 65) are gone")
            && said.contains(&format!(
                "may have been on subjects other than `filter_subject: {web}`"
            )),
        "{said}"
    );
}

/// Walk 20 (8): a `filter_subject` outside the stream's subjects was tried again and again
/// and ended in JetStream's raw words. It is refused before a batch (exit 2), naming the
/// setting and the stream's subjects; fixed, the source reads.
#[tokio::test]
async fn a_filter_outside_the_stream_subjects_is_refused_naming_them() {
    let ws = Workspace::new();
    let stream = unique("filtered");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 10)).await;
    let file = pipeline(&ws, &stream, "    filter_subject: other.web\n");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "`filter_subject: other.web` is not among the subjects of stream `{stream}` ({stream}.>)"
        )),
        "{}",
        stderr(&out)
    );
    assert!(!ws.path("ckpt").exists(), "a checkpoint left");
    let file = pipeline(&ws, &stream, &format!("    filter_subject: {stream}.web\n"));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 28 (2): a stream deleted and made again, with fewer messages than were read, was taken
/// for one with nothing new, and later messages below the old sequence were never read,
/// without a word. Planning finds the stream ending below the sequence read up to and stops,
/// naming it, with the ways out.
#[tokio::test]
async fn a_stream_made_again_with_fewer_messages_is_named() {
    let stream = unique("made-again");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.x"), &id_payloads(0, 10)).await;
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let yaml = format!(
        "url: {}\nstream: {stream}\nformat: json\nschema: {{ id: bigint, name: string }}",
        server()
    );
    let (connector, mut source) = nats_source(&yaml, &checkpoint).await;
    let end = source
        .plan(
            sluice::checkpoint::BatchId(0),
            None,
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan")
        .expect("messages there");
    js.delete_stream(stream.as_str()).await.expect("delete");
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.x"), &id_payloads(0, 3)).await;
    let said = source
        .plan(
            sluice::checkpoint::BatchId(1),
            Some(&end),
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect_err("a stream ending below the sequence read")
        .to_string();
    assert!(
        said.contains("its last sequence is 3, below 10")
            && said.contains("deleted and made again")
            && said.contains("fail_on_data_loss: false"),
        "{said}"
    );
    // Walk 53 (5): `inspect`'s lag said "at 10 of 3 (0 behind)", as healthy; it says the
    // stream ends below the position read.
    let lag = connector.lag("s", &end).await.expect("lag").expect("a lag");
    assert!(
        lag.parts[0].ends_below_read && lag.parts[0].lag == 0,
        "{lag:?}"
    );
    // Walk 29 (1): the advice followed (`fail_on_data_loss: false`) read on from the old
    // offset, so the new records below it were never read, and nothing said so. The source
    // goes back to the first offset, and that batch reads every record there is now (walk 70
    // (8): in a batch that read nothing, so `--trigger once` read none); a replay of it reads
    // the same, and the next batch nothing more.
    let (_, mut source) =
        nats_source(&format!("{yaml}\nfail_on_data_loss: false"), &checkpoint).await;
    let back = source
        .plan(
            sluice::checkpoint::BatchId(1),
            Some(&end),
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan")
        .expect("a batch that goes back");
    for _ in 0..2 {
        let input = source.read(Some(&end), &back, None).await.expect("read");
        assert_eq!(input.rows, 3, "every record of the stream made again");
    }
    // Audit 86 #1: a later batch the stream had nothing new for carries that end forward
    // (another source's input ran it); it read the new stream's messages again.
    let carried = source.read(Some(&back), &back, None).await.expect("read");
    assert_eq!(carried.rows, 0, "nothing between an end and itself");
    let next = source
        .plan(
            sluice::checkpoint::BatchId(2),
            Some(&back),
            sluice::source::Admission::Unlimited,
        )
        .await
        .expect("plan");
    assert!(next.is_none(), "nothing more: {next:?}");
}

/// A stream of `before` messages, a source (`yaml` its settings) over it on a checkpoint in
/// `dir`, and its first batch's end; then the stream deleted and made again with `after`.
struct MadeAgain {
    yaml: String,
    _dir: tempfile::TempDir,
    checkpoint: sluice::storage::Location,
    source: Box<dyn sluice::source::Source>,
    end: serde_json::Value,
}

async fn planned_then_made_again(prefix: &str, before: i64, after: i64) -> MadeAgain {
    let stream = unique(prefix);
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.x"), &id_payloads(0, before)).await;
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let yaml = format!(
        "url: {}\nstream: {stream}\nformat: json\nschema: {{ id: bigint, name: string }}",
        server()
    );
    let (_, mut source) = nats_source(&yaml, &checkpoint).await;
    let end = plan_next(&mut source, 0, None)
        .await
        .expect("plan")
        .expect("messages there");
    js.delete_stream(stream.as_str()).await.expect("delete");
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.x"), &id_payloads(100, after)).await;
    MadeAgain {
        yaml,
        _dir: dir,
        checkpoint,
        source,
        end,
    }
}

/// Audit 86 #3: a batch planned over a stream that was then deleted and made again with
/// fewer messages, read again after a crash, read the new stream's messages as the batch's
/// and committed them. Refused naming the sequences; under `fail_on_data_loss: false` the
/// batch reads none of them, counted lost, and the next plan reads the new stream from its
/// start, once.
#[tokio::test]
async fn a_batch_read_after_its_stream_was_made_again_reads_none_of_the_new_stream() {
    let made = planned_then_made_again("replay-made-again", 5, 2).await;
    let said = made
        .source
        .read(None, &made.end, None)
        .await
        .expect_err("the batch's messages are gone")
        .to_string();
    assert!(
        said.contains(
            "the messages at sequences 1 to 5 are gone from the stream: it now ends at sequence 2"
        ),
        "{said}"
    );
    let (_, mut source) = nats_source(
        &format!("{}\nfail_on_data_loss: false", made.yaml),
        &made.checkpoint,
    )
    .await;
    let input = source.read(None, &made.end, None).await.expect("read");
    assert_eq!((input.rows, input.lost), (0, 5), "none of the new stream's");
    let next = plan_next(&mut source, 1, Some(&made.end))
        .await
        .expect("plan")
        .expect("the new stream's messages");
    let input = source
        .read(Some(&made.end), &next, None)
        .await
        .expect("read");
    assert_eq!(input.rows, 2, "the new stream's messages, once");
}

/// The review of audit 86: a stream deleted and made again that had grown past the sequence
/// read up to was taken for the old one: its messages up to there were never read, and a
/// batch planned over the old one, read again after a crash, read the new one's. Told by
/// when the stream was made: the plan stops naming it, and the read refuses the batch.
#[tokio::test]
async fn a_stream_made_again_past_the_sequence_read_is_told_by_its_making() {
    let mut made = planned_then_made_again("made-again-longer", 3, 5).await;
    let said = made
        .source
        .read(None, &made.end, None)
        .await
        .expect_err("the batch's messages are gone")
        .to_string();
    assert!(
        said.contains(
            "the messages at sequences 1 to 3 are gone from the stream: it was deleted and made again"
        ),
        "{said}"
    );
    let said = plan_next(&mut made.source, 1, Some(&made.end))
        .await
        .expect_err("a stream made again")
        .to_string();
    assert!(said.contains("it was made at another time"), "{said}");
    let (_, mut source) = nats_source(
        &format!("{}\nfail_on_data_loss: false", made.yaml),
        &made.checkpoint,
    )
    .await;
    let back = plan_next(&mut source, 1, Some(&made.end))
        .await
        .expect("plan")
        .expect("the new stream from its start");
    let input = source
        .read(Some(&made.end), &back, None)
        .await
        .expect("read");
    assert_eq!(
        input.rows, 5,
        "every message of the stream made again, once"
    );
}

/// The review of walk 70 (8): a stream made again and still empty when a batch is planned
/// (`fail_on_data_loss: false`) made no batch, so the position stayed at the old sequence; once
/// the new stream grew past it, it was no longer seen as made again, and its messages below
/// that sequence were never read. A batch that reads nothing takes the position back.
#[tokio::test]
async fn a_stream_made_again_and_still_empty_is_read_from_its_start_once_it_fills() {
    let stream = unique("made-again-empty");
    let js = context().await;
    create_stream(&js, &stream).await;
    publish(&js, &format!("{stream}.x"), &id_payloads(0, 3)).await;
    let dir = tempfile::tempdir().expect("dir");
    let checkpoint = checkpoint_in(dir.path());
    let yaml = format!(
        "url: {}\nstream: {stream}\nformat: json\nschema: {{ id: bigint, name: string }}\n\
         fail_on_data_loss: false",
        server()
    );
    let (_, mut source) = nats_source(&yaml, &checkpoint).await;
    async fn plan(
        source: &mut Box<dyn sluice::source::Source>,
        batch: u64,
        start: Option<serde_json::Value>,
    ) -> Option<serde_json::Value> {
        source
            .plan(
                sluice::checkpoint::BatchId(batch),
                start.as_ref(),
                sluice::source::Admission::Unlimited,
            )
            .await
            .expect("plan")
    }
    let first = plan(&mut source, 0, None).await.expect("three messages");
    js.delete_stream(stream.as_str()).await.expect("delete");
    create_stream(&js, &stream).await;
    let back = plan(&mut source, 1, Some(first.clone()))
        .await
        .expect("a batch that takes the position back");
    let input = source.read(Some(&first), &back, None).await.expect("read");
    assert_eq!(input.rows, 0);
    publish(&js, &format!("{stream}.x"), &id_payloads(10, 5)).await;
    let next = plan(&mut source, 2, Some(back.clone()))
        .await
        .expect("the new stream's messages");
    let input = source.read(Some(&back), &next, None).await.expect("read");
    assert_eq!(input.rows, 5, "every message of the stream made again");
}

/// The lines of the `.jsonl` files in `folder` (a JSON files sink's), sorted.
fn jsonl_lines(folder: &std::path::Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(folder).expect("out").flatten() {
        if entry.path().extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(entry.path()).expect("sink file");
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

/// Walk 81 (4): a message's headers came in another order in each process (the client keeps
/// them in a hash map): `headers[1]` changed from run to run, and `replay --verify` failed on
/// every batch with headers. They are in key order, a key's values in their order on the
/// wire, every time.
#[tokio::test]
async fn headers_read_in_one_order_every_time() {
    let ws = Workspace::new();
    let stream = unique("headers");
    let js = context().await;
    create_stream(&js, &stream).await;
    for i in 0..20 {
        let mut headers = async_nats::HeaderMap::new();
        for (key, value) in [("b", "2"), ("e", "5"), ("a", "1"), ("d", "4"), ("c", "3")] {
            headers.insert(key, value);
        }
        headers.append("x", "first");
        headers.append("x", "second");
        js.publish_with_headers(
            format!("{stream}.x"),
            headers,
            format!("{{\"id\":{i}}}").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    }
    let yaml = format!(
        "name: h\ncheckpoint: {ckpt}\nsources:\n  m:\n    kind: nats\n    url: {url}\n    \
         stream: {stream}\n    format: json\n    schema: {{ id: bigint }}\n    \
         metadata_columns: [headers]\n    max_records_per_batch: 7\n\
         query: SELECT id, headers FROM m\n\
         trigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        url = server(),
    );
    let file = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = jsonl_lines(&ws.path("out"));
    // The JSON sink writes a binary value in hex.
    let headers: Vec<String> = [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "4"),
        ("e", "5"),
        ("x", "first"),
        ("x", "second"),
    ]
    .iter()
    .map(|(key, value)| {
        let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{{\"key\":\"{key}\",\"value\":\"{hex}\"}}")
    })
    .collect();
    let mut expected: Vec<String> = (0..20)
        .map(|i| format!("{{\"id\":{i},\"headers\":[{}]}}", headers.join(",")))
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
    for batch in 0..3 {
        assert_verified(&ws, "ckpt", batch);
    }
}

/// Publishes `payload` on `subject` with the headers block `headers` exactly as given, over
/// the NATS protocol itself (`HPUB`): the client library refuses to write malformed headers.
fn publish_raw_headers(subject: &str, headers: &str, payload: &str) {
    use std::io::{BufRead, BufReader, Write};
    let address = server().trim_start_matches("nats://");
    let socket = std::net::TcpStream::connect(address).expect("connect to NATS");
    let mut reader = BufReader::new(socket.try_clone().expect("socket"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("INFO");
    assert!(line.starts_with("INFO"), "{line}");
    let mut socket = socket;
    write!(
        socket,
        "CONNECT {{\"verbose\":false,\"headers\":true,\"protocol\":1}}\r\n\
         HPUB {subject} {} {}\r\n{headers}{payload}\r\nPING\r\n",
        headers.len(),
        headers.len() + payload.len()
    )
    .expect("HPUB");
    line.clear();
    reader.read_line(&mut line).expect("PONG");
    assert_eq!(line.trim_end(), "PONG", "the server refused the message");
}

/// Audit 93b (S1): a message whose headers the NATS client's parser refuses (a line without a
/// colon, a key with a space; the server stores it as written) dropped the client's
/// connection each time it came, so the batch's read stalled at it on every run, for good. The
/// read goes on through the stream's message-get API, which gives the headers as written: every
/// message read once, that one's headers as written, and the batch recomputes the same.
#[tokio::test]
async fn a_message_with_headers_the_client_refuses_is_read() {
    let ws = Workspace::new();
    let stream = unique("bad_headers");
    let js = context().await;
    create_stream(&js, &stream).await;
    let subject = format!("{stream}.x");
    publish(&js, &subject, &id_payloads(0, 3)).await;
    publish_raw_headers(
        &subject,
        "NATS/1.0\r\nno colon here\r\nmy key: v\r\n\r\n",
        "{\"id\":3,\"name\":\"n3\"}",
    );
    // Acknowledged after it, so it is stored.
    publish(&js, &subject, &id_payloads(4, 3)).await;
    let yaml = format!(
        "name: h\ncheckpoint: {ckpt}\nsources:\n  m:\n    kind: nats\n    url: {url}\n    \
         stream: {stream}\n    format: json\n    schema: {{ id: bigint, name: string }}\n    \
         metadata_columns: [headers]\n    \
         retry: {{ attempts: 1, backoff: 100ms, timeout: 2s }}\n\
         query: SELECT id, headers FROM m\n\
         trigger: available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
        url = server(),
    );
    let file = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = jsonl_lines(&ws.path("out"));
    // The JSON sink writes a binary value in hex ("v" is 76).
    let mut expected: Vec<String> = (0..7)
        .map(|i| match i {
            // A null is left out of a JSON line (as Spark's JSON writer leaves it out).
            3 => "{\"id\":3,\"headers\":[{\"key\":\"my key\",\"value\":\"76\"},\
                  {\"key\":\"no colon here\"}]}"
                .to_string(),
            i => format!("{{\"id\":{i}}}"),
        })
        .collect();
    expected.sort();
    assert_eq!(lines, expected);
    assert_verified(&ws, "ckpt", 0);
}

/// Walk 81 (3): with `filter_subject`, two messages on it published after the last batch and
/// taken by the stream's `max_msgs` before the next run (other subjects' messages pushed them
/// out) were lost with exit 0 and no word: no plan had seen them, so they may have been on the
/// filter (they were). The run fails naming them; with `fail_on_data_loss: false` they are
/// skipped and counted, and later messages on the filter are read.
#[tokio::test]
async fn messages_on_the_filter_the_limits_take_before_a_plan_are_lost_not_passed_over() {
    let ws = Workspace::new();
    let stream = unique("evicted");
    let js = context().await;
    create_limited_stream(&js, &stream, 10).await;
    let (keep, noise) = (format!("{stream}.keep"), format!("{stream}.noise"));
    publish(&js, &keep, &clicks_json(&ws, 0, 3)).await;
    let with = |extra: &str| {
        pipeline(
            &ws,
            &stream,
            &format!("    filter_subject: {keep}\n{extra}"),
        )
    };
    let file = with("");
    let run =
        |file: &std::path::Path| run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    let out = run(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    // Sequences 4 and 5 on the filter, then 10 others: the stream keeps 6 to 15.
    let gone = Workspace::new();
    publish(&js, &keep, &clicks_json(&gone, 3, 2)).await;
    publish(&js, &noise, &json_values(&clicks(100, 10))).await;
    let out = run(&file);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the messages at sequences 4 to 5")
            && stderr(&out).contains("are gone from the stream"),
        "{}",
        stderr(&out)
    );
    // As advised: the edit applies to the planned batch, with no rewind.
    let file = with("    fail_on_data_loss: false\n");
    let out = run(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(", 2 rows gone from the source skipped"),
        "{}",
        stderr(&out)
    );
    // Two more on the filter push out two others, which a plan saw: no loss.
    publish(&js, &keep, &clicks_json(&ws, 5, 2)).await;
    let out = run(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("gone"), "{}", stderr(&out));
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Walk 81: a `workqueue` stream failed each read ("consumer in pull mode requires ack
/// policy"), retried, then exited 1 leaving batch 0 planned. It is refused before a batch
/// (exit 2), naming the retention and the way on; an `interest` stream is read, with a
/// warning that messages others acknowledge may be gone first.
#[tokio::test]
async fn a_work_queue_stream_is_refused_and_an_interest_stream_warned_of() {
    let ws = Workspace::new();
    let js = context().await;
    for (retention, name) in [
        (jetstream::stream::RetentionPolicy::WorkQueue, "workqueue"),
        (jetstream::stream::RetentionPolicy::Interest, "interest"),
    ] {
        let stream = unique(name);
        js.create_stream(jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{stream}.>")],
            retention,
            ..Default::default()
        })
        .await
        .expect("create stream");
        publish(&js, &format!("{stream}.x"), &clicks_json(&ws, 0, 3)).await;
        let _ = std::fs::remove_dir_all(ws.path("ckpt"));
        let file = pipeline(&ws, &stream, "");
        let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
        let said = stderr(&out);
        if name == "workqueue" {
            assert_eq!(out.status.code(), Some(2), "{said}");
            assert!(
                said.contains(&format!("stream `{stream}` has `workqueue` retention"))
                    && said.contains("`limits` retention"),
                "{said}"
            );
            assert!(!ws.path("ckpt/offsets/0").exists(), "a batch was planned");
        } else {
            assert!(out.status.success(), "{said}");
            assert!(
                said.contains(&format!("stream `{stream}` has `interest` retention")),
                "{said}"
            );
        }
    }
}

/// Audit 89a: messages purged from the front while a batch was read (its first read failed,
/// here on the stream's consumer limit, and was tried again) were skipped: the server starts a
/// read at the first message still there, and the batch committed 10 of its 20, exit 0. The
/// batch now fails naming the sequences gone, as `fail_on_data_loss` says.
#[tokio::test]
async fn messages_purged_while_a_batch_is_read_are_not_skipped_unsaid() {
    let ws = Workspace::new();
    let stream = unique("purged_mid_read");
    let js = context().await;
    create_stream_of_one_consumer(&js, &stream).await;
    publish(&js, &format!("{stream}.web"), &clicks_json(&ws, 0, 20)).await;
    let handle = js.get_stream(stream.as_str()).await.expect("stream");
    // A consumer that takes the one the stream allows: the batch's read fails until it goes.
    handle
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("blocker".into()),
            ..Default::default()
        })
        .await
        .expect("blocker");
    let file = pipeline(
        &ws,
        &stream,
        "    retry: { attempts: 5, backoff: 2s, timeout: 5s }\n",
    );
    let mut child = sluice_bin()
        .args(["run", file.to_str().expect("utf-8"), "--progress", "none"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    // Its lines as they come: once the read has failed once, the front goes, then the blocker.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut said = String::new();
    while !said.contains("(attempt 1 of 5)") {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the read never failed once: {said}"));
        said.push_str(&line);
        said.push('\n');
    }
    handle.purge().sequence(11).await.expect("purge");
    handle
        .delete_consumer("blocker")
        .await
        .expect("delete blocker");
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    said.extend(lines.try_iter().map(|l| l + "\n"));
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(
        said.contains("the messages at sequences 1 to 10")
            && said.contains("while the batch was read"),
        "{said}"
    );
    assert!(!ws.path("ckpt/commits/0").exists(), "{said}");
}
