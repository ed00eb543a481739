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

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{Row, RowConverter, SortField};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ExecutionPlan, collect_partitioned};

use super::keyed::Key;
use super::{KeyedState, Operator, OperatorMetrics, StateError, StateFiles};
use crate::checkpoint::BatchId;
use crate::pipeline::OutputMode;
use crate::plan::AggregateShape;
use crate::storage::Location;

/// The operator id of the aggregation, under `state/`.
pub const AGGREGATE_OPERATOR: &str = "aggregate";

/// What a batch did to the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateMetrics {
    /// Groups in the state after the batch.
    pub rows_total: u64,
    /// Groups the batch inserted or changed.
    pub rows_updated: u64,
    /// Groups the batch removed (closed by the watermark).
    pub rows_removed: u64,
    /// Bytes of state files the batch wrote.
    pub bytes_written: u64,
}

/// The state a batch computed, to be written as its version once the sink has the batch.
#[derive(Debug)]
struct Pending {
    batch: BatchId,
    upserted: RecordBatch,
    removed: RecordBatch,
}

/// One streaming aggregation and its state.
#[derive(Debug)]
pub struct AggregateOperator {
    shape: AggregateShape,
    mode: OutputMode,
    files: StateFiles,
    snapshot_every: u64,
    state: Option<KeyedState>,
    /// The version the in-memory state holds (`None`: none yet).
    version: Option<BatchId>,
    pending: Option<Pending>,
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
        Self {
            shape,
            mode,
            files: StateFiles::new(checkpoint, AGGREGATE_OPERATOR),
            snapshot_every,
            state: None,
            version: None,
            pending: None,
        }
    }

    /// The aggregation's shape.
    pub fn shape(&self) -> &AggregateShape {
        &self.shape
    }

    fn compute(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Compute {
            operator: AGGREGATE_OPERATOR.into(),
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
        if let Some(previous) = batch.prev() {
            self.files.load(previous, &mut state).await?;
        }
        tracing::info!(
            rows = state.len(),
            version = ?batch.prev(),
            "loaded the aggregation's state"
        );
        self.state = Some(state);
        self.version = batch.prev();
        Ok(())
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
        watermark_ns: Option<i64>,
    ) -> Result<Arc<dyn ExecutionPlan>, StateError> {
        let physical = session
            .create_physical_plan(logical)
            .await
            .and_then(unfuse)
            .map_err(|e| self.compute(e))?;
        let task = session.task_ctx();
        let (final_node, partial) = find_phases(&physical, &self.shape.output_names)
            .map_err(|reason| self.compute(reason))?;
        let final_agg = final_node
            .downcast_ref::<AggregateExec>()
            .expect("found as an AggregateExec");
        self.ensure_loaded(batch, &partial).await?;
        // The state changes from here on: it is version `batch - 1` no more.
        self.version = None;
        let state = self.state.as_mut().expect("loaded");
        let compute = |e: &dyn std::fmt::Display| StateError::Compute {
            operator: AGGREGATE_OPERATOR.into(),
            reason: e.to_string(),
        };

        // Partial over the batch, merged with the stored state of the groups it touched.
        let schema = Arc::clone(state.schema());
        let partial_out = collect_partitioned(Arc::clone(&partial), Arc::clone(&task))
            .await
            .map_err(|e| compute(&e))?;
        let partial_out =
            concat_batches(&schema, partial_out.iter().flatten()).map_err(|e| compute(&e))?;
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
            let keys = state.keys(&partial_out).map_err(|e| compute(&e))?;
            let stored = state
                .rows(keys.iter().map(|k| &k[..]))
                .map_err(|e| compute(&e))?;
            // The stored state first: where an aggregate keeps the first of equal candidates
            // (`first_value` over ties, `DISTINCT ON` without ORDER BY), the earlier row stays.
            let input = MemorySourceConfig::try_new_exec(
                &[vec![stored.clone(), partial_out]],
                Arc::clone(&schema),
                None,
            )
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
        state.upsert(changed.clone()).map_err(|e| compute(&e))?;

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
                filter_record_batch(&changed, &BooleanArray::from(is_new))
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
        state.remove(&expired);

        let gone: HashSet<&[u8]> = expired.iter().map(|k| &k[..]).collect();
        let live = BooleanArray::from(
            changed_keys
                .iter()
                .map(|k| !gone.contains(&k[..]))
                .collect::<Vec<_>>(),
        );
        self.pending = Some(Pending {
            batch,
            upserted: filter_record_batch(&changed, &live).map_err(|e| compute(&e))?,
            removed: state.key_batch(&expired_rows).map_err(|e| compute(&e))?,
        });

        // No group to emit is no row: a final aggregation without GROUP BY would make one
        // out of no groups (`count(*)` 0, `max` null), which only complete mode's whole table
        // of a stream without input is.
        if emit.num_rows() == 0 && self.mode != OutputMode::Complete {
            return Ok(Arc::new(EmptyExec::new(physical.schema())));
        }
        // The final aggregation over the groups to emit, where the plan had its own.
        let emit_input = MemorySourceConfig::try_new_exec(&[vec![emit]], schema, None)
            .map_err(|e| compute(&e))?;
        splice_final(&physical, &final_node, emit_input).map_err(|e| compute(&e))
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
        self.version = Some(batch);
        Ok(vec![OperatorMetrics {
            operator: AGGREGATE_OPERATOR.into(),
            metrics: StateMetrics {
                rows_total: state.len() as u64,
                rows_updated: pending.upserted.num_rows() as u64,
                rows_removed: pending.removed.num_rows() as u64,
                bytes_written: bytes,
            },
        }])
    }

    /// Deletes state versions that no batch from `oldest_kept` on needs.
    async fn purge(&self, oldest_kept: BatchId) -> Result<(), StateError> {
        self.files.purge(oldest_kept).await
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
        let physical = session
            .create_physical_plan(logical)
            .await
            .and_then(unfuse)
            .map_err(|e| self.compute(e))?;
        let (_, partial) = find_phases(&physical, &self.shape.output_names)
            .map_err(|reason| self.compute(reason))?;
        self.ensure_loaded(batch, &partial).await
    }
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
            if matching.len() != 1 {
                return Err(format!(
                    "cannot tell which of the plan's aggregations is over the stream ({} match)",
                    matching.len()
                ));
            }
            matching.remove(0)
        }
    };
    let mut partial = None;
    collect_aggregates(&final_node, &mut |node, agg| {
        if partial.is_none() && *agg.mode() == AggregateMode::Partial {
            partial = Some(Arc::clone(node));
        }
    });
    let partial = partial.ok_or("the final aggregation has no partial aggregation under it")?;
    Ok((final_node, partial))
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
            let (state, logical) = crate::plan::plan_batch(&ctx, sql, 0).await.expect(sql);
            let physical = state
                .create_physical_plan(&logical)
                .await
                .and_then(unfuse)
                .expect(sql);
            find_phases(&physical, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}
