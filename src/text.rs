//! What text that comes in may hold: no control characters but tab, line feed and carriage
//! return (Postgres refuses NUL in text, and no title, SKU or search means the others).

use crate::error::{Code, Error};

/// Whether `c` may not appear in text that comes in.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Refuses a text with a control character, naming `field`.
pub fn check(field: &str, text: &str) -> Result<(), Error> {
    if text.chars().any(is_forbidden) {
        return Err(Error::invalid_field(
            Code::InvalidCharacters,
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}
