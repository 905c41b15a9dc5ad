//! Realtime: live stock, carts and seller events over WebSockets, across every server process.
//!
//! A change is announced on Redis pub/sub ([`publish`]) by the process that committed it; every
//! process runs one listener ([`spawn_listener`]) that hands each announcement to its [`Hub`],
//! which forwards it to the sockets of that process subscribed to it. So a change on process A
//! reaches sockets on process B; a listener that loses Redis reconnects and resubscribes by
//! itself (announcements made meanwhile are lost to it: stock and carts are sent whole, so the
//! next one repairs a socket's view, and the seller feed is read from Postgres anyway).
//!
//! The socket layer is [`shopper`] (`GET /ws`) and [`seller`] (`GET /ws/seller`), one actor per
//! connection (actix-web-actors). The protocol is in `docs/realtime.md`.

pub mod hub;
pub mod seller;
pub mod shopper;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use hub::{Hub, Hubs, LocalHub};

use crate::{configuration::RedisSettings, hot_state::HotState};

/// Version of the message protocol, sent in every server message as `v`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest pause between two attempts of the listener to reconnect to Redis.
const LISTENER_RETRY: Duration = Duration::from_millis(500);

/// What one process announces to all: the one pub/sub channel's messages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// An SKU's committed availability; `version` orders the notices of one SKU (the row
    /// version of its variant), so a late notice never overwrites a newer one.
    Stock {
        sku: String,
        available: i64,
        seller_id: Uuid,
        version: i64,
    },
    /// An SKU's prices after its seller changed the product: the explicit ones by currency
    /// and the base currency others are converted from (each socket renders its currency).
    Price {
        sku: String,
        base_currency: String,
        prices: std::collections::BTreeMap<String, rust_decimal::Decimal>,
    },
    /// A cart as its owner sees it now, rendered by the process that changed it.
    Cart {
        cart_id: Uuid,
        cart: serde_json::Value,
    },
    /// The seller's order event log has new entries (sessions read them from Postgres).
    SellerEvents { seller_id: Uuid },
    /// A flash sale's queue admitted these tickets (sent to their shoppers only).
    QueueAdmitted {
        sale_id: Uuid,
        admissions: Vec<QueueAdmission>,
    },
    /// A flash sale's queue as a whole: its state and how far admission got (sent to every
    /// waiting shopper; each works out its own position).
    QueuePositions {
        sale_id: Uuid,
        state: String,
        admitted_through: i64,
        waiting: i64,
        admissions_per_sec: f64,
    },
}

/// One ticket a flash sale's queue admitted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueAdmission {
    pub ticket: i64,
    pub shopper_id: Uuid,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A notice with when it was published, to measure fan-out latency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(flatten)]
    pub notice: Notice,
    /// Microseconds since the Unix epoch at publication.
    pub published_at_us: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// Seconds since `published_at_us`, for the fan-out histogram.
pub fn since_published(envelope: &Envelope) -> f64 {
    now_us().saturating_sub(envelope.published_at_us) as f64 / 1e6
}

/// The channel every process publishes on and listens to.
pub fn channel(keys: &crate::hot_state::Keys) -> String {
    keys.tagged("realtime", "notices")
}

/// Announces `notice` to every process; a failure is logged and counted, never fatal (the
/// change itself is committed).
pub async fn publish(hot: &HotState, notice: &Notice) {
    let envelope = Envelope {
        notice: notice.clone(),
        published_at_us: now_us(),
    };
    let Ok(payload) = serde_json::to_string(&envelope) else {
        return;
    };
    let started = std::time::Instant::now();
    let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(channel(hot.keys()))
        .arg(payload)
        .query_async(&mut hot.announcements())
        .await;
    metrics::histogram!("agora_redis_command_duration_seconds", "command" => "publish")
        .record(started.elapsed().as_secs_f64());
    if let Err(error) = result {
        metrics::counter!("agora_redis_errors_total", "command" => "publish").increment(1);
        tracing::warn!(%error, "announcing a change failed");
    }
}

/// Tells the sessions of every seller with a part in `order_id` that their feed has news.
pub async fn announce_order(
    hot: &HotState,
    client: &impl crate::db::PreparedClient,
    order_id: Uuid,
) {
    let sellers = client
        .query(
            "SELECT seller_id FROM order_parts WHERE order_id = $1",
            &[&order_id],
        )
        .await;
    match sellers {
        Ok(rows) => {
            for row in rows {
                publish(
                    hot,
                    &Notice::SellerEvents {
                        seller_id: row.get(0),
                    },
                )
                .await;
            }
        }
        Err(error) => tracing::warn!(%error, "reading an order's sellers to announce failed"),
    }
}

/// Listens to the channel until the process stops, reconnecting after any error, and hands
/// every notice to every hub.
pub fn spawn_listener(settings: &RedisSettings, hubs: Hubs) {
    let client = settings.client();
    let channel = channel(&crate::hot_state::Keys::new(settings.prefix.clone()));
    actix_web::rt::spawn(async move {
        let client = match client {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "realtime listener has no Redis client");
                return;
            }
        };
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        tracing::info!("realtime listener subscribed");
                        metrics::gauge!("agora_realtime_listener_connected").set(1.0);
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            match serde_json::from_str::<Envelope>(&payload) {
                                Ok(envelope) => hubs.dispatch(envelope),
                                Err(error) => {
                                    tracing::warn!(%error, "unreadable realtime notice")
                                }
                            }
                        }
                        metrics::gauge!("agora_realtime_listener_connected").set(0.0);
                        tracing::warn!("realtime listener lost Redis; reconnecting");
                    }
                    Err(error) => tracing::warn!(%error, "realtime subscribe failed"),
                },
                Err(error) => tracing::debug!(%error, "realtime listener cannot reach Redis"),
            }
            metrics::counter!("agora_realtime_listener_reconnects_total").increment(1);
            tokio::time::sleep(LISTENER_RETRY).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_through_their_wire_form() {
        let envelope = Envelope {
            notice: Notice::Stock {
                sku: "MUG-1".into(),
                available: 3,
                seller_id: Uuid::nil(),
                version: 7,
            },
            published_at_us: 1,
        };
        let wire = serde_json::to_string(&envelope).expect("serializes");
        assert!(wire.contains("\"kind\":\"stock\""), "{wire}");
        let back: Envelope = serde_json::from_str(&wire).expect("parses");
        assert_eq!(back.notice, envelope.notice);
    }
}
