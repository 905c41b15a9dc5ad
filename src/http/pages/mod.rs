//! The browser front: server-rendered pages for shoppers (`/`), sellers (`/seller`) and the
//! operator (`/operator`), served by `agora serve` itself from the same domain services as the
//! JSON API (no business rule lives here or in JavaScript).
//!
//! Every page is whole HTML (it works without JavaScript and can be indexed); `live.js` adds
//! what changes live over the WebSocket protocol (`docs/realtime.md`). Templates are maud:
//! compiled, every interpolation escaped. Promises: every page sends a Content-Security-Policy
//! of `default-src 'self'` (no inline script or style, nothing from elsewhere but product
//! images), `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
//! `X-Frame-Options: DENY`; sessions are cookies (see `context`); every state-changing form
//! carries a CSRF token and is refused without it; the JSON API is not affected.

mod account;
mod assets;
mod cart;
mod context;
mod delivery;
mod flash;
mod i18n;
mod layout;
mod operator;
mod order;
mod password_reset;
mod payment;
mod seller;
mod storefront;

use actix_web::{web, HttpResponseBuilder};

/// What every page's response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The headers every HTML response carries.
fn secure(response: &mut HttpResponseBuilder) -> &mut HttpResponseBuilder {
    response
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("X-Frame-Options", "DENY"))
}

/// Mounts every page and the static files.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/static/{file}").route(web::get().to(assets::serve)))
        .service(web::resource("/").route(web::get().to(storefront::home)))
        .service(web::resource("/products/{id}").route(web::get().to(storefront::product)))
        .service(web::resource("/cart").route(web::get().to(cart::show)))
        .service(web::resource("/cart/items").route(web::post().to(cart::add)))
        .service(web::resource("/cart/items/{sku}").route(web::post().to(cart::change)))
        .service(web::resource("/cart/shipping").route(web::post().to(cart::shipping)))
        .service(web::resource("/checkout").route(web::post().to(cart::pay)))
        .configure(order::configure)
        .service(web::resource("/account").route(web::get().to(account::show)))
        .service(web::resource("/account/sign-in").route(web::post().to(account::sign_in)))
        .service(web::resource("/account/sign-up").route(web::post().to(account::sign_up)))
        .service(web::resource("/account/sign-out").route(web::post().to(account::sign_out)))
        .service(
            web::resource("/account/password-reset").route(web::post().to(password_reset::ask)),
        )
        .service(
            web::resource("/password-resets/{token}")
                .route(web::get().to(password_reset::show))
                .route(web::post().to(password_reset::set)),
        )
        .configure(flash::configure)
        .configure(operator::configure)
        .configure(seller::configure);
}
