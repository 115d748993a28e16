use super::*;
use chrono::TimeZone;

fn sample() -> (Attributes, UserRegistered) {
    let time = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("valid time");
    let attributes = Attributes::user_registered(
        Uuid::now_v7(),
        time,
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    );
    let body = UserRegistered {
        user_id: Uuid::now_v7(),
        user_name: "Ada".into(),
        email: "ada@example.com".into(),
        registered_at: time,
    };
    (attributes, body)
}

fn encode(attributes: &Attributes) -> Vec<(&'static str, Vec<u8>)> {
    attributes
        .to_headers()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect()
}

fn header_refs<'a>(headers: &'a [(&'static str, Vec<u8>)]) -> Vec<Header<'a>> {
    headers
        .iter()
        .map(|(k, v)| (*k, Some(v.as_slice())))
        .collect()
}

#[test]
fn an_encoded_event_decodes_to_the_same_event() {
    let (attributes, body) = sample();
    let headers = encode(&attributes);
    let event = decode(Some(&body.to_json()), header_refs(&headers)).expect("decodes");
    assert_eq!(event.attributes, attributes);
    assert_eq!(event.body, body);
}

#[test]
fn headers_carry_the_cloudevents_attributes() {
    let (attributes, _) = sample();
    let headers = attributes.to_headers();
    let names: Vec<_> = headers.iter().map(|(k, _)| *k).collect();
    for required in [
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_specversion",
        "traceparent",
    ] {
        assert!(names.contains(&required), "missing {required}");
    }
}

#[test]
fn a_missing_id_header_is_rejected() {
    let (attributes, body) = sample();
    let headers: Vec<_> = encode(&attributes)
        .into_iter()
        .filter(|(k, _)| *k != "ce_id")
        .collect();
    let err = decode(Some(&body.to_json()), header_refs(&headers)).expect_err("rejected");
    assert_eq!(err, DecodeError::MissingHeader("ce_id"));
}

#[test]
fn an_unknown_type_is_rejected() {
    let (mut attributes, body) = sample();
    attributes.event_type = "com.example.other".into();
    let headers = encode(&attributes);
    let err = decode(Some(&body.to_json()), header_refs(&headers)).expect_err("rejected");
    assert!(matches!(err, DecodeError::UnknownType(_)));
}

#[test]
fn a_body_that_is_not_json_is_rejected() {
    let (attributes, _) = sample();
    let headers = encode(&attributes);
    let err = decode(Some(b"{not json"), header_refs(&headers)).expect_err("rejected");
    assert!(matches!(err, DecodeError::Body(_)));
    let err = decode(None, header_refs(&headers)).expect_err("rejected");
    assert_eq!(err, DecodeError::EmptyPayload);
}

#[test]
fn a_bad_time_or_specversion_is_rejected() {
    let (attributes, body) = sample();
    let mut headers = encode(&attributes);
    for (k, v) in headers.iter_mut() {
        if *k == "ce_time" {
            *v = b"yesterday".to_vec();
        }
    }
    let err = decode(Some(&body.to_json()), header_refs(&headers)).expect_err("rejected");
    assert!(matches!(err, DecodeError::InvalidHeader("ce_time", _)));

    let mut headers = encode(&attributes);
    for (k, v) in headers.iter_mut() {
        if *k == "ce_specversion" {
            *v = b"0.3".to_vec();
        }
    }
    let err = decode(Some(&body.to_json()), header_refs(&headers)).expect_err("rejected");
    assert_eq!(err, DecodeError::SpecVersion("0.3".into()));
}

#[test]
fn the_checked_in_json_schema_matches_the_rust_type() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/user-registered.schema.json");
    let generated = json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        checked_in, generated,
        "schema/user-registered.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p events`"
    );
}

#[test]
fn the_json_schema_requires_every_body_field() {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).expect("json");
    let required = schema["required"].as_array().expect("required list");
    for field in ["user_id", "user_name", "email", "registered_at"] {
        assert!(required.iter().any(|v| v == field), "{field} not required");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("ce_id".to_owned()),
            Just("ce_source".to_owned()),
            Just("ce_type".to_owned()),
            Just("ce_time".to_owned()),
            Just("ce_specversion".to_owned()),
            Just("traceparent".to_owned()),
            "[a-z_-]{0,12}",
        ]
    }

    proptest! {
        /// Whatever arrives from Kafka, decoding answers Ok or Err and never panics.
        #[test]
        fn decoding_arbitrary_messages_never_panics(
            payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            headers in proptest::collection::vec((header_name(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60))), 0..10),
        ) {
            let refs: Vec<Header<'_>> = headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            let _ = decode(payload.as_deref(), refs);
        }

        /// Any event the producer can build decodes back to itself.
        #[test]
        fn every_encodable_event_round_trips(name in "\\PC{1,100}", email in "[a-z]{1,20}@[a-z]{1,20}\\.[a-z]{2,5}", micros in 0i64..4_000_000_000_000_000) {
            let time = DateTime::from_timestamp_micros(micros).expect("in range");
            let attributes = Attributes::user_registered(Uuid::now_v7(), time, None);
            let body = UserRegistered { user_id: Uuid::now_v7(), user_name: name, email, registered_at: time };
            let headers = encode(&attributes);
            let event = decode(Some(&body.to_json()), header_refs(&headers)).expect("decodes");
            prop_assert_eq!(event.attributes, attributes);
            prop_assert_eq!(event.body, body);
        }
    }
}
