//! Session tokens and API keys remembered per process for a moment: still refused on every
//! process within a second of their revocation.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    carts::shopper,
    helpers::{spawn_app_with, TestApp},
    realtime::second_process_with,
};

/// Two processes on one database and Redis prefix, both remembering credentials 5 s.
async fn two_caching_processes() -> (TestApp, TestApp) {
    let first = spawn_app_with(|s| s.auth.credential_cache_ttl_ms = 5000).await;
    let second = second_process_with(&first, |s| s.auth.credential_cache_ttl_ms = 5000).await;
    (first, second)
}

const OPERATOR: &str = "test-operator-token";

/// How long after `since` the other process first answers `path` with 401 (polled; at most 3 s).
async fn refused_after(app: &TestApp, path: &str, token: &str, since: Instant) -> Duration {
    loop {
        let status = app.call(Method::GET, path, token, None).await.status();
        if status == 401 {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "{path} still answers {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The process's count of credential cache hits, from its metrics.
async fn cache_hits(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .filter(|line| line.starts_with("agora_credential_cache_total{outcome=\"hit\"}"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[actix_web::test]
async fn a_revoked_session_is_refused_on_every_process_within_a_second() {
    let (first, second) = two_caching_processes().await;
    let token = shopper(&first).await;
    let hits = cache_hits(&second).await;
    for _ in 0..3 {
        let me = second
            .call(Method::GET, "/api/v1/shoppers/me", &token, None)
            .await;
        assert_eq!(me.status(), 200);
    }
    assert!(
        cache_hits(&second).await >= hits + 2.0,
        "the second process remembers the session"
    );

    let signed_out = Instant::now();
    let out = first
        .call(Method::DELETE, "/api/v1/sessions/current", &token, None)
        .await;
    assert_eq!(out.status(), 204);
    let took = refused_after(&second, "/api/v1/shoppers/me", &token, signed_out).await;
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    assert_eq!(
        first
            .call(Method::GET, "/api/v1/shoppers/me", &token, None)
            .await
            .status(),
        401,
        "at once on the process that revoked it"
    );
}

#[actix_web::test]
async fn a_suspended_sellers_key_and_an_edited_profile_are_read_again_on_every_process() {
    let (first, second) = two_caching_processes().await;
    let (seller_id, key) = first.seller("Cached seller").await;
    for _ in 0..3 {
        let products = second
            .call(Method::GET, "/api/v1/sellers/me/products", &key, None)
            .await;
        assert_eq!(products.status(), 200);
    }
    let suspended = Instant::now();
    let suspend = format!("/api/v1/operator/sellers/{seller_id}/suspend");
    assert_eq!(
        first
            .call(Method::POST, &suspend, OPERATOR, None)
            .await
            .status(),
        200
    );
    let took = refused_after(&second, "/api/v1/sellers/me/products", &key, suspended).await;
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    let orders = second
        .call(Method::GET, "/api/v1/sellers/me/orders", &key, None)
        .await;
    assert_eq!(orders.status(), 200, "its orders are still served");

    let token = shopper(&first).await;
    assert!(me(&second, &token).await["name"].is_null());
    let renamed = first
        .call(
            Method::PATCH,
            "/api/v1/shoppers/me",
            &token,
            Some(&json!({ "name": "Ana" })),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(1);
    while me(&second, &token).await["name"] != "Ana" {
        assert!(
            Instant::now() < deadline,
            "the other process still shows the old profile"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn me(app: &TestApp, token: &str) -> Value {
    app.call(Method::GET, "/api/v1/shoppers/me", token, None)
        .await
        .json()
        .await
        .expect("json")
}
