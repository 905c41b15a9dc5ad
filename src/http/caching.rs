//! HTTP caching of catalog reads: strong validators and explicit freshness.
//!
//! Promises: a cacheable response carries an `ETag` (a digest of its body), `Cache-Control`
//! (public, `max-age` plus `stale-while-revalidate`) and `Vary: Accept-Language` (the locale can
//! come from that header; the currency and everything else come from the URL); a request whose
//! `If-None-Match` names the current ETag gets 304 with no body.

use actix_web::{
    http::header::{self, HeaderValue},
    HttpRequest, HttpResponse,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Freshness of one kind of response.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub max_age_secs: u64,
    pub stale_while_revalidate_secs: u64,
}

/// Serializes `body` and answers 200 with validators, or 304 when the client's copy is current.
pub fn respond<T: Serialize>(
    request: &HttpRequest,
    body: &T,
    freshness: Freshness,
    content_language: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(ApiError::internal)?;
    let digest = Sha256::digest(&bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let cache_control = format!(
        "public, max-age={}, stale-while-revalidate={}",
        freshness.max_age_secs, freshness.stale_while_revalidate_secs
    );
    let not_modified = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, HeaderValue::from_static("Accept-Language")));
    if let Some(locale) = content_language {
        response.insert_header((header::CONTENT_LANGUAGE, locale.to_owned()));
    }
    if not_modified {
        return Ok(response.finish());
    }
    Ok(response.content_type("application/json").body(bytes))
}

/// For live data (stock): never stored by any cache.
pub fn no_store() -> (header::HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}
