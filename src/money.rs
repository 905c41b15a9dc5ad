//! Money: ISO 4217 currencies, decimal amounts and currency conversion.
//!
//! Promises: an amount is a `rust_decimal::Decimal` paired with its [`Currency`], parsed from a
//! JSON string (never a float), never negative, with no more decimals than the currency's minor
//! units (JPY 0, EUR 2, KWD 3), and always written back with exactly that many decimals.
//! Conversion multiplies by the configured rates and rounds half away from zero to the target
//! currency's minor units, the same rule Postgres's `round(numeric, int)` applies to the
//! listing prices (see `catalog::refresh_listing_prices`).

use std::{collections::BTreeMap, fmt, str::FromStr};

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::error::{Code, Error};

/// Largest amount accepted in any currency (a trillion units), far above any real price.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// An ISO 4217 currency with minor units (metals and funds without them are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

impl Currency {
    /// Parses an ISO 4217 code such as `EUR`; `field` names the input for the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Error> {
        Self::from_code(raw).ok_or_else(|| {
            Error::invalid_field(
                Code::UnknownCurrency,
                field,
                format!("{raw:?} is not an ISO 4217 currency code with minor units"),
            )
        })
    }

    pub fn from_code(raw: &str) -> Option<Self> {
        let currency = iso_currency::Currency::from_code(raw)?;
        let exponent = currency.exponent()?;
        Some(Self {
            code: currency.code(),
            exponent: u32::from(exponent),
        })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point (minor units).
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// `amount` rounded to this currency's minor units, half away from zero, with exactly
    /// that many decimals.
    pub fn round(&self, amount: Decimal) -> Decimal {
        let mut rounded =
            amount.round_dp_with_strategy(self.exponent, RoundingStrategy::MidpointAwayFromZero);
        rounded.rescale(self.exponent);
        rounded
    }

    /// Parses an amount in this currency from its decimal string.
    pub fn parse_amount(&self, field: &str, raw: &str) -> Result<Decimal, Error> {
        let amount = Decimal::from_str_exact(raw.trim()).map_err(|_| {
            Error::invalid_field(
                Code::InvalidAmount,
                field,
                format!("{raw:?} is not a decimal amount such as \"89.90\""),
            )
        })?;
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(Error::invalid_field(
                Code::NegativeAmount,
                field,
                "must not be negative",
            ));
        }
        if amount.normalize().scale() > self.exponent {
            return Err(Error::invalid_field(
                Code::TooPrecise,
                field,
                format!("{} allows {} decimal place(s)", self.code, self.exponent),
            ));
        }
        if amount > MAX_AMOUNT {
            return Err(Error::invalid_field(
                Code::AmountTooLarge,
                field,
                format!("must not exceed {MAX_AMOUNT}"),
            ));
        }
        Ok(self.round(amount.abs()))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// A price as clients see it: the amount as a string with the currency's decimals, and
/// whether it was converted from another currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Price {
    #[schema(value_type = String, example = "89.90")]
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    #[schema(value_type = String, example = "EUR")]
    pub currency: &'static str,
    /// True when the seller set no price in this currency and it was converted from the
    /// product's base currency with the store's exchange rates.
    pub converted: bool,
}

/// Prices as stored (keyed by currency code; Postgres pads `char(3)`), keyed by [`Currency`];
/// codes that are not currencies are dropped.
pub fn by_currency(stored: &BTreeMap<String, Decimal>) -> BTreeMap<Currency, Decimal> {
    stored
        .iter()
        .filter_map(|(code, amount)| Some((Currency::from_code(code.trim())?, *amount)))
        .collect()
}

/// The store's exchange rates: one unit of `base` buys `rate` units of each currency.
#[derive(Debug, Clone)]
pub struct FxRates {
    base: Currency,
    rates: BTreeMap<Currency, Decimal>,
}

impl FxRates {
    /// Builds the table from configuration; the base itself always has rate 1.
    pub fn new(base: Currency, quoted: impl IntoIterator<Item = (Currency, Decimal)>) -> Self {
        let mut rates: BTreeMap<Currency, Decimal> = quoted.into_iter().collect();
        rates.insert(base, Decimal::ONE);
        Self { base, rates }
    }

    pub fn base(&self) -> Currency {
        self.base
    }

    /// Every currency the store sells in, sorted by code.
    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.rates.keys().copied()
    }

    pub fn supports(&self, currency: Currency) -> bool {
        self.rates.contains_key(&currency)
    }

    pub fn rate(&self, currency: Currency) -> Option<Decimal> {
        self.rates.get(&currency).copied()
    }

    /// A currency the store sells in, parsed from its code.
    pub fn parse_supported(&self, field: &str, raw: &str) -> Result<Currency, Error> {
        let currency = Currency::parse(field, raw)?;
        if !self.supports(currency) {
            return Err(Error::invalid_field(
                Code::UnsupportedCurrency,
                field,
                format!(
                    "the store does not sell in {currency}; it sells in {}",
                    self.currencies()
                        .map(|c| c.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(currency)
    }

    /// `amount` in `from`, converted to `to` and rounded to `to`'s minor units.
    pub fn convert(&self, amount: Decimal, from: Currency, to: Currency) -> Option<Decimal> {
        if from == to {
            return Some(to.round(amount));
        }
        let (from_rate, to_rate) = (self.rate(from)?, self.rate(to)?);
        let converted = amount.checked_mul(to_rate)?.checked_div(from_rate)?;
        Some(to.round(converted))
    }

    /// The price in `to`: the explicit one when the seller set it, else converted from the
    /// base price.
    pub fn price_in(
        &self,
        explicit: &BTreeMap<Currency, Decimal>,
        base_currency: Currency,
        to: Currency,
    ) -> Option<Price> {
        if let Some(amount) = explicit.get(&to) {
            return Some(Price {
                amount: to.round(*amount),
                currency: to.code(),
                converted: false,
            });
        }
        let base_amount = explicit.get(&base_currency)?;
        Some(Price {
            amount: self.convert(*base_amount, base_currency, to)?,
            currency: to.code(),
            converted: true,
        })
    }
}

/// `1,234.5` (en, ja), `1.234,5` (de), `1 234,5` (fr, a narrow no-break space): an amount as
/// the language (its primary subtag; others write as English does) writes it, scale kept.
pub fn written_decimal(amount: Decimal, language: &str) -> String {
    let text = amount.abs().to_string();
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let (group, point) = match language {
        "de" => (".", ","),
        "fr" => ("\u{202f}", ","),
        _ => (",", "."),
    };
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push_str(group);
        }
        grouped.push(digit);
    }
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}{point}{fraction}")
    }
}

/// An amount of money with its currency as the language writes it: `€28.90`, `28,90 €`,
/// `￥12,800`, `KWD 30.125`. The one rule for the pages and the mail.
pub fn written(amount: Decimal, currency: &str, language: &str) -> String {
    let number = written_decimal(amount, language);
    let english_like = !matches!(language, "de" | "fr");
    let symbol = match (currency, language) {
        ("EUR", _) => "€",
        ("USD", _) if english_like => "$",
        ("USD", _) => "$US",
        ("GBP", _) => "£",
        ("JPY", "ja") => "￥",
        ("JPY", _) => "¥",
        (code, _) => return format!("{code}\u{a0}{number}"),
    };
    if english_like {
        format!("{symbol}{number}")
    } else {
        format!("{number}\u{a0}{symbol}")
    }
}

impl FromStr for Currency {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        Self::from_code(raw).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::from_code(code).expect("known currency")
    }

    fn dec(raw: &str) -> Decimal {
        Decimal::from_str_exact(raw).expect("decimal")
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(currency("JPY").exponent(), 0);
        assert_eq!(currency("EUR").exponent(), 2);
        assert_eq!(currency("KWD").exponent(), 3);
        assert!(
            Currency::from_code("XAU").is_none(),
            "gold has no minor units"
        );
        assert!(Currency::from_code("EURO").is_none());
    }

    #[test]
    fn amounts_are_refused_when_negative_or_over_precise() {
        let eur = currency("EUR");
        assert_eq!(
            eur.parse_amount("p", "89.9").expect("ok").to_string(),
            "89.90"
        );
        assert_eq!(
            eur.parse_amount("p", "1.230")
                .expect("trailing zeros are fine")
                .to_string(),
            "1.23"
        );
        let code = |r: Result<Decimal, Error>| r.expect_err("refused").code();
        assert_eq!(code(eur.parse_amount("p", "-1.00")), "negative_amount");
        assert_eq!(code(eur.parse_amount("p", "1.001")), "too_precise");
        assert_eq!(
            code(currency("JPY").parse_amount("p", "100.5")),
            "too_precise"
        );
        assert_eq!(code(eur.parse_amount("p", "ten")), "invalid_amount");
        assert_eq!(code(eur.parse_amount("p", "1e3")), "invalid_amount");
        assert_eq!(
            code(eur.parse_amount("p", "1000000000001")),
            "amount_too_large"
        );
        assert_eq!(
            currency("KWD")
                .parse_amount("p", "12.345")
                .expect("ok")
                .to_string(),
            "12.345"
        );
    }

    #[test]
    fn conversion_rounds_half_away_from_zero_to_the_target_minor_units() {
        let (eur, usd, jpy, kwd) = (
            currency("EUR"),
            currency("USD"),
            currency("JPY"),
            currency("KWD"),
        );
        let fx = FxRates::new(
            eur,
            [
                (usd, dec("1.0850")),
                (jpy, dec("162.30")),
                (kwd, dec("0.3330")),
            ],
        );
        assert_eq!(
            fx.convert(dec("89.90"), eur, usd)
                .expect("rate")
                .to_string(),
            "97.54"
        );
        assert_eq!(
            fx.convert(dec("89.90"), eur, jpy)
                .expect("rate")
                .to_string(),
            "14591"
        );
        assert_eq!(
            fx.convert(dec("89.90"), eur, kwd)
                .expect("rate")
                .to_string(),
            "29.937"
        );
        // 10.00 USD → EUR = 9.2165898... → 9.22
        assert_eq!(
            fx.convert(dec("10.00"), usd, eur)
                .expect("rate")
                .to_string(),
            "9.22"
        );
        // Exactly half a yen rounds up: 0.5 JPY.
        let half = FxRates::new(eur, [(jpy, dec("50"))]);
        assert_eq!(
            half.convert(dec("0.01"), eur, jpy)
                .expect("rate")
                .to_string(),
            "1"
        );
        assert!(fx.convert(dec("1"), eur, currency("GBP")).is_none());
    }

    #[test]
    fn money_is_written_as_each_language_writes_it() {
        assert_eq!(written(dec("1234.50"), "EUR", "en"), "€1,234.50");
        assert_eq!(written(dec("1234.50"), "EUR", "de"), "1.234,50\u{a0}€");
        assert_eq!(
            written(dec("1234.50"), "EUR", "fr"),
            "1\u{202f}234,50\u{a0}€"
        );
        assert_eq!(written(dec("12800"), "JPY", "ja"), "￥12,800");
        assert_eq!(written(dec("9.99"), "USD", "de"), "9,99\u{a0}$US");
        assert_eq!(written(dec("30.125"), "KWD", "en"), "KWD\u{a0}30.125");
    }

    #[test]
    fn an_explicit_price_wins_over_conversion() {
        let (eur, usd) = (currency("EUR"), currency("USD"));
        let fx = FxRates::new(eur, [(usd, dec("1.0850"))]);
        let explicit = BTreeMap::from([(eur, dec("89.90")), (usd, dec("99.00"))]);
        let price = fx.price_in(&explicit, eur, usd).expect("price");
        assert_eq!(
            (price.amount.to_string(), price.converted),
            ("99.00".into(), false)
        );
        let only_base = BTreeMap::from([(eur, dec("89.90"))]);
        let price = fx.price_in(&only_base, eur, usd).expect("price");
        assert_eq!(
            (price.amount.to_string(), price.converted),
            ("97.54".into(), true)
        );
    }
}
