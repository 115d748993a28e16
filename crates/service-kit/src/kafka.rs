//! Kafka client settings: one place converts flags into librdkafka properties.

use std::time::Duration;

use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaResult;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

/// Broker connection settings shared by producer, consumer and admin clients.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    /// Topic of user events.
    #[arg(long = "kafka-topic", env = "KAFKA_TOPIC", default_value = events::TOPIC)]
    pub topic: String,

    /// Extra librdkafka properties as key=value, comma-separated (TLS, SASL, tuning).
    /// They override the platform's defaults.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ',',
        value_parser = parse_property,
        hide_env_values = true
    )]
    pub properties: Vec<(String, String)>,
}

/// Parses one `key=value` librdkafka property.
/// Blank text parses to an empty pair that sets nothing, so that `KAFKA_PROPERTIES=""`
/// (as deployment templates render an unset value) is accepted.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    if text.trim().is_empty() {
        return Ok((String::new(), String::new()));
    }
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{text}` has an empty key"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

impl KafkaArgs {
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            properties: Vec::new(),
        }
    }

    /// Base configuration: brokers, then the pass-through properties on top of `defaults`.
    fn config_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in self.properties.iter().filter(|(key, _)| !key.is_empty()) {
            config.set(key, value);
        }
        config
    }

    /// An idempotent producer that waits for all in-sync replicas: a retried send can
    /// never duplicate or reorder a message.
    pub fn producer_config(&self) -> ClientConfig {
        self.config_with(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", "lz4"),
            // The relay hands over a whole batch at once, so waiting for more messages
            // buys little; 5 ms was a third of the end-to-end latency (docs/benchmarks.md).
            ("linger.ms", "1"),
            ("message.timeout.ms", "15000"),
            ("socket.connection.setup.timeout.ms", "5000"),
        ])
    }

    /// A consumer in `group` that commits only offsets the service stored after handling.
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.config_with(&[
            ("enable.auto.offset.store", "false"),
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            // librdkafka prefetches up to 64 MiB of payload by default and fetches up to
            // 50 MiB at once; with small events its bookkeeping costs several times the
            // payload. 2 MiB in the queue and 1 MiB a fetch still hold a second of
            // catching up: RSS while catching up fell from 148 to 42 MiB at the same
            // rate (docs/benchmarks.md).
            ("queued.max.messages.kbytes", "2048"),
            ("fetch.max.bytes", "1048576"),
        ]);
        config.set("group.id", group);
        config
    }

    pub fn admin_config(&self) -> ClientConfig {
        self.config_with(&[])
    }
}

/// Creates `topics` with `partitions` and `replication`; existing topics are left alone.
pub async fn ensure_topics(
    args: &KafkaArgs,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = args.admin_config().create()?;
    let new_topics: Vec<_> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(replication)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions, replication, "topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(%topic, "topic exists")
            }
            Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// How long after a message is written the broker may still hand it out: it deletes a
/// log segment only when the segment's newest message is older than `retention.ms`, a
/// segment stays open for up to `segment.ms`, and the retention check runs every
/// `log.retention.check.interval.ms` (5 minutes by default, a broker setting that topics
/// cannot read; this margin assumes it).
pub const RETENTION_CHECK_MARGIN: Duration = Duration::from_secs(300);

/// The longest a message of `topic` can live on the brokers, from the topic's effective
/// configuration; `None` when messages are never deleted by age (`retention.ms=-1` or a
/// compacted topic).
pub async fn topic_message_life(args: &KafkaArgs, topic: &str) -> anyhow::Result<Option<Duration>> {
    let admin: AdminClient<DefaultClientContext> = args.admin_config().create()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options)
        .await?;
    let resource = described
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the broker described no configuration for {topic}"))?
        .map_err(|code| anyhow::anyhow!("cannot describe topic {topic}: {code}"))?;
    message_life(&resource)
}

fn message_life(resource: &ConfigResource) -> anyhow::Result<Option<Duration>> {
    let value = |name: &str| {
        resource
            .get(name)
            .and_then(|entry| entry.value.clone())
            .ok_or_else(|| anyhow::anyhow!("the topic's {name} is not readable"))
    };
    if !value("cleanup.policy")?
        .split(',')
        .any(|p| p.trim() == "delete")
    {
        return Ok(None);
    }
    let millis = |name: &str| -> anyhow::Result<i64> {
        let text = value(name)?;
        text.parse()
            .map_err(|_| anyhow::anyhow!("the topic's {name} is not a number: {text}"))
    };
    let retention = millis("retention.ms")?;
    if retention < 0 {
        return Ok(None);
    }
    let segment = millis("segment.ms")?.max(0);
    let open_and_kept = u64::try_from(retention.saturating_add(segment)).unwrap_or(u64::MAX);
    Ok(Some(
        Duration::from_millis(open_and_kept) + RETENTION_CHECK_MARGIN,
    ))
}

/// Readiness probe: broker metadata for `topic` within a short deadline. `fetch` is a
/// blocking librdkafka call, so it runs off the async workers.
pub async fn probe<F>(topic: String, fetch: F) -> Result<(), String>
where
    F: FnOnce(&str, Duration) -> KafkaResult<Metadata> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(move || {
        let metadata = fetch(&topic, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            Some(t) => Err(format!("topic {topic}: {:?}", t.error())),
            None => Err(format!("topic {topic} not found")),
        }
    });
    task.await.map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_config(entries: &[(&str, &str)]) -> ConfigResource {
        use rdkafka::admin::{ConfigEntry, ConfigSource, OwnedResourceSpecifier};
        ConfigResource {
            specifier: OwnedResourceSpecifier::Topic("t".to_owned()),
            entries: entries
                .iter()
                .map(|(name, value)| ConfigEntry {
                    name: (*name).to_owned(),
                    value: Some((*value).to_owned()),
                    source: ConfigSource::Default,
                    is_read_only: false,
                    is_default: true,
                    is_sensitive: false,
                })
                .collect(),
        }
    }

    #[test]
    fn a_message_lives_for_retention_plus_an_open_segment_plus_the_check_margin() {
        let life = |policy, retention, segment| {
            message_life(&topic_config(&[
                ("cleanup.policy", policy),
                ("retention.ms", retention),
                ("segment.ms", segment),
            ]))
        };
        assert_eq!(
            life("delete", "300000", "60000").expect("readable"),
            Some(Duration::from_secs(360) + RETENTION_CHECK_MARGIN)
        );
        assert_eq!(
            life("compact,delete", "1000", "0").expect("readable"),
            Some(Duration::from_secs(1) + RETENTION_CHECK_MARGIN)
        );
        assert_eq!(life("delete", "-1", "60000").expect("readable"), None);
        assert_eq!(life("compact", "300000", "60000").expect("readable"), None);
        assert!(life("delete", "soon", "60000").is_err());
        assert!(message_life(&topic_config(&[("cleanup.policy", "delete")])).is_err());
    }

    #[test]
    fn properties_parse_and_override_defaults() {
        let mut args = KafkaArgs::new("b:9092", "t");
        args.properties = vec![
            parse_property("security.protocol=SASL_SSL").expect("valid"),
            parse_property("linger.ms = 50").expect("valid"),
        ];
        let config = args.producer_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
    }

    #[test]
    fn malformed_properties_are_rejected() {
        assert!(parse_property("no-equals").is_err());
        assert!(parse_property("=value").is_err());
    }

    #[test]
    fn a_blank_property_list_sets_nothing() {
        let mut args = KafkaArgs::new("b:9092", "t");
        args.properties = vec![parse_property("").expect("blank is accepted")];
        let config = args.producer_config();
        assert_eq!(config.get(""), None);
        assert_eq!(config.get("acks"), Some("all"));
    }

    #[test]
    fn consumers_store_offsets_by_hand() {
        let config = KafkaArgs::new("b:9092", "t").consumer_config("g");
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("g"));
    }
}
