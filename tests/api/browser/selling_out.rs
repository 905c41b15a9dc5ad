//! A flash sale and the operator in a real browser: two shoppers queue for one unit, one buys
//! the moment it is admitted and the other sees it sold out; an operator suspends a seller and
//! its products leave the storefront.

use reqwest::Method;
use serde_json::{json, Value};

use super::{
    shopping::{fill_address, mug_on_sale},
    Driver,
};
use crate::{
    carts::regions,
    helpers::{spawn_processes, TestApp},
};

/// A sale of one unit of `sku` at 9.99 EUR, starting in an hour; answers its id.
async fn one_unit_sale(app: &TestApp, key: &str, sku: &str) -> String {
    let now = chrono::Utc::now();
    let response = app
        .call(
            Method::POST,
            "/api/v1/flash-sales",
            key,
            Some(&json!({
                "sku": sku, "quantity": 1, "prices": { "EUR": "9.99" },
                "starts_at": now + chrono::Duration::hours(1),
                "ends_at": now + chrono::Duration::hours(2),
                "per_shopper_limit": 1,
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let sale: Value = response.json().await.expect("json");
    sale["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn two_shoppers_queue_for_one_unit_one_buys_and_the_other_sees_it_sold_out() {
    let apps = spawn_processes(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    regions(a).await;
    let (key, _) = mug_on_sale(a, "BR-FLASH", 5).await;
    let sale = one_unit_sale(a, &key, "BR-FLASH").await;
    let driver = Driver::start().await;
    let test = "flash";
    let page = format!("/flash-sales/{sale}?lang=en&currency=EUR");

    // Both join before it opens, one on each process, and see their places.
    let mut first = driver.browser("first").await;
    first.goto(&a.url(&page)).await;
    first.find("[data-opens-at]").await;
    first.click("#join").await;
    first
        .wait_for_text("#queue-position", "place 1", |t| t.contains('1'))
        .await;
    let mut second = driver.browser("second").await;
    second.goto(&b.url(&page)).await;
    second.click("#join").await;
    second
        .wait_for_text("#queue-position", "place 2", |t| t.contains('2'))
        .await;
    first.screenshot(test, "waiting").await;

    // The sale opens: the first is admitted live and buys; the second sees it sold out live.
    a.db()
        .await
        .execute(
            "UPDATE flash_sales SET starts_at = now() WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("opened");
    let admitted = "#queue-state[data-state=admitted]";
    first.find(admitted).await;
    first.find("#buy").await;
    first.screenshot(test, "admitted").await;
    fill_address(&first, "10115").await;
    first.fill("#card_number", "4242424242424242").await;
    first.click("#buy").await;
    first
        .wait_for_text("#order-status", "paid", |t| t == "Paid")
        .await;
    second.find("#queue-state[data-state=sold_out]").await;
    second.screenshot(test, "sold-out").await;
    let sold: i64 = a
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM orders o JOIN order_lines l ON l.order_id = o.id
             JOIN variants v ON v.id = l.variant_id WHERE v.sku = 'BR-FLASH' AND o.status = 'paid'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(sold, 1, "exactly the one unit was sold");
    first.close().await;
    second.close().await;
}

#[actix_web::test]
async fn an_operator_suspends_a_seller_and_its_products_leave_the_storefront() {
    let apps = spawn_processes(1, &[]).await;
    let a = &apps[0];
    regions(a).await;
    mug_on_sale(a, "BR-SUSPEND", 5).await;
    let driver = Driver::start().await;
    let mut shopper = driver.browser("visitor").await;
    shopper.goto(&a.url("/?lang=en")).await;
    shopper
        .wait_for_text("ul.grid", "the mug", |t| t.contains("Glazed mug"))
        .await;

    let mut operator = driver.browser("operator").await;
    operator.goto(&a.url("/operator?lang=en")).await;
    operator
        .fill("#operator-token", "test-operator-token")
        .await;
    operator
        .click("form[action='/operator/sign-in'] button[type=submit]")
        .await;
    operator.goto(&a.url("/operator/sellers?lang=en")).await;
    let seller = "Browser seller BR-SUSPEND";
    operator
        .wait_for_text("main", "the seller", |t| t.contains(seller))
        .await;
    operator.screenshot("operator", "sellers").await;
    operator
        .click("form[action$='/suspend'] button[type=submit]")
        .await;
    operator
        .wait_for_text("main", "suspended", |t| t.contains("suspended"))
        .await;

    shopper.goto(&a.url("/?lang=en")).await;
    let home = shopper.text("main").await;
    assert!(!home.contains("Glazed mug"), "{home}");
    shopper
        .screenshot("operator", "storefront-after-suspension")
        .await;
    operator.close().await;
    shopper.close().await;
}
