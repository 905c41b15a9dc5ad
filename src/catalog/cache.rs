//! The hot cache in front of product pages: stored product documents in Redis.
//!
//! Promises: a cached document never holds stock; a seller's change, an archive or a seller's
//! suspension evicts it before the API answers, so every process serves the change at once;
//! entries also expire after `catalog.product_cache_ttl_secs`. Redis being down only costs
//! speed: reads fall back to Postgres and evictions are retried by the TTL.

use redis::AsyncCommands;
use uuid::Uuid;

use super::ProductRecord;
use crate::hot_state::HotState;

/// Cached documents per Redis round trip when evicting a seller's whole catalog.
const EVICT_BATCH: usize = 500;

fn key(hot: &HotState, id: Uuid) -> String {
    hot.keys().tagged(&format!("product:{id}"), "doc")
}

pub async fn get(hot: &HotState, id: Uuid) -> Option<ProductRecord> {
    let cached: redis::RedisResult<Option<Vec<u8>>> = hot.connection().get(key(hot, id)).await;
    match cached {
        Ok(Some(bytes)) => {
            metrics::counter!("agora_cache_requests_total", "cache" => "product", "outcome" => "hit").increment(1);
            serde_json::from_slice(&bytes).ok()
        }
        Ok(None) => {
            metrics::counter!("agora_cache_requests_total", "cache" => "product", "outcome" => "miss").increment(1);
            None
        }
        Err(error) => {
            metrics::counter!("agora_cache_requests_total", "cache" => "product", "outcome" => "error").increment(1);
            tracing::warn!(%error, "product cache unavailable; reading Postgres");
            None
        }
    }
}

pub async fn put(hot: &HotState, product: &ProductRecord, ttl_secs: u64) {
    let Ok(bytes) = serde_json::to_vec(&product.clone().without_stock()) else {
        return;
    };
    let stored: redis::RedisResult<()> = hot
        .connection()
        .set_ex(key(hot, product.id), bytes, ttl_secs)
        .await;
    if let Err(error) = stored {
        tracing::warn!(%error, "could not cache a product");
    }
}

pub async fn evict(hot: &HotState, ids: &[Uuid]) {
    for batch in ids.chunks(EVICT_BATCH) {
        let keys: Vec<String> = batch.iter().map(|id| key(hot, *id)).collect();
        // One DEL per key: keys of different products live in different cluster slots.
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.del(key).ignore();
        }
        let evicted: redis::RedisResult<()> = pipe.query_async(&mut hot.connection()).await;
        if let Err(error) = evicted {
            tracing::warn!(%error, "could not evict cached products; they expire by TTL");
        }
    }
}
