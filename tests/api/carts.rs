//! Carts over HTTP: stock held per unit, totals by region, isolation, and racing shoppers.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

const OPERATOR: &str = "test-operator-token";

pub async fn regions(app: &TestApp) {
    let eu = json!({
        "name": "EU", "currency": "EUR", "countries": ["DE", "FR"], "tax_inclusive": true,
        "tax_rates": { "default": "0.20", "DE": "0.19" },
        "shipping_options": [
            { "id": "flat", "name": "Standard", "carrier": "DHL", "rate": { "type": "flat", "amount": "4.90" },
              "delivery_days": { "min": 2, "max": 4 } },
            { "id": "heavy", "name": "By weight", "carrier": "UPS", "rate": { "type": "weight", "base": "3.00", "per_kg": "1.50" },
              "delivery_days": { "min": 1, "max": 2 } }
        ]
    });
    let us = json!({
        "name": "US", "currency": "USD", "countries": ["US"], "tax_inclusive": false,
        "tax_rates": { "default": "0.0725" },
        "shipping_options": [
            { "id": "ground", "name": "Ground", "carrier": "USPS", "rate": { "type": "flat", "amount": "5.00" },
              "delivery_days": { "min": 3, "max": 7 } }
        ]
    });
    for (code, body) in [("EU", eu), ("US", us)] {
        let response = app
            .call(
                Method::PUT,
                &format!("/api/v1/regions/{code}"),
                OPERATOR,
                Some(&body),
            )
            .await;
        assert!(response.status().is_success(), "region {code}");
    }
}

/// What checkout needs in the EU region: a German address, the flat option and a contact
/// email (the tests' shoppers are guests).
pub fn german_shipping() -> Value {
    json!({
        "address": { "name": "Erika Mustermann", "line1": "Heidestraße 17", "city": "Köln",
                     "postal_code": "51147", "country": "DE" },
        "option": "flat", "email": "erika@example.com"
    })
}

/// Ships the cart to the German address of [`german_shipping`].
pub async fn ship_to_germany(app: &TestApp, token: &str, cart: &str) {
    let response = app
        .call(
            Method::PUT,
            &format!("/api/v1/carts/{cart}/shipping"),
            token,
            Some(&german_shipping()),
        )
        .await;
    assert_eq!(response.status(), 200);
}

pub async fn stocked(app: &TestApp, sku: &str, stock: u32) {
    let (_, key) = app.seller(&format!("Cart seller {sku}")).await;
    app.product(&key, &json!({
        "default_locale": "en", "content": { "en": { "title": "Mug" }, "de": { "title": "Becher" } },
        "variants": [{ "sku": sku, "prices": { "EUR": "10.00" }, "stock": stock, "weight_grams": 600 }]
    }))
    .await;
}

pub async fn shopper(app: &TestApp) -> String {
    let body: Value = app
        .post_json(
            "/api/v1/shoppers",
            &json!({ "guest": true, "locale": "de" }),
        )
        .await
        .json()
        .await
        .expect("json");
    body["token"].as_str().expect("token").to_owned()
}

pub async fn cart(app: &TestApp, token: &str, region: &str) -> String {
    let response = app
        .call(
            Method::POST,
            "/api/v1/carts",
            token,
            Some(&json!({ "region": region })),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Adds units of `sku` to a cart.
pub async fn add(
    app: &TestApp,
    token: &str,
    cart: &str,
    sku: &str,
    quantity: u32,
) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/api/v1/carts/{cart}/items"),
        token,
        Some(&json!({ "sku": sku, "quantity": quantity })),
    )
    .await
}

pub async fn available(app: &TestApp, sku: &str) -> i64 {
    app.get(&format!("/api/v1/inventory/{sku}"))
        .await
        .json::<Value>()
        .await
        .expect("json")["available"]
        .as_i64()
        .expect("available")
}

#[actix_web::test]
async fn a_cart_holds_its_units_and_totals_tax_and_shipping_in_the_regions_currency() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "MUG-1", 5).await;
    let token = shopper(&app).await;

    let eu = cart(&app, &token, "EU").await;
    let added = add(&app, &token, &eu, "mug-1", 2).await;
    assert_eq!(added.status(), 200);
    let view: Value = added.json().await.expect("json");
    assert_eq!(view["lines"][0]["title"], "Becher", "the shopper's locale");
    assert_eq!(view["lines"][0]["held_quantity"], 2);
    assert!(view["lines"][0]["held_until"].is_string());
    assert_eq!(view["subtotal"]["amount"], "20.00");
    // Tax included at the default 20%: 20.00 − 20.00 / 1.20 = 3.33.
    assert_eq!(
        view["tax"],
        json!({ "rate": "0.2", "included": true, "amount": { "amount": "3.33", "currency": "EUR", "converted": false } })
    );
    assert_eq!(view["total"]["amount"], "20.00");
    assert_eq!(available(&app, "MUG-1").await, 3);

    let shipped: Value = app
        .call(
            Method::PUT,
            &format!("/api/v1/carts/{eu}/shipping"),
            &token,
            Some(&json!({ "country": "DE", "option": "heavy" })),
        )
        .await
        .json()
        .await
        .expect("json");
    // German rate 19%: 20.00 − 20.00 / 1.19 = 3.19; 1.2 kg by weight: 3.00 + 2 × 1.50.
    assert_eq!(shipped["tax"]["amount"]["amount"], "3.19");
    assert_eq!(shipped["shipping"]["amount"]["amount"], "6.00");
    assert_eq!(shipped["total"]["amount"], "26.00");

    let us = cart(&app, &token, "US").await;
    add(&app, &token, &us, "MUG-1", 2).await;
    let view: Value = app
        .call(
            Method::PUT,
            &format!("/api/v1/carts/{us}/shipping"),
            &token,
            Some(&json!({ "country": "US", "option": "ground" })),
        )
        .await
        .json()
        .await
        .expect("json");
    // 10.00 EUR × 1.0850 = 10.85 USD; ×2 = 21.70; tax added 7.25% = 1.57; + 5.00 shipping.
    assert_eq!(
        view["lines"][0]["unit_price"],
        json!({ "amount": "10.85", "currency": "USD", "converted": true })
    );
    assert_eq!(view["tax"]["amount"]["amount"], "1.57");
    assert_eq!(view["total"]["amount"], "28.27");
    assert_eq!(available(&app, "MUG-1").await, 1);
}

#[actix_web::test]
async fn changing_or_removing_a_line_releases_its_stock_at_once() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "MUG-2", 5).await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;
    add(&app, &token, &id, "MUG-2", 2).await;
    add(&app, &token, &id, "MUG-2", 2).await;
    assert_eq!(available(&app, "MUG-2").await, 1);

    let too_many = add(&app, &token, &id, "MUG-2", 2).await;
    assert_eq!(too_many.status(), 409);
    let error: Value = too_many.json().await.expect("json");
    assert_eq!(
        (
            error["error"]["code"].as_str(),
            error["error"]["available"].as_i64()
        ),
        (Some("insufficient_stock"), Some(1))
    );

    let lowered: Value = app
        .call(
            Method::PATCH,
            &format!("/api/v1/carts/{id}/items/MUG-2"),
            &token,
            Some(&json!({ "quantity": 1 })),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            lowered["lines"][0]["quantity"].as_i64(),
            lowered["lines"][0]["held_quantity"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(available(&app, "MUG-2").await, 4);

    let removed: Value = app
        .call(
            Method::DELETE,
            &format!("/api/v1/carts/{id}/items/MUG-2"),
            &token,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(removed["lines"], json!([]));
    assert_eq!(available(&app, "MUG-2").await, 5);

    for (body, field) in [
        (json!({ "sku": "MUG-2", "quantity": 0 }), "quantity"),
        (json!({ "sku": "NOPE", "quantity": 1 }), "sku"),
    ] {
        let response = app
            .call(
                Method::POST,
                &format!("/api/v1/carts/{id}/items"),
                &token,
                Some(&body),
            )
            .await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(
            response.json::<Value>().await.expect("json")["error"]["field"],
            field
        );
    }
    let bad_region = app
        .call(
            Method::POST,
            "/api/v1/carts",
            &token,
            Some(&json!({ "region": "MARS" })),
        )
        .await;
    assert_eq!(bad_region.status(), 422);
}

#[actix_web::test]
async fn an_unknown_sku_a_zero_quantity_or_a_line_beyond_the_limit_is_refused_naming_the_field() {
    let app = spawn_app().await;
    regions(&app).await;
    let (_, key) = app.seller("Many lines").await;
    // Two products of 50 variants (a product has at most 100) and one more: 101 SKUs.
    for (product, skus) in [(0, 0..50), (1, 50..100), (2, 100..101)] {
        let variants: Vec<Value> = skus
            .map(|n| json!({ "sku": format!("LINE-{n}"), "prices": { "EUR": "1.00" }, "stock": 5 }))
            .collect();
        app.product(
            &key,
            &json!({ "default_locale": "en", "content": { "en": { "title": format!("Lines {product}") } },
                     "variants": variants }),
        )
        .await;
    }
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;

    let refusal = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        (
            status,
            body["error"]["code"].as_str().map(str::to_owned),
            body["error"]["field"].as_str().map(str::to_owned),
        )
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        refusal(add(&app, &token, &id, "NO-SUCH-SKU", 1).await).await,
        (422, some("unknown_sku"), some("sku"))
    );
    assert_eq!(
        refusal(add(&app, &token, &id, "LINE-0", 0).await).await,
        (422, some("invalid_quantity"), some("quantity"))
    );
    for n in 0..100 {
        assert_eq!(
            add(&app, &token, &id, &format!("LINE-{n}"), 1)
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        refusal(add(&app, &token, &id, "LINE-100", 1).await).await,
        (422, some("too_many_lines"), some("sku"))
    );
    // A line already in the cart still takes more units; nothing was held for the refusals.
    assert_eq!(add(&app, &token, &id, "LINE-7", 2).await.status(), 200);
    assert_eq!(available(&app, "LINE-7").await, 2);
    assert_eq!(available(&app, "LINE-100").await, 5);
    assert_eq!(available(&app, "LINE-0").await, 4);
}

#[actix_web::test]
async fn a_shopper_never_sees_or_changes_another_shoppers_cart() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "MUG-3", 5).await;
    let (owner, intruder) = (shopper(&app).await, shopper(&app).await);
    let id = cart(&app, &owner, "EU").await;
    add(&app, &owner, &id, "MUG-3", 1).await;
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/carts/{id}"), None),
        (
            Method::POST,
            format!("/api/v1/carts/{id}/items"),
            Some(json!({ "sku": "MUG-3", "quantity": 1 })),
        ),
        (
            Method::DELETE,
            format!("/api/v1/carts/{id}/items/MUG-3"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/carts/{id}/shipping"),
            Some(json!({ "country": "DE", "option": "flat" })),
        ),
    ] {
        let response = app
            .call(method.clone(), &path, &intruder, body.as_ref())
            .await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    assert_eq!(app.get(&format!("/api/v1/carts/{id}")).await.status(), 401);
    assert_eq!(available(&app, "MUG-3").await, 4);
}

#[actix_web::test]
async fn shoppers_racing_through_two_server_processes_get_exactly_the_stock() {
    let first = spawn_app().await;
    let url = first.settings.database.url.clone();
    let second = spawn_app_with(|settings| settings.database.url = SecretString::from(url)).await;
    regions(&first).await;
    stocked(&first, "HOT-MUG", 20).await;

    let mut shoppers = Vec::new();
    for n in 0..80 {
        let app = if n % 2 == 0 { &first } else { &second };
        let token = shopper(app).await;
        let id = cart(app, &token, "EU").await;
        shoppers.push((n, token, id));
    }
    let racers = shoppers.iter().map(|(n, token, id)| {
        let app = if n % 2 == 0 { &first } else { &second };
        async move { add(app, token, id, "HOT-MUG", 1).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(racers).await;
    let won = statuses.iter().filter(|s| **s == 200).count();
    let lost = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((won, lost), (20, 60), "{statuses:?}");
    assert_eq!(available(&first, "HOT-MUG").await, 0);
    assert_eq!(available(&second, "HOT-MUG").await, 0);
}

#[actix_web::test]
async fn many_tabs_changing_one_cart_at_once_are_served_in_turn_and_every_unit_counts() {
    let app = spawn_app_with(|settings| {
        settings.carts.max_queued_changes = 64;
        settings.carts.idle_secs = 1;
    })
    .await;
    regions(&app).await;
    stocked(&app, "TAB-MUG", 100).await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;

    let tabs = (0..20).map(|_| add(&app, &token, &id, "TAB-MUG", 1));
    let statuses: Vec<u16> = futures_util::future::join_all(tabs)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    assert_eq!(statuses, vec![200; 20]);
    let quantity = |cart: &Value| cart["lines"][0]["quantity"].as_u64();
    let shown: Value = app
        .call(Method::GET, &format!("/api/v1/carts/{id}"), &token, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(quantity(&shown), Some(20));
    assert_eq!(available(&app, "TAB-MUG").await, 80);

    // Idle past `carts.idle_secs`: the cart's actor is passivated; the cart is not.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let again: Value = add(&app, &token, &id, "TAB-MUG", 1)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(quantity(&again), Some(21));
    assert_eq!(available(&app, "TAB-MUG").await, 79);
}

#[actix_web::test]
async fn more_shoppers_releasing_stock_at_once_than_pooled_connections_are_all_served() {
    // Releasing units announces the new stock level, which reads it on a connection of its
    // own: a release that waited for that while keeping its connection would wait for a second
    // one, and with more releases than connections all of them would wait until the acquire
    // timeout.
    let app = spawn_app_with(|settings| settings.database.max_connections = 3).await;
    regions(&app).await;
    stocked(&app, "POOL-MUG", 100).await;
    let mut carts = Vec::new();
    for _ in 0..12 {
        let token = shopper(&app).await;
        let id = cart(&app, &token, "EU").await;
        assert_eq!(add(&app, &token, &id, "POOL-MUG", 2).await.status(), 200);
        carts.push((token, id));
    }
    assert_eq!(available(&app, "POOL-MUG").await, 76);

    let lines: Vec<(String, &String)> = carts
        .iter()
        .map(|(token, id)| (format!("/api/v1/carts/{id}/items/POOL-MUG"), token))
        .collect();
    let releases = lines
        .iter()
        .map(|(line, token)| app.call(Method::DELETE, line, token, None));
    let statuses: Vec<u16> = futures_util::future::join_all(releases)
        .await
        .iter()
        .map(|response| response.status().as_u16())
        .collect();
    assert_eq!(statuses, vec![200; 12]);
    assert_eq!(available(&app, "POOL-MUG").await, 100);
}
