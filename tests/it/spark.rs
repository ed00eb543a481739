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
