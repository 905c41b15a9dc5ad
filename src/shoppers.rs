//! Shopper accounts and sessions.
//!
//! Promises: passwords are stored only as argon2id hashes, computed off the HTTP workers and
//! at most `auth.max_concurrent_password_hashes` at once per process (more wait up to
//! [`HASH_QUEUE_WAIT`], then get 503); session tokens are 256 random bits, shown once and stored
//! as SHA-256 digests, and they expire and can be revoked. A sign-in with an unknown email
//! costs the same hash as one with a wrong password, so timing does not reveal accounts.

use std::{sync::Arc, time::Duration};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_postgres::error::SqlState;

use crate::db::PreparedClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::{Code, Error},
    locale::Locale,
    sellers::Email,
    tokens,
};

/// Prefix of every shopper session token.
pub const TOKEN_PREFIX: &str = "agora_st_";
/// Password length bounds, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest a sign-in waits for a free password-hashing slot before it gets 503.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Shopper {
    pub id: Uuid,
    /// Absent for guests.
    pub email: Option<String>,
    pub locale: Option<String>,
    pub guest: bool,
    pub created_at: DateTime<Utc>,
}

impl Shopper {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let email: Option<String> = row.get("email");
        Self {
            id: row.get("id"),
            guest: email.is_none(),
            email,
            locale: row.get("locale"),
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

/// Hashes and verifies passwords on the blocking pool, a bounded number at once.
#[derive(Clone)]
pub struct PasswordHashing {
    /// One permit per hash allowed to run; argon2id takes ~19 MiB and a core for tens of ms.
    slots: Arc<Semaphore>,
}

impl PasswordHashing {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = tokio::time::timeout(HASH_QUEUE_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| Error::Unavailable("too many sign-ins at once; retry shortly".into()))?
            .map_err(Error::internal)?;
        let result = actix_web::web::block(work).await.map_err(Error::internal)?;
        drop(permit);
        Ok(result)
    }

    pub async fn hash(&self, password: String) -> Result<String, Error> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(|e| Error::internal(anyhow::anyhow!("hashing a password: {e}")))
    }

    /// Verifies `password` against `stored`, or against a dummy hash when there is none.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Error> {
        let has_account = stored.is_some();
        self.run(move || {
            let dummy;
            let stored = match &stored {
                Some(hash) => hash.as_str(),
                None => {
                    let salt = SaltString::generate(&mut OsRng);
                    dummy = Argon2::default()
                        .hash_password(b"no such account", &salt)
                        .map(|h| h.to_string())
                        .unwrap_or_default();
                    dummy.as_str()
                }
            };
            PasswordHash::new(stored)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .map(|valid| valid && has_account)
    }
}

pub fn parse_password(raw: &str) -> Result<String, Error> {
    let length = raw.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Error::invalid_field(
            Code::InvalidPassword,
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(raw.to_owned())
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
             RETURNING id, email, locale, created_at",
            &[
                &Uuid::now_v7(),
                &email.as_str(),
                &password_hash,
                &locale.map(Locale::as_str),
            ],
        )
        .await
        .map_err(|error| {
            if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                Error::Conflict {
                    code: Code::EmailTaken,
                    message: "a shopper with this email address already exists".into(),
                    field: Some("email".into()),
                }
            } else {
                error.into()
            }
        })?;
    Ok(Shopper::from_row(&row))
}

/// A guest: no email, no password; only its session token identifies it.
pub async fn register_guest(
    client: &impl PreparedClient,
    locale: Option<&Locale>,
) -> Result<Shopper, Error> {
    let row = client
        .query_one(
            "INSERT INTO shoppers (id, locale) VALUES ($1, $2) RETURNING id, email, locale, created_at",
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
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(Error::Unauthorized("not a shopper session token"));
    }
    client
        .query_opt(
            "SELECT s.id, s.email, s.locale, s.created_at FROM shopper_sessions t
             JOIN shoppers s ON s.id = t.shopper_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()",
            &[&tokens::digest(token)],
        )
        .await?
        .map(|row| Shopper::from_row(&row))
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

/// Signing shoppers up and in: the pool, the bounded password hashing and how long a session
/// lasts. Cheap to clone; the JSON API and the browser pages both go through it.
#[derive(Clone)]
pub struct Accounts {
    pub pool: deadpool_postgres::Pool,
    pub passwords: PasswordHashing,
    pub session_ttl: Duration,
    /// Failed sign-ins per account and per client address, across processes.
    pub throttle: crate::sign_in_throttle::SignInThrottle,
}

impl Accounts {
    /// A new guest with its first session.
    pub async fn sign_up_guest(
        &self,
        locale: Option<&Locale>,
    ) -> Result<(Shopper, Session), Error> {
        let client = self.pool.get().await?;
        let shopper = register_guest(&*client, locale).await?;
        let session = open_session(&*client, shopper.id, self.session_ttl).await?;
        tracing::info!(shopper_id = %shopper.id, guest = true, "shopper registered");
        Ok((shopper, session))
    }

    /// A new shopper with email and password, and its first session.
    pub async fn sign_up(
        &self,
        email: &Email,
        password: &str,
        locale: Option<&Locale>,
    ) -> Result<(Shopper, Session), Error> {
        let password = parse_password(password)?;
        let hash = self.passwords.hash(password).await?;
        let client = self.pool.get().await?;
        let shopper = register(&*client, email, &hash, locale).await?;
        let session = open_session(&*client, shopper.id, self.session_ttl).await?;
        tracing::info!(shopper_id = %shopper.id, guest = false, "shopper registered");
        Ok((shopper, session))
    }

    /// A new session for the shopper with this email and password, signing in from
    /// `address`; 401 otherwise (an unknown email costs the same hash as a wrong password), and
    /// 429 once the account or the address has failed too often (the same for unknown
    /// accounts, so the answer reveals nothing).
    pub async fn sign_in(
        &self,
        email: &Email,
        password: &str,
        address: &str,
    ) -> Result<Session, Error> {
        self.throttle.check(email.as_str(), address).await?;
        let client = self.pool.get().await?;
        let account = credentials(&*client, email).await?;
        drop(client);
        let (id, hash) = match account {
            Some((id, hash)) => (Some(id), Some(hash)),
            None => (None, None),
        };
        let valid = self.passwords.verify(password.to_owned(), hash).await?;
        let Some(id) = id.filter(|_| valid) else {
            self.throttle.failed(email.as_str(), address).await;
            return Err(Error::Unauthorized("email or password is wrong"));
        };
        let client = self.pool.get().await?;
        open_session(&*client, id, self.session_ttl).await
    }

    /// The shopper owning a live session token.
    pub async fn authenticate(&self, token: &str) -> Result<Shopper, Error> {
        let client = self.pool.get().await?;
        authenticate(&*client, token).await
    }

    /// Ends the session of this token.
    pub async fn sign_out(&self, token: &str) -> Result<(), Error> {
        let client = self.pool.get().await?;
        revoke(&*client, token).await
    }
}
