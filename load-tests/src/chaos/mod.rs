//! `chaos`: the fault-injection suite. It starts a cluster of its own — a Postgres, a Redis and
//! several `agora serve` processes on loopback ports — sends rounds of checkout races and flash
//! sales through it, and meanwhile breaks it (see [`faults`]): SIGKILLs of random servers,
//! Postgres and Redis restarts, a `FLUSHALL`, gateway stalls. When the crowds are done and the
//! faults stop, it waits for the cluster to settle (the reconciler, the hold sweeper, the sales'
//! ends) and verifies Agora's books and the gateway's (see [`checks`]): nothing oversold, no
//! acknowledged order missing, no charge without an order, no charge twice, no hold stuck past
//! its expiry. The JSON report lists every fault injected and every count.
//!
//! Bounded in time: the fault window, then at most `--settle-secs` of settling.

mod checks;
mod cluster;
mod faults;
mod shoppers;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;

use cluster::{Postgres, Redis, Servers, OPERATOR_TOKEN};
use shoppers::{Crowd, Sale, Tally};

use crate::cart::{Shopper, Store};

/// Settings of the cluster's servers: short payment timeouts and hold expiry, fast
/// reconciliation and queue ticks, so that a short run sees every recovery path finish.
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("AGORA__HTTP__WORKERS", "1"),
    ("AGORA__HTTP__SHUTDOWN_TIMEOUT_SECS", "2"),
    ("AGORA__DATABASE__MAX_CONNECTIONS", "12"),
    ("AGORA__REDIS__PREFIX", "chaos"),
    ("AGORA__OPERATOR__TOKEN", OPERATOR_TOKEN),
    ("AGORA__LOG__LEVEL", "warn,agora::mail::disabled=error"),
    ("AGORA__PAYMENTS__TIMEOUT_MS", "2000"),
    ("AGORA__PAYMENTS__SANDBOX_LATENCY_MS", "20"),
    ("AGORA__PAYMENTS__RECONCILE_INTERVAL_MS", "500"),
    ("AGORA__PAYMENTS__RECONCILE_AFTER_MS", "5000"),
    ("AGORA__INVENTORY__HOLD_TTL_SECS", "15"),
    ("AGORA__FLASH_SALES__QUEUE_TICK_MS", "50"),
    ("AGORA__FLASH_SALES__DIRECTOR_INTERVAL_MS", "100"),
    ("AGORA__FLASH_SALES__LEADER_LEASE_MS", "1000"),
    ("AGORA__FLASH_SALES__ADMISSION_WINDOW_SECS", "10"),
    ("AGORA__FLASH_SALES__POSITION_INTERVAL_MS", "200"),
];
/// The servers' payment timeout (above), which one gateway stall outlasts.
const PAYMENT_TIMEOUT: Duration = Duration::from_millis(2000);
/// How long each shopper keeps trying after its round starts.
const SHOPPER_PATIENCE: Duration = Duration::from_secs(30);
/// Seconds between a flash sale's round start and its opening (shoppers join meanwhile).
const SALE_LEAD: Duration = Duration::from_secs(2);
/// Time given to schedule every sale before the run starts.
const SCHEDULING_ALLOWANCE: Duration = Duration::from_secs(3);
/// How long a flash sale stays open.
const SALE_LENGTH: Duration = Duration::from_secs(20);

pub struct Options {
    pub agora: PathBuf,
    pub servers: usize,
    pub window: Duration,
    pub kills: usize,
    pub rounds: usize,
    pub race_shoppers: usize,
    pub race_stock: u32,
    pub sale_shoppers: usize,
    pub sale_quantity: u32,
    pub settle: Duration,
    pub keep_scratch: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub servers: usize,
    pub window_s: f64,
    pub duration_s: f64,
    pub settled_in_s: f64,
    pub faults: Vec<faults::Injected>,
    pub fault_counts: std::collections::BTreeMap<&'static str, usize>,
    pub race: Tally,
    pub flash_sale: Tally,
    pub checks: checks::Checks,
    /// The scratch directory (servers' logs, Postgres's data) when it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch: Option<PathBuf>,
}

impl Report {
    /// What makes the run a failure: a loss, or fewer faults than asked for.
    pub fn failures(&self, options: &Options) -> Vec<String> {
        let mut failures = Vec::new();
        if self.checks.losses() != 0 {
            failures.push(format!("loss counts not all zero: {:?}", self.checks));
        }
        let server_errors = self.race.server_errors + self.flash_sale.server_errors;
        if server_errors != 0 {
            failures.push(format!("{server_errors} answers of 500 internal_error"));
        }
        let kills = self.fault_counts.get("kill_server").copied().unwrap_or(0);
        if kills < options.kills {
            failures.push(format!("{kills} kills of {} planned", options.kills));
        }
        for fault in self.faults.iter().filter(|f| f.detail.contains("failed")) {
            failures.push(format!("{}: {}", fault.fault, fault.detail));
        }
        failures
    }
}

/// The rounds' stores and shoppers, set up through the API before any fault.
struct Rounds {
    races: Vec<(Store, Vec<Shopper>)>,
    sales: Vec<Sale>,
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let scratch = std::env::temp_dir().join(format!("agora-chaos-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&scratch)?;
    eprintln!("chaos: scratch directory {}", scratch.display());
    let postgres = Postgres::start(&scratch).await?;
    let result = run_on(options, &postgres, &scratch).await;
    postgres.stop().await;
    if result.is_ok() && !options.keep_scratch {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

async fn run_on(
    options: &Options,
    postgres: &Postgres,
    scratch: &std::path::Path,
) -> anyhow::Result<Report> {
    create_database(postgres).await?;
    let database_url = postgres.url("agora");
    let mut redis = Redis::start().await?;
    let mut env: Vec<(String, String)> = SERVER_SETTINGS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.push(("AGORA__DATABASE__URL".into(), database_url.clone()));
    env.push(("AGORA__REDIS__URL".into(), redis.url()));
    let mut servers = Servers::start(options.agora.clone(), env, options.servers, scratch).await?;
    let urls = servers.urls();
    eprintln!("chaos: {} servers at {}", urls.len(), urls.join(", "));

    let rounds = set_up_rounds(options, &urls).await?;
    eprintln!(
        "chaos: {} rounds of a {}-shopper race for {} units and a {}-shopper sale of {}; {} kills over {} s",
        options.rounds,
        options.race_shoppers,
        options.race_stock,
        options.sale_shoppers,
        options.sale_quantity,
        options.kills,
        options.window.as_secs()
    );
    let start = Instant::now();
    let crowd = Crowd::new(urls.clone())?;
    let targets = faults::Targets {
        servers: &mut servers,
        postgres,
        redis: &mut redis,
        database_url: database_url.clone(),
    };
    let ((race, flash_sale), injected) = futures_util::future::join(
        send_rounds(&crowd, rounds, options, start),
        faults::inject(
            targets,
            start,
            options.window,
            options.kills,
            PAYMENT_TIMEOUT,
        ),
    )
    .await;
    let duration_s = start.elapsed().as_secs_f64();
    for n in 0..servers.slots.len() {
        if !servers.slots[n].is_running() {
            servers.restart(n).await?;
        }
    }
    eprintln!("chaos: faults over after {duration_s:.1} s; settling…");
    let acknowledged: Vec<_> = race
        .acknowledged
        .iter()
        .chain(&flash_sale.acknowledged)
        .copied()
        .collect();
    let (checks, settled_in_s) =
        checks::settle_and_check(&database_url, &acknowledged, options.settle).await?;
    servers.stop_all().await;
    let mut fault_counts = std::collections::BTreeMap::new();
    for fault in &injected {
        *fault_counts.entry(fault.fault).or_default() += 1;
    }
    Ok(Report {
        scenario: "chaos",
        servers: options.servers,
        window_s: options.window.as_secs_f64(),
        duration_s,
        settled_in_s,
        faults: injected,
        fault_counts,
        race,
        flash_sale,
        checks,
        scratch: options.keep_scratch.then(|| scratch.to_owned()),
    })
}

async fn create_database(postgres: &Postgres) -> anyhow::Result<()> {
    let (db, connection) =
        tokio_postgres::connect(&postgres.url("postgres"), tokio_postgres::NoTls)
            .await
            .context("connecting to the chaos Postgres")?;
    tokio::spawn(connection);
    db.batch_execute("CREATE DATABASE agora").await?;
    Ok(())
}

/// Round `n` starts `n × window / rounds` after the start.
fn round_start(options: &Options, n: usize) -> Duration {
    options.window / u32::try_from(options.rounds.max(1)).unwrap_or(1)
        * u32::try_from(n).unwrap_or(0)
}

async fn set_up_rounds(options: &Options, urls: &[String]) -> anyhow::Result<Rounds> {
    let http = reqwest::Client::new();
    let mut races = Vec::with_capacity(options.rounds);
    let mut sales = Vec::with_capacity(options.rounds);
    let setting_up = Instant::now();
    for _ in 0..options.rounds {
        let store = Store::set_up(&http, urls, OPERATOR_TOKEN, options.race_stock).await?;
        let people = store
            .shoppers(&http, urls, options.race_shoppers, true)
            .await?;
        races.push((store, people));
        let sale = Sale::set_up(
            &http,
            urls,
            OPERATOR_TOKEN,
            options.sale_quantity,
            options.sale_shoppers,
        )
        .await?;
        sales.push(sale);
    }
    // The run starts once every sale is scheduled; each opens on its round's schedule.
    let run_starts = chrono::Utc::now() + chrono::Duration::from_std(SCHEDULING_ALLOWANCE)?;
    for (n, sale) in sales.iter_mut().enumerate() {
        let opens = run_starts + chrono::Duration::from_std(round_start(options, n) + SALE_LEAD)?;
        let ends = opens + chrono::Duration::from_std(SALE_LENGTH)?;
        sale.schedule(&http, &urls[0], (opens, ends), options.sale_quantity)
            .await?;
    }
    let left = (run_starts - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    eprintln!(
        "chaos: set up in {:.1} s; the run starts in {:.1} s",
        setting_up.elapsed().as_secs_f64(),
        left.as_secs_f64()
    );
    tokio::time::sleep(left).await;
    Ok(Rounds { races, sales })
}

/// Sends every round's crowds, spread over their round so that traffic never stops: race
/// shoppers arrive evenly over 80 % of it, sale shoppers join over its first half. Answers the
/// races' and the sales' tallies.
async fn send_rounds(
    crowd: &Crowd,
    rounds: Rounds,
    options: &Options,
    start: Instant,
) -> (Tally, Tally) {
    let round = round_start(options, 1);
    let arriving = |begins: Instant, spread: Duration, n: usize, of: usize| {
        begins + spread.mul_f64(n as f64 / of.max(1) as f64)
    };
    let mut races = Vec::new();
    let mut sales = Vec::new();
    for (n, ((store, people), sale)) in rounds.races.into_iter().zip(rounds.sales).enumerate() {
        let begins = start + round_start(options, n);
        let count = people.len();
        for (i, shopper) in people.into_iter().enumerate() {
            let (crowd, sku) = (crowd.clone(), store.sku.clone());
            let arrives = arriving(begins, round.mul_f64(0.8), i, count);
            races.push(actix::spawn(async move {
                tokio::time::sleep_until(arrives.into()).await;
                crowd.race(shopper, sku, arrives + SHOPPER_PATIENCE).await
            }));
        }
        let count = sale.shoppers.len();
        for (i, shopper) in sale.shoppers.into_iter().enumerate() {
            let (crowd, id, region) = (crowd.clone(), sale.id.clone(), sale.store.region);
            let arrives = arriving(begins, round.mul_f64(0.5), i, count);
            sales.push(actix::spawn(async move {
                tokio::time::sleep_until(arrives.into()).await;
                crowd
                    .flash(shopper, id, region, arrives + SHOPPER_PATIENCE)
                    .await
            }));
        }
    }
    let mut race = Tally::default();
    for visit in futures_util::future::join_all(races)
        .await
        .into_iter()
        .flatten()
    {
        race.add(visit);
    }
    let mut flash_sale = Tally::default();
    for visit in futures_util::future::join_all(sales)
        .await
        .into_iter()
        .flatten()
    {
        flash_sale.add(visit);
    }
    (race, flash_sale)
}
