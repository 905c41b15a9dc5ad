//! Countries and their postal codes: which ISO 3166-1 alpha-2 codes exist, and the format of
//! a postal code in the countries whose format is known (normalized to how the country's post
//! writes it: `SW1A 1AA`, `100-0001`, `1234 AB`).

/// The officially assigned ISO 3166-1 alpha-2 codes (249).
const ASSIGNED: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Countries whose addresses have no postal code (an empty one is accepted there).
const WITHOUT_POSTAL_CODES: &[&str] = &[
    "AE", "AG", "AO", "AW", "BF", "BI", "BJ", "BO", "BS", "BW", "BZ", "CD", "CF", "CG", "CI", "CK",
    "CM", "DJ", "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "IE", "JM", "KI", "KM",
    "KN", "KP", "LY", "ML", "MO", "MR", "MW", "NR", "NU", "QA", "RW", "SB", "SC", "SL", "SR", "ST",
    "SY", "TD", "TF", "TG", "TK", "TL", "TO", "TV", "UG", "VU", "YE", "ZW",
];

/// Longest postal code accepted anywhere, in characters (after normalizing).
pub const MAX_POSTAL_CODE_CHARS: usize = 12;

/// Whether `code` (upper case) is an ISO 3166-1 alpha-2 code: officially assigned, or one of
/// the ranges the standard leaves to its users (`AA`, `QM`–`QZ`, `XA`–`XZ`, `ZZ`; e.g. `XK`
/// for Kosovo, or a test region's own country).
pub fn is_country(code: &str) -> bool {
    let bytes = code.as_bytes();
    let [first, second] = bytes else {
        return false;
    };
    if !first.is_ascii_uppercase() || !second.is_ascii_uppercase() {
        return false;
    }
    let user_assigned =
        code == "AA" || code == "ZZ" || *first == b'X' || (*first == b'Q' && *second >= b'M');
    user_assigned || ASSIGNED.binary_search(&code).is_ok()
}

/// Whether addresses in `country` may go without a postal code.
pub fn postal_code_optional(country: &str) -> bool {
    WITHOUT_POSTAL_CODES.contains(&country)
}

/// Whether `text` fits `pattern`: `9` a digit, `A` a letter, anything else itself.
fn fits(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
            b'9' => c.is_ascii_digit(),
            b'A' => c.is_ascii_uppercase(),
            _ => c == p,
        })
}

fn digits(text: &str, count: usize) -> bool {
    text.len() == count && text.bytes().all(|b| b.is_ascii_digit())
}

/// `text` with a separator inserted after `at` characters.
fn split_at(text: &str, at: usize, separator: &str) -> String {
    format!("{}{separator}{}", &text[..at], &text[at..])
}

/// A UK (and Crown Dependencies') postcode without spaces, e.g. `SW1A1AA`, as the post writes
/// it (`SW1A 1AA`); `None` when it is not one.
fn uk_postcode(compact: &str) -> Option<String> {
    if compact == "GIR0AA" {
        return Some("GIR 0AA".into());
    }
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = fits(inward, "9AA") && !inward[1..].bytes().any(|b| b"CIKMOV".contains(&b));
    let outward_ok = ["A9", "A99", "AA9", "AA99", "A9A", "AA9A"]
        .iter()
        .any(|pattern| fits(outward, pattern));
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

/// A Canadian postal code without spaces (`K1A0B1` → `K1A 0B1`).
fn canadian(compact: &str) -> Option<String> {
    let letters_ok = compact
        .bytes()
        .enumerate()
        .filter(|(index, _)| index % 2 == 0)
        .all(|(_, b)| !b"DFIOQU".contains(&b));
    let first_ok = compact
        .bytes()
        .next()
        .is_some_and(|b| b != b'W' && b != b'Z');
    (fits(compact, "A9A9A9") && letters_ok && first_ok).then(|| split_at(compact, 3, " "))
}

/// A Dutch postcode without spaces (`1234AB` → `1234 AB`).
fn dutch(compact: &str) -> Option<String> {
    let ok = fits(compact, "9999AA")
        && !compact.starts_with('0')
        && !matches!(&compact[4..], "SA" | "SD" | "SS");
    ok.then(|| split_at(compact, 4, " "))
}

/// Normalizes a postal code for `country`: trimmed, upper case, inner spaces collapsed, then
/// checked against the country's format where it is known (and rewritten as its post writes
/// it). `None` when it does not fit. Elsewhere: 1 to [`MAX_POSTAL_CODE_CHARS`] letters,
/// digits, spaces and hyphens.
pub fn normalize(country: &str, raw: &str) -> Option<String> {
    let spaced = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    let compact: String = spaced.chars().filter(|c| *c != ' ').collect();
    let known = match country {
        "DE" | "FR" | "IT" | "FI" => Some(digits(&spaced, 5).then(|| spaced.clone())),
        "ES" => Some(
            (digits(&spaced, 5) && matches!(spaced[..2].parse::<u8>(), Ok(1..=52)))
                .then(|| spaced.clone()),
        ),
        "AT" | "CH" | "BE" | "DK" | "NO" | "AU" | "LU" | "HU" | "SI" => {
            Some(digits(&spaced, 4).then(|| spaced.clone()))
        }
        "US" => Some(match spaced.as_str() {
            s if digits(s, 5) || fits(s, "99999-9999") => Some(s.to_owned()),
            s if digits(s, 9) => Some(split_at(s, 5, "-")),
            _ => None,
        }),
        "JP" => Some(match spaced.as_str() {
            s if fits(s, "999-9999") => Some(s.to_owned()),
            s if digits(s, 7) => Some(split_at(s, 3, "-")),
            _ => None,
        }),
        "GB" | "GG" | "JE" | "IM" => Some(uk_postcode(&compact)),
        "NL" => Some(dutch(&compact)),
        "CA" => Some(canadian(&compact)),
        "SE" => Some(digits(&compact, 5).then(|| split_at(&compact, 3, " "))),
        "PL" => Some(match spaced.as_str() {
            s if fits(s, "99-999") => Some(s.to_owned()),
            s if digits(s, 5) => Some(split_at(s, 2, "-")),
            _ => None,
        }),
        "PT" => Some(match spaced.as_str() {
            s if fits(s, "9999-999") => Some(s.to_owned()),
            s if digits(s, 7) => Some(split_at(s, 4, "-")),
            _ => None,
        }),
        "BR" => Some(match spaced.as_str() {
            s if fits(s, "99999-999") => Some(s.to_owned()),
            s if digits(s, 8) => Some(split_at(s, 5, "-")),
            _ => None,
        }),
        _ => None,
    };
    match known {
        Some(normalized) => normalized,
        None => {
            let ok = !spaced.is_empty()
                && spaced.chars().count() <= MAX_POSTAL_CODE_CHARS
                && spaced
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-');
            ok.then_some(spaced)
        }
    }
}

/// What a postal code looks like in `country`, for the error message.
pub fn format_hint(country: &str) -> &'static str {
    match country {
        "DE" | "FR" | "IT" | "FI" => "5 digits, e.g. 10115",
        "ES" => "5 digits starting 01 to 52, e.g. 28013",
        "AT" | "CH" | "BE" | "DK" | "NO" | "AU" | "LU" | "HU" | "SI" => "4 digits, e.g. 1010",
        "US" => "5 digits or ZIP+4, e.g. 94103 or 94103-1234",
        "JP" => "NNN-NNNN, e.g. 100-0001",
        "GB" | "GG" | "JE" | "IM" => "a UK postcode, e.g. SW1A 1AA",
        "NL" => "4 digits and 2 letters, e.g. 1012 AB",
        "CA" => "A1A 1A1, e.g. K1A 0B1",
        "SE" => "NNN NN, e.g. 114 55",
        "PL" => "NN-NNN, e.g. 00-950",
        "PT" => "NNNN-NNN, e.g. 1100-148",
        "BR" => "NNNNN-NNN, e.g. 01310-100",
        _ => "1 to 12 letters, digits, spaces or hyphens",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assigned_codes_are_249_sorted_and_unique() {
        assert_eq!(ASSIGNED.len(), 249);
        assert!(ASSIGNED.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(WITHOUT_POSTAL_CODES.iter().all(|code| is_country(code)));
    }

    #[test]
    fn countries_are_assigned_or_user_assigned_codes() {
        for code in ["DE", "US", "JP", "GB", "AX", "ZZ", "XK", "QM", "AA"] {
            assert!(is_country(code), "{code}");
        }
        for code in ["UK", "EU", "QA1", "de", "D", "", "ZY", "QL", "ÄÖ"] {
            assert!(!is_country(code), "{code}");
        }
    }

    #[test]
    fn german_french_and_austrian_postal_codes_have_their_digits() {
        assert_eq!(normalize("DE", " 10115 ").as_deref(), Some("10115"));
        assert_eq!(normalize("DE", "1011"), None);
        assert_eq!(normalize("DE", "101155"), None);
        assert_eq!(normalize("DE", "1O115"), None);
        assert_eq!(normalize("FR", "75001").as_deref(), Some("75001"));
        assert_eq!(normalize("FR", "7500"), None);
        assert_eq!(normalize("AT", "1010").as_deref(), Some("1010"));
        assert_eq!(normalize("AT", "10100"), None);
        assert_eq!(normalize("CH", "8001").as_deref(), Some("8001"));
        assert_eq!(normalize("IT", "00184").as_deref(), Some("00184"));
        assert_eq!(normalize("ES", "28013").as_deref(), Some("28013"));
        assert_eq!(normalize("ES", "53001"), None);
    }

    #[test]
    fn us_zip_codes_are_five_digits_or_zip_plus_four() {
        assert_eq!(normalize("US", "94103").as_deref(), Some("94103"));
        assert_eq!(normalize("US", "94103-1234").as_deref(), Some("94103-1234"));
        assert_eq!(normalize("US", "941031234").as_deref(), Some("94103-1234"));
        assert_eq!(normalize("US", "9410"), None);
        assert_eq!(normalize("US", "94103-12"), None);
        assert_eq!(normalize("US", "ABCDE"), None);
    }

    #[test]
    fn japanese_postal_codes_take_seven_digits_and_get_their_hyphen() {
        assert_eq!(normalize("JP", "100-0001").as_deref(), Some("100-0001"));
        assert_eq!(normalize("JP", "1000001").as_deref(), Some("100-0001"));
        assert_eq!(normalize("JP", "100-001"), None);
        assert_eq!(normalize("JP", "10-00001"), None);
        assert_eq!(normalize("JP", "100 0001"), None);
    }

    #[test]
    fn uk_postcodes_are_upper_case_with_one_space() {
        for (raw, written) in [
            ("sw1a 1aa", "SW1A 1AA"),
            ("SW1A1AA", "SW1A 1AA"),
            ("  ec1a   1bb ", "EC1A 1BB"),
            ("M1 1AE", "M1 1AE"),
            ("b338th", "B33 8TH"),
            ("CR2 6XH", "CR2 6XH"),
            ("DN55 1PT", "DN55 1PT"),
            ("W1A 0AX", "W1A 0AX"),
            ("GIR 0AA", "GIR 0AA"),
        ] {
            assert_eq!(normalize("GB", raw).as_deref(), Some(written), "{raw}");
        }
        for raw in [
            "SW1A",
            "1AA SW1",
            "SW1A 1CA",
            "SW1A-1AA",
            "ABCDE 1AA",
            "12345",
        ] {
            assert_eq!(normalize("GB", raw), None, "{raw}");
        }
    }

    #[test]
    fn dutch_canadian_and_others_are_written_as_their_posts_write_them() {
        assert_eq!(normalize("NL", "1012ab").as_deref(), Some("1012 AB"));
        assert_eq!(normalize("NL", "1012 AB").as_deref(), Some("1012 AB"));
        assert_eq!(normalize("NL", "0123 AB"), None);
        assert_eq!(normalize("NL", "1012 SS"), None);
        assert_eq!(normalize("CA", "k1a0b1").as_deref(), Some("K1A 0B1"));
        assert_eq!(normalize("CA", "K1A 0B1").as_deref(), Some("K1A 0B1"));
        assert_eq!(normalize("CA", "W1A 0B1"), None);
        assert_eq!(normalize("CA", "K1A 0D1"), None);
        assert_eq!(normalize("SE", "11455").as_deref(), Some("114 55"));
        assert_eq!(normalize("PL", "00950").as_deref(), Some("00-950"));
        assert_eq!(normalize("PT", "1100-148").as_deref(), Some("1100-148"));
        assert_eq!(normalize("BR", "01310100").as_deref(), Some("01310-100"));
    }

    #[test]
    fn elsewhere_a_postal_code_is_short_letters_digits_spaces_and_hyphens() {
        assert_eq!(normalize("ZZ", "ab-12 3").as_deref(), Some("AB-12 3"));
        assert_eq!(normalize("KR", "03187").as_deref(), Some("03187"));
        assert_eq!(normalize("ZZ", ""), None);
        assert_eq!(normalize("ZZ", "1234567890123"), None);
        assert_eq!(normalize("ZZ", "12#4"), None);
        assert!(postal_code_optional("HK"));
        assert!(!postal_code_optional("DE"));
    }
}
