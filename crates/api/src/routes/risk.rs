//! The risk limits of a namespace, as its risk manager applies them, and its state now.

use std::sync::Arc;

use alpha_panda_core::{Broker, Money};
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::state::ApiState;

/// A namespace's risk limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RiskLimitsView {
    /// The namespace.
    pub broker: Broker,
    /// Largest position in units per strategy and instrument.
    pub max_position_quantity: u32,
    /// Largest position value.
    pub max_position_value: Money,
    /// Largest order value.
    pub max_order_value: Money,
    /// Trades a strategy may make a day.
    pub max_daily_trades_per_strategy: u32,
    /// The daily loss (net of fees) that halts new exposure.
    pub max_daily_loss: Money,
    /// How far a LIMIT may be from the last price, in percent.
    pub limit_price_band_pct: Decimal,
    /// Whether orders are refused outside market hours.
    pub enforce_market_hours: bool,
}

/// The namespace's limits.
pub async fn limits(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
) -> Result<Json<RiskLimitsView>, ApiError> {
    let broker = state.broker(&broker)?;
    let l = state
        .risk_limits
        .get(&broker)
        .cloned()
        .unwrap_or_else(|| alpha_panda_services::risk_manager::RiskLimits::default_for(broker));
    Ok(Json(RiskLimitsView {
        broker,
        max_position_quantity: l.max_position_quantity,
        max_position_value: l.max_position_value,
        max_order_value: l.max_order_value,
        max_daily_trades_per_strategy: l.max_daily_trades_per_strategy,
        max_daily_loss: l.max_daily_loss,
        limit_price_band_pct: l.limit_price_band_pct,
        enforce_market_hours: l.enforce_market_hours,
    }))
}

/// One position as the risk manager counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RiskPosition {
    /// The strategy.
    pub strategy_id: String,
    /// The instrument.
    pub instrument_token: u32,
    /// Signed units.
    pub quantity: i64,
}

/// What the namespace's risk manager holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RiskStateView {
    /// The namespace.
    pub broker: Broker,
    /// Whether the kill switch halts new entries.
    pub kill_switch_engaged: bool,
    /// Positions by strategy and instrument, as the risk manager last saved them.
    pub positions: Vec<RiskPosition>,
}

/// The namespace's risk state: its positions and the kill switch.
pub async fn state(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
) -> Result<Json<RiskStateView>, ApiError> {
    let broker = state.broker(&broker)?;
    let positions = match &state.cache {
        Some(cache) => cache
            .risk_state()
            .positions(broker)
            .await?
            .into_iter()
            .map(|p| RiskPosition {
                strategy_id: p.strategy_id.to_string(),
                instrument_token: p.instrument_token.0,
                quantity: p.quantity,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(RiskStateView {
        broker,
        kill_switch_engaged: state.store.kill_switches().engaged(broker).await?,
        positions,
    }))
}
