//! Mail about orders: the confirmation when orders are paid (written for a whole
//! group-committed batch by one statement) and the shipment, cancellation and refund notices
//! the after-sale code writes through [`enqueue_order_mail`].
//!
//! Who gets it: the order's contact (`orders.contact_email`), else the shopper's account
//! email; with neither (a guest who gave none) there is no mail. In which language: the
//! shopper's locale where the mail speaks it, else the store's default (`mail_defaults`).
//! Amounts are in the order's currency.

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{db::PreparedClient, error::Error, money::Currency};

use super::{
    enqueue, enqueue_all,
    templates::{self, Confirmation, ConfirmedLine, Language, OrderRef},
    Mail, MailKind,
};

/// What happened to an order that its shopper is told by mail.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderMail {
    /// The order was paid (sent from checkout and flash-sale purchase).
    Confirmed,
    /// A seller shipped some units: carrier, tracking number and (sku, quantity) shipped.
    Shipped {
        carrier: String,
        tracking_number: String,
        lines: Vec<(String, u32)>,
    },
    /// The order, or a seller's part or lines of it, was cancelled; `refunded` went back.
    Cancelled { refunded: Decimal },
    /// Money went back to the shopper (a partial or whole refund, or a return received).
    Refunded { amount: Decimal },
}

/// An order's recipient, language and figures, as one row of [`ORDER_MAIL_SQL`].
struct Addressed {
    recipient: String,
    language: Language,
    order: OrderRef,
}

/// Per order: the recipient, the language's locale, the shopper's name, the currency, the base
/// URL, then the figures a confirmation lists (totals, shipping, lines as JSON). Orders without
/// a recipient are left out.
const ORDER_MAIL_SQL: &str = "
    SELECT o.id, coalesce(o.contact_email, s.email) AS recipient,
           s.locale, coalesce(d.locale, 'en') AS store_locale, s.name, o.currency,
           coalesce(d.public_url, '') AS public_url,
           o.tax, o.tax_included, o.total, (o.shipping ->> 'amount')::numeric AS shipping,
           (SELECT coalesce(json_agg(json_build_array(l.title, l.sku, l.quantity,
                                                      l.line_total::text) ORDER BY l.line_no),
                            '[]'::json)
            FROM order_lines l WHERE l.order_id = o.id) AS lines
    FROM orders o
    JOIN shoppers s ON s.id = o.shopper_id
    LEFT JOIN mail_defaults d ON true
    WHERE o.id = ANY($1) AND coalesce(o.contact_email, s.email) IS NOT NULL";

fn addressed(row: &tokio_postgres::Row) -> Result<Addressed, Error> {
    let id: Uuid = row.get("id");
    let code: String = row.get("currency");
    let currency = Currency::from_code(code.trim())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("order {id} has currency {code}")))?;
    let locale: Option<String> = row.get("locale");
    let store_locale: String = row.get("store_locale");
    let public_url: String = row.get("public_url");
    Ok(Addressed {
        recipient: row.get("recipient"),
        language: Language::choose(locale.as_deref(), &store_locale),
        order: OrderRef {
            id,
            name: row.get("name"),
            currency,
            link: match public_url.is_empty() {
                true => String::new(),
                false => format!("{public_url}/orders/{id}"),
            },
        },
    })
}

fn confirmation(row: &tokio_postgres::Row, addressed: Addressed) -> Result<Mail, Error> {
    let lines: serde_json::Value = row.get("lines");
    let lines = lines
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|line| ConfirmedLine {
                    title: line[0].as_str().unwrap_or_default().to_owned(),
                    sku: line[1].as_str().unwrap_or_default().to_owned(),
                    quantity: line[2]
                        .as_i64()
                        .and_then(|q| i32::try_from(q).ok())
                        .unwrap_or(0),
                    total: line[3]
                        .as_str()
                        .and_then(|total| total.parse().ok())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let confirmation = Confirmation {
        lines,
        shipping: row.get("shipping"),
        tax: row.get("tax"),
        tax_included: row.get("tax_included"),
        total: row.get("total"),
        order: addressed.order,
    };
    let (subject, body) = templates::order_confirmed(addressed.language, &confirmation);
    Ok(Mail {
        recipient: addressed.recipient,
        language: addressed.language,
        kind: MailKind::OrderConfirmed,
        subject,
        body,
    })
}

/// Writes the confirmation of every order of `order_ids` (just paid, in the caller's
/// transaction) into the outbox: one statement reads them all, one writes all their mail.
pub async fn confirm_paid(tx: &impl PreparedClient, order_ids: &[Uuid]) -> Result<(), Error> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let rows = tx
        .query_planned_per_call(ORDER_MAIL_SQL, &[&order_ids])
        .await?;
    let mails = rows
        .iter()
        .map(|row| confirmation(row, addressed(row)?))
        .collect::<Result<Vec<Mail>, Error>>()?;
    enqueue_all(tx, &mails).await
}

/// Writes the mail for `order_id` into the outbox in the caller's transaction, to the
/// order's contact (`orders.contact_email`, else the shopper's account email; none: no mail,
/// Ok) in the shopper's locale (shoppers.locale, else the store default), with the order's
/// currency for amounts.
pub async fn enqueue_order_mail(
    tx: &impl PreparedClient,
    order_id: uuid::Uuid,
    mail: &OrderMail,
) -> Result<(), Error> {
    let Some(row) = tx.query_opt(ORDER_MAIL_SQL, &[&vec![order_id]]).await? else {
        return Ok(());
    };
    let to = addressed(&row)?;
    let (kind, (subject, body)) = match mail {
        OrderMail::Confirmed => {
            let mail = confirmation(&row, to)?;
            return enqueue(tx, &mail).await;
        }
        OrderMail::Shipped {
            carrier,
            tracking_number,
            lines,
        } => {
            let titles = titles(&row);
            let lines: Vec<(String, String, u32)> = lines
                .iter()
                .map(|(sku, quantity)| {
                    let title = titles
                        .iter()
                        .find(|(known, _)| known == sku)
                        .map(|(_, title)| title.clone())
                        .unwrap_or_default();
                    (sku.clone(), title, *quantity)
                })
                .collect();
            (
                MailKind::OrderShipped,
                templates::order_shipped(to.language, &to.order, carrier, tracking_number, &lines),
            )
        }
        OrderMail::Cancelled { refunded } => (
            MailKind::OrderCancelled,
            templates::order_cancelled(to.language, &to.order, *refunded),
        ),
        OrderMail::Refunded { amount } => (
            MailKind::OrderRefunded,
            templates::order_refunded(to.language, &to.order, *amount),
        ),
    };
    enqueue(
        tx,
        &Mail {
            recipient: to.recipient,
            language: to.language,
            kind,
            subject,
            body,
        },
    )
    .await
}

/// The (sku, title) of an order's lines, from its row's `lines`.
fn titles(row: &tokio_postgres::Row) -> Vec<(String, String)> {
    let lines: serde_json::Value = row.get("lines");
    lines
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .map(|line| {
                    (
                        line[1].as_str().unwrap_or_default().to_owned(),
                        line[0].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
