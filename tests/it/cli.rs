//! The `sluice` binary as a user runs it: exit codes, messages, signals, two runs at once, and
//! a SIGKILL loop.

use std::io::Read as _;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Runs a pipeline with JSON progress.
fn run_json(pipeline: &std::path::Path, cwd: &std::path::Path) -> Output {
    let pipeline = pipeline.to_str().expect("utf-8");
    run_bin(&["run", pipeline, "--progress", "json"], cwd)
}

fn json_events(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Walk 40 (9): a continuous run that found no new input printed nothing, so a scraper of
/// `--progress json` could not tell it idle from stuck. Every 10 s without a batch it prints
/// an idle event, as Spark's no-data progress: `idle`, no rows, the next batch's number, each
/// source where the last batch left it.
#[test]
fn an_idle_continuous_run_says_so_every_ten_seconds() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 5, 0);
    let yaml = format!(
        "name: idle\ncheckpoint: {ckpt}\nsources:\n  clicks: {{ kind: files, path: {input}, \
         format: json, schema: {CLICK_SCHEMA_YAML}, watermark: {{ column: ts, delay: 1s }} }}\n\
         query: SELECT page, count(*) AS n FROM clicks GROUP BY page\noutput_mode: update\n\
         trigger: every 1s\nsink: {{ kind: files, path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        out = ws.p("out"),
    );
    let file = write_pipeline(&ws, &yaml);
    let mut child = sluice_bin()
        .args(["run", file.to_str().expect("utf-8"), "--progress", "json"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    // Read as printed, until the first idle event (or 60 s, on a busy machine).
    let (sent, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sent.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut events: Vec<serde_json::Value> = Vec::new();
    while !events.iter().any(|e| e.get("idle").is_some()) {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        events.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")));
    }
    let idle_after = started.elapsed();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    wait_timeout(&mut child, Duration::from_secs(10)).expect("Ctrl-C stops the run");
    assert_eq!(events.len(), 2, "a batch, then an idle event: {events:?}");
    assert!(idle_after >= Duration::from_secs(10), "{idle_after:?}");
    assert_eq!(events[0]["batchId"], 0);
    assert!(events[0].get("idle").is_none(), "{:?}", events[0]);
    let idle = &events[1];
    assert_eq!(idle["idle"], true);
    assert_eq!(idle["batchId"], 1);
    assert_eq!(idle["numInputRows"], 0);
    assert_eq!(idle["sink"]["numOutputRows"], 0);
    // Walk 60 (7): a scraper reading a batch's top-level fields met none in an idle event.
    // Every top-level field of a batch's event is in it too.
    let fields = |event: &serde_json::Value| -> Vec<String> {
        event.as_object().expect("object").keys().cloned().collect()
    };
    let missing: Vec<String> = fields(&events[0])
        .into_iter()
        .filter(|k| idle.get(k).is_none() && k != "stateOperators")
        .collect();
    assert!(missing.is_empty(), "{missing:?} not in {idle}");
    assert_eq!(idle["numOutputRows"], 0);
    assert_eq!(idle["durationMs"]["triggerExecution"], 0);
    // Walk 77 (2): the watermark now (the clicks' latest time, 12:26:44, less 1 s), not the
    // first batch's (the epoch), as Spark's event without data gives it.
    assert_eq!(
        events[0]["eventTime"]["watermark"],
        "1970-01-01T00:00:00.000Z"
    );
    assert_eq!(idle["eventTime"]["watermark"], "2025-11-01T12:26:43.000Z");
    assert_eq!(
        idle["sources"][0]["startOffset"],
        events[0]["sources"][0]["endOffset"]
    );
    assert_eq!(
        idle["sources"][0]["endOffset"],
        events[0]["sources"][0]["endOffset"]
    );
}

#[test]
fn quickstart_runs_then_finds_nothing_then_takes_just_the_new_file() {
    let ws = Workspace::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("queries"), &ws.path("queries"));
    let args = ["run", "queries/quickstart.yaml", "--progress", "json"];

    let first = run_bin(&args, ws.dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let events = json_events(&first);
    let files = std::fs::read_dir(ws.path("queries/data/clicks"))
        .expect("data")
        .count();
    assert_eq!(events.len(), files, "one file per batch");
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e["batchId"], n as u64);
        assert_eq!(e["numInputFiles"], 1);
        assert!(
            e["durationMs"]["triggerExecution"]
                .as_f64()
                .expect("duration")
                > 0.0
        );
        assert!(e["numInputRows"].as_u64().expect("rows") > 0);
    }

    let second = run_bin(&args, ws.dir.path());
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(json_events(&second).is_empty(), "nothing new: no batch");

    std::fs::copy(
        ws.path("queries/data/clicks/clicks-0000.jsonl"),
        ws.path("queries/data/clicks/clicks-9999.jsonl"),
    )
    .expect("new file");
    let third = run_bin(&args, ws.dir.path());
    assert!(third.status.success(), "{}", stderr(&third));
    let events = json_events(&third);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["batchId"], files as u64);
    assert_eq!(events[0]["numInputFiles"], 1);
    assert_eq!(events[0]["numInputRows"], 40);

    // inspect shows every batch committed, with its files.
    let inspect = run_bin(
        &["inspect", "checkpoints/quickstart", "--json"],
        ws.dir.path(),
    );
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let view: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("inspect json");
    assert_eq!(view["metadata"]["name"], "quickstart");
    assert_eq!(view["batches_committed"], files + 1);
    assert_eq!(view["pending"], serde_json::Value::Null);
    let last = &view["batches"][files];
    assert_eq!(last["status"], "committed");
    assert_eq!(last["files"]["clicks"][0], "clicks-9999.jsonl");
    assert_eq!(last["commit"]["rows_in"], 40);
}

fn pipeline_in(ws: &Workspace, query: &str, extra_source_keys: &str) -> std::path::PathBuf {
    let yaml = pipeline_yaml(ws, "json", query, 1, extra_source_keys);
    write_pipeline(ws, &yaml)
}

/// Walk 123 (6): on a checkpoint that cannot be written (another user's, read-only),
/// `repair --dry-run`, `repair` and `rewind` said only "syncing .../lock to disk failed:
/// Permission denied". A dry run reads it as it is; the others say the folder cannot be
/// written and which commands read it. (As root, which CI is, the run drops the capability
/// that lets root write anywhere, as a user without it would run.)
#[test]
fn a_checkpoint_that_cannot_be_written_is_said_so_and_a_dry_run_reads_it() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 5, 0);
    let pipeline = pipeline_in(&ws, "SELECT user_id FROM clicks", "");
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let chmod = |mode: &str| {
        let status = std::process::Command::new("chmod")
            .args(["-R", mode, &ws.p("ckpt")])
            .status()
            .expect("chmod");
        assert!(status.success());
    };
    chmod("a-w");
    let unprivileged = |args: &[&str]| {
        // The folder this test made is its user's: root's where it runs as root.
        let root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(ws.path("ckpt")).expect("ckpt"))
                == 0;
        let mut command = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                "--bounding-set",
                "-dac_override,-dac_read_search",
                "--inh-caps",
                "-all",
                env!("CARGO_BIN_EXE_sluice"),
            ]);
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        };
        command
            .args(args)
            .current_dir(ws.dir.path())
            .output()
            .expect("run sluice")
    };
    let dry = unprivileged(&["repair", &ws.p("ckpt"), "--dry-run"]);
    let told = format!("{}{}", String::from_utf8_lossy(&dry.stdout), stderr(&dry));
    for args in [
        vec!["repair", &ws.p("ckpt")],
        vec!["rewind", &ws.p("ckpt"), "--to", "0"],
    ] {
        let refused = unprivileged(&args);
        let said = stderr(&refused);
        assert_eq!(refused.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains(&format!(
                "the checkpoint folder {} cannot be written here",
                ws.p("ckpt")
            )) && said.contains("`repair --dry-run`"),
            "{args:?}: {said}"
        );
    }
    chmod("u+w");
    assert!(dry.status.success(), "{told}");
    assert!(told.contains("nothing to repair"), "{told}");
}

#[test]
fn malformed_json_names_file_and_line_and_skip_counts_it() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 5, 0);
    let bad = ws.path("in/clicks-0001.json");
    let mut text = std::fs::read_to_string(&bad).expect("read");
    text = text.replacen("\"user_id\"", "\"user_id\": oops, \"x\"", 1);
    let lines: Vec<&str> = text.lines().collect();
    let moved = format!(
        "{}\n{}\n{}\n",
        lines[1..3].join("\n"),
        lines[0],
        lines[3..].join("\n")
    );
    std::fs::write(&bad, moved).expect("write");

    let pipeline = pipeline_in(&ws, "SELECT * FROM clicks", "");
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("clicks-0001.json line 3"), "{err}");
    // Batch 0 (the good file) stays committed.
    assert!(ws.path("ckpt/commits/0").exists());
    assert!(!ws.path("ckpt/commits/1").exists());

    // Batch 1 is pending, planned with `on_error: fail`: it finishes with that pipeline file,
    // so it fails again, saying how to plan it again with the edited one.
    let pipeline = pipeline_in(&ws, "SELECT * FROM clicks", "    on_error: skip\n");
    let out = run_json(&pipeline, ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pending batch 1 runs with the pipeline file it was planned with")
            && err.contains("clicks-0001.json line 3")
            && err.contains("--to 0`"),
        "{err}"
    );
    let ckpt = ws.path("ckpt");
    let out = run_bin(
        &["rewind", ckpt.to_str().expect("utf-8"), "--to", "0"],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_json(&pipeline, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["numSkippedRows"], 1);
    assert_eq!(events[0]["numInputRows"], 4);
}

#[test]
fn malformed_csv_names_file_and_line() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "csv", 1, 5, 0);
    let file = ws.path("in/clicks-0000.csv");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replacen("\n1,", "\nnot-a-number,", 1)).expect("write");
    let yaml = pipeline_yaml(&ws, "csv", "SELECT * FROM clicks", 1, "");
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("clicks-0000.csv line 3"),
        "{}",
        stderr(&out)
    );
}

/// Walk 123: `sluice rnu` said only "unrecognized subcommand" (clap's likeness measure misses
/// two letters swapped in a short word); `inpsect` was suggested `inspect`.
#[test]
fn a_mistyped_command_is_suggested_the_one_meant() {
    let ws = Workspace::new();
    for (typed, meant) in [
        ("rnu", "'run'"),
        ("inpsect", "'inspect'"),
        ("rewnid", "'rewind'"),
    ] {
        let out = run_bin(&[typed, "x.yaml"], ws.dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("a similar subcommand exists: {meant}")),
            "{typed}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn bad_pipelines_exit_2_with_a_short_message() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 5, 0);
    let good = pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, "");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace(&ws.p("in"), &ws.p("missing")),
            "create the folder",
        ),
        ("name: [unclosed\n".to_string(), "pipeline.yaml"),
        (
            good.replace("max_files_per_batch", "max_file_per_batch"),
            "did you mean `max_files_per_batch`",
        ),
        (
            good.replace("SELECT * FROM clicks", "SELEC * FROM clicks"),
            "pipeline.yaml: `query` (line 10): the query does not plan",
        ),
        (
            good.replace(
                "SELECT * FROM clicks",
                "SELECT page, count(*) FROM clicks GROUP BY page",
            ),
            "GROUP BY",
        ),
        (
            good.replace("SELECT * FROM clicks", "SELECT nope FROM clicks"),
            "nope",
        ),
    ];
    for (yaml, needle) in cases {
        let pipeline = write_pipeline(&ws, &yaml);
        let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
        assert!(err.lines().count() <= 3, "short message: {err}");
    }
    let out = run_bin(&["run"], ws.dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_damaged_checkpoint_file_is_named() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 5, 0);
    let pipeline = pipeline_in(&ws, "SELECT * FROM clicks", "");
    let p = pipeline.to_str().expect("utf-8");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let commit = ws.path("ckpt/commits/1");
    let text = std::fs::read_to_string(&commit).expect("commit");
    std::fs::write(&commit, &text[..text.len() / 2]).expect("truncate");
    let out = run_bin(&["run", p], ws.dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("commits/1"), "{}", stderr(&out));
    std::fs::write(&commit, "garbage\n").expect("garbage");
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(
        stderr(&out).contains("commits/1 line 1"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("sluice repair"), "{}", stderr(&out));
    // inspect shows the damaged batch as such (it reads what it can), naming the file.
    let out = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("damaged") && shown.contains("commits/1 line 1"),
        "{shown}"
    );
}

/// `sluice repair` fixes damage to the newest batch by moving the entry aside so the batch runs
/// again, and says plainly what it cannot fix.
#[test]
fn repair_fixes_the_newest_batch_and_names_what_it_cannot() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 20, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 10";
    let pipeline = pipeline_in(&ws, query, "");
    let p = pipeline.to_str().expect("utf-8");
    let ckpt = ws.p("ckpt");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let check_sink = || {
        let got = rt.block_on(sink_rows(&ws.path("out")));
        assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    };

    // Garbage in the newest commit: the batch runs again; the sink already has it.
    std::fs::write(ws.path("ckpt/commits/2"), "\0\0garbage").expect("garbage");
    let out = run_bin(&["repair", &ckpt, "--dry-run"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(dry run, not done) moved commits/2"));
    assert!(
        ws.path("ckpt/commits/2").exists(),
        "a dry run changes nothing"
    );
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("moved commits/2") && said.contains("runs again"),
        "{said}"
    );
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("finished interrupted batch 2"),
        "{}",
        stderr(&out)
    );
    check_sink();
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to repair"));

    // A truncated pending offsets entry: the batch is planned again from its logged files.
    std::fs::remove_file(ws.path("ckpt/commits/2")).expect("uncommit");
    let offsets = std::fs::read_to_string(ws.path("ckpt/offsets/2")).expect("offsets");
    std::fs::write(ws.path("ckpt/offsets/2"), &offsets[..offsets.len() / 2]).expect("truncate");
    let out = run_bin(&["run", p], ws.dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("offsets/2"), "{}", stderr(&out));
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("planned again"));
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    check_sink();

    // A committed batch without its offsets entry: rebuilt from its commit and the source's
    // log, and the next batch starts where it ended.
    std::fs::remove_file(ws.path("ckpt/offsets/2")).expect("remove");
    let out = run_bin(&["run", p], ws.dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("sluice repair"), "{}", stderr(&out));
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("rebuilt offsets/2") && said.contains(r#"clicks at {"files":3,"log":2}"#),
        "{said}"
    );
    write_clicks(&ws.path("in"), "json", 1, 20, 3);
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 batches, 20 rows in"),
        "{}",
        stderr(&out)
    );
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));

    // A pending batch whose previous offsets entry is gone: rebuilt, and the batch runs again.
    std::fs::remove_file(ws.path("ckpt/commits/3")).expect("uncommit");
    std::fs::remove_file(ws.path("ckpt/offsets/2")).expect("remove");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rebuilt offsets/2"));
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("finished interrupted batch 3"),
        "{}",
        stderr(&out)
    );
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));

    // Walk 68 (1): two commits removed, the newest ones: the run, `inspect` and `repair` name
    // the rewind that gets out (repair can rebuild no commit), and it works.
    std::fs::remove_file(ws.path("ckpt/commits/2")).expect("uncommit");
    std::fs::remove_file(ws.path("ckpt/commits/3")).expect("uncommit");
    let way_out = format!("`sluice rewind {ckpt} --to 1`");
    let out = run_bin(&["run", p], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&way_out), "{}", stderr(&out));
    let out = run_bin(&["inspect", &ckpt], ws.dir.path());
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("INCONSISTENT") && said.contains(&way_out) && !said.contains("runs again"),
        "{said}"
    );
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&way_out), "{}", stderr(&out));
    let out = run_bin(&["rewind", &ckpt, "--to", "1"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));

    // Without any commit, nothing says which batches finished: named, exit 1.
    std::fs::remove_dir_all(ws.path("ckpt/commits")).expect("remove commits");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("needs more than `sluice repair`") && err.contains("commits"),
        "{err}"
    );
}

fn spawn_every(pipeline: &std::path::Path, cwd: &std::path::Path) -> Child {
    sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--trigger",
            "every 100ms",
            "--progress",
            "json",
        ])
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn two_runs_at_once_one_stops_saying_the_checkpoint_is_in_use() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 6, 50, 0);
    let pipeline = pipeline_in(&ws, "SELECT * FROM clicks", "");
    let mut a = spawn_every(&pipeline, ws.dir.path());
    let mut b = spawn_every(&pipeline, ws.dir.path());
    // Exactly one stops at once; the other keeps running until told to stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (loser, mut winner) = loop {
        if a.try_wait().expect("wait").is_some() {
            break (a, b);
        }
        if b.try_wait().expect("wait").is_some() {
            break (b, a);
        }
        assert!(Instant::now() < deadline, "neither run stopped");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lost = loser.wait_with_output().expect("output");
    // Nothing failed: sysexits' EX_TEMPFAIL, which a cron wrapper tells from a failure.
    assert_eq!(lost.status.code(), Some(75));
    assert!(
        stderr(&lost).contains("in use by another run"),
        "{}",
        stderr(&lost)
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        winner.try_wait().expect("wait").is_none(),
        "the winner is still running"
    );
    // Walk 57 (5): the lock file named no holder, so who to stop was for `fuser` to find. The
    // refusal names the holder's pid.
    let third = spawn_every(&pipeline, ws.dir.path())
        .wait_with_output()
        .expect("third run");
    assert_eq!(third.status.code(), Some(75));
    // Walk 128 (2): with the command holding it, and a holder stopped said so.
    assert!(
        stderr(&third).contains(&format!(
            "lock held on {}, by pid {} (`sluice run`) on ",
            ws.path("ckpt/lock").display(),
            winner.id()
        )) && !stderr(&third).contains("is stopped"),
        "{}",
        stderr(&third)
    );
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &winner.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {name}");
    };
    signal("-STOP");
    let fourth = spawn_every(&pipeline, ws.dir.path())
        .wait_with_output()
        .expect("fourth run");
    signal("-CONT");
    assert_eq!(fourth.status.code(), Some(75));
    assert!(
        stderr(&fourth).contains(&format!(
            "that process is stopped (SIGSTOP, or Ctrl-Z in its shell), and holds the lock \
             until it is resumed (`kill -CONT {}`)",
            winner.id()
        )),
        "{}",
        stderr(&fourth)
    );
    terminate(&winner);
    let status =
        wait_timeout(&mut winner, Duration::from_secs(20)).expect("winner stops on SIGTERM");
    assert!(status.success(), "SIGTERM ends the run with exit 0");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", "SELECT * FROM clicks"));
    assert_eq!(
        compare(&expected, &rt.block_on(sink_rows(&ws.path("out")))),
        (expected.len(), 0, 0)
    );
}

/// Walk 60 (3): `SLUICE_LOG=` (empty), `warning` or a typo hid every warning, in silence
/// (each read as a filter naming no level). The default is used, and a word that is no
/// level is said.
#[test]
fn a_log_setting_that_is_no_level_does_not_hide_warnings() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/a.json"), "{\"a\":1}\n").expect("input");
    for (value, said) in [
        ("", None),
        ("warning", None),
        ("bogus", Some("SLUICE_LOG=bogus: not a level")),
    ] {
        let yaml = format!(
            "name: logs\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, format: \
             json }}\nquery: SELECT a / a AS r FROM s\ntrigger: available-now\nsink: {{ kind: \
             files, path: {out}, format: json }}\n",
            ckpt = ws.p(&format!("ckpt-{value}")),
            input = ws.p("in"),
            out = ws.p(&format!("out-{value}")),
        );
        let pipeline = write_pipeline(&ws, &yaml);
        let out = sluice_bin()
            .args(["run", pipeline.to_str().expect("utf-8")])
            .env("SLUICE_LOG", value)
            .output()
            .expect("run");
        let text = stderr(&out);
        assert!(out.status.success(), "{value}: {text}");
        assert!(
            text.contains("WARN") && text.contains("the query divides integers"),
            "{value}: {text}"
        );
        if let Some(said) = said {
            assert!(text.contains(said), "{value}: {text}");
        }
    }
}

/// Walk 60 (1): SIGTERM while the run waited on a server that does not answer (a sink's
/// PostgreSQL at a port that takes connections and says nothing) went on through every
/// retry, 93 s, and exited 1: a service manager would have killed it. Outside a batch it stops
/// within seconds, exit 0, as between batches; a second SIGTERM right after the first is the
/// same request.
#[test]
fn sigterm_outside_a_batch_stops_a_run_waiting_on_a_silent_server() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    let signal = "-TERM";
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 5, 0);
    let yaml = format!(
        "name: silent\ncheckpoint: {ckpt}\nsources:\n  clicks: {{ kind: files, path: {input}, \
         format: json }}\nquery: SELECT id FROM clicks\ntrigger: available-now\nsink:\n  \
         kind: postgres\n  url: host=127.0.0.1 port={port} user=sluice dbname=sluice\n  \
         table: silent\n  create_table: true\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let mut child = sluice_bin()
        .args(["run", pipeline.to_str().expect("utf-8")])
        .current_dir(ws.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    // Twice, as GNU `timeout` sends it (to the run, then to its process group): one request
    // to stop, not a second that stops at once with exit 130 (walk 99).
    for _ in 0..2 {
        std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = wait_timeout(&mut child, Duration::from_secs(20)).expect("stopped");
    let mut said = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut said)
        .expect("stderr");
    assert!(status.success(), "{signal}: {status:?}: {said}");
    assert!(sent.elapsed() < Duration::from_secs(10), "{signal}: {said}");
    assert!(
        said.contains("stopped outside a batch's computing"),
        "{signal}: {said}"
    );
    drop(silent);
}

#[test]
fn sigterm_stops_cleanly_and_the_next_run_carries_on() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 50, 0);
    let pipeline = pipeline_in(&ws, "SELECT * FROM clicks", "");
    let mut child = spawn_every(&pipeline, ws.dir.path());
    // Wait until both files are committed, then add more while it runs, then stop it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ws.path("ckpt/commits/1").exists() {
        assert!(Instant::now() < deadline, "the run did not commit batch 1");
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&child);
    let status = wait_timeout(&mut child, Duration::from_secs(20)).expect("stops on SIGTERM");
    assert!(status.success());
    write_clicks(&ws.path("in"), "json", 2, 50, 2);
    let out = run_json(&pipeline, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&out);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["batchId"], 2);
}

/// How a run under `run_or_kill` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It finished (successfully) in time.
    Finished,
    /// It was killed with SIGKILL; `after_a_commit`: once it had committed a batch of its own
    /// (not in start-up or in its first batch).
    Killed { after_a_commit: bool },
}

/// The newest batch in `ckpt/commits/`, if any.
fn latest_commit(ckpt: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(ckpt.join("commits"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .max()
}

/// Runs `pipeline` (its checkpoint in `cwd/ckpt`) for at most `delay`, then kills it with
/// SIGKILL.
fn run_or_kill(pipeline: &std::path::Path, cwd: &std::path::Path, delay: Duration) -> Ended {
    let committed_before = latest_commit(&cwd.join("ckpt"));
    let mut child = sluice_bin()
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ])
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(status) = wait_timeout(&mut child, delay) {
        let out = child.wait_with_output().expect("output");
        assert!(status.success(), "{}", stderr(&out));
        return Ended::Finished;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    Ended::Killed {
        after_a_commit: latest_commit(&cwd.join("ckpt")) > committed_before,
    }
}

/// Kill the process with SIGKILL at random moments until a run completes; nothing is lost or
/// doubled. (The longer SIGKILL soak, `sigkill_soak`, builds on this.)
#[test]
fn sigkill_loop_loses_and_doubles_nothing() {
    use rand::{Rng, SeedableRng};
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 120, 100, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 10";
    let pipeline = pipeline_in(&ws, query, "");
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let (mut kills, mut mid_run, mut finished) = (0, 0, false);
    for _ in 0..400 {
        // Most runs die part-way: somewhere in start-up, planning, the sink or the commit.
        let delay = Duration::from_millis(rng.random_range(2..150));
        match run_or_kill(&pipeline, ws.dir.path(), delay) {
            Ended::Finished => {
                finished = true;
                break;
            }
            Ended::Killed { after_a_commit } => {
                kills += 1;
                mid_run += usize::from(after_a_commit);
            }
        }
    }
    if !finished {
        let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    let (n, d, l) = compare(&expected, &got);
    println!(
        "sigkill loop: {kills} kills ({mid_run} after the run had committed a batch), {n} rows \
         compared, {d} duplicates, {l} losses"
    );
    assert!(kills >= 10, "the loop must kill many times, killed {kills}");
    assert!(
        mid_run >= 5,
        "kills must land mid-run, not only in start-up: {mid_run} of {kills} did"
    );
    assert_eq!((d, l), (0, 0));
}

/// The SIGKILL soak: a windowed aggregation (state, windows closed by the
/// watermark, append) killed with SIGKILL at random moments at least `SLUICE_SOAK_KILLS` times
/// (200 by default) while input keeps arriving, then run to the end: the sink holds exactly the
/// batch SQL's closed windows. Run it with
/// `cargo nextest run --run-ignored only sigkill_soak` (a few minutes).
#[test]
#[ignore = "a soak of a few minutes: cargo nextest run --run-ignored only sigkill_soak"]
fn sigkill_soak() {
    use rand::{Rng, SeedableRng};
    let target: u64 = std::env::var("SLUICE_SOAK_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(200);
    let ws = Workspace::new();
    let query = "SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, page, count(*) AS n, \
                 max(amount) AS top, count(DISTINCT user_id) AS users FROM clicks GROUP BY 1, 2";
    let yaml = pipeline_yaml(
        &ws,
        "json",
        query,
        1,
        "    watermark: { column: ts, delay: 10s }\n",
    )
    .replace(
        "trigger:",
        "output_mode: append\nsnapshot_every: 3\nretain_batches: 5\ntrigger:",
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (mut kills, mut mid_run, mut runs, mut files) = (0u64, 0u64, 0u64, 0usize);
    while kills < target {
        // Input keeps arriving: 4 more files (40 events each, one second apart) per 4 kills.
        if kills.is_multiple_of(4) && files < 4 * (kills as usize / 4 + 1) {
            write_clicks(&ws.path("in"), "json", 4, 40, files);
            files += 4;
        }
        runs += 1;
        let delay = Duration::from_millis(rng.random_range(2..150));
        if let Ended::Killed { after_a_commit } = run_or_kill(&pipeline, ws.dir.path(), delay) {
            kills += 1;
            mid_run += u64::from(after_a_commit);
        }
    }
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let last_ns = 1_762_000_000_000_000_000i64 + (files as i64 * 40 - 1) * 1_000_000_000;
    let closed = format!(
        "SELECT * FROM ({query}) WHERE window_start + INTERVAL '1 minute' <= \
         arrow_cast({}, 'Timestamp(Nanosecond, None)')",
        last_ns - 10_000_000_000
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", &closed));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    let (n, d, l) = compare(&expected, &got);
    println!(
        "sigkill soak: {kills} kills ({mid_run} after the run had committed a batch) in {runs} \
         runs over {files} files, {n} rows compared, {d} duplicates, {l} losses"
    );
    assert!(n > 0);
    assert!(
        mid_run * 4 >= kills,
        "at least a quarter of the kills must land mid-run: {mid_run} of {kills}"
    );
    assert_eq!((d, l), (0, 0));
}

/// A windowed aggregation as a user runs it: progress shows the watermark, the state and late
/// rows; `sluice state` reads the state; `sluice explain` splits the plan.
#[test]
fn a_windowed_aggregation_reports_its_state_and_can_be_read_and_explained() {
    let ws = Workspace::new();
    // 4 files of 40 events, one second apart: 160 s of events.
    write_clicks(&ws.path("in"), "json", 4, 40, 0);
    let query = "SELECT date_bin(INTERVAL '1 minute', ts) AS window_start, page, count(*) AS n \
                 FROM clicks GROUP BY 1, 2";
    let yaml = pipeline_yaml(
        &ws,
        "json",
        query,
        1,
        "    watermark: { column: ts, delay: 10s }\n",
    )
    .replace(
        "trigger:",
        &format!(
            "output_mode: append\nlate_rows: {{ kind: files, path: {}, format: json }}\ntrigger:",
            ws.p("late")
        ),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_json(&pipeline, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&out);
    assert_eq!(
        events.len(),
        5,
        "4 batches with input, then one that closes windows"
    );
    let late_files = || -> Vec<String> {
        std::fs::read_dir(ws.path("late/clicks"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.ends_with(".jsonl"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(late_files().is_empty(), "no late rows yet");
    assert!(
        events[0]["watermark"].is_null(),
        "no event time seen before batch 0"
    );
    assert_eq!(events[1]["watermark"], "2025-11-01T12:27:09.000Z");
    let last = &events[4];
    assert_eq!(last["numInputRows"], 0);
    assert_eq!(last["watermark"], "2025-11-01T12:29:09.000Z");
    let state = &last["stateOperators"][0];
    assert_eq!(state["operatorName"], "aggregate");
    assert!(state["numRowsRemoved"].as_u64().expect("removed") > 0);
    assert!(state["stateBytesWritten"].as_u64().expect("bytes") > 0);
    let rows_left = state["numRowsTotal"].as_u64().expect("total");
    assert!(
        rows_left > 0,
        "the window the watermark has not reached stays"
    );

    // Rows older than the watermark arrive: counted as late, dropped.
    write_batch(&ws.path("in/late.json"), "json", &clicks(0, 7));
    let out = run_json(&pipeline, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&out);
    assert_eq!(events[0]["numInputRows"], 7);
    assert_eq!(events[0]["numLateRows"], 7);
    assert_eq!(
        events[0]["stateOperators"][0]["numRowsDroppedByWatermark"],
        7
    );
    assert_eq!(events[0]["stateOperators"][0]["numRowsUpdated"], 0);
    // They are written whole to the late-rows sink, under the source's name.
    let late = late_files();
    assert_eq!(late.len(), 1, "{late:?}");
    let text = std::fs::read_to_string(ws.path("late/clicks").join(&late[0])).expect("late");
    assert_eq!(text.lines().count(), 7);
    assert!(text.contains("\"amount\""), "every column: {text}");

    let ckpt = ws.p("ckpt");
    // Walk 28: a late row's record did not say why it was late. Its batch (the file's name)
    // says the watermark it was judged against, with its late rows.
    let out = run_bin(&["inspect", &ckpt, "--batch", "5"], ws.dir.path());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.lines().any(|l| l.starts_with("batch      5")
            && l.ends_with("; 7 late rows; watermark 2025-11-01T12:29:09+00:00")),
        "{shown}"
    );
    let out = run_bin(&["inspect", &ckpt, "--json"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    assert_eq!(view["batches_committed"], 6);
    assert_eq!(view["last_committed"], 5);
    assert_eq!(view["source_offsets"]["clicks"]["files"], 5);
    assert_eq!(view["source_offsets"]["clicks"]["log"], 5);
    assert_eq!(
        view["next_watermark_ms"],
        1_762_000_000_000i64 + 149_000,
        "the last event (159 s) less the 10 s delay"
    );
    assert_eq!(view["state"][0]["operator"], "aggregate");
    assert_eq!(view["state"][0]["rows"], rows_left);
    assert!(view["state"][0]["bytes"].as_u64().expect("bytes") > 0);
    assert_eq!(view["sink"]["kind"], "files");
    assert_eq!(view["sink"]["output_mode"], "append");
    assert_eq!(
        view["sink"]["last_batch"], 5,
        "the batch of late rows, which wrote none"
    );
    assert_eq!(view["sink"]["last_batch_rows"], 0);
    assert_eq!(view["sink"]["manifest_entries"], 6);
    let out = run_bin(
        &[
            "state",
            &ckpt,
            "--sql",
            "SELECT count(*) AS groups FROM state",
        ],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("| {rows_left} ")),
        "{rows_left} groups in state: {shown}"
    );
    let out = run_bin(&["state", &ckpt, "--batch", "1"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // The state's columns as the query names them.
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("| window_start ") && shown.contains("| n "),
        "{shown}"
    );
    // Walk 30 (10): a query of no rows printed `++` / `++`: the columns and the count now.
    let out = run_bin(
        &[
            "state",
            &ckpt,
            "--sql",
            "SELECT window_start, n FROM state WHERE n < 0",
        ],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("| window_start | n |") && shown.trim_end().ends_with("(0 rows)"),
        "{shown}"
    );
    let out = run_bin(&["state", &ckpt, "--batch", "999"], ws.dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not committed"), "{}", stderr(&out));
    // Walk 24 (6): a query naming the operator, not the table `state`, is told which it is.
    let out = run_bin(
        &["state", &ckpt, "--sql", "SELECT count(*) FROM aggregate"],
        ws.dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the operator's rows are the table `state`"),
        "{}",
        stderr(&out)
    );

    // Rewinding past the batch of late rows takes them back from the late-rows sink too (its
    // folder is read from the pipeline file the checkpoint stores), and the next run writes
    // them again.
    let out = run_bin(&["rewind", &ckpt, "--to", "4"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(late_files().is_empty(), "{:?}", late_files());
    let out = run_json(&pipeline, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_events(&out)[0]["numLateRows"], 7);
    assert_eq!(late_files(), late);
    assert_eq!(
        std::fs::read_to_string(ws.path("late/clicks").join(&late[0])).expect("late"),
        text
    );

    let out = run_bin(
        &["explain", pipeline.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "an event-time window aggregation",
        "`window_start` (windows 1m wide)",
        "clicks.ts - 10s",
        "mode=Partial",
        "PartialReduce",
        "mode=Final",
        "when the watermark closes it",
        // Walk 36: with a `late_rows` sink, late rows go there, not "dropped".
        "without an event time, goes to the `late_rows` sink as late",
    ] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
    let stateless = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", "SELECT id FROM clicks", 1, ""),
    );
    let out = run_bin(
        &["explain", stateless.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("keeps no state"));
    let out = run_bin(&["state", &ckpt.replace("ckpt", "nope")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2));
}

/// `sluice rewind --to N` takes later batches back from the files sink, the state and the logs;
/// the next run computes them again, to the same output. A sink that cannot take batches back
/// is refused with the reason.
#[test]
fn rewind_takes_later_batches_back_and_the_next_run_redoes_them() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 30, 0);
    let query = "SELECT page, count(*) AS n, max(amount) AS top FROM clicks GROUP BY page";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "")
        .replace("trigger:", "output_mode: update\ntrigger:");
    let pipeline = write_pipeline(&ws, &yaml);
    let p = pipeline.to_str().expect("utf-8");
    let ckpt = ws.p("ckpt");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let before = rt.block_on(sink_rows(&ws.path("out")));
    // A crash before batch 3's commit leaves it pending; rewind takes it back with the rest.
    std::fs::remove_file(ws.path("ckpt/commits/3")).expect("crash before the commit");

    let out = run_bin(&["rewind", &ckpt, "--to", "1"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("took back batch 3") && said.contains("took back batch 2"),
        "{said}"
    );
    let parts: Vec<String> = std::fs::read_dir(ws.path("out"))
        .expect("out/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert!(
        parts
            .iter()
            .all(|n| n.starts_with("part-0000000000-") || n.starts_with("part-0000000001-")),
        "{parts:?}"
    );
    assert!(!ws.path("ckpt/commits/2").exists() && !ws.path("ckpt/offsets/3").exists());
    assert!(!ws.path("ckpt/state/aggregate/3.delta.parquet").exists());
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 batches"), "{}", stderr(&out));
    assert_eq!(rt.block_on(sink_rows(&ws.path("out"))), before);

    // Walk 68 (6): a state version gone (1), a rewind to a batch whose state needs it (2) said
    // done, and the run then failed. Refused, naming the batch whose state loads; that works.
    for file in std::fs::read_dir(ws.path("ckpt/state/aggregate")).expect("state") {
        let file = file.expect("entry").path();
        if file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("1."))
        {
            std::fs::remove_file(file).expect("remove");
        }
    }
    let out = run_bin(&["rewind", &ckpt, "--to", "2"], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lacks version 1")
            && stderr(&out).contains(&format!("`sluice rewind {ckpt} --to 0`")),
        "{}",
        stderr(&out)
    );
    assert!(
        ws.path("ckpt/commits/3").exists(),
        "a refused rewind changes nothing"
    );
    let out = run_bin(&["rewind", &ckpt, "--to", "0"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(rt.block_on(sink_rows(&ws.path("out"))), before);

    // Complete mode keeps only the latest table: nothing to go back to.
    let complete = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", query, 1, "")
            .replace(&ws.p("ckpt"), &ws.p("ckpt2"))
            .replace(&ws.p("out"), &ws.p("out2"))
            .replace("trigger:", "output_mode: complete\ntrigger:"),
    );
    assert!(
        run_bin(&["run", complete.to_str().expect("utf-8")], ws.dir.path())
            .status
            .success()
    );
    let out = run_bin(&["rewind", &ws.p("ckpt2"), "--to", "1"], ws.dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("complete mode"), "{}", stderr(&out));
}

/// Rewinding is a library operation: a program that embeds Sluice rewinds a checkpoint and is
/// told what was taken back, without the command line.
#[test]
fn rewind_is_a_library_operation() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 10, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, "");
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let ckpt = ws.p("ckpt");
    let location = sluice::storage::Location::open(&ckpt, false, false, None).expect("checkpoint");
    let rewound = rt
        .block_on(sluice::ops::rewind(
            &location,
            &ckpt,
            sluice::checkpoint::BatchId(0),
        ))
        .expect("rewind");
    let batches: Vec<u64> = rewound.taken_back.iter().map(|(b, _)| b.0).collect();
    assert_eq!(batches, [2, 1], "newest first");
    assert!(rewound.taken_back.iter().all(|(_, files)| *files >= 1));
    assert_eq!(rt.block_on(sink_rows(&ws.path("out"))).len(), 10);
    // Again: nothing left to take back. Past the last batch: refused with the reason.
    let again = rt
        .block_on(sluice::ops::rewind(
            &location,
            &ckpt,
            sluice::checkpoint::BatchId(0),
        ))
        .expect("rewind again");
    assert!(again.taken_back.is_empty());
    let err = rt
        .block_on(sluice::ops::rewind(
            &location,
            &ckpt,
            sluice::checkpoint::BatchId(5),
        ))
        .expect_err("no batch 5")
        .to_string();
    assert!(err.contains("batch 5 is not a committed batch"), "{err}");
}

/// Verifying and repairing are library operations too (`sluice::ops::replay`,
/// `sluice::ops::repair`): a library user gets the findings as values, not printed text.
#[test]
fn verify_and_repair_are_library_operations() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 10, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, "");
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let ckpt = ws.p("ckpt");
    let location = sluice::storage::Location::open(&ckpt, false, false, None).expect("checkpoint");
    let options = sluice::ops::ReplayOptions {
        verify: true,
        pipeline: None,
        limit: 10,
    };
    let verify = |batch: u64| {
        rt.block_on(sluice::ops::replay(
            &location,
            &ckpt,
            sluice::checkpoint::BatchId(batch),
            &options,
        ))
        .expect("replay")
    };
    let report = verify(1);
    assert_eq!(report.verified, Some(true), "{:?}", report.findings);
    assert_eq!(report.sink.hash(), report.committed.hash());
    assert_eq!(report.recomputed.hash().map(|(rows, _)| rows), Some(10));

    // A sink file of batch 1 rewritten with other rows: the finding names the sink.
    let manifest = std::fs::read_to_string(ws.path("out/_sluice/manifest/1")).expect("manifest");
    let file = manifest
        .split('"')
        .find(|s| s.ends_with(".parquet"))
        .expect("a data file")
        .to_string();
    let other = clicks(100, 3);
    write_batch(&ws.path("out").join(&file), "parquet", &other);
    let report = verify(1);
    assert_eq!(report.verified, Some(false));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.contains("the SINK differs")),
        "{:?}",
        report.findings
    );
    assert_eq!(
        report.only_in_sink.len(),
        3,
        "the three rows written over it"
    );

    // A lost offsets entry of the newest committed batch is rebuilt from its commit and the
    // source's log, through the source's connector.
    let offsets = ws.path("ckpt/offsets/2");
    let before = std::fs::read_to_string(&offsets).expect("offsets/2");
    std::fs::remove_file(&offsets).expect("lose offsets/2");
    let repaired = rt
        .block_on(sluice::ops::repair(&location, &ckpt, false, None))
        .expect("repair");
    assert!(repaired.unfixable.is_empty(), "{:?}", repaired.unfixable);
    assert!(
        repaired
            .fixed
            .iter()
            .any(|f| f.contains("rebuilt offsets/2")),
        "{:?}",
        repaired.fixed
    );
    let after = std::fs::read_to_string(&offsets).expect("offsets/2 rebuilt");
    let sources = |text: &str| text.lines().nth(2).map(str::to_string);
    assert_eq!(
        sources(&after),
        sources(&before),
        "the source's end offset is the same"
    );
}

/// `sluice gen nexmark` writes the same events every time (byte for byte), one folder per
/// table, which DataFusion reads back with the standard mix.
#[tokio::test]
async fn gen_nexmark_writes_the_same_events_every_time() {
    let ws = Workspace::new();
    for (out, format) in [("a", "json"), ("b", "json"), ("p", "parquet")] {
        let run = run_bin(
            &[
                "gen",
                "nexmark",
                "--events",
                "10000",
                "--events-per-file",
                "4000",
                "--format",
                format,
                "--out",
                &ws.p(out),
            ],
            ws.dir.path(),
        );
        assert!(run.status.success(), "{}", stderr(&run));
        assert!(
            String::from_utf8_lossy(&run.stdout)
                .contains("200 people, 600 auctions, 9200 bids in 3 files per table"),
            "{}",
            String::from_utf8_lossy(&run.stdout)
        );
    }
    for table in ["person", "auction", "bid"] {
        for part in 0..3 {
            let file = format!("{table}/part-{part:05}.json");
            assert_eq!(
                std::fs::read(ws.path(&format!("a/{file}"))).expect("a"),
                std::fs::read(ws.path(&format!("b/{file}"))).expect("b"),
                "{file}"
            );
        }
    }
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet(
        "bid",
        &ws.p("p/bid"),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .expect("bids");
    let rows = sql_rows(
        &ctx,
        "SELECT count(*), count(DISTINCT auction) > 50, min(price) >= 100 FROM bid",
    )
    .await;
    assert_eq!(rows, ["9200|true|true"]);
    // A second run into the same folder is refused, not mixed in.
    let again = run_bin(
        &["gen", "nexmark", "--events", "10", "--out", &ws.p("a")],
        ws.dir.path(),
    );
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    // No events is a mistake, refused before any folder is made (walk 6).
    let none = run_bin(
        &["gen", "nexmark", "--events", "0", "--out", &ws.p("none")],
        ws.dir.path(),
    );
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(stderr(&none).contains("--events"), "{}", stderr(&none));
    assert!(!ws.path("none").exists());
}

/// Audit 86 (ops #3): a copy made by hand beside a log entry (`commits/1.bak`, before an
/// edit) made every command refuse the checkpoint, `repair` too, which sent the user back to
/// `repair`. Repair moves it aside to a hidden name (a dry run says it would), and runs
/// carry on.
#[test]
fn repair_moves_aside_a_file_that_is_not_a_batch_number() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let p = pipeline.to_str().expect("utf-8");
    let ckpt = ws.p("ckpt");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    std::fs::copy(ws.path("ckpt/commits/1"), ws.path("ckpt/commits/1.bak")).expect("copy");
    let out = run_bin(&["run", p], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`1.bak` is not a batch number"),
        "{}",
        stderr(&out)
    );
    let out = run_bin(&["repair", &ckpt, "--dry-run"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("moved commits/1.bak aside to commits/.1.bak.stray-"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        ws.path("ckpt/commits/1.bak").exists(),
        "a dry run moves nothing"
    );
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!ws.path("ckpt/commits/1.bak").exists());
    write_clicks(&ws.path("in"), "json", 1, 10, 2);
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ws.path("ckpt/commits/2").exists(), "batch 2 ran");
}

/// The path of batch 1's data file in the sink folder `out` of `ws`.
fn batch_one_file(ws: &Workspace) -> std::path::PathBuf {
    std::fs::read_dir(ws.path("out"))
        .expect("out")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("part-0000000001"))
        .expect("batch 1's file")
}

/// Walk 120: a kept batch's manifest entry emptied switched the check of its files off: with
/// the file deleted too, the run went on, exit 0, its rows lost in silence. The damaged entry
/// is refused as a lost file is, and the rewind named writes the batches again.
#[test]
fn a_damaged_manifest_entry_of_a_kept_batch_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 10, 0);
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let p = pipeline.to_str().expect("utf-8");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    std::fs::write(ws.path("out/_sluice/manifest/1"), "").expect("empty the entry");
    std::fs::remove_file(batch_one_file(&ws)).expect("delete");
    write_clicks(&ws.path("in"), "json", 1, 10, 3);
    let refused = run_bin(&["run", p], ws.dir.path());
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("the manifest entry _sluice/manifest/1 of batch 1 is damaged")
            && said.contains("sluice rewind ")
            && said.contains(" --to 0`"),
        "{said}"
    );
    let rewind = run_bin(&["rewind", "ckpt", "--to", "0"], ws.dir.path());
    assert!(rewind.status.success(), "{}", stderr(&rewind));
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_verified(&ws, "ckpt", 1);
    assert_verified(&ws, "ckpt", 3);
}

/// Walk 118: states that stop every run before a batch were shown as healthy by `inspect
/// --json` (`inconsistent` absent): a sink file of a kept batch gone, a checkpoint older than
/// its sink (a copy of it ran on), a pinned schema deleted; and a damaged `metadata` printed no
/// JSON at all. Each is in `inconsistent`, as the run says it.
#[test]
fn inspect_json_says_what_stops_the_next_run() {
    let inconsistent = |ws: &Workspace, ckpt: &str| {
        let out = run_bin(&["inspect", ckpt, "--json"], ws.dir.path());
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
        (
            view["inconsistent"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            view,
        )
    };
    // A sink file of a kept batch gone.
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 10, 0);
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let p = pipeline.to_str().expect("utf-8");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let (said, view) = inconsistent(&ws, "ckpt");
    assert!(said.is_empty(), "{view}");
    std::fs::remove_file(batch_one_file(&ws)).expect("delete");
    let (said, view) = inconsistent(&ws, "ckpt");
    let refused = run_bin(&["run", p], ws.dir.path());
    assert!(!refused.status.success());
    assert!(
        said.contains("a file of batch 1 its manifest entry lists, is gone")
            && said.contains("sluice rewind ckpt --to 0")
            && stderr(&refused).contains("a file of batch 1 its manifest entry lists"),
        "{view}"
    );

    // A checkpoint older than its sink: a copy of it ran on.
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let p = pipeline.to_str().expect("utf-8");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let copied = std::process::Command::new("cp")
        .args(["-a", "ckpt", "copy"])
        .current_dir(ws.dir.path())
        .status()
        .expect("cp");
    assert!(copied.success());
    write_clicks(&ws.path("in"), "json", 1, 10, 2);
    let out = run_bin(&["run", p, "--checkpoint", "copy"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let (said, view) = inconsistent(&ws, "ckpt");
    assert!(
        said.contains("holds batch 2, but this checkpoint goes up to batch 1"),
        "{view}"
    );
    let (said, view) = inconsistent(&ws, "copy");
    assert!(said.is_empty(), "{view}");

    // A pinned schema deleted, and then a damaged `metadata`.
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT id, page FROM clicks", 1, "")
        .replace(&format!("    schema: {CLICK_SCHEMA_YAML}\n"), "");
    let pipeline = write_pipeline(&ws, &yaml);
    let p = pipeline.to_str().expect("utf-8");
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(ws.path("ckpt/sources/clicks/schema")).expect("pinned schema");
    let (said, view) = inconsistent(&ws, "ckpt");
    assert!(
        said.contains("ckpt/sources/clicks/schema, which is gone"),
        "{view}"
    );
    std::fs::write(ws.path("ckpt/metadata"), "garbage").expect("damage");
    let out = run_bin(&["inspect", "ckpt", "--json"], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (said, view) = inconsistent(&ws, "ckpt");
    assert!(
        view["metadata"].is_null()
            && view["last_committed"] == 0
            && said.contains("ckpt/metadata line 1")
            && said.contains("sluice repair ckpt"),
        "{view}"
    );
}

/// Audit 86 (ops #4, #6, #5): an emptied `queries/<fingerprint>.sql` was never written
/// again, so every replay of its batches failed for good; a run with the same query writes
/// it again. `inspect` failed whole over a damaged newest offsets entry; it shows the rest.
/// A damaged rewind record's advice named `CHECKPOINT`, not the checkpoint.
#[test]
fn damaged_query_offsets_and_rewind_files_are_mended_shown_and_named() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let p = pipeline.to_str().expect("utf-8");
    let ckpt = ws.p("ckpt");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let queries: Vec<std::path::PathBuf> = std::fs::read_dir(ws.path("ckpt/queries"))
        .expect("queries")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(queries.len(), 1);
    std::fs::write(&queries[0], "").expect("empty the query file");
    write_clicks(&ws.path("in"), "json", 1, 10, 2);
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_verified(&ws, "ckpt", 0);

    let offsets = std::fs::read_to_string(ws.path("ckpt/offsets/2")).expect("offsets");
    std::fs::write(ws.path("ckpt/offsets/2"), &offsets[..offsets.len() / 2]).expect("truncate");
    let out = run_bin(&["inspect", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("damaged") && shown.contains("offsets/2"),
        "{shown}"
    );
    // Walk 88: `inconsistent` was empty while the damaged entry stopped every run.
    let out = run_bin(&["inspect", &ckpt, "--json"], ws.dir.path());
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect --json");
    let inconsistent = view["inconsistent"].as_str().unwrap_or_default();
    assert!(
        inconsistent.contains("ckpt/offsets/2 line")
            && inconsistent.contains(&format!("sluice repair {ckpt}")),
        "{view}"
    );
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));

    std::fs::write(ws.path("ckpt/rewind"), "{").expect("a damaged rewind record");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !said.contains("CHECKPOINT") && said.contains(&format!("sluice rewind {ckpt} --to N")),
        "{said}"
    );
}

/// Audit 91a (Spark's StreamingDeduplicationSuite "multiple deduplicates"): `DISTINCT ON`
/// over a `DISTINCT` of the same columns was explained as supported, then every batch failed
/// (the deduplication's final phase was taken for the aggregation's, by their one set of
/// names), and the pending batch failed again on every run. Each page comes out once, with a
/// user it was seen with.
#[test]
fn distinct_on_over_a_distinct_of_the_same_columns_runs() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 20, 0);
    let query =
        "SELECT DISTINCT ON (page) page, user_id FROM (SELECT DISTINCT page, user_id FROM clicks)";
    let pipeline = pipeline_in(&ws, query, "");
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ctx = datafusion::prelude::SessionContext::new();
    let pages = rt.block_on(parquet_rows(
        &ctx,
        &ws.p("out"),
        "SELECT page, count(*) FROM sink GROUP BY page",
    ));
    let expected = rt.block_on(oracle(
        &ws.path("in"),
        "json",
        "SELECT page, count(*) FROM (SELECT DISTINCT page FROM clicks) GROUP BY page",
    ));
    assert_eq!(pages, expected, "each page once");
    let seen = rt.block_on(oracle(
        &ws.path("in"),
        "json",
        "SELECT DISTINCT page, user_id FROM clicks",
    ));
    let ctx = datafusion::prelude::SessionContext::new();
    let written = rt.block_on(parquet_rows(
        &ctx,
        &ws.p("out"),
        "SELECT page, user_id FROM sink",
    ));
    assert!(written.iter().all(|row| seen.contains(row)), "{written:?}");
}

/// Walk 92: two copies of one checkpoint (a move not finished: the old copy still there) run
/// at once into one sink take the same epoch: both staged batch 1 in one folder, the copy's
/// files overwrote the other's, and the run whose manifest entry won published them as its
/// own (rows doubled, exit 0; found only by the next run, "written over"). Each copy stages
/// apart: the winner publishes its own files, the other is refused, and the sink holds the
/// batch query's rows once.
#[test]
fn two_copies_of_a_checkpoint_run_at_once_never_publish_each_others_files() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let query = "SELECT id, page, amount FROM clicks";
    let pipeline = pipeline_in(&ws, query, "");
    let p = pipeline.to_str().expect("utf-8");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    copy_dir(&ws.path("ckpt"), &ws.path("ckpt-copy"));
    write_clicks(&ws.path("in"), "json", 3, 10, 1);
    // The run on the checkpoint stops before batch 1's manifest entry; the copy's run plans
    // the three new files into its batch 1, stages them and stops there too; the first goes
    // on and commits, then the copy.
    let mut copy = None;
    let first = run_stopped_with(&pipeline, ws.dir.path(), "_sluice/manifest/1", &[], || {
        let child = sluice_bin()
            .args([
                "run",
                p,
                "--progress",
                "none",
                "--trigger",
                "once",
                "--checkpoint",
            ])
            .arg(ws.path("ckpt-copy"))
            .env("SLUICE_STOP_AT", "_sluice/manifest/1")
            .current_dir(ws.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        wait_stopped(&child);
        copy = Some(child);
    });
    assert!(first.status.success(), "{}", stderr(&first));
    let copy = copy.expect("the copy's run");
    std::process::Command::new("kill")
        .args(["-CONT", &copy.id().to_string()])
        .status()
        .expect("kill -CONT");
    let copy = copy.wait_with_output().expect("the copy's end");
    assert_eq!(copy.status.code(), Some(2), "{}", stderr(&copy));
    let again = run_bin(&["run", p], ws.dir.path());
    assert!(again.status.success(), "{}", stderr(&again));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(got, expected, "each row once");
}

/// Audit 90c: a damaged compact entry of a files source's log (every file read up to its
/// batch, the older entries deleted) sent the user to `repair`, which found nothing to repair:
/// the run says that nothing else records it and what does get the pipeline going.
#[test]
fn a_damaged_compact_entry_of_a_files_source_names_a_way_out_that_exists() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 8, 5, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT id, page FROM clicks", 1, "");
    let pipeline = write_pipeline(&ws, &format!("{yaml}retain_batches: 2\n"));
    let p = pipeline.to_str().expect("utf-8");
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let compact: Vec<std::path::PathBuf> = std::fs::read_dir(ws.path("ckpt/sources/clicks"))
        .expect("source log")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".compact"))
        .collect();
    assert_eq!(compact.len(), 1, "{compact:?}");
    let text = std::fs::read_to_string(&compact[0]).expect("compact");
    std::fs::write(&compact[0], &text[..text.len() / 2]).expect("cut it short");
    write_clicks(&ws.path("in"), "json", 1, 5, 8);
    let out = run_bin(&["run", p], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(".compact")
            && said.contains("restore it from a backup")
            && said.contains("new checkpoint")
            && !said.contains("sluice repair"),
        "{said}"
    );
}

/// Walk 99: a deleted compact entry of a files source's log stopped the run, but `repair`
/// found nothing to repair, `inspect` showed nothing amiss and `rewind` went ahead (the run
/// after it refused again): each says what the run says, and the rewind takes nothing back.
#[test]
fn a_deleted_compact_entry_of_a_files_source_is_said_by_every_command() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 8, 5, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT id, page FROM clicks", 1, "");
    let pipeline = write_pipeline(&ws, &format!("{yaml}retain_batches: 2\n"));
    let p = pipeline.to_str().expect("utf-8");
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let compact = std::fs::read_dir(ws.path("ckpt/sources/clicks"))
        .expect("source log")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".compact"))
        .expect("a compact entry");
    std::fs::remove_file(&compact).expect("rm");
    let ckpt = ws.p("ckpt");
    let deleted = "an entry of it was deleted";
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(deleted) && said.contains("new checkpoint") && !said.contains("rewind"),
        "{said}"
    );
    let out = run_bin(&["inspect", &ckpt], ws.dir.path());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("INCONSISTENT") && shown.contains(deleted),
        "{shown}"
    );
    let page = ws.path("report.html");
    let out = run_bin(
        &["report", &ckpt, "--html", page.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("INCONSISTENT: source `clicks`"), "{html}");
    let out = run_bin(&["rewind", &ckpt, "--to", "6"], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains(deleted), "{said}");
    assert!(ws.path("ckpt/commits/7").exists(), "nothing taken back");
    let out = run_bin(&["run", p], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(deleted), "{}", stderr(&out));
}

/// Walk 99: the pipeline file and query text of every edit stayed in the checkpoint for ever
/// (`pipelines/`, `queries/`), long after retention removed every batch that ran with them:
/// they go with the last such batch, and the kept batches' files stay (a rewind reads them).
#[test]
fn retention_removes_the_pipeline_files_no_kept_batch_ran_with() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 5, 0);
    let first = pipeline_yaml(&ws, "json", "SELECT id, page FROM clicks", 1, "");
    let pipeline = write_pipeline(&ws, &format!("{first}retain_batches: 2\n"));
    let p = pipeline.to_str().expect("utf-8");
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = |folder: &str| {
        std::fs::read_dir(ws.path(&format!("ckpt/{folder}")))
            .expect("folder")
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    };
    assert_eq!((stored("pipelines"), stored("queries")), (1, 1));
    // Edited twice: the second edit's batches push the first two out of retention.
    for (i, query) in [
        "SELECT id, page FROM clicks WHERE id >= 0",
        "SELECT id, page FROM clicks WHERE id < 1000",
    ]
    .into_iter()
    .enumerate()
    {
        write_clicks(&ws.path("in"), "json", 3, 5, 3 + 3 * i);
        let yaml = pipeline_yaml(&ws, "json", query, 1, "");
        std::fs::write(&pipeline, format!("{yaml}retain_batches: 2\n")).expect("edit");
        let out = run_bin(&["run", p], ws.dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!((stored("pipelines"), stored("queries")), (1, 1));
    let out = run_bin(&["rewind", &ws.p("ckpt"), "--to", "7"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let expected = rt.block_on(oracle(
        &ws.path("in"),
        "json",
        "SELECT id, page FROM clicks",
    ));
    assert_eq!(
        rt.block_on(sink_rows(&ws.path("out"))),
        expected,
        "each row once"
    );
}

/// Audit 86 (ops #1, #2): a damaged newest commit with a later batch pending was moved aside
/// "as if deleted" and repair said the next run carries on, which then refused the
/// checkpoint: it is named unfixable with the rewind that works. And a pending batch the sink
/// holds, whose damaged offsets entry repair moved aside, then taken back by `rewind --to`
/// the newest committed batch, lost its source log there but stayed in the sink, so every
/// run found the sink ahead: the rewind takes it back from the sink too. Each way ends with
/// the sink holding the batch query's rows once.
#[test]
fn a_damaged_newest_commit_or_pending_entry_has_a_way_out_that_works() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 20, 0);
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 10";
    let pipeline = pipeline_in(&ws, query, "");
    let p = pipeline.to_str().expect("utf-8");
    let ckpt = ws.p("ckpt");
    assert!(run_bin(&["run", p], ws.dir.path()).status.success());
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let check_sink = || {
        let expected = rt.block_on(oracle(&ws.path("in"), "json", query));
        let got = rt.block_on(sink_rows(&ws.path("out")));
        assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    };

    // Batch 3 in the sink, not committed; commits/2 damaged.
    write_clicks(&ws.path("in"), "json", 1, 20, 3);
    assert!(crashed(&run_quietly(
        &pipeline,
        &Crash::Before.env(1, "commits/3")
    )));
    std::fs::write(ws.path("ckpt/commits/2"), "garbage").expect("damage");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !said.contains("runs carry on without it")
            && said.contains(&format!("`sluice rewind {ckpt} --to 1`")),
        "{said}"
    );
    let out = run_bin(&["rewind", &ckpt, "--to", "1"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    check_sink();

    // Batch 4 in the sink, not committed; its offsets entry damaged and moved aside by repair;
    // then the rewind to the newest committed batch.
    write_clicks(&ws.path("in"), "json", 1, 20, 4);
    assert!(crashed(&run_quietly(
        &pipeline,
        &Crash::Before.env(1, "commits/4")
    )));
    std::fs::write(ws.path("ckpt/offsets/4"), "{").expect("damage");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!ws.path("ckpt/offsets/4").exists(), "moved aside");
    assert!(
        std::fs::read_dir(ws.path("ckpt/offsets"))
            .expect("offsets")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".4.damaged-")),
        "kept hidden"
    );
    let out = run_bin(&["rewind", &ckpt, "--to", "3"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("took back batch 4"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run_bin(&["run", p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    check_sink();
}

/// Audit 88c: with an operator's state folder gone (a copy that left `state/` behind),
/// `inspect` and `repair` called the checkpoint healthy and `state` said the query keeps none,
/// while the run failed; and a first batch still pending was said to keep none too. Each now
/// says what is there and what is not.
#[test]
fn a_state_folder_gone_and_a_first_batch_pending_are_said_by_every_command() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "")
        .replace("trigger:", "output_mode: update\ntrigger:");
    let pipeline = write_pipeline(&ws, &yaml);
    let ckpt = ws.p("ckpt");

    // A first batch pending: no state to show yet.
    let out = run_quietly(&pipeline, &Crash::Before.env(1, "commits/0"));
    assert!(crashed(&out), "{}", stderr(&out));
    let out = run_bin(&["state", &ckpt], ws.dir.path());
    assert!(
        stderr(&out).contains("has no committed batch yet (batch 0 is pending)"),
        "{}",
        stderr(&out)
    );
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The newest commit damaged: the state is still named by the query the batch ran
    // (from its offsets entry), and no advice shows a placeholder for the checkpoint.
    let commit = std::fs::read(ws.path("ckpt/commits/1")).expect("commit");
    std::fs::write(ws.path("ckpt/commits/1"), "garbage").expect("damage");
    let out = run_bin(
        &["state", &ckpt, "--sql", "SELECT page, n FROM state"],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("CHECKPOINT"), "{}", stderr(&out));
    std::fs::write(ws.path("ckpt/commits/1"), commit).expect("mend");

    std::fs::remove_dir_all(ws.path("ckpt/state")).expect("rm state");
    // What a run loads first, version 0, is what is missing; no rewind gets past it.
    let out = run_bin(&["inspect", &ckpt], ws.dir.path());
    assert!(
        stdout(&out).contains("lacks version 0") && stdout(&out).contains("new checkpoint"),
        "inspect: {}",
        stdout(&out)
    );
    let out = run_bin(&["repair", &ckpt, "--dry-run"], ws.dir.path());
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !said.contains("nothing to repair") && said.contains("lacks version 0"),
        "repair: {said}"
    );
    let out = run_bin(&["state", &ckpt], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("state of operator `aggregate` lacks version 0"),
        "{}",
        stderr(&out)
    );
    let out = run_bin(&["rewind", &ckpt, "--to", "0"], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("lacks version 0"), "{}", stderr(&out));
    let out = run_quietly(&pipeline, &[]);
    assert!(
        !out.status.success(),
        "the run cannot go on without its state"
    );
}

/// Audit 88c: a recovered batch's progress `timestamp` was the interrupted run's planning
/// time, seconds before it ran. It is when this trigger started, as Spark's.
#[test]
fn a_recovered_batch_is_dated_when_it_runs() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let pipeline = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, ""),
    );
    let out = run_quietly(&pipeline, &Crash::Before.env(1, "commits/0"));
    assert!(crashed(&out), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let before = chrono::Utc::now();
    let out = run_json(&pipeline, ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_events(&out);
    assert_eq!(events[0]["recovered"], true, "{events:?}");
    let at = chrono::DateTime::parse_from_rfc3339(events[0]["timestamp"].as_str().expect("a time"))
        .expect("rfc 3339");
    assert!(
        at >= before - chrono::Duration::milliseconds(50),
        "dated {at}, the run started at {before}"
    );
}

/// Walk 89 (U1): an older commit moved aside by one repair, then the newest damaged: the next
/// repair moved it aside too and said the batch runs again, but no run could carry on (two
/// batches past the newest commit), and the run sent the user back to repair. Repair leaves
/// it, names the rewind, and that rewind works: each row once in the sink.
#[test]
fn a_damaged_newest_commit_after_a_gap_is_named_with_the_rewind_that_works() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 5, 0);
    let pipeline = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, ""),
    );
    let ckpt = ws.p("ckpt");
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(ws.path("ckpt/commits/1"), "").expect("truncate");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(ws.path("ckpt/commits/2"), "garbage").expect("damage");
    let out = run_bin(&["repair", &ckpt], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("batch 1 before it is not committed")
            && stderr(&out).contains(&format!("`sluice rewind {ckpt} --to 0`")),
        "{}",
        stderr(&out)
    );
    assert!(ws.path("ckpt/commits/2").exists(), "left as it is");
    let out = run_bin(&["rewind", &ckpt, "--to", "0"], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("CHECKPOINT"), "{}", stderr(&out));
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let expected = rt.block_on(oracle(&ws.path("in"), "json", "SELECT * FROM clicks"));
    let got = rt.block_on(sink_rows(&ws.path("out")));
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
}

/// Walk 89 (U8): `rewind --to=-1`, for a full refresh, was refused as "invalid digit found in
/// string". It says what a rewind keeps and how to compute every batch again.
#[test]
fn a_rewind_to_before_the_first_batch_says_how_to_start_over() {
    let ws = Workspace::new();
    for to in ["--to=-1", "--to=x"] {
        let out = run_bin(&["rewind", &ws.p("ckpt"), to], ws.dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let said = stderr(&out);
        if to == "--to=-1" {
            assert!(
                said.contains("is no batch") && said.contains("start over"),
                "{said}"
            );
        } else {
            assert!(said.contains("is not a batch number"), "{said}");
        }
    }
}

/// The review of audit 88c: with no state folder and the newest commit damaged, `state` said
/// the batch was pending ("no committed batch yet"). It says the commit does not read, with
/// the checkpoint named in the advice.
#[test]
fn state_over_a_damaged_newest_commit_says_so() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 5, 0);
    let pipeline = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, ""),
    );
    let out = run_quietly(&pipeline, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(ws.path("ckpt/commits/1"), "garbage").expect("damage");
    let ckpt = ws.p("ckpt");
    let out = run_bin(&["state", &ckpt], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("its newest commit, batch 1, does not read")
            && !said.contains("pending")
            && !said.contains("CHECKPOINT"),
        "{said}"
    );
}

/// Audit 92b: a JSON sink wrote a float's NaN and infinities as `null` (they read back as
/// nulls, unsaid) at any depth. Written as Jackson writes them (`"NaN"`, `"Infinity"`), they
/// read back as the same floats into a pipeline reading the sink, and `replay --verify` holds
/// the files against the batch.
#[tokio::test]
async fn a_json_sink_keeps_nan_and_infinities() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(
        ws.path("in/0.json"),
        "{\"id\":1,\"d\":\"NaN\",\"s\":{\"f\":\"-Infinity\"}}\n\
         {\"id\":2,\"d\":\"Infinity\",\"s\":{\"f\":1.5}}\n\
         {\"id\":3,\"d\":-0.0}\n",
    )
    .expect("input");
    let schema = "{ id: bigint, d: double, s: 'struct<f double>' }";
    let yaml = |name: &str, input: &str, sink: &str| {
        format!(
            "name: {name}\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
             format: json, schema: {schema} }}\nquery: SELECT id, d, s FROM s\ntrigger: \
             available-now\nsink: {sink}\n",
            ckpt = ws.p(&format!("ckpt-{name}")),
            input = ws.p(input),
        )
    };
    std::fs::write(
        ws.path("a.yaml"),
        yaml(
            "a",
            "in",
            &format!("{{ kind: files, path: {}, format: json }}", ws.p("out")),
        ),
    )
    .expect("pipeline");
    let out = run_bin(&["run", &ws.p("a.yaml")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let written =
        std::fs::read_to_string(ws.path("out/part-0000000000-0000.jsonl")).expect("sink file");
    assert!(
        written.contains("{\"id\":1,\"d\":\"NaN\",\"s\":{\"f\":\"-Infinity\"}}")
            && written.contains("{\"id\":2,\"d\":\"Infinity\",\"s\":{\"f\":1.5}}"),
        "{written}"
    );
    let out = run_bin(
        &["replay", &ws.p("ckpt-a"), "--batch", "0", "--verify"],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    std::fs::write(
        ws.path("b.yaml"),
        yaml(
            "b",
            "out",
            &format!(
                "{{ kind: files, path: {}, format: parquet }}",
                ws.p("out-b")
            ),
        ),
    )
    .expect("pipeline");
    let out = run_bin(&["run", &ws.p("b.yaml")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = parquet_rows(
        &datafusion::prelude::SessionContext::new(),
        &ws.p("out-b"),
        "SELECT id, isnan(d), d = 'Infinity'::double, s['f'] = '-Infinity'::double FROM sink",
    )
    .await;
    assert_eq!(
        rows,
        ["1|true|false|true", "2|false|true|false", "3|false|false|"]
    );
}

/// Audit 94a: an `epochs/` folder deleted by hand started epochs again at 0, below the runs
/// that logged batches, so a run paused at a higher epoch would not have been fenced by the
/// next one. The next epoch is past the newest the logs record.
#[test]
fn a_deleted_epochs_folder_does_not_start_epochs_again_below_the_logs() {
    let ws = Workspace::new();
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let epoch_of = |batch: usize| {
        let text = std::fs::read_to_string(ws.path(&format!("ckpt/offsets/{batch}")))
            .expect("offsets entry");
        let info: serde_json::Value =
            serde_json::from_str(text.lines().nth(1).expect("line 2")).expect("JSON");
        info["epoch"].as_u64().expect("epoch")
    };
    run_file_by_file(&ws, &pipeline, 3);
    let before = epoch_of(2);
    assert!(before >= 2, "{before}");
    std::fs::remove_dir_all(ws.path("ckpt/epochs")).expect("delete epochs/");
    write_clicks(&ws.path("in"), "json", 1, 5, 3);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(epoch_of(3) > before, "{} after {before}", epoch_of(3));
}

/// Audit 94a (1, 3): a pending `offsets/N` that was not planned after batch `N - 1` (an older
/// entry copied over it; one with a source's line removed) was run: its input read again,
/// doubling rows, or the source's bookkeeping started over, exit 0. Refused as inconsistent,
/// and `sluice repair` moves it aside, after which the batch is planned anew: every row once.
#[tokio::test]
async fn a_pending_entry_not_planned_after_the_batch_before_is_refused_and_repaired() {
    let ws = Workspace::new();
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    let ckpt = ws.p("ckpt");
    run_file_by_file(&ws, &pipeline, 3);
    for (damage, said) in [
        (
            "copied",
            "was planned at epoch 0, before batch 2 was committed at epoch 2",
        ),
        (
            "edited",
            "has no offset for source `clicks`, which the pipeline file",
        ),
    ] {
        write_clicks(
            &ws.path("in"),
            "json",
            1,
            5,
            if damage == "copied" { 3 } else { 4 },
        );
        let pending = ws.path(&format!(
            "ckpt/offsets/{}",
            if damage == "copied" { 3 } else { 4 }
        ));
        if damage == "copied" {
            std::fs::copy(ws.path("ckpt/offsets/0"), &pending).expect("copy");
        } else {
            let crash = run_quietly(&pipeline, &Crash::Before.env(1, "commits/4"));
            assert!(crashed(&crash), "{}", stderr(&crash));
            let text = std::fs::read_to_string(&pending).expect("pending");
            let kept: Vec<&str> = text.lines().filter(|l| !l.contains("clicks")).collect();
            assert!(kept.len() < text.lines().count(), "{text}");
            std::fs::write(&pending, kept.join("\n") + "\n").expect("edit");
        }
        let refused = run_quietly(&pipeline, &[]);
        let err = stderr(&refused);
        assert!(
            !refused.status.success() && err.contains("is inconsistent") && err.contains(said),
            "{damage}: {err}"
        );
        let repair = run_bin(&["repair", &ckpt], ws.path("").as_path());
        assert!(repair.status.success(), "{}", stderr(&repair));
        assert!(stdout(&repair).contains("aside"), "{}", stdout(&repair));
        let run = run_quietly(&pipeline, &[]);
        assert!(run.status.success(), "{damage}: {}", stderr(&run));
    }
    assert_every_row_once(&ws.path("out"), 25).await;
}

/// Audit 94a (2): a state file copied over another version's (a valid Parquet file of the
/// operator's columns) loaded as that version: totals wrong, exit 0. Each file records its own
/// name, and one read under another is refused as corrupt, naming it.
#[test]
fn a_state_file_copied_over_another_versions_is_refused() {
    let ws = Workspace::new();
    let pipeline = write_pipeline(
        &ws,
        &pipeline_yaml(
            &ws,
            "json",
            "SELECT page, count(*) AS n FROM clicks GROUP BY page",
            1,
            "",
        )
        .replace("sink: {", "output_mode: update\nsink: {"),
    );
    run_file_by_file(&ws, &pipeline, 3);
    let state = ws.path("ckpt/state/aggregate");
    assert!(state.join("2.delta.parquet").exists());
    std::fs::copy(state.join("1.delta.parquet"), state.join("2.delta.parquet")).expect("copy");
    write_clicks(&ws.path("in"), "json", 1, 5, 3);
    let refused = run_quietly(&pipeline, &[]);
    let err = stderr(&refused);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains(
            "state file state/aggregate/2.delta.parquet is corrupt: it was written as \
                      1.delta.parquet"
        ),
        "{err}"
    );
}

/// Audit 94a (7): an entry of a later format (`v99`) was called corrupt, and `sluice repair`
/// moved it aside. It is said as a newer Sluice's (Spark's `UnsupportedLogVersion`), and
/// repair leaves it where it is.
#[test]
fn an_entry_of_a_later_format_is_said_as_a_newer_sluices_and_kept() {
    let ws = Workspace::new();
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    write_clicks(&ws.path("in"), "json", 1, 5, 0);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let entry = ws.path("ckpt/commits/0");
    let text = std::fs::read_to_string(&entry).expect("commit");
    let later = text.replacen("v1\n", "v99\n", 1);
    assert_ne!(later, text);
    std::fs::write(&entry, &later).expect("write");
    let refused = run_quietly(&pipeline, &[]);
    let err = stderr(&refused);
    assert!(
        !refused.status.success()
            && err.contains("commits/0 is of format v99, later than this Sluice")
            && !err.contains("corrupt"),
        "{err}"
    );
    let repair = run_bin(&["repair", &ws.p("ckpt")], ws.path("").as_path());
    assert!(
        !stdout(&repair).contains("aside") && !stderr(&repair).contains("aside"),
        "{}{}",
        stdout(&repair),
        stderr(&repair)
    );
    assert_eq!(std::fs::read_to_string(&entry).expect("commit"), later);
}

/// Audit 94a (6): a batch's entries deleted from the middle of the logs (Spark's "not
/// contiguous") went unsaid: `inspect` counted the batches retained, and `replay` blamed the
/// retention and named a range of batches across the gap. Both say the gap.
#[test]
fn a_batch_deleted_from_the_middle_of_the_logs_is_said() {
    let ws = Workspace::new();
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    run_file_by_file(&ws, &pipeline, 4);
    std::fs::remove_file(ws.path("ckpt/offsets/1")).expect("offsets/1");
    std::fs::remove_file(ws.path("ckpt/commits/1")).expect("commits/1");
    let ckpt = ws.p("ckpt");
    let shown = run_bin(&["inspect", &ckpt], ws.path("").as_path());
    assert!(
        stdout(&shown).contains("; batch 1 MISSING between them"),
        "{}",
        stdout(&shown)
    );
    let replay = run_bin(&["replay", &ckpt, "--batch", "2"], ws.path("").as_path());
    let said = stderr(&replay);
    assert!(
        !replay.status.success()
            && said
                .contains("offsets/1 and commits/1 are both missing though older entries are kept")
            && said.contains("batches that can be replayed: 0, 3")
            && !said.contains("purged"),
        "{said}"
    );
    let replay = run_bin(
        &["replay", &ckpt, "--batch", "3", "--verify"],
        ws.path("").as_path(),
    );
    assert!(replay.status.success(), "{}", stderr(&replay));
}

/// Audit 94a (4): the newest commit copied from another checkpoint of the pipeline was blamed
/// on `metadata`, and `sluice repair`, rebuilding that, came to a dead end. The commit is
/// named, and repair moves it aside: the batch runs again, the sink takes nothing twice.
#[tokio::test]
async fn a_commit_copied_from_another_checkpoint_is_named_and_repaired() {
    let (ours, theirs) = (Workspace::new(), Workspace::new());
    for ws in [&ours, &theirs] {
        let pipeline = pipeline_in(ws, "SELECT id, page FROM clicks", "");
        run_file_by_file(ws, &pipeline, 2);
    }
    std::fs::copy(theirs.path("ckpt/commits/1"), ours.path("ckpt/commits/1")).expect("copy");
    let pipeline = ours.path("pipeline.yaml");
    write_clicks(&ours.path("in"), "json", 1, 5, 2);
    let refused = run_quietly(&pipeline, &[]);
    let err = stderr(&refused);
    assert!(
        !refused.status.success()
            && err.contains("commits/1 was written by pipeline id")
            && err.contains("where metadata and commits/0 name")
            && !err.contains("its metadata is wrong"),
        "{err}"
    );
    let repair = run_bin(&["repair", &ours.p("ckpt")], ours.path("").as_path());
    assert!(
        repair.status.success() && stdout(&repair).contains("moved commits/1"),
        "{}{}",
        stdout(&repair),
        stderr(&repair)
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_every_row_once(&ours.path("out"), 15).await;
}

/// Audit 94a (5): a files source's log entry copied over the next one was said as deleted,
/// with only a backup or starting over as ways out, where the rewind to the batch before it
/// gets past it. Said as a copy, naming that rewind, which reads its files once.
#[tokio::test]
async fn a_source_log_entry_copied_over_the_next_names_the_rewind_that_works() {
    let ws = Workspace::new();
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    run_file_by_file(&ws, &pipeline, 4);
    let log = ws.path("ckpt/sources/clicks");
    std::fs::copy(log.join("2"), log.join("3")).expect("copy");
    write_clicks(&ws.path("in"), "json", 1, 5, 4);
    let refused = run_quietly(&pipeline, &[]);
    let err = stderr(&refused);
    let rewind = format!("sluice rewind {} --to 2", ws.p("ckpt"));
    assert!(
        !refused.status.success()
            && err.contains("/3 lists only files entry 2 lists")
            && err.contains(&rewind),
        "{err}"
    );
    let rewound = run_bin(
        &["rewind", &ws.p("ckpt"), "--to", "2"],
        ws.path("").as_path(),
    );
    assert!(rewound.status.success(), "{}", stderr(&rewound));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_every_row_once(&ws.path("out"), 25).await;
}

/// Audit 94a (10): a copy of a batch's part file put in the sink folder by hand, which any
/// reader of the folder's files reads twice, was not said by `replay --verify` ("verified").
#[test]
fn replay_verify_names_a_part_file_the_manifest_does_not_list() {
    let ws = Workspace::new();
    let pipeline = pipeline_in(&ws, "SELECT id, page FROM clicks", "");
    run_file_by_file(&ws, &pipeline, 2);
    let part = std::fs::read_dir(ws.path("out"))
        .expect("out")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("part-0000000001-"))
        .expect("batch 1's part");
    let copy = part.replace("part-0000000001-0000", "part-0000000001-0007");
    assert_ne!(copy, part);
    let ckpt = ws.p("ckpt");
    let verify = |ws: &Workspace| {
        let out = run_bin(
            &["replay", &ckpt, "--batch", "1", "--verify"],
            ws.path("").as_path(),
        );
        (
            out.status.success(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };
    assert!(verify(&ws).0, "{}", verify(&ws).1);
    std::fs::copy(ws.path("out").join(&part), ws.path("out").join(&copy)).expect("copy");
    let (verified, said) = verify(&ws);
    assert!(
        !verified && said.contains(&format!("{copy}: is named as a file of batch 1")),
        "{said}"
    );
}

/// The review: a pending batch of a pipeline whose `sources:` come by a YAML merge key
/// (`sources: {<<: *shared}`) was refused as an entry with no offset for source `<<`. It
/// finishes, as any pending batch does.
#[test]
fn a_pending_batch_of_sources_given_by_a_merge_key_finishes() {
    let ws = Workspace::new();
    let yaml = format!(
        "name: merged\ncheckpoint: {ckpt}\nx-shared: &shared\n  clicks:\n    kind: files\n    \
         path: {input}\n    format: json\n    schema: {CLICK_SCHEMA_YAML}\nsources:\n  <<: \
         *shared\nquery: SELECT id, page FROM clicks\ntrigger: available-now\nsink: {{ kind: \
         files, path: {out}, format: parquet }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        out = ws.p("out"),
    );
    let pipeline = write_pipeline(&ws, &yaml);
    write_clicks(&ws.path("in"), "json", 1, 5, 0);
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    write_clicks(&ws.path("in"), "json", 1, 5, 1);
    let crash = run_quietly(&pipeline, &Crash::Before.env(1, "commits/1"));
    assert!(crashed(&crash), "{}", stderr(&crash));
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(ws.path("ckpt/commits/1").exists());
}

/// Runs `pipeline` once for each of `files` click files (5 rows each) written into `ws/in` one
/// at a time: one batch each.
fn run_file_by_file(ws: &Workspace, pipeline: &std::path::Path, files: usize) {
    for file in 0..files {
        write_clicks(&ws.path("in"), "json", 1, 5, file);
        let run = run_quietly(pipeline, &[]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
}

/// Asserts that the sink folder `out` holds `expected` rows, none of them twice (the click
/// rows of [`run_file_by_file`] are all different).
async fn assert_every_row_once(out: &std::path::Path, expected: usize) {
    let rows = sink_rows(out).await;
    let mut distinct = rows.clone();
    distinct.dedup();
    assert_eq!(
        (rows.len(), distinct.len()),
        (expected, expected),
        "{rows:?}"
    );
}
