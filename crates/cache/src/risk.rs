//! Risk state per broker namespace: positions per (strategy, instrument), daily trade counts per
//! strategy, and the daily realized PnL per portfolio that the kill switch watches.

use std::str::FromStr;

use alpha_panda_core::{Broker, InstrumentToken, Money, PortfolioId, StrategyId, Timestamp};
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{
    backend::Backend,
    keys::{parse_position_field, position_field, KeySpace},
    CacheError,
};

/// IST is UTC+05:30 all year (no daylight saving).
const IST_OFFSET_MINUTES: i64 = 330;

/// The instant the IST calendar day `trading_day` ends (the following midnight IST), which is
/// when its daily trade counts and daily PnL expire. Dates at the very end of chrono's range
/// give the last representable instant.
pub fn ist_trading_day_end(trading_day: NaiveDate) -> Timestamp {
    let end = trading_day
        .and_time(NaiveTime::MIN)
        .checked_add_signed(Duration::days(1))
        .and_then(|midnight_ist| {
            midnight_ist.checked_sub_signed(Duration::minutes(IST_OFFSET_MINUTES))
        })
        .unwrap_or(NaiveDateTime::MAX);
    Timestamp::from_datetime(end.and_utc())
}

/// One open position in a broker namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionEntry {
    /// The strategy holding it.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Signed quantity: positive long, negative short (never zero in a listing).
    pub quantity: i64,
}

/// The risk manager's durable state, per broker. Cheap to clone; shares the cache's connection.
#[derive(Clone)]
pub struct RiskStateCache {
    keys: KeySpace,
    backend: Backend,
}

impl RiskStateCache {
    pub(crate) fn new(keys: KeySpace, backend: Backend) -> Self {
        Self { keys, backend }
    }

    /// Sets the signed position of `strategy_id` in `token`; zero removes it (flat).
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable.
    pub async fn set_position(
        &self,
        broker: Broker,
        strategy_id: &StrategyId,
        token: InstrumentToken,
        signed_quantity: i64,
    ) -> Result<(), CacheError> {
        let key = self.keys.positions(broker);
        let field = position_field(strategy_id, token);
        if signed_quantity == 0 {
            self.backend.hash_delete(&key, &field).await
        } else {
            self.backend
                .hash_set(&key, &field, &signed_quantity.to_string())
                .await
        }
    }

    /// Adds `delta` (a fill: positive buy, negative sell) to the position atomically and returns
    /// the new signed quantity.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored position is not an integer or would overflow.
    pub async fn add_to_position(
        &self,
        broker: Broker,
        strategy_id: &StrategyId,
        token: InstrumentToken,
        delta: i64,
    ) -> Result<i64, CacheError> {
        self.backend
            .hash_increment(
                &self.keys.positions(broker),
                &position_field(strategy_id, token),
                delta,
            )
            .await
    }

    /// The signed position of `strategy_id` in `token` (0 when flat or unknown).
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored value is not an integer.
    pub async fn position(
        &self,
        broker: Broker,
        strategy_id: &StrategyId,
        token: InstrumentToken,
    ) -> Result<i64, CacheError> {
        let key = self.keys.positions(broker);
        let field = position_field(strategy_id, token);
        match self.backend.hash_get(&key, &field).await? {
            None => Ok(0),
            Some(raw) => raw
                .parse::<i64>()
                .map_err(|e| CacheError::corrupt(format!("{key}/{field}"), e)),
        }
    }

    /// Every non-flat position in `broker`'s namespace, ordered by strategy then instrument.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when a field
    /// or quantity was not written by this type.
    pub async fn positions(&self, broker: Broker) -> Result<Vec<PositionEntry>, CacheError> {
        let key = self.keys.positions(broker);
        let mut positions = Vec::new();
        for (field, raw) in self.backend.hash_all(&key).await? {
            let location = || format!("{key}/{field}");
            let (strategy_id, instrument_token) = parse_position_field(&field)
                .ok_or_else(|| CacheError::corrupt(location(), "not a {token}:{strategy} field"))?;
            let quantity = raw
                .parse::<i64>()
                .map_err(|e| CacheError::corrupt(location(), e))?;
            if quantity != 0 {
                positions.push(PositionEntry {
                    strategy_id,
                    instrument_token,
                    quantity,
                });
            }
        }
        positions.sort_by(|a, b| {
            (&a.strategy_id, a.instrument_token).cmp(&(&b.strategy_id, b.instrument_token))
        });
        Ok(positions)
    }

    /// Counts one more trade of `strategy_id` on `trading_day` and returns the new count. The
    /// counter expires at `expires_at` (normally [`ist_trading_day_end`]); Redis uses `INCR` +
    /// `PEXPIREAT` in one transaction and its own clock, memory uses the injected clock. An
    /// `expires_at` already past drops the counter at once.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored count is not a count.
    pub async fn increment_daily_trades(
        &self,
        broker: Broker,
        strategy_id: &StrategyId,
        trading_day: NaiveDate,
        expires_at: Timestamp,
    ) -> Result<u32, CacheError> {
        let key = self.keys.daily_trades(broker, strategy_id, trading_day);
        let count = self
            .backend
            .counter_increment_until(&key, expires_at)
            .await?;
        to_count(&key, count)
    }

    /// How many trades `strategy_id` made on `trading_day` (0 once the counter expired).
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when the
    /// stored count is not a count.
    pub async fn daily_trades(
        &self,
        broker: Broker,
        strategy_id: &StrategyId,
        trading_day: NaiveDate,
    ) -> Result<u32, CacheError> {
        let key = self.keys.daily_trades(broker, strategy_id, trading_day);
        match self.backend.counter_get(&key).await? {
            None => Ok(0),
            Some(count) => to_count(&key, count),
        }
    }

    /// When the daily trade counter of `strategy_id` on `trading_day` expires (`None` when there is
    /// no counter). Redis keeps expiries in milliseconds.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable.
    pub async fn daily_trades_expire_at(
        &self,
        broker: Broker,
        strategy_id: &StrategyId,
        trading_day: NaiveDate,
    ) -> Result<Option<Timestamp>, CacheError> {
        self.backend
            .expires_at(&self.keys.daily_trades(broker, strategy_id, trading_day))
            .await
    }

    /// Adds a realized PnL amount (a loss is negative) to `portfolio_id`'s total for
    /// `trading_day` and returns the new total. Amounts are kept as exact decimal strings (Redis
    /// has no decimal arithmetic and `INCRBYFLOAT` is a float, so each amount is appended in one
    /// transaction and summed exactly); the entry expires at `expires_at`, as for trade counts.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when a
    /// stored amount is not a decimal or the total overflows.
    pub async fn add_daily_pnl(
        &self,
        broker: Broker,
        portfolio_id: &PortfolioId,
        trading_day: NaiveDate,
        expires_at: Timestamp,
        realized_pnl: Money,
    ) -> Result<Money, CacheError> {
        let key = self.keys.daily_pnl(broker, portfolio_id, trading_day);
        let amounts = self
            .backend
            .list_push_until(&key, &realized_pnl.0.to_string(), expires_at)
            .await?;
        sum_amounts(&key, &amounts)
    }

    /// `portfolio_id`'s realized PnL on `trading_day` (zero once expired); the kill switch trips
    /// when it falls below minus the daily loss limit.
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable; [`CacheError::CorruptValue`] when a
    /// stored amount is not a decimal or the total overflows.
    pub async fn daily_pnl(
        &self,
        broker: Broker,
        portfolio_id: &PortfolioId,
        trading_day: NaiveDate,
    ) -> Result<Money, CacheError> {
        let key = self.keys.daily_pnl(broker, portfolio_id, trading_day);
        let amounts = self.backend.list_all(&key).await?;
        sum_amounts(&key, &amounts)
    }

    /// When `portfolio_id`'s daily PnL for `trading_day` expires (`None` when nothing is stored).
    ///
    /// # Errors
    /// [`CacheError::Redis`] when Redis is unavailable.
    pub async fn daily_pnl_expire_at(
        &self,
        broker: Broker,
        portfolio_id: &PortfolioId,
        trading_day: NaiveDate,
    ) -> Result<Option<Timestamp>, CacheError> {
        self.backend
            .expires_at(&self.keys.daily_pnl(broker, portfolio_id, trading_day))
            .await
    }
}

fn to_count(key: &str, count: i64) -> Result<u32, CacheError> {
    u32::try_from(count).map_err(|_| CacheError::corrupt(key, format!("{count} is not a count")))
}

/// The exact sum of decimal strings.
fn sum_amounts(key: &str, amounts: &[String]) -> Result<Money, CacheError> {
    amounts.iter().try_fold(Money::ZERO, |total, raw| {
        let amount = Decimal::from_str(raw)
            .map_err(|e| CacheError::corrupt(key, format!("{raw:?} is not a decimal: {e}")))?;
        total
            .0
            .checked_add(amount)
            .map(Money)
            .ok_or_else(|| CacheError::corrupt(key, "daily PnL total overflows"))
    })
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn trading_day_ends_at_midnight_ist() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(
            ist_trading_day_end(day).to_string(),
            "2026-03-02T18:30:00.000000Z"
        );
    }

    #[test]
    fn amounts_sum_exactly_and_bad_ones_are_reported() {
        let amounts = ["0.1", "0.2", "-1250.35"].map(String::from);
        assert_eq!(sum_amounts("k", &amounts).unwrap(), Money(dec!(-1250.05)));
        assert_eq!(sum_amounts("k", &[]).unwrap(), Money::ZERO);
        let bad = ["1.5", "1e3x"].map(String::from);
        assert!(matches!(
            sum_amounts("k", &bad),
            Err(CacheError::CorruptValue { .. })
        ));
        assert!(to_count("k", -1).is_err());
        assert_eq!(to_count("k", 7).unwrap(), 7);
    }
}
