//! Message payloads (a Kafka record's value, a NATS message's payload) decoded into a source's
//! declared columns, as the files source decodes a file ([`super::Reader`]): a JSON object or a
//! CSV record (no header) per message, the same rules for a value that does not fit, and each
//! bad message named by the caller's own words for it (topic, partition and offset; stream and
//! sequence), or skipped and counted under `on_error: skip`.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, ListBuilder, StringBuilder, StructBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::{Reader, SourceError};
use crate::format::{EpochUnit, FileFormat, OnError};
use crate::vocab::keyword_enum;

keyword_enum!(
    /// How a message's payload becomes columns.
    PayloadFormat {
        /// The payload as bytes, beside the message's other columns.
        Raw => "raw",
        /// A JSON object per payload, decoded into the declared schema.
        Json => "json",
        /// A CSV record per payload (no header), decoded into the declared schema in its order.
        Csv => "csv",
    }
);

#[allow(clippy::derivable_impls)]
impl Default for PayloadFormat {
    fn default() -> Self {
        Self::Raw
    }
}

/// How payloads are decoded: into `schema`'s columns `wanted` (indices), in `format`
/// (`Json` or `Csv`).
pub struct PayloadDecoder<'a> {
    /// The payloads' format (`Json` or `Csv`; `Raw` is not decoded).
    pub format: PayloadFormat,
    /// The declared columns of a payload.
    pub schema: &'a SchemaRef,
    /// The columns to decode (indices into `schema`), in this order.
    pub wanted: &'a [usize],
    /// What to do with a payload that does not decode.
    pub on_error: OnError,
    /// The unit of a number in a timestamp column.
    pub epoch_unit: Option<EpochUnit>,
    /// With `Csv`: the character that escapes a quote inside a quoted field (`\\`, as Spark
    /// writes CSV), where it is not the quote doubled.
    pub escape: Option<u8>,
}

/// Payloads decoded: the rows of the payloads kept, in order.
pub struct DecodedPayloads {
    /// The rows, in the wanted columns.
    pub batches: Vec<RecordBatch>,
    /// Which payloads the rows are (indices into the input, in order), one row each.
    pub kept: Vec<usize>,
    /// Payloads skipped as malformed (`on_error: skip`).
    pub skipped: u64,
    /// Rows with a field the schema does not know.
    pub unknown_rows: u64,
    /// Those fields' names.
    pub unknown_fields: BTreeSet<String>,
}

impl PayloadDecoder<'_> {
    /// Says (at `info`, `SLUICE_LOG=info`) that payload `i` is skipped under `on_error: skip`,
    /// named by `blame` (its topic, partition and offset, or stream sequence) with the words
    /// `on_error: fail` would stop with. Decoded again alone to find them: skipped payloads
    /// are few, and the note is wanted only where they are looked for.
    fn note_skipped(
        &self,
        payloads: &[Option<&[u8]>],
        i: usize,
        blame: &dyn Fn(usize, &str) -> SourceError,
    ) {
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
        let failing = PayloadDecoder {
            on_error: OnError::Fail,
            ..*self
        };
        if let Err(error) = failing.decode_together(payloads, &[i], blame) {
            tracing::info!("skipping {}", skipped_words(&error));
        }
    }

    /// Decodes `payloads`; `blame(i, reason)` is the error for payload `i` that does not
    /// decode (`on_error: fail`). An absent or empty payload (a tombstone) does not decode.
    ///
    /// # Errors
    /// The first payload that does not decode, as `blame` names it (`on_error: fail`); a
    /// decoder that gives other than one row per payload.
    pub fn decode(
        &self,
        payloads: &[Option<&[u8]>],
        blame: &dyn Fn(usize, &str) -> SourceError,
    ) -> Result<DecodedPayloads, SourceError> {
        // Text that is not UTF-8 (Latin-1, as often) is said so, not as the JSON or CSV
        // reader's "invalid unicode code point" (walk 126 (6)): looked for only in a payload
        // that does not decode, never in the batch's every payload.
        let blame = &|i: usize, reason: &str| match payloads[i].and_then(not_utf8) {
            Some(why) => blame(i, &why),
            None => blame(i, reason),
        };
        let mut skipped = 0;
        let mut good: Vec<usize> = Vec::with_capacity(payloads.len());
        for (i, payload) in payloads.iter().enumerate() {
            // White space alone is no value either (it decodes to no row, which would let a
            // payload of two values elsewhere pass unseen, the count of rows still right).
            if payload.is_none_or(|p| p.trim_ascii().is_empty()) {
                let why = match payload {
                    None => "the message has no payload (a tombstone)",
                    Some([]) => "the message's payload is empty",
                    Some(_) => "the message's payload is white space only",
                };
                match self.on_error {
                    // A payload before it that does not decode is the first to name.
                    OnError::Fail => {
                        if !good.is_empty() {
                            let _before = self.decode_together(payloads, &good, blame)?;
                        }
                        return Err(blame(i, why));
                    }
                    OnError::Skip => {
                        skipped += 1;
                        // Named in the log as every other row skipped is.
                        if tracing::enabled!(tracing::Level::INFO) {
                            tracing::info!("skipping {}", skipped_words(&blame(i, why)));
                        }
                    }
                }
            } else {
                good.push(i);
            }
        }
        let mut unknown_rows = 0;
        let mut unknown_fields = BTreeSet::new();
        let (batches, kept) = match self.decode_together(payloads, &good, blame)? {
            Ok(decoded) if decoded.rows == good.len() as u64 => {
                unknown_rows += decoded.unknown_rows;
                unknown_fields.extend(decoded.unknown_fields);
                (decoded.batches, good)
            }
            _ => {
                // Some payloads do not decode and are skipped, or one holds other than one
                // value (`{"id":1}{"id":2}`, read as two rows): decode each alone, to keep each
                // row beside its message's columns.
                let mut batches = Vec::new();
                let mut kept = Vec::new();
                for i in good {
                    match self.decode_together(payloads, &[i], blame)? {
                        Ok(one) if one.rows == 1 => {
                            unknown_rows += one.unknown_rows;
                            unknown_fields.extend(one.unknown_fields);
                            batches.extend(one.batches);
                            kept.push(i);
                        }
                        Ok(other) => {
                            let why = format!(
                                "the payload holds {} {}, where a message holds one",
                                other.rows,
                                match self.format {
                                    PayloadFormat::Csv => "CSV records",
                                    _ => "JSON values",
                                }
                            );
                            if self.on_error == OnError::Fail {
                                return Err(blame(i, &why));
                            }
                            skipped += 1;
                            if tracing::enabled!(tracing::Level::INFO) {
                                tracing::info!("skipping {}", skipped_words(&blame(i, &why)));
                            }
                        }
                        Err(_) => {
                            skipped += 1;
                            self.note_skipped(payloads, i, blame);
                        }
                    }
                }
                (batches, kept)
            }
        };
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != kept.len() {
            return Err(SourceError::Read {
                file: String::new(),
                reason: format!("{rows} rows decoded from {} payloads", kept.len()),
            });
        }
        Ok(DecodedPayloads {
            batches,
            kept,
            skipped,
            unknown_rows,
            unknown_fields,
        })
    }

    /// Decodes the payloads `which` (indices into `payloads`) as one text: `Ok(Err(n))` when
    /// `n` were skipped as malformed.
    fn decode_together(
        &self,
        payloads: &[Option<&[u8]>],
        which: &[usize],
        blame: &dyn Fn(usize, &str) -> SourceError,
    ) -> Result<Result<super::Decoded, u64>, SourceError> {
        let format = match self.format {
            PayloadFormat::Csv => FileFormat::Csv,
            _ => FileFormat::Json,
        };
        let mut text = Vec::new();
        let mut first_line = 1;
        if format == FileFormat::Csv {
            let header: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            text.extend_from_slice(header.join(",").as_bytes());
            text.push(b'\n');
            first_line = 2;
        }
        for &i in which {
            let payload = payloads[i].unwrap_or_default();
            if format == FileFormat::Json && payload.contains(&b'\n') {
                // A JSON value may span lines; the decoder reads one value per line. In one
                // value a line break can only be whitespace (a string holds it escaped): put
                // on one line as its bytes, never written again through `serde_json`'s numbers
                // (a `f64` for every number past `u64` or with a fraction, cut to 17 digits).
                match serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
                    Ok(_) => text.extend(payload.iter().map(|&b| match b {
                        b'\n' | b'\r' => b' ',
                        b => b,
                    })),
                    Err(e) => {
                        if self.on_error == OnError::Fail {
                            return Err(blame(i, &e.to_string()));
                        }
                        return Ok(Err(1));
                    }
                }
            } else {
                text.extend_from_slice(payload);
            }
            text.push(b'\n');
        }
        let reader = Reader {
            format,
            schema: Arc::clone(self.schema),
            projection: Some(self.wanted.to_vec()),
            on_error: self.on_error,
            rescued: None,
            epoch_unit: self.epoch_unit,
            delimiter: b',',
            header: true,
            null_value: None,
            inferred: false,
            encoding: None,
            escape: self.escape,
        };
        match reader.decode("", "", &Bytes::from(text)) {
            Ok(decoded) if decoded.skipped > 0 => Ok(Err(decoded.skipped)),
            Ok(decoded) => Ok(Ok(decoded)),
            // A quoted field going on after its closing quote is refused whatever `on_error`
            // says in a file, where it leaves where records end in doubt; in a message it is
            // one record, skipped as any other.
            Err(SourceError::Malformed { reason, .. })
                if self.on_error == OnError::Skip && reason.contains(super::QUOTE_GOES_ON) =>
            {
                Ok(Err(1))
            }
            Err(SourceError::Malformed {
                line: Some(line),
                reason,
                ..
            }) => {
                // A payload cut short makes a JSON decoder read on into the next line and
                // fail there: the payload to blame is the first that fails alone.
                if which.len() > 1 {
                    for &i in which {
                        let _decoded_alone = self.decode_together(payloads, &[i], blame)?;
                    }
                }
                let blamed = match which {
                    [only] => Some(*only),
                    _ => line
                        .checked_sub(first_line)
                        .and_then(|at| which.get(at))
                        .copied(),
                };
                Err(blame(blamed.unwrap_or(which[0]), &reason))
            }
            Err(e) => Err(e),
        }
    }
}

/// Why `payload` is no text a decoded payload holds, where it is not UTF-8 (a payload is
/// whole: a character cut at its end is no UTF-8 either).
fn not_utf8(payload: &[u8]) -> Option<String> {
    let at = std::str::from_utf8(payload).err()?.valid_up_to();
    Some(format!(
        "the payload is not UTF-8 text: byte {} is 0x{:02X}, which no UTF-8 text has there \
         (Latin-1 or Windows-1252 text, as often); a decoded payload is read as UTF-8: have its \
         producer write UTF-8, or read it as bytes with `format: raw`",
        at + 1,
        payload[at]
    ))
}

/// `error`, for a payload skipped, without the advice to skip (the Kafka and NATS sources'
/// own, or the files'): skipping is what is done.
fn skipped_words(error: &SourceError) -> String {
    super::without_skip_hint(&error.to_string())
}

/// The fields of a message header: `key` (text) and `value` (bytes, null where absent).
fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The type of a `headers` column: a list of `{key, value}` (Spark's Kafka `headers`).
pub fn headers_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(header_fields()),
        true,
    )))
}

/// A `headers` column ([`headers_type`]) of one row per message, each its headers in order.
///
/// # Errors
/// An Arrow builder that is not the type it was made as (a bug), in words.
pub fn headers_array<'a>(
    messages: impl Iterator<Item = &'a [(String, Option<Vec<u8>>)]>,
) -> Result<ArrayRef, String> {
    let mut b = ListBuilder::new(StructBuilder::from_fields(header_fields(), 0));
    for headers in messages {
        // A message without headers has none: null, as Spark's Kafka source gives it (audit
        // 91c: `[]`, so `headers IS NULL` was false).
        if headers.is_empty() {
            b.append(false);
            continue;
        }
        let entries = b.values();
        for (key, value) in headers {
            entries
                .field_builder::<StringBuilder>(0)
                .ok_or("headers key builder")?
                .append_value(key);
            entries
                .field_builder::<BinaryBuilder>(1)
                .ok_or("headers value builder")?
                .append_option(value.as_deref());
            entries.append(true);
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

/// The columns a `json` or `csv` payload decodes into, declared as `schema:` (column name to
/// SQL type, in order), for source `name`; `None` where none is declared. An `epoch_unit`
/// needs a timestamp column to read numbers into.
///
/// # Errors
/// [`SourceError::Config`] for a type DataFusion does not read, or an `epoch_unit` with no
/// timestamp column.
pub async fn declared_schema(
    name: &str,
    schema: Option<&indexmap::IndexMap<String, String>>,
    epoch_unit: Option<EpochUnit>,
) -> Result<Option<SchemaRef>, SourceError> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let config = |reason: String| SourceError::Config {
        source_name: name.to_string(),
        reason,
    };
    if schema.is_empty() {
        return Err(config(
            "its `schema:` declares no columns: list at least one (`name: type`)".into(),
        ));
    }
    let columns: Vec<(String, String)> =
        schema.iter().map(|(c, t)| (c.clone(), t.clone())).collect();
    let schema = crate::format::schema_from_sql_types(&columns)
        .await
        .map_err(|e| config(e.to_string()))?;
    if let Some(unit) = epoch_unit {
        crate::format::check_epoch_unit(unit, &schema).map_err(config)?;
    }
    Ok(Some(schema))
}

/// A `metadata_columns` entry: the message's metadata `key` (`offset`), given as the column
/// `column`: `offset`, or `offset AS kafka_offset` where the decoded payload has a column of
/// that name already (RisingWave's `INCLUDE offset AS kafka_offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumn {
    /// What the column holds, by the source's name for it.
    pub key: String,
    /// The column's name.
    pub column: String,
}

/// The quote escape of CSV payloads, as a Kafka or NATS source's `escape:` writes it (one
/// ASCII character, `'\\'` for Spark's `\"`; `"` is a quote doubled, RFC 4180's way and the
/// default): the byte, `None` for `"` or where absent.
///
/// # Errors
/// [`super::ConfigError`] at `escape` where the payloads are not CSV, or the character cannot
/// escape a quote (a comma, a line break, more than one character).
pub fn csv_escape(
    written: Option<&str>,
    format: PayloadFormat,
) -> Result<Option<u8>, super::ConfigError> {
    use super::ConfigError;
    let Some(written) = written else {
        return Ok(None);
    };
    if format != PayloadFormat::Csv {
        return Err(ConfigError::at(
            "escape",
            "`escape` escapes quotes inside CSV fields: it is for `format: csv`",
        ));
    }
    match written.as_bytes() {
        [b'"'] => Ok(None),
        [byte] if byte.is_ascii() && !matches!(byte, b'\n' | b'\r' | b',') => Ok(Some(*byte)),
        _ => Err(ConfigError::at(
            "escape",
            format!(
                "`escape: {}` cannot escape a CSV quote: give one ASCII character other than \
                 `,` or a line break ('\\' for a backslash, in single quotes)",
                written.escape_default()
            ),
        )),
    }
}

/// Reads a source's `metadata_columns` entries against the metadata keys `known` it gives and
/// the decoded payload's columns `decoded`.
///
/// # Errors
/// [`super::ConfigError`] at `metadata_columns.N`: an entry that is not `key` or
/// `key AS column`, a key the source does not give, a column named twice or named as a
/// decoded column too (with the `AS` that renames it).
pub fn metadata_columns(
    entries: &[String],
    known: &[&str],
    decoded: &indexmap::IndexMap<String, String>,
) -> Result<Vec<MetadataColumn>, super::ConfigError> {
    use super::ConfigError;
    let mut columns = Vec::with_capacity(entries.len());
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("metadata_columns.{i}");
        let words: Vec<&str> = entry.split_whitespace().collect();
        let (key, column) = match words.as_slice() {
            [key] => (*key, *key),
            [key, as_, column] if as_.eq_ignore_ascii_case("as") => (*key, *column),
            _ => {
                return Err(ConfigError::at(
                    &at,
                    format!(
                        "`{entry}` is not a metadata column: give its name (`offset`), or its \
                         name and the column to give it as (`offset AS kafka_offset`)"
                    ),
                ));
            }
        };
        if !known.contains(&key) {
            return Err(ConfigError::at(
                &at,
                crate::vocab::unknown_keyword(key, known),
            ));
        }
        if decoded.contains_key(column) {
            return Err(ConfigError::at(
                &at,
                format!(
                    "`{column}` is a column of the decoded `schema:` too, and a source's columns \
                     have distinct names: give the metadata column another name, `{key} AS \
                     {key}_meta` (say)"
                ),
            ));
        }
        if !seen.insert(column.to_string()) {
            return Err(ConfigError::at(&at, format!("`{column}` is named twice")));
        }
        columns.push(MetadataColumn {
            key: key.to_string(),
            column: column.to_string(),
        });
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// A decoder of JSON payloads into `schema`'s first column, failing on a bad one.
    fn json_decoder(schema: &SchemaRef) -> PayloadDecoder<'_> {
        PayloadDecoder {
            format: PayloadFormat::Json,
            schema,
            wanted: &[0],
            on_error: OnError::Fail,
            epoch_unit: None,
            escape: None,
        }
    }

    /// Audit 91c: a message without headers has null `headers` (Spark's), not `[]`.
    #[test]
    fn a_message_without_headers_has_null_headers() {
        use datafusion::arrow::array::{Array, AsArray};
        let with = vec![
            ("k".to_string(), Some(b"v".to_vec())),
            ("n".to_string(), None),
        ];
        let none = Vec::new();
        let array = headers_array([with.as_slice(), none.as_slice()].into_iter()).expect("headers");
        assert!(array.is_valid(0) && array.is_null(1));
        assert_eq!(array.as_list::<i32>().value(0).len(), 2);
    }

    /// Payload `i`'s error, named `offset i`.
    fn blame(i: usize, reason: &str) -> SourceError {
        SourceError::Malformed {
            file: format!("offset {i}"),
            line: None,
            reason: reason.to_string(),
        }
    }

    /// Walk 42 (4): with `on_error: fail`, an empty payload was named before a payload ahead
    /// of it that does not decode; the first bad payload is named, whatever is wrong with it.
    #[test]
    fn the_first_bad_payload_is_named() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let decoder = json_decoder(&schema);
        let payloads: Vec<Option<&[u8]>> = vec![
            Some(b"{\"n\":1}"),
            Some(b"{not json"),
            Some(b"{\"n\":3}"),
            Some(b""),
        ];

        let err = decoder
            .decode(&payloads, &blame)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.starts_with("offset 1"), "{err}");
        // With no bad payload before it, the empty one is named.
        let err = decoder
            .decode(&payloads[2..], &blame)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.starts_with("offset 1") && err.contains("empty"),
            "{err}"
        );
    }

    /// Walk 54 (2, 4): a payload that is a JSON array was refused as a file that is one JSON
    /// array (no message named, advice to rewrite a file), and a payload cut short was said
    /// at "line 2" of no file. Each is named by its message, in a payload's words, and under
    /// `on_error: skip` skipped alone.
    #[test]
    fn a_payload_that_is_not_one_object_is_named_by_its_message() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let decoder = json_decoder(&schema);

        for (bad, said) in [
            (
                &b"[{\"n\":2}]"[..],
                "expected a JSON object, found an array",
            ),
            (&b"{\"n\":"[..], "ends inside the value"),
            // Walk 126 (5): placed at column 1, and said only as "found a number".
            (&b"{\"n\":3} x"[..], "(column 9)"),
            (
                &b"0,b"[..],
                "found a number, and more text follows it (`0,b`): CSV",
            ),
        ] {
            for payloads in [vec![Some(bad)], vec![Some(&b"{\"n\":1}"[..]), Some(bad)]] {
                let at = payloads.len() - 1;
                let err = decoder
                    .decode(&payloads, &blame)
                    .err()
                    .expect("refused")
                    .to_string();
                assert!(
                    err.starts_with(&format!("offset {at}"))
                        && err.contains(said)
                        && !err.contains("line")
                        && !err.contains("file"),
                    "{err}"
                );
            }
            let skipping = PayloadDecoder {
                on_error: OnError::Skip,
                ..decoder
            };
            let payloads = vec![Some(&b"{\"n\":1}"[..]), Some(bad), Some(&b"{\"n\":3}"[..])];
            let decoded = skipping.decode(&payloads, &blame).expect("skipped");
            assert_eq!((decoded.kept, decoded.skipped), (vec![0, 2], 1));
        }
    }

    /// A JSON payload over several lines was written again through `serde_json`'s numbers
    /// before decoding: a decimal's digits past the 17th and a 30-digit integer were rounded
    /// in silence, where the same payload on one line reads exactly. It reads exactly too.
    #[test]
    fn a_payload_over_several_lines_keeps_its_numbers_exactly() {
        use datafusion::arrow::array::AsArray as _;
        use datafusion::arrow::datatypes::Decimal128Type;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("amount", DataType::Decimal128(18, 6), true),
            Field::new("big", DataType::Decimal128(38, 0), true),
        ]));
        let decoder = PayloadDecoder {
            wanted: &[0, 1],
            ..json_decoder(&schema)
        };
        let one =
            &b"{\"amount\": 123456789012.123456, \"big\": 123456789012345678901234567890}"[..];
        let spread =
            &b"{\"amount\": 123456789012.123456,\r\n \"big\": 123456789012345678901234567890\n}"[..];
        for payload in [one, spread] {
            let decoded = decoder.decode(&[Some(payload)], &blame).expect("decodes");
            let batch = &decoded.batches[0];
            let amount = batch.column(0).as_primitive::<Decimal128Type>().value(0);
            let big = batch.column(1).as_primitive::<Decimal128Type>().value(0);
            assert_eq!(
                (amount, big),
                (
                    123_456_789_012_123_456,
                    123_456_789_012_345_678_901_234_567_890
                ),
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    /// Walk 76 (1): a payload of two JSON objects (`{"id":1}{"id":2}`, with or without a
    /// space) decoded as two rows, and the batch failed on "2 rows decoded from 1 payloads"
    /// under `on_error: skip` too, naming no message, on every run; beside a payload that did
    /// not decode, it was dropped without a word. It is a bad payload like any other: named by
    /// its message under `on_error: fail`, skipped and counted under `skip`. So is a CSV
    /// payload of two records.
    #[test]
    fn a_payload_of_more_than_one_value_is_a_bad_payload() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let decoder = json_decoder(&schema);
        for bad in [&b"{\"n\":1}{\"n\":2}"[..], &b"{\"n\":1} {\"n\":2}"[..]] {
            for payloads in [
                vec![Some(bad)],
                vec![Some(&b"{\"n\":0}"[..]), Some(bad), Some(&b"{\"n\":3}"[..])],
            ] {
                let at = usize::from(payloads.len() > 1);
                let err = decoder
                    .decode(&payloads, &blame)
                    .err()
                    .expect("refused")
                    .to_string();
                assert!(
                    err.starts_with(&format!("offset {at}"))
                        && err
                            .contains("the payload holds 2 JSON values, where a message holds one"),
                    "{err}"
                );
            }
            let skipping = PayloadDecoder {
                on_error: OnError::Skip,
                ..decoder
            };
            for (payloads, kept) in [
                (
                    vec![Some(&b"{\"n\":0}"[..]), Some(bad), Some(&b"{\"n\":3}"[..])],
                    vec![0, 2],
                ),
                // Beside a payload that does not decode (each is then decoded alone).
                (
                    vec![
                        Some(&b"{\"n\":0}"[..]),
                        Some(bad),
                        Some(&b"null"[..]),
                        Some(&b"{\"n\":3}"[..]),
                    ],
                    vec![0, 3],
                ),
                // Beside white space, which decodes to no row: the count of rows balanced.
                (
                    vec![
                        Some(&b"{\"n\":0}"[..]),
                        Some(bad),
                        Some(&b" "[..]),
                        Some(&b"{\"n\":3}"[..]),
                    ],
                    vec![0, 3],
                ),
            ] {
                let decoded = skipping.decode(&payloads, &blame).expect("skipped");
                let n: i64 = decoded
                    .batches
                    .iter()
                    .map(|b| {
                        datafusion::arrow::compute::sum(
                            b.column(0)
                                .as_any()
                                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                                .expect("n"),
                        )
                        .unwrap_or(0)
                    })
                    .sum();
                assert_eq!(
                    (decoded.kept, decoded.skipped, n),
                    (kept, (payloads.len() - 2) as u64, 3)
                );
            }
        }
        let csv = PayloadDecoder {
            format: PayloadFormat::Csv,
            ..decoder
        };
        let err = csv
            .decode(&[Some(&b"1"[..]), Some(&b"2\n3"[..])], &blame)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.starts_with("offset 1") && err.contains("holds 2 CSV records"),
            "{err}"
        );
    }

    /// Walk 126 (6): a Latin-1 payload was said "invalid unicode code point" (JSON) or
    /// "invalid UTF-8 data and field 2" (CSV): said as text not UTF-8, with its byte.
    #[test]
    fn a_payload_not_utf8_is_said_so() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        for format in [PayloadFormat::Json, PayloadFormat::Csv] {
            let decoder = PayloadDecoder {
                format,
                ..json_decoder(&schema)
            };
            let latin1: &[u8] = match format {
                PayloadFormat::Json => b"{\"s\":\"caf\xe9\"}",
                _ => b"caf\xe9",
            };
            let err = decoder
                .decode(&[Some(latin1)], &blame)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                err.contains("the payload is not UTF-8 text") && err.contains("0xE9"),
                "{format}: {err}"
            );
        }
    }

    /// Walk 126 (1): a CSV payload whose quoted field goes on after its closing quote
    /// (`1,"x"y,3`, Spark's `"a \"b\" c"`) was written changed (`xy`, `a \b\" c"`), exit 0,
    /// under `on_error: fail`, where a file's line is refused; and no `escape:` read Spark's.
    /// It is a bad payload, named by its message, skipped and counted under `skip`; with
    /// `escape: '\'` the value reads whole.
    #[test]
    fn a_csv_payload_whose_quoted_field_goes_on_is_a_bad_payload() {
        use datafusion::arrow::array::AsArray as _;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("amt", DataType::Int64, true),
        ]));
        let csv = PayloadDecoder {
            format: PayloadFormat::Csv,
            schema: &schema,
            wanted: &[0, 1, 2],
            on_error: OnError::Fail,
            epoch_unit: None,
            escape: None,
        };
        let spark = &br#"2,"a \"b\" c",5"#[..];
        for (bad, hint) in [
            (&br#"1,"x"y,3"#[..], "written twice"),
            (spark, "escape: '\\'"),
        ] {
            let payloads = vec![Some(&b"0,ok,1"[..]), Some(bad), Some(&b"3,\"fine\",4"[..])];
            let err = csv
                .decode(&payloads, &blame)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                err.starts_with("offset 1")
                    && err.contains(crate::source::QUOTE_GOES_ON)
                    && err.contains(hint),
                "{err}"
            );
            let skipping = PayloadDecoder {
                on_error: OnError::Skip,
                ..csv
            };
            let decoded = skipping.decode(&payloads, &blame).expect("skipped");
            assert_eq!((decoded.kept, decoded.skipped), (vec![0, 2], 1));
        }
        let escaped = PayloadDecoder {
            escape: Some(b'\\'),
            ..csv
        };
        let decoded = escaped.decode(&[Some(spark)], &blame).expect("read");
        assert_eq!(
            decoded.batches[0].column(1).as_string::<i32>().value(0),
            r#"a "b" c"#
        );
    }
}
