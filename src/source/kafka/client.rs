//! What the Kafka source and the Kafka sink (`sink::kafka`) share (feature `kafka`): client settings, bounded retries,
//! and running librdkafka's blocking calls off the async runtime.
//!
//! Both connectors talk to the brokers through librdkafka (the `rdkafka` crate). Client
//! properties a pipeline names under `properties:` are librdkafka's own
//! (<https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md>), passed through
//! as written; Sluice sets only what its exactly-once protocol needs and refuses to have those
//! overridden.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use serde::Deserialize;

use crate::source::ConfigError;

/// The settings of the retries around each Kafka operation of a batch: a failed attempt is
/// retried after `backoff`, doubled each time, at most `attempts` times in all; each attempt
/// gives up after `timeout`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all (at least 1); 3 by default.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The wait before the second attempt, doubled before each later one; `1s` by default.
    #[serde(default = "default_backoff", with = "duration_text")]
    pub backoff: Duration,
    /// How long one attempt may take (a request to the brokers, a read of a batch's range,
    /// a transaction's commit); `30s` by default.
    #[serde(default = "default_timeout", with = "duration_text")]
    pub timeout: Duration,
}

fn default_attempts() -> u32 {
    3
}

fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff: default_backoff(),
            timeout: default_timeout(),
        }
    }
}

/// Durations written as humantime text (`500ms`, `2s`, `1m`).
mod duration_text {
    use std::time::Duration;

    use serde::Deserialize;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not a duration ({e}); e.g. 500ms, 2s"))
        })
    }
}

impl RetrySettings {
    /// Checks the settings, naming the key under `retry` that is wrong.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.attempts == 0 {
            return Err(ConfigError::at(
                "retry.attempts",
                "`retry.attempts` must be at least 1",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::at(
                "retry.timeout",
                "`retry.timeout` must be more than 0",
            ));
        }
        Ok(())
    }

    /// Runs `attempt` until it succeeds, fails with an error `retriable` says is not worth
    /// retrying, or has failed `attempts` times; the last error, with how many attempts were
    /// made when there were several.
    pub async fn run<T, E, F, Fut>(
        &self,
        what: &str,
        retriable: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut backoff = self.backoff;
        let mut made = 0;
        loop {
            made += 1;
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) if made < self.attempts && retriable(&error) => {
                    tracing::warn!(
                        "{what} failed (attempt {made} of {}): {error}; retrying in {}",
                        self.attempts,
                        humantime::format_duration(backoff)
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(error) => {
                    return Err(RetryError {
                        attempts: made,
                        error,
                    });
                }
            }
        }
    }
}

/// The last error of an operation retried [`RetrySettings::run`]'s way.
#[derive(Debug)]
pub struct RetryError<E> {
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: E,
}

impl<E: std::fmt::Display> std::fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.attempts > 1 {
            write!(f, "{} (after {} attempts)", self.error, self.attempts)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

impl<E: std::fmt::Display + std::fmt::Debug> std::error::Error for RetryError<E> {}

/// A client configuration for `bootstrap_servers` with the pipeline's `properties` (which
/// may not set any of `reserved`: those are Sluice's to set), naming the key that is wrong.
pub fn client_config(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
    reserved: &[&str],
) -> Result<ClientConfig, ConfigError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers);
    // librdkafka's own log goes to the `log` crate, which nothing here reads: errors reach
    // Sluice as results instead.
    config.set("log_level", "3");
    for (key, value) in properties {
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
