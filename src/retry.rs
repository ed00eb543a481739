//! Bounded retries with a doubling backoff, as every connector that talks to a server uses
//! them (`retry:` in a Kafka or PostgreSQL source or sink).

use std::time::Duration;

use serde::Deserialize;

/// The settings of the retries around each request a connector makes to its server: a failed attempt is
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

/// Durations as pipeline files write them (`500ms`, `2s`, `1m`; [`crate::duration`]: no months
/// or years, which audit 88a found taken here).
mod duration_text {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        crate::duration::deserialize(d)
    }
}

impl RetrySettings {
    /// Checks the settings, naming the key under `retry` that is wrong.
    pub fn check(&self) -> Result<(), SettingError> {
        if self.attempts == 0 {
            return Err(SettingError {
                key: "retry.attempts",
                message: "`retry.attempts` must be at least 1",
            });
        }
        if self.timeout.is_zero() {
            return Err(SettingError {
                key: "retry.timeout",
                message: "`retry.timeout` must be more than 0",
            });
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

/// A retry setting that does not fit: its key (relative to the connector's settings) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key, e.g. `retry.attempts`.
    pub key: &'static str,
    /// What is wrong.
    pub message: &'static str,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Audit 88a: `retry:` took `1M` as a month and `1y` as a year, which every other duration
    /// of a pipeline file refuses.
    #[test]
    fn retry_durations_read_as_every_other_duration() {
        let read = |yaml: &str| serde_yaml::from_str::<RetrySettings>(yaml);
        let settings = read("{ backoff: 200ms, timeout: 1m }").expect("durations");
        assert_eq!(settings.backoff, Duration::from_millis(200));
        assert_eq!(settings.timeout, Duration::from_secs(60));
        for yaml in ["{ timeout: 1M }", "{ backoff: 1y }"] {
            let err = read(yaml).expect_err(yaml).to_string();
            assert!(err.contains("has no fixed length"), "{err}");
        }
        let err = read("{ timeout: 10 }").expect_err("no unit").to_string();
        assert!(err.contains("a number needs a unit"), "{err}");
    }
}
