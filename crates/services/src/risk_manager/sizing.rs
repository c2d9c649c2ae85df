//! Sizing an order from a target position (ARCHITECTURE §6): a signal states the position the
//! strategy wants; the order is what closes the gap between that target and what the namespace
//! holds plus what it has in flight. Pure arithmetic, no state.

use alpha_panda_core::{Quantity, Side};

/// The order that reaches a target, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// Trade `quantity` units to `side`.
    Order {
        /// Buy or sell.
        side: Side,
        /// Units (at least one; saturated at `u32::MAX`, far past any position limit).
        quantity: Quantity,
    },
    /// Position plus orders in flight already equal the target.
    AtTarget,
}

/// The order that takes `exposure` (position from fills plus orders in flight, signed) to
/// `target` (signed).
pub fn size_order(target: i64, exposure: i64) -> Sizing {
    let gap = i128::from(target) - i128::from(exposure);
    if gap == 0 {
        return Sizing::AtTarget;
    }
    let side = if gap > 0 { Side::Buy } else { Side::Sell };
    let quantity = u32::try_from(gap.unsigned_abs()).unwrap_or(u32::MAX);
    Sizing::Order {
        side,
        quantity: Quantity(quantity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(side: Side, quantity: u32) -> Sizing {
        Sizing::Order {
            side,
            quantity: Quantity(quantity),
        }
    }

    #[test]
    fn closes_the_gap_and_never_overshoots() {
        assert_eq!(size_order(1, 0), order(Side::Buy, 1));
        assert_eq!(size_order(0, 1), order(Side::Sell, 1));
        // An exit of a long that was never filled (entry rejected or failed) is no order at all.
        assert_eq!(size_order(0, 0), Sizing::AtTarget);
        // A flip from long 2 to short 3 is one sell of 5.
        assert_eq!(size_order(-3, 2), order(Side::Sell, 5));
        // An entry already in flight is not doubled.
        assert_eq!(size_order(1, 1), Sizing::AtTarget);
        assert_eq!(
            size_order(i64::MAX, i64::MIN),
            order(Side::Buy, u32::MAX),
            "saturates instead of overflowing"
        );
    }
}
