//! Whether Postgres and Redis answer: checked by `/ready` and sampled in the background, so
//! `agora_dependency_up` is fresh for alerting even when nothing polls `/ready`.

use std::time::Duration;

use crate::{error::error_chain, hot_state::HotState};

/// How often the background sampler checks the dependencies.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyStatus {
    pub postgres: bool,
    pub redis: bool,
}

impl DependencyStatus {
    pub fn all_up(&self) -> bool {
        self.postgres && self.redis
    }

    /// The names of the dependencies that did not answer.
    pub fn down(&self) -> Vec<&'static str> {
        [("postgres", self.postgres), ("redis", self.redis)]
            .into_iter()
            .filter(|(_, up)| !up)
            .map(|(name, _)| name)
            .collect()
    }
}

/// Asks both dependencies at once, each within `timeout`, and records `agora_dependency_up`.
pub async fn check(
    pool: &deadpool_postgres::Pool,
    hot: &HotState,
    timeout: Duration,
) -> DependencyStatus {
    let (postgres, redis) = futures_util::join!(
        tokio::time::timeout(timeout, check_postgres(pool)),
        tokio::time::timeout(timeout, hot.ping()),
    );
    if let Ok(Err(error)) = &postgres {
        tracing::warn!(error = %error_chain(error.as_ref()), "postgres does not answer");
    }
    if let Ok(Err(error)) = &redis {
        tracing::warn!(%error, "redis does not answer");
    }
    let status = DependencyStatus {
        postgres: matches!(postgres, Ok(Ok(()))),
        redis: matches!(redis, Ok(Ok(()))),
    };
    for (name, up) in [("postgres", status.postgres), ("redis", status.redis)] {
        metrics::gauge!("agora_dependency_up", "dependency" => name).set(f64::from(u8::from(up)));
    }
    status
}

async fn check_postgres(
    pool: &deadpool_postgres::Pool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}

/// Checks the dependencies every [`SAMPLE_INTERVAL`] until the process stops.
pub fn spawn_sampler(pool: deadpool_postgres::Pool, hot: HotState, timeout: Duration) {
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
        loop {
            ticks.tick().await;
            check(&pool, &hot, timeout).await;
        }
    });
}
