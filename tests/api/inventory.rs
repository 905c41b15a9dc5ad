//! Inventory shards holding stock against real Postgres: racing, batching, expiry, guards.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use agora::{
    hot_state::HotState,
    inventory::{release_expired_holds, PgStockStore},
    stock_counters::StockCounters,
};
use agora_actors::{
    inventory::{BatchLimits, Hold, InventoryShards, ReserveError, ReserveStock, StockStore},
    lifecycle::FlushPendingWrites,
};
use futures_util::future::{join_all, BoxFuture};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// The real store, counting the transactions it commits.
struct Counting {
    store: PgStockStore,
    batches: Arc<AtomicUsize>,
}

impl StockStore for Counting {
    fn reserve_batch(
        &self,
        batch: Vec<ReserveStock>,
    ) -> BoxFuture<'static, Result<Vec<Result<Hold, ReserveError>>, String>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.store.reserve_batch(batch)
    }
}

/// The app's Redis stock counters (its own key prefix).
fn counters(app: &TestApp) -> StockCounters {
    StockCounters::new(HotState::new(&app.settings.redis).expect("redis settings"))
}

const LIMITS: BatchLimits = BatchLimits {
    max_batch: 256,
    max_wait: Duration::from_millis(1),
    max_pending: 10_000,
};

async fn shards_for(
    app: &TestApp,
    count: usize,
) -> (InventoryShards, Arc<AtomicUsize>, deadpool_postgres::Pool) {
    let pool = agora::db::build_pool(&app.settings.database).expect("pool");
    let batches = Arc::new(AtomicUsize::new(0));
    let store = Counting {
        store: PgStockStore::new(pool.clone(), counters(app)),
        batches: Arc::clone(&batches),
    };
    (
        InventoryShards::start(Arc::new(store), count, &[], LIMITS),
        batches,
        pool,
    )
}

async fn product_with_stock(app: &TestApp, sku: &str, stock: u32) -> String {
    let (_, key) = app.seller(&format!("Stock {sku}")).await;
    app.product(
        &key,
        &json!({
            "default_locale": "en", "content": { "en": { "title": sku } },
            "variants": [{ "sku": sku, "prices": { "EUR": "5.00" }, "stock": stock }]
        }),
    )
    .await;
    key
}

fn reserve(sku: &str, owner: usize, hold_for: Duration) -> ReserveStock {
    ReserveStock {
        sku: sku.to_owned(),
        quantity: 1,
        owner: format!("cart-{owner}"),
        hold_for,
        into_line: None,
    }
}

async fn available(app: &TestApp, sku: &str) -> i64 {
    let body: Value = app
        .get(&format!("/api/v1/inventory/{sku}"))
        .await
        .json()
        .await
        .expect("json");
    body["available"].as_i64().expect("available")
}

#[actix_web::test]
async fn shoppers_racing_through_two_processes_hold_exactly_the_stock_in_batched_transactions() {
    let app = spawn_app().await;
    product_with_stock(&app, "HOT-1", 100).await;
    // Two independent sets of shards stand for two `agora serve` processes.
    let (first, first_batches, pool) = shards_for(&app, 4).await;
    let (second, second_batches, _) = shards_for(&app, 4).await;

    let racers = (0..500).map(|n| {
        let shards = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move {
            shards
                .reserve(reserve("HOT-1", n, Duration::from_secs(600)))
                .await
        }
    });
    let outcomes = join_all(racers).await;

    let held = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(ReserveError::InsufficientStock { available: 0 })))
        .count();
    assert_eq!(
        (held, refused),
        (100, 400),
        "{:?}",
        outcomes
            .iter()
            .find(|o| o.is_err() && !matches!(o, Err(ReserveError::InsufficientStock { .. })))
    );
    let client = pool.get().await.expect("conn");
    let row = client
        .query_one(
            "SELECT v.held, (SELECT count(*) FROM stock_holds h WHERE h.variant_id = v.id)
             FROM variants v WHERE sku = 'HOT-1'",
            &[],
        )
        .await
        .expect("row");
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i64>(1)), (100, 100));
    assert_eq!(available(&app, "HOT-1").await, 0);
    let transactions = first_batches.load(Ordering::SeqCst) + second_batches.load(Ordering::SeqCst);
    assert!(
        transactions < 250,
        "500 reservations took {transactions} transactions: not batched"
    );
}

#[actix_web::test]
async fn expired_holds_return_their_stock() {
    let app = spawn_app().await;
    product_with_stock(&app, "BRIEF-1", 3).await;
    let (shards, _, pool) = shards_for(&app, 2).await;
    for n in 0..3 {
        shards
            .reserve(reserve("BRIEF-1", n, Duration::from_millis(1)))
            .await
            .expect("held");
    }
    assert_eq!(available(&app, "BRIEF-1").await, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        release_expired_holds(&pool, &counters(&app))
            .await
            .expect("sweep"),
        3
    );
    assert_eq!(
        release_expired_holds(&pool, &counters(&app))
            .await
            .expect("sweep"),
        0,
        "a hold is released once"
    );
    assert_eq!(available(&app, "BRIEF-1").await, 3);
}

#[actix_web::test]
async fn unknown_or_unlisted_skus_cannot_be_held() {
    let app = spawn_app().await;
    let key = product_with_stock(&app, "GONE-1", 3).await;
    let (shards, _, _) = shards_for(&app, 1).await;
    let unknown = shards
        .reserve(reserve("NOPE-1", 0, Duration::from_secs(60)))
        .await;
    assert_eq!(unknown, Err(ReserveError::UnknownSku));
    let own: Value = app
        .call(Method::GET, "/api/v1/sellers/me/products", &key, None)
        .await
        .json()
        .await
        .expect("json");
    let id = own["items"][0]["id"].as_str().expect("id").to_owned();
    app.call(
        Method::POST,
        &format!("/api/v1/products/{id}/archive"),
        &key,
        None,
    )
    .await;
    let archived = shards
        .reserve(reserve("GONE-1", 0, Duration::from_secs(60)))
        .await;
    assert_eq!(archived, Err(ReserveError::UnknownSku));
}

#[actix_web::test]
async fn a_seller_cannot_cut_stock_below_what_carts_hold() {
    let app = spawn_app().await;
    let key = product_with_stock(&app, "HELD-1", 5).await;
    let (shards, _, _) = shards_for(&app, 1).await;
    for n in 0..3 {
        shards
            .reserve(reserve("HELD-1", n, Duration::from_secs(600)))
            .await
            .expect("held");
    }
    let cut = app
        .call(
            Method::PUT,
            "/api/v1/inventory/HELD-1",
            &key,
            Some(&json!({ "stock_on_hand": 2 })),
        )
        .await;
    assert_eq!(cut.status(), 409);
    let error: Value = cut.json().await.expect("json");
    assert_eq!(error["error"]["code"], "stock_committed");
    let adjusted = app
        .call(
            Method::POST,
            "/api/v1/inventory/HELD-1/adjustments",
            &key,
            Some(&json!({ "delta": -3, "reason": "x" })),
        )
        .await;
    assert_eq!(adjusted.status(), 409);
    let fine = app
        .call(
            Method::PUT,
            "/api/v1/inventory/HELD-1",
            &key,
            Some(&json!({ "stock_on_hand": 3 })),
        )
        .await;
    assert_eq!(fine.status(), 200);
    assert_eq!(available(&app, "HELD-1").await, 0);
}

#[actix_web::test]
async fn a_graceful_stop_waits_for_queued_reservations_to_commit() {
    let app = spawn_app().await;
    product_with_stock(&app, "FLUSH-1", 50).await;
    let pool = agora::db::build_pool(&app.settings.database).expect("pool");
    // A long idle wait keeps requests queued until the flush forces the commit.
    let shards = InventoryShards::start(
        Arc::new(PgStockStore::new(pool, counters(&app))),
        1,
        &[],
        BatchLimits {
            max_wait: Duration::from_secs(30),
            ..LIMITS
        },
    );
    let queued: Vec<_> = (0..10)
        .map(|n| {
            let shards = shards.clone();
            actix_web::rt::spawn(async move {
                shards
                    .reserve(reserve("FLUSH-1", n, Duration::from_secs(600)))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let flushed = shards.shards()[0]
        .send(FlushPendingWrites)
        .await
        .expect("mailbox")
        .expect("flush");
    assert_eq!(flushed, 10);
    for handle in queued {
        assert!(handle.await.expect("task").is_ok());
    }
    assert_eq!(available(&app, "FLUSH-1").await, 40);
}

/// The real store, except that its first batch panics.
struct PanicsOnce {
    store: PgStockStore,
    panicked: Arc<AtomicUsize>,
}

impl StockStore for PanicsOnce {
    fn reserve_batch(
        &self,
        batch: Vec<ReserveStock>,
    ) -> BoxFuture<'static, Result<Vec<Result<Hold, ReserveError>>, String>> {
        if self.panicked.fetch_add(1, Ordering::SeqCst) == 0 {
            return Box::pin(async { panic!("store bug") });
        }
        self.store.reserve_batch(batch)
    }
}

#[actix_web::test]
async fn a_shard_whose_batch_panics_is_restarted_and_loses_or_doubles_nothing() {
    let app = spawn_app().await;
    product_with_stock(&app, "BOOM-1", 10).await;
    let pool = agora::db::build_pool(&app.settings.database).expect("pool");
    let store = PanicsOnce {
        store: PgStockStore::new(pool, counters(&app)),
        panicked: Arc::new(AtomicUsize::new(0)),
    };
    let shards = InventoryShards::start(Arc::new(store), 1, &[], LIMITS);

    let failed = shards
        .reserve(reserve("BOOM-1", 0, Duration::from_secs(600)))
        .await;
    assert!(
        matches!(failed, Err(ReserveError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(
        available(&app, "BOOM-1").await,
        10,
        "the panicked batch committed nothing"
    );

    let racers = (1..=12).map(|n| {
        let shards = shards.clone();
        async move {
            shards
                .reserve(reserve("BOOM-1", n, Duration::from_secs(600)))
                .await
        }
    });
    let outcomes = join_all(racers).await;
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        10,
        "the restarted shard serves: {outcomes:?}"
    );
    assert_eq!(available(&app, "BOOM-1").await, 0);
}
