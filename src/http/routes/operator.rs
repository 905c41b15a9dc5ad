//! The operator's controls over sellers.

use actix_web::{web, HttpResponse};
use uuid::Uuid;

use crate::{
    catalog::{self, cache},
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

async fn set_status(state: &AppState, id: Uuid, status: &str) -> Result<HttpResponse, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let seller = sellers::set_status(&tx, id, status).await?;
    catalog::relist_seller(&tx, id).await?;
    tx.commit().await?;
    let products = catalog::product_ids_of(&*client, id).await?;
    cache::evict(&state.hot, &products).await;
    tracing::info!(seller_id = %id, status, products = products.len(), "seller status changed");
    Ok(HttpResponse::Ok().json(seller))
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
    set_status(&state, id.into_inner(), "suspended").await
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
    set_status(&state, id.into_inner(), "active").await
}
