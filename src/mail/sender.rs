//! The outbox's sender: a supervised chore in every process (`mail_sender`) that, every
//! `mail.poll_interval_ms` (and again at once while batches come back full), claims up to
//! `mail.batch_size` due messages, sends them over SMTP concurrently and marks each sent, or
//! records its error and schedules a retry.
//!
//! How a claim works: one statement locks due rows with `FOR UPDATE SKIP LOCKED` (rows another
//! process is claiming are skipped, never waited for), counts the attempt and moves their due
//! time past the send's deadline (a lease), and commits. No transaction is held while SMTP
//! talks. So several processes never send one message twice in the normal case; a process
//! dying mid-batch leaves its unsent messages to be claimed again when the lease ends, and
//! re-sends at most the message whose acceptance it had not yet recorded (at least once; the
//! `Message-ID` is the outbox id, the same on a re-send).
//!
//! Retries: a failed send waits `retry_base_ms × 2^(attempts − 1)`, at most `retry_max_ms`;
//! after `max_attempts` the message is kept as failed (`failed_at`), counted, never dropped.
//! Metrics: `agora_mail_sent_total`, `agora_mail_failures_total{kind="retry"|"gave_up"}`,
//! `agora_mail_send_seconds`, and, sampled every few seconds, `agora_mail_queued`,
//! `agora_mail_failed` and `agora_mail_oldest_queued_seconds` (the age of the oldest
//! message not yet sent; the `AgoraMailBacklog` alert reads it). With no `mail.smtp_url`
//! nothing is sent (mail stays queued) but the gauges are still sampled.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::future::{join_all, BoxFuture};
use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::{authentication::Credentials, extension::ClientId},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use uuid::Uuid;

use crate::{configuration::MailSettings, db::PreparedClient, error::Error};

/// How often a process samples the outbox's gauges.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);
/// Most characters of an SMTP error kept with the message.
const MAX_ERROR_CHARS: usize = 500;
/// Most sent messages one upkeep statement deletes.
const PURGE_BATCH: i64 = 1000;

/// A claimed message.
struct Claimed {
    id: Uuid,
    recipient: String,
    subject: String,
    body: String,
    attempts: i32,
}

/// Sends the outbox's due mail; one per process.
pub struct Postman {
    pool: deadpool_postgres::Pool,
    /// `None`: sending is off.
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    batch_size: i64,
    max_attempts: i32,
    retry_base: Duration,
    retry_max: Duration,
    send_timeout: Duration,
    sampled_at: Mutex<Option<Instant>>,
}

impl Postman {
    /// The sender for these settings (already validated at load, so a bad URL or sender is
    /// an internal error here).
    pub fn new(pool: deadpool_postgres::Pool, settings: &MailSettings) -> Result<Self, Error> {
        let send_timeout = Duration::from_secs(settings.send_timeout_secs);
        let transport = settings
            .smtp_endpoint()
            .map_err(Error::internal)?
            .map(|endpoint| {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(endpoint.host)
                        .port(endpoint.port)
                        .timeout(Some(send_timeout));
                if let Some((user, password)) = endpoint.credentials {
                    builder = builder.credentials(Credentials::new(user, password));
                }
                if let Some(name) = endpoint.hello_name {
                    builder = builder.hello_name(ClientId::Domain(name));
                }
                builder.build()
            });
        Ok(Self {
            pool,
            transport,
            from: settings.from.parse().map_err(Error::internal)?,
            batch_size: i64::from(settings.batch_size),
            max_attempts: i32::try_from(settings.max_attempts).unwrap_or(i32::MAX),
            retry_base: Duration::from_millis(settings.retry_base_ms),
            retry_max: Duration::from_millis(settings.retry_max_ms),
            send_timeout,
            sampled_at: Mutex::new(None),
        })
    }

    /// How long a claim keeps a message from other senders: past the deadline of every send
    /// of the batch (they run concurrently) and the marks after them.
    fn lease(&self) -> Duration {
        self.send_timeout * 2 + Duration::from_secs(10)
    }

    /// The wait before the next try of a message that failed its `attempts`-th send.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.retry_base
            .saturating_mul(1_u32 << doublings)
            .min(self.retry_max)
    }

    /// One pass: samples the gauges when due, then claims and sends a batch. Answers whether
    /// the batch was full (more may be due at once).
    pub async fn deliver(&self) -> Result<bool, Error> {
        self.sample_gauges().await?;
        let Some(transport) = &self.transport else {
            return Ok(false);
        };
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(false);
        }
        let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= self.batch_size;
        let outcomes = join_all(claimed.iter().map(|mail| self.send(transport, mail))).await;
        let mut sent = Vec::new();
        let client = self.pool.get().await?;
        for (mail, outcome) in claimed.iter().zip(outcomes) {
            match outcome {
                Ok(()) => sent.push(mail.id),
                Err(cause) => self.record_failure(&*client, mail, &cause).await?,
            }
        }
        if !sent.is_empty() {
            client
                .execute(
                    "UPDATE mail_outbox SET sent_at = now(), last_error = NULL,
                            body = CASE WHEN kind = 'password_reset' THEN '' ELSE body END
                     WHERE id = ANY($1)",
                    &[&sent],
                )
                .await?;
            metrics::counter!("agora_mail_sent_total").increment(sent.len() as u64);
        }
        Ok(full)
    }

    /// Claims up to a batch of due messages for this process, committed before any is sent.
    async fn claim(&self) -> Result<Vec<Claimed>, Error> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "WITH due AS (
                     SELECT id FROM mail_outbox
                     WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                     ORDER BY next_attempt_at
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED)
                 UPDATE mail_outbox m
                 SET attempts = m.attempts + 1,
                     next_attempt_at = now() + make_interval(secs => $2)
                 FROM due WHERE m.id = due.id
                 RETURNING m.id, m.recipient, m.subject, m.body, m.attempts",
                &[&self.batch_size, &self.lease().as_secs_f64()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Claimed {
                id: row.get(0),
                recipient: row.get(1),
                subject: row.get(2),
                body: row.get(3),
                attempts: row.get(4),
            })
            .collect())
    }

    /// Sends one message, within the send timeout; the error as text.
    async fn send(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        mail: &Claimed,
    ) -> Result<(), String> {
        let started = Instant::now();
        let domain = self.from.email.domain().to_owned();
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail
                .recipient
                .parse::<Mailbox>()
                .map_err(|e| format!("recipient {:?}: {e}", mail.recipient))?)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@{domain}>", mail.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| format!("building the message: {e}"))?;
        let outcome = tokio::time::timeout(self.send_timeout, transport.send(message)).await;
        metrics::histogram!("agora_mail_send_seconds").record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no answer within {} s",
                self.send_timeout.as_secs()
            )),
        }
    }

    /// Keeps the error and schedules the retry, or gives the message up after its last try.
    async fn record_failure(
        &self,
        client: &impl PreparedClient,
        mail: &Claimed,
        cause: &str,
    ) -> Result<(), Error> {
        let cause: String = cause.chars().take(MAX_ERROR_CHARS).collect();
        let gave_up = mail.attempts >= self.max_attempts;
        client
            .execute(
                "UPDATE mail_outbox SET last_error = $2,
                        failed_at = CASE WHEN $3 THEN now() END,
                        next_attempt_at = now() + make_interval(secs => $4)
                 WHERE id = $1",
                &[
                    &mail.id,
                    &cause,
                    &gave_up,
                    &self.backoff(mail.attempts).as_secs_f64(),
                ],
            )
            .await?;
        let kind = if gave_up { "gave_up" } else { "retry" };
        metrics::counter!("agora_mail_failures_total", "kind" => kind).increment(1);
        tracing::warn!(
            mail_id = %mail.id, attempts = mail.attempts, gave_up, %cause,
            "sending mail failed"
        );
        Ok(())
    }

    /// The outbox's gauges, at most every [`GAUGE_INTERVAL`] per process.
    async fn sample_gauges(&self) -> Result<(), Error> {
        {
            let mut sampled_at = self
                .sampled_at
                .lock()
                .map_err(|_| Error::internal(anyhow::anyhow!("mail gauge clock poisoned")))?;
            if sampled_at.is_some_and(|at| at.elapsed() < GAUGE_INTERVAL) {
                return Ok(());
            }
            *sampled_at = Some(Instant::now());
        }
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE failed_at IS NULL),
                        count(*) FILTER (WHERE failed_at IS NOT NULL),
                        coalesce(extract(epoch FROM now() - min(created_at)
                                 FILTER (WHERE failed_at IS NULL)), 0)::float8
                 FROM mail_outbox WHERE sent_at IS NULL",
                &[],
            )
            .await?;
        metrics::gauge!("agora_mail_queued").set(row.get::<_, i64>(0) as f64);
        metrics::gauge!("agora_mail_failed").set(row.get::<_, i64>(1) as f64);
        metrics::gauge!("agora_mail_oldest_queued_seconds").set(row.get::<_, f64>(2));
        Ok(())
    }
}

/// Registers the sender's counters at 0 (an alert's `increase()` must see the first failure).
pub fn register_counters() {
    metrics::counter!("agora_mail_sent_total").increment(0);
    for kind in ["retry", "gave_up"] {
        metrics::counter!("agora_mail_failures_total", "kind" => kind).increment(0);
    }
}

struct SenderChore(Arc<Postman>);

impl agora_actors::periodic::Chore for SenderChore {
    fn name(&self) -> &'static str {
        "mail_sender"
    }

    fn pass(&self) -> BoxFuture<'static, Result<bool, String>> {
        let postman = Arc::clone(&self.0);
        Box::pin(async move {
            postman
                .deliver()
                .await
                .map_err(|error| crate::error::error_chain(&error))
        })
    }
}

/// Starts this process's sender on the current arbiter (warning when sending is off).
pub fn start_sender(pool: deadpool_postgres::Pool, settings: &MailSettings) -> Result<(), Error> {
    register_counters();
    if !settings.sending() {
        tracing::warn!(
            target: "agora::mail::disabled",
            "mail.smtp_url is empty: mail sending is off, mail stays queued in the outbox"
        );
    }
    let postman = Arc::new(Postman::new(pool, settings)?);
    agora_actors::periodic::Periodic::start(
        Arc::new(SenderChore(postman)),
        Duration::from_millis(settings.poll_interval_ms),
        // A backlog drains at most this many batches per tick, then lets the tick come round.
        16,
    );
    Ok(())
}

/// Deletes a batch of mail sent more than `keep_days` ago; answers how many it deleted.
pub async fn purge_sent(client: &impl PreparedClient, keep_days: u32) -> Result<u64, Error> {
    let days = i32::try_from(keep_days).unwrap_or(i32::MAX);
    Ok(client
        .execute(
            "DELETE FROM mail_outbox WHERE id IN (
                 SELECT id FROM mail_outbox
                 WHERE sent_at < now() - make_interval(days => $1)
                 LIMIT $2)",
            &[&days, &PURGE_BATCH],
        )
        .await?)
}

/// The batch [`purge_sent`] deletes at most.
pub const fn purge_batch() -> u64 {
    PURGE_BATCH as u64
}
