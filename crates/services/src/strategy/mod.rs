//! Strategies: pure state machines that turn ticks into trading signals; the runner emits them.
//!
//! - [`ema_cross`]: the exact reference EMA crossover (ARCHITECTURE §6).
//! - [`mean_reversion`]: z-score mean reversion over a rolling window.
//! - [`config`]: building a strategy from a configuration row, and the default strategy set.
//! - `states`: the per-instrument indicator states of one strategy (one hash probe per tick).
//!
//! Every tick reaches every strategy trading its instrument, so the helpers below avoid per-tick
//! work that does not change a result: the price conversion skips a 128-bit division, and signal
//! reasons are assembled without exact float formatting.

pub mod config;
pub mod ema_cross;
pub mod mean_reversion;
mod states;

pub use config::{build_strategy, default_strategy_set, StrategyConfigError, StrategySeed};
pub use ema_cross::{EmaCross, EmaCrossParams};
pub use mean_reversion::{MeanReversion, MeanReversionParams};

use std::fmt::Write as _;

use alpha_panda_core::{
    EventId, InstrumentToken, MarketTick, OrderType, Quantity, Side, StrategyId, TickRef,
    TradingSignal,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// A trading strategy: reads ticks, keeps its own indicators, returns signals. No I/O, no clock.
pub trait Strategy: Send {
    /// The configured strategy id.
    fn id(&self) -> &StrategyId;
    /// The instruments the strategy trades; ticks of other instruments are ignored.
    fn instruments(&self) -> &[InstrumentToken];
    /// Handles one tick (`tick_event_id` is the tick event's id) and returns the signals it causes,
    /// each carrying that tick as its [`TickRef`]. The id goes into the signals' `TickRef` and
    /// nowhere else: the runner may pass a placeholder and set the real id on the signals.
    fn on_tick(&mut self, tick: &MarketTick, tick_event_id: EventId) -> Vec<TradingSignal>;
    /// The indicator state of every instrument, for the runner's checkpoint.
    fn save_state(&self) -> serde_json::Value;
    /// Restores a state saved by [`Strategy::save_state`] of the same strategy.
    ///
    /// # Errors
    /// When the saved state does not decode into this strategy's state.
    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error>;
}

/// The price of `tick` as an indicator input, when the price is usable (positive and representable
/// as an `f64`). Whether the strategy trades the instrument is `states::InstrumentStates`' question.
pub(crate) fn indicator_price(tick: &MarketTick) -> Option<f64> {
    if tick.last_price.0 <= Decimal::ZERO {
        return None;
    }
    decimal_to_f64(tick.last_price.0)
}

/// Exact powers of ten: every `10^k` with `k <= 22` is an `f64` without rounding.
const POW10_F64: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// `value` as an `f64`, bit for bit what `rust_decimal`'s `to_f64` returns (the indicator input
/// `x` of ARCHITECTURE §6), without its 128-bit integer division for ordinary prices.
///
/// When the mantissa fits 64 bits and the scale is at most 18, this runs the library's algorithm
/// (`Decimal::as_f64` of rust_decimal 1.43) on the same integers in `u64` instead of `u128`:
/// quotient and remainder are the same integers, each integer-to-`f64` conversion rounds the same
/// integer the same way, and `10^scale` is exact both in the table and as the library's `powi`
/// computes it. Every other value goes to the library. A test compares the two over random
/// decimals, so a library that changes its conversion is caught.
pub(crate) fn decimal_to_f64(value: Decimal) -> Option<f64> {
    let scale = value.scale() as usize;
    let (Ok(mantissa), Some(&pow10)) = (
        u64::try_from(value.mantissa().unsigned_abs()),
        POW10_F64.get(scale),
    ) else {
        return value.to_f64();
    };
    let negative = value.is_sign_negative();
    if scale == 0 {
        // The library converts the signed integer, so a negative zero gives +0.0.
        let magnitude = mantissa as f64;
        return Some(if negative && mantissa != 0 {
            -magnitude
        } else {
            magnitude
        });
    }
    // Constant divisors for the common scales let the compiler avoid a division instruction.
    let (integral_part, frac_part) = match scale {
        1 => (mantissa / 10, mantissa % 10),
        2 => (mantissa / 100, mantissa % 100),
        _ => {
            let precision = 10_u64.pow(scale as u32);
            (mantissa / precision, mantissa % precision)
        }
    };
    let frac = frac_part as f64 / pow10;
    let integral = integral_part as f64;
    if frac == 0.0 {
        return Some(if negative { -integral } else { integral });
    }
    let rounded = ((integral + frac) * pow10).round() / pow10;
    Some(if negative { -rounded } else { rounded })
}

/// Appends `value` with `decimals` (at most 9) digits after the point, like `{:.N}` but from
/// `value × 10^decimals` rounded half away from zero rather than from the exact binary expansion
/// (which `{:.N}` computes, slowly): the two can differ by one in the last digit, when `value` lies
/// within one `f64` rounding of a tie (or asks for more digits than an `f64` holds). Values too
/// large for exact integer digits (or not finite) use `{:.N}`.
pub(crate) fn push_fixed(out: &mut String, value: f64, decimals: u32) {
    /// 2^53: below it every integer is an `f64`, so the scaled value's digits are exact.
    const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;
    let scaled = match POW10_F64.get(decimals as usize) {
        Some(pow10) if decimals <= 9 => (value * pow10).round(),
        _ => f64::NAN,
    };
    if scaled.is_nan() || scaled.abs() >= EXACT_LIMIT {
        let _ = write!(out, "{value:.prec$}", prec = decimals as usize);
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    let units = scaled.abs() as u64;
    let divisor = 10_u64.pow(decimals);
    push_digits(out, units / divisor, 1);
    if decimals > 0 {
        out.push('.');
        push_digits(out, units % divisor, decimals as usize);
    }
}

/// Appends the decimal digits of `n`, left-padded with zeros to `min_width` (at most 20) digits.
pub(crate) fn push_digits(out: &mut String, mut n: u64, min_width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n > 0 {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    start = start.min(digits.len().saturating_sub(min_width.max(1)));
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// A MARKET signal caused by `tick`: trade `side` `quantity` to hold `target_quantity`.
pub(crate) fn market_signal(
    strategy_id: &StrategyId,
    tick: &MarketTick,
    tick_event_id: EventId,
    side: Side,
    quantity: u32,
    target_quantity: i64,
    reason: String,
) -> TradingSignal {
    TradingSignal {
        strategy_id: strategy_id.clone(),
        instrument_token: tick.instrument_token,
        side,
        quantity: Quantity(quantity),
        target_quantity,
        order_type: OrderType::Market,
        limit_price: None,
        reason,
        tick: TickRef {
            instrument_token: tick.instrument_token,
            last_price: tick.last_price,
            exchange_timestamp: tick.exchange_timestamp,
            event_id: tick_event_id,
        },
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Tick builders for strategy tests.
    use alpha_panda_core::{InstrumentToken, MarketTick, Price, Timestamp};
    use rust_decimal::Decimal;

    /// A minimal tick of `token` at `price`, `seq` microseconds after a fixed instant.
    pub fn tick(token: u32, price: Decimal, seq: i64) -> MarketTick {
        MarketTick {
            instrument_token: InstrumentToken(token),
            tradingsymbol: None,
            last_price: Price(price),
            last_traded_quantity: 1,
            average_traded_price: None,
            volume_traded: 0,
            total_buy_quantity: 0,
            total_sell_quantity: 0,
            ohlc: None,
            oi: None,
            exchange_timestamp: Timestamp::from_unix_micros(
                1_763_696_700_000_000 + seq * 1_000_000,
            )
            .unwrap(),
            depth: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bits of the library's conversion, for comparisons that tell 0.0 from -0.0.
    fn library_bits(d: Decimal) -> Option<u64> {
        d.to_f64().map(f64::to_bits)
    }

    #[test]
    fn conversion_matches_the_library_on_every_price_of_the_grid() {
        // Every 0.05 step up to 100 000 (scale 2), and the same prices written with scale 1 and 0
        // where they are whole.
        for units in 1..=2_000_000_i64 {
            let d = Decimal::new(units * 5, 2);
            assert_eq!(decimal_to_f64(d).map(f64::to_bits), library_bits(d), "{d}");
            let normalized = d.normalize();
            assert_eq!(
                decimal_to_f64(normalized).map(f64::to_bits),
                library_bits(normalized),
                "{normalized}"
            );
        }
    }

    #[test]
    fn conversion_matches_the_library_on_edge_values() {
        let edges = [
            Decimal::ZERO,
            -Decimal::ZERO,
            -Decimal::new(0, 3),
            -Decimal::new(2500, 0),
            Decimal::MAX,
            Decimal::MIN,
            Decimal::new(1, 28),
            Decimal::new(-1, 28),
            Decimal::new(i64::MAX, 18),
            Decimal::new(i64::MIN, 18),
            Decimal::new(i64::MAX, 19),
            Decimal::new(i64::MAX, 0),
            Decimal::new(-5, 1),
            Decimal::from_i128_with_scale(u64::MAX as i128, 2),
            Decimal::from_i128_with_scale(u64::MAX as i128 + 1, 2),
            Decimal::from_i128_with_scale(-(u64::MAX as i128), 0),
            Decimal::from_i128_with_scale((1_i128 << 53) + 1, 0),
            Decimal::from_i128_with_scale((1_i128 << 53) + 1, 1),
        ];
        for d in edges {
            assert_eq!(
                decimal_to_f64(d).map(f64::to_bits),
                library_bits(d),
                "{d:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn conversion_matches_the_library_on_any_decimal(
            lo in any::<u32>(),
            mid in any::<u32>(),
            hi in prop_oneof![Just(0_u32), any::<u32>()],
            negative in any::<bool>(),
            scale in 0_u32..=28,
            small in any::<bool>(),
        ) {
            // Half the cases keep the mantissa small, as prices are.
            let mid = if small { mid % 1_000 } else { mid };
            let d = Decimal::from_parts(lo, mid, hi, negative, scale);
            prop_assert_eq!(decimal_to_f64(d).map(f64::to_bits), library_bits(d), "{:?}", d);
        }

        #[test]
        fn fixed_formatting_reads_like_the_exact_one(
            value in -1.0e9_f64..1.0e9,
            decimals in 0_u32..=9,
        ) {
            let mut fast = String::new();
            push_fixed(&mut fast, value, decimals);
            let exact = format!("{value:.prec$}", prec = decimals as usize);
            // Both have `decimals` digits after the point; the last may differ by one (a near-tie
            // rounded the other way).
            let units = |s: &str| s.replace('.', "").parse::<i128>().unwrap();
            prop_assert!((units(&fast) - units(&exact)).abs() <= 1, "{} vs {}", fast, exact);
        }
    }

    #[test]
    fn fixed_formatting_examples() {
        let fixed = |value: f64, decimals: u32| {
            let mut s = String::from(">");
            push_fixed(&mut s, value, decimals);
            s
        };
        assert_eq!(fixed(2501.31274, 4), ">2501.3127");
        assert_eq!(fixed(2501.0, 4), ">2501.0000");
        assert_eq!(fixed(0.00004, 4), ">0.0000");
        assert_eq!(fixed(-2.1049, 3), ">-2.105");
        assert_eq!(fixed(-0.0001, 3), ">-0.000");
        assert_eq!(fixed(7.0, 0), ">7");
        assert_eq!(fixed(f64::NAN, 3), ">NaN");
        assert_eq!(fixed(1e300, 2), format!(">{:.2}", 1e300));
        assert_eq!(fixed(1.5, 12), format!(">{:.12}", 1.5));
        let mut s = String::new();
        push_digits(&mut s, 0, 1);
        push_digits(&mut s, 42, 4);
        push_digits(&mut s, u64::MAX, 1);
        assert_eq!(s, format!("00042{}", u64::MAX));
    }
}
