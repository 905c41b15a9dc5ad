//! What the pages that take payment share (the cart's checkout and a flash sale's purchase):
//! the form's idempotency key and card, the sandbox's test cards, and what a paying form's
//! answer becomes (the order's page, or a refusal to show beside the form).

use super::i18n::Lang;
use crate::{
    checkout::{CheckoutResponse, MAX_IDEMPOTENCY_KEY_CHARS},
    error::{Code, Error},
    orders::CheckoutOutcome,
    payments::CardNumber,
};

/// The sandbox gateway's cards, named on a payment form when it is the gateway.
pub fn test_cards(lang: Lang) -> [(&'static str, &'static str); 3] {
    [
        (
            "4242 4242 4242 4242",
            lang.tr("approved", "genehmigt", "acceptée", "承認"),
        ),
        (
            "4000 0000 0000 0002",
            lang.tr("declined", "abgelehnt", "refusée", "拒否"),
        ),
        (
            "4000 0000 0000 0119",
            lang.tr(
                "never answered",
                "keine Antwort",
                "sans réponse",
                "応答なし",
            ),
        ),
    ]
}

/// The idempotency key a rendered payment form carries.
pub fn idempotency_key(raw: &str) -> Result<&str, Error> {
    let key = raw.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(Error::invalid_field(
            Code::InvalidIdempotencyKey,
            "idempotency_key",
            "reload the page and try again",
        ));
    }
    Ok(key)
}

/// The card number as typed (spaces allowed), checked.
pub fn card(raw: &str) -> Result<CardNumber, Error> {
    let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    CardNumber::parse("card_number", &digits)
}

/// What a paying form's answer becomes.
pub enum Answer {
    /// The path of the paid order's page.
    Paid(String),
    /// Not charged, or refused: said beside the form.
    Refused(Error),
}

/// A checkout's or purchase's answer as a page shows it: paid, or a refusal the page can show
/// (`showable`); other errors are the caller's to answer.
pub fn answer(
    result: Result<CheckoutResponse, Error>,
    showable: impl Fn(&Error) -> bool,
) -> Result<Answer, Error> {
    match result {
        Ok(answer) => Ok(match answer.outcome {
            CheckoutOutcome::Paid { .. } => {
                let order = answer.outcome.order_id().unwrap_or_default();
                Answer::Paid(format!("/orders/{order}"))
            }
            CheckoutOutcome::NotCharged { code, message } => Answer::Refused(Error::Conflict {
                code,
                message,
                field: None,
            }),
        }),
        Err(error) if showable(&error) => Ok(Answer::Refused(error)),
        Err(error) => Err(error),
    }
}
