//! Choosing and opening a backend from a database URL: `postgres://…` or `sqlite://PATH`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection};

use crate::sql::Pool;
use crate::StoreError;

/// How long a SQLite writer waits for another writer's lock before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free pooled connection before the call fails as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which SQL database a [`crate::Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlBackend {
    /// PostgreSQL: production.
    Postgres,
    /// SQLite: the embedded default, one file under the data directory.
    Sqlite,
}

impl SqlBackend {
    /// The backend's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SqlBackend::Postgres => "postgres",
            SqlBackend::Sqlite => "sqlite",
        }
    }

    /// The backend a URL selects.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedScheme`] for anything but `postgres:`, `postgresql:` or `sqlite:`.
    pub fn from_url(url: &str) -> Result<SqlBackend, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(SqlBackend::Postgres),
            "sqlite" => Ok(SqlBackend::Sqlite),
            _ => Err(StoreError::UnsupportedScheme {
                // Only the scheme, never the rest (it may hold a password).
                scheme: scheme.chars().take(32).collect(),
            }),
        }
    }
}

impl fmt::Display for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The URL with any password replaced by `****`, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("****"));
            }
            parsed.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://****@…"),
            _ => url.to_owned(),
        },
    }
}

/// Opens a pool for `url` and checks one connection works.
pub(crate) async fn open_pool(url: &str) -> Result<(SqlBackend, Pool), StoreError> {
    let backend = SqlBackend::from_url(url)?;
    let invalid = |reason: String| StoreError::InvalidUrl {
        backend,
        url: redact_url(url),
        reason,
    };
    match backend {
        SqlBackend::Postgres => {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| invalid(e.to_string()))?
                .application_name("alpha-panda");
            let connect_error = |source| StoreError::Connect {
                backend,
                url: redact_url(url),
                source,
            };
            // One direct attempt first: the pool would keep retrying a refused connection until its
            // acquire timeout, while a wrong host or password should fail at once with its cause.
            let probe = PgConnection::connect_with(&options)
                .await
                .map_err(connect_error)?;
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(connect_error)?;
            Ok((backend, Pool::Postgres(pool)))
        }
        SqlBackend::Sqlite => {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| invalid(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if !in_memory {
                if let Some(dir) = options.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        tokio::fs::create_dir_all(dir).await.map_err(|source| {
                            StoreError::CreateDirectory {
                                path: dir.display().to_string(),
                                source,
                            }
                        })?;
                    }
                }
            }
            // An in-memory database lives and dies with its one connection.
            let pool_options = if in_memory {
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                SqlitePoolOptions::new().max_connections(5)
            };
            let pool = pool_options
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|source| StoreError::Connect {
                    backend,
                    url: redact_url(url),
                    source,
                })?;
            Ok((backend, Pool::Sqlite(pool)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_select_backends_and_errors_never_echo_the_url() {
        assert_eq!(
            SqlBackend::from_url("postgres://u@h/db").unwrap(),
            SqlBackend::Postgres
        );
        assert_eq!(
            SqlBackend::from_url("postgresql://u@h/db").unwrap(),
            SqlBackend::Postgres
        );
        assert_eq!(
            SqlBackend::from_url("sqlite://data/alpha.db").unwrap(),
            SqlBackend::Sqlite
        );
        let err = SqlBackend::from_url("mysql://root:hunter2@db/x").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`mysql`"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn redaction_hides_passwords() {
        let shown = redact_url("postgres://trader:s3cret@db.internal:5432/alpha");
        assert_eq!(shown, "postgres://trader:****@db.internal:5432/alpha");
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
