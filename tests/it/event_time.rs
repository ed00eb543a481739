//! Event time as Spark defines it: which rows are late, and when a group closes. Each case is
//! run through the binary, one input file a batch, and held to the rows Spark 4.2 Structured
//! Streaming wrote for the same files (`withWatermark`, `window`, `dropDuplicates`, a
//! stream-stream join; run with `processAllAvailable` after each file), in the order Spark
//! wrote them. Spark's extra no-data batches write nothing here, so only batches that write
//! rows are compared.

use crate::common::*;

/// Writes `files` (name, text) into the workspace and a pipeline over them: `sources` (the
/// lines under `sources:`), `query`, `mode`, a JSON lines sink in `{ws}/out` and a late-rows
/// sink in `{ws}/late`; runs it to the end of its input.
fn run_case(files: &[(&str, &str)], sources: &str, query: &str, mode: &str) -> Workspace {
    run_pipeline_case(files, sources, query, mode, true)
}

/// [`run_case`] for a query that drops no row as late, which a late-rows sink is refused for.
fn run_case_keeping_every_row(
    files: &[(&str, &str)],
    sources: &str,
    query: &str,
    mode: &str,
) -> Workspace {
    run_pipeline_case(files, sources, query, mode, false)
}

fn run_pipeline_case(
    files: &[(&str, &str)],
    sources: &str,
    query: &str,
    mode: &str,
    late_rows: bool,
) -> Workspace {
    let ws = Workspace::new();
    for (name, text) in files {
        let path = ws.path(name);
        std::fs::create_dir_all(path.parent().expect("folder")).expect("folder");
        std::fs::write(path, text).expect("input file");
    }
    let yaml = format!(
        "name: event-time\ncheckpoint: {{ws}}/ckpt\nsources:\n{sources}\nquery: {query}\n\
         output_mode: {mode}\ntrigger: available-now\n\
         sink: {{ kind: files, path: {{ws}}/out, format: json }}\n{late}",
        late = if late_rows {
            "late_rows: { kind: files, path: {ws}/late, format: json }\n"
        } else {
            ""
        }
    )
    .replace("{ws}", &ws.dir.path().display().to_string());
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    ws
}

/// One JSON source `name` over `{ws}/<name>` (`id`, `ts`), one file a batch, with a
/// watermark of `delay` on `ts`.
fn source(name: &str, delay: &str) -> String {
    format!(
        "  {name}: {{ kind: files, path: {{ws}}/{name}, format: json, max_files_per_batch: 1, \
         schema: {{ id: bigint, ts: timestamp }}, watermark: {{ column: ts, delay: {delay} }} }}"
    )
}

/// `{"id":<id>,"ts":<seconds after the epoch>}`, or a null time.
fn row(id: i64, seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{{\"id\":{id},\"ts\":\"1970-01-01T00:00:{:06.3}Z\"}}\n", s),
        None => format!("{{\"id\":{id},\"ts\":null}}\n"),
    }
}

/// The rows each batch wrote to `folder` (`columns` of each, joined by `|`, sorted within the
/// batch, whichever of its files has them), batches that wrote none left out, in batch order.
fn written(ws: &Workspace, folder: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let mut files: Vec<std::path::PathBuf> = walk(&ws.path(folder))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == "_sluice"))
        .collect();
    files.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    // A batch's files (`part-<batch>-<partition>.jsonl`) read as one.
    let mut batches: Vec<(String, Vec<&std::path::PathBuf>)> = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let batch = match name.split('-').nth(1) {
            Some(batch) => format!(
                "{}/{batch}",
                file.parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            None => name.clone(),
        };
        match batches.last_mut() {
            Some((last, group)) if *last == batch => group.push(file),
            _ => batches.push((batch, vec![file])),
        }
    }
    batches
        .iter()
        .map(|(_, group)| {
            let text: String = group
                .iter()
                .map(|file| std::fs::read_to_string(file).expect("sink file"))
                .collect();
            let mut rows: Vec<String> = text
                .lines()
                .map(|line| {
                    let value: serde_json::Value = serde_json::from_str(line).expect("JSON row");
                    columns
                        .iter()
                        .map(|c| match &value[c] {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            rows.sort();
            rows
        })
        .filter(|rows| !rows.is_empty())
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

const WINDOW_5S: &str = "SELECT CAST(date_bin(INTERVAL '5 seconds', ts) AS VARCHAR) AS w, \
                         count(*) AS n FROM s GROUP BY date_bin(INTERVAL '5 seconds', ts)";

/// A row whose event time equals the watermark is late for a deduplication (Spark drops
/// `(0, 1 s)` once the watermark is 1 s); 1 ms above it is not.
#[test]
fn a_row_at_the_watermark_is_late_and_one_above_is_not() {
    for (second, emitted) in [(1.0, false), (1.001, true)] {
        let ws = run_case(
            &[
                ("s/0.json", &row(1, Some(2.0))),
                ("s/1.json", &row(0, Some(second))),
            ],
            &source("s", "1s"),
            "SELECT DISTINCT id, ts FROM s",
            "append",
        );
        let ids = written(&ws, "out", &["id"]);
        let late = written(&ws, "late", &["id"]);
        if emitted {
            assert_eq!(ids, [vec!["1"], vec!["0"]], "{second}");
            assert!(late.is_empty(), "{second}: {late:?}");
        } else {
            assert_eq!(ids, [vec!["1"]], "{second}");
            assert_eq!(late, [vec!["0"]], "{second}: the tie is a late row");
        }
    }
}

/// A row older than the watermark still counts in a window of it that is open: 5 s windows,
/// delay 3 s, rows at 15 s, 11 s, 20 s. Spark's append mode writes `[10 s, 15 s)` with 1
/// (the watermark is 12 s when the 11 s row comes, and its window ends at 15 s), and update
/// mode writes each window as it changes.
#[test]
fn lateness_is_decided_per_window_not_per_row() {
    let files = [
        ("s/0.json", row(1, Some(15.0))),
        ("s/1.json", row(2, Some(11.0))),
        ("s/2.json", row(3, Some(20.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case(&files, &source("s", "3s"), WINDOW_5S, "append");
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec!["1970-01-01T00:00:10|1"]]
    );
    assert!(written(&ws, "late", &["id"]).is_empty());
    let ws = run_case(&files, &source("s", "3s"), WINDOW_5S, "update");
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [
            vec!["1970-01-01T00:00:15|1"],
            vec!["1970-01-01T00:00:10|1"],
            vec!["1970-01-01T00:00:20|1"],
        ]
    );
}

/// Hopping windows 10 s wide every 5 s, delay 3 s, rows at 25 s, 16 s, 40 s: the 16 s row
/// misses the closed `[10 s, 20 s)` and counts in the open `[15 s, 25 s)`. Spark's append
/// mode writes `[15,25)`, `[20,30)` and `[25,35)`, 1 each.
#[test]
fn a_hopping_row_counts_in_its_open_windows_only() {
    let files = [
        ("s/0.json", row(1, Some(25.0))),
        ("s/1.json", row(2, Some(16.0))),
        ("s/2.json", row(3, Some(40.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case(
        &files,
        &source("s", "3s"),
        "SELECT CAST(w AS VARCHAR) AS w, count(*) AS n FROM \
         (SELECT unnest(hop(ts, INTERVAL '5 seconds', INTERVAL '10 seconds')) AS w FROM s) \
         GROUP BY w",
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec![
            "1970-01-01T00:00:15|1",
            "1970-01-01T00:00:20|1",
            "1970-01-01T00:00:25|1"
        ]]
    );
    assert!(
        written(&ws, "late", &["id"]).is_empty(),
        "the 16 s row is in an open window"
    );
}

/// Complete mode keeps every group and counts every row: 5 s windows, delay 10 s, rows at
/// 25 s then 10 s. Spark's table: `[10 s, 15 s)` and `[25 s, 30 s)`, 1 each.
#[test]
fn complete_mode_counts_rows_older_than_the_watermark() {
    let ws = run_case(
        &[
            ("s/0.json", &row(1, Some(25.0))),
            ("s/1.json", &row(2, Some(10.0))),
        ],
        &source("s", "10s"),
        WINDOW_5S,
        "complete",
    );
    let table = std::fs::read_to_string(ws.path("out/result.jsonl")).expect("the table");
    let mut rows: Vec<&str> = table.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            r#"{"w":"1970-01-01T00:00:10","n":1}"#,
            r#"{"w":"1970-01-01T00:00:25","n":1}"#
        ]
    );
}

/// A row without an event time is in no window: late, never a group of its own. Spark's
/// append mode writes `[0 s, 5 s)` with 1 for rows `(1, 2 s)`, `(2, null)`, then `(3, 20 s)`.
#[test]
fn a_row_without_event_time_is_late_and_never_state() {
    let text = format!("{}{}", row(1, Some(2.0)), row(2, None));
    let files = [
        ("s/0.json", text.as_str()),
        ("s/1.json", &row(3, Some(20.0))),
    ];
    let ws = run_case(&files, &source("s", "1s"), WINDOW_5S, "append");
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec!["1970-01-01T00:00:00|1"]]
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["2"]]);
    // Only `[20 s, 25 s)` is left open: no group without a window stays in the state.
    let state = run_bin(
        &[
            "state",
            ws.p("ckpt").as_str(),
            "--sql",
            "SELECT count(*) AS groups_left FROM state",
        ],
        ws.dir.path(),
    );
    assert!(state.status.success(), "{}", stderr(&state));
    let table = String::from_utf8_lossy(&state.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.split('|').any(|cell| cell.trim() == "1")),
        "{table}"
    );
    // Complete mode too: Spark's `window()` puts such a row in no window.
    let ws = run_case(&files, &source("s", "1s"), WINDOW_5S, "complete");
    let table = std::fs::read_to_string(ws.path("out/result.jsonl")).expect("the table");
    assert!(
        !table.contains("null") && table.lines().count() == 2,
        "{table}"
    );
}

/// A watermark on a column that is not among the aggregation's keys drops nothing: Spark's
/// update mode writes `(a, 1)`, then `(a, 2)` for a row 9 s older than the watermark.
#[test]
fn an_aggregation_not_keyed_by_event_time_counts_every_row() {
    let files = [
        ("s/0.json", "{\"id\":1,\"ts\":\"1970-01-01T00:00:10Z\"}\n"),
        ("s/1.json", "{\"id\":1,\"ts\":\"1970-01-01T00:00:01Z\"}\n"),
    ];
    let ws = run_case_keeping_every_row(
        &files,
        &source("s", "1s"),
        "SELECT id, count(*) AS n FROM s GROUP BY id",
        "update",
    );
    assert_eq!(
        written(&ws, "out", &["id", "n"]),
        [vec!["1|1"], vec!["1|2"]]
    );
}

/// A deduplication feeding an aggregation (Spark's `dropDuplicates("id", "ts")` then
/// `groupBy("id").count()`), update mode, delay 1 s, one file a batch. Spark counts each
/// distinct `(id, ts)` once, whichever batch has it, and drops at the deduplication a row at
/// or below the watermark:
/// - batch 0: `(1, 5 s)` twice, `(1, 6 s)`, `(2, 5 s)`: counts 1 -> 2, 2 -> 1;
/// - batch 1 (watermark 5 s): `(1, 6 s)` again (kept from batch 0, not new), `(1, 5 s)` (late),
///   `(1, 7 s)`, `(3, 8 s)`: 1 -> 3, 3 -> 1;
/// - batch 2 (watermark 7 s): `(1, 7 s)` and `(2, 5 s)` late, `(1, 9 s)`: 1 -> 4.
///
/// The deduplication then forgets what the final watermark (8 s) closed: `(1, 9 s)` stays.
#[test]
fn a_deduplication_feeds_an_aggregation_each_row_once() {
    let files = [
        (
            "s/0.json",
            [(1, 5.0), (1, 5.0), (1, 6.0), (2, 5.0)]
                .map(|(id, t)| row(id, Some(t)))
                .concat(),
        ),
        (
            "s/1.json",
            [(1, 6.0), (1, 5.0), (1, 7.0), (3, 8.0)]
                .map(|(id, t)| row(id, Some(t)))
                .concat(),
        ),
        (
            "s/2.json",
            [(1, 7.0), (1, 9.0), (2, 5.0)]
                .map(|(id, t)| row(id, Some(t)))
                .concat(),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case(
        &files,
        &source("s", "1s"),
        "SELECT id, count(*) AS n FROM (SELECT DISTINCT id, ts FROM s) GROUP BY id",
        "update",
    );
    assert_eq!(
        written(&ws, "out", &["id", "n"]),
        [vec!["1|2", "2|1"], vec!["1|3", "3|1"], vec!["1|4"]]
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["1"], vec!["1", "2"]]);
    let ckpt = ws.path("ckpt");
    let state = |operator: &str| {
        let out = run_bin(
            &[
                "state",
                ckpt.to_str().expect("utf-8"),
                "--operator",
                operator,
                "--sql",
                "SELECT count(*) AS n FROM state",
            ],
            ws.dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        // The one value row of the table: `| <n> |`.
        let cells: Vec<String> = table
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').trim().to_string())
            .collect();
        assert_eq!(cells.len(), 2, "{table}");
        cells[1].clone()
    };
    assert_eq!(state("dedup"), "1", "the deduplication keeps only (1, 9 s)");
    assert_eq!(state("aggregate"), "3", "ids 1, 2 and 3");
}

/// A join of two streams: a right row at the watermark is late (Spark drops `R(1, 10 s)` once
/// the watermark is 10 s); at 10.001 s it joins `L(1, 10 s)`.
#[test]
fn a_join_drops_a_row_at_the_watermark() {
    for (second, joined) in [(10.0, false), (10.001, true)] {
        let ws = run_case(
            &[
                ("l/0.json", &row(1, Some(10.0))),
                ("r/0.json", &row(9, Some(20.0))),
                ("r/1.json", &row(1, Some(second))),
            ],
            &format!("{}\n{}", source("l", "0s"), source("r", "0s")),
            "SELECT l.id AS id, CAST(r.ts AS VARCHAR) AS rts FROM l JOIN r ON l.id = r.id \
             AND r.ts >= l.ts AND r.ts <= l.ts + INTERVAL '5 seconds'",
            "append",
        );
        let out = written(&ws, "out", &["id", "rts"]);
        if joined {
            assert_eq!(out, [vec!["1|1970-01-01T00:00:10.001"]], "{second}");
        } else {
            assert!(out.is_empty(), "{second}: {out:?}");
            assert_eq!(written(&ws, "late", &["id"]), [vec!["1"]], "{second}");
        }
    }
}

/// Walk 41 (1): outer joins of two streams, as Spark runs them in append mode. A matching pair
/// is emitted in the batch the later of the two arrives; a preserved side's row without a
/// match is emitted with nulls once, in the batch whose watermark passes the last time a row
/// of the other side could match it (here: a right row at most 5 s after a left row, none
/// before it), a batch of no new input where only the watermark moved.
#[test]
fn outer_joins_of_two_streams_emit_a_row_without_a_match_once_the_watermark_passes() {
    let files = [
        (
            "l/0.json",
            format!("{}{}", row(1, Some(10.0)), row(2, Some(11.0))),
        ),
        ("r/0.json", row(1, Some(12.0))),
        ("l/1.json", row(3, Some(30.0))),
        ("r/1.json", row(9, Some(31.0))),
        ("l/2.json", row(4, Some(40.0))),
        ("r/2.json", row(4, Some(41.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let sources = format!("{}\n{}", source("l", "0s"), source("r", "0s"));
    for (kind, expected) in [
        (
            "LEFT",
            vec![vec!["1|1"], vec!["2|null", "4|4"], vec!["3|null"]],
        ),
        ("RIGHT", vec![vec!["1|1"], vec!["4|4"], vec!["null|9"]]),
        (
            "FULL",
            vec![vec!["1|1"], vec!["2|null", "4|4"], vec!["3|null", "null|9"]],
        ),
    ] {
        let ws = run_case(
            &files,
            &sources,
            &format!(
                "SELECT l.id AS lid, r.id AS rid FROM l {kind} JOIN r ON l.id = r.id AND r.ts \
                 BETWEEN l.ts AND l.ts + INTERVAL '5 seconds'"
            ),
            "append",
        );
        assert_eq!(written(&ws, "out", &["lid", "rid"]), expected, "{kind}");
        // Walk 41 (10): `explain` says the kind, when each side's rows go, and what is
        // emitted without a match.
        let explained = run_bin(&["explain", &ws.p("pipeline.yaml")], ws.dir.path());
        let said = String::from_utf8_lossy(&explained.stdout);
        assert!(
            said.contains(&format!("a {kind} join of two streams"))
                && said.contains("a left row until the watermark passes its `ts` plus 5s")
                && said.contains("matched nothing once, with nulls for the other side"),
            "{said}"
        );
    }
}

/// Audit 91a (Spark's StreamingOuterJoinSuite "windowed left outer join"): on equal windows a
/// row was kept until the watermark passed its time plus the window's size, a window longer
/// than any row of the other side could match it, so unmatched rows came out batches late
/// (`2|null` only once the watermark reached 30). A row is kept until the watermark passes
/// its window's end, as in Spark: at watermark 11, `1` and `2` of window [0, 10) go.
#[test]
fn a_join_on_equal_windows_keeps_a_row_until_its_window_ends() {
    let many = |ids: std::ops::RangeInclusive<i64>| -> String {
        ids.map(|i| row(i, Some(i as f64))).collect()
    };
    let files = [
        ("l/0.json", many(1..=5)),
        ("r/0.json", many(3..=7)),
        ("l/1.json", row(21, Some(21.0))),
        ("r/1.json", row(22, Some(22.0))),
        ("l/2.json", row(22, Some(22.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let sources = format!("{}\n{}", source("l", "10s"), source("r", "10s"));
    let ws = run_case(
        &files,
        &sources,
        "SELECT l.id AS lid, r.id AS rid FROM l LEFT JOIN r ON l.id = r.id AND \
         date_bin(INTERVAL '10 seconds', l.ts) = date_bin(INTERVAL '10 seconds', r.ts)",
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["lid", "rid"]),
        vec![vec!["3|3", "4|4", "5|5"], vec!["1|null", "22|22", "2|null"]]
    );
    let explained = run_bin(&["explain", &ws.p("pipeline.yaml")], ws.dir.path());
    let said = String::from_utf8_lossy(&explained.stdout);
    assert!(
        said.contains("a left row until the watermark passes the end of its `ts`'s 10s window"),
        "{said}"
    );
}

/// Walk 42 (1): a join's late rows were counted under `join-left` whichever stream they came
/// from; a late row of the right stream is counted under `join-right`.
#[test]
fn a_join_counts_a_late_row_under_the_side_of_its_stream() {
    let ws = run_case(
        &[
            ("l/0.json", &row(1, Some(10.0))),
            ("r/0.json", &row(9, Some(20.0))),
            ("r/1.json", &row(1, Some(5.0))),
        ],
        &format!("{}\n{}", source("l", "0s"), source("r", "0s")),
        "SELECT l.id AS id FROM l JOIN r ON l.id = r.id AND r.ts BETWEEN l.ts AND l.ts + \
         INTERVAL '5 seconds'",
        "append",
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["1"]]);
    // Batch 1 taken back and run again, its progress as JSON.
    let replayed = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    let again = run_bin(
        &["run", &ws.p("pipeline.yaml"), "--progress", "json"],
        ws.dir.path(),
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let event: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&again.stdout)
            .lines()
            .next()
            .expect("an event"),
    )
    .expect("JSON");
    assert_eq!(event["numLateRows"], 1, "{event}");
    let dropped = |name: &str| {
        event["stateOperators"]
            .as_array()
            .expect("operators")
            .iter()
            .find(|o| o["operatorName"] == name)
            .map(|o| o["numRowsDroppedByWatermark"].clone())
    };
    assert_eq!(dropped("join-right"), Some(serde_json::json!(1)), "{event}");
    assert_eq!(dropped("join-left"), Some(serde_json::json!(0)), "{event}");
}

/// A windowed count over a `UNION ALL` of two watermarked streams runs in append mode with the
/// smaller of the two watermarks (Spark's default): after `a` at 12 s and `b` at 8 s the
/// watermark is 8 s, so `[0 s, 5 s)` closes with both its rows, `b`'s 3 s row among them.
#[test]
fn a_window_over_a_union_of_streams_follows_the_slower_watermark() {
    let ws = run_case(
        &[
            ("a/0.json", &row(1, Some(2.0))),
            ("b/0.json", &row(2, Some(8.0))),
            ("a/1.json", &row(3, Some(12.0))),
            ("b/1.json", &row(4, Some(3.0))),
        ],
        &format!("{}\n{}", source("a", "0s"), source("b", "0s")),
        "SELECT CAST(date_bin(INTERVAL '5 seconds', ts) AS VARCHAR) AS w, count(*) AS n FROM \
         (SELECT ts FROM a UNION ALL SELECT ts FROM b) u \
         GROUP BY date_bin(INTERVAL '5 seconds', ts)",
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec!["1970-01-01T00:00:00|2"]]
    );
}

/// Joins of two streams Spark runs with state bounded one way, or by equal windows. One way
/// (`r.ts >= l.ts`): a left row is kept for ever, so a right row 50 s later still joins it.
/// Equal 10 s windows: rows in the same window join; rows a window apart do not.
#[test]
fn joins_bounded_one_way_or_by_equal_windows_run() {
    let files = [
        ("l/0.json", row(1, Some(10.0))),
        ("r/0.json", row(9, Some(20.0))),
        ("r/1.json", row(1, Some(15.0))),
        ("l/1.json", row(2, Some(31.0))),
        ("r/2.json", row(1, Some(59.0))),
        ("r/3.json", row(2, Some(45.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let sources = format!("{}\n{}", source("l", "0s"), source("r", "0s"));
    let select = "SELECT l.id AS id, CAST(l.ts AS VARCHAR) AS lts, CAST(r.ts AS VARCHAR) AS rts \
                  FROM l JOIN r ON l.id = r.id";
    let pairs = |ws: &Workspace| -> Vec<String> {
        let mut all: Vec<String> = written(ws, "out", &["id", "lts", "rts"])
            .into_iter()
            .flatten()
            .collect();
        all.sort();
        all
    };
    let ws = run_case(
        &files,
        &sources,
        &format!("{select} AND r.ts >= l.ts"),
        "append",
    );
    assert_eq!(
        pairs(&ws),
        [
            "1|1970-01-01T00:00:10|1970-01-01T00:00:15",
            "1|1970-01-01T00:00:10|1970-01-01T00:00:59",
            "2|1970-01-01T00:00:31|1970-01-01T00:00:45",
        ]
    );
    let ws = run_case(
        &files,
        &sources,
        &format!(
            "{select} AND date_bin(INTERVAL '10 seconds', l.ts) = \
             date_bin(INTERVAL '10 seconds', r.ts)"
        ),
        "append",
    );
    assert_eq!(pairs(&ws), ["1|1970-01-01T00:00:10|1970-01-01T00:00:15"]);
}

/// Walk 77 (1): a row the query's `WHERE` removes by a condition that does not read the event
/// time was counted late (and written to the late-rows sink) and moved the watermark. Spark
/// tests such a condition before `withWatermark` (`PushPredicateThroughNonJoin`): rows of id 9
/// here are neither late nor in the watermark, so the 2 s row counts in `[0 s, 10 s)`. A
/// condition that reads the event time is tested after, as in Spark: the 59 s row moves the
/// watermark to 54 s, and the rows after it are late, as is the row without a time.
#[test]
fn a_row_the_where_removes_is_neither_late_nor_in_the_watermark() {
    let files = [
        (
            "s/0.json",
            format!(
                "{}{}{}",
                row(1, Some(1.0)),
                row(9, Some(59.0)),
                row(9, None)
            ),
        ),
        (
            "s/1.json",
            format!("{}{}", row(2, Some(2.0)), row(9, Some(3.0))),
        ),
        ("s/2.json", row(3, Some(30.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let window = |condition: &str| {
        format!(
            "SELECT date_bin(INTERVAL '10 seconds', ts) AS w, count(*) AS n FROM s WHERE \
             {condition} GROUP BY date_bin(INTERVAL '10 seconds', ts)"
        )
    };
    for condition in [
        "id <> 9",
        "id <> 9 AND ts >= TIMESTAMP '1970-01-01T00:00:00'",
    ] {
        let ws = run_case(&files, &source("s", "5s"), &window(condition), "append");
        assert_eq!(
            written(&ws, "out", &["w", "n"]),
            [vec!["1970-01-01T00:00:00|2"]],
            "{condition}"
        );
        assert!(
            written(&ws, "late", &["id"]).is_empty(),
            "{condition}: {:?}",
            written(&ws, "late", &["id"])
        );
        let verify = |ws: &Workspace| {
            run_bin(
                &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
                ws.dir.path(),
            )
        };
        let out = verify(&ws);
        assert!(out.status.success(), "{condition}: {}", stderr(&out));
        // A batch is computed again by the rule it was planned with: one an older Sluice
        // planned (no `where_before_watermark` or `join_keys_before_watermark` in its
        // settings) takes the row without a time
        // as late, which its late-rows sink, written by the newer rule, does not hold.
        let entry = ws.path("ckpt/offsets/0");
        let text = std::fs::read_to_string(&entry).expect("offsets/0");
        let newer = ",\"where_before_watermark\":true,\"join_keys_before_watermark\":true";
        assert!(text.contains(newer), "{text}");
        std::fs::write(&entry, text.replace(newer, "")).expect("offsets/0");
        let out = verify(&ws);
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
        assert!(
            !out.status.success() && said.contains("batch 0 computes 1 late rows of source `s`"),
            "{condition}: {said}"
        );
    }
    let ws = run_case(
        &files,
        &source("s", "5s"),
        &window("ts <> TIMESTAMP '1970-01-01T00:00:59'"),
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec!["1970-01-01T00:00:00|1"]]
    );
    assert_eq!(
        written(&ws, "late", &["id"]),
        [vec!["9"], vec!["2", "9"], vec!["3"]]
    );
}

/// `--progress json` gives each batch's watermark as Spark's `eventTime.watermark` (ISO 8601,
/// UTC, milliseconds): the epoch for the first batch (walk 24: it was absent), then 15 s less
/// the 3 s delay.
#[test]
fn progress_gives_the_watermark_as_spark_does() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("s");
    std::fs::write(ws.path("s/0.json"), row(1, Some(15.0))).expect("file");
    let yaml = format!(
        "name: event-time\ncheckpoint: {{ws}}/ckpt\nsources:\n{}\nquery: {WINDOW_5S}\n\
         output_mode: append\ntrigger: available-now\n\
         sink: {{ kind: files, path: {{ws}}/out, format: json }}\n",
        source("s", "3s")
    )
    .replace("{ws}", &ws.dir.path().display().to_string());
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(
        &[
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "json",
        ],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("one event"),
    )
    .expect("JSON");
    assert_eq!(first["batchId"], 0);
    assert_eq!(first["eventTime"]["watermark"], "1970-01-01T00:00:00.000Z");
    std::fs::write(ws.path("s/1.json"), row(2, Some(11.0))).expect("file");
    let out = run_bin(
        &["run", ws.p("pipeline.yaml").as_str(), "--progress", "json"],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let event: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("one event"),
    )
    .expect("JSON");
    assert_eq!(event["batchId"], 1);
    assert_eq!(event["eventTime"]["watermark"], "1970-01-01T00:00:12.000Z");
}

/// Beyond Spark: with `max_future`, a row whose event time is further ahead of its batch's
/// timestamp (a producer's clock gone wrong, here 2099) is quarantined with the late rows and
/// does not move the watermark, so the rows after it still count. Without it, that one row
/// makes every later row late. Such rows are counted apart from rows behind the watermark.
#[test]
fn a_row_from_a_runaway_clock_is_quarantined_by_max_future() {
    // A day before now (the batch timestamps are now), on a 5 s window's start.
    let day_ago = chrono::Utc::now().timestamp() / 5 * 5 - 86_400;
    let at = |seconds: i64| {
        chrono::DateTime::from_timestamp(seconds, 0)
            .expect("time")
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let (first, second) = (
        format!(
            "{{\"id\":1,\"ts\":\"{}Z\"}}\n{{\"id\":2,\"ts\":\"2099-01-01T00:00:00Z\"}}\n",
            at(day_ago)
        ),
        format!("{{\"id\":3,\"ts\":\"{}Z\"}}\n", at(day_ago + 1)),
    );
    let files = [("s/0.json", first.as_str()), ("s/1.json", second.as_str())];
    let window = at(day_ago);
    let query = "SELECT CAST(date_bin(INTERVAL '5 seconds', ts) AS VARCHAR) AS w, \
                 count(*) AS n FROM s GROUP BY date_bin(INTERVAL '5 seconds', ts)";
    let guarded = source("s", "0s").replace("delay: 0s", "delay: 0s, max_future: 1h");
    let ws = run_case(&files, &guarded, query, "update");
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec![format!("{window}|1")], vec![format!("{window}|2")]]
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["2"]]);
    // Walk 51 (5): counted apart from the rows behind the watermark.
    let inspect = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains("; 1 late rows (1 past max_future)"),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    let ws = run_case(&files, &source("s", "0s"), query, "update");
    let inspect = run_bin(&["inspect", &ws.p("ckpt")], ws.dir.path());
    assert!(
        !String::from_utf8_lossy(&inspect.stdout).contains("past max_future"),
        "{}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec![
            format!("{window}|1"),
            "2099-01-01T00:00:00|1".to_string()
        ]],
        "without max_future the 2099 row is a window, and the next row is late"
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["3"]]);
}

/// Beyond Spark (Flink's idleness): a source that has read nothing for its `idle_timeout` (in
/// batch time) no longer holds the combined watermark back. `b` stops after 5 s; `a` goes on to
/// 20 s: with `idle_timeout: 1s` on `b`, the watermark follows `a` and closes `[5 s, 10 s)` and
/// `[10 s, 15 s)`; without it, `b` holds it at 5 s and nothing closes.
#[test]
fn an_idle_source_holds_the_watermark_back_no_more() {
    for (idle, expected) in [
        (
            true,
            vec![vec!["1970-01-01T00:00:05|1", "1970-01-01T00:00:10|1"]],
        ),
        (false, vec![]),
    ] {
        let b = if idle {
            source("b", "0s").replace("delay: 0s", "delay: 0s, idle_timeout: 1s")
        } else {
            source("b", "0s")
        };
        let ws = run_case(
            &[
                ("a/0.json", &row(1, Some(10.0))),
                ("b/0.json", &row(2, Some(5.0))),
            ],
            &format!("{}\n{b}", source("a", "0s")),
            "SELECT CAST(date_bin(INTERVAL '5 seconds', ts) AS VARCHAR) AS w, count(*) AS n \
             FROM (SELECT ts FROM a UNION ALL SELECT ts FROM b) u \
             GROUP BY date_bin(INTERVAL '5 seconds', ts)",
            "append",
        );
        assert!(written(&ws, "out", &["w", "n"]).is_empty(), "idle {idle}");
        // More than the timeout later, only `a` has input.
        std::thread::sleep(std::time::Duration::from_millis(1_200));
        std::fs::write(ws.path("a/1.json"), row(3, Some(20.0))).expect("file");
        let out = run_bin(&["run", ws.p("pipeline.yaml").as_str()], ws.dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(written(&ws, "out", &["w", "n"]), expected, "idle {idle}");
        // Walk 58 (6): a replay of the batch where `b` read nothing said `b` had "read no
        // event time yet" (it had, in batch 0); the run itself did not.
        let out = run_bin(
            &["replay", &ws.p("ckpt"), "--batch", "1", "--verify"],
            ws.dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("read no event time yet"),
            "idle {idle}: {}",
            stderr(&out)
        );
    }
}

/// Review of walk 77 (1): a source whose rows the query's `WHERE` removes all is idle, as one
/// that read none: such rows are tested before the watermark, so they do not move it, and
/// taking the source for an active one would hold the watermark back for good.
#[test]
fn a_source_whose_rows_the_where_removes_is_idle() {
    let b = source("b", "0s").replace("delay: 0s", "delay: 0s, idle_timeout: 1s");
    let ws = run_case(
        &[
            ("a/0.json", &row(1, Some(10.0))),
            ("b/0.json", &row(2, Some(5.0))),
        ],
        &format!("{}\n{b}", source("a", "0s")),
        "SELECT CAST(date_bin(INTERVAL '5 seconds', ts) AS VARCHAR) AS w, count(*) AS n \
         FROM (SELECT id, ts FROM a UNION ALL SELECT id, ts FROM b) u WHERE id <> 9 \
         GROUP BY date_bin(INTERVAL '5 seconds', ts)",
        "append",
    );
    assert!(written(&ws, "out", &["w", "n"]).is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    std::fs::write(ws.path("a/1.json"), row(3, Some(20.0))).expect("file");
    std::fs::write(ws.path("b/1.json"), row(9, Some(6.0))).expect("file");
    let out = run_bin(&["run", ws.p("pipeline.yaml").as_str()], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec!["1970-01-01T00:00:05|1", "1970-01-01T00:00:10|1"]]
    );
}

/// Sessions with a gap of 10 s, delay 5 s, one file a batch; the rows expected are worked out
/// by hand (Spark refuses update mode for sessions, so not all are Spark's). By Spark's rules (`session_window`;
/// a click at or before a session's end joins it; a click is late when its own session
/// `[t, t + 10 s)` ends at or below the watermark):
/// - batch 0: user 1 at 1 s and 8 s, one session `[1 s, 18 s)`;
/// - batch 1: user 1 at 20 s, after that session's end: `[20 s, 30 s)`;
/// - batch 2: user 1 at 12 s (watermark 15 s: `[12 s, 22 s)` is open) bridges both into
///   `[1 s, 30 s)` of 4 clicks;
/// - batch 3: user 1 at 3 s is late (`[3 s, 13 s)` ended by 15 s); user 2 at 40 s and at
///   50 s, exactly the gap apart, is one session `[40 s, 60 s)`;
/// - the final watermark (45 s) closes `[1 s, 30 s)` only.
#[test]
fn session_windows_merge_across_batches_and_close_by_the_watermark() {
    const SESSIONS: &str = "SELECT id, CAST(s['start'] AS VARCHAR) AS session_start, \
        CAST(s['end'] AS VARCHAR) AS session_end, n FROM (SELECT id, \
        session_window(ts, INTERVAL '10 seconds') AS s, count(*) AS n FROM s \
        GROUP BY id, session_window(ts, INTERVAL '10 seconds'))";
    let files = [
        (
            "s/0.json",
            format!("{}{}", row(1, Some(1.0)), row(1, Some(8.0))),
        ),
        ("s/1.json", row(1, Some(20.0))),
        ("s/2.json", row(1, Some(12.0))),
        (
            "s/3.json",
            format!(
                "{}{}{}",
                row(1, Some(3.0)),
                row(2, Some(40.0)),
                row(2, Some(50.0))
            ),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let columns = ["id", "session_start", "session_end", "n"];
    let ws = run_case(&files, &source("s", "5s"), SESSIONS, "append");
    assert_eq!(
        written(&ws, "out", &columns),
        [vec!["1|1970-01-01T00:00:01|1970-01-01T00:00:30|4"]]
    );
    assert_eq!(written(&ws, "late", &["id", "ts"]).len(), 1);
    let ws = run_case(&files, &source("s", "5s"), SESSIONS, "update");
    assert_eq!(
        written(&ws, "out", &columns),
        [
            vec!["1|1970-01-01T00:00:01|1970-01-01T00:00:18|2"],
            vec!["1|1970-01-01T00:00:20|1970-01-01T00:00:30|1"],
            vec!["1|1970-01-01T00:00:01|1970-01-01T00:00:30|4"],
            vec!["2|1970-01-01T00:00:40|1970-01-01T00:01:00|2"],
        ]
    );
    // Complete mode counts the late click too, and keeps the open session.
    let ws = run_case(&files, &source("s", "5s"), SESSIONS, "complete");
    let table = std::fs::read_to_string(ws.path("out/result.jsonl")).expect("the table");
    let mut rows: Vec<&str> = table.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            r#"{"id":1,"session_start":"1970-01-01T00:00:01","session_end":"1970-01-01T00:00:30","n":5}"#,
            r#"{"id":2,"session_start":"1970-01-01T00:00:40","session_end":"1970-01-01T00:01:00","n":2}"#,
        ]
    );
}

/// `session_window` makes sessions only as a group key of the aggregation: anywhere else it
/// would be one row's `[t, t + gap)`, not a session, so it is refused at planning.
#[test]
fn session_window_outside_an_aggregation_key_is_refused() {
    for query in [
        "SELECT id, session_window(ts, INTERVAL '10 seconds') AS s FROM s",
        "SELECT id, count(*) AS n FROM s GROUP BY id, session_window(ts + INTERVAL '1 second', INTERVAL '10 seconds')",
    ] {
        let said = refused_before_a_batch(&format!(
            "name: refused\ncheckpoint: {{ws}}/ckpt\nsources:\n{}\nquery: {query}\n\
             output_mode: update\ntrigger: available-now\n\
             sink: {{ kind: files, path: {{ws}}/out, format: json }}\n",
            source("s", "5s")
        ));
        assert!(
            said.contains("session_window") && said.contains("group key"),
            "{query}: {said}"
        );
    }
}

/// Runs the pipeline `yaml` (`{ws}` standing for a new workspace) over one input row in
/// `{ws}/s`, expecting it refused at planning (exit 2), leaving no checkpoint behind; returns
/// what it said.
fn refused_before_a_batch(yaml: &str) -> String {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("folder");
    std::fs::write(ws.path("s/0.json"), row(1, Some(1.0))).expect("input");
    let pipeline = write_pipeline(
        &ws,
        &yaml.replace("{ws}", &ws.dir.path().display().to_string()),
    );
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{yaml}: {}", stderr(&out));
    assert!(!ws.path("ckpt").exists(), "{yaml}: no checkpoint left");
    // `explain` refuses it as the run does (audit 88a: it showed a plan, exit 0).
    let explained = run_bin(
        &["explain", pipeline.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert_eq!(
        explained.status.code(),
        Some(2),
        "{yaml}: {}",
        stdout(&explained)
    );
    assert_eq!(stderr(&explained), stderr(&out), "{yaml}");
    stderr(&out)
}

/// `state_ttl: 10s` on event time, delay 1 s, one file a batch, `GROUP BY k` in update and
/// complete modes. A batch drops a key whose stamp its watermark is 10 s past, then stamps
/// the keys it sees with the watermark as its rows move it:
/// - batch 0: `a` at 1 s, `b` at 2 s, both stamped 1 s;
/// - batch 1 (watermark 1 s): `a` at 5 s, stamped 4 s;
/// - batch 2 (watermark 4 s): `c` at 20 s, stamped 19 s;
/// - batch 3 (watermark 19 s): `a` (4 s) and `b` (1 s) are dropped before its rows, `c` (19 s)
///   is kept; `a` at 21 s starts afresh at 1.
#[test]
fn state_ttl_drops_keys_not_seen_for_that_long_on_event_time() {
    let files = [
        (
            "s/0.json",
            "{\"id\":1,\"k\":\"a\",\"ts\":\"1970-01-01T00:00:01Z\"}\n{\"id\":2,\"k\":\"b\",\"ts\":\"1970-01-01T00:00:02Z\"}\n",
        ),
        (
            "s/1.json",
            "{\"id\":3,\"k\":\"a\",\"ts\":\"1970-01-01T00:00:05Z\"}\n",
        ),
        (
            "s/2.json",
            "{\"id\":4,\"k\":\"c\",\"ts\":\"1970-01-01T00:00:20Z\"}\n",
        ),
        (
            "s/3.json",
            "{\"id\":5,\"k\":\"a\",\"ts\":\"1970-01-01T00:00:21Z\"}\n",
        ),
    ];
    let source = "  s: { kind: files, path: {ws}/s, format: json, max_files_per_batch: 1, \
                  schema: { id: bigint, k: string, ts: timestamp }, \
                  watermark: { column: ts, delay: 1s } }";
    let query = "SELECT k, count(*) AS n FROM s GROUP BY k";
    let ws = run_case_keeping_every_row(&files, source, query, "update\nstate_ttl: 10s");
    assert_eq!(
        written(&ws, "out", &["k", "n"]),
        [vec!["a|1", "b|1"], vec!["a|2"], vec!["c|1"], vec!["a|1"]]
    );
    // Batch 3 dropped two keys, counted in its commit.
    let entry = std::fs::read_to_string(ws.path("ckpt/commits/3")).expect("commit 3");
    let commit: serde_json::Value =
        serde_json::from_str(entry.trim_start_matches("v1\n")).expect("commit JSON");
    assert_eq!(commit["state"][0]["rows_expired"], 2, "{commit}");
    let ws = run_case_keeping_every_row(&files, source, query, "complete\nstate_ttl: 10s");
    let table = std::fs::read_to_string(ws.path("out/result.jsonl")).expect("the table");
    let mut rows: Vec<&str> = table.lines().collect();
    rows.sort();
    assert_eq!(rows, [r#"{"k":"a","n":1}"#, r#"{"k":"c","n":1}"#]);
}

/// `state_ttl: { after: 5s, time: processing }`: a key no batch has seen for 5 s of batch
/// timestamps is dropped; a deduplication then writes it again when it comes back.
#[test]
fn state_ttl_on_processing_time_uses_batch_timestamps() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("folder");
    let yaml = "name: ttl\ncheckpoint: {ws}/ckpt\nsources:\n  s: { kind: files, path: {ws}/s, \
         format: json, schema: { id: bigint, k: string } }\n\
         query: SELECT DISTINCT k FROM s\noutput_mode: append\ntrigger: available-now\n\
         state_ttl: { after: 5s, time: processing }\n\
         sink: { kind: files, path: {ws}/out, format: json }\n"
        .replace("{ws}", &ws.dir.path().display().to_string());
    let pipeline = write_pipeline(&ws, &yaml);
    let run = |name: &str, text: &str| {
        std::fs::write(ws.path(&format!("s/{name}")), text).expect("input");
        let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
    };
    run("0.json", "{\"id\":1,\"k\":\"a\"}\n");
    run("1.json", "{\"id\":2,\"k\":\"a\"}\n{\"id\":3,\"k\":\"b\"}\n");
    std::thread::sleep(std::time::Duration::from_secs(6));
    run("2.json", "{\"id\":4,\"k\":\"a\"}\n");
    assert_eq!(
        written(&ws, "out", &["k"]),
        [vec!["a"], vec!["b"], vec!["a"]],
        "`a` seen again within 5 s is a duplicate; after them, a new key"
    );
    // `b`, not seen since, is gone from the state; `a` is back.
    let state = run_bin(
        &[
            "state",
            ws.p("ckpt").as_str(),
            "--sql",
            "SELECT k FROM state",
        ],
        ws.dir.path(),
    );
    assert!(state.status.success(), "{}", stderr(&state));
    let shown = String::from_utf8_lossy(&state.stdout);
    let cells: Vec<&str> = shown
        .lines()
        .flat_map(|l| l.split('|'))
        .map(str::trim)
        .collect();
    assert!(cells.contains(&"a") && !cells.contains(&"b"), "{shown}");
}

/// Audit 88a: `state_ttl.time` switched from `event` to `processing` over kept stamps held
/// event times against batch timestamps, and every group was let go, its count starting over
/// (exit 0). A clock changed under the stamps is refused, naming both and the way back; put
/// back, the run goes on and the count carries on.
#[test]
fn state_ttl_switched_to_another_clock_is_refused() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("folder");
    let yaml = |time: &str| {
        "name: ttl\ncheckpoint: {ws}/ckpt\nsources:\n  s: { kind: files, path: {ws}/s, \
         format: json, schema: { ts: timestamp, k: string }, watermark: { column: ts, delay: \
         1s } }\nquery: SELECT k, count(*) AS n FROM s GROUP BY k\noutput_mode: update\n\
         trigger: available-now\nstate_ttl: { after: 1h, time: TIME }\n\
         sink: { kind: files, path: {ws}/out, format: json }\n"
            .replace("{ws}", &ws.dir.path().display().to_string())
            .replace("TIME", time)
    };
    let pipeline = write_pipeline(&ws, &yaml("event"));
    let p = pipeline.to_str().expect("utf-8").to_string();
    std::fs::write(
        ws.path("s/0.json"),
        "{\"ts\":\"2026-01-01T00:00:00Z\",\"k\":\"a\"}\n{\"ts\":\"2026-01-01T00:00:01Z\",\"k\":\"a\"}\n",
    )
    .expect("input");
    let out = run_bin(&["run", &p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        ws.path("s/1.json"),
        "{\"ts\":\"2026-01-01T00:00:02Z\",\"k\":\"a\"}\n",
    )
    .expect("input");
    write_pipeline(&ws, &yaml("processing"));
    let out = run_bin(&["run", &p], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("`state_ttl.time` is processing (the batch timestamps' clock) now, event")
            && said.contains("Put `time: event` back"),
        "{said}"
    );
    assert!(
        !ws.path("ckpt/offsets/1").exists(),
        "the refused run logged no batch"
    );
    write_pipeline(&ws, &yaml("event"));
    let out = run_bin(&["run", &p], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = written(&ws, "out", &["k", "n"]);
    assert_eq!(
        rows.last().map(|r| r.join(",")),
        Some("a|3".to_string()),
        "{rows:?}"
    );
}

/// A `state_ttl` with nothing to bound is refused before a batch: a query without state, an
/// aggregation whose groups the watermark closes; on event time, a pipeline without a
/// watermark (said only where the query keeps state for the setting to bound).
#[test]
fn state_ttl_where_it_bounds_nothing_is_refused() {
    for (query, ttl, watermark, says) in [
        ("SELECT id FROM s", "1h", true, "keeps none"),
        // Without a watermark too: that the query keeps no state is said first (a watermark
        // would not make the setting mean anything).
        ("SELECT id FROM s", "1h", false, "keeps none"),
        (
            "SELECT date_bin(INTERVAL '1 minute', ts) AS w, count(*) AS n FROM s GROUP BY 1",
            "1h",
            true,
            "close by the watermark already (its key `w`)",
        ),
        (
            "SELECT w, count(*) AS n FROM (SELECT DISTINCT id, date_bin(INTERVAL '1 minute', ts) AS w FROM s) GROUP BY w",
            "1h",
            true,
            "its keys `w`, `w`",
        ),
        (
            "SELECT id, count(*) AS n FROM s GROUP BY id",
            "1h",
            false,
            "time: processing",
        ),
    ] {
        let watermark = if watermark {
            ", watermark: { column: ts, delay: 5s }"
        } else {
            ""
        };
        let said = refused_before_a_batch(&format!(
            "name: refused\ncheckpoint: {{ws}}/ckpt\nsources:\n  s: {{ kind: files, path: {{ws}}/s, \
             format: json, schema: {{ id: bigint, ts: timestamp }}{watermark} }}\n\
             query: {query}\noutput_mode: update\ntrigger: available-now\nstate_ttl: {ttl}\n\
             sink: {{ kind: files, path: {{ws}}/out, format: json }}\n"
        ));
        assert!(
            said.contains("state_ttl") && said.contains(says),
            "{query}: {said}"
        );
        assert!(
            !said.contains("query cannot run"),
            "the setting is at fault: {said}"
        );
    }
}

/// A `late_rows` sink no row could reach is refused before a batch (exit 2, no checkpoint): a
/// stateless query (even with `max_future`: it keeps rows from the future) and a complete-mode
/// count per plain key drop no row as late. A windowed count in append mode does, and runs.
#[test]
fn a_late_rows_sink_no_row_could_reach_is_refused() {
    let yaml = |query: &str, mode: &str, watermark: &str| {
        format!(
            "name: late\ncheckpoint: {{ws}}/ckpt\nsources:\n  s: {{ kind: files, path: {{ws}}/s, \
             format: json, schema: {{ id: bigint, ts: timestamp }}, watermark: {{ {watermark} }} }}\n\
             query: {query}\noutput_mode: {mode}\ntrigger: available-now\n\
             sink: {{ kind: files, path: {{ws}}/out, format: json }}\n\
             late_rows: {{ kind: files, path: {{ws}}/late, format: json }}\n"
        )
    };
    for (query, mode, watermark, says) in [
        (
            "SELECT id FROM s",
            "append",
            "column: ts, delay: 5s",
            "keeps no state",
        ),
        (
            "SELECT id FROM s",
            "append",
            "column: ts, delay: 5s, max_future: 1h",
            "keeps no state",
        ),
        (
            "SELECT id, count(*) AS n FROM s GROUP BY id",
            "complete",
            "column: ts, delay: 5s",
            "drops no row as late",
        ),
    ] {
        let said = refused_before_a_batch(&yaml(query, mode, watermark));
        assert!(
            said.contains("`late_rows` would never receive a row") && said.contains(says),
            "{query}: {said}"
        );
        assert!(said.contains("remove `late_rows`"), "{said}");
    }
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("folder");
    std::fs::write(ws.path("s/0.json"), row(1, Some(1.0))).expect("input");
    let pipeline = write_pipeline(
        &ws,
        &yaml(
            "SELECT date_bin(INTERVAL '1 minute', ts) AS w, count(*) AS n FROM s GROUP BY 1",
            "append",
            "column: ts, delay: 5s",
        )
        .replace("{ws}", &ws.dir.path().display().to_string()),
    );
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `state_ttl` added to a checkpoint whose aggregation already keeps state: the groups kept
/// are stamped with the first clock after it, as groups seen before the first watermark are;
/// the run goes on, and drops them as if the TTL had been set from the start (the same rows
/// as `state_ttl_drops_keys_not_seen_for_that_long_on_event_time`).
#[test]
fn state_ttl_added_to_a_checkpoint_with_state_stamps_what_it_keeps() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("folder");
    let write = |name: &str, text: &str| std::fs::write(ws.path(name), text).expect("input");
    write(
        "s/0.json",
        "{\"id\":1,\"k\":\"a\",\"ts\":\"1970-01-01T00:00:01Z\"}\n{\"id\":2,\"k\":\"b\",\"ts\":\"1970-01-01T00:00:02Z\"}\n",
    );
    write(
        "s/1.json",
        "{\"id\":3,\"k\":\"a\",\"ts\":\"1970-01-01T00:00:05Z\"}\n",
    );
    let yaml = "name: ttl\ncheckpoint: {ws}/ckpt\nsources:\n  s: { kind: files, path: {ws}/s, \
                format: json, max_files_per_batch: 1, schema: { id: bigint, k: string, ts: timestamp }, \
                watermark: { column: ts, delay: 1s } }\n\
                query: SELECT k, count(*) AS n FROM s GROUP BY k\noutput_mode: update\n\
                trigger: available-now\nsink: { kind: files, path: {ws}/out, format: json }\n"
        .replace("{ws}", &ws.dir.path().display().to_string());
    let pipeline = write_pipeline(&ws, &yaml);
    let run = || {
        let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
    };
    run();
    write_pipeline(&ws, &yaml.replace("trigger:", "state_ttl: 10s\ntrigger:"));
    write(
        "s/2.json",
        "{\"id\":4,\"k\":\"c\",\"ts\":\"1970-01-01T00:00:20Z\"}\n",
    );
    write(
        "s/3.json",
        "{\"id\":5,\"k\":\"a\",\"ts\":\"1970-01-01T00:00:21Z\"}\n",
    );
    run();
    assert_eq!(
        written(&ws, "out", &["k", "n"]),
        [vec!["a|1", "b|1"], vec!["a|2"], vec!["c|1"], vec!["a|1"]]
    );
}

/// A secret written as is in the pipeline file is refused before anything runs: the
/// checkpoint's copy of the file would keep it.
#[test]
fn a_secret_written_as_is_is_refused() {
    for (sink, says) in [
        (
            "{ kind: postgres, url: \"host=127.0.0.1 port=9 user=u password=hunter2 dbname=d\", table: t }",
            "`sink.url` holds a password as written",
        ),
        (
            "{ kind: kafka, bootstrap_servers: 127.0.0.1:9, topic: t, properties: { sasl.password: hunter2 } }",
            "`sink.properties.sasl.password` is a secret written as is",
        ),
        // Walk 27 (14): the Java client's login, password and all, was quoted in the errors.
        (
            "{ kind: kafka, bootstrap_servers: 127.0.0.1:9, topic: t, properties: { sasl.jaas.config: \"x required username=a password=hunter2;\" } }",
            "`sink.properties.sasl.jaas.config` is the Java client's setting",
        ),
    ] {
        let said = refused_before_a_batch(&format!(
            "name: secret\ncheckpoint: {{ws}}/ckpt\nsources:\n  s: {{ kind: files, path: {{ws}}/s, \
             format: json, schema: {{ id: bigint, ts: timestamp }} }}\n\
             query: SELECT id FROM s\ntrigger: available-now\nsink: {sink}\n"
        ));
        assert!(said.contains(says) && !said.contains("hunter2"), "{said}");
    }
}

/// Two watermarked sources, `a` with a row at 10 s and `b` empty, counted together in 5 s
/// windows in append mode, run once.
fn a_beside_an_empty_b() -> Workspace {
    run_case(
        &[("a/0.json", &row(1, Some(10.0))), ("b/_empty", "")],
        &format!("{}\n{}", source("a", "0s"), source("b", "0s")),
        "SELECT CAST(date_bin(INTERVAL '5 seconds', ts) AS VARCHAR) AS w, count(*) AS n \
         FROM (SELECT ts FROM a UNION ALL SELECT ts FROM b) u \
         GROUP BY date_bin(INTERVAL '5 seconds', ts)",
        "append",
    )
}

/// Gives source `b` of [`a_beside_an_empty_b`]'s pipeline file the `idle_timeout` `after`.
fn set_idle_timeout_of_b(ws: &Workspace, after: &str) {
    let file = ws.path("pipeline.yaml");
    let text = std::fs::read_to_string(&file).expect("pipeline");
    let b = "b, format: json, max_files_per_batch: 1, schema: { id: bigint, ts: timestamp }, \
             watermark: { column: ts, delay: 0s }";
    assert!(text.contains(b), "{text}");
    let timed = b.replace("delay: 0s", &format!("delay: 0s, idle_timeout: {after}"));
    std::fs::write(&file, text.replace(b, &timed)).expect("pipeline");
}

/// Walk 9: with two watermarked sources and one of them empty, nothing closed and nothing
/// said why. The run names the source that holds the watermark back, with `idle_timeout`.
#[test]
fn a_source_that_has_read_nothing_is_named_as_holding_the_watermark_back() {
    let ws = a_beside_an_empty_b();
    std::fs::write(ws.path("a/1.json"), row(3, Some(20.0))).expect("file");
    let out = run_bin(&["run", ws.p("pipeline.yaml").as_str()], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("source `b` has read no event time yet") && said.contains("idle_timeout"),
        "{said}"
    );
    assert!(written(&ws, "out", &["w", "n"]).is_empty());
    // Walk 27 (9): with the advice taken, the next run gave it again.
    set_idle_timeout_of_b(&ws, "1h");
    std::fs::write(ws.path("a/2.json"), row(4, Some(30.0))).expect("file");
    let out = run_bin(&["run", ws.p("pipeline.yaml").as_str()], ws.dir.path());
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("has read no event time yet"), "{said}");
}

/// Walk 30 (7): a short `idle_timeout` set on a source that had read no row took effect a run
/// later: the source counted as read from the first batch with the setting. It is idle since
/// the batch before at least, so the first run with it closes windows by the other source.
#[test]
fn an_idle_timeout_added_later_applies_in_its_first_run() {
    let ws = a_beside_an_empty_b();
    assert!(written(&ws, "out", &["w", "n"]).is_empty());
    set_idle_timeout_of_b(&ws, "1s");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(ws.path("a/1.json"), row(3, Some(20.0))).expect("file");
    let out = run_bin(&["run", ws.p("pipeline.yaml").as_str()], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !written(&ws, "out", &["w", "n"]).is_empty(),
        "windows closed in the first run with the timeout: {}",
        stderr(&out)
    );
}

/// Walk 37's leftover: the way to start over that a stuck run gives names a new late-rows
/// folder too (its batches are the old checkpoint's as much as the sink's are), and taken as
/// given, the run goes on.
#[test]
fn starting_over_names_a_new_late_rows_folder_too() {
    let files = [
        ("s/0.json", row(1, Some(15.0))),
        ("s/1.json", row(2, Some(24.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case(&files, &source("s", "3s"), WINDOW_5S, "append");
    let file = ws.path("pipeline.yaml");
    let text = std::fs::read_to_string(&file).expect("pipeline");
    // Another aggregate: the state cannot follow.
    let text = text.replace("count(*) AS n", "max(id) AS n");
    std::fs::write(&file, &text).expect("edit");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("a new, empty `sink.path`") && said.contains("a new, empty `late_rows.path`"),
        "{said}"
    );
    let root = ws.dir.path().display().to_string();
    let text = text
        .replace(&format!("{root}/ckpt"), &format!("{root}/ckpt2"))
        .replace(&format!("{root}/out"), &format!("{root}/out2"))
        .replace(&format!("{root}/late"), &format!("{root}/late2"));
    std::fs::write(&file, &text).expect("start over");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        written(&ws, "out2", &["w", "n"]),
        [vec!["1970-01-01T00:00:15|1"]]
    );
}

/// Review of walk 38 (U3): append mode changed to complete goes on only where the state holds
/// every group seen; a `DISTINCT ON` over the event time in append mode lets the watermark
/// drop its keys, so complete mode would miss them: refused.
#[test]
fn append_to_complete_is_refused_where_the_watermark_dropped_keys() {
    let files = [
        ("s/0.json", row(1, Some(10.0))),
        ("s/1.json", row(2, Some(30.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case_keeping_every_row(
        &files,
        &source("s", "1s"),
        "SELECT DISTINCT ON (id, ts) id, ts FROM s",
        "append",
    );
    let file = ws.path("pipeline.yaml");
    let text = std::fs::read_to_string(&file).expect("pipeline");
    std::fs::write(
        &file,
        text.replace("output_mode: append", "output_mode: complete"),
    )
    .expect("edit");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the checkpoint's state was kept for append mode"),
        "{}",
        stderr(&out)
    );
}

/// `sluice state` of a join of two streams asked for `--operator` and named its stores
/// `join-left` and `join-right` alone. It shows both sides, each named by its stream and with
/// when its rows are let go.
#[test]
fn the_state_of_a_join_shows_each_side_with_its_stream_and_when_rows_go() {
    let ws = run_case(
        &[
            ("l/0.json", &row(1, Some(10.0))),
            ("r/0.json", &row(9, Some(20.0))),
        ],
        &format!("{}\n{}", source("l", "0s"), source("r", "0s")),
        "SELECT l.id AS id FROM l JOIN r ON l.id = r.id AND r.ts BETWEEN l.ts AND l.ts + \
         INTERVAL '5 seconds'",
        "append",
    );
    let out = run_bin(&["state", &ws.p("ckpt")], ws.dir.path());
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("state/join-left after batch 0: ")
            && said.contains("the join's left side (`l`)")
            && said.contains("its `ts` plus 5s (the latest a right row may match it)")
            && said.contains("state/join-right after batch 0: ")
            && said.contains("the join's right side (`r`)"),
        "{said}"
    );
    // Each side's rows, one table after the other.
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.matches("__sluice_batch").count(), 2, "{shown}");
}

/// Walk 62 (11): an interval join written as Flink writes one (`FROM a, b WHERE a.k = b.k AND
/// b.ts BETWEEN ...`, or `JOIN ... ON a.k = b.k WHERE b.ts BETWEEN ...`) was refused as a join
/// without an event-time bound. Over an inner join the WHERE is the join's condition: each
/// form runs, batch by batch, and writes what the same SQL gives as one batch query over all
/// the input.
#[tokio::test]
async fn an_interval_join_bounded_in_where_runs_as_one_bounded_in_on() {
    let mut files: Vec<(String, String)> = Vec::new();
    for f in 0..3 {
        let (mut left, mut right) = (String::new(), String::new());
        for i in 0..6 {
            let id = f * 6 + i;
            left.push_str(&row(id % 5, Some((id * 2) as f64)));
            right.push_str(&row(id % 5, Some((id * 2 + (id % 4)) as f64)));
        }
        files.push((format!("l/{f}.json"), left));
        files.push((format!("r/{f}.json"), right));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let sources = format!("{}\n{}", source("l", "1 minute"), source("r", "1 minute"));
    let bound = "r.ts BETWEEN l.ts - INTERVAL '1 second' AND l.ts + INTERVAL '3 seconds'";
    let select = "SELECT l.id AS lid, r.id AS rid, CAST(date_part('epoch', l.ts) AS BIGINT) AS \
                  lts, CAST(date_part('epoch', r.ts) AS BIGINT) AS rts";
    let mut results = Vec::new();
    for query in [
        format!("{select} FROM l, r WHERE l.id = r.id AND {bound}"),
        format!("{select} FROM l JOIN r ON l.id = r.id WHERE {bound}"),
        format!("{select} FROM l JOIN r ON l.id = r.id AND {bound}"),
    ] {
        let ws = run_case_keeping_every_row(&files, &sources, &query, "append");
        let mut got: Vec<String> = written(&ws, "out", &["lid", "rid", "lts", "rts"])
            .into_iter()
            .flatten()
            .collect();
        got.sort();
        let ctx = datafusion::prelude::SessionContext::new();
        for name in ["l", "r"] {
            ctx.register_json(
                name,
                &ws.p(name),
                datafusion::prelude::JsonReadOptions::default()
                    .file_extension(".json")
                    .schema(&std::sync::Arc::new(
                        datafusion::arrow::datatypes::Schema::new(vec![
                            datafusion::arrow::datatypes::Field::new(
                                "id",
                                datafusion::arrow::datatypes::DataType::Int64,
                                true,
                            ),
                            datafusion::arrow::datatypes::Field::new(
                                "ts",
                                datafusion::arrow::datatypes::DataType::Timestamp(
                                    datafusion::arrow::datatypes::TimeUnit::Nanosecond,
                                    None,
                                ),
                                true,
                            ),
                        ]),
                    )),
            )
            .await
            .expect("register");
        }
        let expected = sql_rows(&ctx, &format!("SELECT lid, rid, lts, rts FROM ({query})")).await;
        assert!(expected.len() > 10, "{expected:?}");
        results.push((got, expected));
    }
    for (got, expected) in &results {
        assert_eq!(got, expected);
    }
    // The three forms write the same rows.
    assert_eq!(results[0].0, results[2].0);
    assert_eq!(results[1].0, results[2].0);
}

/// Audit 86: a row in 2300 read as a microsecond timestamp (`timestamp(6)`; Parquet from
/// DuckDB, Spark or Polars) had its event time made null by the cast to nanoseconds, and was
/// dropped as late in batch 0, with no watermark yet, in complete mode too. Its group is
/// kept, as Spark (microseconds) keeps it.
#[test]
fn a_row_past_what_nanoseconds_hold_is_not_late_before_any_watermark() {
    let lines = "{\"id\":1,\"ts\":\"2026-01-01T00:00:01Z\"}\n{\"id\":2,\"ts\":\"2300-01-01T00:00:00Z\"}\n\
                 {\"id\":3,\"ts\":\"2026-01-01T00:00:40Z\"}\n";
    let sources = "  s: { kind: files, path: '{ws}/s', format: json, schema: { id: bigint, ts: \
                   timestamp(6) }, watermark: { column: ts, delay: 5s } }";
    let ws = run_case_keeping_every_row(
        &[("s/a.json", lines)],
        sources,
        "SELECT ts AS w, count(*) AS n FROM s GROUP BY ts",
        "complete",
    );
    let got = written(&ws, "out", &["w", "n"]);
    assert_eq!(
        got.last().map(|rows| rows.len()),
        Some(3),
        "the 2300 group kept: {got:?}"
    );
    assert!(
        got.last()
            .is_some_and(|rows| rows.iter().any(|r| r.starts_with("2300-01-01"))),
        "{got:?}"
    );
}

/// The review of audit 86: two sessions after 2262 (microseconds; nanoseconds since 1970 cannot
/// hold them) were merged into one at 2262-04-11, exit 0. Refused, naming why.
#[test]
fn a_session_past_what_nanoseconds_hold_is_refused_not_merged() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("folder");
    std::fs::write(
        ws.path("s/a.json"),
        "{\"id\":1,\"ts\":\"2300-01-01T00:00:00Z\"}\n{\"id\":1,\"ts\":\"2300-01-01T05:00:00Z\"}\n",
    )
    .expect("input");
    let yaml = format!(
        "name: far\ncheckpoint: {ws}/ckpt\nsources:\n  s: {{ kind: files, path: '{ws}/s', format: \
         json, schema: {{ id: bigint, ts: timestamp(6) }}, watermark: {{ column: ts, delay: 5s \
         }} }}\nquery: SELECT id, session_window(ts, INTERVAL '5 minutes') AS s, count(*) AS n \
         FROM s GROUP BY id, session_window(ts, INTERVAL '5 minutes')\noutput_mode: update\n\
         trigger: available-now\nsink: {{ kind: files, path: {ws}/out, format: json }}\n",
        ws = ws.dir.path().display()
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a session window's time is past what its arithmetic holds"),
        "{}",
        stderr(&out)
    );
}

/// Audit 92a (a Flink job's `T1`): a source named with capitals is scanned by its name folded
/// to lower case (`FROM T1` reads `t1`, as SQL reads a table's name), and its watermark, kept
/// under `T1`, was never found: append mode refused its windows as over no watermark, update
/// mode kept every window for good. Its watermark closes its windows now; `FROM "T1"` is
/// refused, saying to leave the quotes out.
#[test]
fn a_source_named_with_capitals_keeps_its_watermark() {
    let files = [
        ("T1/0.json", row(1, Some(15.0))),
        ("T1/1.json", row(2, Some(11.0))),
        ("T1/2.json", row(3, Some(20.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let query = "SELECT date_bin(INTERVAL '5 seconds', ts) AS w, count(*) AS n FROM T1 \
                 GROUP BY date_bin(INTERVAL '5 seconds', ts)";
    let ws = run_case(&files, &source("T1", "3s"), query, "append");
    assert_eq!(
        written(&ws, "out", &["w", "n"]),
        [vec!["1970-01-01T00:00:10|1"]]
    );
    // Update mode lets the closed windows go from its state.
    let ws = run_case(&files, &source("T1", "3s"), query, "update");
    let state = run_bin(
        &[
            "state",
            &ws.p("ckpt"),
            "--sql",
            "SELECT count(*) AS n FROM state",
        ],
        ws.dir.path(),
    );
    assert!(
        String::from_utf8_lossy(&state.stdout).contains("| 2 |"),
        "{}{}",
        String::from_utf8_lossy(&state.stdout),
        stderr(&state)
    );
    let pipeline = std::fs::read_to_string(ws.path("pipeline.yaml")).expect("pipeline");
    std::fs::write(
        ws.path("quoted.yaml"),
        pipeline
            .replace("FROM T1", "FROM \"T1\"")
            .replace("/ckpt", "/ckpt2")
            .replace("/out", "/out2")
            .replace("/late", "/late2"),
    )
    .expect("pipeline");
    let out = run_bin(&["run", &ws.p("quoted.yaml")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("write `T1` without double quotes"),
        "{}",
        stderr(&out)
    );
    assert!(!ws.path("ckpt2").exists() && !ws.path("out2").exists());
}

/// Audit 92a (Flink's `IntervalJoinITCase`, `SELECT t2.key, t2.id, t1.id`): two output
/// columns of one name were written as they came, `{"id":..,"id":..}`, and a pipeline
/// reading that sink kept one of them. Refused before a batch (and by `explain`), naming both.
#[test]
fn two_output_columns_of_one_name_are_refused() {
    let ws = Workspace::new();
    let sources = format!("{}\n{}", source("l", "10s"), source("r", "10s"));
    let yaml = format!(
        "name: dup\ncheckpoint: {{ws}}/ckpt\nsources:\n{sources}\nquery: SELECT r.id, l.id \
         FROM l JOIN r ON l.id = r.id AND l.ts BETWEEN r.ts - INTERVAL '1 second' AND r.ts\n\
         trigger: available-now\nsink: {{ kind: files, path: {{ws}}/out, format: json }}\n"
    )
    .replace("{ws}", &ws.dir.path().display().to_string());
    let pipeline = write_pipeline(&ws, &yaml);
    std::fs::create_dir_all(ws.path("l")).expect("l");
    std::fs::create_dir_all(ws.path("r")).expect("r");
    std::fs::write(ws.path("l/0.json"), row(1, Some(1.0))).expect("l");
    std::fs::write(ws.path("r/0.json"), row(1, Some(1.0))).expect("r");
    for command in ["run", "explain"] {
        let out = run_bin(&[command, &pipeline.display().to_string()], ws.dir.path());
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(
                "the query's output has 2 columns named `id` (column 1 is `r.id`, column 2 is \
                 `l.id`)"
            ),
            "{command}: {}",
            stderr(&out)
        );
    }
    assert!(!ws.path("out").exists());
}

/// Audit 92a (Flink's `WindowJoinITCase.testInnerJoinOnWTF`): on equal 5 s windows with a 1 s
/// delay, `L6` (6 s) came after the watermark reached 6 s, in window [5 s, 10 s) still open
/// with `R7` kept in it, and was dropped as late: `L6|R7` never came. A row of a join on
/// equal windows is late only once its window has ended, as in Spark and Flink.
#[test]
fn a_row_behind_the_watermark_in_an_open_window_of_a_join_still_matches() {
    let files = [
        ("l/0.json", row(7, Some(7.0))),
        ("r/0.json", row(7, Some(7.0))),
        ("l/1.json", row(6, Some(6.0))),
        ("l/2.json", row(2, Some(2.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let sources = format!("{}\n{}", source("l", "1s"), source("r", "1s"));
    let ws = run_case(
        &files,
        &sources,
        "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON \
         date_bin(INTERVAL '5 seconds', l.ts) = date_bin(INTERVAL '5 seconds', r.ts)",
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["lid", "rid"]),
        vec![vec!["7|7"], vec!["6|7"]]
    );
    // The row at 2 s, whose window [0 s, 5 s) ended at or below the watermark, is late.
    assert_eq!(written(&ws, "late", &["id"]), vec![vec!["2"]]);
    // The review: with a tighter bound beside the windows (`l.ts = r.ts`), the kept row goes
    // at its own time, so a row behind the watermark is late by its own time too (it was
    // neither matched nor counted).
    let files = [
        ("l/0.json", row(1, Some(1.0)) + &row(9, Some(9.0))),
        ("r/0.json", row(9, Some(9.0))),
        ("r/1.json", row(1, Some(1.0))),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case(
        &files,
        &sources,
        "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON \
         date_bin(INTERVAL '10 seconds', l.ts) = date_bin(INTERVAL '10 seconds', r.ts) \
         AND l.ts = r.ts",
        "append",
    );
    assert_eq!(written(&ws, "out", &["lid", "rid"]), vec![vec!["9|9"]]);
    assert_eq!(written(&ws, "late", &["id"]), vec![vec!["1"]]);
}

/// Audit 92a (Flink's `IntervalJoinITCase`): a join on equal event times
/// (`testRowTimeInnerJoinWithEquiTimeAttrs`) was refused as without a bound; it is bounded
/// both ways, by 0. A key compared with `IS NOT DISTINCT FROM` (in parentheses: see
/// `plan::tests::is_distinct_from_followed_by_and_is_refused_with_its_parentheses`) matches
/// null keys (`testRowTimeInnerJoinWithIsNotDistinctFrom`); unparenthesized, it is refused.
#[test]
fn joins_on_equal_times_and_null_safe_keys_run() {
    let keyed = |k: Option<&str>, id: i64, seconds: f64| {
        let k = k.map_or("null".to_string(), |k| format!("\"{k}\""));
        format!("{{\"k\":{k},\"id\":{id},\"ts\":\"1970-01-01T00:00:{seconds:06.3}Z\"}}\n")
    };
    let files = [
        ("l/0.json", keyed(Some("a"), 1, 1.0) + &keyed(None, 2, 2.0)),
        (
            "r/0.json",
            keyed(Some("a"), 11, 1.0) + &keyed(None, 12, 2.0) + &keyed(None, 13, 9.0),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let side = |name: &str| {
        format!(
            "  {name}: {{ kind: files, path: {{ws}}/{name}, format: json, schema: {{ k: string, \
             id: bigint, ts: timestamp }}, watermark: {{ column: ts, delay: 1s }} }}"
        )
    };
    let sources = format!("{}\n{}", side("l"), side("r"));
    let ws = run_case(
        &files,
        &sources,
        "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON l.k = r.k AND l.ts = r.ts",
        "append",
    );
    assert_eq!(written(&ws, "out", &["lid", "rid"]), vec![vec!["1|11"]]);
    let ws = run_case(
        &files,
        &sources,
        "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON (l.k IS NOT DISTINCT FROM r.k) AND \
         l.ts BETWEEN r.ts - INTERVAL '5 seconds' AND r.ts + INTERVAL '6 seconds'",
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["lid", "rid"]),
        vec![vec!["1|11", "2|12"]]
    );
}

/// Walk 93: a bounded run (`available-now`) in append mode left its last windows in state,
/// unsaid (the run said rows in and out only). The run's last line counts them, with why.
#[test]
fn a_bounded_run_says_the_windows_it_leaves_open() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("s")).expect("s");
    for (i, (id, seconds)) in [(1, 15.0), (2, 11.0), (3, 20.0)].into_iter().enumerate() {
        std::fs::write(ws.path(&format!("s/{i}.json")), row(id, Some(seconds))).expect("file");
    }
    let yaml = format!(
        "name: open\ncheckpoint: {{ws}}/ckpt\nsources:\n{}\nquery: {WINDOW_5S}\noutput_mode: \
         append\ntrigger: available-now\nsink: {{ kind: files, path: {{ws}}/out, format: json }}\n",
        source("s", "3s")
    )
    .replace("{ws}", &ws.dir.path().display().to_string());
    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(&["run", &pipeline.display().to_string()], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // [10 s, 15 s) is written; [15 s, 20 s) and [20 s, 25 s) wait for the watermark.
    assert!(
        stderr(&out).contains("1 rows out; 2 groups (a window of a key each) still open in state"),
        "{}",
        stderr(&out)
    );
}

/// Walk 95: `idle_timeout` on the only watermarked source was accepted without a word, and
/// windows stayed open once it read nothing; it is said to do nothing there. Beside another
/// watermarked source it is not.
#[test]
fn an_idle_timeout_on_the_only_watermarked_source_is_said_to_do_nothing() {
    let said_with = |sources: &str| {
        let ws = Workspace::new();
        std::fs::create_dir_all(ws.path("a")).expect("a");
        std::fs::create_dir_all(ws.path("b")).expect("b");
        std::fs::write(ws.path("a/0.json"), row(1, Some(1.0))).expect("a");
        std::fs::write(ws.path("b/0.json"), row(2, Some(1.0))).expect("b");
        let yaml = format!(
            "name: idle\ncheckpoint: {{ws}}/ckpt\nsources:\n{sources}\nquery: SELECT \
             date_bin(INTERVAL '5 seconds', ts) AS w, count(*) AS n FROM a GROUP BY 1\n\
             output_mode: append\ntrigger: available-now\n\
             sink: {{ kind: files, path: {{ws}}/out, format: json }}\n"
        )
        .replace("{ws}", &ws.dir.path().display().to_string());
        let pipeline = write_pipeline(&ws, &yaml);
        let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let idle_a = source("a", "0s").replace("delay: 0s", "delay: 0s, idle_timeout: 1s");
    let said = said_with(&idle_a);
    assert!(
        said.contains("source `a`: `idle_timeout` lets an idle source stop holding back")
            && said.contains("so it does nothing here"),
        "{said}"
    );
    let said = said_with(&format!("{idle_a}\n{}", source("b", "0s")));
    assert!(!said.contains("does nothing here"), "{said}");
}

/// Walk 106 (1, 2): a join key of text against a number with a value that is no number failed
/// the batch; the inner join's message advised `TRY_CAST` of the key (refused after the rewind:
/// a changed key is a changed join state), the outer join's named the state alone. Both name
/// the source, column and row, with a filter on the source's side, which the rewind takes:
/// every other row is joined.
#[test]
fn a_join_key_that_is_no_number_is_named_and_a_filter_after_the_rewind_runs() {
    for kind in ["", "FULL "] {
        let ws = Workspace::new();
        let write = |name: &str, text: &str| {
            let path = ws.path(name);
            std::fs::create_dir_all(path.parent().expect("folder")).expect("folder");
            std::fs::write(path, text).expect("input");
        };
        // `l`'s keys are numbers, `r`'s text.
        let rows = |k: &[&str], second: u32, quote: &str| -> String {
            k.iter()
                .map(|k| {
                    format!(
                        "{{\"k\":{quote}{k}{quote},\"ts\":\"1970-01-01T00:00:{second:02}Z\"}}\n"
                    )
                })
                .collect()
        };
        write("l/0.json", &rows(&["1", "2"], 10, ""));
        write("r/0.json", &rows(&["1", "2"], 11, "\""));
        write("l/1.json", &rows(&["3"], 20, ""));
        write("r/1.json", &rows(&["3", "x"], 21, "\""));
        let source = |name: &str, k: &str| {
            format!(
                "  {name}: {{ kind: files, path: {{ws}}/{name}, format: json, \
                 max_files_per_batch: 1, schema: {{ k: {k}, ts: timestamp }}, watermark: {{ \
                 column: ts, delay: 30s }} }}\n"
            )
        };
        let yaml = |r: &str| {
            format!(
                "name: keys\ncheckpoint: {{ws}}/ckpt\nsources:\n{}{}query: SELECT l.k AS lk, \
                 r.k AS rk FROM l {kind}JOIN {r} ON l.k = r.k AND r.ts BETWEEN l.ts AND l.ts + \
                 INTERVAL '5 seconds'\noutput_mode: append\ntrigger: available-now\nsink: {{ \
                 kind: files, path: {{ws}}/out, format: json }}\n",
                source("l", "int"),
                source("r", "string"),
            )
            .replace("{ws}", &ws.dir.path().display().to_string())
        };
        let pipeline = write_pipeline(&ws, &yaml("r"));
        let run = run_bin(&["run", &ws.p("pipeline.yaml")], ws.dir.path());
        let said = stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{kind}: {said}");
        assert!(
            said.contains("`x` is in column `k` of source `r`: 1.json, row 2")
                && said.contains("FROM (SELECT * FROM s WHERE TRY_CAST(c AS INT) IS NOT NULL) s")
                && said.contains("--to 0`"),
            "{kind}: {said}"
        );
        let rewind = run_bin(&["rewind", &ws.p("ckpt"), "--to", "0"], ws.dir.path());
        assert!(rewind.status.success(), "{}", stderr(&rewind));
        write_pipeline(
            &ws,
            &yaml("(SELECT * FROM r WHERE TRY_CAST(k AS INT) IS NOT NULL) r"),
        );
        let run = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
        assert!(run.status.success(), "{kind}: {}", stderr(&run));
        let mut joined: Vec<String> = written(&ws, "out", &["lk", "rk"])
            .into_iter()
            .flatten()
            .collect();
        joined.sort();
        assert_eq!(joined, ["1|1", "2|2", "3|3"], "{kind}");
    }
}

/// Walk 104 (3): `DISTINCT ON (k, date_bin(...))` in update mode kept every closed window's
/// row in its state for good (`explain`: "not bounded by event time"), where the README says a
/// key over the event time lets the watermark drop it, as a GROUP BY window does in update
/// mode. Windows the watermark passed leave the state; a row of one is late; each open
/// window's row is the one its `ORDER BY` puts first.
#[test]
fn distinct_on_a_window_in_update_mode_drops_closed_windows() {
    let files = [
        (
            "s/0.json",
            format!("{}{}", row(1, Some(1.0)), row(2, Some(2.0))),
        ),
        (
            "s/1.json",
            format!("{}{}", row(3, Some(12.0)), row(4, Some(13.0))),
        ),
        (
            "s/2.json",
            format!("{}{}", row(5, Some(3.0)), row(6, Some(24.0))),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let ws = run_case(
        &files,
        &source("s", "1s"),
        "SELECT DISTINCT ON (w) date_bin(INTERVAL '10 seconds', ts) AS w, id FROM s ORDER BY w, \
         id DESC",
        "update",
    );
    assert_eq!(
        written(&ws, "out", &["w", "id"]),
        [
            vec!["1970-01-01T00:00:00|2"],
            vec!["1970-01-01T00:00:10|4"],
            vec!["1970-01-01T00:00:20|6"],
        ]
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["5"]]);
    let state = run_bin(
        &[
            "state",
            ws.p("ckpt").as_str(),
            "--sql",
            "SELECT count(*) AS windows_left FROM state",
        ],
        ws.dir.path(),
    );
    assert!(state.status.success(), "{}", stderr(&state));
    let table = String::from_utf8_lossy(&state.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.split('|').any(|cell| cell.trim() == "1")),
        "{table}"
    );
}

/// Walk 112: a row whose inner-join key is null moved the watermark, so later rows on time
/// were dropped as late. Spark infers `k IS NOT NULL` for an inner join's keys and pushes it
/// below `withWatermark`: such a row neither counts in the watermark nor is late. Two streams
/// joined (each with a null-key row 5 minutes ahead), and a stream joined to a table under a
/// windowed count: every pair and count Spark gives, nothing late.
#[test]
fn a_row_whose_inner_join_key_is_null_does_not_move_the_watermark() {
    let keyed = |name: &str| {
        format!(
            "  {name}: {{ kind: files, path: {{ws}}/{name}, format: json, max_files_per_batch: \
             1, schema: {{ id: bigint, ts: timestamp, k: string }}, watermark: {{ column: ts, \
             delay: 5s }} }}"
        )
    };
    let at = |id: i64, time: &str, k: &str| {
        format!("{{\"id\":{id},\"ts\":\"1970-01-01T00:{time}Z\",\"k\":{k}}}\n")
    };
    let ws = run_case(
        &[
            (
                "a/0.json",
                &format!("{}{}", at(1, "00:01", "\"x\""), at(2, "05:00", "null")),
            ),
            (
                "b/0.json",
                &format!("{}{}", at(101, "00:02", "\"x\""), at(102, "05:00", "null")),
            ),
            ("a/1.json", &at(3, "00:03", "\"y\"")),
            ("b/1.json", &at(103, "00:04", "\"y\"")),
        ],
        &format!("{}\n{}", keyed("a"), keyed("b")),
        "SELECT a.id AS aid, b.id AS bid FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - \
         INTERVAL '5 seconds' AND a.ts + INTERVAL '10 seconds'",
        "append",
    );
    let pairs: Vec<String> = written(&ws, "out", &["aid", "bid"])
        .concat()
        .into_iter()
        .collect();
    assert_eq!(pairs, ["1|101", "3|103"]);
    assert!(written(&ws, "late", &["id"]).is_empty());
    let ws = run_case(
        &[
            (
                "s/0.json",
                &format!(
                    "{}{}{}",
                    at(1, "00:01", "\"a\""),
                    at(2, "05:00", "null"),
                    at(3, "00:02", "\"b\"")
                ),
            ),
            (
                "s/1.json",
                &format!("{}{}", at(4, "00:03", "\"a\""), at(5, "00:30", "\"b\"")),
            ),
            ("pages.csv", "k,section\na,A\nb,B\n"),
        ],
        &format!(
            "{}\ntables:\n  pages: {{ kind: files, path: {{ws}}/pages.csv, format: csv }}",
            keyed("s")
        ),
        "SELECT date_bin(INTERVAL '10 seconds', s.ts) AS ws, p.section, count(*) AS n, \
         sum(s.id) AS total FROM s JOIN pages p ON s.k = p.k GROUP BY 1, 2",
        "append",
    );
    assert_eq!(
        written(&ws, "out", &["section", "n", "total"]).concat(),
        ["A|2|5", "B|1|3"]
    );
    assert!(written(&ws, "late", &["id"]).is_empty());
    // A batch is computed again by the rule it was planned with: batch 0, planned by an
    // older Sluice (no `join_keys_before_watermark`), takes the null-key row without a time
    // as late, which the late-rows sink, written by the newer rule, does not hold.
    let ws = run_case(
        &[
            (
                "s/0.json",
                &format!(
                    "{}{{\"id\":6,\"ts\":null,\"k\":null}}\n",
                    at(1, "00:01", "\"a\"")
                ),
            ),
            ("pages.csv", "k,section\na,A\n"),
        ],
        &format!(
            "{}\ntables:\n  pages: {{ kind: files, path: {{ws}}/pages.csv, format: csv }}",
            keyed("s")
        ),
        "SELECT date_bin(INTERVAL '10 seconds', s.ts) AS ws, count(*) AS n FROM s JOIN pages \
         p ON s.k = p.k GROUP BY 1",
        "append",
    );
    assert!(written(&ws, "late", &["id"]).is_empty());
    let verify = || {
        let out = run_bin(
            &["replay", &ws.p("ckpt"), "--batch", "0", "--verify"],
            ws.dir.path(),
        );
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
        (out.status.success(), said)
    };
    let (verified, said) = verify();
    assert!(verified, "{said}");
    let entry = ws.path("ckpt/offsets/0");
    let text = std::fs::read_to_string(&entry).expect("offsets/0");
    let newer = ",\"join_keys_before_watermark\":true";
    assert!(text.contains(newer), "{text}");
    std::fs::write(&entry, text.replace(newer, "")).expect("offsets/0");
    let (verified, said) = verify();
    assert!(
        !verified && said.contains("batch 0 computes 1 late rows of source `s`"),
        "{said}"
    );
}

/// Walk 127 (5): `late_rows` given another `format` over the same folder went on without a
/// word, leaving JSON lines and Parquet files in one folder (a reader of one misses the
/// other's late rows), and a new `path` went unsaid, where the sink's is said. The format is
/// refused while the folder holds late rows; the move is said, and runs.
#[test]
fn late_rows_format_changed_in_its_folder_is_refused_and_a_move_is_said() {
    let ws = run_case(
        &[
            ("s/0.json", &row(1, Some(2.0))),
            ("s/1.json", &row(0, Some(1.0))),
        ],
        &source("s", "1s"),
        "SELECT DISTINCT id, ts FROM s",
        "append",
    );
    assert_eq!(written(&ws, "late", &["id"]), [vec!["0"]]);
    let file = ws.path("pipeline.yaml");
    let yaml = std::fs::read_to_string(&file).expect("pipeline");
    std::fs::write(ws.path("s/2.json"), row(2, Some(3.0))).expect("input");
    let late = format!("path: {}/late, format: json", ws.dir.path().display());
    assert!(yaml.contains(&late), "{yaml}");
    std::fs::write(&file, yaml.replace(&late, &late.replace("json", "parquet"))).expect("format");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "`late_rows` is `format: parquet` here, but the late rows of earlier batches"
        ) && said.contains("Put `format: json` back"),
        "{said}"
    );
    assert!(!ws.path("ckpt/offsets/2").exists(), "no batch planned");
    let moved = late.replace("/late,", "/late2,").replace("json", "parquet");
    std::fs::write(&file, yaml.replace(&late, &moved)).expect("moved");
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("`late_rows` moved: the late rows of earlier batches stay in"),
        "{said}"
    );
}
