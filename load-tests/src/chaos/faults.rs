//! The faults the chaos suite injects, on a plan drawn at random before the run: SIGKILLs of
//! random `agora serve` processes (each restarted on its port a moment later), a Postgres
//! crash and restart, a Redis crash and restart, a `FLUSHALL`, and payment-gateway stalls. The
//! gateway is stalled by locking the sandbox's books (`ACCESS EXCLUSIVE` on its tables) for a
//! while, so every gateway call hangs as a remote gateway's would; one stall outlasts the
//! servers' payment timeout.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rand::{seq::IndexedRandom, Rng};
use serde::Serialize;

use super::cluster::{Postgres, Redis, Servers};

/// One fault as it was injected.
#[derive(Debug, Serialize)]
pub struct Injected {
    /// Seconds from the start of the run.
    pub at_s: f64,
    pub fault: &'static str,
    pub detail: String,
    /// How long the injection (and, for a restart, the recovery it waited for) took.
    pub took_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillServer,
    RestartServer(usize),
    StallGateway(Duration),
    RestartPostgres,
    RestartRedis,
    FlushRedis,
}

/// What the injector is given to break.
pub struct Targets<'a> {
    pub servers: &'a mut Servers,
    pub postgres: &'a Postgres,
    pub redis: &'a mut Redis,
    pub database_url: String,
}

/// The plan: `kills` kills spread over `window` (each at a random moment of its slice), the
/// other faults at fixed fractions of it.
fn plan(window: Duration, kills: usize, payment_timeout: Duration) -> BTreeMap<Duration, Fault> {
    let mut rng = rand::rng();
    let mut plan = BTreeMap::new();
    let slice = window.mul_f64(0.9) / u32::try_from(kills.max(1)).unwrap_or(u32::MAX);
    for n in 0..kills {
        let at = window.mul_f64(0.05)
            + slice * u32::try_from(n).unwrap_or(0)
            + slice.mul_f64(rng.random_range(0.0..0.8));
        plan.insert(at, Fault::KillServer);
    }
    let mut at_fraction = |fraction: f64, fault| {
        let mut at = window.mul_f64(fraction);
        while plan.contains_key(&at) {
            at += Duration::from_millis(1);
        }
        plan.insert(at, fault);
    };
    at_fraction(0.15, Fault::StallGateway(Duration::from_millis(1500)));
    at_fraction(0.3, Fault::RestartRedis);
    at_fraction(0.45, Fault::RestartPostgres);
    at_fraction(0.6, Fault::FlushRedis);
    at_fraction(
        0.75,
        Fault::StallGateway(payment_timeout + Duration::from_secs(1)),
    );
    plan
}

/// Injects the plan's faults at their times, from `start`; answers what was injected.
/// A killed server is restarted after a random 0.3–1.5 s (and every server is running when
/// this returns). An injection that fails is reported and the run goes on.
pub async fn inject(
    targets: Targets<'_>,
    start: Instant,
    window: Duration,
    kills: usize,
    payment_timeout: Duration,
) -> Vec<Injected> {
    let mut plan = plan(window, kills, payment_timeout);
    let mut injected = Vec::new();
    let mut stalls = Vec::new();
    while let Some((at, fault)) = plan.pop_first() {
        tokio::time::sleep_until((start + at).into()).await;
        let began = Instant::now();
        let detail = match fault {
            Fault::KillServer => {
                let running = targets.servers.running();
                // Keep one process serving; the kill waits for a restart instead.
                if running.len() <= 1 {
                    plan.insert(at + Duration::from_millis(200), fault);
                    continue;
                }
                let Some(&victim) = running.choose(&mut rand::rng()) else {
                    continue;
                };
                targets.servers.kill(victim).await;
                let back = Duration::from_millis(rand::rng().random_range(300..1500));
                let mut restart_at = began.duration_since(start) + back;
                while plan.contains_key(&restart_at) {
                    restart_at += Duration::from_millis(1);
                }
                plan.insert(restart_at, Fault::RestartServer(victim));
                format!(
                    "SIGKILL to server {victim} (port {})",
                    targets.servers.slots[victim].port
                )
            }
            Fault::RestartServer(n) => match targets.servers.restart(n).await {
                Ok(()) => format!("server {n} restarted and ready"),
                Err(error) => format!("server {n} failed to restart: {error:#}"),
            },
            Fault::StallGateway(length) => {
                stalls.push(tokio::spawn(stall_gateway(
                    targets.database_url.clone(),
                    length,
                )));
                format!(
                    "sandbox gateway's books locked for {} ms",
                    length.as_millis()
                )
            }
            Fault::RestartPostgres => match targets.postgres.crash_and_restart().await {
                Ok(()) => "Postgres stopped with -m immediate and started again".into(),
                Err(error) => format!("Postgres restart failed: {error:#}"),
            },
            Fault::RestartRedis => match targets.redis.kill_and_restart().await {
                Ok(()) => "Redis killed and started again, empty".into(),
                Err(error) => format!("Redis restart failed: {error:#}"),
            },
            Fault::FlushRedis => match targets.redis.flush_all().await {
                Ok(()) => "FLUSHALL".into(),
                Err(error) => format!("FLUSHALL failed: {error:#}"),
            },
        };
        injected.push(Injected {
            at_s: began.duration_since(start).as_secs_f64(),
            fault: fault.name(),
            detail,
            took_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    for stall in stalls {
        let _ = stall.await;
    }
    injected
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::KillServer => "kill_server",
            Self::RestartServer(_) => "restart_server",
            Self::StallGateway(_) => "stall_gateway",
            Self::RestartPostgres => "restart_postgres",
            Self::RestartRedis => "restart_redis",
            Self::FlushRedis => "flush_redis",
        }
    }
}

/// Holds `ACCESS EXCLUSIVE` locks on the sandbox gateway's tables for `length`: every gateway
/// call (authorize, capture, void, refund, lookup) waits, as on a gateway that hangs.
async fn stall_gateway(database_url: String, length: Duration) {
    let stalled = async {
        let (mut db, connection) =
            tokio_postgres::connect(&database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let tx = db.transaction().await?;
        tx.batch_execute(
            "LOCK TABLE sandbox_gateway_payments, sandbox_gateway_refunds IN ACCESS EXCLUSIVE MODE",
        )
        .await?;
        tokio::time::sleep(length).await;
        tx.rollback().await
    };
    if let Err(error) = stalled.await {
        eprintln!("chaos: a gateway stall ended early: {error}");
    }
}
