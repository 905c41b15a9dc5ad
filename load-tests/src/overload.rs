//! `overload`: a server offered three times what it can serve, and how it comes back. Three
//! phases at fixed offered rates, open loop (a request starts on every tick, whatever the
//! server's latency): `before` at `--rate` (its capacity, measured with `cart` or
//! `checkout-race`), `overload` at `--multiple` × that, `after` at `--rate` again. Each
//! operation is `cart` (add or remove a unit of a hot SKU) or `checkout` (a new cart: create,
//! shipping, add, check out).
//!
//! It reports per phase: operations served and shed (429/503) per second, the latency of both
//! (a shed answer must come quickly), the server's resident memory (sampled from
//! `/proc/<--server-pid>/status`), and after the overload, how long until throughput is back
//! to the `before` phase's for three seconds in a row.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::{
    browse::{percentiles, Percentiles},
    cart::{Shopper, Store},
};

/// Longest one request may take before the client counts it as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Share of the `before` throughput that counts as recovered.
const RECOVERED_SHARE: f64 = 0.95;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    Cart,
    Checkout,
}

pub struct Options {
    pub target: String,
    pub operator_token: String,
    pub server_pid: u32,
    pub operation: Operation,
    pub rate: u32,
    pub multiple: u32,
    pub phase: Duration,
    pub shoppers: usize,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub offered_per_sec: f64,
    pub served_per_sec: f64,
    pub shed_per_sec: f64,
    /// Operations the client could not even start: every shopper was busy (client-side bound).
    pub not_started: usize,
    pub served_ms: Percentiles,
    pub shed_ms: Percentiles,
    pub errors: BTreeMap<String, usize>,
    pub max_resident_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub operation: String,
    pub target: String,
    pub phases: Vec<Phase>,
    /// Served operations in each second of the run.
    pub served_each_second: Vec<usize>,
    /// Seconds from the end of the overload until throughput is back (None: not in the run).
    pub recovered_after_s: Option<f64>,
}

/// What one operation came to.
enum Ended {
    Served(f64),
    Shed(f64),
    Failed(String),
}

/// What the phases record, shared by the operations in flight.
#[derive(Default)]
struct Record {
    /// (phase, second of the run, outcome)
    ended: Vec<(usize, usize, Ended)>,
    not_started: [usize; 3],
    max_resident_kib: [u64; 3],
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let targets = [options.target.clone()];
    let store = Store::set_up(&http, &targets, &options.operator_token, 10_000_000).await?;
    eprintln!("setting up {} shoppers…", options.shoppers);
    let ship = options.operation == Operation::Checkout;
    let people = store
        .shoppers(&http, &targets, options.shoppers, ship)
        .await?;
    let free: Arc<Mutex<VecDeque<(Shopper, bool)>>> =
        Arc::new(Mutex::new(people.into_iter().map(|s| (s, false)).collect()));
    let record = Arc::new(Mutex::new(Record::default()));
    let rates = [
        f64::from(options.rate),
        f64::from(options.rate * options.multiple),
        f64::from(options.rate),
    ];
    let start = Instant::now();
    let sampler = sample_memory(
        options.server_pid,
        Arc::clone(&record),
        start,
        options.phase,
    );
    let mut in_flight = Vec::new();
    for (phase, rate) in rates.iter().enumerate() {
        let phase_ends = start + options.phase * u32::try_from(phase + 1).unwrap_or(3);
        let every = Duration::from_secs_f64(1.0 / rate.max(1.0));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while Instant::now() < phase_ends {
            ticks.tick().await;
            let taken = free.lock().ok().and_then(|mut free| free.pop_front());
            let Some((shopper, in_cart)) = taken else {
                if let Ok(mut record) = record.lock() {
                    record.not_started[phase] += 1;
                }
                continue;
            };
            let (http, sku, free, record) = (
                http.clone(),
                store.sku.clone(),
                Arc::clone(&free),
                Arc::clone(&record),
            );
            let operation = options.operation;
            in_flight.push(actix::spawn(async move {
                let sent = Instant::now();
                let (ended, now_in_cart) = match operation {
                    Operation::Cart => cart_step(&http, &shopper, &sku, in_cart).await,
                    Operation::Checkout => (checkout_step(&http, &shopper, &sku).await, false),
                };
                let ended = match ended {
                    Ok(true) => Ended::Served(sent.elapsed().as_secs_f64() * 1e3),
                    Ok(false) => Ended::Shed(sent.elapsed().as_secs_f64() * 1e3),
                    Err(why) => Ended::Failed(why),
                };
                // Counted in the second it ended: what the server got done then.
                let second = start.elapsed().as_secs() as usize;
                if let Ok(mut record) = record.lock() {
                    record.ended.push((phase, second, ended));
                }
                if let Ok(mut free) = free.lock() {
                    free.push_back((shopper, now_in_cart));
                }
            }));
        }
    }
    futures_util::future::join_all(in_flight).await;
    sampler.abort();
    let record = Arc::try_unwrap(record)
        .ok()
        .and_then(|record| record.into_inner().ok())
        .context("the record is still shared")?;
    Ok(report(&options, &rates, record))
}

/// One cart change: adds a unit if the shopper's cart has none, else removes it. Answers
/// whether it was served (`Ok(false)`: shed) and what the cart holds afterwards.
async fn cart_step(
    http: &reqwest::Client,
    shopper: &Shopper,
    sku: &str,
    in_cart: bool,
) -> (Result<bool, String>, bool) {
    let base = format!("{}/api/v1/carts/{}/items", shopper.target, shopper.cart);
    let request = if in_cart {
        http.delete(format!("{base}/{sku}"))
    } else {
        http.post(base).json(&json!({ "sku": sku, "quantity": 1 }))
    };
    let step = if in_cart { "remove" } else { "add" };
    match answer(request.bearer_auth(&shopper.token), step).await {
        Ok(true) => (Ok(true), !in_cart),
        other => (other, in_cart),
    }
}

/// One order from a new cart: create it, choose shipping, add a unit, check out.
async fn checkout_step(
    http: &reqwest::Client,
    shopper: &Shopper,
    sku: &str,
) -> Result<bool, String> {
    let target = &shopper.target;
    let created = http
        .post(format!("{target}/api/v1/carts"))
        .bearer_auth(&shopper.token)
        .json(&json!({ "region": "LOADTEST" }))
        .send()
        .await
        .map_err(|e| kind("cart", &e))?;
    if !created.status().is_success() {
        return shed_or_failed(created.status().as_u16(), "cart");
    }
    let body: serde_json::Value = created.json().await.map_err(|e| kind("cart", &e))?;
    let cart = body["id"].as_str().unwrap_or_default().to_owned();
    let steps = [
        (
            "shipping",
            http.put(format!("{target}/api/v1/carts/{cart}/shipping"))
                .json(&json!({
                    "address": { "name": "Load Tester", "line1": "1 Test Street",
                                 "city": "Testville", "postal_code": "12345", "country": "ZZ" },
                    "option": "flat", "email": "overload@load.example"
                })),
        ),
        (
            "add",
            http.post(format!("{target}/api/v1/carts/{cart}/items"))
                .json(&json!({ "sku": sku, "quantity": 1 })),
        ),
        (
            "checkout",
            http.post(format!("{target}/api/v1/carts/{cart}/checkout"))
                .header("Idempotency-Key", format!("overload-{cart}"))
                .json(&json!({ "payment": { "card_number": "4242424242424242" } })),
        ),
    ];
    for (step, request) in steps {
        if !answer(request.bearer_auth(&shopper.token), step).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `Ok(true)` for a success, `Ok(false)` for a shed answer (429, 503), else the failure.
async fn answer(request: reqwest::RequestBuilder, step: &str) -> Result<bool, String> {
    let response = request.send().await.map_err(|e| kind(step, &e))?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    if (200..300).contains(&status) {
        return Ok(true);
    }
    shed_or_failed(status, step)
}

fn shed_or_failed(status: u16, step: &str) -> Result<bool, String> {
    match status {
        429 | 503 => Ok(false),
        other => Err(format!("{step}_http_{other}")),
    }
}

fn kind(step: &str, error: &reqwest::Error) -> String {
    let why = if error.is_timeout() {
        "timeout"
    } else {
        "connect"
    };
    format!("{step}_{why}")
}

/// Samples the server's resident memory every 100 ms into the phase it falls in.
fn sample_memory(
    pid: u32,
    record: Arc<Mutex<Record>>,
    start: Instant,
    phase: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = format!("/proc/{pid}/status");
        loop {
            let resident = std::fs::read_to_string(&path).ok().and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u64>()
                    .ok()
            });
            let index = (start.elapsed().as_secs_f64() / phase.as_secs_f64()) as usize;
            if let (Some(kib), Ok(mut record)) = (resident, record.lock()) {
                let slot = &mut record.max_resident_kib[index.min(2)];
                *slot = (*slot).max(kib);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn report(options: &Options, rates: &[f64; 3], record: Record) -> Report {
    // Operations sent late in the run may end a few seconds after it.
    let seconds = (options.phase.as_secs() * 3) as usize + REQUEST_TIMEOUT.as_secs() as usize;
    let mut served_each_second = vec![0; seconds];
    let mut phases = Vec::new();
    for (index, name) in ["before", "overload", "after"].into_iter().enumerate() {
        let (mut served, mut shed, mut errors) = (Vec::new(), Vec::new(), BTreeMap::new());
        for (phase, second, ended) in &record.ended {
            if *phase != index {
                continue;
            }
            match ended {
                Ended::Served(ms) => {
                    served.push(*ms);
                    if let Some(count) = served_each_second.get_mut(*second) {
                        *count += 1;
                    }
                }
                Ended::Shed(ms) => shed.push(*ms),
                Ended::Failed(why) => *errors.entry(why.clone()).or_default() += 1,
            }
        }
        let secs = options.phase.as_secs_f64();
        phases.push(Phase {
            name,
            offered_per_sec: rates[index],
            served_per_sec: served.len() as f64 / secs,
            shed_per_sec: shed.len() as f64 / secs,
            not_started: record.not_started[index],
            served_ms: percentiles(served),
            shed_ms: percentiles(shed),
            errors,
            max_resident_mib: record.max_resident_kib[index] as f64 / 1024.0,
        });
    }
    let phase_secs = options.phase.as_secs() as usize;
    let before = phases[0].served_per_sec;
    // The first second after the overload from which three seconds in a row reach the
    // `before` throughput.
    let recovered_after_s = (2 * phase_secs..(3 * phase_secs).saturating_sub(2))
        .find(|&second| {
            served_each_second[second..second + 3]
                .iter()
                .all(|&count| count as f64 >= before * RECOVERED_SHARE)
        })
        .map(|second| (second - 2 * phase_secs) as f64);
    Report {
        scenario: "overload",
        operation: format!("{:?}", options.operation).to_lowercase(),
        target: options.target.clone(),
        phases,
        served_each_second,
        recovered_after_s,
    }
}
