//! The Kafka sink (feature `kafka`): each batch's rows as records of one topic, written in one
//! Kafka transaction with a record that names the batch, so a batch is in the topic exactly
//! once for a `read_committed` consumer, whatever crashes and whichever run is late.
//!
//! ```text
//!   open:     producer with transactional.id T ──► init_transactions (fences every older
//!             producer of T and settles its open transaction: committed or aborted)
//!             progress topic, read to its end (read_committed) ──► the last batch committed
//!   batch N:  N <= last ──► skip (the transaction committed before a crash; `commits/N` did not)
//!             begin ──► rows ──► flush ──► progress record {pipeline, batch N, epoch, offsets}
//!             fence (no newer epoch in the checkpoint, else abort) ──► commit
//! ```
//!
//! `T` is stable for the pipeline (`sluice-<pipeline id>`, or `transactional_id`), so a newer
//! run's producer fences a late one's at the brokers: the late run's commit fails with
//! `ProducerFenced` and its transaction is aborted. A late run that opens its producer after
//! the newer one fences it in turn; the newer run's next step fails `ProducerFenced`, finds
//! itself still the newest in the checkpoint, opens a new producer (fencing the late one again)
//! and writes the batch again; the late run finds the newer epoch at its fence check and stops.
//!
//! The progress topic (`_sluice_progress` by default; one partition, compacted, created when
//! missing) holds one record per committed batch, keyed by the pipeline's id, so compaction
//! keeps the newest per pipeline. Rows are keyed by the `key` expression (partitioned by it as
//! Java clients partition: murmur2), with the JSON of the row as value unless `value` names an
//! expression; `headers` adds a header per expression. Update mode needs `key`: each record is
//! the newest value of its key, as a compacted topic keeps it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{
    BatchOutput, HeldBatch, HeldSummary, Sink, SinkCommit, SinkConnector, SinkContext, SinkError,
    SinkKind,
};
use crate::checkpoint::{BatchId, Epoch, Fence};
use crate::retry::RetrySettings;
use crate::source::kafka::client::{blocking, check_properties, client_config};
use crate::source::{ConfigError, parse_settings};
use crate::storage::failpoint;

/// The Kafka sink in the registry.
pub(super) const KIND: SinkKind = SinkKind {
    name: "kafka",
    configure,
};

/// Client properties Sluice sets itself for transactional writing.
const RESERVED: &[&str] = &[
    "transactional.id",
    "enable.idempotence",
    "isolation.level",
    "group.id",
    "enable.auto.commit",
    "enable.partition.eof",
];

fn default_progress_topic() -> String {
    "_sluice_progress".into()
}

/// The settings of a Kafka sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// The brokers to bootstrap from, `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// The topic written to.
    pub topic: String,
    /// Makes the topic with this many partitions where it is missing (the brokers' default
    /// replication); without it, a missing topic is an error.
    #[serde(default)]
    pub partitions: Option<i32>,
    /// A SQL expression over the output's columns giving each record's key (text or binary;
    /// other types as their text); no key where absent.
    #[serde(default)]
    pub key: Option<String>,
    /// A SQL expression giving each record's value; the row as a JSON object where absent.
    #[serde(default)]
    pub value: Option<String>,
    /// The default value's null columns written as `null` (Flink's JSON format), not left
    /// out (Spark's `to_json`, the default).
    #[serde(default)]
    pub json_nulls: bool,
    /// Headers: name to SQL expression (text or binary).
    #[serde(default)]
    pub headers: indexmap::IndexMap<String, String>,
    /// A SQL expression over the output's columns giving each record's timestamp (a
    /// `timestamp`, kept to the millisecond, as Kafka's `CreateTime`), as Flink's Kafka sink
    /// writes its `timestamp` metadata column and Kafka Streams keeps its input's; where
    /// absent, or null for a row, the producer's clock when the batch is written.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// The topic of the records that name each committed batch (made when missing).
    #[serde(default = "default_progress_topic")]
    pub progress_topic: String,
    /// The producer's transactional id; `sluice-<pipeline id>` where absent. Two pipelines
    /// never share one.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// librdkafka client properties, passed through (`compression.type`, `linger.ms`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Retries of each request to the brokers and of each batch's transaction.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn configure(settings: &serde_yaml::Mapping) -> Result<Arc<dyn SinkConnector>, ConfigError> {
    let config: KafkaSinkConfig = parse_settings(settings)?;
    if config.topic.is_empty() {
        return Err(ConfigError::at("topic", "`topic` is empty"));
    }
    if config.partitions.is_some_and(|p| p < 1) {
        return Err(ConfigError::at(
            "partitions",
            "`partitions` must be at least 1",
        ));
    }
    if config.topic == config.progress_topic {
        return Err(ConfigError::at(
            "progress_topic",
            "the progress topic must not be the topic the rows go to",
        ));
    }
    config.retry.check()?;
    check_properties(&config.properties, RESERVED)?;
    // Walk 101: `acks: 1` failed at the first batch in librdkafka's words, naming
    // `enable.idempotence`, which the user never set.
    if let Some((key, acks)) = ["acks", "request.required.acks"]
        .iter()
        .find_map(|key| Some((*key, config.properties.get(*key)?)))
        && !matches!(acks.trim().to_ascii_lowercase().as_str(), "all" | "-1")
    {
        return Err(ConfigError::at(
            &format!("properties.{key}"),
            format!(
                "`acks: {acks}` cannot be: the sink writes each batch in a Kafka transaction, \
                 which needs every in-sync replica to acknowledge each record (`acks: all`, \
                 the default of a transactional producer); leave it out"
            ),
        ));
    }
    // Expressions are checked against the query's columns when the first batch comes.
    Ok(Arc::new(config))
}

#[async_trait]
impl SinkConnector for KafkaSinkConfig {
    fn start_over(&self, _rewrites: bool) -> String {
        " with a new `sink.topic` (the batches in a topic belong to one checkpoint)".to_string()
    }
    fn kind(&self) -> &'static str {
        KIND.name
    }

    fn location(&self) -> Option<String> {
        Some(format!("kafka://{}/{}", self.bootstrap_servers, self.topic))
    }

    /// A topic's consumers read its records as they come: records of other columns would
    /// reach them mid-stream (walks 52 and 53).
    fn holds_output(&self) -> bool {
        true
    }

    fn lost_records(&self) -> (String, &'static str) {
        (
            "its records of them are gone, so the topic was deleted or emptied".into(),
            "a new topic (`sink.topic`)",
        )
    }

    /// Refuses, before a batch is planned, a topic that holds batches another checkpoint of
    /// this pipeline (its `name`) appended and none of this one's: a pipeline started over on
    /// a new checkpoint would append every batch again after them, and a consumer would read
    /// each row twice (walk 94: said only in a warning). As the files, Delta and PostgreSQL
    /// sinks refuse another checkpoint's append output; a pipeline of another name writing
    /// the same topic (many producers into one topic) is only said, at the first batch.
    /// Not in update or complete mode, where records replace their key's (or the table's);
    /// only where the topic is found to hold the other's newest records still (not deleted
    /// since, nor unreadable now: the first batch says what it finds then).
    async fn check_new_checkpoint(&self, ctx: &SinkContext<'_>) -> Result<(), SinkError> {
        if ctx.update || ctx.replace || super::pipeline_name(ctx.label).is_none() {
            return Ok(());
        }
        let sink = self.sink(ctx)?;
        // One look, not retried: brokers that do not answer now are said by the first batch,
        // with its retries (not twice over).
        if !sink.look_for_progress_topic().await.unwrap_or(false) {
            return Ok(());
        }
        let (None, Some(other)) = sink.read_progress_and_other().await? else {
            return Ok(());
        };
        if !same_name(&other.label, ctx.label)
            || !matches!(sink.topic_holding(&other).await, Holding::Holds)
        {
            return Ok(());
        }
        Err(SinkError::Config {
            kind: KIND.name,
            reason: format!(
                "topic `{topic}` holds the batches (up to {batch}) of another checkpoint of this \
                 pipeline ({label}, pipeline id {owner}; this checkpoint's is {ours}), and none \
                 of this one's: appending would write every batch again after their records, \
                 and a consumer would read each row twice. If that checkpoint is the one meant \
                 to write this topic, run it (`--checkpoint <its folder>`; `sluice inspect \
                 <checkpoint>` shows a checkpoint's id); otherwise give this one its own topic \
                 (`sink.topic`), or, to write every batch into this topic again on purpose, a \
                 new `progress_topic:` (the one given records the other's batches)",
                topic = self.topic,
                batch = other.batch,
                label = other.label,
                owner = other.pipeline,
                ours = ctx.pipeline,
            ),
        })
    }

    fn open(&self, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(self.sink(ctx)?))
    }
}

impl KafkaSinkConfig {
    /// The sink `open` gives, as its own type.
    fn sink(&self, ctx: &SinkContext<'_>) -> Result<KafkaSink, SinkError> {
        if ctx.update && self.key.is_none() {
            return Err(SinkError::Config {
                kind: KIND.name,
                reason: "update mode writes each changed row as the newest record of its key: \
                         set `key:` (an expression over the query's columns)"
                    .into(),
            });
        }
        let suffix = ctx.part.map(|p| format!("-{p}")).unwrap_or_default();
        let transactional_id = match &self.transactional_id {
            Some(id) => format!("{id}{suffix}"),
            None => format!("sluice-{}{suffix}", ctx.pipeline),
        };
        let progress_key = match ctx.part {
            Some(part) => format!("{}/{part}", ctx.pipeline),
            None => ctx.pipeline.to_string(),
        };
        Ok(KafkaSink {
            config: Arc::new(self.clone()),
            pipeline: ctx.pipeline,
            transactional_id,
            progress_key,
            update: ctx.update,
            complete: ctx.replace,
            label: ctx.label.to_string(),
            live: tokio::sync::Mutex::new(None),
            transaction_began: std::sync::Mutex::new(None),
            made_topic: std::sync::atomic::AtomicBool::new(false),
            kept_from: std::sync::Mutex::new(BatchId(0)),
        })
    }
}

/// Whether a topic holds the records a progress record's newest batch that wrote any wrote.
enum Holding {
    /// Every partition it wrote reaches past them.
    Holds,
    /// That batch, and each partition that ends below them (deleted and made again since),
    /// with its end now and the end the batch wrote up to.
    Short(BatchId, Vec<(i32, i64, i64)>),
    /// Not known: no batch of it wrote records, or the brokers did not answer now.
    Unknown,
}

/// The record that names the newest committed batch, in the progress topic, with where the
/// batches the checkpoint still keeps put their rows (so they can be read back).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// The pipeline whose batch this is.
    pub pipeline: uuid::Uuid,
    /// The newest batch committed.
    pub batch: BatchId,
    /// The epoch of the run that wrote it.
    pub epoch: Epoch,
    /// The topic written.
    pub topic: String,
    /// The batches the checkpoint keeps (the newest among them), by batch id.
    pub batches: BTreeMap<u64, Written>,
    /// The pipeline's name and checkpoint as a person tells them apart, by which another
    /// pipeline writing the topic is named: kept in the record's `sluice-label` header, not
    /// its JSON, which Sluice before 2026-12 reads with no field unknown (empty there).
    #[serde(skip)]
    pub label: String,
}

/// The header of a progress record that holds its pipeline's label ([`Progress::label`]).
const LABEL_HEADER: &str = "sluice-label";

/// In complete mode, the header of each record a batch writes: `<pipeline id>/<batch>`, so
/// that a reader takes the newest batch's records as the table, and the next batch finds the
/// keys this one wrote among other producers' records.
const BATCH_HEADER: &str = "sluice-batch";

/// What one batch wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Written {
    /// The epoch of the run that wrote it.
    pub epoch: Epoch,
    /// Rows written.
    pub rows: u64,
    /// The first and last offset its rows took, per partition.
    pub offsets: BTreeMap<i32, (i64, i64)>,
}

impl Progress {
    /// Rows the newest batch wrote.
    fn rows(&self) -> u64 {
        self.batches.get(&self.batch.0).map_or(0, |w| w.rows)
    }
}

/// A Kafka sink.
pub struct KafkaSink {
    config: Arc<KafkaSinkConfig>,
    pipeline: uuid::Uuid,
    transactional_id: String,
    progress_key: String,
    /// Update mode: each row is written as the newest record of its key.
    update: bool,
    /// Complete mode: each batch writes the whole result table, its records marked with the
    /// batch ([`BATCH_HEADER`]), and, with a `key`, a tombstone for each key of the previous
    /// batch's table that this one lacks.
    complete: bool,
    /// How a person tells this pipeline from another (its name and checkpoint), kept in its
    /// progress records.
    label: String,
    /// The producer and what the progress topic says, once opened.
    live: tokio::sync::Mutex<Option<Live>>,
    /// When the newest batch's transaction began, for the error of one the broker aborted at
    /// its timeout.
    transaction_began: std::sync::Mutex<Option<std::time::Instant>>,
    /// Whether this run made the output topic (`partitions:`, where it was missing).
    made_topic: std::sync::atomic::AtomicBool,
    /// The oldest batch the checkpoint keeps as the pipeline says now ([`Sink::keep_from`]):
    /// progress records leave older ones out, whatever the last record kept (audit 89a: a
    /// lowered `retain_batches` never shrank a record too large to write).
    kept_from: std::sync::Mutex<BatchId>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.config.topic)
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

type TxProducer = ThreadedProducer<Deliveries>;

/// An open sink: its producer, and the last batch the progress topic holds.
struct Live {
    producer: Arc<TxProducer>,
    last: Option<Progress>,
    /// The oldest batch the checkpoint keeps (the purge's), whose offsets progress records
    /// carry.
    oldest_kept: BatchId,
    /// The row encoders, made for the first batch's schema.
    encoders: Option<Arc<Encoders>>,
}

/// Why writing a batch failed.
#[derive(Debug)]
enum WriteError {
    /// A newer producer with the same transactional id exists.
    Fenced(KafkaError),
    /// The transaction failed and was aborted (or needs to be): worth writing again.
    Abortable(KafkaError),
    /// Anything else.
    Other(String),
    /// A record no attempt can write (larger than the producer takes): not tried again.
    Refused(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fenced(e) => write!(f, "the producer was fenced by a newer one: {e}"),
            Self::Abortable(e) => write!(f, "{e}"),
            Self::Other(e) | Self::Refused(e) => f.write_str(e),
        }
    }
}

fn classify(e: KafkaError) -> WriteError {
    match e.rdkafka_error_code() {
        // The local `_FENCED` too, which librdkafka raises as fatal: a transaction the broker
        // aborted at its timeout looks so as well (audit 89a: said "fenced by a newer
        // instance", the timeout unnamed).
        Some(
            RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced,
        ) => WriteError::Fenced(e),
        _ => match &e {
            KafkaError::Transaction(t) if t.is_fatal() => WriteError::Other(e.to_string()),
            _ => WriteError::Abortable(e),
        },
    }
}

impl KafkaSink {
    /// The sink as crash points and messages name it.
    fn location(&self) -> String {
        format!(
            "kafka://{}/{}",
            self.config.bootstrap_servers, self.config.topic
        )
    }

    fn error(&self, error: impl std::fmt::Display) -> SinkError {
        SinkError::Connector {
            kind: KIND.name,
            error: format!("topic `{}`: {error}", self.config.topic).into(),
        }
    }

    fn producer_config(&self) -> Result<rdkafka::ClientConfig, SinkError> {
        let mut config = client_config(
            &self.config.bootstrap_servers,
            &self.config.properties,
            RESERVED,
        )
        .map_err(|e| self.error(e))?;
        config
            .set("transactional.id", &self.transactional_id)
            .set("enable.idempotence", "true")
            .set(
                "transaction.timeout.ms",
                self.transaction_timeout().as_millis().to_string(),
            )
            // librdkafka refuses a socket timeout past the transaction's by more than 100 ms.
            .set(
                "socket.timeout.ms",
                self.config
                    .retry
                    .timeout
                    .min(self.transaction_timeout() + Duration::from_millis(100))
                    .as_millis()
                    .max(10)
                    .to_string(),
            );
        if !self.config.properties.contains_key("partitioner") {
            config.set("partitioner", "murmur2_random");
        }
        Ok(config)
    }

    /// How long a batch's transaction may stay open before the broker aborts it: the sink's
    /// `properties` `transaction.timeout.ms` where set (a batch whose writes take longer needs
    /// it raised, up to the broker's `transaction.max.timeout.ms`), else the request timeout
    /// (`retry.timeout`), at least a second.
    fn transaction_timeout(&self) -> Duration {
        self.config
            .properties
            .get("transaction.timeout.ms")
            .and_then(|ms| crate::secret::expand_env(ms).ok())
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map_or(self.config.retry.timeout, Duration::from_millis)
            .max(Duration::from_secs(1))
    }

    /// Makes the progress topic where it is missing, and checks the output topic exists.
    async fn ensure_topics(&self) -> Result<(), Step> {
        crate::source::kafka::client::reachable(
            &self.config.bootstrap_servers,
            self.config.retry.timeout,
            crate::source::kafka::client::plaintext(&self.config.properties),
        )
        .await
        .map_err(|why| Step {
            text: format!("at {}: {why}", self.config.bootstrap_servers),
            again: true,
        })?;
        let config = client_config(
            &self.config.bootstrap_servers,
            &self.config.properties,
            RESERVED,
        )
        .map_err(Step::last)?;
        let admin: AdminClient<DefaultClientContext> = config.create().map_err(Step::last)?;
        let timeout = self.config.retry.timeout;
        // The request too (librdkafka waits a minute by default for a broker that is not there).
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        let brokers = &self.config.bootstrap_servers;
        let at = |doing: &str, e: KafkaError| {
            let code = match &e {
                KafkaError::AdminOp(code) => Some(*code),
                e => e.rdkafka_error_code(),
            };
            let silent = matches!(
                code,
                Some(
                    RDKafkaErrorCode::OperationTimedOut
                        | RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::BrokerTransportFailure
                )
            );
            let text = format!(
                "{doing} at {brokers}: {e}{}{}",
                crate::source::kafka::client::kafka_advice(&e),
                if silent {
                    // A listener of another protocol (PLAINTEXT where SASL is set) closes the
                    // connection without a word.
                    let protocol = self
                        .config
                        .properties
                        .get("security.protocol")
                        .map(|p| {
                            format!(
                                "; and does its listener there take `security.protocol: {p}`? \
                                 (one of another protocol closes the connection without a word)"
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        " (no broker answered within {}: is Kafka running there, and reachable \
                         from here{protocol}?)",
                        humantime::format_duration(timeout)
                    )
                } else {
                    String::new()
                }
            );
            Step {
                text,
                again: silent,
            }
        };
        let progress = NewTopic::new(&self.config.progress_topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact");
        let mut topics = vec![progress];
        if let Some(partitions) = self.config.partitions {
            let topic = NewTopic::new(&self.config.topic, partitions, TopicReplication::Fixed(-1));
            // Update mode writes each key's newest record, which a compacted topic keeps
            // (walk 94: it was made with the broker's default, `delete`). Not complete mode,
            // whose null group keys make records a compacted topic refuses (the review).
            topics.push(if self.update && self.config.key.is_some() {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            });
        }
        let results = admin
            .create_topics(&topics, &options)
            .await
            .map_err(|e| at("making the topics", e))?;
        for result in results {
            match result {
                Ok(name) if name == self.config.topic => self
                    .made_topic
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Step::last(format!("making the topic `{name}`: {code}")));
                }
            }
        }
        let topic = self.config.topic.clone();
        let exists =
            blocking(move || -> Result<bool, KafkaError> {
                // A topic made a moment ago (by another client, or just above) may not be in the
                // broker's metadata yet: Kafka makes topics asynchronously. Look again for a while.
                let patience = std::time::Instant::now() + timeout.min(Duration::from_secs(5));
                loop {
                    let metadata = admin.inner().fetch_metadata(Some(&topic), timeout)?;
                    if metadata.topics().iter().any(|t| {
                        t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                    }) {
                        return Ok(true);
                    }
                    if std::time::Instant::now() >= patience {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .await
            .map_err(|e| at("looking up the topic", e))?;
        if !exists {
            return Err(Step::last(format!(
                "the topic does not exist at {}; make it first, or set `partitions:` for the \
                 sink to make it",
                self.config.bootstrap_servers
            )));
        }
        Ok(())
    }

    /// Makes the topics and opens the producer where `live` is not open yet.
    async fn ensure_open(&self, live: &mut Option<Live>) -> Result<(), SinkError> {
        if live.is_none() {
            self.config
                .retry
                .run(
                    "Kafka sink: making the topics",
                    |step: &Step| step.again,
                    || self.ensure_topics(),
                )
                .await
                .map_err(|e| self.error(e))?;
            *live = Some(self.open_live().await?);
        }
        Ok(())
    }

    /// Opens the producer (fencing every older one) and reads the last batch committed.
    async fn open_live(&self) -> Result<Live, SinkError> {
        let config = self.producer_config()?;
        let timeout = self.config.retry.timeout;
        let producer = self
            .config
            .retry
            .run(
                "Kafka sink: starting the transactional producer",
                |e: &KafkaError| !matches!(e, KafkaError::ClientCreation(_)),
                || {
                    let config = config.clone();
                    let topic = self.config.topic.clone();
                    blocking(move || -> Result<TxProducer, KafkaError> {
                        let producer: TxProducer = config.create_with_context(Deliveries {
                            topic,
                            offsets: std::sync::Mutex::new(BTreeMap::new()),
                            failed: std::sync::Mutex::new(None),
                        })?;
                        producer.init_transactions(timeout)?;
                        Ok(producer)
                    })
                },
            )
            .await
            .map_err(|e| self.error(format!("starting the transactional producer: {e}")))?;
        let (last, mut other) = self.read_progress_and_other().await?;
        if let Some(last) = &last {
            self.check_topic_holds(last).await?;
        }
        // Another's batches whose records the topic no longer holds (deleted and made again
        // since): none are written twice (walk 94: an empty topic was said to hold them).
        if last.is_none()
            && let Some(theirs) = &other
            && matches!(self.topic_holding(theirs).await, Holding::Short(..))
        {
            other = None;
        }
        // Another pipeline's or checkpoint's batches in this topic, and none of this one's: a
        // pipeline started over on a new checkpoint writes every batch again. A topic many
        // pipelines write (fan-in) is common, so this is not refused.
        let named = |other: &Progress| match other.label.is_empty() {
            true => format!("pipeline id {}", other.pipeline),
            false => format!("{}, pipeline id {}", other.label, other.pipeline),
        };
        match (&last, &other) {
            (None, Some(other)) if same_name(&other.label, &self.label) => tracing::warn!(
                "Kafka sink: topic `{}` holds batches (up to {}) of another checkpoint of this \
                 pipeline ({}), and none of this one's: this one writes every batch again \
                 after their records (a consumer reads them twice). Stop the run and give it \
                 its own topic where that is not meant",
                self.config.topic,
                other.batch,
                named(other)
            ),
            (None, Some(other)) => tracing::warn!(
                "Kafka sink: topic `{}` holds batches (up to {}) of another pipeline or \
                 checkpoint ({}), and none of this one: if this is that pipeline started over \
                 on a new checkpoint, every batch is written again after its old records (a \
                 consumer reads them twice). Stop the run and give it its own topic where that \
                 is not meant",
                self.config.topic,
                other.batch,
                named(other)
            ),
            // An older checkpoint of this pipeline run again after a newer one took the topic
            // over: its batches go beside the newer one's (walk 64: said nothing).
            (Some(_), Some(other)) if super::retired_by(&self.label, &other.label) => {
                tracing::warn!(
                    "Kafka sink: topic `{}` is written by a newer checkpoint of this pipeline \
                     too ({}): this older one's batches go beside it, which a consumer reads \
                     twice where the two read the same input. Stop running this checkpoint \
                     where the newer one replaced it",
                    self.config.topic,
                    named(other)
                )
            }
            _ => {}
        }
        Ok(Live {
            producer: Arc::new(producer),
            oldest_kept: last.as_ref().map_or(BatchId(0), |l| {
                l.batches.keys().next().map_or(l.batch, |b| BatchId(*b))
            }),
            last,
            encoders: None,
        })
    }

    /// Refuses (`SinkError::Lost`) to write on into a topic that ends below the records the
    /// newest batch of `last` wrote: it was deleted and made again (by hand, or by this sink's
    /// `partitions:`) since, so the records of the batches committed to it are gone, and
    /// writing on would leave them out of it for good, in silence. (Retention takes records
    /// from a partition's front; only a topic made again ends lower.)
    async fn check_topic_holds(&self, last: &Progress) -> Result<(), SinkError> {
        let Holding::Short(batch, short) = self.topic_holding(last).await else {
            return Ok(());
        };
        let ends = short
            .iter()
            .map(|(p, high, end)| {
                format!(
                    "partition {p} ends at offset {high}, where batch {batch} wrote up to {end}"
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "topic `{topic}` holds less than the batches committed to it wrote ({ends}): it \
                 was deleted and made again since{made}, so the records of batches up to {batch} \
                 are gone from it, and writing on would leave them out for good. To write every \
                 batch again into it, start over: run on a new checkpoint (delete the folder \
                 <checkpoint>, or set another `checkpoint:`), which reads the input from its \
                 start again; to write on from batch {next} without them, give the sink a new \
                 `progress_topic:` (this one records the batches written before), and where \
                 the run then says a batch after {batch} is pending, take it back first \
                 (`sluice rewind <checkpoint> --to {batch}`)",
                topic = self.config.topic,
                made = if self.made_topic.load(std::sync::atomic::Ordering::Relaxed) {
                    " (made again by this sink's `partitions:` at this run's start, where it \
                     was gone)"
                } else {
                    ""
                },
                batch = last.batch,
                next = last.batch.next(),
            ),
        })
    }

    /// Whether the topic still holds the records the newest batch of `progress` that wrote
    /// any wrote ([`Holding`]).
    async fn topic_holding(&self, progress: &Progress) -> Holding {
        // The newest batch that wrote records (a batch of none names no offsets).
        let Some((&batch, written)) = progress
            .batches
            .iter()
            .rev()
            .find(|(_, written)| !written.offsets.is_empty())
        else {
            return Holding::Unknown;
        };
        // The log's ends, not the last stable offsets: another producer's transaction still
        // open holds those back below records this sink committed.
        let Ok(mut config) = self.reader_config() else {
            return Holding::Unknown;
        };
        config.set("isolation.level", "read_uncommitted");
        let topic = self.config.topic.clone();
        let partitions: Vec<(i32, i64)> = written
            .offsets
            .iter()
            .map(|(p, (_, end))| (*p, *end))
            .collect();
        let timeout = self.config.retry.timeout;
        let short = blocking(move || -> Result<Vec<(i32, i64, i64)>, KafkaError> {
            let consumer = crate::source::kafka::client::range_consumer(&config)?;
            let mut short = Vec::new();
            for (partition, end) in partitions {
                let high = match consumer.fetch_watermarks(&topic, partition, timeout) {
                    Ok((_, high)) => high,
                    // A partition the topic made again does not have, or the topic gone.
                    Err(KafkaError::MetadataFetch(
                        RDKafkaErrorCode::UnknownPartition
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic,
                    )) => 0,
                    Err(e) => return Err(e),
                };
                if high <= end {
                    short.push((partition, high, end));
                }
            }
            Ok(short)
        })
        .await;
        match short {
            // Not reachable now: the first batch says so, with its retries.
            Err(_) => Holding::Unknown,
            Ok(short) if short.is_empty() => Holding::Holds,
            Ok(short) => Holding::Short(BatchId(batch), short),
        }
    }

    /// A `read_committed` consumer's configuration, for reading exact ranges.
    fn reader_config(&self) -> Result<rdkafka::ClientConfig, SinkError> {
        let mut config = client_config(
            &self.config.bootstrap_servers,
            &self.config.properties,
            RESERVED,
        )
        .map_err(|e| self.error(e))?;
        config
            .set("group.id", "sluice-progress-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        // A read that ends at the partition's end (a progress topic whose last record is a
        // transaction's marker) waits for the end of a fetch that finds nothing: 500 ms by
        // default, at every start of a run (walk 76 #5), as in the source.
        if !self.config.properties.contains_key("fetch.wait.max.ms") {
            config.set("fetch.wait.max.ms", "10");
        }
        Ok(config)
    }

    /// [`KafkaSink::read_progress`], where a progress topic that does not exist (deleted, or
    /// not made yet) holds none of this sink's batches.
    async fn read_held_progress(&self) -> Result<Option<Progress>, SinkError> {
        if !self.progress_topic_exists().await? {
            return Ok(None);
        }
        self.read_progress().await
    }

    /// Whether the progress topic exists (with no error at the brokers).
    async fn progress_topic_exists(&self) -> Result<bool, SinkError> {
        self.config
            .retry
            .run(
                "Kafka sink: looking for the progress topic",
                |_: &String| true,
                || self.look_for_progress_topic(),
            )
            .await
            .map_err(|e| self.error(format!("looking for the progress topic: {e}")))
    }

    /// One look for the progress topic (with no error at the brokers), as
    /// [`KafkaSink::progress_topic_exists`] retries it.
    async fn look_for_progress_topic(&self) -> Result<bool, String> {
        let config = self.reader_config().map_err(|e| e.to_string())?;
        let topic = self.config.progress_topic.clone();
        let timeout = self.config.retry.timeout;
        blocking(move || -> Result<bool, KafkaError> {
            let metadata = log_reader(&config)?.fetch_metadata(Some(&topic), timeout)?;
            Ok(metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none()))
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// The newest progress record of this sink, reading the progress topic to its end as a
    /// `read_committed` consumer.
    async fn read_progress(&self) -> Result<Option<Progress>, SinkError> {
        Ok(self.read_progress_and_other().await?.0)
    }

    /// This sink's newest progress record, and, where the scan for it met one, the newest
    /// record of another pipeline or checkpoint naming this sink's topic.
    async fn read_progress_and_other(
        &self,
    ) -> Result<(Option<Progress>, Option<Progress>), SinkError> {
        let config = self.reader_config()?;
        let topic = self.config.progress_topic.clone();
        let key = self.progress_key.clone();
        let timeout = self.config.retry.timeout;
        let (sink_topic, ours) = (self.config.topic.clone(), self.pipeline);
        let ours_label = self.label.clone();
        let read = self
            .config
            .retry
            .run(
                "Kafka sink: reading the progress topic",
                |_: &String| true,
                || {
                    let config = config.clone();
                    let topic = topic.clone();
                    let key = key.clone();
                    let sink_topic = sink_topic.clone();
                    let ours = (ours, ours_label.clone());
                    blocking(move || {
                        read_progress(&config, &topic, &key, &sink_topic, &ours, timeout)
                    })
                },
            )
            .await
            .map_err(|e| self.error(format!("reading the progress topic: {e}")))?;
        match read {
            (Some(progress), _) if progress.pipeline != self.pipeline => Err(self.error(format!(
                "the progress topic names pipeline {} under this sink's key",
                progress.pipeline
            ))),
            read => Ok(read),
        }
    }

    /// Writes `output` as batch `batch` in one transaction: `Ok` once committed.
    async fn write(
        &self,
        live: &Live,
        batch: BatchId,
        fence: &Fence,
        output: &BatchOutput,
        encoders: &Arc<Encoders>,
    ) -> Result<Progress, WriteError> {
        // Complete mode with a key: the keys of the previous batch's table, to take back
        // those this one lacks (walk 82: a group `HAVING` dropped stayed the newest record of
        // its key, so a compacted topic's reader saw it for ever).
        let batch_mark = format!("{}/{batch}", self.pipeline);
        let gone_from: Option<HashMap<Vec<u8>, i32>> = match (&live.last, self.complete) {
            (Some(last), true) if self.config.key.is_some() => {
                match last.batches.range(..batch.0).next_back() {
                    Some((&before, written)) if !written.offsets.is_empty() => {
                        Some(self.keys_written(before, written).await?)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let producer = Arc::clone(&live.producer);
        let topic = self.config.topic.clone();
        let update = self.update;
        let complete = self.complete;
        let key_sql = self.config.key.clone();
        let batches: Vec<RecordBatch> = output.batches().cloned().collect();
        let encoders = Arc::clone(encoders);
        let timeout = self.config.retry.timeout;
        let location = self.location();
        let started = std::time::Instant::now();
        *self
            .transaction_began
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(started);
        let offsets = blocking(move || -> Result<BTreeMap<i32, (i64, i64)>, WriteError> {
            producer.context().clear();
            producer.begin_transaction().map_err(classify)?;
            let result = failpoint::external(&location, &format!("rows of batch {batch}"), || {
                let mark = || {
                    (
                        BATCH_HEADER.to_string(),
                        Some(batch_mark.as_bytes().to_vec()),
                    )
                };
                let mut written_keys: HashSet<Vec<u8>> = HashSet::new();
                let mut index = 0;
                for batch in &batches {
                    // The same at every attempt: the rows' fault, not the broker's.
                    let rows = encoders.encode(batch).map_err(|e| {
                        WriteError::Refused(match e.row {
                            Some(row) => format!("the batch's row {}: {}", index + row, e.reason),
                            None => format!("the batch's rows (no one row alone): {}", e.reason),
                        })
                    })?;
                    for row in &rows {
                        let marked;
                        let row = if complete {
                            if let (Some(key), true) = (&row.key, gone_from.is_some()) {
                                written_keys.insert(key.clone());
                            }
                            let mut headers = row.headers.clone();
                            headers.push(mark());
                            marked = EncodedRow {
                                partition: None,
                                timestamp: row.timestamp,
                                key: row.key.clone(),
                                value: row.value.clone(),
                                headers,
                            };
                            &marked
                        } else {
                            row
                        };
                        // Update mode writes a row as the newest record of its key; a row
                        // without one would be no key's, and a compacted topic refuses it.
                        if update && row.key.is_none() {
                            return Err(WriteError::Refused(format!(
                                "the batch's row {index}: its key (`key: {}`) is null, and update \
                                 mode writes each row as the newest record of its key, so a row \
                                 needs one. Give the key a value where it is null (`coalesce`), \
                                 or filter such rows out in the query",
                                key_sql.as_deref().unwrap_or_default()
                            )));
                        }
                        send(&producer, &topic, row, timeout).map_err(|e| match e {
                            WriteError::Refused(why) => {
                                WriteError::Refused(format!("the batch's row {index}: {why}"))
                            }
                            other => other,
                        })?;
                        index += 1;
                    }
                }
                // An empty table without a key: one marked record without a value, so the
                // newest batch's records are still the table (walk 107: none was written, and
                // readers kept the previous table as the newest).
                if complete && index == 0 && key_sql.is_none() {
                    let empty = EncodedRow {
                        partition: None,
                        timestamp: None,
                        key: None,
                        value: None,
                        headers: vec![mark()],
                    };
                    send(&producer, &topic, &empty, timeout)?;
                }
                // Each key the previous table had and this one lacks, taken back, in the
                // partition its record is in (the partitioner, or the partitions, may have
                // changed since).
                for (key, partition) in gone_from.iter().flatten() {
                    if !written_keys.contains(key) {
                        let tombstone = EncodedRow {
                            partition: Some(*partition),
                            timestamp: None,
                            key: Some(key.clone()),
                            value: None,
                            headers: vec![mark()],
                        };
                        send(&producer, &topic, &tombstone, timeout)?;
                    }
                }
                flush(&producer, timeout)?;
                producer.context().failed()?;
                Ok(producer.context().taken())
            });
            let result = result.map_err(|e| refused_first(&producer, timeout, e));
            if result.is_err() {
                let _ = producer.abort_transaction(timeout);
            }
            result
        })
        .await?;
        let rows_sent = started.elapsed();
        let mut batches: BTreeMap<u64, Written> = live
            .last
            .as_ref()
            .map(|l| l.batches.clone())
            .unwrap_or_default();
        let kept_from = live
            .oldest_kept
            .max(*self.kept_from.lock().unwrap_or_else(|e| e.into_inner()));
        batches.retain(|b, _| *b >= kept_from.0 && *b < batch.0);
        batches.insert(
            batch.0,
            Written {
                epoch: fence.epoch(),
                rows: output.num_rows(),
                offsets,
            },
        );
        let progress = Progress {
            pipeline: self.pipeline,
            batch,
            epoch: fence.epoch(),
            topic: self.config.topic.clone(),
            batches,
            label: self.label.clone(),
        };
        let producer = Arc::clone(&live.producer);
        let record = serde_json::to_vec(&progress).map_err(|e| WriteError::Other(e.to_string()))?;
        let progress_topic = self.config.progress_topic.clone();
        let key = self.progress_key.clone();
        let location = self.location();
        let label = progress.label.clone().into_bytes();
        blocking(move || -> Result<(), WriteError> {
            // Partition 0, the one read back, whatever partitions a progress topic made by
            // hand has (the partitioner would spread pipelines' keys over them).
            let row = EncodedRow {
                partition: Some(0),
                timestamp: None,
                key: Some(key.into_bytes()),
                value: Some(record),
                headers: vec![(LABEL_HEADER.to_string(), Some(label))],
            };
            let sent =
                failpoint::external(&location, &format!("progress of batch {batch}"), || {
                    send(&producer, &progress_topic, &row, timeout).map_err(|e| match e {
                        // The record naming the batch grows with the batches it keeps.
                        WriteError::Refused(_) => WriteError::Refused(format!(
                            "the progress record of batch {batch} ({} bytes, the offsets of \
                             every batch the checkpoint keeps) is more than the producer's \
                             `message.max.bytes`: lower `retain_batches`, or raise \
                             `message.max.bytes` in the sink's `properties` (and the progress \
                             topic's `max.message.bytes` on the broker)",
                            row.value.as_ref().map_or(0, Vec::len)
                        )),
                        other => other,
                    })
                })
                // Delivered here, so the commit finds nothing left to flush.
                .and_then(|()| flush(&producer, timeout))
                .and_then(|()| producer.context().failed())
                .map_err(|e| refused_first(&producer, timeout, e));
            if sent.is_err() {
                let _ = producer.abort_transaction(timeout);
            }
            sent
        })
        .await?;
        // The commit point: nothing is visible before it, and a newer run stops it here.
        if let Err(superseded) = fence.check().await {
            let producer = Arc::clone(&live.producer);
            blocking(move || {
                let _ = producer.abort_transaction(timeout);
            })
            .await;
            return Err(WriteError::Other(format!("{superseded}")));
        }
        let producer = Arc::clone(&live.producer);
        let location = self.location();
        let before_commit = started.elapsed();
        blocking(move || -> Result<(), WriteError> {
            let committed =
                failpoint::external(&location, &format!("commit batch {batch}"), || {
                    producer.commit_transaction(timeout)
                });
            match committed {
                Ok(()) => Ok(()),
                Err(e) => {
                    let class = classify(e);
                    if matches!(class, WriteError::Abortable(_)) {
                        let _ = producer.abort_transaction(timeout);
                    }
                    Err(class)
                }
            }
        })
        .await?;
        tracing::debug!(
            "Kafka sink: batch {batch}: rows sent and flushed in {rows_sent:?}, progress and \
             fence by {before_commit:?}, committed by {:?}",
            started.elapsed()
        );
        Ok(progress)
    }
}

impl KafkaSink {
    /// The keys of the records with a value that batch `before` wrote (`written`: where),
    /// each with its partition, read back from the topic as a `read_committed` consumer, its
    /// own records told from other producers' by [`BATCH_HEADER`]. Records retention has
    /// taken are gone for every reader, and need no tombstone.
    ///
    /// Errors: the brokers' ([`WriteError::Abortable`]), and a read that does not reach the
    /// batch's last record within the timeout (another producer's transaction open below it
    /// holds a `read_committed` read back): tried again, never taken as fewer keys.
    async fn keys_written(
        &self,
        before: u64,
        written: &Written,
    ) -> Result<HashMap<Vec<u8>, i32>, WriteError> {
        let config = self
            .reader_config()
            .map_err(|e| WriteError::Other(e.to_string()))?;
        let topic = self.config.topic.clone();
        let mark = format!("{}/{before}", self.pipeline).into_bytes();
        let ranges: Vec<(i32, i64, i64)> = written
            .offsets
            .iter()
            .map(|(p, (first, last))| (*p, *first, *last))
            .collect();
        let timeout = self.config.retry.timeout;
        let (keys, marked) = blocking(
            move || -> Result<(HashMap<Vec<u8>, i32>, bool), WriteError> {
                use rdkafka::message::{Headers as _, Message as _};
                let consumer = crate::source::kafka::client::range_consumer(&config)
                    .map_err(WriteError::Abortable)?;
                let ends = log_reader(&config).map_err(WriteError::Abortable)?;
                let mut keys = HashMap::new();
                let mut marked = false;
                for (partition, first, last) in ranges {
                    // The log's ends: the last stable offset may lie below the batch's
                    // records (another producer's transaction open), not past them.
                    let (low, high) = ends
                        .fetch_watermarks(&topic, partition, timeout)
                        .map_err(WriteError::Abortable)?;
                    let from = first.max(low);
                    if from > last || high <= from {
                        continue;
                    }
                    let mut list = TopicPartitionList::new();
                    list.add_partition_offset(&topic, partition, Offset::Offset(from))
                        .map_err(WriteError::Abortable)?;
                    consumer.assign(&list).map_err(WriteError::Abortable)?;
                    let started = std::time::Instant::now();
                    let mut reached = false;
                    while !reached {
                        if started.elapsed() > timeout {
                            return Err(WriteError::Other(format!(
                                "reading back what batch {before} wrote to partition {partition} \
                             of topic `{topic}` (offsets {from} to {last}) did not reach its \
                             end within {timeout:?}: another producer's transaction open below \
                             it holds a `read_committed` read back"
                            )));
                        }
                        match consumer.poll(Duration::from_millis(100)) {
                            // The end of what is committed so far: wait for the rest.
                            None | Some(Err(KafkaError::PartitionEOF(_))) => continue,
                            Some(Err(e)) => return Err(WriteError::Abortable(e)),
                            Some(Ok(message)) => {
                                reached = message.offset() >= last;
                                if message.offset() > last {
                                    break;
                                }
                                let ours = message.headers().is_some_and(|headers| {
                                    headers.iter().any(|h| {
                                        h.key == BATCH_HEADER && h.value == Some(&mark[..])
                                    })
                                });
                                marked |= ours;
                                if ours
                                    && message.payload().is_some()
                                    && let Some(key) = message.key()
                                {
                                    keys.insert(key.to_vec(), partition);
                                }
                            }
                        }
                    }
                }
                consumer.unassign().map_err(WriteError::Abortable)?;
                Ok((keys, marked))
            },
        )
        .await?;
        // Records of an older Sluice, or of another output mode, carry no mark: none of their
        // keys is taken back, which is said.
        if !marked && !written.offsets.is_empty() && written.rows > 0 {
            tracing::warn!(
                "Kafka sink: batch {before}'s records in topic `{}` carry no `{BATCH_HEADER}` \
                 header (written in another output mode, or by an older Sluice): keys they \
                 hold that this batch's table lacks are not taken back (no tombstone)",
                self.config.topic
            );
        }
        Ok(keys)
    }
}

/// A row as a Kafka record.
struct EncodedRow {
    /// Where the record goes: the partitioner's choice where `None`.
    partition: Option<i32>,
    /// The record's timestamp, milliseconds since the epoch: the producer's clock where
    /// `None`.
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What a step toward the brokers failed with, and whether trying it again may get past it
/// (no broker answered).
struct Step {
    /// What failed, in words.
    text: String,
    /// Whether to try again.
    again: bool,
}

impl Step {
    /// A failure that trying again would not get past.
    fn last(text: impl std::fmt::Display) -> Self {
        Self {
            text: text.to_string(),
            again: false,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `error`, or the delivery failure that caused it: once the broker refuses a record, the
/// transaction's later steps fail only with an "erroneous state", so the records in flight
/// are let finish and a failure they report is the one returned.
fn refused_first(producer: &TxProducer, timeout: Duration, error: WriteError) -> WriteError {
    if matches!(error, WriteError::Refused(_)) {
        return error;
    }
    let _ = flush(producer, timeout);
    producer.context().failed().err().unwrap_or(error)
}

/// Waits until every record sent has been delivered (its delivery report handled by the
/// producer's thread), or `timeout` passes.
///
/// Not rdkafka's `flush`: while anything is in flight it polls in slices of 100 ms that each
/// run to their end (rdkafka 0.38 on), so every flush took at least 100 ms however fast the
/// broker answered, twice per batch with `commit_transaction`'s own flush.
fn flush(producer: &TxProducer, timeout: Duration) -> Result<(), WriteError> {
    let started = std::time::Instant::now();
    while producer.in_flight_count() > 0 {
        if started.elapsed() > timeout {
            return Err(WriteError::Abortable(KafkaError::Flush(
                RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}

/// Sends one record, waiting while the producer's queue is full.
fn send(
    producer: &TxProducer,
    topic: &str,
    row: &EncodedRow,
    timeout: Duration,
) -> Result<(), WriteError> {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(partition) = row.partition {
        record = record.partition(partition);
    }
    if let Some(timestamp) = row.timestamp {
        record = record.timestamp(timestamp);
    }
    if let Some(key) = &row.key {
        record = record.key(key.as_slice());
    }
    if let Some(value) = &row.value {
        record = record.payload(value.as_slice());
    }
    if !row.headers.is_empty() {
        let mut headers = OwnedHeaders::new_with_capacity(row.headers.len());
        for (name, value) in &row.headers {
            headers = headers.insert(Header {
                key: name,
                value: value.as_deref(),
            });
        }
        record = record.headers(headers);
    }
    let started = std::time::Instant::now();
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), again)) => {
                if started.elapsed() > timeout {
                    return Err(WriteError::Abortable(KafkaError::MessageProduction(
                        RDKafkaErrorCode::QueueFull,
                    )));
                }
                record = again;
                std::thread::sleep(Duration::from_millis(5));
            }
            // librdkafka refuses a record past `message.max.bytes` before sending it.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                let size = row.key.as_ref().map_or(0, Vec::len)
                    + row.value.as_ref().map_or(0, Vec::len)
                    + row
                        .headers
                        .iter()
                        .map(|(name, value)| name.len() + value.as_ref().map_or(0, Vec::len))
                        .sum::<usize>();
                return Err(WriteError::Refused(format!(
                    "its record is {size} bytes (key, value and headers), more than the \
                     producer's `message.max.bytes` (default 1000000): no attempt can write it. \
                     Make the record smaller in the query, or raise `message.max.bytes` in the \
                     sink's `properties` (and the topic's `max.message.bytes` on the broker)"
                )));
            }
            Err((e, _)) => return Err(classify(e)),
        }
    }
}

/// The producer's context: the first and last offset each partition of the output topic took
/// in the open transaction, and the first record the brokers refused, from the delivery
/// reports.
struct Deliveries {
    topic: String,
    offsets: std::sync::Mutex<BTreeMap<i32, (i64, i64)>>,
    /// The first delivery that failed in the open transaction, as the error to return, with
    /// the size of the record where the broker refused it as too large (records sent with it
    /// in one request are refused with it: the largest is named).
    failed: std::sync::Mutex<Option<(WriteError, usize)>>,
}

impl Deliveries {
    /// Forgets the offsets and failure of the previous transaction.
    fn clear(&self) {
        self.offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// The first delivery that failed since the last `clear`: a record the broker refuses
    /// as too large is [`WriteError::Refused`] (no attempt writes it), any other the
    /// broker's own error ([`classify`]), which the transaction's later steps would only
    /// report as an "erroneous state".
    fn failed(&self) -> Result<(), WriteError> {
        match self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            Some((error, _)) => Err(error),
            None => Ok(()),
        }
    }

    /// The offsets delivered since the last `clear`.
    fn taken(&self) -> BTreeMap<i32, (i64, i64)> {
        self.offsets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            let mut failed = self
                .failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let code = error.rdkafka_error_code();
            // Records of an attempt that was aborted, purged from the queue by the abort.
            let purged = matches!(
                code,
                Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
            );
            let size = message.key_len() + message.payload_len();
            let too_large = code == Some(RDKafkaErrorCode::MessageSizeTooLarge);
            let larger = match &*failed {
                None => true,
                Some((WriteError::Refused(_), refused)) => too_large && size > *refused,
                // A record refused as too large is the cause of what else failed with it.
                Some(_) => too_large,
            };
            if larger && !purged {
                let refused = if too_large { size } else { 0 };
                *failed = Some((
                    match code {
                        Some(RDKafkaErrorCode::MessageSizeTooLarge)
                            if message.topic() != self.topic =>
                        {
                            WriteError::Refused(format!(
                                "the broker refused the progress record ({size} bytes: the offsets \
                             of every batch the checkpoint keeps) for topic `{}` as too large, \
                             more than the topic's `max.message.bytes`: lower \
                             `retain_batches`, or raise the progress topic's \
                             `max.message.bytes`",
                                message.topic()
                            ))
                        }
                        Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
                            WriteError::Refused(format!(
                                "the broker refused a record of {size} bytes (key and value) for topic \
                         `{}` partition {} as too large: more than the topic's \
                         `max.message.bytes` (the broker's `message.max.bytes` where the topic \
                         sets none; default about 1 MB). Make the records smaller in the query, \
                         or raise the topic's `max.message.bytes` (`kafka-configs --alter \
                         --entity-type topics --entity-name {} --add-config \
                         max.message.bytes=...`)",
                                message.topic(),
                                message.partition(),
                                message.topic()
                            ))
                        }
                        // A compacted topic takes only keyed records (Kafka's "Compacted topic
                        // cannot accept message without key").
                        Some(RDKafkaErrorCode::InvalidRecord) if message.key().is_none() => {
                            WriteError::Refused(format!(
                                "the broker refused a record without a key for topic `{}` \
                                 partition {}: a compacted topic (`cleanup.policy=compact`) \
                                 takes only keyed records. Set the sink's `key:` (an \
                                 expression over the query's columns, never null), or write to \
                                 a topic that is not compacted",
                                message.topic(),
                                message.partition(),
                            ))
                        }
                        _ => classify(error.clone()),
                    },
                    refused,
                ));
            }
        }
        if let Ok(message) = result
            && message.topic() == self.topic
        {
            let offset = message.offset();
            let mut offsets = self
                .offsets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = offsets
                .entry(message.partition())
                .or_insert((offset, offset));
            entry.0 = entry.0.min(offset);
            entry.1 = entry.1.max(offset);
        }
    }
}

/// The newest record under `key` in the progress topic (its partition 0), reading back from
/// its end a span at a time (each four times the last), so that a run's start costs what the
/// newest spans hold, not everything every pipeline ever wrote there: the newest record of a
/// key is the one at the highest offset (transactions of one transactional id commit in
/// order; an aborted one is never read). With it, the newest record the spans read of
/// another pipeline (not `ours`) naming `sink_topic`: where `key` has none, every span is
/// read, so any such record is found.
///
/// It reads to the log's end once no transaction is open below it: a `read_committed` read
/// ends at the first open one (another pipeline's), and records this sink committed after it
/// began lie past that.
fn read_progress(
    config: &rdkafka::ClientConfig,
    topic: &str,
    key: &str,
    sink_topic: &str,
    ours: &(uuid::Uuid, String),
    timeout: Duration,
) -> Result<(Option<Progress>, Option<Progress>), String> {
    let consumer =
        crate::source::kafka::client::range_consumer(config).map_err(|e| e.to_string())?;
    let (low, high) = log_reader(config)
        .and_then(|ends| ends.fetch_watermarks(topic, 0, timeout))
        .map_err(|e| e.to_string())?;
    wait_stable(&consumer, topic, 0, high, timeout)?;
    let mut end = high;
    let mut span = 64;
    let mut other: Option<Progress> = None;
    while end > low {
        let start = (end - span).max(low);
        let (found, theirs) =
            read_progress_span(&consumer, topic, key, sink_topic, ours, start, end, timeout)?;
        // The newest other; but one of this pipeline's name (another checkpoint of it) first,
        // the one whose batches this one's would write again or beside (walk 64).
        if let Some(theirs) = theirs
            && other
                .as_ref()
                .is_none_or(|o| !same_name(&o.label, &ours.1) && same_name(&theirs.label, &ours.1))
        {
            other = Some(theirs);
        }
        if found.is_some() {
            return Ok((found, other));
        }
        end = start;
        span = span.saturating_mul(4);
    }
    Ok((None, other))
}

/// Among offsets `start..end` of the progress topic: the record under `key` with the
/// highest batch (one there that does not read is an error), and the newest that reads as
/// another pipeline's naming `sink_topic` (another Sluice's records may not read).
#[allow(clippy::too_many_arguments)]
fn read_progress_span(
    consumer: &crate::source::kafka::client::RangeConsumer,
    topic: &str,
    key: &str,
    sink_topic: &str,
    ours: &(uuid::Uuid, String),
    start: i64,
    end: i64,
    timeout: Duration,
) -> Result<(Option<Progress>, Option<Progress>), String> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(start))
        .map_err(|e| e.to_string())?;
    consumer.assign(&list).map_err(|e| e.to_string())?;
    let mut newest: Option<Progress> = None;
    let mut other: Option<Progress> = None;
    let mut last_progress = std::time::Instant::now();
    loop {
        if last_progress.elapsed() > timeout {
            return Err(format!(
                "no record came within the timeout reading {topic} {}",
                crate::vocab::offsets(start, end)
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(message)) => {
                last_progress = std::time::Instant::now();
                if message.offset() >= end {
                    break;
                }
                if let Some(value) = message.payload() {
                    if message.key() == Some(key.as_bytes()) {
                        let progress: Progress = serde_json::from_slice(value).map_err(|e| {
                            format!(
                                "{topic} offset {}: not a progress record: {e}",
                                message.offset()
                            )
                        })?;
                        if newest.as_ref().is_none_or(|n| progress.batch >= n.batch) {
                            newest = Some(progress);
                        }
                    } else if let Ok(mut progress) = serde_json::from_slice::<Progress>(value)
                        && progress.topic == sink_topic
                        && {
                            progress.label = label_of(&message);
                            true
                        }
                        && progress.pipeline != ours.0
                        // The one at the highest offset, the newest; one of this pipeline's
                        // name before any other.
                        && other.as_ref().is_none_or(|o| {
                            same_name(&progress.label, &ours.1) || !same_name(&o.label, &ours.1)
                        })
                    {
                        other = Some(progress);
                    }
                }
                if message.offset() + 1 >= end {
                    break;
                }
            }
        }
    }
    consumer.unassign().map_err(|e| e.to_string())?;
    Ok((newest, other))
}

/// The label a progress record's [`LABEL_HEADER`] holds; empty where it has none.
fn label_of(message: &rdkafka::message::BorrowedMessage<'_>) -> String {
    use rdkafka::message::{Headers as _, Message as _};
    message
        .headers()
        .and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == LABEL_HEADER)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_default()
}

/// Whether labels `a` and `b` name pipelines of one name (two checkpoints of a pipeline).
fn same_name(a: &str, b: &str) -> bool {
    super::pipeline_name(a).is_some() && super::pipeline_name(a) == super::pipeline_name(b)
}

/// The batches a progress record keeps, in words.
fn describe_kept(progress: &Progress) -> String {
    match (
        progress.batches.keys().next(),
        progress.batches.keys().last(),
    ) {
        (Some(first), Some(last)) if first != last => format!("{first} to {last}"),
        (Some(only), _) => only.to_string(),
        _ => "none".into(),
    }
}

/// The committed values in each partition's offsets `first..=last`, in partition and offset
/// order.
fn read_values(
    config: &rdkafka::ClientConfig,
    topic: &str,
    ranges: &BTreeMap<i32, (i64, i64)>,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let consumer =
        crate::source::kafka::client::range_consumer(config).map_err(|e| e.to_string())?;
    let ends = log_reader(config).map_err(|e| e.to_string())?;
    let mut values = Vec::new();
    for (p, (first, last)) in ranges {
        // A transaction open below the range's end would end the read early.
        let (_, high) = ends
            .fetch_watermarks(topic, *p, timeout)
            .map_err(|e| e.to_string())?;
        wait_stable(&consumer, topic, *p, high.min(last + 1), timeout)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, *p, Offset::Offset(*first))
            .map_err(|e| e.to_string())?;
        consumer.assign(&list).map_err(|e| e.to_string())?;
        let mut waited = std::time::Instant::now();
        loop {
            if waited.elapsed() > timeout {
                return Err(format!(
                    "no record came within the timeout reading {topic} partition {p} offsets \
                     {}",
                    crate::vocab::span(first, last)
                ));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(message)) => {
                    waited = std::time::Instant::now();
                    if message.offset() > *last {
                        break;
                    }
                    // A complete-mode batch's tombstones (marked, without a value) are no rows.
                    let tombstone = message.payload().is_none()
                        && message.headers().is_some_and(|headers| {
                            use rdkafka::message::Headers as _;
                            headers.iter().any(|h| h.key == BATCH_HEADER)
                        });
                    if message.offset() >= *first && !tombstone {
                        values.push(message.payload().unwrap_or_default().to_vec());
                    }
                    if message.offset() >= *last {
                        break;
                    }
                }
            }
        }
    }
    Ok(values)
}

/// A client whose watermarks are the log's ends, whatever producers' transactions are open
/// in it: a `read_committed` consumer's end at the last stable offset instead (librdkafka
/// 1.7.1 on). One per read, for all its partitions.
fn log_reader(
    config: &rdkafka::ClientConfig,
) -> Result<crate::source::kafka::client::RangeConsumer, KafkaError> {
    let mut config = config.clone();
    config.set("isolation.level", "read_uncommitted");
    crate::source::kafka::client::range_consumer(&config)
}

/// Waits until a `read_committed` read of `topic`'s `partition` reaches offset `until`
/// (exclusive): until its last stable offset, which `consumer`'s watermarks give, is there. A
/// transaction open below `until` (another producer's, or a crashed one's until the broker
/// aborts it at its `transaction.timeout.ms`) holds it back, and a read that ended at it would
/// miss the committed records past it.
///
/// Errors: the brokers', and a transaction still open below `until` after `timeout`.
fn wait_stable(
    consumer: &crate::source::kafka::client::RangeConsumer,
    topic: &str,
    partition: i32,
    until: i64,
    timeout: Duration,
) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let (_, stable) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| e.to_string())?;
        if stable >= until {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "a transaction is still open in topic `{topic}` partition {partition} at offset \
                 {stable}, below its end ({until}), after {}: a `read_committed` read cannot \
                 pass it until its producer commits or aborts it (the broker aborts it at the \
                 producer's `transaction.timeout.ms`; a hanging one, which it never aborts, \
                 `kafka-transactions.sh --bootstrap-server <brokers> find-hanging` lists and \
                 its `abort` ends)",
                humantime::format_duration(timeout)
            ));
        }
        std::thread::sleep(pause);
        pause = pause.saturating_mul(2).min(Duration::from_secs(1));
    }
}

/// How rows become records: the key, value and header expressions, compiled for one schema.
struct Encoders {
    key: Option<Encoder>,
    value: Option<Encoder>,
    /// The default value writes null columns as `null`.
    json_nulls: bool,
    headers: Vec<(String, Encoder)>,
    /// `timestamp:`, where given.
    timestamp: Option<Encoder>,
}

/// One of the sink's expressions, compiled, with the setting it came from (`key: ...`) for
/// the error of a row it fails on.
struct Encoder {
    setting: String,
    expr: Arc<dyn PhysicalExpr>,
}

impl Encoder {
    /// The expression's value for each row of `batch` as a record's timestamp, milliseconds
    /// since the epoch (a time without a zone taken as UTC, as Sluice keeps times; finer
    /// units cut to the millisecond, toward the past); `None` for a null.
    fn millis(&self, batch: &RecordBatch) -> Result<Vec<Option<i64>>, EncodeError> {
        let fail = |reason: String| EncodeError {
            row: None,
            reason: format!("`{}` fails on it: {reason}", self.setting),
        };
        let array = self
            .expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| fail(e.to_string()))?;
        let micros = cast(
            &array,
            &DataType::Timestamp(TimeUnit::Microsecond, timestamp_zone(array.data_type())),
        )
        .map_err(|e| fail(e.to_string()))?;
        let millis: Vec<Option<i64>> = micros
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .map(|v| v.map(|us| us.div_euclid(1000)))
            .collect();
        // Kafka keeps a record's time as milliseconds after 1970, where 0 and below say "no
        // time" (librdkafka then stamps the producer's clock): such a row is refused, not
        // stamped otherwise in silence (the review).
        if let Some(row) = millis.iter().position(|m| m.is_some_and(|m| m <= 0)) {
            return Err(EncodeError {
                row: Some(row),
                reason: format!(
                    "`{}` gives a time at or before 1970-01-01T00:00:00Z, which a Kafka \
                     record's timestamp cannot be (milliseconds after it; 0 and below read as \
                     none)",
                    self.setting
                ),
            });
        }
        Ok(millis)
    }

    /// The expression's value for each row of `batch`, as a record's bytes. A failure names
    /// the setting and the first row (0-based, within `batch`) it fails on: it is the row's
    /// fault, so no attempt writes it.
    fn bytes(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>, EncodeError> {
        // A float key's text as PostgreSQL compares keys: every NaN one key, `-0.0` as `0.0`
        // (audit 92b: a compacted topic kept `-0` and `0` apart).
        let key = self.setting.starts_with("key:");
        let eval = |batch: &RecordBatch| {
            self.expr
                .evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
                .map_err(|e| e.to_string())
                .map(|array| {
                    if key {
                        crate::floats::normalized_array(&array)
                    } else {
                        array
                    }
                })
                .and_then(|array| bytes_of(&array))
        };
        eval(batch).map_err(|error| {
            // Found row by row, only once the whole batch failed.
            let row = (0..batch.num_rows()).find(|&i| eval(&batch.slice(i, 1)).is_err());
            EncodeError {
                row,
                reason: format!("`{}` fails on it: {error}", self.setting),
            }
        })
    }
}

/// The name of a function in `expr` whose value is not fixed by its arguments (`now()`,
/// `random()`, `uuid()`: DataFusion's stable and volatile functions), the first found.
fn not_immutable(expr: &datafusion::logical_expr::Expr) -> Option<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Expr, Volatility};
    let mut found = None;
    let _ = expr.apply(|e| {
        if let Expr::ScalarFunction(f) = e
            && f.func.signature().volatility != Volatility::Immutable
        {
            found = Some(f.func.name().to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// A row the sink's expressions cannot make a record of: the row's fault, the same at every
/// attempt.
struct EncodeError {
    /// The first row it fails on (0-based, within the record batch), where one alone fails.
    row: Option<usize>,
    reason: String,
}

impl Encoders {
    /// Compiles the sink's expressions against `schema`, naming the setting that is wrong.
    fn new(config: &KafkaSinkConfig, schema: &SchemaRef) -> Result<Self, String> {
        // With Spark's `to_json` and the JSON functions, as a query has them (walk 107: the
        // README's `value: to_json(named_struct(...))` was "Invalid function 'to_json'").
        let ctx = SessionContext::new();
        ctx.register_udf(crate::json::to_json());
        if let Err(e) = datafusion_functions_json::register_all(&mut *ctx.state_ref().write()) {
            tracing::warn!("the JSON functions are not available to the Kafka sink: {e}");
        }
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
        // Typed and simplified as a query's expressions are before they run (`coalesce`, say,
        // runs only as the CASE the simplifier makes of it).
        let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
            datafusion::logical_expr::simplify::SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build(),
        );
        let empty = RecordBatch::new_empty(Arc::clone(schema));
        let compile = |key: &str, sql: &str| -> Result<Encoder, String> {
            // A function of the time or of chance (`now()`, `random()`) gives another record
            // when a batch is written again, and DataFusion runs `now()` only as the literal
            // a query's planning makes of it (walk 122: "invoke should not be called on a
            // simplified now() function ... a bug in DataFusion").
            if let Ok(parsed) = ctx.parse_sql_expr(sql, &df_schema)
                && let Some(name) = not_immutable(&parsed)
            {
                let instead = if ["now", "current_timestamp", "current_date", "current_time"]
                    .contains(&name.as_str())
                {
                    "select it in the query instead (`now()` there is the batch's time, logged \
                     with it), as a column, and name the column here"
                } else {
                    "make the value of the row's own columns instead (a key of them, hashed, \
                     spreads records over partitions as a random one does)"
                };
                return Err(format!(
                    "`{key}: {sql}` calls `{name}()`, which gives another value each time a \
                     batch is written (and a batch written again must give the same records): \
                     {instead}"
                ));
            }
            let expr = ctx
                .parse_sql_expr(sql, &df_schema)
                .and_then(|e| simplifier.coerce(e, &df_schema))
                .and_then(|e| simplifier.simplify(e))
                .and_then(|e| ctx.create_physical_expr(e, &df_schema))
                // Run once over no rows, so that an expression that cannot run is found
                // before the first batch, not at every batch.
                .and_then(|e| e.evaluate(&empty).map(|v| (e, v)))
                .map_err(|e| {
                    // A bare word that is no column: meant as text, most likely.
                    let literal = if sql.trim().chars().all(|c| c.is_alphanumeric() || c == '_')
                        && e.to_string().contains("No field named")
                    {
                        format!(
                            " (to send the text `{sql}` itself, write it as SQL text, in single \
                             quotes inside YAML's double ones: `{key}: \"'{sql}'\"`)"
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "`{key}: {sql}` is not an expression over the query's columns: \
                         {e}{literal}"
                    )
                })?;
            let (expr, none) = expr;
            // Its values must become a record's bytes (text or binary, or cast to text).
            none.into_array(0)
                .map_err(|e| e.to_string())
                .and_then(|values| bytes_of(&values))
                .map_err(|e| format!("`{key}: {sql}` gives values a record cannot hold: {e}"))?;
            Ok(Encoder {
                setting: format!("{key}: {sql}"),
                expr,
            })
        };
        // Every expression at fault is named at once.
        let mut faults = Vec::new();
        let mut keep = |compiled: Result<Encoder, String>| match compiled {
            Ok(expr) => Some(expr),
            Err(fault) => {
                faults.push(fault);
                None
            }
        };
        let key = config.key.as_deref().and_then(|k| keep(compile("key", k)));
        // A time, not bytes: checked for its type, then compiled as the others are.
        let timestamp = config.timestamp.as_deref().and_then(|sql| {
            let typed = ctx
                .parse_sql_expr(sql, &df_schema)
                .and_then(|e| simplifier.coerce(e, &df_schema))
                .and_then(|e| datafusion::logical_expr::ExprSchemable::get_type(&e, &df_schema));
            match typed {
                Ok(DataType::Timestamp(..)) => keep(compile("timestamp", sql)),
                Ok(other) => keep(Err(format!(
                    "`timestamp: {sql}` gives values of type {}, not a timestamp: give a \
                     `timestamp` column or expression (`to_timestamp_millis(epoch_ms)` for a \
                     number of milliseconds)",
                    crate::format::sql_type_name(&other)
                ))),
                Err(e) => keep(Err(format!(
                    "`timestamp: {sql}` is not an expression over the query's columns: {e}"
                ))),
            }
        });
        let value = config
            .value
            .as_deref()
            .and_then(|v| keep(compile("value", v)));
        let headers: Vec<(String, Encoder)> = config
            .headers
            .iter()
            .filter_map(|(name, sql)| {
                keep(compile(&format!("headers.{name}"), sql)).map(|expr| (name.clone(), expr))
            })
            .collect();
        if config.json_nulls && config.value.is_some() {
            faults.push(
                "`json_nulls: true` applies to the default value (the row as JSON), which \
                 `value:` replaces: remove one of them"
                    .to_string(),
            );
        }
        if !faults.is_empty() {
            return Err(faults.join("; and "));
        }
        Ok(Self {
            key,
            value,
            json_nulls: config.json_nulls,
            headers,
            timestamp,
        })
    }

    /// The records of `batch`'s rows.
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<EncodedRow>, EncodeError> {
        let n = batch.num_rows();
        let keys = self.key.as_ref().map(|k| k.bytes(batch)).transpose()?;
        let values = match &self.value {
            Some(value) => value.bytes(batch)?,
            None => json_rows(batch, self.json_nulls).map_err(|e| EncodeError {
                row: None,
                reason: format!("its value, the row as JSON, cannot be written: {e}"),
            })?,
        };
        let headers = self
            .headers
            .iter()
            .map(|(name, header)| Ok((name.clone(), header.bytes(batch)?)))
            .collect::<Result<Vec<_>, EncodeError>>()?;
        let timestamps = self
            .timestamp
            .as_ref()
            .map(|t| t.millis(batch))
            .transpose()?;
        let mut keys = keys.map(Vec::into_iter);
        let mut out = Vec::with_capacity(n);
        for (i, value) in values.into_iter().enumerate() {
            out.push(EncodedRow {
                partition: None,
                timestamp: timestamps.as_ref().and_then(|t| t[i]),
                key: keys.as_mut().and_then(|k| k.next().flatten()),
                value,
                headers: headers
                    .iter()
                    .map(|(name, values)| (name.clone(), values[i].clone()))
                    .collect(),
            });
        }
        Ok(out)
    }
}

/// The zone of a timestamp type, kept through a cast to another unit (its values are instants
/// either way).
fn timestamp_zone(data_type: &DataType) -> Option<Arc<str>> {
    match data_type {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    }
}

/// Each value of `array` as bytes: binary as is, text as UTF-8, anything else as its text.
fn bytes_of(array: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>, String> {
    let as_text = |array: &ArrayRef| -> Result<ArrayRef, String> {
        cast(array, &DataType::Utf8).map_err(|e| e.to_string())
    };
    let array = match array.data_type() {
        // A list's text is Arrow's display of it, the same for other lists (`[a, ]` is both
        // `['a', '']` and `['a', NULL]`; audit 92b: two groups' records took one key).
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => {
            return Err(format!(
                "a list ({}), whose text is not one of its own (`[a, ]` is both `['a', '']` \
                 and `['a', NULL]`), as a struct's or a map's is not; a record's key and \
                 value and headers are text or binary (as Spark's Kafka sink takes them): give the \
                 columns the list is made from, or text made of its elements that no two \
                 lists share",
                array.data_type()
            ));
        }
        DataType::Binary | DataType::Utf8 => Arc::clone(array),
        DataType::LargeBinary | DataType::BinaryView => {
            cast(array, &DataType::Binary).map_err(|e| e.to_string())?
        }
        _ => as_text(array)?,
    };
    Ok(match array.data_type() {
        DataType::Binary => array
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(<[u8]>::to_vec))
            .collect(),
        _ => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect(),
    })
}

/// Each row of `batch` as a JSON object: nulls left out, as Spark's `to_json` leaves them, or,
/// with `nulls`, written as `null`, as Flink's JSON format writes them.
fn json_rows(batch: &RecordBatch, nulls: bool) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut buffer = Vec::new();
    {
        let mut writer = crate::json::line_writer(&mut buffer, nulls);
        writer.write(batch).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    // A row of nulls as `{"a":null,...}`, not `{}` (audit 92b: Sluice's own Kafka source
    // refused it as a value with none of its columns).
    let buffer =
        crate::json::with_null_rows(buffer.into(), &crate::json::null_row(&batch.schema()));
    // JSON text escapes every newline inside a value: each line is one row.
    let rows: Vec<Option<Vec<u8>>> = buffer
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| Some(line.to_vec()))
        .collect();
    if rows.len() != batch.num_rows() {
        return Err(format!(
            "{} rows encoded as {} JSON objects",
            batch.num_rows(),
            rows.len()
        ));
    }
    Ok(rows)
}

#[async_trait]
impl Sink for KafkaSink {
    fn kind(&self) -> &'static str {
        KIND.name
    }

    /// The key, value and header expressions compile against the query's columns, so that a
    /// mistake in one is said before a batch is planned.
    async fn check_output(&self, schema: &SchemaRef, _new_columns: bool) -> Result<(), SinkError> {
        Encoders::new(&self.config, schema)
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    async fn check_held(&self, last: BatchId) -> Result<(), SinkError> {
        // Complete mode with a key tombstones the keys the previous table had and the next
        // lacks, which it finds by the progress record's offsets: without the record (a
        // progress topic with `delete` retention, emptied), they would stay for good, unsaid
        // (audit 89a). Read only.
        if !self.complete || self.config.key.is_none() {
            return Ok(());
        }
        let held = self
            .read_held_progress()
            .await?
            .map(|progress| progress.batch);
        if held.is_none_or(|held| held < last) {
            tracing::warn!(
                "Kafka sink: the progress topic `{}` holds no record of batch {last}, the \
                 newest the checkpoint committed to topic `{}` (deleted or emptied since: its \
                 retention should be `compact`, as the topic Sluice makes has), so the keys of \
                 that batch's table are not known: a key the next table lacks gets no \
                 tombstone, and its last record stays in the topic's table. To write the table \
                 whole again with its tombstones, start over on a new checkpoint and a new \
                 topic",
                self.config.progress_topic,
                self.config.topic
            );
        }
        Ok(())
    }

    async fn check_pending(&self, last: BatchId, pending: BatchId) -> Result<(), SinkError> {
        // Read only (the review of audit 86: opening made the topics and fenced the producer
        // before the query was checked).
        let held = self
            .read_held_progress()
            .await?
            .map(|progress| progress.batch);
        if held.is_some_and(|held| held >= last) {
            return Ok(());
        }
        let holds = match held {
            Some(held) => format!("holds this pipeline's batches up to {held} only"),
            None => "holds no record of this pipeline's batches".to_string(),
        };
        Err(SinkError::Lost {
            kind: KIND.name,
            reason: format!(
                "batch {pending} is pending (planned, not committed in the checkpoint), and the \
                 progress topic `{progress}` {holds}, where the checkpoint committed batch \
                 {last} to topic `{topic}`: it was deleted or emptied since (or \
                 `progress_topic:` names another now), so whether batch {pending} got into \
                 `{topic}` before the run stopped cannot be told, and writing it again could \
                 give a consumer its records twice. Where they are not there, or twice is \
                 acceptable, take the batch back and run again: `sluice rewind <checkpoint> \
                 --to {last}`; or start over on a new checkpoint, which reads the input from \
                 its start again",
                progress = self.config.progress_topic,
                topic = self.config.topic,
            ),
        })
    }

    async fn start(&self) -> Result<(), SinkError> {
        // The producer's `init_transactions` and the progress topic's read take a second or
        // more: before the first batch, not inside it.
        self.ensure_open(&mut *self.live.lock().await).await
    }

    async fn commit(
        &self,
        batch: BatchId,
        fence: &Fence,
        output: BatchOutput,
    ) -> Result<SinkCommit, SinkError> {
        let mut guard = self.live.lock().await;
        self.ensure_open(&mut guard).await?;
        let mut attempts = 0;
        let mut backoff = self.config.retry.backoff;
        loop {
            attempts += 1;
            // Opened anew after a failed attempt; a failure to is a failed attempt too (the
            // review of audit 89a: it ended the batch at once, its number unsaid).
            if guard.is_none() {
                match self.open_live().await {
                    Ok(live) => *guard = Some(live),
                    Err(e) if attempts >= self.config.retry.attempts => {
                        return Err(self.error(format!(
                            "writing batch {batch}: {e} (after {attempts} attempts)"
                        )));
                    }
                    Err(e) => {
                        tracing::warn!(
                            "Kafka sink: writing batch {batch} failed (attempt {attempts} of \
                             {}): {e}; retrying in {}",
                            self.config.retry.attempts,
                            humantime::format_duration(backoff)
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = backoff.saturating_mul(2);
                        continue;
                    }
                }
            }
            let Some(live) = guard.as_mut() else {
                return Err(self.error("the sink is not open"));
            };
            if let Some(last) = &live.last {
                if last.epoch > fence.epoch() {
                    fence
                        .check()
                        .await
                        .map_err(|e| SinkError::Fenced(Box::new(e)))?;
                }
                if batch <= last.batch {
                    return Ok(SinkCommit {
                        rows: output.num_rows(),
                        written: false,
                    });
                }
            }
            let encoders = match &live.encoders {
                Some(e) => Arc::clone(e),
                None => {
                    let e = Arc::new(
                        Encoders::new(&self.config, &output.schema).map_err(|e| self.error(e))?,
                    );
                    live.encoders = Some(Arc::clone(&e));
                    e
                }
            };
            *self
                .transaction_began
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            match self.write(live, batch, fence, &output, &encoders).await {
                Ok(progress) => {
                    let rows = progress.rows();
                    live.last = Some(progress);
                    return Ok(SinkCommit {
                        rows,
                        written: true,
                    });
                }
                Err(error) => {
                    // A newer run stops this one: the checkpoint says which is newer.
                    fence
                        .check()
                        .await
                        .map_err(|e| SinkError::Fenced(Box::new(e)))?;
                    // No newer run: a transaction open past its timeout, which the broker
                    // aborted, bumping the producer's epoch, looks fenced too.
                    let limit = self.transaction_timeout();
                    let open = self
                        .transaction_began
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .map(|began| began.elapsed());
                    let error = match error {
                        WriteError::Fenced(e) if open.is_some_and(|open| open >= limit) => {
                            WriteError::Other(format!(
                                "the batch's transaction was open {}, past its \
                                 `transaction.timeout.ms` ({}), and the broker aborted it \
                                 ({e}): raise `transaction.timeout.ms` in the sink's \
                                 `properties` (up to the broker's \
                                 `transaction.max.timeout.ms`, 15 minutes by default), or make \
                                 the batches smaller",
                                humantime::format_duration(Duration::from_millis(
                                    u64::try_from(open.unwrap_or_default().as_millis())
                                        .unwrap_or(u64::MAX)
                                )),
                                humantime::format_duration(limit)
                            ))
                        }
                        error => error,
                    };
                    if attempts >= self.config.retry.attempts
                        || matches!(error, WriteError::Refused(_))
                    {
                        if matches!(error, WriteError::Refused(_)) {
                            return Err(SinkError::RowRefused {
                                kind: KIND.name,
                                reason: format!(
                                    "topic `{}`: writing batch {batch}: {error} (nothing of the \
                                     batch was committed)",
                                    self.config.topic
                                ),
                            });
                        }
                        return Err(self.error(format!(
                            "writing batch {batch}: {error} (after {attempts} attempts)"
                        )));
                    }
                    tracing::warn!(
                        "Kafka sink: writing batch {batch} failed (attempt {attempts} of {}): \
                         {error}; retrying in {}",
                        self.config.retry.attempts,
                        humantime::format_duration(backoff)
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                    // A late run's producer fenced this one, the producer is unusable, or a
                    // transaction call of it timed out and is still under way (audit 89a:
                    // every retry then failed "conflicting commit_transaction API call is
                    // already in progress", the broker long back): a new producer fences or
                    // aborts what the old one left open, and the progress topic says whether
                    // the batch got in meanwhile.
                    // Dropped off the runtime's threads: its purge, flush and destroy block.
                    if let Some(old) = guard.take() {
                        blocking(move || drop(old)).await;
                    }
                }
            }
        }
    }

    fn keep_from(&self, oldest_kept: BatchId) {
        let mut kept_from = self.kept_from.lock().unwrap_or_else(|e| e.into_inner());
        *kept_from = (*kept_from).max(oldest_kept);
    }

    async fn purge(&self, oldest_kept: BatchId) -> Result<(), SinkError> {
        // The next progress record leaves older batches out: nothing to delete. (Kept apart
        // from the producer too, which a retry opens anew.)
        self.keep_from(oldest_kept);
        if let Some(live) = self.live.lock().await.as_mut() {
            live.oldest_kept = oldest_kept;
        }
        Ok(())
    }

    async fn read_batch(&self, batch: BatchId, schema: &SchemaRef) -> Result<HeldBatch, SinkError> {
        if self.config.value.is_some() {
            return Err(SinkError::NotSupported {
                kind: KIND.name,
                operation: "reading a batch back (`sluice replay --verify`) where `value:` is an \
                            expression rather than the row",
            });
        }
        // Read-only: a consumer of the progress topic, never a producer (which would fence
        // a running pipeline's).
        let Some(progress) = self.read_progress().await? else {
            return Ok(HeldBatch::Missing(format!(
                "the progress topic `{}` names no batch of this pipeline",
                self.config.progress_topic
            )));
        };
        let Some(written) = progress.batches.get(&batch.0) else {
            return Ok(HeldBatch::Missing(format!(
                "the progress topic keeps batches {}; batch {batch} is older (purged)",
                describe_kept(&progress)
            )));
        };
        let file = format!(
            "kafka topic {} {}",
            progress.topic,
            written
                .offsets
                .iter()
                .map(|(p, (first, last))| {
                    format!("partition {p} offsets {}", crate::vocab::span(first, last))
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut config = self.reader_config()?;
        config.set("group.id", "sluice-verify-reader");
        let topic = progress.topic.clone();
        let ranges = written.offsets.clone();
        let timeout = self.config.retry.timeout;
        let values = blocking(move || read_values(&config, &topic, &ranges, timeout))
            .await
            .map_err(|e| self.error(format!("reading batch {batch} back: {e}")))?;
        if values.len() as u64 != written.rows {
            return Ok(HeldBatch::Unreadable {
                file,
                reason: format!(
                    "{} committed records in the batch's offsets, where it wrote {} (does \
                     another producer write to the topic?)",
                    values.len(),
                    written.rows
                ),
            });
        }
        let mut text = Vec::new();
        for value in values {
            text.extend_from_slice(&value);
            text.push(b'\n');
        }
        let reader = crate::source::Reader {
            format: crate::format::FileFormat::Json,
            schema: Arc::clone(schema),
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
        match reader.decode(&file, "", &bytes::Bytes::from(text)) {
            Ok(decoded) => Ok(HeldBatch::Rows {
                files: vec![file],
                batches: decoded.batches,
            }),
            Err(e) => Ok(HeldBatch::Unreadable {
                file,
                reason: e.to_string(),
            }),
        }
    }

    async fn summary(&self) -> Result<Option<HeldSummary>, SinkError> {
        // Settled too: the run's check that the sink is not ahead of its checkpoint reads it,
        // and rewind's.
        let progress = self.read_held_progress().await?;
        Ok(Some(HeldSummary {
            entries: progress.as_ref().map_or(0, |p| p.batches.len()),
            last: progress.map(|p| (p.batch, Some(p.rows()), Some(0))),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// Walk 101 (5): `acks: 1` failed at the first batch in librdkafka's words (exit 1); a
    /// reserved key named no setting of Sluice's that does the job.
    #[test]
    fn properties_the_transactions_need_are_refused_naming_what_does_the_job() {
        let refused = |yaml: &str| {
            let settings: serde_yaml::Mapping = serde_yaml::from_str(yaml).expect("YAML");
            match configure(&settings) {
                Ok(_) => panic!("{yaml}: not refused"),
                Err(e) => e.to_string(),
            }
        };
        let said = refused("{ bootstrap_servers: b, topic: t, properties: { acks: '1' } }");
        assert!(
            said.contains("`acks: 1` cannot be") && said.contains("`acks: all`"),
            "{said}"
        );
        let settings: serde_yaml::Mapping =
            serde_yaml::from_str("{ bootstrap_servers: b, topic: t, properties: { acks: all } }")
                .expect("YAML");
        assert!(
            configure(&settings).is_ok(),
            "acks: all is what the sink sets"
        );
        let said = refused(
            "{ bootstrap_servers: b, topic: t, properties: { request.required.acks: '0' } }",
        );
        assert!(said.contains("`acks: 0` cannot be"), "{said}");
        let said = refused("{ bootstrap_servers: b, topic: t, properties: { group.id: g } }");
        assert!(said.contains("`group_id:`"), "{said}");
    }

    /// Walk 122: `timestamp: now()` failed with DataFusion's "invoke should not be called on a
    /// simplified now() function ... a bug". A function of the time or of chance is refused,
    /// naming the setting and the query's `now()` (the batch's time) to use instead.
    #[test]
    fn a_sink_expression_of_the_time_is_refused_with_the_query_way() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        for (setting, function) in [
            ("timestamp: now()", "now"),
            ("key: CAST(random() AS VARCHAR)", "random"),
        ] {
            let config: KafkaSinkConfig =
                serde_yaml::from_str(&format!("bootstrap_servers: h:9092\ntopic: t\n{setting}"))
                    .expect("config");
            let said = Encoders::new(&config, &schema).err().expect("refused");
            assert!(
                said.contains(&format!("calls `{function}()`"))
                    && said.contains(if function == "now" {
                        "select it in the query instead"
                    } else {
                        "of the row's own columns"
                    }),
                "{said}"
            );
        }
    }

    /// Walk 42 (2): `key: coalesce(tag, 'none')` compiled, then failed every batch with
    /// DataFusion's "coalesce should have been simplified to case". The sink's expressions are
    /// typed and simplified as a query's are, and one that cannot run is refused before the
    /// first batch, naming its setting.
    #[test]
    fn sink_expressions_run_as_a_query_runs_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tag", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let config: KafkaSinkConfig = serde_yaml::from_str(
            "bootstrap_servers: h:9092\ntopic: t\nkey: coalesce(tag, 'none')\nheaders: { n: n + 1 }",
        )
        .expect("config");
        let encoders = Encoders::new(&config, &schema).expect("compiles");
        let rows = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 2])),
            ],
        )
        .expect("rows");
        let key = encoders
            .key
            .expect("a key")
            .expr
            .evaluate(&rows)
            .and_then(|k| k.into_array(rows.num_rows()))
            .expect("evaluates");
        let key = key.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!((key.value(0), key.value(1)), ("a", "none"));
        // The default value leaves a null column out, or, with `json_nulls`, writes it.
        let value = |nulls: bool| {
            let rows = json_rows(&rows, nulls).expect("json");
            String::from_utf8(rows[1].clone().expect("a value")).expect("utf-8")
        };
        assert_eq!(value(false), "{\"n\":2}");
        assert_eq!(value(true), "{\"tag\":null,\"n\":2}");
        // Walk 107 (2): the README's `value: to_json(named_struct(...))` and the JSON
        // functions, as a query has them.
        let config: KafkaSinkConfig = serde_yaml::from_str(
            "bootstrap_servers: h:9092\ntopic: t\nvalue: to_json(named_struct('tag', tag, 'n', \
             n))\nkey: json_get_str('{\"a\":\"b\"}', 'a')",
        )
        .expect("config");
        let encoders = Encoders::new(&config, &schema).expect("compiles");
        let value = encoders
            .value
            .expect("a value")
            .expr
            .evaluate(&rows)
            .and_then(|v| v.into_array(rows.num_rows()))
            .expect("evaluates");
        let value = datafusion::arrow::compute::cast(&value, &DataType::Utf8).expect("text");
        let value = value.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(value.value(0), "{\"tag\":\"a\",\"n\":1}");
        // An expression that does not run over the columns is refused, naming its setting.
        let config: KafkaSinkConfig =
            serde_yaml::from_str("bootstrap_servers: h:9092\ntopic: t\nkey: tag + 1")
                .expect("config");
        let err = Encoders::new(&config, &schema).err().expect("refused");
        assert!(err.contains("`key: tag + 1`"), "{err}");
        // `json_nulls` with a `value:` it would not apply to is refused.
        let config: KafkaSinkConfig = serde_yaml::from_str(
            "bootstrap_servers: h:9092\ntopic: t\nvalue: tag\njson_nulls: true",
        )
        .expect("config");
        let err = Encoders::new(&config, &schema).err().expect("refused");
        assert!(
            err.contains("`json_nulls: true` applies to the default value"),
            "{err}"
        );
    }
}
