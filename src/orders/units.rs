//! An order locked for a change after the sale: its lines' units (shipped, cancelled,
//! refunded, returned), its parts, its payment, and the statuses they add up to.
//!
//! Promises: every change after the sale (a shipment, a cancellation, a refund, a return) runs
//! on an [`OrderForChange`], read under the order row's lock — the lock checkout and the
//! reconciler take first — so two processes changing one order take turns and each sees the
//! other's work; a unit is shipped at most once, cancelled only unshipped, refunded at most
//! once; what a line's units are worth is cumulative ([`LineUnits::worth_of`]), so refunding a
//! line unit by unit gives back exactly its price and tax share, never a cent of drift.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    money::Currency,
    payments::Authorization,
};

use super::{stored_currency, OrderStatus, PaymentStatus};

/// Who asks to change an order: only its shopper, a seller with a part in it, or the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Shopper(Uuid),
    Seller(Uuid),
}

/// One order line and what happened to its units since the sale.
#[derive(Debug, Clone)]
pub struct LineUnits {
    pub line_no: i32,
    pub seller_id: Uuid,
    pub variant_id: Uuid,
    pub sku: String,
    pub quantity: i32,
    pub line_total: Decimal,
    pub tax: Decimal,
    pub shipped: i32,
    pub cancelled: i32,
    pub refunded: i32,
    pub returned: i32,
    /// Units in returns asked for or approved, not yet received.
    pub in_return: i32,
}

impl LineUnits {
    /// Units neither shipped nor cancelled: what a shipment or a cancellation may take.
    pub fn open(&self) -> i32 {
        self.quantity - self.shipped - self.cancelled
    }

    /// Shipped units whose price has not gone back: what a refund by line or a return may take.
    pub fn shipped_unrefunded(&self) -> i32 {
        self.shipped - (self.refunded - self.cancelled)
    }

    /// Shipped units neither refunded nor already in an open return: what a new return or a
    /// seller's refund by line may take.
    pub fn returnable(&self) -> i32 {
        self.shipped_unrefunded() - self.in_return
    }

    /// What the line's first `units` units are worth to the shopper: their share of the line's
    /// total and, where the region adds tax, of its tax — each rounded once, so the worth of
    /// all its units is exactly the line's total (and tax).
    pub fn worth_of(&self, units: i32, currency: Currency, tax_included: bool) -> Decimal {
        if self.quantity <= 0 || units <= 0 {
            return Decimal::ZERO;
        }
        let share = |amount: Decimal| {
            if units >= self.quantity {
                amount
            } else {
                currency.round(amount * Decimal::from(units) / Decimal::from(self.quantity))
            }
        };
        let mut worth = share(self.line_total);
        if !tax_included {
            worth += share(self.tax);
        }
        worth
    }

    /// What refunding `more` units gives back, after those already refunded.
    pub fn refund_of(&self, more: i32, currency: Currency, tax_included: bool) -> Decimal {
        self.worth_of(self.refunded + more, currency, tax_included)
            - self.worth_of(self.refunded, currency, tax_included)
    }
}

/// One seller's part as locked.
#[derive(Debug, Clone)]
pub struct PartState {
    pub seller_id: Uuid,
    pub status: OrderStatus,
    /// What the part has given back, by line or by amount.
    pub refunded: Decimal,
}

/// The order's payment as locked.
#[derive(Debug, Clone)]
pub struct PaymentState {
    pub reference: Uuid,
    pub status: PaymentStatus,
    pub authorization: Option<Authorization>,
    /// What the shopper was charged (captured once the gateway took it).
    pub amount: Decimal,
    pub refunded: Decimal,
}

/// An order locked for a change after the sale.
#[derive(Debug, Clone)]
pub struct OrderForChange {
    pub id: Uuid,
    pub shopper_id: Uuid,
    pub status: OrderStatus,
    pub currency: Currency,
    pub tax_included: bool,
    /// The order's shipping charge (zero when nothing ships).
    pub shipping: Decimal,
    pub shipping_refunded: bool,
    pub payment: PaymentState,
    pub lines: Vec<LineUnits>,
    pub parts: Vec<PartState>,
}

/// Locks the order for `actor`: anyone else's order is "not found", as is one never paid.
pub async fn lock_order(
    tx: &impl PreparedClient,
    order_id: Uuid,
    actor: Actor,
) -> Result<OrderForChange, Error> {
    let (shopper, seller) = match actor {
        Actor::Shopper(id) => (Some(id), None),
        Actor::Seller(id) => (None, Some(id)),
    };
    let order = tx
        .query_opt(
            "SELECT o.shopper_id, o.status, o.currency, o.tax_included,
                    coalesce((o.shipping ->> 'amount')::numeric, 0),
                    EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id AND r.shipping > 0),
                    y.reference, y.status, y.authorization_id, y.amount, y.refunded
             FROM orders o JOIN payments y ON y.order_id = o.id
             WHERE o.id = $1 AND o.paid_at IS NOT NULL
               AND ($2::uuid IS NULL OR o.shopper_id = $2)
               AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM order_parts p
                                                WHERE p.order_id = o.id AND p.seller_id = $3))
             FOR UPDATE OF o",
            &[&order_id, &shopper, &seller],
        )
        .await?
        .ok_or(Error::NotFound("order"))?;
    let lines = tx
        .query(
            "SELECT l.line_no, l.seller_id, l.variant_id, l.sku, l.quantity, l.line_total, l.tax,
                    l.shipped, l.cancelled, l.refunded, l.returned,
                    (SELECT coalesce(sum(x.quantity), 0)::int
                     FROM return_lines x JOIN returns r ON r.id = x.return_id
                     WHERE x.order_id = l.order_id AND x.line_no = l.line_no
                       AND r.status IN ('requested', 'approved'))
             FROM order_lines l WHERE l.order_id = $1 ORDER BY l.line_no",
            &[&order_id],
        )
        .await?
        .into_iter()
        .map(|row| LineUnits {
            line_no: row.get(0),
            seller_id: row.get(1),
            variant_id: row.get(2),
            sku: row.get(3),
            quantity: row.get(4),
            line_total: row.get(5),
            tax: row.get(6),
            shipped: row.get(7),
            cancelled: row.get(8),
            refunded: row.get(9),
            returned: row.get(10),
            in_return: row.get(11),
        })
        .collect();
    let parts = tx
        .query(
            "SELECT seller_id, status, refunded FROM order_parts
             WHERE order_id = $1 ORDER BY seller_id FOR UPDATE",
            &[&order_id],
        )
        .await?
        .into_iter()
        .map(|row| PartState {
            seller_id: row.get(0),
            status: row.get(1),
            refunded: row.get(2),
        })
        .collect();
    Ok(OrderForChange {
        id: order_id,
        shopper_id: order.get(0),
        status: order.get(1),
        currency: stored_currency(order.get(2))?,
        tax_included: order.get(3),
        shipping: order.get(4),
        shipping_refunded: order.get(5),
        payment: PaymentState {
            reference: order.get(6),
            status: order.get(7),
            authorization: order
                .get::<_, Option<String>>(8)
                .map(|id| Authorization { id }),
            amount: order.get(9),
            refunded: order.get(10),
        },
        lines,
        parts,
    })
}

/// A line named by SKU in a request, with the units asked for it.
#[derive(Debug, Clone)]
pub struct LineRequest {
    pub sku: String,
    pub quantity: i32,
}

impl OrderForChange {
    /// The index of the line selling `sku` in `seller`'s part (or any part), or a 422 naming
    /// the request's `field`.
    pub fn line_index(&self, sku: &str, seller: Option<Uuid>, field: &str) -> Result<usize, Error> {
        self.lines
            .iter()
            .position(|line| {
                line.sku.eq_ignore_ascii_case(sku) && seller.is_none_or(|s| s == line.seller_id)
            })
            .ok_or_else(|| {
                Error::invalid_field(
                    Code::UnknownOrderLine,
                    field,
                    format!("this order has no line {sku}"),
                )
            })
    }

    /// Resolves `requested` lines to (line index, units), each within `limit(line)` units,
    /// a SKU named once; 422 naming `lines[i].sku` or `lines[i].quantity` otherwise.
    pub fn resolve_lines(
        &self,
        requested: &[LineRequest],
        seller: Option<Uuid>,
        limit: impl Fn(&LineUnits) -> i32,
        what: &str,
    ) -> Result<Vec<(usize, i32)>, Error> {
        let mut resolved: Vec<(usize, i32)> = Vec::with_capacity(requested.len());
        for (position, request) in requested.iter().enumerate() {
            let index = self.line_index(&request.sku, seller, &format!("lines[{position}].sku"))?;
            if resolved.iter().any(|(seen, _)| *seen == index) {
                return Err(Error::invalid_field(
                    Code::InvalidQuantity,
                    format!("lines[{position}].sku"),
                    "name each line once",
                ));
            }
            let most = limit(&self.lines[index]);
            if request.quantity < 1 || request.quantity > most {
                return Err(Error::invalid_field(
                    Code::InvalidQuantity,
                    format!("lines[{position}].quantity"),
                    format!("must be between 1 and {most}: the units of this line {what}"),
                ));
            }
            resolved.push((index, request.quantity));
        }
        if resolved.is_empty() {
            return Err(Error::invalid_field(
                Code::InvalidQuantity,
                "lines",
                format!("no units of this order {what}"),
            ));
        }
        Ok(resolved)
    }

    /// The part `seller_id` holds, or "not found".
    pub fn part(&self, seller_id: Uuid) -> Result<&PartState, Error> {
        self.parts
            .iter()
            .find(|part| part.seller_id == seller_id)
            .ok_or(Error::NotFound("order"))
    }

    /// What `seller_id`'s part is worth to the shopper: its lines and their tax share where the
    /// region adds it (the order's shipping is the order's, not a part's).
    pub fn part_worth(&self, seller_id: Uuid) -> Decimal {
        self.lines
            .iter()
            .filter(|line| line.seller_id == seller_id)
            .map(|line| line.worth_of(line.quantity, self.currency, self.tax_included))
            .sum()
    }

    /// Whether every unit of the order has gone back (so its shipping goes back too).
    pub fn all_units_refunded(&self) -> bool {
        self.lines.iter().all(|line| line.refunded == line.quantity)
    }

    /// The status `seller_id`'s part has by its lines' units.
    pub fn part_status(&self, seller_id: Uuid) -> OrderStatus {
        let (mut quantity, mut shipped, mut cancelled, mut refunded) = (0, 0, 0, 0);
        for line in self.lines.iter().filter(|line| line.seller_id == seller_id) {
            quantity += line.quantity;
            shipped += line.shipped;
            cancelled += line.cancelled;
            refunded += line.refunded;
        }
        if cancelled == quantity {
            OrderStatus::Cancelled
        } else if refunded == quantity {
            OrderStatus::Refunded
        } else if shipped == 0 {
            OrderStatus::Paid
        } else if shipped + cancelled == quantity {
            OrderStatus::Fulfilled
        } else {
            OrderStatus::PartiallyFulfilled
        }
    }

    /// The order's status from its parts': cancelled or refunded when every part is, fulfilled
    /// when every part is done (fulfilled, refunded or cancelled), partly when any has shipped.
    pub fn order_status(&self) -> OrderStatus {
        use OrderStatus::*;
        let statuses: Vec<OrderStatus> = self.parts.iter().map(|part| part.status).collect();
        if statuses.iter().all(|s| *s == Cancelled) {
            Cancelled
        } else if statuses.iter().all(|s| matches!(s, Cancelled | Refunded)) {
            Refunded
        } else if statuses
            .iter()
            .all(|s| matches!(s, Fulfilled | Refunded | Cancelled))
        {
            Fulfilled
        } else if statuses
            .iter()
            .any(|s| matches!(s, Fulfilled | PartiallyFulfilled | Refunded))
        {
            PartiallyFulfilled
        } else {
            Paid
        }
    }

    /// Writes the lines' units as they are now, then each part's and the order's status where
    /// it changed, with an event `kind` (carrying `data`) for the part of `seller` (or every
    /// part, for a change of the whole order), so feeds and sockets see it.
    pub async fn save(
        &mut self,
        tx: &impl PreparedClient,
        kind: &str,
        seller: Option<Uuid>,
        data: &serde_json::Value,
    ) -> Result<(), Error> {
        let columns = |f: fn(&LineUnits) -> i32| self.lines.iter().map(f).collect::<Vec<i32>>();
        tx.execute(
            "UPDATE order_lines l SET shipped = x.shipped, cancelled = x.cancelled,
                    refunded = x.refunded, returned = x.returned
             FROM unnest($2::int[], $3::int[], $4::int[], $5::int[], $6::int[])
                  AS x(line_no, shipped, cancelled, refunded, returned)
             WHERE l.order_id = $1 AND l.line_no = x.line_no",
            &[
                &self.id,
                &columns(|l| l.line_no),
                &columns(|l| l.shipped),
                &columns(|l| l.cancelled),
                &columns(|l| l.refunded),
                &columns(|l| l.returned),
            ],
        )
        .await?;
        let mut changed = BTreeMap::new();
        for index in 0..self.parts.len() {
            let seller_id = self.parts[index].seller_id;
            let status = self.part_status(seller_id);
            if status != self.parts[index].status {
                self.parts[index].status = status;
                changed.insert(seller_id, status);
            }
        }
        for (seller_id, status) in &changed {
            tx.execute(
                "UPDATE order_parts SET status = $3, updated_at = now()
                 WHERE order_id = $1 AND seller_id = $2",
                &[&self.id, seller_id, status],
            )
            .await?;
            metrics::counter!("agora_order_parts_total", "status" => status.as_str()).increment(1);
        }
        let status = self.order_status();
        let order_changed = status != self.status;
        self.status = status;
        tx.execute(
            "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1",
            &[&self.id, &status],
        )
        .await?;
        // One event per part the change touched (its seller's feed), and one for the order
        // when the whole order changed or its status did.
        let touched: Vec<Uuid> = match seller {
            Some(seller) => vec![seller],
            None => self.parts.iter().map(|p| p.seller_id).collect(),
        };
        for seller_id in touched {
            let part_status = self.part(seller_id)?.status;
            append_event_with(tx, self.id, Some(seller_id), kind, part_status, data).await?;
        }
        if order_changed || seller.is_none() {
            // A shipment's order event says where the whole order is: partly or all shipped.
            let order_kind = match kind {
                "fulfilled" | "partially_fulfilled" => status.as_str(),
                _ => kind,
            };
            append_event_with(tx, self.id, None, order_kind, status, data).await?;
        }
        Ok(())
    }
}

/// Appends an event with its details (a shipment's tracking, a refund's amount, …).
pub async fn append_event_with(
    tx: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
    kind: &str,
    status: OrderStatus,
    data: &serde_json::Value,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO order_events (order_id, seller_id, kind, status, data)
         VALUES ($1, $2, $3, $4, $5)",
        &[&order_id, &seller_id, &kind, &status, data],
    )
    .await?;
    Ok(())
}

/// Puts `units` of an order's `variant_id` back on sale: its holds give them up (unsettled
/// ones from `held`, settled ones from `sold`; a flash sale still open takes its own back),
/// newest hold first.
pub async fn return_units(
    tx: &impl PreparedClient,
    order_id: Uuid,
    variant_id: Uuid,
    units: i32,
) -> Result<(), Error> {
    let holds = tx
        .query(
            "SELECT id, quantity, settled_at IS NOT NULL, sale_id FROM stock_holds
             WHERE order_id = $1 AND variant_id = $2 AND released_at IS NULL
             ORDER BY created_at DESC, id FOR UPDATE",
            &[&order_id, &variant_id],
        )
        .await?;
    let (mut left, mut held, mut sold) = (units, 0, 0);
    for hold in holds {
        if left == 0 {
            break;
        }
        let (id, quantity, settled): (Uuid, i32, bool) = (hold.get(0), hold.get(1), hold.get(2));
        let taken = left.min(quantity);
        left -= taken;
        if taken == quantity {
            tx.execute(
                "UPDATE stock_holds SET released_at = now() WHERE id = $1",
                &[&id],
            )
            .await?;
        } else {
            tx.execute(
                "UPDATE stock_holds SET quantity = quantity - $2 WHERE id = $1",
                &[&id, &taken],
            )
            .await?;
        }
        if let (Some(sale), false) = (hold.get::<_, Option<Uuid>>(3), settled) {
            if super::give_back_to_sale(tx, order_id, sale, taken).await? {
                continue;
            }
        }
        if settled {
            sold += taken;
        } else {
            held += taken;
        }
    }
    if left > 0 {
        return Err(Error::internal(anyhow::anyhow!(
            "order {order_id} holds {} fewer units of {variant_id} than it sold",
            left
        )));
    }
    tx.execute(
        "UPDATE variants SET held = held - $2, sold = sold - $3 WHERE id = $1",
        &[&variant_id, &held, &sold],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: i32, total: i64, tax: i64) -> LineUnits {
        LineUnits {
            line_no: 1,
            seller_id: Uuid::nil(),
            variant_id: Uuid::nil(),
            sku: "MUG".into(),
            quantity,
            line_total: Decimal::new(total, 2),
            tax: Decimal::new(tax, 2),
            shipped: quantity,
            cancelled: 0,
            refunded: 0,
            returned: 0,
            in_return: 0,
        }
    }

    #[test]
    fn refunding_a_line_unit_by_unit_gives_back_exactly_its_total_and_tax() {
        let eur = Currency::from_code("EUR").expect("EUR");
        let mut mugs = line(3, 1000, 190);
        let mut given_back = Decimal::ZERO;
        for _ in 0..3 {
            given_back += mugs.refund_of(1, eur, false);
            mugs.refunded += 1;
        }
        assert_eq!(given_back, Decimal::new(1190, 2));
        let first = line(3, 1000, 190).refund_of(1, eur, true);
        assert_eq!(
            first,
            Decimal::new(333, 2),
            "tax included: the price share only"
        );
    }

    #[test]
    fn a_part_is_partly_fulfilled_until_every_open_unit_has_shipped() {
        let seller = Uuid::nil();
        let mut order = OrderForChange {
            id: Uuid::nil(),
            shopper_id: Uuid::nil(),
            status: OrderStatus::Paid,
            currency: Currency::from_code("EUR").expect("EUR"),
            tax_included: true,
            shipping: Decimal::ZERO,
            shipping_refunded: false,
            payment: PaymentState {
                reference: Uuid::nil(),
                status: PaymentStatus::Captured,
                authorization: None,
                amount: Decimal::ZERO,
                refunded: Decimal::ZERO,
            },
            lines: vec![line(2, 1000, 0), line(1, 500, 0)],
            parts: vec![PartState {
                seller_id: seller,
                status: OrderStatus::Paid,
                refunded: Decimal::ZERO,
            }],
        };
        order.lines[1].shipped = 0;
        assert_eq!(order.part_status(seller), OrderStatus::PartiallyFulfilled);
        order.lines[1].cancelled = 1;
        order.lines[1].refunded = 1;
        assert_eq!(order.part_status(seller), OrderStatus::Fulfilled);
        for line in &mut order.lines {
            line.shipped = 0;
            line.cancelled = line.quantity;
            line.refunded = line.quantity;
        }
        assert_eq!(order.part_status(seller), OrderStatus::Cancelled);
    }
}
