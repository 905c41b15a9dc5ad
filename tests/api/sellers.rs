use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[actix_web::test]
async fn an_onboarded_seller_gets_a_key_once_and_it_authenticates() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/sellers",
            &json!({ "name": "Nordlicht", "email": "shop@nordlicht.example" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let key = created["api_key"].as_str().expect("api_key");
    assert!(key.starts_with("agora_sk_"));

    let me: Value = app
        .client
        .get(app.url("/api/v1/sellers/me"))
        .bearer_auth(key)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(me["id"], created["id"]);
    assert_eq!(me["name"], "Nordlicht");
    assert!(
        me.get("api_key").is_none(),
        "the key is shown only at onboarding"
    );

    let stored: Vec<u8> = app
        .db()
        .await
        .query_one("SELECT api_key_hash FROM sellers", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(stored.len(), 32, "only the SHA-256 digest is stored");
    assert!(!String::from_utf8_lossy(&stored).contains(key));
}

#[actix_web::test]
async fn a_second_seller_with_the_same_email_in_other_case_gets_409() {
    let app = spawn_app().await;
    let first = app
        .post_json(
            "/api/v1/sellers",
            &json!({ "name": "A", "email": "Shop@Example.com" }),
        )
        .await;
    assert_eq!(first.status(), 201);
    let second = app
        .post_json(
            "/api/v1/sellers",
            &json!({ "name": "B", "email": "shop@example.COM" }),
        )
        .await;
    assert_eq!(second.status(), 409);
    let body: Value = second.json().await.expect("json");
    assert_eq!(body["error"]["code"], "email_taken");
    assert_eq!(body["error"]["field"], "email");
}

#[actix_web::test]
async fn invalid_seller_fields_get_422_naming_the_field() {
    let app = spawn_app().await;
    for (body, field, code) in [
        (
            json!({ "name": "A", "email": "not-an-email" }),
            "email",
            "invalid_email",
        ),
        (
            json!({ "name": "  ", "email": "a@b.co" }),
            "name",
            "invalid_length",
        ),
        (
            json!({ "name": "x".repeat(201), "email": "a@b.co" }),
            "name",
            "invalid_length",
        ),
        (
            json!({ "name": "A", "email": "a@b.co", "role": "admin" }),
            "role",
            "unknown_field",
        ),
    ] {
        let response = app.post_json("/api/v1/sellers", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{body}");
        assert_eq!(error["error"]["code"], code, "{body}");
    }
}

#[actix_web::test]
async fn seller_calls_without_a_valid_key_get_401() {
    let app = spawn_app().await;
    let missing = app.get("/api/v1/sellers/me").await;
    assert_eq!(missing.status(), 401);
    let wrong = app
        .client
        .get(app.url("/api/v1/sellers/me"))
        .bearer_auth("agora_sk_not-a-real-key")
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
}
