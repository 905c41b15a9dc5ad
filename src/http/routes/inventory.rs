//! Stock: live availability for everyone; absolute and relative changes, and the ledger,
//! for the seller owning the SKU.

use crate::error::Code;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    http::{
        auth::SellerAuth,
        caching,
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        AppState,
    },
    inventory::{self, Availability, LedgerEntry, StockLevel},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/inventory/{sku}")
                .route(web::get().to(availability))
                .route(web::put().to(set_stock)),
        )
        .service(web::resource("/inventory/{sku}/adjustments").route(web::post().to(adjust_stock)))
        .service(web::resource("/inventory/{sku}/ledger").route(web::get().to(ledger)));
}

/// Units of an SKU a shopper can buy now; never cached.
#[utoipa::path(get, path = "/api/v1/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path)),
    responses((status = 200, body = Availability, headers(("Cache-Control" = String, description = "no-store"))),
              (status = 404, body = ErrorBody)))]
pub async fn availability(
    state: web::Data<AppState>,
    sku: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let available = inventory::availability(&*client, &sku).await?;
    Ok(HttpResponse::Ok()
        .insert_header(caching::no_store())
        .json(available))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    /// The new absolute count on hand.
    stock_on_hand: u32,
    /// Why (kept in the ledger); default "stock set".
    reason: Option<String>,
}

/// Set stock on hand to an absolute count (seller).
#[utoipa::path(put, path = "/api/v1/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path)), request_body = SetStock,
    responses((status = 200, body = StockLevel), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "`stock_committed`: below the units held for carts and sold", body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("seller_api_key" = [])))]
#[tracing::instrument(name = "set_stock", skip_all, fields(seller_id = %seller.0.id, sku = %sku))]
pub async fn set_stock(
    state: web::Data<AppState>,
    seller: SellerAuth,
    sku: web::Path<String>,
    body: ApiJson<SetStock>,
) -> Result<HttpResponse, ApiError> {
    let reason = inventory::parse_reason(body.0.reason.as_deref(), "stock set")?;
    let (pool, counters) = (&state.pool, &state.counters);
    let stock = body.0.stock_on_hand;
    let level = inventory::set_stock(pool, counters, seller.0.id, &sku, stock, &reason).await?;
    Ok(HttpResponse::Ok().json(level))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// Units to add (negative: to remove).
    delta: i32,
    /// Why, e.g. "damaged in transit"; kept in the ledger.
    reason: String,
}

/// Add or remove stock with a reason (seller); 409 `insufficient_stock` below zero.
#[utoipa::path(post, path = "/api/v1/inventory/{sku}/adjustments", tag = "inventory",
    params(("sku" = String, Path)), request_body = AdjustStock,
    responses((status = 200, body = StockLevel), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("seller_api_key" = [])))]
#[tracing::instrument(name = "adjust_stock", skip_all, fields(seller_id = %seller.0.id, sku = %sku))]
pub async fn adjust_stock(
    state: web::Data<AppState>,
    seller: SellerAuth,
    sku: web::Path<String>,
    body: ApiJson<AdjustStock>,
) -> Result<HttpResponse, ApiError> {
    let reason = inventory::parse_reason(Some(&body.0.reason), "")?;
    let (pool, counters) = (&state.pool, &state.counters);
    let delta = body.0.delta;
    let level = inventory::adjust_stock(pool, counters, seller.0.id, &sku, delta, &reason).await?;
    Ok(HttpResponse::Ok().json(level))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// 1 to 200; default 50.
    limit: Option<i64>,
}

/// The newest stock changes of an SKU (seller).
#[utoipa::path(get, path = "/api/v1/inventory/{sku}/ledger", tag = "inventory",
    params(("sku" = String, Path), LedgerParams),
    responses((status = 200, body = Vec<LedgerEntry>), (status = 400, description = "`invalid_limit`", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn ledger(
    state: web::Data<AppState>,
    seller: SellerAuth,
    sku: web::Path<String>,
    params: web::Query<LedgerParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=inventory::MAX_LEDGER_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest {
            code: Code::InvalidLimit,
            message: format!("must be 1 to {}", inventory::MAX_LEDGER_PAGE),
            field: Some("limit".into()),
        });
    }
    let client = state.pool.get().await?;
    let entries = inventory::ledger(&*client, seller.0.id, &sku, limit).await?;
    Ok(HttpResponse::Ok().json(entries))
}
