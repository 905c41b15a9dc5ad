//! Changing a cart: each change runs on the cart's actor, then the cart is rendered and
//! announced to every socket following it, on every process.
//!
//! [`CartService`] is the handle the web layer changes carts through. One cart's changes in a
//! process run one at a time, in arrival order (its `CartActor`), so a shopper's tabs do not
//! queue on the row lock holding pooled connections, and sockets get the cart's states in the
//! order the changes were made. A line change of a cart the actor holds in memory
//! ([`LiveCart`]) is worked out and answered from memory and written over the cart's version
//! ([`LineWrite`]): an addition in its hold's transaction (the inventory shard's batch), a
//! lowering through the commit group. Any other change, and a line change whose cart moved on
//! in another process, is made under the cart's row lock, which orders changes between
//! processes, and the cart is then loaded again.

use std::time::Duration;

use agora_actors::{
    cart::CartsHandle,
    inventory::{InventoryShards, LineIntent, ReserveStock},
};
use uuid::Uuid;

use super::{
    live::{Held, KnownLine, LiveCart},
    CartView, Destination, MAX_QUANTITY,
};
use crate::{
    cart_lines::{LineWrite, Written},
    commit_group::CommitGroup,
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
    pub live: CartsHandle<LiveCart>,
    pub inventory: InventoryShards,
    pub counters: StockCounters,
    /// The commit group that writes line changes (checkout's).
    pub writes: CommitGroup,
    /// How long a hold taken for a cart line lasts.
    pub hold_for: Duration,
    /// How long a cart's actor answers from the cart as it loaded it.
    pub state_ttl: Duration,
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

/// How a line change of a live cart was made.
enum InMemory {
    /// Written through the commit group and changed in memory alike.
    Changed,
    /// Written the locked way: the cart must be loaded again.
    WrittenLocked,
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

    /// The cart as its owner sees it now, to keep in its actor.
    async fn load(
        &self,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: &LocalePreference,
    ) -> Result<LiveCart, Error> {
        let client = self.pool.get().await?;
        let cart = crate::db::timed(
            "cart_view",
            super::load(&*client, shopper_id, cart_id, preference, &self.pricing),
        )
        .await?;
        Ok(LiveCart::new(shopper_id, preference, cart))
    }

    /// Shows the cart to every socket following it, on every process; its version tells other
    /// processes' actors that their copy is older.
    async fn announce(&self, live: &LiveCart) {
        if let Ok(rendered) = serde_json::to_value(&live.cart.view) {
            let notice = Notice::Cart {
                cart_id: live.cart.view.id,
                version: live.cart.version,
                cart: rendered,
            };
            notices::publish(&self.hot, &notice).await;
        }
    }

    /// Announces the cart the actor now keeps and answers it (or the error, keeping the cart
    /// only where the error left it as it was).
    async fn answer(
        &self,
        outcome: Result<LiveCart, (Error, Option<LiveCart>)>,
    ) -> (Result<CartView, Error>, Option<LiveCart>) {
        match outcome {
            Ok(live) => {
                self.announce(&live).await;
                (Ok(live.cart.view.clone()), Some(live))
            }
            Err((error, live)) => (Err(error), live),
        }
    }

    /// Runs `change` on the cart's actor (under the cart's row lock, as it takes it), then loads
    /// the cart there, keeps and announces it: one cart's changes in this process run one at a
    /// time, and their announcements go out in the order the changes were made. Answers the
    /// cart.
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
            .change(cart_id, move |_outdated| async move {
                let changed = async {
                    change(owner.clone()).await?;
                    owner.load(shopper_id, cart_id, &preference).await
                };
                let outcome = changed.await.map_err(|error| (error, None));
                owner.answer(outcome).await
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
        let owner = self.clone();
        self.live
            .change(cart_id, move |kept| async move {
                let outcome = owner
                    .change_live_line(kept, shopper_id, cart_id, &preference, &sku, target)
                    .await;
                owner.answer(outcome).await
            })
            .await?
    }

    /// Changes the line of `sku` of the cart its actor `kept` (or loads it first): in memory
    /// and through the commit group where it can, the locked way otherwise.
    async fn change_live_line(
        &self,
        kept: Option<LiveCart>,
        shopper_id: Uuid,
        cart_id: Uuid,
        preference: &LocalePreference,
        sku: &str,
        target: Target,
    ) -> Result<LiveCart, (Error, Option<LiveCart>)> {
        let mut live = match kept {
            Some(live) if live.serves(shopper_id, preference, self.state_ttl) => live,
            _ => self
                .load(shopper_id, cart_id, preference)
                .await
                .map_err(|error| (error, None))?,
        };
        match self
            .change_in_memory(&mut live, cart_id, preference, sku, target)
            .await
        {
            Ok(InMemory::Changed) => Ok(live),
            Ok(InMemory::WrittenLocked) => self
                .load(shopper_id, cart_id, preference)
                .await
                .map_err(|error| (error, None)),
            Err(error) => {
                let unchanged = matches!(
                    error,
                    Error::InvalidField { .. }
                        | Error::InsufficientStock { .. }
                        | Error::NotFound("cart line")
                );
                Err((error, unchanged.then_some(live)))
            }
        }
    }

    /// Changes a line of `live` over the cart's version (a SKU the cart does not know is read
    /// first): an addition with its hold, a lowering through the commit group; a cart that
    /// moved on elsewhere is written the locked way.
    async fn change_in_memory(
        &self,
        live: &mut LiveCart,
        cart_id: Uuid,
        preference: &LocalePreference,
        sku: &str,
        target: Target,
    ) -> Result<InMemory, Error> {
        let line = match live.line(sku) {
            Some(line) => line,
            None => live.remember(self.catalog_line(live, sku, preference).await?),
        };
        if matches!(target, Target::Set(units) if units > 0) && line.quantity == 0 {
            // Setting the quantity of a line the cart does not have is not adding one.
            return Err(Error::NotFound("cart line"));
        }
        let wanted = target.wanted(line.quantity)?;
        let write = LineWrite {
            id: Uuid::now_v7(),
            cart_id,
            shopper_id: live.shopper_id,
            version: live.cart.version,
            variant_id: line.variant_id,
            quantity: wanted,
            release: 0,
            carted: false,
        };
        match wanted.cmp(&line.quantity) {
            std::cmp::Ordering::Greater => self.add_in_memory(live, &line, write, target).await,
            std::cmp::Ordering::Less => self.lower_in_memory(live, &line, write, target).await,
            std::cmp::Ordering::Equal => Ok(InMemory::Changed),
        }
    }

    /// Adds units to a line of `live`: held through the inventory shards, the line written in
    /// the hold's own transaction (the shard's batch) over the cart's version.
    async fn add_in_memory(
        &self,
        live: &mut LiveCart,
        line: &KnownLine,
        write: LineWrite,
        target: Target,
    ) -> Result<InMemory, Error> {
        if !line.on_sale {
            return Err(super::unknown_sku());
        }
        if line.quantity == 0 {
            super::refuse_beyond_max_lines(live.line_count() as i64)?;
        }
        let (cart_id, shopper_id) = (write.cart_id, write.shopper_id);
        let extra = write.quantity - line.quantity;
        let hold = ReserveStock {
            sku: line.sku.clone(),
            quantity: extra,
            owner: cart_id.to_string(),
            hold_for: self.hold_for,
            into_line: Some(LineIntent {
                cart_id,
                shopper_id,
                version: write.version,
                write_id: write.id,
                quantity: write.quantity,
            }),
        };
        let held = self.inventory.reserve(hold).await?;
        if held.line_written == Some(true) {
            let more = Held::More {
                units: extra,
                until: held.expires_at,
            };
            live.set_line(line.variant_id, write.quantity, more);
            return Ok(InMemory::Changed);
        }
        // The cart moved on elsewhere: the units are held, the line is written the locked way.
        let (variant, sku) = (line.variant_id, line.sku.as_str());
        let written = self
            .write_added_units(shopper_id, cart_id, sku, variant, extra, target)
            .await;
        self.after_adding(shopper_id, variant, held.id, sku, written)
            .await?;
        Ok(InMemory::WrittenLocked)
    }

    /// Lowers (or removes) a line of `live` through the commit group over the cart's version,
    /// its units released from the cart's holds in the same statement and then given back to
    /// the SKU's counter.
    async fn lower_in_memory(
        &self,
        live: &mut LiveCart,
        line: &KnownLine,
        write: LineWrite,
        target: Target,
    ) -> Result<InMemory, Error> {
        let (wanted, release) = (write.quantity, line.quantity - write.quantity);
        let (cart_id, shopper_id) = (write.cart_id, write.shopper_id);
        match self.writes.run(LineWrite { release, ..write }).await? {
            Written::Applied { released } => {
                if released > 0 {
                    self.counters.units_returned(&[(&line.sku, released)]).await;
                }
                live.set_line(line.variant_id, wanted, Held::Fewer { units: released });
                Ok(InMemory::Changed)
            }
            Written::AlreadyApplied => {
                // How many units went back is not known here: the counter is rebuilt.
                self.counters.stock_returned(&[&line.sku]).await;
                let units = i64::from(release);
                live.set_line(line.variant_id, wanted, Held::Fewer { units });
                Ok(InMemory::Changed)
            }
            Written::Moved => {
                self.write_line(shopper_id, cart_id, &line.sku, target)
                    .await?;
                Ok(InMemory::WrittenLocked)
            }
        }
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

    /// A storefront SKU the live cart does not know, priced for it.
    async fn catalog_line(
        &self,
        live: &LiveCart,
        sku: &str,
        preference: &LocalePreference,
    ) -> Result<super::CartLine, Error> {
        let client = self.pool.get().await?;
        let currency = live.cart.currency;
        super::catalog_line(&*client, sku, preference, &self.pricing, currency)
            .await?
            .ok_or_else(super::unknown_sku)
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
            into_line: None,
        };
        let held = self.inventory.reserve(hold).await?;
        let written = self
            .write_added_units(shopper_id, cart_id, &sku, variant, extra, target)
            .await;
        self.after_adding(shopper_id, variant, held.id, &sku, written)
            .await
    }

    /// After held units were written into a line the locked way: the recommendation signal,
    /// or, when the line could not be written, the hold given back now rather than at expiry.
    async fn after_adding(
        &self,
        shopper_id: Uuid,
        variant: Uuid,
        hold: Uuid,
        sku: &str,
        written: Result<(), Error>,
    ) -> Result<(), Error> {
        match &written {
            Ok(()) => {
                let signal = recommendations::Signal::Carted { variant };
                recommendations::note(&self.pool, shopper_id, signal).await;
            }
            Err(_) => self.release_unwritten_hold(hold, sku).await,
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
