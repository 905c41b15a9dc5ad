//! Inventory shards: the actors that serialize and batch every stock reservation.
//!
//! SKUs hash to a fixed number of shards ([`InventoryShards`]); each shard is a supervised actor
//! that queues the reservations it receives and commits them in batches through its
//! [`StockStore`] (group commit): while one batch's transaction is in flight, the requests that
//! arrive form the next one, so a hot SKU costs one row lock per batch, not one per shopper.
//!
//! Promises: requests are answered in arrival order within a batch; a shard never queues more
//! than [`BatchLimits::max_pending`] requests (beyond it, [`ReserveError::Overloaded`] at once);
//! if a batch panics, the shard is restarted by its supervisor and the requests of that batch
//! and its queue are answered [`ReserveError::Unavailable`] (a panicking store commits nothing,
//! so retrying is safe); the store, not the actor, is the authority on stock, so a restarted
//! shard needs no state back.

use std::{
    hash::{Hash, Hasher},
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{
    prelude::*, ActorFutureExt, ArbiterHandle, ResponseFuture, Supervised, Supervisor, WrapFuture,
};
use chrono::{DateTime, Utc};
use futures_util::{future::BoxFuture, FutureExt};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::lifecycle::{FlushError, FlushPendingWrites};

/// Messages a shard's mailbox holds before senders wait.
pub const MAILBOX_CAPACITY: usize = 4096;

/// Sent by carts (through [`InventoryShards::reserve`]) to hold stock for a while.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Hold, ReserveError>")]
pub struct ReserveStock {
    pub sku: String,
    pub quantity: u32,
    /// Who holds it: a cart id.
    pub owner: String,
    /// How long the hold lasts before the sweeper returns the stock.
    pub hold_for: Duration,
    /// The cart line the units go into, written in the hold's transaction when it is granted
    /// (one commit for both); `None` holds only.
    pub into_line: Option<LineIntent>,
}

/// A cart line to write with a hold: the line of the held SKU in `cart_id` set to `quantity`,
/// only over the cart's `version` (the store answers whether it was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIntent {
    pub cart_id: Uuid,
    pub shopper_id: Uuid,
    pub version: i64,
    /// The write's own id, to recognize it.
    pub write_id: Uuid,
    pub quantity: u32,
}

/// Stock held for an owner until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: Uuid,
    pub sku: String,
    pub quantity: u32,
    pub expires_at: DateTime<Utc>,
    /// Whether the request's [`LineIntent`] was written with the hold (`Some(false)`: the cart
    /// had moved on, so only the hold was); `None` without one.
    pub line_written: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error("only {available} available")]
    InsufficientStock { available: i64 },
    #[error("no such SKU on the storefront")]
    UnknownSku,
    #[error("the inventory shard is overloaded; retry shortly")]
    Overloaded,
    #[error("stock could not be reserved now: {0}")]
    Unavailable(String),
}

/// Where reservations are committed. One call is one transaction for the whole batch.
pub trait StockStore: Send + Sync + 'static {
    /// Answers each request in order; `Err` means nothing in the batch was committed.
    fn reserve_batch(
        &self,
        batch: Vec<ReserveStock>,
    ) -> BoxFuture<'static, Result<Vec<Result<Hold, ReserveError>>, String>>;
}

/// How a shard batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// Longest an idle shard waits for company before committing a lone request.
    pub max_wait: Duration,
    /// Most requests queued in a shard; more are refused as overloaded.
    pub max_pending: usize,
}

type Reply = oneshot::Sender<Result<Hold, ReserveError>>;

pub struct InventoryShard {
    name: String,
    store: Arc<dyn StockStore>,
    limits: BatchLimits,
    /// Requests waiting for the next commit, in arrival order, with where to answer.
    pending: Vec<(ReserveStock, Reply)>,
    /// True while a batch's transaction is in flight; arrivals wait for the next batch.
    committing: bool,
    /// True while a `max_wait` timer is set, so one idle wait covers many arrivals.
    timer_set: bool,
    /// Graceful-stop callers waiting until nothing is queued or in flight.
    drained: Vec<oneshot::Sender<usize>>,
    /// Requests committed since the last graceful-stop flush, reported to it.
    committed: usize,
}

impl InventoryShard {
    pub fn new(name: String, store: Arc<dyn StockStore>, limits: BatchLimits) -> Self {
        Self {
            name,
            store,
            limits,
            pending: Vec::new(),
            committing: false,
            timer_set: false,
            drained: Vec::new(),
            committed: 0,
        }
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.pending.is_empty() {
            return;
        }
        if self.pending.len() >= self.limits.max_batch || self.limits.max_wait.is_zero() {
            self.commit(ctx);
        } else if !self.timer_set {
            self.timer_set = true;
            ctx.run_later(self.limits.max_wait, |shard, ctx| {
                shard.timer_set = false;
                shard.schedule_now(ctx);
            });
        }
    }

    fn schedule_now(&mut self, ctx: &mut Context<Self>) {
        if !self.committing && !self.pending.is_empty() {
            self.commit(ctx);
        }
    }

    fn commit(&mut self, ctx: &mut Context<Self>) {
        let take = self.pending.len().min(self.limits.max_batch);
        let (requests, replies): (Vec<ReserveStock>, Vec<Reply>) =
            self.pending.drain(..take).unzip();
        self.record_queue();
        self.committing = true;
        let started = Instant::now();
        metrics::histogram!("agora_inventory_batch_size").record(take as f64);
        let store = Arc::clone(&self.store);
        // A panic inside the store must not take the arbiter thread down with the actor:
        // it is caught, the batch is answered `Unavailable`, and the shard stops so that its
        // supervisor restarts it.
        let commit =
            AssertUnwindSafe(async move { store.reserve_batch(requests).await }).catch_unwind();
        ctx.spawn(commit.into_actor(self).map(move |outcome, shard, ctx| {
            metrics::histogram!("agora_inventory_commit_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            let Ok(outcome) = outcome else {
                tracing::error!(shard = %shard.name, "reservation batch panicked; restarting the shard");
                for reply in replies {
                    let _ = reply.send(Err(ReserveError::Unavailable(
                        "the inventory shard restarted".into(),
                    )));
                }
                ctx.stop();
                return;
            };
            match outcome {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let outcome = match &result {
                            Ok(_) => "held",
                            Err(ReserveError::InsufficientStock { .. }) => "insufficient_stock",
                            Err(_) => "refused",
                        };
                        metrics::counter!("agora_inventory_reservations_total", "outcome" => outcome)
                            .increment(1);
                        let _ = reply.send(result);
                    }
                }
                Err(cause) => {
                    tracing::error!(shard = %shard.name, %cause, "reservation batch failed");
                    metrics::counter!("agora_inventory_reservations_total", "outcome" => "unavailable")
                        .increment(replies.len() as u64);
                    for reply in replies {
                        let _ = reply.send(Err(ReserveError::Unavailable(cause.clone())));
                    }
                }
            }
            shard.committed += take;
            shard.committing = false;
            // Whoever arrived during the commit already waited one transaction: go now.
            shard.schedule_now(ctx);
            shard.notify_if_drained();
        }));
    }

    fn record_queue(&self) {
        metrics::gauge!("agora_inventory_queued_requests", "shard" => self.name.clone())
            .set(self.pending.len() as f64);
    }

    fn notify_if_drained(&mut self) {
        if !self.committing && self.pending.is_empty() {
            let committed = std::mem::take(&mut self.committed);
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(committed);
            }
        }
    }
}

impl Actor for InventoryShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Supervised for InventoryShard {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!("agora_actor_restarts_total", "actor" => "inventory_shard").increment(1);
        tracing::warn!(shard = %self.name, queued = self.pending.len(), "inventory shard restarting");
        // Dropping the replies answers every queued request `Unavailable`: none was committed.
        self.pending.clear();
        self.committing = false;
        self.timer_set = false;
        self.record_queue();
        // A graceful stop waiting on this shard has nothing left to wait for.
        self.notify_if_drained();
    }
}

impl Handler<ReserveStock> for InventoryShard {
    type Result = ResponseFuture<Result<Hold, ReserveError>>;

    fn handle(&mut self, request: ReserveStock, ctx: &mut Context<Self>) -> Self::Result {
        metrics::counter!("agora_actor_messages_total", "actor" => "inventory_shard").increment(1);
        if self.pending.len() >= self.limits.max_pending {
            metrics::counter!("agora_inventory_reservations_total", "outcome" => "overloaded")
                .increment(1);
            return Box::pin(async { Err(ReserveError::Overloaded) });
        }
        let (reply, answer) = oneshot::channel();
        self.pending.push((request, reply));
        self.record_queue();
        self.schedule(ctx);
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(ReserveError::Unavailable(
                    "the inventory shard restarted".into(),
                ))
            })
        })
    }
}

impl Handler<FlushPendingWrites> for InventoryShard {
    type Result = ResponseFuture<Result<usize, FlushError>>;

    fn handle(&mut self, _: FlushPendingWrites, ctx: &mut Context<Self>) -> Self::Result {
        let (done, drained) = oneshot::channel();
        self.drained.push(done);
        self.schedule_now(ctx);
        self.notify_if_drained();
        Box::pin(async move {
            drained
                .await
                .map_err(|_| FlushError::Persist("the inventory shard stopped".into()))
        })
    }
}

/// The shards of one process, and the routing of SKUs to them; cheap to clone (shared).
#[derive(Clone)]
pub struct InventoryShards {
    shards: Arc<[Addr<InventoryShard>]>,
}

impl InventoryShards {
    /// Starts `count` supervised shards, spread over `arbiters` round-robin.
    pub fn start(
        store: Arc<dyn StockStore>,
        count: usize,
        arbiters: &[ArbiterHandle],
        limits: BatchLimits,
    ) -> Self {
        let shards = (0..count.max(1))
            .map(|index| {
                let store = Arc::clone(&store);
                let name = format!("inventory-{index}");
                match arbiters.get(index % arbiters.len().max(1)) {
                    Some(arbiter) => Supervisor::start_in_arbiter(arbiter, move |_| {
                        InventoryShard::new(name, store, limits)
                    }),
                    None => Supervisor::start(move |_| InventoryShard::new(name, store, limits)),
                }
            })
            .collect::<Vec<_>>()
            .into();
        Self { shards }
    }

    pub fn shards(&self) -> &[Addr<InventoryShard>] {
        &self.shards
    }

    /// The shard owning `sku` (SKUs compare without case).
    pub fn shard_for(&self, sku: &str) -> &Addr<InventoryShard> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sku.to_ascii_uppercase().hash(&mut hasher);
        let index = (hasher.finish() % self.shards.len() as u64) as usize;
        &self.shards[index]
    }

    pub async fn reserve(&self, request: ReserveStock) -> Result<Hold, ReserveError> {
        self.shard_for(&request.sku)
            .send(request)
            .await
            .unwrap_or_else(|e| Err(ReserveError::Unavailable(e.to_string())))
    }
}
