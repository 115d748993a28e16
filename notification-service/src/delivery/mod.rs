//! Delivery channels for the welcome notification, chosen by `NOTIFY_CHANNEL`: the service
//! log, an SMTP server, or a signed webhook. One file per channel.

mod log;
mod smtp;
mod webhook;

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;
use events::Event;

pub use smtp::{SmtpArgs, SmtpChannel, SmtpTls, WelcomeMail};
pub use webhook::{SIGNATURE_HEADER, WebhookArgs, WebhookChannel, signature};

/// Which channel delivers welcome notifications (`NOTIFY_CHANNEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ChannelKind {
    /// Write the notification to the service log.
    #[default]
    Log,
    /// Send a welcome email through an SMTP server (`SMTP_*`).
    Smtp,
    /// POST the event as JSON to `WEBHOOK_URL`, signed with `WEBHOOK_SECRET`.
    Webhook,
}

/// A configured delivery channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Log,
    Smtp(SmtpChannel),
    Webhook(WebhookChannel),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("channel {channel} failed: {reason}")]
    Failed {
        channel: &'static str,
        reason: String,
    },
}

impl DeliveryError {
    fn new(channel: &'static str, reason: impl fmt::Display) -> Self {
        Self::Failed {
            channel,
            reason: reason.to_string(),
        }
    }
}

impl Channel {
    /// Builds the channel `kind` from its settings; missing or invalid settings of the
    /// chosen channel are a start-up error, not a failure per event.
    pub fn new(kind: ChannelKind, smtp: &SmtpArgs, webhook: &WebhookArgs) -> anyhow::Result<Self> {
        Ok(match kind {
            ChannelKind::Log => Self::Log,
            ChannelKind::Smtp => Self::Smtp(SmtpChannel::new(smtp)?),
            ChannelKind::Webhook => Self::Webhook(WebhookChannel::new(webhook)?),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Smtp(_) => "smtp",
            Self::Webhook(_) => "webhook",
        }
    }

    /// Sends the welcome notification for `event`.
    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        match self {
            Self::Log => {
                log::deliver(event);
                Ok(())
            }
            Self::Smtp(smtp) => smtp.deliver(&event.body).await,
            Self::Webhook(webhook) => webhook.deliver(event).await,
        }
    }
}

/// A setting that must never appear in logs, `Debug` output or `--help`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(secret.expose(), "hunter2");
    }
}
