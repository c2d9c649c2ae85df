//! Risk limits, configured per broker namespace.

use alpha_panda_core::{Broker, Money};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The limits one broker namespace enforces. Missing keys take [`RiskLimits::default`]'s values;
/// unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskLimits {
    /// Largest absolute position (units) per (strategy, instrument) after an order.
    pub max_position_quantity: u32,
    /// Largest absolute position value (units × reference price) per (strategy, instrument).
    pub max_position_value: Money,
    /// Largest value of one order (units × limit or reference price).
    pub max_order_value: Money,
    /// Most orders one strategy may have approved per IST trading day.
    pub max_daily_trades_per_strategy: u32,
    /// Kill switch: once a portfolio's realized PnL net of fees for the day is at or below
    /// `−max_daily_loss`, orders that add exposure are refused (reducing orders still pass).
    pub max_daily_loss: Money,
    /// A LIMIT price must lie within this percentage of the last traded price (5 = ±5 %).
    pub limit_price_band_pct: Decimal,
    /// Refuse signals outside the NSE session (09:15–15:30 IST on trading days).
    pub enforce_market_hours: bool,
}

impl Default for RiskLimits {
    /// The paper namespace's defaults ([`RiskLimits::default_for`] `(Broker::Paper)`).
    fn default() -> Self {
        Self::default_for(Broker::Paper)
    }
}

impl RiskLimits {
    /// Defaults per broker: paper is generous and trades around the clock (simulations and replays
    /// run at any hour); zerodha is conservative and enforces market hours.
    pub fn default_for(broker: Broker) -> Self {
        match broker {
            Broker::Paper => Self {
                max_position_quantity: 1_000,
                max_position_value: Money(Decimal::from(1_000_000)),
                max_order_value: Money(Decimal::from(200_000)),
                max_daily_trades_per_strategy: 200,
                max_daily_loss: Money(Decimal::from(50_000)),
                limit_price_band_pct: Decimal::from(5),
                enforce_market_hours: false,
            },
            Broker::Zerodha => Self {
                max_position_quantity: 100,
                max_position_value: Money(Decimal::from(100_000)),
                max_order_value: Money(Decimal::from(50_000)),
                max_daily_trades_per_strategy: 20,
                max_daily_loss: Money(Decimal::from(5_000)),
                limit_price_band_pct: Decimal::from(2),
                enforce_market_hours: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_broker_and_strict_keys() {
        assert!(RiskLimits::default_for(Broker::Zerodha).enforce_market_hours);
        assert!(!RiskLimits::default().enforce_market_hours);
        let partial: RiskLimits =
            serde_json::from_str(r#"{"max_order_value": "1000.50"}"#).unwrap();
        assert_eq!(partial.max_order_value, Money(Decimal::new(100050, 2)));
        assert_eq!(partial.max_position_quantity, 1_000);
        let err = serde_json::from_str::<RiskLimits>(r#"{"max_order_valu": "1"}"#).unwrap_err();
        assert!(err.to_string().contains("max_order_valu"));
    }
}
