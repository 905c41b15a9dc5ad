//! The seller socket (`GET /ws/seller`): a seller session that streams that seller's order
//! events (new paid orders, fulfillment, refunds) and low-stock alerts, never another seller's.
//!
//! Promises: events come from the order event log in Postgres in commit order, each once;
//! a client that reconnects with `?last_event_id=` (the `id` of the last event it saw) gets
//! every event after it, then live ones: none lost, none duplicated. An event is sent once
//! every transaction that started before it has finished (so no earlier event can still
//! appear behind it); notices from other processes make the session read at once, and it also
//! reads every [`FEED_POLL_INTERVAL`] in case a notice was lost.

use crate::db::PreparedClient;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws;
use serde_json::json;
use uuid::Uuid;

use super::{
    hub::{self, Deliver, Evict, Hub, Topic},
    shopper::{close_oversized, CLIENT_TIMEOUT, HEARTBEAT_INTERVAL, MAILBOX_CAPACITY},
    since_published, Notice, PROTOCOL_VERSION,
};
use crate::{
    error::{Code, Error},
    state::AppState,
};

/// How often a session reads the log without being told to.
pub const FEED_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Most events one read sends; the next read continues.
pub const FEED_PAGE: i64 = 500;

/// A position in the seller feed: the writing transaction's id, then the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPosition {
    xid: String,
    id: i64,
}

impl FeedPosition {
    /// Parses an event id as sent (`"<xid>.<id>"`).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let invalid = || Error::BadRequest {
            code: Code::InvalidLastEventId,
            message: "not an event id from this feed".into(),
            field: Some("last_event_id".into()),
        };
        let (xid, id) = raw.split_once('.').ok_or_else(invalid)?;
        if xid.is_empty() || !xid.bytes().all(|b| b.is_ascii_digit()) || xid.len() > 20 {
            return Err(invalid());
        }
        Ok(Self {
            xid: xid.to_owned(),
            id: id.parse().map_err(|_| invalid())?,
        })
    }

    fn render(&self) -> String {
        format!("{}.{}", self.xid, self.id)
    }
}

/// Where a new session starts when the client names no last event: after every transaction
/// finished before now (one still running, or later, is sent once it commits).
pub async fn feed_now(client: &impl crate::db::PreparedClient) -> Result<FeedPosition, Error> {
    let row = client
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?;
    Ok(FeedPosition {
        xid: row.get(0),
        id: 0,
    })
}

pub struct SellerSocket {
    id: u64,
    seller_id: Uuid,
    state: web::Data<AppState>,
    hub: Addr<Hub>,
    /// The last event sent (or the start position).
    position: FeedPosition,
    /// True while a read of the log is in flight; `read_again` asks for one more after it.
    reading: bool,
    read_again: bool,
    last_heard: Instant,
}

impl SellerSocket {
    pub fn new(
        state: web::Data<AppState>,
        hub: Addr<Hub>,
        seller_id: Uuid,
        position: FeedPosition,
    ) -> Self {
        Self {
            id: hub::next_socket_id(),
            seller_id,
            state,
            hub,
            position,
            reading: false,
            read_again: false,
            last_heard: Instant::now(),
        }
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, mut message: serde_json::Value) {
        message["v"] = json!(PROTOCOL_VERSION);
        ctx.text(message.to_string());
        metrics::counter!("agora_ws_messages_total", "socket" => "seller", "direction" => "out")
            .increment(1);
    }

    /// Sends every event after the current position that no running transaction can precede.
    fn read_feed(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.reading {
            self.read_again = true;
            return;
        }
        self.reading = true;
        let (pool, seller, position) = (
            self.state.pool.clone(),
            self.seller_id,
            self.position.clone(),
        );
        let read = async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .query(
                    "SELECT e.xid::text, e.id, e.order_id, e.kind, e.status, e.created_at,
                            p.subtotal::text, o.currency, e.data
                     FROM order_events e
                     JOIN order_parts p ON p.order_id = e.order_id AND p.seller_id = e.seller_id
                     JOIN orders o ON o.id = e.order_id
                     WHERE e.seller_id = $1 AND (e.xid, e.id) > ($2::text::xid8, $3)
                       AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
                     ORDER BY e.xid, e.id LIMIT $4",
                    &[&seller, &position.xid, &position.id, &FEED_PAGE],
                )
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(read.into_actor(self).map(|rows, socket, ctx| {
            socket.reading = false;
            match rows {
                Ok(rows) => {
                    let full = rows.len() as i64 == FEED_PAGE;
                    for row in rows {
                        socket.position = FeedPosition {
                            xid: row.get(0),
                            id: row.get(1),
                        };
                        let created_at: chrono::DateTime<chrono::Utc> = row.get(5);
                        let event = json!({
                            "type": "order_event",
                            "id": socket.position.render(),
                            "order_id": row.get::<_, Uuid>(2),
                            "kind": row.get::<_, String>(3),
                            "status": row.get::<_, String>(4),
                            "created_at": created_at,
                            "subtotal": { "amount": row.get::<_, String>(6),
                                          "currency": row.get::<_, String>(7).trim() },
                            "data": row.get::<_, serde_json::Value>(8),
                        });
                        socket.send(ctx, event);
                    }
                    if full {
                        socket.read_again = true;
                    }
                }
                Err(error) => tracing::warn!(%error, "reading the seller feed failed"),
            }
            if std::mem::take(&mut socket.read_again) {
                socket.read_feed(ctx);
            }
        }));
    }
}

impl Actor for SellerSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        metrics::gauge!("agora_ws_connections", "socket" => "seller").increment(1.0);
        self.hub.do_send(hub::Join {
            id: self.id,
            deliver: ctx.address().recipient(),
            evict: ctx.address().recipient(),
        });
        self.hub.do_send(hub::Subscribe {
            id: self.id,
            topic: Topic::Seller(self.seller_id),
        });
        self.read_feed(ctx);
        ctx.run_interval(FEED_POLL_INTERVAL, |socket, ctx| socket.read_feed(ctx));
        ctx.run_interval(HEARTBEAT_INTERVAL, |socket, ctx| {
            if socket.last_heard.elapsed() > CLIENT_TIMEOUT {
                metrics::counter!("agora_ws_closed_total", "socket" => "seller", "reason" => "timeout")
                    .increment(1);
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("agora_ws_connections", "socket" => "seller").decrement(1.0);
        self.hub.do_send(hub::Leave { id: self.id });
    }
}

impl Handler<Deliver> for SellerSocket {
    type Result = ();

    fn handle(&mut self, Deliver { envelope, .. }: Deliver, ctx: &mut Self::Context) {
        metrics::counter!("agora_actor_messages_total", "actor" => "seller_session").increment(1);
        match &envelope.notice {
            Notice::SellerEvents { .. } => {
                metrics::histogram!("agora_ws_fanout_seconds", "notice" => "seller")
                    .record(since_published(&envelope));
                self.read_feed(ctx);
            }
            Notice::Stock { sku, available, .. } => {
                self.send(
                    ctx,
                    json!({ "type": "low_stock", "sku": sku, "available": available }),
                );
            }
            Notice::Price { .. }
            | Notice::Cart { .. }
            | Notice::QueueAdmitted { .. }
            | Notice::QueuePositions { .. }
            | Notice::Order { .. }
            | Notice::Revoked { .. } => {}
        }
    }
}

impl Handler<Evict> for SellerSocket {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
        metrics::counter!("agora_ws_closed_total", "socket" => "seller", "reason" => "slow_consumer")
            .increment(1);
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Again,
            description: Some("not keeping up; reconnect with last_event_id".into()),
        }));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for SellerSocket {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match message {
            Err(ws::ProtocolError::Overflow) => close_oversized(ctx, "seller"),
            Err(_) => ctx.stop(),
            Ok(ws::Message::Text(text)) => {
                metrics::counter!("agora_ws_messages_total", "socket" => "seller", "direction" => "in")
                    .increment(1);
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(message) if message["type"] == "ping" => {
                        self.send(ctx, json!({ "type": "pong" }));
                    }
                    _ => self.send(
                        ctx,
                        json!({ "type": "error", "code": Code::InvalidMessage.as_str(),
                                "message": "the seller feed accepts only {\"type\": \"ping\"}" }),
                    ),
                }
            }
            Ok(ws::Message::Binary(_)) => self.send(
                ctx,
                json!({ "type": "error", "code": Code::InvalidMessage.as_str(), "message": "send JSON text" }),
            ),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
        }
    }
}
