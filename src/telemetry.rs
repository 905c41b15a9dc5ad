//! Logging: one `tracing` subscriber for the process, JSON or human-readable as configured.
//!
//! `RUST_LOG`, when set, overrides the configured filter so an operator can turn up one module
//! without editing files.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::configuration::{LogFormat, LogSettings};

/// Installs the global subscriber; a second call (as in tests) leaves the first in place.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // Already installed: tests build many applications in one process.
    drop(result);
}
