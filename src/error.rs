//! The domain's one error type, and the one table of the stable error codes clients match on.
//!
//! Every domain module answers [`Error`]; the web layer maps it to a status and the JSON shape
//! `{"error": {"code", "message", "field"?}}` once, at the edge (its `error` module), and the
//! WebSocket layer sends the same codes in its `error` messages. The variants say what kind of
//! failure it is (the input is invalid, the thing is not there, it conflicts with the state,
//! a dependency is down, …); the [`Code`] says which one, stably.
//!
//! [`Code`]'s table is the contract: each code's text, the statuses it may be answered with
//! and what it means. `docs/api.md` lists the same table, and a test keeps the two equal.

use std::fmt;

/// Declares [`Code`]: one row per stable code, `Variant = "text", [statuses], "meaning"`.
/// A code with no status is sent only in WebSocket `error` messages.
macro_rules! error_codes {
    ($($variant:ident = $text:literal, [$($status:literal),*], $meaning:literal;)+) => {
        /// A stable, machine-readable error code (snake_case on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)+
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The code as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)+
                }
            }

            /// The HTTP statuses this code may be answered with (none: WebSocket only). A
            /// code of a field that is invalid (422) is answered 400 when the field is a query
            /// parameter: the request, not a body, is at fault.
            pub const fn statuses(self) -> &'static [u16] {
                match self {
                    $(Code::$variant => &[$($status),*],)+
                }
            }

            /// What the code means, for people.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)+
                }
            }
        }
    };
}

error_codes! {
    // The request as a whole.
    MalformedJson = "malformed_json", [400], "the body is not valid JSON";
    UnreadableBody = "unreadable_body", [400], "the body could not be read";
    InvalidQuery = "invalid_query", [400], "the query string does not parse; `field` names the parameter";
    InvalidCursor = "invalid_cursor", [400], "the `cursor` is not one this server handed out";
    InvalidLimit = "invalid_limit", [400, 422], "the `limit` is outside its documented range";
    InvalidIdempotencyKey = "invalid_idempotency_key", [400], "send an `Idempotency-Key` header of 1 to 255 printable characters";
    InvalidLastEventId = "invalid_last_event_id", [400], "`last_event_id` is not an event id";
    WebsocketRequired = "websocket_required", [400], "the route speaks WebSocket only: send an upgrade request";
    UnsupportedMediaType = "unsupported_media_type", [415], "bodies must be `application/json`";
    PayloadTooLarge = "payload_too_large", [413], "the body is larger than `http.max_body_bytes`";
    Unauthorized = "unauthorized", [401], "no valid credentials for this route (a missing, unknown, expired or revoked token)";
    InvalidResetToken = "invalid_reset_token", [400], "a password-reset token that is unknown, used already or expired; ask for a new one";
    NotFound = "not_found", [404], "no such route or resource, or one the caller may not see (another seller's product is not found, never forbidden)";
    MethodNotAllowed = "method_not_allowed", [405], "the route exists, the method does not";
    BadRequest = "bad_request", [400], "the framework refused the request before any handler saw it (e.g. a malformed header)";
    RequestTimeout = "request_timeout", [408], "the request's head or body did not arrive in time";
    LengthRequired = "length_required", [411], "a body without a length";
    UriTooLong = "uri_too_long", [414], "the URI is longer than the server reads";
    RequestHeaderFieldsTooLarge = "request_header_fields_too_large", [431], "the headers are larger than the server reads";
    RateLimited = "rate_limited", [429], "too many requests; retry after `Retry-After` seconds";
    // Fields (422; 400 in a query parameter).
    MissingField = "missing_field", [422], "a required field is missing";
    UnknownField = "unknown_field", [422], "a field the schema does not have";
    InvalidField = "invalid_field", [422], "a field's value has the wrong type or shape";
    InvalidEmail = "invalid_email", [422], "not an email address";
    InvalidPassword = "invalid_password", [422], "the password is too short or too long";
    InvalidLength = "invalid_length", [422], "a text is empty or longer than its limit";
    InvalidCharacters = "invalid_characters", [422], "a text holds characters it may not";
    InvalidLocale = "invalid_locale", [422], "not a locale tag";
    UnknownLocale = "unknown_locale", [422], "a locale the store does not serve";
    UnknownCurrency = "unknown_currency", [422], "not an ISO 4217 currency";
    UnsupportedCurrency = "unsupported_currency", [422], "a currency the store does not price in";
    InvalidAmount = "invalid_amount", [422], "an amount that is not a decimal string";
    NegativeAmount = "negative_amount", [422], "an amount below zero";
    TooPrecise = "too_precise", [422], "an amount with more decimals than its currency's minor units";
    AmountTooLarge = "amount_too_large", [422], "an amount above the largest the store accepts";
    MissingDefaultContent = "missing_default_content", [422], "no content in the product's default locale";
    MissingBasePrice = "missing_base_price", [422], "a variant without a price in the base currency";
    MissingPrice = "missing_price", [422], "a price is required here";
    MissingVariant = "missing_variant", [422], "a product needs at least one variant";
    InvalidSku = "invalid_sku", [422], "an SKU of characters or length it may not have";
    DuplicateSku = "duplicate_sku", [422], "the same SKU twice in one request";
    DuplicateLocale = "duplicate_locale", [422], "the same locale twice in one request";
    DuplicateKey = "duplicate_key", [422], "the same key twice in one JSON object, at any depth";
    TooManyVariants = "too_many_variants", [422], "more variants than a product may have";
    TooManyLocales = "too_many_locales", [422], "more locales than a product may have";
    TooManyAttributes = "too_many_attributes", [422], "more attributes than a variant may have";
    TooManyImages = "too_many_images", [422], "more images than a variant may have";
    TooManyShippingOptions = "too_many_shipping_options", [422], "more shipping options than a region may have";
    TooManyLines = "too_many_lines", [422], "more lines than a cart may have";
    InvalidUrl = "invalid_url", [422], "not an http(s) URL";
    StockTooLarge = "stock_too_large", [422], "a stock level above the largest the store accepts";
    WeightTooLarge = "weight_too_large", [422], "a weight above the largest the store accepts";
    StockNotPatchable = "stock_not_patchable", [422], "stock is changed through the inventory routes, not the product";
    InvalidDelta = "invalid_delta", [422], "a stock adjustment of zero or out of range";
    GuestWithCredentials = "guest_with_credentials", [422], "a guest sign-up with an email or password";
    InvalidCountry = "invalid_country", [422], "not an ISO 3166 alpha-2 country code";
    UnknownCountry = "unknown_country", [422], "a country no region ships to";
    InvalidCountries = "invalid_countries", [422], "a region's countries are empty or repeated";
    InvalidRegionCode = "invalid_region_code", [422], "a region code of characters or length it may not have";
    InvalidTaxRate = "invalid_tax_rate", [422], "a tax rate outside 0 to 1";
    InvalidShippingOptionId = "invalid_shipping_option_id", [422], "a shipping option id of characters or length it may not have";
    InvalidDeliveryDays = "invalid_delivery_days", [422], "delivery days out of range or reversed";
    InvalidQuantity = "invalid_quantity", [422], "a quantity out of range";
    UnknownSku = "unknown_sku", [422], "no such SKU on the storefront";
    UnknownRegion = "unknown_region", [422, 404], "no such region";
    CountryOutsideRegion = "country_outside_region", [422], "the region does not ship to that country";
    UnknownShippingOption = "unknown_shipping_option", [422], "the region has no such shipping option";
    InvalidAddress = "invalid_address", [422], "a field of an address is empty, longer than its limit or not one line of text";
    InvalidPostalCode = "invalid_postal_code", [422], "not a postal code in the format of the address's country";
    InvalidPhone = "invalid_phone", [422], "a phone number of characters other than digits, spaces and `+-()`, or with too few digits";
    UnknownAddress = "unknown_address", [422], "no such address in the shopper's address book";
    AddressRequired = "address_required", [422], "checking out where the region ships needs a shipping address (`shipping.address`)";
    EmailRequired = "email_required", [422], "a guest's checkout where the region ships needs a contact `email`";
    InvalidCardNumber = "invalid_card_number", [422], "not a card number (digits failing the Luhn check)";
    IdempotencyKeyReused = "idempotency_key_reused", [422], "this `Idempotency-Key` was used with a different request";
    PerShopperLimitExceeded = "per_shopper_limit_exceeded", [422], "more units than the sale allows one shopper";
    NoSalePrice = "no_sale_price", [422], "the sale has no price in the region's currency";
    InvalidWindow = "invalid_window", [422], "a sale window that ends before it starts, or lies in the past";
    UnknownOrderLine = "unknown_order_line", [422], "the order (or the seller's part of it) has no line with that SKU";
    RefundExceedsCaptured = "refund_exceeds_captured", [422], "more than the order, or the seller's part, has left to give back";
    ReturnWindowClosed = "return_window_closed", [422], "the line shipped longer ago than the return window";
    // The state of things (409 and kin).
    PaymentDeclined = "payment_declined", [402], "the card was declined; the cart's holds were released";
    InvalidAdmission = "invalid_admission", [403], "a forged, tampered, another shopper's or another sale's admission token";
    NotAdmitted = "not_admitted", [403], "no admission to this sale, or it was used";
    AccountRequired = "account_required", [403], "guests have no address book: register or sign in first";
    AdmissionExpired = "admission_expired", [410], "the admission's window passed";
    SoldOut = "sold_out", [409], "no unit is left";
    SaleClosed = "sale_closed", [409], "the sale is not open";
    EmailTaken = "email_taken", [409], "an account with this email exists";
    WrongPassword = "wrong_password", [403], "the current password, given to confirm an account change, is wrong (counted like a failed sign-in)";
    AlreadyRegistered = "already_registered", [409], "the shopper already has an email and password; registration is for guests";
    GuestAccount = "guest_account", [409], "a guest has no password to change; register the guest first";
    SkuTaken = "sku_taken", [409], "another product has this SKU";
    InsufficientStock = "insufficient_stock", [409], "fewer units are available than asked for; `available` says how many are";
    StockCommitted = "stock_committed", [409], "stock cannot go below the units held and sold";
    CountryInOtherRegion = "country_in_other_region", [409], "another region already ships to that country";
    EmptyCart = "empty_cart", [409], "the cart has no lines to check out";
    ShippingRequired = "shipping_required", [409, 422], "choose a shipping country and option first";
    TooManyAddresses = "too_many_addresses", [409], "the address book holds as many addresses as it may (20); delete one first";
    HoldExpired = "hold_expired", [409], "a line's hold lapsed and its units are gone";
    CheckoutInProgress = "checkout_in_progress", [409], "another checkout of this cart is under way";
    IdempotencyKeyInProgress = "idempotency_key_in_progress", [409], "a checkout with this `Idempotency-Key` is still running; retry shortly";
    InvalidTransition = "invalid_transition", [409], "the order part is not in a state that allows this";
    PaymentNotCaptured = "payment_not_captured", [409], "the payment is not captured yet, so it cannot be refunded";
    AlreadyShipped = "already_shipped", [409], "units of the order have shipped, so it can no longer be cancelled whole; ask for a return";
    SellerUnavailable = "seller_unavailable", [409], "lines of a seller the store suspended; their holds were released, `lines` names them";
    // Dependencies.
    PaymentFailed = "payment_failed", [502], "the payment gateway failed; nothing was charged and the holds were released";
    PaymentTimeout = "payment_timeout", [504], "the payment gateway did not answer in time; nothing was charged and the holds were released";
    ServiceUnavailable = "service_unavailable", [503], "a dependency (Postgres, Redis) or a bounded resource cannot serve now; retry";
    NotReady = "not_ready", [503], "`/ready`: Postgres or Redis does not answer";
    InternalError = "internal_error", [500], "a fault of the server; the cause is logged, never sent";
    // WebSocket messages only.
    InvalidMessage = "invalid_message", [], "a WebSocket message that is not one of the protocol's";
    TooManySubscriptions = "too_many_subscriptions", [], "a socket follows as many things as it may";
    UnknownProduct = "unknown_product", [], "a followed product is not on the storefront";
    Unavailable = "unavailable", [], "what the socket asked for cannot be read now";
}

impl Code {
    /// The code whose text this is.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|code| code.as_str() == text)
    }
}

/// Lets tests and callers compare a code with its text.
impl PartialEq<&str> for Code {
    fn eq(&self, text: &&str) -> bool {
        self.as_str() == *text
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What went wrong, in the domain's words. The kind decides how the edge answers it; the
/// [`Code`] says which failure of that kind it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be parsed at all (malformed JSON, a bad query string or header).
    #[error("{message}")]
    BadRequest {
        code: Code,
        message: String,
        field: Option<String>,
    },
    /// The request parsed, but a field's value is missing or not acceptable.
    #[error("{message}")]
    InvalidField {
        code: Code,
        message: String,
        field: String,
    },
    #[error("request body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Authenticated, but not allowed to do this (e.g. buy without an admission).
    #[error("{message}")]
    Forbidden { code: Code, message: String },
    /// The thing asked for existed and is gone for good (e.g. an admission that expired).
    #[error("{message}")]
    Gone { code: Code, message: String },
    /// Too many requests from this client; retry after the given seconds.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Conflict {
        code: Code,
        message: String,
        field: Option<String>,
    },
    /// Fewer units are available than asked for; the answer says how many are.
    #[error("only {available} available")]
    InsufficientStock { available: i64 },
    /// Lines of sellers the store suspended: they left the cart; `lines` names their SKUs.
    #[error("{} cannot be bought now: the seller is not selling; removed from the cart", skus.join(", "))]
    SellerUnavailable { skus: Vec<String> },
    /// A dependency (Postgres, Redis) or a bounded resource cannot serve the request now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn invalid_field(code: Code, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error found in a query parameter: the request, not a body field, is at fault
    /// (400 instead of 422), still naming the parameter.
    pub fn in_query(self) -> Self {
        match self {
            Self::InvalidField {
                code,
                message,
                field,
            } => Self::BadRequest {
                code,
                message,
                field: Some(field),
            },
            other => other,
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The stable machine-readable code clients match on.
    pub fn code(&self) -> Code {
        match self {
            Self::BadRequest { code, .. }
            | Self::InvalidField { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Gone { code, .. } => *code,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::UnsupportedMediaType => Code::UnsupportedMediaType,
            Self::PayloadTooLarge { .. } => Code::PayloadTooLarge,
            Self::Unauthorized(_) => Code::Unauthorized,
            Self::NotFound(_) => Code::NotFound,
            Self::InsufficientStock { .. } => Code::InsufficientStock,
            Self::SellerUnavailable { .. } => Code::SellerUnavailable,
            Self::Unavailable(_) => Code::ServiceUnavailable,
            Self::Internal(_) => Code::InternalError,
        }
    }

    /// The input at fault, if one is: a JSON path, a query parameter or a header.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::BadRequest { field, .. } | Self::Conflict { field, .. } => field.as_deref(),
            Self::InvalidField { field, .. } => Some(field),
            Self::InsufficientStock { .. } => Some("quantity"),
            Self::SellerUnavailable { .. } => Some("lines"),
            _ => None,
        }
    }
}

/// `outer: inner: innermost`, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

impl From<agora_actors::inventory::ReserveError> for Error {
    fn from(error: agora_actors::inventory::ReserveError) -> Self {
        use agora_actors::inventory::ReserveError;
        match error {
            ReserveError::InsufficientStock { available } => Self::InsufficientStock { available },
            ReserveError::UnknownSku => {
                Self::invalid_field(Code::UnknownSku, "sku", "no such SKU on the storefront")
            }
            ReserveError::Overloaded | ReserveError::Unavailable(_) => {
                Self::Unavailable(error.to_string())
            }
        }
    }
}

impl From<agora_actors::cart::CartBusy> for Error {
    fn from(error: agora_actors::cart::CartBusy) -> Self {
        use agora_actors::cart::CartBusy;
        match error {
            // Another tab's changes to the same cart are still running: a moment suffices.
            CartBusy::TooManyChanges => Self::RateLimited {
                retry_after_secs: 1,
            },
            CartBusy::TooManyCarts => Self::Unavailable(error.to_string()),
            CartBusy::Failed => Self::internal(anyhow::anyhow!(error)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match error {
            PoolError::Timeout(_) => {
                metrics::counter!("agora_db_pool_timeouts_total").increment(1);
                Self::Unavailable("no database connection is free; retry shortly".into())
            }
            // A new connection could not be made: Postgres is down, restarting or unreachable.
            PoolError::Backend(error) => {
                tracing::warn!(%error, "no new database connection");
                Self::Unavailable("the database cannot be reached; retry shortly".into())
            }
            other => Self::Internal(anyhow::Error::new(other).context("database pool")),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        if postgres_went_away(&error) {
            tracing::warn!(%error, "the database went away during a request");
            return Self::Unavailable("the database cannot be reached; retry shortly".into());
        }
        Self::Internal(anyhow::Error::new(error).context("database query"))
    }
}

/// Whether a query failed because Postgres is going or gone (its connection closed, a
/// shutdown or crash recovery, a connection fault), not because of the query: a dependency
/// outage, answered 503 like a pool that cannot connect. Whatever the transaction wrote was
/// rolled back or, for a lost COMMIT, is found by a retry with the same idempotency key.
fn postgres_went_away(error: &tokio_postgres::Error) -> bool {
    let class = |prefix: &str| {
        error
            .code()
            .is_some_and(|state| state.code().starts_with(prefix))
    };
    let broken_socket =
        std::error::Error::source(error).is_some_and(|cause| cause.is::<std::io::Error>());
    // 57P01–57P05: admin/crash shutdown, cannot connect now; class 08: connection exception.
    error.is_closed() || broken_socket || class("57P") || class("08")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_snake_case_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{text} is not snake_case"
            );
            assert!(seen.insert(text), "{text} is listed twice");
            assert_eq!(Code::parse(text), Some(*code));
        }
    }

    /// One row of the table in `docs/api.md`, as rendered from [`Code`].
    fn doc_row(code: Code) -> String {
        let statuses: Vec<String> = code.statuses().iter().map(u16::to_string).collect();
        let statuses = match statuses.is_empty() {
            true => "WebSocket".to_owned(),
            false => statuses.join(", "),
        };
        format!("| `{}` | {statuses} | {} |", code.as_str(), code.meaning())
    }

    #[test]
    fn the_api_doc_lists_exactly_the_codes_of_the_table() {
        let doc = include_str!("../docs/api.md");
        let documented: Vec<&str> = doc
            .split("<!-- error-codes")
            .nth(1)
            .and_then(|rest| rest.split("<!-- /error-codes -->").next())
            .expect("docs/api.md has the error-code table between its markers")
            .lines()
            .filter(|line| line.starts_with("| `"))
            .collect();
        let expected: Vec<String> = Code::ALL.iter().copied().map(doc_row).collect();
        assert_eq!(
            documented,
            expected,
            "docs/api.md's error codes differ from src/error.rs; the rows should read:\n{}",
            expected.join("\n")
        );
    }

    #[test]
    fn every_kind_of_error_names_a_code_with_a_status() {
        let errors = [
            Error::UnsupportedMediaType,
            Error::PayloadTooLarge { limit: 1 },
            Error::Unauthorized("token"),
            Error::NotFound("cart"),
            Error::RateLimited {
                retry_after_secs: 1,
            },
            Error::InsufficientStock { available: 0 },
            Error::Unavailable("redis".into()),
            Error::internal(anyhow::anyhow!("boom")),
        ];
        for error in errors {
            assert!(!error.code().statuses().is_empty(), "{error}");
        }
    }
}
