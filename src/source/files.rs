//! The files source: JSON lines, CSV or Parquet files in a folder or under an object-store
//! prefix.
//!
//! New files are found by listing, taken in path order, and each batch's exact file list is
//! logged under `sources/<name>/<N>` in the checkpoint, so a replay reads the same files even
//! when more have arrived. Files and folders whose names start with `.` or `_` are ignored
//! (temporary and metadata files). The schema is declared, or inferred from the first files
//! (see `infer`) and pinned under `sources/<name>/schema`. Hive-style `key=value` folders are
//! columns (see `hive`).
//!
//! The log of batch `N` holds `v1`, then one JSON line per file: its path, its size, and what
//! identifies its bytes where the store gives it (modification time, ETag, version). A re-read
//! of the batch (a replay, a recovered batch) fails naming the file if it changed since. Older
//! logs are folded into one `<K>.compact` entry (every file read up to batch `K`) once there
//! are enough of them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::infer::Sample;
use super::{
    Admission, BatchInput, BatchScan, ConfigError, ReadPart, Reader, RemoteForm, Source,
    SourceConnector, SourceError, SourceKind, StreamedTable, hive, parse_settings,
};
use crate::checkpoint::{BatchId, CheckpointError, paths};
use crate::format::{EpochUnit, FileFormat, OnError};
use crate::storage::{Location, StoreHook};

/// The files source in the registry.
pub(super) const KIND: SourceKind = SourceKind {
    name: "files",
    configure,
};

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SourceConnector>, ConfigError> {
    // YAML reads a bare `NULL`, `null` or `~` as no value at all, which would leave the
    // setting unset without a word.
    if settings
        .get("null_value")
        .is_some_and(serde_yaml::Value::is_null)
    {
        return Err(ConfigError::at(
            "null_value",
            "YAML reads a bare `NULL` (or `null`, `~`) as no value: quote the text, \
             `null_value: 'NULL'`",
        ));
    }
    let config: FilesConfig = parse_settings(settings)?;
    if config.schema.is_some() && config.columns.is_some() {
        return Err(ConfigError::at(
            "columns",
            "`columns` and `schema` both given; use one",
        ));
    }
    if let Some(written) = &config.delimiter {
        if config.format != FileFormat::Csv {
            return Err(ConfigError::at(
                "delimiter",
                "`delimiter` separates the fields of CSV files; this source reads another format",
            ));
        }
        let fits = config
            .csv_byte()
            .is_some_and(|b| b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r'));
        if !fits {
            return Err(ConfigError::at(
                "delimiter",
                format!(
                    "`delimiter: {}` cannot separate CSV fields: give one ASCII character other \
                     than a quote or a line break (`;`, `\"\\t\"` or '\\t' for a tab, `|`)",
                    written.escape_default()
                ),
            ));
        }
    }
    if let Some(written) = &config.escape {
        if config.format != FileFormat::Csv {
            return Err(ConfigError::at(
                "escape",
                "`escape` escapes quotes inside CSV fields; this source reads another format",
            ));
        }
        // `"` is RFC 4180's way, a quote doubled (DuckDB's default `escape`).
        let fits = written == "\""
            || config.csv_escape().is_some_and(|b| {
                b.is_ascii() && !matches!(b, b'\n' | b'\r') && b != config.csv_delimiter()
            });
        if !fits {
            return Err(ConfigError::at(
                "escape",
                format!(
                    "`escape: {}` cannot escape a CSV quote: give one ASCII character other than \
                     the delimiter or a line break ('\\' for a backslash, in single quotes)",
                    written.escape_default()
                ),
            ));
        }
    }
    if let Some(label) = &config.encoding {
        if !matches!(config.format, FileFormat::Json | FileFormat::Csv) {
            return Err(ConfigError::at(
                "encoding",
                "`encoding` is the text encoding of JSON and CSV files; Parquet keeps its text \
                 as UTF-8",
            ));
        }
        if encoding_of(label).is_none() {
            return Err(ConfigError::at(
                "encoding",
                format!(
                    "`{label}` is no encoding Sluice knows (the WHATWG Encoding Standard's \
                     labels: `utf-8`, `windows-1252` (also `latin-1`), `iso-8859-15`, \
                     `utf-16le`, `utf-16be`, `shift_jis`, `gbk`, ...)"
                ),
            ));
        }
    }
    if let Some(header) = config.header {
        if config.format != FileFormat::Csv {
            return Err(ConfigError::at(
                "header",
                "`header` says whether a CSV file's first line names its columns; this source \
                 reads another format",
            ));
        }
        if !header && config.schema.is_none() && config.columns.is_none() {
            return Err(ConfigError::at(
                "header",
                "`header: false` reads every line as a record, by position, so the columns \
                 cannot be named from the files: declare them in order, `columns: [{name: id, \
                 type: bigint}, {name: page, type: string}]` (as Spark's streaming file \
                 source, which infers no schema, needs one)",
            ));
        }
    }
    if config.null_value.is_some() && config.format != FileFormat::Csv {
        return Err(ConfigError::at(
            "null_value",
            "`null_value` marks null fields of CSV files; this source reads another format \
             (JSON's `null` and Parquet's nulls read as null)",
        ));
    }
    if let Some(glob) = &config.path_glob_filter
        && let Err(e) = glob_patterns(glob)
    {
        return Err(ConfigError::at(
            "path_glob_filter",
            format!(
                "`{glob}` is not a glob: {e} (`*.csv`, `orders_*.csv`, `[!_]*`, `*.{{csv,gz}}`)"
            ),
        ));
    }
    if config.max_files_per_batch == Some(0) {
        return Err(ConfigError::at(
            "max_files_per_batch",
            "`max_files_per_batch` must be at least 1",
        ));
    }
    if config.epoch_unit.is_some() {
        if config.format == FileFormat::Parquet {
            return Err(ConfigError::at(
                "epoch_unit",
                "`epoch_unit` reads numbers in JSON and CSV text as times; a Parquet file's \
                 timestamps carry their own unit",
            ));
        }
        if config.declared_columns().is_none() {
            return Err(ConfigError::at(
                "epoch_unit",
                "`epoch_unit` reads numbers into declared `timestamp` columns: declare the \
                 source's `schema:` (e.g. `ts: timestamp`); an inferred column of numbers is a \
                 `bigint`",
            ));
        }
    }
    Ok(Arc::new(config))
}

/// The settings of a files source or table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// A folder, a single file (for static tables) or an object-store URL prefix.
    pub path: String,
    /// The files' format.
    pub format: FileFormat,
    /// The schema: column name to SQL type, in column order; inferred from the first files
    /// where absent.
    #[serde(default)]
    pub schema: Option<indexmap::IndexMap<String, String>>,
    /// Ordered column list, used instead of `schema` where column order matters.
    #[serde(default)]
    pub columns: Option<Vec<ColumnConfig>>,
    /// At most this many new files per batch.
    #[serde(default)]
    pub max_files_per_batch: Option<usize>,
    /// What to do with a malformed line or row.
    #[serde(default)]
    pub on_error: OnError,
    /// The name of a string column that holds each row's fields the schema does not know, as
    /// a JSON object's text (null where there are none); Databricks Auto Loader's
    /// `rescuedDataColumn`. JSON lines (top-level fields) and Parquet (columns).
    #[serde(default)]
    pub rescued_data_column: Option<String>,
    /// The unit of a number in a declared `timestamp` column of JSON lines or CSV (`seconds`,
    /// `milliseconds`, `microseconds`, `nanoseconds` since 1970-01-01T00:00:00Z); such a
    /// number is refused without it. Text times read as ever.
    #[serde(default)]
    pub epoch_unit: Option<EpochUnit>,
    /// The character between a CSV record's fields (`,` where absent; `;`, `"\t"` or `'\t'`
    /// for a tab, `|`), as Spark's `sep`/`delimiter` and DuckDB's `delim`: one ASCII
    /// character.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Whether each CSV file's first line names its columns (true where absent). `false`
    /// (Spark's default `header`, and Flink's CSV, which has none): every line is a record,
    /// read into the declared `schema:` (or `columns:`) by position, which it then needs.
    #[serde(default)]
    pub header: Option<bool>,
    /// The text of a CSV field that reads as null, besides an empty field (`NULL`, `\N`,
    /// `NA`), as Spark's `nullValue` and DuckDB's `nullstr`: the whole field, unquoted or
    /// quoted, matched exactly. Quoted in the YAML (`'NULL'`), which reads a bare `NULL` as
    /// no value (refused).
    #[serde(default)]
    pub null_value: Option<String>,
    /// The character that escapes a quote inside a quoted CSV field (`'\'` for `\"`, as
    /// Spark writes CSV and its `escape` option reads it; DuckDB's `escape`): one ASCII
    /// character. Inside a quoted field it also escapes itself (`\\` is one `\`, as Spark's
    /// `charToEscapeQuoteEscaping`), and before any other character it is that character's
    /// own (`C:\new` stays). Where absent, a quote inside a quoted field is written twice
    /// (`""`, RFC 4180), and a quoted field that goes on after its closing quote is refused.
    #[serde(default)]
    pub escape: Option<String>,
    /// The text encoding of JSON and CSV files (`windows-1252`, `latin-1`, `iso-8859-15`,
    /// `utf-16`, ...: a label of the WHATWG Encoding Standard, as Spark's and DuckDB's
    /// `encoding`), read into UTF-8; UTF-8 where absent. `latin-1` and `iso-8859-1` read as
    /// Windows-1252, as browsers read them (the same letters, and `€` where Latin-1 has a
    /// control code).
    #[serde(default)]
    pub encoding: Option<String>,
    /// Only files whose name (not their folder) matches this glob are read (`*.csv`,
    /// `orders_*.csv`, `[!x]*`), as Spark's `pathGlobFilter`: other files in the folder are
    /// passed over, as hidden ones are.
    #[serde(default)]
    pub path_glob_filter: Option<String>,
    /// A file changed less than this long ago (by its modification time, as the store gives
    /// it) is left for a later batch, so that one still being written or copied in is read
    /// whole (Apache NiFi's "Minimum File Age"). None where absent: every listed file is read.
    #[serde(default, deserialize_with = "crate::duration::optional")]
    pub min_file_age: Option<std::time::Duration>,
}

/// One column of an ordered schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// Column name.
    pub name: String,
    /// SQL type name, as DataFusion's SQL reads it.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// `glob` as Spark's `pathGlobFilter` reads it (Hadoop's `GlobPattern`): `*`, `?`, `[a-z]`,
/// a class negated by `^` or `!`, and `{a,b}` alternatives (nested too), as the patterns of
/// the `glob` crate it stands for, one per alternative (walk 109: `*.{csv,csv.gz}` and
/// `[^b]*` matched no file, unsaid). An unclosed `{` or a pattern the crate refuses is an
/// error saying so.
fn glob_patterns(glob: &str) -> Result<Vec<glob::Pattern>, String> {
    /// `glob` with each `{...}` replaced by each of its alternatives.
    fn expand(glob: &str, out: &mut Vec<String>) -> Result<(), String> {
        let bytes = glob.as_bytes();
        let mut i = 0;
        let mut class = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 1,
                b'[' => class = true,
                b']' => class = false,
                b'{' if !class => {
                    let (mut depth, mut start, mut alternatives) = (0, i + 1, Vec::new());
                    let mut j = i;
                    loop {
                        j += 1;
                        match bytes.get(j) {
                            None => return Err(format!("the `{{` at {} is not closed", i + 1)),
                            Some(b'\\') => j += 1,
                            Some(b'{') => depth += 1,
                            Some(b'}') if depth > 0 => depth -= 1,
                            Some(b'}') => {
                                alternatives.push(&glob[start..j]);
                                break;
                            }
                            Some(b',') if depth == 0 => {
                                alternatives.push(&glob[start..j]);
                                start = j + 1;
                            }
                            Some(_) => {}
                        }
                    }
                    for alternative in alternatives {
                        expand(
                            &format!("{}{alternative}{}", &glob[..i], &glob[j + 1..]),
                            out,
                        )?;
                    }
                    return Ok(());
                }
                _ => {}
            }
            i += 1;
        }
        out.push(glob.replace("[^", "[!"));
        Ok(())
    }
    let mut globs = Vec::new();
    expand(glob, &mut globs)?;
    globs
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| e.to_string()))
        .collect()
}

impl FilesConfig {
    /// Whether the file at `path` (relative to the folder read) is read: its name matches
    /// `path_glob_filter` where there is one (a pattern that does not parse, refused when the
    /// file loads, admits nothing).
    pub fn admits(&self, path: &str) -> bool {
        let Some(glob) = &self.path_glob_filter else {
            return true;
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        glob_patterns(glob).is_ok_and(|patterns| patterns.iter().any(|p| p.matches(name)))
    }

    /// The byte between a CSV record's fields: `delimiter`, checked one ASCII character when
    /// the file loads, or `,`.
    pub fn csv_delimiter(&self) -> u8 {
        self.csv_byte().unwrap_or(b',')
    }

    /// The byte that escapes a quote inside a quoted CSV field (`escape`, checked when the
    /// file loads); `None` where absent or `"` (a quote doubled, RFC 4180's way).
    pub fn csv_escape(&self) -> Option<u8> {
        match self.escape.as_deref()?.as_bytes() {
            [b'"'] => None,
            [byte] => Some(*byte),
            _ => None,
        }
    }

    /// The files' text encoding (`encoding`, checked a known label when the file loads);
    /// `None` for UTF-8.
    pub fn text_encoding(&self) -> Option<&'static encoding_rs::Encoding> {
        self.encoding
            .as_deref()
            .and_then(encoding_of)
            .filter(|e| *e != encoding_rs::UTF_8)
    }

    /// `delimiter` as one byte (`\t` as written in YAML's single quotes is a tab, as in
    /// DuckDB's `delim`); `None` where absent or not one byte.
    fn csv_byte(&self) -> Option<u8> {
        match self.delimiter.as_deref()? {
            "\\t" => Some(b'\t'),
            one => match one.as_bytes() {
                [byte] => Some(*byte),
                _ => None,
            },
        }
    }

    /// The declared columns in order, if the source declares a schema.
    pub fn declared_columns(&self) -> Option<Vec<(String, String)>> {
        if let Some(columns) = &self.columns {
            return Some(
                columns
                    .iter()
                    .map(|c| (c.name.clone(), c.data_type.clone()))
                    .collect(),
            );
        }
        self.schema.as_ref().map(|s| {
            s.iter()
                .map(|(name, ty)| (name.clone(), ty.clone()))
                .collect()
        })
    }
}

#[async_trait]
impl SourceConnector for FilesConfig {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn reads_as_table(&self) -> bool {
        true
    }

    fn location(&self) -> Option<String> {
        Some(self.path.clone())
    }

    fn preflight(&self, name: &str, hook: Option<&StoreHook>) -> Result<(), SourceError> {
        open_folder(name, self, hook, false).map(|_| ())
    }

    async fn open(
        &self,
        name: &str,
        checkpoint: &Location,
        hook: Option<&StoreHook>,
        sync: bool,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(
            FilesSource::open(name, self, checkpoint, hook, sync).await?,
        ))
    }

    async fn other_files_named_as_read(
        &self,
        name: &str,
        checkpoint: &Location,
    ) -> Result<Vec<String>, SourceError> {
        let source = FilesSource::open(name, self, checkpoint, None, false).await?;
        Ok(source
            .list_data()
            .await?
            .into_iter()
            .filter_map(|file| {
                let read = source.seen.get(&file.path)?;
                // A file that grew after it was read, said then (`sources/<name>/changed`),
                // moved with its folder: the same file.
                let said = source
                    .said_before
                    .get(&file.path)
                    .is_some_and(|said| said.size == file.size);
                (read.size != file.size && !said)
                    .then(|| format!("{} ({} bytes; {} read)", file.path, file.size, read.size))
            })
            .collect())
    }

    async fn load_table(
        &self,
        name: &str,
        hook: Option<&StoreHook>,
    ) -> Result<Arc<MemTable>, SourceError> {
        load_table(name, self, hook).await
    }

    async fn peek_schema(&self, name: &str) -> Result<Option<SchemaRef>, SourceError> {
        peek_schema(name, self).await
    }

    fn describe_offset(&self, name: &str, offset: &serde_json::Value) -> String {
        match (log_offset(Some(offset)), offset.get("files")) {
            (Some(log), Some(files)) => format!(
                "{files} files read; the newest batch with input logged its files in {}/{log}",
                paths::source_dir(name)
            ),
            _ => offset.to_string(),
        }
    }

    async fn batch_inputs(
        &self,
        name: &str,
        checkpoint: &Location,
        batch: BatchId,
        end: &serde_json::Value,
    ) -> Result<Vec<String>, SourceError> {
        // The batch's own entry, where it had input and its entry is not folded or purged.
        if log_offset(Some(end)) != Some(batch.0) {
            return Ok(Vec::new());
        }
        let file = format!("{}/{}", paths::source_dir(name), batch.0);
        if checkpoint.get(&checkpoint.path(&file)).await?.is_none() {
            // Folded into a compact entry, its files are there; otherwise it was deleted.
            let folded = checkpoint
                .list(&paths::source_dir(name))
                .await?
                .iter()
                .filter_map(|meta| {
                    let relative = checkpoint.relative(&meta.location);
                    let entry = relative.rsplit('/').next().unwrap_or_default().to_string();
                    entry.strip_suffix(".compact").and_then(paths::entry_number)
                })
                .any(|k| k >= batch.0);
            if folded {
                return Ok(Vec::new());
            }
            return Err(CheckpointError::Inconsistent {
                location: checkpoint.to_string(),
                reason: format!("the source log {file} is missing"),
            }
            .into());
        }
        Ok(read_log_entry(checkpoint, &file)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    async fn gone_inputs(
        &self,
        name: &str,
        checkpoint: &Location,
        batch: BatchId,
        end: &serde_json::Value,
    ) -> Result<Vec<String>, SourceError> {
        // A batch whose file list is folded, purged or damaged cannot tell.
        let files = match self.batch_inputs(name, checkpoint, batch, end).await {
            Ok(files) if !files.is_empty() => files,
            _ => return Ok(Vec::new()),
        };
        let folder = open_folder(name, self, None, false)?;
        // Asked a few at a time: one request each on an object store.
        let found: Vec<(String, bool)> = futures::stream::iter(files)
            .map(|file| {
                let folder = &folder;
                async move {
                    let there = folder.exists(&folder.path(&file)).await?;
                    Ok::<_, SourceError>((file, there))
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .filter(|(_, there)| !there)
            .map(|(file, _)| format!("{folder}/{file}"))
            .collect())
    }

    async fn rebuild_offset(
        &self,
        name: &str,
        checkpoint: &Location,
        batch: BatchId,
    ) -> Result<serde_json::Value, SourceError> {
        rebuild_offset(checkpoint, name, batch).await
    }

    async fn log_damage(
        &self,
        name: &str,
        checkpoint: &Location,
        batch: BatchId,
        end: &serde_json::Value,
    ) -> Result<Option<String>, SourceError> {
        let Some(read) = end.get("files").and_then(serde_json::Value::as_u64) else {
            return Ok(None);
        };
        // Counted as a run loads the log: the newest compact entry and the entries after it
        // (walk 99: a deleted `K.compact` was said by the run alone).
        let logged = match rebuild_offset(checkpoint, name, batch).await {
            Ok(offset) => offset
                .get("files")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            // A compact entry past the batch: not this batch's to count.
            Err(SourceError::Checkpoint(CheckpointError::Inconsistent { .. })) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok((logged < read).then(|| {
            format!(
                "source `{name}`: the batches up to {batch} read {read} files, but its log ({}/) \
                 lists {logged}: an entry of it was deleted (a numbered one, or the compact \
                 one that folds the older ones), and the files it listed would be read again",
                paths::source_dir(name)
            )
        }))
    }

    async fn check_forget(
        &self,
        name: &str,
        checkpoint: &Location,
        to: BatchId,
    ) -> Result<(), SourceError> {
        // Each later batch must still have its own log entry.
        for meta in checkpoint.list(&paths::source_dir(name)).await? {
            let relative = checkpoint.relative(&meta.location);
            let file = relative.rsplit('/').next().unwrap_or_default();
            if let Some(k) = file.strip_suffix(".compact").and_then(paths::entry_number)
                && k > to.0
            {
                return Err(SourceError::Config {
                    source_name: name.to_string(),
                    reason: format!(
                        "its log entry {relative} folds batches after {to} together, so they \
                         cannot be taken back one by one"
                    ),
                });
            }
        }
        Ok(())
    }

    async fn forget_batch(
        &self,
        name: &str,
        checkpoint: &Location,
        batch: BatchId,
    ) -> Result<u64, SourceError> {
        let file = checkpoint.path(&format!("{}/{}", paths::source_dir(name), batch.0));
        if checkpoint.get(&file).await?.is_none() {
            return Ok(0);
        }
        checkpoint.delete(&file).await?;
        Ok(1)
    }
}

/// One file in a source log: its path and what identifies its bytes. The identity fields are
/// absent in logs written before they were logged, and where the store does not give them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct LoggedFile {
    path: String,
    size: u64,
    /// Its modification time, in ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_ms: Option<i64>,
    /// The store's ETag of it (on local disk, object_store derives it from the file's inode,
    /// modification time and size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// The store's version of it (object stores with versioning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

impl LoggedFile {
    /// The file at `path` as the store describes it in `meta`.
    fn described(path: String, meta: &ObjectMeta) -> Self {
        Self {
            path,
            size: meta.size,
            modified_ms: Some(meta.last_modified.timestamp_millis()),
            etag: meta.e_tag.clone(),
            version: meta.version.clone(),
        }
    }

    /// What differs between the file as logged (`self`) and as it is `now`, when it no longer
    /// holds the logged bytes: it is shorter, or its ETag or version differs, or, where the
    /// store gave neither both times, its modification time differs (to the second, the
    /// precision every store gives). `None` when it still holds them; a file that grew and that
    /// nothing else identifies (a log written before identities were logged) is read up to its
    /// logged size, as before.
    fn change(&self, now: &LoggedFile, local: bool) -> Option<String> {
        fn both<'a>(a: &'a Option<String>, b: &'a Option<String>) -> Option<(&'a str, &'a str)> {
            a.as_deref().zip(b.as_deref())
        }
        // `"abc"`, `abc` and `W/"abc"` are one ETag: stores quote it in a listing or not. On
        // local disk (`<inode>-<mtime>-<size>`, in hex) the inode is left out, so a copy of
        // the input with its times (`cp -a` of a project and its checkpoint) still reads.
        let tag = |t: &str| {
            let t = t.trim_start_matches("W/").trim_matches('"');
            match t.split_once('-') {
                Some((_, rest)) if local => rest.to_string(),
                _ => t.to_string(),
            }
        };
        let (tags, versions) = (
            both(&self.etag, &now.etag),
            both(&self.version, &now.version),
        );
        let etag = tags.filter(|&(was, is)| tag(was) != tag(is));
        let version = versions.filter(|&(was, is)| was != is);
        let modified = self.modified_ms.zip(now.modified_ms);
        let rewritten = if tags.is_some() || versions.is_some() {
            etag.is_some() || version.is_some()
        } else {
            modified.is_some_and(|(was, is)| was.div_euclid(1000) != is.div_euclid(1000))
        };
        if now.size >= self.size && !rewritten {
            return None;
        }
        let mut what = Vec::new();
        if now.size != self.size {
            what.push(format!(
                "its size was {} bytes and is {} bytes now",
                self.size, now.size
            ));
        }
        if let Some((was, is)) = modified.filter(|(was, is)| was != is) {
            what.push(format!(
                "its modification time was {} and is {} now",
                rfc3339(was),
                rfc3339(is)
            ));
        }
        if let Some((was, is)) = etag {
            what.push(format!("its ETag was {was} and is {is} now"));
        }
        if let Some((was, is)) = version {
            what.push(format!("its version was {was} and is {is} now"));
        }
        let what = what.join(", ");
        Some(if now.size == self.size {
            format!("the same size ({} bytes), but {what}", self.size)
        } else {
            what
        })
    }

    /// Where the file on local disk differs from the logged one only in its modification
    /// time (the same size, the same ETag but for its time part, no version): the logged time
    /// to the microsecond (RFC 3339), which `touch -d` puts back. A copy that did not keep
    /// times (`cp -r` without `-a`) looks like this. `None` otherwise.
    fn time_to_put_back(&self, now: &LoggedFile, local: bool) -> Option<String> {
        // object_store's local ETag: `<inode>-<modified, µs since the epoch>-<size>`, in hex.
        fn parts(tag: &str) -> Option<(&str, &str)> {
            let mut parts = tag.trim_matches('"').splitn(3, '-').skip(1);
            Some((parts.next()?, parts.next()?))
        }
        if !local || now.size != self.size || self.version != now.version {
            return None;
        }
        let (was_time, was_size) = parts(self.etag.as_deref()?)?;
        let (is_time, is_size) = parts(now.etag.as_deref()?)?;
        if was_size != is_size || was_time == is_time {
            return None;
        }
        let micros = i64::from_str_radix(was_time, 16).ok()?;
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

/// `ms` since the epoch as an RFC 3339 time, for messages.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// One column of a pinned schema.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinnedColumn {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

/// The files source.
#[derive(Debug)]
pub struct FilesSource {
    name: String,
    config: FilesConfig,
    data: Location,
    checkpoint: Location,
    schema: Option<SchemaRef>,
    /// Files read by planned batches, as each was when read (size, time, ETag).
    seen: HashMap<String, LoggedFile>,
    /// The batch that read each file of `seen`, where its own log entry says (not one a
    /// compact entry keeps).
    read_by: HashMap<String, u64>,
    /// Files read before that have changed since, already warned of in this run.
    grown: HashSet<String>,
    /// Files said by an earlier run to have changed since a batch read them, as each was
    /// then (from `sources/<name>/changed`): said again only once it changes again, so that
    /// a run from cron does not repeat it every time.
    said_before: HashMap<String, LoggedFile>,
    /// Whether this run said a change not in `said_before`, to be kept there.
    said_new: bool,
    /// Whether this run has said that the files there hold nothing to infer columns from.
    said_uninferable: bool,
    /// Whether this run has said that the source's local folder is gone (a run of `every`
    /// whose folder was moved or unmounted lists nothing, as if no file had come).
    said_gone: std::sync::atomic::AtomicBool,
    /// Whether this run has looked at an object-store prefix that lists nothing: an object
    /// named where a prefix is read, or a prefix that may be misspelled.
    looked_at_empty_prefix: std::sync::atomic::AtomicBool,
    /// Whether the files frozen at the start of the run are yet to be looked at for ones
    /// changed since a batch read them: done when the first batch after recovery is planned,
    /// so that a pending batch whose file changed stops the run with its own error first.
    unchecked_frozen: bool,
    /// The input available when the run froze it, if it did.
    frozen: Option<Vec<LoggedFile>>,
    /// Where in `frozen` the first file not read yet may be.
    frozen_next: usize,
    /// Numbered log entries present, for compaction.
    logged: BTreeSet<u64>,
    /// The newest compact entry's batch (`K` of `K.compact`), which holds every batch's up to
    /// it.
    compacted_to: Option<u64>,
    /// Files left for a later batch as younger than `min_file_age`, already said in this run.
    young: HashSet<String>,
    /// Whether the folder is a Spark file sink's (it has a `_spark_metadata` log), decided
    /// as Spark's `FileStreamSource` decides it: once a listing finds files.
    spark_sink: std::sync::OnceLock<bool>,
    /// How many files outside the Spark sink's log this run has said it leaves out.
    said_spark_left_out: std::sync::atomic::AtomicUsize,
    /// Whether a `path_glob_filter` that admits none of the folder's files was said.
    said_filtered_out: std::sync::atomic::AtomicBool,
}

/// Why source `name`, whose batches were read with an inferred schema, cannot go on: its log
/// in the checkpoint at `checkpoint` has entries, but its pinned schema is gone (the ways out
/// said). `None` where the schema is pinned, or no batch has read the source.
///
/// Errors: the store's, listing the source's log.
pub async fn pinned_schema_lost(
    checkpoint: &Location,
    name: &str,
) -> Result<Option<String>, crate::storage::StorageError> {
    let file = format!("{}/schema", paths::source_dir(name));
    let listed = checkpoint.list(&paths::source_dir(name)).await?;
    let pinned = listed
        .iter()
        .any(|meta| checkpoint.relative(&meta.location) == file);
    Ok((!pinned && !listed.is_empty()).then(|| {
        format!(
            "source `{name}`: its batches were read with the schema inferred from its first \
             files and pinned in {checkpoint}/{file}, which is gone. Inferring it again from \
             the files there now could type a column otherwise (numbers as text) and change \
             what the next batch writes and what a replay reads: put the file back from a \
             backup, or declare the source's columns with `schema:` (as the batches read them; \
             the sink's files show their types)"
        )
    }))
}

impl FilesSource {
    /// Opens the source `name`, loading its log from the checkpoint at `checkpoint`.
    pub async fn open(
        name: &str,
        config: &FilesConfig,
        checkpoint: &Location,
        hook: Option<&StoreHook>,
        sync: bool,
    ) -> Result<Self, SourceError> {
        let data = open_folder(name, config, hook, sync)?;
        let mut source = Self {
            name: name.to_string(),
            config: config.clone(),
            data,
            checkpoint: checkpoint.clone(),
            schema: None,
            seen: HashMap::new(),
            read_by: HashMap::new(),
            grown: HashSet::new(),
            said_before: HashMap::new(),
            said_new: false,
            said_uninferable: false,
            said_gone: std::sync::atomic::AtomicBool::new(false),
            looked_at_empty_prefix: std::sync::atomic::AtomicBool::new(false),
            unchecked_frozen: false,
            frozen: None,
            frozen_next: 0,
            logged: BTreeSet::new(),
            compacted_to: None,
            young: HashSet::new(),
            spark_sink: std::sync::OnceLock::new(),
            said_spark_left_out: std::sync::atomic::AtomicUsize::new(0),
            said_filtered_out: std::sync::atomic::AtomicBool::new(false),
        };
        source.schema = source.declared_or_pinned_schema().await?;
        source.load_log().await?;
        source.load_said_before().await;
        Ok(source)
    }

    /// The file that keeps what `said_before` holds.
    fn said_file(&self) -> String {
        format!("{}/changed", self.log_dir())
    }

    /// Loads the changes earlier runs said. The file only spares a repeated warning: where
    /// it is missing or unreadable, the warnings come again.
    async fn load_said_before(&mut self) {
        let file = self.said_file();
        // One request: a missing file (no change said yet) is read as one that does not read.
        match read_log_entry(&self.checkpoint, &file).await {
            Ok(said) => {
                self.said_before = said.into_iter().map(|f| (f.path.clone(), f)).collect();
            }
            Err(e) => tracing::debug!("source `{}`: {file} not read: {e}", self.name),
        }
    }

    /// Keeps the changes this run said in `said_before`'s file, for the next run.
    async fn keep_said(&mut self) {
        if !std::mem::take(&mut self.said_new) {
            return;
        }
        let mut said: Vec<&LoggedFile> = self.said_before.values().collect();
        said.sort_by(|a, b| a.path.cmp(&b.path));
        let mut text = String::from("v1\n");
        for file in said {
            text.push_str(&serde_json::to_string(file).expect("a logged file serializes"));
            text.push('\n');
        }
        let file = self.said_file();
        if let Err(e) = self
            .checkpoint
            .put(&self.checkpoint.path(&file), text.into_bytes())
            .await
        {
            tracing::debug!("source `{}`: {file} not written: {e}", self.name);
        }
    }

    fn log_dir(&self) -> String {
        paths::source_dir(&self.name)
    }

    fn log_file(&self, batch: u64) -> String {
        format!("{}/{batch}", self.log_dir())
    }

    async fn declared_or_pinned_schema(&self) -> Result<Option<SchemaRef>, SourceError> {
        if let Some(schema) = declared_schema(&self.name, &self.config).await? {
            return Ok(Some(schema));
        }
        let file = format!("{}/schema", self.log_dir());
        let Some(bytes) = self.checkpoint.get(&self.checkpoint.path(&file)).await? else {
            return Ok(None);
        };
        let columns: Vec<PinnedColumn> =
            crate::checkpoint::parse_json_object(&file, &String::from_utf8_lossy(&bytes))?;
        let fields = columns
            .into_iter()
            .map(|c| {
                DataType::from_str(&c.data_type)
                    .map(|t| Field::new(c.name, t, c.nullable))
                    .map_err(|e| CheckpointError::Corrupt {
                        file: file.clone(),
                        line: 1,
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(untyped) = fields
            .iter()
            .find(|f| super::infer::has_null(f.data_type()))
        {
            return Err(SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "the schema pinned in {file} types column `{}` as {}, a type that holds no \
                     value (an older Sluice pinned it from files where the column had none, and \
                     read every later value of it as null); declare `schema:` for the source",
                    untyped.name(),
                    untyped.data_type()
                ),
            });
        }
        with_rescued(&self.name, &self.config, &Arc::new(Schema::new(fields))).map(Some)
    }

    async fn pin_schema(&self, schema: &SchemaRef) -> Result<(), SourceError> {
        let columns: Vec<PinnedColumn> = schema
            .fields()
            .iter()
            .map(|f| PinnedColumn {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect();
        if let Some(c) = columns
            .iter()
            .find(|c| DataType::from_str(&c.data_type).is_err())
        {
            return Err(SourceError::Infer {
                file: self.data.to_string(),
                reason: format!(
                    "column `{}` has type {}, which cannot be pinned in the checkpoint",
                    c.name, c.data_type
                ),
            });
        }
        let path = self.checkpoint.path(&format!("{}/schema", self.log_dir()));
        let text = serde_json::to_string_pretty(&columns).expect("schema serializes") + "\n";
        self.checkpoint
            .put_if_absent(&path, text.into_bytes())
            .await?;
        Ok(())
    }

    /// The first numbered log entry (after the compact one) that lists files and only files
    /// earlier entries list (the compact entry's too), with those earlier entries: `(copy,
    /// of)`.
    async fn repeated_entry(&self) -> Result<Option<(u64, Vec<u64>)>, SourceError> {
        let mut listed_by: HashMap<String, u64> = HashMap::new();
        if let Some(k) = self.compacted_to {
            for file in self
                .read_entry(&format!("{}/{k}.compact", self.log_dir()))
                .await?
            {
                listed_by.insert(file.path, k);
            }
        }
        for &n in &self.logged {
            if self.compacted_to.is_some_and(|k| n <= k) {
                continue;
            }
            let files = self.read_entry(&self.log_file(n)).await?;
            let earlier: BTreeSet<u64> = files
                .iter()
                .filter_map(|f| listed_by.get(&f.path).copied())
                .collect();
            if !files.is_empty() && files.iter().all(|f| listed_by.contains_key(&f.path)) {
                return Ok(Some((n, earlier.into_iter().collect())));
            }
            for file in files {
                listed_by.entry(file.path).or_insert(n);
            }
        }
        Ok(None)
    }

    /// Loads the files read so far from the log (the latest compact entry and later batches).
    async fn load_log(&mut self) -> Result<(), SourceError> {
        let mut compact: Option<u64> = None;
        for meta in self.checkpoint.list(&self.log_dir()).await? {
            let relative = self.checkpoint.relative(&meta.location);
            let name = relative.rsplit('/').next().unwrap_or_default();
            if let Some(n) = paths::entry_number(name) {
                self.logged.insert(n);
            } else if let Some(n) = name.strip_suffix(".compact").and_then(paths::entry_number) {
                compact = compact.max(Some(n));
            }
        }
        self.compacted_to = compact;
        if let Some(k) = compact {
            for file in self
                .read_entry(&format!("{}/{k}.compact", self.log_dir()))
                .await?
            {
                self.seen.insert(file.path.clone(), file);
            }
        }
        let numbered: Vec<u64> = self.logged.iter().copied().collect();
        for n in numbered {
            if compact.is_some_and(|k| n <= k) {
                continue;
            }
            for file in self.read_entry(&self.log_file(n)).await? {
                self.read_by.insert(file.path.clone(), n);
                self.seen.insert(file.path.clone(), file);
            }
        }
        Ok(())
    }

    /// Warns, once for each change, of a file read before that has changed since (grown,
    /// shrunk, or rewritten at the same size: another modification time or ETag): what it
    /// holds now is not read, since a file is read once, as it was when a batch listed it (as
    /// Spark's file source does). The way to add rows is a new file. A change an earlier run
    /// said (`said_before`) is not said again until the file changes again.
    fn warn_of_grown(&mut self, listed: &[LoggedFile]) {
        for file in listed {
            let Some(read) = self.seen.get(&file.path) else {
                continue;
            };
            // The common case, a file as it was read, without building the comparison.
            if file.size == read.size
                && file.modified_ms == read.modified_ms
                && file.etag == read.etag
                && file.version == read.version
            {
                continue;
            }
            // As a re-run of a batch judges it (the inode of a local ETag left out).
            let changed = read
                .change(file, self.data.local_root().is_some())
                .is_some();
            // Grown by appended rows, or replaced (walk 97: a corrected file said as grown).
            let how = if file.size > read.size {
                format!(
                    "has grown from {} to {} bytes (rows appended, or the file replaced)",
                    read.size, file.size
                )
            } else if file.size < read.size {
                format!(
                    "has shrunk from {} to {} bytes (replaced, or cut)",
                    read.size, file.size
                )
            } else if changed {
                // Or another file of that name: a copy, or the same name in a folder the
                // source's `path:` was moved to.
                format!(
                    "was rewritten at the same size ({} bytes), or is another file of that name,",
                    file.size
                )
            } else {
                continue;
            };
            if self.said_before.get(&file.path) == Some(file) {
                self.grown.insert(file.path.clone());
                continue;
            }
            if self.grown.insert(file.path.clone()) {
                self.said_before.insert(file.path.clone(), file.clone());
                self.said_new = true;
                // The folder is another pipeline's files sink: its files are written again
                // by a `rewind` of that pipeline, not by a user adding rows.
                let sink_folder = self
                    .data
                    .local_root()
                    .is_some_and(|root| root.join(paths::SLUICE_DIR).is_dir());
                // A complete-mode sink's table, written whole each batch (walk 113: said as
                // written again by a rewind).
                if sink_folder && !file.path.contains('/') && file.path.starts_with("result.") {
                    tracing::warn!(
                        "source `{}`: {} {how} since it was read: the folder is another \
                         pipeline's complete-mode files sink, whose `result.*` is that \
                         pipeline's whole table, written anew each batch, not a stream of new \
                         rows; a source reads a file once. Read it as a static table \
                         (`tables:`), which a run reads whole when it starts (beside a source \
                         it streams: a pipeline has one at least)",
                        self.name,
                        file.path,
                    );
                    continue;
                }
                let way_on = if sink_folder {
                    "this folder is another pipeline's files sink, which writes a batch's \
                     files again after a `sluice rewind` of it: to read them as written now, \
                     rewind this pipeline too, to its last batch before it read them"
                } else {
                    "write new rows to a new file"
                };
                // Which batch, and how a corrected file is read again (walk 97: unsaid).
                let (which, again) = match self.read_by.get(&file.path) {
                    Some(&batch) => (
                        format!("batch {batch}"),
                        match batch.checked_sub(1) {
                            Some(before) => format!(
                                ". Where it was corrected, take that batch and the ones after \
                                 it back to read it again as it is now: `sluice rewind \
                                 {} --to {before}` (their output taken back too, where \
                                 the sink can)",
                                crate::vocab::shell_word(&self.checkpoint.to_string())
                            ),
                            None => ". Where it was corrected, only a new checkpoint (and \
                                     sink) reads it again, as batch 0 read it"
                                .to_string(),
                        },
                    ),
                    None => ("a batch".to_string(), String::new()),
                };
                tracing::warn!(
                    "source `{}`: {} {how} since {which} read it; what it holds now is not \
                     read (a file is read once, as it was when a batch listed it, as Spark's \
                     file source reads): {way_on}{again}",
                    self.name,
                    file.path,
                );
            }
        }
        // A new name for a file read before (`mv` keeps its size and time on local disk; an
        // object store's rename is a copy, with a new time): it is read as a new file, its
        // rows a second time, since a file is known by its path (as in Spark).
        if self.data.local_root().is_none() {
            return;
        }
        let new: Vec<&LoggedFile> = listed
            .iter()
            .filter(|f| !self.seen.contains_key(&f.path) && !self.grown.contains(&f.path))
            .collect();
        let looks: HashSet<(u64, i64)> = new
            .iter()
            .filter_map(|f| Some((f.size, f.modified_ms?)))
            .collect();
        if looks.is_empty() {
            return;
        }
        let names: HashSet<&str> = listed.iter().map(|f| f.path.as_str()).collect();
        let gone: HashMap<(u64, i64), &str> = self
            .seen
            .values()
            .filter_map(|f| Some(((f.size, f.modified_ms?), f.path.as_str())))
            .filter(|(look, path)| looks.contains(look) && !names.contains(path))
            .collect();
        for file in new {
            let Some(&was) = file.modified_ms.and_then(|ms| gone.get(&(file.size, ms))) else {
                continue;
            };
            if self.grown.insert(file.path.clone()) {
                tracing::warn!(
                    "source `{}`: {} has the size and modification time of {was}, which a \
                     batch read and is no longer there: if it is that file renamed, its rows \
                     are read again (a file is known by its path, as in Spark's file source); \
                     to leave it unread, give it a name starting with `.` or `_`",
                    self.name,
                    file.path,
                );
            }
        }
    }

    async fn read_entry(&self, file: &str) -> Result<Vec<LoggedFile>, SourceError> {
        read_log_entry(&self.checkpoint, file).await
    }

    /// Every data file under the source's folder, in path order, skipping hidden names.
    async fn list_data(&self) -> Result<Vec<LoggedFile>, SourceError> {
        let all: Vec<LoggedFile> = self
            .data
            .list_visible(hidden)
            .await?
            .into_iter()
            .map(|meta| LoggedFile::described(self.data.relative(&meta.location), &meta))
            .collect();
        let found = all.len();
        let listed: Vec<LoggedFile> = all
            .into_iter()
            .filter(|file| self.config.admits(&file.path))
            .collect();
        // A filter that admits none of the files there (walk 109: read as no input, unsaid).
        if listed.is_empty()
            && found > 0
            && let Some(glob) = &self.config.path_glob_filter
            && !self
                .said_filtered_out
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "source `{}`: `path_glob_filter: {glob}` admits none of the {found} files \
                 under {} (it is matched against each file's name, not its folders)",
                self.name,
                self.data,
            );
        }
        let listed = if self.spark_sink.get() == Some(&false) {
            listed
        } else {
            refuse_delta_table(&self.data)
                .await
                .map_err(|reason| SourceError::Config {
                    source_name: self.name.clone(),
                    reason,
                })?;
            match spark_committed(&self.data).await? {
                Some(committed) => {
                    let _ = self.spark_sink.set(true);
                    let (read, left_out): (Vec<_>, Vec<_>) = listed
                        .into_iter()
                        .partition(|file| committed.contains(&file.path));
                    let said = self
                        .said_spark_left_out
                        .swap(left_out.len(), std::sync::atomic::Ordering::Relaxed);
                    if left_out.len() > said {
                        say_spark_left_out(
                            &format!("source `{}`", self.name),
                            &self.data,
                            &left_out.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
                        );
                    }
                    read
                }
                None => {
                    if !listed.is_empty() {
                        let _ = self.spark_sink.set(false);
                    }
                    listed
                }
            }
        };
        // A local folder gone since the run opened it lists as empty: say so, once.
        if listed.is_empty()
            && let Some(root) = self.data.local_root()
            && !root.is_dir()
            && !self
                .said_gone
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "source `{}`: its folder {} is gone (moved, deleted or unmounted); the run \
                 reads nothing from it until it is back",
                self.name,
                root.display()
            );
        }
        if listed.is_empty()
            && self.data.local_root().is_none()
            && !self
                .looked_at_empty_prefix
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.look_at_empty_prefix().await?;
        }
        Ok(listed)
    }

    /// An object-store prefix that lists nothing: refused where it names an object (a file
    /// given for the folder a source reads, which would read as empty forever); said, where
    /// the source has read nothing yet and declares its columns, since a misspelled prefix
    /// looks like an empty folder (without declared columns the run says so itself, having
    /// nothing to infer them from).
    async fn look_at_empty_prefix(&self) -> Result<(), SourceError> {
        if self.data.is_an_object().await {
            let shown = crate::secret::redact_url(&self.data.to_string());
            let folder = shown.rsplit_once('/').map_or(shown.as_str(), |(f, _)| f);
            return Err(SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "{shown} is an object (a file), not a prefix (a folder): a files source \
                     reads every file under a folder, and this one has none. Give its folder \
                     (`path: {folder}`), and keep in it only files of this source; fix \
                     `sources.{}.path`",
                    self.name
                ),
            });
        }
        if self.seen.is_empty() && self.config.declared_columns().is_some() {
            tracing::warn!(
                "source `{}`: {} holds no file yet; if files are expected there, check the \
                 path (on an object store a misspelled prefix looks like an empty folder)",
                self.name,
                crate::secret::redact_url(&self.data.to_string())
            );
        }
        Ok(())
    }

    /// How long ago `file`, not read yet, changed, where that is less than `min_file_age`.
    fn young_for(&self, file: &LoggedFile) -> Option<i64> {
        let age = self.config.min_file_age?;
        let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let since = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(file.modified_ms?);
        (since < age_ms && !self.seen.contains_key(&file.path)).then_some(since)
    }

    /// `listed` without the files not read yet that changed less than `min_file_age` ago,
    /// each said once a run: at the default level where the run reads only what is there now
    /// (`last_run`: `available-now`), since the next run reads it; otherwise in the log. Where
    /// several are newly left at once, one line says them all (the first few by name).
    fn old_enough(&mut self, listed: Vec<LoggedFile>, last_run: bool) -> Vec<LoggedFile> {
        let Some(age) = self.config.min_file_age else {
            return listed;
        };
        let age = humantime::format_duration(age);
        let mut kept = Vec::with_capacity(listed.len());
        // The files newly left, each with why.
        let mut left: Vec<(String, String)> = Vec::new();
        for file in listed {
            let Some(since) = self.young_for(&file) else {
                kept.push(file);
                continue;
            };
            if self.young.insert(file.path.clone()) {
                // A time ahead of this machine's clock (walk 73: a clock set back a day held
                // every file as "changed 0.0s ago") is said as such: the file waits until the
                // clock has passed it by `min_file_age`.
                let changed = if since < 0 {
                    format!(
                        "was modified {:.1}s ahead of this machine's clock (a clock set back, \
                         or a file from a machine whose clock is ahead), and waits until the \
                         clock has passed that by `min_file_age: {age}`",
                        -since as f64 / 1000.0
                    )
                } else {
                    format!(
                        "changed {:.1}s ago, less than `min_file_age: {age}`",
                        since as f64 / 1000.0
                    )
                };
                left.push((file.path.clone(), changed));
            }
        }
        let said = match left.as_slice() {
            [] => return kept,
            [(path, changed)] => format!("{path} {changed}"),
            _ => {
                const NAMED: usize = 3;
                let names: Vec<&str> = left.iter().take(NAMED).map(|(p, _)| p.as_str()).collect();
                let more = match left.len().saturating_sub(NAMED) {
                    0 => String::new(),
                    more => format!(" and {more} more"),
                };
                let ahead = left
                    .iter()
                    .filter(|(_, why)| why.contains("ahead of"))
                    .count();
                let ahead = match ahead {
                    0 => String::new(),
                    n => format!(
                        "; {n} of them modified ahead of this machine's clock (a clock set \
                         back, or files from a machine whose clock is ahead), waiting until \
                         the clock has passed that by it"
                    ),
                };
                format!(
                    "{} files changed less than `min_file_age: {age}` ago ({}{more}){ahead}",
                    left.len(),
                    names.join(", "),
                )
            }
        };
        if last_run {
            tracing::warn!("source `{}`: {said}: left for the next run", self.name);
        } else {
            tracing::info!("source `{}`: {said}: left for a later batch", self.name);
        }
        kept
    }

    /// The first `limit` files not read yet, in path order.
    async fn available(&mut self, limit: Option<usize>) -> Result<Vec<LoggedFile>, SourceError> {
        let limit = limit.unwrap_or(usize::MAX);
        if std::mem::take(&mut self.unchecked_frozen)
            && let Some(frozen) = self.frozen.take()
        {
            self.warn_of_grown(&frozen);
            self.keep_said().await;
            self.frozen = Some(frozen);
        }
        let Some(frozen) = &self.frozen else {
            let listed = self.list_data().await?;
            self.warn_of_grown(&listed);
            self.keep_said().await;
            let listed = self.old_enough(listed, false);
            return Ok(listed
                .into_iter()
                .filter(|f| !self.seen.contains_key(&f.path))
                .take(limit)
                .collect());
        };
        // Files are read in path order, so the frozen list is read from the front: skip what
        // is read once, and a batch costs what it takes, not what came before it.
        let mut next = self.frozen_next;
        while frozen
            .get(next)
            .is_some_and(|f| self.seen.contains_key(&f.path))
        {
            next += 1;
        }
        let files = frozen[next..]
            .iter()
            .filter(|f| !self.seen.contains_key(&f.path))
            .take(limit)
            .cloned()
            .collect();
        self.frozen_next = next;
        Ok(files)
    }

    /// The files of the range `(start, end]`, in the order they are read, with the batch
    /// whose log entry ends it.
    async fn files_in_range(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
    ) -> Result<(BatchId, Vec<LoggedFile>), SourceError> {
        // `null` is "no offset yet": the source has had no input (another source has), in
        // this batch (`end`) or up to the batch before (`start`, as the previous entry logged
        // it, or absent for batch 0). An empty range still has the source's columns.
        let start = start.filter(|o| !o.is_null());
        if end.is_null() {
            if let Some(start) = start {
                return Err(CheckpointError::Inconsistent {
                    location: self.checkpoint.to_string(),
                    reason: format!(
                        "source `{}` goes back from offset {start} to no offset",
                        self.name
                    ),
                }
                .into());
            }
            return Ok((BatchId(0), Vec::new()));
        }
        let Some(end_log) = log_offset(Some(end)) else {
            return Err(CheckpointError::Corrupt {
                file: format!("offsets entry of source `{}`", self.name),
                line: 1,
                reason: format!("the offset {end} has no numeric `log`"),
            }
            .into());
        };
        if Some(end_log) == log_offset(start) {
            return Ok((BatchId(end_log), Vec::new()));
        }
        let batch = BatchId(end_log);
        let mut files = self.read_entry(&self.log_file(batch.0)).await?;
        // A range of one batch is its log entry. A range over several batches (the files
        // counts tell) is every entry in it: the earlier ones come first.
        let count = |o: Option<&serde_json::Value>| o.and_then(|o| o.get("files")?.as_u64());
        let wanted = count(Some(end)).map(|e| e.saturating_sub(count(start).unwrap_or(0)));
        if let Some(wanted) = wanted.filter(|w| *w > files.len() as u64) {
            let first = log_offset(start).map_or(0, |s| s + 1);
            let mut earlier = Vec::new();
            for meta in self.checkpoint.list(&self.log_dir()).await? {
                let relative = self.checkpoint.relative(&meta.location);
                let name = relative.rsplit('/').next().unwrap_or_default();
                if let Some(n) = paths::entry_number(name).filter(|n| (first..end_log).contains(n))
                {
                    earlier.push(n);
                }
            }
            earlier.sort_unstable();
            let mut all = Vec::new();
            for n in earlier {
                all.extend(self.read_entry(&self.log_file(n)).await?);
            }
            all.append(&mut files);
            if all.len() as u64 != wanted {
                return Err(CheckpointError::Inconsistent {
                    location: self.checkpoint.to_string(),
                    reason: format!(
                        "source `{}`: the range from {} to {end} holds {wanted} files, but its log \
                         entries list {} (older entries are folded into a compact entry)",
                        self.name,
                        start.map_or_else(|| "the start".to_string(), ToString::to_string),
                        all.len()
                    ),
                }
                .into());
            }
            files = all;
        }
        Ok((batch, files))
    }

    async fn read_files(
        &self,
        batch: BatchId,
        files: &[LoggedFile],
        columns: Option<&[String]>,
    ) -> Result<BatchInput, SourceError> {
        self.check_times_kept(batch, files)?;
        let reader = self.batch_reader(columns)?;
        let paths = files
            .iter()
            .map(|f| (f.path.clone(), Some(f.clone())))
            .collect();
        read_into_table(&self.data, paths, reader, Some(batch)).await
    }

    /// Refuses batch `batch` where several of its logged `files` on local disk have other
    /// modification times now, at their logged sizes (a copy that did not keep times, a `tar`
    /// restore, which keeps them to the second), naming every one with the `touch -d` that
    /// puts its time back: reading names the first only, one a run (walk 73). One such file
    /// is left to the read, which names it.
    fn check_times_kept(&self, batch: BatchId, files: &[LoggedFile]) -> Result<(), SourceError> {
        let Some(root) = self.data.local_root() else {
            return Ok(());
        };
        let mut lost = Vec::new();
        for logged in files {
            let Some(meta) = self.data.local_meta(&logged.path) else {
                continue;
            };
            let now = LoggedFile::described(logged.path.clone(), &meta);
            if let Some(change) = logged.change(&now, true)
                && let Some(time) = logged.time_to_put_back(&now, true)
            {
                lost.push((root.join(&logged.path).display().to_string(), time, change));
            }
        }
        if lost.len() < 2 {
            return Ok(());
        }
        let command = lost
            .iter()
            .map(|(file, time, _)| format!("touch -d {time} {}", crate::vocab::shell_word(file)))
            .collect::<Vec<_>>()
            .join(" && ");
        Err(SourceError::FileChanged {
            file: format!(
                "{} (and {} more files of the batch)",
                lost[0].0,
                lost.len() - 1
            ),
            batch,
            change: lost[0].2.clone(),
            checkpoint: None,
            touch: Some(command),
        })
    }

    /// How a batch reads the source's files: its columns `columns` (all where `None`).
    fn batch_reader(&self, columns: Option<&[String]>) -> Result<Reader, SourceError> {
        let schema = self.schema.clone().ok_or_else(|| SourceError::Read {
            file: self.data.to_string(),
            reason: "the source has no schema yet".into(),
        })?;
        let projection = columns
            .map(|names| {
                names
                    .iter()
                    .map(|name| {
                        schema.index_of(name).map_err(|_| SourceError::Read {
                            file: self.data.to_string(),
                            reason: format!("the query reads a column `{name}` the source lacks"),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(reader(&self.config, schema, projection))
    }

    /// The files `files` that batch `batch` logged, as a table that reads them while the
    /// query runs, over `partitions` partitions; only `columns` where given.
    fn scan_files(
        &self,
        batch: BatchId,
        files: Vec<LoggedFile>,
        columns: Option<&[String]>,
        partitions: usize,
    ) -> Result<BatchScan, SourceError> {
        self.check_times_kept(batch, &files)?;
        let reader = Arc::new(self.batch_reader(columns)?);
        let schema = reader.output_schema()?;
        // The parts' remote forms: written once, when a batch that goes to workers first asks
        // for one; each part adds its file.
        let shared: Arc<std::sync::OnceLock<Option<serde_json::Value>>> = Arc::default();
        let folder: Arc<str> = self.config.path.as_str().into();
        crate::progress::LIVE.expect_files(files.len() as u64);
        let parts = files
            .into_iter()
            .map(|logged| {
                let location = self.data.clone();
                let reader = Arc::clone(&reader);
                let (name, size) = (logged.path.clone(), logged.size);
                let remote: RemoteForm = {
                    let (shared, folder) = (Arc::clone(&shared), Arc::clone(&folder));
                    let (reader, logged) = (Arc::clone(&reader), logged.clone());
                    Arc::new(move || {
                        let shared = shared.get_or_init(|| {
                            RemoteFile::of(&folder, &reader, batch)
                                .and_then(|r| serde_json::to_value(r).ok())
                        });
                        Some(Arc::new(RemoteFile::with_file(shared.as_ref()?, &logged)))
                    })
                };
                let read: ReadPart = Arc::new(move || {
                    let (location, reader, logged) =
                        (location.clone(), Arc::clone(&reader), logged.clone());
                    Box::pin(async move {
                        let file = logged.path.clone();
                        read_file(&location, file, Some(logged), reader, Some(batch)).await
                    })
                });
                (name, size, read, Some(remote))
            })
            .collect();
        let (table, counts) = StreamedTable::new(schema, parts, partitions);
        Ok(BatchScan::Streamed {
            table: Arc::new(table),
            counts,
        })
    }
}

/// How a `sluice worker` reads one file of a batch (`kind: "files"` of a part's remote form,
/// `source::scan`): the source's folder as the pipeline gives it, the file as the source's log
/// holds it, and how its rows are read. The worker opens the folder with its own credentials
/// (the environment's, as the driver's are).
#[derive(Debug, Serialize, Deserialize)]
struct RemoteFile {
    kind: String,
    path: String,
    batch: u64,
    format: String,
    /// The source's schema as an Arrow IPC stream (hex).
    schema: String,
    projection: Option<Vec<usize>>,
    on_error: String,
    rescued: Option<String>,
    epoch_unit: Option<String>,
    delimiter: u8,
    /// Whether a CSV file's first line is its header ([`Reader::header`]).
    #[serde(default = "header_by_default")]
    header: bool,
    #[serde(default)]
    null_value: Option<String>,
    #[serde(default)]
    file: Option<LoggedFile>,
    /// Whether the schema was inferred ([`Reader::inferred`]).
    #[serde(default)]
    inferred: bool,
    /// The files' text encoding ([`Reader::encoding`]), by its name.
    #[serde(default)]
    encoding: Option<String>,
    /// The CSV quote escape ([`Reader::escape`]).
    #[serde(default)]
    escape: Option<u8>,
}

/// A part sent by an older Sluice names no `header`: its CSV files had one.
fn header_by_default() -> bool {
    true
}

impl RemoteFile {
    /// The parts of a batch's files that all share: the folder `path`, read by `reader`.
    /// `None` where the schema does not encode (no part is then sent elsewhere).
    fn of(path: &str, reader: &Reader, batch: BatchId) -> Option<Self> {
        let schema = crate::source::scan::schema_to_ipc(&reader.schema).ok()?;
        // A worker runs in a folder of its own: a relative local path is this process's.
        let path = match std::path::Path::new(path) {
            local if !path.contains("://") && local.is_relative() => std::env::current_dir()
                .ok()?
                .join(local)
                .to_str()?
                .to_string(),
            _ => path.to_string(),
        };
        Some(Self {
            kind: KIND.name.to_string(),
            path,
            batch: batch.0,
            format: reader.format.as_str().to_string(),
            schema: hex::encode(schema),
            projection: reader.projection.clone(),
            on_error: reader.on_error.as_str().to_string(),
            rescued: reader.rescued.clone(),
            epoch_unit: reader.epoch_unit.map(|u| u.as_str().to_string()),
            delimiter: reader.delimiter,
            header: reader.header,
            null_value: reader.null_value.clone(),
            file: None,
            inferred: reader.inferred,
            encoding: reader.encoding.map(|e| e.name().to_string()),
            escape: reader.escape,
        })
    }

    /// The remote form of file `logged`, from `shared`, the remote form without a file.
    fn with_file(shared: &serde_json::Value, logged: &LoggedFile) -> serde_json::Value {
        let mut value = shared.clone();
        value["file"] = serde_json::to_value(logged).unwrap_or_default();
        value
    }
}

/// How this process reads the file a part's remote form `value` names (see [`RemoteFile`]).
pub(super) fn remote_read(value: &serde_json::Value) -> Result<ReadPart, String> {
    let remote: RemoteFile =
        RemoteFile::deserialize(value).map_err(|e| format!("a file part: {e}"))?;
    let bytes = hex::decode(&remote.schema).map_err(|e| format!("a file part's schema: {e}"))?;
    let schema = crate::source::scan::schema_from_ipc(&bytes)?;
    let keyword = |what: &str, text: &str| format!("a file part's {what} `{text}` is unknown");
    let reader = Arc::new(Reader {
        format: FileFormat::from_str(&remote.format)
            .map_err(|_| keyword("format", &remote.format))?,
        schema,
        projection: remote.projection,
        on_error: OnError::from_str(&remote.on_error)
            .map_err(|_| keyword("on_error", &remote.on_error))?,
        rescued: remote.rescued,
        epoch_unit: remote
            .epoch_unit
            .map(|u| EpochUnit::from_str(&u).map_err(|_| keyword("epoch_unit", &u)))
            .transpose()?,
        delimiter: remote.delimiter,
        header: remote.header,
        null_value: remote.null_value,
        inferred: remote.inferred,
        encoding: match &remote.encoding {
            Some(name) => Some(
                encoding_rs::Encoding::for_label_no_replacement(name.as_bytes())
                    .ok_or_else(|| keyword("encoding", name))?,
            ),
            None => None,
        },
        escape: remote.escape,
    });
    let logged = remote.file.ok_or("a file part names no file")?;
    let location = remote_folder(&remote.path)?;
    let batch = BatchId(remote.batch);
    Ok(Arc::new(move || {
        let (location, reader, logged) = (location.clone(), Arc::clone(&reader), logged.clone());
        Box::pin(async move {
            let file = logged.path.clone();
            read_file(&location, file, Some(logged), reader, Some(batch)).await
        })
    }))
}

/// The source folder `path`, opened once per process (an object store's client is reused).
fn remote_folder(path: &str) -> Result<Location, String> {
    static OPEN: std::sync::OnceLock<std::sync::Mutex<HashMap<String, Location>>> =
        std::sync::OnceLock::new();
    let mut open = OPEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(location) = open.get(path) {
        return Ok(location.clone());
    }
    let location = Location::open(path, false, false, None).map_err(|e| e.to_string())?;
    open.insert(path.to_string(), location.clone());
    Ok(location)
}

pub use crate::storage::hidden;

/// Where `location` is a Spark file sink's folder (it has a `_spark_metadata` log): the
/// files its log commits, as paths below the folder; `None` where it has no such log. Spark
/// writes a batch's files into the folder before its log commits them, so a batch that
/// failed leaves files there that no batch committed; Spark's readers read only the logged
/// ones (`MetadataLogFileIndex`), and so do Sluice's sources and tables.
///
/// Errors: the store's; a log entry that does not parse, named.
async fn spark_committed(location: &Location) -> Result<Option<HashSet<String>>, SourceError> {
    use crate::checkpoint::spark_sink::{self, SinkLogError};
    let log = spark_sink::read(location, false)
        .await
        .map_err(|e| match e {
            SinkLogError::Storage(e) => SourceError::Storage(e),
            e @ SinkLogError::Corrupt { .. } => SourceError::Read {
                file: crate::secret::redact_url(&format!("{location}/{}", spark_sink::FOLDER)),
                reason: format!(
                    "{e}: the folder is a Spark file sink's, and its log says which of its files \
                 Spark committed; put the entry back as Spark wrote it, or read the files \
                 from a folder without the log"
                ),
            },
        })?;
    Ok(log.map(|log| {
        log.live
            .keys()
            .flat_map(|logged| spark_sink::below_folder(logged))
            .collect()
    }))
}

/// Refuses a folder that is a Delta table's (it has a `_delta_log`), as a source or a table
/// (whose error names which, once): its
/// Parquet files include those the table's log removed (a rewind, OPTIMIZE, an overwrite, a
/// write that failed), which a files source would read as rows (walk 102: a count over a
/// table 2.4 times its rows, no word said). Databricks refuses the same read ("A transaction
/// log for Delta was found").
///
/// Errors: the store's, listing `_delta_log`.
async fn refuse_delta_table(location: &Location) -> Result<(), String> {
    let logged = location
        .list(DELTA_LOG)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .any(|meta| {
            location
                .relative(&meta.location)
                .strip_prefix(&format!("{DELTA_LOG}/"))
                .is_some_and(|name| name.ends_with(".json") || name.contains(".checkpoint"))
        });
    if !logged {
        return Ok(());
    }
    Err(format!(
        "{} is a Delta table's folder (it has `{DELTA_LOG}`), and its Parquet files \
         include ones the table's log removed (rewinds, OPTIMIZE, overwrites, writes that \
         failed), which a files source would read as rows; its rows are what a Delta reader \
         reads (deltalake, Spark, DuckDB's `delta_scan`). To feed one pipeline's output to \
         another, write it with a files sink (`kind: files`), whose folder a files source reads \
         committed file by committed file",
        crate::secret::redact_url(&location.to_string()),
    ))
}

/// A Delta table's log folder.
const DELTA_LOG: &str = "_delta_log";

/// Says that `left_out` (paths below `location`, a Spark file sink's folder) are not read.
fn say_spark_left_out(reader: &str, location: &Location, left_out: &[&str]) {
    if left_out.is_empty() {
        return;
    }
    tracing::warn!(
        "{reader}: {} is a Spark file sink's folder (it has `_spark_metadata`), and only the \
         files its log commits are read, as Spark reads them: {} file(s) there no Spark batch \
         committed (written by a batch that failed, or put there by hand) are left out, e.g. \
         {}",
        crate::secret::redact_url(&location.to_string()),
        left_out.len(),
        left_out[0]
    );
}

/// Opens a source's folder, which must exist.
fn open_folder(
    name: &str,
    config: &FilesConfig,
    hook: Option<&StoreHook>,
    sync: bool,
) -> Result<Location, SourceError> {
    Location::open(&config.path, false, sync, hook).map_err(|e| {
        // A pattern (`in/*.json`), as Spark's and DuckDB's readers take: a folder here.
        let reason = if config.path.contains(['*', '?', '[']) {
            let folder = config
                .path
                .split(['*', '?', '['])
                .next()
                .unwrap_or_default()
                .rsplit_once('/')
                .map_or(
                    ".",
                    |(folder, _)| if folder.is_empty() { "/" } else { folder },
                );
            format!(
                "`sources.{name}.path` ({}) is a pattern, and a source's path names a folder: \
                 write the folder (`path: {folder}`), and the pattern of the file names as \
                 `path_glob_filter: \"{}\"` (Spark's `pathGlobFilter`). Every file in the \
                 folder, and in the folders below it, whose name matches is read (names \
                 starting with `.` or `_` aside)",
                config.path,
                config
                    .path
                    .rsplit_once('/')
                    .map_or(config.path.as_str(), |(_, name)| name)
            )
        } else if e.to_string().contains(crate::storage::HALF_GIVEN) {
            // Credentials half given: the path is not what to fix.
            e.to_string()
        } else {
            format!("{e}; create the folder or fix `sources.{name}.path`")
        };
        SourceError::Config {
            source_name: name.to_string(),
            reason,
        }
    })
}

/// The encoding `label` names: a WHATWG Encoding Standard label (`windows-1252`, `latin1`,
/// `utf-16le`), or one written with a hyphen or an underscore those labels lack (`latin-1`,
/// `Latin_1`, as Python and DuckDB write it).
fn encoding_of(label: &str) -> Option<&'static encoding_rs::Encoding> {
    let label = label.trim();
    // Not the standard's "replacement" encoding (`iso-2022-kr`), which reads nothing.
    encoding_rs::Encoding::for_label_no_replacement(label.as_bytes()).or_else(|| {
        let plain: String = label.chars().filter(|c| !matches!(c, '-' | '_')).collect();
        encoding_rs::Encoding::for_label_no_replacement(plain.as_bytes())
    })
}

/// How the files of a source configured as `config`, with the columns `schema`, are read: the
/// columns of `projection` (indices into `schema`), all where `None`.
fn reader(config: &FilesConfig, schema: SchemaRef, projection: Option<Vec<usize>>) -> Reader {
    Reader {
        format: config.format,
        schema,
        projection,
        on_error: config.on_error,
        rescued: config.rescued_data_column.clone(),
        epoch_unit: config.epoch_unit,
        delimiter: config.csv_delimiter(),
        header: config.header.unwrap_or(true),
        null_value: config.null_value.clone(),
        inferred: config.declared_columns().is_none(),
        encoding: config.text_encoding(),
        escape: config.csv_escape(),
    }
}

/// The declared schema of source or table `name`, with its rescued-data column; `None` where
/// its columns are inferred. An `epoch_unit` needs a timestamp column to read numbers into.
async fn declared_schema(
    name: &str,
    config: &FilesConfig,
) -> Result<Option<SchemaRef>, SourceError> {
    let Some(columns) = config.declared_columns() else {
        return Ok(None);
    };
    if columns.is_empty() {
        return Err(SourceError::Config {
            source_name: name.to_string(),
            reason: "its `schema:` (or `columns:`) declares no columns: list at least one, or \
                     remove it to infer the columns from the files"
                .into(),
        });
    }
    let schema = crate::format::schema_from_sql_types(&columns)
        .await
        .map_err(|e| SourceError::Config {
            source_name: name.to_string(),
            reason: e.to_string(),
        })?;
    if let Some(unit) = config.epoch_unit {
        crate::format::check_epoch_unit(unit, &schema).map_err(|reason| SourceError::Config {
            source_name: name.to_string(),
            reason,
        })?;
    }
    with_rescued(name, config, &schema).map(Some)
}

/// `schema` as the query reads it: decimals in 128 bits (see
/// [`super::infer::decimals_in_128_bits`]), and the source's rescued-data column after its
/// columns, where it has one.
fn with_rescued(
    name: &str,
    config: &FilesConfig,
    schema: &SchemaRef,
) -> Result<SchemaRef, SourceError> {
    let schema = &super::infer::decimals_in_128_bits(schema);
    let Some(rescued) = &config.rescued_data_column else {
        return Ok(Arc::clone(schema));
    };
    if config.format == crate::format::FileFormat::Csv {
        return Err(SourceError::Config {
            source_name: name.to_string(),
            reason: "`rescued_data_column` is for JSON and Parquet sources: a CSV file's header \
                     must name the schema's columns, so a CSV row has no unknown fields"
                .into(),
        });
    }
    if schema.column_with_name(rescued).is_some() {
        return Err(SourceError::Config {
            source_name: name.to_string(),
            reason: format!(
                "`rescued_data_column: {rescued}` names a column the source already has; \
                 choose another name"
            ),
        });
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(rescued, DataType::Utf8, true));
    Ok(Arc::new(Schema::new(fields)))
}

/// The schema of the files `files` (paths under `location`, in path order) of a source read as
/// `config` says: the files' columns, inferred from as many of the first files as it takes to
/// type them all (see [`super::infer`]), then the partition folders' columns, typed from every
/// path of `files`. `None` while no file has a column.
async fn infer_from(
    location: &Location,
    files: &[String],
    config: &FilesConfig,
) -> Result<Option<SchemaRef>, SourceError> {
    let mut sample = Sample::new(config.format);
    for file in files {
        if !sample.wants_more() {
            break;
        }
        let shown = format!("{location}/{file}");
        let vanished = || SourceError::Read {
            file: shown.clone(),
            reason: "the file vanished while being read".into(),
        };
        // JSON lines and CSV: the first `SAMPLE_BYTES` of a larger file, cut after its last
        // whole line, as DuckDB samples a file's first rows (reading a large file whole took
        // a dozen times its size in memory). Parquet (its schema is in its footer) and a
        // compressed file (which a prefix would cut mid-stream) are read whole, the latter's
        // text decompressed only as far as the sample goes.
        let limit = super::infer::SAMPLE_BYTES;
        let (mut bytes, size) = location
            .get_prefix(&location.path(file), limit)
            .await?
            .ok_or_else(vanished)?;
        let text = matches!(config.format, FileFormat::Json | FileFormat::Csv);
        let compressed = text && super::decode::looks_compressed(file, &bytes);
        let whole = size <= limit || !text || compressed;
        let mut first_line_only = false;
        if size > limit && whole {
            bytes = location
                .get(&location.path(file))
                .await?
                .ok_or_else(vanished)?;
        } else if !whole {
            // The lines the sample needs whole: a CSV file's header and first record, or a
            // JSON file's first line.
            let needed = if config.format == FileFormat::Csv && config.header != Some(false) {
                2
            } else {
                1
            };
            let ends = |text: &[u8]| {
                text.iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i)
                    .take(needed)
                    .collect::<Vec<_>>()
            };
            if ends(&bytes).len() == needed {
                let end = bytes.iter().rposition(|b| *b == b'\n').expect("a line end");
                bytes = bytes.slice(..=end);
            } else {
                // A first line (record) longer than the sample: read on to its end (walks
                // 117, 121: the file was said to hold no value, and every run went on without
                // it, exit 0).
                first_line_only = true;
                let mut more = limit;
                loop {
                    more = more.saturating_mul(2);
                    let (longer, _) = location
                        .get_prefix(&location.path(file), more)
                        .await?
                        .ok_or_else(vanished)?;
                    if let Some(end) = ends(&longer).get(needed - 1) {
                        bytes = longer.slice(..=*end);
                        break;
                    }
                    if longer.len() as u64 >= size || (longer.len() as u64) < more {
                        bytes = longer;
                        break;
                    }
                }
            }
        }
        if size > limit {
            tracing::warn!(
                "inferring the columns of {shown} ({} MiB) from {}; a value further on that \
                 does not fit the type inferred stops its batch, naming the file and line. A \
                 declared `schema:` skips this",
                size >> 20,
                if compressed {
                    format!(
                        "its first {} MiB of text, decompressed (the file is read once more \
                         before its batch)",
                        limit >> 20
                    )
                } else if first_line_only {
                    format!("its first line, longer than {} MiB", limit >> 20)
                } else if whole {
                    "all of it, which reads the file once more before its batch".to_string()
                } else {
                    format!("its first {} MiB of lines", limit >> 20)
                }
            );
        }
        let inferred = super::decode::infer_schema_sampled(
            &shown,
            &bytes,
            config.format,
            config.on_error,
            config.csv_delimiter(),
            config.null_value.as_deref(),
            config.text_encoding(),
            text.then_some(limit),
            config.csv_escape(),
        )?;
        sample.add(&shown, bytes.len() as u64, inferred)?;
    }
    let mut partitions: Vec<(String, Vec<Option<String>>)> = Vec::new();
    for file in files {
        for (key, value) in hive::partition_values(file) {
            match partitions.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value),
                None => partitions.push((key, vec![value])),
            }
        }
    }
    let partitions = partitions
        .into_iter()
        .map(|(key, values)| {
            let data_type = hive::infer_type(values.iter().map(Option::as_deref));
            Field::new(key, data_type, true)
        })
        .collect();
    Ok(sample.finish(partitions))
}

/// Reads and decodes file `file` of `location`; a file given with what batch `batch` logged
/// of it must still hold the logged bytes, and only those are read.
async fn read_file(
    location: &Location,
    file: String,
    logged: Option<LoggedFile>,
    reader: Arc<Reader>,
    batch: Option<BatchId>,
) -> Result<super::Decoded, SourceError> {
    let path = location.path(&file);
    let shown = format!("{location}/{file}");
    let (mut bytes, meta) = location
        .get_with_meta(&path)
        .await?
        .ok_or_else(|| match batch {
            Some(batch) => SourceError::FileGone {
                file: shown.clone(),
                batch,
                checkpoint: None,
            },
            None => SourceError::Read {
                file: shown.clone(),
                reason: "the file vanished while being read".into(),
            },
        })?;
    // A batch reads exactly the bytes it logged: the file must still be what it logged, and
    // only its logged size is read.
    if let (Some(logged), Some(batch)) = (logged, batch) {
        let now = LoggedFile {
            size: bytes.len() as u64,
            ..LoggedFile::described(file.clone(), &meta)
        };
        let local = location.local_root().is_some();
        if let Some(change) = logged.change(&now, local) {
            return Err(SourceError::FileChanged {
                touch: logged
                    .time_to_put_back(&now, local)
                    .map(|time| format!("touch -d {time} {}", crate::vocab::shell_word(&shown))),
                file: shown,
                batch,
                change,
                checkpoint: None,
            });
        }
        let size = usize::try_from(logged.size).unwrap_or(usize::MAX);
        bytes = bytes.slice(..size.min(bytes.len()));
    }
    // A file changed a moment ago whose last line has no ending may be one its writer is still
    // writing: its last row would be read cut short (`3.5` as `3`), and what comes after is
    // never read (the file is read once).
    let age = chrono::Utc::now() - meta.last_modified;
    if super::decode::ends_mid_line(&file, &bytes, reader.format) && age.num_seconds() < 60 {
        tracing::warn!(
            "{shown}: its last line has no line ending and the file changed {}s ago: if its \
             writer is still writing it, its last row is read cut short and what the writer \
             adds later is never read. Have files written under a hidden name (`.name.tmp`) \
             and renamed into place, or copied in whole, or set the source's `min_file_age` \
             (`min_file_age: 30s`) to leave a file until it has not changed for that long",
            age.num_seconds().max(0)
        );
    }
    let path = file.clone();
    let size = bytes.len() as u64;
    let decoded = tokio::task::spawn_blocking(move || reader.decode(&shown, &path, &bytes))
        .await
        .map_err(|e| SourceError::Read {
            file,
            reason: format!("decoding panicked: {e}"),
        })??;
    crate::progress::LIVE.read_file(decoded.rows, size);
    Ok(decoded)
}

/// Reads files of `location` into a table with one partition per file; a file given with what
/// batch `batch` logged of it must still hold the logged bytes.
async fn read_into_table(
    location: &Location,
    files: Vec<(String, Option<LoggedFile>)>,
    reader: Reader,
    batch: Option<BatchId>,
) -> Result<BatchInput, SourceError> {
    let out_schema = reader.output_schema()?;
    let reader = Arc::new(reader);
    crate::progress::LIVE.expect_files(files.len() as u64);
    let part_names: Vec<String> = files.iter().map(|(file, _)| file.clone()).collect();
    let decoded: Vec<super::Decoded> = futures::stream::iter(files)
        .map(|(file, logged)| read_file(location, file, logged, Arc::clone(&reader), batch))
        .buffered(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .try_collect()
        .await?;
    let rows = decoded.iter().map(|d| d.rows).sum();
    let skipped = decoded.iter().map(|d| d.skipped).sum();
    let unknown_rows = decoded.iter().map(|d| d.unknown_rows).sum();
    let unknown_fields = decoded
        .iter()
        .flat_map(|d| d.unknown_fields.iter().cloned())
        .collect();
    let files = decoded.len() as u64;
    let mut partitions: Vec<_> = decoded.into_iter().map(|d| d.batches).collect();
    if partitions.is_empty() {
        partitions.push(Vec::new());
    }
    Ok(BatchInput {
        schema: out_schema,
        partitions,
        rows,
        skipped,
        lost: 0,
        unknown_rows,
        unknown_fields,
        files,
        part_names,
    })
}

/// Reads a static table once: every file of a folder, or a single file.
async fn load_table(
    name: &str,
    config: &FilesConfig,
    hook: Option<&StoreHook>,
) -> Result<Arc<MemTable>, SourceError> {
    let config_err = |reason: String| SourceError::Config {
        source_name: name.to_string(),
        // A table's path names a file or a folder.
        reason: format!(
            "{}; fix `tables.{name}.path`",
            reason.replacen("no such folder", "no such file or folder", 1)
        ),
    };
    let local = std::path::Path::new(&config.path);
    let (folder, only) = if !config.path.contains("://") && local.is_file() {
        let parent = local.parent().filter(|p| !p.as_os_str().is_empty());
        let folder = parent.map_or(".".to_string(), |p| p.display().to_string());
        let file = local.file_name().map(|f| f.to_string_lossy().to_string());
        (folder, file)
    } else {
        (config.path.clone(), None)
    };
    let mut location =
        Location::open(&folder, false, false, hook).map_err(|e| config_err(e.to_string()))?;
    let one_file = only.is_some();
    let mut files: Vec<(String, Option<LoggedFile>)> = match only {
        Some(file) => vec![(file, None)],
        None => location
            .list_visible(hidden)
            .await?
            .into_iter()
            .map(|m| (location.relative(&m.location), None))
            .filter(|(path, _)| config.admits(path))
            .collect(),
    };
    if !one_file {
        refuse_delta_table(&location).await.map_err(config_err)?;
    }
    if !one_file && let Some(committed) = spark_committed(&location).await? {
        let left_out: Vec<&str> = files
            .iter()
            .map(|(path, _)| path.as_str())
            .filter(|path| !committed.contains(*path))
            .collect();
        say_spark_left_out(&format!("table `{name}`"), &location, &left_out);
        files.retain(|(path, _)| committed.contains(path));
    }
    // On an object store a table's path may name one object, as a local path may name one
    // file: it lists as an empty prefix, and is read as the only file of its folder.
    if files.is_empty()
        && location.is_an_object().await
        && let Some((folder, file)) = config.path.trim_end_matches('/').rsplit_once('/')
    {
        location =
            Location::open(folder, false, false, hook).map_err(|e| config_err(e.to_string()))?;
        files = vec![(file.to_string(), None)];
    }
    // With its columns declared, a table without files reads as empty (a dimension not
    // filled yet); without, there is nothing to infer them from.
    if files.is_empty() && config.declared_columns().is_some() {
        tracing::warn!(
            "table `{name}` ({}) has no files yet: it reads as empty, with its declared columns",
            config.path
        );
    }
    if files.is_empty() && config.declared_columns().is_none() {
        return Err(config_err(
            "the table has no files and no declared schema (declare `schema:` to read it as \
             empty)"
                .into(),
        ));
    }
    let schema = match declared_schema(name, config).await? {
        Some(schema) => schema,
        None => {
            let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
            let inferred = infer_from(&location, &paths, config)
                .await?
                .ok_or_else(|| config_err("the table's files hold no column".into()))?;
            with_rescued(name, config, &inferred)?
        }
    };
    read_into_table(&location, files, reader(config, schema, None), None)
        .await?
        .into_table()
        .map_err(|e| SourceError::Read {
            file: location.to_string(),
            reason: e.to_string(),
        })
}

/// Reads one entry of a source's log (`v1`, then one JSON line per file).
async fn read_log_entry(checkpoint: &Location, file: &str) -> Result<Vec<LoggedFile>, SourceError> {
    let bytes = checkpoint
        .get(&checkpoint.path(file))
        .await?
        .ok_or_else(|| CheckpointError::Inconsistent {
            location: checkpoint.to_string(),
            reason: format!("the source log {file} is missing"),
        })?;
    let text = String::from_utf8_lossy(&bytes);
    let corrupt = |line: usize, reason: String| CheckpointError::Corrupt {
        file: file.to_string(),
        line,
        reason,
    };
    if !text.ends_with('\n') {
        return Err(corrupt(text.lines().count().max(1), "truncated".into()).into());
    }
    let mut lines = text.lines();
    if lines.next() != Some("v1") {
        return Err(corrupt(1, "expected `v1`".into()).into());
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| corrupt(i + 2, e.to_string()).into())
        })
        .collect()
}

/// The end offset that batch `batch` of files source `name` had, rebuilt from the source's log
/// in the checkpoint at `checkpoint` (for `sluice repair`, when `offsets/N` is lost): the
/// newest log entry at or below the batch, and the number of files read up to it. `Null` when
/// the source had read nothing by then.
async fn rebuild_offset(
    checkpoint: &Location,
    name: &str,
    batch: BatchId,
) -> Result<serde_json::Value, SourceError> {
    let dir = paths::source_dir(name);
    let (mut entries, mut compacts) = (Vec::new(), Vec::new());
    for meta in checkpoint.list(&dir).await? {
        let relative = checkpoint.relative(&meta.location);
        let file = relative.rsplit('/').next().unwrap_or_default();
        if let Some(n) = paths::entry_number(file) {
            entries.push(n);
        } else if let Some(k) = file.strip_suffix(".compact").and_then(paths::entry_number) {
            compacts.push(k);
        }
    }
    if let Some(k) = compacts.iter().find(|k| **k > batch.0) {
        return Err(CheckpointError::Inconsistent {
            location: checkpoint.to_string(),
            reason: format!(
                "{dir}/{k}.compact folds batches after {batch} together; the offset of batch {batch} cannot be rebuilt"
            ),
        }
        .into());
    }
    let compact = compacts.into_iter().max();
    let mut seen = BTreeSet::new();
    if let Some(k) = compact {
        for file in read_log_entry(checkpoint, &format!("{dir}/{k}.compact")).await? {
            seen.insert(file.path);
        }
    }
    let mut log = compact;
    entries.sort_unstable();
    for n in entries
        .into_iter()
        .filter(|n| *n <= batch.0 && compact.is_none_or(|k| *n > k))
    {
        for file in read_log_entry(checkpoint, &format!("{dir}/{n}")).await? {
            seen.insert(file.path);
        }
        log = Some(n);
    }
    Ok(match log {
        Some(log) => json!({ "log": log, "files": seen.len() as u64 }),
        None => serde_json::Value::Null,
    })
}

/// A source's schema without touching a checkpoint: the declared one, or one inferred from its
/// first file (`None` when there is no file yet).
async fn peek_schema(name: &str, config: &FilesConfig) -> Result<Option<SchemaRef>, SourceError> {
    if let Some(schema) = declared_schema(name, config).await? {
        return Ok(Some(schema));
    }
    let location = open_folder(name, config, None, false)?;
    let files: Vec<String> = location
        .list_visible(hidden)
        .await?
        .into_iter()
        .map(|meta| location.relative(&meta.location))
        .filter(|path| config.admits(path))
        .collect();
    match infer_from(&location, &files, config).await? {
        Some(schema) => with_rescued(name, config, &schema).map(Some),
        None => Ok(None),
    }
}

fn log_offset(offset: Option<&serde_json::Value>) -> Option<u64> {
    offset
        .and_then(|o| o.get("log"))
        .and_then(serde_json::Value::as_u64)
}

#[async_trait]
impl Source for FilesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    async fn resolve_schema(&mut self) -> Result<Option<SchemaRef>, SourceError> {
        if self.schema.is_some() {
            return Ok(self.schema.clone());
        }
        // Not from a file still being written (`min_file_age`): a line cut short, or a Parquet
        // file without its footer yet, would fail the run or pin what it holds so far.
        // (Said where a batch leaves them, not here.)
        let files: Vec<String> = self
            .list_data()
            .await?
            .into_iter()
            .filter(|f| self.young_for(f).is_none())
            .map(|f| f.path)
            .collect();
        let Some(schema) = infer_from(&self.data, &files, &self.config).await? else {
            if !files.is_empty() && !self.said_uninferable {
                self.said_uninferable = true;
                tracing::warn!(
                    "source `{}`: {} file(s) in {}, but no value to infer its columns from \
                     (the files are empty, hold only a CSV header or nulls, or every row was \
                     malformed{}): the run waits for one; declare `schema:` to read them now{}",
                    self.name,
                    files.len(),
                    self.data,
                    if self.config.on_error == crate::format::OnError::Skip {
                        " and skipped under `on_error: skip`"
                    } else {
                        ""
                    },
                    if self.config.on_error == crate::format::OnError::Skip {
                        ", or remove `on_error: skip` to see why each row is refused"
                    } else {
                        ""
                    }
                );
            }
            return Ok(None);
        };
        self.pin_schema(&schema).await?;
        // Another run may have pinned one first: theirs wins.
        self.schema = self.declared_or_pinned_schema().await?;
        Ok(self.schema.clone())
    }

    async fn freeze(&mut self) -> Result<(), SourceError> {
        let listed = self.list_data().await?;
        let listed = self.old_enough(listed, true);
        self.unchecked_frozen = true;
        self.frozen = Some(listed);
        self.frozen_next = 0;
        Ok(())
    }

    async fn plan(
        &mut self,
        batch: BatchId,
        start: Option<&serde_json::Value>,
        admission: Admission,
    ) -> Result<Option<serde_json::Value>, SourceError> {
        let files_before = start
            .and_then(|o| o.get("files"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        // Fewer files logged than the batches so far read: an entry of the log is gone, and
        // the files it listed would be taken for new and read again. Where the batch's
        // offsets entry is there, `repair` names the rewind that reads them again once; where
        // it is gone as well, nothing records the batch, and the run says what gets past it
        // (walk 78: it sent to `repair`, which found nothing).
        if (self.seen.len() as u64) < files_before {
            let what = format!(
                "source `{}`: the batches so far read {files_before} files, but its log ({}/) \
                 lists {}: an entry of it was deleted",
                self.name,
                self.log_dir(),
                self.seen.len()
            );
            let repairable = crate::checkpoint::list_numbers(
                &self.checkpoint,
                crate::checkpoint::paths::OFFSETS,
            )
            .await
            .map_or(true, |planned| {
                planned.iter().any(|n| {
                    *n < batch.0
                        && !self.logged.contains(n)
                        && self.compacted_to.is_none_or(|k| *n > k)
                })
            });
            let location = self.checkpoint.to_string();
            // An entry that lists only files an earlier one lists: copied over the entry it
            // replaced (audit 94a: said as deleted, with only a backup or starting over as
            // ways out). What that batch read is lost, and is read again once by a rewind to
            // the batch before it, which takes the batches after back from the sink too.
            if !repairable && let Some((copy, of)) = self.repeated_entry().await? {
                let spec = crate::vocab::shell_word(&location).to_string();
                let of = match of.as_slice() {
                    [one] => format!("entry {one}"),
                    many => format!(
                        "entries {}",
                        many.iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let before = copy.saturating_sub(1);
                return Err(CheckpointError::Unrepairable {
                    location,
                    problems: format!(
                        "source `{}`: its log entry {}/{copy} lists only files {of} lists \
                         (a copy of it over the entry, or edited), so which files batch {copy} \
                         read is not recorded and they would be read again. Take batch {copy} \
                         and the batches after it back and run them again, their files read \
                         once: `sluice rewind {spec} --to {before}` (where the sink cannot take \
                         its batches back, the rewind says so: put the entry back from a \
                         backup then)",
                        self.name,
                        self.log_dir(),
                    ),
                }
                .into());
            }
            return Err(if repairable {
                CheckpointError::Inconsistent {
                    location,
                    reason: format!("{what}, and the files it listed would be read again"),
                }
            } else {
                CheckpointError::Unrepairable {
                    location,
                    problems: format!(
                        "{what}, and nothing else records which files it listed, which would \
                         be read again. Put the entry back from a backup; or start the \
                         pipeline over on a new checkpoint with a new, empty sink path"
                    ),
                }
            }
            .into());
        }
        // A log entry left by a planning attempt that crashed before `offsets/N`: reuse it.
        let files = if self.logged.contains(&batch.0) {
            let file = self.log_file(batch.0);
            let files = self.read_entry(&file).await?;
            // Its planning may have died before syncing it: on disk before `offsets/N` names it.
            self.checkpoint.sync(&self.checkpoint.path(&file)).await?;
            files
        } else {
            let limit = match admission {
                Admission::SourceLimits => self.config.max_files_per_batch,
                Admission::Unlimited => None,
            };
            let available = self.available(limit).await?;
            if available.is_empty() {
                return Ok(None);
            }
            let mut text = String::from("v1\n");
            for file in &available {
                text.push_str(&crate::checkpoint::to_json(file));
                text.push('\n');
            }
            let path = self.checkpoint.path(&self.log_file(batch.0));
            if !self
                .checkpoint
                .put_if_absent(&path, text.into_bytes())
                .await?
            {
                // Written by a concurrent planner of the same batch: the offsets entry decides
                // which run goes on; use what is logged.
                self.logged.insert(batch.0);
                return Box::pin(self.plan(batch, start, admission)).await;
            }
            self.logged.insert(batch.0);
            available
        };
        for file in &files {
            self.read_by.insert(file.path.clone(), batch.0);
            self.seen.insert(file.path.clone(), file.clone());
        }
        Ok(Some(json!({
            "log": batch.0,
            "files": files_before + files.len() as u64,
        })))
    }

    async fn read(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
    ) -> Result<BatchInput, SourceError> {
        let (batch, files) = self.files_in_range(start, end).await?;
        self.read_files(batch, &files, columns).await
    }

    async fn scan(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
        partitions: usize,
    ) -> Result<BatchScan, SourceError> {
        let (batch, files) = self.files_in_range(start, end).await?;
        self.scan_files(batch, files, columns, partitions)
    }

    async fn commit(&mut self, _batch: BatchId, oldest_kept: BatchId) -> Result<(), SourceError> {
        // Fold old entries into one compact entry once there are as many old entries as kept
        // ones, so the log stays bounded without rewriting the compact entry every batch.
        let old: Vec<u64> = self
            .logged
            .iter()
            .copied()
            .filter(|n| *n < oldest_kept.0)
            .collect();
        let kept = self.logged.len() - old.len();
        let Some(&last_old) = old.last() else {
            return Ok(());
        };
        if old.len() < kept.max(1) {
            return Ok(());
        }
        let mut all: Vec<LoggedFile> = Vec::new();
        let mut previous_compacts = Vec::new();
        for meta in self.checkpoint.list(&self.log_dir()).await? {
            let relative = self.checkpoint.relative(&meta.location);
            let name = relative.rsplit('/').next().unwrap_or_default().to_string();
            // Every compact entry is folded in, the one this compaction rewrites included: a
            // compaction cut short by a crash must not lose what an earlier one held.
            if let Some(k) = name.strip_suffix(".compact").and_then(paths::entry_number) {
                all.extend(self.read_entry(&relative).await?);
                if k != last_old {
                    previous_compacts.push(relative);
                }
            }
        }
        for n in &old {
            all.extend(self.read_entry(&self.log_file(*n)).await?);
        }
        let mut unique = HashSet::new();
        all.retain(|f| unique.insert(f.path.clone()));
        let mut text = String::from("v1\n");
        for file in &all {
            text.push_str(&crate::checkpoint::to_json(file));
            text.push('\n');
        }
        let compact = self
            .checkpoint
            .path(&format!("{}/{last_old}.compact", self.log_dir()));
        self.checkpoint.put(&compact, text.into_bytes()).await?;
        for n in old {
            self.checkpoint
                .delete(&self.checkpoint.path(&self.log_file(n)))
                .await?;
            self.logged.remove(&n);
        }
        for file in previous_compacts {
            self.checkpoint.delete(&self.checkpoint.path(&file)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spark's `shouldFilterOutPathName` (audit 91b: a `._COPYING_` file was read, then read
    /// again once renamed; a partition folder `_k=1` was left out).
    #[test]
    fn names_are_left_out_as_spark_leaves_them_out() {
        for (name, left_out) in [
            (".a.json", true),
            ("_SUCCESS", true),
            ("_spark_metadata", true),
            ("_sluice", true),
            ("_k=1", false),
            ("b.json._COPYING_", true),
            ("b.json", false),
            ("k=1", false),
        ] {
            assert_eq!(hidden(name), left_out, "{name}");
        }
    }

    fn config(path: &std::path::Path) -> FilesConfig {
        FilesConfig {
            path: path.display().to_string(),
            format: FileFormat::Json,
            schema: Some(
                [("id".to_string(), "bigint".to_string())]
                    .into_iter()
                    .collect(),
            ),
            columns: None,
            max_files_per_batch: Some(1),
            on_error: OnError::Fail,
            rescued_data_column: None,
            epoch_unit: None,
            delimiter: None,
            header: None,
            null_value: None,
            encoding: None,
            escape: None,
            path_glob_filter: None,
            min_file_age: None,
        }
    }

    #[tokio::test]
    async fn a_source_without_input_reads_empty_in_every_batch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("in");
        std::fs::create_dir_all(&data).expect("in/");
        let ckpt = checkpoint_in(dir.path());
        let mut source = FilesSource::open("a", &config(&data), &ckpt, None, false)
            .await
            .expect("open");
        let null = serde_json::Value::Null;
        // Batch 0 (no start) and every later batch (start logged as `null`) read nothing.
        for start in [None, Some(&null)] {
            assert_eq!(
                source
                    .plan(BatchId(1), start, Admission::SourceLimits)
                    .await
                    .expect("plan"),
                None
            );
            let input = source.read(start, &null, None).await.expect("read");
            assert_eq!((input.rows, input.files), (0, 0));
            assert_eq!(input.schema.field(0).name(), "id");
        }
        // Input arrives later: the range from "no offset" is its first file.
        std::fs::write(data.join("f0.json"), "{\"id\":1}\n").expect("file");
        let end = source
            .plan(BatchId(2), Some(&null), Admission::SourceLimits)
            .await
            .expect("plan")
            .expect("the new file");
        assert_eq!(end, json!({"log": 2, "files": 1}));
        let input = source.read(Some(&null), &end, None).await.expect("read");
        assert_eq!(input.rows, 1);
        // An offset cannot go back to "no offset".
        assert!(source.read(Some(&end), &null, None).await.is_err());
        // The folder gone while a run of `every` goes on: no input, and the run has said why.
        std::fs::remove_dir_all(&data).expect("gone");
        assert!(!source.said_gone.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(
            source
                .plan(BatchId(3), Some(&end), Admission::SourceLimits)
                .await
                .expect("plan"),
            None
        );
        assert!(source.said_gone.load(std::sync::atomic::Ordering::Relaxed));
    }

    /// A checkpoint location in `dir/ckpt`.
    fn checkpoint_in(dir: &std::path::Path) -> Location {
        Location::open(&dir.join("ckpt").display().to_string(), true, false, None).expect("ckpt")
    }

    #[tokio::test]
    async fn a_schema_pinned_with_a_null_type_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("in");
        std::fs::create_dir_all(&data).expect("in/");
        std::fs::write(data.join("f0.json"), "{\"id\":1,\"note\":\"a\"}\n").expect("file");
        let pin = dir.path().join("ckpt/sources/a");
        std::fs::create_dir_all(&pin).expect("pin folder");
        std::fs::write(
            pin.join("schema"),
            "[{\"name\":\"id\",\"type\":\"Int64\",\"nullable\":true},\
             {\"name\":\"note\",\"type\":\"Null\",\"nullable\":true}]\n",
        )
        .expect("pin");
        let inferred = FilesConfig {
            schema: None,
            ..config(&data)
        };
        let err = FilesSource::open("a", &inferred, &checkpoint_in(dir.path()), None, false)
            .await
            .expect_err("a Null column reads every value as null")
            .to_string();
        assert!(
            err.contains("column `note` as Null") && err.contains("declare `schema:`"),
            "{err}"
        );
        // A declared schema is the way out.
        FilesSource::open("a", &config(&data), &checkpoint_in(dir.path()), None, false)
            .await
            .expect("declared");
    }

    #[tokio::test]
    async fn a_compaction_cut_short_by_a_crash_forgets_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("in");
        std::fs::create_dir_all(&data).expect("in/");
        for n in 0..4 {
            std::fs::write(data.join(format!("f{n}.json")), "{\"id\":1}\n").expect("file");
        }
        let ckpt = checkpoint_in(dir.path());
        let config = config(&data);
        let mut source = FilesSource::open("a", &config, &ckpt, None, false)
            .await
            .expect("open");
        let mut start = None;
        for b in 0..4 {
            let end = source
                .plan(BatchId(b), start.as_ref(), Admission::SourceLimits)
                .await
                .expect("plan")
                .expect("a new file per batch");
            start = Some(end);
        }
        let entry_3 = std::fs::read(dir.path().join("ckpt/sources/a/3")).expect("entry 3");
        // Everything before batch 4 folds into 3.compact ...
        source
            .commit(BatchId(3), BatchId(4))
            .await
            .expect("compact");
        assert!(dir.path().join("ckpt/sources/a/3.compact").exists());
        assert!(!dir.path().join("ckpt/sources/a/3").exists());
        // ... and a crash had left entry 3 behind: the next compaction rewrites 3.compact.
        std::fs::write(dir.path().join("ckpt/sources/a/3"), entry_3).expect("restore");
        let mut source = FilesSource::open("a", &config, &ckpt, None, false)
            .await
            .expect("reopen");
        source
            .commit(BatchId(4), BatchId(4))
            .await
            .expect("compact again");
        let mut source = FilesSource::open("a", &config, &ckpt, None, false)
            .await
            .expect("reopen");
        assert_eq!(source.seen.len(), 4, "every file read stays known");
        let next = source
            .plan(BatchId(4), start.as_ref(), Admission::SourceLimits)
            .await
            .expect("plan");
        assert_eq!(next, None, "no file is read twice");
    }

    #[tokio::test]
    async fn a_file_rewritten_in_place_at_the_same_size_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("in");
        std::fs::create_dir_all(&data).expect("in/");
        let file = data.join("f0.json");
        std::fs::write(&file, "{\"id\":1}\n").expect("file");
        let ckpt = checkpoint_in(dir.path());
        let mut source = FilesSource::open("a", &config(&data), &ckpt, None, false)
            .await
            .expect("open");
        let end = source
            .plan(BatchId(0), None, Admission::SourceLimits)
            .await
            .expect("plan")
            .expect("the file");
        assert_eq!(source.read(None, &end, None).await.expect("read").rows, 1);
        // The log holds what identifies the bytes; a re-read of the same bytes reads them.
        let logged = read_log_entry(&ckpt, &format!("{}/0", paths::source_dir("a")))
            .await
            .expect("log");
        assert!(logged[0].modified_ms.is_some(), "{logged:?}");
        assert!(logged[0].etag.is_some(), "{logged:?}");
        assert_eq!(
            source.read(None, &end, None).await.expect("re-read").rows,
            1
        );
        // Rewritten in place: the same size, another modification time.
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::fs::write(&file, "{\"id\":2}\n").expect("rewrite");
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(modified + std::time::Duration::from_secs(10)))
            .expect("set mtime");
        let err = source
            .read(None, &end, None)
            .await
            .expect_err("the file changed");
        assert!(matches!(err, SourceError::FileChanged { .. }), "{err}");
        let err = err.to_string();
        for part in [
            "f0.json is not what batch 0 logged: the same size (9 bytes), but its \
             modification time was",
            "either it was rewritten in place at the same size, or the project was copied",
            "`touch -d ",
            "ETag",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        // A log entry written before identities were logged still reads; only a smaller size
        // tells there that the file changed.
        let old: LoggedFile =
            serde_json::from_str("{\"path\":\"f0.json\",\"size\":9}").expect("old entry");
        assert_eq!(old.change(&logged[0], true), None);
        let longer = LoggedFile { size: 20, ..old };
        let change = longer.change(&logged[0], true).expect("shorter now");
        assert!(
            change.contains("was 20 bytes and is 9 bytes now"),
            "{change}"
        );
    }
}
