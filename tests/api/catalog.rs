//! Sellers writing their catalog: creation, validation, updates, stock and isolation.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

fn jacket(sku_prefix: &str) -> Value {
    json!({
        "default_locale": "en",
        "content": {
            "en": { "title": "Trail running jacket", "description": "Waterproof and light" },
            "de": { "title": "Trailrunning-Jacke", "description": "Wasserdicht und leicht" }
        },
        "variants": [
            { "sku": format!("{sku_prefix}-M"), "prices": { "EUR": "89.90", "JPY": "12800" }, "stock": 5,
              "attributes": { "size": "M" }, "weight_grams": 450,
              "image_urls": ["https://cdn.example/jacket-m.jpg"] },
            { "sku": format!("{sku_prefix}-L"), "prices": { "EUR": "94.90" }, "stock": 0 }
        ]
    })
}

async fn counts(app: &TestApp) -> (i64, i64, i64, i64) {
    let row = app
        .db()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM variants),
                    (SELECT count(*) FROM variant_prices), (SELECT count(*) FROM product_content)",
            &[],
        )
        .await
        .expect("counts");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[actix_web::test]
async fn a_seller_creates_a_product_with_variants_in_one_call() {
    let app = spawn_app().await;
    let (seller_id, key) = app.seller("Nordlicht").await;
    let minimal = json!({
        "default_locale": "en",
        "content": { "en": { "title": "Socks" } },
        "variants": [{ "sku": "SOCKS-1", "prices": { "EUR": "9.90" }, "stock": 3 }]
    });
    let created = app.product(&key, &minimal).await;
    assert_eq!(created["seller_id"], seller_id);
    assert_eq!(created["base_currency"], "EUR");
    assert_eq!(created["variants"][0]["stock_on_hand"], 3);
    assert_eq!(created["variants"][0]["prices"]["EUR"], "9.90");

    let full = app.product(&key, &jacket("JACKET")).await;
    assert_eq!(full["variants"].as_array().map(Vec::len), Some(2));
    assert_eq!(full["variants"][0]["prices"]["JPY"], "12800");
    assert_eq!(
        full["variants"][0]["image_urls"][0],
        "https://cdn.example/jacket-m.jpg"
    );
    assert_eq!(full["content"]["de"]["title"], "Trailrunning-Jacke");

    let ledger: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM stock_ledger WHERE kind = 'initial'",
            &[],
        )
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(ledger, 3, "every variant's initial stock is in the ledger");
}

#[actix_web::test]
async fn every_invalid_product_gets_a_4xx_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Validator").await;
    app.product(&key, &jacket("TAKEN")).await;
    let before = counts(&app).await;

    let variant = |prices: Value| json!({ "sku": "NEW-1", "prices": prices, "stock": 1 });
    let product = |variants: Value| {
        json!({
            "default_locale": "en", "content": { "en": { "title": "T" } }, "variants": variants
        })
    };
    let many: Vec<Value> = (0..101)
        .map(|i| json!({ "sku": format!("MANY-{i}"), "prices": { "EUR": "1.00" }, "stock": 1 }))
        .collect();
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({ "content": { "en": { "title": "T" } }, "variants": [] }),
            422,
            "missing_field",
            "default_locale",
        ),
        (
            product(json!([{ "sku": "NEW-1", "stock": 1 }])),
            422,
            "missing_field",
            "variants[0].prices",
        ),
        (
            product(json!([variant(json!({ "EUR": "1.00", "XYZ": "1.00" }))])),
            422,
            "unknown_currency",
            "variants[0].prices.XYZ",
        ),
        (
            product(json!([variant(json!({ "EUR": "1.00", "BRL": "5.00" }))])),
            422,
            "unsupported_currency",
            "variants[0].prices.BRL",
        ),
        (
            product(json!([variant(json!({ "EUR": "-1.00" }))])),
            422,
            "negative_amount",
            "variants[0].prices.EUR",
        ),
        (
            product(json!([variant(json!({ "EUR": "1.001" }))])),
            422,
            "too_precise",
            "variants[0].prices.EUR",
        ),
        (
            product(json!([variant(json!({ "EUR": "1.00", "JPY": "100.5" }))])),
            422,
            "too_precise",
            "variants[0].prices.JPY",
        ),
        (
            product(json!([variant(json!({ "EUR": "1.00", "KWD": "1.0001" }))])),
            422,
            "too_precise",
            "variants[0].prices.KWD",
        ),
        (
            product(json!([variant(json!({ "EUR": 1.5 }))])),
            422,
            "invalid_field",
            "variants[0].prices.EUR",
        ),
        (
            json!({ "default_locale": "en", "content": { "en": { "title": "T" }, "xx-YY": { "title": "T" } },
                 "variants": [variant(json!({ "EUR": "1.00" }))] }),
            422,
            "unknown_locale",
            "content.xx-YY",
        ),
        (
            json!({ "default_locale": "english", "content": { "en": { "title": "T" } },
                 "variants": [variant(json!({ "EUR": "1.00" }))] }),
            422,
            "invalid_locale",
            "default_locale",
        ),
        (
            json!({ "default_locale": "de", "content": { "en": { "title": "T" } },
                 "variants": [variant(json!({ "EUR": "1.00" }))] }),
            422,
            "missing_default_content",
            "content.de",
        ),
        (
            product(json!([
                variant(json!({ "EUR": "1.00" })),
                variant(json!({ "EUR": "2.00" }))
            ])),
            422,
            "duplicate_sku",
            "variants[1].sku",
        ),
        (
            product(json!([{ "sku": "taken-m", "prices": { "EUR": "1.00" }, "stock": 1 }])),
            409,
            "sku_taken",
            "variants[0].sku",
        ),
        (
            product(json!([{ "sku": "bad sku!", "prices": { "EUR": "1.00" }, "stock": 1 }])),
            422,
            "invalid_sku",
            "variants[0].sku",
        ),
        (
            json!({ "default_locale": "en", "content": { "en": { "title": "x".repeat(201) } },
                 "variants": [variant(json!({ "EUR": "1.00" }))] }),
            422,
            "invalid_length",
            "content.en.title",
        ),
        (
            json!({ "default_locale": "en", "content": { "en": { "title": "T", "description": "d".repeat(10_001) } },
                 "variants": [variant(json!({ "EUR": "1.00" }))] }),
            422,
            "invalid_length",
            "content.en.description",
        ),
        (
            product(Value::Array(many)),
            422,
            "too_many_variants",
            "variants",
        ),
        (
            product(json!([{ "sku": "NEW-1", "prices": { "EUR": "1.00" }, "stock": -1 }])),
            422,
            "invalid_field",
            "variants[0].stock",
        ),
        (
            product(
                json!([{ "sku": "NEW-1", "prices": { "USD": "1.00" }, "stock": 1 }, { "sku": "NEW-2", "prices": { "EUR": "1.00" }, "stock": 1 }]),
            ),
            422,
            "missing_field",
            "base_currency",
        ),
        (
            json!({ "default_locale": "en", "base_currency": "USD", "content": { "en": { "title": "T" } },
                 "variants": [variant(json!({ "EUR": "1.00" }))] }),
            422,
            "missing_base_price",
            "variants[0].prices.USD",
        ),
        (
            product(
                json!([{ "sku": "NEW-1", "prices": { "EUR": "1.00" }, "stock": 1, "image_urls": ["ftp://x"] }]),
            ),
            422,
            "invalid_url",
            "variants[0].image_urls[0]",
        ),
    ];
    for (body, status, code, field) in cases {
        let response = app
            .call(Method::POST, "/api/v1/products", &key, Some(&body))
            .await;
        let got = response.status().as_u16();
        let error: Value = response.json().await.expect("json");
        assert_eq!(
            (got, error["error"]["code"].as_str()),
            (status, Some(code)),
            "{error}"
        );
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    // The body limit applies before any of this; a large valid product still fits.
    assert_eq!(
        counts(&app).await,
        before,
        "a refused product left rows behind"
    );
}

#[actix_web::test]
async fn a_seller_updates_content_prices_and_variants_and_archives_its_product() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Updater").await;
    let created = app.product(&key, &jacket("UPD")).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/v1/products/{id}");

    let patch = json!({
        "content": { "fr": { "title": "Veste de trail" }, "de": null },
        "variants": [
            { "sku": "UPD-M", "prices": { "EUR": "79.90" } },
            { "sku": "UPD-XL", "prices": { "EUR": "99.90" }, "stock": 2, "attributes": { "size": "XL" } }
        ]
    });
    let response = app.call(Method::PATCH, &path, &key, Some(&patch)).await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("json");
    assert!(updated["content"].get("de").is_none());
    assert_eq!(updated["content"]["fr"]["title"], "Veste de trail");
    assert_eq!(
        updated["variants"][0]["prices"],
        json!({ "EUR": "79.90" }),
        "prices replaced as a whole"
    );
    assert_eq!(updated["variants"][2]["sku"], "UPD-XL");
    assert_eq!(updated["version"], 2);

    let storefront: Value = app
        .get(&format!("{path}?locale=fr"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(storefront["title"], "Veste de trail");
    assert_eq!(storefront["price_from"]["amount"], "79.90");

    for (body, code, field) in [
        (
            json!({ "content": { "en": null } }),
            "missing_default_content",
            "content.en",
        ),
        (
            json!({ "variants": [{ "sku": "UPD-M", "stock": 9 }] }),
            "stock_not_patchable",
            "variants[0].stock",
        ),
        (
            json!({ "variants": [{ "sku": "UPD-NEW" }] }),
            "missing_field",
            "variants[0].prices",
        ),
        (
            json!({ "base_currency": "USD" }),
            "missing_base_price",
            "base_currency",
        ),
    ] {
        let response = app.call(Method::PATCH, &path, &key, Some(&body)).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(
            (
                error["error"]["code"].as_str(),
                error["error"]["field"].as_str()
            ),
            (Some(code), Some(field))
        );
    }

    let archived = app
        .call(Method::POST, &format!("{path}/archive"), &key, None)
        .await;
    assert_eq!(archived.status(), 200);
    assert_eq!(
        app.get(&path).await.status(),
        404,
        "archived products leave the storefront"
    );
    assert_eq!(app.get("/api/v1/inventory/UPD-M").await.status(), 404);
    let own = app
        .call(
            Method::GET,
            &format!("/api/v1/sellers/me/products/{id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(own.status(), 200, "the seller still sees it");
    let restored = app
        .call(Method::POST, &format!("{path}/restore"), &key, None)
        .await;
    assert_eq!(restored.status(), 200);
    assert_eq!(app.get(&path).await.status(), 200);
}

#[actix_web::test]
async fn stock_is_set_and_adjusted_through_a_ledger_and_read_live() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Stocker").await;
    app.product(&key, &jacket("STK")).await;

    let set = app
        .call(
            Method::PUT,
            "/api/v1/inventory/STK-M",
            &key,
            Some(&json!({ "stock_on_hand": 12, "reason": "stock-take" })),
        )
        .await;
    assert_eq!(set.status(), 200);
    let adjusted = app
        .call(
            Method::POST,
            "/api/v1/inventory/stk-m/adjustments",
            &key,
            Some(&json!({ "delta": -2, "reason": "damaged" })),
        )
        .await;
    assert_eq!(adjusted.status(), 200);
    let level: Value = adjusted.json().await.expect("json");
    assert_eq!(level["stock_on_hand"], 10);

    let too_many = app
        .call(
            Method::POST,
            "/api/v1/inventory/STK-M/adjustments",
            &key,
            Some(&json!({ "delta": -11, "reason": "lost" })),
        )
        .await;
    assert_eq!(too_many.status(), 409);
    let error: Value = too_many.json().await.expect("json");
    assert_eq!(error["error"]["code"], "insufficient_stock");

    let live = app.get("/api/v1/inventory/STK-M").await;
    assert_eq!(live.headers()["cache-control"], "no-store");
    let live: Value = live.json().await.expect("json");
    assert_eq!(live, json!({ "sku": "STK-M", "available": 10 }));

    let ledger: Value = app
        .call(Method::GET, "/api/v1/inventory/STK-M/ledger", &key, None)
        .await
        .json()
        .await
        .expect("json");
    let kinds: Vec<(&str, i64, i64)> = ledger
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default(),
                e["delta"].as_i64().unwrap_or_default(),
                e["stock_after"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![("adjust", -2, 10), ("set", 7, 12), ("initial", 5, 5)]
    );
}

#[actix_web::test]
async fn a_seller_never_reads_or_changes_another_sellers_products_or_stock() {
    let app = spawn_app().await;
    let (_, alice) = app.seller("Alice").await;
    let (_, bob) = app.seller("Bob").await;
    let product = app.product(&alice, &jacket("ALICE")).await;
    let id = product["id"].as_str().expect("id");

    let attempts = [
        (
            Method::GET,
            format!("/api/v1/sellers/me/products/{id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/products/{id}"),
            Some(json!({ "content": { "en": { "title": "Mine" } } })),
        ),
        (Method::POST, format!("/api/v1/products/{id}/archive"), None),
        (
            Method::PUT,
            "/api/v1/inventory/ALICE-M".to_owned(),
            Some(json!({ "stock_on_hand": 0 })),
        ),
        (
            Method::POST,
            "/api/v1/inventory/ALICE-M/adjustments".to_owned(),
            Some(json!({ "delta": -5, "reason": "x" })),
        ),
        (
            Method::GET,
            "/api/v1/inventory/ALICE-M/ledger".to_owned(),
            None,
        ),
    ];
    for (method, path, body) in attempts {
        let response = app.call(method.clone(), &path, &bob, body.as_ref()).await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let own: Value = app
        .call(Method::GET, "/api/v1/sellers/me/products", &bob, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(own["items"], json!([]));
    let mine: Value = app
        .call(Method::GET, "/api/v1/sellers/me/products", &alice, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        mine["items"][0]["content"]["en"]["title"], "Trail running jacket",
        "nothing changed"
    );
    assert_eq!(mine["items"][0]["variants"][0]["stock_on_hand"], 5);
}

#[actix_web::test]
async fn new_exchange_rates_rebuild_listing_prices_once_even_when_processes_start_together() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Rates").await;
    app.product(
        &key,
        &json!({
            "default_locale": "en", "content": { "en": { "title": "Kettle" } },
            "variants": [{ "sku": "RATE-1", "prices": { "EUR": "10.00" }, "stock": 1 }]
        }),
    )
    .await;

    let mut settings = app.settings.clone();
    settings.fx.rates.insert("USD".into(), "2.0".into());
    let pricing = settings.pricing().expect("pricing");
    let pool = agora::db::build_pool(&settings.database).expect("pool");
    let (mut first, mut second) = (
        pool.get().await.expect("conn"),
        pool.get().await.expect("conn"),
    );
    let (a, b) = futures_util::join!(
        agora::catalog::sync_exchange_rates(&mut first, &pricing.fx),
        agora::catalog::sync_exchange_rates(&mut second, &pricing.fx)
    );
    let rebuilt = [a.expect("first process"), b.expect("second process")];
    assert_eq!(
        rebuilt.iter().filter(|r| **r).count(),
        1,
        "exactly one process rebuilt: {rebuilt:?}"
    );

    let usd: String = app
        .db()
        .await
        .query_one(
            "SELECT amount::text FROM product_listing_prices WHERE currency = 'USD'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(usd, "20.0000");
}
