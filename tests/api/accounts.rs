//! The shopper's own account: profile, password change and reset (through the mail that really
//! went over SMTP), a guest's registration, and deletion with the retention of orders.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{
    carts::{add, available, cart, regions, ship_to_germany, shopper, stocked},
    checkout::{checkout, APPROVED},
    helpers::{spawn_app, spawn_app_with, TestApp},
    mail::{app_mailing_to, paid_order, registered},
    mail_sink::MailSink,
};

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/sessions",
        &json!({ "email": email, "password": password }),
    )
    .await
}

async fn session(app: &TestApp, email: &str, password: &str) -> String {
    let response = sign_in(app, email, password).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.call(Method::GET, "/api/v1/shoppers/me", token, None)
        .await
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String, Option<String>) {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["field"].as_str().map(str::to_owned),
    )
}

#[actix_web::test]
async fn a_password_reset_goes_through_the_mailed_link_once() {
    let sink = MailSink::start().await;
    let app = app_mailing_to(&sink).await;
    let email = "marie@example.fr";
    let first = registered(&app, email, "old password", "fr").await;
    let second = session(&app, email, "old password").await;

    for asked in [email, "nobody@example.fr"] {
        let response = app
            .post_json("/api/v1/password-resets", &json!({ "email": asked }))
            .await;
        assert_eq!(response.status(), 202, "the same answer for {asked}");
    }
    let mail = sink
        .wait_for(email, |m| m.subject.contains("mot de passe"))
        .await;
    assert_eq!(mail.subject, "Réinitialiser votre mot de passe Agora");
    let link_start = format!("{}/password-resets/", app.address);
    let token = mail
        .body
        .split_whitespace()
        .find_map(|word| word.strip_prefix(&link_start))
        .expect("the mail holds the link")
        .to_owned();
    assert!(token.starts_with("agora_pr_"), "{token}");

    let short = app
        .post_json(
            &format!("/api/v1/password-resets/{token}"),
            &json!({ "password": "short" }),
        )
        .await;
    assert_eq!(
        error_of(short).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password".into(),
            Some("password".into())
        )
    );
    let reset = app
        .post_json(
            &format!("/api/v1/password-resets/{token}"),
            &json!({ "password": "new password" }),
        )
        .await;
    assert_eq!(reset.status(), 204);

    for old_session in [&first, &second] {
        assert_eq!(
            me(&app, old_session).await.status(),
            401,
            "sessions revoked"
        );
    }
    assert_eq!(sign_in(&app, email, "old password").await.status(), 401);
    let fresh = session(&app, email, "new password").await;
    assert_eq!(me(&app, &fresh).await.status(), 200);

    for used_or_unknown in [token.as_str(), "agora_pr_unknown", "nonsense"] {
        let again = app
            .post_json(
                &format!("/api/v1/password-resets/{used_or_unknown}"),
                &json!({ "password": "another password" }),
            )
            .await;
        assert_eq!(
            error_of(again).await,
            (
                StatusCode::BAD_REQUEST,
                "invalid_reset_token".into(),
                Some("token".into())
            )
        );
    }
    assert_eq!(
        sign_in(&app, email, "another password").await.status(),
        401,
        "a used token changed nothing"
    );
    assert!(sink.to("nobody@example.fr").is_empty());
}

#[actix_web::test]
async fn password_resets_are_throttled_per_account_alike_for_unknown_ones() {
    let app = spawn_app_with(|settings| settings.auth.password_resets_per_account = 2).await;
    for email in ["known@example.com", "unknown@example.com"] {
        if email.starts_with("known") {
            registered(&app, email, "correct horse", "en").await;
        }
        for _ in 0..2 {
            let asked = app
                .post_json("/api/v1/password-resets", &json!({ "email": email }))
                .await;
            assert_eq!(asked.status(), 202);
        }
        let throttled = app
            .post_json("/api/v1/password-resets", &json!({ "email": email }))
            .await;
        assert_eq!(throttled.status(), 429, "{email}");
        assert!(throttled.headers().contains_key("retry-after"));
    }
}

#[actix_web::test]
async fn changing_the_password_keeps_this_session_and_revokes_the_others() {
    let app = spawn_app_with(|settings| settings.auth.sign_in_failures_per_account = 3).await;
    let email = "ana@example.com";
    let this = registered(&app, email, "correct horse", "en").await;
    let other = session(&app, email, "correct horse").await;
    let change = |current: &str, new: &str| {
        let body = json!({ "current_password": current, "new_password": new });
        let (app, this) = (&app, this.clone());
        async move {
            app.call(
                Method::POST,
                "/api/v1/shoppers/me/password",
                &this,
                Some(&body),
            )
            .await
        }
    };

    assert_eq!(
        error_of(change("correct horse", "short").await).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password".into(),
            Some("new_password".into())
        )
    );
    assert_eq!(change("wrong horse", "battery staple").await.status(), 403);
    assert_eq!(
        change("correct horse", "battery staple").await.status(),
        204
    );
    assert_eq!(
        me(&app, &this).await.status(),
        200,
        "the calling session stays"
    );
    assert_eq!(
        me(&app, &other).await.status(),
        401,
        "the others are revoked"
    );
    assert_eq!(sign_in(&app, email, "correct horse").await.status(), 401);
    session(&app, email, "battery staple").await;

    // Wrong current passwords count like failed sign-ins (this is the third failure of the
    // account, with the one above and the sign-in with the old password): the limit.
    let (status, code, _) = error_of(change("wrong horse", "whatever else").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "wrong_password")
    );
    assert_eq!(
        change("battery staple", "whatever else").await.status(),
        429
    );

    let guest = shopper(&app).await;
    let guest_change = app
        .call(
            Method::POST,
            "/api/v1/shoppers/me/password",
            &guest,
            Some(&json!({ "current_password": "x", "new_password": "whatever else" })),
        )
        .await;
    assert_eq!(error_of(guest_change).await.1, "guest_account");
}

#[actix_web::test]
async fn the_profile_is_patched_field_by_field_and_bad_values_are_named() {
    let app = spawn_app().await;
    let token = registered(&app, "lea@example.com", "correct horse", "en").await;
    let patch = |body: Value| {
        let (app, token) = (&app, token.clone());
        async move {
            app.call(Method::PATCH, "/api/v1/shoppers/me", &token, Some(&body))
                .await
        }
    };

    let patched =
        patch(json!({ "name": "  Léa Martin ", "locale": "fr-ca", "currency": "CHF" })).await;
    assert_eq!(patched.status(), 200);
    let shown: Value = me(&app, &token).await.json().await.expect("json");
    assert_eq!(shown["name"], "Léa Martin");
    assert_eq!(shown["locale"], "fr-CA");
    assert_eq!(shown["currency"], "CHF");
    assert_eq!(shown["email"], "lea@example.com");

    for (body, code, field) in [
        (json!({ "name": "" }), "invalid_length", "name"),
        (json!({ "name": "x".repeat(201) }), "invalid_length", "name"),
        (
            json!({ "name": "two\nlines" }),
            "invalid_characters",
            "name",
        ),
        (
            json!({ "locale": "not a locale" }),
            "invalid_locale",
            "locale",
        ),
        (json!({ "locale": "xx" }), "unknown_locale", "locale"),
        (
            json!({ "currency": "EURO" }),
            "unknown_currency",
            "currency",
        ),
        (
            json!({ "currency": "BRL" }),
            "unsupported_currency",
            "currency",
        ),
        (json!({ "currency": 978 }), "invalid_field", "currency"),
        (json!({ "nickname": "Lé" }), "unknown_field", "nickname"),
    ] {
        let refused = patch(body.clone()).await;
        assert_eq!(
            error_of(refused).await,
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                code.to_owned(),
                Some(field.to_owned())
            ),
            "{body}"
        );
    }
    // A refused change wrote nothing, even its valid fields.
    let refused = patch(json!({ "name": "Someone Else", "currency": "BRL" })).await;
    assert_eq!(refused.status(), 422);
    let shown: Value = me(&app, &token).await.json().await.expect("json");
    assert_eq!(shown["name"], "Léa Martin");

    // Absent fields stay, null clears.
    let cleared = patch(json!({ "name": null })).await;
    let cleared: Value = cleared.json().await.expect("json");
    assert_eq!(cleared["name"], Value::Null);
    assert_eq!(cleared["currency"], "CHF");
    assert_eq!(cleared["locale"], "fr-CA");
}

#[actix_web::test]
async fn a_guest_registers_and_keeps_its_carts_and_orders() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "KEEP-1", 10).await;
    let guest = shopper(&app).await;
    let order_id = paid_order(&app, &guest, Some("guest@example.com")).await;
    let open_cart = cart(&app, &guest, "EU").await;
    assert_eq!(
        add(&app, &guest, &open_cart, "KEEP-1", 2).await.status(),
        200
    );
    let guest_id = me(&app, &guest).await.json::<Value>().await.expect("json")["id"].clone();

    let registration = app
        .call(
            Method::POST,
            "/api/v1/shoppers/me/registration",
            &guest,
            Some(&json!({ "email": "kept@example.com", "password": "correct horse" })),
        )
        .await;
    assert_eq!(registration.status(), 200);
    let registered: Value = registration.json().await.expect("json");
    assert_eq!(registered["id"], guest_id, "the same shopper");
    assert_eq!(registered["guest"], false);
    assert_eq!(registered["email"], "kept@example.com");

    let signed_in = session(&app, "kept@example.com", "correct horse").await;
    for token in [&guest, &signed_in] {
        let order = app
            .call(
                Method::GET,
                &format!("/api/v1/orders/{order_id}"),
                token,
                None,
            )
            .await;
        assert_eq!(order.status(), 200, "the order stays the shopper's");
        let kept: Value = app
            .call(
                Method::GET,
                &format!("/api/v1/carts/{open_cart}"),
                token,
                None,
            )
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            kept["lines"][0]["quantity"], 2,
            "the cart stays, with its holds"
        );
    }

    let again = app
        .call(
            Method::POST,
            "/api/v1/shoppers/me/registration",
            &guest,
            Some(&json!({ "email": "other@example.com", "password": "correct horse" })),
        )
        .await;
    assert_eq!(error_of(again).await.1, "already_registered");
    let other_guest = shopper(&app).await;
    let taken = app
        .call(
            Method::POST,
            "/api/v1/shoppers/me/registration",
            &other_guest,
            Some(&json!({ "email": "KEPT@example.com", "password": "correct horse" })),
        )
        .await;
    assert_eq!(
        error_of(taken).await,
        (
            StatusCode::CONFLICT,
            "email_taken".into(),
            Some("email".into())
        )
    );
}

#[actix_web::test]
async fn deleting_an_account_erases_it_at_once_and_keeps_its_orders() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "GONE-1", 10).await;
    let email = "leaving@example.com";
    let token = registered(&app, email, "correct horse", "de").await;
    let other = session(&app, email, "correct horse").await;
    app.call(
        Method::PATCH,
        "/api/v1/shoppers/me",
        &token,
        Some(&json!({ "name": "Leaving Person" })),
    )
    .await;
    let order_id = paid_order(&app, &token, Some(email)).await;
    let open_cart = cart(&app, &token, "EU").await;
    assert_eq!(
        add(&app, &token, &open_cart, "GONE-1", 3).await.status(),
        200
    );
    assert_eq!(available(&app, "GONE-1").await, 7);

    let wrong = app
        .call(
            Method::DELETE,
            "/api/v1/shoppers/me",
            &token,
            Some(&json!({ "password": "wrong horse" })),
        )
        .await;
    assert_eq!(error_of(wrong).await.1, "wrong_password");
    let unconfirmed = app
        .call(
            Method::DELETE,
            "/api/v1/shoppers/me",
            &token,
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        error_of(unconfirmed).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field".into(),
            Some("password".into())
        )
    );
    let deleted = app
        .call(
            Method::DELETE,
            "/api/v1/shoppers/me",
            &token,
            Some(&json!({ "password": "correct horse" })),
        )
        .await;
    assert_eq!(deleted.status(), 204);

    for session in [&token, &other] {
        assert_eq!(me(&app, session).await.status(), 401);
    }
    assert_eq!(sign_in(&app, email, "correct horse").await.status(), 401);
    assert_eq!(
        available(&app, "GONE-1").await,
        10,
        "the cart's units are back"
    );
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT s.email, s.name, s.password_hash, s.deleted_at IS NOT NULL,
                    (SELECT count(*) FROM shopper_sessions t WHERE t.shopper_id = s.id),
                    (SELECT count(*) FROM carts c WHERE c.shopper_id = s.id),
                    o.status, o.contact_email, o.shipping_address IS NOT NULL
             FROM orders o JOIN shoppers s ON s.id = o.shopper_id WHERE o.id = $1::text::uuid",
            &[&order_id],
        )
        .await
        .expect("the order is kept");
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert!(row.get::<_, bool>(3));
    assert_eq!((row.get::<_, i64>(4), row.get::<_, i64>(5)), (0, 0));
    assert_eq!(row.get::<_, &str>(6), "paid");
    assert_eq!(
        row.get::<_, Option<String>>(7).as_deref(),
        Some(email),
        "the order keeps its contact for the books"
    );
    assert!(row.get::<_, bool>(8), "and its address");

    // The email is free again.
    registered(&app, email, "a new start", "en").await;

    // A guest has no password to confirm with.
    let guest = shopper(&app).await;
    let gone = app
        .call(
            Method::DELETE,
            "/api/v1/shoppers/me",
            &guest,
            Some(&json!({})),
        )
        .await;
    assert_eq!(gone.status(), 204);
    assert_eq!(me(&app, &guest).await.status(), 401);
}

#[actix_web::test]
async fn after_the_retention_period_a_deleted_shoppers_orders_lose_their_contact() {
    let app = spawn_app_with(|settings| {
        settings.accounts.order_retention_days = 0;
        settings.accounts.upkeep_interval_secs = 1;
    })
    .await;
    regions(&app).await;
    let guest = shopper(&app).await;
    ship_to_germany_and_pay(&app, &guest).await;
    let kept = shopper(&app).await;
    ship_to_germany_and_pay(&app, &kept).await;
    let gone = app
        .call(
            Method::DELETE,
            "/api/v1/shoppers/me",
            &guest,
            Some(&json!({})),
        )
        .await;
    assert_eq!(gone.status(), 204);

    let db = app.db().await;
    let mut erased = false;
    for _ in 0..50 {
        let row = db
            .query_one(
                "SELECT count(*) FILTER (WHERE s.deleted_at IS NOT NULL AND o.contact_email IS NULL
                                           AND o.shipping_address IS NULL),
                        count(*) FILTER (WHERE s.deleted_at IS NULL AND o.contact_email IS NOT NULL
                                           AND o.shipping_address IS NOT NULL)
                 FROM orders o JOIN shoppers s ON s.id = o.shopper_id",
                &[],
            )
            .await
            .expect("orders");
        if row.get::<_, i64>(0) == 1 {
            assert_eq!(
                row.get::<_, i64>(1),
                1,
                "a live shopper's order keeps its contact"
            );
            erased = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        erased,
        "the upkeep erased the deleted shopper's order contact within 5 s"
    );
}

/// A paid order of the (guest) shopper, shipped to the German test address.
async fn ship_to_germany_and_pay(app: &TestApp, token: &str) {
    let sku = format!("RET-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    stocked(app, &sku, 5).await;
    let id = cart(app, token, "EU").await;
    assert_eq!(add(app, token, &id, &sku, 1).await.status(), 200);
    ship_to_germany(app, token, &id).await;
    let paid = checkout(app, token, &id, "retention", APPROVED).await;
    assert_eq!(paid.status(), 201);
}

/// The CSRF token a page set for this browser.
pub fn csrf_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|cookie| cookie.strip_prefix("agora_csrf="))
        .and_then(|rest| rest.split(';').next())
        .map(str::to_owned)
        .expect("the page sets a CSRF cookie")
}

#[actix_web::test]
async fn a_forgotten_password_is_reset_through_the_pages_and_the_mailed_link() {
    let sink = MailSink::start().await;
    let app = app_mailing_to(&sink).await;
    let email = "seite@example.de";
    registered(&app, email, "old password", "de").await;

    let account = app.get("/account?lang=de").await;
    let csrf = csrf_of(&account);
    assert!(account
        .text()
        .await
        .expect("html")
        .contains("Passwort vergessen?"));
    let form_post = |path: String, fields: Vec<(&'static str, String)>| {
        let (app, csrf) = (&app, csrf.clone());
        async move {
            app.client
                .post(app.url(&path))
                .header(reqwest::header::COOKIE, format!("agora_csrf={csrf}"))
                .form(&fields)
                .send()
                .await
                .expect("sent")
        }
    };
    let asked = form_post(
        "/account/password-reset?lang=de".into(),
        vec![("csrf", csrf.clone()), ("email", email.into())],
    )
    .await;
    assert_eq!(asked.status(), 202);
    assert!(asked.text().await.expect("html").contains("unterwegs"));

    let mail = sink
        .wait_for(email, |m| m.subject == "Ihr Agora-Passwort zurücksetzen")
        .await;
    let link = mail
        .body
        .split_whitespace()
        .find(|word| word.contains("/password-resets/"))
        .expect("the link")
        .to_owned();
    let path = link
        .strip_prefix(&app.address)
        .expect("a link to this store");
    let page = app.get(&format!("{path}?lang=de")).await;
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .await
        .expect("html")
        .contains("Neues Passwort wählen"));

    let short = form_post(
        format!("{path}?lang=de"),
        vec![("csrf", csrf.clone()), ("password", "kurz".into())],
    )
    .await;
    assert_eq!(short.status(), 422);
    assert!(short
        .text()
        .await
        .expect("html")
        .contains("Ein Passwort hat 8 bis 128 Zeichen."));
    let set = form_post(
        format!("{path}?lang=de"),
        vec![
            ("csrf", csrf.clone()),
            ("password", "neues Passwort".into()),
        ],
    )
    .await;
    assert_eq!(set.status(), 200);
    assert!(set
        .text()
        .await
        .expect("html")
        .contains("Ihr Passwort ist gesetzt"));
    session(&app, email, "neues Passwort").await;

    let again = form_post(
        format!("{path}?lang=de"),
        vec![
            ("csrf", csrf.clone()),
            ("password", "noch ein Passwort".into()),
        ],
    )
    .await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.expect("html").contains("abgelaufen"));
}

#[actix_web::test]
async fn the_account_routes_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let document: Value = app.get("/openapi.json").await.json().await.expect("json");
    for (path, method) in [
        ("/api/v1/shoppers/me", "patch"),
        ("/api/v1/shoppers/me", "delete"),
        ("/api/v1/shoppers/me/password", "post"),
        ("/api/v1/shoppers/me/registration", "post"),
        ("/api/v1/password-resets", "post"),
        ("/api/v1/password-resets/{token}", "post"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|responses| !responses.is_empty()),
            "{method} {path} is not documented"
        );
    }
    let shopper = &document["components"]["schemas"]["Shopper"]["properties"];
    assert!(shopper["name"].is_object() && shopper["currency"].is_object());
}
