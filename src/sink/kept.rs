//! Times a sink keeps to a coarser unit than the query's (Delta Lake and PostgreSQL keep
//! timestamps to the microsecond): a value the coarser unit would cut is an error naming its
//! column and the value, never a silent truncation (the rule every source reads by, too).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options, is_null, nullif};
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::array_value_to_string;

/// Nanoseconds in one `unit`.
fn nanos(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// The first value of `column` that a cast to `to` would cut (a timestamp, time or duration
/// kept in a coarser unit, a `date64` with a time of day kept as a date, at any depth of
/// structs, lists and maps), shown as text; `None`
/// where every value is kept whole.
pub(crate) fn first_cut(column: &ArrayRef, to: &DataType) -> Option<String> {
    use DataType as T;
    let ratio = match (column.data_type(), to) {
        (T::Timestamp(from, _), T::Timestamp(to, _))
        | (T::Time64(from) | T::Time32(from), T::Time64(to) | T::Time32(to))
        | (T::Duration(from), T::Duration(to)) => Some(nanos(*to) / nanos(*from)),
        // A `date64` is milliseconds, kept as whole days: a time of day in it is cut.
        (T::Date64, T::Date32) => Some(86_400_000),
        _ => None,
    };
    if let Some(ratio) = ratio {
        if ratio <= 1 {
            return None;
        }
        let counts = cast(column, &DataType::Int64).ok()?;
        let counts = counts.as_primitive::<Int64Type>();
        let at = (0..counts.len()).find(|&i| counts.is_valid(i) && counts.value(i) % ratio != 0)?;
        return Some(
            array_value_to_string(column, at).unwrap_or_else(|_| counts.value(at).to_string()),
        );
    }
    match (column.data_type(), to) {
        (T::Dictionary(_, values), _) => first_cut(&cast(column, values).ok()?, to),
        (T::Struct(_), T::Struct(fields)) => {
            // A field under a null struct is not written: null there.
            let parent_null = is_null(column).ok()?;
            column
                .as_struct()
                .columns()
                .iter()
                .zip(fields)
                .find_map(|(c, f)| first_cut(&nullif(c, &parent_null).ok()?, f.data_type()))
        }
        (T::List(_), T::List(item)) => {
            let list = column.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0], offsets[list.len()]);
            // Only the items the list's rows hold.
            let items = list.values().slice(start as usize, (end - start) as usize);
            first_cut(&items, item.data_type())
        }
        (T::LargeList(_), T::LargeList(item)) => {
            let list = column.as_list::<i64>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[0], offsets[list.len()]);
            let items = list.values().slice(start as usize, (end - start) as usize);
            first_cut(&items, item.data_type())
        }
        (T::Map(_, _), T::Map(field, _)) => {
            let entries: ArrayRef = Arc::new(column.as_map().entries().clone());
            first_cut(&entries, field.data_type())
        }
        _ => None,
    }
}

/// Refuses `column` (named `name`) where a cast to `to`, the type `sink` keeps it in, would cut
/// a value: the error names the column and the value, and how to keep it whole or cut it on
/// purpose.
pub(crate) fn check_kept(
    column: &ArrayRef,
    to: &DataType,
    name: &str,
    sink: &str,
) -> Result<(), String> {
    let Some(value) = first_cut(column, to) else {
        return Ok(());
    };
    let hint = match (column.data_type(), to) {
        (DataType::Timestamp(..), DataType::Timestamp(unit, _)) => format!(
            ": truncate it in the query where that is meant (`date_trunc('{}', {name})`)",
            match unit {
                TimeUnit::Second => "second",
                TimeUnit::Millisecond => "millisecond",
                TimeUnit::Microsecond => "microsecond",
                TimeUnit::Nanosecond => "nanosecond",
            }
        ),
        (DataType::Date64, _) => format!(
            ": keep the time with `CAST({name} AS TIMESTAMP)` in the query, or drop it with \
             `CAST({name} AS DATE)` where that is meant"
        ),
        _ => ": round it in the query where that is meant".to_string(),
    };
    Err(format!(
        "column `{name}` holds {value}, finer than {sink} keeps it; a value is never \
         cut on the way to a sink{hint}"
    ))
}

/// `rows` in `schema`'s types (the ones `sink` keeps its columns in), each column cast
/// exactly: a value the cast would cut ([`check_kept`]) or that does not fit (a `UInt64` past
/// `Int64`) is an error naming its column, never a cut or a null.
pub(crate) fn to_kept(
    rows: &RecordBatch,
    schema: &SchemaRef,
    sink: &str,
) -> Result<RecordBatch, String> {
    let exact = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = rows
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                return Ok(Arc::clone(column));
            }
            check_kept(column, field.data_type(), field.name(), sink)?;
            cast_with_options(column, field.data_type(), &exact)
                .map_err(|e| format!("column `{}`: {e}", field.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        ListArray, TimestampNanosecondArray, TimestampSecondArray, new_null_array,
    };
    use datafusion::arrow::datatypes::Field;

    use super::*;

    fn micros() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    #[test]
    fn a_time_finer_than_the_sink_keeps_is_named() {
        // 2026-01-01T10:00:00.123456 whole, then .123456789 cut.
        let whole: i64 = 1_767_261_600_123_456_000;
        let column: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            Some(whole),
            None,
            Some(whole + 789),
        ]));
        assert_eq!(
            first_cut(&column, &micros()).as_deref(),
            Some("2026-01-01T10:00:00.123456789")
        );
        let err = check_kept(&column, &micros(), "at", "Delta Lake").expect_err("cut");
        assert!(
            err.contains("column `at` holds 2026-01-01T10:00:00.123456789"),
            "{err}"
        );
        assert!(err.contains("date_trunc('microsecond', at)"), "{err}");
        // Whole microseconds, nulls, and a unit as fine or finer, pass.
        let kept: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![Some(whole), None]));
        assert_eq!(check_kept(&kept, &micros(), "at", "Delta Lake"), Ok(()));
        let seconds: ArrayRef = Arc::new(TimestampSecondArray::from(vec![Some(7)]));
        assert_eq!(first_cut(&seconds, &micros()), None);
        let nulls = new_null_array(&DataType::Timestamp(TimeUnit::Nanosecond, None), 3);
        assert_eq!(first_cut(&nulls, &micros()), None);
    }

    /// A review: a `date64` with a time of day went into a sink's `date` column cut to its
    /// day (a day earlier before 1970). It is named, as a time cut is.
    #[test]
    fn a_date64_with_a_time_of_day_is_named() {
        use datafusion::arrow::array::Date64Array;
        let day = 86_400_000_i64;
        let column: ArrayRef = Arc::new(Date64Array::from(vec![
            Some(20_000 * day),
            None,
            Some(-day + 123),
        ]));
        assert!(first_cut(&column, &DataType::Date32).is_some());
        let err = check_kept(&column, &DataType::Date32, "d", "PostgreSQL").expect_err("cut");
        assert!(
            err.contains("column `d` holds") && err.contains("CAST(d AS TIMESTAMP)"),
            "{err}"
        );
        let whole: ArrayRef = Arc::new(Date64Array::from(vec![Some(20_000 * day), Some(-day)]));
        assert_eq!(
            check_kept(&whole, &DataType::Date32, "d", "PostgreSQL"),
            Ok(())
        );
    }

    #[test]
    fn a_cut_inside_a_list_is_found() {
        let item = Arc::new(Field::new(
            "item",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ));
        let values = Arc::new(TimestampNanosecondArray::from(vec![1_000, 1_001]));
        let list: ArrayRef = Arc::new(
            ListArray::try_new(
                item,
                datafusion::arrow::buffer::OffsetBuffer::from_lengths([2]),
                values,
                None,
            )
            .expect("list"),
        );
        let to = DataType::List(Arc::new(Field::new("item", micros(), true)));
        assert_eq!(
            first_cut(&list, &to).as_deref(),
            Some("1970-01-01T00:00:00.000001001")
        );
    }
}
