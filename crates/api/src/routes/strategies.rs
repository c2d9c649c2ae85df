//! Strategies: their configurations, and the controls a `trader` has over them (create, change
//! parameters and instruments, enable and disable, trade on Zerodha or not). A change is stored,
//! and the running strategy runner takes it up within seconds, without a restart. A
//! configuration that cannot be built is a 422 naming the parameter.

use std::sync::Arc;

use alpha_panda_core::Timestamp;
use alpha_panda_services::strategy::build_strategy;
use alpha_panda_store::{Role, StrategyConfiguration};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::ApiState;

/// A strategy's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Strategy {
    /// The id.
    pub id: String,
    /// The type (`ema_cross`, `mean_reversion`).
    pub strategy_type: String,
    /// Instrument tokens it trades.
    pub instruments: Vec<u32>,
    /// Its parameters.
    pub parameters: serde_json::Value,
    /// Whether it runs.
    pub is_active: bool,
    /// Whether its signals also go to Zerodha (real money).
    pub zerodha_trading_enabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<StrategyConfiguration> for Strategy {
    fn from(c: StrategyConfiguration) -> Self {
        Self {
            id: c.id,
            strategy_type: c.strategy_type,
            instruments: c.instruments,
            parameters: c.parameters,
            is_active: c.is_active,
            zerodha_trading_enabled: c.zerodha_trading_enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A new strategy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStrategy {
    /// The id (letters, digits, `_`, `-`, `.`, `:`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.:-]{1,128}$"))]
    pub id: String,
    /// The type.
    #[schemars(with = "StrategyType")]
    pub strategy_type: String,
    /// Instrument tokens.
    #[schemars(length(min = 1))]
    pub instruments: Vec<u32>,
    /// Parameters (`null` for the type's defaults); the type decides which keys it takes.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub parameters: serde_json::Value,
    /// Whether it runs at once (default true).
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Whether it trades on Zerodha too (default false).
    #[serde(default)]
    pub zerodha_trading_enabled: bool,
}

fn yes() -> bool {
    true
}

/// The strategy types this build knows (for the schema; the handler checks the configuration).
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum StrategyType {
    EmaCross,
    Momentum,
    MeanReversion,
}

/// Changes to a strategy; absent fields stay.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyChange {
    /// New parameters (an object; the type decides which keys it takes).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub parameters: Option<serde_json::Value>,
    /// New instruments.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub instruments: Option<Vec<u32>>,
}

/// Zerodha trading on or off.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZerodhaToggle {
    /// Whether the strategy's signals also go to Zerodha.
    pub enabled: bool,
}

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

/// Refuses a configuration the runner could not build, naming what is wrong.
fn check(config: &StrategyConfiguration) -> Result<(), ApiError> {
    build_strategy(
        &config.id,
        &config.strategy_type,
        &config.instruments,
        &config.parameters,
    )
    .map(|_| ())
    .map_err(|e| ApiError::invalid(e.to_string()))
}

async fn find(state: &ApiState, id: &str) -> Result<StrategyConfiguration, ApiError> {
    state
        .store
        .strategy_configurations()
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no strategy `{id}`")))
}

/// Every strategy.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
) -> Result<Json<Vec<Strategy>>, ApiError> {
    Ok(Json(
        state
            .store
            .strategy_configurations()
            .list()
            .await?
            .into_iter()
            .map(Strategy::from)
            .collect(),
    ))
}

/// One strategy.
pub async fn get(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Strategy>, ApiError> {
    Ok(Json(find(&state, &id).await?.into()))
}

/// Creates a strategy (`trader`).
pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiJson(new): ApiJson<NewStrategy>,
) -> Result<(StatusCode, Json<Strategy>), ApiError> {
    caller.require(Role::Trader)?;
    let repository = state.store.strategy_configurations();
    if repository.get(&new.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "strategy `{}` exists; change it with PUT /api/v1/strategies/{}",
            new.id, new.id
        )));
    }
    let at = now();
    let config = StrategyConfiguration {
        id: new.id,
        strategy_type: new.strategy_type,
        instruments: new.instruments,
        parameters: new.parameters,
        is_active: new.is_active,
        zerodha_trading_enabled: new.zerodha_trading_enabled,
        created_at: at,
        updated_at: at,
    };
    check(&config)?;
    repository.upsert(&config).await?;
    tracing::info!(strategy = %config.id, by = %caller.username, "strategy created");
    Ok((StatusCode::CREATED, Json(config.into())))
}

/// A trader's change to a stored strategy: `edit` changes the configuration (or refuses it), and
/// the result is stamped and stored.
async fn change(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    edit: impl FnOnce(&mut StrategyConfiguration) -> Result<(), ApiError>,
) -> Result<StrategyConfiguration, ApiError> {
    caller.require(Role::Trader)?;
    let mut config = find(state, id).await?;
    edit(&mut config)?;
    config.updated_at = now();
    state
        .store
        .strategy_configurations()
        .upsert(&config)
        .await?;
    Ok(config)
}

/// Changes a strategy's parameters or instruments (`trader`).
pub async fn update(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(change_to): ApiJson<StrategyChange>,
) -> Result<Json<Strategy>, ApiError> {
    let config = change(&state, &caller, &id, |config| {
        if let Some(parameters) = change_to.parameters {
            config.parameters = parameters;
        }
        if let Some(instruments) = change_to.instruments {
            config.instruments = instruments;
        }
        check(config)
    })
    .await?;
    tracing::info!(strategy = %id, by = %caller.username, "strategy changed");
    Ok(Json(config.into()))
}

async fn set_active(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    active: bool,
) -> Result<Json<Strategy>, ApiError> {
    let config = change(state, caller, id, |config| {
        config.is_active = active;
        Ok(())
    })
    .await?;
    tracing::info!(strategy = %id, active, by = %caller.username, "strategy switched");
    Ok(Json(config.into()))
}

/// Runs a strategy (`trader`).
pub async fn enable(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Strategy>, ApiError> {
    set_active(&state, &caller, &id, true).await
}

/// Stops a strategy (`trader`).
pub async fn disable(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Strategy>, ApiError> {
    set_active(&state, &caller, &id, false).await
}

/// Sends a strategy's signals to Zerodha too, or stops doing so (`trader`).
pub async fn zerodha(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(toggle): ApiJson<ZerodhaToggle>,
) -> Result<Json<Strategy>, ApiError> {
    let config = change(&state, &caller, &id, |config| {
        config.zerodha_trading_enabled = toggle.enabled;
        Ok(())
    })
    .await?;
    tracing::warn!(strategy = %id, enabled = toggle.enabled, by = %caller.username,
        "Zerodha trading switched");
    Ok(Json(config.into()))
}
