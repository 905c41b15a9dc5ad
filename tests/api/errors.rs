//! The JSON error shape on every kind of bad request.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with};

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}"
    );
    let body: Value = response.json().await.expect("a JSON body");
    let error = body["error"].clone();
    assert!(error["code"].is_string(), "no code in {body}");
    assert!(error["message"].is_string(), "no message in {body}");
    (status, error)
}

#[actix_web::test]
async fn malformed_json_gets_400_malformed_json() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/sellers"))
        .header("content-type", "application/json")
        .body(r#"{"name": "Shop", "email": "#)
        .send()
        .await
        .expect("sent");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "malformed_json");
}

#[actix_web::test]
async fn a_body_that_is_not_json_gets_415() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/sellers"))
        .header("content-type", "text/plain")
        .body(r#"{"name": "Shop", "email": "a@b.co"}"#)
        .send()
        .await
        .expect("sent");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 415);
    assert_eq!(error["code"], "unsupported_media_type");
}

#[actix_web::test]
async fn a_body_over_the_limit_gets_413_and_writes_nothing() {
    let app = spawn_app_with(|settings| settings.http.max_body_bytes = 1024).await;
    let response = app
        .post_json(
            "/api/v1/sellers",
            &json!({ "name": "x".repeat(2000), "email": "big@example.com" }),
        )
        .await;
    let (status, error) = error_of(response).await;
    assert_eq!(status, 413);
    assert_eq!(error["code"], "payload_too_large");
    let sellers: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM sellers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(sellers, 0);
}

#[actix_web::test]
async fn a_chunked_body_over_the_limit_gets_413_too() {
    let app = spawn_app_with(|settings| settings.http.max_body_bytes = 1024).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let response = app
        .client
        .post(app.url("/api/v1/sellers"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("sent");
    let (status, _) = error_of(response).await;
    assert_eq!(status, 413);
}

#[actix_web::test]
async fn a_missing_or_mistyped_field_gets_422_naming_it() {
    let app = spawn_app().await;
    let (status, error) = error_of(
        app.post_json("/api/v1/sellers", &json!({ "name": "Shop" }))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(error["code"], "missing_field");
    assert_eq!(error["field"], "email");

    let (status, error) = error_of(
        app.post_json(
            "/api/v1/sellers",
            &json!({ "name": ["Shop"], "email": "a@b.co" }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "name");
}

#[actix_web::test]
async fn an_unknown_route_gets_404_and_a_wrong_method_gets_405_in_the_error_shape() {
    let app = spawn_app().await;
    let (status, error) = error_of(app.get("/api/v1/nothing-here").await).await;
    assert_eq!(status, 404);
    assert_eq!(error["code"], "not_found");

    let response = app
        .client
        .delete(app.url("/health"))
        .send()
        .await
        .expect("sent");
    let (status, error) = error_of(response).await;
    assert_eq!(status, 405);
    assert_eq!(error["code"], "method_not_allowed");
}
