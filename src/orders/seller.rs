//! A seller's parts of orders, as the seller reads them: listed newest first (every order
//! that was paid, cancelled or refunded later included), or one with its shipments, refunds
//! and returns. Changes after the sale are [`super::AfterSale`]'s.

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{carts::Shipping, error::Error, money::Price};

use super::*;

/// One seller's share of an order, as the seller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SellerOrder {
    pub order_id: Uuid,
    /// This seller's part: `paid`, `partially_fulfilled`, `fulfilled`, `cancelled` or
    /// `refunded`.
    #[schema(value_type = String, example = "paid")]
    pub status: OrderStatus,
    #[schema(example = "EUR")]
    pub currency: &'static str,
    pub lines: Vec<SellerOrderLine>,
    pub subtotal: Price,
    pub tax: Price,
    pub shipping: Option<Shipping>,
    /// Where to send the part and who to tell, as they were at checkout.
    pub shipping_address: Option<crate::addresses::Address>,
    pub contact_email: Option<String>,
    /// What the part has given back, by line or by amount.
    pub refunded: Price,
    /// This part's shipments, refunds and returns (in the single order's answer only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub after_sale: Option<AfterSaleView>,
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
    #[serde(flatten)]
    pub progress: LineProgress,
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
                                                l.unit_price::text, l.line_total::text,
                                                l.shipped, l.cancelled, l.refunded, l.returned)
                              ORDER BY l.line_no)
               FROM order_lines l WHERE l.order_id = p.order_id AND l.seller_id = p.seller_id),
            p.refunded, o.shipping_address, o.contact_email
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
                 WHERE p.seller_id = $1 AND o.paid_at IS NOT NULL
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
                 WHERE p.seller_id = $1 AND p.order_id = $2 AND o.paid_at IS NOT NULL"
            ),
            &[&seller_id, &order_id],
        )
        .await?;
    let Some(mut order) = row.as_ref().map(seller_order_of).transpose()? else {
        return Ok(None);
    };
    order.after_sale = Some(AfterSaleView::read(client, order_id, Some(seller_id)).await?);
    Ok(Some(order))
}

fn seller_order_of(row: &tokio_postgres::Row) -> Result<SellerOrder, Error> {
    let currency = stored_currency(row.get(2))?;
    type RawLine = (String, String, i32, String, String, i32, i32, i32, i32);
    let raw_lines: Vec<RawLine> = serde_json::from_value(row.get(8)).map_err(Error::internal)?;
    let decimal = |raw: &str| {
        Decimal::from_str_exact(raw)
            .map(|amount| price(amount, currency))
            .map_err(Error::internal)
    };
    let mut lines = Vec::with_capacity(raw_lines.len());
    let units = |count: i32| u32::try_from(count).unwrap_or(0);
    for (sku, title, quantity, unit, total, shipped, cancelled, refunded, returned) in raw_lines {
        lines.push(SellerOrderLine {
            sku,
            title,
            quantity: units(quantity),
            unit_price: decimal(&unit)?,
            line_total: decimal(&total)?,
            progress: LineProgress {
                shipped: units(shipped),
                cancelled: units(cancelled),
                refunded: units(refunded),
                returned: units(returned),
            },
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
        shipping_address: stored_address(row.get(10))?,
        contact_email: row.get(11),
        refunded: price(row.get(9), currency),
        after_sale: None,
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}
