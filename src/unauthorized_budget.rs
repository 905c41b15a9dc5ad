//! A budget of 401s per client address: an address that draws more than
//! `auth.unauthorized_per_address` answers of 401 (missing, unknown, expired or revoked
//! credentials) within `auth.unauthorized_window_secs` is answered 429 with `Retry-After`
//! instead, on every route and every process, until its oldest 401 leaves the window.
//!
//! The 401s are counted in the sliding window of the sign-in throttle
//! ([`SlidingWindow`], in Redis, shared by every process), and only when a request is about to
//! be answered 401: an authenticated request never touches Redis for it. A process that found
//! an address over budget also remembers it until its `Retry-After` (at most
//! [`MAX_REMEMBERED`] addresses), and refuses that address's requests that carry credentials
//! before they are checked, so a right guess is not told from a wrong one. Refusals are counted
//! in `agora_unauthorized_throttled_total`, exported at 0 from the start. With Redis
//! unreachable, nothing is throttled (as with the sign-in throttle).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::{hot_state::HotState, sign_in_throttle::SlidingWindow};

pub const METRIC: &str = "agora_unauthorized_throttled_total";

/// Most over-budget addresses one process remembers; beyond it, the ones whose time is up are
/// forgotten, and when none is, a new one is not remembered (Redis still refuses it).
pub const MAX_REMEMBERED: usize = 10_000;

#[derive(Clone)]
pub struct UnauthorizedBudget {
    per_address: u64,
    window: SlidingWindow,
    /// Addresses found over budget, until their `Retry-After`.
    over_budget: Arc<Mutex<HashMap<IpAddr, Instant>>>,
    /// How many are remembered, read without the lock: usually none.
    remembered: Arc<AtomicUsize>,
}

impl UnauthorizedBudget {
    pub fn new(hot: HotState, per_address: u64, window: Duration) -> Self {
        // At 0 from the start, so an alert sees the first refusals as an increase.
        metrics::counter!(METRIC).increment(0);
        Self {
            per_address,
            window: SlidingWindow::new(hot, window, "unauthorized_budget"),
            over_budget: Arc::default(),
            remembered: Arc::default(),
        }
    }

    fn key(&self, address: IpAddr) -> String {
        self.window
            .hot()
            .keys()
            .tagged(&format!("unauthorized:address:{address}"), "answers")
    }

    /// The seconds to wait when this process already knows `address` is over budget; no lock is
    /// taken while no address is remembered.
    pub fn known_over_budget(&self, address: IpAddr) -> Option<u64> {
        if self.remembered.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut over_budget = self.over_budget.lock().ok()?;
        let until = *over_budget.get(&address)?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            over_budget.remove(&address);
            self.remembered.store(over_budget.len(), Ordering::Relaxed);
            return None;
        }
        metrics::counter!(METRIC).increment(1);
        Some(u64::try_from(left.as_millis().div_ceil(1000)).map_or(u64::MAX, |secs| secs.max(1)))
    }

    /// A 401 is about to be answered to `address`: `None` counts it (answer the 401), `Some`
    /// gives the seconds to wait when the address has drawn its budget (answer 429 instead;
    /// the refusal is not counted as a 401).
    pub async fn draw(&self, address: IpAddr) -> Option<u64> {
        let key = [self.key(address)];
        let (drawn, wait_ms) = self.window.count(&key, false).await;
        if drawn < self.per_address {
            self.window.count(&key, true).await;
            return None;
        }
        metrics::counter!(METRIC).increment(1);
        let wait = Duration::from_millis(wait_ms.max(1));
        self.remember(address, wait);
        Some(wait_ms.div_ceil(1000).max(1))
    }

    fn remember(&self, address: IpAddr, wait: Duration) {
        let Ok(mut over_budget) = self.over_budget.lock() else {
            return;
        };
        let now = Instant::now();
        if over_budget.len() >= MAX_REMEMBERED {
            over_budget.retain(|_, until| *until > now);
        }
        if over_budget.len() < MAX_REMEMBERED {
            over_budget.insert(address, now + wait);
        }
        self.remembered.store(over_budget.len(), Ordering::Relaxed);
    }
}
