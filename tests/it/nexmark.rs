//! The `nexmark` source and `queries/nexmark/`: each query runs over the generated events in
//! several batches, and what its sink holds equals the same SQL as one DataFusion batch query
//! over the same events written by `sluice gen nexmark` (an independent path: files, not the
//! source).

use crate::common::*;

/// Events each query runs over here (the files say a million), and per batch.
const EVENTS: u64 = 30_000;
const PER_BATCH: u64 = 7_000;

/// q11's sessions found as one batch query with window functions (a new session where a bid
/// comes more than the gap after the bidder's one before), independent of `session_window`.
const Q11_SESSIONS: &str = "WITH marked AS (SELECT bidder, date_time, CASE WHEN \
    lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time) IS NULL OR date_time > \
    lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time) + INTERVAL '10' SECOND THEN 1 \
    ELSE 0 END AS starts FROM bid), numbered AS (SELECT *, sum(starts) OVER (PARTITION BY \
    bidder ORDER BY date_time ROWS UNBOUNDED PRECEDING) AS session FROM marked) SELECT bidder, \
    min(date_time) AS window_start, max(date_time) + INTERVAL '10' SECOND AS window_end, \
    count(*) AS bid_count FROM numbered GROUP BY bidder, session";

/// The events `sluice gen nexmark` writes at `events_per_second`, as Parquet under `dir`.
fn generate(ws: &Workspace, dir: &str, events_per_second: u64) {
    let generated = run_bin(
        &[
            "gen",
            "nexmark",
            "--events",
            &EVENTS.to_string(),
            "--events-per-second",
            &events_per_second.to_string(),
            "--format",
            "parquet",
            "--out",
            &ws.p(dir),
        ],
        ws.dir.path(),
    );
    assert!(generated.status.success(), "{}", stderr(&generated));
}

/// The watermark the last batch of the checkpoint at `ckpt` closed windows by, in ms.
fn final_watermark_ms(ckpt: &std::path::Path) -> i64 {
    let last = std::fs::read_dir(ckpt.join("commits"))
        .expect("commits")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("a commit");
    let text = std::fs::read_to_string(ckpt.join(format!("commits/{last}"))).expect("commit");
    let commit: serde_json::Value =
        serde_json::from_str(text.lines().nth(1).expect("line 2")).expect("json");
    commit["next_watermark_ms"].as_i64().expect("a watermark")
}

#[tokio::test]
async fn every_nexmark_query_equals_the_batch_sql_over_the_same_events() {
    let ws = Workspace::new();
    generate(&ws, "events", 10_000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut queries: Vec<_> = std::fs::read_dir(root.join("queries/nexmark"))
        .expect("queries/nexmark")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    queries.sort();
    assert!(queries.len() >= 15, "{queries:?}");
    for file in queries {
        let text = std::fs::read_to_string(&file).expect("query file");
        let pipeline: sluice::pipeline::Pipeline =
            sluice::pipeline::Pipeline::parse(&text, &file).expect("parses");
        let name = file
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let side_input = root.join("queries/data/nexmark/side_input.csv");
        let yaml = text
            .replace("max_events: 1000000", &format!("max_events: {EVENTS}"))
            .replace(
                "max_events_per_batch: 250000",
                &format!("max_events_per_batch: {PER_BATCH}"),
            )
            .replace(
                &format!("checkpoints/nexmark_{name}"),
                &ws.p(&format!("ckpt_{name}")),
            )
            .replace(
                &format!("out/nexmark_{name}"),
                &ws.p(&format!("out_{name}")),
            )
            .replace(
                "queries/data/nexmark/side_input.csv",
                side_input.to_str().expect("utf-8"),
            );
        let path = ws.path(&format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("pipeline");
        let out = run_bin(&["run", path.to_str().expect("utf-8")], ws.dir.path());
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let batches = stderr(&out)
            .lines()
            .filter(|l| l.starts_with("batch "))
            .count();
        assert!(
            batches as u64 >= EVENTS.div_ceil(PER_BATCH),
            "{name}: {batches} batches"
        );
        // The same events as files, at the query's rate of event time.
        let rate = text
            .split("events_per_second: ")
            .nth(1)
            .and_then(|rest| rest.split([',', ' ', '}']).next()?.parse::<u64>().ok())
            .unwrap_or(10_000);
        let events = format!("events_{rate}");
        if !ws.path(&events).exists() {
            generate(&ws, &events, rate);
        }
        let ctx = datafusion::prelude::SessionContext::new();
        for table in ["person", "auction", "bid"] {
            ctx.register_parquet(
                table,
                &ws.p(&format!("{events}/{table}")),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .expect("events");
        }
        ctx.register_csv(
            "side_input",
            side_input.to_str().expect("utf-8"),
            datafusion::prelude::CsvReadOptions::new(),
        )
        .await
        .expect("side input");
        let want = match name.as_str() {
            // Append mode writes a session once the final watermark has closed it.
            "q11" => {
                let closed = final_watermark_ms(&ws.path(&format!("ckpt_{name}")));
                sql_rows(
                    &ctx,
                    &format!(
                        "SELECT * FROM ({Q11_SESSIONS}) WHERE window_end <= \
                         arrow_cast({closed}, 'Timestamp(Millisecond, None)')"
                    ),
                )
                .await
            }
            _ => sql_rows(&ctx, &pipeline.query).await,
        };
        let got = sink_rows(&ws.path(&format!("out_{name}"))).await;
        assert!(!want.is_empty(), "{name}: the oracle has rows");
        assert_eq!(got.len(), want.len(), "{name}: rows");
        assert!(got == want, "{name}: the sink differs from the batch SQL");
    }
}

/// The source refuses what would make a replay differ or never end.
#[test]
fn a_changed_generator_and_an_endless_available_now_are_refused() {
    let ws = Workspace::new();
    let yaml = |settings: &str| {
        format!(
            "name: nx\ncheckpoint: {}\nsources:\n  bid: {{ kind: nexmark{settings} }}\n\
             query: SELECT date_time FROM bid\ntrigger: available-now\n\
             sink: {{ kind: files, path: {}, format: json }}\n",
            ws.p("ckpt"),
            ws.p("out")
        )
    };
    let file = write_pipeline(&ws, &yaml(", table: bid"));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("set `max_events`"),
        "{}",
        stderr(&out)
    );
    let file = write_pipeline(&ws, &yaml(", table: bid, max_events: 500"));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let file = write_pipeline(&ws, &yaml(", table: bid, max_events: 900, seed: 3"));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("`seed` or `events_per_second` changed"),
        "{}",
        stderr(&out)
    );
    let file = write_pipeline(&ws, &yaml(", table: auction, max_events: 900"));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("`table` changed"), "{}", stderr(&out));
    let file = write_pipeline(&ws, &yaml(", table: bids"));
    let out = run_bin(&["run", file.to_str().expect("utf-8")], ws.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did you mean `bid`"),
        "{}",
        stderr(&out)
    );
}
