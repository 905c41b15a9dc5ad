//! Measuring the recommender, not asserting it: a generated order history with known
//! structure (bundles of products bought together, plus noise), a held-out split, and
//! precision@10 / recall@10 of "for you" against a popularity baseline.
//!
//! The data: products fall into bundles; each shopper favours one or two bundles and places a
//! few orders, each of two or three products from a favourite bundle and, with probability
//! `noise`, one product drawn by popularity (a few best-sellers get most of the noise). Each
//! shopper's last order is held out; the recommender learns the rest with the very code the
//! server runs ([`super::record`]), then recommends from each shopper's training history. A
//! held-out product the shopper had not bought before is a hit.

use std::collections::{BTreeSet, HashMap};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;
use uuid::Uuid;

use super::{from_history, popular, record, top_ids, Basket, Increments};

/// Recommendations compared per shopper.
pub const K: usize = 10;
/// Orders recorded per transaction while training.
const TRAIN_CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    pub products: usize,
    pub bundle_size: usize,
    pub shoppers: usize,
    pub orders_per_shopper: usize,
    /// Chance that an order also has one product drawn by popularity.
    pub noise: f64,
    pub seed: u64,
}

pub struct Dataset {
    /// Every order but each shopper's last, in order.
    pub train: Vec<(Uuid, Basket)>,
    /// Each shopper's last order: what the evaluation hopes to recommend.
    pub held_out: HashMap<Uuid, Vec<Uuid>>,
}

/// A dataset over `shape.products` made-up product ids.
pub fn generate(shape: &Shape) -> Dataset {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let products: Vec<Uuid> = (0..shape.products)
        .map(|_| Uuid::from_u128(rng.random()))
        .collect();
    generate_over(&products, shape)
}

/// A dataset over the given products (bundles are runs of `shape.bundle_size` of them).
pub fn generate_over(products: &[Uuid], shape: &Shape) -> Dataset {
    let mut rng = StdRng::seed_from_u64(shape.seed.wrapping_add(1));
    let bundles: Vec<&[Uuid]> = products.chunks(shape.bundle_size.max(2)).collect();
    let mut train = Vec::new();
    let mut held_out = HashMap::new();
    for _ in 0..shape.shoppers {
        let shopper = Uuid::from_u128(rng.random());
        let favourites: Vec<usize> = (0..rng.random_range(1..=2))
            .map(|_| rng.random_range(0..bundles.len()))
            .collect();
        for order in 0..shape.orders_per_shopper {
            let bundle = bundles[favourites[rng.random_range(0..favourites.len())]];
            let mut basket: BTreeSet<Uuid> = BTreeSet::new();
            let wanted = rng.random_range(2..=3).min(bundle.len());
            while basket.len() < wanted {
                basket.insert(bundle[rng.random_range(0..bundle.len())]);
            }
            if rng.random_bool(shape.noise) {
                // Squaring a uniform draw favours the first products: a few best-sellers.
                let u: f64 = rng.random();
                let index = ((u * u) * products.len() as f64) as usize;
                basket.insert(products[index.min(products.len() - 1)]);
            }
            let products: Vec<Uuid> = basket.into_iter().collect();
            if order + 1 == shape.orders_per_shopper {
                held_out.insert(shopper, products);
            } else {
                train.push((
                    shopper,
                    Basket {
                        region: "EVAL".into(),
                        products,
                    },
                ));
            }
        }
    }
    Dataset { train, held_out }
}

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub shape: Shape,
    pub orders_learned: usize,
    /// Shoppers whose held-out order had something new to find.
    pub shoppers_evaluated: usize,
    pub precision_at_10: f64,
    pub recall_at_10: f64,
    pub baseline_precision_at_10: f64,
    pub baseline_recall_at_10: f64,
    /// precision@10 over the baseline's.
    pub lift: f64,
}

/// Learns `dataset`'s training orders into the recommender tables of the (scratch) database
/// behind `client`, replacing what they held, and scores both recommenders on the held-out
/// orders.
pub async fn evaluate(
    client: &mut tokio_postgres::Client,
    shape: Shape,
    neighbours: i64,
) -> anyhow::Result<Evaluation> {
    let dataset = generate(&shape);
    client
        .batch_execute("TRUNCATE reco_item_counts, reco_region_counts, reco_pairs, reco_neighbours")
        .await?;
    let mut histories: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (shopper, basket) in &dataset.train {
        histories
            .entry(*shopper)
            .or_default()
            .extend(basket.products.iter().copied());
    }
    let baskets: Vec<&Basket> = dataset.train.iter().map(|(_, b)| b).collect();
    for chunk in baskets.chunks(TRAIN_CHUNK) {
        let mut increments = Increments::default();
        for basket in chunk {
            increments.order(basket);
        }
        let tx = client.transaction().await?;
        record(&tx, &increments, neighbours).await?;
        tx.commit().await?;
    }
    let best_sellers = popular(&*client, None).await?;
    let (mut precision, mut recall, mut base_precision, mut base_recall, mut evaluated) =
        (0.0, 0.0, 0.0, 0.0, 0_usize);
    for (shopper, held_out) in &dataset.held_out {
        let history: Vec<Uuid> = histories.get(shopper).cloned().unwrap_or_default();
        let new: BTreeSet<Uuid> = held_out
            .iter()
            .filter(|p| !history.contains(p))
            .copied()
            .collect();
        if new.is_empty() {
            continue;
        }
        evaluated += 1;
        let mine = top_ids(&from_history(&*client, &history).await?, &history, K);
        let baseline = top_ids(&best_sellers, &history, K);
        let hits = |list: &[Uuid]| list.iter().filter(|p| new.contains(p)).count() as f64;
        precision += hits(&mine) / K as f64;
        recall += hits(&mine) / new.len() as f64;
        base_precision += hits(&baseline) / K as f64;
        base_recall += hits(&baseline) / new.len() as f64;
    }
    let n = evaluated.max(1) as f64;
    Ok(Evaluation {
        shape,
        orders_learned: dataset.train.len(),
        shoppers_evaluated: evaluated,
        precision_at_10: precision / n,
        recall_at_10: recall / n,
        baseline_precision_at_10: base_precision / n,
        baseline_recall_at_10: base_recall / n,
        lift: (precision / n) / (base_precision / n).max(1e-9),
    })
}
