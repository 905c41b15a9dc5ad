//! Password hashing (argon2id), bounded: computed on the blocking pool, at most
//! `auth.max_concurrent_password_hashes` at once per process; a caller waits at most
//! [`HASH_QUEUE_WAIT`] for a slot, then gets 503. An unknown account costs the same hash as a
//! wrong password.

use std::{sync::Arc, time::Duration};

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use tokio::sync::Semaphore;

use super::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use crate::error::{Code, Error};

/// Longest a sign-in waits for a free password-hashing slot before it gets 503.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(1);

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

/// A new password, for the field `password`.
pub fn parse_password(raw: &str) -> Result<String, Error> {
    parse_password_in("password", raw)
}

/// A new password of the right length; 422 `invalid_password` naming `field` otherwise.
pub fn parse_password_in(field: &str, raw: &str) -> Result<String, Error> {
    let length = raw.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length) {
        return Err(Error::invalid_field(
            Code::InvalidPassword,
            field,
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(raw.to_owned())
}
