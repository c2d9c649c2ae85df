//! The API's refresh tokens, kept as SHA-256 hashes (a stolen database holds no usable token).
//! Each is used once: refreshing revokes it and issues the next; logging out revokes it.

use alpha_panda_core::Timestamp;

use crate::sql::{Param, Pool};
use crate::StoreError;

/// Repository of refresh tokens.
#[derive(Debug, Clone, Copy)]
pub struct RefreshTokens<'a> {
    pool: &'a Pool,
}

impl<'a> RefreshTokens<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Records a token (by its hash) issued to `username`, valid until `expires_at`.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn issue(
        &self,
        token_hash: &str,
        username: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.pool
            .execute(
                "issue refresh token",
                "INSERT INTO refresh_tokens (token_hash, username, created_at, expires_at, revoked) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    Param::Text(token_hash.to_owned()),
                    Param::Text(username.to_owned()),
                    Param::Timestamp(now),
                    Param::Timestamp(expires_at),
                    Param::Bool(false),
                ],
            )
            .await?;
        Ok(())
    }

    /// Uses a token: when it is known, unrevoked and unexpired at `now`, revokes it and returns
    /// whose it was; `None` otherwise.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or written.
    pub async fn redeem(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        const OP: &str = "redeem refresh token";
        let row = self
            .pool
            .fetch_optional(
                OP,
                "UPDATE refresh_tokens SET revoked = $1 \
                 WHERE token_hash = $2 AND revoked = $3 AND expires_at > $4 RETURNING username",
                &[
                    Param::Bool(true),
                    Param::Text(token_hash.to_owned()),
                    Param::Bool(false),
                    Param::Timestamp(now),
                ],
            )
            .await?;
        row.map(|r| r.text(OP, "username")).transpose()
    }

    /// Revokes a token; `false` when it was unknown or already revoked.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn revoke(&self, token_hash: &str) -> Result<bool, StoreError> {
        let n = self
            .pool
            .execute(
                "revoke refresh token",
                "UPDATE refresh_tokens SET revoked = $1 WHERE token_hash = $2 AND revoked = $3",
                &[
                    Param::Bool(true),
                    Param::Text(token_hash.to_owned()),
                    Param::Bool(false),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// Revokes every token of `username` (a removed user, a changed password).
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be written.
    pub async fn revoke_all(&self, username: &str) -> Result<u64, StoreError> {
        self.pool
            .execute(
                "revoke refresh tokens",
                "UPDATE refresh_tokens SET revoked = $1 WHERE username = $2 AND revoked = $3",
                &[
                    Param::Bool(true),
                    Param::Text(username.to_owned()),
                    Param::Bool(false),
                ],
            )
            .await
    }
}
