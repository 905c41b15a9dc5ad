//! The cart page's delivery form in a browser without JavaScript: the address and a guest's
//! email, a refusal shown next to its field with what was typed (escaped), and the order page
//! showing where it goes.

use std::collections::BTreeMap;

use reqwest::header;

use super::{selling, APPROVED};
use crate::{
    carts::regions,
    helpers::{spawn_app, TestApp},
};

/// A browser without JavaScript: keeps cookies, does not follow redirects.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        let cookies: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = request
            .header(header::COOKIE, cookies.join("; "))
            .send()
            .await
            .expect("sent");
        for value in response.headers().get_all(header::SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let status = response.status().as_u16();
        (status, location, response.text().await.expect("body"))
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> String {
        let (status, _, page) = self.send(Self::client().get(app.url(path))).await;
        assert_eq!(status, 200, "{path}: {page}");
        page
    }

    async fn post(
        &mut self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let csrf = self.cookies.get("agora_csrf").cloned().unwrap_or_default();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.send(Self::client().post(app.url(path)).form(&fields))
            .await
    }
}

#[actix_web::test]
async fn the_cart_page_asks_a_guest_for_the_address_and_email_and_shows_a_refusal_next_to_its_field(
) {
    let app = spawn_app().await;
    regions(&app).await;
    selling(&app, "ADDR-PAGE").await;
    let mut browser = Browser::default();
    browser.get(&app, "/?lang=en&currency=EUR").await;
    let (status, _, _) = browser
        .post(
            &app,
            "/cart/items",
            &[("sku", "ADDR-PAGE"), ("quantity", "1")],
        )
        .await;
    assert_eq!(status, 303);
    let page = browser.get(&app, "/cart").await;
    for input in [
        "ship-name",
        "ship-line1",
        "ship-postal_code",
        "ship-city",
        "ship-country",
        "ship-email",
    ] {
        assert!(page.contains(&format!("id=\"{input}\"")), "{input}: {page}");
    }
    let address = |postal_code: &'static str| {
        [
            ("name", "<b>Erika</b> & Co"),
            ("line1", "Heidestraße 17"),
            ("city", "Köln"),
            ("postal_code", postal_code),
            ("country", "DE"),
            ("option", "flat"),
            ("email", "erika@example.com"),
        ]
    };
    let (status, _, page) = browser.post(&app, "/cart/shipping", &address("5114")).await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("data-field=\"address.postal_code\""),
        "{page}"
    );
    assert!(page.contains("id=\"ship-postal_code-error\""), "{page}");
    assert!(page.contains("Please check the postal code"), "{page}");
    assert!(
        page.contains("&lt;b&gt;Erika&lt;/b&gt; &amp; Co"),
        "what was typed, escaped"
    );
    assert!(!page.contains("<b>Erika"), "{page}");

    let (status, location, _) = browser
        .post(&app, "/cart/shipping", &address("51147"))
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/cart")));
    let page = browser.get(&app, "/cart").await;
    let marker = "name=\"idempotency_key\" value=\"";
    let start = page.find(marker).expect("idempotency key") + marker.len();
    let key = page[start..].split('"').next().expect("key").to_owned();
    let (status, location, page) = browser
        .post(
            &app,
            "/checkout",
            &[("idempotency_key", &key), ("card_number", APPROVED)],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let order = browser.get(&app, &location.expect("the order")).await;
    assert!(
        order.contains("Heidestraße 17") && order.contains("51147 Köln"),
        "{order}"
    );
    assert!(
        order.contains("&lt;b&gt;Erika&lt;/b&gt; &amp; Co"),
        "{order}"
    );
}
