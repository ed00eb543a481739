//! JSON as the sinks write it (a files sink's JSON lines, a Kafka record's default value, the
//! query's `to_json`):
//! Arrow's writer, with what it would lose kept:
//! - a float's NaN and infinities as Jackson, under Spark's and Flink's JSON writers, writes
//!   them by default: the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (Arrow writes
//!   `null`, so they read back as nulls; audit 92b). Sluice's JSON source reads them back into
//!   a float column, as Spark's does;
//! - a map's entries whose value is null, as `"k":null` (Arrow leaves them out unless every
//!   null is written, which for a map drops the key; audit 92b), as Spark's writer keeps them;
//! - a row whose every column is null, as `{"a":null,"b":null}`: Arrow's writer leaves a null
//!   field out of its object (as Spark's writer does), so such a row would be `{}`, which no
//!   JSON source takes for a row, Sluice's own included (audit 91b: a pipeline reading
//!   another's sink failed on it; a row of none of the schema's fields is refused, issue 13).

use std::cell::Cell;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, MapArray};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float16Type, Float32Type, Float64Type, SchemaRef,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json as arrow_json;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use arrow_json::writer::{
    Encoder, EncoderFactory, EncoderOptions, LineDelimited, NullableEncoder, make_encoder,
};

/// A JSON lines writer into `out`: null fields left out, or written with `explicit_nulls`.
pub fn line_writer<W: std::io::Write>(
    out: W,
    explicit_nulls: bool,
) -> arrow_json::LineDelimitedWriter<W> {
    arrow_json::WriterBuilder::new()
        .with_explicit_nulls(explicit_nulls)
        .with_encoder_factory(Arc::new(Kept))
        .build::<_, LineDelimited>(out)
}

/// A row whose every column of `schema` is null, as a JSON object of them.
pub fn null_row(schema: &SchemaRef) -> Vec<u8> {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:null", serde_json::Value::String(f.name().clone())))
        .collect();
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// `bytes` (whole JSON lines) with each line `{}` written as `null_row`.
pub fn with_null_rows(bytes: bytes::Bytes, null_row: &[u8]) -> bytes::Bytes {
    if !bytes.starts_with(b"{}\n") && !bytes.windows(4).any(|w| w == b"\n{}\n") {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + null_row.len());
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if line == b"{}\n" {
            out.extend_from_slice(null_row);
            out.push(b'\n');
        } else {
            out.extend_from_slice(line);
        }
    }
    out.into()
}

thread_local! {
    /// Set while [`Kept`] asks Arrow for its own encoder of a float array, so that the call
    /// back into the factory for the same array takes Arrow's.
    static ARROWS_OWN: Cell<bool> = const { Cell::new(false) };
}

/// The encoders that keep what Arrow's would lose (module docs).
#[derive(Debug)]
struct Kept;

impl EncoderFactory for Kept {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        if ARROWS_OWN.with(Cell::get) {
            return Ok(None);
        }
        let nulls = array.nulls().cloned();
        match array.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                let value: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
                    DataType::Float16 => {
                        let a = array.as_primitive::<Float16Type>();
                        Box::new(move |i| f64::from(a.value(i)))
                    }
                    DataType::Float32 => {
                        let a = array.as_primitive::<Float32Type>();
                        Box::new(move |i| f64::from(a.value(i)))
                    }
                    _ => {
                        let a = array.as_primitive::<Float64Type>();
                        Box::new(move |i| a.value(i))
                    }
                };
                ARROWS_OWN.with(|own| own.set(true));
                let arrows = make_encoder(field, array, options);
                ARROWS_OWN.with(|own| own.set(false));
                Ok(Some(NullableEncoder::new(
                    Box::new(FloatWords {
                        value,
                        arrows: arrows?,
                    }),
                    nulls,
                )))
            }
            DataType::Map(..) if !options.explicit_nulls() => {
                let map = array.as_map();
                if !matches!(
                    map.keys().data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) {
                    // Arrow's own refusal of other keys says what it takes.
                    return Ok(None);
                }
                Ok(Some(NullableEncoder::new(
                    Box::new(MapWithNulls::new(field, map, options)?),
                    nulls,
                )))
            }
            _ => Ok(None),
        }
    }
}

/// A float column: NaN and the infinities as Jackson's words, other values as Arrow writes
/// them.
struct FloatWords<'a> {
    value: Box<dyn Fn(usize) -> f64 + 'a>,
    arrows: NullableEncoder<'a>,
}

impl Encoder for FloatWords<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = (self.value)(idx);
        if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"Infinity\"");
        } else if v == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-Infinity\"");
        } else {
            self.arrows.encode(idx, out);
        }
    }
}

/// A map of text keys as a JSON object, every entry kept, a null value as `null`.
struct MapWithNulls<'a> {
    offsets: datafusion::arrow::buffer::OffsetBuffer<i32>,
    keys: NullableEncoder<'a>,
    values: NullableEncoder<'a>,
}

impl<'a> MapWithNulls<'a> {
    fn new(
        field: &'a FieldRef,
        map: &'a MapArray,
        options: &'a EncoderOptions,
    ) -> Result<Self, ArrowError> {
        if map.keys().null_count() > 0 {
            return Err(ArrowError::InvalidArgumentError(
                "Encountered nulls in MapArray keys".to_string(),
            ));
        }
        Ok(Self {
            offsets: map.offsets().clone(),
            keys: make_encoder(field, map.keys(), options)?,
            values: make_encoder(field, map.values(), options)?,
        })
    }
}

impl Encoder for MapWithNulls<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let (start, end) = (
            usize::try_from(self.offsets[idx]).unwrap_or_default(),
            usize::try_from(self.offsets[idx + 1]).unwrap_or_default(),
        );
        out.push(b'{');
        for entry in start..end {
            if entry > start {
                out.push(b',');
            }
            self.keys.encode(entry, out);
            out.push(b':');
            if self.values.is_null(entry) {
                out.extend_from_slice(b"null");
            } else {
                self.values.encode(entry, out);
            }
        }
        out.push(b'}');
    }
}

/// Spark's `to_json`, as a function a query (and a sink's expressions) may call.
pub fn to_json() -> datafusion::logical_expr::ScalarUDF {
    datafusion::logical_expr::ScalarUDF::from(ToJson::new())
}

/// Spark's `to_json` of a struct (walk 87: a Kafka sink's `value:` of a row's chosen
/// columns could only be built by `concat`, which a quote in the data broke). Written by
/// arrow's JSON writer, as the files sink's `format: json` writes a row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToJson {
    signature: Signature,
}

impl ToJson {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToJson {
    fn name(&self) -> &str {
        "to_json"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            DataType::Struct(_) | DataType::Null => Ok(DataType::Utf8),
            other => plan_err!(
                "to_json(s) takes a struct, not {other}: name the fields, \
                 `to_json(named_struct('id', id, 'name', name))`"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let array = args.args[0].to_array(args.number_rows)?;
        let out: ArrayRef = match array.as_struct_opt() {
            None => Arc::new(datafusion::arrow::array::StringArray::new_null(array.len())),
            Some(structs) => {
                // Nullable: a null struct's fields may hold nulls its declared ones do not.
                let fields: Vec<Field> = structs
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect();
                let batch = datafusion::arrow::record_batch::RecordBatch::try_new_with_options(
                    Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
                    structs.columns().to_vec(),
                    &datafusion::arrow::record_batch::RecordBatchOptions::new()
                        .with_row_count(Some(structs.len())),
                )?;
                let mut text = Vec::new();
                {
                    // NaN and infinities as Spark's (Jackson's) words, a map's null values
                    // kept, as the JSON sinks write them.
                    let mut writer = line_writer(&mut text, false);
                    writer.write(&batch)?;
                    writer.finish()?;
                }
                let text = String::from_utf8(text)
                    .map_err(|e| datafusion::common::exec_datafusion_err!("to_json: {e}"))?;
                let lines: Vec<&str> = text.lines().collect();
                if lines.len() != structs.len() {
                    return datafusion::common::exec_err!(
                        "to_json: {} objects written for {} rows",
                        lines.len(),
                        structs.len()
                    );
                }
                let objects: datafusion::arrow::array::StringArray = lines
                    .iter()
                    .enumerate()
                    .map(|(row, line)| structs.is_valid(row).then_some(*line))
                    .collect();
                Arc::new(objects)
            }
        };
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Float32Array, Float64Array, Int64Array, MapBuilder, RecordBatch, StringBuilder,
    };
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    /// Audit 92b: NaN and the infinities were written `null`, and a map's null values left
    /// out (its keys gone); a row of nulls `{}`.
    #[test]
    fn floats_keep_nan_and_infinities_and_maps_keep_null_values() {
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Array::builder(2));
        map.keys().append_value("k1");
        map.values().append_value(1);
        map.keys().append_value("k2");
        map.values().append_null();
        map.append(true).expect("map");
        map.append(false).expect("map");
        map.append(false).expect("map");
        let map = map.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Float64, true),
            Field::new("f", DataType::Float32, true),
            Field::new("m", map.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(-0.0), None])),
                Arc::new(Float32Array::from(vec![
                    Some(f32::INFINITY),
                    Some(f32::NEG_INFINITY),
                    None,
                ])),
                Arc::new(map),
            ],
        )
        .expect("batch");
        let mut out = Vec::new();
        let mut writer = line_writer(&mut out, false);
        writer.write(&batch).expect("write");
        writer.finish().expect("finish");
        let text = with_null_rows(out.into(), &null_row(&schema));
        assert_eq!(
            String::from_utf8_lossy(&text),
            "{\"d\":\"NaN\",\"f\":\"Infinity\",\"m\":{\"k1\":1,\"k2\":null}}\n\
             {\"d\":-0.0,\"f\":\"-Infinity\"}\n\
             {\"d\":null,\"f\":null,\"m\":null}\n"
        );
    }
}
