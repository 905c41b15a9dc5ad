//! Sellers: self-service onboarding and the authenticated seller's own account.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::{
    http::{error::ApiError, extract::ApiJson, AppState},
    sellers::{self, Email, SellerName},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/sellers").route(web::post().to(onboard)))
        .service(web::resource("/sellers/me").route(web::get().to(me)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnboardSeller {
    name: String,
    email: String,
}

/// `POST /api/v1/sellers`: 201 with the seller and its API key, shown this once.
#[tracing::instrument(name = "onboard_seller", skip_all)]
async fn onboard(
    state: web::Data<AppState>,
    body: ApiJson<OnboardSeller>,
) -> Result<HttpResponse, ApiError> {
    let name = SellerName::parse("name", &body.0.name)?;
    let email = Email::parse("email", &body.0.email)?;
    let client = state.pool.get().await?;
    let onboarded = sellers::onboard(&**client, &name, &email).await?;
    tracing::info!(seller_id = %onboarded.seller.id, "seller onboarded");
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            "/api/v1/sellers/me".to_owned(),
        ))
        .json(onboarded))
}

/// `GET /api/v1/sellers/me`: the seller owning the bearer API key.
#[tracing::instrument(name = "current_seller", skip_all)]
async fn me(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let key = bearer_token(&request)?;
    let client = state.pool.get().await?;
    let seller = sellers::authenticate(&**client, key).await?;
    Ok(HttpResponse::Ok().json(seller))
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(request: &HttpRequest) -> Result<&str, ApiError> {
    request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized(
            "send Authorization: Bearer <api_key>",
        ))
}
