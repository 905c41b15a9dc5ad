//! The HTTP boundary's one error type and its JSON shape.
//!
//! Every error response is `{"error": {"code", "message", "field"?}}`: `code` is a stable,
//! machine-readable snake_case string clients may match on; `message` is for people; `field`
//! names the offending input (a JSON path such as `variants[0].sku`, a query parameter or a
//! header). Causes of 5xx errors are logged with their whole chain and never sent to clients.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be parsed at all (malformed JSON, a bad query string or header).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// The request parsed, but a field's value is missing or not acceptable.
    #[error("{message}")]
    InvalidField {
        code: &'static str,
        message: String,
        field: String,
    },
    #[error("request body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Authenticated, but not allowed to do this (e.g. buy without an admission).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The thing asked for existed and is gone for good (e.g. an admission that expired).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// Too many requests from this client; retry after the given seconds.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// Fewer units are available than asked for; the answer says how many are.
    #[error("only {available} available")]
    InsufficientStock { available: i64 },
    /// A dependency (Postgres, Redis) or a bounded resource cannot serve the request now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid_field(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::InvalidField {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error found in a query parameter: the request, not a body field, is at fault
    /// (400 instead of 422), still naming the parameter.
    pub fn in_query(self) -> Self {
        match self {
            Self::InvalidField {
                code,
                message,
                field,
            } => Self::BadRequest {
                code,
                message,
                field: Some(field),
            },
            other => other,
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The stable machine-readable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::InvalidField { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Gone { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } | Self::Conflict { field, .. } => field.as_deref(),
            Self::InvalidField { field, .. } => Some(field),
            Self::InsufficientStock { .. } => Some("quantity"),
            _ => None,
        }
    }
}

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
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                field: field.map(str::to_owned),
                available: None,
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
            Self::Conflict { .. } | Self::InsufficientStock { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            let chain = error_chain(self);
            tracing::error!(code = self.code(), error = %chain, "request failed");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::RateLimited { retry_after_secs } = self {
            response.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        let mut body = ErrorBody::new(self.code(), self.to_string(), self.field());
        if let Self::InsufficientStock { available } = self {
            body.error.available = Some(*available);
        }
        response.json(body)
    }
}

/// `outer: inner: innermost`, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

impl From<agora_actors::inventory::ReserveError> for ApiError {
    fn from(error: agora_actors::inventory::ReserveError) -> Self {
        use agora_actors::inventory::ReserveError;
        match error {
            ReserveError::InsufficientStock { available } => Self::InsufficientStock { available },
            ReserveError::UnknownSku => {
                Self::invalid_field("unknown_sku", "sku", "no such SKU on the storefront")
            }
            ReserveError::Overloaded | ReserveError::Unavailable(_) => {
                Self::Unavailable(error.to_string())
            }
        }
    }
}

impl From<agora_actors::cart::CartBusy> for ApiError {
    fn from(error: agora_actors::cart::CartBusy) -> Self {
        use agora_actors::cart::CartBusy;
        match error {
            // Another tab's changes to the same cart are still running: a moment suffices.
            CartBusy::TooManyChanges => Self::RateLimited {
                retry_after_secs: 1,
            },
            CartBusy::TooManyCarts => Self::Unavailable(error.to_string()),
            CartBusy::Failed => Self::internal(anyhow::anyhow!(error)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match error {
            PoolError::Timeout(_) => {
                metrics::counter!("agora_db_pool_timeouts_total").increment(1);
                Self::Unavailable("no database connection is free; retry shortly".into())
            }
            other => Self::Internal(anyhow::Error::new(other).context("database pool")),
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Internal(anyhow::Error::new(error).context("database query"))
    }
}
