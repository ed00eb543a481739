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
/// set), nor the brokers, nor a secret (a key naming a password, secret or key material) other
/// than as an environment variable `${VAR}`; the error names the key.
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
        // A secret written as is would be kept in the checkpoint's copy of the pipeline file.
        let secret = ["password", "secret", ".pem", "sasl.jaas.config"]
            .iter()
            .any(|part| key.contains(part));
        let value = &properties[key];
        let named =
            value.starts_with("${") && value.ends_with('}') && value.matches("${").count() == 1;
        if secret && !named {
            return Err(ConfigError::at(
                &format!("properties.{key}"),
                format!(
                    "`{key}` is a secret written as is: it would be kept in the checkpoint's copy \
                     of the pipeline file; name an environment variable instead (`{key}: \
                     ${{KAFKA_SECRET}}`), filled in when connecting"
                ),
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
            KafkaError::PartitionEOF(_) => tracing::trace!("librdkafka: {reason}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_property_must_name_an_environment_variable() {
        let props = |key: &str, value: &str| BTreeMap::from([(key.to_string(), value.to_string())]);
        for (key, value) in [
            ("sasl.password", "hunter2"),
            ("ssl.key.password", "${A}x"),
            ("sasl.oauthbearer.client.secret", "s"),
            ("ssl.key.pem", "-----BEGIN"),
        ] {
            let e = check_properties(&props(key, value), &[])
                .expect_err(key)
                .to_string();
            assert!(e.contains("environment variable"), "{key}: {e}");
        }
        for (key, value) in [
            ("sasl.password", "${KAFKA_PASSWORD}"),
            ("sasl.username", "alice"),
            ("security.protocol", "SASL_PLAINTEXT"),
        ] {
            check_properties(&props(key, value), &[]).expect(key);
        }
    }
}
