//! `cart`: cart churn against running servers. Shoppers add a unit of one hot SKU to their cart
//! and take it out again, at a fixed total rate, spread over the targets; every add holds stock
//! through the inventory shards and every removal releases it.
//!
//! It sets up its own seller, product, region and shoppers through the API, and at the end
//! checks the database itself: the SKU's held units must equal the units the API says are in
//! carts (no hold lost or doubled).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use crate::browse::{percentiles, Percentiles};

/// Longest one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub targets: Vec<String>,
    pub shoppers: usize,
    pub operations: usize,
    pub duration_s: f64,
    pub operations_per_sec: f64,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, usize>,
    /// Units the API answered as held in carts at the end, and units Postgres holds.
    pub units_in_carts: i64,
    pub units_held_in_database: i64,
}

pub struct Shopper {
    pub target: String,
    pub token: String,
    pub cart: String,
}

/// What a load test sets up through the API: a seller with one hot SKU and a region.
pub struct Store {
    pub sku: String,
    pub region: &'static str,
    /// The API key of the store's seller.
    pub seller_key: String,
}

impl Store {
    /// A seller and a product of one SKU with `stock` units, and the load-test region.
    pub async fn set_up(
        client: &reqwest::Client,
        targets: &[String],
        operator_token: &str,
        stock: u32,
    ) -> anyhow::Result<Self> {
        let first = targets.first().context("--target needs at least one URL")?;
        let run_id = format!("{:08x}", rand::random::<u32>());
        let sku = format!("LOAD-{run_id}");
        let seller = post(
            client,
            format!("{first}/api/v1/sellers"),
            None,
            json!({ "name": "Load test", "email": format!("load-{run_id}@load.example") }),
        )
        .await?;
        let key = seller["api_key"].as_str().context("api_key")?.to_owned();
        post(client, format!("{first}/api/v1/products"), Some(&key), json!({
            "default_locale": "en", "content": { "en": { "title": "Load-test mug" } },
            "variants": [{ "sku": sku, "prices": { "EUR": "9.90" }, "stock": stock, "weight_grams": 300 }]
        })).await?;
        // One region for every run, replaced each time (a country may belong to one region only).
        let region = "LOADTEST";
        let response = client
            .put(format!("{first}/api/v1/regions/{region}"))
            .bearer_auth(operator_token)
            .json(&json!({
                "name": "Load test", "currency": "EUR", "countries": ["ZZ"],
                "tax_inclusive": true, "tax_rates": { "default": "0.19" },
                "shipping_options": [{ "id": "flat", "name": "Flat", "carrier": "Test",
                    "rate": { "type": "flat", "amount": "4.90" }, "delivery_days": { "min": 1, "max": 2 } }]
            }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "creating the region answered {} (is --operator-token right?)",
                response.status()
            );
        }
        Ok(Self {
            sku,
            region,
            seller_key: key,
        })
    }

    /// `count` guest shoppers, spread over the targets, each with a cart in the region (and,
    /// with `ship`, an address, a contact email and a shipping option chosen, as checkout
    /// needs).
    pub async fn shoppers(
        &self,
        client: &reqwest::Client,
        targets: &[String],
        count: usize,
        ship: bool,
    ) -> anyhow::Result<Vec<Shopper>> {
        let mut people = Vec::with_capacity(count);
        for n in 0..count {
            let target = targets[n % targets.len()].clone();
            let registered = post(
                client,
                format!("{target}/api/v1/shoppers"),
                None,
                json!({ "guest": true }),
            )
            .await?;
            let token = registered["token"].as_str().context("token")?.to_owned();
            let cart = post(
                client,
                format!("{target}/api/v1/carts"),
                Some(&token),
                json!({ "region": self.region }),
            )
            .await?;
            let cart = cart["id"].as_str().context("cart id")?.to_owned();
            if ship {
                let response = client
                    .put(format!("{target}/api/v1/carts/{cart}/shipping"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "address": { "name": "Load Tester", "line1": "1 Test Street",
                                     "city": "Testville", "postal_code": "12345", "country": "ZZ" },
                        "option": "flat", "email": format!("shopper{n}@load.example")
                    }))
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("choosing shipping answered {}", response.status());
                }
            }
            people.push(Shopper {
                target,
                token,
                cart,
            });
        }
        Ok(people)
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("setup call answered {status}: {body}");
    }
    Ok(body)
}

pub async fn run(
    targets: Vec<String>,
    database_url: &str,
    operator_token: &str,
    shoppers: usize,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let store = Store::set_up(&client, &targets, operator_token, 1_000_000).await?;
    let people = store.shoppers(&client, &targets, shoppers, false).await?;
    let sku = store.sku.clone();

    // Each shopper alternates add and remove, paced so that all together offer `rate` per second.
    let per_shopper = Duration::from_secs_f64(shoppers as f64 / f64::from(rate.max(1)));
    let started = Instant::now();
    let workers = people.into_iter().enumerate().map(|(n, shopper)| {
        let (client, sku) = (client.clone(), sku.clone());
        actix::spawn(async move {
            let mut samples: Vec<(&'static str, f64)> = Vec::new();
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            let mut in_cart = 0_i64;
            // Stagger the shoppers over one period so the load is even.
            tokio::time::sleep(per_shopper.mul_f64(n as f64 / shoppers as f64)).await;
            let mut ticks = tokio::time::interval(per_shopper);
            while started.elapsed() < duration {
                ticks.tick().await;
                let (step, request) = if in_cart == 0 {
                    (
                        "add",
                        client
                            .post(format!(
                                "{}/api/v1/carts/{}/items",
                                shopper.target, shopper.cart
                            ))
                            .json(&json!({ "sku": sku, "quantity": 1 })),
                    )
                } else {
                    (
                        "remove",
                        client.delete(format!(
                            "{}/api/v1/carts/{}/items/{}",
                            shopper.target, shopper.cart, sku
                        )),
                    )
                };
                let sent = Instant::now();
                match request.bearer_auth(&shopper.token).send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        samples.push((step, sent.elapsed().as_secs_f64() * 1e3));
                        in_cart = if step == "add" { 1 } else { 0 };
                    }
                    Ok(response) => {
                        *errors
                            .entry(format!("{step}_http_{}", response.status().as_u16()))
                            .or_default() += 1
                    }
                    Err(error) => {
                        let kind = if error.is_timeout() {
                            "timeout"
                        } else {
                            "connect"
                        };
                        *errors.entry(format!("{step}_{kind}")).or_default() += 1;
                    }
                }
            }
            (samples, errors, in_cart)
        })
    });
    let mut by_step: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut units_in_carts = 0;
    let mut operations = 0;
    for worker in futures_util::future::join_all(workers).await {
        let (samples, worker_errors, in_cart) = worker.context("a shopper task failed")?;
        operations += samples.len();
        units_in_carts += in_cart;
        for (step, ms) in samples {
            by_step.entry(step.to_owned()).or_default().push(ms);
        }
        for (kind, count) in worker_errors {
            *errors.entry(kind).or_default() += count;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let held: i32 = db
        .query_one("SELECT held FROM variants WHERE sku = $1", &[&sku])
        .await
        .context("reading the SKU's held units")?
        .get(0);
    Ok(Report {
        scenario: "cart",
        targets,
        shoppers,
        operations,
        duration_s: elapsed,
        operations_per_sec: operations as f64 / elapsed,
        latency_ms: by_step
            .into_iter()
            .map(|(step, samples)| (step, percentiles(samples)))
            .collect(),
        errors,
        units_in_carts,
        units_held_in_database: i64::from(held),
    })
}
