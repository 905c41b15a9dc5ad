//! A real Prometheus scrapes a running Agora under load; every dashboard panel's query must
//! return data. Needs the `prometheus` binary (Debian package `prometheus`; scripts/test.sh
//! installs it).

use std::{path::PathBuf, process::Stdio, time::Duration};

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{free_port, spawn_app, TestApp};

/// Kills the Prometheus server when the test ends, pass or fail.
struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dashboard_queries() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("grafana/dashboards") {
        let path = entry.expect("entry").path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                queries.push((
                    format!(
                        "{} / {}",
                        dashboard["title"].as_str().unwrap_or("?"),
                        panel["title"].as_str().unwrap_or("?")
                    ),
                    target["expr"].as_str().expect("expr").to_owned(),
                ));
            }
        }
    }
    queries
}

async fn instant_query(client: &reqwest::Client, port: u16, expr: &str) -> Option<Value> {
    let response = client
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// A shopper's cart in a fresh region, for reservation traffic.
async fn shopper_cart(app: &TestApp) -> (String, String) {
    let region = json!({
        "name": "Observed", "currency": "EUR", "countries": ["DE"], "tax_inclusive": true,
        "tax_rates": { "default": "0.19" },
        "shipping_options": [{ "id": "flat", "name": "Flat", "carrier": "DHL",
            "rate": { "type": "flat", "amount": "4.90" }, "delivery_days": { "min": 1, "max": 2 } }]
    });
    app.call(
        Method::PUT,
        "/api/v1/regions/OBS",
        "test-operator-token",
        Some(&region),
    )
    .await;
    let shopper: Value = app
        .post_json("/api/v1/shoppers", &json!({ "guest": true }))
        .await
        .json()
        .await
        .expect("json");
    let token = shopper["token"].as_str().expect("token").to_owned();
    let cart: Value = app
        .call(
            Method::POST,
            "/api/v1/carts",
            &token,
            Some(&json!({ "region": "OBS" })),
        )
        .await
        .json()
        .await
        .expect("json");
    (token, cart["id"].as_str().expect("id").to_owned())
}

/// One flash sale of one unit from start to sold out: two shoppers queue (one watching over a
/// socket), the sale opens, the first is admitted and buys.
async fn flash_sale_round(app: &TestApp, key: &str) {
    let now = chrono::Utc::now();
    let sale: Value = app
        .call(
            Method::POST,
            "/api/v1/flash-sales",
            key,
            Some(&json!({
                "sku": "OBS-1", "quantity": 1, "prices": { "EUR": "1.00" },
                "starts_at": now + chrono::Duration::hours(1),
                "ends_at": now + chrono::Duration::hours(2), "per_shopper_limit": 1
            })),
        )
        .await
        .json()
        .await
        .expect("json");
    let sale = sale["id"].as_str().expect("sale id").to_owned();
    let mut shoppers = Vec::new();
    for _ in 0..2 {
        let shopper: Value = app
            .post_json("/api/v1/shoppers", &json!({ "guest": true }))
            .await
            .json()
            .await
            .expect("json");
        let token = shopper["token"].as_str().expect("token").to_owned();
        app.call(
            Method::POST,
            &format!("/api/v1/flash-sales/{sale}/queue"),
            &token,
            None,
        )
        .await;
        shoppers.push(token);
    }
    let (_, mut watcher) = awc::Client::new()
        .ws(format!("{}/ws", app.address.replacen("http", "ws", 1)))
        .bearer_auth(&shoppers[1])
        .connect()
        .await
        .expect("websocket");
    let _ = watcher
        .send(awc::ws::Message::Text(
            json!({ "type": "follow_queue", "sale_id": sale })
                .to_string()
                .into(),
        ))
        .await;
    actix_web::rt::spawn(async move { while let Some(Ok(_)) = watcher.next().await {} });
    app.db()
        .await
        .execute(
            "UPDATE flash_sales SET starts_at = now() WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("sale opened");
    for _ in 0..60 {
        let status: Value = app
            .call(
                Method::GET,
                &format!("/api/v1/flash-sales/{sale}/queue/me"),
                &shoppers[0],
                None,
            )
            .await
            .json()
            .await
            .expect("json");
        if let Some(admission) = status["admission_token"].as_str() {
            app.client
                .post(app.url(&format!("/api/v1/flash-sales/{sale}/purchase")))
                .bearer_auth(&shoppers[0])
                .header("Idempotency-Key", "observed")
                .json(&json!({
                    "admission_token": admission, "quantity": 1, "region": "OBS",
                    "shipping": { "address": crate::carts::german_shipping()["address"], "option": "flat" },
                    "email": "erika@example.com",
                    "payment": { "card_number": "4242424242424242" }
                }))
                .send()
                .await
                .expect("purchase sent");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn traffic(app: &TestApp, key: &str, product_path: &str, (token, cart): &(String, String)) {
    flash_sale_round(app, key).await;
    // A checkout of one unit, and a socket closed for an oversized frame.
    let (buyer, basket) = shopper_cart(app).await;
    app.call(
        Method::POST,
        &format!("/api/v1/carts/{basket}/items"),
        &buyer,
        Some(&json!({ "sku": "OBS-1", "quantity": 1 })),
    )
    .await;
    app.call(
        Method::PUT,
        &format!("/api/v1/carts/{basket}/shipping"),
        &buyer,
        Some(&crate::carts::german_shipping()),
    )
    .await;
    app.client
        .post(app.url(&format!("/api/v1/carts/{basket}/checkout")))
        .bearer_auth(&buyer)
        .header("Idempotency-Key", "observed")
        .json(&json!({ "payment": { "card_number": "4242424242424242" } }))
        .send()
        .await
        .expect("checkout sent");
    let (_, mut doomed) = awc::Client::new()
        .ws(format!("{}/ws", app.address.replacen("http", "ws", 1)))
        .connect()
        .await
        .expect("websocket");
    let _ = doomed
        .send(awc::ws::Message::Text("x".repeat(5000).into()))
        .await;
    let _ = tokio::time::timeout(Duration::from_millis(200), doomed.next()).await;
    for _ in 0..5 {
        app.call(
            Method::POST,
            &format!("/api/v1/carts/{cart}/items"),
            token,
            Some(&json!({ "sku": "OBS-1", "quantity": 1 })),
        )
        .await;
        app.get(product_path).await;
        app.get("/api/v1/products?currency=USD").await;
        app.get("/api/v1/no-such-route").await;
        app.get("/ready").await;
    }
    app.call(Method::POST, "/api/v1/products", key, Some(&json!({})))
        .await;
}

#[actix_web::test]
async fn a_real_prometheus_scraping_agora_under_load_has_data_for_every_dashboard_panel() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Observed").await;
    let product = app
        .product(
            &key,
            &json!({
                "default_locale": "en", "content": { "en": { "title": "Gauge" } },
                "variants": [{ "sku": "OBS-1", "prices": { "EUR": "3.00" }, "stock": 100000 }]
            }),
        )
        .await;
    let product_path = format!("/api/v1/products/{}", product["id"].as_str().expect("id"));

    let dir = std::env::temp_dir().join(format!(
        "agora-prometheus-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let agora_port = app.address.rsplit(':').next().expect("port");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: agora\n    static_configs:\n      - targets: ['127.0.0.1:{agora_port}']\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let _prometheus = Prometheus(
        std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts (Debian package `prometheus`; scripts/test.sh installs it)"),
    );

    let cart = shopper_cart(&app).await;
    // A socket following the SKU for the whole test: stock changes fan out to it.
    let (_, mut follower) = awc::Client::new()
        .ws(format!("{}/ws", app.address.replacen("http", "ws", 1)))
        .connect()
        .await
        .expect("websocket");
    follower
        .send(awc::ws::Message::Text(
            json!({ "type": "subscribe", "skus": ["OBS-1"] })
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribed");
    // Read what it is sent, so its mailbox never fills.
    actix_web::rt::spawn(async move { while let Some(Ok(_)) = follower.next().await {} });
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 10,
        "only {} panel queries found",
        queries.len()
    );
    let mut missing = queries.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !missing.is_empty() && tokio::time::Instant::now() < deadline {
        traffic(&app, &key, &product_path, &cart).await;
        let mut still_missing = Vec::new();
        for (panel, expr) in missing {
            let answer = instant_query(&app.client, port, &expr).await;
            let has_data = answer.is_some_and(|a| {
                a["status"] == "success"
                    && a["data"]["result"].as_array().is_some_and(|results| {
                        results
                            .iter()
                            .any(|r| r["value"][1].as_str().is_some_and(|v| v != "NaN"))
                    })
            });
            if !has_data {
                still_missing.push((panel, expr));
            }
        }
        missing = still_missing;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(missing.is_empty(), "panels without data: {missing:#?}");
}
