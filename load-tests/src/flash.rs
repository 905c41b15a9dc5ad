//! `flash-sale`: a crowd through a flash sale's waiting queue, end to end, across the targets.
//!
//! The scenario sets up its own seller, product, region, sale and guest shoppers through the
//! API (untimed). Shoppers then arrive (all at once, or spread over a ramp), join the queue,
//! follow it over `/ws` (`follow_queue`) — or, beyond `--socket-shoppers`, poll
//! `GET …/queue/me` as clients without a socket do — and buy one unit each when admitted.
//! The sale opens `--lead-secs` after the arrivals begin.
//!
//! It verifies the outcome against the database itself: every order the API acknowledged must
//! be in Postgres as paid (`lost` counts those that are not) and the units sold must not
//! exceed the sale's quantity (`oversold`). With `--compare-naive` the same crowd then buys
//! the same quantity the common way — one transaction per shopper locking the stock row — on
//! the same database, for a side-by-side ratio.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::{
    browse::{percentiles, Percentiles},
    cart::Store,
};

/// Longest one HTTP request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often shoppers without a socket ask for their ticket.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// Pause before retrying a request the server shed (429, 503) or found in progress.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Connections (HTTP and sockets) the setup and the crowd open at once.
const CONNECT_CONCURRENCY: usize = 256;
/// Connections the naive way's application would pool.
const NAIVE_POOL: usize = 32;

/// How shoppers arrive.
#[derive(Debug, Clone, Copy)]
pub enum Arrival {
    AllAtOnce,
    /// Evenly over this long.
    Ramp(Duration),
}

impl std::str::FromStr for Arrival {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.split_once(':') {
            None if raw == "all-at-once" => Ok(Self::AllAtOnce),
            Some(("ramp", secs)) => secs
                .parse()
                .map(|secs| Self::Ramp(Duration::from_secs(secs)))
                .map_err(|_| format!("ramp:<seconds>, not {raw:?}")),
            _ => Err(format!("all-at-once or ramp:<seconds>, not {raw:?}")),
        }
    }
}

impl Arrival {
    fn offset(self, n: usize, of: usize) -> Duration {
        match self {
            Self::AllAtOnce => Duration::ZERO,
            Self::Ramp(over) => over.mul_f64(n as f64 / of.max(1) as f64),
        }
    }
}

pub struct Options {
    pub targets: Vec<String>,
    pub database_url: String,
    pub operator_token: String,
    pub shoppers: usize,
    pub quantity: u32,
    pub arrival: Arrival,
    pub lead: Duration,
    pub socket_shoppers: usize,
    pub sources: Vec<IpAddr>,
    pub requests_in_flight: usize,
    pub compare_naive: bool,
    pub deadline: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub targets: Vec<String>,
    pub arrival: String,
    pub shoppers: usize,
    pub stock: u32,
    pub sold: i64,
    pub oversold: i64,
    pub orders_acknowledged: usize,
    pub orders_in_database: i64,
    pub lost: usize,
    /// From the first arrival to the last shopper's end.
    pub duration_s: f64,
    /// Orders acknowledged per second of selling (sale open to sold out, or to the end).
    pub orders_per_sec: f64,
    /// From the sale's opening to its selling out, as the server recorded them.
    pub time_to_sell_out_s: Option<f64>,
    /// How each shopper's visit ended.
    pub outcomes: BTreeMap<String, usize>,
    pub latency_ms: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub naive: Option<NaiveRun>,
    /// Orders per second, queue ÷ naive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct NaiveRun {
    pub way: &'static str,
    pub shoppers: usize,
    pub stock: u32,
    pub sold: i64,
    pub oversold: i64,
    pub duration_s: f64,
    pub orders_per_sec: f64,
    pub latency_ms: Percentiles,
    pub errors: BTreeMap<String, usize>,
}

/// Running counts for the progress line.
#[derive(Default)]
struct Progress {
    joined: AtomicUsize,
    admitted: AtomicUsize,
    purchased: AtomicUsize,
    done: AtomicUsize,
}

/// What one shopper's visit came to.
#[derive(Default)]
struct Visit {
    samples: Vec<(&'static str, f64)>,
    outcome: String,
    order: Option<String>,
    errors: Vec<String>,
}

struct Shopper {
    target: String,
    token: String,
}

struct Crowd {
    http: reqwest::Client,
    sale: String,
    region: &'static str,
    /// Joins in flight; the crowd's arrival queues here.
    join_slots: Semaphore,
    /// Polls and purchases in flight, apart from the joins: a shopper who was admitted does
    /// not wait behind the crowd still arriving (their browsers do not share a queue either).
    slots: Semaphore,
    /// Socket handshakes in flight.
    connect_slots: Semaphore,
    progress: Progress,
    deadline: Instant,
}

impl Crowd {
    /// The crowd for sale `sale` in the store's region; shoppers give up `options.deadline`
    /// after the sale's opening.
    fn new(http: reqwest::Client, sale: String, store: &Store, options: &Options) -> Self {
        Self {
            http,
            sale,
            region: store.region,
            join_slots: Semaphore::new(options.requests_in_flight.max(1)),
            slots: Semaphore::new(options.requests_in_flight.max(1)),
            connect_slots: Semaphore::new(CONNECT_CONCURRENCY),
            progress: Progress::default(),
            deadline: Instant::now() + options.lead + options.deadline,
        }
    }

    /// Sends a request, retrying while the server sheds load or the purchase is in progress.
    async fn send(
        &self,
        visit: &mut Visit,
        step: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Option<(u16, Value)> {
        loop {
            let answer = {
                let slots = if step == "join" {
                    &self.join_slots
                } else {
                    &self.slots
                };
                let Ok(_slot) = slots.acquire().await else {
                    return None;
                };
                let sent = Instant::now();
                let answer = request().send().await;
                if let Ok(response) = answer {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    visit
                        .samples
                        .push((step, sent.elapsed().as_secs_f64() * 1e3));
                    Ok((status, body))
                } else {
                    Err(answer.err().map_or("?", |e| {
                        if e.is_timeout() {
                            "timeout"
                        } else {
                            "connect"
                        }
                    }))
                }
            };
            match answer {
                Ok((status, body))
                    if status == 429
                        || status == 503
                        || body["error"]["code"] == "idempotency_key_in_progress" =>
                {
                    visit.errors.push(format!("{step}_{status}_retried"));
                }
                Ok(answer) => return Some(answer),
                Err(why) => visit.errors.push(format!("{step}_{why}")),
            }
            if Instant::now() > self.deadline {
                return None;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    async fn purchase(&self, visit: &mut Visit, shopper: &Shopper, admission: &str) {
        let url = format!(
            "{}/api/v1/flash-sales/{}/purchase",
            shopper.target, self.sale
        );
        let body = purchase_body(admission, self.region);
        let answer = self
            .send(visit, "purchase", || {
                self.http
                    .post(&url)
                    .bearer_auth(&shopper.token)
                    .header("Idempotency-Key", "flash-sale-load-test")
                    .json(&body)
            })
            .await;
        visit.outcome = match answer {
            Some((201, order)) => {
                self.progress.purchased.fetch_add(1, Ordering::Relaxed);
                visit.order = order["id"].as_str().map(str::to_owned);
                "purchased".into()
            }
            Some((_, error)) => {
                let code = error["error"]["code"].as_str().unwrap_or("unknown");
                if code != "sold_out" {
                    visit.errors.push(format!("purchase_{code}"));
                }
                code.to_owned()
            }
            None => "gave_up".into(),
        };
    }

    /// Joins, waits (over a socket, or polling), and buys when admitted.
    async fn visit(&self, shopper: Shopper, socket: Option<awc::Client>) -> Visit {
        let mut visit = Visit::default();
        let mut socket = match socket {
            Some(client) => {
                let url = format!("{}/ws", shopper.target.replacen("http", "ws", 1));
                let connected = {
                    let Ok(_slot) = self.connect_slots.acquire().await else {
                        return visit;
                    };
                    client.ws(url).bearer_auth(&shopper.token).connect().await
                };
                match connected {
                    Ok((_, socket)) => Some(socket),
                    Err(_) => {
                        visit.errors.push("socket_connect".into());
                        None
                    }
                }
            }
            None => None,
        };
        let join_url = format!("{}/api/v1/flash-sales/{}/queue", shopper.target, self.sale);
        let joined = self
            .send(&mut visit, "join", || {
                self.http.post(&join_url).bearer_auth(&shopper.token)
            })
            .await;
        match joined {
            Some((200 | 201, _)) => {}
            Some((_, error)) => {
                visit.outcome = error["error"]["code"]
                    .as_str()
                    .unwrap_or("join_failed")
                    .to_owned();
                return visit;
            }
            None => {
                visit.outcome = "gave_up".into();
                return visit;
            }
        }
        self.progress.joined.fetch_add(1, Ordering::Relaxed);
        let waiting_since = Instant::now();

        if let Some(live) = socket.as_mut() {
            let follow = json!({ "type": "follow_queue", "sale_id": self.sale }).to_string();
            if live.send(ws::Message::Text(follow.into())).await.is_err() {
                socket = None;
            }
        }
        let admission = match socket {
            Some(mut live) => {
                let heard = self.listen(&mut live).await;
                let _ = live.close().await;
                match heard {
                    Some(heard) => heard,
                    // The socket dropped: carry on as a client without one.
                    None => self.poll(&mut visit, &shopper).await,
                }
            }
            None => self.poll(&mut visit, &shopper).await,
        };
        match admission {
            Ok(token) => {
                self.progress.admitted.fetch_add(1, Ordering::Relaxed);
                visit.samples.push((
                    "admission_wait",
                    waiting_since.elapsed().as_secs_f64() * 1e3,
                ));
                self.purchase(&mut visit, &shopper, &token).await;
            }
            Err(ending) => visit.outcome = ending,
        }
        visit
    }

    /// Reads the queue's messages until admission (the token) or the end (`Err(state)`);
    /// `None` if the socket closed first.
    async fn listen(
        &self,
        socket: &mut actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    ) -> Option<Result<String, String>> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            let frame = match tokio::time::timeout(left, socket.next()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(_) => return None,
                Err(_) => return Some(Err("gave_up".into())),
            };
            match frame {
                ws::Frame::Ping(payload) => {
                    let _ = socket.send(ws::Message::Pong(payload)).await;
                }
                ws::Frame::Text(bytes) => {
                    // Position updates are most frames and need no answer: skipped unparsed
                    // (the client shares the servers' two cores).
                    if bytes.windows(19).any(|w| w == b"\"state\":\"waiting\"") {
                        continue;
                    }
                    let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
                        continue;
                    };
                    if message["type"] != "queue" {
                        continue;
                    }
                    match message["state"].as_str() {
                        Some("admitted") => {
                            return message["admission_token"]
                                .as_str()
                                .map(|token| Ok(token.to_owned()));
                        }
                        Some("waiting") | None => {}
                        Some(other) => return Some(Err(other.to_owned())),
                    }
                }
                ws::Frame::Close(_) => return None,
                _ => {}
            }
        }
    }

    async fn poll(&self, visit: &mut Visit, shopper: &Shopper) -> Result<String, String> {
        let url = format!(
            "{}/api/v1/flash-sales/{}/queue/me",
            shopper.target, self.sale
        );
        // Spread the polls of a crowd that arrived together.
        tokio::time::sleep(POLL_EVERY.mul_f64(rand::random::<f64>())).await;
        loop {
            let answer = self
                .send(visit, "poll", || {
                    self.http.get(&url).bearer_auth(&shopper.token)
                })
                .await;
            match answer {
                Some((200, status)) => match status["state"].as_str() {
                    Some("admitted") => {
                        return status["admission_token"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| "no_token".to_owned());
                    }
                    Some("waiting") => {}
                    Some(other) => return Err(other.to_owned()),
                    None => return Err("unreadable".into()),
                },
                Some((status, _)) => return Err(format!("poll_{status}")),
                None => return Err("gave_up".into()),
            }
            if Instant::now() > self.deadline {
                return Err("gave_up".into());
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// A purchase of one unit with `admission`, shipped in the load-test store's `region`, paid
/// with the sandbox's approved card.
pub fn purchase_body(admission: &str, region: &str) -> Value {
    json!({
        "admission_token": admission, "quantity": 1, "region": region,
        "shipping": {
            "address": { "name": "Load Tester", "line1": "1 Test Street",
                         "city": "Testville", "postal_code": "12345", "country": "ZZ" },
            "option": "flat"
        },
        "email": "flash-shopper@load.example",
        "payment": { "card_number": "4242424242424242" }
    })
}

async fn guests(
    http: &reqwest::Client,
    targets: &[String],
    count: usize,
) -> anyhow::Result<Vec<Shopper>> {
    let made: Vec<anyhow::Result<Shopper>> = futures_util::stream::iter(0..count)
        .map(|n| {
            let target = targets[n % targets.len()].clone();
            async move {
                let body: Value = http
                    .post(format!("{target}/api/v1/shoppers"))
                    .json(&json!({ "guest": true }))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let token = body["token"].as_str().context("token")?.to_owned();
                Ok(Shopper { target, token })
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    made.into_iter().collect()
}

/// Runs the scenario: sets up the store, the guests and the sale (untimed), sends the crowd
/// through it, and checks the outcome in Postgres; then the common way, if asked.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(options.requests_in_flight)
        .build()?;
    let targets = &options.targets;
    let store = Store::set_up(
        &http,
        targets,
        &options.operator_token,
        options.quantity * 2,
    )
    .await?;
    eprintln!("setting up {} guest shoppers…", options.shoppers);
    let crowd_members = guests(&http, targets, options.shoppers).await?;
    let sale_id = schedule_sale(&http, &store, &options).await?;

    let socket_clients = socket_clients(&options.sources);
    let crowd = Arc::new(Crowd::new(http.clone(), sale_id.clone(), &store, &options));
    let reporter = report_progress(&crowd, options.shoppers);
    let started = Instant::now();
    let tally = send_crowd(&crowd, crowd_members, &socket_clients, &options).await?;
    let elapsed = started.elapsed().as_secs_f64();
    reporter.abort();

    let recorded = Recorded::read(&options.database_url, &sale_id, &tally.acknowledged).await?;
    let mut report = Report::new(&options, tally, recorded, elapsed);
    if options.compare_naive {
        eprintln!("the same crowd, the common way (a row lock per order)…");
        let naive = naive(&options).await?;
        report.ratio = Some(report.orders_per_sec / naive.orders_per_sec.max(1e-9));
        report.naive = Some(naive);
    }
    Ok(report)
}

/// Schedules the sale of the store's SKU, opening `options.lead` from now; answers its id.
async fn schedule_sale(
    http: &reqwest::Client,
    store: &Store,
    options: &Options,
) -> anyhow::Result<String> {
    let first = options
        .targets
        .first()
        .context("--target needs at least one URL")?;
    let now = chrono::Utc::now();
    let starts_at = now + chrono::Duration::from_std(options.lead)?;
    let sale: Value = {
        let response = http
            .post(format!("{first}/api/v1/flash-sales"))
            .bearer_auth(&store.seller_key)
            .json(&json!({
                "sku": store.sku, "quantity": options.quantity, "prices": { "EUR": "4.99" },
                "starts_at": starts_at, "ends_at": starts_at + chrono::Duration::hours(1),
                "per_shopper_limit": 1,
            }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.as_u16() != 201 {
            bail!("scheduling the sale answered {status}: {body}");
        }
        body
    };
    let sale_id = sale["id"].as_str().context("sale id")?.to_owned();
    eprintln!(
        "sale {sale_id}: {} units, opens in {} s; {} shoppers arriving ({:?}), {} over sockets",
        options.quantity,
        options.lead.as_secs(),
        options.shoppers,
        options.arrival,
        options.socket_shoppers.min(options.shoppers)
    );
    Ok(sale_id)
}

/// One WebSocket client per loopback source address (each has its own ports).
fn socket_clients(sources: &[IpAddr]) -> Vec<awc::Client> {
    sources
        .iter()
        .map(|ip| {
            awc::Client::builder()
                .connector(awc::Connector::new().limit(0).local_address(*ip))
                .timeout(REQUEST_TIMEOUT)
                .finish()
        })
        .collect()
}

/// Prints the crowd's progress every two seconds, until aborted.
fn report_progress(crowd: &Arc<Crowd>, total: usize) -> tokio::task::JoinHandle<()> {
    let crowd = Arc::clone(crowd);
    actix::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let p = &crowd.progress;
            eprintln!(
                "joined {} admitted {} purchased {} done {}/{total}",
                p.joined.load(Ordering::Relaxed),
                p.admitted.load(Ordering::Relaxed),
                p.purchased.load(Ordering::Relaxed),
                p.done.load(Ordering::Relaxed)
            );
        }
    })
}

/// Sends every shopper on their visit at their arrival time (the first
/// `options.socket_shoppers` with a socket, spread over the clients), and sums the visits up.
async fn send_crowd(
    crowd: &Arc<Crowd>,
    crowd_members: Vec<Shopper>,
    socket_clients: &[awc::Client],
    options: &Options,
) -> anyhow::Result<Tally> {
    let total = crowd_members.len();
    let visits = crowd_members.into_iter().enumerate().map(|(n, shopper)| {
        let crowd = Arc::clone(crowd);
        let socket = (n < options.socket_shoppers && !socket_clients.is_empty())
            .then(|| socket_clients[n % socket_clients.len()].clone());
        let arrive = options.arrival.offset(n, total);
        actix::spawn(async move {
            tokio::time::sleep(arrive).await;
            let visit = crowd.visit(shopper, socket).await;
            crowd.progress.done.fetch_add(1, Ordering::Relaxed);
            visit
        })
    });
    let mut tally = Tally::default();
    for visit in futures_util::future::join_all(visits).await {
        tally.add(visit.context("a shopper task failed")?);
    }
    Ok(tally)
}

/// The crowd's visits, summed up.
#[derive(Default)]
struct Tally {
    by_step: BTreeMap<String, Vec<f64>>,
    errors: BTreeMap<String, usize>,
    outcomes: BTreeMap<String, usize>,
    /// The ids of the orders the API acknowledged.
    acknowledged: Vec<String>,
}

impl Tally {
    fn add(&mut self, visit: Visit) {
        for (step, ms) in visit.samples {
            self.by_step.entry(step.to_owned()).or_default().push(ms);
        }
        for error in visit.errors {
            *self.errors.entry(error).or_default() += 1;
        }
        *self.outcomes.entry(visit.outcome).or_default() += 1;
        self.acknowledged.extend(visit.order);
    }
}

/// The sale's outcome as Postgres recorded it.
struct Recorded {
    /// Units in paid orders, and those orders.
    sold: i64,
    in_database: i64,
    /// How many of the acknowledged orders are in Postgres as paid.
    found: i64,
    /// From the sale's opening to its selling out, if it sold out.
    sell_out: Option<f64>,
}

impl Recorded {
    /// Reads the outcome of sale `sale_id` on its own connection.
    async fn read(
        database_url: &str,
        sale_id: &str,
        acknowledged: &[String],
    ) -> anyhow::Result<Self> {
        let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let sale_uuid: uuid::Uuid = sale_id.parse()?;
        let row = db
            .query_one(
                "SELECT coalesce(sum(h.quantity), 0)::int8, count(DISTINCT o.id)
             FROM stock_holds h JOIN orders o ON o.id = h.order_id AND o.status = 'paid'
             WHERE h.sale_id = $1 AND h.released_at IS NULL",
                &[&sale_uuid],
            )
            .await?;
        let (sold, in_database): (i64, i64) = (row.get(0), row.get(1));
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
        let sell_out: Option<f64> = db
            .query_one(
                "SELECT extract(epoch FROM finished_at - opened_at)::float8 FROM flash_sales
             WHERE id = $1 AND state = 'sold_out'",
                &[&sale_uuid],
            )
            .await?
            .get(0);
        Ok(Self {
            sold,
            in_database,
            found,
            sell_out,
        })
    }
}

impl Report {
    /// The report of a run that took `elapsed` seconds, without the common way's figures.
    fn new(options: &Options, tally: Tally, recorded: Recorded, elapsed: f64) -> Self {
        let Recorded {
            sold,
            in_database,
            found,
            sell_out,
        } = recorded;
        let acknowledged = tally.acknowledged;
        let selling = sell_out.unwrap_or(elapsed).max(1e-3);
        Self {
            scenario: "flash-sale",
            targets: options.targets.clone(),
            arrival: format!("{:?}", options.arrival),
            shoppers: options.shoppers,
            stock: options.quantity,
            sold,
            oversold: (sold - i64::from(options.quantity)).max(0),
            orders_acknowledged: acknowledged.len(),
            orders_in_database: in_database,
            lost: acknowledged.len() - usize::try_from(found).unwrap_or(0),
            duration_s: elapsed,
            orders_per_sec: acknowledged.len() as f64 / selling,
            time_to_sell_out_s: sell_out,
            outcomes: tally.outcomes,
            latency_ms: tally
                .by_step
                .into_iter()
                .map(|(step, samples)| (step, percentiles(samples)))
                .collect(),
            errors: tally.errors,
            naive: None,
            ratio: None,
        }
    }
}

/// The common way: every shopper runs one transaction that locks the stock row, checks it,
/// writes the order and counts the sale — the same crowd and arrival, straight on Postgres
/// (no HTTP, no payment: the common way's best case).
async fn naive(options: &Options) -> anyhow::Result<NaiveRun> {
    let pool = crate::reserve::pool(&options.database_url, NAIVE_POOL)?;
    let fixture = Arc::new(
        crate::reserve::hot_sku(&pool, i32::try_from(options.quantity).unwrap_or(i32::MAX)).await?,
    );
    let started = Instant::now();
    let total = options.shoppers;
    let buyers = (0..total).map(|n| {
        let (pool, fixture) = (pool.clone(), Arc::clone(&fixture));
        let arrive = options.arrival.offset(n, total);
        actix::spawn(async move {
            tokio::time::sleep(arrive).await;
            let sent = Instant::now();
            let outcome = crate::reserve::reserve_with_row_lock(&pool, &fixture, true).await;
            (
                outcome,
                sent.elapsed().as_secs_f64() * 1e3,
                started.elapsed(),
            )
        })
    });
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_order = Duration::ZERO;
    for buyer in futures_util::future::join_all(buyers).await {
        let (outcome, ms, at) = buyer.context("a buyer task failed")?;
        match outcome {
            Ok(()) => {
                latencies.push(ms);
                last_order = last_order.max(at);
            }
            Err(error) if error == "insufficient stock" => {}
            Err(error) => *errors.entry(error).or_default() += 1,
        }
    }
    let client = pool.get().await?;
    let sold: i64 = client
        .query_one(
            "SELECT sold::int8 FROM variants WHERE id = $1",
            &[&fixture.variant],
        )
        .await?
        .get(0);
    let orders = latencies.len();
    Ok(NaiveRun {
        way: "row lock per order",
        shoppers: total,
        stock: options.quantity,
        sold,
        oversold: (sold - i64::from(options.quantity)).max(0),
        duration_s: started.elapsed().as_secs_f64(),
        orders_per_sec: orders as f64 / last_order.as_secs_f64().max(1e-3),
        latency_ms: percentiles(latencies),
        errors,
    })
}
