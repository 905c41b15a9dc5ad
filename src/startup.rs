//! Building and running one Agora server process.
//!
//! `Application::build` migrates the database, connects the pools, binds its own listener
//! (port 0 picks a free one, as the tests do) and starts the HTTP workers;
//! `run_until_stopped` serves until SIGTERM/SIGINT (or a [`ServerHandle`] stop), lets in-flight
//! requests finish, asks the actors to flush their pending writes, then closes the pools.

use std::time::Duration;

use std::sync::Arc;

use actix::{Arbiter, ArbiterHandle};
use actix_web::{dev::ServerHandle, middleware::from_fn, web, App, HttpServer};
use agora_actors::{
    flash_sale::{QueueTiming, SaleDirector},
    inventory::{BatchLimits, InventoryShards},
    lifecycle::{ActorRegistry, FlushOutcome},
};

use crate::{
    carts::changes::CartService,
    catalog, checkout,
    checkout::CheckoutService,
    configuration::{ConfigError, InventorySettings, Settings},
    db::{self, DbError},
    dependencies,
    error::Error,
    flash_sales::FlashSaleService,
    flash_sales::{admission::AdmissionKey, keeper::PgSaleKeeper},
    hot_state::HotState,
    http,
    inventory::{self, PgStockStore},
    observability,
    payments::{sandbox::SandboxGateway, PaymentProvider, Payments},
    realtime::{self, Hubs, LocalHub},
    shoppers::{Accounts, PasswordHashing},
    sign_in_throttle::{self, SignInThrottle},
    state::AppState,
    stock_counters::StockCounters,
};

/// Pooled connections of the sandbox payment gateway's own books.
const SANDBOX_GATEWAY_CONNECTIONS: usize = 8;
/// Postgres connections of this process's flash-sale queues, their own so that a crowd
/// holding every pooled connection (joining, polling) never starves the queue that admits it.
const FLASH_SALE_QUEUE_CONNECTIONS: usize = 2;

/// Longest time actors get to flush their pending writes at shutdown.
pub const ACTOR_FLUSH_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("could not prepare the catalog")]
    Prepare(#[source] Error),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    actors: ActorRegistry,
    /// The threads the inventory shards run on; owned here so they live until the shards
    /// have flushed, and are stopped then.
    arbiters: Vec<Arbiter>,
    pool: deadpool_postgres::Pool,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_gateway(settings, None).await
    }

    /// Builds with another payment gateway than the configured sandbox (tests inject faults).
    pub async fn build_with_gateway(
        settings: Settings,
        gateway: Option<Arc<dyn PaymentProvider>>,
    ) -> Result<Self, StartupError> {
        let addr = settings.http_addr()?;
        // Installed first: a counter registered at 0 before there is a recorder is lost, and a
        // new process would then export the sign-in throttle's and the mail sender's counters
        // only after their first event.
        let metrics = observability::recorder();
        let applied = db::migrate(&settings.database).await?;
        tracing::info!(applied, "database schema is current");
        let pool = db::build_pool(&settings.database)?;
        let pricing = settings.pricing()?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| StartupError::Prepare(e.into()))?;
        catalog::sync_exchange_rates(&mut client, &pricing.fx)
            .await
            .map_err(StartupError::Prepare)?;
        let admission_key = AdmissionKey::load(&*client)
            .await
            .map_err(|error| StartupError::Prepare(Error::internal(error)))?;
        drop(client);
        let hot = HotState::new(&settings.redis)?;
        crate::notices::start_publishing(&hot);
        dependencies::spawn_sampler(
            pool.clone(),
            hot.clone(),
            Duration::from_millis(settings.health.check_timeout_ms),
        );
        let actors = ActorRegistry::new();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
        let counters = StockCounters::new(hot.clone())
            .living(Duration::from_millis(settings.inventory.counter_ttl_ms))
            .announcing(pool.clone());
        let inventory = start_inventory(&settings.inventory, &pool, &counters, &actors, &arbiters);
        let gateway = gateway_or_sandbox(&settings, gateway)?;
        let payments = Payments::new(gateway, Duration::from_millis(settings.payments.timeout_ms));
        checkout::spawn_reconciler(
            pool.clone(),
            payments.clone(),
            counters.clone(),
            &settings.payments,
        );
        start_flash_sale_director(&settings, &hot, &counters)?;
        start_recommender(&settings, &pool, &hot);
        // Cart registries on the shards' arbiters: a cart's changes are serialized across the
        // HTTP workers, and carts' work is spread over the cores.
        let carts = agora_actors::cart::LiveCarts::start(
            settings.carts.limits(),
            &arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>(),
        );
        let hubs = Hubs::default();
        let credentials = crate::credentials::CredentialCache::new(
            hot.clone(),
            Duration::from_millis(settings.auth.credential_cache_ttl_ms),
            settings.auth.credential_cache_entries,
        );
        realtime::spawn_listener(
            &settings.redis,
            hubs.clone(),
            credentials.clone(),
            carts.clone(),
        );
        let http_settings = settings.http.clone();
        let default_locale = settings.catalog.default_locale.clone();
        let writes = crate::commit_group::CommitGroup::start(pool.clone(), &settings.checkout);
        let cart_service = CartService {
            pool: pool.clone(),
            hot: hot.clone(),
            pricing: pricing.clone(),
            live: carts,
            inventory: inventory.clone(),
            counters: counters.clone(),
            writes: writes.clone(),
            hold_for: Duration::from_secs(settings.inventory.hold_ttl_secs),
            state_ttl: Duration::from_millis(settings.carts.state_ttl_ms),
        };
        let checkout = CheckoutService {
            carts: cart_service.clone(),
            writes,
            payments,
        };
        let flash_sales = FlashSaleService {
            checkout: checkout.clone(),
            admission_key,
            settings: settings.flash_sales.clone(),
        };
        let after_sale = crate::orders::AfterSale {
            pool: pool.clone(),
            hot: hot.clone(),
            counters: counters.clone(),
            payments: checkout.payments.clone(),
            return_window: settings.returns.window(),
        };
        let catalog = crate::catalog::Catalog {
            pool: pool.clone(),
            hot: hot.clone(),
            pricing: pricing.clone(),
            cache_ttl_secs: settings.catalog.product_cache_ttl_secs,
        };
        let accounts = accounts(&settings, &pool, &hot, &pricing, &counters, &credentials);
        crate::mail::start_sender(pool.clone(), &settings.mail).map_err(StartupError::Prepare)?;
        crate::upkeep::start(pool.clone(), &settings);
        observability::register_alerting_counters();
        let unauthorized = crate::unauthorized_budget::UnauthorizedBudget::new(
            hot.clone(),
            settings.auth.unauthorized_per_address,
            Duration::from_secs(settings.auth.unauthorized_window_secs),
        );
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            hot,
            metrics,
            accounts,
            unauthorized,
            credentials,
            inventory,
            counters,
            after_sale,
            catalog,
            cart_service,
            checkout,
            flash_sales,
            pricing,
            settings,
        });

        let (server, port) = serve(state, hubs, &http_settings, addr)?;
        tracing::info!(%addr, port, "listening");
        record_mail_defaults(&pool, &http_settings, &default_locale, addr, port).await?;
        Ok(Self {
            port,
            server,
            actors,
            arbiters,
            pool,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests; signals are handled by the server itself).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The actors to flush at shutdown; actors register here when they start.
    pub fn actors(&self) -> &ActorRegistry {
        &self.actors
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            match stop_signal().await {
                Ok(signal) => tracing::info!(signal, "stopping gracefully"),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for stop signals; stopping");
                }
            }
            handle.stop(true).await;
        });
        self.server.await?;
        tracing::info!("HTTP stopped; flushing actors");
        let outcomes = self.actors.flush_all(ACTOR_FLUSH_DEADLINE).await;
        let failed = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, FlushOutcome::Failed { .. }))
            .count();
        for arbiter in self.arbiters {
            arbiter.stop();
            let _ = actix_web::rt::task::spawn_blocking(move || arbiter.join()).await;
        }
        self.pool.close();
        if failed > 0 {
            return Err(std::io::Error::other(format!(
                "{failed} actor(s) could not flush their pending writes"
            )));
        }
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// The accounts service: password hashing, sessions, the sign-in and reset throttles.
/// The gateway given, or the sandbox.
fn gateway_or_sandbox(
    settings: &Settings,
    gateway: Option<Arc<dyn PaymentProvider>>,
) -> Result<Arc<dyn PaymentProvider>, StartupError> {
    if let Some(gateway) = gateway {
        return Ok(gateway);
    }
    // The sandbox stands in for a remote gateway: it gets its own connections rather than
    // competing with checkouts for Agora's.
    let mut books = settings.database.clone();
    books.max_connections = SANDBOX_GATEWAY_CONNECTIONS;
    Ok(Arc::new(SandboxGateway::new(
        db::build_pool(&books)?,
        Duration::from_millis(settings.payments.sandbox_latency_ms),
    )))
}

/// The recommender runs on the server's own thread, like the flash-sale director.
fn start_recommender(settings: &Settings, pool: &deadpool_postgres::Pool, hot: &HotState) {
    agora_actors::recommender::Recommender::start(
        Arc::new(crate::recommendations::PgLearner {
            pool: pool.clone(),
            hot: hot.clone(),
            settings: settings.recommendations.clone(),
        }),
        Duration::from_millis(settings.recommendations.learn_interval_ms),
    );
}

fn accounts(
    settings: &Settings,
    pool: &deadpool_postgres::Pool,
    hot: &HotState,
    pricing: &crate::configuration::Pricing,
    counters: &StockCounters,
    credentials: &crate::credentials::CredentialCache,
) -> Accounts {
    let auth = &settings.auth;
    Accounts {
        pool: pool.clone(),
        credentials: credentials.clone(),
        passwords: PasswordHashing::new(auth.max_concurrent_password_hashes),
        session_ttl: Duration::from_secs(auth.session_ttl_hours.saturating_mul(3600)),
        throttle: SignInThrottle::new(
            hot.clone(),
            sign_in_throttle::Limits {
                per_account: auth.sign_in_failures_per_account,
                per_address: auth.sign_in_failures_per_address,
                window: Duration::from_secs(auth.sign_in_window_secs),
            },
        ),
        reset_throttle: SignInThrottle::for_password_resets(
            hot.clone(),
            sign_in_throttle::Limits {
                per_account: auth.password_resets_per_account,
                per_address: auth.password_resets_per_address,
                window: Duration::from_secs(auth.password_reset_window_secs),
            },
        ),
        reset_ttl: Duration::from_secs(auth.password_reset_ttl_mins.saturating_mul(60)),
        fx: pricing.fx.clone(),
        counters: counters.clone(),
    }
}

/// Records what mail written in SQL needs: the default locale and where people reach the
/// store (`http.public_url`, else this process's own address).
async fn record_mail_defaults(
    pool: &deadpool_postgres::Pool,
    http_settings: &crate::configuration::HttpSettings,
    default_locale: &str,
    addr: std::net::SocketAddr,
    port: u16,
) -> Result<(), StartupError> {
    let public_url = match http_settings.public_url.trim() {
        "" => format!("http://{}:{port}", addr.ip()),
        url => url.to_owned(),
    };
    let client = pool
        .get()
        .await
        .map_err(|e| StartupError::Prepare(e.into()))?;
    crate::mail::sync_defaults(
        &*client,
        &crate::mail::Defaults {
            locale: default_locale.to_owned(),
            public_url,
        },
    )
    .await
    .map_err(StartupError::Prepare)
}

/// Kernel options of every accepted TCP connection (`http.socket_*_buffer_bytes`,
/// `http.tcp_user_timeout_secs`); a zero leaves the kernel's default.
#[derive(Clone, Copy)]
struct ConnectionOptions {
    send_buffer_bytes: usize,
    recv_buffer_bytes: usize,
    user_timeout: Duration,
}

impl ConnectionOptions {
    /// A connection whose options cannot be set keeps the kernel's, and is counted.
    fn apply(self, connection: &dyn std::any::Any) {
        let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let socket = socket2::SockRef::from(stream);
        let set = (self.send_buffer_bytes == 0
            || socket.set_send_buffer_size(self.send_buffer_bytes).is_ok())
            && (self.recv_buffer_bytes == 0
                || socket.set_recv_buffer_size(self.recv_buffer_bytes).is_ok())
            && (self.user_timeout.is_zero()
                || socket.set_tcp_user_timeout(Some(self.user_timeout)).is_ok());
        if !set {
            metrics::counter!("agora_socket_option_errors_total").increment(1);
        }
    }
}

/// Resolves with the name of the first SIGTERM or SIGINT the process receives.
async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

/// Starts the inventory shards on the given arbiters (one per core), registers them for the graceful stop,
/// and starts the sweep that returns expired holds.
fn start_inventory(
    settings: &InventorySettings,
    pool: &deadpool_postgres::Pool,
    counters: &StockCounters,
    actors: &ActorRegistry,
    arbiters: &[Arbiter],
) -> InventoryShards {
    let arbiters: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
    let shards = InventoryShards::start(
        Arc::new(PgStockStore::new(pool.clone(), counters.clone())),
        settings.shards,
        &arbiters,
        BatchLimits {
            max_batch: settings.batch_max,
            max_wait: Duration::from_millis(settings.batch_max_wait_ms),
            max_pending: settings.max_queued_per_shard,
        },
    );
    for (index, shard) in shards.shards().iter().enumerate() {
        actors.register(format!("inventory-{index}"), shard.clone().recipient());
    }
    inventory::spawn_expiry_sweeper(
        pool.clone(),
        counters.clone(),
        Duration::from_millis(settings.expiry_sweep_interval_ms),
    );
    shards
}

/// Starts this process's flash-sale director: it leads the queues of the sales whose lease it
/// gets (see `flash_sales::keeper`). It runs on the server's own thread, so it stops with the
/// server's runtime; a queue's work is a few statements per tick.
fn start_flash_sale_director(
    settings: &Settings,
    hot: &HotState,
    counters: &StockCounters,
) -> Result<(), StartupError> {
    let mut own = settings.database.clone();
    own.max_connections = FLASH_SALE_QUEUE_CONNECTIONS;
    let keeper = PgSaleKeeper::new(
        db::build_pool(&own)?,
        hot.clone(),
        counters.clone(),
        settings.flash_sales.clone(),
    );
    let timing = QueueTiming {
        tick: Duration::from_millis(settings.flash_sales.queue_tick_ms),
        director_interval: Duration::from_millis(settings.flash_sales.director_interval_ms),
    };
    SaleDirector::new(keeper, timing).start_supervised();
    Ok(())
}

/// The HTTP server of every route, on `addr`, with this process's connection settings; answers
/// it with the port it bound.
fn serve(
    state: web::Data<AppState>,
    hubs: Hubs,
    http_settings: &crate::configuration::HttpSettings,
    addr: std::net::SocketAddr,
) -> Result<(actix_web::dev::Server, u16), StartupError> {
    let max_body_bytes = http_settings.max_body_bytes;
    let request_limit = web::Data::new(http::overload::RequestLimit::new(
        http_settings.max_requests_in_flight,
    ));
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(http::middleware::observe))
            .app_data(state.clone())
            .app_data(request_limit.clone())
            .app_data(web::Data::new(LocalHub(hubs.start_local())))
            .configure(http::extract::configure(max_body_bytes))
            .configure(http::configure)
            .default_service(web::to(not_found))
    })
    .on_connect({
        let options = ConnectionOptions {
            send_buffer_bytes: http_settings.socket_send_buffer_bytes,
            recv_buffer_bytes: http_settings.socket_recv_buffer_bytes,
            user_timeout: Duration::from_secs(http_settings.tcp_user_timeout_secs),
        };
        move |connection, _| options.apply(connection)
    })
    .backlog(http_settings.backlog)
    .max_connections(http_settings.max_connections_per_worker)
    .keep_alive(Duration::from_secs(http_settings.keep_alive_secs))
    .client_request_timeout(Duration::from_millis(
        http_settings.client_request_timeout_ms,
    ))
    .shutdown_timeout(http_settings.shutdown_timeout_secs)
    // actix-server stops the whole actor system on a signal (and SIGINT without grace);
    // `run_until_stopped` handles both signals itself, gracefully, and keeps the actors
    // running until they have flushed.
    .disable_signals();
    if http_settings.workers > 0 {
        server = server.workers(http_settings.workers);
    }
    let server = server.bind(addr).map_err(|source| StartupError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let port = server
        .addrs()
        .first()
        .map_or(addr.port(), |bound| bound.port());
    Ok((server.run(), port))
}

async fn not_found() -> Result<actix_web::HttpResponse, Error> {
    Err(Error::NotFound("route"))
}
