//! Returns: the shopper asks to send shipped units back within the return window; the seller
//! approves or rejects, then marks them received, with or without putting them back on sale;
//! the refund of exactly those units follows receipt.
//!
//! Promises: a unit is in at most one open return and is never returned after its price went
//! back (checked on the locked order, see [`super::units`]); the window runs from the line's
//! latest shipment; each step is an order event the seller's feed and the shopper's sockets
//! see; a return is refunded once, when received.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    payments::Payments,
    text,
};

use super::{
    refunds::{self, Refund, RefundKind, RefundOf, RefundRequest},
    units::{self, LineRequest, OrderForChange},
    OrderStatus,
};

/// Longest reason a shopper may give for returning a line, in characters.
pub const MAX_REASON_CHARS: usize = 500;

crate::text_enum! {
    /// Where a return is (`returns.status`).
    pub enum ReturnStatus {
        Requested = "requested",
        Approved = "approved",
        Rejected = "rejected",
        Received = "received",
    }
}

/// A line the shopper wants to send back, and why.
#[derive(Debug, Clone)]
pub struct ReturnLineRequest {
    pub sku: String,
    pub quantity: i32,
    pub reason: String,
}

/// A return as shoppers and sellers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Return {
    pub id: Uuid,
    pub seller_id: Uuid,
    /// `requested`, `approved`, `rejected` or `received`.
    #[schema(value_type = String, example = "requested")]
    pub status: ReturnStatus,
    /// Once received: whether the units went back on sale.
    pub restocked: Option<bool>,
    /// Once received: the refund it was paid back with.
    pub refund_id: Option<Uuid>,
    pub lines: Vec<ReturnedLine>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReturnedLine {
    pub sku: String,
    pub quantity: u32,
    pub reason: String,
}

/// Asks to return `lines` of the shopper's locked order: one return per seller whose lines
/// they are. Each line must have shipped within `window` and have the units to give back.
pub async fn request(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    lines: &[ReturnLineRequest],
    window: Duration,
) -> Result<Vec<Uuid>, Error> {
    if order.status == OrderStatus::Cancelled {
        return Err(Error::Conflict {
            code: Code::InvalidTransition,
            message: "a cancelled order has nothing to return".into(),
            field: None,
        });
    }
    let asked: Vec<LineRequest> = lines
        .iter()
        .map(|line| LineRequest {
            sku: line.sku.clone(),
            quantity: line.quantity,
        })
        .collect();
    let units = order.resolve_lines(&asked, None, |l| l.returnable(), "that can be returned")?;
    for (position, line) in lines.iter().enumerate() {
        let field = format!("lines[{position}].reason");
        let reason = line.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::invalid_field(
                Code::InvalidLength,
                &field,
                format!("must be 1 to {MAX_REASON_CHARS} characters"),
            ));
        }
        text::check(&field, reason)?;
    }
    check_window(tx, order, &units, window).await?;
    let mut created = Vec::new();
    let sellers: std::collections::BTreeSet<Uuid> = units
        .iter()
        .map(|(index, _)| order.lines[*index].seller_id)
        .collect();
    for seller_id in sellers {
        let id = Uuid::now_v7();
        tx.execute(
            "INSERT INTO returns (id, order_id, seller_id, status) VALUES ($1, $2, $3, 'requested')",
            &[&id, &order.id, &seller_id],
        )
        .await?;
        for (position, (index, count)) in units.iter().enumerate() {
            let line = &order.lines[*index];
            if line.seller_id != seller_id {
                continue;
            }
            tx.execute(
                "INSERT INTO return_lines (return_id, order_id, line_no, quantity, reason)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &id,
                    &order.id,
                    &line.line_no,
                    count,
                    &lines[position].reason.trim(),
                ],
            )
            .await?;
        }
        let data = serde_json::json!({ "return_id": id });
        order
            .save(tx, "return_requested", Some(seller_id), &data)
            .await?;
        created.push(id);
    }
    Ok(created)
}

/// Refuses lines whose latest shipment is older than the window (`return_window_closed`,
/// naming the line).
async fn check_window(
    tx: &impl PreparedClient,
    order: &OrderForChange,
    units: &[(usize, i32)],
    window: Duration,
) -> Result<(), Error> {
    let line_nos: Vec<i32> = units.iter().map(|(i, _)| order.lines[*i].line_no).collect();
    let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let closed: Vec<i32> = tx
        .query(
            "SELECT x.line_no FROM fulfillment_lines x JOIN fulfillments f ON f.id = x.fulfillment_id
             WHERE x.order_id = $1 AND x.line_no = ANY($2)
             GROUP BY x.line_no
             HAVING max(f.created_at) + make_interval(secs => $3::bigint::double precision) < now()",
            &[&order.id, &line_nos, &window_secs],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    match units
        .iter()
        .position(|(index, _)| closed.contains(&order.lines[*index].line_no))
    {
        Some(position) => Err(Error::invalid_field(
            Code::ReturnWindowClosed,
            format!("lines[{position}].sku"),
            format!(
                "this line shipped more than {} days ago",
                window.as_secs() / 86_400
            ),
        )),
        None => Ok(()),
    }
}

/// Locks a return of `seller_id`'s part of the locked order; another's is "not found".
async fn lock_return(
    tx: &impl PreparedClient,
    order: &OrderForChange,
    seller_id: Uuid,
    return_id: Uuid,
) -> Result<(ReturnStatus, Vec<(usize, i32)>), Error> {
    let status: ReturnStatus = tx
        .query_opt(
            "SELECT status FROM returns WHERE id = $1 AND order_id = $2 AND seller_id = $3
             FOR UPDATE",
            &[&return_id, &order.id, &seller_id],
        )
        .await?
        .ok_or(Error::NotFound("return"))?
        .get(0);
    let mut units = Vec::new();
    for row in tx
        .query(
            "SELECT line_no, quantity FROM return_lines WHERE return_id = $1 ORDER BY line_no",
            &[&return_id],
        )
        .await?
    {
        let line_no: i32 = row.get(0);
        let index = order
            .lines
            .iter()
            .position(|line| line.line_no == line_no)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("return line {line_no} is gone")))?;
        units.push((index, row.get(1)));
    }
    Ok((status, units))
}

fn invalid_step(from: ReturnStatus, to: ReturnStatus) -> Error {
    Error::Conflict {
        code: Code::InvalidTransition,
        message: format!("a {from} return cannot become {to}"),
        field: None,
    }
}

/// The seller approves or rejects a requested return.
pub async fn decide(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    seller_id: Uuid,
    return_id: Uuid,
    approve: bool,
) -> Result<(), Error> {
    let (status, _) = lock_return(tx, order, seller_id, return_id).await?;
    let to = if approve {
        ReturnStatus::Approved
    } else {
        ReturnStatus::Rejected
    };
    if status != ReturnStatus::Requested {
        return Err(invalid_step(status, to));
    }
    tx.execute(
        "UPDATE returns SET status = $2, updated_at = now() WHERE id = $1",
        &[&return_id, &to],
    )
    .await?;
    let kind = if approve {
        "return_approved"
    } else {
        "return_rejected"
    };
    let data = serde_json::json!({ "return_id": return_id });
    order.save(tx, kind, Some(seller_id), &data).await
}

/// The seller received an approved return: its units are returned (and back on sale when
/// `restock`), and refunded.
pub async fn receive(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    seller_id: Uuid,
    return_id: Uuid,
    restock: bool,
    payments: &Payments,
) -> Result<Refund, Error> {
    let (status, units) = lock_return(tx, order, seller_id, return_id).await?;
    if status != ReturnStatus::Approved {
        return Err(invalid_step(status, ReturnStatus::Received));
    }
    for &(index, count) in &units {
        let line = &mut order.lines[index];
        if line.shipped_unrefunded() < count {
            return Err(Error::Conflict {
                code: Code::InvalidTransition,
                message: format!("units of {} were refunded meanwhile", line.sku),
                field: None,
            });
        }
        line.returned += count;
        line.in_return -= count;
        if restock {
            units::return_units(tx, order.id, line.variant_id, count).await?;
        }
    }
    let refund = refunds::refund(
        tx,
        order,
        &RefundRequest {
            kind: RefundKind::Return,
            seller_id: Some(seller_id),
            of: RefundOf::Units(units),
            idempotency: None,
        },
        payments,
    )
    .await?;
    tx.execute(
        "UPDATE returns SET status = 'received', restocked = $2, refund_id = $3,
                updated_at = now() WHERE id = $1",
        &[&return_id, &restock, &refund.id],
    )
    .await?;
    let data = serde_json::json!({
        "return_id": return_id, "refund_id": refund.id, "amount": refund.amount.amount.to_string(),
    });
    units::append_event_with(
        tx,
        order.id,
        Some(seller_id),
        "return_received",
        order.part(seller_id)?.status,
        &data,
    )
    .await?;
    order.save(tx, "refunded", Some(seller_id), &data).await?;
    Ok(refund)
}

/// An order's returns (one seller's only, for a seller), oldest first.
pub async fn returns_of(
    client: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
) -> Result<Vec<Return>, Error> {
    let rows = client
        .query(
            "SELECT r.id, r.seller_id, r.status, r.restocked, r.refund_id, r.created_at,
                    r.updated_at,
                    (SELECT jsonb_agg(jsonb_build_array(l.sku, x.quantity, x.reason)
                                      ORDER BY x.line_no)
                     FROM return_lines x JOIN order_lines l
                       ON l.order_id = x.order_id AND l.line_no = x.line_no
                     WHERE x.return_id = r.id)
             FROM returns r
             WHERE r.order_id = $1 AND ($2::uuid IS NULL OR r.seller_id = $2)
             ORDER BY r.created_at, r.id",
            &[&order_id, &seller_id],
        )
        .await?;
    let mut returns = Vec::with_capacity(rows.len());
    for row in rows {
        let raw: Vec<(String, i32, String)> =
            serde_json::from_value(row.get(7)).map_err(Error::internal)?;
        returns.push(Return {
            id: row.get(0),
            seller_id: row.get(1),
            status: row.get(2),
            restocked: row.get(3),
            refund_id: row.get(4),
            lines: raw
                .into_iter()
                .map(|(sku, quantity, reason)| ReturnedLine {
                    sku,
                    quantity: u32::try_from(quantity).unwrap_or(0),
                    reason,
                })
                .collect(),
            created_at: row.get(5),
            updated_at: row.get(6),
        });
    }
    Ok(returns)
}
