//! Shoppers: registration (or a guest session), sign-in, sign-out and the own account.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Code;
use crate::{
    catalog::input::parse_locale,
    http::{
        auth::ShopperAuth,
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        AppState,
    },
    sellers::Email,
    shoppers::{Session, Shopper},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/shoppers").route(web::post().to(register)))
        .service(web::resource("/shoppers/me").route(web::get().to(me)))
        .service(web::resource("/sessions").route(web::post().to(sign_in)))
        .service(web::resource("/sessions/current").route(web::delete().to(sign_out)));
}

/// Either `{"email", "password", "locale"?}` or `{"guest": true, "locale"?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterShopper {
    email: Option<String>,
    password: Option<String>,
    /// BCP 47 locale the shopper prefers.
    locale: Option<String>,
    #[serde(default)]
    guest: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    id: Uuid,
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// Register a shopper, or start a guest session; both answer with a session token.
#[utoipa::path(post, path = "/api/v1/shoppers", tag = "shoppers",
    request_body = RegisterShopper,
    responses((status = 201, body = Registered), (status = 409, description = "`email_taken`", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, description = "Too many sign-ups at once", body = ErrorBody)))]
#[tracing::instrument(name = "register_shopper", skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    body: ApiJson<RegisterShopper>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let locale = body
        .locale
        .as_deref()
        .map(|raw| parse_locale("locale", raw))
        .transpose()?;
    let registered = if body.guest {
        for (field, value) in [("email", &body.email), ("password", &body.password)] {
            if value.is_some() {
                return Err(ApiError::invalid_field(
                    Code::GuestWithCredentials,
                    field,
                    "a guest has no email or password",
                ));
            }
        }
        state.accounts.sign_up_guest(locale.as_ref()).await?
    } else {
        let email = body
            .email
            .as_deref()
            .ok_or_else(|| {
                ApiError::invalid_field(
                    Code::MissingField,
                    "email",
                    "missing field `email` (or send \"guest\": true)",
                )
            })
            .and_then(|raw| Email::parse("email", raw))?;
        let password = body.password.as_deref().ok_or_else(|| {
            ApiError::invalid_field(Code::MissingField, "password", "missing field `password`")
        })?;
        state
            .accounts
            .sign_up(&email, password, locale.as_ref())
            .await?
    };
    let (shopper, session) = registered;
    Ok(HttpResponse::Created().json(Registered {
        id: shopper.id,
        token: session.token,
        expires_at: session.expires_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    email: String,
    password: String,
}

/// Sign in with email and password; answers a new session token.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "shoppers",
    request_body = SignIn,
    responses((status = 200, body = Session), (status = 401, description = "Wrong email or password", body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 429, description = "`rate_limited`: too many failed sign-ins for this account or from this address; `Retry-After` says when to try again", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
#[tracing::instrument(name = "sign_in", skip_all)]
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: ApiJson<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse("email", &body.0.email)?;
    let address = request
        .peer_addr()
        .map(|peer| peer.ip().to_string())
        .unwrap_or_default();
    let session = state
        .accounts
        .sign_in(&email, &body.0.password, &address)
        .await?;
    Ok(HttpResponse::Ok().json(session))
}

/// Revoke the session token this request is sent with.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "shoppers",
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn sign_out(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
) -> Result<HttpResponse, ApiError> {
    state.accounts.sign_out(&shopper.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The shopper owning the session token.
#[utoipa::path(get, path = "/api/v1/shoppers/me", tag = "shoppers",
    responses((status = 200, body = Shopper), (status = 401, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn me(shopper: ShopperAuth) -> HttpResponse {
    HttpResponse::Ok().json(shopper.shopper)
}
