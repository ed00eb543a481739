//! Crash tests: stop the run at every write of a multi-batch run (offsets, source logs, each
//! sink data file, the manifest, publishing, the commit, purging), before and after the write,
//! restart, and check that the sink holds exactly the oracle's rows.

use crate::common::*;
use crate::fault::{CrashAt, Faults};
use sluice::driver::RunOptions;

const QUERY: &str = "SELECT id, page, amount FROM clicks WHERE amount > 30";

/// Runs a pipeline, crashing at `crash`, then restarts it (without faults) until it finishes.
/// Returns the number of restarts.
async fn crash_and_recover(ws: &Workspace, yaml: &str, crash: CrashAt) -> usize {
    let faults = Faults::new(crash);
    let result = run(
        yaml,
        RunOptions {
            store_hook: Some(faults.hook()),
            ..RunOptions::default()
        },
    )
    .await;
    assert!(faults.crashed(), "{crash:?} must be reached");
    let err = result.expect_err("a crashed run fails");
    assert!(
        err.to_string().contains("injected crash"),
        "{crash:?}: {err}"
    );
    let _ = ws;
    run(yaml, RunOptions::default())
        .await
        .expect("restart finishes");
    1
}

/// Counts a clean run's writes, then crashes at each of them in turn.
async fn enumerate_crash_points(format: &str, files: usize, per_batch: usize, retain: u64) {
    let setup = |ws: &Workspace| {
        write_clicks(&ws.path("in"), format, files, 40, 0);
        pipeline_yaml(ws, format, QUERY, per_batch, "")
            .replace("trigger:", &format!("retain_batches: {retain}\ntrigger:"))
    };
    let clean = Workspace::new();
    let yaml = setup(&clean);
    let counter = Faults::new(CrashAt::Never);
    run(
        &yaml,
        RunOptions {
            store_hook: Some(counter.hook()),
            ..RunOptions::default()
        },
    )
    .await
    .expect("clean run");
    let writes = counter.writes();
    let expected = oracle(&clean.path("in"), format, QUERY).await;
    assert_eq!(sink_rows(&clean.path("out")).await, expected);
    assert!(
        writes > 10,
        "a multi-batch run has many writes, got {writes}"
    );

    let (mut points, mut restarts, mut compared, mut dupes, mut losses) = (0, 0, 0, 0, 0);
    for k in 1..=writes {
        for crash in [CrashAt::Before(k), CrashAt::After(k)] {
            let ws = Workspace::new();
            let yaml = setup(&ws);
            restarts += crash_and_recover(&ws, &yaml, crash).await;
            let got = sink_rows(&ws.path("out")).await;
            let (n, d, l) = compare(&expected, &got);
            assert_eq!((d, l), (0, 0), "{crash:?}: {d} duplicates, {l} lost");
            points += 1;
            compared += n;
            dupes += d;
            losses += l;
        }
    }
    println!(
        "crash points ({format}, {files} files, {per_batch} per batch): {writes} writes, {points} crash points tried, \
         {restarts} restarts, {compared} rows compared, {dupes} duplicates, {losses} losses"
    );
    assert_eq!(points as u64, 2 * writes);
}

#[tokio::test]
async fn every_crash_point_of_a_json_run_recovers_exactly_once() {
    enumerate_crash_points("json", 5, 2, 2).await;
}

#[tokio::test]
async fn every_crash_point_of_a_csv_run_recovers_exactly_once() {
    enumerate_crash_points("csv", 4, 1, 100).await;
}

/// Crashes again during recovery: two faults in a row still lose and double nothing.
#[tokio::test]
async fn a_crash_during_recovery_recovers_too() {
    let ws = Workspace::new();
    write_clicks(&ws.path("in"), "json", 4, 40, 0);
    let yaml = pipeline_yaml(&ws, "json", QUERY, 1, "");
    for k in [7, 3, 5, 2] {
        let faults = Faults::new(CrashAt::After(k));
        let _ = run(
            &yaml,
            RunOptions {
                store_hook: Some(faults.hook()),
                ..RunOptions::default()
            },
        )
        .await;
    }
    run(&yaml, RunOptions::default()).await.expect("final run");
    let expected = oracle(&ws.path("in"), "json", QUERY).await;
    assert_eq!(
        compare(&expected, &sink_rows(&ws.path("out")).await),
        (expected.len(), 0, 0)
    );
}
