//! The HTTP boundary: routes, the error shape, extractors and middleware.

pub mod error;
pub mod extract;
pub mod middleware;
pub mod routes;

use actix_web::web;

use crate::{configuration::Settings, hot_state::HotState};

/// What every handler may reach, shared by all workers.
pub struct AppState {
    /// Postgres, the source of truth.
    pub pool: deadpool_postgres::Pool,
    /// Redis, the hot shared state.
    pub hot: HotState,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub settings: Settings,
}

/// Mounts every route of the application. Routes are resources with method routes, so a
/// known path with the wrong method answers 405, not 404.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/health").route(web::get().to(routes::health::health)))
        .service(web::resource("/ready").route(web::get().to(routes::health::ready)))
        .service(web::resource("/metrics").route(web::get().to(routes::health::prometheus_metrics)))
        .service(web::scope("/api/v1").configure(routes::sellers::configure));
}
