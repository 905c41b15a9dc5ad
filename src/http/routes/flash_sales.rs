//! Flash sales: sellers schedule them; shoppers queue, wait for admission and buy.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    addresses::{parse_contact_email, AddressInput},
    flash_sales::{self, NewSale, PurchaseRequest, QueueStatus, SaleView},
    http::{
        auth::{SellerAuth, ShopperAuth},
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        idempotency::{self, PaymentDetails},
        negotiation, AppState,
    },
    orders::OrderView,
    payments::CardNumber,
};

use crate::error::Code;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/flash-sales").route(web::post().to(create)))
        .service(web::resource("/flash-sales/{id}").route(web::get().to(show)))
        .service(web::resource("/flash-sales/{id}/queue").route(web::post().to(join)))
        .service(web::resource("/flash-sales/{id}/queue/me").route(web::get().to(my_ticket)))
        .service(web::resource("/flash-sales/{id}/purchase").route(web::post().to(purchase)));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSale {
    #[schema(example = "MUG-RED")]
    sku: String,
    #[schema(example = 100)]
    quantity: i64,
    /// Sale price by ISO 4217 currency, as decimal strings; shoppers pay in their region's.
    #[schema(example = json!({"EUR": "9.99", "USD": "10.99"}))]
    prices: BTreeMap<String, String>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    #[schema(example = 2)]
    per_shopper_limit: i64,
}

/// Schedule a flash sale of one of your SKUs. Its units leave normal stock when it opens and
/// whatever is unsold returns when it ends.
#[utoipa::path(post, path = "/api/v1/flash-sales", tag = "flash sales", request_body = CreateSale,
    responses((status = 201, body = SaleView), (status = 401, body = ErrorBody),
        (status = 409, description = "`insufficient_stock`: fewer units available than the quantity", body = ErrorBody),
        (status = 422, description = "a field is missing or wrong; `field` names it", body = ErrorBody)),
    security(("seller_api_key" = [])))]
#[tracing::instrument(name = "create_flash_sale", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    seller: SellerAuth,
    body: ApiJson<CreateSale>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let sale = NewSale::parse(
        &state.pricing,
        &body.sku,
        body.quantity,
        &body.prices,
        (body.starts_at, body.ends_at),
        body.per_shopper_limit,
    )?;
    let mut client = state.pool.get().await?;
    let view = flash_sales::create(&mut client, seller.0.id, &sale).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/flash-sales/{}", view.id),
        ))
        .json(view))
}

/// A flash sale: its prices, window, state and units left.
#[utoipa::path(get, path = "/api/v1/flash-sales/{id}", tag = "flash sales", params(("id" = Uuid, Path)),
    responses((status = 200, body = SaleView), (status = 404, body = ErrorBody)))]
pub async fn show(
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let view = flash_sales::get(&*client, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(view))
}

/// Join the sale's waiting queue (before or after it starts): 201 with a new ticket, 200 with
/// the one you already have.
#[utoipa::path(post, path = "/api/v1/flash-sales/{id}/queue", tag = "flash sales", params(("id" = Uuid, Path)),
    responses((status = 201, body = QueueStatus), (status = 200, body = QueueStatus),
        (status = 404, body = ErrorBody), (status = 409, description = "`sold_out`, `sale_closed`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)),
    security(("shopper_token" = [])))]
#[tracing::instrument(name = "join_flash_sale_queue", skip_all, fields(sale_id = %id))]
pub async fn join(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    flash_sales::check_rate(&state.flash_sales, shopper.shopper.id, "join").await?;
    let joined = flash_sales::join(&state.flash_sales, id.into_inner(), shopper.shopper.id).await?;
    Ok(if joined.new {
        HttpResponse::Created().json(joined.status)
    } else {
        HttpResponse::Ok().json(joined.status)
    })
}

/// Your ticket: waiting (with position and estimated wait), admitted (with the token to buy),
/// purchased, sold out or closed. For clients without a socket (`follow_queue` on `/ws`).
#[utoipa::path(get, path = "/api/v1/flash-sales/{id}/queue/me", tag = "flash sales", params(("id" = Uuid, Path)),
    responses((status = 200, body = QueueStatus), (status = 404, description = "no ticket", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn my_ticket(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let status = flash_sales::status(
        &*client,
        &state.flash_sales.admission_key,
        id.into_inner(),
        shopper.shopper.id,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(status))
}

/// Where to ship: the `address` (a `country` alone is only a destination, refused with
/// `address_required` where the region ships).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleShipping {
    address: Option<AddressInput>,
    #[schema(example = "DE")]
    country: Option<String>,
    #[schema(example = "standard")]
    option: String,
}

impl SaleShipping {
    /// Checked: the address's errors name `shipping.address.…`; a country given beside an
    /// address must be the address's.
    fn parse(self) -> Result<flash_sales::SaleShipping, ApiError> {
        let address = self
            .address
            .map(|address| address.validate("shipping.address."))
            .transpose()?;
        let country = self.country.map(|c| c.trim().to_ascii_uppercase());
        match (&address, &country) {
            (Some(address), Some(country)) if *country != address.country => {
                return Err(ApiError::invalid_field(
                    Code::InvalidField,
                    "shipping.country",
                    "differs from the address's country; give the address alone",
                ))
            }
            (None, None) => {
                return Err(ApiError::invalid_field(
                    Code::AddressRequired,
                    "shipping.address",
                    "give the address to ship to",
                ))
            }
            _ => {}
        }
        Ok(flash_sales::SaleShipping {
            address,
            country,
            option: self.option,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Purchase {
    /// From your admission (`queue/me` or the socket).
    admission_token: String,
    #[schema(example = 1)]
    quantity: i64,
    /// The region you buy in: its currency, tax and shipping apply.
    #[schema(example = "EU")]
    region: String,
    /// Where to ship, if the region ships.
    shipping: Option<SaleShipping>,
    /// Who hears about the order: a guest must give one; a registered shopper's defaults to
    /// the account's email.
    #[schema(example = "erika@example.com")]
    email: Option<String>,
    payment: PaymentDetails,
}

/// Buy with an admission: 201 with the paid order. The same `Idempotency-Key` always gets the
/// same answer; an admission buys once.
#[utoipa::path(post, path = "/api/v1/flash-sales/{id}/purchase", tag = "flash sales",
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "1 to 255 characters, unique per purchase attempt")),
    request_body = Purchase,
    responses((status = 201, body = OrderView),
        (status = 400, description = "`invalid_idempotency_key`: no `Idempotency-Key` of 1 to 255 printable characters; `malformed_json`", body = ErrorBody),
        (status = 402, description = "`payment_declined`: the unit and the admission go back", body = ErrorBody),
        (status = 403, description = "`not_admitted`, `invalid_admission` (forged, tampered, another shopper's or used)", body = ErrorBody),
        (status = 409, description = "`sold_out`; `seller_unavailable`: the store suspended the sale's seller (`lines` names the SKU)", body = ErrorBody),
        (status = 410, description = "`admission_expired`", body = ErrorBody),
        (status = 422, description = "`per_shopper_limit_exceeded`, `no_sale_price`, `shipping_required`, `address_required`, `email_required`, `invalid_postal_code`, `idempotency_key_reused`, ...", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody)),
    security(("shopper_token" = [])))]
#[tracing::instrument(name = "flash_sale_purchase", skip_all, fields(sale_id = %id))]
pub async fn purchase(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<Purchase>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency::idempotency_key(&request)?;
    let body = body.0;
    let quantity = u32::try_from(body.quantity)
        .ok()
        .filter(|q| (1..=crate::carts::MAX_QUANTITY).contains(q))
        .ok_or_else(|| {
            ApiError::invalid_field(
                Code::InvalidQuantity,
                "quantity",
                format!("must be 1 to {}", crate::carts::MAX_QUANTITY),
            )
        })?;
    let card = CardNumber::parse("payment.card_number", &body.payment.card_number)?;
    let shipping = body.shipping.map(SaleShipping::parse).transpose()?;
    let email = body.email.as_deref().map(parse_contact_email).transpose()?;
    flash_sales::check_rate(&state.flash_sales, shopper.shopper.id, "purchase").await?;
    let preference =
        negotiation::locale_preference(&request, shopper.shopper.locale.as_deref(), &state)?;
    let outcome = flash_sales::purchase(
        &state.flash_sales,
        PurchaseRequest {
            sale_id: id.into_inner(),
            shopper_id: shopper.shopper.id,
            key,
            token: body.admission_token,
            quantity,
            region: body.region.trim().to_ascii_uppercase(),
            shipping,
            email,
            card,
        },
        &preference,
    )
    .await?;
    idempotency::respond(outcome)
}
