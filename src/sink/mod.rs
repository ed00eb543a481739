//! Sinks (docs/design.md §4): making the rows of batch `N` visible exactly once, even when
//! called again with the same `N` after a crash.

mod console;
mod csv;
#[cfg(feature = "delta")]
mod delta;
mod files;
#[cfg(feature = "kafka")]
mod kafka;
mod kept;
pub(crate) mod postgres;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

pub use console::{ConsoleConfig, ConsoleSink};
pub use files::{
    FilesSink, FilesSinkConfig, Manifest, ManifestFile, SLUICE_DIR, data_without_records,
    data_without_records_anywhere,
};

use crate::checkpoint::{BatchId, CheckpointError, Epoch, Fence};
use crate::digest::OutputDigest;
use crate::format::FileFormat;
use crate::source::ConfigError;
use crate::storage::{StorageError, StoreHook};

/// One kind of sink, as the registry lists it: the word `kind:` names it by, and how its
/// settings (every key of the sink but `kind`) become its connector.
#[derive(Debug, Clone, Copy)]
pub struct SinkKind {
    /// The keyword of `kind:`.
    pub name: &'static str,
    /// Parses and checks the settings into the kind's typed configuration.
    pub configure: fn(&serde_yaml::Mapping) -> Result<Arc<dyn SinkConnector>, ConfigError>,
}

/// Runs `work`, warning every `every` it has not ended (`what` names the step and the server),
/// with the ways on: a sink's statement to a server that stopped answering waits with no
/// error of its own, and a run's SIGTERM waits for the batch.
pub(crate) async fn said_while_waiting<F: std::future::Future>(
    what: &str,
    every: std::time::Duration,
    work: F,
) -> F::Output {
    let started = std::time::Instant::now();
    let mut work = std::pin::pin!(work);
    loop {
        match tokio::time::timeout(every, &mut work).await {
            Ok(done) => return done,
            Err(_) => tracing::warn!(
                "{what}: no end after {} (a large batch, or a server that does not answer: \
                 busy, paused, or unreachable). The batch waits for it; Ctrl-C (SIGINT) stops \
                 the run now, and the next run finishes the batch exactly once",
                humantime::format_duration(std::time::Duration::from_secs(
                    started.elapsed().as_secs()
                ))
            ),
        }
    }
}

/// Every kind of sink: one line per kind (a kind behind a cargo feature is listed where it is
/// built). A kind lives in its own module under `src/sink/`, and passes the sink contract
/// suite (`tests/it/contract.rs`).
pub const KINDS: &[SinkKind] = &[
    files::KIND,
    console::KIND,
    #[cfg(feature = "kafka")]
    kafka::KIND,
    postgres::KIND,
    #[cfg(feature = "delta")]
    delta::KIND,
];

/// The connector of a sink of kind `kind` with `settings`, or an error naming the key
/// (relative to the sink) that is wrong.
pub fn configure(
    kind: &str,
    settings: &serde_yaml::Mapping,
) -> Result<Arc<dyn SinkConnector>, ConfigError> {
    if let Some((_, feature)) = crate::source::NOT_BUILT.iter().find(|(k, _)| *k == kind) {
        return Err(ConfigError::at(
            "kind",
            format!(
                "this sluice was built without `kind: {kind}`; build it with `cargo install \
                 --features {feature}`"
            ),
        ));
    }
    let Some(entry) = KINDS.iter().find(|k| k.name == kind) else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        // A file format written as the kind, as Spark's `format("parquet")` names it.
        let format = ["parquet", "json", "csv"]
            .iter()
            .find(|f| kind.eq_ignore_ascii_case(f))
            .map(|f| format!(" (files in {f}: `kind: files, format: {f}`)"))
            .or_else(|| {
                // Spark's way to write each batch with code (walk 68), most often to upsert.
                ["foreachbatch", "foreach"]
                    .contains(&kind.to_ascii_lowercase().as_str())
                    .then(|| {
                        " (Spark's `foreachBatch` has no counterpart: each batch goes to one \
                         sink, exactly once. For upserts, a `postgres` or `delta` sink with \
                         `output_mode: update` and `key:` merges each batch's rows by key; for \
                         code of your own, read a `files` sink's committed files)"
                            .to_string()
                    })
            })
            .unwrap_or_default();
        return Err(ConfigError::at(
            "kind",
            format!("{}{format}", crate::vocab::unknown_keyword(kind, &names)),
        ));
    };
    // A format that is a kind of its own (`format: delta`).
    if kind == "files"
        && let Some(format) = settings.get("format").and_then(|f| f.as_str())
        && format != "files"
        && KINDS.iter().any(|k| k.name == format)
    {
        return Err(ConfigError::at(
            "format",
            format!("`format: {format}` is a sink kind of its own: write `kind: {format}`"),
        ));
    }
    (entry.configure)(settings)
}

/// The pipeline's `name` in a sink label (`pipeline `name` with checkpoint ...`, as the
/// driver writes it, [`SinkContext::label`]); `None` for a label of another form (an
/// operator command's, empty).
pub(crate) fn pipeline_name(label: &str) -> Option<&str> {
    label.strip_prefix("pipeline `")?.split('`').next()
}

/// Refuses batch `batch` at `location` (a `kind` sink), which a run labelled `theirs.0` wrote
/// at epoch `theirs.1`, to this run (labelled `ours.0`, of epoch `ours.1`) of the same
/// pipeline id, where that run's epoch is this one's and its label another: a copy of the
/// checkpoint (`cp -a`), whose epochs are this one's, running beside it. The epoch fence
/// cannot tell the two apart, and each would take the other's batches for its own, though
/// they may have read other input. (A checkpoint moved has a newer epoch than any batch its
/// old place wrote; a copy run after the original is refused before its first batch as older
/// than its sink.) The run that wrote the batch first is the one whose log matches the sink;
/// the other stops at that batch, having written none the first did not. Labels that are
/// empty (an older Sluice's records) tell nothing.
pub(crate) fn check_no_copy(
    kind: &'static str,
    location: &str,
    batch: BatchId,
    theirs: (&str, Epoch),
    ours: (&str, Epoch),
) -> Result<(), SinkError> {
    let ((their_label, their_epoch), (our_label, our_epoch)) = (theirs, ours);
    // A newer epoch's batch is a newer run's, which the fence tells (a label may differ for
    // one checkpoint: a URL written another way, a rename).
    if their_epoch != our_epoch
        || their_label.is_empty()
        || our_label.is_empty()
        || their_label == our_label
    {
        return Ok(());
    }
    Err(SinkError::Config {
        kind,
        reason: format!(
            "batch {} in {location} was written by {their_label} at epoch {}, this run's own: \
             that is a copy of this checkpoint (the same pipeline id and epochs), running or \
             run beside it, and the two would take each other's batches for their own. Keep \
             the one that wrote the batch, whose log matches what the sink holds, and remove \
             this one (a copy of a live checkpoint is no backup: stop the pipeline before \
             copying)",
            batch.0, their_epoch.0,
        ),
    })
}

/// When the checkpoint of a sink label was made (its `, created <RFC 3339>` end); `None` for
/// a label without one (written by an older Sluice, or an operator command's).
fn label_created(label: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let (_, created) = label.rsplit_once(", created ")?;
    chrono::DateTime::parse_from_rfc3339(created).ok()
}

/// Whether the pipeline labelled `theirs` (another id) is the one labelled `ours` on a
/// checkpoint made after this one's: a newer checkpoint of it, which took over the table
/// this one wrote (a pipeline of the same `name` on a new checkpoint takes its update- or
/// complete-mode table over). In complete mode the newer checkpoint wins, as a newer epoch
/// does: this one's runs write no more there. In update mode it is said (pipelines of one
/// name may write keys of their own, shards of one table). Which is newer is told by the
/// clocks of the hosts that made the checkpoints.
pub(crate) fn retired_by(ours: &str, theirs: &str) -> bool {
    pipeline_name(ours).is_some()
        && pipeline_name(ours) == pipeline_name(theirs)
        && matches!(
            (label_created(ours), label_created(theirs)),
            (Some(ours), Some(theirs)) if theirs > ours
        )
}

/// A keyed sink's refusal of update mode without `key:`.
pub(crate) const UPDATE_KEY_MISSING: &str = "update mode writes each changed row over the row \
     of its key: set `key:` to the query's GROUP BY columns, by the names its output gives them \
     (`key: [day, product]` for `SELECT date_trunc('day', ts) AS day, product, sum(v) ... \
     GROUP BY 1, 2`)";

/// How a run (or an operator command) opens a sink.
#[derive(Clone, Copy)]
pub struct SinkContext<'a> {
    /// The pipeline's id (the checkpoint's): a sink refuses batches of another pipeline.
    pub pipeline: uuid::Uuid,
    /// How a person tells this pipeline from another (its name and checkpoint, secrets
    /// redacted), kept in a sink's owner record so that a refusal names the owner; may be
    /// empty (operator commands, which claim nothing).
    pub label: &'a str,
    /// Complete mode: each batch replaces the previous one's output.
    pub replace: bool,
    /// Update mode: each row is the newest of its key (a keyed sink needs its key).
    pub update: bool,
    /// A part of the sink's output, by name (the late-rows sink keeps one per source).
    pub part: Option<&'a str>,
    /// Whether the sink may create where it writes (a run), or only reads what is there (an
    /// operator command).
    pub create: bool,
    /// Whether local writes are synced before they count.
    pub sync: bool,
    /// Wraps every store the sink opens (fault injection in tests).
    pub hook: Option<&'a StoreHook>,
}

impl std::fmt::Debug for SinkContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkContext")
            .field("pipeline", &self.pipeline)
            .field("replace", &self.replace)
            .field("update", &self.update)
            .field("part", &self.part)
            .field("create", &self.create)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

/// A kind of sink with its settings: what opens it, and what a run and the operator commands
/// need to know of it.
#[async_trait]
pub trait SinkConnector: Send + Sync + std::fmt::Debug {
    /// The kind's keyword.
    fn kind(&self) -> &'static str;

    /// Where the sink writes (a folder or object-store URL), for the checkpoint's record and
    /// the checks of overlapping locations; `None` for a sink that keeps nothing.
    fn location(&self) -> Option<String> {
        None
    }

    /// Where part `part` of the sink writes (a `late_rows` sink's rows of source `part`), as
    /// [`SinkConnector::location`] says it; the sink's own location by default (a Kafka
    /// sink's parts write to its topic).
    fn part_location(&self, _part: &str) -> Option<String> {
        self.location()
    }

    /// The file format the sink holds its rows in, which decides how output is hashed as
    /// held (`digest::as_held`); `None` for a sink that writes no files.
    fn format(&self) -> Option<FileFormat> {
        None
    }

    /// The type the sink keeps a column of a query type in, where that loses something
    /// (timestamps to the microsecond), so that the digest is of what the sink holds
    /// ([`crate::digest::Held`]); `None` where it keeps the query's types.
    fn held_type(&self) -> Option<fn(&DataType) -> DataType> {
        None
    }

    /// Whether the sink prints its rows on standard output (where `--progress json` would
    /// otherwise print too).
    fn prints_to_stdout(&self) -> bool {
        false
    }

    /// Whether the sink keeps each batch's output where it can take it back (`sluice
    /// rewind` asks before it deletes anything); a sink that only prints keeps nothing.
    fn keeps_batches(&self) -> bool {
        false
    }

    /// Whether what the batches wrote stays in the sink for readers to read as one table or
    /// stream, so that a query writing other columns is refused unless
    /// `allow_output_schema_change` (the driver keeps the columns in the checkpoint's `sink`
    /// record): a sink that keeps batches, and one whose readers take its records as they
    /// come (a topic). A sink that checks the columns against its own table's (PostgreSQL's
    /// without `batch_column`) needs no more.
    fn holds_output(&self) -> bool {
        self.keeps_batches()
    }

    /// For a sink that keeps batches: its records of them, said as lost with what that means
    /// (`its _sluice/ records ... are gone, so the folder was ...`), and a new place to write
    /// that starts a pipeline over (`a new, empty `sink.path``), for the message of a sink
    /// that holds none of the batches a checkpoint committed to it.
    fn lost_records(&self) -> (String, &'static str) {
        (
            "its records of them are gone, so it was moved, emptied or deleted".into(),
            "a new, empty place to write",
        )
    }

    /// Whether `sluice rewind` takes this sink's batches back outside complete mode (`update`:
    /// in update mode); a sink that keeps batches does, unless its update mode overwrites rows
    /// (a table's upsert or merge).
    fn takes_back(&self, _update: bool) -> bool {
        self.keeps_batches()
    }

    /// What starting a pipeline over on a new checkpoint needs of this sink, as the words
    /// that follow "on a new checkpoint" (` with a new, empty `sink.path` (...)`); `rewrites`:
    /// the pipeline is in update or complete mode, whose rows are written over.
    fn start_over(&self, _rewrites: bool) -> String {
        " with a new place to write (what a sink took belongs to one checkpoint)".to_string()
    }

    /// Where the sink's records of the batches are a thing a user can write again (a
    /// table's progress row), how to put them back for pipeline `pipeline` whose newest
    /// committed batch is `last`, in words with the statement; `None` where they cannot be.
    fn restore_records(&self, _pipeline: uuid::Uuid, _last: BatchId) -> Option<String> {
        None
    }

    /// How a person takes the batches after `keep` (all, where `None`) out of the sink by
    /// hand, up to `held_last`, the newest it holds (for a checkpoint older than its sink, to
    /// be kept), for pipeline `pipeline` in the output mode given (`update`); `None` where the
    /// sink's rows cannot be told apart by batch.
    fn take_out_by_hand(
        &self,
        _pipeline: uuid::Uuid,
        _keep: Option<BatchId>,
        _held_last: BatchId,
        _update: bool,
    ) -> Option<String> {
        None
    }

    /// Where the sink takes batches back only when so set, what that needs, as a clause after
    /// `rewind`'s refusal (`; ... only with ...`); empty where it never does.
    fn take_back_note(&self) -> &'static str {
        ""
    }

    /// Why rows read back from this sink may differ from what a batch wrote though nothing
    /// was lost (`sluice replay --verify` finding the sink differs), as a clause after the
    /// advice to write the batch again (`; ...`); empty where nothing but an edit by hand
    /// changes them.
    fn differs_note(&self) -> String {
        String::new()
    }

    /// What `allow_output_schema_change` further needs of this sink before it takes other
    /// columns (a table's `ALTER TABLE`), as a parenthesis for the refusal's advice; empty
    /// where nothing.
    fn schema_change_note(&self) -> &'static str {
        ""
    }

    /// The columns an update-mode sink writes each row over the row of (`key:`), for the
    /// check that they are the query's group keys; `None` for a sink without keys.
    fn update_key(&self) -> Option<Vec<String>> {
        None
    }

    /// Checks before a run takes its checkpoint: with `create_only`, that the sink's store
    /// refuses a second create of the same object.
    async fn preflight(&self, _ctx: &SinkContext<'_>, _create_only: bool) -> Result<(), SinkError> {
        Ok(())
    }

    /// Checks, after [`SinkConnector::preflight`], before the first batch of a checkpoint
    /// that has none (a new one, or one whose batches were all taken back): what only a
    /// pipeline starting over would do wrong. Nothing by default.
    async fn check_new_checkpoint(&self, _ctx: &SinkContext<'_>) -> Result<(), SinkError> {
        Ok(())
    }

    /// Opens the sink.
    fn open(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError>;
}

/// What gets a run past a published file `file` of batch `batch` whose manifest entry was
/// deleted by hand: taking the batch back (its files go too), or for the first batch, whose
/// files no rewind takes back, moving them aside.
fn published_advice(batch: &BatchId, file: &str, checkpoint: Option<&str>) -> String {
    let checkpoint = checkpoint.map_or("<checkpoint>".into(), crate::vocab::shell_word);
    match batch.prev() {
        Some(before) => format!(
            "then take the batch back with `sluice rewind {checkpoint} --to {before}`, which \
             deletes its files too, and run again"
        ),
        None => format!(
            "then move {file} and the batch's other `part-{:010}-*` files out of the folder, \
             and run again",
            batch.0
        ),
    }
}

/// A list of column names written as a YAML sequence, or as one name alone (`key: page` for
/// `key: [page]`), as a Spark or dbt user writes a single key.
pub(crate) fn one_or_more<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMore {
        One(String),
        More(Vec<String>),
    }
    let given = <OneOrMore as serde::Deserialize>::deserialize(deserializer).map_err(|_| {
        <D::Error as serde::de::Error>::custom(
            "expected a column name or a list of column names (`[a, b]`)",
        )
    })?;
    Ok(match given {
        OneOrMore::One(name) => vec![name],
        OneOrMore::More(names) => names,
    })
}

/// A sink's `key` column `key` that the query's output `schema` lacks, said with the columns
/// it has (and the nearest, where one is close).
pub(crate) fn key_not_in_query(key: &str, schema: &datafusion::arrow::datatypes::Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let nearest = crate::vocab::nearest(key, &names)
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    format!(
        "key column `{key}` is not a column of the query (its columns: {}){nearest}",
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What can go wrong writing a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Computing the output failed while the sink was taking it (the batch's own error is
    /// reported in its place).
    #[error("batch {batch}: computing the output failed: {reason}")]
    Output {
        /// The batch.
        batch: BatchId,
        /// What failed.
        reason: String,
    },
    /// Encoding the output failed.
    #[error("writing batch {batch} as {format}: {reason}")]
    Encode {
        /// The batch.
        batch: BatchId,
        /// The output format.
        format: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// The output folder holds batches of another pipeline or checkpoint.
    #[error(
        "{location} holds batches of another pipeline or checkpoint{} (id {owner}), found at \
         batch {batch}: give each pipeline and checkpoint its own output folder (to start this \
         pipeline over on a new checkpoint, give it a new, empty `sink.path`, or empty this \
         folder if its output is no longer wanted)",
        named(owner_label)
    )]
    Foreign {
        /// The output folder.
        location: String,
        /// The batch found.
        batch: BatchId,
        /// The pipeline id in its manifest.
        owner: uuid::Uuid,
        /// How the owner record names that pipeline (empty where it does not).
        owner_label: String,
    },
    /// The output folder belongs to another pipeline or checkpoint, found before any batch.
    #[error(
        "{location} belongs to another pipeline or checkpoint{} (its records, a files sink's \
         _sluice owner record or newest manifest entry, a Delta table's commits or transaction \
         versions, name pipeline id {owner}; this checkpoint's is {ours}): give each pipeline and checkpoint its own \
         output folder (to start this pipeline over on a new checkpoint, give it a new, empty \
         `sink.path`, or empty this folder if its output is no longer wanted; a pipeline that \
         reads this folder as its source then starts over too, on a new checkpoint, as the \
         files it read are written anew under their names). If this \
         pipeline's checkpoint was moved, run it with `--checkpoint <where it is now>`, or put \
         it back",
        named(owner_label)
    )]
    ForeignFolder {
        /// The output folder.
        location: String,
        /// The pipeline id in its owner record.
        owner: uuid::Uuid,
        /// How the owner record names that pipeline (empty where it does not).
        owner_label: String,
        /// This checkpoint's pipeline id.
        ours: uuid::Uuid,
    },
    /// The pipeline on a newer checkpoint took the complete-mode table over
    /// ([`retired_by`]).
    #[error(
        "{location} was taken over by {by}, a newer checkpoint of this pipeline (the same \
         `name`): each batch of either replaces the whole table, so this checkpoint's runs \
         write it no more. Where that one replaced this one, stop this one's runs (its \
         checkpoint is no longer needed). {undo}"
    )]
    Retired {
        /// The table.
        location: String,
        /// The newer checkpoint's label.
        by: String,
        /// How to make this checkpoint the table's writer again, in the sink's terms.
        undo: String,
    },
    /// A newer run has taken over (the fence failed): this run writes nothing more.
    #[error(transparent)]
    Fenced(#[from] Box<CheckpointError>),
    /// A run whose batch's manifest entry is gone (purged) would publish over files a run
    /// already published: only a late run of an older epoch can get there.
    #[error(
        "{location}: batch {batch}'s manifest entry is gone and {file} is already published, \
         so this run stops before replacing it. Either the entry was purged long ago and this \
         run is a late one (a newer run has taken over), or the entry was deleted by hand: {}",
        published_advice(batch, file, checkpoint.as_deref())
    )]
    AlreadyPublished {
        /// The output folder.
        location: String,
        /// The batch.
        batch: BatchId,
        /// The file that would have been replaced.
        file: String,
        /// The checkpoint, as given, where known (for the command in the advice).
        checkpoint: Option<String>,
    },
    /// A connector's own error (its client library's, its server's).
    #[error("sink ({kind}): {error}")]
    Connector {
        /// The sink's kind.
        kind: &'static str,
        /// The connector's error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A row of the batch that the sink's server refuses on every attempt (a constraint of
    /// the table, a record over the size limit), so nothing of the batch was committed: the
    /// query or the sink's settings must change, and the batch be planned again.
    #[error("sink ({kind}): {reason}")]
    RowRefused {
        /// The sink's kind.
        kind: &'static str,
        /// The row, what refused it and what to change.
        reason: String,
    },
    /// The sink lacks batches the checkpoint committed to it (found before a batch runs):
    /// running on would leave their rows out for good. `<checkpoint>` in `reason` stands for
    /// the checkpoint, as the run names it.
    #[error("sink ({kind}): {reason}")]
    Lost {
        /// The sink's kind.
        kind: &'static str,
        /// What is gone and the way out.
        reason: String,
    },
    /// The sink's settings do not fit the pipeline (its output mode): a mistake in the
    /// pipeline file, found when the sink is opened.
    #[error("sink ({kind}): {reason}")]
    Config {
        /// The sink's kind.
        kind: &'static str,
        /// What does not fit, and what to write instead.
        reason: String,
    },
    /// A batch the sink will not take back (`sluice rewind`), refused before anything of it
    /// was deleted: its rows were rewritten since, or its record of them is gone.
    #[error("sink ({kind}): {reason}")]
    TakeBackRefused {
        /// The sink's kind.
        kind: &'static str,
        /// Why, naming the batch and where it went.
        reason: String,
    },
    /// An operation the sink's kind does not support.
    #[error("{operation} is not supported by the `{kind}` sink connector")]
    NotSupported {
        /// The sink's kind.
        kind: &'static str,
        /// The operation, as a person would name it.
        operation: &'static str,
    },
    /// The sink's own log is damaged.
    #[error("sink manifest {file} is corrupt: {reason}")]
    Corrupt {
        /// The manifest entry.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a sink did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCommit {
    /// Rows the batch holds in the sink.
    pub rows: u64,
    /// False when the sink already had the batch and wrote nothing.
    pub written: bool,
}

/// The output of one batch: its schema, and a list of record batches per output partition.
#[derive(Debug, Clone)]
pub struct BatchOutput {
    /// The schema of every record batch (what a sink writes even when there is no row).
    pub schema: SchemaRef,
    /// The record batches of each output partition, in partition order.
    pub partitions: Vec<Vec<RecordBatch>>,
}

impl BatchOutput {
    /// The output's rows in partition order, as one list.
    pub fn batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.partitions.iter().flatten()
    }

    /// The number of rows.
    pub fn num_rows(&self) -> u64 {
        self.batches().map(|b| b.num_rows() as u64).sum()
    }
}

/// A batch's output as it is computed: one stream of record batches per output partition.
pub struct OutputStream {
    /// The schema of every record batch.
    pub schema: SchemaRef,
    /// Each output partition's stream, in partition order.
    pub partitions: Vec<datafusion::physical_plan::SendableRecordBatchStream>,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStream")
            .field("schema", &self.schema)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl OutputStream {
    /// Runs each partition's stream on its own task and hands `take` its record batches
    /// as they come; returns what `take` returned at the end of each partition, in partition
    /// order. An error of the computation is [`SinkError::Output`] of batch `batch`.
    pub async fn for_each_partition<T, F, Fut>(
        self,
        batch: BatchId,
        take: F,
    ) -> Result<Vec<T>, SinkError>
    where
        T: Send + 'static,
        F: Fn(usize, PartitionBatches) -> Fut,
        Fut: std::future::Future<Output = Result<T, SinkError>> + Send + 'static,
    {
        // The first partition to fail stops the others (a join set aborts what it still
        // holds when dropped).
        let mut tasks = tokio::task::JoinSet::new();
        let count = self.partitions.len();
        for (i, stream) in self.partitions.into_iter().enumerate() {
            let task = take(i, PartitionBatches { batch, stream });
            tasks.spawn(async move { (i, task.await) });
        }
        let mut out: Vec<Option<T>> = (0..count).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.map_err(|e| SinkError::Output {
                batch,
                reason: format!("a partition's task failed: {e}"),
            })?;
            out[i] = Some(result?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The whole output, in memory.
    pub async fn collect(self, batch: BatchId) -> Result<BatchOutput, SinkError> {
        let schema = Arc::clone(&self.schema);
        let partitions = self
            .for_each_partition(batch, |_, mut rows| async move {
                let mut all = Vec::new();
                while let Some(b) = rows.next().await? {
                    all.push(b);
                }
                Ok(all)
            })
            .await?;
        Ok(BatchOutput { schema, partitions })
    }

    /// Reads every partition to its end, keeping nothing.
    pub async fn drain(self, batch: BatchId) -> Result<(), SinkError> {
        self.for_each_partition(batch, |_, mut rows| async move {
            while rows.next().await?.is_some() {}
            Ok(())
        })
        .await
        .map(|_| ())
    }
}

/// One output partition's record batches as they are computed.
pub struct PartitionBatches {
    batch: BatchId,
    stream: datafusion::physical_plan::SendableRecordBatchStream,
}

impl PartitionBatches {
    /// The next record batch, `None` at the end.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, SinkError> {
        use futures::StreamExt;
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(SinkError::Output {
                batch: self.batch,
                reason: e.to_string(),
            }),
        }
    }
}

/// What a sink holds for one batch, read back (`sluice replay --verify`).
#[derive(Debug)]
pub enum HeldBatch {
    /// The rows of the files the batch's manifest lists.
    Rows {
        /// The files, as locations.
        files: Vec<String>,
        /// Their rows.
        batches: Vec<RecordBatch>,
    },
    /// The sink no longer holds the batch's rows, and why.
    Missing(String),
    /// A file of the batch (or its manifest) is gone or cannot be read as the query's output.
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// What a sink holds, in brief (`sluice inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSummary {
    /// Entries of the sink's own log kept (bounded by the retention).
    pub entries: usize,
    /// The newest batch it holds, with its rows and files (`None` each where its record of
    /// them is gone: a Delta table's log entry cleaned up into a checkpoint of the log).
    pub last: Option<(BatchId, Option<u64>, Option<usize>)>,
}

/// A sink that takes each batch exactly once.
#[async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// The kind's keyword (as the registry names it).
    fn kind(&self) -> &'static str;

    /// Makes `output` visible as batch `batch`; does nothing if the sink already has it.
    /// `fence` is checked before anything becomes visible: a late run (an older epoch) stops
    /// with [`SinkError::Fenced`] instead.
    async fn commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError>;

    /// Makes `output` visible as batch `batch` as [`Sink::commit`] does, taking it as it is
    /// computed: a sink that writes as rows come overrides this, so that a batch's memory
    /// does not grow with its output. It consumes every partition to its end, even where
    /// the sink already has the batch (the driver's counts and content hash come from it).
    /// By default, the whole output is collected, then committed.
    async fn commit_stream(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: OutputStream,
    ) -> Result<SinkCommit, SinkError> {
        let output = output.collect(batch).await?;
        self.commit(batch, fence, output).await
    }

    /// The content hash of the rows the sink holds for `batch`, read back in `schema`'s column
    /// types; `None` for a sink that keeps nothing to read back, or no longer has the batch.
    async fn held_digest(
        &self,
        _batch: BatchId,
        _schema: &SchemaRef,
    ) -> Result<Option<OutputDigest>, SinkError> {
        Ok(None)
    }

    /// Before a run's first batch: the checkpoint keeps batches from `oldest_kept` on, as the
    /// pipeline's `retain_batches` says now (perhaps lowered since the last commit). A sink
    /// that carries what it keeps of each batch in every record it writes (Kafka's progress
    /// record) leaves older ones out of its next; nothing is deleted.
    fn keep_from(&self, _oldest_kept: BatchId) {}

    /// Batches before `oldest_kept` are committed in the checkpoint and never run again: the
    /// sink may forget what it kept to recognize them (its log stays bounded).
    async fn purge(&self, _oldest_kept: BatchId) -> Result<(), SinkError> {
        Ok(())
    }

    /// The rows the sink holds for `batch`, read back in `schema`'s column types
    /// (`sluice replay --verify`).
    async fn read_batch(
        &self,
        _batch: BatchId,
        _schema: &SchemaRef,
    ) -> Result<HeldBatch, SinkError> {
        Err(SinkError::NotSupported {
            kind: self.kind(),
            operation: "reading a batch back (`sluice replay --verify`)",
        })
    }

    /// What `forget_batch` counts, in the plural (`files`, a table's `rows`).
    fn forgotten_unit(&self) -> &'static str {
        "files"
    }

    /// Drops from the sink's record of each batch up to `last` that `forget` picks the files
    /// that are gone (deleted by hand or by a lifecycle rule), so that runs carry on without
    /// their rows where they cannot be written again (their input is gone too): `sluice
    /// repair --forget-lost-output`. Each gone file with its batch and in words (`part-...
    /// (120 rows)`), forgotten or (not picked, or with `dry_run`) not; `None` where the sink
    /// keeps no record of files (nothing to forget).
    async fn forget_lost(
        &self,
        _last: BatchId,
        _forget: &(dyn Fn(BatchId) -> bool + Sync),
        _dry_run: bool,
    ) -> Result<Option<Vec<(BatchId, String)>>, SinkError> {
        Ok(None)
    }

    /// Checks, before a rewind takes any batch back, that batch `batch` could be, whichever
    /// later batches the sink holds now (`SinkError::TakeBackRefused` where it could not: a
    /// table's files rewritten since); a sink that tells only as it takes a batch back says
    /// nothing here. Nothing by default.
    async fn check_take_back(&self, _batch: BatchId) -> Result<(), SinkError> {
        Ok(())
    }

    /// Takes batch `batch` back (`sluice rewind`): removes what the sink holds for it, so that
    /// the batch can be written again; the number of files or records removed. Repeatable.
    async fn forget_batch(&self, _batch: BatchId) -> Result<u64, SinkError> {
        Err(SinkError::NotSupported {
            kind: self.kind(),
            operation: "taking a batch back (`sluice rewind`)",
        })
    }

    /// The id of the pipeline the sink's output belongs to, as the sink records it (`sluice
    /// repair` rebuilds a lost checkpoint `metadata` from it); `None` where it records none.
    async fn owner(&self) -> Result<Option<uuid::Uuid>, SinkError> {
        Ok(None)
    }

    /// Checks, before a run's first batch, that the sink still holds every batch up to
    /// `last`, the checkpoint's newest committed batch, where it can tell (a Delta table whose
    /// log lost commits): running on would leave their rows out for good. Nothing by default.
    async fn check_held(&self, _last: BatchId) -> Result<(), SinkError> {
        Ok(())
    }

    /// Checks, before a run's first batch, that the sink can tell whether it took batch
    /// `pending` (planned, not committed in the checkpoint, whose newest committed batch,
    /// `last`, went to this sink): a sink that knows the batches it took only by records of
    /// its own beside the output (a Kafka progress topic), and no longer holds the one of
    /// `last` (deleted by hand, or a new one given), cannot, and writing `pending` again could
    /// give a reader its rows twice: `SinkError::Lost`, naming the rewind that writes it
    /// anyway. Nothing by default (a sink that keeps its records with the output finds them).
    async fn check_pending(&self, _last: BatchId, _pending: BatchId) -> Result<(), SinkError> {
        Ok(())
    }

    /// [`Sink::check_held`] for a sink that only the batches with rows for it write (a
    /// `late_rows` sink): the batches it holds up to `last` are whole, where it can tell
    /// (their files are there); a batch it has no record of wrote nothing to it. Nothing by
    /// default.
    async fn check_written_held(&self, _last: BatchId) -> Result<(), SinkError> {
        Ok(())
    }

    /// The whole table a complete-mode sink published with batch `last`, the checkpoint's
    /// newest committed batch, where some of it is gone (a result file deleted by hand): its
    /// name, so that the run writes the table again with a batch of no new input (Spark's
    /// no-data batch), which computes it whole from the state. `None` by default.
    async fn table_gone(&self, _last: BatchId) -> Result<Option<String>, SinkError> {
        Ok(None)
    }

    /// What the sink holds, in brief; `None` for a sink that keeps nothing to inspect.
    async fn summary(&self) -> Result<Option<HeldSummary>, SinkError> {
        Ok(None)
    }

    /// Gets ready before the first batch (a connection, a producer), so that the first
    /// batch's output is not delayed by it, and a sink that cannot be reached is said before
    /// any batch runs; nothing by default (the first commit opens what it needs).
    async fn start(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Checks, once the query is planned and before its first batch, that the sink can take
    /// output of `schema` (a column type the sink's server has no type for is refused here,
    /// naming the column). `new_columns`: the pipeline allows columns the sink does not hold
    /// yet (`allow_output_schema_change`).
    async fn check_output(&self, _schema: &SchemaRef, _new_columns: bool) -> Result<(), SinkError> {
        Ok(())
    }
}

/// `: <label>` where the owner record names its pipeline (records of older Sluice versions
/// do not), else nothing.
fn named(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!(": {label}")
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// Walk 15 (F9): a misspelt `key` was said without the query's columns.
    #[test]
    fn a_key_not_in_the_query_is_said_with_its_columns_and_the_nearest() {
        let schema = Schema::new(vec![
            Field::new("page", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]);
        assert_eq!(
            super::key_not_in_query("Page", &schema),
            "key column `Page` is not a column of the query (its columns: `page`, `n`); did you \
             mean `page`?"
        );
        assert!(!super::key_not_in_query("zzz", &schema).contains("did you mean"));
    }
}
