//! Shopper accounts and sessions: sign-up (or a guest session), sign-in and out, the own
//! profile, password change and reset, a guest's registration, and deleting the account.
//!
//! Promises: passwords are stored only as argon2id hashes, computed off the HTTP workers and
//! at most `auth.max_concurrent_password_hashes` at once per process ([`passwords`]); session
//! and reset tokens are 256 random bits, shown once and stored as SHA-256 digests; sessions
//! expire and can be revoked, reset tokens work once within `auth.password_reset_ttl_mins`.
//! A sign-in or reset for an unknown email answers as for a known one (the same hash, the same
//! 202), and wrong passwords and reset requests are throttled per account and per address. A
//! deleted account keeps only its row (orders reference it): its personal data is erased at
//! once, its orders' contact and address after `accounts.order_retention_days` ([`erasure`]).

mod accounts;
pub mod erasure;
mod passwords;
mod profile;
mod resets;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    locale::Locale,
    sellers::Email,
    tokens,
};

pub use accounts::Accounts;
pub use passwords::{parse_password, parse_password_in, PasswordHashing, HASH_QUEUE_WAIT};
pub use profile::ProfileChange;

/// Prefix of every shopper session token.
pub const TOKEN_PREFIX: &str = "agora_st_";
/// Prefix of every password-reset token.
pub const RESET_TOKEN_PREFIX: &str = "agora_pr_";
/// Password length bounds, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Shopper {
    pub id: Uuid,
    /// Absent for guests.
    pub email: Option<String>,
    /// How the shopper wants to be addressed (in mail, on pages).
    pub name: Option<String>,
    pub locale: Option<String>,
    /// The currency the shopper prefers prices in (ISO 4217).
    pub currency: Option<String>,
    pub guest: bool,
    pub created_at: DateTime<Utc>,
}

impl Shopper {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let email: Option<String> = row.get("email");
        let currency: Option<String> = row.get("currency");
        Self {
            id: row.get("id"),
            guest: email.is_none(),
            email,
            name: row.get("name"),
            locale: row.get("locale"),
            currency: currency.map(|code| code.trim().to_owned()),
            created_at: row.get("created_at"),
        }
    }
}

/// A new session: the only copy of its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// 409 `email_taken` for a unique violation of the email, else the database error.
fn email_taken(error: tokio_postgres::Error) -> Error {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        Error::Conflict {
            code: Code::EmailTaken,
            message: "a shopper with this email address already exists".into(),
            field: Some("email".into()),
        }
    } else {
        error.into()
    }
}

/// Registers a shopper with email and password; 409 `email_taken` when the address has one.
pub async fn register(
    client: &impl PreparedClient,
    email: &Email,
    password_hash: &str,
    locale: Option<&Locale>,
) -> Result<Shopper, Error> {
    let row = client
        .query_one(
            "INSERT INTO shoppers (id, email, password_hash, locale) VALUES ($1, $2, $3, $4)
             RETURNING id, email, name, locale, currency, created_at",
            &[
                &Uuid::now_v7(),
                &email.as_str(),
                &password_hash,
                &locale.map(Locale::as_str),
            ],
        )
        .await
        .map_err(email_taken)?;
    Ok(Shopper::from_row(&row))
}

/// A guest: no email, no password; only its session token identifies it.
pub async fn register_guest(
    client: &impl PreparedClient,
    locale: Option<&Locale>,
) -> Result<Shopper, Error> {
    let row = client
        .query_one(
            "INSERT INTO shoppers (id, locale) VALUES ($1, $2)
             RETURNING id, email, name, locale, currency, created_at",
            &[&Uuid::now_v7(), &locale.map(Locale::as_str)],
        )
        .await?;
    Ok(Shopper::from_row(&row))
}

/// The id and password hash of the shopper with this email, if any.
pub async fn credentials(
    client: &impl PreparedClient,
    email: &Email,
) -> Result<Option<(Uuid, String)>, Error> {
    Ok(client
        .query_opt(
            "SELECT id, password_hash FROM shoppers WHERE lower(email) = lower($1)",
            &[&email.as_str()],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// The password hash of a shopper (none for a guest).
pub async fn password_hash(
    client: &impl PreparedClient,
    shopper_id: Uuid,
) -> Result<Option<String>, Error> {
    Ok(client
        .query_opt(
            "SELECT password_hash FROM shoppers WHERE id = $1",
            &[&shopper_id],
        )
        .await?
        .and_then(|row| row.get(0)))
}

/// The shopper with this id.
pub async fn find(client: &impl PreparedClient, shopper_id: Uuid) -> Result<Shopper, Error> {
    client
        .query_opt(
            "SELECT id, email, name, locale, currency, created_at FROM shoppers
             WHERE id = $1 AND deleted_at IS NULL",
            &[&shopper_id],
        )
        .await?
        .map(|row| Shopper::from_row(&row))
        .ok_or(Error::NotFound("shopper"))
}

pub async fn open_session(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    ttl: Duration,
) -> Result<Session, Error> {
    let token = tokens::new_token(TOKEN_PREFIX);
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).map_err(Error::internal)?;
    client
        .execute(
            "INSERT INTO shopper_sessions (token_hash, shopper_id, expires_at) VALUES ($1, $2, $3)",
            &[&tokens::digest(&token), &shopper_id, &expires_at],
        )
        .await?;
    Ok(Session { token, expires_at })
}

/// The shopper owning a live session token.
pub async fn authenticate(client: &impl PreparedClient, token: &str) -> Result<Shopper, Error> {
    Ok(authenticate_session(client, token).await?.0)
}

/// The shopper owning a live session token, and until when the session lasts.
pub async fn authenticate_session(
    client: &impl PreparedClient,
    token: &str,
) -> Result<(Shopper, DateTime<Utc>), Error> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(Error::Unauthorized("not a shopper session token"));
    }
    client
        .query_opt(
            "SELECT s.id, s.email, s.name, s.locale, s.currency, s.created_at, t.expires_at
             FROM shopper_sessions t
             JOIN shoppers s ON s.id = t.shopper_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()
               AND s.deleted_at IS NULL",
            &[&tokens::digest(token)],
        )
        .await?
        .map(|row| (Shopper::from_row(&row), row.get("expires_at")))
        .ok_or(Error::Unauthorized(
            "unknown, expired or revoked session token",
        ))
}

pub async fn revoke(client: &impl PreparedClient, token: &str) -> Result<(), Error> {
    client
        .execute(
            "UPDATE shopper_sessions SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&tokens::digest(token)],
        )
        .await?;
    Ok(())
}

/// Revokes every live session of the shopper but `keep` (the caller's own, if any), and
/// uses up its outstanding password-reset tokens: after a password changes, nothing opened
/// or mailed with the old one still works.
pub async fn revoke_all_but(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    keep: Option<&str>,
) -> Result<u64, Error> {
    let keep = keep.map(tokens::digest);
    let revoked = client
        .execute(
            "UPDATE shopper_sessions SET revoked_at = now()
             WHERE shopper_id = $1 AND revoked_at IS NULL
               AND ($2::bytea IS NULL OR token_hash <> $2)",
            &[&shopper_id, &keep],
        )
        .await?;
    client
        .execute(
            "UPDATE password_resets SET used_at = now()
             WHERE shopper_id = $1 AND used_at IS NULL",
            &[&shopper_id],
        )
        .await?;
    Ok(revoked)
}
