//! Floating-point values as SQL compares them: every NaN one value (`NaN`, `-NaN`, a NaN
//! of any payload) and `-0.0` as `0.0`, as Spark's `NormalizeFloatingNumbers` makes them and
//! PostgreSQL's equality takes them. DataFusion and Arrow compare floats by their bits, so
//! grouping keys (`plan::float_keys`) and the keys an upsert sink compares are
//! normalized first.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};

/// `v` with every NaN as the one (positive, quiet) NaN and `-0.0` as `0.0`.
pub fn normal_f64(v: f64) -> f64 {
    if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// [`normal_f64`] for `float`.
pub fn normal_f32(v: f32) -> f32 {
    if v.is_nan() {
        f32::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// `array` with every NaN as the one NaN and `-0.0` as `0.0` where it is of type `float` or
/// `double`; any other array as it is. For the keys an upsert sink compares by their bits
/// (Delta's newest row of each key, a Kafka record's key text), which would otherwise take
/// `NaN` and `-NaN`, `0.0` and `-0.0`, for two keys (audit 92b), where PostgreSQL, DuckDB and
/// Spark take one.
pub fn normalized_array(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Float32 => Arc::new(
            array
                .as_primitive::<Float32Type>()
                .unary::<_, Float32Type>(normal_f32),
        ),
        DataType::Float64 => Arc::new(
            array
                .as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(normal_f64),
        ),
        _ => Arc::clone(array),
    }
}
