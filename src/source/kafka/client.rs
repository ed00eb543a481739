//! What the Kafka source and the Kafka sink (`sink::kafka`) share (feature `kafka`): client
//! settings, and running librdkafka's blocking calls off the async runtime.
//!
//! Both connectors talk to the brokers through librdkafka (the `rdkafka` crate). Client
//! properties a pipeline names under `properties:` are librdkafka's own
//! (<https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md>), passed through
//! as written; Sluice sets only what its exactly-once protocol needs and refuses to have those
//! overridden.

use std::collections::BTreeMap;

use crate::source::ConfigError;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};

/// Checks the pipeline's `properties`: none may set any of `reserved` (those are Sluice's to
/// set), nor the brokers; the error names the key. (A secret among them is checked by
/// `Pipeline::check_secrets`, on the user's own file only.)
pub fn check_properties(
    properties: &BTreeMap<String, String>,
    reserved: &[&str],
) -> Result<(), ConfigError> {
    for key in properties.keys() {
        if key == "bootstrap.servers" {
            return Err(ConfigError::at(
                &format!("properties.{key}"),
                "set the brokers with `bootstrap_servers`, not under `properties`",
            ));
        }
        if reserved.contains(&key.as_str()) {
            return Err(ConfigError::at(
                &format!("properties.{key}"),
                format!(
                    "`{key}` is set by Sluice for exactly-once reading and writing and cannot be \
                     overridden"
                ),
            ));
        }
    }
    Ok(())
}

/// A client configuration for `bootstrap_servers` with the pipeline's `properties` (checked by
/// [`check_properties`]), each `${VAR}` in them filled in from the environment
/// ([`crate::secret`]), so a password need not be written in the pipeline file; the error
/// names the key that is wrong.
pub fn client_config(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
    reserved: &[&str],
) -> Result<ClientConfig, ConfigError> {
    check_properties(properties, reserved)?;
    let mut config = ClientConfig::new();
    let brokers = crate::secret::expand_env(bootstrap_servers)
        .map_err(|e| ConfigError::at("bootstrap_servers", e))?;
    config.set("bootstrap.servers", brokers);
    // librdkafka's own log goes to the `log` crate, which nothing here reads: errors reach
    // Sluice as results instead.
    config.set("log_level", "3");
    for (key, value) in properties {
        let value = crate::secret::expand_env(value)
            .map_err(|e| ConfigError::at(&format!("properties.{key}"), e))?;
        config.set(key, value);
    }
    Ok(config)
}

/// Runs a blocking librdkafka call on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A consumer context that keeps librdkafka's end-of-partition events out of the log: Sluice
/// reads them as the end of a range, not as errors.
#[derive(Debug, Clone, Copy)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            // Said per partition, or (as librdkafka's error callback says it) as a "global"
            // error with the same code.
            KafkaError::PartitionEOF(_)
            | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF) => {
                tracing::trace!("librdkafka: {reason}")
            }
            other => tracing::warn!("librdkafka: {other}: {reason}"),
        }
    }
}

impl ConsumerContext for QuietContext {}

/// A consumer that reads exact ranges.
pub type RangeConsumer = BaseConsumer<QuietContext>;

/// Makes a [`RangeConsumer`] from `config`.
pub fn range_consumer(config: &ClientConfig) -> KafkaResult<RangeConsumer> {
    config.create_with_context(QuietContext)
}
