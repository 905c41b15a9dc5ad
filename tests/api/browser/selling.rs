//! A seller in a real browser: signed in to the console, it sees a shopper's order arrive
//! without a reload and ships it, and the shopper's order page changes to shipped live.

use super::{
    shopping::{add_from_product_page, mug_on_sale, pay_with, ship_to_the_us},
    Driver,
};
use crate::{carts::regions, helpers::spawn_processes};

#[actix_web::test]
async fn a_seller_sees_an_order_arrive_live_and_ships_it_and_the_shopper_sees_it_shipped_live() {
    let apps = spawn_processes(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    regions(a).await;
    let (key, product) = mug_on_sale(a, "BR-SHIP", 5).await;
    let driver = Driver::start().await;
    let test = "selling";

    // The seller signs in to its console on process B and watches its orders.
    let mut seller = driver.browser("seller").await;
    seller.goto(&b.url("/seller?lang=en")).await;
    seller.fill("#api_key", &key).await;
    seller
        .click("form[action='/seller/sign-in'] button[type=submit]")
        .await;
    seller.find("#order-feed").await;
    seller.screenshot(test, "console-before").await;

    // A shopper buys on process A.
    let mut shopper = driver.browser("shopper").await;
    shopper
        .goto(&a.url(&format!("/products/{product}?lang=en&currency=USD")))
        .await;
    add_from_product_page(&shopper, "1").await;
    ship_to_the_us(&shopper, "Shipping").await;
    pay_with(&shopper, "4242424242424242").await;
    shopper
        .wait_for_text("#order-status", "paid", |t| t == "Paid")
        .await;
    let order_path = shopper
        .client
        .current_url()
        .await
        .expect("url")
        .path()
        .to_owned();
    let order_id = order_path.rsplit('/').next().expect("order id").to_owned();

    // The order appears in the seller's feed without a reload.
    let row = format!("#order-feed [data-order='{order_id}']");
    seller.find(&row).await;
    seller.screenshot(test, "console-order-arrived").await;

    // The seller ships it; the shopper's order page (on the other process) follows live.
    seller
        .goto(&b.url(&format!("/seller/orders/{order_id}")))
        .await;
    seller.click("button[data-action=fulfil]").await;
    seller
        .wait_for_text("#order-status", "shipped", |t| t == "Shipped")
        .await;
    shopper
        .wait_for_text("#order-status", "shipped, live", |t| t == "Shipped")
        .await;
    shopper.screenshot(test, "order-shipped-live").await;
    seller.close().await;
    shopper.close().await;
}
