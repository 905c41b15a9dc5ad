//! Seller accounts: onboarding, API-key authentication, and the operator's list, suspension
//! and reinstatement.
//!
//! Promises: an API key ([`tokens`]) is returned once, at onboarding, and stored only as its
//! digest; one account per email address, compared without case; a suspended seller's key
//! stops working and its products leave the storefront in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    error::{Code, Error},
    tokens,
};

/// Prefix of every seller API key, so a leaked key is recognisable in logs and scanners.
pub const API_KEY_PREFIX: &str = "agora_sk_";
/// Longest seller name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Most sellers one page of the operator's list shows.
pub const MAX_LIST: i64 = 200;

/// A seller's display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters.
#[derive(Debug, Clone)]
pub struct SellerName(String);

impl SellerName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Error> {
        let name = raw.trim();
        let length = name.chars().count();
        if length == 0 || length > MAX_NAME_CHARS {
            return Err(Error::invalid_field(
                Code::InvalidLength,
                field,
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid_field(
                Code::InvalidCharacters,
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }
}

/// An email address in the form `local@domain.tld`, trimmed.
#[derive(Debug, Clone)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Error> {
        let email = raw.trim();
        let well_formed = email.chars().count() <= MAX_EMAIL_CHARS
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.split('.').count() >= 2
                    && domain.split('.').all(|label| !label.is_empty())
            });
        if !well_formed {
            return Err(Error::invalid_field(
                Code::InvalidEmail,
                field,
                "must be an email address such as seller@example.com",
            ));
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A seller as the seller itself may see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Seller {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl Seller {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            email: row.get("email"),
            status: row.get("status"),
            created_at: row.get("created_at"),
        }
    }
}

/// A newly onboarded seller with the only copy of its API key.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OnboardedSeller {
    #[serde(flatten)]
    pub seller: Seller,
    #[schema(example = "agora_sk_…")]
    pub api_key: String,
}

/// Creates a seller account; 409 `email_taken` when the address already has one.
pub async fn onboard(
    client: &impl crate::db::PreparedClient,
    name: &SellerName,
    email: &Email,
) -> Result<OnboardedSeller, Error> {
    let api_key = tokens::new_token(API_KEY_PREFIX);
    let row = client
        .query_one(
            "INSERT INTO sellers (id, name, email, api_key_hash) VALUES ($1, $2, $3, $4)
             RETURNING id, name, email, status, created_at",
            &[
                &Uuid::now_v7(),
                &name.0,
                &email.0,
                &tokens::digest(&api_key),
            ],
        )
        .await
        .map_err(|error| {
            if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Error::Conflict {
                    code: Code::EmailTaken,
                    message: "a seller with this email address already exists".into(),
                    field: Some("email".into()),
                }
            } else {
                error.into()
            }
        })?;
    Ok(OnboardedSeller {
        seller: Seller::from_row(&row),
        api_key,
    })
}

/// The active seller owning `api_key`; suspended sellers and unknown keys are both refused.
pub async fn authenticate(
    client: &impl crate::db::PreparedClient,
    api_key: &str,
) -> Result<Seller, Error> {
    authenticate_with(client, api_key, false).await
}

/// [`authenticate`], a suspended seller included: its key still serves the orders it sold
/// before (read, ship, cancel, refund, returns), and nothing else.
pub async fn authenticate_for_orders(
    client: &impl crate::db::PreparedClient,
    api_key: &str,
) -> Result<Seller, Error> {
    authenticate_with(client, api_key, true).await
}

async fn authenticate_with(
    client: &impl crate::db::PreparedClient,
    api_key: &str,
    suspended_too: bool,
) -> Result<Seller, Error> {
    if !api_key.starts_with(API_KEY_PREFIX) {
        return Err(Error::Unauthorized("not a seller API key"));
    }
    let row = client
        .query_opt(
            "SELECT id, name, email, status, created_at FROM sellers
             WHERE api_key_hash = $1 AND (status = 'active' OR $2)",
            &[&tokens::digest(api_key), &suspended_too],
        )
        .await?;
    row.map(|row| Seller::from_row(&row))
        .ok_or(Error::Unauthorized("unknown or revoked API key"))
}

/// Sets a seller's status (`active` or `suspended`), for the operator.
pub async fn set_status(
    client: &impl crate::db::PreparedClient,
    id: Uuid,
    status: &str,
) -> Result<Seller, Error> {
    let row = client
        .query_opt(
            "UPDATE sellers SET status = $2 WHERE id = $1
             RETURNING id, name, email, status, created_at",
            &[&id, &status],
        )
        .await?
        .ok_or(Error::NotFound("seller"))?;
    Ok(Seller::from_row(&row))
}

/// Sellers whose name or email contains `query` (without case; every seller without one),
/// newest first, at most `limit` (capped at [`MAX_LIST`]).
pub async fn list(
    client: &impl crate::db::PreparedClient,
    query: Option<&str>,
    limit: i64,
) -> Result<Vec<Seller>, Error> {
    let pattern = query.map(str::trim).filter(|q| !q.is_empty()).map(|q| {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = client
        .query(
            "SELECT id, name, email, status, created_at FROM sellers
             WHERE $1::text IS NULL OR name ILIKE $1 OR email ILIKE $1
             ORDER BY created_at DESC, id DESC LIMIT $2",
            &[&pattern, &limit.clamp(1, MAX_LIST)],
        )
        .await?;
    Ok(rows.iter().map(Seller::from_row).collect())
}

/// Suspends a seller (the operator): its key stops working and its products leave the
/// storefront.
pub async fn suspend(
    pool: &deadpool_postgres::Pool,
    hot: &crate::hot_state::HotState,
    credentials: &crate::credentials::CredentialCache,
    id: Uuid,
) -> Result<Seller, Error> {
    change_status(pool, hot, credentials, id, "suspended").await
}

/// Reinstates a suspended seller (the operator): its key works again and its active
/// products are back on the storefront.
pub async fn reinstate(
    pool: &deadpool_postgres::Pool,
    hot: &crate::hot_state::HotState,
    credentials: &crate::credentials::CredentialCache,
    id: Uuid,
) -> Result<Seller, Error> {
    change_status(pool, hot, credentials, id, "active").await
}

/// One transaction sets the status and relists the seller's products; then their cached
/// copies are evicted, so the storefront shows the change at once.
async fn change_status(
    pool: &deadpool_postgres::Pool,
    hot: &crate::hot_state::HotState,
    credentials: &crate::credentials::CredentialCache,
    id: Uuid,
    status: &str,
) -> Result<Seller, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let seller = set_status(&tx, id, status).await?;
    crate::catalog::relist_seller(&tx, id).await?;
    tx.commit().await?;
    // Every process reads the seller's key again: suspended, it serves only its orders.
    let everything = crate::credentials::Revocation::Subject { id };
    credentials.revoke(everything).await;
    let products = crate::catalog::product_ids_of(&*client, id).await?;
    crate::catalog::cache::evict(hot, &products).await;
    tracing::info!(seller_id = %id, status, products = products.len(), "seller status changed");
    Ok(seller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_without_a_dotted_domain_are_refused() {
        for bad in ["", "a", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@b..c"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse("email", " Shop@Example.com ").is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert!(SellerName::parse("name", "   ").is_err());
        assert!(SellerName::parse("name", &"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(SellerName::parse("name", "Müller & Söhne").is_ok());
    }
}
