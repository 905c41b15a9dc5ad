//! Locales: BCP 47 tags, their fallback chains and their text-search configurations.
//!
//! Promises: a [`Locale`] is a well-formed tag of the form `language[-Script][-REGION]`
//! (case-normalised: `de-AT`, `zh-Hant-TW`) whose language the store supports, i.e. has a
//! Postgres text-search configuration for. A request's locale preference (`?locale=` or
//! `Accept-Language`) becomes a [`LocalePreference`]: its tags and their truncations, best first,
//! so `de-AT` falls back to `de` and then to the product's default locale.

use std::fmt;

/// Supported languages (ISO 639-1) and the Postgres text-search configuration that stems them;
/// `simple` where Postgres ships no stemmer.
const LANGUAGES: &[(&str, &str)] = &[
    ("ar", "arabic"),
    ("bg", "simple"),
    ("ca", "catalan"),
    ("cs", "simple"),
    ("da", "danish"),
    ("de", "german"),
    ("el", "greek"),
    ("en", "english"),
    ("es", "spanish"),
    ("et", "simple"),
    ("eu", "basque"),
    ("fa", "simple"),
    ("fi", "finnish"),
    ("fr", "french"),
    ("ga", "irish"),
    ("he", "simple"),
    ("hi", "hindi"),
    ("hr", "simple"),
    ("hu", "hungarian"),
    ("hy", "armenian"),
    ("id", "indonesian"),
    ("it", "italian"),
    ("ja", "simple"),
    ("ko", "simple"),
    ("lt", "lithuanian"),
    ("lv", "simple"),
    ("ms", "simple"),
    ("nb", "norwegian"),
    ("ne", "nepali"),
    ("nl", "dutch"),
    ("nn", "norwegian"),
    ("no", "norwegian"),
    ("pl", "simple"),
    ("pt", "portuguese"),
    ("ro", "romanian"),
    ("ru", "russian"),
    ("sk", "simple"),
    ("sl", "simple"),
    ("sr", "serbian"),
    ("sv", "swedish"),
    ("ta", "tamil"),
    ("th", "simple"),
    ("tr", "turkish"),
    ("uk", "simple"),
    ("vi", "simple"),
    ("yi", "yiddish"),
    ("zh", "simple"),
];

/// Most tags read from one `Accept-Language` header; the rest are ignored.
const MAX_ACCEPT_LANGUAGE_TAGS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocaleError {
    #[error("{0:?} is not a BCP 47 language tag such as \"en\" or \"de-AT\"")]
    Malformed(String),
    #[error("the language of {0:?} is not supported")]
    Unsupported(String),
}

/// A supported, normalised BCP 47 tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locale(String);

impl Locale {
    pub fn parse(raw: &str) -> Result<Self, LocaleError> {
        let malformed = || LocaleError::Malformed(raw.to_owned());
        let mut parts = raw.split(['-', '_']);
        let language = parts
            .next()
            .filter(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
        let mut tag = language.ok_or_else(malformed)?.to_ascii_lowercase();
        let mut seen_script = false;
        let mut seen_region = false;
        for part in parts {
            let alpha = part.bytes().all(|b| b.is_ascii_alphabetic());
            let digits = part.bytes().all(|b| b.is_ascii_digit());
            if part.len() == 4 && alpha && !seen_script && !seen_region {
                seen_script = true;
                tag.push('-');
                tag.push_str(&part[..1].to_ascii_uppercase());
                tag.push_str(&part[1..].to_ascii_lowercase());
            } else if ((part.len() == 2 && alpha) || (part.len() == 3 && digits)) && !seen_region {
                seen_region = true;
                tag.push('-');
                tag.push_str(&part.to_ascii_uppercase());
            } else {
                return Err(malformed());
            }
        }
        let language = tag.split('-').next().unwrap_or_default();
        if search_config_of(language).is_none() {
            return Err(LocaleError::Unsupported(raw.to_owned()));
        }
        Ok(Self(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// The Postgres text-search configuration for this locale's language.
    pub fn search_config(&self) -> &'static str {
        search_config_of(self.language()).unwrap_or("simple")
    }

    /// This tag and its truncations, most specific first: `zh-Hant-TW`, `zh-Hant`, `zh`.
    pub fn with_fallbacks(&self) -> Vec<Locale> {
        let mut chain = vec![self.clone()];
        let mut tag = self.0.as_str();
        while let Some(cut) = tag.rfind('-') {
            tag = &tag[..cut];
            chain.push(Self(tag.to_owned()));
        }
        chain
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn search_config_of(language: &str) -> Option<&'static str> {
    LANGUAGES
        .binary_search_by(|(code, _)| code.cmp(&language))
        .ok()
        .map(|index| LANGUAGES[index].1)
}

/// What a request asked for, best first, with fallbacks; empty means "the product's default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalePreference(Vec<Locale>);

impl LocalePreference {
    /// From `?locale=`: one tag, which must be valid.
    pub fn from_query(raw: &str) -> Result<Self, LocaleError> {
        Ok(Self::from_tags([Locale::parse(raw)?]))
    }

    /// From `Accept-Language`: tags ordered by q-value; malformed or unsupported ones and `*`
    /// are skipped, as browsers send many.
    pub fn from_accept_language(header: &str) -> Self {
        let mut weighted: Vec<(u16, usize, Locale)> = header
            .split(',')
            .take(MAX_ACCEPT_LANGUAGE_TAGS)
            .enumerate()
            .filter_map(|(position, item)| {
                let mut pieces = item.split(';');
                let tag = pieces.next()?.trim();
                let quality =
                    pieces
                        .find_map(|p| p.trim().strip_prefix("q="))
                        .map_or(Some(1000), |q| {
                            q.trim()
                                .parse::<f32>()
                                .ok()
                                .map(|q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                        })?;
                if quality == 0 || tag == "*" {
                    return None;
                }
                Locale::parse(tag)
                    .ok()
                    .map(|locale| (quality, position, locale))
            })
            .collect();
        weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Self::from_tags(weighted.into_iter().map(|(_, _, locale)| locale))
    }

    fn from_tags(tags: impl IntoIterator<Item = Locale>) -> Self {
        let mut chain: Vec<Locale> = Vec::new();
        for tag in tags {
            for locale in tag.with_fallbacks() {
                if !chain.contains(&locale) {
                    chain.push(locale);
                }
            }
        }
        Self(chain)
    }

    pub fn tags(&self) -> &[Locale] {
        &self.0
    }

    /// The first preferred locale present in `available`, else `default`.
    pub fn choose<'a>(
        &self,
        available: impl Fn(&str) -> bool,
        default: &'a str,
    ) -> std::borrow::Cow<'a, str> {
        self.0
            .iter()
            .find(|locale| available(locale.as_str()))
            .map_or(std::borrow::Cow::Borrowed(default), |locale| {
                std::borrow::Cow::Owned(locale.as_str().to_owned())
            })
    }

    /// The language whose text-search configuration a search uses: the most preferred one.
    pub fn primary(&self) -> Option<&Locale> {
        self.0.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_table_is_sorted_for_binary_search() {
        assert!(LANGUAGES.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn tags_are_normalised_and_unknown_or_malformed_ones_refused() {
        assert_eq!(Locale::parse("de-at").expect("ok").as_str(), "de-AT");
        assert_eq!(
            Locale::parse("zh_hant_tw").expect("ok").as_str(),
            "zh-Hant-TW"
        );
        assert_eq!(Locale::parse("es-419").expect("ok").as_str(), "es-419");
        assert!(matches!(
            Locale::parse("xx"),
            Err(LocaleError::Unsupported(_))
        ));
        for bad in ["", "e", "english", "de-", "de-AT-AT", "de-A", "12"] {
            assert!(
                matches!(Locale::parse(bad), Err(LocaleError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_regional_tag_falls_back_to_its_language() {
        let preference = LocalePreference::from_query("de-AT").expect("ok");
        let tags: Vec<&str> = preference.tags().iter().map(Locale::as_str).collect();
        assert_eq!(tags, ["de-AT", "de"]);
        assert_eq!(preference.choose(|l| l == "de" || l == "en", "en"), "de");
        assert_eq!(preference.choose(|l| l == "en", "en"), "en");
    }

    #[test]
    fn accept_language_is_ordered_by_quality_and_skips_junk() {
        let preference = LocalePreference::from_accept_language(
            "fr-CH;q=0.4, de-AT, *;q=0.1, xx, en;q=0.8, it;q=0",
        );
        let tags: Vec<&str> = preference.tags().iter().map(Locale::as_str).collect();
        assert_eq!(tags, ["de-AT", "de", "en", "fr-CH", "fr"]);
    }
}
