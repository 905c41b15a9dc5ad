//! Load shedding: each process serves at most `http.max_requests_in_flight` requests at once.
//! One more is answered at once — 503 `service_unavailable` with `Retry-After: 1`, in the JSON
//! error shape, before routing, without a log line (it is counted in `agora_http_shed_total`)
//! — instead of queueing behind the others, so that under a crowd beyond capacity the requests
//! let in keep their latency and the rest learn quickly to come back. `/health`, `/ready` and
//! `/metrics` are never shed: operators must see an overloaded process.
//!
//! The limit is per process (all its workers share one count); WebSocket upgrades count only
//! while the handshake is answered.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use actix_web::{http::StatusCode, HttpResponse};

use super::error::{Code, ErrorBody};

/// The counter of shed requests.
pub const SHED_METRIC: &str = "agora_http_shed_total";
/// Paths answered whatever the load.
const NEVER_SHED: &[&str] = &["/health", "/ready", "/metrics"];

/// The requests in flight in this process, and how many may be.
#[derive(Debug)]
pub struct RequestLimit {
    in_flight: Arc<AtomicUsize>,
    max: usize,
}

/// A request let in; leaving drops it.
#[derive(Default)]
pub struct Admitted(Option<Arc<AtomicUsize>>);

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(in_flight) = self.0.take() {
            in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl RequestLimit {
    pub fn new(max: usize) -> Self {
        metrics::counter!(SHED_METRIC).increment(0);
        Self {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Lets the request for `path` in, or `None`: it is to be shed (and is counted so).
    pub fn admit(&self, path: &str) -> Option<Admitted> {
        if NEVER_SHED.contains(&path) {
            return Some(Admitted(None));
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!(SHED_METRIC).increment(1);
            return None;
        }
        Some(Admitted(Some(Arc::clone(&self.in_flight))))
    }
}

/// The answer to a shed request.
pub fn shed() -> HttpResponse {
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .insert_header(("Retry-After", "1"))
        .json(ErrorBody::new(
            Code::ServiceUnavailable,
            "the server is at its limit of requests in flight; retry shortly",
            None,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_beyond_the_limit_are_shed_until_one_leaves() {
        let limit = RequestLimit::new(2);
        let first = limit.admit("/api/v1/products").expect("first");
        let _second = limit.admit("/api/v1/products").expect("second");
        assert!(
            limit.admit("/api/v1/products").is_none(),
            "the third is shed"
        );
        assert!(limit.admit("/health").is_some(), "health is never shed");
        drop(first);
        assert!(
            limit.admit("/api/v1/products").is_some(),
            "a place came free"
        );
        let answer = shed();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
