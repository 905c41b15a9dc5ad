//! Undoing a sale before or after shipping: the shopper cancels a whole order nothing of which
//! has shipped; a seller cancels its part or the lines it cannot supply; a seller refunds
//! shipped units or an amount.
//!
//! Promises: cancelled units go back on sale and are refunded (the payment voided when it was
//! not captured yet and the whole order goes); a second cancellation of a cancelled order
//! changes nothing and answers as the first; refunds follow [`super::refunds`]' rules.

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    payments::Payments,
};

use super::{
    refunds::{self, Refund, RefundKind, RefundOf, RefundRequest},
    units::{self, LineRequest, OrderForChange},
    OrderStatus,
};

/// Cancels units of the locked order (index, count): they leave the order and go back on sale.
async fn cancel_units(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    units: &[(usize, i32)],
) -> Result<(), Error> {
    for &(index, count) in units {
        let line = &mut order.lines[index];
        line.cancelled += count;
        units::return_units(tx, order.id, line.variant_id, count).await?;
    }
    Ok(())
}

/// The shopper cancels the whole order; `None` when it was already cancelled.
pub async fn cancel_order(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    payments: &Payments,
) -> Result<Option<Refund>, Error> {
    if order.status == OrderStatus::Cancelled {
        return Ok(None);
    }
    if order.lines.iter().any(|line| line.shipped > 0) {
        return Err(Error::Conflict {
            code: Code::AlreadyShipped,
            message: "units of this order have shipped; ask for a return instead".into(),
            field: None,
        });
    }
    let open: Vec<(usize, i32)> = order
        .lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.open() > 0)
        .map(|(index, line)| (index, line.open()))
        .collect();
    if open.is_empty() {
        return Err(Error::Conflict {
            code: Code::InvalidTransition,
            message: format!("a {} order cannot be cancelled", order.status),
            field: None,
        });
    }
    cancel_units(tx, order, &open).await?;
    let refund = refunds::refund(
        tx,
        order,
        &RefundRequest {
            kind: RefundKind::Cancellation,
            seller_id: None,
            of: RefundOf::Units(open),
            idempotency: None,
        },
        payments,
    )
    .await?;
    let data = refund_data(&refund);
    order.save(tx, "cancelled", None, &data).await?;
    Ok(Some(refund))
}

/// The seller cancels `lines` of its part (every unit not shipped when `None`).
pub async fn cancel_lines(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    seller_id: Uuid,
    lines: Option<&[LineRequest]>,
    payments: &Payments,
) -> Result<Refund, Error> {
    let units = match lines {
        Some(lines) => order.resolve_lines(
            lines,
            Some(seller_id),
            |l| l.open(),
            "not shipped nor cancelled",
        )?,
        None => open_units(order, seller_id),
    };
    if units.is_empty() {
        return Err(nothing_left(order, seller_id, "to cancel")?);
    }
    cancel_units(tx, order, &units).await?;
    let refund = refunds::refund(
        tx,
        order,
        &RefundRequest {
            kind: RefundKind::Cancellation,
            seller_id: Some(seller_id),
            of: RefundOf::Units(units),
            idempotency: None,
        },
        payments,
    )
    .await?;
    let data = refund_data(&refund);
    order.save(tx, "cancelled", Some(seller_id), &data).await?;
    Ok(refund)
}

/// What a seller gives back of its part.
#[derive(Debug, Clone)]
pub enum PartRefund {
    /// Shipped units (the shopper keeps them).
    Lines(Vec<LineRequest>),
    Amount(Decimal),
    /// Everything left: unshipped units cancelled, shipped ones refunded (the route of earlier
    /// releases, `…/refund`).
    Rest,
}

/// The seller refunds part of its part; `idempotency` makes a retry answer the first refund
/// (and `true`: replayed).
pub async fn refund_part(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    seller_id: Uuid,
    what: &PartRefund,
    idempotency: Option<(String, serde_json::Value)>,
    payments: &Payments,
) -> Result<(Refund, bool), Error> {
    let mut request = RefundRequest {
        kind: RefundKind::Lines,
        seller_id: Some(seller_id),
        of: RefundOf::Amount(Decimal::ZERO),
        idempotency,
    };
    if let Some(earlier) = refunds::replayed(tx, order, &request).await? {
        return Ok((earlier, true));
    }
    match what {
        PartRefund::Lines(lines) => {
            let units = order.resolve_lines(
                lines,
                Some(seller_id),
                |l| l.returnable(),
                "shipped and not refunded",
            )?;
            request.of = RefundOf::Units(units);
        }
        PartRefund::Amount(amount) => {
            request.kind = RefundKind::Amount;
            request.of = RefundOf::Amount(*amount);
        }
        PartRefund::Rest => {
            let open = open_units(order, seller_id);
            cancel_units(tx, order, &open).await?;
            let mut units: Vec<(usize, i32)> = order
                .lines
                .iter()
                .enumerate()
                .filter(|(_, line)| line.seller_id == seller_id)
                .map(|(index, line)| (index, line.quantity - line.refunded))
                .filter(|(_, count)| *count > 0)
                .collect();
            units.sort_unstable();
            if units.is_empty() {
                return Err(nothing_left(order, seller_id, "to refund")?);
            }
            request.of = RefundOf::Units(units);
        }
    }
    let refund = refunds::refund(tx, order, &request, payments).await?;
    let data = refund_data(&refund);
    order.save(tx, "refunded", Some(seller_id), &data).await?;
    Ok((refund, false))
}

fn open_units(order: &OrderForChange, seller_id: Uuid) -> Vec<(usize, i32)> {
    order
        .lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.seller_id == seller_id && line.open() > 0)
        .map(|(index, line)| (index, line.open()))
        .collect()
}

fn nothing_left(order: &OrderForChange, seller_id: Uuid, what: &str) -> Result<Error, Error> {
    let status = order.part(seller_id)?.status;
    Ok(Error::Conflict {
        code: Code::InvalidTransition,
        message: format!("a {status} order part has nothing left {what}"),
        field: None,
    })
}

fn refund_data(refund: &Refund) -> serde_json::Value {
    serde_json::json!({
        "refund_id": refund.id,
        "amount": refund.amount.amount.to_string(),
        "currency": refund.amount.currency,
    })
}
