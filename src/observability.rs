//! Prometheus metrics: the process-wide recorder and the `/metrics` rendering.
//!
//! Promises: every metric is named `agora_*` in base units (`_seconds`, `_bytes`, `_total`);
//! `_seconds` metrics are histograms with [`LATENCY_BUCKETS`], so they aggregate across
//! processes; gauges that describe a pool or the process are sampled at scrape time, never
//! stale.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `*_seconds` metric: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets for jobs per group-committed transaction (an inventory shard's
/// reservations, checkout's writes).
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Histogram buckets for a flash sale's time to sell out: half a second to an hour.
pub const SELL_OUT_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The recorder is global to the process (the `metrics` facade allows one), so every
/// application built in the process (tests build many) renders the same registry.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first call and returns the handle that renders it.
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("LATENCY_BUCKETS is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("agora_inventory_batch_size".into()),
                    BATCH_SIZE_BUCKETS,
                )
                .expect("BATCH_SIZE_BUCKETS is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("agora_commit_group_batch_size".into()),
                    BATCH_SIZE_BUCKETS,
                )
                .expect("BATCH_SIZE_BUCKETS is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("agora_flash_sale_sell_out_seconds".into()),
                    SELL_OUT_BUCKETS,
                )
                .expect("SELL_OUT_BUCKETS is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Every counter an alert reads, with its label sets, registered at its current value (0 in a
/// new process): `increase()` over a series that starts at 1 is 0, so without this the first
/// panic, restart or oversell refusal of a process would never fire its alert.
pub fn register_alerting_counters() {
    for name in [
        "agora_http_panics_total",
        "agora_inventory_guard_refusals_total",
        "agora_commit_group_panics_total",
        "agora_commit_group_refused_total",
        "agora_realtime_notices_dropped_total",
        "agora_db_pool_timeouts_total",
        "agora_flash_sale_admitted_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for actor in [
        "inventory_shard",
        "recommender",
        "flash_sale_queue",
        "flash_sale_director",
        "cart",
        "live_carts",
        "mail_sender",
        "upkeep",
    ] {
        metrics::counter!("agora_actor_restarts_total", "actor" => actor).increment(0);
    }
}

/// Process CPU, memory, threads and file descriptors (`agora_process_*`), sampled per scrape.
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

fn process_collector() -> &'static metrics_process::Collector {
    PROCESS.get_or_init(|| {
        let collector = metrics_process::Collector::new("agora_");
        collector.describe();
        collector
    })
}

/// Samples the process and pool gauges, then renders the Prometheus text exposition.
pub fn render(handle: &PrometheusHandle, pool: &deadpool_postgres::Pool) -> String {
    process_collector().collect();
    let status = pool.status();
    metrics::gauge!("agora_db_pool_max_connections").set(status.max_size as f64);
    metrics::gauge!("agora_db_pool_connections").set(status.size as f64);
    metrics::gauge!("agora_db_pool_idle_connections").set(status.available as f64);
    metrics::gauge!("agora_db_pool_waiting_requests").set(status.waiting as f64);
    handle.run_upkeep();
    handle.render()
}
