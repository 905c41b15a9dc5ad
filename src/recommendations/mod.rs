//! Personalization: "bought together" and "for you", learned from every paid order as it
//! happens (item-to-item collaborative filtering, as Amazon's recommendations).
//!
//! [`learn`] reads the order event log from the recommender's cursor in commit order, counts
//! each order's products and each pair of them, and recomputes the neighbour lists of the
//! products it touched: cosine similarity of their buyer sets, the top
//! `recommendations.neighbours` per product, so serving cost stays flat as the catalog grows.
//! Counts and cursor move in one transaction under an advisory lock, so with any number of
//! processes every order is counted exactly once. The state is in Postgres (it survives
//! restarts); neighbour lists are cached in Redis and dropped when relearned.
//!
//! Serving ([`bought_together`], [`for_shopper`]) ranks candidates by similarity, then
//! [`render`] keeps only what is on the storefront (listed, in stock, not bought by the shopper)
//! and shows it in the shopper's locale and currency. A shopper without a history gets what is
//! popular in their region, preferring products written in their language.

pub mod evaluation;
mod for_you;

pub use for_you::for_shopper;

use std::collections::{BTreeMap, BTreeSet};

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    configuration::RecommendationSettings,
    error::Error,
    hot_state::HotState,
    money::{Currency, Price},
};

/// Advisory lock key of the learner: one process learns at a time.
const LEARNER_LOCK: i64 = 0x5245_434f; // "RECO"
/// Products of one order counted in pairs; a bigger basket counts only its first ones (a
/// wholesale order says little about what goes together, and pairs grow as its square).
pub const MAX_BASKET: usize = 50;
/// Products of a shopper's history the "for you" list starts from (most recent first).
const HISTORY: i64 = 50;
/// Most candidates a list is chosen from (before the storefront's filters).
const CANDIDATES: i64 = 100;
/// Candidates looked at per run when rendering, as a multiple of the limit.
const RENDER_RUN_FACTOR: usize = 3;
/// Seconds a cached neighbour list lives in Redis (relearning drops it at once).
const CACHE_TTL_SECS: u64 = 300;

/// One order's region and distinct products, as the learner counts it.
pub struct Basket {
    pub region: String,
    pub products: Vec<Uuid>,
}

/// How much an order weighs, and the weaker signals (a shopper carting or viewing a product).
pub const ORDER_WEIGHT: f32 = 1.0;
pub const CART_WEIGHT: f32 = 0.3;
pub const VIEW_WEIGHT: f32 = 0.1;

fn signal_weight(kind: &str) -> f32 {
    if kind == "cart" {
        CART_WEIGHT
    } else {
        VIEW_WEIGHT
    }
}

/// What a learning pass adds: weight per product, per pair (both directions) and order
/// counts per region (popularity counts orders only).
#[derive(Default)]
pub struct Increments {
    items: BTreeMap<Uuid, f32>,
    pairs: BTreeMap<(Uuid, Uuid), f32>,
    regions: BTreeMap<(String, Uuid), i32>,
}

impl Increments {
    /// An order: each of its products (up to [`MAX_BASKET`]) and each pair of them.
    pub fn order(&mut self, basket: &Basket) {
        let distinct: BTreeSet<Uuid> = basket.products.iter().copied().collect();
        let kept: Vec<Uuid> = distinct.into_iter().take(MAX_BASKET).collect();
        for (i, a) in kept.iter().enumerate() {
            *self.items.entry(*a).or_default() += ORDER_WEIGHT;
            *self.regions.entry((basket.region.clone(), *a)).or_default() += 1;
            for b in &kept[i + 1..] {
                self.pair(*a, *b, ORDER_WEIGHT);
            }
        }
    }

    /// A signal of `kind` for `product`, paired with what the shopper signalled before it.
    pub fn signal(&mut self, product: Uuid, kind: &str, earlier: &[(Uuid, String)]) {
        let weight = signal_weight(kind);
        *self.items.entry(product).or_default() += weight;
        for (other, other_kind) in earlier {
            if *other != product {
                self.pair(product, *other, weight.min(signal_weight(other_kind)));
            }
        }
    }

    fn pair(&mut self, a: Uuid, b: Uuid, weight: f32) {
        *self.pairs.entry((a, b)).or_default() += weight;
        *self.pairs.entry((b, a)).or_default() += weight;
    }
}

/// Adds `increments` and recomputes the neighbour lists of every product in them. Returns the
/// products touched.
pub async fn record(
    tx: &impl PreparedClient,
    increments: &Increments,
    neighbours: i64,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    if increments.items.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, weights): (Vec<Uuid>, Vec<f32>) =
        increments.items.iter().map(|(k, v)| (*k, *v)).unzip();
    tx.execute(
        "INSERT INTO reco_item_counts (product_id, weight)
         SELECT * FROM unnest($1::uuid[], $2::real[])
         ON CONFLICT (product_id) DO UPDATE SET weight = reco_item_counts.weight + EXCLUDED.weight",
        &[&ids, &weights],
    )
    .await?;
    if !increments.regions.is_empty() {
        let mut region_names = Vec::new();
        let mut region_ids = Vec::new();
        let mut region_counts = Vec::new();
        for ((region, id), count) in &increments.regions {
            region_names.push(region.clone());
            region_ids.push(*id);
            region_counts.push(*count);
        }
        tx.execute(
            "INSERT INTO reco_region_counts (region, product_id, orders)
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::int4[])
             ON CONFLICT (region, product_id)
             DO UPDATE SET orders = reco_region_counts.orders + EXCLUDED.orders",
            &[&region_names, &region_ids, &region_counts],
        )
        .await?;
    }
    if !increments.pairs.is_empty() {
        let mut left = Vec::with_capacity(increments.pairs.len());
        let mut right = Vec::with_capacity(increments.pairs.len());
        let mut together = Vec::with_capacity(increments.pairs.len());
        for ((a, b), weight) in &increments.pairs {
            left.push(*a);
            right.push(*b);
            together.push(*weight);
        }
        tx.execute(
            "INSERT INTO reco_pairs (product_id, other_id, together)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::real[])
             ON CONFLICT (product_id, other_id)
             DO UPDATE SET together = reco_pairs.together + EXCLUDED.together",
            &[&left, &right, &together],
        )
        .await?;
    }
    // The lists of every product with a new event or a new pair are recomputed; a partner
    // whose similarity only moved because this product's weight grew catches up at its own
    // next event.
    let touched: Vec<Uuid> = increments
        .items
        .keys()
        .chain(increments.pairs.keys().map(|(a, _)| a))
        .copied()
        .collect::<BTreeSet<Uuid>>()
        .into_iter()
        .collect();
    tx.execute(
        "DELETE FROM reco_neighbours WHERE product_id = ANY($1)",
        &[&touched],
    )
    .await?;
    tx.execute(
        "INSERT INTO reco_neighbours (product_id, neighbour_id, score)
         SELECT product_id, other_id, score FROM (
             SELECT p.product_id, p.other_id,
                    (p.together / sqrt(a.weight::float8 * b.weight::float8))::real AS score,
                    row_number() OVER (PARTITION BY p.product_id
                        ORDER BY p.together / sqrt(a.weight::float8 * b.weight::float8) DESC,
                                 p.other_id) AS rank
             FROM reco_pairs p
             JOIN reco_item_counts a ON a.product_id = p.product_id
             JOIN reco_item_counts b ON b.product_id = p.other_id
             WHERE p.product_id = ANY($1)
         ) ranked
         WHERE rank <= $2",
        &[&touched, &neighbours],
    )
    .await?;
    Ok(touched)
}

/// What a weaker signal is about.
pub enum Signal {
    /// A signed-in shopper added units of this variant to a cart.
    Carted { variant: Uuid },
    /// A signed-in shopper viewed this product.
    Viewed { product: Uuid },
}

/// Appends a weaker signal for the learner, after the request's own work committed: a
/// failure costs only the signal (logged), never the request.
pub async fn note(pool: &deadpool_postgres::Pool, shopper: Uuid, signal: Signal) {
    let noted = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let (product, subject) = match signal {
            Signal::Carted { variant } => {
                ("(SELECT product_id FROM variants WHERE id = $2)", variant)
            }
            Signal::Viewed { product } => ("$2::uuid", product),
        };
        let kind = match signal {
            Signal::Carted { .. } => "cart",
            Signal::Viewed { .. } => "view",
        };
        let sql = format!(
            "INSERT INTO reco_signals (shopper_id, product_id, kind)
             SELECT $1, n.product_id, '{kind}' FROM (SELECT {product} AS product_id) n
             WHERE n.product_id IS NOT NULL AND {}",
            first_signal("$1", "n.product_id", kind)
        );
        client
            .execute(&sql, &[&shopper, &subject])
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    if let Err(error) = noted {
        tracing::warn!(%error, "noting a recommendation signal failed");
    }
}

/// What one learning pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Learned {
    pub orders: usize,
    pub signals: usize,
    pub products: usize,
}

/// How far back a shopper's earlier carts and views pair with a new one.
const SIGNAL_WINDOW: &str = "1 hour";

/// The SQL condition that the shopper has no signal of `kind` (a literal) about the product
/// within the window: the learner counts only the first of them (a shopper adding and removing
/// a product all afternoon is one signal), so the others are not written at all.
pub fn first_signal(shopper: &str, product: &str, kind: &str) -> String {
    format!(
        "NOT EXISTS (SELECT FROM reco_signals r
                     WHERE r.shopper_id = {shopper} AND r.product_id = {product}
                       AND r.kind = '{kind}' AND r.created_at > now() - interval '{SIGNAL_WINDOW}')"
    )
}
/// Earlier signals of one shopper a new one is paired with.
const SIGNAL_PAIRS: i64 = 20;

/// Learns the paid orders and the signals logged since the cursors (at most `batch` of each),
/// if no other process is learning right now. Drops the touched products' cached lists.
pub async fn learn(
    pool: &deadpool_postgres::Pool,
    hot: &HotState,
    settings: &RecommendationSettings,
) -> Result<Learned, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LEARNER_LOCK])
        .await?
        .get(0);
    if !locked {
        return Ok(Learned::default());
    }
    let mut increments = Increments::default();
    let orders = read_orders(&tx, settings.batch, &mut increments).await?;
    let signals = read_signals(&tx, settings.batch, &mut increments).await?;
    if orders + signals == 0 {
        return Ok(Learned::default());
    }
    let touched = crate::db::timed(
        "recommendations_learn",
        record(&tx, &increments, settings.neighbours),
    )
    .await?;
    // Signals only pair within the window: a day later they have served.
    tx.execute(
        "DELETE FROM reco_signals WHERE id IN (
             SELECT id FROM reco_signals WHERE created_at < now() - interval '1 day' LIMIT 1000)",
        &[],
    )
    .await?;
    tx.commit().await?;
    forget_cached(hot, &touched).await;
    metrics::counter!("agora_recommendations_orders_learned_total").increment(orders as u64);
    metrics::counter!("agora_recommendations_signals_learned_total").increment(signals as u64);
    Ok(Learned {
        orders,
        signals,
        products: touched.len(),
    })
}

/// The cursor of one log: `(xid, id)` of the last entry learned.
async fn cursor(tx: &impl PreparedClient, log: &str) -> Result<(String, i64), Error> {
    let row = tx
        .query_one(
            "SELECT xid::text, event_id FROM reco_progress WHERE name = $1 FOR UPDATE",
            &[&log],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

async fn advance(tx: &impl PreparedClient, log: &str, (xid, id): (&str, i64)) -> Result<(), Error> {
    tx.execute(
        "UPDATE reco_progress SET xid = $2::text::xid8, event_id = $3 WHERE name = $1",
        &[&log, &xid, &id],
    )
    .await?;
    Ok(())
}

/// Reads paid orders after the cursor into `increments`; answers how many.
async fn read_orders(
    tx: &impl PreparedClient,
    batch: i64,
    increments: &mut Increments,
) -> Result<usize, Error> {
    let (xid, event_id) = cursor(tx, "orders").await?;
    // Only transactions older than every one still running: a later commit can never slip in
    // below the cursor (the seller feed reads the log the same way).
    let events = tx
        .query(
            "SELECT e.xid::text, e.id, e.order_id FROM order_events e
             WHERE e.kind = 'paid' AND e.seller_id IS NULL
               AND (e.xid, e.id) > ($1::text::xid8, $2)
               AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY e.xid, e.id LIMIT $3",
            &[&xid, &event_id, &batch],
        )
        .await?;
    let Some(last) = events.last() else {
        return Ok(0);
    };
    advance(tx, "orders", (last.get(0), last.get(1))).await?;
    let orders: Vec<Uuid> = events.iter().map(|row| row.get(2)).collect();
    for row in tx
        .query(
            "SELECT o.region, array_agg(DISTINCT l.product_id) FROM orders o
             JOIN order_lines l ON l.order_id = o.id
             WHERE o.id = ANY($1) GROUP BY o.id, o.region",
            &[&orders],
        )
        .await?
    {
        increments.order(&Basket {
            region: row.get(0),
            products: row.get(1),
        });
    }
    Ok(events.len())
}

/// Reads carts and views after the cursor into `increments`, each paired with what the same
/// shopper carted or viewed in the window before it (a repeat of the same signal counts
/// once); answers how many were read.
async fn read_signals(
    tx: &impl PreparedClient,
    batch: i64,
    increments: &mut Increments,
) -> Result<usize, Error> {
    let (xid, id) = cursor(tx, "signals").await?;
    let signals = tx
        .query(
            &format!(
                "SELECT s.xid::text, s.id, s.product_id, s.kind,
                        EXISTS (SELECT 1 FROM reco_signals r
                                WHERE r.shopper_id = s.shopper_id AND r.product_id = s.product_id
                                  AND r.kind = s.kind AND (r.xid, r.id) < (s.xid, s.id)
                                  AND r.created_at > s.created_at - interval '{SIGNAL_WINDOW}'),
                        earlier.products, earlier.kinds
                 FROM reco_signals s
                 CROSS JOIN LATERAL (
                     SELECT coalesce(array_agg(e.product_id), '{{}}') AS products,
                            coalesce(array_agg(e.kind), '{{}}') AS kinds
                     FROM (SELECT product_id, min(kind) AS kind FROM reco_signals
                           WHERE shopper_id = s.shopper_id AND (xid, id) < (s.xid, s.id)
                             AND created_at > s.created_at - interval '{SIGNAL_WINDOW}'
                           GROUP BY product_id LIMIT {SIGNAL_PAIRS}) e
                 ) earlier
                 WHERE (s.xid, s.id) > ($1::text::xid8, $2)
                   AND s.xid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY s.xid, s.id LIMIT $3"
            ),
            &[&xid, &id, &batch],
        )
        .await?;
    let Some(last) = signals.last() else {
        return Ok(0);
    };
    advance(tx, "signals", (last.get(0), last.get(1))).await?;
    for row in &signals {
        if row.get::<_, bool>(4) {
            continue;
        }
        let products: Vec<Uuid> = row.get(5);
        let kinds: Vec<String> = row.get(6);
        let earlier: Vec<(Uuid, String)> = products.into_iter().zip(kinds).collect();
        increments.signal(row.get(2), row.get(3), &earlier);
    }
    Ok(signals.len())
}

/// Forgets everything learned and learns it again from the whole order history.
pub async fn rebuild(
    pool: &deadpool_postgres::Pool,
    hot: &HotState,
    settings: &RecommendationSettings,
) -> Result<usize, Error> {
    let cached: Vec<Uuid> = {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&LEARNER_LOCK])
            .await?;
        let products: Vec<Uuid> = tx
            .query("SELECT product_id FROM reco_item_counts", &[])
            .await?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        tx.batch_execute(
            "TRUNCATE reco_item_counts, reco_region_counts, reco_pairs, reco_neighbours;
             UPDATE reco_progress SET xid = '0', event_id = 0;",
        )
        .await?;
        tx.commit().await?;
        products
    };
    forget_cached(hot, &cached).await;
    let mut orders = 0;
    loop {
        let learned = learn(pool, hot, settings).await?;
        if learned.orders + learned.signals == 0 {
            return Ok(orders);
        }
        orders += learned.orders;
    }
}

fn cache_key(hot: &HotState, product: Uuid) -> String {
    hot.keys().tagged(&format!("reco:{product}"), "neighbours")
}

async fn forget_cached(hot: &HotState, products: &[Uuid]) {
    if products.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for product in products {
        pipe.del(cache_key(hot, *product)).ignore();
    }
    let result: redis::RedisResult<()> = pipe.query_async(&mut hot.connection()).await;
    if let Err(error) = result {
        // The cache's TTL bounds how long a stale list is served.
        metrics::counter!("agora_redis_errors_total", "command" => "reco_forget").increment(1);
        tracing::warn!(%error, "dropping cached recommendations failed");
    }
}

/// A product's neighbours with their similarity, best first: from Redis, else from Postgres
/// (then cached).
pub async fn bought_together(
    client: &impl PreparedClient,
    hot: &HotState,
    product: Uuid,
) -> Result<Vec<(Uuid, f32)>, Error> {
    let key = cache_key(hot, product);
    let cached: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut hot.connection())
        .await;
    if let Ok(Some(cached)) = cached {
        if let Ok(list) = serde_json::from_str::<Vec<(Uuid, f32)>>(&cached) {
            metrics::counter!("agora_cache_requests_total", "cache" => "recommendations", "outcome" => "hit").increment(1);
            return Ok(list);
        }
    }
    metrics::counter!("agora_cache_requests_total", "cache" => "recommendations", "outcome" => "miss").increment(1);
    let list: Vec<(Uuid, f32)> = client
        .query(
            "SELECT neighbour_id, score FROM reco_neighbours WHERE product_id = $1
             ORDER BY score DESC, neighbour_id",
            &[&product],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if let Ok(json) = serde_json::to_string(&list) {
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&key)
            .arg(json)
            .arg("EX")
            .arg(CACHE_TTL_SECS)
            .query_async(&mut hot.connection())
            .await;
    }
    Ok(list)
}

/// The products a shopper bought (paid or fulfilled orders), most recent first.
pub async fn history(client: &impl PreparedClient, shopper: Uuid) -> Result<Vec<Uuid>, Error> {
    Ok(client
        .query(
            "SELECT l.product_id FROM orders o JOIN order_lines l ON l.order_id = o.id
             WHERE o.shopper_id = $1 AND o.status IN ('paid', 'fulfilled')
             GROUP BY l.product_id ORDER BY max(o.created_at) DESC LIMIT $2",
            &[&shopper, &HISTORY],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}

/// How a "for you" list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// From what the shopper bought: the neighbours of their products.
    BoughtTogether,
    /// Nothing to start from yet: what sells in their region.
    Popular,
}

/// Candidates for a shopper from their history: each neighbour of a product they bought,
/// scored by the sum of its similarities to their products.
pub async fn from_history(
    client: &impl PreparedClient,
    history: &[Uuid],
) -> Result<Vec<(Uuid, f32)>, Error> {
    if history.is_empty() {
        return Ok(Vec::new());
    }
    Ok(client
        .query(
            "SELECT neighbour_id, sum(score)::real AS score FROM reco_neighbours
             WHERE product_id = ANY($1) AND NOT neighbour_id = ANY($1)
             GROUP BY neighbour_id ORDER BY score DESC, neighbour_id LIMIT $2",
            &[&history, &CANDIDATES],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// What sells most in `region` (all regions when `None`), best first.
pub async fn popular(
    client: &impl PreparedClient,
    region: Option<&str>,
) -> Result<Vec<(Uuid, f32)>, Error> {
    let rows = match region {
        Some(region) => {
            client
                .query(
                    // Ordered by the column itself (not the cast output), so the index serves it.
                    "SELECT product_id, orders::real AS score FROM reco_region_counts
                     WHERE region = $1
                     ORDER BY reco_region_counts.orders DESC, product_id LIMIT $2",
                    &[&region, &CANDIDATES],
                )
                .await?
        }
        None => {
            client
                .query(
                    "SELECT product_id, weight FROM reco_item_counts
                     ORDER BY weight DESC, product_id LIMIT $1",
                    &[&CANDIDATES],
                )
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// One recommended product, as a storefront listing shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recommended {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub locale: String,
    pub title: String,
    pub price_from: Price,
    pub created_at: DateTime<Utc>,
    /// Similarity (or popularity) it was ranked by.
    pub score: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recommendations {
    pub items: Vec<Recommended>,
    pub strategy: Strategy,
    pub currency: &'static str,
}

/// The first `limit` candidates that are on the storefront now (listed: an active product of
/// an active seller; some variant in stock) and not in `exclude`, in the locale chain's
/// language and `currency`. With `prefer_locale`, products written in the chain's first
/// locale rank first within each run of candidates looked at (for popularity lists).
pub async fn render(
    client: &impl PreparedClient,
    candidates: &[(Uuid, f32)],
    exclude: &[Uuid],
    locales: &[&str],
    currency: Currency,
    limit: i64,
    prefer_locale: bool,
) -> Result<Vec<Recommended>, Error> {
    // Candidates come best first and most pass the filters: a few times the limit at a time
    // is enough, and each one looked at costs index probes.
    let run = usize::try_from(limit).unwrap_or(1).max(1) * RENDER_RUN_FACTOR;
    let mut shown = Vec::new();
    for chunk in candidates.chunks(run) {
        let wanted = limit - shown.len() as i64;
        if wanted <= 0 {
            break;
        }
        shown.extend(
            render_run(
                client,
                chunk,
                exclude,
                locales,
                currency,
                wanted,
                prefer_locale,
            )
            .await?,
        );
    }
    Ok(shown)
}

async fn render_run(
    client: &impl PreparedClient,
    candidates: &[(Uuid, f32)],
    exclude: &[Uuid],
    locales: &[&str],
    currency: Currency,
    limit: i64,
    prefer_locale: bool,
) -> Result<Vec<Recommended>, Error> {
    let ids: Vec<Uuid> = candidates.iter().map(|(id, _)| *id).collect();
    let scores: Vec<f32> = candidates.iter().map(|(_, score)| *score).collect();
    let rows = client
        .query(
            "SELECT cand.id, p.seller_id, p.created_at, lp.amount, lp.converted, c.locale, c.title,
                    cand.score
             FROM unnest($1::uuid[], $2::real[]) WITH ORDINALITY AS cand (id, score, rank)
             JOIN product_listing_prices lp
               ON lp.product_id = cand.id AND lp.currency = $3 AND lp.listed
             JOIN products p ON p.id = cand.id
             CROSS JOIN LATERAL (
                 SELECT c.locale, c.title FROM product_content c
                 WHERE c.product_id = p.id AND (c.locale = ANY($4::text[]) OR c.locale = p.default_locale)
                 ORDER BY coalesce(array_position($4::text[], c.locale), 1000) LIMIT 1
             ) c
             WHERE NOT cand.id = ANY($5)
               AND EXISTS (SELECT 1 FROM variants v WHERE v.product_id = cand.id
                             AND v.stock_on_hand - v.held - v.sold > 0)
             ORDER BY ($7 AND c.locale = ($4::text[])[1]) DESC, cand.rank
             LIMIT $6",
            &[
                &ids,
                &scores,
                &currency.code(),
                &locales,
                &exclude,
                &limit,
                &prefer_locale,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Recommended {
            id: row.get(0),
            seller_id: row.get(1),
            created_at: row.get(2),
            price_from: Price {
                amount: currency.round(row.get(3)),
                currency: currency.code(),
                converted: row.get(4),
            },
            locale: row.get(5),
            title: row.get(6),
            score: row.get(7),
        })
        .collect())
}

/// The region a shopper last ordered or carted in, for the popularity fallback.
pub async fn home_region(
    client: &impl PreparedClient,
    shopper: Uuid,
) -> Result<Option<String>, Error> {
    Ok(client
        .query_opt(
            "SELECT region FROM (
                 SELECT region, created_at FROM orders WHERE shopper_id = $1
                 UNION ALL
                 SELECT region, created_at FROM carts WHERE shopper_id = $1
             ) seen ORDER BY created_at DESC LIMIT 1",
            &[&shopper],
        )
        .await?
        .map(|row| row.get(0)))
}

/// The learner the recommender actor runs: [`learn`] on this process's pool and Redis.
pub struct PgLearner {
    pub pool: deadpool_postgres::Pool,
    pub hot: HotState,
    pub settings: RecommendationSettings,
}

impl agora_actors::recommender::Learner for PgLearner {
    fn learn(&self) -> futures_util::future::BoxFuture<'static, Result<usize, String>> {
        let (pool, hot, settings) = (self.pool.clone(), self.hot.clone(), self.settings.clone());
        Box::pin(async move {
            learn(&pool, &hot, &settings)
                .await
                .map(|learned| learned.orders + learned.signals)
                .map_err(|error| crate::error::error_chain(&error))
        })
    }
}

/// The first `limit` candidate ids not in `exclude` (what the evaluation compares).
pub fn top_ids(candidates: &[(Uuid, f32)], exclude: &[Uuid], limit: usize) -> Vec<Uuid> {
    let excluded: BTreeSet<&Uuid> = exclude.iter().collect();
    candidates
        .iter()
        .filter(|(id, _)| !excluded.contains(id))
        .map(|(id, _)| *id)
        .take(limit)
        .collect()
}
