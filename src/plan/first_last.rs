//! `first_value` and `last_value` with `ORDER BY`, grouped, without a `ScalarValue` per row.
//!
//! `SELECT DISTINCT ON (k) ... ORDER BY k, t DESC` is planned by DataFusion as one
//! `first_value(c ORDER BY t DESC)` per selected column, grouped by `k`. DataFusion 55's grouped
//! accumulator for these keeps each group's ordering as a `Vec<ScalarValue>` and turns every
//! batch's winning row into `ScalarValue`s to compare it with the group's (`extract_row_at_idx_to_buf`,
//! a clone of every string), which made most of the time of Nexmark q18 (a `DISTINCT ON` in
//! complete mode, whose state all goes through the final phase every batch).
//!
//! [`FirstLast`] stands in for both functions. Its grouped accumulator ([`FirstLastGroups`])
//! keeps, for each group, where its winning row is: a row of an input it holds on to, whose
//! ordering columns are encoded once per input as Arrow's row format (`arrow::row`, which
//! compares bytewise in the order of the `ORDER BY`'s sort options). Comparing is a `memcmp`;
//! the values are gathered with `interleave` only when the groups are emitted. Inputs no group
//! points into any more are dropped, and when the inputs held grow past twice the groups the
//! winners are gathered into one.
//!
//! The result is DataFusion's to the row: the same partial state (value, ordering columns,
//! `is_set`, so a checkpoint's stored state reads on), and the same row among ties (the
//! earliest of a batch, and the group's own over a batch's equal one). Everything else
//! (`accumulator` without groups, window use, planning) is DataFusion's own function's.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, new_empty_array, new_null_array,
};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature,
};
use datafusion::physical_expr::LexOrdering;

/// DataFusion's `first_value` or `last_value`, with the grouped accumulator of this module
/// where the call has an `ORDER BY` (module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FirstLast {
    /// DataFusion's own function (or the form of it `with_beneficial_ordering` made).
    inner: Arc<AggregateUDF>,
    /// `first_value` (else `last_value`).
    first: bool,
}

impl FirstLast {
    /// `first_value`, as registered in a session in place of DataFusion's.
    pub fn first_value() -> AggregateUDF {
        AggregateUDF::from(Self {
            inner: datafusion::functions_aggregate::first_last::first_value_udaf(),
            first: true,
        })
    }

    /// `last_value`, as registered in a session in place of DataFusion's.
    pub fn last_value() -> AggregateUDF {
        AggregateUDF::from(Self {
            inner: datafusion::functions_aggregate::first_last::last_value_udaf(),
            first: false,
        })
    }
}

impl AggregateUDFImpl for FirstLast {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        // Only where DataFusion would group too: elsewhere (a boolean value, say) it picks
        // among ties by another rule (`last_value` the last row), which stays its own.
        if FirstLastGroups::supports(&args) {
            return Ok(Box::new(FirstLastGroups::try_new(&args, self.first)?));
        }
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> Result<Option<Arc<dyn AggregateUDFImpl>>> {
        let Some(inner) =
            Arc::clone(self.inner.inner()).with_beneficial_ordering(beneficial_ordering)?
        else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Self {
            inner: Arc::new(AggregateUDF::new_from_shared_impl(inner)),
            first: self.first,
        })))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        // The reverse of one is the other, of this module too.
        match self.inner.reverse_udf() {
            ReversedUDAF::Reversed(_) if self.first => {
                ReversedUDAF::Reversed(Arc::new(Self::last_value()))
            }
            ReversedUDAF::Reversed(_) => ReversedUDAF::Reversed(Arc::new(Self::first_value())),
            other => other,
        }
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// One input the accumulator holds on to: its value and ordering columns, and the ordering
/// columns in Arrow's row format.
#[derive(Debug)]
struct Held {
    /// The value column, then the ordering columns.
    columns: Vec<ArrayRef>,
    orderings: Rows,
    /// Groups whose winner is in this input.
    winners: usize,
}

/// Where a group's winning row is: `(input, row)` among [`FirstLastGroups::held`].
type At = (u32, u32);

/// The grouped accumulator of `first_value(v ORDER BY ...)` / `last_value(...)` (module docs).
///
/// Shapes: `update_batch` takes `[v, o1, ..., on]`, `merge_batch` and `state` the partial
/// state `[v, o1, ..., on, is_set]`, as DataFusion's own.
#[derive(Debug)]
pub struct FirstLastGroups {
    /// `first_value` (the least row in the ordering wins), else `last_value` (the greatest).
    first: bool,
    /// `IGNORE NULLS`: a null value never wins.
    ignore_nulls: bool,
    converter: RowConverter,
    /// The value's type, then the ordering columns'.
    types: Vec<DataType>,
    held: Vec<Option<Held>>,
    /// Rows of the inputs held.
    held_rows: usize,
    /// Per group, its winner (`None`: no row yet).
    winners: Vec<Option<At>>,
}

impl FirstLastGroups {
    /// Whether this accumulator computes the call `args` (one DataFusion groups): one with an
    /// `ORDER BY` over flat columns the row format encodes. A nested ordering column (struct,
    /// list) stays DataFusion's: across batches it compares them through `ScalarValue`, whose
    /// order of null fields the row format does not share.
    fn supports(args: &AccumulatorArgs) -> bool {
        let Some(ordering) = LexOrdering::new(args.order_bys.to_vec()) else {
            return false;
        };
        ordering.iter().all(|e| {
            e.expr.data_type(args.schema).is_ok_and(|t| {
                !t.is_nested() && RowConverter::supports_fields(&[SortField::new(t)])
            })
        })
    }

    fn try_new(args: &AccumulatorArgs, first: bool) -> Result<Self> {
        let Some(ordering) = LexOrdering::new(args.order_bys.to_vec()) else {
            return internal_err!("a grouped first_value/last_value without ORDER BY");
        };
        let mut types = vec![args.return_field.data_type().clone()];
        let mut fields = Vec::with_capacity(ordering.len());
        for e in ordering.iter() {
            let data_type = e.expr.data_type(args.schema)?;
            fields.push(SortField::new_with_options(data_type.clone(), e.options));
            types.push(data_type);
        }
        Ok(Self {
            first,
            ignore_nulls: args.ignore_nulls,
            converter: RowConverter::new(fields)?,
            types,
            held: Vec::new(),
            held_rows: 0,
            winners: Vec::new(),
        })
    }

    /// Makes `columns` (`[v, o1, ..., on]`) compete for the groups `group_indices` names,
    /// row by row, where `counts` says the row counts.
    fn compete(
        &mut self,
        columns: &[ArrayRef],
        group_indices: &[usize],
        counts: impl Fn(usize) -> bool,
        total_num_groups: usize,
    ) -> Result<()> {
        if columns.len() != self.types.len() {
            return internal_err!(
                "{} columns given to a first_value/last_value of {}",
                columns.len(),
                self.types.len()
            );
        }
        self.winners.resize(total_num_groups, None);
        let orderings = self.converter.convert_columns(&columns[1..])?;
        let input = self.held.len() as u32;
        let value = &columns[0];
        let mut won = 0usize;
        for (row, &group) in group_indices.iter().enumerate() {
            if !counts(row) || (self.ignore_nulls && value.is_null(row)) {
                continue;
            }
            // A row wins only over a worse one: among equals the group's own row stays, and
            // within the input the earliest (DataFusion's rule).
            let wins = match self.winners[group] {
                None => true,
                Some((i, r)) => {
                    let current = if i == input {
                        orderings.row(r as usize)
                    } else {
                        let Some(held) = &self.held[i as usize] else {
                            return internal_err!("a winner in an input no longer held");
                        };
                        held.orderings.row(r as usize)
                    };
                    let candidate = orderings.row(row);
                    if self.first {
                        candidate < current
                    } else {
                        candidate > current
                    }
                }
            };
            if wins {
                match self.winners[group] {
                    Some((i, _)) if i == input => {}
                    Some((i, _)) => {
                        self.release(i);
                        won += 1;
                    }
                    None => won += 1,
                }
                self.winners[group] = Some((input, row as u32));
            }
        }
        if won > 0 {
            self.held_rows += value.len();
            self.held.push(Some(Held {
                columns: columns.to_vec(),
                orderings,
                winners: won,
            }));
        }
        // An input no winner points into is not held (nor numbered).
        self.trim();
        if self.held_rows > 2 * self.winners.len() + 8192 {
            self.compact()?;
        }
        Ok(())
    }

    /// Drops the slots of inputs let go from [`Self::held`] once they are most of it, numbering
    /// the rest again, so that it does not grow by a slot a batch where new rows keep winning.
    fn trim(&mut self) {
        while matches!(self.held.last(), Some(None)) {
            self.held.pop();
        }
        let live = self.held.iter().flatten().count();
        if self.held.len() <= 2 * live + 16 {
            return;
        }
        let mut number = vec![0u32; self.held.len()];
        let mut next = 0u32;
        for (i, slot) in self.held.iter().enumerate() {
            if slot.is_some() {
                number[i] = next;
                next += 1;
            }
        }
        for (i, _) in self.winners.iter_mut().flatten() {
            *i = number[*i as usize];
        }
        self.held.retain(Option::is_some);
    }

    /// One group less has its winner in input `i`; the input goes when none has.
    fn release(&mut self, i: u32) {
        let slot = &mut self.held[i as usize];
        if let Some(held) = slot {
            held.winners -= 1;
            if held.winners == 0 {
                self.held_rows -= held.columns[0].len();
                *slot = None;
            }
        }
    }

    /// Gathers every group's winner into one input, dropping the rest.
    fn compact(&mut self) -> Result<()> {
        let at: Vec<(usize, At)> = self
            .winners
            .iter()
            .enumerate()
            .filter_map(|(g, w)| w.map(|w| (g, w)))
            .collect();
        let picks: Vec<At> = at.iter().map(|(_, w)| *w).collect();
        let columns = self.gather(&picks)?;
        let orderings = self.converter.convert_columns(&columns[1..])?;
        for (n, (g, _)) in at.iter().enumerate() {
            self.winners[*g] = Some((0, n as u32));
        }
        self.held_rows = picks.len();
        self.held = vec![Some(Held {
            columns,
            orderings,
            winners: picks.len(),
        })];
        Ok(())
    }

    /// The columns (`[v, o1, ..., on]`) of the rows at `picks`; `(held.len(), 0)` picks a null.
    fn gather(&self, picks: &[At]) -> Result<Vec<ArrayRef>> {
        let indices: Vec<(usize, usize)> = picks
            .iter()
            .map(|&(i, r)| (i as usize, r as usize))
            .collect();
        self.types
            .iter()
            .enumerate()
            .map(|(c, data_type)| {
                // An input no longer held stands as an empty array: no pick points into it.
                let empty = new_empty_array(data_type);
                let null = new_null_array(data_type, 1);
                let mut arrays: Vec<&dyn Array> = self
                    .held
                    .iter()
                    .map(|h| match h {
                        Some(held) => held.columns[c].as_ref(),
                        None => empty.as_ref(),
                    })
                    .collect();
                arrays.push(null.as_ref());
                Ok(interleave(&arrays, &indices)?)
            })
            .collect()
    }

    /// Takes the groups `emit_to` names: `[v, o1, ..., on]` and whether each had a row.
    fn take(&mut self, emit_to: EmitTo) -> Result<(Vec<ArrayRef>, BooleanArray)> {
        let taken = emit_to.take_needed(&mut self.winners);
        let is_set: BooleanArray = taken.iter().map(|w| Some(w.is_some())).collect();
        // A group without a row reads a null row, from one more input after those held.
        let nulls = self.held.len() as u32;
        let picks: Vec<At> = taken.iter().map(|w| w.unwrap_or((nulls, 0))).collect();
        let columns = self.gather(&picks)?;
        match emit_to {
            EmitTo::All => {
                self.held.clear();
                self.held_rows = 0;
            }
            EmitTo::First(_) => {
                for (i, _) in taken.iter().flatten() {
                    self.release(*i);
                }
                self.trim();
            }
        }
        Ok((columns, is_set))
    }
}

impl GroupsAccumulator for FirstLastGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        // A row passes a FILTER clause only where it is true (not null).
        let counts = |row: usize| opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        self.compete(values, group_indices, counts, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let Some((is_set, columns)) = values.split_last() else {
            return internal_err!("an empty state given to first_value/last_value");
        };
        let Some(is_set) = is_set.as_boolean_opt() else {
            return internal_err!("a first_value/last_value state whose is_set is not boolean");
        };
        let counts = |row: usize| is_set.is_valid(row) && is_set.value(row);
        self.compete(columns, group_indices, counts, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (mut columns, _) = self.take(emit_to)?;
        Ok(columns.swap_remove(0))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (mut columns, is_set) = self.take(emit_to)?;
        columns.push(Arc::new(is_set));
        Ok(columns)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut state = values.to_vec();
        let rows = values.first().map_or(0, |v| v.len());
        state.push(match opt_filter {
            Some(filter) => Arc::new(filter.clone()),
            None => Arc::new(BooleanArray::from(vec![true; rows])),
        });
        Ok(state)
    }

    fn size(&self) -> usize {
        let held: usize = self
            .held
            .iter()
            .flatten()
            .map(|h| {
                // What the rows take, not the buffers they may share with other inputs.
                h.columns
                    .iter()
                    .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
                    .sum::<usize>()
                    + h.orderings.size()
            })
            .sum();
        held + self.held.capacity() * size_of::<Option<Held>>()
            + self.winners.capacity() * size_of::<Option<At>>()
            + self.converter.size()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// `rows` random rows `t(g, t, f, s, b, v)` in `parts` partitions of batches of 97 rows:
    /// `t` has few values (ties), or none repeated where `unique`; every column but `g` has
    /// nulls.
    fn table(rows: usize, parts: usize, unique: bool, seed: u64) -> MemTable {
        let mut rng = StdRng::seed_from_u64(seed);
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("t", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let mut order: Vec<i64> = (0..rows as i64).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut partitions = vec![Vec::new(); parts];
        for (n, start) in (0..rows).step_by(97).enumerate() {
            let len = 97.min(rows - start);
            let null_one_in = 8.0;
            let g: Vec<i64> = (0..len).map(|_| rng.random_range(0..40)).collect();
            let t: Vec<Option<i64>> = (start..start + len)
                .map(|i| {
                    (unique || !rng.random_bool(1.0 / null_one_in)).then(|| {
                        if unique {
                            order[i]
                        } else {
                            rng.random_range(0..4)
                        }
                    })
                })
                .collect();
            let f: Vec<Option<f64>> = (0..len)
                .map(|_| {
                    rng.random_bool(0.9)
                        .then(|| f64::from(rng.random_range(-3..3_i32)) / 2.0)
                })
                .collect();
            let s: Vec<Option<String>> = (0..len)
                .map(|_| {
                    rng.random_bool(0.85)
                        .then(|| format!("s{}", rng.random_range(0..1000)))
                })
                .collect();
            let b: Vec<Option<bool>> = (0..len)
                .map(|_| rng.random_bool(0.9).then(|| rng.random_bool(0.5)))
                .collect();
            let v: Vec<Option<i64>> = (0..len)
                .map(|_| rng.random_bool(0.9).then(|| rng.random_range(0..10)))
                .collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(g)),
                    Arc::new(Int64Array::from(t)),
                    Arc::new(Float64Array::from(f)),
                    Arc::new(StringArray::from(s)),
                    Arc::new(BooleanArray::from(b)),
                    Arc::new(Int64Array::from(v)),
                ],
            )
            .expect("batch");
            partitions[n % parts].push(batch);
        }
        MemTable::try_new(schema, partitions).expect("table")
    }

    /// `sql`'s rows over `table` with DataFusion's own functions, and with this module's.
    async fn both(sql: &str, table: impl Fn() -> MemTable, partitions: usize) -> (String, String) {
        let mut out = Vec::new();
        for ours in [false, true] {
            let config = SessionConfig::new()
                .with_target_partitions(partitions)
                .with_batch_size(128);
            let ctx = SessionContext::new_with_config(config);
            if ours {
                ctx.register_udaf(FirstLast::first_value());
                ctx.register_udaf(FirstLast::last_value());
            }
            ctx.register_table("t", Arc::new(table()))
                .expect("register");
            let rows = ctx.sql(sql).await.expect(sql).collect().await.expect(sql);
            out.push(pretty_format_batches(&rows).expect("format").to_string());
        }
        let ours = out.pop().expect("two");
        (out.pop().expect("two"), ours)
    }

    const QUERIES: &[&str] = &[
        "SELECT g, first_value(s ORDER BY t DESC NULLS LAST, f) AS a,
                last_value(s ORDER BY t, f DESC NULLS FIRST) AS b,
                first_value(b ORDER BY t NULLS FIRST) AS c,
                last_value(v ORDER BY s DESC) AS d,
                first_value(f ORDER BY b, t) AS e,
                last_value(b ORDER BY t) AS h,
                first_value(s ORDER BY named_struct('t', t, 'f', f) DESC) AS i
         FROM t GROUP BY g ORDER BY g",
        "SELECT g, first_value(s ORDER BY t) FILTER (WHERE v > 3) AS a,
                last_value(s ORDER BY t) FILTER (WHERE b) AS b
         FROM t GROUP BY g ORDER BY g",
        "SELECT g, first_value(s ORDER BY t) IGNORE NULLS AS a,
                last_value(v ORDER BY f) IGNORE NULLS AS b
         FROM t GROUP BY g ORDER BY g",
        "SELECT g, first_value(named_struct('s', s, 'v', v) ORDER BY t DESC) AS a
         FROM t GROUP BY g ORDER BY g",
        "SELECT DISTINCT ON (g) g, t, s, v FROM t ORDER BY g, t DESC, f",
        "SELECT first_value(s ORDER BY t, f) AS a, last_value(s ORDER BY t, f) AS b FROM t",
    ];

    #[tokio::test]
    async fn one_partition_with_ties_gives_datafusion_s_rows() {
        // One partition in order: which of equal rows wins is DataFusion's rule, to the row.
        for (n, sql) in QUERIES.iter().enumerate() {
            let (theirs, ours) = both(sql, || table(20_000, 1, false, n as u64), 1).await;
            assert_eq!(ours, theirs, "{sql}");
            assert!(theirs.lines().count() >= 5, "no rows: {theirs}");
        }
    }

    #[tokio::test]
    async fn partial_and_final_phases_over_partitions_give_datafusion_s_rows() {
        // Four partitions, two phases (`merge_batch` of partial states); no ties, so the
        // rows do not hang on the order partitions arrive in.
        for (n, sql) in QUERIES.iter().enumerate() {
            let (theirs, ours) = both(sql, || table(30_000, 4, true, 100 + n as u64), 4).await;
            assert_eq!(ours, theirs, "{sql}");
        }
    }

    /// A `first_value(v ORDER BY o)` accumulator over `v: Utf8`, `o: Int64`.
    fn accumulator(first: bool) -> FirstLastGroups {
        FirstLastGroups {
            first,
            ignore_nulls: false,
            converter: RowConverter::new(vec![SortField::new(DataType::Int64)]).expect("rows"),
            types: vec![DataType::Utf8, DataType::Int64],
            held: Vec::new(),
            held_rows: 0,
            winners: Vec::new(),
        }
    }

    fn input(values: &[(&str, i64)]) -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from_iter_values(values.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(values.iter().map(|r| r.1))),
        ]
    }

    fn strings(array: &ArrayRef) -> Vec<Option<String>> {
        array
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect()
    }

    #[test]
    fn groups_emitted_first_leave_the_rest_in_place() {
        let mut acc = accumulator(true);
        acc.update_batch(&input(&[("a", 5), ("b", 2), ("c", 9)]), &[0, 1, 2], None, 4)
            .expect("update");
        acc.update_batch(&input(&[("d", 1), ("e", 1), ("f", 3)]), &[2, 2, 0], None, 4)
            .expect("update");
        // Groups 0 and 1 go: 0's best is f (3 < 5), 1's b.
        let state = acc.state(EmitTo::First(2)).expect("state");
        assert_eq!(strings(&state[0]), [Some("f".into()), Some("b".into())]);
        assert_eq!(
            state[1]
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values(),
            &[3, 2]
        );
        // Former groups 2 and 3 are now 0 and 1: 0 keeps d over its equal e; 1 had no row.
        acc.update_batch(&input(&[("g", 1), ("h", 0)]), &[0, 0], None, 2)
            .expect("update");
        let state = acc.state(EmitTo::All).expect("state");
        assert_eq!(strings(&state[0]), [Some("h".into()), None]);
        assert_eq!(
            state[2].as_boolean().iter().collect::<Vec<_>>(),
            [Some(true), Some(false)]
        );
        assert!(acc.held.is_empty());
    }

    #[test]
    fn inputs_no_group_points_into_are_let_go() {
        let mut acc = accumulator(false);
        for round in 0..200_i64 {
            let rows: Vec<(&str, i64)> = (0..100).map(|i| ("x", round * 100 + i)).collect();
            let groups: Vec<usize> = (0..100).map(|i| i % 3).collect();
            acc.update_batch(&input(&rows), &groups, None, 3)
                .expect("update");
            // Every input beats the last: only the newest is held, in few slots.
            assert_eq!(acc.held.iter().flatten().count(), 1);
            assert!(acc.held.len() <= 18, "{} slots", acc.held.len());
            assert!(acc.held_rows <= 100, "{}", acc.held_rows);
        }
        let last = acc.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(last.len(), 3);
    }

    #[test]
    fn inputs_held_for_few_winners_are_gathered_into_one() {
        let mut acc = accumulator(true);
        // Each input wins one group of its own, so every input stays held until gathered.
        for round in 0..300_usize {
            let rows: Vec<(&str, i64)> = (0..100).map(|i| ("y", i)).collect();
            let groups: Vec<usize> = vec![round; 100];
            acc.update_batch(&input(&rows), &groups, None, round + 1)
                .expect("update");
            assert!(
                acc.held_rows <= 2 * (round + 1) + 8192 + 100,
                "{}",
                acc.held_rows
            );
        }
        let out = acc.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(out.len(), 300);
        assert!(strings(&out).iter().all(|s| s.as_deref() == Some("y")));
    }
}
