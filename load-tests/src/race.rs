//! `checkout-race`: a crowd racing for one hot SKU through the real HTTP checkout, across the
//! targets. Every shopper adds one unit and, if held, checks out with the sandbox's approved
//! card; all start together (bounded by `--concurrency` requests in flight).
//!
//! It sets up its own seller, product, region, shoppers and carts through the API (untimed),
//! and verifies the outcome against the database itself: every order the API acknowledged
//! must be in Postgres as paid (`lost` counts those that are not), and the units sold must not
//! exceed the stock (`oversold`).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::{
    browse::{percentiles, Percentiles},
    cart::Store,
};

/// Longest one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub targets: Vec<String>,
    pub shoppers: usize,
    pub stock: u32,
    pub sold: i64,
    pub oversold: i64,
    pub orders_acknowledged: usize,
    pub orders_in_database: i64,
    pub lost: usize,
    pub duration_s: f64,
    pub orders_per_sec: f64,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, usize>,
}

/// What one shopper's attempt came to.
struct Attempt {
    samples: Vec<(&'static str, f64)>,
    order: Option<String>,
    error: Option<String>,
}

async fn attempt(
    client: reqwest::Client,
    shopper: crate::cart::Shopper,
    sku: String,
    slots: Arc<Semaphore>,
) -> Attempt {
    let mut samples = Vec::new();
    let failed = |samples, error: String| Attempt {
        samples,
        order: None,
        error: Some(error),
    };
    let kind = |step: &str, error: reqwest::Error| {
        let why = if error.is_timeout() {
            "timeout"
        } else {
            "connect"
        };
        format!("{step}_{why}")
    };
    let Ok(_slot) = slots.acquire().await else {
        return failed(samples, "cancelled".into());
    };
    let sent = Instant::now();
    let added = client
        .post(format!(
            "{}/api/v1/carts/{}/items",
            shopper.target, shopper.cart
        ))
        .bearer_auth(&shopper.token)
        .json(&json!({ "sku": sku, "quantity": 1 }))
        .send()
        .await;
    let added = match added {
        Ok(response) => response,
        Err(error) => return failed(samples, kind("add", error)),
    };
    let status = added.status();
    let body: Value = added.json().await.unwrap_or(Value::Null);
    samples.push(("add", sent.elapsed().as_secs_f64() * 1e3));
    if !status.is_success() {
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        // Refused for want of stock is the expected end for most of a crowd, not an error.
        return Attempt {
            samples,
            order: None,
            error: (code != "insufficient_stock").then(|| format!("add_{code}")),
        };
    }
    let sent = Instant::now();
    let paid = client
        .post(format!(
            "{}/api/v1/carts/{}/checkout",
            shopper.target, shopper.cart
        ))
        .bearer_auth(&shopper.token)
        .header("Idempotency-Key", format!("race-{}", shopper.cart))
        .json(&json!({ "payment": { "card_number": "4242424242424242" } }))
        .send()
        .await;
    let paid = match paid {
        Ok(response) => response,
        Err(error) => return failed(samples, kind("checkout", error)),
    };
    let status = paid.status();
    let body: Value = paid.json().await.unwrap_or(Value::Null);
    samples.push(("checkout", sent.elapsed().as_secs_f64() * 1e3));
    if status.as_u16() != 201 {
        let code = body["error"]["code"].as_str().unwrap_or("unknown");
        return failed(samples, format!("checkout_{code}"));
    }
    Attempt {
        samples,
        order: body["id"].as_str().map(str::to_owned),
        error: None,
    }
}

pub async fn run(
    targets: Vec<String>,
    database_url: &str,
    operator_token: &str,
    shoppers: usize,
    stock: u32,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let store = Store::set_up(&client, &targets, operator_token, stock).await?;
    eprintln!("setting up {shoppers} shoppers with carts…");
    let people = store.shoppers(&client, &targets, shoppers, true).await?;

    eprintln!("racing for {stock} units…");
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let attempts = people.into_iter().map(|shopper| {
        actix::spawn(attempt(
            client.clone(),
            shopper,
            store.sku.clone(),
            Arc::clone(&slots),
        ))
    });
    let mut by_step: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut acknowledged = Vec::new();
    for attempt in futures_util::future::join_all(attempts).await {
        let attempt = attempt.context("a shopper task failed")?;
        for (step, ms) in attempt.samples {
            by_step.entry(step.to_owned()).or_default().push(ms);
        }
        if let Some(error) = attempt.error {
            *errors.entry(error).or_default() += 1;
        }
        acknowledged.extend(attempt.order);
    }
    let elapsed = started.elapsed().as_secs_f64();

    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let in_database: i64 = db
        .query_one(
            "SELECT count(*) FROM orders o WHERE o.status = 'paid'
               AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.sku = $1)",
            &[&store.sku],
        )
        .await?
        .get(0);
    let sold: i64 = db
        .query_one(
            "SELECT coalesce(sum(l.quantity), 0)::int8 FROM order_lines l
             JOIN orders o ON o.id = l.order_id AND o.status = 'paid' WHERE l.sku = $1",
            &[&store.sku],
        )
        .await?
        .get(0);
    let ids: Vec<uuid::Uuid> = acknowledged
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let found: i64 = db
        .query_one(
            "SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'paid'",
            &[&ids],
        )
        .await?
        .get(0);
    Ok(Report {
        scenario: "checkout-race",
        targets,
        shoppers,
        stock,
        sold,
        oversold: (sold - i64::from(stock)).max(0),
        orders_acknowledged: acknowledged.len(),
        orders_in_database: in_database,
        lost: acknowledged.len() - usize::try_from(found).unwrap_or(0),
        duration_s: elapsed,
        orders_per_sec: acknowledged.len() as f64 / elapsed,
        latency_ms: by_step
            .into_iter()
            .map(|(step, samples)| (step, percentiles(samples)))
            .collect(),
        errors,
    })
}
