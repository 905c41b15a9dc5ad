//! Checkout, payments and orders: exactly once per idempotency key, never oversold, and
//! nothing lost when a payment fails, times out, or the process dies mid-checkout.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use agora::payments::{
    sandbox::SandboxGateway, Authorization, AuthorizeRequest, GatewayRecord, PaymentError,
    PaymentProvider,
};
use futures_util::future::BoxFuture;
use reqwest::Method;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::{
    carts::{add, available, cart, regions, ship_to_germany, shopper, stocked},
    helpers::{free_port, spawn_app, spawn_app_with, spawn_app_with_gateway, OwnRedis, TestApp},
};

pub const APPROVED: &str = "4242424242424242";
const DECLINED: &str = "4000000000000002";
const NO_ANSWER: &str = "4000000000000119";
const OPERATOR: &str = "test-operator-token";

pub async fn checkout(
    app: &TestApp,
    token: &str,
    cart: &str,
    key: &str,
    card: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/carts/{cart}/checkout")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "payment": { "card_number": card } }))
        .send()
        .await
        .expect("request sent")
}

/// A cart in the EU with `quantity` units of `sku`, shipping chosen.
pub async fn ready_cart(app: &TestApp, sku: &str, quantity: u32) -> (String, String) {
    let token = shopper(app).await;
    let id = cart(app, &token, "EU").await;
    assert_eq!(add(app, &token, &id, sku, quantity).await.status(), 200);
    ship_to_germany(app, &token, &id).await;
    (token, id)
}

/// A new seller offering one product of one SKU; returns the seller's API key.
pub async fn selling(app: &TestApp, title: &str, sku: &str, euros: &str, stock: u32) -> String {
    let (_, key) = app.seller(&format!("{title} seller")).await;
    app.product(&key, &json!({
        "default_locale": "en", "content": { "en": { "title": title } },
        "variants": [{ "sku": sku, "prices": { "EUR": euros }, "stock": stock, "weight_grams": 600 }]
    }))
    .await;
    key
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    app.db()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get::<_, i64>(0)
}

/// Waits until the sweep has moved sold units from `held` to `sold`, and returns (held, sold).
pub async fn settled_counts(app: &TestApp, sku: &str) -> (i32, i32) {
    let db = app.db().await;
    for _ in 0..50 {
        let row = db
            .query_one(
                "SELECT held, sold, (SELECT count(*) FROM stock_holds h WHERE h.variant_id = v.id
                                      AND h.sold_at IS NOT NULL AND h.settled_at IS NULL
                                      AND h.released_at IS NULL)
                 FROM variants v WHERE sku = $1",
                &[&sku],
            )
            .await
            .expect("variant");
        if row.get::<_, i64>(2) == 0 {
            return (row.get(0), row.get(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sold holds of {sku} were not settled");
}

/// An order's events in log order, as `kind:order` or `kind:part`.
async fn event_kinds(app: &TestApp, order_id: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT kind || ':' || CASE WHEN seller_id IS NULL THEN 'order' ELSE 'part' END
             FROM order_events WHERE order_id = $1::text::uuid ORDER BY id",
            &[&order_id],
        )
        .await
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The order of 2 × MUG-A (10.00) and 1 × POT-B (25.00) from two sellers, shipped flat to
/// Germany: 45.00 with German VAT included plus 4.90 shipping, a part per seller, and line tax
/// shares adding up to the order's tax.
fn assert_two_mugs_and_a_teapot_shipped_to_germany(order: &Value) {
    assert_eq!(order["total"]["amount"], "49.90");
    assert_eq!(order["shipping"]["amount"]["amount"], "4.90");
    assert_eq!(order["lines"].as_array().expect("lines").len(), 2);
    assert_eq!(order["parts"].as_array().expect("parts").len(), 2);
    assert_eq!(order["payment"]["card_last4"], "4242");
    let line_taxes: Decimal = order["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            l["tax"]["amount"]
                .as_str()
                .expect("tax")
                .parse::<Decimal>()
                .expect("decimal")
        })
        .sum();
    assert_eq!(
        line_taxes.to_string(),
        order["tax"]["amount"]["amount"].as_str().expect("tax")
    );
}

#[actix_web::test]
async fn a_checkout_pays_for_the_cart_and_splits_the_order_per_seller() {
    let app = spawn_app().await;
    regions(&app).await;
    let key_a = selling(&app, "Mug", "MUG-A", "10.00", 5).await;
    let key_b = selling(&app, "Teapot", "POT-B", "25.00", 3).await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;
    add(&app, &token, &id, "MUG-A", 2).await;
    add(&app, &token, &id, "POT-B", 1).await;
    ship_to_germany(&app, &token, &id).await;
    let priced: Value = app
        .call(Method::GET, &format!("/api/v1/carts/{id}"), &token, None)
        .await
        .json()
        .await
        .expect("json");

    let response = checkout(&app, &token, &id, "order-1", APPROVED).await;
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.expect("json");
    assert_eq!(order["status"], "paid");
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["total"], priced["total"]);
    assert_eq!(order["tax"]["amount"], priced["tax"]["amount"]);
    assert_two_mugs_and_a_teapot_shipped_to_germany(&order);
    assert_eq!(order["payment"]["status"], "authorized");
    assert_eq!(order["payment"]["refunded"]["amount"], "0.00");
    let order_id = order["id"].as_str().expect("id").to_owned();

    // The cart is empty, the units sold; the shopper sees the order, nobody else does.
    let after: Value = app
        .call(Method::GET, &format!("/api/v1/carts/{id}"), &token, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(after["lines"], json!([]));
    assert_eq!(available(&app, "MUG-A").await, 3);
    assert_eq!(settled_counts(&app, "MUG-A").await, (0, 2));
    let mine = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{order_id}"),
            &token,
            None,
        )
        .await;
    assert_eq!(mine.status(), 200);
    // The checkout's answer (rendered for the whole batch at once) is the order as it reads
    // alone, but for what happened since: the capture.
    let mut seen: Value = mine.json().await.expect("json");
    let mut answered = order.clone();
    for body in [&mut seen, &mut answered] {
        body["payment"]["status"] = Value::Null;
        body["updated_at"] = Value::Null;
    }
    assert_eq!(seen, answered);
    let other = shopper(&app).await;
    let theirs = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{order_id}"),
            &other,
            None,
        )
        .await;
    assert_eq!(theirs.status(), 404);
    let captured = scalar(
        &app,
        "SELECT count(*) FROM payments WHERE status = 'captured'",
    )
    .await;
    assert_eq!(captured, 1, "captured right after the order was paid");

    // Each seller sees its own part only, and fulfills it; the order follows.
    let page: Value = app
        .call(Method::GET, "/api/v1/seller/orders", &key_b, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["orders"].as_array().expect("orders").len(), 1);
    assert_eq!(page["orders"][0]["order_id"], order_id.as_str());
    assert_eq!(
        page["orders"][0]["lines"],
        json!([{
            "sku": "POT-B", "title": "Teapot", "quantity": 1,
            "unit_price": { "amount": "25.00", "currency": "EUR", "converted": false },
            "line_total": { "amount": "25.00", "currency": "EUR", "converted": false },
            "shipped": 0, "cancelled": 0, "refunded": 0, "returned": 0
        }])
    );
    let fulfill = |key: String| {
        let app = &app;
        let order_id = order_id.clone();
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/seller/orders/{order_id}/fulfill"),
                &key,
                None,
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(fulfill(key_b.clone()).await, 204);
    assert_eq!(fulfill(key_b.clone()).await, 409, "fulfilled twice");
    let order_status = || async {
        app.call(
            Method::GET,
            &format!("/api/v1/orders/{order_id}"),
            &token,
            None,
        )
        .await
        .json::<Value>()
        .await
        .expect("json")["status"]
            .clone()
    };
    assert_eq!(
        order_status().await,
        "partially_fulfilled",
        "one part is still to ship"
    );
    let (_, outsider) = app.seller("Outsider").await;
    assert_eq!(fulfill(outsider).await, 404);
    assert_eq!(fulfill(key_a).await, 204);
    assert_eq!(order_status().await, "fulfilled");
    assert_eq!(
        event_kinds(&app, &order_id).await,
        [
            "created:order",
            "paid:order",
            "paid:part",
            "paid:part",
            "fulfilled:part",
            "partially_fulfilled:order",
            "fulfilled:part",
            "fulfilled:order"
        ]
    );
}

#[actix_web::test]
async fn checkouts_written_together_record_each_order_as_it_would_be_alone() {
    let app = &spawn_app().await;
    regions(app).await;
    selling(app, "Mug", "MUG-A", "10.00", 100).await;
    selling(app, "Teapot", "POT-B", "25.00", 100).await;
    let mut carts = Vec::new();
    for _ in 0..24 {
        let token = shopper(app).await;
        let id = cart(app, &token, "EU").await;
        assert_eq!(add(app, &token, &id, "MUG-A", 2).await.status(), 200);
        assert_eq!(add(app, &token, &id, "POT-B", 1).await.status(), 200);
        ship_to_germany(app, &token, &id).await;
        carts.push((token, id));
    }

    let orders: Vec<Value> =
        futures_util::future::join_all(carts.iter().map(|(token, id)| async move {
            let response = checkout(app, token, id, "together", APPROVED).await;
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.expect("json")
        }))
        .await;

    // Placed and paid in shared transactions (the commit group's set-based writes)...
    let shared = |table: &'static str, kind: &'static str| async move {
        scalar(
            app,
            &format!(
                "SELECT count(*) FROM (SELECT xmin FROM {table} WHERE {kind}
                     GROUP BY xmin HAVING count(*) > 1) t"
            ),
        )
        .await
    };
    assert!(
        shared("payments", "true").await > 0,
        "no two orders placed together"
    );
    assert!(
        shared("order_events", "kind = 'paid' AND seller_id IS NULL").await > 0,
        "no two orders paid together"
    );
    // ... and each recorded as the single checkout above records it.
    for (order, (token, cart_id)) in orders.iter().zip(&carts) {
        assert_eq!(order["status"], "paid");
        assert_two_mugs_and_a_teapot_shipped_to_germany(order);
        let order_id = order["id"].as_str().expect("id");
        assert_eq!(
            event_kinds(app, order_id).await,
            ["created:order", "paid:order", "paid:part", "paid:part"]
        );
        let replayed = checkout(app, token, cart_id, "together", APPROVED).await;
        assert_eq!(replayed.json::<Value>().await.expect("json"), *order);
        let emptied: Value = app
            .call(
                Method::GET,
                &format!("/api/v1/carts/{cart_id}"),
                token,
                None,
            )
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(emptied["lines"], json!([]));
    }
    assert_eq!(available(app, "MUG-A").await, 100 - 48);
    assert_eq!(settled_counts(app, "POT-B").await, (0, 24));
    let captured = || {
        scalar(
            app,
            "SELECT count(*) FROM payments WHERE status = 'captured'",
        )
    };
    for _ in 0..50 {
        if captured().await == 24 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(captured().await, 24);
}

#[actix_web::test]
async fn retrying_with_the_same_idempotency_key_returns_the_same_order_and_charges_once() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "MUG-I", 5).await;
    let (token, id) = ready_cart(&app, "MUG-I", 1).await;

    let first = checkout(&app, &token, &id, "key-1", APPROVED).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    // At once and concurrently: every answer is the same order.
    let retries = futures_util::future::join_all(
        (0..5).map(|_| checkout(&app, &token, &id, "key-1", APPROVED)),
    )
    .await;
    for retry in retries {
        assert_eq!(retry.status(), 201);
        assert_eq!(
            retry
                .headers()
                .get("Idempotent-Replayed")
                .and_then(|v| v.to_str().ok()),
            Some("true")
        );
        assert_eq!(retry.json::<Value>().await.expect("json"), first);
    }
    let reused = checkout(&app, &token, &id, "key-1", "5555555555554444").await;
    assert_eq!(reused.status(), 422);
    let body: Value = reused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(body["error"]["field"], "Idempotency-Key");

    assert_eq!(scalar(&app, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM sandbox_gateway_payments").await,
        1
    );
    assert_eq!(available(&app, "MUG-I").await, 4);

    // Two different keys racing for one cart: one order, the other finds the cart empty.
    let (token, id) = ready_cart(&app, "MUG-I", 1).await;
    let racing = futures_util::future::join_all(
        ["a", "b"].map(|key| checkout(&app, &token, &id, key, APPROVED)),
    )
    .await;
    let mut statuses: Vec<u16> = racing.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "one order per cart");
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM orders WHERE status = 'paid'").await,
        2
    );
}

#[actix_web::test]
async fn a_declined_card_gets_402_releases_the_holds_and_a_later_checkout_holds_again() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "MUG-D", 3).await;
    let (token, id) = ready_cart(&app, "MUG-D", 2).await;
    assert_eq!(available(&app, "MUG-D").await, 1);

    let declined = checkout(&app, &token, &id, "try-1", DECLINED).await;
    assert_eq!(declined.status(), 402);
    let body: Value = declined.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payment_declined");
    assert_eq!(available(&app, "MUG-D").await, 3, "the holds were released");
    let again = checkout(&app, &token, &id, "try-1", DECLINED).await;
    assert_eq!(again.status(), 402, "the key's answer is stored");
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM orders WHERE status = 'cancelled'"
        )
        .await,
        1
    );

    let paid = checkout(&app, &token, &id, "try-2", APPROVED).await;
    assert_eq!(paid.status(), 201);
    assert_eq!(available(&app, "MUG-D").await, 1);
    assert_eq!(settled_counts(&app, "MUG-D").await, (0, 2));
}

#[actix_web::test]
async fn a_gateway_that_never_answers_is_voided_and_the_holds_released() {
    let app = spawn_app_with(|settings| {
        settings.payments.timeout_ms = 500;
        settings.payments.reconcile_after_ms = 2000;
    })
    .await;
    regions(&app).await;
    stocked(&app, "MUG-T", 2).await;
    let (token, id) = ready_cart(&app, "MUG-T", 2).await;

    let timed_out = checkout(&app, &token, &id, "slow", NO_ANSWER).await;
    assert_eq!(timed_out.status(), 504);
    let body: Value = timed_out.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payment_timeout");
    assert_eq!(available(&app, "MUG-T").await, 2);
    let gateway: String = app
        .db()
        .await
        .query_one("SELECT status FROM sandbox_gateway_payments", &[])
        .await
        .expect("the gateway authorized, then the answer was lost")
        .get(0);
    assert_eq!(gateway, "voided", "never captured");
    assert_eq!(
        scalar(
            &app,
            "SELECT count(*) FROM orders WHERE status = 'cancelled'"
        )
        .await,
        1
    );
}

#[actix_web::test]
async fn checkout_input_errors_name_the_field_and_write_nothing() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "MUG-V", 2).await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;

    let no_key = app
        .call(
            Method::POST,
            &format!("/api/v1/carts/{id}/checkout"),
            &token,
            Some(&json!({ "payment": { "card_number": APPROVED } })),
        )
        .await;
    assert_eq!(no_key.status(), 400);
    assert_eq!(
        no_key.json::<Value>().await.expect("json")["error"]["field"],
        "Idempotency-Key"
    );
    let bad_card = checkout(&app, &token, &id, "k", "4242424242424241").await;
    assert_eq!(bad_card.status(), 422);
    assert_eq!(
        bad_card.json::<Value>().await.expect("json")["error"]["field"],
        "payment.card_number"
    );
    let empty = checkout(&app, &token, &id, "k", APPROVED).await;
    assert_eq!(empty.status(), 409);
    assert_eq!(
        empty.json::<Value>().await.expect("json")["error"]["code"],
        "empty_cart"
    );
    add(&app, &token, &id, "MUG-V", 1).await;
    let unshipped = checkout(&app, &token, &id, "k", APPROVED).await;
    assert_eq!(unshipped.status(), 409);
    assert_eq!(
        unshipped.json::<Value>().await.expect("json")["error"]["field"],
        "shipping"
    );
    let other = shopper(&app).await;
    assert_eq!(
        checkout(&app, &other, &id, "k", APPROVED).await.status(),
        404
    );
    assert_eq!(scalar(&app, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM idempotency_keys").await,
        0
    );
}

#[actix_web::test]
async fn a_seller_lists_its_orders_by_cursor_and_refunds_a_part_returning_its_stock() {
    let app = spawn_app().await;
    regions(&app).await;
    let seller_key = selling(&app, "Jug", "JUG-R", "8.00", 10).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let (token, cart) = ready_cart(&app, "JUG-R", 1).await;
        let order: Value = checkout(&app, &token, &cart, &format!("k{n}"), APPROVED)
            .await
            .json()
            .await
            .expect("json");
        ids.push(order["id"].as_str().expect("id").to_owned());
    }
    let first: Value = app
        .call(
            Method::GET,
            "/api/v1/seller/orders?limit=2",
            &seller_key,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    // An order placed between the pages must not shift the second page.
    let (token, cart) = ready_cart(&app, "JUG-R", 1).await;
    assert_eq!(
        checkout(&app, &token, &cart, "late", APPROVED)
            .await
            .status(),
        201
    );
    let second: Value = app
        .call(
            Method::GET,
            &format!("/api/v1/seller/orders?limit=2&cursor={cursor}"),
            &seller_key,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    let listed: Vec<&str> = first["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .chain(second["orders"].as_array().expect("orders"))
        .map(|o| o["order_id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert!(second["next_cursor"].is_null());
    let bad = app
        .call(
            Method::GET,
            "/api/v1/seller/orders?cursor=nope",
            &seller_key,
            None,
        )
        .await;
    assert_eq!(bad.status(), 400);

    // Refunding the unshipped part returns its unit and the money, once.
    assert_eq!(available(&app, "JUG-R").await, 6);
    let refund = |order: String| {
        let (app, seller_key) = (&app, seller_key.clone());
        async move {
            app.call(
                Method::POST,
                &format!("/api/v1/seller/orders/{order}/refund"),
                &seller_key,
                None,
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(refund(ids[0].clone()).await, 204);
    assert_eq!(refund(ids[0].clone()).await, 409);
    assert_eq!(available(&app, "JUG-R").await, 7);
    let refunded: Decimal = app
        .db()
        .await
        .query_one(
            "SELECT g.refunded FROM sandbox_gateway_payments g
             JOIN payments p ON p.reference = g.reference WHERE p.order_id = $1::text::uuid",
            &[&ids[0]],
        )
        .await
        .expect("gateway")
        .get(0);
    // The whole order: 8.00 incl. VAT + 4.90 shipping.
    assert_eq!(refunded, Decimal::new(1290, 2));
    let order: Value = app
        .db()
        .await
        .query_one(
            "SELECT status FROM orders WHERE id = $1::text::uuid",
            &[&ids[0]],
        )
        .await
        .map(|row| json!(row.get::<_, String>(0)))
        .expect("order");
    // Nothing of it had shipped: its units were cancelled (and refunded).
    assert_eq!(order, "cancelled");
}

/// A gateway that authorizes and then never answers, as if the process calling it died there.
struct DiesAfterAuthorizing(SandboxGateway);

impl PaymentProvider for DiesAfterAuthorizing {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> BoxFuture<'static, Result<Authorization, PaymentError>> {
        let authorize = self.0.authorize(request);
        Box::pin(async move {
            authorize.await?;
            std::future::pending().await
        })
    }
    fn capture(
        &self,
        authorization: &Authorization,
    ) -> BoxFuture<'static, Result<(), PaymentError>> {
        self.0.capture(authorization)
    }
    fn void(&self, reference: uuid::Uuid) -> BoxFuture<'static, Result<(), PaymentError>> {
        self.0.void(reference)
    }
    fn refund(
        &self,
        authorization: &Authorization,
        reference: uuid::Uuid,
        amount: Decimal,
    ) -> BoxFuture<'static, Result<(), PaymentError>> {
        self.0.refund(authorization, reference, amount)
    }
    fn lookup(
        &self,
        reference: uuid::Uuid,
    ) -> BoxFuture<'static, Result<GatewayRecord, PaymentError>> {
        self.0.lookup(reference)
    }
}

#[actix_web::test]
async fn a_process_dying_between_authorization_and_commit_is_reconciled_without_loss_or_double_charge(
) {
    let survivor = spawn_app_with(|settings| {
        settings.payments.timeout_ms = 1000;
        settings.payments.reconcile_after_ms = 2500;
    })
    .await;
    regions(&survivor).await;
    stocked(&survivor, "MUG-X", 3).await;
    let url = survivor.settings.database.url.clone();
    let doomed = spawn_app_with_gateway(
        |settings| {
            settings.database.url = SecretString::from(url);
            // It would wait for ever; only its death ends the checkout.
            settings.payments.timeout_ms = 60_000;
            settings.payments.reconcile_after_ms = 130_000;
        },
        |settings| {
            let pool = agora::db::build_pool(&settings.database).expect("pool");
            Some(Arc::new(DiesAfterAuthorizing(SandboxGateway::new(
                pool,
                Duration::ZERO,
            ))))
        },
    )
    .await;
    let (token, id) = ready_cart(&doomed, "MUG-X", 2).await;
    let lost = doomed
        .client
        .post(doomed.url(&format!("/api/v1/carts/{id}/checkout")))
        .bearer_auth(&token)
        .header("Idempotency-Key", "crash")
        .json(&json!({ "payment": { "card_number": APPROVED } }))
        .timeout(Duration::from_millis(1500))
        .send()
        .await;
    assert!(lost.is_err(), "the shopper never got an answer");
    drop(doomed);
    assert_eq!(
        scalar(
            &survivor,
            "SELECT count(*) FROM orders WHERE status = 'pending'"
        )
        .await,
        1
    );

    // The survivor's reconciler finds the pending order, asks the gateway, and completes it.
    let mut status = String::new();
    for _ in 0..80 {
        status = survivor
            .db()
            .await
            .query_one("SELECT status FROM orders", &[])
            .await
            .expect("order")
            .get(0);
        if status != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "paid");
    let retry = checkout(&survivor, &token, &id, "crash", APPROVED).await;
    assert_eq!(retry.status(), 201, "the shopper's retry gets the order");
    assert_eq!(retry.json::<Value>().await.expect("json")["status"], "paid");
    // The reconciler captures after it committed the order as paid: wait for that too.
    let mut gateway = (0_i64, String::new());
    for _ in 0..50 {
        let row = survivor
            .db()
            .await
            .query_one(
                "SELECT count(*), min(status) FROM sandbox_gateway_payments",
                &[],
            )
            .await
            .expect("gateway");
        gateway = (row.get(0), row.get(1));
        if gateway.1 != "authorized" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gateway,
        (1, "captured".to_owned()),
        "charged once, captured"
    );
    assert_eq!(available(&survivor, "MUG-X").await, 1, "no stock lost");
    assert_eq!(settled_counts(&survivor, "MUG-X").await, (0, 2));
}

/// Checks out with one Idempotency-Key, retrying as a client should while the server is
/// overloaded (503) or the key's first attempt is still being finished (409 in progress);
/// answers the final status.
async fn checkout_as_a_client_would(app: &TestApp, token: &str, cart: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = checkout(app, token, cart, "buy", APPROVED).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let retry = status == 503
            || (status == 409 && body["error"]["code"] == "idempotency_key_in_progress");
        if !retry || tokio::time::Instant::now() > deadline {
            return status.to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `shoppers` shoppers, alternating between the two processes, each adding one unit of a
/// 100-unit SKU and checking out at once. The first `first_wave` start at once; the others start
/// when `between_waves` ends, which runs meanwhile and is told how many add-to-cart answers have
/// come back — so whatever it does lands at a known point of the race, with the first wave's
/// checkouts in flight. Asserts exactly 100 orders, 100 units sold, and the rest refused.
async fn race_for_a_hundred_units<F, Fut>(
    first: &TestApp,
    second: &TestApp,
    shoppers: usize,
    first_wave: usize,
    between_waves: F,
) where
    F: FnOnce(Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let digital = json!({
        "name": "Digital", "currency": "EUR", "countries": ["DE"], "tax_inclusive": true,
        "tax_rates": { "default": "0.19" }, "shipping_options": []
    });
    let created = first
        .call(Method::PUT, "/api/v1/regions/DG", OPERATOR, Some(&digital))
        .await;
    assert!(created.status().is_success());
    stocked(first, "HOT-1", 100).await;

    let mut carts = Vec::new();
    for n in 0..shoppers {
        let app = if n % 2 == 0 { first } else { second };
        let token = shopper(app).await;
        let id = cart(app, &token, "DG").await;
        carts.push((n, token, id));
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let (start_second_wave, second_wave) = tokio::sync::watch::channel(false);
    let racers = carts.iter().map(|(n, token, id)| {
        let app = if n % 2 == 0 { first } else { second };
        let answered = Arc::clone(&answered);
        let mut second_wave = second_wave.clone();
        async move {
            if *n >= first_wave {
                second_wave
                    .wait_for(|started| *started)
                    .await
                    .expect("the second wave is started");
            }
            let mut added = add(app, token, id, "HOT-1", 1).await;
            // Overloaded (503): nothing was added, so a client adds again.
            while added.status() == 503 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                added = add(app, token, id, "HOT-1", 1).await;
            }
            answered.fetch_add(1, Ordering::SeqCst);
            if added.status() == 200 {
                checkout_as_a_client_would(app, token, id).await
            } else {
                let body: Value = added.json().await.expect("json");
                body["error"]["code"].as_str().unwrap_or("?").to_owned()
            }
        }
    });
    let between = async {
        between_waves(Arc::clone(&answered)).await;
        start_second_wave.send_replace(true);
    };
    let (outcomes, ()) =
        futures_util::future::join(futures_util::future::join_all(racers), between).await;
    let sold = outcomes.iter().filter(|o| *o == "201").count();
    let refused = outcomes
        .iter()
        .filter(|o| *o == "insufficient_stock")
        .count();
    assert_eq!((sold, refused), (100, shoppers - 100), "{outcomes:?}");
    assert_eq!(
        scalar(first, "SELECT count(*) FROM orders WHERE status = 'paid'").await,
        100
    );
    assert_eq!(
        scalar(first, "SELECT sum(quantity)::int8 FROM order_lines").await,
        100
    );
    assert_eq!(settled_counts(first, "HOT-1").await, (0, 100));
    assert_eq!(available(second, "HOT-1").await, 0);
}

#[actix_web::test]
async fn five_hundred_shoppers_racing_through_two_processes_buy_exactly_the_stock() {
    let first = spawn_app().await;
    let url = first.settings.database.url.clone();
    let second = spawn_app_with(|settings| settings.database.url = SecretString::from(url)).await;
    race_for_a_hundred_units(&first, &second, 500, 500, |_| async {}).await;
}

#[actix_web::test]
async fn flushing_redis_in_the_middle_of_a_race_still_sells_exactly_the_stock() {
    // A private Redis, so that FLUSHALL touches no other test.
    let redis = OwnRedis::start_on(free_port()).await;
    let redis_url = redis.url();
    let first =
        spawn_app_with(|settings| settings.redis.url = SecretString::from(redis_url.clone())).await;
    let url = first.settings.database.url.clone();
    let second = spawn_app_with(|settings| {
        settings.database.url = SecretString::from(url);
        settings.redis.url = SecretString::from(redis_url.clone());
    })
    .await;
    // 60 shoppers hold units and check out while the counters are flushed; the other 440
    // race for the last 40 units on counters rebuilt from Postgres.
    race_for_a_hundred_units(&first, &second, 500, 60, |answered| async move {
        while answered.load(Ordering::SeqCst) < 60 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let client = redis::Client::open(redis_url.as_str()).expect("redis url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connects");
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut connection)
            .await
            .expect("FLUSHALL");
    })
    .await;
    // The race ran on the Redis counters, and rebuilt them after the flush.
    let mut rebuilds = 0.0;
    for app in [&first, &second] {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        rebuilds += metrics
            .lines()
            .find(|line| line.starts_with("agora_inventory_counter_rebuilds_total"))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    assert!(
        rebuilds >= 2.0,
        "counters built, flushed and rebuilt: {rebuilds}"
    );
}

#[actix_web::test]
async fn seller_orders_answer_at_their_new_path_and_the_old_one_says_it_is_deprecated() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Moved").await;

    let current = app
        .call(Method::GET, "/api/v1/sellers/me/orders", &key, None)
        .await;
    assert_eq!(current.status(), 200);
    assert!(current.headers().get("deprecation").is_none());
    let current: Value = current.json().await.expect("json");

    let old = app
        .call(Method::GET, "/api/v1/seller/orders", &key, None)
        .await;
    assert_eq!(old.status(), 200);
    assert_eq!(old.headers()["deprecation"], "true");
    assert_eq!(
        old.headers()["link"],
        "</api/v1/sellers/me/orders>; rel=\"successor-version\""
    );
    let old: Value = old.json().await.expect("json");
    assert_eq!(old, current, "both paths answer the same");

    let missing = uuid::Uuid::now_v7();
    for base in ["/api/v1/sellers/me/orders", "/api/v1/seller/orders"] {
        let fulfill = app
            .call(
                Method::POST,
                &format!("{base}/{missing}/fulfill"),
                &key,
                None,
            )
            .await;
        assert_eq!(fulfill.status(), 404, "{base}");
    }
}
