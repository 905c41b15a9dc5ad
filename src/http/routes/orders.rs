//! Orders: shoppers see their orders; sellers list, fulfill and refund their own parts of
//! them.

use actix_web::{http::header, middleware, web, HttpResponse};
use uuid::Uuid;

use crate::{
    http::{
        auth::{SellerOrderAuth, ShopperAuth},
        error::{ApiError, ErrorBody},
        extract::PageQuery,
        AppState,
    },
    orders::{
        self, cancellations::PartRefund, fulfillments::ShipmentRequest, OrderView, SellerOrderPage,
    },
};

/// Where the seller's order routes live; `/seller/orders…` (their first home) keeps
/// answering, marked deprecated, until clients have moved.
const SELLER_ORDERS: &str = "/sellers/me/orders";
const DEPRECATED_SELLER_ORDERS: &str = "/seller/orders";
/// Orders on a seller's page when it asks for no `limit`.
const DEFAULT_SELLER_PAGE: i64 = 20;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(web::resource("/orders/{id}").route(web::get().to(show)));
    config.service(
        web::resource(format!("{SELLER_ORDERS}/{{id}}")).route(web::get().to(seller_order)),
    );
    for (base, successor) in [
        (SELLER_ORDERS, None),
        (DEPRECATED_SELLER_ORDERS, Some(SELLER_ORDERS)),
    ] {
        config
            .service(
                web::resource(base)
                    .wrap(deprecated(successor))
                    .route(web::get().to(seller_orders)),
            )
            .service(
                web::resource(format!("{base}/{{id}}/fulfill"))
                    .wrap(deprecated(successor))
                    .route(web::post().to(fulfill)),
            )
            .service(
                web::resource(format!("{base}/{{id}}/refund"))
                    .wrap(deprecated(successor))
                    .route(web::post().to(refund)),
            );
    }
}

/// `Deprecation: true` and a `Link` to the successor on a moved route's old path; nothing on
/// a current one.
fn deprecated(successor: Option<&str>) -> middleware::Condition<middleware::DefaultHeaders> {
    let headers = match successor {
        Some(successor) => middleware::DefaultHeaders::new()
            .add(("Deprecation", "true"))
            .add((
                header::LINK,
                format!("</api/v1{successor}>; rel=\"successor-version\""),
            )),
        None => middleware::DefaultHeaders::new(),
    };
    middleware::Condition::new(successor.is_some(), headers)
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

/// The seller's part of one order (lines, shipping address and contact, what happened after
/// the sale); an order without a part of this seller's is "not found".
#[utoipa::path(get, path = "/api/v1/sellers/me/orders/{id}", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 200, body = orders::SellerOrder), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn seller_order(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let order = orders::seller_order(&*client, seller.0.id, id.into_inner())
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(HttpResponse::Ok().json(order))
}

/// The seller's parts of paid orders, newest first, with cursor pagination.
#[utoipa::path(get, path = "/api/v1/sellers/me/orders", tag = "orders", params(PageQuery),
    responses((status = 200, body = SellerOrderPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn seller_orders(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = query.parse(DEFAULT_SELLER_PAGE, orders::MAX_SELLER_PAGE)?;
    let client = state.pool.get().await?;
    let page = orders::seller_orders(&*client, seller.0.id, before, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Mark every unit of the seller's part not yet shipped as shipped, without tracking
/// (`…/fulfillments` records a shipment with its tracking, by line).
#[utoipa::path(post, path = "/api/v1/sellers/me/orders/{id}/fulfill", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "`invalid_transition`", body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn fulfill(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let request = ShipmentRequest::default();
    state
        .after_sale
        .ship(id.into_inner(), seller.0.id, request)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Refund everything left of the seller's part to the shopper's card: unshipped units are
/// cancelled (back in stock), shipped ones refunded (`…/refunds` refunds by line or amount).
#[utoipa::path(post, path = "/api/v1/sellers/me/orders/{id}/refund", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`, `payment_not_captured`", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn refund(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, seller_id) = (id.into_inner(), seller.0.id);
    state
        .after_sale
        .refund_part(order_id, seller_id, PartRefund::Rest, None)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
