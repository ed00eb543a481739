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

pub mod recovery;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use tokio::sync::watch;

use crate::Error;
use crate::checkpoint::{
    BatchId, BatchInfo, Checkpoint, CheckpointError, CommitEntry, OffsetsEntry, PhaseDurations,
    PinnedSettings, SourceOffset,
};
use crate::pipeline::{OutputMode, Pipeline, SinkKind, Trigger};
use crate::plan;
use crate::progress::{BatchProgress, ProgressFormat};
use crate::sink::{ConsoleSink, FilesSink, Sink};
use crate::source::{Admission, FilesSource, Source, load_table};
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
    /// Sessions by pinned settings.
    sessions: Vec<(PinnedSettings, SessionContext)>,
    query_stored: bool,
    summary: RunSummary,
}

/// Where the previous batch left off.
struct Position {
    next: BatchId,
    ends: BTreeMap<String, serde_json::Value>,
    last_timestamp_ms: i64,
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
        let checkpoint = Checkpoint::open(location, &pipeline.name).await?;
        // Static tables load after the lock, so a second run stops at once.
        let mut static_tables = BTreeMap::new();
        for (name, config) in &pipeline.tables {
            static_tables.insert(name.clone(), load_table(name, config, hook).await?);
        }
        let sink: Box<dyn Sink> = match pipeline.sink.kind {
            SinkKind::Console => Box::new(ConsoleSink::new(pipeline.sink.max_rows)),
            SinkKind::Files => {
                let path = pipeline
                    .sink
                    .path
                    .as_deref()
                    .expect("validated: files sink has a path");
                let format = pipeline
                    .sink
                    .format
                    .expect("validated: files sink has a format");
                Box::new(FilesSink::new(
                    Location::open(path, true, sync, hook)?,
                    format,
                    checkpoint.metadata().id,
                ))
            }
        };
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
            sessions: Vec::new(),
            query_stored: false,
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
        self.run_batch(batch, &entry, &start.ends, &sql, true, 0.0, 0.0)
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
            });
        };
        let entry = self.checkpoint.read_offsets(batch).await?.ok_or_else(|| {
            CheckpointError::Inconsistent {
                location: self.checkpoint.location().to_string(),
                reason: format!("offsets/{batch} is missing; the next batch starts where it ends"),
            }
        })?;
        Ok(Position {
            next: batch.next(),
            ends: entry
                .sources
                .into_iter()
                .map(|s| (s.source, s.offset))
                .collect(),
            last_timestamp_ms: entry.info.batch_timestamp_ms,
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

    /// Plans the query over empty stream tables: refuses bad SQL and stateful queries before
    /// any batch runs.
    async fn validate_query(&mut self) -> Result<(), Error> {
        let ctx = self.session(&plan::default_settings())?;
        for source in &self.sources {
            let schema: SchemaRef = source.schema().expect("schemas are resolved first");
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(|e| Error::Execution {
                batch: None,
                source: e,
            })?;
            register(&ctx, source.name(), Arc::new(empty), None)?;
        }
        let (_, logical) = plan::plan_batch(&ctx, &self.pipeline.query, 0).await?;
        plan::check_stateless(&logical, &self.stream_names())?;
        if self.pipeline.output_mode == OutputMode::Complete && !plan::has_aggregation(&logical) {
            return Err(plan::PlanError::CompleteWithoutAggregation.into());
        }
        Ok(())
    }

    /// Plans the next batch and runs it; `false` when there was no new input.
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
        if !any_new {
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
                watermark_ms: None,
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
        let starts = std::mem::take(&mut position.ends);
        self.run_batch(batch, &entry, &starts, &sql, false, plan_ms, offsets_ms)
            .await?;
        *position = Position {
            next: batch.next(),
            ends: entry
                .sources
                .iter()
                .map(|s| (s.source.clone(), s.offset.clone()))
                .collect(),
            last_timestamp_ms: entry.info.batch_timestamp_ms,
        };
        Ok(true)
    }

    /// Runs a batch whose offsets are logged: query, sink, commit, purge, progress.
    #[allow(clippy::too_many_arguments)]
    async fn run_batch(
        &mut self,
        batch: BatchId,
        entry: &OffsetsEntry,
        starts: &BTreeMap<String, serde_json::Value>,
        sql: &str,
        recovered: bool,
        plan_ms: f64,
        offsets_ms: f64,
    ) -> Result<(), Error> {
        let execute_started = Instant::now();
        let ctx = self.session(&entry.info.settings)?;
        let (mut rows_in, mut skipped, mut files_in) = (0, 0, 0);
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
            let input = source.read(starts.get(source.name()), end).await?;
            rows_in += input.rows;
            skipped += input.skipped;
            files_in += input.files;
            register(&ctx, source.name(), input.table, Some(batch))?;
        }
        let (state, logical) = plan::plan_batch(&ctx, sql, entry.info.batch_timestamp_ms).await?;
        let (_, output) =
            plan::execute(&state, &logical)
                .await
                .map_err(|source| Error::Execution {
                    batch: Some(batch),
                    source,
                })?;
        let committed = self
            .sink
            .commit(batch, self.checkpoint.epoch(), output)
            .await?;
        let execute_ms = ms(execute_started);
        let commit_started = Instant::now();
        let mut commit = CommitEntry {
            next_watermark_ms: None,
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
            timestamp: chrono::DateTime::from_timestamp_millis(entry.info.batch_timestamp_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            batch_id: batch,
            recovered,
            num_input_rows: rows_in,
            num_output_rows: committed.rows,
            num_skipped_rows: skipped,
            num_input_files: files_in,
            processed_rows_per_second: if total_s > 0.0 {
                rows_in as f64 / total_s
            } else {
                0.0
            },
            duration_ms: (&commit.durations).into(),
            watermark: None,
            sink_wrote: committed.written,
        }
        .report(self.options.progress);
        Ok(())
    }
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
