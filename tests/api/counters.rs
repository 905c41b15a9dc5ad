//! The Redis stock counter of a hot SKU follows its releases instead of being dropped, and
//! stays exactly Postgres's availability.

use reqwest::Method;
use secrecy::ExposeSecret;

use crate::{
    carts::{add, cart, regions, shopper, stocked},
    helpers::{spawn_app_with, TestApp},
    realtime::second_process_with,
};

/// Long enough that no counter expires during the test: every rebuild would be a drop.
const LONG_LIVED_MS: u64 = 600_000;
/// Shoppers adding and removing at once, half through each process.
const SHOPPERS: usize = 20;

/// Add/remove pairs per shopper: 100 in the suite (2,000 in all), more with
/// `AGORA_COUNTER_PAIRS` (500: the 10,000 pairs of issue #21, a slower run done by hand).
fn pairs_per_shopper() -> usize {
    std::env::var("AGORA_COUNTER_PAIRS")
        .ok()
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(100)
}

/// The counter of `sku` and the milliseconds it has left to live (`PTTL`).
async fn counter(app: &TestApp, sku: &str) -> (Option<i64>, i64) {
    let client = redis::Client::open(app.settings.redis.url.expose_secret()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = format!("{}:{{sku:{sku}}}:available", app.settings.redis.prefix);
    redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(&mut connection)
        .await
        .expect("GET and PTTL")
}

#[actix_web::test]
async fn a_hot_skus_counter_after_thousands_of_add_remove_pairs_equals_postgres_available() {
    let first = spawn_app_with(|s| s.inventory.counter_ttl_ms = LONG_LIVED_MS).await;
    let second = second_process_with(&first, |s| s.inventory.counter_ttl_ms = LONG_LIVED_MS).await;
    regions(&first).await;
    stocked(&first, "HOT-1", 1000).await;
    let mut shoppers = Vec::new();
    for n in 0..SHOPPERS {
        let app = if n % 2 == 0 { &first } else { &second };
        let token = shopper(app).await;
        let id = cart(app, &token, "EU").await;
        shoppers.push((app, token, id));
    }
    let pairs = pairs_per_shopper();
    // The counter is built by the first reservation; a drop would rebuild it with a fresh TTL.
    let (_, first_id) = (&shoppers[0].1, &shoppers[0].2);
    assert_eq!(
        add(&first, &shoppers[0].1, first_id, "HOT-1", 1)
            .await
            .status(),
        200
    );
    let path = format!("/api/v1/carts/{first_id}/items/HOT-1");
    assert_eq!(
        first
            .call(Method::DELETE, &path, &shoppers[0].1, None)
            .await
            .status(),
        200
    );
    let (_, ttl_before) = counter(&first, "HOT-1").await;
    let started = std::time::Instant::now();
    let refused =
        futures_util::future::join_all(shoppers.iter().map(|(app, token, id)| async move {
            let mut refused = 0;
            for _ in 0..pairs {
                if add(app, token, id, "HOT-1", 1).await.status() != 200 {
                    refused += 1;
                }
                let path = format!("/api/v1/carts/{id}/items/HOT-1");
                if app.call(Method::DELETE, &path, token, None).await.status() != 200 {
                    refused += 1;
                }
            }
            refused
        }))
        .await;
    assert!(refused.iter().all(|n| *n == 0), "refused: {refused:?}");

    let available: i32 = first
        .db()
        .await
        .query_one(
            "SELECT stock_on_hand - held - sold FROM variants WHERE sku = 'HOT-1'",
            &[],
        )
        .await
        .expect("variant")
        .get(0);
    assert_eq!(available, 1000);
    let (left, ttl_after) = counter(&first, "HOT-1").await;
    assert_eq!(left, Some(1000), "the counter is Postgres's count");
    let lived = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    assert!(
        ttl_after <= ttl_before - lived + 100,
        "the counter was rebuilt during the run (TTL {ttl_before} ms, then {ttl_after} ms after {lived} ms): releases dropped it"
    );
}
