//! The shopper's own profile: name, preferred locale and currency, each set, left alone or
//! cleared (`null`) by one change, validated whole before anything is written.

use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::{Code, Error},
    locale::{Locale, LocaleError},
};

use super::{Accounts, Shopper};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A change of the profile as asked: for each field, absent (`None`: left alone), `null`
/// (`Some(None)`: cleared) or a new value.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub name: Option<Option<String>>,
    pub locale: Option<Option<String>>,
    pub currency: Option<Option<String>>,
}

/// A name of one line, trimmed, 1 to [`MAX_NAME_CHARS`] characters.
fn parse_name(raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            Code::InvalidCharacters,
            "name",
            "must be one line without control characters",
        ));
    }
    let length = name.chars().count();
    if !(1..=MAX_NAME_CHARS).contains(&length) {
        return Err(Error::invalid_field(
            Code::InvalidLength,
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters (null clears it)"),
        ));
    }
    Ok(name.to_owned())
}

fn parse_locale(raw: &str) -> Result<Locale, Error> {
    Locale::parse(raw).map_err(|error| match error {
        LocaleError::Malformed(_) => {
            Error::invalid_field(Code::InvalidLocale, "locale", error.to_string())
        }
        LocaleError::Unsupported(_) => {
            Error::invalid_field(Code::UnknownLocale, "locale", error.to_string())
        }
    })
}

impl Accounts {
    /// Applies `change` to the shopper's profile and answers the shopper as it is now. The
    /// currency must be one the store sells in (an ISO 4217 code: 422 `unknown_currency`,
    /// else `unsupported_currency`).
    pub async fn update_profile(
        &self,
        shopper_id: Uuid,
        change: &ProfileChange,
    ) -> Result<Shopper, Error> {
        let name = change
            .name
            .as_ref()
            .map(|name| name.as_deref().map(parse_name).transpose())
            .transpose()?;
        let locale = change
            .locale
            .as_ref()
            .map(|locale| locale.as_deref().map(parse_locale).transpose())
            .transpose()?;
        let currency = change
            .currency
            .as_ref()
            .map(|currency| {
                currency
                    .as_deref()
                    .map(|raw| self.fx.parse_supported("currency", raw.trim()))
                    .transpose()
            })
            .transpose()?;
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE shoppers SET
                     name = CASE WHEN $2 THEN $3 ELSE name END,
                     locale = CASE WHEN $4 THEN $5 ELSE locale END,
                     currency = CASE WHEN $6 THEN $7 ELSE currency END
                 WHERE id = $1 AND deleted_at IS NULL
                 RETURNING id, email, name, locale, currency, created_at",
                &[
                    &shopper_id,
                    &name.is_some(),
                    &name.flatten(),
                    &locale.is_some(),
                    &locale.flatten().map(|locale| locale.as_str().to_owned()),
                    &currency.is_some(),
                    &currency.flatten().map(|currency| currency.code()),
                ],
            )
            .await?
            .ok_or(Error::NotFound("shopper"))?;
        // Sessions remember the shopper as it was: every process reads it again.
        self.forget_sessions(shopper_id).await;
        Ok(Shopper::from_row(&row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_trimmed_line_of_bounded_length() {
        assert_eq!(parse_name("  Ana Lima ").expect("ok"), "Ana Lima");
        let code = |raw: &str| parse_name(raw).expect_err("refused").code();
        assert_eq!(code("   "), "invalid_length");
        assert_eq!(code(&"x".repeat(201)), "invalid_length");
        assert_eq!(code("Ana\nLima"), "invalid_characters");
    }
}
