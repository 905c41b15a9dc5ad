//! Placing an order: the pending order priced from the cart under its lock, its payment row,
//! its idempotency key, and the cart's holds claimed for it; many orders written by one
//! set-based statement.

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    carts::{self, CartView},
    error::{Code, Error},
    money::Currency,
};

use super::*;

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
    /// The address and contact email as they were at checkout.
    shipping_address: Option<serde_json::Value>,
    contact_email: Option<String>,
    provider: String,
    card_last4: String,
    lines: Vec<NewLine>,
    /// Each seller's share: (seller, subtotal, tax).
    parts: Vec<(Uuid, Decimal, Decimal)>,
}

pub(super) struct NewLine {
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
        shipping_address: cart
            .shipping_address
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(Error::internal)?,
        contact_email: cart.contact_email.clone(),
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
    let addresses: Vec<Option<&serde_json::Value>> =
        orders.iter().map(|o| o.shipping_address.as_ref()).collect();
    let contacts: Vec<Option<&str>> = orders.iter().map(|o| o.contact_email.as_deref()).collect();

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
                                  $14::text[], $15::text[], $31::jsonb[], $32::text[])
                 AS x(id, shopper, cart, region, currency, subtotal, tax_rate, tax_included,
                      tax, shipping, total, reference, provider, card_last4, key,
                      shipping_address, contact_email)),
         o AS (
             INSERT INTO orders (id, shopper_id, cart_id, region, currency, status, subtotal,
                                 tax_rate, tax_included, tax, shipping, total,
                                 shipping_address, contact_email)
             SELECT id, shopper, cart, region, currency, 'pending', subtotal, tax_rate,
                    tax_included, tax, shipping, total, shipping_address, contact_email
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
            &addresses,
            &contacts,
        ],
    )
    .await?;
    Ok(())
}

/// Refuses an order, where the region ships, without what its seller needs to send it: an
/// address (422 `address_required` naming `shipping.address`) and a contact email (a guest's
/// checkout without one: 422 `email_required` naming `email`; a registered shopper's is
/// their account's unless they gave another). Where the region does not ship, the contact is
/// kept when given.
pub fn check_destination(cart: &CartView) -> Result<(), Error> {
    if !cart.needs_shipping {
        return Ok(());
    }
    if cart.shipping_address.is_none() {
        return Err(Error::invalid_field(
            Code::AddressRequired,
            "shipping.address",
            "give the address to ship to first",
        ));
    }
    if cart.contact_email.is_none() {
        return Err(Error::invalid_field(
            Code::EmailRequired,
            "email",
            "give a contact email for the order, or sign in",
        ));
    }
    Ok(())
}

/// Moves the cart's live holds to the order, after checking they cover every line exactly
/// (a surplus goes back to stock; a shortfall means a hold lapsed meanwhile: 409, retry).
pub(super) async fn claim_holds(
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

pub(super) async fn append_event(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
    kind: &str,
    status: OrderStatus,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO order_events (order_id, seller_id, kind, status) VALUES ($1, $2, $3, $4)",
        &[&order_id, &seller_id, &kind, &status],
    )
    .await?;
    Ok(())
}

/// Locks a pending order; `None` when someone else already finished it.
pub(super) async fn lock_pending(
    tx: &impl PreparedClient,
    order_id: Uuid,
) -> Result<Option<Uuid>, Error> {
    Ok(tx
        .query_opt(
            "SELECT cart_id FROM orders WHERE id = $1 AND status = 'pending' FOR UPDATE",
            &[&order_id],
        )
        .await?
        .map(|row| row.get(0)))
}
