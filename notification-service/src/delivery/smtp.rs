//! The SMTP channel: a welcome email with a plain-text and an HTML part.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use events::UserRegistered;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{DeliveryError, Secret};

const CHANNEL: &str = "smtp";

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SmtpTls {
    /// Plain text (a local relay only).
    None,
    /// Upgrade with STARTTLS, refusing servers that do not offer it (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

/// SMTP settings, used when `NOTIFY_CHANNEL=smtp`.
#[derive(Debug, Clone, Args)]
pub struct SmtpArgs {
    /// SMTP server host name.
    #[arg(long, env = "SMTP_HOST", default_value = "localhost")]
    pub smtp_host: String,

    /// SMTP server port [default: 25, 587 or 465 by SMTP_TLS].
    #[arg(long, env = "SMTP_PORT")]
    pub smtp_port: Option<u16>,

    /// Connection security: none, starttls or tls.
    #[arg(long, env = "SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub smtp_tls: SmtpTls,

    /// User name for SMTP authentication (none: no authentication).
    #[arg(long, env = "SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// Password for SMTP authentication.
    #[arg(long, env = "SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<Secret>,

    /// Sender of welcome emails, e.g. `Platform <no-reply@example.com>`.
    #[arg(
        long,
        env = "SMTP_FROM",
        default_value = "Platform <no-reply@localhost>"
    )]
    pub smtp_from: String,

    /// Bound on one email's delivery (connect, TLS, authentication, send), in ms.
    #[arg(long, env = "SMTP_TIMEOUT_MS", default_value_t = 10_000)]
    pub smtp_timeout_ms: u64,
}

impl Default for SmtpArgs {
    fn default() -> Self {
        service_kit::config::defaults()
    }
}

impl SmtpArgs {
    fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

/// Sends welcome emails through one SMTP server.
#[derive(Clone)]
pub struct SmtpChannel {
    transport: Arc<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    timeout: Duration,
    server: String,
}

impl fmt::Debug for SmtpChannel {
    // The transport holds the credentials: only the server is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpChannel {
    pub fn new(args: &SmtpArgs) -> anyhow::Result<Self> {
        let from: Mailbox = args
            .smtp_from
            .parse()
            .with_context(|| format!("SMTP_FROM `{}` is not an email address", args.smtp_from))?;
        let timeout = Duration::from_millis(args.smtp_timeout_ms.max(1));
        let host = args.smtp_host.clone();
        let tls = match args.smtp_tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(TlsParameters::new(host.clone())?),
            SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(host.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(args.port())
            .timeout(Some(timeout))
            .tls(tls);
        if let Some(user) = &args.smtp_username {
            let password = args.smtp_password.as_ref().map(Secret::expose);
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.unwrap_or_default().to_owned(),
            ));
        }
        Ok(Self {
            transport: Arc::new(builder.build()),
            from,
            timeout,
            server: format!("{host}:{}", args.port()),
        })
    }

    pub async fn deliver(&self, user: &UserRegistered) -> Result<(), DeliveryError> {
        let message = self.message(user)?;
        let send = self.transport.send(message);
        // lettre bounds each socket operation; this bounds the whole conversation.
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(DeliveryError::new(CHANNEL, error)),
            Err(_) => Err(DeliveryError::new(
                CHANNEL,
                format!("no answer from {} within {:?}", self.server, self.timeout),
            )),
        }
    }

    fn message(&self, user: &UserRegistered) -> Result<Message, DeliveryError> {
        let address = user
            .email
            .parse()
            .map_err(|e| DeliveryError::new(CHANNEL, format!("invalid recipient: {e}")))?;
        let mail = WelcomeMail::for_user(user);
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(Some(user.user_name.clone()), address))
            .subject(mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| DeliveryError::new(CHANNEL, e))
    }
}

/// The welcome message's subject and its two bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl WelcomeMail {
    pub fn for_user(user: &UserRegistered) -> Self {
        let name = &user.user_name;
        let (html_name, html_email) = (escape_html(name), escape_html(&user.email));
        Self {
            subject: format!("Welcome, {name}!"),
            text: format!(
                "Hello {name},\n\nwelcome aboard: your account {} is ready.\n\nUser id: {}\n",
                user.email, user.user_id
            ),
            html: format!(
                "<!DOCTYPE html>\n<html><body>\n<p>Hello {html_name},</p>\n\
                 <p>welcome aboard: your account <strong>{html_email}</strong> is ready.</p>\n\
                 <p>User id: {}</p>\n</body></html>\n",
                user.user_id
            ),
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_user_name_is_escaped_in_html_only() {
        let user = UserRegistered {
            user_id: Uuid::nil(),
            user_name: "<b>Tom & \"Jerry\"</b>".to_owned(),
            email: "tom@example.com".to_owned(),
            registered_at: Utc::now(),
        };
        let mail = WelcomeMail::for_user(&user);
        assert!(
            mail.html
                .contains("Hello &lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;,")
        );
        assert!(!mail.html.contains("<b>Tom"));
        assert!(mail.text.starts_with("Hello <b>Tom & \"Jerry\"</b>,"));
    }

    #[test]
    fn the_port_follows_the_tls_mode_unless_set() {
        let mut args = SmtpArgs::default();
        assert_eq!(args.port(), 587);
        args.smtp_tls = SmtpTls::Tls;
        assert_eq!(args.port(), 465);
        args.smtp_port = Some(2525);
        assert_eq!(args.port(), 2525);
    }
}
