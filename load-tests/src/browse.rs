//! `browse`: storefront reads against running servers, timed per kind of request.
//!
//! Every request asks for a filtered page of 50. Kinds: the newest in-stock products in USD,
//! a price-range page sorted by price, one seller's products by price, and searches in English
//! and German of a brand (rare), an adjective-noun pair (1 %) and a noun alone (4 %). A share
//! of requests follows `next_cursor` to a deeper page. Latency is measured by the client, from
//! sending the request to reading the whole body, over `--connections` concurrent clients.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use crate::seed::{ADJECTIVES, NOUNS, SELLERS, SYLLABLES};

/// Page size of every request, as in the catalog's benchmark target.
const PAGE: u32 = 50;
/// Longest one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub requests: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub targets: Vec<String>,
    pub requests: usize,
    pub connections: usize,
    pub duration_s: f64,
    pub requests_per_sec: f64,
    /// Milliseconds, per kind of request, and over all listings and all searches.
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, usize>,
}

/// Nearest-rank percentiles of `samples` (milliseconds).
pub fn percentiles(mut samples: Vec<f64>) -> Percentiles {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((samples.len() as f64) * q).ceil() as usize;
        samples.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
    };
    Percentiles {
        requests: samples.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: samples.last().copied().unwrap_or(0.0),
    }
}

/// What the requests read: the JSON API, or the storefront's HTML pages that browsers get (the
/// same filters as the home page's form: `lang` for `locale`, pages of the site's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Api,
    Pages,
}

impl Read {
    /// The request `path` (an API path) as this reader sends it.
    fn path(self, path: &str) -> String {
        match self {
            Self::Api => path.to_owned(),
            Self::Pages => {
                let query = path.split_once('?').map_or("", |(_, query)| query);
                let kept: Vec<String> = query
                    .split('&')
                    .filter(|pair| !pair.starts_with("limit="))
                    .map(|pair| pair.replacen("locale=", "lang=", 1))
                    .collect();
                format!("/?{}", kept.join("&"))
            }
        }
    }

    /// Where the next page is, from a response body.
    fn next_page(self, path: &str, body: &str) -> Option<String> {
        match self {
            Self::Api => {
                let json: serde_json::Value = serde_json::from_str(body).ok()?;
                let cursor = json["next_cursor"].as_str()?;
                Some(format!("{path}&cursor={cursor}"))
            }
            Self::Pages => {
                let (_, after) = body.split_once("rel=\"next\" href=\"")?;
                let href = after.split('"').next()?;
                Some(href.replace("&amp;", "&"))
            }
        }
    }
}

/// The report's name for the page after a request of `kind`.
fn next_page_kind(kind: &'static str) -> &'static str {
    if kind.starts_with("search") {
        "search_next_page"
    } else {
        "list_next_page"
    }
}

/// One request to make: its kind (for the report) and its path.
fn pick(rng: &mut StdRng, sellers: &[String]) -> (&'static str, String) {
    let brand = {
        let g: usize = rng.random_range(0..4096);
        let name = format!(
            "{}{}{}",
            SYLLABLES[g % 16],
            SYLLABLES[(g / 16) % 16],
            SYLLABLES[(g / 256) % 16]
        );
        name
    };
    let (adjective_en, adjective_de) = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let (noun_en, noun_de) = NOUNS[rng.random_range(0..NOUNS.len())];
    let low = rng.random_range(5..400);
    match rng.random_range(0..9) {
        0 => ("list_newest_in_stock", format!("/api/v1/products?limit={PAGE}&in_stock=true&currency=USD")),
        1 => (
            "list_price_range",
            format!("/api/v1/products?limit={PAGE}&sort=price&min_price={low}&max_price={}&currency=EUR", low + 60),
        ),
        2 => {
            let seller = &sellers[rng.random_range(0..sellers.len())];
            ("list_seller_by_price", format!("/api/v1/products?limit={PAGE}&seller={seller}&sort=price_desc&currency=JPY"))
        }
        3 => ("search_brand_en", format!("/api/v1/products?limit={PAGE}&locale=en&q={brand}")),
        4 => ("search_brand_de", format!("/api/v1/products?limit={PAGE}&locale=de&q={brand}&in_stock=true")),
        5 => ("search_pair_en", format!("/api/v1/products?limit={PAGE}&locale=en&q={adjective_en}+{noun_en}")),
        6 => ("search_pair_de", format!("/api/v1/products?limit={PAGE}&locale=de&q={adjective_de}+{noun_de}&currency=CHF")),
        7 => ("search_noun_en", format!("/api/v1/products?limit={PAGE}&locale=en&q={noun_en}s&in_stock=true")),
        _ => ("search_noun_de", format!("/api/v1/products?limit={PAGE}&locale=de&q={noun_de}&sort=price")),
    }
}

pub async fn run(
    targets: Vec<String>,
    sellers: Vec<String>,
    requests: usize,
    connections: usize,
    deeper_pages: f64,
    read: Read,
) -> anyhow::Result<Report> {
    if targets.is_empty() {
        bail!("--target needs at least one URL");
    }
    if sellers.is_empty() {
        bail!("no sellers to filter by: seed the catalog first");
    }
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(connections)
        .build()?;
    let per_connection = requests.div_ceil(connections.max(1));
    let started = Instant::now();
    let workers = (0..connections.max(1)).map(|worker| {
        let client = client.clone();
        let targets = targets.clone();
        let sellers = sellers.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64);
            let mut samples: Vec<(&'static str, f64)> = Vec::with_capacity(per_connection);
            let mut errors: BTreeMap<String, usize> = BTreeMap::new();
            for n in 0..per_connection {
                let target = &targets[(worker + n) % targets.len()];
                let (kind, path) = pick(&mut rng, &sellers);
                let path = read.path(&path);
                let follow = rng.random_bool(deeper_pages.clamp(0.0, 1.0));
                let sent = Instant::now();
                let outcome = client.get(format!("{target}{path}")).send().await;
                let body = match outcome {
                    Ok(response) if response.status().is_success() => response.text().await.ok(),
                    Ok(response) => {
                        *errors
                            .entry(format!("http_{}", response.status().as_u16()))
                            .or_default() += 1;
                        continue;
                    }
                    Err(error) => {
                        let kind = if error.is_timeout() {
                            "timeout"
                        } else {
                            "connect"
                        };
                        *errors.entry(kind.to_owned()).or_default() += 1;
                        continue;
                    }
                };
                samples.push((kind, sent.elapsed().as_secs_f64() * 1e3));
                let next = body.as_deref().and_then(|b| read.next_page(&path, b));
                if let (true, Some(next)) = (follow, next) {
                    let sent = Instant::now();
                    match client.get(format!("{target}{next}")).send().await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            samples
                                .push((next_page_kind(kind), sent.elapsed().as_secs_f64() * 1e3));
                        }
                        _ => *errors.entry("next_page".to_owned()).or_default() += 1,
                    }
                }
            }
            (samples, errors)
        })
    });
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for worker in futures_util::future::join_all(workers).await {
        let (samples, worker_errors) = worker.context("a client task failed")?;
        for (kind, ms) in samples {
            total += 1;
            let group = if kind.starts_with("search") {
                "all_searches"
            } else {
                "all_listings"
            };
            by_kind.entry(kind.to_owned()).or_default().push(ms);
            by_kind.entry(group.to_owned()).or_default().push(ms);
        }
        for (kind, count) in worker_errors {
            *errors.entry(kind).or_default() += count;
        }
    }
    let duration = started.elapsed().as_secs_f64();
    Ok(Report {
        scenario: match read {
            Read::Api => "browse",
            Read::Pages => "browse_pages",
        },
        targets,
        requests: total,
        connections,
        duration_s: duration,
        requests_per_sec: total as f64 / duration.max(f64::EPSILON),
        latency_ms: by_kind
            .into_iter()
            .map(|(kind, samples)| (kind, percentiles(samples)))
            .collect(),
        errors,
    })
}

/// The ids of sellers that have products, to filter by.
pub async fn seller_ids(database_url: &str) -> anyhow::Result<Vec<String>> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client
        .query(
            &format!("SELECT DISTINCT seller_id::text FROM products LIMIT {SELLERS}"),
            &[],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_asked_as_the_home_page_form_asks_and_followed_by_their_next_link() {
        let path = Read::Pages.path("/api/v1/products?limit=50&locale=de&q=Becher&sort=price");
        assert_eq!(path, "/?lang=de&q=Becher&sort=price");
        let body = r#"<nav><a rel="next" href="/?lang=de&amp;cursor=abc">More</a></nav>"#;
        assert_eq!(
            Read::Pages.next_page(&path, body).as_deref(),
            Some("/?lang=de&cursor=abc")
        );
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(percentiles(vec![]).requests, 0);
    }
}
