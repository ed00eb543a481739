//! A source's schema inferred from several files: the types of each file merged, widened where
//! files disagree, until every column has a type.
//!
//! Rules (Spark's and DuckDB's, where they agree):
//! - files are read in path order; an empty file, and a CSV file with only a header, types no
//!   column, so inference goes on past them;
//! - a column whose values are all null types nothing either: inference reads on until every
//!   column has a type, up to [`MAX_FILES`] files or [`MAX_BYTES`] bytes; a column still
//!   without a value after that is a string (Spark's rule for a JSON column that is always
//!   null), never Arrow's `Null` type, which would read every later value as null;
//! - once every column has a type, inference still samples the files there are, up to
//!   [`SAMPLE_FILES`] files (DuckDB's `maximum_sample_files`) or [`SAMPLE_BYTES`] bytes, so
//!   that an integer column with a float in a later file is a float, not an error at that file;
//! - types that differ widen as Arrow's JSON inference widens them within one file: an integer
//!   and a float are a float, a timestamp and a date the finer timestamp, any other two scalar
//!   types a string; objects merge field by field, lists element by element;
//! - the files of a CSV source must have the same header; a Parquet column named in other case
//!   than a column before is that column (names match ignoring ASCII case, as Spark's and
//!   DuckDB's do);
//! - partition folders (`key=value`, see [`super::hive`]) add columns after the files' own.

use std::sync::Arc;

use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit,
};

use super::SourceError;
use crate::format::FileFormat;

/// Inference stops after this many files even if a column has no type yet.
pub const MAX_FILES: usize = 100;

/// Inference stops after this many bytes (as stored) even if a column has no type yet.
pub const MAX_BYTES: u64 = 256 << 20;

/// Once every column has a type, inference samples up to this many files.
pub const SAMPLE_FILES: usize = 32;

/// Once every column has a type, inference samples up to this many bytes (as stored).
pub const SAMPLE_BYTES: u64 = 32 << 20;

/// The columns inferred so far.
#[derive(Debug)]
pub struct Sample {
    format: FileFormat,
    /// The merged columns, and the file that gave the first of them.
    columns: Option<(Vec<Field>, String)>,
    /// Parquet only: each file's columns, to check that every file reads into the merged
    /// types exactly (a Parquet column is read by type, not parsed from text).
    parquet: Vec<(String, Vec<Field>)>,
    /// Files and bytes looked at.
    pub files: usize,
    /// Bytes looked at, as stored.
    pub bytes: u64,
}

impl Sample {
    /// An empty sample of files in `format`.
    pub fn new(format: FileFormat) -> Self {
        Self {
            format,
            columns: None,
            parquet: Vec::new(),
            files: 0,
            bytes: 0,
        }
    }

    /// Adds the columns `inferred` from `file` (`None` where the file has none), of `size`
    /// bytes as stored.
    pub fn add(
        &mut self,
        file: &str,
        size: u64,
        inferred: Option<Schema>,
    ) -> Result<(), SourceError> {
        self.files += 1;
        self.bytes += size;
        let Some(inferred) = inferred else {
            return Ok(());
        };
        let mut fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        // JSON's columns in alphabetical order, as Spark's inference gives them: a file's
        // come in the order its rows first name them (a column first named on line 3 after
        // those of line 1), and a later file's new ones are merged in (below).
        if self.format == FileFormat::Json {
            fields.sort_by(|a, b| a.name().cmp(b.name()));
        }
        // A Parquet column named as one before but in other case is that column (walk 124
        // (4): `ID` beside `id` made a second column, and the first null in that file's
        // rows), as Spark (`spark.sql.caseSensitive` off) and DuckDB's `union_by_name` read it.
        if self.format == FileFormat::Parquet
            && let Some((columns, _)) = &self.columns
        {
            // Only where one column before and one of this file are alike so, and the file
            // has no column of the name already: `id` and `ID` both in a file stay apart.
            let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
            for field in &mut fields {
                let alike = |name: &str| name.eq_ignore_ascii_case(field.name());
                let mut before = columns.iter().filter(|c| alike(c.name()));
                if let (Some(column), None) = (before.next(), before.next())
                    && column.name() != field.name()
                    && names.iter().filter(|n| alike(n)).count() == 1
                {
                    *field = field.clone().with_name(column.name());
                }
            }
        }
        if self.format == FileFormat::Parquet {
            self.parquet.push((file.to_string(), fields.clone()));
        }
        let Some((columns, first)) = &mut self.columns else {
            self.columns = Some((fields, file.to_string()));
            return Ok(());
        };
        if self.format == FileFormat::Csv {
            let names = |fs: &[Field]| fs.iter().map(|f| f.name().clone()).collect::<Vec<_>>();
            if !super::decode::same_names(&names(columns), &names(&fields)) {
                return Err(SourceError::SchemaMismatch {
                    file: file.to_string(),
                    reason: format!(
                        "its header has columns {:?}, but {first}, which the source's columns \
                         are inferred from, has {:?}; the files of a CSV source share one header \
                         (columns are read by position). Rewrite this file's header, move it \
                         aside (a name starting with `_` or `.` is not read), or put the files \
                         with the other header in a folder of their own, read as another source \
                         (or, where their names tell them apart, read the one folder as two \
                         sources, each with its `path_glob_filter: \"new_*.csv\"`)",
                        names(&fields),
                        names(columns)
                    ),
                });
            }
        }
        if self.format == FileFormat::Csv {
            // A header in other case names the first file's columns (checked above).
            for (field, column) in fields.iter_mut().zip(columns.iter()) {
                *field = field.clone().with_name(column.name());
            }
        }
        *columns = merge_fields(columns, &fields).map_err(|reason| SourceError::Infer {
            file: file.to_string(),
            reason: format!("{reason}, unlike in {first}"),
        })?;
        // Whichever file brought each.
        if self.format == FileFormat::Json {
            columns.sort_by(|a, b| a.name().cmp(b.name()));
        }
        self.check_parquet()
    }

    /// Parquet: every file sampled reads into the merged columns exactly (a wider integer, a
    /// finer time, a double for an integer that fits it), or the source is refused here,
    /// naming the two files whose types no one type holds, rather than pinning a type that
    /// the next read refuses.
    fn check_parquet(&self) -> Result<(), SourceError> {
        let Some((columns, _)) = &self.columns else {
            return Ok(());
        };
        for column in columns {
            let held: Vec<(&str, &DataType)> = self
                .parquet
                .iter()
                // A file under a `key=value` folder of this column's name takes the column
                // from the folder, whatever its own type (checked value by value when read).
                .filter(|(name, _)| {
                    let key = format!("{}=", column.name());
                    !name.split('/').any(|part| part.starts_with(&key))
                })
                .filter_map(|(name, fields)| {
                    let field = fields.iter().find(|f| f.name() == column.name())?;
                    Some((name.as_str(), field.data_type()))
                })
                .collect();
            let Some((bad, bad_type)) = held
                .iter()
                .find(|(_, t)| !super::decode::reads_as(t, column.data_type()))
            else {
                continue;
            };
            // Named beside a file whose type it cannot go with either way, where there is one.
            let apart = |t: &DataType| {
                !super::decode::reads_as(bad_type, t) && !super::decode::reads_as(t, bad_type)
            };
            let Some((other, other_type)) = held
                .iter()
                .find(|(_, t)| apart(t))
                .or_else(|| held.iter().find(|(_, t)| t != bad_type))
            else {
                continue;
            };
            let declared;
            let hint = if let (DataType::Struct(a), DataType::Struct(b)) = (bad_type, other_type) {
                // Every field of both, the first's first, as a declared type.
                let mut fields: Vec<String> = Vec::new();
                let mut names: Vec<&str> = Vec::new();
                for f in a.iter().chain(b.iter()) {
                    if !names.contains(&f.name().as_str()) {
                        names.push(f.name());
                        fields.push(format!(
                            "{} {}",
                            f.name(),
                            crate::format::sql_type_name(f.data_type())
                        ));
                    }
                }
                declared = format!(
                    "their structs' fields do not read as one struct (a field of one name is of \
                     types neither reads as the other). Declare the column as the struct meant \
                     (a file without some of its fields reads them as null), as `schema: {{ \
                     {}: 'struct<{}>', ... }}` with each field's type (every column of the \
                     source declared)",
                    column.name(),
                    fields.join(", ")
                );
                declared.as_str()
            } else if matches!(
                (bad_type, other_type),
                (
                    DataType::Timestamp(_, Some(_)),
                    DataType::Timestamp(_, None)
                ) | (
                    DataType::Timestamp(_, None),
                    DataType::Timestamp(_, Some(_))
                )
            ) {
                "one holds instants (a time zone), the other wall-clock times (none), and \
                 neither reads as the other without a zone chosen for it. Read each kind from \
                 a folder of its own, as two sources, and convert in the query (`ts AT TIME \
                 ZONE 'UTC'` makes a wall-clock time an instant), or rewrite one kind"
            } else {
                "no type holds the values of both exactly. Rewrite one of them in the other's \
                 type, or read each from a folder of its own, as two sources, converting in \
                 the query"
            };
            return Err(SourceError::Conflict {
                file: (*bad).to_string(),
                other: (*other).to_string(),
                reason: format!(
                    "column `{}` is {bad_type} in the first and {other_type} in the second: \
                     {hint}",
                    column.name()
                ),
            });
        }
        Ok(())
    }

    /// Whether every column has a type, so reading more files would change nothing but widen.
    pub fn typed(&self) -> bool {
        self.columns
            .as_ref()
            .is_some_and(|(columns, _)| columns.iter().all(|f| !has_null(f.data_type())))
    }

    /// Whether to read another file.
    pub fn wants_more(&self) -> bool {
        if self.typed() {
            self.files < SAMPLE_FILES && self.bytes < SAMPLE_BYTES
        } else {
            self.files < MAX_FILES && self.bytes < MAX_BYTES
        }
    }

    /// The schema: the files' columns, then the partition columns `partitions` (a file column
    /// of the same name takes the partition's type where it is); `None` while no file had a
    /// column. Columns without a type are strings.
    pub fn finish(self, partitions: Vec<Field>) -> Option<SchemaRef> {
        let (mut columns, _) = self.columns?;
        // Files with no value at all (a CSV header alone, JSON of nulls) type nothing: no
        // schema yet, rather than every column pinned as a string for good.
        if columns.iter().all(|f| f.data_type() == &DataType::Null) {
            return None;
        }
        for partition in partitions {
            match columns.iter_mut().find(|f| f.name() == partition.name()) {
                Some(column) => *column = partition,
                None => columns.push(partition),
            }
        }
        let columns: Vec<Field> = columns
            .into_iter()
            .map(|f| {
                let data_type = pinned_form(f.data_type());
                f.with_data_type(data_type).with_nullable(true)
            })
            .collect();
        Some(Arc::new(Schema::new(columns)))
    }
}

/// The type a column inferred as `data_type` is pinned as: every `Null` inside it a string (a
/// column no value typed), and so that the files of other writers read into it, a dictionary
/// as its values' type (`string`, as the README says), an instant in UTC, and a time in at
/// least microseconds (Spark's unit): one writer's dictionary, zone or milliseconds pinned
/// would refuse another's plain strings, zone or microseconds.
fn pinned_form(data_type: &DataType) -> DataType {
    use datafusion::arrow::datatypes::TimeUnit;
    match data_type {
        DataType::Null => DataType::Utf8,
        DataType::Struct(fields) if fields.is_empty() => DataType::Utf8,
        DataType::Dictionary(_, values) => pinned_form(values),
        DataType::Timestamp(unit, zone) => DataType::Timestamp(
            match unit {
                TimeUnit::Second | TimeUnit::Millisecond => TimeUnit::Microsecond,
                finer => *finer,
            },
            zone.as_ref().map(|_| "UTC".into()),
        ),
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(pinned_form(item.data_type())),
        )),
        DataType::LargeList(item) => DataType::LargeList(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(pinned_form(item.data_type())),
        )),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_data_type(pinned_form(f.data_type()))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether `data_type` is or holds Arrow's `Null` type, or an object type without fields (a
/// column no value has typed yet: `null`, `[]`, `{}`).
pub(super) fn has_null(data_type: &DataType) -> bool {
    match data_type {
        DataType::Null => true,
        DataType::Struct(fields) if fields.is_empty() => true,
        DataType::List(item) | DataType::LargeList(item) => has_null(item.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| has_null(f.data_type())),
        _ => false,
    }
}

/// `a`'s fields with `b`'s merged in by name: shared names widened, new ones appended.
fn merge_fields(a: &[Field], b: &[Field]) -> Result<Vec<Field>, String> {
    let mut merged: Vec<Field> = a.to_vec();
    for field in b {
        match merged.iter_mut().find(|f| f.name() == field.name()) {
            Some(slot) => {
                let data_type = widen(slot.data_type(), field.data_type())
                    .map_err(|reason| format!("column `{}` {reason}", field.name()))?;
                *slot = slot.clone().with_data_type(data_type).with_nullable(true);
            }
            None => merged.push(field.clone().with_nullable(true)),
        }
    }
    Ok(merged)
}

/// The decimal that holds every value of `a` and of `b` (decimals or integers, one of them a
/// decimal) exactly: as many digits before the point as the wider, and after as the finer;
/// `None` where that passes 38 digits or either is something else.
fn wider_decimal(a: &DataType, b: &DataType) -> Option<DataType> {
    let digits = |t: &DataType| -> Option<(i16, i16)> {
        match t {
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => Some((i16::from(*p) - i16::from(*s), i16::from(*s))),
            DataType::Int8 | DataType::UInt8 => Some((3, 0)),
            DataType::Int16 | DataType::UInt16 => Some((5, 0)),
            DataType::Int32 | DataType::UInt32 => Some((10, 0)),
            DataType::Int64 => Some((19, 0)),
            DataType::UInt64 => Some((20, 0)),
            _ => None,
        }
    };
    if !a.is_decimal() && !b.is_decimal() {
        return None;
    }
    let ((a_int, a_frac), (b_int, b_frac)) = (digits(a)?, digits(b)?);
    let (int, frac) = (a_int.max(b_int), a_frac.max(b_frac));
    let precision = u8::try_from(int + frac).ok().filter(|p| *p <= 38)?;
    Some(DataType::Decimal128(precision, i8::try_from(frac).ok()?))
}

/// The type both `a` and `b` read as: the same type, the typed one beside `Null`, the wider
/// number or timestamp, objects and lists merged inside, a list beside a scalar a list of both,
/// and a string for any other two scalars (as Arrow's JSON inference widens within a file). An
/// object beside anything else has no common type.
fn widen(a: &DataType, b: &DataType) -> Result<DataType, String> {
    use DataType as T;
    let finer = |u: &TimeUnit, v: &TimeUnit| {
        let rank = |u: &TimeUnit| match u {
            TimeUnit::Second => 0,
            TimeUnit::Millisecond => 1,
            TimeUnit::Microsecond => 2,
            TimeUnit::Nanosecond => 3,
        };
        if rank(u) >= rank(v) { *u } else { *v }
    };
    Ok(match (a, b) {
        (a, b) if a == b => a.clone(),
        (T::Null, other) | (other, T::Null) => other.clone(),
        (a, b) if a.is_integer() && b.is_integer() => T::Int64,
        // An integer past `bigint` in one file (`decimal(20,0)`, see `with_wide_integers`)
        // beside integers in another: every one of them fits `decimal(20,0)`.
        (T::Decimal128(20, 0), other) | (other, T::Decimal128(20, 0)) if other.is_integer() => {
            T::Decimal128(20, 0)
        }
        // Decimals (a Parquet file's `decimal(10,2)` beside another's `decimal(12,3)`, or
        // beside integers) widen to a decimal that holds both exactly, where one does.
        (a, b) if let Some(wide) = wider_decimal(a, b) => wide,
        (a, b) if a.is_numeric() && b.is_numeric() => T::Float64,
        (T::Timestamp(u, tz), T::Timestamp(v, tz2)) if tz == tz2 => {
            T::Timestamp(finer(u, v), tz.clone())
        }
        // Instants in two zones are instants: kept in UTC (the zone only labels them).
        (T::Timestamp(u, Some(_)), T::Timestamp(v, Some(_))) => {
            T::Timestamp(finer(u, v), Some("UTC".into()))
        }
        (T::Time32(u) | T::Time64(u), T::Time32(v) | T::Time64(v)) => match finer(u, v) {
            unit @ (TimeUnit::Second | TimeUnit::Millisecond) => T::Time32(unit),
            unit => T::Time64(unit),
        },
        (
            T::Binary | T::LargeBinary | T::BinaryView,
            T::Binary | T::LargeBinary | T::BinaryView,
        ) => T::Binary,
        (T::Timestamp(u, tz), T::Date32) | (T::Date32, T::Timestamp(u, tz)) => {
            T::Timestamp(*u, tz.clone())
        }
        (T::Struct(x), T::Struct(y)) => {
            let x: Vec<Field> = x.iter().map(|f| f.as_ref().clone()).collect();
            let y: Vec<Field> = y.iter().map(|f| f.as_ref().clone()).collect();
            T::Struct(Fields::from(merge_fields(&x, &y)?))
        }
        (T::List(x) | T::LargeList(x), T::List(y) | T::LargeList(y)) => {
            let item = widen(x.data_type(), y.data_type())?;
            T::List(Arc::new(Field::new_list_field(item, true)))
        }
        // Maps merge key by key type and value by value type, in the first's entry names.
        (T::Map(x, sorted), T::Map(y, _)) => match (x.data_type(), y.data_type()) {
            (T::Struct(xs), T::Struct(ys)) if xs.len() == 2 && ys.len() == 2 => {
                let key = widen(xs[0].data_type(), ys[0].data_type())?;
                let value = widen(xs[1].data_type(), ys[1].data_type())?;
                let entries = Fields::from(vec![
                    xs[0].as_ref().clone().with_data_type(key),
                    xs[1]
                        .as_ref()
                        .clone()
                        .with_data_type(value)
                        .with_nullable(true),
                ]);
                T::Map(
                    Arc::new(x.as_ref().clone().with_data_type(T::Struct(entries))),
                    *sorted,
                )
            }
            _ => return Err(format!("is {a} in one file and {b} in another")),
        },
        // A scalar beside a list is a list of it, as within a file.
        (T::List(x), scalar) | (scalar, T::List(x)) if !matches!(scalar, T::Struct(_)) => {
            let item = widen(x.data_type(), scalar)?;
            T::List(Arc::new(Field::new_list_field(item, true)))
        }
        (nested @ T::Struct(_), other) | (other, nested @ T::Struct(_)) => {
            return Err(format!("is {nested} in one file and {other} in another"));
        }
        _ => T::Utf8,
    })
}

/// `schema` with every 32- and 64-bit decimal (a Parquet file's `decimal(7,2)` as Arrow reads
/// it, at any depth) as the 128-bit decimal of the same precision and scale, which holds the
/// same values. DataFusion 55 plans arithmetic between a `Decimal32`/`Decimal64` and an
/// integer as integer arithmetic, casting the decimal to an integer first (`d * 2` of 1.25 is
/// 2), where its `Decimal128` arithmetic is exact; a declared `decimal(p,s)` is `Decimal128`
/// already.
pub fn decimals_in_128_bits(schema: &SchemaRef) -> SchemaRef {
    fn widened(t: &DataType) -> Option<DataType> {
        let field = |f: &FieldRef| {
            widened(f.data_type()).map(|t| Arc::new(f.as_ref().clone().with_data_type(t)))
        };
        match t {
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
                Some(DataType::Decimal128(*p, *s))
            }
            DataType::List(f) => field(f).map(DataType::List),
            DataType::LargeList(f) => field(f).map(DataType::LargeList),
            DataType::FixedSizeList(f, n) => field(f).map(|f| DataType::FixedSizeList(f, *n)),
            DataType::Map(f, sorted) => field(f).map(|f| DataType::Map(f, *sorted)),
            DataType::Struct(fields) => {
                let changed: Vec<Option<FieldRef>> = fields.iter().map(field).collect();
                changed.iter().any(Option::is_some).then(|| {
                    DataType::Struct(
                        fields
                            .iter()
                            .zip(changed)
                            .map(|(f, c)| c.unwrap_or_else(|| Arc::clone(f)))
                            .collect(),
                    )
                })
            }
            _ => None,
        }
    }
    if !schema
        .fields()
        .iter()
        .any(|f| widened(f.data_type()).is_some())
    {
        return Arc::clone(schema);
    }
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| match widened(f.data_type()) {
                Some(t) => Arc::new(f.as_ref().clone().with_data_type(t)),
                None => Arc::clone(f),
            })
            .collect::<Vec<FieldRef>>(),
        schema.metadata().clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_decimals_read_as_128_bits_at_any_depth() {
        let item = |t: DataType| Arc::new(Field::new("item", t, true));
        let given = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Decimal32(7, 2), true),
            Field::new("b", DataType::List(item(DataType::Decimal64(12, 1))), true),
            Field::new(
                "c",
                DataType::Struct(Fields::from(vec![
                    Field::new("x", DataType::Int32, true),
                    Field::new("y", DataType::Decimal32(5, 0), false),
                ])),
                true,
            ),
            Field::new("d", DataType::Decimal128(38, 10), true),
        ]));
        let read = decimals_in_128_bits(&given);
        let types: Vec<String> = read
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(
            types,
            [
                "Decimal128(7, 2)",
                "List(Decimal128(12, 1))",
                "Struct(\"x\": Int32, \"y\": non-null Decimal128(5, 0))",
                "Decimal128(38, 10)",
            ]
        );
        // Nothing to widen: the same schema.
        let plain = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        assert!(Arc::ptr_eq(&decimals_in_128_bits(&plain), &plain));
    }

    fn schema(fields: &[(&str, DataType)]) -> Option<Schema> {
        Some(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn inference_reads_past_files_that_type_nothing() {
        let mut sample = Sample::new(FileFormat::Csv);
        sample.add("empty.csv", 0, None).expect("empty");
        assert!(sample.wants_more());
        sample
            .add(
                "header.csv",
                4,
                schema(&[("a", DataType::Null), ("b", DataType::Null)]),
            )
            .expect("header only");
        assert!(sample.wants_more(), "a header types no column");
        sample
            .add(
                "1.csv",
                9,
                schema(&[("a", DataType::Int64), ("b", DataType::Null)]),
            )
            .expect("a typed");
        assert!(sample.wants_more(), "b has no type yet");
        sample
            .add(
                "2.csv",
                9,
                schema(&[("a", DataType::Float64), ("b", DataType::Utf8)]),
            )
            .expect("b typed");
        assert!(
            sample.wants_more(),
            "typed, and sampling on up to SAMPLE_FILES files"
        );
        for i in 3..=SAMPLE_FILES {
            let name = format!("{i}.csv");
            sample
                .add(
                    &name,
                    9,
                    schema(&[("a", DataType::Int64), ("b", DataType::Null)]),
                )
                .expect("more");
        }
        assert!(!sample.wants_more(), "{SAMPLE_FILES} files sampled");
        let inferred = sample.finish(vec![]).expect("columns");
        // Walk 46 (W2): header-only files alone give no schema yet, not every column a
        // string pinned for good.
        let mut header_only = Sample::new(FileFormat::Csv);
        header_only
            .add(
                "header.csv",
                4,
                schema(&[("a", DataType::Null), ("b", DataType::Null)]),
            )
            .expect("header only");
        assert_eq!(header_only.finish(vec![]), None);
        assert_eq!(inferred.field(0).data_type(), &DataType::Float64);
        assert_eq!(inferred.field(1).data_type(), &DataType::Utf8);
        // A CSV file with another header is named.
        let mut sample = Sample::new(FileFormat::Csv);
        sample
            .add("1.csv", 1, schema(&[("a", DataType::Int64)]))
            .expect("first");
        let err = sample
            .add("2.csv", 1, schema(&[("b", DataType::Int64)]))
            .expect_err("other header")
            .to_string();
        assert!(
            err.contains("2.csv") && err.contains("but 1.csv, which the source's columns are"),
            "{err}"
        );
    }

    #[test]
    fn a_column_never_typed_is_a_string_and_nothing_is_null() {
        let mut sample = Sample::new(FileFormat::Json);
        let empty_object = DataType::Struct(Fields::empty());
        sample
            .add("0.json", 1, schema(&[("o", empty_object)]))
            .expect("an empty object");
        assert!(sample.wants_more(), "`{{}}` types nothing");
        let list_of_null = DataType::List(Arc::new(Field::new_list_field(DataType::Null, true)));
        let nested = DataType::Struct(vec![Field::new("x", DataType::Null, true)].into());
        sample
            .add(
                "1.json",
                1,
                schema(&[("n", DataType::Null), ("l", list_of_null), ("s", nested)]),
            )
            .expect("first");
        let schema = sample
            .finish(vec![Field::new("day", DataType::Date32, true)])
            .expect("schema");
        // (Alphabetical, as Spark's JSON inference gives them: `l`, `n`, `o`, `s`.)
        assert_eq!(
            schema.field_with_name("o").expect("o").data_type(),
            &DataType::Utf8
        );
        for i in 0..4 {
            assert!(!has_null(schema.field(i).data_type()), "{schema}");
        }
        assert_eq!(schema.field(4).name(), "day");
    }

    #[test]
    fn types_widen_as_within_a_file() {
        use DataType as T;
        let ts = |u| T::Timestamp(u, None);
        assert_eq!(widen(&T::Int64, &T::Float64), Ok(T::Float64));
        assert_eq!(widen(&T::Boolean, &T::Int64), Ok(T::Utf8));
        assert_eq!(
            widen(&T::Date32, &ts(TimeUnit::Second)),
            Ok(ts(TimeUnit::Second))
        );
        assert_eq!(
            widen(&ts(TimeUnit::Second), &ts(TimeUnit::Nanosecond)),
            Ok(ts(TimeUnit::Nanosecond))
        );
        let a = T::Struct(vec![Field::new("x", T::Int64, true)].into());
        let b = T::Struct(vec![Field::new("y", T::Utf8, true)].into());
        let T::Struct(merged) = widen(&a, &b).expect("objects merge") else {
            panic!("a struct");
        };
        assert_eq!(merged.len(), 2);
        let err = widen(&a, &T::Int64).expect_err("object and number");
        assert!(err.contains("in one file and Int64 in another"), "{err}");
        let list = |t| T::List(Arc::new(Field::new_list_field(t, true)));
        assert_eq!(widen(&list(T::Int64), &T::Float64), Ok(list(T::Float64)));
    }
}
