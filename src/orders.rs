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

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    carts::{self, CartLine, CartView, Shipping, Tax},
    http::error::{ApiError, ErrorBody},
    money::{Currency, Price},
    payments::Authorization,
};

/// Most orders one page of a seller's list returns.
pub const MAX_SELLER_PAGE: i64 = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// `pending`, `paid`, `fulfilled`, `cancelled` or `refunded`.
    #[schema(example = "paid")]
    pub status: String,
    pub cart_id: Uuid,
    pub region: String,
    #[schema(example = "EUR")]
    pub currency: &'static str,
    pub lines: Vec<OrderLine>,
    pub subtotal: Price,
    pub tax: Tax,
    pub shipping: Option<Shipping>,
    pub total: Price,
    /// Each seller's share, fulfilled (or refunded) by that seller.
    pub parts: Vec<OrderPart>,
    pub payment: PaymentSummary,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPart {
    pub seller_id: Uuid,
    #[schema(example = "paid")]
    pub status: String,
    pub subtotal: Price,
    pub tax: Price,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentSummary {
    /// `authorizing`, `authorized`, `captured`, `declined`, `timed_out` or `voided`.
    pub status: String,
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

fn stored_currency(code: &str) -> Result<Currency, ApiError> {
    Currency::from_code(code.trim())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("order currency {code} is unknown")))
}

/// The shipping stored with an order, as clients see it.
fn stored_shipping(
    stored: Option<serde_json::Value>,
    currency: Currency,
) -> Result<Option<Shipping>, ApiError> {
    Ok(stored
        .map(serde_json::from_value::<ShippingRecord>)
        .transpose()
        .map_err(ApiError::internal)?
        .map(|record| Shipping {
            option: record.option,
            carrier: record.carrier,
            country: record.country,
            amount: price(record.amount, currency),
        }))
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

/// The order as its shopper sees it, or `None` when it is not theirs (or does not exist).
pub async fn view(
    client: &impl PreparedClient,
    order_id: Uuid,
    shopper_id: Option<Uuid>,
) -> Result<Option<OrderView>, ApiError> {
    let Some(order) = client
        .query_opt(
            "SELECT o.status, o.cart_id, o.region, o.currency, o.subtotal, o.tax_rate,
                    o.tax_included, o.tax, o.shipping, o.total, o.created_at, o.updated_at,
                    p.status, p.card_last4, p.refunded
             FROM orders o JOIN payments p ON p.order_id = o.id
             WHERE o.id = $1 AND ($2::uuid IS NULL OR o.shopper_id = $2)",
            &[&order_id, &shopper_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let currency = stored_currency(order.get(3))?;
    let lines = client
        .query(
            "SELECT sku, title, seller_id, product_id, quantity, unit_price, line_total, tax
             FROM order_lines WHERE order_id = $1 ORDER BY line_no",
            &[&order_id],
        )
        .await?
        .into_iter()
        .map(|row| OrderLine {
            sku: row.get(0),
            title: row.get(1),
            seller_id: row.get(2),
            product_id: row.get(3),
            quantity: u32::try_from(row.get::<_, i32>(4)).unwrap_or(0),
            unit_price: price(row.get(5), currency),
            line_total: price(row.get(6), currency),
            tax: price(row.get(7), currency),
        })
        .collect();
    let parts = client
        .query(
            "SELECT seller_id, status, subtotal, tax FROM order_parts
             WHERE order_id = $1 ORDER BY seller_id",
            &[&order_id],
        )
        .await?
        .into_iter()
        .map(|row| OrderPart {
            seller_id: row.get(0),
            status: row.get(1),
            subtotal: price(row.get(2), currency),
            tax: price(row.get(3), currency),
        })
        .collect();
    let shipping = stored_shipping(order.get(8), currency)?;
    Ok(Some(OrderView {
        id: order_id,
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
        shipping,
        total: price(order.get(9), currency),
        parts,
        payment: PaymentSummary {
            status: order.get(12),
            card_last4: order.get(13),
            refunded: price(order.get(14), currency),
        },
        created_at: order.get(10),
        updated_at: order.get(11),
    }))
}

/// A pending order, written and committed before its payment is authorized.
pub struct PendingOrder {
    pub id: Uuid,
    /// The cart it was placed from (the commit group keeps one cart's writes apart).
    pub cart_id: Uuid,
    /// The payment's reference at the gateway.
    pub reference: Uuid,
    pub total: Decimal,
    pub currency: Currency,
}

/// The idempotency key a checkout runs under.
pub struct IdempotencyClaim<'a> {
    pub shopper_id: Uuid,
    pub key: &'a str,
    pub fingerprint: &'a [u8],
}

/// Why an order could not be placed.
pub enum PlaceError {
    /// The key is already taken (by a concurrent or earlier request): nothing was written.
    KeyTaken,
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for PlaceError {
    fn from(error: E) -> Self {
        Self::Api(error.into())
    }
}

/// Writes a pending order for the cart as priced in `cart` (read in this transaction, under
/// the cart's lock), claims exactly the held units of its lines, and takes the idempotency key.
pub async fn place(
    tx: &impl PreparedClient,
    claim: &IdempotencyClaim<'_>,
    cart: &CartView,
    card_last4: &str,
    provider: &str,
) -> Result<PendingOrder, PlaceError> {
    let order_id = Uuid::now_v7();
    // First, so that a concurrent request with the same key waits here and then finds it.
    let taken = tx
        .execute(
            "INSERT INTO idempotency_keys (shopper_id, key, fingerprint, order_id)
             VALUES ($1, $2, $3, NULL) ON CONFLICT DO NOTHING",
            &[&claim.shopper_id, &claim.key, &claim.fingerprint],
        )
        .await?;
    if taken == 0 {
        return Err(PlaceError::KeyTaken);
    }
    let currency = stored_currency(cart.currency)?;
    let in_flight = tx
        .query_opt(
            "SELECT 1 FROM orders WHERE cart_id = $1 AND status = 'pending'",
            &[&cart.id],
        )
        .await?;
    if in_flight.is_some() {
        return Err(PlaceError::Api(ApiError::Conflict {
            code: "checkout_in_progress",
            message: "this cart is being checked out already".into(),
            field: None,
        }));
    }
    claim_holds(tx, cart, order_id).await?;

    let shipping = cart
        .shipping
        .as_ref()
        .map(|s| {
            serde_json::to_value(ShippingRecord {
                option: s.option.clone(),
                carrier: s.carrier.clone(),
                country: s.country.clone(),
                amount: s.amount.amount,
            })
        })
        .transpose()
        .map_err(ApiError::internal)?;
    let totals: Vec<Decimal> = cart.lines.iter().map(|l| l.line_total.amount).collect();
    let taxes = tax_shares(&totals, cart.tax.amount.amount, currency);
    let mut parts: BTreeMap<Uuid, (Decimal, Decimal)> = BTreeMap::new();
    for (line, tax) in cart.lines.iter().zip(&taxes) {
        let part = parts.entry(line.seller_id).or_default();
        part.0 += line.line_total.amount;
        part.1 += *tax;
    }
    let line_numbers: Vec<i32> = (0..cart.lines.len())
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
        .collect();
    let column = |pick: fn(&CartLine) -> Uuid| cart.lines.iter().map(pick).collect::<Vec<_>>();
    let (line_sellers, line_variants, line_products) = (
        column(|l| l.seller_id),
        column(|l| l.variant_id),
        column(|l| l.product_id),
    );
    let line_skus: Vec<&str> = cart.lines.iter().map(|l| l.sku.as_str()).collect();
    let line_titles: Vec<&str> = cart.lines.iter().map(|l| l.title.as_str()).collect();
    let line_quantities: Vec<i32> = cart
        .lines
        .iter()
        .map(|l| i32::try_from(l.quantity).unwrap_or(i32::MAX))
        .collect();
    let unit_prices: Vec<Decimal> = cart.lines.iter().map(|l| l.unit_price.amount).collect();
    let part_sellers: Vec<Uuid> = parts.keys().copied().collect();
    let part_subtotals: Vec<Decimal> = parts.values().map(|p| p.0).collect();
    let part_taxes: Vec<Decimal> = parts.values().map(|p| p.1).collect();
    let reference = Uuid::new_v4();
    // The pending order's rows in one statement (one round trip, one plan).
    tx.execute(
        "WITH o AS (
             INSERT INTO orders (id, shopper_id, cart_id, region, currency, status, subtotal,
                                 tax_rate, tax_included, tax, shipping, total)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11) RETURNING id),
         l AS (
             INSERT INTO order_lines (order_id, line_no, seller_id, variant_id, product_id, sku,
                                      title, quantity, unit_price, line_total, tax)
             SELECT o.id, x.* FROM o, unnest($12::int4[], $13::uuid[], $14::uuid[], $15::uuid[],
                                            $16::text[], $17::text[], $18::int4[],
                                            $19::numeric[], $20::numeric[], $21::numeric[]) AS x),
         p AS (
             INSERT INTO order_parts (order_id, seller_id, status, subtotal, tax)
             SELECT o.id, x.seller, 'pending', x.subtotal, x.tax
             FROM o, unnest($22::uuid[], $23::numeric[], $24::numeric[]) AS x(seller, subtotal, tax)),
         y AS (
             INSERT INTO payments (reference, order_id, provider, amount, currency, card_last4, status)
             SELECT $25, o.id, $26, $11, $5, $27, 'authorizing' FROM o),
         k AS (
             UPDATE idempotency_keys SET order_id = $1 WHERE shopper_id = $2 AND key = $28)
         INSERT INTO order_events (order_id, seller_id, kind, status)
         SELECT o.id, NULL, 'created', 'pending' FROM o",
        &[
            &order_id,
            &claim.shopper_id,
            &cart.id,
            &cart.region,
            &currency.code(),
            &cart.subtotal.amount,
            &cart.tax.rate,
            &cart.tax.included,
            &cart.tax.amount.amount,
            &shipping,
            &cart.total.amount,
            &line_numbers,
            &line_sellers,
            &line_variants,
            &line_products,
            &line_skus,
            &line_titles,
            &line_quantities,
            &unit_prices,
            &totals,
            &taxes,
            &part_sellers,
            &part_subtotals,
            &part_taxes,
            &reference,
            &provider,
            &card_last4,
            &claim.key,
        ],
    )
    .await?;
    Ok(PendingOrder {
        id: order_id,
        cart_id: cart.id,
        reference,
        total: cart.total.amount,
        currency,
    })
}

/// Moves the cart's live holds to the order, after checking they cover every line exactly
/// (a surplus goes back to stock; a shortfall means a hold lapsed meanwhile: 409, retry).
async fn claim_holds(
    tx: &impl PreparedClient,
    cart: &CartView,
    order_id: Uuid,
) -> Result<(), ApiError> {
    let owner = cart.id.to_string();
    let held: BTreeMap<Uuid, i64> = tx
        .query(
            "SELECT variant_id, quantity FROM stock_holds
             WHERE owner = $1 AND released_at IS NULL AND expires_at > now()
             ORDER BY id FOR UPDATE",
            &[&owner],
        )
        .await?
        .into_iter()
        .fold(BTreeMap::new(), |mut held, row| {
            *held.entry(row.get(0)).or_default() += i64::from(row.get::<_, i32>(1));
            held
        });
    for line in &cart.lines {
        let have = held.get(&line.variant_id).copied().unwrap_or(0);
        let want = i64::from(line.quantity);
        if have < want {
            return Err(ApiError::Conflict {
                code: "hold_expired",
                message: format!(
                    "the hold on {} lapsed during checkout; retry the checkout",
                    line.sku
                ),
                field: None,
            });
        }
        if have > want {
            carts::release(
                tx,
                cart.id,
                line.variant_id,
                u32::try_from(have - want).unwrap_or(0),
            )
            .await?;
        }
    }
    let variants: Vec<Uuid> = cart.lines.iter().map(|l| l.variant_id).collect();
    tx.execute(
        "UPDATE stock_holds SET order_id = $2, owner = $4
         WHERE owner = $1 AND released_at IS NULL AND expires_at > now()
           AND variant_id = ANY($3)",
        &[&owner, &order_id, &variants, &format!("order:{order_id}")],
    )
    .await?;
    Ok(())
}

async fn append_event(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
    kind: &str,
    status: &str,
) -> Result<(), ApiError> {
    tx.execute(
        "INSERT INTO order_events (order_id, seller_id, kind, status) VALUES ($1, $2, $3, $4)",
        &[&order_id, &seller_id, &kind, &status],
    )
    .await?;
    Ok(())
}

/// Locks a pending order; `None` when someone else already finished it.
async fn lock_pending(tx: &impl PreparedClient, order_id: Uuid) -> Result<Option<Uuid>, ApiError> {
    Ok(tx
        .query_opt(
            "SELECT cart_id FROM orders WHERE id = $1 AND status = 'pending' FOR UPDATE",
            &[&order_id],
        )
        .await?
        .map(|row| row.get(0)))
}

/// A response every retry under the order's idempotency key gets from now on.
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

async fn store_response(
    tx: &impl PreparedClient,
    order_id: Uuid,
    response: &StoredResponse,
) -> Result<(), ApiError> {
    tx.execute(
        "UPDATE idempotency_keys SET response_status = $2, response_body = $3 WHERE order_id = $1",
        &[
            &order_id,
            &i16::try_from(response.status).unwrap_or(500),
            &response.body,
        ],
    )
    .await?;
    Ok(())
}

/// The pending order is paid: its holds become sales, the cart's ordered lines go, each
/// seller's part is ready to fulfill. `None` when it was no longer pending.
pub async fn finish_paid(
    tx: &impl PreparedClient,
    order_id: Uuid,
    authorization: &Authorization,
) -> Result<Option<StoredResponse>, ApiError> {
    let Some(cart_id) = lock_pending(tx, order_id).await? else {
        return Ok(None);
    };
    // The order, its parts, payment and holds paid, and the paid events (the order's first,
    // then each seller's), in one statement.
    tx.execute(
        "WITH h AS (
             UPDATE stock_holds SET sold_at = now() WHERE order_id = $1 AND released_at IS NULL),
         o AS (
             UPDATE orders SET status = 'paid', updated_at = now() WHERE id = $1),
         y AS (
             UPDATE payments SET status = 'authorized', authorization_id = $2, updated_at = now()
             WHERE order_id = $1),
         p AS (
             UPDATE order_parts SET status = 'paid', updated_at = now() WHERE order_id = $1
             RETURNING seller_id)
         INSERT INTO order_events (order_id, seller_id, kind, status)
         SELECT $1, e.seller_id, 'paid', 'paid'
         FROM (SELECT NULL::uuid AS seller_id UNION ALL SELECT seller_id FROM p) e
         ORDER BY e.seller_id NULLS FIRST",
        &[&order_id, &authorization.id],
    )
    .await?;
    // The ordered lines leave the cart, with any hold a concurrent tab took for them meanwhile.
    let ordered = tx
        .query(
            "DELETE FROM cart_lines WHERE cart_id = $1
               AND variant_id IN (SELECT variant_id FROM order_lines WHERE order_id = $2)
             RETURNING variant_id",
            &[&cart_id, &order_id],
        )
        .await?;
    for row in ordered {
        carts::release(tx, cart_id, row.get(0), u32::MAX).await?;
    }
    let order = view(tx, order_id, None)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("order {order_id} vanished")))?;
    let response = StoredResponse {
        status: 201,
        body: serde_json::to_value(&order).map_err(ApiError::internal)?,
    };
    store_response(tx, order_id, &response).await?;
    Ok(Some(response))
}

/// Counts an order that `finish_paid` or `finish_cancelled` finished, once that committed.
pub fn count_finished(response: &StoredResponse) {
    if response.status != 201 {
        metrics::counter!("agora_orders_total", "status" => "cancelled").increment(1);
        return;
    }
    metrics::counter!("agora_orders_total", "status" => "paid").increment(1);
    let total = &response.body["total"];
    let revenue = total["amount"]
        .as_str()
        .and_then(|amount| amount.parse::<f64>().ok());
    if let (Some(revenue), Some(currency)) = (revenue, total["currency"].as_str()) {
        metrics::counter!("agora_order_revenue_total", "currency" => currency.to_owned())
            .increment(revenue.round() as u64);
    }
}

/// Why a pending order is cancelled.
#[derive(Debug, Clone, Copy)]
pub enum Cancellation {
    Declined,
    TimedOut,
    GatewayFailed,
    /// Found pending after a crash, and the gateway has no authorization for it.
    Abandoned,
}

impl Cancellation {
    fn parts(self) -> (&'static str, &'static str, u16, &'static str, &'static str) {
        // (event, payment status, HTTP status, error code, message)
        match self {
            Self::Declined => (
                "payment_declined",
                "declined",
                402,
                "payment_declined",
                "the card was declined; the cart's stock holds were released",
            ),
            Self::TimedOut => (
                "payment_timed_out",
                "timed_out",
                504,
                "payment_timeout",
                "the payment gateway did not answer in time; nothing was charged and the holds were released",
            ),
            Self::GatewayFailed => (
                "payment_failed",
                "voided",
                502,
                "payment_failed",
                "the payment gateway failed; nothing was charged and the holds were released",
            ),
            Self::Abandoned => (
                "payment_abandoned",
                "voided",
                504,
                "payment_timeout",
                "the payment did not complete; nothing was charged and the holds were released",
            ),
        }
    }
}

/// The pending order is cancelled: its holds go back to stock. `None` when it was no longer
/// pending.
pub async fn finish_cancelled(
    tx: &impl PreparedClient,
    order_id: Uuid,
    why: Cancellation,
) -> Result<Option<StoredResponse>, ApiError> {
    if lock_pending(tx, order_id).await?.is_none() {
        return Ok(None);
    }
    let (event, payment, status, code, message) = why.parts();
    return_holds(tx, order_id, None).await?;
    tx.execute(
        "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE id = $1",
        &[&order_id],
    )
    .await?;
    tx.execute(
        "UPDATE order_parts SET status = 'cancelled', updated_at = now() WHERE order_id = $1",
        &[&order_id],
    )
    .await?;
    tx.execute(
        "UPDATE payments SET status = $2, updated_at = now() WHERE order_id = $1",
        &[&order_id, &payment],
    )
    .await?;
    append_event(tx, order_id, None, event, "cancelled").await?;
    let response = StoredResponse {
        status,
        body: serde_json::to_value(ErrorBody::new(code, message, None))
            .map_err(ApiError::internal)?,
    };
    store_response(tx, order_id, &response).await?;
    Ok(Some(response))
}

/// Returns the units of an order's holds (of one seller's lines, or all) to stock: unsettled
/// ones from `held`, settled ones from `sold`; each variant row locked once, in id order.
async fn return_holds(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let returned = tx
        .query(
            "UPDATE stock_holds h SET released_at = now()
             WHERE h.order_id = $1 AND h.released_at IS NULL
               AND ($2::uuid IS NULL OR h.variant_id IN (
                   SELECT variant_id FROM order_lines WHERE order_id = $1 AND seller_id = $2))
             RETURNING h.variant_id, h.quantity, h.settled_at IS NOT NULL, h.sale_id",
            &[&order_id, &seller_id],
        )
        .await?;
    let mut totals: BTreeMap<Uuid, (i32, i32)> = BTreeMap::new();
    for row in &returned {
        let settled: bool = row.get(2);
        if let (Some(sale), false) = (row.get::<_, Option<Uuid>>(3), settled) {
            if give_back_to_sale(tx, order_id, sale, row.get(1)).await? {
                continue;
            }
        }
        let entry = totals.entry(row.get(0)).or_default();
        if settled {
            entry.1 += row.get::<_, i32>(1);
        } else {
            entry.0 += row.get::<_, i32>(1);
        }
    }
    for (variant, (held, sold)) in totals {
        tx.execute(
            "UPDATE variants SET held = held - $2, sold = sold - $3 WHERE id = $1",
            &[&variant, &held, &sold],
        )
        .await?;
    }
    Ok(())
}

/// Units a flash-sale order held go back to the sale while it is open (they are still in the
/// variant's `held`): to the shopper's admission, as its allotment, if its window is still
/// open (so a declined card can be retried), else to the sale's reservation for the next
/// ticket. `false` when the sale is over: the units go back to stock.
async fn give_back_to_sale(
    tx: &impl PreparedClient,
    order_id: Uuid,
    sale_id: Uuid,
    quantity: i32,
) -> Result<bool, ApiError> {
    // The sale's row lock orders this with the queue's steps (which may be closing it).
    let open = tx
        .query_opt(
            "SELECT 1 FROM flash_sales WHERE id = $1 AND state = 'open' FOR UPDATE",
            &[&sale_id],
        )
        .await?;
    if open.is_none() {
        return Ok(false);
    }
    let readmitted = tx
        .query_opt(
            "UPDATE flash_sale_tickets SET bought = greatest(bought - $3, 0),
                    state = CASE WHEN state <> 'purchased' THEN state
                                 WHEN admission_expires_at > now() THEN 'admitted'
                                 ELSE 'expired' END,
                    allotted = CASE WHEN state = 'purchased' AND admission_expires_at > now()
                                    THEN allotted + $3 ELSE allotted END
             WHERE sale_id = $1 AND shopper_id = (SELECT shopper_id FROM orders WHERE id = $2)
             RETURNING state = 'admitted'",
            &[&sale_id, &order_id, &quantity],
        )
        .await?
        .is_some_and(|row| row.get(0));
    if !readmitted {
        tx.execute(
            "UPDATE flash_sales SET reserved = reserved + $2 WHERE id = $1",
            &[&sale_id, &quantity],
        )
        .await?;
    }
    Ok(true)
}

/// The SKUs of an order's lines (to drop their stock counters when its units come back).
pub async fn skus(client: &impl PreparedClient, order_id: Uuid) -> Result<Vec<String>, ApiError> {
    Ok(client
        .query(
            "SELECT sku FROM order_lines WHERE order_id = $1",
            &[&order_id],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}

/// Records that the authorized payment of a paid order was captured.
pub async fn mark_captured(client: &impl PreparedClient, order_id: Uuid) -> Result<(), ApiError> {
    client
        .execute(
            "UPDATE payments SET status = 'captured', updated_at = now()
             WHERE order_id = $1 AND status = 'authorized'",
            &[&order_id],
        )
        .await?;
    Ok(())
}

/// One seller's share of an order, as the seller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SellerOrder {
    pub order_id: Uuid,
    /// This seller's part: `paid`, `fulfilled` or `refunded`.
    #[schema(example = "paid")]
    pub status: String,
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

/// A seller's parts of paid orders, newest first, from before `before` (an order id: ids are
/// time-ordered, so new orders never shift later pages).
pub async fn seller_orders(
    client: &impl PreparedClient,
    seller_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<SellerOrderPage, ApiError> {
    let limit = limit.clamp(1, MAX_SELLER_PAGE);
    let rows = client
        .query(
            "SELECT p.order_id, p.status, o.currency, p.subtotal, p.tax, o.shipping,
                    o.created_at, p.updated_at,
                    (SELECT jsonb_agg(jsonb_build_array(l.sku, l.title, l.quantity,
                                                        l.unit_price::text, l.line_total::text)
                                      ORDER BY l.line_no)
                       FROM order_lines l WHERE l.order_id = p.order_id AND l.seller_id = p.seller_id)
             FROM order_parts p JOIN orders o ON o.id = p.order_id
             WHERE p.seller_id = $1 AND p.status IN ('paid', 'fulfilled', 'refunded')
               AND ($2::uuid IS NULL OR p.order_id < $2)
             ORDER BY p.order_id DESC LIMIT $3",
            &[&seller_id, &before, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows.iter().take(usize::try_from(limit).unwrap_or(0)) {
        let currency = stored_currency(row.get(2))?;
        let raw_lines: Vec<(String, String, i32, String, String)> =
            serde_json::from_value(row.get(8)).map_err(ApiError::internal)?;
        let decimal = |raw: &str| {
            Decimal::from_str_exact(raw)
                .map(|amount| price(amount, currency))
                .map_err(ApiError::internal)
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
        orders.push(SellerOrder {
            order_id: row.get(0),
            status: row.get(1),
            currency: currency.code(),
            lines,
            subtotal: price(row.get(3), currency),
            tax: price(row.get(4), currency),
            shipping,
            created_at: row.get(6),
            updated_at: row.get(7),
        });
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

/// A seller's part, locked for a change; another seller's is "not found".
struct LockedPart {
    status: String,
    subtotal: Decimal,
    tax: Decimal,
    tax_included: bool,
}

async fn lock_part(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Uuid,
) -> Result<LockedPart, ApiError> {
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
        .ok_or(ApiError::NotFound("order"))?;
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

fn invalid_transition(from: &str, to: &str) -> ApiError {
    ApiError::Conflict {
        code: "invalid_transition",
        message: format!("a {from} order part cannot become {to}"),
        field: None,
    }
}

/// After a part changed: the order is `refunded` when every part is, `fulfilled` when every
/// part is fulfilled or refunded, else it stays `paid`.
async fn roll_up(tx: &impl PreparedClient, order_id: Uuid) -> Result<String, ApiError> {
    let status: String = tx
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
) -> Result<(), ApiError> {
    let part = lock_part(tx, order_id, seller_id).await?;
    if part.status != "paid" {
        return Err(invalid_transition(&part.status, "fulfilled"));
    }
    tx.execute(
        "UPDATE order_parts SET status = 'fulfilled', updated_at = now()
         WHERE order_id = $1 AND seller_id = $2",
        &[&order_id, &seller_id],
    )
    .await?;
    append_event(tx, order_id, Some(seller_id), "fulfilled", "fulfilled").await?;
    let status = roll_up(tx, order_id).await?;
    if status == "fulfilled" {
        append_event(tx, order_id, None, "fulfilled", "fulfilled").await?;
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
) -> Result<(), ApiError> {
    let part = lock_part(tx, order_id, seller_id).await?;
    if part.status != "paid" && part.status != "fulfilled" {
        return Err(invalid_transition(&part.status, "refunded"));
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
    let (authorization, status): (Option<String>, String) = (payment.get(0), payment.get(1));
    let (others_left, shipping): (i64, Option<Decimal>) = (payment.get(2), payment.get(3));
    let Some(authorization) = authorization.filter(|_| status == "captured") else {
        return Err(ApiError::Conflict {
            code: "payment_not_captured",
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
    if part.status == "paid" {
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
    append_event(tx, order_id, Some(seller_id), "refunded", "refunded").await?;
    if roll_up(tx, order_id).await? == "refunded" {
        append_event(tx, order_id, None, "refunded", "refunded").await?;
    }
    // Last, with every change written but not committed: if the gateway refuses, nothing is.
    payments
        .refund(&Authorization { id: authorization }, amount)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
    metrics::counter!("agora_order_parts_total", "status" => "refunded").increment(1);
    Ok(())
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
