//! Floating-point grouping keys, normalized as Spark normalizes them.
//!
//! A `double` has many NaNs (the sign bit and the payload vary: `"-NaN"` parsed, `0.0 / 0.0`
//! computed on x86, a NaN another engine wrote to Parquet) and two zeros. DataFusion groups
//! by the bits, so `NaN` and `-NaN` became two groups (walk 91: `GROUP BY d` gave `(nan, 2)`
//! and `(-nan, 1)`, and `SELECT DISTINCT d` both), where DuckDB and Spark give one group.
//! Spark's `NormalizeFloatingNumbers` rule rewrites each floating-point grouping key to
//! `normalizenanandzero(key)` (every NaN one NaN, `-0.0` as `0.0`); so does
//! [`NormalizeFloatKeys`], an analyzer rule, for `GROUP BY` keys and `SELECT DISTINCT`
//! columns of type `float` or `double`. The keys keep their names; their values in the
//! output are the normalized ones (as in Spark's).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ExprSchemable;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Distinct, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The name of the normalizing function in plans (Spark's expression's name).
pub const NORMALIZE: &str = "normalize_nan_and_zero";

/// The analyzer rule that normalizes floating-point grouping keys (module docs).
#[derive(Debug, Default)]
pub struct NormalizeFloatKeys;

impl AnalyzerRule for NormalizeFloatKeys {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Aggregate(aggregate) => normalize_aggregate(aggregate),
            LogicalPlan::Distinct(Distinct::All(input)) => normalize_distinct(input),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "normalize_float_keys"
    }
}

fn is_float(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
}

/// `expr` normalized, under its own name.
fn normalized(expr: Expr) -> Expr {
    let name = NamePreserver::new_for_projection().save(&expr);
    name.restore(ScalarUDF::from(NormalizeNanAndZero::new()).call(vec![expr]))
}

fn normalize_aggregate(aggregate: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let schema = Arc::clone(aggregate.input.schema());
    let mut changed = false;
    let mut group = Vec::with_capacity(aggregate.group_expr.len());
    for expr in &aggregate.group_expr {
        // Grouping sets (`ROLLUP`, `CUBE`) are left as they are.
        let float = !matches!(expr, Expr::GroupingSet(_))
            && expr.get_type(&schema).is_ok_and(|t| is_float(&t));
        if float {
            changed = true;
            group.push(normalized(expr.clone()));
        } else {
            group.push(expr.clone());
        }
    }
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    Aggregate::try_new(aggregate.input, group, aggregate.aggr_expr)
        .map(|a| Transformed::yes(LogicalPlan::Aggregate(a)))
}

/// `SELECT DISTINCT` over `input`, its floating-point columns normalized below it.
fn normalize_distinct(input: Arc<LogicalPlan>) -> Result<Transformed<LogicalPlan>> {
    let schema = Arc::clone(input.schema());
    if !schema.fields().iter().any(|f| is_float(f.data_type())) {
        return Ok(Transformed::no(LogicalPlan::Distinct(Distinct::All(input))));
    }
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            if is_float(field.data_type()) {
                normalized(column)
            } else {
                column
            }
        })
        .collect();
    let projected = LogicalPlanBuilder::from(input).project(columns)?.build()?;
    Ok(Transformed::yes(LogicalPlan::Distinct(Distinct::All(
        Arc::new(projected),
    ))))
}

/// `normalize_nan_and_zero(x)`: `x` of type `float` or `double` with every NaN as the one NaN
/// (positive, quiet) and `-0.0` as `0.0`; nulls stay null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizeNanAndZero {
    signature: Signature,
}

impl NormalizeNanAndZero {
    /// The function, over one `float` or `double` argument.
    pub fn new() -> Self {
        Self {
            signature: Signature::uniform(
                1,
                vec![DataType::Float32, DataType::Float64],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for NormalizeNanAndZero {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for NormalizeNanAndZero {
    fn name(&self) -> &str {
        NORMALIZE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    /// Nullable as its argument is: a `NOT NULL` key stays so (a sink's Parquet column
    /// `required`, as before the key was normalized).
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let arg = &args.arg_fields[0];
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            self.name(),
            arg.data_type().clone(),
            arg.is_nullable(),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(match &args.args[0] {
            ColumnarValue::Array(array) => {
                ColumnarValue::Array(crate::floats::normalized_array(array))
            }
            ColumnarValue::Scalar(ScalarValue::Float32(v)) => {
                ColumnarValue::Scalar(ScalarValue::Float32(v.map(crate::floats::normal_f32)))
            }
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => {
                ColumnarValue::Scalar(ScalarValue::Float64(v.map(crate::floats::normal_f64)))
            }
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;

    use super::*;

    /// Walk 91: `NaN` and `-NaN` (and `0.0`, `-0.0`) are one group each, in `GROUP BY` and
    /// `SELECT DISTINCT`, as in DuckDB and Spark.
    #[tokio::test]
    async fn every_nan_is_one_group_and_every_zero_another() {
        let ctx = super::super::session(&super::super::default_settings());
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Float64, true)]));
        let negative_nan = f64::from_bits(f64::NAN.to_bits() | (1 << 63));
        let values = Float64Array::from(vec![
            Some(f64::NAN),
            Some(negative_nan),
            Some(f64::NAN),
            Some(0.0),
            Some(-0.0),
            None,
            Some(1.5),
        ]);
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)]).expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("s", Arc::new(table)).expect("register");
        let rows = |sql: &str| {
            let ctx = ctx.clone();
            let sql = sql.to_string();
            async move {
                let batches = ctx
                    .sql(&sql)
                    .await
                    .expect("plans")
                    .collect()
                    .await
                    .expect("runs");
                let mut rows: Vec<String> =
                    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                        .expect("formats")
                        .to_string()
                        .lines()
                        .filter(|l| l.starts_with("| "))
                        .skip(1)
                        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                        .collect();
                rows.sort();
                rows
            }
        };
        assert_eq!(
            rows("SELECT d, count(*) AS n FROM s GROUP BY d").await,
            ["| 0.0 | 2 |", "| 1.5 | 1 |", "| NaN | 3 |", "| | 1 |"]
        );
        assert_eq!(rows("SELECT DISTINCT d FROM s").await.len(), 4);
        // Qualified names above the aggregation still resolve.
        assert_eq!(
            rows("SELECT s.d, count(*) FROM s GROUP BY s.d HAVING count(*) > 1").await,
            ["| 0.0 | 2 |", "| NaN | 3 |"]
        );
    }
}
