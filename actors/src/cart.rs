//! Live carts: one actor per cart in use in this process, owning the cart's state while it
//! lives, passivated when idle.
//!
//! A cart's source of truth is Postgres, so any process serves any cart and every tab sees the
//! same one. While a cart is in use here, its [`CartActor`] owns it in this process: every
//! change to it runs through the actor one at a time, in arrival order, and is handed the
//! state the previous change left (`S`: what the domain layer keeps of a cart, e.g. the cart
//! as loaded and changed since), returning the state for the next one. So a change can work
//! from memory instead of reading the cart again, a shopper's tabs never queue on a row lock
//! holding pooled connections, and one cart's changes cannot overtake each other.
//!
//! [`LiveCarts`] (supervised registries, one per arbiter; a cart id always maps to the same one)
//! starts a cart's actor on its first change, on the registry's arbiter, and drops it once the
//! cart was idle for [`CartLimits::idle`]: the actor finishes what it was given and stops
//! (passivation), its state with it. [`CartsHandle::forget`] drops a live cart's state after
//! its queued changes (another process changed the cart). Nothing is lost by any of these, or
//! by a restart: the state is only ever a copy of what Postgres holds, which the next change
//! loads again.
//!
//! Promises: at most [`CartLimits::max_live`] carts are live and at most
//! [`CartLimits::max_queued`] changes wait per cart (beyond either, [`CartBusy`] at once, never
//! a growing queue); a change that panics is answered [`CartBusy::Failed`], its cart's state is
//! dropped and the cart takes the next change.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix::{prelude::*, ArbiterHandle, AtomicResponse, Supervised, Supervisor, WrapFuture};
use futures_util::{future::BoxFuture, FutureExt};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How often [`LiveCarts`] looks for idle carts to passivate.
const PASSIVATION_SWEEP: Duration = Duration::from_secs(1);

/// How many carts live and how long.
#[derive(Debug, Clone, Copy)]
pub struct CartLimits {
    /// Most carts with a live actor in this process (shared evenly by the registries).
    pub max_live: usize,
    /// Most changes sent to one cart and not finished (the running one included).
    pub max_queued: usize,
    /// A cart without a change for this long is passivated.
    pub idle: Duration,
}

/// Why a change was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CartBusy {
    #[error("too many carts are live in this process")]
    TooManyCarts,
    #[error("too many changes are waiting for this cart")]
    TooManyChanges,
    #[error("the change panicked or its cart stopped")]
    Failed,
}

/// What a cart's actor may keep of it between changes.
pub trait CartState: Send + Unpin + 'static {
    /// How far the cart had got when this state was taken or last changed (the cart's
    /// version), so that news of a version made elsewhere drops only an older state.
    fn version(&self) -> i64;
}

/// One change to a cart, run to completion before the cart's next one: handed the state the
/// previous change left (`None` when there is none yet, or it was dropped), it returns the
/// state for the next.
type Change<S> = Box<dyn FnOnce(Option<S>) -> BoxFuture<'static, Option<S>> + Send>;

/// Sent by [`LiveCarts`] to a cart's actor.
#[derive(Message)]
#[rtype(result = "()")]
struct RunChange<S: CartState> {
    change: Change<S>,
    done: oneshot::Sender<Result<(), CartBusy>>,
}

/// Sent by [`LiveCarts`] (for [`CartsHandle::forget`]) to a cart's actor: once the changes
/// before this are done, drop the state if it is older than `version`.
#[derive(Message)]
#[rtype(result = "()")]
struct DropState {
    version: i64,
}

/// The actor that owns one cart in this process while it is in use.
pub struct CartActor<S: CartState> {
    cart: Uuid,
    state: Option<S>,
}

impl<S: CartState> Actor for CartActor<S> {
    type Context = Context<Self>;
}

impl<S: CartState> Supervised for CartActor<S> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!("agora_actor_restarts_total", "actor" => "cart").increment(1);
        tracing::warn!(cart = %self.cart, "cart actor restarting");
        self.state = None;
    }
}

impl<S: CartState> Handler<RunChange<S>> for CartActor<S> {
    // Atomic: the actor handles no other message until this change has finished.
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, message: RunChange<S>, _: &mut Context<Self>) -> Self::Result {
        metrics::counter!("agora_actor_messages_total", "actor" => "cart").increment(1);
        let RunChange { change, done } = message;
        let cart = self.cart;
        let run = AssertUnwindSafe(change(self.state.take())).catch_unwind();
        let finish = run.into_actor(self).map(move |outcome, actor, _| {
            let answer = match outcome {
                Ok(state) => {
                    actor.state = state;
                    Ok(())
                }
                Err(_) => {
                    tracing::error!(%cart, "a cart change panicked");
                    Err(CartBusy::Failed)
                }
            };
            let _ = done.send(answer);
        });
        AtomicResponse::new(Box::pin(finish))
    }
}

impl<S: CartState> Handler<DropState> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, message: DropState, _: &mut Context<Self>) {
        if self
            .state
            .as_ref()
            .is_some_and(|state| state.version() < message.version)
        {
            self.state = None;
        }
    }
}

/// A live cart as [`LiveCarts`] keeps it.
struct Live<S: CartState> {
    actor: Addr<CartActor<S>>,
    /// Changes sent and not yet finished; the actor's mailbox is never trusted to bound them.
    queued: Arc<AtomicUsize>,
    last_change: Instant,
}

/// One change counted in [`Live::queued`] until it finishes, panics or is dropped unrun.
struct Queued(Arc<AtomicUsize>);

impl Queued {
    fn count(queued: &Arc<AtomicUsize>) -> Self {
        queued.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(queued))
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sent by HTTP handlers (through [`CartsHandle::change`]) to run a change on a cart.
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<Result<(), CartBusy>>, CartBusy>")]
struct ChangeCart<S: CartState> {
    cart: Uuid,
    change: Change<S>,
}

/// Sent through [`CartsHandle::forget`] when a cart changed elsewhere (another process).
#[derive(Message)]
#[rtype(result = "()")]
struct ForgetCart {
    cart: Uuid,
    version: i64,
}

/// Asked through [`CartsHandle::live`]: how many carts a registry holds live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountLiveCarts;

/// A registry of live carts: those of this process whose ids map to it.
pub struct LiveCarts<S: CartState> {
    limits: CartLimits,
    live: HashMap<Uuid, Live<S>>,
    /// Live carts of every registry of the process, for the `agora_carts_live` gauge.
    live_in_process: Arc<AtomicUsize>,
}

impl<S: CartState> LiveCarts<S> {
    /// Starts one supervised registry per arbiter (on the current one when none is given),
    /// sharing `limits.max_live` evenly.
    pub fn start(limits: CartLimits, arbiters: &[ArbiterHandle]) -> CartsHandle<S> {
        let registries = arbiters.len().max(1);
        let limits = CartLimits {
            max_live: limits.max_live.div_ceil(registries),
            ..limits
        };
        let live_in_process = Arc::new(AtomicUsize::new(0));
        let start = |live_in_process: Arc<AtomicUsize>| {
            move |_: &mut Context<Self>| Self {
                limits,
                live: HashMap::new(),
                live_in_process,
            }
        };
        let registries = if arbiters.is_empty() {
            vec![Supervisor::start(start(Arc::clone(&live_in_process)))]
        } else {
            arbiters
                .iter()
                .map(|arbiter| {
                    Supervisor::start_in_arbiter(arbiter, start(Arc::clone(&live_in_process)))
                })
                .collect()
        };
        CartsHandle(registries)
    }

    fn passivate_idle(&mut self) {
        let idle = self.limits.idle;
        let before = self.live.len();
        // Dropping the address lets the actor finish its queue and stop.
        self.live.retain(|_, live| {
            live.queued.load(Ordering::Acquire) > 0 || live.last_change.elapsed() < idle
        });
        let passivated = before - self.live.len();
        if passivated > 0 {
            metrics::counter!("agora_carts_passivated_total").increment(passivated as u64);
        }
        self.count_live(before);
    }

    /// Sets this registry's count to `live` and the process's gauge to the sum.
    fn count_live(&mut self, before: usize) {
        let now = self.live.len();
        let total = if now >= before {
            self.live_in_process
                .fetch_add(now - before, Ordering::AcqRel)
                + (now - before)
        } else {
            self.live_in_process
                .fetch_sub(before - now, Ordering::AcqRel)
                - (before - now)
        };
        metrics::gauge!("agora_carts_live").set(total as f64);
    }
}

impl<S: CartState> Actor for LiveCarts<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PASSIVATION_SWEEP.min(self.limits.idle), |carts, _| {
            carts.passivate_idle()
        });
    }
}

impl<S: CartState> Supervised for LiveCarts<S> {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!("agora_actor_restarts_total", "actor" => "live_carts").increment(1);
        // The carts' actors finish what they were given and stop; the next change starts anew.
        let before = self.live.len();
        self.live.clear();
        self.count_live(before);
    }
}

impl<S: CartState> Handler<ChangeCart<S>> for LiveCarts<S> {
    type Result = Result<oneshot::Receiver<Result<(), CartBusy>>, CartBusy>;

    fn handle(&mut self, message: ChangeCart<S>, _: &mut Context<Self>) -> Self::Result {
        metrics::counter!("agora_actor_messages_total", "actor" => "live_carts").increment(1);
        if !self.live.contains_key(&message.cart) && self.live.len() >= self.limits.max_live {
            return Err(CartBusy::TooManyCarts);
        }
        let cart = message.cart;
        let before = self.live.len();
        let live = self.live.entry(cart).or_insert_with(|| Live {
            actor: Supervisor::start(move |_| CartActor { cart, state: None }),
            queued: Arc::new(AtomicUsize::new(0)),
            last_change: Instant::now(),
        });
        if live.queued.load(Ordering::Acquire) >= self.limits.max_queued {
            return Err(CartBusy::TooManyChanges);
        }
        live.last_change = Instant::now();
        let queued = Queued::count(&live.queued);
        let change = message.change;
        let (done, answer) = oneshot::channel();
        let run = RunChange {
            change: Box::new(move |state| {
                Box::pin(async move {
                    let state = change(state).await;
                    drop(queued);
                    state
                })
            }),
            done,
        };
        // The mailbox is bounded by `queued` above, so this never waits long; if the actor is
        // gone, the dropped `done` answers `Failed`.
        live.actor.do_send(run);
        self.count_live(before);
        Ok(answer)
    }
}

impl<S: CartState> Handler<ForgetCart> for LiveCarts<S> {
    type Result = ();

    fn handle(&mut self, message: ForgetCart, _: &mut Context<Self>) {
        if let Some(live) = self.live.get(&message.cart) {
            live.actor.do_send(DropState {
                version: message.version,
            });
        }
    }
}

impl<S: CartState> Handler<CountLiveCarts> for LiveCarts<S> {
    type Result = usize;

    fn handle(&mut self, _: CountLiveCarts, _: &mut Context<Self>) -> usize {
        self.live.len()
    }
}

/// How HTTP handlers reach the live carts.
pub struct CartsHandle<S: CartState>(Vec<Addr<LiveCarts<S>>>);

impl<S: CartState> Clone for CartsHandle<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S: CartState> CartsHandle<S> {
    /// Runs `change` on `cart`'s actor, after the cart's earlier changes, handing it the
    /// cart's state and keeping the state it returns; answers its result.
    pub async fn change<T, F, Fut>(&self, cart: Uuid, change: F) -> Result<T, CartBusy>
    where
        T: Send + 'static,
        F: FnOnce(Option<S>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (T, Option<S>)> + Send + 'static,
    {
        let (result_tx, result_rx) = oneshot::channel();
        let change: Change<S> = Box::new(move |state| {
            Box::pin(async move {
                let (result, state) = change(state).await;
                let _ = result_tx.send(result);
                state
            })
        });
        let done = self
            .registry_of(cart)
            .send(ChangeCart { cart, change })
            .await
            .map_err(|_| CartBusy::Failed)??;
        done.await.map_err(|_| CartBusy::Failed)??;
        result_rx.await.map_err(|_| CartBusy::Failed)
    }

    /// The cart reached `version` (possibly in another process): after the changes already
    /// sent to it, its state is dropped if older, so its next change loads the cart again.
    /// Nothing when the cart is not live here.
    pub fn forget_older(&self, cart: Uuid, version: i64) {
        self.registry_of(cart).do_send(ForgetCart { cart, version });
    }

    /// How many carts are live in this process.
    pub async fn live(&self) -> usize {
        let counts = self.0.iter().map(|registry| registry.send(CountLiveCarts));
        futures_util::future::join_all(counts)
            .await
            .into_iter()
            .map(|count| count.unwrap_or(0))
            .sum()
    }

    /// The registry that owns `cart` (UUIDv7's low bits are random).
    fn registry_of(&self, cart: Uuid) -> &Addr<LiveCarts<S>> {
        &self.0[(cart.as_u128() % self.0.len() as u128) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CartState for u32 {
        fn version(&self) -> i64 {
            i64::from(*self)
        }
    }

    /// A change that keeps the cart's state as it found it.
    fn keeping<T: Send + 'static>(
        change: impl std::future::Future<Output = T> + Send + 'static,
    ) -> impl FnOnce(Option<u32>) -> BoxFuture<'static, (T, Option<u32>)> + Send + 'static {
        move |state| Box::pin(async move { (change.await, state) })
    }

    fn limits() -> CartLimits {
        CartLimits {
            max_live: 2,
            max_queued: 3,
            idle: Duration::from_millis(200),
        }
    }

    #[actix::test]
    async fn changes_to_one_cart_run_one_at_a_time_in_arrival_order() {
        let carts = LiveCarts::<u32>::start(limits(), &[]);
        let cart = Uuid::new_v4();
        let running = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let changes = (0..3).map(|n| {
            let (running, order) = (Arc::clone(&running), Arc::clone(&order));
            carts.change(
                cart,
                keeping(async move {
                    let overlapping = running.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    order.lock().expect("order").push(n);
                    running.fetch_sub(1, Ordering::SeqCst);
                    overlapping
                }),
            )
        });
        let overlaps = futures_util::future::join_all(changes).await;
        assert_eq!(overlaps, vec![Ok(0), Ok(0), Ok(0)]);
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2]);
    }

    #[actix::test]
    async fn with_registries_on_several_arbiters_one_carts_changes_still_run_one_at_a_time() {
        let arbiters: Vec<Arbiter> = (0..2).map(|_| Arbiter::new()).collect();
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
        let limits = CartLimits {
            max_live: 10,
            ..limits()
        };
        let carts = LiveCarts::<u32>::start(limits, &handles);
        let running = Arc::new(AtomicUsize::new(0));
        let cart = Uuid::now_v7();
        let changes = (0..3).map(|_| {
            let running = Arc::clone(&running);
            carts.change(
                cart,
                keeping(async move {
                    let overlapping = running.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    overlapping
                }),
            )
        });
        let overlaps = futures_util::future::join_all(changes).await;
        assert_eq!(overlaps, vec![Ok(0), Ok(0), Ok(0)]);
        carts
            .change(Uuid::now_v7(), keeping(async {}))
            .await
            .expect("another cart");
        assert_eq!(carts.live().await, 2);
        for arbiter in arbiters {
            arbiter.stop();
        }
    }

    #[actix::test]
    async fn changes_to_different_carts_run_side_by_side() {
        let carts = LiveCarts::<u32>::start(limits(), &[]);
        let running = Arc::new(AtomicUsize::new(0));
        let changes = (0..2).map(|_| {
            let running = Arc::clone(&running);
            carts.change(
                Uuid::new_v4(),
                keeping(async move {
                    running.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    running.load(Ordering::SeqCst)
                }),
            )
        });
        let seen = futures_util::future::join_all(changes).await;
        assert_eq!(seen, vec![Ok(2), Ok(2)]);
    }

    #[actix::test]
    async fn a_cart_with_too_many_waiting_changes_or_one_too_many_carts_is_refused_at_once() {
        let carts = LiveCarts::<u32>::start(limits(), &[]);
        let cart = Uuid::new_v4();
        let slow = || tokio::time::sleep(Duration::from_millis(100));
        let waiting: Vec<_> = (0..3)
            .map(|_| carts.change(cart, keeping(slow())))
            .collect();
        let queued = futures_util::future::join_all(waiting);
        let refused = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let one_more = carts.change(cart, keeping(async {})).await;
            carts
                .change(Uuid::new_v4(), keeping(async {}))
                .await
                .expect("a second cart fits");
            let third_cart = carts.change(Uuid::new_v4(), keeping(async {})).await;
            (one_more, third_cart)
        };
        let (queued, (one_more, third_cart)) = futures_util::join!(queued, refused);
        assert!(queued.iter().all(Result::is_ok));
        assert_eq!(one_more, Err(CartBusy::TooManyChanges));
        assert_eq!(third_cart, Err(CartBusy::TooManyCarts));
    }

    #[actix::test]
    async fn an_idle_cart_is_passivated_and_its_next_change_starts_it_again() {
        let carts = LiveCarts::<u32>::start(limits(), &[]);
        let cart = Uuid::new_v4();
        carts
            .change(cart, keeping(async {}))
            .await
            .expect("first change");
        assert_eq!(carts.live().await, 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(carts.live().await, 0);
        assert_eq!(carts.change(cart, keeping(async { 7 })).await, Ok(7));
        assert_eq!(carts.live().await, 1);
    }

    #[actix::test]
    async fn a_panicking_change_is_answered_failed_and_the_cart_takes_the_next_one() {
        let carts = LiveCarts::<u32>::start(limits(), &[]);
        let cart = Uuid::new_v4();
        let panicking = carts
            .change(
                cart,
                keeping(async {
                    panic!("a change that panics");
                }),
            )
            .await;
        assert_eq!(panicking, Err::<(), _>(CartBusy::Failed));
        assert_eq!(
            carts.change(cart, keeping(async { "next" })).await,
            Ok("next")
        );
    }

    #[actix::test]
    async fn a_carts_state_is_kept_between_its_changes_and_dropped_when_outdated_or_passivated() {
        let carts = LiveCarts::<u32>::start(limits(), &[]);
        let cart = Uuid::new_v4();
        let count = || {
            carts.change(cart, |state: Option<u32>| async move {
                let next = state.map_or(1, |seen| seen + 1);
                (next, Some(next))
            })
        };
        assert_eq!(count().await, Ok(1));
        assert_eq!(count().await, Ok(2));
        carts.forget_older(cart, 2);
        assert_eq!(count().await, Ok(3), "not older: kept");
        carts.forget_older(cart, 4);
        assert_eq!(count().await, Ok(1), "older: forgotten");
        assert_eq!(count().await, Ok(2));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(count().await, Ok(1), "passivated");
        let panicking = carts
            .change(cart, |_: Option<u32>| async {
                panic!("a change that panics")
            })
            .await;
        assert_eq!(panicking, Err::<(), _>(CartBusy::Failed));
        assert_eq!(count().await, Ok(1), "dropped by the panic");
    }
}
