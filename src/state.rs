//! What the web and socket layers share: the process's handles on Postgres, Redis, the actors
//! and the domain's services, built once at start and shared by every worker.
//!
//! The domain never sees this whole: each domain function takes the narrow service it needs
//! ([`Catalog`], [`CartService`], [`CheckoutService`], [`FlashSaleService`], a pool, …).

use crate::{
    carts::changes::CartService, catalog::Catalog, checkout::CheckoutService,
    configuration::Pricing, configuration::Settings, flash_sales::FlashSaleService,
    hot_state::HotState, shoppers::Accounts,
};

/// What every handler and socket may reach, shared by all workers.
pub struct AppState {
    /// Postgres, the source of truth.
    pub pool: deadpool_postgres::Pool,
    /// Redis, the hot shared state.
    pub hot: HotState,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Exchange rates and default currency, parsed once at start.
    pub pricing: Pricing,
    /// Who session tokens and API keys stood for a moment ago, forgotten on revocation.
    pub credentials: crate::credentials::CredentialCache,
    /// Signs shoppers up and in (bounded password hashing, session lifetime).
    pub accounts: Accounts,
    /// The 401s each client address may draw before it gets 429 instead.
    pub unauthorized: crate::unauthorized_budget::UnauthorizedBudget,
    /// The inventory shard actors that serialize and batch stock reservations.
    pub inventory: agora_actors::inventory::InventoryShards,
    /// Redis stock counters shared by every process; dropped when stock comes back.
    pub counters: crate::stock_counters::StockCounters,
    /// Sellers' product changes, with the cache and price notices that follow them.
    pub catalog: Catalog,
    /// Changes carts on their actors and announces them.
    pub cart_service: CartService,
    /// Checks carts out: the commit group, the payment gateway, the carts.
    pub checkout: CheckoutService,
    /// Ships, cancels, returns and refunds orders after the sale.
    pub after_sale: crate::orders::AfterSale,
    /// Flash sales' queues and purchases (signs and checks admissions).
    pub flash_sales: FlashSaleService,
    pub settings: Settings,
}
