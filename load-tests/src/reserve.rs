//! `reserve-bench`: stock reservations on one hot SKU, through the inventory shards (group
//! commit) and the common way (one transaction with `SELECT … FOR UPDATE` per reservation), on
//! the same database in the same run. With `--checkout`, every reservation is followed by its
//! order: the same rows both ways (order, line, seller part, payment, two events), written by
//! the actor way as checkout does (through its commit group, many orders per transaction and
//! their rows in one set-based statement; the hold is marked sold; the hot SKU's row is not
//! touched) and by the common way inside its row-locking transaction.
//!
//! Both are driven open-loop: requests are started at a fixed rate whatever the answers, as a
//! crowd would send them, with at most `MAX_IN_FLIGHT` outstanding (beyond it a request counts
//! as `shed`). Latency is from start to answer.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use agora::{
    commit_group::{failed_together, CommitGroup, GroupJob},
    db::PreparedClient,
    hot_state::HotState,
    http::error::ApiError,
    inventory::PgStockStore,
    stock_counters::StockCounters,
};
use agora_actors::inventory::{BatchLimits, InventoryShards, ReserveError, ReserveStock};
use anyhow::Context;
use futures_util::future::LocalBoxFuture;
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

/// The benchmark's SKU, and who sells and buys it.
#[derive(Clone)]
pub(crate) struct Fixture {
    sku: String,
    pub(crate) variant: Uuid,
    product: Uuid,
    seller: Uuid,
    shopper: Uuid,
}

/// Writes one paid order of one unit, the rows a checkout writes for it, in one statement;
/// with `hold`, that hold is marked sold by the same statement (atomic without a transaction
/// block: one round trip).
async fn write_order(
    client: &impl PreparedClient,
    fixture: &Fixture,
    hold: Option<Uuid>,
) -> Result<(), tokio_postgres::Error> {
    let order = Uuid::now_v7();
    let price = rust_decimal::Decimal::new(999, 2);
    client.execute(
        "WITH o AS (
             INSERT INTO orders (id, shopper_id, cart_id, region, currency, status, subtotal,
                                 tax_rate, tax_included, tax, total)
             VALUES ($1, $2, $1, 'EU', 'EUR', 'paid', $6, 0.19, true, 1.60, $6) RETURNING id),
         l AS (
             INSERT INTO order_lines (order_id, line_no, seller_id, variant_id, product_id, sku,
                                      title, quantity, unit_price, line_total, tax)
             SELECT id, 0, $3, $4, $5, $7, 'Bench item', 1, $6, $6, 1.60 FROM o),
         p AS (
             INSERT INTO order_parts (order_id, seller_id, status, subtotal, tax)
             SELECT id, $3, 'paid', $6, 1.60 FROM o),
         y AS (
             INSERT INTO payments (reference, order_id, provider, amount, currency, card_last4, status)
             SELECT gen_random_uuid(), id, 'bench', $6, 'EUR', '4242', 'authorized' FROM o),
         h AS (
             UPDATE stock_holds SET order_id = $1, owner = 'order', sold_at = now()
             WHERE id = $8)
         INSERT INTO order_events (order_id, kind, status)
         SELECT id, kind, status FROM o, (VALUES ('created', 'pending'), ('paid', 'paid')) e(kind, status)",
        &[
            &order,
            &fixture.shopper,
            &fixture.seller,
            &fixture.variant,
            &fixture.product,
            &price,
            &fixture.sku,
            &hold,
        ],
    )
    .await?;
    Ok(())
}

/// Checkout the actor way: the order, and its hold marked sold, atomically, locking no stock
/// row (the hot SKU's row is written once per settle sweep instead), written through the
/// commit group as checkout's writes are.
struct SellHold {
    fixture: Fixture,
    hold: Uuid,
}

impl GroupJob for SellHold {
    type Output = ();
    type Error = ApiError;

    fn batch_key(&self) -> Uuid {
        self.hold
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move { Ok(write_order(tx, &self.fixture, Some(self.hold)).await?) })
    }

    /// The batch's orders as `write_order` writes one, with one statement for all of them.
    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<(), ApiError>>> {
        Box::pin(async move {
            match write_orders(tx, &jobs).await {
                Ok(()) => jobs.iter().map(|_| Ok(())).collect(),
                Err(error) => failed_together(jobs.len(), Some(&error.into())),
            }
        })
    }
}

/// `write_order` for many sold holds at once: each table's rows in one set-based statement.
async fn write_orders(
    client: &impl PreparedClient,
    jobs: &[&SellHold],
) -> Result<(), tokio_postgres::Error> {
    let orders: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let column = |pick: fn(&SellHold) -> Uuid| jobs.iter().map(|j| pick(j)).collect::<Vec<_>>();
    let (holds, shoppers, sellers, variants, products) = (
        column(|j| j.hold),
        column(|j| j.fixture.shopper),
        column(|j| j.fixture.seller),
        column(|j| j.fixture.variant),
        column(|j| j.fixture.product),
    );
    let skus: Vec<&str> = jobs.iter().map(|j| j.fixture.sku.as_str()).collect();
    let price = rust_decimal::Decimal::new(999, 2);
    client.execute_planned_per_call(
        "WITH x AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[],
                                  $6::text[], $7::uuid[])
                 AS x(id, shopper, seller, variant, product, sku, hold)),
         o AS (
             INSERT INTO orders (id, shopper_id, cart_id, region, currency, status, subtotal,
                                 tax_rate, tax_included, tax, total)
             SELECT id, shopper, id, 'EU', 'EUR', 'paid', $8, 0.19, true, 1.60, $8 FROM x),
         l AS (
             INSERT INTO order_lines (order_id, line_no, seller_id, variant_id, product_id, sku,
                                      title, quantity, unit_price, line_total, tax)
             SELECT id, 0, seller, variant, product, sku, 'Bench item', 1, $8, $8, 1.60 FROM x),
         p AS (
             INSERT INTO order_parts (order_id, seller_id, status, subtotal, tax)
             SELECT id, seller, 'paid', $8, 1.60 FROM x),
         y AS (
             INSERT INTO payments (reference, order_id, provider, amount, currency, card_last4, status)
             SELECT gen_random_uuid(), id, 'bench', $8, 'EUR', '4242', 'authorized' FROM x),
         h AS (
             UPDATE stock_holds h SET order_id = x.id, owner = 'order', sold_at = now()
             FROM x WHERE h.id = x.hold)
         INSERT INTO order_events (order_id, kind, status)
         SELECT id, kind, status FROM x, (VALUES ('created', 'pending'), ('paid', 'paid')) e(kind, status)",
        &[&orders, &shoppers, &sellers, &variants, &products, &skus, &holds, &price],
    )
    .await?;
    Ok(())
}

/// Creates a seller, product, SKU with ample stock and a shopper straight in the database.
pub(crate) async fn hot_sku(pool: &deadpool_postgres::Pool, stock: i32) -> anyhow::Result<Fixture> {
    let client = pool.get().await?;
    let suffix = Uuid::new_v4().simple().to_string();
    let sku = format!("BENCH-{}", &suffix[..12]);
    let seller = Uuid::now_v7();
    let product = Uuid::now_v7();
    let variant = Uuid::now_v7();
    let shopper = Uuid::now_v7();
    client
        .batch_execute(&format!(
            "INSERT INTO sellers (id, name, email, api_key_hash)
                 VALUES ('{seller}', 'Bench', 'bench-{suffix}@bench.example', sha256('{suffix}'::bytea));
             INSERT INTO products (id, seller_id, default_locale, base_currency)
                 VALUES ('{product}', '{seller}', 'en', 'EUR');
             INSERT INTO variants (id, product_id, position, sku, stock_on_hand)
                 VALUES ('{variant}', '{product}', 0, '{sku}', {stock});
             INSERT INTO shoppers (id) VALUES ('{shopper}');"
        ))
        .await?;
    Ok(Fixture {
        sku,
        variant,
        product,
        seller,
        shopper,
    })
}

/// The common way: one transaction per reservation (and its order, with `checkout`), locking
/// the stock row throughout.
pub(crate) async fn reserve_with_row_lock(
    pool: &deadpool_postgres::Pool,
    fixture: &Fixture,
    checkout: bool,
) -> Result<(), String> {
    let mut client = pool.get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let row = tx
        .query_one(
            "SELECT id, stock_on_hand - held - sold FROM variants WHERE sku = $1 FOR UPDATE",
            &[&fixture.sku],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (variant, available): (Uuid, i32) = (row.get(0), row.get(1));
    if available < 1 {
        return Err("insufficient stock".into());
    }
    if checkout {
        write_order(&tx, fixture, None)
            .await
            .map_err(|e| e.to_string())?;
        tx.execute(
            "UPDATE variants SET sold = sold + 1 WHERE id = $1",
            &[&variant],
        )
        .await
        .map_err(|e| e.to_string())?;
        return tx.commit().await.map_err(|e| e.to_string());
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

/// Agora's settings, pointed at `database_url` with a pool of `connections`.
fn settings(
    database_url: &str,
    connections: usize,
) -> anyhow::Result<agora::configuration::Settings> {
    let mut settings = agora::configuration::Settings::load()?;
    settings.database.url = secrecy::SecretString::from(database_url.to_owned());
    settings.database.max_connections = connections;
    Ok(settings)
}

/// A pool of `connections` to an Agora database, as the server would open it.
pub(crate) fn pool(
    database_url: &str,
    connections: usize,
) -> anyhow::Result<deadpool_postgres::Pool> {
    Ok(agora::db::build_pool(
        &settings(database_url, connections)?.database,
    )?)
}

pub async fn run(
    database_url: &str,
    rate: u32,
    duration: Duration,
    checkout: bool,
) -> anyhow::Result<Report> {
    let settings = settings(database_url, 32)?;
    agora::db::migrate(&settings.database)
        .await
        .context("migrating the benchmark database")?;
    let pool = agora::db::build_pool(&settings.database)?;

    let fixture = hot_sku(&pool, STOCK).await?;
    let shards = InventoryShards::start(
        Arc::new(PgStockStore::new(
            pool.clone(),
            // As `agora serve` runs them: announcing what each batch commits.
            StockCounters::new(HotState::new(&settings.redis)?).announcing(pool.clone()),
        )),
        settings.inventory.shards,
        &[],
        BatchLimits {
            max_batch: settings.inventory.batch_max,
            max_wait: Duration::from_millis(settings.inventory.batch_max_wait_ms),
            max_pending: settings.inventory.max_queued_per_shard,
        },
    );
    let writes = CommitGroup::start(pool.clone(), &settings.checkout);
    let group = {
        let (shards, fixture) = (shards.clone(), fixture.clone());
        drive("inventory_shards", rate, duration, move || {
            let (shards, fixture, writes) = (shards.clone(), fixture.clone(), writes.clone());
            async move {
                let hold = shards
                    .reserve(ReserveStock {
                        sku: fixture.sku.clone(),
                        quantity: 1,
                        owner: "bench".into(),
                        hold_for: Duration::from_secs(600),
                        into_line: None,
                    })
                    .await
                    .map_err(|e: ReserveError| e.to_string())?;
                if checkout {
                    writes
                        .run(SellHold {
                            fixture,
                            hold: hold.id,
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        })
        .await
    };
    let naive = {
        let (pool, fixture) = (pool.clone(), fixture.clone());
        drive("select_for_update", rate, duration, move || {
            let (pool, fixture) = (pool.clone(), fixture.clone());
            async move { reserve_with_row_lock(&pool, &fixture, checkout).await }
        })
        .await
    };
    // What checkout's sweep does in a server: move the sold holds' units to `sold`.
    while agora::inventory::settle_sold_holds(&pool).await? > 0 {}
    let throughput_ratio = group.held_per_sec / naive.held_per_sec.max(f64::EPSILON);
    Ok(Report {
        scenario: if checkout {
            "reserve-checkout-bench"
        } else {
            "reserve-bench"
        },
        runs: vec![group, naive],
        throughput_ratio,
    })
}
