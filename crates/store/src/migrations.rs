//! Embedded migrations for each backend, what is pending, and the per-environment policy.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use alpha_panda_core::Environment;
use sqlx::migrate::{Migration, Migrator};

use crate::sql::Pool;
use crate::{SqlBackend, Store, StoreError};

static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The embedded migrations of `backend`.
pub(crate) fn migrator(backend: SqlBackend) -> &'static Migrator {
    match backend {
        SqlBackend::Postgres => &POSTGRES_MIGRATOR,
        SqlBackend::Sqlite => &SQLITE_MIGRATOR,
    }
}

/// `0001_initial_schema`: the migration's file name without `.sql`.
fn migration_name(migration: &Migration) -> String {
    format!(
        "{:04}_{}",
        migration.version,
        migration.description.replace(' ', "_")
    )
}

/// Versions recorded as successfully applied (none when the bookkeeping table does not exist yet).
async fn applied_versions(pool: &Pool) -> Result<HashSet<i64>, StoreError> {
    const OP: &str = "read applied migrations";
    let exists_sql = match pool {
        Pool::Postgres(_) => "SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS present",
        Pool::Sqlite(_) => {
            "SELECT COUNT(*) > 0 AS present FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
    };
    let present = match pool.fetch_optional(OP, exists_sql, &[]).await? {
        Some(row) => row.bool(OP, "present")?,
        None => false,
    };
    if !present {
        return Ok(HashSet::new());
    }
    let rows = pool
        .fetch_all(
            OP,
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE",
            &[],
        )
        .await?;
    rows.iter().map(|row| row.int(OP, "version")).collect()
}

/// Names of the embedded migrations not yet applied, in order.
pub(crate) async fn pending(store: &Store) -> Result<Vec<String>, StoreError> {
    let applied = applied_versions(store.pool()).await?;
    Ok(migrator(store.backend())
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(migration_name)
        .collect())
}

/// Applies every pending migration; returns the names applied.
pub(crate) async fn run(store: &Store) -> Result<Vec<String>, StoreError> {
    let before = pending(store).await?;
    let result = match store.pool() {
        Pool::Postgres(pool) => migrator(SqlBackend::Postgres).run(pool).await,
        Pool::Sqlite(pool) => migrator(SqlBackend::Sqlite).run(pool).await,
    };
    result.map_err(|source| StoreError::Migration { source })?;
    let after: HashSet<String> = pending(store).await?.into_iter().collect();
    let applied: Vec<String> = before.into_iter().filter(|n| !after.contains(n)).collect();
    for name in &applied {
        tracing::info!(backend = %store.backend(), migration = %name, "applied database migration");
    }
    Ok(applied)
}

/// Applies the migration policy of `environment`: development and testing apply pending migrations
/// (returning their names); production only checks that none are pending and returns an empty list.
///
/// # Errors
/// [`StoreError::MigrationsPending`] in production when the schema is behind (run `alpha-panda
/// migrate`); any error of [`Store::migrate`] / [`Store::pending_migrations`].
pub async fn apply_policy(
    store: &Store,
    environment: Environment,
) -> Result<Vec<String>, StoreError> {
    match environment {
        Environment::Development | Environment::Testing => store.migrate().await,
        Environment::Production => {
            let pending = store.pending_migrations().await?;
            if pending.is_empty() {
                Ok(Vec::new())
            } else {
                Err(StoreError::MigrationsPending { pending })
            }
        }
    }
}

/// The tables (with their column names) and named indexes of a database, for comparing backends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaDescription {
    /// Table name → column names, sorted; migration bookkeeping excluded.
    pub tables: BTreeMap<String, Vec<String>>,
    /// Names of the explicitly created indexes (those ending in `_idx`).
    pub indexes: BTreeSet<String>,
}

/// Reads the current schema's tables, columns and indexes.
pub(crate) async fn describe(store: &Store) -> Result<SchemaDescription, StoreError> {
    const OP: &str = "describe schema";
    let (columns_sql, indexes_sql) = match store.pool() {
        Pool::Postgres(_) => (
            "SELECT table_name::text AS table_name, column_name::text AS column_name \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
            "SELECT indexname::text AS name FROM pg_indexes WHERE schemaname = current_schema()",
        ),
        Pool::Sqlite(_) => (
            "SELECT m.name AS table_name, p.name AS column_name \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
             AND m.name <> '_sqlx_migrations'",
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
        ),
    };
    let mut description = SchemaDescription::default();
    for row in store.pool().fetch_all(OP, columns_sql, &[]).await? {
        description
            .tables
            .entry(row.text(OP, "table_name")?)
            .or_default()
            .push(row.text(OP, "column_name")?);
    }
    for columns in description.tables.values_mut() {
        columns.sort();
    }
    for row in store.pool().fetch_all(OP, indexes_sql, &[]).await? {
        let name = row.text(OP, "name")?;
        if name.ends_with("_idx") {
            description.indexes.insert(name);
        }
    }
    Ok(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_embed_the_same_migration_names() {
        let names = |b| {
            migrator(b)
                .iter()
                .map(migration_name)
                .collect::<Vec<String>>()
        };
        assert_eq!(names(SqlBackend::Postgres), names(SqlBackend::Sqlite));
        assert_eq!(names(SqlBackend::Postgres)[0], "0001_initial_schema");
    }
}
