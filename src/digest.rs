//! A batch's output as a content hash that does not depend on row order, and the rows by which
//! two versions of one batch's output differ.
//!
//! Each row is encoded in Arrow's row format (the same bytes for the same values of the same
//! types) and hashed with XXH3-128; the hashes are added up (wrapping), so the digest is the
//! same whatever the partitioning, the batch sizes or the order of the rows, and it can be
//! computed over a sink's files as easily as over the output in memory. `commits/N` records it
//! for `sluice replay --verify`.
//!
//! The digest is of the rows as the sink's files hold them: a CSV file cannot tell an empty
//! string from a null, so for CSV sinks such values are hashed as nulls ([`as_held`]). JSON has
//! no NaN or infinity: Sluice before 2026-12-07 wrote them `null` (Arrow's writer), and writes
//! Jackson's words (`"NaN"`) since; a top-level float column's are hashed as nulls either way,
//! the sink's files read back too, so that batches of both verify.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::compute::{cast, nullif};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_128;

use crate::format::FileFormat;

/// The one way digests are computed today; a digest made another way is not compared.
pub const ALGORITHM: &str = "xxh3-128-sum-of-arrow-rows";

/// The content hash of one batch's output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutputDigest {
    /// How it was computed ([`ALGORITHM`]).
    pub algorithm: String,
    /// Rows in the output.
    pub rows: u64,
    /// The sum of the rows' hashes, 32 hex digits.
    pub hash: String,
}

fn converter(schema: &SchemaRef) -> Result<RowConverter, ArrowError> {
    RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
}

/// How a sink holds a batch's rows, as its read-back gives them: the file format it writes
/// (`None`: no files), and the type it keeps a column of each query type in where that loses
/// something (Delta and PostgreSQL keep timestamps to the microsecond), so that a digest of
/// the query's rows is the digest of what the sink holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    /// The format of the sink's files.
    pub format: Option<FileFormat>,
    /// The type the sink keeps a column of a query type in (`None`: the query's type).
    pub column_type: Option<fn(&DataType) -> DataType>,
}

impl Held {
    /// Rows held as files of `format` hold them, in the query's types.
    pub fn as_files(format: Option<FileFormat>) -> Self {
        Self {
            format,
            column_type: None,
        }
    }
}

/// The digest of `batches` as a sink holds them ([`Held`]).
pub fn digest_as_held(batches: &[RecordBatch], held: Held) -> Result<OutputDigest, ArrowError> {
    let mut digester = Digester::new(held);
    for batch in batches {
        digester.add(batch)?;
    }
    Ok(digester.finish())
}

/// `batch` as a sink holds it ([`Held`]): for CSV, empty strings become nulls; for JSON, NaN
/// and infinities become nulls; a column the sink keeps in another type is cast there and
/// back (a nanosecond timestamp kept to the microsecond loses what is below it); otherwise
/// unchanged.
pub fn as_held(batch: &RecordBatch, held: Held) -> Result<RecordBatch, ArrowError> {
    let format = held.format;
    let nulls_where = |column: &ArrayRef| -> Result<Option<BooleanArray>, ArrowError> {
        Ok(match (format, column.data_type()) {
            (Some(FileFormat::Csv), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                let lengths = cast(&length(column)?, &DataType::Int64)?;
                Some(eq(&lengths, &Int64Array::new_scalar(0))?)
            }
            (Some(FileFormat::Json), DataType::Float64) => Some(
                column
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map(|x| !x.is_finite()))
                    .collect(),
            ),
            (Some(FileFormat::Json), DataType::Float32) => Some(
                column
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| v.map(|x| !x.is_finite()))
                    .collect(),
            ),
            _ => None,
        })
    };
    let mut changed = false;
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            let column = match nulls_where(column)? {
                Some(mask) if mask.true_count() > 0 => {
                    changed = true;
                    nullif(column, &mask)?
                }
                _ => Arc::clone(column),
            };
            match held.column_type.map(|kept| kept(column.data_type())) {
                Some(kept) if &kept != column.data_type() => {
                    changed = true;
                    cast(&cast(&column, &kept)?, column.data_type())
                }
                _ => Ok(column),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !changed {
        return Ok(batch.clone());
    }
    with_columns(&batch.schema(), columns, batch.num_rows())
}

/// The digest of `batches`, all of one schema.
pub fn digest(batches: &[RecordBatch]) -> Result<OutputDigest, ArrowError> {
    let mut digester = Digester::new(Held::default());
    for batch in batches {
        digester.add(batch)?;
    }
    Ok(digester.finish())
}

/// A digest taken as record batches come (one output partition's stream, say): the same as
/// [`digest_as_held`] over all of them, and partial digests of parts of the output add up
/// ([`Digester::merge`]) to the digest of the whole.
#[derive(Debug)]
pub struct Digester {
    held: Held,
    converter: Option<RowConverter>,
    sum: u128,
    rows: u64,
}

impl Digester {
    /// An empty digest of rows as a sink holds them ([`Held`]).
    pub fn new(held: Held) -> Self {
        Self {
            held,
            converter: None,
            sum: 0,
            rows: 0,
        }
    }

    /// Adds the rows of `batch` (every batch added has one schema).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let held = as_held(batch, self.held)?;
        if self.converter.is_none() {
            self.converter = Some(converter(&held.schema())?);
        }
        let converter = self.converter.as_ref().expect("set above");
        for row in converter.convert_columns(held.columns())?.iter() {
            self.sum = self.sum.wrapping_add(XxHash3_128::oneshot(row.as_ref()));
            self.rows += 1;
        }
        Ok(())
    }

    /// Adds what `other` has taken.
    pub fn merge(&mut self, other: &Digester) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.rows += other.rows;
    }

    /// The digest of everything added.
    pub fn finish(&self) -> OutputDigest {
        OutputDigest {
            algorithm: ALGORITHM.to_string(),
            rows: self.rows,
            hash: format!("{:032x}", self.sum),
        }
    }
}

/// Casts `batch` to `schema`'s column types (rows read back from CSV or JSON files come with
/// the types their reader chose), keeping `schema`'s names.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.num_columns() != schema.fields().len() {
        return Err(ArrowError::SchemaError(format!(
            "{} columns where the query has {}",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| cast(column, field.data_type()))
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    with_columns(schema, columns, batch.num_rows())
}

/// A batch of `columns` named after `schema`, every column nullable (a sink's file may not
/// keep the query's nullability).
fn with_columns(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, ArrowError> {
    let relaxed = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(relaxed, columns, &options)
}

/// The rows of `left` not in `right` and those of `right` not in `left`, as multisets (a row
/// twice on one side and once on the other is one row of difference).
pub fn difference(
    schema: &SchemaRef,
    left: &[RecordBatch],
    right: &[RecordBatch],
) -> Result<(RecordBatch, RecordBatch), ArrowError> {
    let converter = converter(schema)?;
    let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
    for (batches, sign) in [(left, 1), (right, -1)] {
        for batch in batches {
            for row in converter.convert_columns(batch.columns())?.iter() {
                *counts.entry(row.as_ref().to_vec()).or_default() += sign;
            }
        }
    }
    // Sorted by the row encoding, so the listing is the same on every run.
    let mut differing: Vec<(Vec<u8>, i64)> = counts.into_iter().filter(|(_, n)| *n != 0).collect();
    differing.sort();
    let parser = converter.parser();
    let side = |positive: bool| -> Result<RecordBatch, ArrowError> {
        let rows: Vec<_> = differing
            .iter()
            .filter(|(_, n)| (*n > 0) == positive)
            .flat_map(|(bytes, n)| {
                std::iter::repeat_n(parser.parse(bytes), n.unsigned_abs() as usize)
            })
            .collect();
        let count = rows.len();
        with_columns(schema, converter.convert_rows(rows)?, count)
    };
    Ok((side(true)?, side(false)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn the_digest_ignores_order_and_batching_but_not_content() {
        let one = digest(&[batch(&[1, 2, 3], &["a", "b", "c"])]).expect("digest");
        let reordered =
            digest(&[batch(&[3], &["c"]), batch(&[2, 1], &["b", "a"])]).expect("digest");
        assert_eq!(one, reordered);
        assert_eq!(one.rows, 3);
        assert_eq!(one.hash.len(), 32);
        let changed = digest(&[batch(&[1, 2, 3], &["a", "b", "d"])]).expect("digest");
        assert_ne!(one.hash, changed.hash);
        // A duplicated row counts: the multiset differs.
        let doubled = digest(&[batch(&[1, 2, 3, 3], &["a", "b", "c", "c"])]).expect("digest");
        assert_ne!(one.hash, doubled.hash);
        assert_eq!(digest(&[]).expect("digest").rows, 0);
    }

    #[test]
    fn rows_are_hashed_as_the_sink_holds_them() {
        let csv = Held::as_files(Some(FileFormat::Csv));
        let empty = digest_as_held(&[batch(&[1, 2], &["a", ""])], csv).expect("digest");
        let nullable = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let null = RecordBatch::try_new(
            nullable,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
            ],
        )
        .expect("batch");
        let null = digest_as_held(&[null], csv).expect("digest");
        assert_eq!(empty, null, "CSV: an empty string is a null");
        assert_ne!(
            digest_as_held(
                &[batch(&[1, 2], &["a", ""])],
                Held::as_files(Some(FileFormat::Parquet))
            )
            .expect("digest"),
            null,
            "Parquet keeps them apart"
        );
    }

    /// A sink that keeps timestamps to the microsecond (Delta, PostgreSQL) holds two times
    /// that differ below it as one: their digests are the same, as the read-back's is.
    #[test]
    fn times_are_hashed_to_the_precision_the_sink_keeps() {
        use datafusion::arrow::array::TimestampNanosecondArray;
        use datafusion::arrow::datatypes::TimeUnit;
        let at = |ns: i64| {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            )]));
            RecordBatch::try_new(
                schema,
                vec![Arc::new(TimestampNanosecondArray::from(vec![ns]))],
            )
            .expect("batch")
        };
        let micros = Held {
            format: Some(FileFormat::Parquet),
            column_type: Some(|t| match t {
                DataType::Timestamp(_, tz) => {
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                }
                other => other.clone(),
            }),
        };
        let held = |ns| digest_as_held(&[at(ns)], micros).expect("digest");
        assert_eq!(held(1_000_123_456), held(1_000_123_000));
        assert_ne!(held(1_000_123_456), held(1_000_124_000));
        assert_ne!(
            digest(&[at(1_000_123_456)]).expect("digest"),
            digest(&[at(1_000_123_000)]).expect("digest"),
            "as they are, they differ"
        );
    }

    #[test]
    fn the_difference_names_the_rows_on_each_side() {
        let schema = batch(&[], &[]).schema();
        let left = [batch(&[1, 2, 3, 3], &["a", "b", "c", "c"])];
        let right = [batch(&[3, 2, 4], &["c", "b", "x"])];
        let (only_left, only_right) = difference(&schema, &left, &right).expect("difference");
        let ids = |b: &RecordBatch| {
            let mut v: Vec<i64> = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("ids")
                .values()
                .to_vec();
            v.sort();
            v
        };
        assert_eq!(ids(&only_left), vec![1, 3]);
        assert_eq!(ids(&only_right), vec![4]);
    }
}
