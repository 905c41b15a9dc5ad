//! Recommendations learned from real checkouts, served from the storefront's rules, kept
//! across restarts, and measured against a popularity baseline.

use std::time::Duration;

use agora::recommendations::evaluation::{self, Shape};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::{
    carts::{add, cart, regions, shopper},
    helpers::{spawn_app, spawn_app_with, TestApp},
};

const OPERATOR: &str = "test-operator-token";

/// A product of one SKU with `stock` units; returns its id.
async fn product(app: &TestApp, key: &str, title: &str, sku: &str, stock: u32) -> String {
    let body = app
        .product(key, &json!({
            "default_locale": "en", "content": { "en": { "title": title }, "de": { "title": format!("{title} (de)") } },
            "variants": [{ "sku": sku, "prices": { "EUR": "20.00" }, "stock": stock, "weight_grams": 500 }]
        }))
        .await;
    body["id"].as_str().expect("id").to_owned()
}

/// A new shopper who buys `skus` in one order; returns their token.
async fn buys(app: &TestApp, skus: &[&str]) -> String {
    let token = shopper(app).await;
    let id = cart(app, &token, "EU").await;
    for sku in skus {
        assert_eq!(add(app, &token, &id, sku, 1).await.status(), 200);
    }
    let shipping = app
        .call(
            Method::PUT,
            &format!("/api/v1/carts/{id}/shipping"),
            &token,
            Some(&crate::carts::german_shipping()),
        )
        .await;
    assert_eq!(shipping.status(), 200);
    let paid = app
        .client
        .post(app.url(&format!("/api/v1/carts/{id}/checkout")))
        .bearer_auth(&token)
        .header("Idempotency-Key", "buy")
        .json(&json!({ "payment": { "card_number": "4242424242424242" } }))
        .send()
        .await
        .expect("checkout sent");
    assert_eq!(paid.status(), 201);
    token
}

async fn titles(response: reqwest::Response) -> (Vec<String>, Value) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let titles = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().expect("title").to_owned())
        .collect();
    (titles, body)
}

/// "Bought together" for `product`, waiting (up to 5 s) until it is `expected`.
async fn bought_together_becomes(
    app: &TestApp,
    product: &str,
    token: Option<&str>,
    expected: &[&str],
) {
    let mut last = Vec::new();
    for _ in 0..50 {
        let mut request = app
            .client
            .get(app.url(&format!("/api/v1/products/{product}/recommendations")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        (last, _) = titles(request.send().await.expect("sent")).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bought together with {product}: {last:?}, expected {expected:?}");
}

async fn for_you(app: &TestApp, token: &str, query: &str) -> (Vec<String>, Value) {
    titles(
        app.call(
            Method::GET,
            &format!("/api/v1/shoppers/me/recommendations{query}"),
            token,
            None,
        )
        .await,
    )
    .await
}

/// Camping gear from one seller and a pan from another; 3 orders of tent and stove, 2 of
/// tent and lamp, 1 of tent and pan. Returns (tent id, a tent-and-stove buyer's token, the
/// pan seller's id).
async fn camping_store(app: &TestApp) -> (String, String, String) {
    regions(app).await;
    let (_, key) = app.seller("Outdoor").await;
    let (pan_seller, pan_key) = app.seller("Kitchen").await;
    let tent = product(app, &key, "Tent", "TENT", 50).await;
    product(app, &key, "Stove", "STOVE", 50).await;
    product(app, &key, "Lamp", "LAMP", 50).await;
    product(app, &key, "Mug", "MUG", 50).await;
    product(app, &pan_key, "Pan", "PAN", 50).await;
    let camper = buys(app, &["TENT", "STOVE"]).await;
    buys(app, &["TENT", "STOVE"]).await;
    buys(app, &["TENT", "STOVE"]).await;
    buys(app, &["TENT", "LAMP"]).await;
    buys(app, &["TENT", "LAMP"]).await;
    buys(app, &["TENT", "PAN"]).await;
    (tent, camper, pan_seller)
}

#[actix_web::test]
async fn recommendations_appear_after_orders_without_a_restart() {
    let app = spawn_app().await;
    let (tent, _, _) = camping_store(&app).await;
    // Stove: 3 of the tent's 6 orders, all of its own (cosine 3/√18); lamp 2/√12; pan 1/√6.
    bought_together_becomes(&app, &tent, None, &["Stove", "Lamp", "Pan"]).await;
    // Three more orders of tent and pan, learned as they are paid: pan 4/√36 passes stove 3/√27.
    for _ in 0..3 {
        buys(&app, &["TENT", "PAN"]).await;
    }
    bought_together_becomes(&app, &tent, None, &["Pan", "Stove", "Lamp"]).await;
}

#[actix_web::test]
async fn sold_out_suspended_and_already_bought_products_are_never_recommended() {
    let app = spawn_app().await;
    let (tent, camper, pan_seller) = camping_store(&app).await;
    bought_together_becomes(&app, &tent, None, &["Stove", "Lamp", "Pan"]).await;
    // The camper bought the tent and the stove: neither is recommended to them.
    bought_together_becomes(&app, &tent, Some(&camper), &["Lamp", "Pan"]).await;
    let (mine, body) = for_you(&app, &camper, "?locale=de").await;
    assert_eq!(mine, ["Lamp (de)", "Pan (de)"], "{body}");
    assert_eq!(body["strategy"], "bought_together");
    assert_eq!(body["items"][0]["price_from"]["amount"], "20.00");

    // The lamp sells out; the pan's seller is suspended.
    let db = app.db().await;
    db.execute(
        "UPDATE variants SET stock_on_hand = held + sold WHERE sku = 'LAMP'",
        &[],
    )
    .await
    .expect("lamp sold out");
    let suspended = app
        .call(
            Method::POST,
            &format!("/api/v1/operator/sellers/{pan_seller}/suspend"),
            OPERATOR,
            None,
        )
        .await;
    assert!(suspended.status().is_success());
    bought_together_becomes(&app, &tent, None, &["Stove"]).await;
    bought_together_becomes(&app, &tent, Some(&camper), &[]).await;
    // Nothing left from their history: the best-sellers, still without what they bought or
    // what cannot be sold.
    let (mine, body) = for_you(&app, &camper, "").await;
    assert_eq!(body["strategy"], "popular", "{body}");
    assert!(mine.is_empty(), "{mine:?}");
}

#[actix_web::test]
async fn a_new_shopper_gets_the_best_sellers_of_their_region_in_their_language() {
    let app = spawn_app().await;
    let (tent, _, _) = camping_store(&app).await;
    bought_together_becomes(&app, &tent, None, &["Stove", "Lamp", "Pan"]).await;
    let newcomer = shopper(&app).await;
    // Carts are learned before the orders they become: wait for the last order too.
    let (mut titles, mut body) = (Vec::new(), Value::Null);
    for _ in 0..50 {
        (titles, body) = for_you(&app, &newcomer, "?region=EU&locale=de&currency=USD").await;
        if titles.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["strategy"], "popular");
    assert_eq!(body["currency"], "USD");
    assert_eq!(titles, ["Tent (de)", "Stove (de)", "Lamp (de)", "Pan (de)"]);
    // No orders in that region: nothing to go on yet.
    let (titles, _) = for_you(&app, &newcomer, "?region=US").await;
    assert!(titles.is_empty(), "{titles:?}");
    let bad = app
        .call(
            Method::GET,
            "/api/v1/shoppers/me/recommendations?limit=99",
            &newcomer,
            None,
        )
        .await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.expect("json")["error"]["field"],
        "limit"
    );
}

/// Products of the orders the recommender counted, over all orders.
async fn counted(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT sum(orders)::int8 FROM reco_region_counts", &[])
        .await
        .expect("counts")
        .get(0)
}

#[actix_web::test]
async fn a_restart_keeps_what_was_learned_and_counts_no_order_twice() {
    let first = spawn_app().await;
    let (tent, _, _) = camping_store(&first).await;
    bought_together_becomes(&first, &tent, None, &["Stove", "Lamp", "Pan"]).await;
    // Carts are learned before the orders they become: wait for the last order too.
    let mut before = 0;
    for _ in 0..50 {
        before = counted(&first).await;
        if before == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(before, 12, "six orders of two products");

    // A new process on the same database, with the Redis cache gone: it serves what Postgres
    // kept, and its learner (running beside the first one's) counts nothing again.
    let (url, prefix) = (
        first.settings.database.url.clone(),
        first.settings.redis.prefix.clone(),
    );
    let restarted = spawn_app_with(move |settings| {
        settings.database.url = SecretString::from(url);
        settings.redis.prefix = format!("{prefix}-restarted");
    })
    .await;
    bought_together_becomes(&restarted, &tent, None, &["Stove", "Lamp", "Pan"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counted(&restarted).await, before);
}

#[actix_web::test]
async fn the_recommender_beats_the_popularity_baseline_twice_on_generated_bundles() {
    let app = spawn_app().await;
    let mut db = app.db().await;
    let shape = Shape {
        products: 300,
        bundle_size: 6,
        shoppers: 800,
        orders_per_shopper: 4,
        noise: 0.3,
        seed: 7,
    };
    let result = evaluation::evaluate(&mut db, shape, 20)
        .await
        .expect("evaluation runs");
    assert!(result.shoppers_evaluated > 400, "{result:?}");
    assert!(result.precision_at_10 > 0.05, "{result:?}");
    assert!(result.lift >= 2.0, "{result:?}");
}

#[actix_web::test]
async fn carts_and_views_of_signed_in_shoppers_count_as_weaker_signals() {
    let app = spawn_app().await;
    regions(&app).await;
    let (_, key) = app.seller("Outdoor").await;
    let tent = product(&app, &key, "Tent", "TENT", 50).await;
    product(&app, &key, "Stove", "STOVE", 50).await;
    let lamp = product(&app, &key, "Lamp", "LAMP", 50).await;

    // One shopper carts a tent, then a stove (and never checks out).
    let carter = shopper(&app).await;
    let basket = cart(&app, &carter, "EU").await;
    assert_eq!(add(&app, &carter, &basket, "TENT", 1).await.status(), 200);
    assert_eq!(add(&app, &carter, &basket, "STOVE", 1).await.status(), 200);
    // Another views the tent twice, then the lamp (anonymous views count for nothing).
    let browser = shopper(&app).await;
    for path in [&tent, &tent, &lamp] {
        let viewed = app
            .client
            .get(app.url(&format!("/api/v1/products/{path}")))
            .bearer_auth(&browser)
            .send()
            .await
            .expect("sent");
        assert_eq!(viewed.status(), 200);
        app.get(&format!("/api/v1/products/{path}")).await;
    }
    // A cart weighs more than a view: stove 0.3/√(0.4·0.3) before lamp 0.1/√(0.4·0.1).
    bought_together_becomes(&app, &tent, None, &["Stove", "Lamp"]).await;
    let weights: Vec<f32> = app
        .db()
        .await
        .query(
            "SELECT c.weight FROM reco_item_counts c JOIN products p ON p.id = c.product_id
             JOIN variants v ON v.product_id = p.id ORDER BY v.sku",
            &[],
        )
        .await
        .expect("weights")
        .iter()
        .map(|row| row.get(0))
        .collect();
    // LAMP, STOVE, TENT: the repeated view counted once.
    assert_eq!(weights, [0.1, 0.3, 0.4]);
}
