//! `sluice report CHECKPOINT --html FILE`: one self-contained HTML page with charts over the
//! batches the checkpoint retains: the duration of each phase, input rows per second, the rows
//! in each state store, and the watermark against wall time.
//!
//! The charts are SVG drawn by `plotters` and inlined in the page, so it needs no script, no
//! network and no other file to show them.

use std::fmt::Write;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::Error;
use crate::checkpoint::{
    self, BatchId, Checkpoint, CommitEntry, LogListing, Metadata, OffsetsEntry,
};

/// One committed batch, as the report charts it.
struct Batch {
    batch: BatchId,
    offsets: OffsetsEntry,
    commit: CommitEntry,
}

impl Batch {
    /// Time spent on the batch up to writing its commit, in milliseconds, as `inspect` sums
    /// it (the commit entry's own write is timed after the entry is written, so the entry
    /// cannot hold it: the run's progress line, which counts it, says a little more).
    fn duration_ms(&self) -> f64 {
        let d = &self.commit.durations;
        d.plan_ms + d.offsets_ms + d.execute_ms + d.commit_ms
    }

    fn rows_per_second(&self) -> f64 {
        let seconds = self.duration_ms() / 1000.0;
        if seconds > 0.0 {
            self.commit.rows_in as f64 / seconds
        } else {
            0.0
        }
    }
}

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;
/// Phase colours (also what the headless-browser test looks for).
const PLAN: RGBColor = RGBColor(0x4e, 0x79, 0xa7);
const OFFSETS: RGBColor = RGBColor(0xf2, 0x8e, 0x2b);
const EXECUTE: RGBColor = RGBColor(0x59, 0xa1, 0x4f);
const COMMIT: RGBColor = RGBColor(0x9c, 0x75, 0x5f);
const RATE: RGBColor = RGBColor(0xe1, 0x57, 0x59);
const WATERMARK: RGBColor = RGBColor(0xb0, 0x7a, 0xa1);
const STATE: [RGBColor; 4] = [
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0xba, 0xb0, 0xac),
];

pub(super) async fn run(spec: &str, html: &std::path::Path) -> Result<(), Error> {
    let location = super::open_checkpoint(spec)?;
    // A folder that is no checkpoint is said so first (walk 123: `report /` said the page
    // was "inside the checkpoint /").
    let metadata = Checkpoint::read_metadata(&location)
        .await?
        .ok_or_else(|| Error::Usage(crate::checkpoint::not_a_checkpoint(spec)))?;
    // The page is no file of the checkpoint's (audit 88a: `--html CHECKPOINT/metadata`
    // overwrote it).
    if let Some(how) = crate::pipeline::overlap(&html.to_string_lossy(), spec) {
        return Err(Error::Usage(format!(
            "--html {}: {how} the checkpoint {spec}, whose files are the checkpoint's own; \
             write the page outside it",
            html.display()
        )));
    }
    let logs = LogListing::read(&location).await?;
    // Nor in a folder the pipeline reads or writes (walk 123 (6): a page in its source folder
    // failed the next run, "report.html line 1: not valid JSON").
    if let Some(&newest) = logs.offsets.last()
        && let Ok(Some(entry)) = checkpoint::read_offsets(&location, newest).await
        && let Some(fingerprint) = entry.info.pipeline
        && let Ok(Some(pipeline)) =
            crate::driver::stored_pipeline(&location, spec, &fingerprint).await
        && let Some(why) = in_pipeline_folder(html, &pipeline)
    {
        return Err(Error::Usage(format!(
            "--html {}: {why}; write the page outside it",
            html.display()
        )));
    }
    let mut batches = Vec::new();
    // Committed batches whose entries do not read, and why: left out of the charts and the
    // totals, said on stderr and on the page (audit 88a: a batch whose offsets entry was gone
    // was left out unsaid, the totals short).
    let mut left_out = Vec::new();
    // The newest commit or offsets entry damaged stops every run, as `inspect` says.
    let mut newest_damaged = None;
    for &batch in &logs.commits {
        let why = match (
            checkpoint::read_offsets(&location, batch).await,
            checkpoint::read_commit(&location, batch).await,
        ) {
            (Ok(Some(offsets)), Ok(Some(commit))) => {
                batches.push(Batch {
                    batch,
                    offsets,
                    commit,
                });
                continue;
            }
            (Ok(None), _) => format!("its entry offsets/{batch} is missing"),
            (_, Ok(None)) => format!("its entry commits/{batch} is missing"),
            (Err(e @ checkpoint::CheckpointError::Corrupt { .. }), _)
            | (_, Err(e @ checkpoint::CheckpointError::Corrupt { .. })) => {
                let shown = Error::from(e).shown_in(spec);
                if Some(&batch) == logs.commits.last() {
                    newest_damaged = Some(shown.clone());
                }
                shown
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        crate::say!("batch {batch} is left out: {why}");
        left_out.push((batch, why));
    }
    if newest_damaged.is_none()
        && let Some(newest) = logs.offsets.last()
        && !logs.commits.contains(newest)
        && let Err(e @ checkpoint::CheckpointError::Corrupt { .. }) =
            checkpoint::read_offsets(&location, *newest).await
    {
        newest_damaged = Some(Error::from(e).shown_in(spec));
    }
    let pending = logs
        .offsets
        .last()
        .copied()
        .filter(|b| !logs.commits.contains(b));
    let failure = match pending {
        Some(batch) => Checkpoint::read_failure(&location, batch).await,
        None => None,
    };
    // A source log entry or a state file the next run needs, gone or damaged, stops it as
    // well, as `inspect` says (walk 99: the page called such a checkpoint healthy).
    let mut state_damaged = None;
    if newest_damaged.is_none()
        && let Some(&newest) = logs.offsets.last()
    {
        newest_damaged = crate::ops::source_log_damage(&location, spec, newest)
            .await
            .into_iter()
            .map(|(_, damage)| damage)
            .next();
        if newest_damaged.is_none()
            && let Some(&committed) = logs.commits.last()
        {
            let pipeline = match checkpoint::read_offsets(&location, newest).await {
                Ok(Some(entry)) => match entry.info.pipeline {
                    Some(f) => crate::driver::stored_pipeline(&location, spec, &f)
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                },
                _ => None,
            };
            state_damaged =
                crate::ops::state_damage(&location, spec, committed, true, pipeline.as_ref())
                    .await
                    .0
                    .into_iter()
                    .next();
        }
    }
    // A checkpoint a run refuses is said so, as `inspect` says it (walk 73: the page called a
    // checkpoint without its commits healthy, its pending batch to "run again").
    let stuck = match checkpoint::check_no_rewind_under_way(&location).await {
        Err(e) => Some(format!(
            "REWIND UNFINISHED: {}",
            crate::Error::from(e).shown_in(spec)
        )),
        Ok(()) => match crate::checkpoint::recovery::decide(&logs) {
            crate::checkpoint::recovery::Decision::Inconsistent { reason } => Some(format!(
                "INCONSISTENT: {reason}{}",
                crate::checkpoint::recovery::way_out(&logs, spec)
            )),
            // A damaged newest entry stops every run as well (audit 88a: the page called such
            // a checkpoint healthy).
            _ => newest_damaged
                .map(|why| format!("INCONSISTENT: {why}"))
                .or_else(|| state_damaged.map(|why| format!("STATE DAMAGED: {why}"))),
        },
    };
    let page = render(
        spec,
        &metadata,
        &batches,
        Charted {
            oldest_committed: logs.commits.first().copied(),
            left_out: &left_out,
        },
        Pending {
            batch: pending,
            failure: failure.as_ref(),
            stuck: stuck.as_deref(),
        },
    )
    .map_err(|e| Error::Usage(format!("cannot draw the report of {spec}: {e}")))?;
    // An object-store URL (`s3://bucket/report.html`) is written there, as a checkpoint is.
    let target = html.to_string_lossy();
    if let Some(why) = crate::secret::url_secret(&target) {
        return Err(Error::Usage(format!(
            "--html {}: {why}",
            crate::secret::redact_url(&target)
        )));
    }
    match target
        .split_once("://")
        .and_then(|_| target.rsplit_once('/'))
    {
        Some((folder, name)) if !name.is_empty() => {
            let store = crate::storage::Location::open(folder, false, false, None)?;
            store
                .put(&store.path(name), page.into_bytes())
                .await
                .map_err(|e| Error::Usage(format!("cannot write {target}: {e}")))?;
        }
        _ => {
            // Over an earlier page only (walk 121: `--html` a sink's file, a source's or the
            // pipeline file wrote over it, and the batch's rows were gone for good).
            let mut head = [0u8; 15];
            if let Ok(mut there) = std::fs::File::open(html) {
                use std::io::Read as _;
                let read = there.read(&mut head).unwrap_or(0);
                if read > 0 && !head[..read].eq_ignore_ascii_case(&b"<!DOCTYPE html>"[..read]) {
                    return Err(Error::Usage(format!(
                        "--html {}: a file that is no HTML page is there (a report writes over \
                         an earlier page only, never data): give the page another path",
                        html.display()
                    )));
                }
            }
            std::fs::write(html, page)
                .map_err(|e| Error::Usage(format!("cannot write {}: {e}", html.display())))?
        }
    }
    super::emit(&format!(
        "{}: {} batches charted from {spec}\n",
        html.display(),
        batches.len()
    ));
    Ok(())
}

/// Why a page at `html` (a local path) would be read or written by `pipeline`: inside (or at)
/// one of its sources' or tables' folders, which a run reads, or its sink's or late-rows
/// sink's, whose readers read every file there. Relative folders are the ones the pipeline's
/// runs resolved.
fn in_pipeline_folder(
    html: &std::path::Path,
    pipeline: &crate::pipeline::Pipeline,
) -> Option<String> {
    let page = std::path::absolute(html).ok()?;
    let page = page.to_string_lossy();
    let resolved = |folder: String| match pipeline.ran_in() {
        Some(ran_in) if !folder.contains("://") && std::path::Path::new(&folder).is_relative() => {
            ran_in.join(&folder).to_string_lossy().to_string()
        }
        _ => folder,
    };
    let read = pipeline
        .sources
        .iter()
        .chain(&pipeline.tables)
        .filter_map(|(name, c)| Some((format!("`{name}`'s folder"), c.connector().location()?)))
        .map(|(what, folder)| (what, folder, "a run would read it as input"));
    let written = [Some(&pipeline.sink), pipeline.late_rows.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.connector().location())
        .map(|folder| {
            (
                "the sink's folder".to_string(),
                folder,
                "its readers would read it with the output",
            )
        });
    read.chain(written).find_map(|(what, folder, then)| {
        let folder = resolved(folder);
        crate::pipeline::overlap(&page, &folder)
            .filter(|how| *how != "holds")
            .map(|how| format!("{how} {what} {folder}: {then}"))
    })
}

/// The checkpoint's pending batch, as the page says it.
struct Pending<'a> {
    /// The batch logged and not committed.
    batch: Option<BatchId>,
    /// How the last run failed on it.
    failure: Option<&'a crate::checkpoint::FailureRecord>,
    /// Why no run goes on from the checkpoint as it is, and the way out.
    stuck: Option<&'a str>,
}

/// Which committed batches the page charts, beside those it has.
struct Charted<'a> {
    /// The oldest batch the commit log holds (older ones are purged by the retention).
    oldest_committed: Option<BatchId>,
    /// Committed batches whose entries do not read, and why.
    left_out: &'a [(BatchId, String)],
}

/// The whole page.
fn render(
    spec: &str,
    metadata: &Metadata,
    batches: &[Batch],
    charted: Charted<'_>,
    pending: Pending<'_>,
) -> Result<String, String> {
    let mut page = String::new();
    let title = format!("Sluice report: {}", metadata.name);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n\
         <style>\nbody {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
         figure {{ margin: 1.5em 0; }} figcaption {{ font-weight: bold; margin-bottom: .3em; }}\n\
         table {{ border-collapse: collapse; font-size: 90%; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; }}\n\
         .none {{ color: #777; font-style: italic; }}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let sum = |of: fn(&CommitEntry) -> u64| batches.iter().map(|b| of(&b.commit)).sum::<u64>();
    let (rows_in, rows_out) = (sum(|c| c.rows_in), sum(|c| c.rows_out));
    // The totals are of the batches charted: older ones' entries are gone with the retention,
    // and damaged or missing ones are left out.
    let purged = charted.oldest_committed.is_some_and(|b| b.0 > 0);
    let of_charted = match purged || !charted.left_out.is_empty() {
        true => " (of the batches charted)",
        false => "",
    };
    let left_out = charted
        .left_out
        .iter()
        .map(|(b, why)| format!("batch {b} ({why})"))
        .collect::<Vec<_>>();
    let charted = match (batches.first(), batches.last()) {
        (Some(a), Some(b)) => format!(
            "{} ({}{}{})",
            batches.len(),
            crate::vocab::span(a.batch, b.batch),
            if purged {
                "; older ones are purged by the retention"
            } else {
                ""
            },
            match left_out.is_empty() {
                true => String::new(),
                false => format!(
                    "; <strong>left out, their entries do not read</strong>: {}",
                    escape(&left_out.join("; "))
                ),
            }
        ),
        _ if !left_out.is_empty() => format!(
            "none; <strong>left out, their entries do not read</strong>: {}",
            escape(&left_out.join("; "))
        ),
        _ => "none".into(),
    };
    let _ = write!(
        page,
        "<table class=\"summary\">\n<tr><th>checkpoint</th><td>{}</td></tr>\n\
         <tr><th>pipeline id</th><td>{}</td></tr>\n<tr><th>created</th><td>{}</td></tr>\n\
         <tr><th>committed batches charted</th><td>{charted}</td></tr>\n\
         <tr><th>pending batch</th><td>{}</td></tr>\n\
         <tr><th>rows in / out{of_charted}</th><td>{rows_in} / {rows_out}</td></tr>\n\
         <tr><th>rows skipped (malformed, <code>on_error: skip</code>){of_charted}</th>\
         <td>{}</td></tr>\n\
         <tr><th>late rows (behind the watermark){of_charted}</th><td>{}</td></tr>\n",
        escape(spec),
        metadata.id,
        escape(&metadata.created),
        match (pending.batch, pending.failure, pending.stuck) {
            (_, _, Some(stuck)) => format!(
                "<strong>{}</strong>{}",
                escape(stuck),
                pending.batch.map_or(String::new(), |b| format!(
                    "<br>batch {b} does not run again until the checkpoint is mended"
                ))
            ),
            (None, _, _) => "none".into(),
            (Some(b), None, _) => format!("{b} (runs again on the next start)"),
            (Some(b), Some(failure), _) => format!(
                "<strong>{b}: the last run FAILED on it</strong> (it runs again on the next \
                 start)<br>{}",
                escape(&super::inspect::failure_line(failure))
            ),
        },
        // The commit's `rows_skipped` counts rows lost from their source too, said apart
        // below (walk 95: lost messages said as malformed).
        sum(|c| c.rows_skipped.saturating_sub(c.rows_lost)),
        sum(|c| c.rows_late),
    );
    let lost = sum(|c| c.rows_lost);
    if lost > 0 {
        let _ = writeln!(
            page,
            "<tr><th>rows lost (input gone before it was read){of_charted}</th>\
             <td><strong>{lost}</strong></td></tr>"
        );
    }
    page.push_str("</table>\n");
    if batches.is_empty() {
        page.push_str("<p class=\"none\">No committed batch to chart.</p>\n");
    } else {
        figure(
            &mut page,
            "durations",
            "Duration of each phase per batch (ms)",
            Some(phases_chart(batches)?),
            "",
        );
        figure(
            &mut page,
            "rate",
            "Input rows per second per batch (over its time up to its commit entry, as \
             `sluice inspect` sums it; the run's progress line also counts writing that entry)",
            Some(line_chart(
                "batch",
                "rows/s",
                &[(
                    "input rows/s".into(),
                    RATE,
                    batches
                        .iter()
                        .map(|b| (b.batch.0 as f64, b.rows_per_second()))
                        .collect(),
                )],
                &batch_label,
                &number_label,
            )?),
            "",
        );
        let operators: Vec<String> = {
            let mut names: Vec<String> = batches
                .iter()
                .flat_map(|b| b.commit.state.iter().map(|s| s.operator.clone()))
                .collect();
            names.sort();
            names.dedup();
            names
        };
        let state = (!operators.is_empty())
            .then(|| {
                let series: Vec<_> = operators
                    .iter()
                    .enumerate()
                    .map(|(i, op)| {
                        let points = batches
                            .iter()
                            .filter_map(|b| {
                                let s = b.commit.state.iter().find(|s| &s.operator == op)?;
                                Some((b.batch.0 as f64, s.rows_total as f64))
                            })
                            .collect();
                        (op.clone(), STATE[i % STATE.len()], points)
                    })
                    .collect();
                line_chart("batch", "rows", &series, &batch_label, &count_label)
            })
            .transpose()?;
        figure(
            &mut page,
            "state",
            "Rows in each state store after each batch",
            state,
            "No stateful operator: the query keeps no state.",
        );
        let watermarks: Vec<(f64, f64)> = batches
            .iter()
            .filter_map(|b| {
                let wm = b.offsets.info.watermark_ms?;
                Some((b.offsets.info.batch_timestamp_ms as f64, wm as f64))
            })
            .collect();
        let watermark = (!watermarks.is_empty())
            .then(|| {
                let (x_label, x_day) = time_axis(watermarks.iter().map(|p| p.0));
                let (y_label, y_day) = time_axis(watermarks.iter().map(|p| p.1));
                line_chart(
                    &format!("wall time: the batch's timestamp (UTC{x_day})"),
                    &format!("watermark: event time (UTC{y_day})"),
                    &[("watermark".into(), WATERMARK, watermarks.clone())],
                    &x_label,
                    &y_label,
                )
            })
            .transpose()?;
        figure(
            &mut page,
            "watermark",
            "Watermark against wall time",
            watermark,
            "No watermark: no source declares one, or no batch has set it yet.",
        );
        batch_table(&mut page, batches);
    }
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

fn figure(page: &mut String, id: &str, caption: &str, svg: Option<String>, none: &str) {
    let _ = write!(
        page,
        "<figure class=\"chart\" id=\"chart-{id}\">\n<figcaption>{}</figcaption>\n",
        escape(caption)
    );
    match svg {
        Some(svg) => page.push_str(&svg),
        None => {
            let _ = write!(page, "<p class=\"none\">{}</p>", escape(none));
        }
    }
    page.push_str("\n</figure>\n");
}

/// A chart's axes: ranges, descriptions and label formats.
struct Axes<'f> {
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    x_desc: &'f str,
    y_desc: &'f str,
    x_label: &'f dyn Fn(&f64) -> String,
    y_label: &'f dyn Fn(&f64) -> String,
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One chart as SVG: the axes and grid, what `draw` adds, and the legend of its series.
fn svg_chart(
    axes: Axes<'_>,
    draw: impl FnOnce(&mut Chart<'_, '_>) -> Result<(), String>,
) -> Result<String, String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(axes.x, axes.y)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .x_labels(8)
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .x_label_formatter(axes.x_label)
            .y_label_formatter(axes.y_label)
            .draw()
            .map_err(|e| fail(&e))?;
        draw(&mut chart)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// Stacked bars: plan, offsets and execute (query, sink and state), per batch.
fn phases_chart(batches: &[Batch]) -> Result<String, String> {
    let first = batches.first().map_or(0, |b| b.batch.0) as f64;
    let last = batches.last().map_or(0, |b| b.batch.0) as f64;
    // Headroom above the tallest bar for the legend.
    let top = batches
        .iter()
        .map(Batch::duration_ms)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.4;
    let axes = Axes {
        x: first - 0.5..last + 0.5,
        y: 0.0..top,
        x_desc: "batch",
        y_desc: "ms",
        x_label: &batch_label,
        y_label: &number_label,
    };
    svg_chart(axes, |chart| {
        let width = 0.4;
        let layers: [Layer; 4] = [
            ("plan", PLAN, |b| b.commit.durations.plan_ms),
            ("offsets", OFFSETS, |b| b.commit.durations.offsets_ms),
            ("execute (query, sink, state)", EXECUTE, |b| {
                b.commit.durations.execute_ms
            }),
            ("commit (state version, fence check)", COMMIT, |b| {
                b.commit.durations.commit_ms
            }),
        ];
        let mut bases = vec![0.0; batches.len()];
        for (name, color, value) in layers {
            let bars: Vec<_> = batches
                .iter()
                .zip(bases.iter_mut())
                .map(|(b, base)| {
                    let x = b.batch.0 as f64;
                    let from = *base;
                    *base += value(b);
                    Rectangle::new([(x - width, from), (x + width, *base)], color.filled())
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        Ok(())
    })
}

/// One layer of stacked bars: its name, colour and value per batch.
type Layer = (&'static str, RGBColor, fn(&Batch) -> f64);

/// One line: its name, colour and points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// Lines with points, one per series.
fn line_chart(
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    x_label: &dyn Fn(&f64) -> String,
    y_label: &dyn Fn(&f64) -> String,
) -> Result<String, String> {
    let points = || series.iter().flat_map(|(_, _, p)| p.iter().copied());
    let bounds = |pick: fn((f64, f64)) -> f64| {
        points()
            .map(pick)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    // A little room around the points, and some span where all are equal.
    let padded = |(lo, hi): (f64, f64)| {
        let span = (hi - lo).abs().max(1.0);
        lo - span * 0.05..hi + span * 0.05
    };
    let axes = Axes {
        x: padded(bounds(|p| p.0)),
        y: padded(bounds(|p| p.1)),
        x_desc,
        y_desc,
        x_label,
        y_label,
    };
    svg_chart(axes, |chart| {
        for (name, color, points) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(3),
                ))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
                });
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Every batch as a row: what the charts show, as numbers.
fn batch_table(page: &mut String, batches: &[Batch]) {
    page.push_str(
        "<details>\n<summary>Batches</summary>\n<table class=\"batches\">\n<tr><th>batch</th>\
         <th>timestamp (UTC)</th><th>watermark (UTC)</th><th>rows in</th><th>rows out</th>\
         <th>rows skipped or lost</th><th>late rows</th><th>files</th><th>plan ms</th><th>offsets ms</th><th>execute ms</th>\
         <th>commit ms</th><th>rows/s</th><th>state rows</th></tr>\n",
    );
    for b in batches {
        let state: u64 = b.commit.state.iter().map(|s| s.rows_total).sum();
        let d = &b.commit.durations;
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.0}</td><td>{}</td></tr>",
            b.batch,
            time_label(&(b.offsets.info.batch_timestamp_ms as f64)),
            b.offsets
                .info
                .watermark_ms
                .map_or(String::new(), |w| time_label(&(w as f64))),
            b.commit.rows_in,
            b.commit.rows_out,
            b.commit.rows_skipped,
            b.commit.rows_late,
            b.commit.files_in,
            d.plan_ms,
            d.offsets_ms,
            d.execute_ms,
            d.commit_ms,
            b.rows_per_second(),
            state
        );
    }
    page.push_str("</table>\n</details>\n");
}

/// Batch numbers on an axis: whole numbers only.
fn batch_label(v: &f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// A count on an axis (rows): whole numbers only.
fn count_label(v: &f64) -> String {
    if v.fract().abs() < 1e-9 {
        number_label(v)
    } else {
        String::new()
    }
}

fn number_label(v: &f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        // A whole number (a count of rows) needs no decimals.
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Labels for a time axis over `values` (milliseconds since the epoch), as precise as their
/// span needs, and the day they fall on when it is one day (for the axis description).
fn time_axis(values: impl Iterator<Item = f64>) -> (impl Fn(&f64) -> String, String) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let day = |ms: f64| chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.date_naive());
    let one_day = day(lo) == day(hi);
    let format = match hi - lo {
        span if span < 60_000.0 => "%H:%M:%S%.3f",
        _ if one_day => "%H:%M:%S",
        _ => "%Y-%m-%d %H:%M",
    };
    let label = move |ms: &f64| {
        chrono::DateTime::from_timestamp_millis(*ms as i64)
            .map(|t| t.format(format).to_string())
            .unwrap_or_default()
    };
    let described = match day(lo) {
        Some(d) if one_day => format!(", {d}"),
        _ => String::new(),
    };
    (label, described)
}

/// Milliseconds since the epoch as UTC date and time.
fn time_label(ms: &f64) -> String {
    chrono::DateTime::from_timestamp_millis(*ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Text made safe inside HTML.
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_text(text)
}
