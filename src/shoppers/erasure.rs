//! Deleting an account: its personal data erased at once, in one transaction (email, name,
//! password, sessions, reset tokens, carts with their held units, address book, idempotency
//! keys with their stored answers, recommendation signals, mail to its address); the shopper
//! row stays, marked `deleted_at`, because orders reference it, and its email is free for a new
//! account at once. Orders keep their contact email and shipping address for the books until
//! `accounts.order_retention_days`; the upkeep ([`erase_expired_order_contacts`], run by
//! `crate::upkeep`) erases them after that, a bounded batch at a time.

use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
};

use super::{Accounts, Shopper};

/// Most orders one upkeep statement erases the contact of.
pub const ERASE_BATCH: i64 = 500;

impl Accounts {
    /// Deletes the shopper's account. A registered shopper confirms with its password
    /// (checked and throttled like a sign-in from `address`: 403 `wrong_password`); a guest
    /// has none to give.
    pub async fn delete_account(
        &self,
        shopper: &Shopper,
        password: Option<&str>,
        address: &str,
    ) -> Result<(), Error> {
        if !shopper.guest {
            let password = password.ok_or_else(|| {
                Error::invalid_field(
                    Code::MissingField,
                    "password",
                    "confirm with the account's password",
                )
            })?;
            self.confirm_password(shopper, password, address).await?;
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let skus = erase(&tx, shopper.id).await?;
        tx.commit().await?;
        self.forget_sessions(shopper.id).await;
        // Units the carts held are back: their counters are rebuilt from Postgres.
        self.counters.stock_returned(&skus).await;
        tracing::info!(shopper_id = %shopper.id, "account deleted");
        Ok(())
    }
}

/// Erases the shopper's personal data and marks it deleted, in the caller's transaction;
/// answers the SKUs whose held units went back to stock. 404 when there is no such live
/// shopper.
pub async fn erase(tx: &impl PreparedClient, shopper_id: Uuid) -> Result<Vec<String>, Error> {
    let email: Option<String> = tx
        .query_opt(
            "SELECT email FROM shoppers WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            &[&shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("shopper"))?
        .get(0);
    let skus = empty_carts(tx, shopper_id).await?;
    for statement in [
        "DELETE FROM shopper_sessions WHERE shopper_id = $1",
        "DELETE FROM password_resets WHERE shopper_id = $1",
        "DELETE FROM idempotency_keys WHERE shopper_id = $1",
        "DELETE FROM reco_signals WHERE shopper_id = $1",
    ] {
        tx.execute(statement, &[&shopper_id]).await?;
    }
    // The address book (V10) where this database has one.
    let has_address_book: bool = tx
        .query_one("SELECT to_regclass('shopper_addresses') IS NOT NULL", &[])
        .await?
        .get(0);
    if has_address_book {
        tx.execute_planned_per_call(
            "DELETE FROM shopper_addresses WHERE shopper_id = $1",
            &[&shopper_id],
        )
        .await?;
    }
    if let Some(email) = email {
        tx.execute(
            "DELETE FROM mail_outbox WHERE lower(recipient) = lower($1)",
            &[&email],
        )
        .await?;
    }
    tx.execute(
        "UPDATE shoppers SET email = NULL, password_hash = NULL, name = NULL, deleted_at = now()
         WHERE id = $1",
        &[&shopper_id],
    )
    .await?;
    Ok(skus)
}

/// Deletes the shopper's carts, their held units back to stock (each variant row locked once,
/// in id order, as the inventory shards lock them); answers their SKUs.
async fn empty_carts(tx: &impl PreparedClient, shopper_id: Uuid) -> Result<Vec<String>, Error> {
    let carts: Vec<String> = tx
        .query(
            "SELECT id::text FROM carts WHERE shopper_id = $1 ORDER BY id FOR UPDATE",
            &[&shopper_id],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if carts.is_empty() {
        return Ok(Vec::new());
    }
    let released = tx
        .query(
            "WITH released AS (
                 UPDATE stock_holds SET released_at = now()
                 WHERE owner = ANY($1) AND released_at IS NULL AND order_id IS NULL
                 RETURNING variant_id, quantity)
             SELECT variant_id, sum(quantity)::int4 FROM released
             GROUP BY variant_id ORDER BY variant_id",
            &[&carts],
        )
        .await?;
    let mut skus = Vec::with_capacity(released.len());
    for row in &released {
        let variant: Uuid = row.get(0);
        let units: i32 = row.get(1);
        let sku: String = tx
            .query_one(
                "UPDATE variants SET held = held - $2 WHERE id = $1 RETURNING sku",
                &[&variant, &units],
            )
            .await?
            .get(0);
        skus.push(sku);
    }
    tx.execute("DELETE FROM carts WHERE shopper_id = $1", &[&shopper_id])
        .await?;
    Ok(skus)
}

/// Erases the contact email and shipping address of a batch of deleted shoppers' orders
/// older than `retention_days`; answers how many orders it erased.
pub async fn erase_expired_order_contacts(
    client: &impl PreparedClient,
    retention_days: u32,
) -> Result<u64, Error> {
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    Ok(client
        .execute(
            "UPDATE orders SET contact_email = NULL, shipping_address = NULL
             WHERE id IN (
                 SELECT o.id FROM shoppers s JOIN orders o ON o.shopper_id = s.id
                 WHERE s.deleted_at IS NOT NULL
                   AND o.created_at < now() - make_interval(days => $1)
                   AND (o.contact_email IS NOT NULL OR o.shipping_address IS NOT NULL)
                 LIMIT $2)",
            &[&days, &ERASE_BATCH],
        )
        .await?)
}
