//! Upkeep: erasing what retention lets go, in every process every
//! `accounts.upkeep_interval_secs`, a bounded batch per statement (again at once while a batch
//! comes back full): deleted shoppers' orders lose their contact email and shipping address
//! after `accounts.order_retention_days` (`shoppers::erasure`), sent mail leaves the outbox
//! after `mail.keep_sent_days` (`mail::purge_sent`). Each statement is idempotent, so processes
//! running it at once only share the work.

use std::{sync::Arc, time::Duration};

use futures_util::future::BoxFuture;

use crate::{configuration::Settings, error::Error, mail, shoppers::erasure};

#[derive(Clone)]
struct Upkeep {
    pool: deadpool_postgres::Pool,
    order_retention_days: u32,
    keep_sent_days: u32,
}

impl Upkeep {
    /// One batch of each; answers whether either was full.
    async fn erase_batch(&self) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let erased =
            erasure::erase_expired_order_contacts(&*client, self.order_retention_days).await?;
        let purged = mail::purge_sent(&*client, self.keep_sent_days).await?;
        if erased > 0 || purged > 0 {
            tracing::info!(erased, purged, "upkeep erased expired data");
        }
        Ok(erased >= erasure::ERASE_BATCH.unsigned_abs() || purged >= mail::sender::purge_batch())
    }
}

impl agora_actors::periodic::Chore for Upkeep {
    fn name(&self) -> &'static str {
        "upkeep"
    }

    fn pass(&self) -> BoxFuture<'static, Result<bool, String>> {
        let upkeep = self.clone();
        Box::pin(async move {
            upkeep
                .erase_batch()
                .await
                .map_err(|error| crate::error::error_chain(&error))
        })
    }
}

/// Starts this process's upkeep on the current arbiter.
pub fn start(pool: deadpool_postgres::Pool, settings: &Settings) {
    agora_actors::periodic::Periodic::start(
        Arc::new(Upkeep {
            pool,
            order_retention_days: settings.accounts.order_retention_days,
            keep_sent_days: settings.mail.keep_sent_days,
        }),
        Duration::from_secs(settings.accounts.upkeep_interval_secs),
        8,
    );
}
