//! Shipments: a seller ships its part of an order whole or by line, with the carrier's
//! tracking; the part is `partially_fulfilled` until every unit not cancelled has shipped.
//!
//! Promises: a unit ships at most once and never after it was cancelled (checked on the
//! locked order, see [`super::units`]); each shipment is a row with its lines, shown to the
//! shopper and to the seller whose part it is.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    text,
};

use super::units::{LineRequest, OrderForChange};

/// Longest carrier name or tracking number, in characters.
pub const MAX_TRACKING_CHARS: usize = 100;

/// What a seller ships: the carrier and tracking number, and the lines (all units not yet
/// shipped nor cancelled when absent).
#[derive(Debug, Clone, Default)]
pub struct ShipmentRequest {
    /// Both or neither; neither only for the route of earlier releases (`…/fulfill`).
    pub tracking: Option<(String, String)>,
    pub lines: Option<Vec<LineRequest>>,
}

impl ShipmentRequest {
    /// A shipment with tracking, checked: carrier and tracking number of 1 to 100 characters.
    pub fn tracked(
        carrier: &str,
        tracking_number: &str,
        lines: Option<Vec<LineRequest>>,
    ) -> Result<Self, Error> {
        let checked = |field: &str, raw: &str| {
            let value = raw.trim();
            if value.is_empty() || value.chars().count() > MAX_TRACKING_CHARS {
                return Err(Error::invalid_field(
                    Code::InvalidLength,
                    field,
                    format!("must be 1 to {MAX_TRACKING_CHARS} characters"),
                ));
            }
            text::check(field, value)?;
            Ok(value.to_owned())
        };
        Ok(Self {
            tracking: Some((
                checked("carrier", carrier)?,
                checked("tracking_number", tracking_number)?,
            )),
            lines,
        })
    }
}

/// A shipment as shoppers and sellers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Shipment {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub lines: Vec<ShippedLine>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShippedLine {
    pub sku: String,
    pub quantity: u32,
}

/// Ships units of `seller_id`'s part of the locked order and writes the shipment; the caller
/// saves the order's units and statuses.
pub async fn ship(
    tx: &impl PreparedClient,
    order: &mut OrderForChange,
    seller_id: Uuid,
    request: &ShipmentRequest,
) -> Result<Shipment, Error> {
    let units: Vec<(usize, i32)> = match &request.lines {
        Some(lines) => order.resolve_lines(lines, Some(seller_id), |l| l.open(), "left to ship")?,
        None => order
            .lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.seller_id == seller_id && line.open() > 0)
            .map(|(index, line)| (index, line.open()))
            .collect(),
    };
    if units.is_empty() {
        let status = order.part(seller_id)?.status;
        return Err(Error::Conflict {
            code: Code::InvalidTransition,
            message: format!("a {status} order part has no units left to ship"),
            field: None,
        });
    }
    let id = Uuid::now_v7();
    let (carrier, tracking_number) = match &request.tracking {
        Some((carrier, number)) => (Some(carrier.clone()), Some(number.clone())),
        None => (None, None),
    };
    tx.execute(
        "INSERT INTO fulfillments (id, order_id, seller_id, carrier, tracking_number)
         VALUES ($1, $2, $3, $4, $5)",
        &[&id, &order.id, &seller_id, &carrier, &tracking_number],
    )
    .await?;
    let line_nos: Vec<i32> = units.iter().map(|(i, _)| order.lines[*i].line_no).collect();
    let counts: Vec<i32> = units.iter().map(|(_, count)| *count).collect();
    tx.execute(
        "INSERT INTO fulfillment_lines (fulfillment_id, order_id, line_no, quantity)
         SELECT $1, $2, x.line_no, x.quantity
         FROM unnest($3::int[], $4::int[]) AS x(line_no, quantity)",
        &[&id, &order.id, &line_nos, &counts],
    )
    .await?;
    let mut lines = Vec::with_capacity(units.len());
    for (index, count) in units {
        order.lines[index].shipped += count;
        lines.push(ShippedLine {
            sku: order.lines[index].sku.clone(),
            quantity: u32::try_from(count).unwrap_or(0),
        });
    }
    Ok(Shipment {
        id,
        seller_id,
        carrier,
        tracking_number,
        lines,
        created_at: chrono::Utc::now(),
    })
}

/// An order's shipments (one seller's only, for a seller), oldest first.
pub async fn shipments_of(
    client: &impl PreparedClient,
    order_id: Uuid,
    seller_id: Option<Uuid>,
) -> Result<Vec<Shipment>, Error> {
    let rows = client
        .query(
            "SELECT f.id, f.seller_id, f.carrier, f.tracking_number, f.created_at,
                    (SELECT jsonb_agg(jsonb_build_array(l.sku, x.quantity) ORDER BY x.line_no)
                     FROM fulfillment_lines x JOIN order_lines l
                       ON l.order_id = x.order_id AND l.line_no = x.line_no
                     WHERE x.fulfillment_id = f.id)
             FROM fulfillments f
             WHERE f.order_id = $1 AND ($2::uuid IS NULL OR f.seller_id = $2)
             ORDER BY f.created_at, f.id",
            &[&order_id, &seller_id],
        )
        .await?;
    let mut shipments = Vec::with_capacity(rows.len());
    for row in rows {
        let raw: Vec<(String, i32)> =
            serde_json::from_value(row.get(5)).map_err(Error::internal)?;
        shipments.push(Shipment {
            id: row.get(0),
            seller_id: row.get(1),
            carrier: row.get(2),
            tracking_number: row.get(3),
            lines: raw
                .into_iter()
                .map(|(sku, quantity)| ShippedLine {
                    sku,
                    quantity: u32::try_from(quantity).unwrap_or(0),
                })
                .collect(),
            created_at: row.get(4),
        });
    }
    Ok(shipments)
}
