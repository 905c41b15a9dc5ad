//! Flash sales: a fair queue across processes that sells exactly the quantity, admissions that
//! cannot be forged or reused, and a per-shopper limit that holds across tabs and processes.

use std::{collections::HashMap, time::Duration};

use agora::configuration::Settings;
use futures_util::{stream, StreamExt};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::{
    carts::{available, shopper},
    helpers::{spawn_app_with, spawn_processes, TestApp},
    realtime::{connect, next, say},
};

const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const OPERATOR: &str = "test-operator-token";

/// A region without shipping, so purchases need no address.
async fn digital_region(app: &TestApp) {
    let digital = json!({
        "name": "Digital", "currency": "EUR", "countries": ["DE"], "tax_inclusive": true,
        "tax_rates": { "default": "0.19" }, "shipping_options": []
    });
    let created = app
        .call(Method::PUT, "/api/v1/regions/DG", OPERATOR, Some(&digital))
        .await;
    assert!(created.status().is_success());
}

/// A seller with `stock` units of `sku`; returns its API key.
async fn seller_with(app: &TestApp, sku: &str, stock: u32) -> String {
    let (_, key) = app.seller(&format!("Flash seller {sku}")).await;
    app.product(&key, &json!({
        "default_locale": "en", "content": { "en": { "title": "Console" }, "de": { "title": "Konsole" } },
        "variants": [{ "sku": sku, "prices": { "EUR": "399.00" }, "stock": stock, "weight_grams": 3000 }]
    }))
    .await;
    key
}

/// Schedules a sale that starts in an hour (tests move the clock with [`open_now`]).
async fn schedule(app: &TestApp, key: &str, sku: &str, quantity: u32, limit: u32) -> String {
    let now = chrono::Utc::now();
    let response = app
        .call(
            Method::POST,
            "/api/v1/flash-sales",
            key,
            Some(&json!({
                "sku": sku, "quantity": quantity, "prices": { "EUR": "99.00" },
                "starts_at": now + chrono::Duration::hours(1),
                "ends_at": now + chrono::Duration::hours(2),
                "per_shopper_limit": limit,
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["state"], "scheduled");
    assert_eq!(body["prices"]["EUR"], "99.00");
    body["id"].as_str().expect("id").to_owned()
}

/// The sale's start time arrives: the queue leader opens it within a tick or two.
async fn open_now(app: &TestApp, sale: &str) {
    app.db()
        .await
        .execute(
            "UPDATE flash_sales SET starts_at = now() WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("start moved");
}

async fn join(app: &TestApp, token: &str, sale: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/api/v1/flash-sales/{sale}/queue"),
        token,
        None,
    )
    .await
}

async fn me(app: &TestApp, token: &str, sale: &str) -> Value {
    app.call(
        Method::GET,
        &format!("/api/v1/flash-sales/{sale}/queue/me"),
        token,
        None,
    )
    .await
    .json()
    .await
    .expect("json")
}

async fn purchase(
    app: &TestApp,
    token: &str,
    sale: &str,
    key: &str,
    admission: &str,
    quantity: u32,
    card: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/flash-sales/{sale}/purchase")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({
            "admission_token": admission, "quantity": quantity, "region": "DG",
            "payment": { "card_number": card }
        }))
        .send()
        .await
        .expect("request sent")
}

/// Polls the shopper's ticket until it is no longer waiting, as a client would: a request
/// the crowded test server drops (its one worker is busy past the request timeout) is retried.
async fn wait_out(app: &TestApp, token: &str, sale: &str, every: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = app
            .client
            .get(app.url(&format!("/api/v1/flash-sales/{sale}/queue/me")))
            .bearer_auth(token)
            .send()
            .await;
        let status = match answer {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let waiting = status.is_null() || status["state"] == "waiting";
        if !waiting || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(every).await;
    }
}

async fn scalar(app: &TestApp, sql: &str, sale: &str) -> i64 {
    app.db()
        .await
        .query_one(sql, &[&sale])
        .await
        .expect(sql)
        .get::<_, i64>(0)
}

/// Tickets never admitted while a higher one was: 0 when admission kept ticket order.
async fn skipped_tickets(app: &TestApp, sale: &str) -> i64 {
    scalar(
        app,
        "SELECT count(*) FROM flash_sale_tickets a JOIN flash_sale_tickets b
           ON b.sale_id = a.sale_id AND a.ticket < b.ticket
         WHERE a.sale_id = $1::text::uuid AND a.admitted_at IS NULL
           AND b.admitted_at IS NOT NULL",
        sale,
    )
    .await
}

/// Two processes on one database and one Redis key prefix, with `customize`d flash sales.
async fn two_processes(customize: fn(&mut Settings)) -> (TestApp, TestApp) {
    let first = spawn_app_with(customize).await;
    let (url, prefix) = (
        first.settings.database.url.clone(),
        first.settings.redis.prefix.clone(),
    );
    let second = spawn_app_with(move |settings| {
        settings.database.url = SecretString::from(url);
        settings.redis.prefix = prefix;
        customize(settings);
    })
    .await;
    (first, second)
}

#[actix_web::test]
async fn two_thousand_shoppers_through_two_processes_buy_exactly_the_quantity_in_ticket_order() {
    const SHOPPERS: usize = 2000;
    let (first, second) = two_processes(|settings| settings.flash_sales.admit_per_sec = 200).await;
    let apps = [&first, &second];
    digital_region(&first).await;
    let key = seller_with(&first, "FLASH-1", 150).await;
    let sale = schedule(&first, &key, "FLASH-1", 100, 1).await;

    let tokens: Vec<String> = stream::iter(0..SHOPPERS)
        .map(|n| shopper(apps[n % 2]))
        .buffered(32)
        .collect()
        .await;
    // Everyone joins before the start, half through each process; joining again answers the
    // same ticket.
    let tickets: Vec<i64> = stream::iter(tokens.iter().enumerate())
        .map(|(n, token)| {
            let (app, sale) = (apps[n % 2], sale.clone());
            async move {
                let response = join(app, token, &sale).await;
                assert_eq!(response.status(), 201);
                let body: Value = response.json().await.expect("json");
                assert_eq!(body["state"], "waiting");
                body["ticket"].as_i64().expect("ticket")
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut sorted = tickets.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        SHOPPERS,
        "every shopper has a ticket of their own"
    );
    let again = join(&second, &tokens[0], &sale).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.expect("json");
    assert_eq!(
        again["ticket"],
        me(&first, &tokens[0], &sale).await["ticket"]
    );

    // Some shoppers watch over a socket: their position before the start, then the outcome.
    let mut watchers = Vec::new();
    for (n, token) in tokens.iter().enumerate().step_by(SHOPPERS / 20) {
        let mut socket = connect(apps[n % 2], "/ws", Some(token)).await;
        say(
            &mut socket,
            json!({ "type": "follow_queue", "sale_id": sale }),
        )
        .await;
        let first_message = next(&mut socket, Duration::from_secs(5))
            .await
            .expect("queue status");
        assert_eq!(first_message["type"], "queue", "{first_message}");
        assert_eq!(first_message["state"], "waiting", "{first_message}");
        assert!(first_message["position"].as_i64().expect("position") >= 1);
        watchers.push(socket);
    }

    open_now(&first, &sale).await;
    let outcomes: Vec<String> = stream::iter(tokens.iter().enumerate())
        .map(|(n, token)| {
            let (app, sale) = (apps[n % 2], sale.clone());
            async move {
                let status = wait_out(app, token, &sale, Duration::from_millis(1500)).await;
                match status["state"].as_str() {
                    Some("admitted") => {
                        let admission = status["admission_token"].as_str().expect("token");
                        let response =
                            purchase(app, token, &sale, "buy", admission, 1, APPROVED).await;
                        response.status().as_str().to_owned()
                    }
                    other => other.unwrap_or("?").to_owned(),
                }
            }
        })
        .buffer_unordered(SHOPPERS)
        .collect()
        .await;
    let mut counted: HashMap<&str, usize> = HashMap::new();
    for outcome in &outcomes {
        *counted.entry(outcome.as_str()).or_default() += 1;
    }
    assert_eq!(counted.get("201"), Some(&100), "{counted:?}");
    assert_eq!(
        counted.get("sold_out"),
        Some(&(SHOPPERS - 100)),
        "{counted:?}"
    );

    // Every watcher still waiting was told the sale sold out; the admitted ones got a token.
    for mut socket in watchers {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            match next(&mut socket, Duration::from_secs(5)).await {
                Some(message) if message["type"] == "queue" => {
                    last = message;
                    if last["state"] == "sold_out" || last["state"] == "admitted" {
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        assert!(
            last["state"] == "sold_out" || last["admission_token"].is_string(),
            "{last}"
        );
    }

    let db = first.db().await;
    let row = db
        .query_one(
            "SELECT state, reserved, allocated FROM flash_sales WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("sale");
    assert_eq!(
        (
            row.get::<_, &str>(0),
            row.get::<_, i32>(1),
            row.get::<_, i32>(2)
        ),
        ("sold_out", 0, 100)
    );
    assert_eq!(
        scalar(
            &first,
            "SELECT count(*) FROM orders o JOIN stock_holds h ON h.order_id = o.id
             WHERE h.sale_id = $1::text::uuid AND o.status = 'paid'",
            &sale
        )
        .await,
        100
    );
    assert_eq!(
        scalar(
            &first,
            "SELECT count(*) FROM flash_sale_tickets WHERE sale_id = $1::text::uuid",
            &sale
        )
        .await,
        SHOPPERS as i64
    );
    // Admitted in ticket order: no ticket was admitted before a lower one, and every ticket
    // admitted is lower than every ticket never admitted.
    assert_eq!(
        scalar(
            &first,
            "SELECT count(*) FROM flash_sale_tickets a JOIN flash_sale_tickets b
               ON b.sale_id = a.sale_id AND a.ticket < b.ticket
             WHERE a.sale_id = $1::text::uuid AND a.admitted_at > b.admitted_at",
            &sale
        )
        .await,
        0
    );
    assert_eq!(skipped_tickets(&first, &sale).await, 0);
    // The 50 units outside the sale stay on sale normally.
    assert_eq!(available(&first, "FLASH-1").await, 50);
}

/// A shopper admitted to `sale` (joined alone, the sale opened).
async fn admitted(app: &TestApp, sale: &str) -> (String, String) {
    let token = shopper(app).await;
    assert_eq!(join(app, &token, sale).await.status(), 201);
    open_now(app, sale).await;
    let status = wait_out(app, &token, sale, Duration::from_millis(50)).await;
    assert_eq!(status["state"], "admitted", "{status}");
    let admission = status["admission_token"]
        .as_str()
        .expect("admission token")
        .to_owned();
    (token, admission)
}

#[actix_web::test]
async fn the_per_shopper_limit_holds_across_tabs_and_processes() {
    let (first, second) = two_processes(|_| {}).await;
    digital_region(&first).await;
    let key = seller_with(&first, "FLASH-2", 10).await;
    let sale = schedule(&first, &key, "FLASH-2", 10, 2).await;
    let (token, admission) = admitted(&first, &sale).await;

    let over = purchase(&first, &token, &sale, "too-many", &admission, 3, APPROVED).await;
    assert_eq!(over.status(), 422);
    let over: Value = over.json().await.expect("json");
    assert_eq!(over["error"]["code"], "per_shopper_limit_exceeded");
    assert_eq!(over["error"]["field"], "quantity");

    // Two tabs, one on each process, buy at once with the same admission.
    let (a, b) = futures_util::join!(
        purchase(&first, &token, &sale, "tab-a", &admission, 2, APPROVED),
        purchase(&second, &token, &sale, "tab-b", &admission, 2, APPROVED),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 403]);
    let refused: Value = if a.status() == 403 { a } else { b }
        .json()
        .await
        .expect("json");
    assert_eq!(refused["error"]["code"], "not_admitted");
    // Joining again gives the same, used ticket: no second admission.
    assert_eq!(join(&second, &token, &sale).await.status(), 200);
    assert_eq!(me(&second, &token, &sale).await["state"], "purchased");
    assert_eq!(
        scalar(
            &first,
            "SELECT sum(bought)::int8 FROM flash_sale_tickets WHERE sale_id = $1::text::uuid",
            &sale
        )
        .await,
        2
    );
}

#[actix_web::test]
async fn forged_tampered_foreign_and_replayed_admissions_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    digital_region(&app).await;
    let key = seller_with(&app, "FLASH-3", 10).await;
    let sale = schedule(&app, &key, "FLASH-3", 5, 1).await;
    let (token, admission) = admitted(&app, &sale).await;
    let intruder = shopper(&app).await;

    let (payload, signature) = admission.split_once('.').expect("token shape");
    let mut flipped = payload.as_bytes().to_vec();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{}.{signature}", String::from_utf8(flipped).expect("ascii"));
    for (who, bad) in [
        (&token, tampered.as_str()),
        (&token, "bm90LWEtdG9rZW4.c2lnbmF0dXJl"),
        (&token, ""),
        (&intruder, admission.as_str()),
    ] {
        let refused = purchase(&app, who, &sale, &format!("try-{bad}"), bad, 1, APPROVED).await;
        assert_eq!(refused.status(), 403, "{bad}");
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_admission", "{bad}");
    }

    let bought = purchase(&app, &token, &sale, "first", &admission, 1, APPROVED).await;
    assert_eq!(bought.status(), 201);
    let order: Value = bought.json().await.expect("json");
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total"]["amount"], "99.00");
    // The same key replays the order; the same admission under another key buys nothing.
    let replayed = purchase(&app, &token, &sale, "first", &admission, 1, APPROVED).await;
    assert_eq!(replayed.status(), 201);
    assert_eq!(
        replayed.json::<Value>().await.expect("json")["id"],
        order["id"]
    );
    let reused = purchase(&app, &token, &sale, "second", &admission, 1, APPROVED).await;
    assert_eq!(reused.status(), 403);
    assert_eq!(
        reused.json::<Value>().await.expect("json")["error"]["code"],
        "not_admitted"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM stock_holds WHERE sale_id = $1::text::uuid AND released_at IS NULL",
            &sale
        )
        .await,
        1
    );
}

#[actix_web::test]
async fn a_lapsed_admission_is_refused_and_its_unit_goes_to_the_next_ticket() {
    // Windows of 3 s: long enough for the next shopper's two purchases on a loaded machine.
    let app = spawn_app_with(|settings| settings.flash_sales.admission_window_secs = 3).await;
    digital_region(&app).await;
    let key = seller_with(&app, "FLASH-4", 10).await;
    let sale = schedule(&app, &key, "FLASH-4", 1, 1).await;
    let late = shopper(&app).await;
    let next_in_line = shopper(&app).await;
    assert_eq!(join(&app, &late, &sale).await.status(), 201);
    assert_eq!(join(&app, &next_in_line, &sale).await.status(), 201);
    open_now(&app, &sale).await;
    let status = wait_out(&app, &late, &sale, Duration::from_millis(50)).await;
    assert_eq!(status["state"], "admitted");
    assert_eq!(me(&app, &next_in_line, &sale).await["position"], 1);

    tokio::time::sleep(Duration::from_millis(3500)).await;
    let admission = status["admission_token"].as_str().expect("token");
    let expired = purchase(&app, &late, &sale, "late", admission, 1, APPROVED).await;
    assert_eq!(expired.status(), 410);
    assert_eq!(
        expired.json::<Value>().await.expect("json")["error"]["code"],
        "admission_expired"
    );
    let status = wait_out(&app, &next_in_line, &sale, Duration::from_millis(50)).await;
    assert_eq!(status["state"], "admitted", "{status}");

    // A declined card gives the unit and the admission back: the same shopper buys it after.
    let admission = status["admission_token"].as_str().expect("token");
    let declined = purchase(&app, &next_in_line, &sale, "card-1", admission, 1, DECLINED).await;
    assert_eq!(declined.status(), 402);
    assert_eq!(me(&app, &next_in_line, &sale).await["state"], "admitted");
    let bought = purchase(&app, &next_in_line, &sale, "card-2", admission, 1, APPROVED).await;
    assert_eq!(bought.status(), 201);
    let mut state = Value::Null;
    for _ in 0..50 {
        state = me(&app, &late, &sale).await;
        if app
            .get(&format!("/api/v1/flash-sales/{sale}"))
            .await
            .json::<Value>()
            .await
            .expect("json")["state"]
            == "sold_out"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state["state"], "closed", "{state}");
    assert_eq!(state["reason"], "admission_expired", "{state}");
    let sold: Value = app
        .get(&format!("/api/v1/flash-sales/{sale}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sold["state"], "sold_out", "{sold}");
    assert_eq!(sold["remaining"], 0);
}

#[actix_web::test]
async fn scheduling_errors_name_the_field_and_write_nothing() {
    let app = spawn_app_with(|_| {}).await;
    let key = seller_with(&app, "FLASH-5", 10).await;
    let (_, other_key) = app.seller("Someone else").await;
    let now = chrono::Utc::now();
    let valid = json!({
        "sku": "FLASH-5", "quantity": 5, "prices": { "EUR": "9.99" },
        "starts_at": now + chrono::Duration::minutes(5),
        "ends_at": now + chrono::Duration::minutes(65),
        "per_shopper_limit": 1,
    });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    for (who, body, status, code, field) in [
        (
            &key,
            with("quantity", json!(0)),
            422,
            "invalid_quantity",
            "quantity",
        ),
        (
            &key,
            with("quantity", json!(11)),
            409,
            "insufficient_stock",
            "quantity",
        ),
        (
            &key,
            with("prices", json!({})),
            422,
            "missing_price",
            "prices",
        ),
        (
            &key,
            with("prices", json!({ "EUR": "-1" })),
            422,
            "negative_amount",
            "prices.EUR",
        ),
        (
            &key,
            with("prices", json!({ "XYZ": "1.00" })),
            422,
            "unknown_currency",
            "prices.XYZ",
        ),
        (
            &key,
            with("ends_at", json!(now - chrono::Duration::minutes(1))),
            422,
            "invalid_window",
            "ends_at",
        ),
        (
            &key,
            with("per_shopper_limit", json!(6)),
            422,
            "invalid_limit",
            "per_shopper_limit",
        ),
        (
            &key,
            with("starts_at", json!("tomorrow")),
            422,
            "invalid_field",
            "starts_at",
        ),
        (&other_key, valid.clone(), 422, "unknown_sku", "sku"),
    ] {
        let response = app
            .call(Method::POST, "/api/v1/flash-sales", who, Some(&body))
            .await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    assert_eq!(
        app.db()
            .await
            .query_one("SELECT count(*) FROM flash_sales", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        0
    );
}

/// Redis's record of which process leads `sale` ("pid:id"), if any.
async fn leader(app: &TestApp, sale: &str) -> Option<String> {
    let client = redis::Client::open(app.settings.redis.url.expose_secret()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    redis::cmd("GET")
        .arg(format!(
            "{}:{{sale:{sale}}}:leader",
            app.settings.redis.prefix
        ))
        .query_async(&mut connection)
        .await
        .expect("GET")
}

/// A shopper's whole visit as a client would make it, switching to the other process when
/// its own stops answering, and retrying a purchase under the same key until it has an answer.
async fn shop_through_either(apps: [&TestApp; 2], start: usize, token: &str, sale: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut at = start;
    while tokio::time::Instant::now() < deadline {
        let app = apps[at % 2];
        let status = match app
            .client
            .get(app.url(&format!("/api/v1/flash-sales/{sale}/queue/me")))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(response) => response.json::<Value>().await.unwrap_or(Value::Null),
            Err(_) => {
                at += 1;
                continue;
            }
        };
        match status["state"].as_str() {
            Some("waiting") | None => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Some("admitted") => {}
            Some(other) => return other.to_owned(),
        }
        let admission = status["admission_token"].as_str().unwrap_or_default();
        loop {
            let app = apps[at % 2];
            let answer = app
                .client
                .post(app.url(&format!("/api/v1/flash-sales/{sale}/purchase")))
                .bearer_auth(token)
                .header("Idempotency-Key", "buy")
                .json(&json!({
                    "admission_token": admission, "quantity": 1, "region": "DG",
                    "payment": { "card_number": APPROVED }
                }))
                .send()
                .await;
            let Ok(answer) = answer else {
                at += 1;
                continue;
            };
            let status = answer.status().as_u16();
            let retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            // Retrying while a purchase cut short by the kill waits for reconciliation (10 s
            // here) can exceed the purchase rate limit: wait as told, as a client would.
            if status == 429 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(retry_after)).await;
                continue;
            }
            if (status == 409 && body["error"]["code"] == "idempotency_key_in_progress")
                || status == 503
            {
                if tokio::time::Instant::now() > deadline {
                    return format!("{status} {body}");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            return status.to_string();
        }
    }
    "timed out".into()
}

#[actix_web::test]
async fn killing_the_process_that_leads_the_queue_loses_no_ticket_and_sells_no_extra_unit() {
    const SHOPPERS: usize = 300;
    const UNITS: i64 = 30;
    let processes = spawn_processes(2, &[("AGORA__FLASH_SALES__ADMIT_PER_SEC", "10")]).await;
    let (first, second) = (&processes[0], &processes[1]);
    digital_region(first).await;
    let key = seller_with(first, "FLASH-K", 40).await;
    let sale = schedule(first, &key, "FLASH-K", UNITS as u32, 1).await;
    let apps = [first, second];
    let tokens: Vec<String> = stream::iter(0..SHOPPERS)
        .map(|n| shopper(apps[n % 2]))
        .buffered(16)
        .collect()
        .await;
    stream::iter(tokens.iter().enumerate())
        .for_each_concurrent(16, |(n, token)| {
            let sale = sale.clone();
            async move { assert_eq!(join(apps[n % 2], token, &sale).await.status(), 201) }
        })
        .await;
    open_now(first, &sale).await;

    let shoppers = stream::iter(tokens.iter().enumerate())
        .map(|(n, token)| shop_through_either(apps, n, token, &sale))
        .buffer_unordered(SHOPPERS)
        .collect::<Vec<String>>();
    let sale_id = sale.clone();
    let killer = async move {
        // A third of the units sold, then the leading process dies.
        let db = first.db().await;
        loop {
            let bought: i64 = db
                .query_one(
                    "SELECT count(*) FROM flash_sale_tickets
                     WHERE sale_id = $1::text::uuid AND state = 'purchased'",
                    &[&sale_id],
                )
                .await
                .expect("count")
                .get(0);
            if bought >= UNITS / 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let holder = leader(first, &sale_id).await.expect("a leader");
        let pid: u32 = holder
            .split(':')
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("pid");
        assert!(
            apps.iter().any(|app| app.pid() == Some(pid)),
            "the leader {holder} is one of the two processes"
        );
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        // Its lease lapses, and the survivor takes the queue over.
        let mut successor = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(now) = leader(first, &sale_id).await {
                if now != holder {
                    successor = Some(now);
                    break;
                }
            }
        }
        (holder, successor)
    };
    let (outcomes, (holder, successor)) = futures_util::join!(shoppers, killer);
    let successor = successor.expect("another process took the queue over");
    assert_ne!(successor.split(':').next(), holder.split(':').next());

    let mut counted: HashMap<&str, usize> = HashMap::new();
    for outcome in &outcomes {
        *counted.entry(outcome.as_str()).or_default() += 1;
    }
    // A purchase cut short by the kill is reconciled: nothing charged (504 payment_timeout to
    // its retry) and its unit goes to the next ticket; everyone else sold out.
    assert_eq!(counted.get("201"), Some(&(UNITS as usize)), "{counted:?}");
    assert_eq!(
        counted.get("sold_out").copied().unwrap_or(0) + counted.get("504").copied().unwrap_or(0),
        SHOPPERS - UNITS as usize,
        "{counted:?}"
    );
    assert_eq!(
        scalar(
            first,
            "SELECT count(*) FROM flash_sale_tickets WHERE sale_id = $1::text::uuid",
            &sale
        )
        .await,
        SHOPPERS as i64,
        "no ticket lost"
    );
    assert_eq!(
        scalar(
            first,
            "SELECT coalesce(sum(h.quantity), 0)::int8 FROM stock_holds h JOIN orders o ON o.id = h.order_id
             WHERE h.sale_id = $1::text::uuid AND o.status = 'paid' AND h.released_at IS NULL",
            &sale
        )
        .await,
        UNITS,
        "exactly the quantity sold"
    );
    assert_eq!(
        scalar(
            first,
            "SELECT count(*) FROM orders o JOIN stock_holds h ON h.order_id = o.id
             WHERE h.sale_id = $1::text::uuid AND o.status <> 'paid'",
            &sale
        )
        .await,
        counted.get("504").copied().unwrap_or(0) as i64,
        "no order left pending; only the reconciled ones cancelled"
    );
    // Admission order held across the takeover.
    assert_eq!(skipped_tickets(first, &sale).await, 0);
}

#[actix_web::test]
async fn a_sale_that_ends_returns_its_unsold_units_to_stock_and_closes_the_queue() {
    let app = spawn_app_with(|_| {}).await;
    digital_region(&app).await;
    let key = seller_with(&app, "FLASH-6", 10).await;
    let sale = schedule(&app, &key, "FLASH-6", 5, 1).await;
    assert_eq!(
        available(&app, "FLASH-6").await,
        10,
        "nothing is taken before the start"
    );
    let (buyer, admission) = admitted(&app, &sale).await;
    // The sale opened: its 5 units left normal stock.
    assert_eq!(available(&app, "FLASH-6").await, 5);
    let bought = purchase(&app, &buyer, &sale, "one", &admission, 1, APPROVED).await;
    assert_eq!(bought.status(), 201);
    // Another shopper is admitted (a unit set aside for them) and does not buy.
    let dawdler = shopper(&app).await;
    assert_eq!(join(&app, &dawdler, &sale).await.status(), 201);
    let status = wait_out(&app, &dawdler, &sale, Duration::from_millis(50)).await;
    assert_eq!(status["state"], "admitted", "{status}");

    // The end arrives with 4 units unsold, one of them set aside for the dawdler.
    app.db()
        .await
        .execute(
            "UPDATE flash_sales SET ends_at = now(), starts_at = now() - interval '1 hour'
             WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("end moved");
    let mut state = Value::Null;
    for _ in 0..50 {
        state = app
            .get(&format!("/api/v1/flash-sales/{sale}"))
            .await
            .json()
            .await
            .expect("json");
        if state["state"] == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state["state"], "closed", "{state}");
    assert_eq!(state["remaining"], 0);
    assert_eq!(
        available(&app, "FLASH-6").await,
        9,
        "the 4 unsold units are back"
    );
    let status = me(&app, &dawdler, &sale).await;
    assert_eq!(
        (status["state"].as_str(), status["reason"].as_str()),
        (Some("closed"), Some("sale_ended")),
        "{status}"
    );
    let late = shopper(&app).await;
    let refused = join(&app, &late, &sale).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.expect("json")["error"]["code"],
        "sale_closed"
    );
}

#[actix_web::test]
async fn a_shopper_sending_too_many_joins_or_purchases_gets_429_with_retry_after() {
    let app = spawn_app_with(|settings| {
        settings.flash_sales.rate_limit_requests = 3;
        settings.flash_sales.rate_limit_window_secs = 60;
    })
    .await;
    digital_region(&app).await;
    let key = seller_with(&app, "FLASH-7", 10).await;
    let sale = schedule(&app, &key, "FLASH-7", 5, 1).await;
    let token = shopper(&app).await;
    let statuses = [
        join(&app, &token, &sale).await.status().as_u16(),
        join(&app, &token, &sale).await.status().as_u16(),
        join(&app, &token, &sale).await.status().as_u16(),
    ];
    assert_eq!(statuses, [201, 200, 200]);
    let limited = join(&app, &token, &sale).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));
    assert_eq!(
        limited.json::<Value>().await.expect("json")["error"]["code"],
        "rate_limited"
    );
    // Purchases count apart from joins; another shopper is not limited by this one.
    let other = shopper(&app).await;
    assert_eq!(join(&app, &other, &sale).await.status(), 201);
    for attempt in 0..4 {
        let answer = purchase(
            &app,
            &token,
            &sale,
            &format!("k{attempt}"),
            "forged.token",
            1,
            APPROVED,
        )
        .await;
        let expected = if attempt < 3 { 403 } else { 429 };
        assert_eq!(answer.status().as_u16(), expected, "attempt {attempt}");
    }
}

#[actix_web::test]
async fn an_admitted_shopper_cannot_buy_from_a_seller_the_store_suspended_meanwhile() {
    let app = spawn_app_with(|_| {}).await;
    digital_region(&app).await;
    let (seller_id, key) = app.seller("Flash seller suspended").await;
    app.product(&key, &json!({
        "default_locale": "en", "content": { "en": { "title": "Console" } },
        "variants": [{ "sku": "SUSPENDED-1", "prices": { "EUR": "399.00" }, "stock": 5, "weight_grams": 3000 }]
    }))
    .await;
    let sale = schedule(&app, &key, "SUSPENDED-1", 2, 1).await;
    let (token, admission) = admitted(&app, &sale).await;
    let suspend = format!("/api/v1/operator/sellers/{seller_id}/suspend");
    assert_eq!(
        app.call(Method::POST, &suspend, OPERATOR, None)
            .await
            .status(),
        200
    );

    let refused = purchase(&app, &token, &sale, "suspended", &admission, 1, APPROVED).await;
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "seller_unavailable", "{body}");
    assert_eq!(body["error"]["lines"], json!(["SUSPENDED-1"]), "{body}");
    let orders = "SELECT count(*) FROM orders o JOIN order_lines l ON l.order_id = o.id
                  JOIN flash_sales s ON s.variant_id = l.variant_id WHERE s.id = $1::text::uuid";
    assert_eq!(scalar(&app, orders, &sale).await, 0, "nothing ordered");
    // The test's database is its own: any payment at the sandbox would be this one.
    let charged = "SELECT count(*) FROM sandbox_gateway_payments WHERE $1::text IS NOT NULL";
    assert_eq!(scalar(&app, charged, &sale).await, 0, "nothing charged");
}
