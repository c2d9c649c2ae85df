//! What no payload can hold: a zero quantity, a price that is not positive, or figures so large
//! that the arithmetic on them would overflow. Such an event is poison (ARCHITECTURE §4) and goes
//! to its DLQ; checked on every input, typed or decoded, before any handler sees it.

use super::{
    FeeBreakdown, MarketTick, OrderFilled, OrderSubmitted, Payload, TickRef, TradingSignal,
};
use crate::{Money, Price, Quantity};

impl Price {
    /// No instrument of an Indian exchange trades anywhere near ₹100 crore a unit; a price above it
    /// is a corrupt record, and `price × quantity` stays far from overflowing the decimal type.
    pub const MAX_PLAUSIBLE: Price = Price(rust_decimal::Decimal::from_parts(
        1_000_000_000,
        0,
        0,
        false,
        0,
    ));
}

impl Money {
    /// Larger than any order's charges or notional can be (₹10^15).
    pub const MAX_PLAUSIBLE: Money = Money(rust_decimal::Decimal::from_parts(
        2_764_472_320,
        232_830,
        0,
        false,
        0,
    ));
}

impl Payload {
    /// Checks the figures of the payload; the message names the first one that is impossible.
    ///
    /// # Errors
    /// A sentence naming the field and its value.
    pub fn check_plausible(&self) -> Result<(), String> {
        match self {
            Payload::MarketTick(tick) => tick_plausible(tick),
            Payload::TradingSignal(signal) => signal_plausible(signal),
            Payload::ValidatedSignal(validated) => signal_plausible(&validated.signal),
            Payload::RejectedSignal(rejected) => signal_plausible(&rejected.signal),
            Payload::SignalAtTarget(at_target) => signal_plausible(&at_target.signal),
            Payload::OrderSubmitted(order) => order_plausible(order),
            Payload::OrderFilled(fill) => fill_plausible(fill),
            Payload::OrderFailed(failed) => quantity("quantity", failed.quantity),
            Payload::OrderAck(_)
            | Payload::PnlSnapshot(_)
            | Payload::DlqMessage(_)
            | Payload::Alert(_) => Ok(()),
        }
    }
}

impl MarketTick {
    /// Checks the tick's prices (see [`Payload::check_plausible`]).
    ///
    /// # Errors
    /// A sentence naming the field and its value.
    pub fn check_plausible(&self) -> Result<(), String> {
        tick_plausible(self)
    }
}

fn positive_price(field: &str, price: Price) -> Result<(), String> {
    if price.0.is_sign_negative() || price.0.is_zero() {
        return Err(format!("{field} {} is not positive", price.0));
    }
    bounded_price(field, price)
}

fn bounded_price(field: &str, price: Price) -> Result<(), String> {
    // Every tick's prices pass here: a mantissa no larger than the bound's whole rupees is below
    // it at any scale, which spares the decimal comparison of two scales.
    let small = price.0.mantissa().unsigned_abs() <= PLAUSIBLE_MANTISSA;
    if price.0.is_sign_negative() || (!small && price > Price::MAX_PLAUSIBLE) {
        return Err(format!(
            "{field} {} is outside 0..={}",
            price.0,
            Price::MAX_PLAUSIBLE.0
        ));
    }
    Ok(())
}

/// [`Price::MAX_PLAUSIBLE`] in whole rupees: a price whose mantissa is at most this is within it.
const PLAUSIBLE_MANTISSA: u128 = 1_000_000_000;

fn quantity(field: &str, quantity: Quantity) -> Result<(), String> {
    if quantity.0 == 0 {
        return Err(format!(
            "{field} is 0: an order or fill trades at least one unit"
        ));
    }
    Ok(())
}

fn tick_plausible(tick: &MarketTick) -> Result<(), String> {
    positive_price("last_price", tick.last_price)?;
    if let Some(average) = tick.average_traded_price {
        bounded_price("average_traded_price", average)?;
    }
    if let Some(ohlc) = &tick.ohlc {
        for (field, price) in [
            ("ohlc.open", ohlc.open),
            ("ohlc.high", ohlc.high),
            ("ohlc.low", ohlc.low),
            ("ohlc.close", ohlc.close),
        ] {
            bounded_price(field, price)?;
        }
    }
    Ok(())
}

fn tick_ref_plausible(tick: &TickRef) -> Result<(), String> {
    positive_price("tick.last_price", tick.last_price)
}

fn signal_plausible(signal: &TradingSignal) -> Result<(), String> {
    quantity("quantity", signal.quantity)?;
    if let Some(limit) = signal.limit_price {
        positive_price("limit_price", limit)?;
    }
    tick_ref_plausible(&signal.tick)
}

fn order_plausible(order: &OrderSubmitted) -> Result<(), String> {
    quantity("quantity", order.quantity)?;
    match order.limit_price {
        Some(limit) => positive_price("limit_price", limit),
        None => Ok(()),
    }
}

fn fill_plausible(fill: &OrderFilled) -> Result<(), String> {
    quantity("quantity", fill.quantity)?;
    positive_price("fill_price", fill.fill_price)?;
    fees_plausible(&fill.fees)
}

fn fees_plausible(fees: &FeeBreakdown) -> Result<(), String> {
    for (field, amount) in [
        ("fees.brokerage", fees.brokerage),
        ("fees.stt", fees.stt),
        ("fees.exchange_charges", fees.exchange_charges),
        ("fees.sebi_charges", fees.sebi_charges),
        ("fees.gst", fees.gst),
        ("fees.stamp_duty", fees.stamp_duty),
        ("fees.total", fees.total),
    ] {
        if amount.0.is_sign_negative() || amount > Money::MAX_PLAUSIBLE {
            return Err(format!(
                "{field} {} is outside 0..={}",
                amount.0,
                Money::MAX_PLAUSIBLE.0
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    #[test]
    fn limits_are_the_round_numbers_they_claim() {
        assert_eq!(Price::MAX_PLAUSIBLE.0, Decimal::from(1_000_000_000u64));
        assert_eq!(
            Money::MAX_PLAUSIBLE.0,
            Decimal::from(1_000_000_000_000_000u64)
        );
        // The largest plausible notional does not overflow.
        let notional = Price::MAX_PLAUSIBLE.0.checked_mul(Decimal::from(u32::MAX));
        assert!(notional.is_some());
    }

    #[test]
    fn impossible_figures_are_named() {
        assert!(quantity("quantity", Quantity(0))
            .unwrap_err()
            .contains("quantity is 0"));
        assert!(positive_price("last_price", Price(Decimal::ZERO))
            .unwrap_err()
            .contains("not positive"));
        let huge: Decimal = "99999999999999999999999.99".parse().unwrap();
        assert!(positive_price("last_price", Price(huge))
            .unwrap_err()
            .contains("outside"));
        assert!(positive_price("last_price", Price(Decimal::new(150_005, 2))).is_ok());
    }
}
