//! Users (an `admin`): list, add with a role, remove.

use std::sync::Arc;

use alpha_panda_core::Timestamp;
use alpha_panda_store::Role;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::ApiState;

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserEntry {
    /// The username.
    pub username: String,
    /// The role.
    pub role: Role,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A new user.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The username (no spaces).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^\S+$"))]
    pub username: String,
    /// The password (at least 8 characters).
    #[schemars(length(min = 8))]
    pub password: String,
    /// The role.
    pub role: Role,
}

/// Every user.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
) -> Result<Json<Vec<UserEntry>>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(
        state
            .store
            .users()
            .list()
            .await?
            .into_iter()
            .map(|u| UserEntry {
                username: u.username,
                role: u.role,
                created_at: u.created_at,
            })
            .collect(),
    ))
}

/// Adds a user.
pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserEntry>), ApiError> {
    caller.require(Role::Admin)?;
    let user = state
        .store
        .users()
        .create(&new.username, &new.password, new.role)
        .await?;
    tracing::info!(username = %user.username, role = %user.role, by = %caller.username, "user added");
    Ok((
        StatusCode::CREATED,
        Json(UserEntry {
            username: user.username,
            role: user.role,
            created_at: user.created_at,
        }),
    ))
}

/// Removes a user and revokes their refresh tokens.
pub async fn remove(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    if username == caller.username {
        return Err(ApiError::conflict(
            "username: you cannot remove yourself; another admin can",
        ));
    }
    if !state.store.users().remove(&username).await? {
        return Err(ApiError::not_found(format!("no user `{username}`")));
    }
    state.store.refresh_tokens().revoke_all(&username).await?;
    tracing::info!(%username, by = %caller.username, "user removed");
    Ok(StatusCode::NO_CONTENT)
}
