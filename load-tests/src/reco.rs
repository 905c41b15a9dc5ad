//! Recommendations: `reco-eval` measures their quality on generated bundles against a
//! popularity baseline; `reco-bench` times the two endpoints against a running server on a
//! large catalog.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use agora::recommendations::{
    self,
    evaluation::{self, Shape},
};
use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::browse::{percentiles, Percentiles};

/// A scratch database, migrated; its recommender tables are replaced.
async fn scratch(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut settings = agora::configuration::Settings::load()?;
    settings.database.url = secrecy::SecretString::from(database_url.to_owned());
    agora::db::migrate(&settings.database)
        .await
        .context("migrating the database")?;
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

pub async fn evaluate(database_url: &str, shape: Shape) -> anyhow::Result<evaluation::Evaluation> {
    let mut client = scratch(database_url).await?;
    let started = Instant::now();
    let result = evaluation::evaluate(&mut client, shape, 20).await?;
    eprintln!(
        "learned {} orders and evaluated {} shoppers in {:.1} s",
        result.orders_learned,
        result.shoppers_evaluated,
        started.elapsed().as_secs_f64()
    );
    Ok(result)
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub scenario: &'static str,
    pub target: String,
    pub products_with_neighbours: i64,
    pub orders_learned: usize,
    pub shoppers_with_history: usize,
    pub requests: usize,
    pub connections: usize,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, usize>,
}

/// Shoppers given an order history through the database.
const SHOPPERS_WITH_HISTORY: usize = 200;

/// Learns generated bundles over the catalog's listed products (the recommender tables are
/// replaced), gives some new shoppers an order history, then times "bought together" for
/// random products and "for you" for shoppers with and without a history.
pub async fn bench(
    target: &str,
    database_url: &str,
    requests: usize,
    connections: usize,
) -> anyhow::Result<BenchReport> {
    let mut db = scratch(database_url).await?;
    let products = listed_products(&db).await?;
    let baskets = learn_generated_bundles(&mut db, &products).await?;
    let with_neighbours = products_with_neighbours(&db).await?;
    eprintln!(
        "learned {} orders; {with_neighbours} products have neighbours",
        baskets.len()
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(connections)
        .build()?;
    let shoppers = guest_shoppers(&http, &db, target, &baskets).await?;
    let calls = recommendation_calls(target, requests, &baskets, &shoppers);
    let timed = time_calls(&http, calls, connections).await;
    let (by_kind, errors) = tally(timed);
    Ok(BenchReport {
        scenario: "reco-bench",
        target: target.to_owned(),
        products_with_neighbours: with_neighbours,
        orders_learned: baskets.len(),
        shoppers_with_history: SHOPPERS_WITH_HISTORY,
        requests,
        connections,
        latency_ms: by_kind
            .into_iter()
            .map(|(kind, samples)| (kind, percentiles(samples)))
            .collect(),
        errors,
    })
}

/// Up to 6,000 products listed in EUR, in id order; fails if the catalog has too few to
/// bench on.
async fn listed_products(db: &tokio_postgres::Client) -> anyhow::Result<Vec<Uuid>> {
    let products: Vec<Uuid> = db
        .query(
            "SELECT product_id FROM product_listing_prices WHERE currency = 'EUR' AND listed
             ORDER BY product_id LIMIT 6000",
            &[],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    anyhow::ensure!(
        products.len() >= 100,
        "the catalog has {} listed products: run seed-catalog and start the server once first",
        products.len()
    );
    Ok(products)
}

/// Replaces the recommender tables with what it learns from generated bundle orders over
/// `products` (all in region EU), a thousand orders per transaction; answers those orders.
async fn learn_generated_bundles(
    db: &mut tokio_postgres::Client,
    products: &[Uuid],
) -> anyhow::Result<Vec<recommendations::Basket>> {
    let shape = Shape {
        products: products.len(),
        bundle_size: 6,
        shoppers: 20_000,
        orders_per_shopper: 4,
        noise: 0.3,
        seed: 11,
    };
    let dataset = evaluation::generate_over(products, &shape);
    db.batch_execute("TRUNCATE reco_item_counts, reco_region_counts, reco_pairs, reco_neighbours")
        .await?;
    let baskets: Vec<recommendations::Basket> = dataset
        .train
        .into_iter()
        .map(|(_, mut basket)| {
            basket.region = "EU".into();
            basket
        })
        .collect();
    for chunk in baskets.chunks(1000) {
        let mut increments = recommendations::Increments::default();
        for basket in chunk {
            increments.order(basket);
        }
        let tx = db.transaction().await?;
        recommendations::record(&tx, &increments, 20).await?;
        tx.commit().await?;
    }
    // As autovacuum would after such a load, before anything is timed.
    db.batch_execute("ANALYZE reco_item_counts, reco_region_counts, reco_pairs, reco_neighbours")
        .await?;
    Ok(baskets)
}

/// How many products have learned neighbours.
async fn products_with_neighbours(db: &tokio_postgres::Client) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "SELECT count(DISTINCT product_id) FROM reco_neighbours",
            &[],
        )
        .await?
        .get(0))
}

/// Twice `SHOPPERS_WITH_HISTORY` new guest shoppers (locale `de`): their tokens, and whether
/// the shopper was given an order history (the first half are).
async fn guest_shoppers(
    http: &reqwest::Client,
    db: &tokio_postgres::Client,
    target: &str,
    baskets: &[recommendations::Basket],
) -> anyhow::Result<Vec<(String, bool)>> {
    let mut shoppers = Vec::new();
    for n in 0..SHOPPERS_WITH_HISTORY * 2 {
        let body: Value = http
            .post(format!("{target}/api/v1/shoppers"))
            .json(&json!({ "guest": true, "locale": "de" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = body["token"].as_str().context("token")?.to_owned();
        let id: Uuid = body["id"].as_str().context("id")?.parse()?;
        if n < SHOPPERS_WITH_HISTORY {
            // Two paid orders of three products from one bundle.
            let bundle = &baskets[n * 7 % baskets.len()].products;
            give_paid_order(db, id, bundle).await?;
        }
        shoppers.push((token, n < SHOPPERS_WITH_HISTORY));
    }
    Ok(shoppers)
}

/// Writes a paid order of `shopper` straight into the database, one line per product.
async fn give_paid_order(
    db: &tokio_postgres::Client,
    shopper: Uuid,
    products: &[Uuid],
) -> anyhow::Result<()> {
    db.execute(
        "WITH o AS (
                     INSERT INTO orders (id, shopper_id, cart_id, region, currency, status, subtotal,
                                         tax_rate, tax_included, tax, total)
                     VALUES ($1, $2, $1, 'EU', 'EUR', 'paid', 10, 0.19, true, 1.60, 10) RETURNING id)
                 INSERT INTO order_lines (order_id, line_no, seller_id, variant_id, product_id, sku,
                                          title, quantity, unit_price, line_total, tax)
                 SELECT o.id, row_number() OVER () - 1, p.seller_id, v.id, p.id, v.sku, 'bench', 1, 10, 10, 1.60
                 FROM o, products p
                 JOIN LATERAL (SELECT id, sku FROM variants WHERE product_id = p.id LIMIT 1) v ON true
                 WHERE p.id = ANY($3)",
        &[&Uuid::now_v7(), &shopper, &products],
    )
    .await?;
    Ok(())
}

/// `requests` calls in turn: "bought together" for a product of a learned bundle, "for you"
/// for a shopper with a history, and "for you" for one without. Each is its kind, URL and the
/// shopper's token if any.
fn recommendation_calls(
    target: &str,
    requests: usize,
    baskets: &[recommendations::Basket],
    shoppers: &[(String, bool)],
) -> Vec<(&'static str, String, Option<String>)> {
    (0..requests)
        .map(|n| match n % 3 {
            0 => (
                "bought_together",
                format!(
                    "{target}/api/v1/products/{}/recommendations?locale=de&currency=USD",
                    baskets[n * 13 % baskets.len()].products[0]
                ),
                None,
            ),
            1 => (
                "for_you_history",
                format!("{target}/api/v1/shoppers/me/recommendations?currency=USD"),
                Some(shoppers[n % SHOPPERS_WITH_HISTORY].0.clone()),
            ),
            _ => (
                "for_you_new",
                format!("{target}/api/v1/shoppers/me/recommendations?region=EU"),
                Some(
                    shoppers[SHOPPERS_WITH_HISTORY + n % SHOPPERS_WITH_HISTORY]
                        .0
                        .clone(),
                ),
            ),
        })
        .collect()
}

/// Sends the calls, `connections` at a time: each one's kind, and its milliseconds or why it
/// failed (an answer without items fails too).
async fn time_calls(
    http: &reqwest::Client,
    calls: Vec<(&'static str, String, Option<String>)>,
    connections: usize,
) -> Vec<(&'static str, Result<f64, String>)> {
    futures_util::stream::iter(calls)
        .map(|(kind, url, token)| {
            let http = http.clone();
            async move {
                let mut request = http.get(url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let started = Instant::now();
                let outcome = match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        match response.json::<Value>().await {
                            Ok(body) if body["items"].as_array().is_some_and(|i| !i.is_empty()) => {
                                Ok(started.elapsed().as_secs_f64() * 1e3)
                            }
                            Ok(_) => Err("empty".to_owned()),
                            Err(_) => Err("unreadable".to_owned()),
                        }
                    }
                    Ok(response) => Err(response.status().as_str().to_owned()),
                    Err(_) => Err("connect".to_owned()),
                };
                (kind, outcome)
            }
        })
        .buffer_unordered(connections.max(1))
        .collect()
        .await
}

/// The timed calls' milliseconds by kind, and their errors counted by kind and reason.
fn tally(
    timed: Vec<(&'static str, Result<f64, String>)>,
) -> (BTreeMap<String, Vec<f64>>, BTreeMap<String, usize>) {
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for (kind, outcome) in timed {
        match outcome {
            Ok(ms) => by_kind.entry(kind.to_owned()).or_default().push(ms),
            Err(why) => *errors.entry(format!("{kind}_{why}")).or_default() += 1,
        }
    }
    (by_kind, errors)
}
