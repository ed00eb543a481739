//! `min` and `max` of `float` and `double`, grouped, with every NaN the greatest value.
//!
//! DataFusion 55's grouped accumulator for `min`/`max` of floats replaces a group's value
//! wherever Rust's `partial_cmp` has no answer, that is wherever either side is NaN: which
//! value a group keeps then depends on the order its rows and partial states come in (walk
//! 103: 1.0, NaN and 2.0 read a file a batch gave min = max = 2.0; read as one batch, NaN and
//! NaN). It also starts `max` at the least finite value (`f64::MIN`), not at `-inf`. Its
//! accumulator without groups orders as `total_cmp` does and gives 1.0 and NaN, as DuckDB,
//! Spark and PostgreSQL do (NaN above every number).
//!
//! [`MinMaxFloat`] stands in for both functions. For a `float` or `double` argument its
//! accumulators, grouped ([`FloatMinMaxGroups`]) and not, order values so: every NaN above
//! every number (a NaN of either sign: `total_cmp` puts `-NaN` below them), numbers by
//! `total_cmp` (`-0.0` below `0.0`). The order is total, so a state merged batch by batch
//! gives the value of one batch. The partial state is DataFusion's (one column of the
//! argument's type, null for a group without a value), so a checkpoint's stored state reads
//! on. Everything else (other types, window frames that slide) is DataFusion's own
//! function's.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, FieldRef, Float32Type, Float64Type,
};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};

/// DataFusion's `min` or `max`, with the grouped accumulator of this module for a `float` or
/// `double` argument (module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MinMaxFloat {
    /// DataFusion's own function.
    inner: Arc<AggregateUDF>,
    /// `max` (else `min`).
    max: bool,
}

impl MinMaxFloat {
    /// `min`, as registered in a session in place of DataFusion's.
    pub fn min() -> AggregateUDF {
        AggregateUDF::from(Self {
            inner: datafusion::functions_aggregate::min_max::min_udaf(),
            max: false,
        })
    }

    /// `max`, as registered in a session in place of DataFusion's.
    pub fn max() -> AggregateUDF {
        AggregateUDF::from(Self {
            inner: datafusion::functions_aggregate::min_max::max_udaf(),
            max: true,
        })
    }
}

impl AggregateUDFImpl for MinMaxFloat {
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
        // Without groups too, so that a NaN of either sign (`0.0 / 0.0` computes `-NaN` on
        // x86, which `total_cmp` puts below every number) orders as grouped.
        match args.return_field.data_type() {
            data_type @ (DataType::Float64 | DataType::Float32) => Ok(Box::new(FloatMinMax {
                data_type: data_type.clone(),
                max: self.max,
                value: None,
            })),
            _ => self.inner.accumulator(args),
        }
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
        let data_type = args.return_field.data_type().clone();
        match data_type {
            DataType::Float64 => Ok(Box::new(FloatMinMaxGroups::<Float64Type>::new(
                data_type, self.max,
            ))),
            DataType::Float32 => Ok(Box::new(FloatMinMaxGroups::<Float32Type>::new(
                data_type, self.max,
            ))),
            _ => self.inner.create_groups_accumulator(args),
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.inner().value_from_stats(statistics_args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_udf()
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// A float type's values, as this module orders them.
pub trait NanGreatest: Copy {
    /// `self` against `other`: every NaN above every number (NaNs equal), numbers by
    /// `total_cmp`.
    fn order(self, other: Self) -> Ordering;
}

impl NanGreatest for f64 {
    fn order(self, other: Self) -> Ordering {
        match (self.is_nan(), other.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.total_cmp(&other),
        }
    }
}

impl NanGreatest for f32 {
    fn order(self, other: Self) -> Ordering {
        match (self.is_nan(), other.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.total_cmp(&other),
        }
    }
}

/// The accumulator of `min` or `max` of a float type without groups, as
/// [`FloatMinMaxGroups`] orders values (a `float`'s held as the `double` it widens to
/// exactly).
#[derive(Debug)]
struct FloatMinMax {
    /// The argument's type (the output's): `Float64` or `Float32`.
    data_type: DataType,
    /// `max` (the greatest value wins), else `min`.
    max: bool,
    /// The value so far.
    value: Option<f64>,
}

impl Accumulator for FloatMinMax {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else {
            return internal_err!("min/max of no column");
        };
        let wanted = if self.max {
            Ordering::Greater
        } else {
            Ordering::Less
        };
        let mut take = |new: f64| {
            if self.value.is_none_or(|cur| new.order(cur) == wanted) {
                self.value = Some(new);
            }
        };
        if let Some(values) = values.as_primitive_opt::<Float64Type>() {
            values.iter().flatten().for_each(&mut take);
        } else if let Some(values) = values.as_primitive_opt::<Float32Type>() {
            values.iter().flatten().map(f64::from).for_each(&mut take);
        } else {
            return internal_err!("min/max of a float given {}", values.data_type());
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.data_type {
            // Exactly the `float` it was widened from.
            DataType::Float32 => ScalarValue::Float32(self.value.map(|v| v as f32)),
            _ => ScalarValue::Float64(self.value),
        })
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// The grouped accumulator of `min` or `max` of a float type `T` (module docs).
///
/// Shapes: `update_batch` and `merge_batch` take one column of `T` (the argument, or the
/// partial state: a null is a group without a value); `evaluate` and `state` give one.
#[derive(Debug)]
pub struct FloatMinMaxGroups<T: ArrowPrimitiveType> {
    /// The argument's type (the output's).
    data_type: DataType,
    /// `max` (the greatest value wins), else `min`.
    max: bool,
    /// Each group's value so far, where `seen`.
    values: Vec<T::Native>,
    /// Whether each group has had a value.
    seen: Vec<bool>,
}

impl<T: ArrowPrimitiveType> FloatMinMaxGroups<T>
where
    T::Native: NanGreatest,
{
    /// An accumulator of no group yet.
    pub fn new(data_type: DataType, max: bool) -> Self {
        Self {
            data_type,
            max,
            values: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Takes in the rows of `values` for which `counts` holds, each into its group of
    /// `group_indices`.
    fn take_in(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        counts: impl Fn(usize) -> bool,
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(values) = values.first().and_then(|v| v.as_primitive_opt::<T>()) else {
            return internal_err!("min/max of a float given another column");
        };
        self.values.resize(total_num_groups, T::Native::default());
        self.seen.resize(total_num_groups, false);
        let wanted = if self.max {
            Ordering::Greater
        } else {
            Ordering::Less
        };
        for (row, &group) in group_indices.iter().enumerate() {
            if values.is_null(row) || !counts(row) {
                continue;
            }
            let new = values.value(row);
            if !self.seen[group] || new.order(self.values[group]) == wanted {
                self.values[group] = new;
                self.seen[group] = true;
            }
        }
        Ok(())
    }

    /// The groups `emit_to` names, as a column (null where a group had no value).
    fn take(&mut self, emit_to: EmitTo) -> ArrayRef {
        let values = emit_to.take_needed(&mut self.values);
        let seen = emit_to.take_needed(&mut self.seen);
        Arc::new(
            PrimitiveArray::<T>::new(values.into(), Some(NullBuffer::from(seen)))
                .with_data_type(self.data_type.clone()),
        )
    }
}

impl<T: ArrowPrimitiveType + Send> GroupsAccumulator for FloatMinMaxGroups<T>
where
    T::Native: NanGreatest,
{
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        // A row passes a FILTER clause only where it is true (not null).
        let counts = |row: usize| opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        self.take_in(values, group_indices, counts, total_num_groups)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.take_in(values, group_indices, |_| true, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.take(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.take(emit_to)])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row its own partial value (DataFusion skips the partial phase of a batch of
        // mostly distinct groups): a row a FILTER clause leaves out is none.
        let Some(values) = values.first().and_then(|v| v.as_primitive_opt::<T>()) else {
            return internal_err!("min/max of a float given another column");
        };
        let kept = opt_filter.map(|f| {
            NullBuffer::from(
                (0..f.len())
                    .map(|row| f.is_valid(row) && f.value(row))
                    .collect::<Vec<bool>>(),
            )
        });
        let nulls = NullBuffer::union(values.nulls(), kept.as_ref());
        Ok(vec![Arc::new(
            PrimitiveArray::<T>::new(values.values().clone(), nulls)
                .with_data_type(self.data_type.clone()),
        )])
    }

    fn size(&self) -> usize {
        self.values.capacity() * size_of::<T::Native>() + self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float64Array;

    /// Walk 103 (1): 1.0, NaN and 2.0 a batch each gave min = max = 2.0. Each order of the
    /// three, and each split into batches merged as partial states, gives min 1.0 and max NaN;
    /// a group of only infinities keeps them (DataFusion's started `max` at `f64::MIN`).
    #[test]
    fn every_order_and_split_gives_the_same_min_and_max() {
        let rows = [1.0, f64::NAN, 2.0, -0.0, 0.0];
        let orders = [
            [0, 1, 2, 3, 4],
            [1, 0, 2, 4, 3],
            [2, 1, 0, 3, 4],
            [4, 3, 2, 1, 0],
        ];
        for max in [false, true] {
            for order in orders {
                for split in 1..rows.len() {
                    let values: Vec<f64> = order.iter().map(|i| rows[*i]).collect();
                    let mut merged = FloatMinMaxGroups::<Float64Type>::new(DataType::Float64, max);
                    for part in values.chunks(split) {
                        let mut partial =
                            FloatMinMaxGroups::<Float64Type>::new(DataType::Float64, max);
                        let column: ArrayRef = Arc::new(Float64Array::from(part.to_vec()));
                        partial
                            .update_batch(&[column], &vec![0; part.len()], None, 1)
                            .expect("update");
                        let state = partial.state(EmitTo::All).expect("state");
                        merged.merge_batch(&state, &[0], 1).expect("merge");
                    }
                    let out = merged.evaluate(EmitTo::All).expect("evaluate");
                    let got = out.as_primitive::<Float64Type>().value(0);
                    match max {
                        true => assert!(got.is_nan(), "max of {values:?} by {split}: {got}"),
                        false => assert_eq!(
                            got.to_bits(),
                            (-0.0f64).to_bits(),
                            "min of {values:?} by {split}: {got}"
                        ),
                    }
                }
            }
        }
        for (max, value) in [(true, f64::NEG_INFINITY), (false, f64::INFINITY)] {
            let mut only = FloatMinMaxGroups::<Float64Type>::new(DataType::Float64, max);
            let column: ArrayRef = Arc::new(Float64Array::from(vec![value, value]));
            only.update_batch(&[column], &[0, 0], None, 1)
                .expect("update");
            let out = only.evaluate(EmitTo::All).expect("evaluate");
            assert_eq!(out.as_primitive::<Float64Type>().value(0), value);
        }
    }
}
