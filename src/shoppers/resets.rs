//! Password resets: a single-use token, valid `auth.password_reset_ttl_mins`, mailed as a
//! link (`{public url}/password-resets/{token}`) in the transaction that stores its digest;
//! setting a password with it uses it (and every other outstanding one of the shopper) and
//! revokes every session.
//!
//! Asking reveals nothing: a known and an unknown email get the same 202 after the same
//! statement (which stores a token only for a known one), and both count against the throttle
//! (per account and per client address) before anything else.

use chrono::Utc;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    mail::{self, Language},
    sellers::Email,
    tokens,
};

use super::{parse_password, revoke_all_but, Accounts, RESET_TOKEN_PREFIX};

fn invalid_token() -> Error {
    Error::BadRequest {
        code: Code::InvalidResetToken,
        message: "this password-reset link is unknown, used or expired; ask for a new one".into(),
        field: Some("token".into()),
    }
}

impl Accounts {
    /// Mails a reset link to the account with `email`, if there is one, asked from
    /// `address`; 429 once the account or the address asked too often.
    pub async fn request_password_reset(&self, email: &Email, address: &str) -> Result<(), Error> {
        self.reset_throttle.check(email.as_str(), address).await?;
        self.reset_throttle.failed(email.as_str(), address).await;
        let token = tokens::new_token(RESET_TOKEN_PREFIX);
        let expires_at =
            Utc::now() + chrono::Duration::from_std(self.reset_ttl).map_err(Error::internal)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let account = tx
            .query_opt(
                "WITH s AS (
                     SELECT id, email, name, locale FROM shoppers
                     WHERE lower(email) = lower($1) AND deleted_at IS NULL),
                 r AS (
                     INSERT INTO password_resets (token_hash, shopper_id, expires_at)
                     SELECT $2, id, $3 FROM s)
                 SELECT s.email, s.name, s.locale, coalesce(d.locale, 'en'),
                        coalesce(d.public_url, '')
                 FROM s LEFT JOIN mail_defaults d ON true",
                &[&email.as_str(), &tokens::digest(&token), &expires_at],
            )
            .await?;
        if let Some(account) = account {
            let locale: Option<String> = account.get(2);
            let store_locale: String = account.get(3);
            let base: String = account.get(4);
            let language = Language::choose(locale.as_deref(), &store_locale);
            let name: Option<String> = account.get(1);
            let mail = mail::password_reset_mail(
                account.get(0),
                language,
                name.as_deref(),
                &format!("{base}/password-resets/{token}"),
                self.reset_ttl.as_secs() / 60,
            );
            mail::enqueue(&tx, &mail).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets the password of the shopper whose reset `token` this is: 400
    /// `invalid_reset_token` when it is unknown, used or expired; the token (and every other
    /// one of the shopper) is used up and every session revoked.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<(), Error> {
        let password = parse_password(password)?;
        if !token.starts_with(RESET_TOKEN_PREFIX) {
            return Err(invalid_token());
        }
        let digest = tokens::digest(token);
        // Checked before hashing, so an unknown token costs no hash.
        let client = self.pool.get().await?;
        client
            .query_opt(
                "SELECT 1 FROM password_resets
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
                &[&digest],
            )
            .await?
            .ok_or_else(invalid_token)?;
        drop(client);
        let hash = self.passwords.hash(password).await?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let shopper_id: uuid::Uuid = tx
            .query_opt(
                "UPDATE password_resets SET used_at = now()
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
                 RETURNING shopper_id",
                &[&digest],
            )
            .await?
            .ok_or_else(invalid_token)?
            .get(0);
        let changed = tx
            .execute(
                "UPDATE shoppers SET password_hash = $2
                 WHERE id = $1 AND email IS NOT NULL AND deleted_at IS NULL",
                &[&shopper_id, &hash],
            )
            .await?;
        if changed == 0 {
            return Err(invalid_token());
        }
        let revoked = revoke_all_but(&tx, shopper_id, None).await?;
        tx.commit().await?;
        self.forget_sessions(shopper_id).await;
        tracing::info!(%shopper_id, revoked, "password reset");
        Ok(())
    }
}
