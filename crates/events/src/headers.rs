//! CloudEvents Kafka binary-mode header codec.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Attributes, SPEC_VERSION};

pub const CE_ID: &str = "ce_id";
pub const CE_SOURCE: &str = "ce_source";
pub const CE_TYPE: &str = "ce_type";
pub const CE_TIME: &str = "ce_time";
pub const CE_SPECVERSION: &str = "ce_specversion";
pub const CONTENT_TYPE: &str = "content-type";
/// The W3C trace-context header, in HTTP requests and Kafka messages alike.
pub const TRACEPARENT: &str = "traceparent";

/// One Kafka header as a name and raw value.
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// Why a message does not satisfy the event contract.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("header `{0}` is missing")]
    MissingHeader(&'static str),
    #[error("header `{0}` is not valid: {1}")]
    InvalidHeader(&'static str, String),
    #[error("unsupported CloudEvents specversion `{0}`")]
    SpecVersion(String),
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("the message has no payload")]
    EmptyPayload,
    #[error("the payload is not a valid UserRegistered body: {0}")]
    Body(String),
}

impl Attributes {
    /// The header pairs that carry these attributes on a Kafka message.
    pub fn to_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (CE_SPECVERSION, SPEC_VERSION.to_owned()),
            (CE_ID, self.id.to_string()),
            (CE_SOURCE, self.source.clone()),
            (CE_TYPE, self.event_type.clone()),
            (CE_TIME, self.time.to_rfc3339()),
            (CONTENT_TYPE, "application/json".to_owned()),
        ];
        if let Some(traceparent) = &self.traceparent {
            headers.push((TRACEPARENT, traceparent.clone()));
        }
        headers
    }
}

#[derive(Default)]
struct Raw<'a> {
    id: Option<&'a [u8]>,
    source: Option<&'a [u8]>,
    event_type: Option<&'a [u8]>,
    time: Option<&'a [u8]>,
    specversion: Option<&'a [u8]>,
    traceparent: Option<&'a [u8]>,
}

pub(crate) fn attributes_from<'a>(
    headers: impl IntoIterator<Item = Header<'a>>,
) -> Result<Attributes, DecodeError> {
    let mut raw = Raw::default();
    for (name, value) in headers {
        let slot = match name {
            CE_ID => &mut raw.id,
            CE_SOURCE => &mut raw.source,
            CE_TYPE => &mut raw.event_type,
            CE_TIME => &mut raw.time,
            CE_SPECVERSION => &mut raw.specversion,
            TRACEPARENT => &mut raw.traceparent,
            _ => continue,
        };
        *slot = value;
    }
    let specversion = text(CE_SPECVERSION, raw.specversion)?;
    if specversion != SPEC_VERSION {
        return Err(DecodeError::SpecVersion(specversion.to_owned()));
    }
    let time = text(CE_TIME, raw.time)?;
    Ok(Attributes {
        id: Uuid::parse_str(text(CE_ID, raw.id)?)
            .map_err(|e| DecodeError::InvalidHeader(CE_ID, e.to_string()))?,
        source: text(CE_SOURCE, raw.source)?.to_owned(),
        event_type: text(CE_TYPE, raw.event_type)?.to_owned(),
        time: DateTime::parse_from_rfc3339(time)
            .map_err(|e| DecodeError::InvalidHeader(CE_TIME, e.to_string()))?
            .with_timezone(&Utc),
        traceparent: raw
            .traceparent
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned),
    })
}

fn text<'a>(name: &'static str, value: Option<&'a [u8]>) -> Result<&'a str, DecodeError> {
    let value = value.ok_or(DecodeError::MissingHeader(name))?;
    std::str::from_utf8(value).map_err(|e| DecodeError::InvalidHeader(name, e.to_string()))
}
