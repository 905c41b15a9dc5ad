//! The sandbox gateway: behaves like a remote card gateway, for development, tests and load
//! tests. It keeps its own books (`sandbox_gateway_payments`, written with its own statements,
//! never inside Agora's transactions), so like a remote gateway it remembers what it authorized
//! when the Agora process that asked has crashed.
//!
//! Test cards (Stripe's): `4242424242424242` is authorized; `4000000000000002` is declined;
//! `4000000000000119` is authorized but the answer never comes back (the caller times out and
//! must void). Any other valid number is declined as unknown to the sandbox. Every call takes
//! the configured latency first.

use crate::db::PreparedClient;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{Authorization, AuthorizeRequest, GatewayRecord, PaymentError, PaymentProvider};

pub const CARD_APPROVED: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_TIMEOUT: &str = "4000000000000119";

/// How long the sandbox "hangs" on the timeout card: far beyond any sane caller timeout.
const LOST_ANSWER_DELAY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct SandboxGateway {
    pool: deadpool_postgres::Pool,
    /// Added to every call, like a round trip to a remote gateway.
    latency: Duration,
}

impl SandboxGateway {
    pub fn new(pool: deadpool_postgres::Pool, latency: Duration) -> Self {
        Self { pool, latency }
    }
}

fn gateway_error(error: impl std::fmt::Display) -> PaymentError {
    PaymentError::Gateway(error.to_string())
}

impl PaymentProvider for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> BoxFuture<'static, Result<Authorization, PaymentError>> {
        let (pool, latency) = (self.pool.clone(), self.latency);
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let card = request.card.digits();
            let status = if card == CARD_APPROVED || card == CARD_TIMEOUT {
                "authorized"
            } else {
                "declined"
            };
            let client = pool.get().await.map_err(gateway_error)?;
            // Idempotent per reference: a retry, or a reference voided before its
            // authorization arrived, finds the row that is already there.
            let row = client
                .query_one(
                    "WITH new AS (
                         INSERT INTO sandbox_gateway_payments
                             (reference, authorization_id, amount, currency, card_last4, status)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (reference) DO NOTHING
                         RETURNING authorization_id, status)
                     SELECT authorization_id, status FROM new
                     UNION ALL
                     SELECT authorization_id, status FROM sandbox_gateway_payments
                      WHERE reference = $1 AND NOT EXISTS (SELECT 1 FROM new)",
                    &[
                        &request.reference,
                        &format!("sbx_{}", Uuid::new_v4().simple()),
                        &request.amount,
                        &request.currency.code(),
                        &request.card.last4(),
                        &status,
                    ],
                )
                .await
                .map_err(gateway_error)?;
            drop(client);
            let (id, status): (String, String) = (row.get(0), row.get(1));
            match status.as_str() {
                "authorized" | "captured" => {
                    if card == CARD_TIMEOUT {
                        tokio::time::sleep(LOST_ANSWER_DELAY).await;
                    }
                    Ok(Authorization { id })
                }
                "voided" => Err(PaymentError::Declined {
                    reason: "the payment was cancelled".into(),
                }),
                _ if card == CARD_DECLINED => Err(PaymentError::Declined {
                    reason: "insufficient funds".into(),
                }),
                _ => Err(PaymentError::Declined {
                    reason: "unknown card".into(),
                }),
            }
        })
    }

    fn capture(
        &self,
        authorization: &Authorization,
    ) -> BoxFuture<'static, Result<(), PaymentError>> {
        let (pool, latency, id) = (self.pool.clone(), self.latency, authorization.id.clone());
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let client = pool.get().await.map_err(gateway_error)?;
            let captured = client
                .execute(
                    "UPDATE sandbox_gateway_payments
                        SET status = 'captured', captured = amount, updated_at = now()
                      WHERE authorization_id = $1 AND status IN ('authorized', 'captured')",
                    &[&id],
                )
                .await
                .map_err(gateway_error)?;
            if captured == 0 {
                return Err(PaymentError::Gateway(format!(
                    "authorization {id} cannot be captured"
                )));
            }
            Ok(())
        })
    }

    fn void(&self, reference: Uuid) -> BoxFuture<'static, Result<(), PaymentError>> {
        let (pool, latency) = (self.pool.clone(), self.latency);
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let client = pool.get().await.map_err(gateway_error)?;
            // A tombstone for a reference not seen yet refuses its late authorization.
            let status: String = client
                .query_one(
                    "INSERT INTO sandbox_gateway_payments
                         (reference, authorization_id, amount, currency, card_last4, status)
                     VALUES ($1, $2, 0, 'XXX', '', 'voided')
                     ON CONFLICT (reference) DO UPDATE SET
                         status = CASE WHEN sandbox_gateway_payments.status = 'authorized'
                                       THEN 'voided' ELSE sandbox_gateway_payments.status END,
                         updated_at = now()
                     RETURNING status",
                    &[&reference, &format!("sbx_{}", Uuid::new_v4().simple())],
                )
                .await
                .map_err(gateway_error)?
                .get(0);
            if status == "captured" {
                return Err(PaymentError::Gateway(format!(
                    "payment {reference} is captured; refund it instead"
                )));
            }
            Ok(())
        })
    }

    fn refund(
        &self,
        authorization: &Authorization,
        reference: Uuid,
        amount: Decimal,
    ) -> BoxFuture<'static, Result<(), PaymentError>> {
        let (pool, latency, id) = (self.pool.clone(), self.latency, authorization.id.clone());
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let client = pool.get().await.map_err(gateway_error)?;
            // One statement, so a reference is paid back once even when two calls race: the
            // second finds the first's row and answers as it did.
            let row = client
                .query_one(
                    "WITH earlier AS (
                         SELECT amount FROM sandbox_gateway_refunds WHERE reference = $3),
                     paid AS (
                         UPDATE sandbox_gateway_payments
                            SET refunded = refunded + $2, updated_at = now()
                          WHERE authorization_id = $1 AND status = 'captured'
                            AND refunded + $2 <= captured
                            AND NOT EXISTS (SELECT 1 FROM earlier)
                          RETURNING 1),
                     booked AS (
                         INSERT INTO sandbox_gateway_refunds (reference, authorization_id, amount)
                         SELECT $3, $1, $2 FROM paid
                         ON CONFLICT (reference) DO NOTHING RETURNING 1)
                     SELECT (SELECT amount FROM earlier), EXISTS (SELECT 1 FROM booked)",
                    &[&id, &amount, &reference],
                )
                .await
                .map_err(gateway_error)?;
            let (earlier, booked): (Option<Decimal>, bool) = (row.get(0), row.get(1));
            match earlier {
                Some(earlier) if earlier == amount => Ok(()),
                Some(earlier) => Err(PaymentError::Gateway(format!(
                    "refund {reference} was for {earlier}, not {amount}"
                ))),
                None if booked => Ok(()),
                None => Err(PaymentError::Gateway(format!(
                    "cannot refund {amount} of authorization {id}"
                ))),
            }
        })
    }

    fn lookup(&self, reference: Uuid) -> BoxFuture<'static, Result<GatewayRecord, PaymentError>> {
        let (pool, latency) = (self.pool.clone(), self.latency);
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let client = pool.get().await.map_err(gateway_error)?;
            let row = client
                .query_opt(
                    "SELECT authorization_id, status FROM sandbox_gateway_payments
                      WHERE reference = $1",
                    &[&reference],
                )
                .await
                .map_err(gateway_error)?;
            Ok(match row {
                None => GatewayRecord::Unknown,
                Some(row) => {
                    let authorization = Authorization { id: row.get(0) };
                    match row.get::<_, &str>(1) {
                        "authorized" => GatewayRecord::Authorized(authorization),
                        "captured" => GatewayRecord::Captured(authorization),
                        "voided" => GatewayRecord::Voided,
                        _ => GatewayRecord::Declined,
                    }
                }
            })
        })
    }
}
