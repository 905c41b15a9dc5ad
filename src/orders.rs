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
    carts::{self, CartView, Shipping, Tax},
    error::{Code, Error},
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
) -> Result<Option<OrderView>, Error> {
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
    Api(Error),
}

impl<E: Into<Error>> From<E> for PlaceError {
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
    let order = claim_for_order(tx, claim, cart, card_last4, provider).await?;
    write_pending(tx, std::slice::from_ref(&order)).await?;
    Ok(order.pending)
}

/// A pending order checked and claimed (`claim_for_order`), its rows not yet written
/// (`write_pending`).
pub struct NewOrder {
    pub pending: PendingOrder,
    shopper_id: Uuid,
    key: String,
    region: String,
    subtotal: Decimal,
    tax_rate: Decimal,
    tax_included: bool,
    tax: Decimal,
    shipping: Option<serde_json::Value>,
    provider: String,
    card_last4: String,
    lines: Vec<NewLine>,
    /// Each seller's share: (seller, subtotal, tax).
    parts: Vec<(Uuid, Decimal, Decimal)>,
}

struct NewLine {
    seller_id: Uuid,
    variant_id: Uuid,
    product_id: Uuid,
    sku: String,
    title: String,
    quantity: i32,
    unit_price: Decimal,
    line_total: Decimal,
    tax: Decimal,
}

/// The checks and claims of placing an order: takes the idempotency key, checks no other
/// checkout of the cart is pending, and moves the cart's holds to the new order.
pub async fn claim_for_order(
    tx: &impl PreparedClient,
    claim: &IdempotencyClaim<'_>,
    cart: &CartView,
    card_last4: &str,
    provider: &str,
) -> Result<NewOrder, PlaceError> {
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
        return Err(PlaceError::Api(Error::Conflict {
            code: Code::CheckoutInProgress,
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
        .map_err(Error::internal)?;
    let totals: Vec<Decimal> = cart.lines.iter().map(|l| l.line_total.amount).collect();
    let taxes = tax_shares(&totals, cart.tax.amount.amount, currency);
    let mut parts: BTreeMap<Uuid, (Decimal, Decimal)> = BTreeMap::new();
    for (line, tax) in cart.lines.iter().zip(&taxes) {
        let part = parts.entry(line.seller_id).or_default();
        part.0 += line.line_total.amount;
        part.1 += *tax;
    }
    let lines = cart
        .lines
        .iter()
        .zip(taxes)
        .map(|(line, tax)| NewLine {
            seller_id: line.seller_id,
            variant_id: line.variant_id,
            product_id: line.product_id,
            sku: line.sku.clone(),
            title: line.title.clone(),
            quantity: i32::try_from(line.quantity).unwrap_or(i32::MAX),
            unit_price: line.unit_price.amount,
            line_total: line.line_total.amount,
            tax,
        })
        .collect();
    Ok(NewOrder {
        pending: PendingOrder {
            id: order_id,
            cart_id: cart.id,
            reference: Uuid::new_v4(),
            total: cart.total.amount,
            currency,
        },
        shopper_id: claim.shopper_id,
        key: claim.key.to_owned(),
        region: cart.region.clone(),
        subtotal: cart.subtotal.amount,
        tax_rate: cart.tax.rate,
        tax_included: cart.tax.included,
        tax: cart.tax.amount.amount,
        shipping,
        provider: provider.to_owned(),
        card_last4: card_last4.to_owned(),
        lines,
        parts: parts
            .into_iter()
            .map(|(seller, (subtotal, tax))| (seller, subtotal, tax))
            .collect(),
    })
}

/// Writes the rows of claimed pending orders (`claim_for_order`), each table's rows for all of
/// them in one set-based statement: the order, its lines, its sellers' parts, its payment
/// awaiting authorization, the key pointing at it and its `created` event.
pub async fn write_pending(tx: &impl PreparedClient, orders: &[NewOrder]) -> Result<(), Error> {
    let each = |pick: fn(&NewOrder) -> Uuid| orders.iter().map(pick).collect::<Vec<_>>();
    let amounts = |pick: fn(&NewOrder) -> Decimal| orders.iter().map(pick).collect::<Vec<_>>();
    let texts = |pick: fn(&NewOrder) -> &str| orders.iter().map(pick).collect::<Vec<_>>();
    let (ids, shoppers, carts, references) = (
        each(|o| o.pending.id),
        each(|o| o.shopper_id),
        each(|o| o.pending.cart_id),
        each(|o| o.pending.reference),
    );
    let (regions, currencies, providers, last4s, keys) = (
        texts(|o| &o.region),
        texts(|o| o.pending.currency.code()),
        texts(|o| &o.provider),
        texts(|o| &o.card_last4),
        texts(|o| &o.key),
    );
    let (subtotals, tax_rates, taxes, totals) = (
        amounts(|o| o.subtotal),
        amounts(|o| o.tax_rate),
        amounts(|o| o.tax),
        amounts(|o| o.pending.total),
    );
    let tax_included: Vec<bool> = orders.iter().map(|o| o.tax_included).collect();
    let shippings: Vec<Option<&serde_json::Value>> =
        orders.iter().map(|o| o.shipping.as_ref()).collect();

    let lines: Vec<(Uuid, i32, &NewLine)> = orders
        .iter()
        .flat_map(|o| {
            o.lines
                .iter()
                .enumerate()
                .map(|(n, line)| (o.pending.id, i32::try_from(n).unwrap_or(i32::MAX), line))
        })
        .collect();
    let line_orders: Vec<Uuid> = lines.iter().map(|l| l.0).collect();
    let line_numbers: Vec<i32> = lines.iter().map(|l| l.1).collect();
    let line_ids = |pick: fn(&NewLine) -> Uuid| lines.iter().map(|l| pick(l.2)).collect::<Vec<_>>();
    let line_amounts =
        |pick: fn(&NewLine) -> Decimal| lines.iter().map(|l| pick(l.2)).collect::<Vec<_>>();
    let (line_sellers, line_variants, line_products) = (
        line_ids(|l| l.seller_id),
        line_ids(|l| l.variant_id),
        line_ids(|l| l.product_id),
    );
    let line_skus: Vec<&str> = lines.iter().map(|l| l.2.sku.as_str()).collect();
    let line_titles: Vec<&str> = lines.iter().map(|l| l.2.title.as_str()).collect();
    let line_quantities: Vec<i32> = lines.iter().map(|l| l.2.quantity).collect();
    let (unit_prices, line_totals, line_taxes) = (
        line_amounts(|l| l.unit_price),
        line_amounts(|l| l.line_total),
        line_amounts(|l| l.tax),
    );

    let parts: Vec<(Uuid, &(Uuid, Decimal, Decimal))> = orders
        .iter()
        .flat_map(|o| o.parts.iter().map(|part| (o.pending.id, part)))
        .collect();
    let part_orders: Vec<Uuid> = parts.iter().map(|p| p.0).collect();
    let part_sellers: Vec<Uuid> = parts.iter().map(|p| p.1 .0).collect();
    let part_subtotals: Vec<Decimal> = parts.iter().map(|p| p.1 .1).collect();
    let part_taxes: Vec<Decimal> = parts.iter().map(|p| p.1 .2).collect();

    tx.execute_planned_per_call(
        "WITH x AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                  $6::numeric[], $7::numeric[], $8::bool[], $9::numeric[],
                                  $10::jsonb[], $11::numeric[], $12::uuid[], $13::text[],
                                  $14::text[], $15::text[])
                 AS x(id, shopper, cart, region, currency, subtotal, tax_rate, tax_included,
                      tax, shipping, total, reference, provider, card_last4, key)),
         o AS (
             INSERT INTO orders (id, shopper_id, cart_id, region, currency, status, subtotal,
                                 tax_rate, tax_included, tax, shipping, total)
             SELECT id, shopper, cart, region, currency, 'pending', subtotal, tax_rate,
                    tax_included, tax, shipping, total
             FROM x),
         l AS (
             INSERT INTO order_lines (order_id, line_no, seller_id, variant_id, product_id, sku,
                                      title, quantity, unit_price, line_total, tax)
             SELECT * FROM unnest($16::uuid[], $17::int4[], $18::uuid[], $19::uuid[],
                                  $20::uuid[], $21::text[], $22::text[], $23::int4[],
                                  $24::numeric[], $25::numeric[], $26::numeric[])),
         p AS (
             INSERT INTO order_parts (order_id, seller_id, status, subtotal, tax)
             SELECT p.order_id, p.seller, 'pending', p.subtotal, p.tax
             FROM unnest($27::uuid[], $28::uuid[], $29::numeric[], $30::numeric[])
                 AS p(order_id, seller, subtotal, tax)),
         y AS (
             INSERT INTO payments (reference, order_id, provider, amount, currency, card_last4,
                                   status)
             SELECT reference, id, provider, total, currency, card_last4, 'authorizing' FROM x),
         k AS (
             UPDATE idempotency_keys k SET order_id = x.id
             FROM x WHERE k.shopper_id = x.shopper AND k.key = x.key)
         INSERT INTO order_events (order_id, seller_id, kind, status)
         SELECT id, NULL, 'created', 'pending' FROM x",
        &[
            &ids,
            &shoppers,
            &carts,
            &regions,
            &currencies,
            &subtotals,
            &tax_rates,
            &tax_included,
            &taxes,
            &shippings,
            &totals,
            &references,
            &providers,
            &last4s,
            &keys,
            &line_orders,
            &line_numbers,
            &line_sellers,
            &line_variants,
            &line_products,
            &line_skus,
            &line_titles,
            &line_quantities,
            &unit_prices,
            &line_totals,
            &line_taxes,
            &part_orders,
            &part_sellers,
            &part_subtotals,
            &part_taxes,
        ],
    )
    .await?;
    Ok(())
}

/// Moves the cart's live holds to the order, after checking they cover every line exactly
/// (a surplus goes back to stock; a shortfall means a hold lapsed meanwhile: 409, retry).
async fn claim_holds(
    tx: &impl PreparedClient,
    cart: &CartView,
    order_id: Uuid,
) -> Result<(), Error> {
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
            return Err(Error::Conflict {
                code: Code::HoldExpired,
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
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO order_events (order_id, seller_id, kind, status) VALUES ($1, $2, $3, $4)",
        &[&order_id, &seller_id, &kind, &status],
    )
    .await?;
    Ok(())
}

/// Locks a pending order; `None` when someone else already finished it.
async fn lock_pending(tx: &impl PreparedClient, order_id: Uuid) -> Result<Option<Uuid>, Error> {
    Ok(tx
        .query_opt(
            "SELECT cart_id FROM orders WHERE id = $1 AND status = 'pending' FOR UPDATE",
            &[&order_id],
        )
        .await?
        .map(|row| row.get(0)))
}

/// What a checkout came to: what every retry under its idempotency key is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckoutOutcome {
    /// The order was paid; `order` is the order as it stood then (a retry sees that, not
    /// whatever became of the order since).
    Paid { order: serde_json::Value },
    /// Nothing was charged: the payment was declined, failed or timed out (the holds were
    /// released), or it is still being reconciled.
    NotCharged { code: Code, message: String },
}

impl CheckoutOutcome {
    fn not_charged(code: Code, message: &str) -> Self {
        Self::NotCharged {
            code,
            message: message.to_owned(),
        }
    }

    pub fn is_paid(&self) -> bool {
        matches!(self, Self::Paid { .. })
    }

    /// The paid order's id.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Self::Paid { order } => order.get("id").and_then(|id| id.as_str()),
            Self::NotCharged { .. } => None,
        }
    }

    /// As kept with the idempotency key: a status (201 paid, else the code's status from the
    /// code table) and a body (the order, or `{"error": {"code", "message"}}`), the form every
    /// earlier release stored too.
    fn stored(&self) -> (i16, serde_json::Value) {
        match self {
            Self::Paid { order } => (201, order.clone()),
            Self::NotCharged { code, message } => (
                code.statuses().first().map_or(500, |status| *status as i16),
                serde_json::json!({ "error": { "code": code.as_str(), "message": message } }),
            ),
        }
    }

    /// What [`stored`](Self::stored) kept, read back.
    pub(crate) fn from_stored(
        status: Option<i16>,
        body: Option<serde_json::Value>,
    ) -> Result<Self, Error> {
        let body = body.ok_or_else(|| Error::internal(anyhow::anyhow!("no stored outcome")))?;
        if status == Some(201) {
            return Ok(Self::Paid { order: body });
        }
        let error = &body["error"];
        let code = error["code"]
            .as_str()
            .and_then(Code::parse)
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!("stored outcome without a known code"))
            })?;
        Ok(Self::NotCharged {
            code,
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

async fn store_outcome(
    tx: &impl PreparedClient,
    order_id: Uuid,
    outcome: &CheckoutOutcome,
) -> Result<(), Error> {
    let (status, body) = outcome.stored();
    tx.execute(
        "UPDATE idempotency_keys SET response_status = $2, response_body = $3 WHERE order_id = $1",
        &[&order_id, &status, &body],
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
) -> Result<Option<CheckoutOutcome>, Error> {
    Ok(finish_all_paid(tx, &[(order_id, authorization)])
        .await?
        .pop()
        .flatten())
}

/// `finish_paid` for many orders (of distinct carts), answering each in order: their orders,
/// parts, payments and holds paid by one set-based statement, then each cart and response.
pub async fn finish_all_paid(
    tx: &impl PreparedClient,
    paid: &[(Uuid, &Authorization)],
) -> Result<Vec<Option<CheckoutOutcome>>, Error> {
    if paid.is_empty() {
        return Ok(Vec::new());
    }
    let order_ids: Vec<Uuid> = paid.iter().map(|(order_id, _)| *order_id).collect();
    // Locked in id order, as everywhere orders are locked together.
    let carts: BTreeMap<Uuid, Uuid> = tx
        .query_planned_per_call(
            "SELECT id, cart_id FROM orders WHERE id = ANY($1) AND status = 'pending'
             ORDER BY id FOR UPDATE",
            &[&order_ids],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let (pending, authorizations): (Vec<Uuid>, Vec<&str>) = paid
        .iter()
        .filter(|(order_id, _)| carts.contains_key(order_id))
        .map(|(order_id, authorization)| (*order_id, authorization.id.as_str()))
        .unzip();
    if !pending.is_empty() {
        // The orders, their parts, payments and holds paid, and the paid events (each order's
        // first, then each seller's).
        tx.execute_planned_per_call(
            "WITH x AS (
                 SELECT * FROM unnest($1::uuid[], $2::text[]) AS x(id, authorization_id)),
             h AS (
                 UPDATE stock_holds h SET sold_at = now()
                 FROM x WHERE h.order_id = x.id AND h.released_at IS NULL),
             o AS (
                 UPDATE orders o SET status = 'paid', updated_at = now() FROM x WHERE o.id = x.id),
             y AS (
                 UPDATE payments y
                 SET status = 'authorized', authorization_id = x.authorization_id,
                     updated_at = now()
                 FROM x WHERE y.order_id = x.id),
             p AS (
                 UPDATE order_parts p SET status = 'paid', updated_at = now()
                 FROM x WHERE p.order_id = x.id
                 RETURNING p.order_id, p.seller_id)
             INSERT INTO order_events (order_id, seller_id, kind, status)
             SELECT e.order_id, e.seller_id, 'paid', 'paid'
             FROM (SELECT id AS order_id, NULL::uuid AS seller_id FROM x
                   UNION ALL SELECT order_id, seller_id FROM p) e
             ORDER BY e.order_id, e.seller_id NULLS FIRST",
            &[&pending, &authorizations],
        )
        .await?;
    }
    futures_util::future::try_join_all(paid.iter().map(|(order_id, _)| async {
        match carts.get(order_id) {
            Some(cart_id) => empty_ordered_lines(tx, *order_id, *cart_id).await.map(Some),
            None => Ok(None),
        }
    }))
    .await
}

/// After an order is paid: its lines leave the cart, and its response is stored for the key.
async fn empty_ordered_lines(
    tx: &impl PreparedClient,
    order_id: Uuid,
    cart_id: Uuid,
) -> Result<CheckoutOutcome, Error> {
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
        .ok_or_else(|| Error::internal(anyhow::anyhow!("order {order_id} vanished")))?;
    let outcome = CheckoutOutcome::Paid {
        order: serde_json::to_value(&order).map_err(Error::internal)?,
    };
    store_outcome(tx, order_id, &outcome).await?;
    Ok(outcome)
}

/// Counts an order that `finish_paid` or `finish_cancelled` finished, once that committed.
pub fn count_finished(outcome: &CheckoutOutcome) {
    let CheckoutOutcome::Paid { order } = outcome else {
        metrics::counter!("agora_orders_total", "status" => "cancelled").increment(1);
        return;
    };
    metrics::counter!("agora_orders_total", "status" => "paid").increment(1);
    let total = &order["total"];
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
    fn parts(self) -> (&'static str, &'static str, Code, &'static str) {
        // (event, payment status, error code, message)
        match self {
            Self::Declined => (
                "payment_declined",
                "declined",
                Code::PaymentDeclined,
                "the card was declined; the cart's stock holds were released",
            ),
            Self::TimedOut => (
                "payment_timed_out",
                "timed_out",
                Code::PaymentTimeout,
                "the payment gateway did not answer in time; nothing was charged and the holds were released",
            ),
            Self::GatewayFailed => (
                "payment_failed",
                "voided",
                Code::PaymentFailed,
                "the payment gateway failed; nothing was charged and the holds were released",
            ),
            Self::Abandoned => (
                "payment_abandoned",
                "voided",
                Code::PaymentTimeout,
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
) -> Result<Option<CheckoutOutcome>, Error> {
    if lock_pending(tx, order_id).await?.is_none() {
        return Ok(None);
    }
    let (event, payment, code, message) = why.parts();
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
    let outcome = CheckoutOutcome::not_charged(code, message);
    store_outcome(tx, order_id, &outcome).await?;
    Ok(Some(outcome))
}

/// Returns the units of an order's holds (of one seller's lines, or all) to stock: unsettled
/// ones from `held`, settled ones from `sold`; each variant row locked once, in id order.
async fn return_holds(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
) -> Result<(), Error> {
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
) -> Result<bool, Error> {
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
pub async fn skus(client: &impl PreparedClient, order_id: Uuid) -> Result<Vec<String>, Error> {
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
pub async fn mark_captured(client: &impl PreparedClient, order_id: Uuid) -> Result<(), Error> {
    mark_all_captured(client, &[order_id]).await
}

/// `mark_captured` for many orders, in one statement.
pub async fn mark_all_captured(
    client: &impl PreparedClient,
    order_ids: &[Uuid],
) -> Result<(), Error> {
    client
        .execute_planned_per_call(
            "UPDATE payments SET status = 'captured', updated_at = now()
             WHERE order_id = ANY($1) AND status = 'authorized'",
            &[&order_ids],
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
) -> Result<SellerOrderPage, Error> {
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

fn invalid_transition(from: &str, to: &str) -> Error {
    Error::Conflict {
        code: Code::InvalidTransition,
        message: format!("a {from} order part cannot become {to}"),
        field: None,
    }
}

/// After a part changed: the order is `refunded` when every part is, `fulfilled` when every
/// part is fulfilled or refunded, else it stays `paid`.
async fn roll_up(tx: &impl PreparedClient, order_id: Uuid) -> Result<String, Error> {
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
) -> Result<(), Error> {
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
) -> Result<(), Error> {
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
        .map_err(|error| Error::Unavailable(error.to_string()))?;
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
