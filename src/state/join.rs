//! A join of two streams (inner, or outer: LEFT, RIGHT, FULL), bounded in event time.
//!
//! ```text
//!   batch N:  new left rows  ⋈ (kept right rows + new right rows)
//!             kept left rows ⋈  new right rows
//!           + an outer join's kept rows that never matched, once the watermark passes the
//!             last time a row of the other side could match them, with nulls for that side
//! ```
//!
//! Each side's rows are kept (in `state/join-left/` and `state/join-right/`) until the
//! watermark passes the last event time at which a row of the other side could still match
//! them. The join itself is the query's: this operator puts the union of the join over the
//! two pairs of inputs above in its place in the logical plan, and DataFusion plans the rest.
//!
//! Invariants:
//! - every pair of matching rows is joined in exactly one batch: the batch in which the later
//!   of the two arrives;
//! - a row of an outer join's preserved side that no row of the other side matched is
//!   emitted with nulls once, in the batch whose watermark lets it go (Spark's rule: in
//!   append mode, after the watermark passes its event time plus the join's bound); a kept
//!   row of that side records whether it has matched (`__sluice_matched`);
//! - a kept row is keyed by the batch that read it and its position in that batch's input, so
//!   a re-run of a batch keeps the same rows under the same keys.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::{ExecutionPlan, collect_partitioned};

use super::keyed::Key;
use super::{
    BatchTime, KeyedState, Operator, OperatorMetrics, StateError, StateFiles, StateMetrics,
};
use crate::checkpoint::BatchId;
use crate::plan::JoinShape;
use crate::storage::Location;

/// What a join's kept rows are for, as [`super::files::lineage_record`] records it: its type
/// and keys, and its other condition, each column followed down through the projections (CTEs,
/// subqueries, aliases) under it, so that renaming an alias changes nothing.
fn join_lineage(join: &datafusion::logical_expr::Join) -> String {
    let node = LogicalPlan::Join(join.clone());
    let keys = join
        .on
        .iter()
        .map(|(left, right)| {
            format!(
                "{} = {}",
                super::aggregate::resolved(left, &join.left),
                super::aggregate::resolved(right, &join.right)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let filter = join
        .filter
        .as_ref()
        .map(|f| super::aggregate::resolved(f, &node).to_string())
        .unwrap_or_default();
    let conditions: Vec<String> = [keys, filter]
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect();
    super::files::lineage_record(
        format!("{} JOIN", join.join_type.to_string().to_uppercase()),
        format!("ON {}", conditions.join(" AND ")),
    )
}

/// The key columns every kept row starts with.
const BATCH_COLUMN: &str = "__sluice_batch";
const ROW_COLUMN: &str = "__sluice_row";
/// Whether a kept row of an outer join's preserved side has matched a row of the other side.
const MATCHED_COLUMN: &str = "__sluice_matched";
/// A row's position among a side's kept and new rows, while finding which of them match.
const ID_COLUMN: &str = "__sluice_id";

/// One side of the join and its kept rows.
#[derive(Debug)]
struct Side {
    files: StateFiles,
    time_column: String,
    /// `None`: the join does not bound this side's rows; they are kept for ever.
    reach_ns: Option<i64>,
    /// Equal tumbling windows (size, origin) of the condition: a row is kept at most until
    /// the watermark passes its window's end.
    windows: Option<(i64, i64)>,
    state: Option<KeyedState>,
    pending: Option<(BatchId, RecordBatch, RecordBatch)>,
    /// An outer join's preserved side (LEFT's left, RIGHT's right, both of FULL's): its kept
    /// rows carry whether they have matched, and those that never did are emitted with nulls
    /// for the other side when they go.
    preserved: bool,
}

/// A join of two streams and the rows each side keeps.
#[derive(Debug)]
pub struct JoinOperator {
    sides: [Side; 2],
    snapshot_every: u64,
    version: Option<BatchId>,
}

impl JoinOperator {
    /// The join of `shape`, keeping its rows in the checkpoint at `checkpoint`.
    pub fn new(shape: &JoinShape, checkpoint: Location, snapshot_every: u64) -> Self {
        let side = |name: &str, time: &str, reach: Option<i64>| Side {
            files: StateFiles::new(checkpoint.clone(), name),
            time_column: time.to_string(),
            reach_ns: reach,
            windows: shape.windows,
            state: None,
            pending: None,
            preserved: false,
        };
        Self {
            sides: [
                side("join-left", &shape.left_time, shape.left_reach_ns),
                side("join-right", &shape.right_time, shape.right_reach_ns),
            ],
            snapshot_every,
            version: None,
        }
    }
}

impl Side {
    fn compute(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Compute {
            operator: self.files.operator().to_string(),
            reason: e.to_string(),
        }
    }

    /// The kept rows' schema: the key columns, whether the row has matched (a preserved
    /// side's), then the join input's columns.
    fn kept_schema(&self, input: &SchemaRef) -> SchemaRef {
        let mut fields = vec![
            Arc::new(Field::new(BATCH_COLUMN, DataType::Int64, false)),
            Arc::new(Field::new(ROW_COLUMN, DataType::Int64, false)),
        ];
        if self.preserved {
            fields.push(Arc::new(Field::new(
                MATCHED_COLUMN,
                DataType::Boolean,
                false,
            )));
        }
        fields.extend(input.fields().iter().cloned());
        Arc::new(Schema::new(fields))
    }

    /// Where the join input's columns start in a kept row.
    fn offset(&self) -> usize {
        2 + usize::from(self.preserved)
    }

    async fn ensure_loaded(
        &mut self,
        batch: BatchId,
        input: &SchemaRef,
        fresh: bool,
    ) -> Result<(), StateError> {
        if self.state.is_some() && !fresh {
            return Ok(());
        }
        let time = input.index_of(&self.time_column).map_err(|_| {
            self.compute(format!(
                "the join input has no column `{}`",
                self.time_column
            ))
        })?;
        // A row is kept while a row of the other side could match it: until the watermark
        // passes its event time plus the reach, as Spark keeps it (rows of the other side at
        // or below the watermark are late, so the row matches nothing new at the tie either).
        let mut state = KeyedState::new(
            self.kept_schema(input),
            2,
            self.reach_ns
                .map(|reach| (time + self.offset(), reach.saturating_add(1))),
        )
        .map_err(|e| self.compute(e))?;
        // On equal windows, a row of the other side is in the row's window: the last that
        // can match comes just before the window's end.
        if let (Some((size, origin)), Some(_)) = (self.windows, self.reach_ns) {
            state = state.within_windows(size, origin);
        }
        if let Some(previous) = batch.prev() {
            self.files.load(previous, &mut state).await?;
        }
        self.state = Some(state);
        Ok(())
    }

    /// The kept rows whole (ordered by key), and their join input's columns alone.
    fn kept(&self) -> Result<(RecordBatch, RecordBatch), StateError> {
        let state = self.state.as_ref().expect("loaded");
        let all = state.all().map_err(|e| self.compute(e))?;
        let columns: Vec<usize> = (self.offset()..all.num_columns()).collect();
        let input = all.project(&columns).map_err(|e| self.compute(e))?;
        Ok((all, input))
    }

    /// Keeps `rows` (this batch's input of the side), then drops what the watermark passed.
    /// On a preserved side, `matched` says which of the kept rows (`kept`, as [`Side::kept`]
    /// gave them) and of `rows` match a row of the other side, kept or new: a kept row that
    /// matched for the first time is kept again so marked. Returns the rows dropped that never
    /// matched (a preserved side's; none on another), as the join input's columns.
    fn keep(
        &mut self,
        batch: BatchId,
        rows: &RecordBatch,
        watermark_ns: Option<i64>,
        kept: &RecordBatch,
        matched: Option<(&BooleanArray, &BooleanArray)>,
    ) -> Result<RecordBatch, StateError> {
        let compute = |e: datafusion::arrow::error::ArrowError| StateError::Compute {
            operator: self.files.operator().to_string(),
            reason: e.to_string(),
        };
        let offset = self.offset();
        let n = rows.num_rows();
        let batch_ids: ArrayRef = Arc::new(Int64Array::from(vec![batch.0 as i64; n]));
        let row_ids: ArrayRef = Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()));
        let mut columns = vec![batch_ids, row_ids];
        let mut again = None;
        if self.preserved {
            let (kept_matched, new_matched) = matched
                .ok_or_else(|| self.compute("an outer join's side was kept without its matches"))?;
            columns.push(Arc::new(new_matched.clone()));
            // Kept rows that matched for the first time, marked.
            let was = kept
                .column(2)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| self.compute("a kept row's match flag is not a boolean"))?;
            let first_time = BooleanArray::from(
                (0..kept.num_rows())
                    .map(|i| !was.value(i) && kept_matched.value(i))
                    .collect::<Vec<_>>(),
            );
            let marked = filter_record_batch(kept, &first_time).map_err(compute)?;
            let mut marked_columns = marked.columns().to_vec();
            marked_columns[2] = Arc::new(BooleanArray::from(vec![true; marked.num_rows()]));
            again = Some(RecordBatch::try_new(marked.schema(), marked_columns).map_err(compute)?);
        }
        columns.extend(rows.columns().iter().cloned());
        let state = self.state.as_mut().expect("loaded");
        let mut keyed =
            RecordBatch::try_new(Arc::clone(state.schema()), columns).map_err(compute)?;
        if let Some(again) = again {
            keyed = concat_batches(state.schema(), [&again, &keyed]).map_err(compute)?;
        }
        state.upsert(keyed.clone()).map_err(compute)?;
        let expired: Vec<Key> = watermark_ns.map_or_else(Vec::new, |wm| state.expired(wm));
        let expired_rows = state
            .rows(expired.iter().map(|k| &k[..]))
            .map_err(compute)?;
        if let Some(wm) = watermark_ns {
            state.remove_expired(wm);
        }
        let kept_keys = state.keys(&keyed).map_err(compute)?;
        let live = BooleanArray::from(
            kept_keys
                .iter()
                .map(|k| state.contains(k))
                .collect::<Vec<_>>(),
        );
        let upserted = filter_record_batch(&keyed, &live).map_err(compute)?;
        let removed = state.key_batch(&expired_rows).map_err(compute)?;
        self.pending = Some((batch, upserted, removed));
        if !self.preserved {
            return Ok(RecordBatch::new_empty(rows.schema()));
        }
        let input_columns: Vec<usize> = (offset..expired_rows.num_columns()).collect();
        let matched = expired_rows
            .column(2)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| self.compute("a kept row's match flag is not a boolean"))?;
        let unmatched = datafusion::arrow::compute::not(matched).map_err(compute)?;
        filter_record_batch(&expired_rows, &unmatched)
            .and_then(|r| r.project(&input_columns))
            .map_err(compute)
    }
}

/// A scan of `rows`, named as the join's side was (`qualifier`), so that the join's
/// expressions still resolve.
fn scan(
    rows: RecordBatch,
    name: &str,
    qualifier: &TableReference,
) -> Result<LogicalPlan, DataFusionError> {
    let table = MemTable::try_new(rows.schema(), vec![vec![rows]])?;
    LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?
        .alias(qualifier.clone())?
        .build()
}

/// `rows` with a last column [`ID_COLUMN`] numbering them from 0.
fn with_ids(rows: &RecordBatch) -> Result<RecordBatch, DataFusionError> {
    let mut fields: Vec<Arc<Field>> = rows.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ID_COLUMN, DataType::Int64, false)));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(
        (0..rows.num_rows() as i64).collect::<Vec<_>>(),
    )));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// `join` with each side's input filtered by the conjuncts of the query's conditions that read
/// that side alone and can drop none of the join's output rows, so that a side keeps only rows
/// that can be joined (Spark's optimizer pushes them so): of the `WHERE` right above the join,
/// those on an inner join's either side, or on an outer join's one preserved side; of the
/// join's `ON`, those on an inner join's either side, or on the side an outer join does not
/// preserve. A conjunct that calls a function whose value is not fixed by its arguments
/// (`now()`, `random()`) or holds a subquery stays where it is: a row kept now is joined in a
/// later batch. The conditions themselves stay too (the join's output is what it was, rows
/// kept before this was done included).
fn with_side_filters(
    mut join: datafusion::logical_expr::Join,
    logical: &LogicalPlan,
) -> datafusion::logical_expr::Join {
    use datafusion::logical_expr::Volatility;
    use datafusion::logical_expr::utils::{conjunction, split_conjunction};
    let mut above = Vec::new();
    let _ = logical.apply(|node| {
        if let LogicalPlan::Filter(filter) = node
            && matches!(filter.input.as_ref(), LogicalPlan::Join(j) if *j == join)
        {
            above = split_conjunction(&filter.predicate)
                .into_iter()
                .cloned()
                .collect();
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let on: Vec<Expr> = join
        .filter
        .as_ref()
        .map(|f| split_conjunction(f).into_iter().cloned().collect())
        .unwrap_or_default();
    let inner = join.join_type == JoinType::Inner;
    let preserved = [
        matches!(join.join_type, JoinType::Left | JoinType::Full),
        matches!(join.join_type, JoinType::Right | JoinType::Full),
    ];
    let fixed = |e: &Expr| {
        !e.exists(|x| {
            Ok(match x {
                Expr::ScalarFunction(f) => f.func.signature().volatility != Volatility::Immutable,
                Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_) => true,
                _ => false,
            })
        })
        .unwrap_or(true)
    };
    for i in 0..2 {
        let side = if i == 0 { &join.left } else { &join.right };
        let schema = Arc::clone(side.schema());
        let reads_this_side_alone = |e: &Expr| {
            let columns = e.column_refs();
            !columns.is_empty() && columns.iter().all(|c| schema.has_column(c)) && fixed(e)
        };
        let mut pushed: Vec<Expr> = Vec::new();
        if inner || (preserved[i] && !preserved[1 - i]) {
            pushed.extend(above.iter().filter(|e| reads_this_side_alone(e)).cloned());
        }
        if inner || !preserved[i] {
            pushed.extend(on.iter().filter(|e| reads_this_side_alone(e)).cloned());
        }
        let Some(predicate) = conjunction(pushed) else {
            continue;
        };
        if let Ok(filtered) = LogicalPlanBuilder::from(side.as_ref().clone())
            .filter(predicate)
            .and_then(LogicalPlanBuilder::build)
        {
            let filtered = Arc::new(filtered);
            if i == 0 {
                join.left = filtered;
            } else {
                join.right = filtered;
            }
        }
    }
    join
}

/// The one qualifier of every column of a join side.
fn side_qualifier(plan: &LogicalPlan) -> Result<TableReference, String> {
    let mut qualifiers = plan.schema().iter().map(|(q, _)| q.cloned());
    let first = qualifiers.next().flatten();
    match first {
        Some(q) if qualifiers.all(|other| other.as_ref() == Some(&q)) => Ok(q),
        _ => Err(
            "each side of a join of two streams must be one table or an aliased subquery".into(),
        ),
    }
}

impl JoinOperator {
    /// The join of `logical` (the query's one join of two streams), with each side's state
    /// told what its kept rows are for: a changed join (its type, keys or condition) would
    /// match them under rules they were not kept by, so loading them refuses it.
    fn the_join(
        &mut self,
        logical: &LogicalPlan,
    ) -> Result<datafusion::logical_expr::Join, StateError> {
        let compute = |e: &dyn std::fmt::Display| StateError::Compute {
            operator: "join-left and join-right".into(),
            reason: e.to_string(),
        };
        let mut join = None;
        logical
            .apply(|node| {
                if let LogicalPlan::Join(j) = node {
                    join = Some(j.clone());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .map_err(|e| compute(&e))?;
        let join = join.ok_or_else(|| compute(&"the query has no join"))?;
        let lineage = join_lineage(&join);
        for side in &mut self.sides {
            side.files.set_lineage(Some(lineage.clone()));
        }
        Ok(join)
    }
}

#[async_trait]
impl Operator for JoinOperator {
    /// Reads the join each side's kept rows are for, so that a changed join is refused
    /// before a batch is planned. (Their columns are checked when they are loaded, against
    /// the batch's tables, which hold only the columns the query names.)
    async fn check_state(
        &mut self,
        batch: BatchId,
        _session: &SessionState,
        logical: &LogicalPlan,
    ) -> Result<(), StateError> {
        self.the_join(logical)?;
        let Some(previous) = batch.prev() else {
            return Ok(());
        };
        for side in &self.sides {
            side.files.check_lineage(previous).await?;
        }
        Ok(())
    }

    async fn run(
        &mut self,
        batch: BatchId,
        session: &SessionState,
        logical: &LogicalPlan,
        time: BatchTime,
    ) -> Result<Arc<dyn ExecutionPlan>, StateError> {
        let watermark_ns = time.watermark_ns;
        let compute = |e: &dyn std::fmt::Display| StateError::Compute {
            operator: "join-left and join-right".into(),
            reason: e.to_string(),
        };
        let join = with_side_filters(self.the_join(logical)?, logical);
        let sides = [Arc::clone(&join.left), Arc::clone(&join.right)];
        self.sides[0].preserved = matches!(join.join_type, JoinType::Left | JoinType::Full);
        self.sides[1].preserved = matches!(join.join_type, JoinType::Right | JoinType::Full);
        let fresh = self.version != batch.prev();
        let (mut new_rows, mut kept, mut kept_whole, mut qualifiers) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (side, input) in self.sides.iter_mut().zip(&sides) {
            qualifiers.push(side_qualifier(input).map_err(|e| compute(&e))?);
            let plan = session
                .create_physical_plan(input)
                .await
                .map_err(|e| compute(&e))?;
            let schema = plan.schema();
            side.ensure_loaded(batch, &schema, fresh).await?;
            let out = collect_partitioned(plan, session.task_ctx())
                .await
                .map_err(|e| compute(&e))?;
            new_rows.push(concat_batches(&schema, out.iter().flatten()).map_err(|e| compute(&e))?);
            let (whole, input) = side.kept()?;
            kept_whole.push(whole);
            kept.push(input);
        }
        // The join's own condition, over the given rows of each side: the inner join of the
        // matching pairs, or (a semi join) which rows of one side match any of the other's.
        let joined = |join_type: JoinType,
                      left: RecordBatch,
                      right: RecordBatch|
         -> Result<LogicalPlan, DataFusionError> {
            let inputs = vec![
                scan(left, "__sluice_join_left", &qualifiers[0])?,
                scan(right, "__sluice_join_right", &qualifiers[1])?,
            ];
            let mut node = join.clone();
            node.join_type = join_type;
            let node = LogicalPlan::Join(node);
            node.with_new_exprs(node.expressions(), inputs)
        };
        // A preserved side's rows, kept then new, that match a row of the other side, kept or
        // new (a row that matched a row gone since is marked so already).
        let mut matched: [Option<(BooleanArray, BooleanArray)>; 2] = [None, None];
        for (i, semi) in [(0, JoinType::LeftSemi), (1, JoinType::RightSemi)] {
            if !self.sides[i].preserved {
                continue;
            }
            let all = |i: usize| concat_batches(&new_rows[i].schema(), [&kept[i], &new_rows[i]]);
            let (mine, theirs) = (
                all(i).map_err(|e| compute(&e))?,
                all(1 - i).map_err(|e| compute(&e))?,
            );
            let ids = with_ids(&mine).map_err(|e| compute(&e))?;
            let plan = if i == 0 {
                joined(semi, ids, theirs)
            } else {
                joined(semi, theirs, ids)
            }
            .and_then(|p| {
                LogicalPlanBuilder::from(p)
                    .project(vec![col(Column::new(
                        Some(qualifiers[i].clone()),
                        ID_COLUMN,
                    ))])?
                    .build()
            })
            .map_err(|e| compute(&e))?;
            let physical = session
                .create_physical_plan(&plan)
                .await
                .map_err(|e| compute(&e))?;
            let found = collect_partitioned(physical, session.task_ctx())
                .await
                .map_err(|e| compute(&e))?;
            let mut flags = vec![false; mine.num_rows()];
            for rows in found.iter().flatten() {
                let ids = rows
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| compute(&"a row id is not a bigint"))?;
                for id in ids.iter().flatten() {
                    if let Some(flag) = usize::try_from(id).ok().and_then(|i| flags.get_mut(i)) {
                        *flag = true;
                    }
                }
            }
            let split = kept[i].num_rows();
            matched[i] = Some((
                BooleanArray::from(flags[..split].to_vec()),
                BooleanArray::from(flags[split..].to_vec()),
            ));
        }
        // Each side keeps its new rows and lets go of what the watermark passed: a preserved
        // side's that never matched are emitted below. From here the state is this batch's:
        // where the batch fails, its next try loads the previous version again.
        self.version = None;
        let mut unmatched = Vec::new();
        for (i, side) in self.sides.iter_mut().enumerate() {
            let flags = matched[i].as_ref().map(|(k, n)| (k, n));
            unmatched.push(side.keep(batch, &new_rows[i], watermark_ns, &kept_whole[i], flags)?);
        }
        // Every pair that matches is joined in the batch where the later of the two arrives:
        // new left rows with all right rows, and kept left rows with new right rows.
        let both = (|| -> Result<LogicalPlan, DataFusionError> {
            let right_all = concat_batches(&new_rows[1].schema(), [&kept[1], &new_rows[1]])?;
            let pair = |left: RecordBatch, right: RecordBatch| joined(JoinType::Inner, left, right);
            // The two sides may share column names, which a union's output cannot: number the
            // columns through the union, then give them back their qualified names, so what the
            // query does with the join's output still resolves.
            let numbered = |plan: LogicalPlan| -> Result<LogicalPlan, DataFusionError> {
                let columns: Vec<Expr> = join
                    .schema
                    .iter()
                    .enumerate()
                    .map(|(i, (q, f))| {
                        col(Column::new(q.cloned(), f.name())).alias(format!("__sluice_{i}"))
                    })
                    .collect();
                LogicalPlanBuilder::from(plan).project(columns)?.build()
            };
            let named: Vec<Expr> = join
                .schema
                .iter()
                .enumerate()
                .map(|(i, (q, f))| {
                    col(Column::new_unqualified(format!("__sluice_{i}")))
                        .alias_qualified(q.cloned(), f.name())
                })
                .collect();
            // A preserved side's rows let go without a match, with nulls for the other side,
            // numbered as the pairs are (always there, perhaps empty, so that the union's
            // columns of the other side are nullable, as the outer join's are).
            let left_width = join.left.schema().fields().len();
            let padded = |i: usize, rows: RecordBatch| -> Result<LogicalPlan, DataFusionError> {
                let name = ["__sluice_join_left", "__sluice_join_right"][i];
                let columns = join
                    .schema
                    .iter()
                    .enumerate()
                    .map(|(n, (q, f))| {
                        let alias = format!("__sluice_{n}");
                        if (n < left_width) == (i == 0) {
                            Ok(col(Column::new(q.cloned(), f.name())).alias(alias))
                        } else {
                            Ok(
                                lit(datafusion::common::ScalarValue::try_from(f.data_type())?)
                                    .alias(alias),
                            )
                        }
                    })
                    .collect::<Result<Vec<Expr>, DataFusionError>>()?;
                LogicalPlanBuilder::from(scan(rows, name, &qualifiers[i])?)
                    .project(columns)?
                    .build()
            };
            let mut out =
                LogicalPlanBuilder::from(numbered(pair(new_rows[0].clone(), right_all)?)?)
                    .union(numbered(pair(kept[0].clone(), new_rows[1].clone())?)?)?;
            for (i, rows) in unmatched.iter().enumerate() {
                if self.sides[i].preserved {
                    out = out.union(padded(i, rows.clone())?)?;
                }
            }
            out.project(named)?.build()
        })()
        .map_err(|e| compute(&e))?;
        let rewritten = logical
            .clone()
            .transform_down(|node| {
                Ok(if matches!(node, LogicalPlan::Join(_)) {
                    Transformed::new(both.clone(), true, TreeNodeRecursion::Jump)
                } else {
                    Transformed::no(node)
                })
            })
            .and_then(|t| t.data.recompute_schema())
            .map_err(|e| compute(&e))?;
        let physical = session
            .create_physical_plan(&rewritten)
            .await
            .map_err(|e| compute(&e))?;
        self.version = Some(batch);
        Ok(physical)
    }

    async fn commit(&mut self, batch: BatchId) -> Result<Vec<OperatorMetrics>, StateError> {
        let mut out = Vec::new();
        for side in &mut self.sides {
            let (pending_batch, upserted, removed) = side
                .pending
                .take()
                .ok_or_else(|| side.compute(format!("batch {batch} has no state to write")))?;
            if pending_batch != batch {
                return Err(side.compute(format!("batch {batch} has no state to write")));
            }
            let state = side.state.as_ref().expect("ran");
            let bytes = side
                .files
                .write_version(batch, state, &upserted, &removed, self.snapshot_every)
                .await?;
            out.push(OperatorMetrics {
                operator: side.files.operator().to_string(),
                metrics: StateMetrics {
                    rows_total: state.len() as u64,
                    rows_updated: upserted.num_rows() as u64,
                    rows_removed: removed.num_rows() as u64,
                    rows_expired: 0,
                    bytes_written: bytes,
                },
            });
        }
        Ok(out)
    }

    async fn purge(&self, oldest_kept: BatchId) -> Result<(), StateError> {
        for side in &self.sides {
            side.files.purge(oldest_kept).await?;
        }
        Ok(())
    }

    fn holds_ending_by(&self, watermark_ns: i64) -> Option<bool> {
        let mut any = false;
        for side in &self.sides {
            let state = side.state.as_ref()?;
            any |= state.earliest_end().is_some_and(|end| end <= watermark_ns);
        }
        Some(any)
    }
}
