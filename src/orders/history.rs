//! A shopper's own orders, listed newest first, a page at a time: what each came to, not its
//! every line (that is [`super::view`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{price, stored_currency, OrderStatus};
use crate::{db::PreparedClient, error::Error, money::Price};

/// Most orders one page of a shopper's list returns.
pub const MAX_SHOPPER_PAGE: i64 = 100;

/// One of the shopper's orders, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummary {
    pub id: Uuid,
    #[schema(value_type = String, example = "paid")]
    pub status: OrderStatus,
    pub total: Price,
    /// Units ordered, over all lines.
    pub item_count: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummaryPage {
    pub orders: Vec<OrderSummary>,
    /// Pass as `?cursor=` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The shopper's orders, newest first, from before `before` (an order id: ids are
/// time-ordered, so new orders never shift later pages). Nobody else's.
pub async fn shopper_orders(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<OrderSummaryPage, Error> {
    let limit = limit.clamp(1, MAX_SHOPPER_PAGE);
    let rows = client
        .query(
            "SELECT o.id, o.status, o.currency, o.total, o.created_at,
                    (SELECT coalesce(sum(l.quantity), 0)::int8 FROM order_lines l
                      WHERE l.order_id = o.id)
             FROM orders o
             WHERE o.shopper_id = $1 AND ($2::uuid IS NULL OR o.id < $2)
             ORDER BY o.id DESC LIMIT $3",
            &[&shopper_id, &before, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let mut orders = Vec::with_capacity(rows.len());
    for row in rows.iter().take(usize::try_from(limit).unwrap_or(0)) {
        let currency = stored_currency(row.get(2))?;
        orders.push(OrderSummary {
            id: row.get(0),
            status: row.get(1),
            total: price(row.get(3), currency),
            created_at: row.get(4),
            item_count: row.get(5),
        });
    }
    let next_cursor = more
        .then(|| orders.last().map(|o| o.id.to_string()))
        .flatten();
    Ok(OrderSummaryPage {
        orders,
        next_cursor,
    })
}
