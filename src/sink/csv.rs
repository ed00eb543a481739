//! CSV as the files sink writes it: a header line, then one record per row, each ended by
//! `\n`, with fields quoted as RFC 4180 says (a field holding the delimiter `,`, a quote or a
//! line break is put in quotes, a quote in it doubled).
//!
//! A null is an empty field and an empty string a quoted empty field (`""`), as DuckDB's and
//! Spark's CSV writers write them, so a reader that tells the two apart (Spark by default,
//! DuckDB with `allow_quoted_nulls = false`) reads back what was written: in an update-mode
//! changelog, the group of `''` and the group of null stay two groups. Where a record has one
//! field, a null is written as `""` too: an empty line is no record to most readers (Arrow's,
//! Spark's), and a lost row is worse than an empty string read as a null. Values are
//! formatted as Arrow's CSV writer formats them (RFC 3339 times, `true`/`false`); arrow-csv
//! cannot quote an empty string apart from a null, hence this writer.

use std::io::Write;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Writes record batches of one schema as one CSV file: the header with the first call to
/// [`CsvWriter::write`] (an empty batch writes the header alone).
pub(super) struct CsvWriter<W: Write> {
    out: W,
    header_written: bool,
    /// One record's bytes, reused.
    record: Vec<u8>,
    /// One field's text, reused.
    text: String,
}

impl<W: Write> CsvWriter<W> {
    pub(super) fn new(out: W) -> Self {
        Self {
            out,
            header_written: false,
            record: Vec::new(),
            text: String::new(),
        }
    }

    /// Appends `rows` (the header first, the first time).
    ///
    /// # Errors
    /// A list, struct or map column (a CSV field is one value: the sink refuses such a column
    /// before its first batch), a value Arrow cannot format, or the writer's own error.
    pub(super) fn write(&mut self, rows: &RecordBatch) -> Result<(), ArrowError> {
        if !self.header_written {
            self.write_header(rows.schema_ref())?;
            self.header_written = true;
        }
        let options = FormatOptions::default().with_null("");
        let formatters = rows
            .columns()
            .iter()
            .zip(rows.schema_ref().fields())
            .map(|(column, field)| {
                if column.data_type().is_nested() {
                    return Err(ArrowError::CsvError(format!(
                        "column `{}` is {}, which a CSV field cannot hold",
                        field.name(),
                        column.data_type()
                    )));
                }
                ArrayFormatter::try_new(column.as_ref(), &options)
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Nulls as the values say (a `Null` column, a dictionary's null values), not only
        // the array's own null buffer.
        let nulls: Vec<_> = rows.columns().iter().map(|c| c.logical_nulls()).collect();
        let one_field = formatters.len() == 1;
        for row in 0..rows.num_rows() {
            self.record.clear();
            for (i, (nulls, formatter)) in nulls.iter().zip(&formatters).enumerate() {
                if i > 0 {
                    self.record.push(b',');
                }
                let null = nulls.as_ref().is_some_and(|n| n.is_null(row));
                if null && !one_field {
                    continue;
                }
                self.text.clear();
                formatter
                    .value(row)
                    .write(&mut self.text)
                    .map_err(|e| ArrowError::CsvError(format!("row {}: {e}", row + 1)))?;
                push_field(&mut self.record, &self.text);
            }
            self.record.push(b'\n');
            self.out.write_all(&self.record)?;
        }
        Ok(())
    }

    fn write_header(&mut self, schema: &Schema) -> Result<(), ArrowError> {
        self.record.clear();
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                self.record.push(b',');
            }
            push_field(&mut self.record, field.name());
        }
        self.record.push(b'\n');
        self.out.write_all(&self.record)?;
        Ok(())
    }
}

/// Appends `text` as one field: in quotes (a quote in it doubled) where it is empty or holds
/// the delimiter, a quote or a line break; as it is otherwise.
fn push_field(record: &mut Vec<u8>, text: &str) {
    let needs_quotes = text.is_empty()
        || text
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !needs_quotes {
        record.extend_from_slice(text.as_bytes());
        return;
    }
    record.push(b'"');
    for b in text.bytes() {
        if b == b'"' {
            record.push(b'"');
        }
        record.push(b);
    }
    record.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    fn written(batch: &RecordBatch) -> String {
        let mut out = Vec::new();
        let mut writer = CsvWriter::new(&mut out);
        writer.write(batch).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn an_empty_string_is_quoted_and_a_null_is_an_empty_field() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some(""),
            None,
            Some("x,y"),
            Some("q\"z"),
            Some("two\nlines"),
        ]));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(5),
            Some(6),
        ]));
        let batch = RecordBatch::try_from_iter([("s", s), ("n", n)]).expect("batch");
        // What DuckDB's COPY ... TO 'x.csv' writes for the same rows.
        assert_eq!(
            written(&batch),
            "s,n\na,1\n\"\",2\n,3\n\"x,y\",\n\"q\"\"z\",5\n\"two\nlines\",6\n"
        );
    }

    #[test]
    fn a_null_without_a_null_buffer_is_an_empty_field() {
        use datafusion::arrow::array::{DictionaryArray, NullArray};
        use datafusion::arrow::datatypes::Int32Type;
        let note: ArrayRef = Arc::new(NullArray::new(2));
        let values = StringArray::from(vec![Some("x"), None]);
        let keys = datafusion::arrow::array::Int32Array::from(vec![0, 1]);
        let label: ArrayRef = Arc::new(
            DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).expect("dictionary"),
        );
        let batch = RecordBatch::try_from_iter([("note", note), ("label", label)]).expect("batch");
        assert_eq!(written(&batch), "note,label\n,x\n,\n");
    }

    #[test]
    fn a_null_alone_in_its_record_is_not_an_empty_line() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None]));
        let batch = RecordBatch::try_from_iter([("s", s)]).expect("batch");
        assert_eq!(written(&batch), "s\na\n\"\"\n");
    }

    #[test]
    fn an_empty_batch_writes_the_header_once() {
        let s: ArrayRef = Arc::new(StringArray::from(Vec::<Option<&str>>::new()));
        let batch = RecordBatch::try_from_iter([("a \"b\"", s)]).expect("batch");
        let mut out = Vec::new();
        let mut writer = CsvWriter::new(&mut out);
        writer.write(&batch).expect("write");
        writer.write(&batch).expect("write");
        assert_eq!(String::from_utf8(out).expect("utf-8"), "\"a \"\"b\"\"\"\n");
    }
}
