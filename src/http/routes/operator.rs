//! The operator's controls over sellers, and its view of any order.

use actix_web::{web, HttpResponse};
use uuid::Uuid;

use crate::{
    http::{
        auth::OperatorAuth,
        error::{ApiError, ErrorBody},
        AppState,
    },
    orders::{self, OrderView},
    sellers::{self, Seller},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/operator/sellers/{id}/suspend").route(web::post().to(suspend)))
        .service(web::resource("/operator/sellers/{id}/reinstate").route(web::post().to(reinstate)))
        .service(web::resource("/operator/orders/{id}").route(web::get().to(order)));
}

/// Suspend a seller: its key stops working and its products leave the storefront.
#[utoipa::path(post, path = "/api/v1/operator/sellers/{id}/suspend", tag = "operator",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Seller), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
#[tracing::instrument(name = "suspend_seller", skip_all, fields(seller_id = %id))]
pub async fn suspend(
    state: web::Data<AppState>,
    _operator: OperatorAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let seller =
        sellers::suspend(&state.pool, &state.hot, &state.credentials, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(seller))
}

/// Reinstate a suspended seller.
#[utoipa::path(post, path = "/api/v1/operator/sellers/{id}/reinstate", tag = "operator",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Seller), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn reinstate(
    state: web::Data<AppState>,
    _operator: OperatorAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let seller =
        sellers::reinstate(&state.pool, &state.hot, &state.credentials, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(seller))
}

/// Any order, whole: lines, parts, payment, the shipping address and contact email.
#[utoipa::path(get, path = "/api/v1/operator/orders/{id}", tag = "operator",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn order(
    state: web::Data<AppState>,
    _operator: OperatorAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let order = orders::view(&*client, id.into_inner(), None)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(HttpResponse::Ok().json(order))
}
