//! The shopper socket (`GET /ws`): live stock of the SKUs it follows, and, with the shopper's
//! token, live carts with warnings before their holds lapse, flash-sale queues and the status
//! of the shopper's orders.
//!
//! Promises: memory per connection is bounded (at most [`MAX_SUBSCRIPTIONS`] topics, a
//! mailbox of [`MAILBOX_CAPACITY`] notices; a socket that falls further behind is closed by the
//! hub); stock updates coalesce per SKU (the latest version wins; a notice older than one
//! already sent is dropped); a malformed or unknown client message gets an `error` message back
//! and the socket stays open; a frame over [`MAX_FRAME_BYTES`] closes the socket with 1009; a
//! client silent for [`CLIENT_TIMEOUT`] is closed.

mod cart;
mod order;
mod queue;

use crate::db::PreparedClient;
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{
    hub::{self, stock_status, Deliver, Evict, Hub, Topic},
    since_published, Notice, PROTOCOL_VERSION,
};
use crate::error::Code;
use crate::{
    carts, flash_sales,
    locale::LocalePreference,
    money::{by_currency, Currency},
    state::AppState,
};
use rust_decimal::Decimal;

/// Largest client frame accepted; client messages are small JSON commands.
pub const MAX_FRAME_BYTES: usize = 4096;
/// Most topics (SKUs, carts, queues and orders) one socket may follow.
pub const MAX_SUBSCRIPTIONS: usize = 200;
/// Notices queued for one socket before the hub takes it for a slow consumer.
pub const MAILBOX_CAPACITY: usize = 64;
/// How often the server pings.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// A client that has sent nothing (not even a pong) for this long is gone.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// How long before a hold lapses the cart's followers are warned.
pub const HOLD_WARNING_LEAD: Duration = Duration::from_secs(60);

/// A cart this socket follows.
#[derive(Default)]
struct FollowedCart {
    /// Bumped by every new rendering of the cart, so timers set for an older one do nothing.
    generation: u64,
    /// The cart's holds not yet warned about: SKU and when the hold lapses.
    holds: Vec<(String, DateTime<Utc>)>,
}

/// A stock notice waiting to be written.
struct PendingStock {
    available: i64,
    version: i64,
    /// Seconds from publication to receipt, for the fan-out histogram.
    published: f64,
    rendered: Option<Arc<str>>,
}

/// The last stock state sent for an SKU.
#[derive(Clone, Copy)]
struct Sent {
    available: i64,
    version: i64,
}

pub struct ShopperSocket {
    id: u64,
    state: web::Data<AppState>,
    hub: Addr<Hub>,
    /// The shopper whose token came with the connection, if any: only they may follow carts.
    shopper: Option<Uuid>,
    /// Their locale preference, to render carts for them.
    preference: LocalePreference,
    last_heard: Instant,
    /// Followed SKUs (upper-cased) with what was last sent for each.
    skus: HashMap<String, Option<Sent>>,
    /// The currency prices are shown in (`?currency=`, else the store's default).
    currency: Currency,
    carts: HashMap<Uuid, FollowedCart>,
    /// Flash-sale queues followed: sale id and this shopper's ticket number.
    queues: HashMap<Uuid, i64>,
    /// The shopper's orders followed, with the status and the event id last sent for each.
    orders: HashMap<Uuid, Option<(String, i64)>>,
    /// Stock notices received but not yet written: coalesced, the latest version per SKU.
    pending_stock: BTreeMap<String, PendingStock>,
    flush_scheduled: bool,
}

impl ShopperSocket {
    pub fn new(
        state: web::Data<AppState>,
        hub: Addr<Hub>,
        shopper: Option<Uuid>,
        preference: LocalePreference,
        currency: Currency,
    ) -> Self {
        Self {
            id: hub::next_socket_id(),
            state,
            hub,
            shopper,
            preference,
            last_heard: Instant::now(),
            skus: HashMap::new(),
            currency,
            carts: HashMap::new(),
            queues: HashMap::new(),
            orders: HashMap::new(),
            pending_stock: BTreeMap::new(),
            flush_scheduled: false,
        }
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, mut message: serde_json::Value) {
        message["v"] = json!(PROTOCOL_VERSION);
        ctx.text(message.to_string());
        metrics::counter!("agora_ws_messages_total", "socket" => "shopper", "direction" => "out")
            .increment(1);
    }

    fn error(&self, ctx: &mut ws::WebsocketContext<Self>, code: Code, message: &str) {
        self.send(
            ctx,
            json!({ "type": "error", "code": code.as_str(), "message": message }),
        );
    }

    fn follows(&self) -> usize {
        self.skus.len() + self.carts.len() + self.queues.len() + self.orders.len()
    }

    /// Writes a stock state unless an equal or newer one was sent; `rendered` is the common
    /// form of the message, used when this socket's status is the common one.
    fn write_stock(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        sku: &str,
        available: i64,
        version: i64,
        rendered: Option<&str>,
    ) {
        let Some(last) = self.skus.get_mut(sku) else {
            return;
        };
        if last.is_some_and(|sent| sent.version >= version) {
            return;
        }
        let status = stock_status(available, last.map(|sent| sent.available));
        *last = Some(Sent { available, version });
        match rendered {
            Some(rendered) if status == stock_status(available, None) => {
                ctx.text(rendered);
                metrics::counter!("agora_ws_messages_total", "socket" => "shopper", "direction" => "out")
                    .increment(1);
            }
            _ => self.send(
                ctx,
                json!({ "type": "stock", "sku": sku, "available": available, "status": status }),
            ),
        }
    }

    fn flush_stock(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.flush_scheduled = false;
        for (sku, pending) in std::mem::take(&mut self.pending_stock) {
            self.write_stock(
                ctx,
                &sku,
                pending.available,
                pending.version,
                pending.rendered.as_deref(),
            );
            metrics::histogram!("agora_ws_fanout_seconds", "notice" => "stock")
                .record(pending.published);
        }
    }

    /// Writes a followed SKU's price in this socket's currency (explicit, else converted from
    /// the base currency).
    fn write_price(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        sku: &str,
        base_currency: &str,
        prices: &BTreeMap<String, Decimal>,
    ) {
        let sku = sku.to_ascii_uppercase();
        if !self.skus.contains_key(&sku) {
            return;
        }
        let Some(base) = Currency::from_code(base_currency.trim()) else {
            return;
        };
        let Some(price) = self
            .state
            .pricing
            .fx
            .price_in(&by_currency(prices), base, self.currency)
        else {
            return;
        };
        self.send(ctx, json!({ "type": "price", "sku": sku, "price": price }));
    }

    /// Follows every SKU of these storefront products (as they are now).
    fn subscribe_products(&mut self, products: Vec<Uuid>, ctx: &mut ws::WebsocketContext<Self>) {
        let pool = self.state.pool.clone();
        let read = async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .query(
                    "SELECT p.id, v.sku FROM products p
                     JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
                     JOIN variants v ON v.product_id = p.id
                     WHERE p.id = ANY($1) AND p.status = 'active'
                     ORDER BY p.id, v.position",
                    &[&products],
                )
                .await
                .map_err(|e| e.to_string())
                .map(|rows| (products, rows))
        };
        ctx.spawn(read.into_actor(self).map(|read, socket, ctx| match read {
            Ok((asked, rows)) => {
                let found: Vec<Uuid> = rows.iter().map(|row| row.get(0)).collect();
                for product in asked.iter().filter(|id| !found.contains(id)) {
                    socket.error(
                        ctx,
                        Code::UnknownProduct,
                        &format!("no product {product} on the storefront"),
                    );
                }
                let skus = rows.iter().map(|row| row.get(1)).collect();
                socket.subscribe_skus(skus, ctx);
            }
            Err(error) => {
                tracing::warn!(%error, "reading products for a socket failed");
                socket.error(
                    ctx,
                    Code::Unavailable,
                    "products cannot be read now; subscribe again",
                );
            }
        }));
    }

    fn subscribe_skus(&mut self, skus: Vec<String>, ctx: &mut ws::WebsocketContext<Self>) {
        if skus
            .iter()
            .any(|sku| sku.chars().any(crate::text::is_forbidden))
        {
            self.error(
                ctx,
                Code::InvalidMessage,
                "an SKU must not contain control characters",
            );
            return;
        }
        let mut fresh = Vec::new();
        for sku in skus {
            let sku = sku.trim().to_ascii_uppercase();
            if sku.is_empty() || sku.len() > 64 || self.skus.contains_key(&sku) {
                continue;
            }
            if self.follows() >= MAX_SUBSCRIPTIONS {
                self.error(
                    ctx,
                    Code::TooManySubscriptions,
                    &format!("a socket follows at most {MAX_SUBSCRIPTIONS} SKUs and carts"),
                );
                break;
            }
            self.hub.do_send(hub::Subscribe {
                id: self.id,
                topic: Topic::Sku(sku.clone()),
            });
            self.skus.insert(sku.clone(), None);
            fresh.push(sku);
        }
        if fresh.is_empty() {
            return;
        }
        // Followed first, then read: a change committed in between arrives as a notice, and
        // versions keep the older of the two from overwriting the newer.
        let pool = self.state.pool.clone();
        let read = async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .query(
                    "SELECT upper(v.sku), v.stock_on_hand - v.held - v.sold, v.xmin::text::int8,
                            p.base_currency,
                            (SELECT coalesce(jsonb_object_agg(vp.currency, vp.amount::text), '{}')
                               FROM variant_prices vp WHERE vp.variant_id = v.id)
                     FROM variants v
                     JOIN products p ON p.id = v.product_id AND p.status = 'active'
                     JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
                     WHERE upper(v.sku) = ANY($1)",
                    &[&fresh],
                )
                .await
                .map_err(|e| e.to_string())
                .map(|rows| (fresh, rows))
        };
        ctx.spawn(read.into_actor(self).map(|read, socket, ctx| match read {
            Ok((asked, rows)) => {
                let mut found = Vec::with_capacity(rows.len());
                for row in rows {
                    let sku: String = row.get(0);
                    socket.write_stock(
                        ctx,
                        &sku,
                        i64::from(row.get::<_, i32>(1)),
                        row.get(2),
                        None,
                    );
                    if let Ok(prices) = serde_json::from_value(row.get(4)) {
                        socket.write_price(ctx, &sku, row.get(3), &prices);
                    }
                    found.push(sku);
                }
                for sku in asked.into_iter().filter(|sku| !found.contains(sku)) {
                    socket.error(
                        ctx,
                        Code::UnknownSku,
                        &format!("no SKU {sku} on the storefront"),
                    );
                    socket.skus.remove(&sku);
                    socket.hub.do_send(hub::Unsubscribe {
                        id: socket.id,
                        topic: Topic::Sku(sku),
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading stock for a socket failed");
                socket.error(
                    ctx,
                    Code::Unavailable,
                    "stock cannot be read now; subscribe again",
                );
            }
        }));
    }
}

/// What a shopper's client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        #[serde(default)]
        skus: Vec<String>,
        #[serde(default)]
        products: Vec<Uuid>,
    },
    Unsubscribe {
        skus: Vec<String>,
    },
    SubscribeCart {
        cart_id: Uuid,
    },
    UnsubscribeCart {
        cart_id: Uuid,
    },
    FollowQueue {
        sale_id: Uuid,
    },
    UnfollowQueue {
        sale_id: Uuid,
    },
    FollowOrder {
        order_id: Uuid,
    },
    UnfollowOrder {
        order_id: Uuid,
    },
    Ping,
}

impl Actor for ShopperSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        metrics::gauge!("agora_ws_connections", "socket" => "shopper").increment(1.0);
        self.hub.do_send(hub::Join {
            id: self.id,
            deliver: ctx.address().recipient(),
            evict: ctx.address().recipient(),
        });
        ctx.run_interval(HEARTBEAT_INTERVAL, |socket, ctx| {
            if socket.last_heard.elapsed() > CLIENT_TIMEOUT {
                metrics::counter!("agora_ws_closed_total", "socket" => "shopper", "reason" => "timeout")
                    .increment(1);
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        metrics::gauge!("agora_ws_connections", "socket" => "shopper").decrement(1.0);
        self.hub.do_send(hub::Leave { id: self.id });
    }
}

impl Handler<Deliver> for ShopperSocket {
    type Result = ();

    fn handle(&mut self, Deliver { envelope, rendered }: Deliver, ctx: &mut Self::Context) {
        metrics::counter!("agora_actor_messages_total", "actor" => "shopper_socket").increment(1);
        match &envelope.notice {
            Notice::Stock {
                sku,
                available,
                version,
                ..
            } => {
                let sku = sku.to_ascii_uppercase();
                let pending = PendingStock {
                    available: *available,
                    version: *version,
                    published: since_published(&envelope),
                    rendered,
                };
                if !self.flush_scheduled {
                    // Written once this turn has taken every notice already in the mailbox
                    // (actix drains the mailbox before it polls spawned futures), so a socket
                    // that fell behind gets the latest state per SKU, without a timer per
                    // notice.
                    self.flush_scheduled = true;
                    ctx.spawn(
                        actix::fut::ready(())
                            .map(|(), socket: &mut Self, ctx| socket.flush_stock(ctx)),
                    );
                }
                match self.pending_stock.get(&sku) {
                    Some(waiting) if waiting.version >= *version => {}
                    Some(_) => {
                        metrics::counter!("agora_ws_coalesced_total", "at" => "socket")
                            .increment(1);
                        self.pending_stock.insert(sku, pending);
                    }
                    None => {
                        self.pending_stock.insert(sku, pending);
                    }
                }
            }
            Notice::Price {
                sku,
                base_currency,
                prices,
            } => self.write_price(ctx, sku, base_currency, prices),
            Notice::Cart { cart_id, cart, .. } => {
                metrics::histogram!("agora_ws_fanout_seconds", "notice" => "cart")
                    .record(since_published(&envelope));
                self.write_cart(ctx, *cart_id, cart.clone());
            }
            Notice::SellerEvents { .. } | Notice::Revoked { .. } => {}
            Notice::QueueAdmitted { .. } | Notice::QueuePositions { .. } => {
                metrics::histogram!("agora_ws_fanout_seconds", "notice" => "queue")
                    .record(since_published(&envelope));
                self.queue_notice(&envelope.notice, ctx);
            }
            Notice::Order {
                order_id,
                shopper_id,
                status,
                change,
            } => {
                metrics::histogram!("agora_ws_fanout_seconds", "notice" => "order")
                    .record(since_published(&envelope));
                if self.shopper == Some(*shopper_id) {
                    self.write_order(ctx, *order_id, status, change.as_ref());
                }
            }
        }
    }
}

impl Handler<Evict> for ShopperSocket {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
        metrics::counter!("agora_ws_closed_total", "socket" => "shopper", "reason" => "slow_consumer")
            .increment(1);
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Again,
            description: Some("not keeping up; reconnect".into()),
        }));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ShopperSocket {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let message = match message {
            Ok(message) => message,
            Err(ws::ProtocolError::Overflow) => {
                close_oversized(ctx, "shopper");
                return;
            }
            Err(_) => {
                ctx.stop();
                return;
            }
        };
        match message {
            ws::Message::Text(text) => {
                metrics::counter!("agora_ws_messages_total", "socket" => "shopper", "direction" => "in")
                    .increment(1);
                match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Subscribe { skus, products })
                        if skus.is_empty() && products.is_empty() =>
                    {
                        self.error(
                            ctx,
                            Code::InvalidMessage,
                            "subscribe needs skus or products",
                        );
                    }
                    Ok(ClientMessage::Subscribe { skus, products }) => {
                        self.subscribe_skus(skus, ctx);
                        if !products.is_empty() {
                            self.subscribe_products(products, ctx);
                        }
                    }
                    Ok(ClientMessage::Unsubscribe { skus }) => {
                        for sku in skus {
                            let sku = sku.trim().to_ascii_uppercase();
                            if self.skus.remove(&sku).is_some() {
                                self.hub.do_send(hub::Unsubscribe {
                                    id: self.id,
                                    topic: Topic::Sku(sku),
                                });
                            }
                        }
                    }
                    Ok(ClientMessage::SubscribeCart { cart_id }) => {
                        self.subscribe_cart(cart_id, ctx);
                    }
                    Ok(ClientMessage::UnsubscribeCart { cart_id }) => {
                        if self.carts.remove(&cart_id).is_some() {
                            self.hub.do_send(hub::Unsubscribe {
                                id: self.id,
                                topic: Topic::Cart(cart_id),
                            });
                        }
                    }
                    Ok(ClientMessage::FollowQueue { sale_id }) => self.follow_queue(sale_id, ctx),
                    Ok(ClientMessage::UnfollowQueue { sale_id }) => self.unfollow_queue(sale_id),
                    Ok(ClientMessage::FollowOrder { order_id }) => self.follow_order(order_id, ctx),
                    Ok(ClientMessage::UnfollowOrder { order_id }) => self.unfollow_order(order_id),
                    Ok(ClientMessage::Ping) => self.send(ctx, json!({ "type": "pong" })),
                    Err(error) => self.error(ctx, Code::InvalidMessage, &error.to_string()),
                }
            }
            ws::Message::Binary(_) => {
                self.error(ctx, Code::InvalidMessage, "send JSON text messages");
            }
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Continuation(_) | ws::Message::Nop => {}
        }
    }
}

/// Closes a socket that sent a frame over the limit, with 1009 "message too big".
pub fn close_oversized<A>(ctx: &mut ws::WebsocketContext<A>, socket: &'static str)
where
    A: Actor<Context = ws::WebsocketContext<A>>,
{
    metrics::counter!("agora_ws_closed_total", "socket" => socket, "reason" => "frame_too_large")
        .increment(1);
    ctx.close(Some(ws::CloseReason {
        code: ws::CloseCode::Size,
        description: Some(format!("frames are limited to {MAX_FRAME_BYTES} bytes")),
    }));
    ctx.stop();
}
