//! File formats and declared schemas: the keywords a pipeline names a format by, what a source
//! does with a row that does not parse, and SQL type names read as Arrow types (docs/design.md
//! §3, §7). Used by the files source, the files sink, the output digest and replay.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::vocab::keyword_enum;

keyword_enum!(
    /// A file format.
    FileFormat {
        /// JSON lines: one object per line.
        Json => "json",
        /// CSV with a header row.
        Csv => "csv",
        /// Apache Parquet.
        Parquet => "parquet",
    }
);
keyword_enum!(
    /// What a source does with a malformed line or row.
    OnError {
        /// Stop the run with an error naming the file and line.
        Fail => "fail",
        /// Skip the row and count it in progress.
        Skip => "skip",
    }
);
keyword_enum!(
    /// The unit of an epoch number read into a `timestamp` column of JSON or CSV text
    /// (`epoch_unit:`): without one, a number there is refused, its unit unknown (Arrow would
    /// take it in the column's own unit, seconds read as nanoseconds).
    EpochUnit {
        /// Seconds since 1970-01-01T00:00:00Z (Unix time; `to_timestamp_seconds`).
        Seconds => "seconds",
        /// Milliseconds since the epoch (JavaScript's `Date.now()`, Kafka's timestamps).
        Milliseconds => "milliseconds",
        /// Microseconds since the epoch.
        Microseconds => "microseconds",
        /// Nanoseconds since the epoch.
        Nanoseconds => "nanoseconds",
    }
);

impl EpochUnit {
    /// How many decimal digits of a nanosecond count one unit spans (seconds: 9).
    pub fn nanosecond_digits(self) -> i32 {
        match self {
            Self::Seconds => 9,
            Self::Milliseconds => 6,
            Self::Microseconds => 3,
            Self::Nanoseconds => 0,
        }
    }
}

/// Whether `schema` has a timestamp column (at any depth) for `epoch_unit: unit` to read
/// numbers into; the error says what to declare.
pub fn check_epoch_unit(unit: EpochUnit, schema: &Schema) -> Result<(), String> {
    fn holds_timestamp(data_type: &DataType) -> bool {
        match data_type {
            DataType::Timestamp(_, _) => true,
            DataType::List(item) | DataType::LargeList(item) => holds_timestamp(item.data_type()),
            DataType::Struct(fields) => fields.iter().any(|f| holds_timestamp(f.data_type())),
            _ => false,
        }
    }
    if schema
        .fields()
        .iter()
        .any(|f| holds_timestamp(f.data_type()))
    {
        return Ok(());
    }
    Err(format!(
        "`epoch_unit: {unit}` reads numbers into `timestamp` columns, and the schema has none; \
         declare the column of epoch numbers `timestamp`"
    ))
}

#[allow(clippy::derivable_impls)]
impl Default for OnError {
    fn default() -> Self {
        Self::Fail
    }
}

impl FileFormat {
    /// The file extension of this format's data files.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "jsonl",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }
}

/// A declared column whose SQL type DataFusion does not read.
#[derive(Debug, thiserror::Error)]
#[error(
    "`schema:` key `{column}` has type `{type_name}`, which is not a SQL type DataFusion \
     reads{}",
    // In a `{ ... }` mapping, YAML ends a value at a comma: `decimal(10,2)` arrives cut.
    if let Some(open) = ['(', '<'].into_iter().find(|open| {
        let close = if *open == '(' { ')' } else { '>' };
        type_name.matches(*open).count() > type_name.matches(close).count()
    }) {
        format!(
            ": its `{open}` is not closed. Inside `{{ ... }}` a comma ends the value, so quote a \
             type with one: `{column}: '{}'`",
            if open == '(' { "decimal(10,2)" } else { "map<string,int>" }
        )
    } else if type_alias(type_name).is_some() {
        // The reason names the type meant; a nearest name by spelling could mislead (`int64`
        // is not `int`).
        format!(": {reason}")
    } else {
        match crate::vocab::nearest(
            &type_name.split('(').next().unwrap_or_default().trim().to_ascii_lowercase(),
            SQL_TYPE_NAMES,
        ) {
            Some(near) => format!(" (did you mean `{near}`?): {reason}"),
            None => format!(": {reason}"),
        }
    }
)]
pub struct TypeNameError {
    /// The column.
    pub column: String,
    /// The type as written.
    pub type_name: String,
    /// DataFusion's message.
    pub reason: String,
}

/// `data_type` by the SQL name a `schema:` declares it with (`bigint` for Int64, `double`
/// for Float64, `timestamp(6)` for microsecond timestamps), for messages; Arrow's own name
/// for a type without a plain SQL one.
pub fn sql_type_name(data_type: &DataType) -> String {
    use datafusion::arrow::datatypes::TimeUnit;
    match data_type {
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 => "tinyint unsigned".into(),
        DataType::UInt16 => "smallint unsigned".into(),
        DataType::UInt32 => "int unsigned".into(),
        DataType::UInt64 => "bigint unsigned".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Timestamp(unit, zone) => {
            let digits = match unit {
                TimeUnit::Second => "(0)",
                TimeUnit::Millisecond => "(3)",
                TimeUnit::Microsecond => "(6)",
                TimeUnit::Nanosecond => "",
            };
            let zoned = if zone.is_some() {
                " with time zone"
            } else {
                ""
            };
            format!("timestamp{digits}{zoned}")
        }
        DataType::Interval(_) => "interval".into(),
        DataType::Duration(unit) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            format!("duration({unit})")
        }
        // As a `schema:` declares them (`'bigint[]'`, `'struct<a bigint, b string>'`).
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            format!("{}[]", sql_type_name(item.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), sql_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Type names of other systems that a `schema:` may carry over, with whose they are, the SQL
/// type written here and a note: Spark's (`long`), Arrow's, pandas' and Polars' (`int64`,
/// `float64`), DuckDB's (`datetime`, `timestamp_ms`). (DataFusion reads PostgreSQL's `int8`,
/// `int4`, `float8` itself, at their widths.)
fn type_alias(type_name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    let thirty_two = " (32 bits; `double` is 64)";
    Some(match type_name.trim().to_ascii_lowercase().as_str() {
        "long" => ("Spark's", "bigint", ""),
        "short" => ("Spark's", "smallint", ""),
        "byte" => ("Spark's", "tinyint", ""),
        "binary" => ("Spark's", "bytea", ""),
        "int64" | "i64" => ("Arrow's", "bigint", ""),
        "int32" | "i32" => ("Arrow's", "int", ""),
        "int16" | "i16" => ("Arrow's", "smallint", ""),
        "uint64" | "u64" => ("Arrow's", "bigint unsigned", ""),
        "uint32" | "u32" => ("Arrow's", "int unsigned", ""),
        "float64" | "f64" => ("Arrow's", "double", ""),
        "float32" | "f32" => ("Arrow's", "float", thirty_two),
        "utf8" | "str" | "large_utf8" => ("Arrow's", "string", ""),
        "datetime" | "datetime64" | "datetime64[ns]" => ("DuckDB's and pandas'", "timestamp", ""),
        "timestamp_ns" => ("DuckDB's", "timestamp", " (nanoseconds)"),
        "timestamp_us" => ("DuckDB's", "timestamp(6)", ""),
        "timestamp_ms" => ("DuckDB's", "timestamp(3)", ""),
        "timestamp_s" => ("DuckDB's", "timestamp(0)", ""),
        "hugeint" => ("DuckDB's", "decimal(38,0)", ""),
        "json" | "jsonb" => ("a JSON", "string", ""),
        _ => return None,
    })
}

/// The SQL type names a `schema:` most often uses, for a "did you mean" hint (DataFusion
/// reads more: its SQL reference lists them).
const SQL_TYPE_NAMES: &[&str] = &[
    "bigint",
    "int",
    "integer",
    "smallint",
    "tinyint",
    "double",
    "float",
    "real",
    "decimal",
    "numeric",
    "varchar",
    "string",
    "text",
    "char",
    "boolean",
    "bool",
    "date",
    "time",
    "timestamp",
    "interval",
    "bytea",
    "binary",
    "varbinary",
];

/// Builds an Arrow schema from `(column, SQL type name)` pairs, reading the types as
/// DataFusion's SQL does (`bigint`, `double`, `string`, `timestamp`, `decimal(10,2)`, ...);
/// string types read as `Utf8`, as in every batch's session. A timestamp with a time zone
/// (`timestamptz`, `timestamp with time zone`, `timestamp(6) with time zone`) is an instant,
/// kept in UTC (`Timestamp(unit, "UTC")`): a Parquet column of instants in any zone reads
/// into it, and text with an offset is read at its instant.
pub async fn schema_from_sql_types(
    columns: &[(String, String)],
) -> Result<SchemaRef, TypeNameError> {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    // DataFusion gives `with time zone` the session's zone, and a session has none by default:
    // the zone would be dropped without a word.
    config.options_mut().execution.time_zone = Some("UTC".into());
    let ctx = SessionContext::new_with_config(config);
    let mut fields = Vec::with_capacity(columns.len());
    for (column, type_name) in columns {
        let bad = |reason: String| TypeNameError {
            column: column.clone(),
            type_name: type_name.clone(),
            reason,
        };
        // The name is read inside a statement: one type name, nothing after it.
        if type_name.contains(';') {
            return Err(bad("`;` does not belong in a type name".into()));
        }
        let plan = ctx
            .state()
            .create_logical_plan(&format!("SELECT CAST(NULL AS {type_name})"))
            .await
            .map_err(|e| {
                // Other systems' names for types SQL names otherwise.
                let hint = type_alias(type_name)
                    .map(|(whose, sql, note)| {
                        format!(" ({whose} `{type_name}` is `{sql}` here{note})")
                    })
                    .unwrap_or_default();
                bad(format!(
                    "{}{hint}",
                    e.to_string()
                        .trim_start_matches("This feature is not implemented: ")
                ))
            })?;
        fields.push(Field::new(
            column,
            plan.schema().field(0).data_type().clone(),
            true,
        ));
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 28 (8): Spark's `long` was refused without the name to write.
    #[tokio::test]
    async fn sparks_type_names_are_named_with_sqls() {
        for (spark, sql) in [
            ("long", "bigint"),
            ("short", "smallint"),
            ("byte", "tinyint"),
        ] {
            let err = schema_from_sql_types(&[("c".into(), spark.into())])
                .await
                .expect_err(spark);
            assert!(
                err.to_string()
                    .contains(&format!("Spark's `{spark}` is `{sql}` here")),
                "{err}"
            );
            schema_from_sql_types(&[("c".into(), sql.into())])
                .await
                .expect(sql);
        }
    }

    /// Walk 29 (2): `int64` was answered "did you mean `int`?" (32 bits: 3000000000 then
    /// does not fit), `float64` with `float` (32 bits: 16777217 read as 16777216) and
    /// `datetime` with `date`. Other systems' names are named with the type of the same
    /// width here (or, where DataFusion reads them itself, read as that width).
    #[tokio::test]
    async fn other_systems_type_names_keep_their_width() {
        for (name, meant) in [
            ("int64", DataType::Int64),
            ("i64", DataType::Int64),
            ("int32", DataType::Int32),
            ("int16", DataType::Int16),
            ("float64", DataType::Float64),
            ("f64", DataType::Float64),
            ("float32", DataType::Float32),
            ("float8", DataType::Float64),
            ("float4", DataType::Float32),
            ("int4", DataType::Int32),
            ("int2", DataType::Int16),
            (
                "datetime",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None),
            ),
            ("utf8", DataType::Utf8),
            ("json", DataType::Utf8),
            ("int8", DataType::Int64),
            (
                "timestamp_ms",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
            ),
        ] {
            match schema_from_sql_types(&[("c".into(), name.into())]).await {
                Ok(schema) => assert_eq!(schema.field(0).data_type(), &meant, "{name}"),
                Err(err) => {
                    let text = err.to_string();
                    let sql = text
                        .split(&format!("`{name}` is `"))
                        .nth(1)
                        .and_then(|rest| rest.split('`').next())
                        .unwrap_or_else(|| panic!("{name}: {text}"));
                    assert!(!text.contains("did you mean"), "{text}");
                    let schema = schema_from_sql_types(&[("c".into(), sql.into())])
                        .await
                        .expect(sql);
                    assert_eq!(schema.field(0).data_type(), &meant, "{name}: {text}");
                }
            }
        }
        let err = schema_from_sql_types(&[("c".into(), "int8".into())]).await;
        if let Err(err) = err {
            assert!(
                err.to_string()
                    .contains("`bigint` (PostgreSQL's and DuckDB's `int8`)"),
                "{err}"
            );
        }
    }

    /// Walk 29 (8): `{ m: map<string,int> }` arrived cut at its comma, as `decimal(10,2)`
    /// does, and was answered with the parser's words; both say the comma and the quotes.
    #[tokio::test]
    async fn a_type_cut_at_its_comma_says_to_quote_it() {
        for (cut, open) in [("decimal(10", "("), ("map<string", "<")] {
            let err = schema_from_sql_types(&[("m".into(), cut.into())])
                .await
                .expect_err(cut)
                .to_string();
            assert!(
                err.contains(&format!("its `{open}` is not closed"))
                    && err.contains("a comma ends the value, so quote a type with one"),
                "{err}"
            );
        }
    }

    /// Each name given reads back as the type it names.
    #[tokio::test]
    async fn sql_type_names_read_back_as_their_types() {
        for name in [
            "tinyint",
            "smallint",
            "int",
            "bigint",
            "tinyint unsigned",
            "bigint unsigned",
            "float",
            "double",
            "boolean",
            "string",
            "date",
            "decimal(10,2)",
            "timestamp",
            "timestamp(6)",
            "timestamp(3) with time zone",
            "bigint[]",
            "struct<a bigint, b string[]>",
        ] {
            let schema = schema_from_sql_types(&[("c".into(), name.into())])
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(sql_type_name(schema.field(0).data_type()), name);
        }
    }
}
