//! The request and answer of one prediction, shared by Kafka and HTTP, and the validation
//! that turns untrusted JSON into [`Features`] or names every problem it found.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// The model's input columns, in order (scikit-learn's wine data).
pub const FEATURES: [&str; 13] = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
];

/// Marks a `NaN` or `Infinity` token that [`parse_json`] let through, so that validation
/// can name it instead of the whole message being unreadable.
const NON_FINITE: char = '\u{0}';

/// Thirteen finite feature values, in [`FEATURES`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features([f32; 13]);

impl Features {
    pub fn from_array(values: [f32; 13]) -> Self {
        Self(values)
    }

    pub fn values(&self) -> [f32; 13] {
        self.0
    }
}

/// A valid request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_id: Option<Uuid>,
    pub features: Features,
}

/// An invalid request: the problems per field, and the request id when it could be read
/// (so that the error can still be answered).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Invalid {
    pub request_id: Option<String>,
    pub errors: BTreeMap<String, Vec<String>>,
}

impl Invalid {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors
            .entry(field.into())
            .or_default()
            .push(message.into());
    }

    /// All problems in one line: `features[2]: must be a number; request_id: ...`.
    pub fn summary(&self) -> String {
        self.errors
            .iter()
            .flat_map(|(field, messages)| messages.iter().map(move |m| format!("{field}: {m}")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Answer {
    pub request_id: String,
    /// `success` or `error`.
    pub status: &'static str,
    /// The predicted class (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<i64>,
    /// Probability of each class, in the order of `GET /model`'s `classes` (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
    /// Version of the model that answered (success only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// What was wrong with the request (error only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    pub fn success(
        request_id: String,
        prediction: crate::model::Prediction,
        version: &str,
    ) -> Self {
        Self {
            request_id,
            status: "success",
            prediction: Some(prediction.class),
            probabilities: Some(prediction.probabilities),
            model_version: Some(version.to_owned()),
            error: None,
        }
    }

    pub fn error(request_id: String, error: String) -> Self {
        Self {
            request_id,
            status: "error",
            prediction: None,
            probabilities: None,
            model_version: None,
            error: Some(error),
        }
    }
}

/// Parses JSON, accepting the `NaN`, `Infinity` and `-Infinity` tokens that Python's
/// `json.dumps` writes, so that such a request gets an answer naming the bad value.
pub fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(bytes).or_else(|error| {
        let text = std::str::from_utf8(bytes).map_err(|_| error)?;
        serde_json::from_str(&mark_non_finite(text))
    })
}

/// Replaces non-finite number tokens outside strings by marked strings.
fn mark_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_string {
            let token = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(token) = token {
                out.push_str(&format!("\"\\u0000{token}\""));
                rest = &rest[token.len()..];
                continue;
            }
        }
        match c {
            '"' if !escaped => in_string = !in_string,
            _ => {}
        }
        escaped = in_string && c == '\\' && !escaped;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Validates one request. `id_required`: a Kafka request needs its id (the answer is
/// keyed by it); over HTTP it is optional.
pub fn validate(value: &Value, id_required: bool) -> Result<Request, Invalid> {
    let mut invalid = Invalid::default();
    let Some(object) = value.as_object() else {
        invalid.add("", format!("must be a JSON object, got {}", kind(value)));
        return Err(invalid);
    };
    let request_id = match object.get("request_id") {
        None | Some(Value::Null) if !id_required => None,
        None | Some(Value::Null) => {
            invalid.add("request_id", "is missing");
            None
        }
        Some(Value::String(text)) => {
            invalid.request_id = Some(text.clone());
            match Uuid::parse_str(text) {
                Ok(id) => Some(id),
                Err(_) => {
                    invalid.add("request_id", "is not a UUID");
                    None
                }
            }
        }
        Some(other) => {
            invalid.add(
                "request_id",
                format!("must be a UUID string, got {}", kind(other)),
            );
            None
        }
    };
    let features = match object.get("features") {
        Some(Value::Array(values)) => positional(values, &mut invalid),
        Some(Value::Object(named)) => by_name(named, &mut invalid),
        Some(other) => {
            let got = kind(other);
            invalid.add("features", format!("must be an array of 13 numbers or an object of the 13 named features, got {got}"));
            None
        }
        None => {
            invalid.add("features", "is missing");
            None
        }
    };
    match features {
        Some(features) if invalid.errors.is_empty() => Ok(Request {
            request_id,
            features,
        }),
        _ => Err(invalid),
    }
}

fn positional(values: &[Value], invalid: &mut Invalid) -> Option<Features> {
    if values.len() != FEATURES.len() {
        invalid.add(
            "features",
            format!("expected 13 values, got {}", values.len()),
        );
        return None;
    }
    let mut out = [0.0; 13];
    let mut ok = true;
    for (i, value) in values.iter().enumerate() {
        match number(value) {
            Ok(v) => out[i] = v,
            Err(message) => {
                invalid.add(
                    format!("features[{i}]"),
                    format!("({}) {message}", FEATURES[i]),
                );
                ok = false;
            }
        }
    }
    ok.then_some(Features(out))
}

fn by_name(named: &serde_json::Map<String, Value>, invalid: &mut Invalid) -> Option<Features> {
    let mut out = [0.0; 13];
    let mut ok = true;
    for (i, name) in FEATURES.iter().enumerate() {
        let result = named
            .get(*name)
            .map_or(Err("is missing".to_owned()), number);
        match result {
            Ok(v) => out[i] = v,
            Err(message) => {
                invalid.add(format!("features.{name}"), message);
                ok = false;
            }
        }
    }
    for name in named.keys().filter(|k| !FEATURES.contains(&k.as_str())) {
        invalid.add(format!("features.{name}"), "is not a feature of this model");
        ok = false;
    }
    ok.then_some(Features(out))
}

/// A finite number that fits the model's float32 input.
fn number(value: &Value) -> Result<f32, String> {
    match value {
        Value::Number(n) => {
            let v = n.as_f64().ok_or("is not a number")?;
            let single = v as f32;
            if single.is_finite() {
                Ok(single)
            } else {
                Err(format!("{v} is out of the float32 range"))
            }
        }
        Value::String(s) if s.starts_with(NON_FINITE) => Err(format!(
            "is {}: values must be finite",
            &s[NON_FINITE.len_utf8()..]
        )),
        other => Err(format!("must be a number, got {}", kind(other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "0195f2a4-9f5e-7c1a-8d3e-1234567890ab";

    fn row() -> Vec<f64> {
        vec![
            13.0, 2.3, 2.4, 19.5, 100.0, 2.3, 2.0, 0.36, 1.6, 5.1, 0.96, 2.6, 750.0,
        ]
    }

    fn errors(value: Value) -> Invalid {
        validate(&value, true).expect_err("invalid")
    }

    #[test]
    fn positional_and_named_features_are_the_same_request() {
        let named: serde_json::Map<_, _> = FEATURES
            .iter()
            .zip(row())
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        let a = validate(&json!({"request_id": ID, "features": row()}), true).expect("valid");
        let b = validate(&json!({"request_id": ID, "features": named}), true).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.request_id.expect("id").to_string(), ID);
    }

    #[test]
    fn a_wrong_count_is_named() {
        let invalid = errors(json!({"request_id": ID, "features": [1, 2, 3]}));
        assert_eq!(invalid.summary(), "features: expected 13 values, got 3");
        assert_eq!(invalid.request_id.as_deref(), Some(ID));
    }

    #[test]
    fn strings_and_nulls_are_named_by_position_and_feature() {
        let mut features: Vec<Value> = row().into_iter().map(Value::from).collect();
        features[2] = json!("2.4");
        features[12] = Value::Null;
        let invalid = errors(json!({"request_id": ID, "features": features}));
        assert_eq!(
            invalid.summary(),
            "features[12]: (proline) must be a number, got null; features[2]: (ash) must be a number, got a string"
        );
    }

    #[test]
    fn python_nan_and_infinity_are_named() {
        let text = format!(
            r#"{{"request_id": "{ID}", "features": [NaN, Infinity, -Infinity, 1,1,1,1,1,1,1,1,1,"NaN"]}}"#
        );
        let invalid = errors(parse_json(text.as_bytes()).expect("relaxed parse"));
        let summary = invalid.summary();
        assert!(
            summary.contains("features[0]: (alcohol) is NaN"),
            "{summary}"
        );
        assert!(
            summary.contains("features[1]: (malic_acid) is Infinity"),
            "{summary}"
        );
        assert!(
            summary.contains("features[2]: (ash) is -Infinity"),
            "{summary}"
        );
        assert!(
            summary.contains("features[12]: (proline) must be a number, got a string"),
            "{summary}"
        );
    }

    #[test]
    fn tokens_inside_strings_are_left_alone() {
        let value = parse_json(br#"{"note": "NaN \" Infinity", "x": NaN}"#).expect("parse");
        assert_eq!(value["note"], json!("NaN \" Infinity"));
        assert!(value["x"].as_str().expect("marked").starts_with(NON_FINITE));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut features = row();
        features[4] = 1e300;
        let invalid = errors(json!({"request_id": ID, "features": features}));
        assert!(
            invalid.summary().contains("out of the float32 range"),
            "{}",
            invalid.summary()
        );
    }

    #[test]
    fn missing_and_extra_named_features_are_listed() {
        let mut named: serde_json::Map<_, _> = FEATURES
            .iter()
            .zip(row())
            .map(|(n, v)| ((*n).to_owned(), json!(v)))
            .collect();
        named.remove("hue");
        named.insert("colour".to_owned(), json!(1));
        let invalid = errors(json!({"request_id": ID, "features": named}));
        assert_eq!(
            invalid.summary(),
            "features.colour: is not a feature of this model; features.hue: is missing"
        );
    }

    #[test]
    fn request_ids_must_be_uuids() {
        let invalid = errors(json!({"request_id": "r-1", "features": row()}));
        assert_eq!(invalid.summary(), "request_id: is not a UUID");
        assert_eq!(invalid.request_id.as_deref(), Some("r-1"));
        let invalid = errors(json!({"request_id": 7, "features": row()}));
        assert_eq!(invalid.request_id, None);
        let invalid = errors(json!({"features": row()}));
        assert_eq!(invalid.summary(), "request_id: is missing");
        assert!(validate(&json!({"features": row()}), false).is_ok());
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(
            errors(json!([1, 2])).summary(),
            ": must be a JSON object, got an array"
        );
        assert_eq!(
            errors(json!({"request_id": ID})).summary(),
            "features: is missing"
        );
    }
}
