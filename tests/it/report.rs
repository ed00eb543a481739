//! `sluice report --html` on a checkpoint written by a real run, rendered in headless Chromium:
//! the page shows each chart.

use std::path::Path;

use crate::common::*;

/// Headless Chromium's screenshot of `page`, as RGBA rows.
fn screenshot(page: &Path, png: &Path) -> (u32, u32, Vec<u8>) {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is needed: apt-get install chromium (.ci/run installs it)");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,2200",
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success() && png.exists(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png).expect("screenshot"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("png frame");
    buffer.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buffer,
        png::ColorType::Rgb => buffer
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("screenshot colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// Pixels within a small distance of `rgb`.
fn pixels_like(rgba: &[u8], rgb: (u8, u8, u8)) -> usize {
    rgba.chunks(4)
        .filter(|p| {
            let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).abs();
            d(p[0], rgb.0) + d(p[1], rgb.1) + d(p[2], rgb.2) <= 24
        })
        .count()
}

/// A windowed aggregation over six batches: the report charts phases, rows per second, state
/// rows and the watermark, and Chromium shows each (more of each colour than its legend key).
#[test]
fn report_renders_its_charts_in_headless_chromium() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 6, 40, 0);
    let query = "SELECT date_bin(INTERVAL '10 seconds', ts) AS w, page, count(*) AS n \
                 FROM clicks GROUP BY 1, 2";
    let yaml = pipeline_yaml(
        &ws,
        "json",
        query,
        1,
        "    watermark: { column: ts, delay: 5s }\n",
    );
    let pipeline = write_pipeline(&ws, &yaml);
    let run = run_bin(&["run", pipeline.to_str().expect("utf-8")], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    let commits = std::fs::read_dir(ws.path("ckpt/commits"))
        .expect("commits/")
        .count();
    assert!(commits >= 6, "{commits} batches");

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
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{commits} batches charted")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let html = std::fs::read_to_string(&page).expect("report");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
    for id in ["durations", "rate", "state", "watermark"] {
        let start = html
            .find(&format!("id=\"chart-{id}\""))
            .unwrap_or_else(|| panic!("chart {id}"));
        let figure = &html[start..start + html[start..].find("</figure>").expect("end")];
        assert!(figure.contains("<svg"), "chart {id} is drawn");
    }
    assert_eq!(
        html.matches("<tr><td>").count(),
        commits,
        "one table row per batch"
    );
    // Walk 33 (4): rows/s left the commit phase out, so it differed from `inspect`'s sum.
    let entry = std::fs::read_to_string(ws.path("ckpt/commits/0")).expect("commits/0");
    let entry: serde_json::Value =
        serde_json::from_str(entry.lines().nth(1).expect("entry line")).expect("json");
    let d = &entry["durations"];
    let ms: f64 = ["plan_ms", "offsets_ms", "execute_ms", "commit_ms"]
        .iter()
        .map(|k| d[k].as_f64().expect("a duration"))
        .sum();
    let rate = entry["rows_in"].as_f64().expect("rows_in") / (ms / 1000.0);
    let row = html
        .split("<tr><td>")
        .nth(1)
        .expect("batch 0's row")
        .split("</tr>")
        .next()
        .expect("row");
    let cells: Vec<&str> = row
        .split("</td><td>")
        .map(|c| c.trim_end_matches("</td>"))
        .collect();
    assert_eq!(cells[0], "0", "{row}");
    assert_eq!(cells[12], format!("{rate:.0}"), "rows/s: {row}");

    let (width, height, rgba) = screenshot(&page, &ws.path("report.png"));
    assert_eq!((width, height), (1100, 2200));
    // Colours of src/cli/report.rs: execute bars, rows/s, the state store, the watermark.
    for (what, rgb, least) in [
        ("execute bars", (0x59, 0xa1, 0x4f), 400),
        ("rows/s line", (0xe1, 0x57, 0x59), 150),
        ("state rows line", (0x76, 0xb7, 0xb2), 150),
        ("watermark line", (0xb0, 0x7a, 0xa1), 150),
    ] {
        let seen = pixels_like(&rgba, rgb);
        assert!(
            seen >= least,
            "{what}: {seen} pixels of its colour, expected {least}+"
        );
    }
}

/// Walk 63 (2-4): the report showed rows in and out only, so a run that skipped malformed rows
/// looked clean; its totals read as the pipeline's own though older batches were purged; and a
/// batch that failed at every start looked, in `inspect` and the report, like one waiting to
/// run. The skipped and late rows are in the summary and the batch table, the totals say which
/// batches they are of, and a pending batch a run failed on says so, with the error.
#[test]
fn the_report_and_inspect_say_skipped_rows_and_a_batch_that_failed() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).expect("in");
    std::fs::write(ws.path("in/0.csv"), "id,name\n1,a\nx,b\n3,c\n").expect("input");
    let pipeline = write_pipeline(
        &ws,
        &format!(
            "name: skipped\ncheckpoint: {ckpt}\nsources:\n  s: {{ kind: files, path: {input}, \
             format: csv, on_error: skip, max_files_per_batch: 1, columns: [{{name: id, type: \
             bigint}}, {{name: name, type: string}}] }}\nquery: SELECT * FROM s\ntrigger: \
             available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            out = ws.p("out"),
        ),
    );
    let p = pipeline.to_str().expect("utf-8");
    let run = run_bin(&["run", p, "--progress", "none"], ws.dir.path());
    assert!(run.status.success(), "{}", stderr(&run));
    // A file of another header fails its batch at every start.
    std::fs::write(ws.path("in/1.csv"), "id,name,extra\n4,d,e\n").expect("input");
    for _ in 0..2 {
        let run = run_bin(&["run", p, "--progress", "none"], ws.dir.path());
        assert!(!run.status.success(), "{}", stderr(&run));
    }
    let ckpt = ws.p("ckpt");
    let inspect = run_bin(&["inspect", &ckpt], ws.dir.path());
    let said = String::from_utf8_lossy(&inspect.stdout).to_string();
    assert!(
        said.contains("batch 1 (runs again on the next start; the last run FAILED on it)")
            && said.contains("1.csv"),
        "{said}"
    );
    let json = run_bin(&["inspect", &ckpt, "--json"], ws.dir.path());
    let view: serde_json::Value = serde_json::from_slice(&json.stdout).expect("inspect --json");
    assert_eq!(view["pending_failure"]["batch"], 1, "{view}");
    let page = report_page(&ws, &ckpt);
    assert!(
        page.contains(
            "<tr><th>rows skipped (malformed, <code>on_error: skip</code>)</th><td>1</td></tr>"
        ) && page.contains("the last run FAILED on it")
            && page.contains("1.csv")
            && page.contains("<th>rows skipped or lost</th>"),
        "{page}"
    );
}

/// Walk 73: with `commits/` deleted, the report called the checkpoint's last batch pending,
/// to "run again on the next start", where a run refuses it and `inspect` says INCONSISTENT.
/// The page says what `inspect` says, with the way out, and that the batch does not run.
#[test]
fn the_report_says_a_checkpoint_a_run_refuses_is_inconsistent() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 2, 10, 0);
    let pipeline = write_pipeline(
        &ws,
        &format!(
            "name: gone\ncheckpoint: {ckpt}\nsources:\n  c: {{ kind: files, path: {input}, \
             format: json, max_files_per_batch: 1 }}\nquery: SELECT * FROM c\ntrigger: \
             available-now\nsink: {{ kind: files, path: {out}, format: json }}\n",
            ckpt = ws.p("ckpt"),
            input = ws.p("in"),
            out = ws.p("out"),
        ),
    );
    let run = run_bin(
        &[
            "run",
            pipeline.to_str().expect("utf-8"),
            "--progress",
            "none",
        ],
        ws.dir.path(),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    std::fs::remove_dir_all(ws.path("ckpt/commits")).expect("remove commits");
    let ckpt = ws.p("ckpt");
    let inspect = run_bin(&["inspect", &ckpt], ws.dir.path());
    let said = String::from_utf8_lossy(&inspect.stdout).to_string();
    let reason = said
        .lines()
        .find_map(|l| l.strip_prefix("INCONSISTENT "))
        .unwrap_or_else(|| panic!("inspect: {said}"))
        .to_string();
    let page = report_page(&ws, &ckpt);
    let escaped = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        page.contains(&format!("INCONSISTENT: {escaped}"))
            && page.contains("batch 1 does not run again until the checkpoint is mended")
            && !page.contains("runs again on the next start"),
        "{page}"
    );
}

/// Audit 88a: a committed batch whose offsets entry was gone was left out of the page unsaid,
/// its totals short; a damaged newest commit read as healthy; a damaged batch 0 was said purged
/// by the retention; and `--html` into the checkpoint overwrote its `metadata`.
#[test]
fn the_report_says_what_it_leaves_out_and_writes_no_file_of_the_checkpoint() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 10, 0);
    let pipeline = write_pipeline(
        &ws,
        &pipeline_yaml(&ws, "json", "SELECT * FROM clicks", 1, ""),
    );
    let run = run_quietly(&pipeline, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let ckpt = ws.p("ckpt");
    let page = report_page(&ws, &ckpt);
    assert!(
        page.contains("<td>4 (0 to 3)</td>") && page.contains("40 / 40"),
        "{page}"
    );

    // Batch 1's offsets entry gone: left out, said, the totals marked partial.
    std::fs::remove_file(ws.path("ckpt/offsets/1")).expect("rm");
    let html = ws.path("report.html");
    let out = run_bin(
        &["report", &ckpt, "--html", html.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("batch 1 is left out: its entry offsets/1 is missing"),
        "{}",
        stderr(&out)
    );
    let page = std::fs::read_to_string(&html).expect("page");
    assert!(
        page.contains("3 (0 to 3; <strong>left out, their entries do not read</strong>: batch 1")
            && page.contains("rows in / out (of the batches charted)</th><td>30 / 30"),
        "{page}"
    );

    // Batch 0's commit damaged: left out, not said purged.
    std::fs::write(ws.path("ckpt/commits/0"), "").expect("damage");
    let page = report_page(&ws, &ckpt);
    assert!(
        page.contains("left out, their entries do not read</strong>: batch 0")
            && !page.contains("purged by the retention"),
        "{page}"
    );

    // The newest commit damaged: what inspect says, INCONSISTENT.
    std::fs::write(ws.path("ckpt/commits/3"), "garbage").expect("damage");
    let page = report_page(&ws, &ckpt);
    assert!(page.contains("INCONSISTENT: checkpoint file"), "{page}");
    assert!(page.contains("commits/3"), "{page}");

    // The page is never written into the checkpoint.
    let metadata = std::fs::read(ws.path("ckpt/metadata")).expect("metadata");
    for target in [ws.p("ckpt/metadata"), ws.p("ckpt"), ws.p("ckpt/new.html")] {
        let out = run_bin(&["report", &ckpt, "--html", &target], ws.dir.path());
        assert_eq!(out.status.code(), Some(2), "{target}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("write the page outside it"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read(ws.path("ckpt/metadata")).expect("metadata"),
        metadata
    );
    assert!(!ws.path("ckpt/new.html").exists());
    // Walk 121 (5): nor over a sink's file, a source's or the pipeline file; over an earlier
    // page, it is.
    let part = std::fs::read_dir(ws.path("out"))
        .expect("out")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .expect("a sink file");
    let source = ws.path("in/clicks-0000.json");
    // Walk 123 (6): nor a new page in a source's folder, which the next run read as input
    // and failed on, or in the sink's.
    let new_page = ws.path("in/report.html");
    for (target, says) in [
        (&part, "is inside the sink's folder"),
        (&source, "is inside `clicks`'s folder"),
        (&new_page, "is inside `clicks`'s folder"),
        (&pipeline, "a file that is no HTML page is there"),
    ] {
        let before = std::fs::read(target).ok();
        let out = run_bin(
            &["report", &ckpt, "--html", target.to_str().expect("utf-8")],
            ws.dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert_eq!(std::fs::read(target).ok(), before);
    }
    // A folder that is no checkpoint is said so first.
    let out = run_bin(
        &["report", &ws.p("in"), "--html", &ws.p("in/x.html")],
        ws.dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("inside the checkpoint") && !ws.path("in/x.html").exists(),
        "{}",
        stderr(&out)
    );
    let out = run_bin(
        &["report", &ckpt, "--html", html.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The page `sluice report CKPT --html` writes for checkpoint `ckpt` of `ws` (the command
/// must succeed).
fn report_page(ws: &Workspace, ckpt: &str) -> String {
    let html = ws.path("report.html");
    let report = run_bin(
        &["report", ckpt, "--html", html.to_str().expect("utf-8")],
        ws.dir.path(),
    );
    assert!(report.status.success(), "{}", stderr(&report));
    std::fs::read_to_string(&html).expect("page")
}
