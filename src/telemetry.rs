//! Logging: one `tracing` subscriber for the process, JSON or human-readable as configured.
//!
//! `RUST_LOG`, when set, overrides the configured filter so an operator can turn up one module
//! without editing files.
//!
//! What a client can cause is never logged at ERROR: actix-http reports the requests it could
//! not parse (a header with a control character, a `Content-Length` that is not a number, a
//! connection that broke mid-request) at ERROR under `actix_http::h1`, so anyone could write
//! ERROR lines by sending junk. Those reports are logged at WARN instead, under
//! `agora::http::framework`, with the framework's words in `error`.

use tracing::{field::Field, Event, Level, Metadata, Subscriber};
use tracing_subscriber::{
    filter::filter_fn,
    fmt,
    layer::{Context, Layer},
    prelude::*,
    EnvFilter,
};

use crate::configuration::{LogFormat, LogSettings};

/// Installs the global subscriber; a second call (as in tests) leaves the first in place.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let not_framework_errors = filter_fn(|metadata| !is_framework_error(metadata));
    // The formatting layer sees each event first (and leaves actix-http's reports out); they
    // are logged again at WARN once it is done with the original, so that the new event does
    // not run through the per-layer filter while the original is in it.
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(not_framework_errors),
            )
            .with(FrameworkReportsAtWarn)
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(not_framework_errors),
            )
            .with(FrameworkReportsAtWarn)
            .try_init(),
    };
    // Already installed: tests build many applications in one process.
    drop(result);
}

/// An ERROR of actix-http's HTTP/1 connection handling: about what a client sent, not a fault
/// of the server.
fn is_framework_error(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::ERROR && metadata.target().starts_with("actix_http::h1")
}

/// Logs actix-http's ERROR reports again at WARN, as a new event of the process's global
/// subscriber (installed by [`init`]); the formatting layer leaves the originals out.
struct FrameworkReportsAtWarn;

impl<S: Subscriber> Layer<S> for FrameworkReportsAtWarn {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !is_framework_error(event.metadata()) {
            return;
        }
        let mut report = Report(String::new());
        event.record(&mut report);
        tracing::warn!(
            target: "agora::http::framework",
            error = %report.0,
            "a request the framework refused or could not finish"
        );
    }
}

/// The text of an event's fields.
struct Report(String);

impl tracing::field::Visit for Report {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if !self.0.is_empty() {
            self.0.push_str(", ");
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}
