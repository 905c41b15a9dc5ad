//! A sale's waiting queue: joining (a ticket numbered by Redis, written to Postgres before it
//! is acknowledged), a shopper's place in it, and the per-shopper request rate.

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Code, Error};

use super::*;
use super::{admission::Admission, FlashSaleService, SaleState, TicketState};

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

/// Counts one request of `shopper` for `action`; beyond the configured rate, 429.
pub async fn check_rate(
    sales: &FlashSaleService,
    shopper_id: Uuid,
    action: &str,
) -> Result<(), Error> {
    let settings = &sales.settings;
    let window = settings.rate_limit_window_secs;
    let bucket = Utc::now().timestamp().div_euclid(window as i64);
    let key = sales.hot().keys().tagged(
        &format!("shopper:{shopper_id}"),
        &format!("rate:{action}:{bucket}"),
    );
    let started = std::time::Instant::now();
    let count: redis::RedisResult<u64> = redis::Script::new(RATE_SCRIPT)
        .key(key)
        .arg(window)
        .invoke_async(&mut sales.hot().connection())
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
    #[schema(value_type = String, example = "waiting")]
    pub state: TicketState,
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
    pub fn new(state: TicketState, ticket: i64) -> Self {
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
    let mut status = QueueStatus::new(TicketState::Waiting, ticket);
    match (row.get::<_, TicketState>(1), row.get::<_, SaleState>(4)) {
        (TicketState::Purchased, _) => status.state = TicketState::Purchased,
        (TicketState::Expired, _) => {
            status.state = TicketState::Closed;
            status.reason = Some("admission_expired");
        }
        (TicketState::SoldOut, _) | (_, SaleState::SoldOut) => status.state = TicketState::SoldOut,
        (TicketState::Admitted, SaleState::Open) if expires.is_some_and(|at| at > Utc::now()) => {
            let admission = Admission {
                sale_id,
                shopper_id,
                ticket,
                expires_at: expires.unwrap_or_default(),
            };
            status.state = TicketState::Admitted;
            status.admission_token = Some(key.sign(&admission));
            status.admission_expires_at = expires;
        }
        (TicketState::Admitted, SaleState::Open) => {
            status.state = TicketState::Closed;
            status.reason = Some("admission_expired");
        }
        (TicketState::Waiting, SaleState::Scheduled | SaleState::Open) => {
            let position = position(ticket, row.get(3));
            status.position = Some(position);
            status.estimated_wait_secs = estimated_wait(position, f64::from(row.get::<_, f32>(5)));
        }
        _ => {
            status.state = TicketState::Closed;
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
pub async fn join(
    sales: &FlashSaleService,
    sale_id: Uuid,
    shopper_id: Uuid,
) -> Result<Joined, Error> {
    let client = sales.pool().get().await?;
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
            status: status(&*client, &sales.admission_key, sale_id, shopper_id).await?,
            new: false,
        });
    }
    match (sale.get::<_, SaleState>(0), sale.get::<_, bool>(1)) {
        (SaleState::SoldOut, _) => {
            return Err(Error::Conflict {
                code: Code::SoldOut,
                message: "this flash sale is sold out".into(),
                field: None,
            })
        }
        (SaleState::Closed, _) | (_, true) => {
            return Err(Error::Conflict {
                code: Code::SaleClosed,
                message: "this flash sale has ended".into(),
                field: None,
            })
        }
        _ => {}
    }
    let counter = sales
        .hot()
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
            .invoke_async(&mut sales.hot().connection())
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
                    ..QueueStatus::new(TicketState::Waiting, number)
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
                status: status(&*client, &sales.admission_key, sale_id, shopper_id).await?,
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
