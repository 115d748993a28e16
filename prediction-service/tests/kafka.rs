//! Kafka request/reply against the embedded or the real broker
//! (`PLATFORM_TEST_BACKEND`), with the committed model.

mod helpers;

use std::collections::HashSet;

use prediction_service::model::onnx::{ModelProto, StringStringEntryProto};
use prost::Message as _;
use rdkafka::Message;
use serde_json::json;

use helpers::{Backends, WAIT, header, parity_rows, request, spawn_app};

#[tokio::test]
async fn requests_are_answered_on_the_result_topic_keyed_by_request_id() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let producer = backends.producer();
    let (_, rows) = parity_rows();
    let mut ids = Vec::new();
    for row in &rows {
        let (id, body) = request(&row.raw);
        producer.send_json(&body).await;
        ids.push(id);
    }
    let mut results = backends.reader(&backends.results);
    let answers = results.answers(&ids).await;
    for (id, row) in ids.iter().zip(&rows) {
        let answer = &answers[id][0];
        assert_eq!(answer["status"], "success");
        assert_eq!(answer["prediction"], row.class, "{answer}");
        assert_eq!(answer["model_version"], "1");
    }
    for message in &results.seen {
        let key = String::from_utf8_lossy(message.key().expect("key")).into_owned();
        assert_eq!(
            header(message, "correlation-id").as_deref(),
            Some(key.as_str())
        );
    }
    assert!(app.metric("prediction_batch_size_count").await >= 1.0);
    app.stop().await;
}

#[tokio::test]
async fn reply_to_and_correlation_id_headers_are_honoured() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let producer = backends.producer();
    let (_, rows) = parity_rows();
    let (id, body) = request(&rows[0].raw);
    let payload = serde_json::to_vec(&body).expect("json");
    producer
        .send(
            &payload,
            &[("reply-to", &backends.replies), ("correlation-id", "c-42")],
        )
        .await;
    let (other, body) = request(&rows[1].raw);
    let payload = serde_json::to_vec(&body).expect("json");
    producer
        .send(&payload, &[("reply-to", "user-events")])
        .await;

    let mut replies = backends.reader(&backends.replies);
    let answers = replies.answers(std::slice::from_ref(&id)).await;
    assert_eq!(answers[&id][0]["prediction"], rows[0].class);
    assert_eq!(
        header(&replies.seen[0], "correlation-id").as_deref(),
        Some("c-42")
    );

    let mut results = backends.reader(&backends.results);
    let answers = results.answers(std::slice::from_ref(&other)).await;
    let refused = &answers[&other][0];
    assert_eq!(refused["status"], "error");
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("reply-to topic \"user-events\" is not allowed")
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_error_answers_and_poison_is_dead_lettered_while_the_stream_goes_on() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.max_request_bytes = 1024;
    let app = spawn_app(&config).await;
    let producer = backends.producer();
    let id = || uuid::Uuid::new_v4().to_string();

    let (count, nan, text, non_uuid) = (id(), id(), id(), "order-17".to_owned());
    let answerable = [
        (
            json!({"request_id": count, "features": [1, 2]}).to_string(),
            &count,
            "features: expected 13 values, got 2",
        ),
        (
            format!(r#"{{"request_id": "{nan}", "features": [1,1,1,1,NaN,1,1,1,1,1,1,1,1]}}"#),
            &nan,
            "features[4]: (magnesium) is NaN: values must be finite",
        ),
        (
            json!({"request_id": text, "features": {"alcohol": "x"}}).to_string(),
            &text,
            "features.alcohol: must be a number, got a string",
        ),
        (
            json!({"request_id": non_uuid, "features": vec![1; 13]}).to_string(),
            &non_uuid,
            "request_id: is not a UUID",
        ),
    ];
    let poison: [(Vec<u8>, &str); 4] = [
        (b"{this is not json".to_vec(), "not JSON"),
        (
            json!({"features": vec![1; 13]}).to_string().into_bytes(),
            "no request id to answer: request_id: is missing",
        ),
        (b"[1, 2, 3]".to_vec(), "no request id to answer"),
        (
            vec![b' '; 2000],
            "message of 2000 bytes is over the 1024-byte limit",
        ),
    ];
    for (payload, _) in &poison {
        producer.send(payload, &[]).await;
    }
    for (payload, _, _) in &answerable {
        producer.send(payload.as_bytes(), &[]).await;
    }
    let (_, rows) = parity_rows();
    let (good, body) = request(&rows[100].raw);
    producer.send_json(&body).await;

    let mut ids: Vec<String> = answerable.iter().map(|(_, id, _)| (*id).clone()).collect();
    ids.push(good.clone());
    let answers = backends.reader(&backends.results).answers(&ids).await;
    for (_, id, error) in &answerable {
        let answer = &answers[*id][0];
        assert_eq!(answer["status"], "error", "{answer}");
        assert!(
            answer["error"].as_str().expect("error").contains(error),
            "{answer} lacks {error}"
        );
    }
    assert_eq!(answers[&good][0]["prediction"], rows[100].class);

    let mut dlq = backends.reader(&backends.dlq());
    let dead = dlq.until(|seen| seen.len() >= poison.len()).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| header(m, "dlq.reason").expect("reason"))
        .collect();
    for (_, reason) in &poison {
        assert!(
            reasons.iter().any(|r| r.contains(reason)),
            "{reason} not in {reasons:?}"
        );
    }
    let dead_lettered = r#"predictions_total{outcome="dead_lettered",transport="kafka"}"#;
    assert!(
        service_kit::testing::eventually(WAIT, || async { app.metric(dead_lettered).await >= 4.0 })
            .await,
        "dead letters not counted"
    );
    app.stop().await;
}

/// The committed model with its version property set to `version` (new bytes, same trees).
fn model_version(version: &str) -> Vec<u8> {
    let mut proto = ModelProto::decode(helpers::model_bytes().as_slice()).expect("decode");
    proto.metadata_props.retain(|p| p.key != "version");
    proto.metadata_props.push(StringStringEntryProto {
        key: "version".to_owned(),
        value: version.to_owned(),
    });
    proto.encode_to_vec()
}

#[tokio::test]
async fn a_bad_model_file_is_refused_and_a_good_one_replaces_the_model() {
    let backends = Backends::new().await;
    let app = spawn_app(&backends.config()).await;
    let reloads = |outcome: &'static str| {
        let app = &app;
        async move {
            app.metric(&format!(r#"model_reloads_total{{outcome="{outcome}"}}"#))
                .await
        }
    };
    let version = || async {
        app.get("/model", None)
            .await
            .json::<serde_json::Value>()
            .await
            .expect("json")["version"]
            .clone()
    };

    // Written in place, like an editor would: a truncated file.
    let bytes = helpers::model_bytes();
    std::fs::write(backends.model_path(), &bytes[..bytes.len() / 3]).expect("write");
    assert!(
        service_kit::testing::eventually(WAIT, || async { reloads("failure").await >= 1.0 }).await
    );
    assert_eq!(version().await, "1", "the previous model keeps serving");

    let producer = backends.producer();
    let (_, rows) = parity_rows();
    let (first, body) = request(&rows[10].raw);
    producer.send_json(&body).await;
    let mut results = backends.reader(&backends.results);
    let answers = results.answers(std::slice::from_ref(&first)).await;
    assert_eq!(answers[&first][0]["model_version"], "1");

    // Replaced atomically, as Kubernetes does for a ConfigMap.
    let staged = backends.model_dir.path().join("staged.onnx");
    std::fs::write(&staged, model_version("2")).expect("write");
    std::fs::rename(&staged, backends.model_path()).expect("rename");
    assert!(
        service_kit::testing::eventually(WAIT, || async { reloads("success").await >= 1.0 }).await
    );
    assert_eq!(version().await, "2");
    assert_eq!(reloads("failure").await, 1.0, "the bad file is not retried");
    let info = app.metrics().await;
    assert!(
        info.contains(r#"version="2"} 1"#) && !info.contains(r#"version="1"} 1"#),
        "{info}"
    );

    let (second, body) = request(&rows[10].raw);
    producer.send_json(&body).await;
    let answers = results.answers(std::slice::from_ref(&second)).await;
    assert_eq!(answers[&second][0]["model_version"], "2");
    assert_eq!(answers[&second][0]["prediction"], rows[10].class);
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_share_the_group_and_every_request_is_answered() {
    let backends = Backends::new().await;
    let config = backends.config();
    let (a, b) = (spawn_app(&config).await, spawn_app(&config).await);
    let producer = backends.producer();
    let (_, rows) = parity_rows();
    let mut ids = Vec::new();
    // Requests until both replicas answered some: both got partitions.
    let both = async {
        loop {
            for row in rows.iter().take(20) {
                let (id, body) = request(&row.raw);
                producer.send_json(&body).await;
                ids.push(id);
            }
            if a.kafka_answered().await > 0.0 && b.kafka_answered().await > 0.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT * 2, both)
        .await
        .expect("both replicas answer");
    let answers = backends.reader(&backends.results).answers(&ids).await;
    let answered: HashSet<_> = answers.keys().collect();
    assert!(ids.iter().all(|id| answered.contains(id)));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_killed_replica_loses_no_request() {
    let backends = Backends::new().await;
    let config = backends.config();
    let first = spawn_app(&config).await;
    let producer = backends.producer();
    let (_, rows) = parity_rows();
    let mut ids = Vec::new();
    for row in &rows {
        let (id, body) = request(&row.raw);
        producer.send_json(&body).await;
        ids.push(id);
    }
    assert!(
        service_kit::testing::eventually(WAIT, || async { first.kafka_answered().await > 0.0 })
            .await
    );
    // Killed mid-stream: nothing flushed or committed on the way out.
    first.abort();
    for row in &rows {
        let (id, body) = request(&row.raw);
        producer.send_json(&body).await;
        ids.push(id);
    }
    let second = spawn_app(&config).await;
    let answers = backends.reader(&backends.results).answers(&ids).await;
    assert_eq!(answers.len(), ids.len(), "every request answered");
    for (i, id) in ids.iter().enumerate() {
        let class = rows[i % rows.len()].class;
        assert!(
            answers[id].iter().all(|a| a["prediction"] == class),
            "a repeat answer is the same answer"
        );
    }
    second.stop().await;
}
