//! The Kafka source (feature `kafka`): the records of one or more topics as rows, as Spark's
//! Kafka source gives them, read by exact offset ranges so that a batch replays the same rows.
//!
//! An end offset is Spark's shape, the next offset to read of each partition:
//! `{"clicks": {"0": 23, "1": 5}}`. Batch `N` reads, of each partition, the offsets from batch
//! `N-1`'s end (included) to its own (excluded). The first batch starts at the starting
//! offsets (`starting_offsets`: `earliest`, `latest`, or per partition; or
//! `starting_timestamp`), resolved against the brokers once and kept in the checkpoint under
//! `sources/<name>/initial-offsets` (as Spark keeps them), so a replay of the first batch
//! starts where it first did. A partition that appears later (more partitions, or a new topic
//! matching `topic_pattern`) is read from offset 0, as Spark reads it.
//!
//! Planning takes each partition's end: its high watermark, or with `read_committed` (the
//! default) its last stable offset, so a range holds no record of a transaction still open;
//! `max_records_per_batch` (Spark's `maxOffsetsPerTrigger`) shares a batch's offsets among the
//! partitions in proportion to how far behind each is. A read assigns the partitions at their
//! start offsets and stops each at its end, across the gaps of control records, aborted
//! transactions and compaction. Offsets a range needs that the partition no longer holds
//! (retention, `DeleteRecords`) are an error naming topic, partition and offsets
//! (`fail_on_data_loss`, Spark's `failOnDataLoss`), or skipped and counted where the pipeline
//! sets it to false.
//!
//! Columns, as Spark's: `key` and `value` (binary), `topic`, `partition`, `offset`,
//! `timestamp` (microseconds, UTC), `timestamp_type` (0 create time, 1 log append time) and,
//! with `include_headers`, `headers` (a list of `{key, value}`). With `format: json` or `csv`
//! and a declared `schema:`, the value is decoded into the schema's columns instead (a value
//! that does not decode follows `on_error`, naming topic, partition and offset), followed by
//! the metadata columns `metadata_columns` names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) mod client;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;

use super::payload::{MetadataColumn, PayloadDecoder, PayloadFormat};
use super::{
    Admission, BatchInput, ConfigError, Lag, PartLag, Source, SourceConnector, SourceError,
    SourceKind, parse_settings,
};
use crate::checkpoint::{BatchId, CheckpointError};
use crate::format::{EpochUnit, OnError};
use crate::retry::RetrySettings;
use crate::source::kafka::client::{blocking, check_properties, client_config};
use crate::storage::{Location, StoreHook};

/// The Kafka source in the registry.
pub(super) const KIND: SourceKind = SourceKind {
    name: "kafka",
    configure,
};

/// The file in a source's checkpoint folder that keeps its resolved starting offsets.
const INITIAL_OFFSETS: &str = "initial-offsets";

/// Client properties Sluice sets itself for reading exact ranges.
const RESERVED: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
    "isolation.level",
];

/// Rows per record batch of a read.
const ROWS_PER_RECORD_BATCH: usize = 8192;

/// The offsets of each partition of each topic (an end offset: the next offset to read).
type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// The metadata columns a Kafka source can give, in Spark's order, with their types.
fn metadata_field(name: &str) -> Option<Field> {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    Some(match name {
        "key" => Field::new("key", DataType::Binary, true),
        "value" => Field::new("value", DataType::Binary, true),
        "topic" => Field::new("topic", DataType::Utf8, false),
        "partition" => Field::new("partition", DataType::Int32, false),
        "offset" => Field::new("offset", DataType::Int64, false),
        "timestamp" => Field::new("timestamp", timestamp, true),
        "timestamp_type" => Field::new("timestamp_type", DataType::Int32, true),
        "headers" => Field::new("headers", super::payload::headers_type(), true),
        _ => return None,
    })
}

const METADATA: [&str; 8] = [
    "key",
    "value",
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp_type",
    "headers",
];

/// One topic, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Topics {
    /// One topic.
    One(String),
    /// Several topics.
    Many(Vec<String>),
}

impl Topics {
    fn names(&self) -> Vec<String> {
        match self {
            Self::One(t) => vec![t.clone()],
            Self::Many(ts) => ts.clone(),
        }
    }
}

/// Where the first batch starts: a keyword, or offsets per partition.
#[derive(Debug, Clone)]
pub enum StartingOffsets {
    /// `earliest` or `latest`.
    Keyword(String),
    /// Offsets per topic and partition; -2 is the earliest, -1 the latest (Spark's).
    Specific(BTreeMap<String, BTreeMap<i32, i64>>),
}

impl<'de> Deserialize<'de> for StartingOffsets {
    /// A word, or a mapping of topics to mappings of partitions to offsets; anything else is
    /// refused naming the forms (walk 68: serde's "did not match any variant of untagged enum").
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const FORMS: &str = "`starting_offsets` is `earliest`, `latest`, or offsets per topic \
                             and partition, `{clicks: {0: 42, 1: -2}}` (-2 the earliest, -1 \
                             the latest, as Spark's `startingOffsets` JSON writes them)";
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(word) => Ok(Self::Keyword(word)),
            serde_yaml::Value::Mapping(topics) => {
                let mut specific = BTreeMap::new();
                for (topic, partitions) in topics {
                    let topic = match topic {
                        serde_yaml::Value::String(t) => t,
                        other => serde_yaml::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    let partitions = match partitions {
                        serde_yaml::Value::String(word) => {
                            return Err(D::Error::custom(format!(
                                "topic `{topic}`: `{word}` for a whole topic is not read here; \
                                 {FORMS}: write `starting_offsets: {word}` for every topic, or \
                                 each partition's offset"
                            )));
                        }
                        serde_yaml::Value::Mapping(partitions) => partitions,
                        _ => {
                            return Err(D::Error::custom(format!(
                                "topic `{topic}`: not offsets per partition. {FORMS}"
                            )));
                        }
                    };
                    // A partition as a number, or as text (Spark's JSON writes `"0"`).
                    let mut offsets = BTreeMap::new();
                    for (partition, offset) in partitions {
                        let number = match &partition {
                            serde_yaml::Value::Number(n) => n.as_i64(),
                            serde_yaml::Value::String(s) => s.trim().parse::<i64>().ok(),
                            _ => None,
                        };
                        let shown = serde_yaml::to_string(&partition)
                            .unwrap_or_default()
                            .trim()
                            .to_string();
                        let Some(partition) = number.and_then(|n| i32::try_from(n).ok()) else {
                            return Err(D::Error::custom(format!(
                                "topic `{topic}`: `{shown}` is no partition number. {FORMS}"
                            )));
                        };
                        let Some(offset) = offset.as_i64() else {
                            return Err(D::Error::custom(format!(
                                "topic `{topic}` partition {partition}: the offset is an \
                                 integer. {FORMS}"
                            )));
                        };
                        offsets.insert(partition, offset);
                    }
                    specific.insert(topic, offsets);
                }
                Ok(Self::Specific(specific))
            }
            _ => Err(D::Error::custom(FORMS)),
        }
    }
}

fn yes() -> bool {
    true
}

/// The settings of a Kafka source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// The brokers to bootstrap from, `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// The topics to read (Spark's `subscribe`).
    #[serde(default)]
    pub topics: Option<Topics>,
    /// A regular expression the whole name of each topic to read matches (Spark's
    /// `subscribePattern`); topics created later are read from their first offset.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Where the first batch starts: `earliest` (the default), `latest`, or offsets per
    /// partition (`{clicks: {0: 42}}`; -2 earliest, -1 latest; a topic named gives each of its
    /// partitions one, as Spark's `startingOffsets` asks).
    #[serde(default)]
    pub starting_offsets: Option<StartingOffsets>,
    /// The first batch starts, in each partition, at the first record at or after this RFC
    /// 3339 time (Spark's `startingTimestamp`); a partition without one starts at its end.
    #[serde(default)]
    pub starting_timestamp: Option<String>,
    /// At most this many offsets per batch, shared among the partitions (Spark's
    /// `maxOffsetsPerTrigger`); everything available where absent.
    #[serde(default)]
    pub max_records_per_batch: Option<u64>,
    /// Read only records of committed transactions, and plan to the last stable offset
    /// (Kafka's `isolation.level=read_committed`); true by default.
    #[serde(default = "yes")]
    pub read_committed: bool,
    /// Fail a batch whose offsets are partly gone from the partition (retention,
    /// `DeleteRecords`), naming them; with false, skip what is gone and count it. True by
    /// default (Spark's `failOnDataLoss`).
    #[serde(default = "yes")]
    pub fail_on_data_loss: bool,
    /// How a record's value becomes columns: `raw` (the default), `json` or `csv`.
    #[serde(default)]
    pub format: PayloadFormat,
    /// The columns a `json` or `csv` value decodes into: column name to SQL type, in order.
    #[serde(default)]
    pub schema: Option<indexmap::IndexMap<String, String>>,
    /// With `json` or `csv`: Kafka's columns to add after the decoded ones (`key`, `topic`,
    /// `partition`, `offset`, `timestamp`, `timestamp_type`, `headers`), each by its name or
    /// as another (`timestamp AS kafka_timestamp`, where the value has a `timestamp` field).
    #[serde(default)]
    pub metadata_columns: Vec<String>,
    /// With `raw`: add the `headers` column (Spark's `includeHeaders`).
    #[serde(default)]
    pub include_headers: bool,
    /// What to do with a value that does not decode: `fail` (the default) or `skip`.
    #[serde(default)]
    pub on_error: OnError,
    /// With `json` or `csv`: the unit of a number in a declared `timestamp` column
    /// (`seconds`, `milliseconds`, `microseconds`, `nanoseconds` since the epoch); such a
    /// number is refused without it.
    #[serde(default)]
    pub epoch_unit: Option<EpochUnit>,
    /// With `csv`: the character that escapes a quote inside a quoted field (`'\\'` for
    /// `\"`, as Spark writes CSV; the files source's `escape`); a quote doubled (`""`, RFC
    /// 4180) where absent, and a quoted field going on after its closing quote is a value
    /// that does not decode.
    #[serde(default)]
    pub escape: Option<String>,
    /// A consumer group to commit each committed batch's end offsets to, so that lag tools
    /// see the pipeline's progress; the checkpoint alone decides what is read.
    #[serde(default)]
    pub group_id: Option<String>,
    /// librdkafka client properties, passed through (`security.protocol`, `sasl.*`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Retries of each request to the brokers and of each batch's read.
    #[serde(default)]
    pub retry: RetrySettings,
    /// `starting_timestamp` in milliseconds since the Unix epoch.
    #[serde(skip)]
    starting_ms: Option<i64>,
    /// `topic_pattern`, compiled to match whole names.
    #[serde(skip)]
    pattern: Option<regex::Regex>,
    /// `metadata_columns`, read.
    #[serde(skip)]
    metadata: Vec<MetadataColumn>,
}

impl KafkaConfig {
    /// Whether the source reads `topic`: named in `topics`, or matching `topic_pattern` (never
    /// a topic of Kafka's own, `__`-prefixed, by a pattern).
    fn subscribes(&self, topic: &str) -> bool {
        match (&self.topics, &self.pattern) {
            (Some(names), _) => names.names().iter().any(|n| n == topic),
            (None, Some(pattern)) => !topic.starts_with("__") && pattern.is_match(topic),
            (None, None) => false,
        }
    }
}

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SourceConnector>, ConfigError> {
    Ok(Arc::new(read_config(settings)?))
}

/// The source's settings, read and checked.
fn read_config(settings: &serde_yaml::Mapping) -> Result<KafkaConfig, ConfigError> {
    let mut config: KafkaConfig = parse_settings(settings)?;
    match (&config.topics, &config.topic_pattern) {
        (None, None) => {
            return Err(ConfigError::at(
                "topics",
                "a Kafka source needs `topics` (a list) or `topic_pattern` (a regular expression)",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                "topic_pattern",
                "set `topics` or `topic_pattern`, not both",
            ));
        }
        (Some(topics), None) if topics.names().is_empty() => {
            return Err(ConfigError::at("topics", "`topics` names no topic"));
        }
        (_, Some(pattern)) if pattern.trim().is_empty() => {
            return Err(ConfigError::at(
                "topic_pattern",
                "`topic_pattern` is empty, so it matches no topic (as Spark refuses it: \"pattern \
                 to subscribe is empty\"); give a regular expression (`clicks-.*`)",
            ));
        }
        (_, Some(pattern)) => {
            config.pattern = Some(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                // The regex crate's message is a drawing over several lines: its last says why.
                let why = match &e {
                    regex::Error::Syntax(text) => text
                        .lines()
                        .rev()
                        .find_map(|l| l.trim().strip_prefix("error: "))
                        .unwrap_or(text)
                        .to_string(),
                    other => other.to_string(),
                };
                ConfigError::at(
                    "topic_pattern",
                    format!("`{pattern}` is not a regular expression: {why}"),
                )
            })?);
        }
        _ => {}
    }
    if let Some(StartingOffsets::Keyword(word)) = &config.starting_offsets
        && word != "earliest"
        && word != "latest"
    {
        return Err(ConfigError::at(
            "starting_offsets",
            format!(
                "{}; or offsets per partition, e.g. {{clicks: {{0: 42}}}}",
                crate::vocab::unknown_keyword(word, &["earliest", "latest"])
            ),
        ));
    }
    if let Some(text) = &config.starting_timestamp {
        // Spark lets the timestamp win without a word; both set is refused instead.
        if config.starting_offsets.is_some() {
            return Err(ConfigError::at(
                "starting_timestamp",
                "set `starting_offsets` or `starting_timestamp`, not both: each says where the \
                 first batch starts",
            ));
        }
        let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
            ConfigError::at(
                "starting_timestamp",
                format!("`{text}` is not an RFC 3339 time ({e}); e.g. 2026-01-01T00:00:00Z"),
            )
        })?;
        // Kafka keeps milliseconds: a time between two is the next one's (audit 91c: a record
        // at `.000` was read from `.000500`, which it is not at or after).
        let ms = at.timestamp_millis();
        let past_ms = at.timestamp_subsec_nanos() % 1_000_000 != 0;
        config.starting_ms = Some(if past_ms { ms + 1 } else { ms });
    }
    if config.max_records_per_batch == Some(0) {
        return Err(ConfigError::at(
            "max_records_per_batch",
            "`max_records_per_batch` must be at least 1",
        ));
    }
    super::payload::csv_escape(config.escape.as_deref(), config.format)?;
    match config.format {
        PayloadFormat::Raw => {
            if config.schema.is_some() {
                return Err(ConfigError::at(
                    "schema",
                    "`schema` decodes values: set `format: json` or `format: csv` with it",
                ));
            }
            if !config.metadata_columns.is_empty() {
                return Err(ConfigError::at(
                    "metadata_columns",
                    "with `format: raw` every Kafka column is there already",
                ));
            }
            if config.epoch_unit.is_some() {
                return Err(ConfigError::at(
                    "epoch_unit",
                    "`epoch_unit` reads numbers in decoded values as times: set `format: json` \
                     or `format: csv` with a `schema:` (the `timestamp` column is typed already)",
                ));
            }
        }
        PayloadFormat::Json | PayloadFormat::Csv => {
            let Some(schema) = &config.schema else {
                return Err(ConfigError::at(
                    "schema",
                    format!(
                        "`format: {}` decodes each value into declared columns: add `schema:` \
                         (column: SQL type)",
                        config.format
                    ),
                ));
            };
            if config.include_headers {
                return Err(ConfigError::at(
                    "include_headers",
                    "with a decoded format, list `headers` under `metadata_columns` instead",
                ));
            }
            let known: Vec<&str> = METADATA.iter().copied().filter(|m| *m != "value").collect();
            config.metadata =
                super::payload::metadata_columns(&config.metadata_columns, &known, schema)?;
        }
    }
    config.retry.check()?;
    // The client settings are checked now, so a bad property is refused at load (a
    // `${VAR}` in them is filled in only when connecting).
    check_properties(&config.properties, RESERVED)?;
    Ok(config)
}

impl KafkaConfig {
    /// The configuration of a consumer that reads exact ranges (or, with `group`, commits a
    /// group's offsets).
    fn consumer_config(&self, group: Option<&str>) -> Result<rdkafka::ClientConfig, ConfigError> {
        let mut config = client_config(&self.bootstrap_servers, &self.properties, RESERVED)?;
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error")
            .set(
                "isolation.level",
                if self.read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .set(
                "socket.timeout.ms",
                self.retry.timeout.as_millis().max(10).to_string(),
            );
        // A range is read up to an end known before the read, so a fetch need not wait on the
        // broker for more records (librdkafka's 500 ms): a fetch in flight when a read ends
        // holds up the next batch's metadata and offsets requests, which share its connection.
        if !self.properties.contains_key("fetch.wait.max.ms") {
            config.set("fetch.wait.max.ms", "10");
        }
        // librdkafka wants a group id even for a consumer that only assigns.
        config.set(
            "group.id",
            group.unwrap_or("sluice-reader-without-group-commits"),
        );
        Ok(config)
    }

    /// The source's columns: the decoded ones then the metadata ones, or Spark's.
    fn schema(&self, value: Option<&SchemaRef>) -> SchemaRef {
        let mut fields: Vec<Field> = Vec::new();
        match value {
            Some(value) => {
                fields.extend(value.fields().iter().map(|f| f.as_ref().clone()));
                fields.extend(
                    self.metadata.iter().filter_map(|m| {
                        metadata_field(&m.key).map(|f| f.with_name(m.column.clone()))
                    }),
                );
            }
            None => {
                fields.extend(
                    METADATA
                        .iter()
                        .filter(|m| **m != "headers" || self.include_headers)
                        .filter_map(|m| metadata_field(m)),
                );
            }
        }
        Arc::new(Schema::new(fields))
    }

    /// The declared value schema, for `json` and `csv`.
    async fn value_schema(&self, name: &str) -> Result<Option<SchemaRef>, SourceError> {
        super::payload::declared_schema(name, self.schema.as_ref(), self.epoch_unit).await
    }
}

#[async_trait]
impl SourceConnector for KafkaConfig {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    /// A Kafka sink's topic (`kafka://<servers>/<topic>`) on a broker this source names (one
    /// bootstrap server in common), named in `topics` or matching `topic_pattern`.
    fn reads_stream(&self, place: &str) -> bool {
        let Some((servers, topic)) = place
            .strip_prefix("kafka://")
            .and_then(|rest| rest.rsplit_once('/'))
        else {
            return false;
        };
        // Each server as written, and the addresses its name resolves to (`localhost:9092`
        // is `127.0.0.1:9092`).
        let listed = |list: &str| -> std::collections::HashSet<String> {
            let mut all = std::collections::HashSet::new();
            for server in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                all.insert(server.to_ascii_lowercase());
                if let Ok(addresses) = std::net::ToSocketAddrs::to_socket_addrs(server) {
                    all.extend(addresses.map(|a| a.to_string()));
                }
            }
            all
        };
        if listed(servers).is_disjoint(&listed(&self.bootstrap_servers)) {
            return false;
        }
        self.subscribes(topic)
    }

    async fn open(
        &self,
        name: &str,
        checkpoint: &Location,
        _hook: Option<&StoreHook>,
        _sync: bool,
    ) -> Result<Box<dyn Source>, SourceError> {
        let value_schema = self.value_schema(name).await?;
        let schema = self.schema(value_schema.as_ref());
        let consumer_config = self
            .consumer_config(None)
            .map_err(|e| SourceError::Config {
                source_name: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Box::new(KafkaSource {
            name: name.to_string(),
            config: Arc::new(self.clone()),
            checkpoint: checkpoint.clone(),
            schema,
            value_schema,
            consumer_config,
            consumer: Arc::new(Mutex::new(None)),
            initial: tokio::sync::OnceCell::new(),
            frozen: None,
            said_shrunk: false,
            reached: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    async fn peek_schema(&self, name: &str) -> Result<Option<SchemaRef>, SourceError> {
        let value = self.value_schema(name).await?;
        Ok(Some(self.schema(value.as_ref())))
    }

    fn describe_offset(&self, _name: &str, offset: &serde_json::Value) -> String {
        match serde_json::from_value::<Offsets>(offset.clone()) {
            Ok(offsets) => describe(&offsets),
            Err(_) => offset.to_string(),
        }
    }

    async fn lag(
        &self,
        name: &str,
        offset: &serde_json::Value,
    ) -> Result<Option<Lag>, SourceError> {
        let offsets: Offsets = if offset.is_null() {
            Offsets::new()
        } else {
            serde_json::from_value(offset.clone()).map_err(|e| SourceError::Connector {
                source_name: name.to_string(),
                kind: KIND.name,
                error: format!("the offset {offset} is not {{topic: {{partition: offset}}}}: {e}")
                    .into(),
            })?
        };
        // One attempt, briefly: inspect shows the checkpoint whether or not the brokers answer.
        let mut config = self.clone();
        config.retry.timeout = config.retry.timeout.min(Duration::from_secs(10));
        let client = config
            .consumer_config(None)
            .map_err(|e| SourceError::Config {
                source_name: name.to_string(),
                reason: e.to_string(),
            })?;
        // Under `read_committed` the ends are the last stable offsets: the log's ends too,
        // to tell records an open transaction holds back.
        let read_committed = self.read_committed;
        let listed = blocking(
            move || -> Result<Result<(Partitions, Option<Offsets>), String>, KafkaError> {
                // The log's ends first: records appended between the two lists then count
                // in neither (never as held back by a transaction).
                let logged = if read_committed {
                    let mut uncommitted = client.clone();
                    uncommitted.set("isolation.level", "read_uncommitted");
                    crate::source::kafka::client::range_consumer(&uncommitted)
                        .ok()
                        .and_then(|c| list_partitions(&c, &config).ok())
                        .and_then(|listed| match listed {
                            Listed::Partitions(p) => Some(p.high),
                            Listed::Missing(_) | Listed::Unavailable(_) => None,
                        })
                } else {
                    None
                };
                let consumer = crate::source::kafka::client::range_consumer(&client)?;
                let stable = match list_partitions(&consumer, &config)? {
                    Listed::Partitions(stable) => stable,
                    Listed::Missing(e) | Listed::Unavailable(e) => return Ok(Err(e)),
                };
                Ok(Ok((stable, logged)))
            },
        )
        .await;
        let now = listed
            .map_err(|e| e.to_string())
            .and_then(|l| l)
            .map_err(|e| SourceError::Connector {
                source_name: name.to_string(),
                kind: KIND.name,
                error: format!(
                    "cannot list the partitions and their offsets at {}: {e}",
                    self.bootstrap_servers
                )
                .into(),
            })?;
        let (now, logged) = now;
        let mut parts = Vec::new();
        for (topic, ends) in &now.high {
            for (partition, end) in ends {
                let at = offsets.get(topic).and_then(|o| o.get(partition)).copied();
                let from = at.or_else(|| now.low.get(topic)?.get(partition).copied());
                let log_end = logged
                    .as_ref()
                    .and_then(|l| l.get(topic)?.get(partition).copied());
                parts.push(PartLag {
                    part: format!("{topic} partition {partition}"),
                    offset: at,
                    end: *end,
                    lag: u64::try_from(end - from.unwrap_or(*end)).unwrap_or(0),
                    ends_below_read: at.is_some_and(|at| at > *end),
                    topic: Some(topic.clone()),
                    partition: Some(*partition),
                    held_back: log_end.map_or(0, |l| u64::try_from(l - end).unwrap_or(0)),
                    gone: false,
                });
            }
        }
        // Partitions read so far, of a topic the source still reads, that the brokers no
        // longer have: the next run stops on them.
        for (topic, read) in &offsets {
            if !self.subscribes(topic) {
                continue;
            }
            for (partition, at) in read {
                if now
                    .high
                    .get(topic)
                    .is_some_and(|ends| ends.contains_key(partition))
                {
                    continue;
                }
                parts.push(PartLag {
                    part: format!("{topic} partition {partition}"),
                    offset: Some(*at),
                    end: *at,
                    lag: 0,
                    ends_below_read: false,
                    topic: Some(topic.clone()),
                    partition: Some(*partition),
                    held_back: 0,
                    gone: true,
                });
            }
        }
        // Offsets, as Kafka's own consumer lag counts them: a transaction's commit marker
        // takes one, and compaction leaves gaps, so records may be fewer.
        Ok(Some(Lag {
            unit: "offsets",
            total: parts.iter().map(|p| p.lag).sum(),
            parts,
        }))
    }

    async fn rebuild_offset(
        &self,
        _name: &str,
        _checkpoint: &Location,
        _batch: BatchId,
    ) -> Result<serde_json::Value, SourceError> {
        Err(self.not_supported(
            "rebuilding a lost offset (`sluice repair`; a Kafka source keeps its ranges only \
             in the offsets log)",
        ))
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
        // A batch's range is all in `offsets/N`; the starting offsets stay.
        Ok(0)
    }
}

/// Partition numbers as `0 to 2` when they run without a gap, else listed: `0, 2, 5`.
fn number_span<'a>(numbers: impl Iterator<Item = &'a i32>) -> String {
    let numbers: Vec<i32> = numbers.copied().collect();
    match (numbers.first(), numbers.last()) {
        (Some(first), Some(last))
            if numbers.len() > 2 && (last - first) as usize == numbers.len() - 1 =>
        {
            format!("{first} to {last}")
        }
        _ => numbers
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Offsets in words: `clicks: partition 0 at 23, partition 1 at 5`.
fn describe(offsets: &Offsets) -> String {
    offsets
        .iter()
        .map(|(topic, partitions)| {
            let list = partitions
                .iter()
                .map(|(p, o)| format!("partition {p} at {o}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{topic}: {list}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A running Kafka source.
pub struct KafkaSource {
    name: String,
    config: Arc<KafkaConfig>,
    checkpoint: Location,
    schema: SchemaRef,
    value_schema: Option<SchemaRef>,
    consumer_config: rdkafka::ClientConfig,
    /// The consumer that plans and reads, made at first use (one read at a time).
    consumer: Arc<Mutex<Option<crate::source::kafka::client::RangeConsumer>>>,
    /// The starting offsets, as logged in the checkpoint.
    initial: tokio::sync::OnceCell<Offsets>,
    /// The ends `available-now` and `once` froze the input at.
    frozen: Option<Offsets>,
    /// A partition found ending below the offset read up to has been said (once a run).
    said_shrunk: bool,
    /// The brokers have answered this run: the TCP probe of [`client::reachable`] is for a
    /// first contact, not for every batch's listing.
    reached: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.name)
            .field("frozen", &self.frozen)
            .finish_non_exhaustive()
    }
}

/// What the brokers say of the partitions to read.
#[derive(Debug, Default)]
struct Partitions {
    /// Each partition's first offset still held (the low watermark).
    low: Offsets,
    /// Each partition's end: high watermark, or last stable offset under `read_committed`.
    high: Offsets,
}

/// A record, copied out of librdkafka's buffer.
struct Record {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<(i64, i32)>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// One partition's range to read: offsets `start..end`.
#[derive(Debug, Clone)]
struct Range {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
}

impl KafkaSource {
    fn connector_error(&self, error: impl std::fmt::Display) -> SourceError {
        SourceError::Connector {
            source_name: self.name.clone(),
            kind: KIND.name,
            error: error.to_string().into(),
        }
    }

    fn corrupt(&self, offset: &serde_json::Value, reason: &str) -> SourceError {
        CheckpointError::Corrupt {
            file: format!("offsets entry of source `{}`", self.name),
            line: 1,
            reason: format!("the Kafka offset {offset} {reason}"),
        }
        .into()
    }

    /// An offset from the log; `None` for no offset (`null` or absent).
    fn parse(&self, offset: Option<&serde_json::Value>) -> Result<Option<Offsets>, SourceError> {
        let Some(offset) = offset.filter(|o| !o.is_null()) else {
            return Ok(None);
        };
        serde_json::from_value(offset.clone())
            .map(Some)
            .map_err(|e| {
                self.corrupt(
                    offset,
                    &format!("is not {{topic: {{partition: offset}}}}: {e}"),
                )
            })
    }

    /// Runs `f` with the consumer (made at first use) on the blocking pool.
    async fn with_consumer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::source::kafka::client::RangeConsumer) -> Result<T, KafkaError>
        + Send
        + 'static,
    ) -> Result<T, KafkaError> {
        let consumer = Arc::clone(&self.consumer);
        let config = self.consumer_config.clone();
        blocking(move || {
            let mut guard = consumer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.is_none() {
                *guard = Some(crate::source::kafka::client::range_consumer(&config)?);
            }
            match guard.as_ref() {
                Some(c) => f(c),
                None => Err(KafkaError::ClientCreation("no consumer".into())),
            }
        })
        .await
    }

    /// The partitions to read now, with their low and high watermarks, retried.
    async fn partitions(&self) -> Result<Partitions, SourceError> {
        let config = Arc::clone(&self.config);
        let retry = &self.config.retry;
        retry
            .run(
                &format!("source `{}`: listing partitions", self.name),
                |e: &ListError| {
                    !matches!(e, ListError::Kafka(k) if !client::kafka_advice(k).is_empty())
                },
                || {
                    let config = Arc::clone(&config);
                    async move {
                        use std::sync::atomic::Ordering;
                        if !self.reached.load(Ordering::Relaxed) {
                            client::reachable(
                                &config.bootstrap_servers,
                                config.retry.timeout,
                                client::plaintext(&config.properties),
                            )
                            .await
                            .map_err(ListError::Unreachable)?;
                        }
                        let listed = self
                            .with_consumer(move |c| list_partitions(c, &config))
                            .await
                            .map_err(ListError::Kafka)?;
                        self.reached.store(true, Ordering::Relaxed);
                        match listed {
                            Listed::Partitions(partitions) => Ok(Ok(partitions)),
                            Listed::Missing(missing) => Ok(Err(missing)),
                            Listed::Unavailable(why) => Err(ListError::Topic(why)),
                        }
                    }
                },
            )
            .await
            .map_err(|e| {
                self.connector_error(format!(
                    "cannot list the partitions and their offsets at {}: {e}",
                    self.config.bootstrap_servers
                ))
            })?
            // A topic named that is not there: the pipeline names the wrong one (exit 2).
            .map_err(|missing| SourceError::Config {
                source_name: self.name.clone(),
                reason: format!(
                    "{missing}: make it first (`kafka-topics.sh --create`), or fix `topics:`"
                ),
            })
    }

    /// The partitions of `topic`, asked of the brokers by its name; `None` where they answer
    /// that it does not exist.
    ///
    /// Errors: [`SourceError::Connector`] where they answer with another error (not
    /// authorized, no leader yet), or cannot be asked.
    async fn partitions_by_name(&self, topic: &str) -> Result<Option<BTreeSet<i32>>, SourceError> {
        use rdkafka::types::RDKafkaErrorCode;
        let timeout = self.config.retry.timeout;
        let name = topic.to_string();
        let answer = self
            .with_consumer(move |c| {
                let metadata = c.fetch_metadata(Some(&name), timeout)?;
                Ok(metadata.topics().first().map(|t| {
                    (
                        t.error().map(RDKafkaErrorCode::from),
                        t.partitions()
                            .iter()
                            .map(|p| p.id())
                            .collect::<BTreeSet<i32>>(),
                    )
                }))
            })
            .await
            .map_err(|e| {
                self.connector_error(format!("asking the brokers for topic `{topic}`: {e}"))
            })?;
        match answer {
            None | Some((Some(RDKafkaErrorCode::UnknownTopicOrPartition), _)) => Ok(None),
            Some((None, partitions)) => Ok(Some(partitions)),
            Some((Some(code), _)) => Err(self.connector_error(format!(
                "topic `{topic}`, which the batches so far read, is not among the topics the \
                 brokers list, and asked by its name they answer {code}: whether it is gone \
                 cannot be told (the next run asks again)"
            ))),
        }
    }

    /// The log's end (the high watermark, as a `read_uncommitted` client sees it) of each of
    /// `parts`, a partition gone from the brokers left out. Under `read_committed` a
    /// partition's end is its last stable offset, which another producer's transaction still
    /// open holds back: only the log's end ending below an offset says the partition lost
    /// records past it (its topic made again), not a transaction not yet ended.
    async fn log_ends(
        &self,
        parts: Vec<(String, i32)>,
    ) -> Result<BTreeMap<(String, i32), i64>, SourceError> {
        let mut config = self.consumer_config.clone();
        config.set("isolation.level", "read_uncommitted");
        let timeout = self.config.retry.timeout;
        self.config
            .retry
            .run(
                &format!("source `{}`: reading the partitions' log ends", self.name),
                |_: &KafkaError| true,
                || {
                    let config = config.clone();
                    let parts = parts.clone();
                    blocking(move || -> Result<_, KafkaError> {
                        let consumer = crate::source::kafka::client::range_consumer(&config)?;
                        let mut ends = BTreeMap::new();
                        for (topic, partition) in parts {
                            match consumer.fetch_watermarks(&topic, partition, timeout) {
                                Ok((_, high)) => {
                                    ends.insert((topic, partition), high);
                                }
                                Err(KafkaError::MetadataFetch(
                                    rdkafka::types::RDKafkaErrorCode::UnknownPartition
                                    | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
                                )) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(ends)
                    })
                },
            )
            .await
            .map_err(|e| {
                self.connector_error(format!(
                    "cannot read the partitions' log ends at {}: {e}",
                    self.config.bootstrap_servers
                ))
            })
    }

    /// The starting offsets: logged in the checkpoint by the first plan, resolved against
    /// `partitions` then.
    async fn initial(&self, now: Option<&Partitions>) -> Result<&Offsets, SourceError> {
        self.initial
            .get_or_try_init(|| async {
                let path = self
                    .checkpoint
                    .path(&format!("sources/{}/{INITIAL_OFFSETS}", self.name));
                let setting_path = self
                    .checkpoint
                    .path(&format!("sources/{}/{INITIAL_OFFSETS}.from", self.name));
                if let Some(bytes) = self.checkpoint.get(&path).await? {
                    self.say_setting_changed(&setting_path).await?;
                    return serde_json::from_slice::<Offsets>(&bytes).map_err(|e| {
                        SourceError::from(CheckpointError::Corrupt {
                            file: format!("{}/{path}", self.checkpoint),
                            line: 1,
                            reason: e.to_string(),
                        })
                    });
                }
                let fetched;
                let now = match now {
                    Some(now) => now,
                    None => {
                        fetched = self.partitions().await?;
                        &fetched
                    }
                };
                let resolved = self.resolve_start(now).await?;
                let text = serde_json::to_vec(&resolved).map_err(|e| self.connector_error(e))?;
                // The setting they were resolved from goes first, so that an edit of it is
                // said whenever the offsets are there.
                self.checkpoint
                    .put(&setting_path, self.starting_setting().into_bytes())
                    .await?;
                if self.checkpoint.put_if_absent(&path, text).await? {
                    Ok(resolved)
                } else {
                    // Another run logged them first: theirs stand.
                    let bytes = self.checkpoint.get(&path).await?.unwrap_or_default();
                    serde_json::from_slice::<Offsets>(&bytes).map_err(|e| {
                        SourceError::from(CheckpointError::Corrupt {
                            file: format!("{}/{path}", self.checkpoint),
                            line: 1,
                            reason: e.to_string(),
                        })
                    })
                }
            })
            .await
    }

    /// Where the settings say the first batch starts, as a line of the pipeline file would
    /// say it (`starting_offsets: latest`); kept beside the offsets resolved from it.
    fn starting_setting(&self) -> String {
        match (
            &self.config.starting_timestamp,
            &self.config.starting_offsets,
        ) {
            (Some(at), _) => format!("starting_timestamp: {at}"),
            (None, Some(StartingOffsets::Keyword(word))) => format!("starting_offsets: {word}"),
            (None, Some(StartingOffsets::Specific(map))) => format!(
                "starting_offsets: {}",
                serde_json::to_string(map).unwrap_or_default()
            ),
            (None, None) => "starting_offsets: earliest".to_string(),
        }
    }

    /// Warns when the starting offsets kept in the checkpoint were resolved from another
    /// setting than this pipeline's: they apply to a checkpoint's first plan only (Spark's
    /// `startingOffsets` too), so the edit changes nothing, whether or not a batch ran since.
    async fn say_setting_changed(
        &self,
        setting_path: &object_store::path::Path,
    ) -> Result<(), SourceError> {
        let Some(bytes) = self.checkpoint.get(setting_path).await? else {
            // Kept by a version that did not keep the setting.
            return Ok(());
        };
        let was = String::from_utf8_lossy(&bytes).into_owned();
        let now = self.starting_setting();
        if was != now && super::first_time(format!("{}/{setting_path}", self.checkpoint)) {
            tracing::warn!(
                "source `{}`: this checkpoint's starting offsets were resolved from `{was}`, \
                 this pipeline says `{now}`; where a stream starts is resolved once, by a \
                 checkpoint's first run (as Spark's `startingOffsets`), so this run goes on from \
                 the offsets kept then. To start from `{now}`, run on a new checkpoint \
                 (`checkpoint:` or `--checkpoint`)",
                self.name
            );
        }
        Ok(())
    }

    /// The starting offsets the settings give, against the partitions there are now.
    async fn resolve_start(&self, now: &Partitions) -> Result<Offsets, SourceError> {
        let mut start = Offsets::new();
        if let Some(ms) = self.config.starting_ms {
            let mut list = TopicPartitionList::new();
            for (topic, partitions) in &now.high {
                for p in partitions.keys() {
                    list.add_partition_offset(topic, *p, Offset::Offset(ms))
                        .map_err(|e| self.connector_error(e))?;
                }
            }
            // Looked up as a `read_uncommitted` client: under `read_committed` the brokers look
            // only below the last stable offset, and answer "none" for a time whose first
            // record is past a transaction still open, which read as the last stable offset
            // started the batches at records older than the time (audit 90a #2).
            let timeout = self.config.retry.timeout;
            let mut config = self.consumer_config.clone();
            config.set("isolation.level", "read_uncommitted");
            let found = self
                .config
                .retry
                .run(
                    &format!("source `{}`: finding offsets by time", self.name),
                    |_: &KafkaError| true,
                    || {
                        let list = list.clone();
                        let config = config.clone();
                        blocking(move || -> Result<_, KafkaError> {
                            let consumer = client::range_consumer(&config)?;
                            let found = consumer.offsets_for_times(list, timeout)?;
                            let mut offsets = Vec::new();
                            for element in found.elements() {
                                let topic = element.topic().to_string();
                                let p = element.partition();
                                // A partition's own error is not "no record at the time".
                                element.error()?;
                                let offset = match element.offset() {
                                    Offset::Offset(o) => o,
                                    // No record at or after the time: start at the log's end.
                                    _ => consumer.fetch_watermarks(&topic, p, timeout)?.1,
                                };
                                offsets.push((topic, p, offset));
                            }
                            Ok(offsets)
                        })
                    },
                )
                .await
                .map_err(|e| self.connector_error(format!("finding offsets by time: {e}")))?;
            for (topic, p, offset) in found {
                start.entry(topic).or_default().insert(p, offset);
            }
            return Ok(start);
        }
        for (topic, partitions) in &now.high {
            for (p, high) in partitions {
                let low = now.low[topic][p];
                let offset = match &self.config.starting_offsets {
                    Some(StartingOffsets::Keyword(w)) if w == "latest" => *high,
                    Some(StartingOffsets::Keyword(_)) | None => low,
                    Some(StartingOffsets::Specific(map)) => {
                        match map.get(topic).and_then(|m| m.get(p)).copied() {
                            Some(-1) => *high,
                            Some(-2) | None => low,
                            Some(o) if o < -2 => {
                                return Err(SourceError::Config {
                                    source_name: self.name.clone(),
                                    reason: format!(
                                        "`starting_offsets` gives {topic} partition {p} the \
                                         offset {o}; an offset is at least 0 (-2 earliest, -1 \
                                         latest)"
                                    ),
                                });
                            }
                            // Past the end, it names no record of this partition (one
                            // of another cluster, or of the topic before it was made
                            // anew): refused, as Spark's source refuses it.
                            Some(o) if o > *high => {
                                let holds = if *high > low {
                                    format!("holds offsets {low} to {}", high - 1)
                                } else {
                                    "holds no record".to_string()
                                };
                                return Err(SourceError::Config {
                                    source_name: self.name.clone(),
                                    reason: format!(
                                        "`starting_offsets` gives {topic} partition {p} the \
                                         offset {o}, past its end: the partition {holds} (the \
                                         next record written gets {high}). Give an offset up \
                                         to {high}, -2 (earliest) or -1 (latest)"
                                    ),
                                });
                            }
                            Some(o) => o,
                        }
                    }
                };
                start.entry(topic.clone()).or_default().insert(*p, offset);
            }
        }
        // Walk 101: a topic whose every record retention had removed started at its end, and
        // the run said "0 batches" and nothing else.
        if !matches!(&self.config.starting_offsets, Some(StartingOffsets::Keyword(w)) if w == "latest")
        {
            for (topic, partitions) in &now.high {
                let emptied: Vec<String> = partitions
                    .iter()
                    .filter(|(p, high)| now.low[topic][*p] == **high && **high > 0)
                    .map(|(p, high)| format!("partition {p} at {high}"))
                    .collect();
                if !emptied.is_empty() && emptied.len() == partitions.len() {
                    tracing::warn!(
                        "source `{}`: topic {topic} holds no record now, though records were \
                         written to it (its partitions start and end at the same offset: {}): \
                         the topic's retention (`retention.ms`, by the records' timestamps) \
                         or a deletion removed them before this checkpoint's first batch. \
                         Batches start there, with the records written from now on",
                        self.name,
                        emptied.join(", ")
                    );
                }
            }
        }
        if let Some(StartingOffsets::Specific(map)) = &self.config.starting_offsets {
            // A topic named gives every partition its start, as Spark asks: one left out
            // would start at the earliest offset without a word.
            for (topic, partitions) in map {
                let missing: Vec<String> = now
                    .high
                    .get(topic)
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .filter(|p| !partitions.contains_key(p))
                    .map(i32::to_string)
                    .collect();
                if !missing.is_empty() {
                    return Err(SourceError::Config {
                        source_name: self.name.clone(),
                        reason: format!(
                            "`starting_offsets` gives {topic} no offset for partition(s) {}: give \
                             every partition of a topic it names one (-2 earliest, -1 latest), \
                             as Spark's `startingOffsets` asks",
                            missing.join(", ")
                        ),
                    });
                }
            }
            for (topic, partitions) in map {
                for p in partitions.keys() {
                    if !now.high.get(topic).is_some_and(|m| m.contains_key(p)) {
                        let reads = match now.high.get(topic) {
                            Some(m) => format!(
                                "{topic} has {} partition(s), numbered {}",
                                m.len(),
                                number_span(m.keys())
                            ),
                            None => format!(
                                "{topic} is not among the topics it reads ({})",
                                now.high.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        };
                        return Err(SourceError::Config {
                            source_name: self.name.clone(),
                            reason: format!(
                                "`starting_offsets` names {topic} partition {p}, which the \
                                 source does not read: {reads}"
                            ),
                        });
                    }
                }
            }
        }
        Ok(start)
    }

    /// Each partition's range in `(start, end]`.
    async fn ranges(
        &self,
        start: Option<&serde_json::Value>,
        end: &Offsets,
    ) -> Result<Vec<Range>, SourceError> {
        let base = match self.parse(start)? {
            Some(base) => base,
            None => self.initial(None).await?.clone(),
        };
        let mut ranges = Vec::new();
        for (topic, partitions) in end {
            for (p, e) in partitions {
                let s = base.get(topic).and_then(|m| m.get(p)).copied().unwrap_or(0);
                // A batch that found the partition gone back (made again, under
                // `fail_on_data_loss: false`) ends at its end then, reading nothing of it,
                // whatever the setting is now.
                if s > *e {
                    continue;
                }
                if s < *e {
                    ranges.push(Range {
                        topic: topic.clone(),
                        partition: *p,
                        start: s,
                        end: *e,
                    });
                }
            }
        }
        Ok(ranges)
    }

    /// Checks the ranges against what the partitions still hold: offsets gone fail the read
    /// (`fail_on_data_loss`), or are skipped; the count skipped.
    async fn check_held(&self, ranges: &mut [Range]) -> Result<u64, SourceError> {
        if ranges.is_empty() {
            return Ok(0);
        }
        let now = self.partitions().await?;
        // Under `read_committed`, an end below a range's is a transaction still open, or the
        // topic made again: the log's end tells them apart (audit 86 #2: a recovered batch
        // read the topic made again's records as the ones planned).
        let held_back: Vec<(String, i32)> = ranges
            .iter()
            .filter(|range| {
                self.config.read_committed
                    && now
                        .high
                        .get(&range.topic)
                        .and_then(|m| m.get(&range.partition))
                        .is_some_and(|high| *high < range.end)
            })
            .map(|range| (range.topic.clone(), range.partition))
            .collect();
        let log_ends = if held_back.is_empty() {
            BTreeMap::new()
        } else {
            self.log_ends(held_back).await?
        };
        let mut lost = 0u64;
        let mut gone = Vec::new();
        for range in ranges.iter_mut() {
            let low = now
                .low
                .get(&range.topic)
                .and_then(|m| m.get(&range.partition))
                .copied();
            let high = now
                .high
                .get(&range.topic)
                .and_then(|m| m.get(&range.partition))
                .copied();
            let (Some(low), Some(high)) = (low, high) else {
                gone.push(format!(
                    "{} partition {} {} (the partition no longer exists)",
                    range.topic,
                    range.partition,
                    crate::vocab::offsets(range.start, range.end)
                ));
                lost += (range.end - range.start) as u64;
                range.start = range.end;
                continue;
            };
            if low > range.start {
                let upto = low.min(range.end);
                gone.push(format!(
                    "{} partition {} {} (the partition now starts at {low})",
                    range.topic,
                    range.partition,
                    crate::vocab::offsets(range.start, upto)
                ));
                lost += (upto - range.start) as u64;
                range.start = upto;
            }
            // The log's end under `read_committed` (a partition gone since is a log's end of 0).
            let high = if self.config.read_committed && high < range.end {
                log_ends
                    .get(&(range.topic.clone(), range.partition))
                    .copied()
                    .unwrap_or(0)
            } else {
                high
            };
            if high < range.end {
                gone.push(format!(
                    "{} partition {} {} (the partition now ends at {high}: was the topic \
                     deleted and made again?)",
                    range.topic,
                    range.partition,
                    crate::vocab::offsets(high.max(range.start), range.end)
                ));
                lost += (range.end - high.max(range.start)) as u64;
                range.end = high.max(range.start);
            }
        }
        if !gone.is_empty() {
            if self.config.fail_on_data_loss {
                return Err(self.connector_error(format!(
                    "records the batch reads are gone: {}; they were deleted (retention, \
                     DeleteRecords) before the batch was read. {}",
                    gone.join("; "),
                    super::SKIP_WHAT_IS_GONE
                )));
            }
            tracing::warn!(
                "source `{}`: skipping records that are gone: {}",
                self.name,
                gone.join("; ")
            );
        }
        Ok(lost)
    }

    /// Reads the ranges' records, each partition's in offset order.
    async fn fetch(
        &self,
        ranges: Vec<Range>,
    ) -> Result<Vec<(Range, Vec<Record>)>, crate::retry::RetryError<ReadError>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let timeout = self.config.retry.timeout;
        self.config
            .retry
            .run(
                &format!("source `{}`: reading a batch", self.name),
                // Records gone from under the read are not there to read again.
                |e: &ReadError| !e.records_gone(),
                || {
                    let ranges = ranges.clone();
                    async move {
                        self.with_consumer(move |c| Ok(read_ranges(c, ranges, timeout)))
                            .await
                            .map_err(ReadError::from)
                            .and_then(|read| read)
                    }
                },
            )
            .await
    }

    /// The metadata a column of the source holds: its `metadata_columns` key, or the
    /// column's own name (Spark's columns, with `format: raw`).
    fn metadata_key<'a>(&'a self, column: &'a str) -> &'a str {
        self.config
            .metadata
            .iter()
            .find(|m| m.column == column)
            .map_or(column, |m| m.key.as_str())
    }

    /// Builds the rows of one partition's records in `schema`'s columns.
    fn rows(
        &self,
        range: &Range,
        records: &[Record],
        schema: &SchemaRef,
        skipped: &mut u64,
        unknown: &mut (u64, BTreeSet<String>),
    ) -> Result<Vec<RecordBatch>, SourceError> {
        let Some(value_schema) = &self.value_schema else {
            return records
                .chunks(ROWS_PER_RECORD_BATCH)
                .map(|chunk| {
                    let columns = schema
                        .fields()
                        .iter()
                        .map(|f| metadata_array(self.metadata_key(f.name()), range, chunk))
                        .collect();
                    batch(schema, columns, chunk.len())
                })
                .collect();
        };
        let value_columns: Vec<usize> = schema
            .fields()
            .iter()
            .filter_map(|f| value_schema.index_of(f.name()).ok())
            .collect();
        let decoder = PayloadDecoder {
            format: self.config.format,
            schema: value_schema,
            wanted: &value_columns,
            on_error: self.config.on_error,
            epoch_unit: self.config.epoch_unit,
            escape: super::payload::csv_escape(self.config.escape.as_deref(), self.config.format)
                .ok()
                .flatten(),
        };
        let values: Vec<Option<&[u8]>> = records.iter().map(|r| r.value.as_deref()).collect();
        let decoded = decoder
            .decode(&values, &|i, reason| {
                self.malformed(range, records[i].offset, reason)
            })
            .map_err(|e| match e {
                SourceError::Read { reason, .. } => self.connector_error(format!(
                    "{} partition {}: {reason}",
                    range.topic, range.partition
                )),
                e => e,
            })?;
        *skipped += decoded.skipped;
        unknown.0 += decoded.unknown_rows;
        unknown.1.extend(decoded.unknown_fields);
        let batches = decoded.batches;
        let kept: Vec<&Record> = decoded.kept.iter().map(|&i| &records[i]).collect();
        let mut out = Vec::with_capacity(batches.len());
        let mut at = 0;
        for decoded in batches {
            let n = decoded.num_rows();
            let chunk: Vec<&Record> = kept[at..at + n].to_vec();
            at += n;
            let columns = schema
                .fields()
                .iter()
                .map(|f| match decoded.schema().index_of(f.name()) {
                    Ok(i) if value_schema.index_of(f.name()).is_ok() => {
                        Ok(Arc::clone(decoded.column(i)))
                    }
                    _ => metadata_array(self.metadata_key(f.name()), range, &chunk),
                })
                .collect();
            out.push(batch(schema, columns, n)?);
        }
        Ok(out)
    }

    fn malformed(&self, range: &Range, offset: i64, reason: &str) -> SourceError {
        SourceError::Malformed {
            file: format!(
                "source `{}`: topic {} partition {} offset {offset}",
                self.name, range.topic, range.partition
            ),
            line: None,
            reason: format!("{reason} (set `on_error: skip` to skip and count such records)"),
        }
    }
}

/// Why the partitions could not be listed.
#[derive(Debug)]
enum ListError {
    /// No bootstrap server took a connection ([`client::reachable`]).
    Unreachable(String),
    /// The brokers' or librdkafka's error.
    Kafka(KafkaError),
    /// A topic the source reads that the brokers answer with an error.
    Topic(String),
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => f.write_str(why),
            Self::Kafka(e) => write!(f, "{e}{}", client::kafka_advice(e)),
            Self::Topic(why) => f.write_str(why),
        }
    }
}

/// What a listing of the partitions found.
enum Listed {
    /// The partitions to read, with their watermarks.
    Partitions(Partitions),
    /// A topic named in `topics` that does not exist (said so).
    Missing(String),
    /// A topic the source reads that the brokers answer with an error (said so).
    Unavailable(String),
}

/// Lists the partitions to read (of the topics named, or matching the pattern) with their
/// watermarks.
fn list_partitions(
    consumer: &crate::source::kafka::client::RangeConsumer,
    config: &KafkaConfig,
) -> Result<Listed, KafkaError> {
    let timeout = config.retry.timeout;
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for topic in metadata.topics() {
        if !config.subscribes(topic.name()) {
            continue;
        }
        // A topic the brokers answer with an error (no leader yet, not authorized) is not a
        // topic gone: said, and retried (audit 90a: skipped, one named in `topics` was said
        // not to exist, and a pattern's partitions read so far were taken as gone).
        if let Some(error) = topic.error() {
            return Ok(Listed::Unavailable(format!(
                "the brokers answer topic `{}` with an error: {}",
                topic.name(),
                rdkafka::types::RDKafkaErrorCode::from(error)
            )));
        }
        {
            topics.insert(
                topic.name().to_string(),
                topic.partitions().iter().map(|p| p.id()).collect(),
            );
        }
    }
    if let Some(names) = &config.topics {
        let missing: Vec<String> = names
            .names()
            .into_iter()
            .filter(|n| !topics.contains_key(n))
            .collect();
        if !missing.is_empty() {
            return Ok(Listed::Missing(format!(
                "topic {} does not exist at {}",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                config.bootstrap_servers
            )));
        }
    }
    let mut partitions = Partitions::default();
    for (topic, ids) in topics {
        for p in ids {
            let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
            partitions
                .low
                .entry(topic.clone())
                .or_default()
                .insert(p, low);
            partitions
                .high
                .entry(topic.clone())
                .or_default()
                .insert(p, high);
        }
    }
    Ok(Listed::Partitions(partitions))
}

/// Reads each range's records: assigns every partition at its start, and stops each at its
/// end, at the end of the partition, or when `timeout` passes without a record.
fn read_ranges(
    consumer: &crate::source::kafka::client::RangeConsumer,
    ranges: Vec<Range>,
    timeout: Duration,
) -> Result<Vec<(Range, Vec<Record>)>, ReadError> {
    let mut out: Vec<(Range, Vec<Record>)> = Vec::with_capacity(ranges.len());
    // One topic at a time: an end-of-partition event names the partition, not its topic.
    let mut by_topic: BTreeMap<String, Vec<Range>> = BTreeMap::new();
    for range in ranges {
        by_topic.entry(range.topic.clone()).or_default().push(range);
    }
    for (topic, ranges) in by_topic {
        let mut list = TopicPartitionList::new();
        for r in &ranges {
            list.add_partition_offset(&topic, r.partition, Offset::Offset(r.start))?;
        }
        consumer.assign(&list)?;
        let mut records: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        let mut pending: BTreeMap<i32, &Range> = ranges.iter().map(|r| (r.partition, r)).collect();
        let mut last_progress = Instant::now();
        let result = (|| {
            while !pending.is_empty() {
                if last_progress.elapsed() > timeout {
                    return Err(ReadError::TimedOut(Vec::new()));
                }
                let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let message = match polled {
                    Ok(m) => m,
                    Err(KafkaError::PartitionEOF(p)) => {
                        pending.remove(&p);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if message.topic() != topic {
                    continue;
                }
                let p = message.partition();
                let Some(range) = pending.get(&p) else {
                    continue;
                };
                let offset = message.offset();
                if offset < range.start {
                    continue;
                }
                last_progress = Instant::now();
                if offset >= range.end {
                    pending.remove(&p);
                    continue;
                }
                let timestamp = match message.timestamp() {
                    Timestamp::CreateTime(ms) => Some((ms, 0)),
                    Timestamp::LogAppendTime(ms) => Some((ms, 1)),
                    Timestamp::NotAvailable => None,
                };
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                records.entry(p).or_default().push(Record {
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    timestamp,
                    headers,
                });
                if offset + 1 >= range.end {
                    pending.remove(&p);
                }
            }
            Ok(())
        })();
        let unassigned = consumer.unassign();
        if let Err(e) = result {
            return Err(match e {
                ReadError::TimedOut(_) => ReadError::TimedOut(
                    pending
                        .iter()
                        .map(|(p, r)| {
                            format!(
                                "{topic} partition {p} {}",
                                crate::vocab::offsets(r.start, r.end)
                            )
                        })
                        .collect(),
                ),
                other => other,
            });
        }
        unassigned?;
        for r in ranges {
            let got = records.remove(&r.partition).unwrap_or_default();
            out.push((r, got));
        }
    }
    Ok(out)
}

/// Why a read of ranges failed.
#[derive(Debug)]
enum ReadError {
    /// The client failed.
    Kafka(KafkaError),
    /// No record came for a whole timeout: the ranges still waited for.
    TimedOut(Vec<String>),
}

impl ReadError {
    /// Whether the brokers no longer hold offsets the read asked for (deleted under it by
    /// retention or `DeleteRecords`): librdkafka, told never to reset an offset, says so.
    fn records_gone(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode;
        matches!(
            self,
            Self::Kafka(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange
            ))
        )
    }
}

impl From<KafkaError> for ReadError {
    fn from(e: KafkaError) -> Self {
        Self::Kafka(e)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kafka(e) => write!(f, "{e}"),
            Self::TimedOut(waiting) => write!(
                f,
                "no record came within the timeout (`retry.timeout`) while reading {}",
                waiting.join(", ")
            ),
        }
    }
}

/// The metadata column `name` of `records`, all of partition `range`.
fn metadata_array<R: std::borrow::Borrow<Record>>(
    name: &str,
    range: &Range,
    records: &[R],
) -> Result<ArrayRef, SourceError> {
    let records = records.iter().map(std::borrow::Borrow::borrow);
    Ok(match name {
        "key" | "value" => {
            let mut b = BinaryBuilder::new();
            for r in records {
                let bytes = if name == "key" { &r.key } else { &r.value };
                b.append_option(bytes.as_deref());
            }
            Arc::new(b.finish())
        }
        "topic" => Arc::new(StringArray::from(
            records.map(|_| range.topic.as_str()).collect::<Vec<_>>(),
        )),
        "partition" => Arc::new(Int32Array::from(
            records.map(|_| range.partition).collect::<Vec<_>>(),
        )),
        "offset" => Arc::new(Int64Array::from(
            records.map(|r| r.offset).collect::<Vec<_>>(),
        )),
        "timestamp" => {
            // A time no timestamp holds (a producer's nanoseconds or microseconds taken for
            // milliseconds) fails the batch naming the record, as Spark's
            // KAFKA_MALFORMED_RECORD_TIMESTAMP does (audit 91c: read as the largest value,
            // which a JSON sink then wrote as an error's text).
            let mut micros = Vec::new();
            for r in records {
                micros.push(match r.timestamp {
                    Some((ms, _)) => match chrono::DateTime::from_timestamp_millis(ms) {
                        Some(_) => Some(ms * 1000),
                        None => {
                            return Err(SourceError::Malformed {
                                file: format!(
                                    "topic {} partition {} offset {}",
                                    range.topic, range.partition, r.offset
                                ),
                                line: None,
                                reason: format!(
                                    "the record's timestamp, {ms} milliseconds since 1970, is \
                                     past what a timestamp holds (years -262143 to 262142): \
                                     its producer wrote another unit (nanoseconds, \
                                     microseconds) as milliseconds"
                                ),
                            });
                        }
                    },
                    None => None,
                });
            }
            Arc::new(TimestampMicrosecondArray::from(micros))
        }
        "timestamp_type" => Arc::new(Int32Array::from(
            records
                .map(|r| r.timestamp.map(|(_, t)| t))
                .collect::<Vec<_>>(),
        )),
        "headers" => super::payload::headers_array(records.map(|r| r.headers.as_slice()))
            .map_err(|e| read_error(&e))?,
        other => return Err(read_error(&format!("no Kafka column `{other}`"))),
    })
}

fn read_error(reason: &str) -> SourceError {
    SourceError::Read {
        file: "kafka".into(),
        reason: reason.to_string(),
    }
}

fn batch(
    schema: &SchemaRef,
    columns: Result<Vec<ArrayRef>, SourceError>,
    rows: usize,
) -> Result<RecordBatch, SourceError> {
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns?, &options)
        .map_err(|e| read_error(&e.to_string()))
}

/// Shares `limit` offsets among partitions in proportion to their lag (each partition's
/// `end - start`). A partition whose share would round down to none gets one (Spark's
/// `rateLimit`: "don't completely starve small topicpartitions"; audit 86 #4: a partition of
/// one record beside one far behind was read only once the other caught up, its record late
/// by then); the others get one each too, and the rest of `limit` is shared among them in
/// proportion to their lag past that one, rounding down, then one more each to the largest
/// remainders (ties by topic and partition),
/// never past a partition's lag: the same split for the same offsets, every time. The shares
/// add up to `limit`, or to the number of partitions with records where that is more.
fn share_limit(lag: &[((String, i32), i64)], limit: u64) -> BTreeMap<(String, i32), i64> {
    let total: u128 = lag.iter().map(|(_, l)| *l as u128).sum();
    if total <= u128::from(limit) {
        return lag.iter().cloned().collect();
    }
    let starved = |l: i64| l > 0 && (l as u128) * u128::from(limit) < total;
    let mut shares: BTreeMap<(String, i32), i64> = lag
        .iter()
        .filter(|(_, l)| starved(*l))
        .map(|(key, _)| (key.clone(), 1))
        .collect();
    // The others get one each too (audit 90a #3: as many partitions of a record or two as the
    // limit took it all, and one far behind got none, batch after batch), and what is left
    // is shared in proportion to what each has past that one.
    let rest: Vec<&((String, i32), i64)> = lag.iter().filter(|(_, l)| !starved(*l)).collect();
    let budget = u128::from(limit).saturating_sub((shares.len() + rest.len()) as u128);
    let rest_total: u128 = rest.iter().map(|(_, l)| (*l - 1) as u128).sum();
    let mut remainders = Vec::new();
    let mut given: u128 = 0;
    for (key, l) in &rest {
        let exact = ((*l - 1) as u128) * budget;
        let share = exact.checked_div(rest_total).unwrap_or(0);
        given += share;
        remainders.push((exact - share * rest_total, key.clone(), *l));
        shares.insert(key.clone(), 1 + share as i64);
    }
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, key, most) in remainders {
        if given >= budget {
            break;
        }
        if let Some(s) = shares.get_mut(&key)
            && *s < most
        {
            *s += 1;
            given += 1;
        }
    }
    shares
}

#[async_trait]
impl Source for KafkaSource {
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
        self.frozen = Some(self.partitions().await?.high);
        Ok(())
    }

    async fn plan(
        &mut self,
        _batch: BatchId,
        start: Option<&serde_json::Value>,
        admission: Admission,
    ) -> Result<Option<serde_json::Value>, SourceError> {
        let now = self.partitions().await?;
        let base = match self.parse(start)? {
            Some(base) => base,
            None => self.initial(Some(&now)).await?.clone(),
        };
        // Every partition read so far keeps its offset, that of a topic no longer read (taken
        // out of `topics:`) too; one the brokers no longer have of a topic still read is said
        // below.
        let mut end = base.clone();
        let mut lag = Vec::new();
        let mut shrunk = Vec::new();
        // Partitions that went back (made again, `fail_on_data_loss: false`): this batch's end
        // there is the partition's end now, below its start (an empty range), and batches
        // read on from it, as Spark's source does: the records now below it are not read.
        // (Reading from the first offset instead would read twice what a partition its
        // brokers cut back, or a change of isolation level, put below the offset read.)
        let mut went_back = Vec::new();
        // Under `read_committed` a partition's end is its last stable offset: one below the
        // offset read up to is a transaction still open where the batches so far read
        // uncommitted (the isolation level changed), unless the log's end is below it too.
        let below: Vec<(String, i32)> = now
            .high
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .filter(|(p, high)| {
                        **high
                            < base
                                .get(topic)
                                .and_then(|m| m.get(*p))
                                .copied()
                                .unwrap_or(0)
                    })
                    .map(|(p, _)| (topic.clone(), *p))
            })
            .filter(|_| self.config.read_committed)
            .collect();
        let log_ends = if below.is_empty() {
            BTreeMap::new()
        } else {
            self.log_ends(below).await?
        };
        for (topic, partitions) in &now.high {
            for (p, high) in partitions {
                let s = base.get(topic).and_then(|m| m.get(p)).copied().unwrap_or(0);
                // A partition that ends below what was read (a topic deleted and made again,
                // as Spark finds it: "offset was changed from 70 to 30"): its records below
                // the offset read up to are not the ones read, and would never be.
                if *high < s
                    && log_ends
                        .get(&(topic.clone(), *p))
                        .is_none_or(|log_end| *log_end < s)
                {
                    shrunk.push(format!(
                        "{topic} partition {p} ends at offset {high}, below offset {s}, which \
                         the batches so far have read up to"
                    ));
                    went_back.push((topic.clone(), *p, *high));
                    continue;
                }
                let mut e = *high;
                if let Some(frozen) = &self.frozen {
                    // Never past the end now (a partition made again since the freeze).
                    e = frozen
                        .get(topic)
                        .and_then(|m| m.get(p))
                        .copied()
                        .unwrap_or(s)
                        .min(*high);
                }
                let e = e.max(s);
                end.entry(topic.clone()).or_default().insert(*p, s);
                if e > s {
                    lag.push(((topic.clone(), *p), e - s));
                }
            }
        }
        if !shrunk.is_empty() {
            let what = format!(
                "{}: the topic was deleted and made again (or emptied and written anew), so the \
                 records now below those offsets were never read, and reading on from them \
                 would skip them",
                shrunk.join("; ")
            );
            super::input_went_back(
                &what,
                "read on from each such partition's end now (as Spark's source does; the \
                 records below it are not read, and are counted as lost rows)",
                self.config.fail_on_data_loss,
                &mut self.said_shrunk,
                &format!("source `{}`", self.name),
            )
            .map_err(|e| self.connector_error(e))?;
        }
        let mut back = !went_back.is_empty();
        for (topic, p, high) in went_back {
            end.entry(topic).or_default().insert(p, high);
        }
        // Partitions read so far that the brokers no longer have, of a topic the source still
        // reads (deleted while `topic_pattern` matches it; made again with fewer partitions):
        // what they held past the offset read was never read (audit 90a: a deleted topic's
        // unread records were dropped unsaid, its offset carried on for good). As Spark's
        // source ("Some data may have been missed"): refused, or said and left out of the
        // offsets from this batch on, so that a topic made again is read from its start.
        let missing: Vec<(String, i32, i64)> = base
            .iter()
            .filter(|(topic, _)| self.config.subscribes(topic))
            .flat_map(|(topic, partitions)| {
                let now = now.high.get(topic);
                partitions
                    .iter()
                    .filter(move |(p, _)| now.is_none_or(|m| !m.contains_key(*p)))
                    .map(move |(p, s)| (topic.clone(), *p, *s))
            })
            .collect();
        // Asked of the brokers by name: an all-topics answer leaves out a topic this client
        // may not describe, or one a broker does not know yet, which is no topic deleted
        // (the review of audit 90a: its offsets dropped, it was read again from offset 0 when
        // it came back).
        let mut gone = Vec::new();
        let mut asked: BTreeMap<String, Option<BTreeSet<i32>>> = BTreeMap::new();
        for (topic, p, s) in missing {
            if !asked.contains_key(&topic) {
                let partitions = self.partitions_by_name(&topic).await?;
                asked.insert(topic.clone(), partitions);
            }
            if asked[&topic]
                .as_ref()
                .is_none_or(|there| !there.contains(&p))
            {
                gone.push((topic, p, s));
            }
        }
        if !gone.is_empty() {
            let what = format!(
                "{}: the brokers no longer have {} (the topic deleted, or made again with \
                 fewer partitions), so any records {} held past the offset read were never \
                 read",
                gone.iter()
                    .map(|(topic, p, s)| format!("{topic} partition {p}, read up to offset {s}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                if gone.len() == 1 { "it" } else { "them" },
                if gone.len() == 1 { "it" } else { "they" },
            );
            let mut said = false;
            super::input_went_back(
                &what,
                "leave them out (as Spark's source does; a topic of that name made again is \
                 then read from its start)",
                self.config.fail_on_data_loss,
                &mut said,
                &format!("source `{}`", self.name),
            )
            .map_err(|e| self.connector_error(e))?;
            for (topic, p, _) in gone {
                if let Some(partitions) = end.get_mut(&topic) {
                    partitions.remove(&p);
                    if partitions.is_empty() {
                        end.remove(&topic);
                    }
                }
            }
            // Planned as a batch even with nothing to read, so that its end, without them,
            // is what the next batch starts from.
            back = true;
        }
        if lag.is_empty() && !back {
            return Ok(None);
        }
        let shares = match (admission, self.config.max_records_per_batch) {
            (Admission::SourceLimits, Some(limit)) => share_limit(&lag, limit),
            _ => lag.iter().cloned().collect(),
        };
        let mut any = back;
        for ((topic, p), share) in shares {
            if share > 0 {
                any = true;
                if let Some(o) = end.get_mut(&topic).and_then(|m| m.get_mut(&p)) {
                    *o += share;
                }
            }
        }
        if !any {
            return Ok(None);
        }
        serde_json::to_value(&end)
            .map(Some)
            .map_err(|e| self.connector_error(e))
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
                    super::column_indices(&self.name, "the Kafka source", &self.schema, columns)?;
                Arc::new(
                    self.schema
                        .project(&indices)
                        .map_err(|e| read_error(&e.to_string()))?,
                )
            }
            None => Arc::clone(&self.schema),
        };
        let Some(end) = self.parse(Some(end))? else {
            return Ok(BatchInput::empty(schema));
        };
        let mut ranges = self.ranges(start, &end).await?;
        let mut lost = self.check_held(&mut ranges).await?;
        // Partitions this batch found gone back (made again, `fail_on_data_loss: false`): the
        // records below their end then are never read, and are counted as lost.
        if let Some(base) = self.parse(start)? {
            let went_back: Vec<(&String, &i32, i64)> = end
                .iter()
                .flat_map(|(topic, partitions)| {
                    let base = &base;
                    partitions.iter().filter_map(move |(p, e)| {
                        let s = base.get(topic).and_then(|m| m.get(p)).copied()?;
                        (s > *e).then_some((topic, p, *e))
                    })
                })
                .collect();
            if !went_back.is_empty() {
                let now = self.partitions().await?;
                for (topic, p, e) in went_back {
                    let low = now
                        .low
                        .get(topic)
                        .and_then(|m| m.get(p))
                        .copied()
                        .unwrap_or(e);
                    lost += u64::try_from(e - low).unwrap_or(0);
                }
            }
        }
        let mut skipped = 0;
        ranges.retain(|r| r.start < r.end);
        // Records deleted while they were read (retention, `DeleteRecords`) are said as any
        // records gone before the read are, and skipped and counted where the source allows
        // (audit 90a #4: librdkafka's "AutoOffsetReset", `fail_on_data_loss: false` too).
        let mut looked_again = 0;
        let read = loop {
            match self.fetch(ranges.clone()).await {
                Ok(read) => break read,
                Err(e) if e.error.records_gone() && looked_again < 3 => {
                    looked_again += 1;
                    lost += self.check_held(&mut ranges).await?;
                    ranges.retain(|r| r.start < r.end);
                }
                Err(e) => {
                    return Err(self.connector_error(format!("reading the batch's records: {e}")));
                }
            }
        };
        let mut partitions = Vec::with_capacity(read.len());
        // Each partition of the table a topic's partition, named so that an error's value is
        // found by its record (walk 101).
        let mut part_names = Vec::with_capacity(read.len());
        let mut rows = 0u64;
        let mut unknown = (0u64, BTreeSet::new());
        for (range, records) in &read {
            let batches = self.rows(range, records, &schema, &mut skipped, &mut unknown)?;
            rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            partitions.push(batches);
            part_names.push(format!(
                "topic {} partition {}",
                range.topic, range.partition
            ));
        }
        if partitions.is_empty() {
            // An empty range (a batch the watermark alone runs): one empty partition, as a
            // table needs at least one.
            partitions.push(Vec::new());
        }
        Ok(BatchInput {
            schema,
            partitions,
            rows,
            skipped,
            lost,
            unknown_rows: unknown.0,
            unknown_fields: unknown.1,
            files: 0,
            part_names,
        })
    }

    async fn commit(&mut self, _batch: BatchId, _oldest_kept: BatchId) -> Result<(), SourceError> {
        Ok(())
    }

    async fn report_progress(&mut self, batch: BatchId, end: &serde_json::Value) {
        let Some(group) = self.config.group_id.clone() else {
            return;
        };
        // Progress for lag tools only: a failure is logged, never fatal.
        let end = match self.parse(Some(end)) {
            Ok(Some(end)) => end,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("source `{}`: committing to group `{group}`: {e}", self.name);
                return;
            }
        };
        let config = match self.config.consumer_config(Some(&group)) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!("source `{}`: committing to group `{group}`: {e}", self.name);
                return;
            }
        };
        let name = self.name.clone();
        let result = blocking(move || -> Result<(), KafkaError> {
            let consumer = crate::source::kafka::client::range_consumer(&config)?;
            let mut list = TopicPartitionList::new();
            for (topic, partitions) in &end {
                for (p, o) in partitions {
                    list.add_partition_offset(topic, *p, Offset::Offset(*o))?;
                }
            }
            consumer.commit(&list, CommitMode::Sync)
        })
        .await;
        if let Err(e) = result {
            // Walk 101: a group that consumers use (a Kafka Connect connector's) refuses a
            // commit from outside its members, in the broker's words alone.
            let text = e.to_string();
            let members = [
                "UnknownMemberId",
                "IllegalGeneration",
                "RebalanceInProgress",
            ]
            .iter()
            .any(|code| text.contains(code));
            tracing::warn!(
                "source `{name}`: committing batch {batch}'s offsets to group `{group}`: {e}{}",
                match members {
                    true => {
                        ". The group has live members (consumers that joined it), and the \
                         broker takes commits only from them; Sluice commits as no member. Give \
                         the source a group of its own, which no consumer joins (`group_id:`); \
                         its reading does not depend on the group"
                    }
                    false => "",
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_shared_in_proportion_to_lag_and_adds_up() {
        let lag = vec![
            (("a".to_string(), 0), 100),
            (("a".to_string(), 1), 50),
            (("b".to_string(), 0), 1),
        ];
        let shares = share_limit(&lag, 10);
        assert_eq!(shares.values().sum::<i64>(), 10);
        assert_eq!(shares[&("a".to_string(), 0)], 6);
        assert_eq!(shares[&("a".to_string(), 1)], 3);
        // Audit 86 #4: never starved (Spark's rule).
        assert_eq!(shares[&("b".to_string(), 0)], 1);
        // More partitions with records than the limit: one each.
        let many: Vec<_> = (0..5).map(|p| (("c".to_string(), p), 1)).collect();
        assert!(share_limit(&many, 3).values().all(|s| *s == 1));
        // Audit 90a #3: partitions of a record each as many as the limit took it all, and
        // the one far behind got none, batch after batch: it gets one too.
        let trickle = vec![
            (("e".to_string(), 0), 100),
            (("e".to_string(), 1), 1),
            (("e".to_string(), 2), 1),
        ];
        assert!(share_limit(&trickle, 2).values().all(|s| *s == 1));
        // The review: a partition raised to one took a remainder's one more too, past its
        // lag (a range past the partition's end), and the shares passed the limit.
        for (lags, limit) in [
            (vec![1, 2, 2], 4),
            (vec![1, 2, 5], 7),
            (vec![1, 1, 100], 3),
            (vec![1, 1, 100], 2),
            (vec![3, 1, 1, 40, 40], 4),
            (vec![7, 9, 11, 1], 5),
        ] {
            let lag: Vec<_> = lags
                .iter()
                .enumerate()
                .map(|(p, l)| (("d".to_string(), p as i32), *l))
                .collect();
            let shares = share_limit(&lag, limit);
            for ((key, l), share) in lag.iter().zip(shares.values()) {
                assert!(*share >= 1 && share <= l, "{key:?}: {share} of {l}");
            }
            assert_eq!(
                shares.values().sum::<i64>(),
                limit.max(lag.len() as u64) as i64
            );
        }
        assert_eq!(share_limit(&lag, 1000), lag.iter().cloned().collect());
    }

    fn config(text: &str) -> Result<Arc<dyn SourceConnector>, ConfigError> {
        let settings: serde_yaml::Mapping = serde_yaml::from_str(text).expect("yaml");
        configure(&settings)
    }

    /// Walk 68 (4): `{topic: earliest}` got serde's "data did not match any variant of
    /// untagged enum StartingOffsets"; the forms are named, and the per-partition form reads.
    #[test]
    fn starting_offsets_that_do_not_read_name_the_forms() {
        for (written, said) in [
            (
                "{a: earliest}",
                "topic `a`: `earliest` for a whole topic is not read here",
            ),
            ("{a: {0: first}}", "partition 0: the offset is an integer"),
            ("{a: {x: 1}}", "`x` is no partition number"),
            (
                "[1, 2]",
                "`starting_offsets` is `earliest`, `latest`, or offsets per topic",
            ),
        ] {
            let Err(err) = config(&format!(
                "bootstrap_servers: x\ntopics: a\nstarting_offsets: {written}"
            )) else {
                panic!("{written} read");
            };
            let err = err.to_string();
            assert!(
                err.contains(said) && !err.contains("untagged"),
                "{written}: {err}"
            );
        }
        assert!(config("bootstrap_servers: x\ntopics: a\nstarting_offsets: {a: {0: -2}}").is_ok());
        // Spark's own JSON, partitions as text.
        assert!(
            config("bootstrap_servers: x\ntopics: a\nstarting_offsets: {\"a\": {\"0\": 42}}")
                .is_ok()
        );
    }

    #[test]
    fn settings_that_do_not_fit_are_refused_by_key() {
        let cases = [
            ("bootstrap_servers: x", "topics"),
            (
                "bootstrap_servers: x\ntopics: [a]\ntopic_pattern: a.*",
                "topic_pattern",
            ),
            (
                "bootstrap_servers: x\ntopics: a\nstarting_offsets: newest",
                "starting_offsets",
            ),
            ("bootstrap_servers: x\ntopics: a\nformat: json", "schema"),
            (
                "bootstrap_servers: x\ntopics: a\nschema: {v: int}",
                "schema",
            ),
            (
                "bootstrap_servers: x\ntopics: a\nformat: json\nschema: {offset: int}\nmetadata_columns: [offset]",
                "metadata_columns.0",
            ),
            (
                "bootstrap_servers: x\ntopics: a\nproperties: {isolation.level: read_uncommitted}",
                "properties.isolation.level",
            ),
            (
                "bootstrap_servers: x\ntopics: a\nmax_records_per_batch: 0",
                "max_records_per_batch",
            ),
            (
                "bootstrap_servers: x\ntopics: a\nstarting_timestamp: yesterday",
                "starting_timestamp",
            ),
            // Audit 91c: an empty pattern matched no topic, and the run read nothing for good.
            ("bootstrap_servers: x\ntopic_pattern: ''", "topic_pattern"),
            // Walk 21: an explicit `earliest` beside a timestamp was taken, the timestamp
            // winning.
            (
                "bootstrap_servers: x\ntopics: a\nstarting_offsets: earliest\nstarting_timestamp: 2026-01-01T00:00:00Z",
                "starting_timestamp",
            ),
        ];
        for (text, key) in cases {
            let err = config(text).expect_err(text);
            assert_eq!(err.key, key, "{text}: {err}");
        }
        assert!(
            config("bootstrap_servers: x\ntopics: [a, b]\nstarting_offsets: {a: {0: 5}}").is_ok()
        );
        // Audit 91c: Kafka keeps milliseconds; a time between two starts at the next.
        let at = |text: &str| {
            read_config(
                &serde_yaml::from_str(&format!(
                    "bootstrap_servers: x\ntopics: a\nstarting_timestamp: {text}"
                ))
                .expect("yaml"),
            )
            .expect("config")
            .starting_ms
        };
        assert_eq!(at("1970-01-01T00:00:40.000Z"), Some(40_000));
        assert_eq!(at("1970-01-01T00:00:40.0005Z"), Some(40_001));
        assert_eq!(at("1970-01-01T00:00:40.001Z"), Some(40_001));
        // A metadata column under another name, beside a decoded column of its own name.
        let renamed = read_config(
            &serde_yaml::from_str(
                "bootstrap_servers: x\ntopics: a\nformat: json\nschema: {offset: int}\nmetadata_columns: [offset AS kafka_offset, timestamp as ts]",
            )
            .expect("yaml"),
        )
        .expect("renamed");
        let names: Vec<String> = renamed
            .schema(Some(&Arc::new(Schema::new(vec![Field::new(
                "offset",
                DataType::Int32,
                true,
            )]))))
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["offset", "kafka_offset", "ts"]);
        for (text, says) in [
            ("[offset AS]", "is not a metadata column"),
            ("[offset AS o, partition AS o]", "`o` is named twice"),
            ("[offsets AS o]", "offsets"),
        ] {
            let err = config(&format!(
                "bootstrap_servers: x\ntopics: a\nformat: json\nschema: {{v: int}}\nmetadata_columns: {text}"
            ))
            .expect_err(text);
            assert!(err.key.starts_with("metadata_columns."), "{text}: {err}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn offsets_are_described_per_partition() {
        let offsets: Offsets =
            serde_json::from_str(r#"{"t": {"0": 23, "1": 5}}"#).expect("offsets");
        assert_eq!(describe(&offsets), "t: partition 0 at 23, partition 1 at 5");
    }
}
