//! Background chores: one supervised actor per chore and process that runs the chore's passes
//! every `interval`, again at once while a pass says there is more (each pass does a bounded
//! batch), then waits for the next tick. The server hands it what to run (sending the mail of
//! the outbox, erasing what accounts' retention lets go); the chore keeps its state in
//! Postgres and decides who does what (row locks), so a restarted actor needs nothing back.
//!
//! Promises: passes of one chore never overlap in a process; a panicking pass restarts the
//! actor through its supervisor (counted in `agora_actor_restarts_total{actor=<name>}`) and
//! the chore resumes at the next tick; a failing pass is counted in
//! `agora_chore_errors_total{chore=<name>}` and retried at the next tick.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use actix::{prelude::*, ActorFutureExt, Supervised, Supervisor, WrapFuture};
use futures_util::{future::BoxFuture, FutureExt};

/// What a chore does in one pass.
pub trait Chore: Send + Sync + 'static {
    /// The chore's name in logs and metric labels (a fixed, short snake_case word).
    fn name(&self) -> &'static str;

    /// Does one bounded batch of the work; answers whether there is more to do right away
    /// (true: the next pass runs at once, not at the next tick).
    fn pass(&self) -> BoxFuture<'static, Result<bool, String>>;
}

pub struct Periodic {
    chore: Arc<dyn Chore>,
    interval: Duration,
    /// Most passes run back to back before waiting for a tick, so a chore that always has
    /// more (a broken SMTP server failing every message) still yields between ticks.
    max_passes_per_tick: usize,
    /// True while passes run, so a slow catch-up is not overlapped by the next tick.
    running: bool,
}

impl Periodic {
    /// Starts the supervised chore on the current arbiter.
    pub fn start(
        chore: Arc<dyn Chore>,
        interval: Duration,
        max_passes_per_tick: usize,
    ) -> Addr<Self> {
        Supervisor::start(move |_| Self {
            chore,
            interval,
            max_passes_per_tick: max_passes_per_tick.max(1),
            running: false,
        })
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let chore = Arc::clone(&self.chore);
        let max_passes = self.max_passes_per_tick;
        let passes = AssertUnwindSafe(async move {
            for _ in 0..max_passes {
                if !chore.pass().await? {
                    break;
                }
            }
            Ok::<_, String>(())
        })
        .catch_unwind();
        ctx.spawn(passes.into_actor(self).map(|outcome, periodic, ctx| {
            periodic.running = false;
            let name = periodic.chore.name();
            match outcome {
                Err(_) => {
                    tracing::error!(chore = name, "a pass panicked; restarting the chore");
                    ctx.stop();
                }
                Ok(Err(cause)) => {
                    metrics::counter!("agora_chore_errors_total", "chore" => name).increment(1);
                    tracing::warn!(chore = name, %cause, "a pass failed; the next tick retries");
                }
                Ok(Ok(())) => {}
            }
        }));
    }
}

impl Actor for Periodic {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |periodic, ctx| {
            metrics::counter!("agora_actor_messages_total", "actor" => periodic.chore.name())
                .increment(1);
            periodic.run(ctx);
        });
    }
}

impl Supervised for Periodic {
    fn restarting(&mut self, _: &mut Context<Self>) {
        metrics::counter!("agora_actor_restarts_total", "actor" => self.chore.name()).increment(1);
        self.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Has 5 batches of work, panics on its second pass and fails on its fourth.
    #[derive(Default)]
    struct Batches {
        passes: AtomicUsize,
        done: AtomicUsize,
    }

    impl Chore for Batches {
        fn name(&self) -> &'static str {
            "test_chore"
        }

        fn pass(&self) -> BoxFuture<'static, Result<bool, String>> {
            let pass = self.passes.fetch_add(1, Ordering::SeqCst) + 1;
            if pass == 2 {
                panic!("the chore broke");
            }
            if pass == 4 {
                return Box::pin(async { Err("the database is away".to_owned()) });
            }
            let left = self.done.load(Ordering::SeqCst) < 5;
            if left {
                self.done.fetch_add(1, Ordering::SeqCst);
            }
            Box::pin(async move { Ok(left) })
        }
    }

    #[actix_web::test]
    async fn a_chore_survives_panics_and_failures_and_finishes_its_work() {
        let chore = Arc::new(Batches::default());
        let periodic = Periodic::start(chore.clone(), Duration::from_millis(5), 2);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(chore.done.load(Ordering::SeqCst), 5);
        drop(periodic);
    }
}
