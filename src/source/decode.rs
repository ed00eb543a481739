//! Turning one file's bytes into Arrow record batches, with errors that name the file and line.
//!
//! The fast path decodes the whole file at once. Only when that fails does the slow path go
//! record by record, to name the first bad line (`on_error: fail`) or to skip and count every
//! bad one (`on_error: skip`), and, for JSON, to find the fields the schema does not know. A
//! JSON file takes the fast path only when every field of every row is known.
//!
//! A file's rows have the source's columns: the file's own, then those of its path's
//! `key=value` folders (see `hive`), and the rescued-data column where the source has one.
//!
//! JSON lines and CSV files are decompressed first by their name's extension, as Spark, DuckDB
//! and DataFusion read them (`.gz`, `.bz2`, `.xz`, `.zst` or `.zstd`), so lines are numbered in
//! the decompressed text. Compressed bytes under a name without that extension, or bytes that
//! do not decompress as their extension says, are refused with what they look like.

use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, LargeListArray, ListArray, StringArray, StructArray,
    new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Int64Type, Schema, SchemaRef, TimeUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::arrow::{csv as arrow_csv, json as arrow_json};
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::SourceError;
use crate::format::{EpochUnit, FileFormat, OnError};

/// The rows of one file.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The file's rows, in the pinned schema.
    pub batches: Vec<RecordBatch>,
    /// How many rows were read.
    pub rows: u64,
    /// How many malformed rows were skipped.
    pub skipped: u64,
    /// How many rows had a field the schema does not know.
    pub unknown_rows: u64,
    /// The names of those fields.
    pub unknown_fields: BTreeSet<String>,
}

const BATCH_SIZE: usize = 8192;

/// The most fields a decoded batch holds: [`BATCH_SIZE`] rows of 64 columns.
const BATCH_FIELDS: usize = BATCH_SIZE * 64;

/// Rows a decoded batch of `columns` columns holds: [`BATCH_SIZE`], fewer for wide rows, at
/// least one. Arrow's CSV reader keeps an offset per field of a batch up front (8 bytes a
/// row and column: 6.5 GB for a batch of 100,000 columns, walk 71), so a batch holds at most
/// [`BATCH_FIELDS`] fields and a file's width costs time, not memory.
fn batch_rows(columns: usize) -> usize {
    (BATCH_FIELDS / columns.max(1)).clamp(1, BATCH_SIZE)
}

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

/// Whether `bytes`, a JSON lines or CSV file `file` as read, end without a line ending (not
/// compressed: a compressed file's last byte says nothing of its text): a file still being
/// written ends so, its last row cut short.
pub fn ends_mid_line(file: &str, bytes: &[u8], format: FileFormat) -> bool {
    matches!(format, FileFormat::Json | FileFormat::Csv)
        && Codec::of_name(file).is_none()
        // Not text at all (a Parquet file, compressed bytes): reading refuses it, saying what
        // it is (walk 66: a warning of a cut line came first).
        && !bytes.starts_with(b"PAR1")
        && Codec::of_content(bytes).is_none()
        && !ends_line(bytes)
}

/// Whether text `bytes` end with a line ending, or hold no text at all (a byte order mark
/// alone): in UTF-8 (or a one-byte encoding), `\n`, or `\r` as old Mac files end lines
/// (walk 124); in UTF-16, either as two bytes, little- or big-endian (walk 79: a UTF-16 file
/// ending `0a 00` was warned of as cut short).
fn ends_line(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    matches!(text, [] | [0xFF, 0xFE] | [0xFE, 0xFF])
        || [&b"\n"[..], b"\n\0", b"\r", b"\r\0"]
            .iter()
            .any(|end| text.ends_with(end))
}

/// Whether file `file` (as named, with its first bytes `bytes`) is compressed, by its name's
/// extension or by the bytes it starts with: a prefix of it is no prefix of its text.
pub fn looks_compressed(file: &str, bytes: &[u8]) -> bool {
    Codec::of_name(file).is_some() || Codec::of_content(bytes).is_some()
}

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
fn decompress(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    on_error: OnError,
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<Bytes, SourceError> {
    decompress_sample(file, bytes, format, on_error, encoding, None)
}

/// [`decompress`], where `limit` is given only the first `limit` bytes of a compressed file's
/// text, cut after their last whole line (or the first line whole, where longer), as
/// inference samples a file.
fn decompress_sample(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    on_error: OnError,
    encoding: Option<&'static encoding_rs::Encoding>,
    limit: Option<u64>,
) -> Result<Bytes, SourceError> {
    let mut text = decompressed(file, bytes, format, limit)?;
    if let Some(encoding) = encoding.filter(|e| *e != encoding_rs::UTF_8)
        && matches!(format, FileFormat::Json | FileFormat::Csv)
    {
        text = transcoded(file, &text, encoding)?;
    }
    // Files only: a Kafka record's or NATS message's payloads come unnamed (`file` empty), each
    // one blamed (or skipped) by itself where it does not decode.
    if !file.is_empty() {
        check_format(file, &text, format)?;
    }
    if matches!(format, FileFormat::Json | FileFormat::Csv) && !file.is_empty() {
        check_utf8_text(file, &text, format, on_error, encoding)?;
    }
    // A UTF-8 byte order mark starts no value and names no column.
    Ok(match format {
        FileFormat::Json | FileFormat::Csv if text.starts_with(b"\xEF\xBB\xBF") => text.slice(3..),
        _ => text,
    })
}

/// What to do about a file read before its writer was done with it.
const CUT_SHORT_ADVICE: &str = "A batch reads a file as it is when it lists it, so a file must \
     be whole when it appears in the folder: write it under a name starting with `_` or `.`, or \
     elsewhere, and rename it into place when it is done, or set the source's `min_file_age` \
     (`min_file_age: 30s`) to leave files changed more recently for a later batch";

/// Refuses a file plainly of another format than the source's, naming the one it looks like:
/// Parquet (its `PAR1` magic, Apache Parquet's file format) under `format: json` or `csv`;
/// JSON lines (a first line that is one `{...}` object) under `format: csv`, whose reader
/// would take that object for a header of odd names and read no rows; JSON lines or CSV text
/// under `format: parquet`, which would fail on a "corrupt footer". Text that only might be
/// another format (a JSON file's first line that reads as CSV) is named where it fails. A
/// Parquet file that begins with `PAR1` and does not end with it lacks its footer (schema and
/// row groups come last): cut short, or still being written (walk 109), said so; an empty one
/// alike.
fn check_format(file: &str, text: &[u8], format: FileFormat) -> Result<(), SourceError> {
    // Walk 124 (5): an empty file was "Parquet file too small ... declare `schema:`", and
    // with a schema declared the same again, batch after batch.
    if format == FileFormat::Parquet && text.is_empty() {
        return Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: format!(
                "the file is empty (0 bytes), where a Parquet file holds at least its footer: \
                 one being written, most likely, or a writer that failed. {CUT_SHORT_ADVICE}"
            ),
        });
    }
    let is_parquet = text.starts_with(b"PAR1");
    if format == FileFormat::Parquet && is_parquet && !text.ends_with(b"PAR1") {
        return Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: format!(
                "the file begins as Parquet (`PAR1`) but does not end as one: its footer, \
                 which holds its schema and where its rows are, is missing ({} bytes read), as \
                 in a file cut short or still being written. {CUT_SHORT_ADVICE}",
                text.len()
            ),
        });
    }
    let first_line = || {
        let head = &text[..text.len().min(64 * 1024)];
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let line = head
            .split(|b| *b == b'\n')
            .find(|l| !l.trim_ascii().is_empty())?;
        std::str::from_utf8(line).ok().map(str::trim)
    };
    let json_object = |line: &str| line.starts_with('{') && line.ends_with('}');
    let (found, set) = match format {
        FileFormat::Json | FileFormat::Csv if is_parquet => {
            ("a Parquet file (it begins with `PAR1`)", "parquet")
        }
        FileFormat::Csv if first_line().is_some_and(json_object) => (
            "JSON lines, not CSV (its first line is one `{...}` object)",
            "json",
        ),
        FileFormat::Parquet if !is_parquet && !text.is_empty() => match first_line() {
            Some(line) if json_object(line) || line.starts_with('[') => (
                "not a Parquet file (a Parquet file begins and ends with `PAR1`) but JSON \
                     text",
                "json",
            ),
            Some(_) if looks_like_csv(text).is_some() => (
                "not a Parquet file (a Parquet file begins and ends with `PAR1`) but CSV \
                     text",
                "csv",
            ),
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    Err(SourceError::Malformed {
        file: file.to_string(),
        line: None,
        reason: format!(
            "the file is {found}: set `format: {set}` on the source to read files like it, or \
             give them a source of their own (a source reads one format)"
        ),
    })
}

/// The first line of `text`, where it reads as a CSV header or row: UTF-8 without NUL bytes,
/// not starting as JSON does, and holding a `,`, `;`, tab or `|` between fields. Cut to 80
/// characters for messages.
fn looks_like_csv(text: &[u8]) -> Option<String> {
    let head = &text[..text.len().min(64 * 1024)];
    let line = head
        .split(|b| *b == b'\n')
        .find(|l| !l.trim_ascii().is_empty())?;
    let line = std::str::from_utf8(line).ok()?.trim();
    if line.starts_with(['{', '[']) || line.contains('\0') {
        return None;
    }
    if !line.contains([',', ';', '\t', '|']) {
        return None;
    }
    Some(line.chars().take(80).collect())
}

/// Refuses text in another encoding than UTF-8 (JSON's, RFC 8259 §8.1, and the CSV reader's),
/// which would otherwise fail on its first line as malformed, or read as garbage: UTF-16 and
/// UTF-32 by their byte order mark, or, without one, by the NUL bytes that make a quarter or
/// more of their first 4 KiB (as each ASCII character's other bytes do; a NUL here and there
/// is a character of UTF-8 text, read as such, as DuckDB reads it). Where the source declared
/// `declared`, the text is what it read as, and the advice does not name it again. Bytes no
/// UTF-8 text holds in otherwise ASCII-compatible text
/// (Latin-1, Windows-1252) refuse the file under `on_error: fail`; under `on_error: skip` the
/// lines that hold them are skipped and counted by the decoder, each named, as any other
/// malformed line is, but for a CSV header, which names every row's columns.
fn check_utf8_text(
    file: &str,
    text: &[u8],
    format: FileFormat,
    on_error: OnError,
    declared: Option<&'static encoding_rs::Encoding>,
) -> Result<(), SourceError> {
    let sample = &text[..text.len().min(4096)];
    let nuls = |from: usize, step: usize| {
        sample
            .iter()
            .skip(from)
            .step_by(step)
            .filter(|b| **b == 0)
            .count()
    };
    let (all, odd) = (nuls(0, 1), nuls(1, 2));
    // What the text is, and the encoding to name in the conversion.
    let encoding = if let Some(declared) = declared
        && all > 0
        && all * 4 >= sample.len()
    {
        // Walk 124 (3): UTF-32 read as the declared UTF-16 was said to want `utf-16le`, which
        // gave the same error again.
        return Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: format!(
                "its text, read as {} (the source's `encoding`), is mostly NUL characters: the \
                 files are in another encoding (UTF-32, which Sluice does not read, as often): \
                 convert the file, e.g. `iconv -f UTF-32 -t UTF-8 FILE > NEW`, and set the \
                 source's `encoding:` to what the files are in then",
                declared.name()
            ),
        });
    } else if text.starts_with(b"\xFF\xFE\0\0") || text.starts_with(b"\0\0\xFE\xFF") {
        Some((
            "UTF-32 (its first bytes are a byte order mark)".to_string(),
            "UTF-32",
        ))
    } else if text.starts_with(b"\xFF\xFE") || text.starts_with(b"\xFE\xFF") {
        Some((
            "UTF-16 (its first bytes are a byte order mark)".to_string(),
            "UTF-16",
        ))
    } else if all > 0 && all * 4 >= sample.len() {
        // Walk 124 (2): one NUL in a UTF-8 file's first 4 KiB called it UTF-16, one further on
        // was read: the share of NULs tells UTF-16 and UTF-32 (and binary data) from text.
        let from = if all * 5 >= sample.len() * 3 {
            if sample.first() == Some(&0) {
                "UTF-32BE"
            } else {
                "UTF-32LE"
            }
        } else if odd * 2 >= all {
            "UTF-16LE"
        } else {
            "UTF-16BE"
        };
        Some((
            format!(
                "not UTF-8: {all} of its first {} bytes are NUL, as in {from} text without a \
                 byte order mark, or binary data",
                sample.len()
            ),
            from,
        ))
    } else if let Some(at) = first_not_utf8(text)
        && (on_error == OnError::Fail || format == FileFormat::Csv && !text[..at].contains(&b'\n'))
    {
        let line = 1 + text[..at].iter().filter(|b| **b == b'\n').count();
        Some((
            format!(
                "not UTF-8: line {line} holds byte 0x{:02X}, which no UTF-8 text has there \
                 (Latin-1 or Windows-1252 text, as often)",
                text[at]
            ),
            // Windows-1252 reads Latin-1's letters the same, and its 0x80-0x9F (`€`, `’`) as
            // the characters meant, where `-f LATIN1` makes them control codes.
            "CP1252",
        ))
    } else {
        None
    };
    match encoding {
        Some((encoding, from)) => Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: format!(
                "its text is {encoding}; Sluice reads JSON and CSV files as UTF-8 unless the \
                 source says otherwise: {}convert the file, e.g. `iconv -f {from} -t UTF-8 FILE \
                 > NEW`",
                // UTF-32 is no encoding of the WHATWG standard `encoding:` reads.
                match from {
                    "CP1252" => "set the source's `encoding: windows-1252` (naming the files' \
                                 encoding), or "
                        .to_string(),
                    "UTF-16LE" | "UTF-16BE" | "UTF-16" => format!(
                        "set the source's `encoding: {}` (naming the files' encoding), or ",
                        from.to_lowercase()
                    ),
                    _ => String::new(),
                }
            ),
        }),
        None => Ok(()),
    }
}

/// `text` (in `encoding`, or in the encoding its byte order mark names) as UTF-8, as the
/// WHATWG Encoding Standard reads it (`encoding_rs`): Windows-1252 for `latin-1`, whose every
/// byte is a character. Text that does not read as `encoding` is refused, naming the line; a
/// character cut at the very end (an inference sample cut at a line end in UTF-16) is left
/// out.
fn transcoded(
    file: &str,
    text: &[u8],
    encoding: &'static encoding_rs::Encoding,
) -> Result<Bytes, SourceError> {
    let (read, used, errors) = encoding.decode(text);
    if !errors {
        return Ok(Bytes::from(read.into_owned().into_bytes()));
    }
    // An inference sample is cut after a line's `\n` byte, which in UTF-16 leaves the other
    // byte of its unit out: an odd length, its last byte dropped. (A whole UTF-16 file has an
    // even length.)
    if (used == encoding_rs::UTF_16LE || used == encoding_rs::UTF_16BE) && text.len() % 2 == 1 {
        let (read, _, errors) = used.decode(&text[..text.len() - 1]);
        if !errors {
            return Ok(Bytes::from(read.into_owned().into_bytes()));
        }
    }
    let bad = read.find('\u{FFFD}').unwrap_or(0);
    let line = 1 + read[..bad].matches('\n').count();
    Err(SourceError::Malformed {
        file: file.to_string(),
        line: Some(line),
        reason: format!(
            "its text does not read as {} (the source's `encoding`): set the file's own \
             encoding",
            used.name()
        ),
    })
}

/// [`decompress`] before the byte order mark is taken off.
fn decompressed(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    limit: Option<u64>,
) -> Result<Bytes, SourceError> {
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
    // An archive or a compression read by no codec here (walk 109: a `.zip` was said to be
    // UTF-16 text, with an `encoding:` that did not read it either).
    let lower = file.to_ascii_lowercase();
    let unread = [
        (".zip", "unzip"),
        (".lz4", "lz4 -d"),
        (".lzma", "unlzma"),
        (".snappy", "a Snappy decompressor"),
        (".sz", "a Snappy decompressor"),
        (".br", "brotli -d"),
        (".7z", "7z x"),
        (".z", "uncompress"),
        (".tar", "tar -xf"),
        (".tgz", "tar -xzf"),
    ];
    if Codec::of_name(file).is_none()
        && let Some((ext, tool)) = unread
            .iter()
            .find(|(ext, _)| lower.ends_with(ext))
            .or_else(|| bytes.starts_with(b"PK\x03\x04").then_some(&unread[0]))
    {
        return Err(refuse(format!(
            "it is a {ext} file (by its name or its first bytes), which Sluice does not read: \
             compressed input is read by its extension, .gz, .bz2, .xz or .zst, one file each; \
             unpack it first ({tool}), and compress it as .gz or .zst if it is to stay \
             compressed"
        )));
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
        Ok(mut reader) => match limit {
            None => reader.read_to_end(&mut out).map_err(|e| e.to_string()),
            // A sample: what the limit holds, cut after its last whole line, or on to the
            // end of the first line where it holds none (walk 117: inference decompressed a
            // 21 MB file whole, at 11 times its text in memory).
            Some(limit) => (|| {
                reader.by_ref().take(limit).read_to_end(&mut out)?;
                if out.len() as u64 >= limit {
                    match out.iter().rposition(|b| *b == b'\n') {
                        Some(end) => out.truncate(end + 1),
                        None => {
                            use std::io::BufRead as _;
                            std::io::BufReader::new(reader).read_until(b'\n', &mut out)?;
                        }
                    }
                }
                Ok::<_, std::io::Error>(out.len())
            })()
            .map_err(|e| e.to_string()),
        },
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

/// How a source's files become its rows: its format, its columns (the files' own, the
/// partition folders', the rescued-data column) and what to do with a malformed row.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The files' format.
    pub format: FileFormat,
    /// The source's columns.
    pub schema: SchemaRef,
    /// The columns to read (indices into `schema`), all where `None`.
    pub projection: Option<Vec<usize>>,
    /// What to do with a malformed row.
    pub on_error: OnError,
    /// The rescued-data column: a row's fields the schema does not know, as a JSON object's
    /// text (null where there are none).
    pub rescued: Option<String>,
    /// The unit of a number in a timestamp column of JSON or CSV text; such a number is
    /// refused where `None`.
    pub epoch_unit: Option<EpochUnit>,
    /// The byte between a CSV record's fields (`,`, or the source's `delimiter`).
    pub delimiter: u8,
    /// Whether a CSV file's first line names its columns (else every line is a record, read
    /// into `schema` by position).
    pub header: bool,
    /// The text of a CSV field that reads as null besides an empty one (`null_value`).
    pub null_value: Option<String>,
    /// Whether `schema` was inferred from the source's first files rather than declared: a
    /// value that does not fit its column then says how to declare it.
    pub inferred: bool,
    /// The text encoding of JSON and CSV files (`encoding:`), read into UTF-8 after
    /// decompression; UTF-8 where `None`.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// The byte that escapes a quote inside a quoted CSV field (`escape:`, Spark's `\\`); a
    /// quote is doubled (RFC 4180) where `None`. See [`csv_quoting`].
    pub escape: Option<u8>,
}

/// Where a column of a file's rows comes from.
enum Origin {
    /// The file's own column at this index of its content schema.
    Content(usize),
    /// A partition folder of the file's path, with its value.
    Folder(String, Option<String>),
    /// The rescued-data column.
    Rescued,
}

impl Reader {
    /// The schema of the rows [`Reader::decode`] returns.
    pub fn output_schema(&self) -> Result<SchemaRef, SourceError> {
        match &self.projection {
            Some(indices) => Ok(Arc::new(self.schema.project(indices).map_err(|e| {
                SourceError::Read {
                    file: String::new(),
                    reason: e.to_string(),
                }
            })?)),
            None => Ok(Arc::clone(&self.schema)),
        }
    }

    /// `error` of a row whose value does not fit its column, where the column's type was
    /// inferred: with how to declare the column so that such values read.
    fn declare_hint(&self, error: SourceError) -> SourceError {
        let SourceError::Malformed { file, line, reason } = error else {
            return error;
        };
        let named = named_column(&reason)
            .map(str::to_string)
            .filter(|name| self.inferred && self.schema.field_with_name(name).is_ok());
        let reason = match named {
            Some(name) => {
                let data_type = self.schema.field_with_name(&name).map_or_else(
                    |_| String::new(),
                    |f| crate::format::sql_type_name(f.data_type()),
                );
                format!(
                    "{reason} (the source's columns were inferred from its first files, \
                     `{name}` as {data_type}: to read such values too, declare the columns in \
                     the source's `schema:`, with `{name}: string`)"
                )
            }
            None => reason,
        };
        SourceError::Malformed { file, line, reason }
    }

    /// Decodes the whole file `file` (shown in messages), at `path` under the source's folder,
    /// into the projected columns: JSON lines and CSV are decompressed first by the name's
    /// extension; a column named like a `key=value` folder of `path` takes the folder's value.
    /// JSON and Parquet fields the schema does not know are counted (JSON: top-level fields),
    /// and kept in the rescued-data column where there is one.
    pub fn decode(&self, file: &str, path: &str, bytes: &Bytes) -> Result<Decoded, SourceError> {
        let bytes = &decompress(file, bytes, self.format, self.on_error, self.encoding)?;
        let folders = super::hive::partition_values(path);
        let mut content = Vec::new();
        let origins: Vec<Origin> = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                if self.rescued.as_deref() == Some(field.name().as_str()) {
                    Origin::Rescued
                } else if let Some((key, value)) = folders.iter().find(|(k, _)| k == field.name()) {
                    Origin::Folder(key.clone(), value.clone())
                } else {
                    content.push(Arc::clone(field));
                    Origin::Content(content.len() - 1)
                }
            })
            .collect();
        let content: SchemaRef = Arc::new(Schema::new(content));
        // A file's field named like one of its folders that is a column is the folder's
        // (`check_folder_agrees` refuses a file whose value there is another).
        let known: Vec<&str> = origins
            .iter()
            .filter_map(|o| match o {
                Origin::Folder(key, _) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        for (i, origin) in origins.iter().enumerate() {
            if let Origin::Folder(key, value) = origin {
                let data_type = self.schema.field(i).data_type();
                let column = (data_type, self.epoch_unit);
                check_folder_agrees(file, bytes, self.format, key, value.as_deref(), column)?;
            }
        }
        let rescue = self.rescued.is_some();
        let read = match self.format {
            FileFormat::Json => {
                let options = JsonOptions {
                    also_known: &known,
                    on_error: self.on_error,
                    rescue,
                    epoch: self.epoch_unit,
                };
                json(file, bytes, &content, &options).map_err(|e| self.declare_hint(e))?
            }
            FileFormat::Csv => {
                let null = self.null_value.as_deref().map(null_regex);
                let csv = Csv {
                    epoch: self.epoch_unit,
                    delimiter: self.delimiter,
                    header: self.header,
                    null: null.as_ref(),
                };
                if csv.header {
                    check_csv_header(file, bytes, &content, csv.delimiter)?;
                }
                let bytes = &csv_quoting(file, bytes, self.delimiter, self.escape)?;
                let batches = match csv_fast(bytes, &content, csv) {
                    Ok(batches) => Decoded::from_batches(batches, 0),
                    Err(error) => csv_slow(file, bytes, &content, self.on_error, csv, error)
                        .map_err(|e| self.declare_hint(e))?,
                };
                FileRows::plain(batches)
            }
            FileFormat::Parquet => parquet(file, bytes, &content, &known, rescue)?,
        };
        let all: Vec<usize>;
        let wanted = match &self.projection {
            Some(indices) => indices.as_slice(),
            None => {
                all = (0..origins.len()).collect();
                &all
            }
        };
        let schema = self.output_schema()?;
        let err = |reason: String| SourceError::Read {
            file: file.to_string(),
            reason,
        };
        let mut batches = Vec::with_capacity(read.decoded.batches.len());
        let mut offset = 0;
        for batch in &read.decoded.batches {
            let rows = batch.num_rows();
            let columns = wanted
                .iter()
                .map(|&i| match &origins[i] {
                    Origin::Content(c) => Ok(Arc::clone(batch.column(*c))),
                    Origin::Folder(key, value) => {
                        let data_type = self.schema.field(i).data_type();
                        super::hive::column(value.as_deref(), data_type, rows).map_err(|reason| {
                            SourceError::SchemaMismatch {
                                file: file.to_string(),
                                reason: format!("its folder `{key}=`: {reason}"),
                            }
                        })
                    }
                    Origin::Rescued => Ok(match &read.rescued {
                        Some(rescued) => rescued.slice(offset, rows),
                        None => new_null_array(&DataType::Utf8, rows),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            batches.push(
                RecordBatch::try_new_with_options(Arc::clone(&schema), columns, &options)
                    .map_err(|e| err(e.to_string()))?,
            );
            offset += rows;
        }
        // A `key=value` folder the schema has no column for (a folder level that came after
        // the schema was pinned) is an unknown field of every row, counted and named.
        let mut unknown_fields = read.unknown_fields;
        let mut unknown_rows = read.unknown_rows;
        let unnamed: Vec<&String> = folders
            .iter()
            .map(|(key, _)| key)
            .filter(|key| self.schema.column_with_name(key).is_none())
            .collect();
        if !unnamed.is_empty() {
            unknown_fields.extend(unnamed.into_iter().map(|key| format!("{key}=")));
            unknown_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        }
        Ok(Decoded {
            batches,
            rows: read.decoded.rows,
            skipped: read.decoded.skipped,
            unknown_rows,
            unknown_fields,
        })
    }
}

/// The rows of a file in its content schema, with what it held beyond it.
struct FileRows {
    decoded: Decoded,
    /// Rows with a field the schema does not know.
    unknown_rows: u64,
    /// Those fields' names.
    unknown_fields: BTreeSet<String>,
    /// Each row's unknown fields as a JSON object's text, where asked for.
    rescued: Option<ArrayRef>,
}

impl FileRows {
    fn plain(decoded: Decoded) -> Self {
        Self {
            decoded,
            unknown_rows: 0,
            unknown_fields: BTreeSet::new(),
            rescued: None,
        }
    }
}

/// Infers the columns of one file's content (decompressed first, as [`Reader::decode`] does):
/// `None` when it has none (an empty file). A CSV file with only a header gives its columns
/// with Arrow's `Null` type, as does a JSON field with only null values: no type yet. JSON
/// values are found as the decoder finds them (spread over lines, several on a line); one that
/// does not parse is named (`on_error: fail`) or left out (`on_error: skip`).
pub fn infer_schema(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    on_error: OnError,
    delimiter: u8,
    null_value: Option<&str>,
) -> Result<Option<Schema>, SourceError> {
    infer_schema_encoded(file, bytes, format, on_error, delimiter, null_value, None)
}

/// [`infer_schema`] of a file whose text is in `encoding` (UTF-8 where `None`).
pub fn infer_schema_encoded(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    on_error: OnError,
    delimiter: u8,
    null_value: Option<&str>,
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<Option<Schema>, SourceError> {
    infer_schema_sampled(
        file, bytes, format, on_error, delimiter, null_value, encoding, None, None,
    )
}

/// [`infer_schema_encoded`] of the first `sample` bytes of a compressed file's text (cut after
/// a whole line), the whole text where `None` or not compressed.
#[allow(clippy::too_many_arguments)]
pub fn infer_schema_sampled(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    on_error: OnError,
    delimiter: u8,
    null_value: Option<&str>,
    encoding: Option<&'static encoding_rs::Encoding>,
    sample: Option<u64>,
    escape: Option<u8>,
) -> Result<Option<Schema>, SourceError> {
    let bytes = &decompress_sample(file, bytes, format, on_error, encoding, sample)?;
    let err = |e: ArrowError| SourceError::Infer {
        file: file.to_string(),
        reason: e.to_string(),
    };
    let schema = match format {
        FileFormat::Json => {
            // Against no columns, every field of a value is unknown: the whole object.
            let scanned = json_values(file, bytes, &Arc::new(Schema::empty()), &[], on_error);
            if let Some(error) = scanned.failed {
                return Err(error);
            }
            let long_integers: Vec<BTreeSet<String>> = scanned
                .values
                .iter()
                .map(|v| integer_literal_keys(v.text))
                .collect();
            let mut objects: Vec<serde_json::Map<String, serde_json::Value>> =
                scanned.values.into_iter().map(|v| v.unknown).collect();
            mixed_as_text(&mut objects.iter_mut().collect::<Vec<_>>());
            // A list's null items type nothing, and Arrow's inference refuses one beside
            // lists or objects (`[null, [5]]`; walk 67): left out of what it reads.
            let schema = arrow_json::reader::infer_json_schema_from_iterator(
                objects
                    .iter()
                    .map(|o| Ok(without_null_items(serde_json::Value::Object(o.clone())))),
            )
            .map_err(err)?;
            with_wide_integers(
                with_inferred_timestamps(schema, &objects),
                &objects,
                &long_integers,
            )
        }
        FileFormat::Csv => {
            unclosed_quote_in_header(file, bytes, delimiter)?;
            let mut format = arrow_csv::reader::Format::default()
                .with_header(true)
                .with_delimiter(delimiter);
            if let Some(value) = null_value {
                format = format.with_null_regex(null_regex(value));
            }
            // The header first: with another delimiter, the rows' own commas (`2,5` in a
            // `;` file) would otherwise be named as malformed rows before the cause.
            let header_end = bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |p| p + 1);
            if let Ok((header, _)) = format.infer_schema(Cursor::new(&bytes[..header_end]), Some(0))
            {
                let names: Vec<&str> = header.fields().iter().map(|f| f.name().as_str()).collect();
                if let Some(hint) = other_delimiter(&names, delimiter) {
                    return Err(err(ArrowError::CsvError(format!(
                        "its first line reads as the one column {:?}{hint}",
                        names[0]
                    ))));
                }
            }
            let bytes = &csv_quoting(file, bytes, delimiter, escape)?;
            // The records inference reads: all, or those that fit the header.
            let mut records = bytes.clone();
            let inferred = match format.infer_schema(Cursor::new(bytes.as_ref()), None) {
                Ok((schema, _)) => schema,
                // A record whose fields do not match the header's: named as decoding names
                // it, or (`on_error: skip`) left out of inference as decoding skips it.
                Err(e) => {
                    let fitting = csv_records_that_fit(file, bytes, delimiter, on_error)?
                        .ok_or_else(|| err(e))?;
                    records = Bytes::from(fitting);
                    format
                        .infer_schema(Cursor::new(records.as_ref()), None)
                        .map_err(err)?
                        .0
                }
            };
            let schema = timestamps_in_nanoseconds(inferred);
            if let Some(why) = header_looks_like_a_row(&schema) {
                let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
                return Err(err(ArrowError::CsvError(format!(
                    "its first line `{}` looks like a row, not a header ({why}): a CSV file's \
                     first line names its columns, and would otherwise be taken for names and \
                     its values lost. Add a header line, or read the files as having none \
                     (`header: false`, the columns declared in order: `columns: [{{name: id, \
                     type: bigint}}, ...]`); or, if those are the column names, declare them in \
                     the source's `schema:`",
                    String::from_utf8_lossy(line).trim_end()
                ))));
            }
            // After the header is judged: a zero-led column's header is judged as numbers'.
            let schema = zero_led_integers_as_text(schema, bytes, delimiter);
            let schema = bare_dates_as_text(schema, &records, delimiter);
            let schema = types_every_value_fits(schema, &records, delimiter, null_value);
            // After: Arrow's CSV reader, which judges the types above, reads no time to the
            // minute (Sluice's decoding does).
            let schema = minute_times_as_timestamps(schema, &records, delimiter);
            with_csv_column_names(file, schema)
        }
        FileFormat::Parquet => ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .map_err(|e| err(ArrowError::ExternalError(Box::new(e))))?
            .schema()
            .as_ref()
            .clone(),
    };
    Ok((!schema.fields().is_empty()).then_some(schema))
}

/// The header line of CSV `bytes` and each record after it that splits into as many fields as
/// the header names, for inference to read past the others. A record that does not fit is a
/// [`SourceError::Malformed`] naming its line, or (`on_error: skip`) left out. `None` where
/// the header itself does not read (inference says why).
fn csv_records_that_fit(
    file: &str,
    bytes: &[u8],
    delimiter: u8,
    on_error: OnError,
) -> Result<Option<Vec<u8>>, SourceError> {
    let Some(header_end) = bytes.iter().position(|b| *b == b'\n').map(|p| p + 1) else {
        return Ok(None);
    };
    let Ok((header, _)) = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(Cursor::new(&bytes[..header_end]), Some(0))
    else {
        return Ok(None);
    };
    let text: SchemaRef = Arc::new(Schema::new(
        header
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let mut fitting = bytes[..header_end].to_vec();
    let (mut pos, mut line) = (header_end, 2);
    while pos < bytes.len() {
        if !past_line_ends(bytes, &mut pos, &mut line) {
            break;
        }
        let mut decoder = arrow_csv::ReaderBuilder::new(Arc::clone(&text))
            .with_header(false)
            .with_delimiter(delimiter)
            .with_batch_size(1)
            .build_decoder();
        let to_line_end = bytes[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len() - pos, |p| p + 1);
        let decoded = decoder.decode(&bytes[pos..]).and_then(|n| {
            decoder.decode(&[])?;
            decoder
                .flush()
                .map(|_| if n == 0 { bytes.len() - pos } else { n })
        });
        // A line of only spaces is no record, as decoding passes over it.
        let blank = bytes[pos..pos + to_line_end]
            .iter()
            .all(u8::is_ascii_whitespace);
        match decoded {
            Ok(consumed) => {
                let record = &bytes[pos..pos + consumed];
                fitting.extend_from_slice(record);
                line += record.iter().filter(|b| **b == b'\n').count();
                pos += consumed;
            }
            Err(_) if blank => {
                pos += to_line_end;
                line += 1;
            }
            // A quote never closed: named as decoding names it, or skipped as it skips it.
            Err(_) if opens_unclosed_quote(&bytes[pos..], delimiter) => {
                let error = unclosed_quote(file, line, &bytes[pos..]);
                if on_error != OnError::Skip {
                    return Err(error);
                }
                tracing::info!(file, line, %error, "inference reads past a malformed CSV row");
                pos += to_line_end;
                line += 1;
            }
            Err(e) if on_error == OnError::Skip => {
                let error = csv_reason(file, line, &e, &text);
                tracing::info!(file, line, %error, "inference reads past a malformed CSV row");
                pos += to_line_end;
                line += 1;
            }
            Err(e) => return Err(csv_malformed(file, line, &e, &text)),
        }
    }
    Ok(Some(fitting))
}

/// `schema`, inferred from CSV `bytes`, with each integer column that holds a value written
/// with a leading zero (`01234`, a zip code or an account number) as text instead: read as a
/// number it would lose its zeros, and DuckDB's sniffer keeps such a column text too. Records
/// that do not read leave the schema as it is (decoding names them).
fn zero_led_integers_as_text(schema: Schema, bytes: &Bytes, delimiter: u8) -> Schema {
    let zero_led = |v: &str| {
        let digits = v.trim().trim_start_matches('-');
        digits.len() > 1 && digits.starts_with('0')
    };
    text_where(
        schema,
        bytes,
        delimiter,
        |t| t == &DataType::Int64,
        zero_led,
    )
}

/// `schema` (inferred from CSV `bytes`) with each timestamp column that also holds a bare
/// date (`2026-01-05` beside `2026-01-05 10:00:00`) read as text: Arrow's inference widens a
/// date and a time to a timestamp, where DuckDB keeps such a column as text (and a JSON
/// source's inference does too), and the README says a timestamp is inferred only where every
/// value has a time of day.
fn bare_dates_as_text(schema: Schema, bytes: &Bytes, delimiter: u8) -> Schema {
    let bare_date = |v: &str| chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").is_ok();
    let time = |t: &DataType| matches!(t, DataType::Timestamp(_, _));
    text_where(schema, bytes, delimiter, time, bare_date)
}

/// `schema` (inferred from CSV `bytes`) with each column of a type `of_type` takes that holds
/// a value `misfit` takes (read as its text) made a text column. Records that do not read
/// leave the schema as it is (decoding names them).
fn text_where(
    schema: Schema,
    bytes: &Bytes,
    delimiter: u8,
    of_type: impl Fn(&DataType) -> bool,
    misfit: impl Fn(&str) -> bool,
) -> Schema {
    let candidates: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| of_type(schema.field(i).data_type()))
        .collect();
    if candidates.is_empty() {
        return schema;
    }
    let mut as_text = BTreeSet::new();
    let read = each_text_value(&schema, bytes, delimiter, &candidates, |i, value| {
        if misfit(value) {
            as_text.insert(i);
        }
    });
    if !read {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match as_text.contains(&i) {
            true => f.as_ref().clone().with_data_type(DataType::Utf8),
            false => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Calls `visit` with each non-null value of the `columns` (by index) of CSV `bytes` (with
/// its header), read as text, by column index. `false` where a record does not read (decoding
/// names it).
fn each_text_value(
    schema: &Schema,
    bytes: &Bytes,
    delimiter: u8,
    columns: &[usize],
    mut visit: impl FnMut(usize, &str),
) -> bool {
    let text = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let rows = batch_rows(text.fields().len());
    let Ok(reader) = arrow_csv::ReaderBuilder::new(text)
        .with_header(true)
        .with_delimiter(delimiter)
        .with_batch_size(rows)
        .build(Cursor::new(bytes.as_ref()))
    else {
        return false;
    };
    for batch in reader {
        let Ok(batch) = batch else {
            return false;
        };
        for &i in columns {
            for value in batch.column(i).as_string::<i32>().iter().flatten() {
                visit(i, value);
            }
        }
    }
    true
}

/// Whether `text` is a wall-clock time as inference types one: RFC 3339, or a date and a
/// time with a `T` or a space, to the minute or finer (`2026-12-31 23:59`, as DuckDB's and
/// Spark's inference read it).
fn is_timestamp_text(text: &str) -> bool {
    // To the minute, in fixed widths only (chrono's parser takes `2026-1-5 9:05`, which
    // decoding does not read).
    let minute = {
        let b = text.as_bytes();
        b.len() == 16
            && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15]
                .iter()
                .all(|&i| b[i].is_ascii_digit())
            && (b[4], b[7], b[13]) == (b'-', b'-', b':')
            && matches!(b[10], b'T' | b' ')
            && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
                .is_ok()
    };
    minute
        || chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .any(|f| chrono::NaiveDateTime::parse_from_str(text, f).is_ok())
        || chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z").is_ok()
}

/// `schema` (inferred from CSV `bytes`) with each text column whose every value is a time to
/// the minute (`2026-12-31 23:59`, which Arrow's inference leaves as text) or finer typed as a
/// timestamp (walk 63: such a column needed a declared schema).
fn minute_times_as_timestamps(schema: Schema, bytes: &Bytes, delimiter: u8) -> Schema {
    let candidates: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| schema.field(i).data_type() == &DataType::Utf8)
        .collect();
    if candidates.is_empty() {
        return schema;
    }
    // Per column: its values while every one looks like a time (`None` once one does not).
    let mut times: Vec<Option<Vec<String>>> = vec![Some(Vec::new()); schema.fields().len()];
    let read = each_text_value(&schema, bytes, delimiter, &candidates, |i, value| {
        if value.is_empty() {
            return;
        }
        match &mut times[i] {
            Some(values) if is_timestamp_text(value) => values.push(value.to_string()),
            slot => *slot = None,
        }
    });
    if !read {
        return schema;
    }
    // Typed a timestamp only where decoding reads every value so.
    let reads = |values: &Vec<String>| {
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(values));
        !values.is_empty() && exact_cast(&text, &INFERRED_TIMESTAMP, None).is_ok()
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(
            |(i, f)| match candidates.contains(&i) && times[i].as_ref().is_some_and(reads) {
                true => f.as_ref().clone().with_data_type(INFERRED_TIMESTAMP),
                false => f.as_ref().clone(),
            },
        )
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `schema` (inferred from CSV `bytes`) with each column that a value of the file does not
/// parse as (`2026-02-30` in a column Arrow's inference took for dates by its look, an integer
/// past 64 bits) read as text instead, as DuckDB's sniffer keeps a column that fails its type
/// as VARCHAR: a type is inferred from every value, so that the file it comes from reads.
/// Found by decoding the file as CSV decoding does, column by column as each fails.
fn types_every_value_fits(
    mut schema: Schema,
    bytes: &Bytes,
    delimiter: u8,
    null_value: Option<&str>,
) -> Schema {
    // Each round turns one column to text, so as many rounds as columns at most.
    for _ in 0..schema.fields().len() {
        let mut builder = arrow_csv::ReaderBuilder::new(Arc::new(schema.clone()))
            .with_header(true)
            .with_delimiter(delimiter)
            .with_batch_size(batch_rows(schema.fields().len()));
        if let Some(value) = null_value {
            builder = builder.with_null_regex(null_regex(value));
        }
        let Ok(reader) = builder.build(Cursor::new(bytes.as_ref())) else {
            return schema;
        };
        let failed = reader.into_iter().find_map(Result::err);
        // Arrow's parse errors name the column by its index; any other error (a malformed
        // record) is decoding's to name.
        let column = failed.and_then(|e| {
            let text = e.to_string();
            let (_, after) = text
                .split_once("for column ")
                .or_else(|| text.split_once("Error parsing column "))?;
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        });
        let Some(column) = column.filter(|&i| {
            i < schema.fields().len() && schema.field(i).data_type() != &DataType::Utf8
        }) else {
            return schema;
        };
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match i == column {
                true => f.as_ref().clone().with_data_type(DataType::Utf8),
                false => f.as_ref().clone(),
            })
            .collect();
        schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    }
    schema
}

/// Why the header of a CSV file whose columns were inferred (`schema`, named by the header)
/// looks like a row of values: every name that can be judged (over a column of numbers, times
/// or booleans) reads as a value of its column, as DuckDB's sniffer judges a header. `None`
/// where some name cannot be a value (or none can be judged).
fn header_looks_like_a_row(schema: &Schema) -> Option<String> {
    let mut judged = Vec::new();
    for field in schema.fields() {
        let name = field.name().trim();
        let is_value = match field.data_type() {
            // A number over numbers, whatever its own type (walk 97: `1,Anna,10.5` over
            // `2,Bob,7` was taken for a header, its row lost).
            DataType::Int64 | DataType::Float64 => name.parse::<f64>().is_ok_and(f64::is_finite),
            DataType::Boolean => {
                name.eq_ignore_ascii_case("true") || name.eq_ignore_ascii_case("false")
            }
            DataType::Timestamp(_, _) | DataType::Date32 => {
                arrow_cast_parse_ok(name, field.data_type())
            }
            _ => continue,
        };
        if !is_value {
            return None;
        }
        judged.push(format!("`{name}` is a value like those under it"));
    }
    (!judged.is_empty()).then(|| judged.join(", "))
}

/// Whether `text` parses as a value of `data_type`, as the CSV reader would read it.
fn arrow_cast_parse_ok(text: &str, data_type: &DataType) -> bool {
    let array = StringArray::from(vec![text]);
    cast_with_options(&array, data_type, &exact()).is_ok()
}

/// `schema` (inferred from JSON `objects`) with each top-level column Arrow typed as a double
/// because an integer in it is past `i64` typed as a decimal instead (Spark, too, infers a
/// decimal for such an integer, of the value's own digits): up to `u64`'s
/// 18446744073709551615 `decimal(20,0)`, else (up to 38 digits, either sign) `decimal(38,0)`,
/// which holds the column's every such value whatever another file holds. Each holds every such integer exactly; a double would keep only its first
/// 15 to 17 digits. `integer_keys[i]` names the top-level keys of `objects[i]` written as
/// integer literals of at most 38 digits (see [`integer_literal_keys`]): the JSON parser gives
/// a double for a longer one, as for `1.5`. An integer of more digits stays a double, as in
/// Spark.
fn with_wide_integers(
    schema: Schema,
    objects: &[serde_json::Map<String, serde_json::Value>],
    integer_keys: &[BTreeSet<String>],
) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            // `None`: not integers only; else the decimal type that holds them.
            let integers_only = || {
                let mut wide = None;
                for (i, object) in objects.iter().enumerate() {
                    match object.get(field.name()) {
                        None | Some(serde_json::Value::Null) => {}
                        Some(serde_json::Value::Number(n)) if n.is_i64() => {}
                        Some(serde_json::Value::Number(n)) if n.is_u64() => {
                            wide = wide.max(Some(20));
                        }
                        Some(serde_json::Value::Number(_))
                            if integer_keys
                                .get(i)
                                .is_some_and(|k| k.contains(field.name())) =>
                        {
                            wide = Some(38);
                        }
                        _ => return None,
                    }
                }
                wide
            };
            match (field.data_type() == &DataType::Float64)
                .then(integers_only)
                .flatten()
            {
                Some(precision) => field
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Decimal128(precision, 0)),
                // Inside a list or a struct, from the parsed values (walk 67: a nested integer
                // past `bigint` became a double, its digits lost).
                None if field.data_type().is_nested() => {
                    let values: Vec<&serde_json::Value> =
                        objects.iter().filter_map(|o| o.get(field.name())).collect();
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(nested_wide_integers(field.data_type(), &values))
                }
                None => field.as_ref().clone(),
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Makes text of each field of `objects` (rows, or one struct's values) that is an array or
/// an object in some and a string, number or boolean in others, in every one of them, so that
/// it infers as `string` (walk 67 (3): Arrow inferred a list that its scalars then failed to
/// decode into, or refused an object beside a scalar). Decoding reads the arrays and objects
/// into it as their JSON text, as Spark infers `string` for such a field and reads it so.
/// Fields whose values are all objects are looked at in turn.
fn mixed_as_text(objects: &mut [&mut serde_json::Map<String, serde_json::Value>]) {
    use serde_json::Value as J;
    let keys: BTreeSet<String> = objects.iter().flat_map(|o| o.keys().cloned()).collect();
    for key in keys {
        let values = || objects.iter().filter_map(|o| o.get(&key));
        let nested = values().any(|v| v.is_array() || v.is_object());
        let scalar = values().any(|v| v.is_string() || v.is_number() || v.is_boolean());
        if nested && scalar {
            for object in objects.iter_mut() {
                if let Some(value) = object.get_mut(&key)
                    && !value.is_null()
                    && !value.is_string()
                {
                    *value = J::String(value.to_string());
                }
            }
        } else if nested {
            let mut inner: Vec<&mut serde_json::Map<String, serde_json::Value>> = objects
                .iter_mut()
                .filter_map(|o| o.get_mut(&key)?.as_object_mut())
                .collect();
            if !inner.is_empty() {
                mixed_as_text(&mut inner);
            }
        }
    }
}

/// JSON `value` with the null items of its arrays, at any depth, left out (for inference).
fn without_null_items(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Array(items) => J::Array(
            items
                .into_iter()
                .filter(|item| !item.is_null())
                .map(without_null_items)
                .collect(),
        ),
        J::Object(fields) => J::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, without_null_items(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `data_type` (inferred from JSON `values`, a list's or struct's) with each `double` inside
/// it whose every value is an integer, and some past `bigint`, made the decimal that holds
/// them: `decimal(20,0)` up to `u64`, `decimal(38,0)` past it (a number serde reads as a
/// whole double there, `1e29`, is read exactly from its text when decoded).
fn nested_wide_integers(data_type: &DataType, values: &[&serde_json::Value]) -> DataType {
    use serde_json::Value as J;
    match data_type {
        DataType::Float64 => {
            let mut wide: Option<u8> = None;
            for value in values {
                match value {
                    J::Null => {}
                    J::Number(n) if n.is_i64() => {}
                    J::Number(n) if n.is_u64() => wide = wide.max(Some(20)),
                    J::Number(n)
                        if n.as_f64()
                            .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18) =>
                    {
                        wide = Some(38)
                    }
                    _ => return DataType::Float64,
                }
            }
            wide.map_or(DataType::Float64, |p| DataType::Decimal128(p, 0))
        }
        DataType::List(item) => {
            let items: Vec<&serde_json::Value> = values
                .iter()
                .filter_map(|v| v.as_array())
                .flatten()
                .collect();
            let inner = nested_wide_integers(item.data_type(), &items);
            DataType::List(Arc::new(item.as_ref().clone().with_data_type(inner)))
        }
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| {
                    let inner: Vec<&serde_json::Value> = values
                        .iter()
                        .filter_map(|v| v.as_object()?.get(f.name()))
                        .collect();
                    Arc::new(
                        f.as_ref()
                            .clone()
                            .with_data_type(nested_wide_integers(f.data_type(), &inner)),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The top-level keys of the JSON object `text` whose values are written as integer literals
/// (`-?digits`, no fraction or exponent) of at most 38 digits, the most a `decimal(38,0)`
/// holds. Nested objects' keys and keys inside strings are not counted.
fn integer_literal_keys(text: &[u8]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let (mut depth, mut i) = (0usize, 0);
    // The span of the last string seen at depth 1 (a key, when a `:` follows it).
    let mut last_string = None;
    while i < text.len() {
        match text[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 {
                    last_string = Some(start..(i + 1).min(text.len()));
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' if depth == 1 => {
                let key = last_string
                    .take()
                    .and_then(|span| serde_json::from_slice::<String>(&text[span]).ok());
                let start = i
                    + 1
                    + text[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_whitespace())
                        .count();
                let token = &text[start..];
                let len = token
                    .iter()
                    .take_while(|b| {
                        b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')
                    })
                    .count();
                let token = &token[..len];
                let digits = token.iter().filter(|b| b.is_ascii_digit()).count();
                let integer = token.strip_prefix(b"-").unwrap_or(token);
                // A key written twice counts as its last value (the parser keeps that one).
                if let Some(key) = key {
                    if (1..=38).contains(&digits) && integer.iter().all(u8::is_ascii_digit) {
                        keys.insert(key);
                    } else {
                        keys.remove(&key);
                    }
                }
                i = start + len;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

/// `schema` (inferred from JSON `objects`, where a time is a string) with each top-level string
/// column whose values are all timestamps (ISO 8601 / RFC 3339, with a time of day) typed as a
/// timestamp (as DuckDB's JSON reader does; Spark's `inferTimestamp` is off by default, which
/// leaves a string that a window over it then refuses).
fn with_inferred_timestamps(
    schema: Schema,
    objects: &[serde_json::Map<String, serde_json::Value>],
) -> Schema {
    let is_timestamp = is_timestamp_text;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let mut seen = Vec::new();
            let all = field.data_type() == &DataType::Utf8
                && objects.iter().all(|object| match object.get(field.name()) {
                    None | Some(serde_json::Value::Null) => true,
                    Some(serde_json::Value::String(text)) => {
                        seen.push(text.as_str());
                        is_timestamp(text)
                    }
                    Some(_) => false,
                });
            // Only where the column's type reads them all (a review: `9999-12-31T23:59:59Z`,
            // past a nanosecond timestamp's years, pinned a type its own file then failed
            // in), as CSV's inference asks.
            if all
                && !seen.is_empty()
                && exact_cast(
                    &(Arc::new(StringArray::from(seen)) as ArrayRef),
                    &INFERRED_TIMESTAMP,
                    None,
                )
                .is_ok()
            {
                field.as_ref().clone().with_data_type(INFERRED_TIMESTAMP)
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The type an inferred timestamp column takes, in JSON and CSV alike: nanoseconds, as a
/// declared `timestamp`, so that a finer fraction in a later file is never cut to the unit
/// the first files happened to need.
const INFERRED_TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Nanosecond, None);

/// `schema` with each timestamp column (without a time zone) typed as
/// [`INFERRED_TIMESTAMP`], whatever unit the CSV reader's inference gave it.
fn timestamps_in_nanoseconds(schema: Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(_, None) => f.as_ref().clone().with_data_type(INFERRED_TIMESTAMP),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

impl Decoded {
    fn from_batches(batches: Vec<RecordBatch>, skipped: u64) -> Self {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Self {
            batches,
            rows,
            skipped,
            unknown_rows: 0,
            unknown_fields: BTreeSet::new(),
        }
    }
}

/// Decodes JSON values into `schema`; `strict` refuses a field the schema does not know.
/// Numbers and booleans read into a string column as their text (as Spark reads them). An
/// integer column, or an integer field or item inside a struct or list column, takes only
/// integers (or strings of them): Arrow's decoder would truncate `2.5` to 2, so such columns
/// are decoded as text and then parsed exactly. A timestamp takes only text (RFC 3339 and the
/// forms Arrow parses): Arrow's decoder would take a number as a count in the column's unit
/// (seconds since the epoch read as nanoseconds), so a number is refused, its unit unknown,
/// unless `epoch` gives it (see [`exact_cast`]).
fn json_decode(
    bytes: &[u8],
    schema: &SchemaRef,
    epoch: Option<EpochUnit>,
    strict: bool,
    batch_size: usize,
) -> Result<Vec<RecordBatch>, ArrowError> {
    let integers: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| exact_as_text(f.data_type()).is_some())
        .map(|(i, _)| i)
        .collect();
    let as_read = if integers.is_empty() {
        Arc::clone(schema)
    } else {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                let f = f.as_ref().clone();
                match exact_as_text(f.data_type()) {
                    Some(text) => f.with_data_type(text),
                    None => f,
                }
            })
            .collect();
        Arc::new(Schema::new(fields))
    };
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(&as_read))
        .with_batch_size(batch_size.min(batch_rows(as_read.fields().len())))
        .with_strict_mode(strict)
        .with_coerce_primitive(true)
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
    check_float_range(bytes, &batches)?;
    if integers.is_empty() {
        return Ok(batches);
    }
    batches
        .into_iter()
        .map(|batch| {
            let mut columns = batch.columns().to_vec();
            for &i in &integers {
                columns[i] =
                    exact_cast(&columns[i], schema.field(i).data_type(), epoch).map_err(|e| {
                        let field = schema.field(i);
                        // A number (JSON's, read as its text) where a time was expected.
                        let number = || {
                            columns[i]
                                .as_any()
                                .downcast_ref::<StringArray>()
                                .is_some_and(|a| {
                                    a.iter().flatten().any(|v| v.parse::<f64>().is_ok())
                                })
                        };
                        let time = matches!(field.data_type(), DataType::Timestamp(_, _));
                        let hint = if epoch.is_none() && time && number() {
                            EPOCH_HINT
                        } else if time && e.to_string().contains(TIMESTAMP_FROM) {
                            TIMESTAMP_TEXT_HINT
                        } else {
                            out_of_range_hint(field.data_type(), &e.to_string())
                        };
                        // Inside a struct or list: the value's path (walk 126 (5): only
                        // the column was named).
                        let at = match field.data_type() {
                            DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) => (0
                                ..columns[i].len())
                                .find_map(|row| {
                                    misfit_path(&columns[i], field.data_type(), row, epoch)
                                })
                                .filter(|path| !path.is_empty())
                                .map(|path| format!(" (at `{}{path}`)", field.name()))
                                .unwrap_or_default(),
                            _ => String::new(),
                        };
                        ArrowError::JsonError(format!(
                            "column `{}` is {}{at}: {e}{hint}",
                            field.name(),
                            crate::format::sql_type_name(field.data_type())
                        ))
                    })?;
            }
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        })
        .collect()
}

/// Where in row `row` of `column` (a nested column as read, its leaves text) the value is
/// that does not cast into `to` ([`exact_cast`]): its path below the column, `[2].qty` (list
/// items counted from 0, as the unknown fields' paths are), empty for the row's value itself;
/// `None` where the row casts.
fn misfit_path(
    column: &ArrayRef,
    to: &DataType,
    row: usize,
    epoch: Option<EpochUnit>,
) -> Option<String> {
    use datafusion::arrow::array::{Array as _, AsArray as _};
    if column.is_null(row) {
        return None;
    }
    match (column.data_type(), to) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let structs = column.as_struct();
            fields.iter().find_map(|field| {
                let child = structs.column_by_name(field.name())?;
                misfit_path(child, field.data_type(), row, epoch)
                    .map(|below| format!(".{}{below}", field.name()))
            })
        }
        (DataType::List(_), DataType::List(item) | DataType::LargeList(item)) => {
            let items = column.as_list::<i32>().value(row);
            (0..items.len()).find_map(|j| {
                misfit_path(&items, item.data_type(), j, epoch).map(|below| format!("[{j}]{below}"))
            })
        }
        _ => exact_cast(&column.slice(row, 1), to, epoch)
            .is_err()
            .then(String::new),
    }
}

/// Refuses a float column (at any depth) of `batches`, decoded from the JSON `bytes`, holding
/// an infinity that a number past the type's range gave, which Arrow's parser reads as
/// infinity (`3.4e39` into a `float`, `1e309` into a `double`), where DuckDB refuses it
/// (walk 66: written on as `inf`, or as null in JSON output). JSON has no infinity but as a
/// word in a string (`"Infinity"`, `"-inf"`), which is taken, as DuckDB and Spark take it and
/// as CSV's words are (walk 91: refused as a number past its range).
fn check_float_range(bytes: &[u8], batches: &[RecordBatch]) -> Result<(), ArrowError> {
    use datafusion::arrow::datatypes::{Float32Type, Float64Type};
    /// The range of the first float type in `column` (at any depth of structs, lists and
    /// maps) that holds an infinity, with the way to read such a number.
    fn infinite(column: &ArrayRef) -> Option<(&'static str, &'static str)> {
        match column.data_type() {
            DataType::Float32 => column
                .as_primitive::<Float32Type>()
                .iter()
                .flatten()
                .any(f32::is_infinite)
                .then_some(("float", "±3.4e38: declare it `double`")),
            DataType::Float64 => column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .any(f64::is_infinite)
                .then_some((
                    "double",
                    "±1.8e308: declare it `string` and read it in the query",
                )),
            DataType::Struct(_) => column.as_struct().columns().iter().find_map(infinite),
            DataType::List(_) => infinite(column.as_list::<i32>().values()),
            DataType::LargeList(_) => infinite(column.as_list::<i64>().values()),
            DataType::Map(..) => {
                let entries: ArrayRef = Arc::new(column.as_map().entries().clone());
                infinite(&entries)
            }
            _ => None,
        }
    }
    // An infinity that the row's JSON writes as a word in a string (`"Infinity"`, `"-inf"`),
    // at any depth, is taken, as CSV's words are (walk 91; a JSON sink writes them so, audit
    // 92b); any other (a number past the range, written bare or in a string, `"1e400"`: the
    // review of walk 91) is refused. Looked at only where an infinity is there.
    let mut values: Option<Option<Vec<serde_json::Value>>> = None;
    let mut first_row = 0;
    for batch in batches {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let Some((kind, range)) = infinite(column) else {
                continue;
            };
            let parsed = values.get_or_insert_with(|| {
                serde_json::Deserializer::from_slice(bytes)
                    .into_iter::<serde_json::Value>()
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
            });
            let words = parsed.as_ref().is_some_and(|values| {
                (0..column.len()).all(|row| {
                    let value = values
                        .get(first_row + row)
                        .and_then(|v| v.get(field.name()))
                        .unwrap_or(&serde_json::Value::Null);
                    infinities_are_words(column, row, value)
                })
            });
            if words {
                continue;
            }
            let what = match field.data_type() {
                DataType::Float32 | DataType::Float64 => String::new(),
                _ => format!(", at a {kind} inside it"),
            };
            return Err(ArrowError::JsonError(format!(
                "column `{}` is {}{what}: a number past its range ({range}), which would \
                 read as infinity",
                field.name(),
                crate::format::sql_type_name(field.data_type())
            )));
        }
        first_row += batch.num_rows();
    }
    Ok(())
}

/// Whether every infinity in row `row` of `column`, at any depth of structs, lists and maps,
/// is written in `value` (the row's JSON for the column) as a word in a string (`"-Infinity"`).
fn infinities_are_words(column: &ArrayRef, row: usize, value: &serde_json::Value) -> bool {
    use datafusion::arrow::datatypes::{Float32Type, Float64Type};
    if column.is_null(row) {
        return true;
    }
    let word = || value.as_str().is_some_and(infinity_word);
    match column.data_type() {
        DataType::Float32 => {
            !column
                .as_primitive::<Float32Type>()
                .value(row)
                .is_infinite()
                || word()
        }
        DataType::Float64 => {
            !column
                .as_primitive::<Float64Type>()
                .value(row)
                .is_infinite()
                || word()
        }
        DataType::Struct(fields) => {
            let columns = column.as_struct().columns();
            fields.iter().zip(columns).all(|(field, child)| {
                let inner = value.get(field.name()).unwrap_or(&serde_json::Value::Null);
                infinities_are_words(child, row, inner)
            })
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let (values, range) = match column.data_type() {
                DataType::List(_) => {
                    let list = column.as_list::<i32>();
                    let offsets = list.value_offsets();
                    (
                        list.values(),
                        (offsets[row] as usize, offsets[row + 1] as usize),
                    )
                }
                _ => {
                    let list = column.as_list::<i64>();
                    let offsets = list.value_offsets();
                    (
                        list.values(),
                        (offsets[row] as usize, offsets[row + 1] as usize),
                    )
                }
            };
            let items = value.as_array();
            (range.0..range.1).enumerate().all(|(j, at)| {
                let inner = items
                    .and_then(|items| items.get(j))
                    .unwrap_or(&serde_json::Value::Null);
                infinities_are_words(values, at, inner)
            })
        }
        DataType::Map(..) => {
            let map = column.as_map();
            let offsets = map.value_offsets();
            let keys = map.keys();
            let Some(keys) = keys.as_string_opt::<i32>() else {
                return false;
            };
            (offsets[row] as usize..offsets[row + 1] as usize).all(|at| {
                let inner = value
                    .get(keys.value(at))
                    .unwrap_or(&serde_json::Value::Null);
                infinities_are_words(map.values(), at, inner)
            })
        }
        _ => true,
    }
}

/// The rows of `column` (`float` or `double`; none of another type) that hold an infinity.
fn infinite_rows(column: &ArrayRef) -> Vec<usize> {
    use datafusion::arrow::datatypes::{Float32Type, Float64Type};
    match column.data_type() {
        DataType::Float32 => column
            .as_primitive::<Float32Type>()
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.is_some_and(f32::is_infinite).then_some(i))
            .collect(),
        DataType::Float64 => column
            .as_primitive::<Float64Type>()
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.is_some_and(f64::is_infinite).then_some(i))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `text` is infinity written as a word (`inf`, `Infinity`, signed or not, in any
/// case), as DuckDB and Spark read it.
fn infinity_word(text: &str) -> bool {
    let word = text.trim().trim_start_matches(['+', '-']);
    word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("infinity")
}

/// What to do about a time a nanosecond timestamp cannot hold (before 1677-09-21 or after
/// 2262-04-11: an `i64` of nanoseconds), which `timestamp`, inferred or declared, reads as.
const NANOSECOND_RANGE_HINT: &str = " (a `timestamp` counts nanoseconds, so it holds years \
    1677 to 2262; declare the column `timestamp(6)` in the source's `schema:`, microseconds, for \
    years far beyond. A column with such years and also times to the nanosecond fits no \
    timestamp type: declare it `string` and convert it in the query, or skip the rows that do \
    not fit with `on_error: skip`)";

/// [`NANOSECOND_RANGE_HINT`] where a cast into a nanosecond `data_type` overflowed.
fn out_of_range_hint(data_type: &DataType, error: &str) -> &'static str {
    if matches!(data_type, DataType::Timestamp(TimeUnit::Nanosecond, _))
        && error.contains("Overflow")
    {
        NANOSECOND_RANGE_HINT
    } else {
        ""
    }
}

/// How Arrow's parser begins its error for text that is no timestamp it reads.
const TIMESTAMP_FROM: &str = "Error parsing timestamp from '";

/// The forms a timestamp column reads, and what to do about another (Arrow's
/// `string_to_datetime`: RFC 3339 and ISO 8601 with a `T` or a space, seconds required).
const TIMESTAMP_TEXT_HINT: &str = " (a timestamp is read from ISO 8601 text, such as \
     2026-01-01T10:00:00Z, 2026-01-01 10:00 or 2026-01-01T10:00:00.250+02:00; for \
     another form, declare the column `string` and parse it in the query with its format, \
     e.g. `to_timestamp(col, '%Y-%m-%dT%H:%M')` or `to_timestamp(col, '%d/%m/%Y %H:%M:%S')`)";

/// What to do about a number in a timestamp column read without `epoch_unit`.
const EPOCH_HINT: &str = " (a timestamp is read from text such as 2026-01-01T10:00:00Z; a \
     number's unit is not known: set the source's `epoch_unit` to `seconds`, `milliseconds`, \
     `microseconds` or `nanoseconds`, or declare the column `bigint` and convert it in the \
     query, e.g. `to_timestamp_seconds(col)`)";

/// The options of an exact cast: a value that does not fit its type is an error, not a null.
fn exact() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// `array`, as decoded (text where [`exact_as_text`] says), cast to `target` exactly. With
/// `epoch`, a number in a timestamp, at any depth (`-12`, `1767261601.25`, `1.7e9`), counts
/// that unit since 1970-01-01T00:00:00Z, and text still reads as a time; a number with a finer
/// fraction than the column's unit holds, or outside its range, is an error naming it.
pub(super) fn exact_cast(
    array: &ArrayRef,
    target: &DataType,
    epoch: Option<EpochUnit>,
) -> Result<ArrayRef, ArrowError> {
    // A time of day to the minute (`2026-01-01 10:00`), as Spark and DuckDB read it: with
    // `:00` seconds written in, Arrow's parser (which wants them) reads the same instant.
    let with_seconds: ArrayRef;
    let array = match (target, array.data_type()) {
        (DataType::Timestamp(..), DataType::Utf8) => {
            match minutes_with_seconds(array.as_string::<i32>()) {
                Some(text) => {
                    with_seconds = Arc::new(text);
                    &with_seconds
                }
                None => array,
            }
        }
        _ => array,
    };
    // Arrow's parsers cut a time's fraction to the column's unit, and take a date out of a
    // time of day: a text time is taken only where it fits exactly.
    match (target, array.data_type()) {
        (DataType::Timestamp(unit, _), DataType::Utf8) => {
            check_time_fraction(array.as_string::<i32>(), *unit)?;
        }
        (DataType::Date32 | DataType::Date64, DataType::Utf8) => {
            check_plain_dates(array.as_string::<i32>())?;
        }
        (DataType::Time32(unit) | DataType::Time64(unit), DataType::Utf8) => {
            check_times_of_day(array.as_string::<i32>(), *unit)?;
        }
        _ => {}
    }
    match (target, array.data_type()) {
        (DataType::Float32 | DataType::Float64, DataType::Utf8) => {
            float_from_text(array.as_string::<i32>(), target)
        }
        (
            DataType::Decimal32(_, scale)
            | DataType::Decimal64(_, scale)
            | DataType::Decimal128(_, scale)
            | DataType::Decimal256(_, scale),
            DataType::Utf8,
        ) => {
            // Arrow's parsers round (or cut) digits past the scale; a number is taken only
            // where it fits exactly.
            let text = array.as_string::<i32>();
            let plain = text
                .iter()
                .map(|value| {
                    value
                        .map(|number| {
                            plain_decimal(number, *scale).map_err(|why| {
                                ArrowError::CastError(format!(
                                    "the number {number} {why} (a decimal is never rounded: \
                                     declare a scale that holds it, or round it in the query)"
                                ))
                            })
                        })
                        .transpose()
                })
                .collect::<Result<StringArray, _>>()?;
            cast_with_options(&plain, target, &exact())
        }
        (DataType::Timestamp(column_unit, _), DataType::Utf8) if epoch.is_some() => {
            let unit = epoch.expect("matched");
            let text = array.as_string::<i32>();
            // The text is cast as before; the numbers are counted here.
            let words: StringArray = text.iter().map(|v| v.filter(|v| !is_number(v))).collect();
            let from_words = cast_with_options(&words, target, &exact())?;
            let from_words = cast_with_options(&from_words, &DataType::Int64, &exact())?;
            let (column_digits, column_units) = match column_unit {
                TimeUnit::Second => (9, "seconds"),
                TimeUnit::Millisecond => (6, "milliseconds"),
                TimeUnit::Microsecond => (3, "microseconds"),
                TimeUnit::Nanosecond => (0, "nanoseconds"),
            };
            let shift = unit.nanosecond_digits() - column_digits;
            let counts = text
                .iter()
                .zip(from_words.as_primitive::<Int64Type>().iter())
                .map(|(value, from_word)| match value {
                    Some(number) if is_number(number) => {
                        epoch_count(number, shift).map(Some).map_err(|why| {
                            ArrowError::CastError(format!(
                                "the number {number}, in {unit} since the epoch, {why} a \
                                 timestamp in {column_units}"
                            ))
                        })
                    }
                    _ => Ok(from_word),
                })
                .collect::<Result<Int64Array, _>>()?;
            cast_with_options(&counts, target, &exact())
        }
        (DataType::Struct(fields), DataType::Struct(_)) => {
            let array = array.as_struct();
            let columns = fields
                .iter()
                .zip(array.columns())
                .map(|(field, column)| exact_cast(column, field.data_type(), epoch))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                array.nulls().cloned(),
            )?))
        }
        (DataType::List(item), DataType::List(_)) => {
            let array = array.as_list::<i32>();
            let values = exact_cast(array.values(), item.data_type(), epoch)?;
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(item),
                array.offsets().clone(),
                values,
                array.nulls().cloned(),
            )?))
        }
        (DataType::LargeList(item), DataType::LargeList(_)) => {
            let array = array.as_list::<i64>();
            let values = exact_cast(array.values(), item.data_type(), epoch)?;
            Ok(Arc::new(LargeListArray::try_new(
                Arc::clone(item),
                array.offsets().clone(),
                values,
                array.nulls().cloned(),
            )?))
        }
        _ => cast_with_options(array, target, &exact()),
    }
}

/// `text` with `:00` seconds written into each time of day given to the minute (ISO 8601's
/// `2026-01-01T10:00`, `2026-01-01 10:00+02:00`); `None` where no value is one.
fn minutes_with_seconds(text: &StringArray) -> Option<StringArray> {
    fn to_the_minute(value: &str) -> bool {
        let b = value.as_bytes();
        let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
        b.len() >= 16
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && (b[10] == b'T' || b[10] == b' ')
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && (b.len() == 16 || matches!(b[16], b'Z' | b'z' | b'+' | b'-' | b' '))
    }
    if !text.iter().flatten().any(to_the_minute) {
        return None;
    }
    Some(
        text.iter()
            .map(|value| {
                value.map(|v| {
                    if to_the_minute(v) {
                        format!("{}:00{}", &v[..16], &v[16..])
                    } else {
                        v.to_string()
                    }
                })
            })
            .collect(),
    )
}

/// The digits of a second a time in `unit` holds.
fn digits_of_a_second(unit: TimeUnit) -> usize {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Refuses a time in `text` (not a number: those are counted in an `epoch_unit`) whose
/// fraction of a second is finer than `unit` holds (`10:00:00.999` in a `timestamp(0)`).
fn check_time_fraction(text: &StringArray, unit: TimeUnit) -> Result<(), ArrowError> {
    let kept = digits_of_a_second(unit);
    for time in text.iter().flatten() {
        if is_number(time) {
            continue;
        }
        check_no_second_60(time)?;
        // The fraction follows the seconds: the first `.` after the first `:`.
        let fraction = time
            .find(':')
            .and_then(|colon| time[colon..].find('.').map(|dot| &time[colon + dot + 1..]))
            .map(|rest| &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()])
            .unwrap_or_default();
        if fraction.len() > kept && fraction.as_bytes()[kept..].iter().any(|b| *b != b'0') {
            // The row fails as it is read, before the query: a `date_trunc` there cannot
            // help, but a column that holds the time can.
            let advice = match fraction.len() {
                digits @ 7..=9 => format!(
                    "declare `timestamp({})`, which holds it (a `date_trunc` in the query then \
                     cuts it where wanted; it holds years 1677 to 2262 only, so a column that \
                     also has times beyond those fits no timestamp type: declare it `string` \
                     and convert it in the query, or skip the rows that do not fit with \
                     `on_error: skip`)",
                    digits.div_ceil(3) * 3
                ),
                digits @ 0..=6 => format!(
                    "declare `timestamp({})`, which holds it (a `date_trunc` in the query then \
                     cuts it where wanted)",
                    digits.div_ceil(3) * 3
                ),
                _ => "no timestamp column holds a fraction finer than nanoseconds: declare the \
                      column `string` and cut the fraction in the query, \
                      `to_timestamp(regexp_replace(<column>, '(\\.[0-9]{9})[0-9]+', '\\1'))`"
                    .to_string(),
            };
            return Err(ArrowError::CastError(format!(
                "the time {time} has a finer fraction of a second than the column's \
                 `timestamp({kept})` holds (a time is never cut: {advice})"
            )));
        }
    }
    Ok(())
}

/// `text` cast to `target` (`float` or `double`), where no number past the type's range is
/// read as infinity; infinity written as a word (`inf`, `-Infinity`) is taken, as DuckDB and
/// Spark take it. The same rule as JSON's (`check_float_range`).
fn float_from_text(text: &StringArray, target: &DataType) -> Result<ArrayRef, ArrowError> {
    let cast = cast_with_options(text, target, &exact())?;
    for i in infinite_rows(&cast) {
        let written = text.value(i).trim();
        if !infinity_word(written) {
            let range = if target == &DataType::Float32 {
                "±3.4e38: declare it `double`"
            } else {
                "±1.8e308: declare it `string` and read it in the query"
            };
            return Err(ArrowError::CastError(format!(
                "the number {written} is past its range ({range}), which would read as infinity"
            )));
        }
    }
    Ok(cast)
}

/// Refuses a time whose seconds are 60 (`10:15:60`), which Arrow's parser takes as the next
/// minute's first second; DuckDB, Spark and PostgreSQL's `time` refuse it too.
fn check_no_second_60(time: &str) -> Result<(), ArrowError> {
    // The seconds follow the second `:` of the time.
    let seconds = time
        .find(':')
        .and_then(|first| time[first + 1..].find(':').map(|second| first + second + 2))
        .map(|at| &time[at..])
        .map(|rest| &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()]);
    if seconds == Some("60") {
        return Err(ArrowError::CastError(format!(
            "the time {time} has second 60, which no time holds (a leap second is not kept: \
             it would be read as the next minute)"
        )));
    }
    Ok(())
}

/// Refuses a value in `text` for a `time` column of `unit` that is not a time of day written
/// out (`10:00:00.5`): a number, which Arrow's parser takes as a count of the column's unit
/// since midnight (3600 as 3.6 microseconds past it); second 60; and a fraction finer than
/// the column holds, which it would cut. DuckDB refuses the number too.
fn check_times_of_day(text: &StringArray, unit: TimeUnit) -> Result<(), ArrowError> {
    let kept = digits_of_a_second(unit);
    for time in text.iter().flatten() {
        let time = time.trim();
        if !time.contains(':') {
            return Err(ArrowError::CastError(format!(
                "the value {time} is not a time of day written out (`10:00:00`, `10:00:00.5`): \
                 a number is not read as one, whatever its unit. Declare the column as a \
                 number and make the time in the query where that is meant"
            )));
        }
        check_no_second_60(time)?;
        let fraction = time
            .find('.')
            .map(|dot| &time[dot + 1..])
            .map(|rest| &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()])
            .unwrap_or_default();
        if fraction.len() > kept && fraction.as_bytes()[kept..].iter().any(|b| *b != b'0') {
            return Err(ArrowError::CastError(format!(
                "the time {time} has a finer fraction of a second than the column holds \
                 ({kept} digits; a time is never cut)"
            )));
        }
    }
    Ok(())
}

/// Refuses a value in `text` for a `date` column that has a time of day
/// (`2026-01-01T23:30:00-05:00`), which the column would drop, shifting the date where the
/// time has a zone.
fn check_plain_dates(text: &StringArray) -> Result<(), ArrowError> {
    for value in text.iter().flatten() {
        let value = value.trim();
        // Midnight without a zone is the date itself.
        let midnight = [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            // ISO 8601's compact time, which Arrow's parser reads too.
            "%Y-%m-%dT%H%M%S%.f",
            "%Y-%m-%d %H%M%S%.f",
        ]
        .iter()
        .any(|format| {
            chrono::NaiveDateTime::parse_from_str(value, format)
                .is_ok_and(|t| t.time() == chrono::NaiveTime::MIN)
        });
        if midnight || chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok() {
            continue;
        }
        // A time of day written out, or in ISO 8601's compact form (`2026-01-01T003000Z`,
        // `2026-01-01 103000`): anything after a date.
        let after_a_date = value.len() > 10
            && value
                .get(..10)
                .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
        if after_a_date || value.contains(':') || value.contains('T') {
            return Err(ArrowError::CastError(format!(
                "the value {value} has a time of day, which a `date` column does not hold: \
                 declare the column `timestamp`, and take the date in the query \
                 (`CAST(col AS DATE)`) where that is what is meant"
            )));
        }
        // Arrow's parser reads eight digits as `YYYYMMDD`; DuckDB and Spark refuse them.
        if is_number(value) {
            return Err(ArrowError::CastError(format!(
                "the value {value} is a number, not a date written out (`2026-01-01`): declare \
                 the column as a number (or `string`) and make the date in the query \
                 (`to_date(CAST(col AS VARCHAR), '%Y%m%d')`) where that is what is meant"
            )));
        }
    }
    Ok(())
}

/// `text`, a number (`-1.50`, `+2`, `.5`, `1.5e-3`), written out with at most `scale` digits
/// after the point, for Arrow's decimal parser; the error says why it cannot be ("has more
/// digits after the point than the column's scale of 2 holds"). Text that is not such a number
/// is given back as it is, for the parser's own error.
fn plain_decimal(text: &str, scale: i8) -> Result<String, String> {
    let as_is = || Ok(text.to_string());
    let trimmed = text.trim();
    let (sign, rest) = match trimmed.as_bytes().first() {
        Some(b'-') => ("-", &trimmed[1..]),
        Some(b'+') => ("", &trimmed[1..]),
        _ => ("", trimmed),
    };
    let (mantissa, exponent, written) = match rest.find(['e', 'E']) {
        Some(at) => match rest[at + 1..].parse::<i64>() {
            Ok(exponent) => (&rest[..at], exponent, true),
            Err(_) => return as_is(),
        },
        None => (rest, 0, false),
    };
    if exponent.unsigned_abs() > 1000 {
        return Err("is out of the range of any decimal".to_string());
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return as_is();
    }
    let Ok(scale) = usize::try_from(scale) else {
        return as_is();
    };
    if !written && fraction.len() <= scale {
        return as_is();
    }
    let all = format!("{whole}{fraction}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Ok("0".to_string());
    }
    // Where the point falls in `digits` (leading zeros gone) once the exponent is applied.
    let leading_zeros = (all.len() - digits.len()) as i64;
    let point = whole.len() as i64 - leading_zeros + exponent;
    let (int_part, frac_part) = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
        ("0".to_string(), format!("{zeros}{digits}"))
    } else {
        let point = usize::try_from(point).unwrap_or(usize::MAX);
        if point >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point - digits.len())),
                String::new(),
            )
        } else {
            (digits[..point].to_string(), digits[point..].to_string())
        }
    };
    if frac_part.len() > scale && frac_part.as_bytes()[scale..].iter().any(|b| *b != b'0') {
        return Err(format!(
            "has more digits after the point than the column's scale of {scale} holds"
        ));
    }
    let kept = &frac_part[..frac_part.len().min(scale)];
    Ok(if kept.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{kept}")
    })
}

/// Whether `text` is a number as JSON writes one: `-?digits(.digits)?([eE][+-]?digits)?`.
fn is_number(text: &str) -> bool {
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = text.strip_prefix('-').unwrap_or(text);
    let whole = digits(rest);
    if whole == 0 {
        return false;
    }
    let mut rest = &rest[whole..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = digits(fraction);
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        let n = digits(exponent);
        return n > 0 && n == exponent.len();
    }
    rest.is_empty()
}

/// The number `text` (see [`is_number`]) times 10^`shift`, exactly, as an `i64`; the error
/// says why not ("has a finer fraction than", "is out of the range of").
fn epoch_count(text: &str, shift: i32) -> Result<i64, &'static str> {
    const FINER: &str = "has a finer fraction than";
    const OUTSIDE: &str = "is out of the range of";
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (
            &rest[..at],
            rest[at + 1..].parse::<i32>().map_err(|_| OUTSIDE)?,
        ),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| OUTSIDE)?
    };
    let power = i64::from(exponent) + i64::from(shift) - fraction.len() as i64;
    let ten = |n: i64| u32::try_from(n).ok().and_then(|n| 10_i128.checked_pow(n));
    let scaled = if value == 0 {
        0
    } else if power >= 0 {
        ten(power)
            .and_then(|p| value.checked_mul(p))
            .ok_or(OUTSIDE)?
    } else {
        match ten(-power) {
            Some(p) if value % p == 0 => value / p,
            _ => return Err(FINER),
        }
    };
    let signed = if negative { -scaled } else { scaled };
    i64::try_from(signed).map_err(|_| OUTSIDE)
}

/// Whether a CSV column of `data_type` is read as text and then cast by [`epoch_times`]: a
/// timestamp (Arrow's CSV parser cuts a fraction finer than the unit, and reads no time given
/// to the minute), a date, and a decimal (it cuts a date's time of day and the digits past a
/// decimal's scale).
fn csv_read_as_text(data_type: &DataType, _epoch: Option<EpochUnit>) -> bool {
    match data_type {
        DataType::Timestamp(..) => true,
        DataType::Date32 | DataType::Date64 => true,
        DataType::Time32(_) | DataType::Time64(_) => true,
        // Its parser reads a number past the type's range as infinity.
        DataType::Float32 | DataType::Float64 => true,
        t => t.is_decimal(),
    }
}

/// `schema` with the columns [`csv_read_as_text`] names read as text (then cast by
/// [`epoch_times`]).
fn times_as_text(schema: &SchemaRef, epoch: Option<EpochUnit>) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| csv_read_as_text(f.data_type(), epoch))
    {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if csv_read_as_text(f.data_type(), epoch) {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A batch read in [`times_as_text`]'s schema, with its text columns cast exactly to
/// `schema`'s (numbers in timestamps counted in `epoch`); the error names the column.
fn epoch_times(
    batch: RecordBatch,
    schema: &SchemaRef,
    epoch: Option<EpochUnit>,
) -> Result<RecordBatch, ArrowError> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| match field.data_type() {
            t if csv_read_as_text(t, epoch) => exact_cast(column, field.data_type(), epoch)
                .map_err(|e| {
                    let e = match e {
                        ArrowError::CastError(why) => why,
                        e => e.to_string(),
                    };
                    let e = e.replace("Cannot cast string '", "Cannot cast '");
                    let hint = match quoted_value(&e) {
                        // Walk 89 (U9): `null` written out, not read as a null.
                        Some((value, _)) if is_null_word(value) => format!(
                            " (the text `{value}` is read as text, not as a null: a CSV field \
                             is null only where it is empty, unless the source's `null_value` \
                             names another text, `null_value: '{value}'`; one text a source: \
                             where it names another already, declare the column `string` and \
                             write `CAST(nullif({column}, '{value}') AS {kind})` in the query)",
                            column = field.name(),
                            kind = crate::format::sql_type_name(field.data_type()),
                        ),
                        _ => out_of_range_hint(field.data_type(), &e).to_string(),
                    };
                    ArrowError::ParseError(format!(
                        "column `{}` is {}: {}{hint}",
                        field.name(),
                        crate::format::sql_type_name(field.data_type()),
                        without_internal_decimal(&e)
                    ))
                }),
            _ => Ok(Arc::clone(column)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
}

/// `data_type` with every integer and timestamp in it (the type itself, a struct's field, a
/// list's item) read as text, to be parsed exactly; `None` when it holds neither.
fn exact_as_text(data_type: &DataType) -> Option<DataType> {
    let field_as_text = |f: &FieldRef| {
        exact_as_text(f.data_type()).map(|t| Arc::new(f.as_ref().clone().with_data_type(t)))
    };
    match data_type {
        t if t.is_integer() => Some(DataType::Utf8),
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => Some(DataType::Utf8),
        DataType::Time32(_) | DataType::Time64(_) => Some(DataType::Utf8),
        t if t.is_decimal() => Some(DataType::Utf8),
        DataType::List(item) => field_as_text(item).map(DataType::List),
        DataType::LargeList(item) => field_as_text(item).map(DataType::LargeList),
        DataType::Struct(fields) => {
            let read: Vec<Option<FieldRef>> = fields.iter().map(field_as_text).collect();
            read.iter().any(Option::is_some).then(|| {
                DataType::Struct(
                    fields
                        .iter()
                        .zip(read)
                        .map(|(f, t)| t.unwrap_or_else(|| Arc::clone(f)))
                        .collect(),
                )
            })
        }
        _ => None,
    }
}

/// Whether some row of `batch` is null in every column (no column without nulls rules it out
/// at once).
fn has_a_row_of_nulls(batch: &RecordBatch) -> bool {
    if batch.num_columns() == 0 || batch.columns().iter().any(|c| c.null_count() == 0) {
        return false;
    }
    (0..batch.num_rows()).any(|row| batch.columns().iter().all(|c| c.is_null(row)))
}

/// One JSON value of a file, as the slow path found it.
struct Value<'a> {
    /// Its text.
    text: &'a [u8],
    /// The 1-based line it starts on.
    line: usize,
    /// Its fields the schema does not know, by path (`amt`, `payload.new`, `items[2].x`).
    unknown: serde_json::Map<String, serde_json::Value>,
    /// Its fields of the schema's columns whose values do not fit their types, rescued (with
    /// a rescued-data column): their columns are null in its row.
    misfit: serde_json::Map<String, serde_json::Value>,
    /// Whether it has any of the schema's (top-level) fields.
    known: bool,
}

/// How [`json`] reads a file's values.
#[derive(Clone, Copy)]
struct JsonOptions<'a> {
    /// Top-level field names that are no unknown fields (partition folders' keys).
    also_known: &'a [&'a str],
    /// What to do with a value that does not fit.
    on_error: OnError,
    /// Whether to keep each value's unknown fields as JSON text.
    rescue: bool,
    /// The unit of a number in a timestamp column.
    epoch: Option<EpochUnit>,
}

/// Reads JSON values (one per line, or spread over lines) into `schema`. Fields named neither
/// in `schema` nor in `also_known` (top-level names), and fields of objects inside that their
/// struct type does not name, are unknown: counted, and kept as a JSON object's text where
/// `rescue` asks for it. The fast path decodes the file at once and refuses unknown fields;
/// only where that fails does the slow path go value by value, to find the unknown fields and
/// to name the first bad line (`on_error: fail`) or to skip and count every bad one
/// (`on_error: skip`).
fn json(
    file: &str,
    bytes: &[u8],
    schema: &SchemaRef,
    options: &JsonOptions<'_>,
) -> Result<FileRows, SourceError> {
    let JsonOptions {
        also_known,
        on_error,
        rescue,
        epoch,
    } = *options;
    if let Ok(batches) = json_decode(bytes, schema, epoch, true, BATCH_SIZE)
        && !batches.iter().any(has_a_row_of_nulls)
    {
        return Ok(FileRows::plain(Decoded::from_batches(batches, 0)));
    }
    let scanned = json_values(file, bytes, schema, also_known, on_error);
    let (mut values, mut skipped) = (scanned.values, scanned.skipped);
    // Each skipped value's note, given in line order once every pass has found its own.
    let mut notes = scanned.notes;
    // The first value that fails (`on_error: fail`), once every value before it is found
    // good: a later value's failure is not the one to name.
    let mut failed = scanned.failed;
    // A value with none of the schema's fields (`{}`, or `TS` where the column is `ts`) is no
    // row of this source: a row of nulls would hide it. Kept only where its fields are
    // rescued.
    if !rescue && !schema.fields().is_empty() {
        let lower_names = lower_field_names(schema.fields());
        let mut kept = Vec::with_capacity(values.len());
        for value in values {
            // A field named as a column but for case (`ts` where the column is `TS`) would
            // leave the column null in every such row.
            // At any depth: `{"user":{"ID":5}}` where the struct's field is `id` (a review: a
            // struct of nulls, only counted). The value is parsed again only where an unknown
            // field's name is a schema field's but for case.
            let maybe_twin = value.unknown.keys().any(|path| {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                lower_names.contains(&leaf.to_lowercase())
            });
            let case_twin = if !maybe_twin {
                None
            } else {
                serde_json::from_slice::<serde_json::Value>(value.text)
                    .ok()
                    .and_then(|object| {
                        value.unknown.keys().find_map(|field| {
                            case_twin_of(schema.fields(), &object, field)
                                .map(|column| (field.clone(), column))
                        })
                    })
            };
            if let Some((field, column)) = case_twin {
                if on_error == OnError::Skip {
                    notes.push((
                        value.line,
                        format!("the value has a field `{field}` where the column is `{column}`"),
                    ));
                    skipped += 1;
                    continue;
                }
                failed = Some(SourceError::Malformed {
                    file: file.to_string(),
                    line: Some(value.line),
                    reason: format!(
                        "the value has a field `{field}` where the source's column is \
                         `{column}`: names are matched exactly, with their case, so `{column}` \
                         would be null; name the {} `{}` in the source's `schema:` (and the \
                         query)",
                        if field.contains('.') {
                            "struct's field"
                        } else {
                            "column"
                        },
                        field.rsplit('.').next().unwrap_or(&field)
                    ),
                });
                break;
            }
            if value.known {
                kept.push(value);
            } else if on_error == OnError::Skip {
                notes.push((
                    value.line,
                    "the value has none of the source's columns".to_string(),
                ));
                skipped += 1;
            } else {
                // Named only if no value before it fails to decode: decoding stops here.
                failed = Some(SourceError::Malformed {
                    file: file.to_string(),
                    line: Some(value.line),
                    reason: format!(
                        "the value has none of the source's columns ({}){}",
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if value.unknown.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", only {}",
                                value.unknown.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    ),
                });
                break;
            }
        }
        values = kept;
    }
    let joined = |values: &[Value<'_>]| {
        let mut text = Vec::with_capacity(bytes.len());
        for value in values {
            text.extend_from_slice(value.text);
            text.push(b'\n');
        }
        text
    };
    // An array or object where the schema has a string is read as its JSON text (walk 67 (3):
    // a field that is text in one file and an array in the next), as Spark's and DuckDB's JSON
    // readers read it into a string column; numbers and booleans are read as text already.
    let as_text: Vec<Option<Vec<u8>>> = if has_text_column(schema.fields()) {
        values
            .iter()
            .map(|value| nested_as_text(value.text, schema.fields()))
            .collect()
    } else {
        Vec::new()
    };
    let mut values: Vec<Value<'_>> = values
        .into_iter()
        .enumerate()
        .map(|(i, mut value)| {
            if let Some(Some(text)) = as_text.get(i) {
                value.text = text;
            }
            value
        })
        .collect();
    // Where the rescued-data column is kept, a value whose fields do not fit their columns'
    // types (`"A1"` for a bigint) keeps its row: those fields go to the rescued column and
    // their columns are null, as Auto Loader's `rescuedDataColumn` takes them.
    let together = json_decode(&joined(&values), schema, epoch, false, BATCH_SIZE);
    let mut misfits: Vec<Option<Misfits>> = Vec::new();
    if rescue && together.is_err() {
        misfits = values
            .iter()
            .map(|value| {
                json_decode(value.text, schema, epoch, false, 1)
                    .is_err()
                    .then(|| misfit_fields(value.text, schema, epoch))
                    .flatten()
            })
            .collect();
    }
    values = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let mut value: Value<'_> = value;
            if let Some(Some((text, moved))) = misfits.get(i) {
                value.text = text;
                value.misfit = moved.clone();
            }
            value
        })
        .collect();
    // Decoded again only where a value lost its misfits.
    let together = if misfits.iter().any(Option::is_some) {
        json_decode(&joined(&values), schema, epoch, false, BATCH_SIZE)
    } else {
        together
    };
    let batches = match together {
        Ok(batches) => Ok(batches),
        Err(joined_error) => {
            // Some value does not fit its columns: find which, alone.
            let mut kept = Vec::with_capacity(values.len());
            for value in values {
                match json_decode(value.text, schema, epoch, false, 1) {
                    Ok(_) => kept.push(value),
                    Err(e) if on_error == OnError::Skip => {
                        notes.push((value.line, reason_of(malformed(file, value.line, &e))));
                        skipped += 1;
                    }
                    Err(e) => return Err(malformed(file, value.line, &e)),
                }
            }
            values = kept;
            // Every value decodes alone but not together: report what decoding them said.
            json_decode(&joined(&values), schema, epoch, false, BATCH_SIZE)
                .map_err(|_| malformed_file(file, &joined_error))
        }
    };
    notes.sort_by_key(|(line, _)| *line);
    for (line, reason) in &notes {
        note_skipped(file, *line, reason);
    }
    let batches = batches?;
    // A value that does not parse or has none of the columns, after every value before it
    // was found good.
    if let Some(error) = failed {
        return Err(error);
    }
    let mut unknown_fields = BTreeSet::new();
    let mut unknown_rows = 0;
    // A field rescued for a value its column's type does not hold is counted with them, named
    // so: its column is null in that row (walk 66 (8)).
    for value in &values {
        if !value.unknown.is_empty() || !value.misfit.is_empty() {
            unknown_rows += 1;
            unknown_fields.extend(value.unknown.keys().cloned());
            unknown_fields.extend(
                value
                    .misfit
                    .keys()
                    .map(|name| format!("{name}{}", crate::progress::MISFIT_FIELD)),
            );
        }
    }
    let rescued = rescue.then(|| {
        Arc::new(
            values
                .iter()
                .map(|v| {
                    (!v.unknown.is_empty() || !v.misfit.is_empty()).then(|| {
                        let mut fields = v.unknown.clone();
                        fields.extend(v.misfit.clone());
                        serde_json::Value::Object(fields).to_string()
                    })
                })
                .collect::<StringArray>(),
        ) as ArrayRef
    });
    Ok(FileRows {
        decoded: Decoded::from_batches(batches, skipped),
        unknown_rows,
        unknown_fields,
        rescued,
    })
}

/// A JSON value's text without its fields that do not fit their columns, and those fields.
type Misfits = (Vec<u8>, serde_json::Map<String, serde_json::Value>);

/// JSON object `text` with the values of its fields that do not decode into their columns of
/// `schema` alone (`{"code":"A1"}` where `code` is a bigint) written as `null`, the rest of
/// its bytes as they were (a number keeps every digit), and those fields; `None` where it is no
/// object or every field decodes (the value fails for another reason).
fn misfit_fields(text: &[u8], schema: &SchemaRef, epoch: Option<EpochUnit>) -> Option<Misfits> {
    let mut moved = serde_json::Map::new();
    // Each misfit value's bytes and what replaces them.
    let mut replaced: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    for (key, name, value) in object_fields(text)? {
        let Some((_, field)) = schema.column_with_name(&name) else {
            continue;
        };
        let decodes = |value: &[u8]| {
            let mut alone = Vec::with_capacity(key.len() + value.len() + 3);
            alone.push(b'{');
            alone.extend_from_slice(&text[key.clone()]);
            alone.push(b':');
            alone.extend_from_slice(value);
            alone.push(b'}');
            json_decode(&alone, schema, epoch, false, 1).is_ok()
        };
        if decodes(&text[value.clone()]) {
            continue;
        }
        // A struct keeps its fields that fit: only those that do not are rescued, named by
        // their path as unknown fields are (`user.id`), and null (walk 67 (9): the whole
        // struct was null for one field).
        if let DataType::Struct(fields) = field.data_type() {
            let inner = Arc::new(Schema::new(fields.clone()));
            if let Some((rest, inner_moved)) = misfit_fields(&text[value.clone()], &inner, epoch)
                && decodes(&rest)
            {
                moved.extend(
                    inner_moved
                        .into_iter()
                        .map(|(path, v)| (format!("{name}.{path}"), v)),
                );
                replaced.push((value, rest));
                continue;
            }
        }
        moved.insert(name, serde_json::from_slice(&text[value.clone()]).ok()?);
        replaced.push((value, b"null".to_vec()));
    }
    if moved.is_empty() {
        return None;
    }
    Some((spliced(text, replaced), moved))
}

/// Whether `fields` hold a text column, at any depth of structs.
fn has_text_column(fields: &Fields) -> bool {
    fields.iter().any(|f| match f.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Struct(inner) => has_text_column(inner),
        _ => false,
    })
}

/// JSON object `text` with each array or object whose field is a text column of `fields` (in
/// structs too) written as a JSON string of its bytes as they are (`"tags":["a"]` as
/// `"tags":"[\"a\"]"`, every digit kept); `None` where there is none.
fn nested_as_text(text: &[u8], fields: &Fields) -> Option<Vec<u8>> {
    let mut replaced: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
    for (_, name, value) in object_fields(text)? {
        let Some(field) = fields.iter().find(|f| *f.name() == name) else {
            continue;
        };
        let bytes = &text[value.clone()];
        match (field.data_type(), bytes.first()) {
            (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Some(b'[' | b'{')) => {
                let raw = std::str::from_utf8(bytes).ok()?;
                let quoted = serde_json::to_vec(raw).ok()?;
                replaced.push((value, quoted));
            }
            (DataType::Struct(inner), Some(b'{')) => {
                if let Some(inner) = nested_as_text(bytes, inner) {
                    replaced.push((value, inner));
                }
            }
            _ => {}
        }
    }
    if replaced.is_empty() {
        return None;
    }
    Some(spliced(text, replaced))
}

/// `text` with each span of `replaced` (in order, not overlapping) written as its bytes.
fn spliced(text: &[u8], replaced: Vec<(std::ops::Range<usize>, Vec<u8>)>) -> Vec<u8> {
    let mut out = text.to_vec();
    for (span, with) in replaced.into_iter().rev() {
        out.splice(span, with);
    }
    out
}

/// A top-level field of a JSON object's text: its key's bytes (quotes included), its name, and
/// its value's bytes.
type FieldSpan = (std::ops::Range<usize>, String, std::ops::Range<usize>);

/// The top-level fields of JSON object `text`; `None` where `text` is no object as this reads
/// it.
fn object_fields(text: &[u8]) -> Option<Vec<FieldSpan>> {
    let skip_space = |mut at: usize| {
        while text.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        at
    };
    // The end of the string that starts at `at` (its opening quote), after its closing one.
    let string_end = |mut at: usize| {
        at += 1;
        loop {
            match text.get(at)? {
                b'\\' => at += 2,
                b'"' => return Some(at + 1),
                _ => at += 1,
            }
        }
    };
    let mut fields = Vec::new();
    let mut at = skip_space(0);
    if text.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(at + 1);
    if text.get(at) == Some(&b'}') {
        return Some(fields);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return None;
        }
        let key = at..string_end(at)?;
        let name: String = serde_json::from_slice(&text[key.clone()]).ok()?;
        at = skip_space(key.end);
        if text.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_space(at + 1);
        // The value: a string, or anything up to the `,` or `}` at this depth.
        let mut end = start;
        let mut depth = 0usize;
        loop {
            match *text.get(end)? {
                b'"' => end = string_end(end)?,
                b'{' | b'[' => {
                    depth += 1;
                    end += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    end += 1;
                }
                b',' | b'}' if depth == 0 => break,
                _ => end += 1,
            }
        }
        let mut value_end = end;
        while value_end > start && text[value_end - 1].is_ascii_whitespace() {
            value_end -= 1;
        }
        fields.push((key, name, start..value_end));
        match text[end] {
            b',' => at = skip_space(end + 1),
            _ => return Some(fields),
        }
    }
}

/// The JSON values of a file, as [`json_values`] found them.
struct Scanned<'a> {
    /// The values that parse, each an object.
    values: Vec<Value<'a>>,
    /// How many were skipped (`on_error: skip`).
    skipped: u64,
    /// The first that does not parse (`on_error: fail`); scanning stopped there.
    failed: Option<SourceError>,
    /// What was skipped, by line, for the notes [`json`] gives in line order.
    notes: Vec<(usize, String)>,
}

/// The JSON values of `bytes` with their unknown fields. A value that does not parse, or is
/// not an object, stops the scan (`on_error: fail`), or is skipped and counted once, the scan
/// going on at the first line at or after the error that starts with `{` (`on_error: skip`).
fn json_values<'a>(
    file: &str,
    bytes: &'a [u8],
    schema: &SchemaRef,
    also_known: &[&str],
    on_error: OnError,
) -> Scanned<'a> {
    let mut scanned = Scanned {
        values: Vec::new(),
        skipped: 0,
        failed: None,
        notes: Vec::new(),
    };
    let (mut pos, mut line) = (0, 1);
    // Moves `pos` to `to`, counting lines.
    let advance = |pos: &mut usize, line: &mut usize, to: usize| {
        *line += bytes[*pos..to].iter().filter(|b| **b == b'\n').count();
        *pos = to;
    };
    loop {
        let start = bytes[pos..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(bytes.len(), |p| pos + p);
        advance(&mut pos, &mut line, start);
        if pos >= bytes.len() {
            break;
        }
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<serde_json::Value>();
        // The problem, and the line (relative to `line`, 1 for its first) it was found on.
        let mut cut_short = false;
        let mut column = 0;
        let (problem, at) = match stream.next() {
            Some(Ok(serde_json::Value::Object(fields))) => {
                let end = pos + stream.byte_offset();
                let known = fields
                    .keys()
                    .any(|k| schema.field_with_name(k).is_ok() || also_known.contains(&k.as_str()));
                let mut unknown = serde_json::Map::new();
                unknown_fields(fields, schema.fields(), also_known, "", &mut unknown);
                scanned.values.push(Value {
                    text: &bytes[pos..end],
                    line,
                    unknown,
                    misfit: serde_json::Map::new(),
                    known,
                });
                advance(&mut pos, &mut line, end);
                continue;
            }
            // The whole file one array (`[{...}, {...}]`): not JSON lines. It is one bad
            // unit: half of it read as lines would be worse than none. (A message's payload,
            // decoded without a file's name, is one value: an array there is a value that is
            // not an object, named by the message.)
            Some(Ok(serde_json::Value::Array(_)))
                if !file.is_empty()
                    && scanned.values.is_empty()
                    && scanned.skipped == 0
                    && bytes[pos + stream.byte_offset()..]
                        .iter()
                        .all(u8::is_ascii_whitespace) =>
            {
                if on_error == OnError::Fail {
                    scanned.failed = Some(SourceError::Malformed {
                        file: file.to_string(),
                        line: None,
                        reason: JSON_ARRAY_FILE.to_string(),
                    });
                } else {
                    tracing::info!(file, "skipping a file that is one JSON array");
                    scanned.skipped += 1;
                }
                break;
            }
            Some(Ok(other)) => {
                // `0,b`: a number, and then more of the line; CSV text under `format: json`
                // (walk 126 (5): said only as "found a number").
                let rest = &bytes[pos + stream.byte_offset()..];
                let rest = &rest[..rest
                    .iter()
                    .position(|b| matches!(b, b'\n' | b'\r'))
                    .unwrap_or(rest.len())];
                let more = if matches!(rest.first(), Some(b',' | b';' | b'\t' | b'|')) {
                    let line_text = &bytes[pos..pos + stream.byte_offset() + rest.len()];
                    format!(
                        ", and more text follows it (`{}`): CSV, where `format: csv` reads \
                         it",
                        String::from_utf8_lossy(&line_text[..line_text.len().min(60)])
                    )
                } else {
                    String::new()
                };
                (
                    format!("expected a JSON object, found {}{more}", kind(&other)),
                    1,
                )
            }
            Some(Err(e)) => {
                // serde_json says where, relative to the value: say it once, in the file's lines.
                let text = e.to_string();
                let reason = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(reason, _)| reason)
                    .to_string();
                let reason = if reason == "recursion limit exceeded" {
                    "the value nests arrays and objects more than 128 deep, the most the JSON \
                     reader follows (serde_json's recursion limit)"
                        .to_string()
                } else {
                    json_syntax(&reason)
                };
                // serde_json counts from the value's start: a value after another on its
                // line (`{"id":3} x`) is placed in the line (walk 126 (5): said at column 1).
                let within_line = pos
                    - bytes[..pos]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |p| p + 1);
                column = match e.line() {
                    1 if e.column() > 0 => e.column() + within_line,
                    _ => e.column(),
                };
                // The file ends inside the value, without its line's end: still being written.
                cut_short = e.is_eof() && !bytes.ends_with(b"\n");
                (reason, e.line().max(1))
            }
            None => break,
        };
        let error_line = line + at - 1;
        // A CSV file under `format: json` fails on its first line: it is refused naming what
        // it is, under `on_error: skip` too (skipped, the whole file would count as one row).
        let first = scanned.values.is_empty() && scanned.skipped == 0 && !file.is_empty();
        let csv_header = first.then(|| looks_like_csv(&bytes[pos..])).flatten();
        if on_error == OnError::Fail || csv_header.is_some() {
            // Named by the line the value starts on (a line cut short reads on into the next:
            // the next is not the one to blame), and where the parser stopped.
            // Where the parser stopped, in the file's lines.
            let at_column = if column > 0 {
                format!(", column {column}")
            } else {
                String::new()
            };
            let reason = if file.is_empty() {
                // A message's payload (decoded without a file's name): its lines are no
                // file's, and the message is named by the source (topic, partition, offset).
                if column > 0 && error_line == line {
                    format!("{problem} (column {column})")
                } else {
                    problem
                }
            } else if error_line > line {
                format!(
                    "the value starting on this line does not parse: {problem} (line \
                     {error_line}{at_column})"
                )
            } else if column > 0 {
                format!("{problem} (column {column})")
            } else {
                problem
            };
            let reason = if cut_short {
                format!(
                    "{reason}; the file ends inside this value, as a file still being written \
                     does. {CUT_SHORT_ADVICE}"
                )
            } else {
                reason
            };
            let reason = match csv_header {
                Some(header) => format!(
                    "{reason}; the file is not JSON lines but looks like CSV (its first line \
                     is `{header}`): set `format: csv` on the source, or give CSV files a \
                     source of their own"
                ),
                None => reason,
            };
            scanned.failed = Some(SourceError::Malformed {
                file: file.to_string(),
                line: Some(line),
                reason,
            });
            break;
        }
        // The value's lines up to the error's: bytes no UTF-8 text holds are said as such.
        let through = bytes[pos..]
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(at - 1)
            .map_or(bytes.len(), |(i, _)| pos + i);
        let problem = not_utf8(&bytes[pos..through]).unwrap_or(problem);
        scanned.notes.push((line, problem));
        scanned.skipped += 1;
        // Go on at the first line after the value's first that starts with `{` and is a
        // whole object by itself (a JSON lines record the cut-short value ran into, which
        // the parser took for part of it), or else at the first that starts with `{` from
        // the error's line on: a JSON lines record starts a line.
        let mut next = pos;
        let mut next_line = line;
        loop {
            let Some(newline) = bytes[next..].iter().position(|b| *b == b'\n') else {
                next = bytes.len();
                break;
            };
            next += newline + 1;
            next_line += 1;
            if bytes.get(next) != Some(&b'{') {
                continue;
            }
            if next_line >= error_line {
                break;
            }
            let end = bytes[next..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |p| next + p);
            if serde_json::from_slice::<serde_json::Value>(&bytes[next..end])
                .is_ok_and(|v| v.is_object())
            {
                break;
            }
        }
        // A further line skipped with it is a record of its own, counted and named, where it
        // starts with `{` (a record cut short in turn), or where the bad value went wrong on
        // its own first line, so that the lines after were never read as part of it (walk
        // 91: two bad lines in a row were counted as one row skipped, so rows in and skipped
        // no longer added up to the file's lines). The lines of a value written over several
        // lines that went wrong further down are that one value's.
        for (n, text) in bytes[pos..next].split(|b| *b == b'\n').enumerate().skip(1) {
            if text.iter().all(u8::is_ascii_whitespace) || !(at == 1 || text.first() == Some(&b'{'))
            {
                continue;
            }
            scanned.notes.push((
                line + n,
                format!(
                    "skipped with the malformed value on line {line}, which it is read as part \
                     of or follows: a JSON lines record starts a line with `{{`"
                ),
            ));
            scanned.skipped += 1;
        }
        advance(&mut pos, &mut line, next);
    }
    scanned
}

/// Why a file that is one JSON array is not read.
const JSON_ARRAY_FILE: &str = "the file is one JSON array (`[{...}, {...}]`), and a JSON \
     source reads JSON lines: objects one after another, usually one per line (`jq -c '.[]' \
     FILE > FILE.jsonl` rewrites an array so; then move the array file out of the folder, or \
     rename it to a name starting with `_` or `.`, which is not read). The file is not read, \
     not even in part";

/// What kind of JSON value `value` is, for messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The names of `fields` and of the fields inside them (structs, lists of structs), in lower
/// case.
fn lower_field_names(fields: &Fields) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for field in fields {
        names.insert(field.name().to_lowercase());
        let inner = match field.data_type() {
            DataType::Struct(inner) => Some(inner),
            DataType::List(item) | DataType::LargeList(item) => match item.data_type() {
                DataType::Struct(inner) => Some(inner),
                _ => None,
            },
            _ => None,
        };
        if let Some(inner) = inner {
            names.extend(lower_field_names(inner));
        }
    }
    names
}

/// Where `path`, an unknown field's path in `value` (`TS`, `user.ID`, `items[2].X`), names a
/// field of `fields` but for its case, and its object lacks that field (`TS` beside `ts` is a
/// field of its own): that field's path as the schema spells it. Names that hold `.` or `[`
/// are not looked into.
fn case_twin_of(fields: &Fields, value: &serde_json::Value, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    let (leaf, parents) = parts.split_last()?;
    let (mut fields, mut at, mut spelled) = (fields, value, String::new());
    for part in parents {
        let (name, index) = match part.split_once('[') {
            Some((name, index)) => (name, Some(index.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (*part, None),
        };
        let field = fields.iter().find(|f| f.name() == name)?;
        at = at.get(name)?;
        fields = match (field.data_type(), index) {
            (DataType::Struct(inner), None) => inner,
            (DataType::List(item) | DataType::LargeList(item), Some(i)) => {
                at = at.get(i)?;
                match item.data_type() {
                    DataType::Struct(inner) => inner,
                    _ => return None,
                }
            }
            _ => return None,
        };
        spelled.push_str(part);
        spelled.push('.');
    }
    let twin = fields
        .iter()
        .find(|c| c.name() != leaf && c.name().eq_ignore_ascii_case(leaf))?;
    at.get(twin.name())
        .is_none()
        .then(|| format!("{spelled}{}", twin.name()))
}

/// Moves into `unknown` the fields of `object` that `fields` (a struct type's fields) do not
/// name, under their path from the row (`prefix` ends in `.` inside an object); at the top
/// level (`prefix` empty), names in `also_known` are known too. Objects inside known fields of
/// struct type, and inside lists of them, are looked at in turn.
fn unknown_fields(
    object: serde_json::Map<String, serde_json::Value>,
    fields: &Fields,
    also_known: &[&str],
    prefix: &str,
    unknown: &mut serde_json::Map<String, serde_json::Value>,
) {
    for (name, value) in object {
        let Some(field) = fields.iter().find(|f| *f.name() == name) else {
            if !(prefix.is_empty() && also_known.contains(&name.as_str())) {
                unknown.insert(format!("{prefix}{name}"), value);
            }
            continue;
        };
        let path = format!("{prefix}{name}");
        match (field.data_type(), value) {
            (DataType::Struct(inner), serde_json::Value::Object(object)) => {
                unknown_fields(object, inner, &[], &format!("{path}."), unknown);
            }
            (DataType::List(item) | DataType::LargeList(item), serde_json::Value::Array(items)) => {
                if let DataType::Struct(inner) = item.data_type() {
                    for (i, item) in items.into_iter().enumerate() {
                        if let serde_json::Value::Object(object) = item {
                            unknown_fields(object, inner, &[], &format!("{path}[{i}]."), unknown);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// How a CSV file's text is read: the unit of a number in a timestamp column, the byte
/// between fields, and which fields are null besides empty ones.
#[derive(Debug, Clone, Copy)]
struct Csv<'a> {
    epoch: Option<EpochUnit>,
    delimiter: u8,
    /// Whether the first line is a header (passed over) rather than a record.
    header: bool,
    null: Option<&'a regex::Regex>,
}

/// The fields a CSV source's `null_value` makes null: that text, whole, or nothing (Arrow's
/// reader reads an empty field as null only where no other pattern is given).
fn null_regex(value: &str) -> regex::Regex {
    regex::Regex::new(&format!("^(|{})$", regex::escape(value)))
        .expect("an escaped text is a pattern")
}

/// `builder` reading the fields `csv` makes null as null.
fn with_nulls(builder: arrow_csv::ReaderBuilder, csv: &Csv<'_>) -> arrow_csv::ReaderBuilder {
    match csv.null {
        Some(null) => builder.with_null_regex(null.clone()),
        None => builder,
    }
}

fn csv_fast(bytes: &Bytes, schema: &SchemaRef, csv: Csv) -> Result<Vec<RecordBatch>, ArrowError> {
    // Arrow's reader takes the rest of the file into a field whose quote is never closed, and
    // says nothing where the field count still fits: the record-by-record reading finds it.
    if ends_in_open_quote(bytes, csv.delimiter) {
        return Err(ArrowError::CsvError(UNCLOSED_QUOTE.to_string()));
    }
    let epoch = csv.epoch;
    with_nulls(
        arrow_csv::ReaderBuilder::new(times_as_text(schema, epoch)),
        &csv,
    )
    .with_header(csv.header)
    .with_delimiter(csv.delimiter)
    .with_batch_size(batch_rows(schema.fields().len()))
    .build_buffered(Cursor::new(bytes.as_ref()))?
    .map(|batch| epoch_times(batch?, schema, epoch))
    .collect()
}

/// Moves `pos` past the line ends before a CSV record (the `\n` of a CRLF the last record
/// ended on the `\r` of, blank lines), counting `line`, so that `line` is the record's own and
/// a skip starts from it; `false` at the end of `bytes`.
fn past_line_ends(bytes: &[u8], pos: &mut usize, line: &mut usize) -> bool {
    while let Some(b) = bytes.get(*pos).filter(|b| matches!(b, b'\r' | b'\n')) {
        *line += usize::from(*b == b'\n');
        *pos += 1;
    }
    *pos < bytes.len()
}

/// Goes record by record after the header line (from the first, without one).
fn csv_slow(
    file: &str,
    bytes: &[u8],
    schema: &SchemaRef,
    on_error: OnError,
    csv: Csv,
    first_error: ArrowError,
) -> Result<Decoded, SourceError> {
    let epoch = csv.epoch;
    let (mut pos, mut line) = match csv.header {
        false => (0, 1),
        true => match bytes.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, 2),
            None => {
                return Err(SourceError::Malformed {
                    file: file.to_string(),
                    line: Some(1),
                    reason: first_error.to_string(),
                });
            }
        },
    };
    let mut batches = Vec::new();
    let mut skipped = 0;
    while pos < bytes.len() {
        if !past_line_ends(bytes, &mut pos, &mut line) {
            break;
        }
        let mut decoder = with_nulls(
            arrow_csv::ReaderBuilder::new(times_as_text(schema, epoch)),
            &csv,
        )
        .with_header(false)
        .with_delimiter(csv.delimiter)
        .with_batch_size(1)
        .build_decoder();
        let rest = &bytes[pos..];
        let decoded = decoder.decode(rest);
        // A quote opened on this line and never closed makes the rest of the file one field:
        // that is the malformed row (whether the fields it leaves do not fit, or they do and
        // the record runs to the end of the file), and reading goes on from the next line.
        let unclosed = match &decoded {
            Err(_) => opens_unclosed_quote(rest, csv.delimiter),
            Ok(n) => (*n == 0 || *n == rest.len()) && ends_in_open_quote(rest, csv.delimiter),
        };
        if unclosed {
            let error = unclosed_quote(file, line, rest);
            if on_error != OnError::Skip {
                return Err(error);
            }
            note_skipped(file, line, &reason_of(error));
            skipped += 1;
            pos += line_length(rest);
            line += 1;
            continue;
        }
        let consumed = match decoded {
            Ok(0) => rest.len(),
            Ok(n) => n,
            Err(e) if on_error == OnError::Skip => {
                // The record cannot even be split into fields: skip to the next line.
                let reason = not_utf8(&rest[..line_length(rest)])
                    .unwrap_or_else(|| csv_reason(file, line, &e, schema));
                note_skipped(file, line, &reason);
                skipped += 1;
                pos += line_length(rest);
                line += 1;
                continue;
            }
            Err(e) => return Err(csv_malformed(file, line, &e, schema)),
        };
        let record = &bytes[pos..pos + consumed];
        let result = decoder
            .decode(&[])
            .and_then(|_| decoder.flush())
            .and_then(|batch| batch.map(|b| epoch_times(b, schema, epoch)).transpose());
        let blank = record.iter().all(u8::is_ascii_whitespace);
        match result {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) => {}
            Err(_) if blank => {}
            Err(e) if on_error == OnError::Skip => {
                // Said as an error would say it: the column named, the file's line.
                let reason = not_utf8(record).unwrap_or_else(|| csv_reason(file, line, &e, schema));
                note_skipped(file, line, &reason);
                skipped += 1;
            }
            Err(e) => return Err(csv_malformed(file, line, &e, schema)),
        }
        line += record.iter().filter(|b| **b == b'\n').count();
        pos += consumed;
    }
    Ok(Decoded::from_batches(batches, skipped))
}

/// Refuses a CSV file whose header line opens a quote that nothing closes: the header would
/// take the whole file as one column's name.
fn unclosed_quote_in_header(file: &str, bytes: &[u8], delimiter: u8) -> Result<(), SourceError> {
    let header_line = bytes
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes, |p| &bytes[..p]);
    // Excel's `sep=;` line above the header (walk 63: taken for the header, the header for a
    // row, in silence), as DuckDB and Spark do not read it either.
    let first = String::from_utf8_lossy(header_line);
    // Only the line's end and a byte order mark: `sep=` of a tab is a tab.
    let first = first
        .trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n']);
    if let Some(sep) = first
        .strip_prefix("sep=")
        .or_else(|| first.strip_prefix("SEP="))
        .filter(|sep| sep.chars().count() == 1)
    {
        let set = if sep.as_bytes() == [delimiter] {
            String::new()
        } else {
            format!(
                ", and set the source's `delimiter: \"{}\"`",
                sep.escape_default()
            )
        };
        // No line: it names its line, and is not a row `on_error: skip` could skip (walk
        // 97: that advice, followed, gave the same error).
        return Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: format!(
                "its first line `{first}` is Excel's separator line, not a header (the \
                 header would be read as a row): take the line out of the file (`sed -i 1d \
                 <file>`, or save from Excel as CSV UTF-8 without it){set}"
            ),
        });
    }
    if ends_in_open_quote(header_line, delimiter) && ends_in_open_quote(bytes, delimiter) {
        // Not a row `on_error: skip` could skip: the file is put right (or moved aside).
        return Err(SourceError::Malformed {
            file: file.to_string(),
            line: None,
            reason: format!(
                "its header, line 1, opens a quote (`\"`) that is never closed, so the header \
                 would take the file's {} line(s) into one column's name: close the quote, or \
                 remove it",
                lines_in(bytes)
            ),
        });
    }
    Ok(())
}

/// How many lines `text` holds (the last one without its line end counted too).
fn lines_in(text: &[u8]) -> usize {
    text.iter().filter(|b| **b == b'\n').count() + usize::from(!text.ends_with(b"\n"))
}

/// What a CSV record whose quoted field runs to the end of the file is refused with.
const UNCLOSED_QUOTE: &str = "a field opened by a quote (`\"`) on this line is never closed";

/// serde_json's words for a syntax error (`expected ident`), said as what is wrong in the
/// JSON text.
fn json_syntax(reason: &str) -> String {
    let said = match reason {
        "expected ident" => {
            "an unquoted word: JSON's only words are `true`, `false` and `null`; text is \
             written in double quotes"
        }
        "expected value" => "a value is missing or is not JSON (text is written in double quotes)",
        "key must be a string" => "an object's key is not in double quotes",
        "trailing comma" => "a comma before a closing `}` or `]`",
        "EOF while parsing a value"
        | "EOF while parsing an object"
        | "EOF while parsing a list"
        | "EOF while parsing a string" => "the text ends inside the value",
        other => other,
    };
    format!("not valid JSON: {said}")
}

/// The length of `text`'s first line with its `\n` (all of it where it has none).
fn line_length(text: &[u8]) -> usize {
    text.iter()
        .position(|b| *b == b'\n')
        .map_or(text.len(), |p| p + 1)
}

/// Whether a quote opened on the first line of `rest` (a CSV file from a record's start on)
/// is never closed: that line alone, and all of `rest`, end inside a quoted field.
fn opens_unclosed_quote(rest: &[u8], delimiter: u8) -> bool {
    let first_line = rest
        .iter()
        .position(|b| *b == b'\n')
        .map_or(rest, |p| &rest[..p]);
    ends_in_open_quote(first_line, delimiter) && ends_in_open_quote(rest, delimiter)
}

/// The error of the record at `line` of `file` whose quote is never closed, `rest` the file
/// from it on.
fn unclosed_quote(file: &str, line: usize, rest: &[u8]) -> SourceError {
    SourceError::Malformed {
        file: file.to_string(),
        line: Some(line),
        reason: format!(
            "{UNCLOSED_QUOTE} (it would take the file's {} line(s) from here to its end into one \
             field)",
            lines_in(rest)
        ),
    }
}

/// CSV `text` (a file's, named `file`; fields between `delimiter`s) as the CSV reader reads
/// it: where quotes inside quoted fields are escaped with `escape` (Spark's way, `\"`), in
/// RFC 4180's way instead (the quote doubled; the escape written twice, one escape; before any
/// other byte the escape is kept), line breaks where they were, so lines keep their numbers.
///
/// Errors: [`SourceError::Malformed`] naming the line where a quoted field goes on after its
/// closing quote (`"a \"b\" c"` without `escape:`, `"a"b`), with or without `escape`: the
/// CSV reader takes the rest of such a field as unquoted text, changing its value in silence
/// (walk 124 (1): `a \b\" c"` written, exit 0), and where its records end is in doubt, so
/// `on_error: skip` cannot skip it either. Blanks (spaces, tabs) after a closing quote pass.
/// For messages' payloads (`file` empty, a record a line) the error names the line, so the
/// payload is blamed by its topic and offset and, one record a message, skipped under
/// `on_error: skip` (walk 126 (1): `1,"x"y,3` in a Kafka value was written as `xy`).
fn csv_quoting(
    file: &str,
    text: &Bytes,
    delimiter: u8,
    escape: Option<u8>,
) -> Result<Bytes, SourceError> {
    if !text.contains(&b'"') {
        return Ok(text.clone());
    }
    // The text written again, only where an escape is to be put in RFC 4180's terms.
    let mut out: Option<Vec<u8>> = escape.map(|_| Vec::with_capacity(text.len() + 64));
    let mut push = |bytes: &[u8]| {
        if let Some(out) = out.as_mut() {
            out.extend_from_slice(bytes);
        }
    };
    // Line ends: `\n`, `\r\n`, or a lone `\r` (old Mac files), as the reader splits lines.
    let lines_in = |bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .filter(|(k, b)| **b == b'\n' || (**b == b'\r' && bytes.get(k + 1) != Some(&b'\n')))
            .count()
    };
    let (mut i, mut line) = (0, 1usize);
    // From one quote that opens a field to the next: the text between is copied whole.
    while let Some(at) = text[i..].iter().position(|b| *b == b'"').map(|p| i + p) {
        let opens = at == 0 || matches!(text[at - 1], b'\n' | b'\r') || text[at - 1] == delimiter;
        push(&text[i..=at]);
        line += lines_in(&text[i..at]);
        i = at + 1;
        if !opens {
            continue;
        }
        // A quoted field, from its opening quote; one left open at the end is the reader's
        // to name.
        while let Some(&c) = text.get(i) {
            let next = text.get(i + 1).copied();
            if Some(c) == escape && next == Some(b'"') {
                push(b"\"\"");
                i += 2;
            } else if Some(c) == escape && next == escape {
                push(&[c]);
                i += 2;
            } else if c == b'"' && next == Some(b'"') {
                push(b"\"\"");
                i += 2;
            } else if c == b'"' {
                push(b"\"");
                i += 1;
                // Blanks before the delimiter (not the delimiter itself, a tab or a space).
                let blanks = text[i..]
                    .iter()
                    .take_while(|b| matches!(b, b' ' | b'\t') && **b != delimiter)
                    .count();
                match text.get(i + blanks) {
                    None | Some(b'\n' | b'\r') => {}
                    Some(b) if *b == delimiter => {}
                    Some(_) => {
                        return Err(quote_goes_on(
                            file,
                            text,
                            line,
                            (at, i),
                            (delimiter, escape),
                        ));
                    }
                }
                break;
            } else {
                line += usize::from(c == b'\n' || (c == b'\r' && next != Some(b'\n')));
                push(&[c]);
                i += 1;
            }
        }
    }
    push(&text[i..]);
    Ok(match out {
        Some(out) => Bytes::from(out),
        None => text.clone(),
    })
}

/// The error of a quoted field of CSV `text` (opened at byte `opened`, its closing quote
/// just before byte `closed`, on line `line`; read with `delimiter` and `escape`) that goes on
/// after its closing quote.
fn quote_goes_on(
    file: &str,
    text: &[u8],
    line: usize,
    (opened, closed): (usize, usize),
    (delimiter, escape): (u8, Option<u8>),
) -> SourceError {
    let end = text[closed..]
        .iter()
        .position(|b| matches!(b, b'\n' | b'\r'))
        .map_or(text.len(), |p| closed + p)
        .min(opened + 60);
    let field = String::from_utf8_lossy(&text[opened..end]);
    let backslashed = escape.is_none() && closed >= 2 && text[closed - 2] == b'\\';
    // A message's payload (no file) is a record, its fields always split at `,`.
    let payload = file.is_empty();
    // `"b;c";2` read with `,`: the quote closed where the file's own delimiter follows.
    let other_delimiter = [b';', b'\t', b'|', b',']
        .into_iter()
        .find(|d| *d != delimiter && text.get(closed) == Some(d) && !payload);
    let way_out = if let Some(d) = other_delimiter {
        format!(
            "the file's fields look separated by `{}`: set the source's `delimiter: \"{}\"`",
            char::from(d).escape_default(),
            char::from(d).escape_default()
        )
    } else if backslashed {
        "its quotes look escaped with a backslash (`\\\"`), as Spark writes CSV: set the \
         source's `escape: '\\'`"
            .to_string()
    } else {
        let doubled = match escape {
            Some(e) => format!(
                "written twice (`\"\"`) or after the `escape` ({})",
                char::from(e).escape_default()
            ),
            None => "written twice (`\"\"`, RFC 4180)".to_string(),
        };
        format!(
            "inside a quoted field a quote is {doubled}; put the {} right, or, where its \
             quotes are escaped with another character, set the source's `escape:` to it",
            if payload { "record" } else { "file" }
        )
    };
    if payload {
        return SourceError::Malformed {
            file: String::new(),
            line: Some(line),
            reason: format!(
                "the quoted field `{field}` {}, which would change its value: {way_out}",
                super::QUOTE_GOES_ON
            ),
        };
    }
    SourceError::Malformed {
        file: file.to_string(),
        line: None,
        reason: format!(
            "line {line}: the quoted field `{field}` {}, which would change its value and \
             leave where its record ends in doubt: {way_out}",
            super::QUOTE_GOES_ON
        ),
    }
}

/// Whether CSV text ends inside a quoted field: a `"` at the start of a field opens one, `""`
/// in it is a quote, and a lone `"` closes it (RFC 4180, as Arrow's reader splits fields); a
/// `"` inside an unquoted field is text.
fn ends_in_open_quote(text: &[u8], delimiter: u8) -> bool {
    if !text.contains(&b'"') {
        return false;
    }
    let mut quoted = false;
    let mut field_start = true;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if quoted {
            if b == b'"' {
                if text.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
            field_start = false;
        } else {
            quoted = b == b'"' && field_start;
            field_start = b == delimiter || b == b'\n' || b == b'\r';
        }
        i += 1;
    }
    quoted
}

/// The names a CSV header's columns (`written`, in order) are read under: as written, but a
/// column the header leaves unnamed is `column<i>` (`i` its position from 0) and a name
/// written again is `<name>_1`, `<name>_2`, ... (the first such name no other column has), as
/// DuckDB's reader names them (Spark's would be `_c<i>` and `<name><i>`). Arrow's reader
/// takes the names as written, and a query cannot tell two columns of one name apart (walk
/// 63: such a file could not be read at all).
pub(crate) fn csv_column_names(written: &[&str]) -> Vec<String> {
    let mut taken: BTreeSet<String> = written.iter().map(|n| n.to_string()).collect();
    let mut seen = BTreeSet::new();
    let mut names = Vec::with_capacity(written.len());
    for (i, name) in written.iter().enumerate() {
        let name = if name.is_empty() {
            let mut candidate = format!("column{i}");
            let mut k = 0;
            while taken.contains(&candidate) {
                k += 1;
                candidate = format!("column{i}_{k}");
            }
            candidate
        } else if seen.contains(*name) {
            let mut k = 1;
            while taken.contains(&format!("{name}_{k}")) {
                k += 1;
            }
            format!("{name}_{k}")
        } else {
            name.to_string()
        };
        seen.insert(name.clone());
        taken.insert(name.clone());
        names.push(name);
    }
    names
}

/// `schema`, inferred from CSV file `file` under its header's names as written, under the
/// names [`csv_column_names`] gives them; a name changed is said (once a run for a header).
fn with_csv_column_names(file: &str, schema: Schema) -> Schema {
    let written: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let names = csv_column_names(&written);
    let renamed: Vec<String> = written
        .iter()
        .zip(&names)
        .enumerate()
        .filter(|(_, (w, n))| *w != n)
        .map(|(i, (w, n))| match w.is_empty() {
            true => format!("column {} (no name) as `{n}`", i + 1),
            false => format!("the `{w}` of column {} as `{n}`", i + 1),
        })
        .collect();
    if renamed.is_empty() {
        return schema;
    }
    if super::first_time(format!("csv names {names:?}")) {
        tracing::warn!(
            "{file}: its header leaves a column unnamed or names one twice: read {} (as \
             DuckDB names them; a declared `schema:` uses these names too)",
            renamed.join(", ")
        );
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(f, name)| f.as_ref().clone().with_name(name))
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// A CSV file's header must name the schema's columns, in order.
fn check_csv_header(
    file: &str,
    bytes: &Bytes,
    schema: &SchemaRef,
    delimiter: u8,
) -> Result<(), SourceError> {
    unclosed_quote_in_header(file, bytes, delimiter)?;
    let header_line = bytes
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.as_ref(), |p| &bytes[..p]);
    if header_line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let (header, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(Cursor::new(header_line), Some(0))
        .map_err(|e| malformed(file, 1, &e))?;
    let written: Vec<&str> = header.fields().iter().map(|f| f.name().as_str()).collect();
    let names = csv_column_names(&written);
    let found: Vec<&str> = names.iter().map(String::as_str).collect();
    let expected: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    // Names that differ only in case are the same column, as Spark (`spark.sql.caseSensitive`
    // false, its default) and DuckDB match columns: `TS` in a header is the declared `ts`.
    if !same_names(&found, &expected) {
        let lower =
            |names: &[&str]| -> Vec<String> { names.iter().map(|n| n.to_lowercase()).collect() };
        let (found_l, expected_l) = (lower(&found), lower(&expected));
        let hint =
            if found.len() == expected.len() && found_l.iter().all(|f| expected_l.contains(f)) {
                // Only the order differs: `schema:` is a mapping, `columns:` says the order. But
                // one source reads its CSV files in one order (by position).
                "; only the order differs. A CSV source reads every file's columns in one order \
             (by position): where all its files have this header, declare the columns as \
             `columns: [{name: ..., type: ...}, ...]` in this order; where its files differ \
             in order, put the files of each order in a folder of their own, read as a source \
             of its own (`UNION ALL` them in the query), or rewrite this file's columns in \
             the source's order"
                    .to_string()
            } else if let Some(hint) = other_delimiter(&found, delimiter) {
                hint
            } else {
                // Columns gained or lost: no one schema reads both headers by position.
                let gained: Vec<&&str> = found
                    .iter()
                    .filter(|f| !expected_l.contains(&f.to_lowercase()))
                    .collect();
                let lost: Vec<&&str> = expected
                    .iter()
                    .filter(|e| !found_l.contains(&e.to_lowercase()))
                    .collect();
                let what = match (gained.is_empty(), lost.is_empty()) {
                    (false, true) => format!("it adds {gained:?}"),
                    (true, false) => format!("it lacks {lost:?}"),
                    (false, false) => format!("it adds {gained:?} and lacks {lost:?}"),
                    // The same names, one written twice.
                    (true, true) => "it names a column twice".to_string(),
                };
                format!(
                    "; {what}. A CSV source reads every file by one header, so no one schema fits \
                 files of both: put the files of each header in a folder of their own (or, \
                 where their names tell them apart, give each of two sources on the one \
                 folder a `path_glob_filter`), read as a source of its own, and `UNION ALL` \
                 them in the query (with `NULL AS <column>` for a column one lacks); or \
                 rewrite this file with the source's header. (A JSON or Parquet source reads \
                 a column a file lacks as null.)"
                )
            };
        return Err(SourceError::SchemaMismatch {
            file: file.to_string(),
            reason: format!(
                "its header has columns {found:?}, the source's schema has {expected:?}{hint}"
            ),
        });
    }
    Ok(())
}

/// Whether two lists of column names are the same, in order, but for case (`TS` and `ts`).
pub(super) fn same_names<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.as_ref().to_lowercase() == b.as_ref().to_lowercase())
}

/// Where a CSV header read with `delimiter` gives one column whose name holds another common
/// delimiter (`;`, tab, `|`), the advice to set it; `None` otherwise.
fn other_delimiter(header: &[&str], delimiter: u8) -> Option<String> {
    let [name] = header else {
        return None;
    };
    // Each: the byte, as the YAML setting writes it, and in words.
    let common = [
        (b',', ",", "`,`"),
        (b';', ";", "`;`"),
        (b'\t', "\\t", "a tab"),
        (b'|', "|", "`|`"),
    ];
    let (_, setting, words) = common
        .iter()
        .find(|(b, _, _)| *b != delimiter && name.as_bytes().contains(b))?;
    let current = common
        .iter()
        .find(|(b, _, _)| *b == delimiter)
        .map_or("its delimiter", |(_, _, words)| words);
    Some(format!(
        "; its header looks separated by {words}, not {current}: set the source's \
         `delimiter: \"{setting}\"`"
    ))
}

/// Refuses a file whose own rows hold a field `key` (top-level) with a value other than its
/// `key=value` folder's (`value`, read as `data_type`): the column is read from the folder, and
/// the file's value would be dropped without a word. Equal values (a writer that also keeps
/// the partition column in the file) and nulls pass. A CSV file's header must name the
/// source's columns, so such a column there is refused by [`check_csv_header`].
fn check_folder_agrees(
    file: &str,
    bytes: &Bytes,
    format: FileFormat,
    key: &str,
    value: Option<&str>,
    (data_type, epoch): (&DataType, Option<EpochUnit>),
) -> Result<(), SourceError> {
    let shown = |column: &ArrayRef, at: usize| {
        datafusion::arrow::util::display::array_value_to_string(column, at).ok()
    };
    // A value of text as the column's type reads it, shown.
    let typed = |text: &str| {
        let one: ArrayRef = Arc::new(StringArray::from(vec![text]));
        exact_cast(&one, data_type, epoch)
            .ok()
            .and_then(|typed| shown(&typed, 0))
    };
    let folder = match value {
        // A folder value that does not read is the column's error to report.
        Some(text) => match typed(text) {
            Some(shown) => Some(shown),
            None => return Ok(()),
        },
        None => None,
    };
    // The file's distinct values of `key`: as written, and as the column's type reads them.
    let mut seen: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    match format {
        FileFormat::Csv => return Ok(()),
        FileFormat::Json => {
            // Only a file that names the key as written (one that escapes a letter of a name,
            // `"regio\u006e"`, goes unchecked: each file is not parsed twice for it).
            let quoted = serde_json::to_string(key).unwrap_or_default();
            if !bytes.windows(quoted.len()).any(|w| w == quoted.as_bytes()) {
                return Ok(());
            }
            // Value by value, a value over several lines too; where one is malformed (the
            // decoder's to report), line by line, so the values after it are checked as well.
            let mut check = |value: serde_json::Value| {
                let serde_json::Value::Object(row) = value else {
                    return;
                };
                let text = match row.get(key) {
                    None | Some(serde_json::Value::Null) => return,
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                };
                let read = typed(&text);
                seen.insert((text, read));
            };
            let mut broken = false;
            for value in
                serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>()
            {
                match value {
                    Ok(value) => check(value),
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                for line in bytes.split(|b| *b == b'\n') {
                    if let Ok(value) = serde_json::from_slice(line) {
                        check(value);
                    }
                }
            }
        }
        FileFormat::Parquet => {
            // A file that does not read is the decoder's to report.
            let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()) else {
                return Ok(());
            };
            let Some((index, _)) = builder.schema().column_with_name(key) else {
                return Ok(());
            };
            let mask = datafusion::parquet::arrow::ProjectionMask::roots(
                builder.parquet_schema(),
                [index],
            );
            let Ok(reader) = builder.with_projection(mask).build() else {
                return Ok(());
            };
            for batch in reader.filter_map(Result::ok) {
                let column = batch.column(0);
                // In the column's type where it casts whole (a time stays a time), else value
                // by value from its text.
                let cast = exact_cast(column, data_type, epoch).ok();
                for at in (0..column.len()).filter(|at| column.is_valid(*at)) {
                    let Some(text) = shown(column, at) else {
                        continue;
                    };
                    let read = match &cast {
                        Some(cast) if cast.is_valid(at) => shown(cast, at),
                        _ => typed(&text),
                    };
                    seen.insert((text, read));
                }
            }
        }
    }
    for (theirs, read) in &seen {
        if folder.is_none() || *read != folder {
            return Err(SourceError::SchemaMismatch {
                file: file.to_string(),
                reason: format!(
                    "its rows hold `{key}` = {theirs} where its folder `{key}={}` says \
                     otherwise: the column `{key}` is read from the folder name, and the \
                     file's own values would be dropped. Make the two agree, or rename the \
                     folder's key or the file's field so that both are read",
                    value.unwrap_or(super::hive::NULL_PARTITION)
                ),
            });
        }
    }
    Ok(())
}

/// The column of a Parquet file (`file_schema`) that a source's column `name` (of columns
/// `schema`) reads: of that name, or else the one column whose name is it in other ASCII case,
/// where no other column of the source is that name in other case either (walk 124 (4)), as
/// Spark (`spark.sql.caseSensitive` off) and DuckDB match Parquet columns.
fn parquet_column<'a>(
    file_schema: &'a Schema,
    schema: &Schema,
    name: &str,
) -> Option<(usize, &'a Field)> {
    if let Some(found) = file_schema.column_with_name(name) {
        return Some(found);
    }
    let alike = |a: &str| a.eq_ignore_ascii_case(name);
    let mut found = file_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| alike(f.name()));
    let ours = schema.fields().iter().filter(|f| alike(f.name())).count();
    match (found.next(), found.next(), ours) {
        (Some((i, f)), None, 1) => Some((i, f.as_ref())),
        _ => None,
    }
}

/// Reads a Parquet file's columns named in `schema` (each must be there, with the schema's
/// type). Its other columns, but those named in `also_known`, are unknown fields of every row:
/// counted, and kept as JSON text where `rescue` asks for it.
fn parquet(
    file: &str,
    bytes: &Bytes,
    schema: &SchemaRef,
    also_known: &[&str],
    rescue: bool,
) -> Result<FileRows, SourceError> {
    let err = |reason: String| SourceError::Malformed {
        file: file.to_string(),
        line: None,
        reason,
    };
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(|e| err(e.to_string()))?;
    let rows = batch_rows(reader.schema().fields().len());
    let reader = reader.with_batch_size(rows);
    let file_schema = Arc::clone(reader.schema());
    // Every column that does not read is named in one refusal, not one a run.
    let mut misfits = Vec::new();
    let indices: Vec<Option<usize>> = schema
        .fields()
        .iter()
        .map(|field| {
            // A column the file lacks is null in its rows, as a JSON field a line lacks is (and
            // as Spark's `mergeSchema` and DuckDB's `union_by_name` read it).
            let Some((index, found)) = parquet_column(&file_schema, schema, field.name()) else {
                if !field.is_nullable() {
                    misfits.push(format!("it has no column `{}`", field.name()));
                }
                return None;
            };
            if !reads_as(found.data_type(), field.data_type()) {
                misfits.push(format!(
                    "column `{}` is {} in the file but {} in the source's schema",
                    field.name(),
                    crate::format::sql_type_name(found.data_type()),
                    crate::format::sql_type_name(field.data_type())
                ));
            }
            Some(index)
        })
        .collect();
    if !misfits.is_empty() {
        return Err(SourceError::SchemaMismatch {
            file: file.to_string(),
            reason: misfits.join("; "),
        });
    }
    let unknown: Vec<usize> = file_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, f)| !indices.contains(&Some(*i)) && !also_known.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let reader = reader.build().map_err(|e| err(e.to_string()))?;
    let target = Arc::new(Schema::new(schema.fields().clone()));
    let mut batches = Vec::new();
    // Per row: its unknown columns that are not null, as a JSON object's text.
    let mut rescued: Vec<Option<String>> = Vec::new();
    let mut unknown_rows = 0;
    // The unknown columns and fields that held a value in some row.
    let mut unknown_fields = BTreeSet::new();
    // Rows of the file read before this batch, to name a row by its place in the file.
    let mut rows_before = 0;
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        // A column of a narrower type than the schema's (an `int` file beside `bigint`
        // ones) is widened, which keeps every value.
        let columns = indices
            .iter()
            .zip(target.fields())
            .map(|(i, field)| {
                let Some(i) = i else {
                    return Ok(new_null_array(field.data_type(), batch.num_rows()));
                };
                let column = batch.column(*i);
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    cast_exactly(column, field.data_type()).map_err(|e| {
                        err(parquet_misfit(field, column, rows_before, &e.to_string()))
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows_before += batch.num_rows();
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        batches.push(
            RecordBatch::try_new_with_options(Arc::clone(&target), columns, &options)
                .map_err(|e| err(e.to_string()))?,
        );
        // The file's columns the schema does not know, and its struct fields the schema's
        // structs do not have (walk 66 (5): a field added to a struct refused the file),
        // by path: `payload.new`.
        let mut extras: Vec<(String, ArrayRef)> = unknown
            .iter()
            .map(|i| {
                (
                    file_schema.field(*i).name().clone(),
                    Arc::clone(batch.column(*i)),
                )
            })
            .collect();
        for (i, field) in indices.iter().zip(target.fields()) {
            if let Some(i) = i {
                struct_extras(
                    field.name(),
                    batch.column(*i),
                    field.data_type(),
                    &mut extras,
                )
                .map_err(|e| err(format!("column `{}`: {e}", field.name())))?;
            }
        }
        if extras.is_empty() {
            rescued.extend(std::iter::repeat_n(None, batch.num_rows()));
            continue;
        }
        let held: Vec<bool> = (0..batch.num_rows())
            .map(|row| extras.iter().any(|(_, column)| column.is_valid(row)))
            .collect();
        let rows_held = held.iter().filter(|h| **h).count() as u64;
        unknown_rows += rows_held;
        if rows_held > 0 {
            unknown_fields.extend(extras.iter().map(|(name, _)| name.clone()));
        }
        if rescue {
            let fields: Vec<Field> = extras
                .iter()
                .map(|(name, column)| Field::new(name, column.data_type().clone(), true))
                .collect();
            let extra = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                extras.into_iter().map(|(_, column)| column).collect(),
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )
            .map_err(|e| err(e.to_string()))?;
            let mut writer = arrow_json::WriterBuilder::new()
                .build::<_, arrow_json::writer::LineDelimited>(Vec::new());
            writer.write(&extra).map_err(|e| {
                err(format!(
                    "its columns the schema does not know cannot be rescued as JSON: {e}"
                ))
            })?;
            writer.finish().map_err(|e| err(e.to_string()))?;
            let text = String::from_utf8(writer.into_inner()).map_err(|e| err(e.to_string()))?;
            rescued.extend(
                text.lines()
                    .zip(&held)
                    .map(|(line, held)| held.then(|| line.to_string())),
            );
        }
    }
    Ok(FileRows {
        unknown_rows,
        unknown_fields,
        rescued: (rescue && rescued.iter().any(Option::is_some))
            .then(|| Arc::new(rescued.into_iter().collect::<StringArray>()) as ArrayRef),
        decoded: Decoded::from_batches(batches, 0),
    })
}

/// Pushes onto `out` each field of the struct `column` (a file's, at `path`) that the
/// schema's struct type `to` does not have, at any depth of structs, as `path.field` with its
/// values null where a struct above it is; nothing where either is no struct.
fn struct_extras(
    path: &str,
    column: &ArrayRef,
    to: &DataType,
    out: &mut Vec<(String, ArrayRef)>,
) -> Result<(), ArrowError> {
    // Most files have none: decided from the types, no array touched.
    if has_extra_fields(column.data_type(), to) {
        extras_below(path, column, to, None, out)?;
    }
    Ok(())
}

/// Whether struct type `from` (a file's) has a field, at any depth of structs, that struct
/// type `to` (the schema's) lacks; `false` where either is no struct.
fn has_extra_fields(from: &DataType, to: &DataType) -> bool {
    let (DataType::Struct(from), DataType::Struct(to)) = (from, to) else {
        return false;
    };
    from.iter().any(|field| match to.find(field.name()) {
        Some((_, known)) => has_extra_fields(field.data_type(), known.data_type()),
        None => true,
    })
}

/// [`struct_extras`] of `column`, whose structs above are null where `above` says.
fn extras_below(
    path: &str,
    column: &ArrayRef,
    to: &DataType,
    above: Option<&datafusion::arrow::buffer::NullBuffer>,
    out: &mut Vec<(String, ArrayRef)>,
) -> Result<(), ArrowError> {
    use datafusion::arrow::buffer::NullBuffer;
    let (DataType::Struct(_), DataType::Struct(fields)) = (column.data_type(), to) else {
        return Ok(());
    };
    let structs = column.as_struct();
    let nulls = NullBuffer::union(above, structs.nulls());
    for (field, child) in structs.fields().iter().zip(structs.columns()) {
        let path = format!("{path}.{}", field.name());
        match fields.find(field.name()) {
            Some((_, known)) if has_extra_fields(child.data_type(), known.data_type()) => {
                extras_below(&path, child, known.data_type(), nulls.as_ref(), out)?;
            }
            Some(_) => {}
            // A field of nulls only holds nothing to count or keep (and a `Null` array takes
            // no null mask).
            None if child.data_type() == &DataType::Null => {}
            None => {
                let child = match &nulls {
                    None => Arc::clone(child),
                    Some(nulls) => datafusion::arrow::array::make_array(
                        child
                            .to_data()
                            .into_builder()
                            .nulls(NullBuffer::union(Some(nulls), child.nulls()))
                            .build()?,
                    ),
                };
                out.push((path, child));
            }
        }
    }
    Ok(())
}

/// Whether the structs inside `from` (items of a list or a map, which Arrow's cast reads into
/// `to`'s by position where names differ) have `to`'s fields, in `to`'s order. A struct of
/// fewer fields, of more, or in another order is read by name only where [`cast_exactly`]
/// reads it (structs within structs): inside a list, Arrow would read a field into another's
/// place (the review of walk 66 (5)).
fn structs_by_position(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    match (from, to) {
        (T::Struct(a), T::Struct(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(a, b)| {
                    a.name() == b.name() && structs_by_position(a.data_type(), b.data_type())
                })
        }
        (T::List(a) | T::LargeList(a) | T::FixedSizeList(a, _), T::List(b) | T::LargeList(b)) => {
            structs_by_position(a.data_type(), b.data_type())
        }
        (T::Map(a, _), T::Map(b, _)) => structs_by_position(a.data_type(), b.data_type()),
        _ => true,
    }
}

/// Whether a Parquet file's column of type `from` is read into a source's column of type
/// `to`: the same type, or one [`widens_exactly`] into it.
pub(super) fn reads_as(from: &DataType, to: &DataType) -> bool {
    from == to || widens_exactly(from, to)
}

/// Whether every value of `from` is a value of `to`, the same: a wider integer, a double for
/// a float, a decimal with as many digits before and after the point or more, a finer time
/// unit, an instant in another zone, a date as a wall-clock time at midnight, another
/// encoding of text or bytes; lists, maps and structs (of the same fields, in order) of such
/// types. A Parquet file's column of such a type is read into the source's (Spark and DuckDB
/// merge Parquet schemas the same way).
///
/// Also true of an integer into a float type (DuckDB's `union_by_name` reads `bigint` into
/// `double` so): exact up to 2^53 for a double and 2^24 for a float only, so each such value
/// is checked as it is read ([`cast_exactly`]).
fn widens_exactly(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    let int_bits = |t: &DataType| match t {
        T::Int8 => Some((8, true)),
        T::Int16 => Some((16, true)),
        T::Int32 => Some((32, true)),
        T::Int64 => Some((64, true)),
        T::UInt8 => Some((8, false)),
        T::UInt16 => Some((16, false)),
        T::UInt32 => Some((32, false)),
        T::UInt64 => Some((64, false)),
        _ => None,
    };
    let decimal = |t: &DataType| match t {
        T::Decimal32(p, s) | T::Decimal64(p, s) | T::Decimal128(p, s) | T::Decimal256(p, s) => {
            Some((i16::from(*p), i16::from(*s)))
        }
        _ => None,
    };
    let rank = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    match (from, to) {
        (a, b) if int_bits(a).is_some() && int_bits(b).is_some() => {
            let ((a_bits, a_signed), (b_bits, b_signed)) = (
                int_bits(a).expect("an integer"),
                int_bits(b).expect("an integer"),
            );
            match (a_signed, b_signed) {
                (true, true) | (false, false) => a_bits <= b_bits,
                (false, true) => a_bits < b_bits,
                (true, false) => false,
            }
        }
        (a, b) if int_bits(a).is_some() && decimal(b).is_some() => {
            let (p, s) = decimal(b).expect("a decimal");
            let digits = match int_bits(a).expect("an integer") {
                (8, _) => 3,
                (16, _) => 5,
                (32, _) => 10,
                (64, true) => 19,
                _ => 20,
            };
            p - s >= digits
        }
        (a, b) if decimal(a).is_some() && decimal(b).is_some() => {
            let ((ap, a_s), (bp, b_s)) = (
                decimal(a).expect("a decimal"),
                decimal(b).expect("a decimal"),
            );
            b_s >= a_s && bp - b_s >= ap - a_s
        }
        (T::Float16 | T::Float32, T::Float64) | (T::Float16, T::Float32) => true,
        // An integer as a float: checked value by value where the float's digits (24 bits
        // for a float, 53 for a double) may not hold it.
        (a, T::Float32 | T::Float64) if int_bits(a).is_some() => true,
        (T::Timestamp(u, tz), T::Timestamp(v, tz2)) => {
            (tz == tz2 || (tz.is_some() && tz2.is_some())) && rank(u) <= rank(v)
        }
        (T::Date32, T::Timestamp(_, None)) => true,
        (T::List(a) | T::LargeList(a) | T::FixedSizeList(a, _), T::List(b) | T::LargeList(b)) => {
            (b.is_nullable() || !a.is_nullable())
                && reads_as(a.data_type(), b.data_type())
                && structs_by_position(a.data_type(), b.data_type())
        }
        // A struct of the same fields, in the same order, each read exactly; or, by name, of
        // some of them (a writer before a field was added), the others null, and of fields
        // the schema's lacks (a writer after one was added: unknown fields, counted and
        // rescued by path), as JSON objects merge.
        (T::Struct(a), T::Struct(b)) => {
            let same = a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(a, b)| {
                    a.name() == b.name()
                        && (b.is_nullable() || !a.is_nullable())
                        && reads_as(a.data_type(), b.data_type())
                });
            let shared = a.iter().any(|a| b.iter().any(|b| a.name() == b.name()));
            same || ((shared || a.is_empty())
                && b.iter()
                    .all(|b| match a.iter().find(|a| a.name() == b.name()) {
                        Some(a) => {
                            (b.is_nullable() || !a.is_nullable())
                                && reads_as(a.data_type(), b.data_type())
                        }
                        None => b.is_nullable(),
                    }))
        }
        (T::Map(a, _), T::Map(b, _)) => match (a.data_type(), b.data_type()) {
            (T::Struct(x), T::Struct(y)) if x.len() == 2 && y.len() == 2 => {
                x.iter().zip(y.iter()).all(|(x, y)| {
                    (y.is_nullable() || !x.is_nullable())
                        && reads_as(x.data_type(), y.data_type())
                        && structs_by_position(x.data_type(), y.data_type())
                })
            }
            _ => false,
        },
        (T::Time32(u) | T::Time64(u), T::Time32(v) | T::Time64(v)) => rank(u) <= rank(v),
        // A column of nulls only (pyarrow types `[None]` so): a null of any type (walk 66: a
        // small file's empty column was refused, inferred or declared; Spark and DuckDB merge
        // it).
        (T::Null, _) => true,
        // Dictionary-encoded values (pyarrow's `dictionary_encode`, a pandas categorical) are
        // their values.
        (T::Dictionary(_, values), to) => values.as_ref() == to || widens_exactly(values, to),
        (T::Utf8 | T::LargeUtf8 | T::Utf8View, T::Utf8 | T::LargeUtf8 | T::Utf8View)
        | (
            T::Binary | T::LargeBinary | T::BinaryView,
            T::Binary | T::LargeBinary | T::BinaryView,
        ) => true,
        (T::Date32, T::Date64) => true,
        _ => false,
    }
}

/// `column` cast to `to`, a type it [`widens_exactly`] into, refusing a value the cast would
/// change: an integer past the float's digits (2^53 for a double: 9007199254740993 would be
/// read as ...992), at any depth.
fn cast_exactly(column: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    // A struct of other fields: each of the schema's read by name, the others null (the
    // file's own others are unknown fields, [`struct_extras`]).
    if let (DataType::Struct(from), DataType::Struct(fields)) = (column.data_type(), to)
        && from
            .iter()
            .map(|f| f.name())
            .ne(fields.iter().map(|f| f.name()))
    {
        use datafusion::arrow::array::{Array as _, AsArray as _, StructArray, new_null_array};
        let structs = column.as_struct();
        let children = fields
            .iter()
            .map(|field| match structs.column_by_name(field.name()) {
                Some(child) => cast_exactly(child, field.data_type()),
                None => Ok(new_null_array(field.data_type(), structs.len())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Arc::new(StructArray::try_new(
            fields.clone(),
            children,
            structs.nulls().cloned(),
        )?));
    }
    let cast = cast_with_options(column, to, &exact())?;
    let may_round = |from: &DataType, to: &DataType| match to {
        DataType::Float64 => matches!(from, DataType::Int64 | DataType::UInt64),
        DataType::Float32 => {
            from.is_integer()
                && !matches!(
                    from,
                    DataType::Int8 | DataType::UInt8 | DataType::Int16 | DataType::UInt16
                )
        }
        _ => false,
    };
    let mut rounds = false;
    let mut stack = vec![(column.data_type().clone(), to.clone())];
    while let Some((from, to)) = stack.pop() {
        rounds |= may_round(&from, &to);
        match (&from, &to) {
            (
                DataType::List(a) | DataType::LargeList(a) | DataType::FixedSizeList(a, _),
                DataType::List(b) | DataType::LargeList(b),
            ) => stack.push((a.data_type().clone(), b.data_type().clone())),
            (DataType::Map(a, _), DataType::Map(b, _)) => {
                stack.push((a.data_type().clone(), b.data_type().clone()));
            }
            (DataType::Struct(a), DataType::Struct(b)) => stack.extend(
                a.iter()
                    .zip(b.iter())
                    .map(|(a, b)| (a.data_type().clone(), b.data_type().clone())),
            ),
            (DataType::Dictionary(_, a), b) => stack.push((a.as_ref().clone(), b.clone())),
            _ => {}
        }
    }
    if rounds {
        let back = cast_with_options(&cast, column.data_type(), &exact())?;
        if back.as_ref() != column.as_ref() {
            let row = (0..column.len())
                .find(|i| back.slice(*i, 1).as_ref() != column.slice(*i, 1).as_ref())
                .unwrap_or(0);
            let value = datafusion::arrow::util::display::array_value_to_string(column, row)
                .unwrap_or_default();
            return Err(ArrowError::CastError(format!(
                "{value} (row {}) is not exactly a value of {to} (a double holds integers \
                 exactly up to 2^53, a float up to 2^24): where all the column's files hold \
                 integers, declare it an integer type in `schema:`; else read the files of \
                 each type as a source of its own",
                row + 1
            )));
        }
    }
    Ok(cast)
}

/// Why a Parquet `column` does not read into `field` (`error`, from [`cast_exactly`]): a time
/// past a nanosecond `timestamp`'s years (a file's `timestamp(6)` column of year 3000 under a
/// declared `timestamp`; Arrow says only that a multiplication overflowed) is named with its
/// row in the file (`rows_before` the column's first row) and what to declare instead.
fn parquet_misfit(field: &Field, column: &ArrayRef, rows_before: usize, error: &str) -> String {
    let name = field.name();
    let hint = out_of_range_hint(field.data_type(), error);
    if hint.is_empty() {
        return format!("column `{name}`: {error}");
    }
    let row = (0..column.len())
        .find(|i| cast_with_options(&column.slice(*i, 1), field.data_type(), &exact()).is_err());
    let Some(row) = row else {
        return format!("column `{name}`: {error}{hint}");
    };
    let value =
        datafusion::arrow::util::display::array_value_to_string(column, row).unwrap_or_default();
    format!(
        "column `{name}`: {value} (row {}) is past the years a `timestamp` holds; the file's \
         column is {}{}",
        rows_before + row + 1,
        crate::format::sql_type_name(column.data_type()),
        PARQUET_RANGE_HINT
    )
}

/// What to do about a Parquet time a nanosecond `timestamp` cannot hold: a row of a file does
/// not skip (a Parquet file is read whole), so the way is a type that holds it.
const PARQUET_RANGE_HINT: &str = " (a `timestamp` counts nanoseconds, so it holds years 1677 \
    to 2262; declare the column `timestamp(6)` in the source's `schema:`, microseconds, as the \
    file's writer keeps it, for years far beyond)";

/// Where `text` (a record's lines) holds a byte no UTF-8 text holds there: what is wrong, as
/// a skipped record's note says it (the first such byte, and what text usually has it).
fn not_utf8(text: &[u8]) -> Option<String> {
    let at = first_not_utf8(text)?;
    Some(format!(
        "not UTF-8: byte 0x{:02X}, which no UTF-8 text has there (Latin-1 or Windows-1252 \
         text, as often; `iconv -f CP1252 -t UTF-8 FILE > NEW` converts such a file)",
        text[at]
    ))
}

/// Where in `text` the first byte is that no UTF-8 text has there; `None` where it is all
/// UTF-8 but for a character cut at its end (where what was read stops).
fn first_not_utf8(text: &[u8]) -> Option<usize> {
    let e = std::str::from_utf8(text).err()?;
    e.error_len().map(|_| e.valid_up_to())
}

/// Says (at `info`, `SLUICE_LOG=info`) that the record at `file` line `line` is skipped
/// under `on_error: skip`, and why (`reason`, in the words `on_error: fail` stops with).
/// Nothing for a message payload (no file): its source names the message
/// ([`super::payload`]), where a line means nothing.
fn note_skipped(file: &str, line: usize, reason: &str) {
    if !file.is_empty() {
        tracing::info!("skipping {file} line {line}: {reason}");
    }
}

/// What `error` says is wrong, without the file, line and advice its message adds.
fn reason_of(error: SourceError) -> String {
    match error {
        SourceError::Malformed { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn malformed_file(file: &str, error: &ArrowError) -> SourceError {
    SourceError::Malformed {
        file: file.to_string(),
        line: None,
        reason: error.to_string(),
    }
}

/// What [`csv_malformed`] says is wrong with the record, without the file and line.
fn csv_reason(file: &str, line: usize, error: &ArrowError, schema: &SchemaRef) -> String {
    match csv_malformed(file, line, error, schema) {
        SourceError::Malformed { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// [`malformed`], with the column Arrow's CSV reader counts from 0 (`for column 1`,
/// `parsing column 1`) named, and what to do about a number where a timestamp was expected.
fn csv_malformed(file: &str, line: usize, error: &ArrowError, schema: &SchemaRef) -> SourceError {
    let mut reason = unnumbered(error);
    for marker in ["for column ", "parsing column "] {
        let Some(at) = reason.find(marker) else {
            continue;
        };
        let rest = &reason[at + marker.len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if let Some(field) = rest[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|i| schema.fields().get(i))
        {
            reason = format!(
                "{}{marker}`{}`{}",
                &reason[..at],
                field.name(),
                &rest[digits..]
            );
        }
    }
    let number = reason.find(TIMESTAMP_FROM).map(|at| {
        let rest = &reason[at + TIMESTAMP_FROM.len()..];
        rest.split_once('\'')
            .is_some_and(|(value, _)| is_number(value))
    });
    if number == Some(true) {
        reason.push_str(EPOCH_HINT);
    } else if number == Some(false) {
        reason.push_str(TIMESTAMP_TEXT_HINT);
    } else if reason.contains("would overflow 64-bit signed nanoseconds") {
        reason.push_str(NANOSECOND_RANGE_HINT);
    }
    with_number_hints(&mut reason, true);
    SourceError::Malformed {
        file: file.to_string(),
        line: Some(line),
        reason,
    }
}

fn malformed(file: &str, line: usize, error: &ArrowError) -> SourceError {
    let mut reason = unnumbered(error);
    with_number_hints(&mut reason, false);
    SourceError::Malformed {
        file: file.to_string(),
        line: Some(line),
        reason,
    }
}

/// `error` in words, without the line Arrow counts within the piece it decoded (one record
/// here): its "at line 0" or "for line 1" would contradict the file's line number given
/// beside it.
fn unnumbered(error: &ArrowError) -> String {
    let mut reason = error.to_string();
    for marker in [" at line ", " for line "] {
        if let Some(at) = reason.find(marker) {
            let rest = &reason[at + marker.len()..];
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            reason = format!("{}{}", &reason[..at], &rest[digits..]);
        }
    }
    // Arrow reads a JSON number as text before casting it: "string" would misname it.
    let reason = reason.replace("Cannot cast string '", "Cannot cast '");
    // So an object or a list where a number (or a time, a boolean) is declared is said by
    // Arrow as "expected string got {...}" (walk 126 (5)): said as what it is.
    // A list declared, an object given, and the other way round: Arrow's rendering of the
    // value drops its commas (`{"sku": "a""qty": 1}`), so the value is left out.
    for (marker, said) in [
        (
            "expected [ got {",
            "the value is an object where its column's type is a list (declare the column as \
             the struct it is, or `string` to read it as JSON text)",
        ),
        (
            "expected { got [",
            "the value is a list where its column's type is a struct (declare the column as \
             the list it is, or `string` to read it as JSON text)",
        ),
    ] {
        if let Some(at) = reason.find(marker) {
            return format!("{}{said}", &reason[..at]);
        }
    }
    for (open, kind) in [("{", "an object"), ("[", "a list")] {
        let marker = format!("expected string got {open}");
        if let Some(at) = reason.find(&marker) {
            return format!(
                "{}the value is {kind}, `{}`, where its column's type takes one plain value \
                 (declare it `string` to read it as JSON text, or as a struct or list type)",
                &reason[..at],
                &reason[at + "expected string got ".len()..]
            );
        }
    }
    reason
}

/// Whether `value` is a word files write for a missing value (`null`, `NULL`, `NA`, `N/A`,
/// `None`, `\N`, `nil`), which a CSV reader takes as text unless told otherwise.
fn is_null_word(value: &str) -> bool {
    ["null", "na", "n/a", "none", "\\n", "nil"]
        .iter()
        .any(|word| value.trim().eq_ignore_ascii_case(word))
}

/// `reason` without the type Arrow parses a decimal's text into on its way to the column's
/// (`Cannot cast 'x' to value of Decimal128(38, 10) type`), which names no type the pipeline
/// has (walk 89: beside `decimal(10,2)`); the column's own type is said with it.
fn without_internal_decimal(reason: &str) -> String {
    match reason.split_once(" to value of Decimal") {
        Some((before, after)) => match after.split_once(" type") {
            Some((_, rest)) => format!("{before} to a decimal{rest}"),
            None => reason.to_string(),
        },
        None => reason.to_string(),
    }
}

/// The value a decoding error quotes and the words after it: `Cannot cast '1.5' to ...`,
/// `parsing value '1,5' as type ...` (CSV), `failed to parse "1,5" as Float64` (JSON).
fn quoted_value(reason: &str) -> Option<(&str, &str)> {
    [
        ("Cannot cast '", '\''),
        ("parsing value '", '\''),
        ("failed to parse \"", '"'),
    ]
    .iter()
    .find_map(|(marker, close)| {
        let at = reason.find(marker)?;
        reason[at + marker.len()..].split_once(*close)
    })
}

/// The column a decoding error names: `column `v``, or JSON's `field 'v'`.
fn named_column(reason: &str) -> Option<&str> {
    if let Some(rest) = reason.split("column `").nth(1) {
        return rest.split('`').next();
    }
    reason.split("field '").nth(1)?.split('\'').next()
}

/// Whether `value` is a number as much of Europe writes one, with a decimal comma and
/// perhaps a point (or a space, or an apostrophe) between each three digits of its whole part
/// (`12,50`, `1.234,56`, `1.234.567`): the thousands separator it uses, `None` for none
/// (`Some(None)`), or `None` where it is no such number.
pub(crate) fn local_number(value: &str) -> Option<Option<char>> {
    let value = value.trim().trim_start_matches(['-', '+']);
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    let (whole, fraction) = match value.split_once(',') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    if fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    let separator = ['.', ' ', '\''].into_iter().find(|c| whole.contains(*c));
    match separator {
        None if fraction.is_some() && digits(whole) => Some(None),
        Some(sep) => {
            let groups: Vec<&str> = whole.split(sep).collect();
            let grouped = (1..=3).contains(&groups[0].len())
                && digits(groups[0])
                && groups[1..].iter().all(|g| g.len() == 3 && digits(g));
            // `1.234` alone is a decimal point as likely as a thousands one.
            (grouped && (fraction.is_some() || groups.len() > 2)).then_some(Some(sep))
        }
        None => None,
    }
}

/// SQL that reads text column `column` holding numbers written as `example` is (see
/// [`local_number`]) as a number's text: its thousands separators taken out, its decimal
/// comma made a point.
pub(crate) fn local_number_as_sql(example: &str, column: &str) -> String {
    match local_number(example) {
        Some(Some(sep)) => {
            let sep = if sep == '\'' {
                "''".to_string()
            } else {
                sep.to_string()
            };
            format!("replace(replace({column}, '{sep}', ''), ',', '.')")
        }
        _ => format!("replace({column}, ',', '.')"),
    }
}

/// The `to_date` format of a day-first date (`31.12.2026`, `31/12/2026`, `31-12-2026`), as
/// much of the world writes one; `None` for any other text.
pub(crate) fn day_first_date(value: &str) -> Option<&'static str> {
    let value = value.trim();
    ["%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y"]
        .into_iter()
        .find(|f| chrono::NaiveDate::parse_from_str(value, f).is_ok())
}

/// Adds what to do about a value Arrow would not read: a number written with a decimal comma
/// where a decimal or float was expected, or with a point or exponent where an integer was;
/// a JSON text where a boolean was.
fn with_number_hints(reason: &mut String, csv: bool) {
    // JSON text where a boolean was expected: Arrow reads a number written as text into a
    // number column, but no text into a boolean one.
    if let Some(text) = reason
        .split("expected boolean got \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
    {
        let column = named_column(reason).unwrap_or("<column>").to_string();
        let text = text.to_lowercase();
        reason.push_str(&format!(
            " (a boolean written as text, `\"{text}\"`, is not read into a boolean column: \
             declare the column `string` and convert it in the query, \
             `lower({column}) = 'true' AS {column}`)"
        ));
        return;
    }
    let Some((value, after)) = quoted_value(reason) else {
        return;
    };
    // A word for a missing value (`NA`, `null`) in a typed column: text, not a null (a
    // decimal's or a time's is said where it is cast; this is every other type's).
    if is_null_word(value) && !reason.contains("null_value") {
        let value = value.to_string();
        let column = named_column(reason).unwrap_or("<column>").to_string();
        // `null_value` is CSV's alone (walk 97: a JSON source was told to set it, then
        // refused it), and one text a source.
        reason.push_str(&if csv {
            format!(
                " (the text `{value}` is read as text, not as a null; in a CSV file a field is \
                 null only where it is empty, unless the source's `null_value` names another \
                 text, `null_value: '{value}'`; one text a source: where it names another \
                 already, declare the column `string` and write `nullif({column}, '{value}')` \
                 in the query, cast to its type)"
            )
        } else {
            format!(
                " (the text `{value}` is read as text, not as a null: declare the column \
                 `string` and write `nullif({column}, '{value}')` in the query, cast to its \
                 type)"
            )
        });
        return;
    }
    let whole_looking = is_number(value)
        && value.contains(['.', 'e', 'E'])
        && (after.starts_with(" to value of Int") || after.starts_with(" to value of UInt"));
    // `12,50`: a number written with a decimal comma (a `;`-separated file from a locale
    // that writes them so), where a decimal or float was expected.
    let decimal_comma = local_number(value).is_some()
        && (after.contains("Decimal")
            || after.starts_with(" to a decimal")
            || after.contains("Float"));
    if let Some(day_first) = day_first_date(value).filter(|_| after.contains("Date")) {
        let column = named_column(reason).unwrap_or("<column>").to_string();
        reason.push_str(&format!(
            " (a day-first date, `{value}`, is not read as a date: declare the column `string` \
             and convert it in the query, `to_date({column}, '{day_first}') AS {column}`)"
        ));
        return;
    }
    if decimal_comma {
        // The column and its type as the reason names them (`column `v` is decimal(10,2):`,
        // `as type 'Float64' for column `v``, `whilst decoding field 'v'`).
        let column = named_column(reason).map(str::to_string);
        let declared = column
            .as_ref()
            .and_then(|c| reason.split(&format!("column `{c}` is ")).nth(1))
            .and_then(|rest| rest.split(':').next())
            .filter(|t| t.starts_with("decimal"))
            .map_or("DOUBLE".to_string(), str::to_uppercase);
        let text = column.as_deref().unwrap_or("<column>");
        let cast = format!("CAST({} AS {declared})", local_number_as_sql(value, text));
        let convert = match &column {
            Some(c) => format!(", `{cast} AS {c}`"),
            None => format!(" (`{cast}`)"),
        };
        let written = match (value.contains(','), local_number(value)) {
            (false, _) => "with points between thousands",
            (true, Some(Some(_))) => "with a decimal comma and thousands separators",
            _ => "with a decimal comma",
        };
        reason.push_str(&format!(
            " (a number written {written}, `{value}`, is not read as a number: declare the \
             column `string` and convert it in the query{convert})"
        ));
    }
    if whole_looking {
        reason.push_str(
            " (a number written with a point or an exponent, `1.0` or `1e2`, is not read into \
             an integer column even where it is whole: declare the column `double` or \
             `decimal(p,s)`, or write the number without them)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::error::DataFusionError;
    use futures::{StreamExt, TryStreamExt};

    /// Walk 109 (3): a `.zip` (and `.lz4`, `.lzma`) file was said to be UTF-16 text without a
    /// byte order mark, with an `encoding:` that did not read it either. It is named as what
    /// it is, with the extensions read and the tool that unpacks it; a zip archive without
    /// its extension too.
    #[test]
    fn an_archive_or_a_compression_not_read_is_named_as_what_it_is() {
        let zip = Bytes::from_static(b"PK\x03\x04\x14\x00\x00\x00\x08\x00");
        for (file, says) in [
            ("d.jsonl.zip", "it is a .zip file"),
            ("d.jsonl", "it is a .zip file"),
            ("d.jsonl.lz4", "it is a .lz4 file"),
            ("d.csv.lzma", "(unlzma)"),
        ] {
            let Err(e) = decompressed(file, &zip, FileFormat::Json, None) else {
                panic!("{file} was read");
            };
            let said = e.to_string();
            assert!(
                said.contains(says) && said.contains(".gz, .bz2, .xz or .zst"),
                "{file}: {said}"
            );
        }
        let json = Bytes::from_static(b"{\"a\":1}\n");
        assert!(decompressed("d.jsonl", &json, FileFormat::Json, None).is_ok());
    }

    /// Decodes the whole file `file` (at the top of its source's folder) as a source with
    /// `schema` reads it.
    fn decode(
        file: &str,
        bytes: &Bytes,
        format: FileFormat,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
        on_error: OnError,
    ) -> Result<Decoded, SourceError> {
        let reader = Reader {
            format,
            schema: Arc::clone(schema),
            projection: projection.map(<[usize]>::to_vec),
            on_error,
            rescued: None,
            epoch_unit: None,
            delimiter: b',',
            header: true,
            null_value: None,
            inferred: false,
            encoding: None,
            escape: None,
        };
        reader.decode(file, file, bytes)
    }

    /// The columns inferred from file `file` holding `text` (it has some), failing on a bad row.
    fn inferred_from(file: &str, text: &str, format: FileFormat, delimiter: u8) -> Schema {
        infer_schema(
            file,
            &Bytes::from(text.to_string()),
            format,
            OnError::Fail,
            delimiter,
            None,
        )
        .expect("infer")
        .expect("columns")
    }

    /// A reader of columns `schema` inferred from the source's files, failing on a bad row.
    fn inferred_reader(format: FileFormat, schema: SchemaRef, delimiter: u8) -> Reader {
        Reader {
            format,
            schema,
            projection: None,
            on_error: OnError::Fail,
            rescued: None,
            epoch_unit: None,
            delimiter,
            header: true,
            null_value: None,
            inferred: true,
            encoding: None,
            escape: None,
        }
    }

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

    /// Walk 126 (5): a value that does not fit inside a list of structs was named only by its
    /// column (`items`); its path is said too.
    #[test]
    fn a_misfit_inside_a_nested_column_is_named_by_its_path() {
        let item = DataType::Struct(
            vec![
                Field::new("sku", DataType::Utf8, true),
                Field::new("qty", DataType::Int64, true),
            ]
            .into(),
        );
        let schema = Arc::new(Schema::new(vec![Field::new(
            "items",
            DataType::List(Arc::new(Field::new("item", item, true))),
            true,
        )]));
        let text = "{\"items\":[{\"sku\":\"a\",\"qty\":1}]}\n\
                    {\"items\":[{\"sku\":\"b\",\"qty\":2},{\"sku\":\"c\",\"qty\":\"three\"}]}\n";
        // Why `text` (JSON lines) does not read into `schema`.
        let refused = |text: &'static str| {
            decode(
                "f.json",
                &Bytes::from(text),
                FileFormat::Json,
                &schema,
                None,
                OnError::Fail,
            )
            .expect_err("refused")
            .to_string()
        };
        let err = refused(text);
        assert!(
            err.contains("(at `items[1].qty`)") && err.contains("three"),
            "{err}"
        );
        // An object where the list is declared: said so, without Arrow's rendering of it,
        // which dropped its commas.
        let err = refused("{\"items\":{\"sku\":\"a\",\"qty\":1}}\n");
        assert!(
            err.contains("the value is an object where its column's type is a list")
                && !err.contains("\"a\"\"qty\""),
            "{err}"
        );
    }

    /// Walk 126 (5): an object or a list where a number is declared was said "expected
    /// string got {...}" (Arrow reads numbers as text first); said as what it is.
    #[test]
    fn an_object_where_a_number_is_declared_is_said_as_an_object() {
        for (line, kind) in [
            ("{\"id\":{\"n\":2},\"name\":\"a\"}\n", "an object"),
            ("{\"id\":[1],\"name\":\"a\"}\n", "a list"),
        ] {
            let err = json(line, OnError::Fail).expect_err("refused").to_string();
            assert!(
                err.contains(&format!("the value is {kind}"))
                    && err.contains("'id'")
                    && !err.contains("expected string"),
                "{err}"
            );
        }
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
    fn decimals_are_written_out_exactly_or_refused() {
        let cases: [(&str, i8, Result<&str, &str>); 14] = [
            ("1.5", 2, Ok("1.5")),
            ("1.500", 2, Ok("1.50")),
            ("-0.25", 2, Ok("-0.25")),
            ("+7", 2, Ok("+7")),
            ("1.5e0", 2, Ok("1.5")),
            ("1.5e1", 2, Ok("15")),
            ("15e-1", 2, Ok("1.5")),
            ("-1.2345e2", 2, Ok("-123.45")),
            ("0.0", 2, Ok("0.0")),
            ("000.0500", 2, Ok("0.05")),
            ("1.505", 2, Err("has more digits after the point")),
            ("1e-3", 2, Err("has more digits after the point")),
            ("1e9223372036854775807", 2, Err("out of the range")),
            ("x", 2, Ok("x")),
        ];
        for (text, scale, expected) in cases {
            match (plain_decimal(text, scale), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn epoch_numbers_count_exactly() {
        for text in ["0", "-1", "12.5", "1e9", "1.5E-3", "-0.0e+2"] {
            assert!(is_number(text), "{text}");
        }
        for text in [
            "",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "0x10",
            "1 ",
            "2026-01-01",
        ] {
            assert!(!is_number(text), "{text}");
        }
        // Seconds into nanoseconds: shift 9.
        assert_eq!(epoch_count("1767261601", 9), Ok(1_767_261_601_000_000_000));
        assert_eq!(
            epoch_count("1767261601.25", 9),
            Ok(1_767_261_601_250_000_000)
        );
        assert_eq!(epoch_count("-1.5", 9), Ok(-1_500_000_000));
        assert_eq!(epoch_count("1.5e-9", 18), Ok(1_500_000_000));
        assert_eq!(epoch_count("000.000", 9), Ok(0));
        assert_eq!(epoch_count("0e999999", 9), Ok(0));
        // Milliseconds into seconds: shift -3, only whole seconds fit.
        assert_eq!(epoch_count("5000", -3), Ok(5));
        assert_eq!(epoch_count("5001", -3), Err("has a finer fraction than"));
        assert_eq!(
            epoch_count("1.0000000001", 9),
            Err("has a finer fraction than")
        );
        // Past an i64 of nanoseconds (2262-04-11), and past any i128.
        assert_eq!(epoch_count("9223372037", 9), Err("is out of the range of"));
        assert_eq!(epoch_count("-9223372036.854775808", 9), Ok(i64::MIN));
        assert_eq!(epoch_count("1e40", 0), Err("is out of the range of"));
        assert_eq!(epoch_count("1e-40", 0), Err("has a finer fraction than"));
        assert_eq!(
            epoch_count(&"9".repeat(50), 0),
            Err("is out of the range of")
        );
    }

    #[test]
    fn epoch_numbers_read_inside_structs_and_lists() {
        let ns = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(
                "s",
                DataType::Struct(vec![Field::new("at", ns.clone(), true)].into()),
                true,
            ),
            Field::new_list("l", Field::new_list_field(ns, true), true),
        ]));
        let reader = Reader {
            format: FileFormat::Json,
            schema: Arc::clone(&schema),
            projection: None,
            on_error: OnError::Fail,
            rescued: None,
            epoch_unit: Some(EpochUnit::Milliseconds),
            delimiter: b',',
            header: true,
            null_value: None,
            inferred: false,
            encoding: None,
            escape: None,
        };
        let text = "{\"s\":{\"at\":1500},\"l\":[2,\"1970-01-01T00:00:03Z\",null]}\n";
        let decoded = reader
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect("decodes");
        assert_eq!(
            column_text(&decoded, 0),
            ["{at: 1970-01-01T00:00:01.500}"],
            "struct"
        );
        assert_eq!(
            column_text(&decoded, 1),
            ["[1970-01-01T00:00:00.002, 1970-01-01T00:00:03, ]"],
            "list"
        );
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

    /// Walk 91: bad lines in a row were skipped as one (rows in and skipped then no longer
    /// added up to the file's lines); each is counted.
    #[test]
    fn bad_json_lines_in_a_row_are_each_counted() {
        for (text, rows, skipped) in [
            ("{\"id\":1}\ngarbage\ngarbage\n{\"id\":2}\n", 2, 2),
            ("{\"id\":1}\ngarbage\ngarbage\ngarbage\n{\"id\":2}\n", 2, 3),
            ("{\"id\":1}\nnull\n[]\n{\"id\":2}\n", 2, 2),
            ("{\"id\":1}\n\"str\"\n7\n{\"id\":2}\n", 2, 2),
            ("{\"id\":\n{\"id\":\n{\"id\":2}\n", 1, 2),
            ("{\"id\":1}\ngarbage\n\n\ngarbage\n", 1, 2),
        ] {
            let d = json(text, OnError::Skip).expect("skip");
            assert_eq!((d.rows, d.skipped), (rows, skipped), "{text:?}");
        }
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

    /// Walk 10: a quote never closed took the rest of the file into one field; with a field
    /// count that still fit, silently (`1,"a` then `2,b` read as one row named `a\n2,b`).
    #[test]
    fn a_quote_never_closed_is_a_malformed_row_not_the_rest_of_the_file() {
        for text in [
            "id,name\n1,a\n2,\"b\n3,c\n4,d\n",
            "id,name\n1,a\n\"2,b\n3,c\n4,d\n",
            // Walk 16: the rest of the file as one field leaves too many fields: still the
            // quote is what is named.
            "id,name\n1,a\n2,x,\"b\n3,c\n4,d\n",
        ] {
            let err = csv(text, OnError::Fail).expect_err("unclosed").to_string();
            assert!(
                err.contains("f.csv line 3")
                    && err.contains("never closed")
                    && err.contains("3 line(s)"),
                "{err}"
            );
            // Skipped, the rows after it are read.
            let d = csv(text, OnError::Skip).expect("skip");
            assert_eq!((d.rows, d.skipped), (3, 1), "{text:?}");
        }
        // Lines ended by CRLF, and blank lines: the row named and skipped once.
        for (text, line) in [
            ("id,name\r\n1,a\r\n2,\"b\r\n3,c\r\n4,d\r\n", 3),
            ("id,name\n1,a\n\n\n2,\"b\n3,c\n4,d", 5),
        ] {
            let err = csv(text, OnError::Fail).expect_err("unclosed").to_string();
            assert!(
                err.contains(&format!("f.csv line {line}")) && err.contains("3 line(s)"),
                "{err}"
            );
            let d = csv(text, OnError::Skip).expect("skip");
            assert_eq!((d.rows, d.skipped), (3, 1), "{text:?}");
        }
        // Quotes that close, doubled quotes and a quote inside an unquoted field are text.
        for text in [
            "id,name\n1,\"a\nb\"\n2,\"say \"\"hi\"\"\"\n",
            "id,name\n1,5\"6\n2,b\n",
        ] {
            assert_eq!(csv(text, OnError::Fail).expect("whole").rows, 2, "{text:?}");
        }
        // In the header too, declared or inferred (walk 12: a column named `name\n1,a\n...`).
        let err = csv("id,\"name\n1,a\n2,b\n", OnError::Skip)
            .expect_err("header")
            .to_string();
        assert!(
            err.contains("f.csv") && err.contains("header, line 1") && err.contains("never closed"),
            "{err}"
        );
        let err = infer_schema(
            "f.csv",
            &Bytes::from_static(b"id,\"name\n1,a\n"),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("header")
        .to_string();
        assert!(
            err.contains("line 1") && err.contains("never closed"),
            "{err}"
        );
        assert!(ends_in_open_quote(b"a,\"b\"\"c", b','));
        assert!(!ends_in_open_quote(b"a;\"b\";c", b';'));
        assert!(!ends_in_open_quote(b"a,\"b\"\"c\"", b','));
    }

    #[test]
    fn a_parquet_column_reads_into_a_type_that_holds_its_values() {
        use DataType as T;
        let list = |t: T, name: &str| T::List(Arc::new(Field::new(name, t, true)));
        let zoned = |tz: &str| T::Timestamp(TimeUnit::Microsecond, Some(tz.into()));
        let naive = T::Timestamp(TimeUnit::Microsecond, None);
        let strukt = |fields: Vec<(&str, T)>| {
            T::Struct(
                fields
                    .into_iter()
                    .map(|(n, t)| Field::new(n, t, true))
                    .collect(),
            )
        };
        for (from, to) in [
            (T::Int32, T::Int64),
            (T::Int64, T::Float64),
            (list(T::Int32, "element"), list(T::Int64, "item")),
            (zoned("Europe/Paris"), zoned("UTC")),
            (T::Date32, naive.clone()),
            (
                strukt(vec![("a", T::Int32), ("b", T::Utf8)]),
                strukt(vec![("a", T::Int64), ("b", T::LargeUtf8)]),
            ),
            (T::Null, T::Utf8),
            (strukt(vec![("a", T::Null)]), strukt(vec![("a", T::Int64)])),
            // By name, as Spark and DuckDB read a struct's fields.
            (
                strukt(vec![("b", T::Utf8), ("a", T::Int32)]),
                strukt(vec![("a", T::Int32), ("b", T::Utf8)]),
            ),
        ] {
            assert!(reads_as(&from, &to), "{from} into {to}");
            let nulls = new_null_array(&from, 2);
            let cast = cast_exactly(&nulls, &to).expect("nulls cast");
            assert_eq!((cast.len(), cast.null_count()), (2, 2), "{from} into {to}");
        }
        for (from, to) in [
            (T::Int64, T::Int32),
            (T::Float64, T::Int64),
            (zoned("UTC"), naive.clone()),
            (naive.clone(), zoned("UTC")),
            (list(T::Int64, "item"), list(T::Int32, "item")),
            (T::Date32, zoned("UTC")),
            (T::Int64, T::Utf8),
            // Inside a list, Arrow's cast reads a struct by position where its names differ:
            // `y` would get `new`'s values (the review of walk 66 (5)).
            (
                list(strukt(vec![("x", T::Int64), ("new", T::Utf8)]), "item"),
                list(strukt(vec![("x", T::Int64), ("y", T::Utf8)]), "item"),
            ),
            (
                list(
                    strukt(vec![("x", T::Int64), ("y", T::Utf8), ("new", T::Utf8)]),
                    "item",
                ),
                list(strukt(vec![("x", T::Int64), ("y", T::Utf8)]), "item"),
            ),
        ] {
            assert!(!reads_as(&from, &to), "{from} into {to}");
        }
        // An integer into a double: value by value.
        let fits: ArrayRef = Arc::new(Int64Array::from(vec![1, 1 << 53]));
        let cast = cast_exactly(&fits, &T::Float64).expect("exact");
        assert_eq!(cast.len(), 2);
        let past: ArrayRef = Arc::new(Int64Array::from(vec![1, (1 << 53) + 1]));
        let err = cast_exactly(&past, &T::Float64)
            .expect_err("rounded")
            .to_string();
        assert!(err.contains("9007199254740993 (row 2)"), "{err}");
    }

    #[test]
    fn csv_header_must_match_the_schema() {
        let err = csv("id,title\n1,a\n", OnError::Fail)
            .expect_err("header")
            .to_string();
        assert!(err.contains("f.csv"), "{err}");
        assert!(err.contains("title"), "{err}");
        assert!(!err.contains("columns: ["), "not an order problem: {err}");
        // The same columns in another order: `columns:` declares the order.
        let err = csv("name,id\na,1\n", OnError::Fail)
            .expect_err("order")
            .to_string();
        assert!(err.contains("declare the columns as `columns: ["), "{err}");
        // ... and where a source's files differ in order, `columns:` would only move the
        // refusal to the next file: each order is a source of its own.
        assert!(err.contains("a source of its own"), "{err}");
    }

    /// A header that names the declared columns in other case (`ID,Name` for `id`, `name`)
    /// was refused as adding and lacking columns; Spark and DuckDB match column names without
    /// case, and so does the header check.
    #[test]
    fn a_csv_header_in_other_case_is_the_declared_columns() {
        let read = csv("ID,Name\n1,a\n", OnError::Fail).expect("the header in capitals");
        assert_eq!(read.rows, 1);
        assert_eq!(read.batches[0].schema().field(0).name(), "id");
        assert!(same_names(&["Kunden Nr", "ÄRA"], &["kunden nr", "ära"]));
        assert!(!same_names(&["a", "b"], &["b", "a"]));
        assert!(!same_names(&["a"], &["a", "b"]));
    }

    /// Walk 63 (1): a CSV header that names a column twice, or leaves one unnamed, could not
    /// be read at all (the query did not plan, and a declared schema had to match the
    /// header). Its columns are read under DuckDB's names, inferred or declared.
    #[test]
    fn a_csv_header_naming_a_column_twice_or_not_at_all_reads_under_duckdbs_names() {
        assert_eq!(
            csv_column_names(&["Kunden Nr", "Betrag", "Betrag", "", "", "Betrag_1"]),
            [
                "Kunden Nr",
                "Betrag",
                "Betrag_2",
                "column3",
                "column4",
                "Betrag_1"
            ]
        );
        assert_eq!(csv_column_names(&["a", "b"]), ["a", "b"]);
        let text = "Kunden Nr;Betrag;Betrag;;\r\n1;5;6;;\r\n";
        let inferred = inferred_from("x.csv", text, FileFormat::Csv, b';');
        let names: Vec<&str> = inferred
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["Kunden Nr", "Betrag", "Betrag_1", "column3", "column4"]
        );
        let reader = inferred_reader(FileFormat::Csv, Arc::new(inferred), b';');
        let decoded = reader
            .decode("x.csv", "x.csv", &Bytes::from(text))
            .expect("decodes");
        assert_eq!(column_text(&decoded, 2), ["6"]);
    }

    /// Walk 63 (7): times to the minute (`2026-12-31 23:59`) were inferred as text in CSV
    /// (and JSON), so `ts + INTERVAL '1 minute'` failed; they are timestamps, as DuckDB infers
    /// them, and read as such. A column with another value stays text.
    #[test]
    fn times_to_the_minute_are_inferred_as_timestamps() {
        let text = "id;ts;other\r\n1;2026-12-31 23:59;2026-12-31 23:59\r\n2;2027-01-01T00:01;\
                    soon\r\n3;;2026-01-01 10:00\r\n";
        let inferred = inferred_from("m.csv", text, FileFormat::Csv, b';');
        assert_eq!(inferred.field(1).data_type(), &INFERRED_TIMESTAMP);
        assert_eq!(inferred.field(2).data_type(), &DataType::Utf8);
        // Review: what chrono takes but decoding does not read stays text.
        for text in ["id,ts\n1,2026-1-5 9:05\n", "id;ts\n1; 2026-12-31 23:59\n"] {
            let delimiter = if text.contains(';') { b';' } else { b',' };
            let inferred = inferred_from("m.csv", text, FileFormat::Csv, delimiter);
            assert_eq!(inferred.field(1).data_type(), &DataType::Utf8, "{text}");
        }
        let reader = inferred_reader(FileFormat::Csv, Arc::new(inferred), b';');
        let decoded = reader
            .decode("m.csv", "m.csv", &Bytes::from(text))
            .expect("decodes");
        assert_eq!(
            column_text(&decoded, 1),
            ["2026-12-31T23:59:00", "2027-01-01T00:01:00", ""]
        );
        let inferred = infer_schema(
            "m.json",
            &Bytes::from("{\"ts\":\"2026-12-31 23:59\"}\n"),
            FileFormat::Json,
            OnError::Fail,
            b',',
            None,
        )
        .expect("infer")
        .expect("columns");
        assert_eq!(inferred.field(0).data_type(), &INFERRED_TIMESTAMP);
    }

    /// Walk 63 (9): numbers as much of Europe writes them, and the SQL that reads them.
    #[test]
    fn local_numbers_are_told_with_their_thousands_separator() {
        for (text, found) in [
            ("12,50", Some(None)),
            ("-1.234,56", Some(Some('.'))),
            ("1 234 567,5", Some(Some(' '))),
            ("1'234,5", Some(Some('\''))),
            ("1.234.567", Some(Some('.'))),
            // A point alone may be a decimal point; a misplaced group is no separator.
            ("1.234", None),
            ("12.34,5", None),
            ("12,5a", None),
            ("abc", None),
        ] {
            assert_eq!(local_number(text), found, "{text}");
        }
        assert_eq!(local_number_as_sql("12,50", "v"), "replace(v, ',', '.')");
        assert_eq!(
            local_number_as_sql("1.234,5", "v"),
            "replace(replace(v, '.', ''), ',', '.')"
        );
        assert_eq!(day_first_date("31.12.2026"), Some("%d.%m.%Y"));
        assert_eq!(day_first_date("31/12/2026"), Some("%d/%m/%Y"));
        assert_eq!(day_first_date("2026-12-31"), None);
    }

    /// Walk 63 (11): Excel's `sep=;` line was taken for the header, the header for a row.
    #[test]
    fn excels_separator_line_is_named() {
        let err = infer_schema(
            "x.csv",
            &Bytes::from("sep=;\r\nid;name\r\n1;a\r\n"),
            FileFormat::Csv,
            OnError::Skip,
            b',',
            None,
        )
        .expect_err("sep= line")
        .to_string();
        // Named by its line in words, with no advice to skip it, which would not (walk 97).
        assert!(
            err.contains("x.csv: its first line `sep=;`")
                && err.contains("Excel's separator line")
                && err.contains("`delimiter: \";\"`")
                && !err.contains("on_error: skip"),
            "{err}"
        );
        // Review: a tab's `sep=` line is one too.
        let err = infer_schema(
            "t.csv",
            &Bytes::from("sep=\t\nid\tname\n1\ta\n"),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("sep= line")
        .to_string();
        assert!(err.contains("Excel's separator line"), "{err}");
        let err = csv("sep=,\nid,name\n1,a\n", OnError::Fail)
            .expect_err("sep= line")
            .to_string();
        assert!(
            err.contains("Excel's separator line") && !err.contains("delimiter"),
            "{err}"
        );
    }

    /// Walk 71: a CSV file of 100,000 columns and three rows took 13 GB to read (Arrow's CSV
    /// reader keeps an offset per field of a batch up front). Wide files are read in batches
    /// of fewer rows: every row, the same values, at most [`BATCH_FIELDS`] fields a batch.
    #[test]
    fn a_file_of_many_columns_is_read_in_batches_of_fewer_rows() {
        let columns = 100_000;
        let row = |r: usize| {
            (0..columns)
                .map(|c| (c + r).to_string())
                .collect::<Vec<_>>()
        };
        let names: Vec<String> = (0..columns).map(|c| format!("c{c}")).collect();
        let mut csv = names.join(",") + "\n";
        let mut json = String::new();
        for r in 0..10 {
            csv += &(row(r).join(",") + "\n");
            let fields: Vec<String> = names
                .iter()
                .zip(row(r))
                .map(|(n, v)| format!("\"{n}\":{v}"))
                .collect();
            json += &format!("{{{}}}\n", fields.join(","));
        }
        for (file, text, format) in [
            ("wide.csv", csv, FileFormat::Csv),
            ("wide.json", json, FileFormat::Json),
        ] {
            let schema = Arc::new(inferred_from(file, &text, format, b','));
            assert_eq!(schema.fields().len(), columns, "{file}");
            let decoded = inferred_reader(format, schema, b',')
                .decode(file, file, &Bytes::from(text))
                .expect("decodes");
            assert_eq!(decoded.rows, 10, "{file}");
            for batch in &decoded.batches {
                assert!(
                    batch.num_rows() * batch.num_columns() <= BATCH_FIELDS,
                    "{file}: a batch of {} rows",
                    batch.num_rows()
                );
            }
            let last: Vec<i64> = decoded
                .batches
                .iter()
                .flat_map(|b| {
                    let column = b.column(columns - 1).as_primitive::<Int64Type>();
                    column.values().to_vec()
                })
                .collect();
            let expected: Vec<i64> = (0..10).map(|r| (columns - 1 + r) as i64).collect();
            assert_eq!(last, expected, "{file}");
        }
    }

    /// Walk 66 (2): a number past a float column's range was written on as infinity (or as
    /// null in JSON output), exit 0. It is refused naming its line; rescued where the source
    /// keeps a rescued-data column.
    #[test]
    fn a_number_past_a_float_columns_range_is_refused() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("f", DataType::Float32, true),
            Field::new("g", DataType::Float64, true),
        ]));
        let refused = |text: &str| {
            decode(
                "f.json",
                &Bytes::from(text.to_string()),
                FileFormat::Json,
                &schema,
                None,
                OnError::Fail,
            )
            .expect_err(text)
            .to_string()
        };
        let err = refused("{\"id\":1,\"f\":1.5,\"g\":2.5}\n{\"id\":2,\"f\":3.4e39,\"g\":1}\n");
        assert!(
            err.contains("f.json line 2") && err.contains("column `f` is float: a number past"),
            "{err}"
        );
        let err = refused("{\"id\":1,\"f\":1.5,\"g\":1e309}\n");
        // Past a double's range: no JSON number (serde's reading refuses it first).
        assert!(
            err.contains("f.json line 1") && err.contains("out of range"),
            "{err}"
        );
        // Walk 91: infinity written as a word in a string is infinity, as CSV's words are
        // (beside large numbers within the type's range).
        let words = "{\"id\":1,\"f\":\"-inf\",\"g\":\"Infinity\"}\n\
                     {\"id\":2,\"f\":\"inf\",\"g\":1e300}\n{\"id\":3,\"f\":1.5,\"g\":\"-INF\"}\n";
        let decoded = decode(
            "f.json",
            &Bytes::from(words),
            FileFormat::Json,
            &schema,
            None,
            OnError::Fail,
        )
        .expect("infinity as a word");
        assert_eq!(column_text(&decoded, 1), ["-inf", "inf", "1.5"]);
        assert_eq!(column_text(&decoded, 2), ["inf", "1e300", "-inf"]);
        // A number past the range in a string is no word (the review of walk 91).
        let err = refused("{\"id\":1,\"f\":1.5,\"g\":\"1e400\"}\n");
        assert!(err.contains("column `g` is double: a number past"), "{err}");
        // A word does not let a number past a float's range through beside it.
        let err = refused("{\"id\":1,\"f\":\"inf\",\"g\":1}\n{\"id\":2,\"f\":3.4e39,\"g\":1}\n");
        assert!(err.contains("f.json line 2"), "{err}");
        let decoded = rescuing(&schema, OnError::Fail)
            .decode("f.json", "f.json", &Bytes::from("{\"id\":3,\"f\":-1e40}\n"))
            .expect("rescued");
        assert_eq!(column_text(&decoded, 1), [""]);
        assert_eq!(column_text(&decoded, 3), [r#"{"f":-1e+40}"#]);
        // Audit 92b: a word inside a struct or a list, as a JSON sink writes it, is taken
        // too; a number past the range there is not.
        let nested = Arc::new(Schema::new(vec![
            Field::new(
                "s",
                DataType::Struct(vec![Field::new("f", DataType::Float32, true)].into()),
                true,
            ),
            Field::new_list("l", Field::new_list_field(DataType::Float64, true), true),
        ]));
        let read = |text: &str| {
            decode(
                "n.json",
                &Bytes::from(text.to_string()),
                FileFormat::Json,
                &nested,
                None,
                OnError::Fail,
            )
        };
        let decoded =
            read("{\"s\":{\"f\":\"-Infinity\"},\"l\":[1.5,\"Infinity\",null]}\n{\"s\":null}\n")
                .expect("words inside");
        assert_eq!(column_text(&decoded, 0), ["{f: -inf}", ""]);
        assert_eq!(column_text(&decoded, 1), ["[1.5, inf, ]", ""]);
        for past in [
            "{\"s\":{\"f\":3.4e39}}\n",
            "{\"l\":[\"Infinity\",\"1e400\"]}\n",
        ] {
            let err = read(past).expect_err(past).to_string();
            assert!(err.contains("inside it: a number past"), "{past}: {err}");
        }
    }

    /// Walk 67 (2): a list of nulls beside lists or objects (`[null, [5]]`) failed inference
    /// in Arrow's words, naming no field; the nulls type nothing, and the rows read.
    #[test]
    fn null_items_beside_lists_or_objects_infer() {
        let text = "{\"m\":[null,[5]],\"o\":[{\"a\":1},null]}\n";
        let inferred = inferred_from("x.json", text, FileFormat::Json, b',');
        let reader = inferred_reader(FileFormat::Json, Arc::new(inferred), b',');
        let decoded = reader
            .decode("x.json", "x.json", &Bytes::from(text))
            .expect("decodes");
        assert_eq!(decoded.rows, 1);
        assert_eq!(column_text(&decoded, 0), ["[, [5]]"]);
    }

    /// Walk 67 (1): an integer past `bigint` inside a struct or a list was inferred as a
    /// double, its digits lost; it is a decimal there too, and reads exactly.
    #[test]
    fn a_nested_integer_past_bigint_is_inferred_as_a_decimal() {
        let text = "{\"id\":1,\"m\":[18446744073709551615],\"s\":{\"n\":18446744073709551615,\
                    \"x\":1.5},\"w\":[123456789012345678901234567890]}\n\
                    {\"id\":2,\"m\":[5],\"s\":{\"n\":5,\"x\":2}}\n";
        let inferred = inferred_from("n.json", text, FileFormat::Json, b',');
        let type_of = |name: &str| {
            inferred
                .field_with_name(name)
                .expect(name)
                .data_type()
                .to_string()
        };
        assert_eq!(
            type_of("m"),
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Decimal128(20, 0),
                true
            )))
            .to_string()
        );
        assert!(
            type_of("s").contains("Decimal128(20, 0)") && type_of("s").contains("Float64"),
            "{}",
            type_of("s")
        );
        assert!(
            type_of("w").contains("Decimal128(38, 0)"),
            "{}",
            type_of("w")
        );
        let reader = inferred_reader(FileFormat::Json, Arc::new(inferred), b',');
        let decoded = reader
            .decode("n.json", "n.json", &Bytes::from(text))
            .expect("decodes");
        let shown = column_text(&decoded, 1).join(" ");
        assert!(shown.contains("18446744073709551615"), "{shown}");
        let shown = column_text(&decoded, 3).join(" ");
        assert!(shown.contains("123456789012345678901234567890"), "{shown}");
    }

    /// Walk 66 (7): a Parquet file in a JSON source was first warned of as a text file cut
    /// mid-line; only text is.
    #[test]
    fn only_text_is_said_to_end_mid_line() {
        assert!(ends_mid_line(
            "a.json",
            b"{\"a\":1}\n{\"a\":",
            FileFormat::Json
        ));
        assert!(!ends_mid_line("a.json", b"{\"a\":1}\n", FileFormat::Json));
        assert!(!ends_mid_line("a.json", b"PAR1\x15\x04", FileFormat::Json));
        assert!(!ends_mid_line(
            "a.json",
            b"\x1f\x8b\x08\x00",
            FileFormat::Json
        ));
        // Walk 79 (6): UTF-16 ends a line in two bytes; a byte order mark alone is no text.
        let utf16 = |text: &str, big: bool| -> Vec<u8> {
            let units = text.encode_utf16();
            let mut bytes = if big {
                vec![0xFE, 0xFF]
            } else {
                vec![0xFF, 0xFE]
            };
            for u in units {
                bytes.extend(if big {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                });
            }
            bytes
        };
        for big in [false, true] {
            let whole = utf16("id,name\n4,Zoë\n", big);
            assert!(!ends_mid_line("a.csv", &whole, FileFormat::Csv), "{big}");
            assert!(
                ends_mid_line("a.csv", &whole[..whole.len() - 2], FileFormat::Csv),
                "{big}"
            );
        }
        assert!(!ends_mid_line("a.csv", b"\xEF\xBB\xBF", FileFormat::Csv));
        // Walk 124: lines ended by a lone CR, as old Mac files end them.
        assert!(!ends_mid_line("a.csv", b"id,name\r1,a\r", FileFormat::Csv));
        assert!(!ends_mid_line("a.csv", b"\xFF\xFE", FileFormat::Csv));
    }

    /// A reader of `schema` (then `_rescued`) that keeps unknown fields.
    fn rescuing(schema: &SchemaRef, on_error: OnError) -> Reader {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("_rescued", DataType::Utf8, true));
        Reader {
            format: FileFormat::Json,
            schema: Arc::new(Schema::new(fields)),
            projection: None,
            on_error,
            rescued: Some("_rescued".into()),
            epoch_unit: None,
            delimiter: b',',
            header: true,
            null_value: None,
            inferred: false,
            encoding: None,
            escape: None,
        }
    }

    /// Column `index` of the decoded rows, as text (empty for null).
    fn column_text(d: &Decoded, index: usize) -> Vec<String> {
        use datafusion::arrow::util::display::array_value_to_string;
        d.batches
            .iter()
            .flat_map(|b| {
                let c = b.column(index);
                (0..b.num_rows())
                    .map(|r| {
                        if c.is_null(r) {
                            String::new()
                        } else {
                            array_value_to_string(c, r).expect("text")
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The fields of an object are found whole: nested values with commas and braces,
    /// strings with escaped quotes, space around them.
    #[test]
    fn an_object_s_fields_are_found_by_their_bytes() {
        let text = br#" { "a" : {"x": [1, {"y": "}"}]} , "b\"c":"q\"},", "d": -1.5e3 } "#;
        let fields = object_fields(text).expect("an object");
        let shown: Vec<(String, String)> = fields
            .iter()
            .map(|(_, name, value)| {
                (
                    name.clone(),
                    String::from_utf8_lossy(&text[value.clone()]).to_string(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("a".to_string(), r#"{"x": [1, {"y": "}"}]}"#.to_string()),
                ("b\"c".to_string(), r#""q\"},""#.to_string()),
                ("d".to_string(), "-1.5e3".to_string()),
            ]
        );
        assert_eq!(object_fields(b"{}").expect("empty"), Vec::new());
        assert!(object_fields(b"[1, 2]").is_none());
        assert!(object_fields(b"{\"a\": 1").is_none());
    }

    #[test]
    fn unknown_json_fields_are_counted_and_rescued() {
        let text = "{\"id\":1,\"name\":\"a\"}\n{\"id\":2,\"amt\":7,\"x\":{\"y\":null}}\n";
        let d = rescuing(&schema(), OnError::Fail)
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect("decode");
        assert_eq!((d.rows, d.unknown_rows), (2, 1));
        assert_eq!(
            d.unknown_fields
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["amt", "x"]
        );
        assert_eq!(column_text(&d, 2), ["", "{\"amt\":7,\"x\":{\"y\":null}}"]);
        assert_eq!(column_text(&d, 0), ["1", "2"]);
        // Without a rescued-data column, they are counted all the same.
        let d = json(text, OnError::Fail).expect("decode");
        assert_eq!((d.rows, d.unknown_rows), (2, 1));
        // Bad lines beside unknown fields: named, or skipped and counted, each apart.
        let text = "{\"id\":1,\"zz\":1}\n{bad\n{\"id\":\"x\"}\n{\"id\":3}\n";
        let err = rescuing(&schema(), OnError::Fail)
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect_err("bad line")
            .to_string();
        assert!(err.contains("f.json line 2"), "{err}");
        // (A value of a field that does not fit its column's type is rescued, its column null,
        // as Auto Loader rescues it: walk 41 (5).)
        let d = rescuing(&schema(), OnError::Skip)
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect("skip");
        // Counted with rows with unknown fields, named as values not of their column's type
        // (walk 66 (8): a rescued misfit was not counted, its column null without a word).
        assert_eq!((d.rows, d.skipped, d.unknown_rows), (3, 1, 2));
        assert_eq!(
            d.unknown_fields
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["id (a value not of its column's type)", "zz"]
        );
        assert_eq!(column_text(&d, 0), ["1", "", "3"]);
        assert_eq!(column_text(&d, 2), ["{\"zz\":1}", "{\"id\":\"x\"}", ""]);
        // The fields that fit keep every digit: the row is not read again through doubles.
        let decimal = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("d", DataType::Decimal128(38, 2), true),
            Field::new("_rescued", DataType::Utf8, true),
        ]));
        let reader = Reader {
            schema: decimal,
            ..rescuing(&schema(), OnError::Fail)
        };
        let d = reader
            .decode(
                "f.json",
                "f.json",
                &Bytes::from("{\"id\": \"A1\", \"d\": 12345678901234567.89}\n"),
            )
            .expect("rescued");
        assert_eq!(column_text(&d, 1), ["12345678901234567.89"]);
        assert_eq!(column_text(&d, 2), ["{\"id\":\"A1\"}"]);
        let d = rescuing(&schema(), OnError::Fail)
            .decode(
                "f.json",
                "f.json",
                &Bytes::from("{\"id\":1,\"name\":\"a\"}\n{\"id\":\"A1\",\"name\":\"b\",\"q\":2}\n"),
            )
            .expect("rescued");
        assert_eq!(column_text(&d, 0), ["1", ""]);
        assert_eq!(column_text(&d, 1), ["a", "b"]);
        assert_eq!(column_text(&d, 2), ["", "{\"id\":\"A1\",\"q\":2}"]);
        // A value spread over lines is one row; a line after it is numbered as in the file.
        let text = "{\"id\":1,\n \"more\":true}\n{\"id\": oops}\n";
        let err = json(text, OnError::Fail).expect_err("bad").to_string();
        assert!(err.contains("f.json line 3"), "{err}");
        // A number that is not an integer does not fit an integer column: named, not cut.
        let err = json("{\"id\":1}\n{\"id\":2.5}\n", OnError::Fail)
            .expect_err("2.5 is no bigint")
            .to_string();
        assert!(
            err.contains("f.json line 2") && err.contains("2.5"),
            "{err}"
        );
        let d = json("{\"id\":\"7\"}\n{\"id\":1e0}\n{\"id\":-3}\n", OnError::Skip).expect("skip");
        assert_eq!(
            (column_text(&d, 0), d.skipped),
            (vec!["7".into(), "-3".into()], 1)
        );
        // Numbers read into a string column as their text.
        let d = json("{\"id\":1,\"name\":5}\n", OnError::Fail).expect("coerced");
        assert_eq!(column_text(&d, 1), ["5"]);
    }

    #[test]
    fn partition_folders_fill_their_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
        ]));
        let reader = |projection: Option<Vec<usize>>, format| Reader {
            format,
            schema: Arc::clone(&schema),
            projection,
            on_error: OnError::Fail,
            rescued: None,
            epoch_unit: None,
            delimiter: b',',
            header: true,
            null_value: None,
            inferred: false,
            encoding: None,
            escape: None,
        };
        let path = "day=2024-01-01/f";
        let d = reader(None, FileFormat::Json)
            .decode(
                path,
                path,
                &Bytes::from("{\"id\":1,\"day\":\"2024-01-01\"}\n{\"id\":2,\"day\":null}\n"),
            )
            .expect("json");
        assert_eq!(column_text(&d, 1), ["2024-01-01", "2024-01-01"]);
        assert_eq!(
            d.unknown_rows, 0,
            "a field named like a folder is the folder's"
        );
        // A file's value the folder would replace is refused, naming both.
        let err = reader(None, FileFormat::Json)
            .decode(path, path, &Bytes::from("{\"id\":1,\"day\":\"x\"}\n"))
            .expect_err("the file's day differs");
        assert!(
            err.to_string()
                .contains("its rows hold `day` = x where its folder `day=2024-01-01`"),
            "{err}"
        );
        // CSV: the header has the file's own columns only.
        let d = reader(Some(vec![1]), FileFormat::Csv)
            .decode(path, path, &Bytes::from("id\n1\n2\n3\n"))
            .expect("csv");
        assert_eq!(
            column_text(&d, 0),
            ["2024-01-01", "2024-01-01", "2024-01-01"]
        );
        // Only the folder's column: the rows are still counted.
        let d = reader(Some(vec![1]), FileFormat::Json)
            .decode(path, path, &Bytes::from("{\"id\":1}\n{\"id\":2}\n"))
            .expect("json");
        assert_eq!((d.rows, d.batches[0].num_rows()), (2, 2));
        // Not in a folder: the column is read from the file.
        let d = reader(None, FileFormat::Json)
            .decode(
                "f",
                "f",
                &Bytes::from("{\"id\":1,\"day\":\"2024-02-03\"}\n"),
            )
            .expect("json");
        assert_eq!(column_text(&d, 1), ["2024-02-03"]);
        let err = reader(None, FileFormat::Json)
            .decode("day=x/f", "day=x/f", &Bytes::from("{\"id\":1}\n"))
            .expect_err("not a date")
            .to_string();
        assert!(
            err.contains("day=x/f") && err.contains("`x` is not a date"),
            "{err}"
        );
    }

    /// Walk 66 (5): a Parquet file whose struct had gained a field (a writer after the schema
    /// was pinned) was refused. The schema's fields are read by name; the new ones are unknown
    /// fields, counted and rescued by path, as a JSON object's are.
    #[test]
    fn a_parquet_struct_with_new_fields_reads_its_known_ones() {
        use datafusion::arrow::array::Int32Array;
        let inner = Fields::from(vec![Field::new("d", DataType::Int64, true)]);
        let written = Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Struct(inner.clone()), true),
            // Always null (pyarrow's `null` type): no null mask to take from the struct.
            Field::new("z", DataType::Null, true),
        ]);
        let payload = StructArray::try_new(
            written.clone(),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(9), Some(2)])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("x"), Some("hidden"), None])),
                Arc::new(
                    StructArray::try_new(
                        inner,
                        vec![Arc::new(Int64Array::from(vec![Some(5), Some(6), None])) as ArrayRef],
                        Some(vec![true, true, false].into()),
                    )
                    .expect("c"),
                ),
                Arc::new(datafusion::arrow::array::NullArray::new(3)),
            ],
            Some(vec![true, false, true].into()),
        )
        .expect("payload");
        let file_schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("payload", DataType::Struct(written), true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&file_schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(payload)],
        )
        .expect("batch");
        let mut bytes = Vec::new();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(&mut bytes, file_schema, None)
                .expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "payload",
                DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int64, true)])),
                true,
            ),
        ]));
        let reader = Reader {
            format: FileFormat::Parquet,
            ..rescuing(&schema, OnError::Fail)
        };
        let d = reader
            .decode("p.parquet", "p.parquet", &Bytes::from(bytes))
            .expect("reads");
        assert_eq!(column_text(&d, 1), ["{a: 1}", "", "{a: 2}"]);
        assert_eq!(
            column_text(&d, 2),
            ["{\"payload.b\":\"x\",\"payload.c\":{\"d\":5}}", "", ""]
        );
        assert_eq!(d.unknown_rows, 1);
        assert_eq!(
            d.unknown_fields
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["payload.b", "payload.c"]
        );
    }

    /// Walk 124 (6): a Parquet `timestamp(6)` of year 3000 under a declared `timestamp`
    /// (nanoseconds) said Arrow's "Overflow happened on: 32503680000000000 * 1000".
    #[test]
    fn a_parquet_time_past_a_nanosecond_timestamp_is_named_with_its_row_and_the_type_that_holds_it()
    {
        use datafusion::arrow::array::TimestampMicrosecondArray;
        let file_schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        // 2020-01-01 and 3000-01-01, in microseconds.
        let batch = RecordBatch::try_new(
            Arc::clone(&file_schema),
            vec![Arc::new(TimestampMicrosecondArray::from(vec![
                1_577_836_800_000_000,
                32_503_680_000_000_000,
            ]))],
        )
        .expect("batch");
        let mut bytes = Vec::new();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(&mut bytes, file_schema, None)
                .expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let bytes = Bytes::from(bytes);
        let declared = |unit| {
            Arc::new(Schema::new(vec![Field::new(
                "ts",
                DataType::Timestamp(unit, None),
                true,
            )]))
        };
        let nanos = declared(TimeUnit::Nanosecond);
        let reader = Reader {
            format: FileFormat::Parquet,
            ..rescuing(&nanos, OnError::Fail)
        };
        let message = reader
            .decode("p.parquet", "p.parquet", &bytes)
            .expect_err("year 3000 is no nanosecond timestamp")
            .to_string();
        assert!(
            message.contains("column `ts`: 3000-01-01T00:00:00 (row 2) is past the years")
                && message.contains("declare the column `timestamp(6)`")
                && !message.contains("Overflow happened"),
            "{message}"
        );
        let micros = declared(TimeUnit::Microsecond);
        let reader = Reader {
            format: FileFormat::Parquet,
            ..rescuing(&micros, OnError::Fail)
        };
        let d = reader
            .decode("p.parquet", "p.parquet", &bytes)
            .expect("timestamp(6) holds it");
        assert_eq!(
            column_text(&d, 0),
            ["2020-01-01T00:00:00", "3000-01-01T00:00:00"]
        );
    }

    /// Walk 67 (3): a field that is text in one file and an array or an object in another
    /// was refused, with advice (declare it `string`) that was refused too. An array or object
    /// read into a text column is its JSON text, as in Spark and DuckDB, in structs too.
    #[test]
    fn arrays_and_objects_read_into_text_columns_as_their_json() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("tags", DataType::Utf8, true),
            Field::new(
                "user",
                DataType::Struct(Fields::from(vec![Field::new("note", DataType::Utf8, true)])),
                true,
            ),
        ]));
        let text = "{\"id\":1,\"tags\":\"a\"}\n\
                    {\"id\":2,\"tags\":[\"a\", 12345678901234567890123],\"user\":{\"note\":{\"x\":[1]}}}\n\
                    {\"id\":3,\"tags\":{\"k\":\"v\"},\"user\":{\"note\":7}}\n";
        let reader = Reader {
            schema: Arc::clone(&schema),
            rescued: None,
            ..rescuing(&schema, OnError::Fail)
        };
        let d = reader
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect("decode");
        assert_eq!((d.rows, d.unknown_rows), (3, 0));
        assert_eq!(
            column_text(&d, 1),
            ["a", "[\"a\", 12345678901234567890123]", "{\"k\":\"v\"}"]
        );
        assert_eq!(column_text(&d, 2), ["", "{note: {\"x\":[1]}}", "{note: 7}"]);
    }

    /// Walk 67 (3): a field that is text in some rows and an array or object in others was
    /// inferred as a list its text then failed to decode into (or refused inference); it is
    /// inferred as text, at any depth of structs, and read so.
    #[test]
    fn a_field_of_scalars_and_arrays_infers_as_text() {
        let text = "{\"id\":1,\"tags\":\"a\",\"u\":{\"n\":5}}\n\
                    {\"id\":2,\"tags\":[\"a\",\"b\"],\"u\":{\"n\":{\"deep\":true}}}\n\
                    {\"id\":3,\"tags\":{\"k\":1}}\n";
        let inferred = inferred_from("x.json", text, FileFormat::Json, b',');
        assert_eq!(
            inferred.field_with_name("tags").expect("tags").data_type(),
            &DataType::Utf8
        );
        let reader = inferred_reader(FileFormat::Json, Arc::new(inferred), b',');
        let decoded = reader
            .decode("x.json", "x.json", &Bytes::from(text))
            .expect("decodes");
        assert_eq!(decoded.rows, 3);
        let tags = decoded.batches[0].schema().index_of("tags").expect("tags");
        assert_eq!(
            column_text(&decoded, tags),
            ["a", "[\"a\",\"b\"]", "{\"k\":1}"]
        );
        let u = decoded.batches[0].schema().index_of("u").expect("u");
        assert_eq!(
            column_text(&decoded, u),
            ["{n: 5}", "{n: {\"deep\":true}}", ""]
        );
    }

    /// Walk 67 (9): a struct field whose value did not fit its type (`"id":"x"` for a bigint)
    /// nulled the whole struct, its other fields lost from the column. Only that field is null,
    /// rescued by its path, at any depth.
    #[test]
    fn a_misfit_inside_a_struct_is_rescued_alone() {
        let user = Fields::from(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "geo",
                DataType::Struct(Fields::from(vec![
                    Field::new("lat", DataType::Float64, true),
                    Field::new("city", DataType::Utf8, true),
                ])),
                true,
            ),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("user", DataType::Struct(user), true),
        ]));
        let text = "{\"k\":1,\"user\":{\"id\":\"x\",\"name\":\"a\",\"geo\":{\"lat\":\"n/a\",\"city\":\"Oslo\"}}}\n\
                    {\"k\":\"two\",\"user\":{\"id\":2,\"name\":\"b\"}}\n\
                    {\"k\":3,\"user\":5}\n";
        let d = rescuing(&schema, OnError::Fail)
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect("decode");
        assert_eq!(d.rows, 3);
        assert_eq!(column_text(&d, 0), ["1", "", "3"]);
        assert_eq!(
            column_text(&d, 1),
            [
                "{id: , name: a, geo: {lat: , city: Oslo}}",
                "{id: 2, name: b, geo: }",
                ""
            ]
        );
        assert_eq!(
            column_text(&d, 2),
            [
                "{\"user.geo.lat\":\"n/a\",\"user.id\":\"x\"}",
                "{\"k\":\"two\"}",
                "{\"user\":5}"
            ]
        );
        assert_eq!(
            d.unknown_fields
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            [
                "k (a value not of its column's type)",
                "user (a value not of its column's type)",
                "user.geo.lat (a value not of its column's type)",
                "user.id (a value not of its column's type)",
            ]
        );
    }

    #[test]
    fn nested_unknown_fields_are_named_by_their_path() {
        let inner = Fields::from(vec![Field::new("known", DataType::Int64, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("payload", DataType::Struct(inner.clone()), true),
            Field::new(
                "items",
                DataType::List(Arc::new(Field::new_list_field(
                    DataType::Struct(inner),
                    true,
                ))),
                true,
            ),
        ]));
        let text = "{\"payload\":{\"known\":1,\"new\":2},\"items\":[{\"known\":1},{\"x\":3}]}\n";
        let d = rescuing(&schema, OnError::Fail)
            .decode("f.json", "f.json", &Bytes::from(text))
            .expect("decode");
        assert_eq!(d.unknown_rows, 1);
        assert_eq!(column_text(&d, 2), ["{\"items[1].x\":3,\"payload.new\":2}"]);
    }

    #[test]
    fn a_broken_value_over_lines_is_skipped_once() {
        let text = "{\"id\":1,\"name\":[\n  {\"id\":99},\n  oops\n]}\n{\"id\":2}\n";
        let d = json(text, OnError::Skip).expect("skip");
        assert_eq!((d.rows, d.skipped), (1, 1));
        let err = json(text, OnError::Fail).expect_err("bad").to_string();
        // Named by the line the value starts on, with the line the parser stopped on.
        assert!(err.starts_with("f.json line 1: "), "{err}");
        assert!(
            err.contains("does not parse: not valid JSON: a value is missing or is not JSON (text is written in double quotes) (line 3, column 3)"),
            "{err}"
        );
        assert!(
            !err.contains(" at line "),
            "said once, in the file's lines: {err}"
        );
        // Walk 22: a value cut short ran into the next line's whole record, which the parser
        // took for part of it; under skip, that record was lost too. Only the cut value goes.
        let d = json(
            "{\"id\":1,\"name\":\n{\"id\":2}\n{\"id\":3}\n",
            OnError::Skip,
        )
        .expect("skip");
        assert_eq!((d.rows, d.skipped), (2, 1));
        // Walk 19: serde_json's own words (`expected ident`) said as what is wrong.
        let err = json("{\"id\":1}\n{\"id\": tru}\n", OnError::Fail)
            .expect_err("bad")
            .to_string();
        assert!(
            err.starts_with("f.json line 2: not valid JSON: an unquoted word")
                && err.contains("(column 11)"),
            "{err}"
        );
        // The first bad line is named, whether a value does not parse or does not fit.
        let err = json("{\"id\":\"x\"}\n{bad\n", OnError::Fail)
            .expect_err("bad")
            .to_string();
        assert!(err.contains("f.json line 1"), "{err}");
        // A byte order mark is not a value.
        let d = json("\u{feff}{\"id\":1}\n", OnError::Fail).expect("bom");
        assert_eq!(d.rows, 1);
        // Inference finds values as decoding does, and skips what does not parse under skip.
        let inferred = infer_schema(
            "f.json",
            &Bytes::from("{\"a\":\n 1}\n{oops\n{\"b\":\"x\"}\n"),
            FileFormat::Json,
            OnError::Skip,
            b',',
            None,
        )
        .expect("infer")
        .expect("columns");
        assert_eq!(inferred.fields().len(), 2);
        let err = infer_schema(
            "f.json",
            &Bytes::from("{\"a\":1}\n{oops\n"),
            FileFormat::Json,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("bad line")
        .to_string();
        assert!(err.contains("f.json line 2"), "{err}");
    }

    /// Walk 12 (F12): JSON integers past `i64` infer as the decimal that holds them exactly;
    /// a fraction, an exponent or more than 38 digits as a double; only top-level keys
    /// count, and a key or number inside a string is no literal.
    #[test]
    fn json_integers_past_i64_infer_as_exact_decimals() {
        let text = "{\"below\":-9223372036854775809,\"u64\":18446744073709551615,\"past\":\
                    18446744073709551616,\"exp\":1e19,\"frac\":1.5,\"long\":\
                    123456789012345678901234567890123456789,\"s\":\"\\\"x\\\": 1\",\"o\":{\"n\":\
                    99999999999999999999}}\n{\"below\":1,\"u64\":2,\"past\":null,\"exp\":3,\
                    \"frac\":4,\"long\":5}\n";
        let inferred = inferred_from("f.json", text, FileFormat::Json, b',');
        let of = |name: &str| {
            inferred
                .field_with_name(name)
                .expect(name)
                .data_type()
                .clone()
        };
        assert_eq!(of("below"), DataType::Decimal128(38, 0));
        assert_eq!(of("u64"), DataType::Decimal128(20, 0));
        assert_eq!(of("past"), DataType::Decimal128(38, 0));
        assert_eq!(of("exp"), DataType::Float64);
        assert_eq!(of("frac"), DataType::Float64);
        assert_eq!(of("long"), DataType::Float64);
        assert_eq!(of("s"), DataType::Utf8);
        // A key written twice is its last value, as the parser keeps it.
        let twice = integer_literal_keys(
            b"{\"a\":123456789012345678901234567,\"a\":1.5,\"b\":1.5,\"b\":2}",
        );
        assert_eq!(twice.into_iter().collect::<Vec<_>>(), ["b"]);
        let keys = integer_literal_keys(text.lines().next().expect("line").as_bytes());
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            ["below", "past", "u64"],
            "nested `n` and the string's `x` are no top-level integer keys"
        );
    }

    /// The columns and types inferred from CSV `text`.
    fn csv_types(text: &str, on_error: OnError) -> Vec<(String, DataType)> {
        infer_schema(
            "a.csv",
            &Bytes::from(text.to_string()),
            FileFormat::Csv,
            on_error,
            b',',
            None,
        )
        .expect("infer")
        .expect("columns")
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
    }

    /// Walk 43 (U2): a column Arrow's inference took for dates by their look (`2026-02-30`)
    /// or for integers (one past 64 bits) made the very file it was inferred from fail. A
    /// column some value of the file does not parse as is text, as DuckDB's sniffer keeps it;
    /// columns every value fits keep their types.
    #[test]
    fn a_csv_column_is_inferred_as_a_type_every_value_fits() {
        let text = "id,big,d,t,ok,mixed\n\
                    1,9223372036854775807,2026-01-01,2026-01-01T10:00:00,2026-01-01,2026-01-05\n\
                    2,9223372036854775808,2026-02-30,2026-01-01T10:00:01,2026-02-28,2026-01-05 10:00:00\n";
        // Walk 46 (W3): a bare date beside times keeps the column text, as in DuckDB.
        assert_eq!(
            csv_types(text, OnError::Fail),
            [
                ("id".to_string(), DataType::Int64),
                ("big".to_string(), DataType::Utf8),
                ("d".to_string(), DataType::Utf8),
                (
                    "t".to_string(),
                    DataType::Timestamp(TimeUnit::Nanosecond, None)
                ),
                ("ok".to_string(), DataType::Date32),
                ("mixed".to_string(), DataType::Utf8),
            ]
        );
        // A later value that does not fit an inferred column, of any type, says how to
        // declare it; a declared column's does not.
        for (text, column) in [("id,name\nx,a\n", "id"), ("id,name\n1.5,a\n", "id")] {
            for inferred in [true, false] {
                let reader = Reader {
                    format: FileFormat::Csv,
                    schema: schema(),
                    projection: None,
                    on_error: OnError::Fail,
                    rescued: None,
                    epoch_unit: None,
                    delimiter: b',',
                    header: true,
                    null_value: None,
                    inferred,
                    encoding: None,
                    escape: None,
                };
                let err = reader
                    .decode("f.csv", "f.csv", &Bytes::from(text))
                    .expect_err(text)
                    .to_string();
                let hint = format!("with `{column}: string`");
                assert_eq!(err.contains(&hint), inferred, "{err}");
                assert!(err.contains("f.csv line 2"), "{err}");
            }
        }
    }

    /// Walk 14 (F6): a CSV row with too few fields failed inference even under `on_error:
    /// skip` (Arrow's "Expected 3 records, found 2 records"), where decoding skips and counts
    /// it: inference reads past it under skip, and names its line under fail.
    #[test]
    fn csv_inference_reads_past_a_malformed_row_under_skip() {
        let text = "id,name,amt\n1,a,1.5\n\n  \n2,b\n3,c,2.5\n";
        assert_eq!(
            csv_types(text, OnError::Skip),
            [
                ("id".to_string(), DataType::Int64),
                ("name".to_string(), DataType::Utf8),
                ("amt".to_string(), DataType::Float64)
            ]
        );
        let err = infer_schema(
            "a.csv",
            &Bytes::from(text),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("malformed")
        .to_string();
        assert!(err.contains("a.csv") && err.contains("line 5"), "{err}");
        // Walk 16: a quote never closed, which leaves a record of too few fields, is named as
        // decoding names it, and read past under skip.
        let text = "id,name,amt\n1,a,1.5\n2,\"b,2.5\n3,c,3.5\n";
        let err = infer_schema(
            "a.csv",
            &Bytes::from(text),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("unclosed")
        .to_string();
        assert!(
            err.contains("a.csv line 3") && err.contains("never closed"),
            "{err}"
        );
        assert_eq!(
            csv_types(text, OnError::Skip),
            [
                ("id".to_string(), DataType::Int64),
                ("name".to_string(), DataType::Utf8),
                ("amt".to_string(), DataType::Float64)
            ]
        );
    }

    /// Walk 20 (7): a `;`-separated file whose values hold commas (`1,5`, a decimal comma)
    /// named a malformed row and `on_error: skip` before the cause; the header's delimiter is
    /// judged first, under either `on_error`.
    #[test]
    fn a_csv_header_of_another_delimiter_is_named_before_its_rows() {
        for on_error in [OnError::Fail, OnError::Skip] {
            let err = infer_schema(
                "prices.csv",
                &Bytes::from(
                    "item;price
apple;1,5
pear;2
",
                ),
                FileFormat::Csv,
                on_error,
                b',',
                None,
            )
            .expect_err("another delimiter")
            .to_string();
            assert!(
                err.contains("prices.csv")
                    && err.contains("separated by `;`, not `,`")
                    && err.contains("`delimiter: \";\"`")
                    && !err.contains("on_error"),
                "{err}"
            );
        }
    }

    /// Walk 11 (F9): a CSV column of integers one of which is written with a leading zero
    /// (`01234`) is inferred as text, as DuckDB's sniffer infers it: as a number it would lose
    /// its zeros.
    #[test]
    fn a_csv_integer_column_with_leading_zeros_is_inferred_as_text() {
        let inferred = infer_schema(
            "a.csv",
            &Bytes::from("zip,ver,id,neg\n01234,1.10,1,-5\n98765,1.1,0,-0\n"),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect("infer")
        .expect("columns");
        let types: Vec<(&str, &DataType)> = inferred
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        // A first line of zero-led numbers is still judged a row, not a header.
        let err = infer_schema(
            "zips.csv",
            &Bytes::from("01234\n02345\n"),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("a row, not a header")
        .to_string();
        assert!(err.contains("looks like a row"), "{err}");
        // Walk 97: a number over numbers of another type (`10.5` over `7`) too.
        let err = infer_schema(
            "people.csv",
            &Bytes::from("1,Anna,10.5\n2,Bob,7\n"),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect_err("a row, not a header")
        .to_string();
        assert!(
            err.contains("looks like a row") && err.contains("header: false"),
            "{err}"
        );
        assert_eq!(
            types,
            [
                ("zip", &DataType::Utf8),
                ("ver", &DataType::Float64),
                ("id", &DataType::Int64),
                ("neg", &DataType::Int64)
            ]
        );
    }

    /// Walk 109: a Parquet file still being written (or cut short) failed with Parquet's
    /// "Corrupt footer" and advice to declare a schema, which reads no footer either. Said as
    /// a file cut short, with the ways to write files whole, inferred or declared.
    #[test]
    fn a_parquet_file_without_its_footer_is_said_cut_short() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .expect("batch");
        let mut bytes = Vec::new();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None)
                .expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let whole = Bytes::from(bytes);
        let half = whole.slice(..whole.len() / 2);
        let says_cut_short = |err: String| {
            assert!(
                err.contains("p.parquet")
                    && err.contains("does not end as one")
                    && err.contains("still being written")
                    && err.contains("min_file_age")
                    && !err.contains("declare `schema:`"),
                "{err}"
            );
        };
        says_cut_short(
            infer_schema(
                "p.parquet",
                &half,
                FileFormat::Parquet,
                OnError::Fail,
                b',',
                None,
            )
            .expect_err("no footer")
            .to_string(),
        );
        let reader = Reader {
            format: FileFormat::Parquet,
            ..rescuing(&batch.schema(), OnError::Fail)
        };
        says_cut_short(
            reader
                .decode("in/p.parquet", "p.parquet", &half)
                .expect_err("no footer")
                .to_string(),
        );
        // Walk 124 (5): an empty file alike, inferred or with the schema declared.
        let empty = Bytes::new();
        for said in [
            infer_schema(
                "p.parquet",
                &empty,
                FileFormat::Parquet,
                OnError::Fail,
                b',',
                None,
            )
            .expect_err("empty")
            .to_string(),
            reader
                .decode("in/p.parquet", "p.parquet", &empty)
                .expect_err("empty")
                .to_string(),
        ] {
            assert!(
                said.contains("p.parquet: the file is empty (0 bytes)")
                    && said.contains("min_file_age")
                    && !said.contains("declare `schema:`"),
                "{said}"
            );
        }
        // The whole file reads.
        assert_eq!(
            reader
                .decode("in/p.parquet", "p.parquet", &whole)
                .expect("whole")
                .rows,
            3
        );
    }

    /// A file plainly of another format than the source's is named as what it looks like,
    /// with the `format:` that reads it, whether the schema is declared or inferred.
    #[test]
    fn a_file_of_another_format_is_named_as_what_it_is() {
        let infer = |name: &str, text: &[u8], format| {
            infer_schema(
                name,
                &Bytes::from(text.to_vec()),
                format,
                OnError::Fail,
                b',',
                None,
            )
            .expect_err("another format")
            .to_string()
        };
        let parquet = b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00";
        for format in [FileFormat::Json, FileFormat::Csv] {
            let err = infer("d.dat", parquet, format);
            assert!(
                err.contains("d.dat")
                    && err.contains("is a Parquet file")
                    && err.contains("`format: parquet`"),
                "{err}"
            );
        }
        let err = infer("d.csv", b"{\"k\":\"a\",\"v\":1}\n", FileFormat::Csv);
        assert!(
            err.contains("JSON lines, not CSV") && err.contains("`format: json`"),
            "{err}"
        );
        let err = infer("d.parquet", b"{\"k\":\"a\"}\n", FileFormat::Parquet);
        assert!(
            err.contains("not a Parquet file") && err.contains("`format: json`"),
            "{err}"
        );
        let err = infer("d.parquet", b"k,name\na,Alpha\n", FileFormat::Parquet);
        assert!(
            err.contains("not a Parquet file") && err.contains("`format: csv`"),
            "{err}"
        );
        let err = infer("d.json", b"k,name\na,Alpha\n", FileFormat::Json);
        assert!(
            err.contains("d.json line 1")
                && err.contains("looks like CSV (its first line is `k,name`)"),
            "{err}"
        );
        // The same under a declared schema, as a batch decodes the file.
        let reader = Reader {
            format: FileFormat::Csv,
            schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)])),
            projection: None,
            on_error: OnError::Fail,
            rescued: None,
            epoch_unit: None,
            delimiter: b',',
            header: true,
            null_value: None,
            inferred: false,
            encoding: None,
            escape: None,
        };
        let err = reader
            .decode("in/d.csv", "d.csv", &Bytes::from("{\"k\":\"a\"}\n"))
            .expect_err("JSON lines as CSV")
            .to_string();
        assert!(
            err.contains("in/d.csv") && err.contains("`format: json`"),
            "{err}"
        );
        // A CSV file under `format: json` is refused under `on_error: skip` too, as the other
        // formats are: skipped, the whole file counted as one malformed row (walk 12).
        let reader = Reader {
            format: FileFormat::Json,
            on_error: OnError::Skip,
            ..reader
        };
        let err = reader
            .decode("in/d.json", "d.json", &Bytes::from("k,v\na,1\nb,2\n"))
            .map(|d| d.skipped)
            .expect_err("CSV as JSON lines");
        assert!(err.to_string().contains("looks like CSV"), "{err}");
        // Under skip, a bad first line of a JSON file is still skipped alone.
        let read = reader
            .decode("in/d.json", "d.json", &Bytes::from("oops\n{\"k\":\"b\"}\n"))
            .expect("skipped");
        assert_eq!((read.rows, read.skipped), (1, 1));
        // A JSON file whose first line is JSON is not taken for CSV, nor a CSV file with a
        // quoted header for JSON.
        assert!(looks_like_csv(b"{\"a\":1,\"b\":2}\n").is_none());
        assert_eq!(
            looks_like_csv(b"\"k\",\"v\"\n1,2\n").as_deref(),
            Some("\"k\",\"v\"")
        );
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

    /// Walk 117: inference decompressed a compressed file whole (11 times its text in
    /// memory). A sample decompresses as far as its limit, cut after the last whole line, or
    /// on to the end of a first line longer than the limit.
    #[tokio::test]
    async fn a_compressed_files_sample_is_decompressed_only_as_far_as_it_goes() {
        let text = format!(
            "{}{}",
            "{\"a\":1}\n".repeat(10),
            "{\"a\":2,\"late\":\"x\"}\n".repeat(10)
        );
        let gz = compress(FileCompressionType::GZIP, &text).await;
        let names = |sample| {
            infer_schema_sampled(
                "f.json.gz",
                &gz,
                FileFormat::Json,
                OnError::Fail,
                b',',
                None,
                None,
                sample,
                None,
            )
            .expect("infers")
            .expect("columns")
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["a", "late"]);
        // 35 bytes: the first four lines (32 bytes) whole.
        assert_eq!(names(Some(35)), ["a"]);
        let long = format!("{{\"a\":\"{}\"}}\n{{\"b\":1}}\n", "y".repeat(100));
        let gz = compress(FileCompressionType::GZIP, &long).await;
        let first = decompress_sample(
            "f.json.gz",
            &gz,
            FileFormat::Json,
            OnError::Fail,
            None,
            Some(10),
        )
        .expect("decompresses");
        assert_eq!(
            first.as_ref(),
            long.lines()
                .next()
                .map(|l| format!("{l}\n"))
                .expect("line")
                .as_bytes()
        );
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
                let inferred = infer_schema(&name, &bytes, format, OnError::Fail, b',', None)
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .expect("columns");
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
        let inferred = infer_schema(
            "t.csv",
            &Bytes::from("BZh9,x\n1,2\n"),
            FileFormat::Csv,
            OnError::Fail,
            b',',
            None,
        )
        .expect("text")
        .expect("columns");
        assert_eq!(inferred.field(0).name(), "BZh9");
    }

    /// Walk 124 (1): Spark's CSV (`\"` inside quotes) read without `escape:` wrote `a \b\" c"`
    /// for `a "b" c`, exit 0. Such a field is refused by its line, naming the escape to set;
    /// with `escape: '\'`, quotes and backslashes read as Spark's reader reads them.
    #[test]
    fn escaped_quotes_read_with_escape_and_are_refused_without_it() {
        let text = "id,name\n1,\"a \\\"b\\\" c\"\n2,\"C:\\new, \\\\x\"\n3,\"ends\\\\\"\n4,\"two\nlines \\\"q\\\"\"\n5,\"\"\"rfc\"\"\"\n6,plain\n";
        let refused = csv(text, OnError::Skip).expect_err("escaped quotes without `escape:`");
        let said = refused.to_string();
        assert!(
            said.contains(
                "line 2: the quoted field `\"a \\\"b\\\" c\"` goes on after its closing quote"
            ) && said.contains("set the source's `escape: '\\'`")
                && !said.contains("on_error: skip"),
            "{said}"
        );
        let mut reader = inferred_reader(FileFormat::Csv, schema(), b',');
        reader.escape = Some(b'\\');
        let read = reader
            .decode("f.csv", "f.csv", &Bytes::from(text.to_string()))
            .expect("read with the escape");
        let names: Vec<String> = read
            .batches
            .iter()
            .flat_map(|b| {
                let column = b.column(1).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| column.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            names,
            [
                "a \"b\" c",
                "C:\\new, \\x",
                "ends\\",
                "two\nlines \"q\"",
                "\"rfc\"",
                "plain"
            ]
        );
        // A line break inside a quoted field keeps the lines after it numbered as they are.
        let text = "id,name\n1,\"x\ny\"\n2,\"b\"c\n";
        let said = csv(text, OnError::Fail)
            .expect_err("junk after a quote")
            .to_string();
        assert!(
            said.contains("line 4: the quoted field `\"b\"c`")
                && said.contains("written twice (`\"\"`, RFC 4180)"),
            "{said}"
        );
        // Lines ended by a lone CR (old Mac files) are numbered as lines too, and CRLF once.
        for ends in ["\r", "\r\n"] {
            let text = "id,name\n1,a\n2,\"b\"c\n".replace('\n', ends);
            let said = csv(&text, OnError::Fail)
                .expect_err("junk after a quote")
                .to_string();
            assert!(
                said.contains("line 3: the quoted field"),
                "{ends:?}: {said}"
            );
        }
        // The file's own delimiter after the quote: that is what is named.
        let said = csv("id,name\n1,\"b;c\";2\n", OnError::Fail)
            .expect_err("another delimiter")
            .to_string();
        assert!(
            said.contains("look separated by `;`: set the source's `delimiter: \";\"`"),
            "{said}"
        );
        // A tab-separated file's quoted fields (the tab after a closing quote is the
        // delimiter, not a blank), CRLF after one, `""""` (one quote), and a quoted last field
        // without a line end read as before.
        let reader = inferred_reader(FileFormat::Csv, schema(), b'\t');
        let read = reader
            .decode(
                "f.tsv",
                "f.tsv",
                &Bytes::from_static(b"id\tname\n\"1\"\t\"a\"\r\n2\t\"\"\"\"\n3\t\"x\""),
            )
            .expect("tab-separated");
        let names = read.batches[0].column(1).as_string::<i32>();
        assert_eq!(
            (names.value(0), names.value(1), names.value(2)),
            ("a", "\"", "x")
        );
        // Blanks after a closing quote, and a quote inside an unquoted field, pass as before.
        assert!(csv("id,name\n1,\"a\"  \n2,5\"x\n", OnError::Fail).is_ok());
    }

    /// Walk 124 (4), review: a Parquet column alike but for case reads a source's column only
    /// where neither side has another alike so.
    #[test]
    fn a_parquet_column_alike_but_for_case_is_matched_only_where_one_is() {
        let file = Schema::new(vec![
            Field::new("Id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let one = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        assert_eq!(parquet_column(&file, &one, "id").map(|(i, _)| i), Some(0));
        let two = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ID", DataType::Int64, true),
        ]);
        assert!(parquet_column(&file, &two, "id").is_none());
        assert!(parquet_column(&file, &two, "ID").is_none());
        let both = Schema::new(vec![
            Field::new("ID", DataType::Int64, true),
            Field::new("iD", DataType::Int64, true),
        ]);
        assert!(parquet_column(&both, &one, "id").is_none());
    }

    /// Walk 124 (2, 3): one NUL byte in a UTF-8 file's first 4 KiB called the file UTF-16 and
    /// advised `encoding: utf-16le`, which read garbage, where one further on was read as a
    /// character; UTF-32 under a declared `utf-16` advised `utf-16le`, which failed alike.
    #[test]
    fn a_nul_in_text_is_a_character_and_utf16_is_told_by_its_share_of_nuls() {
        let read = csv("id,name\n1,a\0b\n2,c\n", OnError::Fail).expect("a NUL is a character");
        let names = read.batches[0].column(1).as_string::<i32>();
        assert_eq!((names.value(0), names.value(1)), ("a\0b", "c"));
        let utf16 = |big: bool| -> Vec<u8> {
            "id,name\n1,x\n"
                .encode_utf16()
                .flat_map(|u| {
                    if big {
                        u.to_be_bytes()
                    } else {
                        u.to_le_bytes()
                    }
                })
                .collect()
        };
        for (big, named) in [(false, "utf-16le"), (true, "utf-16be")] {
            let said = check_utf8_text("f.csv", &utf16(big), FileFormat::Csv, OnError::Skip, None)
                .expect_err("UTF-16 without a byte order mark")
                .to_string();
            assert!(
                said.contains(&format!("set the source's `encoding: {named}`")),
                "{said}"
            );
        }
        // UTF-32 read as the declared UTF-16: the advice names no UTF-16 again.
        let utf32: Vec<u8> = "id,name\n1,x\n"
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let (read, _, _) = encoding_rs::UTF_16LE.decode(&utf32);
        let said = check_utf8_text(
            "f.csv",
            read.as_bytes(),
            FileFormat::Csv,
            OnError::Fail,
            Some(encoding_rs::UTF_16LE),
        )
        .expect_err("mostly NUL")
        .to_string();
        assert!(
            said.contains("read as UTF-16LE (the source's `encoding`), is mostly NUL characters")
                && said.contains("iconv -f UTF-32")
                && !said.contains("`encoding: utf-16"),
            "{said}"
        );
    }
}
