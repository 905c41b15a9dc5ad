//! Operational endpoints: liveness, readiness and the Prometheus scrape.

use crate::error::Code;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::{
    dependencies,
    http::{error::ErrorBody, AppState},
};

/// `GET /health`, liveness: the process is up and serving HTTP. It checks nothing else, so an orchestrator
/// does not restart a healthy process because a dependency is down.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /ready`, readiness: 200 only when both Postgres and Redis answer within `health.check_timeout_ms`;
/// otherwise 503 naming each dependency that did not.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let timeout = Duration::from_millis(state.settings.health.check_timeout_ms);
    let status = dependencies::check(&state.pool, &state.hot, timeout).await;
    let label = |up: bool| if up { "ok" } else { "unavailable" };
    let checks = json!({ "postgres": label(status.postgres), "redis": label(status.redis) });
    if status.all_up() {
        return HttpResponse::Ok().json(json!({ "status": "ready", "checks": checks }));
    }
    let body = ErrorBody::new(
        Code::NotReady,
        format!("not ready: {} unavailable", status.down().join(" and ")),
        None,
    );
    HttpResponse::ServiceUnavailable().json(json!({ "error": body.error, "checks": checks }))
}

/// `GET /metrics`: the Prometheus text exposition of every `agora_*` metric of this process.
pub async fn prometheus_metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::observability::render(&state.metrics, &state.pool))
}
