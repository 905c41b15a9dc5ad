//! The hubs: one actor per HTTP worker thread that knows which of that worker's sockets follow
//! which topic, and forwards each notice from the Redis listener to them. One per worker, not
//! one per process, so fan-out to many sockets runs on every core and never crosses threads
//! on its way to a socket.
//!
//! Promises: a notice reaches every socket of this process subscribed to its topic at the time
//! it arrives; a socket whose mailbox is full (it is not keeping up) is evicted and told to
//! close, so one slow client never makes the hub, or memory, wait for it. Stock notices that
//! queue up while the hub is busy fanning out coalesce here first (the newest version per SKU
//! goes out once per turn), so a burst of changes to a hot SKU is not multiplied by its
//! followers, nor does it overflow their mailboxes and get healthy sockets evicted. The hub's
//! own mailbox holds at most [`HUB_MAILBOX_CAPACITY`] notices; beyond that the listener drops
//! notices and counts them.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use actix::prelude::*;
use uuid::Uuid;

use super::{Envelope, Notice};

/// At or below this many units, a stock notice is also sent to the SKU's seller as a
/// low-stock alert.
pub const LOW_STOCK_THRESHOLD: i64 = 5;

/// Notices from the Redis listener waiting for a hub's next turn. A turn takes them all and
/// coalesces the stock ones, so this is only reached when a hub stalls; the listener then drops
/// notices (`agora_realtime_notices_dropped_total`) rather than queue without bound.
pub const HUB_MAILBOX_CAPACITY: usize = 4096;

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(1);

/// A socket's id within this process.
pub fn next_socket_id() -> u64 {
    NEXT_SOCKET.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Upper-cased, as SKUs compare.
    Sku(String),
    Cart(Uuid),
    Seller(Uuid),
    /// Everyone waiting in a flash sale's queue.
    Queue(Uuid),
    /// One shopper's ticket in a flash sale's queue: sale, shopper.
    Ticket(Uuid, Uuid),
    /// One order's status (its shopper's sockets follow it).
    Order(Uuid),
}

/// Sent by the hub to a socket: a notice for one of its topics, with the message most sockets
/// send for it, rendered once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub envelope: Arc<Envelope>,
    pub rendered: Option<Arc<str>>,
}

/// The stock message a socket sends when it has no reason to differ (see
/// [`stock_status`]).
pub fn render_stock(sku: &str, available: i64) -> String {
    serde_json::json!({
        "v": super::PROTOCOL_VERSION, "type": "stock", "sku": sku,
        "available": available, "status": stock_status(available, None),
    })
    .to_string()
}

/// `sold_out` at 0, `back_in_stock` when the socket last saw 0, `low_stock` at or below
/// [`LOW_STOCK_THRESHOLD`], else `in_stock`.
pub fn stock_status(available: i64, previously: Option<i64>) -> &'static str {
    match (previously, available) {
        (_, 0) => "sold_out",
        (Some(0), _) => "back_in_stock",
        (_, n) if n <= LOW_STOCK_THRESHOLD => "low_stock",
        _ => "in_stock",
    }
}

/// Every hub of this process, for the Redis listener to dispatch to.
#[derive(Clone, Default)]
pub struct Hubs(Arc<RwLock<Vec<Addr<Hub>>>>);

impl Hubs {
    /// Starts a hub on the current thread (an HTTP worker) and registers it.
    pub fn start_local(&self) -> Addr<Hub> {
        // Bounded from its first message (a mailbox starts at actix's default of 16).
        let hub = Hub::create(|ctx| {
            ctx.set_mailbox_capacity(HUB_MAILBOX_CAPACITY);
            Hub::default()
        });
        if let Ok(mut hubs) = self.0.write() {
            hubs.retain(Addr::connected);
            hubs.push(hub.clone());
        }
        hub
    }

    pub fn dispatch(&self, envelope: Envelope) {
        let envelope = Arc::new(envelope);
        if let Ok(hubs) = self.0.read() {
            for hub in hubs.iter() {
                if let Err(SendError::Full(_)) = hub.try_send(Dispatch(Arc::clone(&envelope))) {
                    metrics::counter!("agora_realtime_notices_dropped_total").increment(1);
                }
            }
        }
    }
}

/// The hub of the worker a request runs on (app data).
pub struct LocalHub(pub Addr<Hub>);

/// Sent by the hub to a socket it dropped for not keeping up: close now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict;

/// Sent by a socket when it opens.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub id: u64,
    pub deliver: Recipient<Deliver>,
    pub evict: Recipient<Evict>,
}

/// Sent by a socket to follow a topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub id: u64,
    pub topic: Topic,
}

/// Sent by a socket to stop following a topic.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub id: u64,
    pub topic: Topic,
}

/// Sent by a socket when it closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub id: u64,
}

/// Sent by the Redis listener: a notice published by any process.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispatch(pub Arc<Envelope>);

struct Socket {
    deliver: Recipient<Deliver>,
    evict: Recipient<Evict>,
    topics: HashSet<Topic>,
}

#[derive(Default)]
pub struct Hub {
    /// Every open socket of this process, by id.
    sockets: HashMap<u64, Socket>,
    /// Who follows each topic; a topic without followers is removed.
    followers: HashMap<Topic, HashSet<u64>>,
    /// Stock notices taken this turn, the newest version per SKU (upper-cased), fanned out
    /// once the mailbox is drained.
    pending_stock: HashMap<String, Arc<Envelope>>,
}

impl Actor for Hub {
    type Context = Context<Self>;
}

impl Hub {
    fn drop_socket(&mut self, id: u64) {
        if let Some(socket) = self.sockets.remove(&id) {
            for topic in socket.topics {
                if let Some(followers) = self.followers.get_mut(&topic) {
                    followers.remove(&id);
                    if followers.is_empty() {
                        self.followers.remove(&topic);
                    }
                }
            }
        }
        metrics::gauge!("agora_realtime_hub_sockets").set(self.sockets.len() as f64);
    }
}

impl Handler<Join> for Hub {
    type Result = ();

    fn handle(&mut self, join: Join, _: &mut Context<Self>) {
        self.sockets.insert(
            join.id,
            Socket {
                deliver: join.deliver,
                evict: join.evict,
                topics: HashSet::new(),
            },
        );
        metrics::gauge!("agora_realtime_hub_sockets").set(self.sockets.len() as f64);
    }
}

impl Handler<Subscribe> for Hub {
    type Result = ();

    fn handle(&mut self, subscribe: Subscribe, _: &mut Context<Self>) {
        if let Some(socket) = self.sockets.get_mut(&subscribe.id) {
            socket.topics.insert(subscribe.topic.clone());
            self.followers
                .entry(subscribe.topic)
                .or_default()
                .insert(subscribe.id);
        }
    }
}

impl Handler<Unsubscribe> for Hub {
    type Result = ();

    fn handle(&mut self, unsubscribe: Unsubscribe, _: &mut Context<Self>) {
        if let Some(socket) = self.sockets.get_mut(&unsubscribe.id) {
            socket.topics.remove(&unsubscribe.topic);
        }
        if let Some(followers) = self.followers.get_mut(&unsubscribe.topic) {
            followers.remove(&unsubscribe.id);
            if followers.is_empty() {
                self.followers.remove(&unsubscribe.topic);
            }
        }
    }
}

impl Handler<Leave> for Hub {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Context<Self>) {
        self.drop_socket(leave.id);
    }
}

/// The version of a stock notice (none for other notices).
fn stock_version(envelope: &Envelope) -> Option<i64> {
    match &envelope.notice {
        Notice::Stock { version, .. } => Some(*version),
        _ => None,
    }
}

impl Handler<Dispatch> for Hub {
    type Result = ();

    fn handle(&mut self, Dispatch(envelope): Dispatch, ctx: &mut Context<Self>) {
        metrics::counter!("agora_actor_messages_total", "actor" => "realtime_hub").increment(1);
        let Notice::Stock { sku, version, .. } = &envelope.notice else {
            self.fan_out(&envelope);
            return;
        };
        if self.pending_stock.is_empty() {
            // Actix drains the mailbox before it polls spawned futures: this runs after every
            // notice already queued has been taken.
            ctx.spawn(actix::fut::ready(()).map(|(), hub: &mut Self, _| {
                for (_, envelope) in std::mem::take(&mut hub.pending_stock) {
                    hub.fan_out(&envelope);
                }
            }));
        }
        let sku = sku.to_ascii_uppercase();
        let waiting = self.pending_stock.get(&sku).and_then(|w| stock_version(w));
        if waiting.is_some() {
            metrics::counter!("agora_ws_coalesced_total", "at" => "hub").increment(1);
        }
        if waiting.is_none_or(|waiting| *version > waiting) {
            self.pending_stock.insert(sku, envelope);
        }
    }
}

impl Hub {
    /// Hands a notice to every socket following one of its topics; evicts those whose mailbox
    /// is full.
    fn fan_out(&mut self, envelope: &Arc<Envelope>) {
        let started = std::time::Instant::now();
        let topics = match &envelope.notice {
            Notice::Stock {
                sku,
                available,
                seller_id,
                ..
            } => {
                let mut topics = vec![Topic::Sku(sku.to_ascii_uppercase())];
                if *available <= LOW_STOCK_THRESHOLD {
                    topics.push(Topic::Seller(*seller_id));
                }
                topics
            }
            Notice::Price { sku, .. } => vec![Topic::Sku(sku.to_ascii_uppercase())],
            Notice::Cart { cart_id, .. } => vec![Topic::Cart(*cart_id)],
            Notice::SellerEvents { seller_id } => vec![Topic::Seller(*seller_id)],
            Notice::QueueAdmitted {
                sale_id,
                admissions,
            } => admissions
                .iter()
                .map(|admission| Topic::Ticket(*sale_id, admission.shopper_id))
                .collect(),
            Notice::QueuePositions { sale_id, .. } => vec![Topic::Queue(*sale_id)],
            Notice::Order { order_id, .. } => vec![Topic::Order(*order_id)],
            // For the credential cache, not for sockets (the listener keeps it from hubs).
            Notice::Revoked { .. } => Vec::new(),
        };
        let rendered: Option<Arc<str>> = match &envelope.notice {
            Notice::Stock { sku, available, .. } => Some(render_stock(sku, *available).into()),
            _ => None,
        };
        let mut slow = Vec::new();
        for topic in &topics {
            let Some(followers) = self.followers.get(topic) else {
                continue;
            };
            for id in followers {
                let Some(socket) = self.sockets.get(id) else {
                    continue;
                };
                let deliver = Deliver {
                    envelope: Arc::clone(envelope),
                    rendered: rendered.clone(),
                };
                match socket.deliver.try_send(deliver) {
                    Ok(()) => {}
                    Err(SendError::Full(_)) => slow.push(*id),
                    Err(SendError::Closed(_)) => slow.push(*id),
                }
            }
        }
        for id in slow {
            if let Some(socket) = self.sockets.get(&id) {
                socket.evict.do_send(Evict);
            }
            self.drop_socket(id);
        }
        metrics::histogram!("agora_actor_handling_seconds", "actor" => "realtime_hub")
            .record(started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Duration};

    use super::*;

    /// Stands in for a shopper socket: a mailbox as small as a real one's, recording what the
    /// hub delivers and whether it was evicted.
    #[derive(Default, Clone)]
    struct Recorder {
        delivered: Arc<Mutex<Vec<i64>>>,
        evicted: Arc<Mutex<bool>>,
    }

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Recorder {
        type Result = ();

        fn handle(&mut self, deliver: Deliver, _: &mut Context<Self>) {
            if let (Notice::Stock { available, .. }, Ok(mut delivered)) =
                (&deliver.envelope.notice, self.delivered.lock())
            {
                delivered.push(*available);
            }
        }
    }

    impl Handler<Evict> for Recorder {
        type Result = ();

        fn handle(&mut self, _: Evict, _: &mut Context<Self>) {
            if let Ok(mut evicted) = self.evicted.lock() {
                *evicted = true;
            }
        }
    }

    fn stock(sku: &str, available: i64, version: i64) -> Dispatch {
        Dispatch(Arc::new(Envelope {
            notice: Notice::Stock {
                sku: sku.into(),
                available,
                seller_id: Uuid::nil(),
                version,
            },
            published_at_us: 0,
        }))
    }

    #[actix_web::test]
    async fn a_burst_of_stock_notices_reaches_followers_as_the_newest_per_sku_without_evicting_them(
    ) {
        let recorder = Recorder::default();
        let socket = Recorder::create(|ctx| {
            ctx.set_mailbox_capacity(crate::realtime::shopper::MAILBOX_CAPACITY);
            recorder.clone()
        });
        let hub = Hub::default().start();
        hub.do_send(Join {
            id: 1,
            deliver: socket.clone().recipient(),
            evict: socket.recipient(),
        });
        for sku in ["HOT-1", "COLD-1"] {
            hub.do_send(Subscribe {
                id: 1,
                topic: Topic::Sku(sku.into()),
            });
        }
        // Queued before the hub runs, as when it is busy: far more than a socket's mailbox.
        for change in 1..=500 {
            hub.do_send(stock("hot-1", 1_000 - change, change));
        }
        hub.do_send(stock("HOT-1", 1, 1));
        hub.do_send(stock("COLD-1", 42, 3));
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut delivered = recorder.delivered.lock().expect("delivered").clone();
        delivered.sort_unstable();
        assert_eq!(
            delivered,
            vec![42, 500],
            "one notice per SKU, the newest version"
        );
        assert!(!*recorder.evicted.lock().expect("evicted"));
    }
}
