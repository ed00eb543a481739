//! Faults found by trying Sluice as a new user would, on the inputs of public bug reports: each
//! test is the reported pipeline and input, run through the binary, held to the right answer
//! (the same SQL over the same input as one batch query gives it; each is small enough to
//! check by hand).

use crate::common::*;

/// A workspace holding `files` (name, text) and a pipeline over the source folder `input`,
/// returning the pipeline file.
fn field_case(ws: &Workspace, files: &[(&str, &str)], pipeline: &str) -> std::path::PathBuf {
    for (name, text) in files {
        let path = ws.path(name);
        std::fs::create_dir_all(path.parent().expect("folder")).expect("folder");
        std::fs::write(path, text).expect("input file");
    }
    let yaml = pipeline.replace("{ws}", &ws.dir.path().display().to_string());
    write_pipeline(ws, &yaml)
}

/// The source settings most cases use: JSON lines in `{ws}/input`, one file a batch.
const ONE_JSON_FILE_A_BATCH: &str =
    "kind: files, path: {ws}/input, format: json, max_files_per_batch: 1";

/// A pipeline with the one source `source` (its line under `sources:`), `query`, the top-level
/// keys `extra`, and a JSON lines sink in `{ws}/out`, run to the end of its input.
fn field_yaml(source: &str, query: &str, extra: &str) -> String {
    format!(
        "name: field\ncheckpoint: {{ws}}/ckpt\nsources:\n  {source}\n{extra}query: {query}\n\
         trigger: available-now\nsink: {{ kind: files, path: {{ws}}/out, format: json }}\n"
    )
}

/// The rows of the JSON lines files a files sink wrote to `ws/out`, as `select` returns them.
fn json_sink(ws: &Workspace, select: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_json(
            "sink",
            &ws.p("out"),
            datafusion::prelude::JsonReadOptions::default().file_extension(".jsonl"),
        )
        .await
        .expect("sink");
        sql_rows(&ctx, select).await
    })
}

fn run_ok(pipeline: &std::path::Path, ws: &Workspace) {
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Fault 1: `count(*)` alone (DataFusion answered it from the batch table's statistics, and
/// the plan had no aggregation left to run incrementally).
#[test]
fn a_global_count_alone_counts_the_whole_stream() {
    for count in ["count(*)", "count(1)", "count(value)"] {
        let ws = Workspace::new();
        let pipeline = field_case(
            &ws,
            &[("input/0.json", "{\"value\":1}\n")],
            &field_yaml(
                &format!("input: {{ {ONE_JSON_FILE_A_BATCH} }}"),
                &format!("SELECT {count} AS cnt FROM input"),
                "output_mode: complete\n",
            ),
        );
        run_ok(&pipeline, &ws);
        assert_eq!(json_sink(&ws, "SELECT cnt FROM sink"), ["1"], "{count}");
        std::fs::write(ws.path("input/1.json"), "{\"value\":2}\n{\"value\":3}\n").expect("file");
        run_ok(&pipeline, &ws);
        assert_eq!(json_sink(&ws, "SELECT cnt FROM sink"), ["3"], "{count}");
    }
}

/// Fault 3: update mode writes a row again only when its value changed.
#[test]
fn distinct_on_in_update_mode_writes_an_unchanged_row_once() {
    let ws = Workspace::new();
    let pipeline = field_case(
        &ws,
        &[
            ("input/0.json", "{\"k\":\"a\",\"v\":1}\n"),
            ("input/1.json", "{\"k\":\"a\",\"v\":2}\n"),
        ],
        &field_yaml(
            &format!("input: {{ {ONE_JSON_FILE_A_BATCH} }}"),
            "SELECT DISTINCT ON (k) k, v FROM input ORDER BY k, v",
            "output_mode: update\n",
        ),
    );
    run_ok(&pipeline, &ws);
    assert_eq!(json_sink(&ws, "SELECT k, v FROM sink"), ["a|1"]);
}

/// Fault 4: a FULL OUTER JOIN of a stream with a static table needs the static side's match
/// state across batches: refused by name before any batch, as Spark refuses it.
#[test]
fn a_full_outer_join_with_a_static_table_is_refused_by_name() {
    let ws = Workspace::new();
    let pipeline = field_case(
        &ws,
        &[
            ("pages.csv", "page\nhome\n"),
            ("input/0.json", "{\"page\":\"home\"}\n"),
            ("input/1.json", "{\"page\":\"other\"}\n"),
        ],
        &field_yaml(
            &format!("clicks: {{ {ONE_JSON_FILE_A_BATCH} }}"),
            "SELECT c.page AS clicked, p.page AS known FROM clicks c FULL OUTER JOIN pages p ON c.page = p.page",
            "tables:\n  pages: { kind: files, path: {ws}/pages.csv, format: csv }\n",
        ),
    );
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Full join") && err.contains("static table"),
        "{err}"
    );
    assert!(!ws.path("ckpt/offsets/0").exists(), "no batch was planned");

    // The join that keeps the stream's rows runs, and gives the batch query's rows.
    let yaml = std::fs::read_to_string(&pipeline)
        .expect("pipeline")
        .replace("FULL OUTER JOIN", "LEFT JOIN");
    std::fs::write(&pipeline, yaml).expect("pipeline");
    run_ok(&pipeline, &ws);
    assert_eq!(
        json_sink(&ws, "SELECT clicked, known FROM sink"),
        ["home|home", "other|"]
    );
}

/// Fault 6: compressed input is read by its extension; compressed bytes under a plain name are
/// named for what they look like.
#[test]
fn compressed_json_is_read_by_its_extension() {
    let ws = Workspace::new();
    let pipeline = field_case(
        &ws,
        &[("input/part-0.json", "{\"value\":1}\n")],
        &field_yaml(
            "input: { kind: files, path: {ws}/input, format: json, schema: { value: bigint } }",
            "SELECT value FROM input",
            "",
        ),
    );
    let gzip = |text: &str, to: &str| {
        std::fs::write(ws.path("plain"), text).expect("plain");
        let out = std::process::Command::new("gzip")
            .args(["-c", ws.p("plain").as_str()])
            .output()
            .expect("gzip (Debian's gzip)");
        std::fs::write(ws.path(to), out.stdout).expect("compressed");
        std::fs::remove_file(ws.path("plain")).expect("rm");
    };
    gzip("{\"value\":2}\n{\"value\":3}\n", "input/part-1.json.gz");
    run_ok(&pipeline, &ws);
    assert_eq!(json_sink(&ws, "SELECT value FROM sink"), ["1", "2", "3"]);

    gzip("{\"value\":4}\n", "input/part-2.json");
    let out = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("part-2.json") && err.contains("looks like gzip"),
        "{err}"
    );
}

/// Fault 9: a file rewritten in place at the same size is noticed: replaying the batch that
/// read it names the file and what changed, instead of blaming the query.
#[test]
fn a_file_rewritten_at_the_same_size_is_named_by_replay() {
    let ws = Workspace::new();
    let pipeline = field_case(
        &ws,
        &[
            ("input/0.json", "{\"value\":1}\n"),
            ("input/1.json", "{\"value\":2}\n"),
        ],
        &field_yaml(
            &format!("input: {{ {ONE_JSON_FILE_A_BATCH} }}"),
            "SELECT value FROM input",
            "",
        ),
    );
    run_ok(&pipeline, &ws);
    let ckpt = ws.p("ckpt");
    let verify = |ws: &Workspace| {
        run_bin(
            &["replay", ckpt.as_str(), "--batch", "1", "--verify"],
            ws.dir.path(),
        )
    };
    let out = verify(&ws);
    assert!(out.status.success(), "{}", stderr(&out));

    let file = ws.path("input/1.json");
    let before = std::fs::metadata(&file).expect("meta");
    std::fs::write(&file, "{\"value\":7}\n").expect("rewrite");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| {
            f.set_modified(before.modified().expect("mtime") + std::time::Duration::from_secs(10))
        })
        .expect("mtime");
    assert_eq!(std::fs::metadata(&file).expect("meta").len(), before.len());
    let out = verify(&ws);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("1.json") && said.contains("rewritten in place at the same size"),
        "{said}"
    );
}
