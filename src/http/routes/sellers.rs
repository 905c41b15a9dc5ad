//! Sellers: self-service onboarding, the seller's own account and its own products.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::Code;
use crate::{
    catalog::{self, ProductRecord},
    http::{
        auth::SellerAuth,
        error::{ApiError, ErrorBody},
        extract::{parse_cursor, ApiJson},
        AppState,
    },
    sellers::{self, Email, OnboardedSeller, Seller, SellerName},
};

/// Seller products per page when the request names no `limit`, and the most it may name.
const DEFAULT_OWN_PAGE: i64 = 20;
const MAX_OWN_PAGE: i64 = 100;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/sellers").route(web::post().to(onboard)))
        .service(web::resource("/sellers/me").route(web::get().to(me)))
        .service(web::resource("/sellers/me/products").route(web::get().to(own_products)))
        .service(web::resource("/sellers/me/products/{id}").route(web::get().to(own_product)));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardSeller {
    #[schema(example = "Nordlicht Outdoor GmbH")]
    name: String,
    #[schema(example = "shop@nordlicht.example")]
    email: String,
}

/// Onboard a seller; the API key in the answer is shown only this once.
#[utoipa::path(post, path = "/api/v1/sellers", tag = "sellers",
    request_body = OnboardSeller,
    responses(
        (status = 201, body = OnboardedSeller),
        (status = 409, description = "`email_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
#[tracing::instrument(name = "onboard_seller", skip_all)]
pub async fn onboard(
    state: web::Data<AppState>,
    body: ApiJson<OnboardSeller>,
) -> Result<HttpResponse, ApiError> {
    let name = SellerName::parse("name", &body.0.name)?;
    let email = Email::parse("email", &body.0.email)?;
    let client = state.pool.get().await?;
    let onboarded = sellers::onboard(&*client, &name, &email).await?;
    tracing::info!(seller_id = %onboarded.seller.id, "seller onboarded");
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, "/api/v1/sellers/me"))
        .json(onboarded))
}

/// The seller owning the API key.
#[utoipa::path(get, path = "/api/v1/sellers/me", tag = "sellers",
    responses((status = 200, body = Seller), (status = 401, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn me(seller: SellerAuth) -> HttpResponse {
    HttpResponse::Ok().json(seller.0)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OwnProductsParams {
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    cursor: Option<String>,
    /// 1 to 100; default 20.
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnProductsPage {
    items: Vec<ProductRecord>,
    next_cursor: Option<Uuid>,
}

/// The seller's own products, archived ones included, newest first, with stock.
#[utoipa::path(get, path = "/api/v1/sellers/me/products", tag = "sellers",
    params(OwnProductsParams),
    responses((status = 200, body = OwnProductsPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn own_products(
    state: web::Data<AppState>,
    seller: SellerAuth,
    params: web::Query<OwnProductsParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_OWN_PAGE);
    if !(1..=MAX_OWN_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: Code::InvalidQuery,
            message: format!("limit must be 1 to {MAX_OWN_PAGE}"),
            field: Some("limit".into()),
        });
    }
    let cursor = parse_cursor(params.cursor.as_deref())?;
    let client = state.pool.get().await?;
    let items = catalog::list_own(&*client, seller.0.id, cursor, limit).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|p| p.id))
        .flatten();
    Ok(HttpResponse::Ok().json(OwnProductsPage { items, next_cursor }))
}

/// One of the seller's own products, with stock; another seller's product is "not found".
#[utoipa::path(get, path = "/api/v1/sellers/me/products/{id}", tag = "sellers",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn own_product(
    state: web::Data<AppState>,
    seller: SellerAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(catalog::load_own(&*client, seller.0.id, id.into_inner()).await?))
}
