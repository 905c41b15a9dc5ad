//! Postgres, the source of truth: the connection pool and the schema migrations.
//!
//! Promises: the pool never holds more than `database.max_connections` connections and a
//! caller waits at most `database.acquire_timeout_ms` for one; migrations run under a
//! Postgres advisory lock, so processes starting together apply each migration exactly once.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{types::ToSql, NoTls, Row, Statement};

use crate::configuration::DatabaseSettings;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Key of the advisory lock that serializes migrations across processes ("agora.mg").
const MIGRATION_LOCK_KEY: i64 = 0x6167_6f72_612e_6d67;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database settings: {0}")]
    Config(#[from] crate::configuration::ConfigError),
    #[error("could not build the Postgres pool")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("could not connect to Postgres")]
    Connect(#[source] tokio_postgres::Error),
    #[error("Postgres failed while migrating")]
    Query(#[from] tokio_postgres::Error),
    #[error("a migration failed")]
    Migration(#[from] refinery::Error),
}

/// Builds the pool; connections open lazily, on first use.
pub fn build_pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        settings.pg_config()?,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let acquire = Duration::from_millis(settings.acquire_timeout_ms);
    let connect = Duration::from_millis(settings.connect_timeout_ms);
    Ok(Pool::builder(manager)
        .max_size(settings.max_connections)
        .wait_timeout(Some(acquire))
        .create_timeout(Some(connect))
        .recycle_timeout(Some(connect))
        // The most recently used connection first: its prepared statements and their plans
        // are warm, and connections beyond what the load needs stay idle instead of each one
        // planning every statement afresh.
        .queue_mode(deadpool::managed::QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// Applies every pending migration on a dedicated connection, holding the migration lock.
pub async fn migrate(settings: &DatabaseSettings) -> Result<usize, DbError> {
    let (mut client, connection) = settings
        .pg_config()?
        .connect(NoTls)
        .await
        .map_err(DbError::Connect)?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "migration connection closed with an error");
        }
    });
    PreparedClient::execute(
        &client,
        "SELECT pg_advisory_lock($1)",
        &[&MIGRATION_LOCK_KEY],
    )
    .await?;
    let outcome = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut client)
        .await;
    // Closing the session releases the lock even if the unlock below cannot be sent.
    let unlocked = PreparedClient::execute(
        &client,
        "SELECT pg_advisory_unlock($1)",
        &[&MIGRATION_LOCK_KEY],
    )
    .await;
    drop(client);
    let _ = driver.await;
    let report = outcome?;
    unlocked?;
    for migration in report.applied_migrations() {
        tracing::info!(
            version = migration.version(),
            name = migration.name(),
            "applied migration"
        );
    }
    Ok(report.applied_migrations().len())
}

/// Runs one database operation (a query or a whole transaction) and records its latency under
/// `statement`, a fixed name per call site so the label set stays bounded.
pub async fn timed<T, E>(
    statement: &'static str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = work.await;
    metrics::histogram!("agora_db_query_duration_seconds", "statement" => statement)
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!("agora_db_query_errors_total", "statement" => statement).increment(1);
    }
    result
}

/// A connection or transaction that runs each SQL text as a prepared statement.
///
/// Why: `tokio_postgres` runs a query given as text by preparing an unnamed statement first,
/// which costs a second round trip and a fresh plan (1–2 ms of planning for the
/// recommendation queries, more than running them). Pooled connections keep their prepared
/// statements (deadpool's per-connection cache), so on them Postgres plans a statement a few
/// times and then reuses a generic plan. Only fixed SQL texts go through here (the cache keeps
/// every distinct text for the connection's lifetime); a bare `tokio_postgres` client prepares
/// each time, as before.
pub trait PreparedClient: Sync {
    /// The `tokio_postgres` client that runs the prepared statements.
    type Runner: tokio_postgres::GenericClient + Sync;

    fn runner(&self) -> &Self::Runner;

    /// `sql` prepared on this connection (from its cache, where it has one).
    fn statement(
        &self,
        sql: &str,
    ) -> impl std::future::Future<Output = Result<Statement, tokio_postgres::Error>> + Send;

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.statement(sql).await?;
            tokio_postgres::GenericClient::query(self.runner(), &statement, params).await
        }
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Option<Row>, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.statement(sql).await?;
            tokio_postgres::GenericClient::query_opt(self.runner(), &statement, params).await
        }
    }

    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Row, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.statement(sql).await?;
            tokio_postgres::GenericClient::query_one(self.runner(), &statement, params).await
        }
    }

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        async move {
            let statement = self.statement(sql).await?;
            tokio_postgres::GenericClient::execute(self.runner(), &statement, params).await
        }
    }

    /// Runs a set-based statement over arrays (a batch's rows), planned afresh for each call.
    ///
    /// Why not prepared: the right plan depends on the arrays' lengths and on the tables'
    /// sizes, and a cached generic plan made while a table was small (a join by sequential
    /// scan) stays until the table is next analyzed, scanning the whole table per batch. One
    /// plan per batch costs little next to the batch's rows.
    fn execute_planned_per_call(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send {
        async move { tokio_postgres::GenericClient::execute(self.runner(), sql, params).await }
    }

    /// `execute_planned_per_call` for a statement with rows to read.
    fn query_planned_per_call(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move { tokio_postgres::GenericClient::query(self.runner(), sql, params).await }
    }
}

impl PreparedClient for deadpool_postgres::ClientWrapper {
    type Runner = tokio_postgres::Client;

    fn runner(&self) -> &Self::Runner {
        self
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        self.prepare_cached(sql).await
    }
}

impl<'a> PreparedClient for deadpool_postgres::Transaction<'a> {
    type Runner = tokio_postgres::Transaction<'a>;

    fn runner(&self) -> &Self::Runner {
        self
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        self.prepare_cached(sql).await
    }
}

impl PreparedClient for tokio_postgres::Client {
    type Runner = Self;

    fn runner(&self) -> &Self {
        self
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        self.prepare(sql).await
    }
}

impl<'a> PreparedClient for tokio_postgres::Transaction<'a> {
    type Runner = Self;

    fn runner(&self) -> &Self {
        self
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        self.prepare(sql).await
    }
}

/// Declares a state kept in Postgres as text (a `CHECK (state IN (…))` column): an enum with
/// its text, read and written as that text by tokio-postgres and serde, so code compares
/// variants instead of strings.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// As stored and as clients see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} {text:?}", stringify!($name)))
                })
            }
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Self::parse(text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($name)).into())
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }

        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }
    };
}
