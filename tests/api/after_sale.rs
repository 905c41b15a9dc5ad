//! After the sale: shipments by line with tracking, cancellations, returns and refunds, each
//! exact to the cent, once, across processes.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::{
    carts::{add, available, cart, regions, ship_to_germany, shopper},
    checkout::{checkout, APPROVED},
    helpers::{spawn_app, spawn_app_with, TestApp},
    realtime::{connect, expect, next, say, second_process},
};

const OPERATOR: &str = "test-operator-token";

/// Two sellers' order: 2 × MUG-1 (10.00) and 1 × MUG-2 (6.00) from the mug seller, 1 × POT
/// (25.00) from the pot seller, shipped flat to Germany (4.90), VAT included: 55.90.
pub struct Sold {
    pub shopper: String,
    pub order: String,
    pub mugs: String,
    pub mug_seller: String,
    pub pots: String,
}

pub async fn sell_two_sellers_order(app: &TestApp) -> Sold {
    regions(app).await;
    let (mug_seller, mugs) = app.seller("Mug seller").await;
    app.product(
        &mugs,
        &json!({
            "default_locale": "en", "content": { "en": { "title": "Mug" } },
            "variants": [
                { "sku": "MUG-1", "prices": { "EUR": "10.00" }, "stock": 10, "weight_grams": 300 },
                { "sku": "MUG-2", "prices": { "EUR": "6.00" }, "stock": 10, "weight_grams": 300 }
            ]
        }),
    )
    .await;
    let (_, pots) = app.seller("Pot seller").await;
    app.product(&pots, &json!({
        "default_locale": "en", "content": { "en": { "title": "Pot" } },
        "variants": [{ "sku": "POT", "prices": { "EUR": "25.00" }, "stock": 10, "weight_grams": 900 }]
    }))
    .await;
    let token = shopper(app).await;
    let id = cart(app, &token, "EU").await;
    for (sku, quantity) in [("MUG-1", 2), ("MUG-2", 1), ("POT", 1)] {
        assert_eq!(add(app, &token, &id, sku, quantity).await.status(), 200);
    }
    ship_to_germany(app, &token, &id).await;
    let placed = checkout(app, &token, &id, "after-sale", APPROVED).await;
    assert_eq!(placed.status(), 201);
    let order: Value = placed.json().await.expect("json");
    assert_eq!(order["total"]["amount"], "55.90");
    let order = order["id"].as_str().expect("id").to_owned();
    wait_captured(app, &order).await;
    Sold {
        shopper: token,
        order,
        mugs,
        mug_seller,
        pots,
    }
}

/// Waits until the order's payment is captured (right after checkout, off the request).
pub async fn wait_captured(app: &TestApp, order: &str) {
    let db = app.db().await;
    for _ in 0..100 {
        let status: String = db
            .query_one(
                "SELECT status FROM payments WHERE order_id = $1::text::uuid",
                &[&order],
            )
            .await
            .expect("payment")
            .get(0);
        if status == "captured" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {order} was not captured");
}

pub async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = app.call(Method::POST, path, key, Some(&body)).await;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn shopper_order(app: &TestApp, token: &str, order: &str) -> Value {
    let response = app
        .call(Method::GET, &format!("/api/v1/orders/{order}"), token, None)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// What the gateway's own books say was refunded, and Agora's.
pub async fn refunded(app: &TestApp, order: &str) -> (Decimal, Decimal) {
    let row = app
        .db()
        .await
        .query_one(
            "SELECT g.refunded, p.refunded FROM sandbox_gateway_payments g
             JOIN payments p ON p.reference = g.reference WHERE p.order_id = $1::text::uuid",
            &[&order],
        )
        .await
        .expect("payment");
    (row.get(0), row.get(1))
}

fn part<'a>(order: &'a Value, seller: &str) -> &'a Value {
    order["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["seller_id"] == seller)
        .expect("the seller's part")
}

#[actix_web::test]
async fn shipping_one_line_of_two_leaves_the_part_partly_fulfilled_and_shows_the_tracking() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let shipments = format!("/api/v1/sellers/me/orders/{}/fulfillments", sold.order);
    let one_mug = json!({ "carrier": "DHL", "tracking_number": "00340434161094042557",
                          "lines": [{ "sku": "MUG-1", "quantity": 1 }] });
    let (status, shipment) = post(&app, &shipments, &sold.mugs, one_mug).await;
    assert_eq!(status, 201, "{shipment}");
    assert_eq!(
        shipment["lines"],
        json!([{ "sku": "MUG-1", "quantity": 1 }])
    );

    let order = shopper_order(&app, &sold.shopper, &sold.order).await;
    assert_eq!(order["status"], "partially_fulfilled");
    assert_eq!(
        part(&order, &sold.mug_seller)["status"],
        "partially_fulfilled"
    );
    assert_eq!(order["shipments"][0]["carrier"], "DHL");
    assert_eq!(
        order["shipments"][0]["tracking_number"],
        "00340434161094042557"
    );
    assert_eq!(order["lines"][0]["shipped"], 1);

    // More units than are left, another seller's line, an empty carrier: 422 naming the field.
    for (body, field) in [
        (
            json!({ "carrier": "DHL", "tracking_number": "T2", "lines": [{ "sku": "MUG-1", "quantity": 2 }] }),
            "lines[0].quantity",
        ),
        (
            json!({ "carrier": "DHL", "tracking_number": "T2", "lines": [{ "sku": "POT", "quantity": 1 }] }),
            "lines[0].sku",
        ),
        (
            json!({ "carrier": " ", "tracking_number": "T2" }),
            "carrier",
        ),
    ] {
        let (status, error) = post(&app, &shipments, &sold.mugs, body).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{error}"
        );
    }
    // The pot seller does not see the mug seller's shipments, nor ships its units.
    let pot_view: Value = app
        .call(
            Method::GET,
            &format!("/api/v1/sellers/me/orders/{}", sold.order),
            &sold.pots,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(pot_view["shipments"], json!([]), "{pot_view}");

    // The rest ships: the part is fulfilled, the order only partly (the pot is still to go).
    let rest = json!({ "carrier": "DHL", "tracking_number": "T3" });
    assert_eq!(
        post(&app, &shipments, &sold.mugs, rest.clone()).await.0,
        201
    );
    assert_eq!(post(&app, &shipments, &sold.mugs, rest).await.0, 409);
    let order = shopper_order(&app, &sold.shopper, &sold.order).await;
    assert_eq!(part(&order, &sold.mug_seller)["status"], "fulfilled");
    assert_eq!(order["status"], "partially_fulfilled");
    assert_eq!(order["shipments"].as_array().map(Vec::len), Some(2));
}

#[actix_web::test]
async fn cancelling_an_order_puts_its_units_back_and_refunds_it_once() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    assert_eq!(available(&app, "MUG-1").await, 8);
    let mut socket = connect(&app, "/ws", Some(&sold.shopper)).await;
    say(
        &mut socket,
        json!({ "type": "follow_order", "order_id": sold.order }),
    )
    .await;

    let cancel = format!("/api/v1/orders/{}/cancel", sold.order);
    let (status, order) = post(&app, &cancel, &sold.shopper, Value::Null).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["refunds"][0]["amount"]["amount"], "55.90");
    assert_eq!(order["refunds"][0]["shipping"]["amount"], "4.90");
    // Again: the same order, nothing refunded twice.
    let (status, again) = post(&app, &cancel, &sold.shopper, Value::Null).await;
    assert_eq!(
        (status, again["refunds"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(
        refunded(&app, &sold.order).await,
        (Decimal::new(5590, 2), Decimal::new(5590, 2))
    );
    for (sku, units) in [("MUG-1", 10), ("MUG-2", 10), ("POT", 10)] {
        assert_eq!(available(&app, sku).await, units, "{sku}");
    }
    let mut statuses = Vec::new();
    while let Some(message) = next(&mut socket, Duration::from_secs(2)).await {
        if message["type"] == "order" {
            statuses.push(message["status"].as_str().unwrap_or_default().to_owned());
        }
        if statuses.last().map(String::as_str) == Some("cancelled") {
            break;
        }
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("cancelled"),
        "{statuses:?}"
    );

    // Another shopper cannot cancel it; an order with a shipped unit cannot be cancelled whole.
    let stranger = shopper(&app).await;
    assert_eq!(post(&app, &cancel, &stranger, Value::Null).await.0, 404);
    let shipped = sell_more(&app, &sold).await;
    let shipments = format!("/api/v1/sellers/me/orders/{shipped}/fulfillments");
    let pot = json!({ "carrier": "UPS", "tracking_number": "1Z999" });
    assert_eq!(post(&app, &shipments, &sold.pots, pot).await.0, 201);
    let (status, refused) = post(
        &app,
        &format!("/api/v1/orders/{shipped}/cancel"),
        &sold.shopper,
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("already_shipped"))
    );
}

/// Another order of one mug and one pot by the same shopper, captured.
async fn sell_more(app: &TestApp, sold: &Sold) -> String {
    let id = cart(app, &sold.shopper, "EU").await;
    for sku in ["MUG-1", "POT"] {
        assert_eq!(add(app, &sold.shopper, &id, sku, 1).await.status(), 200);
    }
    ship_to_germany(app, &sold.shopper, &id).await;
    let placed = checkout(app, &sold.shopper, &id, "more", APPROVED).await;
    assert_eq!(placed.status(), 201);
    let order = placed.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_captured(app, &order).await;
    order
}

#[actix_web::test]
async fn a_seller_cancels_a_line_it_cannot_supply_and_only_that_line_is_refunded() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let cancellations = format!("/api/v1/sellers/me/orders/{}/cancellations", sold.order);
    let (status, refund) = post(
        &app,
        &cancellations,
        &sold.mugs,
        json!({ "lines": [{ "sku": "MUG-2", "quantity": 1 }] }),
    )
    .await;
    assert_eq!(status, 201, "{refund}");
    assert_eq!(refund["amount"]["amount"], "6.00");
    assert_eq!(available(&app, "MUG-2").await, 10);
    let (status, error) = post(
        &app,
        &cancellations,
        &sold.mugs,
        json!({ "lines": [{ "sku": "MUG-2", "quantity": 1 }] }),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("lines[0].quantity"))
    );
    let order = shopper_order(&app, &sold.shopper, &sold.order).await;
    assert_eq!(order["lines"][1]["cancelled"], 1);
    assert_eq!(part(&order, &sold.mug_seller)["status"], "paid");
    assert_eq!(refunded(&app, &sold.order).await.0, Decimal::new(600, 2));
}

#[actix_web::test]
async fn a_return_approved_and_received_with_restock_gives_back_the_units_and_refunds_exactly_their_share(
) {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let shipments = format!("/api/v1/sellers/me/orders/{}/fulfillments", sold.order);
    let all = json!({ "carrier": "DHL", "tracking_number": "T1" });
    assert_eq!(post(&app, &shipments, &sold.mugs, all).await.0, 201);
    let returns = format!("/api/v1/orders/{}/returns", sold.order);

    // Units that did not ship, more than shipped, no reason: refused, nothing written.
    for (lines, field) in [
        (
            json!([{ "sku": "POT", "quantity": 1, "reason": "broken" }]),
            "lines[0].quantity",
        ),
        (
            json!([{ "sku": "MUG-1", "quantity": 3, "reason": "too many" }]),
            "lines[0].quantity",
        ),
        (
            json!([{ "sku": "MUG-1", "quantity": 1, "reason": " " }]),
            "lines[0].reason",
        ),
        (
            json!([{ "sku": "NOPE", "quantity": 1, "reason": "?" }]),
            "lines[0].sku",
        ),
    ] {
        let (status, error) = post(&app, &returns, &sold.shopper, json!({ "lines": lines })).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some(field)),
            "{error}"
        );
    }
    assert_eq!(count(&app, "SELECT count(*) FROM returns").await, 0);

    let (status, asked) = post(
        &app,
        &returns,
        &sold.shopper,
        json!({ "lines": [{ "sku": "MUG-1", "quantity": 1, "reason": "chipped" }] }),
    )
    .await;
    assert_eq!(status, 201, "{asked}");
    let return_id = asked["returns"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(asked["returns"][0]["status"], "requested");
    // The same unit cannot be asked back twice while the return is open.
    let (status, _) = post(
        &app,
        &returns,
        &sold.shopper,
        json!({ "lines": [{ "sku": "MUG-1", "quantity": 2, "reason": "again" }] }),
    )
    .await;
    assert_eq!(status, 422);

    let step = |name: &str| {
        format!(
            "/api/v1/sellers/me/orders/{}/returns/{return_id}/{name}",
            sold.order
        )
    };
    // Received before approval, or by the other seller: refused.
    assert_eq!(
        post(&app, &step("receive"), &sold.mugs, json!({})).await.0,
        409
    );
    assert_eq!(
        post(&app, &step("approve"), &sold.pots, json!({})).await.0,
        404
    );
    let (status, approved) = post(&app, &step("approve"), &sold.mugs, json!({})).await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    let before = available(&app, "MUG-1").await;
    let (status, received) = post(
        &app,
        &step("receive"),
        &sold.mugs,
        json!({ "restock": true }),
    )
    .await;
    assert_eq!(
        (status, received["status"].as_str()),
        (200, Some("received")),
        "{received}"
    );
    assert_eq!(available(&app, "MUG-1").await, before + 1);
    assert_eq!(
        post(&app, &step("receive"), &sold.mugs, json!({})).await.0,
        409
    );

    let order = shopper_order(&app, &sold.shopper, &sold.order).await;
    assert_eq!(order["lines"][0]["returned"], 1);
    assert_eq!(order["refunds"][0]["kind"], "return");
    assert_eq!(order["refunds"][0]["amount"]["amount"], "10.00");
    assert_eq!(
        refunded(&app, &sold.order).await,
        (Decimal::new(1000, 2), Decimal::new(1000, 2))
    );
    let kinds = event_kinds(&app, &sold.order).await;
    for kind in [
        "return_requested",
        "return_approved",
        "return_received",
        "refunded",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

/// Units of `sku` neither held nor sold (a suspended seller's SKU is off the storefront).
async fn stock_left(app: &TestApp, sku: &str) -> i32 {
    app.db()
        .await
        .query_one(
            "SELECT stock_on_hand - held - sold FROM variants WHERE sku = $1",
            &[&sku],
        )
        .await
        .expect("variant")
        .get(0)
}

pub async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db().await.query_one(sql, &[]).await.expect(sql).get(0)
}

async fn event_kinds(app: &TestApp, order: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT kind FROM order_events WHERE order_id = $1::text::uuid AND seller_id IS NOT NULL ORDER BY id",
            &[&order],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[actix_web::test]
async fn a_return_asked_after_the_window_is_refused_naming_the_line() {
    let app = spawn_app_with(|settings| settings.returns.window_days = 0).await;
    let sold = sell_two_sellers_order(&app).await;
    let shipments = format!("/api/v1/sellers/me/orders/{}/fulfillments", sold.order);
    let all = json!({ "carrier": "DHL", "tracking_number": "T1" });
    assert_eq!(post(&app, &shipments, &sold.mugs, all).await.0, 201);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, error) = post(
        &app,
        &format!("/api/v1/orders/{}/returns", sold.order),
        &sold.shopper,
        json!({ "lines": [{ "sku": "MUG-2", "quantity": 1, "reason": "late" }] }),
    )
    .await;
    assert_eq!(
        (
            status,
            error["error"]["code"].as_str(),
            error["error"]["field"].as_str()
        ),
        (422, Some("return_window_closed"), Some("lines[0].sku"))
    );
}

#[actix_web::test]
async fn refunds_racing_on_two_processes_never_give_back_more_than_the_part_is_worth() {
    let first = spawn_app().await;
    let sold = sell_two_sellers_order(&first).await;
    let second = second_process(&first).await;
    let refunds = format!("/api/v1/sellers/me/orders/{}/refunds", sold.order);
    // The mug part is worth 26.00: twelve refunds of 5.00 at once, half through each process.
    let answers = futures_util::future::join_all((0..12).map(|n| {
        let app = if n % 2 == 0 { &first } else { &second };
        let (refunds, key) = (refunds.clone(), sold.mugs.clone());
        async move { post(app, &refunds, &key, json!({ "amount": "5.00" })).await }
    }))
    .await;
    let granted = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status != 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(granted, 5, "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|e| e["error"]["code"] == "refund_exceeds_captured"),
        "{refused:?}"
    );
    assert_eq!(
        refunded(&first, &sold.order).await,
        (Decimal::new(2500, 2), Decimal::new(2500, 2))
    );
    // What is left is 1.00: more is refused naming the amount; so is a third decimal.
    for amount in ["1.01", "0.005", "-1"] {
        let (status, error) =
            post(&second, &refunds, &sold.mugs, json!({ "amount": amount })).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some("amount")),
            "{amount}: {error}"
        );
    }
}

#[actix_web::test]
async fn a_refund_retried_with_its_idempotency_key_is_paid_back_once() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let shipments = format!("/api/v1/sellers/me/orders/{}/fulfillments", sold.order);
    let all = json!({ "carrier": "DHL", "tracking_number": "T1" });
    assert_eq!(post(&app, &shipments, &sold.mugs, all).await.0, 201);
    let refund = |body: Value| {
        let (app, key, order) = (&app, sold.mugs.clone(), sold.order.clone());
        async move {
            let response = app
                .client
                .post(app.url(&format!("/api/v1/sellers/me/orders/{order}/refunds")))
                .bearer_auth(key)
                .header("Idempotency-Key", "refund-mug-1")
                .json(&body)
                .send()
                .await
                .expect("sent");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("json"),
            )
        }
    };
    let body = json!({ "lines": [{ "sku": "MUG-1", "quantity": 1 }] });
    let (status, first) = refund(body.clone()).await;
    assert_eq!(
        (status, first["amount"]["amount"].as_str()),
        (201, Some("10.00")),
        "{first}"
    );
    let (status, again) = refund(body).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let (status, reused) = refund(json!({ "amount": "1.00" })).await;
    assert_eq!(
        (status, reused["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(
        refunded(&app, &sold.order).await,
        (Decimal::new(1000, 2), Decimal::new(1000, 2))
    );
}

#[actix_web::test]
async fn a_suspended_sellers_items_are_refused_at_checkout_while_its_existing_order_still_ships() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    // A second shopper holds a pot in a cart when the pot seller is suspended.
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;
    for sku in ["POT", "MUG-2"] {
        assert_eq!(add(&app, &token, &id, sku, 1).await.status(), 200);
    }
    ship_to_germany(&app, &token, &id).await;
    let pot_seller: Value = app
        .call(Method::GET, "/api/v1/sellers/me", &sold.pots, None)
        .await
        .json()
        .await
        .expect("json");
    let suspend = format!(
        "/api/v1/operator/sellers/{}/suspend",
        pot_seller["id"].as_str().expect("id")
    );
    assert_eq!(
        app.call(Method::POST, &suspend, OPERATOR, None)
            .await
            .status(),
        200
    );
    let held = stock_left(&app, "POT").await;

    let refused = checkout(&app, &token, &id, "suspended", APPROVED).await;
    let status = refused.status();
    let error: Value = refused.json().await.expect("json");
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "seller_unavailable");
    assert_eq!(error["error"]["lines"], json!(["POT"]));
    assert_eq!(
        stock_left(&app, "POT").await,
        held + 1,
        "the pot's hold is released"
    );
    // The rest of the cart checks out.
    assert_eq!(
        checkout(&app, &token, &id, "rest", APPROVED).await.status(),
        201
    );

    // The suspended seller's key still serves its existing order, and nothing else.
    let shipments = format!("/api/v1/sellers/me/orders/{}/fulfillments", sold.order);
    let pot = json!({ "carrier": "UPS", "tracking_number": "1Z1" });
    assert_eq!(post(&app, &shipments, &sold.pots, pot).await.0, 201);
    let listed = app
        .call(Method::GET, "/api/v1/sellers/me/orders", &sold.pots, None)
        .await;
    assert_eq!(listed.status(), 200);
    let products = app
        .call(Method::GET, "/api/v1/sellers/me/products", &sold.pots, None)
        .await;
    assert_eq!(products.status(), 401);
}

#[actix_web::test]
async fn every_change_after_the_sale_reaches_the_shoppers_socket_and_the_sellers_feed() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let mut shopper_socket = connect(&app, "/ws", Some(&sold.shopper)).await;
    say(
        &mut shopper_socket,
        json!({ "type": "follow_order", "order_id": sold.order }),
    )
    .await;
    expect(&mut shopper_socket, |m| m["type"] == "order").await;
    let mut feed = connect(&app, "/ws/seller", Some(&sold.mugs)).await;
    let base = format!("/api/v1/sellers/me/orders/{}", sold.order);

    // Two partial shipments: the status stays, each is still told, with what changed.
    for (sku, tracking) in [("MUG-1", "T-A"), ("MUG-2", "T-B")] {
        let lines = json!([{ "sku": sku, "quantity": 1 }]);
        let body = json!({ "carrier": "DHL", "tracking_number": tracking, "lines": lines });
        assert_eq!(
            post(&app, &format!("{base}/fulfillments"), &sold.mugs, body)
                .await
                .0,
            201
        );
        let told = expect(&mut shopper_socket, |m| m["type"] == "order").await;
        assert_eq!(
            (told["status"].as_str(), told["change"].as_str()),
            (Some("partially_fulfilled"), Some("partially_fulfilled"))
        );
        // The feed may repeat events from just before it connected (it is resumable, at
        // least once): look for this shipment's.
        expect(&mut feed, |m| {
            m["type"] == "order_event" && m["data"]["tracking_number"] == tracking
        })
        .await;
    }
    let lines = json!([{ "sku": "MUG-1", "quantity": 1, "reason": "chipped" }]);
    let returns = format!("/api/v1/orders/{}/returns", sold.order);
    assert_eq!(
        post(&app, &returns, &sold.shopper, json!({ "lines": lines }))
            .await
            .0,
        201
    );
    expect(&mut feed, |m| m["kind"] == "return_requested").await;
    let told = expect(&mut shopper_socket, |m| m["type"] == "order").await;
    assert_eq!(told["change"], "return_requested");

    let refund = json!({ "lines": [{ "sku": "MUG-2", "quantity": 1 }] });
    assert_eq!(
        post(&app, &format!("{base}/refunds"), &sold.mugs, refund)
            .await
            .0,
        201
    );
    let event = expect(&mut feed, |m| m["kind"] == "refunded").await;
    assert_eq!(event["data"]["amount"], "6.00");
    let cancel = json!({ "lines": [{ "sku": "MUG-1", "quantity": 1 }] });
    assert_eq!(
        post(&app, &format!("{base}/cancellations"), &sold.mugs, cancel)
            .await
            .0,
        201
    );
    expect(&mut feed, |m| m["kind"] == "cancelled").await;
    let told = expect(&mut shopper_socket, |m| m["type"] == "order").await;
    assert_eq!(told["change"], "refunded");
    let told = expect(&mut shopper_socket, |m| m["type"] == "order").await;
    assert_eq!(told["change"], "cancelled");
}
