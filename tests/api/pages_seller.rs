//! The seller console in the browser (`/seller`), over HTTP as a browser would use it: the
//! session cookie, CSRF tokens, the order feed scoped to its seller, fulfilment, and product
//! content shown escaped.

use std::collections::BTreeMap;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    carts::{add, cart, regions, shopper},
    helpers::{spawn_app, TestApp},
};

/// A browser without JavaScript: it keeps the cookies the server sets and follows nothing.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// What a page answered.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header(header::COOKIE, self.cookie_header())
        };
        let response = request.send().await.expect("request sent");
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().expect("ascii cookie");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attributes.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(header::LOCATION)
                .map(|l| l.to_str().expect("location").to_owned()),
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(self.app.url(path));
        self.send(request).await
    }

    /// Posts a form; `with_csrf` adds this browser's CSRF token as a page's form would.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> Page {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        if with_csrf {
            form.push(("csrf".into(), self.csrf()));
        }
        let request = self.client.post(self.app.url(path)).form(&form);
        self.send(request).await
    }

    fn csrf(&self) -> String {
        self.cookies
            .get("agora_csrf")
            .cloned()
            .expect("a page set the CSRF cookie")
    }

    /// Opens the sign-in form and signs in with `key`.
    async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/seller").await;
        assert_eq!(form.status, 200);
        self.post("/seller/sign-in", &[("api_key", key)], true)
            .await
    }
}

/// A product of one SKU at 10.00 EUR, of the seller owning `key`; answers its id.
async fn product(app: &TestApp, key: &str, sku: &str, stock: u32) -> String {
    let created = app
        .product(
            key,
            &json!({
                "default_locale": "en", "content": { "en": { "title": format!("Item {sku}") } },
                "variants": [{ "sku": sku, "prices": { "EUR": "10.00" }, "stock": stock, "weight_grams": 500 }]
            }),
        )
        .await;
    created["id"].as_str().expect("id").to_owned()
}

/// A shopper's paid order of one unit of `sku` through the JSON API; answers the order's id
/// and the shopper's token.
async fn order(app: &TestApp, sku: &str) -> (String, String) {
    let token = shopper(app).await;
    let cart_id = cart(app, &token, "EU").await;
    assert_eq!(add(app, &token, &cart_id, sku, 1).await.status(), 200);
    let shipping = app
        .call(
            Method::PUT,
            &format!("/api/v1/carts/{cart_id}/shipping"),
            &token,
            Some(&crate::carts::german_shipping()),
        )
        .await;
    assert_eq!(shipping.status(), 200);
    let response = app
        .client
        .post(app.url(&format!("/api/v1/carts/{cart_id}/checkout")))
        .bearer_auth(&token)
        .header("Idempotency-Key", format!("order-{sku}"))
        .json(&json!({ "payment": { "card_number": "4242424242424242" } }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.expect("json");
    (order["id"].as_str().expect("id").to_owned(), token)
}

#[actix_web::test]
async fn a_seller_signs_in_with_its_key_and_a_wrong_key_gets_the_form_again_with_the_error() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Console Keys").await;
    let mut browser = Browser::new(&app);

    let wrong = browser.sign_in("agora_sk_not-a-key").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("id=\"api_key-error\""),
        "{}",
        wrong.body
    );
    assert!(wrong.body.contains("aria-invalid=\"true\""));
    assert!(!browser.cookies.contains_key("agora_seller"));

    let signed_in = browser.sign_in(&key).await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(
        signed_in.location.as_deref(),
        Some("/seller?done=signed_in")
    );
    assert_eq!(browser.cookies.get("agora_seller"), Some(&key));

    let feed = browser.get("/seller").await;
    assert_eq!(feed.status, 200);
    assert!(feed.body.contains("id=\"order-feed\""));
    assert!(feed.body.contains("Console Keys"));
    assert!(feed.body.contains("/static/seller."));

    let out = browser.post("/seller/sign-out", &[], true).await;
    assert_eq!(out.status, 303);
    assert!(!browser.cookies.contains_key("agora_seller"));
    let form_again = browser.get("/seller").await;
    assert!(form_again.body.contains("name=\"api_key\""));
}

#[actix_web::test]
async fn a_console_page_without_a_session_goes_to_sign_in_and_comes_back_after_it() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Console Return").await;
    let mut browser = Browser::new(&app);
    // A key that no longer signs in (replaced, or its seller suspended) is an expired session.
    browser
        .cookies
        .insert("agora_seller".into(), "agora_sk_expired".into());

    let products = browser.get("/seller/products").await;
    assert_eq!(products.status, 303);
    assert_eq!(
        products.location.as_deref(),
        Some("/seller?next=%2Fseller%2Fproducts")
    );
    assert!(!browser.cookies.contains_key("agora_seller"));

    let form = browser.get("/seller?next=%2Fseller%2Fproducts").await;
    assert!(
        form.body.contains("value=\"/seller/products\""),
        "{}",
        form.body
    );
    let fields = [("api_key", key.as_str()), ("next", "/seller/products")];
    let signed_in = browser.post("/seller/sign-in", &fields, true).await;
    assert_eq!(
        signed_in.location.as_deref(),
        Some("/seller/products?done=signed_in")
    );
    // Only pages of the console are come back to.
    let elsewhere = [("api_key", key.as_str()), ("next", "https://evil.example/")];
    let signed_in = browser.post("/seller/sign-in", &elsewhere, true).await;
    assert_eq!(
        signed_in.location.as_deref(),
        Some("/seller?done=signed_in")
    );
}

#[actix_web::test]
async fn a_console_form_posted_without_the_csrf_token_is_refused() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Console Csrf").await;
    let id = product(&app, &key, "CSRF-1", 3).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&key).await.status, 303);

    let archive = format!("/seller/products/{id}/archive");
    let without = browser.post(&archive, &[], false).await;
    assert_eq!(without.status, 403);
    let forged = browser
        .post(&archive, &[("csrf", "0".repeat(64).as_str())], false)
        .await;
    assert_eq!(forged.status, 403);
    let sign_in = browser
        .post("/seller/sign-in", &[("api_key", &key)], false)
        .await;
    assert_eq!(sign_in.status, 403);
    let product: Value = app
        .call(
            Method::GET,
            &format!("/api/v1/sellers/me/products/{id}"),
            &key,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(product["status"], "active", "nothing changed");

    let with = browser.post(&archive, &[], true).await;
    assert_eq!(with.status, 303);
    let product: Value = app
        .call(
            Method::GET,
            &format!("/api/v1/sellers/me/products/{id}"),
            &key,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(product["status"], "archived");
}

#[actix_web::test]
async fn the_orders_page_of_one_seller_never_shows_another_sellers_order() {
    let app = spawn_app().await;
    regions(&app).await;
    let (_, key_a) = app.seller("Seller A").await;
    let (_, key_b) = app.seller("Seller B").await;
    product(&app, &key_a, "MINE-A", 5).await;
    product(&app, &key_b, "THEIRS-B", 5).await;
    let (order_a, _) = order(&app, "MINE-A").await;
    let (order_b, _) = order(&app, "THEIRS-B").await;

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&key_a).await.status, 303);
    let feed = browser.get("/seller/orders").await;
    assert_eq!(feed.status, 200);
    assert!(feed.body.contains(&format!("data-order=\"{order_a}\"")));
    assert!(
        !feed.body.contains(&order_b),
        "seller B's order on A's page"
    );
    assert!(!feed.body.contains("THEIRS-B"));

    let mine = browser.get(&format!("/seller/orders/{order_a}")).await;
    assert_eq!(mine.status, 200);
    assert!(mine.body.contains("MINE-A"));
    let theirs = browser.get(&format!("/seller/orders/{order_b}")).await;
    assert_eq!(theirs.status, 404);
    assert!(!theirs.body.contains("THEIRS-B"));
    let fulfil_theirs = format!("/seller/orders/{order_b}/fulfil");
    assert_eq!(browser.post(&fulfil_theirs, &[], true).await.status, 404);
}

#[actix_web::test]
async fn fulfilling_from_the_console_marks_the_order_shipped_and_a_second_try_is_refused_in_the_pages_language(
) {
    let app = spawn_app().await;
    regions(&app).await;
    let (_, key) = app.seller("Console Shipper").await;
    product(&app, &key, "SHIP-1", 5).await;
    let (order_id, token) = order(&app, "SHIP-1").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&key).await.status, 303);

    let detail = format!("/seller/orders/{order_id}");
    let before = browser.get(&detail).await;
    assert!(before.body.contains("id=\"order-status\""));
    assert!(before.body.contains("data-status=\"paid\""));

    let fields = [("back", detail.as_str())];
    let fulfilled = browser
        .post(&format!("{detail}/fulfil"), &fields, true)
        .await;
    assert_eq!(fulfilled.status, 303);
    assert_eq!(
        fulfilled.location.as_deref(),
        Some(format!("{detail}?done=fulfilled").as_str())
    );
    let after = browser.get(&format!("{detail}?done=fulfilled")).await;
    assert!(
        after.body.contains("data-status=\"fulfilled\""),
        "{}",
        after.body
    );
    let order: Value = app
        .call(
            Method::GET,
            &format!("/api/v1/orders/{order_id}"),
            &token,
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(order["status"], "fulfilled");

    browser.cookies.insert("agora_lang".into(), "de".into());
    let again = browser
        .post(&format!("{detail}/fulfil"), &fields, true)
        .await;
    assert_eq!(again.status, 409);
    assert!(
        again.body.contains("Dieser Bestellteil lässt das"),
        "{}",
        again.body
    );
}

#[actix_web::test]
async fn a_product_created_through_the_form_shows_html_looking_content_escaped_on_the_storefront() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Console Author").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&key).await.status, 303);

    let script = "<script>alert(1)</script>";
    let fields = [
        ("default_locale", "en"),
        ("base_currency", ""),
        ("content.en.title", script),
        ("content.en.description", "<img src=x onerror=alert(2)>"),
        ("content.de.title", "Becher"),
        ("content.de.description", ""),
        ("variants[0].sku", "ESC-1"),
        ("variants[0].prices.EUR", "12.50"),
        ("variants[0].stock", "4"),
        ("variants[0].attributes", "colour=red"),
        ("variants[0].image_urls", ""),
        ("variants[0].weight_grams", "300"),
        ("variants[1].sku", ""),
        ("variants[1].prices.EUR", ""),
        ("variants[1].stock", ""),
    ];
    let created = browser.post("/seller/products/new", &fields, true).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.location.expect("location");
    let id = location
        .strip_prefix("/seller/products/")
        .and_then(|rest| rest.split('?').next())
        .expect("the product's page")
        .to_owned();

    let storefront = app.get(&format!("/products/{id}")).await;
    assert_eq!(storefront.status(), 200);
    let html = storefront.text().await.expect("body");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains(script));
    assert!(!html.contains("<img src=x"));
    let edit = browser.get(&location).await;
    assert!(edit.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!edit.body.contains(script));
}

#[actix_web::test]
async fn a_refused_product_form_shows_each_refusal_next_to_the_field_it_names() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Console Refusals").await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&key).await.status, 303);

    // The blank first row is skipped: the catalog's variants[0] is the form's row 1.
    let bad_sku = [
        ("default_locale", "en"),
        ("content.en.title", "Lamp"),
        ("variants[0].sku", ""),
        ("variants[1].sku", "bad sku!"),
        ("variants[1].prices.EUR", "10.00"),
        ("variants[1].stock", "1"),
    ];
    let refused = browser.post("/seller/products/new", &bad_sku, true).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("id=\"f-variants-1--sku-error\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"bad sku!\""),
        "the typed values stay"
    );

    let no_title = [
        ("default_locale", "en"),
        ("content.en.title", ""),
        ("content.en.description", "no title"),
        ("variants[0].sku", "LAMP-1"),
        ("variants[0].prices.EUR", "10.00"),
        ("variants[0].stock", "1"),
    ];
    let refused = browser.post("/seller/products/new", &no_title, true).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("id=\"f-content-en-title-error\""),
        "{}",
        refused.body
    );

    let bad_stock = [
        ("default_locale", "en"),
        ("content.en.title", "Lamp"),
        ("variants[0].sku", "LAMP-2"),
        ("variants[0].prices.EUR", "10.00"),
        ("variants[0].stock", "many"),
    ];
    let refused = browser.post("/seller/products/new", &bad_stock, true).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("id=\"f-variants-0--stock-error\""));
}

#[actix_web::test]
async fn stock_is_set_and_adjusted_from_the_console_and_each_change_is_in_the_ledger() {
    let app = spawn_app().await;
    let (_, key) = app.seller("Console Stock").await;
    product(&app, &key, "STOCK-1", 5).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&key).await.status, 303);

    let set = browser
        .post(
            "/seller/stock/STOCK-1/set",
            &[("stock_on_hand", "12"), ("reason", "")],
            true,
        )
        .await;
    assert_eq!(
        set.location.as_deref(),
        Some("/seller/stock/STOCK-1?done=stock_set")
    );
    let adjust = [("delta", "-2"), ("reason", "damaged in transit")];
    let adjusted = browser
        .post("/seller/stock/STOCK-1/adjust", &adjust, true)
        .await;
    assert_eq!(adjusted.status, 303);
    let no_reason = [("delta", "1"), ("reason", "")];
    let refused = browser
        .post("/seller/stock/STOCK-1/adjust", &no_reason, true)
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("id=\"f-adjust-reason-error\""),
        "{}",
        refused.body
    );

    let page = browser.get("/seller/stock/STOCK-1").await;
    assert!(
        page.body
            .contains("<strong id=\"stock-on-hand\">10</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("damaged in transit"));
    assert!(page.body.contains("stock set"));
    assert_eq!(
        app.get("/api/v1/inventory/STOCK-1")
            .await
            .json::<Value>()
            .await
            .expect("json")["available"],
        10
    );
    let (_, other) = app.seller("Someone Else").await;
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.sign_in(&other).await.status, 303);
    assert_eq!(stranger.get("/seller/stock/STOCK-1").await.status, 404);
}
