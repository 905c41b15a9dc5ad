//! The marketplace catalog: products, their variants, content per locale and prices per
//! currency, as sellers write them and shoppers browse them.
//!
//! Promises: every write is one Postgres transaction (nothing is half-written); a seller only
//! ever reads or changes its own products (others' are "not found"); the storefront shows only
//! active products of active sellers; each product's listing prices (lowest variant price in
//! every store currency, explicit or converted) are rewritten in the same transaction as the
//! product, so price filters and sorts never disagree with the product page.

pub mod cache;
pub mod input;
mod service;
pub mod storefront;
mod update;

pub use service::Catalog;
pub use update::update;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;

use crate::db::PreparedClient;
use uuid::Uuid;

use self::input::{ContentInput, ProductDraft, VariantDraft};
use crate::{
    configuration::Pricing,
    error::{Code, Error},
    locale::Locale,
    money::{Currency, FxRates},
};

/// A product as stored: all it takes to render it in any locale and currency.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductRecord {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub default_locale: String,
    pub base_currency: String,
    /// `active` or `archived`.
    pub status: String,
    /// Whether the seller may sell (`active`) or was suspended by the operator.
    pub seller_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub content: BTreeMap<String, Content>,
    pub variants: Vec<VariantRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Content {
    pub title: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariantRecord {
    pub sku: String,
    pub attributes: BTreeMap<String, String>,
    pub weight_grams: i32,
    pub image_urls: Vec<String>,
    /// Explicit prices by currency, as decimal strings.
    #[schema(value_type = BTreeMap<String, String>)]
    pub prices: BTreeMap<String, Decimal>,
    /// Units on hand; only the seller sees it (never cached, never on the storefront).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_on_hand: Option<i32>,
}

impl ProductRecord {
    pub fn is_on_storefront(&self) -> bool {
        self.status == "active" && self.seller_status == "active"
    }

    /// The same record without seller-only data, for caches and the storefront.
    pub fn without_stock(mut self) -> Self {
        for variant in &mut self.variants {
            variant.stock_on_hand = None;
        }
        self
    }
}

/// Loads one product with its content, variants, prices and stock.
pub async fn load(client: &impl PreparedClient, id: Uuid) -> Result<Option<ProductRecord>, Error> {
    Ok(load_many(client, &[id]).await?.pop())
}

/// Loads products in one round trip, in the order of `ids` (missing ones are skipped).
pub async fn load_many(
    client: &impl PreparedClient,
    ids: &[Uuid],
) -> Result<Vec<ProductRecord>, Error> {
    let rows = client
        .query(
            "SELECT jsonb_build_object(
                 'id', p.id, 'seller_id', p.seller_id, 'default_locale', p.default_locale,
                 'base_currency', p.base_currency, 'status', p.status, 'seller_status', s.status,
                 'created_at', p.created_at, 'updated_at', p.updated_at, 'version', p.version,
                 'content', (SELECT coalesce(jsonb_object_agg(c.locale, jsonb_build_object(
                                 'title', c.title, 'description', c.description)), '{}')
                             FROM product_content c WHERE c.product_id = p.id),
                 'variants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                 'sku', v.sku, 'attributes', v.attributes,
                                 'weight_grams', v.weight_grams, 'image_urls', v.image_urls,
                                 'stock_on_hand', v.stock_on_hand,
                                 'prices', (SELECT coalesce(jsonb_object_agg(vp.currency, vp.amount::text), '{}')
                                            FROM variant_prices vp WHERE vp.variant_id = v.id)
                              ) ORDER BY v.position), '[]')
                              FROM variants v WHERE v.product_id = p.id))
             FROM products p JOIN sellers s ON s.id = p.seller_id
             WHERE p.id = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut products = rows
        .into_iter()
        .map(|row| {
            serde_json::from_value::<ProductRecord>(row.get(0))
                .map_err(|e| Error::internal(anyhow::Error::new(e).context("decoding a product")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    products.sort_by_key(|product| ids.iter().position(|id| *id == product.id));
    // Stored with four decimals; shown with the currency's own.
    for variant in products.iter_mut().flat_map(|p| p.variants.iter_mut()) {
        for (code, amount) in &mut variant.prices {
            if let Some(currency) = Currency::from_code(code.trim()) {
                *amount = currency.round(*amount);
            }
        }
    }
    Ok(products)
}

/// Loads a product only if `seller_id` owns it; anything else is "not found".
pub async fn load_own(
    client: &impl PreparedClient,
    seller_id: Uuid,
    id: Uuid,
) -> Result<ProductRecord, Error> {
    load(client, id)
        .await?
        .filter(|product| product.seller_id == seller_id)
        .ok_or(Error::NotFound("product"))
}

/// Creates a product with its variants, content, prices, stock ledger and listing prices.
pub async fn create(
    tx: &impl PreparedClient,
    pricing: &Pricing,
    seller_id: Uuid,
    draft: &ProductDraft,
) -> Result<Uuid, Error> {
    let id = Uuid::now_v7();
    tx.execute(
        "INSERT INTO products (id, seller_id, default_locale, base_currency) VALUES ($1, $2, $3, $4)",
        &[&id, &seller_id, &draft.default_locale.as_str(), &draft.base_currency.code()],
    )
    .await?;
    write_content(tx, id, &draft.content).await?;
    insert_variants(tx, id, 0, &draft.variants).await?;
    refresh_listing_prices(tx, &pricing.fx, Some(id)).await?;
    Ok(id)
}

async fn write_content(
    tx: &impl PreparedClient,
    product_id: Uuid,
    content: &BTreeMap<Locale, ContentInput>,
) -> Result<(), Error> {
    let locales: Vec<&str> = content.keys().map(Locale::as_str).collect();
    let configs: Vec<&str> = content.keys().map(Locale::search_config).collect();
    let titles: Vec<&str> = content.values().map(|c| c.title.as_str()).collect();
    let descriptions: Vec<&str> = content.values().map(|c| c.description.as_str()).collect();
    tx.execute(
        "INSERT INTO product_content (product_id, locale, search_config, title, description)
         SELECT $1, l, c::regconfig, t, d FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS x(l, c, t, d)
         ON CONFLICT (product_id, locale) DO UPDATE
            SET title = EXCLUDED.title, description = EXCLUDED.description,
                search_config = EXCLUDED.search_config",
        &[&product_id, &locales, &configs, &titles, &descriptions],
    )
    .await?;
    Ok(())
}

/// Inserts variants from `first_position` on, with their prices and initial ledger entries.
async fn insert_variants(
    tx: &impl PreparedClient,
    product_id: Uuid,
    first_position: i16,
    variants: &[VariantDraft],
) -> Result<(), Error> {
    if variants.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = variants.iter().map(|_| Uuid::now_v7()).collect();
    let positions: Vec<i16> = (0..variants.len())
        .map(|i| first_position.saturating_add(i16::try_from(i).unwrap_or(i16::MAX)))
        .collect();
    let skus: Vec<&str> = variants.iter().map(|v| v.sku.as_str()).collect();
    let attributes: Vec<serde_json::Value> = variants
        .iter()
        .map(|v| serde_json::to_value(&v.attributes).unwrap_or_default())
        .collect();
    let weights: Vec<i32> = variants.iter().map(|v| clamp_i32(v.weight_grams)).collect();
    // Lists of different lengths cannot form one Postgres array, so each travels as JSON.
    let images: Vec<serde_json::Value> = variants
        .iter()
        .map(|v| serde_json::Value::from(v.image_urls.clone()))
        .collect();
    let stocks: Vec<i32> = variants.iter().map(|v| clamp_i32(v.stock)).collect();
    tx.execute(
        "INSERT INTO variants (id, product_id, position, sku, attributes, weight_grams, image_urls, stock_on_hand)
         SELECT i, $2, p, s, a, w, ARRAY(SELECT jsonb_array_elements_text(im)), st
         FROM unnest($1::uuid[], $3::int2[], $4::text[], $5::jsonb[], $6::int4[], $7::jsonb[], $8::int4[])
              AS x(i, p, s, a, w, im, st)",
        &[&ids, &product_id, &positions, &skus, &attributes, &weights, &images, &stocks],
    )
    .await
    .map_err(|error| sku_conflict(error, variants))?;
    replace_prices(
        tx,
        variants.iter().zip(&ids).map(|(v, id)| (*id, &v.prices)),
    )
    .await?;
    tx.execute(
        "INSERT INTO stock_ledger (variant_id, kind, delta, stock_after, reason)
         SELECT i, 'initial', st, st, 'product created' FROM unnest($1::uuid[], $2::int4[]) AS x(i, st)",
        &[&ids, &stocks],
    )
    .await?;
    Ok(())
}

fn clamp_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Turns a unique violation on a SKU into 409 `sku_taken` naming the variant.
fn sku_conflict(error: tokio_postgres::Error, variants: &[VariantDraft]) -> Error {
    let Some(db) = error.as_db_error() else {
        return error.into();
    };
    if db.code() != &SqlState::UNIQUE_VIOLATION || db.constraint() != Some("variants_sku_key") {
        return error.into();
    }
    let taken = db
        .detail()
        .and_then(|detail| detail.split("=(").nth(1))
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default()
        .to_owned();
    let index = variants
        .iter()
        .position(|v| v.sku.eq_ignore_ascii_case(&taken))
        .unwrap_or(0);
    Error::Conflict {
        code: Code::SkuTaken,
        message: format!("SKU {taken} is already used in the marketplace"),
        field: Some(format!("variants[{index}].sku")),
    }
}

/// Replaces the whole explicit price set of each given variant.
async fn replace_prices<'a>(
    tx: &impl PreparedClient,
    prices: impl Iterator<Item = (Uuid, &'a BTreeMap<Currency, Decimal>)>,
) -> Result<(), Error> {
    let mut variant_ids = Vec::new();
    let mut currencies = Vec::new();
    let mut amounts = Vec::new();
    let mut touched = Vec::new();
    for (variant_id, set) in prices {
        touched.push(variant_id);
        for (currency, amount) in set {
            variant_ids.push(variant_id);
            currencies.push(currency.code());
            amounts.push(*amount);
        }
    }
    tx.execute(
        "DELETE FROM variant_prices WHERE variant_id = ANY($1)",
        &[&touched],
    )
    .await?;
    tx.execute(
        "INSERT INTO variant_prices (variant_id, currency, amount)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::numeric[])",
        &[&variant_ids, &currencies, &amounts],
    )
    .await?;
    Ok(())
}

/// Rewrites the listing rows of one product (or of all, after the exchange rates changed):
/// per store currency, the lowest variant price, explicit or converted from the base price and
/// rounded half away from zero to the currency's minor units (as `FxRates::convert` does), and
/// whether the product is listed. For one product it first share-locks the seller, so a
/// concurrent suspension waits for this transaction and then sees its rows.
pub async fn refresh_listing_prices(
    client: &impl PreparedClient,
    fx: &FxRates,
    product: Option<Uuid>,
) -> Result<u64, Error> {
    let currencies: Vec<&str> = fx.currencies().map(|c| c.code()).collect();
    let rates: Vec<Decimal> = fx.currencies().filter_map(|c| fx.rate(c)).collect();
    let exponents: Vec<i32> = fx
        .currencies()
        .map(|c| i32::try_from(c.exponent()).unwrap_or(0))
        .collect();
    if let Some(id) = product {
        client
            .execute(
                "SELECT 1 FROM sellers s JOIN products p ON p.seller_id = s.id
                 WHERE p.id = $1 FOR SHARE OF s",
                &[&id],
            )
            .await?;
        client
            .execute(
                "DELETE FROM product_listing_prices WHERE product_id = $1",
                &[&id],
            )
            .await?;
    } else {
        client
            // DELETE, not TRUNCATE: other processes keep listing from the old rows until the
            // rebuild commits.
            .execute("DELETE FROM product_listing_prices", &[])
            .await?;
    }
    let written = client
        .execute(
            "INSERT INTO product_listing_prices (product_id, seller_id, currency, amount, converted, listed)
             SELECT product_id, seller_id, currency, min(amount),
                    (array_agg(converted ORDER BY amount, converted))[1], bool_and(listed)
             FROM (
                 SELECT v.product_id, p.seller_id, fx.currency,
                        coalesce(own.amount, round(base.amount * fx.rate / bfx.rate, fx.exponent)) AS amount,
                        own.amount IS NULL AS converted,
                        p.status = 'active' AND s.status = 'active' AS listed
                 FROM variants v
                 JOIN products p ON p.id = v.product_id
                 JOIN sellers s ON s.id = p.seller_id
                 CROSS JOIN unnest($1::text[], $2::numeric[], $3::int4[]) AS fx(currency, rate, exponent)
                 JOIN unnest($1::text[], $2::numeric[]) AS bfx(currency, rate)
                      ON bfx.currency = p.base_currency
                 LEFT JOIN variant_prices own ON own.variant_id = v.id AND own.currency = fx.currency
                 LEFT JOIN variant_prices base ON base.variant_id = v.id AND base.currency = p.base_currency
                 WHERE ($4::uuid IS NULL OR v.product_id = $4)
             ) AS priced
             WHERE amount IS NOT NULL
             GROUP BY product_id, seller_id, currency",
            &[&currencies, &rates, &exponents, &product],
        )
        .await?;
    Ok(written)
}

/// After a seller's suspension or reinstatement: lists or unlists all its products, in the
/// transaction that changed its status.
pub async fn relist_seller(client: &impl PreparedClient, seller_id: Uuid) -> Result<u64, Error> {
    Ok(client
        .execute(
            "UPDATE product_listing_prices lp
             SET listed = (p.status = 'active' AND s.status = 'active')
             FROM products p JOIN sellers s ON s.id = p.seller_id
             WHERE lp.product_id = p.id AND lp.seller_id = $1 AND p.seller_id = $1",
            &[&seller_id],
        )
        .await?)
}

/// Key of the advisory lock that serializes listing rebuilds across processes ("agora.lp").
const LISTING_REBUILD_LOCK_KEY: i64 = 0x6167_6f72_612e_6c70;

/// Rebuilds every listing price when the configured exchange rates differ from those the
/// stored ones were computed with; run at start, one process at a time.
pub async fn sync_exchange_rates(
    client: &mut deadpool_postgres::Object,
    fx: &FxRates,
) -> Result<bool, Error> {
    let fingerprint = fx
        .currencies()
        .map(|c| {
            format!(
                "{}={}",
                c.code(),
                fx.rate(c).unwrap_or_default().normalize()
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let tx = client.transaction().await?;
    // Processes starting together rebuild one at a time; the later ones find the new
    // fingerprint and skip.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&LISTING_REBUILD_LOCK_KEY],
    )
    .await?;
    let stored: Option<String> = tx
        .query_opt(
            "SELECT value FROM catalog_state WHERE key = 'fx_rates'",
            &[],
        )
        .await?
        .map(|row| row.get(0));
    if stored.as_deref() == Some(fingerprint.as_str()) {
        tx.commit().await?;
        return Ok(false);
    }
    // A large catalog takes longer than the per-request statement timeout allows.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    let started = std::time::Instant::now();
    let rows = refresh_listing_prices(&tx, fx, None).await?;
    tx.execute(
        "INSERT INTO catalog_state (key, value) VALUES ('fx_rates', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&fingerprint],
    )
    .await?;
    tx.commit().await?;
    // Fresh statistics for the planner and a set visibility map, so pages are chosen from the
    // index alone from the first request (autovacuum would get there later).
    client
        .batch_execute("VACUUM ANALYZE product_listing_prices")
        .await?;
    tracing::info!(
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "exchange rates changed: listing prices rebuilt"
    );
    Ok(true)
}

/// Takes a seller's product off the storefront (or puts it back); its SKUs stay reserved.
pub async fn set_status(
    tx: &impl PreparedClient,
    fx: &FxRates,
    seller_id: Uuid,
    id: Uuid,
    status: &str,
) -> Result<(), Error> {
    let updated = tx
        .execute(
            "UPDATE products SET status = $3, updated_at = now(), version = version + 1
             WHERE id = $1 AND seller_id = $2",
            &[&id, &seller_id, &status],
        )
        .await?;
    if updated == 0 {
        return Err(Error::NotFound("product"));
    }
    refresh_listing_prices(tx, fx, Some(id)).await?;
    Ok(())
}

/// A page of a seller's own products (archived ones too), newest first.
pub async fn list_own(
    client: &impl PreparedClient,
    seller_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ProductRecord>, Error> {
    let ids: Vec<Uuid> = client
        .query(
            "SELECT id FROM products WHERE seller_id = $1 AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            &[&seller_id, &before, &limit],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    load_many(client, &ids).await
}

/// The ids of a seller's products, for evicting their cache entries.
pub async fn product_ids_of(
    client: &impl PreparedClient,
    seller_id: Uuid,
) -> Result<Vec<Uuid>, Error> {
    Ok(client
        .query(
            "SELECT id FROM products WHERE seller_id = $1",
            &[&seller_id],
        )
        .await?
        .into_iter()
        .map(|row| row.get(0))
        .collect())
}
