//! Mail to shoppers: the transactional outbox, what is written into it, and its sender.
//!
//! Owns the `mail_outbox` table. A message is rendered (subject and plain-text body, in the
//! shopper's language) and written by [`enqueue`] in the caller's transaction, so it exists if
//! and only if the change that caused it committed: an order paid ([`confirm_paid`], one
//! statement for a whole group-committed batch), shipped, cancelled or refunded
//! ([`enqueue_order_mail`]), a password reset asked for. Every process runs a sender
//! ([`sender`]) that claims due messages, sends them over SMTP and marks them sent, or retries
//! them with backoff and, after `mail.max_attempts`, keeps them as failed (never dropped).
//!
//! Promises: delivery is at least once. Several processes never send one message twice in
//! the normal case (a claim is a row lock taken with `SKIP LOCKED` and a lease committed
//! before the send); a process dying between the SMTP server's acceptance and the mark re-sends
//! that one message after its lease, with the same `Message-ID`, so a receiver can tell.
//! Nothing here imports the web layer; the templates speak the store's four languages (en, de,
//! fr, ja) and write money as the pages do (`money::written`).

pub mod orders;
pub mod sender;
mod templates;

use uuid::Uuid;

use crate::{db::PreparedClient, error::Error};

pub use orders::{confirm_paid, enqueue_order_mail, OrderMail};
pub use sender::{purge_sent, start_sender};
pub use templates::Language;

crate::text_enum! {
    /// What a message is about (`mail_outbox.kind`).
    pub enum MailKind {
        OrderConfirmed = "order_confirmed",
        OrderShipped = "order_shipped",
        OrderCancelled = "order_cancelled",
        OrderRefunded = "order_refunded",
        PasswordReset = "password_reset",
    }
}

/// One message, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub recipient: String,
    pub language: Language,
    pub kind: MailKind,
    pub subject: String,
    pub body: String,
}

/// The mail with a password-reset `link`, valid for `minutes`.
pub fn password_reset_mail(
    recipient: String,
    language: Language,
    name: Option<&str>,
    link: &str,
    minutes: u64,
) -> Mail {
    let (subject, body) = templates::password_reset(language, name, link, minutes);
    Mail {
        recipient,
        language,
        kind: MailKind::PasswordReset,
        subject,
        body,
    }
}

/// Writes `mail` into the outbox in the caller's transaction: it is sent once that commits,
/// and never if it rolls back.
pub async fn enqueue(tx: &impl PreparedClient, mail: &Mail) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO mail_outbox (id, recipient, locale, kind, subject, body)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &Uuid::now_v7(),
            &mail.recipient,
            &mail.language.tag(),
            &mail.kind.as_str(),
            &mail.subject,
            &mail.body,
        ],
    )
    .await?;
    Ok(())
}

/// Writes many messages in one statement (a group-committed batch's confirmations).
pub(crate) async fn enqueue_all(tx: &impl PreparedClient, mails: &[Mail]) -> Result<(), Error> {
    if mails.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = mails.iter().map(|_| Uuid::now_v7()).collect();
    let column = |pick: fn(&Mail) -> &str| mails.iter().map(pick).collect::<Vec<&str>>();
    tx.execute_planned_per_call(
        "INSERT INTO mail_outbox (id, recipient, locale, kind, subject, body)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[])",
        &[
            &ids,
            &column(|mail| &mail.recipient),
            &column(|mail| mail.language.tag()),
            &column(|mail| mail.kind.as_str()),
            &column(|mail| &mail.subject),
            &column(|mail| &mail.body),
        ],
    )
    .await?;
    Ok(())
}

/// What mail written in SQL needs of the settings (the `mail_defaults` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// The store's default locale, for shoppers without one.
    pub locale: String,
    /// Where people reach the store, without a trailing slash, for links.
    pub public_url: String,
}

/// Records this process's defaults (done at start, once the listener is bound; every process
/// of a store should have the same `http.public_url`).
pub async fn sync_defaults(client: &impl PreparedClient, defaults: &Defaults) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO mail_defaults (singleton, locale, public_url) VALUES (true, $1, $2)
             ON CONFLICT (singleton) DO UPDATE SET locale = $1, public_url = $2",
            &[&defaults.locale, &defaults.public_url.trim_end_matches('/')],
        )
        .await?;
    Ok(())
}

/// The recorded defaults (English and no base URL before any process recorded them).
pub async fn defaults(client: &impl PreparedClient) -> Result<Defaults, Error> {
    let row = client
        .query_opt("SELECT locale, public_url FROM mail_defaults", &[])
        .await?;
    Ok(row.map_or_else(
        || Defaults {
            locale: "en".into(),
            public_url: String::new(),
        },
        |row| Defaults {
            locale: row.get(0),
            public_url: row.get(1),
        },
    ))
}
