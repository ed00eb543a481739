//! Turning one file's bytes into Arrow record batches, with errors that name the file and line.
//!
//! The fast path decodes the whole file at once. Only when that fails does the slow path go
//! record by record, to name the first bad line (`on_error: fail`) or to skip and count every
//! bad one (`on_error: skip`).
//!
//! JSON lines and CSV files are decompressed first by their name's extension, as Spark, DuckDB
//! and DataFusion read them (`.gz`, `.bz2`, `.xz`, `.zst` or `.zstd`), so lines are numbered in
//! the decompressed text. Compressed bytes under a name without that extension, or bytes that
//! do not decompress as their extension says, are refused with what they look like.

use std::io::{Cursor, Read};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::{csv as arrow_csv, json as arrow_json};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
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

/// A compression JSON lines and CSV files are read in.
struct Codec {
    /// Its name in messages.
    name: &'static str,
    /// The extensions that mark a file compressed with it, the usual one first.
    extensions: &'static [&'static str],
    /// The bytes its data starts with.
    magic: &'static [u8],
    /// Its decoder.
    kind: FileCompressionType,
}

/// The compressions read (DataFusion's), by extension and by the bytes their data starts with.
static CODECS: [Codec; 4] = [
    Codec {
        name: "gzip",
        extensions: &["gz"],
        magic: &[0x1f, 0x8b],
        kind: FileCompressionType::GZIP,
    },
    Codec {
        name: "bzip2",
        extensions: &["bz2"],
        magic: b"BZh",
        kind: FileCompressionType::BZIP2,
    },
    Codec {
        name: "xz",
        extensions: &["xz"],
        magic: &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        kind: FileCompressionType::XZ,
    },
    Codec {
        name: "zstd",
        extensions: &["zst", "zstd"],
        magic: &[0x28, 0xb5, 0x2f, 0xfd],
        kind: FileCompressionType::ZSTD,
    },
];

impl Codec {
    /// The compression a file's name gives it, by its last extension (in any case).
    fn of_name(file: &str) -> Option<&'static Codec> {
        let name = file.rsplit('/').next().unwrap_or(file);
        let (_, extension) = name.rsplit_once('.')?;
        CODECS.iter().find(|c| {
            c.extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(extension))
        })
    }

    /// The compression `bytes` look compressed with, by the bytes they start with.
    fn of_content(bytes: &[u8]) -> Option<&'static Codec> {
        CODECS.iter().find(|c| {
            if !bytes.starts_with(c.magic) {
                return false;
            }
            if c.kind != FileCompressionType::BZIP2 {
                return true;
            }
            // Text can start with `BZh`, not with a block size digit and then the magic of a
            // block (or of the end of an empty stream) as well.
            let level = bytes.get(3).is_some_and(|b| (b'1'..=b'9').contains(b));
            let next = bytes.get(4..10);
            level
                && (next == Some(&[0x31, 0x41, 0x59, 0x26, 0x53, 0x59][..])
                    || next == Some(&[0x17, 0x72, 0x45, 0x38, 0x50, 0x90][..]))
        })
    }

    /// The usual extension, without its dot.
    fn extension(&self) -> &'static str {
        self.extensions[0]
    }
}

/// A file's bytes as its format reads them: JSON lines and CSV decompressed by the name's
/// extension. Compressed bytes under a name that does not say so, and bytes that do not
/// decompress as the name says, are refused with what they look like.
fn decompress(file: &str, bytes: &Bytes, format: FileFormat) -> Result<Bytes, SourceError> {
    let refuse = |reason: String| SourceError::Malformed {
        file: file.to_string(),
        line: None,
        reason,
    };
    let found = Codec::of_content(bytes);
    if format == FileFormat::Parquet {
        // Parquet compresses inside the file, which is read as it is.
        return match found {
            Some(codec) => Err(refuse(format!(
                "looks like {}-compressed data, not a Parquet file; Parquet files are read as \
                 they are (Parquet compresses inside the file)",
                codec.name
            ))),
            None => Ok(bytes.clone()),
        };
    }
    let Some(named) = Codec::of_name(file) else {
        return match found {
            Some(codec) => Err(refuse(format!(
                "looks like {}-compressed data but its name has no .{ext}; compressed input is \
                 read by its extension (.gz, .bz2, .xz, .zst), so rename it to end in .{ext}",
                codec.name,
                ext = codec.extension()
            ))),
            None => Ok(bytes.clone()),
        };
    };
    if bytes.is_empty() {
        return Ok(bytes.clone());
    }
    let suffix = file.rsplit_once('.').map_or("", |(_, s)| s);
    if let Some(codec) = found.filter(|c| c.kind != named.kind) {
        return Err(refuse(format!(
            "its name ends in .{suffix} but it looks like {}-compressed data; rename it to end \
             in .{}",
            codec.name,
            codec.extension()
        )));
    }
    let mut out = Vec::new();
    let read = match named.kind.convert_read(Cursor::new(bytes.clone())) {
        Ok(mut reader) => reader.read_to_end(&mut out).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) if found.is_some() => Err(refuse(format!(
            "its {} data does not decompress (damaged or cut short?): {e}",
            named.name
        ))),
        Err(e) => Err(refuse(format!(
            "its name ends in .{suffix} but it is not {}-compressed ({e}); it looks like \
             uncompressed data, so rename it without .{suffix}",
            named.name
        ))),
    }
}

/// Decodes a whole file in `format` into `schema`, keeping only the columns of `projection`
/// (indices into `schema`) where given: JSON and Parquet then decode only those. JSON lines
/// and CSV are decompressed first by the file's extension.
pub fn decode(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
    on_error: OnError,
) -> Result<Decoded, SourceError> {
    let bytes = &decompress(file, bytes, format)?;
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

/// Infers a schema from a file's content (decompressed first, as [`decode`] does).
pub fn infer_schema(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
) -> Result<SchemaRef, SourceError> {
    let bytes = &decompress(file, bytes, format)?;
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
    use datafusion::error::DataFusionError;
    use futures::{StreamExt, TryStreamExt};

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

    /// `text` compressed with `codec`, by the encoders DataFusion writes its own files with.
    async fn compress(codec: FileCompressionType, text: &str) -> Bytes {
        let input =
            futures::stream::iter([Ok::<_, DataFusionError>(Bytes::from(text.to_string()))])
                .boxed();
        let chunks: Vec<Bytes> = codec
            .convert_to_compress_stream(input)
            .expect("encoder")
            .try_collect()
            .await
            .expect("compress");
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&chunk);
        }
        Bytes::from(out)
    }

    #[tokio::test]
    async fn compressed_json_and_csv_are_read_by_extension() {
        use FileCompressionType as C;
        let cases = [
            (C::GZIP, "gz"),
            (C::GZIP, "GZ"),
            (C::BZIP2, "bz2"),
            (C::XZ, "xz"),
            (C::ZSTD, "zst"),
            (C::ZSTD, "zstd"),
        ];
        for (codec, ext) in cases {
            for (format, text) in [
                (FileFormat::Json, "{\"id\":1,\"name\":\"a\"}\n{\"id\":2}\n"),
                (FileFormat::Csv, "id,name\n1,a\n2,b\n"),
            ] {
                let name = format!("in/part-1.{format}.{ext}");
                let bytes = compress(codec, text).await;
                let d = decode(&name, &bytes, format, &schema(), None, OnError::Fail)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(d.rows, 2, "{name}");
                let inferred =
                    infer_schema(&name, &bytes, format).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(inferred.field(0).name(), "id", "{name}");
                assert_eq!(inferred.fields().len(), 2, "{name}");
            }
        }
        // Lines are numbered in the decompressed text.
        let bytes = compress(C::GZIP, "{\"id\":1}\n{\"id\": oops}\n").await;
        let err = decode(
            "f.json.gz",
            &bytes,
            FileFormat::Json,
            &schema(),
            None,
            OnError::Fail,
        )
        .expect_err("malformed")
        .to_string();
        assert!(err.contains("f.json.gz line 2"), "{err}");
        // An empty compressed file is empty.
        let d = decode(
            "f.json.gz",
            &Bytes::new(),
            FileFormat::Json,
            &schema(),
            None,
            OnError::Fail,
        )
        .expect("empty");
        assert_eq!(d.rows, 0);
    }

    #[tokio::test]
    async fn a_file_that_does_not_decode_says_what_it_looks_like() {
        use FileCompressionType as C;
        let text = "{\"id\":1}\n";
        let read = |name: &str, bytes: &Bytes, format, on_error| {
            decode(name, bytes, format, &schema(), None, on_error)
                .expect_err("refused")
                .to_string()
        };
        for (codec, codec_name, ext) in [
            (C::GZIP, "gzip", "gz"),
            (C::BZIP2, "bzip2", "bz2"),
            (C::XZ, "xz", "xz"),
            (C::ZSTD, "zstd", "zst"),
        ] {
            let bytes = compress(codec, text).await;
            // Refused whatever `on_error` says: the file is not malformed rows.
            for on_error in [OnError::Fail, OnError::Skip] {
                let err = read("part-1.json", &bytes, FileFormat::Json, on_error);
                let looks = format!("part-1.json: looks like {codec_name}-compressed data");
                assert!(err.contains(&looks), "{err}");
                assert!(err.contains(&format!("its name has no .{ext};")), "{err}");
            }
            let err = read("part-1.parquet", &bytes, FileFormat::Parquet, OnError::Fail);
            assert!(
                err.contains(&format!("looks like {codec_name}-compressed data")),
                "{err}"
            );
        }
        // A name that says compressed over bytes that are not, or are compressed otherwise.
        let err = read(
            "part-1.json.gz",
            &Bytes::from(text),
            FileFormat::Json,
            OnError::Fail,
        );
        assert!(
            err.contains("is not gzip-compressed") && err.contains("uncompressed data"),
            "{err}"
        );
        let bytes = compress(C::BZIP2, text).await;
        let err = read("part-1.json.gz", &bytes, FileFormat::Json, OnError::Fail);
        assert!(err.contains("looks like bzip2-compressed data"), "{err}");
        // Cut short.
        let bytes = compress(C::GZIP, text).await.slice(..12);
        let err = read("part-1.json.gz", &bytes, FileFormat::Json, OnError::Fail);
        assert!(err.contains("gzip data does not decompress"), "{err}");
        // Text that starts as bzip2's magic does is still text.
        let inferred =
            infer_schema("t.csv", &Bytes::from("BZh9,x\n1,2\n"), FileFormat::Csv).expect("text");
        assert_eq!(inferred.field(0).name(), "BZh9");
    }
}
