//! The browser pages over plain HTTP: the headers every page carries, forms without this
//! browser's CSRF token, and content shown escaped.

use reqwest::{header, Method, StatusCode};
use serde_json::json;

use crate::{
    carts::regions,
    helpers::{spawn_app, TestApp},
};

/// A product whose title and description look like HTML.
async fn product_with_markup(app: &TestApp) -> String {
    let (_, key) = app.seller("Markup seller").await;
    let product = app
        .product(
            &key,
            &json!({
                "default_locale": "en",
                "content": { "en": { "title": "<script>alert(1)</script> Mug",
                                     "description": "<img src=x onerror=alert(2)> & more" } },
                "variants": [{ "sku": "MARKUP-1", "prices": { "EUR": "9.00" }, "stock": 3 }]
            }),
        )
        .await;
    product["id"].as_str().expect("id").to_owned()
}

#[actix_web::test]
async fn every_page_carries_a_content_security_policy_and_friends() {
    let app = spawn_app().await;
    regions(&app).await;
    let product = product_with_markup(&app).await;
    let paths = [
        "/".to_owned(),
        "/?q=mug&lang=ja&currency=USD".to_owned(),
        format!("/products/{product}"),
        "/cart".to_owned(),
        "/account".to_owned(),
        format!("/products/{}", uuid::Uuid::now_v7()),
        "/seller".to_owned(),
        "/operator".to_owned(),
        format!("/flash-sales/{}", uuid::Uuid::now_v7()),
    ];
    for path in &paths {
        let response = app.get(path).await;
        let headers = response.headers();
        let content_type = headers[header::CONTENT_TYPE].to_str().expect("ascii");
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }
    let missing = app
        .get(&format!("/products/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(
        missing.status(),
        StatusCode::NOT_FOUND,
        "an unknown product is a 404 page"
    );
}

#[actix_web::test]
async fn a_form_post_without_this_browsers_csrf_token_is_refused() {
    let app = spawn_app().await;
    regions(&app).await;
    product_with_markup(&app).await;
    let home = app.get("/").await;
    let csrf = home
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| cookie.strip_prefix("agora_csrf="))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_owned)
        .expect("the page sets a CSRF cookie");

    let post = |cookie: Option<String>, field: &str| {
        let mut request = app
            .client
            .request(Method::POST, app.url("/cart/items"))
            .form(&[("csrf", field), ("sku", "MARKUP-1"), ("quantity", "1")]);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send()
    };
    let without_token = post(Some(format!("agora_csrf={csrf}")), "")
        .await
        .expect("sent");
    assert_eq!(without_token.status(), StatusCode::FORBIDDEN);
    let foreign_site = post(None, &csrf).await.expect("sent");
    assert_eq!(
        foreign_site.status(),
        StatusCode::FORBIDDEN,
        "no cookie: not from this site"
    );
    let wrong_token = post(Some(format!("agora_csrf={csrf}")), "0000")
        .await
        .expect("sent");
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        crate::carts::available(&app, "MARKUP-1").await,
        3,
        "nothing was held"
    );

    let with_token = post(Some(format!("agora_csrf={csrf}")), &csrf)
        .await
        .expect("sent");
    assert_eq!(with_token.status(), StatusCode::OK);
    assert!(
        with_token.url().path().ends_with("/cart"),
        "redirected to the cart"
    );
    assert_eq!(crate::carts::available(&app, "MARKUP-1").await, 2);
}

#[actix_web::test]
async fn html_looking_product_content_is_shown_escaped() {
    let app = spawn_app().await;
    regions(&app).await;
    let product = product_with_markup(&app).await;
    for path in ["/".to_owned(), format!("/products/{product}")] {
        let page = app.get(&path).await.text().await.expect("html");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; Mug"),
            "{path}: {page}"
        );
        assert!(!page.contains("<script>alert(1)"), "{path}");
        assert!(!page.contains("<img src=x"), "{path}");
    }
}

#[actix_web::test]
async fn a_wrong_password_is_said_next_to_the_field_in_the_pages_language() {
    let app = spawn_app().await;
    let account = app.get("/account?lang=de").await;
    let csrf = account
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| cookie.strip_prefix("agora_csrf="))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_owned)
        .expect("the page sets a CSRF cookie");
    let refused = app
        .client
        .post(app.url("/account/sign-in?lang=de"))
        .header(header::COOKIE, format!("agora_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "nobody@example.com"),
            ("password", "wrong-password"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let page = refused.text().await.expect("html");
    assert!(
        page.contains("E-Mail-Adresse oder Passwort ist falsch."),
        "{page}"
    );
    assert!(
        page.contains("aria-invalid=\"true\""),
        "the field is marked: {page}"
    );
}
