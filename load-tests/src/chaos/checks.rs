//! What the chaos suite verifies once the faults stop and the cluster has settled, read from
//! Postgres (Agora's books) and the sandbox gateway's own books beside them. Every count must
//! be zero.

use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

/// Grace after a hold's expiry before it counts as stuck: the sweep runs every second.
const EXPIRY_GRACE_SECS: i32 = 5;

/// The loss counts (all must be 0) and what else the run left.
#[derive(Debug, Default, Serialize)]
pub struct Checks {
    /// Units in paid orders beyond a SKU's stock, summed over SKUs.
    pub oversold: i64,
    /// Orders the API answered 200/201 for that Postgres does not hold as paid.
    pub acknowledged_but_missing: i64,
    /// Captures at the gateway without a paid order in Agora.
    pub charged_without_order: i64,
    /// Captures beyond the first for one shopper (each shopper of the run buys once).
    pub duplicate_charges: i64,
    /// Cart holds still live more than a few seconds past their expiry.
    pub holds_stuck_past_expiry: i64,
    /// Orders still `pending` after the reconciler's time.
    pub orders_left_pending: i64,
    /// Authorizations neither captured nor voided.
    pub authorizations_left_open: i64,
    /// Variants whose held + sold differ from their live holds, or from the units in paid
    /// orders.
    pub stock_accounting_mismatches: i64,
    /// Flash sales past their end not yet closed (their unsold units not back in stock).
    pub sales_left_open: i64,
    /// Paid orders and units sold, for the report.
    pub orders_paid: i64,
    pub units_sold: i64,
}

impl Checks {
    pub fn losses(&self) -> i64 {
        self.oversold
            + self.acknowledged_but_missing
            + self.charged_without_order
            + self.duplicate_charges
            + self.holds_stuck_past_expiry
            + self.orders_left_pending
            + self.authorizations_left_open
            + self.stock_accounting_mismatches
            + self.sales_left_open
    }
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(db.query_one(sql, &[]).await?.get(0))
}

const PAID: &str = "('paid', 'partially_fulfilled', 'fulfilled')";

/// Waits (up to `timeout`) until nothing is left for the cluster's background work to finish —
/// no pending order, no open authorization, no cart hold past its expiry, every sale ended —
/// then reads every count.
pub async fn settle_and_check(
    database_url: &str,
    acknowledged: &[Uuid],
    timeout: Duration,
) -> anyhow::Result<(Checks, f64)> {
    let started = Instant::now();
    loop {
        let checks = read(database_url, acknowledged).await;
        match checks {
            Ok(checks) if checks.losses() == 0 => {
                return Ok((checks, started.elapsed().as_secs_f64()));
            }
            Ok(checks) if started.elapsed() > timeout => {
                return Ok((checks, started.elapsed().as_secs_f64()));
            }
            Err(error) if started.elapsed() > timeout => return Err(error),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn read(database_url: &str, acknowledged: &[Uuid]) -> anyhow::Result<Checks> {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let paid_units = format!(
        "SELECT l.variant_id, sum(l.quantity - l.cancelled) AS units FROM order_lines l
           JOIN orders o ON o.id = l.order_id AND o.status IN {PAID} GROUP BY 1"
    );
    Ok(Checks {
        oversold: count(
            &db,
            &format!(
                "SELECT coalesce(sum(greatest(0, u.units - v.stock_on_hand)), 0)::int8
                   FROM ({paid_units}) u JOIN variants v ON v.id = u.variant_id"
            ),
        )
        .await?,
        acknowledged_but_missing: i64::try_from(acknowledged.len())?
            - db.query_one(
                &format!("SELECT count(*) FROM orders WHERE id = ANY($1) AND status IN {PAID}"),
                &[&acknowledged],
            )
            .await?
            .get::<_, i64>(0),
        charged_without_order: count(
            &db,
            &format!(
                "SELECT count(*) FROM sandbox_gateway_payments g
                  WHERE g.status = 'captured' AND g.captured > g.refunded
                    AND NOT EXISTS (SELECT 1 FROM payments p JOIN orders o ON o.id = p.order_id
                                     WHERE p.reference = g.reference AND o.status IN {PAID})"
            ),
        )
        .await?,
        duplicate_charges: count(
            &db,
            "SELECT coalesce(sum(n - 1), 0)::int8 FROM (
                 SELECT count(*) AS n FROM sandbox_gateway_payments g
                   JOIN payments p ON p.reference = g.reference
                   JOIN orders o ON o.id = p.order_id
                  WHERE g.status = 'captured' GROUP BY o.shopper_id) per_shopper",
        )
        .await?,
        holds_stuck_past_expiry: count(
            &db,
            &format!(
                "SELECT count(*) FROM stock_holds
                  WHERE released_at IS NULL AND order_id IS NULL
                    AND expires_at < now() - interval '{EXPIRY_GRACE_SECS} seconds'"
            ),
        )
        .await?,
        orders_left_pending: count(&db, "SELECT count(*) FROM orders WHERE status = 'pending'")
            .await?,
        authorizations_left_open: count(
            &db,
            "SELECT count(*) FROM sandbox_gateway_payments WHERE status = 'authorized'",
        )
        .await?,
        stock_accounting_mismatches: count(
            &db,
            &format!(
                "SELECT count(*) FROM variants v
                   LEFT JOIN ({paid_units}) u ON u.variant_id = v.id
                  WHERE v.held + v.sold <> coalesce((SELECT sum(h.quantity) FROM stock_holds h
                                                      WHERE h.variant_id = v.id
                                                        AND h.released_at IS NULL), 0)
                     OR v.held + v.sold <> coalesce(u.units, 0)"
            ),
        )
        .await?,
        orders_paid: count(
            &db,
            &format!("SELECT count(*) FROM orders WHERE status IN {PAID}"),
        )
        .await?,
        units_sold: count(
            &db,
            &format!("SELECT coalesce(sum(units), 0)::int8 FROM ({paid_units}) u"),
        )
        .await?,
        sales_left_open: count(
            &db,
            "SELECT count(*) FROM flash_sales WHERE finished_at IS NULL AND ends_at < now()",
        )
        .await?,
    })
}
