//! Regions: public reads; the operator creates and replaces them.

use actix_web::{web, HttpResponse};

use crate::{
    http::{
        auth::OperatorAuth,
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        AppState,
    },
    regions::{self, Region, RegionInput},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/regions").route(web::get().to(list)))
        .service(
            web::resource("/regions/{code}")
                .route(web::get().to(show))
                .route(web::put().to(put)),
        );
}

/// Every region the store sells in.
#[utoipa::path(get, path = "/api/v1/regions", tag = "regions",
    responses((status = 200, body = Vec<Region>)))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(regions::list(&*client).await?))
}

/// One region.
#[utoipa::path(get, path = "/api/v1/regions/{code}", tag = "regions",
    params(("code" = String, Path, example = "EU")),
    responses((status = 200, body = Region), (status = 404, body = ErrorBody)))]
pub async fn show(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(regions::get(&*client, &code).await?))
}

/// Create or replace a region (operator).
#[utoipa::path(put, path = "/api/v1/regions/{code}", tag = "regions",
    params(("code" = String, Path, example = "EU")), request_body = RegionInput,
    responses((status = 200, description = "Replaced", body = Region), (status = 201, description = "Created", body = Region),
              (status = 401, body = ErrorBody), (status = 409, description = "`country_in_other_region`", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("operator_token" = [])))]
pub async fn put(
    state: web::Data<AppState>,
    _operator: OperatorAuth,
    code: web::Path<String>,
    body: ApiJson<RegionInput>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let (region, created) = regions::put(&*client, &code, body.0, &state.pricing).await?;
    Ok(if created {
        HttpResponse::Created().json(region)
    } else {
        HttpResponse::Ok().json(region)
    })
}
