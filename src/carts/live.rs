//! A cart kept in memory by its actor while it is in use.
//!
//! [`LiveCart`] is what a cart's actor (`agora_actors::cart`) keeps between changes: the cart
//! as loaded from Postgres (lines priced for the shopper's locales, region, destination) and
//! its version, changed in place by each line change once written, so a change reads nothing
//! and its answer is rendered from memory. The writes are
//! [`LineWrite`](crate::cart_lines::LineWrite)s over the version the copy has (`changes.rs`
//! makes them: an addition in its hold's transaction, a lowering through the commit group).
//!
//! Promises:
//! - No write is lost between processes: a write whose cart moved on (another process
//!   changed it) writes nothing; the change is then made the locked way (`changes.rs`) and the
//!   cart loaded again. Every other writer of a cart or its lines raises its version
//!   (shipping, checkout emptying the ordered lines); every announcement of a cart carries its
//!   version, and a process hearing of a newer one drops its copy.
//! - A live cart is at most [`CartSettings::state_ttl_ms`](crate::configuration::CartSettings)
//!   old: its prices, titles and held units are read again after that (and whenever the
//!   shopper's locales differ, or another shopper asks). Reading a cart (`GET`) and checkout
//!   read Postgres whatever the copy says.
//! - What a live cart says about its lines' quantities is what Postgres holds: it changes only
//!   after its write committed.

use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use super::{CartLine, Loaded};
use crate::locale::LocalePreference;

/// Most lines a live cart remembers that it does not have (oldest forgotten first).
pub const MAX_REMEMBERED_LINES: usize = super::MAX_LINES as usize;

/// A cart as its actor keeps it between changes.
pub struct LiveCart {
    pub(super) shopper_id: Uuid,
    /// The locales its titles were chosen for.
    locales: Vec<String>,
    loaded_at: Instant,
    pub(super) cart: Loaded,
    /// Lines it does not have (removed since it was loaded, or read for a change that added
    /// none), kept to add without a read; at most [`MAX_REMEMBERED_LINES`].
    removed: Vec<CartLine>,
}

impl agora_actors::cart::CartState for LiveCart {
    fn version(&self) -> i64 {
        self.cart.version
    }
}

/// A line of a live cart, as a change finds it.
pub(super) struct KnownLine {
    pub variant_id: Uuid,
    pub sku: String,
    pub quantity: u32,
    pub on_sale: bool,
}

impl LiveCart {
    pub(super) fn new(shopper_id: Uuid, preference: &LocalePreference, cart: Loaded) -> Self {
        Self {
            shopper_id,
            locales: locales_of(preference),
            loaded_at: Instant::now(),
            cart,
            removed: Vec::new(),
        }
    }

    /// Whether this copy may still serve `shopper_id` in `preference`'s locales.
    pub(super) fn serves(
        &self,
        shopper_id: Uuid,
        preference: &LocalePreference,
        ttl: Duration,
    ) -> bool {
        self.shopper_id == shopper_id
            && self.loaded_at.elapsed() < ttl
            && self.locales == locales_of(preference)
    }

    /// The line of `sku` the cart has or had since it was loaded.
    pub(super) fn line(&self, sku: &str) -> Option<KnownLine> {
        let wanted = sku.to_uppercase();
        self.cart
            .view
            .lines
            .iter()
            .chain(&self.removed)
            .find(|line| line.sku.to_uppercase() == wanted)
            .map(|line| KnownLine {
                variant_id: line.variant_id,
                sku: line.sku.clone(),
                quantity: line.quantity,
                on_sale: line.on_sale,
            })
    }

    /// Keeps a line the cart does not have (a storefront SKU read for a change), so that
    /// adding it is written like any other change; answers it as a known line.
    pub(super) fn remember(&mut self, line: CartLine) -> KnownLine {
        let known = KnownLine {
            variant_id: line.variant_id,
            sku: line.sku.clone(),
            quantity: line.quantity,
            on_sale: line.on_sale,
        };
        self.keep_removed(line);
        known
    }

    fn keep_removed(&mut self, line: CartLine) {
        if self.removed.len() >= MAX_REMEMBERED_LINES {
            self.removed.remove(0);
        }
        self.removed.push(line);
    }

    pub(super) fn line_count(&self) -> usize {
        self.cart.view.lines.len()
    }

    /// Records a written change of the line of `variant_id` to `quantity`: `held` more units
    /// held until `held_until` (an addition), or `released` units given back.
    pub(super) fn set_line(&mut self, variant_id: Uuid, quantity: u32, held: Held) {
        let lines = &mut self.cart.view.lines;
        if let Some(at) = lines.iter().position(|l| l.variant_id == variant_id) {
            held.apply(&mut lines[at], quantity);
            if quantity == 0 {
                let line = lines.remove(at);
                self.keep_removed(line);
            }
        } else if let Some(at) = self.removed.iter().position(|l| l.variant_id == variant_id) {
            let mut line = self.removed.remove(at);
            held.apply(&mut line, quantity);
            if quantity > 0 {
                // A line that comes back is added again, so it goes last, as Postgres orders it.
                lines.push(line);
            } else {
                self.keep_removed(line);
            }
        }
        self.cart.version += 1;
        self.cart.reprice();
    }
}

/// How a written line change moved its held units.
pub(super) enum Held {
    More {
        units: u32,
        until: chrono::DateTime<Utc>,
    },
    Fewer {
        units: i64,
    },
}

impl Held {
    fn apply(self, line: &mut CartLine, quantity: u32) {
        line.quantity = quantity;
        match self {
            Self::More { units, until } => {
                line.held_quantity += i64::from(units);
                line.held_until = line.held_until.max(Some(until));
            }
            Self::Fewer { units } => {
                line.held_quantity = (line.held_quantity - units).clamp(0, i64::from(quantity));
                if line.held_quantity == 0 {
                    line.held_until = None;
                }
            }
        }
    }
}

fn locales_of(preference: &LocalePreference) -> Vec<String> {
    preference
        .tags()
        .iter()
        .map(|locale| locale.as_str().to_owned())
        .collect()
}
