//! A shopper in a real browser: browsing in German with dollar prices, a cart and a product
//! page that change live across tabs and server processes, checkout, and a declined card.

use serde_json::{json, Value};

use super::{Browser, Driver};
use crate::{
    carts::{available, regions},
    helpers::{spawn_processes, TestApp},
};

/// A seller with one mug of `stock` units, titled in English and German, priced in EUR and
/// USD; answers the seller's API key and the product's id.
pub(super) async fn mug_on_sale(app: &TestApp, sku: &str, stock: u32) -> (String, String) {
    let (_, key) = app.seller(&format!("Browser seller {sku}")).await;
    let product: Value = app
        .product(&key, &json!({
            "default_locale": "en",
            "content": { "en": { "title": "Glazed mug" },
                         "de": { "title": "Glasierter Becher", "description": "Handgemacht in Bayern" } },
            "variants": [{ "sku": sku, "prices": { "EUR": "20.00", "USD": "22.00" }, "stock": stock,
                           "weight_grams": 400 }]
        }))
        .await;
    (key, product["id"].as_str().expect("product id").to_owned())
}

/// Puts `quantity` of the product page's first variant in the cart; the browser ends on the
/// cart page.
pub(super) async fn add_from_product_page(shopper: &Browser, quantity: &str) {
    shopper.fill("#quantity", quantity).await;
    shopper.click("form.buy button[type=submit]").await;
    shopper.find("#cart").await;
}

/// Types a delivery address (and a guest's email) into the form on the page, in a country of
/// `postal_code`'s format.
pub(super) async fn fill_address(shopper: &Browser, postal_code: &str) {
    shopper.fill("#ship-name", "Alex Example").await;
    shopper.fill("#ship-line1", "1 Main Street").await;
    shopper.fill("#ship-postal_code", postal_code).await;
    shopper.fill("#ship-city", "Springfield").await;
    shopper.fill("#ship-email", "alex@example.com").await;
}

/// Chooses the US destination (an address) and ground shipping on the cart page; the totals
/// then show a line named `shipping` in the page's language.
pub(super) async fn ship_to_the_us(shopper: &Browser, shipping: &str) {
    shopper.find("form.shipping").await;
    fill_address(shopper, "62701").await;
    shopper.click("form.shipping button[type=submit]").await;
    shopper
        .wait_for_text("dl.totals", "the shipping line", |t| t.contains(shipping))
        .await;
}

pub(super) async fn pay_with(shopper: &Browser, card: &str) {
    shopper.fill("#card_number", card).await;
    shopper.click("form.checkout button[type=submit]").await;
}

#[actix_web::test]
async fn a_german_shopper_paying_in_dollars_sees_cart_and_stock_change_live_across_tabs_and_processes(
) {
    let apps = spawn_processes(2, &[]).await;
    let (a, b) = (&apps[0], &apps[1]);
    regions(a).await;
    let (_, product) = mug_on_sale(a, "BR-MUG", 4).await;
    let driver = Driver::start().await;
    let mut shopper = driver.browser("shopper").await;
    let test = "shopping";

    // Browsing on process A, in German, with dollar prices.
    shopper.goto(&a.url("/?lang=de&currency=USD")).await;
    let listing = shopper.text("ul.grid").await;
    assert!(listing.contains("Glasierter Becher"), "{listing}");
    assert!(
        listing.contains("22,00") && listing.contains("$US"),
        "{listing}"
    );
    assert!(shopper.source().await.contains("<html lang=\"de\""));
    shopper.screenshot(test, "listing-de-usd").await;
    shopper.click("ul.grid a").await;
    shopper
        .wait_for_text("h1", "the German title", |t| t == "Glasierter Becher")
        .await;
    let stock = "[data-stock-sku]";
    shopper
        .wait_for_text(stock, "4 left", |t| t == "Nur noch 4 verfügbar")
        .await;
    let first_tab = shopper.current_tab().await;

    // A third tab, on process B, watches the product page.
    let product_tab = shopper.new_tab().await;
    shopper.goto(&b.url(&format!("/products/{product}"))).await;
    shopper
        .wait_for_text(stock, "4 left", |t| t == "Nur noch 4 verfügbar")
        .await;

    // The first tab adds one to the cart on process A ...
    shopper.switch_to(&first_tab).await;
    add_from_product_page(&shopper, "1").await;
    shopper
        .wait_for_text("#cart", "the mug in the cart", |t| {
            t.contains("Glasierter Becher")
        })
        .await;
    shopper.screenshot(test, "cart").await;

    // ... and the product page on process B shows the stock drop without a reload.
    shopper.switch_to(&product_tab).await;
    shopper
        .wait_for_text(stock, "3 left", |t| t == "Nur noch 3 verfügbar")
        .await;
    shopper.screenshot(test, "product-stock-live").await;

    // A second tab on process B shows the cart; a change made on process A appears there live.
    let cart_tab = shopper.new_tab().await;
    shopper.goto(&b.url("/cart")).await;
    let total = "dd[data-total=total]";
    let before = shopper
        .wait_for_text(total, "the total", |t| t.contains("$"))
        .await;
    shopper.switch_to(&first_tab).await;
    shopper.fill("form.inline input[type=number]", "2").await;
    shopper.click("form.inline button[type=submit]").await;
    shopper.switch_to(&cart_tab).await;
    let after = shopper
        .wait_for_text(total, "a new total", |t| t != before)
        .await;
    assert!(
        after.contains("44,00") || after.contains("47,"),
        "{before} -> {after}"
    );
    shopper.screenshot(test, "cart-live-other-process").await;

    // Checkout with the approved test card shows the paid order.
    ship_to_the_us(&shopper, "Versand").await;
    pay_with(&shopper, "4242 4242 4242 4242").await;
    shopper
        .wait_for_text("#order-status", "paid", |t| t == "Bezahlt")
        .await;
    let order = shopper.text("main").await;
    assert!(order.contains("Glasierter Becher"), "{order}");
    shopper.screenshot(test, "order-paid").await;
    assert_eq!(available(a, "BR-MUG").await, 2);
    shopper.close().await;
}

#[actix_web::test]
async fn a_declined_card_says_so_and_the_units_are_available_again() {
    let apps = spawn_processes(1, &[]).await;
    let a = &apps[0];
    regions(a).await;
    let (_, product) = mug_on_sale(a, "BR-DECLINE", 5).await;
    let driver = Driver::start().await;
    let mut shopper = driver.browser("declined").await;

    shopper
        .goto(&a.url(&format!("/products/{product}?lang=de&currency=USD")))
        .await;
    add_from_product_page(&shopper, "2").await;
    assert_eq!(available(a, "BR-DECLINE").await, 3, "held in the cart");
    ship_to_the_us(&shopper, "Versand").await;
    pay_with(&shopper, "4000 0000 0000 0002").await;
    let notice = shopper
        .wait_for_text("#cart-notice", "the decline", |t| t.contains("abgelehnt"))
        .await;
    assert!(notice.contains("wieder verfügbar"), "{notice}");
    shopper.screenshot("declined", "decline-message").await;
    assert_eq!(
        available(a, "BR-DECLINE").await,
        5,
        "the holds were released"
    );
    shopper.close().await;
}
