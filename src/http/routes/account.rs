//! The shopper's own things: their address book, their orders and their carts. Each answers
//! the caller's own only; another shopper's address is "not found".

use actix_web::{http::header, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    addresses::book::{self, AddressPatch, NewAddress, SavedAddress},
    carts::{self, CartSummaryPage},
    http::{
        auth::ShopperAuth,
        error::{ApiError, ErrorBody},
        extract::{ApiJson, PageQuery},
        AppState,
    },
    orders::history::{self, OrderSummaryPage},
};

/// Entries per page of a list when the request names no `limit`.
const DEFAULT_PAGE: i64 = 20;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/shoppers/me/addresses")
                .route(web::get().to(address_book))
                .route(web::post().to(add_address)),
        )
        .service(
            web::resource("/shoppers/me/addresses/{id}")
                .route(web::patch().to(change_address))
                .route(web::delete().to(delete_address)),
        )
        .service(web::resource("/shoppers/me/orders").route(web::get().to(my_orders)))
        .service(web::resource("/shoppers/me/carts").route(web::get().to(my_carts)));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddressBook {
    /// The default first, then the newest.
    addresses: Vec<SavedAddress>,
    /// How many addresses the book may hold.
    #[schema(example = 20)]
    max: i64,
}

/// The shopper's address book; guests have none (403 `account_required`).
#[utoipa::path(get, path = "/api/v1/shoppers/me/addresses", tag = "shoppers",
    responses((status = 200, body = AddressBook), (status = 401, body = ErrorBody),
              (status = 403, description = "`account_required`: a guest", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn address_book(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
) -> Result<HttpResponse, ApiError> {
    book::require_account(shopper.shopper.guest)?;
    let client = state.pool.get().await?;
    let addresses = book::list(&*client, shopper.shopper.id).await?;
    Ok(HttpResponse::Ok().json(AddressBook {
        addresses,
        max: book::MAX_ADDRESSES,
    }))
}

/// Save an address; the first one, or one with `"default": true`, becomes the default.
#[utoipa::path(post, path = "/api/v1/shoppers/me/addresses", tag = "shoppers", request_body = NewAddress,
    responses((status = 201, body = SavedAddress), (status = 401, body = ErrorBody),
              (status = 403, description = "`account_required`: a guest", body = ErrorBody),
              (status = 409, description = "`too_many_addresses`", body = ErrorBody),
              (status = 422, description = "`invalid_address`, `invalid_postal_code`, `invalid_country`, `invalid_phone`; `field` names it", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn add_address(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    body: ApiJson<NewAddress>,
) -> Result<HttpResponse, ApiError> {
    book::require_account(shopper.shopper.guest)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let saved = book::create(&tx, shopper.shopper.id, &body.0).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/shoppers/me/addresses/{}", saved.id),
        ))
        .json(saved))
}

/// Change a saved address: the fields given replace the saved ones; `"default": true` makes
/// it the default.
#[utoipa::path(patch, path = "/api/v1/shoppers/me/addresses/{id}", tag = "shoppers",
    params(("id" = Uuid, Path)), request_body = AddressPatch,
    responses((status = 200, body = SavedAddress), (status = 401, body = ErrorBody),
              (status = 403, description = "`account_required`: a guest", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 422, description = "an address field, or `default: false` on the default", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn change_address(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<AddressPatch>,
) -> Result<HttpResponse, ApiError> {
    book::require_account(shopper.shopper.guest)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let saved = book::update(&tx, shopper.shopper.id, id.into_inner(), &body.0).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(saved))
}

/// Delete a saved address; deleting the default makes the most recently saved other one the
/// default. Carts and orders keep their copies.
#[utoipa::path(delete, path = "/api/v1/shoppers/me/addresses/{id}", tag = "shoppers",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 403, description = "`account_required`: a guest", body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn delete_address(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    book::require_account(shopper.shopper.guest)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    book::delete(&tx, shopper.shopper.id, id.into_inner()).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The shopper's orders, newest first: status, total, item count; cursor pagination.
#[utoipa::path(get, path = "/api/v1/shoppers/me/orders", tag = "shoppers", params(PageQuery),
    responses((status = 200, body = OrderSummaryPage),
              (status = 400, description = "`invalid_cursor`, `invalid_limit`", body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn my_orders(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = query.parse(DEFAULT_PAGE, history::MAX_SHOPPER_PAGE)?;
    let client = state.pool.get().await?;
    let page = history::shopper_orders(&*client, shopper.shopper.id, before, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The shopper's carts, newest first: region, line count, last change; cursor pagination.
#[utoipa::path(get, path = "/api/v1/shoppers/me/carts", tag = "shoppers", params(PageQuery),
    responses((status = 200, body = CartSummaryPage),
              (status = 400, description = "`invalid_cursor`, `invalid_limit`", body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn my_carts(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = query.parse(DEFAULT_PAGE, carts::MAX_CART_PAGE)?;
    let client = state.pool.get().await?;
    let page = carts::shopper_carts(&*client, shopper.shopper.id, before, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}
