//! The set-based write of cart line changes over their carts' versions: the statement both
//! the commit group (a live cart's line changes, `carts::live`) and the inventory shards' batch
//! transactions (a line written with the hold of its added units, `inventory`) run.
//!
//! Promises: a [`LineWrite`] is written only over the version it names (the cart's version
//! raised, its `last_write` set to the write's id); otherwise nothing of it is written, and the
//! answer says whether the write was found already done (its own id) or the cart moved on.

use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use crate::{
    commit_group::{failed_together, GroupJob},
    error::Error,
};

/// One line change of a live cart: the line of `variant_id` set to `quantity`, `release` units
/// of the cart's holds on it given back, written only over the cart's `version`.
#[derive(Debug, Clone)]
pub struct LineWrite {
    /// This write's own id (`carts.last_write`), to recognize it when its batch runs again.
    pub id: Uuid,
    pub cart_id: Uuid,
    pub shopper_id: Uuid,
    pub version: i64,
    pub variant_id: Uuid,
    pub quantity: u32,
    pub release: u32,
    /// Whether units were added (a recommendation signal).
    pub carted: bool,
}

/// What became of a [`LineWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Written; `released` units of holds went back to stock.
    Applied { released: i64 },
    /// Found written already (its commit-group batch ran again after a commit whose answer
    /// was lost): how many units it released is not known. (Had another process's line change
    /// been written over it in between, it answers `Moved` instead, and the change — through
    /// the commit group always a lowering to a set quantity — is made again the locked way,
    /// setting the quantity once more, as a later tab's would. A shard's batch never runs
    /// twice: it fails as a whole.)
    AlreadyApplied,
    /// The cart moved on (changed elsewhere), is gone, or its row was held by another
    /// transaction: nothing was written.
    Moved,
}

impl GroupJob for LineWrite {
    type Output = Written;
    type Error = Error;

    fn batch_key(&self) -> Uuid {
        self.cart_id
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<Written, Error>> {
        Box::pin(async move {
            let mut written = write_lines(tx, &[self]).await?;
            written
                .pop()
                .ok_or_else(|| Error::internal(anyhow::anyhow!("a line write went unanswered")))
        })
    }

    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<Written, Error>>> {
        Box::pin(async move {
            match write_lines(tx, &jobs).await {
                Ok(written) => written.into_iter().map(Ok).collect(),
                Err(error) => failed_together(jobs.len(), Some(&error)),
            }
        })
    }
}

/// Writes `jobs` (distinct carts) in one statement, never waiting for a cart's row: a cart
/// whose row another transaction holds (a checkout, a change the locked way, another process)
/// answers [`Written::Moved`] at once, so a shard's batch, which holds its SKUs' rows, never
/// waits for a cart (no deadlock with a checkout holding the cart and waiting for the SKU).
/// For each cart: its version raised where it is still the job's, its line upserted or deleted, `release` units of its holds on the
/// variant released newest first (as `carts::release` does) and the variants' held units
/// lowered by what was released, and a recommendation signal for each addition (the first in
/// the learner's window).
pub async fn write_lines(
    tx: &impl crate::db::PreparedClient,
    jobs: &[&LineWrite],
) -> Result<Vec<Written>, Error> {
    let column = |f: fn(&LineWrite) -> i64| jobs.iter().map(|job| f(job)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    let carts: Vec<Uuid> = jobs.iter().map(|job| job.cart_id).collect();
    let shoppers: Vec<Uuid> = jobs.iter().map(|job| job.shopper_id).collect();
    let variants: Vec<Uuid> = jobs.iter().map(|job| job.variant_id).collect();
    let carted: Vec<bool> = jobs.iter().map(|job| job.carted).collect();
    let versions = column(|job| job.version);
    let quantities = column(|job| i64::from(job.quantity));
    let releases = column(|job| i64::from(job.release));
    let rows = tx
        .query(
            &format!(
                "WITH job AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::int8[],
                                  $6::int8[], $7::bool[], $8::uuid[])
                 WITH ORDINALITY AS j(cart_id, shopper_id, version, variant_id, quantity,
                                      release, carted, write_id, n)
         ),
         bumped AS (
             UPDATE carts c
             SET version = c.version + 1, last_write = j.write_id, updated_at = now()
             FROM job j
             WHERE c.id = j.cart_id AND c.shopper_id = j.shopper_id AND c.version = j.version
               AND c.id IN (SELECT id FROM carts WHERE id = ANY($1) FOR UPDATE SKIP LOCKED)
             RETURNING c.id
         ),
         ok AS (SELECT j.* FROM job j JOIN bumped b ON b.id = j.cart_id),
         upserted AS (
             INSERT INTO cart_lines (cart_id, variant_id, quantity)
             SELECT cart_id, variant_id, quantity::int FROM ok WHERE quantity > 0
             ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = EXCLUDED.quantity
         ),
         deleted AS (
             DELETE FROM cart_lines l USING ok
             WHERE ok.quantity = 0 AND l.cart_id = ok.cart_id AND l.variant_id = ok.variant_id
         ),
         holds AS (
             SELECT h.id, h.owner, h.variant_id, h.quantity, ok.release,
                    sum(h.quantity) OVER (PARTITION BY h.owner, h.variant_id
                                          ORDER BY h.created_at DESC, h.id) AS through
             FROM ok JOIN stock_holds h
               ON h.owner = ok.cart_id::text AND h.variant_id = ok.variant_id
              AND h.released_at IS NULL
             WHERE ok.release > 0
         ),
         taken AS (
             SELECT id, least(quantity, release - (through - quantity))::int AS take
             FROM holds WHERE through - quantity < release
         ),
         released AS (
             UPDATE stock_holds h
             SET released_at = CASE WHEN t.take = h.quantity THEN now() END,
                 quantity = CASE WHEN t.take = h.quantity THEN h.quantity
                                 ELSE h.quantity - t.take END
             FROM taken t
             WHERE h.id = t.id AND h.released_at IS NULL
             RETURNING h.owner, h.variant_id, t.take
         ),
         lowered AS (
             UPDATE variants v SET held = v.held - r.units
             FROM (SELECT variant_id, sum(take)::int AS units FROM released GROUP BY variant_id) r
             WHERE v.id = r.variant_id
         ),
         signals AS (
             INSERT INTO reco_signals (shopper_id, product_id, kind)
             SELECT ok.shopper_id, v.product_id, 'cart'
             FROM ok JOIN variants v ON v.id = ok.variant_id
             WHERE ok.carted AND {}
         )
         SELECT b.id IS NOT NULL,
                coalesce((SELECT sum(r.take) FROM released r
                           WHERE r.owner = j.cart_id::text), 0)::int8,
                EXISTS (SELECT FROM carts c WHERE c.id = j.cart_id AND c.last_write = j.write_id)
         FROM job j LEFT JOIN bumped b ON b.id = j.cart_id
         ORDER BY j.n",
                crate::recommendations::first_signal("ok.shopper_id", "v.product_id", "cart")
            ),
            &[
                &carts,
                &shoppers,
                &versions,
                &variants,
                &quantities,
                &releases,
                &carted,
                &ids,
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            if row.get::<_, bool>(0) {
                Written::Applied {
                    released: row.get(1),
                }
            } else if row.get::<_, bool>(2) {
                Written::AlreadyApplied
            } else {
                Written::Moved
            }
        })
        .collect())
}
