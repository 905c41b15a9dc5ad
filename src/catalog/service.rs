//! The catalog as sellers change it: each change one transaction, then the product cache
//! evicted and, where prices moved, a price notice per repriced SKU to every process.

use uuid::Uuid;

use super::{
    cache,
    input::{NewProduct, ProductPatch},
    ProductRecord,
};
use crate::{
    configuration::Pricing,
    error::Error,
    hot_state::HotState,
    notices::{self, Notice},
};

/// What changing products needs: Postgres, Redis (the product cache, notices) and the
/// store's prices. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    pub pool: deadpool_postgres::Pool,
    pub hot: HotState,
    pub pricing: Pricing,
    /// How long a product read for the storefront stays in the Redis cache.
    pub cache_ttl_secs: u64,
}

impl Catalog {
    /// A product as the storefront shows it (no stock figures), from the cache or Postgres;
    /// "not found" unless it is on the storefront (active, of an active seller).
    pub async fn storefront_product(&self, id: Uuid) -> Result<ProductRecord, Error> {
        let product = match cache::get(&self.hot, id).await {
            Some(product) => product,
            None => {
                let client = self.pool.get().await?;
                let product = super::load(&*client, id)
                    .await?
                    .ok_or(Error::NotFound("product"))?
                    .without_stock();
                cache::put(&self.hot, &product, self.cache_ttl_secs).await;
                product
            }
        };
        if !product.is_on_storefront() {
            return Err(Error::NotFound("product"));
        }
        Ok(product)
    }

    /// Creates a product of the seller with its variants; answers the seller's view of it.
    pub async fn create_product(
        &self,
        seller_id: Uuid,
        product: &NewProduct,
    ) -> Result<ProductRecord, Error> {
        let draft = product.validate(&self.pricing)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = super::create(&tx, &self.pricing, seller_id, &draft).await?;
        tx.commit().await?;
        let product = super::load_own(&*client, seller_id, id).await?;
        tracing::info!(product_id = %id, variants = product.variants.len(), "product created");
        Ok(product)
    }

    /// Applies the seller's patch to its own product; followers of a repriced SKU are told its
    /// new prices. Answers the seller's view of the product.
    pub async fn update_product(
        &self,
        seller_id: Uuid,
        id: Uuid,
        patch: &ProductPatch,
    ) -> Result<ProductRecord, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let repriced = super::update(&tx, &self.pricing, seller_id, id, patch).await?;
        tx.commit().await?;
        cache::evict(&self.hot, &[id]).await;
        let record = super::load_own(&*client, seller_id, id).await?;
        drop(client);
        let repriced = record
            .variants
            .iter()
            .filter(|v| repriced.contains(&v.sku.to_ascii_uppercase()));
        for variant in repriced {
            let notice = Notice::Price {
                sku: variant.sku.clone(),
                base_currency: record.base_currency.clone(),
                prices: variant.prices.clone(),
            };
            notices::publish(&self.hot, &notice).await;
        }
        Ok(record)
    }

    /// Takes the seller's product off the storefront (`archived`) or puts it back (`active`).
    pub async fn set_status(
        &self,
        seller_id: Uuid,
        id: Uuid,
        status: &str,
    ) -> Result<ProductRecord, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        super::set_status(&tx, &self.pricing.fx, seller_id, id, status).await?;
        tx.commit().await?;
        cache::evict(&self.hot, &[id]).await;
        tracing::info!(product_id = %id, status, "product status changed");
        super::load_own(&*client, seller_id, id).await
    }
}
