//! Brute force on sign-in, throttled: failed sign-ins are counted per account and per client
//! address in a sliding window kept in Redis (one sorted set of attempt times per key), shared
//! by every process. Beyond either limit a sign-in is refused with 429 and `Retry-After`
//! before any password is hashed, whether the account exists or not, so the answer reveals
//! nothing. With Redis unreachable, sign-ins are not throttled (counted in
//! `agora_redis_errors_total`): an outage of the hot state must not lock every shopper out.
//! The same window, under its own keys and metric, counts every password reset asked for
//! ([`SignInThrottle::for_password_resets`]), so the reset mail cannot be used to flood an
//! inbox. The window itself, [`SlidingWindow`], also counts the 401s each client address draws
//! (`crate::unauthorized_budget`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{error::Error, hot_state::HotState};

/// Counts an attempt under each key and answers the most any key holds in the window and the
/// milliseconds until that key's oldest attempt leaves it. ARGV: now (ms), window (ms), an id
/// for this attempt, and whether to record it (1) or only read (0).
const WINDOW_SCRIPT: &str = r"
local now, window, id, record = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local most, wait = 0, 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if record then
    redis.call('ZADD', key, now, id)
    redis.call('PEXPIRE', key, window)
  end
  local count = redis.call('ZCARD', key)
  if count > most then
    most = count
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = oldest[2] and (tonumber(oldest[2]) + window - now) or window
  end
end
return {most, wait}
";

/// How many failed sign-ins a window allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_account: u64,
    pub per_address: u64,
    pub window: Duration,
}

/// Attempts counted per key in a sliding window kept in Redis (a sorted set of attempt times
/// per key), shared by every process.
#[derive(Clone)]
pub struct SlidingWindow {
    hot: HotState,
    window: Duration,
    script: redis::Script,
    /// Names the counting in `agora_redis_errors_total` when Redis cannot answer.
    command: &'static str,
}

impl SlidingWindow {
    pub fn new(hot: HotState, window: Duration, command: &'static str) -> Self {
        Self {
            hot,
            window,
            script: redis::Script::new(WINDOW_SCRIPT),
            command,
        }
    }

    pub fn hot(&self) -> &HotState {
        &self.hot
    }

    /// The most attempts any of `keys` (of one slot) holds in the window, counting this one
    /// first when `record`, and the milliseconds until that key's oldest leaves the window;
    /// `(0, 0)` when Redis cannot answer (nothing is throttled then).
    pub async fn count(&self, keys: &[String], record: bool) -> (u64, u64) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let window = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let mut script = self.script.prepare_invoke();
        for key in keys {
            script.key(key);
        }
        script
            .arg(now)
            .arg(window)
            .arg(uuid::Uuid::new_v4().to_string())
            .arg(if record { "1" } else { "0" });
        let answer: redis::RedisResult<(u64, u64)> =
            script.invoke_async(&mut self.hot.connection()).await;
        answer.unwrap_or_else(|error| {
            metrics::counter!("agora_redis_errors_total", "command" => self.command).increment(1);
            tracing::warn!(%error, command = self.command, "counting in a sliding window failed; not throttling");
            (0, 0)
        })
    }
}

#[derive(Clone)]
pub struct SignInThrottle {
    limits: Limits,
    window: SlidingWindow,
    /// What is counted: the keys' prefix (`signin`, `reset`).
    scope: &'static str,
    /// The counter of refusals, labelled `by`.
    metric: &'static str,
}

impl SignInThrottle {
    /// Failed sign-ins (and wrong passwords given to confirm an account change).
    pub fn new(hot: HotState, limits: Limits) -> Self {
        Self::counting(hot, limits, "signin", "agora_sign_in_throttled_total")
    }

    /// Password resets asked for, each counted whether the account exists or not.
    pub fn for_password_resets(hot: HotState, limits: Limits) -> Self {
        Self::counting(hot, limits, "reset", "agora_password_reset_throttled_total")
    }

    fn counting(hot: HotState, limits: Limits, scope: &'static str, metric: &'static str) -> Self {
        // At 0 from the start, so the alert sees the first refusals as an increase.
        for by in ["account", "address"] {
            metrics::counter!(metric, "by" => by).increment(0);
        }
        Self {
            limits,
            window: SlidingWindow::new(hot, limits.window, "sign_in_throttle"),
            scope,
            metric,
        }
    }

    fn keys(&self, email: &str, address: &str) -> [String; 2] {
        let keys = self.window.hot().keys();
        let scope = self.scope;
        [
            keys.tagged(
                &format!("{scope}:account:{}", email.to_lowercase()),
                "failures",
            ),
            keys.tagged(&format!("{scope}:address:{address}"), "failures"),
        ]
    }

    /// Refuses (429) while the account or the address has used up its failed sign-ins.
    pub async fn check(&self, email: &str, address: &str) -> Result<(), Error> {
        let [account, client] = self.keys(email, address);
        let account = self.count(&[account], false).await;
        let client = self.count(&[client], false).await;
        let refused = [
            (account, self.limits.per_account, "account"),
            (client, self.limits.per_address, "address"),
        ]
        .into_iter()
        .find(|((count, _), limit, _)| count >= limit);
        match refused {
            Some(((_, wait_ms), _, by)) => {
                metrics::counter!(self.metric, "by" => by).increment(1);
                Err(Error::RateLimited {
                    retry_after_secs: wait_ms.div_ceil(1000).max(1),
                })
            }
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in (or a reset asked for) against the account and the address (one
    /// call per key: they live in different cluster slots).
    pub async fn failed(&self, email: &str, address: &str) {
        for key in self.keys(email, address) {
            self.count(&[key], true).await;
        }
    }

    async fn count(&self, keys: &[String], record: bool) -> (u64, u64) {
        self.window.count(keys, record).await
    }
}
