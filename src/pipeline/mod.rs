//! The pipeline file (docs/design.md §7): typed, validated, with errors a person can act on.
//!
//! Invariants:
//! - every key is known: an unknown key is an error that names it, its line, and the nearest
//!   valid key;
//! - every value is parsed into its type here (durations, triggers, formats, modes), so the rest
//!   of the engine never sees a string where a type belongs;
//! - loading a pipeline file never touches the checkpoint, the sources or the sink.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::sync::Arc;

pub use crate::format::{FileFormat, OnError};
use crate::sink::SinkConnector;
use crate::source::SourceConnector;
use crate::vocab::{keyword_enum, nearest};

pub use crate::duration::parse_duration;

/// Why a pipeline file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file could not be read at all.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The pipeline file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed, a key is unknown, or a value has the wrong type.
    #[error("{path}: {message}")]
    Invalid {
        /// The pipeline file.
        path: PathBuf,
        /// What is wrong, with the key and line where known.
        message: String,
    },
}

/// A whole pipeline: named sources, static tables, one SQL query, a sink and a trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's name; also the default checkpoint folder name.
    pub name: String,
    /// Where the checkpoint lives: a local path or an object-store URL.
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// Streaming sources, by the table name the query uses.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Static tables, read once, for stream-static joins.
    #[serde(default)]
    pub tables: BTreeMap<String, SourceConfig>,
    /// The SQL query, run once per batch.
    pub query: String,
    /// How results reach the sink.
    #[serde(default)]
    pub output_mode: OutputMode,
    /// When batches run.
    #[serde(default)]
    pub trigger: Trigger,
    /// Where results go.
    pub sink: SinkConfig,
    /// Where rows older than the watermark go (one folder per source under a files sink's
    /// path), instead of being dropped; only for stateful queries over watermarked sources.
    #[serde(default)]
    pub late_rows: Option<SinkConfig>,
    /// How many batches of logs to keep in the checkpoint (at least 2).
    #[serde(default = "default_retention")]
    pub retain_batches: u64,
    /// A stateful query writes a full snapshot of its state every this many batches, and only
    /// the changed rows in between.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Drops a key of an aggregation's or deduplication's state that no batch has seen for
    /// this long (`state_ttl: 1h` on event time, the watermark's clock; or
    /// `state_ttl: { after: 1h, time: processing }` on batch timestamps), for state that no
    /// event-time key bounds.
    #[serde(default)]
    pub state_ttl: Option<StateTtl>,
    /// How runs are kept from writing over each other (`create-only` or `external-lock`).
    #[serde(default)]
    pub fencing: Fencing,
    /// Whether checkpoint and sink writes on local disk are synced before they count as written.
    #[serde(default = "default_true")]
    pub sync: bool,
    /// Whether the query's output columns may change under a sink that already holds batches
    /// of other columns (append and update modes); refused by default, naming what changed.
    #[serde(default)]
    pub allow_output_schema_change: bool,
    /// How much memory a batch's query may take for its sorts, aggregations and joins before
    /// they spill to disk (the system's temporary folder), as DataFusion writes it: `512M`,
    /// `2G`, `1.5G` (units of 1024). By default, half of the machine's memory.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// Where a batch's query runs: here (`local`, the default), or spread over `sluice
    /// worker` processes (`distributed`); `--engine` overrides the kind.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The line of the `query` key in the file, for messages about the SQL.
    #[serde(skip)]
    pub query_line: Option<usize>,
    /// The pipeline file's text, as parsed (each run stores it in the checkpoint, so that
    /// `sluice replay` recomputes a batch with the settings it ran with).
    #[serde(skip)]
    pub text: String,
    /// Where this is a pipeline file a checkpoint stored, run in another folder than this
    /// process's: that folder, against which its relative paths were resolved instead
    /// ([`Pipeline::parse_stored`]).
    #[serde(skip)]
    pub ran_elsewhere: Option<PathBuf>,
    /// Whether this is a file a checkpoint stored, read back ([`Pipeline::parse_stored`]):
    /// only then are its folder lines its own.
    #[serde(skip)]
    stored: bool,
}

/// Pipeline text without the folder lines a checkpoint's copy leads with
/// ([`Pipeline::stored_text`]).
pub fn without_stored_lines(text: &str) -> &str {
    let mut rest = text;
    for prefix in [RAN_IN, CHECKPOINT_IN] {
        if rest.starts_with(prefix) {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
        }
    }
    rest
}

/// The first line of a pipeline file as a local checkpoint stores it, where the file has
/// relative local paths: the folder they resolved against when it ran (then the folder's
/// absolute path). The second, [`CHECKPOINT_IN`], says where the checkpoint was.
const RAN_IN: &str = "# sluice ran this file in folder: ";

/// The second line of a stored pipeline file that has [`RAN_IN`]: the checkpoint's absolute
/// folder when the run stored it.
const CHECKPOINT_IN: &str = "# with its checkpoint in: ";

fn default_retention() -> u64 {
    100
}

fn default_snapshot_every() -> u64 {
    10
}

fn default_true() -> bool {
    true
}

/// One source or static table: its kind, the engine's event-time settings, and the kind's own
/// settings, which the kind parses and checks when the file loads (`source::KINDS`).
#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    /// The kind of source: a name in the source registry (`files`, `rate`).
    pub kind: String,
    /// Event-time watermark; recorded, used by stateful queries.
    #[serde(default)]
    pub watermark: Option<WatermarkConfig>,
    /// Every other key: the kind's own settings.
    #[serde(flatten)]
    pub settings: serde_yaml::Mapping,
    /// The kind's connector, built from `settings` when the file loads.
    #[serde(skip)]
    connector: Option<Arc<dyn SourceConnector>>,
}

impl SourceConfig {
    /// Whether the source is a files source that infers its schema (neither `schema:` nor
    /// `columns:`), pinning it in the checkpoint.
    pub fn infers_schema(&self) -> bool {
        self.kind == "files"
            && !self.settings.contains_key("schema")
            && !self.settings.contains_key("columns")
    }

    /// The source's connector: its kind with its typed settings.
    pub fn connector(&self) -> &Arc<dyn SourceConnector> {
        self.connector
            .as_ref()
            .expect("Pipeline::parse builds every source's connector")
    }
}

/// A source's event-time watermark declaration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// The event-time column.
    pub column: String,
    /// How late rows may arrive.
    #[serde(deserialize_with = "deserialize_duration")]
    pub delay: Duration,
    /// How far ahead of its batch's timestamp a row's event time may be: a row further ahead
    /// (a producer's clock gone wrong) does not move the watermark past every row that follows
    /// it, and where the query's state is over this event time it is quarantined as late
    /// (counted, or sent to `late_rows`).
    #[serde(default, deserialize_with = "deserialize_optional_duration")]
    pub max_future: Option<Duration>,
    /// How long (in batch time) the source may read nothing before it stops holding the
    /// combined watermark of several sources back (Flink's idleness); it holds it again with
    /// its next input.
    #[serde(default, deserialize_with = "deserialize_optional_duration")]
    pub idle_timeout: Option<Duration>,
}

/// The sink of a pipeline (or its late-rows sink): its kind, and the kind's own settings,
/// which the kind parses and checks when the file loads (`sink::KINDS`).
#[derive(Debug, Clone, Deserialize)]
pub struct SinkConfig {
    /// The kind of sink: a name in the sink registry (`files`, `console`).
    pub kind: String,
    /// Every other key: the kind's own settings.
    #[serde(flatten)]
    pub settings: serde_yaml::Mapping,
    /// The kind's connector, built from `settings` when the file loads.
    #[serde(skip)]
    connector: Option<Arc<dyn SinkConnector>>,
}

impl SinkConfig {
    /// The sink's connector: its kind with its typed settings.
    pub fn connector(&self) -> &Arc<dyn SinkConnector> {
        self.connector
            .as_ref()
            .expect("Pipeline::parse builds the sink's connector")
    }
}

keyword_enum!(
    /// How a query's results reach the sink.
    OutputMode {
        /// Each batch adds rows.
        Append => "append",
        /// Each batch writes the rows that changed.
        Update => "update",
        /// Each batch writes the whole result table.
        Complete => "complete",
    }
);

keyword_enum!(
    /// How runs of the same pipeline are kept from writing over each other.
    Fencing {
        /// Every log entry and manifest is created only if absent; Sluice checks at start that
        /// the checkpoint's and the sink's stores refuse a second create.
        CreateOnly => "create-only",
        /// Something outside Sluice (a scheduler's lock, a single cron host) runs one driver at
        /// a time; stores that cannot refuse a second create are accepted.
        ExternalLock => "external-lock",
    }
);

keyword_enum!(
    /// Where a batch's query runs.
    EngineKind {
        /// In this process.
        Local => "local",
        /// Its reads and the work above them spread over `sluice worker` processes, the
        /// merge with state, the sink's commit and every checkpoint write here.
        Distributed => "distributed",
    }
);

#[allow(clippy::derivable_impls)]
impl Default for EngineKind {
    fn default() -> Self {
        Self::Local
    }
}

/// The pipeline's `engine:`: where each batch's query runs (docs/scale.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `local` (the default) or `distributed`.
    #[serde(default)]
    pub kind: EngineKind,
    /// The workers' addresses (`http://host:port`, as `sluice worker --listen` prints them),
    /// for `distributed`.
    #[serde(default)]
    pub workers: Vec<String>,
    /// A batch that reads fewer bytes than this runs here, whatever the kind (a worker's
    /// fixed cost is not worth it): a size as `memory_limit` writes one; `64M` by default.
    #[serde(default)]
    pub distribute_above: Option<String>,
    /// How long a worker may take to connect, or leave a live connection silent, before the
    /// batch gives up on the workers and runs here; `30s` by default.
    #[serde(default, deserialize_with = "deserialize_optional_duration")]
    pub worker_timeout: Option<Duration>,
}

/// Whether the address `url` (`http://HOST:PORT/...`) writes a port, the scheme's default
/// included (`Url::port` leaves out `:80`).
fn names_a_port(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    // After an IPv6 address's `]`, or in a host name.
    authority
        .rsplit(']')
        .next()
        .is_some_and(|tail| tail.contains(':'))
}

impl EngineConfig {
    /// The smallest input, in bytes, a batch is distributed for.
    ///
    /// Errors: a value that is not a size.
    pub fn distribute_above_bytes(&self) -> Result<u64, String> {
        let Some(text) = &self.distribute_above else {
            return Ok(64 << 20);
        };
        datafusion::prelude::SessionContext::parse_capacity_limit("distribute_above", text.trim())
            .map(|bytes| bytes as u64)
            .map_err(|_| {
                format!(
                    "`engine.distribute_above: {text}` is not a size: write a number and a \
                     unit, K, M or G (units of 1024), as `64M`, or 0 to distribute every batch"
                )
            })
    }

    /// How long a worker may be silent: `worker_timeout`, or 30 seconds.
    pub fn worker_timeout(&self) -> Duration {
        self.worker_timeout.unwrap_or(Duration::from_secs(30))
    }

    /// Checks the settings of kind `kind` (the file's, or `--engine`'s).
    ///
    /// Errors: `distributed` with fewer than two workers, an address that is not
    /// `http://HOST:PORT` (`https`: workers serve no TLS), a worker listed twice, or in a
    /// build without the `distributed` feature; a `distribute_above` that is not a size; a
    /// `worker_timeout` under a second.
    pub fn check(&self, kind: EngineKind) -> Result<(), String> {
        self.distribute_above_bytes()?;
        // A live connection is pinged every third of it: shorter, and a busy worker's answer
        // is missed as if it were gone.
        if self
            .worker_timeout
            .is_some_and(|t| t < Duration::from_secs(1))
        {
            return Err("`engine.worker_timeout` must be 1s or more (30s by default)".into());
        }
        if kind == EngineKind::Local {
            return Ok(());
        }
        if !cfg!(feature = "distributed") {
            return Err(
                "`engine: distributed` needs Sluice built with the `distributed` \
                        feature (`cargo build --features distributed`)"
                    .into(),
            );
        }
        if self.workers.is_empty() {
            return Err(
                "`engine.kind: distributed` needs `engine.workers`: the addresses \
                        `sluice worker --listen HOST:PORT` serves on, as `http://HOST:PORT`"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for worker in &self.workers {
            let url = url::Url::parse(worker).map_err(|e| {
                format!(
                    "`engine.workers`: `{worker}` is not a worker's address ({e}); write \
                     `http://HOST:PORT`"
                )
            })?;
            let problem = match url.scheme() {
                "http" if url.host().is_none() => Some("it names no host"),
                "http" if url.port().is_none() && !names_a_port(worker) => Some(
                    "it names no port (a worker serves on the port its `--listen` gives, \
                     50051 by default)",
                ),
                "http" if url.path() != "/" || url.query().is_some() => {
                    Some("a worker's address is a host and a port, without a path")
                }
                "http" => None,
                "https" => Some(
                    "a worker serves plain HTTP/2 (no TLS): keep workers on a private network, \
                     or reach them through a tunnel or mesh that encrypts",
                ),
                _ => Some("a worker's address starts with `http://`"),
            };
            if let Some(problem) = problem {
                return Err(format!(
                    "`engine.workers`: `{worker}`: {problem}; write `http://HOST:PORT`"
                ));
            }
            if !seen.insert(url.to_string()) {
                return Err(format!(
                    "`engine.workers` lists `{worker}` twice: list each worker once"
                ));
            }
        }
        // The planner cuts a stage into as many tasks as there are workers, and a stage of
        // one task runs on the driver: one worker would never be used.
        if self.workers.len() < 2 {
            return Err(format!(
                "`engine.workers` lists one worker (`{}`): a batch is cut into as many tasks as \
                 there are workers, and a batch of one task runs on the driver, so one worker \
                 would never be used; list two or more, or use `engine: {{ kind: local }}`",
                self.workers[0]
            ));
        }
        Ok(())
    }
}

#[allow(clippy::derivable_impls)]
impl Default for Fencing {
    fn default() -> Self {
        Self::CreateOnly
    }
}

// The keyword enums come from one macro, most of them without a default; these two are
// written out rather than derived for that reason.
#[allow(clippy::derivable_impls)]
impl Default for OutputMode {
    fn default() -> Self {
        Self::Append
    }
}

/// When batches run (docs/design.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trigger {
    /// Process everything present at start, in batches within the limits, then stop.
    #[default]
    AvailableNow,
    /// Process everything present at start in one batch, then stop.
    Once,
    /// Start a batch every interval, for as long as the run lasts.
    Every(Duration),
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "available-now" | "available_now" => Ok(Self::AvailableNow),
            "once" => Ok(Self::Once),
            _ => match s.strip_prefix("every") {
                Some(rest) if rest.starts_with(char::is_whitespace) => {
                    let interval = parse_duration(rest.trim())?;
                    if interval.is_zero() {
                        return Err("trigger interval must be greater than zero".into());
                    }
                    Ok(Self::Every(interval))
                }
                _ => {
                    let hint = trigger_hint(s)
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    Err(format!(
                        "unknown trigger `{s}`: expected `available-now`, `once` or `every \
                         <duration>` (e.g. `every 5s`){hint}"
                    ))
                }
            },
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AvailableNow => f.write_str("available-now"),
            Self::Once => f.write_str("once"),
            Self::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
        }
    }
}

/// What a trigger written as Spark or a duration alone means in ours, if it reads as one.
fn trigger_hint(s: &str) -> Option<String> {
    let squashed: String = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let squashed = squashed.strip_prefix("trigger").unwrap_or(&squashed);
    if squashed == "availablenow" || squashed == "availablenowtrue" {
        return Some("Spark's `Trigger.AvailableNow()` is written `available-now`".into());
    }
    if let Some(rest) = squashed.strip_prefix("processingtime") {
        let interval = s
            .trim_start_matches(|c: char| c.is_alphabetic() || c == '.')
            .trim_matches(|c: char| "=:()\"' ".contains(c));
        let interval = if rest.is_empty() || interval.is_empty() {
            "5s"
        } else {
            interval
        };
        return Some(format!(
            "Spark's `Trigger.ProcessingTime` is written `every {interval}`"
        ));
    }
    if squashed == "continuous" || squashed.starts_with("continuous") {
        return Some(
            "Spark's continuous trigger has no counterpart: batches run `every <duration>`, \
             as short as the input allows"
                .into(),
        );
    }
    parse_duration(s)
        .is_ok()
        .then(|| format!("an interval is written `every {s}`"))
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => s.parse().map_err(de::Error::custom),
            serde_yaml::Value::Mapping(map) => {
                // Spark's `trigger(processingTime='5 seconds')` written as a map.
                let said = map
                    .iter()
                    .next()
                    .map(|(k, v)| {
                        let value = match v {
                            serde_yaml::Value::String(v) => v.clone(),
                            serde_yaml::Value::Number(n) => n.to_string(),
                            serde_yaml::Value::Bool(b) => b.to_string(),
                            _ => String::new(),
                        };
                        format!("{} {value}", k.as_str().unwrap_or_default())
                    })
                    .and_then(|text| trigger_hint(text.trim()))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                Err(de::Error::custom(format!(
                    "a trigger is one word or phrase, not a map: `available-now`, `once` or \
                     `every <duration>` (e.g. `trigger: every 5s`){said}"
                )))
            }
            other => Err(de::Error::custom(format!(
                "a trigger is `available-now`, `once` or `every <duration>` (e.g. `trigger: \
                 every 5s`), not {}",
                match other {
                    serde_yaml::Value::Number(n) => format!("the number {n}"),
                    serde_yaml::Value::Bool(b) => format!("`{b}`"),
                    serde_yaml::Value::Null => "empty".to_string(),
                    _ => "a list".to_string(),
                }
            ))),
        }
    }
}

/// A state time-to-live: a key not seen for `after` is dropped from the state (Flink's state
/// TTL; Spark's `transformWithState` TTL is on processing time only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtl {
    /// How long a key may go unseen.
    pub after: Duration,
    /// Whose clock measures it.
    pub time: TtlTime,
}

/// The clock a state TTL is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TtlTime {
    /// Event time: a key seen in a batch is stamped with that batch's watermark (keys seen
    /// before the first watermark with the first one) and dropped once the watermark is
    /// `after` past its stamp.
    Event,
    /// Processing time: a key is stamped with the timestamp of the batch that saw it (logged
    /// with the batch, so a re-run decides the same) and dropped once a batch's timestamp is
    /// `after` past it.
    Processing,
}

impl<'de> Deserialize<'de> for StateTtl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            #[serde(deserialize_with = "deserialize_duration")]
            after: Duration,
            #[serde(default = "event_time")]
            time: TtlTime,
        }
        fn event_time() -> TtlTime {
            TtlTime::Event
        }
        // Read as a value first, so that a mistake inside the mapping form is named (audit
        // 88a: an untagged enum's one message hid `tme:` and `after: 10`).
        let forms = "`state_ttl` is a duration (`1h`, on event time) or \
                     `{ after: <duration>, time: event|processing }`";
        match serde_yaml::Value::deserialize(d)? {
            value @ serde_yaml::Value::Mapping(_) => {
                let full = Full::deserialize(value)
                    .map_err(|e| de::Error::custom(format!("{e} ({forms})")))?;
                Ok(Self {
                    after: full.after,
                    time: full.time,
                })
            }
            value @ (serde_yaml::Value::String(_) | serde_yaml::Value::Number(_)) => Ok(Self {
                after: crate::duration::deserialize(value)
                    .map_err(|e| de::Error::custom(format!("{e} ({forms})")))?,
                time: TtlTime::Event,
            }),
            _ => Err(de::Error::custom(forms)),
        }
    }
}

fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    crate::duration::deserialize(d)
}

fn deserialize_optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(d).map(Some)
}

/// Adds a "did you mean" hint to serde's "unknown field `x`, expected one of `a`, `b`" message.
fn with_suggestion(message: String) -> String {
    let Some(start) = message.find("unknown field `") else {
        return message;
    };
    let rest = &message[start + "unknown field `".len()..];
    let Some(end) = rest.find('`') else {
        return message;
    };
    let field = &rest[..end];
    let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
    // Spark's option names for settings named otherwise here.
    const SPARK: [(&str, &str); 9] = [
        ("maxfilespertrigger", "max_files_per_batch"),
        ("maxoffsetspertrigger", "max_records_per_batch"),
        ("failondataloss", "fail_on_data_loss"),
        ("startingoffsets", "starting_offsets"),
        ("startingtimestamp", "starting_timestamp"),
        ("kafkabootstrapservers", "bootstrap_servers"),
        ("subscribe", "topics"),
        ("checkpointlocation", "checkpoint"),
        ("outputmode", "output_mode"),
    ];
    let plain: String = field
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    // Flink's settings that have no counterpart here: what comes nearest (walk 62: a bare
    // "unknown field", and at the top level advice to make it an ignored `x-` key).
    if ["allowedlateness", "lateness"].contains(&plain.as_str()) {
        return format!(
            "{message} (Flink's allowed lateness has no setting here: a window is written once \
             the source's watermark passes its end (append mode), or each batch it changes \
             (update mode); to take later rows into windows, raise the `watermark:`'s `delay` \
             (with `output_mode: update` to see windows before they close), and keep the rows \
             behind the watermark with a `late_rows:` sink)"
        );
    }
    if let Some((_, ours)) = SPARK
        .iter()
        .find(|(spark, ours)| *spark == plain && expected.contains(ours))
    {
        return format!("{message} (Spark's `{field}` is `{ours}` here)");
    }
    if let Some(note) = spark_note(field, &plain, &expected) {
        return format!("{message} ({note})");
    }
    match nearest(field, &expected) {
        Some(near) => format!("{message} (did you mean `{near}`?)"),
        // A top-level key made to hold an anchor of shared settings.
        None if expected.contains(&"sources") => format!(
            "{message} (a top-level key for shared settings, as YAML anchors use, starts with \
             `x-`: `x-{field}`)"
        ),
        None => message,
    }
}

/// What Sluice has for Spark's file-source and Kafka options named otherwise or not at all
/// (walk 68: a bare "unknown field", or a "did you mean" toward another setting), for a key
/// `field` (`plain`: its letters and digits, lower case) of settings whose keys are `expected`.
fn spark_note(field: &str, plain: &str, expected: &[&str]) -> Option<String> {
    let files = expected.contains(&"max_files_per_batch");
    let kafka = expected.contains(&"bootstrap_servers");
    let note = match plain {
        "latestfirst" if files => {
            "Spark's `latestFirst` has no counterpart: files are read in the order of their \
             paths, each once (name them so that this is their age, with a time in the name)"
        }
        "maxfileage" if files => {
            "Spark's `maxFileAge` has no counterpart: every file in the folder is read once, \
             whatever its age; `min_file_age` leaves out files changed too recently, until they \
             are older"
        }
        "cleansource" | "sourcearchivedir" if files => {
            "Spark's `cleanSource` and `sourceArchiveDir` have no counterpart: Sluice never \
             moves or deletes input. Once a file's batch is committed you may move it away \
             yourself (the checkpoint remembers it; a `replay --verify` or `rewind` of that \
             batch then cannot read it again)"
        }
        "maxbytespertrigger" if files => {
            "Spark's `maxBytesPerTrigger` has no counterpart: `max_files_per_batch` bounds a \
             batch by files"
        }
        "recursivefilelookup" if files => {
            "Spark's `recursiveFileLookup` is always on here: folders under `path` are read at \
             any depth (`key=value` folders as columns; names starting with `.` or `_` left out)"
        }
        "multiline" if files => {
            "Spark's `multiLine` needs no setting here: a JSON value may span lines, and a quoted \
             CSV field may hold line breaks (a file that is one JSON array is refused)"
        }
        "mode" if expected.contains(&"on_error") => {
            "Spark's `mode` is `on_error` here: `fail` for FAILFAST, `skip` for DROPMALFORMED \
             (each skipped row counted); for PERMISSIVE's keeping of what does not fit, \
             `rescued_data_column`"
        }
        "columnnameofcorruptrecord" if expected.contains(&"rescued_data_column") => {
            "Spark's `columnNameOfCorruptRecord` comes nearest as `rescued_data_column`: each \
             row's fields the schema does not know, or whose values do not fit, as JSON text (a \
             line that does not parse at all is stopped at or skipped, by `on_error`)"
        }
        "kafkaisolationlevel" | "isolationlevel" if expected.contains(&"read_committed") => {
            "Kafka's `isolation.level` is `read_committed: true` (the default) or `false` here"
        }
        "kafkagroupid" | "groupid" if expected.contains(&"group_id") => {
            "Kafka's `group.id` is `group_id` here: the group whose offsets Sluice commits after \
             each batch, for lag tools (reading never depends on it)"
        }
        "kafkaautooffsetreset" | "autooffsetreset" if expected.contains(&"starting_offsets") => {
            "Kafka's `auto.offset.reset` is `starting_offsets: earliest|latest` here (where the \
             first batch starts; later batches go on from the checkpoint)"
        }
        "minpartitions" | "maxpartitions" if kafka => {
            "Spark's `minPartitions` and `maxPartitions` have no counterpart here"
        }
        // Properties Sluice sets itself (a consumer's group, commits and isolation; a
        // producer's transactions) are not taken under `properties:`.
        _ if kafka
            && [
                "kafka.group.id",
                "kafka.enable.auto.commit",
                "kafka.enable.auto.offset.store",
                "kafka.enable.partition.eof",
                "kafka.auto.offset.reset",
                "kafka.isolation.level",
                "kafka.transactional.id",
                "kafka.enable.idempotence",
            ]
            .contains(&field) =>
        {
            return Some(format!(
                "Sluice sets the Kafka client's `{}` itself, for exactly-once reading and \
                 writing: leave it out",
                &field["kafka.".len()..]
            ));
        }
        _ if kafka && field.starts_with("kafka.") && expected.contains(&"properties") => {
            return Some(format!(
                "Spark passes `{field}` to the Kafka client as `{}`: give it under \
                 `properties:`, `properties: {{ {}: ... }}`",
                &field["kafka.".len()..],
                &field["kafka.".len()..]
            ));
        }
        _ => return None,
    };
    Some(note.to_string())
}

/// A kind's "unknown field" message with the keys every source has besides the kind's own
/// (`kind`, `watermark`) among the expected ones, so that a typo of those is suggested too.
fn engine_keys(message: String) -> String {
    const KEYS: &str = "`kind`, `watermark`, ";
    if message.contains("unknown field `") {
        if message.contains("expected one of `") {
            return message.replacen("expected one of `", &format!("expected one of {KEYS}`"), 1);
        }
        if message.contains("expected `") {
            return message.replacen("expected `", &format!("expected one of {KEYS}`"), 1);
        }
    }
    message
}

/// A key two keys of one mapping anywhere in `value` both name once read as text (`1` and
/// `"1"`, `true` and `"true"`): YAML tells them apart, a name does not.
fn keys_alike(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::Mapping(map) => {
            let mut seen = std::collections::BTreeSet::new();
            for (key, inner) in map {
                let name = match key {
                    serde_yaml::Value::String(s) => s.clone(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                if !seen.insert(name.clone()) {
                    return Some(name);
                }
                if let Some(found) = keys_alike(inner) {
                    return Some(found);
                }
            }
            None
        }
        serde_yaml::Value::Sequence(items) => items.iter().find_map(keys_alike),
        serde_yaml::Value::Tagged(tagged) => keys_alike(&tagged.value),
        _ => None,
    }
}

/// `key` written twice in one mapping of `text`, with the lines of the first two at one
/// indentation where they can be found.
fn duplicate_key(text: &str, key: &str) -> String {
    let mut at: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with(&format!("{key}:")) {
            at.entry(line.len() - trimmed.len())
                .or_default()
                .push(i + 1);
        }
    }
    match at.values().find(|lines| lines.len() >= 2) {
        Some(lines) => format!(
            "`{key}` is written twice in one mapping (lines {} and {}); keep one",
            lines[0], lines[1]
        ),
        None => format!("`{key}` is written twice in one mapping; keep one"),
    }
}

/// `text` with YAML's merge keys (`<<: *anchor`, `<<: [*a, *b]`) applied, as YAML 1.1's
/// merge key type says, and its top-level keys starting with `x-` left out (Docker Compose's
/// extension fields: a place for anchors of shared settings), where it has either; `None`
/// where it has neither (or does not parse).
fn with_merges(text: &str) -> Option<String> {
    if !text.contains("<<") && !text.contains("x-") {
        return None;
    }
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let before = value.clone();
    // A merged mapping's own `<<` (`x-files: {<<: *base, ...}`) comes in unapplied: merge
    // again until none is left.
    for _ in 0..8 {
        let merged = value.clone();
        value.apply_merge().ok()?;
        if value == merged {
            break;
        }
    }
    if let serde_yaml::Value::Mapping(map) = &mut value {
        map.retain(|key, _| !key.as_str().is_some_and(|k| k.starts_with("x-")));
    }
    if value == before {
        return None;
    }
    serde_yaml::to_string(&value).ok()
}

/// Why `query`, as read from the pipeline file `text`, holds a `--` comment that runs past the
/// line it was written on: a folded block (`query: >`) or a plain or quoted value over
/// several lines is joined with spaces (YAML 1.2, §6.5 line folding), so the comment takes the
/// rest of the query with it, and the query still plans (a filter dropped without a word).
/// `None` where every comment ends where the file's line ends (a literal block, `query: |`).
fn folded_comment(text: &str, query: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
    let tokens = Tokenizer::new(&GenericDialect {}, query).tokenize().ok()?;
    let lines: Vec<&str> = text.lines().collect();
    tokens.into_iter().find_map(|token| {
        let Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) = token else {
            return None;
        };
        // A comment as the file writes it, on one line, swallowed nothing.
        let whole = format!("{prefix}{}", comment.trim_end());
        if lines.iter().any(|line| line.contains(&whole)) {
            return None;
        }
        // The part of the comment written on the comment's own line; the rest was SQL.
        let kept = (prefix.len()..whole.len())
            .rev()
            .filter(|&end| whole.is_char_boundary(end))
            .find(|&end| {
                lines
                    .iter()
                    .any(|line| line.trim_end().ends_with(&whole[..end]))
            })?;
        let (comment, swallowed) = whole.split_at(kept);
        Some(format!(
            "YAML joins the lines of a folded block (`query: >`) or of a plain or quoted value \
             with spaces, so the comment `{}` runs on to the end of the query and takes `{}` \
             with it. Write the query as a literal block (`query: |`, which keeps its lines), \
             or the comment as `/* ... */`",
            comment.trim_end(),
            swallowed.trim()
        ))
    })
}

impl Pipeline {
    /// The 1-based line of the file where `key` (`sources.s.watermark.column`) is written, for
    /// messages; `None` where it cannot be found.
    pub fn key_line(&self, key: &str) -> Option<usize> {
        find_path_line(&self.text, key)
    }

    /// The memory a batch's query may take before it spills (`memory_limit`), in bytes;
    /// by default half of the machine's memory (`None` where that is not known: no limit).
    ///
    /// Errors: a value DataFusion's size syntax does not read, or one under 16M.
    pub fn memory_limit_bytes(&self) -> Result<Option<usize>, String> {
        let Some(text) = &self.memory_limit else {
            return Ok(physical_memory().map(|bytes| bytes / 2));
        };
        let bytes = datafusion::prelude::SessionContext::parse_capacity_limit(
            "memory_limit",
            text.trim(),
        )
        .map_err(|_| {
            format!(
                "`memory_limit: {text}` is not a size: write a number and a unit, K, M or G \
                 (units of 1024), as `512M` or `1.5G`"
            )
        })?;
        if bytes < 16 << 20 {
            return Err(format!(
                "`memory_limit: {text}` is too small to run a batch in; give at least 16M"
            ));
        }
        Ok(Some(bytes))
    }

    /// Reads a checkpoint's copy of a pipeline file (`pipelines/<fingerprint>.yaml`) as its
    /// batches ran with it: as [`Pipeline::parse`], but without the checks of how the file is
    /// written (a folded query's comment), which a copy cannot be edited to meet; the first
    /// mistake only.
    ///
    /// Errors: [`PipelineError::Invalid`] naming the mistake.
    pub fn parse_copy(text: &str, path: &Path) -> Result<Self, PipelineError> {
        Self::parse_in(text, path, None)
    }

    /// Reads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        // A folder given for the file (a checkpoint's, say): say what is wanted.
        if path.is_dir() {
            let what = if path.join(crate::checkpoint::paths::METADATA).is_file() {
                "a checkpoint folder"
            } else {
                "a folder"
            };
            return Err(PipelineError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "is {what}, not a pipeline file: `sluice run` takes the pipeline's YAML \
                     file (`sluice run queries/x.yaml`); `inspect`, `state`, `replay`, \
                     `rewind` and `repair` take a checkpoint folder"
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| PipelineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // A file saved as UTF-16 (as some Windows editors do) said as such (walk 79: "stream
        // did not contain valid UTF-8", the way out not said).
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return Err(PipelineError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "is UTF-16 text (it starts with a UTF-16 byte order mark); a pipeline file \
                     is UTF-8: save it as UTF-8, or convert it: `iconv -f UTF-16 -t UTF-8 {0} > \
                     {0}.utf8 && mv {0}.utf8 {0}`",
                    crate::vocab::shell_word(&path.display().to_string())
                ),
            });
        }
        // Not UTF-8 (a Latin-1 `é`, say): said by its line and column (audit 88a: a byte
        // index).
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..at];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = at
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |n| n + 1)
                + 1;
            PipelineError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "is not UTF-8 text: line {line}, column {column} has a byte UTF-8 does not \
                     write (0x{:02x}; a Latin-1 or Windows-1252 letter, say); save the file as \
                     UTF-8, or convert it: `iconv -f WINDOWS-1252 -t UTF-8 {1} > {1}.utf8 && mv \
                     {1}.utf8 {1}`",
                    e.as_bytes()[at],
                    crate::vocab::shell_word(&path.display().to_string())
                ),
            }
        })?;
        // A byte order mark (as Windows editors save UTF-8) is no part of the YAML: read as
        // one, it made the first key another (`missing field `sources``).
        Self::parse(text.strip_prefix('\u{feff}').unwrap_or(&text), path)
    }

    /// Parses and validates pipeline text; `path` is only used in messages.
    ///
    /// Errors: [`PipelineError::Invalid`] naming every key at fault that can be told apart
    /// (up to [`MISTAKES_SAID`]), in the order of their lines: each is found by reading the
    /// file again without the keys already named, as a compiler goes on past its first error.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PipelineError> {
        let first = match Self::parse_in(text, path, None) {
            // A user's file only: a checkpoint's copy ran as it reads (`parse_copy`).
            Ok(pipeline) => match folded_comment(text, &pipeline.query) {
                Some(message) => {
                    return Err(PipelineError::Invalid {
                        path: path.to_path_buf(),
                        message: match find_path_line(text, "query") {
                            Some(line) => format!("`query`: {message} (line {line})"),
                            None => format!("`query`: {message}"),
                        },
                    });
                }
                None => return Ok(pipeline),
            },
            Err(PipelineError::Invalid { message, .. }) => message,
            Err(e) => return Err(e),
        };
        let (Ok(mut value), Some(mut key)) = (
            serde_yaml::from_str::<serde_yaml::Value>(text),
            key_at_fault(&first),
        ) else {
            return Err(PipelineError::Invalid {
                path: path.to_path_buf(),
                message: first,
            });
        };
        let mut said = vec![(key.clone(), first.clone())];
        // Settings whose `kind` is unknown: their other keys were read as another kind's
        // (`url` "expected `path` or `format`" under a sink of kind `nats`), so they are not
        // mistakes to tell.
        // (A kind named with a near miss, `postgress`, is read as the one meant, so its keys'
        // mistakes are the file's.)
        let unknown_kind = |key: &str, message: &str| {
            key.strip_suffix(".kind")
                .filter(|_| message.contains("unknown value") && !message.contains("did you mean"))
                .map(|parent| format!("{parent}."))
        };
        let mut kind_unknown: Vec<String> = unknown_kind(&key, &first).into_iter().collect();
        // Whether a watermark went out with a key removed.
        let mut watermark_removed = false;
        // What was said of `key`.
        let mut about = first.clone();
        while said.len() < MISTAKES_SAID {
            // An unknown key read as the near miss it was taken for (`set_aside`), where the
            // setting has no such key: a mistake about that key is the reading's, not the
            // file's (walk 126: `escape: x` on a Kafka source, read as
            // `max_records_per_batch`, was also said as "invalid type: string"). Where the
            // setting has the key already, `set_aside` removes the unknown one, and the key's
            // own mistakes are the file's.
            let renamed = about
                .contains("unknown field")
                .then(|| about.split("did you mean `").nth(1))
                .flatten()
                .and_then(|rest| rest.split('`').next())
                .map(|meant| match key.rsplit_once('.') {
                    Some((parent, _)) => format!("{parent}.{meant}"),
                    None => meant.to_string(),
                })
                .filter(|meant| !has_key(&value, meant));
            if !set_aside(&mut value, &key, &about) {
                break;
            }
            watermark_removed |= key.contains(".watermark");
            let Ok(rest) = serde_yaml::to_string(&value) else {
                break;
            };
            let Err(PipelineError::Invalid { message, .. }) = Self::parse_in(&rest, path, None)
            else {
                break;
            };
            // A key the removal left wanting, or one named already: nothing more to tell.
            let Some(next) = key_at_fault(&message) else {
                break;
            };
            if message.contains("missing field") {
                // A required key of a setting inside a source or sink (a watermark's
                // `delay`): the whole setting goes, once, and the reading goes on.
                match key.rsplit_once('.') {
                    Some((parent, _)) if parent.matches('.').count() >= 2 => {
                        key = parent.to_string();
                        about = message;
                        continue;
                    }
                    _ => break,
                }
            }
            if said.iter().any(|(k, _)| *k == next) {
                break;
            }
            if renamed.as_deref() == Some(next.as_str()) {
                key = next;
                about = message;
                continue;
            }
            if kind_unknown
                .iter()
                .any(|parent| next.starts_with(parent.as_str()))
            {
                key = next;
                about = message;
                continue;
            }
            kind_unknown.extend(unknown_kind(&next, &message));
            // A mistake the removal made, not the file: `sources` left empty by taking out
            // its one source (audit 88a: "`sources` must name at least one source" beside
            // the source's own mistake).
            if key.starts_with(&format!("{next}.")) && message.contains("at least one") {
                break;
            }
            // A mistake the removal made, not the file: a setting that asks for the key just
            // taken out, beside it (walk 122: a bad `topic_pattern` taken out, "a Kafka source
            // needs `topics` ... or `topic_pattern`").
            if let (Some((parent, leaf)), Some((next_parent, _))) =
                (key.rsplit_once('.'), next.rsplit_once('.'))
                && parent == next_parent
                && message.contains(&format!("`{leaf}`"))
                && !message.contains("unknown field")
            {
                break;
            }
            // A mistake the removal made, not the file: a `late_rows` without the watermark
            // just taken out for a bad `delay`.
            if next == "late_rows" && watermark_removed {
                key = next;
                about = message;
                continue;
            }
            said.push((next.clone(), message.clone()));
            key = next;
            about = message;
        }
        if said.len() == 1 {
            // With its line where the parser gave none (an unknown top-level key).
            let message = match find_path_line(text, &said[0].0) {
                Some(line) if without_line(&first) == first => format!("{first} (line {line})"),
                _ => first,
            };
            return Err(PipelineError::Invalid {
                path: path.to_path_buf(),
                message,
            });
        }
        // Each with its line in the file as written, not in the text read again.
        let mut said: Vec<(Option<usize>, String)> = said
            .into_iter()
            .map(|(key, message)| {
                let line = find_path_line(text, &key);
                let bare = without_line(&message);
                match line {
                    Some(line) => (Some(line), format!("{bare} (line {line})")),
                    None => (None, bare),
                }
            })
            .collect();
        said.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
        let mut messages = said.into_iter().map(|(_, message)| message);
        let mut message = messages.next().unwrap_or_default();
        for more in messages {
            message.push_str("\n  and: ");
            message.push_str(&more);
        }
        Err(PipelineError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses a pipeline file a checkpoint stored ([`Pipeline::stored_text`]), read from the
    /// checkpoint now at the local folder `checkpoint` (`None`: not on local disk). Where the
    /// file ran in another folder than this process's and the checkpoint is where it was then
    /// (a command run from elsewhere), its relative paths resolve against that folder, where
    /// the batch read and wrote; where the checkpoint has moved (a project moved or copied),
    /// against this process's folder, as a run's would.
    pub fn parse_stored(
        text: &str,
        path: &Path,
        checkpoint: Option<&Path>,
    ) -> Result<Self, PipelineError> {
        let mut lines = text.lines();
        let folder = lines.next().and_then(|l| l.strip_prefix(RAN_IN));
        let was = lines.next().and_then(|l| l.strip_prefix(CHECKPOINT_IN));
        let rebase = match (folder, was, checkpoint) {
            (Some(folder), Some(was), Some(now))
                if Path::new(was) == now
                    && std::env::current_dir().ok().as_deref() != Some(Path::new(folder)) =>
            {
                Some(PathBuf::from(folder))
            }
            _ => None,
        };
        let mut pipeline = Self::parse_in(text, path, rebase)?;
        pipeline.stored = true;
        Ok(pipeline)
    }

    /// [`Pipeline::parse`], resolving relative local paths against `rebase` where given.
    fn parse_in(text: &str, path: &Path, rebase: Option<PathBuf>) -> Result<Self, PipelineError> {
        // YAML's merge keys (`<<: *defaults`), which the typed reading does not apply, and
        // top-level `x-` keys (shared settings' anchors): the typed reading reads the file with
        // the merges written out and those keys left out. Every line a message names is of
        // the file as written (`text`).
        let prepared = with_merges(text);
        let read = prepared.as_deref().unwrap_or(text);
        let invalid = |message: String| PipelineError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // A key written twice in one mapping (two sources of one name): the typed reading
        // would keep the second silently.
        if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text)
            && let Some(key) = e
                .to_string()
                .split_once("duplicate entry with key ")
                .and_then(|(_, rest)| rest.split(" at line").next())
                .map(|k| k.trim_matches('"').to_string())
        {
            return Err(invalid(duplicate_key(text, &key)));
        }
        // The YAML reader's own limits (aliases expanded past its bound, values nested too
        // deep): said as what they are (walk 121: "unknown field `x-a0`", whose name already
        // starts with `x-`).
        if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(text)
            && let text = e.to_string()
            && (text.contains("repetition limit exceeded")
                || text.contains("recursion limit exceeded"))
        {
            return Err(invalid(format!(
                "the file is more than the YAML reader takes ({text}): anchors whose aliases \
                 expand past a bound, or values nested too deep; write the settings out"
            )));
        }
        // Keys YAML types apart that name one thing once read (`1` and `"1"`, two sources
        // or columns): the typed reading keeps the second silently (audit 88a).
        if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text)
            && let Some(key) = keys_alike(&value)
        {
            return Err(invalid(format!(
                "`{key}` is written twice in one mapping (once quoted, once not, or as a \
                 number or `true`/`false` and as text), and both name `{key}`; keep one"
            )));
        }
        // A file that is empty, or holds a list or a single value, has none of the keys.
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(serde_yaml::Value::Null) => {
                return Err(invalid(
                    "the file is empty: a pipeline file is a YAML mapping with at least `name:`, \
                     `sources:`, `query:` and `sink:` (see the README's \"The pipeline file\")"
                        .into(),
                ));
            }
            Ok(serde_yaml::Value::Sequence(_)) => {
                return Err(invalid(
                    "the file is a YAML list (its lines start with `- `): a pipeline file is a \
                     mapping of keys, `name:`, `sources:`, `query:`, `sink:`, each at the start \
                     of its line"
                        .into(),
                ));
            }
            Ok(serde_yaml::Value::Mapping(_) | serde_yaml::Value::Tagged(_)) | Err(_) => {}
            Ok(_) => {
                return Err(invalid(
                    "the file is a single value, not a YAML mapping of keys: a pipeline file \
                     has `name:`, `sources:`, `query:` and `sink:`, each at the start of its \
                     line"
                        .into(),
                ));
            }
        }
        let deserializer = serde_yaml::Deserializer::from_str(read);
        let mut pipeline: Pipeline =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                // A tab in an indentation: YAML indents with spaces only, and serde_yaml names
                // the line before it and the key above it.
                if e.inner().to_string().contains("cannot start any token")
                    && let Some(line) = text.lines().position(|l| {
                        l.trim_start_matches(' ').starts_with('\t') && !l.trim().is_empty()
                    })
                {
                    return invalid(format!(
                        "YAML syntax error: line {} is indented with a tab; YAML indents with \
                         spaces only",
                        line + 1
                    ));
                }
                let path = e.path().to_string();
                let inner = e.into_inner();
                let message =
                    crate::vocab::plain_types_of(&path, &with_suggestion(inner.to_string()));
                // A syntax error has no key yet (`sources.s.?`): its line and column say where.
                if path.contains('?') {
                    // A `: ` inside a plain value (SQL's `CAST(x AS ...)` is fine, but a
                    // `'a: b'` or a map literal is not): YAML takes it for a key.
                    let line_number = message
                        .rfind(" at line ")
                        .and_then(|at| message[at + " at line ".len()..].split(' ').next())
                        .and_then(|n| n.parse::<usize>().ok());
                    let block = match line_number
                        .and_then(|n| text.lines().nth(n.saturating_sub(1)))
                        .and_then(|line| line.trim_start().split_once(':'))
                    {
                        // The line itself opens with a key (`query: ...`), not a line
                        // inside a block.
                        Some((key, value))
                            if message.contains("mapping values are not allowed")
                                && !value.trim().is_empty()
                                && !key.trim().is_empty()
                                && key
                                    .trim()
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                        {
                            format!(
                                "; `{}` holds `: `, which YAML reads as a key in a plain value: \
                                 write `{}: |` and the value on the lines below it, indented \
                                 (or put the value in double quotes)",
                                key.trim(),
                                key.trim()
                            )
                        }
                        _ => String::new(),
                    };
                    let message = match message.rfind(" at line ") {
                        Some(at) => format!(
                            "YAML syntax error: {} (line {}){block}",
                            &message[..at],
                            message[at + " at line ".len()..].replacen(" column ", ", column ", 1)
                        ),
                        None => format!("YAML syntax error: {message}"),
                    };
                    return invalid(message);
                }
                // serde_yaml places unknown keys well, but a value refused by its type at the
                // start of the document: point at the key's own line instead.
                if message.contains("unknown field") || path == "." || path.is_empty() {
                    // serde_yaml's `at line 3 column 1`, as other messages say a line; none
                    // where it counts in the file as read with its merges written out.
                    return invalid(match message.find(" at line ") {
                        Some(at) => {
                            let tail = &message[at + " at line ".len()..];
                            // A suggestion after the place stays.
                            let after = tail.find(" (").map_or("", |i| &tail[i..]);
                            match tail.split(' ').next() {
                                Some(line) if prepared.is_none() => {
                                    format!("{}{after} (line {line})", &message[..at])
                                }
                                _ => format!("{}{after}", &message[..at]),
                            }
                        }
                        None => message,
                    });
                }
                let message = match message.rfind(" at line ") {
                    Some(at) => message[..at].to_string(),
                    None => message,
                };
                // serde_yaml names the path (or the map's, for a value in it) itself where a map
                // was flattened: once is enough.
                let message = match message.split_once(": ") {
                    Some((named, rest))
                        if path == named || path.starts_with(&format!("{named}.")) =>
                    {
                        rest.to_string()
                    }
                    _ => message,
                };
                // A value that runs on into the next line (`10s query`, from `delay: 10s` and
                // then `query: |`) is a flow mapping left open: its `}` is missing.
                let message = match message.split('`').nth(1) {
                    Some(value)
                        if value.contains(' ')
                            && !text.contains(value)
                            && text.contains(&value.replacen(' ', "\n", 1)[..]) =>
                    {
                        format!(
                            "{message}; `{value}` runs on into the next line: is a closing `}}` \
                             or `]` missing at the end of this line?"
                        )
                    }
                    _ => message,
                };
                match find_path_line(text, &path) {
                    Some(line) => invalid(format!("`{path}`: {message} (line {line})")),
                    None => invalid(format!("`{path}`: {message}")),
                }
            })?;
        // A stored file that ran in another folder: its relative paths are that folder's.
        if let Some(folder) = rebase {
            for settings in pipeline.all_settings() {
                let rebased = settings
                    .get("path")
                    .and_then(|p| p.as_str())
                    .filter(|p| is_relative_local(p))
                    .and_then(|p| folder.join(p).to_str().map(str::to_string));
                if let Some(path) = rebased {
                    settings.insert("path".into(), path.into());
                }
            }
            pipeline.ran_elsewhere = Some(folder);
        }
        for (group, configs) in [
            ("sources", &mut pipeline.sources),
            ("tables", &mut pipeline.tables),
        ] {
            for (name, config) in configs.iter_mut() {
                let connector = crate::source::configure(&config.kind, name, &config.settings)
                    .map_err(|e| {
                        let key = match e.key.as_str() {
                            "" => format!("{group}.{name}"),
                            key => format!("{group}.{name}.{key}"),
                        };
                        // `kind` and `watermark` sit beside the kind's own top-level keys.
                        let mut message = if e.key.contains(['.', '[']) {
                            with_suggestion(e.message)
                        } else {
                            with_suggestion(engine_keys(e.message))
                        };
                        // A table's kinds are the sources' read whole: `files`, `nexmark`.
                        if group == "tables" {
                            message = message.replacen("source `", "table `", 1);
                            if e.key == "kind" && message.contains("unknown value") {
                                message.push_str(
                                    " (a static table is `kind: files`; a table of a database \
                                     is joined by exporting it to files first, as PostgreSQL's \
                                     `COPY ... TO` writes CSV)",
                                );
                            }
                        }
                        match find_path_line(text, &key) {
                            Some(line) => invalid(format!("`{key}`: {message} (line {line})")),
                            None => invalid(format!("`{key}`: {message}")),
                        }
                    })?;
                if group == "tables" && !connector.reads_as_table() {
                    let key = format!("tables.{name}.kind");
                    let message = format!(
                        "`{key}`: a `{}` source cannot be a static table (one read of it whole \
                         at start); make it a stream under `sources:`",
                        config.kind
                    );
                    return Err(match find_path_line(text, &key) {
                        Some(line) => invalid(format!("{message} (line {line})")),
                        None => invalid(message),
                    });
                }
                config.connector = Some(connector);
            }
        }
        let mut sinks = vec![("sink", &mut pipeline.sink)];
        if let Some(late) = pipeline.late_rows.as_mut() {
            sinks.push(("late_rows", late));
        }
        for (key, config) in sinks {
            let connector =
                crate::sink::configure(&config.kind, &config.settings).map_err(|e| {
                    let key = match e.key.as_str() {
                        "" => key.to_string(),
                        inner => format!("{key}.{inner}"),
                    };
                    let message = if e.message.contains("unknown field `") {
                        with_suggestion(e.message.replacen(
                            "expected one of `",
                            "expected one of `kind`, `",
                            1,
                        ))
                    } else {
                        e.message
                    };
                    match find_path_line(text, &key) {
                        Some(line) => invalid(format!("`{key}`: {message} (line {line})")),
                        None => invalid(format!("`{key}`: {message}")),
                    }
                })?;
            config.connector = Some(connector);
        }
        pipeline.validate().map_err(|message| {
            // The first key the message quotes (`memory_limit: 3` quotes its value too).
            let line = message
                .split('`')
                .nth(1)
                .map(|key| key.split(':').next().unwrap_or(key).trim())
                .and_then(|key| find_path_line(text, key));
            match line {
                Some(line) => invalid(format!("{message} (line {line})")),
                None => invalid(message),
            }
        })?;
        pipeline.query_line = find_path_line(text, "query");
        pipeline.text = text.to_string();
        Ok(pipeline)
    }

    /// The text a run with its checkpoint at the local folder `checkpoint` (`None`: not on
    /// local disk) stores there (`pipelines/<fingerprint>.yaml`): the file's own, led by two
    /// comments naming the folder the run is in and the checkpoint's ([`RAN_IN`],
    /// [`CHECKPOINT_IN`]) where the file has a relative local path (a source's, a table's or a
    /// sink's `path`), so that `replay`, `state`, `inspect`, `rewind` and `repair` run from
    /// another folder resolve it where the batch did ([`Pipeline::parse_stored`]). A stored
    /// file read back with [`Pipeline::parse_stored`] keeps its own; a copy of one run as a
    /// file gets this run's.
    pub fn stored_text(&self, checkpoint: Option<&Path>) -> String {
        if self.stored && self.text.starts_with(RAN_IN) {
            return self.text.clone();
        }
        // A copy of a stored file, run as a file: its lines name another run's folders.
        let text = without_stored_lines(&self.text);
        if !self.has_relative_paths() {
            return text.to_string();
        }
        let one_line = |p: &Path| {
            p.to_str()
                .filter(|f| !f.contains(['\n', '\r']))
                .map(str::to_string)
        };
        match (
            std::env::current_dir().ok().as_deref().and_then(one_line),
            checkpoint.and_then(one_line),
        ) {
            (Some(folder), Some(checkpoint)) => {
                format!("{RAN_IN}{folder}\n{CHECKPOINT_IN}{checkpoint}\n{text}")
            }
            _ => text.to_string(),
        }
    }

    /// The folder a stored pipeline file ran in ([`RAN_IN`]), where it names one: its relative
    /// paths are relative to it there.
    pub fn ran_in(&self) -> Option<&Path> {
        self.stored
            .then(|| self.text.lines().next()?.strip_prefix(RAN_IN))
            .flatten()
            .map(Path::new)
    }

    /// Where the checkpoint was when a stored pipeline file ran ([`CHECKPOINT_IN`]), where it
    /// names it.
    pub fn checkpoint_was(&self) -> Option<&Path> {
        self.ran_in()?;
        self.text
            .lines()
            .nth(1)?
            .strip_prefix(CHECKPOINT_IN)
            .map(Path::new)
    }

    /// Every source's, table's, sink's and late-rows sink's settings.
    fn all_settings(&mut self) -> impl Iterator<Item = &mut serde_yaml::Mapping> {
        self.sources
            .values_mut()
            .chain(self.tables.values_mut())
            .map(|c| &mut c.settings)
            .chain(
                std::iter::once(&mut self.sink)
                    .chain(self.late_rows.as_mut())
                    .map(|c| &mut c.settings),
            )
    }

    pub(crate) fn has_relative_paths(&self) -> bool {
        let relative = |settings: &serde_yaml::Mapping| {
            settings
                .get("path")
                .and_then(|p| p.as_str())
                .is_some_and(is_relative_local)
        };
        self.sources
            .values()
            .chain(self.tables.values())
            .any(|c| relative(&c.settings))
            || relative(&self.sink.settings)
            || self
                .late_rows
                .as_ref()
                .is_some_and(|c| relative(&c.settings))
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`name` must be ASCII letters, digits, `_` or `-`, got `{}`",
                self.name
            ));
        }
        if self.sources.is_empty() {
            return Err("`sources` must name at least one source".into());
        }
        // A source's name is a folder of the checkpoint (`sources/<name>/`): one that is no
        // plain folder name (`..`, `a/b`) or that the store writes percent-encoded (`%2E%2E`
        // is where `..` goes) could share another's (walk 71 (8)).
        for (group, configs) in [("sources", &self.sources), ("tables", &self.tables)] {
            for name in configs.keys() {
                let plain = !name.is_empty()
                    && name != "."
                    && name != ".."
                    && !name
                        .chars()
                        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '%'));
                if !plain {
                    return Err(format!(
                        "`{group}`: `{}` cannot name a source (its name is a folder of the \
                         checkpoint): give it a name without `/`, `\\` or `%`, not `.` or `..` \
                         (letters, digits and `_` read best in SQL)",
                        name.escape_debug()
                    ));
                }
            }
        }
        // Declared column types, read as they will be when the source opens, so that a type
        // mistake is named with the file's other mistakes.
        for (group, configs) in [("sources", &self.sources), ("tables", &self.tables)] {
            for (name, config) in configs {
                let Some(schema) = config.settings.get("schema").and_then(|s| s.as_mapping())
                else {
                    continue;
                };
                let columns: Vec<(String, String)> = schema
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect();
                if let Err(e) =
                    futures::executor::block_on(crate::format::schema_from_sql_types(&columns))
                {
                    let said = e
                        .to_string()
                        .replacen(&format!("`schema:` key `{}` has type", e.column), "type", 1)
                        .replacen(", which is not a SQL type", " is not a SQL type", 1);
                    return Err(format!("`{group}.{name}.schema.{}`: {said}", e.column));
                }
            }
        }
        if self.query.trim().is_empty() {
            return Err("`query` is empty".into());
        }
        if self.retain_batches < 2 {
            return Err(format!(
                "`retain_batches` must be at least 2 (recovery needs the last two batches), got {}",
                self.retain_batches
            ));
        }
        if self.snapshot_every == 0 {
            return Err("`snapshot_every` must be at least 1".into());
        }
        self.memory_limit_bytes()?;
        // The kind's own needs are checked where a run starts (`--engine` may change it).
        self.engine.check(EngineKind::Local)?;
        for name in self.sources.keys().chain(self.tables.keys()) {
            if self.sources.contains_key(name) && self.tables.contains_key(name) {
                return Err(format!(
                    "`{name}` is both a source and a table; table names must be unique"
                ));
            }
        }
        // Tables are registered by their names in lower case: `A` and `a` would be one.
        let names: Vec<&String> = self.sources.keys().chain(self.tables.keys()).collect();
        for (i, name) in names.iter().enumerate() {
            if let Some(other) = names[..i].iter().find(|n| n.eq_ignore_ascii_case(name)) {
                return Err(format!(
                    "`{other}` and `{name}` differ only in case, and the query reads a table \
                     by its name in lower case, so it could not tell them apart: rename one"
                ));
            }
        }
        if self.late_rows.is_some() && self.sources.values().all(|s| s.watermark.is_none()) {
            return Err(
                "`late_rows` needs a source with a `watermark`; no source declares one".into(),
            );
        }
        if self.state_ttl.is_some_and(|ttl| ttl.after.is_zero()) {
            return Err("`state_ttl` must be longer than zero".into());
        }
        Ok(())
    }

    /// The file's own refusals, made before anything runs (by `run`, and by `explain` as a run
    /// makes them): [`Pipeline::check_locations`] with the checkpoint `checkpoint` (given on
    /// the command line where `from_command_line`), [`Pipeline::check_secrets`], and the
    /// `engine:` settings.
    ///
    /// Errors: the first refusal, in words, prefixed with the pipeline's name.
    pub fn check_file(&self, checkpoint: &str, from_command_line: bool) -> Result<(), String> {
        self.check_locations(checkpoint, from_command_line)
            .and_then(|()| self.check_secrets())
            .and_then(|()| self.engine.check(self.engine.kind))
            .map_err(|reason| format!("{}: {reason}", self.name))
    }

    /// Refuses a secret written as is where the checkpoint's copy of this file would keep it:
    /// a password in a PostgreSQL sink's `url`, a secret Kafka property
    /// ([`crate::secret::is_secret_property`]) not given as `${VAR}`. Checked by each run of
    /// the file (not when a stored copy, perhaps of an older Sluice, is read back).
    pub fn check_secrets(&self) -> Result<(), String> {
        let keep = "it would be kept in the checkpoint's copy of the pipeline file; name an \
                    environment variable instead, filled in when connecting";
        let mut sinks = vec![("sink".to_string(), &self.sink)];
        sinks.extend(self.late_rows.iter().map(|l| ("late_rows".to_string(), l)));
        for (key, sink) in &sinks {
            if sink.kind == "postgres"
                && let Some(url) = sink.settings.get("url").and_then(|u| u.as_str())
                && crate::sink::postgres::holds_literal_password(url)
            {
                return Err(format!(
                    "`{key}.url` holds a password as written: {keep} (`password=${{PGPASSWORD}}`, \
                     or `postgresql://user:${{PGPASSWORD}}@host/db`)"
                ));
            }
        }
        let kafka = self
            .sources
            .iter()
            .map(|(name, s)| (format!("sources.{name}"), &s.kind, &s.settings))
            .chain(
                self.tables
                    .iter()
                    .map(|(name, s)| (format!("tables.{name}"), &s.kind, &s.settings)),
            )
            .chain(
                sinks
                    .iter()
                    .map(|(key, s)| (key.clone(), &s.kind, &s.settings)),
            );
        for (key, kind, settings) in kafka {
            if kind != "kafka" {
                continue;
            }
            let Some(properties) = settings.get("properties").and_then(|p| p.as_mapping()) else {
                continue;
            };
            for (name, value) in properties {
                let (Some(name), Some(value)) = (name.as_str(), value.as_str()) else {
                    continue;
                };
                // The Java client's login setting, which librdkafka does not take: it would be
                // refused by name, with the password in it quoted.
                if name == "sasl.jaas.config" {
                    return Err(format!(
                        "`{key}.properties.sasl.jaas.config` is the Java client's setting, \
                         which librdkafka (Sluice's Kafka client) does not take: write \
                         `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, ...), `sasl.username` and \
                         `sasl.password: ${{KAFKA_PASSWORD}}` instead, with \
                         `security.protocol: SASL_SSL` (or `SASL_PLAINTEXT`)"
                    ));
                }
                if crate::secret::is_secret_property(name)
                    && !crate::secret::is_env_reference(value)
                {
                    return Err(format!(
                        "`{key}.properties.{name}` is a secret written as is: {keep} \
                         (`{name}: ${{KAFKA_SECRET}}`)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The settings of every source, table, sink and late-rows sink, each with the key that
    /// holds them in the file (`sources.clicks`, `sink`).
    fn keyed_settings(&self) -> impl Iterator<Item = (String, &serde_yaml::Mapping)> {
        self.sources
            .iter()
            .map(|(name, c)| (format!("sources.{name}"), &c.settings))
            .chain(
                self.tables
                    .iter()
                    .map(|(name, c)| (format!("tables.{name}"), &c.settings)),
            )
            .chain([("sink".to_string(), &self.sink.settings)])
            .chain(
                self.late_rows
                    .iter()
                    .map(|c| ("late_rows".to_string(), &c.settings)),
            )
    }

    /// Refuses `${VAR}` in a setting other than a connection's (`url`, `bootstrap_servers`,
    /// `properties`), where it is filled in when connecting: anywhere else (a topic, a table,
    /// a stream, a key) it would be used as written, and only a server would refuse it, or
    /// take it. (A path's is refused with its own words.)
    fn check_unfilled_variables(&self) -> Result<(), String> {
        const FILLED: [&str; 4] = ["url", "bootstrap_servers", "properties", "path"];
        for (at, settings) in self.keyed_settings() {
            for (name, value) in settings {
                let Some(name) = name.as_str().filter(|n| !FILLED.contains(n)) else {
                    continue;
                };
                let texts: Vec<&str> = match value {
                    serde_yaml::Value::String(text) => vec![text],
                    serde_yaml::Value::Sequence(items) => {
                        items.iter().filter_map(|i| i.as_str()).collect()
                    }
                    _ => continue,
                };
                for text in texts {
                    let Some(start) = text.find("${") else {
                        continue;
                    };
                    let end = text[start..]
                        .find('}')
                        .map_or(text.len(), |e| start + e + 1);
                    return Err(format!(
                        "`{at}.{name}` ({text}) holds `{}`: Sluice fills in `${{VAR}}` only in \
                         connection settings (`url`, `bootstrap_servers`, `properties`), never \
                         in `{name}`, which is used as written; write it out, or fill the file \
                         in before the run (`envsubst < pipeline.yaml > filled.yaml`)",
                        &text[start..end]
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuses locations that overlap where one of them is written: the sink's, the late-rows
    /// sink's or the checkpoint (`checkpoint`, the one the run uses) equal to, inside or around
    /// a source's, a table's or each other's. A sink inside a source's folder would be read
    /// back as input on the next run; a checkpoint inside a sink's folder would be published as
    /// output. Checked by each run of the file (not when a stored pipeline file is read back).
    /// A storage URL that carries credentials is refused first ([`crate::secret::url_secret`]).
    pub fn check_locations(&self, checkpoint: &str, from_command_line: bool) -> Result<(), String> {
        // `${VAR}` is filled in only in connection settings (crate::secret): a path is used
        // as written, and would make a folder named `${VAR}`.
        let key = if from_command_line {
            "--checkpoint"
        } else {
            "checkpoint"
        };
        let paths = self
            .keyed_settings()
            .filter_map(|(at, settings)| {
                Some((
                    format!("{at}.path"),
                    settings.get("path")?.as_str()?.to_string(),
                ))
            })
            .chain([(key.to_string(), checkpoint.to_string())]);
        for (key, path) in paths {
            // `${VAR}` or a shell's `$VAR` (`$HOME/out`): a folder named so is never meant.
            let variable = path.match_indices('$').find_map(|(start, _)| {
                let rest = &path[start + 1..];
                if rest.starts_with('{') {
                    let end = rest.find('}').map_or(rest.len(), |e| e + 1);
                    return Some(&path[start..start + 1 + end]);
                }
                let length = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    .then(|| &path[start..start + 1 + length])
            });
            // A shell's `~` (`~/out`): used as written, it makes a folder named `~` here,
            // which a later `rm -rf ~` would take for the home folder.
            if path == "~" || path.starts_with("~/") {
                let home = std::env::var("HOME").unwrap_or_else(|_| "/home/me".into());
                return Err(format!(
                    "`{key}` ({path}) starts with `~`, which only a shell turns into the home \
                     folder: Sluice uses a path as written, and would make a folder named `~` \
                     in the folder it runs in; write the home folder out (`{home}{}`)",
                    &path[1..]
                ));
            }
            if let Some(name) = variable {
                return Err(format!(
                    "`{key}` ({}) holds `{name}`: Sluice fills in `${{VAR}}` only in \
                     connection settings (`url`, `bootstrap_servers`, `properties`), never in \
                     a path, which is used as written; write the path out, or fill the file in \
                     before the run (`envsubst < pipeline.yaml > filled.yaml`)",
                    crate::secret::redact_url(&path)
                ));
            }
        }
        self.check_unfilled_variables()?;
        let mut read = Vec::new();
        for (name, config) in &self.sources {
            read.extend(
                config
                    .connector()
                    .location()
                    .map(|l| (format!("sources.{name}.path"), l)),
            );
        }
        for (name, config) in &self.tables {
            read.extend(
                config
                    .connector()
                    .location()
                    .map(|l| (format!("tables.{name}.path"), l)),
            );
        }
        let mut written = Vec::new();
        written.extend(
            self.sink
                .connector()
                .location()
                .map(|l| ("sink.path".to_string(), l)),
        );
        if let Some(late) = &self.late_rows {
            written.extend(
                late.connector()
                    .location()
                    .map(|l| ("late_rows.path".to_string(), l)),
            );
        }
        written.push((key.to_string(), checkpoint.to_string()));
        for (key, location) in written.iter().chain(&read) {
            if location.trim().is_empty() {
                return Err(format!(
                    "`{key}` is empty: give a folder (a relative path resolves against the \
                     folder `sluice` runs in) or an object-store URL"
                ));
            }
            if let Some(why) = crate::secret::url_secret(location) {
                return Err(format!(
                    "`{key}` ({}): {why}",
                    crate::secret::redact_url(location)
                ));
            }
        }
        // A stream the sink writes that a source reads (a Kafka topic): each batch's output
        // would come back as the next batch's input, without end.
        for (key, place) in &written {
            for (name, config) in &self.sources {
                if config.connector().reads_stream(place) {
                    return Err(format!(
                        "`{}` ({}) is a stream that source `{name}` reads: each batch's output \
                         would come back as input to the next, without end; write to another \
                         topic",
                        key.replace(".path", ".topic"),
                        crate::secret::redact_url(place)
                    ));
                }
            }
        }
        for (i, (key, location)) in written.iter().enumerate() {
            let others = written[i + 1..].iter().chain(&read);
            for (other_key, other) in others {
                let Some(how) = overlap(location, other) else {
                    continue;
                };
                return Err(format!(
                    "`{key}` ({location}) {how} `{other_key}` ({other}): what one writes the \
                     other would read or overwrite; give each its own folder"
                ));
            }
        }
        // Where each source's late rows go: a table or folder of its own beside the late-rows
        // sink's (`<table>_<source>`), which may be the sink's own (audit 90b: a complete-mode
        // batch deleted the late rows written into its table, exit 0).
        let parts: Vec<(String, String)> = match &self.late_rows {
            Some(late) => self
                .watermark_columns()
                .into_keys()
                .filter_map(|source| {
                    let place = late.connector().part_location(&source)?;
                    Some((format!("late_rows (of source `{source}`)"), place))
                })
                .collect(),
            None => Vec::new(),
        };
        for (key, location) in &parts {
            let others = written.iter().filter(|(k, _)| k != "late_rows.path");
            for (other_key, other) in others.chain(&read) {
                if let Some(how) = overlap(location, other) {
                    return Err(format!(
                        "`{key}` ({}) {how} `{other_key}` ({}): the late rows would be written \
                         where the other writes or reads; give `late_rows` another `table` or \
                         `path`",
                        crate::secret::redact_url(location),
                        crate::secret::redact_url(other),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each source with a watermark, and its event-time column.
    pub fn watermark_columns(&self) -> BTreeMap<String, String> {
        self.sources
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.watermark.as_ref()?.column.clone())))
            .collect()
    }

    /// The format of the files the sink writes; `None` for a sink that writes no files.
    pub fn sink_format(&self) -> Option<FileFormat> {
        self.sink.connector().format()
    }

    /// How the sink holds a batch's rows, for the digest ([`crate::digest::Held`]).
    pub fn sink_held(&self) -> crate::digest::Held {
        crate::digest::Held {
            format: self.sink_format(),
            column_type: self.sink.connector().held_type(),
        }
    }

    /// The checkpoint location: the pipeline's own, or `checkpoints/<name>` by default.
    pub fn checkpoint_location(&self) -> String {
        self.checkpoint
            .clone()
            .unwrap_or_else(|| format!("checkpoints/{}", self.name))
    }
}

/// Whether `path` is a local path relative to the working folder (not a URL, not empty).
fn is_relative_local(path: &str) -> bool {
    !path.is_empty() && !path.contains("://") && Path::new(path).is_relative()
}

/// How location `a` overlaps location `b` ("is the same folder as", "is inside", "holds"), or
/// `None` when they are apart. Local paths are compared absolute (against the working folder)
/// and with `.` and `..` resolved, through symbolic links where they exist; object-store URLs by
/// scheme, bucket and key prefix, a `/` at a time.
pub(crate) fn overlap(a: &str, b: &str) -> Option<&'static str> {
    // Each `memory://` location is a store of its own.
    if a.starts_with("memory://") || b.starts_with("memory://") {
        return None;
    }
    let (a, b) = (location_parts(a), location_parts(b));
    if a == b {
        Some("is the same location as")
    } else if b.len() < a.len() && a.starts_with(&b) {
        Some("is inside")
    } else if a.len() < b.len() && b.starts_with(&a) {
        Some("holds")
    } else {
        None
    }
}

/// A location as the parts of its path: `s3://bucket/a/b` is `["s3:", "bucket", "a", "b"]`,
/// a local path its absolute components.
fn location_parts(location: &str) -> Vec<String> {
    // A `file://` URL is the local path it names (as the store opens it).
    let file_path = location
        .starts_with("file://")
        .then(|| url::Url::parse(location).ok()?.to_file_path().ok())
        .flatten();
    let location = match &file_path {
        Some(path) => path.to_str().unwrap_or(location),
        None => location,
    };
    if let Some((scheme, rest)) = location.split_once("://") {
        // One store by each of its names (object_store's `ObjectStoreScheme`): `s3a://b/x`
        // is `s3://b/x` (walk 78: a sink under a source through the other name was let be).
        let given = scheme.to_ascii_lowercase();
        let scheme = match given.as_str() {
            "s3a" => "s3".to_string(),
            "az" | "adl" | "azure" | "abfs" | "abfss" => "az".to_string(),
            other => other.to_string(),
        };
        // Not the query (`?versionId=`, a signature) nor a user in the authority (but for
        // `abfs[s]://container@account`, where it names the container).
        let rest = rest.split(['?', '#']).next().unwrap_or(rest);
        let rest = match rest.split_once('/') {
            _ if given.starts_with("abfs") => rest.to_string(),
            Some((authority, path)) => format!(
                "{}/{path}",
                authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host)
            ),
            None => rest
                .rsplit_once('@')
                .map_or(rest, |(_, host)| host)
                .to_string(),
        };
        // Each part as the store names it: its URL's `.` and `..` resolved and `%xx` decoded
        // (walk 110: `s3://b/in/./ab/out`, `s3://b/in/zz/../ab/out` and `s3://b/in/a%62/out`
        // are written into `in/ab`, the source's own folder).
        let mut parts = vec![format!("{scheme}:")];
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            let part = percent_encoding::percent_decode_str(part).decode_utf8_lossy();
            match part.as_ref() {
                "." => {}
                // Not above the bucket (or container).
                ".." if parts.len() > 2 => {
                    parts.pop();
                }
                ".." => {}
                _ => parts.push(part.into_owned()),
            }
        }
        return parts;
    }
    let path = std::path::Path::new(location);
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // Resolve symbolic links through the longest part that exists.
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    let mut parts: Vec<String> = Vec::new();
    let components = resolved
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .chain(rest.into_iter().rev());
    for part in components {
        match part.to_str() {
            Some(".") => {}
            Some("..") => {
                parts.pop();
            }
            _ => parts.push(part.to_string_lossy().to_string()),
        }
    }
    parts
}

/// The 1-based line of a dotted key path (`sources.clicks.format`), found by looking for each
/// key in turn from where the previous one was found; for messages about values that parsed but
/// are not valid.
/// At most this many mistakes in a pipeline file are named at once.
const MISTAKES_SAID: usize = 8;

/// A message about a pipeline file without the line it names: its closing `(line N)`, or
/// the parser's `at line N column M`.
fn without_line(message: &str) -> String {
    if let Some(at) = message.rfind(" (line ")
        && message.ends_with(')')
    {
        return message[..at].to_string();
    }
    match message.find(" at line ") {
        Some(at) => {
            let tail = &message[at + " at line ".len()..];
            let after = tail.find(" (").map_or("", |i| &tail[i..]);
            format!("{}{after}", &message[..at])
        }
        None => message.to_string(),
    }
}

/// The key a message about a pipeline file is about, as a dotted path (`sources.s.format`):
/// the path it opens with in backquotes, or the unknown top-level field it names.
fn key_at_fault(message: &str) -> Option<String> {
    let key = match message.strip_prefix('`') {
        // `sources.s.format`: ..., or a check's `retain_batches` must ... and `memory_limit:
        // 3` is not ... (the key, with its value).
        Some(rest) => rest.split('`').next()?.split(':').next()?.trim(),
        None => message.strip_prefix("unknown field `")?.split('`').next()?,
    };
    (!key.is_empty() && !key.contains(['[', ' '])).then(|| key.to_string())
}

/// Sets the key at dotted `path` aside so that the rest of the file reads on, `about` being
/// what was said of it: a value not among those a key takes ("expected one of `json`, ...")
/// becomes the first of them (the key may be required: a files source's `format`), a bad
/// `name` a plain one; any other key is removed. Whether the key was there.
fn set_aside(value: &mut serde_yaml::Value, path: &str, about: &str) -> bool {
    // The pipeline's `name`, required, stands in as a plain one.
    if path == "name"
        && let Some(map) = value.as_mapping_mut()
        && map.get("name").and_then(serde_yaml::Value::as_str) != Some("pipeline")
    {
        map.insert("name".into(), "pipeline".into());
        return true;
    }
    // "unknown value `pq`, expected one of ...", not "unknown field ..., expected one of";
    // the value the message suggests where it does ("did you mean `csv`?"), so that keys
    // beside it read as they would with the value meant.
    let taken = about.split("unknown value `").nth(1);
    let first_taken = taken
        .and_then(|rest| rest.split("did you mean `").nth(1))
        .or_else(|| taken.and_then(|rest| rest.split("expected one of `").nth(1)))
        .and_then(|rest| rest.split('`').next());
    if let Some(taken) = first_taken {
        let mut at = &mut *value;
        for segment in path.split('.') {
            match at.get_mut(segment) {
                Some(inner) => at = inner,
                None => return false,
            }
        }
        if at.as_str() != Some(taken) {
            *at = serde_yaml::Value::String(taken.to_string());
            return true;
        }
    }
    // An unknown key the message takes for a near miss of one the setting has not
    // (`fromat`, "did you mean `format`?") is read as that one, so that keys the setting
    // requires are there and its other mistakes are found.
    if about.starts_with(&format!("`{path}`: unknown field"))
        || about.starts_with("unknown field `")
    {
        let meant = about
            .split("did you mean `")
            .nth(1)
            .and_then(|rest| rest.split('`').next());
        if let Some(meant) = meant
            && let Some((parent, key)) = match path.rsplit_once('.') {
                Some((parent, key)) => Some((Some(parent), key)),
                None => Some((None, path)),
            }
        {
            let mut at = &mut *value;
            for segment in parent.into_iter().flat_map(|p| p.split('.')) {
                match at.get_mut(segment) {
                    Some(inner) => at = inner,
                    None => return remove_key(value, path),
                }
            }
            if let Some(map) = at.as_mapping_mut()
                && !map.contains_key(meant)
                && let Some(taken) = map.remove(key)
            {
                map.insert(meant.into(), taken);
                return true;
            }
        }
    }
    remove_key(value, path)
}

/// Whether `value` has a key at dotted `path`.
fn has_key(value: &serde_yaml::Value, path: &str) -> bool {
    let mut at = value;
    for segment in path.split('.') {
        match at.get(segment) {
            Some(inner) => at = inner,
            None => return false,
        }
    }
    true
}

/// Removes the key at dotted `path` from `value`; whether it was there.
fn remove_key(value: &mut serde_yaml::Value, path: &str) -> bool {
    let mut at = value;
    let mut segments: Vec<&str> = path.split('.').collect();
    let Some(last) = segments.pop() else {
        return false;
    };
    for segment in segments {
        match at.get_mut(segment) {
            Some(inner) => at = inner,
            None => return false,
        }
    }
    at.as_mapping_mut()
        .is_some_and(|map| map.remove(last).is_some())
}

fn find_path_line(text: &str, path: &str) -> Option<usize> {
    // Comments are no keys (audit 88a: `# retain_batches: 100` on line 2 was named for the
    // setting on line 7).
    let lines: Vec<&str> = text.lines().map(without_comment).collect();
    let keys: Vec<&str> = path.split('.').filter(|k| !k.is_empty()).collect();
    find_keys_from(&lines, &keys, None, 0).map(|at| at + 1)
}

/// `line` without a YAML comment: all of it where it starts with `#`, else from a ` #` on
/// (a `#` in a quoted value after the line's keys cuts only the value).
fn without_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// The 0-based line of the last of `keys`, each a key of the mapping of the one before (the
/// first, of the mapping at line `parent`, or at the top level where `None`). A key not
/// written in its mapping may come from a merge (`<<: *defaults`): it is then looked for
/// under the anchor the mapping merges (`&defaults`), `depth` merges deep at most 8.
fn find_keys_from(
    lines: &[&str],
    keys: &[&str],
    mut parent: Option<usize>,
    depth: usize,
) -> Option<usize> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    for (n, key) in keys.iter().enumerate() {
        if let Some(found) = find_child(lines, parent, key) {
            parent = Some(found);
            continue;
        }
        if depth >= 8 {
            return None;
        }
        // The mapping's lines: its key's line, and those indented deeper below it.
        let at = parent.unwrap_or(0);
        let own = indent(lines.get(at)?);
        let end = (at + 1..lines.len())
            .find(|&i| !lines[i].trim().is_empty() && indent(lines[i]) <= own)
            .unwrap_or(lines.len());
        return (at..end)
            .flat_map(|i| merged_anchors(lines[i]))
            .filter_map(|anchor| {
                let defined = lines
                    .iter()
                    .position(|line| line.split_whitespace().any(|w| w == format!("&{anchor}")))?;
                find_keys_from(lines, &keys[n..], Some(defined), depth + 1)
            })
            .next();
    }
    parent
}

/// The 0-based line where `key` is written as a key of the mapping at line `parent` (the top
/// level where `None`): on the parent's own line after its key (`s: { format: json }`), or on
/// a line of its block (those below it indented deeper), preferring a line that starts with
/// the key over one that has it in a deeper mapping (audit 88a: `format` of source `s` was
/// named at `a: { schema: { s: bigint } }`, the line before).
fn find_child(lines: &[&str], parent: Option<usize>, key: &str) -> Option<usize> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let starts_with_key = |line: &str| {
        let trimmed = line.trim_start();
        let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed).trim_start();
        line_has_key(trimmed, key) && {
            let unquoted = trimmed.trim_start_matches(['"', '\'']);
            unquoted.starts_with(key)
        }
    };
    let (from, end) = match parent {
        None => (0, lines.len()),
        Some(p) => {
            let own = indent(lines[p]);
            // Flow style: the key after the parent's own colon.
            if let Some((_, rest)) = lines[p].split_once(':')
                && line_has_key(rest, key)
            {
                return Some(p);
            }
            let end = (p + 1..lines.len())
                .find(|&i| !lines[i].trim().is_empty() && indent(lines[i]) <= own)
                .unwrap_or(lines.len());
            (p + 1, end)
        }
    };
    let shallowest = (from..end)
        .filter(|&i| !lines[i].trim().is_empty())
        .map(|i| indent(lines[i]))
        .min()?;
    (from..end)
        .find(|&i| indent(lines[i]) == shallowest && starts_with_key(lines[i]))
        .or_else(|| (from..end).find(|&i| line_has_key(lines[i], key)))
}

/// The anchors a line's merge key names: `*a` in `<<: *a`, `*a` and `*b` in `<<: [*a, *b]`.
fn merged_anchors(line: &str) -> Vec<&str> {
    let Some((_, merged)) = line.split_once("<<:") else {
        return Vec::new();
    };
    merged
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        .filter_map(|word| word.strip_prefix('*'))
        .filter(|name| !name.is_empty())
        .collect()
}

/// Whether `line` writes `key` as a mapping's key: `key:`, also quoted (`"key":`) or with
/// spaces before its colon (`key :`, which YAML reads alike).
fn line_has_key(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(i, _)| {
        let before = line[..i].strip_suffix(['"', '\'']).unwrap_or(&line[..i]);
        let after = &line[i + key.len()..];
        let after = after.strip_prefix(['"', '\'']).unwrap_or(after);
        before
            .chars()
            .next_back()
            .is_none_or(|c| c == ' ' || c == '{' || c == ',' || c == '-')
            && after.trim_start_matches([' ', '\t']).starts_with(':')
    })
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`); `None` where it is not known.
fn physical_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: clicks
sources:
  clicks:
    kind: files
    path: data/clicks
    format: json
    schema: { ts: timestamp, user_id: bigint }
    max_files_per_batch: 2
query: SELECT * FROM clicks
trigger: every 5s
sink: { kind: files, path: out/clicks, format: parquet }
"#;

    fn parse(text: &str) -> Result<Pipeline, String> {
        Pipeline::parse(text, Path::new("p.yaml")).map_err(|e| e.to_string())
    }

    /// Walk 122: a `topic_pattern` that is no regular expression was said in the regex crate's
    /// drawing over four lines, and then "and: a Kafka source needs `topics` ... or
    /// `topic_pattern`", a mistake the taking out of the first made. One line, once.
    #[cfg(feature = "kafka")]
    #[test]
    fn a_bad_topic_pattern_is_said_once_in_one_line() {
        let text = GOOD.replace(
            "    kind: files\n    path: data/clicks\n    format: json\n    schema: { ts: timestamp, user_id: bigint }\n    max_files_per_batch: 2\n",
            "    kind: kafka\n    bootstrap_servers: h:9092\n    topic_pattern: \"w-(\"\n",
        );
        let said = parse(&text).expect_err("no regular expression");
        assert_eq!(
            said,
            "p.yaml: `sources.clicks.topic_pattern`: `w-(` is not a regular expression: unclosed \
             group (line 7)"
        );
    }

    /// Walk 126 (4): an unknown key read as the near miss suggested for it (`max_file: x` as
    /// `max_files_per_batch`) was then said a second time, as that key's type error, a key
    /// the file never had. Where the file has that key too, its own mistake is still said.
    #[test]
    fn an_unknown_key_is_said_once_not_again_as_the_key_suggested() {
        let text = GOOD.replace("    max_files_per_batch: 2", "    max_file_per_batch: x");
        let said = parse(&text).expect_err("an unknown key");
        assert!(
            said.contains("did you mean `max_files_per_batch`") && !said.contains("and: "),
            "{said}"
        );
        let text = GOOD.replace(
            "    max_files_per_batch: 2",
            "    max_file_per_batch: 3\n    max_files_per_batch: x",
        );
        let said = parse(&text).expect_err("two mistakes");
        assert!(
            said.contains("did you mean `max_files_per_batch`")
                && said.contains("and: `sources.clicks.max_files_per_batch`"),
            "{said}"
        );
    }

    /// Walk 126 (1): `escape` is a Kafka source's key for CSV values, refused for JSON and
    /// where it cannot escape a quote.
    #[cfg(feature = "kafka")]
    #[test]
    fn a_kafka_source_takes_escape_for_csv_values() {
        let kafka = |extra: &str| {
            GOOD.replace(
                "    kind: files\n    path: data/clicks\n    format: json\n    schema: { ts: timestamp, user_id: bigint }\n    max_files_per_batch: 2\n",
                &format!(
                    "    kind: kafka\n    bootstrap_servers: h:9092\n    topics: [t]\n    schema: {{ ts: timestamp, user_id: bigint }}\n{extra}"
                ),
            )
        };
        assert!(parse(&kafka("    format: csv\n    escape: '\\'\n")).is_ok());
        let said = parse(&kafka("    format: json\n    escape: '\\'\n")).expect_err("json");
        assert!(said.contains("it is for `format: csv`"), "{said}");
        let said = parse(&kafka("    format: csv\n    escape: ','\n")).expect_err("a comma");
        assert!(said.contains("cannot escape a CSV quote"), "{said}");
    }

    /// Walk 123 (4): a sink's `path:` with nothing after it (or `~`) wrote into a folder named
    /// `null`, exit 0; a source's said "cannot open `null`". A key given no value is a key not
    /// given: a required one is named, with its line; an optional one takes its default.
    #[test]
    fn a_setting_given_no_value_is_not_the_word_null() {
        for blank in ["", " ~", " null"] {
            let text = GOOD.replace(
                "sink: { kind: files, path: out/clicks, format: parquet }",
                &format!("sink:\n  kind: files\n  path:{blank}\n  format: parquet"),
            );
            let said = parse(&text).expect_err("a sink without a folder");
            assert!(
                said.contains(
                    "`sink.path`: given no value (`path:` with nothing after it, or `~`): give one \
                     (line 14)"
                ),
                "{blank:?}: {said}"
            );
            let text = GOOD.replace("    path: data/clicks", &format!("    path:{blank}"));
            let said = parse(&text).expect_err("a source without a folder");
            assert!(
                said.contains("`sources.clicks.path`: given no value"),
                "{blank:?}: {said}"
            );
        }
        let text = GOOD.replace("    max_files_per_batch: 2", "    max_files_per_batch:");
        assert!(
            parse(&text).is_ok(),
            "an optional key with no value takes its default"
        );
    }

    /// Walk 37: an anchor's top-level key (`defaults:`) was refused as unknown, with no
    /// word of `x-`.
    #[test]
    fn an_unknown_top_level_key_names_the_x_prefix() {
        let said = parse(&GOOD.replace("name: clicks", "defaults: { a: 1 }\nname: clicks"))
            .expect_err("unknown");
        assert!(said.contains("starts with `x-`: `x-defaults`"), "{said}");
        parse(&GOOD.replace("name: clicks", "x-defaults: { a: 1 }\nname: clicks"))
            .expect("an x- key is left out");
    }

    /// Walk 121 (8): anchors whose aliases expand past the YAML reader's bound were said as
    /// "unknown field `x-a0`" (whose name starts with `x-`), the cause left out.
    #[test]
    fn aliases_past_the_readers_bound_are_said_so() {
        let mut anchors = vec!["x-a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]".to_string()];
        for i in 1..10 {
            anchors.push(format!(
                "x-a{i}: &a{i} [{}]",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        let said = parse(&format!("{}\n{GOOD}", anchors.join("\n"))).expect_err("refused");
        assert!(
            said.contains("more than the YAML reader takes (repetition limit exceeded")
                && !said.contains("unknown field"),
            "{said}"
        );
    }

    /// Walk 40 (6): a sink of a kind there is not (`nats`) had each of its other keys named
    /// as a mistake, "expected `path` or `format`", as if a files sink's; they are not, and
    /// a mistake elsewhere still is.
    #[test]
    fn the_keys_of_an_unknown_kind_are_not_named_as_mistakes() {
        let text = GOOD
            .replace(
                "sink: { kind: files, path: out/clicks, format: parquet }",
                "sink: { kind: nats, url: \"nats://h:4222\", subject: out }",
            )
            .replace("trigger: every 5s", "trigger: every 5s\nlimit: 3");
        let said = parse(&text).expect_err("refused");
        assert!(
            said.contains("`sink.kind`: unknown value `nats`") && said.contains("`limit`"),
            "{said}"
        );
        assert!(
            !said.contains("sink.url") && !said.contains("sink.subject"),
            "{said}"
        );
        // A near miss is read as the kind meant: a mistake among its keys is still named.
        let text = GOOD.replace(
            "sink: { kind: files, path: out/clicks, format: parquet }",
            "sink: { kind: postgress, url: \"host=h\", tabel: t }",
        );
        let said = parse(&text).expect_err("refused");
        assert!(
            said.contains("did you mean `postgres`") && said.contains("tabel"),
            "{said}"
        );
    }

    /// Two tables whose names differ only in case are one table to SQL: refused, naming both.
    #[test]
    fn names_that_differ_only_in_case_are_refused() {
        let text = GOOD.replace(
            "query: SELECT * FROM clicks",
            "tables:\n  Clicks: { kind: files, path: data/c.csv, format: csv }\nquery: SELECT * FROM clicks",
        );
        let said = parse(&text).expect_err("refused");
        assert!(
            said.contains("`clicks` and `Clicks` differ only in case"),
            "{said}"
        );
    }

    /// Walk 41 (4): a table of `kind: postgres` was refused with the sources' kinds, most of
    /// which a table cannot be; it says what a table can be, and how a database's gets in.
    #[test]
    fn a_table_of_a_kind_there_is_not_says_what_a_table_can_be() {
        let text = GOOD.replace(
            "query: SELECT * FROM clicks",
            "tables:\n  pages: { kind: postgres, url: \"host=h\", table: p }\nquery: SELECT * FROM clicks",
        );
        let said = parse(&text).expect_err("refused");
        assert!(
            said.contains("`tables.pages.kind`: table `pages`: unknown value `postgres`")
                && said.contains("a static table is `kind: files`;")
                && said.contains("`COPY ... TO`"),
            "{said}"
        );
    }

    /// A setting that came from a merge (`<<: *defaults`) is named at its line under the
    /// anchor, whichever way the merge is written.
    #[test]
    fn a_merged_setting_is_named_at_its_line() {
        for (text, line) in [
            (
                "name: m\nx-src: &src\n  kind: files\n  format: json\n  max_files_per_batch: nope\n\
                 sources:\n  s:\n    <<: *src\n    path: in\nquery: SELECT 1\nsink: { kind: console }\n",
                5,
            ),
            (
                "name: m\nx-a: &a { kind: files }\nx-b: &b\n  format: json\n  max_files_per_batch: nope\n\
                 sources:\n  s: { <<: [*a, *b], path: in }\nquery: SELECT 1\nsink: { kind: console }\n",
                5,
            ),
        ] {
            let said = parse(text).expect_err("a bad merged setting");
            assert!(
                said.contains("`sources.s.max_files_per_batch`")
                    && said.contains(&format!("(line {line})")),
                "{said}"
            );
        }
    }

    /// Walk 33: YAML merge keys (`<<: *defaults`) were not applied, and the source read
    /// without them lacked `kind`. They are applied, as YAML 1.1 and Spark users' tools do.
    #[test]
    fn yaml_merge_keys_are_applied() {
        let text = r#"
name: merged
sources:
  a: &files
    kind: files
    path: data/a
    format: json
    schema: { ts: timestamp, user_id: bigint }
  b:
    <<: *files
    path: data/b
    format: csv
query: SELECT * FROM a UNION ALL SELECT * FROM b
sink: { kind: files, path: out/x, format: parquet }
"#;
        let pipeline = parse(text).expect("merged");
        let b = &pipeline.sources["b"];
        assert_eq!(b.kind, "files");
        let setting = |key: &str| {
            b.settings
                .get(key)
                .and_then(|v| v.as_str())
                .map(String::from)
        };
        assert_eq!(setting("path").as_deref(), Some("data/b"), "its own path");
        assert_eq!(setting("format").as_deref(), Some("csv"), "its own format");
        assert!(b.settings.get("schema").is_some(), "the schema merged in");
        // A mistake in a merged file still names its key, and its line in the file.
        let said = parse(&text.replace("format: csv", "format: cvs")).expect_err("cvs");
        assert!(
            said.contains("`sources.b.format`") && said.contains("(line 12)"),
            "{said}"
        );
        // Walk 36: shared settings under a top-level `x-` key, and a folded query's comment
        // in a file with merges, which is still refused at its own line.
        let shared = r#"
name: merged
x-files: &files
  kind: files
  format: json
sources:
  a:
    <<: *files
    path: data/a
query: >
  SELECT * -- all of it
  FROM a
sink: { kind: files, path: out/x, format: parquet }
"#;
        let said = parse(shared).expect_err("the folded comment");
        assert!(
            said.contains("the comment `-- all of it` runs on to the end of the query")
                && said.contains("(line 10)"),
            "{said}"
        );
        let pipeline = parse(&shared.replace("query: >", "query: |")).expect("x- keys left out");
        assert_eq!(pipeline.sources["a"].kind, "files");
        // Review: a merged mapping that merges another.
        let nested = shared.replace("query: >", "query: |").replace(
            "x-files: &files\n  kind: files\n  format: json",
            "x-base: &base\n  format: json\nx-files: &files\n  <<: *base\n  kind: files",
        );
        let pipeline = parse(&nested).expect("merged twice");
        assert_eq!(
            pipeline.sources["a"]
                .settings
                .get("format")
                .and_then(|f| f.as_str()),
            Some("json"),
            "{nested}"
        );
    }

    /// Walk 33 (3): `${VAR}` in a Kafka sink's topic was sent to the broker as written
    /// (InvalidTopic, exit 1). A setting other than a connection's holding one is refused
    /// before the run, naming it; in `bootstrap_servers` it stays a variable to fill in.
    #[test]
    fn a_variable_outside_connection_settings_is_refused() {
        let kafka = |sink: &str| {
            GOOD.replace(
                "sink: { kind: files, path: out/clicks, format: parquet }",
                sink,
            )
        };
        let text = kafka(
            "sink: { kind: kafka, bootstrap_servers: \"${BROKER}\", topic: \"w_${ENVNAME}_clicks\" }",
        );
        let said = parse(&text)
            .expect("parses")
            .check_locations("ckpt", false)
            .expect_err("refused");
        assert!(
            said.contains("`sink.topic` (w_${ENVNAME}_clicks) holds `${ENVNAME}`")
                && said.contains("envsubst"),
            "{said}"
        );
        let text = kafka("sink: { kind: kafka, bootstrap_servers: \"${BROKER}\", topic: clicks }");
        parse(&text)
            .expect("parses")
            .check_locations("ckpt", false)
            .expect("a connection setting's variable is filled in when connecting");
    }

    /// Walk 33 (1): a `--` comment in a folded query (`query: >`) took the rest of the query
    /// with it (YAML joins the lines), and the query ran without its last filter, exit 0. It
    /// is refused naming the SQL it took; the same query as a literal block, or with the
    /// comment on the last line, or with `/* */`, reads.
    #[test]
    fn a_comment_that_folding_runs_into_the_query_is_refused() {
        let with = |query: &str| GOOD.replace("query: SELECT * FROM clicks", query);
        for folded in [
            "query: >\n  SELECT * FROM clicks\n  WHERE user_id > 4 -- only the slow ones\n  AND ts IS NOT NULL",
            "query: >-\n  SELECT * FROM clicks\n  WHERE user_id > 4 -- only the slow ones\n  AND ts IS NOT NULL\n",
            "query: SELECT * FROM clicks\n  WHERE user_id > 4 -- only the slow ones\n  AND ts IS NOT NULL",
            "query: \"SELECT * FROM clicks\n  WHERE user_id > 4 -- only the slow ones\n  AND ts IS NOT NULL\"",
        ] {
            let said = parse(&with(folded)).expect_err(folded);
            assert!(
                said.contains("the comment `-- only the slow ones` runs on to the end of the query and takes `AND ts IS NOT NULL` with it")
                    && said.contains("`query: |`")
                    && said.contains("(line 10)"),
                "{folded}: {said}"
            );
        }
        for fine in [
            "query: |\n  SELECT * FROM clicks\n  WHERE user_id > 4 -- only the slow ones\n  AND ts IS NOT NULL",
            "query: >\n  SELECT * FROM clicks\n  WHERE user_id > 4 /* only the slow ones */\n  AND ts IS NOT NULL",
            "query: >\n  SELECT * FROM clicks\n  WHERE user_id > 4\n  -- only the slow ones",
            "query: SELECT * FROM clicks -- all of them",
            "query: SELECT '--' AS dashes FROM clicks",
        ] {
            let pipeline = parse(&with(fine)).expect(fine);
            assert!(pipeline.query.contains("FROM clicks"), "{fine}");
        }
    }

    /// Walk 29 (4): a bad watermark `delay` beside `late_rows` was named with "`late_rows`
    /// needs a source with a `watermark`; no source declares one", which the file does: a
    /// mistake of the reading again without the watermark, not of the file. Only the delay
    /// is named, and a later mistake still is.
    #[test]
    fn a_bad_watermark_delay_is_not_named_as_a_missing_watermark() {
        for delay in ["10S", "1M", "10"] {
            let text = GOOD
                .replace(
                    "    max_files_per_batch: 2",
                    &format!("    watermark: {{ column: ts, delay: {delay} }}"),
                )
                .replace("query:", "output_mode: append\nlate_rows: { kind: files, path: out/late, format: json }\nquery:")
                .replace("every 5s", "evry 5s");
            let said = parse(&text).expect_err(delay);
            assert!(said.contains("`sources.clicks.watermark.delay`"), "{said}");
            assert!(!said.contains("no source declares one"), "{said}");
            assert!(said.contains("`trigger`"), "the trigger too: {said}");
        }
    }

    /// Walk 29 (8): a source's `format: pq` ended the list (the key is required, so the file
    /// read again without it had only that to say), and the bad `name` came a run later.
    /// A value not among those taken stands in as the first of them for the reading on.
    #[test]
    fn a_required_key_of_a_bad_value_does_not_end_the_list() {
        let text = GOOD
            .replace("name: clicks", "name: my pipe")
            .replace("format: json", "format: pq")
            .replace("ts: timestamp", "ts: timestmp");
        let said = parse(&text).expect_err("three mistakes");
        assert!(
            said.contains("`name` must be ASCII letters, digits")
                && said.contains("`sources.clicks.format`: unknown value `pq`")
                && said.contains(
                    "`sources.clicks.schema.ts`: type `timestmp` is not a SQL type DataFusion \
                     reads (did you mean `timestamp`?)"
                ),
            "{said}"
        );
        assert_eq!(said.lines().count(), 3, "{said}");
        // The value suggested stands in, so keys of that format are not named as misplaced.
        let said = parse(
            &GOOD
                .replace("format: json", "format: cvs")
                .replace("    max_files_per_batch: 2", "    delimiter: \";\""),
        )
        .expect_err("cvs");
        assert_eq!(said.lines().count(), 1, "{said}");
        assert!(said.contains("did you mean `csv`?"), "{said}");
    }

    /// Walk 28 (8): Spark's option names were answered by edit distance, or not at all.
    #[test]
    fn sparks_option_names_are_named_with_ours() {
        let said = parse(&GOOD.replace("max_files_per_batch: 2", "maxFilesPerTrigger: 2"))
            .expect_err("a Spark name");
        assert!(
            said.contains("(Spark's `maxFilesPerTrigger` is `max_files_per_batch` here)"),
            "{said}"
        );
        let said = parse(&GOOD.replace("trigger:", "outputMode: append\ntrigger:"))
            .expect_err("a Spark name");
        assert!(
            said.contains("(Spark's `outputMode` is `output_mode` here)"),
            "{said}"
        );
        // Walk 62 (14): Flink's allowed lateness, at the top level or in the source.
        for (from, to) in [
            ("trigger:", "allowed_lateness: 1m\ntrigger:"),
            ("max_files_per_batch: 2", "allowedLateness: 1m"),
        ] {
            let said = parse(&GOOD.replace(from, to)).expect_err("Flink's setting");
            assert!(
                said.contains("Flink's allowed lateness has no setting here")
                    && said.contains("`late_rows:`")
                    && !said.contains("`x-"),
                "{said}"
            );
        }
    }

    /// Walk 68 (2-5): Spark's file-source and Kafka options that are named otherwise or have
    /// no counterpart got a bare "unknown field" (or a "did you mean" toward another
    /// setting), `foreachBatch` a list of kinds, and a per-topic `earliest` serde's "did not
    /// match any variant". Each is answered with what Sluice has.
    #[test]
    fn sparks_options_without_a_setting_of_that_name_are_answered() {
        for (option, answer) in [
            (
                "latestFirst: true",
                "Spark's `latestFirst` has no counterpart",
            ),
            (
                "maxFileAge: 7d",
                "`min_file_age` leaves out files changed too recently",
            ),
            (
                "cleanSource: archive",
                "Sluice never moves or deletes input",
            ),
            (
                "maxBytesPerTrigger: 1000",
                "`max_files_per_batch` bounds a batch by files",
            ),
            (
                "recursiveFileLookup: true",
                "folders under `path` are read at any depth",
            ),
            ("multiLine: true", "a JSON value may span lines"),
            ("mode: DROPMALFORMED", "Spark's `mode` is `on_error` here"),
            (
                "columnNameOfCorruptRecord: bad",
                "comes nearest as `rescued_data_column`",
            ),
        ] {
            let said =
                parse(&GOOD.replace("max_files_per_batch: 2", option)).expect_err("a Spark option");
            assert!(
                said.contains(answer) && !said.contains("did you mean"),
                "{option}: {said}"
            );
        }
        let said = parse(&GOOD.replace(
            "{ kind: files, path: out/clicks, format: parquet }",
            "{ kind: foreachBatch, path: out/clicks }",
        ))
        .expect_err("foreachBatch");
        assert!(
            said.contains("Spark's `foreachBatch` has no counterpart")
                && said.contains("`output_mode: update` and `key:`"),
            "{said}"
        );
    }

    /// Walk 71 (8): sources named `..` and `%2E%2E` shared one checkpoint folder.
    #[test]
    fn a_source_name_that_is_no_plain_folder_name_is_refused() {
        for name in ["'..'", "'%2E%2E'", "'a/b'", "'.'"] {
            let said =
                parse(&GOOD.replace("  clicks:\n", &format!("  {name}:\n"))).expect_err(name);
            assert!(said.contains("cannot name a source"), "{name}: {said}");
        }
    }

    /// Walk 28 (8): a file format given as the sink's kind, and a kind as its format.
    #[test]
    fn a_format_for_a_kind_and_a_kind_for_a_format_are_named() {
        let said = parse(&GOOD.replace(
            "{ kind: files, path: out/clicks, format: parquet }",
            "{ kind: parquet, path: out/clicks }",
        ))
        .expect_err("a format as the kind");
        assert!(said.contains("`kind: files, format: parquet`"), "{said}");
        let said = parse(&GOOD.replace("format: parquet }", "format: console }"))
            .expect_err("a kind as the format");
        assert!(
            said.contains("`format: console` is a sink kind of its own: write `kind: console`"),
            "{said}"
        );
    }

    /// Walk 26: a file with several mistakes named one a run, so each fix met the next. Every
    /// key at fault is named, in the order of its lines, each with its own line.
    #[test]
    fn every_mistake_in_a_file_is_named_at_once() {
        let text = GOOD
            .replace("    max_files_per_batch: 2", "    max_file_per_batch: 2")
            .replace("every 5s", "evry 5s")
            .replace("format: parquet", "format: parket")
            .replace("query:", "outptu_mode: append\nquery:");
        let said = parse(&text).expect_err("four mistakes");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 4, "{said}");
        for (line, (key, at)) in lines.iter().zip([
            ("`sources.clicks.max_file_per_batch`", 9),
            ("unknown field `outptu_mode`", 10),
            ("`trigger`", 12),
            ("`sink.format`", 13),
        ]) {
            assert!(
                line.contains(key) && line.ends_with(&format!("(line {at})")),
                "{key} at line {at}: {said}"
            );
        }
        assert!(lines[0].starts_with("p.yaml: `sources.clicks.max_file_per_batch`: unknown field"));
        // Walk 60 (2): a misspelt required key (`fromat`) left its source wanting `format`,
        // and the reading stopped there: the sink's mistake went unsaid. A near miss is read
        // as the key meant, so the reading goes on.
        let said = parse(
            &GOOD
                .replace("    format: json", "    fromat: json")
                .replace("sink: { kind: files, path:", "sink: { kind: files, pth:"),
        )
        .expect_err("two mistakes");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 2, "{said}");
        assert!(
            lines[0].contains("`sources.clicks.fromat`") && lines[0].ends_with("(line 7)"),
            "{said}"
        );
        assert!(
            lines[1].contains("`sink.pth`") && lines[1].ends_with("(line 12)"),
            "{said}"
        );
        // And a lone unknown top-level key has its line too.
        let said = parse(&GOOD.replace("name: clicks", "nme: clicks")).expect_err("one mistake");
        assert!(
            said.contains("unknown field `nme`") && said.ends_with("(line 2)"),
            "{said}"
        );
        // Walk 28 (8): the checks after the keys are read came one a run after them.
        let said = parse(&GOOD.replace(
            "trigger: every 5s",
            "trigger: every 5s\nretain_batches: 0\nsnapshot_every: 0\nmemory_limit: 3",
        ))
        .expect_err("three mistakes");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 3, "{said}");
        assert!(
            lines[0].contains("retain_batches")
                && lines[1].contains("snapshot_every")
                && lines[2].contains("`memory_limit: 3` is not a size"),
            "{said}"
        );
        assert!(lines[1].starts_with("  and: "), "{said}");
        // A key whose removal leaves a required one missing ends the list there.
        let said = parse(&GOOD.replace("kind: files\n", "kind: fils\n")).expect_err("kind");
        assert_eq!(said.lines().count(), 1, "{said}");
        // Unless it is inside a setting of a source: the setting goes, and reading goes on.
        let said = parse(
            &GOOD
                .replace(
                    "    max_files_per_batch: 2",
                    "    watermark: { column: ts, delay: 10 }",
                )
                .replace("query:", "output_mode: upsert\nquery:"),
        )
        .expect_err("two mistakes");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 2, "{said}");
        assert!(
            lines[0].contains("`sources.clicks.watermark.delay`: invalid duration `10`"),
            "{said}"
        );
        assert!(lines[1].contains("`output_mode`"), "{said}");
    }

    /// `engine.workers` names at least two workers, each `http://HOST:PORT` once; every
    /// refusal says what to write.
    #[cfg(feature = "distributed")]
    #[test]
    fn workers_are_two_or_more_plain_http_addresses_with_ports() {
        let engine = |workers: &[&str]| EngineConfig {
            kind: EngineKind::Distributed,
            workers: workers.iter().map(|w| w.to_string()).collect(),
            distribute_above: None,
            worker_timeout: None,
        };
        let check = |workers: &[&str]| engine(workers).check(EngineKind::Distributed);
        assert_eq!(check(&["http://10.0.0.5:50051", "http://w2:50051"]), Ok(()));
        assert_eq!(check(&["http://a:80", "http://[::1]:80"]), Ok(()));
        for (workers, says) in [
            (&["http://10.0.0.5:50051"][..], "lists one worker"),
            (&["https://a:1", "http://b:2"][..], "no TLS"),
            (&["http://a", "http://b:2"][..], "names no port"),
            (&["http://a:1/x", "http://b:2"][..], "without a path"),
            (&["grpc://a:1", "http://b:2"][..], "starts with `http://`"),
            (
                &["10.0.0.5:50051", "http://b:2"][..],
                "not a worker's address",
            ),
            (&["http://a:1", "http://a:1/"][..], "twice"),
        ] {
            let said = check(workers).expect_err(says);
            assert!(
                said.contains(says)
                    && (said.contains("http://HOST:PORT")
                        || ["twice", "lists one worker"].contains(&says)),
                "{workers:?}: {said}"
            );
        }
        assert_eq!(engine(&[]).check(EngineKind::Local), Ok(()));
    }

    #[test]
    fn parses_a_full_pipeline() {
        let p = parse(GOOD).expect("valid pipeline");
        assert_eq!(p.name, "clicks");
        assert_eq!(p.trigger, Trigger::Every(Duration::from_secs(5)));
        let connector = format!("{:?}", p.sources["clicks"].connector());
        assert!(connector.starts_with("FilesConfig"), "{connector}");
        assert!(
            connector.contains("max_files_per_batch: Some(2)"),
            "{connector}"
        );
        assert!(connector.contains("format: Json"), "{connector}");
        assert_eq!(p.sink_format(), Some(FileFormat::Parquet));
        assert_eq!(p.output_mode, OutputMode::Append);
        assert_eq!(p.checkpoint_location(), "checkpoints/clicks");
        assert_eq!(p.retain_batches, 100);
    }

    #[test]
    fn unknown_key_is_named_with_line_and_suggestion() {
        let text = GOOD.replace("    format: json", "    fromat: json");
        let err = parse(&text).expect_err("unknown key");
        assert!(err.contains("unknown field `fromat`"), "{err}");
        assert!(err.contains("did you mean `format`"), "{err}");
        assert!(err.contains("line 7"), "{err}");
        // Walk 56 (7): a key written with a space before its colon, or quoted, which YAML
        // reads alike, is found on its line too.
        for source in ["  clicks :", "  \"clicks\":", "  'clicks' :"] {
            let text = GOOD
                .replace("  clicks:", source)
                .replace("    format: json", "    fromat: json");
            let err = parse(&text).expect_err("unknown key");
            assert!(err.contains("line 7"), "{source}: {err}");
        }
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let err = parse(&GOOD.replace("every 5s", "every 5 parsecs")).expect_err("bad trigger");
        assert!(err.contains("trigger"), "{err}");
        assert!(err.contains("line 11"), "{err}");
        let err = parse(&GOOD.replace("format: json", "format: jsn")).expect_err("bad format");
        assert!(err.contains("did you mean `json`"), "{err}");
        // A number where a word was written: said in words, not Rust's type names, and the
        // key named once, in the pipeline's keys and in a source's.
        let err = parse(&GOOD.replace("trigger:", "retain_batches: two\ntrigger:"))
            .expect_err("a word for a number");
        assert_eq!(
            err,
            "p.yaml: `retain_batches`: invalid type: string \"two\", expected a whole number, \
             2 or more (line 11)"
        );
        let err = parse(&GOOD.replace("max_files_per_batch: 2", "max_files_per_batch: -2"))
            .expect_err("a negative count");
        assert_eq!(
            err,
            "p.yaml: `sources.clicks.max_files_per_batch`: invalid type: integer `-2`, expected \
             a whole number, 1 or more (line 9)"
        );
    }

    #[test]
    fn a_key_path_is_said_once_and_syntax_errors_say_line_and_column() {
        let text = GOOD.replace(
            "    max_files_per_batch: 2",
            "    watermark: { column: ts, delay: ten }",
        );
        let err = parse(&text).expect_err("bad duration");
        assert_eq!(
            err,
            "p.yaml: `sources.clicks.watermark.delay`: invalid duration `ten` (not a duration); \
             write it like `500ms`, `10s`, `5m` or `1h` (line 9)"
        );
        let text = GOOD.replace(
            "    max_files_per_batch: 2",
            "    watermark: { column: ts, delay: 10s",
        );
        let err = parse(&text).expect_err("unclosed");
        assert!(err.contains("is a closing `}` or `]` missing"), "{err}");
        let err = parse(&GOOD.replace("format: parquet }", "format: parquet")).expect_err("syntax");
        assert!(err.starts_with("p.yaml: YAML syntax error: "), "{err}");
        assert!(err.contains("(line 12, column"), "{err}");
        assert!(!err.contains('?'), "{err}");
        // A tab that indents a line is named on its own line (walk 6).
        let twice = GOOD.replace("query:", "retain_batches: 3\nretain_batches: 4\nquery:");
        let err = parse(&twice).expect_err("twice");
        assert!(
            err.contains("`retain_batches` is written twice in one mapping (lines"),
            "{err}"
        );
        let two = GOOD.replace(
            "query:",
            "  clicks:\n    kind: files\n    path: other\n    format: json\nquery:",
        );
        let err = parse(&two).expect_err("two sources named clicks");
        assert!(
            err.contains("`clicks` is written twice in one mapping (lines 4 and 10)"),
            "{err}"
        );
        // Audit 88a: lines were named by a comment that wrote the key, and by a deeper
        // mapping's key of the same name on an earlier line.
        let commented = format!("# retain_batches: 100 (the default)\n{GOOD}retain_batches: 1\n");
        let err = parse(&commented).expect_err("retain 1");
        let line = commented.lines().count();
        assert!(err.contains(&format!("(line {line})")), "{err}");
        let nested = GOOD.replace(
            "sources:\n",
            "sources:\n  a: { kind: files, path: a, format: json, schema: { clicks: bigint } }\n",
        )
        .replace("format: json\n    schema: { ts", "format: jsn\n    schema: { ts");
        let err = parse(&nested).expect_err("jsn");
        let line = nested
            .lines()
            .position(|l| l.contains("format: jsn"))
            .expect("the line")
            + 1;
        assert!(
            err.contains("sources.clicks.format") && err.contains(&format!("(line {line})")),
            "{err}"
        );
        // Audit 88a: a source that is no mapping, alone under `sources`, was followed by an
        // invented "`sources` must name at least one source".
        for written in ["sources: { clicks: [1] }", "sources:\n  clicks: 5"] {
            let text = format!(
                "name: x\n{written}\nquery: SELECT 1\nsink: {{ kind: files, path: out, format: json }}\n"
            );
            let err = parse(&text).expect_err(written);
            assert!(
                err.contains("`sources.clicks`") && !err.contains("at least one source"),
                "{err}"
            );
        }
        // Audit 88a: `engine: distributed`, as prose says it, was "a mapping of keys".
        let err =
            parse(&GOOD.replace("query:", "engine: distributed\nquery:")).expect_err("engine");
        assert!(err.contains("`{ kind: distributed, workers: ["), "{err}");
        // Audit 88a: a mistake inside `state_ttl`'s mapping was not named.
        for (ttl, said) in [
            ("{ after: 1h, tme: processing }", "unknown field `tme`"),
            ("{ after: 10, time: event }", "a number needs a unit"),
            (
                "{ after: 1h, time: Processing }",
                "unknown variant `Processing`",
            ),
            ("10", "a number needs a unit"),
            ("[1h]", "`state_ttl` is a duration"),
        ] {
            let err = parse(&GOOD.replace("query:", &format!("state_ttl: {ttl}\nquery:")))
                .expect_err(ttl);
            assert!(
                err.contains(said) && err.contains("state_ttl"),
                "{ttl}: {err}"
            );
        }
        let ttl = parse(&GOOD.replace("query:", "state_ttl: { after: 2h }\nquery:"))
            .expect("ttl")
            .state_ttl
            .expect("set");
        assert_eq!(ttl.after, Duration::from_secs(7200));
        // Audit 88a: `1` and `"1"` are two keys to YAML and one name once read: the second
        // source was read, the first dropped, without a word; a column likewise.
        let typed = GOOD.replace(
            "query:",
            "  1:\n    kind: files\n    path: a\n    format: json\n  \"1\":\n    kind: files\n    \
             path: b\n    format: json\nquery:",
        );
        let err = parse(&typed).expect_err("1 and \"1\"");
        assert!(err.contains("`1` is written twice in one mapping"), "{err}");
        let typed = GOOD.replace(
            "query:",
            "  c:\n    kind: files\n    path: a\n    format: json\n    schema: { true: bigint, \
             \"true\": string }\nquery:",
        );
        let err = parse(&typed).expect_err("true and \"true\"");
        assert!(
            err.contains("`true` is written twice in one mapping"),
            "{err}"
        );
        let tabbed = GOOD.replace("    max_files_per_batch: 2", "\tmax_files_per_batch: 2");
        let line = tabbed
            .lines()
            .position(|l| l.starts_with('\t'))
            .expect("the tab")
            + 1;
        let err = parse(&tabbed).expect_err("tab");
        assert_eq!(
            err,
            format!(
                "p.yaml: YAML syntax error: line {line} is indented with a tab; YAML indents \
                 with spaces only"
            )
        );
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let err = parse(&GOOD.replace("max_files_per_batch: 2", "max_files_per_batch: 0"))
            .expect_err("zero files");
        let err2 = parse(&GOOD.replace("format: parquet", "format: xml")).expect_err("sink format");
        assert!(err2.contains("`sink.format`"), "{err2}");
        assert!(err2.contains("line 12"), "{err2}");
        assert!(err.contains("clicks.max_files_per_batch"), "{err}");
        assert!(err.contains("line 9"), "{err}");
    }

    #[test]
    fn triggers_parse() {
        assert_eq!("once".parse::<Trigger>(), Ok(Trigger::Once));
        assert_eq!(
            "available-now".parse::<Trigger>(),
            Ok(Trigger::AvailableNow)
        );
        assert_eq!(
            "every 500ms".parse::<Trigger>(),
            Ok(Trigger::Every(Duration::from_millis(500)))
        );
        assert!("every 0s".parse::<Trigger>().is_err());
        assert!("sometimes".parse::<Trigger>().is_err());
    }

    /// Walk 28: Spark's triggers (`processingTime`, `availableNow`), a map, and an interval
    /// without `every` got serde's words or a list without the form meant; each names the
    /// line to write, and that line parses.
    #[test]
    fn sparks_triggers_are_named_with_ours() {
        for (written, meant) in [
            ("trigger: {processingTime: 5s}", "every 5s"),
            ("trigger: \"processingTime='5 seconds'\"", "every 5 seconds"),
            (
                "trigger: Trigger.ProcessingTime(\"10 seconds\")",
                "every 10 seconds",
            ),
            ("trigger: availableNow", "available-now"),
            ("trigger: {availableNow: true}", "available-now"),
            ("trigger: 5s", "every 5s"),
            ("trigger: 1 minute", "every 1 minute"),
        ] {
            let err = parse(&GOOD.replace("trigger: every 5s", written))
                .expect_err(written)
                .to_string();
            assert!(err.contains(&format!("`{meant}`")), "{written}: {err}");
            assert!(err.contains("line "), "{written}: {err}");
            assert!(!err.contains("invalid type"), "{written}: {err}");
            assert!(meant.parse::<Trigger>().is_ok(), "{meant}");
        }
        let err = parse(&GOOD.replace("trigger: every 5s", "trigger: 5"))
            .expect_err("a number")
            .to_string();
        assert!(err.contains("not the number 5"), "{err}");
    }
}
