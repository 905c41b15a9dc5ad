//! The operator's controls over sellers.

use actix_web::{web, HttpResponse};
use uuid::Uuid;

use crate::{
    http::{
        auth::OperatorAuth,
        error::{ApiError, ErrorBody},
        AppState,
    },
    sellers::{self, Seller},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/operator/sellers/{id}/suspend").route(web::post().to(suspend)))
        .service(
            web::resource("/operator/sellers/{id}/reinstate").route(web::post().to(reinstate)),
        );
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
    let seller = sellers::suspend(&state.pool, &state.hot, id.into_inner()).await?;
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
    let seller = sellers::reinstate(&state.pool, &state.hot, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(seller))
}
