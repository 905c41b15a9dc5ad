//! Requests that pay, and so must happen once (checkouts and flash-sale purchases): the
//! `Idempotency-Key` header they carry, the card they pay with, and their answers, fresh or
//! replayed from what the key recorded.

use actix_web::{http::StatusCode, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    checkout::{CheckoutResponse, MAX_IDEMPOTENCY_KEY_CHARS},
    error::Code,
    http::error::{status_of, ApiError, ErrorBody},
    orders::CheckoutOutcome,
};

/// The request's `Idempotency-Key` header, checked.
pub fn idempotency_key(request: &HttpRequest) -> Result<String, ApiError> {
    let raw = request
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok());
    let key = raw.map(str::trim).unwrap_or_default();
    if key.is_empty()
        || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
        || key.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest {
            code: Code::InvalidIdempotencyKey,
            message: format!(
                "send an Idempotency-Key header of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
            ),
            field: Some("Idempotency-Key".into()),
        });
    }
    Ok(key.to_owned())
}

/// The answer of a checkout (or flash-sale purchase), fresh or replayed: its stored status and
/// body, `Idempotent-Replayed: true` on a replay, and the order's `Location`.
pub fn respond(answer: CheckoutResponse) -> Result<HttpResponse, ApiError> {
    let mut response = HttpResponse::build(match &answer.outcome {
        CheckoutOutcome::Paid { .. } => StatusCode::CREATED,
        CheckoutOutcome::NotCharged { code, .. } => status_of(*code),
    });
    if answer.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    if let Some(order) = answer.outcome.order_id() {
        response.insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/orders/{order}"),
        ));
    }
    Ok(match answer.outcome {
        CheckoutOutcome::Paid { order } => response.json(order),
        CheckoutOutcome::NotCharged { code, message } => {
            response.json(ErrorBody::new(code, message, None))
        }
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDetails {
    /// The sandbox gateway's test cards: `4242424242424242` (approved), `4000000000000002`
    /// (declined), `4000000000000119` (the gateway never answers).
    #[schema(example = "4242424242424242")]
    pub(crate) card_number: String,
}
