//! The micro-batch loop and recovery (DESIGN 1).
//!
//! ```text
//!   plan ──► sources/<s>/N ──► offsets/N ──► run query ──► sink.commit(N) ──► commits/N ──► purge
//!   (new       (file lists,      (create-      (DataFusion,   (idempotent      (create-
//!   input)      create-only)      only)         per batch)     per batch id)    only)
//! ```
//!
//! Invariants:
//! - batch `N` runs only once `offsets/N` exists, and is committed only after the sink has it;
//! - a re-run of `N` uses exactly what `offsets/N` logged: the sources' offsets, the batch
//!   timestamp, the pinned settings and the query text;
//! - the driver stops between batches when asked to; an interrupted batch is finished by the
//!   next run.

mod event_time;
pub mod recovery;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tokio::sync::watch;

use crate::Error;
use crate::checkpoint::{
    BatchId, BatchInfo, Checkpoint, CheckpointError, CommitEntry, OffsetsEntry, PhaseDurations,
    PinnedSettings, SourceOffset, StateCommit,
};
use crate::pipeline::{Fencing, OutputMode, Pipeline, SinkKind, Trigger};
use crate::plan::{self, Shape};
use crate::progress::{BatchProgress, ProgressFormat, StateOperatorProgress};
use crate::sink::{ConsoleSink, FilesSink, Sink};
use crate::source::{Admission, FilesSource, Source, load_table};
use crate::state::{AggregateOperator, JoinOperator, Operator};
use crate::storage::{Location, StoreHook};
use recovery::Decision;

/// How a run is started, beyond what the pipeline file says.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Overrides the pipeline's trigger.
    pub trigger: Option<Trigger>,
    /// Overrides the pipeline's checkpoint location.
    pub checkpoint: Option<String>,
    /// How progress is shown.
    pub progress: ProgressFormat,
    /// Wraps every object store the run opens (fault injection in tests).
    pub store_hook: Option<StoreHook>,
    /// Becomes `true` when the run should stop after the current batch.
    pub shutdown: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trigger", &self.trigger)
            .field("checkpoint", &self.checkpoint)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Batches run (including a recovered one).
    pub batches: u64,
    /// The interrupted batch this run finished, if any.
    pub recovered: Option<BatchId>,
    /// Rows read.
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
}

/// Runs a pipeline until its trigger says stop (or it is asked to).
pub async fn run(pipeline: &Pipeline, options: RunOptions) -> Result<RunSummary, Error> {
    Driver::open(pipeline, options).await?.run().await
}

struct Driver<'a> {
    pipeline: &'a Pipeline,
    options: RunOptions,
    trigger: Trigger,
    checkpoint: Checkpoint,
    sources: Vec<Box<dyn Source>>,
    static_tables: BTreeMap<String, Arc<MemTable>>,
    sink: Box<dyn Sink>,
    /// Where each watermarked source's late rows go, when the pipeline names a `late_rows` sink.
    late_sinks: BTreeMap<String, Box<dyn Sink>>,
    /// Sessions by pinned settings.
    sessions: Vec<(PinnedSettings, SessionContext)>,
    query_stored: bool,
    /// Each stream with a watermark: its event-time column and delay in milliseconds.
    watermarks: BTreeMap<String, (String, i64)>,
    /// The query batches run now, and its state.
    query: Option<QueryState>,
    summary: RunSummary,
}

/// A query as analyzed for running, with its stateful operator.
struct QueryState {
    fingerprint: String,
    shape: Shape,
    operator: Option<Box<dyn Operator>>,
    /// The columns the query reads, per stream (absent: all of them).
    columns: BTreeMap<String, Vec<String>>,
}

/// Where the previous batch left off.
struct Position {
    next: BatchId,
    ends: BTreeMap<String, serde_json::Value>,
    last_timestamp_ms: i64,
    /// The previous batch's watermark.
    watermark_ms: Option<i64>,
    /// The watermark the next batch starts with.
    next_watermark_ms: Option<i64>,
    /// The latest event time seen so far, per source with a watermark.
    event_time_max_ms: BTreeMap<String, i64>,
}

impl<'a> Driver<'a> {
    async fn open(pipeline: &'a Pipeline, options: RunOptions) -> Result<Self, Error> {
        let hook = options.store_hook.as_ref();
        let sync = pipeline.sync;
        // Fail on a missing source folder before anything is created.
        for (name, config) in &pipeline.sources {
            crate::source::open_folder(name, config, hook, false)?;
        }
        let checkpoint_spec = options
            .checkpoint
            .clone()
            .unwrap_or_else(|| pipeline.checkpoint_location());
        let location = Location::open(&checkpoint_spec, true, sync, hook)?;
        let create_only = pipeline.fencing == Fencing::CreateOnly;
        if create_only {
            location.check_create_only().await?;
        }
        let checkpoint = Checkpoint::open(location, &pipeline.name).await?;
        checkpoint
            .record_sink(&crate::checkpoint::SinkRecord {
                kind: pipeline.sink.kind.as_str().to_string(),
                path: pipeline.sink.path.clone(),
                format: pipeline.sink.format.map(|f| f.as_str().to_string()),
                output_mode: pipeline.output_mode.as_str().to_string(),
            })
            .await?;
        // Static tables load after the lock, so a second run stops at once.
        let mut static_tables = BTreeMap::new();
        for (name, config) in &pipeline.tables {
            static_tables.insert(name.clone(), load_table(name, config, hook).await?);
        }
        let id = checkpoint.metadata().id;
        let replace = pipeline.output_mode == OutputMode::Complete;
        let sink = open_sink(&pipeline.sink, None, replace, id, sync, hook)?;
        if create_only
            && pipeline.sink.kind == SinkKind::Files
            && let Some(path) = &pipeline.sink.path
        {
            Location::open(path, true, sync, hook)?
                .check_create_only()
                .await?;
        }
        let mut late_sinks = BTreeMap::new();
        if let Some(late) = &pipeline.late_rows {
            for (name, config) in &pipeline.sources {
                if config.watermark.is_some() {
                    let sink = open_sink(late, Some(name), false, id, sync, hook)?;
                    late_sinks.insert(name.clone(), sink);
                }
            }
        }
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for (name, config) in &pipeline.sources {
            sources.push(Box::new(
                FilesSource::open(name, config, checkpoint.location(), hook, sync).await?,
            ));
        }
        Ok(Self {
            pipeline,
            trigger: options.trigger.unwrap_or(pipeline.trigger),
            options,
            checkpoint,
            sources,
            static_tables,
            sink,
            late_sinks,
            sessions: Vec::new(),
            query_stored: false,
            watermarks: pipeline
                .sources
                .iter()
                .filter_map(|(name, config)| {
                    let wm = config.watermark.as_ref()?;
                    let delay = i64::try_from(wm.delay.as_millis()).unwrap_or(i64::MAX);
                    Some((name.clone(), (wm.column.clone(), delay)))
                })
                .collect(),
            query: None,
            summary: RunSummary::default(),
        })
    }

    fn stopping(&self) -> bool {
        self.options
            .shutdown
            .as_ref()
            .is_some_and(|rx| *rx.borrow())
    }

    /// Waits `duration`, or less when asked to stop.
    async fn pause(&mut self, duration: std::time::Duration) {
        match self.options.shutdown.as_mut() {
            Some(rx) => {
                let _ = tokio::time::timeout(duration, rx.wait_for(|stop| *stop)).await;
            }
            None => tokio::time::sleep(duration).await,
        }
    }

    async fn run(mut self) -> Result<RunSummary, Error> {
        if matches!(self.trigger, Trigger::AvailableNow | Trigger::Once) {
            for source in &mut self.sources {
                source.freeze().await?;
            }
        }
        let mut position = self.recover().await?;
        // Sources without a declared or pinned schema take it from their first file.
        while !self.resolve_schemas().await? {
            match self.trigger {
                Trigger::Every(interval) if !self.stopping() => self.pause(interval).await,
                _ => {
                    tracing::info!("no input yet and no schema declared: nothing to do");
                    return Ok(self.summary);
                }
            }
        }
        self.validate_query().await?;
        loop {
            if self.stopping() {
                break;
            }
            let started = Instant::now();
            let admission = match self.trigger {
                Trigger::Once => Admission::Unlimited,
                _ => Admission::SourceLimits,
            };
            let ran = self.plan_and_run(&mut position, admission).await?;
            match self.trigger {
                Trigger::Once => break,
                Trigger::AvailableNow if !ran => break,
                Trigger::AvailableNow => {}
                Trigger::Every(interval) => {
                    if let Some(rest) = interval.checked_sub(started.elapsed()) {
                        self.pause(rest).await;
                    }
                }
            }
        }
        Ok(self.summary)
    }

    /// Reads the logs and finishes an interrupted batch, returning where to go on from.
    async fn recover(&mut self) -> Result<Position, Error> {
        let logs = self.checkpoint.list_logs().await?;
        let inconsistent = |reason: String| CheckpointError::Inconsistent {
            location: self.checkpoint.location().to_string(),
            reason,
        };
        let batch = match recovery::decide(&logs) {
            Decision::Inconsistent { reason } => return Err(inconsistent(reason).into()),
            Decision::PlanNext { next } => {
                // The latest commit must be whole: a damaged one is named, never skipped.
                if let Some(last) = next.prev() {
                    self.checkpoint.read_commit(last).await?;
                }
                return self.position_after(next.prev()).await;
            }
            Decision::Rerun { batch } => batch,
        };
        let entry = self
            .checkpoint
            .read_offsets(batch)
            .await?
            .ok_or_else(|| inconsistent(format!("offsets/{batch} vanished")))?;
        let start = self.position_after(batch.prev()).await?;
        let sql = if entry.info.query_fingerprint == plan::fingerprint(&self.pipeline.query) {
            self.pipeline.query.clone()
        } else {
            tracing::info!(%batch, "finishing the pending batch with the query it was planned with");
            self.checkpoint
                .read_query(&entry.info.query_fingerprint)
                .await?
        };
        self.resolve_schemas().await?;
        self.run_batch(batch, &entry, &start, &sql, true, 0.0, 0.0)
            .await?;
        self.summary.recovered = Some(batch);
        self.position_after(Some(batch)).await
    }

    /// The position after `batch` (or the very start).
    async fn position_after(&self, batch: Option<BatchId>) -> Result<Position, Error> {
        let Some(batch) = batch else {
            return Ok(Position {
                next: BatchId(0),
                ends: BTreeMap::new(),
                last_timestamp_ms: 0,
                watermark_ms: None,
                next_watermark_ms: None,
                event_time_max_ms: BTreeMap::new(),
            });
        };
        let entry = self.checkpoint.read_offsets(batch).await?.ok_or_else(|| {
            CheckpointError::Inconsistent {
                location: self.checkpoint.location().to_string(),
                reason: format!("offsets/{batch} is missing; the next batch starts where it ends"),
            }
        })?;
        let commit = self.checkpoint.read_commit(batch).await?;
        Ok(Position {
            next: batch.next(),
            ends: entry
                .sources
                .into_iter()
                .map(|s| (s.source, s.offset))
                .collect(),
            last_timestamp_ms: entry.info.batch_timestamp_ms,
            watermark_ms: entry.info.watermark_ms,
            next_watermark_ms: commit.as_ref().and_then(|c| c.next_watermark_ms),
            event_time_max_ms: commit.map(|c| c.event_time_max_ms).unwrap_or_default(),
        })
    }

    async fn resolve_schemas(&mut self) -> Result<bool, Error> {
        let mut all = true;
        for source in &mut self.sources {
            all &= source.resolve_schema().await?.is_some();
        }
        Ok(all)
    }

    fn session(&mut self, settings: &PinnedSettings) -> Result<SessionContext, Error> {
        if let Some((_, ctx)) = self.sessions.iter().find(|(s, _)| s == settings) {
            return Ok(ctx.clone());
        }
        let ctx = plan::session(settings);
        for (name, table) in &self.static_tables {
            ctx.register_table(name.as_str(), Arc::clone(table) as _)
                .map_err(|e| Error::Execution {
                    batch: None,
                    source: e,
                })?;
        }
        self.sessions.push((settings.clone(), ctx.clone()));
        Ok(ctx)
    }

    fn stream_names(&self) -> BTreeSet<String> {
        self.sources.iter().map(|s| s.name().to_string()).collect()
    }

    /// Plans the query over empty stream tables: refuses bad SQL and shapes that cannot run as
    /// a stream before any batch runs.
    async fn validate_query(&mut self) -> Result<(), Error> {
        for (name, (column, _)) in &self.watermarks {
            let source = self
                .sources
                .iter()
                .find(|s| s.name() == name)
                .expect("watermarks are of sources");
            let schema = source.schema().expect("schemas are resolved first");
            let reason = match schema.field_with_name(column) {
                Err(_) => Some(format!(
                    "`{column}` is not a column of the source (its columns: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Ok(f) if !matches!(f.data_type(), DataType::Timestamp(_, _)) => Some(format!(
                    "`{column}` is {}, not a timestamp; declare it `timestamp` in the schema",
                    f.data_type()
                )),
                Ok(_) => None,
            };
            if let Some(reason) = reason {
                return Err(plan::PlanError::Unsupported {
                    operator: format!("the watermark of source `{name}`"),
                    reason: format!("(sources.{name}.watermark.column): {reason}"),
                }
                .into());
            }
        }
        let sql = self.pipeline.query.clone();
        self.query_state(&sql).await?;
        Ok(())
    }

    /// Analyzes `sql` (planned over empty stream tables), keeping the operator of the query in
    /// use when `sql` is that query.
    async fn query_state(&mut self, sql: &str) -> Result<&mut QueryState, Error> {
        let fingerprint = plan::fingerprint(sql);
        if self
            .query
            .as_ref()
            .is_none_or(|q| q.fingerprint != fingerprint)
        {
            let ctx = self.session(&plan::default_settings())?;
            let streams: Vec<(String, SchemaRef)> = self
                .sources
                .iter()
                .map(|s| {
                    let schema = s.schema().expect("schemas are resolved first");
                    (s.name().to_string(), schema)
                })
                .collect();
            let (session, logical, shape) = plan::plan_shape(
                &ctx,
                sql,
                &streams,
                &self.pipeline.watermark_columns(),
                self.pipeline.output_mode,
            )
            .await?;
            let location = self.checkpoint.location().clone();
            let snapshot_every = self.pipeline.snapshot_every;
            let operator: Option<Box<dyn Operator>> = match &shape {
                Shape::Aggregate(a) => Some(Box::new(AggregateOperator::new(
                    a.clone(),
                    self.pipeline.output_mode,
                    location,
                    snapshot_every,
                ))),
                Shape::Join(j) => Some(Box::new(JoinOperator::new(j, location, snapshot_every))),
                Shape::Stateless => None,
            };
            let optimized = session.optimize(&logical).map_err(plan::PlanError::Sql)?;
            let mut columns = plan::stream_columns(&optimized, &self.stream_names());
            // Late rows are kept whole.
            if operator.is_some() {
                columns.retain(|stream, _| !self.late_sinks.contains_key(stream));
                // The watermark is read from the source, whether the query reads it or not.
                for (stream, (column, _)) in &self.watermarks {
                    if let Some(read) = columns.get_mut(stream)
                        && !read.contains(column)
                    {
                        read.push(column.clone());
                    }
                }
            }
            self.query = Some(QueryState {
                fingerprint,
                shape,
                operator,
                columns,
            });
        }
        Ok(self.query.as_mut().expect("set above"))
    }

    /// Whether the query keeps state that the watermark closes (so a batch without new input
    /// still has work when the watermark moves: emitting closed windows, dropping kept rows).
    fn closes_by_watermark(&self, watermark_ms: i64) -> bool {
        self.pipeline.output_mode != OutputMode::Complete
            && self.query.as_ref().is_some_and(|q| {
                let bounded = match &q.shape {
                    Shape::Aggregate(a) => a.event_time.is_some(),
                    Shape::Join(_) => true,
                    Shape::Stateless => false,
                };
                // A state not loaded yet might hold anything: run the batch to find out.
                bounded
                    && q.operator.as_ref().is_none_or(|op| {
                        op.holds_ending_by(watermark_ms.saturating_mul(1_000_000))
                            .unwrap_or(true)
                    })
            })
    }

    /// Plans the next batch and runs it; `false` when there was nothing to do.
    async fn plan_and_run(
        &mut self,
        position: &mut Position,
        admission: Admission,
    ) -> Result<bool, Error> {
        let batch = position.next;
        let plan_started = Instant::now();
        let mut ends = Vec::new();
        let mut any_new = false;
        for source in &mut self.sources {
            let start = position.ends.get(source.name());
            let end = match source.plan(batch, start, admission).await? {
                Some(end) => {
                    any_new = true;
                    end
                }
                None => start.cloned().unwrap_or(serde_json::Value::Null),
            };
            ends.push(SourceOffset {
                source: source.name().to_string(),
                offset: end,
            });
        }
        let stateful = self.query.as_ref().is_some_and(|q| q.operator.is_some());
        let watermark_ms = if stateful {
            position.next_watermark_ms
        } else {
            None
        };
        // Without new input, a batch still runs when the watermark has moved past the end of
        // something in the state (Spark's "no-data batch"): closed windows are final, and
        // append mode emits them now rather than when more input comes.
        let closes = watermark_ms
            .filter(|w| Some(*w) > position.watermark_ms)
            .is_some_and(|w| self.closes_by_watermark(w));
        if !(any_new || closes) {
            return Ok(false);
        }
        let plan_ms = ms(plan_started);
        let offsets_started = Instant::now();
        let fingerprint = plan::fingerprint(&self.pipeline.query);
        if !self.query_stored {
            self.checkpoint
                .write_query(&fingerprint, &self.pipeline.query)
                .await?;
            self.query_stored = true;
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let entry = OffsetsEntry {
            info: BatchInfo {
                batch_timestamp_ms: now_ms.max(position.last_timestamp_ms),
                watermark_ms,
                epoch: self.checkpoint.epoch(),
                run_id: self.checkpoint.run_id(),
                settings: plan::default_settings(),
                query_fingerprint: fingerprint,
            },
            sources: ends,
        };
        self.checkpoint.write_offsets(batch, &entry).await?;
        let offsets_ms = ms(offsets_started);
        let sql = self.pipeline.query.clone();
        let commit = self
            .run_batch(batch, &entry, position, &sql, false, plan_ms, offsets_ms)
            .await?;
        *position = Position {
            next: batch.next(),
            ends: entry
                .sources
                .iter()
                .map(|s| (s.source.clone(), s.offset.clone()))
                .collect(),
            last_timestamp_ms: entry.info.batch_timestamp_ms,
            watermark_ms: entry.info.watermark_ms,
            next_watermark_ms: commit.next_watermark_ms,
            event_time_max_ms: commit.event_time_max_ms,
        };
        Ok(true)
    }

    /// Runs a batch whose offsets are logged: query, sink, state, commit, purge, progress.
    #[allow(clippy::too_many_arguments)]
    async fn run_batch(
        &mut self,
        batch: BatchId,
        entry: &OffsetsEntry,
        start: &Position,
        sql: &str,
        recovered: bool,
        plan_ms: f64,
        offsets_ms: f64,
    ) -> Result<CommitEntry, Error> {
        let execute_started = Instant::now();
        let exec_err = |source| Error::Execution {
            batch: Some(batch),
            source,
        };
        let ctx = self.session(&entry.info.settings)?;
        let query = self.query_state(sql).await?;
        let stateful = query.operator.is_some();
        let columns = query.columns.clone();
        let watermark_ms = entry.info.watermark_ms.filter(|_| stateful);
        let (mut rows_in, mut skipped, mut files_in, mut late) = (0, 0, 0, 0);
        let mut event_time_max_ms = BTreeMap::new();
        for source in &self.sources {
            let end = entry.offset_of(source.name()).ok_or_else(|| {
                CheckpointError::Inconsistent {
                    location: self.checkpoint.location().to_string(),
                    reason: format!(
                        "offsets/{batch} has no offset for source `{}`; sources cannot be added to a pipeline mid-way",
                        source.name()
                    ),
                }
            })?;
            let read = columns.get(source.name()).map(Vec::as_slice);
            let mut input = source
                .read(start.ends.get(source.name()), end, read)
                .await?;
            rows_in += input.rows;
            skipped += input.skipped;
            files_in += input.files;
            if stateful && let Some((column, _)) = self.watermarks.get(source.name()) {
                let seen = event_time::drop_late(&mut input, column, watermark_ms)
                    .map_err(|e| exec_err(e.into()))?;
                late += seen.late;
                if let Some(sink) = self.late_sinks.get(source.name())
                    && !seen.late_rows.is_empty()
                {
                    sink.commit(batch, self.checkpoint.epoch(), vec![seen.late_rows])
                        .await?;
                }
                let previous = start.event_time_max_ms.get(source.name()).copied();
                if let Some(max) = seen.max_ms.max(previous) {
                    event_time_max_ms.insert(source.name().to_string(), max);
                }
            }
            let table = input.into_table().map_err(exec_err)?;
            register(&ctx, source.name(), table, Some(batch))?;
        }
        let (state, logical) = plan::plan_batch(&ctx, sql, entry.info.batch_timestamp_ms).await?;
        let query = self.query.as_mut().expect("analyzed above");
        let physical = match query.operator.as_mut() {
            Some(operator) => {
                let watermark_ns = watermark_ms.map(|w| w.saturating_mul(1_000_000));
                operator.run(batch, &state, &logical, watermark_ns).await?
            }
            None => state
                .create_physical_plan(&logical)
                .await
                .map_err(exec_err)?,
        };
        let output = datafusion::physical_plan::collect_partitioned(physical, state.task_ctx())
            .await
            .map_err(exec_err)?;
        let committed = self
            .sink
            .commit(batch, self.checkpoint.epoch(), output)
            .await?;
        let query = self.query.as_mut().expect("analyzed above");
        let state_commit = match query.operator.as_mut() {
            Some(operator) => operator
                .commit(batch)
                .await?
                .into_iter()
                .map(|m| StateCommit {
                    operator: m.operator,
                    version: batch,
                    rows_total: m.metrics.rows_total,
                    rows_updated: m.metrics.rows_updated,
                    rows_removed: m.metrics.rows_removed,
                    bytes_written: m.metrics.bytes_written,
                })
                .collect(),
            None => Vec::new(),
        };
        let execute_ms = ms(execute_started);
        let commit_started = Instant::now();
        // The watermark never goes back; with several sources it follows the slowest, and it
        // waits until every source with a watermark has seen an event time.
        let candidate = self
            .watermarks
            .iter()
            .map(|(name, (_, delay))| {
                event_time_max_ms
                    .get(name)
                    .map(|max: &i64| max.saturating_sub(*delay))
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|each| each.into_iter().min());
        let next_watermark_ms = if stateful {
            entry.info.watermark_ms.max(candidate)
        } else {
            None
        };
        let mut commit = CommitEntry {
            next_watermark_ms,
            event_time_max_ms,
            rows_late: late,
            state: state_commit,
            rows_in,
            rows_out: committed.rows,
            rows_skipped: skipped,
            files_in,
            epoch: self.checkpoint.epoch(),
            run_id: self.checkpoint.run_id(),
            committed_at_ms: chrono::Utc::now().timestamp_millis(),
            durations: PhaseDurations {
                plan_ms,
                offsets_ms,
                execute_ms,
                commit_ms: 0.0,
            },
        };
        self.checkpoint.write_commit(batch, &commit).await?;
        let retain = self.pipeline.retain_batches;
        self.checkpoint.purge(batch, retain).await?;
        let oldest_kept = BatchId((batch.0 + 1).saturating_sub(retain.max(2)));
        for source in &mut self.sources {
            source.commit(batch, oldest_kept).await?;
        }
        if let Some(operator) = self.query.as_ref().and_then(|q| q.operator.as_ref()) {
            operator.purge(oldest_kept).await?;
        }
        self.sink.purge(oldest_kept).await?;
        for sink in self.late_sinks.values() {
            sink.purge(oldest_kept).await?;
        }
        commit.durations.commit_ms = ms(commit_started);
        self.summary.batches += 1;
        self.summary.rows_in += rows_in;
        self.summary.rows_out += committed.rows;
        let total_s = (commit.durations.plan_ms
            + commit.durations.offsets_ms
            + commit.durations.execute_ms
            + commit.durations.commit_ms)
            / 1000.0;
        BatchProgress {
            id: self.checkpoint.metadata().id,
            run_id: self.checkpoint.run_id(),
            name: self.pipeline.name.clone(),
            timestamp: rfc3339(entry.info.batch_timestamp_ms),
            batch_id: batch,
            recovered,
            num_input_rows: rows_in,
            num_output_rows: committed.rows,
            num_skipped_rows: skipped,
            num_late_rows: late,
            num_input_files: files_in,
            processed_rows_per_second: if total_s > 0.0 {
                rows_in as f64 / total_s
            } else {
                0.0
            },
            duration_ms: (&commit.durations).into(),
            watermark: watermark_ms.map(rfc3339),
            state_operators: commit
                .state
                .iter()
                .enumerate()
                .map(|(i, s)| StateOperatorProgress {
                    operator_name: s.operator.clone(),
                    num_rows_total: s.rows_total,
                    num_rows_updated: s.rows_updated,
                    num_rows_removed: s.rows_removed,
                    // Late rows are dropped before the operator, once: counted on the first.
                    num_rows_dropped_by_watermark: if i == 0 { late } else { 0 },
                    state_bytes_written: s.bytes_written,
                })
                .collect(),
            sink_wrote: committed.written,
        }
        .report(self.options.progress);
        Ok(commit)
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Opens a sink; `folder` names a subfolder of a files sink's path (one per source, for late
/// rows); `replace` makes each batch's files replace the earlier ones (complete mode).
fn open_sink(
    config: &crate::pipeline::SinkConfig,
    folder: Option<&str>,
    replace: bool,
    pipeline: uuid::Uuid,
    sync: bool,
    hook: Option<&StoreHook>,
) -> Result<Box<dyn Sink>, Error> {
    Ok(match config.kind {
        SinkKind::Console => Box::new(ConsoleSink::new(config.max_rows)),
        SinkKind::Files => {
            let path = config
                .path
                .as_deref()
                .expect("validated: files sink has a path");
            let path = match folder {
                Some(folder) => format!("{}/{folder}", path.trim_end_matches('/')),
                None => path.to_string(),
            };
            let format = config.format.expect("validated: files sink has a format");
            let sink = FilesSink::new(Location::open(&path, true, sync, hook)?, format, pipeline);
            Box::new(if replace { sink.replacing() } else { sink })
        }
    })
}

/// Registers (or replaces) a table in the session.
fn register(
    ctx: &SessionContext,
    name: &str,
    table: Arc<MemTable>,
    batch: Option<BatchId>,
) -> Result<(), Error> {
    ctx.deregister_table(name)
        .and_then(|_| ctx.register_table(name, table as _))
        .map(|_| ())
        .map_err(|source| Error::Execution { batch, source })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
