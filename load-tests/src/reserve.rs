//! `reserve-bench`: stock reservations on one hot SKU, through the inventory shards (group
//! commit) and the common way (one transaction with `SELECT … FOR UPDATE` per reservation), on
//! the same database in the same run.
//!
//! Both are driven open-loop: requests are started at a fixed rate whatever the answers, as a
//! crowd would send them, with at most `MAX_IN_FLIGHT` outstanding (beyond it a request counts
//! as `shed`). Latency is from start to answer.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use agora::{hot_state::HotState, inventory::PgStockStore, stock_counters::StockCounters};
use agora_actors::inventory::{BatchLimits, InventoryShards, ReserveError, ReserveStock};
use anyhow::Context;
use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::browse::{percentiles, Percentiles};

/// Most reservations outstanding at once; more are shed instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 2000;
/// Units on hand of the benchmark SKU: enough that no run sells out.
const STOCK: i32 = 100_000_000;

#[derive(Debug, Serialize)]
pub struct Run {
    pub way: &'static str,
    pub offered_per_sec: u32,
    pub held: usize,
    pub shed: usize,
    pub failed: usize,
    pub held_per_sec: f64,
    /// From start to answer, of the reservations held.
    pub latency_ms: Percentiles,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub runs: Vec<Run>,
    /// Group commit's reservations per second over the common way's.
    pub throughput_ratio: f64,
}

/// Creates a seller, product and SKU with ample stock straight in the database.
async fn hot_sku(pool: &deadpool_postgres::Pool) -> anyhow::Result<String> {
    let client = pool.get().await?;
    let suffix = Uuid::new_v4().simple().to_string();
    let sku = format!("BENCH-{}", &suffix[..12]);
    let seller = Uuid::now_v7();
    let product = Uuid::now_v7();
    client
        .batch_execute(&format!(
            "INSERT INTO sellers (id, name, email, api_key_hash)
                 VALUES ('{seller}', 'Bench', 'bench-{suffix}@bench.example', sha256('{suffix}'::bytea));
             INSERT INTO products (id, seller_id, default_locale, base_currency)
                 VALUES ('{product}', '{seller}', 'en', 'EUR');
             INSERT INTO variants (id, product_id, position, sku, stock_on_hand)
                 VALUES ('{}', '{product}', 0, '{sku}', {STOCK});",
            Uuid::now_v7()
        ))
        .await?;
    Ok(sku)
}

/// The common way: one transaction per reservation, locking the stock row.
async fn reserve_with_row_lock(pool: &deadpool_postgres::Pool, sku: &str) -> Result<(), String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let row = tx
        .query_one(
            "SELECT id, stock_on_hand - held - sold FROM variants WHERE sku = $1 FOR UPDATE",
            &[&sku],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (variant, available): (Uuid, i32) = (row.get(0), row.get(1));
    if available < 1 {
        return Err("insufficient stock".into());
    }
    tx.execute(
        "INSERT INTO stock_holds (id, variant_id, quantity, owner, expires_at)
         VALUES ($1, $2, 1, 'bench', now() + interval '10 minutes')",
        &[&Uuid::now_v7(), &variant],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.execute(
        "UPDATE variants SET held = held + 1 WHERE id = $1",
        &[&variant],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

async fn drive<F, Fut>(way: &'static str, rate: u32, duration: Duration, reserve: F) -> Run
where
    F: Fn() -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut shed = 0;
    while started.elapsed() < duration {
        ticks.tick().await;
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            shed += 1;
            continue;
        };
        let reserve = reserve.clone();
        tasks.push(actix::spawn(async move {
            let sent = Instant::now();
            let outcome = reserve().await;
            drop(slot);
            (outcome, sent.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok((Ok(()), ms)) => latencies.push(ms),
            _ => failed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Run {
        way,
        offered_per_sec: rate,
        held: latencies.len(),
        shed,
        failed,
        held_per_sec: latencies.len() as f64 / elapsed,
        latency_ms: percentiles(latencies),
    }
}

pub async fn run(database_url: &str, rate: u32, duration: Duration) -> anyhow::Result<Report> {
    let mut settings = agora::configuration::Settings::load()?;
    settings.database.url = secrecy::SecretString::from(database_url.to_owned());
    settings.database.max_connections = 32;
    agora::db::migrate(&settings.database)
        .await
        .context("migrating the benchmark database")?;
    let pool = agora::db::build_pool(&settings.database)?;

    let sku = hot_sku(&pool).await?;
    let shards = InventoryShards::start(
        Arc::new(PgStockStore::new(
            pool.clone(),
            StockCounters::new(HotState::new(&settings.redis)?),
        )),
        settings.inventory.shards,
        &[],
        BatchLimits {
            max_batch: settings.inventory.batch_max,
            max_wait: Duration::from_millis(settings.inventory.batch_max_wait_ms),
            max_pending: settings.inventory.max_queued_per_shard,
        },
    );
    let group = {
        let (shards, sku) = (shards.clone(), sku.clone());
        drive("inventory_shards", rate, duration, move || {
            let (shards, sku) = (shards.clone(), sku.clone());
            async move {
                shards
                    .reserve(ReserveStock {
                        sku,
                        quantity: 1,
                        owner: "bench".into(),
                        hold_for: Duration::from_secs(600),
                    })
                    .await
                    .map(drop)
                    .map_err(|e: ReserveError| e.to_string())
            }
        })
        .await
    };
    let naive = {
        let (pool, sku) = (pool.clone(), sku.clone());
        drive("select_for_update", rate, duration, move || {
            let (pool, sku) = (pool.clone(), sku.clone());
            async move { reserve_with_row_lock(&pool, &sku).await }
        })
        .await
    };
    let throughput_ratio = group.held_per_sec / naive.held_per_sec.max(f64::EPSILON);
    Ok(Report {
        scenario: "reserve-bench",
        runs: vec![group, naive],
        throughput_ratio,
    })
}
