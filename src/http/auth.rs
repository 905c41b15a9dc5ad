//! Who is calling: extractors for sellers (API key), shoppers (session token) and the operator.
//! What Postgres said of a token or key is remembered a moment in the process's credential
//! cache (`crate::credentials`), which every revocation clears on every process.
//!
//! Each answers 401 `unauthorized` (with `WWW-Authenticate: Bearer`) when the credential is
//! missing, unknown, expired, revoked or belongs to a suspended seller (whose key still serves
//! its orders: [`SellerOrderAuth`]).

use std::{future::Future, pin::Pin, time::Instant};

use futures_util::TryFutureExt;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::{error::ApiError, AppState};
use crate::{
    sellers::{self, Seller},
    shoppers::{self, Shopper},
    tokens,
};

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The browser pages' session cookies: a shopper's session token, a seller's API key, the
/// operator's token (each HttpOnly, SameSite=Lax).
pub const SHOPPER_COOKIE: &str = "agora_session";
pub const SELLER_COOKIE: &str = "agora_seller";
pub const OPERATOR_COOKIE: &str = "agora_operator";

/// A browser's credential from its cookie, for a WebSocket it opened from a page of this
/// store: only when the handshake's `Origin` is this host, so another site cannot open a
/// socket with this browser's cookies.
pub fn cookie_credential(request: &HttpRequest, name: &str) -> Option<String> {
    let host = request.connection_info().host().to_owned();
    let same_origin = request
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .and_then(|origin| origin.split_once("://"))
        .is_some_and(|(_, origin_host)| origin_host == host);
    let cookie = request.cookie(name)?;
    same_origin.then(|| cookie.value().to_owned())
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
        .ok_or(ApiError::Unauthorized("send Authorization: Bearer <token>"))
}

fn state(request: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    request
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state is not registered")))
}

/// An active seller, identified by its API key.
pub struct SellerAuth(pub Seller);

impl FromRequest for SellerAuth {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(seller_of(request, false).map_ok(Self))
    }
}

/// A seller serving its orders: active, or suspended (its existing orders must still ship,
/// be cancelled, refunded and returned).
pub struct SellerOrderAuth(pub Seller);

impl FromRequest for SellerOrderAuth {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(seller_of(request, true).map_ok(Self))
    }
}

/// The seller whose API key the request carries (a suspended one too when `suspended_too`).
fn seller_of(
    request: &HttpRequest,
    suspended_too: bool,
) -> impl Future<Output = Result<Seller, ApiError>> {
    let found = state(request).and_then(|s| Ok((s, bearer_token(request)?.to_owned())));
    async move {
        let (state, key) = found?;
        let digest = tokens::digest(&key);
        let seller = match state.credentials.get::<Seller>(&digest) {
            Some(seller) if suspended_too || seller.status == "active" => seller,
            _ => {
                let read_at = Instant::now();
                let client = state.pool.get().await?;
                // Read with suspended sellers too, so one entry serves both kinds of route.
                let seller = sellers::authenticate_for_orders(&*client, &key).await?;
                let subject = seller.id;
                state
                    .credentials
                    .put(&digest, subject, seller.clone(), read_at, None);
                if !suspended_too && seller.status != "active" {
                    return Err(ApiError::Unauthorized("unknown or revoked API key"));
                }
                seller
            }
        };
        tracing::Span::current().record("seller_id", tracing::field::display(seller.id));
        Ok(seller)
    }
}

/// A shopper with a live session, and the token it came with (to revoke it).
pub struct ShopperAuth {
    pub shopper: Shopper,
    pub token: String,
}

impl FromRequest for ShopperAuth {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = state(request).and_then(|s| Ok((s, bearer_token(request)?.to_owned())));
        Box::pin(async move {
            let (state, token) = found?;
            let digest = tokens::digest(&token);
            if let Some(shopper) = state.credentials.get::<Shopper>(&digest) {
                return Ok(Self { shopper, token });
            }
            let read_at = Instant::now();
            let client = state.pool.get().await?;
            let (shopper, until) = shoppers::authenticate_session(&*client, &token).await?;
            let subject = shopper.id;
            state
                .credentials
                .put(&digest, subject, shopper.clone(), read_at, Some(until));
            Ok(Self { shopper, token })
        })
    }
}

/// The store's operator, identified by `operator.token`; with no token configured, nobody is.
pub struct OperatorAuth;

impl FromRequest for OperatorAuth {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verdict = state(request).and_then(|state| {
            let presented = bearer_token(request)?;
            let configured = state.settings.operator.token.expose_secret();
            // Comparing digests keeps the comparison's timing independent of the token.
            let matches = !configured.is_empty()
                && Sha256::digest(presented.as_bytes()) == Sha256::digest(configured.as_bytes());
            if matches {
                Ok(Self)
            } else {
                Err(ApiError::Unauthorized("operator token required"))
            }
        });
        Box::pin(async move { verdict })
    }
}
