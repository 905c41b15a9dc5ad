//! Where orders go: shipping addresses and contact emails on carts, checkouts, flash-sale
//! purchases and orders (as they were at checkout, seen by the shopper, the seller of each part
//! and the operator only), checked postal codes, the registered shopper's address book with
//! exactly one default, and the shopper's own lists of orders and carts.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    carts::{add, cart, german_shipping, regions, ship_to_germany, shopper},
    helpers::{spawn_app, TestApp},
};

mod pages;

const OPERATOR: &str = "test-operator-token";
const APPROVED: &str = "4242424242424242";

/// A new seller with one product of `sku` at 10.00 EUR; answers its API key.
async fn selling(app: &TestApp, sku: &str) -> String {
    let (_, key) = app.seller(&format!("Address seller {sku}")).await;
    app.product(&key, &json!({
        "default_locale": "en", "content": { "en": { "title": format!("Item {sku}") } },
        "variants": [{ "sku": sku, "prices": { "EUR": "10.00" }, "stock": 50, "weight_grams": 500 }]
    }))
    .await;
    key
}

/// A registered shopper; answers their token.
async fn registered(app: &TestApp, email: &str) -> String {
    let response = app
        .post_json(
            "/api/v1/shoppers",
            &json!({ "email": email, "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

async fn checkout(app: &TestApp, token: &str, cart: &str, key: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/carts/{cart}/checkout")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "payment": { "card_number": APPROVED } }))
        .send()
        .await
        .expect("sent")
}

async fn put_shipping(app: &TestApp, token: &str, cart: &str, body: Value) -> reqwest::Response {
    app.call(
        Method::PUT,
        &format!("/api/v1/carts/{cart}/shipping"),
        token,
        Some(&body),
    )
    .await
}

/// The answer's status, error code and field.
async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    let text = |key: &str| body["error"][key].as_str().unwrap_or_default().to_owned();
    (status, text("code"), text("field"))
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.expect("json")
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db().await.query_one(sql, &[]).await.expect(sql).get(0)
}

/// A French address in the shape the API answers it.
fn paris() -> Value {
    json!({ "name": "Marianne Dupont", "line1": "12 rue de Rivoli", "line2": "Bâtiment B",
            "city": "Paris", "postal_code": "75001", "country": "FR", "phone": "+33 1 23 45 67 89" })
}

#[actix_web::test]
async fn an_order_keeps_its_checkouts_address_and_contact_seen_by_its_shopper_sellers_and_the_operator(
) {
    let app = spawn_app().await;
    regions(&app).await;
    let mugs = selling(&app, "ADDR-MUG").await;
    let pots = selling(&app, "ADDR-POT").await;
    let stranger = selling(&app, "ADDR-NONE").await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;
    assert_eq!(add(&app, &token, &id, "ADDR-MUG", 1).await.status(), 200);
    assert_eq!(add(&app, &token, &id, "ADDR-POT", 2).await.status(), 200);
    let mut address = paris();
    address["country"] = json!(" fr ");
    let shipped = put_shipping(
        &app,
        &token,
        &id,
        json!({ "address": address, "option": "flat", "email": "marianne@example.com" }),
    )
    .await;
    let shipped = json_of(shipped, 200).await;
    assert_eq!(shipped["shipping_address"], paris());
    assert_eq!(shipped["contact_email"], "marianne@example.com");
    assert_eq!(shipped["shipping"]["country"], "FR");

    let order = json_of(checkout(&app, &token, &id, "with-address").await, 201).await;
    let order_id = order["id"].as_str().expect("id").to_owned();
    assert_eq!(order["shipping_address"], paris());
    assert_eq!(order["contact_email"], "marianne@example.com");
    // The cart ships elsewhere afterwards: the order keeps what it was at checkout.
    ship_to_germany(&app, &token, &id).await;
    let path = format!("/api/v1/orders/{order_id}");
    let mine = json_of(app.call(Method::GET, &path, &token, None).await, 200).await;
    assert_eq!(mine["shipping_address"], paris());
    assert_eq!(mine["contact_email"], "marianne@example.com");

    let part = format!("/api/v1/sellers/me/orders/{order_id}");
    for seller in [&mugs, &pots] {
        let seen = json_of(app.call(Method::GET, &part, seller, None).await, 200).await;
        assert_eq!(seen["shipping_address"], paris());
        assert_eq!(seen["contact_email"], "marianne@example.com");
        assert_eq!(seen["lines"].as_array().expect("lines").len(), 1);
        let list = app
            .call(Method::GET, "/api/v1/sellers/me/orders", seller, None)
            .await;
        let list = json_of(list, 200).await;
        assert_eq!(list["orders"][0]["shipping_address"], paris());
        assert_eq!(list["orders"][0]["contact_email"], "marianne@example.com");
    }
    let not_theirs = app.call(Method::GET, &part, &stranger, None).await;
    assert_eq!(not_theirs.status(), 404);
    let another = shopper(&app).await;
    assert_eq!(
        app.call(Method::GET, &path, &another, None).await.status(),
        404
    );

    let operator = format!("/api/v1/operator/orders/{order_id}");
    let seen = json_of(app.call(Method::GET, &operator, OPERATOR, None).await, 200).await;
    assert_eq!(seen["shipping_address"], paris());
    assert_eq!(seen["contact_email"], "marianne@example.com");
    assert_eq!(seen["lines"].as_array().expect("lines").len(), 2);
    for intruder in [&token, &mugs, &"wrong-token".to_owned()] {
        let refused = app.call(Method::GET, &operator, intruder, None).await;
        assert_eq!(refused.status(), 401);
    }
    let missing = format!("/api/v1/operator/orders/{}", uuid::Uuid::now_v7());
    assert_eq!(
        app.call(Method::GET, &missing, OPERATOR, None)
            .await
            .status(),
        404
    );
    let stored = app
        .db()
        .await
        .query_one(
            "SELECT shipping_address, contact_email FROM orders WHERE id = $1::text::uuid",
            &[&order_id],
        )
        .await
        .expect("order row");
    assert_eq!(stored.get::<_, Value>(0), paris());
    assert_eq!(stored.get::<_, String>(1), "marianne@example.com");
}

#[actix_web::test]
async fn a_postal_code_out_of_its_countrys_format_is_refused_naming_the_field() {
    let app = spawn_app().await;
    regions(&app).await;
    let token = shopper(&app).await;
    let eu = cart(&app, &token, "EU").await;
    let with = |country: &str, postal_code: &str| {
        let mut address = german_shipping();
        address["address"]["country"] = json!(country);
        address["address"]["postal_code"] = json!(postal_code);
        address
    };
    for (country, postal_code) in [
        ("DE", "1234"),
        ("DE", "123456"),
        ("US", "9410"),
        ("US", "94103-12"),
        ("GB", "12345"),
        ("GB", "SW1A 1CA"),
        ("JP", "10-00001"),
        ("JP", "100 0001"),
    ] {
        let answer = put_shipping(&app, &token, &eu, with(country, postal_code)).await;
        assert_eq!(
            refusal(answer).await,
            (
                422,
                "invalid_postal_code".into(),
                "address.postal_code".into()
            ),
            "{country} {postal_code}"
        );
    }
    // Well-formed elsewhere, but not a country the region ships to.
    let answer = put_shipping(&app, &token, &eu, with("JP", "1000001")).await;
    assert_eq!(
        refusal(answer).await,
        (
            422,
            "country_outside_region".into(),
            "address.country".into()
        )
    );
    let mut fields = Vec::new();
    for (field, value) in [
        ("name", json!(" ")),
        ("city", json!("x".repeat(201))),
        ("line1", json!("two\nlines")),
        ("phone", json!("call me")),
        ("country", json!("XX1")),
    ] {
        let mut body = german_shipping();
        body["address"][field] = value;
        fields.push(refusal(put_shipping(&app, &token, &eu, body).await).await);
    }
    let expected = [
        ("invalid_address", "address.name"),
        ("invalid_address", "address.city"),
        ("invalid_address", "address.line1"),
        ("invalid_phone", "address.phone"),
        ("invalid_country", "address.country"),
    ];
    for (got, (code, field)) in fields.iter().zip(expected) {
        assert_eq!((got.0, got.1.as_str(), got.2.as_str()), (422, code, field));
    }
    let mut bad_email = german_shipping();
    bad_email["email"] = json!("not-an-email");
    let answer = put_shipping(&app, &token, &eu, bad_email).await;
    assert_eq!(
        refusal(answer).await,
        (422, "invalid_email".into(), "email".into())
    );
    let mut both = german_shipping();
    both["country"] = json!("DE");
    let answer = put_shipping(&app, &token, &eu, both).await;
    assert_eq!(refusal(answer).await.2, "address");
    // Nothing of the refused ones was kept.
    let unchanged = json_of(
        app.call(Method::GET, &format!("/api/v1/carts/{eu}"), &token, None)
            .await,
        200,
    )
    .await;
    assert_eq!(unchanged["shipping_address"], Value::Null);
    assert_eq!(unchanged["contact_email"], Value::Null);

    // Accepted ones are written as the country's post writes them.
    let us = cart(&app, &token, "US").await;
    let mut zip = german_shipping();
    zip["address"] = json!({ "name": "Sam", "line1": "1 Market St", "city": "San Francisco",
                             "region": "CA", "postal_code": "941031234", "country": "us" });
    zip["option"] = json!("ground");
    let answer = json_of(put_shipping(&app, &token, &us, zip).await, 200).await;
    assert_eq!(answer["shipping_address"]["postal_code"], "94103-1234");
    assert_eq!(answer["shipping_address"]["country"], "US");
}

#[actix_web::test]
async fn checkout_where_the_region_ships_needs_an_address_and_a_guest_needs_a_contact_email() {
    let app = spawn_app().await;
    regions(&app).await;
    selling(&app, "ADDR-Q").await;
    let guest = shopper(&app).await;
    let id = cart(&app, &guest, "EU").await;
    assert_eq!(add(&app, &guest, &id, "ADDR-Q", 1).await.status(), 200);
    // A country alone still quotes the shipping, but does not check out.
    let quote = put_shipping(
        &app,
        &guest,
        &id,
        json!({ "country": "DE", "option": "flat" }),
    )
    .await;
    let quote = json_of(quote, 200).await;
    assert_eq!(quote["shipping"]["amount"]["amount"], "4.90");
    let answer = checkout(&app, &guest, &id, "no-address").await;
    assert_eq!(
        refusal(answer).await,
        (422, "address_required".into(), "shipping.address".into())
    );
    let mut no_email = german_shipping();
    no_email.as_object_mut().expect("object").remove("email");
    assert_eq!(
        put_shipping(&app, &guest, &id, no_email.clone())
            .await
            .status(),
        200
    );
    let answer = checkout(&app, &guest, &id, "no-email").await;
    assert_eq!(
        refusal(answer).await,
        (422, "email_required".into(), "email".into())
    );
    assert_eq!(count(&app, "SELECT count(*) FROM orders").await, 0);
    ship_to_germany(&app, &guest, &id).await;
    let order = json_of(checkout(&app, &guest, &id, "complete").await, 201).await;
    assert_eq!(order["contact_email"], "erika@example.com");
    assert_eq!(order["shipping_address"]["postal_code"], "51147");

    // A registered shopper's contact is their account's email unless they give another.
    let member = registered(&app, "member@example.com").await;
    let id = cart(&app, &member, "EU").await;
    assert_eq!(add(&app, &member, &id, "ADDR-Q", 1).await.status(), 200);
    assert_eq!(
        put_shipping(&app, &member, &id, no_email).await.status(),
        200
    );
    let order = json_of(checkout(&app, &member, &id, "member").await, 201).await;
    assert_eq!(order["contact_email"], "member@example.com");
}

/// Polls the shopper's ticket until it is admitted; answers the admission token.
async fn admitted(app: &TestApp, token: &str, sale: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let path = format!("/api/v1/flash-sales/{sale}/queue/me");
        let status: Value = app
            .call(Method::GET, &path, token, None)
            .await
            .json()
            .await
            .expect("json");
        if let Some(admission) = status["admission_token"].as_str() {
            return admission.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never admitted: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_flash_sale_purchase_where_the_region_ships_takes_and_keeps_an_address_and_contact() {
    let app = spawn_app().await;
    regions(&app).await;
    let key = selling(&app, "ADDR-FLASH").await;
    let now = chrono::Utc::now();
    let sale = app
        .call(Method::POST, "/api/v1/flash-sales", &key, Some(&json!({
            "sku": "ADDR-FLASH", "quantity": 2, "prices": { "EUR": "5.00" },
            "starts_at": now + chrono::Duration::hours(1), "ends_at": now + chrono::Duration::hours(2),
            "per_shopper_limit": 1,
        })))
        .await;
    let sale = json_of(sale, 201).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let guest = shopper(&app).await;
    let path = format!("/api/v1/flash-sales/{sale}/queue");
    assert_eq!(
        app.call(Method::POST, &path, &guest, None).await.status(),
        201
    );
    app.db()
        .await
        .execute(
            "UPDATE flash_sales SET starts_at = now() WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("opened");
    let admission = admitted(&app, &guest, &sale).await;
    let buy = |key: &'static str, shipping: Value, email: Option<&str>| {
        let mut body = json!({
            "admission_token": admission, "quantity": 1, "region": "EU",
            "shipping": shipping, "payment": { "card_number": APPROVED }
        });
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        app.client
            .post(app.url(&format!("/api/v1/flash-sales/{sale}/purchase")))
            .bearer_auth(&guest)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let country_only = json!({ "country": "DE", "option": "flat" });
    let answer = buy("a", country_only, Some("flash@example.com"))
        .await
        .expect("sent");
    assert_eq!(
        refusal(answer).await,
        (422, "address_required".into(), "shipping.address".into())
    );
    let mut wrong_zip = german_shipping();
    wrong_zip["address"]["postal_code"] = json!("5114");
    let shipping = json!({ "address": wrong_zip["address"], "option": "flat" });
    let answer = buy("b", shipping, Some("flash@example.com"))
        .await
        .expect("sent");
    assert_eq!(
        refusal(answer).await,
        (
            422,
            "invalid_postal_code".into(),
            "shipping.address.postal_code".into()
        )
    );
    let shipping = json!({ "address": paris(), "option": "flat" });
    let answer = buy("c", shipping.clone(), None).await.expect("sent");
    assert_eq!(
        refusal(answer).await,
        (422, "email_required".into(), "email".into())
    );
    let answer = buy("d", shipping, Some("flash@example.com"))
        .await
        .expect("sent");
    let order = json_of(answer, 201).await;
    assert_eq!(order["shipping_address"], paris());
    assert_eq!(order["contact_email"], "flash@example.com");
    let order_id = order["id"].as_str().expect("id");
    let seen = app
        .call(
            Method::GET,
            &format!("/api/v1/sellers/me/orders/{order_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(json_of(seen, 200).await["shipping_address"], paris());
}

async fn book(app: &TestApp, token: &str) -> Vec<Value> {
    let answer = app
        .call(Method::GET, "/api/v1/shoppers/me/addresses", token, None)
        .await;
    let body = json_of(answer, 200).await;
    assert_eq!(body["max"], 20);
    body["addresses"].as_array().expect("addresses").clone()
}

async fn save(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.call(
        Method::POST,
        "/api/v1/shoppers/me/addresses",
        token,
        Some(&body),
    )
    .await
}

fn saved(city: &str) -> Value {
    json!({ "name": "Erika Mustermann", "line1": "Heidestraße 17", "city": city,
            "postal_code": "51147", "country": "DE" })
}

/// The cities of the book in its order, each with whether it is the default.
fn cities(book: &[Value]) -> Vec<(String, bool)> {
    book.iter()
        .map(|a| {
            let city = a["city"].as_str().expect("city").to_owned();
            (city, a["default"].as_bool().expect("default"))
        })
        .collect()
}

#[actix_web::test]
async fn the_address_book_keeps_exactly_one_default_and_only_its_shopper_sees_it() {
    let app = spawn_app().await;
    regions(&app).await;
    let token = registered(&app, "book@example.com").await;
    assert!(book(&app, &token).await.is_empty());
    let koeln = json_of(save(&app, &token, saved("Köln")).await, 201).await;
    assert_eq!(koeln["default"], true, "the first is the default");
    let bonn = json_of(save(&app, &token, saved("Bonn")).await, 201).await;
    assert_eq!(bonn["default"], false);
    let mut berlin = saved("Berlin");
    berlin["default"] = json!(true);
    berlin["postal_code"] = json!(" 10115 ");
    let berlin = json_of(save(&app, &token, berlin).await, 201).await;
    assert_eq!(berlin["postal_code"], "10115");
    let listed = book(&app, &token).await;
    assert_eq!(
        cities(&listed),
        [
            ("Berlin".into(), true),
            ("Bonn".into(), false),
            ("Köln".into(), false)
        ]
    );

    let at = |saved: &Value| {
        format!(
            "/api/v1/shoppers/me/addresses/{}",
            saved["id"].as_str().expect("id")
        )
    };
    let patch = |path: String, body: Value| {
        let token = token.clone();
        let app = &app;
        async move { app.call(Method::PATCH, &path, &token, Some(&body)).await }
    };
    let moved = patch(
        at(&bonn),
        json!({ "default": true, "city": "Bad Godesberg", "phone": "0228 123" }),
    )
    .await;
    let moved = json_of(moved, 200).await;
    assert_eq!(
        (moved["city"].clone(), moved["default"].clone()),
        (json!("Bad Godesberg"), json!(true))
    );
    assert_eq!(moved["phone"], "0228 123");
    let cleared = json_of(patch(at(&bonn), json!({ "phone": null })).await, 200).await;
    assert_eq!(cleared["phone"], Value::Null);
    let answer = patch(at(&bonn), json!({ "default": false })).await;
    assert_eq!(
        refusal(answer).await,
        (422, "invalid_field".into(), "default".into())
    );
    let answer = patch(at(&koeln), json!({ "postal_code": "5114" })).await;
    assert_eq!(
        refusal(answer).await,
        (422, "invalid_postal_code".into(), "postal_code".into())
    );
    let defaults = "SELECT count(*) FROM shopper_addresses WHERE is_default";
    assert_eq!(count(&app, defaults).await, 1);

    // Deleting the default makes the most recently saved other one the default.
    let deleted = app.call(Method::DELETE, &at(&bonn), &token, None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        cities(&book(&app, &token).await),
        [("Berlin".into(), true), ("Köln".into(), false)]
    );
    assert_eq!(
        app.call(Method::DELETE, &at(&bonn), &token, None)
            .await
            .status(),
        404
    );

    // A saved address ships a cart, copied: changing the book later leaves the cart as it was.
    selling(&app, "ADDR-BOOK").await;
    let id = cart(&app, &token, "EU").await;
    assert_eq!(add(&app, &token, &id, "ADDR-BOOK", 1).await.status(), 200);
    let chosen = put_shipping(
        &app,
        &token,
        &id,
        json!({ "address_id": berlin["id"], "option": "flat" }),
    )
    .await;
    assert_eq!(
        json_of(chosen, 200).await["shipping_address"]["city"],
        "Berlin"
    );
    assert_eq!(
        patch(at(&berlin), json!({ "city": "Potsdam" }))
            .await
            .status(),
        200
    );
    let order = json_of(checkout(&app, &token, &id, "saved").await, 201).await;
    assert_eq!(order["shipping_address"]["city"], "Berlin");
    assert_eq!(order["contact_email"], "book@example.com");

    // Nobody else sees or changes it; guests have no book.
    let other = registered(&app, "other@example.com").await;
    assert!(book(&app, &other).await.is_empty());
    for (method, body) in [
        (Method::PATCH, Some(json!({ "city": "Mainz" }))),
        (Method::DELETE, None),
    ] {
        let answer = app.call(method, &at(&koeln), &other, body.as_ref()).await;
        assert_eq!(answer.status(), 404);
    }
    let theirs = cart(&app, &other, "EU").await;
    let answer = put_shipping(
        &app,
        &other,
        &theirs,
        json!({ "address_id": koeln["id"], "option": "flat" }),
    )
    .await;
    assert_eq!(
        refusal(answer).await,
        (422, "unknown_address".into(), "address_id".into())
    );
    let guest = shopper(&app).await;
    let answer = app
        .call(Method::GET, "/api/v1/shoppers/me/addresses", &guest, None)
        .await;
    assert_eq!(
        refusal(answer).await,
        (403, "account_required".into(), String::new())
    );
    let answer = save(&app, &guest, saved("Aachen")).await;
    assert_eq!(answer.status(), 403);

    // At most 20.
    for n in 0..18 {
        let city = format!("Stadt {n}");
        assert_eq!(save(&app, &token, saved(&city)).await.status(), 201);
    }
    let answer = save(&app, &token, saved("Zuviel")).await;
    assert_eq!(
        refusal(answer).await,
        (409, "too_many_addresses".into(), String::new())
    );
    assert_eq!(book(&app, &token).await.len(), 20);
    assert_eq!(
        count(&app, defaults).await,
        1,
        "one per shopper with a book"
    );
}

/// The shopper's orders page by page, following `next_cursor`; answers the ids in order.
async fn all_orders(app: &TestApp, token: &str) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut path = "/api/v1/shoppers/me/orders?limit=2".to_owned();
    loop {
        let page = json_of(app.call(Method::GET, &path, token, None).await, 200).await;
        orders.extend(page["orders"].as_array().expect("orders").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/shoppers/me/orders?limit=2&cursor={cursor}"),
            None => return orders,
        }
    }
}

#[actix_web::test]
async fn a_shopper_lists_its_own_orders_newest_first_and_its_carts() {
    let app = spawn_app().await;
    regions(&app).await;
    selling(&app, "ADDR-LIST").await;
    let token = registered(&app, "lists@example.com").await;
    let mut placed = Vec::new();
    for units in 1..=3 {
        let id = cart(&app, &token, "EU").await;
        assert_eq!(
            add(&app, &token, &id, "ADDR-LIST", units).await.status(),
            200
        );
        ship_to_germany(&app, &token, &id).await;
        let order = json_of(
            checkout(&app, &token, &id, &format!("list-{units}")).await,
            201,
        )
        .await;
        placed.push(order["id"].as_str().expect("id").to_owned());
    }
    let open = cart(&app, &token, "US").await;

    let listed = all_orders(&app, &token).await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|o| o["id"].as_str().expect("id"))
        .collect();
    placed.reverse();
    assert_eq!(ids, placed, "newest first, each once across pages");
    assert_eq!(listed[0]["item_count"], 3);
    assert_eq!(listed[0]["status"], "paid");
    assert_eq!(listed[0]["total"]["amount"], "34.90");
    assert_eq!(listed[2]["item_count"], 1);

    let carts = app
        .call(Method::GET, "/api/v1/shoppers/me/carts", &token, None)
        .await;
    let carts = json_of(carts, 200).await;
    let carts = carts["carts"].as_array().expect("carts");
    assert_eq!(carts.len(), 4);
    assert_eq!(carts[0]["id"], json!(open));
    assert_eq!(carts[0]["region"], "US");
    assert_eq!(carts[0]["line_count"], 0);
    assert!(carts[0]["updated_at"].is_string());

    for (query, field, code) in [
        ("cursor=not-a-cursor", "cursor", "invalid_cursor"),
        ("limit=0", "limit", "invalid_limit"),
        ("limit=101", "limit", "invalid_limit"),
        ("limit=ten", "limit", "invalid_limit"),
    ] {
        for list in ["orders", "carts"] {
            let path = format!("/api/v1/shoppers/me/{list}?{query}");
            let answer = app.call(Method::GET, &path, &token, None).await;
            assert_eq!(
                refusal(answer).await,
                (400, code.into(), field.into()),
                "{path}"
            );
        }
    }

    let other = shopper(&app).await;
    for list in ["orders", "carts"] {
        let path = format!("/api/v1/shoppers/me/{list}");
        let body = json_of(app.call(Method::GET, &path, &other, None).await, 200).await;
        assert_eq!(body[list], json!([]), "{list}");
        assert_eq!(body["next_cursor"], Value::Null);
    }
    assert_eq!(
        app.get("/api/v1/shoppers/me/orders").await.status(),
        StatusCode::UNAUTHORIZED
    );
}
