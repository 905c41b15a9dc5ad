//! Recommendations: "bought together" for a product, "for you" for a shopper.

use crate::db::PreparedClient;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::Code;
use crate::{
    http::{
        auth::ShopperAuth,
        error::{ApiError, ErrorBody},
        negotiation, AppState,
    },
    recommendations::{self, Recommendations, Strategy},
};

/// Most recommendations one request may ask for.
pub const MAX_LIMIT: i64 = 20;
const DEFAULT_LIMIT: i64 = 10;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/products/{id}/recommendations").route(web::get().to(bought_together)),
        )
        .service(web::resource("/shoppers/me/recommendations").route(web::get().to(for_you)));
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RecommendationParams {
    /// BCP 47 locale of titles; overrides `Accept-Language`.
    locale: Option<String>,
    /// ISO 4217 currency of prices.
    currency: Option<String>,
    /// 1 to 20; 10 by default.
    limit: Option<String>,
    /// "For you" only: the region whose best-sellers a shopper without a history gets (by
    /// default, where they last ordered or carted).
    region: Option<String>,
}

impl RecommendationParams {
    fn limit(&self) -> Result<i64, ApiError> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_LIMIT),
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::BadRequest {
                    code: Code::InvalidLimit,
                    message: format!("limit must be 1 to {MAX_LIMIT}"),
                    field: Some("limit".into()),
                }),
        }
    }
}

/// Products bought together with this one, by similarity of their buyers; in stock, listed,
/// in the request's locale and currency. With a shopper's token, what they bought is left out.
#[utoipa::path(get, path = "/api/v1/products/{id}/recommendations", tag = "storefront",
    params(("id" = Uuid, Path), RecommendationParams),
    responses((status = 200, body = Recommendations), (status = 400, body = ErrorBody),
        (status = 401, description = "a token was sent and is not valid", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
#[tracing::instrument(name = "bought_together", skip_all, fields(product_id = %id))]
pub async fn bought_together(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    params: web::Query<RecommendationParams>,
) -> Result<HttpResponse, ApiError> {
    let product = id.into_inner();
    let limit = params.limit()?;
    let preference = negotiation::locale_preference(&request, params.locale.as_deref(), &state)?;
    let currency = negotiation::currency(params.currency.as_deref(), &state)?;
    let shopper = if request
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        Some(ShopperAuth::extract(&request).await?.shopper.id)
    } else {
        None
    };
    let client = state.pool.get().await?;
    // Sent together: one round trip for the three.
    let (listed, candidates, history) = futures_util::try_join!(
        async {
            Ok::<_, ApiError>(
                client
                    .query_opt(
                        "SELECT 1 FROM product_listing_prices WHERE product_id = $1 AND listed LIMIT 1",
                        &[&product],
                    )
                    .await?,
            )
        },
        recommendations::bought_together(&*client, &state.hot, product),
        async {
            match shopper {
                Some(shopper) => recommendations::history(&*client, shopper).await,
                None => Ok(Vec::new()),
            }
        },
    )?;
    if listed.is_none() {
        return Err(ApiError::NotFound("product"));
    }
    let mut exclude = history;
    exclude.push(product);
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let items = crate::db::timed(
        "recommendations_render",
        recommendations::render(
            &*client,
            &candidates,
            &exclude,
            &chain,
            currency,
            limit,
            false,
        ),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, max-age=30"))
        .json(Recommendations {
            items,
            strategy: Strategy::BoughtTogether,
            currency: currency.code(),
        }))
}

/// Recommended for the shopper from what they bought (never what they bought); a shopper
/// without a history gets what sells in their region, in their language first.
#[utoipa::path(get, path = "/api/v1/shoppers/me/recommendations", tag = "shoppers",
    params(RecommendationParams),
    responses((status = 200, body = Recommendations), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("shopper_token" = [])))]
#[tracing::instrument(name = "for_you", skip_all)]
pub async fn for_you(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    params: web::Query<RecommendationParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit()?;
    let preference = negotiation::locale_preference(
        &request,
        params
            .locale
            .as_deref()
            .or(shopper.shopper.locale.as_deref()),
        &state,
    )?;
    let currency = negotiation::currency(params.currency.as_deref(), &state)?;
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let client = state.pool.get().await?;
    let asked_region = params
        .region
        .as_deref()
        .map(|region| region.trim().to_ascii_uppercase());
    let (items, strategy) = recommendations::for_shopper(
        &*client,
        shopper.shopper.id,
        asked_region.as_deref(),
        &chain,
        currency,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "private, no-store"))
        .json(Recommendations {
            items,
            strategy,
            currency: currency.code(),
        }))
}
