//! Portfolios per namespace: the latest state (the cache's read model, or the store's latest
//! snapshot when the API has no cache), positions, the snapshot history and the equity series.

use std::collections::BTreeMap;
use std::sync::Arc;

use alpha_panda_core::{
    Broker, InstrumentToken, Money, PnlSnapshot, PortfolioId, PositionSnapshot, Price, Timestamp,
};
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{limit, ApiPath, ApiQuery};
use crate::state::ApiState;

/// A portfolio as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Portfolio {
    /// `{broker}:{strategy_id}`.
    pub portfolio_id: PortfolioId,
    /// The strategy.
    pub strategy_id: String,
    /// The namespace.
    pub broker: Broker,
    /// When these figures were taken.
    pub as_of: Timestamp,
    /// Cash.
    pub cash: Money,
    /// Realized PnL (before fees).
    pub realized_pnl: Money,
    /// Unrealized PnL at the last prices.
    pub unrealized_pnl: Money,
    /// Fees paid.
    pub fees: Money,
    /// Realized + unrealized − fees.
    pub total_pnl: Money,
    /// Open positions.
    pub positions: Vec<PositionSnapshot>,
}

impl From<PnlSnapshot> for Portfolio {
    fn from(s: PnlSnapshot) -> Self {
        Self {
            portfolio_id: s.portfolio_id,
            strategy_id: s.strategy_id.to_string(),
            broker: s.broker,
            as_of: s.as_of,
            cash: s.cash,
            realized_pnl: s.realized_pnl,
            unrealized_pnl: s.unrealized_pnl,
            fees: s.fees,
            total_pnl: s.total_pnl,
            positions: s.positions,
        }
    }
}

/// A position with its portfolio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Position {
    /// The portfolio.
    pub portfolio_id: PortfolioId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Signed units.
    pub quantity: i64,
    /// Average entry price.
    pub average_price: Price,
    /// Last price.
    pub last_price: Price,
    /// Unrealized PnL.
    pub unrealized_pnl: Money,
}

/// One point of an equity curve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EquityPoint {
    /// When.
    pub at: Timestamp,
    /// Total PnL then.
    pub total_pnl: Money,
    /// Cash then.
    pub cash: Money,
    /// Drawdown from the highest total PnL before it (zero or negative).
    pub drawdown: Money,
}

/// `?portfolio=…&limit=…`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The portfolio id (`paper:ema_cross_infy`).
    pub portfolio: String,
    /// Most points (1–1000; default 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

async fn latest(state: &ApiState, broker: Broker) -> Result<Vec<PnlSnapshot>, ApiError> {
    if let Some(cache) = &state.cache {
        return Ok(cache.portfolios().list(broker).await?);
    }
    // Without a cache: the newest stored snapshot of each portfolio.
    let mut newest: BTreeMap<String, PnlSnapshot> = BTreeMap::new();
    for stored in state
        .store
        .pnl_snapshots()
        .list_by_broker(broker, 10_000)
        .await?
    {
        newest
            .entry(stored.snapshot.portfolio_id.to_string())
            .or_insert(stored.snapshot);
    }
    Ok(newest.into_values().collect())
}

/// The namespace's portfolios.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
) -> Result<Json<Vec<Portfolio>>, ApiError> {
    let broker = state.broker(&broker)?;
    Ok(Json(
        latest(&state, broker)
            .await?
            .into_iter()
            .map(Portfolio::from)
            .collect(),
    ))
}

fn portfolio_id(broker: Broker, id: &str) -> Result<PortfolioId, ApiError> {
    let full = if id.contains(':') {
        id.to_string()
    } else {
        format!("{broker}:{id}")
    };
    let parsed = PortfolioId::new(&full).map_err(|e| {
        ApiError::invalid(format!(
            "portfolio: {full:?} is not a portfolio id: {}",
            e.reason
        ))
    })?;
    if !parsed.as_str().starts_with(&format!("{broker}:")) {
        return Err(ApiError::invalid(format!(
            "portfolio: {full} is not in the {broker} namespace"
        )));
    }
    Ok(parsed)
}

/// One portfolio (`{id}` is the strategy id or the full portfolio id).
pub async fn get(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath((broker, id)): ApiPath<(String, String)>,
) -> Result<Json<Portfolio>, ApiError> {
    let broker = state.broker(&broker)?;
    let wanted = portfolio_id(broker, &id)?;
    latest(&state, broker)
        .await?
        .into_iter()
        .find(|s| s.portfolio_id == wanted)
        .map(|s| Json(Portfolio::from(s)))
        .ok_or_else(|| ApiError::not_found(format!("no portfolio {wanted}")))
}

/// Every open position of the namespace.
pub async fn positions(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
) -> Result<Json<Vec<Position>>, ApiError> {
    let broker = state.broker(&broker)?;
    let mut positions = Vec::new();
    for snapshot in latest(&state, broker).await? {
        for p in snapshot.positions.iter().filter(|p| p.quantity != 0) {
            positions.push(Position {
                portfolio_id: snapshot.portfolio_id.clone(),
                instrument_token: p.instrument_token,
                quantity: p.quantity,
                average_price: p.average_price,
                last_price: p.last_price,
                unrealized_pnl: p.unrealized_pnl,
            });
        }
    }
    Ok(Json(positions))
}

/// A portfolio's stored snapshots, newest first.
pub async fn snapshots(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<PnlSnapshot>>, ApiError> {
    let broker = state.broker(&broker)?;
    let id = portfolio_id(broker, &query.portfolio)?;
    let n = limit(query.limit, 500)?;
    Ok(Json(
        state
            .store
            .pnl_snapshots()
            .list(&id, n)
            .await?
            .into_iter()
            .map(|s| s.snapshot)
            .collect(),
    ))
}

/// A portfolio's equity curve with its drawdown, oldest first, for a chart.
pub async fn equity(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiPath(broker): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<EquityPoint>>, ApiError> {
    let broker = state.broker(&broker)?;
    let id = portfolio_id(broker, &query.portfolio)?;
    let n = limit(query.limit, 500)?;
    let mut stored = state.store.pnl_snapshots().list(&id, n).await?;
    stored.reverse();
    let mut peak: Option<Money> = None;
    let points = stored
        .into_iter()
        .map(|s| {
            let total = s.snapshot.total_pnl;
            let high = peak.map_or(total, |p| if total > p { total } else { p });
            peak = Some(high);
            EquityPoint {
                at: s.snapshot.as_of,
                total_pnl: total,
                cash: s.snapshot.cash,
                drawdown: total - high,
            }
        })
        .collect();
    Ok(Json(points))
}
