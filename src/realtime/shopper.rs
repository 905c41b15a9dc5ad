//! The shopper socket (`GET /ws`): live stock of the SKUs it follows, and, with the shopper's
//! token, live carts with warnings before their holds lapse.
//!
//! Promises: memory per connection is bounded (at most [`MAX_SUBSCRIPTIONS`] topics, a
//! mailbox of [`MAILBOX_CAPACITY`] notices; a socket that falls further behind is closed by the
//! hub); stock updates coalesce per SKU (the latest version wins; a notice older than one
//! already sent is dropped); a malformed or unknown client message gets an `error` message back
//! and the socket stays open; a frame over [`MAX_FRAME_BYTES`] closes the socket with 1009; a
//! client silent for [`CLIENT_TIMEOUT`] is closed.

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
/// Most topics (SKUs and carts) one socket may follow.
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
        self.skus.len() + self.carts.len() + self.queues.len()
    }

    fn send_queue(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        sale_id: Uuid,
        status: &flash_sales::QueueStatus,
    ) {
        let mut message = serde_json::to_value(status).unwrap_or_default();
        message["type"] = json!("queue");
        message["sale_id"] = json!(sale_id);
        self.send(ctx, message);
    }

    /// Follows the shopper's ticket in a sale's queue: its status now, then live positions,
    /// the admission with its token, or sold out / closed.
    fn follow_queue(&mut self, sale_id: Uuid, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(shopper) = self.shopper else {
            self.error(
                ctx,
                Code::Unauthorized,
                "connect with your shopper token (?token= or Authorization) to follow a queue",
            );
            return;
        };
        if self.queues.contains_key(&sale_id) {
            return;
        }
        if self.follows() >= MAX_SUBSCRIPTIONS {
            self.error(ctx, Code::TooManySubscriptions, "too many subscriptions");
            return;
        }
        // Subscribed before reading, so no announcement falls between the read and the
        // subscription; the ticket number is filled in by the read.
        for topic in [Topic::Queue(sale_id), Topic::Ticket(sale_id, shopper)] {
            self.hub.do_send(hub::Subscribe { id: self.id, topic });
        }
        self.queues.insert(sale_id, i64::MAX);
        let state = self.state.clone();
        let read = async move {
            let client = state.pool.get().await?;
            flash_sales::status(&*client, &state.flash_sales.admission_key, sale_id, shopper).await
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |status, socket, ctx| match status {
                    Ok(status) => {
                        socket.send_queue(ctx, sale_id, &status);
                        if status.state == "waiting" || status.state == "admitted" {
                            socket.queues.insert(sale_id, status.ticket);
                        } else {
                            socket.unfollow_queue(sale_id);
                        }
                    }
                    Err(error) => {
                        socket.unfollow_queue(sale_id);
                        let code = error.code();
                        let message = if code == Code::NotFound {
                            "join the queue first (POST /api/v1/flash-sales/{id}/queue)"
                        } else {
                            "the queue cannot be read now"
                        };
                        socket.error(ctx, code, message);
                    }
                }),
        );
    }

    fn unfollow_queue(&mut self, sale_id: Uuid) {
        if self.queues.remove(&sale_id).is_none() {
            return;
        }
        let mut topics = vec![Topic::Queue(sale_id)];
        if let Some(shopper) = self.shopper {
            topics.push(Topic::Ticket(sale_id, shopper));
        }
        for topic in topics {
            self.hub.do_send(hub::Unsubscribe { id: self.id, topic });
        }
    }

    fn queue_notice(&mut self, notice: &Notice, ctx: &mut ws::WebsocketContext<Self>) {
        match notice {
            Notice::QueueAdmitted {
                sale_id,
                admissions,
            } => {
                let Some(shopper) = self.shopper else {
                    return;
                };
                let Some(admitted) = admissions.iter().find(|a| a.shopper_id == shopper) else {
                    return;
                };
                let admission = flash_sales::admission::Admission {
                    sale_id: *sale_id,
                    shopper_id: shopper,
                    ticket: admitted.ticket,
                    expires_at: admitted.expires_at,
                };
                let status = flash_sales::QueueStatus {
                    admission_token: Some(self.state.flash_sales.admission_key.sign(&admission)),
                    admission_expires_at: Some(admitted.expires_at),
                    ..flash_sales::QueueStatus::new("admitted", admitted.ticket)
                };
                self.queues.insert(*sale_id, admitted.ticket);
                self.send_queue(ctx, *sale_id, &status);
            }
            Notice::QueuePositions {
                sale_id,
                state,
                admitted_through,
                admissions_per_sec,
                ..
            } => {
                let Some(&ticket) = self.queues.get(sale_id) else {
                    return;
                };
                let mut status = flash_sales::QueueStatus::new("waiting", ticket);
                match state.as_str() {
                    "sold_out" => status.state = "sold_out",
                    "closed" => {
                        status.state = "closed";
                        status.reason = Some("sale_ended");
                    }
                    // Admitted already (told so by its own notice), or not read yet.
                    _ if ticket <= *admitted_through || ticket == i64::MAX => return,
                    _ => {
                        let position = flash_sales::position(ticket, *admitted_through);
                        status.position = Some(position);
                        status.estimated_wait_secs =
                            flash_sales::estimated_wait(position, *admissions_per_sec);
                    }
                }
                self.send_queue(ctx, *sale_id, &status);
                if status.state != "waiting" {
                    self.unfollow_queue(*sale_id);
                }
            }
            _ => {}
        }
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

    fn subscribe_cart(&mut self, cart_id: Uuid, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(shopper) = self.shopper else {
            self.error(
                ctx,
                Code::Unauthorized,
                "connect with your shopper token (?token= or Authorization) to follow a cart",
            );
            return;
        };
        if self.carts.contains_key(&cart_id) {
            return;
        }
        if self.follows() >= MAX_SUBSCRIPTIONS {
            self.error(ctx, Code::TooManySubscriptions, "too many subscriptions");
            return;
        }
        self.hub.do_send(hub::Subscribe {
            id: self.id,
            topic: Topic::Cart(cart_id),
        });
        self.carts.insert(cart_id, FollowedCart::default());
        let (state, preference) = (self.state.clone(), self.preference.clone());
        let read = async move {
            let client = state.pool.get().await?;
            carts::view(&*client, shopper, cart_id, &preference, &state.pricing).await
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |view, socket, ctx| match view {
                    Ok(view) => match serde_json::to_value(&view) {
                        Ok(cart) => socket.write_cart(ctx, cart_id, cart),
                        Err(_) => {
                            socket.error(ctx, Code::Unavailable, "the cart cannot be read now")
                        }
                    },
                    Err(_) => {
                        // Another shopper's cart is "not found", as over HTTP.
                        socket.carts.remove(&cart_id);
                        socket.hub.do_send(hub::Unsubscribe {
                            id: socket.id,
                            topic: Topic::Cart(cart_id),
                        });
                        socket.error(ctx, Code::NotFound, "cart not found");
                    }
                }),
        );
    }

    /// Sends the cart and schedules the warning before its next hold lapses.
    fn write_cart(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        cart_id: Uuid,
        cart: serde_json::Value,
    ) {
        let Some(followed) = self.carts.get_mut(&cart_id) else {
            return;
        };
        followed.generation += 1;
        followed.holds = cart["lines"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|line| {
                        let expires_at = line["held_until"].as_str()?.parse().ok()?;
                        Some((line["sku"].as_str()?.to_owned(), expires_at))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.send(
            ctx,
            json!({ "type": "cart", "cart_id": cart_id, "cart": cart }),
        );
        self.schedule_hold_warning(ctx, cart_id);
    }

    /// One timer per cart: at the lead time of its earliest unwarned hold, warns of every hold
    /// lapsing within the lead, then schedules the next. A newer cart supersedes the timer.
    fn schedule_hold_warning(&mut self, ctx: &mut ws::WebsocketContext<Self>, cart_id: Uuid) {
        let Some(followed) = self.carts.get(&cart_id) else {
            return;
        };
        let lead = chrono::Duration::from_std(HOLD_WARNING_LEAD).unwrap_or_default();
        let Some(earliest) = followed.holds.iter().map(|(_, at)| *at).min() else {
            return;
        };
        let generation = followed.generation;
        let wait = (earliest - lead - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        ctx.run_later(wait, move |socket, ctx| {
            let Some(followed) = socket.carts.get_mut(&cart_id) else {
                return;
            };
            if followed.generation != generation {
                return;
            }
            let due = Utc::now() + lead;
            let (lapsing, later): (Vec<_>, Vec<_>) = std::mem::take(&mut followed.holds)
                .into_iter()
                .partition(|(_, at)| *at <= due);
            followed.holds = later;
            for (sku, expires_at) in lapsing {
                socket.send(
                    ctx,
                    json!({ "type": "hold_expiring", "cart_id": cart_id, "sku": sku,
                            "expires_at": expires_at }),
                );
            }
            socket.schedule_hold_warning(ctx, cart_id);
        });
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
            Notice::Cart { cart_id, cart } => {
                metrics::histogram!("agora_ws_fanout_seconds", "notice" => "cart")
                    .record(since_published(&envelope));
                self.write_cart(ctx, *cart_id, cart.clone());
            }
            Notice::SellerEvents { .. } => {}
            Notice::QueueAdmitted { .. } | Notice::QueuePositions { .. } => {
                metrics::histogram!("agora_ws_fanout_seconds", "notice" => "queue")
                    .record(since_published(&envelope));
                self.queue_notice(&envelope.notice, ctx);
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
