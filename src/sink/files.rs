//! The files sink: Parquet, CSV or JSON lines, idempotent by batch id.
//!
//! ```text
//!   batch N:  fence      ──► no newer epoch exists            (else stop, writing nothing)
//!             data files ──► _sluice/staging/N/E-<id>-<L>/part-N-P.ext (E: epoch; L: label digest)
//!             fence      ──► no newer epoch exists            (else stop)
//!             manifest   ──► _sluice/manifest/N               (create-only: the commit point)
//!             publish    ──► part-N-P.ext                     (rename into place)
//! ```
//!
//! In complete mode each batch writes the whole result table as one file, `result.ext`, and
//! publishing renames it over the previous batch's: a plain reader sees one whole table, the
//! old or the new, on local disk (an atomic `rename`) and on object stores (a copy that
//! replaces the object whole).
//!
//! Invariants:
//! - data file names depend only on the batch id and the output partition (in complete mode,
//!   on neither);
//! - once `_sluice/manifest/N` exists the batch is the sink's: a second call with `N` writes
//!   no data, it only finishes publishing what the manifest lists;
//! - a manifest entry this call created never publishes over a file already in place (such a
//!   file belongs to a batch whose entry retention purged: only a late run gets there);
//! - `_sluice/owner` names the one pipeline (and checkpoint) the folder belongs to; manifests
//!   of batches older than the checkpoint's retention are purged;
//! - a plain reader of `*.parquet` (or `*.csv`, `*.jsonl`) in the folder sees only files of
//!   committed batches, each once; everything in flight lives under `_sluice/`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::json as arrow_json;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::csv::CsvWriter;
use super::{
    BatchOutput, HeldBatch, OutputStream, Sink, SinkCommit, SinkConnector, SinkContext, SinkError,
    SinkKind,
};
use crate::checkpoint::{BatchId, Epoch, Fence};
use crate::format::FileFormat;
use crate::source::{ConfigError, parse_settings};
use crate::storage::{Location, StreamedPut};

pub use crate::checkpoint::paths::SLUICE_DIR;

/// The stem of the one data file a complete-mode sink keeps (`result.parquet`, ...).
pub const COMPLETE_RESULT: &str = "result";

/// How many data files of Sluice's naming (`part-<batch:10>-<partition:4>.*`, `result.*`) a
/// local files sink folder at `path` still holds, where it has lost its `_sluice/` records
/// (deleted by hand); `None` where the records are there, the folder holds no such file, or it
/// is not a local folder. Other engines' `part-00000-<uuid>.parquet` are not counted.
pub fn data_without_records(path: &str) -> Option<usize> {
    let folder = Location::open(path, false, false, None).ok()?;
    let root = folder.local_root()?;
    if root.join(SLUICE_DIR).exists() {
        return None;
    }
    let kept = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            sluice_part(&name) || name.starts_with(&format!("{COMPLETE_RESULT}."))
        })
        .count();
    (kept > 0).then_some(kept)
}

/// [`data_without_records`] for a folder anywhere: in an object store too, listed (audit 87:
/// an S3 sink folder that lost its records was taken as new, and the first batch was refused
/// only once it had claimed the folder and written its manifest entry).
pub async fn data_without_records_anywhere(path: &str) -> Option<usize> {
    let folder = Location::open(path, false, false, None).ok()?;
    if folder.local_root().is_some() {
        return data_without_records(path);
    }
    let names: Vec<String> = folder
        .list("")
        .await
        .ok()?
        .iter()
        .map(|meta| folder.relative(&meta.location))
        .collect();
    if names
        .iter()
        .any(|name| name.split('/').next() == Some(SLUICE_DIR))
    {
        return None;
    }
    let kept = names
        .iter()
        .filter(|name| {
            !name.contains('/')
                && (sluice_part(name) || name.starts_with(&format!("{COMPLETE_RESULT}.")))
        })
        .count();
    (kept > 0).then_some(kept)
}

/// Whether `name` is a data file's name as the sink writes one (`part-0000000003-0001.json`),
/// not another tool's (Spark's `part-00000-<uuid>.snappy.parquet`).
fn sluice_part(name: &str) -> bool {
    name.strip_prefix("part-").is_some_and(|rest| {
        let b = rest.as_bytes();
        b.len() > 16
            && b[..10].iter().all(u8::is_ascii_digit)
            && b[10] == b'-'
            && b[11..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'.'
    })
}

/// One batch's entry in the sink's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The pipeline whose batch this is.
    pub pipeline: uuid::Uuid,
    /// The batch.
    pub batch: BatchId,
    /// The epoch of the run that wrote it.
    pub epoch: Epoch,
    /// How a person tells the run's pipeline from another: its name and checkpoint (empty in
    /// entries written before it was kept, and by a sink opened without one). Two runs of
    /// one epoch are runs of two copies of one checkpoint, which this tells apart.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Rows in the batch's files.
    pub rows: u64,
    /// The batch's data files, relative to the output folder.
    pub files: Vec<ManifestFile>,
    /// Files of the batch that were lost (gone, and forgotten by `sluice repair
    /// --forget-lost-output`): no longer in `files` or `rows`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<ManifestFile>,
}

/// A manifest entry as the sink writes it: `v1`, then the entry as one JSON line.
fn manifest_text(manifest: &Manifest) -> String {
    format!("v1\n{}\n", crate::checkpoint::to_json(manifest))
}

/// One data file of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path relative to the output folder.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Rows in the file.
    pub rows: u64,
}

/// The files sink in the registry.
pub(super) const KIND: SinkKind = SinkKind {
    name: "files",
    configure,
};

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SinkConnector>, ConfigError> {
    let config: FilesSinkConfig = parse_settings(settings)?;
    Ok(Arc::new(config))
}

/// The settings of a files sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSinkConfig {
    /// The output folder or object-store URL.
    pub path: String,
    /// The output format.
    pub format: FileFormat,
}

impl FilesSinkConfig {
    /// The folder of part `part` (a subfolder), or the sink's own.
    fn folder(&self, part: Option<&str>) -> String {
        match part {
            Some(part) => format!("{}/{part}", self.path.trim_end_matches('/')),
            None => self.path.clone(),
        }
    }
}

#[async_trait]
impl SinkConnector for FilesSinkConfig {
    fn start_over(&self, _rewrites: bool) -> String {
        " with a new, empty `sink.path` (a sink folder belongs to one checkpoint)".to_string()
    }
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn location(&self) -> Option<String> {
        Some(self.path.clone())
    }

    fn part_location(&self, part: &str) -> Option<String> {
        Some(self.folder(Some(part)))
    }

    fn take_out_by_hand(
        &self,
        _pipeline: uuid::Uuid,
        keep: Option<BatchId>,
        held_last: BatchId,
        _update: bool,
    ) -> Option<String> {
        let first = keep.map_or(0, |k| k.0 + 1);
        let last = held_last.0;
        Some(format!(
            "for batch {last}, its files `part-{last:010}-*` and `_sluice/manifest/{last}`, and \
             the same for each batch down to {first}"
        ))
    }

    fn keeps_batches(&self) -> bool {
        true
    }

    fn lost_records(&self) -> (String, &'static str) {
        (
            "its records of them (`_sluice/`: the owner record and manifest) are gone, so the \
             folder was moved, emptied or deleted"
                .into(),
            "a new, empty `sink.path`",
        )
    }

    fn format(&self) -> Option<FileFormat> {
        Some(self.format)
    }

    async fn preflight(&self, ctx: &SinkContext<'_>, create_only: bool) -> Result<(), SinkError> {
        if create_only {
            Location::open(&self.folder(ctx.part), true, ctx.sync, ctx.hook)?
                .check_create_only()
                .await?;
        }
        // A folder another pipeline writes is refused before any batch is logged.
        if let Ok(location) = Location::open(&self.folder(ctx.part), false, ctx.sync, ctx.hook) {
            let shown = location.to_string();
            // A Delta table's folder: files written there are no part of the table, and its
            // `VACUUM` deletes them.
            if !location.list("_delta_log").await?.is_empty() {
                return Err(SinkError::Config {
                    kind: KIND.name,
                    reason: format!(
                        "{shown} is a Delta table's folder (it has `_delta_log/`): files written \
                         there would be no part of the table, and its `VACUUM` would delete \
                         them. Give the files sink a folder of its own, or write into the table \
                         with `kind: delta`"
                    ),
                });
            }
            let sink = FilesSink::new(location, self.format, ctx.pipeline);
            if let Some((owner, owner_label)) = sink.folder_owner().await?
                && owner != ctx.pipeline
            {
                return Err(SinkError::ForeignFolder {
                    location: shown,
                    owner,
                    owner_label,
                    ours: ctx.pipeline,
                });
            }
        }
        Ok(())
    }

    fn open(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        let location = Location::open(&self.folder(ctx.part), ctx.create, ctx.sync, ctx.hook)?;
        let sink = FilesSink::new(location, self.format, ctx.pipeline).labelled(ctx.label);
        Ok(Box::new(if ctx.replace { sink.replacing() } else { sink }))
    }
}

/// Writes each batch as data files plus a manifest entry.
#[derive(Debug)]
pub struct FilesSink {
    location: Location,
    format: FileFormat,
    pipeline: uuid::Uuid,
    /// How the owner record this sink writes names its pipeline (may be empty).
    label: String,
    /// Complete mode: each batch's one file replaces the previous batch's.
    replace: bool,
    /// Whether `_sluice/owner` has been checked (or written) by this run.
    owner_checked: std::sync::atomic::AtomicBool,
    /// Whether `_sluice/owner` names this pipeline under another label, to be rewritten once
    /// this run has written a batch ([`FilesSink::relabel_owner`]).
    relabel: std::sync::atomic::AtomicBool,
    /// Complete mode: whether this run has removed the `part-*` files an older Sluice wrote.
    old_parts_removed: std::sync::atomic::AtomicBool,
}

impl FilesSink {
    /// The files of every batch this folder's manifest lists, up to `last` (the checkpoint's
    /// newest committed batch), are there, and, where `newest_written` (every batch writes
    /// an entry), `last`'s entry too: a rewind cut short, a file or entry deleted by hand
    /// would otherwise leave rows out for good in silence. A complete-mode batch rewrites the
    /// whole folder, so the next one mends it; a damaged entry is the batch's own run's to
    /// find.
    async fn check_files_held(&self, last: BatchId, newest_written: bool) -> Result<(), SinkError> {
        if self.replace {
            return Ok(());
        }
        // The rewind that writes again every batch, from `first` to `last`, that lost its
        // output.
        let way_out = |first: BatchId| match (first.prev(), newest_written) {
            (Some(before), true) => format!(
                "take the batches back, which writes them again whole from their input: `sluice \
                 rewind <checkpoint> --to {before}`, then run again (where their input is gone \
                 too, the rewind refuses, and no rewind writes them again: put the files back \
                 from a backup, or run on without their rows, lost, after `sluice repair \
                 <checkpoint> --forget-lost-output`)"
            ),
            // A `late_rows` folder: `--forget-lost-output` is the sink's alone.
            (Some(before), false) => format!(
                "take the batches back, which writes their late rows again from their input \
                 with their output: `sluice rewind <checkpoint> --to {before}`, then run again \
                 (where their input is gone too, the rewind refuses: put the files back from a \
                 backup)"
            ),
            (None, true) => "put what is gone back from a backup; or start the pipeline over on \
                             a new checkpoint with a new, empty `sink.path`"
                .to_string(),
            (None, false) => "put what is gone back from a backup; or start the pipeline over on \
                              a new checkpoint with new, empty `sink.path` and `late_rows` paths"
                .to_string(),
        };
        let lost = |what: String, first: BatchId| SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "{}: {what}, though batch {last} is the newest batch the checkpoint committed to \
                 it; running on would leave their rows out for good: {}",
                self.location,
                way_out(first)
            ),
        };
        match self.read_manifest(last).await {
            Ok(None) if !newest_written => {}
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(lost(
                    format!("its manifest entry {} is gone", Self::manifest_file(last)),
                    last,
                ));
            }
            Err(_) => return Ok(()),
        }
        // Every kept batch's files (files deleted by hand go many at a time, and not only the
        // newest batch's): the way out names them all. Asked a few at a time, not by listing
        // a folder that keeps every batch's files.
        use futures::{StreamExt as _, TryStreamExt as _};
        // (A batch after `last` is not committed: the run that finishes it finishes its
        // renames, whose files may not be in place yet.)
        let batches = self.manifest_batches().await?;
        let checked: Vec<(BatchId, Option<(String, String)>)> =
            futures::stream::iter(batches.iter().rev().copied().filter(|b| *b <= last))
                .map(|batch| async move {
                    let manifest = match self.read_manifest(batch).await {
                        Ok(Some(manifest)) => manifest,
                        // A kept batch's entry emptied or cut short tells none of its files:
                        // as good as gone (walk 120: its files deleted too, rows were lost
                        // in silence, exit 0).
                        Err(SinkError::Corrupt { reason, .. }) if batch < last => {
                            return Ok((
                                batch,
                                Some((
                                    Self::manifest_file(batch),
                                    format!("is damaged ({reason}), so its files cannot be told"),
                                )),
                            ));
                        }
                        _ => return Ok((batch, None)),
                    };
                    // A file cut short or written over is as good as gone (walk 84 #5: found
                    // by `replay --verify` alone).
                    for file in &manifest.files {
                        match self
                            .location
                            .size_of(&self.location.path(&file.path))
                            .await?
                        {
                            None => {
                                return Ok((batch, Some((file.path.clone(), "is gone".into()))));
                            }
                            Some(size) if size != file.size => {
                                return Ok((
                                    batch,
                                    Some((
                                        file.path.clone(),
                                        format!(
                                            "is {size} bytes, where the batch wrote {} (cut \
                                             short or written over)",
                                            file.size
                                        ),
                                    )),
                                ));
                            }
                            Some(_) => {}
                        }
                    }
                    Ok::<_, SinkError>((batch, None))
                })
                .buffered(16)
                .try_collect()
                .await?;
        // Newest first.
        let gone: Vec<(BatchId, (String, String))> = checked
            .into_iter()
            .filter_map(|(batch, path)| Some((batch, path?)))
            .collect();
        let Some(&(first, _)) = gone.last() else {
            return Ok(());
        };
        let (newest, (newest_path, what)) = &gone[0];
        let numbers: Vec<u64> = gone.iter().rev().map(|(b, _)| b.0).collect();
        let which = if numbers.len() > 1 && numbers.windows(2).all(|w| w[1] == w[0] + 1) {
            format!("{} to {}", numbers[0], numbers[numbers.len() - 1])
        } else {
            numbers
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(lost(
            if gone.len() == 1 && *newest_path == Self::manifest_file(*newest) {
                format!("the manifest entry {newest_path} of batch {newest} {what}")
            } else if gone.len() == 1 {
                format!("{newest_path}, a file of batch {newest} its manifest entry lists, {what}")
            } else {
                format!(
                    "files of batches {which} that their manifest entries list are gone or \
                     changed ({newest_path} of batch {newest} {what}, ...)"
                )
            },
            first,
        ))
    }

    /// Refuses a column Parquet's writer cannot write (before the first batch, not at it),
    /// naming it and what to write instead; says once where a duration column is read back
    /// as a number.
    fn check_parquet_output(&self, schema: &SchemaRef) -> Result<(), SinkError> {
        let refused: Vec<String> = schema
            .fields()
            .iter()
            .filter_map(|field| {
                parquet_refusal(field).map(|why| {
                    format!(
                        "column `{}` ({}; Arrow's Parquet writer: {why})",
                        field.name(),
                        crate::format::sql_type_name(field.data_type())
                    )
                })
            })
            .collect();
        if !refused.is_empty() {
            return Err(SinkError::Connector {
                kind: KIND.name,
                error: format!(
                    "{}: Parquet cannot hold {}: write it as a number or as text in the query \
                     (`date_part('epoch', column)` gives an interval's seconds, \
                     `CAST(column AS VARCHAR)` its text), or write `format: json` or `csv`",
                    self.location,
                    refused.join("; ")
                )
                .into(),
            });
        }
        for field in schema.fields() {
            if let Some(unit) = holds_duration(field.data_type()) {
                // DataFusion's `date_part('epoch', ...)` of a duration drops the fraction of a
                // second: the count of the unit, divided, keeps it.
                let seconds = match unit {
                    TimeUnit::Second => "CAST(... AS BIGINT)",
                    TimeUnit::Millisecond => "CAST(... AS BIGINT) / 1e3",
                    TimeUnit::Microsecond => "CAST(... AS BIGINT) / 1e6",
                    TimeUnit::Nanosecond => "CAST(... AS BIGINT) / 1e9",
                };
                tracing::warn!(
                    "{}: column `{name}` is {}; Parquet has no duration type, so DuckDB and \
                     Spark read it as a plain BIGINT of its unit (Arrow readers, such as \
                     pyarrow and DataFusion, as a duration). To give every reader seconds, \
                     write `{seconds} AS {name}` in the query",
                    self.location,
                    crate::format::sql_type_name(field.data_type()),
                    name = field.name(),
                );
            }
        }
        Ok(())
    }
    /// A files sink writing `format` into `location` for pipeline `pipeline` (its id).
    pub fn new(location: Location, format: FileFormat, pipeline: uuid::Uuid) -> Self {
        Self {
            location,
            format,
            pipeline,
            label: String::new(),
            replace: false,
            owner_checked: std::sync::atomic::AtomicBool::new(false),
            relabel: std::sync::atomic::AtomicBool::new(false),
            old_parts_removed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This sink with the pipeline's `label` (name and checkpoint) for the owner record it
    /// writes, so that another pipeline refused here is told whose folder it is.
    pub fn labelled(mut self, label: &str) -> Self {
        self.label = label.to_string();
        self
    }

    /// The folder's owner record: the first pipeline to write a batch into it claims it
    /// (create-only), and every later run checks the claim. Manifests of old batches are
    /// purged, so they cannot tell a reused folder by themselves.
    async fn check_folder_owner(&self, batch: BatchId) -> Result<(), SinkError> {
        use std::sync::atomic::Ordering;
        if self.owner_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = self.location.path(&format!("{SLUICE_DIR}/owner"));
        // A folder without an owner record whose batches are another pipeline's is not
        // claimed: a refused run must not lock the owner out of its own folder.
        if self.read_owner().await?.is_none()
            && let Some(theirs) = self.foreign_manifest().await?
        {
            return Err(SinkError::Foreign {
                location: self.location.to_string(),
                batch: theirs.batch,
                owner: theirs.pipeline,
                owner_label: String::new(),
            });
        }
        if !self
            .location
            .put_if_absent(&path, self.owner_record().into_bytes())
            .await?
        {
            let (owner, owner_label) =
                self.read_owner().await?.ok_or_else(|| SinkError::Corrupt {
                    file: format!("{}/{SLUICE_DIR}/owner", self.location),
                    reason: "removed while it was being read".into(),
                })?;
            if owner != self.pipeline {
                return Err(SinkError::Foreign {
                    location: self.location.to_string(),
                    batch,
                    owner,
                    owner_label,
                });
            }
            // The pipeline renamed (`sluice rename`), or its checkpoint moved: the record is
            // to name it as it is now, once this run has written a batch here past its fence
            // ([`FilesSink::relabel_owner`]); a superseded run or a copy refused at its first
            // batch leaves the record as it is.
            if !self.label.is_empty() && owner_label != self.label {
                self.relabel.store(true, Ordering::Release);
            }
        }
        self.owner_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Rewrites `_sluice/owner` with this run's label where [`FilesSink::check_folder_owner`]
    /// found another one (a renamed pipeline, a moved checkpoint). Called once this run's
    /// batch `manifest` is in place and its fence held, so the record names the checkpoint
    /// whose batches the folder holds last.
    async fn relabel_owner(&self, manifest: &Manifest, fence: &Fence) -> Result<(), SinkError> {
        use std::sync::atomic::Ordering;
        if manifest.pipeline != self.pipeline
            || manifest.label != self.label
            || !self.relabel.swap(false, Ordering::AcqRel)
        {
            return Ok(());
        }
        let path = self.location.path(&format!("{SLUICE_DIR}/owner"));
        // Still this run's to write: a newer run may have taken over since the batch.
        fence.check().await.map_err(Box::new)?;
        self.location
            .put(&path, self.owner_record().into_bytes())
            .await?;
        Ok(())
    }

    /// The `_sluice/owner` record this sink writes: one JSON line of the pipeline id and,
    /// where set, its label.
    fn owner_record(&self) -> String {
        let mut record = serde_json::json!({ "pipeline": self.pipeline.to_string() });
        if !self.label.is_empty() {
            record["label"] = serde_json::Value::String(self.label.clone());
        }
        format!("{record}\n")
    }

    /// Refuses a folder another pipeline owns (its owner record, or, without one, its
    /// batches), without claiming it: a batch claims the folder only once its files are
    /// written ([`FilesSink::finish_commit`]), so a batch that fails on its input leaves the
    /// folder nobody's, as it found it.
    async fn check_not_foreign(&self, batch: BatchId) -> Result<(), SinkError> {
        if self
            .owner_checked
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        match self.read_owner().await? {
            Some((owner, owner_label)) if owner != self.pipeline => Err(SinkError::Foreign {
                location: self.location.to_string(),
                batch,
                owner,
                owner_label,
            }),
            Some(_) => Ok(()),
            None => match self.foreign_manifest().await? {
                Some(theirs) => Err(SinkError::Foreign {
                    location: self.location.to_string(),
                    batch: theirs.batch,
                    owner: theirs.pipeline,
                    owner_label: String::new(),
                }),
                None => Ok(()),
            },
        }
    }

    /// Who the folder belongs to: its owner record's pipeline, or, where the record was
    /// removed, the pipeline another's newest manifest entry names (`None`: ours, or nobody's
    /// yet).
    async fn folder_owner(&self) -> Result<Option<(uuid::Uuid, String)>, SinkError> {
        Ok(match self.read_owner().await? {
            Some(owner) => Some(owner),
            None => self
                .foreign_manifest()
                .await?
                .map(|m| (m.pipeline, String::new())),
        })
    }

    /// The newest manifest entry, when it names another pipeline (a damaged one is left to
    /// the checks that read it for its batch).
    async fn foreign_manifest(&self) -> Result<Option<Manifest>, SinkError> {
        let Some(newest) = self.manifest_batches().await?.last().copied() else {
            return Ok(None);
        };
        Ok(match self.read_manifest(newest).await {
            Ok(Some(manifest)) if manifest.pipeline != self.pipeline => Some(manifest),
            Ok(_) | Err(SinkError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        })
    }

    /// The pipeline id in `_sluice/owner`, and how it names that pipeline (empty in records
    /// of older Sluice versions), when the folder has one.
    async fn read_owner(&self) -> Result<Option<(uuid::Uuid, String)>, SinkError> {
        let path = self.location.path(&format!("{SLUICE_DIR}/owner"));
        let Some(bytes) = self.location.get(&path).await? else {
            return Ok(None);
        };
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                let id = v.get("pipeline")?.as_str()?.parse::<uuid::Uuid>().ok()?;
                let label = v.get("label").and_then(|l| l.as_str()).unwrap_or_default();
                Some(Some((id, label.to_string())))
            })
            .ok_or_else(|| SinkError::Corrupt {
                file: format!("{}/{SLUICE_DIR}/owner", self.location),
                reason: "not an owner record. If the folder is this pipeline's output, delete \
                         that file and run again (the next batch claims the folder again, and \
                         each batch's manifest still names its pipeline); if it is another's, \
                         give this pipeline its own `sink.path`"
                    .into(),
            })
    }

    /// Makes each batch's one file replace the previous batch's once it is published
    /// (complete mode: the folder holds the latest result table).
    pub fn replacing(mut self) -> Self {
        self.replace = true;
        self
    }

    /// Takes batch `batch` back: deletes the files its manifest names, anything staged for it,
    /// then the manifest (last, so an interrupted call can be repeated), each delete synced
    /// (a power loss after a rewind keeps what it took back). Returns the files
    /// deleted.
    async fn forget_files(&self, batch: BatchId) -> Result<u64, SinkError> {
        let mut deleted = 0;
        match self.read_manifest(batch).await {
            Ok(Some(manifest)) => {
                self.check_owner(&manifest).await?;
                // Counted only where it was there: a file deleted by hand is not taken back.
                for file in &manifest.files {
                    let path = self.location.path(&file.path);
                    if self.location.exists(&path).await? {
                        self.location.delete_durably(&path).await?;
                        deleted += 1;
                    }
                }
            }
            // A damaged or missing entry cannot list the batch's files: they are the ones
            // named for it (`part-<batch>-*`).
            Ok(None) | Err(SinkError::Corrupt { .. }) => {
                // Only in a folder that is ours: another pipeline's files have the same names.
                if let Some((owner, owner_label)) = self.folder_owner().await?
                    && owner != self.pipeline
                {
                    return Err(SinkError::Foreign {
                        location: self.location.to_string(),
                        batch,
                        owner,
                        owner_label,
                    });
                }
                let prefix = format!("part-{:010}-", batch.0);
                for meta in self.location.list("").await? {
                    let name = self.location.relative(&meta.location);
                    if name.starts_with(&prefix) && !name.contains('/') {
                        self.location.delete_durably(&meta.location).await?;
                        deleted += 1;
                    }
                }
            }
            Err(e) => return Err(e),
        }
        let staging = format!("{SLUICE_DIR}/staging/{}", batch.0);
        for leftover in self.location.list(&staging).await? {
            if self.own_staging(&staging, &self.location.relative(&leftover.location)) {
                self.location.delete_durably(&leftover.location).await?;
            }
        }
        self.location
            .delete_durably(&self.location.path(&Self::manifest_file(batch)))
            .await?;
        Ok(deleted)
    }

    /// The first batch after `batch` that the sink's manifest lists as a complete-mode table
    /// (`result.<ext>`), if any.
    async fn complete_batch_after(&self, batch: BatchId) -> Result<Option<BatchId>, SinkError> {
        for later in self.manifest_batches().await? {
            if later <= batch {
                continue;
            }
            if let Some(manifest) = self.read_manifest(later).await?
                && manifest
                    .files
                    .iter()
                    .any(|f| f.path.starts_with(&format!("{COMPLETE_RESULT}.")))
            {
                return Ok(Some(later));
            }
        }
        Ok(None)
    }

    /// Complete mode, once per run, after `published` (a table as `result.<ext>`) is in
    /// place: deletes the `part-*` files that an older Sluice's complete mode left beside it,
    /// and the result table of another format (`result.jsonl` beside a `result.parquet`, the
    /// sink's `format:` changed), which would otherwise read as the table still.
    async fn remove_old_parts(&self, published: &Manifest) -> Result<(), SinkError> {
        use std::sync::atomic::Ordering;
        let old_style = published.files.iter().any(|f| f.path.starts_with("part-"));
        if !self.replace || old_style || self.old_parts_removed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut parts = 0;
        for meta in self.location.list("").await? {
            let name = self.location.relative(&meta.location);
            let other_result = [FileFormat::Json, FileFormat::Csv, FileFormat::Parquet]
                .into_iter()
                .filter(|f| *f != self.format)
                .any(|f| name == format!("{COMPLETE_RESULT}.{}", f.extension()));
            // Only the sink's own: another tool's files are never deleted (walk 71 (7)).
            let part = sluice_part(&name) && !name.contains('/');
            if part || other_result {
                self.location.delete(&meta.location).await?;
                parts += usize::from(part);
            }
        }
        if parts > 0 {
            tracing::warn!(
                "{}: complete mode removed {parts} `part-*` files, the output of the batches \
                 before it (another output mode's, or an older Sluice's): `{COMPLETE_RESULT}.{}` \
                 holds the whole result table now",
                self.location,
                self.format.extension()
            );
        }
        self.old_parts_removed.store(true, Ordering::Release);
        Ok(())
    }

    /// The manifest entry of `batch`, relative to the output folder.
    pub fn manifest_file(batch: BatchId) -> String {
        format!("{SLUICE_DIR}/manifest/{}", batch.0)
    }

    /// Where pipeline `pipeline`'s batch `batch` of epoch `epoch` stages its files: each
    /// epoch stages apart, so a late run of an older epoch never renames its files over the
    /// ones a manifest names, and each pipeline apart, so two new pipelines (both at epoch
    /// 0) racing for a folder that neither has claimed yet never write into one another's.
    /// And each copy of a checkpoint apart (by `label`, which names the checkpoint): two
    /// copies run at once take the same epoch, and one's staged file overwrote the other's
    /// before that one published it under its own manifest entry (walk 92: 28 rows doubled,
    /// exit 0). `<epoch>-<pipeline id>-<first 8 hex digits of the label's SHA-256>`, or
    /// without the last part for a sink opened without a label.
    fn staging_dir(batch: BatchId, pipeline: uuid::Uuid, epoch: Epoch, label: &str) -> String {
        let dir = format!(
            "{SLUICE_DIR}/staging/{}/{}-{}",
            batch.0,
            epoch.0,
            pipeline.simple()
        );
        if label.is_empty() {
            return dir;
        }
        format!("{dir}-{}", &crate::vocab::fingerprint(label)[..8])
    }

    /// Where a batch was staged by a Sluice that named staging folders otherwise: by epoch
    /// and pipeline (before the label, 2026-12-06), or by epoch alone. A manifest written
    /// then, whose publishing a crash cut short, still names files there.
    fn earlier_staging_dirs(batch: BatchId, pipeline: uuid::Uuid, epoch: Epoch) -> [String; 2] {
        [
            Self::staging_dir(batch, pipeline, epoch, ""),
            format!("{SLUICE_DIR}/staging/{}/{}", batch.0, epoch.0),
        ]
    }

    fn data_file(&self, batch: BatchId, partition: usize) -> String {
        if self.replace {
            return format!("{COMPLETE_RESULT}.{}", self.format.extension());
        }
        format!(
            "part-{:010}-{partition:04}.{}",
            batch.0,
            self.format.extension()
        )
    }

    /// The batches the sink's manifest still lists (those within the retention), in order.
    pub async fn manifest_batches(&self) -> Result<Vec<BatchId>, SinkError> {
        let mut batches: Vec<BatchId> = self
            .location
            .list(&format!("{SLUICE_DIR}/manifest"))
            .await?
            .iter()
            .filter_map(|m| {
                let name = self.location.relative(&m.location);
                crate::checkpoint::paths::entry_number(name.rsplit('/').next()?)
            })
            .map(BatchId)
            .collect();
        batches.sort_unstable();
        Ok(batches)
    }

    /// Reads the manifest entry of `batch`, if the sink has the batch.
    pub async fn read_manifest(&self, batch: BatchId) -> Result<Option<Manifest>, SinkError> {
        let file = Self::manifest_file(batch);
        let Some(bytes) = self.location.get(&self.location.path(&file)).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let corrupt = |reason: String| SinkError::Corrupt {
            file: format!("{}/{file}", self.location),
            reason,
        };
        let body = text
            .strip_prefix("v1\n")
            .ok_or_else(|| corrupt("expected `v1` on line 1".into()))?;
        if !body.ends_with('\n') {
            return Err(corrupt("truncated".into()));
        }
        serde_json::from_str(body.trim_end())
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// The rows the sink holds for `batch` now: the files its manifest lists, read back in
    /// `schema`'s column types.
    async fn read_held(&self, batch: BatchId, schema: &SchemaRef) -> Result<HeldBatch, SinkError> {
        let Some(manifest) = self.read_manifest(batch).await? else {
            // The manifest of a batch the checkpoint holds is purged only with it.
            return Ok(HeldBatch::Unreadable {
                file: format!("{}/{}", self.location, Self::manifest_file(batch)),
                reason: format!("is missing: the sink has lost batch {batch}"),
            });
        };
        if manifest.pipeline != self.pipeline {
            return Ok(HeldBatch::Missing(format!(
                "{}'s batch {batch} was written by another pipeline (id {})",
                self.location, manifest.pipeline
            )));
        }
        // Files forgotten by `repair --forget-lost-output`: the sink holds what is left of
        // the batch by the user's choice, which no hash of the batch can match (walk 120).
        if !manifest.lost.is_empty() {
            let forgotten: u64 = manifest.lost.iter().map(|f| f.rows).sum();
            let names: Vec<&str> = manifest.lost.iter().map(|f| f.path.as_str()).collect();
            return Ok(HeldBatch::Missing(format!(
                "{}: batch {batch}'s {} ({forgotten} rows) were lost and forgotten by `sluice \
                 repair --forget-lost-output`; the sink holds the batch's other {} rows, and \
                 the lost ones cannot be compared",
                self.location,
                names.join(", "),
                manifest.rows
            )));
        }
        // Read in the types the files keep, then cast back to the query's.
        let kept = match self.format {
            FileFormat::Parquet => parquet_schema(schema),
            _ => text_schema(schema),
        };
        let relaxed = Arc::new(Schema::new(
            kept.fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        if self.replace
            && let Some(newest) = self.manifest_batches().await?.last()
            && *newest > batch
        {
            return Ok(HeldBatch::Missing(format!(
                "{}/{}: in complete mode batch {newest}'s table has replaced batch {batch}'s",
                self.location,
                self.data_file(batch, 0)
            )));
        }
        let mut files = Vec::new();
        let mut batches = Vec::new();
        for file in &manifest.files {
            let name = format!("{}/{}", self.location, file.path);
            let Some(bytes) = self.location.get(&self.location.path(&file.path)).await? else {
                // A later batch in complete mode removed the parts of the mode before.
                if file.path.starts_with("part-")
                    && !file.path.contains('/')
                    && let Some(complete) = self.complete_batch_after(batch).await?
                {
                    return Ok(HeldBatch::Missing(format!(
                        "{name}: the sink switched to complete mode at batch {complete}, whose \
                         first batch removed the part files of the batches before it (a \
                         complete-mode sink holds only the newest whole table)"
                    )));
                }
                return Ok(HeldBatch::Unreadable {
                    file: name,
                    reason: format!("is listed by batch {batch}'s manifest but gone"),
                });
            };
            let reader = crate::source::Reader {
                format: self.format,
                schema: Arc::clone(&relaxed),
                projection: None,
                on_error: crate::format::OnError::Fail,
                rescued: None,
                epoch_unit: None,
                delimiter: b',',
                header: true,
                null_value: None,
                inferred: false,
                encoding: None,
                escape: None,
            };
            // The sink's own file names hold no `key=value` folder.
            // As the batch's output is hashed (a JSON file's NaN as null: see
            // `crate::digest`), so that batches written before JSON kept NaN verify too.
            let held = crate::digest::Held {
                format: Some(self.format),
                column_type: None,
            };
            let decoded = reader.decode(&name, &file.path, &bytes).and_then(|d| {
                d.batches
                    .iter()
                    .map(|b| {
                        crate::digest::conform(b, schema)
                            .and_then(|b| crate::digest::as_held(&b, held))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| crate::source::SourceError::Read {
                        file: name.clone(),
                        reason: e.to_string(),
                    })
            });
            match decoded {
                Ok(decoded) => batches.extend(decoded),
                Err(e) => {
                    return Ok(HeldBatch::Unreadable {
                        file: name,
                        reason: e.to_string(),
                    });
                }
            }
            files.push(name);
        }
        Ok(HeldBatch::Rows { files, batches })
    }

    /// A manifest written for another pipeline (or an earlier checkpoint of this one) means
    /// the output folder is shared: taking its batches as ours would drop our rows.
    async fn check_owner(&self, manifest: &Manifest) -> Result<(), SinkError> {
        if manifest.pipeline == self.pipeline {
            return Ok(());
        }
        // The folder's owner record names that pipeline, where it is the same one.
        let owner_label = match self.read_owner().await {
            Ok(Some((id, label))) if id == manifest.pipeline => label,
            _ => String::new(),
        };
        Err(SinkError::Foreign {
            location: self.location.to_string(),
            batch: manifest.batch,
            owner: manifest.pipeline,
            owner_label,
        })
    }

    /// Refuses a batch of this pipeline that a copy of this checkpoint wrote
    /// ([`super::check_no_copy`]).
    fn check_no_copy(&self, manifest: &Manifest, epoch: Epoch) -> Result<(), SinkError> {
        if manifest.pipeline != self.pipeline {
            return Ok(());
        }
        super::check_no_copy(
            KIND.name,
            &self.location.to_string(),
            manifest.batch,
            (&manifest.label, manifest.epoch),
            (&self.label, epoch),
        )
    }

    /// Moves a committed batch's files from staging into place, where not done yet. `fresh`:
    /// this call created the manifest, so every file is still staged and none may be in place
    /// already (in append and update modes, where names are the batch's own).
    async fn publish(&self, manifest: &Manifest, fresh: bool) -> Result<(), SinkError> {
        let staging = Self::staging_dir(
            manifest.batch,
            manifest.pipeline,
            manifest.epoch,
            &manifest.label,
        );
        let earlier = Self::earlier_staging_dirs(manifest.batch, manifest.pipeline, manifest.epoch);
        for file in &manifest.files {
            let mut from = self.location.path(&format!("{staging}/{}", file.path));
            if !fresh && !self.location.exists(&from).await? {
                for dir in &earlier {
                    let earlier_from = self.location.path(&format!("{dir}/{}", file.path));
                    if self.location.exists(&earlier_from).await? {
                        from = earlier_from;
                        break;
                    }
                }
            }
            let to = self.location.path(&file.path);
            if fresh {
                if !self.replace && self.location.exists(&to).await? {
                    return Err(SinkError::AlreadyPublished {
                        location: self.location.to_string(),
                        batch: manifest.batch,
                        file: file.path.clone(),
                        checkpoint: None,
                    });
                }
                self.location.rename(&from, &to).await?;
            } else if self.location.exists(&from).await? {
                self.location.rename(&from, &to).await?;
            } else if !self.location.exists(&to).await? {
                return Err(SinkError::Corrupt {
                    file: format!("{}/{}", self.location, Self::manifest_file(manifest.batch)),
                    reason: format!("it lists {} but that file is gone", file.path),
                });
            }
        }
        // Anything else this pipeline staged for this batch is from an attempt that never
        // committed. Another pipeline's (two new pipelines racing for one new folder) is its
        // own to finish or give up: deleted under it, its next write would fail with no word
        // of why, where its commit is refused naming the folder's owner.
        let batch_staging = format!("{SLUICE_DIR}/staging/{}", manifest.batch.0);
        // A copy of the checkpoint staging the batch beside this run (its epoch, another
        // label) deletes its own files when it finds the batch taken.
        let beside = format!("{}-{}-", manifest.epoch.0, manifest.pipeline.simple());
        let ours = format!("{}/", staging.rsplit('/').next().unwrap_or_default());
        for leftover in self.location.list(&batch_staging).await? {
            let folder = self.location.relative(&leftover.location);
            if !self.own_staging(&batch_staging, &folder) {
                continue;
            }
            let copy = folder
                .strip_prefix(&batch_staging)
                .map(|rest| rest.trim_start_matches('/'))
                .is_some_and(|rest| rest.starts_with(&beside) && !rest.starts_with(&ours));
            if copy {
                continue;
            }
            self.location.delete(&leftover.location).await?;
            if let Some((folder, _)) = folder.rsplit_once('/') {
                self.location.remove_empty_folder(folder);
            }
        }
        self.location.remove_empty_folder(&staging);
        // What listing does not show: a streamed write cut short leaves `name#N` on local
        // disk.
        if let Some(root) = self.location.local_root() {
            for entry in std::fs::read_dir(root.join(&batch_staging))
                .into_iter()
                .flatten()
                .flatten()
            {
                let folder = format!("{batch_staging}/{}", entry.file_name().to_string_lossy());
                if self.own_staging(&batch_staging, &folder) {
                    self.location.remove_local_tree(&folder);
                }
            }
        }
        self.location.remove_empty_folder(&batch_staging);
        Ok(())
    }

    /// Whether `path` (relative to the sink's folder) under `batch_staging` (a batch's
    /// staging folder) is this pipeline's: in a folder `<epoch>-<its id>[-<label's digest>]`
    /// (any copy of its checkpoint), or of a Sluice that named staging folders by epoch
    /// alone.
    fn own_staging(&self, batch_staging: &str, path: &str) -> bool {
        let folder = path
            .strip_prefix(batch_staging)
            .map(|rest| rest.trim_start_matches('/'))
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        match folder.split_once('-') {
            Some((_, rest)) => rest.split('-').next() == Some(&self.pipeline.simple().to_string()),
            None => true,
        }
    }

    /// What the sink says of batch `batch` when it already has it (its manifest is written):
    /// published again (a crash may have cut publishing short), nothing else written. When
    /// it does not, `None`, once `fence` lets this run write: a late run stages nothing
    /// either, as its files would never be cleaned up.
    async fn already_held(
        &self,
        batch: BatchId,
        fence: &Fence,
    ) -> Result<Option<SinkCommit>, SinkError> {
        self.check_not_foreign(batch).await?;
        if let Some(manifest) = self.read_manifest(batch).await? {
            // The run that wrote it may have died before syncing it: on disk before anything
            // (publishing, `commits/N`) is built on it (docs/design.md §12).
            self.location
                .sync(&self.location.path(&Self::manifest_file(batch)))
                .await?;
            self.check_folder_owner(batch).await?;
            self.check_owner(&manifest).await?;
            // A run a newer one superseded is told so, whoever wrote the batch.
            fence.check().await.map_err(Box::new)?;
            self.check_no_copy(&manifest, fence.epoch())?;
            self.publish(&manifest, false).await?;
            self.remove_old_parts(&manifest).await?;
            self.relabel_owner(&manifest, fence).await?;
            return Ok(Some(SinkCommit {
                rows: manifest.rows,
                written: false,
            }));
        }
        fence.check().await.map_err(Box::new)?;
        Ok(None)
    }

    /// Commits batch `batch` whose staged files are `files`: writes its manifest (the
    /// commit point) unless another run wrote it first, then publishes the files.
    async fn finish_commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        files: Vec<ManifestFile>,
    ) -> Result<SinkCommit, SinkError> {
        self.check_folder_owner(batch).await?;
        let manifest = Manifest {
            pipeline: self.pipeline,
            batch,
            epoch: fence.epoch(),
            label: self.label.clone(),
            rows: files.iter().map(|f| f.rows).sum(),
            files,
            lost: Vec::new(),
        };
        let text = manifest_text(&manifest);
        let manifest_path = self.location.path(&Self::manifest_file(batch));
        fence.check().await.map_err(Box::new)?;
        let written = self
            .location
            .put_if_absent(&manifest_path, text.into_bytes())
            .await?;
        let manifest = if written {
            manifest
        } else {
            // Another run committed this batch first; its files are what the sink keeps.
            let theirs = self
                .read_manifest(batch)
                .await?
                .ok_or_else(|| SinkError::Corrupt {
                    file: Self::manifest_file(batch),
                    reason: "exists but cannot be read".into(),
                })?;
            self.check_owner(&theirs).await?;
            self.check_no_copy(&theirs, fence.epoch())?;
            theirs
        };
        self.publish(&manifest, written).await?;
        self.remove_old_parts(&manifest).await?;
        self.relabel_owner(&manifest, fence).await?;
        Ok(SinkCommit {
            rows: manifest.rows,
            written,
        })
    }

    /// [`FilesSink::finish_commit`] of files this run staged: where a newer run has taken over
    /// meanwhile (this one was paused between its check and its writes), the files it staged
    /// are deleted, as nothing else would ever delete them (walk 92: left behind, billed, and
    /// read by a recursive glob). Only this run's: a newer run stages under its own epoch.
    async fn finish_staged(
        &self,
        batch: BatchId,
        fence: &Fence,
        files: Vec<ManifestFile>,
    ) -> Result<SinkCommit, SinkError> {
        let result = self.finish_commit(batch, fence, files.clone()).await;
        // Staged files no manifest entry will name: this run's, where a newer run took over,
        // or where the batch's entry is another run's (a copy of the checkpoint that won it,
        // refused as a setting would be). Not asked after a store's failure: the store that
        // failed would only be waited for again.
        let unnamed = match &result {
            Err(SinkError::Fenced(_)) => true,
            Err(SinkError::Config { .. }) => matches!(
                self.read_manifest(batch).await,
                Ok(Some(theirs)) if theirs.label != self.label || theirs.epoch != fence.epoch()
            ),
            _ => false,
        };
        if unnamed {
            let staging = Self::staging_dir(batch, self.pipeline, fence.epoch(), &self.label);
            for file in &files {
                let path = self.location.path(&format!("{staging}/{}", file.path));
                if let Err(e) = self.location.delete(&path).await {
                    tracing::debug!("could not delete {staging}/{}: {e}", file.path);
                }
            }
            self.location.remove_empty_folder(&staging);
            self.location
                .remove_empty_folder(&format!("{SLUICE_DIR}/staging/{}", batch.0));
        }
        result
    }

    /// Encodes `batches` (of `schema`; possibly none, for an empty result table) as one file.
    fn encode(
        format: FileFormat,
        batch: BatchId,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Vec<u8>, SinkError> {
        let empty = [RecordBatch::new_empty(Arc::clone(&schema))];
        let batches = if batches.is_empty() { &empty } else { batches };
        let mut encoder = Encoder::new(format, batch, schema)?;
        let mut out = Vec::new();
        for b in batches {
            out.extend_from_slice(&encoder.write(b)?);
        }
        out.extend_from_slice(&encoder.finish()?);
        Ok(out)
    }
}

#[async_trait]
impl Sink for FilesSink {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    async fn read_batch(&self, batch: BatchId, schema: &SchemaRef) -> Result<HeldBatch, SinkError> {
        let held = self.read_held(batch, schema).await?;
        if !matches!(held, HeldBatch::Rows { .. }) {
            return Ok(held);
        }
        let Some(manifest) = self.read_manifest(batch).await? else {
            return Ok(held);
        };
        // A file named as one of the batch's parts that its manifest does not list (a copy
        // put there by hand): a reader of the folder's files reads its rows beside the
        // batch's (audit 94a: `replay --verify` said the batch verified).
        let prefix = format!("part-{:010}-", batch.0);
        for meta in self.location.list("").await? {
            let name = self.location.relative(&meta.location);
            if name.starts_with(&prefix)
                && !name.contains('/')
                && !manifest.files.iter().any(|f| f.path == name)
            {
                return Ok(HeldBatch::Unreadable {
                    file: format!("{}/{name}", self.location),
                    reason: format!(
                        "is named as a file of batch {batch}, which its manifest does not list \
                         (put there by hand?): a reader of the folder's files reads its rows \
                         beside the batch's; move it out of the folder"
                    ),
                });
            }
        }
        Ok(held)
    }

    async fn forget_batch(&self, batch: BatchId) -> Result<u64, SinkError> {
        self.forget_files(batch).await
    }

    async fn owner(&self) -> Result<Option<uuid::Uuid>, SinkError> {
        Ok(self.read_owner().await?.map(|(id, _)| id))
    }

    /// Complete mode: the files the newest committed batch's manifest entry lists, where one
    /// of them is gone.
    async fn table_gone(&self, last: BatchId) -> Result<Option<String>, SinkError> {
        if !self.replace {
            return Ok(None);
        }
        let Ok(Some(manifest)) = self.read_manifest(last).await else {
            return Ok(None);
        };
        for file in &manifest.files {
            if !self
                .location
                .exists(&self.location.path(&file.path))
                .await?
            {
                return Ok(Some(format!("{}/{}", self.location, file.path)));
            }
        }
        Ok(None)
    }

    /// [`FilesSink::check_files_held`], the newest batch's entry too.
    async fn check_held(&self, last: BatchId) -> Result<(), SinkError> {
        self.check_files_held(last, true).await
    }

    async fn check_written_held(&self, last: BatchId) -> Result<(), SinkError> {
        self.check_files_held(last, false).await
    }

    async fn forget_lost(
        &self,
        last: BatchId,
        forget: &(dyn Fn(BatchId) -> bool + Sync),
        dry_run: bool,
    ) -> Result<Option<Vec<(BatchId, String)>>, SinkError> {
        if self.replace {
            return Ok(Some(Vec::new()));
        }
        let mut gone = Vec::new();
        for batch in self.manifest_batches().await? {
            if batch > last {
                continue;
            }
            let Some(mut manifest) = self.read_manifest(batch).await? else {
                continue;
            };
            let before = gone.len();
            let mut kept = Vec::new();
            for file in std::mem::take(&mut manifest.files) {
                if self
                    .location
                    .exists(&self.location.path(&file.path))
                    .await?
                {
                    kept.push(file);
                } else {
                    gone.push((batch, format!("{} ({} rows)", file.path, file.rows)));
                    manifest.lost.push(file);
                }
            }
            if gone.len() == before || !forget(batch) || dry_run {
                continue;
            }
            manifest.rows = kept.iter().map(|f| f.rows).sum();
            manifest.files = kept;
            self.location
                .put(
                    &self.location.path(&Self::manifest_file(batch)),
                    manifest_text(&manifest).into_bytes(),
                )
                .await?;
        }
        Ok(Some(gone))
    }

    /// CSV holds flat values only: a list, struct or map column is refused before the first
    /// batch, naming it (arrow's CSV writer would fail the batch there).
    async fn check_output(&self, schema: &SchemaRef, _new_columns: bool) -> Result<(), SinkError> {
        use datafusion::arrow::datatypes::DataType;
        if self.format == FileFormat::Parquet {
            return self.check_parquet_output(schema);
        }
        if self.format != FileFormat::Csv {
            return Ok(());
        }
        let nested = |t: &DataType| match t {
            DataType::Dictionary(_, value) => value.is_nested(),
            other => other.is_nested(),
        };
        match schema.fields().iter().find(|f| nested(f.data_type())) {
            None => Ok(()),
            Some(field) => Err(SinkError::Connector {
                kind: KIND.name,
                error: format!(
                    "{}: column `{}` is {}, which CSV cannot hold (a CSV cell is one value): \
                     write `format: json` or `parquet`, or flatten it in the query \
                     (`array_to_string({name}, ',')` for a list, `{name}['field']` for a \
                     struct's field)",
                    self.location,
                    field.name(),
                    field.data_type(),
                    name = field.name(),
                )
                .into(),
            }),
        }
    }

    async fn summary(&self) -> Result<Option<super::HeldSummary>, SinkError> {
        let batches = self.manifest_batches().await?;
        let last = match batches.last() {
            Some(b) => self.read_manifest(*b).await?,
            None => None,
        };
        Ok(Some(super::HeldSummary {
            entries: batches.len(),
            last: last.map(|m| (m.batch, Some(m.rows), Some(m.files.len()))),
        }))
    }

    async fn commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError> {
        if let Some(held) = self.already_held(batch, fence).await? {
            return Ok(held);
        }
        let staging = Self::staging_dir(batch, self.pipeline, fence.epoch(), &self.label);
        let format = self.format;
        let BatchOutput { schema, partitions } = output;
        // Complete mode writes the whole table as one file, even an empty one (it replaces
        // the last table); the other modes write one file per partition that has rows.
        let partitions: Vec<(usize, Vec<RecordBatch>)> = if self.replace {
            vec![(0, partitions.into_iter().flatten().collect())]
        } else {
            partitions
                .into_iter()
                .enumerate()
                .filter(|(_, batches)| batches.iter().any(|b| b.num_rows() > 0))
                .collect()
        };
        let mut files = Vec::new();
        // Encode partitions in parallel, write them in partition order.
        let encoded =
            futures::future::try_join_all(partitions.into_iter().map(|(partition, batches)| {
                let schema = Arc::clone(&schema);
                async move {
                    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                    let bytes = tokio::task::spawn_blocking(move || {
                        Self::encode(format, batch, schema, &batches)
                    })
                    .await
                    .map_err(|e| SinkError::Encode {
                        batch,
                        format: format.as_str(),
                        reason: e.to_string(),
                    })??;
                    Ok::<_, SinkError>((partition, rows, bytes))
                }
            }))
            .await?;
        for (partition, rows, bytes) in encoded {
            let name = self.data_file(batch, partition);
            let size = bytes.len() as u64;
            self.location
                .put(&self.location.path(&format!("{staging}/{name}")), bytes)
                .await?;
            files.push(ManifestFile {
                path: name,
                size,
                rows,
            });
        }
        self.finish_staged(batch, fence, files).await
    }

    async fn commit_stream(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: OutputStream,
    ) -> Result<SinkCommit, SinkError> {
        // Complete mode's one file is the whole (aggregated) table.
        if self.replace {
            let output = output.collect(batch).await?;
            return self.commit(batch, fence, output).await;
        }
        if let Some(held) = self.already_held(batch, fence).await? {
            output.drain(batch).await?;
            return Ok(held);
        }
        let staging = Self::staging_dir(batch, self.pipeline, fence.epoch(), &self.label);
        let format = self.format;
        let schema = Arc::clone(&output.schema);
        // Each partition is encoded and written as its rows come, on its own task; a
        // partition without rows writes no file. The files are completed in partition order,
        // each one write (a crash point) as a whole file's put is.
        let written = output
            .for_each_partition(batch, |partition, mut rows| {
                let name = self.data_file(batch, partition);
                let path = self.location.path(&format!("{staging}/{name}"));
                let location = self.location.clone();
                let schema = Arc::clone(&schema);
                async move {
                    let mut file: Option<(StreamedPut, Encoder)> = None;
                    let mut count = 0u64;
                    let result: Result<Option<StreamedPut>, SinkError> = async {
                        while let Some(rows) = rows.next().await? {
                            if rows.num_rows() == 0 {
                                continue;
                            }
                            if file.is_none() {
                                let encoder = Encoder::new(format, batch, Arc::clone(&schema))?;
                                file = Some((location.put_streamed(&path), encoder));
                            }
                            let (put, encoder) = file.as_mut().expect("opened above");
                            count += rows.num_rows() as u64;
                            let bytes = encoder.write(&rows)?;
                            if !bytes.is_empty() {
                                put.write(bytes).await?;
                            }
                        }
                        let Some((mut put, encoder)) = file.take() else {
                            return Ok(None);
                        };
                        let bytes = encoder.finish()?;
                        if !bytes.is_empty() {
                            put.write(bytes).await?;
                        }
                        Ok(Some(put))
                    }
                    .await;
                    if result.is_err()
                        && let Some((put, _)) = file.take()
                    {
                        put.abort().await;
                    }
                    Ok::<_, SinkError>(result?.map(|put| (put, name, count)))
                }
            })
            .await?;
        let mut files = Vec::new();
        let mut unfinished = written.into_iter().flatten();
        while let Some((put, path, rows)) = unfinished.next() {
            match put.finish().await {
                Ok(size) => files.push(ManifestFile { path, size, rows }),
                Err(e) => {
                    for (put, _, _) in unfinished {
                        put.abort().await;
                    }
                    return Err(e.into());
                }
            }
        }
        self.finish_staged(batch, fence, files).await
    }

    async fn held_digest(
        &self,
        batch: BatchId,
        schema: &SchemaRef,
    ) -> Result<Option<crate::digest::OutputDigest>, SinkError> {
        match self.read_held(batch, schema).await? {
            HeldBatch::Rows { batches, .. } => {
                crate::digest::digest(&batches)
                    .map(Some)
                    .map_err(|e| SinkError::Encode {
                        batch,
                        format: self.format.as_str(),
                        reason: format!("hashing the rows read back: {e}"),
                    })
            }
            HeldBatch::Missing(_) | HeldBatch::Unreadable { .. } => Ok(None),
        }
    }

    async fn purge(&self, oldest_kept: BatchId) -> Result<(), SinkError> {
        for meta in self
            .location
            .list(&format!("{SLUICE_DIR}/manifest"))
            .await?
        {
            let name = self.location.relative(&meta.location);
            let batch = name
                .rsplit('/')
                .next()
                .and_then(crate::checkpoint::paths::entry_number);
            if batch.is_some_and(|b| b < oldest_kept.0) {
                self.location.delete(&meta.location).await?;
            }
        }
        Ok(())
    }
}

/// The memory a Parquet file being written may hold for its row group before the group is
/// written out (bytes).
const ROW_GROUP_BYTES: usize = 8 << 20;

/// Encodes one file's record batches as they come: each call returns the bytes that are
/// ready (Parquet holds a row group until it is full), so a file is written in parts.
struct Encoder {
    batch: BatchId,
    format: FileFormat,
    out: SharedBuffer,
    writer: EncoderWriter,
}

enum EncoderWriter {
    /// The writer, and the schema it writes ([`parquet_schema`]).
    Parquet(Box<ArrowWriter<SharedBuffer>>, SchemaRef),
    Csv(CsvWriter<SharedBuffer>),
    /// The writer, and a row of nulls as it is written instead of `{}`
    /// ([`crate::json::null_row`]).
    Json(arrow_json::LineDelimitedWriter<SharedBuffer>, Vec<u8>),
}

/// An in-memory buffer the encoders write into and the sink empties after each write.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn take(&self) -> bytes::Bytes {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner())).into()
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Encoder {
    /// An encoder of batch `batch`'s rows of `schema` as `format`: Parquet compressed with
    /// Snappy, CSV as [`CsvWriter`] writes it, JSON lines as arrow's writer writes them.
    fn new(format: FileFormat, batch: BatchId, schema: SchemaRef) -> Result<Self, SinkError> {
        let out = SharedBuffer::default();
        let writer = match format {
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let schema = parquet_schema(&schema);
                let writer = ArrowWriter::try_new(out.clone(), Arc::clone(&schema), Some(props))
                    .map_err(|e| Self::err(format, batch, e.to_string()))?;
                EncoderWriter::Parquet(Box::new(writer), schema)
            }
            FileFormat::Csv => EncoderWriter::Csv(CsvWriter::new(out.clone())),
            FileFormat::Json => EncoderWriter::Json(
                crate::json::line_writer(out.clone(), false),
                crate::json::null_row(&schema),
            ),
        };
        Ok(Self {
            batch,
            format,
            out,
            writer,
        })
    }

    fn err(format: FileFormat, batch: BatchId, reason: String) -> SinkError {
        SinkError::Encode {
            batch,
            format: format.as_str(),
            reason,
        }
    }

    /// Encodes `rows`; returns the bytes ready to write.
    fn write(&mut self, rows: &RecordBatch) -> Result<bytes::Bytes, SinkError> {
        let result = match &mut self.writer {
            EncoderWriter::Parquet(w, schema) => to_parquet(rows, schema)
                .and_then(|rows| w.write(&rows).map_err(|e| e.to_string()))
                .and_then(|()| {
                    // A row group ends at 1M rows or at this many bytes held, whichever
                    // comes first, so what a file holds in memory does not grow with it.
                    if w.memory_size() >= ROW_GROUP_BYTES {
                        w.flush().map_err(|e| e.to_string())
                    } else {
                        Ok(())
                    }
                }),
            EncoderWriter::Csv(w) => w.write(rows).map_err(|e| e.to_string()),
            EncoderWriter::Json(w, _) => w.write(rows).map_err(|e| e.to_string()),
        };
        result.map_err(|reason| Self::err(self.format, self.batch, reason))?;
        Ok(match &self.writer {
            EncoderWriter::Json(_, null_row) => {
                crate::json::with_null_rows(self.out.take(), null_row)
            }
            _ => self.out.take(),
        })
    }

    /// Ends the file; returns its last bytes.
    fn finish(self) -> Result<bytes::Bytes, SinkError> {
        let (format, batch) = (self.format, self.batch);
        let out = self.out;
        let result = match self.writer {
            EncoderWriter::Parquet(w, _) => {
                w.close().map(|_| out.take()).map_err(|e| e.to_string())
            }
            EncoderWriter::Csv(_) => Ok(out.take()),
            EncoderWriter::Json(mut w, null_row) => w
                .finish()
                .map(|()| crate::json::with_null_rows(out.take(), &null_row))
                .map_err(|e| e.to_string()),
        };
        result.map_err(|reason| Self::err(format, batch, reason))
    }
}

/// Why Arrow's Parquet writer cannot write a column like `field` (an interval of months, days
/// and nanoseconds, which Parquet's INTERVAL of milliseconds cannot hold; a union), found by
/// writing one null row of it into memory; `None` where it can.
fn parquet_refusal(field: &FieldRef) -> Option<String> {
    if holds_union(field.data_type()) {
        return Some("Parquet has no union type".to_string());
    }
    let field = Arc::new(parquet_field(field).as_ref().clone().with_nullable(true));
    let schema = Arc::new(Schema::new(vec![Arc::clone(&field)]));
    let column = datafusion::arrow::array::new_null_array(field.data_type(), 1);
    let written = RecordBatch::try_new(Arc::clone(&schema), vec![column])
        .map_err(|e| e.to_string())
        .and_then(|row| {
            let mut writer =
                ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| e.to_string())?;
            writer.write(&row).map_err(|e| e.to_string())?;
            writer.close().map(|_| ()).map_err(|e| e.to_string())
        });
    written.err()
}

/// The unit of a duration `data_type` holds at any depth (the first): Parquet has no duration
/// type, so Arrow's writer writes it as a plain 64-bit integer of its unit.
fn holds_duration(data_type: &DataType) -> Option<TimeUnit> {
    match data_type {
        DataType::Duration(unit) => Some(*unit),
        DataType::Struct(fields) => fields.iter().find_map(|f| holds_duration(f.data_type())),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::FixedSizeList(item, _)
        | DataType::Map(item, _) => holds_duration(item.data_type()),
        DataType::Dictionary(_, value) => holds_duration(value),
        _ => None,
    }
}

/// Whether `data_type` holds a union at any depth, which Arrow's Parquet schema conversion
/// does not take (it panics rather than failing).
fn holds_union(data_type: &DataType) -> bool {
    match data_type {
        DataType::Union(..) => true,
        DataType::Struct(fields) => fields.iter().any(|f| holds_union(f.data_type())),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _)
        | DataType::Map(item, _) => holds_union(item.data_type()),
        DataType::Dictionary(_, value) => holds_union(value),
        DataType::RunEndEncoded(_, values) => holds_union(values.data_type()),
        _ => false,
    }
}

/// The type a Parquet file keeps a column of `data_type` in, at any depth: Parquet has no
/// logical type for seconds (Arrow's writer writes a `timestamp(0)` as a plain 64-bit integer,
/// which DuckDB and Spark read as a number, not a time), so a time to the second is kept to the
/// millisecond, which holds every such value the same; other types as they are.
fn parquet_type(data_type: &DataType) -> DataType {
    use DataType as T;
    match data_type {
        T::Timestamp(TimeUnit::Second, zone) => T::Timestamp(TimeUnit::Millisecond, zone.clone()),
        T::Time32(TimeUnit::Second) => T::Time32(TimeUnit::Millisecond),
        T::Struct(fields) => T::Struct(fields.iter().map(parquet_field).collect()),
        T::List(item) => T::List(parquet_field(item)),
        T::LargeList(item) => T::LargeList(parquet_field(item)),
        T::FixedSizeList(item, size) => T::FixedSizeList(parquet_field(item), *size),
        T::Map(entries, sorted) => T::Map(parquet_field(entries), *sorted),
        other => other.clone(),
    }
}

/// `field` in the type a Parquet file keeps it in ([`parquet_type`]).
fn parquet_field(field: &FieldRef) -> FieldRef {
    let kept = parquet_type(field.data_type());
    if kept == *field.data_type() {
        return Arc::clone(field);
    }
    Arc::new(field.as_ref().clone().with_data_type(kept))
}

/// `schema` with each column in the type a Parquet file keeps it in ([`parquet_type`]).
fn parquet_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<FieldRef> = schema.fields().iter().map(parquet_field).collect();
    if fields
        .iter()
        .zip(schema.fields())
        .all(|(a, b)| Arc::ptr_eq(a, b))
    {
        return Arc::clone(schema);
    }
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` as a JSON or CSV file's reader reads it back: a dictionary column (a pandas
/// categorical, say) is written as its values, and read back as them.
fn text_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)))
    {
        return Arc::clone(schema);
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, values) => {
                Arc::new(f.as_ref().clone().with_data_type(values.as_ref().clone()))
            }
            _ => Arc::clone(f),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `rows` in `schema` (their [`parquet_schema`]): a cast to a finer unit, which keeps every
/// value whole (one past the finer unit's range is an error).
fn to_parquet(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let same = |(column, field): (&ArrayRef, &FieldRef)| column.data_type() == field.data_type();
    if rows.columns().iter().zip(schema.fields()).all(same) {
        return Ok(rows.clone());
    }
    super::kept::to_kept(rows, schema, "a Parquet file")
}
