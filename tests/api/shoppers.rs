use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_shopper_registers_signs_in_and_out_and_sees_only_itself() {
    let app = spawn_app().await;
    let registered = app
        .post_json(
            "/api/v1/shoppers",
            &json!({ "email": "ana@example.com", "password": "correct horse", "locale": "pt-br" }),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let registered: Value = registered.json().await.expect("json");
    let first_token = registered["token"].as_str().expect("token").to_owned();
    assert!(first_token.starts_with("agora_st_"));

    let me: Value = app
        .call(Method::GET, "/api/v1/shoppers/me", &first_token, None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(me["id"], registered["id"]);
    assert_eq!(me["locale"], "pt-BR");
    assert_eq!(me["guest"], false);

    let wrong = app
        .post_json(
            "/api/v1/sessions",
            &json!({ "email": "ana@example.com", "password": "wrong horse" }),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let unknown = app
        .post_json(
            "/api/v1/sessions",
            &json!({ "email": "nobody@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(unknown.status(), 401);
    let signed_in = app
        .post_json(
            "/api/v1/sessions",
            &json!({ "email": "ANA@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(signed_in.status(), 200);
    let second_token = signed_in.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let other = app
        .post_json("/api/v1/shoppers", &json!({ "guest": true }))
        .await;
    let other: Value = other.json().await.expect("json");
    let other_me: Value = app
        .call(
            Method::GET,
            "/api/v1/shoppers/me",
            other["token"].as_str().expect("token"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(other_me["guest"], true);
    assert_ne!(
        other_me["id"], registered["id"],
        "a token only ever shows its own shopper"
    );

    assert_eq!(
        app.call(
            Method::DELETE,
            "/api/v1/sessions/current",
            &first_token,
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/shoppers/me", &first_token, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/shoppers/me", &second_token, None)
            .await
            .status(),
        200,
        "other sessions live on"
    );

    let stored: String = app
        .db()
        .await
        .query_one(
            "SELECT password_hash FROM shoppers WHERE email = 'ana@example.com'",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
}

#[actix_web::test]
async fn expired_sessions_no_longer_authenticate() {
    let app = spawn_app().await;
    let guest: Value = app
        .post_json("/api/v1/shoppers", &json!({ "guest": true }))
        .await
        .json()
        .await
        .expect("json");
    let token = guest["token"].as_str().expect("token");
    assert_eq!(
        app.call(Method::GET, "/api/v1/shoppers/me", token, None)
            .await
            .status(),
        200
    );
    app.db()
        .await
        .execute(
            "UPDATE shopper_sessions SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .expect("expire");
    assert_eq!(
        app.call(Method::GET, "/api/v1/shoppers/me", token, None)
            .await
            .status(),
        401
    );
}

#[actix_web::test]
async fn invalid_registrations_get_422_naming_the_field() {
    let app = spawn_app().await;
    app.post_json(
        "/api/v1/shoppers",
        &json!({ "email": "taken@example.com", "password": "long enough" }),
    )
    .await;
    for (body, status, code, field) in [
        (
            json!({ "password": "long enough" }),
            422,
            "missing_field",
            "email",
        ),
        (
            json!({ "email": "a@example.com" }),
            422,
            "missing_field",
            "password",
        ),
        (
            json!({ "email": "a@example.com", "password": "short" }),
            422,
            "invalid_password",
            "password",
        ),
        (
            json!({ "email": "not-an-email", "password": "long enough" }),
            422,
            "invalid_email",
            "email",
        ),
        (
            json!({ "email": "a@example.com", "password": "long enough", "locale": "xx" }),
            422,
            "unknown_locale",
            "locale",
        ),
        (
            json!({ "guest": true, "email": "a@example.com" }),
            422,
            "guest_with_credentials",
            "email",
        ),
        (
            json!({ "email": "TAKEN@example.com", "password": "long enough" }),
            409,
            "email_taken",
            "email",
        ),
    ] {
        let response = app.post_json("/api/v1/shoppers", &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(
            (
                error["error"]["code"].as_str(),
                error["error"]["field"].as_str()
            ),
            (Some(code), Some(field)),
            "{body}"
        );
    }
}
