//! Orders: what a checkout turns a cart into, split per seller for fulfillment, with every state
//! change appended to the order event log.
//!
//! Promises: an order is `pending` while its payment is in flight and then exactly one of
//! `paid` or `cancelled` (the row lock on the order decides who finishes it: the checkout
//! request or the reconciler, never both); a paid order's units are sold from the holds it
//! claimed (so they were counted by the stock guard when held, and never sold twice); a
//! cancelled order's holds go back to stock; the idempotency key's stored response is written
//! in the same transaction as the outcome; shoppers see only their own orders and sellers only
//! their own parts (others are "not found").

pub mod after_sale;
pub mod cancellations;
mod finish;
pub mod fulfillments;
pub mod history;
mod place;
pub mod refunds;
pub mod returns;
mod seller;
pub mod units;

pub use after_sale::AfterSale;
pub use finish::*;
pub use place::*;
pub use seller::*;

use std::collections::HashMap;

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    addresses::Address,
    carts::{Shipping, Tax},
    error::Error,
    money::{Currency, Price},
};

crate::text_enum! {
    /// Where an order, or one seller's part of it, is in its life (`orders.status`,
    /// `order_parts.status`, `order_events.status`).
    pub enum OrderStatus {
        /// Its payment is in flight.
        Pending = "pending",
        Paid = "paid",
        /// Some units shipped, others are still to ship.
        PartiallyFulfilled = "partially_fulfilled",
        Fulfilled = "fulfilled",
        Cancelled = "cancelled",
        Refunded = "refunded",
    }
}

crate::text_enum! {
    /// Where an order's payment is at the gateway (`payments.status`).
    pub enum PaymentStatus {
        Authorizing = "authorizing",
        Authorized = "authorized",
        Captured = "captured",
        Declined = "declined",
        TimedOut = "timed_out",
        Voided = "voided",
    }
}

/// Most orders one page of a seller's list returns.
pub const MAX_SELLER_PAGE: i64 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// `pending`, `paid`, `partially_fulfilled`, `fulfilled`, `cancelled` or `refunded`.
    #[schema(value_type = String, example = "paid")]
    pub status: OrderStatus,
    pub cart_id: Uuid,
    pub region: String,
    #[schema(example = "EUR")]
    pub currency: &'static str,
    pub lines: Vec<OrderLine>,
    pub subtotal: Price,
    pub tax: Tax,
    pub shipping: Option<Shipping>,
    /// Where the order goes and who hears about it, as they were at checkout.
    pub shipping_address: Option<Address>,
    pub contact_email: Option<String>,
    pub total: Price,
    /// Each seller's share, fulfilled (or refunded) by that seller.
    pub parts: Vec<OrderPart>,
    pub payment: PaymentSummary,
    /// What happened after the sale: shipments with tracking, refunds and returns.
    #[serde(flatten)]
    pub after_sale: AfterSaleView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An order's (or a seller's part's) life after the sale, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AfterSaleView {
    pub shipments: Vec<fulfillments::Shipment>,
    pub refunds: Vec<refunds::Refund>,
    pub returns: Vec<returns::Return>,
}

impl AfterSaleView {
    /// Of the whole order, or of `seller_id`'s part only.
    pub async fn read(
        client: &impl PreparedClient,
        order_id: Uuid,
        seller_id: Option<Uuid>,
    ) -> Result<Self, Error> {
        Ok(Self {
            shipments: fulfillments::shipments_of(client, order_id, seller_id).await?,
            refunds: refunds::refunds_of(client, order_id, seller_id).await?,
            returns: returns::returns_of(client, order_id, seller_id).await?,
        })
    }
}

/// What happened to a line's units after the sale.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineProgress {
    pub shipped: u32,
    /// Cancelled before they shipped (back in stock).
    pub cancelled: u32,
    /// Whose price went back (the cancelled ones included).
    pub refunded: u32,
    /// Sent back by the shopper and received by the seller.
    pub returned: u32,
}

impl LineProgress {
    fn from_row(row: &tokio_postgres::Row, first: usize) -> Self {
        let units = |index: usize| u32::try_from(row.get::<_, i32>(index)).unwrap_or(0);
        Self {
            shipped: units(first),
            cancelled: units(first + 1),
            refunded: units(first + 2),
            returned: units(first + 3),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLine {
    pub sku: String,
    pub title: String,
    pub seller_id: Uuid,
    pub product_id: Uuid,
    pub quantity: u32,
    pub unit_price: Price,
    pub line_total: Price,
    /// This line's share of the order's tax (the shares add up to the order's tax).
    pub tax: Price,
    #[serde(flatten)]
    pub progress: LineProgress,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPart {
    pub seller_id: Uuid,
    #[schema(value_type = String, example = "paid")]
    pub status: OrderStatus,
    pub subtotal: Price,
    pub tax: Price,
    /// What the part has given back, by line or by amount.
    pub refunded: Price,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentSummary {
    /// `authorizing`, `authorized`, `captured`, `declined`, `timed_out` or `voided`.
    #[schema(value_type = String, example = "captured")]
    pub status: PaymentStatus,
    pub card_last4: String,
    pub refunded: Price,
}

/// Shipping as stored with the order.
#[derive(Debug, Serialize, Deserialize)]
struct ShippingRecord {
    option: String,
    carrier: String,
    country: String,
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
}

/// An amount as clients see it: always with the currency's minor units (`"0.00"`, not `"0"`).
fn price(amount: Decimal, currency: Currency) -> Price {
    Price {
        amount: currency.round(amount),
        currency: currency.code(),
        converted: false,
    }
}

fn stored_currency(code: &str) -> Result<Currency, Error> {
    Currency::from_code(code.trim())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("order currency {code} is unknown")))
}

/// The shipping stored with an order, as clients see it.
fn stored_shipping(
    stored: Option<serde_json::Value>,
    currency: Currency,
) -> Result<Option<Shipping>, Error> {
    Ok(stored
        .map(serde_json::from_value::<ShippingRecord>)
        .transpose()
        .map_err(Error::internal)?
        .map(|record| Shipping {
            option: record.option,
            carrier: record.carrier,
            country: record.country,
            amount: price(record.amount, currency),
        }))
}

/// The address stored with an order (or cart).
fn stored_address(stored: Option<serde_json::Value>) -> Result<Option<Address>, Error> {
    stored
        .map(serde_json::from_value)
        .transpose()
        .map_err(Error::internal)
}

/// Splits `tax` over lines in proportion to their totals, rounded to the currency, the last
/// line taking the rounding remainder so the shares add up exactly.
pub fn tax_shares(line_totals: &[Decimal], tax: Decimal, currency: Currency) -> Vec<Decimal> {
    let subtotal: Decimal = line_totals.iter().sum();
    let mut shares = Vec::with_capacity(line_totals.len());
    let mut left = tax;
    for (index, total) in line_totals.iter().enumerate() {
        let share = if index + 1 == line_totals.len() {
            left
        } else if subtotal.is_zero() {
            Decimal::ZERO
        } else {
            currency.round(tax * total / subtotal)
        };
        left -= share;
        shares.push(share);
    }
    shares
}

/// The columns of an order and its payment, after `FROM orders o JOIN payments p` ([`order_of`]).
const ORDER_COLUMNS: &str = "o.status, o.cart_id, o.region, o.currency, o.subtotal, o.tax_rate,
    o.tax_included, o.tax, o.shipping, o.total, o.created_at, o.updated_at,
    p.status, p.card_last4, p.refunded, o.shipping_address, o.contact_email, o.id";

/// The columns of an order line ([`order_of`]); the order's id last.
const LINE_COLUMNS: &str = "sku, title, seller_id, product_id, quantity, unit_price, line_total,
    tax, shipped, cancelled, refunded, returned, order_id";

/// The columns of a seller's part ([`order_of`]); the order's id last.
const PART_COLUMNS: &str = "seller_id, status, subtotal, tax, refunded, order_id";

/// The order as its shopper sees it, or `None` when it is not theirs (or does not exist);
/// with no shopper (the operator), any order.
pub async fn view(
    client: &impl PreparedClient,
    order_id: Uuid,
    shopper_id: Option<Uuid>,
) -> Result<Option<OrderView>, Error> {
    let Some(order) = client
        .query_opt(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders o JOIN payments p ON p.order_id = o.id
                 WHERE o.id = $1 AND ($2::uuid IS NULL OR o.shopper_id = $2)"
            ),
            &[&order_id, &shopper_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let (mut lines, mut parts) = lines_and_parts(client, &[order_id]).await?;
    let after_sale = AfterSaleView::read(client, order_id, None).await?;
    let (lines, parts) = (lines.remove(&order_id), parts.remove(&order_id));
    order_of(
        &order,
        lines.unwrap_or_default(),
        parts.unwrap_or_default(),
        after_sale,
    )
    .map(Some)
}

/// Orders just paid, as [`view`] shows them (nothing has happened after their sale yet), read
/// for all of them at once: three statements for a batch instead of six per order.
pub async fn views_of_just_paid(
    client: &impl PreparedClient,
    order_ids: &[Uuid],
) -> Result<Vec<OrderView>, Error> {
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let orders = client
        .query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders o JOIN payments p ON p.order_id = o.id
                 WHERE o.id = ANY($1)"
            ),
            &[&order_ids],
        )
        .await?;
    let (mut lines, mut parts) = lines_and_parts(client, order_ids).await?;
    orders
        .iter()
        .map(|order| {
            let id: Uuid = order.get(17);
            let nothing_yet = AfterSaleView {
                shipments: Vec::new(),
                refunds: Vec::new(),
                returns: Vec::new(),
            };
            let (lines, parts) = (lines.remove(&id), parts.remove(&id));
            order_of(
                order,
                lines.unwrap_or_default(),
                parts.unwrap_or_default(),
                nothing_yet,
            )
        })
        .collect()
}

/// The lines (in order) and the sellers' parts of `order_ids`, by order.
async fn lines_and_parts(
    client: &impl PreparedClient,
    order_ids: &[Uuid],
) -> Result<(RowsByOrder, RowsByOrder), Error> {
    let lines = client
        .query(
            &format!(
                "SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id = ANY($1)
                 ORDER BY order_id, line_no"
            ),
            &[&order_ids],
        )
        .await?;
    let parts = client
        .query(
            &format!(
                "SELECT {PART_COLUMNS} FROM order_parts WHERE order_id = ANY($1)
                 ORDER BY order_id, seller_id"
            ),
            &[&order_ids],
        )
        .await?;
    Ok((by_order(lines, 12), by_order(parts, 5)))
}

type RowsByOrder = HashMap<Uuid, Vec<tokio_postgres::Row>>;

/// `rows` grouped by the order id in `column`, each group in the rows' order.
fn by_order(rows: Vec<tokio_postgres::Row>, column: usize) -> RowsByOrder {
    let mut grouped = RowsByOrder::new();
    for row in rows {
        grouped.entry(row.get(column)).or_default().push(row);
    }
    grouped
}

/// An order from its [`ORDER_COLUMNS`] row, its lines' and parts' rows.
fn order_of(
    order: &tokio_postgres::Row,
    lines: Vec<tokio_postgres::Row>,
    parts: Vec<tokio_postgres::Row>,
    after_sale: AfterSaleView,
) -> Result<OrderView, Error> {
    let currency = stored_currency(order.get(3))?;
    let lines = lines
        .iter()
        .map(|row| OrderLine {
            sku: row.get(0),
            title: row.get(1),
            seller_id: row.get(2),
            product_id: row.get(3),
            quantity: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
            unit_price: price(row.get(5), currency),
            line_total: price(row.get(6), currency),
            tax: price(row.get(7), currency),
            progress: LineProgress::from_row(row, 8),
        })
        .collect();
    let parts = parts
        .iter()
        .map(|row| OrderPart {
            seller_id: row.get(0),
            status: row.get(1),
            subtotal: price(row.get(2), currency),
            tax: price(row.get(3), currency),
            refunded: price(row.get(4), currency),
        })
        .collect();
    Ok(OrderView {
        id: order.get(17),
        status: order.get(0),
        cart_id: order.get(1),
        region: order.get(2),
        currency: currency.code(),
        lines,
        subtotal: price(order.get(4), currency),
        tax: Tax {
            rate: order.get(5),
            included: order.get(6),
            amount: price(order.get(7), currency),
        },
        shipping: stored_shipping(order.get(8), currency)?,
        shipping_address: stored_address(order.get(15))?,
        contact_email: order.get(16),
        total: price(order.get(9), currency),
        parts,
        payment: PaymentSummary {
            status: order.get(12),
            card_last4: order.get(13),
            refunded: price(order.get(14), currency),
        },
        after_sale,
        created_at: order.get(10),
        updated_at: order.get(11),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_shares_add_up_to_the_orders_tax_exactly() {
        let eur = Currency::from_code("EUR").expect("EUR");
        let totals = [
            Decimal::new(1000, 2),
            Decimal::new(1000, 2),
            Decimal::new(1000, 2),
        ];
        let shares = tax_shares(&totals, Decimal::new(479, 2), eur);
        assert_eq!(shares.iter().sum::<Decimal>(), Decimal::new(479, 2));
        assert_eq!(shares[0], Decimal::new(160, 2));
        assert!(tax_shares(&[], Decimal::ZERO, eur).is_empty());
    }
}
