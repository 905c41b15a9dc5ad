//! Graceful stop: the registry of actors that must flush before the process exits.
//!
//! Promises: [`ActorRegistry::flush_all`] asks every registered actor to persist its pending
//! writes, concurrently, and returns within its deadline whatever they do; an actor that
//! fails, is gone or is too slow is reported by name, never silently skipped.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Message, Recipient};
use futures_util::future::join_all;

/// Sent by [`ActorRegistry::flush_all`] at shutdown to every registered actor: persist what you
/// buffer and answer how many writes were flushed. The actor keeps running; the process stops
/// after every answer (or the deadline).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<usize, FlushError>")]
pub struct FlushPendingWrites;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FlushError {
    #[error("persisting pending writes failed: {0}")]
    Persist(String),
}

/// How one actor's flush ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushOutcome {
    Flushed { actor: String, writes: usize },
    Failed { actor: String, reason: String },
}

/// A registered actor: its name (for logs) and where to send [`FlushPendingWrites`].
type Member = (String, Recipient<FlushPendingWrites>);

/// The actors to flush at shutdown, by name. Cheap to clone; clones share one list.
#[derive(Clone, Default)]
pub struct ActorRegistry {
    /// Written when an actor starts (any arbiter thread), read once at shutdown.
    members: Arc<Mutex<Vec<Member>>>,
}

impl ActorRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&self, name: impl Into<String>, actor: Recipient<FlushPendingWrites>) {
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.push((name.into(), actor));
    }

    pub fn len(&self) -> usize {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks every registered actor to flush, all at once, each within `deadline`.
    pub async fn flush_all(&self, deadline: Duration) -> Vec<FlushOutcome> {
        let members = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let flushes = members.into_iter().map(|(actor, recipient)| async move {
            let reason =
                match tokio::time::timeout(deadline, recipient.send(FlushPendingWrites)).await {
                    Ok(Ok(Ok(writes))) => {
                        tracing::info!(%actor, writes, "actor flushed");
                        return FlushOutcome::Flushed { actor, writes };
                    }
                    Ok(Ok(Err(error))) => error.to_string(),
                    Ok(Err(mailbox)) => format!("actor unreachable: {mailbox}"),
                    Err(_) => format!("no answer within {deadline:?}"),
                };
            tracing::error!(%actor, %reason, "actor did not flush");
            FlushOutcome::Failed { actor, reason }
        });
        join_all(flushes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context, Handler};

    /// Buffers writes the way a group-committing shard does.
    struct Buffering {
        pending: usize,
        fail: bool,
    }

    impl Actor for Buffering {
        type Context = Context<Self>;
    }

    impl Handler<FlushPendingWrites> for Buffering {
        type Result = Result<usize, FlushError>;

        fn handle(&mut self, _: FlushPendingWrites, _: &mut Context<Self>) -> Self::Result {
            if self.fail {
                return Err(FlushError::Persist("database gone".into()));
            }
            Ok(std::mem::take(&mut self.pending))
        }
    }

    #[actix_web::test]
    async fn every_registered_actor_is_flushed_and_failures_are_named() {
        let registry = ActorRegistry::new();
        let healthy = Buffering {
            pending: 3,
            fail: false,
        }
        .start();
        let broken = Buffering {
            pending: 1,
            fail: true,
        }
        .start();
        registry.register("shard-0", healthy.clone().recipient());
        registry.register("shard-1", broken.recipient());

        let outcomes = registry.flush_all(Duration::from_secs(1)).await;

        assert_eq!(
            outcomes,
            vec![
                FlushOutcome::Flushed {
                    actor: "shard-0".into(),
                    writes: 3
                },
                FlushOutcome::Failed {
                    actor: "shard-1".into(),
                    reason: "persisting pending writes failed: database gone".into()
                },
            ]
        );
        let again = registry.flush_all(Duration::from_secs(1)).await;
        assert_eq!(
            again[0],
            FlushOutcome::Flushed {
                actor: "shard-0".into(),
                writes: 0
            }
        );
    }

    /// Answers only after a second, like a shard stuck on a dead database.
    struct Stuck;

    impl Actor for Stuck {
        type Context = Context<Self>;
    }

    impl Handler<FlushPendingWrites> for Stuck {
        type Result = actix::ResponseFuture<Result<usize, FlushError>>;

        fn handle(&mut self, _: FlushPendingWrites, _: &mut Context<Self>) -> Self::Result {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(1)
            })
        }
    }

    #[actix_web::test]
    async fn a_stuck_actor_is_reported_once_the_deadline_passes() {
        let registry = ActorRegistry::new();
        registry.register("stuck", Stuck.start().recipient());
        let outcomes = registry.flush_all(Duration::from_millis(50)).await;
        assert_eq!(
            outcomes,
            vec![FlushOutcome::Failed {
                actor: "stuck".into(),
                reason: "no answer within 50ms".into()
            }]
        );
    }
}
