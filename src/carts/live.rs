//! A cart kept in memory by its actor while it is in use, and its line changes written through
//! the commit group.
//!
//! [`LiveCart`] is what a cart's actor (`agora_actors::cart`) keeps between changes: the cart
//! as loaded from Postgres (lines priced for the shopper's locales, region, destination) and
//! its version, changed in place by each line change, so a change reads nothing and its answer
//! is rendered from memory. Its line changes are [`LineWrite`]s: the jobs of many carts are
//! written by one set-based statement in one transaction of the commit group (the cart's
//! version raised, the line upserted or deleted, released holds given back to stock, and the
//! recommendation signal of an addition), each only over the version the actor read.
//!
//! Promises:
//! - No write is lost between processes: a [`LineWrite`] whose cart moved on (another process
//!   changed it) writes nothing and answers [`Written::Moved`]; the change is then made the
//!   locked way (`changes.rs`) and the cart loaded again. Every other writer of a cart or its
//!   lines raises its version (shipping, checkout emptying the ordered lines); every
//!   announcement of a cart carries its version, and a process hearing of a newer one drops
//!   its copy.
//! - A live cart is at most [`CartSettings::state_ttl_ms`](crate::configuration::CartSettings)
//!   old: its prices, titles and held units are read again after that (and whenever the
//!   shopper's locales differ). Checkout reads and prices the cart from Postgres whatever the
//!   copy says.
//! - What a live cart says about its lines' quantities is what Postgres holds: it changes only
//!   after its write committed.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::{CartLine, Loaded};
use crate::{
    commit_group::{failed_together, GroupJob},
    error::Error,
    locale::LocalePreference,
};

/// A cart as its actor keeps it between changes.
pub struct LiveCart {
    pub(super) shopper_id: Uuid,
    /// The locales its titles were chosen for.
    locales: Vec<String>,
    loaded_at: Instant,
    pub(super) cart: Loaded,
    /// Lines it does not have (removed since it was loaded, or read for a change that added
    /// none), kept to add without a read.
    removed: Vec<CartLine>,
}

impl agora_actors::cart::CartState for LiveCart {
    fn version(&self) -> i64 {
        self.cart.version
    }
}

/// A line of a live cart, as a change finds it.
pub(super) struct KnownLine {
    pub variant_id: Uuid,
    pub sku: String,
    pub quantity: u32,
    pub on_sale: bool,
}

impl LiveCart {
    pub(super) fn new(shopper_id: Uuid, preference: &LocalePreference, cart: Loaded) -> Self {
        Self {
            shopper_id,
            locales: locales_of(preference),
            loaded_at: Instant::now(),
            cart,
            removed: Vec::new(),
        }
    }

    /// Whether this copy may still serve `shopper_id` in `preference`'s locales.
    pub(super) fn serves(
        &self,
        shopper_id: Uuid,
        preference: &LocalePreference,
        ttl: Duration,
    ) -> bool {
        self.shopper_id == shopper_id
            && self.loaded_at.elapsed() < ttl
            && self.locales == locales_of(preference)
    }

    /// The line of `sku` the cart has or had since it was loaded.
    pub(super) fn line(&self, sku: &str) -> Option<KnownLine> {
        let wanted = sku.to_uppercase();
        self.cart
            .view
            .lines
            .iter()
            .chain(&self.removed)
            .find(|line| line.sku.to_uppercase() == wanted)
            .map(|line| KnownLine {
                variant_id: line.variant_id,
                sku: line.sku.clone(),
                quantity: line.quantity,
                on_sale: line.on_sale,
            })
    }

    /// Keeps a line the cart does not have (a storefront SKU read for a change), so that
    /// adding it is written like any other change; answers it as a known line.
    pub(super) fn remember(&mut self, line: CartLine) -> KnownLine {
        let known = KnownLine {
            variant_id: line.variant_id,
            sku: line.sku.clone(),
            quantity: line.quantity,
            on_sale: line.on_sale,
        };
        self.removed.push(line);
        known
    }

    pub(super) fn line_count(&self) -> usize {
        self.cart.view.lines.len()
    }

    /// Records a written change of the line of `variant_id` to `quantity`: `held` more units
    /// held until `held_until` (an addition), or `released` units given back.
    pub(super) fn set_line(&mut self, variant_id: Uuid, quantity: u32, held: Held) {
        let lines = &mut self.cart.view.lines;
        if let Some(at) = lines.iter().position(|l| l.variant_id == variant_id) {
            held.apply(&mut lines[at], quantity);
            if quantity == 0 {
                self.removed.push(lines.remove(at));
            }
        } else if let Some(at) = self.removed.iter().position(|l| l.variant_id == variant_id) {
            let mut line = self.removed.remove(at);
            held.apply(&mut line, quantity);
            if quantity > 0 {
                // A line that comes back is added again, so it goes last, as Postgres orders it.
                lines.push(line);
            } else {
                self.removed.push(line);
            }
        }
        self.cart.version += 1;
        self.cart.reprice();
    }
}

/// How a written line change moved its held units.
pub(super) enum Held {
    More {
        units: u32,
        until: chrono::DateTime<Utc>,
    },
    Fewer {
        units: i64,
    },
}

impl Held {
    fn apply(self, line: &mut CartLine, quantity: u32) {
        line.quantity = quantity;
        match self {
            Self::More { units, until } => {
                line.held_quantity += i64::from(units);
                line.held_until = line.held_until.max(Some(until));
            }
            Self::Fewer { units } => {
                line.held_quantity = (line.held_quantity - units).clamp(0, i64::from(quantity));
                if line.held_quantity == 0 {
                    line.held_until = None;
                }
            }
        }
    }
}

fn locales_of(preference: &LocalePreference) -> Vec<String> {
    preference
        .tags()
        .iter()
        .map(|locale| locale.as_str().to_owned())
        .collect()
}

/// One line change of a live cart, for the commit group: the line of `variant_id` set to
/// `quantity`, `release` units of the cart's holds on it given back, written only over the
/// cart's `version`.
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
    /// Found written already (its batch ran again after a commit whose answer was lost): how
    /// many units it released is not known. (Had another process's line change been written
    /// over it in between, it answers `Moved`, and an addition is then written a second time,
    /// the locked way, over units held once: a lost commit answer and a change elsewhere in
    /// the same milliseconds. Nothing is oversold by it: checkout holds again whatever part of a
    /// line its holds do not cover, or refuses it.)
    AlreadyApplied,
    /// The cart moved on (changed elsewhere) or is gone: nothing was written.
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

/// Writes `jobs` (distinct carts) in one statement: each cart's version raised where it is
/// still the job's, its line upserted or deleted, `release` units of its holds on the
/// variant released newest first (as `carts::release` does) and the variants' held units
/// lowered by what was released, and a recommendation signal for each addition (the first in
/// the learner's window).
async fn write_lines(
    tx: &deadpool_postgres::Transaction<'_>,
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
    let rows = crate::db::PreparedClient::query(
        tx,
        &format!("WITH job AS (
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
            &carts, &shoppers, &versions, &variants, &quantities, &releases, &carted, &ids,
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
