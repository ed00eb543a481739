//! The NATS JetStream source: a stream's messages as rows, read by stream sequence.
//!
//! A JetStream stream numbers every message it stores with a stream sequence (1, 2, ...);
//! messages leave it only from the front (its limits, a purge) or one by one (a delete). An
//! end offset is `{"stream": S, "filter_subject": T, "first": F, "sequence": E}`: the batch
//! reads the messages of stream `S` with sequences after the previous batch's `E` (from `F`,
//! the first batch's start, for the first batch) up to `E`, and only those on `filter_subject`
//! `T` where one is set (null where none is; after a batch, another stream is refused, and so
//! is a filter the recorded one does not cover).
//! `F` is resolved once, when the first batch is planned (`starting_sequence`: `earliest`, the
//! stream's first message then; `latest`, the next message published; or a number) and stays in
//! every offset, so a replay reads exactly the same messages. A range whose messages have left
//! the front of the stream since is an error naming the sequences (as Spark's
//! `failOnDataLoss`).
//!
//! Columns (`format: raw`): `subject`, `sequence`, `timestamp` (when the server stored the
//! message, microseconds UTC), `headers` (a list of `{key, value}`) and `payload` (bytes). With
//! `format: json` or `csv` and a declared `schema:`, the payload is decoded into the schema's
//! columns as the files source decodes a file ([`super::payload`]), and `metadata_columns`
//! adds the others after them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_trait::async_trait;
use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::payload::{MetadataColumn, PayloadDecoder, PayloadFormat, headers_array, headers_type};
use super::{
    Admission, BatchInput, ConfigError, Lag, PartLag, Source, SourceConnector, SourceError,
    SourceKind, parse_settings,
};
use crate::checkpoint::{BatchId, CheckpointError};
use crate::format::{EpochUnit, OnError};
use crate::retry::RetrySettings;
use crate::storage::{Location, StoreHook};

/// The NATS source in the registry.
pub(super) const KIND: SourceKind = SourceKind {
    name: "nats",
    configure,
};

/// Messages per record batch of a read.
const ROWS_PER_RECORD_BATCH: usize = 8192;

/// The columns a message has besides a decoded payload, in their order.
const METADATA: [&str; 5] = ["subject", "sequence", "timestamp", "headers", "payload"];

fn metadata_field(name: &str) -> Option<Field> {
    Some(match name {
        "subject" => Field::new("subject", DataType::Utf8, false),
        "sequence" => Field::new("sequence", DataType::Int64, false),
        "timestamp" => Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        "headers" => Field::new("headers", headers_type(), true),
        "payload" => Field::new("payload", DataType::Binary, true),
        _ => return None,
    })
}

/// Where the first batch starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingSequence {
    /// The stream's first message when the first batch is planned.
    Earliest,
    /// The next message published after the first batch is planned.
    Latest,
    /// This stream sequence.
    At(u64),
}

impl<'de> Deserialize<'de> for StartingSequence {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            // A negative or fractional number (walk 115: `-1`, as Kafka's `-1` for latest,
            // was answered "did not match any variant of untagged enum Raw").
            Other(f64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Other(n) => Err(serde::de::Error::custom(format!(
                "{n} is no stream sequence (a whole number from 1): write a sequence, \
                 `earliest` for the first message there is, or `latest` for the next one \
                 published"
            ))),
            Raw::Number(0) => Err(serde::de::Error::custom(
                "stream sequences start at 1; write `earliest` for the first message there is",
            )),
            Raw::Number(n) => Ok(Self::At(n)),
            Raw::Word(w) if w == "earliest" => Ok(Self::Earliest),
            Raw::Word(w) if w == "latest" => Ok(Self::Latest),
            Raw::Word(w) => Err(serde::de::Error::custom(crate::vocab::unknown_keyword(
                &w,
                &["earliest", "latest", "<a stream sequence>"],
            ))),
        }
    }
}

impl std::fmt::Display for StartingSequence {
    /// As the pipeline file writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::At(n) => write!(f, "{n}"),
        }
    }
}

fn earliest() -> StartingSequence {
    StartingSequence::Earliest
}

fn fail_on_data_loss() -> bool {
    true
}

/// `server` (one of a `url` list) as written, any password or token in it shown as `***`.
fn shown_server(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        crate::secret::redact_url(server)
    } else {
        crate::secret::redact_url(&with_scheme(server))
            .trim_start_matches("nats://")
            .to_string()
    }
}

/// `server` (one of a `url` list) with `nats://` before it where it has no scheme, as the
/// client reads it.
fn with_scheme(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_string()
    } else {
        format!("nats://{server}")
    }
}

/// One server of a `url` list (`nats://host:port`, `host:port`, `tls://...`; spaces around it
/// taken off) as the NATS client reads it. Errors: the server, as written, and why it does not
/// read (an empty one between two commas too).
fn server_addr(server: &str) -> Result<async_nats::ServerAddr, String> {
    let server = server.trim();
    if server.is_empty() {
        return Err(
            "a server of the list is empty (two commas, or one at an end): write \
             `nats://host:port` or several, comma-separated"
                .to_string(),
        );
    }
    server.parse().map_err(|e: std::io::Error| {
        format!(
            "the server {} does not read: {e} (write `nats://host:port`, or several, \
             comma-separated)",
            shown_server(server)
        )
    })
}

/// The settings of a NATS JetStream source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server(s) to connect to, `nats://host:port[,nats://host:port...]` (`${VAR}` read
    /// from the environment when connecting).
    pub url: String,
    /// The JetStream stream to read.
    pub stream: String,
    /// Only the stream's messages on this subject (wildcards `*` and `>` as NATS reads them).
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// Where the first batch starts: `earliest` (the default), `latest`, or a stream sequence.
    #[serde(default = "earliest")]
    pub starting_sequence: StartingSequence,
    /// At most this many stream sequences per batch (with `filter_subject`, counted from the
    /// batch's first message on it); everything available where absent.
    #[serde(default)]
    pub max_records_per_batch: Option<u64>,
    /// How a payload becomes columns: `raw` (the default), `json` or `csv`.
    #[serde(default)]
    pub format: PayloadFormat,
    /// The columns a `json` or `csv` payload decodes into: column name to SQL type, in order.
    #[serde(default)]
    pub schema: Option<indexmap::IndexMap<String, String>>,
    /// With `json` or `csv`: the message's columns to add after the decoded ones (`subject`,
    /// `sequence`, `timestamp`, `headers`), each by its name or as another (`timestamp AS
    /// nats_timestamp`, where the payload has a `timestamp` field).
    #[serde(default)]
    pub metadata_columns: Vec<String>,
    /// What to do with a payload that does not decode: `fail` (the default) or `skip`.
    #[serde(default)]
    pub on_error: OnError,
    /// With `json` or `csv`: the unit of a number in a declared `timestamp` column.
    #[serde(default)]
    pub epoch_unit: Option<EpochUnit>,
    /// With `csv`: the character that escapes a quote inside a quoted field, as the Kafka
    /// source's `escape`.
    #[serde(default)]
    pub escape: Option<String>,
    /// Fail a batch whose messages are partly gone from the stream (its limits or a purge
    /// removed them before the batch was read), naming them; with false, skip what is gone and
    /// count it as skipped rows. True by default (Spark's `failOnDataLoss`, as the Kafka
    /// source's).
    #[serde(default = "fail_on_data_loss")]
    pub fail_on_data_loss: bool,
    /// Retries of each request to the server and of each batch's read.
    #[serde(default)]
    pub retry: RetrySettings,
    /// `metadata_columns`, read.
    #[serde(skip)]
    metadata: Vec<MetadataColumn>,
}

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SourceConnector>, ConfigError> {
    let mut config: NatsConfig = parse_settings(settings)?;
    if config.url.trim().is_empty() {
        return Err(ConfigError::at("url", "`url` is empty"));
    }
    // A password written in the URL would be kept in the checkpoint's copy of the pipeline
    // file and could reach a message: only `${VAR}` (filled in when connecting) is taken.
    // A user part alone (`nats://s3cr3t@host`) is NATS's token: a secret too.
    for server in config.url.split(',') {
        // Without a scheme too, as the client reads it (walk 121: `u:pw@host:4222` was read
        // as a URL of scheme `u`, and its password taken and kept).
        if let Ok(url) = url::Url::parse(&with_scheme(server))
            && !server.contains("${")
        {
            if url.password().is_some() {
                return Err(ConfigError::at(
                    "url",
                    "a password written in `url` would be kept in the checkpoint's copy of this \
                     file: give it as an environment variable, \
                     `nats://user:${NATS_PASSWORD}@host:4222`",
                ));
            }
            if !url.username().is_empty() {
                return Err(ConfigError::at(
                    "url",
                    "a user part alone in `url` is NATS's token, which would be kept in the \
                     checkpoint's copy of this file: give it as an environment variable, \
                     `nats://${NATS_TOKEN}@host:4222`",
                ));
            }
            // Walk 49 (2): `?token=...` (or a password, key or seed) in the query string.
            if let Some((key, _)) = url.query_pairs().find(|(key, _)| {
                [
                    "token", "pass", "password", "nkey", "seed", "jwt", "creds", "secret",
                ]
                .contains(&key.to_ascii_lowercase().as_str())
            }) {
                return Err(ConfigError::at(
                    "url",
                    format!(
                        "`?{key}=` in `url` carries a secret, which would be kept in the \
                         checkpoint's copy of this file: give the token or password as an \
                         environment variable in the URL's user part, \
                         `nats://${{NATS_TOKEN}}@host:4222` or \
                         `nats://user:${{NATS_PASSWORD}}@host:4222`"
                    ),
                ));
            }
        }
    }
    // Each server of a list as the client reads it (walk 115: the list was handed to the
    // client whole, which read it as one server, and every run failed on "invalid port").
    for server in config.url.split(',').filter(|s| !s.contains("${")) {
        server_addr(server).map_err(|e| ConfigError::at("url", e))?;
    }
    if config.stream.trim().is_empty() {
        return Err(ConfigError::at("stream", "`stream` is empty"));
    }
    if config.max_records_per_batch == Some(0) {
        return Err(ConfigError::at(
            "max_records_per_batch",
            "`max_records_per_batch` must be at least 1",
        ));
    }
    config.retry.check()?;
    super::payload::csv_escape(config.escape.as_deref(), config.format)?;
    match config.format {
        PayloadFormat::Raw => {
            for (key, set) in [
                ("schema", config.schema.is_some()),
                ("metadata_columns", !config.metadata_columns.is_empty()),
                ("epoch_unit", config.epoch_unit.is_some()),
            ] {
                if set {
                    return Err(ConfigError::at(
                        key,
                        format!(
                            "`{key}` is for a decoded payload: set `format: json` or `format: \
                             csv` with a `schema:` (with `format: raw` every message column is \
                             there already)"
                        ),
                    ));
                }
            }
        }
        PayloadFormat::Json | PayloadFormat::Csv => {
            let Some(schema) = &config.schema else {
                return Err(ConfigError::at(
                    "schema",
                    format!(
                        "`format: {}` decodes each payload into declared columns: add \
                         `schema:` (column: SQL type)",
                        config.format
                    ),
                ));
            };
            config.metadata =
                super::payload::metadata_columns(&config.metadata_columns, &METADATA[..4], schema)?;
        }
    }
    Ok(Arc::new(config))
}

impl NatsConfig {
    /// The declared payload schema, for `json` and `csv`.
    async fn payload_schema(&self, name: &str) -> Result<Option<SchemaRef>, SourceError> {
        super::payload::declared_schema(name, self.schema.as_ref(), self.epoch_unit).await
    }

    /// The source's columns: every message column (`raw`), or the payload's then the
    /// metadata columns asked for.
    fn columns(&self, payload: Option<&SchemaRef>) -> SchemaRef {
        let fields: Vec<Field> =
            match payload {
                None => METADATA.iter().filter_map(|n| metadata_field(n)).collect(),
                Some(payload) => payload
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .chain(self.metadata.iter().filter_map(|m| {
                        metadata_field(&m.key).map(|f| f.with_name(m.column.clone()))
                    }))
                    .collect(),
            };
        Arc::new(Schema::new(fields))
    }
}

/// An end offset: the stream, the first batch's first sequence, and the last sequence read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Offset {
    /// The first sequence of the first batch.
    first: u64,
    /// The last sequence this batch reads (and every batch before it).
    sequence: u64,
    /// With `filter_subject`: the batch's first message on it, where every message between
    /// the previous batch's end and it was in the stream when the batch was planned (on other
    /// subjects, then): the batch reads from here, and messages below it that have left the
    /// stream since are no loss. Absent otherwise, and in an older Sluice's offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filtered_from: Option<u64>,
    /// The stream was deleted and made again below the sequence read up to (read on with
    /// `fail_on_data_loss: false`): the batch reads from this sequence, the new stream's
    /// first, not from the previous batch's end. Absent otherwise, and in an older Sluice's
    /// offsets (whose batch after such a stream ended just before its first sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restarted_from: Option<u64>,
    /// When the stream read was made ([`StreamState::created`]): one made again that has grown
    /// past the sequence read up to is told from the old one by it (the review of audit 86).
    /// Absent in an older Sluice's offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<i64>,
}

/// A stored message, as the source reads it.
struct Message {
    subject: String,
    sequence: u64,
    /// When the server stored it, microseconds since the Unix epoch.
    timestamp_us: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
    payload: Vec<u8>,
}

#[async_trait]
impl SourceConnector for NatsConfig {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    async fn open(
        &self,
        name: &str,
        checkpoint: &Location,
        _hook: Option<&StoreHook>,
        _sync: bool,
    ) -> Result<Box<dyn Source>, SourceError> {
        let payload_schema = self.payload_schema(name).await?;
        let schema = self.columns(payload_schema.as_ref());
        Ok(Box::new(NatsSource {
            name: name.to_string(),
            config: self.clone(),
            checkpoint: Some(checkpoint.clone()),
            schema,
            payload_schema,
            context: tokio::sync::OnceCell::new(),
            frozen: None,
            said_shrunk: false,
            checked: None,
        }))
    }

    async fn peek_schema(&self, name: &str) -> Result<Option<SchemaRef>, SourceError> {
        let payload = self.payload_schema(name).await?;
        Ok(Some(self.columns(payload.as_ref())))
    }

    fn describe_offset(&self, _name: &str, offset: &serde_json::Value) -> String {
        match serde_json::from_value::<Offset>(offset.clone()) {
            Ok(o) => format!(
                "stream {} through sequence {} (from {})",
                self.stream, o.sequence, o.first
            ),
            Err(_) => offset.to_string(),
        }
    }

    async fn lag(
        &self,
        name: &str,
        offset: &serde_json::Value,
    ) -> Result<Option<Lag>, SourceError> {
        let read = serde_json::from_value::<Offset>(offset.clone())
            .map(|o| o.sequence)
            .unwrap_or(0);
        // One attempt, briefly: inspect shows the checkpoint whether or not the server answers.
        let mut config = self.clone();
        config.retry.attempts = 1;
        config.retry.timeout = config.retry.timeout.min(Duration::from_secs(5));
        let source = NatsSource {
            name: name.to_string(),
            config,
            checkpoint: None,
            schema: self.columns(None),
            payload_schema: None,
            context: tokio::sync::OnceCell::new(),
            frozen: None,
            said_shrunk: false,
            checked: None,
        };
        let state = source.stream_state().await?;
        let mut lag = state.last.saturating_sub(read);
        let mut part = format!("stream {}", self.stream);
        // With a filter, the sequences from its first message not yet read (the others'
        // messages make no batch, so the position read waits at the filter's last one).
        if let Some(filter) = &self.filter_subject {
            if lag > 0 {
                lag = match source.first_on(filter, read.saturating_add(1)).await? {
                    Some(first) => state.last.saturating_sub(first.saturating_sub(1)),
                    None => 0,
                };
            }
            part = format!("{part} on `{filter}`");
        }
        Ok(Some(Lag {
            unit: "sequences",
            total: lag,
            parts: vec![PartLag {
                part,
                // As the offset says it: the last sequence read, of the stream's last.
                offset: Some(i64::try_from(read).unwrap_or(i64::MAX)),
                end: i64::try_from(state.last).unwrap_or(i64::MAX),
                lag,
                ends_below_read: read > state.last,
                topic: None,
                partition: None,
                held_back: 0,
                gone: false,
            }],
        }))
    }

    async fn check_forget(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _to: BatchId,
    ) -> Result<(), SourceError> {
        Ok(())
    }

    async fn forget_batch(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
    ) -> Result<u64, SourceError> {
        // Nothing of its own to forget: a batch's range is all in `offsets/N`.
        Ok(0)
    }
}

/// The file under `sources/<name>/` of the checkpoint that keeps the sequence the first batch
/// starts at, as `starting_sequence` resolved it for the first plan: the sequence on its first
/// line, the setting (`latest`) on its second, and when the stream it was taken of was made
/// (nanoseconds since 1970, [`StreamState::created`]) on its third (absent in an older
/// Sluice's).
const INITIAL_SEQUENCE: &str = "initial-sequence";

/// The file, under `sources/<name>/`, of [`NatsSource::checked`].
const FILTER_CHECKED: &str = "filter-checked";

/// A stream's sequences now: its first stored message and its last sequence (`first` is
/// `last + 1` for an empty stream).
#[derive(Debug, Clone, Copy)]
struct StreamState {
    first: u64,
    last: u64,
    /// When the stream was made, in nanoseconds since 1970 (the server's `created`): a stream
    /// deleted and made again is another stream, whatever its sequences.
    created: i64,
}

/// A running NATS source.
pub struct NatsSource {
    name: String,
    config: NatsConfig,
    /// The checkpoint, which keeps where the first batch starts (`sources/<name>/`
    /// [`INITIAL_SEQUENCE`]); none for a look at the stream alone (`inspect`'s lag).
    checkpoint: Option<Location>,
    schema: SchemaRef,
    payload_schema: Option<SchemaRef>,
    /// The JetStream context, connected on first use.
    context: tokio::sync::OnceCell<jetstream::Context>,
    /// The last sequence `available-now` and `once` froze the input at.
    frozen: Option<u64>,
    /// A stream found ending below the sequence read up to has been said (once a run).
    said_shrunk: bool,
    /// With `filter_subject`: the sequences a plan found no message on it among (`from` to
    /// `to`, both in; [`FILTER_CHECKED`], kept in the checkpoint): what the stream's limits
    /// take of them is no loss. (A rewind moves the position below `from`: not covered.)
    checked: Option<(u64, u64)>,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("name", &self.name)
            .field("stream", &self.config.stream)
            .finish_non_exhaustive()
    }
}

impl NatsSource {
    fn error(&self, error: impl std::fmt::Display) -> SourceError {
        SourceError::Connector {
            source_name: self.name.clone(),
            kind: KIND.name,
            error: format!("stream `{}`: {error}", self.config.stream).into(),
        }
    }

    /// Messages `from..=last_gone` of a batch ending at `last` gone from the stream's front
    /// (now at `first`), `when` (`before`, `while`) the batch was read: an error naming them
    /// (Spark's `failOnDataLoss`), or, under `fail_on_data_loss: false`, said and counted (the
    /// count is returned).
    ///
    /// Errors: [`SourceError::Connector`] naming the sequences, by default.
    fn front_gone(
        &self,
        from: u64,
        last_gone: u64,
        last: u64,
        first: u64,
        when: &str,
    ) -> Result<u64, SourceError> {
        // Walk 115: the filter went unsaid, as if each were a message of the query's.
        let filtered = match &self.config.filter_subject {
            Some(filter) => format!(
                "; any of them may have been on subjects other than `filter_subject: {filter}`, \
                 which cannot be told once they are gone"
            ),
            None => String::new(),
        };
        let gone = format!(
            "the messages at sequences {} (of the batch's {}) are gone from the stream (its \
             limits or a purge removed them {when} the batch was read; the stream now starts \
             at {first}{filtered})",
            crate::vocab::span(from, last_gone),
            crate::vocab::span(from, last),
        );
        if self.config.fail_on_data_loss {
            return Err(self.error(format!(
                "{gone}, so the batch cannot be read as it was planned. {}",
                super::SKIP_WHAT_IS_GONE
            )));
        }
        tracing::warn!("source `{}`: skipping what is gone: {gone}", self.name);
        Ok(last_gone + 1 - from)
    }

    /// The servers as written, any password shown as `***` (a `${VAR}` is never filled in
    /// here).
    fn servers(&self) -> String {
        self.config
            .url
            .split(',')
            .map(shown_server)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The JetStream context, connecting (with retries) on first use.
    async fn context(&self) -> Result<&jetstream::Context, SourceError> {
        self.context
            .get_or_try_init(|| async {
                let url = crate::secret::expand_env(&self.config.url)
                    .map_err(|e| self.error(format!("`url`: {e}")))?;
                // Not worth another attempt: the pipeline names no server (exit 2).
                let servers = url
                    .split(',')
                    .map(server_addr)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| SourceError::Config {
                        source_name: self.name.clone(),
                        reason: format!("`url`: {reason}"),
                    })?;
                let timeout = self.config.retry.timeout;
                let client = self
                    .config
                    .retry
                    .run(
                        &format!(
                            "NATS source `{}`: connecting to {}",
                            self.name,
                            self.servers()
                        ),
                        |_| true,
                        || async {
                            async_nats::ConnectOptions::new()
                                .connection_timeout(timeout)
                                .request_timeout(Some(timeout))
                                .connect(servers.as_slice())
                                .await
                                .map_err(|e| describe(&e))
                        },
                    )
                    .await
                    .map_err(|e| self.error(format!("connecting to {}: {e}", self.servers())))?;
                Ok(jetstream::new(client))
            })
            .await
    }

    /// The stream's first and last sequences now (with retries).
    async fn stream_state(&self) -> Result<StreamState, SourceError> {
        let context = self.context().await?;
        let name = self.config.stream.as_str();
        // A stream that does not exist is not worth another attempt.
        let missing = |e: &String| e.contains("stream not found");
        let info = self
            .config
            .retry
            .run(
                &format!("NATS source `{}`: reading stream `{name}`", self.name),
                |e: &String| !missing(e),
                || async {
                    let mut stream = context.get_stream(name).await.map_err(|e| describe(&e))?;
                    stream
                        .info()
                        .await
                        .map(|i| {
                            let from_elsewhere = i.config.mirror.is_some()
                                || i.config.sources.as_ref().is_some_and(|s| !s.is_empty());
                            (
                                i.state.clone(),
                                i.config.subjects.clone(),
                                from_elsewhere,
                                i.config.retention,
                                i64::try_from(i.created.unix_timestamp_nanos()).unwrap_or(0),
                            )
                        })
                        .map_err(|e| describe(&e))
                },
            )
            .await
            .map_err(|e| {
                // A stream that is not there: the pipeline names the wrong one (exit 2).
                if missing(&e.error) {
                    return SourceError::Config {
                        source_name: self.name.clone(),
                        reason: format!(
                            "the NATS stream `{name}` does not exist at {}: make it first \
                             (`nats stream add`), or fix `stream:`",
                            self.servers()
                        ),
                    };
                }
                self.error(format!("cannot read the stream at {}: {e}", self.servers()))
            })?;
        let (info, subjects, from_elsewhere, retention, created) = info;
        // A work queue gives each message to one consumer and removes it once acknowledged;
        // a batch is read by sequence, unacknowledged, so that it reads the same again after
        // a crash: the server refuses such a read (walk 81: retried, then exit 1 with a
        // batch left planned).
        if retention == jetstream::stream::RetentionPolicy::WorkQueue {
            return Err(SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "stream `{name}` has `workqueue` retention: it removes a message once one \
                     consumer acknowledges it, and a batch is read by sequence without \
                     acknowledging (so that it reads the same again after a crash). Read a \
                     stream of `limits` retention that takes this one's subjects (or sources \
                     it) instead"
                ),
            });
        }
        if retention == jetstream::stream::RetentionPolicy::Interest
            && super::first_time(format!("{} interest {name}", self.name))
        {
            tracing::warn!(
                "source `{}`: stream `{name}` has `interest` retention: it keeps a message \
                 only while a consumer's interest holds it, and Sluice holds none between \
                 batches, so messages the other consumers have acknowledged may be gone \
                 before a batch reads them (said lost, per `fail_on_data_loss`). Read a \
                 stream of `limits` retention that sources this one instead",
                self.name
            );
        }
        // A filter that no subject of the stream overlaps matches no message it takes in (a
        // stream that takes messages from other streams, `sources` or `mirror`, holds theirs
        // under their own subjects: not checked).
        if let Some(filter) = &self.config.filter_subject
            && !from_elsewhere
            && !subjects.is_empty()
            && !subjects.iter().any(|s| subjects_overlap(s, filter))
        {
            return Err(SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "`filter_subject: {filter}` is not among the subjects of stream `{name}` \
                     ({}), so no message of it could be read; fix `filter_subject`",
                    subjects.join(", ")
                ),
            });
        }
        Ok(StreamState {
            first: info.first_sequence.max(1),
            last: info.last_sequence,
            created,
        })
    }

    /// Where `checkpoint` keeps [`Self::checked`].
    fn checked_path(&self, checkpoint: &Location) -> object_store::path::Path {
        checkpoint.path(&format!("sources/{}/{FILTER_CHECKED}", self.name))
    }

    /// [`Self::checked`] as the checkpoint keeps it (`from to`; `None` where it keeps none,
    /// or it does not read: it only spares a false loss).
    async fn read_checked(&mut self) -> Option<(u64, u64)> {
        let checkpoint = self.checkpoint.as_ref()?;
        let bytes = checkpoint
            .get(&self.checked_path(checkpoint))
            .await
            .ok()??;
        let text = String::from_utf8_lossy(&bytes).to_string();
        let (from, to) = text.trim().split_once(' ')?;
        let checked = (from.parse::<u64>().ok()?, to.parse::<u64>().ok()?);
        self.checked = Some(checked);
        Some(checked)
    }

    /// Keeps [`Self::checked`] at `from` to `to`, in the checkpoint too (best effort: a
    /// failure only loses the sparing of a false loss).
    async fn write_checked(&mut self, from: u64, to: u64) {
        self.checked = Some((from, to));
        let Some(checkpoint) = &self.checkpoint else {
            return;
        };
        if let Err(e) = checkpoint
            .put(
                &self.checked_path(checkpoint),
                format!("{from} {to}").into_bytes(),
            )
            .await
        {
            tracing::debug!("source `{}`: keeping {FILTER_CHECKED}: {e}", self.name);
        }
    }

    /// The sequence of the stream's first message on `filter` at or after `from`, `None`
    /// where it holds none (with retries).
    async fn first_on(&self, filter: &str, from: u64) -> Result<Option<u64>, SourceError> {
        let context = self.context().await?;
        let name = self.config.stream.as_str();
        self.config
            .retry
            .run(
                &format!(
                    "NATS source `{}`: finding the first message on `{filter}` of stream \
                     `{name}` from sequence {from}",
                    self.name
                ),
                |_| true,
                || async {
                    let stream = context.get_stream(name).await.map_err(|e| describe(&e))?;
                    match stream.get_first_raw_message_by_subject(filter, from).await {
                        Ok(message) => Ok(Some(message.sequence)),
                        Err(e)
                            if e.kind()
                                == jetstream::stream::RawMessageErrorKind::NoMessageFound =>
                        {
                            Ok(None)
                        }
                        Err(e) => Err(describe(&e)),
                    }
                },
            )
            .await
            .map_err(|e| {
                self.error(format!(
                    "cannot read stream `{name}` at {}: {e}",
                    self.servers()
                ))
            })
    }

    fn parse(&self, offset: Option<&serde_json::Value>) -> Result<Option<Offset>, SourceError> {
        let Some(offset) = offset.filter(|o| !o.is_null()) else {
            return Ok(None);
        };
        let parsed: Offset = serde_json::from_value(offset.clone()).map_err(|e| {
            SourceError::from(CheckpointError::Corrupt {
                file: format!("offsets entry of source `{}`", self.name),
                line: 1,
                reason: format!("the NATS offset {offset} is not {{first, sequence}}: {e}"),
            })
        })?;
        if let Some(stream) = offset.get("stream").and_then(serde_json::Value::as_str)
            && stream != self.config.stream
        {
            return Err(SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "`stream` changed since the last batch (it read stream `{stream}`); a \
                     source's stream cannot change once batches ran: put it back, or use {}",
                    super::NEW_START
                ),
            });
        }
        // Batches read past the messages the old filter left out: a new filter would never
        // read those (an offset of an older Sluice records no filter: not checked).
        // A narrower filter loses nothing: what it takes there, the old one read.
        let covered = |read: &serde_json::Value| match (read.as_str(), &self.config.filter_subject)
        {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(old), Some(new)) => subject_covers(old, new),
        };
        if let Some(read) = offset.get("filter_subject")
            && !covered(read)
        {
            let was = read
                .as_str()
                .map_or("every subject".to_string(), |f| format!("`{f}`"));
            return Err(SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "`filter_subject` changed since the last batch (which read {was} up to \
                     sequence {}): the messages there that the new filter takes and the \
                     old one did not would never be read. Put it back (or narrow it: a filter \
                     the old one covers loses nothing); or, to read the stream again with the \
                     new filter, use {} (its `starting_sequence` says from where)",
                    parsed.sequence,
                    super::NEW_START
                ),
            });
        }
        // A narrower filter loses nothing read so far, but from here on passes over what the
        // old one took, for good: said once a run.
        let old = match offset.get("filter_subject") {
            Some(serde_json::Value::String(old)) => Some(format!("`{old}`")),
            Some(serde_json::Value::Null) => Some("every subject".to_string()),
            _ => None,
        };
        if let (Some(old), Some(new)) = (old, &self.config.filter_subject)
            && old != format!("`{new}`")
            && super::first_time(format!("{} {old} {new}", self.name))
        {
            tracing::warn!(
                "source `{}`: `filter_subject` narrowed from {old} (which the last batch \
                 read, up to sequence {}) to `{new}`: from there on, the messages `{new}` \
                 does not take are passed over, and putting the old filter back will be \
                 refused once a batch has run (they would never be read)",
                self.name,
                parsed.sequence
            );
        }
        Ok(Some(parsed))
    }

    /// The first sequence of the first batch, as `starting_sequence` gives it against `now`;
    /// a sequence past the next one the stream gives (`now.last + 1`) is refused, as Spark
    /// refuses a starting offset past a Kafka partition's end: it names no message of this
    /// stream (one of another stream, or of this one before it was made anew).
    ///
    /// Resolved once, by the first plan, and kept in the checkpoint (as the Kafka source keeps
    /// its starting offsets, and Spark its `startingOffsets`): `latest` resolved again by
    /// each run that finds nothing new would pass over what was published in between.
    async fn initial(&self, now: StreamState) -> Result<u64, SourceError> {
        let Some(checkpoint) = &self.checkpoint else {
            return self.resolve_start(now);
        };
        let path = checkpoint.path(&format!("sources/{}/{INITIAL_SEQUENCE}", self.name));
        // The sequence, then the setting it was resolved from, then the stream's making.
        let kept = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default().trim().parse::<u64>();
            let from = lines.next().map(|l| l.trim().to_string());
            let created = lines.next().and_then(|l| l.trim().parse::<i64>().ok());
            first.map(|first| (first, from, created)).map_err(|e| {
                SourceError::from(CheckpointError::Corrupt {
                    file: format!("{checkpoint}/{path}"),
                    line: 1,
                    reason: format!("not a stream sequence: {e}"),
                })
            })
        };
        if let Some(bytes) = checkpoint.get(&path).await? {
            let (first, from, created) = kept(&bytes)?;
            let now_setting = self.config.starting_sequence.to_string();
            if let Some(from) = from.filter(|from| *from != now_setting)
                && super::first_time(format!("{checkpoint}/{path}"))
            {
                tracing::warn!(
                    "source `{}`: `starting_sequence: {now_setting}` applies to a \
                     checkpoint's first plan only, which took `starting_sequence: {from}` \
                     (sequence {first}, kept in {checkpoint}/{path}): the edit changes \
                     nothing; to start where it says, delete that file before any batch \
                     has run, or use {}",
                    self.name,
                    super::NEW_START
                );
            }
            // Past the stream's end, or of a stream made at another time: the stream was made
            // anew since the sequence was kept, which names no place in this one (walk 115:
            // a stream made again that had grown past it was read from it, its messages below
            // passed over in silence).
            let made_again = created.is_some_and(|created| created != now.created);
            if first > now.last + 1 || made_again {
                let how = if made_again {
                    format!(
                        "the stream was deleted and made again since (it was made at another \
                         time), so that sequence names no place in it: its last message is \
                         now sequence {}",
                        now.last
                    )
                } else {
                    format!(
                        "past the stream's end: its last message is sequence {} (deleted and \
                         made again since?)",
                        now.last
                    )
                };
                return Err(SourceError::Config {
                    source_name: self.name.clone(),
                    reason: format!(
                        "the first batch was to start at sequence {first} of stream `{}` (kept \
                         in {checkpoint}/{path} by an earlier run, from `starting_sequence`), \
                         {how}. Delete that file to take `starting_sequence` against the \
                         stream as it is now, or use {}",
                        self.config.stream,
                        super::NEW_START
                    ),
                });
            }
            return Ok(first);
        }
        let first = self.resolve_start(now)?;
        let text = format!(
            "{first}\n{}\n{}\n",
            self.config.starting_sequence, now.created
        );
        if checkpoint.put_if_absent(&path, text.into_bytes()).await? {
            Ok(first)
        } else {
            // Another run kept its own first: it stands.
            kept(&checkpoint.get(&path).await?.unwrap_or_default()).map(|(first, ..)| first)
        }
    }

    /// [`Self::initial`] as the setting gives it against `now`, not kept.
    fn resolve_start(&self, now: StreamState) -> Result<u64, SourceError> {
        Ok(match self.config.starting_sequence {
            StartingSequence::Earliest => now.first,
            StartingSequence::Latest => now.last + 1,
            StartingSequence::At(n) if n > now.last + 1 => {
                return Err(SourceError::Config {
                    source_name: self.name.clone(),
                    reason: format!(
                        "`starting_sequence: {n}` is past the end of stream `{}`: its last \
                         message is sequence {} (the next one published gets {}), so it names \
                         no message of this stream (one of another stream, or of this one \
                         before it was made anew?). Give a sequence up to {}, `earliest`, or \
                         `latest` for the next message published",
                        self.config.stream,
                        now.last,
                        now.last + 1,
                        now.last + 1
                    ),
                });
            }
            StartingSequence::At(n) => n,
        })
    }

    /// The messages with sequences `from..=to` (on `filter_subject`), in order.
    async fn fetch(&self, from: u64, to: u64) -> Result<Vec<Message>, SourceError> {
        let context = self.context().await?;
        let timeout = self.config.retry.timeout;
        let read = self
            .config
            .retry
            .run(
                &format!(
                    "NATS source `{}`: reading stream `{}` sequences {}",
                    self.name,
                    self.config.stream,
                    crate::vocab::span(from, to)
                ),
                |_| true,
                || read_range(context, &self.config, from, to, timeout),
            )
            .await
            .map_err(|e| {
                self.error(format!(
                    "reading sequences {} at {}: {e}",
                    crate::vocab::span(from, to),
                    self.servers()
                ))
            })?;
        Ok(read)
    }

    /// The rows of `messages` in `schema` (the source's columns, or those asked for).
    fn rows(
        &self,
        messages: &[Message],
        schema: &SchemaRef,
        skipped: &mut u64,
        unknown: &mut (u64, BTreeSet<String>),
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let Some(payload_schema) = &self.payload_schema else {
            return messages
                .chunks(ROWS_PER_RECORD_BATCH)
                .map(|chunk| {
                    let refs: Vec<&Message> = chunk.iter().collect();
                    self.batch(schema, &refs, None)
                })
                .collect();
        };
        let wanted: Vec<usize> = schema
            .fields()
            .iter()
            .filter_map(|f| payload_schema.index_of(f.name()).ok())
            .collect();
        let decoder = PayloadDecoder {
            format: self.config.format,
            schema: payload_schema,
            wanted: &wanted,
            on_error: self.config.on_error,
            epoch_unit: self.config.epoch_unit,
            escape: super::payload::csv_escape(self.config.escape.as_deref(), self.config.format)
                .ok()
                .flatten(),
        };
        let payloads: Vec<Option<&[u8]>> = messages
            .iter()
            .map(|m| Some(m.payload.as_slice()))
            .collect();
        let decoded = decoder
            .decode(&payloads, &|i, reason| {
                self.malformed(messages[i].sequence, reason)
            })
            .map_err(|e| match e {
                SourceError::Read { reason, .. } => self.error(reason),
                e => e,
            })?;
        *skipped += decoded.skipped;
        unknown.0 += decoded.unknown_rows;
        unknown.1.extend(decoded.unknown_fields);
        let kept: Vec<&Message> = decoded.kept.iter().map(|&i| &messages[i]).collect();
        let mut out = Vec::with_capacity(decoded.batches.len());
        let mut at = 0;
        for rows in &decoded.batches {
            let n = rows.num_rows();
            out.push(self.batch(schema, &kept[at..at + n], Some(rows))?);
            at += n;
        }
        Ok(out)
    }

    /// One record batch of `messages`: the decoded payload columns from `decoded` where
    /// given, the message's own columns otherwise.
    fn batch(
        &self,
        schema: &SchemaRef,
        messages: &[&Message],
        decoded: Option<&RecordBatch>,
    ) -> Result<RecordBatch, SourceError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                if let Some(decoded) = decoded
                    && self
                        .payload_schema
                        .as_ref()
                        .is_some_and(|p| p.index_of(f.name()).is_ok())
                {
                    let i = decoded
                        .schema()
                        .index_of(f.name())
                        .map_err(|e| self.error(e))?;
                    return Ok(Arc::clone(decoded.column(i)));
                }
                // A `metadata_columns` column, by the key it holds; else one of every
                // message column (`format: raw`), by its own name.
                let key = self
                    .config
                    .metadata
                    .iter()
                    .find(|m| &m.column == f.name())
                    .map_or(f.name().as_str(), |m| m.key.as_str());
                self.metadata_array(key, messages)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(messages.len()));
        RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
            .map_err(|e| self.error(e))
    }

    fn metadata_array(&self, name: &str, messages: &[&Message]) -> Result<ArrayRef, SourceError> {
        Ok(match name {
            "subject" => Arc::new(StringArray::from(
                messages
                    .iter()
                    .map(|m| m.subject.as_str())
                    .collect::<Vec<_>>(),
            )),
            "sequence" => Arc::new(Int64Array::from(
                messages
                    .iter()
                    .map(|m| i64::try_from(m.sequence).unwrap_or(i64::MAX))
                    .collect::<Vec<_>>(),
            )),
            "timestamp" => Arc::new(TimestampMicrosecondArray::from(
                messages.iter().map(|m| m.timestamp_us).collect::<Vec<_>>(),
            )),
            "headers" => headers_array(messages.iter().map(|m| m.headers.as_slice()))
                .map_err(|e| self.error(e))?,
            "payload" => Arc::new(BinaryArray::from(
                messages
                    .iter()
                    .map(|m| Some(m.payload.as_slice()))
                    .collect::<Vec<_>>(),
            )),
            other => return Err(self.error(format!("no NATS column `{other}`"))),
        })
    }

    fn malformed(&self, sequence: u64, reason: &str) -> SourceError {
        SourceError::Malformed {
            file: format!(
                "source `{}`: stream {} sequence {sequence}",
                self.name, self.config.stream
            ),
            line: None,
            reason: format!("{reason} (set `on_error: skip` to skip and count such messages)"),
        }
    }
}

/// The messages of `config`'s stream with sequences `from..=to` (on its filter subject), read
/// by an ordered consumer that starts at `from`; each wait for the next message is bounded by
/// `timeout`. The consumer is deleted once read, so a backfill of many batches does not leave
/// one behind each (the server would keep each until 30 s idle, counting it against the
/// stream's `max_consumers`). (Where the client makes the ordered consumer again mid-read,
/// after a missed heartbeat, the one it made is left to the server's 30 s.)
async fn read_range(
    context: &jetstream::Context,
    config: &NatsConfig,
    from: u64,
    to: u64,
    timeout: Duration,
) -> Result<Vec<Message>, String> {
    let stream = context
        .get_stream(config.stream.as_str())
        .await
        .map_err(|e| describe(&e))?;
    let mut consumer_name = None;
    let read = read_with_consumer(
        context,
        &stream,
        config,
        from,
        to,
        timeout,
        &mut consumer_name,
    )
    .await;
    if let Some(name) = consumer_name
        && let Err(e) = stream.delete_consumer(&name).await
    {
        // Left to the server, which removes it once idle.
        tracing::debug!(
            "the consumer {name} of stream `{}` was not deleted: {}",
            config.stream,
            describe(&e)
        );
    }
    read
}

/// [`read_range`]'s read, through a consumer whose name it leaves in `consumer_name`. Where
/// the consumer stalls (no message within `timeout`), the rest of the range is read by the
/// stream's message-get API ([`read_stored`]): the NATS client drops its connection on a
/// message whose headers its parser refuses (a line without a colon, a key with a space or
/// not ASCII), so the consumer never delivers that message (audit 93b: the pipeline stopped
/// there for good), where the message-get answer carries the headers as written.
async fn read_with_consumer(
    context: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    config: &NatsConfig,
    from: u64,
    to: u64,
    timeout: Duration,
    consumer_name: &mut Option<String>,
) -> Result<Vec<Message>, String> {
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            filter_subject: config.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|e| max_consumers_advice(describe(&e)))?;
    *consumer_name = Some(consumer.cached_info().name.clone());
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(|e| describe(&e))?;
    loop {
        let Ok(next) = tokio::time::timeout(timeout, messages.next()).await else {
            // The consumer goes first, so that the server does not push it the message again
            // under the reads below.
            drop(messages);
            if let Some(name) = consumer_name.take()
                && let Err(e) = stream.delete_consumer(&name).await
            {
                tracing::debug!(
                    "the stalled consumer {name} was not deleted: {}",
                    describe(&e)
                );
            }
            let after = out
                .last()
                .map_or(from.saturating_sub(1), |m: &Message| m.sequence);
            // Said (walk 115: a consumer deleted under the read stalled a batch 30 s without
            // a word).
            tracing::warn!(
                "stream `{}`: the read's consumer gave no message for {} after sequence \
                 {after} (deleted by someone meanwhile, or a message its client cannot parse): \
                 reading the rest of the batch, to sequence {to}, message by message \
                 (`retry.timeout` sets how long a read waits)",
                config.stream,
                humantime::format_duration(timeout)
            );
            return read_stored(context, config, after, to, timeout, out).await;
        };
        let Some(message) = next else {
            return Err("the server ended the read".into());
        };
        let message = message.map_err(|e| describe(&e))?;
        let info = message.info().map_err(|e| describe(&*e))?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        if sequence > to {
            break;
        }
        let timestamp_us =
            i64::try_from(info.published.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX);
        let headers = message
            .headers
            .as_ref()
            .map(|h| {
                let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
                for (key, values) in h.iter() {
                    for value in values {
                        pairs.push((key.to_string(), Some(value.as_str().as_bytes().to_vec())));
                    }
                }
                // The client keeps a message's headers in a hash map, whose order differs
                // from process to process (walk 81: `headers[1]` changed between runs, and
                // a recomputed batch differed from the one written): in key order, each
                // key's values in their order on the wire, so a batch reads the same every
                // time.
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                pairs
            })
            .unwrap_or_default();
        out.push(Message {
            subject: message.subject.to_string(),
            sequence,
            timestamp_us,
            headers,
            payload: message.payload.to_vec(),
        });
        if sequence >= to || pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// The rest of a read whose consumer stalled after sequence `after`: the messages up to `to`
/// (on the filter subject) added to `out` one request each, by the stream's message-get API
/// (`$JS.API.STREAM.MSG.GET`, `next_by_subj`), each answered within `timeout`. The range ends
/// where the next message is past `to`, or there is none (its tail deleted).
async fn read_stored(
    context: &jetstream::Context,
    config: &NatsConfig,
    after: u64,
    to: u64,
    timeout: Duration,
    mut out: Vec<Message>,
) -> Result<Vec<Message>, String> {
    let mut next = after + 1;
    while next <= to {
        let stored = tokio::time::timeout(timeout, stored_message(context, config, next))
            .await
            .map_err(|_| {
                format!(
                    "no message came within {} (`retry.timeout`) after sequence {}, and the \
                     stream's message-get API gave no answer within it either (the server \
                     stopped answering)",
                    humantime::format_duration(timeout),
                    next - 1
                )
            })??;
        match stored {
            Some(message) if message.sequence <= to => {
                next = message.sequence + 1;
                out.push(message);
            }
            _ => break,
        }
    }
    Ok(out)
}

/// The stored message of the stream with the first sequence at or after `sequence` (on the
/// filter subject, where one is set), from the stream's message-get API; `None` where there
/// is none. The answer carries the headers block and the payload in base64, so headers the
/// client's parser refuses still read ([`parse_headers`]).
async fn stored_message(
    context: &jetstream::Context,
    config: &NatsConfig,
    sequence: u64,
) -> Result<Option<Message>, String> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    #[derive(Deserialize)]
    struct Answer {
        message: jetstream::stream::RawMessage,
    }
    let request = serde_json::json!({
        "seq": sequence,
        "next_by_subj": config.filter_subject.as_deref().unwrap_or(">"),
    });
    let answer: jetstream::response::Response<Answer> = context
        .request(format!("STREAM.MSG.GET.{}", config.stream), &request)
        .await
        .map_err(|e| describe(&e))?;
    let raw = match answer {
        jetstream::response::Response::Ok(Answer { message }) => message,
        jetstream::response::Response::Err { error }
            if error.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND =>
        {
            return Ok(None);
        }
        jetstream::response::Response::Err { error } => return Err(error.to_string()),
    };
    let decode = |what: &str, text: &str| {
        STANDARD.decode(text).map_err(|e| {
            format!(
                "the {what} of sequence {} in the server's message-get answer is not base64: \
                 {e}",
                raw.sequence
            )
        })
    };
    let headers = match &raw.headers {
        Some(block) => parse_headers(&decode("headers", block)?),
        None => Vec::new(),
    };
    Ok(Some(Message {
        subject: raw.subject.clone(),
        sequence: raw.sequence,
        timestamp_us: i64::try_from(raw.time.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX),
        headers,
        payload: decode("payload", &raw.payload)?,
    }))
}

/// A message's headers block as written (`NATS/1.0` then `Key: value` lines, each ended by
/// CRLF, then an empty line; the NATS header format, after HTTP/1's), as the consumer's read
/// gives them: a value trimmed, a line that starts with white space continuing the value
/// before it, in key order with a key's values in their order on the wire. Taken as written
/// where the client refuses them: a line without a colon is a key without a value (null), a
/// key or value not UTF-8 kept (a key with its invalid bytes replaced).
fn parse_headers(block: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut pairs: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    // The first line is the version (and a status, which a stored message does not have).
    for line in block.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0].is_ascii_whitespace()
            && let Some((_, Some(value))) = pairs.last_mut()
        {
            value.extend_from_slice(line);
            let end = value.trim_ascii_end().len();
            value.truncate(end);
            continue;
        }
        match line.iter().position(|b| *b == b':') {
            Some(colon) => pairs.push((
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                Some(line[colon + 1..].trim_ascii().to_vec()),
            )),
            None => pairs.push((
                String::from_utf8_lossy(line.trim_ascii()).into_owned(),
                None,
            )),
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// `error` (making a consumer), with what the stream's consumer limit means for Sluice where it
/// is the cause: each batch's read holds one consumer of its own, deleted after the read.
fn max_consumers_advice(error: String) -> String {
    if error.contains("maximum consumers limit reached") {
        format!(
            "{error}: the stream's `max_consumers` limit is taken by other consumers (a read \
             of Sluice's holds one, deleted once read; one its run could not delete, cut \
             short, goes after 30 s idle). Raise the limit, or wait for consumers to go"
        )
    } else {
        error
    }
}

/// An error of the NATS client in words, with its causes.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    crate::vocab::with_causes(e)
}

#[async_trait]
impl Source for NatsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> Option<SchemaRef> {
        Some(Arc::clone(&self.schema))
    }

    async fn resolve_schema(&mut self) -> Result<Option<SchemaRef>, SourceError> {
        Ok(Some(Arc::clone(&self.schema)))
    }

    async fn freeze(&mut self) -> Result<(), SourceError> {
        self.frozen = Some(self.stream_state().await?.last);
        Ok(())
    }

    async fn plan(
        &mut self,
        _batch: BatchId,
        start: Option<&serde_json::Value>,
        admission: Admission,
    ) -> Result<Option<serde_json::Value>, SourceError> {
        let now = self.stream_state().await?;
        // A stream whose last sequence is below the one read up to was deleted and made again
        // (a purge keeps its sequences): its messages below it are not the ones read.
        let mut restarted = None;
        if let Some(offset) = self.parse(start)?
            && (now.last < offset.sequence
                || offset.created.is_some_and(|created| created != now.created))
        {
            let what = if now.last < offset.sequence {
                format!(
                    "its last sequence is {}, below {}, which the batches so far have read up \
                     to: the stream was deleted and made again, so its messages now below that \
                     sequence were never read, and reading on from it would skip them",
                    now.last, offset.sequence
                )
            } else {
                format!(
                    "it was made at another time than the stream the batches so far have read \
                     (up to sequence {}): it was deleted and made again, so its messages up to \
                     that sequence were never read, and reading on from it would skip them",
                    offset.sequence
                )
            };
            super::input_went_back(
                &what,
                "read the stream again from its first sequence (what the old one held past \
                 the sequence read up to and no batch read is not known)",
                self.config.fail_on_data_loss,
                &mut self.said_shrunk,
                &format!("source `{}`: stream `{}`", self.name, self.config.stream),
            )
            .map_err(|e| self.error(e))?;
            // Read again from the stream's first sequence, in this batch (walk 70 (8): an
            // empty batch ended just before it, so `--trigger once` read nothing).
            restarted = Some(now.first);
        }
        let (first, next) = match (self.parse(start)?, restarted) {
            (Some(offset), Some(from)) => (offset.first, from),
            (Some(offset), None) => (offset.first, offset.sequence + 1),
            (None, _) => {
                let first = self.initial(now).await?;
                (first, first)
            }
        };
        // Where the stream made again has nothing to read yet, a batch that reads nothing still
        // takes the position back to just before its first sequence: left at the old one, the
        // new stream would not be seen as made again once it grew past it, and its messages
        // below that would never be read (the review of walk 70 (8)).
        let going_back = restarted.map(|from| {
            serde_json::json!({
                "stream": self.config.stream,
                "filter_subject": self.config.filter_subject,
                "first": first,
                "sequence": from.saturating_sub(1),
                "created": now.created,
            })
        });
        let nothing = move || Ok(going_back);
        let mut end = self.frozen.unwrap_or(now.last).min(now.last);
        if end < next {
            return nothing();
        }
        // With a filter, a batch waits for a message on it (the others' sequences would make
        // batches that read nothing), and its limit counts from the first such message.
        let mut from = next;
        let mut filtered_from = None;
        if let Some(filter) = self.config.filter_subject.clone() {
            let checked = match self.checked {
                Some(checked) => Some(checked),
                None => self.read_checked().await,
            };
            // Every message gone from the front since the previous batch is one a plan
            // found not on the filter (or none is gone).
            let gone_checked = now.first <= next
                || checked.is_some_and(|(checked_from, checked_to)| {
                    checked_from <= next && now.first <= checked_to + 1
                });
            let mut on_filter = false;
            match self.first_on(&filter, next).await? {
                Some(sequence) if sequence <= end => {
                    from = sequence;
                    on_filter = true;
                }
                // Messages gone that no plan saw (one may have been on the filter; walk 81:
                // two were, taken by `max_msgs` with no word): a batch from `next` on reads
                // none, and says them lost as any batch does (or skips and counts them).
                // (Its `max_records_per_batch` counts from the first message still there.)
                _ if !gone_checked => {
                    from = next.max(now.first);
                    // Those a plan found on other subjects are no loss, only the ones after
                    // (walk 115: sequences a plan had checked were said lost).
                    if let Some((checked_from, checked_to)) = checked
                        && checked_from <= next
                        && checked_to >= next
                    {
                        filtered_from = Some(checked_to + 1);
                    }
                }
                _ => {
                    // None on the filter up to `end`: kept, so that the stream's limits taking
                    // them before the filter's next message comes is no loss.
                    // (Widened where the last look began at or before this one's start.)
                    let since = checked
                        .filter(|(from, to)| *from <= next && *to + 1 >= next)
                        .map_or(next, |(from, _)| from);
                    if checked != Some((since, end)) {
                        self.write_checked(since, end).await;
                    }
                    return nothing();
                }
            }
            // Every message before it since the previous batch is on other subjects: here,
            // or gone from the front only where a plan found none on the filter up to there.
            // The batch need not read them, nor say them lost.
            if gone_checked && from > next {
                filtered_from = Some(from);
            } else if on_filter && from == next {
                // Logged too where it is the next sequence (it changes nothing the batch
                // reads): the read then knows `from` is a message of the batch, and tells
                // one purged from the front while it read (the review of audit 89a).
                filtered_from = Some(from);
            }
        }
        if let (Admission::SourceLimits, Some(limit)) =
            (admission, self.config.max_records_per_batch)
        {
            end = end.min(from.saturating_add(limit - 1));
        }
        let mut offset = serde_json::json!({
            "stream": self.config.stream,
            "filter_subject": self.config.filter_subject,
            "first": first,
            "sequence": end,
            "created": now.created,
        });
        if let Some(from) = filtered_from {
            offset["filtered_from"] = from.into();
        }
        if let Some(from) = restarted {
            offset["restarted_from"] = from.into();
        }
        Ok(Some(offset))
    }

    async fn read(
        &self,
        start: Option<&serde_json::Value>,
        end: &serde_json::Value,
        columns: Option<&[String]>,
    ) -> Result<BatchInput, SourceError> {
        let schema = match columns {
            Some(_) => {
                let indices =
                    super::column_indices(&self.name, "the NATS source", &self.schema, columns)?;
                Arc::new(self.schema.project(&indices).map_err(|e| self.error(e))?)
            }
            None => Arc::clone(&self.schema),
        };
        // A batch the stream had nothing new for carries its previous end forward: the range
        // is empty, whatever that end says of a stream made again (audit 86 #1: a
        // `restarted_from` carried forward read the new stream's first messages again).
        if start == Some(end) {
            return Ok(BatchInput::empty(schema));
        }
        let Some(end) = self.parse(Some(end))? else {
            return Ok(BatchInput::empty(schema));
        };
        let from = match (self.parse(start)?, end.restarted_from) {
            (_, Some(from)) => from,
            (Some(start), None) => start.sequence + 1,
            (None, None) => end.first,
        }
        .max(end.filtered_from.unwrap_or(0));
        if from > end.sequence {
            return Ok(BatchInput::empty(schema));
        }
        let now = self.stream_state().await?;
        // A stream that now ends below the batch's last sequence was deleted and made again
        // since the batch was planned: none of its messages in the range are the ones planned
        // (audit 86 #3: a recovered batch read the new stream's instead). The next batch's
        // plan finds the stream made again and reads it from its first sequence.
        let made_again = end.created.is_some_and(|created| created != now.created);
        if now.last < end.sequence || made_again {
            let gone = if now.last < end.sequence {
                format!(
                    "the messages at sequences {} are gone from the stream: it now ends at \
                     sequence {}, below the batch's last, so it was deleted and made again \
                     since the batch was planned, and its messages there are not the ones \
                     planned",
                    crate::vocab::span(from, end.sequence),
                    now.last
                )
            } else {
                format!(
                    "the messages at sequences {} are gone from the stream: it was deleted and \
                     made again since the batch was planned (it was made at another time), and \
                     its messages there are not the ones planned",
                    crate::vocab::span(from, end.sequence)
                )
            };
            if self.config.fail_on_data_loss {
                return Err(self.error(format!(
                    "{gone}, so the batch cannot be read as it was planned. {}",
                    super::SKIP_WHAT_IS_GONE
                )));
            }
            tracing::warn!("source `{}`: skipping what is gone: {gone}", self.name);
            return Ok(BatchInput {
                lost: end.sequence + 1 - from,
                ..BatchInput::empty(schema)
            });
        }
        // Messages gone from the front of the stream since the batch was planned.
        let mut lost = 0;
        let mut from = from;
        if now.first > from {
            let last_gone = (now.first - 1).min(end.sequence);
            lost = self.front_gone(from, last_gone, end.sequence, now.first, "before")?;
            from = now.first;
            if from > end.sequence {
                return Ok(BatchInput {
                    lost,
                    ..BatchInput::empty(schema)
                });
            }
        }
        let messages = self.fetch(from, end.sequence).await?;
        // The server starts a read at the first message still there: one purged from the
        // front while the batch was read (between the check above and a read, a retried one
        // above all) was skipped unsaid (audit 89a: 10 of 20 messages lost, exit 0). `from` is
        // a message the batch reads (without a filter, or the filter's first of the range):
        // where the first delivered is past it and the stream now starts past it, the
        // messages between are gone.
        let delivered = messages.first().map_or(end.sequence + 1, |m| m.sequence);
        let from_is_read = self.config.filter_subject.is_none() || end.filtered_from == Some(from);
        if delivered > from && from_is_read {
            let now = self.stream_state().await?;
            if now.first > from {
                let last_gone = (now.first.min(delivered) - 1).min(end.sequence);
                lost += self.front_gone(from, last_gone, end.sequence, now.first, "while")?;
            }
        }
        let mut unknown = (0, BTreeSet::new());
        let mut skipped = 0;
        let batches = self.rows(&messages, &schema, &mut skipped, &mut unknown)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Ok(BatchInput {
            schema,
            partitions: vec![batches],
            rows,
            skipped,
            lost,
            unknown_rows: unknown.0,
            unknown_fields: unknown.1,
            files: 0,
            part_names: Vec::new(),
        })
    }

    async fn commit(&mut self, _batch: BatchId, _oldest_kept: BatchId) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Whether two subjects (`*` one token, `>` one or more at the end) match a subject in
/// common: a stream's subject and a consumer's filter that do not, the server refuses.
fn subjects_overlap(a: &str, b: &str) -> bool {
    fn overlap(a: &[&str], b: &[&str]) -> bool {
        match (a.split_first(), b.split_first()) {
            (None, None) => true,
            (Some((&">", _)), Some(_)) | (Some(_), Some((&">", _))) => true,
            (Some((x, a_rest)), Some((y, b_rest))) if *x == "*" || *y == "*" || x == y => {
                overlap(a_rest, b_rest)
            }
            _ => false,
        }
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    overlap(&a, &b)
}

/// Whether every subject filter `narrow` matches, filter `wide` matches too (`*` one token,
/// `>` one or more at the end).
fn subject_covers(wide: &str, narrow: &str) -> bool {
    fn covers(w: &[&str], n: &[&str]) -> bool {
        match (w.split_first(), n.split_first()) {
            (None, None) => true,
            (Some((&">", _)), Some(_)) => true,
            (Some((&"*", w_rest)), Some((y, n_rest))) if *y != ">" => covers(w_rest, n_rest),
            (Some((x, w_rest)), Some((y, n_rest))) if x == y => covers(w_rest, n_rest),
            _ => false,
        }
    }
    let (w, n): (Vec<&str>, Vec<&str>) = (wide.split('.').collect(), narrow.split('.').collect());
    covers(&w, &n)
}

#[cfg(test)]
mod tests {
    use super::{StartingSequence, server_addr, subject_covers, subjects_overlap};

    /// Walk 115: `-1` was refused in serde's words ("untagged enum Raw"); a list of servers
    /// was one server to the client.
    #[test]
    fn starting_sequences_and_servers_read_or_are_named() {
        let read = |yaml: &str| serde_yaml::from_str::<StartingSequence>(yaml);
        assert!(matches!(read("7"), Ok(StartingSequence::At(7))));
        assert!(matches!(read("latest"), Ok(StartingSequence::Latest)));
        for bad in ["-1", "2.5"] {
            let said = read(bad).expect_err(bad).to_string();
            assert!(said.contains("is no stream sequence"), "{said}");
        }
        assert!(read("0").is_err());
        for good in ["nats://127.0.0.1:4222", " 127.0.0.1:4222", "tls://h:4222"] {
            assert!(server_addr(good).is_ok(), "{good}");
        }
        let said = server_addr("nats://h:x").expect_err("bad port");
        assert!(
            said.contains("the server nats://h:x does not read"),
            "{said}"
        );
        assert!(server_addr(" ").is_err());
    }

    #[test]
    fn a_narrower_filter_is_covered_by_a_wider_one() {
        for (wide, narrow, covered) in [
            ("clicks.>", "clicks.web", true),
            ("clicks.>", "clicks.*.x", true),
            ("clicks.*", "clicks.web", true),
            ("clicks.*", "clicks.>", false),
            ("clicks.web", "clicks.*", false),
            ("clicks.web", "clicks.web", true),
            ("clicks.ap", "clicks.app", false),
            ("clicks.*", "clicks.web.x", false),
        ] {
            assert_eq!(subject_covers(wide, narrow), covered, "{wide} {narrow}");
        }
    }

    #[test]
    fn a_filter_is_checked_against_the_stream_subjects() {
        for (subject, filter, overlap) in [
            ("clicks.>", "clicks.web", true),
            ("clicks.>", "clicks.*.x", true),
            ("clicks.>", "clicks.>", true),
            ("clicks.*", "clicks.web", true),
            ("clicks.*", "clicks.web.x", false),
            ("clicks.*", "clicks.>", true),
            ("clicks.web", "clicks.*", true),
            ("clicks.web", "clicks.app", false),
            ("clicks.>", "views.web", false),
            ("clicks.>", "clicks", false),
            (">", "anything.at.all", true),
        ] {
            assert_eq!(
                subjects_overlap(subject, filter),
                overlap,
                "{subject} {filter}"
            );
        }
    }
}
