//! `sluice explain`: the plan every batch runs, split into the part that sees only the batch's
//! input and the part that keeps state, and why the query runs in its output mode.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_plan::{ExecutionPlan, displayable};

use crate::Error;
use crate::pipeline::{OutputMode, Pipeline};
use crate::plan::{self, Shape};
use crate::state::{AGGREGATE_OPERATOR, find_outer_phases, find_phases, splice_final, unfuse};

pub(super) async fn run(path: &Path) -> Result<(), Error> {
    let pipeline = Pipeline::load(path)?;
    let text = explain(&pipeline).await.map_err(|e| match e {
        // Said as a run says it, with the query's line.
        Error::Plan(plan) => Error::Usage(format!(
            "{}: `query`{}: {plan}",
            path.display(),
            pipeline
                .query_line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default()
        )),
        other => other,
    })?;
    super::emit(&text);
    Ok(())
}

/// The explanation of `pipeline`'s per-batch plan.
pub async fn explain(pipeline: &Pipeline) -> Result<String, Error> {
    // The file's own refusals, as a run makes them first.
    pipeline
        .check_file(&pipeline.checkpoint_location(), false)
        .map_err(Error::Usage)?;
    let exec = |source| Error::Execution {
        batch: None,
        source,
        found: None,
    };
    let ctx = plan::session(&plan::default_settings());
    for (name, config) in &pipeline.tables {
        let table = config.connector().load_table(name, None).await?;
        ctx.register_table(plan::table_name(name), table as _)
            .map_err(exec)?;
    }
    let mut streams = Vec::new();
    for (name, config) in &pipeline.sources {
        let schema = config.connector().peek_schema(name).await?.ok_or_else(|| {
            Error::Usage(format!(
                "source `{name}` has no files yet and no declared schema; declare `schema:` or add a file"
            ))
        })?;
        if let Some(watermark) = &config.watermark {
            crate::driver::check_watermark_column(pipeline, name, &watermark.column, &schema)?;
        }
        streams.push((name.clone(), schema));
    }
    let (state, logical, shape) = plan::plan_shape(
        &ctx,
        &pipeline.query,
        &streams,
        &pipeline.watermark_columns(),
        pipeline.output_mode,
    )
    .await?;
    // What a run refuses before a batch, refused here too (audit 88a: explain showed a plan
    // for a `state_ttl` or `late_rows` that bounds nothing, and for a watermark on no column).
    if pipeline.sink.connector().kind() != "console" {
        plan::check_output_names(&logical)?;
    }
    let zero_divisions = plan::zero_divisions(&logical);
    if !zero_divisions.is_empty() {
        return Err(plan::PlanError::ZeroDivisor(zero_divisions).into());
    }
    if let Some(ttl) = &pipeline.state_ttl {
        crate::driver::check_state_ttl(ttl, pipeline, &shape, &logical)?;
    }
    crate::driver::check_late_rows(pipeline, &shape)?;
    let planned = state.create_physical_plan(&logical).await.map_err(exec)?;
    plan::check_accumulators(&planned)?;
    if !matches!(shape, plan::Shape::Stateless) {
        plan::check_state_storable(&planned, matches!(shape, plan::Shape::Join(_)))?;
    }
    let physical = unfuse(planned).map_err(exec)?;
    let mut out = String::new();
    let mode = pipeline.output_mode;
    let _ = writeln!(
        out,
        "pipeline `{}`: output_mode {}, trigger {}",
        pipeline.name,
        mode.as_str(),
        pipeline.trigger
    );
    let aggregate = match shape {
        Shape::Stateless => {
            let _ = writeln!(
                out,
                "\nThe query keeps no state: each batch runs it over the batch's input alone.\n\n\
                 Per batch:\n{}",
                indent(&physical)
            );
            return Ok(out);
        }
        Shape::Join(j) => {
            let (kind, unmatched) = match j.outer {
                None => ("an inner".to_string(), String::new()),
                Some(outer) => (
                    format!("a {outer}"),
                    format!(
                        "; and each {} row that matched nothing once, with nulls for the other \
                         side, in the batch whose watermark lets it go",
                        match outer {
                            "LEFT" => "left",
                            "RIGHT" => "right",
                            _ => "left or right",
                        }
                    ),
                ),
            };
            let _ = writeln!(
                out,
                "\nThe query keeps state: {kind} join of two streams. Each side's rows are kept \
                 (state/join-left/, state/join-right/) until the watermark passes the last event \
                 time a row of the other side could match: a left row {}, a right row {}. Rows \
                 at or below the watermark are dropped as late.\nOutput ({} mode): each \
                 matching pair once, in the batch where the later of the two arrives{unmatched}.\
                 \n\nPer batch, the join below runs twice: new left rows with kept and new right \
                 rows, and kept left rows with new right rows:\n{}",
                j.kept(true),
                j.kept(false),
                mode.as_str(),
                indent(&physical)
            );
            return Ok(out);
        }
        Shape::Aggregate(a) => a,
    };
    let _ = writeln!(
        out,
        "\nThe query keeps state: {} (in state/{AGGREGATE_OPERATOR}/, one row of partial \
         aggregate state per group).",
        aggregate.operator
    );
    // Where a row late for the watermark goes: the `late_rows` sink, or nowhere (counted).
    let dropped = if pipeline.late_rows.is_some() {
        "goes to the `late_rows` sink as late"
    } else {
        "is dropped as late (counted)"
    };
    if let Some(dedup) = &aggregate.dedup {
        let _ = writeln!(
            out,
            "Below it, a deduplication ({}, in state/{}/) passes {} on once, the first time a \
             batch has it; {}.",
            dedup.operator,
            crate::state::DEDUP_OPERATOR,
            if dedup.operator == "DISTINCT ON" {
                "each key's first row (a later row of a key seen is dropped, as Spark's \
                 `dropDuplicates(keys)` drops it)"
            } else {
                "each distinct row"
            },
            match &dedup.event_time {
                // A key over windows of the event time (`date_bin`) closes with its window's
                // end, not its start (walk 70 (6): said at its start).
                Some(key) if !key.window.is_column() => format!(
                    "a row is forgotten once the watermark reaches the end of its `{name}` \
                     window (`{name}` + {}), and a row whose window has ended at or below the \
                     watermark {dropped}",
                    humantime::format_duration(std::time::Duration::from_nanos(
                        key.window.size_ns.unsigned_abs()
                    )),
                    name = plan::output_alias(&logical, &key.name),
                ),
                Some(key) => format!(
                    "a row is forgotten once the watermark reaches its `{}`, and a row at or \
                     below the watermark {}",
                    plan::output_alias(&logical, &key.name),
                    dropped
                ),
                None => "its rows are kept for ever (no key of it is over a watermark column; \
                         `state_ttl` bounds them)"
                    .to_string(),
            }
        );
    }
    match &aggregate.event_time {
        Some(key) => {
            let sources: Vec<String> = pipeline
                .sources
                .iter()
                .filter_map(|(name, c)| {
                    let wm = c.watermark.as_ref()?;
                    Some(format!(
                        "{name}.{} - {}",
                        wm.column,
                        humantime::format_duration(wm.delay)
                    ))
                })
                .collect();
            let width = if !key.window.is_column() {
                let span = |ns: i64| {
                    humantime::format_duration(std::time::Duration::from_nanos(ns.unsigned_abs()))
                };
                if key.window.session {
                    format!(
                        "sessions per group, closed after a gap of {} without rows; a row \
                         within the gap of a session joins it, and sessions it bridges merge",
                        span(key.window.size_ns)
                    )
                } else if key.window.slide_ns == key.window.size_ns {
                    format!("windows {} wide", span(key.window.size_ns))
                } else {
                    format!(
                        "windows {} wide, one every {}",
                        span(key.window.size_ns),
                        span(key.window.slide_ns)
                    )
                }
            } else {
                "the event time itself".to_string()
            };
            let _ = writeln!(
                out,
                "Event time: the group key `{}` ({width}); a group is final once the watermark \
                 ({}) reaches its end, and a row counts only in the groups of it still open \
                 (a row in none of them, or without an event time, {dropped}){}.",
                plan::output_alias(&logical, &key.name),
                sources.join(", min with "),
                match (mode, &aggregate.dedup) {
                    (OutputMode::Complete, None) => {
                        "; complete mode keeps every group and drops no row for the watermark"
                    }
                    (OutputMode::Complete, Some(_)) => {
                        "; complete mode keeps every group, and drops only the rows late for \
                         the deduplication below"
                    }
                    _ => "",
                }
            );
        }
        None => match pipeline.state_ttl {
            Some(ttl) => {
                let _ = writeln!(
                    out,
                    "The state is bounded by `state_ttl`: a group no batch has touched for {} \
                     ({}) is dropped (its stamps are in state/<operator>-ttl/).",
                    humantime::format_duration(ttl.after),
                    match ttl.time {
                        crate::pipeline::TtlTime::Event => "by the watermark",
                        _ => "by batch timestamps",
                    }
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "The state is not bounded by event time: it grows with the number of \
                     groups (`state_ttl` bounds it)."
                );
            }
        },
    }
    let emits = match mode {
        OutputMode::Complete => "the whole result table, every batch",
        OutputMode::Update => "the groups the batch changed",
        OutputMode::Append if aggregate.distinct_only => {
            "each group once, the first time it is seen"
        }
        OutputMode::Append => "each group once, when the watermark closes it",
    };
    let _ = writeln!(out, "Output ({} mode): {emits}.", mode.as_str());
    let (final_node, partial) = match &aggregate.dedup {
        Some(dedup) => find_outer_phases(&physical, &aggregate.output_names, &dedup.output_names),
        None => find_phases(&physical, &aggregate.output_names),
    }
    .map_err(|reason| Error::Usage(format!("cannot split the plan: {reason}")))?;
    let _ = writeln!(
        out,
        "\nPer batch:\n\n1. Stateless, over the batch's input only (ends in DataFusion's Partial aggregation):\n{}",
        indent(&partial)
    );
    let _ = writeln!(
        out,
        "2. Stateful: the partial rows are merged with the stored state of the same groups \
         (an AggregateExec in PartialReduce mode) and written as state version N, before \
         commits/N."
    );
    // The rest of the plan, with the final aggregation reading the groups to emit.
    let emit_placeholder =
        MemorySourceConfig::try_new_exec(&[vec![]], partial.schema(), None).map_err(exec)?;
    let rest = splice_final(&physical, &final_node, emit_placeholder).map_err(exec)?;
    let _ = writeln!(
        out,
        "3. Emit: DataFusion's Final aggregation over the groups to emit (the DataSourceExec \
         below it), then what follows the aggregation:\n{}",
        indent(&rest)
    );
    Ok(out)
}

fn indent(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref())
        .indent(false)
        .to_string()
        .lines()
        .map(|l| format!("     {l}\n"))
        .collect()
}
