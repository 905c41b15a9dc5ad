//! The middleware every request passes through, outermost first: [`observe`].
//!
//! It promises, for every request: a request id (the client's `X-Request-Id` when it is sane,
//! else a fresh UUIDv7) in a `tracing` span around all the request's logs and echoed in the
//! response; a JSON error body in the shape of [`ErrorBody`] for every 4xx/5xx, including those
//! actix produces itself; a 500 in that shape instead of a dropped connection when a handler
//! panics; the HTTP metrics, labelled by route pattern (never the raw path); and the budget of
//! 401s per client address (`crate::unauthorized_budget`): a 401 about to be answered is
//! counted, and answered 429 with `Retry-After` once the address has drawn its budget, and a
//! request carrying credentials from an address this process found over budget is refused at
//! once. Only those touch Redis; an authenticated request does not. Beyond the process's limit
//! of requests in flight, a request is shed at once (`super::overload`).
//!
//! Requests so malformed that actix-http refuses them while parsing (a header value with a
//! control character, a `Content-Length` that is not a number, a head too large) never reach
//! this middleware: actix-http answers them 400 (or 431) with an empty body, and
//! `crate::telemetry` logs its report of them at WARN, not ERROR.

use std::{panic::AssertUnwindSafe, time::Instant};

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        header::{self, HeaderName, HeaderValue},
        StatusCode,
    },
    middleware::Next,
    Error, HttpMessage, HttpResponse, ResponseError,
};
use futures_util::FutureExt;
use tracing::Instrument;

use super::{
    error::{ApiError, ErrorBody},
    overload::{self, Admitted, RequestLimit},
    AppState,
};
use crate::error::Code;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id that is kept; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id, in the request extensions for handlers that want to log or return it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    // Refused before routing: input no route may see, or credentials from an address over its
    // budget of 401s.
    let refused = super::hygiene::check_request(req.path(), req.query_string())
        .err()
        .map(|refused| refused.error_response())
        .or_else(|| known_over_budget(&req));
    if let Some(refused) = refused {
        let mut response = req.into_response(refused);
        record(&span, &method, "unmatched", response.status(), started);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        return Ok(response);
    }
    let admitted = match req.app_data::<actix_web::web::Data<RequestLimit>>() {
        Some(limit) => limit.admit(req.path()),
        None => Some(Admitted::default()),
    };
    let _admitted = match admitted {
        Some(admitted) => admitted,
        None => {
            let mut response = req.into_response(overload::shed());
            // Counted, never logged: a crowd beyond capacity must not also flood the logs.
            count_request(&method, "shed", response.status(), started);
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            return Ok(response);
        }
    };
    let in_flight = metrics::gauge!("agora_http_requests_in_flight");
    in_flight.increment(1.0);

    // The call itself routes synchronously, so it must run inside the guarded future too.
    let outcome = AssertUnwindSafe(async move { next.call(req).await })
        .catch_unwind()
        .instrument(span.clone())
        .await;
    in_flight.decrement(1.0);

    // Routing needs the only reference to the request, so an error or a panic arrives
    // without it: actix renders the returned error (JSON, via `ApiError`), and the
    // metrics cannot name the route.
    let response = match outcome {
        Ok(Ok(response)) => response.map_into_boxed_body(),
        Ok(Err(error)) => {
            let status = error.as_response_error().status_code();
            record(&span, &method, "unknown", status, started);
            return Err(in_error_shape(error));
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            metrics::counter!("agora_http_panics_total").increment(1);
            tracing::error!(parent: &span, panic = %message, "handler panicked");
            record(
                &span,
                &method,
                "unknown",
                StatusCode::INTERNAL_SERVER_ERROR,
                started,
            );
            return Err(ApiError::internal(anyhow::anyhow!("handler panicked: {message}")).into());
        }
    };
    let mut response = ensure_json_error(response);
    if response.status() == StatusCode::UNAUTHORIZED {
        response = spend_unauthorized_budget(response).await;
    }

    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    record(&span, &method, &route, response.status(), started);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

/// A 429 for a request that carries credentials from an address this process found over its
/// budget of 401s: refused before the credentials are checked, so a right guess is answered as
/// a wrong one is. No lock is taken, and Redis is not asked, while no address is over budget.
fn known_over_budget(req: &ServiceRequest) -> Option<HttpResponse> {
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return None;
    }
    let state = req.app_data::<actix_web::web::Data<AppState>>()?;
    let address = req.peer_addr()?.ip();
    let retry_after_secs = state.unauthorized.known_over_budget(address)?;
    Some(ApiError::RateLimited { retry_after_secs }.error_response())
}

/// Counts a 401 against its client address, or answers 429 instead once the address has drawn
/// its budget.
async fn spend_unauthorized_budget(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let request = response.request();
    let (Some(state), Some(peer)) = (
        request
            .app_data::<actix_web::web::Data<AppState>>()
            .cloned(),
        request.peer_addr(),
    ) else {
        return response;
    };
    match state.unauthorized.draw(peer.ip()).await {
        None => response,
        Some(retry_after_secs) => {
            let (request, _) = response.into_parts();
            ServiceResponse::new(
                request,
                ApiError::RateLimited { retry_after_secs }.error_response(),
            )
        }
    }
}

/// An error that reached the outermost middleware as an error (not rendered by a handler)
/// renders in the error shape too: the project's own errors already do; any other keeps its
/// status under the code of that status.
fn in_error_shape(error: Error) -> Error {
    if error.as_error::<ApiError>().is_some() {
        return error;
    }
    let status = error.as_response_error().status_code();
    FrameworkError(status).into()
}

/// An error of the framework, answered in the error shape with the code of its status.
#[derive(Debug)]
struct FrameworkError(StatusCode);

impl std::fmt::Display for FrameworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.canonical_reason().unwrap_or("error"))
    }
}

impl ResponseError for FrameworkError {
    fn status_code(&self) -> StatusCode {
        self.0
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.0).json(ErrorBody::new(code_for(self.0), self.to_string(), None))
    }
}

/// Counts the request, times it and logs its end in its span.
fn record(span: &tracing::Span, method: &str, route: &str, status: StatusCode, started: Instant) {
    let elapsed = count_request(method, route, status, started);
    span.record("route", route);
    span.record("status", status.as_u16());
    if status.is_server_error() {
        tracing::warn!(parent: span, latency_ms = elapsed * 1e3, "request failed");
    } else {
        tracing::info!(parent: span, latency_ms = elapsed * 1e3, "request served");
    }
}

/// The request's metrics, labelled by route pattern; answers its duration in seconds.
fn count_request(method: &str, route: &str, status: StatusCode, started: Instant) -> f64 {
    let elapsed = started.elapsed().as_secs_f64();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("agora_http_requests_total", &labels).increment(1);
    metrics::histogram!("agora_http_request_duration_seconds", &labels).record(elapsed);
    elapsed
}

/// Rewrites an error response that is neither JSON nor a page (actix's own 404, 405, 408, ...)
/// into the project's error shape, keeping its status. The browser pages answer their errors
/// as pages.
fn ensure_json_error(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let answered_as = |kind: &str| {
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with(kind))
    };
    let own_shape = answered_as("application/json") || answered_as("text/html");
    if !(status.is_client_error() || status.is_server_error()) || own_shape {
        return response;
    }
    let (request, original) = response.into_parts();
    let mut rewritten = HttpResponse::build(status);
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.append_header((name.clone(), value.clone()));
        }
    }
    let reason = status.canonical_reason().unwrap_or("error");
    ServiceResponse::new(
        request,
        rewritten.json(ErrorBody::new(code_for(status), reason, None)),
    )
}

/// `404 Not Found` → `not_found`: the stable code for a status that no handler named (the
/// framework's own answers), from the code table; a status the table does not name answers
/// the most general code of its class.
fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        404 => Code::NotFound,
        405 => Code::MethodNotAllowed,
        408 => Code::RequestTimeout,
        411 => Code::LengthRequired,
        413 => Code::PayloadTooLarge,
        414 => Code::UriTooLong,
        415 => Code::UnsupportedMediaType,
        429 => Code::RateLimited,
        431 => Code::RequestHeaderFieldsTooLarge,
        503 => Code::ServiceUnavailable,
        500..=599 => Code::InternalError,
        _ => Code::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use actix_web::{test as actix_test, web, App};

    #[actix_web::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape() {
        async fn explode() -> HttpResponse {
            panic!("boom")
        }
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(observe))
                .route("/explode", web::get().to(explode)),
        )
        .await;
        let error = actix_test::try_call_service(
            &app,
            actix_test::TestRequest::get().uri("/explode").to_request(),
        )
        .await
        .expect_err("a panic becomes an error");
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&body).expect("JSON error shape");
        assert_eq!(body.error.code, "internal_error");
        assert!(
            !body.error.message.contains("boom"),
            "panic text leaked: {}",
            body.error.message
        );
    }

    #[actix_web::test]
    async fn actix_own_errors_are_rewritten_into_the_error_shape() {
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(observe))
                .service(web::resource("/only-get").route(web::get().to(HttpResponse::Ok))),
        )
        .await;
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::post()
                .uri("/only-get")
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body: ErrorBody = actix_test::read_body_json(response).await;
        assert_eq!(body.error.code, "method_not_allowed");
    }

    #[actix_web::test]
    async fn an_error_that_passes_up_through_the_middleware_is_answered_in_the_error_shape() {
        async fn refuse(
            _: ServiceRequest,
            _: Next<impl MessageBody>,
        ) -> Result<ServiceResponse<BoxBody>, Error> {
            Err(actix_web::error::ErrorBadRequest(
                "plain text from the framework",
            ))
        }
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(refuse))
                .wrap(actix_web::middleware::from_fn(observe))
                .route("/refused", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let error = actix_test::try_call_service(
            &app,
            actix_test::TestRequest::get().uri("/refused").to_request(),
        )
        .await
        .expect_err("the inner middleware refuses");
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&body).expect("JSON error shape");
        assert_eq!(body.error.code, "bad_request");
    }

    #[test]
    fn statuses_without_a_handler_code_get_a_snake_case_one() {
        assert_eq!(code_for(StatusCode::NOT_FOUND), "not_found");
        assert_eq!(
            code_for(StatusCode::METHOD_NOT_ALLOWED),
            "method_not_allowed"
        );
        assert_eq!(code_for(StatusCode::REQUEST_TIMEOUT), "request_timeout");
    }
}
