//! Redis: hot, shared, rebuildable state (counters, holds, queues, pub/sub between processes).
//!
//! Promises: every key carries the configured prefix ([`Keys`]), so several stores and test
//! runs share one Redis; keys that one script touches together share a `{hash tag}`, so a Redis
//! Cluster can serve them; the connection is opened lazily and re-opened by itself after Redis
//! restarts, so the process starts and keeps serving (and `/ready` says 503) while Redis is down.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use tokio::sync::mpsc;

use crate::configuration::{ConfigError, RedisSettings};

/// Reconnection attempts per failed command before it fails; `/ready` polls, so a few suffice.
const RECONNECT_RETRIES: usize = 2;
/// Longest pause between two reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Builds prefixed, cluster-ready key names.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `prefix:{tag}:name`: keys with the same `tag` land in the same cluster slot, so one
    /// script may touch them together.
    pub fn tagged(&self, tag: &str, name: &str) -> String {
        format!("{}:{{{tag}}}:{name}", self.prefix)
    }
}

/// The process's handle on Redis: cheap to clone, shared by every worker and actor.
#[derive(Clone)]
pub struct HotState {
    /// Multiplexed connection shared by all tasks; it reconnects by itself after errors.
    connection: ConnectionManager,
    /// A second one for realtime announcements, so that a burst of them never queues in front
    /// of the stock scripts reservations wait for.
    announcements: ConnectionManager,
    keys: Keys,
    /// Where announcements queue for the process's publishing task, once it runs
    /// (`notices::start_publishing`); until then, callers publish their own.
    publishing: Arc<OnceLock<mpsc::Sender<String>>>,
}

impl HotState {
    /// Creates the handle without connecting; the first command connects.
    pub fn new(settings: &RedisSettings) -> Result<Self, ConfigError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms)))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let open = || {
            ConnectionManager::new_lazy_with_config(settings.client()?, config.clone()).map_err(
                |e| ConfigError::Invalid {
                    key: "redis.url",
                    env: "AGORA__REDIS__URL".into(),
                    problem: format!("cannot create a Redis client: {:?}", e.kind()),
                },
            )
        };
        Ok(Self {
            connection: open()?,
            announcements: open()?,
            keys: Keys::new(settings.prefix.clone()),
            publishing: Arc::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A connection handle for issuing commands; cloning it shares the one connection.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The queue of the process's publishing task, if it was started.
    pub fn publishing(&self) -> Option<&mpsc::Sender<String>> {
        self.publishing.get()
    }

    /// Hands announcements to a publishing task from now on (the first queue set stays).
    pub fn publish_through(&self, queue: mpsc::Sender<String>) {
        let _ = self.publishing.set(queue);
    }

    /// The connection realtime announcements are published on.
    pub fn announcements(&self) -> ConnectionManager {
        self.announcements.clone()
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let started = std::time::Instant::now();
        let result: redis::RedisResult<String> =
            redis::cmd("PING").query_async(&mut self.connection()).await;
        metrics::histogram!("agora_redis_command_duration_seconds", "command" => "ping")
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("agora_redis_errors_total", "command" => "ping").increment(1);
        }
        result.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_keys_carry_the_prefix_and_a_hash_tag() {
        let keys = Keys::new("shop-a");
        assert_eq!(
            keys.tagged("sku:TSHIRT-M", "stock"),
            "shop-a:{sku:TSHIRT-M}:stock"
        );
    }
}
