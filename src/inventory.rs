//! Stock on hand per SKU, as sellers set it, and the append-only ledger of every change.
//!
//! Promises: stock never goes below zero; every change to it writes a ledger entry in the
//! same transaction (kind, delta, resulting stock, reason); a seller only ever touches SKUs of
//! its own products (others' are "not found"). What shoppers see is live from Postgres, never
//! cached. Later issues subtract held and sold units from `available`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{catalog::input::MAX_STOCK, http::error::ApiError};

/// Longest reason accepted for a stock change, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// Most ledger entries one page returns.
pub const MAX_LEDGER_PAGE: i64 = 200;

#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub sku: String,
    pub available: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StockLevel {
    pub sku: String,
    pub stock_on_hand: i32,
    pub ledger_entry: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: i64,
    /// `initial`, `set` or `adjust`.
    pub kind: String,
    pub delta: i32,
    pub stock_after: i32,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

pub fn parse_reason(raw: Option<&str>, default: &str) -> Result<String, ApiError> {
    let reason = raw.map(str::trim).unwrap_or(default);
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::invalid_field(
            "invalid_length",
            "reason",
            format!("must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// Stock a shopper may buy, for an SKU on the storefront.
pub async fn availability(
    client: &impl GenericClient,
    sku: &str,
) -> Result<Availability, ApiError> {
    let row = client
        .query_opt(
            "SELECT v.sku, v.stock_on_hand FROM variants v
             JOIN products p ON p.id = v.product_id AND p.status = 'active'
             JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
             WHERE upper(v.sku) = upper($1)",
            &[&sku],
        )
        .await?
        .ok_or(ApiError::NotFound("sku"))?;
    Ok(Availability {
        sku: row.get(0),
        available: i64::from(row.get::<_, i32>(1)),
    })
}

/// The seller's variant for `sku`, locked for the change.
async fn lock_own_variant(
    client: &impl GenericClient,
    seller_id: Uuid,
    sku: &str,
) -> Result<(Uuid, String, i32), ApiError> {
    let row = client
        .query_opt(
            "SELECT v.id, v.sku, v.stock_on_hand FROM variants v
             JOIN products p ON p.id = v.product_id
             WHERE upper(v.sku) = upper($1) AND p.seller_id = $2
             FOR UPDATE OF v",
            &[&sku, &seller_id],
        )
        .await?
        .ok_or(ApiError::NotFound("sku"))?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

async fn record(
    client: &impl GenericClient,
    variant: Uuid,
    sku: String,
    kind: &str,
    delta: i32,
    stock_after: i32,
    reason: &str,
) -> Result<StockLevel, ApiError> {
    client
        .execute(
            "UPDATE variants SET stock_on_hand = $2 WHERE id = $1",
            &[&variant, &stock_after],
        )
        .await?;
    let entry: i64 = client
        .query_one(
            "INSERT INTO stock_ledger (variant_id, kind, delta, stock_after, reason)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[&variant, &kind, &delta, &stock_after, &reason],
        )
        .await?
        .get(0);
    Ok(StockLevel {
        sku,
        stock_on_hand: stock_after,
        ledger_entry: entry,
    })
}

/// Sets stock on hand to an absolute value (a count after a stock-take).
pub async fn set(
    client: &impl GenericClient,
    seller_id: Uuid,
    sku: &str,
    stock: u32,
    reason: &str,
) -> Result<StockLevel, ApiError> {
    if stock > MAX_STOCK {
        return Err(ApiError::invalid_field(
            "stock_too_large",
            "stock_on_hand",
            format!("must not exceed {MAX_STOCK}"),
        ));
    }
    let stock = i32::try_from(stock).unwrap_or(i32::MAX);
    let (variant, sku, before) = lock_own_variant(client, seller_id, sku).await?;
    record(client, variant, sku, "set", stock - before, stock, reason).await
}

/// Adds `delta` (negative to remove) to stock on hand; 409 when the result would be negative.
pub async fn adjust(
    client: &impl GenericClient,
    seller_id: Uuid,
    sku: &str,
    delta: i32,
    reason: &str,
) -> Result<StockLevel, ApiError> {
    if delta == 0 {
        return Err(ApiError::invalid_field(
            "invalid_delta",
            "delta",
            "must not be zero",
        ));
    }
    let (variant, sku, before) = lock_own_variant(client, seller_id, sku).await?;
    let after = i64::from(before) + i64::from(delta);
    if after < 0 {
        return Err(ApiError::Conflict {
            code: "insufficient_stock",
            message: format!("only {before} on hand; cannot remove {}", -i64::from(delta)),
            field: Some("delta".into()),
        });
    }
    if after > i64::from(MAX_STOCK) {
        return Err(ApiError::invalid_field(
            "stock_too_large",
            "delta",
            format!("stock must not exceed {MAX_STOCK}"),
        ));
    }
    let after = i32::try_from(after).unwrap_or(i32::MAX);
    record(client, variant, sku, "adjust", delta, after, reason).await
}

/// The newest ledger entries of one of the seller's SKUs, newest first.
pub async fn ledger(
    client: &impl GenericClient,
    seller_id: Uuid,
    sku: &str,
    limit: i64,
) -> Result<Vec<LedgerEntry>, ApiError> {
    let variant: Uuid = client
        .query_opt(
            "SELECT v.id FROM variants v JOIN products p ON p.id = v.product_id
             WHERE upper(v.sku) = upper($1) AND p.seller_id = $2",
            &[&sku, &seller_id],
        )
        .await?
        .ok_or(ApiError::NotFound("sku"))?
        .get(0);
    Ok(client
        .query(
            "SELECT id, kind, delta, stock_after, reason, created_at FROM stock_ledger
             WHERE variant_id = $1 ORDER BY id DESC LIMIT $2",
            &[&variant, &limit.clamp(1, MAX_LEDGER_PAGE)],
        )
        .await?
        .into_iter()
        .map(|row| LedgerEntry {
            id: row.get(0),
            kind: row.get(1),
            delta: row.get(2),
            stock_after: row.get(3),
            reason: row.get(4),
            created_at: row.get(5),
        })
        .collect())
}
