//! Operational endpoints: liveness, readiness and the Prometheus scrape.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::http::{error::ErrorBody, AppState};

/// `GET /health`, liveness: the process is up and serving HTTP. It checks nothing else, so an orchestrator
/// does not restart a healthy process because a dependency is down.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /ready`, readiness: 200 only when both Postgres and Redis answer within `health.check_timeout_ms`;
/// otherwise 503 naming each dependency that did not.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let timeout = Duration::from_millis(state.settings.health.check_timeout_ms);
    let (postgres, redis) = futures_util::join!(
        tokio::time::timeout(timeout, check_postgres(&state.pool)),
        tokio::time::timeout(timeout, state.hot.ping()),
    );
    let postgres_ok = matches!(postgres, Ok(Ok(())));
    let redis_ok = matches!(redis, Ok(Ok(())));
    if let Ok(Err(error)) = &postgres {
        tracing::warn!(error = %crate::http::error::error_chain(error.as_ref()), "postgres is not ready");
    }
    if let Ok(Err(error)) = &redis {
        tracing::warn!(%error, "redis is not ready");
    }
    let status = |ok: bool| if ok { "ok" } else { "unavailable" };
    let checks = json!({ "postgres": status(postgres_ok), "redis": status(redis_ok) });
    metrics::gauge!("agora_dependency_up", "dependency" => "postgres")
        .set(f64::from(u8::from(postgres_ok)));
    metrics::gauge!("agora_dependency_up", "dependency" => "redis")
        .set(f64::from(u8::from(redis_ok)));
    if postgres_ok && redis_ok {
        return HttpResponse::Ok().json(json!({ "status": "ready", "checks": checks }));
    }
    let down: Vec<&str> = [("postgres", postgres_ok), ("redis", redis_ok)]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    let body = ErrorBody::new(
        "not_ready",
        format!("not ready: {} unavailable", down.join(" and ")),
        None,
    );
    HttpResponse::ServiceUnavailable().json(json!({ "error": body.error, "checks": checks }))
}

async fn check_postgres(
    pool: &deadpool_postgres::Pool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let client = pool.get().await?;
    client.simple_query("SELECT 1").await?;
    Ok(())
}

/// `GET /metrics`: the Prometheus text exposition of every `agora_*` metric of this process.
pub async fn prometheus_metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::observability::render(&state.metrics, &state.pool))
}
