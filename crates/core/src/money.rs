//! Exact money types: `Price`, `Money` over `Decimal`, `Quantity` over integers.
//!
//! Money never touches a float. Notional comes only from `Price × Quantity`.

use std::fmt;
use std::ops::{Add, AddAssign, Mul, Neg, Sub, SubAssign};

use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A per-unit price in rupees (serialized as a decimal string).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct Price(pub Decimal);

/// An amount of rupees: cash, fees, PnL, notional (serialized as a decimal string).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct Money(pub Decimal);

/// A number of units (shares, contracts) in an order or fill; always positive in an order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(transparent)]
pub struct Quantity(pub u32);

impl Price {
    /// The price as a decimal.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// Whether the price lies on a grid of `tick_size` (e.g. 0.05).
    pub fn is_on_tick(self, tick_size: Decimal) -> bool {
        if tick_size <= Decimal::ZERO {
            return false;
        }
        // Every tick is checked: ordinary prices and tick sizes are brought to one scale and
        // compared as integers, which is exact and skips the 96-bit remainder.
        let scale = self.0.scale().max(tick_size.scale());
        let at_scale = |d: Decimal| {
            let mantissa = i64::try_from(d.mantissa()).ok()?;
            10i64
                .checked_pow(scale - d.scale())
                .and_then(|factor| mantissa.checked_mul(factor))
        };
        match (at_scale(self.0), at_scale(tick_size)) {
            (Some(price), Some(tick)) => price % tick == 0,
            _ => (self.0 % tick_size).is_zero(),
        }
    }
}

impl Money {
    /// Zero rupees.
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// The amount as a decimal.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Rounded to the paisa (banker's rounding is not used for money: half away from zero).
    pub fn round_to_paisa(self) -> Money {
        Money(
            self.0
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        )
    }
}

impl Quantity {
    /// The quantity as a signed integer for position arithmetic.
    pub fn as_i64(self) -> i64 {
        i64::from(self.0)
    }
}

impl Mul<Quantity> for Price {
    type Output = Money;
    fn mul(self, rhs: Quantity) -> Money {
        Money(self.0 * Decimal::from(rhs.0))
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        self.0 -= rhs.0;
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |acc, m| acc + m)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn notional_is_exact() {
        assert_eq!(Price(dec!(2450.05)) * Quantity(3), Money(dec!(7350.15)));
    }

    proptest::proptest! {
        /// The integer path agrees with the decimal remainder, at every scale and size.
        #[test]
        fn tick_grid_is_the_remainder(mantissa in proptest::prelude::any::<i64>(), scale in 0u32..=28,
                                      tick in 1i64..10_000, tick_scale in 0u32..=6) {
            let price = Price(Decimal::new(mantissa, scale));
            let tick_size = Decimal::new(tick, tick_scale);
            proptest::prop_assert_eq!(price.is_on_tick(tick_size), (price.0 % tick_size).is_zero());
        }
    }

    #[test]
    fn tick_grid() {
        assert!(Price(dec!(100.05)).is_on_tick(dec!(0.05)));
        assert!(!Price(dec!(100.07)).is_on_tick(dec!(0.05)));
    }

    #[test]
    fn money_serializes_as_string() {
        assert_eq!(
            serde_json::to_string(&Money(dec!(-12.50))).unwrap(),
            "\"-12.50\""
        );
        assert_eq!(Money(dec!(0.125)).round_to_paisa(), Money(dec!(0.13)));
    }
}
