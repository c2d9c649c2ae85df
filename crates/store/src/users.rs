//! Operator users: usernames with an argon2id password hash (the clear text is never stored) and a
//! role that says what each may do through the API.

use std::sync::OnceLock;

use alpha_panda_core::Timestamp;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::sql::{Param, Pool, Row};
use crate::StoreError;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// What a user may do: a `viewer` reads; a `trader` also controls strategies and the kill
/// switch; an `admin` also manages users and purges the DLQ.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// A viewer who also controls strategies and the kill switch.
    Trader,
    /// A trader who also manages users and purges the DLQ.
    Admin,
}

impl Role {
    /// The role's name as stored and typed (`admin`, `trader`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Trader => "trader",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "trader" => Ok(Role::Trader),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: use admin, trader or viewer"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator user (without the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// Repository of [`User`]s.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    pool: &'a Pool,
}

impl<'a> Users<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Creates a user, storing only an argon2id hash of `password` (hashed off the async runtime).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty or odd username or a password shorter than
    /// [`MIN_PASSWORD_LEN`]; [`StoreError::AlreadyExists`] when the username is taken.
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        const OP: &str = "create user";
        validate_username(username)?;
        validate_password(password)?;
        let password = password.to_owned();
        let hash = blocking(move || hash_password(&password)).await??;
        let created_at = Timestamp::from_datetime(chrono::Utc::now());
        let inserted = self
            .pool
            .fetch_optional(
                OP,
                "INSERT INTO users (username, password_hash, created_at, role) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING RETURNING id",
                &[
                    Param::Text(username.to_owned()),
                    Param::Text(hash),
                    Param::Timestamp(created_at),
                    Param::Text(role.as_str().to_owned()),
                ],
            )
            .await?;
        match inserted {
            Some(row) => Ok(User {
                id: row.int(OP, "id")?,
                username: username.to_owned(),
                role,
                created_at,
            }),
            None => Err(StoreError::AlreadyExists {
                what: format!("user `{username}`"),
            }),
        }
    }

    /// The user if `password` is right; `None` for an unknown user or a wrong password (which take
    /// about the same time, so callers cannot probe for usernames).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a stored hash is corrupt.
    pub async fn verify(&self, username: &str, password: &str) -> Result<Option<User>, StoreError> {
        const OP: &str = "verify user";
        let row = self
            .pool
            .fetch_optional(
                OP,
                "SELECT id, username, role, password_hash, created_at FROM users WHERE username = $1",
                &[Param::Text(username.to_owned())],
            )
            .await?;
        let password = password.to_owned();
        let Some(row) = row else {
            // Spend the same effort as a real check.
            blocking(move || {
                if let Ok(dummy) = dummy_hash() {
                    let _ = check_password(&password, dummy);
                }
            })
            .await?;
            return Ok(None);
        };
        let stored = row.text(OP, "password_hash")?;
        let matches = blocking(move || check_password(&password, &stored)).await??;
        if matches {
            Ok(Some(user_from_row(&row)?))
        } else {
            Ok(None)
        }
    }

    /// Looks a user up by name.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn get(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.pool
            .fetch_optional(
                "get user",
                "SELECT id, username, role, created_at FROM users WHERE username = $1",
                &[Param::Text(username.to_owned())],
            )
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        self.pool
            .fetch_all(
                "list users",
                "SELECT id, username, role, created_at FROM users ORDER BY username",
                &[],
            )
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    /// Removes a user; `false` when there was none by that name.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn remove(&self, username: &str) -> Result<bool, StoreError> {
        let removed = self
            .pool
            .execute(
                "remove user",
                "DELETE FROM users WHERE username = $1",
                &[Param::Text(username.to_owned())],
            )
            .await?;
        Ok(removed > 0)
    }

    /// Sets a user's password; `false` when there is no user by that name.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a password shorter than [`MIN_PASSWORD_LEN`]; a
    /// [`StoreError`] when the database cannot be written.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<bool, StoreError> {
        validate_password(password)?;
        let password = password.to_owned();
        let hash = blocking(move || hash_password(&password)).await??;
        let changed = self
            .pool
            .execute(
                "set user password",
                "UPDATE users SET password_hash = $1 WHERE username = $2",
                &[Param::Text(hash), Param::Text(username.to_owned())],
            )
            .await?;
        Ok(changed > 0)
    }

    /// How many users exist (bootstrap creates the first one).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn count(&self) -> Result<u64, StoreError> {
        count_rows(self.pool, "count users", "SELECT COUNT(*) AS n FROM users").await
    }
}

pub(crate) async fn count_rows(
    pool: &Pool,
    op: &'static str,
    sql: &str,
) -> Result<u64, StoreError> {
    let n = match pool.fetch_optional(op, sql, &[]).await? {
        Some(row) => row.int(op, "n")?,
        None => 0,
    };
    u64::try_from(n).map_err(|_| StoreError::decode(op, "n", format!("negative count {n}")))
}

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    const OP: &str = "read user";
    Ok(User {
        id: row.int(OP, "id")?,
        username: row.text(OP, "username")?,
        role: row.parsed(OP, "role")?,
        created_at: row.timestamp(OP, "created_at")?,
    })
}

fn validate_password(password: &str) -> Result<(), StoreError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::InvalidInput {
            field: "password",
            reason: format!("must be at least {MIN_PASSWORD_LEN} characters"),
        });
    }
    Ok(())
}

fn validate_username(username: &str) -> Result<(), StoreError> {
    let reason = if username.is_empty() {
        Some("must not be empty")
    } else if username.chars().count() > 64 {
        Some("must be at most 64 characters")
    } else if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        Some("must not contain spaces or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidInput {
            field: "username",
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Runs CPU-heavy work (argon2) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Task {
            reason: e.to_string(),
        })
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::PasswordHash {
            reason: e.to_string(),
        })
}

fn check_password(password: &str, stored: &str) -> Result<bool, StoreError> {
    let parsed = PasswordHash::new(stored)
        .map_err(|e| StoreError::decode("verify user", "password_hash", e))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

fn dummy_hash() -> Result<&'static str, StoreError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_password("alpha-panda-timing-equaliser")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verifiable() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(check_password("correct horse", &a).unwrap());
        assert!(!check_password("wrong horse", &a).unwrap());
        assert!(check_password("x", "not a hash").is_err());
    }

    #[test]
    fn usernames_are_validated() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username("two words").is_err());
    }
}
