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
                     overridden{}",
                    match key.as_str() {
                        "group.id" => {
                            "; a Kafka source commits its batches' offsets to the consumer \
                             group its `group_id:` names, for lag tools"
                        }
                        "isolation.level" => {
                            "; `read_committed: false` on a source reads the records of open \
                             and aborted transactions too"
                        }
                        "auto.offset.reset" => {
                            "; `starting_offsets:` says where a new checkpoint starts \
                             (`earliest`, `latest`, or an offset per partition)"
                        }
                        "transactional.id" => {
                            "; the sink's is made from the pipeline's id, so that a newer run \
                             fences an older one"
                        }
                        _ => "",
                    }
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
    // SASL settings without a SASL protocol are not used: a password given there would be
    // ignored without a word.
    let protocol = properties
        .get("security.protocol")
        .map(|p| p.to_ascii_uppercase())
        .unwrap_or_else(|| "PLAINTEXT".to_string());
    if let Some(key) = properties.keys().find(|k| k.starts_with("sasl."))
        && !protocol.starts_with("SASL_")
        && !protocol.contains("${")
    {
        return Err(ConfigError::at(
            &format!("properties.{key}"),
            format!(
                "`{key}` is set but `security.protocol` is {protocol}, under which librdkafka \
                 uses no SASL setting (the credentials would go unused): set \
                 `security.protocol: SASL_PLAINTEXT`, or remove the `sasl.*` properties"
            ),
        ));
    }
    // librdkafka checks each property as it is set, and says a value it refuses (a setting
    // this build lacks, an invalid value) with the value in its words: checked here, so that
    // the error names the key with a secret's or a `${VAR}`'s value as `***`.
    if let Err(rdkafka::error::KafkaError::ClientConfig(_, description, key, value)) =
        config.create_native_config()
    {
        let hidden = crate::secret::is_secret_property(&key)
            || properties.get(&key).is_some_and(|v| v.contains("${"));
        let said = if hidden && !value.is_empty() {
            description.replace(&value, "***")
        } else {
            description
        };
        let advice = if said.contains("OpenSSL not available") {
            " (this build of Sluice's Kafka client has no TLS: connect to a PLAINTEXT \
             listener, or SASL_PLAINTEXT with `sasl.mechanism: PLAIN`)"
        } else {
            ""
        };
        return Err(ConfigError::at(
            &format!("properties.{key}"),
            format!("{}{advice}", said.trim_end_matches('.')),
        ));
    }
    Ok(config)
}

/// Checks that some server of `bootstrap` (`host:port`, comma-separated, each perhaps with a
/// listener's `PLAINTEXT://` in front, `${VAR}` filled in from the environment, 9092 where no
/// port is given, as librdkafka reads them) takes a TCP connection within `timeout` (at most
/// 5 s), so that brokers not listening there are said in a second, where librdkafka would wait
/// out its request timeout (30 s and more) per attempt, logging each refused connection. The
/// servers are tried at once.
///
/// Errors: each server with why it did not connect (connection refused, no answer within the
/// timeout, a name that does not resolve). A list that does not read (a variable not set) is
/// left to the client, which names it.
pub async fn reachable(
    bootstrap: &str,
    timeout: std::time::Duration,
    plaintext: bool,
) -> Result<(), String> {
    let Ok(bootstrap) = crate::secret::expand_env(bootstrap) else {
        return Ok(());
    };
    let timeout = timeout.min(std::time::Duration::from_secs(5));
    let addresses: Vec<String> = bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|server| {
            let address = server.rsplit("://").next().unwrap_or(server);
            // `host`, `[::1]` and `::1` name no port; `host:9093` and `[::1]:9093` do.
            let has_port = match address.rsplit_once(':') {
                Some((host, port)) => {
                    port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
                }
                None => false,
            };
            if has_port {
                address.to_string()
            } else {
                format!("{address}:9092")
            }
        })
        .collect();
    if addresses.is_empty() {
        return Ok(());
    }
    let tries = addresses.iter().map(|address| async move {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address.as_str())).await
        {
            Ok(Ok(stream)) if plaintext => speaks_kafka(stream).await.map_err(|answer| {
                format!(
                    "{address}: a server answers there, but not as a Kafka broker ({answer}): \
                     another service's port?"
                )
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                // The system's words without their number ("Connection refused (os error
                // 111)"); a name that does not resolve says so.
                let text = e.to_string();
                let text = text.split(" (os error").next().unwrap_or(&text);
                Err(format!("{address}: {}", text.to_lowercase()))
            }
            Err(_) => Err(format!(
                "{address}: no answer within {}",
                humantime::format_duration(timeout)
            )),
        }
    });
    // The first server that answers ends the wait; all failing, each is said.
    use futures::StreamExt as _;
    let mut pending: futures::stream::FuturesUnordered<_> = tries.collect();
    let mut why = Vec::new();
    while let Some(tried) = pending.next().await {
        match tried {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e),
        }
    }
    why.sort();
    let answered = why.iter().any(|w| w.contains("not as a Kafka broker"));
    Err(format!(
        "{} ({}): is Kafka running there, and is that its listener's port (`listeners` in its \
         server.properties)?",
        if answered {
            "no Kafka broker answers"
        } else {
            "no broker takes a connection"
        },
        why.join("; ")
    ))
}

/// Whether the server at the other end of `stream` answers a Kafka request (`ApiVersions`
/// v0, the request every client sends first, answered before any authentication, KIP-35)
/// as a broker does: a response of a sane size carrying the request's correlation id. `Err`
/// with what it answered instead; `Ok` too where it does not answer within two seconds or
/// closes the connection without a word (not told apart: librdkafka's own tries say more).
async fn speaks_kafka(mut stream: tokio::net::TcpStream) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const CORRELATION: i32 = 0x534c_5543;
    let client_id = b"sluice";
    let mut request = Vec::with_capacity(20);
    let size = 2 + 2 + 4 + 2 + client_id.len();
    request.extend_from_slice(&i32::try_from(size).unwrap_or(0).to_be_bytes());
    request.extend_from_slice(&18_i16.to_be_bytes()); // ApiVersions
    request.extend_from_slice(&0_i16.to_be_bytes()); // version 0
    request.extend_from_slice(&CORRELATION.to_be_bytes());
    request.extend_from_slice(&i16::try_from(client_id.len()).unwrap_or(0).to_be_bytes());
    request.extend_from_slice(client_id);
    let exchange = async {
        stream.write_all(&request).await?;
        let mut head = [0_u8; 8];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let Ok(Ok(head)) = tokio::time::timeout(std::time::Duration::from_secs(2), exchange).await
    else {
        return Ok(());
    };
    let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if correlation == CORRELATION && (4..100_000_000).contains(&size) {
        return Ok(());
    }
    // What it said, as text where it is text (`HTTP/1.1 4`, PostgreSQL's `E` error).
    let shown: String = head
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect();
    Err(format!("its reply began `{shown}`"))
}

/// Whether a client with `properties` talks to the brokers without TLS (`security.protocol`
/// unset, `PLAINTEXT` or `SASL_PLAINTEXT`), so that [`reachable`] may send a Kafka request of
/// its own.
pub fn plaintext(properties: &BTreeMap<String, String>) -> bool {
    properties
        .get("security.protocol")
        .is_none_or(|p| !p.to_ascii_uppercase().contains("SSL"))
}

/// Words for a librdkafka error that say what it means for a pipeline, where its own do not:
/// `UnsupportedFeature` answers a client request sent to a port that is not a broker's
/// (a KRaft controller's, another service's).
pub fn kafka_advice(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(rdkafka::types::RDKafkaErrorCode::UnsupportedFeature) => {
            " (the server there does not answer Kafka's client requests: is that a KRaft \
             controller's port, or another service's? `bootstrap_servers` names a broker's \
             listener, as `listeners` in its server.properties gives it)"
        }
        _ => "",
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk 49 (1, 6): librdkafka's refusal of a property quoted its value, a `${VAR}`'s
    /// secret too ("ssl.key.password TopSecretZZ"), and `sasl.password` under the default
    /// PLAINTEXT protocol was ignored without a word. The value is `***`; the unused SASL
    /// setting is refused, naming the protocol to set.
    #[test]
    fn a_refused_property_hides_its_secret_and_an_unused_sasl_setting_is_refused() {
        let home = std::env::var("HOME").expect("HOME");
        assert!(home.len() > 1);
        for (key, value) in [
            ("ssl.key.password", "${HOME}"),
            ("security.protocol", "${HOME}"),
        ] {
            let properties = BTreeMap::from([(key.to_string(), value.to_string())]);
            let said = client_config("127.0.0.1:9092", &properties, &[])
                .expect_err("refused")
                .to_string();
            assert!(said.contains(key) && !said.contains(&home), "{said}");
        }
        let properties = BTreeMap::from([("sasl.password".to_string(), "${HOME}".to_string())]);
        let said = client_config("127.0.0.1:9092", &properties, &[])
            .expect_err("unused")
            .to_string();
        assert!(said.contains("security.protocol: SASL_PLAINTEXT"), "{said}");
        let properties = BTreeMap::from([
            (
                "security.protocol".to_string(),
                "SASL_PLAINTEXT".to_string(),
            ),
            ("sasl.mechanism".to_string(), "PLAIN".to_string()),
            ("sasl.username".to_string(), "app".to_string()),
            ("sasl.password".to_string(), "${HOME}".to_string()),
        ]);
        assert!(client_config("127.0.0.1:9092", &properties, &[]).is_ok());
    }

    #[test]
    fn a_port_that_is_not_a_brokers_is_said_as_one() {
        let unsupported =
            KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnsupportedFeature);
        assert!(kafka_advice(&unsupported).contains("a KRaft controller's port"));
        let down = KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(kafka_advice(&down), "");
    }

    #[tokio::test]
    async fn a_server_not_listening_is_named_at_once() {
        let started = std::time::Instant::now();
        let err = reachable(
            "PLAINTEXT://127.0.0.1:1, 127.0.0.1:2",
            std::time::Duration::from_secs(30),
            true,
        )
        .await
        .expect_err("nothing listens on ports 1 and 2");
        assert!(
            err.contains("127.0.0.1:1: connection refused")
                && err.contains("127.0.0.1:2: connection refused"),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let at = listener.local_addr().expect("address");
        reachable(
            &format!("127.0.0.1:1,{at}"),
            std::time::Duration::from_secs(5),
            true,
        )
        .await
        .expect("one listens");
    }

    /// Walk 57 (4): `bootstrap_servers` at another service's port (PostgreSQL's) took 93 s of
    /// librdkafka's retries and ended advising `receive.message.max.bytes`. A server that
    /// answers a Kafka request otherwise is said at once, with what it answered; one that
    /// answers as a broker passes.
    #[tokio::test]
    async fn a_server_that_is_not_kafka_is_said_at_once() {
        let at = serve(|_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()).await;
        let started = std::time::Instant::now();
        let err = reachable(&at.to_string(), std::time::Duration::from_secs(5), true)
            .await
            .expect_err("not Kafka");
        assert!(
            err.starts_with("no Kafka broker answers")
                && err.contains(&format!(
                    "{at}: a server answers there, but not as a Kafka broker (its reply began \
                     `HTTP/1.1`)"
                )),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Under TLS the probe is not sent (a TLS listener would not read it).
        reachable(&at.to_string(), std::time::Duration::from_secs(5), false)
            .await
            .expect("not probed");
        // A broker's answer: its size, then the request's correlation id.
        let at = serve(|request| {
            let mut reply = 6_i32.to_be_bytes().to_vec();
            reply.extend_from_slice(&request[8..12]);
            reply.extend_from_slice(&0_i16.to_be_bytes());
            reply
        })
        .await;
        reachable(&at.to_string(), std::time::Duration::from_secs(5), true)
            .await
            .expect("a broker's answer");
    }

    /// A server on a free local port that answers each connection's first 20 bytes (a
    /// request) with `reply` of them.
    async fn serve(reply: fn(&[u8]) -> Vec<u8>) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let at = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0_u8; 20];
                let _ = stream.read_exact(&mut request).await;
                let _ = stream.write_all(&reply(&request)).await;
            }
        });
        at
    }
}
