//! The checkpoint and the files sink on a real S3 server: `moto[server]` from PyPI, started
//! by the test on a free loopback port (`.ci/run` installs it). Create-only log entries go
//! through S3's conditional put (`If-None-Match: *`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// A moto S3 server, stopped when dropped.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let mut moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = moto.child.try_wait().expect("wait") {
                panic!("moto server exited with {status}; is `moto[server]` installed?");
            }
            assert!(Instant::now() < deadline, "moto server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto.create_bucket("sluice");
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_bucket(&mut self, bucket: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "create bucket: {response}"
        );
    }

    /// Puts `key` (any key, a trailing `/` too, which object_store's paths cannot name) with
    /// an empty body, by a plain HTTP request.
    fn put_empty(&self, key: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            stream,
            "PUT /sluice/{key} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "put {key}: {response}"
        );
    }

    pub fn sluice(&self) -> Command {
        let mut cmd = sluice_bin();
        cmd.env("AWS_ENDPOINT", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        cmd
    }

    /// Runs `sluice ARGS` against this server; it must succeed.
    fn sluice_ok(&self, args: &[&str]) -> std::process::Output {
        let out = self.sluice().args(args).output().expect("run sluice");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn store(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name("sluice")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .build()
            .expect("s3 store")
    }

    /// What a plain reader sees under `s3://sluice/out/`.
    async fn sink_rows(&self) -> Vec<String> {
        parquet_rows_of(self, "SELECT * FROM sink").await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sql` over the Parquet files under `s3://sluice/out/`, as the table `sink`.
async fn parquet_rows_of(moto: &Moto, sql: &str) -> Vec<String> {
    let ctx = datafusion::prelude::SessionContext::new();
    let url = url::Url::parse("s3://sluice").expect("url");
    ctx.register_object_store(&url, Arc::new(moto.store()));
    parquet_rows(&ctx, "s3://sluice/out/", sql).await
}

/// A pipeline over local input with its checkpoint at `checkpoint` and its sink at
/// `s3://sluice/out`.
fn s3_pipeline(ws: &Workspace, query: &str, checkpoint: &str) -> std::path::PathBuf {
    let yaml = pipeline_yaml(ws, "json", query, 1, "")
        .replace(&ws.p("ckpt"), checkpoint)
        .replace(&ws.p("out"), "s3://sluice/out");
    write_pipeline(ws, &yaml)
}

#[test]
fn checkpoint_and_sink_on_s3_are_exactly_once_through_kills() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 8, 50, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/ckpt");
    let pipeline = pipeline.to_str().expect("utf-8");

    // Kill a few runs part-way, then let one finish.
    let mut kills = 0;
    for delay_ms in [60, 120, 180, 240, 300, 360] {
        let mut child = moto
            .sluice()
            .args(["run", pipeline, "--progress", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().expect("reap");
    }
    moto.sluice_ok(&["run", pipeline, "--progress", "json"]);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(moto.sink_rows());
    let (n, d, l) = compare(&expected, &got);
    println!("s3: {kills} kills, {n} rows compared, {d} duplicates, {l} losses");
    assert!(kills >= 1, "killed {kills} times");
    assert_eq!((d, l), (0, 0));

    // The server honours create-only puts, which the log entries rely on.
    let existing = object_store::path::Path::from("ckpt/offsets/0");
    let refused = rt.block_on(async {
        use object_store::{ObjectStore, PutMode, PutOptions};
        moto.store()
            .put_opts(
                &existing,
                b"v1\n".to_vec().into(),
                PutOptions::from(PutMode::Create),
            )
            .await
    });
    assert!(
        matches!(refused, Err(object_store::Error::AlreadyExists { .. })),
        "{refused:?}"
    );

    // The checkpoint on S3 reads back, and a second run finds nothing new.
    let inspect = moto.sluice_ok(&["inspect", "s3://sluice/ckpt", "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(view["last_committed"], 7);
    assert_eq!(view["pending"], serde_json::Value::Null);
    let again = moto.sluice_ok(&["run", pipeline, "--progress", "json"]);
    assert!(again.stdout.is_empty(), "nothing new: no batch");
}

/// Every object under the bucket with its bytes: what a run changed shows as a difference in
/// content, not only in ETag.
async fn contents(store: &object_store::aws::AmazonS3) -> Vec<(String, bytes::Bytes)> {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let mut objects = Vec::new();
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list bucket");
    for meta in listed {
        let bytes = store
            .get(&meta.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        objects.push((meta.location.to_string(), bytes));
    }
    objects.sort();
    objects
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig}");
}

/// Starts the run that will be paused, with JSON progress, and waits for its first `batches`
/// batches.
fn start_old_run(moto: &Moto, pipeline: &str, trigger: &str, batches: u64) -> Child {
    use std::io::BufRead;
    let mut old = moto
        .sluice()
        .args(["run", pipeline, "--trigger", trigger, "--progress", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the old run");
    let mut events = std::io::BufReader::new(old.stdout.take().expect("stdout")).lines();
    for n in 0..batches {
        let line = events.next().expect("a progress event").expect("read");
        let event: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(event["batchId"], n);
    }
    old
}

/// Waits for a resumed late run to stop, and checks that it stopped fenced by the newer epoch.
fn assert_fenced(old: &mut Child, epoch: u64, newer: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
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
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("a newer run (epoch {newer})"))
            && err.contains(&format!(
                "this run (epoch {epoch}) stops without changing anything"
            )),
        "{err}"
    );
}

/// Writes `files` one-file batches of input and runs a new run over them to the end: ten
/// batches with `retain_batches: 2` purge every entry the paused run knew.
fn newer_run_goes_ten_batches_on(moto: &Moto, ws: &Workspace, pipeline: &str, first_file: usize) {
    write_clicks(&ws.path("in"), "json", 10, 40, first_file);
    let new = moto.sluice_ok(&["run", pipeline, "--progress", "json"]);
    let batches = String::from_utf8_lossy(&new.stdout).lines().count();
    assert!(batches >= 10, "the new run ran {batches} batches");
}

/// A driver paused (SIGSTOP) after its first commit while a newer run finishes ten batches and
/// purges everything the paused one knew (`retain_batches: 2`), then resumed (SIGCONT): its
/// epoch is older, so it stops before its next write, naming the newer epoch, and no byte of
/// any log entry or output file changes. The query calls `now()`, so output the late run
/// computed would differ from the newer run's.
#[test]
fn a_paused_run_that_wakes_up_after_the_purge_is_fenced_by_epoch() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 40, 0);
    let query = "SELECT id, page, amount, now() AS at FROM clicks WHERE amount > 25";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "")
        .replace(&ws.p("ckpt"), "s3://sluice/zombie-ckpt")
        .replace(&ws.p("out"), "s3://sluice/out")
        .replace("trigger:", "retain_batches: 2\ntrigger:");
    let pipeline = write_pipeline(&ws, &yaml);
    let pipeline = pipeline.to_str().expect("utf-8");

    // The pause must fall between batches, not in the gap between a fence check and the write
    // it guards (docs/design.md §1.5 leaves that one write to the late run): a trigger
    // interval far longer than a batch puts it in the wait before batch 1's planning.
    let mut old = start_old_run(&moto, pipeline, "every 5s", 1);
    signal(&old, "-STOP");
    newer_run_goes_ten_batches_on(&moto, &ws, pipeline, 1);

    let rt = tokio::runtime::Runtime::new().expect("rt");
    let before = rt.block_on(contents(&moto.store()));
    assert!(
        !before.iter().any(|(key, _)| key == "zombie-ckpt/offsets/1"),
        "the new run purged what the paused one knew"
    );
    signal(&old, "-CONT");
    assert_fenced(&mut old, 0, 1);
    let after = rt.block_on(contents(&moto.store()));
    let changed: Vec<&String> = after
        .iter()
        .filter(|o| !before.contains(o))
        .chain(before.iter().filter(|o| !after.contains(o)))
        .map(|(key, _)| key)
        .collect();
    assert!(
        changed.is_empty(),
        "the late run changed no byte: {changed:?}"
    );
    let expected = rt.block_on(oracle(
        &ws.path("in"),
        "json",
        "SELECT id, page, amount FROM clicks WHERE amount > 25",
    ));
    let got = rt.block_on(parquet_rows_of(&moto, "SELECT id, page, amount FROM sink"));
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

/// The same with the pause inside a batch (its offsets entry written, its commit not): the
/// newer run finishes that batch and ten more, purging it; the resumed run stops at its next
/// check, naming the newer epoch. Nothing it could have staged under its own epoch before the
/// pause aside, no byte changes.
#[test]
fn a_run_paused_mid_batch_that_wakes_up_after_the_purge_is_fenced_by_epoch() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let query = "SELECT page, count(*) AS n, max(amount) AS top, count(DISTINCT user_id) AS users \
                 FROM clicks GROUP BY page";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "")
        .replace(&ws.p("ckpt"), "s3://sluice/midbatch-ckpt")
        .replace(&ws.p("out"), "s3://sluice/out")
        .replace(
            "trigger:",
            "output_mode: update\nretain_batches: 2\ntrigger:",
        );
    let pipeline = write_pipeline(&ws, &yaml);
    let pipeline = pipeline.to_str().expect("utf-8");

    let mut old = start_old_run(&moto, pipeline, "every 100ms", 3);
    // A large file makes batch 3 long; pause the run as soon as its offsets entry lands.
    write_clicks(&ws.path("in"), "json", 1, 400_000, 3);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = moto.store();
    let exists = |key: &str| {
        use object_store::ObjectStoreExt;
        rt.block_on(store.head(&object_store::path::Path::from(key)))
            .is_ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !exists("midbatch-ckpt/offsets/3") {
        assert!(Instant::now() < deadline, "batch 3 was never planned");
        std::thread::sleep(Duration::from_millis(2));
    }
    signal(&old, "-STOP");
    assert!(
        !exists("midbatch-ckpt/commits/3"),
        "the run must be paused inside batch 3"
    );

    // A newer run finishes batch 3 and goes ten batches on.
    newer_run_goes_ten_batches_on(&moto, &ws, pipeline, 4);
    assert!(!exists("midbatch-ckpt/offsets/3"), "batch 3 is purged");
    let own_staging = "out/_sluice/staging/3/0-";
    let others = |objects: Vec<(String, bytes::Bytes)>| -> Vec<(String, bytes::Bytes)> {
        objects
            .into_iter()
            .filter(|(key, _)| !key.starts_with(own_staging))
            .collect()
    };
    let before = others(rt.block_on(contents(&store)));
    signal(&old, "-CONT");
    assert_fenced(&mut old, 0, 1);
    assert!(
        others(rt.block_on(contents(&store))) == before,
        "the late run changed no log entry, state file or sink file"
    );
}

/// Walk 92: a run paused while it started (its epoch taken; here, before it copies its
/// pipeline file), resumed after a newer run with
/// a query of one more column (`allow_output_schema_change: true`) had finished, wrote its
/// older `sink` record back before it found itself superseded: the old query then ran on into
/// the sink unrefused, its files of fewer columns after the newer ones. A superseded run
/// writes no record: the old query is refused, naming the column it drops.
#[test]
fn a_superseded_run_paused_at_its_start_writes_no_sink_record() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT id, page FROM clicks", 1, "")
        .replace(&ws.p("ckpt"), "s3://sluice/record-ckpt");
    let pipeline = write_pipeline(&ws, &yaml);
    let pipeline = pipeline.to_str().expect("utf-8");
    let run = |file: &str| {
        moto.sluice()
            .args(["run", file, "--progress", "none"])
            .output()
            .expect("run")
    };
    let first = run(pipeline);
    assert!(first.status.success(), "{}", stderr(&first));
    write_clicks(&ws.path("in"), "json", 1, 20, 1);
    let mut old = moto
        .sluice()
        .args(["run", pipeline, "--progress", "none"])
        .env("SLUICE_STOP_AT", "record-ckpt/pipelines/")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_stopped(&old);
    let wide = ws.path("wide.yaml");
    std::fs::write(
        &wide,
        yaml.replace("SELECT id, page FROM", "SELECT id, page, amount FROM")
            .replace("trigger:", "allow_output_schema_change: true\ntrigger:"),
    )
    .expect("wide pipeline");
    let newer = run(wide.to_str().expect("utf-8"));
    assert!(newer.status.success(), "{}", stderr(&newer));
    signal(&old, "-CONT");
    assert_fenced(&mut old, 1, 2);
    write_clicks(&ws.path("in"), "json", 1, 20, 2);
    let narrow = run(pipeline);
    assert_eq!(narrow.status.code(), Some(2), "{}", stderr(&narrow));
    assert!(stderr(&narrow).contains("amount"), "{}", stderr(&narrow));
}

/// `engine: distributed` with everything on S3: the input, the checkpoint and the sink. Two
/// `sluice worker` processes, with the driver's environment (its store settings and
/// credentials), read their shares of each batch's files from the bucket; the driver writes
/// every checkpoint entry and publishes the sink. The sink holds the batch SQL's rows.
#[cfg(feature = "distributed")]
#[test]
fn workers_read_input_from_s3_for_a_checkpoint_and_sink_on_s3() {
    use crate::distributed::{WorkerProcess, distributed, read_files, run_logged};
    use object_store::ObjectStoreExt;
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 6, 300, 0);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = moto.store();
    for entry in std::fs::read_dir(ws.path("in")).expect("in/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let bytes = std::fs::read(&path).expect("input file");
        rt.block_on(store.put(
            &object_store::path::Path::from(format!("in/{name}")),
            bytes.into(),
        ))
        .expect("upload the input");
    }
    let workers = [
        WorkerProcess::start_from(&ws, "worker-a", moto.sluice()),
        WorkerProcess::start_from(&ws, "worker-b", moto.sluice()),
    ];
    let query = "SELECT id, user_id, upper(page) AS page, amount FROM clicks WHERE amount > 20";
    let yaml = pipeline_yaml(
        &ws,
        "json",
        query,
        3,
        &distributed(&[&workers[0], &workers[1]], ""),
    )
    .replace(&ws.p("in"), "s3://sluice/in")
    .replace(&ws.p("ckpt"), "s3://sluice/distributed-ckpt")
    .replace(&ws.p("out"), "s3://sluice/out");
    let pipeline = write_pipeline(&ws, &yaml);
    let (_, said) = run_logged(moto.sluice(), &pipeline, "none");
    // Two batches of three files, each read by the workers and counted from what they said.
    assert_eq!(said.matches("run on the workers").count(), 2, "{said}");
    assert!(!said.contains("failed on the workers"), "{said}");
    assert!(!said.contains("reading a part the query did not"), "{said}");
    for worker in &workers {
        assert!(read_files(worker), "{}", worker.said());
    }
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    assert!(!expected.is_empty());
    let got = rt.block_on(moto.sink_rows());
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    let inspect = moto.sluice_ok(&["inspect", "s3://sluice/distributed-ckpt", "--json"]);
    let view: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("json");
    assert_eq!(view["last_committed"], 1);
}

/// Walk 19 (9): a bucket that does not exist was said with S3's whole XML answer. The
/// message gives the store's code and words, names the bucket, and says what to do; with the
/// bucket made, the same pipeline runs.
#[test]
fn a_bucket_that_does_not_exist_is_named_without_the_xml() {
    let mut moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let pipeline = s3_pipeline(&ws, "SELECT * FROM clicks", "s3://nobucket/ckpt");
    let out = moto
        .sluice()
        .args(["run", pipeline.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the store answered NoSuchBucket")
            && said.contains("Make the bucket `nobucket` first")
            && !said.contains("<?xml"),
        "{said}"
    );
    moto.create_bucket("nobucket");
    // Walk 110 (3): a key id without its secret was "Missing SecretAccessKey" with advice to
    // fix the path.
    let half = moto
        .sluice()
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["run", pipeline.to_str().expect("utf-8")])
        .output()
        .expect("run");
    let said = stderr(&half);
    assert!(!half.status.success(), "{said}");
    assert!(
        said.contains("AWS_ACCESS_KEY_ID is set and AWS_SECRET_ACCESS_KEY is not")
            && !said.contains("fix `"),
        "{said}"
    );
    // Walk 110 (4): https:// to a store of plain HTTP was said as no server answering.
    let tls = moto
        .sluice()
        .env(
            "AWS_ENDPOINT",
            moto.endpoint().replace("http://", "https://"),
        )
        .env("SLUICE_STORE_TIMEOUT", "3s")
        .args(["inspect", "s3://nobucket/ckpt"])
        .output()
        .expect("inspect");
    let said = stderr(&tls);
    assert!(!tls.status.success(), "{said}");
    assert!(
        said.contains("a server answered, but not in TLS") && !said.contains("no server answered"),
        "{said}"
    );
    moto.sluice_ok(&["run", pipeline.to_str().expect("utf-8")]);
}

/// Walk 78: a run refused at planning left the checkpoint it made on S3 (`metadata`, an
/// epoch, its pipeline file), where a refused run on local disk leaves no folder: a fixed
/// file that also renamed the pipeline was then refused for the leftover's name. Nothing of
/// it is left; a checkpoint the run did not make is kept whole.
#[test]
fn a_run_refused_at_planning_leaves_no_checkpoint_on_s3() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let names = |objects: Vec<(String, bytes::Bytes)>| -> Vec<String> {
        objects.into_iter().map(|(name, _)| name).collect()
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bad = s3_pipeline(&ws, "SELECT nosuch FROM clicks", "s3://sluice/ckpt");
    let refused = moto
        .sluice()
        .args(["run", bad.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert_eq!(
        names(rt.block_on(contents(&moto.store()))),
        Vec::<String>::new()
    );
    let good = s3_pipeline(&ws, "SELECT * FROM clicks", "s3://sluice/ckpt");
    let renamed =
        std::fs::read_to_string(&good)
            .expect("file")
            .replacen("name: ", "name: renamed_", 1);
    std::fs::write(&good, renamed).expect("rename");
    moto.sluice_ok(&["run", good.to_str().expect("utf-8")]);
    let after_good = names(rt.block_on(contents(&moto.store())));
    assert!(
        after_good.contains(&"ckpt/metadata".to_string()),
        "{after_good:?}"
    );
    // A refused run on a checkpoint it did not make takes nothing of it.
    let bad = std::fs::read_to_string(&good)
        .expect("file")
        .replace("SELECT * FROM clicks", "SELECT nosuch FROM clicks");
    std::fs::write(&good, bad).expect("edit");
    let refused = moto
        .sluice()
        .args(["run", good.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let kept = names(rt.block_on(contents(&moto.store())));
    for name in after_good.iter().filter(|n| !n.starts_with("ckpt/epochs/")) {
        assert!(kept.contains(name), "{name} gone: {kept:?}");
    }
}

/// Walk 25 (2): `sluice rewind` of a checkpoint on S3 while a run was live went ahead (no
/// lock keeps a run out there), and the run went on committing batches beside it: the
/// rewind found its work undone and the sink missed the batches it took back. The rewind
/// takes an epoch first, so the live run stops at its next check, naming it, and a run after
/// the rewind writes every row once.
#[test]
fn a_rewind_of_a_checkpoint_on_s3_fences_a_live_run() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/live-ckpt");
    let pipeline = pipeline.to_str().expect("utf-8");
    let mut old = start_old_run(&moto, pipeline, "every 3s", 2);
    // Between batches (the pause is in the trigger's wait), as an operator's rewind comes.
    signal(&old, "-STOP");
    moto.sluice_ok(&["rewind", "s3://sluice/live-ckpt", "--to", "0"]);
    signal(&old, "-CONT");
    assert_fenced(&mut old, 0, 1);
    moto.sluice_ok(&["run", pipeline, "--trigger", "available-now"]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    assert_sink_is_the_batch_answer(&rt, &moto, &ws, query);
    // Walk 47 (8): `report --html` to an object-store URL was written as a local path
    // ("No such file or directory"); it goes to the store.
    moto.sluice_ok(&[
        "report",
        "s3://sluice/live-ckpt",
        "--html",
        "s3://sluice/reports/live.html",
    ]);
    let page = rt.block_on(async {
        use object_store::ObjectStoreExt;
        moto.store()
            .get(&object_store::path::Path::from("reports/live.html"))
            .await
            .expect("the report")
            .bytes()
            .await
            .expect("its bytes")
    });
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("<svg") && page.contains("live-ckpt"),
        "{page}"
    );
    // Walk 49 (3): a signed URL's signature was printed in the error; it is refused, hidden.
    let signed = moto
        .sluice()
        .args([
            "report",
            "s3://sluice/live-ckpt",
            "--html",
            "s3://sluice/r.html?X-Amz-Signature=SigZZ",
        ])
        .output()
        .expect("report");
    let said = String::from_utf8_lossy(&signed.stderr);
    assert_eq!(signed.status.code(), Some(2), "{said}");
    assert!(
        said.contains("query parameters") && !said.contains("SigZZ"),
        "{said}"
    );
}

/// Checks that the S3 sink holds `query`'s answer over every file of `ws/in`, each row once.
fn assert_sink_is_the_batch_answer(
    rt: &tokio::runtime::Runtime,
    moto: &Moto,
    ws: &Workspace,
    query: &str,
) {
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(moto.sink_rows());
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

/// Walk 54 (1): two `--skip-if-running` runs started at the same moment on S3 both found the
/// checkpoint idle and each took an epoch; the older was then fenced and failed (exit 1, "a
/// newer run has taken over"), where a cron wrapper expects 75 (busy). The older leaves the
/// checkpoint to the newer with exit 75, and the output is the newer's, once.
#[test]
fn two_runs_started_together_with_skip_if_running_leave_it_to_one() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/racing");
    let pipeline = pipeline.to_str().expect("utf-8");
    let args = [
        "run",
        pipeline,
        "--skip-if-running",
        "--trigger",
        "available-now",
        "--progress",
        "none",
    ];
    // The first stops once it has taken its epoch, before its lease is written: the second
    // finds the checkpoint idle, as it does when both start within a store's round trip.
    let first = moto
        .sluice()
        .args(args)
        .env("SLUICE_STOP_AT", "racing/lease")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_stopped(&first);
    moto.sluice_ok(&args);
    Command::new("kill")
        .args(["-CONT", &first.id().to_string()])
        .status()
        .expect("kill -CONT");
    let out = first.wait_with_output().expect("the first run's end");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{said}");
    assert!(
        said.contains("is in use by another run")
            && said.contains("which started at the same moment as this one")
            && said.contains("both found it idle, and the newer goes on"),
        "{said}"
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    assert_sink_is_the_batch_answer(&rt, &moto, &ws, query);
}

/// Walk 54 (7): after a run was killed (`kill -9`), a `--skip-if-running` run named it as the
/// holder of a live lease ("wait for it to finish or stop it"), though its process was gone.
/// A holder on this machine that is not running is said, with when the lease lapses and how
/// to go on now; that way works.
#[test]
fn a_lease_left_by_a_killed_run_is_said_to_be_left() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 40, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/killed");
    let pipeline = pipeline.to_str().expect("utf-8");
    let mut old = start_old_run(&moto, pipeline, "every 1s", 1);
    let pid = old.id();
    old.kill().expect("kill -9");
    old.wait().expect("reaped");
    let skipped = moto
        .sluice()
        .args(["run", pipeline, "--skip-if-running", "--progress", "none"])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert_eq!(skipped.status.code(), Some(75), "{said}");
    assert!(
        said.contains(&format!(
            "pid {pid} is not running on this machine: that run ended without deleting its lease"
        )) && said.contains("to go on before, delete s3://sluice/killed/lease"),
        "{said}"
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        use object_store::ObjectStoreExt;
        moto.store()
            .delete(&object_store::path::Path::from("killed/lease"))
            .await
            .expect("delete the lease")
    });
    write_clicks(&ws.path("in"), "json", 1, 40, 2);
    moto.sluice_ok(&[
        "run",
        pipeline,
        "--skip-if-running",
        "--trigger",
        "available-now",
    ]);
    assert_sink_is_the_batch_answer(&rt, &moto, &ws, query);
}

/// Walk 47 (1, 2): on S3 a cron run that found a run still going took the checkpoint over and
/// fenced it (exit 1 for the slow run), so batches longer than the cron interval never
/// committed, where on local disk the lock makes the newcomer exit 75. A run keeps a lease
/// there, renewed while it runs; `--skip-if-running` exits 75 while it is live, naming it.
/// Without the flag a newer run still takes over (the old one fenced); once both have ended
/// the lease is gone and a `--skip-if-running` run goes on.
#[test]
fn a_run_with_skip_if_running_leaves_a_live_run_on_s3_alone() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 40, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/leased");
    let pipeline = pipeline.to_str().expect("utf-8");
    let mut old = start_old_run(&moto, pipeline, "every 1s", 1);
    let skipped = moto
        .sluice()
        .args(["run", pipeline, "--skip-if-running", "--progress", "none"])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert_eq!(skipped.status.code(), Some(75), "{said}");
    assert!(
        said.contains("is in use by another run")
            && said.contains("its lease s3://sluice/leased/lease, renewed")
            && said.contains(&format!("pid {}", old.id()))
            && !said.contains("is not running on this machine"),
        "{said}"
    );
    // Audit 90c, walk 92: a rename went on beside the live run, which kept writing batches
    // under the old name. Refused as on local disk, naming the lease.
    let renamed = moto
        .sluice()
        .args(["rename", "s3://sluice/leased", "--to", "other"])
        .output()
        .expect("rename");
    let said = String::from_utf8_lossy(&renamed.stderr);
    assert_eq!(renamed.status.code(), Some(75), "{said}");
    assert!(
        said.contains("its lease s3://sluice/leased/lease"),
        "{said}"
    );
    // Renewed: still live after its first renewals.
    std::thread::sleep(Duration::from_secs(12));
    let skipped = moto
        .sluice()
        .args(["run", pipeline, "--skip-if-running", "--progress", "none"])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&skipped.stderr);
    assert_eq!(skipped.status.code(), Some(75), "{said}");
    // Without the flag a newer run takes over, as after a crash: the old one is fenced.
    write_clicks(&ws.path("in"), "json", 2, 40, 3);
    moto.sluice_ok(&["run", pipeline, "--trigger", "available-now"]);
    let fenced = old.wait().expect("wait");
    assert_eq!(fenced.code(), Some(1), "the old run was not fenced");
    // Both ended: the newer one's lease went with it, and the fenced one left it alone.
    write_clicks(&ws.path("in"), "json", 1, 40, 5);
    moto.sluice_ok(&["run", pipeline, "--skip-if-running"]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    assert_sink_is_the_batch_answer(&rt, &moto, &ws, query);
    let lease = rt.block_on(async {
        use object_store::ObjectStoreExt;
        moto.store()
            .head(&object_store::path::Path::from("leased/lease"))
            .await
    });
    assert!(lease.is_err(), "the lease outlived its run: {lease:?}");
}

/// Walk 32 (1, 2): on S3 a path that names one object lists as an empty prefix, so a source
/// given one read nothing, exit 0, and a table given one read as empty. A source given an
/// object is refused (exit 2) naming its folder, as a local file is; a table reads it, as a
/// table's local file path does; a misspelled prefix with declared columns is said.
#[test]
fn an_object_named_for_a_folder_is_read_as_a_table_and_refused_as_a_source() {
    use object_store::ObjectStoreExt;
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = moto.store();
    let put = |key: &str, bytes: Vec<u8>| {
        rt.block_on(store.put(&object_store::path::Path::from(key), bytes.into()))
            .expect("upload");
    };
    put(
        "in/clicks-0000.json",
        std::fs::read(ws.path("in/clicks-0000.json")).expect("input"),
    );
    let pages = "page,section\nhome,top\nsearch,top\nproduct,shop\ncart,shop\nhelp,top\n";
    std::fs::write(ws.path("pages.csv"), pages).expect("pages");
    put("static/pages.csv", pages.as_bytes().to_vec());
    let query = "SELECT c.id, p.section FROM clicks c LEFT JOIN pages p ON c.page = p.page";
    let tables = "tables:\n  pages: { kind: files, path: TABLE, format: csv }\n";
    let yaml = |input: &str, table: &str| {
        pipeline_yaml(&ws, "json", query, 1, &tables.replace("TABLE", table))
            .replace(&ws.p("in"), input)
    };
    let run = |yaml: String| {
        let pipeline = write_pipeline(&ws, &yaml);
        moto.sluice()
            .args(["run", pipeline.to_str().expect("utf-8")])
            .output()
            .expect("run")
    };

    // The source's path names the object, not its folder.
    let out = run(yaml("s3://sluice/in/clicks-0000.json", &ws.p("pages.csv")));
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("is an object (a file), not a prefix (a folder)")
            && said.contains("`path: s3://sluice/in`"),
        "{said}"
    );
    assert!(!ws.path("out").exists(), "nothing written");

    // A misspelled prefix, with the source's columns declared: said, not silent.
    let out = run(yaml("s3://sluice/inn", &ws.p("pages.csv")));
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("s3://sluice/inn holds no file yet")
            && said.contains("a misspelled prefix looks like an empty folder"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(ws.path("ckpt"));

    // The table's path names one object: it is read, as the same local file is.
    let out = run(yaml("s3://sluice/in", "s3://sluice/static/pages.csv"));
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_json(
            "clicks",
            ws.p("in"),
            datafusion::prelude::JsonReadOptions::default()
                .schema(&click_schema())
                .file_extension(".json"),
        )
        .await
        .expect("clicks");
        ctx.register_csv(
            "pages",
            ws.p("pages.csv"),
            datafusion::prelude::CsvReadOptions::new(),
        )
        .await
        .expect("pages");
        sql_rows(&ctx, query).await
    });
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(expected.len(), 20);
    assert!(
        got.iter().all(|row| !row.contains("null")),
        "every page has its section: {got:?}"
    );
    assert_eq!(got, expected);
    // Walk 41 (9): the table's one object overwritten since: a replay names it, with its time,
    // as it names a local file (it said only "its input ... changed since").
    std::thread::sleep(std::time::Duration::from_millis(1100));
    put("static/pages.csv", pages.replace("top", "TOP").into_bytes());
    let replay = moto
        .sluice()
        .args(["replay", &ws.p("ckpt"), "--batch", "0", "--verify"])
        .output()
        .expect("replay");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        stderr(&replay)
    );
    assert_eq!(replay.status.code(), Some(1), "{said}");
    assert!(
        said.contains("the static table `pages` (s3://sluice/static/pages.csv: modified")
            && said.contains("changed after batch 0 ran"),
        "{said}"
    );
}

/// A TCP proxy to `port` on a loopback port of its own; while the flag it returns is set, it
/// passes nothing either way (connections stay open, unanswered: a store that hangs).
fn holding_proxy(port: u16) -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
    let own = listener.local_addr().expect("address").port();
    let hold = Arc::new(AtomicBool::new(false));
    let held = Arc::clone(&hold);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            for (mut from, mut to) in [
                (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                ),
                (server, client),
            ] {
                let hold = Arc::clone(&held);
                std::thread::spawn(move || {
                    from.set_read_timeout(Some(Duration::from_millis(50)))
                        .expect("timeout");
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        if hold.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        match from.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => {
                                if to.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => return,
                        }
                    }
                });
            }
        }
    });
    (own, hold)
}

/// Walk 69 (3): a store that stopped answering mid-run held the run's exit for four times
/// `SLUICE_STORE_TIMEOUT` (the failed operation, then the failure noted in the checkpoint and
/// the lease deleted, each waiting its own timeout), where the README promised about twice
/// it. What the run does on its way out is bounded; the next run, the store answering again,
/// finishes every batch exactly once.
#[test]
fn a_store_that_stops_answering_mid_run_fails_the_run_within_its_timeout() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 60, 5, 0);
    let query = "SELECT id, page, amount FROM clicks";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/ckpt");
    let pipeline = pipeline.to_str().expect("utf-8");
    let (proxy, hold) = holding_proxy(moto.port);
    let mut child = moto
        .sluice()
        .args(["run", pipeline, "--progress", "none"])
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{proxy}"))
        .env("SLUICE_STORE_TIMEOUT", "8s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Mid-run: once a batch has committed (a fixed wait held the store during a start slowed
    // by a loaded machine, whose failure then waits for its own cleanup too).
    {
        use object_store::ObjectStoreExt;
        let rt = tokio::runtime::Runtime::new().expect("rt");
        let store = moto.store();
        let started = Instant::now();
        while rt
            .block_on(store.head(&object_store::path::Path::from("ckpt/commits/0")))
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no batch committed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(child.try_wait().expect("wait").is_none(), "still running");
    hold.store(true, std::sync::atomic::Ordering::SeqCst);
    let held = Instant::now();
    let out = child.wait_with_output().expect("the run ends");
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("no answer within 8s"), "{said}");
    // The operation under way (twice its timeout at most), then at most 3 + 2 seconds (before,
    // four times the timeout: 32 seconds).
    println!(
        "exit {:?} after the store stopped answering",
        held.elapsed()
    );
    assert!(
        held.elapsed() < Duration::from_secs(8 * 2 + 5 + 5),
        "{:?}: {said}",
        held.elapsed()
    );
    hold.store(false, std::sync::atomic::Ordering::SeqCst);
    moto.sluice_ok(&["run", pipeline, "--progress", "none"]);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(moto.sink_rows());
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

/// Audit 87: a zero-byte key ending in `/` (the S3 console's "Create folder", Hadoop's s3a
/// `mkdirs`) under a source's prefix was listed as an input file under the folder's path,
/// where no object is: logged in the batch, every run of it failed, "gone", and the rewind
/// advised led back to it. Such a folder is no object: the files in it are read, once; an
/// empty file is still read (no rows).
#[test]
fn an_s3_folder_marker_under_a_source_is_not_an_input_file() {
    use object_store::ObjectStoreExt;
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 20, 0);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = moto.store();
    let put = |key: &str, bytes: Vec<u8>| {
        rt.block_on(store.put(&object_store::path::Path::from(key), bytes.into()))
            .expect("upload");
    };
    moto.put_empty("in/");
    // An empty partition folder whose column starts with `_`, read since `_k=v` folders are
    // (the review of audit 91b): still a marker, no file.
    moto.put_empty("in/_k=1/");
    put(
        "in/clicks-0000.json",
        std::fs::read(ws.path("in/clicks-0000.json")).expect("input"),
    );
    put("in/empty.json", Vec::new());
    let query = "SELECT id, page, amount FROM clicks";
    let yaml = pipeline_yaml(&ws, "json", query, 10, "").replace(&ws.p("in"), "s3://sluice/in");
    let pipeline = write_pipeline(&ws, &yaml);
    let p = pipeline.to_str().expect("utf-8");
    moto.sluice_ok(&["run", p]);
    // A dated folder made, then a file put in it.
    moto.put_empty("in/2026-12-07/");
    put(
        "in/2026-12-07/clicks-0001.json",
        std::fs::read(ws.path("in/clicks-0001.json")).expect("input"),
    );
    moto.sluice_ok(&["run", p]);
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

/// Audit 87: an S3 sink folder whose `_sluice/` records were deleted (its data files kept)
/// was taken as new by a new checkpoint, which claimed it and wrote a manifest entry before
/// its first batch was refused. Refused before a batch, as on local disk, nothing written.
#[test]
fn an_s3_sink_folder_without_its_records_is_refused_before_a_batch() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 20, 0);
    let pipeline = s3_pipeline(&ws, "SELECT id, page FROM clicks", &ws.p("ckpt"));
    let p = pipeline.to_str().expect("utf-8");
    moto.sluice_ok(&["run", p]);
    std::fs::remove_dir_all(ws.path("ckpt")).expect("checkpoint deleted");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let store = moto.store();
    let records = || -> Vec<object_store::ObjectMeta> {
        rt.block_on(
            store
                .list(Some(&object_store::path::Path::from("out/_sluice")))
                .try_collect::<Vec<_>>(),
        )
        .expect("list")
    };
    let records_before = records();
    assert!(!records_before.is_empty());
    for meta in records_before {
        rt.block_on(store.delete(&meta.location)).expect("delete");
    }
    let out = moto.sluice().args(["run", p]).output().expect("run");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "holds 2 data file(s) (`part-*`, `result.*`) that no `_sluice/` records name"
        ),
        "{said}"
    );
    let written = records();
    assert!(written.is_empty(), "nothing claimed: {written:?}");
}

/// Walk 110 (2): a rewind of a checkpoint on S3 while a run was live deleted, before it fenced
/// the run, the run's log entry of the batch it was planning (taken for a planning cut short),
/// then refused naming "another copy"; the run committed that batch, and every later run
/// found the checkpoint inconsistent. Rewinds at random moments of live runs, each refused or
/// done: the next run goes on, and the sink holds every row once.
#[test]
fn rewinds_racing_live_runs_on_s3_leave_the_checkpoint_whole() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 16, 20, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/raced");
    let pipeline = pipeline.to_str().expect("utf-8");
    for round in 0..4_u64 {
        let mut live = moto
            .sluice()
            .args(["run", pipeline, "--trigger", "every 100ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a live run");
        std::thread::sleep(Duration::from_millis(600 + 250 * round));
        let rewind = moto
            .sluice()
            .args(["rewind", "s3://sluice/raced", "--to", "1"])
            .output()
            .expect("rewind");
        let said = String::from_utf8_lossy(&rewind.stderr);
        assert!(
            rewind.status.success() || rewind.status.code() == Some(2),
            "{said}"
        );
        assert!(!said.contains("another copy"), "{said}");
        signal(&live, "-TERM");
        let _ = live.wait();
        // As the refusal says, where the run went on as the rewind read.
        if said.contains("run it again") || said.contains("run the rewind again") {
            moto.sluice_ok(&["rewind", "s3://sluice/raced", "--to", "1"]);
        }
    }
    let run = moto
        .sluice()
        .args(["run", pipeline, "--trigger", "available-now"])
        .output()
        .expect("run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    assert_sink_is_the_batch_answer(&rt, &moto, &ws, query);
}

/// Walk 110 (7): a sink's `path:` given with a `/` at the end, or without it, after runs
/// without (or with) was said to be a move ("the sink moved ... start over"); it is the same
/// place, and nothing is said.
#[test]
fn a_slash_at_the_end_of_an_s3_sink_path_is_no_move() {
    let moto = Moto::start();
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 20, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 25";
    let pipeline = s3_pipeline(&ws, query, "s3://sluice/slash");
    let pipeline = pipeline.to_str().expect("utf-8");
    moto.sluice_ok(&["run", pipeline, "--trigger", "available-now"]);
    let yaml = std::fs::read_to_string(pipeline).expect("pipeline");
    assert!(yaml.contains("s3://sluice/out"), "{yaml}");
    std::fs::write(
        pipeline,
        yaml.replace("s3://sluice/out", "s3://sluice/out/"),
    )
    .expect("edit");
    write_clicks(&ws.path("in"), "json", 1, 20, 1);
    let run = moto.sluice_ok(&["run", pipeline, "--trigger", "available-now"]);
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(!said.contains("moved"), "{said}");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    assert_sink_is_the_batch_answer(&rt, &moto, &ws, query);
}
