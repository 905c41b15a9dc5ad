//! A shopper socket following carts: each state as it changes, and a warning a minute before a
//! line's hold lapses.

use super::*;

impl ShopperSocket {
    pub(super) fn subscribe_cart(&mut self, cart_id: Uuid, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(shopper) = self.shopper else {
            self.error(
                ctx,
                Code::Unauthorized,
                "connect with your shopper token (?token= or Authorization) to follow a cart",
            );
            return;
        };
        if self.carts.contains_key(&cart_id) {
            return;
        }
        if self.follows() >= MAX_SUBSCRIPTIONS {
            self.error(ctx, Code::TooManySubscriptions, "too many subscriptions");
            return;
        }
        self.hub.do_send(hub::Subscribe {
            id: self.id,
            topic: Topic::Cart(cart_id),
        });
        self.carts.insert(cart_id, FollowedCart::default());
        let (state, preference) = (self.state.clone(), self.preference.clone());
        let read = async move {
            let client = state.pool.get().await?;
            carts::view(&*client, shopper, cart_id, &preference, &state.pricing).await
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |view, socket, ctx| match view {
                    Ok(view) => match serde_json::to_value(&view) {
                        Ok(cart) => socket.write_cart(ctx, cart_id, cart),
                        Err(_) => {
                            socket.error(ctx, Code::Unavailable, "the cart cannot be read now")
                        }
                    },
                    Err(_) => {
                        // Another shopper's cart is "not found", as over HTTP.
                        socket.carts.remove(&cart_id);
                        socket.hub.do_send(hub::Unsubscribe {
                            id: socket.id,
                            topic: Topic::Cart(cart_id),
                        });
                        socket.error(ctx, Code::NotFound, "cart not found");
                    }
                }),
        );
    }

    /// Sends the cart and schedules the warning before its next hold lapses.
    pub(super) fn write_cart(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        cart_id: Uuid,
        cart: serde_json::Value,
    ) {
        let Some(followed) = self.carts.get_mut(&cart_id) else {
            return;
        };
        followed.generation += 1;
        followed.holds = cart["lines"]
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|line| {
                        let expires_at = line["held_until"].as_str()?.parse().ok()?;
                        Some((line["sku"].as_str()?.to_owned(), expires_at))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.send(
            ctx,
            json!({ "type": "cart", "cart_id": cart_id, "cart": cart }),
        );
        self.schedule_hold_warning(ctx, cart_id);
    }

    /// One timer per cart: at the lead time of its earliest unwarned hold, warns of every hold
    /// lapsing within the lead, then schedules the next. A newer cart supersedes the timer.
    pub(super) fn schedule_hold_warning(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        cart_id: Uuid,
    ) {
        let Some(followed) = self.carts.get(&cart_id) else {
            return;
        };
        let lead = chrono::Duration::from_std(HOLD_WARNING_LEAD).unwrap_or_default();
        let Some(earliest) = followed.holds.iter().map(|(_, at)| *at).min() else {
            return;
        };
        let generation = followed.generation;
        let wait = (earliest - lead - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        ctx.run_later(wait, move |socket, ctx| {
            let Some(followed) = socket.carts.get_mut(&cart_id) else {
                return;
            };
            if followed.generation != generation {
                return;
            }
            let due = Utc::now() + lead;
            let (lapsing, later): (Vec<_>, Vec<_>) = std::mem::take(&mut followed.holds)
                .into_iter()
                .partition(|(_, at)| *at <= due);
            followed.holds = later;
            for (sku, expires_at) in lapsing {
                socket.send(
                    ctx,
                    json!({ "type": "hold_expiring", "cart_id": cart_id, "sku": sku,
                            "expires_at": expires_at }),
                );
            }
            socket.schedule_hold_warning(ctx, cart_id);
        });
    }
}
