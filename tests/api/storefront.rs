//! What shoppers see: locales, currencies, search, filters, pagination and HTTP caching.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

fn product(title_en: &str, sku: &str, eur: &str) -> Value {
    json!({
        "default_locale": "en",
        "content": { "en": { "title": title_en } },
        "variants": [{ "sku": sku, "prices": { "EUR": eur }, "stock": 1 }]
    })
}

#[actix_web::test]
async fn content_falls_back_from_region_to_language_to_the_default_and_says_which_was_served() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Lingua").await;
    let created = app
        .product(
            &key,
            &json!({
                "default_locale": "fr",
                "content": {
                    "fr": { "title": "Veste" },
                    "de": { "title": "Jacke" },
                    "de-CH": { "title": "Jaggä" },
                    "en": { "title": "Jacket" }
                },
                "variants": [{ "sku": "LOC-1", "prices": { "EUR": "10.00" }, "stock": 1 }]
            }),
        )
        .await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().expect("id"));

    for (query, header, locale, title) in [
        ("?locale=de-AT", None, "de", "Jacke"),
        ("?locale=de-CH", None, "de-CH", "Jaggä"),
        ("?locale=ja", None, "fr", "Veste"),
        ("", Some("it-IT, de;q=0.7, en;q=0.9"), "en", "Jacket"),
        ("", Some("pt-BR"), "fr", "Veste"),
        ("?locale=de", Some("en"), "de", "Jacke"),
    ] {
        let mut request = app.client.get(app.url(&format!("{path}{query}")));
        if let Some(header) = header {
            request = request.header("accept-language", header);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(
            response.headers()["content-language"],
            locale,
            "{query} {header:?}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            (body["locale"].as_str(), body["title"].as_str()),
            (Some(locale), Some(title)),
            "{query} {header:?}"
        );
    }
    let listing = get_json(&app, "/api/v1/products?locale=de-AT").await;
    assert_eq!(listing["items"][0]["locale"], "de");
    assert_eq!(listing["items"][0]["title"], "Jacke");

    let bad = app.get(&format!("{path}?locale=klingon")).await;
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.expect("json");
    assert_eq!(error["error"]["field"], "locale");
}

#[actix_web::test]
async fn prices_show_in_eur_usd_jpy_and_kwd_with_their_minor_units_and_conversions_are_marked() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Prices").await;
    let created = app
        .product(&key, &json!({
            "default_locale": "en",
            "content": { "en": { "title": "Lamp" } },
            "variants": [
                { "sku": "LAMP-1", "prices": { "EUR": "89.90", "USD": "99.00", "JPY": "12800", "KWD": "30.125" }, "stock": 1 },
                { "sku": "LAMP-2", "prices": { "EUR": "100.00" }, "stock": 1 }
            ]
        }))
        .await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().expect("id"));

    // Config rates: 1 EUR = 1.0850 USD = 162.30 JPY = 0.3330 KWD = 0.8560 GBP.
    for (currency, explicit, converted) in [
        ("EUR", "89.90", "100.00"),
        ("USD", "99.00", "108.50"),
        ("JPY", "12800", "16230"),
        ("KWD", "30.125", "33.300"),
    ] {
        let body = get_json(&app, &format!("{path}?currency={currency}")).await;
        assert_eq!(body["currency"], currency);
        assert_eq!(
            body["variants"][0]["price"],
            json!({ "amount": explicit, "currency": currency, "converted": false })
        );
        let expected_converted = currency != "EUR";
        assert_eq!(
            body["variants"][1]["price"],
            json!({ "amount": converted, "currency": currency, "converted": expected_converted })
        );
        assert_eq!(body["price_from"]["amount"], explicit);
    }
    // 89.90 EUR in GBP: 89.90 × 0.856 = 76.9544 → 76.95 (half away from zero at 2 decimals).
    let gbp = get_json(&app, &format!("{path}?currency=GBP")).await;
    assert_eq!(
        gbp["variants"][0]["price"],
        json!({ "amount": "76.95", "currency": "GBP", "converted": true })
    );
    let listing = get_json(&app, "/api/v1/products?currency=JPY").await;
    assert_eq!(
        listing["items"][0]["price_from"],
        json!({ "amount": "12800", "currency": "JPY", "converted": false })
    );

    let unsupported = app.get(&format!("{path}?currency=BRL")).await;
    assert_eq!(unsupported.status(), 400);
    let error: Value = unsupported.json().await.expect("json");
    assert_eq!(
        (
            error["error"]["code"].as_str(),
            error["error"]["field"].as_str()
        ),
        (Some("unsupported_currency"), Some("currency"))
    );
}

#[actix_web::test]
async fn search_stems_words_in_the_requested_language() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Search").await;
    let shoes = app
        .product(
            &key,
            &json!({
                "default_locale": "en",
                "content": {
                    "en": { "title": "Running shoes", "description": "Light shoes for long runs" },
                    "de": { "title": "Laufschuhe", "description": "Leichte Schuhe für lange Läufe" }
                },
                "variants": [{ "sku": "SHOE-1", "prices": { "EUR": "120.00" }, "stock": 1 }]
            }),
        )
        .await;
    app.product(&key, &json!({
        "default_locale": "en",
        "content": { "en": { "title": "Rain jacket" }, "de": { "title": "Regenjacken für Wanderer" } },
        "variants": [{ "sku": "RAIN-1", "prices": { "EUR": "60.00" }, "stock": 1 }]
    }))
    .await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let shoe_id = shoes["id"].as_str().expect("id").to_owned();
    // English stemming: "runs" and "running" share the stem "run".
    assert_eq!(
        ids(&get_json(&app, "/api/v1/products?locale=en&q=run").await),
        vec![shoe_id.clone()]
    );
    // German stemming: "Schuh" matches "Schuhe".
    let german = get_json(&app, "/api/v1/products?locale=de&q=schuh").await;
    assert_eq!(ids(&german), vec![shoe_id.clone()]);
    assert_eq!(german["items"][0]["title"], "Laufschuhe");
    // German words do not match through the English configuration, and vice versa.
    assert!(ids(&get_json(&app, "/api/v1/products?locale=en&q=schuh").await).is_empty());
    assert_eq!(
        ids(&get_json(&app, "/api/v1/products?locale=de&q=wanderer").await).len(),
        1
    );
    // Accept-Language picks the search language too.
    let via_header: Value = app
        .client
        .get(app.url("/api/v1/products?q=leichte"))
        .header("accept-language", "de-DE")
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&via_header), vec![shoe_id]);
}

#[actix_web::test]
async fn filters_and_price_sorts_use_the_requested_currency() {
    let app = spawn_app().await;
    let (seller_a, key_a) = app.seller("Filter A").await;
    let (_, key_b) = app.seller("Filter B").await;
    app.product(&key_a, &product("Cheap", "F-CHEAP", "5.00"))
        .await;
    app.product(&key_a, &product("Middle", "F-MID", "50.00"))
        .await;
    app.product(&key_b, &product("Dear", "F-DEAR", "500.00"))
        .await;
    let empty = app
        .product(&key_b, &product("Sold out", "F-EMPTY", "20.00"))
        .await;
    app.call(
        Method::PUT,
        "/api/v1/inventory/F-EMPTY",
        &key_b,
        Some(&json!({ "stock_on_hand": 0 })),
    )
    .await;

    let titles = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["title"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        titles(&get_json(&app, "/api/v1/products?sort=price").await),
        ["Cheap", "Sold out", "Middle", "Dear"]
    );
    assert_eq!(
        titles(&get_json(&app, "/api/v1/products?sort=price_desc").await),
        ["Dear", "Middle", "Sold out", "Cheap"]
    );
    assert_eq!(
        titles(&get_json(&app, "/api/v1/products?sort=price&in_stock=true").await),
        ["Cheap", "Middle", "Dear"]
    );
    assert_eq!(
        titles(
            &get_json(
                &app,
                &format!("/api/v1/products?sort=price&seller={seller_a}")
            )
            .await
        ),
        ["Cheap", "Middle"]
    );
    // 50.00 EUR = 8115 JPY; 500 EUR = 81150 JPY.
    assert_eq!(
        titles(
            &get_json(
                &app,
                "/api/v1/products?sort=price&currency=JPY&min_price=8115&max_price=81149"
            )
            .await
        ),
        ["Middle"]
    );
    assert!(empty["id"].is_string());

    for (query, field) in [
        ("sort=cheapest", "sort"),
        ("limit=0", "limit"),
        ("min_price=abc", "min_price"),
        ("currency=JPY&min_price=1.5", "min_price"),
        ("min_price=9&max_price=1", "min_price"),
        ("seller=42", "seller"),
        ("in_stock=maybe", "in_stock"),
        ("cursor=garbage", "cursor"),
    ] {
        let response = app.get(&format!("/api/v1/products?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{query}");
    }
}

#[actix_web::test]
async fn paging_with_cursors_neither_repeats_nor_skips_while_products_are_inserted() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Pager").await;
    let mut originals = Vec::new();
    for i in 0..25 {
        let created = app
            .product(
                &key,
                &product(
                    &format!("Item {i}"),
                    &format!("PAGE-{i}"),
                    &format!("{}.00", 10 + i % 7),
                ),
            )
            .await;
        originals.push(created["id"].as_str().expect("id").to_owned());
    }
    for sort in ["newest", "price", "price_desc"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut inserted = 0;
        loop {
            let mut path = format!("/api/v1/products?limit=4&sort={sort}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = get_json(&app, &path).await;
            for item in page["items"].as_array().expect("items") {
                seen.push(item["id"].as_str().expect("id").to_owned());
            }
            // Concurrent sellers keep adding products between pages.
            app.product(
                &key,
                &product("Newcomer", &format!("NEW-{sort}-{inserted}"), "12.00"),
            )
            .await;
            inserted += 1;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: a product appeared twice");
        for original in &originals {
            assert!(
                unique.contains(original),
                "{sort}: product {original} was skipped"
            );
        }
    }
}

#[actix_web::test]
async fn catalog_reads_carry_validators_and_a_matching_if_none_match_gets_304() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Cacher").await;
    let created = app.product(&key, &product("Mug", "MUG-1", "12.00")).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/v1/products/{id}?currency=USD");

    let first = app.get(&path).await;
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(first.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("max-age=60"));
    assert!(first.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("stale-while-revalidate="));
    assert_eq!(first.headers()["vary"], "Accept-Language");

    let again = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("body").is_empty());

    // A seller's change is visible at once (the hot cache is evicted) and changes the ETag.
    let patch = json!({ "content": { "en": { "title": "Big mug" } } });
    assert_eq!(
        app.call(
            Method::PATCH,
            &format!("/api/v1/products/{id}"),
            &key,
            Some(&patch)
        )
        .await
        .status(),
        200
    );
    let changed = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("etag"), etag);
    let body: Value = changed.json().await.expect("json");
    assert_eq!(body["title"], "Big mug");

    let listing = app.get("/api/v1/products").await;
    assert!(listing.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .contains("max-age=5"));
    let listing_etag = listing.headers()["etag"].to_str().expect("etag").to_owned();
    let listing_again = app
        .client
        .get(app.url("/api/v1/products"))
        .header("if-none-match", listing_etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(listing_again.status(), 304);
}

#[actix_web::test]
async fn product_pages_never_carry_stock_which_comes_live_from_inventory() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Live").await;
    let created = app.product(&key, &product("Pen", "PEN-1", "2.00")).await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().expect("id"));
    let page = get_json(&app, &path).await;
    assert!(!page.to_string().contains("stock"), "{page}");
    assert_eq!(
        page["variants"][0]["inventory_url"],
        "/api/v1/inventory/PEN-1"
    );
    // Warm the hot cache, change stock, and read it live.
    get_json(&app, &path).await;
    app.call(
        Method::PUT,
        "/api/v1/inventory/PEN-1",
        &key,
        Some(&json!({ "stock_on_hand": 42 })),
    )
    .await;
    assert_eq!(
        get_json(&app, "/api/v1/inventory/PEN-1").await["available"],
        42
    );
}

#[actix_web::test]
async fn the_openapi_document_covers_every_api_route() {
    let app = spawn_app().await;
    let document = get_json(&app, "/openapi.json").await;
    assert!(document["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));
    let paths = document["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v1/sellers", "post"),
        ("/api/v1/sellers/me", "get"),
        ("/api/v1/sellers/me/products", "get"),
        ("/api/v1/sellers/me/products/{id}", "get"),
        ("/api/v1/shoppers", "post"),
        ("/api/v1/shoppers/me", "get"),
        ("/api/v1/sessions", "post"),
        ("/api/v1/sessions/current", "delete"),
        ("/api/v1/products", "get"),
        ("/api/v1/products", "post"),
        ("/api/v1/products/{id}", "get"),
        ("/api/v1/products/{id}", "patch"),
        ("/api/v1/products/{id}/archive", "post"),
        ("/api/v1/products/{id}/restore", "post"),
        ("/api/v1/inventory/{sku}", "get"),
        ("/api/v1/inventory/{sku}", "put"),
        ("/api/v1/inventory/{sku}/adjustments", "post"),
        ("/api/v1/inventory/{sku}/ledger", "get"),
        ("/api/v1/regions", "get"),
        ("/api/v1/regions/{code}", "get"),
        ("/api/v1/regions/{code}", "put"),
        ("/api/v1/operator/sellers/{id}/suspend", "post"),
        ("/api/v1/operator/sellers/{id}/reinstate", "post"),
        ("/api/v1/carts", "post"),
        ("/api/v1/carts/{id}", "get"),
        ("/api/v1/carts/{id}/items", "post"),
        ("/api/v1/carts/{id}/items/{sku}", "patch"),
        ("/api/v1/carts/{id}/items/{sku}", "delete"),
        ("/api/v1/carts/{id}/shipping", "put"),
    ] {
        let operation = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for schema in [
        "NewProduct",
        "ErrorBody",
        "StorefrontProduct",
        "ListingPage",
        "RegionInput",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
}
