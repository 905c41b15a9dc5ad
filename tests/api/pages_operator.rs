//! The operator console and the shopper's flash-sale page, driven as a browser without
//! JavaScript would: cookies read from `Set-Cookie` and sent back, the CSRF token taken from
//! the `agora_csrf` cookie, forms posted as `application/x-www-form-urlencoded`.

use std::{collections::BTreeMap, time::Duration};

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const OPERATOR: &str = "test-operator-token";

/// A browser's cookies, kept by hand (reqwest here has no cookie store).
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let pair = value.split(';').next().unwrap_or_default();
            let expired = value.contains("Max-Age=0");
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || expired {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn csrf(&self) -> String {
        self.cookies.get("agora_csrf").cloned().unwrap_or_default()
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> (StatusCode, String) {
        let response = Self::client()
            .get(app.url(path))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("sent");
        self.keep(&response);
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// Posts a form; answers the status, the `Location` and the body.
    async fn post(
        &mut self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let response = Self::client()
            .post(app.url(path))
            .header(header::COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("sent");
        self.keep(&response);
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        (status, location, response.text().await.expect("body"))
    }

    /// Signs in to the console with `token`.
    async fn operator(app: &TestApp, token: &str) -> (Self, StatusCode, String) {
        let mut browser = Self::default();
        let (status, page) = browser.get(app, "/operator").await;
        assert_eq!(status, 200);
        assert!(page.contains("id=\"operator-token\""), "{page}");
        let csrf = browser.csrf();
        let (status, _, page) = browser
            .post(
                app,
                "/operator/sign-in",
                &[
                    ("csrf", &csrf),
                    ("token", token),
                    ("next", "/operator/sellers"),
                ],
            )
            .await;
        (browser, status, page)
    }
}

/// A seller with one product titled `title`; answers the seller's id.
async fn seller_with_product(
    app: &TestApp,
    name: &str,
    title: &str,
    sku: &str,
) -> (String, String) {
    let (id, key) = app.seller(name).await;
    app.product(
        &key,
        &json!({
            "default_locale": "en", "content": { "en": { "title": title } },
            "variants": [{ "sku": sku, "prices": { "EUR": "25.00" }, "stock": 10 }]
        }),
    )
    .await;
    (id, key)
}

#[actix_web::test]
async fn the_operator_signs_in_with_the_token_and_a_wrong_one_is_refused() {
    let app = spawn_app().await;
    let (mut wrong, status, page) = Browser::operator(&app, "not-the-token").await;
    assert_eq!(status, 401);
    assert!(page.contains("id=\"operator-token-error\""), "{page}");
    assert!(!wrong.cookies.contains_key("agora_operator"));
    let (status, _) = wrong.get(&app, "/operator/sellers").await;
    assert_eq!(status, 303, "not signed in: sent to sign in");

    let (mut browser, status, _) = Browser::operator(&app, OPERATOR).await;
    assert_eq!(status, 303);
    assert!(browser.cookies.contains_key("agora_operator"));
    let (status, page) = browser.get(&app, "/operator/sellers").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"seller-q\""), "{page}");

    let (status, page) = browser.get(&app, "/operator/status").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"check-postgres\" class=\"ok\""),
        "{page}"
    );
    assert!(page.contains("id=\"check-redis\" class=\"ok\""), "{page}");
    assert!(page.contains("id=\"open-sockets\""), "{page}");
    assert!(page.contains("id=\"checkout-p99\""), "{page}");

    let csrf = browser.csrf();
    let (status, location, _) = browser
        .post(&app, "/operator/sign-out", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (status.as_u16(), location.as_deref()),
        (303, Some("/operator"))
    );
    let (status, _) = browser.get(&app, "/operator/regions").await;
    assert_eq!(status, 303, "signed out");
}

#[actix_web::test]
async fn suspending_a_seller_from_the_console_takes_its_products_off_the_storefront() {
    let app = spawn_app().await;
    let (seller, _) = seller_with_product(&app, "Lamplighters", "Brass Lantern", "LANTERN-1").await;
    seller_with_product(&app, "Weavers", "Wool Blanket", "BLANKET-1").await;
    let mut shopper = Browser::default();
    let (_, home) = shopper.get(&app, "/").await;
    assert!(home.contains("Brass Lantern") && home.contains("Wool Blanket"));

    let (mut browser, _, _) = Browser::operator(&app, OPERATOR).await;
    let (_, list) = browser.get(&app, "/operator/sellers?q=lamplight").await;
    assert!(
        list.contains(&seller) && !list.contains("Weavers"),
        "{list}"
    );
    let csrf = browser.csrf();
    let back = "/operator/sellers?q=lamplight";
    let (status, location, _) = browser
        .post(
            &app,
            &format!("/operator/sellers/{seller}/suspend"),
            &[("csrf", &csrf), ("back", back)],
        )
        .await;
    assert_eq!(status, 303);
    let location = location.expect("location");
    assert!(location.starts_with(back), "{location}");
    let (_, list) = browser.get(&app, &location).await;
    assert!(list.contains("data-status=\"suspended\""), "{list}");

    let (_, home) = shopper.get(&app, "/").await;
    assert!(
        !home.contains("Brass Lantern"),
        "the suspended seller's product left"
    );
    assert!(home.contains("Wool Blanket"), "others stay");

    browser
        .post(
            &app,
            &format!("/operator/sellers/{seller}/reinstate"),
            &[("csrf", &csrf), ("back", back)],
        )
        .await;
    let (_, home) = shopper.get(&app, "/").await;
    assert!(home.contains("Brass Lantern"), "reinstated, it is back");
}

#[actix_web::test]
async fn a_console_form_posted_without_the_csrf_token_is_refused() {
    let app = spawn_app().await;
    let (seller, _) = seller_with_product(&app, "Potters", "Clay Jug", "JUG-1").await;
    let (mut browser, _, _) = Browser::operator(&app, OPERATOR).await;
    let (status, _, _) = browser
        .post(&app, &format!("/operator/sellers/{seller}/suspend"), &[])
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = browser
        .post(
            &app,
            &format!("/operator/sellers/{seller}/suspend"),
            &[("csrf", "f".repeat(64).as_str())],
        )
        .await;
    assert_eq!(status, 403, "another token is no token");
    let (_, home) = Browser::default().get(&app, "/").await;
    assert!(home.contains("Clay Jug"), "nothing was suspended");
    let (status, _, _) = Browser::default()
        .post(&app, "/operator/sign-in", &[("token", OPERATOR)])
        .await;
    assert_eq!(status, 403, "signing in takes the token too");
}

#[actix_web::test]
async fn a_region_is_created_and_edited_from_the_console_with_refusals_next_to_their_fields() {
    let app = spawn_app().await;
    let (mut browser, _, _) = Browser::operator(&app, OPERATOR).await;
    let csrf = browser.csrf();
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("code", "nordic"),
        ("name", "Nordics"),
        ("currency", "EUR"),
        ("countries", "fi, se"),
        ("tax_inclusive", "true"),
        ("tax_default", "2"),
        ("tax_country.0", "SE"),
        ("tax_rate.0", "0.25"),
        ("ship.0.id", "post"),
        ("ship.0.name", "Post"),
        ("ship.0.carrier", "PostNord"),
        ("ship.0.kind", "flat"),
        ("ship.0.amount", "6.90"),
        ("ship.0.min", "2"),
        ("ship.0.max", "5"),
    ];
    let (status, _, page) = browser.post(&app, "/operator/regions", &form).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"tax-default-error\""), "{page}");
    assert!(
        page.contains("value=\"Nordics\""),
        "the form comes back as sent"
    );

    form[6] = ("tax_default", "0.24");
    form[14] = ("ship.0.min", "soon");
    let (status, _, page) = browser.post(&app, "/operator/regions", &form).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"ship-0-min-error\""), "{page}");

    form[14] = ("ship.0.min", "2");
    form[13] = ("ship.0.amount", "6.905");
    let (status, _, page) = browser.post(&app, "/operator/regions", &form).await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"ship-0-amount-error\""), "{page}");

    form[13] = ("ship.0.amount", "6.90");
    let (status, location, _) = browser.post(&app, "/operator/regions", &form).await;
    assert_eq!(
        (status.as_u16(), location.as_deref()),
        (303, Some("/operator/regions?saved=NORDIC"))
    );
    let region: Value = app
        .get("/api/v1/regions/NORDIC")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(region["countries"], json!(["FI", "SE"]));
    assert_eq!(region["tax_rates"]["SE"], "0.25");
    assert_eq!(region["shipping_options"][0]["rate"]["amount"], "6.90");

    let (status, page) = browser.get(&app, "/operator/regions?edit=NORDIC").await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"PostNord\""), "{page}");
    form[1] = ("code", "NORDIC");
    form[2] = ("name", "Nordic countries");
    form.push(("editing", "true"));
    let (status, _, _) = browser.post(&app, "/operator/regions", &form).await;
    assert_eq!(status, 303);
    let region: Value = app
        .get("/api/v1/regions/NORDIC")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(region["name"], "Nordic countries");
}

/// A sale of `sku` opening in an hour, at 99.00 EUR; answers its id.
async fn scheduled_sale(app: &TestApp, key: &str, sku: &str) -> String {
    let now = chrono::Utc::now();
    let response = app
        .call(
            Method::POST,
            "/api/v1/flash-sales",
            key,
            Some(&json!({
                "sku": sku, "quantity": 3, "prices": { "EUR": "99.00" },
                "starts_at": now + chrono::Duration::hours(1),
                "ends_at": now + chrono::Duration::hours(2),
                "per_shopper_limit": 1,
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    body["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn the_flash_sale_page_counts_down_and_joining_shows_the_place_in_the_queue() {
    let app = spawn_app().await;
    let digital = json!({
        "name": "Digital", "currency": "EUR", "countries": ["DE"], "tax_inclusive": true,
        "tax_rates": { "default": "0.19" }, "shipping_options": []
    });
    let created = app
        .call(Method::PUT, "/api/v1/regions/DG", OPERATOR, Some(&digital))
        .await;
    assert!(created.status().is_success());
    let (_, key) = seller_with_product(&app, "Consoles", "Game Console", "CONSOLE-1").await;
    let sale = scheduled_sale(&app, &key, "CONSOLE-1").await;

    let mut shopper = Browser::default();
    let (status, page) = shopper
        .get(&app, &format!("/flash-sales/{sale}?currency=EUR"))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Game Console"), "{page}");
    assert!(page.contains("data-opens-at=\""), "the countdown: {page}");
    assert!(page.contains("€99.00"), "the sale price: {page}");
    assert!(page.contains("id=\"join\""), "{page}");
    assert!(page.contains("data-state=\"none\""), "{page}");
    assert!(page.contains("/static/flash."), "its script: {page}");

    let (status, _, _) = shopper
        .post(&app, &format!("/flash-sales/{sale}/queue"), &[])
        .await;
    assert_eq!(status, 403, "no CSRF token, no ticket");
    let csrf = shopper.csrf();
    let (status, location, _) = shopper
        .post(
            &app,
            &format!("/flash-sales/{sale}/queue"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(format!("/flash-sales/{sale}").as_str())
    );
    assert!(
        shopper.cookies.contains_key("agora_session"),
        "a guest shopper"
    );

    let (status, page) = shopper.get(&app, &format!("/flash-sales/{sale}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"queue-state\""), "{page}");
    assert!(page.contains("data-state=\"waiting\""), "{page}");
    assert!(
        page.contains("data-position=\"1\""),
        "first in the queue: {page}"
    );
    assert!(!page.contains("id=\"join\""), "joined once: {page}");
    assert!(
        page.contains("id=\"buy\""),
        "the buy form waits, hidden: {page}"
    );

    // A second shopper joins behind the first.
    let mut second = Browser::default();
    second.get(&app, &format!("/flash-sales/{sale}")).await;
    let csrf = second.csrf();
    second
        .post(
            &app,
            &format!("/flash-sales/{sale}/queue"),
            &[("csrf", &csrf)],
        )
        .await;
    let (_, page) = second.get(&app, &format!("/flash-sales/{sale}")).await;
    assert!(page.contains("data-position=\"2\""), "{page}");
}

#[actix_web::test]
async fn an_admitted_shopper_buys_from_the_flash_sale_page_and_sees_the_order() {
    let app = spawn_app().await;
    let digital = json!({
        "name": "Digital", "currency": "EUR", "countries": ["DE"], "tax_inclusive": true,
        "tax_rates": { "default": "0.19" }, "shipping_options": []
    });
    app.call(Method::PUT, "/api/v1/regions/DG", OPERATOR, Some(&digital))
        .await;
    let (_, key) = seller_with_product(&app, "Handhelds", "Handheld", "HANDHELD-1").await;
    let sale = scheduled_sale(&app, &key, "HANDHELD-1").await;
    let mut shopper = Browser::default();
    let path = format!("/flash-sales/{sale}");
    shopper.get(&app, &format!("{path}?currency=EUR")).await;
    let csrf = shopper.csrf();
    shopper
        .post(&app, &format!("{path}/queue"), &[("csrf", &csrf)])
        .await;
    app.db()
        .await
        .execute(
            "UPDATE flash_sales SET starts_at = now() WHERE id = $1::text::uuid",
            &[&sale],
        )
        .await
        .expect("opened");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let page = loop {
        let (_, page) = shopper.get(&app, &path).await;
        if page.contains("data-state=\"admitted\"") {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never admitted: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hidden = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = page.find(&marker).map(|at| at + marker.len()).expect(name);
        page[start..].split('"').next().expect("value").to_owned()
    };
    let (token, key) = (hidden("admission_token"), hidden("idempotency_key"));
    assert!(!token.is_empty());
    let (status, location, page) = shopper
        .post(
            &app,
            &format!("{path}/purchase"),
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("admission_token", &token),
                ("quantity", "1"),
                ("card_number", "4242 4242 4242 4242"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let order = location.expect("location");
    assert!(order.starts_with("/orders/"), "{order}");
    let (status, page) = shopper.get(&app, &order).await;
    assert_eq!(status, 200);
    assert!(page.contains("Handheld"), "{page}");
}
