//! The domain's errors as HTTP answers: each kind's status, and the JSON shape.
//!
//! This is the one place an [`ApiError`] (the domain's `crate::error::Error`) becomes a
//! response. Every error response is `{"error": {"code", "message", "field"?}}`: `code` is a stable,
//! machine-readable snake_case string clients may match on; `message` is for people; `field`
//! names the offending input (a JSON path such as `variants[0].sku`, a query parameter or a
//! header). Causes of 5xx errors are logged with their whole chain and never sent to clients.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;

pub use crate::error::{error_chain, Code, Error as ApiError};

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case.
    #[schema(example = "invalid_field")]
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// With `insufficient_stock`: the units that are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// With `seller_unavailable`: the SKUs of the lines that left the cart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<String>>,
}

impl ErrorBody {
    pub fn new(code: Code, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: message.into(),
                field: field.map(str::to_owned),
                available: None,
                lines: None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Gone { .. } => StatusCode::GONE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Conflict { .. }
            | Self::InsufficientStock { .. }
            | Self::SellerUnavailable { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // A fault of ours is an ERROR; a dependency or a limit that cannot serve now (503) is
        // the operator's to watch, not a bug: WARN.
        if let Self::Internal(_) = self {
            let chain = error_chain(self);
            tracing::error!(code = %self.code(), error = %chain, "request failed");
        } else if status.is_server_error() {
            tracing::warn!(code = %self.code(), error = %error_chain(self), "request failed");
        }
        debug_assert!(
            answers_with(self.code(), status),
            "{} is answered {status}, which the code table does not list",
            self.code()
        );
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::RateLimited { retry_after_secs } = self {
            response.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        let mut body = ErrorBody::new(self.code(), self.to_string(), self.field());
        match self {
            Self::InsufficientStock { available } => body.error.available = Some(*available),
            Self::SellerUnavailable { skus } => body.error.lines = Some(skus.clone()),
            _ => {}
        }
        response.json(body)
    }
}

/// Whether the code table lets `code` be answered with `status`; field codes (422) may be
/// answered 400 when the field is a query parameter. Checked on every error answered in debug
/// builds, so the test suite keeps the table honest.
pub fn answers_with(code: Code, status: StatusCode) -> bool {
    let statuses = code.statuses();
    statuses.contains(&status.as_u16())
        || (status == StatusCode::BAD_REQUEST && statuses.contains(&422))
}

/// The status a code is answered with when no error kind decides it: its first in the table.
pub fn status_of(code: Code) -> StatusCode {
    code.statuses()
        .first()
        .and_then(|status| StatusCode::from_u16(*status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
