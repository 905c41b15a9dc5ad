//! The crowds the chaos suite sends through a cluster it keeps breaking: checkout races (add
//! one unit of a hot SKU, check out) and flash sales (join the queue, poll it, buy when
//! admitted). Each shopper behaves as a careful client: a request that fails on the way (the
//! process died, the connection broke) or that the server sheds (503, 429, a key still in
//! progress) is sent again, to the next process, with the same idempotency key, until its
//! deadline. Every order the API acknowledged is remembered, for the checks.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::cart::{Shopper, Store};

/// Longest one request may take before the client gives up on that process.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before a request is sent again.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// How often a flash-sale shopper asks for its ticket.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// How one shopper's visit ended, and what the API acknowledged on the way.
#[derive(Debug, Default)]
pub struct Visit {
    pub outcome: String,
    pub order: Option<Uuid>,
    /// Requests sent again, by step and why.
    pub retries: Vec<String>,
}

/// The HTTP client every shopper shares, and the processes it may send to.
#[derive(Clone)]
pub struct Crowd {
    http: reqwest::Client,
    urls: Vec<String>,
}

impl Crowd {
    pub fn new(urls: Vec<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { http, urls })
    }

    /// Sends `request(url)` to the shopper's own process first, then to the next on every
    /// failure, until an answer that is not "try again" or the deadline (`None`).
    async fn send(
        &self,
        visit: &mut Visit,
        step: &str,
        home: usize,
        deadline: Instant,
        request: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Option<(u16, Value)> {
        let mut process = home;
        loop {
            let url = &self.urls[process % self.urls.len()];
            let why = match request(&self.http, url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    // 502 and 504 (the gateway failed or timed out) are answers: nothing was
                    // charged, and the same key answers the same again.
                    let again = matches!(status, 429 | 503)
                        || body["error"]["code"] == "idempotency_key_in_progress";
                    if !again {
                        return Some((status, body));
                    }
                    status.to_string()
                }
                Err(error) if error.is_timeout() => "timeout".to_owned(),
                Err(_) => "connection".to_owned(),
            };
            visit.retries.push(format!("{step}_{why}"));
            if Instant::now() > deadline {
                return None;
            }
            process += 1;
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// A checkout race shopper: adds one unit of `sku`, and checks out if it is held.
    pub async fn race(&self, shopper: Shopper, sku: String, deadline: Instant) -> Visit {
        let mut visit = Visit::default();
        let home = self.home_of(&shopper);
        let items = |url: &str| format!("{url}/api/v1/carts/{}/items", shopper.cart);
        let added = self
            .send(&mut visit, "add", home, deadline, |http, url| {
                http.post(items(url))
                    .bearer_auth(&shopper.token)
                    .json(&json!({ "sku": sku, "quantity": 1 }))
            })
            .await;
        match added {
            Some((200, _)) => {}
            Some((_, body)) => {
                visit.outcome = error_code(&body, "add");
                return visit;
            }
            None => {
                visit.outcome = "gave_up_adding".into();
                return visit;
            }
        }
        let checkout = |url: &str| format!("{url}/api/v1/carts/{}/checkout", shopper.cart);
        let key = format!("chaos-{}", shopper.cart);
        let paid = self
            .send(&mut visit, "checkout", home + 1, deadline, |http, url| {
                http.post(checkout(url))
                    .bearer_auth(&shopper.token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({ "payment": { "card_number": "4242424242424242" } }))
            })
            .await;
        self.ended_with_order(visit, paid, "checkout")
    }

    /// A flash-sale shopper: joins `sale`'s queue, polls it until admitted, and buys a unit.
    pub async fn flash(
        &self,
        shopper: Shopper,
        sale: String,
        region: &str,
        deadline: Instant,
    ) -> Visit {
        let mut visit = Visit::default();
        let home = self.home_of(&shopper);
        let joined = self
            .send(&mut visit, "join", home, deadline, |http, url| {
                http.post(format!("{url}/api/v1/flash-sales/{sale}/queue"))
                    .bearer_auth(&shopper.token)
            })
            .await;
        match joined {
            Some((200 | 201, _)) => {}
            Some((_, body)) => {
                visit.outcome = error_code(&body, "join");
                return visit;
            }
            None => {
                visit.outcome = "gave_up_joining".into();
                return visit;
            }
        }
        let admission = match self
            .wait_for_admission(&mut visit, home, &sale, &shopper, deadline)
            .await
        {
            Ok(token) => token,
            Err(ending) => {
                visit.outcome = ending;
                return visit;
            }
        };
        let body = crate::flash::purchase_body(&admission, region);
        let bought = self
            .send(&mut visit, "purchase", home + 1, deadline, |http, url| {
                http.post(format!("{url}/api/v1/flash-sales/{sale}/purchase"))
                    .bearer_auth(&shopper.token)
                    .header("Idempotency-Key", "chaos-flash")
                    .json(&body)
            })
            .await;
        self.ended_with_order(visit, bought, "purchase")
    }

    async fn wait_for_admission(
        &self,
        visit: &mut Visit,
        home: usize,
        sale: &str,
        shopper: &Shopper,
        deadline: Instant,
    ) -> Result<String, String> {
        loop {
            let answer = self
                .send(visit, "poll", home, deadline, |http, url| {
                    http.get(format!("{url}/api/v1/flash-sales/{sale}/queue/me"))
                        .bearer_auth(&shopper.token)
                })
                .await;
            match answer {
                Some((200, ticket)) => match ticket["state"].as_str() {
                    Some("admitted") => {
                        return ticket["admission_token"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| "admitted_without_token".to_owned());
                    }
                    Some("waiting") => {}
                    Some(other) => return Err(other.to_owned()),
                    None => return Err("unreadable_ticket".into()),
                },
                Some((status, body)) => {
                    return Err(format!("poll_{status}_{}", error_code(&body, "poll")))
                }
                None => return Err("gave_up_waiting".into()),
            }
            if Instant::now() > deadline {
                return Err("gave_up_waiting".into());
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn ended_with_order(
        &self,
        mut visit: Visit,
        answer: Option<(u16, Value)>,
        step: &str,
    ) -> Visit {
        match answer {
            Some((200 | 201, order)) => {
                visit.order = order["id"].as_str().and_then(|id| id.parse().ok());
                visit.outcome = if visit.order.is_some() {
                    "ordered".into()
                } else {
                    format!("{step}_answered_without_an_id")
                };
            }
            Some((_, body)) => visit.outcome = error_code(&body, step),
            None => visit.outcome = format!("gave_up_{step}"),
        }
        visit
    }

    fn home_of(&self, shopper: &Shopper) -> usize {
        self.urls
            .iter()
            .position(|url| *url == shopper.target)
            .unwrap_or(0)
    }
}

fn error_code(body: &Value, step: &str) -> String {
    format!(
        "{step}_{}",
        body["error"]["code"].as_str().unwrap_or("unreadable")
    )
}

/// One flash sale of the run: its store (a SKU with exactly the sale's quantity in stock),
/// guests to crowd it, and its id once scheduled.
pub struct Sale {
    pub id: String,
    pub store: Store,
    pub shoppers: Vec<Shopper>,
}

impl Sale {
    /// Sets up the sale's store of `quantity` units and its `shoppers` guests (not scheduled).
    pub async fn set_up(
        http: &reqwest::Client,
        urls: &[String],
        operator_token: &str,
        quantity: u32,
        shoppers: usize,
    ) -> anyhow::Result<Self> {
        let store = Store::set_up(http, urls, operator_token, quantity).await?;
        let shoppers = store.shoppers(http, urls, shoppers, false).await?;
        Ok(Self {
            id: String::new(),
            store,
            shoppers,
        })
    }

    /// Schedules the sale of the whole stock, open from `opens` to `ends`.
    pub async fn schedule(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        (opens, ends): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
        quantity: u32,
    ) -> anyhow::Result<()> {
        let response = http
            .post(format!("{url}/api/v1/flash-sales"))
            .bearer_auth(&self.store.seller_key)
            .json(&json!({
                "sku": self.store.sku, "quantity": quantity, "prices": { "EUR": "4.99" },
                "starts_at": opens, "ends_at": ends, "per_shopper_limit": 1,
            }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.as_u16() != 201 {
            bail!("scheduling a sale answered {status}: {body}");
        }
        self.id = body["id"].as_str().context("sale id")?.to_owned();
        Ok(())
    }
}

/// Tallies the visits: outcomes, retries, and the orders the API acknowledged.
#[derive(Debug, Default, serde::Serialize)]
pub struct Tally {
    pub shoppers: usize,
    /// Answers of 500 (a fault of the server, never acceptable, faults or not).
    pub server_errors: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub retries: BTreeMap<String, usize>,
    #[serde(skip)]
    pub acknowledged: Vec<Uuid>,
}

impl Tally {
    pub fn add(&mut self, visit: Visit) {
        self.shoppers += 1;
        if visit.outcome.ends_with("internal_error") {
            self.server_errors += 1;
        }
        *self.outcomes.entry(visit.outcome).or_default() += 1;
        for retry in visit.retries {
            *self.retries.entry(retry).or_default() += 1;
        }
        self.acknowledged.extend(visit.order);
    }
}
