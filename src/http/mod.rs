//! The HTTP boundary: routes, the error shape, extractors and middleware.

pub mod auth;
pub mod caching;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod negotiation;
pub mod openapi;
pub mod routes;

use actix_web::web;

use crate::{
    configuration::{Pricing, Settings},
    hot_state::HotState,
    shoppers::PasswordHashing,
};

/// What every handler may reach, shared by all workers.
pub struct AppState {
    /// Postgres, the source of truth.
    pub pool: deadpool_postgres::Pool,
    /// Redis, the hot shared state.
    pub hot: HotState,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Exchange rates and default currency, parsed once at start.
    pub pricing: Pricing,
    /// Bounds concurrent password hashing (memory- and CPU-hard by design).
    pub passwords: PasswordHashing,
    /// The inventory shard actors that serialize and batch stock reservations.
    pub inventory: agora_actors::inventory::InventoryShards,
    /// The carts in use in this process, each an actor running its changes one at a time.
    pub carts: agora_actors::cart::CartsHandle,
    /// Redis stock counters shared by every process; dropped when stock comes back.
    pub counters: crate::stock_counters::StockCounters,
    /// Writes checkouts' orders in batches, one transaction per batch (group commit).
    pub checkout_writes: crate::commit_group::CommitGroup,
    /// The payment gateway, every call bounded in time.
    pub payments: crate::payments::Payments,
    /// Signs and checks flash-sale admission tokens (the store's key, shared by every process).
    pub admission_key: crate::flash_sales::admission::AdmissionKey,
    pub settings: Settings,
}

/// Mounts every route of the application. Routes are resources with method routes, so a
/// known path with the wrong method answers 405, not 404.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/health").route(web::get().to(routes::health::health)))
        .service(web::resource("/ready").route(web::get().to(routes::health::ready)))
        .service(web::resource("/metrics").route(web::get().to(routes::health::prometheus_metrics)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::document)))
        .configure(routes::realtime::configure)
        .service(
            web::scope("/api/v1")
                .configure(routes::sellers::configure)
                .configure(routes::shoppers::configure)
                .configure(routes::products::configure)
                .configure(routes::inventory::configure)
                .configure(routes::regions::configure)
                .configure(routes::operator::configure)
                .configure(routes::carts::configure)
                .configure(routes::orders::configure)
                .configure(routes::flash_sales::configure)
                .configure(routes::recommendations::configure),
        );
}
