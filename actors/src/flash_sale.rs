//! Flash-sale queues: one supervised actor per live sale, run by whichever process leads it.
//!
//! Every process runs a [`SaleDirector`]. It looks for sales that are due and, for each, tries
//! to take the sale's leadership lease (in Redis, through the [`SaleKeeper`]); the process that
//! gets it starts a supervised [`SaleQueue`] for the sale. The queue renews the lease every
//! tick and asks the keeper for one step of the sale (open it when due, expire admissions,
//! admit the next tickets, announce, sell out or close). If the queue panics, its supervisor
//! restarts it and it carries on from the keeper's state; if its process dies, the lease lapses
//! and another process's director takes the sale over.
//!
//! Promises: at most one queue per sale per process; a queue that loses its lease stops
//! stepping at once; steps of one queue never overlap. The keeper, not the actor, holds the
//! sale's state (Postgres and Redis), so a restarted or moved queue needs nothing back — and
//! a step must be safe even if two processes briefly believe they lead (the keeper locks).

use std::{collections::HashMap, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use actix::{prelude::*, ActorFutureExt, Supervised, Supervisor, WrapFuture};
use futures_util::{future::BoxFuture, FutureExt};
use uuid::Uuid;

/// Where a sale stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaleProgress {
    /// Scheduled or open: keep stepping.
    Live,
    /// Sold out or closed: the queue ends.
    Finished,
}

/// The sale state and leadership a queue works through. One implementation talks to Postgres
/// and Redis; tests may use another.
pub trait SaleKeeper: Send + Sync + 'static {
    /// Sales that should have a queue now (scheduled to start soon, or open).
    fn due_sales(&self) -> BoxFuture<'static, Result<Vec<Uuid>, String>>;
    /// Takes or renews this process's lease on leading `sale`; `false` when another leads it.
    fn lead(&self, sale: Uuid) -> BoxFuture<'static, Result<bool, String>>;
    /// Stops leading `sale`: gives the lease up (if still held, so another process need not
    /// wait for it to lapse) and forgets what this process kept about it.
    fn resign(&self, sale: Uuid) -> BoxFuture<'static, ()>;
    /// One step of the sale's queue.
    fn step(self: Arc<Self>, sale: Uuid) -> BoxFuture<'static, Result<SaleProgress, String>>;
}

/// How often queues step and directors look for due sales.
#[derive(Debug, Clone, Copy)]
pub struct QueueTiming {
    pub tick: Duration,
    pub director_interval: Duration,
}

/// Sent by a queue to its director when it stops leading its sale (finished or lease lost).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct QueueEnded {
    pub sale: Uuid,
}

pub struct SaleQueue {
    sale: Uuid,
    keeper: Arc<dyn SaleKeeper>,
    tick: Duration,
    director: Recipient<QueueEnded>,
    /// True while a step is in flight, so a slow step is not overlapped by the next tick.
    stepping: bool,
    /// Set once the sale finished or the lease was lost; a restart then does nothing until
    /// the director drops the queue.
    ended: bool,
}

impl SaleQueue {
    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.stepping || self.ended {
            return;
        }
        self.stepping = true;
        let (keeper, sale) = (Arc::clone(&self.keeper), self.sale);
        // A panic inside the keeper is caught so the arbiter survives; the queue then stops
        // and its supervisor restarts it.
        let work = AssertUnwindSafe(async move {
            if !keeper.lead(sale).await? {
                return Ok(None);
            }
            Arc::clone(&keeper).step(sale).await.map(Some)
        })
        .catch_unwind();
        ctx.spawn(work.into_actor(self).map(|outcome, queue, ctx| {
            queue.stepping = false;
            match outcome {
                Err(_) => {
                    tracing::error!(sale = %queue.sale, "flash-sale queue step panicked; restarting the queue");
                    ctx.stop();
                }
                Ok(Err(cause)) => {
                    metrics::counter!("agora_flash_sale_step_errors_total").increment(1);
                    tracing::warn!(sale = %queue.sale, %cause, "flash-sale queue step failed; next tick retries");
                }
                Ok(Ok(Some(SaleProgress::Live))) => {}
                Ok(Ok(Some(SaleProgress::Finished))) => queue.end(),
                Ok(Ok(None)) => {
                    tracing::info!(sale = %queue.sale, "another process leads this flash sale now");
                    queue.end();
                }
            }
        }));
    }

    fn end(&mut self) {
        let (keeper, sale) = (Arc::clone(&self.keeper), self.sale);
        actix::spawn(async move { keeper.resign(sale).await });
        self.ended = true;
        self.director.do_send(QueueEnded { sale: self.sale });
    }
}

impl Actor for SaleQueue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.ended {
            return;
        }
        metrics::gauge!("agora_flash_sale_queues_led").increment(1.0);
        tracing::info!(sale = %self.sale, "leading a flash-sale queue");
        self.step(ctx);
        ctx.run_interval(self.tick, |queue, ctx| {
            metrics::counter!("agora_actor_messages_total", "actor" => "flash_sale_queue")
                .increment(1);
            queue.step(ctx);
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if !self.ended {
            metrics::gauge!("agora_flash_sale_queues_led").decrement(1.0);
        }
    }
}

impl Supervised for SaleQueue {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if self.ended {
            metrics::gauge!("agora_flash_sale_queues_led").decrement(1.0);
            return;
        }
        metrics::counter!("agora_actor_restarts_total", "actor" => "flash_sale_queue").increment(1);
        tracing::warn!(sale = %self.sale, "flash-sale queue restarting");
        self.stepping = false;
    }
}

/// One per process: starts a queue for each due sale whose lease this process gets.
pub struct SaleDirector {
    keeper: Arc<dyn SaleKeeper>,
    timing: QueueTiming,
    /// The queues this process runs, by sale; dropping an address lets a finished queue go.
    queues: HashMap<Uuid, Addr<SaleQueue>>,
    /// True while a look for due sales is in flight.
    looking: bool,
}

impl SaleDirector {
    pub fn new(keeper: Arc<dyn SaleKeeper>, timing: QueueTiming) -> Self {
        Self {
            keeper,
            timing,
            queues: HashMap::new(),
            looking: false,
        }
    }

    /// Starts the supervised director on the current arbiter.
    pub fn start_supervised(self) -> Addr<Self> {
        Supervisor::start(move |_| self)
    }

    fn look(&mut self, ctx: &mut Context<Self>) {
        if self.looking {
            return;
        }
        self.looking = true;
        let keeper = Arc::clone(&self.keeper);
        let running: Vec<Uuid> = self.queues.keys().copied().collect();
        let work = async move {
            let due = keeper.due_sales().await?;
            let mut won = Vec::new();
            for sale in due.into_iter().filter(|sale| !running.contains(sale)) {
                if keeper.lead(sale).await? {
                    won.push(sale);
                }
            }
            Ok::<_, String>(won)
        };
        ctx.spawn(work.into_actor(self).map(|outcome, director, ctx| {
            director.looking = false;
            match outcome {
                Ok(won) => {
                    for sale in won {
                        let (keeper, tick) = (Arc::clone(&director.keeper), director.timing.tick);
                        let me = ctx.address().recipient();
                        let queue = Supervisor::start(move |_| SaleQueue {
                            sale,
                            keeper,
                            tick,
                            director: me,
                            stepping: false,
                            ended: false,
                        });
                        director.queues.insert(sale, queue);
                    }
                }
                Err(cause) => {
                    tracing::warn!(%cause, "looking for due flash sales failed; retrying");
                }
            }
        }));
    }
}

impl Actor for SaleDirector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.look(ctx);
        ctx.run_interval(self.timing.director_interval, |director, ctx| {
            director.look(ctx)
        });
    }
}

impl Supervised for SaleDirector {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!("agora_actor_restarts_total", "actor" => "flash_sale_director")
            .increment(1);
        self.looking = false;
    }
}

impl Handler<QueueEnded> for SaleDirector {
    type Result = ();

    fn handle(&mut self, ended: QueueEnded, _: &mut Context<Self>) {
        self.queues.remove(&ended.sale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A keeper whose second step panics and whose fifth finishes the sale.
    #[derive(Default)]
    struct Flaky {
        steps: AtomicUsize,
        panicked: AtomicBool,
    }

    impl SaleKeeper for Flaky {
        fn due_sales(&self) -> BoxFuture<'static, Result<Vec<Uuid>, String>> {
            Box::pin(async { Ok(vec![Uuid::nil()]) })
        }
        fn lead(&self, _: Uuid) -> BoxFuture<'static, Result<bool, String>> {
            Box::pin(async { Ok(true) })
        }
        fn resign(&self, _: Uuid) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn step(self: Arc<Self>, _: Uuid) -> BoxFuture<'static, Result<SaleProgress, String>> {
            let step = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
            if step == 2 && !self.panicked.swap(true, Ordering::SeqCst) {
                panic!("the keeper broke");
            }
            Box::pin(async move {
                Ok(if step >= 5 {
                    SaleProgress::Finished
                } else {
                    SaleProgress::Live
                })
            })
        }
    }

    #[actix_web::test]
    async fn a_panicking_queue_is_restarted_and_steps_on_until_the_sale_finishes() {
        let keeper = Arc::new(Flaky::default());
        let director = SaleDirector::new(
            keeper.clone(),
            QueueTiming {
                tick: Duration::from_millis(5),
                director_interval: Duration::from_secs(60),
            },
        )
        .start_supervised();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            keeper.panicked.load(Ordering::SeqCst),
            "the second step panicked"
        );
        // Stepping went on past the panic and stopped at the finishing step.
        assert_eq!(keeper.steps.load(Ordering::SeqCst), 5);
        drop(director);
    }
}
