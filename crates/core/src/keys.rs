//! Partition keys (ARCHITECTURE §3). Every event about one instrument of one strategy lands in one
//! partition, so its order is kept.

use crate::{InstrumentToken, PortfolioId, StrategyId};

/// `market.ticks`: the instrument token.
pub fn market_tick_key(token: InstrumentToken) -> String {
    token.0.to_string()
}

/// Signals and orders: `{strategy_id}:{token}`.
pub fn strategy_instrument_key(strategy: &StrategyId, token: InstrumentToken) -> String {
    format!("{}:{}", strategy.as_str(), token.0)
}

/// PnL snapshots: the portfolio id.
pub fn portfolio_key(portfolio: &PortfolioId) -> String {
    portfolio.as_str().to_string()
}
