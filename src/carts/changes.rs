//! Changing a cart: each change runs on the cart's actor, then the cart is rendered and
//! announced to every socket following it, on every process.
//!
//! [`CartService`] is the handle the web layer changes carts through. One cart's changes in a
//! process run one at a time, in arrival order (its `CartActor`), so a shopper's tabs do not
//! queue on the row lock holding pooled connections, and sockets get the cart's states in the
//! order the changes were made. Between processes, the cart's row lock orders changes.

use std::time::Duration;

use agora_actors::{cart::CartsHandle, inventory::InventoryShards, inventory::ReserveStock};
use uuid::Uuid;

use super::{CartView, Destination, MAX_QUANTITY};
use crate::{
    configuration::Pricing,
    error::{error_chain, Code, Error},
    hot_state::HotState,
    inventory,
    locale::LocalePreference,
    notices::{self, Notice},
    recommendations,
    stock_counters::StockCounters,
};

/// Attempts to give back a hold whose cart line could not be written (e.g. no pooled
/// connection was free), 100 ms apart, before leaving it to expire.
const UNWRITTEN_HOLD_RELEASE_ATTEMPTS: u32 = 3;

/// What changing carts needs: Postgres, Redis, prices, the live carts' actors and the
/// inventory shards that hold stock for them. Cheap to clone.
#[derive(Clone)]
pub struct CartService {
    pub pool: deadpool_postgres::Pool,
    pub hot: HotState,
    pub pricing: Pricing,
    pub live: CartsHandle,
    pub inventory: InventoryShards,
    pub counters: StockCounters,
    /// How long a hold taken for a cart line lasts.
    pub hold_for: Duration,
}

/// What a shopper chose for a cart's shipping: where, how, and who to tell.
#[derive(Debug, Clone)]
pub struct ShippingChoice {
    pub destination: Destination,
    /// A shipping option id of the cart's region.
    pub option: String,
    /// The contact email, already checked; `None` keeps the one the cart has.
    pub email: Option<String>,
}

/// What a line change asks for.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Add units to the line.
    Add(u32),
    /// Set the line to exactly this many units (0 removes it).
    Set(u32),
}

impl Target {
    /// The line's quantity this change asks for, when it has `current` units now.
    fn wanted(self, current: u32) -> Result<u32, Error> {
        match self {
            Self::Add(units) => check_quantity(current.saturating_add(units), false),
            Self::Set(units) => check_quantity(units, true),
        }
    }
}

/// A line's quantity, 1 to [`MAX_QUANTITY`] (0 too where `allow_zero`, which removes it).
pub fn check_quantity(quantity: u32, allow_zero: bool) -> Result<u32, Error> {
    if (quantity == 0 && !allow_zero) || quantity > MAX_QUANTITY {
        return Err(Error::invalid_field(
            Code::InvalidQuantity,
            "quantity",
            format!("must be 1 to {MAX_QUANTITY}"),
        ));
    }
    Ok(quantity)
}

impl CartService {
    /// The shopper's cart with its totals; another shopper's cart is "not found".
    pub async fn render(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: &LocalePreference,
    ) -> Result<CartView, Error> {
        let client = self.pool.get().await?;
        crate::db::timed(
            "cart_view",
            super::view(&*client, shopper_id, cart_id, preference, &self.pricing),
        )
        .await
    }

    /// Opens a cart in a region; answers it.
    pub async fn create(
        &self,
        shopper_id: Uuid,
        region: &str,
        preference: &LocalePreference,
    ) -> Result<CartView, Error> {
        let client = self.pool.get().await?;
        let id = super::create(&*client, shopper_id, region).await?;
        drop(client);
        self.render(shopper_id, id, preference).await
    }

    /// The cart after a change, shown to every socket following it, on every process.
    async fn announce(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: &LocalePreference,
    ) -> Result<CartView, Error> {
        let cart = self.render(shopper_id, cart_id, preference).await?;
        if let Ok(rendered) = serde_json::to_value(&cart) {
            let notice = Notice::Cart {
                cart_id,
                cart: rendered,
            };
            notices::publish(&self.hot, &notice).await;
        }
        Ok(cart)
    }

    /// Runs `change` on the cart's actor, then renders and announces the cart there too: one
    /// cart's changes in this process run one at a time, and their announcements go out in
    /// the order the changes were made. Answers the cart.
    pub async fn change_and_announce<F, Fut>(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: LocalePreference,
        change: F,
    ) -> Result<CartView, Error>
    where
        F: FnOnce(CartService) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        let owner = self.clone();
        self.live
            .change(cart_id, async move {
                change(owner.clone()).await?;
                owner.announce(shopper_id, cart_id, &preference).await
            })
            .await?
    }

    /// Announces the cart as it is now, in its turn among the cart's changes (e.g. after a
    /// checkout took its ordered lines).
    pub async fn announce_in_turn(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: LocalePreference,
    ) -> Result<CartView, Error> {
        let unchanged = |_| async { Ok(()) };
        self.change_and_announce(shopper_id, cart_id, preference, unchanged)
            .await
    }

    /// Changes the line of `sku` and announces the cart; answers it.
    pub async fn change_line(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: LocalePreference,
        sku: String,
        target: Target,
    ) -> Result<CartView, Error> {
        let change = move |carts: CartService| async move {
            carts.write_line(shopper_id, cart_id, &sku, target).await
        };
        self.change_and_announce(shopper_id, cart_id, preference, change)
            .await
    }

    /// Sets the destination (a country for a quote, or an address), the shipping option and,
    /// when given, the contact email; announces the cart and answers it.
    pub async fn set_shipping(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: LocalePreference,
        shipping: ShippingChoice,
    ) -> Result<CartView, Error> {
        let change = move |carts: CartService| async move {
            let ShippingChoice {
                destination,
                option,
                email,
            } = shipping;
            let mut client = carts.pool.get().await?;
            let tx = client.transaction().await?;
            let cart = super::lock_own(&tx, shopper_id, cart_id).await?;
            let email = email.as_deref();
            super::set_shipping(&tx, &cart, shopper_id, destination, &option, email).await?;
            tx.commit().await?;
            Ok(())
        };
        self.change_and_announce(shopper_id, cart_id, preference, change)
            .await
    }

    /// Changes the line of `sku`: removed units are released under the cart's lock at once;
    /// added units are held through the inventory shards first, with no connection held
    /// meanwhile (the shard needs one to commit), then written under the cart's lock, taking
    /// into account whatever another tab changed in between.
    async fn write_line(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        sku: &str,
        target: Target,
    ) -> Result<(), Error> {
        let Some((variant, sku, extra)) =
            self.units_to_add(shopper_id, cart_id, sku, target).await?
        else {
            return Ok(());
        };
        let hold = ReserveStock {
            sku: sku.clone(),
            quantity: extra,
            owner: cart_id.to_string(),
            hold_for: self.hold_for,
        };
        let held = self.inventory.reserve(hold).await?;
        let written = self
            .write_added_units(shopper_id, cart_id, &sku, variant, extra, target)
            .await;
        match &written {
            Ok(()) => {
                let signal = recommendations::Signal::Carted { variant };
                recommendations::note(&self.pool, shopper_id, signal).await;
            }
            // The units are held but not in the cart: give them back now rather than at expiry.
            Err(_) => self.release_unwritten_hold(held.id, &sku).await,
        }
        written
    }

    /// The units a change adds to the line, `(variant, sku, units)`; `None` when it removed
    /// units instead, which it did at once under the cart's lock (from the line as it is
    /// then: another process may have changed it since the peek, so it can turn out to be an
    /// addition after all).
    async fn units_to_add(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        sku: &str,
        target: Target,
    ) -> Result<Option<(Uuid, String, u32)>, Error> {
        let peeked = {
            let client = self.pool.get().await?;
            super::peek_line(&*client, shopper_id, cart_id, sku).await?
        };
        if matches!(target, Target::Set(units) if units > 0) && peeked.quantity == 0 {
            // Setting the quantity of a line the cart does not have is not adding one.
            return Err(Error::NotFound("cart line"));
        }
        let wanted = target.wanted(peeked.quantity)?;
        if wanted > peeked.quantity {
            if !peeked.on_sale {
                return Err(super::unknown_sku());
            }
            super::refuse_beyond_max_lines(peeked.other_lines)?;
            return Ok(Some((
                peeked.variant_id,
                peeked.sku,
                wanted - peeked.quantity,
            )));
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let cart = super::lock_own(&tx, shopper_id, cart_id).await?;
        let (variant, sku, current) = super::line_of(&tx, cart.id, sku).await?;
        let wanted = target.wanted(current)?;
        if wanted <= current {
            super::release(&tx, cart.id, variant, current - wanted).await?;
            super::set_line(&tx, cart.id, variant, wanted).await?;
            tx.commit().await?;
            let units = i64::from(current - wanted);
            self.counters.units_returned(&[(&sku, units)]).await;
            return Ok(None);
        }
        super::check_room(&tx, cart.id, variant).await?;
        Ok(Some((variant, sku, wanted - current)))
    }

    /// Writes units already held into the line under the cart's lock, reconciled with
    /// whatever another tab did meanwhile (a surplus is released in the same transaction).
    async fn write_added_units(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        sku: &str,
        variant: Uuid,
        extra: u32,
        target: Target,
    ) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let cart = super::lock_own(&tx, shopper_id, cart_id).await?;
        let (_, _, now) = super::line_of(&tx, cart.id, sku).await?;
        let mut quantity = now.saturating_add(extra);
        let surplus = match target {
            Target::Set(units) if quantity > units.max(now) => quantity - units.max(now),
            Target::Add(_) if quantity > MAX_QUANTITY => quantity - MAX_QUANTITY,
            _ => 0,
        };
        if surplus > 0 {
            super::release(&tx, cart.id, variant, surplus).await?;
            quantity -= surplus;
        }
        super::set_line(&tx, cart.id, variant, quantity).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives back a hold whose line could not be written, a few times, before leaving it to
    /// expire by itself.
    async fn release_unwritten_hold(&self, hold: Uuid, sku: &str) {
        for attempt in 1..=UNWRITTEN_HOLD_RELEASE_ATTEMPTS {
            let released = async {
                let client = self.pool.get().await?;
                inventory::release_hold(&*client, hold).await
            }
            .await;
            match released {
                Ok(()) => {
                    self.counters.stock_returned(&[sku]).await;
                    break;
                }
                Err(error) if attempt == UNWRITTEN_HOLD_RELEASE_ATTEMPTS => {
                    tracing::warn!(%hold, error = %error_chain(&error), "releasing an unwritten hold failed; it expires by itself");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}
