//! Regions: where the store sells, in which currency, with which taxes and shipping options.
//!
//! Promises: a stored region's rates and amounts are valid decimals in its currency (tax
//! rates between 0 and 1 with at most 4 decimals, shipping amounts within the currency's minor
//! units); every country belongs to at most one region. Carts (a later issue) price tax and
//! shipping with [`Region::tax_rate`] and [`ShippingOption::cost`].

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    configuration::Pricing,
    error::{Code, Error},
    money::Currency,
};

/// Most countries, tax rates and shipping options one region may list.
pub const MAX_COUNTRIES: usize = 100;
pub const MAX_SHIPPING_OPTIONS: usize = 20;
/// Grams per kilogram, for weight-based shipping charged per started kilogram.
const GRAMS_PER_KG: u32 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionInput {
    #[schema(example = "European Union")]
    pub name: String,
    #[schema(example = "EUR")]
    pub currency: String,
    /// ISO 3166-1 alpha-2 codes.
    #[schema(example = json!(["DE", "FR", "AT"]))]
    pub countries: Vec<String>,
    /// Whether prices in this region include tax (EU) or tax is added at checkout (US).
    pub tax_inclusive: bool,
    /// Tax rates as decimal fractions: `default`, and optionally one per country.
    #[schema(example = json!({"default": "0.20", "DE": "0.19"}))]
    pub tax_rates: BTreeMap<String, String>,
    pub shipping_options: Vec<ShippingOption>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingOption {
    #[schema(example = "dhl-standard")]
    pub id: String,
    #[schema(example = "Standard")]
    pub name: String,
    #[schema(example = "DHL")]
    pub carrier: String,
    pub rate: ShippingRate,
    pub delivery_days: DeliveryDays,
}

/// `flat`: one amount per order; `weight`: `base` plus `per_kg` for every started kilogram.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ShippingRate {
    Flat { amount: String },
    Weight { base: String, per_kg: String },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDays {
    pub min: u16,
    pub max: u16,
}

/// A stored region.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Region {
    pub code: String,
    #[serde(flatten)]
    pub details: RegionInput,
}

fn parse_code(raw: &str) -> Result<String, Error> {
    let code = raw.trim().to_ascii_uppercase();
    let valid = (2..=16).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !valid {
        return Err(Error::invalid_field(
            Code::InvalidRegionCode,
            "code",
            "must be 2 to 16 letters, digits, '_' or '-'",
        ));
    }
    Ok(code)
}

fn parse_country(field: &str, raw: &str) -> Result<String, Error> {
    if raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err(Error::invalid_field(
            Code::InvalidCountry,
            field,
            "must be an ISO 3166-1 alpha-2 code such as \"DE\"",
        ))
    }
}

fn parse_tax_rate(field: &str, raw: &str) -> Result<Decimal, Error> {
    Decimal::from_str_exact(raw.trim())
        .ok()
        .filter(|rate| *rate >= Decimal::ZERO && *rate <= Decimal::ONE && rate.normalize().scale() <= 4)
        .ok_or_else(|| {
            Error::invalid_field(
                Code::InvalidTaxRate,
                field,
                "must be a decimal fraction from \"0\" to \"1\" with at most 4 decimals, e.g. \"0.19\"",
            )
        })
}

impl RegionInput {
    /// Validates and normalises (amounts rewritten with the currency's decimals).
    pub fn validate(mut self, pricing: &Pricing) -> Result<Self, Error> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid_field(
                Code::InvalidLength,
                "name",
                "must be 1 to 100 characters",
            ));
        }
        self.name = name.to_owned();
        let currency = pricing.fx.parse_supported("currency", &self.currency)?;
        if self.countries.is_empty() || self.countries.len() > MAX_COUNTRIES {
            return Err(Error::invalid_field(
                Code::InvalidCountries,
                "countries",
                format!("must list 1 to {MAX_COUNTRIES} countries"),
            ));
        }
        for (index, country) in self.countries.iter().enumerate() {
            parse_country(&format!("countries[{index}]"), country)?;
        }
        if !self.tax_rates.contains_key("default") {
            return Err(Error::invalid_field(
                Code::MissingField,
                "tax_rates.default",
                "a default tax rate is required",
            ));
        }
        for (key, rate) in &mut self.tax_rates {
            let field = format!("tax_rates.{key}");
            if key != "default" {
                parse_country(&field, key)?;
                if !self.countries.contains(key) {
                    return Err(Error::invalid_field(
                        Code::UnknownCountry,
                        field,
                        "a tax rate names a country outside this region",
                    ));
                }
            }
            *rate = parse_tax_rate(&field, rate)?.normalize().to_string();
        }
        if self.shipping_options.len() > MAX_SHIPPING_OPTIONS {
            return Err(Error::invalid_field(
                Code::TooManyShippingOptions,
                "shipping_options",
                format!("at most {MAX_SHIPPING_OPTIONS}"),
            ));
        }
        let mut ids = Vec::new();
        for (index, option) in self.shipping_options.iter_mut().enumerate() {
            let field = format!("shipping_options[{index}]");
            if option.id.is_empty() || option.id.len() > 64 || ids.contains(&option.id) {
                return Err(Error::invalid_field(
                    Code::InvalidShippingOptionId,
                    format!("{field}.id"),
                    "must be 1 to 64 characters and unique in the region",
                ));
            }
            ids.push(option.id.clone());
            for (name, value) in [("name", &option.name), ("carrier", &option.carrier)] {
                if value.trim().is_empty() || value.chars().count() > 100 {
                    return Err(Error::invalid_field(
                        Code::InvalidLength,
                        format!("{field}.{name}"),
                        "must be 1 to 100 characters",
                    ));
                }
            }
            match &mut option.rate {
                ShippingRate::Flat { amount } => {
                    *amount = currency
                        .parse_amount(&format!("{field}.rate.amount"), amount)?
                        .to_string();
                }
                ShippingRate::Weight { base, per_kg } => {
                    *base = currency
                        .parse_amount(&format!("{field}.rate.base"), base)?
                        .to_string();
                    *per_kg = currency
                        .parse_amount(&format!("{field}.rate.per_kg"), per_kg)?
                        .to_string();
                }
            }
            if option.delivery_days.min > option.delivery_days.max {
                return Err(Error::invalid_field(
                    Code::InvalidDeliveryDays,
                    format!("{field}.delivery_days"),
                    "min must not exceed max",
                ));
            }
        }
        self.currency = currency.code().to_owned();
        Ok(self)
    }
}

impl Region {
    pub fn currency(&self) -> Option<Currency> {
        Currency::from_code(&self.details.currency)
    }

    /// The tax rate for a destination country: its own, else the region's default.
    pub fn tax_rate(&self, country: &str) -> Option<Decimal> {
        let rates = &self.details.tax_rates;
        rates
            .get(country)
            .or_else(|| rates.get("default"))
            .and_then(|rate| Decimal::from_str_exact(rate).ok())
    }
}

impl ShippingOption {
    /// What shipping `weight_grams` costs with this option, in the region's currency.
    pub fn cost(&self, weight_grams: u32) -> Option<Decimal> {
        match &self.rate {
            ShippingRate::Flat { amount } => Decimal::from_str_exact(amount).ok(),
            ShippingRate::Weight { base, per_kg } => {
                let started_kg = weight_grams.div_ceil(GRAMS_PER_KG);
                let base = Decimal::from_str_exact(base).ok()?;
                let per_kg = Decimal::from_str_exact(per_kg).ok()?;
                Some(base + per_kg * Decimal::from(started_kg))
            }
        }
    }
}

/// A region from a row with the columns of [`COLUMNS`] (by name).
pub fn from_row(row: &tokio_postgres::Row) -> Result<Region, Error> {
    let decode =
        |e: serde_json::Error| Error::internal(anyhow::Error::new(e).context("decoding a region"));
    Ok(Region {
        code: row.get("code"),
        details: RegionInput {
            name: row.get("name"),
            currency: row.get::<_, String>("currency").trim().to_owned(),
            countries: row.get("countries"),
            tax_inclusive: row.get("tax_inclusive"),
            tax_rates: serde_json::from_value(row.get("tax_rates")).map_err(decode)?,
            shipping_options: serde_json::from_value(row.get("shipping_options"))
                .map_err(decode)?,
        },
    })
}

const COLUMNS: &str = "code, name, currency, countries, tax_inclusive, tax_rates, shipping_options";
/// [`COLUMNS`] of a query where `regions` is `r`.
pub const COLUMNS_OF_R: &str =
    "r.code, r.name, r.currency, r.countries, r.tax_inclusive, r.tax_rates, r.shipping_options";

pub async fn list(client: &impl PreparedClient) -> Result<Vec<Region>, Error> {
    client
        .query(&format!("SELECT {COLUMNS} FROM regions ORDER BY code"), &[])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn get(client: &impl PreparedClient, code: &str) -> Result<Region, Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM regions WHERE code = upper($1)"),
            &[&code],
        )
        .await?
        .ok_or(Error::NotFound("region"))?;
    from_row(&row)
}

/// The region a request's `region` field names; an unknown one is that field's error (422).
pub async fn named_in_request(client: &impl PreparedClient, code: &str) -> Result<Region, Error> {
    get(client, code).await.map_err(|error| match error {
        Error::NotFound(_) => Error::invalid_field(
            Code::UnknownRegion,
            "region",
            "no such region; see GET /api/v1/regions",
        ),
        other => other,
    })
}

/// Creates or replaces a region; true when it was created. Refuses countries that belong to
/// another region.
pub async fn put(
    client: &impl PreparedClient,
    raw_code: &str,
    input: RegionInput,
    pricing: &Pricing,
) -> Result<(Region, bool), Error> {
    let code = parse_code(raw_code)?;
    let input = input.validate(pricing)?;
    let clash: Option<(String, String)> = client
        .query_opt(
            "SELECT code, c FROM regions, unnest(countries) AS c
             WHERE code <> $1 AND c = ANY($2) LIMIT 1",
            &[&code, &input.countries],
        )
        .await?
        .map(|row| (row.get(0), row.get(1)));
    if let Some((other, country)) = clash {
        return Err(Error::Conflict {
            code: Code::CountryInOtherRegion,
            message: format!("{country} already belongs to region {other}"),
            field: Some("countries".into()),
        });
    }
    let encode =
        |e: serde_json::Error| Error::internal(anyhow::Error::new(e).context("encoding a region"));
    let created: bool = client
        .query_one(
            "INSERT INTO regions (code, name, currency, countries, tax_inclusive, tax_rates, shipping_options)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, currency = EXCLUDED.currency,
                 countries = EXCLUDED.countries, tax_inclusive = EXCLUDED.tax_inclusive,
                 tax_rates = EXCLUDED.tax_rates, shipping_options = EXCLUDED.shipping_options,
                 updated_at = now()
             RETURNING (xmax = 0)",
            &[
                &code,
                &input.name,
                &input.currency,
                &input.countries,
                &input.tax_inclusive,
                &serde_json::to_value(&input.tax_rates).map_err(encode)?,
                &serde_json::to_value(&input.shipping_options).map_err(encode)?,
            ],
        )
        .await?
        .get(0);
    Ok((
        Region {
            code,
            details: input,
        },
        created,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(rate: ShippingRate) -> ShippingOption {
        ShippingOption {
            id: "x".into(),
            name: "X".into(),
            carrier: "C".into(),
            rate,
            delivery_days: DeliveryDays { min: 1, max: 2 },
        }
    }

    #[test]
    fn weight_based_shipping_charges_every_started_kilogram() {
        let by_weight = option(ShippingRate::Weight {
            base: "3.00".into(),
            per_kg: "1.50".into(),
        });
        assert_eq!(by_weight.cost(0).expect("cost").to_string(), "3.00");
        assert_eq!(by_weight.cost(1).expect("cost").to_string(), "4.50");
        assert_eq!(by_weight.cost(1000).expect("cost").to_string(), "4.50");
        assert_eq!(by_weight.cost(2500).expect("cost").to_string(), "7.50");
        let flat = option(ShippingRate::Flat {
            amount: "4.90".into(),
        });
        assert_eq!(flat.cost(99_000).expect("cost").to_string(), "4.90");
    }

    #[test]
    fn a_country_rate_overrides_the_default() {
        let region = Region {
            code: "EU".into(),
            details: RegionInput {
                name: "EU".into(),
                currency: "EUR".into(),
                countries: vec!["DE".into(), "FR".into()],
                tax_inclusive: true,
                tax_rates: BTreeMap::from([
                    ("default".into(), "0.2".into()),
                    ("DE".into(), "0.19".into()),
                ]),
                shipping_options: vec![],
            },
        };
        assert_eq!(region.tax_rate("DE").expect("rate").to_string(), "0.19");
        assert_eq!(region.tax_rate("FR").expect("rate").to_string(), "0.2");
    }
}
