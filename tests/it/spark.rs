//! `sluice inspect` reads Spark Structured Streaming checkpoints written by PyPI `pyspark` 4.3
//! (`tests/fixtures/spark/make_fixtures.py` made them): batch ids, offsets, watermarks, the
//! files each batch read, and the state operators.

use std::process::Output;

use crate::common::*;

fn inspect_json(checkpoint: &str) -> serde_json::Value {
    let fixture = format!(
        "{}/tests/fixtures/spark/{checkpoint}",
        env!("CARGO_MANIFEST_DIR")
    );
    let out: Output = sluice_bin()
        .args(["inspect", &fixture, "--json"])
        .output()
        .expect("run sluice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect json")
}

fn file_names(batch: &serde_json::Value) -> Vec<String> {
    batch["files"]["0"]
        .as_array()
        .expect("files of source 0")
        .iter()
        .map(|p| {
            p.as_str()
                .expect("path")
                .rsplit('/')
                .next()
                .expect("name")
                .to_string()
        })
        .collect()
}

#[test]
fn a_spark_stateless_checkpoint_is_read() {
    let view = inspect_json("stateless/checkpoint");
    assert_eq!(view["kind"], "spark");
    assert_eq!(view["id"], "638c340c-e61a-4e01-9603-b27f3c78e68a");
    assert_eq!(view["batches_committed"], 3);
    assert_eq!(view["last_committed"], 2);
    assert!(view["pending"].is_null());
    assert_eq!(view["source_offsets"]["0"]["logOffset"], 2);
    assert_eq!(view["state"].as_array().expect("state").len(), 0);
    let batches = view["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 3);
    // Spark took the files in modification order, one per batch.
    let read: Vec<Vec<String>> = batches.iter().map(file_names).collect();
    assert_eq!(
        read,
        [["clicks-1.json"], ["clicks-0.json"], ["clicks-2.json"]]
    );
    for (n, b) in batches.iter().enumerate() {
        assert_eq!(b["batch"], n);
        assert_eq!(b["status"], "committed");
        assert_eq!(b["sources"]["0"]["logOffset"], n);
        assert_eq!(b["watermark_ms"], 0);
    }
}

#[test]
fn a_spark_windowed_aggregation_checkpoint_is_read() {
    let view = inspect_json("windowed/checkpoint");
    assert_eq!(view["batches_committed"], 4);
    assert_eq!(view["last_committed"], 3);
    // 09:04:55 is the latest event; less the 10 s delay.
    let watermark = 1_793_523_885_000i64;
    assert_eq!(view["next_watermark_ms"], watermark);
    let batches = view["batches"].as_array().expect("batches");
    let watermarks: Vec<i64> = batches
        .iter()
        .map(|b| b["watermark_ms"].as_i64().expect("watermark"))
        .collect();
    assert_eq!(
        watermarks,
        [0, 1_793_523_785_000, 1_793_523_785_000, watermark]
    );
    // The last batch read nothing: Spark's batch without data that closes the windows.
    assert_eq!(batches[3]["sources"]["0"]["logOffset"], 2);
    assert!(batches[3]["files"].as_object().expect("files").is_empty());
    assert_eq!(file_names(&batches[0]), ["clicks-1.json"]);
    let state = &view["state"][0];
    assert_eq!(state["operator"], "0");
    assert_eq!(state["name"], "stateStoreSave");
    assert_eq!(state["partitions"], 2);
    assert_eq!(state["versions"], serde_json::json!([1, 4]));
    assert_eq!(state["files"], 8);
}

/// A Spark file sink's folder: its `_spark_metadata` log, batch by batch.
#[test]
fn a_spark_file_sink_log_is_read() {
    let view = inspect_json("windowed/sink");
    assert_eq!(view["kind"], "spark-sink");
    assert_eq!(view["batches"], 4);
    assert_eq!(view["last_batch"], 3);
    let per_batch = view["per_batch"].as_object().expect("per batch");
    let added: u64 = per_batch
        .values()
        .map(|v| v[0].as_u64().expect("files"))
        .sum();
    assert_eq!(view["live_files"].as_u64(), Some(added));
    assert!(view["live_bytes"].as_u64().expect("bytes") > 0);
    // What Spark wrote: a file per non-empty output partition (an empty one for batch 0 and 2).
    let files: Vec<u64> = per_batch
        .values()
        .map(|v| v[0].as_u64().expect("files"))
        .collect();
    assert_eq!(files, [1, 2, 1, 2]);
    assert_eq!(per_batch["0"][1], 480);
}

/// Every file under `dir`, with its bytes, in order.
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            files.extend(tree(&entry.path()));
        } else {
            files.push((entry.path(), std::fs::read(entry.path()).expect("read")));
        }
    }
    files.sort();
    files
}

/// Audit 88a: every command but `inspect` called a Spark checkpoint corrupt and advised
/// `sluice repair`, which moved Spark's whole log aside. Each refuses it (exit 2), names it
/// Spark's, and changes nothing; `inspect` still reads it.
#[test]
fn a_spark_checkpoint_is_refused_untouched_by_every_other_command() {
    let ws = Workspace::new();
    let ckpt = ws.path("ckpt");
    crate::cli::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/spark/windowed/checkpoint"),
        &ckpt,
    );
    let before = tree(&ckpt);
    write_clicks(&ws.path("in"), "json", 1, 5, 0);
    let pipeline = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, ""),
    );
    let (c, p, html) = (ws.p("ckpt"), pipeline.display().to_string(), ws.p("r.html"));
    let commands: [&[&str]; 8] = [
        &["run", &p],
        &["report", &c, "--html", &html],
        &["state", &c],
        &["rewind", &c, "--to", "0"],
        &["rename", &c, "--to", "other"],
        &["repair", &c],
        &["repair", &c, "--dry-run"],
        &["replay", &c, "--batch", "0"],
    ];
    for args in commands {
        let out = run_bin(args, ws.dir.path());
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(
            said.contains("is a Spark Structured Streaming checkpoint")
                && said.contains("sluice inspect")
                && !said.contains("sluice repair"),
            "{args:?}: {said}"
        );
        assert_eq!(tree(&ckpt), before, "{args:?} changed the checkpoint");
    }
    assert!(!ws.path("r.html").exists());
    let out = run_bin(&["inspect", &c], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Audit 91b (Spark's `FileStreamSourceSuite` "read from a file sink's output"): a Spark file
/// sink's folder holds files no batch committed (a batch that failed writes its files, then
/// Spark writes the batch again under other names). Spark reads only the files its
/// `_spark_metadata` log commits; so does a Sluice source or table over the folder, saying
/// how many it leaves out. The log is the one `pyspark` wrote (`windowed/sink`), with files
/// of the names it logs put beside it.
#[tokio::test]
async fn a_spark_sink_folder_is_read_by_its_log_by_sources_and_tables() {
    let ws = Workspace::new();
    let spark_out = ws.path("spark_out");
    let log = spark_out.join("_spark_metadata");
    std::fs::create_dir_all(&log).expect("log folder");
    let fixture = format!(
        "{}/tests/fixtures/spark/windowed/sink/_spark_metadata",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut logged = Vec::new();
    for entry in std::fs::read_dir(&fixture).expect("fixture") {
        let entry = entry.expect("entry");
        let text = std::fs::read_to_string(entry.path()).expect("entry text");
        for line in text.lines().skip(1) {
            let value: serde_json::Value = serde_json::from_str(line).expect("logged file");
            let path = value["path"].as_str().expect("path");
            logged.push(path.rsplit('/').next().expect("name").to_string());
        }
        std::fs::copy(entry.path(), log.join(entry.file_name())).expect("copy entry");
    }
    logged.sort();
    assert_eq!(logged.len(), 6, "{logged:?}");
    for (i, name) in logged.iter().enumerate() {
        write_batch(&spark_out.join(name), "parquet", &clicks(i as i64 * 10, 10));
    }
    // A failed batch's file: written, never committed.
    write_batch(
        &spark_out.join("part-00000-0badf00d-0000-4000-8000-000000000000-c000.snappy.parquet"),
        "parquet",
        &clicks(1000, 10),
    );
    let yaml = format!(
        "name: spark-out\ncheckpoint: {ckpt}\nsources:\n  s:\n    kind: files\n    path: {input}\n    format: parquet\n    schema: {CLICK_SCHEMA_YAML}\n    max_files_per_batch: 2\nquery: SELECT id FROM s\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        input = spark_out.display(),
        out = ws.p("out"),
    );
    let out = run_bin(
        &["run", &write_pipeline(&ws, &yaml).display().to_string()],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 file(s) there no Spark batch committed"),
        "{}",
        stderr(&out)
    );
    let ids = parquet_rows(
        &datafusion::prelude::SessionContext::new(),
        &ws.p("out"),
        "SELECT count(*), min(id), max(id) FROM sink",
    )
    .await;
    assert_eq!(ids, ["60|0|59"]);

    // The same folder as a static table: only its committed rows join.
    std::fs::create_dir_all(ws.path("in")).expect("input folder");
    write_batch(&ws.path("in/late.json"), "json", &clicks(1000, 5));
    write_batch(&ws.path("in/early.json"), "json", &clicks(0, 5));
    let yaml = format!(
        "name: spark-table\ncheckpoint: {ckpt}\nsources:\n  c:\n    kind: files\n    path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\ntables:\n  t: {{ kind: files, path: {table}, format: parquet }}\nquery: SELECT c.id FROM c JOIN t ON c.id = t.id\ntrigger: available-now\nsink: {{ kind: files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt2"),
        input = ws.p("in"),
        table = spark_out.display(),
        out = ws.p("out2"),
    );
    let out = run_bin(
        &["run", &write_pipeline(&ws, &yaml).display().to_string()],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("table `t`"), "{}", stderr(&out));
    let ids = parquet_rows(
        &datafusion::prelude::SessionContext::new(),
        &ws.p("out2"),
        "SELECT count(*), min(id), max(id) FROM sink",
    )
    .await;
    assert_eq!(ids, ["5|0|4"]);
}

/// The review of audit 91b's fix: a Spark sink whose own folder is named like a partition
/// (`region=eu`) was read as empty, and an empty `_spark_metadata` (Spark makes it as its sink
/// starts, so a first batch that failed leaves its files beside no entry) was taken for no
/// log, its failed batch's files read.
#[test]
fn a_spark_sink_folder_named_k_v_and_one_of_an_empty_log_read_as_spark_reads_them() {
    let ws = Workspace::new();
    for (folder, logged) in [("region=eu", true), ("empty", false)] {
        let out = ws.path(folder);
        std::fs::create_dir_all(out.join("_spark_metadata")).expect("log folder");
        let name = "part-00000-0badf00d-0000-4000-8000-000000000000-c000.json";
        std::fs::write(out.join(name), "{\"id\":1}\n{\"id\":2}\n").expect("data");
        if logged {
            std::fs::write(
                out.join("_spark_metadata/0"),
                format!(
                    "v1\n{{\"path\":\"file:/elsewhere/{folder}/{name}\",\"size\":18,\"isDir\":false,\"modificationTime\":1,\"blockReplication\":1,\"blockSize\":1,\"action\":\"add\"}}\n"
                ),
            )
            .expect("entry");
        }
        let yaml = format!(
            "name: s{logged}\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: '{input}', \
             format: json, schema: {{ id: bigint }} }}\nquery: SELECT id FROM s\ntrigger: \
             available-now\nsink: {{ kind: console }}\n",
            ckpt = ws.p(&format!("ckpt-{logged}")),
            input = out.display(),
        );
        let out = run_bin(
            &["run", &write_pipeline(&ws, &yaml).display().to_string()],
            ws.dir.path(),
        );
        assert!(out.status.success(), "{folder}: {}", stderr(&out));
        let rows_in = if logged { "2 rows in" } else { "0 rows in" };
        assert!(stderr(&out).contains(rows_in), "{folder}: {}", stderr(&out));
    }
}
