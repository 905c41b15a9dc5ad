//! Shoppers: registration (or a guest session), sign-in, sign-out and the own account: its
//! profile, password change, a guest's registration, deletion, and password resets by mail.

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
    shoppers::{ProfileChange, Session, Shopper},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/shoppers").route(web::post().to(register)))
        .service(
            web::resource("/shoppers/me")
                .route(web::get().to(me))
                .route(web::patch().to(update_me))
                .route(web::delete().to(delete_me)),
        )
        .service(web::resource("/shoppers/me/password").route(web::post().to(change_password)))
        .service(web::resource("/shoppers/me/registration").route(web::post().to(register_guest)))
        .service(web::resource("/password-resets").route(web::post().to(request_reset)))
        .service(web::resource("/password-resets/{token}").route(web::post().to(reset_password)))
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
    let address = client_address(&request);
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

/// The client's address, as the throttles count it.
fn client_address(request: &HttpRequest) -> String {
    request
        .peer_addr()
        .map(|peer| peer.ip().to_string())
        .unwrap_or_default()
}

/// Deserializes a field that is present: `null` becomes `Some(None)`, absence stays `None`
/// (with `#[serde(default)]`), so a PATCH can tell "clear" from "leave alone".
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Any of the fields; `null` clears one, absence leaves it alone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    /// How the shopper wants to be addressed: 1 to 200 characters, one line.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// BCP 47 locale the shopper prefers (pages and mail in en, de, fr, ja).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    locale: Option<Option<String>>,
    /// ISO 4217 code of a currency the store sells in.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    currency: Option<Option<String>>,
}

/// Change the own profile: name, locale, currency.
#[utoipa::path(patch, path = "/api/v1/shoppers/me", tag = "shoppers",
    request_body = UpdateProfile,
    responses((status = 200, body = Shopper), (status = 401, body = ErrorBody),
              (status = 422, description = "A field's value, named in `field` (`invalid_length`, `invalid_characters`, `invalid_locale`, `unknown_locale`, `unknown_currency`, `unsupported_currency`)", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn update_me(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    body: ApiJson<UpdateProfile>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let change = ProfileChange {
        name: body.name,
        locale: body.locale,
        currency: body.currency,
    };
    let updated = state
        .accounts
        .update_profile(shopper.shopper.id, &change)
        .await?;
    Ok(HttpResponse::Ok().json(updated))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Change the password; every other session of the shopper is revoked (this one stays).
#[utoipa::path(post, path = "/api/v1/shoppers/me/password", tag = "shoppers",
    request_body = ChangePassword,
    responses((status = 204, description = "Changed; the shopper's other sessions are revoked"),
              (status = 401, body = ErrorBody),
              (status = 403, description = "`wrong_password`: the current password is wrong (counted like a failed sign-in)", body = ErrorBody),
              (status = 409, description = "`guest_account`: a guest has no password", body = ErrorBody),
              (status = 422, description = "`invalid_password` for `new_password`", body = ErrorBody),
              (status = 429, description = "`rate_limited`: too many wrong passwords for this account or from this address", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn change_password(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    body: ApiJson<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    state
        .accounts
        .change_password(
            &shopper.shopper,
            &shopper.token,
            &body.0.current_password,
            &body.0.new_password,
            &client_address(&request),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterGuest {
    email: String,
    password: String,
}

/// A guest becomes a registered shopper, keeping its id, carts, orders and sessions.
#[utoipa::path(post, path = "/api/v1/shoppers/me/registration", tag = "shoppers",
    request_body = RegisterGuest,
    responses((status = 200, body = Shopper), (status = 401, body = ErrorBody),
              (status = 409, description = "`email_taken`, or `already_registered` for a registered shopper", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn register_guest(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    body: ApiJson<RegisterGuest>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse("email", &body.0.email)?;
    let registered = state
        .accounts
        .register_guest_account(&shopper.shopper, &email, &body.0.password)
        .await?;
    Ok(HttpResponse::Ok().json(registered))
}

/// `{"password"}` for a registered shopper; a guest sends `{}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    password: Option<String>,
}

/// Delete the own account: email, name, password, sessions, carts and addresses are erased at
/// once; orders keep their contact and address for `accounts.order_retention_days`.
#[utoipa::path(delete, path = "/api/v1/shoppers/me", tag = "shoppers",
    request_body = DeleteAccount,
    responses((status = 204, description = "Deleted; every session of the shopper is gone"),
              (status = 401, body = ErrorBody),
              (status = 403, description = "`wrong_password`", body = ErrorBody),
              (status = 422, description = "`missing_field`: a registered shopper confirms with `password`", body = ErrorBody),
              (status = 429, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn delete_me(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    body: ApiJson<DeleteAccount>,
) -> Result<HttpResponse, ApiError> {
    state
        .accounts
        .delete_account(
            &shopper.shopper,
            body.0.password.as_deref(),
            &client_address(&request),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestReset {
    email: String,
}

/// Ask for a password-reset link by mail. Always 202, whether an account has the address or
/// not; the link works once, for `auth.password_reset_ttl_mins`.
#[utoipa::path(post, path = "/api/v1/password-resets", tag = "shoppers",
    request_body = RequestReset,
    responses((status = 202, description = "If an account has this address, a reset link is on its way"),
              (status = 422, body = ErrorBody),
              (status = 429, description = "`rate_limited`: too many resets asked for this address or from this client; `Retry-After`", body = ErrorBody)))]
pub async fn request_reset(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: ApiJson<RequestReset>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse("email", &body.0.email)?;
    state
        .accounts
        .request_password_reset(&email, &client_address(&request))
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    password: String,
}

/// Set a new password with the token of a reset link; every session of the shopper is revoked.
#[utoipa::path(post, path = "/api/v1/password-resets/{token}", tag = "shoppers",
    params(("token" = String, Path, description = "The token of the mailed link")),
    request_body = ResetPassword,
    responses((status = 204, description = "The password is set; sign in with it"),
              (status = 400, description = "`invalid_reset_token`: unknown, used or expired", body = ErrorBody),
              (status = 422, description = "`invalid_password`", body = ErrorBody)))]
pub async fn reset_password(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: ApiJson<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    state
        .accounts
        .reset_password(&token, &body.0.password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
