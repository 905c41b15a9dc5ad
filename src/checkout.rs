//! Checkout: from a shopper's cart to a paid order, exactly once per idempotency key.
//!
//! The protocol, and what happens if a process dies at each step (README, "Checkout and crash
//! points"):
//! 1. The cart's holds are topped up through the inventory shards (a hold that lapsed is
//!    taken again, or the checkout answers 409 `insufficient_stock`).
//! 2. One transaction takes the idempotency key, writes the `pending` order priced from the
//!    cart under its lock, its payment row with a fresh gateway reference, and moves the cart's
//!    holds to the order (they no longer expire). A crash before its commit leaves nothing.
//! 3. The gateway authorizes the reference. A crash now leaves a pending order: the reconciler
//!    asks the gateway about the reference and finishes the order either way (below).
//! 4. One transaction marks the order `paid`, its holds sold, removes the ordered lines from
//!    the cart and stores the response for the key; or, declined or timed out (after voiding
//!    the reference), `cancelled` with the holds back in stock. Whoever locks the pending order
//!    first (this request or the reconciler) finishes it; the other finds it finished.
//! 5. The authorization is captured. A crash before it leaves a paid order with an authorized
//!    payment, which the reconciler captures.
//!
//! Steps 2 and 4 and the capture's record go through the commit group: many shoppers'
//! transactions written as one, each with the outcome it would have alone. In a batch, each
//! order is checked and claimed by its own statements, and then all the batch's pending orders
//! (or paid states, or captures) are written by one set-based statement.

use crate::db::PreparedClient;
use std::time::Duration;

use agora_actors::inventory::ReserveStock;
use futures_util::future::LocalBoxFuture;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    carts::{self, changes::CartService, CartView},
    commit_group::{failed_together, GroupJob},
    configuration::{PaymentSettings, Pricing},
    error::{error_chain, Code, Error},
    locale::LocalePreference,
    orders::{self, Cancellation, CheckoutOutcome, IdempotencyClaim, PendingOrder, PlaceError},
    payments::{
        Authorization, AuthorizeRequest, CardNumber, GatewayRecord, PaymentError, Payments,
    },
    stock_counters::StockCounters,
};

/// Longest idempotency key accepted, in characters (Stripe's limit).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Most stale pending orders or uncaptured payments one reconciliation pass handles.
const RECONCILE_BATCH: i64 = 100;

/// What checking out needs: the carts (their pool, prices, holds and announcements), the
/// commit group that writes checkouts' orders in batches and the payment gateway. Cheap to
/// clone.
#[derive(Clone)]
pub struct CheckoutService {
    pub carts: CartService,
    pub writes: crate::commit_group::CommitGroup,
    pub payments: Payments,
}

/// What a checkout came to: fresh, or replayed from the idempotency key.
pub struct CheckoutResponse {
    pub outcome: CheckoutOutcome,
    pub replayed: bool,
}

/// What the request's key was first used with: the cart and the card.
fn fingerprint(cart_id: Uuid, card: &CardNumber) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(cart_id.as_bytes());
    hash.update(card.digits().as_bytes());
    hash.finalize().to_vec()
}

/// What an idempotency key already says about a request, if anything.
pub(crate) async fn earlier_answer(
    service: &CheckoutService,
    shopper_id: Uuid,
    key: &str,
    fingerprint: &[u8],
) -> Result<Option<CheckoutOutcome>, Error> {
    let client = service.carts.pool.get().await?;
    let Some(row) = client
        .query_opt(
            "SELECT fingerprint, response_status, response_body FROM idempotency_keys
             WHERE shopper_id = $1 AND key = $2",
            &[&shopper_id, &key],
        )
        .await?
    else {
        return Ok(None);
    };
    if row.get::<_, &[u8]>(0) != fingerprint {
        return Err(Error::InvalidField {
            code: Code::IdempotencyKeyReused,
            message: "this Idempotency-Key was used with a different request".into(),
            field: "Idempotency-Key".into(),
        });
    }
    match (row.get::<_, Option<i16>>(1), row.get(2)) {
        (status @ Some(_), body @ Some(_)) => CheckoutOutcome::from_stored(status, body).map(Some),
        _ => Err(Error::Conflict {
            code: Code::IdempotencyKeyInProgress,
            message: "a checkout with this Idempotency-Key is still in progress; retry shortly"
                .into(),
            field: Some("Idempotency-Key".into()),
        }),
    }
}

/// The answer under a key that a concurrent request took first (placing found it taken).
pub(crate) async fn replay_taken_key(
    service: &CheckoutService,
    shopper_id: Uuid,
    key: &str,
    fingerprint: &[u8],
) -> Result<CheckoutResponse, Error> {
    match earlier_answer(service, shopper_id, key, fingerprint).await? {
        Some(outcome) => Ok(CheckoutResponse {
            outcome,
            replayed: true,
        }),
        None => Err(Error::internal(anyhow::anyhow!(
            "idempotency key taken but not found"
        ))),
    }
}

/// Writes a cart's pending order under its lock, priced from the cart as it is then (step 2
/// above). Sent by `checkout` through the commit group.
struct PlaceOrder {
    shopper_id: Uuid,
    cart_id: Uuid,
    key: String,
    fingerprint: Vec<u8>,
    preference: LocalePreference,
    pricing: Pricing,
    card_last4: String,
    provider: &'static str,
}

impl PlaceOrder {
    /// Everything but writing the order's rows: the cart locked and priced, the key taken, the
    /// holds claimed.
    async fn claim(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<orders::NewOrder, PlaceError> {
        carts::lock_own(tx, self.shopper_id, self.cart_id).await?;
        let cart = carts::view(
            tx,
            self.shopper_id,
            self.cart_id,
            &self.preference,
            &self.pricing,
        )
        .await?;
        check_ready(&cart)?;
        let claim = IdempotencyClaim {
            shopper_id: self.shopper_id,
            key: &self.key,
            fingerprint: &self.fingerprint,
        };
        orders::claim_for_order(tx, &claim, &cart, &self.card_last4, self.provider).await
    }
}

impl GroupJob for PlaceOrder {
    type Output = PendingOrder;
    type Error = PlaceError;

    fn batch_key(&self) -> Uuid {
        self.cart_id
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<PendingOrder, PlaceError>> {
        Box::pin(async move {
            let order = self.claim(tx).await?;
            orders::write_pending(tx, std::slice::from_ref(&order)).await?;
            Ok(order.pending)
        })
    }

    /// Each order claimed on its own (statements pipelined), then all their rows written by one
    /// set-based statement.
    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<PendingOrder, PlaceError>>> {
        Box::pin(async move {
            let claimed: Result<Vec<_>, PlaceError> =
                futures_util::future::join_all(jobs.iter().map(|job| job.claim(tx)))
                    .await
                    .into_iter()
                    .collect();
            let Ok(orders) = claimed else {
                return failed_together(jobs.len(), None);
            };
            match orders::write_pending(tx, &orders).await {
                Ok(()) => orders.into_iter().map(|order| Ok(order.pending)).collect(),
                Err(error) => failed_together(jobs.len(), Some(&error)),
            }
        })
    }
}

/// Marks a pending order paid or cancelled (step 4 above); `None` if the reconciler finished
/// it first. Sent by `finish` through the commit group.
struct FinishOrder {
    order_id: Uuid,
    cart_id: Uuid,
    outcome: Result<Authorization, Cancellation>,
}

impl GroupJob for FinishOrder {
    type Output = Option<CheckoutOutcome>;
    type Error = Error;

    fn batch_key(&self) -> Uuid {
        self.cart_id
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<Option<CheckoutOutcome>, Error>> {
        Box::pin(async move {
            match &self.outcome {
                Ok(authorization) => orders::finish_paid(tx, self.order_id, authorization).await,
                Err(why) => orders::finish_cancelled(tx, self.order_id, *why).await,
            }
        })
    }

    /// The paid ones with one set-based statement (`orders::finish_all_paid`), the cancelled
    /// ones each on its own, all in `tx` at once.
    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<Option<CheckoutOutcome>, Error>>> {
        Box::pin(async move {
            let paid: Vec<(Uuid, &Authorization)> = jobs
                .iter()
                .filter_map(|job| Some((job.order_id, job.outcome.as_ref().ok()?)))
                .collect();
            let cancelled = jobs
                .iter()
                .filter(|job| job.outcome.is_err())
                .map(|job| job.run(tx));
            let (paid, cancelled) = futures_util::future::join(
                orders::finish_all_paid(tx, &paid),
                futures_util::future::join_all(cancelled),
            )
            .await;
            let mut paid = match paid {
                Ok(paid) => paid.into_iter().map(Ok),
                Err(error) => return failed_together(jobs.len(), Some(&error)),
            };
            let mut cancelled = cancelled.into_iter();
            let missing = || {
                Err(Error::internal(anyhow::anyhow!(
                    "a finished order went missing"
                )))
            };
            jobs.iter()
                .map(|job| {
                    let next = if job.outcome.is_ok() {
                        paid.next()
                    } else {
                        cancelled.next()
                    };
                    next.unwrap_or_else(missing)
                })
                .collect()
        })
    }
}

/// Records a paid order's capture (step 5 above). Sent by `capture` through the commit group.
struct MarkCaptured {
    order_id: Uuid,
}

impl GroupJob for MarkCaptured {
    type Output = ();
    type Error = Error;

    fn batch_key(&self) -> Uuid {
        self.order_id
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(orders::mark_captured(tx, self.order_id))
    }

    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<(), Error>>> {
        Box::pin(async move {
            let order_ids: Vec<Uuid> = jobs.iter().map(|job| job.order_id).collect();
            match orders::mark_all_captured(tx, &order_ids).await {
                Ok(()) => jobs.iter().map(|_| Ok(())).collect(),
                Err(error) => failed_together(jobs.len(), Some(&error)),
            }
        })
    }
}

/// Re-holds whatever part of the cart's lines is no longer held (holds lapsed, or were
/// released by an earlier declined payment).
async fn top_up_holds(service: &CheckoutService, cart: &CartView) -> Result<(), Error> {
    for line in &cart.lines {
        let missing = i64::from(line.quantity) - line.held_quantity;
        if missing <= 0 {
            continue;
        }
        service
            .carts
            .inventory
            .reserve(ReserveStock {
                sku: line.sku.clone(),
                quantity: u32::try_from(missing).unwrap_or(u32::MAX),
                owner: cart.id.to_string(),
                hold_for: service.carts.hold_for,
                into_line: None,
            })
            .await
            .map_err(Error::from)?;
    }
    Ok(())
}

/// Lines of sellers the store suspended leave the cart (their holds released at once) and the
/// checkout is refused naming them: nobody could ship them.
async fn refuse_unavailable_sellers(
    service: &CheckoutService,
    shopper_id: Uuid,
    cart: &CartView,
    preference: &LocalePreference,
) -> Result<(), Error> {
    let skus: Vec<String> = cart
        .lines
        .iter()
        .filter(|line| !line.seller_active)
        .map(|line| line.sku.clone())
        .collect();
    if skus.is_empty() {
        return Ok(());
    }
    for sku in &skus {
        let removed = crate::carts::changes::Target::Set(0);
        service
            .carts
            .change_line(
                shopper_id,
                cart.id,
                preference.clone(),
                sku.clone(),
                removed,
            )
            .await?;
    }
    Err(Error::SellerUnavailable { skus })
}

fn check_ready(cart: &CartView) -> Result<(), Error> {
    if cart.lines.is_empty() {
        return Err(Error::Conflict {
            code: Code::EmptyCart,
            message: "the cart has no lines to check out".into(),
            field: None,
        });
    }
    if cart.needs_shipping && cart.shipping.is_none() {
        return Err(Error::Conflict {
            code: Code::ShippingRequired,
            message: "choose a shipping country and option first (PUT /api/v1/carts/{id}/shipping)"
                .into(),
            field: Some("shipping".into()),
        });
    }
    crate::orders::check_destination(cart)
}

pub async fn checkout(
    service: &CheckoutService,
    shopper_id: Uuid,
    cart_id: Uuid,
    key: &str,
    card: CardNumber,
    preference: &LocalePreference,
) -> Result<CheckoutResponse, Error> {
    let started = std::time::Instant::now();
    let fingerprint = fingerprint(cart_id, &card);
    if let Some(outcome) = earlier_answer(service, shopper_id, key, &fingerprint).await? {
        return Ok(CheckoutResponse {
            outcome,
            replayed: true,
        });
    }

    let client = service.carts.pool.get().await?;
    let cart = carts::view(
        &*client,
        shopper_id,
        cart_id,
        preference,
        &service.carts.pricing,
    )
    .await?;
    check_ready(&cart)?;
    drop(client);
    refuse_unavailable_sellers(service, shopper_id, &cart, preference).await?;
    top_up_holds(service, &cart).await?;

    let placed = crate::db::timed(
        "checkout_place",
        service.writes.run(PlaceOrder {
            shopper_id,
            cart_id,
            key: key.to_owned(),
            fingerprint: fingerprint.clone(),
            preference: preference.clone(),
            pricing: service.carts.pricing.clone(),
            card_last4: card.last4().to_owned(),
            provider: service.payments.provider_name(),
        }),
    )
    .await;
    let pending = match placed {
        Ok(pending) => pending,
        Err(PlaceError::KeyTaken) => {
            return replay_taken_key(service, shopper_id, key, &fingerprint).await;
        }
        Err(PlaceError::Api(error)) => return Err(error),
    };

    let authorized = service
        .payments
        .authorize(AuthorizeRequest {
            reference: pending.reference,
            amount: pending.total,
            currency: pending.currency,
            card,
        })
        .await;
    let outcome = finish(service, &pending, authorized).await?;
    metrics::histogram!("agora_checkout_duration_seconds").record(started.elapsed().as_secs_f64());
    if outcome.is_paid() {
        // The ordered lines left the cart: show every tab.
        let emptied = service
            .carts
            .announce_in_turn(shopper_id, cart_id, preference.clone());
        if let Err(error) = emptied.await {
            tracing::warn!(error = %error_chain(&error), "announcing the emptied cart failed");
        }
    }
    Ok(CheckoutResponse {
        outcome,
        replayed: false,
    })
}

/// Finishes a pending order with the gateway's answer, then captures a granted authorization.
pub(crate) async fn finish(
    service: &CheckoutService,
    pending: &PendingOrder,
    authorized: Result<Authorization, PaymentError>,
) -> Result<CheckoutOutcome, Error> {
    let (order_id, reference) = (pending.id, pending.reference);
    let outcome = match &authorized {
        Ok(authorization) => Ok(authorization.clone()),
        Err(PaymentError::Declined { .. }) => Err(Cancellation::Declined),
        Err(PaymentError::Timeout) => Err(Cancellation::TimedOut),
        Err(PaymentError::Gateway(_)) => Err(Cancellation::GatewayFailed),
    };
    let cancelled = outcome.is_err();
    if let Err(error) = &authorized {
        tracing::info!(%order_id, %error, "payment not authorized");
        if !matches!(error, PaymentError::Declined { .. }) {
            // The gateway may have authorized after all: void the reference before releasing
            // the stock. If even that fails, the order stays pending for the reconciler.
            if let Err(void) = service.payments.void(reference).await {
                tracing::warn!(%order_id, error = %void, "voiding an unanswered payment failed; the reconciler will");
                return Ok(CheckoutOutcome::NotCharged {
                    code: Code::PaymentTimeout,
                    message: "the payment gateway did not answer; the order is being reconciled, retry with the same Idempotency-Key".into(),
                });
            }
        }
    }
    let finished = crate::db::timed(
        if cancelled {
            "checkout_cancel"
        } else {
            "checkout_finish"
        },
        service.writes.run(FinishOrder {
            order_id,
            cart_id: pending.cart_id,
            outcome,
        }),
    )
    .await?;
    if let Some(response) = &finished {
        orders::count_finished(response);
    }
    let client = service.carts.pool.get().await?;
    if finished.is_some() && cancelled {
        service
            .carts
            .counters
            .stock_returned(&orders::skus(&*client, order_id).await?)
            .await;
    }
    let paid_now = finished.is_some() && !cancelled;
    let finished_now = finished.is_some();
    let response = match finished {
        Some(response) => response,
        // The reconciler finished it first; its answer is the key's answer.
        None => stored_for(&*client, order_id).await?,
    };
    if paid_now {
        crate::notices::announce_order(&service.carts.hot, &*client, order_id).await;
    }
    if finished_now {
        // Paid or cancelled: the shopper's sockets following the order are told.
        crate::notices::announce_order_status(&service.carts.hot, &*client, order_id).await;
    }
    drop(client);
    // Only who paid the order captures it (a reconciler that finished it first captures its own).
    if let (true, Ok(authorization)) = (paid_now, authorized) {
        capture(service, order_id, &authorization).await;
    }
    Ok(response)
}

async fn stored_for(
    client: &impl crate::db::PreparedClient,
    order_id: Uuid,
) -> Result<CheckoutOutcome, Error> {
    let row = client
        .query_one(
            "SELECT response_status, response_body FROM idempotency_keys WHERE order_id = $1",
            &[&order_id],
        )
        .await?;
    CheckoutOutcome::from_stored(row.get(0), row.get(1))
}

/// Captures a paid order's authorization; a failure is left to the reconciler.
async fn capture(
    service: &CheckoutService,
    order_id: Uuid,
    authorization: &crate::payments::Authorization,
) {
    match service.payments.capture(authorization).await {
        Ok(()) => {
            if let Err(error) = service.writes.run(MarkCaptured { order_id }).await {
                tracing::warn!(%order_id, error = %error_chain(&error), "recording a capture failed; the reconciler will");
            }
        }
        Err(error) => {
            tracing::warn!(%order_id, %error, "capture failed; the reconciler will retry");
        }
    }
}

/// Finishes what crashed or failed checkouts left behind: pending orders older than
/// `stale_after` (from the gateway's record of their reference) and paid orders whose payment
/// is authorized but not captured. Any process may run it at any time.
pub async fn reconcile(
    pool: &deadpool_postgres::Pool,
    payments: &Payments,
    counters: &StockCounters,
    stale_after: Duration,
) -> Result<usize, Error> {
    let stale = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
    let client = pool.get().await?;
    let pending = client
        .query(
            "SELECT o.id, p.reference FROM orders o JOIN payments p ON p.order_id = o.id
             WHERE o.status = 'pending' AND o.created_at < now() - $1::int8 * interval '1 millisecond'
             ORDER BY o.created_at LIMIT $2",
            &[&stale, &RECONCILE_BATCH],
        )
        .await?;
    let uncaptured = client
        .query(
            "SELECT order_id, authorization_id FROM payments
             WHERE status = 'authorized' AND updated_at < now() - $1::int8 * interval '1 millisecond'
             ORDER BY updated_at LIMIT $2",
            &[&stale, &RECONCILE_BATCH],
        )
        .await?;
    drop(client);
    let mut handled = 0;
    for row in pending {
        let (order_id, reference): (Uuid, Uuid) = (row.get(0), row.get(1));
        let authorized = match payments.lookup(reference).await {
            Ok(
                GatewayRecord::Authorized(authorization) | GatewayRecord::Captured(authorization),
            ) => Ok(authorization),
            Ok(GatewayRecord::Unknown | GatewayRecord::Declined | GatewayRecord::Voided) => {
                Err(PaymentError::Declined {
                    reason: "not authorized at the gateway".into(),
                })
            }
            Err(error) => {
                tracing::warn!(%order_id, %error, "gateway lookup failed; next pass retries");
                continue;
            }
        };
        let outcome = match authorized {
            Ok(authorization) => {
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                let done = orders::finish_paid(&tx, order_id, &authorization).await?;
                tx.commit().await?;
                drop(client);
                if let Some(response) = &done {
                    orders::count_finished(response);
                    announce_status(pool, counters, order_id).await;
                    if payments.capture(&authorization).await.is_ok() {
                        orders::mark_captured(&*pool.get().await?, order_id).await?;
                    }
                    "paid"
                } else {
                    "already_finished"
                }
            }
            Err(_) => {
                // Tombstone the reference so a late authorization is refused, then release.
                if let Err(error) = payments.void(reference).await {
                    tracing::warn!(%order_id, %error, "voiding failed; next pass retries");
                    continue;
                }
                let mut client = pool.get().await?;
                let tx = client.transaction().await?;
                let done = orders::finish_cancelled(&tx, order_id, Cancellation::Abandoned).await?;
                tx.commit().await?;
                if let Some(response) = &done {
                    orders::count_finished(response);
                    counters
                        .stock_returned(&orders::skus(&*client, order_id).await?)
                        .await;
                    drop(client);
                    announce_status(pool, counters, order_id).await;
                    "cancelled"
                } else {
                    "already_finished"
                }
            }
        };
        tracing::info!(%order_id, outcome, "reconciled a pending order");
        metrics::counter!("agora_checkout_reconciled_total", "outcome" => outcome).increment(1);
        handled += 1;
    }
    for row in uncaptured {
        let order_id: Uuid = row.get(0);
        let Some(authorization) = row.get::<_, Option<String>>(1) else {
            continue;
        };
        let authorization = crate::payments::Authorization { id: authorization };
        if payments.capture(&authorization).await.is_ok() {
            orders::mark_captured(&*pool.get().await?, order_id).await?;
            metrics::counter!("agora_checkout_reconciled_total", "outcome" => "captured")
                .increment(1);
            handled += 1;
        }
    }
    Ok(handled)
}

/// Tells the shopper's sockets the status the reconciler gave an order (through the counters'
/// announcer: the reconciler has no other handle on Redis).
async fn announce_status(pool: &deadpool_postgres::Pool, counters: &StockCounters, order_id: Uuid) {
    let Ok(client) = pool.get().await else {
        return;
    };
    if let Some(notice) = crate::notices::order_status(&*client, order_id).await {
        counters.announce_levels(vec![notice]).await;
    }
}

/// Reconciles at start and then every `interval` until the process stops.
pub fn spawn_reconciler(
    pool: deadpool_postgres::Pool,
    payments: Payments,
    counters: StockCounters,
    settings: &PaymentSettings,
) {
    let interval = Duration::from_millis(settings.reconcile_interval_ms);
    let stale_after = Duration::from_millis(settings.reconcile_after_ms);
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            if let Err(error) = reconcile(&pool, &payments, &counters, stale_after).await {
                tracing::warn!(error = %error_chain(&error), "checkout reconciliation failed");
            }
        }
    });
}
