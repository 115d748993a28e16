//! Delivery channels against real receivers: an SMTP server (aiosmtpd) and an HTTP
//! webhook receiver, including retries and dead-lettering when the receiver fails.

mod helpers;

use helpers::{
    Backends, SmtpSink, WAIT, WebhookReceiver, dead_letters, event, expected_signature, header,
    spawn_app,
};
use notification_service::delivery::{ChannelKind, Secret, SmtpTls};
use rdkafka::Message;
use service_kit::testing::eventually;

const SECRET: &str = "webhook-test-secret";

fn webhook_config(backends: &Backends, receiver: &WebhookReceiver) -> notification_service::Config {
    let mut config = backends.config();
    config.channel = ChannelKind::Webhook;
    config.webhook.webhook_url = Some(receiver.url.clone());
    config.webhook.webhook_secret = Some(Secret::new(SECRET));
    config.webhook.webhook_timeout_ms = 2_000;
    config
}

#[tokio::test]
async fn smtp_sends_a_welcome_email_with_text_and_escaped_html_parts() {
    let sink = SmtpSink::start();
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.channel = ChannelKind::Smtp;
    config.smtp.smtp_host = "127.0.0.1".to_owned();
    config.smtp.smtp_port = Some(sink.port);
    config.smtp.smtp_tls = SmtpTls::None;
    config.smtp.smtp_username = Some("mailer".to_owned());
    config.smtp.smtp_password = Some(Secret::new("mail-password"));
    config.smtp.smtp_from = "Platform <welcome@platform.test>".to_owned();
    let app = spawn_app(&config).await;
    let (attributes, mut body) = event(1);
    body.user_name = "Ann <script>alert(1)</script> & Co".to_owned();
    body.email = "ann@example.com".to_owned();
    backends.producer().publish(&attributes, &body).await;

    assert!(app.wait_delivered(1.0).await, "delivered through SMTP");
    let emails = sink.emails();
    assert_eq!(emails.len(), 1, "one email: {emails:?}");
    let email = &emails[0];
    assert_eq!(email["rcpt_tos"], serde_json::json!(["ann@example.com"]));
    assert_eq!(email["mail_from"], "welcome@platform.test");
    assert_eq!(email["login"], "mailer", "authenticated with SMTP_USERNAME");
    assert!(
        email["to"]
            .as_str()
            .expect("to")
            .contains("ann@example.com")
    );
    assert_eq!(
        email["subject"],
        "Welcome, Ann <script>alert(1)</script> & Co!"
    );
    assert_eq!(email["content_type"], "multipart/alternative");
    let text = email["parts"]["text/plain"].as_str().expect("text part");
    let html = email["parts"]["text/html"].as_str().expect("html part");
    assert!(
        text.contains("Hello Ann <script>alert(1)</script> & Co,"),
        "{text}"
    );
    assert!(text.contains(&body.user_id.to_string()));
    assert!(
        html.contains("Hello Ann &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co,"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "the name is escaped in HTML");
    assert_eq!(
        app.metric(r#"notifications_sent_total{channel="smtp",outcome="ok"}"#)
            .await,
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn smtp_without_a_server_is_retried_then_dead_lettered() {
    let backends = Backends::new().await;
    let mut config = backends.config();
    config.channel = ChannelKind::Smtp;
    config.smtp.smtp_host = "127.0.0.1".to_owned();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    config.smtp.smtp_port = Some(port);
    config.smtp.smtp_tls = SmtpTls::None;
    config.delivery_max_attempts = 2;
    let app = spawn_app(&config).await;
    let (attributes, body) = event(1);
    backends.producer().publish(&attributes, &body).await;

    let dead = eventually(WAIT, || async {
        app.metric("dlq_messages_total").await >= 1.0
    })
    .await;
    assert!(dead, "the undeliverable email is dead-lettered");
    assert_eq!(
        app.metric(r#"notifications_sent_total{channel="smtp",outcome="failed"}"#)
            .await,
        2.0
    );
    let letters = dead_letters(&backends.kafka.args, 1).await;
    assert_eq!(header(&letters[0], "dlq.attempts").as_deref(), Some("2"));
    app.stop().await;
}

#[tokio::test]
async fn webhook_posts_each_event_body_signed_with_the_secret() {
    let receiver = WebhookReceiver::start(|_, _| 200).await;
    let backends = Backends::new().await;
    let app = spawn_app(&webhook_config(&backends, &receiver)).await;
    let producer = backends.producer();
    let mut sent = Vec::new();
    for i in 0..3 {
        let (attributes, body) = event(i);
        producer.publish(&attributes, &body).await;
        sent.push((attributes, body));
    }

    assert!(app.wait_delivered(3.0).await, "3 webhook deliveries");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "one request per event");
    for (attributes, body) in &sent {
        let request = requests
            .iter()
            .find(|r| r.event_id.as_deref() == Some(&attributes.id.to_string()))
            .expect("a request for each event");
        let received: events::UserRegistered =
            serde_json::from_slice(&request.body).expect("the event body");
        assert_eq!(&received, body);
        assert_eq!(
            request.signature.as_deref(),
            Some(expected_signature(SECRET, &request.body).as_str()),
            "X-Signature-256 verifies"
        );
        assert_ne!(
            request.signature.as_deref(),
            Some(expected_signature("another-secret", &request.body).as_str())
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_answering_500_is_retried_until_it_answers_200() {
    let receiver = WebhookReceiver::start(|n, _| if n < 3 { 500 } else { 200 }).await;
    let backends = Backends::new().await;
    let mut config = webhook_config(&backends, &receiver);
    config.delivery_max_attempts = 5;
    let app = spawn_app(&config).await;
    let (attributes, body) = event(1);
    backends.producer().publish(&attributes, &body).await;

    assert!(
        app.wait_delivered(1.0).await,
        "delivered on the 4th attempt"
    );
    let requests = receiver.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    assert_eq!(
        app.metric(r#"notifications_sent_total{channel="webhook",outcome="failed"}"#)
            .await,
        3.0
    );
    assert_eq!(app.metric("dlq_messages_total").await, 0.0);
    assert_eq!(app.notifications().await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_dead_letters_the_event_and_later_events_flow() {
    let receiver = WebhookReceiver::start(|_, body| {
        let doomed = body["user_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Doomed"));
        if doomed { 500 } else { 200 }
    })
    .await;
    let backends = Backends::new().await;
    let mut config = webhook_config(&backends, &receiver);
    config.delivery_max_attempts = 3;
    let producer = backends.producer();
    let (doomed_attributes, mut doomed) = event(0);
    doomed.user_name = "Doomed 0".to_owned();
    producer.publish(&doomed_attributes, &doomed).await;
    // Same user id, so same key and partition: they queue behind the failing event.
    for i in 1..=5 {
        let (attributes, mut body) = event(i);
        body.user_id = doomed.user_id;
        producer.publish(&attributes, &body).await;
    }
    // Started on a backlog, the consumer fetches the six together and runs them as one batch.
    let app = spawn_app(&config).await;

    assert!(
        app.wait_delivered(5.0).await,
        "the 5 later events delivered"
    );
    let letters = dead_letters(&backends.kafka.args, 1).await;
    let letter = &letters[0];
    let doomed_requests = receiver
        .requests()
        .iter()
        .filter(|r| r.event_id.as_deref() == Some(&doomed_attributes.id.to_string()))
        .count();
    assert_eq!(
        doomed_requests, 3,
        "DELIVERY_MAX_ATTEMPTS attempts in all, no more"
    );
    assert_eq!(letter.payload(), Some(doomed.to_json().as_slice()));
    assert_eq!(letter.key(), Some(doomed.user_id.to_string().as_bytes()));
    let reason = header(letter, "dlq.reason").expect("dlq.reason");
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(header(letter, "dlq.attempts").as_deref(), Some("3"));
    assert_eq!(
        header(letter, "dlq.original.topic").as_deref(),
        Some(backends.kafka.args.topic.as_str())
    );
    let partition: i32 = header(letter, "dlq.original.partition")
        .expect("partition")
        .parse()
        .expect("a number");
    assert!((0..3).contains(&partition));
    assert_eq!(
        header(letter, "dlq.original.offset").as_deref(),
        Some("0"),
        "the first message of its partition"
    );
    let time = header(letter, "dlq.time").expect("dlq.time");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&time).is_ok(),
        "{time}"
    );
    assert_eq!(
        header(letter, "ce_id").as_deref(),
        Some(doomed_attributes.id.to_string().as_str()),
        "the original headers travel along"
    );
    let failed = r#"events_consumed_total{event_type="com.platform.user.registered.v1",outcome="dead_lettered"}"#;
    assert_eq!(app.metric(failed).await, 1.0);
    assert_eq!(app.metric("dlq_messages_total").await, 1.0);
    app.stop().await;
}
