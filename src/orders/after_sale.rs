//! [`AfterSale`]: every change of an order after checkout — shipments, cancellations, returns,
//! refunds — each in a transaction of its own on the locked order, then announced.
//!
//! Promises: a change, its order events, its refund row and its mail to the shopper commit
//! together or not at all (the gateway called last, before commit); once committed, units that
//! came back are on the stock counters, the seller's feed reads the new events and the
//! shopper's sockets get the order's status.

use std::time::Duration;

use uuid::Uuid;

use crate::{
    db::PreparedClient,
    error::Error,
    hot_state::HotState,
    mail::{enqueue_order_mail, OrderMail},
    payments::Payments,
};

use super::{
    cancellations::{self, PartRefund},
    fulfillments::{self, Shipment, ShipmentRequest},
    refunds::Refund,
    returns::{self, Return, ReturnLineRequest},
    units::{self, Actor, LineRequest, OrderForChange},
};

/// Changes orders after the sale; shared by every worker.
#[derive(Clone)]
pub struct AfterSale {
    pub pool: deadpool_postgres::Pool,
    pub hot: HotState,
    pub counters: crate::stock_counters::StockCounters,
    pub payments: Payments,
    /// How long after a line's latest shipment its units may be returned.
    pub return_window: Duration,
}

/// What a change did, for [`AfterSale::finish`] to announce once it committed.
struct Done {
    order_id: Uuid,
    /// Sellers whose feed has new events.
    sellers: Vec<Uuid>,
    /// Whether units went back on sale (their SKUs' counters follow).
    restocked: bool,
}

impl AfterSale {
    /// Runs `change` on the order locked for `actor` in one transaction, commits, announces.
    async fn change<T>(
        &self,
        order_id: Uuid,
        actor: Actor,
        change: impl for<'t> FnOnce(
            &'t deadpool_postgres::Transaction<'t>,
            &'t mut OrderForChange,
        ) -> futures_util::future::BoxFuture<'t, Result<T, Error>>,
    ) -> Result<T, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut order = units::lock_order(&tx, order_id, actor).await?;
        let before: Vec<(i32, i32)> = order
            .lines
            .iter()
            .map(|line| (line.cancelled, line.returned))
            .collect();
        let answer = change(&tx, &mut order).await?;
        tx.commit().await?;
        let restocked = order
            .lines
            .iter()
            .zip(&before)
            .any(|(line, (cancelled, returned))| {
                line.cancelled != *cancelled || line.returned != *returned
            });
        let sellers = match actor {
            Actor::Seller(seller) => vec![seller],
            Actor::Shopper(_) => order.parts.iter().map(|part| part.seller_id).collect(),
        };
        self.finish(
            &*client,
            Done {
                order_id,
                sellers,
                restocked,
            },
        )
        .await?;
        Ok(answer)
    }

    async fn finish(&self, client: &impl PreparedClient, done: Done) -> Result<(), Error> {
        if done.restocked {
            self.counters
                .stock_returned(&super::skus(client, done.order_id).await?)
                .await;
        }
        for seller_id in done.sellers {
            let notice = crate::notices::Notice::SellerEvents { seller_id };
            crate::notices::publish(&self.hot, &notice).await;
        }
        crate::notices::announce_order_status(&self.hot, client, done.order_id).await;
        Ok(())
    }

    /// The seller ships units of its part (all it has left to ship when no lines are named).
    pub async fn ship(
        &self,
        order_id: Uuid,
        seller_id: Uuid,
        request: ShipmentRequest,
    ) -> Result<Shipment, Error> {
        self.change(order_id, Actor::Seller(seller_id), move |tx, order| {
            Box::pin(async move {
                let shipment = fulfillments::ship(tx, order, seller_id, &request).await?;
                let data = serde_json::json!({
                    "fulfillment_id": shipment.id,
                    "carrier": shipment.carrier,
                    "tracking_number": shipment.tracking_number,
                    "lines": shipment.lines,
                });
                let kind = match order.part_status(seller_id) {
                    super::OrderStatus::PartiallyFulfilled => "partially_fulfilled",
                    _ => "fulfilled",
                };
                order.save(tx, kind, Some(seller_id), &data).await?;
                let mail = OrderMail::Shipped {
                    carrier: shipment.carrier.clone().unwrap_or_default(),
                    tracking_number: shipment.tracking_number.clone().unwrap_or_default(),
                    lines: shipment
                        .lines
                        .iter()
                        .map(|line| (line.sku.clone(), line.quantity))
                        .collect(),
                };
                enqueue_order_mail(tx, order.id, &mail).await?;
                Ok(shipment)
            })
        })
        .await
    }

    /// The shopper cancels the whole order (nothing of it shipped); `None`: it already was.
    pub async fn cancel_order(
        &self,
        order_id: Uuid,
        shopper_id: Uuid,
    ) -> Result<Option<Refund>, Error> {
        let payments = self.payments.clone();
        self.change(order_id, Actor::Shopper(shopper_id), move |tx, order| {
            Box::pin(async move {
                let refund = cancellations::cancel_order(tx, order, &payments).await?;
                if let Some(refund) = &refund {
                    let refunded = refund.amount.amount;
                    enqueue_order_mail(tx, order.id, &OrderMail::Cancelled { refunded }).await?;
                }
                Ok(refund)
            })
        })
        .await
    }

    /// The seller cancels lines of its part it cannot supply (all unshipped when `None`).
    pub async fn cancel_lines(
        &self,
        order_id: Uuid,
        seller_id: Uuid,
        lines: Option<Vec<LineRequest>>,
    ) -> Result<Refund, Error> {
        let payments = self.payments.clone();
        self.change(order_id, Actor::Seller(seller_id), move |tx, order| {
            Box::pin(async move {
                let refund =
                    cancellations::cancel_lines(tx, order, seller_id, lines.as_deref(), &payments)
                        .await?;
                let refunded = refund.amount.amount;
                enqueue_order_mail(tx, order.id, &OrderMail::Cancelled { refunded }).await?;
                Ok(refund)
            })
        })
        .await
    }

    /// The seller refunds shipped units, an amount, or everything left of its part; answers
    /// the refund and whether it is the one an earlier request with its key made.
    pub async fn refund_part(
        &self,
        order_id: Uuid,
        seller_id: Uuid,
        what: PartRefund,
        idempotency: Option<(String, serde_json::Value)>,
    ) -> Result<(Refund, bool), Error> {
        let payments = self.payments.clone();
        self.change(order_id, Actor::Seller(seller_id), move |tx, order| {
            Box::pin(async move {
                let (refund, replayed) =
                    cancellations::refund_part(tx, order, seller_id, &what, idempotency, &payments)
                        .await?;
                // A replayed key changed nothing and is not told again.
                if !replayed {
                    let amount = refund.amount.amount;
                    enqueue_order_mail(tx, order.id, &OrderMail::Refunded { amount }).await?;
                }
                Ok((refund, replayed))
            })
        })
        .await
    }

    /// The shopper asks to return shipped units; answers the returns made (one per seller).
    pub async fn request_return(
        &self,
        order_id: Uuid,
        shopper_id: Uuid,
        lines: Vec<ReturnLineRequest>,
    ) -> Result<Vec<Return>, Error> {
        let window = self.return_window;
        let ids = self
            .change(order_id, Actor::Shopper(shopper_id), move |tx, order| {
                Box::pin(async move { returns::request(tx, order, &lines, window).await })
            })
            .await?;
        let client = self.pool.get().await?;
        Ok(returns::returns_of(&*client, order_id, None)
            .await?
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .collect())
    }

    /// The seller approves or rejects a requested return.
    pub async fn decide_return(
        &self,
        order_id: Uuid,
        seller_id: Uuid,
        return_id: Uuid,
        approve: bool,
    ) -> Result<Return, Error> {
        self.change(order_id, Actor::Seller(seller_id), move |tx, order| {
            Box::pin(async move { returns::decide(tx, order, seller_id, return_id, approve).await })
        })
        .await?;
        self.one_return(order_id, seller_id, return_id).await
    }

    /// The seller received an approved return; it is refunded (and restocked when asked).
    pub async fn receive_return(
        &self,
        order_id: Uuid,
        seller_id: Uuid,
        return_id: Uuid,
        restock: bool,
    ) -> Result<Return, Error> {
        let payments = self.payments.clone();
        self.change(order_id, Actor::Seller(seller_id), move |tx, order| {
            Box::pin(async move {
                let refund =
                    returns::receive(tx, order, seller_id, return_id, restock, &payments).await?;
                let amount = refund.amount.amount;
                enqueue_order_mail(tx, order.id, &OrderMail::Refunded { amount }).await
            })
        })
        .await?;
        self.one_return(order_id, seller_id, return_id).await
    }

    async fn one_return(
        &self,
        order_id: Uuid,
        seller_id: Uuid,
        return_id: Uuid,
    ) -> Result<Return, Error> {
        let client = self.pool.get().await?;
        returns::returns_of(&*client, order_id, Some(seller_id))
            .await?
            .into_iter()
            .find(|r| r.id == return_id)
            .ok_or(Error::NotFound("return"))
    }
}
