//! A shopper socket following the shopper's own orders: each one's status now, then one
//! message per change (paid, shipped, cancelled, refunded, a return's step) from any process.

use super::*;

impl ShopperSocket {
    /// Follows one of the shopper's orders: its status now, then every change. Another
    /// shopper's order is "not found", as over HTTP.
    pub(super) fn follow_order(&mut self, order_id: Uuid, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(shopper) = self.shopper else {
            self.error(
                ctx,
                Code::Unauthorized,
                "connect with your shopper token (?token= or Authorization) to follow an order",
            );
            return;
        };
        if self.orders.contains_key(&order_id) {
            return;
        }
        if self.follows() >= MAX_SUBSCRIPTIONS {
            self.error(ctx, Code::TooManySubscriptions, "too many subscriptions");
            return;
        }
        // Subscribed before reading, so no change falls between the read and the
        // subscription (a change announced meanwhile is sent whole, like the read).
        self.hub.do_send(hub::Subscribe {
            id: self.id,
            topic: Topic::Order(order_id),
        });
        self.orders.insert(order_id, None);
        let state = self.state.clone();
        let read = async move {
            let client = state.pool.get().await?;
            crate::orders::view(&*client, order_id, Some(shopper)).await
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |view, socket, ctx| match view {
                    Ok(Some(order)) => {
                        // A notice that arrived during the read already said where it is.
                        if socket.orders.get(&order_id).is_some_and(Option::is_none) {
                            socket.write_order(ctx, order_id, order.status.as_str(), None);
                        }
                    }
                    Ok(None) => {
                        socket.unfollow_order(order_id);
                        socket.error(ctx, Code::NotFound, "order not found");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reading an order for a socket failed");
                        socket.unfollow_order(order_id);
                        socket.error(
                            ctx,
                            Code::Unavailable,
                            "the order cannot be read now; follow it again",
                        );
                    }
                }),
        );
    }

    pub(super) fn unfollow_order(&mut self, order_id: Uuid) {
        if self.orders.remove(&order_id).is_some() {
            self.hub.do_send(hub::Unsubscribe {
                id: self.id,
                topic: Topic::Order(order_id),
            });
        }
    }

    /// Sends a followed order's status after a change (its latest event's kind and id), once
    /// per change; without a change (the read when it was followed, or a notice from an
    /// earlier release), unless that status was the last sent.
    pub(super) fn write_order(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        order_id: Uuid,
        status: &str,
        change: Option<&(String, i64)>,
    ) {
        let Some(last) = self.orders.get_mut(&order_id) else {
            return;
        };
        let sent = last.as_ref();
        let fresh = match change {
            Some((_, event)) => sent.is_none_or(|(_, seen)| event > seen),
            None => sent.is_none_or(|(seen, _)| seen != status),
        };
        if !fresh {
            return;
        }
        let event = change.map_or(sent.map_or(0, |(_, seen)| *seen), |(_, event)| *event);
        *last = Some((status.to_owned(), event));
        let mut message = json!({ "type": "order", "order_id": order_id, "status": status });
        if let Some((kind, _)) = change {
            message["change"] = json!(kind);
        }
        self.send(ctx, message);
    }
}
