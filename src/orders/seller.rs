//! A seller's parts of orders: listed newest first, fulfilled and refunded part by part.

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    carts::Shipping,
    error::{Code, Error},
    money::Price,
    payments::Authorization,
};

use super::*;

/// One seller's share of an order, as the seller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SellerOrder {
    pub order_id: Uuid,
    /// This seller's part: `paid`, `fulfilled` or `refunded`.
    #[schema(value_type = String, example = "paid")]
    pub status: OrderStatus,
    #[schema(example = "EUR")]
    pub currency: &'static str,
    pub lines: Vec<SellerOrderLine>,
    pub subtotal: Price,
    pub tax: Price,
    pub shipping: Option<Shipping>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SellerOrderLine {
    pub sku: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: Price,
    pub line_total: Price,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SellerOrderPage {
    pub orders: Vec<SellerOrder>,
    /// Pass as `?cursor=` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What [`seller_orders`] and [`seller_order`] read of a part: its order, status, money,
/// shipping, dates and lines (the seller's own only).
const SELLER_PART_COLUMNS: &str =
    "SELECT p.order_id, p.status, o.currency, p.subtotal, p.tax, o.shipping,
            o.created_at, p.updated_at,
            (SELECT jsonb_agg(jsonb_build_array(l.sku, l.title, l.quantity,
                                                l.unit_price::text, l.line_total::text)
                              ORDER BY l.line_no)
               FROM order_lines l WHERE l.order_id = p.order_id AND l.seller_id = p.seller_id)
     FROM order_parts p JOIN orders o ON o.id = p.order_id";

/// A seller's parts of paid orders, newest first, from before `before` (an order id: ids are
/// time-ordered, so new orders never shift later pages).
pub async fn seller_orders(
    client: &impl PreparedClient,
    seller_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<SellerOrderPage, Error> {
    let limit = limit.clamp(1, MAX_SELLER_PAGE);
    let rows = client
        .query(
            &format!(
                "{SELLER_PART_COLUMNS}
                 WHERE p.seller_id = $1 AND p.status IN ('paid', 'fulfilled', 'refunded')
                   AND ($2::uuid IS NULL OR p.order_id < $2)
                 ORDER BY p.order_id DESC LIMIT $3"
            ),
            &[&seller_id, &before, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows.iter().take(usize::try_from(limit).unwrap_or(0)) {
        orders.push(seller_order_of(row)?);
    }
    let next_cursor = if more {
        orders.last().map(|o| o.order_id.to_string())
    } else {
        None
    };
    Ok(SellerOrderPage {
        orders,
        next_cursor,
    })
}

/// The seller's part of one paid order, as [`seller_orders`] lists it; `None` when the seller
/// has no part in it (another seller's order is "not found", never forbidden).
pub async fn seller_order(
    client: &impl PreparedClient,
    seller_id: Uuid,
    order_id: Uuid,
) -> Result<Option<SellerOrder>, Error> {
    let row = client
        .query_opt(
            &format!(
                "{SELLER_PART_COLUMNS}
                 WHERE p.seller_id = $1 AND p.order_id = $2
                   AND p.status IN ('paid', 'fulfilled', 'refunded')"
            ),
            &[&seller_id, &order_id],
        )
        .await?;
    row.as_ref().map(seller_order_of).transpose()
}

fn seller_order_of(row: &tokio_postgres::Row) -> Result<SellerOrder, Error> {
    let currency = stored_currency(row.get(2))?;
    let raw_lines: Vec<(String, String, i32, String, String)> =
        serde_json::from_value(row.get(8)).map_err(Error::internal)?;
    let decimal = |raw: &str| {
        Decimal::from_str_exact(raw)
            .map(|amount| price(amount, currency))
            .map_err(Error::internal)
    };
    let mut lines = Vec::with_capacity(raw_lines.len());
    for (sku, title, quantity, unit, total) in raw_lines {
        lines.push(SellerOrderLine {
            sku,
            title,
            quantity: u32::try_from(quantity).unwrap_or(0),
            unit_price: decimal(&unit)?,
            line_total: decimal(&total)?,
        });
    }
    let shipping = stored_shipping(row.get(5), currency)?;
    Ok(SellerOrder {
        order_id: row.get(0),
        status: row.get(1),
        currency: currency.code(),
        lines,
        subtotal: price(row.get(3), currency),
        tax: price(row.get(4), currency),
        shipping,
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

/// A seller's part, locked for a change; another seller's is "not found".
pub(super) struct LockedPart {
    status: OrderStatus,
    subtotal: Decimal,
    tax: Decimal,
    tax_included: bool,
}

pub(super) async fn lock_part(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Uuid,
) -> Result<LockedPart, Error> {
    // The order row first (as checkout and reconciliation lock it), then the part.
    let order = tx
        .query_opt(
            "SELECT o.tax_included FROM orders o
             WHERE o.id = $1 AND EXISTS (SELECT 1 FROM order_parts p
                                         WHERE p.order_id = o.id AND p.seller_id = $2)
             FOR UPDATE",
            &[&order_id, &seller_id],
        )
        .await?
        .ok_or(Error::NotFound("order"))?;
    let part = tx
        .query_one(
            "SELECT status, subtotal, tax FROM order_parts
             WHERE order_id = $1 AND seller_id = $2 FOR UPDATE",
            &[&order_id, &seller_id],
        )
        .await?;
    Ok(LockedPart {
        status: part.get(0),
        subtotal: part.get(1),
        tax: part.get(2),
        tax_included: order.get(0),
    })
}

pub(super) fn invalid_transition(from: OrderStatus, to: OrderStatus) -> Error {
    Error::Conflict {
        code: Code::InvalidTransition,
        message: format!("a {from} order part cannot become {to}"),
        field: None,
    }
}

/// After a part changed: the order is `refunded` when every part is, `fulfilled` when every
/// part is fulfilled or refunded, else it stays `paid`.
pub(super) async fn roll_up(
    tx: &impl PreparedClient,
    order_id: Uuid,
) -> Result<OrderStatus, Error> {
    let status: OrderStatus = tx
        .query_one(
            "UPDATE orders SET updated_at = now(), status = (
                 SELECT CASE WHEN bool_and(status = 'refunded') THEN 'refunded'
                             WHEN bool_and(status IN ('fulfilled', 'refunded')) THEN 'fulfilled'
                             ELSE 'paid' END
                 FROM order_parts WHERE order_id = $1)
             WHERE id = $1 RETURNING status",
            &[&order_id],
        )
        .await?
        .get(0);
    Ok(status)
}

/// The seller has shipped its part.
pub async fn fulfill(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Uuid,
) -> Result<(), Error> {
    let part = lock_part(tx, order_id, seller_id).await?;
    if part.status != OrderStatus::Paid {
        return Err(invalid_transition(part.status, OrderStatus::Fulfilled));
    }
    tx.execute(
        "UPDATE order_parts SET status = 'fulfilled', updated_at = now()
         WHERE order_id = $1 AND seller_id = $2",
        &[&order_id, &seller_id],
    )
    .await?;
    let fulfilled = OrderStatus::Fulfilled;
    append_event(tx, order_id, Some(seller_id), "fulfilled", fulfilled).await?;
    if roll_up(tx, order_id).await? == fulfilled {
        append_event(tx, order_id, None, "fulfilled", fulfilled).await?;
    }
    metrics::counter!("agora_order_parts_total", "status" => "fulfilled").increment(1);
    Ok(())
}

/// Refunds the seller's part: its lines (and tax where it was added; shipping with the last
/// part refunded). An unfulfilled part's units go back to stock.
pub async fn refund(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Uuid,
    payments: &crate::payments::Payments,
) -> Result<(), Error> {
    let part = lock_part(tx, order_id, seller_id).await?;
    if !matches!(part.status, OrderStatus::Paid | OrderStatus::Fulfilled) {
        return Err(invalid_transition(part.status, OrderStatus::Refunded));
    }
    let payment = tx
        .query_one(
            "SELECT p.authorization_id, p.status,
                    (SELECT count(*) FROM order_parts
                      WHERE order_id = $1 AND status <> 'refunded' AND seller_id <> $2),
                    (o.shipping ->> 'amount')::numeric
             FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.order_id = $1",
            &[&order_id, &seller_id],
        )
        .await?;
    let (authorization, status): (Option<String>, PaymentStatus) = (payment.get(0), payment.get(1));
    let (others_left, shipping): (i64, Option<Decimal>) = (payment.get(2), payment.get(3));
    let Some(authorization) = authorization.filter(|_| status == PaymentStatus::Captured) else {
        return Err(Error::Conflict {
            code: Code::PaymentNotCaptured,
            message: "the payment is not captured yet; retry shortly".into(),
            field: None,
        });
    };
    let mut amount = part.subtotal;
    if !part.tax_included {
        amount += part.tax;
    }
    if others_left == 0 {
        amount += shipping.unwrap_or(Decimal::ZERO);
    }
    if part.status == OrderStatus::Paid {
        return_holds(tx, order_id, Some(seller_id)).await?;
    }
    tx.execute(
        "UPDATE order_parts SET status = 'refunded', updated_at = now()
         WHERE order_id = $1 AND seller_id = $2",
        &[&order_id, &seller_id],
    )
    .await?;
    tx.execute(
        "UPDATE payments SET refunded = refunded + $2, updated_at = now() WHERE order_id = $1",
        &[&order_id, &amount],
    )
    .await?;
    let refunded = OrderStatus::Refunded;
    append_event(tx, order_id, Some(seller_id), "refunded", refunded).await?;
    if roll_up(tx, order_id).await? == refunded {
        append_event(tx, order_id, None, "refunded", refunded).await?;
    }
    // Last, with every change written but not committed: if the gateway refuses, nothing is.
    payments
        .refund(&Authorization { id: authorization }, amount)
        .await
        .map_err(|error| Error::Unavailable(error.to_string()))?;
    metrics::counter!("agora_order_parts_total", "status" => "refunded").increment(1);
    Ok(())
}

/// Fulfils the seller's part in a transaction of its own, then tells the seller's sessions
/// and the shopper's sockets following the order (its roll-up status).
pub async fn fulfill_part(
    pool: &deadpool_postgres::Pool,
    hot: &crate::hot_state::HotState,
    order_id: Uuid,
    seller_id: Uuid,
) -> Result<(), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    fulfill(&tx, order_id, seller_id).await?;
    tx.commit().await?;
    announce_seller(hot, seller_id).await;
    crate::notices::announce_order_status(hot, &*client, order_id).await;
    Ok(())
}

/// Refunds the seller's part in a transaction of its own; its unshipped units are back on
/// sale at once, and the seller's sessions and the shopper's sockets are told.
pub async fn refund_part(
    pool: &deadpool_postgres::Pool,
    hot: &crate::hot_state::HotState,
    counters: &crate::stock_counters::StockCounters,
    payments: &crate::payments::Payments,
    order_id: Uuid,
    seller_id: Uuid,
) -> Result<(), Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    refund(&tx, order_id, seller_id, payments).await?;
    tx.commit().await?;
    counters
        .stock_returned(&skus(&*client, order_id).await?)
        .await;
    announce_seller(hot, seller_id).await;
    crate::notices::announce_order_status(hot, &*client, order_id).await;
    Ok(())
}

async fn announce_seller(hot: &crate::hot_state::HotState, seller_id: Uuid) {
    let notice = crate::notices::Notice::SellerEvents { seller_id };
    crate::notices::publish(hot, &notice).await;
}
