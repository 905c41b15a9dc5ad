//! The product form: content per locale, prices per currency and variants, read from a
//! stored product or a post, turned into the catalog's `NewProduct` or `ProductPatch` (the
//! catalog validates them), and its refusals placed next to their inputs (`product_view` draws
//! it).
//!
//! Inputs are named by the JSON paths the catalog's refusals name (`content.en.title`,
//! `variants[0].sku`, `variants[0].prices.EUR`, …), so a refusal finds its input by name. A
//! form row of variants that is left blank is skipped, so the catalog's `variants[k]` is
//! mapped back to the row it came from.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::Refusals;
use crate::{
    catalog::{
        input::{ContentInput, NewProduct, NewVariant, ProductPatch, VariantPatch},
        ProductRecord,
    },
    error::{Code, Error},
    http::pages::i18n::Lang,
    money::Currency,
};

/// Languages every product form offers, besides those a product already has.
const FORM_LOCALES: [&str; 4] = ["en", "de", "fr", "ja"];

/// One language's content as the form holds it.
#[derive(Debug, Clone)]
pub struct LocaleContent {
    pub locale: String,
    pub title: String,
    pub description: String,
}

/// One row of variants as the form holds it.
#[derive(Debug, Clone, Default)]
pub struct VariantRow {
    /// A variant the product has (its SKU and stock are not edited here).
    pub existing: bool,
    pub sku: String,
    /// Amount per currency code, as typed.
    pub prices: BTreeMap<String, String>,
    pub stock: String,
    /// `name=value` lines.
    pub attributes: String,
    /// One URL per line.
    pub image_urls: String,
    pub weight_grams: String,
}

impl VariantRow {
    fn is_blank(&self) -> bool {
        !self.existing
            && self.sku.trim().is_empty()
            && self.prices.values().all(|p| p.trim().is_empty())
            && self.stock.trim().is_empty()
            && self.attributes.trim().is_empty()
            && self.image_urls.trim().is_empty()
            && self.weight_grams.trim().is_empty()
    }
}

/// The product form's values.
#[derive(Debug, Clone)]
pub struct ProductForm {
    pub default_locale: String,
    /// Empty: chosen by the catalog (new products only).
    pub base_currency: String,
    pub content: Vec<LocaleContent>,
    pub variants: Vec<VariantRow>,
}

fn locales_with(extra: impl Iterator<Item = String>) -> Vec<String> {
    let mut locales: Vec<String> = FORM_LOCALES.iter().map(|l| (*l).to_owned()).collect();
    let others: BTreeSet<String> = extra.filter(|l| !locales.contains(l)).collect();
    locales.extend(others);
    locales
}

impl ProductForm {
    /// An empty form for a new product, in the seller's language.
    pub fn blank(lang: Lang) -> Self {
        Self {
            default_locale: lang.tag().to_owned(),
            base_currency: String::new(),
            content: locales_with(std::iter::empty())
                .into_iter()
                .map(|locale| LocaleContent {
                    locale,
                    title: String::new(),
                    description: String::new(),
                })
                .collect(),
            variants: vec![VariantRow::default()],
        }
    }

    /// The stored product, with a blank row for a new variant.
    pub fn of(record: &ProductRecord) -> Self {
        let content = locales_with(record.content.keys().cloned())
            .into_iter()
            .map(|locale| {
                let stored = record.content.get(&locale);
                LocaleContent {
                    title: stored.map(|c| c.title.clone()).unwrap_or_default(),
                    description: stored.map(|c| c.description.clone()).unwrap_or_default(),
                    locale,
                }
            })
            .collect();
        let mut variants: Vec<VariantRow> = record
            .variants
            .iter()
            .map(|variant| VariantRow {
                existing: true,
                sku: variant.sku.clone(),
                prices: variant
                    .prices
                    .iter()
                    .map(|(code, amount)| (code.trim().to_owned(), amount.to_string()))
                    .collect(),
                stock: String::new(),
                attributes: variant
                    .attributes
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                image_urls: variant.image_urls.join("\n"),
                weight_grams: variant.weight_grams.to_string(),
            })
            .collect();
        variants.push(VariantRow::default());
        Self {
            default_locale: record.default_locale.clone(),
            base_currency: record.base_currency.trim().to_owned(),
            content,
            variants,
        }
    }

    /// The form as posted (`pairs`: every input by name; unknown names are ignored).
    pub fn posted(pairs: &[(String, String)]) -> Self {
        let values: BTreeMap<&str, &str> = pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let get = |name: &str| values.get(name).copied().unwrap_or_default().to_owned();
        let posted_locales = pairs.iter().filter_map(|(name, _)| {
            let rest = name.strip_prefix("content.")?;
            let locale = rest
                .strip_suffix(".title")
                .or_else(|| rest.strip_suffix(".description"))?;
            Some(locale.to_owned())
        });
        let content = locales_with(posted_locales)
            .into_iter()
            .map(|locale| LocaleContent {
                title: get(&format!("content.{locale}.title")),
                description: get(&format!("content.{locale}.description")),
                locale,
            })
            .collect();
        let rows: BTreeSet<usize> = pairs
            .iter()
            .filter_map(|(name, _)| {
                let rest = name.strip_prefix("variants[")?;
                rest.split_once(']')?.0.parse().ok()
            })
            .collect();
        let variants = rows
            .into_iter()
            .map(|row| {
                let name = |part: &str| format!("variants[{row}].{part}");
                let price_prefix = name("prices.");
                VariantRow {
                    existing: get(&name("existing")) == "true",
                    sku: get(&name("sku")),
                    prices: pairs
                        .iter()
                        .filter_map(|(key, value)| {
                            let code = key.strip_prefix(&price_prefix)?;
                            Some((code.to_owned(), value.clone()))
                        })
                        .collect(),
                    stock: get(&name("stock")),
                    attributes: get(&name("attributes")),
                    image_urls: get(&name("image_urls")),
                    weight_grams: get(&name("weight_grams")),
                }
            })
            .collect();
        Self {
            default_locale: get("default_locale"),
            base_currency: get("base_currency"),
            content,
            variants,
        }
    }

    /// The catalog's `NewProduct`, and the form row of each of its variants.
    pub fn new_product(&self) -> Result<(NewProduct, Vec<usize>), Error> {
        let mut rows = Vec::new();
        let mut variants = Vec::new();
        for (row, variant) in self.variants.iter().enumerate() {
            if variant.is_blank() {
                continue;
            }
            variants.push(NewVariant {
                sku: variant.sku.trim().to_owned(),
                prices: prices(variant),
                stock: whole(row, "stock", &variant.stock)?,
                attributes: attributes(row, &variant.attributes)?,
                weight_grams: whole(row, "weight_grams", &variant.weight_grams)?,
                image_urls: lines(&variant.image_urls),
            });
            rows.push(row);
        }
        let product = NewProduct {
            default_locale: self.default_locale.trim().to_owned(),
            base_currency: Some(self.base_currency.trim())
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            content: self
                .content
                .iter()
                .filter(|c| !c.title.trim().is_empty() || !c.description.trim().is_empty())
                .map(|c| (c.locale.clone(), content_input(c)))
                .collect(),
            variants,
        };
        Ok((product, rows))
    }

    /// The catalog's `ProductPatch` of `record`: every language and variant as the form
    /// holds it (a language emptied is removed; prices only where they changed), and the
    /// form row of each of its variants.
    pub fn patch(&self, record: &ProductRecord) -> Result<(ProductPatch, Vec<usize>), Error> {
        let mut content = BTreeMap::new();
        for locale in &self.content {
            let blank = locale.title.trim().is_empty() && locale.description.trim().is_empty();
            if !blank {
                content.insert(locale.locale.clone(), Some(content_input(locale)));
            } else if record.content.contains_key(&locale.locale) {
                content.insert(locale.locale.clone(), None);
            }
        }
        let mut rows = Vec::new();
        let mut variants = Vec::new();
        for (row, variant) in self.variants.iter().enumerate() {
            if variant.is_blank() {
                continue;
            }
            let stored = record
                .variants
                .iter()
                .find(|v| variant.existing && v.sku.eq_ignore_ascii_case(variant.sku.trim()));
            let new_prices = prices(variant);
            let repriced = stored.is_none_or(|stored| !same_prices(&stored.prices, &new_prices));
            variants.push(VariantPatch {
                sku: variant.sku.trim().to_owned(),
                prices: repriced.then_some(new_prices),
                stock: match stored {
                    Some(_) => None,
                    None => Some(whole(row, "stock", &variant.stock)?),
                },
                attributes: Some(attributes(row, &variant.attributes)?),
                weight_grams: Some(whole(row, "weight_grams", &variant.weight_grams)?),
                image_urls: Some(lines(&variant.image_urls)),
            });
            rows.push(row);
        }
        let patch = ProductPatch {
            default_locale: Some(self.default_locale.trim().to_owned()),
            base_currency: Some(self.base_currency.trim())
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            content: Some(content),
            variants: Some(variants),
        };
        Ok((patch, rows))
    }

    /// The names of the form's inputs, in the form's order.
    fn input_names(&self, currencies: &[Currency]) -> Vec<String> {
        let mut names = vec!["default_locale".to_owned(), "base_currency".to_owned()];
        for content in &self.content {
            names.push(format!("content.{}.title", content.locale));
            names.push(format!("content.{}.description", content.locale));
        }
        for (row, variant) in self.variants.iter().enumerate() {
            let name = |part: &str| format!("variants[{row}].{part}");
            if !variant.existing {
                names.push(name("sku"));
            }
            names.extend(
                currencies
                    .iter()
                    .map(|c| name(&format!("prices.{}", c.code()))),
            );
            if !variant.existing {
                names.push(name("stock"));
            }
            names.extend(["attributes", "image_urls", "weight_grams"].map(name));
        }
        names
    }

    /// The catalog's refusal, next to the input it names (`rows`: the form row of each of
    /// the request's variants), or above the form when it names none.
    pub fn refusals(
        &self,
        lang: Lang,
        error: &Error,
        rows: &[usize],
        currencies: &[Currency],
    ) -> Refusals {
        let message = super::words::refusal(lang, error);
        let names = self.input_names(currencies);
        let input = error
            .field()
            .map(|path| form_path(path, rows))
            .and_then(|path| input_named(&path, &names));
        let mut refusals = Refusals::default();
        match input {
            Some(name) => refusals.by_field.push((name, message)),
            None => refusals.general.push(message),
        }
        refusals
    }
}

fn content_input(content: &LocaleContent) -> ContentInput {
    ContentInput {
        title: content.title.clone(),
        description: content.description.clone(),
    }
}

/// The prices typed, by currency code (empty ones left out).
fn prices(variant: &VariantRow) -> BTreeMap<String, String> {
    variant
        .prices
        .iter()
        .filter(|(_, amount)| !amount.trim().is_empty())
        .map(|(code, amount)| (code.clone(), amount.trim().to_owned()))
        .collect()
}

fn same_prices(stored: &BTreeMap<String, Decimal>, typed: &BTreeMap<String, String>) -> bool {
    stored.len() == typed.len()
        && stored.iter().all(|(code, amount)| {
            typed
                .get(code.trim())
                .and_then(|raw| raw.parse::<Decimal>().ok())
                .is_some_and(|typed| typed == *amount)
        })
}

/// A whole number typed in row `row`'s input `part`; empty is 0.
fn whole(row: usize, part: &str, raw: &str) -> Result<u32, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(0);
    }
    raw.parse::<u32>().map_err(|_| {
        Error::invalid_field(
            Code::InvalidField,
            format!("variants[{row}].{part}"),
            "must be a whole number of at least 0",
        )
    })
}

/// `name=value` lines; an empty line is skipped.
fn attributes(row: usize, raw: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut attributes = BTreeMap::new();
    for line in raw.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once('=') else {
            return Err(Error::invalid_field(
                Code::InvalidField,
                format!("variants[{row}].attributes"),
                format!("write each attribute as name=value (not {line:?})"),
            ));
        };
        attributes.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(attributes)
}

fn lines(raw: &str) -> Vec<String> {
    raw.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A catalog path with its variant index turned into the form row it came from.
fn form_path(path: &str, rows: &[usize]) -> String {
    let Some(rest) = path.strip_prefix("variants[") else {
        return path.to_owned();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return path.to_owned();
    };
    match index.parse::<usize>().ok().and_then(|i| rows.get(i)) {
        Some(row) => format!("variants[{row}]{tail}"),
        None => path.to_owned(),
    }
}

/// The input a path names: itself, else the first input inside it (`content.en` →
/// `content.en.title`), else the input it lies inside (`variants[0].attributes.colour` →
/// `variants[0].attributes`).
fn input_named(path: &str, names: &[String]) -> Option<String> {
    if names.iter().any(|name| name == path) {
        return Some(path.to_owned());
    }
    let inside = |outer: &str, inner: &str| {
        inner.len() > outer.len()
            && inner.starts_with(outer)
            && matches!(inner.as_bytes()[outer.len()], b'.' | b'[')
    };
    if let Some(first) = names.iter().find(|name| inside(path, name)) {
        return Some(first.clone());
    }
    names
        .iter()
        .filter(|name| inside(name, path))
        .max_by_key(|name| name.len())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        [
            "default_locale",
            "content.en.title",
            "content.en.description",
            "variants[0].sku",
            "variants[0].prices.EUR",
            "variants[0].attributes",
            "variants[0].image_urls",
            "variants[2].sku",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn a_refusal_finds_the_input_it_names_or_the_one_around_or_inside_it() {
        let names = names();
        let found = |path: &str| input_named(path, &names);
        assert_eq!(
            found("content.en.title").as_deref(),
            Some("content.en.title")
        );
        assert_eq!(found("content.en").as_deref(), Some("content.en.title"));
        assert_eq!(
            found("variants[0].attributes.colour").as_deref(),
            Some("variants[0].attributes")
        );
        assert_eq!(
            found("variants[0].image_urls[3]").as_deref(),
            Some("variants[0].image_urls")
        );
        assert_eq!(found("variants").as_deref(), Some("variants[0].sku"));
        assert_eq!(found("nothing"), None);
    }

    #[test]
    fn a_refused_variant_is_named_by_the_form_row_it_came_from() {
        assert_eq!(form_path("variants[1].sku", &[0, 2]), "variants[2].sku");
        assert_eq!(form_path("variants[9].sku", &[0, 2]), "variants[9].sku");
        assert_eq!(form_path("content.en.title", &[0, 2]), "content.en.title");
    }

    #[test]
    fn attributes_are_name_value_lines() {
        let parsed = attributes(0, "colour = red\n\nsize=M").expect("parsed");
        assert_eq!(parsed.get("colour").map(String::as_str), Some("red"));
        assert_eq!(parsed.len(), 2);
        assert!(attributes(0, "colour red").is_err());
    }
}
