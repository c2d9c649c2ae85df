//! Zerodha's charges to the paisa, by segment and exchange, from a dated schedule of rates.
//!
//! This is the charge model of the review `reviews/zerodha.md` Part 1. It is pure: the trade date is a
//! parameter, nothing reads a clock, and all money is exact [`Decimal`]. The older [`super::fees`]
//! model (one flat rate set, per-fill rounding) is left as it is for the paper trader.
//!
//! # Segments and rates
//! Four segments ([`Segment`]): equity intraday (MIS), equity delivery (CNC), futures and options, on
//! NSE or BSE ([`Exchange`]). Every rate is a fraction of the order's turnover (price × quantity; for
//! options the premium):
//!
//! | line | intraday | delivery | futures | options |
//! |---|---|---|---|---|
//! | brokerage, per executed order | 0.03 % or ₹20, the lower | ₹0 | 0.03 % or ₹20 | ₹20 flat |
//! | STT | 0.025 % sell | 0.1 % buy and sell | 0.02 % sell (0.05 % from 2026-04-01) | 0.1 % of premium, sell (0.15 % from 2026-04-01) |
//! | NSE transaction charge + IPFT | 0.00297 % + 0.0001 % | the same | 0.00173 % + 0.0001 % | 0.03503 % + 0.0005 % |
//! | BSE transaction charge (no IPFT) | 0.00375 % | 0.00375 % | — | — |
//! | SEBI fee | ₹10 per crore | the same | the same | the same |
//! | stamp duty, buy only | 0.003 % | 0.015 % | 0.002 % | 0.003 % |
//! | GST | 18 % of (brokerage + transaction charge + IPFT + SEBI fee) | the same | the same | the same |
//!
//! BSE futures and options have no rates here and are refused ([`ChargesError::SegmentNotOnExchange`])
//! rather than charged at a guess.
//!
//! **Dated rates.** Rates change by circular and by budget, so they are data: [`ChargeSchedule`] is a
//! list of [`RateSet`]s, each in force from its [`DatedRates::effective_from`] until the next one
//! starts, and an order is charged at the set in force on its trade date. [`ChargeSchedule::zerodha`]
//! is built from one table in this file (`ZERODHA_RATE_SETS`); a new rate change is one more entry
//! there. The table starts on 2024-10-01, when NSE replaced its volume slabs by flat rates; an earlier
//! trade date is an error, not the oldest rates we happen to know.
//!
//! # Rounding
//! The amounts of a charging unit (one order, or the orders of a round trip) are computed exactly and
//! rounded once, the way Zerodha's brokerage calculator does, which reproduces its published figures to
//! the paisa:
//! - brokerage is worked out per order (the ₹20 cap is per order id, not per fill) and rounded to the
//!   paisa;
//! - STT and stamp duty are rounded to the nearest rupee, half up;
//! - the exchange charge (transaction charge plus IPFT, as Kite's contract note reports
//!   `exchange_turnover_charge`), the SEBI fee and GST are rounded to the paisa, half up;
//! - GST is 18 % of brokerage + exchange charge + IPFT + SEBI fee, taken before those are rounded
//!   (as Kite's virtual contract note does; the calculator rounds them first, which can move GST by a
//!   paisa but gives the same published figures);
//! - `total` is the sum of the rounded components, so the itemised lines always add up.
//!
//! # Partial fills
//! An order filled in several fills must not pay a ₹20 cap, or a rupee of rounding, per fill. So a fill
//! is charged incrementally ([`ChargeSchedule::charge_fill`]): its charges are the charges of the
//! order's fills so far, this one included, minus the charges of the fills before it, line by line.
//! The sum telescopes, so the fees of an order's fills always add up to charging the whole order once
//! ([`ChargeSchedule::charge_order`]), caps and rupee rounding included. Every line is a monotone
//! function of the order's turnover, so no fill is ever charged a negative amount; a rupee of STT
//! lands on the fill whose turnover crosses the half rupee.
//!
//! # What is not on the contract note
//! The DP charge on a delivery sell (₹13 + GST per scrip per day) is posted to the ledger, not the
//! contract note, so it is its own figure, [`ChargeSchedule::dp_charge`], outside an order's
//! charges; the live trader adds it to the first delivery sell of a scrip each day, as
//! [`FeeBreakdown::dp_charges`].
//! A CNC bought and sold on the same day is charged as intraday: [`Segment::for_cnc`] picks the segment.

use alpha_panda_core::{ErrorClass, FeeBreakdown, Money, Price, Quantity, Side};
use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

/// The exchange an order trades on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// National Stock Exchange (NSE cash, NFO derivatives).
    Nse,
    /// Bombay Stock Exchange.
    Bse,
}

/// What is traded and how it is held: the four ways Zerodha charges an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Equity bought and sold the same day: MIS, or a CNC round trip closed on its buy day.
    EquityIntraday,
    /// Equity held overnight (CNC).
    EquityDelivery,
    /// Futures (NRML or MIS); turnover is price × quantity in units.
    Futures,
    /// Options; turnover is premium × quantity in units.
    Options,
}

impl Segment {
    /// The segment a CNC (delivery) round trip is charged as: intraday when the shares are sold on the
    /// day they were bought, delivery otherwise. Charge both orders of the round trip with it.
    pub fn for_cnc(bought_on: NaiveDate, sold_on: NaiveDate) -> Segment {
        if bought_on == sold_on {
            Segment::EquityIntraday
        } else {
            Segment::EquityDelivery
        }
    }
}

/// How brokerage is charged on one executed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brokerage {
    /// No brokerage (equity delivery).
    Free,
    /// `rate` of the order's turnover, at most `cap` rupees per order.
    PercentCapped {
        /// Fraction of turnover (0.0003 = 0.03 %).
        rate: Decimal,
        /// Rupees per order.
        cap: Decimal,
    },
    /// A flat amount in rupees per executed order (options), whatever its size.
    FlatPerOrder(Decimal),
}

impl Brokerage {
    /// The exact brokerage of an order with this turnover; nothing if nothing was executed.
    fn of_order(self, turnover: Decimal, executed: bool) -> Decimal {
        if !executed {
            return Decimal::ZERO;
        }
        match self {
            Brokerage::Free => Decimal::ZERO,
            Brokerage::PercentCapped { rate, cap } => (turnover * rate).min(cap),
            Brokerage::FlatPerOrder(amount) => amount,
        }
    }
}

/// An exchange's charges on one segment, as fractions of turnover, each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeRates {
    /// The exchange transaction charge.
    pub transaction: Decimal,
    /// The investor protection fund trust charge (IPFT); zero where the exchange levies none.
    pub ipft: Decimal,
}

/// The rates of one segment. Fractions are of the order's turnover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRates {
    /// Brokerage per executed order.
    pub brokerage: Brokerage,
    /// STT on buys.
    pub stt_buy: Decimal,
    /// STT on sells.
    pub stt_sell: Decimal,
    /// Stamp duty on buys (sells pay none).
    pub stamp_buy: Decimal,
    /// NSE's charges, or `None` if the segment is not charged on NSE.
    pub nse: Option<ExchangeRates>,
    /// BSE's charges, or `None` if the segment is not charged on BSE.
    pub bse: Option<ExchangeRates>,
}

impl SegmentRates {
    fn exchange(&self, exchange: Exchange) -> Option<ExchangeRates> {
        match exchange {
            Exchange::Nse => self.nse,
            Exchange::Bse => self.bse,
        }
    }
}

/// Every rate in force over one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSet {
    /// Equity intraday (MIS).
    pub equity_intraday: SegmentRates,
    /// Equity delivery (CNC).
    pub equity_delivery: SegmentRates,
    /// Futures.
    pub futures: SegmentRates,
    /// Options.
    pub options: SegmentRates,
    /// SEBI turnover fee, fraction of turnover, each side (₹10 per crore = 0.000001).
    pub sebi: Decimal,
    /// GST on brokerage, exchange charges (IPFT included) and the SEBI fee; also on the DP charge.
    pub gst: Decimal,
    /// DP charge in rupees, before GST, per scrip per day on delivery sells.
    pub dp_charge: Decimal,
}

impl RateSet {
    /// The rates of one segment.
    pub fn segment(&self, segment: Segment) -> &SegmentRates {
        match segment {
            Segment::EquityIntraday => &self.equity_intraday,
            Segment::EquityDelivery => &self.equity_delivery,
            Segment::Futures => &self.futures,
            Segment::Options => &self.options,
        }
    }
}

/// A rate set and the first trade date it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatedRates {
    /// The first trade date of the period; it lasts until the next entry's date.
    pub effective_from: NaiveDate,
    /// The rates of the period.
    pub rates: RateSet,
}

/// Why charges cannot be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargesError {
    /// The trade date is before the first rate set of the schedule.
    #[error("no charge rates in force on {trade_date}; the schedule starts on {starts_on}, add a rate set that covers the date")]
    NoRatesInForce {
        /// The order's trade date.
        trade_date: NaiveDate,
        /// The schedule's first date.
        starts_on: NaiveDate,
    },
    /// The schedule has no rates for this segment on this exchange.
    #[error(
        "no charge rates for {segment:?} on {exchange:?}; add the exchange's rates to the schedule"
    )]
    SegmentNotOnExchange {
        /// The segment.
        segment: Segment,
        /// The exchange.
        exchange: Exchange,
    },
    /// A fill has a negative price.
    #[error("fill price {price} is negative; charges are only defined on non-negative prices and premiums")]
    NegativePrice {
        /// The price.
        price: Price,
    },
    /// A round trip was given a buy leg that is not a buy, or a sell leg that is not a sell.
    #[error("round trip legs must be a buy order then a sell order, got {buy:?} then {sell:?}")]
    RoundTripSides {
        /// The side of the first leg.
        buy: Side,
        /// The side of the second leg.
        sell: Side,
    },
    /// A schedule was built with no rate sets.
    #[error("a charge schedule needs at least one rate set")]
    EmptySchedule,
    /// A schedule's rate sets are not in strictly increasing date order.
    #[error("charge schedule dates must strictly increase: {next} follows {previous}")]
    UnorderedSchedule {
        /// The earlier entry's date.
        previous: NaiveDate,
        /// The entry that does not come after it.
        next: NaiveDate,
    },
}

impl ChargesError {
    /// How the processor runtime should treat this error: every case is a gap in the rates or a bad
    /// input, which no retry fixes.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Business
    }
}

/// One execution of an order: `quantity` units at `price` (the premium for options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Units filled.
    pub quantity: Quantity,
    /// Price per unit.
    pub price: Price,
}

/// What the charges of an order depend on besides its fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerms {
    /// The exchange.
    pub exchange: Exchange,
    /// The segment (see [`Segment::for_cnc`] for a CNC closed on its buy day).
    pub segment: Segment,
    /// Buy or sell.
    pub side: Side,
    /// The trade date, which picks the rate set.
    pub trade_date: NaiveDate,
}

/// An order and its fills, as charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFills<'a> {
    /// The order's terms.
    pub terms: OrderTerms,
    /// Its fills so far.
    pub fills: &'a [Fill],
}

/// The DP (depository) charge on a delivery sell, a ledger line apart from the contract note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpCharge {
    /// The charge before GST.
    pub charge: Money,
    /// GST on it.
    pub gst: Money,
    /// Charge plus GST.
    pub total: Money,
}

/// `mantissa / 10^scale`, usable in constants.
const fn dec(mantissa: u32, scale: u32) -> Decimal {
    Decimal::from_parts(mantissa, 0, 0, false, scale)
}

/// A calendar date, checked when the constant is evaluated (an invalid date fails the build).
const fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(d) => d,
        None => panic!("invalid date in the charge schedule"),
    }
}

/// 0.03 % or ₹20, whichever is lower.
const PERCENT_OR_20: Brokerage = Brokerage::PercentCapped {
    rate: dec(3, 4),
    cap: dec(20, 0),
};

/// NSE cash (intraday and delivery) from 2024-10-01: 0.00297 % + IPFT ₹10/crore.
const NSE_CASH_2024_10: ExchangeRates = ExchangeRates {
    transaction: dec(297, 7),
    ipft: dec(1, 6),
};

/// BSE cash (groups A, B and the other non-exclusive scrips): 0.00375 %, no IPFT.
const BSE_CASH_2022_12: ExchangeRates = ExchangeRates {
    transaction: dec(375, 7),
    ipft: Decimal::ZERO,
};

/// Zerodha's rates from 2024-10-01 (NSE flat rates; F&O STT from the 2024 budget).
const RATES_2024_10: RateSet = RateSet {
    equity_intraday: SegmentRates {
        brokerage: PERCENT_OR_20,
        stt_buy: Decimal::ZERO,
        stt_sell: dec(25, 5),
        stamp_buy: dec(3, 5),
        nse: Some(NSE_CASH_2024_10),
        bse: Some(BSE_CASH_2022_12),
    },
    equity_delivery: SegmentRates {
        brokerage: Brokerage::Free,
        stt_buy: dec(1, 3),
        stt_sell: dec(1, 3),
        stamp_buy: dec(15, 5),
        nse: Some(NSE_CASH_2024_10),
        bse: Some(BSE_CASH_2022_12),
    },
    futures: SegmentRates {
        brokerage: PERCENT_OR_20,
        stt_buy: Decimal::ZERO,
        stt_sell: dec(2, 4),
        stamp_buy: dec(2, 5),
        nse: Some(ExchangeRates {
            transaction: dec(173, 7),
            ipft: dec(1, 6),
        }),
        bse: None,
    },
    options: SegmentRates {
        brokerage: Brokerage::FlatPerOrder(dec(20, 0)),
        stt_buy: Decimal::ZERO,
        stt_sell: dec(1, 3),
        stamp_buy: dec(3, 5),
        nse: Some(ExchangeRates {
            transaction: dec(3503, 7),
            ipft: dec(5, 6),
        }),
        bse: None,
    },
    sebi: dec(1, 6),
    gst: dec(18, 2),
    dp_charge: dec(13, 0),
};

/// From 2026-04-01 (Budget 2026): STT on futures 0.05 % and on options 0.15 % of the premium.
const RATES_2026_04: RateSet = RateSet {
    futures: SegmentRates {
        stt_sell: dec(5, 4),
        ..RATES_2024_10.futures
    },
    options: SegmentRates {
        stt_sell: dec(15, 4),
        ..RATES_2024_10.options
    },
    ..RATES_2024_10
};

/// Zerodha's schedule, oldest first. A rate change is one more entry at the end.
const ZERODHA_RATE_SETS: &[DatedRates] = &[
    DatedRates {
        effective_from: date(2024, 10, 1),
        rates: RATES_2024_10,
    },
    DatedRates {
        effective_from: date(2026, 4, 1),
        rates: RATES_2026_04,
    },
];

/// Rates by trade date, and the charges of orders, fills and round trips under them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeSchedule {
    /// Strictly increasing by `effective_from`, never empty.
    rate_sets: Vec<DatedRates>,
}

impl Default for ChargeSchedule {
    /// Zerodha's schedule.
    fn default() -> Self {
        Self::zerodha()
    }
}

/// Exact amounts of a charging unit, before rounding.
#[derive(Debug, Default)]
struct Exact {
    /// Per order, already rounded to the paisa.
    brokerage: Decimal,
    stt: Decimal,
    /// Transaction charge plus IPFT.
    exchange: Decimal,
    sebi: Decimal,
    gst: Decimal,
    stamp: Decimal,
}

fn to_paisa(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn to_rupee(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
}

impl ChargeSchedule {
    /// Zerodha's schedule: the 2024-10-01 rates, then the 2026-04-01 F&O STT.
    pub fn zerodha() -> Self {
        Self {
            rate_sets: ZERODHA_RATE_SETS.to_vec(),
        }
    }

    /// A schedule from rate sets, oldest first.
    ///
    /// # Errors
    /// [`ChargesError::EmptySchedule`] without rate sets; [`ChargesError::UnorderedSchedule`] unless
    /// the dates strictly increase.
    pub fn new(rate_sets: Vec<DatedRates>) -> Result<Self, ChargesError> {
        if rate_sets.is_empty() {
            return Err(ChargesError::EmptySchedule);
        }
        if let Some(pair) = rate_sets
            .windows(2)
            .find(|pair| pair[0].effective_from >= pair[1].effective_from)
        {
            return Err(ChargesError::UnorderedSchedule {
                previous: pair[0].effective_from,
                next: pair[1].effective_from,
            });
        }
        Ok(Self { rate_sets })
    }

    /// The rate sets, oldest first.
    pub fn rate_sets(&self) -> &[DatedRates] {
        &self.rate_sets
    }

    /// The rate set in force on `trade_date`: the latest one that starts on or before it.
    ///
    /// # Errors
    /// [`ChargesError::NoRatesInForce`] if the date is before the schedule's first entry.
    pub fn rates_on(&self, trade_date: NaiveDate) -> Result<&RateSet, ChargesError> {
        let in_force = self
            .rate_sets
            .partition_point(|set| set.effective_from <= trade_date);
        match in_force.checked_sub(1).and_then(|i| self.rate_sets.get(i)) {
            Some(set) => Ok(&set.rates),
            None => Err(ChargesError::NoRatesInForce {
                trade_date,
                starts_on: self
                    .rate_sets
                    .first()
                    .map_or(trade_date, |set| set.effective_from),
            }),
        }
    }

    /// The charges of one order with all its fills, as one unit: brokerage capped once, every line
    /// rounded once. An order without executed quantity costs nothing.
    ///
    /// # Errors
    /// [`ChargesError::NoRatesInForce`], [`ChargesError::SegmentNotOnExchange`] or
    /// [`ChargesError::NegativePrice`].
    pub fn charge_order(&self, order: OrderFills<'_>) -> Result<FeeBreakdown, ChargesError> {
        self.charge_orders(&[order])
    }

    /// The charges of one more fill of an order: the order's charges with `fill` and the fills before
    /// it, minus its charges with only `earlier_fills`, line by line. The fees of all of an order's
    /// fills, charged this way in turn, add up to [`ChargeSchedule::charge_order`] of the whole order.
    ///
    /// # Errors
    /// As [`ChargeSchedule::charge_order`].
    pub fn charge_fill(
        &self,
        terms: OrderTerms,
        earlier_fills: &[Fill],
        fill: Fill,
    ) -> Result<FeeBreakdown, ChargesError> {
        let mut fills = Vec::with_capacity(earlier_fills.len() + 1);
        fills.extend_from_slice(earlier_fills);
        fills.push(fill);
        let before = self.charge_order(OrderFills {
            terms,
            fills: earlier_fills,
        })?;
        let after = self.charge_order(OrderFills {
            terms,
            fills: &fills,
        })?;
        Ok(after.minus(&before))
    }

    /// The charges of a round trip, a buy order and a sell order charged together the way Zerodha's
    /// brokerage calculator does: brokerage per order, every other line over both orders and rounded
    /// once. Each leg is charged at the rates of its own trade date.
    ///
    /// Rounding over the pair can differ from the sum of the two orders charged apart by a paisa per
    /// paisa-rounded line, or a rupee of STT or stamp duty.
    ///
    /// # Errors
    /// [`ChargesError::RoundTripSides`] unless `buy` is a buy and `sell` a sell; otherwise as
    /// [`ChargeSchedule::charge_order`].
    pub fn charge_round_trip(
        &self,
        buy: OrderFills<'_>,
        sell: OrderFills<'_>,
    ) -> Result<FeeBreakdown, ChargesError> {
        if buy.terms.side != Side::Buy || sell.terms.side != Side::Sell {
            return Err(ChargesError::RoundTripSides {
                buy: buy.terms.side,
                sell: sell.terms.side,
            });
        }
        self.charge_orders(&[buy, sell])
    }

    /// The charges of several orders as one unit (a contract note): brokerage per order, every other
    /// line computed exactly over all of them and rounded once.
    ///
    /// # Errors
    /// As [`ChargeSchedule::charge_order`], for any of the orders.
    pub fn charge_orders(&self, orders: &[OrderFills<'_>]) -> Result<FeeBreakdown, ChargesError> {
        let mut exact = Exact::default();
        for order in orders {
            self.accumulate(order, &mut exact)?;
        }
        Ok(FeeBreakdown::itemised(
            Money(exact.brokerage),
            Money(to_rupee(exact.stt)),
            Money(to_paisa(exact.exchange)),
            Money(to_paisa(exact.sebi)),
            Money(to_paisa(exact.gst)),
            Money(to_rupee(exact.stamp)),
        ))
    }

    /// The DP charge for one scrip sold from delivery (CNC held overnight) on `trade_date`: once per
    /// scrip per day, however many sell orders. Not part of the contract note or of an order's
    /// charges.
    ///
    /// # Errors
    /// [`ChargesError::NoRatesInForce`].
    pub fn dp_charge(&self, trade_date: NaiveDate) -> Result<DpCharge, ChargesError> {
        let rates = self.rates_on(trade_date)?;
        let charge = Money(rates.dp_charge).round_to_paisa();
        let gst = Money(rates.dp_charge * rates.gst).round_to_paisa();
        Ok(DpCharge {
            charge,
            gst,
            total: charge + gst,
        })
    }

    /// Adds one order's exact amounts to a unit.
    fn accumulate(&self, order: &OrderFills<'_>, exact: &mut Exact) -> Result<(), ChargesError> {
        let terms = order.terms;
        let rates = self.rates_on(terms.trade_date)?;
        let segment = rates.segment(terms.segment);
        let exchange =
            segment
                .exchange(terms.exchange)
                .ok_or(ChargesError::SegmentNotOnExchange {
                    segment: terms.segment,
                    exchange: terms.exchange,
                })?;
        let mut turnover = Decimal::ZERO;
        let mut executed = false;
        for fill in order.fills {
            if fill.price.0 < Decimal::ZERO {
                return Err(ChargesError::NegativePrice { price: fill.price });
            }
            turnover += (fill.price * fill.quantity).0;
            executed |= fill.quantity.0 > 0;
        }
        let brokerage = to_paisa(segment.brokerage.of_order(turnover, executed));
        let (stt_rate, stamp_rate) = match terms.side {
            Side::Buy => (segment.stt_buy, segment.stamp_buy),
            Side::Sell => (segment.stt_sell, Decimal::ZERO),
        };
        let exchange_charge = turnover * (exchange.transaction + exchange.ipft);
        let sebi = turnover * rates.sebi;
        exact.brokerage += brokerage;
        exact.stt += turnover * stt_rate;
        exact.exchange += exchange_charge;
        exact.sebi += sebi;
        exact.gst += rates.gst * (brokerage + exchange_charge + sebi);
        exact.stamp += turnover * stamp_rate;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    const BEFORE_APRIL_2026: NaiveDate = date(2026, 3, 2);
    const FROM_APRIL_2026: NaiveDate = date(2026, 4, 1);

    fn terms(
        exchange: Exchange,
        segment: Segment,
        side: Side,
        trade_date: NaiveDate,
    ) -> OrderTerms {
        OrderTerms {
            exchange,
            segment,
            side,
            trade_date,
        }
    }

    fn fill(quantity: u32, price: Decimal) -> Fill {
        Fill {
            quantity: Quantity(quantity),
            price: Price(price),
        }
    }

    /// Zerodha's calculator example: buy 500 at ₹1,000, sell 500 at ₹1,000, one order each way.
    fn calculator_round_trip(
        exchange: Exchange,
        segment: Segment,
        buy_date: NaiveDate,
        sell_date: NaiveDate,
    ) -> FeeBreakdown {
        let fills = [fill(500, dec!(1000))];
        ChargeSchedule::zerodha()
            .charge_round_trip(
                OrderFills {
                    terms: terms(exchange, segment, Side::Buy, buy_date),
                    fills: &fills,
                },
                OrderFills {
                    terms: terms(exchange, segment, Side::Sell, sell_date),
                    fills: &fills,
                },
            )
            .unwrap()
    }

    fn assert_adds_up(f: &FeeBreakdown) {
        assert_eq!(
            f.total,
            f.brokerage + f.stt + f.exchange_charges + f.sebi_charges + f.gst + f.stamp_duty,
            "{f:?}"
        );
    }

    #[test]
    fn calculator_intraday_round_trip_is_224_61() {
        let d = BEFORE_APRIL_2026;
        let f = calculator_round_trip(Exchange::Nse, Segment::EquityIntraday, d, d);
        assert_eq!(f.brokerage, Money(dec!(40))); // 150 capped at 20, each order
        assert_eq!(f.stt, Money(dec!(125))); // 0.025 % of the sell
        assert_eq!(f.exchange_charges, Money(dec!(30.70))); // 29.70 + IPFT 1.00
        assert_eq!(f.sebi_charges, Money(dec!(1.00)));
        assert_eq!(f.gst, Money(dec!(12.91))); // 18 % of 71.70 = 12.906
        assert_eq!(f.stamp_duty, Money(dec!(15))); // 0.003 % of the buy
        assert_eq!(f.total, Money(dec!(224.61)));
        assert_adds_up(&f);
    }

    #[test]
    fn calculator_delivery_round_trip_is_1112_41() {
        let f = calculator_round_trip(
            Exchange::Nse,
            Segment::EquityDelivery,
            date(2026, 2, 27),
            BEFORE_APRIL_2026,
        );
        assert_eq!(f.brokerage, Money::ZERO);
        assert_eq!(f.stt, Money(dec!(1000))); // 0.1 % of both sides
        assert_eq!(f.exchange_charges, Money(dec!(30.70)));
        assert_eq!(f.gst, Money(dec!(5.71))); // 18 % of 31.70 = 5.706
        assert_eq!(f.stamp_duty, Money(dec!(75))); // 0.015 % of the buy
        assert_eq!(f.total, Money(dec!(1112.41)));
        assert_adds_up(&f);
    }

    #[test]
    fn calculator_futures_round_trip_is_179_97() {
        let d = BEFORE_APRIL_2026;
        let f = calculator_round_trip(Exchange::Nse, Segment::Futures, d, d);
        assert_eq!(f.brokerage, Money(dec!(40)));
        assert_eq!(f.stt, Money(dec!(100))); // 0.02 % of the sell
        assert_eq!(f.exchange_charges, Money(dec!(18.30))); // 17.30 + IPFT 1.00
        assert_eq!(f.gst, Money(dec!(10.67))); // 18 % of 59.30 = 10.674
        assert_eq!(f.stamp_duty, Money(dec!(10))); // 0.002 % of the buy
        assert_eq!(f.total, Money(dec!(179.97)));
        assert_adds_up(&f);
    }

    #[test]
    fn calculator_options_round_trip_is_982_63() {
        let d = BEFORE_APRIL_2026;
        let f = calculator_round_trip(Exchange::Nse, Segment::Options, d, d);
        assert_eq!(f.brokerage, Money(dec!(40))); // flat 20 per order
        assert_eq!(f.stt, Money(dec!(500))); // 0.1 % of the sell premium
        assert_eq!(f.exchange_charges, Money(dec!(355.30))); // 350.30 + IPFT 5.00
        assert_eq!(f.sebi_charges, Money(dec!(1.00)));
        assert_eq!(f.gst, Money(dec!(71.33))); // 18 % of 396.30 = 71.334
        assert_eq!(f.stamp_duty, Money(dec!(15)));
        assert_eq!(f.total, Money(dec!(982.63)));
        assert_adds_up(&f);
    }

    #[test]
    fn fno_stt_rises_on_1_april_2026() {
        let d = FROM_APRIL_2026;
        let futures = calculator_round_trip(Exchange::Nse, Segment::Futures, d, d);
        assert_eq!(futures.stt, Money(dec!(250))); // 0.05 % of 5,00,000
        assert_eq!(futures.total, Money(dec!(329.97))); // 179.97 + 150 more STT
        let options = calculator_round_trip(Exchange::Nse, Segment::Options, d, d);
        assert_eq!(options.stt, Money(dec!(750))); // 0.15 % of 5,00,000
        assert_eq!(options.total, Money(dec!(1232.63))); // 982.63 + 250 more STT

        // The last day of the old rates.
        let eve = date(2026, 3, 31);
        let futures_eve = calculator_round_trip(Exchange::Nse, Segment::Futures, eve, eve);
        assert_eq!(futures_eve.stt, Money(dec!(100)));
    }

    #[test]
    fn each_leg_pays_the_rates_of_its_own_trade_date() {
        // Futures bought on 31 March, sold on 1 April: the sell pays the new 0.05 %.
        let f = calculator_round_trip(
            Exchange::Nse,
            Segment::Futures,
            date(2026, 3, 31),
            FROM_APRIL_2026,
        );
        assert_eq!(f.stt, Money(dec!(250)));
    }

    #[test]
    fn review_worked_examples_reproduce() {
        let schedule = ChargeSchedule::zerodha();
        // §1.5: 100 shares at ₹1,500, NSE intraday. STT 37.50 and stamp 4.50 round half up.
        let fills = [fill(100, dec!(1500))];
        let d = BEFORE_APRIL_2026;
        let intraday = schedule
            .charge_round_trip(
                OrderFills {
                    terms: terms(Exchange::Nse, Segment::EquityIntraday, Side::Buy, d),
                    fills: &fills,
                },
                OrderFills {
                    terms: terms(Exchange::Nse, Segment::EquityIntraday, Side::Sell, d),
                    fills: &fills,
                },
            )
            .unwrap();
        assert_eq!(intraday.stt, Money(dec!(38)));
        assert_eq!(intraday.stamp_duty, Money(dec!(5)));
        assert_eq!(intraday.exchange_charges, Money(dec!(9.21)));
        assert_eq!(intraday.gst, Money(dec!(8.91)));
        assert_eq!(intraday.total, Money(dec!(101.42)));
        // §1.4: the same ₹1.5 lakh each way as delivery costs ₹334.22, plus the DP charge.
        let delivery = schedule
            .charge_round_trip(
                OrderFills {
                    terms: terms(Exchange::Nse, Segment::EquityDelivery, Side::Buy, d),
                    fills: &fills,
                },
                OrderFills {
                    terms: terms(
                        Exchange::Nse,
                        Segment::EquityDelivery,
                        Side::Sell,
                        date(2026, 3, 3),
                    ),
                    fills: &fills,
                },
            )
            .unwrap();
        assert_eq!(delivery.stamp_duty, Money(dec!(23))); // 22.50 half up
        assert_eq!(delivery.total, Money(dec!(334.22)));
        // §1.4: an option, 75 units at ₹100 premium, round trip at the 2026 rates: ₹64.51.
        let fills = [fill(75, dec!(100))];
        let d = FROM_APRIL_2026;
        let option = schedule
            .charge_round_trip(
                OrderFills {
                    terms: terms(Exchange::Nse, Segment::Options, Side::Buy, d),
                    fills: &fills,
                },
                OrderFills {
                    terms: terms(Exchange::Nse, Segment::Options, Side::Sell, d),
                    fills: &fills,
                },
            )
            .unwrap();
        assert_eq!(option.stt, Money(dec!(11))); // 11.25
        assert_eq!(option.stamp_duty, Money::ZERO); // 0.225
        assert_eq!(option.sebi_charges, Money(dec!(0.02))); // 0.015 half up
        assert_eq!(option.total, Money(dec!(64.51)));
    }

    #[test]
    fn bse_intraday_has_its_own_rate_and_no_ipft() {
        let d = BEFORE_APRIL_2026;
        let nse = calculator_round_trip(Exchange::Nse, Segment::EquityIntraday, d, d);
        let bse = calculator_round_trip(Exchange::Bse, Segment::EquityIntraday, d, d);
        assert_eq!(bse.exchange_charges, Money(dec!(37.50))); // 0.00375 % of 10,00,000, no IPFT
        assert_eq!(bse.gst, Money(dec!(14.13))); // 18 % of 78.50
        assert_eq!(bse.total, Money(dec!(232.63)));
        assert_eq!(
            bse.total - nse.total,
            (bse.exchange_charges - nse.exchange_charges) + (bse.gst - nse.gst)
        );
        for (a, b) in [
            (bse.brokerage, nse.brokerage),
            (bse.stt, nse.stt),
            (bse.sebi_charges, nse.sebi_charges),
            (bse.stamp_duty, nse.stamp_duty),
        ] {
            assert_eq!(a, b);
        }
    }

    #[test]
    fn bse_derivatives_and_dates_before_the_schedule_are_refused() {
        let schedule = ChargeSchedule::zerodha();
        let fills = [fill(1, dec!(100))];
        let bse_future = OrderFills {
            terms: terms(
                Exchange::Bse,
                Segment::Futures,
                Side::Buy,
                BEFORE_APRIL_2026,
            ),
            fills: &fills,
        };
        assert_eq!(
            schedule.charge_order(bse_future),
            Err(ChargesError::SegmentNotOnExchange {
                segment: Segment::Futures,
                exchange: Exchange::Bse,
            })
        );
        let too_early = OrderFills {
            terms: terms(
                Exchange::Nse,
                Segment::EquityIntraday,
                Side::Buy,
                date(2024, 9, 30),
            ),
            fills: &fills,
        };
        assert_eq!(
            schedule.charge_order(too_early),
            Err(ChargesError::NoRatesInForce {
                trade_date: date(2024, 9, 30),
                starts_on: date(2024, 10, 1),
            })
        );
        let negative = [fill(1, dec!(-0.05))];
        let order = OrderFills {
            terms: terms(Exchange::Nse, Segment::Options, Side::Sell, FROM_APRIL_2026),
            fills: &negative,
        };
        assert!(matches!(
            schedule.charge_order(order),
            Err(ChargesError::NegativePrice { .. })
        ));
    }

    #[test]
    fn round_trip_legs_must_be_buy_then_sell() {
        let fills = [fill(1, dec!(100))];
        let leg = OrderFills {
            terms: terms(
                Exchange::Nse,
                Segment::EquityIntraday,
                Side::Sell,
                BEFORE_APRIL_2026,
            ),
            fills: &fills,
        };
        assert_eq!(
            ChargeSchedule::zerodha().charge_round_trip(leg, leg),
            Err(ChargesError::RoundTripSides {
                buy: Side::Sell,
                sell: Side::Sell,
            })
        );
    }

    #[test]
    fn brokerage_is_capped_per_order_not_per_fill() {
        let schedule = ChargeSchedule::zerodha();
        let order = terms(
            Exchange::Nse,
            Segment::EquityIntraday,
            Side::Buy,
            BEFORE_APRIL_2026,
        );
        // The review's case: 1,000 shares at ₹1,500 in four fills of 250 (₹112.50 of 0.03 % each).
        let fills = [fill(250, dec!(1500)); 4];
        let per_fill: Vec<FeeBreakdown> = (0..fills.len())
            .map(|i| schedule.charge_fill(order, &fills[..i], fills[i]).unwrap())
            .collect();
        let brokerage: Vec<Money> = per_fill.iter().map(|f| f.brokerage).collect();
        assert_eq!(
            brokerage,
            [Money(dec!(20)), Money::ZERO, Money::ZERO, Money::ZERO]
        );
        let whole = schedule
            .charge_order(OrderFills {
                terms: order,
                fills: &fills,
            })
            .unwrap();
        assert_eq!(whole.brokerage, Money(dec!(20)));
        assert_eq!(per_fill.iter().map(|f| f.total).sum::<Money>(), whole.total);

        // The cap reached inside a fill: 20 shares at ₹1,000 are ₹6 of brokerage each time.
        let small = [fill(20, dec!(1000)); 4];
        let brokerage: Vec<Money> = (0..small.len())
            .map(|i| {
                schedule
                    .charge_fill(order, &small[..i], small[i])
                    .unwrap()
                    .brokerage
            })
            .collect();
        assert_eq!(
            brokerage,
            [
                Money(dec!(6)),
                Money(dec!(6)),
                Money(dec!(6)),
                Money(dec!(2))
            ]
        );

        // Options: ₹20 on the first fill of the order, nothing on the others.
        let option = terms(Exchange::Nse, Segment::Options, Side::Buy, FROM_APRIL_2026);
        let premium = [fill(75, dec!(100)); 3];
        let brokerage: Money = (0..premium.len())
            .map(|i| {
                schedule
                    .charge_fill(option, &premium[..i], premium[i])
                    .unwrap()
                    .brokerage
            })
            .sum();
        assert_eq!(brokerage, Money(dec!(20)));
    }

    #[test]
    fn an_order_without_fills_costs_nothing() {
        let schedule = ChargeSchedule::zerodha();
        for segment in [
            Segment::EquityIntraday,
            Segment::EquityDelivery,
            Segment::Futures,
            Segment::Options,
        ] {
            let f = schedule
                .charge_order(OrderFills {
                    terms: terms(Exchange::Nse, segment, Side::Buy, BEFORE_APRIL_2026),
                    fills: &[],
                })
                .unwrap();
            assert_eq!(f, FeeBreakdown::default(), "{segment:?}");
        }
    }

    #[test]
    fn stt_rupee_lands_on_the_fill_that_crosses_the_half_rupee() {
        // Intraday sell STT 0.025 %: ₹1,000 of turnover is ₹0.25. Fills of ₹1,000, ₹1,000, ₹1,000:
        // cumulative STT 0.25 → 0, 0.50 → 1, 0.75 → 1.
        let schedule = ChargeSchedule::zerodha();
        let order = terms(
            Exchange::Nse,
            Segment::EquityIntraday,
            Side::Sell,
            BEFORE_APRIL_2026,
        );
        let fills = [fill(10, dec!(100)); 3];
        let stt: Vec<Money> = (0..fills.len())
            .map(|i| {
                schedule
                    .charge_fill(order, &fills[..i], fills[i])
                    .unwrap()
                    .stt
            })
            .collect();
        assert_eq!(stt, [Money::ZERO, Money(dec!(1)), Money::ZERO]);
    }

    #[test]
    fn cnc_closed_on_its_buy_day_is_charged_as_intraday() {
        let d = BEFORE_APRIL_2026;
        let same_day = Segment::for_cnc(d, d);
        assert_eq!(same_day, Segment::EquityIntraday);
        assert_eq!(
            calculator_round_trip(Exchange::Nse, same_day, d, d),
            calculator_round_trip(Exchange::Nse, Segment::EquityIntraday, d, d)
        );
        assert_eq!(
            calculator_round_trip(Exchange::Nse, same_day, d, d).total,
            Money(dec!(224.61))
        );
        // Held overnight, it is delivery.
        let next_day = date(2026, 3, 3);
        let overnight = Segment::for_cnc(d, next_day);
        assert_eq!(overnight, Segment::EquityDelivery);
        assert_eq!(
            calculator_round_trip(Exchange::Nse, overnight, d, next_day).total,
            Money(dec!(1112.41))
        );
    }

    #[test]
    fn round_trip_rounds_once_over_both_orders() {
        // Charged apart, each intraday order's GST is 18 % of 35.85 = 6.453 → 6.45; together
        // 18 % of 71.70 = 12.906 → 12.91, the calculator's figure.
        let schedule = ChargeSchedule::zerodha();
        let d = BEFORE_APRIL_2026;
        let fills = [fill(500, dec!(1000))];
        let buy = OrderFills {
            terms: terms(Exchange::Nse, Segment::EquityIntraday, Side::Buy, d),
            fills: &fills,
        };
        let sell = OrderFills {
            terms: terms(Exchange::Nse, Segment::EquityIntraday, Side::Sell, d),
            fills: &fills,
        };
        let apart =
            schedule.charge_order(buy).unwrap().total + schedule.charge_order(sell).unwrap().total;
        assert_eq!(apart, Money(dec!(224.60)));
        assert_eq!(
            schedule.charge_round_trip(buy, sell).unwrap().total,
            Money(dec!(224.61))
        );
    }

    #[test]
    fn dp_charge_is_13_plus_gst() {
        let dp = ChargeSchedule::zerodha()
            .dp_charge(BEFORE_APRIL_2026)
            .unwrap();
        assert_eq!(dp.charge, Money(dec!(13)));
        assert_eq!(dp.gst, Money(dec!(2.34)));
        assert_eq!(dp.total, Money(dec!(15.34)));
    }

    #[test]
    fn schedule_picks_the_set_in_force_and_checks_its_order() {
        let schedule = ChargeSchedule::zerodha();
        assert_eq!(
            schedule
                .rates_on(date(2026, 3, 31))
                .unwrap()
                .futures
                .stt_sell,
            dec!(0.0002)
        );
        assert_eq!(
            schedule.rates_on(FROM_APRIL_2026).unwrap().futures.stt_sell,
            dec!(0.0005)
        );
        assert_eq!(
            schedule
                .rates_on(date(2030, 1, 1))
                .unwrap()
                .options
                .stt_sell,
            dec!(0.0015)
        );
        assert_eq!(
            ChargeSchedule::new(Vec::new()),
            Err(ChargesError::EmptySchedule)
        );
        let mut reversed = schedule.rate_sets().to_vec();
        reversed.reverse();
        assert_eq!(
            ChargeSchedule::new(reversed),
            Err(ChargesError::UnorderedSchedule {
                previous: FROM_APRIL_2026,
                next: date(2024, 10, 1),
            })
        );
        assert_eq!(
            ChargeSchedule::new(schedule.rate_sets().to_vec()),
            Ok(schedule)
        );
    }

    fn arb_terms() -> impl Strategy<Value = OrderTerms> {
        let segment = prop_oneof![
            Just(Segment::EquityIntraday),
            Just(Segment::EquityDelivery),
            Just(Segment::Futures),
            Just(Segment::Options),
        ];
        let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
        // Trade dates from 2024-10-01 to well after 2026-04-01.
        let day = 0_u64..900;
        (segment, side, any::<bool>(), day).prop_map(|(segment, side, bse, day)| {
            let exchange = match segment {
                Segment::EquityIntraday | Segment::EquityDelivery if bse => Exchange::Bse,
                _ => Exchange::Nse,
            };
            let trade_date = date(2024, 10, 1) + chrono::Days::new(day);
            terms(exchange, segment, side, trade_date)
        })
    }

    fn arb_fills() -> impl Strategy<Value = Vec<Fill>> {
        // Quantities up to 5,000 units, prices ₹0.05 to ₹10,000 on the 0.05 grid.
        proptest::collection::vec((1_u32..=5_000, 1_u32..=200_000), 1..=8).prop_map(|fills| {
            fills
                .into_iter()
                .map(|(quantity, ticks)| fill(quantity, Decimal::from(ticks) * dec!(0.05)))
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn fill_charges_add_up_to_the_order_charged_once(
            order in arb_terms(),
            fills in arb_fills(),
        ) {
            let schedule = ChargeSchedule::zerodha();
            let mut sum = FeeBreakdown::default();
            for (i, f) in fills.iter().enumerate() {
                let charged = schedule.charge_fill(order, &fills[..i], *f).unwrap();
                prop_assert_eq!(
                    charged.total,
                    charged.brokerage + charged.stt + charged.exchange_charges
                        + charged.sebi_charges + charged.gst + charged.stamp_duty
                );
                for line in [
                    charged.brokerage, charged.stt, charged.exchange_charges,
                    charged.sebi_charges, charged.gst, charged.stamp_duty,
                ] {
                    prop_assert!(line >= Money::ZERO, "negative line in {:?}", charged);
                }
                sum.brokerage += charged.brokerage;
                sum.stt += charged.stt;
                sum.exchange_charges += charged.exchange_charges;
                sum.sebi_charges += charged.sebi_charges;
                sum.gst += charged.gst;
                sum.stamp_duty += charged.stamp_duty;
                sum.total += charged.total;
            }
            let whole = schedule.charge_order(OrderFills { terms: order, fills: &fills }).unwrap();
            prop_assert_eq!(sum, whole);
            prop_assert_eq!(
                whole.total,
                whole.brokerage + whole.stt + whole.exchange_charges
                    + whole.sebi_charges + whole.gst + whole.stamp_duty
            );
            // The lines are already on their rounding grid.
            prop_assert_eq!(whole.stt.0, whole.stt.0.trunc());
            prop_assert_eq!(whole.stamp_duty.0, whole.stamp_duty.0.trunc());
            prop_assert_eq!(whole.total, whole.total.round_to_paisa());
            // Brokerage never exceeds one ₹20 cap per order.
            prop_assert!(whole.brokerage <= Money(dec!(20)));
        }
    }
}
