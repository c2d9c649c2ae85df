//! [`StoreError`]: the crate's one error type. Every variant knows its [`ErrorClass`] and says what to do.

use alpha_panda_core::ErrorClass;

use crate::SqlBackend;

/// Everything that can go wrong talking to the SQL database.
///
/// Messages never contain a password: URLs are shown with the password replaced by `****`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL has a scheme this crate does not speak.
    #[error(
        "database url scheme `{scheme}` is not supported: use `postgres://USER@HOST:PORT/DB` \
         (production) or `sqlite://PATH` (embedded)"
    )]
    UnsupportedScheme {
        /// The scheme found (text before the first `:`).
        scheme: String,
    },

    /// The database URL could not be parsed.
    #[error("invalid {backend} database url `{url}`: {reason}; fix the `database.url` setting")]
    InvalidUrl {
        /// Which backend the scheme selected.
        backend: SqlBackend,
        /// The URL with any password redacted.
        url: String,
        /// What the parser said.
        reason: String,
    },

    /// A directory for the SQLite file could not be created.
    #[error("cannot create the directory `{path}` for the SQLite database: {source}; check permissions or choose another path")]
    CreateDirectory {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The first connection failed.
    #[error("cannot connect to the {backend} database at `{url}`: {source}; check that it is running and reachable and that the credentials are right")]
    Connect {
        /// Which backend.
        backend: SqlBackend,
        /// The URL with any password redacted.
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// The database is unreachable, the pool is exhausted or closed, or the connection broke.
    #[error("database unavailable during {operation}: {source}; it will be retried — check the database if this persists")]
    Unavailable {
        /// What was being done.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// A conflict between concurrent transactions (serialization failure, deadlock, SQLite busy).
    #[error("database conflict during {operation}: {source}; retry the operation")]
    Contention {
        /// What was being done.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// A table the code needs does not exist: the schema is behind the code.
    #[error("database schema is missing a table during {operation}: {source}; run `alpha-panda migrate`")]
    SchemaMissing {
        /// What was being done.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// A uniqueness, foreign-key, not-null or check constraint refused the write.
    #[error("{operation} violates a database constraint: {source}")]
    Constraint {
        /// What was being done.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// The record already exists (a username that is taken, …).
    #[error("{what} already exists; choose another")]
    AlreadyExists {
        /// What the duplicate was.
        what: String,
    },

    /// Input refused before it reached the database.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// A stored value could not be decoded into its Rust type.
    #[error("cannot decode column `{column}` read during {operation}: {detail}; the row is corrupt or was written by an incompatible version")]
    Decode {
        /// What was being done.
        operation: &'static str,
        /// The column.
        column: &'static str,
        /// What went wrong.
        detail: String,
    },

    /// Any other error reported by the database.
    #[error("database error during {operation}: {source}")]
    Database {
        /// What was being done.
        operation: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },

    /// Applying migrations failed.
    #[error("applying database migrations failed: {source}; fix the database or the migration files, then run `alpha-panda migrate`")]
    Migration {
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// Production refuses to start on a schema that is not current.
    #[error("{} database migration(s) pending ({}); run `alpha-panda migrate` before starting in production", pending.len(), pending.join(", "))]
    MigrationsPending {
        /// Names of the migrations not yet applied.
        pending: Vec<String>,
    },

    /// Password hashing failed.
    #[error("password hashing failed: {reason}")]
    PasswordHash {
        /// The hasher's message.
        reason: String,
    },

    /// A blocking helper task (password hashing) did not complete.
    #[error("a background task failed: {reason}; retry")]
    Task {
        /// What happened to the task.
        reason: String,
    },
}

impl StoreError {
    /// How the processor runtime should treat this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Connect { .. }
            | StoreError::Unavailable { .. }
            | StoreError::SchemaMissing { .. }
            | StoreError::Database { .. }
            | StoreError::Migration { .. }
            | StoreError::MigrationsPending { .. }
            | StoreError::CreateDirectory { .. } => ErrorClass::Infrastructure,
            StoreError::Contention { .. } | StoreError::Task { .. } => ErrorClass::Transient,
            StoreError::Decode { .. } => ErrorClass::Poison,
            StoreError::UnsupportedScheme { .. }
            | StoreError::InvalidUrl { .. }
            | StoreError::Constraint { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::InvalidInput { .. }
            | StoreError::PasswordHash { .. } => ErrorClass::Business,
        }
    }

    /// Classifies a driver error raised while doing `operation`.
    pub(crate) fn from_sqlx(operation: &'static str, source: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &source {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable { operation, source },
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. } => StoreError::Decode {
                operation,
                column: "(driver)",
                detail: source.to_string(),
            },
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let message = db.message().to_ascii_lowercase();
                match db.kind() {
                    ErrorKind::UniqueViolation
                    | ErrorKind::ForeignKeyViolation
                    | ErrorKind::NotNullViolation
                    | ErrorKind::CheckViolation => StoreError::Constraint { operation, source },
                    _ if code == "42P01" || message.contains("no such table") => {
                        StoreError::SchemaMissing { operation, source }
                    }
                    // Postgres class 40 (serialization failure, deadlock); SQLite BUSY, LOCKED and
                    // their extended codes (BUSY_RECOVERY, LOCKED_SHAREDCACHE, BUSY_SNAPSHOT).
                    _ if code.starts_with("40")
                        || matches!(code.as_str(), "5" | "6" | "261" | "262" | "517") =>
                    {
                        StoreError::Contention { operation, source }
                    }
                    // Postgres class 08 (connection), 53 (resources), 57 (operator intervention).
                    _ if code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57") =>
                    {
                        StoreError::Unavailable { operation, source }
                    }
                    _ => StoreError::Database { operation, source },
                }
            }
            _ => StoreError::Database { operation, source },
        }
    }

    /// A stored value that does not decode.
    pub(crate) fn decode(
        operation: &'static str,
        column: &'static str,
        detail: impl std::fmt::Display,
    ) -> Self {
        StoreError::Decode {
            operation,
            column,
            detail: detail.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_runtime_contract() {
        assert_eq!(
            StoreError::from_sqlx("ping", sqlx::Error::PoolTimedOut).class(),
            ErrorClass::Infrastructure
        );
        assert_eq!(
            StoreError::decode("load checkpoint", "state", "bad json").class(),
            ErrorClass::Poison
        );
        assert_eq!(
            StoreError::AlreadyExists {
                what: "user `a`".into()
            }
            .class(),
            ErrorClass::Business
        );
        let pending = StoreError::MigrationsPending {
            pending: vec!["0001_initial_schema".into()],
        };
        assert!(pending.to_string().contains("run `alpha-panda migrate`"));
        assert_eq!(pending.class(), ErrorClass::Infrastructure);
    }
}
