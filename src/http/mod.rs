//! The HTTP boundary: routes, the error shape, extractors and middleware.

pub mod auth;
pub mod caching;
pub mod common_responses;
pub mod error;
pub mod extract;
pub mod hygiene;
pub mod idempotency;
pub mod middleware;
pub mod negotiation;
pub mod openapi;
pub mod overload;
pub mod pages;
pub mod routes;

use actix_web::web;

pub use crate::state::AppState;

/// Mounts every route of the application. Routes are resources with method routes, so a
/// known path with the wrong method answers 405, not 404.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/health").route(web::get().to(routes::health::health)))
        .service(web::resource("/ready").route(web::get().to(routes::health::ready)))
        .service(web::resource("/metrics").route(web::get().to(routes::health::prometheus_metrics)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::document)))
        .configure(routes::realtime::configure)
        .configure(pages::configure)
        .service(
            web::scope("/api/v1")
                .configure(routes::sellers::configure)
                .configure(routes::shoppers::configure)
                .configure(routes::account::configure)
                .configure(routes::products::configure)
                .configure(routes::inventory::configure)
                .configure(routes::regions::configure)
                .configure(routes::operator::configure)
                .configure(routes::carts::configure)
                .configure(routes::checkout::configure)
                .configure(routes::orders::configure)
                .configure(routes::after_sale::configure)
                .configure(routes::flash_sales::configure)
                .configure(routes::recommendations::configure),
        );
}
