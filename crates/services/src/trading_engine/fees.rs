//! Charges of one fill, itemised like Zerodha's contract note.
//!
//! Defaults are Zerodha's equity **intraday** charges on NSE:
//! - brokerage: 0.03 % of turnover, capped at ₹20 per order;
//! - STT: 0.025 % of turnover, sell side only;
//! - exchange transaction charge: 0.00297 % of turnover (NSE);
//! - SEBI turnover fee: ₹10 per crore (0.0001 %);
//! - GST: 18 % of (brokerage + exchange charge + SEBI fee);
//! - stamp duty: 0.003 % of turnover, buy side only.
//!
//! **Rounding.** Each component is computed exactly from the turnover (price × quantity), GST from
//! the *unrounded* brokerage, exchange and SEBI amounts; then every component is rounded to the paisa,
//! half away from zero, and `total` is the sum of the rounded components, so the itemised figures
//! always add up to the total. (Kite's virtual contract note reports unrounded components; its total
//! rounds to the same paisa in the reference example — see the tests.)

use alpha_panda_core::{FeeBreakdown, Money, Price, Quantity, Side};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Rates of the fee model. Missing keys take the defaults; unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeeModel {
    /// Brokerage as a fraction of turnover (0.0003 = 0.03 %).
    pub brokerage_rate: Decimal,
    /// Brokerage cap per order in rupees (None: uncapped).
    pub brokerage_cap: Option<Decimal>,
    /// STT on buys, fraction of turnover.
    pub stt_buy_rate: Decimal,
    /// STT on sells, fraction of turnover.
    pub stt_sell_rate: Decimal,
    /// Exchange transaction charge, fraction of turnover.
    pub exchange_rate: Decimal,
    /// SEBI fee in rupees per crore (₹1,00,00,000) of turnover.
    pub sebi_per_crore: Decimal,
    /// GST rate on brokerage + exchange + SEBI charges.
    pub gst_rate: Decimal,
    /// Stamp duty on buys, fraction of turnover.
    pub stamp_duty_buy_rate: Decimal,
}

impl Default for FeeModel {
    /// Zerodha equity intraday (NSE).
    fn default() -> Self {
        Self {
            brokerage_rate: Decimal::new(3, 4),
            brokerage_cap: Some(Decimal::from(20)),
            stt_buy_rate: Decimal::ZERO,
            stt_sell_rate: Decimal::new(25, 5),
            exchange_rate: Decimal::new(297, 7),
            sebi_per_crore: Decimal::from(10),
            gst_rate: Decimal::new(18, 2),
            stamp_duty_buy_rate: Decimal::new(3, 5),
        }
    }
}

fn paisa(d: Decimal) -> Money {
    Money(d).round_to_paisa()
}

impl FeeModel {
    /// The charges of filling `quantity` at `price` on `side`.
    pub fn charges(&self, side: Side, quantity: Quantity, price: Price) -> FeeBreakdown {
        let turnover = (price * quantity).0;
        let mut brokerage = turnover * self.brokerage_rate;
        if let Some(cap) = self.brokerage_cap {
            brokerage = brokerage.min(cap);
        }
        let stt_rate = match side {
            Side::Buy => self.stt_buy_rate,
            Side::Sell => self.stt_sell_rate,
        };
        let stt = turnover * stt_rate;
        let exchange = turnover * self.exchange_rate;
        let sebi = turnover * self.sebi_per_crore / Decimal::from(10_000_000);
        let gst = (brokerage + exchange + sebi) * self.gst_rate;
        let stamp = match side {
            Side::Buy => turnover * self.stamp_duty_buy_rate,
            Side::Sell => Decimal::ZERO,
        };
        let mut fees = FeeBreakdown {
            brokerage: paisa(brokerage),
            stt: paisa(stt),
            exchange_charges: paisa(exchange),
            sebi_charges: paisa(sebi),
            gst: paisa(gst),
            stamp_duty: paisa(stamp),
            dp_charges: Default::default(),
            total: Money::ZERO,
        };
        fees.total = fees.brokerage
            + fees.stt
            + fees.exchange_charges
            + fees.sebi_charges
            + fees.gst
            + fees.stamp_duty;
        fees
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn worked_example_intraday_round_trip_100_reliance_at_2500() {
        // Turnover ₹2,50,000 each way.
        let m = FeeModel::default();
        let buy = m.charges(Side::Buy, Quantity(100), Price(dec!(2500)));
        assert_eq!(buy.brokerage, Money(dec!(20))); // 75 capped at 20
        assert_eq!(buy.stt, Money(dec!(0)));
        assert_eq!(buy.exchange_charges, Money(dec!(7.43))); // 7.425
        assert_eq!(buy.sebi_charges, Money(dec!(0.25)));
        assert_eq!(buy.gst, Money(dec!(4.98))); // 18% of 27.675 = 4.9815
        assert_eq!(buy.stamp_duty, Money(dec!(7.50)));
        assert_eq!(buy.total, Money(dec!(40.16)));
        let sell = m.charges(Side::Sell, Quantity(100), Price(dec!(2500)));
        assert_eq!(sell.stt, Money(dec!(62.50)));
        assert_eq!(sell.stamp_duty, Money::ZERO);
        assert_eq!(sell.total, Money(dec!(95.16)));
    }

    #[test]
    fn small_orders_pay_percentage_brokerage() {
        let f = FeeModel::default().charges(Side::Buy, Quantity(10), Price(dec!(500)));
        // Turnover 5000: brokerage 1.50, exchange 0.1485, SEBI 0.005, GST 18% of 1.6535 = 0.29763.
        assert_eq!(f.brokerage, Money(dec!(1.50)));
        assert_eq!(f.exchange_charges, Money(dec!(0.15)));
        assert_eq!(f.sebi_charges, Money(dec!(0.01)));
        assert_eq!(f.gst, Money(dec!(0.30)));
        assert_eq!(f.stamp_duty, Money(dec!(0.15)));
        assert_eq!(f.total, Money(dec!(2.11)));
    }

    #[test]
    fn reproduces_kite_virtual_contract_note_total() {
        // virtual_contract_note.json: BUY 1 SBIN @ 560, CNC (delivery) at the note's rates: no
        // brokerage, STT 0.1 % both sides, exchange 0.00335 %, no stamp duty. Note total 0.5826968.
        let delivery = FeeModel {
            brokerage_rate: Decimal::ZERO,
            brokerage_cap: None,
            stt_buy_rate: dec!(0.001),
            stt_sell_rate: dec!(0.001),
            exchange_rate: dec!(0.0000335),
            sebi_per_crore: dec!(10),
            gst_rate: dec!(0.18),
            stamp_duty_buy_rate: Decimal::ZERO,
        };
        let f = delivery.charges(Side::Buy, Quantity(1), Price(dec!(560)));
        assert_eq!(f.stt, Money(dec!(0.56)));
        assert_eq!(f.exchange_charges, Money(dec!(0.02))); // 0.01876
        assert_eq!(f.total, Money(dec!(0.5826968)).round_to_paisa());
    }

    #[test]
    fn config_is_strict_and_defaults_fill_gaps() {
        let m: FeeModel = serde_json::from_str(r#"{"brokerage_cap": "0"}"#).unwrap();
        assert_eq!(m.brokerage_cap, Some(Decimal::ZERO));
        assert_eq!(m.stt_sell_rate, dec!(0.00025));
        assert!(serde_json::from_str::<FeeModel>(r#"{"brokerage": "1"}"#).is_err());
    }
}
