//! Notices: what changed, announced on Redis pub/sub to every server process.
//!
//! The process that commits a change (stock, prices, a cart, a seller's orders, an order's
//! status, a flash sale's queue) publishes a [`Notice`] on one channel ([`publish`]); every
//! process listens (`realtime::spawn_listener`) and hands it to the sockets that follow it.
//! Publishing is best effort and never fatal: the change is already committed, and what a
//! socket missed the next notice repairs (stock, carts and order statuses are sent whole; the
//! seller feed is read from Postgres). This module knows nothing of sockets: the domain announces, the socket layer
//! above it listens.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::hot_state::HotState;

/// What a change revoked: one session, or everything of one shopper or seller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum Revocation {
    /// A credential, by its digest (hex).
    Credential { digest: String },
    /// Every credential of a shopper or seller (a password changed, an account deleted, a
    /// seller suspended, a profile edited).
    Subject { id: Uuid },
}

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
        /// The cart's version (`carts.version`) as rendered: other processes' actors drop an
        /// older copy of the cart.
        #[serde(default)]
        version: i64,
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
    /// Credentials revoked: every process forgets them from its credential cache.
    Revoked { revocation: Revocation },
    /// An order's status after a committed change (paid, fulfilled, refunded, cancelled):
    /// the `orders.status` roll-up, sent to its shopper's sockets that follow it.
    Order {
        order_id: Uuid,
        shopper_id: Uuid,
        status: String,
        /// The order's latest event: its kind (what changed) and id (so a socket sends each
        /// change once). Absent from processes of earlier releases.
        #[serde(default)]
        change: Option<(String, i64)>,
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

/// An [`Envelope`] as written, borrowing its notice.
#[derive(Serialize)]
struct EnvelopeOf<'a> {
    #[serde(flatten)]
    notice: &'a Notice,
    published_at_us: u64,
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
    let envelope = EnvelopeOf {
        notice,
        published_at_us: now_us(),
    };
    let Ok(payload) = serde_json::to_string(&envelope) else {
        return;
    };
    let payload = match hot.publishing() {
        Some(queue) => match queue.send(payload).await {
            Ok(()) => return,
            // The publishing task is gone (its runtime stopped): publish it here.
            Err(mpsc::error::SendError(payload)) => payload,
        },
        None => payload,
    };
    send(hot, &[payload]).await;
}

/// Most announcements waiting for the publishing task; a caller beyond it waits its turn.
pub const PUBLISH_QUEUE: usize = 8192;
/// Most announcements the publishing task sends in one pipeline.
const PUBLISH_BATCH: usize = 256;

/// Starts the process's publishing task on the current runtime: announcements are queued
/// (bounded, [`PUBLISH_QUEUE`]) instead of awaited by the requests that make them, and sent in
/// the order they were queued, as many as wait in one pipelined round trip.
pub fn start_publishing(hot: &HotState) {
    let (queue, mut queued) = mpsc::channel::<String>(PUBLISH_QUEUE);
    hot.publish_through(queue);
    let hot = hot.clone();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
            send(&hot, &batch).await;
            batch.clear();
        }
    });
}

/// Publishes `payloads` in order, pipelined; a failure is counted and logged, never raised.
async fn send(hot: &HotState, payloads: &[String]) {
    let channel = channel(hot.keys());
    let mut pipe = redis::pipe();
    for payload in payloads {
        pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
    }
    let started = std::time::Instant::now();
    let result: redis::RedisResult<()> = pipe.query_async(&mut hot.announcements()).await;
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

/// The notice of an order's status as Postgres has it now (after its change committed);
/// `None` when the order cannot be read (logged).
pub async fn order_status(
    client: &impl crate::db::PreparedClient,
    order_id: Uuid,
) -> Option<Notice> {
    let row = client
        .query_opt(
            "SELECT o.shopper_id, o.status, e.kind, e.id FROM orders o
             LEFT JOIN LATERAL (SELECT kind, id FROM order_events WHERE order_id = o.id
                                ORDER BY id DESC LIMIT 1) e ON true
             WHERE o.id = $1",
            &[&order_id],
        )
        .await;
    match row {
        Ok(Some(row)) => Some(Notice::Order {
            order_id,
            shopper_id: row.get(0),
            status: row.get(1),
            change: row
                .get::<_, Option<String>>(2)
                .zip(row.get::<_, Option<i64>>(3)),
        }),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "reading an order's status to announce failed");
            None
        }
    }
}

/// Tells the sockets of the order's shopper that follow it its status now.
pub async fn announce_order_status(
    hot: &HotState,
    client: &impl crate::db::PreparedClient,
    order_id: Uuid,
) {
    if let Some(notice) = order_status(client, order_id).await {
        publish(hot, &notice).await;
    }
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
