//! Products: sellers create and change their own; shoppers browse, search and read them.

use actix_web::{http::header, web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::Code;
use crate::{
    catalog::{
        input::{NewProduct, ProductPatch},
        storefront::{self, ListingPage, ListingQuery, Sort, StorefrontProduct},
        ProductRecord,
    },
    http::{
        auth::SellerAuth,
        caching::{self, Freshness},
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        negotiation, AppState,
    },
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/products")
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(
            web::resource("/products/{id}")
                .route(web::get().to(show))
                .route(web::patch().to(update)),
        )
        .service(web::resource("/products/{id}/archive").route(web::post().to(archive)))
        .service(web::resource("/products/{id}/restore").route(web::post().to(restore)));
}

fn bad_param(field: &str, message: &str) -> ApiError {
    ApiError::BadRequest {
        code: Code::InvalidQuery,
        message: message.to_owned(),
        field: Some(field.to_owned()),
    }
}

/// Create a product with its variants (seller).
#[utoipa::path(post, path = "/api/v1/products", tag = "products",
    request_body = NewProduct,
    responses(
        (status = 201, description = "Created; the seller's view of the product", body = ProductRecord),
        (status = 401, body = ErrorBody), (status = 409, description = "`sku_taken`", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "Validation failed; `field` names the input", body = ErrorBody)),
    security(("seller_api_key" = [])))]
#[tracing::instrument(name = "create_product", skip_all, fields(seller_id = %seller.0.id))]
pub async fn create(
    state: web::Data<AppState>,
    seller: SellerAuth,
    body: ApiJson<NewProduct>,
) -> Result<HttpResponse, ApiError> {
    let product = state.catalog.create_product(seller.0.id, &body.0).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/sellers/me/products/{}", product.id),
        ))
        .json(product))
}

/// Change a product (seller, own products only).
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = Uuid, Path)),
    request_body = ProductPatch,
    responses(
        (status = 200, body = ProductRecord), (status = 401, body = ErrorBody),
        (status = 404, description = "No such product of this seller", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("seller_api_key" = [])))]
#[tracing::instrument(name = "update_product", skip_all, fields(seller_id = %seller.0.id, product_id = %id))]
pub async fn update(
    state: web::Data<AppState>,
    seller: SellerAuth,
    id: web::Path<Uuid>,
    body: ApiJson<ProductPatch>,
) -> Result<HttpResponse, ApiError> {
    let patch = &body.0;
    let record = state
        .catalog
        .update_product(seller.0.id, id.into_inner(), patch)
        .await?;
    Ok(HttpResponse::Ok().json(record))
}

async fn set_status(
    state: &AppState,
    seller: &SellerAuth,
    id: Uuid,
    status: &str,
) -> Result<HttpResponse, ApiError> {
    let record = state.catalog.set_status(seller.0.id, id, status).await?;
    Ok(HttpResponse::Ok().json(record))
}

/// Take a product off the storefront (seller); its SKUs stay reserved.
#[utoipa::path(post, path = "/api/v1/products/{id}/archive", tag = "products",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn archive(
    state: web::Data<AppState>,
    seller: SellerAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &seller, id.into_inner(), "archived").await
}

/// Put an archived product back on the storefront (seller).
#[utoipa::path(post, path = "/api/v1/products/{id}/restore", tag = "products",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn restore(
    state: web::Data<AppState>,
    seller: SellerAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &seller, id.into_inner(), "active").await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductParams {
    /// BCP 47 locale; overrides `Accept-Language`. Falls back `de-AT` → `de` → the product's default.
    locale: Option<String>,
    /// ISO 4217 currency the store sells in; default: the store's default currency.
    currency: Option<String>,
}

/// One product in the shopper's locale and currency.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "storefront",
    params(("id" = Uuid, Path), ProductParams,
           ("Accept-Language" = Option<String>, Header, description = "Used when `locale` is absent"),
           ("If-None-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = StorefrontProduct, headers(("ETag" = String), ("Cache-Control" = String), ("Content-Language" = String))),
        (status = 304, description = "The client's copy is current"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(name = "show_product", skip_all, fields(product_id = %id))]
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    params: web::Query<ProductParams>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let preference = negotiation::locale_preference(&request, params.locale.as_deref(), &state)?;
    let currency = negotiation::currency(params.currency.as_deref(), &state)?;
    let product = state.catalog.storefront_product(id).await?;
    // A signed-in shopper's view is a weak signal for recommendations; noted off the
    // response's path (an anonymous or unknown token is simply not noted).
    if request
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        if let Ok(shopper) = crate::http::auth::ShopperAuth::extract(&request).await {
            let pool = state.pool.clone();
            actix_web::rt::spawn(async move {
                crate::recommendations::note(
                    &pool,
                    shopper.shopper.id,
                    crate::recommendations::Signal::Viewed { product: id },
                )
                .await;
            });
        }
    }
    let rendered = storefront::render(&product, &preference, currency, &state.pricing.fx)?;
    let catalog = &state.settings.catalog;
    caching::respond(
        &request,
        &rendered,
        Freshness {
            max_age_secs: catalog.product_max_age_secs,
            stale_while_revalidate_secs: catalog.product_stale_while_revalidate_secs,
        },
        Some(&rendered.locale),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListingParams {
    /// BCP 47 locale of titles and of the search; overrides `Accept-Language`.
    locale: Option<String>,
    /// ISO 4217 currency of prices and of the price filters.
    currency: Option<String>,
    /// Only this seller's products.
    seller: Option<String>,
    /// Lowest `price_from`, a decimal string in `currency`.
    min_price: Option<String>,
    /// Highest `price_from`, a decimal string in `currency`.
    max_price: Option<String>,
    /// `true`: only products with at least one SKU in stock.
    in_stock: Option<String>,
    /// Full-text search in the requested locale's language (web-search syntax: words, "phrases", -not, or).
    q: Option<String>,
    /// `newest` (default), `price` or `price_desc`.
    sort: Option<String>,
    /// 1 to 100; default 20.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl ListingParams {
    fn parse(&self, request: &HttpRequest, state: &AppState) -> Result<ListingQuery, ApiError> {
        let preference = negotiation::locale_preference(request, self.locale.as_deref(), state)?;
        let currency = negotiation::currency(self.currency.as_deref(), state)?;
        let seller = self
            .seller
            .as_deref()
            .map(|raw| {
                Uuid::parse_str(raw).map_err(|_| bad_param("seller", "must be a seller id (UUID)"))
            })
            .transpose()?;
        let min_price = self
            .min_price
            .as_deref()
            .map(|raw| {
                currency
                    .parse_amount("min_price", raw)
                    .map_err(ApiError::in_query)
            })
            .transpose()?;
        let max_price = self
            .max_price
            .as_deref()
            .map(|raw| {
                currency
                    .parse_amount("max_price", raw)
                    .map_err(ApiError::in_query)
            })
            .transpose()?;
        if let (Some(min), Some(max)) = (min_price, max_price) {
            if min > max {
                return Err(bad_param("min_price", "must not exceed max_price"));
            }
        }
        let in_stock = match self.in_stock.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad_param("in_stock", "must be true or false")),
        };
        let q = match self.q.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(q) if q.chars().count() > storefront::MAX_QUERY_CHARS => {
                return Err(bad_param(
                    "q",
                    &format!("at most {} characters", storefront::MAX_QUERY_CHARS),
                ))
            }
            Some(q) => Some(q.to_owned()),
        };
        let sort = match self.sort.as_deref() {
            None | Some("newest") => Sort::Newest,
            Some("price") => Sort::Price,
            Some("price_desc") => Sort::PriceDesc,
            Some(_) => return Err(bad_param("sort", "must be newest, price or price_desc")),
        };
        let limit = match self.limit.as_deref() {
            None => storefront::DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=storefront::MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    bad_param(
                        "limit",
                        &format!("must be 1 to {}", storefront::MAX_PAGE_SIZE),
                    )
                })?,
        };
        let cursor = self
            .cursor
            .as_deref()
            .map(storefront::Cursor::decode)
            .transpose()?;
        Ok(ListingQuery {
            preference,
            currency,
            seller,
            min_price,
            max_price,
            in_stock,
            q,
            sort,
            limit,
            cursor,
        })
    }
}

/// Browse and search the storefront.
#[utoipa::path(get, path = "/api/v1/products", tag = "storefront",
    params(ListingParams, ("Accept-Language" = Option<String>, Header), ("If-None-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = ListingPage, headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "The client's copy is current"),
        (status = 400, description = "A query parameter is invalid; `field` names it", body = ErrorBody)))]
#[tracing::instrument(name = "list_products", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    params: web::Query<ListingParams>,
) -> Result<HttpResponse, ApiError> {
    let query = params.parse(&request, &state)?;
    let client = state.pool.get().await?;
    let page = crate::db::timed("storefront_list", storefront::list(&**client, &query)).await?;
    let catalog = &state.settings.catalog;
    caching::respond(
        &request,
        &page,
        Freshness {
            max_age_secs: catalog.listing_max_age_secs,
            stale_while_revalidate_secs: catalog.listing_stale_while_revalidate_secs,
        },
        None,
    )
}
