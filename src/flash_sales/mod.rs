//! Flash sales: a seller's hot item at a sale price, a fixed quantity, and a fair queue.
//!
//! Shoppers join the sale's queue and get a ticket; numbers come from the sale's counter in
//! Redis (atomic across processes, rebuilt from Postgres after a flush) and each ticket is
//! written to Postgres before it is acknowledged. The sale's queue actor (one process leads
//! it, see [`keeper`]) admits tickets in number order; an admission is a short-lived signed
//! token ([`admission`]) to buy within a window.
//!
//! A purchase runs the checkout protocol (`crate::checkout`) on a one-line order priced at the
//! sale price: one transaction checks the ticket's admission and the per-shopper limit under
//! the ticket's row lock, moves the unit its admission was allotted (and any more from the
//! sale's reservation) to the order's hold and writes the pending order; the payment is then
//! authorized and the order finished as any checkout. A declined or timed-out payment gives
//! the units back to the admission while its window is open, else to the sale. The
//! `allotted >= 0` and `reserved >= 0` checks, in the same transaction, are the final word: no
//! one is charged for a unit the sale does not have.

pub mod admission;
pub mod keeper;
pub mod progress;
pub mod purchase;
pub mod queue;

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    configuration::Pricing,
    error::{Code, Error},
    money::Currency,
};

use admission::AdmissionKey;

pub use progress::{list_own, progress, SaleProgress};
pub use purchase::{purchase, PurchaseRequest, SaleShipping};
pub use queue::{check_rate, estimated_wait, join, position, status, Joined, QueueStatus};

/// What queues and purchases need: checkout (its pool, Redis, carts, gateway and commit
/// group), the store's admission key and the flash-sale settings. Cheap to clone.
#[derive(Clone)]
pub struct FlashSaleService {
    pub checkout: crate::checkout::CheckoutService,
    pub admission_key: AdmissionKey,
    pub settings: crate::configuration::FlashSaleSettings,
}

impl FlashSaleService {
    fn pool(&self) -> &deadpool_postgres::Pool {
        &self.checkout.carts.pool
    }

    fn hot(&self) -> &crate::hot_state::HotState {
        &self.checkout.carts.hot
    }
}

/// Most units one sale may offer.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// A sale as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SaleView {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub sku: String,
    pub quantity: i32,
    /// Units taken from stock when the sale opened (the quantity unless stock ran short).
    pub allocated: i32,
    /// Units not yet claimed by an order (those set aside for admitted shoppers included).
    pub remaining: i32,
    /// Sale price by currency, as decimal strings.
    #[schema(value_type = BTreeMap<String, String>)]
    pub prices: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_shopper_limit: i32,
    /// `scheduled`, `open`, `sold_out` or `closed`.
    #[schema(value_type = String, example = "open")]
    pub state: SaleState,
    /// Every ticket up to this number has been admitted.
    pub admitted_through: i64,
    pub created_at: DateTime<Utc>,
}

crate::text_enum! {
    /// Where a sale is in its life (`flash_sales.state`).
    pub enum SaleState {
        /// Before `starts_at`: its units are still free stock.
        Scheduled = "scheduled",
        /// Admitting its queue; its units are reserved for it.
        Open = "open",
        /// Every unit sold.
        SoldOut = "sold_out",
        /// `ends_at` passed; unsold units went back to stock.
        Closed = "closed",
    }
}

crate::text_enum! {
    /// A ticket's place in its sale's queue (`flash_sale_tickets.state`), and what a shopper is
    /// told of it.
    pub enum TicketState {
        Waiting = "waiting",
        /// May buy until its admission expires.
        Admitted = "admitted",
        Purchased = "purchased",
        /// Its admission's window passed unused.
        Expired = "expired",
        SoldOut = "sold_out",
        Closed = "closed",
    }
}

impl SaleState {
    /// Whether nothing more will happen in the sale.
    pub fn is_over(self) -> bool {
        matches!(self, Self::SoldOut | Self::Closed)
    }
}

/// A validated request to schedule a sale.
pub struct NewSale {
    pub sku: String,
    pub quantity: i32,
    pub prices: BTreeMap<Currency, Decimal>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_shopper_limit: i32,
}

impl NewSale {
    /// Checks every field, naming the first that is wrong.
    pub fn parse(
        pricing: &Pricing,
        sku: &str,
        quantity: i64,
        prices: &BTreeMap<String, String>,
        (starts_at, ends_at): (DateTime<Utc>, DateTime<Utc>),
        per_shopper_limit: i64,
    ) -> Result<Self, Error> {
        let sku = crate::catalog::input::parse_sku("sku", sku)?;
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(Error::invalid_field(
                Code::InvalidQuantity,
                "quantity",
                format!("must be 1 to {MAX_QUANTITY}"),
            ));
        }
        if prices.is_empty() {
            return Err(Error::invalid_field(
                Code::MissingPrice,
                "prices",
                "give the sale price in at least one currency, e.g. {\"EUR\": \"9.99\"}",
            ));
        }
        let mut parsed = BTreeMap::new();
        for (code, raw) in prices {
            let field = format!("prices.{code}");
            let currency = pricing.fx.parse_supported(&field, code)?;
            let amount = currency.parse_amount(&field, raw)?;
            if amount.is_zero() {
                return Err(Error::invalid_field(
                    Code::InvalidAmount,
                    field,
                    "a sale price must be above zero",
                ));
            }
            parsed.insert(currency, amount);
        }
        if ends_at <= starts_at {
            return Err(Error::invalid_field(
                Code::InvalidWindow,
                "ends_at",
                "must be after starts_at",
            ));
        }
        if ends_at <= Utc::now() {
            return Err(Error::invalid_field(
                Code::InvalidWindow,
                "ends_at",
                "must be in the future",
            ));
        }
        if !(1..=quantity).contains(&per_shopper_limit) {
            return Err(Error::invalid_field(
                Code::InvalidLimit,
                "per_shopper_limit",
                "must be 1 to the sale's quantity",
            ));
        }
        Ok(Self {
            sku,
            quantity: i32::try_from(quantity).unwrap_or(i32::MAX),
            prices: parsed,
            starts_at,
            ends_at,
            per_shopper_limit: i32::try_from(per_shopper_limit).unwrap_or(i32::MAX),
        })
    }
}

/// Schedules a sale of one of the seller's own SKUs. The units must be available now; they
/// are taken from stock when the sale opens.
pub async fn create(
    client: &mut deadpool_postgres::Client,
    seller_id: Uuid,
    sale: &NewSale,
) -> Result<SaleView, Error> {
    let tx = client.transaction().await?;
    let variant = tx
        .query_opt(
            "SELECT v.id, v.stock_on_hand - v.held - v.sold FROM variants v
             JOIN products p ON p.id = v.product_id
             WHERE upper(v.sku) = upper($1) AND p.seller_id = $2 AND p.status <> 'archived'",
            &[&sale.sku, &seller_id],
        )
        .await?
        .ok_or_else(|| {
            Error::invalid_field(
                Code::UnknownSku,
                "sku",
                "none of your products has this SKU",
            )
        })?;
    let available = i64::from(variant.get::<_, i32>(1));
    if available < i64::from(sale.quantity) {
        return Err(Error::InsufficientStock { available });
    }
    let id = Uuid::now_v7();
    let variant_id: Uuid = variant.get(0);
    tx.execute(
        "INSERT INTO flash_sales (id, seller_id, variant_id, quantity, per_shopper_limit,
                                  starts_at, ends_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &id,
            &seller_id,
            &variant_id,
            &sale.quantity,
            &sale.per_shopper_limit,
            &sale.starts_at,
            &sale.ends_at,
        ],
    )
    .await?;
    for (currency, amount) in &sale.prices {
        tx.execute(
            "INSERT INTO flash_sale_prices (sale_id, currency, amount) VALUES ($1, $2, $3)",
            &[&id, &currency.code(), amount],
        )
        .await?;
    }
    let view = get(&tx, id).await?;
    tx.commit().await?;
    metrics::counter!("agora_flash_sales_scheduled_total").increment(1);
    Ok(view)
}

pub async fn get(client: &impl PreparedClient, id: Uuid) -> Result<SaleView, Error> {
    let row = client
        .query_opt(
            "SELECT s.id, s.seller_id, v.sku, s.quantity, s.allocated,
                    s.reserved + (SELECT coalesce(sum(t.allotted), 0)::int4 FROM flash_sale_tickets t
                                  WHERE t.sale_id = s.id AND t.state = 'admitted'),
                    (SELECT coalesce(jsonb_object_agg(trim(fp.currency), fp.amount::text), '{}')
                       FROM flash_sale_prices fp WHERE fp.sale_id = s.id),
                    s.starts_at, s.ends_at, s.per_shopper_limit, s.state, s.admitted_through,
                    s.created_at
             FROM flash_sales s JOIN variants v ON v.id = s.variant_id WHERE s.id = $1",
            &[&id],
        )
        .await?
        .ok_or(Error::NotFound("flash sale"))?;
    let state: SaleState = row.get(10);
    Ok(SaleView {
        id: row.get(0),
        seller_id: row.get(1),
        sku: row.get(2),
        quantity: row.get(3),
        allocated: row.get(4),
        // Before the sale opens, its whole quantity is still to be sold.
        remaining: if state == SaleState::Scheduled {
            row.get(3)
        } else {
            row.get(5)
        },
        prices: serde_json::from_value(row.get(6)).map_err(Error::internal)?,
        starts_at: row.get(7),
        ends_at: row.get(8),
        per_shopper_limit: row.get(9),
        state,
        admitted_through: row.get(11),
        created_at: row.get(12),
    })
}

/// The storefront product whose variant a sale sells (for the sale's page).
pub async fn product_of(client: &impl PreparedClient, id: Uuid) -> Result<Uuid, Error> {
    Ok(client
        .query_opt(
            "SELECT v.product_id FROM flash_sales s JOIN variants v ON v.id = s.variant_id
             WHERE s.id = $1",
            &[&id],
        )
        .await?
        .ok_or(Error::NotFound("flash sale"))?
        .get(0))
}
