//! Hostile and careless input (#22): control characters in bodies, queries, paths and socket
//! messages, keys given twice, and a change to a line the cart does not have, each answered
//! with a 4xx naming the field, never a 500 or half-written state.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    carts::{cart, regions, shopper, stocked},
    helpers::{spawn_app, TestApp},
    realtime::{connect, next, say},
};

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error");
    (status, body["error"].clone())
}

#[actix_web::test]
async fn a_nul_character_in_a_query_or_a_path_is_a_400_naming_it_even_without_a_login() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/api/v1/products?q=%00", "q"),
        ("/api/v1/products?q=mug%01&locale=en", "q"),
        ("/api/v1/inventory/%00", "path"),
        ("/?q=%00", "q"),
    ] {
        let (status, error) = error_of(app.get(path).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error["code"], "invalid_characters", "{path}");
        assert_eq!(error["field"], field, "{path}");
    }
}

#[actix_web::test]
async fn control_characters_in_a_body_are_a_422_naming_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Hygiene").await;
    let product = json!({
        "default_locale": "en",
        "content": { "en": { "title": "Mug\u{0000}", "description": "two\nlines" } },
        "variants": [{ "sku": "CLEAN-1", "prices": { "EUR": "5.00" }, "stock": 1 }]
    });
    let response = app
        .call(Method::POST, "/api/v1/products", &key, Some(&product))
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (error["code"].as_str(), error["field"].as_str()),
        (Some("invalid_characters"), Some("content.en.title"))
    );
    let written: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM variants WHERE sku = 'CLEAN-1'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(written, 0, "nothing was written");
}

#[actix_web::test]
async fn a_key_given_twice_inside_a_map_is_refused_instead_of_the_last_one_winning() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Twice").await;
    let body = r#"{"default_locale": "en", "content": {"en": {"title": "Mug"}},
                   "variants": [{"sku": "TWICE-1", "prices": {"EUR": "1.00", "EUR": "0.01"}, "stock": 1}]}"#;
    let response = app
        .client
        .post(app.url("/api/v1/products"))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["code"], "duplicate_key");
    assert_eq!(error["field"], "variants[0].prices.EUR");
}

async fn a_cart_with_one_mug(app: &TestApp) -> (String, String) {
    regions(app).await;
    stocked(app, "LINE-1", 5).await;
    stocked(app, "LINE-2", 5).await;
    let token = shopper(app).await;
    let cart = cart(app, &token, "EU").await;
    let added = crate::carts::add(app, &token, &cart, "LINE-1", 1).await;
    assert_eq!(added.status(), StatusCode::OK);
    (token, cart)
}

#[actix_web::test]
async fn setting_the_quantity_of_a_line_the_cart_does_not_have_is_a_404_and_adds_nothing() {
    let app = spawn_app().await;
    let (token, cart) = a_cart_with_one_mug(&app).await;
    let response = app
        .call(
            Method::PATCH,
            &format!("/api/v1/carts/{cart}/items/LINE-2"),
            &token,
            Some(&json!({ "quantity": 2 })),
        )
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "not_found");
    assert_eq!(
        crate::carts::available(&app, "LINE-2").await,
        5,
        "nothing held"
    );
}

#[actix_web::test]
async fn a_socket_subscribing_to_an_sku_with_a_nul_is_told_its_message_is_invalid() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "/ws", None).await;
    say(
        &mut socket,
        json!({ "type": "subscribe", "skus": ["MUG\u{0000}"] }),
    )
    .await;
    let answer = next(&mut socket, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("invalid_message"))
    );
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/sessions",
        &json!({ "email": email, "password": password }),
    )
    .await
}

#[actix_web::test]
async fn failed_sign_ins_to_one_account_are_throttled_on_every_process_and_unknown_accounts_alike()
{
    let app = spawn_app().await;
    let other = crate::realtime::second_process(&app).await;
    let created = app
        .post_json(
            "/api/v1/shoppers",
            &json!({ "email": "ana@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // Five wrong passwords, through either process, use up the account's window.
    for attempt in 0..5 {
        let through = if attempt % 2 == 0 { &app } else { &other };
        let refused = sign_in(through, "ana@example.com", "wrong horse").await;
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    for through in [&app, &other] {
        let throttled = sign_in(through, "ana@example.com", "correct horse").await;
        assert_eq!(
            throttled.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "even the right password"
        );
        let retry: u64 = throttled.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=900).contains(&retry), "Retry-After {retry}");
        assert_eq!(error_of(throttled).await.1["code"], "rate_limited");
    }

    // An account that does not exist is throttled the same way: the answers reveal nothing.
    let mut unknown = Vec::new();
    for _ in 0..6 {
        unknown.push(
            sign_in(&app, "nobody@example.com", "whatever")
                .await
                .status(),
        );
    }
    assert_eq!(unknown[..5], [StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(unknown[5], StatusCode::TOO_MANY_REQUESTS);

    // Another account from the same address still signs in.
    app.post_json(
        "/api/v1/shoppers",
        &json!({ "email": "bo@example.com", "password": "correct horse" }),
    )
    .await;
    assert_eq!(
        sign_in(&app, "bo@example.com", "correct horse")
            .await
            .status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn query_parameters_outside_their_range_and_bad_cursors_are_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Bounds").await;
    app.product(
        &key,
        &json!({
            "default_locale": "en", "content": { "en": { "title": "Mug" } },
            "variants": [{ "sku": "BOUND-1", "prices": { "EUR": "5.00" }, "stock": 3 }]
        }),
    )
    .await;
    for (path, code, field) in [
        (
            "/api/v1/inventory/BOUND-1/ledger?limit=-1",
            "invalid_limit",
            "limit",
        ),
        (
            "/api/v1/inventory/BOUND-1/ledger?limit=100000",
            "invalid_limit",
            "limit",
        ),
        (
            "/api/v1/sellers/me/products?cursor=nope",
            "invalid_cursor",
            "cursor",
        ),
    ] {
        let (status, error) = error_of(app.call(Method::GET, path, &key, None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            (error["code"].as_str(), error["field"].as_str()),
            (Some(code), Some(field)),
            "{path}"
        );
    }
    let within = app
        .call(
            Method::GET,
            "/api/v1/inventory/BOUND-1/ledger?limit=200",
            &key,
            None,
        )
        .await;
    assert_eq!(within.status(), StatusCode::OK);
}

#[actix_web::test]
async fn every_counter_an_alert_reads_is_exported_before_its_first_event() {
    let app = spawn_app().await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for series in [
        "agora_http_panics_total",
        "agora_inventory_guard_refusals_total",
        "agora_commit_group_refused_total",
        "agora_realtime_notices_dropped_total",
        "agora_db_pool_timeouts_total",
        "agora_actor_restarts_total{actor=\"inventory_shard\"}",
        "agora_actor_restarts_total{actor=\"cart\"}",
        "agora_sign_in_throttled_total{by=\"account\"}",
        "agora_unauthorized_throttled_total",
        "agora_mail_failures_total{kind=\"gave_up\"}",
        "agora_actor_restarts_total{actor=\"mail_sender\"}",
    ] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with(&format!("{series} "))),
            "{series} is not exported:\n{metrics}"
        );
    }
}
