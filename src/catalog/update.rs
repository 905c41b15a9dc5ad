//! A seller's patch of its own product: content per locale, defaults, variants and prices,
//! checked and written in the caller's transaction, with the listing prices rewritten there too.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::db::PreparedClient;
use uuid::Uuid;

use super::input::{ContentInput, ProductPatch, VariantDraft};
use super::*;
use crate::{
    configuration::Pricing,
    error::{Code, Error},
    locale::Locale,
    money::Currency,
};

/// Applies a seller's patch to its own product, in one transaction. Answers the
/// (upper-cased) SKUs whose prices may have moved in some currency.
pub async fn update(
    tx: &impl PreparedClient,
    pricing: &Pricing,
    seller_id: Uuid,
    id: Uuid,
    patch: &ProductPatch,
) -> Result<Vec<String>, Error> {
    let input::PatchFields {
        default_locale,
        base_currency,
        variants: changes,
    } = patch.validate_fields(pricing)?;
    let locked = lock_own_product(tx, seller_id, id).await?;
    let current = load(tx, id).await?.ok_or(Error::NotFound("product"))?;
    let (default_locale, base_currency) =
        patched_defaults(pricing, default_locale, base_currency, &locked)?;
    let content = ContentPatch::validate(patch)?;
    content.check_default_locale(&current, &default_locale)?;
    let variants = apply_variant_changes(tx, id, &current, &changes).await?;
    check_variant_count(&current, &variants.added)?;
    check_changed_base_prices(&changes, &base_currency)?;
    let repriced = variants.repriced_skus();
    check_unchanged_base_prices(&current, &repriced, &base_currency)?;

    write_product_defaults(tx, id, &default_locale, &base_currency).await?;
    content.write(tx, id).await?;
    write_price_changes(tx, id, &variants.prices).await?;
    let next_position = i16::try_from(current.variants.len()).unwrap_or(i16::MAX);
    insert_variants(tx, id, next_position, &variants.added).await?;
    refresh_listing_prices(tx, &pricing.fx, Some(id)).await?;
    // A new base currency moves every converted price; otherwise only the repriced SKUs'.
    if base_currency.code() != locked.get::<_, &str>(1).trim() {
        return Ok(current
            .variants
            .iter()
            .map(|v| v.sku.to_ascii_uppercase())
            .collect());
    }
    Ok(repriced)
}

/// Locks the seller's product for the patch; answers its stored default locale and base
/// currency. Another seller's product is "not found".
pub(super) async fn lock_own_product(
    tx: &impl PreparedClient,
    seller_id: Uuid,
    id: Uuid,
) -> Result<tokio_postgres::Row, Error> {
    tx.query_opt(
        "SELECT default_locale, base_currency FROM products
             WHERE id = $1 AND seller_id = $2 FOR UPDATE",
        &[&id, &seller_id],
    )
    .await?
    .ok_or(Error::NotFound("product"))
}

/// The default locale and base currency the patched product will have: the patch's where
/// given, else the stored ones (`locked`, from [`lock_own_product`]).
pub(super) fn patched_defaults(
    pricing: &Pricing,
    default_locale: Option<Locale>,
    base_currency: Option<Currency>,
    locked: &tokio_postgres::Row,
) -> Result<(Locale, Currency), Error> {
    let default_locale = match default_locale {
        Some(locale) => locale,
        None => input::parse_locale("default_locale", locked.get::<_, &str>(0))?,
    };
    let base_currency = match base_currency {
        Some(currency) => currency,
        None => pricing
            .fx
            .parse_supported("base_currency", locked.get::<_, &str>(1).trim())?,
    };
    Ok((default_locale, base_currency))
}

/// A patch's content: the locales it writes and those it removes (given as `null`).
pub(super) struct ContentPatch {
    written: BTreeMap<Locale, ContentInput>,
    removed: Vec<Locale>,
}

impl ContentPatch {
    /// Validates the given locales on their own (the merged result is checked by
    /// [`Self::check_default_locale`]).
    fn validate(patch: &ProductPatch) -> Result<Self, Error> {
        let mut removed = Vec::new();
        let written = match &patch.content {
            Some(entries) => {
                let written =
                    input::validate_content(entries.iter().map(|(k, v)| (k, v.as_ref())))?;
                for (raw, value) in entries {
                    if value.is_none() {
                        removed.push(input::parse_locale(&format!("content.{raw}"), raw)?);
                    }
                }
                written
            }
            None => BTreeMap::new(),
        };
        Ok(Self { written, removed })
    }

    /// Checks that the product still has content in its default locale once the patch is
    /// merged into `current`.
    fn check_default_locale(
        &self,
        current: &ProductRecord,
        default_locale: &Locale,
    ) -> Result<(), Error> {
        let mut merged_locales: Vec<String> = current.content.keys().cloned().collect();
        merged_locales.retain(|l| !self.removed.iter().any(|r| r.as_str() == l));
        merged_locales.extend(self.written.keys().map(|l| l.as_str().to_owned()));
        if !merged_locales.iter().any(|l| l == default_locale.as_str()) {
            return Err(Error::invalid_field(
                Code::MissingDefaultContent,
                format!("content.{default_locale}"),
                "the default locale needs a title",
            ));
        }
        Ok(())
    }

    /// Removes the removed locales, then writes the written ones.
    async fn write(&self, tx: &impl PreparedClient, id: Uuid) -> Result<(), Error> {
        if !self.removed.is_empty() {
            let removed: Vec<&str> = self.removed.iter().map(Locale::as_str).collect();
            tx.execute(
                "DELETE FROM product_content WHERE product_id = $1 AND locale = ANY($2)",
                &[&id, &removed],
            )
            .await?;
        }
        if !self.written.is_empty() {
            write_content(tx, id, &self.written).await?;
        }
        Ok(())
    }
}

/// A patch's variants, split: the new ones to insert, and the new price sets of existing ones
/// (by stored SKU) to write once the product is validated.
pub(super) struct VariantChanges {
    added: Vec<VariantDraft>,
    prices: Vec<(String, BTreeMap<Currency, Decimal>)>,
}

impl VariantChanges {
    /// The (upper-cased) SKUs of the existing variants given new prices.
    fn repriced_skus(&self) -> Vec<String> {
        self.prices
            .iter()
            .map(|(sku, _)| sku.to_ascii_uppercase())
            .collect()
    }
}

/// Splits the patch's variants into changes of existing ones and new ones; an existing one's
/// attributes, weight and images are written as its change comes (its prices are kept for
/// later). New variants need prices and stock; existing ones' stock cannot be patched.
pub(super) async fn apply_variant_changes(
    tx: &impl PreparedClient,
    id: Uuid,
    current: &ProductRecord,
    changes: &[input::VariantChange],
) -> Result<VariantChanges, Error> {
    let existing: BTreeMap<String, &VariantRecord> = current
        .variants
        .iter()
        .map(|v| (v.sku.to_ascii_uppercase(), v))
        .collect();
    let mut new_variants = Vec::new();
    let mut price_changes = Vec::new();
    for (index, change) in changes.iter().enumerate() {
        let field = format!("variants[{index}]");
        match existing.get(&change.sku.to_ascii_uppercase()) {
            Some(record) => {
                if change.stock.is_some() {
                    return Err(Error::invalid_field(
                        Code::StockNotPatchable,
                        format!("{field}.stock"),
                        "change stock of an existing SKU through /api/v1/inventory/{sku}",
                    ));
                }
                update_variant_fields(tx, id, record, change).await?;
                if let Some(prices) = &change.prices {
                    price_changes.push((record.sku.clone(), prices.clone()));
                }
            }
            None => {
                let (Some(prices), Some(stock)) = (change.prices.clone(), change.stock) else {
                    return Err(Error::invalid_field(
                        Code::MissingField,
                        format!("{field}.prices"),
                        "a new variant needs prices and stock",
                    ));
                };
                new_variants.push(VariantDraft {
                    sku: change.sku.clone(),
                    prices,
                    stock,
                    attributes: change.attributes.clone().unwrap_or_default(),
                    weight_grams: change.weight_grams.unwrap_or(0),
                    image_urls: change.image_urls.clone().unwrap_or_default(),
                });
            }
        }
    }
    Ok(VariantChanges {
        added: new_variants,
        prices: price_changes,
    })
}

/// Writes the given attributes, weight and images of an existing variant (the others stay).
pub(super) async fn update_variant_fields(
    tx: &impl PreparedClient,
    id: Uuid,
    record: &VariantRecord,
    change: &input::VariantChange,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE variants SET
                         attributes = coalesce($3, attributes),
                         weight_grams = coalesce($4, weight_grams),
                         image_urls = coalesce($5, image_urls)
                     WHERE product_id = $1 AND upper(sku) = upper($2)",
        &[
            &id,
            &record.sku,
            &change
                .attributes
                .as_ref()
                .map(|a| serde_json::to_value(a).unwrap_or_default()),
            &change.weight_grams.map(clamp_i32),
            &change.image_urls,
        ],
    )
    .await?;
    Ok(())
}

/// Checks that the product stays within the variant limit with `added`.
pub(super) fn check_variant_count(
    current: &ProductRecord,
    added: &[VariantDraft],
) -> Result<(), Error> {
    if current.variants.len() + added.len() > input::MAX_VARIANTS {
        return Err(Error::invalid_field(
            Code::TooManyVariants,
            "variants",
            format!("a product has at most {} variants", input::MAX_VARIANTS),
        ));
    }
    Ok(())
}

/// Checks that every price set in the patch, for an old or a new variant, has a price in the
/// base currency.
pub(super) fn check_changed_base_prices(
    changes: &[input::VariantChange],
    base_currency: &Currency,
) -> Result<(), Error> {
    for (index, change) in changes.iter().enumerate() {
        if let Some(prices) = &change.prices {
            if !prices.contains_key(base_currency) {
                return Err(Error::invalid_field(
                    Code::MissingBasePrice,
                    format!("variants[{index}].prices.{base_currency}"),
                    format!("every variant needs a price in the base currency {base_currency}"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that every existing variant the patch does not reprice already has a price in the
/// (possibly new) base currency.
pub(super) fn check_unchanged_base_prices(
    current: &ProductRecord,
    repriced: &[String],
    base_currency: &Currency,
) -> Result<(), Error> {
    if let Some(unpriced) = current.variants.iter().find(|v| {
        !repriced.contains(&v.sku.to_ascii_uppercase())
            && !v.prices.contains_key(base_currency.code())
    }) {
        return Err(Error::invalid_field(
            Code::MissingBasePrice,
            "base_currency",
            format!("variant {} has no price in {base_currency}", unpriced.sku),
        ));
    }
    Ok(())
}

/// Writes the product's default locale and base currency, and bumps its version.
pub(super) async fn write_product_defaults(
    tx: &impl PreparedClient,
    id: Uuid,
    default_locale: &Locale,
    base_currency: &Currency,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE products SET default_locale = $2, base_currency = $3,
                updated_at = now(), version = version + 1
         WHERE id = $1",
        &[&id, &default_locale.as_str(), &base_currency.code()],
    )
    .await?;
    Ok(())
}

/// Replaces the price sets of the existing variants the patch repriced (`prices`, by SKU).
pub(super) async fn write_price_changes(
    tx: &impl PreparedClient,
    id: Uuid,
    prices: &[(String, BTreeMap<Currency, Decimal>)],
) -> Result<(), Error> {
    if prices.is_empty() {
        return Ok(());
    }
    let skus: Vec<String> = prices.iter().map(|(sku, _)| sku.clone()).collect();
    let ids: BTreeMap<String, Uuid> = tx
        .query(
            "SELECT sku, id FROM variants WHERE product_id = $1 AND sku = ANY($2)",
            &[&id, &skus],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    replace_prices(
        tx,
        prices
            .iter()
            .filter_map(|(sku, prices)| ids.get(sku).map(|variant_id| (*variant_id, prices))),
    )
    .await
}
