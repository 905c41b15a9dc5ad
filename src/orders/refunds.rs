//! Money going back to the shopper: by units of lines (a cancellation, a received return, a
//! seller's refund of shipped units) or by an amount, each a `refunds` row paid through the
//! [`crate::payments::PaymentProvider`].
//!
//! Promises: a refund is written and paid under the order's lock (see [`super::units`]), the
//! gateway called last, so a refusal leaves nothing written and two processes refunding one
//! order take turns; a part never gives back more than it is worth, nor the order more than
//! was captured; the order's shipping goes back with the refund that leaves no unit unrefunded;
//! a refund's id is the reference the gateway deduplicates by — derived from the seller's
//! `Idempotency-Key` when it sent one — so a retry after a lost answer pays back once, and a
//! replayed key answers the refund it made. An order whose payment is authorized but not yet
//! captured is voided instead when it is cancelled whole; a partial refund then waits for the
//! capture (409 `payment_not_captured`).

use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    money::Price,
    payments::Payments,
};

use super::{price, units::OrderForChange, PaymentStatus};

crate::text_enum! {
    /// Why money went back (`refunds.kind`).
    pub enum RefundKind {
        /// Units cancelled before they shipped, by the shopper or the seller.
        Cancellation = "cancellation",
        /// Shipped units the seller refunded (the shopper keeps them).
        Lines = "lines",
        /// An amount the seller gave back, not tied to units.
        Amount = "amount",
        /// Units the shopper sent back and the seller received.
        Return = "return",
    }
}

/// Units refunded: (index into the locked order's lines, units, what they gave back).
type RefundedUnits = Vec<(usize, i32, Decimal)>;

/// A refund as written: its id, lines, total and shipping, and whether it voided the payment.
struct RefundRow<'a> {
    id: Uuid,
    lines: &'a RefundedUnits,
    amount: Decimal,
    shipping: Decimal,
    voided: bool,
}

/// Namespace of refund ids derived from an `Idempotency-Key` ("agora refunds").
const REFUND_KEYS: Uuid = Uuid::from_u128(0x6167_6f72_6120_7265_6675_6e64_7300_0001);

/// What a refund takes: units of lines (by index into the locked order's lines), or an amount.
#[derive(Debug, Clone)]
pub enum RefundOf {
    Units(Vec<(usize, i32)>),
    Amount(Decimal),
}

/// A refund to make on a locked order.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub kind: RefundKind,
    /// The part it comes out of; `None`: the shopper's cancellation of the whole order.
    pub seller_id: Option<Uuid>,
    pub of: RefundOf,
    /// The seller's `Idempotency-Key` and the request it came with.
    pub idempotency: Option<(String, serde_json::Value)>,
}

/// A refund as shoppers and sellers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refund {
    pub id: Uuid,
    /// `cancellation`, `lines`, `amount` or `return`.
    #[schema(value_type = String, example = "lines")]
    pub kind: RefundKind,
    pub seller_id: Option<Uuid>,
    /// Everything given back, shipping included.
    pub amount: Price,
    /// The order's shipping, given back with the last units.
    pub shipping: Price,
    /// The payment was voided before capture instead of paid back.
    pub voided: bool,
    pub lines: Vec<RefundedLine>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundedLine {
    pub sku: String,
    pub quantity: u32,
    pub amount: Price,
}

/// The refund an `Idempotency-Key` already made for this seller and order, if any; a key
/// reused with another request is refused.
pub async fn replayed(
    tx: &impl PreparedClient,
    order: &OrderForChange,
    request: &RefundRequest,
) -> Result<Option<Refund>, Error> {
    let Some((key, body)) = &request.idempotency else {
        return Ok(None);
    };
    let id = refund_id(order.id, request.seller_id, Some(key));
    let Some(row) = tx
        .query_opt("SELECT request FROM refunds WHERE id = $1", &[&id])
        .await?
    else {
        return Ok(None);
    };
    if row.get::<_, Option<serde_json::Value>>(0).as_ref() != Some(body) {
        return Err(Error::invalid_field(
            Code::IdempotencyKeyReused,
            "Idempotency-Key",
            "this key was used with a different refund",
        ));
    }
    Ok(refunds_of(tx, order.id, None)
        .await?
        .into_iter()
        .find(|refund| refund.id == id))
}

fn refund_id(order_id: Uuid, seller_id: Option<Uuid>, key: Option<&String>) -> Uuid {
    match key {
        Some(key) => {
            let seller = seller_id.unwrap_or_default();
            let name = format!("{order_id}/{seller}/{key}");
            Uuid::new_v5(&REFUND_KEYS, name.as_bytes())
        }
        None => Uuid::now_v7(),
    }
}

/// Gives back what `request` takes: writes the refund and its lines, the units refunded, the
/// part's and the payment's totals, then pays it back (or voids the payment) — last, so a
/// gateway refusal undoes the transaction. The caller saves the order's units and statuses
/// (and cancels or returns units) before committing.
pub async fn refund(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    request: &RefundRequest,
    payments: &Payments,
) -> Result<Refund, Error> {
    let id = refund_id(
        order.id,
        request.seller_id,
        request.idempotency.as_ref().map(|(key, _)| key),
    );
    let (lines, mut amount) = price_units(order, request)?;
    let shipping = if order.all_units_refunded() && !order.shipping_refunded {
        order.shipping_refunded = true;
        order.shipping
    } else {
        Decimal::ZERO
    };
    amount += shipping;
    let already = order.payment.refunded;
    if already + amount > order.payment.amount {
        return Err(Error::invalid_field(
            Code::RefundExceedsCaptured,
            "amount",
            format!(
                "only {} of {} captured is left to refund",
                order.payment.amount - already,
                order.payment.amount
            ),
        ));
    }
    let whole = order.all_units_refunded() && request.seller_id.is_none();
    let voided = match order.payment.status {
        PaymentStatus::Captured => false,
        PaymentStatus::Authorized if whole => true,
        _ => {
            return Err(Error::Conflict {
                code: Code::PaymentNotCaptured,
                message: "the payment is not captured yet; retry shortly".into(),
                field: None,
            })
        }
    };
    let row = RefundRow {
        id,
        lines: &lines,
        amount,
        shipping,
        voided,
    };
    write_refund(tx, order, request, &row).await?;
    order.payment.refunded += amount;
    let voided = pay_back(tx, order, id, amount, voided, payments).await?;
    metrics::counter!("agora_refunds_total", "kind" => request.kind.as_str()).increment(1);
    Ok(Refund {
        id,
        kind: request.kind,
        seller_id: request.seller_id,
        amount: price(amount, order.currency),
        shipping: price(shipping, order.currency),
        voided,
        lines: lines
            .iter()
            .map(|(index, units, amount)| RefundedLine {
                sku: order.lines[*index].sku.clone(),
                quantity: u32::try_from(*units).unwrap_or(0),
                amount: price(*amount, order.currency),
            })
            .collect(),
        created_at: chrono::Utc::now(),
    })
}

/// What each line's units give back (marking them refunded on the locked order), or the
/// amount asked for; each part's share capped at what it is still worth.
fn price_units(
    order: &mut OrderForChange,
    request: &RefundRequest,
) -> Result<(RefundedUnits, Decimal), Error> {
    let (currency, included) = (order.currency, order.tax_included);
    match &request.of {
        RefundOf::Amount(amount) => {
            let seller = request.seller_id.ok_or(Error::NotFound("order"))?;
            let left = order.part_worth(seller) - order.part(seller)?.refunded;
            if currency.round(*amount) != *amount {
                return Err(Error::invalid_field(
                    Code::InvalidAmount,
                    "amount",
                    format!("has more decimals than {} has", currency.code()),
                ));
            }
            if *amount <= Decimal::ZERO || *amount > left {
                return Err(Error::invalid_field(
                    Code::RefundExceedsCaptured,
                    "amount",
                    format!("must be more than 0 and at most {left}: what this part has left"),
                ));
            }
            add_to_part(order, seller, *amount);
            Ok((Vec::new(), *amount))
        }
        RefundOf::Units(units) => {
            let mut lines = Vec::with_capacity(units.len());
            let mut total = Decimal::ZERO;
            for &(index, count) in units {
                let line = &order.lines[index];
                let seller = line.seller_id;
                let worth = line.refund_of(count, currency, included);
                let left = order.part_worth(seller) - order.part(seller)?.refunded;
                let given = worth.min(left).max(Decimal::ZERO);
                order.lines[index].refunded += count;
                add_to_part(order, seller, given);
                lines.push((index, count, given));
                total += given;
            }
            Ok((lines, total))
        }
    }
}

fn add_to_part(order: &mut OrderForChange, seller_id: Uuid, amount: Decimal) {
    if let Some(part) = order.parts.iter_mut().find(|p| p.seller_id == seller_id) {
        part.refunded += amount;
    }
}

async fn write_refund(
    tx: &impl PreparedClient,
    order: &OrderForChange,
    request: &RefundRequest,
    row: &RefundRow<'_>,
) -> Result<(), Error> {
    let RefundRow {
        id,
        lines,
        amount,
        shipping,
        voided,
    } = *row;
    let (key, body) = match &request.idempotency {
        Some((key, body)) => (Some(key.as_str()), Some(body)),
        None => (None, None),
    };
    tx.execute(
        "INSERT INTO refunds (id, order_id, seller_id, kind, amount, shipping, voided,
                              idempotency_key, request)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &id,
            &order.id,
            &request.seller_id,
            &request.kind,
            &amount,
            &shipping,
            &voided,
            &key,
            &body,
        ],
    )
    .await?;
    let line_nos: Vec<i32> = lines
        .iter()
        .map(|(i, _, _)| order.lines[*i].line_no)
        .collect();
    let counts: Vec<i32> = lines.iter().map(|(_, count, _)| *count).collect();
    let amounts: Vec<Decimal> = lines.iter().map(|(_, _, amount)| *amount).collect();
    tx.execute(
        "INSERT INTO refund_lines (refund_id, order_id, line_no, quantity, amount)
         SELECT $1, $2, x.line_no, x.quantity, x.amount
         FROM unnest($3::int[], $4::int[], $5::numeric[]) AS x(line_no, quantity, amount)",
        &[&id, &order.id, &line_nos, &counts, &amounts],
    )
    .await?;
    let sellers: Vec<Uuid> = order.parts.iter().map(|p| p.seller_id).collect();
    let refunded: Vec<Decimal> = order.parts.iter().map(|p| p.refunded).collect();
    tx.execute(
        "UPDATE order_parts p SET refunded = x.refunded
         FROM unnest($2::uuid[], $3::numeric[]) AS x(seller_id, refunded)
         WHERE p.order_id = $1 AND p.seller_id = x.seller_id",
        &[&order.id, &sellers, &refunded],
    )
    .await?;
    let payment_status = if voided {
        PaymentStatus::Voided
    } else {
        order.payment.status
    };
    tx.execute(
        "UPDATE payments SET refunded = refunded + $2, status = $3, updated_at = now()
         WHERE order_id = $1",
        &[&order.id, &amount, &payment_status],
    )
    .await?;
    Ok(())
}

/// Pays `amount` back under the refund's reference, or voids the whole authorization; a
/// payment the gateway captured meanwhile (the capture runs right after checkout) is paid back
/// instead, and the rows written as voided say so. Answers whether it was voided.
async fn pay_back(
    tx: &impl PreparedClient,
    order: &OrderForChange,
    id: Uuid,
    amount: Decimal,
    voided: bool,
    payments: &Payments,
) -> Result<bool, Error> {
    if amount.is_zero() {
        return Ok(voided);
    }
    let unavailable = |error: crate::payments::PaymentError| Error::Unavailable(error.to_string());
    let authorization = order.payment.authorization.as_ref().ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "paid order {} has no authorization",
            order.id
        ))
    })?;
    if voided {
        if payments.void(order.payment.reference).await.is_ok() {
            return Ok(true);
        }
        tx.execute("UPDATE refunds SET voided = false WHERE id = $1", &[&id])
            .await?;
        tx.execute(
            "UPDATE payments SET status = 'captured' WHERE order_id = $1",
            &[&order.id],
        )
        .await?;
    }
    payments
        .refund(authorization, id, amount)
        .await
        .map_err(unavailable)?;
    Ok(false)
}

/// The refunds of an order (of one seller's part only, for a seller), oldest first.
pub async fn refunds_of(
    client: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
) -> Result<Vec<Refund>, Error> {
    let rows = client
        .query(
            "SELECT r.id, r.kind, r.seller_id, r.amount, r.shipping, r.voided, r.created_at,
                    o.currency,
                    coalesce((SELECT jsonb_agg(jsonb_build_array(l.sku, x.quantity, x.amount::text)
                                               ORDER BY x.line_no)
                              FROM refund_lines x JOIN order_lines l
                                ON l.order_id = x.order_id AND l.line_no = x.line_no
                              WHERE x.refund_id = r.id
                                AND ($2::uuid IS NULL OR l.seller_id = $2)), '[]')
             FROM refunds r JOIN orders o ON o.id = r.order_id
             WHERE r.order_id = $1 AND ($2::uuid IS NULL OR r.seller_id = $2
                                        OR (r.seller_id IS NULL AND EXISTS (
                                            SELECT 1 FROM refund_lines x JOIN order_lines l
                                              ON l.order_id = x.order_id AND l.line_no = x.line_no
                                            WHERE x.refund_id = r.id AND l.seller_id = $2)))
             ORDER BY r.created_at, r.id",
            &[&order_id, &seller_id],
        )
        .await?;
    let mut refunds = Vec::with_capacity(rows.len());
    for row in rows {
        let currency = super::stored_currency(row.get(7))?;
        let raw: Vec<(String, i32, String)> =
            serde_json::from_value(row.get(8)).map_err(Error::internal)?;
        let mut lines = Vec::with_capacity(raw.len());
        for (sku, quantity, amount) in raw {
            let amount = Decimal::from_str_exact(&amount).map_err(Error::internal)?;
            lines.push(RefundedLine {
                sku,
                quantity: u32::try_from(quantity).unwrap_or(0),
                amount: price(amount, currency),
            });
        }
        refunds.push(Refund {
            id: row.get(0),
            kind: row.get(1),
            seller_id: row.get(2),
            amount: price(row.get(3), currency),
            shipping: price(row.get(4), currency),
            voided: row.get(5),
            lines,
            created_at: row.get(6),
        });
    }
    Ok(refunds)
}
