//! Postal addresses: where an order goes, as a shopper gives it (on a cart, a flash-sale
//! purchase or in their address book), checked and normalized once here.
//!
//! Promises: an [`Address`] is only ever made by [`AddressInput::validate`], so every stored
//! address has trimmed texts within their limits and without control characters, an ISO
//! 3166-1 alpha-2 country, a postal code in the country's format where it is known (written as
//! the country's post writes it, see [`postal`]) and a phone of digits, spaces and `+-()`
//! only. Each refusal is a 422 naming the exact field (`address.postal_code`, …) with its own
//! code. Whether the country is one the cart's region ships to is the cart's check, not this.
//! The address book (one shopper's saved addresses, exactly one of them the default) is
//! [`book`].

pub mod book;
pub mod postal;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::{Code, Error},
    sellers::Email,
};

/// Longest name, street line and city, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest region (state, province, prefecture), in characters.
pub const MAX_REGION_CHARS: usize = 100;
/// Longest phone number, in characters, and the fewest digits it has.
pub const MAX_PHONE_CHARS: usize = 32;
pub const MIN_PHONE_DIGITS: usize = 4;

/// An address as a client sends it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// Who receives the parcel.
    #[schema(example = "Erika Mustermann")]
    pub name: String,
    #[schema(example = "Heidestraße 17")]
    pub line1: String,
    pub line2: Option<String>,
    #[schema(example = "Köln")]
    pub city: String,
    /// In the country's format where it is known (DE 5 digits, US 5 or 5+4, JP NNN-NNNN, GB a
    /// UK postcode, …); answered as the country's post writes it.
    #[schema(example = "51147")]
    pub postal_code: String,
    /// State, province or prefecture, where the country uses one.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(example = "DE")]
    pub country: String,
    /// Digits, spaces and `+-()` only.
    pub phone: Option<String>,
}

/// A checked, normalized address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    #[schema(example = "Erika Mustermann")]
    pub name: String,
    #[schema(example = "Heidestraße 17")]
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[schema(example = "Köln")]
    pub city: String,
    #[schema(example = "51147")]
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[schema(example = "DE")]
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl From<Address> for AddressInput {
    fn from(address: Address) -> Self {
        Self {
            name: address.name,
            line1: address.line1,
            line2: address.line2,
            city: address.city,
            postal_code: address.postal_code,
            region: address.region,
            country: address.country,
            phone: address.phone,
        }
    }
}

/// A required text: trimmed, 1 to `max` characters, no control characters.
fn text(prefix: &str, field: &str, raw: &str, max: usize) -> Result<String, Error> {
    optional_text(prefix, field, Some(raw), max)?.ok_or_else(|| {
        Error::invalid_field(
            Code::InvalidAddress,
            format!("{prefix}{field}"),
            format!("must not be empty (at most {max} characters)"),
        )
    })
}

/// An optional text: trimmed, empty is none, at most `max` characters, no control characters.
fn optional_text(
    prefix: &str,
    field: &str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, Error> {
    let Some(trimmed) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if trimmed.chars().count() > max {
        return Err(Error::invalid_field(
            Code::InvalidAddress,
            format!("{prefix}{field}"),
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            Code::InvalidAddress,
            format!("{prefix}{field}"),
            "must be one line without control characters",
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// An ISO 3166-1 alpha-2 country code, trimmed and in upper case.
pub fn parse_country(field: &str, raw: &str) -> Result<String, Error> {
    let code = raw.trim().to_ascii_uppercase();
    if postal::is_country(&code) {
        Ok(code)
    } else {
        Err(Error::invalid_field(
            Code::InvalidCountry,
            field,
            "must be an ISO 3166-1 alpha-2 code such as \"DE\"",
        ))
    }
}

fn phone(prefix: &str, raw: Option<&str>) -> Result<Option<String>, Error> {
    let Some(phone) = raw.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')'));
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if !allowed || digits < MIN_PHONE_DIGITS || phone.chars().count() > MAX_PHONE_CHARS {
        return Err(Error::invalid_field(
            Code::InvalidPhone,
            format!("{prefix}phone"),
            format!(
                "digits, spaces and + - ( ) only, at least {MIN_PHONE_DIGITS} digits and at most \
                 {MAX_PHONE_CHARS} characters"
            ),
        ));
    }
    Ok(Some(phone.to_owned()))
}

impl AddressInput {
    /// Checks and normalizes the address; an error names `{prefix}{field}` (e.g. with prefix
    /// `address.`: `address.postal_code`).
    pub fn validate(&self, prefix: &str) -> Result<Address, Error> {
        let name = text(prefix, "name", &self.name, MAX_TEXT_CHARS)?;
        let line1 = text(prefix, "line1", &self.line1, MAX_TEXT_CHARS)?;
        let line2 = optional_text(prefix, "line2", self.line2.as_deref(), MAX_TEXT_CHARS)?;
        let city = text(prefix, "city", &self.city, MAX_TEXT_CHARS)?;
        let region = optional_text(prefix, "region", self.region.as_deref(), MAX_REGION_CHARS)?;
        let country = parse_country(&format!("{prefix}country"), &self.country)?;
        let postal_code =
            if self.postal_code.trim().is_empty() && postal::postal_code_optional(&country) {
                String::new()
            } else {
                postal::normalize(&country, &self.postal_code).ok_or_else(|| {
                    Error::invalid_field(
                        Code::InvalidPostalCode,
                        format!("{prefix}postal_code"),
                        format!(
                            "not a postal code of {country}: {}",
                            postal::format_hint(&country)
                        ),
                    )
                })?
            };
        let phone = phone(prefix, self.phone.as_deref())?;
        Ok(Address {
            name,
            line1,
            line2,
            city,
            postal_code,
            region,
            country,
            phone,
        })
    }
}

/// A contact email as given with a cart or purchase (field `email`).
pub fn parse_contact_email(raw: &str) -> Result<String, Error> {
    Ok(Email::parse("email", raw)?.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(country: &str, postal_code: &str) -> AddressInput {
        AddressInput {
            name: " Erika Mustermann ".into(),
            line1: "Heidestraße 17".into(),
            line2: Some("  ".into()),
            city: "Köln".into(),
            postal_code: postal_code.into(),
            region: None,
            country: country.into(),
            phone: Some("+49 (221) 123-456".into()),
        }
    }

    fn refusal(input: &AddressInput) -> (Code, String) {
        let error = input.validate("address.").expect_err("refused");
        (error.code(), error.field().unwrap_or_default().to_owned())
    }

    #[test]
    fn an_address_is_trimmed_and_normalized() {
        let address = input(" gb", "sw1a1aa").validate("address.").expect("valid");
        assert_eq!(address.name, "Erika Mustermann");
        assert_eq!(address.line2, None);
        assert_eq!(address.country, "GB");
        assert_eq!(address.postal_code, "SW1A 1AA");
        assert_eq!(address.phone.as_deref(), Some("+49 (221) 123-456"));
        let japanese = input("JP", "1000001").validate("").expect("valid");
        assert_eq!(japanese.postal_code, "100-0001");
    }

    #[test]
    fn each_refusal_names_its_field() {
        let too_long = AddressInput {
            city: "x".repeat(MAX_TEXT_CHARS + 1),
            ..input("DE", "10115")
        };
        assert_eq!(
            refusal(&too_long),
            (Code::InvalidAddress, "address.city".into())
        );
        let empty_name = AddressInput {
            name: "  ".into(),
            ..input("DE", "10115")
        };
        assert_eq!(
            refusal(&empty_name),
            (Code::InvalidAddress, "address.name".into())
        );
        let two_lines = AddressInput {
            line1: "a\nb".into(),
            ..input("DE", "10115")
        };
        assert_eq!(
            refusal(&two_lines),
            (Code::InvalidAddress, "address.line1".into())
        );
        assert_eq!(
            refusal(&input("DE", "1011")),
            (Code::InvalidPostalCode, "address.postal_code".into())
        );
        assert_eq!(
            refusal(&input("UK", "SW1A 1AA")),
            (Code::InvalidCountry, "address.country".into())
        );
        let letters = AddressInput {
            phone: Some("call me".into()),
            ..input("DE", "10115")
        };
        assert_eq!(
            refusal(&letters),
            (Code::InvalidPhone, "address.phone".into())
        );
    }

    #[test]
    fn countries_without_postal_codes_take_none() {
        let address = input("HK", " ").validate("").expect("valid");
        assert_eq!(address.postal_code, "");
        assert_eq!(
            input("DE", "").validate("").expect_err("refused").code(),
            Code::InvalidPostalCode
        );
    }
}
