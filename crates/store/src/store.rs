//! [`Store`]: the handle services hold — a pool on either backend, migrations, and the repositories.

use std::fmt;
use std::time::Duration;

use crate::backend::open_pool;
use crate::migrations::{self, SchemaDescription};
use crate::sql::Pool;
use crate::{
    Checkpoints, Instruments, KillSwitches, Leases, Ledger, PnlSnapshots, RefreshTokens,
    SqlBackend, StoreError, StoreTx, StrategyConfigurations, TradingSessions, Users,
};

/// SQL persistence over PostgreSQL or SQLite. Cheap to clone (the pool is shared); services never
/// know which backend they hold.
#[derive(Clone)]
pub struct Store {
    backend: SqlBackend,
    pool: Pool,
    lease_ttl: Duration,
}

/// How long a service lease lasts unless renewed (see [`Store::with_lease_ttl`]).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `postgres://USER[:PASSWORD]@HOST:PORT/DB` or `sqlite://PATH` (the file and its
    /// directory are created if missing; WAL journal, busy timeout [`crate::SQLITE_BUSY_TIMEOUT`]).
    /// `sqlite::memory:` gives a private in-memory database. Does not migrate.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedScheme`] / [`StoreError::InvalidUrl`] for a bad URL,
    /// [`StoreError::CreateDirectory`] when the SQLite directory cannot be made,
    /// [`StoreError::Connect`] when the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let (backend, pool) = open_pool(url).await?;
        Ok(Store {
            backend,
            pool,
            lease_ttl: DEFAULT_LEASE_TTL,
        })
    }

    /// The same store, whose services' leases last `ttl` unless renewed: how long a standby waits
    /// after its writer died before it takes over.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Store {
        self.lease_ttl = ttl;
        self
    }

    /// How long a service lease lasts unless renewed.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> SqlBackend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies every pending migration; returns the names applied (`0001_initial_schema`, …).
    ///
    /// # Errors
    /// [`StoreError::Migration`] when a migration fails or an applied one was changed.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        migrations::run(self).await
    }

    /// Names of the embedded migrations not yet applied, in order (empty when current).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        migrations::pending(self).await
    }

    /// Readiness: one round trip to the database.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] (or another class) when the database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.fetch_optional("ping", "SELECT 1", &[]).await?;
        Ok(())
    }

    /// The tables, columns and named indexes of the connected schema.
    ///
    /// # Errors
    /// A [`StoreError`] when the catalogue cannot be read.
    pub async fn describe_schema(&self) -> Result<SchemaDescription, StoreError> {
        migrations::describe(self).await
    }

    /// Opens one transaction for a handler's effects and its checkpoint; dropped uncommitted, it rolls
    /// back and leaves nothing.
    ///
    /// # Errors
    /// A [`StoreError`] when no connection is available.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(StoreTx::new(self.pool.begin().await?))
    }

    /// Closes every pooled connection; later calls fail as unavailable.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    /// Dashboard users.
    pub fn users(&self) -> Users<'_> {
        Users::new(&self.pool)
    }

    /// Kite access tokens.
    pub fn trading_sessions(&self) -> TradingSessions<'_> {
        TradingSessions::new(&self.pool)
    }

    /// Strategy configurations.
    pub fn strategy_configurations(&self) -> StrategyConfigurations<'_> {
        StrategyConfigurations::new(&self.pool)
    }

    /// The instruments master.
    pub fn instruments(&self) -> Instruments<'_> {
        Instruments::new(&self.pool)
    }

    /// Recorded PnL snapshots.
    pub fn pnl_snapshots(&self) -> PnlSnapshots<'_> {
        PnlSnapshots::new(&self.pool)
    }

    /// Recorded orders and fills.
    pub fn ledger(&self) -> Ledger<'_> {
        Ledger::new(&self.pool)
    }

    /// Service checkpoints (state + offsets).
    pub fn checkpoints(&self) -> Checkpoints<'_> {
        Checkpoints::new(&self.pool)
    }

    /// Service leases (one writer per state).
    pub fn leases(&self) -> Leases<'_> {
        Leases::new(&self.pool)
    }

    /// The per-namespace kill switches.
    pub fn kill_switches(&self) -> KillSwitches<'_> {
        KillSwitches::new(&self.pool)
    }

    /// The API's refresh tokens.
    pub fn refresh_tokens(&self) -> RefreshTokens<'_> {
        RefreshTokens::new(&self.pool)
    }
}
