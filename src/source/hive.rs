//! Hive-style partition folders: `key=value` folders in a file's path are columns of its rows,
//! as Spark, DuckDB (`hive_partitioning`) and DataFusion's listing tables read them.
//!
//! A value is percent-decoded (Spark escapes `/`, `=`, `%` and other characters of a partition
//! value that way), and `__HIVE_DEFAULT_PARTITION__` is null (Hive's and Spark's name for a null
//! partition value). Inferred types follow Spark's partition-column inference, narrowest first:
//! `bigint`, `double`, `date` (`YYYY-MM-DD`), `timestamp` (`YYYY-MM-DD hh:mm:ss[.f]`, also with
//! `T`), and `string` otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// Hive's and Spark's folder name for a null partition value.
pub(super) const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The `key=value` folders of `path` (relative to the source's folder, `/`-separated), outermost
/// first, with each value decoded (`None` for a null value). The file name itself is not a
/// folder; a key that repeats keeps its innermost value.
pub fn partition_values(path: &str) -> Vec<(String, Option<String>)> {
    let mut values: Vec<(String, Option<String>)> = Vec::new();
    let folders = path.rsplit_once('/').map_or("", |(folders, _)| folders);
    for folder in folders.split('/') {
        let Some((key, value)) = folder.split_once('=') else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        let key = decode(key);
        let value = (value != NULL_PARTITION).then(|| decode(value));
        match values.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => values.push((key, value)),
        }
    }
    values
}

/// `text` with `%XX` escapes decoded (left as written where they do not decode to UTF-8).
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_or_else(|_| text.to_string(), |s| s.into_owned())
}

/// The narrowest type every one of `values` reads as (nulls fit any), by Spark's rule, a
/// number only where each value reads back as written (DuckDB's rule: `01234` stays text).
pub fn infer_type<'a>(values: impl IntoIterator<Item = Option<&'a str>> + Clone) -> DataType {
    if values.clone().into_iter().flatten().next().is_none() {
        return DataType::Utf8;
    }
    let candidates = [
        DataType::Int64,
        DataType::Float64,
        DataType::Date32,
        DataType::Timestamp(TimeUnit::Microsecond, None),
    ];
    candidates
        .into_iter()
        .find(|data_type| {
            values
                .clone()
                .into_iter()
                .flatten()
                .all(|value| fits(value, data_type))
        })
        .unwrap_or(DataType::Utf8)
}

/// Whether `value` reads as `data_type` exactly: the forms Spark infers, not everything a cast
/// accepts (`1` is no date, `2024-01-01` no timestamp).
fn fits(value: &str, data_type: &DataType) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let date = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 3
            && parts[0].len() == 4
            && parts[1..].iter().all(|p| p.len() == 2)
            && parts.iter().all(|p| digits(p))
            && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
    };
    match data_type {
        // A number only where it reads back as written (DuckDB's rule for folder values):
        // `01234` (a zip code) or `1.10` (a version) stays text, not 1234 or 1.1.
        DataType::Int64 => value.parse::<i64>().is_ok_and(|n| n.to_string() == value),
        DataType::Float64 => value
            .parse::<f64>()
            .is_ok_and(|f| f.is_finite() && (f.to_string() == value || format!("{f:?}") == value)),
        DataType::Date32 => date(value),
        // At most microseconds, the inferred type's unit (a finer time stays a string).
        DataType::Timestamp(..) => value.split_once([' ', 'T']).is_some_and(|(day, time)| {
            date(day)
                && time
                    .split_once('.')
                    .is_none_or(|(_, fraction)| fraction.len() <= 6)
                && ["%H:%M:%S%.f", "%H:%M:%S"]
                    .iter()
                    .any(|f| chrono::NaiveTime::parse_from_str(time, f).is_ok())
        }),
        _ => false,
    }
}

/// A column of `rows` copies of the partition value `value` as `data_type`, read as exactly as
/// a value in a file (`2026-01-01T10:00` is no date); the error says why a value does not read
/// as the type.
pub fn column(value: Option<&str>, data_type: &DataType, rows: usize) -> Result<ArrayRef, String> {
    let Some(value) = value else {
        return Ok(new_null_array(data_type, rows));
    };
    let text: ArrayRef = Arc::new(StringArray::from(vec![value]));
    // As exact as a value in a file: a date with a time of day, a time finer than the
    // column's unit, a number past a decimal's scale are errors, never cut.
    let one = super::decode::exact_cast(&text, data_type, None).map_err(|e| {
        format!(
            "`{value}` is not a {}: {e}",
            crate::format::sql_type_name(data_type)
        )
    })?;
    let taken = datafusion::arrow::compute::take(
        &one,
        &datafusion::arrow::array::UInt32Array::from(vec![0u32; rows]),
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Date32Array, Int64Array};

    #[test]
    fn folders_give_keys_and_values() {
        assert_eq!(
            partition_values("day=2024-01-01/hour=07/0.json"),
            [
                ("day".to_string(), Some("2024-01-01".to_string())),
                ("hour".to_string(), Some("07".to_string())),
            ]
        );
        // Not a folder, not `key=value`, or an empty key: no column.
        assert!(partition_values("a=1.json").is_empty());
        assert!(partition_values("plain/=x/0.json").is_empty());
        // Escapes decode; Hive's null folder is null; an inner repeat wins.
        assert_eq!(
            partition_values("city=New%20York/k=__HIVE_DEFAULT_PARTITION__/f"),
            [
                ("city".to_string(), Some("New York".to_string())),
                ("k".to_string(), None),
            ]
        );
        assert_eq!(
            partition_values("k=1/k=2/f"),
            [("k".to_string(), Some("2".to_string()))]
        );
    }

    #[test]
    fn types_are_inferred_narrowest_first() {
        let t = |values: &[Option<&str>]| infer_type(values.iter().copied());
        assert_eq!(t(&[Some("1"), Some("-20"), None]), DataType::Int64);
        assert_eq!(t(&[Some("1"), Some("2.5")]), DataType::Float64);
        assert_eq!(
            t(&[Some("0"), Some("2.0"), Some("-0.25")]),
            DataType::Float64
        );
        assert_eq!(
            t(&[Some("2024-01-01"), Some("2024-12-31")]),
            DataType::Date32
        );
        assert_eq!(
            t(&[Some("2024-01-01 10:00:00"), Some("2024-01-01T10:00:00.5")]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        for strings in [
            &[Some("2024-01-01"), Some("2024-01-01 10:00:00")][..],
            &[Some("2024-13-01")],
            &[Some("07"), Some("x")],
            &[Some("01234"), Some("98765")],
            &[Some("1.1"), Some("1.10")],
            &[Some("1e3")],
            &[Some("+5")],
            &[Some("NaN")],
            &[Some("2024-01-01 10:00:00.1234567")],
            &[Some("")],
        ] {
            assert_eq!(t(strings), DataType::Utf8, "{strings:?}");
        }
        // No value at all: a string, never a null type.
        assert_eq!(t(&[None]), DataType::Utf8);
    }

    #[test]
    fn a_value_becomes_a_column_or_a_named_error() {
        let c = column(Some("2024-01-01"), &DataType::Date32, 3).expect("date");
        let c = c.as_any().downcast_ref::<Date32Array>().expect("dates");
        assert_eq!((c.len(), c.value(2)), (3, 19723));
        let c = column(None, &DataType::Int64, 2).expect("null");
        assert_eq!(c.null_count(), 2);
        let c = column(Some("07"), &DataType::Int64, 1).expect("int");
        assert_eq!(
            c.as_any()
                .downcast_ref::<Int64Array>()
                .expect("ints")
                .value(0),
            7
        );
        let err = column(Some("abc"), &DataType::Date32, 1).expect_err("not a date");
        assert!(err.contains("`abc` is not a date"), "{err}");
        // A value that would lose something is refused, not cut.
        let err = column(Some("2026-01-01T10:00"), &DataType::Date32, 1).expect_err("a time");
        assert!(err.contains("has a time of day"), "{err}");
        let seconds = DataType::Timestamp(TimeUnit::Second, None);
        let err = column(Some("2026-01-01 10:00:00.5"), &seconds, 1).expect_err("a fraction");
        assert!(err.contains("finer fraction of a second"), "{err}");
        let err = column(Some("1.25"), &DataType::Decimal128(5, 1), 1).expect_err("a digit");
        assert!(err.contains("1.25"), "{err}");
    }
}
