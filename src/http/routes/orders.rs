//! Checkout and orders: shoppers pay for their carts and see their orders; sellers list,
//! fulfill and refund their own parts of them.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::Code;
use crate::{
    checkout,
    http::{
        auth::{SellerAuth, ShopperAuth},
        error::{status_of, ApiError, ErrorBody},
        extract::ApiJson,
        negotiation, AppState,
    },
    orders::{self, CheckoutOutcome, OrderView, SellerOrderPage},
    payments::CardNumber,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/carts/{id}/checkout").route(web::post().to(checkout)))
        .service(web::resource("/orders/{id}").route(web::get().to(show)))
        .service(web::resource("/seller/orders").route(web::get().to(seller_orders)))
        .service(web::resource("/seller/orders/{id}/fulfill").route(web::post().to(fulfill)))
        .service(web::resource("/seller/orders/{id}/refund").route(web::post().to(refund)));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    payment: PaymentDetails,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDetails {
    /// The sandbox gateway's test cards: `4242424242424242` (approved), `4000000000000002`
    /// (declined), `4000000000000119` (the gateway never answers).
    #[schema(example = "4242424242424242")]
    pub(crate) card_number: String,
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

/// The request's `Idempotency-Key` header, checked.
pub fn idempotency_key(request: &HttpRequest) -> Result<String, ApiError> {
    checkout::parse_idempotency_key(
        request
            .headers()
            .get("Idempotency-Key")
            .and_then(|v| v.to_str().ok()),
    )
}

/// The answer of a checkout (or flash-sale purchase), fresh or replayed: its stored status and
/// body, `Idempotent-Replayed: true` on a replay, and the order's `Location`.
pub fn respond(answer: checkout::CheckoutResponse) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::build(match &answer.outcome {
        CheckoutOutcome::Paid { .. } => StatusCode::CREATED,
        CheckoutOutcome::NotCharged { code, .. } => status_of(*code),
    });
    if answer.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    if let Some(order) = answer.outcome.order_id() {
        response.insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/orders/{order}"),
        ));
    }
    Ok(match answer.outcome {
        CheckoutOutcome::Paid { order } => response.json(order),
        CheckoutOutcome::NotCharged { code, message } => {
            response.json(ErrorBody::new(code, message, None))
        }
    })
}

/// One of the shopper's orders; anyone else's is "not found".
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let order = orders::view(&*client, id.into_inner(), Some(shopper.shopper.id))
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(HttpResponse::Ok().json(order))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SellerOrdersQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100; 20 by default.
    limit: Option<String>,
}

/// The seller's parts of paid orders, newest first, with cursor pagination.
#[utoipa::path(get, path = "/api/v1/seller/orders", tag = "orders", params(SellerOrdersQuery),
    responses((status = 200, body = SellerOrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn seller_orders(
    state: web::Data<AppState>,
    seller: SellerAuth,
    query: web::Query<SellerOrdersQuery>,
) -> Result<HttpResponse, ApiError> {
    let before = query
        .cursor
        .as_deref()
        .map(|raw| {
            raw.parse::<Uuid>().map_err(|_| ApiError::BadRequest {
                code: Code::InvalidCursor,
                message: "not a cursor from this list".into(),
                field: Some("cursor".into()),
            })
        })
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => 20,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=orders::MAX_SELLER_PAGE).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                code: Code::InvalidLimit,
                message: format!("must be 1 to {}", orders::MAX_SELLER_PAGE),
                field: Some("limit".into()),
            })?,
    };
    let client = state.pool.get().await?;
    let page = orders::seller_orders(&*client, seller.0.id, before, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

async fn announce_seller(state: &AppState, seller_id: Uuid) {
    crate::notices::publish(
        &state.hot,
        &crate::notices::Notice::SellerEvents { seller_id },
    )
    .await;
}

/// Mark the seller's part of an order shipped.
#[utoipa::path(post, path = "/api/v1/seller/orders/{id}/fulfill", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "`invalid_transition`", body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn fulfill(
    state: web::Data<AppState>,
    seller: SellerAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    orders::fulfill(&tx, id.into_inner(), seller.0.id).await?;
    tx.commit().await?;
    announce_seller(&state, seller.0.id).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Refund the seller's part of an order to the shopper's card; unshipped units go back to stock.
#[utoipa::path(post, path = "/api/v1/seller/orders/{id}/refund", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`, `payment_not_captured`", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn refund(
    state: web::Data<AppState>,
    seller: SellerAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order_id = id.into_inner();
    orders::refund(&tx, order_id, seller.0.id, &state.checkout.payments).await?;
    tx.commit().await?;
    // An unshipped part's units are back on sale.
    state
        .counters
        .stock_returned(&orders::skus(&*client, order_id).await?)
        .await;
    announce_seller(&state, seller.0.id).await;
    Ok(HttpResponse::NoContent().finish())
}
