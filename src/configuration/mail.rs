//! Mail settings: where the outbox's sender sends (a plain SMTP URL, parsed here as the
//! sender reads it), from whom, and how often it looks and retries.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{invalid, ConfigError};

/// The outbox's sender (`crate::mail`): where mail goes, how fast it is looked for, how it is
/// retried.
#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    /// `smtp://[user:password@]host[:port]` (plain SMTP); empty: sending is off and mail stays
    /// queued. A secret (it may hold a password).
    pub smtp_url: SecretString,
    /// The sender of every message, e.g. `Agora <no-reply@shop.example>`.
    pub from: String,
    /// Milliseconds between each process's looks for due mail.
    pub poll_interval_ms: u64,
    /// Most messages one process claims at once (and sends concurrently).
    pub batch_size: u32,
    /// Sends of one message before it is given up as failed.
    pub max_attempts: u32,
    /// Milliseconds before the first retry; each next one waits twice as long, at most
    /// `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Seconds one message may take to send; beyond it the attempt counts as failed.
    pub send_timeout_secs: u64,
    /// Days sent mail stays in the outbox before the upkeep deletes it.
    pub keep_sent_days: u32,
}

impl MailSettings {
    /// Whether mail is sent at all (an SMTP URL is configured).
    pub fn sending(&self) -> bool {
        !self.smtp_url.expose_secret().trim().is_empty()
    }

    /// The SMTP server of `smtp_url`: `smtp://[user:password@]host[:port][/helo-name]`
    /// (user and password percent-encoded; port 25 by default; the path, if any, is the
    /// name this host gives in EHLO). `None` when sending is off.
    pub fn smtp_endpoint(&self) -> Result<Option<SmtpEndpoint>, ConfigError> {
        let url = self.smtp_url.expose_secret().trim();
        if url.is_empty() {
            return Ok(None);
        }
        let bad = |problem: &str| invalid("mail.smtp_url", problem);
        let rest = url.strip_prefix("smtp://").ok_or_else(|| {
            bad("must start with smtp:// (plain SMTP: TLS is left to a local relay)")
        })?;
        let (authority, hello_name) =
            rest.split_once('/')
                .map_or((rest, None), |(authority, path)| {
                    (
                        authority,
                        Some(path.trim_matches('/').to_owned()).filter(|p| !p.is_empty()),
                    )
                });
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |raw: &str| {
                    percent_decode(raw)
                        .ok_or_else(|| bad("a user or password that is not percent-encoded"))
                };
                (Some((decode(user)?, decode(password)?)), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (host_port, 25),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['?', '#', ' ']) {
            return Err(bad("names no host"));
        }
        Ok(Some(SmtpEndpoint {
            host: host.to_owned(),
            port,
            credentials,
            hello_name,
        }))
    }
}

/// An SMTP server to send through, as `mail.smtp_url` names it.
#[derive(Clone)]
pub struct SmtpEndpoint {
    pub host: String,
    pub port: u16,
    /// User and password, for AUTH.
    pub credentials: Option<(String, String)>,
    /// The name this host gives in EHLO (else the SMTP client's default).
    pub hello_name: Option<String>,
}

impl std::fmt::Debug for SmtpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[redacted]"),
            )
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

/// `%41b` → `Ab`; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl MailSettings {
    /// The retry bounds, the batch size, the sender's mailbox and the SMTP URL, as the sender
    /// will read them.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.retry_max_ms < self.retry_base_ms {
            return Err(invalid(
                "mail.retry_max_ms",
                "must be at least mail.retry_base_ms",
            ));
        }
        if self.batch_size > 1000 {
            return Err(invalid("mail.batch_size", "must be at most 1000"));
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| invalid("mail.from", format!("not a mailbox: {e}")))?;
        self.smtp_endpoint()?;
        Ok(())
    }
}
