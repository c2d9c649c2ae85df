//! Partition keys (ARCHITECTURE §3). Every event about one instrument of one strategy lands in one
//! partition, so its order is kept.

use crate::{InstrumentToken, PortfolioId, StrategyId};

/// `market.ticks`: the instrument token.
pub fn market_tick_key(token: InstrumentToken) -> String {
    token.0.to_string()
}

/// Signals and orders: `{strategy_id}:{token}`.
pub fn strategy_instrument_key(strategy: &StrategyId, token: InstrumentToken) -> String {
    // Built by hand: this runs for every signal and order, and `format!` costs more than the key.
    let strategy = strategy.as_str();
    let mut key = String::with_capacity(strategy.len() + 11);
    key.push_str(strategy);
    key.push(':');
    push_decimal(&mut key, token.0);
    key
}

/// Appends `n` in decimal without an intermediate string.
fn push_decimal(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// PnL snapshots: the portfolio id.
pub fn portfolio_key(portfolio: &PortfolioId) -> String {
    portfolio.as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let strategy = StrategyId::new("momentum_1").unwrap();
        assert_eq!(market_tick_key(InstrumentToken(408065)), "408065");
        assert_eq!(
            strategy_instrument_key(&strategy, InstrumentToken(408065)),
            "momentum_1:408065"
        );
        assert_eq!(
            strategy_instrument_key(&strategy, InstrumentToken(u32::MAX)),
            format!("momentum_1:{}", u32::MAX)
        );
    }
}
