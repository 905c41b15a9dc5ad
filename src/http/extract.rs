//! Extractors that turn bad input into [`ApiError`]s naming the field.
//!
//! [`ApiJson`] replaces actix's `Json`: it checks the content type (415), stops reading at the
//! configured body limit (413, before buffering more than the limit), and deserializes with
//! `serde_path_to_error` so a wrong or missing value is reported with its JSON path (422),
//! while unparsable JSON is a 400.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::Code;

/// Largest body accepted when the application registered no [`BodyLimit`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The request body limit in bytes, registered as app data from `http.max_body_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body, parsed and typed.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_MAX_BODY_BYTES, |limit| limit.0);
        let is_json = req.mime_type().ok().flatten().is_some_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        });
        let declared_length = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::UnsupportedMediaType);
            }
            if declared_length.is_some_and(|length| length > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let mut body = BytesMut::with_capacity(declared_length.unwrap_or(1024).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| ApiError::BadRequest {
                    code: Code::UnreadableBody,
                    message: format!("the request body could not be read: {e}"),
                    field: None,
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(ApiJson)
        })
    }
}

/// Parses a JSON document, naming the path of the first value that does not fit `T`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    super::hygiene::check_json(body)?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut deserializer);
    if parsed.is_ok() {
        deserializer.end().map_err(malformed)?;
    }
    parsed.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // serde names a missing field in its message, not in the path.
                let message = inner.to_string();
                let field = missing_field(&message)
                    .map(|name| join_path(&path, name))
                    .unwrap_or(path);
                let code = if message.starts_with("missing field") {
                    Code::MissingField
                } else if message.starts_with("unknown field") {
                    Code::UnknownField
                } else {
                    Code::InvalidField
                };
                ApiError::invalid_field(code, field, strip_position(&message))
            }
            _ => malformed(inner),
        }
    })
}

fn malformed(error: serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        code: Code::MalformedJson,
        message: format!("request body is not valid JSON: {error}"),
        field: None,
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

fn join_path(path: &str, name: &str) -> String {
    if path.is_empty() || path == "." {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Drops serde_json's " at line 1 column 9" suffix: the field already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Turns query-string errors into 400s naming the parameter when serde says which.
pub fn query_error(
    error: actix_web::error::QueryPayloadError,
    _: &HttpRequest,
) -> actix_web::Error {
    let message = error.to_string();
    let field = message.split('`').nth(1).map(str::to_owned);
    ApiError::BadRequest {
        code: Code::InvalidQuery,
        message,
        field,
    }
    .into()
}

/// Turns path-segment errors (e.g. an id that is not a UUID) into 404s: such a resource
/// cannot exist.
pub fn path_error(_: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound("resource").into()
}

/// Registers the extractor configuration on an app.
pub fn configure(limit: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(BodyLimit(limit))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    fn field_of(error: ApiError) -> (String, String) {
        match error {
            ApiError::InvalidField { code, field, .. } => (code.as_str().to_owned(), field),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_deep_inside_names_its_path() {
        let error = parse_json::<Body>(br#"{"name":"a","items":[{"quantity":-1}]}"#)
            .expect_err("must fail");
        assert_eq!(
            field_of(error),
            ("invalid_field".into(), "items[0].quantity".into())
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = parse_json::<Body>(br#"{"items":[]}"#).expect_err("must fail");
        assert_eq!(field_of(error), ("missing_field".into(), "name".into()));
    }

    #[test]
    fn trailing_garbage_is_malformed_json() {
        let error = parse_json::<Body>(br#"{"name":"a","items":[]} x"#).expect_err("must fail");
        assert_eq!(error.code(), "malformed_json");
    }

    #[test]
    fn unknown_fields_are_named_when_refused() {
        let error =
            parse_json::<Body>(br#"{"name":"a","items":[],"extra":1}"#).expect_err("must fail");
        assert_eq!(field_of(error).0, "unknown_field");
    }
}

/// `?cursor=&limit=` of a list paged by id, newest first.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 100; 20 by default.
    limit: Option<String>,
}

impl PageQuery {
    /// The cursor and the limit (`default` when absent), each a 400 naming its parameter when
    /// it is not one or the limit is outside 1 to `max`.
    pub fn parse(&self, default: i64, max: i64) -> Result<(Option<uuid::Uuid>, i64), ApiError> {
        let before = parse_cursor(self.cursor.as_deref())?;
        let limit = match self.limit.as_deref() {
            None => default,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::BadRequest {
                    code: Code::InvalidLimit,
                    message: format!("must be 1 to {max}"),
                    field: Some("limit".into()),
                })?,
        };
        Ok((before, limit))
    }
}

/// A list's `cursor` (the id of the last item seen), or a 400 `invalid_cursor` naming it.
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<uuid::Uuid>, ApiError> {
    raw.map(|raw| {
        raw.parse::<uuid::Uuid>().map_err(|_| ApiError::BadRequest {
            code: Code::InvalidCursor,
            message: "not a cursor from this list".into(),
            field: Some("cursor".into()),
        })
    })
    .transpose()
}
