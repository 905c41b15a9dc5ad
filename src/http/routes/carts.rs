//! Carts: a shopper's own baskets, with stock held for every unit in them.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    addresses::{parse_contact_email, AddressInput},
    carts::{
        changes::{check_quantity, ShippingChoice, Target},
        CartView, Destination,
    },
    error::Code,
    http::{
        auth::ShopperAuth,
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        negotiation, AppState,
    },
    locale::LocalePreference,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/carts").route(web::post().to(create)))
        .service(web::resource("/carts/{id}").route(web::get().to(show)))
        .service(web::resource("/carts/{id}/items").route(web::post().to(add_item)))
        .service(
            web::resource("/carts/{id}/items/{sku}")
                .route(web::patch().to(change_item))
                .route(web::delete().to(remove_item)),
        )
        .service(web::resource("/carts/{id}/shipping").route(web::put().to(set_shipping)));
}

/// The shopper's chosen locale, else the browser's Accept-Language.
fn preference(
    state: &AppState,
    request: &HttpRequest,
    shopper: &ShopperAuth,
) -> Result<LocalePreference, ApiError> {
    negotiation::locale_preference(request, shopper.shopper.locale.as_deref(), state)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCart {
    #[schema(example = "EU")]
    region: String,
}

/// Open a cart in a region (shopper).
#[utoipa::path(post, path = "/api/v1/carts", tag = "carts", request_body = NewCart,
    responses((status = 201, body = CartView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    body: ApiJson<NewCart>,
) -> Result<HttpResponse, ApiError> {
    let preference = preference(&state, &request, &shopper)?;
    let cart = state
        .cart_service
        .create(shopper.shopper.id, &body.0.region, &preference)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/carts/{}", cart.id),
        ))
        .json(cart))
}

/// The shopper's cart with its totals; another shopper's cart is "not found".
#[utoipa::path(get, path = "/api/v1/carts/{id}", tag = "carts", params(("id" = Uuid, Path)),
    responses((status = 200, body = CartView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let preference = preference(&state, &request, &shopper)?;
    let cart = state
        .cart_service
        .render(shopper.shopper.id, id.into_inner(), &preference)
        .await?;
    Ok(HttpResponse::Ok().json(cart))
}

/// Answers a change of one line, made on the cart's actor, with the cart.
async fn line_changed(
    state: &AppState,
    request: &HttpRequest,
    shopper: &ShopperAuth,
    cart_id: Uuid,
    sku: String,
    target: Target,
) -> Result<HttpResponse, ApiError> {
    let preference = preference(state, request, shopper)?;
    let cart = state
        .cart_service
        .change_line(shopper.shopper.id, cart_id, preference, sku, target)
        .await?;
    Ok(HttpResponse::Ok().json(cart))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    sku: String,
    quantity: u32,
}

/// Add units of a SKU, holding them; 409 `insufficient_stock` with `available`.
#[utoipa::path(post, path = "/api/v1/carts/{id}/items", tag = "carts", params(("id" = Uuid, Path)), request_body = AddItem,
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "`insufficient_stock`, with `available`", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("shopper_token" = [])))]
#[tracing::instrument(name = "add_to_cart", skip_all, fields(cart_id = %id))]
pub async fn add_item(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<AddItem>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let add = check_quantity(body.0.quantity, false)?;
    line_changed(&state, &request, &shopper, id, body.0.sku, Target::Add(add)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeItem {
    /// The new quantity; 0 removes the line.
    quantity: u32,
}

/// Change a line's quantity, holding or releasing the difference.
#[utoipa::path(patch, path = "/api/v1/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = Uuid, Path), ("sku" = String, Path)), request_body = ChangeItem,
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn change_item(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    path: web::Path<(Uuid, String)>,
    body: ApiJson<ChangeItem>,
) -> Result<HttpResponse, ApiError> {
    let (id, sku) = path.into_inner();
    let target = Target::Set(body.0.quantity);
    line_changed(&state, &request, &shopper, id, sku, target)
        .await
        .map_err(line_in_path)
}

/// A line named by the path: an SKU the storefront does not have (or that no SKU can be)
/// names no line, so it is not found, as a line the cart does not hold is.
fn line_in_path(error: ApiError) -> ApiError {
    match error.code() {
        Code::UnknownSku | Code::InvalidSku => ApiError::NotFound("cart line"),
        _ => error,
    }
}

/// Remove a line, releasing its held stock.
#[utoipa::path(delete, path = "/api/v1/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = Uuid, Path), ("sku" = String, Path)),
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn remove_item(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sku) = path.into_inner();
    line_changed(&state, &request, &shopper, id, sku, Target::Set(0))
        .await
        .map_err(line_in_path)
}

/// Where to ship, exactly one of: `address` (checkout needs it where the region ships),
/// `address_id` (a saved address, copied into the cart) or `country` alone (a quote: the cart
/// shows tax and shipping, but cannot check out yet).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetShipping {
    address: Option<AddressInput>,
    /// One of the shopper's saved addresses (`GET /api/v1/shoppers/me/addresses`).
    address_id: Option<Uuid>,
    /// ISO 3166-1 alpha-2 destination country, in the cart's region, for a quote.
    #[schema(example = "DE")]
    country: Option<String>,
    /// A shipping option id of the region.
    #[schema(example = "dhl-standard")]
    option: String,
    /// Who hears about the order. A guest's checkout needs one; a registered shopper's
    /// defaults to the account's email. Absent: the cart keeps the one it has.
    #[schema(example = "erika@example.com")]
    email: Option<String>,
}

/// Choose where the cart ships (an address; or a country alone, for a quote), the shipping
/// option and the contact email.
#[utoipa::path(put, path = "/api/v1/carts/{id}/shipping", tag = "carts", params(("id" = Uuid, Path)), request_body = SetShipping,
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 422, description = "`invalid_address`, `invalid_postal_code`, `invalid_phone`, `invalid_country`, `country_outside_region`, `unknown_shipping_option`, `unknown_address`, `invalid_email`; `field` names the input (e.g. `address.postal_code`)", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn set_shipping(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<SetShipping>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let SetShipping {
        address,
        address_id,
        country,
        option,
        email,
    } = body.0;
    let choice = ShippingChoice {
        destination: Destination::from_parts(country, address, address_id)?,
        option,
        email: email.as_deref().map(parse_contact_email).transpose()?,
    };
    let preference = preference(&state, &request, &shopper)?;
    let cart = state
        .cart_service
        .set_shipping(shopper.shopper.id, id, preference, choice)
        .await?;
    Ok(HttpResponse::Ok().json(cart))
}
