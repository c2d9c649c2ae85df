//! The key scheme: the only place a cache key or hash field is formatted or parsed.
//!
//! Every writer and reader goes through [`KeySpace`], so they cannot disagree (the earlier system's
//! dashboard read `metrics:{service}:{broker}` while services wrote another key). Every key starts
//! with the configured prefix (default `alpha_panda:`), and every key except dedup carries the broker
//! namespace, so `paper` and `zerodha` state never mix.
//!
//! | concern | key | Redis type | field → value |
//! |---|---|---|---|
//! | dedup | `{prefix}dedup:{group}:{event_id}` | string `1`, TTL | — |
//! | positions | `{prefix}risk:{broker}:positions` | hash | `{token}:{strategy_id}` → signed quantity |
//! | daily trades | `{prefix}risk:{broker}:daily_trades:{YYYY-MM-DD}:{strategy_id}` | integer, `PEXPIREAT` end of day | — |
//! | daily PnL | `{prefix}risk:{broker}:daily_pnl:{YYYY-MM-DD}:{portfolio_id}` | list of decimal strings, `PEXPIREAT` end of day | — |
//! | snapshots | `{prefix}portfolio:{broker}:snapshots` | hash | `{portfolio_id}` → `PnlSnapshot` JSON |
//! | snapshot times | `{prefix}portfolio:{broker}:as_of` | hash | `{portfolio_id}` → `as_of` in Unix µs |
//! | service metrics | `{prefix}metrics:{broker}:services` | hash | `{service}` → `ServiceMetrics` JSON |
//!
//! `{broker}` is `paper` or `zerodha`; service metrics may also use `shared` (market data).
//! Dedup keys carry the consumer group instead: event ids are unique across namespaces.

use std::sync::Arc;

use alpha_panda_core::{Broker, EventBroker, EventId, InstrumentToken, PortfolioId, StrategyId};
use chrono::NaiveDate;

/// Formats keys under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeySpace {
    prefix: Arc<str>,
}

impl KeySpace {
    /// Keys under `prefix` (include the trailing separator, e.g. `alpha_panda:`).
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// A processed `(consumer group, event id)` marker.
    pub(crate) fn dedup(&self, group: &str, event: EventId) -> String {
        format!("{}dedup:{}:{}", self.prefix, group, event)
    }

    /// The hash of every position in `broker`'s namespace.
    pub(crate) fn positions(&self, broker: Broker) -> String {
        format!("{}risk:{}:positions", self.prefix, broker.as_str())
    }

    /// The daily trade counter of one strategy on one trading day.
    pub(crate) fn daily_trades(
        &self,
        broker: Broker,
        strategy: &StrategyId,
        trading_day: NaiveDate,
    ) -> String {
        format!(
            "{}risk:{}:daily_trades:{}:{}",
            self.prefix,
            broker.as_str(),
            trading_day.format("%Y-%m-%d"),
            strategy
        )
    }

    /// The realized PnL entries of one portfolio on one trading day.
    pub(crate) fn daily_pnl(
        &self,
        broker: Broker,
        portfolio: &PortfolioId,
        trading_day: NaiveDate,
    ) -> String {
        format!(
            "{}risk:{}:daily_pnl:{}:{}",
            self.prefix,
            broker.as_str(),
            trading_day.format("%Y-%m-%d"),
            portfolio
        )
    }

    /// The hash of latest snapshots in `broker`'s namespace.
    pub(crate) fn snapshots(&self, broker: Broker) -> String {
        format!("{}portfolio:{}:snapshots", self.prefix, broker.as_str())
    }

    /// The hash of the `as_of` of each stored snapshot (guards against older overwriting newer).
    pub(crate) fn snapshot_times(&self, broker: Broker) -> String {
        format!("{}portfolio:{}:as_of", self.prefix, broker.as_str())
    }

    /// The hash of service metrics in `broker`'s namespace.
    pub(crate) fn service_metrics(&self, broker: EventBroker) -> String {
        format!("{}metrics:{}:services", self.prefix, broker.as_str())
    }
}

/// The field of one position inside the positions hash. The token comes first because it never
/// contains `:`, while a strategy id may.
pub(crate) fn position_field(strategy: &StrategyId, token: InstrumentToken) -> String {
    format!("{token}:{strategy}")
}

/// Reads a position field back; `None` when it was not written by [`position_field`].
pub(crate) fn parse_position_field(field: &str) -> Option<(StrategyId, InstrumentToken)> {
    let (token, strategy) = field.split_once(':')?;
    let token = token.parse::<u32>().ok()?;
    let strategy = StrategyId::new(strategy).ok()?;
    Some((strategy, InstrumentToken(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_prefix_and_broker() {
        let keys = KeySpace::new("ap:");
        let strategy = StrategyId::new("ema_cross:nifty").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let portfolio = PortfolioId::for_strategy(Broker::Zerodha, &strategy);
        assert_eq!(keys.positions(Broker::Paper), "ap:risk:paper:positions");
        assert_eq!(
            keys.daily_trades(Broker::Zerodha, &strategy, day),
            "ap:risk:zerodha:daily_trades:2026-03-02:ema_cross:nifty"
        );
        assert_eq!(
            keys.daily_pnl(Broker::Zerodha, &portfolio, day),
            "ap:risk:zerodha:daily_pnl:2026-03-02:zerodha:ema_cross:nifty"
        );
        assert_eq!(
            keys.snapshots(Broker::Paper),
            "ap:portfolio:paper:snapshots"
        );
        assert_eq!(
            keys.snapshot_times(Broker::Paper),
            "ap:portfolio:paper:as_of"
        );
        assert_eq!(
            keys.service_metrics(EventBroker::Shared),
            "ap:metrics:shared:services"
        );
    }

    #[test]
    fn position_field_round_trips_even_with_colons_in_the_strategy() {
        let strategy = StrategyId::new("a:b").unwrap();
        let field = position_field(&strategy, InstrumentToken(256_265));
        assert_eq!(field, "256265:a:b");
        assert_eq!(
            parse_position_field(&field),
            Some((strategy, InstrumentToken(256_265)))
        );
        assert_eq!(parse_position_field("nifty:a"), None);
        assert_eq!(parse_position_field("256265"), None);
    }
}
