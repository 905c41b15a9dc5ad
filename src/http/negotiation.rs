//! Which locale and currency a catalog request wants.

use crate::error::Code;
use actix_web::{http::header::ACCEPT_LANGUAGE, HttpRequest};

use super::{error::ApiError, AppState};
use crate::{
    locale::{Locale, LocaleError, LocalePreference},
    money::Currency,
};

/// `?locale=` when given (it must be valid), else `Accept-Language`, else the store's default.
pub fn locale_preference(
    request: &HttpRequest,
    query: Option<&str>,
    state: &AppState,
) -> Result<LocalePreference, ApiError> {
    if let Some(raw) = query {
        return LocalePreference::from_query(raw).map_err(|error| ApiError::BadRequest {
            code: match error {
                LocaleError::Malformed(_) => Code::InvalidLocale,
                LocaleError::Unsupported(_) => Code::UnknownLocale,
            },
            message: error.to_string(),
            field: Some("locale".into()),
        });
    }
    let from_header = request
        .headers()
        .get(ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .map(LocalePreference::from_accept_language)
        .unwrap_or_default();
    if !from_header.tags().is_empty() {
        return Ok(from_header);
    }
    Ok(Locale::parse(&state.settings.catalog.default_locale)
        .ok()
        .and_then(|locale| LocalePreference::from_query(locale.as_str()).ok())
        .unwrap_or_default())
}

/// `?currency=` when given (one the store sells in), else the store's default currency.
pub fn currency(query: Option<&str>, state: &AppState) -> Result<Currency, ApiError> {
    match query {
        None => Ok(state.pricing.default_currency),
        Some(raw) => state
            .pricing
            .fx
            .parse_supported("currency", raw)
            .map_err(ApiError::in_query),
    }
}
