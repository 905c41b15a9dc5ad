//! The accounts service: signing shoppers up and in and out, changing a password, and a guest
//! becoming a registered shopper. Profile changes, password resets and deletion add their own
//! methods beside it (`profile`, `resets`, `erasure`).

use std::time::Duration;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    locale::Locale,
    money::FxRates,
    sellers::Email,
    sign_in_throttle::SignInThrottle,
    stock_counters::StockCounters,
};

use super::{
    credentials, open_session, parse_password, parse_password_in, password_hash, register,
    register_guest, revoke, revoke_all_but, Session, Shopper,
};

/// Signing shoppers up and in and managing their accounts: the pool, the bounded password
/// hashing, how long sessions and reset links last, the throttles. Cheap to clone; the JSON
/// API and the browser pages both go through it.
#[derive(Clone)]
pub struct Accounts {
    pub pool: deadpool_postgres::Pool,
    pub passwords: super::PasswordHashing,
    pub session_ttl: Duration,
    /// Failed sign-ins (and wrong current passwords) per account and per client address,
    /// across processes.
    pub throttle: SignInThrottle,
    /// Password resets asked for, per account and per client address.
    pub reset_throttle: SignInThrottle,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// The store's currencies: the ones a shopper may prefer.
    pub fx: FxRates,
    /// Dropped for the SKUs whose units a deleted account's carts gave back.
    pub counters: StockCounters,
    /// Told of every session this revokes, so no process keeps trusting it.
    pub credentials: crate::credentials::CredentialCache,
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
        super::authenticate(&*client, token).await
    }

    /// Ends the session of this token.
    pub async fn sign_out(&self, token: &str) -> Result<(), Error> {
        let client = self.pool.get().await?;
        revoke(&*client, token).await?;
        let digest = crate::tokens::digest(token);
        self.credentials
            .revoke(crate::credentials::credential(&digest))
            .await;
        Ok(())
    }

    /// After a change of the shopper's account committed: no process trusts what it
    /// remembered of the shopper's sessions any more.
    pub(super) async fn forget_sessions(&self, shopper_id: uuid::Uuid) {
        let everything = crate::credentials::Revocation::Subject { id: shopper_id };
        self.credentials.revoke(everything).await;
    }

    /// Checks the password a registered shopper gave to confirm a change of their account,
    /// counted and throttled like a sign-in from `address`: 403 `wrong_password`, 429 once
    /// the account or address failed too often, 409 `guest_account` for a guest.
    pub(super) async fn confirm_password(
        &self,
        shopper: &Shopper,
        password: &str,
        address: &str,
    ) -> Result<(), Error> {
        let Some(email) = shopper.email.as_deref() else {
            return Err(guest_account());
        };
        self.throttle.check(email, address).await?;
        let client = self.pool.get().await?;
        let stored = password_hash(&*client, shopper.id).await?;
        drop(client);
        if !self.passwords.verify(password.to_owned(), stored).await? {
            self.throttle.failed(email, address).await;
            return Err(Error::Forbidden {
                code: Code::WrongPassword,
                message: "the current password is wrong".into(),
            });
        }
        Ok(())
    }

    /// Sets a new password after checking the current one; every other session of the
    /// shopper is revoked (the one of `token`, the caller's, stays valid) and outstanding
    /// reset links stop working.
    pub async fn change_password(
        &self,
        shopper: &Shopper,
        token: &str,
        current: &str,
        new: &str,
        address: &str,
    ) -> Result<(), Error> {
        let new = parse_password_in("new_password", new)?;
        self.confirm_password(shopper, current, address).await?;
        let hash = self.passwords.hash(new).await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE shoppers SET password_hash = $2
             WHERE id = $1 AND email IS NOT NULL AND deleted_at IS NULL",
                &[&shopper.id, &hash],
            )
            .await?;
        if changed == 0 {
            return Err(Error::Unauthorized("the account no longer exists"));
        }
        let revoked = revoke_all_but(&tx, shopper.id, Some(token)).await?;
        tx.commit().await?;
        self.forget_sessions(shopper.id).await;
        tracing::info!(shopper_id = %shopper.id, revoked, "password changed");
        Ok(())
    }

    /// A guest becomes a registered shopper with this email and password, keeping its id, so
    /// its carts, orders and sessions stay its own; 409 `email_taken` when another account has
    /// the address, 409 `already_registered` for a registered shopper.
    pub async fn register_guest_account(
        &self,
        shopper: &Shopper,
        email: &Email,
        password: &str,
    ) -> Result<Shopper, Error> {
        if !shopper.guest {
            return Err(already_registered());
        }
        let password = parse_password(password)?;
        let hash = self.passwords.hash(password).await?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE shoppers SET email = $2, password_hash = $3
             WHERE id = $1 AND email IS NULL AND deleted_at IS NULL
             RETURNING id, email, name, locale, currency, created_at",
                &[&shopper.id, &email.as_str(), &hash],
            )
            .await
            .map_err(super::email_taken)?
            .ok_or_else(already_registered)?;
        self.forget_sessions(shopper.id).await;
        tracing::info!(shopper_id = %shopper.id, "guest registered");
        Ok(Shopper::from_row(&row))
    }
}

pub(super) fn guest_account() -> Error {
    Error::Conflict {
        code: Code::GuestAccount,
        message: "a guest has no password; register first".into(),
        field: None,
    }
}

fn already_registered() -> Error {
    Error::Conflict {
        code: Code::AlreadyRegistered,
        message: "this shopper is registered already".into(),
        field: None,
    }
}
