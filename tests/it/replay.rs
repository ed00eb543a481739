//! `sluice replay --verify` on checkpoints written by real runs: an untouched run verifies,
//! batch by batch, without changing a file; a sink file changed by hand, an input file deleted
//! and a pending batch are each named.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn replay_json(ws: &Workspace, batch: u64) -> (Option<i32>, Value) {
    let out = run_bin(
        &[
            "replay",
            &ws.p("ckpt"),
            "--batch",
            &batch.to_string(),
            "--verify",
            "--json",
        ],
        ws.dir.path(),
    );
    let view = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("replay --json: {e}: {}", stderr(&out)));
    (out.status.code(), view)
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.insert(
                    entry.path().display().to_string(),
                    (meta.len(), meta.modified().expect("mtime")),
                );
            }
        }
    }
    out
}

fn commit_of(ws: &Workspace, batch: u64) -> Value {
    let text = std::fs::read_to_string(ws.path(&format!("ckpt/commits/{batch}"))).expect("commit");
    serde_json::from_str(text.lines().nth(1).expect("line 2")).expect("commit json")
}

/// An untouched run verifies batch by batch (and replay writes nothing); a sink file changed by
/// hand is found, with the row on each side; a deleted input file is said plainly, and the
/// sink is still held against the commit.
#[test]
fn replay_verifies_an_untouched_run_and_names_a_changed_sink_file() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 30, 0);
    let yaml = pipeline_yaml(
        &ws,
        "json",
        "SELECT id, page, amount * 2 AS doubled FROM clicks WHERE amount > 20",
        1,
        "",
    )
    .replace("format: parquet }", "format: json }");
    let pipeline = write_pipeline(&ws, &yaml);
    let run = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let before = (listing(&ws.path("ckpt")), listing(&ws.path("out")));

    for batch in 0..4 {
        let (code, view) = replay_json(&ws, batch);
        assert_eq!(code, Some(0), "batch {batch}: {view:#}");
        assert_eq!(view["batch"], batch);
        assert_eq!(view["verified"], true);
        let commit = commit_of(&ws, batch);
        let rows = commit["rows_out"].as_u64().expect("rows_out");
        assert!(rows > 0, "batch {batch} wrote rows");
        for side in ["recomputed", "committed", "sink"] {
            assert_eq!(view[side]["status"], "known", "{side}: {view:#}");
            assert_eq!(view[side]["rows"], rows, "{side}");
            assert_eq!(view[side]["hash"], commit["output"]["hash"], "{side}");
        }
        assert_eq!(commit["output"]["algorithm"], "xxh3-128-sum-of-arrow-rows");
        let files = view["sink"]["files"].as_array().expect("files");
        assert_eq!(files.len(), 1);
        assert!(
            files[0]
                .as_str()
                .expect("file")
                .ends_with(&format!("part-{batch:010}-0000.jsonl")),
            "{files:?}"
        );
        for pair in ["recomputed=committed", "sink=committed", "recomputed=sink"] {
            assert_eq!(view["agreement"][pair], true, "{pair}");
        }
        assert_eq!(view["findings"], serde_json::json!([]), "{view:#}");
    }
    assert_eq!(
        (listing(&ws.path("ckpt")), listing(&ws.path("out"))),
        before,
        "replay wrote nothing"
    );

    // Change one value in batch 2's sink file by hand.
    let file = ws.path("out/part-0000000002-0000.jsonl");
    let text = std::fs::read_to_string(&file).expect("sink file");
    let first: Value = serde_json::from_str(text.lines().next().expect("a row")).expect("row");
    let original_page = first["page"].as_str().expect("page").to_string();
    let id = first["id"].as_i64().expect("id");
    let tampered = text.replacen(
        &format!("\"page\":\"{original_page}\""),
        "\"page\":\"tampered\"",
        1,
    );
    assert_ne!(tampered, text);
    std::fs::write(&file, tampered).expect("edit");

    let (code, view) = replay_json(&ws, 2);
    assert_eq!(code, Some(1), "{view:#}");
    assert_eq!(view["verified"], false);
    assert_eq!(view["agreement"]["recomputed=committed"], true);
    assert_eq!(view["agreement"]["sink=committed"], false);
    assert_eq!(view["agreement"]["recomputed=sink"], false);
    let finding = view["findings"][0].as_str().expect("finding");
    assert!(finding.contains("the SINK differs"), "{finding}");
    let only_sink = view["only_in_sink"].as_array().expect("only_in_sink");
    let only_recomputed = view["only_recomputed"].as_array().expect("only_recomputed");
    assert_eq!(only_sink.len(), 1, "{view:#}");
    assert_eq!(only_recomputed.len(), 1, "{view:#}");
    assert_eq!(only_sink[0]["page"], "tampered");
    assert_eq!(only_sink[0]["id"], id);
    assert_eq!(only_recomputed[0]["page"], original_page.as_str());
    assert_eq!(only_recomputed[0]["id"], id);
    // The same in words, for people.
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "2", "--verify"],
        ws.dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the SINK differs")
            && said.contains("tampered")
            && said.contains("NOT VERIFIED"),
        "{said}"
    );
    // The other batches still verify.
    assert_eq!(replay_json(&ws, 1).0, Some(0));

    // A sink file that is gone is a difference too.
    std::fs::remove_file(ws.path("out/part-0000000003-0000.jsonl")).expect("remove");
    let (code, view) = replay_json(&ws, 3);
    assert_eq!(code, Some(1), "{view:#}");
    assert_eq!(view["sink"]["status"], "unreadable");
    let reason = view["sink"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("part-0000000003-0000.jsonl") && reason.contains("gone"),
        "{reason}"
    );
    assert_eq!(view["agreement"]["recomputed=committed"], true);

    // Without its input, batch 1 cannot be recomputed: said plainly, and the sink is still
    // held against the commit.
    std::fs::remove_file(ws.path("in/clicks-0001.json")).expect("remove input");
    let (code, view) = replay_json(&ws, 1);
    assert_eq!(code, Some(1), "{view:#}");
    assert_eq!(view["recomputed"]["status"], "unavailable");
    let reason = view["recomputed"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("clicks-0001.json") && reason.contains("is gone"),
        "{reason}"
    );
    assert_eq!(view["agreement"]["sink=committed"], true);
    assert_eq!(view["agreement"]["recomputed=committed"], Value::Null);
    assert!(
        view["findings"][0]
            .as_str()
            .expect("finding")
            .contains("cannot be recomputed"),
        "{view:#}"
    );
}

/// A windowed aggregation's batches are recomputed from the state version before each, and
/// verify; a batch whose commit is missing (a crash before `commits/N`) is pending: inspect says
/// so field by field, replay refuses it, and once the next run finishes it, it verifies.
#[test]
fn replay_recomputes_stateful_batches_and_refuses_a_pending_one() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 5, 40, 0);
    let query = "SELECT date_bin(INTERVAL '10 seconds', ts) AS w, page, count(*) AS n, \
                 sum(amount) AS total FROM clicks GROUP BY 1, 2";
    let yaml = pipeline_yaml(
        &ws,
        "json",
        query,
        1,
        "    watermark: { column: ts, delay: 5s }\n",
    )
    .replace("trigger:", "snapshot_every: 2\ntrigger:");
    let pipeline = write_pipeline(&ws, &yaml);
    let p = pipeline.to_str().expect("utf-8");
    let run = run_bin(&["run", p], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let newest = || {
        std::fs::read_dir(ws.path("ckpt/commits"))
            .expect("commits/")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .expect("a commit")
    };
    let first_run = newest();
    assert!(first_run >= 4, "five files, five batches or more");
    let mut emitted = 0;
    for batch in 0..=first_run {
        let (code, view) = replay_json(&ws, batch);
        assert_eq!(code, Some(0), "batch {batch}: {view:#}");
        assert_eq!(view["committed"]["status"], "known", "{view:#}");
        assert_eq!(view["agreement"]["recomputed=committed"], true);
        assert_eq!(view["agreement"]["recomputed=sink"], true);
        assert_eq!(view["recomputed"]["hash"], view["sink"]["hash"]);
        emitted += view["recomputed"]["rows"].as_u64().expect("rows");
    }
    assert!(emitted > 0, "closed windows were emitted");

    // A crash after the sink and the state of the next batch, before its commit (`once` runs
    // one batch over the new file, without a closing batch after it).
    write_clicks(&ws.path("in"), "json", 1, 40, 5);
    let run = run_bin(&["run", p, "--trigger", "once"], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let last = newest();
    assert_eq!(last, first_run + 1);
    let commit = ws.path(&format!("ckpt/commits/{last}"));
    assert!(commit.exists());
    let committed_text = std::fs::read_to_string(&commit).expect("commit");
    std::fs::remove_file(&commit).expect("crash before the commit");

    let out = run_bin(&["inspect", &ws.p("ckpt"), "--json"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let view: Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(view["pending"], last);
    assert_eq!(view["last_committed"], last - 1);
    assert_eq!(view["batches_committed"], last);
    let pending = view["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .find(|b| b["batch"] == last)
        .expect("the pending batch");
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["commit"], Value::Null);
    assert_eq!(pending["files"]["clicks"][0], "clicks-0005.json");
    assert_eq!(pending["offsets"]["sources"][0]["source"], "clicks");
    let previous = commit_of(&ws, last - 1);
    assert_eq!(view["next_watermark_ms"], previous["next_watermark_ms"]);
    assert_eq!(view["state"][0]["operator"], "aggregate");
    assert_eq!(
        view["state"][0]["rows"], previous["state"][0]["rows_total"],
        "rows after the last commit"
    );
    assert_eq!(
        view["sink"]["last_batch"], last,
        "the sink has the pending batch"
    );
    assert_eq!(view["retention"]["retain_batches"], 100);
    assert_eq!(view["retention"]["snapshot_every"], 2);
    assert_eq!(view["retention"]["oldest_batch"], 0);

    let out = run_bin(
        &[
            "replay",
            &ws.p("ckpt"),
            "--batch",
            &last.to_string(),
            "--verify",
        ],
        ws.dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pending"), "{}", stderr(&out));

    // `state` reads the store as of the last commit, not the pending batch's version.
    assert!(
        ["delta", "snapshot"].iter().any(|kind| ws
            .path(&format!("ckpt/state/aggregate/{last}.{kind}.parquet"))
            .exists()),
        "the pending batch wrote its state version"
    );
    let out = run_bin(
        &[
            "state",
            &ws.p("ckpt"),
            "--sql",
            "SELECT count(*) AS groups FROM state",
        ],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let groups = previous["state"][0]["rows_total"]
        .as_u64()
        .expect("rows_total");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("| {groups} ")),
        "{groups} groups: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The report charts the committed batches and names the pending one.
    let page = ws.path("report.html");
    let out = run_bin(
        &[
            "report",
            &ws.p("ckpt"),
            "--html",
            page.to_str().expect("utf-8"),
        ],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("report");
    assert!(
        html.contains(&format!(
            "<th>pending batch</th><td>{last} (runs again on the next start)</td>"
        )),
        "pending batch in the summary"
    );
    assert_eq!(
        html.matches("<tr><td>").count() as u64,
        last,
        "one row per commit"
    );

    // The next run finishes the batch (the sink already has it) and it verifies.
    let run = run_bin(&["run", p], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains(&format!("finished interrupted batch {last}")));
    let (code, view) = replay_json(&ws, last);
    assert_eq!(code, Some(0), "{view:#}");
    let recommitted = std::fs::read_to_string(&commit).expect("commit");
    let hash = |text: &str| {
        let v: Value = serde_json::from_str(text.lines().nth(1).expect("line 2")).expect("json");
        assert!(v["output"]["hash"].is_string(), "{v}");
        v["output"].clone()
    };
    assert_eq!(
        hash(&recommitted),
        hash(&committed_text),
        "the same output digest"
    );
}

/// Values a sink's reader cannot tell apart (an empty string and a null in CSV, which Sluice's
/// CSV reader reads alike; NaN and null in JSON) do not make an untouched run fail to verify; with a short retention, the oldest batch
/// held (whose start is purged) is refused with the batches that can be replayed.
#[test]
fn replay_verifies_csv_and_json_sinks_and_names_what_the_retention_purged() {
    for (format, extension) in [("csv", "csv"), ("json", "jsonl")] {
        let ws = Workspace::new();
        write_clicks(&ws.path("in"), "json", 4, 30, 0);
        let query = "SELECT id, CASE WHEN id % 3 = 0 THEN '' ELSE page END AS label, \
                     CASE WHEN id % 4 = 0 THEN CAST('NaN' AS DOUBLE) ELSE amount END AS x, ts \
                     FROM clicks";
        let yaml = pipeline_yaml(&ws, "json", query, 1, "")
            .replace("format: parquet }", &format!("format: {format} }}"))
            .replace("trigger:", "retain_batches: 2\ntrigger:");
        let pipeline = write_pipeline(&ws, &yaml);
        let run = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        assert!(run.status.success(), "{}", stderr(&run));
        let file = ws.path(&format!("out/part-0000000003-0000.{extension}"));
        let text = std::fs::read_to_string(&file).expect("sink file");
        match format {
            // Written `""` (as DuckDB and Spark write it), read back by Sluice as a null.
            "csv" => assert!(text.contains(",\"\","), "an empty label: {text}"),
            // NaN as Jackson writes it (hashed as a null, as before it was written so).
            _ => assert!(text.contains("\"x\":\"NaN\""), "NaN as a word: {text}"),
        }
        let (code, view) = replay_json(&ws, 3);
        assert_eq!(code, Some(0), "{format}: {view:#}");
        assert_eq!(view["agreement"]["sink=committed"], true, "{format}");
        assert_eq!(view["sink"]["rows"], 30);

        // Batch 2 is held, but where it starts (offsets/1) is purged.
        assert!(ws.path("ckpt/commits/2").exists() && !ws.path("ckpt/offsets/1").exists());
        let out = run_bin(
            &["replay", &ws.p("ckpt"), "--batch", "2", "--verify"],
            ws.dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let said = stderr(&out);
        assert!(
            said.contains("offsets/1 is purged")
                && said.trim_end().ends_with("batches that can be replayed: 3"),
            "{said}"
        );
    }
}

/// A re-run that finds the sink already holding its batch records the hash of what the sink
/// holds, so when a static table changed in between, replay blames the recomputation (and
/// shows the rows that changed), not the untouched sink.
#[test]
fn a_batch_finished_over_a_changed_static_table_blames_the_recomputation() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 20, 0);
    let labels = |prefix: &str| {
        let mut text = "page,label\n".to_string();
        for page in PAGES {
            text.push_str(&format!("{page},{prefix}{page}\n"));
        }
        std::fs::write(ws.path("labels.csv"), text).expect("labels");
    };
    labels("v1-");
    let yaml = pipeline_yaml(
        &ws,
        "json",
        "SELECT c.id, l.label FROM clicks c JOIN labels l ON c.page = l.page",
        1,
        "",
    )
    .replace(
        "query:",
        &format!(
            "tables:\n  labels: {{ kind: files, path: {}, format: csv }}\nquery:",
            ws.p("labels.csv")
        ),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let p = pipeline.to_str().expect("utf-8");
    let run = run_bin(&["run", p], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let (code, view) = replay_json(&ws, 2);
    assert_eq!(code, Some(0));
    // Walk 36: a batch that verifies has the lists the README names, empty.
    assert_eq!(view["findings"], serde_json::json!([]), "{view:#}");
    assert_eq!(view["only_in_sink"], serde_json::json!([]), "{view:#}");

    // A crash after batch 2's sink, before its commit; then the table changes.
    std::fs::remove_file(ws.path("ckpt/commits/2")).expect("crash before the commit");
    labels("v2-");
    let run = run_bin(&["run", p], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("finished interrupted batch 2"));

    let (code, view) = replay_json(&ws, 2);
    assert_eq!(code, Some(1), "{view:#}");
    assert_eq!(view["agreement"]["sink=committed"], true, "{view:#}");
    assert_eq!(view["agreement"]["recomputed=committed"], false);
    let finding = view["findings"][0].as_str().expect("finding");
    assert!(finding.contains("the RECOMPUTATION differs"), "{finding}");
    // Walk 24 (4): the static table is named with its place; walk 34 (3): as the cause,
    // modified after the batch ran.
    assert!(
        finding.contains(&format!(
            "the static table `labels` ({}: modified ",
            ws.p("labels.csv")
        )) && finding.contains("changed after batch 2 ran"),
        "{finding}"
    );
    let only_recomputed = view["only_recomputed"].as_array().expect("rows");
    let only_in_sink = view["only_in_sink"].as_array().expect("rows");
    assert_eq!(only_recomputed.len(), 20);
    assert_eq!(only_in_sink.len(), 20);
    // Walk 36: the lists stop at `--limit`; the counts say all.
    assert_eq!(view["only_recomputed_rows"], 20, "{view:#}");
    assert_eq!(view["only_in_sink_rows"], 20, "{view:#}");
    assert!(
        only_recomputed
            .iter()
            .all(|r| r["label"].as_str().expect("label").starts_with("v2-"))
            && only_in_sink
                .iter()
                .all(|r| r["label"].as_str().expect("label").starts_with("v1-")),
        "{view:#}"
    );
}
