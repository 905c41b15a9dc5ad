//! `ws-bench`: many idle WebSockets on one server, the server's memory per connection, and the
//! fan-out of stock changes to the sockets following one SKU.
//!
//! Sockets are opened from several loopback source addresses (one client per address), so
//! more than one address's worth of ephemeral ports can be used. Every socket answers the
//! server's pings. A change is a seller's restock through the API; its latency is from just
//! before the request is sent to the socket's receipt of the new availability (so it includes
//! the HTTP request and its commit).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use crate::browse::{percentiles, Percentiles};

/// Sockets being opened at once.
const CONNECT_CONCURRENCY: usize = 256;
/// How long a socket may take to connect and upgrade, at each attempt. Long, because opening
/// tens of thousands of sockets at once saturates both cores (awc's default is 5 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to open each socket before it counts as failed (as a browser reconnects).
const CONNECT_ATTEMPTS: u32 = 3;
/// How long each change's fan-out is given before the next one.
const CHANGE_SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub target: String,
    pub sockets_open: usize,
    pub connect_failures: usize,
    /// Connects that failed and were tried again (at most `CONNECT_ATTEMPTS` per socket).
    pub connect_retries: usize,
    pub subscribers: usize,
    pub server_rss_before_kib: u64,
    pub server_rss_after_kib: u64,
    pub server_kib_per_connection: f64,
    pub changes: usize,
    /// Receipts expected (changes × subscribers) and received.
    pub expected: usize,
    pub received: usize,
    pub fanout_ms: Percentiles,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")
}

/// When each change (by the availability it sets) was sent.
type Sent = Arc<Mutex<HashMap<i64, Instant>>>;

async fn setup(target: &str, http: &reqwest::Client) -> anyhow::Result<(String, String)> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let seller: Value = http
        .post(format!("{target}/api/v1/sellers"))
        .json(&json!({ "name": "Socket bench", "email": format!("ws-{suffix}@bench.example") }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = seller["api_key"].as_str().context("api_key")?.to_owned();
    let sku = format!("WS-{}", &suffix[..10]).to_uppercase();
    http.post(format!("{target}/api/v1/products"))
        .bearer_auth(&key)
        .json(&json!({
            "default_locale": "en", "content": { "en": { "title": "Fan-out" } },
            "variants": [{ "sku": sku, "prices": { "EUR": "1.00" }, "stock": 100000 }]
        }))
        .send()
        .await?
        .error_for_status()?;
    Ok((key, sku))
}

/// Keeps one socket open: answers pings and, for subscribers, records the latency of each
/// change it receives.
async fn hold_open(
    client: awc::Client,
    url: String,
    subscribe: Option<String>,
    sent: Sent,
    latencies: Arc<Mutex<Vec<f64>>>,
    retries: Arc<AtomicUsize>,
    ready: tokio::sync::mpsc::Sender<bool>,
) {
    let mut attempt = 1;
    let mut socket = loop {
        match client.ws(url.as_str()).connect().await {
            Ok((_, socket)) => break socket,
            Err(_) if attempt < CONNECT_ATTEMPTS => {
                attempt += 1;
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_) => {
                let _ = ready.send(false).await;
                return;
            }
        }
    };
    if let Some(sku) = &subscribe {
        let subscribe = json!({ "type": "subscribe", "skus": [sku] }).to_string();
        if socket
            .send(ws::Message::Text(subscribe.into()))
            .await
            .is_err()
        {
            let _ = ready.send(false).await;
            return;
        }
    }
    let mut announced = subscribe.is_none();
    if announced {
        let _ = ready.send(true).await;
    }
    while let Some(Ok(frame)) = socket.next().await {
        match frame {
            ws::Frame::Ping(payload) => {
                let _ = socket.send(ws::Message::Pong(payload)).await;
            }
            ws::Frame::Text(bytes) => {
                // Cheaper than parsing JSON: the client shares the server's two cores.
                let Some(available) = stock_available(&bytes) else {
                    continue;
                };
                if !announced {
                    // The snapshot: this subscriber is in place.
                    announced = true;
                    let _ = ready.send(true).await;
                    continue;
                }
                let started = sent.lock().ok().and_then(|s| s.get(&available).copied());
                if let (Some(started), Ok(mut latencies)) = (started, latencies.lock()) {
                    latencies.push(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            ws::Frame::Close(_) => break,
            _ => {}
        }
    }
}

/// The `available` of a `stock` message, found without parsing the whole message.
fn stock_available(message: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(message).ok()?;
    if !text.contains("\"type\":\"stock\"") {
        return None;
    }
    let rest = &text[text.find("\"available\":")? + "\"available\":".len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

pub async fn run(
    target: &str,
    sockets: usize,
    subscribers: usize,
    sources: &[IpAddr],
    server_pid: u32,
    changes: usize,
    hold: Duration,
) -> anyhow::Result<Report> {
    let http = reqwest::Client::new();
    let (key, sku) = setup(target, &http).await?;
    let ws_url = format!("{}/ws", target.replacen("http", "ws", 1));
    let clients: Vec<awc::Client> = sources
        .iter()
        .map(|ip| {
            awc::Client::builder()
                .connector(
                    awc::Connector::new()
                        .limit(0)
                        .local_address(*ip)
                        .timeout(CONNECT_TIMEOUT),
                )
                .timeout(CONNECT_TIMEOUT)
                .finish()
        })
        .collect();
    anyhow::ensure!(!clients.is_empty(), "give at least one --sources address");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(server_pid)?;
    let sent: Sent = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let retries: Arc<AtomicUsize> = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(CONNECT_CONCURRENCY);
    let (mut open, mut failed, mut started) = (0, 0, 0);
    let progress_every = (sockets / 20).max(1);
    while open + failed < sockets {
        while started < sockets && started - open - failed < CONNECT_CONCURRENCY {
            let client = clients[started % clients.len()].clone();
            let subscribe = (started < subscribers).then(|| sku.clone());
            actix::spawn(hold_open(
                client,
                ws_url.clone(),
                subscribe,
                Arc::clone(&sent),
                Arc::clone(&latencies),
                Arc::clone(&retries),
                ready_tx.clone(),
            ));
            started += 1;
        }
        match ready_rx.recv().await {
            Some(true) => open += 1,
            Some(false) => failed += 1,
            None => break,
        }
        if (open + failed) % progress_every == 0 {
            eprintln!("{open} open, {failed} failed");
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib(server_pid)?;
    eprintln!("all open; holding them {} s", hold.as_secs());
    tokio::time::sleep(hold).await;

    for change in 0..changes {
        let available = 50_000 + i64::try_from(change).unwrap_or(0);
        if let Ok(mut sent) = sent.lock() {
            sent.insert(available, Instant::now());
        }
        http.put(format!("{target}/api/v1/inventory/{sku}"))
            .bearer_auth(&key)
            .json(&json!({ "stock_on_hand": available, "reason": "fan-out bench" }))
            .send()
            .await?
            .error_for_status()?;
        tokio::time::sleep(CHANGE_SETTLE).await;
    }
    let latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let subscribed = subscribers.min(open);
    Ok(Report {
        scenario: "ws-bench",
        target: target.to_owned(),
        sockets_open: open,
        connect_failures: failed,
        connect_retries: retries.load(Ordering::Relaxed),
        subscribers: subscribed,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_kib_per_connection: rss_after.saturating_sub(rss_before) as f64 / open.max(1) as f64,
        changes,
        expected: changes * subscribed,
        received: latencies.len(),
        fanout_ms: percentiles(latencies),
    })
}
