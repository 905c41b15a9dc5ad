//! Checkout: a shopper pays for a cart, exactly once per idempotency key.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    checkout,
    http::{
        auth::ShopperAuth,
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        idempotency::{idempotency_key, respond, PaymentDetails},
        negotiation, AppState,
    },
    orders::OrderView,
    payments::CardNumber,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(web::resource("/carts/{id}/checkout").route(web::post().to(checkout)));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    payment: PaymentDetails,
}

/// Pay for the cart: 201 with the paid order. Retrying with the same `Idempotency-Key` returns
/// the same response (header `Idempotent-Replayed: true`) and never charges twice.
#[utoipa::path(post, path = "/api/v1/carts/{id}/checkout", tag = "orders",
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "1 to 255 characters, unique per checkout attempt")),
    request_body = CheckoutRequest,
    responses(
        (status = 201, body = OrderView),
        (status = 400, description = "`invalid_idempotency_key`", body = ErrorBody),
        (status = 402, description = "`payment_declined`; the holds were released", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`insufficient_stock`, `empty_cart`, `shipping_required`, `hold_expired`, `checkout_in_progress`, `idempotency_key_in_progress`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused` (another request under this key), `invalid_card_number`", body = ErrorBody),
        (status = 502, description = "`payment_failed`", body = ErrorBody),
        (status = 504, description = "`payment_timeout`: nothing charged, holds released", body = ErrorBody)),
    security(("shopper_token" = [])))]
#[tracing::instrument(name = "checkout", skip_all, fields(cart_id = %id))]
pub async fn checkout(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&request)?;
    let card = CardNumber::parse("payment.card_number", &body.0.payment.card_number)?;
    let preference =
        negotiation::locale_preference(&request, shopper.shopper.locale.as_deref(), &state)?;
    let cart_id = id.into_inner();
    let shopper_id = shopper.shopper.id;
    let answer = checkout::checkout(
        &state.checkout,
        shopper_id,
        cart_id,
        &key,
        card,
        &preference,
    )
    .await?;
    respond(answer)
}
