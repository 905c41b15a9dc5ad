//! The pages' languages: which one a request gets, the chrome's words in each, and numbers,
//! money and dates written the way each language writes them.
//!
//! Each page states its words in all four languages where it uses them ([`Lang::tr`]), so
//! a page and its translations are read (and reviewed) together. Product content comes in the
//! shopper's language from the catalog, with its own fallbacks.

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::{locale::LocalePreference, money::Price};

/// The cookie that remembers a shopper's language choice.
pub const LANG_COOKIE: &str = "agora_lang";

/// A language the pages' chrome is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
    Fr,
    Ja,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::En, Lang::De, Lang::Fr, Lang::Ja];

    /// The BCP 47 tag, for `<html lang>` and the catalog's locale preference.
    pub fn tag(self) -> &'static str {
        self.tr("en", "de", "fr", "ja")
    }

    /// The language's own name, for the switcher.
    pub fn native_name(self) -> &'static str {
        self.tr("English", "Deutsch", "Français", "日本語")
    }

    /// The language of a tag such as `de-AT` (its primary subtag), if the pages speak it.
    pub fn parse(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Self::ALL.into_iter().find(|lang| lang.tag() == primary)
    }

    /// This language's words of four.
    pub fn tr(
        self,
        en: &'static str,
        de: &'static str,
        fr: &'static str,
        ja: &'static str,
    ) -> &'static str {
        match self {
            Self::En => en,
            Self::De => de,
            Self::Fr => fr,
            Self::Ja => ja,
        }
    }

    /// The language a request is answered in: `?lang=`, else the remembered choice, else the
    /// browser's `Accept-Language`, else English.
    pub fn of_request(request: &HttpRequest) -> Self {
        let asked = query_value(request, "lang").and_then(|tag| Self::parse(&tag));
        let remembered = || {
            request
                .cookie(LANG_COOKIE)
                .and_then(|cookie| Self::parse(cookie.value()))
        };
        let accepted = || {
            request
                .headers()
                .get(actix_web::http::header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(|header| {
                    LocalePreference::from_accept_language(header)
                        .tags()
                        .iter()
                        .find_map(|locale| Self::parse(locale.as_str()))
                })
        };
        asked
            .or_else(remembered)
            .or_else(accepted)
            .unwrap_or(Self::En)
    }

    /// Content in this language first, then the product's own default.
    pub fn preference(self) -> LocalePreference {
        LocalePreference::from_query(self.tag()).unwrap_or_default()
    }

    /// `1,234.5` / `1.234,5` / `1 234,5` / `1,234.5`: an amount with its scale kept.
    pub fn decimal(self, amount: Decimal) -> String {
        crate::money::written_decimal(amount, self.tag())
    }

    /// An amount of money with its currency, as this language writes it: `€28.90`,
    /// `28,90 €`, `￥12,800`, `KWD 30.125` (the rule is `money::written`, shared with the mail).
    pub fn money(self, price: &Price) -> String {
        crate::money::written(price.amount, price.currency, self.tag())
    }

    /// A moment, in UTC, as this language writes dates.
    pub fn datetime(self, at: DateTime<Utc>) -> String {
        let pattern = match self {
            Self::En => "%-d %b %Y, %H:%M UTC",
            Self::De => "%-d.%-m.%Y, %H:%M UTC",
            Self::Fr => "%d/%m/%Y %H:%M UTC",
            Self::Ja => "%Y/%m/%d %H:%M UTC",
        };
        at.format(pattern).to_string()
    }
}

/// One query parameter of the request, decoded.
pub fn query_value(request: &HttpRequest, name: &str) -> Option<String> {
    actix_web::web::Query::<std::collections::HashMap<String, String>>::from_query(
        request.query_string(),
    )
    .ok()
    .and_then(|query| query.get(name).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(amount: &str, currency: &'static str) -> Price {
        Price {
            amount: amount.parse().expect("decimal"),
            currency,
            converted: false,
        }
    }

    #[test]
    fn money_is_written_as_each_language_writes_it() {
        let fig = price("1234.50", "EUR");
        assert_eq!(Lang::En.money(&fig), "€1,234.50");
        assert_eq!(Lang::De.money(&fig), "1.234,50\u{a0}€");
        assert_eq!(Lang::Fr.money(&fig), "1\u{202f}234,50\u{a0}€");
        assert_eq!(Lang::Ja.money(&price("12800", "JPY")), "￥12,800");
        assert_eq!(Lang::En.money(&price("30.125", "KWD")), "KWD\u{a0}30.125");
    }

    #[test]
    fn a_regional_tag_speaks_its_language() {
        assert_eq!(Lang::parse("de-AT"), Some(Lang::De));
        assert_eq!(Lang::parse("pt-BR"), None);
    }
}
