//! The per-namespace kill switch: `GET` shows it, `POST` (a `trader`) engages or releases it. The
//! risk manager of the namespace reads it every second and, while engaged, rejects every signal
//! that would add exposure with the rule `kill_switch`; exits still go. It is stored, so it holds
//! across restarts and every process sees it.

use std::sync::Arc;

use alpha_panda_core::{Broker, Timestamp};
use alpha_panda_store::{KillSwitch, Role};
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::ApiState;

/// The switch as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KillSwitchState {
    /// The namespace.
    pub broker: Broker,
    /// Whether new entries are halted.
    pub engaged: bool,
    /// Why it was last set (empty if never).
    pub reason: String,
    /// Who set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<Timestamp>,
}

/// Engage or release.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchChange {
    /// `true` halts new entries; `false` lets them through again.
    pub engaged: bool,
    /// Why (required).
    pub reason: String,
}

fn state_of(broker: Broker, switch: Option<KillSwitch>) -> KillSwitchState {
    match switch {
        Some(s) => KillSwitchState {
            broker,
            engaged: s.engaged,
            reason: s.reason,
            changed_by: Some(s.changed_by),
            changed_at: Some(s.changed_at),
        },
        None => KillSwitchState {
            broker,
            engaged: false,
            reason: String::new(),
            changed_by: None,
            changed_at: None,
        },
    }
}

/// The namespace's kill switch.
pub async fn get(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
) -> Result<Json<KillSwitchState>, ApiError> {
    let broker = state.broker(&broker)?;
    let switch = state.store.kill_switches().get(broker).await?;
    Ok(Json(state_of(broker, switch)))
}

/// Engages or releases the namespace's kill switch (`trader`).
pub async fn set(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiPath(broker): ApiPath<String>,
    ApiJson(change): ApiJson<KillSwitchChange>,
) -> Result<Json<KillSwitchState>, ApiError> {
    caller.require(Role::Trader)?;
    let broker = state.broker(&broker)?;
    if change.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "reason: say why the kill switch is engaged or released",
        ));
    }
    let switch = KillSwitch {
        broker,
        engaged: change.engaged,
        reason: change.reason,
        changed_by: caller.username.clone(),
        changed_at: Timestamp::from_datetime(chrono::Utc::now()),
    };
    state.store.kill_switches().set(&switch).await?;
    tracing::warn!(%broker, engaged = switch.engaged, reason = %switch.reason,
        by = %caller.username, "kill switch set");
    Ok(Json(state_of(broker, Some(switch))))
}
