//! A seller's own sales: the list, and how a running one is going (queue, admissions, sales).

use serde::Serialize;
use uuid::Uuid;

use crate::{db::PreparedClient, error::Error};

use super::{get, SaleView};

/// Most sales one page of a seller's list returns.
pub const MAX_OWN_SALES: i64 = 100;

/// A sale as its seller watches it.
#[derive(Debug, Serialize)]
pub struct SaleProgress {
    pub sale: SaleView,
    /// Tickets waiting to be admitted.
    pub waiting: i64,
    /// Tickets admitted so far (whether they bought, are buying or let the admission lapse).
    pub admitted: i64,
    /// Units bought in the sale.
    pub sold: i64,
}

/// The seller's sales, newest first.
pub async fn list_own(
    client: &impl PreparedClient,
    seller_id: Uuid,
    limit: i64,
) -> Result<Vec<SaleView>, Error> {
    let ids: Vec<Uuid> = client
        .query(
            "SELECT id FROM flash_sales WHERE seller_id = $1 ORDER BY created_at DESC LIMIT $2",
            &[&seller_id, &limit.clamp(1, MAX_OWN_SALES)],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    let mut sales = Vec::with_capacity(ids.len());
    for id in ids {
        sales.push(get(client, id).await?);
    }
    Ok(sales)
}

/// How one of the seller's sales is going; another seller's sale is "not found".
pub async fn progress(
    client: &impl PreparedClient,
    seller_id: Uuid,
    id: Uuid,
) -> Result<SaleProgress, Error> {
    let sale = get(client, id).await?;
    if sale.seller_id != seller_id {
        return Err(Error::NotFound("flash sale"));
    }
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'waiting'),
                    count(*) FILTER (WHERE admitted_at IS NOT NULL),
                    coalesce(sum(bought), 0)::int8
             FROM flash_sale_tickets WHERE sale_id = $1",
            &[&id],
        )
        .await?;
    Ok(SaleProgress {
        sale,
        waiting: row.get(0),
        admitted: row.get(1),
        sold: row.get(2),
    })
}
