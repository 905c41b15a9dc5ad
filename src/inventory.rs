//! Stock per SKU: on hand as sellers set it (with the append-only ledger of every change), held
//! for carts through the inventory shards ([`PgStockStore`]), and sold.
//!
//! Promises: stock never goes below zero and never below what is held or sold (the
//! `variants_stock_guard` constraint is the final word, whatever process writes); every change
//! to stock on hand writes a ledger entry in the same transaction; a seller only ever touches
//! SKUs of its own products (others' are "not found"); a reservation batch is one transaction
//! that locks each SKU's row once, in id order, as the expiry sweep does, so they never deadlock.
//! What shoppers see (`available = on hand − held − sold`) is live from Postgres, never cached.

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use agora_actors::inventory::{Hold, LineIntent, ReserveError, ReserveStock, StockStore};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    cart_lines::{write_lines, LineWrite, Written},
    catalog::input::MAX_STOCK,
    error::{Code, Error},
    notices::Notice,
    stock_counters::StockCounters,
};

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

pub fn parse_reason(raw: Option<&str>, default: &str) -> Result<String, Error> {
    let reason = raw.map(str::trim).unwrap_or(default);
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid_field(
            Code::InvalidLength,
            "reason",
            format!("must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// Stock a shopper may buy, for an SKU on the storefront.
pub async fn availability(client: &impl PreparedClient, sku: &str) -> Result<Availability, Error> {
    let row = client
        .query_opt(
            "SELECT v.sku, v.stock_on_hand - v.held - v.sold FROM variants v
             JOIN products p ON p.id = v.product_id AND p.status = 'active'
             JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
             WHERE upper(v.sku) = upper($1)",
            &[&sku],
        )
        .await?
        .ok_or(Error::NotFound("sku"))?;
    Ok(Availability {
        sku: row.get(0),
        available: i64::from(row.get::<_, i32>(1)),
    })
}

/// The seller's variant for `sku`, locked for the change.
struct LockedVariant {
    id: Uuid,
    sku: String,
    on_hand: i32,
    /// Units held for carts plus units sold: stock on hand may not go below it.
    committed: i32,
}

async fn lock_own_variant(
    client: &impl PreparedClient,
    seller_id: Uuid,
    sku: &str,
) -> Result<LockedVariant, Error> {
    let row = client
        .query_opt(
            "SELECT v.id, v.sku, v.stock_on_hand, v.held + v.sold FROM variants v
             JOIN products p ON p.id = v.product_id
             WHERE upper(v.sku) = upper($1) AND p.seller_id = $2
             FOR UPDATE OF v",
            &[&sku, &seller_id],
        )
        .await?
        .ok_or(Error::NotFound("sku"))?;
    Ok(LockedVariant {
        id: row.get(0),
        sku: row.get(1),
        on_hand: row.get(2),
        committed: row.get(3),
    })
}

fn below_committed(field: &str, committed: i32) -> Error {
    Error::Conflict {
        code: Code::StockCommitted,
        message: format!(
            "{committed} units are held for carts or sold; stock cannot go below that"
        ),
        field: Some(field.to_owned()),
    }
}

async fn record(
    client: &impl PreparedClient,
    variant: Uuid,
    sku: String,
    kind: &str,
    delta: i32,
    stock_after: i32,
    reason: &str,
) -> Result<StockLevel, Error> {
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
    client: &impl PreparedClient,
    seller_id: Uuid,
    sku: &str,
    stock: u32,
    reason: &str,
) -> Result<StockLevel, Error> {
    if stock > MAX_STOCK {
        return Err(Error::invalid_field(
            Code::StockTooLarge,
            "stock_on_hand",
            format!("must not exceed {MAX_STOCK}"),
        ));
    }
    let stock = i32::try_from(stock).unwrap_or(i32::MAX);
    let variant = lock_own_variant(client, seller_id, sku).await?;
    if stock < variant.committed {
        return Err(below_committed("stock_on_hand", variant.committed));
    }
    let delta = stock - variant.on_hand;
    record(client, variant.id, variant.sku, "set", delta, stock, reason).await
}

/// Adds `delta` (negative to remove) to stock on hand; 409 when the result would be negative.
pub async fn adjust(
    client: &impl PreparedClient,
    seller_id: Uuid,
    sku: &str,
    delta: i32,
    reason: &str,
) -> Result<StockLevel, Error> {
    if delta == 0 {
        return Err(Error::invalid_field(
            Code::InvalidDelta,
            "delta",
            "must not be zero",
        ));
    }
    let variant = lock_own_variant(client, seller_id, sku).await?;
    let before = variant.on_hand;
    let after = i64::from(before) + i64::from(delta);
    if after < i64::from(variant.committed) && after >= 0 {
        return Err(below_committed("delta", variant.committed));
    }
    if after < 0 {
        return Err(Error::Conflict {
            code: Code::InsufficientStock,
            message: format!("only {before} on hand; cannot remove {}", -i64::from(delta)),
            field: Some("delta".into()),
        });
    }
    if after > i64::from(MAX_STOCK) {
        return Err(Error::invalid_field(
            Code::StockTooLarge,
            "delta",
            format!("stock must not exceed {MAX_STOCK}"),
        ));
    }
    let after = i32::try_from(after).unwrap_or(i32::MAX);
    record(
        client,
        variant.id,
        variant.sku,
        "adjust",
        delta,
        after,
        reason,
    )
    .await
}

/// Sets one of the seller's SKUs to an absolute count in a transaction of its own; the shared
/// counter is dropped so the next reservation rebuilds it with the new stock.
pub async fn set_stock(
    pool: &deadpool_postgres::Pool,
    counters: &StockCounters,
    seller_id: Uuid,
    sku: &str,
    stock: u32,
    reason: &str,
) -> Result<StockLevel, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let level = set(&tx, seller_id, sku, stock, reason).await?;
    tx.commit().await?;
    counters.stock_returned(&[&level.sku]).await;
    Ok(level)
}

/// Adds `delta` to one of the seller's SKUs in a transaction of its own; the shared counter
/// follows (added to, or dropped to be rebuilt when stock went down).
pub async fn adjust_stock(
    pool: &deadpool_postgres::Pool,
    counters: &StockCounters,
    seller_id: Uuid,
    sku: &str,
    delta: i32,
    reason: &str,
) -> Result<StockLevel, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let level = adjust(&tx, seller_id, sku, delta, reason).await?;
    tx.commit().await?;
    if delta > 0 {
        // More units: the counter gets them; fewer: it is rebuilt (taking them off could
        // leave a counter rebuilt meanwhile too low).
        counters
            .units_returned(&[(&level.sku, i64::from(delta))])
            .await;
    } else {
        counters.stock_returned(&[&level.sku]).await;
    }
    Ok(level)
}

/// The newest ledger entries of one of the seller's SKUs, newest first.
pub async fn ledger(
    client: &impl PreparedClient,
    seller_id: Uuid,
    sku: &str,
    limit: i64,
) -> Result<Vec<LedgerEntry>, Error> {
    let variant: Uuid = client
        .query_opt(
            "SELECT v.id FROM variants v JOIN products p ON p.id = v.product_id
             WHERE upper(v.sku) = upper($1) AND p.seller_id = $2",
            &[&sku, &seller_id],
        )
        .await?
        .ok_or(Error::NotFound("sku"))?
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

/// Returns one live hold's units to stock at once (a hold granted for a cart line that could
/// not then be written). A hold already released, sold or claimed by an order is left alone.
pub async fn release_hold(client: &impl PreparedClient, hold: Uuid) -> Result<(), Error> {
    client
        .execute(
            "WITH released AS (
                 UPDATE stock_holds SET released_at = now()
                 WHERE id = $1 AND released_at IS NULL AND order_id IS NULL
                 RETURNING variant_id, quantity)
             UPDATE variants v SET held = v.held - r.quantity
             FROM released r WHERE v.id = r.variant_id",
            &[&hold],
        )
        .await?;
    Ok(())
}

/// Most expired holds one sweep releases; the next sweep takes the rest.
pub const MAX_HOLDS_PER_SWEEP: i64 = 1000;

/// Commits inventory shards' reservation batches: filtered by the shared Redis counters, then
/// checked and written in Postgres.
#[derive(Clone)]
pub struct PgStockStore {
    pool: deadpool_postgres::Pool,
    counters: StockCounters,
}

impl PgStockStore {
    pub fn new(pool: deadpool_postgres::Pool, counters: StockCounters) -> Self {
        Self { pool, counters }
    }
}

impl StockStore for PgStockStore {
    fn reserve_batch(
        &self,
        batch: Vec<ReserveStock>,
    ) -> BoxFuture<'static, Result<Vec<Result<Hold, ReserveError>>, String>> {
        let (pool, counters) = (self.pool.clone(), self.counters.clone());
        Box::pin(async move {
            reserve_through_counters(&pool, &counters, batch)
                .await
                .map_err(|error| {
                    if violates_stock_guard(&error) {
                        // The shards never grant more than is available, so this means a bug or
                        // a writer outside them: the guard refused it, and operators must know.
                        metrics::counter!("agora_inventory_guard_refusals_total").increment(1);
                    }
                    crate::error::error_chain(&error)
                })
        })
    }
}

/// Committed units available of a listed SKU, read without locking (to rebuild its counter).
async fn committed_available(
    pool: &deadpool_postgres::Pool,
    sku: &str,
) -> Result<Option<i64>, Error> {
    let client = pool.get().await?;
    Ok(client
        .query_opt(
            "SELECT v.stock_on_hand - v.held - v.sold FROM variants v
             JOIN products p ON p.id = v.product_id AND p.status = 'active'
             JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
             WHERE upper(v.sku) = $1",
            &[&sku],
        )
        .await?
        .map(|row| i64::from(row.get::<_, i32>(0))))
}

/// Asks the Redis counter of each SKU in the batch first: what it refuses is answered at once;
/// what it grants (or everything, when Redis cannot answer) goes to one Postgres transaction,
/// which has the last word. Where the two disagree, the counter is dropped and rebuilt.
async fn reserve_through_counters(
    pool: &deadpool_postgres::Pool,
    counters: &StockCounters,
    batch: Vec<ReserveStock>,
) -> Result<Vec<Result<Hold, ReserveError>>, Error> {
    let skus: Vec<String> = batch.iter().map(|r| r.sku.to_ascii_uppercase()).collect();
    let mut by_sku: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, sku) in skus.iter().enumerate() {
        by_sku.entry(sku).or_default().push(index);
    }
    let mut answers: Vec<Option<Result<Hold, ReserveError>>> = vec![None; batch.len()];
    // SKUs whose counter took units for this batch: if Postgres disagrees, drop the counter.
    let mut counted: Vec<&str> = Vec::new();
    for (sku, indices) in &by_sku {
        let quantities: Vec<u32> = indices.iter().map(|&i| batch[i].quantity).collect();
        let mut taken = counters.take(sku, &quantities).await;
        if let Ok(None) = taken {
            match committed_available(pool, sku).await? {
                // Unknown SKUs are Postgres's to answer.
                None => continue,
                Some(available) => {
                    if counters.rebuild(sku, available).await.is_ok() {
                        taken = counters.take(sku, &quantities).await;
                    }
                }
            }
        }
        let Ok(Some(taken)) = taken else {
            // Redis is unreachable: Postgres alone decides, as it always can.
            continue;
        };
        counted.push(sku);
        for (&index, granted) in indices.iter().zip(&taken.granted) {
            if !granted {
                answers[index] = Some(Err(ReserveError::InsufficientStock {
                    available: taken.left.max(0),
                }));
            }
        }
    }
    let (to_commit, requests): (Vec<usize>, Vec<ReserveStock>) = batch
        .into_iter()
        .enumerate()
        .filter(|(index, _)| answers[*index].is_none())
        .unzip();
    if !requests.is_empty() {
        match crate::db::timed("reserve_batch", reserve_batch(pool, requests)).await {
            Ok((results, levels)) => {
                let mut disagreed = Vec::new();
                for (index, result) in to_commit.into_iter().zip(results) {
                    if result.is_err() && counted.contains(&skus[index].as_str()) {
                        disagreed.push(skus[index].as_str());
                    }
                    answers[index] = Some(result);
                }
                counters.forget(&disagreed).await;
                // After answering, not before: subscribers may learn a moment later.
                let counters = counters.clone();
                tokio::spawn(async move { counters.announce_levels(levels).await });
            }
            Err(error) => {
                // Nothing was committed: the units the counters took are not sold.
                counters.forget(&counted).await;
                return Err(error);
            }
        }
    }
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or(Err(ReserveError::Unavailable(
                "the reservation was not answered".into(),
            )))
        })
        .collect())
}

/// Whether Postgres refused a write because it would hold or sell more than is on hand.
fn violates_stock_guard(error: &Error) -> bool {
    let Error::Internal(cause) = error else {
        return false;
    };
    cause
        .chain()
        .filter_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .filter_map(tokio_postgres::Error::as_db_error)
        .any(|db| db.constraint() == Some("variants_stock_guard"))
}

/// One transaction for a whole batch: lock each SKU's row once, grant in arrival order while
/// stock lasts, write the holds and the held counts.
async fn reserve_batch(
    pool: &deadpool_postgres::Pool,
    batch: Vec<ReserveStock>,
) -> Result<(Vec<Result<Hold, ReserveError>>, Vec<Notice>), Error> {
    let mut levels = Vec::new();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let skus: Vec<String> = batch.iter().map(|r| r.sku.to_ascii_uppercase()).collect();
    // Only listed products' SKUs can be held; rows are locked in id order, as the sweep does.
    let rows = tx
        .query(
            "SELECT v.id, upper(v.sku), v.sku, v.stock_on_hand - v.held - v.sold FROM variants v
             JOIN products p ON p.id = v.product_id AND p.status = 'active'
             JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
             WHERE upper(v.sku) = ANY($1)
             ORDER BY v.id
             FOR UPDATE OF v",
            &[&skus],
        )
        .await?;
    // Upper-cased SKU → (variant id, SKU as written, units still available).
    let mut stock: BTreeMap<String, (Uuid, String, i64)> = rows
        .iter()
        .map(|row| {
            let available: i32 = row.get(3);
            (row.get(1), (row.get(0), row.get(2), i64::from(available)))
        })
        .collect();
    let now = Utc::now();
    let mut answers = Vec::with_capacity(batch.len());
    let (mut hold_ids, mut variant_ids, mut quantities, mut owners, mut expiries) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The cart lines to write with their holds: (answer index, write).
    let mut lines: Vec<(usize, LineWrite)> = Vec::new();
    for (request, sku) in batch.iter().zip(&skus) {
        let Some((variant, written_sku, available)) = stock.get_mut(sku) else {
            answers.push(Err(ReserveError::UnknownSku));
            continue;
        };
        let wanted = i64::from(request.quantity);
        if wanted == 0 || wanted > *available {
            answers.push(Err(ReserveError::InsufficientStock {
                available: (*available).max(0),
            }));
            continue;
        }
        *available -= wanted;
        let hold = Hold {
            id: Uuid::now_v7(),
            sku: written_sku.clone(),
            quantity: request.quantity,
            expires_at: now
                + chrono::Duration::from_std(request.hold_for)
                    .unwrap_or_else(|_| chrono::Duration::minutes(10)),
            line_written: None,
        };
        if let Some(line) = &request.into_line {
            lines.push((answers.len(), line_write(line, *variant)));
        }
        hold_ids.push(hold.id);
        variant_ids.push(*variant);
        quantities.push(i32::try_from(request.quantity).unwrap_or(i32::MAX));
        owners.push(request.owner.clone());
        expiries.push(hold.expires_at);
        answers.push(Ok(hold));
    }
    if !hold_ids.is_empty() {
        // Sent together (pipelined on the connection): one round trip instead of two.
        let hold_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&hold_ids, &variant_ids, &quantities, &owners, &expiries];
        let level_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&variant_ids, &quantities];
        let insert = async {
            tx.execute(
            "INSERT INTO stock_holds (id, variant_id, quantity, owner, expires_at)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::text[], $5::timestamptz[])",
            &hold_params,
            )
            .await
            .map_err(Error::from)
        };
        // The new availability, as committed with this batch, for live subscribers.
        let update = async {
            tx.query(
                "UPDATE variants v SET held = v.held + d.quantity
             FROM (SELECT variant_id, sum(quantity)::int4 AS quantity
                   FROM unnest($1::uuid[], $2::int4[]) AS x(variant_id, quantity)
                   GROUP BY variant_id) d
             WHERE v.id = d.variant_id
             RETURNING v.sku, v.stock_on_hand - v.held - v.sold, v.xmin::text::int8,
                       (SELECT p.seller_id FROM products p WHERE p.id = v.product_id)",
                &level_params,
            )
            .await
            .map_err(Error::from)
        };
        let writes: Vec<&LineWrite> = lines.iter().map(|(_, write)| write).collect();
        let write = async {
            if writes.is_empty() {
                return Ok(Vec::new());
            }
            write_lines(&tx, &writes).await
        };
        let (_, updated, written) = futures_util::future::try_join3(insert, update, write).await?;
        for ((index, _), written) in lines.iter().zip(written) {
            if let Some(Ok(hold)) = answers.get_mut(*index) {
                hold.line_written = Some(written != Written::Moved);
            }
        }
        levels = updated
            .into_iter()
            .map(|row| Notice::Stock {
                sku: row.get(0),
                available: i64::from(row.get::<_, i32>(1)),
                version: row.get(2),
                seller_id: row.get(3),
            })
            .collect();
    }
    tx.commit().await?;
    Ok((answers, levels))
}

/// The cart line a granted hold's units go into, as the line writes take it.
fn line_write(line: &LineIntent, variant_id: Uuid) -> LineWrite {
    LineWrite {
        id: line.write_id,
        cart_id: line.cart_id,
        shopper_id: line.shopper_id,
        version: line.version,
        variant_id,
        quantity: line.quantity,
        release: 0,
        carted: true,
    }
}

/// Returns the stock of up to [`MAX_HOLDS_PER_SWEEP`] expired holds; any process may run it,
/// concurrently (holds another sweep has locked are skipped). Answers how many were released.
pub async fn release_expired_holds(
    pool: &deadpool_postgres::Pool,
    counters: &StockCounters,
) -> Result<u64, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let released = tx
        .query(
            "UPDATE stock_holds SET released_at = now()
             WHERE id IN (SELECT id FROM stock_holds
                          WHERE released_at IS NULL AND order_id IS NULL AND expires_at <= now()
                          ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING variant_id, quantity",
            &[&MAX_HOLDS_PER_SWEEP],
        )
        .await?;
    let count = released.len() as u64;
    if count > 0 {
        let mut totals: BTreeMap<Uuid, i32> = BTreeMap::new();
        for row in &released {
            *totals.entry(row.get(0)).or_default() += row.get::<_, i32>(1);
        }
        let (ids, quantities): (Vec<Uuid>, Vec<i32>) = totals.into_iter().unzip();
        // In id order, like reservation batches, so the two never deadlock.
        tx.execute(
            "SELECT 1 FROM variants WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
        let returned = tx
            .query(
                "UPDATE variants v SET held = v.held - d.quantity
                 FROM unnest($1::uuid[], $2::int4[]) AS d(id, quantity) WHERE v.id = d.id
                 RETURNING v.sku, d.quantity",
                &[&ids, &quantities],
            )
            .await?;
        tx.commit().await?;
        let units: Vec<(String, i64)> = returned
            .iter()
            .map(|row| (row.get(0), i64::from(row.get::<_, i32>(1))))
            .collect();
        counters.units_returned(&units).await;
        metrics::counter!("agora_inventory_holds_expired_total").increment(count);
        return Ok(count);
    }
    tx.commit().await?;
    Ok(count)
}

/// Moves the units of holds sold since the last call from `variants.held` to `variants.sold`,
/// up to [`MAX_HOLDS_PER_SWEEP`] holds, each variant row written once. Orders mark their holds
/// sold without touching the variant (a hot SKU's row is not locked once per order); until
/// settled, sold units still count as held, so `available` is exact all along.
pub async fn settle_sold_holds(pool: &deadpool_postgres::Pool) -> Result<u64, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let settled = tx
        .query(
            "UPDATE stock_holds SET settled_at = now()
             WHERE id IN (SELECT id FROM stock_holds
                          WHERE sold_at IS NOT NULL AND settled_at IS NULL AND released_at IS NULL
                          LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING variant_id, quantity",
            &[&MAX_HOLDS_PER_SWEEP],
        )
        .await?;
    let count = settled.len() as u64;
    if count > 0 {
        let mut totals: BTreeMap<Uuid, i32> = BTreeMap::new();
        for row in &settled {
            *totals.entry(row.get(0)).or_default() += row.get::<_, i32>(1);
        }
        let (ids, quantities): (Vec<Uuid>, Vec<i32>) = totals.into_iter().unzip();
        tx.execute(
            "SELECT 1 FROM variants WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
        tx.execute(
            "UPDATE variants v SET held = v.held - d.quantity, sold = v.sold + d.quantity
             FROM unnest($1::uuid[], $2::int4[]) AS d(id, quantity) WHERE v.id = d.id",
            &[&ids, &quantities],
        )
        .await?;
        metrics::counter!("agora_inventory_units_sold_total").increment(
            quantities
                .iter()
                .map(|q| u64::try_from(*q).unwrap_or(0))
                .sum(),
        );
    }
    tx.commit().await?;
    Ok(count)
}

/// Every `interval` until the process stops: releases expired holds and settles sold ones.
pub fn spawn_expiry_sweeper(
    pool: deadpool_postgres::Pool,
    counters: StockCounters,
    interval: std::time::Duration,
) {
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            let released =
                crate::db::timed("expire_holds", release_expired_holds(&pool, &counters)).await;
            if let Err(error) = released {
                tracing::warn!(error = %crate::error::error_chain(&error), "releasing expired holds failed");
            }
            if let Err(error) = crate::db::timed("settle_sold", settle_sold_holds(&pool)).await {
                tracing::warn!(error = %crate::error::error_chain(&error), "settling sold holds failed");
            }
        }
    });
}
