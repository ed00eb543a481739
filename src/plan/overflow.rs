//! Integer arithmetic that fails on overflow instead of wrapping around.
//!
//! DataFusion computes `+`, `-`, `*` and `sum` over integer columns with wrapping arithmetic
//! (`9e18 + 9e18` is `-446744073709551616`): a total that is silently wrong. Spark (ANSI mode,
//! its default from 4.0: `ARITHMETIC_OVERFLOW`), DuckDB (`Overflow in addition of INT64`) and
//! PostgreSQL (`bigint out of range`) refuse such a value, and so does Sluice:
//!
//! - [`CheckedIntegerArithmetic`], an analyzer rule run after DataFusion's type coercion, turns
//!   each `a + b`, `a - b`, `a * b` whose two sides are of one integer type into
//!   [`CheckedArithmetic`], which computes with Arrow's checked kernels and keeps the
//!   expression's name (`v + v`), so output columns are named as before;
//! - [`CheckedSum`] stands in for DataFusion's `sum`: over integers it adds with overflow
//!   checks, in each batch's partial aggregation and where a streaming aggregation merges a
//!   batch into its stored state; over other types it is DataFusion's own.
//!
//! Decimals too: DataFusion's decimal `+`, `-`, `*`, `/` and `sum` give values past their
//! type's precision (`d + d` of a `decimal(38,10)` holding 5e27 writes 29 integer digits into
//! a 38,10 column) and its `sum` wraps past `i128`. Each such result is checked against its
//! type's precision ([`CheckedDecimal`]; [`CheckedSum`] over `Decimal128`), as DuckDB
//! ("Overflow in SUM of DECIMAL") and Spark (ANSI) refuse it.
//!
//! An overflow fails the batch (`on_error` is about input rows, not the query) with the
//! expression and its operands, and how to widen them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, DecimalType, Field, FieldRef, Int64Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue, exec_datafusion_err};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, BinaryExpr, ColumnarValue, EmitTo, Expr,
    ExprSchemable, GroupsAccumulator, LogicalPlan, Operator, ReturnFieldArgs, ReversedUDAF,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, SetMonotonicity, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// What an overflow error of `+`, `-`, `*` over `operand` (as the query names it) advises.
fn widen(operand: &str) -> String {
    format!(
        "cast an operand to a wider type first (`CAST({operand} AS DECIMAL(38, 0))`), as Spark \
         and DuckDB refuse such a value too"
    )
}

/// What a decimal overflow error over `operand`, of a result of type `decimal(precision,
/// scale)`, advises: a cast that leaves more digits before the point (walk 103: the advice
/// named `DECIMAL(38, 2)` for a column of that type, which changed nothing), or double.
fn widen_decimal(operand: &str, precision: u8, scale: i8) -> String {
    let wider = if precision < 38 {
        Some(format!(
            "`CAST({operand} AS DECIMAL(38, {scale}))` holds {} before it",
            38 - i16::from(scale).max(0)
        ))
    } else if scale > 0 {
        Some(format!(
            "fewer digits after it: `CAST({operand} AS DECIMAL(38, 0))` holds 38 before it, \
             and no fraction"
        ))
    } else {
        None
    };
    match wider {
        Some(wider) => format!(
            "cast first to a decimal with more digits before the point ({wider}), or to double \
             (`CAST({operand} AS DOUBLE)`, about 15 significant digits), as Spark refuses such \
             a value too"
        ),
        None => format!(
            "no decimal holds more than 38 digits: cast first to double (`CAST({operand} AS \
             DOUBLE)`, about 15 significant digits), as Spark refuses such a value too"
        ),
    }
}

/// What an overflow error of sum `name` (`sum(s.v)`) advises.
fn widen_sum(name: &str) -> String {
    let (distinct, argument) = sum_argument(name);
    format!(
        "sum a wider type (`sum({distinct}CAST({argument} AS DECIMAL(38, 0)))`): Spark (ANSI, its \
         default) refuses such a sum of bigint too, and DuckDB and PostgreSQL sum bigints into a \
         wider type (HUGEINT, numeric), as that cast does"
    )
}

/// Of sum `name` (`sum(DISTINCT s.v)`): `DISTINCT ` or nothing, and the argument (`s.v`).
fn sum_argument(name: &str) -> (&'static str, &str) {
    let argument = name
        .strip_prefix("sum(")
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or("v");
    match argument.strip_prefix("DISTINCT ") {
        Some(argument) => ("DISTINCT ", argument),
        None => ("", argument),
    }
}

/// The side of a binary expression an advice names: the left, unless it is a literal.
fn named_operand(left: &Expr, right: &Expr) -> String {
    let literal = |e: &Expr| match e {
        Expr::Literal(..) => true,
        Expr::Cast(c) => matches!(c.expr.as_ref(), Expr::Literal(..)),
        _ => false,
    };
    let side = if literal(left) && !literal(right) {
        right
    } else {
        left
    };
    side.schema_name().to_string()
}

/// The analyzer rule that makes integer `+`, `-` and `*` fail on overflow (module docs).
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // The columns a node's expressions name: its inputs' (a scan's own).
            let inputs = node.inputs();
            let schema = match inputs.as_slice() {
                [] => node.schema().as_ref().clone(),
                [one] => one.schema().as_ref().clone(),
                [first, rest @ ..] => {
                    let mut schema = first.schema().as_ref().clone();
                    for input in rest {
                        schema.merge(input.schema());
                    }
                    schema
                }
            };
            // A projection's or aggregation's columns keep their names.
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|e| checked(e, &schema))
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }
}

/// `expr` as a [`CheckedArithmetic`] call where it is an integer `+`, `-` or `*`; in an `a
/// AND b` or `a OR b` whose `b` holds one, that one computed only on the rows `a` leaves open (DataFusion computes both sides over a whole batch, so a row that `a` rules
/// out, `v < 1000 AND v * 10 > 15`, would fail on its overflow; Spark and DuckDB do not
/// look at `b` there).
fn checked(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // `-v` of a signed integer: `0 - v`, checked (the smallest value has no negation).
    if let Expr::Negative(operand) = &expr
        && let Ok(t) = operand.get_type(schema)
        && t.is_signed_integer()
    {
        let text = expr.schema_name().to_string();
        let udf = ScalarUDF::from(CheckedArithmetic::negation(
            text,
            operand.schema_name().to_string(),
        ));
        let zero = Expr::Literal(ScalarValue::new_zero(&t)?, None);
        return Ok(Transformed::yes(
            udf.call(vec![zero, operand.as_ref().clone()]),
        ));
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    if matches!(op, Operator::And | Operator::Or) && holds_checked(right) {
        // Each checked computation of `b`, as a `CASE` that computes it where `a` leaves the
        // result open (not a boolean `CASE`, which the simplifier turns back into `AND`/`OR`).
        let open = match op {
            Operator::And => left.as_ref().clone().is_not_false(),
            _ => left.as_ref().clone().is_not_true(),
        };
        let right = right.as_ref().clone().transform_down(|e| {
            if is_checked(&e) {
                let guarded = datafusion::logical_expr::when(open.clone(), e).end()?;
                return Ok(Transformed::new(guarded, true, TreeNodeRecursion::Jump));
            }
            Ok(Transformed::no(e))
        })?;
        return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
            left.clone(),
            *op,
            Box::new(right.data),
        ))));
    }
    if !matches!(
        op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide
    ) {
        return Ok(Transformed::no(expr));
    }
    // An operand whose type is not known here (an outer query's column) is left as it is.
    let (Ok(left_type), Ok(right_type)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(expr));
    };
    // Arrow gives a decimal result the precision that holds every value of its operands, up
    // to 38: only a result held to 38 digits can overflow it.
    if let Ok(DataType::Decimal128(precision @ 38, scale)) = expr.get_type(schema)
        && matches!(left_type, DataType::Decimal128(..))
        && matches!(right_type, DataType::Decimal128(..))
    {
        let text = expr.schema_name().to_string();
        let operand = named_operand(left, right);
        // `+`, `-`, `*` computed by the check itself, so that a value past 128 bits (which
        // Arrow refuses without naming the expression) is named too; `/` (which DataFusion
        // computes at a scale of its own) is checked after DataFusion's division.
        if let Some(op) = Some(*op).filter(|op| *op != Operator::Divide)
            && decimal_result(op, &left_type, &right_type) == Some((precision, scale))
        {
            let udf = ScalarUDF::from(CheckedDecimal::computing(op, text, operand));
            return Ok(Transformed::yes(
                udf.call(vec![left.as_ref().clone(), right.as_ref().clone()]),
            ));
        }
        let udf = ScalarUDF::from(CheckedDecimal::new(text, operand, precision, scale));
        return Ok(Transformed::yes(udf.call(vec![expr])));
    }
    if left_type != right_type || !left_type.is_integer() || *op == Operator::Divide {
        return Ok(Transformed::no(expr));
    }
    let text = expr.schema_name().to_string();
    let udf = ScalarUDF::from(CheckedArithmetic::new(
        *op,
        text,
        named_operand(left, right),
    ));
    Ok(Transformed::yes(
        udf.call(vec![left.as_ref().clone(), right.as_ref().clone()]),
    ))
}

/// The names of [`CheckedArithmetic`]'s and [`CheckedDecimal`]'s functions (registered
/// nowhere: only this rule makes them).
const CHECKED_NAMES: [&str; 7] = [
    "checked_add",
    "checked_subtract",
    "checked_multiply",
    "checked_decimal",
    "checked_decimal_add",
    "checked_decimal_subtract",
    "checked_decimal_multiply",
];

/// The precision and scale of Arrow's decimal `a + b`, `a - b` or `a * b` of decimals of
/// types `left` and `right` (`arrow_arith::numeric`'s rule, which DataFusion's coercion
/// follows): `+`/`-` keep the larger scale with one more integer digit, `*` adds scales and
/// precisions plus one; the precision held to 38.
fn decimal_result(op: Operator, left: &DataType, right: &DataType) -> Option<(u8, i8)> {
    let (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) = (left, right) else {
        return None;
    };
    let (p1, s1, p2, s2) = (
        i16::from(*p1),
        i16::from(*s1),
        i16::from(*p2),
        i16::from(*s2),
    );
    let (precision, scale) = match op {
        Operator::Plus | Operator::Minus => {
            let scale = s1.max(s2);
            ((p1 - s1).max(p2 - s2) + scale + 1, scale)
        }
        Operator::Multiply => (p1 + p2 + 1, s1 + s2),
        _ => return None,
    };
    Some((
        u8::try_from(precision.min(38)).ok()?,
        i8::try_from(scale).ok()?,
    ))
}

/// Whether `expr` is a [`CheckedArithmetic`] call.
fn is_checked(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if CHECKED_NAMES.contains(&f.func.name()))
}

/// Whether `expr` computes a [`CheckedArithmetic`] anywhere in it.
fn holds_checked(expr: &Expr) -> bool {
    expr.exists(|e| Ok(is_checked(e))).unwrap_or(false)
}

/// `a + b`, `a - b` or `a * b` over two integers of one type, or `-b` as `0 - b`, an error
/// where the result does not fit the type. Named as the expression it replaces.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedArithmetic {
    op: Operator,
    /// The expression as DataFusion names it (`s.v + s.v`), for its column name and errors.
    text: String,
    /// `-b`, called as `0 - b` and named as DataFusion names a negation (`(- s.v)`).
    negation: bool,
    /// The operand an overflow's advice names (`s.v`).
    operand: String,
    signature: Signature,
}

impl CheckedArithmetic {
    fn new(op: Operator, text: String, operand: String) -> Self {
        Self {
            op,
            text,
            negation: false,
            operand,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    fn negation(text: String, operand: String) -> Self {
        Self {
            negation: true,
            ..Self::new(Operator::Minus, text, operand)
        }
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_subtract",
            _ => "checked_multiply",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(
            self.name(),
            args.arg_fields[0].data_type().clone(),
            nullable,
        )))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        if self.negation {
            return Ok(format!("(- {})", args[1].schema_name()));
        }
        Ok(format!(
            "{} {} {}",
            args[0].schema_name(),
            self.op,
            args[1].schema_name()
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (a, b) = (&arrays[0], &arrays[1]);
        let result = match self.op {
            Operator::Plus => numeric::add(a, b),
            Operator::Minus => numeric::sub(a, b),
            _ => numeric::mul(a, b),
        };
        match result {
            Ok(array) => Ok(ColumnarValue::Array(array)),
            Err(ArrowError::ArithmeticOverflow(what)) => {
                let what = what.trim_start_matches("Overflow happened on: ");
                let type_name = crate::format::sql_type_name(a.data_type());
                Err(exec_datafusion_err!(
                    "integer overflow in `{}`: {what} does not fit in {type_name}; {}",
                    self.text,
                    widen(&self.operand)
                ))
            }
            Err(e) => Err(DataFusionError::ArrowError(Box::new(e), None)),
        }
    }
}

/// A decimal `a + b`, `a - b`, `a * b` or `a / b` as DataFusion computes it, each value checked
/// against the precision of its type (DataFusion leaves a value with more digits than its
/// type holds). Named as the expression it wraps.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedDecimal {
    /// Where the check computes `a + b`, `a - b` or `a * b` itself from the two operands it
    /// is called with; `None` where it is called with the value to check.
    op: Option<Operator>,
    /// The expression as DataFusion names it (`s.d + s.d`), for errors.
    text: String,
    /// The operand an overflow's advice names (`s.d`).
    operand: String,
    precision: u8,
    scale: i8,
    signature: Signature,
}

impl CheckedDecimal {
    fn new(text: String, operand: String, precision: u8, scale: i8) -> Self {
        Self {
            op: None,
            text,
            operand,
            precision,
            scale,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// The check that computes `a op b` of its two operands (`+`, `-` or `*`).
    fn computing(op: Operator, text: String, operand: String) -> Self {
        Self {
            op: Some(op),
            signature: Signature::any(2, Volatility::Immutable),
            ..Self::new(text, operand, 38, 0)
        }
    }
}

impl ScalarUDFImpl for CheckedDecimal {
    fn name(&self) -> &str {
        match self.op {
            None => "checked_decimal",
            Some(Operator::Plus) => "checked_decimal_add",
            Some(Operator::Minus) => "checked_decimal_subtract",
            Some(_) => "checked_decimal_multiply",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let Some(op) = self.op else {
            return Ok(arg_types[0].clone());
        };
        match decimal_result(op, &arg_types[0], &arg_types[1]) {
            Some((precision, scale)) => Ok(DataType::Decimal128(precision, scale)),
            None => datafusion::common::internal_err!(
                "a decimal {op} of {} and {}",
                arg_types[0],
                arg_types[1]
            ),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Arc::new(Field::new(
            self.name(),
            self.return_type(&types)?,
            args.arg_fields.iter().any(|f| f.is_nullable()),
        )))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(match self.op {
            None => args[0].schema_name().to_string(),
            Some(op) => format!("{} {op} {}", args[0].schema_name(), args[1].schema_name()),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if let Some(op) = self.op {
            let (a, b) = (&arrays[0], &arrays[1]);
            let result = match op {
                Operator::Plus => numeric::add(a, b),
                Operator::Minus => numeric::sub(a, b),
                _ => numeric::mul(a, b),
            };
            arrays = match result {
                Ok(array) => vec![array],
                // A value past 128 bits, far past the 38 digits any decimal type holds.
                Err(ArrowError::ArithmeticOverflow(what)) => {
                    let what = what.trim_start_matches("Overflow happened on: ");
                    let shown = |t: &DataType| crate::format::sql_type_name(t);
                    return Err(exec_datafusion_err!(
                        "decimal overflow in `{}`: computing it over {} and {} went past 128 \
                         bits, more digits than any decimal holds (unscaled: {what}); {}",
                        self.text,
                        shown(a.data_type()),
                        shown(b.data_type()),
                        widen_decimal(&self.operand, self.precision, self.scale)
                    ));
                }
                Err(e) => return Err(DataFusionError::ArrowError(Box::new(e), None)),
            };
        }
        let Some(values) = arrays[0].as_primitive_opt::<Decimal128Type>() else {
            return datafusion::common::internal_err!(
                "a decimal check of {}",
                arrays[0].data_type()
            );
        };
        // The type's own digits (a worker's instance, made without an expression, has none).
        let (precision, scale) = match values.data_type() {
            DataType::Decimal128(precision, scale) => (*precision, *scale),
            _ => (self.precision, self.scale),
        };
        if let Some(bad) = too_many_digits(values, precision) {
            return Err(exec_datafusion_err!(
                "decimal overflow in `{}`: {} does not fit in decimal({precision},{scale}); {}",
                self.text,
                decimal_text(bad, scale),
                widen_decimal(&self.operand, precision, scale)
            ));
        }
        Ok(ColumnarValue::Array(Arc::clone(&arrays[0])))
    }
}

/// The decimal of unscaled value `value` and scale `scale` as text (`-12.50`), whatever its
/// number of digits (Arrow's formatting assumes they fit the precision).
fn decimal_text(value: i128, scale: i8) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    match usize::try_from(scale) {
        Ok(0) | Err(_) => format!(
            "{sign}{digits}{}",
            "0".repeat(usize::from(scale.unsigned_abs()))
        ),
        Ok(scale) => {
            let digits = format!("{digits:0>width$}", width = scale + 1);
            let (whole, fraction) = digits.split_at(digits.len() - scale);
            format!("{sign}{whole}.{fraction}")
        }
    }
}

/// The first value of `values` with more digits than `precision`, if any.
fn too_many_digits(values: &PrimitiveArray<Decimal128Type>, precision: u8) -> Option<i128> {
    let fits = |v: i128| Decimal128Type::is_valid_decimal_precision(v, precision);
    if values.null_count() == 0 {
        values.values().iter().copied().find(|v| !fits(*v))
    } else {
        values.iter().flatten().find(|v| !fits(*v))
    }
}

/// DataFusion's `sum`, adding integers with overflow checks (module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedSum {
    inner: Arc<AggregateUDF>,
}

impl CheckedSum {
    /// `sum`, as registered in a session in place of DataFusion's.
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(Self {
            inner: datafusion::functions_aggregate::sum::sum_udaf(),
        })
    }
}

/// Whether a sum of return type `data_type` is one this module checks.
fn checked_sum_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int64 | DataType::UInt64 | DataType::Decimal128(..)
    )
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let data_type = args.return_field.data_type().clone();
        if !checked_sum_type(&data_type) {
            return self.inner.accumulator(args);
        }
        let name = args.name.to_string();
        if args.is_distinct {
            return Ok(Box::new(DistinctSum {
                inner: self.inner.accumulator(args)?,
                data_type,
                name,
            }));
        }
        Ok(Box::new(SumAccumulator {
            sum: None,
            data_type,
            name,
        }))
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
        if !checked_sum_type(&data_type) {
            return self.inner.create_groups_accumulator(args);
        }
        Ok(Box::new(SumGroups::new(data_type, args.name.to_string())))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

/// The error of a sum that does not fit its type.
fn sum_overflow(name: &str, data_type: &DataType) -> DataFusionError {
    match data_type {
        DataType::Decimal128(precision, scale) => exec_datafusion_err!(
            "decimal overflow in `{name}`: the sum does not fit in decimal({precision},{scale}); \
             {}",
            widen_decimal(sum_argument(name).1, *precision, *scale)
        ),
        _ => exec_datafusion_err!(
            "integer overflow in `{name}`: the sum does not fit in {}; {}",
            crate::format::sql_type_name(data_type),
            widen_sum(name)
        ),
    }
}

/// Calls `f` with the row and the value, widened, of each non-null value of an `Int64`,
/// `UInt64` or `Decimal128` array `values` (a decimal's unscaled value), in order.
fn for_each_value(values: &ArrayRef, mut f: impl FnMut(usize, i128) -> Result<()>) -> Result<()> {
    fn each<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
        values: &PrimitiveArray<T>,
        f: &mut impl FnMut(usize, i128) -> Result<()>,
    ) -> Result<()>
    where
        i128: From<T::Native>,
    {
        if values.null_count() == 0 {
            for (row, value) in values.values().iter().enumerate() {
                f(row, i128::from(*value))?;
            }
        } else {
            for row in 0..values.len() {
                if values.is_valid(row) {
                    f(row, i128::from(values.value(row)))?;
                }
            }
        }
        Ok(())
    }
    match values.data_type() {
        DataType::Int64 => each(values.as_primitive::<Int64Type>(), &mut f),
        DataType::UInt64 => each(values.as_primitive::<UInt64Type>(), &mut f),
        // Of one scale: a sum's values and its partial sums share the argument's.
        DataType::Decimal128(..) => each(values.as_primitive::<Decimal128Type>(), &mut f),
        other => datafusion::common::internal_err!("a checked sum of {other}"),
    }
}

/// `sums` (null where `None`) as an array of `data_type` (`Int64`, `UInt64` or `Decimal128`),
/// or the overflow error of `name` where one does not fit (a decimal: its precision).
fn narrow(sums: Vec<Option<i128>>, data_type: &DataType, name: &str) -> Result<ArrayRef> {
    let overflow = |_| sum_overflow(name, data_type);
    Ok(match data_type {
        DataType::Int64 => Arc::new(
            sums.into_iter()
                .map(|s| s.map(i64::try_from).transpose())
                .collect::<std::result::Result<PrimitiveArray<Int64Type>, _>>()
                .map_err(overflow)?,
        ),
        DataType::Decimal128(precision, scale) => {
            if sums
                .iter()
                .flatten()
                .any(|s| !Decimal128Type::is_valid_decimal_precision(*s, *precision))
            {
                return Err(sum_overflow(name, data_type));
            }
            Arc::new(
                PrimitiveArray::<Decimal128Type>::from(sums)
                    .with_precision_and_scale(*precision, *scale)?,
            )
        }
        _ => Arc::new(
            sums.into_iter()
                .map(|s| s.map(u64::try_from).transpose())
                .collect::<std::result::Result<PrimitiveArray<UInt64Type>, _>>()
                .map_err(overflow)?,
        ),
    })
}

/// `a + b`, or the overflow error of `name` past `i128`: no integer sum reaches it, but a
/// decimal(38, s) sum can (two values near 1e38) even where later values would bring the total
/// back into its type, so such a sum may fail or not by the order of its values.
fn add(a: i128, b: i128, name: &str, data_type: &DataType) -> Result<i128> {
    a.checked_add(b)
        .ok_or_else(|| sum_overflow(name, data_type))
}

/// The sum of a column's values, null until a value is added. Added up in `i128` and checked
/// against the sum's type when it is read, so that the order the values come in does not
/// decide whether an integer sum fails (`MAX + 1 - 1` fits; for decimals see [`add`]).
#[derive(Debug)]
struct SumAccumulator {
    sum: Option<i128>,
    data_type: DataType,
    name: String,
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (name, data_type) = (&self.name, &self.data_type);
        let mut sum = self.sum;
        for_each_value(&values[0], |_, value| {
            sum = Some(add(sum.unwrap_or(0), value, name, data_type)?);
            Ok(())
        })?;
        self.sum = sum;
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&narrow(vec![self.sum], &self.data_type, &self.name)?, 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.name.capacity()
    }
}

/// `sum(DISTINCT x)`: DataFusion's accumulator keeps the distinct values; their sum is added
/// up here, checked.
#[derive(Debug)]
struct DistinctSum {
    inner: Box<dyn Accumulator>,
    data_type: DataType,
    name: String,
}

impl Accumulator for DistinctSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut sum = None;
        for state in self.inner.state()? {
            let ScalarValue::List(list) = state else {
                continue;
            };
            for_each_value(list.values(), |_, value| {
                sum = Some(add(sum.unwrap_or(0), value, &self.name, &self.data_type)?);
                Ok(())
            })?;
        }
        ScalarValue::try_from_array(&narrow(vec![sum], &self.data_type, &self.name)?, 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn size(&self) -> usize {
        self.inner.size() + self.name.capacity()
    }
}

/// The sums of many groups, each null until a value is added to it, added up in `i128` and
/// checked when read (as [`SumAccumulator`]).
struct SumGroups {
    sums: Vec<i128>,
    seen: Vec<bool>,
    data_type: DataType,
    name: String,
}

impl SumGroups {
    fn new(data_type: DataType, name: String) -> Self {
        Self {
            sums: Vec::new(),
            seen: Vec::new(),
            data_type,
            name,
        }
    }

    /// The first `emit_to` groups' sums, taken out.
    fn take(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        let sums = sums
            .into_iter()
            .zip(seen)
            .map(|(sum, seen)| seen.then_some(sum))
            .collect();
        narrow(sums, &self.data_type, &self.name)
    }
}

impl GroupsAccumulator for SumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, 0);
        self.seen.resize(total_num_groups, false);
        let (sums, seen) = (&mut self.sums, &mut self.seen);
        let (name, data_type) = (&self.name, &self.data_type);
        for_each_value(&values[0], |row, value| {
            if opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                return Ok(());
            }
            let group = group_indices[row];
            sums[group] = add(sums[group], value, name, data_type)?;
            seen[group] = true;
            Ok(())
        })
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        // A partial sum is a sum: merging adds them.
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.take(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.take(emit_to)?])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row its own partial sum: DataFusion asks where it skips the partial phase of
        // a batch of mostly distinct groups (100,000 rows and more), which this refused, so
        // every such batch failed (walk 103's review).
        let Some(values) = values.first() else {
            return datafusion::common::internal_err!("a checked sum of no column");
        };
        let mut sums = vec![None; values.len()];
        for_each_value(values, |row, value| {
            if opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row)) {
                sums[row] = Some(value);
            }
            Ok(())
        })?;
        Ok(vec![narrow(sums, &self.data_type, &self.name)?])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<i128>() + self.seen.capacity() + self.name.capacity()
    }
}

/// The checked functions the analyzer puts in plans, as a process that only runs plans (a
/// `sluice worker`) registers them: a plan names a function, so each is found by its name
/// (their errors there name no expression; the driver computes a failed batch again itself).
pub fn checked_functions() -> Vec<ScalarUDF> {
    [Operator::Plus, Operator::Minus, Operator::Multiply]
        .into_iter()
        .map(|op| ScalarUDF::from(CheckedArithmetic::new(op, String::new(), String::new())))
        .chain([ScalarUDF::from(CheckedDecimal::new(
            String::new(),
            String::new(),
            38,
            0,
        ))])
        .chain(
            [Operator::Plus, Operator::Minus, Operator::Multiply]
                .into_iter()
                .map(|op| {
                    ScalarUDF::from(CheckedDecimal::computing(op, String::new(), String::new()))
                }),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;

    use super::*;

    /// A session as batches run in, with table `t(k, v bigint, i int)` of `values`.
    fn session(values: &[(&str, i64, i32)]) -> datafusion::prelude::SessionContext {
        let ctx = super::super::session(&super::super::default_settings());
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
            Field::new("i", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(values.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(values.iter().map(|r| r.1))),
                Arc::new(Int32Array::from_iter_values(values.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        ctx.register_table("t", Arc::new(table)).expect("register");
        ctx
    }

    /// `sql`'s rows in `ctx` as a table, where it runs (`what` says what is expected).
    async fn table_of(ctx: &datafusion::prelude::SessionContext, sql: &str, what: &str) -> String {
        let rows = query(ctx, sql).await.expect(what);
        datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .expect("format")
            .to_string()
    }

    async fn query(
        ctx: &datafusion::prelude::SessionContext,
        sql: &str,
    ) -> Result<Vec<RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    /// Integer `+`, `-`, `*` and `sum` that do not fit fail, naming the expression; those that
    /// fit give DataFusion's values under DataFusion's column names.
    #[tokio::test]
    async fn integer_overflow_fails_instead_of_wrapping() {
        let big = 9_000_000_000_000_000_000;
        let ctx = session(&[("a", big, i32::MAX), ("a", big, 1), ("b", -5, 2)]);
        for (sql, says) in [
            (
                "SELECT v + v FROM t",
                "`t.v + t.v`: 9000000000000000000 + 9000000000000000000",
            ),
            ("SELECT v * 3 AS m FROM t", "`t.v * Int64(3)`"),
            ("SELECT -v - v FROM t", "`(- t.v) - t.v`"),
            (
                "SELECT i + i FROM t",
                "does not fit in int; cast an operand to a wider type first (`CAST(t.i AS",
            ),
            ("SELECT 2 * v FROM t", "(`CAST(t.v AS DECIMAL(38, 0))`)"),
            (
                "SELECT k, sum(v) FROM t GROUP BY k",
                "`sum(t.v)`: the sum does not fit in bigint",
            ),
            ("SELECT sum(v) FROM t", "`sum(t.v)`"),
            (
                "SELECT k, sum(DISTINCT v + i) FROM t GROUP BY k",
                "the sum does not fit",
            ),
            (
                "SELECT k, sum(v + 1) FROM t GROUP BY k",
                "`sum(t.v + Int64(1))`",
            ),
            ("SELECT k, sum(v * 2) FROM t GROUP BY k", "`t.v * Int64(2)`"),
        ] {
            let err = query(&ctx, sql).await.expect_err(sql).to_string();
            assert!(
                err.contains("integer overflow in ") && err.contains(says),
                "{sql}: {err}"
            );
        }
        // The smallest integer has no negation (DuckDB: "Overflow in negation").
        let ctx = session(&[("m", i64::MIN, i32::MIN)]);
        for (sql, says) in [
            ("SELECT -v FROM t", "`(- t.v)`"),
            ("SELECT -i AS n FROM t", "does not fit in int"),
        ] {
            let err = query(&ctx, sql).await.expect_err(sql).to_string();
            assert!(
                err.contains("integer overflow in ") && err.contains(says),
                "{sql}: {err}"
            );
        }
        let ctx = session(&[("m", i64::MIN + 1, 7)]);
        let shown = table_of(&ctx, "SELECT -v, -i AS n FROM t", "fits").await;
        assert!(
            shown.contains("| (- t.v)             | n  |")
                && shown.contains("| 9223372036854775807 | -7 |"),
            "{shown}"
        );
        // A row a condition rules out is not computed on (as Spark and DuckDB do), however
        // many rows the condition keeps; the name of a condition column stays DataFusion's.
        let ctx = session(&[("a", 1, 1), ("a", 2, 1), ("a", 3, 1), ("b", big, 1)]);
        for sql in [
            "SELECT k FROM t WHERE v < 1000 AND v * 10 > 15",
            "SELECT k FROM t WHERE v > 1000 OR v * 10 > 15",
            "SELECT k, v < 1000 AND v * 10 > 15 FROM t",
        ] {
            let shown = table_of(&ctx, sql, sql).await;
            assert!(!shown.contains("CASE"), "{sql}: {shown}");
        }
        // A sum whose total fits does not fail on the way, whatever the order of its values.
        let ctx = session(&[("a", i64::MAX, 1), ("a", 1, 1), ("a", -1, 1)]);
        let shown = table_of(&ctx, "SELECT k, sum(v) AS s FROM t GROUP BY k", "fits").await;
        assert!(shown.contains(&i64::MAX.to_string()), "{shown}");
        // What fits is DataFusion's, under its names; a wider type sums past bigint.
        let ctx = session(&[("a", 5, 1), ("a", 7, 2), ("b", -5, 2)]);
        let shown = table_of(
            &ctx,
            "SELECT k, v + v, v * 2 AS m, sum(v) AS s FROM t GROUP BY k, v ORDER BY k, v",
            "fits",
        )
        .await;
        assert!(shown.contains("| k | t.v + t.v | m   | s  |"), "{shown}");
        assert!(shown.contains("| a | 14        | 14  | 7  |"), "{shown}");
        assert!(shown.contains("| b | -10       | -10 | -5 |"), "{shown}");
        let ctx = session(&[("a", big, 1), ("a", big, 1)]);
        let shown = table_of(
            &ctx,
            "SELECT sum(CAST(v AS DECIMAL(38, 0))) AS s FROM t",
            "decimal",
        )
        .await;
        assert!(shown.contains("18000000000000000000"), "{shown}");
    }

    /// Decimal `+`, `-`, `*`, `/` and `sum` past the type's precision fail (walk 12: `d + d`
    /// wrote 29 integer digits into a decimal(38,10) column, and a sum wrapped negative), as
    /// DuckDB's "Overflow in SUM of DECIMAL" and Spark's ANSI mode refuse them.
    #[tokio::test]
    async fn decimal_overflow_fails_instead_of_writing_digits_its_type_cannot_hold() {
        use datafusion::arrow::array::Decimal128Array;
        let table = |values: &[(&str, i128)]| {
            let ctx = super::super::session(&super::super::default_settings());
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("d", DataType::Decimal128(38, 10), true),
            ]));
            let d = Decimal128Array::from_iter_values(values.iter().map(|r| r.1))
                .with_precision_and_scale(38, 10)
                .expect("decimal");
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from_iter_values(values.iter().map(|r| r.0))),
                    Arc::new(d),
                ],
            )
            .expect("batch");
            let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
            ctx.register_table("t", Arc::new(table)).expect("register");
            ctx
        };
        // 5000000000000000000000000000.5 as decimal(38,10).
        let big = 50_000_000_000_000_000_000_000_000_005_000_000_000;
        let ctx = table(&[("a", big), ("a", big - 1)]);
        for (sql, says) in [
            (
                "SELECT d + d FROM t",
                "decimal overflow in `t.d + t.d`: 10000000000000000000000000001.0000000000 does \
                 not fit in decimal(38,10)",
            ),
            ("SELECT d * 3 AS m FROM t", "`t.d * Int64(3)`"),
            ("SELECT -d - d FROM t", "`(- t.d) - t.d`"),
            (
                "SELECT sum(d) FROM t",
                "decimal overflow in `sum(t.d)`: the sum does not fit in decimal(38,10)",
            ),
            ("SELECT k, sum(d) FROM t GROUP BY k", "`sum(t.d)`"),
            // Past 128 bits, which Arrow refuses naming only the values (walk 74 #2).
            (
                "SELECT d * d * d AS cube FROM t",
                "decimal overflow in `t.d * t.d`: computing it over decimal(38,10) and \
                 decimal(38,10) went past 128 bits, more digits than any decimal holds \
                 (unscaled: 50000000000000000000000000005000000000 * \
                 50000000000000000000000000005000000000)",
            ),
            (
                "SELECT k, sum(DISTINCT d) FROM t GROUP BY k",
                "the sum does not fit in decimal(38,10); cast first to a decimal with more \
                 digits before the point (fewer digits after it: `CAST(t.d AS DECIMAL(38, 0))` \
                 holds 38 before it, and no fraction), or to double (`CAST(t.d AS DOUBLE)`",
            ),
            // Walk 103 (2): the advice's cast, followed, is summed into a type that holds it.
            (
                "SELECT k, sum(CAST(d AS DECIMAL(38, 0))) AS s FROM t GROUP BY k",
                "",
            ),
        ] {
            let result = query(&ctx, sql).await;
            if says.is_empty() {
                result.expect(sql);
                continue;
            }
            let err = result.expect_err(sql).to_string();
            assert!(err.contains(says), "{sql}: {err}");
        }
        // What fits is DataFusion's; a row a condition rules out is not computed on.
        let ctx = table(&[("a", 12_500_000_000), ("a", 10_000_000_000), ("b", big)]);
        let shown = table_of(
            &ctx,
            "SELECT k, sum(d) AS s, CAST(sum(d / 2) AS DECIMAL(10, 3)) AS h FROM t WHERE d < 10 \
             AND d + d > 1 GROUP BY k",
            "fits",
        )
        .await;
        assert!(shown.contains("| a | 2.2500000000 | 1.125 |"), "{shown}");
        assert_eq!(decimal_text(-1_250, 2), "-12.50");
        assert_eq!(decimal_text(5, 3), "0.005");
        assert_eq!(decimal_text(7, 0), "7");
    }
}
