//! The webhook channel: the event body as JSON, POSTed with an HMAC-SHA256 signature.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use events::Event;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::CONTENT_TYPE;
use sha2::Sha256;

use super::{DeliveryError, Secret};

const CHANNEL: &str = "webhook";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body keyed with WEBHOOK_SECRET>`.
pub const SIGNATURE_HEADER: &str = "X-Signature-256";

/// Webhook settings, used when `NOTIFY_CHANNEL=webhook`.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// URL that receives each event as a JSON POST.
    #[arg(long, env = "WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<String>,

    /// Key of the body's HMAC-SHA256 signature in the X-Signature-256 header.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// Bound on one request (connect, send, answer), in ms.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 5_000)]
    pub webhook_timeout_ms: u64,
}

impl Default for WebhookArgs {
    fn default() -> Self {
        service_kit::config::defaults()
    }
}

/// POSTs events to one URL.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Secret,
}

impl WebhookChannel {
    pub fn new(args: &WebhookArgs) -> anyhow::Result<Self> {
        let url = args
            .webhook_url
            .as_deref()
            .context("NOTIFY_CHANNEL=webhook needs WEBHOOK_URL")?;
        let url = reqwest::Url::parse(url).context("WEBHOOK_URL is not a URL")?;
        let secret = args
            .webhook_secret
            .clone()
            .filter(|s| !s.expose().is_empty())
            .context("NOTIFY_CHANNEL=webhook needs WEBHOOK_SECRET to sign requests")?;
        let timeout = Duration::from_millis(args.webhook_timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }

    /// Delivered means a 2xx answer; anything else is a failure to retry.
    pub async fn deliver(&self, event: &Event) -> Result<(), DeliveryError> {
        let body = event.body.to_json();
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(self.secret.expose(), &body))
            .header("X-Event-Id", event.attributes.id.to_string())
            .header("X-Event-Type", &event.attributes.event_type)
            .body(body)
            .send()
            .await
            // The URL may carry a token: errors are reported without it.
            .map_err(|e| DeliveryError::new(CHANNEL, e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::new(
                CHANNEL,
                format!("receiver answered {status}"),
            ))
        }
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_webhook_needs_a_url_and_a_secret() {
        let mut args = WebhookArgs::default();
        assert!(WebhookChannel::new(&args).is_err());
        args.webhook_url = Some("http://127.0.0.1:9/hook".to_owned());
        assert!(WebhookChannel::new(&args).is_err());
        args.webhook_secret = Some(Secret::new("s"));
        assert!(WebhookChannel::new(&args).is_ok());
    }
}
