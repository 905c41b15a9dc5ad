//! Hot stock state in Redis: counters of how many units of each SKU every process may still
//! grant, shared by all `agora serve` processes and changed only by one atomic script; and the
//! announcement of every stock change to live subscribers in every process (pub/sub).
//!
//! They are an admission filter in front of Postgres, never the authority: a reservation the
//! counter refuses is answered at once without a Postgres transaction (a sold-out SKU under a
//! crowd costs Redis calls, not row locks); one it grants is still checked under the variant's
//! row lock by the shard's batch, against the `variants_stock_guard` constraint.
//!
//! Promises: a missing counter (first use, expiry, `FLUSHALL`, a Redis restart) is rebuilt
//! from Postgres's committed `available`; a rebuild can only count units in flight as still
//! available, so the counter errs high (Postgres refuses the excess, and the counter is then
//! dropped to be rebuilt), never low for longer than [`COUNTER_TTL`] (a crash between the
//! script and the commit); units returned to a SKU (released holds, restocks) are added back
//! to its counter where one exists, while an absolute stock change or a disagreement with
//! Postgres drops it; with Redis down, reservations go straight to Postgres. Returned units
//! are announced by one task per process, which reads every SKU waiting in one statement (at
//! most [`MAX_PENDING_ANNOUNCEMENTS`] wait).

use crate::db::PreparedClient;
use std::time::Duration;

use redis::Script;

use crate::hot_state::HotState;

/// How long a counter lives before it is rebuilt from Postgres, unless
/// `inventory.counter_ttl_ms` says otherwise: the longest a counter may stay too low after a
/// process died between taking units here and committing them.
pub const COUNTER_TTL: Duration = Duration::from_secs(5);

/// Takes units for a batch's requests in order while they last. `KEYS[1]`: the counter;
/// `ARGV`: the requested quantities. Returns `false` when the counter is missing (rebuild and
/// retry), else `{granted flags..., units left}`.
const TAKE_SCRIPT: &str = r"
local left = redis.call('GET', KEYS[1])
if not left then return false end
left = tonumber(left)
local answer = {}
for i, wanted in ipairs(ARGV) do
  wanted = tonumber(wanted)
  if wanted <= left then
    left = left - wanted
    answer[i] = 1
  else
    answer[i] = 0
  end
end
redis.call('SET', KEYS[1], left, 'KEEPTTL')
answer[#ARGV + 1] = left
return answer
";

/// Gives units back to a counter that exists (a missing one is rebuilt from Postgres, which
/// already counts them). `KEYS[1]`: the counter; `ARGV[1]`: the units. Keeps the TTL.
const GIVE_BACK_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// What the counter said about a batch's requests for one SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub granted: Vec<bool>,
    /// Units the counter has left after this batch.
    pub left: i64,
}

/// Most SKUs waiting to be announced at once; beyond it a SKU's change goes unannounced (its
/// next change announces it).
pub const MAX_PENDING_ANNOUNCEMENTS: usize = 10_000;

#[derive(Clone)]
pub struct StockCounters {
    hot: HotState,
    take: Script,
    give_back: Script,
    /// Where committed availability is read to announce changes; `None` announces nothing.
    announce_from: Option<deadpool_postgres::Pool>,
    /// SKUs whose returned units are still to be announced, by one task for the process.
    announcer: Option<Announcer>,
    /// How long a rebuilt counter lives.
    ttl: Duration,
}

/// The SKUs waiting for the announcing task, which reads all of them in one statement: under
/// a crowd of releases, one read and one notice per SKU per round instead of per release.
#[derive(Clone)]
struct Announcer {
    pending: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Announcer {
    /// Starts the task that announces what is pending, round after round.
    fn start(counters: StockCounters) -> Self {
        let announcer = Self {
            pending: Default::default(),
            wake: Default::default(),
        };
        let (pending, wake) = (announcer.pending.clone(), announcer.wake.clone());
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                let skus: Vec<String> = match pending.lock() {
                    Ok(mut pending) => pending.drain().collect(),
                    Err(_) => return,
                };
                counters.announce(&skus).await;
            }
        });
        announcer
    }

    fn add<S: AsRef<str>>(&self, skus: &[S]) {
        if let Ok(mut pending) = self.pending.lock() {
            for sku in skus {
                if pending.len() < MAX_PENDING_ANNOUNCEMENTS {
                    pending.insert(sku.as_ref().to_ascii_uppercase());
                }
            }
        }
        self.wake.notify_one();
    }
}

impl StockCounters {
    pub fn new(hot: HotState) -> Self {
        Self {
            hot,
            take: Script::new(TAKE_SCRIPT),
            give_back: Script::new(GIVE_BACK_SCRIPT),
            announce_from: None,
            announcer: None,
            ttl: COUNTER_TTL,
        }
    }

    /// Counters rebuilt from now on live `ttl`.
    pub fn living(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Announces every change of stock to live subscribers, reading availability from `pool`
    /// (returned units from a task of its own, started here).
    pub fn announcing(mut self, pool: deadpool_postgres::Pool) -> Self {
        self.announce_from = Some(pool);
        self.announcer = Some(Announcer::start(self.clone()));
        self
    }

    /// Tells subscribers the availability a reservation batch committed (the counters
    /// already know).
    pub async fn announce_levels(&self, levels: Vec<crate::notices::Notice>) {
        if self.announce_from.is_none() {
            return;
        }
        for notice in &levels {
            crate::notices::publish(&self.hot, notice).await;
        }
    }

    /// Units of `skus` came back (released or expired holds, cancelled orders, restocks): the
    /// counters are dropped, to be rebuilt with them, before this returns; subscribers are told
    /// from a task of its own. The announcement reads availability on a pooled connection, and
    /// callers often still hold one: waiting for a second connection while holding the first
    /// deadlocked the pool once more callers did so than it had connections. Notices carry the
    /// row's version, so one that arrives late never replaces a newer one.
    pub async fn stock_returned<S: AsRef<str>>(&self, skus: &[S]) {
        self.forget(skus).await;
        self.announce_later(skus);
    }

    /// Tells subscribers the availability of `skus` from the announcing task (see
    /// [`Self::stock_returned`] for why not from the caller's).
    fn announce_later<S: AsRef<str>>(&self, skus: &[S]) {
        if let Some(announcer) = &self.announcer {
            if !skus.is_empty() {
                announcer.add(skus);
            }
        }
    }

    /// Units of SKUs came back and were committed (released holds, a restock): each counter
    /// that exists gets them back, so a hot SKU stays on its counter instead of going to
    /// Postgres until it is rebuilt; subscribers are told as by [`Self::stock_returned`]. A
    /// counter rebuilt between the commit and this counts them twice: it errs high, which
    /// Postgres's guard corrects (and drops it), never low.
    pub async fn units_returned<S: AsRef<str>>(&self, returned: &[(S, i64)]) {
        if returned.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        // Concurrently on the multiplexed connection: one round trip for them all.
        let given = returned.iter().map(|(sku, units)| {
            let mut invocation = self.give_back.key(self.key(sku.as_ref()));
            invocation.arg(*units);
            let mut connection = self.hot.connection();
            async move {
                invocation
                    .invoke_async::<Option<i64>>(&mut connection)
                    .await
            }
        });
        let result: redis::RedisResult<Vec<Option<i64>>> = futures_util::future::join_all(given)
            .await
            .into_iter()
            .collect();
        Self::record("stock_give_back", started, result.is_err());
        let skus: Vec<&str> = returned.iter().map(|(sku, _)| sku.as_ref()).collect();
        if let Err(error) = result {
            tracing::warn!(%error, "giving units back to stock counters failed; dropping them");
            self.forget(&skus).await;
        }
        self.announce_later(&skus);
    }

    async fn announce<S: AsRef<str>>(&self, skus: &[S]) {
        let Some(pool) = &self.announce_from else {
            return;
        };
        if skus.is_empty() {
            return;
        }
        let upper: Vec<String> = skus
            .iter()
            .map(|sku| sku.as_ref().to_ascii_uppercase())
            .collect();
        let levels = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .query(
                    "SELECT v.sku, v.stock_on_hand - v.held - v.sold, p.seller_id,
                            v.xmin::text::int8
                     FROM variants v JOIN products p ON p.id = v.product_id
                     WHERE upper(v.sku) = ANY($1)",
                    &[&upper],
                )
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let rows = match levels {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "reading stock to announce failed");
                return;
            }
        };
        for row in rows {
            let notice = crate::notices::Notice::Stock {
                sku: row.get(0),
                available: i64::from(row.get::<_, i32>(1)),
                seller_id: row.get(2),
                version: row.get(3),
            };
            crate::notices::publish(&self.hot, &notice).await;
        }
    }

    fn key(&self, sku: &str) -> String {
        self.hot
            .keys()
            .tagged(&format!("sku:{}", sku.to_ascii_uppercase()), "available")
    }

    fn record(command: &'static str, started: std::time::Instant, failed: bool) {
        metrics::histogram!("agora_redis_command_duration_seconds", "command" => command)
            .record(started.elapsed().as_secs_f64());
        if failed {
            metrics::counter!("agora_redis_errors_total", "command" => command).increment(1);
        }
    }

    /// Takes `quantities` of `sku` in order. `Ok(None)`: no counter yet (call [`Self::rebuild`]).
    pub async fn take(&self, sku: &str, quantities: &[u32]) -> redis::RedisResult<Option<Taken>> {
        let started = std::time::Instant::now();
        let mut invocation = self.take.key(self.key(sku));
        for quantity in quantities {
            invocation.arg(*quantity);
        }
        let answer: redis::RedisResult<Option<Vec<i64>>> =
            invocation.invoke_async(&mut self.hot.connection()).await;
        Self::record("stock_take", started, answer.is_err());
        Ok(answer?.map(|mut flags| {
            let left = flags.pop().unwrap_or(0);
            Taken {
                granted: flags.into_iter().map(|flag| flag == 1).collect(),
                left,
            }
        }))
    }

    /// Sets a missing counter to Postgres's committed `available`; a counter another process
    /// rebuilt meanwhile is kept.
    pub async fn rebuild(&self, sku: &str, available: i64) -> redis::RedisResult<()> {
        let started = std::time::Instant::now();
        let result: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.key(sku))
            .arg(available)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
            .query_async(&mut self.hot.connection())
            .await;
        Self::record("stock_rebuild", started, result.is_err());
        metrics::counter!("agora_inventory_counter_rebuilds_total").increment(1);
        result.map(drop)
    }

    /// Drops the counters of `skus` (stock came back, or Postgres disagreed): the next
    /// reservation rebuilds them from Postgres. Failures only delay that until the TTL.
    pub async fn forget<S: AsRef<str>>(&self, skus: &[S]) {
        if skus.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let mut pipe = redis::pipe();
        for sku in skus {
            pipe.del(self.key(sku.as_ref())).ignore();
        }
        let result: redis::RedisResult<()> = pipe.query_async(&mut self.hot.connection()).await;
        Self::record("stock_forget", started, result.is_err());
        if let Err(error) = result {
            tracing::warn!(%error, "dropping stock counters failed; they expire by themselves");
        }
    }
}
