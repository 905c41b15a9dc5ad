//! Input hygiene at the edge, once for every route: text that comes in (a JSON body, a query
//! string, the path) holds no control characters, and no JSON object names a key twice.
//!
//! Postgres refuses NUL in text, and a control character in a title, an SKU or a search is
//! never meant; refusing them here, naming the field, means no handler can forget to (and no
//! 500 follows from a database error). Tab, line feed and carriage return are text. A JSON
//! object with the same key twice (`{"EUR": "1.00", "EUR": "0.01"}`) would silently keep the
//! last value; it is refused at any depth.

use std::{cell::RefCell, collections::HashSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::{
    error::{Code, Error},
    text::{check as check_text, is_forbidden},
};

/// Refuses a JSON body with a control character in any string or key, or a key twice in one
/// object, naming the first such place as a JSON path (`prices.EUR`, `variants[0].sku`).
/// A body that is not JSON at all is left to the parser, which says so.
pub fn check_json(body: &[u8]) -> Result<(), Error> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let walk = Walk {
        path: String::new(),
        found: &found,
    };
    // Errors other than the ones recorded are the parser's to report.
    let _ = walk.deserialize(&mut deserializer);
    match found.into_inner() {
        Some(Problem::Control(path)) => Err(Error::invalid_field(
            Code::InvalidCharacters,
            path,
            "must not contain control characters",
        )),
        Some(Problem::DuplicateKey(path)) => Err(Error::invalid_field(
            Code::DuplicateKey,
            path,
            "this key is given more than once",
        )),
        None => Ok(()),
    }
}

enum Problem {
    Control(String),
    DuplicateKey(String),
}

/// Walks one JSON value at `path`, recording the first problem and stopping there.
struct Walk<'a> {
    path: String,
    found: &'a RefCell<Option<Problem>>,
}

impl Walk<'_> {
    fn stop<E: de::Error>(&self, problem: Problem) -> E {
        self.found.borrow_mut().get_or_insert(problem);
        E::custom("refused")
    }

    fn child(&self, path: String) -> Walk<'_> {
        Walk {
            path,
            found: self.found,
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        if text.chars().any(is_forbidden) {
            return Err(self.stop(Problem::Control(self.path.clone())));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        while items
            .next_element_seed(self.child(format!("{}[{index}]", self.path)))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            let path = self.key_path(&key);
            if key.chars().any(is_forbidden) {
                return Err(self.stop(Problem::Control(path)));
            }
            if !seen.insert(key) {
                return Err(self.stop(Problem::DuplicateKey(path)));
            }
            entries.next_value_seed(self.child(path))?;
        }
        Ok(())
    }
}

/// Refuses a request whose query string or path carries a control character (`%00`, …),
/// naming the parameter or `path`.
pub fn check_request(path: &str, query: &str) -> Result<(), Error> {
    if percent_decodes_to_control(path) {
        return Err(Error::invalid_field(
            Code::InvalidCharacters,
            "path",
            "must not contain control characters",
        )
        .in_query());
    }
    if query.is_empty() || !query.contains('%') {
        return Ok(());
    }
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|query| query.into_inner())
        .unwrap_or_default();
    for (name, value) in &pairs {
        check_text(name, name)
            .and_then(|()| check_text(name, value))
            .map_err(Error::in_query)?;
    }
    Ok(())
}

/// Whether a raw path has a percent-encoded control character (`%00`–`%1F`, `%7F`).
fn percent_decodes_to_control(raw: &str) -> bool {
    raw.split('%').skip(1).any(|escaped| {
        escaped
            .get(..2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .is_some_and(|byte| byte < 0x20 || byte == 0x7f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(error: Error) -> (Code, String) {
        (error.code(), error.field().unwrap_or_default().to_owned())
    }

    #[test]
    fn a_control_character_anywhere_in_a_body_is_refused_by_its_path() {
        let body = br#"{"variants": [{"sku": "A"}, {"sku": "B\u0000"}]}"#;
        let refused = check_json(body).expect_err("refused");
        assert_eq!(
            field(refused),
            (Code::InvalidCharacters, "variants[1].sku".into())
        );
        assert!(check_json(br#"{"description": "two\nlines\tand a tab"}"#).is_ok());
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let body = br#"{"prices": {"EUR": "1.00", "EUR": "0.01"}}"#;
        let refused = check_json(body).expect_err("refused");
        assert_eq!(field(refused), (Code::DuplicateKey, "prices.EUR".into()));
        assert!(check_json(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_left_to_the_parser() {
        assert!(check_json(b"{not json").is_ok());
    }

    #[test]
    fn control_characters_in_a_query_or_path_are_refused_by_name() {
        let refused = check_request("/api/v1/products", "q=mug%00").expect_err("refused");
        assert_eq!(field(refused), (Code::InvalidCharacters, "q".into()));
        let refused = check_request("/api/v1/inventory/%00", "").expect_err("refused");
        assert_eq!(field(refused), (Code::InvalidCharacters, "path".into()));
        assert!(check_request("/api/v1/products/caf%C3%A9", "q=caf%C3%A9+%22x%22").is_ok());
    }
}
