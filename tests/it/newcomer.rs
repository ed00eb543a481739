//! What a new user hits (the traps of a first week with Sluice): each test is the user's
//! pipeline and input, run through the binary.

use crate::common::*;

/// A pipeline over JSON lines in `{ws}/in` (`k`, `v`), `query` in `mode`, a JSON lines sink in
/// `{ws}/out`, checkpoint `{ws}/ckpt`.
fn pipeline(ws: &Workspace, query: &str, mode: &str) -> std::path::PathBuf {
    let yaml = format!(
        "name: newcomer\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
         format: json, schema: {{ k: string, v: bigint }} }}\nquery: {query}\n\
         output_mode: {mode}\ntrigger: available-now\n\
         sink: {{ kind: files, path: {out}, format: json }}\n",
        ckpt = ws.p("ckpt"),
        input = ws.p("in"),
        out = ws.p("out"),
    );
    write_pipeline(ws, &yaml)
}

fn run(pipeline: &std::path::Path, ws: &Workspace) -> std::process::Output {
    run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path())
}

fn input(ws: &Workspace, name: &str, text: &str) {
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path(&format!("in/{name}")), text).expect("input");
}

/// Issue 13, item 14: a run refused at planning (exit 2) leaves no checkpoint or sink folder.
#[test]
fn a_run_refused_at_planning_leaves_no_folder_behind() {
    let ws = Workspace::new();
    input(&ws, "0.json", "{\"k\":\"a\",\"v\":1}\n");
    for query in [
        "SELECT kk, sum(v) AS t FROM s GROUP BY kk",
        "SELECT k, count(*) AS n FROM s GROUP BY k",
    ] {
        let mode = if query.contains("kk") {
            "update"
        } else {
            "append"
        };
        let out = run(&pipeline(&ws, query, mode), &ws);
        assert_eq!(out.status.code(), Some(2), "{query}: {}", stderr(&out));
        for folder in ["ckpt", "out"] {
            assert!(
                !ws.path(folder).exists(),
                "{query}: `{folder}` left behind by a refused run"
            );
        }
    }
}

/// Issue 13, item 5: a stateful query changed in a way its state cannot follow (`sum` to
/// `max`) is refused before the next batch is logged, so putting the old query back works.
#[test]
fn a_query_its_state_cannot_follow_is_refused_before_a_batch_is_logged() {
    let ws = Workspace::new();
    input(&ws, "0.json", "{\"k\":\"a\",\"v\":1}\n");
    let file = pipeline(&ws, "SELECT k, sum(v) AS t FROM s GROUP BY k", "update");
    let out = run(&file, &ws);
    assert!(out.status.success(), "{}", stderr(&out));
    input(&ws, "1.json", "{\"k\":\"a\",\"v\":5}\n");
    let edited = pipeline(&ws, "SELECT k, max(v) AS t FROM s GROUP BY k", "update");
    let out = run(&edited, &ws);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot follow") && stderr(&out).contains("Put the old query back"),
        "{}",
        stderr(&out)
    );
    assert!(
        !ws.path("ckpt/offsets/1").exists(),
        "the refused run logged a batch"
    );
    // The old query back: it runs on, and both files are counted.
    let file = pipeline(&ws, "SELECT k, sum(v) AS t FROM s GROUP BY k", "update");
    let out = run(&file, &ws);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = std::fs::read_to_string(ws.path("out/part-0000000001-0000.jsonl")).expect("batch 1");
    assert_eq!(last.trim(), r#"{"k":"a","t":6}"#);
}
