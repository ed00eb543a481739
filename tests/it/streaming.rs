//! Streaming equals batch: for each input format, in many batches, the sink holds exactly the
//! rows of the same SQL run as one DataFusion batch query over all the input.

use crate::common::*;
use sluice::driver::RunOptions;

const QUERY: &str = "SELECT id, user_id, upper(page) AS page, amount * 2 AS doubled, ts FROM clicks WHERE amount > 20";

async fn streaming_equals_batch(format: &str) {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), format, 9, 250, 0);
    let yaml = pipeline_yaml(&ws, format, QUERY, 2, "");
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!(summary.batches, 5, "9 files at 2 per batch");
    assert_eq!(summary.rows_in, 9 * 250);
    let expected = oracle(&ws.path("in"), format, QUERY).await;
    let got = sink_rows(&ws.path("out")).await;
    assert!(!expected.is_empty());
    assert_eq!(compare(&expected, &got), (expected.len(), 0, 0));
    assert_eq!(got, expected);

    // More input arrives: only the new files are read.
    write_clicks(&ws.path("in"), format, 3, 250, 9);
    let summary = run(&yaml, RunOptions::default()).await.expect("second run");
    assert_eq!(summary.batches, 2);
    assert_eq!(summary.rows_in, 3 * 250);
    let expected = oracle(&ws.path("in"), format, QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);

    // Nothing new: no batch.
    let summary = run(&yaml, RunOptions::default()).await.expect("third run");
    assert_eq!(summary.batches, 0);
}

#[tokio::test]
async fn json_lines_stream_equals_batch() {
    streaming_equals_batch("json").await;
}

#[tokio::test]
async fn csv_stream_equals_batch() {
    streaming_equals_batch("csv").await;
}

#[tokio::test]
async fn parquet_stream_equals_batch() {
    streaming_equals_batch("parquet").await;
}

#[tokio::test]
async fn stream_static_join_and_unnest_equal_batch() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 100, 0);
    std::fs::write(
        ws.path("sections.csv"),
        "page,section\nhome,landing\nsearch,discovery\nproduct,discovery\ncart,purchase\n",
    )
    .expect("table");
    let query = "SELECT c.id, s.section, unnest(make_array(c.user_id, c.user_id + 100)) AS u \
                 FROM clicks c JOIN sections s ON c.page = s.page WHERE c.amount < 50";
    let extra = format!(
        "tables:\n  sections: {{ kind: files, path: {}, format: csv }}\n",
        ws.p("sections.csv")
    );
    let yaml =
        pipeline_yaml(&ws, "json", query, 1, "").replace("query: |", &format!("{extra}query: |"));
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!(summary.batches, 4);
    // The oracle joins the same static table.
    let ctx = datafusion::prelude::SessionContext::new();
    let schema = click_schema();
    ctx.register_json(
        "clicks",
        &ws.p("in"),
        datafusion::prelude::JsonReadOptions::default().schema(&schema),
    )
    .await
    .expect("clicks");
    ctx.register_csv(
        "sections",
        &ws.p("sections.csv"),
        datafusion::prelude::CsvReadOptions::new(),
    )
    .await
    .expect("sections");
    let expected = sql_rows(&ctx, query).await;
    assert!(!expected.is_empty());
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

#[tokio::test]
async fn now_is_the_logged_batch_timestamp() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let query = "SELECT id, now() AS at FROM clicks";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "");
    run(&yaml, RunOptions::default()).await.expect("run");
    let location =
        sluice::storage::Location::open(&ws.p("ckpt"), false, false, None).expect("ckpt");
    let mut logged = Vec::new();
    for n in 0..2 {
        let entry = sluice::checkpoint::read_offsets(&location, sluice::checkpoint::BatchId(n))
            .await
            .expect("read")
            .expect("offsets entry");
        logged.push(entry.info.batch_timestamp_ms);
    }
    let got: Vec<i64> = parquet_rows(
        &datafusion::prelude::SessionContext::new(),
        &ws.p("out"),
        "SELECT DISTINCT CAST(at AS BIGINT) / 1000000 AS ms FROM sink",
    )
    .await
    .iter()
    .map(|s| s.parse().expect("ms"))
    .collect();
    logged.sort();
    logged.dedup();
    assert_eq!(
        got, logged,
        "each batch's now() is the timestamp in its offsets entry"
    );
}

#[tokio::test]
async fn sink_folder_holds_only_committed_files() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 50, 0);
    run(
        &pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, ""),
        RunOptions::default(),
    )
    .await
    .expect("run");
    let mut names: Vec<String> = std::fs::read_dir(ws.path("out"))
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "_sluice",
            "part-0000000000-0000.parquet",
            "part-0000000001-0000.parquet",
            "part-0000000002-0000.parquet"
        ]
    );
    let staging = ws.path("out/_sluice/staging");
    let leftovers = std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "nothing left in staging");
}

#[tokio::test]
async fn an_inferred_schema_is_pinned_and_a_file_that_does_not_fit_is_named() {
    let query = "SELECT id, page, amount FROM clicks WHERE amount > 20";
    for format in ["json", "parquet", "csv"] {
        let ws = Workspace::new();
        write_clicks(&ws.path("in"), format, 2, 30, 0);
        let yaml = pipeline_yaml(&ws, format, query, 1, "")
            .replace(&format!("    schema: {CLICK_SCHEMA_YAML}\n"), "");
        assert!(!yaml.contains("schema:"), "{yaml}");
        let summary = run(&yaml, RunOptions::default()).await.expect("run");
        assert_eq!(summary.batches, 2, "{format}");
        let pinned =
            std::fs::read_to_string(ws.path("ckpt/sources/clicks/schema")).expect("pinned");
        assert!(pinned.contains("\"amount\""), "{pinned}");
        let committed = sink_rows(&ws.path("out")).await;
        assert_eq!(
            committed,
            oracle(&ws.path("in"), format, query).await,
            "{format}"
        );

        // A later file whose columns do not fit the pinned schema stops the run, naming it.
        let misfit = datafusion::arrow::record_batch::RecordBatch::try_from_iter(vec![(
            "id",
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec!["abc"]))
                as datafusion::arrow::array::ArrayRef,
        )])
        .expect("batch");
        write_batch(
            &ws.path(&format!("in/clicks-0009.{format}")),
            format,
            &misfit,
        );
        let err = run(&yaml, RunOptions::default())
            .await
            .expect_err("misfit")
            .to_string();
        assert!(err.contains("clicks-0009"), "{format}: {err}");
        // What was committed stays committed.
        assert_eq!(sink_rows(&ws.path("out")).await, committed, "{format}");
    }
}

#[tokio::test]
async fn file_names_that_need_escaping_are_read_back() {
    let ws = Workspace::new();
    for (n, name) in [
        "clicks~1 a.json",
        "ts=2026-11-01 10%3A00.json",
        "[b]{c}^d.json",
    ]
    .iter()
    .enumerate()
    {
        write_batch(
            &ws.path(&format!("in/{name}")),
            "json",
            &clicks(n as i64 * 10, 10),
        );
    }
    let query = "SELECT id, page FROM clicks";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "");
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!((summary.batches, summary.rows_in), (3, 30));
    assert_eq!(sink_rows(&ws.path("out")).await.len(), 30);
    // A restart re-reads nothing and finds every logged file where the log says.
    assert_eq!(
        run(&yaml, RunOptions::default())
            .await
            .expect("rerun")
            .batches,
        0
    );
}

#[tokio::test]
async fn a_new_checkpoint_over_an_old_output_folder_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let yaml = pipeline_yaml(&ws, "json", "SELECT id FROM clicks", 1, "");
    run(&yaml, RunOptions::default()).await.expect("first run");
    let before = sink_rows(&ws.path("out")).await;
    std::fs::remove_dir_all(ws.path("ckpt")).expect("drop checkpoint");
    let err = run(&yaml, RunOptions::default())
        .await
        .expect_err("foreign sink")
        .to_string();
    assert!(err.contains("another pipeline or checkpoint"), "{err}");
    assert_eq!(
        sink_rows(&ws.path("out")).await,
        before,
        "the old output is untouched"
    );
}

/// A store that does not refuse a second create-only write cannot fence a second run: the run
/// refuses it before writing anything, unless the pipeline says one run at a time is assured
/// from outside.
#[tokio::test]
async fn a_store_without_create_only_writes_is_refused_unless_fencing_is_external() {
    use crate::fault::Faults;
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 50, 0);
    let yaml = pipeline_yaml(&ws, "json", QUERY, 1, "");
    let faults = Faults::ignoring_create_only();
    let err = run(
        &yaml,
        RunOptions {
            store_hook: Some(faults.hook()),
            ..RunOptions::default()
        },
    )
    .await
    .expect_err("refused");
    assert!(
        err.to_string()
            .contains("does not refuse a second create-only write")
            && err.to_string().contains("fencing: external-lock"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
    assert!(!ws.path("ckpt/metadata").exists(), "nothing is written");
    assert!(
        !ws.path("ckpt/_sluice_probe").exists(),
        "the probe is cleaned up"
    );

    let trusting = yaml.replace("trigger:", "fencing: external-lock\ntrigger:");
    let summary = run(
        &trusting,
        RunOptions {
            store_hook: Some(faults.hook()),
            ..RunOptions::default()
        },
    )
    .await
    .expect("runs when one run at a time is assured");
    assert_eq!(summary.batches, 2);
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
}

/// Counts the files under `dir`, recursively.
fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    count_files(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// A thousand tiny batches of a stateful query: the checkpoint (logs, source logs, state
/// versions) and the sink's manifest stay bounded by the retention, not by the batch count.
#[tokio::test]
async fn a_thousand_tiny_batches_keep_the_checkpoint_and_sink_log_bounded() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1000, 1, 0);
    let query = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let yaml = pipeline_yaml(&ws, "json", query, 1, "").replace(
        "trigger:",
        "output_mode: update\nretain_batches: 10\nsnapshot_every: 5\nsync: false\ntrigger:",
    );
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!(summary.batches, 1000);
    let checkpoint = count_files(&ws.path("ckpt"));
    let manifest = count_files(&ws.path("out/_sluice/manifest"));
    println!("after 1000 batches: {checkpoint} checkpoint files, {manifest} manifest entries");
    // offsets and commits: 10 each; source log: up to 2 x 10 entries and a compact one; state:
    // back to the newest snapshot the retained batches need (up to 10 + 5 versions, each a
    // delta or snapshot); metadata, lock, epoch, query, schema.
    assert!(checkpoint <= 10 + 10 + 21 + 15 + 5, "{checkpoint} files");
    assert!(manifest <= 10, "{manifest} manifest entries");
    // Update mode: each one-row batch changes one group, so the changelog has a row per batch.
    assert_eq!(sink_rows(&ws.path("out")).await.len(), 1000);
}

/// The pipeline file of `clicks` (in `in/`) beside a second source `other` (in `other/`, with
/// no file), whose `schema:` line is `other_schema`.
fn two_sources_yaml(ws: &Workspace, other_schema: &str) -> String {
    std::fs::create_dir_all(ws.path("other")).expect("other/");
    let extra = format!(
        "  other:\n    kind: files\n    path: {}\n    format: json\n{other_schema}",
        ws.p("other")
    );
    let query = "SELECT id FROM clicks UNION ALL SELECT id FROM other";
    pipeline_yaml(ws, "json", query, 1, &extra)
}

/// A source with no input yet is normal, in every batch and every run: its offset is logged
/// as `null` ("no offset yet") and it reads as an empty table with its declared columns.
#[tokio::test]
async fn a_source_without_input_is_an_empty_table_in_every_run() {
    let ws = Workspace::new();
    let yaml = two_sources_yaml(&ws, "    schema: { id: bigint }\n");
    for n in 0..2 {
        write_clicks(&ws.path("in"), "json", 1, 10, n);
        let summary = run(&yaml, RunOptions::default())
            .await
            .unwrap_or_else(|e| panic!("run {n}: {e}"));
        assert_eq!((summary.batches, summary.rows_in), (1, 10), "run {n}");
    }
    let logged = std::fs::read_to_string(ws.path("ckpt/offsets/1")).expect("offsets/1");
    assert!(
        logged.contains(r#"{"source":"other","offset":null}"#),
        "{logged}"
    );
    assert_eq!(sink_rows(&ws.path("out")).await.len(), 20);
}

/// A source with neither a schema nor a file cannot give the query its columns, so the other
/// source's input could never run: refused at once, naming the key to set.
#[tokio::test]
async fn a_source_with_no_schema_and_no_file_is_refused_by_name() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    let yaml = two_sources_yaml(&ws, "");
    let err = run(&yaml, RunOptions::default())
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("`sources.other`"), "{err}");
}

/// A rate source (`kind: rate`) in a pipeline: 2,500 rows at 1,000 a second from a start in
/// the past, 1,000 a batch, counted by `value % 3` in complete mode. The oracle is the
/// generator's definition worked out by hand (row `i` is `value = i` at `start + i ms`), and
/// `replay --verify` recomputes a batch to the same output.
#[tokio::test]
async fn a_rate_source_generates_its_rows_and_replays_them() {
    let ws = Workspace::new();
    let yaml = format!(
        r#"
name: rate
checkpoint: {ckpt}
sources:
  ticks:
    kind: rate
    rows_per_second: 1000
    start_time: 2026-01-01T00:00:00Z
    max_rows_per_batch: 1000
    max_rows: 2500
query: |
  SELECT value % 3 AS k, count(*) AS n, CAST(min(timestamp) AS BIGINT) AS first_us,
    max(value) AS top
  FROM ticks GROUP BY value % 3
output_mode: complete
trigger: available-now
sink: {{ kind: files, path: {out}, format: parquet }}
"#,
        ckpt = ws.p("ckpt"),
        out = ws.p("out"),
    );
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!(summary.batches, 3, "1,000 + 1,000 + 500 rows");
    assert_eq!(summary.rows_in, 2500);

    let mut expected: Vec<String> = (0..3_i64)
        .map(|k| {
            let n = (0..2500_i64).filter(|v| v % 3 == k).count();
            let top = (0..2500_i64).filter(|v| v % 3 == k).max().expect("rows");
            // 2026-01-01T00:00:00Z in microseconds, and row k one millisecond per row later.
            let first_us = 1_767_225_600_000_000_i64 + k * 1000;
            format!("{k}|{n}|{first_us}|{top}")
        })
        .collect();
    expected.sort();
    let got = parquet_rows(
        &datafusion::prelude::SessionContext::new(),
        &ws.p("out"),
        "SELECT * FROM sink",
    )
    .await;
    assert_eq!(got, expected);

    let pipeline = write_pipeline(&ws, &yaml);
    let out = run_bin(
        &["replay", &ws.p("ckpt"), "--batch", "1", "--verify"],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let again = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        parquet_rows(
            &datafusion::prelude::SessionContext::new(),
            &ws.p("out"),
            "SELECT * FROM sink",
        )
        .await,
        expected,
        "max_rows reached: a second run adds nothing"
    );
}

/// A batch read while its query runs: one `once` batch of many files, into the files sink as
/// rows come; the sink holds the batch query's rows, the counts of what was read are whole,
/// and `replay --verify` agrees with the hash taken as the rows passed. Then an aggregation of
/// as many groups as rows under a memory limit far below the batch's size.
#[tokio::test]
async fn a_batch_bigger_than_its_memory_limit_streams_through() {
    let ws = Workspace::new();
    let files = 24;
    let per_file = 20_000;
    let total = files as i64 * per_file;
    write_clicks(&ws.path("in"), "json", files, per_file, 0);
    let yaml = pipeline_yaml(&ws, "json", QUERY, 1000, "memory_limit: 16M\n")
        .replace("trigger: available-now", "trigger: once");
    write_pipeline(&ws, &yaml);
    let summary = run(&yaml, RunOptions::default()).await.expect("run");
    assert_eq!(summary.batches, 1);
    assert_eq!(summary.rows_in, total as u64);
    let commit = std::fs::read_to_string(ws.path("ckpt/commits/0")).expect("commits/0");
    assert!(
        commit.contains(&format!("\"files_in\":{files}")),
        "{commit}"
    );
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert!(
        commit.contains(&format!("\"rows_out\":{}", expected.len())),
        "{commit}"
    );
    assert_eq!(sink_rows(&ws.path("out")).await, expected);
    assert_verified(&ws, "ckpt", 0);

    let groups = "SELECT id, count(*) AS n, sum(amount) AS total FROM clicks GROUP BY id";
    let yaml = yaml
        .replace(QUERY, groups)
        .replace(&ws.p("ckpt"), &ws.p("ckpt-groups"))
        .replace(&ws.p("out"), &ws.p("out-groups"))
        .replace("trigger: once", "trigger: once\noutput_mode: complete");
    let summary = run(&yaml, RunOptions::default())
        .await
        .expect("aggregation run");
    assert_eq!(summary.rows_out, total as u64, "one group per id");
    let expected = oracle(&ws.path("in"), "json", groups).await;
    assert_eq!(sink_rows(&ws.path("out-groups")).await, expected);
}

#[tokio::test]
async fn a_memory_limit_that_is_not_a_size_is_refused() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 1, 10, 0);
    for (limit, says) in [("lots", "is not a size"), ("1K", "too small")] {
        let yaml = pipeline_yaml(
            &ws,
            "json",
            "SELECT * FROM clicks",
            1,
            &format!("memory_limit: {limit}\n"),
        );
        let err = run(&yaml, RunOptions::default())
            .await
            .expect_err("refused");
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("memory_limit"), "{err}");
    }
}

/// A source's malformed row, with the advice on how an edit of the pipeline applies.
fn is_bad_row(err: &sluice::Error) -> bool {
    matches!(err, sluice::Error::BadRow { source, .. }
        if matches!(**source, sluice::Error::Source(sluice::source::SourceError::Malformed { .. })))
}

/// A streamed batch counts each file once, however often the query reads it, and reads a
/// file the query never reached (a filter folded to nothing) when it settles, so the counts
/// and the checks of every file are those of the whole batch.
#[tokio::test]
async fn each_file_of_a_batch_is_counted_and_checked_once_however_the_query_reads_it() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 3, 10, 0);
    let once = |ws: &Workspace, query: &str, ckpt: &str| {
        pipeline_yaml(ws, "json", query, 100, "")
            .replace("trigger: available-now", "trigger: once")
            .replace(&ws.p("ckpt"), &ws.p(ckpt))
            .replace(&ws.p("out"), &ws.p(&format!("out-{ckpt}")))
    };
    let commit = |ckpt: &str| {
        std::fs::read_to_string(ws.path(&format!("{ckpt}/commits/0"))).expect("commits/0")
    };
    let twice = "SELECT id FROM clicks UNION ALL SELECT id FROM clicks WHERE amount > 0";
    let summary = run(&once(&ws, twice, "twice"), RunOptions::default())
        .await
        .expect("run");
    assert_eq!(summary.rows_in, 30, "each row once, though read twice");
    assert!(
        commit("twice").contains("\"files_in\":3"),
        "{}",
        commit("twice")
    );
    let none = "SELECT id FROM clicks WHERE 1 = 0";
    let summary = run(&once(&ws, none, "none"), RunOptions::default())
        .await
        .expect("run");
    assert_eq!((summary.rows_in, summary.rows_out), (30, 0));
    assert!(
        commit("none").contains("\"files_in\":3"),
        "{}",
        commit("none")
    );

    // A malformed row in a file the query never reaches still fails the batch, named.
    std::fs::write(ws.path("in/zz-bad.json"), "{\"id\": \"not a number\"}\n").expect("bad file");
    let err = run(&once(&ws, none, "bad"), RunOptions::default())
        .await
        .expect_err("the bad row fails the batch");
    assert!(
        is_bad_row(&err) && err.to_string().contains("zz-bad.json line 1"),
        "{err:?}"
    );
    // The same from a stateful query's operator.
    let grouped = "SELECT page, count(*) AS n FROM clicks GROUP BY page";
    let err = run(
        &once(&ws, grouped, "grouped")
            .replace("trigger: once", "trigger: once\noutput_mode: complete"),
        RunOptions::default(),
    )
    .await
    .expect_err("the bad row fails the batch");
    assert!(
        is_bad_row(&err) && err.to_string().contains("zz-bad.json line 1"),
        "{err:?}"
    );
}
