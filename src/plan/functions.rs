//! SQL functions Sluice adds to DataFusion; each also runs in a plain DataFusion batch query
//! (register them with [`register_functions`]).
//!
//! - `hop(ts, slide, size)`: the starts of the hopping (sliding) windows of width `size`,
//!   every `slide`, that contain `ts` (the argument order of Flink's `HOP`). With `UNNEST` it
//!   puts each row in each of its windows:
//!
//!   ```sql
//!   SELECT window_start, count(*) FROM
//!     (SELECT unnest(hop(ts, INTERVAL '1 minute', INTERVAL '5 minutes')) AS window_start FROM clicks)
//!   GROUP BY window_start
//!   ```
//!
//!   Windows start at multiples of `slide` from 1970-01-01, as `date_bin`'s do.
//!
//! - `session_window(ts, gap)`: the session of `ts` (Spark's `session_window`, Flink's
//!   `SESSION`), a struct `{start, end}` of `ts`'s type. As a group key of a streaming
//!   aggregation over a source's watermark column, the rows of each group whose times are at
//!   most `gap` apart (a row at `end` still joins) are one session, from its first row's time
//!   to its last row's time plus `gap`; sessions merge across batches as rows arrive:
//!
//!   ```sql
//!   SELECT user_id, session_window(ts, INTERVAL '5 minutes') AS s, count(*) AS clicks
//!   FROM clicks GROUP BY user_id, session_window(ts, INTERVAL '5 minutes')
//!   ```
//!
//!   Row by row (what a plain batch query computes, and what the streaming aggregation starts
//!   from) it is `{start: ts, end: ts + gap}`; a batch query finds sessions with window
//!   functions instead (a new session where `ts > lag(ts) + gap`).
//!
//! - `to_utc_timestamp(ts, zone)` and `from_utc_timestamp(ts, zone)` (Spark's): a timestamp
//!   without a zone read as a wall-clock time in `zone` (an IANA name, `'Europe/Berlin'`, or an
//!   offset, `'+02:00'`) to its instant (a timestamp in UTC), and an instant to its wall-clock
//!   time in `zone` (a timestamp without a zone; one without a zone is read as UTC). A
//!   wall-clock time the clocks skip (a change to summer time) is moved later by the gap, and
//!   one they show twice takes the earlier instant, as Spark's (java.time's) rule gives; `ts
//!   AT TIME ZONE zone` fails the batch on those.
//!
//! - `to_json(s)` (Spark's, DuckDB's): a struct as the text of a JSON object
//!   (`to_json(named_struct('id', id, 'name', name))`), its null fields left out as Spark's
//!   `to_json` leaves them, nested structs and lists as JSON's own, values as a files sink's
//!   `format: json` writes them (a timestamp `2026-01-01T00:00:00`, without Spark's zone); a
//!   null struct is null.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, PrimitiveArray, StructArray, new_empty_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use datafusion::arrow::array::timezone::Tz;

/// Registers Sluice's SQL functions in `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(Hop::new()));
    ctx.register_udf(ScalarUDF::from(SessionWindow::new()));
    ctx.register_udf(ScalarUDF::from(Amended::new(Amendment::ToDate)));
    ctx.register_udf(ScalarUDF::from(Amended::new(Amendment::DatePart)));
    ctx.register_udf(ScalarUDF::from(Amended::new(Amendment::Round)));
    ctx.register_udf(ScalarUDF::from(Amended::new(Amendment::Sqrt)));
    ctx.register_udf(ScalarUDF::from(Amended::new(Amendment::Lpad)));
    ctx.register_udf(ScalarUDF::from(Amended::new(Amendment::Rpad)));
    ctx.register_udf(ScalarUDF::from(Zoned::new(Direction::ToUtc)));
    ctx.register_udf(ScalarUDF::from(Zoned::new(Direction::FromUtc)));
    ctx.register_udf(crate::json::to_json());
    // `EXTRACT(epoch FROM ts)` is planned into DataFusion's own `date_part`, not found by name.
    use datafusion::execution::FunctionRegistry;
    let _ = ctx
        .state_ref()
        .write()
        .register_function_rewrite(Arc::new(OwnDatePart));
}

/// Puts Sluice's `date_part` ([`Amendment::DatePart`]) where the SQL planner put DataFusion's
/// own (for `EXTRACT`).
#[derive(Debug)]
struct OwnDatePart;

impl datafusion::logical_expr::expr_rewriter::FunctionRewrite for OwnDatePart {
    fn name(&self) -> &str {
        "sluice_date_part"
    }

    fn rewrite(
        &self,
        expr: datafusion::logical_expr::Expr,
        _schema: &datafusion::common::DFSchema,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::Expr;
        use datafusion::logical_expr::expr::ScalarFunction;
        match expr {
            Expr::ScalarFunction(call)
                if call.func.name() == "date_part"
                    && call.func.inner().downcast_ref::<Amended>().is_none() =>
            {
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(
                        Arc::new(ScalarUDF::from(Amended::new(Amendment::DatePart))),
                        call.args,
                    ),
                )))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

/// What Sluice amends in a DataFusion function ([`Amended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Amendment {
    /// `to_date`, whose refusal of a text that is not a date names the text: DataFusion 55's
    /// says only "Unable to cast to Date32 for converting from i64 to i32 failed" for
    /// `to_date('abc')`.
    ToDate,
    /// `date_part` (and `EXTRACT`), whose `epoch` of a nanosecond timestamp is the double
    /// nearest the exact seconds: DataFusion 55 divides the nanoseconds, a number past a
    /// double's 53 bits, after rounding them to one, so `2026-03-01 10:00:31.250` gave
    /// 1772359231.2499998 where PostgreSQL, DuckDB and Spark give 1772359231.25.
    DatePart,
    /// `round` of a double or float, rounded half up from its shortest decimal form, as Spark
    /// rounds (`BigDecimal(d).setScale(n, HALF_UP)`): DataFusion 55 rounds `d * 10^n` in
    /// binary, so `round(1.005, 2)` gave 1.0 where Spark gives 1.01 (walk 108: 11 of 200
    /// values to two places). Decimals and integers are DataFusion's own.
    Round,
    /// `sqrt` of a negative number is NaN, as Spark's, Flink's and DuckDB's are (Java's and
    /// C's `sqrt`; `ln` of one is NaN here already): DataFusion 55 fails the batch on it, as
    /// PostgreSQL does.
    Sqrt,
    /// `lpad(s, n)`, whose negative length `n` from a column is 0 (an empty text), as
    /// PostgreSQL's, Spark's and DuckDB's are and DataFusion's own is for a literal:
    /// DataFusion 55 panics on it ("capacity overflow").
    Lpad,
    /// `rpad`, as [`Amendment::Lpad`].
    Rpad,
}

/// A DataFusion function with one thing amended ([`Amendment`]); everything else (its
/// name, signature, types, every other value) is DataFusion's own.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Amended {
    inner: Arc<ScalarUDF>,
    amendment: Amendment,
}

impl Amended {
    /// DataFusion's function, with `amendment`.
    pub fn new(amendment: Amendment) -> Self {
        let inner = match amendment {
            Amendment::ToDate => datafusion::functions::datetime::to_date(),
            Amendment::DatePart => datafusion::functions::datetime::date_part(),
            Amendment::Round => datafusion::functions::math::round(),
            Amendment::Sqrt => datafusion::functions::math::sqrt(),
            Amendment::Lpad => datafusion::functions::unicode::lpad(),
            Amendment::Rpad => datafusion::functions::unicode::rpad(),
        };
        Self { inner, amendment }
    }

    /// [`Amendment::Round`]: a double or float by [`round_half_up`]; else DataFusion's.
    fn round(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, Int32Array};
        let float = args.return_field.data_type().clone();
        if !matches!(float, DataType::Float64 | DataType::Float32) {
            return self.inner.invoke_with_args(args);
        }
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let values = cast(&args.args[0].to_array(rows)?, &float)?;
        let places = match args.args.get(1) {
            Some(places) => cast(&places.to_array(rows)?, &DataType::Int32)?,
            None => Arc::new(Int32Array::from(vec![0; values.len()])),
        };
        let places = places.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let place = |i: usize| (!places.is_null(i)).then(|| places.value(i));
        let rounded = match float {
            DataType::Float32 => {
                rounded::<datafusion::arrow::datatypes::Float32Type>(&values, place)
            }
            _ => rounded::<datafusion::arrow::datatypes::Float64Type>(&values, place),
        };
        columnar(rounded, scalar)
    }

    /// [`Amendment::Sqrt`]: a double's or float's square root, NaN of a negative one; any
    /// other type (none is planned: the signature casts to these) DataFusion's.
    fn sqrt(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::datatypes::{Float32Type, Float64Type};
        let value = match args.args.as_slice() {
            [value] if matches!(value.data_type(), DataType::Float64 | DataType::Float32) => {
                value.clone()
            }
            _ => return self.inner.invoke_with_args(args),
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(args.number_rows)?;
        let roots: ArrayRef = match array.data_type() {
            DataType::Float32 => Arc::new(
                array
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::sqrt),
            ),
            _ => Arc::new(
                array
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::sqrt),
            ),
        };
        columnar(roots, scalar)
    }

    /// [`Amendment::Lpad`], [`Amendment::Rpad`]: a negative length made 0, then
    /// DataFusion's.
    fn pad(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(length) = args.args.get_mut(1) {
            match length {
                ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) if *n < 0 => *n = 0,
                ColumnarValue::Array(lengths) if matches!(lengths.data_type(), DataType::Int64) => {
                    let clamped: PrimitiveArray<Int64Type> =
                        lengths.as_primitive::<Int64Type>().unary(|n| n.max(0));
                    *lengths = Arc::new(clamped);
                }
                _ => {}
            }
        }
        self.inner.invoke_with_args(args)
    }

    /// [`Amendment::DatePart`]: `epoch` of a nanosecond timestamp by [`epoch_seconds`].
    fn date_part(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let epoch = matches!(
            args.args.first(),
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(part)) | ScalarValue::Utf8View(Some(part))))
                if is_epoch(part)
        );
        let nanos = match args.args.get(1) {
            Some(value) if epoch => match value.data_type() {
                DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(value.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(value) = nanos else {
            return self.inner.invoke_with_args(args);
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(args.number_rows)?;
        let array = cast(&array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
        let seconds: datafusion::arrow::array::Float64Array = array
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
            .unary(epoch_seconds);
        let seconds: ArrayRef = Arc::new(seconds);
        columnar(seconds, scalar)
    }

    /// [`Amendment::ToDate`]: a refusal names the first text that is not a date.
    fn to_date(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // The one argument, where it is text: what DataFusion parses (`Date32Type::parse`).
        let text = match args.args.as_slice() {
            [value]
                if matches!(
                    value.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                Some(value.to_array(args.number_rows)?)
            }
            _ => None,
        };
        let result = self.inner.invoke_with_args(args);
        let Some(text) = text.filter(|_| result.is_err()) else {
            return result;
        };
        let text = cast(&text, &DataType::Utf8)?;
        let not_a_date = text.as_string::<i32>().iter().flatten().find(|s| {
            <datafusion::arrow::datatypes::Date32Type as datafusion::arrow::compute::kernels::cast_utils::Parser>::parse(s)
                .is_none()
        });
        match not_a_date {
            Some(s) => Err(datafusion::error::DataFusionError::ArrowError(
                Box::new(datafusion::arrow::error::ArrowError::ParseError(format!(
                    "to_date('{s}'): not a date written `YYYY-MM-DD`; where the dates are \
                     written otherwise, give their formats after it, as chrono's codes \
                     (`to_date(c, '%d/%m/%Y')`)"
                ))),
                None,
            )),
            None => result,
        }
    }
}

/// `values` as a function's result: its one value where the arguments were all scalars.
fn columnar(values: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&values, 0)?)
    } else {
        ColumnarValue::Array(values)
    })
}

/// Each of `values` (floats of type `T`) rounded by [`round_half_up`] to the places `place`
/// gives its row; null where either is.
fn rounded<T>(
    values: &datafusion::arrow::array::ArrayRef,
    place: impl Fn(usize) -> Option<i32>,
) -> datafusion::arrow::array::ArrayRef
where
    T: datafusion::arrow::datatypes::ArrowPrimitiveType,
    T::Native: std::fmt::LowerExp + std::str::FromStr,
{
    use datafusion::arrow::array::Array;
    let values = values.as_primitive::<T>();
    Arc::new(
        (0..values.len())
            .map(|i| {
                let n = place(i)?;
                let v = (!values.is_null(i)).then(|| values.value(i))?;
                Some(round_half_up(&format!("{v:e}"), n).map_or(v, |t| t.parse().unwrap_or(v)))
            })
            .collect::<datafusion::arrow::array::PrimitiveArray<T>>(),
    )
}

/// The number written `shortest` (Rust's `{:e}` of a float: its shortest decimal form, as
/// `1.005e0`) rounded to `places` digits after the point, half up (away from zero), as Spark's
/// `round` does: its text, to parse in the float's type; `None` where it needs no rounding
/// (or is not finite).
fn round_half_up(shortest: &str, places: i32) -> Option<String> {
    let (sign, unsigned) = match shortest.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", shortest),
    };
    let (mantissa, exponent) = unsigned.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // The value is 0.d1d2... x 10^(exponent + 1): keep this many leading digits.
    let keep = exponent.checked_add(1)?.checked_add(places)?;
    if keep >= i32::try_from(digits.len()).ok()? {
        return None;
    }
    if keep < 0 {
        return Some("0".to_string());
    }
    let keep = usize::try_from(keep).ok()?;
    let mut kept = digits[..keep].to_vec();
    let scale = i64::from(exponent) + 1 - keep as i64;
    if digits[keep] >= b'5' {
        // Add one at the last digit kept, carrying.
        let mut at = kept.len();
        loop {
            if at == 0 {
                kept.insert(0, b'1');
                break;
            }
            at -= 1;
            if kept[at] == b'9' {
                kept[at] = b'0';
            } else {
                kept[at] += 1;
                break;
            }
        }
    }
    if kept.iter().all(|d| *d == b'0') {
        // Zero, without a sign: Spark's decimal has no negative zero.
        return Some("0".to_string());
    }
    Some(format!("{sign}{}e{scale}", String::from_utf8(kept).ok()?))
}

/// Whether `date_part`'s first argument names `epoch`, as DataFusion 55 reads it (a quote
/// taken off each end, any case), so the type planned and the values agree.
fn is_epoch(part: &str) -> bool {
    let quote = |c: char| c == '\'' || c == '"';
    let bare = part
        .strip_prefix(quote)
        .and_then(|p| p.strip_suffix(quote))
        .unwrap_or(part);
    bare.eq_ignore_ascii_case("epoch")
}

/// The seconds since 1970-01-01 of `nanos` nanoseconds, as the double nearest them (within
/// one rounding of it where the value is not a whole microsecond).
fn epoch_seconds(nanos: i64) -> f64 {
    if nanos % 1_000 == 0 {
        // Microseconds before the year 2255 fit a double exactly: one rounding, the division.
        let micros = nanos / 1_000;
        if micros.unsigned_abs() < 1 << 53 {
            return micros as f64 / 1e6;
        }
    }
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    seconds as f64 + fraction as f64 / 1e9
}

impl ScalarUDFImpl for Amended {
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

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn preimage(
        &self,
        args: &[datafusion::logical_expr::Expr],
        lit_expr: &datafusion::logical_expr::Expr,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::preimage::PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match self.amendment {
            Amendment::ToDate => self.to_date(args),
            Amendment::DatePart => self.date_part(args),
            Amendment::Round => self.round(args),
            Amendment::Sqrt => self.sqrt(args),
            Amendment::Lpad | Amendment::Rpad => self.pad(args),
        }
    }
}

/// The name of the session-window function.
pub const SESSION_WINDOW: &str = "session_window";

/// Why `hop` refuses a slide longer than its size.
pub const HOP_SLIDE_OVER_SIZE: &str = "hop(ts, slide, size): the slide must not be longer than the size (windows would leave gaps \
     where a row is in none)";

/// The name of the hopping-window function.
pub const HOP: &str = "hop";

/// `hop(ts, slide, size)`: see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Hop {
    signature: Signature,
}

impl Default for Hop {
    fn default() -> Self {
        Self::new()
    }
}

impl Hop {
    /// The function.
    pub fn new() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

/// Nanoseconds in one `unit`.
fn unit_ns(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// A fixed-length interval scalar in nanoseconds.
pub fn interval_scalar_ns(value: &ScalarValue) -> Option<i64> {
    let ns = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i64::from(v.days) * 86_400_000_000_000 + v.nanoseconds
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            i64::from(v.days) * 86_400_000_000_000 + i64::from(v.milliseconds) * 1_000_000
        }
        _ => return None,
    };
    (ns > 0).then_some(ns)
}

impl ScalarUDFImpl for Hop {
    fn name(&self) -> &str {
        HOP
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            ts @ DataType::Timestamp(_, _) => Ok(DataType::List(Arc::new(Field::new_list_field(
                ts.clone(),
                true,
            )))),
            other => plan_err!("hop(ts, slide, size) takes a timestamp first, not {other}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let interval = |i: usize, what: &str| -> Result<i64> {
            match &args.args[i] {
                ColumnarValue::Scalar(v) => match interval_scalar_ns(v) {
                    Some(ns) => Ok(ns),
                    None => exec_err!(
                        "hop: the {what} must be a positive interval of fixed length (seconds to days), not {v}"
                    ),
                },
                ColumnarValue::Array(_) => {
                    exec_err!("hop: the {what} must be a constant interval")
                }
            }
        };
        let (slide, size) = (interval(1, "slide")?, interval(2, "size")?);
        if slide > size {
            // Windows would leave gaps between them (Spark refuses it too).
            return exec_err!("{HOP_SLIDE_OVER_SIZE}");
        }
        let return_type = args.return_type().clone();
        let DataType::List(item) = &return_type else {
            return exec_err!("hop: unexpected return type {return_type}");
        };
        let DataType::Timestamp(unit, _) = item.data_type() else {
            return exec_err!("hop: unexpected item type {}", item.data_type());
        };
        let per = unit_ns(*unit);
        if slide % per != 0 || size % per != 0 {
            return exec_err!(
                "hop: slide and size must be whole multiples of the timestamp's unit"
            );
        }
        let (slide, size) = (slide / per, size / per);
        let ts = args.args[0].to_array(args.number_rows)?;
        let raw = cast(&ts, &DataType::Int64)?;
        let raw = raw.as_primitive::<Int64Type>();
        let mut offsets = Vec::with_capacity(raw.len() + 1);
        let mut starts: Vec<Option<i64>> = Vec::new();
        offsets.push(0i32);
        for i in 0..raw.len() {
            if !raw.is_null(i) {
                let t = raw.value(i);
                let last = t - t.rem_euclid(slide);
                let mut first = last;
                while first - slide > t - size {
                    first -= slide;
                }
                let mut s = first;
                while s <= last {
                    starts.push(Some(s));
                    s += slide;
                }
            }
            let len = i32::try_from(starts.len()).map_err(|_| {
                datafusion::error::DataFusionError::Execution("hop: too many windows".into())
            })?;
            offsets.push(len);
        }
        let values: ArrayRef = if starts.is_empty() {
            new_empty_array(item.data_type())
        } else {
            cast(
                &(Arc::new(PrimitiveArray::<Int64Type>::from(starts)) as ArrayRef),
                item.data_type(),
            )?
        };
        let nulls = ts.logical_nulls();
        let list = ListArray::try_new(
            Arc::clone(item),
            OffsetBuffer::new(offsets.into()),
            values,
            nulls,
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

/// `session_window(ts, gap)`: see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SessionWindow {
    signature: Signature,
}

impl Default for SessionWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionWindow {
    /// The function.
    pub fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    /// The struct `{start, end}` of timestamps of type `ts`.
    pub fn session_type(ts: &DataType) -> DataType {
        DataType::Struct(
            vec![
                Field::new("start", ts.clone(), true),
                Field::new("end", ts.clone(), true),
            ]
            .into(),
        )
    }
}

impl ScalarUDFImpl for SessionWindow {
    fn name(&self) -> &str {
        SESSION_WINDOW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        // A gap written as text (`'30 seconds'`, as Spark's `session_window` takes it) is
        // named here, not as a window that is not over the watermark column.
        if !matches!(
            arg_types[1],
            DataType::Interval(_) | DataType::Duration(_) | DataType::Null
        ) {
            return plan_err!(
                "session_window(ts, gap) takes an interval as its gap, as `INTERVAL '30 \
                 seconds'`, not {} (Spark's `session_window` takes the text '30 seconds'; \
                 DataFusion's SQL writes an interval)",
                arg_types[1]
            );
        }
        match &arg_types[0] {
            ts @ DataType::Timestamp(_, _) => Ok(Self::session_type(ts)),
            other => {
                plan_err!("session_window(ts, gap) takes a timestamp first, not {other}")
            }
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let gap = match &args.args[1] {
            ColumnarValue::Scalar(v) => match interval_scalar_ns(v) {
                Some(ns) => ns,
                None => {
                    return exec_err!(
                        "session_window: the gap must be a positive interval of fixed length (seconds to days), not {v}"
                    );
                }
            },
            ColumnarValue::Array(_) => {
                return exec_err!("session_window: the gap must be a constant interval");
            }
        };
        let ts = args.args[0].to_array(args.number_rows)?;
        let DataType::Timestamp(unit, _) = ts.data_type() else {
            return exec_err!(
                "session_window: unexpected argument type {}",
                ts.data_type()
            );
        };
        let per = unit_ns(*unit);
        if gap % per != 0 {
            return exec_err!(
                "session_window: the gap must be a whole multiple of the timestamp's unit"
            );
        }
        let gap = gap / per;
        let raw = cast(&ts, &DataType::Int64)?;
        let ends: PrimitiveArray<Int64Type> = raw
            .as_primitive::<Int64Type>()
            .iter()
            .map(|t| t.map(|t| t.saturating_add(gap)))
            .collect();
        let end = cast(&(Arc::new(ends) as ArrayRef), ts.data_type())?;
        let DataType::Struct(fields) = Self::session_type(ts.data_type()) else {
            unreachable!("a struct type");
        };
        let nulls = ts.logical_nulls();
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            fields,
            vec![Arc::clone(&ts), end],
            nulls,
        )?)))
    }
}

/// The strftime codes (`%Y-%m-%d %H:%M`) for a time format written in Spark's (Java's) pattern
/// letters (`yyyy-MM-dd HH:mm`), where `format` is one: it has no `%` and has a run of
/// `yyyy`, `MM`, `dd`, `HH` or `mm` (quoted text kept as it is). `None` for a strftime format
/// or text without such letters.
pub fn strftime_of_spark(format: &str) -> Option<String> {
    if format.contains('%')
        || !["yyyy", "yy", "MM", "dd", "HH", "mm", "ss"]
            .iter()
            .any(|letters| format.contains(letters))
    {
        return None;
    }
    // Longest runs first, as Java reads them.
    const CODES: [(&str, &str); 18] = [
        ("yyyy", "%Y"),
        ("yy", "%y"),
        ("MMMM", "%B"),
        ("MMM", "%b"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("hh", "%I"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSSSSS", "%6f"),
        ("SSS", "%3f"),
        ("EEEE", "%A"),
        ("EEE", "%a"),
        ("XXX", "%:z"),
        ("Z", "%z"),
        ("a", "%p"),
        ("D", "%j"),
    ];
    // 'quoted text' is literal in Java's patterns.
    Some(to_codes(format, &CODES, '\''))
}

/// `format` with each run of `codes` (longest first) replaced by its strftime code, text
/// between `quote`s kept as it is (without them), and anything else as written.
fn to_codes(format: &str, codes: &[(&str, &str)], quote: char) -> String {
    let mut out = String::new();
    let mut rest = format;
    'next: while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix(quote) {
            let end = quoted.find(quote).unwrap_or(quoted.len());
            out.push_str(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or_default();
            continue;
        }
        for (letters, code) in codes {
            if let Some(after) = rest.strip_prefix(letters) {
                out.push_str(code);
                rest = after;
                continue 'next;
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The strftime codes for a time format written as PostgreSQL's `to_char` template patterns
/// (`YYYY-MM-DD HH24:MI:SS`, or in lower case, as PostgreSQL reads it too), where `format` is
/// one: it has no `%` and has `YYYY`, `DD`, `HH24`, `HH12` or `MI`, or in lower case `hh24`,
/// `hh12`, `mi` or `mm` with no `MM` (a month in lower case, where Java's letters would read
/// minutes). Text in double quotes is kept as it is. `None` otherwise.
pub fn strftime_of_postgres(format: &str) -> Option<String> {
    let upper = ["YYYY", "DD", "HH24", "HH12", "MI"]
        .iter()
        .any(|pattern| format.contains(pattern));
    let lower = ["hh24", "hh12", "mi"]
        .iter()
        .any(|pattern| format.contains(pattern))
        || (format.contains("mm") && !format.contains("MM") && format.contains("yy"));
    if format.contains('%') || !(upper || lower) {
        return None;
    }
    // Longest patterns first, as PostgreSQL reads them (its case matters only to how a
    // month's or day's name is written).
    const CODES: [(&str, &str); 44] = [
        ("YYYY", "%Y"),
        ("yyyy", "%Y"),
        ("YY", "%y"),
        ("yy", "%y"),
        ("MONTH", "%B"),
        ("Month", "%B"),
        ("month", "%B"),
        ("MON", "%b"),
        ("Mon", "%b"),
        ("mon", "%b"),
        ("MM", "%m"),
        ("mm", "%m"),
        ("DDD", "%j"),
        ("ddd", "%j"),
        ("DD", "%d"),
        ("dd", "%d"),
        ("DAY", "%A"),
        ("Day", "%A"),
        ("day", "%A"),
        ("DY", "%a"),
        ("Dy", "%a"),
        ("dy", "%a"),
        ("HH24", "%H"),
        ("hh24", "%H"),
        ("HH12", "%I"),
        ("hh12", "%I"),
        ("HH", "%I"),
        ("hh", "%I"),
        ("MI", "%M"),
        ("mi", "%M"),
        ("SS", "%S"),
        ("ss", "%S"),
        ("MS", "%3f"),
        ("ms", "%3f"),
        ("US", "%6f"),
        ("us", "%6f"),
        ("AM", "%p"),
        ("PM", "%p"),
        ("am", "%P"),
        ("pm", "%P"),
        ("TZ", "%Z"),
        ("tz", "%Z"),
        ("OF", "%:z"),
        ("of", "%:z"),
    ];
    // "quoted text" is literal in PostgreSQL's templates.
    Some(to_codes(format, &CODES, '"'))
}

/// Which way [`Zoned`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    /// `to_utc_timestamp(ts, zone)`: a wall-clock time in `zone` to its instant.
    ToUtc,
    /// `from_utc_timestamp(ts, zone)`: an instant to its wall-clock time in `zone`.
    FromUtc,
}

/// Spark's `to_utc_timestamp` and `from_utc_timestamp` (walk 86: naive local times could not
/// be made instants; `AT TIME ZONE` failed the batch on a time a daylight-saving change
/// skips or repeats). Rules: Spark's `DateTimeUtils.convertTz`, which reads a wall-clock
/// time with java.time's `ZonedDateTime.ofLocal`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Zoned {
    signature: Signature,
    direction: Direction,
}

impl Zoned {
    fn new(direction: Direction) -> Self {
        Self {
            // The arguments are checked in `return_type`, in these words.
            signature: Signature::any(2, Volatility::Immutable),
            direction,
        }
    }
}

/// Units of `unit` in a second.
fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// `raw` (in `unit` since the epoch) as a date and time on UTC's clock.
fn utc_clock(raw: i64, unit: TimeUnit) -> Option<chrono::NaiveDateTime> {
    let per = per_second(unit);
    let nanos = u32::try_from(raw.rem_euclid(per) * (1_000_000_000 / per)).ok()?;
    chrono::DateTime::from_timestamp(raw.div_euclid(per), nanos).map(|t| t.naive_utc())
}

/// Seconds east of UTC of `zone` at the instant `utc`.
fn offset_at(zone: &Tz, utc: &chrono::NaiveDateTime) -> i64 {
    use chrono::{Offset as _, TimeZone as _};
    i64::from(zone.offset_from_utc_datetime(utc).fix().local_minus_utc())
}

/// Seconds east of UTC with which the wall-clock time `local` in `zone` is read, by
/// java.time's `ZonedDateTime.ofLocal(local, zone, null)` (Spark's): the one offset where
/// there is one; where the clocks show it twice, the earlier instant's (the larger offset);
/// where they skip it, the offset before the gap (the smaller), which moves it later by the
/// gap's length.
fn offset_of_wall_clock(zone: &Tz, local: &chrono::NaiveDateTime) -> i64 {
    use chrono::{MappedLocalTime, Offset as _, TimeZone as _};
    match zone.from_local_datetime(local) {
        MappedLocalTime::Single(t) => i64::from(t.offset().fix().local_minus_utc()),
        MappedLocalTime::Ambiguous(earlier, _) => {
            i64::from(earlier.offset().fix().local_minus_utc())
        }
        MappedLocalTime::None => {
            // The gap's two offsets: `local` read as UTC lands within a day of the change, on
            // one side; read with the offset found there, on the other.
            let a = offset_at(zone, local);
            let b = offset_at(zone, &(*local - chrono::TimeDelta::seconds(a)));
            a.min(b)
        }
    }
}

fn unknown_zone(name: &str, zone: &str) -> datafusion::error::DataFusionError {
    datafusion::common::exec_datafusion_err!(
        "{name}: '{zone}' is not a time zone: write an IANA name ('Europe/Berlin', \
         'America/New_York', 'UTC') or an offset ('+02:00')"
    )
}

impl ScalarUDFImpl for Zoned {
    fn name(&self) -> &str {
        match self.direction {
            Direction::ToUtc => "to_utc_timestamp",
            Direction::FromUtc => "from_utc_timestamp",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let name = self.name();
        if !matches!(
            arg_types[1],
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ) {
            return plan_err!(
                "{name}(ts, zone) takes a time zone's name second, as 'Europe/Berlin' or \
                 '+02:00', not {}",
                arg_types[1]
            );
        }
        match (&arg_types[0], self.direction) {
            // An instant, as a source's `timestamptz` column holds one.
            (DataType::Timestamp(unit, None), Direction::ToUtc) => {
                Ok(DataType::Timestamp(*unit, Some("UTC".into())))
            }
            (DataType::Timestamp(_, Some(zone)), Direction::ToUtc) => plan_err!(
                "to_utc_timestamp(ts, zone) reads a timestamp without a zone (a wall-clock time \
                 in the zone given); this one is an instant already (its zone is {zone}): use \
                 it as it is, or `from_utc_timestamp(ts, 'Europe/Berlin')` for its wall-clock \
                 time in a zone"
            ),
            (DataType::Timestamp(unit, _), Direction::FromUtc) => {
                Ok(DataType::Timestamp(*unit, None))
            }
            (DataType::Null, Direction::ToUtc) => Ok(DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("UTC".into()),
            )),
            (DataType::Null, Direction::FromUtc) => {
                Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
            }
            (other, _) => plan_err!(
                "{name}(ts, zone) takes a timestamp first, not {other} (a text: `CAST(t AS \
                 TIMESTAMP)` first)"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let ts = args.args[0].to_array(args.number_rows)?;
        let unit = match ts.data_type() {
            DataType::Timestamp(unit, _) => *unit,
            _ => TimeUnit::Nanosecond,
        };
        let zones = cast(&args.args[1].to_array(args.number_rows)?, &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        // A constant zone parsed once; a column's row by row.
        let constant: Option<Tz> = match &args.args[1] {
            ColumnarValue::Scalar(value) => match value.try_as_str().flatten() {
                Some(zone) => Some(zone.parse().map_err(|_| unknown_zone(name, zone))?),
                None => None,
            },
            ColumnarValue::Array(_) => None,
        };
        let per = per_second(unit);
        let raw = cast(&ts, &DataType::Int64)?;
        let raw = raw.as_primitive::<Int64Type>();
        let mut out: Vec<Option<i64>> = Vec::with_capacity(raw.len());
        for i in 0..raw.len() {
            if raw.is_null(i) || zones.is_null(i) {
                out.push(None);
                continue;
            }
            let zone = match constant {
                Some(zone) => zone,
                None => zones
                    .value(i)
                    .parse::<Tz>()
                    .map_err(|_| unknown_zone(name, zones.value(i)))?,
            };
            let value = raw.value(i);
            let at = utc_clock(value, unit);
            let moved = at.and_then(|at| match self.direction {
                // The wall clock less its offset is the instant.
                Direction::ToUtc => offset_of_wall_clock(&zone, &at)
                    .checked_mul(per)
                    .and_then(|offset| value.checked_sub(offset)),
                // The instant plus its offset is the wall clock.
                Direction::FromUtc => offset_at(&zone, &at)
                    .checked_mul(per)
                    .and_then(|offset| value.checked_add(offset)),
            });
            out.push(Some(moved.ok_or_else(|| {
                datafusion::common::exec_datafusion_err!(
                    "{name}: {value} ({unit:?}s since the epoch) in {zone} is past what the \
                     timestamp holds"
                )
            })?));
        }
        let out: ArrayRef = Arc::new(PrimitiveArray::<Int64Type>::from(out));
        let out = cast(&out, args.return_type())?;
        columnar(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::{strftime_of_postgres, strftime_of_spark};

    /// Walk 59 (2): `date_part('epoch', ts)` of `2026-03-01 10:00:31.250` was
    /// 1772359231.2499998; it is PostgreSQL's and DuckDB's 1772359231.25, by `EXTRACT` too,
    /// for a timestamp with a zone, before 1970, and past a whole microsecond.
    #[tokio::test]
    async fn the_epoch_of_a_timestamp_is_the_double_nearest_its_seconds() {
        let shown = shown(
            "SELECT date_part('epoch', ts) AS a, extract(epoch FROM ts) AS b, \
             date_part('EPOCH', ts AT TIME ZONE 'UTC') AS c, date_part('second', ts) AS d \
             FROM (VALUES (TIMESTAMP '2026-03-01 10:00:31.250'), \
             (TIMESTAMP '1969-12-31 23:59:59.750'), \
             (TIMESTAMP '2026-03-01 10:00:31.000000001'), (NULL)) AS t(ts)",
        )
        .await;
        for line in [
            "| 1772359231.25 | 1772359231.25 | 1772359231.25 | 31 |",
            "| -0.25         | -0.25         | -0.25         | 59 |",
            "| 1772359231.0  | 1772359231.0  | 1772359231.0  | 31 |",
            "|               |               |               |    |",
        ] {
            assert!(shown.contains(line), "{line}\n{shown}");
        }
    }

    /// A text `to_date` does not read is named in its refusal (DataFusion's says only
    /// "Unable to cast to Date32 for converting from i64 to i32 failed"); dates read as
    /// DataFusion reads them.
    #[tokio::test]
    async fn to_date_names_the_text_it_does_not_read() {
        let ctx = datafusion::prelude::SessionContext::new();
        super::register_functions(&ctx);
        let sql = "SELECT to_date(s) AS d FROM (VALUES ('2026-01-02'), (NULL), ('02/01/2026')) \
                   AS t(s)";
        let said = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect_err("not a date")
            .to_string();
        assert!(said.contains("to_date('02/01/2026'): not a date"), "{said}");
        let shown = shown(
            "SELECT CAST(to_date(s) AS VARCHAR) AS d, \
             CAST(to_date(s, '%d/%m/%Y', '%Y-%m-%d') AS VARCHAR) AS e \
             FROM (VALUES ('2026-01-02'), (NULL)) AS t(s)",
        )
        .await;
        assert!(shown.contains("| 2026-01-02 | 2026-01-02 |"), "{shown}");
    }

    /// Walk 86: naive wall-clock times in a zone could not be made instants. Spark's rule
    /// (java.time's `ZonedDateTime.ofLocal`): a time the clocks skip moves later by the gap
    /// (as DuckDB's `timezone` gives it too), one they show twice is the earlier instant
    /// (DuckDB takes the later); and back to the wall clock.
    #[tokio::test]
    async fn wall_clock_times_become_instants_and_back_by_spark_s_rule() {
        let shown = shown(
            "SELECT to_utc_timestamp(ts, z) AS utc, \
             from_utc_timestamp(to_utc_timestamp(ts, z), z) AS back FROM (VALUES \
             (TIMESTAMP '2026-07-01 12:00:00', 'Europe/Berlin'), \
             (TIMESTAMP '2026-03-29 02:30:00', 'Europe/Berlin'), \
             (TIMESTAMP '2026-10-25 02:30:00', 'Europe/Berlin'), \
             (TIMESTAMP '2026-11-01 01:30:00', 'America/New_York'), \
             (TIMESTAMP '2026-03-08 02:30:00', 'America/New_York'), \
             (TIMESTAMP '2026-04-05 01:45:00', 'Australia/Lord_Howe'), \
             (TIMESTAMP '2026-01-01 00:00:00', '+05:30'), \
             (NULL, 'UTC'), (TIMESTAMP '2026-01-01 00:00:00', NULL)) AS t(ts, z)",
        )
        .await;
        for line in [
            "| 2026-07-01T10:00:00Z | 2026-07-01T12:00:00 |",
            // Skipped: 02:30 is 03:30 summer time.
            "| 2026-03-29T01:30:00Z | 2026-03-29T03:30:00 |",
            // Shown twice: the earlier, summer time's.
            "| 2026-10-25T00:30:00Z | 2026-10-25T02:30:00 |",
            "| 2026-11-01T05:30:00Z | 2026-11-01T01:30:00 |",
            "| 2026-03-08T07:30:00Z | 2026-03-08T03:30:00 |",
            // A half-hour change.
            "| 2026-04-04T14:45:00Z | 2026-04-05T01:45:00 |",
            "| 2025-12-31T18:30:00Z | 2026-01-01T00:00:00 |",
        ] {
            assert!(shown.contains(line), "{line}\n{shown}");
        }
        assert_eq!(
            shown.matches("|                      |").count(),
            2,
            "{shown}"
        );
    }

    /// Walk 87: `to_json` of a struct is its JSON object, text escaped, nulls left out (as
    /// Spark's `to_json` and DuckDB's `to_json` of a struct give it, DuckDB with the nulls).
    #[tokio::test]
    async fn to_json_writes_a_struct_as_a_json_object() {
        let shown = shown(
            "SELECT to_json(named_struct('id', id, 'name', name, 'tags', tags)) AS j FROM \
             (VALUES (1, 'say \"hi\"', make_array('a', 'b')), (2, NULL, make_array('c'))) \
             AS t(id, name, tags)",
        )
        .await;
        for line in [
            r#"| {"id":1,"name":"say \"hi\"","tags":["a","b"]} |"#,
            r#"| {"id":2,"tags":["c"]}                         |"#,
        ] {
            assert!(shown.contains(line), "{line}\n{shown}");
        }
    }

    /// A zone that is none, and an instant given to `to_utc_timestamp`, are refused in words.
    #[tokio::test]
    async fn a_zone_that_is_none_and_an_instant_are_refused_in_words() {
        let ctx = datafusion::prelude::SessionContext::new();
        super::register_functions(&ctx);
        let err = match ctx
            .sql("SELECT to_utc_timestamp(TIMESTAMP '2026-01-01 00:00:00', 'Mars/Olympus')")
            .await
        {
            Ok(df) => df.collect().await.expect_err("no such zone").to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("'Mars/Olympus' is not a time zone"), "{err}");
        let err = ctx
            .sql("SELECT to_utc_timestamp(TIMESTAMP '2026-01-01 00:00:00' AT TIME ZONE 'UTC', 'UTC')")
            .await
            .expect_err("an instant")
            .to_string();
        assert!(err.contains("this one is an instant already"), "{err}");
    }

    /// The rows of `sql`, with Sluice's functions, as a table's text.
    /// Walk 108 (8): `round` of a double rounded `d * 10^n` in binary, so 11 of 200 values to
    /// two places were not Spark's (1.005 gave 1.0). Each is Spark 4's `round` of the double
    /// (`BigDecimal(d).setScale(n, HALF_UP)`, from its shortest decimal form); decimals are
    /// DataFusion's own (exact), a float is rounded in its own digits.
    #[tokio::test]
    async fn round_of_a_double_is_sparks_half_up_of_its_decimal_form() {
        for (v, n, spark) in [
            (1.005, 2, 1.01),
            (0.285, 2, 0.29),
            (0.145, 2, 0.15),
            (1.255, 2, 1.26),
            (29.95, 1, 30.0),
            (2.675, 2, 2.68),
            (-1.005, 2, -1.01),
            (9.995, 2, 10.0),
            (0.5, 0, 1.0),
            (-0.5, 0, -1.0),
            (1234.5, -2, 1200.0),
            (1250.0, -2, 1300.0),
            (0.004, 2, 0.0),
            (1e300, 2, 1e300),
            (123.456, 5, 123.456),
        ] {
            let text = super::round_half_up(&format!("{v:e}"), n);
            let got = text.as_deref().map_or(v, |t| t.parse().expect("a number"));
            assert_eq!(got, spark, "round({v}, {n}): {text:?}");
        }
        // Zero has no sign, as Spark's decimal.
        assert_eq!(super::round_half_up("-4e-3", 2).as_deref(), Some("0"));
        let shown = shown(
            "SELECT round(v, 2) AS r, round(v) AS whole, round(CAST(v AS FLOAT), 2) AS f, \
             round(CAST(v AS DECIMAL(10, 3)), 2) AS d, round(v, n) AS by_row \
             FROM (VALUES (1.005, 2), (2.5, NULL), (NULL, 1), (-0.285, 1)) AS t(v, n)",
        )
        .await;
        for line in [
            "| 1.01  | 1.0   | 1.01  | 1.01  | 1.01   |",
            "| 2.5   | 3.0   | 2.5   | 2.50  |        |",
            "|       |       |       |       |        |",
            "| -0.29 | 0.0   | -0.29 | -0.29 | -0.3   |",
        ] {
            assert!(shown.contains(line), "{line} in\n{shown}");
        }
    }

    async fn shown(sql: &str) -> String {
        let ctx = datafusion::prelude::SessionContext::new();
        super::register_functions(&ctx);
        let rows = ctx
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect(sql);
        datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .expect("show")
            .to_string()
    }

    /// Walk 108: `sqrt` of a negative number failed the batch where Spark, Flink and DuckDB
    /// give NaN; `lpad`/`rpad` of a negative length from a column panicked ("capacity
    /// overflow") where PostgreSQL, Spark and DuckDB give `''` (DuckDB 2.0.1's values).
    #[tokio::test]
    async fn sqrt_of_a_negative_is_nan_and_a_negative_pad_is_empty() {
        let shown = shown(
            "SELECT sqrt(x) AS r, sqrt(CAST(x AS FLOAT)) AS f, lpad(s, n) AS l, rpad(s, n, 'x') AS p, \
             lpad(s, -2) AS c FROM (VALUES (-4.0, 'abc', CAST(-3 AS BIGINT)), (9.0, 'abc', CAST(5 AS BIGINT)), \
             (NULL, NULL, NULL)) AS t(x, s, n)",
        )
        .await;
        for line in ["| NaN | NaN | | | |", "| 3.0 | 3.0 | abc | abcxx | |"] {
            let found = shown
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line);
            assert!(found, "{line}\n{shown}");
        }
    }

    /// Walk 39 (W5): PostgreSQL's `to_char` template was read as Java's letters, and the
    /// advice wrote `YYYY-%m-%j%j`.
    #[test]
    fn postgres_templates_become_strftime_codes() {
        for (template, strftime) in [
            ("YYYY-MM-DD HH24:MI:SS", "%Y-%m-%d %H:%M:%S"),
            ("DD Mon YYYY, HH12:MI AM", "%d %b %Y, %I:%M %p"),
            ("YYYY-MM-DD\"T\"HH24:MI:SS.MS", "%Y-%m-%dT%H:%M:%S.%3f"),
            ("yyyy-mm-dd hh24:mi:ss", "%Y-%m-%d %H:%M:%S"),
            ("yyyy-mm-dd", "%Y-%m-%d"),
        ] {
            assert_eq!(
                strftime_of_postgres(template).as_deref(),
                Some(strftime),
                "{template}"
            );
        }
        assert_eq!(strftime_of_postgres("yyyy-MM-dd HH:mm"), None);
        assert_eq!(strftime_of_postgres("%Y-%m-%d"), None);
    }

    #[test]
    fn spark_time_patterns_become_strftime_codes() {
        for (spark, strftime) in [
            ("yyyy-MM-dd HH:mm", "%Y-%m-%d %H:%M"),
            ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "%Y-%m-%dT%H:%M:%S.%3f%:z"),
            ("dd MMM yy", "%d %b %y"),
        ] {
            assert_eq!(
                strftime_of_spark(spark).as_deref(),
                Some(strftime),
                "{spark}"
            );
        }
        assert_eq!(strftime_of_spark("%Y-%m-%d"), None);
        assert_eq!(strftime_of_spark("week"), None);
    }

    use crate::plan::{default_settings, session};

    #[tokio::test]
    async fn hop_puts_a_time_in_every_window_that_holds_it() {
        let ctx = session(&default_settings());
        let rows = ctx
            .sql(
                "SELECT hop(TIMESTAMP '2026-01-01T00:07:30', INTERVAL '1 minute', INTERVAL '3 minutes') AS w, \
                        hop(TIMESTAMP '2026-01-01T00:07:00', INTERVAL '2 minutes', INTERVAL '4 minutes') AS x, \
                        hop(CAST(NULL AS TIMESTAMP), INTERVAL '1 minute', INTERVAL '3 minutes') AS n",
            )
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let shown = datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .expect("show")
            .to_string();
        assert!(
            shown.contains("[2026-01-01T00:05:00, 2026-01-01T00:06:00, 2026-01-01T00:07:00]"),
            "{shown}"
        );
        assert!(
            shown.contains("[2026-01-01T00:04:00, 2026-01-01T00:06:00]"),
            "{shown}"
        );
        let err = ctx
            .sql("SELECT hop(TIMESTAMP '2026-01-01T00:00:00', INTERVAL '1 month', INTERVAL '2 months')")
            .await
            .expect("plan")
            .collect()
            .await
            .expect_err("months have no fixed length");
        assert!(err.to_string().contains("fixed length"), "{err}");
    }
}
