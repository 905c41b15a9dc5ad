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

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    carts::{self, CartLine},
    checkout::{self, CheckoutResponse},
    configuration::Pricing,
    error::{Code, Error},
    http::AppState,
    locale::LocalePreference,
    money::{Currency, Price},
    orders::{self, IdempotencyClaim, PlaceError},
    payments::{AuthorizeRequest, CardNumber},
    regions,
};

use admission::Admission;

/// Most units one sale may offer.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Attempts to issue a ticket number when Redis lost the sale's counter meanwhile.
const TICKET_ATTEMPTS: usize = 3;
/// How long the ticket counter outlives the sale's end, so late joiners are still refused
/// from Postgres rather than given numbers.
const TICKET_COUNTER_TTL_SECS: i64 = 7 * 24 * 3600;

/// Takes the next ticket number, or answers -1 when the counter is missing and no floor
/// (Postgres's highest ticket) was given.
const NEXT_TICKET_SCRIPT: &str = r"
local floor = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if not current then
  if floor < 0 then return -1 end
  redis.call('SET', KEYS[1], floor)
elseif tonumber(current) < floor then
  redis.call('SET', KEYS[1], floor)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('INCR', KEYS[1])
";

/// Counts a shopper's requests in a fixed window; answers the count so far.
const RATE_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
";

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
    pub state: String,
    /// Every ticket up to this number has been admitted.
    pub admitted_through: i64,
    pub created_at: DateTime<Utc>,
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
    let state: String = row.get(10);
    Ok(SaleView {
        id: row.get(0),
        seller_id: row.get(1),
        sku: row.get(2),
        quantity: row.get(3),
        allocated: row.get(4),
        // Before the sale opens, its whole quantity is still to be sold.
        remaining: if state == "scheduled" {
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

/// Counts one request of `shopper` for `action`; beyond the configured rate, 429.
pub async fn check_rate(state: &AppState, shopper_id: Uuid, action: &str) -> Result<(), Error> {
    let settings = &state.settings.flash_sales;
    let window = settings.rate_limit_window_secs;
    let bucket = Utc::now().timestamp().div_euclid(window as i64);
    let key = state.hot.keys().tagged(
        &format!("shopper:{shopper_id}"),
        &format!("rate:{action}:{bucket}"),
    );
    let started = std::time::Instant::now();
    let count: redis::RedisResult<u64> = redis::Script::new(RATE_SCRIPT)
        .key(key)
        .arg(window)
        .invoke_async(&mut state.hot.connection())
        .await;
    metrics::histogram!("agora_redis_command_duration_seconds", "command" => "rate_limit")
        .record(started.elapsed().as_secs_f64());
    match count {
        Ok(count) if count > settings.rate_limit_requests => {
            metrics::counter!("agora_flash_sale_rate_limited_total", "action" => action.to_owned())
                .increment(1);
            let elapsed = Utc::now().timestamp().rem_euclid(window as i64) as u64;
            Err(Error::RateLimited {
                retry_after_secs: window.saturating_sub(elapsed).max(1),
            })
        }
        Ok(_) => Ok(()),
        Err(error) => {
            // Without Redis there is no fair queue either; the request fails the same way.
            metrics::counter!("agora_redis_errors_total", "command" => "rate_limit").increment(1);
            Err(Error::Unavailable(format!("rate limiter: {error}")))
        }
    }
}

/// A shopper's place in a sale's queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStatus {
    /// `waiting`, `admitted`, `purchased`, `sold_out` or `closed` (the sale ended, or this
    /// ticket's admission lapsed unused).
    pub state: &'static str,
    pub ticket: i64,
    /// Tickets ahead of this one, plus one (while waiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Seconds until admission at the recent admission rate (while waiting, once known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_secs: Option<u64>,
    /// The signed token to buy with (while admitted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_expires_at: Option<DateTime<Utc>>,
    /// Why a ticket is `closed`: `admission_expired` or `sale_ended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl QueueStatus {
    /// `state` of `ticket`, with nothing else said yet.
    pub fn new(state: &'static str, ticket: i64) -> Self {
        Self {
            state,
            ticket,
            position: None,
            estimated_wait_secs: None,
            admission_token: None,
            admission_expires_at: None,
            reason: None,
        }
    }
}

/// Position of `ticket` behind the admission cursor (tickets are numbered without gaps
/// but for rare failed joins, so this is exact or slightly pessimistic).
pub fn position(ticket: i64, admitted_through: i64) -> i64 {
    (ticket - admitted_through).max(1)
}

/// Seconds to wait at `per_sec` admissions a second; `None` while the rate is unknown.
pub fn estimated_wait(position: i64, per_sec: f64) -> Option<u64> {
    (per_sec > 0.0).then(|| (position as f64 / per_sec).ceil() as u64)
}

/// The queue status of a shopper's ticket, as Postgres has it now.
pub async fn status(
    client: &impl PreparedClient,
    key: &admission::AdmissionKey,
    sale_id: Uuid,
    shopper_id: Uuid,
) -> Result<QueueStatus, Error> {
    let row = client
        .query_opt(
            "SELECT t.ticket, t.state, t.admission_expires_at, s.admitted_through, s.state,
                    s.admissions_per_sec
             FROM flash_sale_tickets t JOIN flash_sales s ON s.id = t.sale_id
             WHERE t.sale_id = $1 AND t.shopper_id = $2",
            &[&sale_id, &shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("ticket"))?;
    let ticket: i64 = row.get(0);
    let expires: Option<DateTime<Utc>> = row.get(2);
    let mut status = QueueStatus::new("waiting", ticket);
    match (row.get::<_, &str>(1), row.get::<_, &str>(4)) {
        ("purchased", _) => status.state = "purchased",
        ("expired", _) => {
            status.state = "closed";
            status.reason = Some("admission_expired");
        }
        ("sold_out", _) | (_, "sold_out") => status.state = "sold_out",
        ("admitted", "open") if expires.is_some_and(|at| at > Utc::now()) => {
            let admission = Admission {
                sale_id,
                shopper_id,
                ticket,
                expires_at: expires.unwrap_or_default(),
            };
            status.state = "admitted";
            status.admission_token = Some(key.sign(&admission));
            status.admission_expires_at = expires;
        }
        ("admitted", "open") => {
            status.state = "closed";
            status.reason = Some("admission_expired");
        }
        ("waiting", "scheduled" | "open") => {
            let position = position(ticket, row.get(3));
            status.position = Some(position);
            status.estimated_wait_secs = estimated_wait(position, f64::from(row.get::<_, f32>(5)));
        }
        _ => {
            status.state = "closed";
            status.reason = Some("sale_ended");
        }
    }
    Ok(status)
}

/// A ticket, and whether this call issued it.
pub struct Joined {
    pub status: QueueStatus,
    pub new: bool,
}

/// Puts the shopper in the sale's queue; joining again answers the same ticket.
pub async fn join(state: &AppState, sale_id: Uuid, shopper_id: Uuid) -> Result<Joined, Error> {
    let client = state.pool.get().await?;
    let sale = client
        .query_opt(
            "SELECT s.state, s.ends_at <= now(), t.ticket IS NOT NULL, s.admitted_through,
                    s.admissions_per_sec
             FROM flash_sales s
             LEFT JOIN flash_sale_tickets t ON t.sale_id = s.id AND t.shopper_id = $2
             WHERE s.id = $1",
            &[&sale_id, &shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("flash sale"))?;
    if sale.get::<_, bool>(2) {
        return Ok(Joined {
            status: status(&*client, &state.admission_key, sale_id, shopper_id).await?,
            new: false,
        });
    }
    match (sale.get::<_, &str>(0), sale.get::<_, bool>(1)) {
        ("sold_out", _) => {
            return Err(Error::Conflict {
                code: Code::SoldOut,
                message: "this flash sale is sold out".into(),
                field: None,
            })
        }
        ("closed", _) | (_, true) => {
            return Err(Error::Conflict {
                code: Code::SaleClosed,
                message: "this flash sale has ended".into(),
                field: None,
            })
        }
        _ => {}
    }
    let counter = state
        .hot
        .keys()
        .tagged(&format!("sale:{sale_id}"), "tickets");
    let script = redis::Script::new(NEXT_TICKET_SCRIPT);
    let mut floor = -1_i64;
    for _ in 0..TICKET_ATTEMPTS {
        let started = std::time::Instant::now();
        let number: i64 = script
            .key(&counter)
            .arg(floor)
            .arg(TICKET_COUNTER_TTL_SECS)
            .invoke_async(&mut state.hot.connection())
            .await
            .map_err(|error| {
                metrics::counter!("agora_redis_errors_total", "command" => "next_ticket")
                    .increment(1);
                Error::Unavailable(format!("ticket counter: {error}"))
            })?;
        metrics::histogram!("agora_redis_command_duration_seconds", "command" => "next_ticket")
            .record(started.elapsed().as_secs_f64());
        if number < 0 {
            // Redis lost the counter (flush or restart): carry on from Postgres's tickets.
            floor = highest_ticket(&*client, sale_id).await?;
            metrics::counter!("agora_flash_sale_counter_rebuilds_total").increment(1);
            continue;
        }
        let inserted = client
            .query_opt(
                "INSERT INTO flash_sale_tickets (sale_id, shopper_id, ticket) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING RETURNING ticket",
                &[&sale_id, &shopper_id, &number],
            )
            .await?;
        if inserted.is_some() {
            metrics::counter!("agora_flash_sale_tickets_total").increment(1);
            // A new ticket waits: its place as of the sale row just read (at most a tick old).
            let position = position(number, sale.get(3));
            return Ok(Joined {
                status: QueueStatus {
                    position: Some(position),
                    estimated_wait_secs: estimated_wait(position, f64::from(sale.get::<_, f32>(4))),
                    ..QueueStatus::new("waiting", number)
                },
                new: true,
            });
        }
        // Either this shopper joined meanwhile (another tab), or the number was taken: a
        // counter rebuilt during a flush can lag behind tickets written just before it.
        let mine = client
            .query_opt(
                "SELECT 1 FROM flash_sale_tickets WHERE sale_id = $1 AND shopper_id = $2",
                &[&sale_id, &shopper_id],
            )
            .await?;
        if mine.is_some() {
            return Ok(Joined {
                status: status(&*client, &state.admission_key, sale_id, shopper_id).await?,
                new: false,
            });
        }
        floor = highest_ticket(&*client, sale_id).await?;
    }
    Err(Error::Unavailable(
        "could not issue a ticket; retry shortly".into(),
    ))
}

async fn highest_ticket(client: &impl PreparedClient, sale_id: Uuid) -> Result<i64, Error> {
    Ok(client
        .query_one(
            "SELECT coalesce(max(ticket), 0) FROM flash_sale_tickets WHERE sale_id = $1",
            &[&sale_id],
        )
        .await?
        .get(0))
}

/// What a shopper asked to buy with an admission.
pub struct PurchaseRequest {
    pub sale_id: Uuid,
    pub shopper_id: Uuid,
    pub key: String,
    pub token: String,
    pub quantity: u32,
    pub region: String,
    /// Destination country and shipping option, where the region ships.
    pub shipping: Option<(String, String)>,
    pub card: CardNumber,
}

fn fingerprint(request: &PurchaseRequest) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"flash-sale");
    hash.update(request.sale_id.as_bytes());
    hash.update(request.quantity.to_be_bytes());
    hash.update(request.region.as_bytes());
    if let Some((country, option)) = &request.shipping {
        hash.update(country.as_bytes());
        hash.update(option.as_bytes());
    }
    hash.update(request.card.digits().as_bytes());
    hash.finalize().to_vec()
}

fn outcome_counter(outcome: &'static str) {
    metrics::counter!("agora_flash_sale_purchases_total", "outcome" => outcome).increment(1);
}

/// Buys units of the sale under an admission; the answer is an order (201) or the reason
/// why not, and the same key always gets the same answer.
pub async fn purchase(
    state: &AppState,
    request: PurchaseRequest,
    preference: &LocalePreference,
) -> Result<CheckoutResponse, Error> {
    let fingerprint = fingerprint(&request);
    if let Some(outcome) =
        checkout::earlier_answer(state, request.shopper_id, &request.key, &fingerprint).await?
    {
        return Ok(CheckoutResponse {
            outcome,
            replayed: true,
        });
    }
    let admission = state
        .admission_key
        .verify(&request.token)
        .inspect_err(|_| {
            outcome_counter("invalid_admission");
        })?;
    if admission.sale_id != request.sale_id || admission.shopper_id != request.shopper_id {
        outcome_counter("invalid_admission");
        return Err(Error::Forbidden {
            code: Code::InvalidAdmission,
            message: "this admission token is for another sale or shopper".into(),
        });
    }
    if admission.expires_at <= Utc::now() {
        outcome_counter("admission_expired");
        return Err(Error::Gone {
            code: Code::AdmissionExpired,
            message: "the admission lapsed; the unit went to the next shopper in the queue".into(),
        });
    }

    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let cart = match sale_line(&tx, &request, preference).await {
        Ok(cart) => cart,
        Err(error) => {
            outcome_counter("refused");
            return Err(error);
        }
    };
    let claim = IdempotencyClaim {
        shopper_id: request.shopper_id,
        key: &request.key,
        fingerprint: &fingerprint,
    };
    let beyond_allotment = match claim_units(&tx, &request, &admission, &cart).await {
        Ok(more) => more,
        Err(error) => {
            outcome_counter(match error.code() {
                Code::SoldOut => "sold_out",
                Code::AdmissionExpired => "admission_expired",
                Code::NotAdmitted => "not_admitted",
                _ => "refused",
            });
            return Err(error);
        }
    };
    let placed = crate::db::timed(
        "flash_sale_place",
        orders::place(
            &tx,
            &claim,
            &cart,
            request.card.last4(),
            state.payments.provider_name(),
        ),
    )
    .await;
    let pending = match placed {
        Ok(pending) => pending,
        Err(PlaceError::KeyTaken) => {
            drop(tx);
            drop(client);
            return checkout::replay_taken_key(
                state,
                request.shopper_id,
                &request.key,
                &fingerprint,
            )
            .await;
        }
        Err(PlaceError::Api(error)) => return Err(error),
    };
    // Units beyond the admission's allotment (a shopper buying more than one) come from the
    // sale's reservation: last, so the sale's row is locked only from here to the commit.
    let taken = if beyond_allotment > 0 {
        tx.execute(
            "UPDATE flash_sales SET reserved = reserved - $2
             WHERE id = $1 AND state = 'open' AND reserved >= $2",
            &[&request.sale_id, &beyond_allotment],
        )
        .await?
    } else {
        1
    };
    if taken == 0 {
        let left: i32 = tx
            .query_one(
                "SELECT reserved FROM flash_sales WHERE id = $1",
                &[&request.sale_id],
            )
            .await?
            .get(0);
        outcome_counter("sold_out");
        if left > 0 {
            return Err(Error::InsufficientStock {
                available: i64::from(left),
            });
        }
        return Err(Error::Conflict {
            code: Code::SoldOut,
            message: "the sale has no units left".into(),
            field: None,
        });
    }
    tx.commit().await?;
    drop(client);

    let authorized = state
        .payments
        .authorize(AuthorizeRequest {
            reference: pending.reference,
            amount: pending.total,
            currency: pending.currency,
            card: request.card,
        })
        .await;
    let outcome = checkout::finish(state, &pending, authorized).await?;
    if outcome.is_paid() {
        outcome_counter("paid");
        metrics::counter!("agora_flash_sale_units_sold_total")
            .increment(u64::from(request.quantity));
    } else {
        outcome_counter("payment_failed");
    }
    Ok(CheckoutResponse {
        outcome,
        replayed: false,
    })
}

/// The sale's line as the order will have it, priced at the sale price in the region's
/// currency, with the region's tax and the chosen shipping.
async fn sale_line(
    tx: &impl PreparedClient,
    request: &PurchaseRequest,
    preference: &LocalePreference,
) -> Result<carts::CartView, Error> {
    let region = regions::named_in_request(tx, &request.region).await?;
    let currency = region.currency().ok_or_else(|| {
        Error::internal(anyhow::anyhow!("region {} has no currency", region.code))
    })?;
    let shipping = match (
        &request.shipping,
        region.details.shipping_options.is_empty(),
    ) {
        (Some((country, option)), _) => {
            carts::check_shipping(&region, country, option, "shipping.")?;
            (Some(country.clone()), Some(option.clone()))
        }
        (None, true) => (None, None),
        (None, false) => {
            return Err(Error::invalid_field(
                Code::ShippingRequired,
                "shipping",
                "give {\"country\", \"option\"} of the region to ship to",
            ))
        }
    };
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let row = tx
        .query_opt(
            "SELECT v.id, v.sku, p.id, p.seller_id, c.title, v.weight_grams, fp.amount
             FROM flash_sales s
             JOIN variants v ON v.id = s.variant_id
             JOIN products p ON p.id = v.product_id
             LEFT JOIN flash_sale_prices fp ON fp.sale_id = s.id AND trim(fp.currency) = $2
             CROSS JOIN LATERAL (
                 SELECT c.title FROM product_content c
                 WHERE c.product_id = p.id AND (c.locale = ANY($3::text[]) OR c.locale = p.default_locale)
                 ORDER BY coalesce(array_position($3::text[], c.locale), 1000) LIMIT 1
             ) c
             WHERE s.id = $1",
            &[&request.sale_id, &currency.code(), &chain],
        )
        .await?
        .ok_or(Error::NotFound("flash sale"))?;
    let unit: Decimal = row.get::<_, Option<Decimal>>(6).ok_or_else(|| {
        Error::invalid_field(
            Code::NoSalePrice,
            "region",
            format!("this sale has no price in {}", currency.code()),
        )
    })?;
    let quantity = request.quantity;
    let line_total = unit * Decimal::from(quantity);
    let price = |amount| Price {
        amount: currency.round(amount),
        currency: currency.code(),
        converted: false,
    };
    let weight = u32::try_from(row.get::<_, i32>(5))
        .unwrap_or(0)
        .saturating_mul(quantity);
    let line = CartLine {
        variant_id: row.get(0),
        product_id: row.get(2),
        seller_id: row.get(3),
        sku: row.get(1),
        title: row.get(4),
        quantity,
        unit_price: price(unit),
        line_total: price(line_total),
        held_quantity: i64::from(quantity),
        held_until: None,
    };
    // A fresh id per attempt stands in for the cart: the order's hold is owned under it.
    Ok(carts::priced(
        Uuid::now_v7(),
        &region,
        currency,
        vec![line],
        (line_total, weight),
        shipping,
    ))
}

/// Under the ticket's row lock: checks the admission is live and the per-shopper limit,
/// marks the ticket purchased and holds the units for the order: its admission's allotment
/// first; the answer is how many more the caller must take from the sale's reservation.
async fn claim_units(
    tx: &impl PreparedClient,
    request: &PurchaseRequest,
    admission: &Admission,
    cart: &carts::CartView,
) -> Result<i32, Error> {
    let ticket = tx
        .query_opt(
            "SELECT t.ticket, t.state, t.admission_expires_at > now(), t.bought,
                    s.per_shopper_limit, s.state, t.allotted
             FROM flash_sale_tickets t JOIN flash_sales s ON s.id = t.sale_id
             WHERE t.sale_id = $1 AND t.shopper_id = $2 FOR UPDATE OF t",
            &[&request.sale_id, &request.shopper_id],
        )
        .await?;
    let not_admitted = |message: &str| Error::Forbidden {
        code: Code::NotAdmitted,
        message: message.into(),
    };
    let Some(ticket) = ticket else {
        return Err(not_admitted("join the queue and wait for your admission"));
    };
    if ticket.get::<_, i64>(0) != admission.ticket {
        return Err(not_admitted("this admission is not for your ticket"));
    }
    if ticket.get::<_, &str>(5) == "sold_out" {
        return Err(Error::Conflict {
            code: Code::SoldOut,
            message: "the sale has no units left".into(),
            field: None,
        });
    }
    match (ticket.get::<_, &str>(1), ticket.get::<_, Option<bool>>(2)) {
        ("admitted", Some(true)) => {}
        ("admitted" | "expired", _) => {
            return Err(Error::Gone {
                code: Code::AdmissionExpired,
                message: "the admission lapsed; the unit went to the next shopper in the queue"
                    .into(),
            })
        }
        ("purchased", _) => return Err(not_admitted("this admission was used already")),
        _ => return Err(not_admitted("this ticket is not admitted")),
    }
    let limit: i32 = ticket.get(4);
    let bought: i32 = ticket.get(3);
    let quantity = i32::try_from(request.quantity).unwrap_or(i32::MAX);
    if bought.saturating_add(quantity) > limit {
        return Err(Error::invalid_field(
            Code::PerShopperLimitExceeded,
            "quantity",
            format!(
                "at most {limit} per shopper in this sale ({} left for you)",
                (limit - bought).max(0)
            ),
        ));
    }
    let from_allotment = quantity.min(ticket.get(6));
    tx.execute(
        "UPDATE flash_sale_tickets SET state = 'purchased', bought = bought + $3,
                allotted = allotted - $4
         WHERE sale_id = $1 AND shopper_id = $2",
        &[
            &request.sale_id,
            &request.shopper_id,
            &quantity,
            &from_allotment,
        ],
    )
    .await?;
    let line = cart
        .lines
        .first()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a sale order without its line")))?;
    tx.execute(
        "INSERT INTO stock_holds (id, variant_id, quantity, owner, expires_at, sale_id)
         VALUES ($1, $2, $3, $4, now() + interval '1 hour', $5)",
        &[
            &Uuid::now_v7(),
            &line.variant_id,
            &quantity,
            &cart.id.to_string(),
            &request.sale_id,
        ],
    )
    .await?;
    Ok(quantity - from_allotment)
}
