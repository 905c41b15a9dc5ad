//! Sellers' product bodies, and their validation into drafts the store can write.
//!
//! Promises: a [`ProductDraft`] names only supported locales and currencies, amounts within
//! their currency's minor units, unique well-formed SKUs, bounded strings and lists, and a base
//! currency every variant is priced in; every refusal is a 422 naming the JSON path at fault.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    configuration::Pricing,
    error::{Code, Error},
    locale::{Locale, LocaleError},
    money::Currency,
};

/// Most variants one product may have.
pub const MAX_VARIANTS: usize = 100;
/// Most locales one product's content may be written in.
pub const MAX_LOCALES: usize = 30;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest SKU; SKUs are `[A-Za-z0-9][A-Za-z0-9._-]*`.
pub const MAX_SKU_CHARS: usize = 64;
/// Most attributes per variant, and the longest attribute name and value.
pub const MAX_ATTRIBUTES: usize = 20;
pub const MAX_ATTRIBUTE_NAME_CHARS: usize = 50;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 200;
/// Most image URLs per variant, and the longest URL.
pub const MAX_IMAGES: usize = 10;
pub const MAX_IMAGE_URL_CHARS: usize = 2048;
/// Heaviest variant, in grams (one tonne).
pub const MAX_WEIGHT_GRAMS: u32 = 1_000_000;
/// Most stock one SKU may hold.
pub const MAX_STOCK: u32 = 1_000_000_000;

/// `POST /api/v1/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// The locale served when a shopper's preferred ones are missing; must be in `content`.
    #[schema(example = "en")]
    pub default_locale: String,
    /// The currency prices in other currencies convert from when a variant has no explicit
    /// price in them. Default: the store's default currency, if every variant is priced in it.
    #[schema(example = "EUR")]
    pub base_currency: Option<String>,
    /// Title and description per BCP 47 locale.
    pub content: BTreeMap<String, ContentInput>,
    pub variants: Vec<NewVariant>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentInput {
    #[schema(example = "Trail running jacket")]
    pub title: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    #[schema(example = "JACKET-M-RED")]
    pub sku: String,
    /// Decimal strings per ISO 4217 currency, e.g. `{"EUR": "89.90", "JPY": "12800"}`.
    #[schema(value_type = BTreeMap<String, String>)]
    pub prices: BTreeMap<String, String>,
    /// Units on hand.
    pub stock: u32,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub weight_grams: u32,
    #[serde(default)]
    pub image_urls: Vec<String>,
}

/// `PATCH /api/v1/products/{id}`: every field optional; given ones replace.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub default_locale: Option<String>,
    pub base_currency: Option<String>,
    /// Locales to write; `null` removes a locale (never the default one).
    #[schema(value_type = Option<BTreeMap<String, ContentInput>>)]
    pub content: Option<BTreeMap<String, Option<ContentInput>>>,
    /// Variants by SKU: an existing SKU's given fields are replaced (its `prices` as a whole);
    /// a new SKU is added and then needs `prices` and `stock`. Stock of existing variants
    /// changes only through the inventory endpoints.
    pub variants: Option<Vec<VariantPatch>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantPatch {
    pub sku: String,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub prices: Option<BTreeMap<String, String>>,
    pub stock: Option<u32>,
    pub attributes: Option<BTreeMap<String, String>>,
    pub weight_grams: Option<u32>,
    pub image_urls: Option<Vec<String>>,
}

/// A validated product, ready to write.
#[derive(Debug, Clone)]
pub struct ProductDraft {
    pub default_locale: Locale,
    pub base_currency: Currency,
    pub content: BTreeMap<Locale, ContentInput>,
    pub variants: Vec<VariantDraft>,
}

#[derive(Debug, Clone)]
pub struct VariantDraft {
    pub sku: String,
    pub prices: BTreeMap<Currency, Decimal>,
    pub stock: u32,
    pub attributes: BTreeMap<String, String>,
    pub weight_grams: u32,
    pub image_urls: Vec<String>,
}

fn locale_error(field: &str, error: LocaleError) -> Error {
    let code = match error {
        LocaleError::Malformed(_) => Code::InvalidLocale,
        LocaleError::Unsupported(_) => Code::UnknownLocale,
    };
    Error::invalid_field(code, field, error.to_string())
}

pub fn parse_locale(field: &str, raw: &str) -> Result<Locale, Error> {
    Locale::parse(raw).map_err(|e| locale_error(field, e))
}

fn bounded_text(field: &str, value: &str, min: usize, max: usize) -> Result<String, Error> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length < min || length > max {
        return Err(Error::invalid_field(
            Code::InvalidLength,
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub fn parse_sku(field: &str, raw: &str) -> Result<String, Error> {
    let well_formed = !raw.is_empty()
        && raw.len() <= MAX_SKU_CHARS
        && raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !well_formed {
        return Err(Error::invalid_field(
            Code::InvalidSku,
            field,
            format!(
                "must be 1 to {MAX_SKU_CHARS} letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// Parses the SKUs of a request's variants, refusing more than [`MAX_VARIANTS`] and repeats
/// (SKUs compare without case, as the marketplace-wide uniqueness does).
fn parse_skus<'a>(raw: impl ExactSizeIterator<Item = &'a str>) -> Result<Vec<String>, Error> {
    if raw.len() > MAX_VARIANTS {
        return Err(Error::invalid_field(
            Code::TooManyVariants,
            "variants",
            format!("at most {MAX_VARIANTS} variants"),
        ));
    }
    let mut seen = BTreeSet::new();
    raw.enumerate()
        .map(|(index, raw)| {
            let field = format!("variants[{index}].sku");
            let sku = parse_sku(&field, raw)?;
            if !seen.insert(sku.to_ascii_uppercase()) {
                return Err(Error::invalid_field(
                    Code::DuplicateSku,
                    field,
                    format!("SKU {sku} appears twice in this request"),
                ));
            }
            Ok(sku)
        })
        .collect()
}

fn parse_content(field: &str, input: &ContentInput) -> Result<ContentInput, Error> {
    Ok(ContentInput {
        title: bounded_text(&format!("{field}.title"), &input.title, 1, MAX_TITLE_CHARS)?,
        description: bounded_text(
            &format!("{field}.description"),
            &input.description,
            0,
            MAX_DESCRIPTION_CHARS,
        )?,
    })
}

fn parse_prices(
    field: &str,
    prices: &BTreeMap<String, String>,
    pricing: &Pricing,
) -> Result<BTreeMap<Currency, Decimal>, Error> {
    if prices.is_empty() {
        return Err(Error::invalid_field(
            Code::MissingPrice,
            field,
            "needs at least one price",
        ));
    }
    let mut parsed = BTreeMap::new();
    for (code, amount) in prices {
        let path = format!("{field}.{code}");
        let currency = pricing.fx.parse_supported(&path, code)?;
        parsed.insert(currency, currency.parse_amount(&path, amount)?);
    }
    Ok(parsed)
}

fn parse_attributes(
    field: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Error::invalid_field(
            Code::TooManyAttributes,
            field,
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    attributes
        .iter()
        .map(|(name, value)| {
            let path = format!("{field}.{name}");
            Ok((
                bounded_text(&path, name, 1, MAX_ATTRIBUTE_NAME_CHARS)?,
                bounded_text(&path, value, 1, MAX_ATTRIBUTE_VALUE_CHARS)?,
            ))
        })
        .collect()
}

fn parse_images(field: &str, urls: &[String]) -> Result<Vec<String>, Error> {
    if urls.len() > MAX_IMAGES {
        return Err(Error::invalid_field(
            Code::TooManyImages,
            field,
            format!("at most {MAX_IMAGES} image URLs"),
        ));
    }
    urls.iter()
        .enumerate()
        .map(|(index, url)| {
            let valid = (url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= MAX_IMAGE_URL_CHARS
                && url.len() > "https://".len()
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if valid {
                Ok(url.clone())
            } else {
                Err(Error::invalid_field(
                    Code::InvalidUrl,
                    format!("{field}[{index}]"),
                    format!("must be an http(s) URL of at most {MAX_IMAGE_URL_CHARS} characters"),
                ))
            }
        })
        .collect()
}

fn check_stock(field: &str, stock: u32) -> Result<u32, Error> {
    if stock > MAX_STOCK {
        return Err(Error::invalid_field(
            Code::StockTooLarge,
            field,
            format!("must not exceed {MAX_STOCK}"),
        ));
    }
    Ok(stock)
}

fn check_weight(field: &str, grams: u32) -> Result<u32, Error> {
    if grams > MAX_WEIGHT_GRAMS {
        return Err(Error::invalid_field(
            Code::WeightTooLarge,
            field,
            format!("must not exceed {MAX_WEIGHT_GRAMS} grams"),
        ));
    }
    Ok(grams)
}

impl NewProduct {
    pub fn validate(&self, pricing: &Pricing) -> Result<ProductDraft, Error> {
        let content = validate_content(
            self.content
                .iter()
                .map(|(locale, input)| (locale, Some(input))),
        )?;
        if self.variants.is_empty() {
            return Err(Error::invalid_field(
                Code::MissingVariant,
                "variants",
                "a product needs at least one variant",
            ));
        }
        let skus = parse_skus(self.variants.iter().map(|v| v.sku.as_str()))?;
        let mut variants = Vec::with_capacity(self.variants.len());
        for (index, (variant, sku)) in self.variants.iter().zip(skus).enumerate() {
            let field = format!("variants[{index}]");
            variants.push(VariantDraft {
                sku,
                prices: parse_prices(&format!("{field}.prices"), &variant.prices, pricing)?,
                stock: check_stock(&format!("{field}.stock"), variant.stock)?,
                attributes: parse_attributes(&format!("{field}.attributes"), &variant.attributes)?,
                weight_grams: check_weight(&format!("{field}.weight_grams"), variant.weight_grams)?,
                image_urls: parse_images(&format!("{field}.image_urls"), &variant.image_urls)?,
            });
        }
        let draft = ProductDraft {
            default_locale: parse_locale("default_locale", &self.default_locale)?,
            base_currency: choose_base_currency(self.base_currency.as_deref(), &variants, pricing)?,
            content,
            variants,
        };
        draft.check_consistency()?;
        Ok(draft)
    }
}

/// Validates content entries; `None` values (removals) are passed through as absent.
pub fn validate_content<'a>(
    entries: impl ExactSizeIterator<Item = (&'a String, Option<&'a ContentInput>)>,
) -> Result<BTreeMap<Locale, ContentInput>, Error> {
    if entries.len() > MAX_LOCALES {
        return Err(Error::invalid_field(
            Code::TooManyLocales,
            "content",
            format!("at most {MAX_LOCALES} locales"),
        ));
    }
    let mut content = BTreeMap::new();
    for (raw, input) in entries {
        let field = format!("content.{raw}");
        let locale = parse_locale(&field, raw)?;
        if let Some(input) = input {
            if content
                .insert(locale, parse_content(&field, input)?)
                .is_some()
            {
                return Err(Error::invalid_field(
                    Code::DuplicateLocale,
                    field,
                    "this locale appears twice (tags are compared case-insensitively)",
                ));
            }
        }
    }
    Ok(content)
}

fn choose_base_currency(
    requested: Option<&str>,
    variants: &[VariantDraft],
    pricing: &Pricing,
) -> Result<Currency, Error> {
    if let Some(raw) = requested {
        return pricing.fx.parse_supported("base_currency", raw);
    }
    let everywhere = |currency: &Currency| variants.iter().all(|v| v.prices.contains_key(currency));
    if everywhere(&pricing.default_currency) {
        return Ok(pricing.default_currency);
    }
    variants
        .first()
        .and_then(|first| first.prices.keys().find(|c| everywhere(c)).copied())
        .ok_or_else(|| {
            Error::invalid_field(
                Code::MissingField,
                "base_currency",
                "no currency prices every variant; name the base currency",
            )
        })
}

impl ProductDraft {
    /// Rules that span fields: the default locale has content, every variant has a base price.
    pub fn check_consistency(&self) -> Result<(), Error> {
        if !self.content.contains_key(&self.default_locale) {
            return Err(Error::invalid_field(
                Code::MissingDefaultContent,
                format!("content.{}", self.default_locale),
                "the default locale needs a title",
            ));
        }
        for (index, variant) in self.variants.iter().enumerate() {
            if !variant.prices.contains_key(&self.base_currency) {
                return Err(Error::invalid_field(
                    Code::MissingBasePrice,
                    format!("variants[{index}].prices.{}", self.base_currency),
                    format!(
                        "every variant needs a price in the base currency {}",
                        self.base_currency
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A patch's variant fields, validated; `None` leaves a field as it is.
#[derive(Debug)]
pub struct VariantChange {
    pub sku: String,
    pub prices: Option<BTreeMap<Currency, Decimal>>,
    pub stock: Option<u32>,
    pub attributes: Option<BTreeMap<String, String>>,
    pub weight_grams: Option<u32>,
    pub image_urls: Option<Vec<String>>,
}

/// A patch's product-level fields, validated one by one.
#[derive(Debug)]
pub struct PatchFields {
    pub default_locale: Option<Locale>,
    pub base_currency: Option<Currency>,
    pub variants: Vec<VariantChange>,
}

impl ProductPatch {
    /// Validates each given field on its own; the store checks the merged product.
    pub fn validate_fields(&self, pricing: &Pricing) -> Result<PatchFields, Error> {
        let default_locale = self
            .default_locale
            .as_deref()
            .map(|raw| parse_locale("default_locale", raw))
            .transpose()?;
        let base_currency = self
            .base_currency
            .as_deref()
            .map(|raw| pricing.fx.parse_supported("base_currency", raw))
            .transpose()?;
        let variants = self.variants.as_deref().unwrap_or_default();
        let skus = parse_skus(variants.iter().map(|v| v.sku.as_str()))?;
        let mut changes = Vec::with_capacity(variants.len());
        for (index, (variant, sku)) in variants.iter().zip(skus).enumerate() {
            let field = format!("variants[{index}]");
            changes.push(VariantChange {
                sku,
                prices: variant
                    .prices
                    .as_ref()
                    .map(|p| parse_prices(&format!("{field}.prices"), p, pricing))
                    .transpose()?,
                stock: variant
                    .stock
                    .map(|s| check_stock(&format!("{field}.stock"), s))
                    .transpose()?,
                attributes: variant
                    .attributes
                    .as_ref()
                    .map(|a| parse_attributes(&format!("{field}.attributes"), a))
                    .transpose()?,
                weight_grams: variant
                    .weight_grams
                    .map(|w| check_weight(&format!("{field}.weight_grams"), w))
                    .transpose()?,
                image_urls: variant
                    .image_urls
                    .as_ref()
                    .map(|u| parse_images(&format!("{field}.image_urls"), u))
                    .transpose()?,
            });
        }
        Ok(PatchFields {
            default_locale,
            base_currency,
            variants: changes,
        })
    }
}
