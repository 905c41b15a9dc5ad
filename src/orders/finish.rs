//! Finishing a pending order: paid (its holds sold, the ordered lines out of the cart) or
//! cancelled (its holds back to stock), with the outcome every retry of its idempotency key
//! gets, written in the same transaction; captures recorded.

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use uuid::Uuid;

use crate::{
    error::{Code, Error},
    payments::Authorization,
};

use super::*;

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

pub(super) async fn store_outcome(
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
/// parts, payments and holds paid by one set-based statement, their confirmation mail written
/// to the outbox by another (`mail::confirm_paid`), then each cart and response.
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
                 UPDATE orders o SET status = 'paid', paid_at = now(), updated_at = now()
                 FROM x WHERE o.id = x.id),
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
        // Their confirmations, in the same transaction: one statement for the whole batch.
        crate::mail::confirm_paid(tx, &pending).await?;
    }
    let finished: Vec<(Uuid, Uuid)> = paid
        .iter()
        .filter_map(|(order_id, _)| carts.get(order_id).map(|cart| (*order_id, *cart)))
        .collect();
    empty_ordered_lines(tx, &finished).await?;
    let order_ids: Vec<Uuid> = finished.iter().map(|(order_id, _)| *order_id).collect();
    let mut outcomes = BTreeMap::new();
    for order in views_of_just_paid(tx, &order_ids).await? {
        let order_json = serde_json::to_value(&order).map_err(Error::internal)?;
        outcomes.insert(order.id, CheckoutOutcome::Paid { order: order_json });
    }
    store_outcomes(tx, &outcomes).await?;
    paid.iter()
        .map(|(order_id, _)| match carts.contains_key(order_id) {
            true => outcomes
                .remove(order_id)
                .map(Some)
                .ok_or_else(|| Error::internal(anyhow::anyhow!("order {order_id} vanished"))),
            false => Ok(None),
        })
        .collect()
}

/// After orders are paid: their ordered lines leave their carts (each cart's version raised),
/// with any hold a concurrent tab took for them meanwhile, for all of them in one statement.
async fn empty_ordered_lines(
    tx: &impl PreparedClient,
    orders_and_carts: &[(Uuid, Uuid)],
) -> Result<(), Error> {
    if orders_and_carts.is_empty() {
        return Ok(());
    }
    let (orders, carts): (Vec<Uuid>, Vec<Uuid>) = orders_and_carts.iter().copied().unzip();
    tx.execute_planned_per_call(
        "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS x(order_id, cart_id)),
         changed AS (UPDATE carts c SET version = c.version + 1 FROM x WHERE c.id = x.cart_id),
         gone AS (
             DELETE FROM cart_lines l USING x
             WHERE l.cart_id = x.cart_id
               AND l.variant_id IN (SELECT variant_id FROM order_lines WHERE order_id = x.order_id)
             RETURNING l.cart_id, l.variant_id),
         released AS (
             UPDATE stock_holds h SET released_at = now()
             FROM gone g
             WHERE h.owner = g.cart_id::text AND h.variant_id = g.variant_id
               AND h.released_at IS NULL
             RETURNING h.variant_id, h.quantity)
         UPDATE variants v SET held = v.held - r.units
         FROM (SELECT variant_id, sum(quantity)::int4 AS units FROM released GROUP BY variant_id) r
         WHERE v.id = r.variant_id",
        &[&orders, &carts],
    )
    .await?;
    Ok(())
}

/// The outcomes of many orders stored with their idempotency keys, in one statement.
async fn store_outcomes(
    tx: &impl PreparedClient,
    outcomes: &BTreeMap<Uuid, CheckoutOutcome>,
) -> Result<(), Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut order_ids = Vec::with_capacity(outcomes.len());
    let (mut statuses, mut bodies) = (Vec::new(), Vec::new());
    for (order_id, outcome) in outcomes {
        let (status, body) = outcome.stored();
        order_ids.push(*order_id);
        statuses.push(status);
        bodies.push(body);
    }
    tx.execute_planned_per_call(
        "UPDATE idempotency_keys k SET response_status = x.status, response_body = x.body
         FROM unnest($1::uuid[], $2::int2[], $3::jsonb[]) AS x(order_id, status, body)
         WHERE k.order_id = x.order_id",
        &[&order_ids, &statuses, &bodies],
    )
    .await?;
    Ok(())
}

/// Counts an order that `finish_paid` or `finish_cancelled` finished, once that committed.
pub fn count_finished(outcome: &CheckoutOutcome) {
    let CheckoutOutcome::Paid { order } = outcome else {
        metrics::counter!("agora_orders_total", "status" => "cancelled").increment(1);
        return;
    };
    metrics::counter!("agora_orders_total", "status" => "paid").increment(1);
    let total = &order["total"];
    let amount = total["amount"]
        .as_str()
        .and_then(|amount| amount.parse::<Decimal>().ok());
    let currency = total["currency"].as_str().and_then(Currency::from_code);
    if let (Some(amount), Some(currency)) = (amount, currency) {
        metrics::counter!("agora_order_revenue_minor_units_total", "currency" => currency.code())
            .increment(minor_units(amount, currency));
    }
}

/// An amount in its currency's minor units, exactly (`9.99` EUR → 999, `5.096` KWD → 5096,
/// `12800` JPY → 12800).
pub fn minor_units(amount: Decimal, currency: Currency) -> u64 {
    let scaled = amount * Decimal::from(10u64.pow(currency.exponent()));
    u64::try_from(scaled.round()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revenue_is_counted_in_minor_units_exactly() {
        let amount = |raw: &str| raw.parse::<Decimal>().expect("decimal");
        let currency = |code: &str| Currency::from_code(code).expect("currency");
        assert_eq!(minor_units(amount("9.99"), currency("EUR")), 999);
        assert_eq!(minor_units(amount("5.096"), currency("KWD")), 5096);
        assert_eq!(minor_units(amount("12800"), currency("JPY")), 12800);
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
    fn parts(self) -> (&'static str, PaymentStatus, Code, &'static str) {
        // (event, payment status, error code, message)
        match self {
            Self::Declined => (
                "payment_declined",
                PaymentStatus::Declined,
                Code::PaymentDeclined,
                "the card was declined; the cart's stock holds were released",
            ),
            Self::TimedOut => (
                "payment_timed_out",
                PaymentStatus::TimedOut,
                Code::PaymentTimeout,
                "the payment gateway did not answer in time; nothing was charged and the holds were released",
            ),
            Self::GatewayFailed => (
                "payment_failed",
                PaymentStatus::Voided,
                Code::PaymentFailed,
                "the payment gateway failed; nothing was charged and the holds were released",
            ),
            Self::Abandoned => (
                "payment_abandoned",
                PaymentStatus::Voided,
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
    append_event(tx, order_id, None, event, OrderStatus::Cancelled).await?;
    let outcome = CheckoutOutcome::not_charged(code, message);
    store_outcome(tx, order_id, &outcome).await?;
    Ok(Some(outcome))
}

/// Returns the units of an order's holds (of one seller's lines, or all) to stock: unsettled
/// ones from `held`, settled ones from `sold`; each variant row locked once, in id order.
pub(super) async fn return_holds(
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
pub(super) async fn give_back_to_sale(
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
