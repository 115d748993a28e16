//! `platformctl predict`: prediction requests over Kafka, answers matched by request id.
//!
//! The answer partitions are assigned at their current end before anything is sent, so
//! no answer can be missed and none of an earlier run is read. Requests come from
//! `--features` (13 comma-separated numbers, repeatable), a CSV file (13 columns, an
//! optional header line) or a JSON-lines file (each line a request body, `request_id`
//! added when absent). A repeat answer (a request answered twice after a redelivery) is
//! recognised by its request id and shown once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use service_kit::kafka::KafkaArgs;
use uuid::Uuid;

/// Where prediction requests go and their answers come back: shared by `predict` and
/// `load --target predict-kafka`, so both speak to the prediction-service the same way.
#[derive(Debug, Clone, Args)]
pub struct RequestReplyArgs {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// Topic of prediction requests.
    #[arg(long, default_value = "prediction_requests")]
    pub request_topic: String,

    /// Topic the answers are read from (sent as the requests' `reply-to` header).
    #[arg(long, default_value = "prediction_results")]
    pub reply_topic: String,
}

impl RequestReplyArgs {
    /// Kafka settings whose consumer side reads the reply topic.
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs::new(self.brokers.clone(), self.reply_topic.clone())
    }
}

#[derive(Debug, Parser)]
pub struct PredictArgs {
    #[command(flatten)]
    topics: RequestReplyArgs,

    /// One request: 13 comma-separated feature values (repeat for more).
    #[arg(long, value_name = "F1,...,F13", allow_hyphen_values = true)]
    features: Vec<String>,

    /// A CSV file of 13 columns per request (a header line is skipped).
    #[arg(long)]
    csv: Option<PathBuf>,

    /// A file of request bodies, one JSON object per line.
    #[arg(long)]
    jsonl: Option<PathBuf>,

    /// Seconds to wait for all answers.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,

    /// Print each answer as a JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: PredictArgs) -> anyhow::Result<()> {
    let requests = requests(&args)?;
    if requests.is_empty() {
        bail!("no requests: give --features, --csv or --jsonl");
    }
    let kafka = args.topics.kafka();
    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let answers = listen_at_end(&kafka, timeout).await?;
    let producer: FutureProducer = kafka.producer_config().create()?;
    let ids: Vec<String> = requests.iter().map(|(id, _)| id.clone()).collect();
    for (id, body) in &requests {
        let payload = serde_json::to_vec(body)?;
        let headers = OwnedHeaders::new().insert(Header {
            key: "reply-to",
            value: Some(args.topics.reply_topic.as_bytes()),
        });
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&args.topics.request_topic)
            .key(id.as_str())
            .payload(payload.as_slice())
            .headers(headers);
        producer
            .send(record, Timeout::After(timeout))
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("cannot send request {id}"))?;
    }
    let received = collect(&answers, &ids, timeout).await;
    report(&ids, &received, args.json)
}

/// Request bodies with their ids, from every source given.
fn requests(args: &PredictArgs) -> anyhow::Result<Vec<(String, Value)>> {
    let mut rows: Vec<Value> = Vec::new();
    for text in &args.features {
        rows.push(json!({ "features": numbers(text)? }));
    }
    if let Some(path) = &args.csv {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match numbers(line) {
                Ok(values) => rows.push(json!({ "features": values })),
                Err(_) if i == 0 => {} // a header line
                Err(error) => bail!("{} line {}: {error}", path.display(), i + 1),
            }
        }
    }
    if let Some(path) = &args.jsonl {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value: Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
            rows.push(value);
        }
    }
    Ok(rows
        .into_iter()
        .map(|mut body| {
            let id = match body.get("request_id").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => {
                    let id = Uuid::new_v4().to_string();
                    if let Some(object) = body.as_object_mut() {
                        object.insert("request_id".to_owned(), json!(id));
                    }
                    id
                }
            };
            (id, body)
        })
        .collect())
}

/// Comma-separated numbers (the service checks that there are 13 of them).
fn numbers(text: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .with_context(|| format!("`{}` is not a number", v.trim()))
        })
        .collect()
}

/// A consumer of every partition of the answer topic, from its current end.
pub(crate) async fn listen_at_end(
    kafka: &KafkaArgs,
    timeout: Duration,
) -> anyhow::Result<StreamConsumer> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let group = format!("platformctl-predict-{}", Uuid::new_v4().simple());
        let probe: BaseConsumer = kafka.consumer_config(&group).create()?;
        let metadata = probe
            .fetch_metadata(Some(&kafka.topic), timeout)
            .with_context(|| {
                format!("no answer from the brokers at {}", kafka.bootstrap_servers)
            })?;
        let topic = metadata
            .topics()
            .first()
            .filter(|t| !t.partitions().is_empty());
        let Some(topic) = topic else {
            bail!("topic {} does not exist", kafka.topic);
        };
        let mut assignment = TopicPartitionList::new();
        for partition in topic.partitions() {
            let (_, high) = probe.fetch_watermarks(&kafka.topic, partition.id(), timeout)?;
            assignment.add_partition_offset(&kafka.topic, partition.id(), Offset::Offset(high))?;
        }
        let consumer: StreamConsumer = kafka.consumer_config(&group).create()?;
        consumer.assign(&assignment)?;
        Ok(consumer)
    })
    .await?
}

/// Answers to `ids` by request id (the first of each), until all came or `timeout`.
async fn collect(
    consumer: &StreamConsumer,
    ids: &[String],
    timeout: Duration,
) -> HashMap<String, Value> {
    let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut received = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while received.len() < wanted.len() {
        let Ok(Ok(message)) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
            break;
        };
        let Ok(answer) = serde_json::from_slice::<Value>(message.payload().unwrap_or_default())
        else {
            continue;
        };
        if let Some(id) = answer["request_id"]
            .as_str()
            .filter(|id| wanted.contains(id))
        {
            received.entry(id.to_owned()).or_insert(answer);
        }
    }
    received
}

fn report(ids: &[String], received: &HashMap<String, Value>, as_json: bool) -> anyhow::Result<()> {
    let mut missing = 0;
    for id in ids {
        match received.get(id) {
            Some(answer) if as_json => println!("{answer}"),
            Some(answer) if answer["status"] == "success" => println!(
                "{id}  class {}  probabilities {}",
                answer["prediction"], answer["probabilities"]
            ),
            Some(answer) => println!("{id}  error: {}", answer["error"].as_str().unwrap_or("?")),
            None => {
                missing += 1;
                if as_json {
                    println!("{}", json!({"request_id": id, "status": "timeout"}));
                } else {
                    println!("{id}  no answer within the timeout");
                }
            }
        }
    }
    if missing > 0 {
        bail!("{missing} of {} requests unanswered", ids.len());
    }
    Ok(())
}
