//! The prediction-service as a separate process, SIGKILLed in the middle of a stream of
//! Kafka requests and started again: every request is answered, and a request answered
//! twice (redelivered after the kill) gets the same answer.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use service_kit::testing::eventually;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::harness::{self, Stack};

const REQUESTS: usize = 3000;

/// The wine rows and scikit-learn's class for each (models/train.sh wrote them).
fn rows() -> Vec<(Value, i64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/wine-forest-parity.json"
    );
    let parity: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("parity file")).expect("json");
    parity["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["features"].clone(),
                row["class"].as_i64().expect("class"),
            )
        })
        .collect()
}

/// Every answer on `topic`, by request id, read from the beginning by a group of its own.
fn read_answers(stack: &Stack, topic: &str) -> std::sync::Arc<Mutex<HashMap<String, Vec<Value>>>> {
    let mut args = stack.kafka.args.clone();
    args.topic = topic.to_owned();
    let consumer: StreamConsumer = args
        .consumer_config(&format!("answers-{}", Uuid::new_v4().simple()))
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let answers = std::sync::Arc::new(Mutex::new(HashMap::<String, Vec<Value>>::new()));
    let collected = answers.clone();
    tokio::spawn(async move {
        while let Ok(message) = consumer.recv().await {
            let answer: Value =
                serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or_default();
            if let Some(id) = answer["request_id"].as_str() {
                collected
                    .lock()
                    .await
                    .entry(id.to_owned())
                    .or_default()
                    .push(answer);
            }
        }
    });
    answers
}

#[tokio::test]
async fn a_prediction_service_killed_mid_stream_answers_every_request_after_its_restart() {
    let stack = Stack::new().await;
    let results = format!("{}.results", stack.kafka.args.topic);
    stack.kafka.create_topics(&[results.as_str()], 6).await;
    let answers = read_answers(&stack, &results);
    let mut first = Some(stack.prediction_service(&results).await);

    let rows = rows();
    let producer: FutureProducer = stack
        .kafka
        .args
        .producer_config()
        .create()
        .expect("producer");
    let mut expected = HashMap::new();
    let send = |i: usize| {
        let (features, class) = &rows[i % rows.len()];
        let id = Uuid::new_v4().to_string();
        let body = json!({"request_id": id, "features": features}).to_string();
        (id, *class, body)
    };
    for i in 0..REQUESTS {
        let (id, class, body) = send(i);
        let record = FutureRecord::to(&stack.kafka.args.topic)
            .key(&id)
            .payload(&body);
        producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .expect("request sent");
        expected.insert(id, class);
        if i == REQUESTS / 3 {
            // Killed once some answers are out: nothing flushed or committed on the way.
            let answering =
                eventually(harness::WAIT, || async { !answers.lock().await.is_empty() }).await;
            assert!(answering, "the first instance answers");
            first.take().expect("killed once").kill();
        }
    }
    let answered_before_restart = answers.lock().await.len();
    let second = stack.prediction_service(&results).await;
    let all = eventually(harness::WAIT, || async {
        answers.lock().await.len() >= expected.len()
    })
    .await;
    let answers = answers.lock().await;
    let repeated = answers.values().filter(|list| list.len() > 1).count();
    eprintln!(
        "prediction-service killed after {} of {REQUESTS} requests were sent: {answered_before_restart} answered before the restart, {} in all, {repeated} answered twice",
        REQUESTS / 3 + 1,
        answers.len()
    );
    assert!(all, "every request answered after the restart");
    for (id, class) in &expected {
        let list = &answers[id];
        assert!(
            list.iter()
                .all(|a| a["status"] == "success" && a["prediction"] == *class),
            "request {id}: every answer is scikit-learn's class {class}: {list:?}"
        );
    }
    drop(second);
}
