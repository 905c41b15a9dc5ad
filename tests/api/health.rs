use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{free_port, spawn_app, spawn_app_with, OwnRedis};

#[actix_web::test]
async fn health_answers_200_while_the_process_is_up() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[actix_web::test]
async fn ready_answers_200_when_postgres_and_redis_answer() {
    let app = spawn_app().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[actix_web::test]
async fn ready_answers_503_naming_redis_when_redis_is_unreachable() {
    let port = free_port();
    let app = spawn_app_with(|settings| {
        settings.redis.url = SecretString::from(format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(body["checks"]["redis"], "unavailable");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("redis"));
}

#[actix_web::test]
async fn ready_turns_200_by_itself_once_redis_is_back() {
    let mut redis = OwnRedis::start_on(free_port()).await;
    let url = redis.url();
    let app = spawn_app_with(|settings| settings.redis.url = SecretString::from(url)).await;
    assert!(
        app.wait_for_status("/ready", 200, Duration::from_secs(5))
            .await
    );

    redis.stop();
    assert!(
        app.wait_for_status("/ready", 503, Duration::from_secs(5))
            .await,
        "/ready never noticed that Redis stopped"
    );

    let _redis = OwnRedis::start_on(redis.port).await;
    assert!(
        app.wait_for_status("/ready", 200, Duration::from_secs(15))
            .await,
        "/ready did not recover after Redis came back"
    );
}

#[actix_web::test]
async fn ready_answers_503_naming_postgres_when_the_database_is_gone() {
    let app = spawn_app().await;
    assert_eq!(app.get("/ready").await.status(), 200);
    let admin = crate::helpers::admin_client(&app.settings).await;
    let db_name = app
        .db()
        .await
        .query_one("SELECT current_database()", &[])
        .await
        .expect("query")
        .get::<_, String>(0);
    admin
        .batch_execute(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .await
        .expect("drop the app's database");

    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["checks"]["postgres"], "unavailable");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[actix_web::test]
async fn metrics_count_requests_by_route_pattern_method_and_status() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.get("/health").await;
    }
    app.get("/no/such/route/12345").await;
    app.get("/api/v1/sellers/me").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .starts_with("text/plain"));
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"agora_http_requests_total{method="GET",route="/health",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/sellers/me",status="401""#),
        "{text}"
    );
    assert!(text.contains(r#"agora_http_request_duration_seconds_bucket{method="GET",route="/health",status="200",le="0.005"}"#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("12345"), "a raw path leaked into the labels");
    for gauge in [
        "agora_db_pool_max_connections",
        "agora_db_pool_connections",
        "agora_db_pool_idle_connections",
        "agora_db_pool_waiting_requests",
    ] {
        assert!(text.contains(gauge), "{gauge} missing");
    }
    for line in text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        assert!(
            line.starts_with("agora_"),
            "metric outside the agora_ namespace: {line}"
        );
    }
}

#[actix_web::test]
async fn every_response_carries_a_request_id_and_a_sane_client_one_is_kept() {
    let app = spawn_app().await;
    let generated = app.get("/health").await;
    let id = generated.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 36);

    let kept = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(kept.headers()["x-request-id"], "trace-abc-123");

    let replaced = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("sent");
    assert_ne!(replaced.headers()["x-request-id"], "bad id with spaces");
}
