//! Payments: the [`PaymentProvider`] boundary every gateway implements, the card number as
//! accepted at the edge, and [`Payments`], which bounds every gateway call in time.
//!
//! Promises: a payment is known to the gateway by a reference Agora chooses before it calls, so
//! a call whose answer is lost can be looked up or voided later (the checkout's crash
//! reconciliation depends on it); `authorize`, `capture` and `void` are idempotent per
//! reference or authorization; a full card number is never stored or logged, only its last
//! four digits.

pub mod sandbox;

use std::{sync::Arc, time::Duration};

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    error::{Code, Error},
    money::Currency,
};

/// Shortest and longest card numbers (ISO/IEC 7812).
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 12..=19;

/// A card number that passed the Luhn check; `Debug` shows only its last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Accepts digits with optional spaces or dashes between groups.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Error> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let invalid = || {
            Error::invalid_field(
                Code::InvalidCardNumber,
                field,
                "must be a card number of 12 to 19 digits",
            )
        };
        if !CARD_DIGITS.contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        if !luhn_valid(&digits) {
            return Err(Error::invalid_field(
                Code::InvalidCardNumber,
                field,
                "is not a valid card number (check digit)",
            ));
        }
        Ok(Self(digits))
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The whole number, for the gateway only.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What the checkout asks a gateway to authorize.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// Chosen by Agora and stored before the call: how the payment is found again.
    pub reference: Uuid,
    pub amount: Decimal,
    pub currency: Currency,
    pub card: CardNumber,
}

/// An authorization the gateway granted: the funds are reserved until captured or voided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub id: String,
}

/// What a gateway knows about a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayRecord {
    /// Never heard of it (the authorization request never arrived).
    Unknown,
    Authorized(Authorization),
    Captured(Authorization),
    Declined,
    Voided,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the card was declined: {reason}")]
    Declined { reason: String },
    #[error("the payment gateway did not answer in time")]
    Timeout,
    #[error("the payment gateway failed: {0}")]
    Gateway(String),
}

/// A payment gateway. Adding a real one (Stripe, Adyen, ...) is one implementation of this.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Stored with each payment, so the reconciler asks the right gateway.
    fn name(&self) -> &'static str;
    /// Reserves the amount on the card; idempotent per `reference`.
    fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> BoxFuture<'static, Result<Authorization, PaymentError>>;
    /// Takes the authorized funds; capturing twice is not charging twice.
    fn capture(
        &self,
        authorization: &Authorization,
    ) -> BoxFuture<'static, Result<(), PaymentError>>;
    /// Cancels whatever was authorized under `reference` (also one that has not arrived yet:
    /// a late authorization for a voided reference is refused).
    fn void(&self, reference: Uuid) -> BoxFuture<'static, Result<(), PaymentError>>;
    /// Returns `amount` of captured funds to the card; idempotent per `reference` (a refund
    /// Agora numbered before calling, so a retry after a lost answer pays back once).
    fn refund(
        &self,
        authorization: &Authorization,
        reference: Uuid,
        amount: Decimal,
    ) -> BoxFuture<'static, Result<(), PaymentError>>;
    /// What the gateway recorded for `reference`.
    fn lookup(&self, reference: Uuid) -> BoxFuture<'static, Result<GatewayRecord, PaymentError>>;
}

/// The configured gateway, with every call bounded by `timeout`.
#[derive(Clone)]
pub struct Payments {
    provider: Arc<dyn PaymentProvider>,
    /// A call not answered within it counts as [`PaymentError::Timeout`]; its outcome at the
    /// gateway is then unknown, which is why references are stored before calling.
    timeout: Duration,
}

impl Payments {
    pub fn new(provider: Arc<dyn PaymentProvider>, timeout: Duration) -> Self {
        Self { provider, timeout }
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: BoxFuture<'static, Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(PaymentError::Timeout));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(PaymentError::Declined { .. }) => "declined",
            Err(PaymentError::Timeout) => "timeout",
            Err(PaymentError::Gateway(_)) => "error",
        };
        metrics::histogram!("agora_payment_call_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("agora_payment_calls_total", "operation" => operation, "outcome" => outcome)
            .increment(1);
        result
    }

    pub async fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> Result<Authorization, PaymentError> {
        self.bounded("authorize", self.provider.authorize(request))
            .await
    }

    pub async fn capture(&self, authorization: &Authorization) -> Result<(), PaymentError> {
        self.bounded("capture", self.provider.capture(authorization))
            .await
    }

    pub async fn void(&self, reference: Uuid) -> Result<(), PaymentError> {
        self.bounded("void", self.provider.void(reference)).await
    }

    pub async fn refund(
        &self,
        authorization: &Authorization,
        reference: Uuid,
        amount: Decimal,
    ) -> Result<(), PaymentError> {
        self.bounded(
            "refund",
            self.provider.refund(authorization, reference, amount),
        )
        .await
    }

    pub async fn lookup(&self, reference: Uuid) -> Result<GatewayRecord, PaymentError> {
        self.bounded("lookup", self.provider.lookup(reference))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_checked_with_luhn_and_shown_only_by_their_last_four_digits() {
        let card = CardNumber::parse("card", "4242 4242 4242 4242").expect("valid");
        assert_eq!(card.last4(), "4242");
        assert_eq!(format!("{card:?}"), "CardNumber(****4242)");
        for valid in [
            "4000000000000002",
            "4000000000000119",
            "5555-5555-5555-4444",
        ] {
            CardNumber::parse("card", valid).expect(valid);
        }
        for invalid in ["4242424242424241", "42424242", "4242x42424242424", ""] {
            assert_eq!(
                CardNumber::parse("card", invalid)
                    .expect_err(invalid)
                    .code(),
                "invalid_card_number"
            );
        }
    }
}
