//! `POST /api/v1/auth/login`, `/refresh`, `/logout` and `GET /api/v1/auth/me`.

use std::sync::Arc;

use alpha_panda_store::Role;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Tokens};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::ApiState;

/// A login.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

/// A refresh token to trade or revoke.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token a login or refresh gave.
    pub refresh_token: String,
}

/// Who is calling, and the namespaces this deployment trades.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Me {
    /// The username.
    pub username: String,
    /// The role.
    pub role: Role,
    /// The active broker namespaces (`paper`, `zerodha`).
    pub brokers: Vec<alpha_panda_core::Broker>,
}

/// Logs in: a token pair for the right password; 401 otherwise (the same answer for an unknown
/// user as for a wrong password); 429 after too many failures for the user at the address.
pub async fn login(
    State(state): State<Arc<ApiState>>,
    address: crate::routes::Address,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<Tokens>, ApiError> {
    state.limiter.check(&request.username, address.0)?;
    match state
        .store
        .users()
        .verify(&request.username, &request.password)
        .await?
    {
        Some(user) => {
            state.limiter.succeeded(&request.username, address.0);
            tracing::info!(username = %user.username, role = %user.role, "logged in");
            Ok(Json(state.auth.issue(&state.store, &user).await?))
        }
        None => {
            state.limiter.failed(&request.username, address.0);
            tracing::warn!(username = %request.username, address = ?address.0, "failed login");
            Err(ApiError::unauthorized("wrong username or password"))
        }
    }
}

/// Trades a refresh token (once) for a new pair.
pub async fn refresh(
    State(state): State<Arc<ApiState>>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(
        state
            .auth
            .refresh(&state.store, &request.refresh_token)
            .await?,
    ))
}

/// Revokes the refresh token; the access token ends at its expiry.
pub async fn logout(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .revoke(&state.store, &request.refresh_token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller.
pub async fn me(State(state): State<Arc<ApiState>>, caller: Caller) -> Json<Me> {
    Json(Me {
        username: caller.username,
        role: caller.role,
        brokers: state.brokers.clone(),
    })
}
