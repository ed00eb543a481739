//! Turning one file's bytes into Arrow record batches, with errors that name the file and line.
//!
//! The fast path decodes the whole file at once. Only when that fails does the slow path go
//! record by record, to name the first bad line (`on_error: fail`) or to skip and count every
//! bad one (`on_error: skip`).

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::{csv as arrow_csv, json as arrow_json};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::SourceError;
use crate::pipeline::{FileFormat, OnError};

/// The rows of one file.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The file's rows, in the pinned schema.
    pub batches: Vec<RecordBatch>,
    /// How many rows were read.
    pub rows: u64,
    /// How many malformed rows were skipped.
    pub skipped: u64,
}

const BATCH_SIZE: usize = 8192;

/// Decodes a whole file in `format` into `schema`, keeping only the columns of `projection`
/// (indices into `schema`) where given: JSON and Parquet then decode only those.
pub fn decode(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
    on_error: OnError,
) -> Result<Decoded, SourceError> {
    let projected = match projection {
        Some(indices) => Arc::new(schema.project(indices).map_err(|e| SourceError::Read {
            file: file.to_string(),
            reason: e.to_string(),
        })?),
        None => Arc::clone(schema),
    };
    let batches = match format {
        FileFormat::Json => match json_fast(bytes, &projected) {
            Ok(batches) => Decoded::from_batches(batches, 0),
            Err(error) => json_slow(file, bytes, &projected, on_error, error)?,
        },
        FileFormat::Csv => {
            check_csv_header(file, bytes, schema)?;
            let mut decoded = match csv_fast(bytes, schema) {
                Ok(batches) => Decoded::from_batches(batches, 0),
                Err(error) => csv_slow(file, bytes, schema, on_error, error)?,
            };
            if let Some(indices) = projection {
                for batch in &mut decoded.batches {
                    *batch = batch.project(indices).map_err(|e| SourceError::Read {
                        file: file.to_string(),
                        reason: e.to_string(),
                    })?;
                }
            }
            decoded
        }
        FileFormat::Parquet => Decoded::from_batches(parquet(file, bytes, &projected)?, 0),
    };
    Ok(batches)
}

/// Infers a schema from a file's content.
pub fn infer_schema(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
) -> Result<SchemaRef, SourceError> {
    let err = |e: ArrowError| SourceError::Infer {
        file: file.to_string(),
        reason: e.to_string(),
    };
    let schema = match format {
        FileFormat::Json => {
            arrow_json::reader::infer_json_schema(Cursor::new(bytes.as_ref()), Some(1000))
                .map_err(err)?
                .0
        }
        FileFormat::Csv => {
            arrow_csv::reader::Format::default()
                .with_header(true)
                .infer_schema(Cursor::new(bytes.as_ref()), Some(1000))
                .map_err(err)?
                .0
        }
        FileFormat::Parquet => ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .map_err(|e| err(ArrowError::ExternalError(Box::new(e))))?
            .schema()
            .as_ref()
            .clone(),
    };
    if schema.fields().is_empty() {
        return Err(SourceError::Infer {
            file: file.to_string(),
            reason: "no columns found (is the file empty?)".into(),
        });
    }
    Ok(Arc::new(schema))
}

impl Decoded {
    fn from_batches(batches: Vec<RecordBatch>, skipped: u64) -> Self {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Self {
            batches,
            rows,
            skipped,
        }
    }
}

fn json_fast(bytes: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(BATCH_SIZE)
        .build_decoder()?;
    let mut batches = Vec::new();
    let mut offset = 0;
    loop {
        let read = decoder.decode(&bytes[offset..])?;
        offset += read;
        if let Some(batch) = decoder.flush()? {
            batches.push(batch);
        }
        if read == 0 || offset >= bytes.len() {
            break;
        }
    }
    if let Some(batch) = decoder.flush()? {
        batches.push(batch);
    }
    Ok(batches)
}

/// Goes line by line: every line that decodes alone is kept, the others fail the file or are
/// skipped and counted.
fn json_slow(
    file: &str,
    bytes: &[u8],
    schema: &SchemaRef,
    on_error: OnError,
    first_error: ArrowError,
) -> Result<Decoded, SourceError> {
    let mut good = Vec::with_capacity(bytes.len());
    let mut skipped = 0;
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match json_fast(line, schema) {
            Ok(_) => {
                good.extend_from_slice(line);
                good.push(b'\n');
            }
            Err(e) if on_error == OnError::Skip => {
                tracing::debug!(file, line = index + 1, error = %e, "skipping malformed JSON line");
                skipped += 1;
            }
            Err(e) => return Err(malformed(file, index + 1, &e)),
        }
    }
    match json_fast(&good, schema) {
        Ok(batches) => Ok(Decoded::from_batches(batches, skipped)),
        // Every line decodes alone but not together: report the original error.
        Err(_) => Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: first_error.to_string(),
        }),
    }
}

fn csv_fast(bytes: &Bytes, schema: &SchemaRef) -> Result<Vec<RecordBatch>, ArrowError> {
    arrow_csv::ReaderBuilder::new(Arc::clone(schema))
        .with_header(true)
        .with_batch_size(BATCH_SIZE)
        .build_buffered(Cursor::new(bytes.as_ref()))?
        .collect()
}

/// Goes record by record after the header line.
fn csv_slow(
    file: &str,
    bytes: &[u8],
    schema: &SchemaRef,
    on_error: OnError,
    first_error: ArrowError,
) -> Result<Decoded, SourceError> {
    let Some(header_end) = bytes.iter().position(|b| *b == b'\n').map(|p| p + 1) else {
        return Err(SourceError::Malformed {
            file: file.to_string(),
            line: Some(1),
            reason: first_error.to_string(),
        });
    };
    let mut batches = Vec::new();
    let mut skipped = 0;
    let mut pos = header_end;
    let mut line = 2;
    while pos < bytes.len() {
        let mut decoder = arrow_csv::ReaderBuilder::new(Arc::clone(schema))
            .with_header(false)
            .with_batch_size(1)
            .build_decoder();
        let consumed = match decoder.decode(&bytes[pos..]) {
            Ok(0) => bytes.len() - pos,
            Ok(n) => n,
            Err(e) if on_error == OnError::Skip => {
                // The record cannot even be split into fields: skip to the next line.
                tracing::debug!(file, line, error = %e, "skipping malformed CSV row");
                skipped += 1;
                let n = bytes[pos..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(bytes.len() - pos, |p| p + 1);
                pos += n;
                line += 1;
                continue;
            }
            Err(e) => return Err(malformed(file, line, &e)),
        };
        let record = &bytes[pos..pos + consumed];
        let result = decoder.decode(&[]).and_then(|_| decoder.flush());
        let blank = record.iter().all(u8::is_ascii_whitespace);
        match result {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => {}
            Err(_) if blank => {}
            Err(e) if on_error == OnError::Skip => {
                tracing::debug!(file, line, error = %e, "skipping malformed CSV row");
                skipped += 1;
            }
            Err(e) => return Err(malformed(file, line, &e)),
        }
        line += record.iter().filter(|b| **b == b'\n').count();
        pos += consumed;
    }
    Ok(Decoded::from_batches(batches, skipped))
}

/// A CSV file's header must name the schema's columns, in order.
fn check_csv_header(file: &str, bytes: &Bytes, schema: &SchemaRef) -> Result<(), SourceError> {
    let header_line = bytes
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.as_ref(), |p| &bytes[..p]);
    if header_line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let (header, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(header_line), Some(0))
        .map_err(|e| malformed(file, 1, &e))?;
    let found: Vec<&str> = header.fields().iter().map(|f| f.name().as_str()).collect();
    let expected: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if found != expected {
        return Err(SourceError::SchemaMismatch {
            file: file.to_string(),
            reason: format!(
                "its header has columns {found:?}, the source's schema has {expected:?}"
            ),
        });
    }
    Ok(())
}

fn parquet(file: &str, bytes: &Bytes, schema: &SchemaRef) -> Result<Vec<RecordBatch>, SourceError> {
    let err = |reason: String| SourceError::Malformed {
        file: file.to_string(),
        line: None,
        reason,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
        .map_err(|e| err(e.to_string()))?
        .with_batch_size(BATCH_SIZE);
    let file_schema = Arc::clone(reader.schema());
    let indices = schema
        .fields()
        .iter()
        .map(|field| {
            let (index, found) = file_schema.column_with_name(field.name()).ok_or_else(|| {
                SourceError::SchemaMismatch {
                    file: file.to_string(),
                    reason: format!("it has no column `{}`", field.name()),
                }
            })?;
            if found.data_type() != field.data_type() {
                return Err(SourceError::SchemaMismatch {
                    file: file.to_string(),
                    reason: format!(
                        "column `{}` is {} in the file but {} in the source's schema",
                        field.name(),
                        found.data_type(),
                        field.data_type()
                    ),
                });
            }
            Ok(index)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reader = reader.build().map_err(|e| err(e.to_string()))?;
    let target = Arc::new(Schema::new(schema.fields().clone()));
    reader
        .map(|batch| {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            let columns = indices
                .iter()
                .map(|i| Arc::clone(batch.column(*i)))
                .collect();
            RecordBatch::try_new(Arc::clone(&target), columns).map_err(|e| err(e.to_string()))
        })
        .collect()
}

fn malformed(file: &str, line: usize, error: &ArrowError) -> SourceError {
    SourceError::Malformed {
        file: file.to_string(),
        line: Some(line),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn json(text: &str, on_error: OnError) -> Result<Decoded, SourceError> {
        decode(
            "f.json",
            &Bytes::from(text.to_string()),
            FileFormat::Json,
            &schema(),
            None,
            on_error,
        )
    }

    fn csv(text: &str, on_error: OnError) -> Result<Decoded, SourceError> {
        decode(
            "f.csv",
            &Bytes::from(text.to_string()),
            FileFormat::Csv,
            &schema(),
            None,
            on_error,
        )
    }

    #[test]
    fn json_lines_decode() {
        let d = json("{\"id\":1,\"name\":\"a\"}\n{\"id\":2}\n", OnError::Fail).expect("decode");
        assert_eq!(d.rows, 2);
    }

    #[test]
    fn malformed_json_names_file_and_line() {
        let text = "{\"id\":1}\n{\"id\":2}\n{\"id\": oops}\n{\"id\":4}\n";
        let err = json(text, OnError::Fail)
            .expect_err("malformed")
            .to_string();
        assert!(err.contains("f.json line 3"), "{err}");
        let d = json(text, OnError::Skip).expect("skip");
        assert_eq!((d.rows, d.skipped), (3, 1));
        let err = json("{\"id\":\"x\"}\n", OnError::Fail)
            .expect_err("type")
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn malformed_csv_names_file_and_line() {
        let text = "id,name\n1,a\n2,b\nthree,c\n4,d\n";
        assert_eq!(
            csv("id,name\n1,a\n2,b\n", OnError::Fail).expect("ok").rows,
            2
        );
        let err = csv(text, OnError::Fail).expect_err("malformed").to_string();
        assert!(err.contains("f.csv line 4"), "{err}");
        let d = csv(text, OnError::Skip).expect("skip");
        assert_eq!((d.rows, d.skipped), (3, 1));
        let err = csv("id,name\n1,a\n2,b,extra\n", OnError::Fail)
            .expect_err("fields")
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn csv_header_must_match_the_schema() {
        let err = csv("id,title\n1,a\n", OnError::Fail)
            .expect_err("header")
            .to_string();
        assert!(err.contains("f.csv"), "{err}");
        assert!(err.contains("title"), "{err}");
    }
}
