//! Sources (docs/design.md §3): turning "what is new" into offsets, and an offset range back
//! into the same rows, every time.
//!
//! Invariants:
//! - `read(start, end)` depends only on the offsets and what the source logged for them, never
//!   on what has arrived since;
//! - a source's log entry for batch `N` is written before `offsets/N`, and never changed once
//!   `offsets/N` exists.

mod decode;
mod files;
mod hive;
mod infer;
#[cfg(feature = "kafka")]
pub(crate) mod kafka;
mod nats;
mod nexmark;
mod payload;
mod rate;
pub(crate) mod scan;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;

pub use decode::{Decoded, Reader, infer_schema, infer_schema_encoded};
pub(crate) use decode::{day_first_date, local_number, local_number_as_sql};
pub use files::{FilesConfig, FilesSource, hidden, pinned_schema_lost};
pub use scan::{
    Counts, ReadPart, RemoteForm, ScanCounts, ScanParts, StreamedScanExec, StreamedTable,
};

use crate::checkpoint::{BatchId, CheckpointError};
use crate::storage::{Location, StorageError, StoreHook};

/// How this process reads a part of a batch's streamed read from the part's remote form
/// (`source::scan`), written by the part's source kind (`kind` names it): a `sluice worker`
/// reads the parts it is sent so.
pub fn remote_read(value: &serde_json::Value) -> Result<ReadPart, String> {
    match value.get("kind").and_then(|k| k.as_str()) {
        Some(kind) if kind == files::KIND.name => files::remote_read(value),
        other => Err(format!(
            "a part of kind {} cannot be read by another process",
            other.unwrap_or("(none)")
        )),
    }
}

/// One kind of source, as the registry lists it: the word `kind:` names it by, and how its
/// settings (every key of the source but `kind` and `watermark`) become its connector.
#[derive(Debug, Clone, Copy)]
pub struct SourceKind {
    /// The keyword of `kind:`.
    pub name: &'static str,
    /// Parses and checks the settings into the kind's typed configuration.
    pub configure: fn(&serde_yaml::Mapping) -> Result<Arc<dyn SourceConnector>, ConfigError>,
}

/// Every kind of source: one line per kind. A kind lives in its own module under
/// `src/source/`, and passes the source contract suite (`tests/it/contract.rs`).
#[cfg(feature = "kafka")]
pub const KINDS: &[SourceKind] = &[
    files::KIND,
    rate::KIND,
    nexmark::KIND,
    kafka::KIND,
    nats::KIND,
];
/// Every kind of source: one line per kind. A kind lives in its own module under
/// `src/source/`, and passes the source contract suite (`tests/it/contract.rs`).
#[cfg(not(feature = "kafka"))]
pub const KINDS: &[SourceKind] = &[files::KIND, rate::KIND, nexmark::KIND, nats::KIND];

/// Kinds of source or sink this build leaves out, with the cargo feature that builds them in.
pub const NOT_BUILT: &[(&str, &str)] = &[
    #[cfg(not(feature = "kafka"))]
    ("kafka", "kafka"),
    #[cfg(not(feature = "delta"))]
    ("delta", "delta"),
];

/// The connector of a source of kind `kind` with `settings`: the kind's typed configuration,
/// or an error naming the key (relative to the source) that is wrong.
pub fn configure(
    kind: &str,
    name: &str,
    settings: &serde_yaml::Mapping,
) -> Result<Arc<dyn SourceConnector>, ConfigError> {
    if let Some((_, feature)) = NOT_BUILT.iter().find(|(k, _)| *k == kind) {
        return Err(ConfigError::at(
            "kind",
            format!(
                "source `{name}`: this sluice was built without `kind: {kind}`; build it with \
                 `cargo install --features {feature}`"
            ),
        ));
    }
    let Some(entry) = KINDS.iter().find(|k| k.name == kind) else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        return Err(ConfigError {
            key: "kind".into(),
            message: format!(
                "source `{name}`: {}",
                crate::vocab::unknown_keyword(kind, &names)
            ),
        });
    };
    (entry.configure)(settings)
}

/// What to do about a file that is no data (a `README.md` in the source's folder).
const NOT_DATA_HINT: &str = "; it looks like no data file: every file in a source's folder is \
     read, but those whose names start with `_` or `.`, so move it out of the folder or rename \
     it so (a batch that has listed it then needs taking back: the next run says how)";

/// Whether `file`'s name says it is no data file (notes, scripts, pages, spreadsheets).
fn not_data(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
    [
        ".md", ".txt", ".yaml", ".yml", ".py", ".sh", ".html", ".pdf", ".xlsx", ".xls", ".log",
        ".toml", ".ini", ".doc", ".docx",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        || name == "readme"
        || name == "license"
}

/// What a stream source does where its input now ends below the position its batches read up
/// to (`what` says where: a topic or stream deleted and made again): under
/// `fail_on_data_loss`, `Err` with the message, naming the ways out (`fail_on_data_loss:
/// false`, which makes the source do what `then` says, or a new start); else a warning, said
/// once a run (`said`), as `{shown}: {what}; going on to <then>`.
pub(crate) fn input_went_back(
    what: &str,
    then: &str,
    fail_on_data_loss: bool,
    said: &mut bool,
    shown: &str,
) -> Result<(), String> {
    if fail_on_data_loss {
        return Err(format!(
            "{what}. Set `fail_on_data_loss: false` on the source to {then}; or start the \
             pipeline over on {NEW_START}"
        ));
    }
    if !std::mem::replace(said, true) {
        tracing::warn!("{shown}: {what}; going on to {then} (`fail_on_data_loss: false`)");
    }
    Ok(())
}

/// How a stream source's message for records gone before their batch read them says what
/// lets the batch be read (the run adds how the edit comes to apply to the planned batch).
pub const SKIP_WHAT_IS_GONE: &str =
    "Set `fail_on_data_loss: false` on the source to skip what is gone (counted as lost rows)";

/// How a source's message says to start a pipeline over (a setting that cannot change once
/// batches ran); a run puts its sink's own terms in their place (a table sink has no
/// `sink.path`), see `driver::with_sink_advice`.
pub const NEW_START: &str = "a new checkpoint with a new, empty `sink.path`";

/// Settings of a source or sink that do not parse or do not fit together.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The dotted key, relative to the connector's own settings (`format`, `schema.ts`); empty
    /// for the settings as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about the value of `key`.
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl From<crate::retry::SettingError> for ConfigError {
    fn from(e: crate::retry::SettingError) -> Self {
        Self::at(e.key, e.message)
    }
}

/// Parses a connector's settings into its typed configuration `T` (which denies unknown keys),
/// naming the key that is wrong.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    settings: &serde_yaml::Mapping,
) -> Result<T, ConfigError> {
    // A key given no value (`path:` with nothing after it, or `~`) is a key not given: read
    // again as text, YAML's null went into a string field as the word `null` (walk 123 (4): a
    // sink folder named `null`, exit 0).
    // (Only a setting's own keys: a null inside one, a schema's column, is for its reader to
    // refuse, not to drop.)
    let mut given = settings.clone();
    let mut empty = Vec::new();
    given.retain(|key, value| {
        let null = value.is_null();
        if null && let Some(key) = key.as_str() {
            empty.push(key.to_string());
        }
        !null
    });
    // A key unknown is named though it has no value (`path_glob_filtr:`): read with the keys
    // given no value first, for that.
    if !empty.is_empty()
        && let Err(e) = read_settings::<T>(settings, &empty)
        && e.message.starts_with("unknown field `")
    {
        return Err(e);
    }
    read_settings(&given, &empty)
}

/// [`parse_settings`] of `settings`, where the keys `empty` were given no value.
fn read_settings<T: serde::de::DeserializeOwned>(
    settings: &serde_yaml::Mapping,
    empty: &[String],
) -> Result<T, ConfigError> {
    // Through YAML text again, so that a plain scalar reads into a string field as the text
    // it was written as (`path: 2024`), as it does in the pipeline file itself.
    let text = serde_yaml::to_string(settings).map_err(|e| ConfigError::at("", e.to_string()))?;
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(&text)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // A required key given no value.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            && matches!(path.as_str(), "." | "")
            && empty.iter().any(|k| k == field)
        {
            return ConfigError::at(
                field,
                format!("given no value (`{field}:` with nothing after it, or `~`): give one"),
            );
        }
        // Positions are in the text made here, not in the pipeline file: the caller finds
        // the key's line.
        let message = match message.rfind(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        let message = crate::vocab::plain_types_of(&path, &message);
        // The path is named with the key; once is enough.
        let message = match message.strip_prefix(&format!("{path}: ")) {
            Some(rest) if path != "." => rest.to_string(),
            _ => message,
        };
        // An unknown key is reported at the map that holds it: name the key itself.
        let key = match message.strip_prefix("unknown field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                match path.as_str() {
                    "." | "" => field.to_string(),
                    at if at == field || at.ends_with(&format!(".{field}")) => at.to_string(),
                    parent => format!("{parent}.{field}"),
                }
            }
            None if path == "." => String::new(),
            None => path,
        };
        ConfigError { key, message }
    })
}

/// How a file a batch logged is read as it is now: take the batch back (words after "to read
/// it as it is now,").
fn changed_way_out(batch: BatchId, checkpoint: Option<&str>) -> String {
    match batch.prev() {
        Some(before) => format!(
            "take the batch back: `sluice rewind {} --to {before}` (it deletes the batch's \
             output where it was written)",
            checkpoint.map_or("CHECKPOINT".into(), crate::vocab::shell_word)
        ),
        None => "run the pipeline on a new checkpoint (and sink)".to_string(),
    }
}

/// The words of a CSV file's quoted field that goes on after its closing quote, the error
/// that `escape:` set on the source answers (and which applies to a planned batch at once).
pub const QUOTE_GOES_ON: &str = "goes on after its closing quote";

/// What a malformed row's error adds: how to skip such rows.
pub const SKIP_HINT: &str =
    " (to skip such rows and count them, set `on_error: skip` on the source)";

/// `text` (an error's) without the advice to set `on_error: skip` that a malformed row's
/// error carries (the files sources' [`SKIP_HINT`], the Kafka and NATS sources' own), for
/// where it is skipped already or the pipeline file says so since.
pub fn without_skip_hint(text: &str) -> String {
    let mut said = text.replace(SKIP_HINT, "");
    while let Some(at) = said.find(" (set `on_error: skip`")
        && let Some(end) = said[at..].find(')')
    {
        said.replace_range(at..at + end + 1, "");
    }
    said
}

/// What can go wrong reading a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The source's log in the checkpoint is damaged.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A line or row does not parse.
    #[error(
        "{file}{}: {reason}{}",
        line.map(|l| format!(" line {l}")).unwrap_or_default(),
        // Not where the file is of another format: skipping each of its rows is no fix.
        if not_data(file) {
            NOT_DATA_HINT
        } else if line.is_some() && !reason.contains("set `format: ") {
            SKIP_HINT
        } else {
            ""
        }
    )]
    Malformed {
        /// The file.
        file: String,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// The decoder's message.
        reason: String,
    },
    /// A file's columns do not fit the source's schema.
    #[error("{file} does not fit the source's schema: {reason}")]
    SchemaMismatch {
        /// The file.
        file: String,
        /// What differs.
        reason: String,
    },
    /// No schema could be inferred.
    #[error(
        "cannot infer a schema from {file}: {reason}{}",
        if reason.contains("schema:") { "" } else { "; declare `schema:` for the source" }
    )]
    Infer {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// Two files of one source hold a column in types that no one type reads exactly (an
    /// instant beside a wall-clock time, a number beside a text, in Parquet).
    #[error("{file} and {other} cannot be read as one source: {reason}")]
    Conflict {
        /// The file read last.
        file: String,
        /// The file it conflicts with.
        other: String,
        /// The column and its two types, and the ways out.
        reason: String,
    },
    /// A static table (`tables:`) cannot be loaded: its files, its settings. Found before any
    /// batch, like a pipeline file's mistake.
    #[error("table `{table}`: {reason}")]
    Table {
        /// The table.
        table: String,
        /// What is wrong, said of the table.
        reason: String,
    },
    /// The source's folder does not exist.
    #[error("source `{source_name}`: {reason}")]
    Config {
        /// The source.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read while running.
    #[error("reading {file}: {reason}")]
    Read {
        /// The file or folder.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A logged file no longer holds the bytes its batch logged: it is shorter, or the store
    /// identifies it otherwise (another ETag or version, or modification time where the store
    /// gives neither).
    #[error(
        "{}",
        match touch {
            None => format!(
                "{file} changed since batch {batch} logged it: {change}; files must not change \
                 once written, nor be replaced under the same name (a `mv` over it too): write \
                 new rows to a new file, under a name not read before (elsewhere first, then \
                 renamed into place). To read it as it is now, {}",
                changed_way_out(*batch, checkpoint.as_deref())
            ),
            Some(command) => format!(
                "{file} is not what batch {batch} logged: {change}. So either it was rewritten \
                 in place at the same size, or the project was copied or restored without \
                 keeping file times (`cp -r` without `-a`; `tar`, which keeps them to the \
                 second). If it was copied, put the time back with `{command}` (or copy it \
                 again with `cp -a`) and run again; only if its content changed, {}",
                changed_way_out(*batch, checkpoint.as_deref())
            ),
        }
    )]
    FileChanged {
        /// The file.
        file: String,
        /// The batch that logged it.
        batch: BatchId,
        /// What changed: each of size, modification time, ETag and version that differs, as
        /// logged and as it is now.
        change: String,
        /// The checkpoint, as the user gave it, once known (for the command to run).
        checkpoint: Option<String>,
        /// Where only the modification time differs (on local disk, at the same size): the
        /// `touch -d <logged time, to the microsecond> <file>` command that puts it back, of
        /// every such file of the batch where several are (joined by `&&`).
        touch: Option<String>,
    },
    /// A connector's own error (its client library's, its server's).
    #[error("source `{source_name}` ({kind}): {error}")]
    Connector {
        /// The source.
        source_name: String,
        /// The source's kind.
        kind: &'static str,
        /// The connector's error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An operation the source's kind does not support.
    #[error("{operation} is not supported by the `{kind}` source connector")]
    NotSupported {
        /// The source's kind.
        kind: &'static str,
        /// The operation, as a person would name it.
        operation: &'static str,
    },
    /// A batch's range can no longer be read: the data is gone from where the source reads.
    #[error("source `{source_name}`: batch {batch}'s range {range} is gone: {reason}")]
    RangeGone {
        /// The source.
        source_name: String,
        /// The batch.
        batch: BatchId,
        /// The range, as the offsets give it.
        range: String,
        /// Why.
        reason: String,
    },
    /// A logged file is gone, so the batch cannot be recomputed.
    #[error(
        "{file}, read by batch {batch}, is gone; the batch cannot be recomputed. Restore the \
         file; or, to plan the batch again without it, {}",
        changed_way_out(*batch, checkpoint.as_deref())
    )]
    FileGone {
        /// The file.
        file: String,
        /// The batch that read it.
        batch: BatchId,
        /// The checkpoint, as the user gave it, once known (for the command to run).
        checkpoint: Option<String>,
    },
}

/// How much a batch may take from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Everything available.
    Unlimited,
    /// The source's own limits (`max_files_per_batch`).
    SourceLimits,
}

/// The indices in `schema` of the `columns` a batch of source `name` reads (every column
/// where `None`); a column `schema` lacks is an error naming it and, after `of` (what the
/// source is: `a rate source`), the columns there are.
pub(crate) fn column_indices(
    name: &str,
    of: &str,
    schema: &datafusion::arrow::datatypes::Schema,
    columns: Option<&[String]>,
) -> Result<Vec<usize>, SourceError> {
    let Some(columns) = columns else {
        return Ok((0..schema.fields().len()).collect());
    };
    columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| SourceError::Config {
                source_name: name.to_string(),
                reason: format!(
                    "{of} has no column `{c}` (it has {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| format!("`{}`", f.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        })
        .collect()
}

/// The rows a batch reads from one source.
#[derive(Debug)]
pub struct BatchInput {
    /// The source's schema.
    pub schema: SchemaRef,
    /// Exactly the batch's rows, one partition per file.
    pub partitions: Vec<Vec<RecordBatch>>,
    /// Rows read.
    pub rows: u64,
    /// Malformed rows skipped.
    pub skipped: u64,
    /// Rows of the batch's range gone from the source before it was read (retention, a
    /// purge), skipped where `fail_on_data_loss: false`. A NATS source with `filter_subject`
    /// counts the stream sequences gone, whichever subject they carried (what is gone cannot
    /// be told apart): an upper bound on its rows lost.
    pub lost: u64,
    /// Rows with a field the schema does not know (JSON: a top-level field; Parquet: a column).
    pub unknown_rows: u64,
    /// The names of those fields.
    pub unknown_fields: std::collections::BTreeSet<String>,
    /// Files read.
    pub files: u64,
    /// The name of each of `partitions` where each is one file's rows (its path under the
    /// source's folder), for an error to say which file holds a value; empty otherwise.
    pub part_names: Vec<String>,
}

impl BatchInput {
    /// No rows, in `schema` (an empty range: a batch the watermark alone runs), as one empty
    /// partition, since a table has at least one.
    pub fn empty(schema: SchemaRef) -> Self {
        Self {
            schema,
            partitions: vec![Vec::new()],
            rows: 0,
            skipped: 0,
            lost: 0,
            unknown_rows: 0,
            unknown_fields: std::collections::BTreeSet::new(),
            files: 0,
            part_names: Vec::new(),
        }
    }

    /// A table over the batch's rows.
    pub fn into_table(mut self) -> Result<Arc<MemTable>, datafusion::error::DataFusionError> {
        if self.partitions.is_empty() {
            // No input (an empty table, an empty range): one empty partition, as a table
            // needs at least one.
            self.partitions.push(Vec::new());
        }
        MemTable::try_new(self.schema, self.partitions).map(Arc::new)
    }
}

/// Where a text value is in a batch's input ([`find_text`]): the column, the part that holds
/// it first (a file's path, where the input names its parts), the row of that part (from 1,
/// counting the rows read from it, where the rows are as read), and how many rows of that
/// part hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundText {
    /// The column.
    pub column: String,
    /// The part (a file), where known.
    pub part: Option<String>,
    /// The row of the part, from 1, where known.
    pub row: Option<usize>,
    /// The rows of the part (or of the input, where parts are not named) that hold it.
    pub rows: usize,
    /// The record of the first row that holds it, where the rows name theirs (a Kafka
    /// source's `topic`, `partition` and `offset` columns): `topic t partition 0 offset 7`.
    pub record: Option<String>,
}

/// What an error's value is looked for as in a batch's input ([`find_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sought<'a> {
    /// A text value, exactly (a cast's quoted value).
    Text(&'a str),
    /// A binary value that is not UTF-8 (a cast of bytes to text that failed).
    NotUtf8,
}

/// The first column of `batches` (in column order) with a row whose value is `sought` (a
/// text column's value, exactly; a binary column's value that is not UTF-8): the column, the
/// first such row (from 0, across the batches in order) and how many rows hold it there.
pub fn find_text(batches: &[RecordBatch], sought: Sought<'_>) -> Option<(String, usize, usize)> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::DataType;
    let schema = batches.first()?.schema();
    // Bytes that are not text: a Kafka record's `value` before its `key`, which a query
    // more often reads as bytes (the review).
    let mut order: Vec<usize> = (0..schema.fields().len()).collect();
    if sought == Sought::NotUtf8 {
        order.sort_by_key(|i| schema.field(*i).name() != "value");
    }
    for index in order {
        let field = schema.field(index);
        let (mut first, mut rows, mut before) = (None, 0, 0);
        for batch in batches {
            let column = batch.column(index);
            let held: Box<dyn Iterator<Item = bool>> = match (sought, column.data_type()) {
                (Sought::Text(value), DataType::Utf8) => Box::new(
                    column
                        .as_string::<i32>()
                        .iter()
                        .map(move |c| c == Some(value)),
                ),
                (Sought::Text(value), DataType::LargeUtf8) => Box::new(
                    column
                        .as_string::<i64>()
                        .iter()
                        .map(move |c| c == Some(value)),
                ),
                (Sought::Text(value), DataType::Utf8View) => Box::new(
                    column
                        .as_string_view()
                        .iter()
                        .map(move |c| c == Some(value)),
                ),
                (Sought::NotUtf8, DataType::Binary) => Box::new(
                    column
                        .as_binary::<i32>()
                        .iter()
                        .map(|c| c.is_some_and(|b| std::str::from_utf8(b).is_err())),
                ),
                (Sought::NotUtf8, DataType::LargeBinary) => Box::new(
                    column
                        .as_binary::<i64>()
                        .iter()
                        .map(|c| c.is_some_and(|b| std::str::from_utf8(b).is_err())),
                ),
                (Sought::NotUtf8, DataType::BinaryView) => Box::new(
                    column
                        .as_binary_view()
                        .iter()
                        .map(|c| c.is_some_and(|b| std::str::from_utf8(b).is_err())),
                ),
                _ => break,
            };
            for (row, hit) in held.enumerate() {
                if hit {
                    first.get_or_insert(before + row);
                    rows += 1;
                }
            }
            before += column.len();
        }
        if let Some(first) = first {
            return Some((field.name().clone(), first, rows));
        }
    }
    None
}

/// The record row `row` of `batches` (from 0, across the batches in order) came from, as far
/// as the rows carry it (a source reads only the columns the query reads): a Kafka source's
/// `topic`, `partition` and `offset` columns as `topic t partition 0 offset 7`, or its
/// `offset` alone as `offset 7`; `None` where the rows carry no offset.
pub fn record_of_row(batches: &[RecordBatch], mut row: usize) -> Option<String> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int32Type, Int64Type};
    for batch in batches {
        if row >= batch.num_rows() {
            row -= batch.num_rows();
            continue;
        }
        let column = |name: &str| batch.column_by_name(name).filter(|c| c.is_valid(row));
        let offset = column("offset")?
            .as_primitive_opt::<Int64Type>()?
            .value(row);
        let topic = column("topic");
        let topic = topic.and_then(|t| t.as_string_opt::<i32>());
        let partition = column("partition");
        let partition = partition.and_then(|p| p.as_primitive_opt::<Int32Type>());
        return Some(match (topic, partition) {
            (Some(topic), Some(partition)) => format!(
                "topic {} partition {} offset {offset}",
                topic.value(row),
                partition.value(row)
            ),
            _ => format!("offset {offset}"),
        });
    }
    None
}

/// A batch's input from one source, as [`Source::scan`] gives it.
#[derive(Debug)]
pub enum BatchScan {
    /// The rows, read whole before the query runs.
    Read(BatchInput),
    /// A table that reads the rows while the query runs, and what it counts as it does
    /// (complete once the query has consumed its input).
    Streamed {
        /// The table.
        table: Arc<StreamedTable>,
        /// Its counts, and the first error it met.
        counts: Arc<ScanCounts>,
    },
}

/// How far a source's input runs ahead of an offset (`sluice inspect`): per part (a Kafka
/// topic's partition), the offset read to, the end the part has now, and the difference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lag {
    /// What the counts count (`offsets` for Kafka, `sequences` for NATS).
    pub unit: &'static str,
    /// The parts' lags added up.
    pub total: u64,
    /// Each part, in the source's order.
    pub parts: Vec<PartLag>,
}

/// One part of a [`Lag`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartLag {
    /// The part, as the source names it (`clicks partition 0`).
    pub part: String,
    /// The position read to, as the source's offsets say it (Kafka: the next offset to read;
    /// NATS: the last sequence read); `None` for a part the offset does not name yet (a
    /// partition added since), counted from its first offset still held.
    pub offset: Option<i64>,
    /// The end the part has now, in the same terms (Kafka: the high watermark; NATS: the
    /// stream's last sequence).
    pub end: i64,
    /// `end` minus `offset`, never below 0 (NATS with `filter_subject`: from its first
    /// message not yet read, 0 where none has come since `offset`).
    pub lag: u64,
    /// The part ends below the position read (`offset` past `end`): it was deleted and made
    /// again since; the next run stops there, naming it (or, with `fail_on_data_loss: false`,
    /// reads on from a Kafka partition's end, a NATS stream's first sequence), so a lag of 0
    /// is no sign of health then.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ends_below_read: bool,
    /// The Kafka topic and partition of the part, for a lag exporter (`part` says them in
    /// words); absent for other sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// See [`Self::topic`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Offsets past `end` a `read_committed` source cannot read yet: records of a transaction
    /// still open (Kafka's last stable offset holds them back; a consumer-lag tool counts them
    /// from the log's end). 0 where none, and for other sources.
    #[serde(skip_serializing_if = "is_zero")]
    pub held_back: u64,
    /// The part read so far is gone from the server (a Kafka topic the source still reads
    /// deleted, or made again with fewer partitions): the next run stops there, naming it
    /// (walk 122 (4): it was left out of the lag, which looked healthy). `end` is `offset`
    /// then, and the lag 0.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Whether `key` comes for the first time in this process: a note said once a run (a run
/// opens its sources more than once, and finishing a planned batch opens them again).
pub(crate) fn first_time(key: String) -> bool {
    static SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    SAID.lock().map(|mut said| said.insert(key)).unwrap_or(true)
}

/// A replayable source of rows.
#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The table name the query uses.
    fn name(&self) -> &str;

    /// The schema, once known (declared, pinned in the checkpoint, or inferred).
    fn schema(&self) -> Option<SchemaRef>;

    /// Makes the schema known if it can be (inferring from the first file and pinning it).
    async fn resolve_schema(&mut self) -> Result<Option<SchemaRef>, SourceError>;

    /// Takes the set of available input now; later plans choose only from it
    /// (for `available-now` and `once`).
    async fn freeze(&mut self) -> Result<(), SourceError>;

    /// Plans batch `batch`: logs what it reads and returns its end offset, or `None` when there
    /// is nothing new after `start`. A source with no input yet has no offset: the driver logs
    /// `null` for it, and `start` is absent or `null` until it has one.
    async fn plan(
        &mut self,
        batch: BatchId,
        start: Option<&serde_json::Value>,
        admission: Admission,
    ) -> Result<Option<serde_json::Value>, SourceError>;

    /// The rows in `(start, end]`, the same every time; only the named `columns` (in that
    /// order) where given. `start` absent or `null` is the very beginning; `end` `null` (no
    /// input yet) is an empty range, with the source's schema.
    async fn read(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
    ) -> Result<BatchInput, SourceError>;

    /// The rows in `(start, end]` as [`Source::read`] gives them, but as a table that may read
    /// them while the query runs, over at most `partitions` partitions (bounded memory for a
    /// batch of any size). By default, the rows read whole.
    async fn scan(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
        _partitions: usize,
    ) -> Result<BatchScan, SourceError> {
        self.read(start, end, columns).await.map(BatchScan::Read)
    }

    /// Batch `batch` is committed; logs older than `oldest_kept` may be compacted.
    async fn commit(&mut self, batch: BatchId, oldest_kept: BatchId) -> Result<(), SourceError>;

    /// The checkpoint's newest committed batch is `batch`, and this source's offset after it
    /// is `end`: a source that shows progress outside the checkpoint (Kafka's consumer group,
    /// for lag tools) shows it there. Called after each commit, and once a run has recovered,
    /// for the newest batch (a run killed between its commit and this, or a batch finished
    /// by a later run, would leave it behind). Correctness never depends on it: a failure is
    /// logged, not returned. By default, nothing.
    async fn report_progress(&mut self, _batch: BatchId, _end: &serde_json::Value) {}
}

/// A kind of source with its settings: what opens its stream, and what the operator commands
/// need of it. An operation a kind does not have fails with [`SourceError::NotSupported`],
/// naming the kind.
#[async_trait]
pub trait SourceConnector: Send + Sync + std::fmt::Debug {
    /// The kind's keyword.
    fn kind(&self) -> &'static str;

    /// Checks what can be checked before a run takes its checkpoint (a folder exists).
    fn preflight(&self, _name: &str, _hook: Option<&StoreHook>) -> Result<(), SourceError> {
        Ok(())
    }

    /// Where the source reads stored files (a folder, a file or an object-store URL), for the
    /// checks of overlapping locations; `None` for a source that reads none (Kafka, rate).
    fn location(&self) -> Option<String> {
        None
    }

    /// Whether the source reads the stream a sink writes at `place` (the sink connector's
    /// `location`, such as `kafka://<bootstrap_servers>/<topic>`), so that each batch's output
    /// would come back as input; `false` for a source of another kind.
    fn reads_stream(&self, _place: &str) -> bool {
        false
    }

    /// Opens source `name` for a run over the checkpoint at `checkpoint` (where it keeps its
    /// own log, under `sources/<name>/`); `sync` syncs local writes.
    async fn open(
        &self,
        name: &str,
        checkpoint: &Location,
        hook: Option<&StoreHook>,
        sync: bool,
    ) -> Result<Box<dyn Source>, SourceError>;

    /// Whether the kind can be read whole as a static table (`tables:`), checked when the
    /// pipeline file loads.
    fn reads_as_table(&self) -> bool {
        false
    }

    /// Reads the source whole, once, as a static table (`tables:`).
    async fn load_table(
        &self,
        _name: &str,
        _hook: Option<&StoreHook>,
    ) -> Result<Arc<MemTable>, SourceError> {
        Err(self.not_supported("reading as a static table (`tables:`)"))
    }

    /// The schema without a checkpoint (`sluice explain`): declared, fixed by the kind, or
    /// inferred from the input there is; `None` when there is nothing to infer from yet.
    async fn peek_schema(&self, _name: &str) -> Result<Option<SchemaRef>, SourceError> {
        Err(self.not_supported("peeking the schema (`sluice explain`)"))
    }

    /// An end offset of source `name` in words (`sluice inspect`).
    fn describe_offset(&self, _name: &str, offset: &serde_json::Value) -> String {
        offset.to_string()
    }

    /// How far source `name`'s input runs ahead of `offset` now (`sluice inspect`): what is
    /// there to read that the pipeline has not read; `None` for a kind that does not tell.
    async fn lag(
        &self,
        _name: &str,
        _offset: &serde_json::Value,
    ) -> Result<Option<Lag>, SourceError> {
        Ok(None)
    }

    /// What batch `batch` of source `name`, ending at `end`, read, as the source logged it in
    /// the checkpoint at `checkpoint` (`sluice inspect`: the files of a files source); empty
    /// for a source that logs no such list, or no longer has it.
    async fn batch_inputs(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
        _end: &serde_json::Value,
    ) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }

    /// The inputs batch `batch` (its end offset `end`) read that are no longer there to be
    /// read again (a file deleted or moved since), each by its place: a batch taken back
    /// (`sluice rewind`) is computed again from its input, so its rows from these would be
    /// lost. Empty where the source cannot tell (a stream's records gone by retention fail the
    /// batch's read, per `fail_on_data_loss`).
    async fn gone_inputs(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
        _end: &serde_json::Value,
    ) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }

    /// What is missing from source `name`'s own log in the checkpoint at `checkpoint` for the
    /// batches up to `batch` (whose end offset is `end`): `Some(what)` where the log records
    /// less input than the offset says was read (an entry deleted, a compact one among them),
    /// so the next batch would read that input again; `None` where it is whole, or the kind
    /// keeps no such log (`sluice repair`, `inspect`, `rewind`).
    ///
    /// Errors: the store's, listing or reading the log.
    async fn log_damage(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
        _end: &serde_json::Value,
    ) -> Result<Option<String>, SourceError> {
        Ok(None)
    }

    /// Files in source `name`'s input now named like files its batches read (as logged in the
    /// checkpoint at `checkpoint`) but of another size, so other files: a source whose `path:`
    /// now names another folder would take them as read. Each as `<path> (<now> bytes; <read>
    /// read)`, in path order; empty for a kind that reads no files.
    ///
    /// Errors: the store's, listing the input or reading the source's log.
    async fn other_files_named_as_read(
        &self,
        _name: &str,
        _checkpoint: &Location,
    ) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }

    /// The end offset batch `batch` had, rebuilt from what the source keeps in the checkpoint
    /// at `checkpoint` (`sluice repair`, when `offsets/N` is lost).
    async fn rebuild_offset(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
    ) -> Result<serde_json::Value, SourceError> {
        Err(self.not_supported("rebuilding a lost offset (`sluice repair`)"))
    }

    /// Whether every batch after `to` can be forgotten (`sluice rewind` asks before it takes
    /// anything back): an error saying why not.
    async fn check_forget(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _to: BatchId,
    ) -> Result<(), SourceError> {
        Err(self.not_supported("forgetting a batch (`sluice rewind`)"))
    }

    /// Forgets what the source keeps in the checkpoint for batch `batch` (`sluice rewind`), so
    /// that the batch can be planned again; the number of entries removed.
    async fn forget_batch(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
    ) -> Result<u64, SourceError> {
        Err(self.not_supported("forgetting a batch (`sluice rewind`)"))
    }

    /// The error for an operation this kind does not have.
    fn not_supported(&self, operation: &'static str) -> SourceError {
        SourceError::NotSupported {
            kind: self.kind(),
            operation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 101 (2): a value that is not UTF-8 is found in the `value` column before the
    /// `key`, by its record where the rows carry the offset.
    #[test]
    fn a_value_that_is_not_utf8_is_found_by_its_record() {
        use datafusion::arrow::array::{BinaryArray, Int64Array};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, true),
            Field::new("offset", DataType::Int64, false),
            Field::new("value", DataType::Binary, true),
        ]));
        let bad: &[u8] = b"\xe9t\xe9";
        let batch = |offsets: Vec<i64>, values: Vec<&[u8]>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(BinaryArray::from(vec![bad; offsets.len()])),
                    Arc::new(Int64Array::from(offsets)),
                    Arc::new(BinaryArray::from(values)),
                ],
            )
            .expect("batch")
        };
        let batches = [
            batch(vec![0, 1], vec![b"a", b"b"]),
            batch(vec![5, 7], vec![b"c", bad]),
        ];
        let (column, row, rows) = find_text(&batches, Sought::NotUtf8).expect("found");
        assert_eq!((column.as_str(), row, rows), ("value", 3, 1));
        assert_eq!(record_of_row(&batches, row).as_deref(), Some("offset 7"));
    }

    /// Walk 40 (7): a pending batch finished with the file it was planned with quoted the
    /// Kafka source's "(set `on_error: skip` ...)" when the edited file already said so; every
    /// source's form of that advice goes, and the rest of the error stays.
    #[test]
    fn a_pending_batch_does_not_advise_the_skip_its_edit_made() {
        for (file, line, reason) in [
            (
                "source `k`: topic t partition 0 offset 7",
                None,
                "not JSON (set `on_error: skip` to skip and count such records)",
            ),
            (
                "source `n`: stream s sequence 3",
                None,
                "not JSON (set `on_error: skip` to skip and count such messages)",
            ),
            ("in/a.json", Some(2), "not JSON"),
        ] {
            let error = crate::Error::Pending {
                batch: BatchId(4),
                planned: "pipelines/abc.yaml".into(),
                advice: "rewind".into(),
                source: Box::new(crate::Error::Source(SourceError::Malformed {
                    file: file.into(),
                    line,
                    reason: reason.into(),
                })),
            };
            let said = error.to_string();
            assert!(!said.contains("on_error: skip"), "{said}");
            assert!(said.contains("not JSON. The edit takes effect"), "{said}");
        }
    }
}
