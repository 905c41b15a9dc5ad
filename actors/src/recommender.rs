//! The recommender: one supervised actor per process that learns from new paid orders.
//!
//! Every `interval` it asks its [`Learner`] to learn what is new, again and again while there
//! is more (a learning pass counts at most a batch), then waits for the next tick. The learner
//! holds the state (Postgres) and decides who learns (an advisory lock lets one process
//! through at a time), so a restarted actor needs nothing back.
//!
//! Promises: passes never overlap; a panicking pass restarts the actor through its supervisor
//! and learning resumes at the next tick from the learner's cursor.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use actix::{prelude::*, ActorFutureExt, Supervised, Supervisor, WrapFuture};
use futures_util::{future::BoxFuture, FutureExt};

/// Where learning happens. One implementation reads the order event log in Postgres.
pub trait Learner: Send + Sync + 'static {
    /// Learns what is new since the last pass; answers how many orders it counted (0: nothing
    /// new, or another process is learning now).
    fn learn(&self) -> BoxFuture<'static, Result<usize, String>>;
}

pub struct Recommender {
    learner: Arc<dyn Learner>,
    interval: Duration,
    /// True while passes are running, so a slow catch-up is not overlapped by the next tick.
    learning: bool,
}

impl Recommender {
    /// Starts the supervised recommender on the current arbiter.
    pub fn start(learner: Arc<dyn Learner>, interval: Duration) -> Addr<Self> {
        Supervisor::start(move |_| Self {
            learner,
            interval,
            learning: false,
        })
    }

    fn learn(&mut self, ctx: &mut Context<Self>) {
        if self.learning {
            return;
        }
        self.learning = true;
        let learner = Arc::clone(&self.learner);
        let passes = AssertUnwindSafe(async move {
            let mut orders = 0;
            loop {
                match learner.learn().await? {
                    0 => return Ok::<_, String>(orders),
                    counted => orders += counted,
                }
            }
        })
        .catch_unwind();
        ctx.spawn(passes.into_actor(self).map(|outcome, recommender, ctx| {
            recommender.learning = false;
            match outcome {
                Err(_) => {
                    tracing::error!("a learning pass panicked; restarting the recommender");
                    ctx.stop();
                }
                Ok(Err(cause)) => {
                    metrics::counter!("agora_recommendations_learn_errors_total").increment(1);
                    tracing::warn!(%cause, "learning from orders failed; next tick retries");
                }
                Ok(Ok(0)) => {}
                Ok(Ok(orders)) => tracing::debug!(orders, "learned from new orders"),
            }
        }));
    }
}

impl Actor for Recommender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |recommender, ctx| {
            metrics::counter!("agora_actor_messages_total", "actor" => "recommender").increment(1);
            recommender.learn(ctx);
        });
    }
}

impl Supervised for Recommender {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!("agora_actor_restarts_total", "actor" => "recommender").increment(1);
        self.learning = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Has 3 batches to learn, and panics once on its second pass.
    #[derive(Default)]
    struct Batches {
        passes: AtomicUsize,
        learned: AtomicUsize,
    }

    impl Learner for Batches {
        fn learn(&self) -> BoxFuture<'static, Result<usize, String>> {
            let pass = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            if pass == 2 {
                panic!("the learner broke");
            }
            let batch = usize::from(self.learned.load(Ordering::SeqCst) < 3);
            self.learned.fetch_add(batch, Ordering::SeqCst);
            Box::pin(async move { Ok(batch) })
        }
    }

    #[actix_web::test]
    async fn a_panicking_pass_restarts_the_recommender_and_learning_catches_up() {
        let learner = Arc::new(Batches::default());
        let recommender = Recommender::start(learner.clone(), Duration::from_millis(5));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(learner.learned.load(Ordering::SeqCst), 3);
        drop(recommender);
    }
}
