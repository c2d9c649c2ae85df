//! The order ledger of a namespace: order events and fills, newest first.

use std::sync::Arc;

use alpha_panda_core::{
    EventId, InstrumentToken, OrderFilled, OrderId, OrderType, PortfolioId, Price, Quantity, Side,
    StrategyId, Timestamp,
};
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{limit, ApiPath, ApiQuery};
use crate::state::ApiState;

/// `?limit=…`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Most rows (1–1000; default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `?portfolio=…&limit=…`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FillsQuery {
    /// Only this portfolio's fills (`paper:ema_cross_infy`).
    #[serde(default)]
    pub portfolio: Option<String>,
    /// Most rows (1–1000; default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderEntry {
    /// The event's id.
    pub event_id: EventId,
    /// `submitted`, `acknowledged` or `failed`.
    pub status: String,
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    /// MARKET or LIMIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<OrderType>,
    /// A LIMIT's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<Price>,
    /// The venue's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_order_id: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was recorded.
    pub at: Timestamp,
}

/// One fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FillEntry {
    /// The `order_filled` event's id.
    pub event_id: EventId,
    /// The portfolio.
    pub portfolio_id: PortfolioId,
    /// The fill.
    pub fill: OrderFilled,
}

/// The namespace's order events.
pub async fn orders(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<OrderEntry>>, ApiError> {
    let broker = state.broker(&broker)?;
    let n = limit(query.limit, 100)?;
    let orders = state.store.ledger().orders(broker, n).await?;
    Ok(Json(
        orders
            .into_iter()
            .map(|o| OrderEntry {
                event_id: o.event_id,
                status: o.record.status.as_str().to_string(),
                order_id: o.record.order_id,
                strategy_id: o.record.strategy_id,
                instrument_token: o.record.instrument_token,
                side: o.record.side,
                quantity: o.record.quantity,
                order_type: o.record.order_type,
                limit_price: o.record.limit_price,
                broker_order_id: o.record.broker_order_id,
                reason: o.record.reason,
                at: o.record.recorded_at,
            })
            .collect(),
    ))
}

/// The namespace's fills.
pub async fn fills(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
    ApiQuery(query): ApiQuery<FillsQuery>,
) -> Result<Json<Vec<FillEntry>>, ApiError> {
    let broker = state.broker(&broker)?;
    let n = limit(query.limit, 100)?;
    let ledger = state.store.ledger();
    let fills = match query.portfolio {
        Some(portfolio) => {
            let id = PortfolioId::new(&portfolio).map_err(|e| {
                ApiError::invalid(format!("portfolio: {portfolio:?}: {}", e.reason))
            })?;
            if !id.as_str().starts_with(&format!("{broker}:")) {
                return Err(ApiError::invalid(format!(
                    "portfolio: {id} is not in the {broker} namespace"
                )));
            }
            ledger.fills_for_portfolio(&id, n).await?
        }
        None => ledger.fills(broker, n).await?,
    };
    Ok(Json(
        fills
            .into_iter()
            .map(|f| FillEntry {
                event_id: f.event_id,
                portfolio_id: f.portfolio_id,
                fill: f.fill,
            })
            .collect(),
    ))
}
