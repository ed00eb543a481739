//! What computes a batch: the sources, the static tables, the query with its stateful operator.
//!
//! The driver computes each batch here and then writes it (sinks, state, commit); `sluice
//! replay` computes a committed batch here again and writes nothing. Both read a batch's input
//! only through `offsets/N`, and a stateful operator reads state version `N-1` on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use super::event_time;
use crate::Error;
use crate::checkpoint::{BatchId, CheckpointError, OffsetsEntry, PinnedSettings};
use crate::pipeline::{OutputMode, Pipeline};
use crate::plan::{self, Shape};
use crate::sink::BatchOutput;
use crate::source::{BatchScan, ScanCounts, Source, SourceError};
use crate::state::{AggregateOperator, BatchTime, DedupAggregateOperator, JoinOperator, Operator};
use crate::storage::{Location, StoreHook};

/// A query as analyzed for running, with its stateful operator.
pub(super) struct QueryState {
    pub(super) fingerprint: String,
    pub(super) shape: Shape,
    pub(super) operator: Option<Box<dyn Operator>>,
    /// The columns the query reads, per stream (absent: all of them).
    columns: BTreeMap<String, Vec<String>>,
    /// The streams the query does not read at all (and no watermark needs): their offsets
    /// move on with each batch, their rows are not read.
    unread: BTreeSet<String>,
    /// The query's conditions on a watermarked stream's own rows that Spark tests before its
    /// watermark (`plan::pre_watermark_filters`), by stream: a row they remove is neither
    /// late nor counted in the watermark.
    pre_watermark: BTreeMap<String, datafusion::logical_expr::Expr>,
    /// [`QueryState::pre_watermark`] with the `IS NOT NULL` of the join keys Spark infers
    /// (`PinnedSettings::join_keys_before_watermark`).
    pre_watermark_with_join_keys: BTreeMap<String, datafusion::logical_expr::Expr>,
    /// Where the query was edited over kept state: what that means, said once the state is
    /// found to follow the edit (audit 94a, walk 96: said just before the refusal that it
    /// cannot, a newcomer read that the run went on).
    edited_over_state: Option<String>,
}

impl Computed {
    /// The error of the first source read while the query ran that failed: the batch's
    /// error, whatever DataFusion or the sink made of it.
    pub(super) fn scan_error(&self) -> Option<Error> {
        self.scans
            .iter()
            .find_map(|(_, counts)| counts.take_error())
            .map(Error::from)
    }

    /// Takes in what the sources read while the query ran counted, once the output is
    /// consumed, reading what the query did not (see `source::scan`); a source that failed is
    /// the error.
    pub(super) async fn settle(&mut self) -> Result<(), Error> {
        if let Some(error) = self.scan_error() {
            return Err(error);
        }
        // What the workers read comes back with the plan's metrics; a part whose counts do
        // not is read again below.
        #[cfg(feature = "distributed")]
        if let Some((plan, wait)) = self.distributed.take() {
            self.ran_on_workers = true;
            let metrics = crate::distributed::metrics_of(&plan, wait).await;
            if metrics.is_empty() {
                tracing::warn!(
                    "the workers' counts of what they read did not come back within {}: the \
                     driver reads the batch's files again to count them",
                    humantime::format_duration(wait)
                );
            }
            for (_, counts) in &self.scans {
                counts.add_read_elsewhere(&metrics);
            }
        }
        for (name, counts) in std::mem::take(&mut self.scans) {
            let counts = counts.finish().await?;
            self.rows_in += counts.rows;
            self.rows_per_source.insert(name.clone(), counts.rows);
            *self.skipped_per_source.entry(name.clone()).or_default() += counts.skipped;
            self.skipped += counts.skipped;
            self.unknown_rows += counts.unknown_rows;
            self.files_in += counts.files;
            if !counts.unknown_fields.is_empty() {
                self.unknown_fields
                    .entry(name)
                    .or_default()
                    .extend(counts.unknown_fields);
            }
        }
        Ok(())
    }
}

/// Where a batch starts: the previous batch's end offsets and the latest event times seen.
pub(super) struct Start<'s> {
    pub(super) ends: &'s BTreeMap<String, serde_json::Value>,
    pub(super) event_time_max_ms: &'s BTreeMap<String, i64>,
    /// When each source with an idle timeout last read rows.
    pub(super) source_active_ms: &'s BTreeMap<String, i64>,
    /// The previous batch's timestamp; `None` for a checkpoint's first batch.
    pub(super) previous_timestamp_ms: Option<i64>,
}

/// A batch's output: computed whole, or a plan whose partitions the sink consumes as they
/// are computed (a query without state: nothing but the sink needs its output).
pub(super) enum Output {
    /// The output, per partition, with its schema.
    Rows(BatchOutput),
    /// The physical plan, and the task context to run it in.
    Plan {
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        task: Arc<datafusion::execution::TaskContext>,
    },
}

/// What a batch computed, before anything is written.
pub(super) struct Computed {
    /// The query's output.
    pub(super) output: Output,
    /// The sources read while the query runs, with what they count: the counts below take
    /// them in once the output is consumed ([`Computed::settle`]).
    pub(super) scans: Vec<(String, Arc<ScanCounts>)>,
    /// Rows older than the watermark, per source that keeps them (a `late_rows` sink).
    pub(super) late_rows: Vec<(String, Vec<RecordBatch>)>,
    /// Whether the query keeps state.
    pub(super) stateful: bool,
    pub(super) rows_in: u64,
    pub(super) skipped: u64,
    /// Rows gone from a source before the batch read them, skipped (`fail_on_data_loss`).
    pub(super) lost: u64,
    /// Input rows with fields their source's schema does not know, and those fields per source.
    pub(super) unknown_rows: u64,
    pub(super) unknown_fields: BTreeMap<String, BTreeSet<String>>,
    pub(super) files_in: u64,
    pub(super) late: u64,
    /// Of those, rows past their source's `max_future`.
    pub(super) beyond_max_future: u64,
    /// The late rows, per source.
    pub(super) late_per_source: BTreeMap<String, u64>,
    /// The latest event time seen up to this batch, per source with a watermark.
    pub(super) event_time_max_ms: BTreeMap<String, i64>,
    /// Rows read, per source.
    pub(super) rows_per_source: BTreeMap<String, u64>,
    /// Malformed rows skipped (`on_error: skip`), per source.
    pub(super) skipped_per_source: BTreeMap<String, u64>,
    /// Where each source started reading (the previous batch's end offsets).
    pub(super) start_offsets: BTreeMap<String, serde_json::Value>,
    /// When each source with an idle timeout last read rows, this batch included (a source
    /// is active from the first batch on until it has read nothing for its timeout).
    pub(super) source_active_ms: BTreeMap<String, i64>,
    /// The watermark as this batch moves it (the next batch's, `W_{N+1}`), for the commit.
    pub(super) next_watermark_ms: Option<i64>,
    /// The plan, where part of it ran on workers (`engine: distributed`): its metrics say what
    /// they read.
    /// They come back within the worker timeout, the second field.
    pub(super) distributed: Option<(
        Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        std::time::Duration,
    )>,
    /// Whether part of the batch ran on workers (for its progress).
    pub(super) ran_on_workers: bool,
}

/// The sources, static tables and query of one pipeline over one checkpoint.
pub(super) struct Engine<'p> {
    pipeline: &'p Pipeline,
    checkpoint: Location,
    pub(super) sources: Vec<Box<dyn Source>>,
    static_tables: BTreeMap<String, Arc<MemTable>>,
    /// Sessions by pinned settings.
    sessions: Vec<(PinnedSettings, SessionContext)>,
    /// Each stream with a watermark: its event-time column and delay in milliseconds.
    pub(super) watermarks: BTreeMap<String, (String, i64)>,
    /// The streams whose late rows go to a sink (they are read whole).
    late_streams: BTreeSet<String>,
    /// The query batches run now, and its state.
    pub(super) query: Option<QueryState>,
    /// Whether this run has said which sources hold the watermark back (said once).
    held_back_said: std::sync::atomic::AtomicBool,
    /// Whether batches run here whatever the pipeline's `engine` (a batch computed again after
    /// it failed on the workers).
    pub(super) local_only: bool,
    /// Whether the last batch computed went to the workers where its failure is theirs to
    /// answer for: a query without state planned for them (whether it got there or not), or
    /// a stateful operator's partial phase that failed there. Such a batch is computed again
    /// here.
    pub(super) tried_distributed: bool,
    /// The workers of `engine: distributed`, and which of them take part.
    #[cfg(feature = "distributed")]
    workers: Option<Arc<crate::distributed::WorkerPool>>,
    /// The input tables of the batch computed last, by source, for an error to say where a
    /// value it quotes is ([`Engine::find_quoted_value`]); dropped once the batch commits.
    batch_tables: Vec<(String, BatchTable)>,
}

/// A batch's input from one source, as the query read it.
enum BatchTable {
    /// Read whole: the table, and the file each of its partitions holds (empty where its
    /// partitions are not one file each, or rows were taken out before the query).
    Read(Arc<MemTable>, Vec<String>),
    /// Read while the query ran, file by file.
    Streamed(Arc<crate::source::StreamedTable>),
}

impl<'p> Engine<'p> {
    /// Loads the static tables and opens the sources (reading their logs in `checkpoint`).
    pub(super) async fn open(
        pipeline: &'p Pipeline,
        checkpoint: &Location,
        hook: Option<&StoreHook>,
    ) -> Result<Self, Error> {
        let mut static_tables = BTreeMap::new();
        for (name, config) in &pipeline.tables {
            let table = config
                .connector()
                .load_table(name, hook)
                .await
                .map_err(|e| table_error(name, e))?;
            static_tables.insert(name.clone(), table);
        }
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for (name, config) in &pipeline.sources {
            sources.push(
                config
                    .connector()
                    .open(name, checkpoint, hook, pipeline.sync)
                    .await?,
            );
        }
        let watermarks: BTreeMap<String, (String, i64)> = pipeline
            .sources
            .iter()
            .filter_map(|(name, config)| {
                let wm = config.watermark.as_ref()?;
                let delay = i64::try_from(wm.delay.as_millis()).unwrap_or(i64::MAX);
                Some((name.clone(), (wm.column.clone(), delay)))
            })
            .collect();
        let late_streams = if pipeline.late_rows.is_some() {
            watermarks.keys().cloned().collect()
        } else {
            BTreeSet::new()
        };
        Ok(Self {
            pipeline,
            checkpoint: checkpoint.clone(),
            sources,
            static_tables,
            sessions: Vec::new(),
            watermarks,
            late_streams,
            query: None,
            held_back_said: std::sync::atomic::AtomicBool::new(false),
            local_only: false,
            tried_distributed: false,
            #[cfg(feature = "distributed")]
            workers: None,
            batch_tables: Vec::new(),
        })
    }

    /// Probes the workers of `engine: distributed` once before the first batch, so that one
    /// that does not answer is named when the run starts (a warning, see
    /// [`crate::distributed::WorkerPool`]), whatever its batches: one below
    /// `engine.distribute_above` probes none. Says so where fewer than two answer, as the
    /// batches then run on the driver.
    pub(super) async fn probe_workers_at_start(&mut self) {
        #[cfg(feature = "distributed")]
        if self.pipeline.engine.kind == crate::pipeline::EngineKind::Distributed && !self.local_only
        {
            let engine = &self.pipeline.engine;
            let pool = self
                .workers
                .get_or_insert_with(|| Arc::new(crate::distributed::WorkerPool::new(engine)));
            let answering = pool.ready().await.len();
            if answering < 2 {
                tracing::warn!(
                    "engine: distributed: {answering} of the {} worker(s) answer; a batch \
                     goes to the workers only where two or more do, so the batches run on the \
                     driver until then",
                    engine.workers.len()
                );
            }
        }
    }

    /// Probes the workers after a batch failed on them: those that do not answer are left
    /// out of the next batches (see [`crate::distributed::WorkerPool`]).
    pub(super) async fn probe_workers(&self) {
        #[cfg(feature = "distributed")]
        if let Some(pool) = &self.workers {
            pool.probe_all().await;
        }
    }

    /// Why a batch of `engine: distributed` reading `scans` runs on the driver; `None` where
    /// it goes to the workers (a query without state whole, below the sink; a stateful one as
    /// far as its operator lets it: an aggregation's partial phase, the merge with the state
    /// staying here). Probes the workers where due ([`crate::distributed::WorkerPool`]).
    #[cfg(feature = "distributed")]
    async fn why_on_the_driver(&self, scans: &[(String, Arc<ScanCounts>)]) -> Option<String> {
        if self.local_only {
            return Some("it is a replay, or computed again after it failed on the workers".into());
        }
        if scans.is_empty() {
            return Some(
                "its input is read whole here first (a stateful query over a source with a \
                 watermark or an idle timeout), or comes from sources that are not files"
                    .into(),
            );
        }
        let operator = self.query.as_ref().and_then(|q| q.operator.as_ref());
        if operator.is_some_and(|operator| !operator.can_spread()) {
            return Some(
                "its stateful operator runs every phase here (a join of two streams, a \
                 deduplication feeding an aggregation)"
                    .into(),
            );
        }
        // The workers' fixed cost is worth it only over enough input.
        let bytes: u64 = scans.iter().map(|(_, c)| c.bytes()).sum();
        let above = self.pipeline.engine.distribute_above_bytes();
        if !above.is_ok_and(|above| bytes >= above) {
            return Some(format!(
                "it reads {bytes} bytes, less than `engine.distribute_above`"
            ));
        }
        // A stage of one task runs here: two workers or more, or none.
        let pool = self.workers.as_ref()?;
        (pool.ready().await.len() < 2).then(|| {
            format!(
                "fewer than two workers take part (left out: {})",
                pool.left_out()
            )
        })
    }

    /// Makes each source's schema known where it can be (declared, pinned, or inferred from
    /// its first file); the names of the sources still without one (no file yet).
    pub(super) async fn resolve_schemas(&mut self) -> Result<Vec<String>, Error> {
        let mut missing = Vec::new();
        for source in &mut self.sources {
            let resolved = source.resolve_schema().await;
            // Its input fails a run whose query never reads it: said first, with the way out.
            if resolved.is_err() && !plan::mentions_word(&self.pipeline.query, source.name()) {
                tracing::warn!(
                    "source `{}` is not read by the query, and its first files fail the run \
                     below: remove it from `sources:`, or declare its `schema:` so that its \
                     files are not read to infer one",
                    source.name()
                );
            }
            if resolved?.is_none() {
                missing.push(source.name().to_string());
            }
        }
        Ok(missing)
    }

    fn session(&mut self, settings: &PinnedSettings) -> Result<SessionContext, Error> {
        if let Some((_, ctx)) = self.sessions.iter().find(|(s, _)| s == settings) {
            return Ok(ctx.clone());
        }
        let limit = self.pipeline.memory_limit_bytes().map_err(Error::Usage)?;
        let ctx = match self.pipeline.engine.kind {
            crate::pipeline::EngineKind::Local => plan::session_with_memory(settings, limit),
            // Every plan of this session stays here unless `compute` spreads it.
            #[cfg(feature = "distributed")]
            crate::pipeline::EngineKind::Distributed => {
                let pool = self.workers.get_or_insert_with(|| {
                    Arc::new(crate::distributed::WorkerPool::new(&self.pipeline.engine))
                });
                let ctx = plan::session_built_with(settings, limit, |builder| {
                    crate::distributed::coordinator(builder, pool)
                });
                let shared = ctx.state_ref();
                let kept = crate::distributed::keep_local(&mut shared.write());
                kept.map_err(|source| Error::Execution {
                    batch: None,
                    source,
                    found: None,
                })?;
                ctx
            }
            #[cfg(not(feature = "distributed"))]
            crate::pipeline::EngineKind::Distributed => {
                return Err(Error::Usage(
                    self.pipeline
                        .engine
                        .check(crate::pipeline::EngineKind::Distributed)
                        .err()
                        .unwrap_or_default(),
                ));
            }
        };
        for (name, table) in &self.static_tables {
            ctx.register_table(plan::table_name(name), Arc::clone(table) as _)
                .map_err(|e| Error::Execution {
                    batch: None,
                    source: e,
                    found: None,
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
    pub(super) async fn validate_query(&mut self) -> Result<(), Error> {
        for (name, (column, _)) in &self.watermarks {
            let source = self
                .sources
                .iter()
                .find(|s| s.name() == name)
                .expect("watermarks are of sources");
            let schema = source.schema().expect("schemas are resolved first");
            check_watermark_column(self.pipeline, name, column, &schema)?;
        }
        let sql = self.pipeline.query.clone();
        let pipeline = self.pipeline;
        let shape = &self.query_state(&sql).await?.shape;
        // Here, not where batches are computed: a pending or committed batch of an older
        // checkpoint with such a sink still finishes and replays (it sent no row there).
        check_late_rows(pipeline, shape)?;
        // An aggregate that cannot run on its arguments' types fails only when rows reach it.
        let (stateless, join) = (
            matches!(shape, plan::Shape::Stateless),
            matches!(shape, plan::Shape::Join(_)),
        );
        let (session, logical, _) = self.plan_session(&sql, self.pipeline.output_mode).await?;
        // The console shows columns by place, as a batch query's result.
        if self.pipeline.sink.connector().kind() != "console" {
            plan::check_output_names(&logical)?;
        }
        if let Ok(physical) = session.create_physical_plan(&logical).await {
            plan::check_accumulators(&physical)?;
            if !stateless {
                plan::check_state_storable(&physical, join)?;
            }
        }
        Ok(())
    }

    /// Loads the state batch `next` starts from, for the pipeline's query, so that a query
    /// its state cannot follow is refused before batch `next` is logged (and a refused run
    /// leaves nothing behind that the old query would have to finish).
    pub(super) async fn check_state(&mut self, next: BatchId) -> Result<(), Error> {
        if next.prev().is_none() {
            return Ok(());
        }
        let sql = self.pipeline.query.clone();
        let (session, logical, _) = self.plan_session(&sql, self.pipeline.output_mode).await?;
        let query = self.query_state(&sql).await?;
        if let Some(operator) = query.operator.as_mut() {
            operator.check_state(next, &session, &logical).await?;
        }
        if let Some(said) = query.edited_over_state.take() {
            tracing::warn!("{said}");
        }
        Ok(())
    }

    /// Whether the pipeline's query keeps state between batches.
    pub(super) async fn keeps_state(&mut self) -> Result<bool, Error> {
        let sql = self.pipeline.query.clone();
        Ok(self.query_state(&sql).await?.operator.is_some())
    }

    /// The schema of `sql`'s output (planned over empty stream tables), in the types its
    /// batches write: after DataFusion's type coercion, which makes a `UNION ALL` of a
    /// `bigint` and a `double` column, or a `CASE` with such branches, a `double` (walk 127
    /// (1): the plan as read named the first input's `bigint`, so a query changed to write
    /// doubles into a sink of bigints was not refused).
    pub(super) async fn output_schema(&mut self, sql: &str) -> Result<SchemaRef, Error> {
        let (session, logical, _) = self.plan_session(sql, self.pipeline.output_mode).await?;
        let written = session
            .analyzer()
            .execute_and_check(logical.clone(), session.config_options(), |_, _| {})
            .unwrap_or(logical);
        Ok(Arc::new(written.schema().as_arrow().clone()))
    }

    /// [`Self::output_schema`] as Sluice before 2026-12-08 read it (before type coercion), to
    /// tell a sink record it made from a change of the query's output.
    pub(super) async fn output_schema_as_read(&mut self, sql: &str) -> Result<SchemaRef, Error> {
        let (logical, _) = self.plan(sql).await?;
        Ok(Arc::new(logical.schema().as_arrow().clone()))
    }

    /// Whether `sql` aggregates by session windows, whose keys move as rows join them.
    pub(super) async fn groups_by_session(&mut self, sql: &str) -> Result<bool, Error> {
        Ok(self.session_key(sql).await?.is_some())
    }

    /// The name the query's result gives the session window `sql` groups by
    /// (`session_window(ts, gap) AS s`), as [`Self::aggregate_names`] names its keys, where it
    /// groups by one.
    pub(super) async fn session_key(&mut self, sql: &str) -> Result<Option<String>, Error> {
        let (logical, shape) = self.plan(sql).await?;
        Ok(match &shape {
            Shape::Aggregate(a) => a
                .event_time
                .as_ref()
                .filter(|k| k.window.session)
                .map(|k| plan::output_alias(&logical, &k.name)),
            _ => None,
        })
    }

    /// Whether `sql`, run in output mode `mode`, is an aggregation whose state keeps every
    /// group it has seen: no group key over the event time, which the watermark would close
    /// and drop (a state TTL, which drops groups too, is the pipeline's, not the query's).
    /// The mode matters: `DISTINCT ON` in append mode is a deduplication whose keys over the
    /// event time the watermark drops.
    pub(super) async fn keeps_every_group(
        &mut self,
        sql: &str,
        mode: OutputMode,
    ) -> Result<bool, Error> {
        let (_, shape) = self.plan_in(sql, mode).await?;
        Ok(matches!(&shape, Shape::Aggregate(a) if a.event_time.is_none()))
    }

    /// For an aggregation `sql`: how many group keys it has, and the name the query's result
    /// gives each aggregation output (its alias: `window_start`, `cnt`), group keys first, in
    /// the order its state keeps them; `None` for a query that does not aggregate.
    pub(super) async fn aggregate_names(
        &mut self,
        sql: &str,
    ) -> Result<Option<(usize, Vec<String>)>, Error> {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        let (logical, shape) = self.plan(sql).await?;
        if !matches!(shape, Shape::Aggregate(_)) {
            return Ok(None);
        }
        // The aggregation node's own output names, which the projection above it refers to.
        let mut outputs = None;
        logical
            .apply(|node| {
                let names = |schema: &datafusion::common::DFSchemaRef| -> Vec<String> {
                    schema.fields().iter().map(|f| f.name().clone()).collect()
                };
                match node {
                    LogicalPlan::Aggregate(agg) => {
                        outputs = Some((agg.group_expr.len(), names(&agg.schema)));
                        Ok(TreeNodeRecursion::Stop)
                    }
                    // `SELECT DISTINCT`: every column is a group key, and there is no aggregate.
                    LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
                        let keys = names(input.schema());
                        outputs = Some((keys.len(), keys));
                        Ok(TreeNodeRecursion::Stop)
                    }
                    // `DISTINCT ON (keys) columns`: the keys, then a `first_value` of each
                    // column in its order.
                    LogicalPlan::Distinct(datafusion::logical_expr::Distinct::On(on)) => {
                        // A key that is a selected expression (`DISTINCT ON (k)` where `k`
                        // is `CAST(key AS VARCHAR) AS k`) by the name the output gives it
                        // (walk 85: it was named `t.key`, "not a column of the output").
                        let mut all: Vec<String> = on
                            .on_expr
                            .iter()
                            .map(|e| {
                                let selected = on
                                    .select_expr
                                    .iter()
                                    .position(|s| s.clone().unalias() == *e)
                                    .map(|i| on.schema.field(i).name().clone());
                                match (selected, e) {
                                    (Some(name), _) => name,
                                    (None, datafusion::logical_expr::Expr::Column(c)) => {
                                        c.name.clone()
                                    }
                                    (None, other) => other.schema_name().to_string(),
                                }
                            })
                            .collect();
                        all.extend(names(&on.schema));
                        outputs = Some((on.on_expr.len(), all));
                        Ok(TreeNodeRecursion::Stop)
                    }
                    _ => Ok(TreeNodeRecursion::Continue),
                }
            })
            .map_err(plan::PlanError::Sql)?;
        Ok(outputs.map(|(groups, names)| {
            let names = names
                .iter()
                .map(|name| plan::output_alias(&logical, name))
                .collect();
            (groups, names)
        }))
    }

    /// `sql`'s logical plan (over empty stream tables) and its shape.
    pub(super) async fn plan(&mut self, sql: &str) -> Result<(LogicalPlan, Shape), Error> {
        self.plan_in(sql, self.pipeline.output_mode).await
    }

    /// [`Self::plan`], as the query would run in output mode `mode`.
    async fn plan_in(
        &mut self,
        sql: &str,
        mode: OutputMode,
    ) -> Result<(LogicalPlan, Shape), Error> {
        let (_, logical, shape) = self.plan_session(sql, mode).await?;
        Ok((logical, shape))
    }

    /// [`Self::plan_in`], with the session it was planned in (for a physical plan of it).
    async fn plan_session(
        &mut self,
        sql: &str,
        mode: OutputMode,
    ) -> Result<
        (
            datafusion::execution::context::SessionState,
            LogicalPlan,
            Shape,
        ),
        Error,
    > {
        let ctx = self.session(&plan::default_settings())?;
        Ok(plan::plan_shape(
            &ctx,
            sql,
            &self.stream_schemas(),
            &self.pipeline.watermark_columns(),
            mode,
        )
        .await?)
    }

    /// The columns of each source whose late rows a `late_rows` sink takes (read whole), once
    /// the sources' schemas are resolved.
    pub(super) fn late_row_schemas(&self) -> Vec<(String, SchemaRef)> {
        self.stream_schemas()
            .into_iter()
            .filter(|(name, _)| self.late_streams.contains(name))
            .collect()
    }

    fn stream_schemas(&self) -> Vec<(String, SchemaRef)> {
        self.sources
            .iter()
            .map(|s| {
                let schema = s.schema().expect("schemas are resolved first");
                (s.name().to_string(), schema)
            })
            .collect()
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
            let (session, logical, shape) = plan::plan_shape(
                &ctx,
                sql,
                &self.stream_schemas(),
                &self.pipeline.watermark_columns(),
                self.pipeline.output_mode,
            )
            .await?;
            let location = self.checkpoint.clone();
            let snapshot_every = self.pipeline.snapshot_every;
            let zero_divisions = plan::zero_divisions(&logical);
            if !zero_divisions.is_empty() {
                return Err(plan::PlanError::ZeroDivisor(zero_divisions).into());
            }
            if let Some(ttl) = &self.pipeline.state_ttl {
                check_state_ttl(ttl, self.pipeline, &shape, &logical)?;
            }
            // Said at the default level until a batch has run with this query on the
            // checkpoint (its text kept in `queries/`);
            // after, at `info` (walk 62: a scheduled pipeline said the same notes every run,
            // for a column the user knew holds no null; walk 80: the `DISTINCT ON` note).
            let known = self
                .checkpoint
                .exists(&self.checkpoint.path(&crate::checkpoint::paths::query(
                    &crate::vocab::fingerprint(sql),
                )))
                .await
                .unwrap_or(false);
            let note = |said: &str| {
                if known {
                    tracing::info!("{said}");
                } else {
                    tracing::warn!("{said}");
                }
            };
            // A query edited over kept state: the state holds what the old one computed
            // (walk 82: a `WHERE` added to an aggregation, the sink then matched neither
            // query, with no word).
            let edited_over_state = (!known
                && !matches!(shape, Shape::Stateless)
                && !crate::state::StateFiles::operators(&self.checkpoint)
                    .await?
                    .is_empty())
            .then(|| {
                format!(
                    "the query differs from the one the checkpoint's batches ran, and its state \
                     is kept: what the state holds so far (groups, kept rows) was computed by \
                     the old query, so where the edit changes which rows count (a `WHERE`, a \
                     join's condition) the results mix both, as in Spark. For the new query's \
                     results over all the input, run it on a new checkpoint{}",
                    crate::driver::sink_advice(self.pipeline).start_over
                )
            });
            // A group that stops passing a condition on its aggregates is not taken back in
            // update mode (walk 82: 5 of 7 groups in the sink no longer passed it, unsaid).
            if self.pipeline.output_mode == OutputMode::Update {
                for (condition, over_distinct_on) in plan::having_conditions(&logical) {
                    if over_distinct_on {
                        // Walk 87 (W1): a CDC query's `WHERE op <> 'd'` over its `DISTINCT
                        // ON` left deleted keys in the table, unsaid.
                        note(&format!(
                            "in update mode a key's row is written when it changes, and a key \
                             whose newest row stops passing `WHERE {condition}` (over the \
                             `DISTINCT ON`) is not taken back: its last row written stays in \
                             the sink (as in Spark's update mode; a change log's deletes do \
                             not delete). For the table the condition gives, use \
                             `output_mode: complete`; or write every key's newest row, the \
                             condition's columns with it, and filter when reading; into Kafka, \
                             a `value:` that is NULL where the condition fails (`CASE WHEN \
                             {condition} THEN ... END`) writes a tombstone, which deletes the \
                             key from a compacted topic"
                        ));
                    } else {
                        note(&format!(
                            "in update mode a group is written when it changes, and one that \
                             stops passing `HAVING {condition}` is not taken back: its last row \
                             written stays in the sink (as in Spark's update mode). For the \
                             table the condition gives, use `output_mode: complete`, or keep \
                             the condition out of `HAVING` and filter when reading"
                        ));
                    }
                }
            }
            // Update mode rewrites a window as it changes; only a watermark ever lets one go.
            if let Shape::Aggregate(a) = &shape
                && a.unclosed_windows
                && self.pipeline.output_mode == OutputMode::Update
                && self.pipeline.state_ttl.is_none()
            {
                tracing::warn!(
                    "the query groups by time windows that no watermark closes: every window \
                     stays in the state for ever, which grows with the time the stream spans. \
                     Give the source the window reads a `watermark:` on the column it bins \
                     (`watermark: {{ column: ts, delay: 10s }}`), so that windows the \
                     watermark has passed are let go, or set `state_ttl:` to let a window go \
                     once no row has come for it that long"
                );
            }
            // An idle timeout lets a source stop holding back the watermark of several; of
            // the only watermarked source it does nothing (walk 95: accepted without a word,
            // and windows stayed open once every device went quiet).
            let watermarked: Vec<&String> = self
                .pipeline
                .sources
                .iter()
                .filter(|(_, config)| config.watermark.is_some())
                .map(|(name, _)| name)
                .collect();
            if let [only] = watermarked.as_slice()
                && !matches!(shape, Shape::Stateless)
                && self.pipeline.sources[only.as_str()]
                    .watermark
                    .as_ref()
                    .is_some_and(|wm| wm.idle_timeout.is_some())
            {
                note(&format!(
                    "source `{only}`: `idle_timeout` lets an idle source stop holding back the \
                     watermark of several watermarked sources; `{only}` is the only one, so it \
                     does nothing here: while it reads nothing, the watermark stays where it \
                     is and the windows it has not passed stay open (as in Spark and Flink, \
                     the watermark moves with event time, not the clock). Rows with later \
                     times close them"
                ));
            }
            // As the query's result (under an aggregation, it only feeds it).
            let feeds_aggregate = matches!(&shape, Shape::Aggregate(a) if a.dedup.is_some());
            if self.pipeline.output_mode == OutputMode::Append
                && !feeds_aggregate
                && plan::distinct_on_orders(&logical, &self.stream_names())
            {
                note(
                    "in append mode `DISTINCT ON` writes each key's first row seen, once: its \
                     `ORDER BY` picks among the rows of one batch only, and a later batch's \
                     row of the key is dropped, whatever it sorts as (Spark's \
                     `dropDuplicates`). For the row the `ORDER BY` picks over the whole stream \
                     (the newest, say), use `output_mode: update` or `complete`",
                );
            }
            for said in plan::dialect_notes(sql, &logical) {
                note(&said);
            }
            for said in plan::spark_position_calls(&logical) {
                tracing::warn!("{said}");
            }
            let divisions = plan::integer_divisions(&logical);
            if !divisions.is_empty() {
                tracing::warn!(
                    "the query divides integers ({}): DataFusion keeps the whole part (1 / 4 is \
                     0), where Spark and DuckDB give a fraction (0.25). Where a fraction is \
                     meant, make one side a double: `CAST(a AS DOUBLE) / b`",
                    divisions
                        .iter()
                        .map(|d| format!("`{d}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            // A join bounded one way only keeps the other side's rows for ever (as Spark does).
            if let Shape::Join(j) = &shape {
                let sides: Vec<&str> = [
                    ("left", j.left_reach_ns.is_none()),
                    ("right", j.right_reach_ns.is_none()),
                ]
                .into_iter()
                .filter_map(|(side, unbounded)| unbounded.then_some(side))
                .collect();
                if !sides.is_empty() {
                    tracing::warn!(
                        "the join of two streams keeps every row of its {} side for ever (the \
                         state grows with the stream, as Spark's does): its condition sets no \
                         bound on how much later a row of the other side may match one. Bound \
                         it both ways (`b.ts BETWEEN a.ts AND a.ts + INTERVAL '1 hour'`) to let \
                         rows go once the watermark passes{}",
                        sides.join(" and "),
                        if j.months {
                            " (an interval of months or years has no fixed length, so it \
                             bounds nothing: write days, `INTERVAL '30' DAY`)"
                        } else {
                            ""
                        }
                    );
                }
            }
            // The state TTL bounds the operators whose keys no watermark closes.
            let ttl = |shape: &plan::AggregateShape| {
                self.pipeline
                    .state_ttl
                    .filter(|_| shape.event_time.is_none())
            };
            let operator: Option<Box<dyn Operator>> = match &shape {
                Shape::Aggregate(a) => {
                    let aggregate = AggregateOperator::new(
                        a.clone(),
                        self.pipeline.output_mode,
                        location.clone(),
                        snapshot_every,
                    )
                    .with_ttl(ttl(a));
                    Some(match &a.dedup {
                        Some(dedup) => Box::new(DedupAggregateOperator::new(
                            AggregateOperator::dedup((**dedup).clone(), location, snapshot_every)
                                .with_ttl(ttl(dedup)),
                            aggregate,
                        )),
                        None => Box::new(aggregate),
                    })
                }
                Shape::Join(j) => Some(Box::new(JoinOperator::new(j, location, snapshot_every))),
                Shape::Stateless => None,
            };
            let optimized = session.optimize(&logical).map_err(plan::PlanError::Sql)?;
            // The plan names streams by their names in SQL; the run, by the pipeline's.
            let in_sql: BTreeMap<String, String> = self
                .sources
                .iter()
                .map(|s| (plan::sql_name(s.name()), s.name().to_string()))
                .collect();
            let by_source = |in_sql_name: String| in_sql.get(&in_sql_name).cloned();
            let mut columns: BTreeMap<String, Vec<String>> =
                plan::stream_columns(&logical, &optimized, &in_sql.keys().cloned().collect())
                    .into_iter()
                    .filter_map(|(stream, read)| Some((by_source(stream)?, read)))
                    .collect();
            // Planned at batch time 0: conditions over the batch's time are not known here.
            let watermarks: BTreeMap<String, String> = self
                .watermarks
                .iter()
                .map(|(stream, (column, _))| (plan::sql_name(stream), column.clone()))
                .collect();
            let before_watermark = |optimized: &datafusion::logical_expr::LogicalPlan| {
                if operator.is_none() || plan::reads_batch_time(&logical) {
                    return BTreeMap::new();
                }
                plan::pre_watermark_filters(optimized, &watermarks)
                    .into_iter()
                    .filter_map(|(stream, condition)| Some((by_source(stream)?, condition)))
                    .collect()
            };
            let pre_watermark = before_watermark(&optimized);
            // DataFusion's `filter_null_join_keys` adds the `IS NOT NULL` of an inner join's
            // keys (and of an outer join's side that gives nulls), as Spark's constraint
            // inference does; the push-down then takes them to the streams' scans. Only the
            // conditions are taken from this plan: the batch runs the other (a row with a
            // null key matches nothing either way).
            let pre_watermark_with_join_keys = if operator.is_none() {
                BTreeMap::new()
            } else {
                let mut keys_filtered = session.clone();
                keys_filtered
                    .config_mut()
                    .options_mut()
                    .optimizer
                    .filter_null_join_keys = true;
                let optimized = keys_filtered
                    .optimize(&logical)
                    .map_err(plan::PlanError::Sql)?;
                before_watermark(&optimized)
            };
            // Planned at another time than the batches run at, the columns a query over the
            // batch's time reads are not known here: its streams are read whole.
            if plan::reads_batch_time(&logical) {
                columns.clear();
            }
            // `SELECT * EXCLUDE (c)` names `c` in its text alone, where the plan has no trace of
            // it: a table without it would not plan.
            if plan::excludes_columns(sql) {
                columns.clear();
            }
            // Late rows are kept whole.
            if operator.is_some() {
                columns.retain(|stream, _| !self.late_streams.contains(stream));
                // The watermark is read from the source, whether the query reads it or not.
                for (stream, (column, _)) in &self.watermarks {
                    if let Some(read) = columns.get_mut(stream)
                        && !read.contains(column)
                    {
                        read.push(column.clone());
                    }
                }
            }
            // A source the query never names is not read (its input could only fail the
            // batch or count rows no output comes from), unless its watermark moves the
            // query's.
            let streams = self.stream_names();
            let named = plan::streams_read(&logical, &streams);
            let unread: BTreeSet<String> = streams
                .into_iter()
                .filter(|name| !named.contains(name) && !self.watermarks.contains_key(name))
                .collect();
            for name in &unread {
                tracing::warn!(
                    "source `{name}` is not read by the query: its offsets move on with each \
                     batch, and its rows are not read. Read it in the query, or remove it from \
                     `sources:` (on this checkpoint too: the other sources read on)"
                );
            }
            self.query = Some(QueryState {
                fingerprint,
                shape,
                operator,
                columns,
                unread,
                pre_watermark,
                pre_watermark_with_join_keys,
                edited_over_state,
            });
        }
        Ok(self.query.as_mut().expect("set above"))
    }

    /// The watermark after the batch `entry` logs (`W_{N+1}`), from the latest event time
    /// each source has seen up to it and when each last read rows (in batch time): sources
    /// with an idle timeout that have read nothing for that long hold it back no more.
    fn next_watermark(
        &self,
        stateful: bool,
        entry: &OffsetsEntry,
        event_time_max_ms: &BTreeMap<String, i64>,
        source_active_ms: &BTreeMap<String, i64>,
    ) -> Option<i64> {
        let delays: BTreeMap<String, i64> = self
            .watermarks
            .iter()
            .map(|(name, (_, delay))| (name.clone(), *delay))
            .collect();
        let idle: std::collections::BTreeSet<String> = self
            .pipeline
            .sources
            .iter()
            .filter_map(|(name, config)| {
                let timeout = config.watermark.as_ref()?.idle_timeout?;
                let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
                let active = *source_active_ms.get(name)?;
                (entry.info.batch_timestamp_ms.saturating_sub(active) >= timeout)
                    .then(|| name.clone())
            })
            .collect();
        // The trap of several watermarked sources: one that has read nothing holds the
        // watermark back, so nothing closes, in silence.
        // (One with an idle timeout is let go once idle that long: the advice is taken.)
        let waiting: Vec<String> = delays
            .keys()
            .filter(|name| !idle.contains(*name) && !event_time_max_ms.contains_key(*name))
            .filter(|name| {
                self.pipeline.sources[name.as_str()]
                    .watermark
                    .as_ref()
                    .is_none_or(|wm| wm.idle_timeout.is_none())
            })
            .map(|name| format!("`{name}`"))
            .collect();
        if stateful
            && !waiting.is_empty()
            && delays
                .keys()
                .any(|name| event_time_max_ms.contains_key(name))
            && !self
                .held_back_said
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            let (sources, have) = if waiting.len() == 1 {
                ("source", "has")
            } else {
                ("sources", "have")
            };
            tracing::warn!(
                "the watermark does not move: {sources} {} {have} read no event time yet, and \
                 with several watermarked sources the watermark follows the slowest (as in \
                 Spark and Flink), so no window (nor join row kept for the watermark) closes \
                 until every one has read rows. Where a source may read nothing for a while, \
                 give its `watermark:` an `idle_timeout` (`{{ column: ts, delay: 10s, \
                 idle_timeout: 1m }}`): idle that long, it holds the watermark back no more",
                waiting.join(", ")
            );
        }
        super::watermark::next(
            stateful,
            entry.info.watermark_ms,
            event_time_max_ms,
            &delays,
            &idle,
        )
    }

    /// Whether the query keeps state that the watermark closes (so a batch without new input
    /// still has work when the watermark moves: emitting closed windows, dropping kept rows).
    pub(super) fn closes_by_watermark(&self, watermark_ms: i64) -> bool {
        self.pipeline.output_mode != OutputMode::Complete
            && self.query.as_ref().is_some_and(|q| {
                let bounded = match &q.shape {
                    Shape::Aggregate(a) => {
                        a.event_time.is_some()
                            || a.dedup.as_ref().is_some_and(|d| d.event_time.is_some())
                    }
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

    /// Where the text value `error` quotes is in the input of the batch computed last, in
    /// words (source, column, and the file and its row where the input knows them), for a
    /// query that failed reading text as another type (`Cannot cast string 'x' ...`, a
    /// parse error quoting it: DataFusion names the value but not where it came from);
    /// `None` where the error quotes no such value, or no text column of the input holds it
    /// (a value the query made itself). Reads the batch's files again where the query read
    /// them as it ran.
    pub(super) async fn find_quoted_value(
        &self,
        error: &datafusion::error::DataFusionError,
    ) -> Option<String> {
        // Bytes a cast to text refused (walk 101: "Encountered non UTF-8 data ... from index
        // 32", a place in the batch's joined values), or a quoted value.
        let not_utf8 = error.find_root().to_string().contains("non UTF-8 data");
        let value = match not_utf8 {
            true => String::new(),
            false => quoted_value(error)?,
        };
        let sought = match not_utf8 {
            true => crate::source::Sought::NotUtf8,
            false => crate::source::Sought::Text(&value),
        };
        for (source, table) in &self.batch_tables {
            let found = match table {
                BatchTable::Streamed(table) => table.find_text(sought).await,
                BatchTable::Read(table, names) => {
                    let mut partitions = Vec::new();
                    for partition in &table.batches {
                        partitions.push(partition.read().await.clone());
                    }
                    if names.len() == partitions.len() {
                        names.iter().zip(&partitions).find_map(|(name, batches)| {
                            let (column, row, rows) = crate::source::find_text(batches, sought)?;
                            Some(crate::source::FoundText {
                                column,
                                part: Some(name.clone()),
                                row: Some(row + 1),
                                rows,
                                record: crate::source::record_of_row(batches, row),
                            })
                        })
                    } else {
                        let all: Vec<RecordBatch> = partitions.into_iter().flatten().collect();
                        crate::source::find_text(&all, sought).map(|(column, row, rows)| {
                            crate::source::FoundText {
                                column,
                                part: None,
                                row: None,
                                rows,
                                record: crate::source::record_of_row(&all, row),
                            }
                        })
                    }
                }
            };
            let Some(found) = found else {
                continue;
            };
            let column = &found.column;
            let rows = |n: usize, of: &str| match n {
                1 => String::new(),
                n => format!(" ({n} rows {of} hold it)"),
            };
            let what = match not_utf8 {
                true => "a value that is not UTF-8 text".to_string(),
                false => format!("`{value}`"),
            };
            // A Kafka record by its offset, where the rows carry it (a part is a topic's
            // partition); a file's by its row.
            let record = match (&found.part, &found.record) {
                (_, Some(record)) if record.starts_with("topic ") => Some(record.clone()),
                (Some(part), Some(offset)) if part.starts_with("topic ") => {
                    Some(format!("{part} {offset}"))
                }
                _ => None,
            };
            return Some(match (&found.part, found.row, record) {
                (_, _, Some(record)) => format!(
                    "{what} is in column `{column}` of source `{source}`: {record}{}",
                    rows(found.rows, "of the batch's input")
                ),
                (Some(file), Some(row), None) => format!(
                    "{what} is in column `{column}` of source `{source}`: {file}, row {row} of \
                     the rows read from it{}",
                    rows(found.rows, "of that part")
                ),
                _ => format!(
                    "{what} is in column `{column}` of source `{source}`{}",
                    rows(found.rows, "of the batch's input")
                ),
            });
        }
        None
    }

    /// Drops the input tables of the batch computed last (it committed: no error of it is to
    /// be told any more).
    pub(super) fn forget_batch_tables(&mut self) {
        self.batch_tables.clear();
    }

    /// Computes batch `batch` as `entry` logged it, from `start`, with query `sql`: reads the
    /// sources, sets late rows aside and runs the query (a stateful operator reads state version
    /// `batch - 1`). Writes nothing.
    pub(super) async fn compute(
        &mut self,
        batch: BatchId,
        entry: &OffsetsEntry,
        start: &Start<'_>,
        sql: &str,
    ) -> Result<Computed, Error> {
        let exec_err = |source| Error::Execution {
            batch: Some(batch),
            source,
            found: None,
        };
        self.tried_distributed = false;
        let ctx = self.session(&entry.info.settings)?;
        let query = self.query_state(sql).await?;
        let stateful = query.operator.is_some();
        let columns = query.columns.clone();
        let unread = query.unread.clone();
        let shape = query.shape.clone();
        // As the batch was planned: a batch an older Sluice planned tests them after.
        let settings = &entry.info.settings;
        let pre_watermark = if settings.join_keys_before_watermark {
            query.pre_watermark_with_join_keys.clone()
        } else if settings.where_before_watermark {
            query.pre_watermark.clone()
        } else {
            BTreeMap::new()
        };
        let watermark_ms = entry.info.watermark_ms.filter(|_| stateful);
        let mut computed = Computed {
            output: Output::Rows(BatchOutput {
                schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
                partitions: Vec::new(),
            }),
            scans: Vec::new(),
            late_rows: Vec::new(),
            stateful,
            rows_in: 0,
            skipped: 0,
            lost: 0,
            unknown_rows: 0,
            unknown_fields: BTreeMap::new(),
            files_in: 0,
            late: 0,
            beyond_max_future: 0,
            late_per_source: BTreeMap::new(),
            event_time_max_ms: BTreeMap::new(),
            rows_per_source: BTreeMap::new(),
            skipped_per_source: BTreeMap::new(),
            start_offsets: start.ends.clone(),
            source_active_ms: BTreeMap::new(),
            next_watermark_ms: None,
            distributed: None,
            ran_on_workers: false,
        };
        self.batch_tables.clear();
        let mut batch_tables = Vec::new();
        for source in &self.sources {
            let end = entry.offset_of(source.name()).ok_or_else(|| {
                CheckpointError::Inconsistent {
                    location: self.checkpoint.to_string(),
                    reason: format!(
                        "offsets/{batch} has no offset for source `{}`; sources cannot be added to a pipeline mid-way",
                        source.name()
                    ),
                }
            })?;
            if unread.contains(source.name()) {
                continue;
            }
            let read = columns.get(source.name()).map(Vec::as_slice);
            let idle_timeout = self.pipeline.sources[source.name()]
                .watermark
                .as_ref()
                .and_then(|wm| wm.idle_timeout);
            // The rows are read whole first where the batch needs to know them before the
            // query runs: their event times move the watermark and drop late rows, and an
            // idle source is one that read none. Otherwise the query reads them as it runs.
            let whole =
                idle_timeout.is_some() || (stateful && self.watermarks.contains_key(source.name()));
            let from = start.ends.get(source.name());
            let scan = if whole {
                BatchScan::Read(source.read(from, end, read).await?)
            } else {
                source
                    .scan(from, end, read, entry.info.settings.target_partitions)
                    .await?
            };
            let mut input = match scan {
                BatchScan::Read(input) => input,
                BatchScan::Streamed { table, counts } => {
                    batch_tables.push((
                        source.name().to_string(),
                        BatchTable::Streamed(Arc::clone(&table)),
                    ));
                    register(&ctx, source.name(), table as _, Some(batch))?;
                    computed.scans.push((source.name().to_string(), counts));
                    continue;
                }
            };
            computed.rows_in += input.rows;
            computed
                .rows_per_source
                .insert(source.name().to_string(), input.rows);
            // The query's conditions on the stream's own rows that Spark tests before its
            // watermark: a row they remove is neither late, nor in the watermark, nor a sign
            // that the source is active. One that fails on a row (a cast) is left to the
            // query, which tests it on the rows that reach it, as before.
            let mut rows_left = input.rows;
            if stateful
                && self.watermarks.contains_key(source.name())
                && let Some(condition) = pre_watermark.get(source.name())
            {
                match event_time::keep_where(&mut input, condition) {
                    Ok(kept) => rows_left = kept,
                    Err(e) => tracing::debug!(
                        %batch,
                        "source `{}`: its conditions are tested by the query only: {e}",
                        source.name()
                    ),
                }
            }
            if idle_timeout.is_some() {
                let active = match start.source_active_ms.get(source.name()) {
                    Some(before) if rows_left == 0 => *before,
                    // An `idle_timeout` set since the batches before, on a source that read
                    // no row in any of them (no event time seen): idle since the batch before
                    // this one at least, not only from now.
                    None if rows_left == 0
                        && !start.event_time_max_ms.contains_key(source.name()) =>
                    {
                        start
                            .previous_timestamp_ms
                            .unwrap_or(entry.info.batch_timestamp_ms)
                    }
                    _ => entry.info.batch_timestamp_ms,
                };
                computed
                    .source_active_ms
                    .insert(source.name().to_string(), active);
            }
            computed.skipped += input.skipped;
            *computed
                .skipped_per_source
                .entry(source.name().to_string())
                .or_default() += input.skipped;
            computed.lost += input.lost;
            computed.unknown_rows += input.unknown_rows;
            if !input.unknown_fields.is_empty() {
                computed
                    .unknown_fields
                    .entry(source.name().to_string())
                    .or_default()
                    .extend(std::mem::take(&mut input.unknown_fields));
            }
            computed.files_in += input.files;
            if stateful && let Some((column, _)) = self.watermarks.get(source.name()) {
                let lateness =
                    event_time::Lateness::of(&shape, self.pipeline.output_mode, source.name());
                let future_limit_ns = self.pipeline.sources[source.name()]
                    .watermark
                    .as_ref()
                    .and_then(|wm| wm.max_future)
                    .map(|ahead| {
                        let ahead = i64::try_from(ahead.as_nanos()).unwrap_or(i64::MAX);
                        entry
                            .info
                            .batch_timestamp_ms
                            .saturating_mul(1_000_000)
                            .saturating_add(ahead)
                    });
                let seen = event_time::drop_late(
                    &mut input,
                    column,
                    &lateness,
                    watermark_ms,
                    future_limit_ns,
                )
                .map_err(|e| exec_err(e.into()))?;
                computed.late += seen.late;
                computed.beyond_max_future += seen.beyond_max_future;
                *computed
                    .late_per_source
                    .entry(source.name().to_string())
                    .or_default() += seen.late;
                if self.late_streams.contains(source.name()) && !seen.late_rows.is_empty() {
                    computed
                        .late_rows
                        .push((source.name().to_string(), seen.late_rows));
                }
                let previous = start.event_time_max_ms.get(source.name()).copied();
                if let Some(max) = seen.max_ms.max(previous) {
                    computed
                        .event_time_max_ms
                        .insert(source.name().to_string(), max);
                }
            }
            // Each partition a file's rows, all of them as read: a row of a partition is that
            // row of its file.
            let as_read = input.part_names.len() == input.partitions.len()
                && input.rows
                    == input
                        .partitions
                        .iter()
                        .flatten()
                        .map(|b| b.num_rows() as u64)
                        .sum::<u64>();
            let names = if as_read {
                std::mem::take(&mut input.part_names)
            } else {
                Vec::new()
            };
            let table = input.into_table().map_err(exec_err)?;
            batch_tables.push((
                source.name().to_string(),
                BatchTable::Read(Arc::clone(&table), names),
            ));
            register(&ctx, source.name(), table as _, Some(batch))?;
        }
        self.batch_tables = batch_tables;
        #[allow(unused_mut)]
        let (mut state, logical) =
            plan::plan_batch(&ctx, sql, entry.info.batch_timestamp_ms).await?;
        // A batch that streams enough input (the workers' fixed cost is then worth it) runs
        // on the workers: a query without state whole, below the sink; a stateful one as far
        // as its operator lets it (an aggregation's partial phase; the merge with the state
        // stays here). One computed again after it failed there runs here.
        #[cfg(feature = "distributed")]
        if self.pipeline.engine.kind == crate::pipeline::EngineKind::Distributed {
            let why = self.why_on_the_driver(&computed.scans).await;
            if let Some(why) = &why {
                // Where the query itself keeps every batch here, `engine: distributed` does
                // nothing for it: said once a run at the default level (walk 65: only at
                // `info`, batch by batch); a batch's own reason (its size) at `info`.
                let by_query = why.starts_with("its input is read whole here first")
                    || why.starts_with("its stateful operator runs every phase here");
                if by_query && crate::source::first_time(format!("on the driver {why}")) {
                    tracing::warn!(
                        "`engine: distributed` has no effect on this query: every batch runs on \
                         the driver, as {why}",
                        why = why.replacen("its ", "the batch's ", 1)
                    );
                } else {
                    tracing::info!(%batch, "the batch runs on the driver: {why}");
                }
            }
            let wanted = why.is_none();
            match self.query.as_mut().and_then(|q| q.operator.as_mut()) {
                Some(operator) => operator.spread_next(wanted),
                None if wanted => {
                    self.tried_distributed = true;
                    crate::distributed::spread(&mut state).map_err(exec_err)?;
                }
                None => {}
            }
        }
        computed.next_watermark_ms = self.next_watermark(
            stateful,
            entry,
            &computed.event_time_max_ms,
            &computed.source_active_ms,
        );
        let ns = |ms: i64| ms.saturating_mul(1_000_000);
        let time = BatchTime {
            watermark_ns: watermark_ms.map(ns),
            next_watermark_ns: computed.next_watermark_ms.map(ns),
            timestamp_ms: entry.info.batch_timestamp_ms,
        };
        let query = self.query.as_mut().expect("analyzed above");
        let logical = if query.operator.is_some() {
            plan::inline_scalar_subqueries(&state, logical)
                .await
                .map_err(exec_err)?
        } else {
            logical
        };
        let physical = match query.operator.as_mut() {
            // A source read while the operator ran that failed is the batch's error; one that
            // failed computing on the workers is computed again here.
            Some(operator) => {
                let ran = operator.run(batch, &state, &logical, time).await;
                #[cfg(feature = "distributed")]
                if let Some(plan) = operator.ran_elsewhere() {
                    computed.distributed = Some((plan, self.pipeline.engine.worker_timeout()));
                }
                // Only the part that failed on the workers is computed again here.
                ran.map_err(|e| {
                    computed.scan_error().unwrap_or_else(|| match e {
                        crate::state::StateError::Remote { source, .. } => {
                            self.tried_distributed = true;
                            exec_err(source)
                        }
                        e => e.into(),
                    })
                })?
            }
            None => state
                .create_physical_plan(&logical)
                .await
                .map_err(exec_err)?,
        };
        // A failure is the workers' to answer for only where the plan went to them (the
        // planner keeps a batch whose parts fall in one partition here).
        #[cfg(feature = "distributed")]
        {
            self.tried_distributed = crate::distributed::is_distributed(&physical);
            if self.tried_distributed {
                computed.distributed =
                    Some((Arc::clone(&physical), self.pipeline.engine.worker_timeout()));
            }
            if computed.distributed.is_some() {
                tracing::info!(%batch, "the batch's reads and the work above them run on the workers");
            }
        }
        // A query with state runs whole here (its operator keeps what the batch computed,
        // for the commit); one without hands its plan to the sink.
        if stateful {
            let partitions = datafusion::physical_plan::collect_partitioned(
                Arc::clone(&physical),
                state.task_ctx(),
            )
            .await
            .map_err(|e| computed.scan_error().unwrap_or_else(|| exec_err(e)))?;
            computed.output = Output::Rows(BatchOutput {
                schema: physical.schema(),
                partitions,
            });
            computed.settle().await?;
        } else {
            computed.output = Output::Plan {
                plan: physical,
                task: state.task_ctx(),
            };
        }
        Ok(computed)
    }
}

/// Refuses a `state_ttl` where it has nothing to bound (a query without state, a join of two
/// streams, which the watermark bounds, an aggregation whose groups the watermark closes), and
/// one on event time without a watermark to measure it by.
pub(crate) fn check_state_ttl(
    ttl: &crate::pipeline::StateTtl,
    pipeline: &Pipeline,
    shape: &Shape,
    logical: &LogicalPlan,
) -> Result<(), Error> {
    let reason = match shape {
        Shape::Stateless => "applies to a query that keeps state (an aggregation or a \
                             deduplication); this one keeps none"
            .to_string(),
        Shape::Join(_) => "applies to aggregations and deduplications; a join of two streams \
                           keeps a row only until the watermark passes the last time it can \
                           match"
            .to_string(),
        Shape::Aggregate(a) => {
            let keys = std::iter::once(a)
                .chain(a.dedup.as_deref())
                .map(|shape| {
                    shape
                        .event_time
                        .as_ref()
                        .map(|key| plan::output_alias(logical, &key.name))
                })
                .collect::<Option<Vec<String>>>();
            match keys {
                Some(keys) => format!(
                    "is for state no event-time key bounds; this query's groups close by the \
                     watermark already (its key{} `{}`): remove `state_ttl`",
                    if keys.len() > 1 { "s" } else { "" },
                    keys.join("`, `")
                ),
                None if ttl.time == crate::pipeline::TtlTime::Event
                    && pipeline.sources.values().all(|s| s.watermark.is_none()) =>
                {
                    "on event time needs a source with a `watermark` (its clock); add one, or \
                     measure on batch timestamps with `state_ttl: { after: <duration>, time: \
                     processing }`"
                        .to_string()
                }
                None => return Ok(()),
            }
        }
    };
    // The setting is at fault, not the query.
    Err(Error::Usage(format!("the pipeline's `state_ttl` {reason}")))
}

/// Refuses a `late_rows` sink that no row could reach: the query drops no row as late (a
/// stateless query keeps every row, as Spark's does, rows from the future too; a complete-mode
/// aggregation keeps every group; an aggregation not over event time counts every row).
pub(crate) fn check_late_rows(pipeline: &Pipeline, shape: &Shape) -> Result<(), Error> {
    if pipeline.late_rows.is_none() {
        return Ok(());
    }
    let reachable = pipeline.sources.iter().any(|(name, config)| {
        config.watermark.is_some()
            && event_time::Lateness::of(shape, pipeline.output_mode, name)
                != event_time::Lateness::Never
    });
    if reachable {
        return Ok(());
    }
    let why = match shape {
        Shape::Stateless => "this query keeps no state, so it drops no row as late",
        _ => {
            "this query drops no row as late (its state is not over a watermarked event time, \
              or, in complete mode, it keeps every group)"
        }
    };
    // The setting is at fault, not the query.
    Err(Error::Usage(format!(
        "the pipeline's `late_rows` would never receive a row: {why}; remove `late_rows`"
    )))
}

/// Refuses a watermark on `column` of source `name` (of `schema`) that is no timestamp column
/// of it, naming the key and its line; `sluice explain` makes the run's checks too.
pub(crate) fn check_watermark_column(
    pipeline: &Pipeline,
    name: &str,
    column: &str,
    schema: &datafusion::arrow::datatypes::Schema,
) -> Result<(), Error> {
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
        Ok(f) if !matches!(f.data_type(), DataType::Timestamp(_, _)) => {
            let declared = pipeline.sources.get(name).is_some_and(|c| {
                c.settings.contains_key("schema") || c.settings.contains_key("columns")
            });
            Some(
                format!(
                    "`{column}` is {} ({}), not a timestamp, and a watermark needs one: \
                 declare `{column}: timestamp` in the source's `schema:` (text times \
                 such as 2026-01-01T10:00:00Z read into it){}",
                    match f.data_type() {
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                            "a string".to_string()
                        }
                        t if t.is_integer() => "an integer".to_string(),
                        t if t.is_floating() => "a double".to_string(),
                        t => t.to_string(),
                    },
                    if declared {
                        "as declared"
                    } else {
                        "as inferred from the first files: there, not every value is a \
                     time with a time of day, or none is there but nulls"
                    },
                    if f.data_type().is_numeric() {
                        format!(
                            "; if `{column}` holds Unix times, also set the source's \
                         `epoch_unit` (seconds, milliseconds, microseconds or \
                         nanoseconds)"
                        )
                    } else {
                        String::new()
                    },
                ) + &if declared {
                    String::new()
                } else {
                    // A `schema:` is every column the source reads (walk 112: `schema: { ts:
                    // timestamp }` alone left the query's other columns out).
                    format!(
                        ". A `schema:` names every column the source reads, not only the ones it \
                     changes: `schema: {{ {} }}`",
                        schema
                            .fields()
                            .iter()
                            .map(|f| {
                                let kind = match f.name() == column {
                                    true => "timestamp".to_string(),
                                    false => crate::format::sql_type_name(f.data_type()),
                                };
                                format!(
                                    "{}: {}",
                                    crate::vocab::yaml_scalar(f.name()),
                                    crate::vocab::yaml_scalar(&kind)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            )
        }
        Ok(_) => None,
    };
    if let Some(reason) = reason {
        let key = format!("sources.{name}.watermark.column");
        return Err(Error::Usage(format!(
            "`{key}`{}: {reason}",
            pipeline
                .key_line(&key)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// Registers (or replaces) a table in the session.
fn register(
    ctx: &SessionContext,
    name: &str,
    table: Arc<dyn datafusion::datasource::TableProvider>,
    batch: Option<BatchId>,
) -> Result<(), Error> {
    ctx.deregister_table(plan::table_name(name))
        .and_then(|_| ctx.register_table(plan::table_name(name), table))
        .map(|_| ())
        .map_err(|source| Error::Execution {
            batch,
            source,
            found: None,
        })
}

/// What the driver learns from a batch's output streaming into the sink: its content hash,
/// and the computation's own error (the sink sees only its text).
pub(super) struct OutputWatch {
    partitions: usize,
    inner: std::sync::Mutex<Watched>,
}

#[derive(Default)]
struct Watched {
    digest: Option<crate::digest::Digester>,
    finished: usize,
    digest_error: Option<String>,
    error: Option<datafusion::error::DataFusionError>,
}

impl OutputWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The computation's error, if it failed.
    pub(super) fn take_error(&self) -> Option<datafusion::error::DataFusionError> {
        self.lock().error.take()
    }

    /// The content hash of the whole output: an error where it could not be taken, or where
    /// a partition was not read to its end.
    pub(super) fn digest(&self) -> Result<crate::digest::OutputDigest, String> {
        let watched = self.lock();
        if let Some(e) = &watched.digest_error {
            return Err(e.clone());
        }
        if watched.finished != self.partitions {
            return Err(format!(
                "{} of {} output partitions were read to their end",
                watched.finished, self.partitions
            ));
        }
        Ok(watched
            .digest
            .as_ref()
            .map(crate::digest::Digester::finish)
            .unwrap_or_else(|| {
                crate::digest::Digester::new(crate::digest::Held::default()).finish()
            }))
    }
}

/// Runs `plan`'s partitions in `task` as streams for a sink, each hashed as it passes
/// (rows as a sink of `format` holds them), the hashes and any error kept in the watch.
pub(super) fn output_streams(
    plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    task: &Arc<datafusion::execution::TaskContext>,
    format: crate::digest::Held,
) -> Result<(crate::sink::OutputStream, Arc<OutputWatch>), datafusion::error::DataFusionError> {
    use datafusion::error::DataFusionError;
    use futures::StreamExt;
    let schema = plan.schema();
    let count = plan.properties().partitioning.partition_count();
    let watch = Arc::new(OutputWatch {
        partitions: count,
        inner: std::sync::Mutex::new(Watched {
            digest: Some(crate::digest::Digester::new(format)),
            ..Watched::default()
        }),
    });
    let mut partitions = Vec::with_capacity(count);
    for i in 0..count {
        let stream = plan.execute(i, Arc::clone(task))?;
        let state = (
            stream,
            Some(crate::digest::Digester::new(format)),
            Arc::clone(&watch),
            false,
        );
        let hashed =
            futures::stream::unfold(state, |(mut stream, mut digest, watch, done)| async move {
                if done {
                    return None;
                }
                match stream.next().await {
                    Some(Ok(batch)) => {
                        if let Some(d) = digest.as_mut()
                            && let Err(e) = d.add(&batch)
                        {
                            watch.lock().digest_error.get_or_insert(e.to_string());
                            digest = None;
                        }
                        Some((Ok(batch), (stream, digest, watch, false)))
                    }
                    Some(Err(e)) => {
                        let text = e.to_string();
                        watch.lock().error.get_or_insert(e);
                        let shown = DataFusionError::Execution(text);
                        Some((Err(shown), (stream, digest, watch, true)))
                    }
                    None => {
                        let mut watched = watch.lock();
                        watched.finished += 1;
                        if let (Some(total), Some(part)) =
                            (watched.digest.as_mut(), digest.as_ref())
                        {
                            total.merge(part);
                        }
                        None
                    }
                }
            });
        partitions.push(Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                Arc::clone(&schema),
                hashed,
            ),
        )
            as datafusion::physical_plan::SendableRecordBatchStream);
    }
    Ok((crate::sink::OutputStream { schema, partitions }, watch))
}

/// What loading static table `name` hit, said of the table: a store or checkpoint error as it
/// is; anything else (its files, its settings) a [`SourceError::Table`], whose messages, made
/// for sources, name the table instead.
fn table_error(name: &str, error: SourceError) -> SourceError {
    let reason = match error {
        SourceError::Storage(_) | SourceError::Checkpoint(_) | SourceError::Table { .. } => {
            return error;
        }
        SourceError::Config { reason, .. } => reason,
        other => other.to_string(),
    };
    SourceError::Table {
        table: name.to_string(),
        reason: reason
            .replace("the source's", "the table's")
            .replace("for the source", "for the table")
            .replace("on the source", "on the table"),
    }
}

/// The text value a DataFusion error quotes where a cast or a parse could not read it
/// (`Cannot cast string 'x' to value of Int64 type`, `Error parsing 'x' as date`): the first
/// text in single quotes of its root error, not empty; `None` for another error.
fn quoted_value(error: &datafusion::error::DataFusionError) -> Option<String> {
    let text = error.find_root().to_string();
    let lower = text.to_lowercase();
    if !(lower.contains("cast") || lower.contains("pars")) {
        return None;
    }
    // Arrow's cast says `Cannot cast string 'x' to value of ...`: the value ends where that
    // does (a value may hold a quote, `O'Brien`).
    if let Some(rest) = text
        .split_once("Cannot cast string '")
        .map(|(_, rest)| rest)
        && let Some((value, _)) = rest.rsplit_once("' to value of")
    {
        return Some(value.to_string()).filter(|v| !v.is_empty());
    }
    let start = text.find('\'')? + 1;
    let len = text[start..].find('\'')?;
    Some(text[start..start + len].to_string()).filter(|v| !v.is_empty())
}
