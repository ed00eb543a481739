//! Incremental aggregation with DataFusion's own two phases (docs/design.md §5.3).
//!
//! ```text
//!   batch rows ─► Partial ─┐
//!                          ├─► PartialReduce ─► changed groups ─► state version N
//!   stored state of the ───┘         │
//!   groups it touched                └─► Final (the groups to emit) ─► what sits above the
//!                                                                        aggregation ─► sink
//! ```
//!
//! The query is planned by DataFusion as usual (with the two phases kept apart); this operator
//! runs the plan's `Partial` aggregation on the batch, merges its output with the stored partial
//! state of the same groups through a `PartialReduce` aggregation built from the plan's own
//! expressions, and puts a `Final` aggregation over the groups to emit where the plan had its
//! final aggregation. Every DataFusion aggregate function thus runs incrementally without being
//! written again.
//!
//! Invariants:
//! - the stored state is DataFusion's partial state, one row per group, as the plan's
//!   `Partial` aggregation shapes it;
//! - a batch touches only the stored rows of the groups in its input (and, with a watermark,
//!   the groups it closes), so its cost grows with what changed, not with the state;
//! - append mode emits a group once, when no row can change it any more: a closed event-time
//!   group, or a new group of a `DISTINCT`;
//! - update mode emits a group when its final row changed: a new group, or one whose `Final`
//!   over its merged state differs from its `Final` over its stored state (a group the batch
//!   touched may keep its row: `first_value` of `DISTINCT ON`, `min`, `max`, a `DISTINCT` row).

use std::sync::Arc;

use async_trait::async_trait;

use datafusion::common::HashSet;

use datafusion::arrow::array::{BooleanArray, UInt32Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{Row, RowConverter, SortField};
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ExecutionPlan, collect_partitioned};

use super::keyed::{Key, not_among};
use super::{BatchTime, KeyStamps, KeyedState, Operator, OperatorMetrics, StateError, StateFiles};
use crate::checkpoint::BatchId;
use crate::pipeline::{OutputMode, StateTtl};
use crate::plan::AggregateShape;
use crate::storage::Location;

/// The operator id of the aggregation, under `state/`.
pub const AGGREGATE_OPERATOR: &str = "aggregate";

/// The operator id of a deduplication below the aggregation, under `state/`.
pub const DEDUP_OPERATOR: &str = "dedup";

/// What a batch did to the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateMetrics {
    /// Groups in the state after the batch.
    pub rows_total: u64,
    /// Groups the batch inserted or changed.
    pub rows_updated: u64,
    /// Groups the batch removed (closed by the watermark, merged into a wider session, or
    /// dropped by the state TTL).
    pub rows_removed: u64,
    /// Of those, the groups the state TTL dropped (not seen for that long).
    pub rows_expired: u64,
    /// Bytes of state files the batch wrote.
    pub bytes_written: u64,
}

/// The state a batch computed, to be written as its version once the sink has the batch.
#[derive(Debug)]
struct Pending {
    batch: BatchId,
    upserted: RecordBatch,
    removed: RecordBatch,
    /// Groups the batch removed (a group the state TTL dropped and the batch saw again
    /// included, though `removed` does not list it).
    removed_count: u64,
    /// Of those, the groups the state TTL dropped.
    expired: u64,
}

/// One streaming aggregation and its state.
#[derive(Debug)]
pub struct AggregateOperator {
    /// The store, under `state/`.
    id: &'static str,
    shape: AggregateShape,
    mode: OutputMode,
    files: StateFiles,
    snapshot_every: u64,
    state: Option<KeyedState>,
    /// The version the in-memory state holds (`None`: none yet).
    version: Option<BatchId>,
    pending: Option<Pending>,
    /// The state TTL's key stamps, when the pipeline sets `state_ttl`.
    ttl: Option<KeyStamps>,
    /// Whether the next batch's partial phase runs on workers ([`Operator::spread_next`]).
    spread_next: bool,
    /// The partial phase the last batch ran on workers.
    ran_elsewhere: Option<Arc<dyn ExecutionPlan>>,
}

impl AggregateOperator {
    /// The aggregation of `shape`, keeping its state in the checkpoint at `checkpoint`, with a
    /// full snapshot every `snapshot_every` versions.
    pub fn new(
        shape: AggregateShape,
        mode: OutputMode,
        checkpoint: Location,
        snapshot_every: u64,
    ) -> Self {
        Self::with_id(AGGREGATE_OPERATOR, shape, mode, checkpoint, snapshot_every)
    }

    /// The deduplication `shape` (below the query's aggregation), keeping its state in the
    /// checkpoint at `checkpoint` under `state/dedup/`: it emits each row once, the first
    /// time it is seen, and forgets rows the watermark closes.
    pub fn dedup(shape: AggregateShape, checkpoint: Location, snapshot_every: u64) -> Self {
        Self::with_id(
            DEDUP_OPERATOR,
            shape,
            OutputMode::Append,
            checkpoint,
            snapshot_every,
        )
    }

    fn with_id(
        id: &'static str,
        shape: AggregateShape,
        mode: OutputMode,
        checkpoint: Location,
        snapshot_every: u64,
    ) -> Self {
        Self {
            id,
            shape,
            mode,
            files: StateFiles::new(checkpoint, id),
            snapshot_every,
            state: None,
            version: None,
            pending: None,
            ttl: None,
            spread_next: false,
            ran_elsewhere: None,
        }
    }

    /// This aggregation with a state TTL (`state_ttl`): a group not seen for that long is
    /// dropped from the state; seen again, it starts afresh.
    pub fn with_ttl(mut self, ttl: Option<StateTtl>) -> Self {
        self.ttl = ttl.map(|ttl| KeyStamps::new(ttl, self.files.checkpoint().clone(), self.id));
        self
    }

    /// The aggregation's shape.
    pub fn shape(&self) -> &AggregateShape {
        &self.shape
    }

    /// Records what the aggregation of this shape in `logical` computes its state from, so
    /// that state written by a query that computed it otherwise is refused.
    fn note_lineage(&mut self, logical: &LogicalPlan) {
        self.files
            .set_lineage(lineage(logical, &self.shape.output_names));
    }

    fn compute(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Compute {
            operator: self.id.into(),
            reason: e.to_string(),
        }
    }

    /// Makes the in-memory state version `batch - 1`, loading it from the checkpoint when it
    /// is not already there.
    async fn ensure_loaded(
        &mut self,
        batch: BatchId,
        partial: &Arc<dyn ExecutionPlan>,
    ) -> Result<(), StateError> {
        if self.state.is_some() && self.version == batch.prev() {
            return Ok(());
        }
        let partial_agg = partial
            .downcast_ref::<AggregateExec>()
            .expect("found as an AggregateExec");
        let schema = partial.schema();
        let key_columns = partial_agg.group_expr().expr().len();
        let event_time = self.shape.event_time.as_ref().and_then(|key| {
            schema.fields()[..key_columns]
                .iter()
                .position(|f| *f.name() == key.name)
                .map(|i| (i, key.window.size_ns))
        });
        let mut state =
            KeyedState::new(schema, key_columns, event_time).map_err(|e| self.compute(e))?;
        if let Some(key) = self.shape.event_time.as_ref().filter(|k| k.window.session) {
            // Without its session column the state would group by each row's own session.
            let Some((column, _)) = event_time else {
                return Err(self.compute(format!(
                    "the session key `{}` is not among the aggregation's group columns",
                    key.name
                )));
            };
            state = state.with_sessions(column).map_err(|e| self.compute(e))?;
        }
        if let Some(previous) = batch.prev() {
            self.files.load(previous, &mut state).await?;
        }
        if let Some(ttl) = &mut self.ttl {
            ttl.load(batch.prev(), &state).await?;
        }
        tracing::info!(
            operator = self.id,
            rows = state.len(),
            version = ?batch.prev(),
            "loaded the operator's state"
        );
        self.state = Some(state);
        self.version = batch.prev();
        Ok(())
    }

    /// Runs the stateful part of batch `batch` over `physical` (the batch's plan, its
    /// aggregations unfused), whose phases of this aggregation are `phases`, and returns
    /// `physical` with the final phase over the groups to emit; `None` when there is no group
    /// to emit outside complete mode. The partial phase's rows come from `elsewhere` where
    /// given (the same phase, cut into stages for workers), else from the phase itself. The
    /// state it computed is written by [`Operator::commit`].
    pub(crate) async fn run_phases(
        &mut self,
        batch: BatchId,
        task: Arc<TaskContext>,
        physical: &Arc<dyn ExecutionPlan>,
        (final_node, partial): Phases,
        elsewhere: Option<Arc<dyn ExecutionPlan>>,
        time: BatchTime,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>, StateError> {
        let watermark_ns = time.watermark_ns;
        let final_agg = final_node
            .downcast_ref::<AggregateExec>()
            .expect("found as an AggregateExec");
        self.ensure_loaded(batch, &partial).await?;
        // The partial phase over the batch, before the state changes: where it fails (a
        // source's error, a worker gone) the state is still version `batch - 1`.
        let partial_out = match elsewhere {
            Some(plan) => collect_partitioned(plan, Arc::clone(&task))
                .await
                .map_err(|source| StateError::Remote {
                    operator: self.id.into(),
                    source,
                })?,
            None => collect_partitioned(partial, Arc::clone(&task))
                .await
                .map_err(|e| self.compute(e))?,
        };
        // The state changes from here on: it is version `batch - 1` no more.
        self.version = None;
        let state = self.state.as_mut().expect("loaded");
        // Groups the state TTL drops go before the batch's rows: seen again, they start afresh.
        let (ttl_expired, ttl_expired_rows) = match &mut self.ttl {
            Some(ttl) => {
                let (keys, rows) = ttl.expire(ttl.clock(&time))?;
                state.remove(&keys);
                (keys, rows)
            }
            None => (
                Vec::new(),
                RecordBatch::new_empty(Arc::new(Schema::empty())),
            ),
        };
        let id = self.id;
        let compute = |e: &dyn std::fmt::Display| StateError::Compute {
            operator: id.into(),
            reason: e.to_string(),
        };

        // Partial over the batch, merged with the stored state of the groups it touched.
        let schema = Arc::clone(state.schema());
        let session_column = state.session_column();
        let partial_out =
            concat_batches(&schema, partial_out.iter().flatten()).map_err(|e| compute(&e))?;
        let partial_out = in_value_order(partial_out).map_err(|e| compute(&e))?;
        // A row counts only in its groups the watermark has not closed (a hopping window's
        // row may be in closed and open ones); complete mode keeps every group.
        let partial_out = match watermark_ns {
            Some(wm) if self.mode != OutputMode::Complete => {
                let open = state.open_at(&partial_out, wm).map_err(|e| compute(&e))?;
                filter_record_batch(&partial_out, &open).map_err(|e| compute(&e))?
            }
            _ => partial_out,
        };
        // `previous`: the stored state of the groups the batch touched, from before the batch.
        let (changed, previous) = if partial_out.num_rows() == 0 {
            let empty = RecordBatch::new_empty(Arc::clone(&schema));
            (empty.clone(), empty)
        } else {
            // The stored state first: where an aggregate keeps the first of equal candidates
            // (`first_value` over ties, `DISTINCT ON` without ORDER BY), the earlier batch's
            // row stays; within a batch, the partial rows merge in value order (above).
            let (stored, input) = match session_column {
                // Every stored session of the groups the batch touched, and the batch's rows,
                // with each session widened to the one it merges into.
                Some(column) => {
                    let groups = state
                        .session_groups(&partial_out)
                        .map_err(|e| compute(&e))?;
                    let mut seen = HashSet::new();
                    let keys: Vec<Key> = groups
                        .iter()
                        .filter(|g| seen.insert(*g))
                        .flat_map(|g| state.sessions_of(g))
                        .collect();
                    let stored = state
                        .rows(keys.iter().map(|k| &k[..]))
                        .and_then(|stored| touched_sessions(state, column, &stored, &partial_out))
                        .map_err(|e| compute(&e))?;
                    let merged = merge_sessions(state, column, &stored, &partial_out)
                        .map_err(|e| compute(&e))?;
                    (stored, vec![merged])
                }
                None => {
                    let keys = state.keys(&partial_out).map_err(|e| compute(&e))?;
                    let stored = state
                        .rows(keys.iter().map(|k| &k[..]))
                        .map_err(|e| compute(&e))?;
                    (stored.clone(), vec![stored, partial_out])
                }
            };
            let input = MemorySourceConfig::try_new_exec(&[input], Arc::clone(&schema), None)
                .map_err(|e| compute(&e))?;
            let reduce = phase_over(final_agg, AggregateMode::PartialReduce, input)
                .map_err(|e| compute(&e))?;
            let reduced = collect_partitioned(reduce, Arc::clone(&task))
                .await
                .map_err(|e| compute(&e))?;
            let reduced =
                concat_batches(&schema, reduced.iter().flatten()).map_err(|e| compute(&e))?;
            (
                state.sort_by_key(&reduced).map_err(|e| compute(&e))?,
                stored,
            )
        };
        let changed_keys = state.keys(&changed).map_err(|e| compute(&e))?;
        let is_new: Vec<bool> = changed_keys.iter().map(|k| !state.contains(k)).collect();
        // A group of a deduplication, once seen, keeps its row: a later batch's row of its key
        // (`DISTINCT ON`'s, sorting first) is dropped, in the state as in the output.
        if self.shape.distinct_only {
            let new = filter_record_batch(&changed, &BooleanArray::from(is_new.clone()))
                .map_err(|e| compute(&e))?;
            state.upsert(new).map_err(|e| compute(&e))?;
        } else {
            state.upsert(changed.clone()).map_err(|e| compute(&e))?;
        }
        // Sessions merged into a wider one are gone under their old keys.
        let changed_set: HashSet<&[u8]> = changed_keys.iter().map(|k| &k[..]).collect();
        let merged_away = if session_column.is_some() && previous.num_rows() > 0 {
            let keys = state.keys(&previous).map_err(|e| compute(&e))?;
            let gone = not_among(&keys, &changed_set);
            let gone_keys: Vec<Key> = keys
                .into_iter()
                .filter(|k| !changed_set.contains(&k[..]))
                .collect();
            state.remove(&gone_keys);
            filter_record_batch(&previous, &gone).map_err(|e| compute(&e))?
        } else {
            RecordBatch::new_empty(Arc::clone(&schema))
        };

        // Groups the watermark closes; complete mode keeps every group.
        let expired: Vec<Key> = match watermark_ns {
            Some(wm) if self.mode != OutputMode::Complete => state.expired(wm),
            _ => Vec::new(),
        };
        let expired_rows = state
            .rows(expired.iter().map(|k| &k[..]))
            .map_err(|e| compute(&e))?;
        let emit = match self.mode {
            OutputMode::Complete => state.all().map_err(|e| compute(&e))?,
            // A distinct row seen again has not changed: only new ones are emitted.
            OutputMode::Update | OutputMode::Append if self.shape.distinct_only => {
                filter_record_batch(&changed, &BooleanArray::from(is_new.clone()))
                    .map_err(|e| compute(&e))?
            }
            OutputMode::Update if previous.num_rows() == 0 => changed.clone(),
            // A group the batch touched may keep its row (`first_value`, `min`, `max`, ...):
            // only groups whose final row changed are emitted, new ones included.
            OutputMode::Update => {
                let before = finalize(final_agg, previous, Arc::clone(&task))
                    .await
                    .map_err(|e| compute(&e))?;
                let after = finalize(final_agg, changed.clone(), Arc::clone(&task))
                    .await
                    .map_err(|e| compute(&e))?;
                let moved =
                    groups_whose_row_changed(state, &before, &after).map_err(|e| compute(&e))?;
                let keep: Vec<bool> = changed_keys.iter().map(|k| moved.contains(k)).collect();
                filter_record_batch(&changed, &BooleanArray::from(keep)).map_err(|e| compute(&e))?
            }
            OutputMode::Append => expired_rows.clone(),
        };
        if let Some(wm) = watermark_ns
            && self.mode != OutputMode::Complete
        {
            state.remove_expired(wm);
        }

        let gone: HashSet<&[u8]> = expired.iter().map(|k| &k[..]).collect();
        let live = not_among(&changed_keys, &gone);
        let mut removed = concat_batches(&schema, [&merged_away, &expired_rows])
            .and_then(|rows| state.key_batch(&rows))
            .map_err(|e| compute(&e))?;
        let removed_count = (removed.num_rows() + ttl_expired.len()) as u64;
        let seen = filter_record_batch(&changed, &live).map_err(|e| compute(&e))?;
        // A distinct row seen again is unchanged: only new ones are written (all are stamped).
        let upserted = if self.shape.distinct_only {
            let new_and_live: BooleanArray = is_new
                .iter()
                .zip(live.iter())
                .map(|(new, live)| Some(*new && live == Some(true)))
                .collect();
            filter_record_batch(&changed, &new_and_live).map_err(|e| compute(&e))?
        } else {
            seen.clone()
        };
        if let Some(ttl) = &mut self.ttl {
            let stamp = ttl.stamp_clock(&time);
            ttl.stamp(batch, &seen, stamp, &ttl_expired, &ttl_expired_rows)?;
            // A dropped group the batch saw again is written as changed, not removed.
            let keep = not_among(&ttl_expired, &changed_set);
            let gone = filter_record_batch(&ttl_expired_rows, &keep).map_err(|e| compute(&e))?;
            removed =
                concat_batches(&removed.schema(), [&removed, &gone]).map_err(|e| compute(&e))?;
        }
        self.pending = Some(Pending {
            batch,
            upserted,
            removed,
            removed_count,
            expired: ttl_expired.len() as u64,
        });

        // No group to emit is no row (outside complete mode): the rest of the plan has none
        // to make, and a final aggregation without GROUP BY would make one out of no groups
        // (`count(*)` 0, `max` null).
        if emit.num_rows() == 0 && self.mode != OutputMode::Complete {
            return Ok(None);
        }
        // The final aggregation over the groups to emit, where the plan had its own.
        let emit_input = MemorySourceConfig::try_new_exec(&[vec![emit]], schema, None)
            .map_err(|e| compute(&e))?;
        splice_final(physical, &final_node, emit_input)
            .map(Some)
            .map_err(|e| compute(&e))
    }
}

#[async_trait]
impl Operator for AggregateOperator {
    /// Runs the stateful part of batch `batch` and returns the plan of the rest: `physical`
    /// with its final aggregation replaced by the groups to emit. The state it computed is
    /// written by [`Self::commit`].
    async fn run(
        &mut self,
        batch: BatchId,
        session: &SessionState,
        logical: &LogicalPlan,
        time: BatchTime,
    ) -> Result<Arc<dyn ExecutionPlan>, StateError> {
        self.note_lineage(logical);
        let physical = plan_unfused(session, logical)
            .await
            .map_err(|e| self.compute(e))?;
        let phases = find_phases(&physical, &self.shape.output_names)
            .map_err(|reason| self.compute(reason))?;
        self.ran_elsewhere = None;
        let spread = std::mem::take(&mut self.spread_next);
        #[cfg(not(feature = "distributed"))]
        let _ = spread;
        // A partial phase the planner cannot send (or keeps here) runs here.
        #[cfg(feature = "distributed")]
        if spread {
            match crate::distributed::spread_plan(Arc::clone(&phases.1), session).await {
                Ok(spread) if crate::distributed::is_distributed(&spread) => {
                    self.ran_elsewhere = Some(spread);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    %batch,
                    "the batch's partial phase cannot run on the workers ({e}); running it here"
                ),
            }
        }
        let emitted = self
            .run_phases(
                batch,
                session.task_ctx(),
                &physical,
                phases,
                self.ran_elsewhere.clone(),
                time,
            )
            .await?;
        Ok(emitted.unwrap_or_else(|| Arc::new(EmptyExec::new(physical.schema()))))
    }

    /// Its partial phase can run on workers: the batch's reads and the stateless work under
    /// the aggregation go there; the merge with the state stays here.
    fn spread_next(&mut self, wanted: bool) {
        self.spread_next = wanted;
    }

    fn can_spread(&self) -> bool {
        true
    }

    fn ran_elsewhere(&mut self) -> Option<Arc<dyn ExecutionPlan>> {
        self.ran_elsewhere.take()
    }

    /// Writes the state batch `batch` computed as version `batch`: a snapshot every
    /// `snapshot_every` versions, otherwise the changed and removed groups.
    async fn commit(&mut self, batch: BatchId) -> Result<Vec<OperatorMetrics>, StateError> {
        let pending = self
            .pending
            .take()
            .filter(|p| p.batch == batch)
            .ok_or_else(|| self.compute(format!("batch {batch} has no state to write")))?;
        let state = self.state.as_ref().expect("ran");
        let bytes = self
            .files
            .write_version(
                batch,
                state,
                &pending.upserted,
                &pending.removed,
                self.snapshot_every,
            )
            .await?;
        let ttl_bytes = match &mut self.ttl {
            Some(ttl) => ttl.commit(batch, self.snapshot_every).await?,
            None => 0,
        };
        self.version = Some(batch);
        Ok(vec![OperatorMetrics {
            operator: self.id.into(),
            metrics: StateMetrics {
                rows_total: state.len() as u64,
                rows_updated: pending.upserted.num_rows() as u64,
                rows_removed: pending.removed_count,
                rows_expired: pending.expired,
                bytes_written: bytes + ttl_bytes,
            },
        }])
    }

    /// Deletes state versions that no batch from `oldest_kept` on needs.
    async fn purge(&self, oldest_kept: BatchId) -> Result<(), StateError> {
        self.files.purge(oldest_kept).await?;
        match &self.ttl {
            Some(ttl) => ttl.purge(oldest_kept).await,
            None => Ok(()),
        }
    }

    fn holds_ending_by(&self, watermark_ns: i64) -> Option<bool> {
        let state = self.state.as_ref()?;
        Some(state.earliest_end().is_some_and(|end| end <= watermark_ns))
    }

    async fn check_state(
        &mut self,
        batch: BatchId,
        session: &SessionState,
        logical: &LogicalPlan,
    ) -> Result<(), StateError> {
        self.note_lineage(logical);
        let physical = plan_unfused(session, logical)
            .await
            .map_err(|e| self.compute(e))?;
        let (_, partial) = find_phases(&physical, &self.shape.output_names)
            .map_err(|reason| self.compute(reason))?;
        self.ensure_loaded(batch, &partial).await
    }
}

/// A deduplication followed by an aggregation of its rows (Spark's `dropDuplicates` and then
/// `groupBy`), each with state of its own: each batch, the deduplication's new rows (those
/// no earlier batch had) are what the aggregation's partial phase reads.
///
/// ```text
///   batch rows ─► dedup Partial ─► merge with state/dedup ─► new rows ─► aggregation
///                                                                      Partial ─► ...
/// ```
#[derive(Debug)]
pub struct DedupAggregateOperator {
    dedup: AggregateOperator,
    aggregate: AggregateOperator,
}

impl DedupAggregateOperator {
    /// The deduplication `dedup` (kept in `state/dedup/`) under the aggregation `aggregate`
    /// (kept in `state/aggregate/`).
    pub fn new(dedup: AggregateOperator, aggregate: AggregateOperator) -> Self {
        Self { dedup, aggregate }
    }

    /// The batch's plan, and the phases of the deduplication and of the aggregation in it.
    async fn phases(
        &mut self,
        session: &SessionState,
        logical: &LogicalPlan,
    ) -> Result<(Arc<dyn ExecutionPlan>, Phases, Phases), StateError> {
        self.dedup.note_lineage(logical);
        self.aggregate.note_lineage(logical);
        let physical = plan_unfused(session, logical)
            .await
            .map_err(|e| self.aggregate.compute(e))?;
        let outer = find_outer_phases(
            &physical,
            &self.aggregate.shape.output_names,
            &self.dedup.shape.output_names,
        )
        .map_err(|reason| self.aggregate.compute(reason))?;
        // The deduplication is the aggregation under the outer one's partial phase.
        let inner = find_phases(&outer.1, &self.dedup.shape.output_names)
            .map_err(|reason| self.dedup.compute(reason))?;
        Ok((physical, inner, outer))
    }
}

#[async_trait]
impl Operator for DedupAggregateOperator {
    async fn run(
        &mut self,
        batch: BatchId,
        session: &SessionState,
        logical: &LogicalPlan,
        time: BatchTime,
    ) -> Result<Arc<dyn ExecutionPlan>, StateError> {
        let (physical, inner, _) = self.phases(session, logical).await?;
        let task = session.task_ctx();
        let inner_final = Arc::clone(&inner.0);
        let inner_partial_schema = inner.1.schema();
        let physical = match self
            .dedup
            .run_phases(batch, Arc::clone(&task), &physical, inner, None, time)
            .await?
        {
            Some(plan) => plan,
            // No new row: the aggregation reads none (and still closes its groups).
            None => {
                let none = MemorySourceConfig::try_new_exec(&[vec![]], inner_partial_schema, None)
                    .map_err(|e| self.dedup.compute(e))?;
                splice_final(&physical, &inner_final, none).map_err(|e| self.dedup.compute(e))?
            }
        };
        // The deduplication's final phase now reads its new rows, under the aggregation's.
        let outer = find_outer_phases(
            &physical,
            &self.aggregate.shape.output_names,
            &self.dedup.shape.output_names,
        )
        .map_err(|reason| self.aggregate.compute(reason))?;
        let emitted = self
            .aggregate
            .run_phases(batch, task, &physical, outer, None, time)
            .await?;
        Ok(emitted.unwrap_or_else(|| Arc::new(EmptyExec::new(physical.schema()))))
    }

    async fn commit(&mut self, batch: BatchId) -> Result<Vec<OperatorMetrics>, StateError> {
        let mut metrics = self.dedup.commit(batch).await?;
        metrics.extend(self.aggregate.commit(batch).await?);
        Ok(metrics)
    }

    async fn purge(&self, oldest_kept: BatchId) -> Result<(), StateError> {
        self.dedup.purge(oldest_kept).await?;
        self.aggregate.purge(oldest_kept).await
    }

    fn holds_ending_by(&self, watermark_ns: i64) -> Option<bool> {
        let dedup = self.dedup.holds_ending_by(watermark_ns)?;
        let aggregate = self.aggregate.holds_ending_by(watermark_ns)?;
        Some(dedup || aggregate)
    }

    async fn check_state(
        &mut self,
        batch: BatchId,
        session: &SessionState,
        logical: &LogicalPlan,
    ) -> Result<(), StateError> {
        let (_, inner, outer) = self.phases(session, logical).await?;
        self.dedup.ensure_loaded(batch, &inner.1).await?;
        self.aggregate.ensure_loaded(batch, &outer.1).await
    }
}

/// What the aggregation in `logical` whose output columns are `output_names` computes its
/// state from: its group keys and its aggregates, with every column they read followed down
/// through the projections (CTEs, subqueries, aliases) under it to the expression it is
/// (`date_bin(..., s.ts)` for a CTE's `w`), recorded as [`super::files::lineage_record`]
/// gives it. A column a join, a filter or a group key passes on is followed into the input it
/// comes from; one a union, a window function or an aggregate function makes stays a column. Filters are not part of
/// it, as a changed `WHERE` is not part of the state's columns. `None` where no aggregation
/// has those columns.
pub fn lineage(logical: &LogicalPlan, output_names: &[String]) -> Option<String> {
    let mut found = None;
    logical
        .apply(|node| {
            if let LogicalPlan::Aggregate(aggregate) = node
                && aggregate.schema.fields().len() == output_names.len()
                && aggregate
                    .schema
                    .fields()
                    .iter()
                    .zip(output_names)
                    .all(|(f, name)| f.name() == name)
            {
                let show = |exprs: &[Expr]| {
                    exprs
                        .iter()
                        .map(|e| resolved(e, &aggregate.input).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                found = Some(super::files::lineage_record(
                    format!("group by {}", show(&aggregate.group_expr)),
                    format!("aggregate {}", show(&aggregate.aggr_expr)),
                ));
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .ok()?;
    found
}

/// `expr` over `plan`'s output, with each column it reads replaced by what it is under the
/// projections of `plan` (see [`lineage`]).
pub(super) fn resolved(expr: &Expr, plan: &LogicalPlan) -> Expr {
    expr.clone()
        .transform_up(|e| {
            Ok(match e {
                Expr::Column(column) => Transformed::yes(resolved_column(&column, plan)),
                other => Transformed::no(other),
            })
        })
        .map_or_else(|_| expr.clone(), |t| t.data)
}

/// What `column` of `plan`'s output is, followed down through projections, aliases and the
/// nodes that pass their input's columns on as they are.
fn resolved_column(column: &Column, plan: &LogicalPlan) -> Expr {
    let Ok(i) = plan.schema().index_of_column(column) else {
        return Expr::Column(column.clone());
    };
    match plan {
        LogicalPlan::Projection(projection) => match projection.expr.get(i) {
            Some(expr) => resolved(&expr.clone().unalias(), &projection.input),
            None => Expr::Column(column.clone()),
        },
        LogicalPlan::SubqueryAlias(alias) => {
            let (qualifier, field) = alias.input.schema().qualified_field(i);
            resolved_column(&Column::new(qualifier.cloned(), field.name()), &alias.input)
        }
        // A union's columns are named after its first input's but hold every input's rows.
        LogicalPlan::Union(_) => Expr::Column(column.clone()),
        // A node that passes a column of one of its inputs on as it is (a filter, a sort, a
        // join, a window's input columns, a group key): followed into that input.
        other => match other
            .inputs()
            .into_iter()
            .filter(|input| input.schema().has_column(column))
            .collect::<Vec<_>>()
            .as_slice()
        {
            [input] => resolved_column(column, input),
            _ => Expr::Column(column.clone()),
        },
    }
}

/// The physical plan of `logical`, with every aggregation in two phases ([`unfuse`]).
async fn plan_unfused(
    session: &SessionState,
    logical: &LogicalPlan,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    session.create_physical_plan(logical).await.and_then(unfuse)
}

/// Each row's session `{start, end}` (column `column`) in nanoseconds; `None` where it has
/// none.
fn session_spans(
    batch: &RecordBatch,
    column: usize,
) -> Result<Vec<Option<(i64, i64)>>, ArrowError> {
    use datafusion::arrow::array::{Array, AsArray};
    let session = batch.column(column).as_struct();
    let start = super::timestamp_ns(session.column(0))?;
    let end = super::timestamp_ns(session.column(1))?;
    // A time nanoseconds cannot hold is the nearest they can (`timestamp_ns`): two such
    // sessions would be one, written back at that nearest time (the review of audit 86).
    let beyond = |ns: &datafusion::arrow::array::PrimitiveArray<
        datafusion::arrow::datatypes::TimestampNanosecondType,
    >| { ns.iter().flatten().any(|v| v == i64::MAX || v == i64::MIN) };
    if beyond(&start) || beyond(&end) {
        return Err(ArrowError::ComputeError(
            "a session window's time is past what its arithmetic holds (nanoseconds since \
             1970: from 1677-09-21 to 2262-04-11); a far-off time (a `9999-12-31` that means \
             none) is best made null, or its rows filtered out, before the session"
                .to_string(),
        ));
    }
    Ok((0..batch.num_rows())
        .map(|i| {
            (session.is_valid(i) && !start.is_null(i) && !end.is_null(i))
                .then(|| (start.value(i), end.value(i)))
        })
        .collect())
}

/// The sessions of `stored` that one of `partial`'s row sessions (of the same group)
/// overlaps or touches: the only ones a batch can change, since stored sessions neither
/// overlap nor touch each other, so sessions chain only through the batch's rows.
fn touched_sessions(
    state: &KeyedState,
    column: usize,
    stored: &RecordBatch,
    partial: &RecordBatch,
) -> Result<RecordBatch, ArrowError> {
    use std::collections::HashMap;
    let spans = |batch: &RecordBatch| session_spans(batch, column);
    // Each group's row sessions, merged among themselves and in order of start.
    let mut rows: HashMap<Key, Vec<(i64, i64)>> = HashMap::new();
    for (group, span) in state
        .session_groups(partial)?
        .into_iter()
        .zip(spans(partial)?)
    {
        if let Some(span) = span {
            rows.entry(group).or_default().push(span);
        }
    }
    for spans in rows.values_mut() {
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans.drain(..) {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        *spans = merged;
    }
    let touched: BooleanArray = state
        .session_groups(stored)?
        .iter()
        .zip(spans(stored)?)
        .map(|(group, span)| {
            let (Some((start, end)), Some(spans)) = (span, rows.get(group)) else {
                return Some(false);
            };
            // The first row span that does not end before this session starts.
            let i = spans.partition_point(|s| s.1 < start);
            Some(spans.get(i).is_some_and(|s| s.0 <= end))
        })
        .collect();
    filter_record_batch(stored, &touched)
}

/// `stored` (a group's sessions, which neither overlap nor touch) and `partial` (the batch's
/// partial rows, one per group and row session `{t, t + gap}`) as one batch of partial rows,
/// stored first, with the session column (`column`) of each row set to the session it merges
/// into: per group, in order of start, a session whose start is at or before the end of the
/// one before joins it (Spark's rule: a row at exactly the end still joins), and the merged
/// session runs from the first start to the last end. A row without a session keeps none.
fn merge_sessions(
    state: &KeyedState,
    column: usize,
    stored: &RecordBatch,
    partial: &RecordBatch,
) -> Result<RecordBatch, ArrowError> {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StructArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, TimeUnit};

    let schema = stored.schema();
    let all = concat_batches(&schema, [stored, partial])?;
    let groups = state.session_groups(&all)?;
    let spans = session_spans(&all, column)?;
    let session = all.column(column).as_struct();
    // Rows with a session, by group and start.
    let mut order: Vec<(usize, i64, i64)> = spans
        .iter()
        .enumerate()
        .filter_map(|(row, span)| span.map(|(start, end)| (row, start, end)))
        .collect();
    order.sort_by(|a, b| groups[a.0].cmp(&groups[b.0]).then(a.1.cmp(&b.1)));
    let mut merged: Vec<Option<(i64, i64)>> = vec![None; all.num_rows()];
    let mut i = 0;
    while i < order.len() {
        let (first, from, mut to) = order[i];
        let mut j = i + 1;
        while j < order.len() && groups[order[j].0] == groups[first] && order[j].1 <= to {
            to = to.max(order[j].2);
            j += 1;
        }
        for (row, _, _) in &order[i..j] {
            merged[*row] = Some((from, to));
        }
        i = j;
    }
    let DataType::Struct(fields) = session.data_type() else {
        unreachable!("a struct");
    };
    let DataType::Timestamp(_, tz) = fields[0].data_type() else {
        return Err(ArrowError::ComputeError(format!(
            "a session's start is a timestamp, not {}",
            fields[0].data_type()
        )));
    };
    let as_field = |values: Int64Array, to: &DataType| -> Result<ArrayRef, ArrowError> {
        let ns = cast(
            &values,
            &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
        )?;
        cast(&ns, to)
    };
    let starts = as_field(
        merged.iter().map(|m| m.map(|(s, _)| s)).collect(),
        fields[0].data_type(),
    )?;
    let ends = as_field(
        merged.iter().map(|m| m.map(|(_, e)| e)).collect(),
        fields[1].data_type(),
    )?;
    let sessions =
        StructArray::try_new(fields.clone(), vec![starts, ends], session.logical_nulls())?;
    let mut columns = all.columns().to_vec();
    columns[column] = Arc::new(sessions);
    RecordBatch::try_new(schema, columns)
}

/// `plan` with its final aggregation `final_node` replaced by a `Final` aggregation (of the
/// same expressions) over `input`, which holds partial state rows.
pub fn splice_final(
    plan: &Arc<dyn ExecutionPlan>,
    final_node: &Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let final_agg = final_node
        .downcast_ref::<AggregateExec>()
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("not an aggregation".into()))?;
    let final_exec = final_over(final_agg, input)?;
    let target = Arc::as_ptr(final_node);
    Ok(Arc::clone(plan)
        .transform_down(|node| {
            Ok(if std::ptr::addr_eq(Arc::as_ptr(&node), target) {
                Transformed::new(Arc::clone(&final_exec), true, TreeNodeRecursion::Jump)
            } else {
                Transformed::no(node)
            })
        })?
        .data)
}

/// `plan` with every aggregation DataFusion planned in one phase (`Single`,
/// `SinglePartitioned`) split into its `Partial` and `Final` phases again, so that any
/// aggregation DataFusion can plan runs incrementally.
pub fn unfuse(plan: Arc<dyn ExecutionPlan>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let final_mode = match *agg.mode() {
                AggregateMode::Single => AggregateMode::Final,
                AggregateMode::SinglePartitioned => AggregateMode::FinalPartitioned,
                _ => return Ok(Transformed::no(node)),
            };
            let partial = Arc::new(AggregateExec::try_new(
                AggregateMode::Partial,
                agg.group_expr().clone(),
                agg.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                Arc::clone(agg.input()),
                agg.input_schema(),
            )?);
            let final_exec: Arc<dyn ExecutionPlan> = Arc::new(AggregateExec::try_new(
                final_mode,
                agg.group_expr().as_final(),
                agg.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                partial,
                agg.input_schema(),
            )?);
            Ok(Transformed::yes(final_exec))
        })?
        .data)
}

/// A `Final` aggregation of `final_agg`'s expressions over `input`, which holds partial state.
fn final_over(
    final_agg: &AggregateExec,
    input: Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    phase_over(final_agg, AggregateMode::Final, input)
}

/// `final_agg`'s expressions as an aggregation in `mode` over `input`, which holds partial
/// state (`PartialReduce` merges it, `Final` turns it into values).
fn phase_over(
    final_agg: &AggregateExec,
    mode: AggregateMode,
    input: Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    Ok(Arc::new(AggregateExec::try_new(
        mode,
        final_agg.group_expr().clone(),
        final_agg.aggr_expr().to_vec(),
        vec![None; final_agg.aggr_expr().len()],
        input,
        final_agg.input_schema(),
    )?))
}

/// The final rows of the groups whose partial state is `rows`.
async fn finalize(
    final_agg: &AggregateExec,
    rows: RecordBatch,
    task: Arc<TaskContext>,
) -> datafusion::error::Result<RecordBatch> {
    let schema = rows.schema();
    let input = MemorySourceConfig::try_new_exec(&[vec![rows]], schema, None)?;
    let exec = final_over(final_agg, input)?;
    let out = collect_partitioned(Arc::clone(&exec), task).await?;
    Ok(concat_batches(&exec.schema(), out.iter().flatten())?)
}

/// `rows` in an order that depends on their values alone (all columns, as Arrow's row format
/// orders them), not on the order partitions and tasks gave them in: a group's partial rows
/// (sums of doubles, sketches) then merge in the same order wherever the partitions ran, on
/// workers or here, and a replay here computes the same bits.
fn in_value_order(rows: RecordBatch) -> Result<RecordBatch, ArrowError> {
    if rows.num_rows() < 2 {
        return Ok(rows);
    }
    let fields: Vec<SortField> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    // A state of a type the row format does not order stays in the order it came in.
    if !RowConverter::supports_fields(&fields) {
        return Ok(rows);
    }
    let converter = RowConverter::new(fields)?;
    let encoded = converter.convert_columns(rows.columns())?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_unstable_by(|a, b| encoded.row(*a as usize).cmp(&encoded.row(*b as usize)));
    take_record_batch(&rows, &UInt32Array::from(order))
}

/// The keys of the groups whose final row in `after` is not among the final rows `before`.
/// A final row holds its group's key, so a row of `after` found in `before` is its own
/// group's row from before, unchanged. One converter encodes both, so equal rows are equal
/// bytes (every Arrow type, nested ones included).
fn groups_whose_row_changed(
    state: &KeyedState,
    before: &RecordBatch,
    after: &RecordBatch,
) -> Result<HashSet<Key>, ArrowError> {
    let converter = RowConverter::new(
        after
            .schema()
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let old = converter.convert_columns(before.columns())?;
    let old: HashSet<Row<'_>> = old.iter().collect();
    let new = converter.convert_columns(after.columns())?;
    Ok(state
        .keys(after)?
        .into_iter()
        .zip(new.iter())
        .filter(|(_, row)| !old.contains(row))
        .map(|(key, _)| key)
        .collect())
}

/// An aggregation's final and partial phases in a plan.
pub type Phases = (Arc<dyn ExecutionPlan>, Arc<dyn ExecutionPlan>);

/// The plan's final aggregation over the stream (by its output names) and the partial
/// aggregation under it.
pub fn find_phases(plan: &Arc<dyn ExecutionPlan>, names: &[String]) -> Result<Phases, String> {
    let mut finals = Vec::new();
    collect_aggregates(plan, &mut |node, agg| {
        if matches!(
            agg.mode(),
            AggregateMode::Final | AggregateMode::FinalPartitioned
        ) {
            finals.push(Arc::clone(node));
        }
    });
    let named = |node: &Arc<dyn ExecutionPlan>| {
        node.schema()
            .fields()
            .iter()
            .map(|f| f.name())
            .eq(names.iter())
    };
    let final_node = match finals.len() {
        0 => {
            return Err(
                "the plan has no final aggregation over the stream (a DataFusion optimizer \
                 rule replaced it)"
                    .to_string(),
            );
        }
        1 => finals.remove(0),
        _ => {
            let mut matching: Vec<_> = finals.into_iter().filter(named).collect();
            // The aggregation over the others (one over a deduplication of the same columns):
            // `finals` lists an aggregation before those under it.
            if matching.len() > 1 && matching[1..].iter().all(|m| holds(&matching[0], m)) {
                matching.truncate(1);
            }
            if matching.len() != 1 {
                return Err(format!(
                    "cannot tell which of the plan's aggregations is over the stream ({} match)",
                    matching.len()
                ));
            }
            matching.remove(0)
        }
    };
    let partial = first_aggregation(&final_node, true)
        .ok_or("the final aggregation has no partial aggregation under it")?;
    Ok((final_node, partial))
}

/// The first aggregation in `plan` (itself, then down its inputs) of the partial phase
/// (`partial`) or of a final one.
fn first_aggregation(
    plan: &Arc<dyn ExecutionPlan>,
    partial: bool,
) -> Option<Arc<dyn ExecutionPlan>> {
    let mut found = None;
    collect_aggregates(plan, &mut |node, agg| {
        let wanted = match agg.mode() {
            AggregateMode::Partial => partial,
            AggregateMode::Final | AggregateMode::FinalPartitioned => !partial,
            _ => false,
        };
        if found.is_none() && wanted {
            found = Some(Arc::clone(node));
        }
    });
    found
}

/// [`find_phases`] of an aggregation over a deduplication whose output names are `dedup`: the
/// aggregation (named `names`) whose partial phase holds the deduplication's final one. Where
/// both give the same names (`SELECT DISTINCT ON (k) k, v FROM (SELECT DISTINCT k, v FROM
/// s)`, audit 91a: the deduplication was taken for the aggregation, and every batch failed),
/// the topmost final aggregation, which holds the other.
pub fn find_outer_phases(
    plan: &Arc<dyn ExecutionPlan>,
    names: &[String],
    dedup: &[String],
) -> Result<Phases, String> {
    // Where the deduplication has run, its final phase reads the rows it passes on (no
    // partial phase under it): it is told by being a final phase under the other's partial.
    if let Ok(phases) = find_phases(plan, names)
        && first_aggregation(&phases.1, false).is_some()
    {
        return Ok(phases);
    }
    let top = first_aggregation(plan, false).ok_or(
        "the plan has no final aggregation over the stream (a DataFusion optimizer rule \
         replaced it)",
    )?;
    let partial = first_aggregation(&top, true)
        .ok_or("the final aggregation has no partial aggregation under it")?;
    if first_aggregation(&partial, false).is_none() {
        return Err(format!(
            "the plan has no deduplication ({}) under the aggregation over the stream",
            dedup.join(", ")
        ));
    }
    Ok((top, partial))
}

/// Whether `node` is `plan` or in it.
fn holds(plan: &Arc<dyn ExecutionPlan>, node: &Arc<dyn ExecutionPlan>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(plan), Arc::as_ptr(node))
        || plan.children().into_iter().any(|c| holds(c, node))
}

fn collect_aggregates(
    plan: &Arc<dyn ExecutionPlan>,
    found: &mut dyn FnMut(&Arc<dyn ExecutionPlan>, &AggregateExec),
) {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>() {
        found(plan, agg);
    }
    for child in plan.children() {
        collect_aggregates(child, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The batch plan of `sql` in `ctx`, its aggregations unfused.
    async fn unfused(
        ctx: &datafusion::prelude::SessionContext,
        sql: &str,
    ) -> Arc<dyn ExecutionPlan> {
        let (state, logical) = crate::plan::plan_batch(ctx, sql, 0).await.expect(sql);
        state
            .create_physical_plan(&logical)
            .await
            .and_then(unfuse)
            .expect(sql)
    }

    #[tokio::test]
    async fn aggregations_keep_both_phases_over_a_batch_with_rows() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::datasource::MemTable;
        let ctx = crate::plan::session(&crate::vocab::default_settings());
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .expect("rows");
        let mem = MemTable::try_new(schema, vec![vec![rows]]).expect("table");
        ctx.register_table("s", Arc::new(mem)).expect("register");
        for sql in [
            "SELECT count(*) AS n FROM s",
            "SELECT count(1) AS n FROM s",
            "SELECT count(a) AS n FROM s",
            "SELECT count(DISTINCT a) AS n FROM s",
            "SELECT min(a) AS lo, max(a) AS hi FROM s",
            "SELECT a, count(*) AS n FROM s GROUP BY a",
        ] {
            let physical = unfused(&ctx, sql).await;
            find_phases(&physical, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        // Audit 91a: an aggregation over a deduplication that gives the same names.
        let sql = "SELECT DISTINCT ON (a) a, b FROM (SELECT DISTINCT a, b FROM t)";
        let two = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let rows = RecordBatch::try_new(
            Arc::clone(&two),
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 2])),
                Arc::new(Int64Array::from(vec![1, 2, 1])),
            ],
        )
        .expect("rows");
        let mem = MemTable::try_new(two, vec![vec![rows]]).expect("table");
        ctx.register_table("t", Arc::new(mem)).expect("register");
        let physical = unfused(&ctx, sql).await;
        let names = ["a".to_string(), "b".to_string()];
        let shown = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(false)
            .to_string();
        let (outer, partial) =
            find_outer_phases(&physical, &names, &names).unwrap_or_else(|e| panic!("{e}: {shown}"));
        let (inner, _) = find_phases(&partial, &names).expect("the deduplication under it");
        assert!(holds(&outer, &inner) && !holds(&inner, &outer), "{shown}");
    }
}
