//! Test support for this and other crates: an isolated PostgreSQL schema per test (so tests run in
//! parallel against one database) and a throwaway SQLite file, each giving a URL for [`Store::connect`].
//!
//! ```no_run
//! # async fn example() -> Result<(), alpha_panda_store::StoreError> {
//! use alpha_panda_store::{testing::TestStore, SqlBackend};
//! let db = TestStore::new(SqlBackend::Postgres).await?; // fresh schema, migrated
//! db.store.ping().await?;
//! db.cleanup().await?; // drops the schema
//! # Ok(()) }
//! ```

use sqlx::Connection;

use crate::{redact_url, SqlBackend, Store, StoreError};

/// The PostgreSQL every machine (and CI) provides for tests.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Environment variable that overrides [`DEFAULT_TEST_POSTGRES_URL`].
pub const TEST_POSTGRES_URL_ENV: &str = "ALPHA_PANDA_TEST_POSTGRES_URL";

/// Prefix of every schema created here, so leftovers of crashed tests are easy to find and drop.
pub const TEST_SCHEMA_PREFIX: &str = "ap_test_";

/// A freshly created, empty PostgreSQL schema; [`PostgresSchema::url`] points every connection's
/// `search_path` at it.
#[derive(Debug)]
pub struct PostgresSchema {
    base_url: String,
    schema: String,
    url: String,
}

/// Creates an isolated schema on the test database; use `.url()` with [`Store::connect`] and call
/// [`PostgresSchema::drop_schema`] when done.
///
/// # Errors
/// [`StoreError::Connect`] when the test database is unreachable.
pub async fn fresh_postgres_url() -> Result<PostgresSchema, StoreError> {
    PostgresSchema::create().await
}

impl PostgresSchema {
    /// Creates a schema on `$ALPHA_PANDA_TEST_POSTGRES_URL` or [`DEFAULT_TEST_POSTGRES_URL`].
    ///
    /// # Errors
    /// [`StoreError::Connect`] when the test database is unreachable.
    pub async fn create() -> Result<Self, StoreError> {
        let base = std::env::var(TEST_POSTGRES_URL_ENV)
            .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned());
        Self::create_at(&base).await
    }

    /// Creates a schema on the database at `base_url`.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`] for a bad URL, [`StoreError::Connect`] when unreachable.
    pub async fn create_at(base_url: &str) -> Result<Self, StoreError> {
        let schema = format!("{TEST_SCHEMA_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let mut url = url::Url::parse(base_url).map_err(|e| StoreError::InvalidUrl {
            backend: SqlBackend::Postgres,
            url: redact_url(base_url),
            reason: e.to_string(),
        })?;
        url.query_pairs_mut()
            .append_pair("options[search_path]", &schema);
        let mut conn = admin_connection(base_url).await?;
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut conn)
            .await
            .map_err(|e| StoreError::from_sqlx("create test schema", e))?;
        let _ = conn.close().await;
        Ok(Self {
            base_url: base_url.to_owned(),
            schema,
            url: url.to_string(),
        })
    }

    /// The URL to pass to [`Store::connect`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema and everything in it. Close stores using it first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database is unreachable.
    pub async fn drop_schema(self) -> Result<(), StoreError> {
        let mut conn = admin_connection(&self.base_url).await?;
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.schema
        ))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::from_sqlx("drop test schema", e))?;
        let _ = conn.close().await;
        Ok(())
    }
}

async fn admin_connection(base_url: &str) -> Result<sqlx::PgConnection, StoreError> {
    sqlx::PgConnection::connect(base_url)
        .await
        .map_err(|source| StoreError::Connect {
            backend: SqlBackend::Postgres,
            url: redact_url(base_url),
            source,
        })
}

/// A SQLite database file in its own temporary directory, removed on drop.
#[derive(Debug)]
pub struct SqliteFile {
    _dir: tempfile::TempDir,
    url: String,
}

impl SqliteFile {
    /// Creates the temporary directory (`db/alpha.db` inside it is created on connect, proving the
    /// store creates missing directories).
    ///
    /// # Errors
    /// [`StoreError::CreateDirectory`] when no temporary directory can be made.
    pub async fn create() -> Result<Self, StoreError> {
        let dir = tokio::task::spawn_blocking(tempfile::tempdir)
            .await
            .map_err(|e| StoreError::Task {
                reason: e.to_string(),
            })?
            .map_err(|source| StoreError::CreateDirectory {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?;
        let path = dir.path().join("db").join("alpha.db");
        Ok(Self {
            url: format!("sqlite://{}", path.display()),
            _dir: dir,
        })
    }

    /// The URL to pass to [`Store::connect`].
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[derive(Debug)]
enum Isolation {
    Postgres(PostgresSchema),
    Sqlite(SqliteFile),
}

/// A migrated [`Store`] on its own schema or file.
#[derive(Debug)]
pub struct TestStore {
    /// The store.
    pub store: Store,
    isolation: Isolation,
}

impl TestStore {
    /// A fresh, migrated store on `backend`.
    ///
    /// # Errors
    /// A [`StoreError`] when the database is unreachable or migrations fail.
    pub async fn new(backend: SqlBackend) -> Result<Self, StoreError> {
        let this = Self::unmigrated(backend).await?;
        this.store.migrate().await?;
        Ok(this)
    }

    /// A fresh store on `backend` with no migrations applied.
    ///
    /// # Errors
    /// A [`StoreError`] when the database is unreachable.
    pub async fn unmigrated(backend: SqlBackend) -> Result<Self, StoreError> {
        let isolation = match backend {
            SqlBackend::Postgres => Isolation::Postgres(PostgresSchema::create().await?),
            SqlBackend::Sqlite => Isolation::Sqlite(SqliteFile::create().await?),
        };
        let url = match &isolation {
            Isolation::Postgres(schema) => schema.url(),
            Isolation::Sqlite(file) => file.url(),
        };
        let store = Store::connect(url).await?;
        Ok(Self { store, isolation })
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        match &self.isolation {
            Isolation::Postgres(schema) => schema.url(),
            Isolation::Sqlite(file) => file.url(),
        }
    }

    /// Closes the store and drops its schema (PostgreSQL) or its file (SQLite).
    ///
    /// # Errors
    /// A [`StoreError`] when the schema cannot be dropped.
    pub async fn cleanup(self) -> Result<(), StoreError> {
        self.store.close().await;
        match self.isolation {
            Isolation::Postgres(schema) => schema.drop_schema().await,
            // Removing the directory is blocking file-system work.
            Isolation::Sqlite(file) => tokio::task::spawn_blocking(move || drop(file))
                .await
                .map_err(|e| StoreError::Task {
                    reason: e.to_string(),
                }),
        }
    }
}
