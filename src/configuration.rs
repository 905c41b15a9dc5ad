//! Typed settings, layered: the defaults compiled in from `config/default.toml`, then the files
//! `config/default.toml` and `config/$AGORA_ENV.toml` found in the config directory, then
//! environment variables `AGORA__SECTION__KEY`.
//!
//! Promises: a loaded [`Settings`] has been validated, so a bad value fails at start with one
//! [`ConfigError`] line naming the key; secrets (connection URLs) are [`SecretString`]s whose
//! `Debug` output is redacted, so logging the settings never leaks them.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};

use crate::money::{Currency, FxRates};
use serde::Deserialize;

/// The defaults, compiled in so that the binary starts from any working directory.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Longest Redis key prefix accepted; every key carries it, so it is kept short.
const MAX_REDIS_PREFIX_LEN: usize = 64;

mod mail;
pub use mail::{MailSettings, SmtpEndpoint};

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub health: HealthSettings,
    pub auth: AuthSettings,
    pub operator: OperatorSettings,
    pub inventory: InventorySettings,
    pub carts: CartSettings,
    pub payments: PaymentSettings,
    pub checkout: CheckoutSettings,
    pub flash_sales: FlashSaleSettings,
    pub returns: ReturnSettings,
    pub recommendations: RecommendationSettings,
    pub catalog: CatalogSettings,
    pub fx: FxSettings,
    pub log: LogSettings,
    pub mail: MailSettings,
    pub accounts: AccountSettings,
}

/// Shoppers' accounts after they are deleted.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountSettings {
    /// Days a deleted shopper's orders keep their contact email and shipping address (for the
    /// books) before the upkeep erases them.
    pub order_retention_days: u32,
    /// Seconds between the upkeep's passes (retention, old sent mail).
    pub upkeep_interval_secs: u64,
}

/// After the sale: how long shoppers may ask to send shipped units back.
#[derive(Debug, Clone, Deserialize)]
pub struct ReturnSettings {
    /// Days after a line's latest shipment during which its units may be returned.
    pub window_days: u32,
}

impl ReturnSettings {
    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.window_days) * 86_400)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub addr: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub keep_alive_secs: u64,
    pub client_request_timeout_ms: u64,
    pub max_connections_per_worker: usize,
    pub max_requests_in_flight: usize,
    pub backlog: u32,
    /// Kernel send buffer of every accepted connection, in bytes (0: the kernel's autotuning).
    pub socket_send_buffer_bytes: usize,
    /// Kernel receive buffer of every accepted connection, in bytes (0: the kernel's
    /// autotuning).
    pub socket_recv_buffer_bytes: usize,
    /// Seconds the kernel lets sent data go unacknowledged, or wait behind a peer's shut
    /// receive window, before it aborts the connection (`TCP_USER_TIMEOUT`; 0: never).
    pub tcp_user_timeout_secs: u64,
    /// Where browsers reach the store; empty: `http://` + `addr`.
    #[serde(default)]
    pub public_url: String,
}

impl HttpSettings {
    /// Whether browsers reach the store over https (its cookies are then `Secure`).
    pub fn served_over_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: usize,
    pub acquire_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
    pub prefix: String,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthSettings {
    pub check_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub session_ttl_hours: u64,
    pub max_concurrent_password_hashes: usize,
    /// Failed sign-ins one account may have in a window before sign-ins to it get 429.
    pub sign_in_failures_per_account: u64,
    /// Failed sign-ins one client address may have in a window before its sign-ins get 429.
    pub sign_in_failures_per_address: u64,
    /// The sliding window failed sign-ins are counted in, in seconds.
    pub sign_in_window_secs: u64,
    /// Minutes a password-reset link stays valid (it works once).
    pub password_reset_ttl_mins: u64,
    /// Password resets one account, or one client address, may ask for in a window before
    /// asking gets 429.
    pub password_resets_per_account: u64,
    pub password_resets_per_address: u64,
    /// The sliding window password resets are counted in, in seconds.
    pub password_reset_window_secs: u64,
    /// Answers of 401 one client address may draw in a window before its requests that would
    /// get 401 get 429 instead (`crate::unauthorized_budget`).
    pub unauthorized_per_address: u64,
    /// The sliding window those 401s are counted in, in seconds.
    pub unauthorized_window_secs: u64,
    /// Milliseconds a process trusts what Postgres said of a session token or API key (0:
    /// every request reads it); revocations are announced to every process at once anyway.
    pub credential_cache_ttl_ms: u64,
    /// Most credentials one process remembers (full: it forgets them all and refills).
    pub credential_cache_entries: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OperatorSettings {
    pub token: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InventorySettings {
    pub shards: usize,
    pub batch_max: usize,
    pub batch_max_wait_ms: u64,
    pub max_queued_per_shard: usize,
    pub hold_ttl_secs: u64,
    pub expiry_sweep_interval_ms: u64,
    /// Milliseconds a stock counter lives in Redis before it is rebuilt from Postgres.
    pub counter_ttl_ms: u64,
}

/// Live cart actors (`agora_actors::cart`).
#[derive(Debug, Clone, Deserialize)]
pub struct CartSettings {
    /// Most carts with a live actor in one process; a change to one more gets 503.
    pub max_live: usize,
    /// Most changes sent to one cart and not finished; one more gets 429.
    pub max_queued_changes: usize,
    /// Seconds without a change after which a cart's actor is passivated.
    pub idle_secs: u64,
    /// Milliseconds a cart's actor answers line changes from the cart as it loaded it (prices,
    /// titles, held units) before it reads it again.
    pub state_ttl_ms: u64,
}

impl CartSettings {
    pub fn limits(&self) -> agora_actors::cart::CartLimits {
        agora_actors::cart::CartLimits {
            max_live: self.max_live,
            max_queued: self.max_queued_changes,
            idle: std::time::Duration::from_secs(self.idle_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    pub timeout_ms: u64,
    pub sandbox_latency_ms: u64,
    pub reconcile_interval_ms: u64,
    pub reconcile_after_ms: u64,
}

/// How checkout writes orders: through the commit group (`commit_group`).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSettings {
    /// Writers, each writing one batch at a time on one pooled connection.
    pub commit_writers: usize,
    /// Most checkout writes one transaction carries.
    pub commit_batch_max: usize,
    /// Most checkout writes waiting for a writer; beyond it a checkout is answered 503.
    pub commit_queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FlashSaleSettings {
    pub queue_tick_ms: u64,
    pub director_interval_ms: u64,
    pub leader_lease_ms: u64,
    pub admit_per_sec: u64,
    pub admission_window_secs: u64,
    pub position_interval_ms: u64,
    pub rate_limit_requests: u64,
    pub rate_limit_window_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecommendationSettings {
    pub learn_interval_ms: u64,
    pub neighbours: i64,
    pub batch: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogSettings {
    pub default_locale: String,
    pub default_currency: String,
    pub product_cache_ttl_secs: u64,
    pub listing_max_age_secs: u64,
    pub listing_stale_while_revalidate_secs: u64,
    pub product_max_age_secs: u64,
    pub product_stale_while_revalidate_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FxSettings {
    pub base: String,
    pub rates: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A setting that cannot be used, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or environment variable could not be read or did not match the settings' types;
    /// the `config` crate's message names the key.
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("{key} (env {env}): {problem}")]
    Invalid {
        key: &'static str,
        env: String,
        problem: String,
    },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        env: format!("AGORA__{}", key.replace('.', "__").to_uppercase()),
        problem: problem.into(),
    }
}

/// Fails with `problem` on the first of `values` (by key) that is 0.
fn require_nonzero(values: &[(&'static str, u64)], problem: &str) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value)| *value == 0) {
        Some(&(key, _)) => Err(invalid(key, problem)),
        None => Ok(()),
    }
}

impl Settings {
    /// Loads settings from `$AGORA_CONFIG_DIR` (default `./config`), `$AGORA_ENV` (default
    /// `local`) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let dir = std::env::var_os("AGORA_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let env = std::env::var("AGORA_ENV").unwrap_or_else(|_| "local".to_owned());
        Self::load_from(&dir, &env)
    }

    /// Loads settings from an explicit config directory and environment name (tests use this).
    pub fn load_from(dir: &std::path::Path, env: &str) -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from(dir.join("default.toml")).required(false))
            .add_source(config::File::from(dir.join(format!("{env}.toml"))).required(false))
            .add_source(
                config::Environment::with_prefix("AGORA")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value that its type alone does not constrain; the first bad one found is
    /// the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_http()?;
        self.check_database()?;
        self.check_connection_timeouts()?;
        self.check_redis()?;
        self.check_queue_limits()?;
        self.check_payment_timeouts()?;
        self.check_flash_sale_intervals()?;
        self.check_recommendations()?;
        self.check_lease_and_reconcile_margins()?;
        self.check_auth()?;
        self.check_mail()?;
        self.check_pricing_locale_and_log()
    }

    /// The listening address, and the request and connection limits.
    fn check_http(&self) -> Result<(), ConfigError> {
        self.http_addr()?;
        if self.http.max_body_bytes == 0 {
            return Err(invalid("http.max_body_bytes", "must be at least 1"));
        }
        if self.http.max_requests_in_flight == 0 {
            return Err(invalid("http.max_requests_in_flight", "must be at least 1"));
        }
        if self.http.max_connections_per_worker == 0 {
            return Err(invalid(
                "http.max_connections_per_worker",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The Postgres URL and pool size.
    fn check_database(&self) -> Result<(), ConfigError> {
        self.database.pg_config()?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        Ok(())
    }

    /// The Postgres, Redis and health-check timeouts.
    fn check_connection_timeouts(&self) -> Result<(), ConfigError> {
        require_nonzero(
            &[
                (
                    "database.acquire_timeout_ms",
                    self.database.acquire_timeout_ms,
                ),
                (
                    "database.connect_timeout_ms",
                    self.database.connect_timeout_ms,
                ),
                ("redis.connect_timeout_ms", self.redis.connect_timeout_ms),
                ("redis.response_timeout_ms", self.redis.response_timeout_ms),
                ("health.check_timeout_ms", self.health.check_timeout_ms),
            ],
            "must be at least 1 millisecond",
        )
    }

    /// The Redis URL and key prefix.
    fn check_redis(&self) -> Result<(), ConfigError> {
        self.redis.client()?;
        let prefix = &self.redis.prefix;
        if prefix.is_empty() || prefix.len() > MAX_REDIS_PREFIX_LEN {
            return Err(invalid(
                "redis.prefix",
                format!("must be 1 to {MAX_REDIS_PREFIX_LEN} characters"),
            ));
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(invalid(
                "redis.prefix",
                "may hold only ASCII letters, digits and - _ . : (braces would break hash tags)",
            ));
        }
        Ok(())
    }

    /// The sizes and intervals of inventory shards, live carts and the checkout commit group,
    /// and that the commit group leaves the pool connections for the rest.
    fn check_queue_limits(&self) -> Result<(), ConfigError> {
        require_nonzero(
            &[
                ("inventory.shards", self.inventory.shards as u64),
                ("inventory.batch_max", self.inventory.batch_max as u64),
                (
                    "inventory.max_queued_per_shard",
                    self.inventory.max_queued_per_shard as u64,
                ),
                ("inventory.hold_ttl_secs", self.inventory.hold_ttl_secs),
                (
                    "inventory.expiry_sweep_interval_ms",
                    self.inventory.expiry_sweep_interval_ms,
                ),
                ("inventory.counter_ttl_ms", self.inventory.counter_ttl_ms),
                ("carts.max_live", self.carts.max_live as u64),
                (
                    "carts.max_queued_changes",
                    self.carts.max_queued_changes as u64,
                ),
                ("carts.idle_secs", self.carts.idle_secs),
                (
                    "checkout.commit_writers",
                    self.checkout.commit_writers as u64,
                ),
                (
                    "checkout.commit_batch_max",
                    self.checkout.commit_batch_max as u64,
                ),
                ("checkout.commit_queue", self.checkout.commit_queue as u64),
            ],
            "must be at least 1",
        )?;
        if self.checkout.commit_writers >= self.database.max_connections {
            return Err(invalid(
                "checkout.commit_writers",
                "must be below database.max_connections (each writer holds a connection while it writes)",
            ));
        }
        Ok(())
    }

    /// The payment gateway timeout and the reconciler's interval.
    fn check_payment_timeouts(&self) -> Result<(), ConfigError> {
        require_nonzero(
            &[
                ("payments.timeout_ms", self.payments.timeout_ms),
                (
                    "payments.reconcile_interval_ms",
                    self.payments.reconcile_interval_ms,
                ),
            ],
            "must be at least 1 millisecond",
        )
    }

    /// The flash-sale queue's intervals, admission window and rate limit.
    fn check_flash_sale_intervals(&self) -> Result<(), ConfigError> {
        require_nonzero(
            &[
                ("flash_sales.queue_tick_ms", self.flash_sales.queue_tick_ms),
                (
                    "flash_sales.director_interval_ms",
                    self.flash_sales.director_interval_ms,
                ),
                (
                    "flash_sales.admission_window_secs",
                    self.flash_sales.admission_window_secs,
                ),
                (
                    "flash_sales.position_interval_ms",
                    self.flash_sales.position_interval_ms,
                ),
                (
                    "flash_sales.rate_limit_requests",
                    self.flash_sales.rate_limit_requests,
                ),
                (
                    "flash_sales.rate_limit_window_secs",
                    self.flash_sales.rate_limit_window_secs,
                ),
            ],
            "must be at least 1",
        )
    }

    /// The recommendation learner's interval and sizes (a negative size counts as 0).
    fn check_recommendations(&self) -> Result<(), ConfigError> {
        require_nonzero(
            &[
                (
                    "recommendations.learn_interval_ms",
                    self.recommendations.learn_interval_ms,
                ),
                (
                    "recommendations.neighbours",
                    u64::try_from(self.recommendations.neighbours).unwrap_or(0),
                ),
                (
                    "recommendations.batch",
                    u64::try_from(self.recommendations.batch).unwrap_or(0),
                ),
            ],
            "must be at least 1",
        )
    }

    /// Durations that must leave room for others: the queue lease over its ticks, the
    /// reconciler's patience over a payment's timeouts.
    fn check_lease_and_reconcile_margins(&self) -> Result<(), ConfigError> {
        // A queue renews its lease every tick: the lease must outlast a few of them.
        if self.flash_sales.leader_lease_ms < 3 * self.flash_sales.queue_tick_ms {
            return Err(invalid(
                "flash_sales.leader_lease_ms",
                "must be at least three times flash_sales.queue_tick_ms",
            ));
        }
        // A checkout still waiting for the gateway must not be taken for abandoned.
        if self.payments.reconcile_after_ms <= 2 * self.payments.timeout_ms {
            return Err(invalid(
                "payments.reconcile_after_ms",
                "must exceed twice payments.timeout_ms (an authorization and a void)",
            ));
        }
        Ok(())
    }

    /// The session lifetime, the password-hashing concurrency and the credential cache's size.
    fn check_auth(&self) -> Result<(), ConfigError> {
        if self.auth.session_ttl_hours == 0 {
            return Err(invalid("auth.session_ttl_hours", "must be at least 1"));
        }
        if self.auth.max_concurrent_password_hashes == 0 {
            return Err(invalid(
                "auth.max_concurrent_password_hashes",
                "must be at least 1",
            ));
        }
        if self.auth.credential_cache_entries == 0 {
            return Err(invalid(
                "auth.credential_cache_entries",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The SMTP URL and sender (parsed as the sender will), the sender's sizes and intervals,
    /// the password-reset window and the upkeep interval.
    fn check_mail(&self) -> Result<(), ConfigError> {
        require_nonzero(
            &[
                ("mail.poll_interval_ms", self.mail.poll_interval_ms),
                ("mail.batch_size", u64::from(self.mail.batch_size)),
                ("mail.max_attempts", u64::from(self.mail.max_attempts)),
                ("mail.retry_base_ms", self.mail.retry_base_ms),
                ("mail.send_timeout_secs", self.mail.send_timeout_secs),
                (
                    "accounts.upkeep_interval_secs",
                    self.accounts.upkeep_interval_secs,
                ),
                (
                    "auth.password_reset_ttl_mins",
                    self.auth.password_reset_ttl_mins,
                ),
                (
                    "auth.password_reset_window_secs",
                    self.auth.password_reset_window_secs,
                ),
            ],
            "must be at least 1",
        )?;
        self.mail.check()
    }

    /// The exchange rates and default currency, the default locale and the log filter.
    fn check_pricing_locale_and_log(&self) -> Result<(), ConfigError> {
        self.pricing()?;
        crate::locale::Locale::parse(&self.catalog.default_locale)
            .map_err(|e| invalid("catalog.default_locale", e.to_string()))?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", format!("not a valid filter: {e}")))?;
        Ok(())
    }

    pub fn http_addr(&self) -> Result<SocketAddr, ConfigError> {
        SocketAddr::from_str(&self.http.addr).map_err(|_| {
            invalid(
                "http.addr",
                format!(
                    "{:?} is not an IP address with a port, e.g. 127.0.0.1:8080",
                    self.http.addr
                ),
            )
        })
    }
}

impl Settings {
    /// The store's exchange rates; environment keys arrive lower-cased, so codes are
    /// upper-cased first.
    pub fn fx_rates(&self) -> Result<FxRates, ConfigError> {
        let base = Currency::from_code(&self.fx.base.to_ascii_uppercase())
            .ok_or_else(|| invalid("fx.base", "not an ISO 4217 currency with minor units"))?;
        let mut rates = Vec::with_capacity(self.fx.rates.len());
        for (code, rate) in &self.fx.rates {
            let currency = Currency::from_code(&code.to_ascii_uppercase()).ok_or_else(|| {
                invalid(
                    "fx.rates",
                    format!("{code:?} is not an ISO 4217 currency with minor units"),
                )
            })?;
            let rate = Decimal::from_str_exact(rate.trim())
                .ok()
                .filter(|rate| rate.is_sign_positive() && !rate.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "fx.rates",
                        format!("the rate of {code} must be a positive decimal string"),
                    )
                })?;
            rates.push((currency, rate));
        }
        Ok(FxRates::new(base, rates))
    }

    /// The exchange rates and the default currency, parsed together (done once at start).
    pub fn pricing(&self) -> Result<Pricing, ConfigError> {
        let fx = self.fx_rates()?;
        let default_currency =
            Currency::from_code(&self.catalog.default_currency.to_ascii_uppercase())
                .filter(|currency| fx.supports(*currency))
                .ok_or_else(|| {
                    invalid(
                        "catalog.default_currency",
                        "must be fx.base or one of the currencies in fx.rates",
                    )
                })?;
        Ok(Pricing {
            fx,
            default_currency,
        })
    }
}

/// How the store prices: its exchange rates and the currency used when a request names none.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub fx: FxRates,
    pub default_currency: Currency,
}

impl DatabaseSettings {
    /// The parsed connection settings, with the configured timeouts applied.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, ConfigError> {
        // The parser's message never repeats the URL, so it cannot leak the password.
        let mut config = tokio_postgres::Config::from_str(self.url.expose_secret())
            .map_err(|e| invalid("database.url", format!("not a Postgres URL: {e}")))?;
        if config.get_dbname().is_none() {
            return Err(invalid("database.url", "names no database"));
        }
        config.connect_timeout(Duration::from_millis(self.connect_timeout_ms));
        // The API's queries touch a few rows each: parallel workers would only add start-up
        // latency and compete with the other requests for the cores.
        config.options(format!(
            "-c statement_timeout={} -c max_parallel_workers_per_gather=0",
            self.statement_timeout_ms
        ));
        config.application_name("agora");
        Ok(config)
    }
}

impl RedisSettings {
    pub fn client(&self) -> Result<redis::Client, ConfigError> {
        redis::Client::open(self.url.expose_secret())
            .map_err(|e| invalid("redis.url", format!("not a Redis URL: {:?}", e.kind())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
        Settings::load_from(&dir, "none-such").expect("defaults load")
    }

    #[test]
    fn the_compiled_in_defaults_are_valid() {
        let settings = defaults();
        assert_eq!(settings.http.addr, "127.0.0.1:8080");
        assert_eq!(settings.redis.prefix, "agora");
    }

    #[test]
    fn a_bad_address_names_its_key_and_env_var() {
        let mut settings = defaults();
        settings.http.addr = "nonsense".into();
        let message = settings.validate().expect_err("must fail").to_string();
        assert!(
            message.starts_with("http.addr (env AGORA__HTTP__ADDR)"),
            "{message}"
        );
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        let mut settings = defaults();
        settings.redis.prefix = "a{b}".into();
        let message = settings.validate().expect_err("must fail").to_string();
        assert!(message.starts_with("redis.prefix"), "{message}");
    }

    #[test]
    fn exchange_rates_must_be_positive_and_name_real_currencies() {
        let mut settings = defaults();
        settings.fx.rates.insert("usd".into(), "0".into());
        let message = settings.validate().expect_err("must fail").to_string();
        assert!(message.starts_with("fx.rates"), "{message}");
        settings.fx.rates.insert("usd".into(), "1.1".into());
        settings.fx.rates.insert("ABC".into(), "1.1".into());
        assert!(settings.validate().is_err());
    }

    #[test]
    fn the_default_currency_must_be_one_the_store_sells_in() {
        let mut settings = defaults();
        settings.catalog.default_currency = "BRL".into();
        let message = settings.validate().expect_err("must fail").to_string();
        assert!(message.starts_with("catalog.default_currency"), "{message}");
    }

    #[test]
    fn mail_settings_are_checked_as_the_sender_reads_them() {
        let mut settings = defaults();
        assert!(!settings.mail.sending(), "no SMTP server by default");
        settings.mail.smtp_url = SecretString::from("smtp://127.0.0.1:2525");
        assert!(settings.validate().is_ok());
        settings.mail.smtp_url =
            SecretString::from("smtp://mailer:p%40ss@relay.example/shop.example");
        let endpoint = settings
            .mail
            .smtp_endpoint()
            .expect("valid")
            .expect("sending");
        assert_eq!(
            (endpoint.host.as_str(), endpoint.port),
            ("relay.example", 25)
        );
        assert_eq!(
            endpoint.credentials,
            Some(("mailer".to_owned(), "p@ss".to_owned()))
        );
        assert_eq!(endpoint.hello_name.as_deref(), Some("shop.example"));
        assert!(!format!("{endpoint:?}").contains("p@ss"));
        settings.mail.smtp_url = SecretString::from("smtp://127.0.0.1:port");
        assert!(settings.validate().is_err());
        settings.mail.smtp_url = SecretString::from("ftp://127.0.0.1");
        let message = settings.validate().expect_err("must fail").to_string();
        assert!(message.starts_with("mail.smtp_url"), "{message}");
        settings.mail.smtp_url = SecretString::from("");
        settings.mail.from = "not a mailbox".into();
        let message = settings.validate().expect_err("must fail").to_string();
        assert!(message.starts_with("mail.from"), "{message}");
    }

    #[test]
    fn debug_output_never_shows_the_database_password() {
        let mut settings = defaults();
        settings.database.url = SecretString::from("postgres://u:hunter2@localhost/agora");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
