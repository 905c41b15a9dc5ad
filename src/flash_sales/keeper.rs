//! The flash-sale queue's state and leadership, in Postgres and Redis: what a `SaleQueue`
//! actor (in `agora-actors`) steps through.
//!
//! Leadership is a lease in Redis (`{sale:<id>}:leader`, holding the leading process's id),
//! taken with `SET NX PX` and renewed only by its holder. Each step runs in one Postgres
//! transaction under the sale's row lock, so even two processes that both believe they lead
//! (a lease lost in a Redis flush) step one after the other, never twice at once.
//!
//! A step: open the sale when due (its units move from free stock into the sale's
//! reservation, as much as there is up to the quantity); expire admissions whose window
//! passed (their allotted units back to the reservation); sell out once no unit is reserved,
//! allotted or in a pending order; close at the end (unsold and allotted units back to
//! stock); otherwise admit the next waiting tickets in number order, each allotted one
//! reserved unit, as many as there are (and the configured rate allows). Then it
//! announces: admissions to their shoppers at once, positions to everyone waiting every
//! `position_interval_ms`, and sold out or closed to everyone at once.

use crate::db::PreparedClient;
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agora_actors::flash_sale::{SaleKeeper, SaleProgress};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::{
    configuration::FlashSaleSettings,
    flash_sales::SaleState,
    hot_state::HotState,
    notices::{self, Notice, QueueAdmission},
    stock_counters::StockCounters,
};

/// How far ahead of its start a sale gets a queue (to show positions before it opens).
const LEAD_AHEAD: Duration = Duration::from_secs(60);
/// Admissions counted for the rate shown to waiting shoppers.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Most admissions announced in one notice; a step admits at most this many.
pub const MAX_ADMISSIONS_PER_STEP: i64 = 500;

const LEAD_SCRIPT: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

const RESIGN_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What the leading process remembers about a sale between steps (lost with the process,
/// and only used for pacing and estimates).
#[derive(Default)]
struct Pace {
    /// When positions were last announced, and in which sale state.
    announced: Option<(Instant, SaleState)>,
    /// Recent admissions: when, and how many.
    admitted: VecDeque<(Instant, i64)>,
    /// Admissions the configured rate allows but that were not yet used.
    allowance: f64,
    last_step: Option<Instant>,
    /// Waiting tickets and units not yet claimed by an order (reserved or allotted) at the
    /// last step, for the process's gauges.
    waiting: i64,
    reserved: i64,
}

pub struct PgSaleKeeper {
    pool: deadpool_postgres::Pool,
    hot: HotState,
    counters: StockCounters,
    settings: FlashSaleSettings,
    /// This process's id in leases.
    process: String,
    /// Per led sale, pacing and gauges; written by steps (one at a time per sale).
    pace: Mutex<HashMap<Uuid, Pace>>,
}

impl PgSaleKeeper {
    pub fn new(
        pool: deadpool_postgres::Pool,
        hot: HotState,
        counters: StockCounters,
        settings: FlashSaleSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            hot,
            counters,
            settings,
            process: format!("{}:{}", std::process::id(), Uuid::new_v4().simple()),
            pace: Mutex::new(HashMap::new()),
        })
    }

    /// The Redis key holding the lease on leading `sale`.
    pub fn lease_key(keys: &crate::hot_state::Keys, sale: Uuid) -> String {
        keys.tagged(&format!("sale:{sale}"), "leader")
    }

    fn pace<T>(&self, sale: Uuid, f: impl FnOnce(&mut Pace) -> T) -> T {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let result = f(pace.entry(sale).or_default());
        record_gauges(&pace);
        result
    }

    fn forget(&self, sale: Uuid) {
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        pace.remove(&sale);
        record_gauges(&pace);
    }

    /// One step of a sale's queue (see the module's doc), in one transaction under the sale's
    /// row lock; the stock counters and shoppers are told only once it has committed.
    async fn run_step(&self, sale: Uuid) -> anyhow::Result<SaleProgress> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(mut locked) = LockedSale::lock(&tx, sale).await? else {
            return Ok(SaleProgress::Finished);
        };
        if locked.state == SaleState::Scheduled && locked.started && !locked.ended {
            locked.open(&tx).await?;
        }
        if locked.ended && matches!(locked.state, SaleState::Scheduled | SaleState::Open) {
            self.finish(&tx, sale, locked.variant, SaleState::Closed)
                .await?;
            locked.state = SaleState::Closed;
            locked.stock_changed = true;
        } else if locked.state == SaleState::Open {
            self.advance_open_sale(&tx, &mut locked).await?;
        }
        let per_sec = self.recent_admissions_per_sec(sale);
        if locked.state == SaleState::Open {
            locked.save_progress(&tx, per_sec).await?;
        }
        let announce = self.positions_due(sale, locked.state);
        let waiting = self.count_waiting(&tx, &locked, announce).await?;
        tx.commit().await?;
        drop(client);
        self.remember_for_gauges(&locked, waiting);
        let progress = if locked.state.is_over() {
            SaleProgress::Finished
        } else {
            SaleProgress::Live
        };
        self.publish_step(locked, announce, waiting, per_sec).await;
        Ok(progress)
    }

    /// Steps an open sale: lapsed admissions give their units back; then it sells out if no
    /// unit is reserved, allotted or in a pending order, or else admits the next waiting
    /// tickets.
    async fn advance_open_sale(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        locked: &mut LockedSale,
    ) -> anyhow::Result<()> {
        locked.expire_lapsed_admissions(tx).await?;
        let (pending, allotted) = locked.count_unsold_claims(tx).await?;
        locked.unclaimed_allotments = allotted;
        if locked.reserved == 0 && pending == 0 && allotted == 0 {
            self.sell_out(tx, locked).await?;
        } else {
            // Each admission is allotted one unit of what is reserved.
            let room = locked.reserved.clamp(0, MAX_ADMISSIONS_PER_STEP);
            let budget = self.admission_budget(locked.sale, room);
            if budget > 0 {
                self.admit_waiting(tx, locked, budget).await?;
            }
        }
        Ok(())
    }

    /// Ends a sale with nothing left to sell, recording how long it took to sell out (when
    /// it opened in an earlier step).
    async fn sell_out(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        locked: &mut LockedSale,
    ) -> anyhow::Result<()> {
        let sale = locked.sale;
        self.finish(tx, sale, locked.variant, SaleState::SoldOut)
            .await?;
        if let Some(opened) = locked.opened_at {
            let took = (Utc::now() - opened).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("agora_flash_sale_sell_out_seconds").record(took);
            tracing::info!(%sale, seconds = took, "flash sale sold out");
        }
        locked.state = SaleState::SoldOut;
        Ok(())
    }

    /// How many tickets this step may admit: at most `room`, and with a configured rate, no
    /// more than the allowance the rate has built up since the last step.
    fn admission_budget(&self, sale: Uuid, room: i64) -> i64 {
        let tick = Duration::from_millis(self.settings.queue_tick_ms);
        self.pace(sale, |pace| {
            let now = Instant::now();
            // The first step allows one tick's worth.
            let elapsed = pace.last_step.map_or(tick, |at| now.duration_since(at));
            pace.last_step = Some(now);
            match self.settings.admit_per_sec {
                0 => room,
                rate => {
                    // Unused allowance carries over, up to one second's worth.
                    pace.allowance =
                        (pace.allowance + elapsed.as_secs_f64() * rate as f64).min(rate as f64);
                    room.min(pace.allowance.floor() as i64)
                }
            }
        })
    }

    /// Admits up to `budget` waiting tickets in number order, each allotted one reserved unit
    /// for the admission window, and moves the admission cursor past them.
    async fn admit_waiting(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        locked: &mut LockedSale,
        budget: i64,
    ) -> anyhow::Result<()> {
        let sale = locked.sale;
        let window = i64::try_from(self.settings.admission_window_secs).unwrap_or(i64::MAX);
        let rows = tx
            .query(
                "UPDATE flash_sale_tickets t SET state = 'admitted', allotted = 1,
                                    admitted_at = now(),
                                    admission_expires_at = now() + $3::int8 * interval '1 second'
                             WHERE t.sale_id = $1 AND t.shopper_id IN (
                                 SELECT shopper_id FROM flash_sale_tickets
                                 WHERE sale_id = $1 AND state = 'waiting'
                                 ORDER BY ticket LIMIT $2 FOR UPDATE SKIP LOCKED)
                             RETURNING t.ticket, t.shopper_id, t.admission_expires_at",
                &[&sale, &budget, &window],
            )
            .await?;
        let mut admissions: Vec<QueueAdmission> = rows
            .iter()
            .map(|row| QueueAdmission {
                ticket: row.get(0),
                shopper_id: row.get(1),
                expires_at: row.get(2),
            })
            .collect();
        admissions.sort_by_key(|a| a.ticket);
        if let Some(last) = admissions.last() {
            locked.admitted_through = locked.admitted_through.max(last.ticket);
        }
        let count = admissions.len() as i64;
        locked.reserved -= count;
        locked.admissions = admissions;
        self.pace(sale, |pace| {
            pace.allowance = (pace.allowance - count as f64).max(0.0);
            pace.admitted.push_back((Instant::now(), count));
        });
        metrics::counter!("agora_flash_sale_admitted_total").increment(count.unsigned_abs());
        Ok(())
    }

    /// Admissions per second over the last `RATE_WINDOW`, for waiting shoppers' estimates
    /// (older admissions are forgotten).
    fn recent_admissions_per_sec(&self, sale: Uuid) -> f64 {
        self.pace(sale, |pace| {
            while pace
                .admitted
                .front()
                .is_some_and(|(at, _)| at.elapsed() > RATE_WINDOW)
            {
                pace.admitted.pop_front();
            }
            let recent: i64 = pace.admitted.iter().map(|(_, n)| n).sum();
            recent as f64 / RATE_WINDOW.as_secs_f64()
        })
    }

    /// Whether positions are to be announced this step: the first time, when the sale's
    /// state changed, or once `position_interval_ms` passed (and if so, remembers it).
    fn positions_due(&self, sale: Uuid, state: SaleState) -> bool {
        self.pace(sale, |pace| {
            let due = match &pace.announced {
                None => true,
                Some((at, last_state)) => {
                    *last_state != state
                        || at.elapsed() >= Duration::from_millis(self.settings.position_interval_ms)
                }
            };
            if due {
                pace.announced = Some((Instant::now(), state));
            }
            due
        })
    }

    /// The tickets still waiting. Counting them walks them all: done when positions are
    /// announced; in between, the last count less those admitted since.
    async fn count_waiting(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        locked: &LockedSale,
        announce: bool,
    ) -> anyhow::Result<i64> {
        let waiting: i64 = if announce {
            tx.query_one(
                "SELECT count(*) FROM flash_sale_tickets WHERE sale_id = $1 AND state = 'waiting'",
                &[&locked.sale],
            )
            .await?
            .get(0)
        } else {
            let admitted = locked.admissions.len() as i64;
            self.pace(locked.sale, |pace| (pace.waiting - admitted).max(0))
        };
        Ok(waiting)
    }

    /// Keeps the committed step's queue length and units left for the process's gauges.
    fn remember_for_gauges(&self, locked: &LockedSale, waiting: i64) {
        self.pace(locked.sale, |pace| {
            pace.waiting = waiting;
            pace.reserved = if locked.state == SaleState::Open {
                locked.reserved + locked.unclaimed_allotments
            } else {
                0
            };
        });
    }

    /// Tells what the committed step changed: the stock counters when units moved, the
    /// admitted shoppers at once, and everyone waiting their positions when `announce`.
    async fn publish_step(&self, locked: LockedSale, announce: bool, waiting: i64, per_sec: f64) {
        let sale = locked.sale;
        if locked.stock_changed {
            self.counters.stock_returned(&[&locked.sku]).await;
        }
        if !locked.admissions.is_empty() {
            notices::publish(
                &self.hot,
                &Notice::QueueAdmitted {
                    sale_id: sale,
                    admissions: locked.admissions,
                },
            )
            .await;
        }
        if announce {
            notices::publish(
                &self.hot,
                &Notice::QueuePositions {
                    sale_id: sale,
                    state: locked.state.as_str().to_owned(),
                    admitted_through: locked.admitted_through,
                    waiting,
                    admissions_per_sec: per_sec,
                },
            )
            .await;
        }
    }

    /// Ends an open (or never opened) sale: unsold units back to stock, every ticket still
    /// waiting or admitted told the outcome.
    async fn finish(
        &self,
        tx: &impl crate::db::PreparedClient,
        sale: Uuid,
        variant: Uuid,
        outcome: SaleState,
    ) -> anyhow::Result<()> {
        // Every ticket still waiting or admitted is told the outcome; a ticket mid-purchase is
        // waited for, and if it bought, its allotment is its order's now.
        let allotted: i64 = tx
            .query_one(
                "WITH ending AS (
                     SELECT shopper_id, allotted FROM flash_sale_tickets
                     WHERE sale_id = $1 AND state IN ('waiting', 'admitted') FOR UPDATE),
                 done AS (
                     UPDATE flash_sale_tickets t SET state = $2, allotted = 0
                     FROM ending WHERE t.sale_id = $1 AND t.shopper_id = ending.shopper_id
                     RETURNING ending.allotted)
                 SELECT coalesce(sum(allotted), 0)::int8 FROM done",
                &[&sale, &outcome],
            )
            .await?
            .get(0);
        // Units neither sold nor in a pending order go back to stock.
        tx.execute(
            "UPDATE variants SET held = held - $3
                 - (SELECT reserved FROM flash_sales WHERE id = $2)
             WHERE id = $1",
            &[&variant, &sale, &i32::try_from(allotted)?],
        )
        .await?;
        tx.execute(
            "UPDATE flash_sales SET state = $2, reserved = 0, finished_at = now() WHERE id = $1",
            &[&sale, &outcome],
        )
        .await?;
        Ok(())
    }
}

/// A sale as a step found it under its row lock, and what the step has done to it so far.
struct LockedSale {
    sale: Uuid,
    state: SaleState,
    /// Whether the sale's start and end had passed when it was locked.
    started: bool,
    ended: bool,
    quantity: i32,
    /// Units of the sale's reservation not allotted to an admission nor claimed by an order.
    reserved: i64,
    admitted_through: i64,
    variant: Uuid,
    sku: String,
    /// As locked: a sale opened by this very step has none (and no sell-out time).
    opened_at: Option<DateTime<Utc>>,
    /// Whether units moved between free stock and the sale; the stock counters are told
    /// once the step has committed.
    stock_changed: bool,
    /// Units allotted to live admissions, for the units-left gauge (known once open).
    unclaimed_allotments: i64,
    /// The tickets this step admitted, in ticket order.
    admissions: Vec<QueueAdmission>,
}

impl LockedSale {
    /// Locks `sale`'s row for the rest of the step's transaction; `None` if there is no such
    /// sale.
    async fn lock(
        tx: &deadpool_postgres::Transaction<'_>,
        sale: Uuid,
    ) -> anyhow::Result<Option<Self>> {
        let Some(row) = tx
            .query_opt(
                "SELECT s.state, s.starts_at <= now(), s.ends_at <= now(), s.quantity,
                        s.reserved, s.admitted_through, s.variant_id, v.sku, s.opened_at
                 FROM flash_sales s JOIN variants v ON v.id = s.variant_id
                 WHERE s.id = $1 FOR UPDATE OF s",
                &[&sale],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            sale,
            state: row.get(0),
            started: row.get(1),
            ended: row.get(2),
            quantity: row.get(3),
            reserved: i64::from(row.get::<_, i32>(4)),
            admitted_through: row.get(5),
            variant: row.get(6),
            sku: row.get(7),
            opened_at: row.get(8),
            stock_changed: false,
            unclaimed_allotments: 0,
            admissions: Vec::new(),
        }))
    }

    /// Opens the sale: as much free stock as there is, up to its quantity, moves into its
    /// reservation.
    async fn open(&mut self, tx: &deadpool_postgres::Transaction<'_>) -> anyhow::Result<()> {
        let (sale, variant) = (self.sale, self.variant);
        let available: i32 = tx
            .query_one(
                "SELECT stock_on_hand - held - sold FROM variants WHERE id = $1 FOR UPDATE",
                &[&variant],
            )
            .await?
            .get(0);
        let taken = available.clamp(0, self.quantity);
        tx.execute(
            "UPDATE variants SET held = held + $2 WHERE id = $1",
            &[&variant, &taken],
        )
        .await?;
        tx.execute(
            "UPDATE flash_sales SET state = 'open', allocated = $2, reserved = $2, opened_at = now()
                 WHERE id = $1",
            &[&sale, &taken],
        )
        .await?;
        tracing::info!(%sale, units = taken, "flash sale opened");
        self.state = SaleState::Open;
        self.reserved = i64::from(taken);
        self.stock_changed = true;
        Ok(())
    }

    /// Expires admissions whose window passed, their allotments back to the reservation. A
    /// ticket mid-purchase is locked and skipped: its purchase decides.
    async fn expire_lapsed_admissions(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> anyhow::Result<()> {
        let expired = tx
            .query_one(
                "WITH lapsed AS (
                         SELECT shopper_id, allotted FROM flash_sale_tickets
                         WHERE sale_id = $1 AND state = 'admitted' AND admission_expires_at <= now()
                         FOR UPDATE SKIP LOCKED),
                     done AS (
                         UPDATE flash_sale_tickets t SET state = 'expired', allotted = 0
                         FROM lapsed WHERE t.sale_id = $1 AND t.shopper_id = lapsed.shopper_id
                         RETURNING lapsed.allotted)
                     SELECT count(*), coalesce(sum(allotted), 0)::int8 FROM done",
                &[&self.sale],
            )
            .await?;
        let (lapsed, returned): (i64, i64) = (expired.get(0), expired.get(1));
        if lapsed > 0 {
            metrics::counter!("agora_flash_sale_admission_expiries_total")
                .increment(lapsed.unsigned_abs());
            self.reserved += returned;
        }
        Ok(())
    }

    /// Units of the sale claimed but not yet sold: in pending orders, and allotted to live
    /// admissions.
    async fn count_unsold_claims(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> anyhow::Result<(i64, i64)> {
        let counts = tx
            .query_one(
                "SELECT (SELECT coalesce(sum(quantity), 0) FROM stock_holds
                              WHERE sale_id = $1 AND released_at IS NULL AND sold_at IS NULL),
                            (SELECT coalesce(sum(allotted), 0)::int8 FROM flash_sale_tickets
                              WHERE sale_id = $1 AND state = 'admitted')",
                &[&self.sale],
            )
            .await?;
        Ok((counts.get(0), counts.get(1)))
    }

    /// Saves the open sale's admission cursor, rate and reservation as this step left them.
    async fn save_progress(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        per_sec: f64,
    ) -> anyhow::Result<()> {
        tx.execute(
            "UPDATE flash_sales SET admitted_through = $2, admissions_per_sec = $3,
                        reserved = $4
                 WHERE id = $1",
            &[
                &self.sale,
                &self.admitted_through,
                &(per_sec as f32),
                &i32::try_from(self.reserved)?,
            ],
        )
        .await?;
        Ok(())
    }
}

/// This process's queue gauges: the sums over the sales it leads.
fn record_gauges(pace: &HashMap<Uuid, Pace>) {
    let (waiting, reserved) = pace
        .values()
        .fold((0, 0), |(w, r), p| (w + p.waiting, r + p.reserved));
    metrics::gauge!("agora_flash_sale_queue_length").set(waiting as f64);
    metrics::gauge!("agora_flash_sale_units_remaining").set(reserved as f64);
}

impl SaleKeeper for PgSaleKeeper {
    fn due_sales(&self) -> BoxFuture<'static, Result<Vec<Uuid>, String>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let ahead = i64::try_from(LEAD_AHEAD.as_secs()).unwrap_or(60);
            let rows = client
                .query(
                    "SELECT id FROM flash_sales
                     WHERE state IN ('scheduled', 'open')
                       AND starts_at <= now() + $1::int8 * interval '1 second'",
                    &[&ahead],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows.into_iter().map(|row| row.get(0)).collect())
        })
    }

    fn lead(&self, sale: Uuid) -> BoxFuture<'static, Result<bool, String>> {
        let key = Self::lease_key(self.hot.keys(), sale);
        let (mut redis, process, lease) = (
            self.hot.connection(),
            self.process.clone(),
            self.settings.leader_lease_ms,
        );
        Box::pin(async move {
            let led: i64 = redis::Script::new(LEAD_SCRIPT)
                .key(key)
                .arg(process)
                .arg(lease)
                .invoke_async(&mut redis)
                .await
                .map_err(|e| {
                    metrics::counter!("agora_redis_errors_total", "command" => "sale_lead")
                        .increment(1);
                    e.to_string()
                })?;
            Ok(led == 1)
        })
    }

    fn resign(&self, sale: Uuid) -> BoxFuture<'static, ()> {
        self.forget(sale);
        let key = Self::lease_key(self.hot.keys(), sale);
        let (mut redis, process) = (self.hot.connection(), self.process.clone());
        Box::pin(async move {
            let _: redis::RedisResult<i64> = redis::Script::new(RESIGN_SCRIPT)
                .key(key)
                .arg(process)
                .invoke_async(&mut redis)
                .await;
        })
    }

    fn step(self: Arc<Self>, sale: Uuid) -> BoxFuture<'static, Result<SaleProgress, String>> {
        Box::pin(async move {
            let started = Instant::now();
            let outcome = self.run_step(sale).await;
            metrics::histogram!("agora_actor_handling_seconds", "actor" => "flash_sale_queue")
                .record(started.elapsed().as_secs_f64());
            outcome.map_err(|error| format!("{error:#}"))
        })
    }
}
