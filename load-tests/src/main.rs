//! `agora-load-tests`: load tests and benchmarks against running Agora servers.
//!
//! Scenarios: `seed-catalog` writes a large synthetic catalog into Postgres; `browse` times
//! storefront listings and searches against one or more servers; `reserve-bench` compares
//! reservations (and with `--checkout`, orders) through the actors with the common row-lock
//! way; `cart` churns carts over HTTP; `checkout-race` races a crowd through the HTTP checkout
//! for one SKU and verifies the outcome in Postgres; `ws-bench` holds many WebSockets open and times the
//! fan-out of stock changes; `flash-sale` drives a crowd through a flash sale's waiting queue
//! end to end and verifies it in Postgres (`--compare-naive`: the same crowd the common way).
//! `reco-eval` measures recommendation quality against a popularity baseline and `reco-bench`
//! times the recommendation endpoints. `loopback-floor` times the kernel alone delivering one
//! message to each of N loopback connections (the least a fan-out can take on the machine).
//! `chaos` starts a cluster of its own and runs races and sales through it while killing
//! servers, restarting Postgres and Redis and stalling the gateway, then checks nothing was
//! lost. Each prints a JSON report.

// Scenarios check their outcome in Postgres with plain statements on one-off connections; the
// timed paths use `agora::db::PreparedClient`, as the server does.
#![allow(clippy::disallowed_methods)]

mod browse;
mod cart;
mod chaos;
mod flash;
mod floor;
mod overload;
mod race;
mod reco;
mod reserve;
mod seed;
mod sockets;

use std::{collections::BTreeMap, process::ExitCode};

use browse::Percentiles;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agora-load-tests",
    version,
    about = "Load tests and benchmarks for Agora"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Write a synthetic catalog straight into a migrated Agora database.
    SeedCatalog(SeedCatalogArgs),
    /// Time storefront listings and searches (pages of 50) against running servers.
    Browse(BrowseArgs),
    /// Fault injection: races and sales through a cluster of its own while it kills servers,
    /// restarts Postgres and Redis, flushes Redis and stalls the gateway; then checks that
    /// nothing was oversold, lost, or charged twice.
    Chaos(ChaosArgs),
    /// A server offered several times its capacity (cart changes or checkouts), then its
    /// capacity again: how it sheds, its memory, and how soon it is back to full throughput.
    Overload(OverloadArgs),
    /// Cart churn: shoppers add and remove a unit of one hot SKU at a fixed total rate.
    Cart(CartArgs),
    /// A crowd racing for one hot SKU through the HTTP checkout; verified against Postgres.
    CheckoutRace(CheckoutRaceArgs),
    /// A crowd through a flash sale: join the queue, wait (over sockets), be admitted, buy;
    /// verified against Postgres.
    FlashSale(FlashSaleArgs),
    /// Recommendation quality on generated bundles: precision@10 and recall@10 of "for you"
    /// against a popularity baseline (replaces the recommender tables of a scratch database).
    RecoEval(RecoEvalArgs),
    /// Time "bought together" and "for you" against a server on a seeded catalog (replaces
    /// the database's recommender tables with generated bundles over its products).
    RecoBench(RecoBenchArgs),
    /// Reserve one hot SKU at a fixed rate through the inventory shards, then the common way.
    ReserveBench(ReserveBenchArgs),
    /// Hold many WebSockets open on one server and time stock fan-out to the subscribed ones.
    WsBench(WsBenchArgs),
    /// One 60-byte message to each of N loopback TCP connections, with nothing but the kernel in
    /// the way: the floor under `ws-bench`'s fan-out on this machine.
    LoopbackFloor(LoopbackFloorArgs),
}

fn main() -> ExitCode {
    let scenario = Cli::parse().scenario;
    // An actix system: the inventory shards are actors; the other scenarios only need its
    // Tokio runtime.
    match actix::System::new().block_on(run(scenario)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agora-load-tests: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario the command line names. Each prints a human summary on stderr and its
/// JSON report (see [`publish`]), and only then fails if its outcome is wrong.
async fn run(scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::SeedCatalog(args) => args.run().await,
        Scenario::Browse(args) => args.run().await,
        Scenario::Chaos(args) => args.run().await,
        Scenario::Cart(args) => args.run().await,
        Scenario::Overload(args) => args.run().await,
        Scenario::CheckoutRace(args) => args.run().await,
        Scenario::FlashSale(args) => args.run().await,
        Scenario::RecoEval(args) => args.run().await,
        Scenario::RecoBench(args) => args.run().await,
        Scenario::ReserveBench(args) => args.run().await,
        Scenario::WsBench(args) => args.run().await,
        Scenario::LoopbackFloor(args) => args.run().await,
    }
}

/// The options of `seed-catalog`.
#[derive(Debug, clap::Args)]
struct SeedCatalogArgs {
    /// Postgres URL of the (migrated) Agora database to fill.
    #[arg(long)]
    database_url: String,
    /// Variants to write (four per product).
    #[arg(long, default_value_t = 1_000_000)]
    variants: u64,
    /// Add to a database that already holds products.
    #[arg(long)]
    force: bool,
}

impl SeedCatalogArgs {
    /// Writes the synthetic catalog.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            database_url,
            variants,
            force,
        } = self;
        seed::run(&database_url, variants, force).await
    }
}

/// The options of `browse`.
#[derive(Debug, clap::Args)]
struct BrowseArgs {
    /// Comma-separated base URLs of the Agora processes under test.
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// The servers' database, to pick sellers to filter by.
    #[arg(long)]
    database_url: String,
    /// Requests to send in all.
    #[arg(long, default_value_t = 4000)]
    requests: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Share of requests that also fetch the next page through the cursor.
    #[arg(long, default_value_t = 0.2)]
    deeper_pages: f64,
    /// Fetch the storefront's HTML pages (`/?…`, the browser's listing and search) instead of
    /// the JSON API.
    #[arg(long)]
    pages: bool,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl BrowseArgs {
    /// Times listings and searches against the targets; fails if any request failed.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            target,
            database_url,
            requests,
            connections,
            deeper_pages,
            pages,
            report,
        } = self;
        let sellers = browse::seller_ids(&database_url).await?;
        let read = if pages {
            browse::Read::Pages
        } else {
            browse::Read::Api
        };
        let result =
            browse::run(target, sellers, requests, connections, deeper_pages, read).await?;
        print_latencies("request (ms)", &result.latency_ms);
        eprintln!(
            "{} requests in {:.1} s ({:.0}/s), errors: {:?}",
            result.requests, result.duration_s, result.requests_per_sec, result.errors
        );
        publish(&result, report.as_deref())?;
        if !result.errors.is_empty() {
            anyhow::bail!("{} kinds of errors", result.errors.len());
        }
        Ok(())
    }
}

/// The options of `cart`.
#[derive(Debug, clap::Args)]
struct CartArgs {
    /// Comma-separated base URLs of the Agora processes under test.
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// The servers' database, to check held stock against the carts at the end.
    #[arg(long)]
    database_url: String,
    /// The servers' `operator.token` (the scenario creates its region).
    #[arg(long, env = "AGORA__OPERATOR__TOKEN")]
    operator_token: String,
    /// Shoppers, each with one cart.
    #[arg(long, default_value_t = 200)]
    shoppers: usize,
    /// Cart operations per second, over all shoppers.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds the churn runs.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl CartArgs {
    /// Churns the carts; fails if the stock held in Postgres differs from what the carts hold.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            target,
            database_url,
            operator_token,
            shoppers,
            rate,
            duration_secs,
            report,
        } = self;
        let result = cart::run(
            target,
            &database_url,
            &operator_token,
            shoppers,
            rate,
            std::time::Duration::from_secs(duration_secs),
        )
        .await?;
        print_latencies("step (ms)", &result.latency_ms);
        eprintln!(
            "{} operations in {:.1} s ({:.0}/s), errors: {:?}; units in carts {}, held in Postgres {}",
            result.operations, result.duration_s, result.operations_per_sec, result.errors,
            result.units_in_carts, result.units_held_in_database
        );
        publish(&result, report.as_deref())?;
        if result.units_in_carts != result.units_held_in_database {
            anyhow::bail!("held stock does not match the carts");
        }
        Ok(())
    }
}

/// The options of `chaos`.
#[derive(Debug, clap::Args)]
struct ChaosArgs {
    /// The `agora` binary to run the cluster's servers with.
    #[arg(long)]
    agora: std::path::PathBuf,
    /// `agora serve` processes in the cluster.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Seconds during which rounds start and faults are injected.
    #[arg(long, default_value_t = 90)]
    window_secs: u64,
    /// Servers killed with SIGKILL during the window (each restarted after a moment).
    #[arg(long, default_value_t = 24)]
    kills: usize,
    /// Rounds (a checkout race and a flash sale each), spread over the window.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Shoppers per round's checkout race, and the units they race for.
    #[arg(long, default_value_t = 150)]
    race_shoppers: usize,
    #[arg(long, default_value_t = 50)]
    race_stock: u32,
    /// Shoppers per round's flash sale, and the units it sells.
    #[arg(long, default_value_t = 100)]
    sale_shoppers: usize,
    #[arg(long, default_value_t = 30)]
    sale_quantity: u32,
    /// Longest wait, after the faults, for the cluster to settle before the checks count.
    #[arg(long, default_value_t = 90)]
    settle_secs: u64,
    /// Keep the scratch directory (servers' logs, Postgres's data) after a passing run.
    #[arg(long)]
    keep_scratch: bool,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl ChaosArgs {
    /// Runs the suite; fails on any loss, or if fewer faults than asked for were injected.
    async fn run(self) -> anyhow::Result<()> {
        let options = chaos::Options {
            agora: self.agora,
            servers: self.servers.max(2),
            window: std::time::Duration::from_secs(self.window_secs),
            kills: self.kills,
            rounds: self.rounds.max(1),
            race_shoppers: self.race_shoppers,
            race_stock: self.race_stock,
            sale_shoppers: self.sale_shoppers,
            sale_quantity: self.sale_quantity,
            settle: std::time::Duration::from_secs(self.settle_secs),
            keep_scratch: self.keep_scratch,
        };
        let report = chaos::run(&options).await?;
        eprintln!(
            "chaos: {:?} faults; race {:?}; sale {:?}; checks {:?}",
            report.fault_counts, report.race.outcomes, report.flash_sale.outcomes, report.checks
        );
        publish(&report, self.report.as_deref())?;
        let failures = report.failures(&options);
        if !failures.is_empty() {
            anyhow::bail!("chaos: {}", failures.join("; "));
        }
        Ok(())
    }
}

/// The options of `overload`.
#[derive(Debug, clap::Args)]
struct OverloadArgs {
    /// Base URL of the Agora process under test.
    #[arg(long)]
    target: String,
    /// Its process id, to sample its resident memory.
    #[arg(long)]
    server_pid: u32,
    /// The servers' `operator.token` (the scenario creates its region).
    #[arg(long, env = "AGORA__OPERATOR__TOKEN")]
    operator_token: String,
    /// What each operation is.
    #[arg(long, value_enum, default_value = "cart")]
    operation: overload::Operation,
    /// Operations per second offered before and after the overload: the server's capacity.
    #[arg(long)]
    rate: u32,
    /// How many times `--rate` the overload offers.
    #[arg(long, default_value_t = 3)]
    multiple: u32,
    /// Seconds of each phase (before, overload, after).
    #[arg(long, default_value_t = 10)]
    phase_secs: u64,
    /// Shoppers (the most operations the client has in flight at once).
    #[arg(long, default_value_t = 2000)]
    shoppers: usize,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl OverloadArgs {
    async fn run(self) -> anyhow::Result<()> {
        let result = overload::run(overload::Options {
            target: self.target,
            operator_token: self.operator_token,
            server_pid: self.server_pid,
            operation: self.operation,
            rate: self.rate,
            multiple: self.multiple,
            phase: std::time::Duration::from_secs(self.phase_secs),
            shoppers: self.shoppers,
        })
        .await?;
        for phase in &result.phases {
            eprintln!(
                "{:>8}: offered {:.0}/s, served {:.0}/s (p99 {:.1} ms), shed {:.0}/s (p99 {:.1} ms), not started {}, max RSS {:.0} MiB, errors {:?}",
                phase.name,
                phase.offered_per_sec,
                phase.served_per_sec,
                phase.served_ms.p99,
                phase.shed_per_sec,
                phase.shed_ms.p99,
                phase.not_started,
                phase.max_resident_mib,
                phase.errors
            );
        }
        eprintln!("recovered after {:?} s", result.recovered_after_s);
        publish(&result, self.report.as_deref())
    }
}

/// The options of `checkout-race`.
#[derive(Debug, clap::Args)]
struct CheckoutRaceArgs {
    /// Comma-separated base URLs of the Agora processes under test.
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// The servers' database, to verify orders and units sold.
    #[arg(long)]
    database_url: String,
    /// The servers' `operator.token` (the scenario creates its region).
    #[arg(long, env = "AGORA__OPERATOR__TOKEN")]
    operator_token: String,
    /// Shoppers, each trying to buy one unit.
    #[arg(long, default_value_t = 2000)]
    shoppers: usize,
    /// Units of the SKU.
    #[arg(long, default_value_t = 500)]
    stock: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl CheckoutRaceArgs {
    /// Races the crowd through the checkout; fails on an oversold unit or a lost order.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            target,
            database_url,
            operator_token,
            shoppers,
            stock,
            concurrency,
            report,
        } = self;
        let result = race::run(
            target,
            &database_url,
            &operator_token,
            shoppers,
            stock,
            concurrency,
        )
        .await?;
        print_latencies("step (ms)", &result.latency_ms);
        eprintln!(
            "sold {} of {} (oversold {}), orders acknowledged {}, in the database {}, lost {}; {:.1} s, {:.0} orders/s; errors: {:?}",
            result.sold, result.stock, result.oversold, result.orders_acknowledged,
            result.orders_in_database, result.lost, result.duration_s, result.orders_per_sec,
            result.errors
        );
        publish(&result, report.as_deref())?;
        if result.oversold > 0 || result.lost > 0 {
            anyhow::bail!("oversold or lost orders");
        }
        Ok(())
    }
}

/// The options of `flash-sale`.
#[derive(Debug, clap::Args)]
struct FlashSaleArgs {
    /// Comma-separated base URLs of the Agora processes under test.
    #[arg(long, value_delimiter = ',', required = true)]
    target: Vec<String>,
    /// The servers' database, to verify orders and units sold.
    #[arg(long)]
    database_url: String,
    /// The servers' `operator.token` (the scenario creates its region).
    #[arg(long, env = "AGORA__OPERATOR__TOKEN")]
    operator_token: String,
    /// Shoppers, each trying to buy one unit.
    #[arg(long, default_value_t = 20_000)]
    shoppers: usize,
    /// Units on sale.
    #[arg(long, default_value_t = 1_000)]
    quantity: u32,
    /// `all-at-once`, or `ramp:<seconds>` to spread the arrivals.
    #[arg(long, default_value = "all-at-once")]
    arrival: flash::Arrival,
    /// Seconds from the first arrival to the sale's opening.
    #[arg(long, default_value_t = 5)]
    lead_secs: u64,
    /// How many shoppers follow the queue over a WebSocket; the rest poll `queue/me`
    /// (this process may hold ~20,000 descriptors in all).
    #[arg(long, default_value_t = 15_000)]
    socket_shoppers: usize,
    /// Comma-separated loopback source addresses for the sockets.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    sources: Vec<std::net::IpAddr>,
    /// Joins in flight at once (and as many polls and purchases besides).
    #[arg(long, default_value_t = 512)]
    requests_in_flight: usize,
    /// Seconds after the opening before a shopper still waiting gives up.
    #[arg(long, default_value_t = 300)]
    deadline_secs: u64,
    /// Then run the same crowd through the common row-lock checkout for a ratio.
    #[arg(long)]
    compare_naive: bool,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl FlashSaleArgs {
    /// Drives the crowd through the sale (then the common way, if asked for a ratio); fails on
    /// an oversold unit or a lost order.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            target,
            database_url,
            operator_token,
            shoppers,
            quantity,
            arrival,
            lead_secs,
            socket_shoppers,
            sources,
            requests_in_flight,
            deadline_secs,
            compare_naive,
            report,
        } = self;
        let result = flash::run(flash::Options {
            targets: target,
            database_url,
            operator_token,
            shoppers,
            quantity,
            arrival,
            lead: std::time::Duration::from_secs(lead_secs),
            socket_shoppers,
            sources,
            requests_in_flight,
            compare_naive,
            deadline: std::time::Duration::from_secs(deadline_secs),
        })
        .await?;
        print_latencies("step (ms)", &result.latency_ms);
        eprintln!(
            "sold {} of {} (oversold {}), orders acknowledged {}, in the database {}, lost {}; sold out in {} s, {:.0} orders/s; run {:.1} s",
            result.sold, result.stock, result.oversold, result.orders_acknowledged,
            result.orders_in_database, result.lost,
            result.time_to_sell_out_s.map_or("-".into(), |s| format!("{s:.2}")),
            result.orders_per_sec, result.duration_s
        );
        eprintln!(
            "outcomes: {:?}; errors: {:?}",
            result.outcomes, result.errors
        );
        if let (Some(naive), Some(ratio)) = (&result.naive, result.ratio) {
            eprintln!(
                "common way: sold {} (oversold {}), {:.0} orders/s, p99 {:.2} ms; ratio {ratio:.2}×",
                naive.sold, naive.oversold, naive.orders_per_sec, naive.latency_ms.p99
            );
        }
        publish(&result, report.as_deref())?;
        if result.oversold > 0 || result.lost > 0 {
            anyhow::bail!("oversold or lost orders");
        }
        Ok(())
    }
}

/// The options of `reco-eval`.
#[derive(Debug, clap::Args)]
struct RecoEvalArgs {
    /// Postgres URL of a scratch database (migrated if needed).
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 2000)]
    products: usize,
    #[arg(long, default_value_t = 6)]
    bundle_size: usize,
    #[arg(long, default_value_t = 20_000)]
    shoppers: usize,
    #[arg(long, default_value_t = 4)]
    orders_per_shopper: usize,
    /// Chance that an order also has one product drawn by popularity.
    #[arg(long, default_value_t = 0.3)]
    noise: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl RecoEvalArgs {
    /// Scores the recommender against the popularity baseline.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            database_url,
            products,
            bundle_size,
            shoppers,
            orders_per_shopper,
            noise,
            seed,
            report,
        } = self;
        let result = reco::evaluate(
            &database_url,
            agora::recommendations::evaluation::Shape {
                products,
                bundle_size,
                shoppers,
                orders_per_shopper,
                noise,
                seed,
            },
        )
        .await?;
        eprintln!(
            "precision@10 {:.3} (popularity {:.3}, {:.1}×), recall@10 {:.3} (popularity {:.3})",
            result.precision_at_10,
            result.baseline_precision_at_10,
            result.lift,
            result.recall_at_10,
            result.baseline_recall_at_10
        );
        publish(&result, report.as_deref())
    }
}

/// The options of `reco-bench`.
#[derive(Debug, clap::Args)]
struct RecoBenchArgs {
    /// Base URL of the Agora process under test.
    #[arg(long)]
    target: String,
    /// The server's database (with a catalog from seed-catalog).
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 6000)]
    requests: usize,
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl RecoBenchArgs {
    /// Times the recommendation endpoints.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            target,
            database_url,
            requests,
            connections,
            report,
        } = self;
        let result = reco::bench(&target, &database_url, requests, connections).await?;
        print_latencies("request (ms)", &result.latency_ms);
        eprintln!("errors: {:?}", result.errors);
        publish(&result, report.as_deref())
    }
}

/// The options of `reserve-bench`.
#[derive(Debug, clap::Args)]
struct ReserveBenchArgs {
    /// Postgres URL of an Agora database (migrated if needed; a benchmark SKU is added).
    #[arg(long)]
    database_url: String,
    /// Reservations started per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds each way runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Follow every reservation with its order (checkout), both ways.
    #[arg(long)]
    checkout: bool,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl ReserveBenchArgs {
    /// Reserves through the shards, then the common way, and prints the two side by side.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            database_url,
            rate,
            duration_secs,
            checkout,
            report,
        } = self;
        let result = reserve::run(
            &database_url,
            rate,
            std::time::Duration::from_secs(duration_secs),
            checkout,
        )
        .await?;
        eprintln!(
            "{:<20} {:>9} {:>9} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8}",
            "way", "offered/s", "held", "shed", "failed", "held/s", "p50 ms", "p99 ms", "max ms"
        );
        for run in &result.runs {
            eprintln!(
                "{:<20} {:>9} {:>9} {:>7} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.2}",
                run.way,
                run.offered_per_sec,
                run.held,
                run.shed,
                run.failed,
                run.held_per_sec,
                run.latency_ms.p50,
                run.latency_ms.p99,
                run.latency_ms.max
            );
        }
        eprintln!(
            "throughput ratio (shards / row lock): {:.1}×",
            result.throughput_ratio
        );
        publish(&result, report.as_deref())
    }
}

/// The options of `ws-bench`.
#[derive(Debug, clap::Args)]
struct WsBenchArgs {
    /// Base URL of the Agora process under test.
    #[arg(long)]
    target: String,
    /// Sockets to open.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// How many of them follow the benchmark SKU.
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    /// Comma-separated loopback source addresses to connect from (each has ~28,000 ports).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    sources: Vec<std::net::IpAddr>,
    /// The server's process id, to read its resident memory.
    #[arg(long)]
    server_pid: u32,
    /// Stock changes to fan out, 3 s apart.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Seconds to keep every socket open before the changes (to overlap several runs).
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl WsBenchArgs {
    /// Opens the sockets and fans the stock changes out to the subscribed ones.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            target,
            sockets,
            subscribers,
            sources,
            server_pid,
            changes,
            hold_secs,
            report,
        } = self;
        let result = sockets::run(
            &target,
            sockets,
            subscribers,
            &sources,
            server_pid,
            changes,
            std::time::Duration::from_secs(hold_secs),
        )
        .await?;
        eprintln!(
            "{} sockets open ({} failed); server memory {} → {} KiB: {:.2} KiB per connection",
            result.sockets_open,
            result.connect_failures,
            result.server_rss_before_kib,
            result.server_rss_after_kib,
            result.server_kib_per_connection
        );
        eprintln!(
            "fan-out to {} subscribers × {} changes: {} of {} received, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            result.subscribers,
            result.changes,
            result.received,
            result.expected,
            result.fanout_ms.p50,
            result.fanout_ms.p99,
            result.fanout_ms.max
        );
        publish(&result, report.as_deref())
    }
}

/// The options of `loopback-floor`.
#[derive(Debug, clap::Args)]
struct LoopbackFloorArgs {
    /// Connections (each takes two file descriptors in this process).
    #[arg(long, default_value_t = 9_990)]
    connections: usize,
    /// Threads writing, each to its share of the connections.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Messages per connection, one round at a time.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Write the JSON report here too.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

impl LoopbackFloorArgs {
    /// Times the kernel alone delivering to the loopback connections, round by round.
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            connections,
            writers,
            rounds,
            report,
        } = self;
        let result = floor::run(connections, writers, rounds)?;
        for round in &result.rounds {
            eprintln!(
                "{} of {} received; writes done in {:.2} ms; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                round.received,
                result.connections,
                round.writes_ms,
                round.latency_ms.p50,
                round.latency_ms.p99,
                round.latency_ms.max
            );
        }
        publish(&result, report.as_deref())
    }
}

/// The human summary: one row of percentiles per kind of request, on stderr.
fn print_latencies(heading: &str, latencies: &BTreeMap<String, Percentiles>) {
    eprintln!(
        "{heading:<24} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "count", "p50", "p90", "p99", "max"
    );
    for (kind, p) in latencies {
        eprintln!(
            "{kind:<24} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            p.requests, p.p50, p.p90, p.p99, p.max
        );
    }
}

/// The JSON report: on stdout, and in `--report FILE` when given.
fn publish(report: &impl serde::Serialize, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    if let Some(path) = path {
        std::fs::write(path, &json)?;
    }
    println!("{json}");
    Ok(())
}
