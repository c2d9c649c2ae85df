//! The paper trader: a pure state machine that turns validated signals into order events and fills.
//!
//! **Causal pricing.** A MARKET order is priced from the signal's own tick
//! ([`TickRef`](alpha_panda_core::TickRef) price), never
//! from the last tick the trader happened to see, then moved against the trader by slippage: BUY pays
//! `p·(1 + bps/10⁴)` rounded *up* to the tick grid, SELL receives `p·(1 − bps/10⁴)` rounded *down*
//! (never below one tick). `bps` is drawn uniformly from `[slippage_bps_min, slippage_bps_max]` (in
//! 1/10000 steps of that range) by a ChaCha8 generator seeded with SHA-256(configured seed, signal
//! event id), so a fill never depends on scheduling and a replay gives the same fills.
//!
//! A LIMIT order is acknowledged and rests; it fills at its limit price on the first tick of its
//! instrument whose exchange time is *later* than the signal's tick and that trades through the limit
//! (buy: tick price ≤ limit; sell: ≥ limit). Time order by exchange timestamp keeps this reproducible.
//!
//! Every order emits `Submitted` first, then `Acknowledged` and `Filled` (or `Acknowledged` only, for a
//! resting LIMIT), or `Failed` with a reason when it cannot be executed: zero quantity, a tick for
//! another instrument, a MARKET signal whose tick has no positive price, a LIMIT without a positive
//! limit price. Fees come from the [`FeeModel`]. The order id is `paper-{signal event id}`.

use std::collections::BTreeMap;

use alpha_panda_core::{
    EventId, ExecutionMode, FeesSource, Instrument, InstrumentToken, MarketTick, OrderFilled,
    OrderId, OrderType, Price, Quantity, Side, StrategyId, Timestamp, ValidatedSignal,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::order_event::{OrderEvent, OrderRef};
use super::FeeModel;
use crate::error::ServiceError;

/// Paper trading configuration. Missing keys take the defaults; unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Seed of the slippage generator (combined with each signal's event id).
    pub seed: u64,
    /// Smallest slippage in basis points (default 0).
    pub slippage_bps_min: Decimal,
    /// Largest slippage in basis points (default 5).
    pub slippage_bps_max: Decimal,
    /// Charges applied to each fill.
    pub fees: FeeModel,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            slippage_bps_min: Decimal::ZERO,
            slippage_bps_max: Decimal::from(5),
            fees: FeeModel::default(),
        }
    }
}

/// A LIMIT order waiting for a tick that trades through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestingOrder {
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell.
    pub side: Side,
    /// Units.
    pub quantity: Quantity,
    /// The limit.
    pub limit_price: Price,
    /// Exchange time of the signal's tick; only strictly later ticks can fill the order.
    pub after: Timestamp,
}

/// The paper trader. Serializable for checkpointing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperTrader {
    config: PaperConfig,
    /// Tick size and trading symbol per instrument.
    instruments: BTreeMap<InstrumentToken, (Decimal, String)>,
    /// Resting LIMIT orders in arrival order.
    resting: Vec<RestingOrder>,
}

/// Tick size assumed for instruments missing from the master (NSE equities).
const DEFAULT_TICK: Decimal = Decimal::from_parts(5, 0, 0, false, 2);

/// The paper order id of a signal event.
///
/// # Errors
/// [`ServiceError::OrderId`] if the id cannot be formed (not expected for UUID event ids).
pub fn paper_order_id(signal_event_id: EventId) -> Result<OrderId, ServiceError> {
    OrderId::new(format!("paper-{signal_event_id}")).map_err(|e| ServiceError::OrderId {
        event_id: signal_event_id.to_string(),
        reason: e.reason.to_string(),
    })
}

impl PaperTrader {
    /// A trader for `instruments` (used for tick sizes and trading symbols).
    pub fn new(config: PaperConfig, instruments: &[Instrument]) -> Self {
        Self {
            config,
            instruments: instruments
                .iter()
                .map(|i| {
                    let tick = if i.tick_size > Decimal::ZERO {
                        i.tick_size
                    } else {
                        DEFAULT_TICK
                    };
                    (i.instrument_token, (tick, i.tradingsymbol.clone()))
                })
                .collect(),
            resting: Vec::new(),
        }
    }

    /// LIMIT orders waiting to fill, in arrival order.
    pub fn resting_orders(&self) -> &[RestingOrder] {
        &self.resting
    }

    /// Restores resting orders saved by an earlier run (the configuration stays this run's).
    pub fn restore_resting(&mut self, resting: Vec<RestingOrder>) {
        self.resting = resting;
    }

    fn tick_size(&self, token: InstrumentToken) -> Decimal {
        self.instruments.get(&token).map_or(DEFAULT_TICK, |i| i.0)
    }

    fn symbol(&self, token: InstrumentToken) -> Option<String> {
        self.instruments.get(&token).map(|i| i.1.clone())
    }

    /// The slippage in basis points for a signal event (pure function of seed and id).
    pub fn slippage_bps(&self, signal_event_id: EventId) -> Decimal {
        let (lo, hi) = (self.config.slippage_bps_min, self.config.slippage_bps_max);
        // A range of one value needs no draw (the draw would land on it).
        if lo == hi {
            return lo;
        }
        let mut hasher = Sha256::new();
        hasher.update(self.config.seed.to_be_bytes());
        hasher.update(signal_event_id.0.as_bytes());
        let mut rng = ChaCha8Rng::from_seed(hasher.finalize().into());
        let step: u32 = rng.gen_range(0..=10_000);
        let (lo, hi) = (self.config.slippage_bps_min, self.config.slippage_bps_max);
        let (lo, hi) = if hi < lo { (hi, lo) } else { (lo, hi) };
        lo + (hi - lo) * Decimal::from(step) / Decimal::from(10_000)
    }

    /// The MARKET fill price of `price` after slippage, on the tick grid, against the trader.
    fn slipped_price(&self, side: Side, price: Decimal, bps: Decimal, tick: Decimal) -> Price {
        let moved = price * bps / Decimal::from(10_000);
        let ticks = match side {
            Side::Buy => ((price + moved) / tick).ceil(),
            Side::Sell => ((price - moved) / tick).floor().max(Decimal::ONE),
        };
        Price(ticks * tick)
    }

    /// Handles an approved signal (`signal_event_id` is the validated signal event's id).
    ///
    /// # Errors
    /// [`ServiceError::OrderId`] only if no order id can be formed from the event id.
    pub fn place(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
    ) -> Result<Vec<OrderEvent>, ServiceError> {
        let signal = &validated.signal;
        let order_id = paper_order_id(signal_event_id)?;
        if self.resting.iter().any(|o| o.order_id == order_id) {
            // Already handled (a redelivery): the order rests; nothing new happens.
            return Ok(Vec::new());
        }
        let token = signal.instrument_token;
        let order = OrderRef::of_signal(&order_id, signal, ExecutionMode::Paper);
        let mut events = vec![order.submitted(signal_event_id, signal)];
        let failed = |reason: String| order.failed(None, signal.quantity, reason, false);
        if signal.quantity.0 == 0 {
            events.push(failed("quantity must be at least 1".into()));
            return Ok(events);
        }
        if signal.tick.instrument_token != token {
            events.push(failed(format!(
                "the signal's tick is for instrument {}, not {token}; the order cannot be priced",
                signal.tick.instrument_token
            )));
            return Ok(events);
        }
        let ack = order.acknowledged(order_id.as_str());
        match signal.order_type {
            OrderType::Market => {
                let price = signal.tick.last_price.0;
                if price <= Decimal::ZERO {
                    events.push(failed(format!(
                        "the signal's tick has no price ({price}); a MARKET order is priced only from the tick that caused it"
                    )));
                    return Ok(events);
                }
                let bps = self.slippage_bps(signal_event_id);
                let fill_price = self.slipped_price(signal.side, price, bps, self.tick_size(token));
                events.push(ack);
                events.push(OrderEvent::Filled(self.fill(
                    &order_id,
                    &signal.strategy_id,
                    token,
                    signal.side,
                    signal.quantity,
                    fill_price,
                    signal.tick.exchange_timestamp,
                )));
            }
            OrderType::Limit => match signal.limit_price {
                Some(limit) if limit.0 > Decimal::ZERO => {
                    events.push(ack);
                    self.resting.push(RestingOrder {
                        order_id: order_id.clone(),
                        strategy_id: signal.strategy_id.clone(),
                        instrument_token: token,
                        side: signal.side,
                        quantity: signal.quantity,
                        limit_price: limit,
                        after: signal.tick.exchange_timestamp,
                    });
                }
                _ => events.push(failed("a LIMIT order needs a positive limit price".into())),
            },
        }
        Ok(events)
    }

    /// Handles a market tick: fills resting LIMIT orders it trades through, in arrival order.
    pub fn fill_resting(&mut self, tick: &MarketTick) -> Vec<OrderEvent> {
        let price = tick.last_price;
        // Every tick asks; most find nothing resting.
        if self.resting.is_empty() || price.0 <= Decimal::ZERO {
            return Vec::new();
        }
        let (filled, resting): (Vec<RestingOrder>, Vec<RestingOrder>) =
            std::mem::take(&mut self.resting)
                .into_iter()
                .partition(|o| {
                    o.instrument_token == tick.instrument_token
                        && tick.exchange_timestamp > o.after
                        && match o.side {
                            Side::Buy => price <= o.limit_price,
                            Side::Sell => price >= o.limit_price,
                        }
                });
        self.resting = resting;
        filled
            .into_iter()
            .map(|o| {
                OrderEvent::Filled(self.fill(
                    &o.order_id,
                    &o.strategy_id,
                    o.instrument_token,
                    o.side,
                    o.quantity,
                    o.limit_price,
                    tick.exchange_timestamp,
                ))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        order_id: &OrderId,
        strategy_id: &StrategyId,
        token: InstrumentToken,
        side: Side,
        quantity: Quantity,
        fill_price: Price,
        filled_at: Timestamp,
    ) -> OrderFilled {
        OrderFilled {
            order_id: order_id.clone(),
            broker_order_id: Some(order_id.as_str().to_string()),
            strategy_id: strategy_id.clone(),
            instrument_token: token,
            tradingsymbol: self.symbol(token),
            side,
            quantity,
            fill_price,
            fees: self.config.fees.charges(side, quantity, fill_price),
            fees_source: FeesSource::Model,
            execution_mode: ExecutionMode::Paper,
            filled_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market_feed::nse_universe;
    use crate::strategy::test_support::tick;
    use alpha_panda_core::{TickRef, TradingSignal};
    use rust_decimal_macros::dec;

    const RELIANCE: u32 = 738561;

    fn trader(seed: u64, min: Decimal, max: Decimal) -> PaperTrader {
        PaperTrader::new(
            PaperConfig {
                seed,
                slippage_bps_min: min,
                slippage_bps_max: max,
                fees: FeeModel::default(),
            },
            &nse_universe(),
        )
    }

    fn validated(
        side: Side,
        order_type: OrderType,
        limit: Option<Decimal>,
        tick_price: Decimal,
        seq: i64,
    ) -> ValidatedSignal {
        let t = tick(RELIANCE, tick_price, seq);
        ValidatedSignal {
            signal: TradingSignal {
                strategy_id: StrategyId::new("s1").unwrap(),
                instrument_token: InstrumentToken(RELIANCE),
                side,
                quantity: Quantity(10),
                target_quantity: side.sign() * 10,
                order_type,
                limit_price: limit.map(Price),
                reason: "test".into(),
                tick: TickRef {
                    instrument_token: t.instrument_token,
                    last_price: t.last_price,
                    exchange_timestamp: t.exchange_timestamp,
                    event_id: EventId::new_root(),
                },
            },
            signal_event_id: EventId::new_root(),
            rules_checked: Vec::new().into(),
        }
    }

    fn fills(events: &[OrderEvent]) -> Vec<&OrderFilled> {
        events
            .iter()
            .filter_map(|e| match e {
                OrderEvent::Filled(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn market_orders_fill_from_the_signal_tick_not_the_last_seen_tick() {
        let mut t = trader(1, dec!(0), dec!(0));
        t.fill_resting(&tick(RELIANCE, dec!(1500), 50));
        let v = validated(Side::Buy, OrderType::Market, None, dec!(1450.05), 10);
        let events = t.place(&v, v.signal_event_id).unwrap();
        assert!(matches!(events[0], OrderEvent::Submitted(_)));
        assert!(matches!(events[1], OrderEvent::Acknowledged(_)));
        let f = fills(&events)[0];
        assert_eq!(f.fill_price, Price(dec!(1450.05)));
        assert_eq!(f.filled_at, v.signal.tick.exchange_timestamp);
        assert_eq!(f.tradingsymbol.as_deref(), Some("RELIANCE"));
        assert_eq!(f.execution_mode, ExecutionMode::Paper);
        assert_eq!(
            f.fees,
            FeeModel::default().charges(Side::Buy, Quantity(10), Price(dec!(1450.05)))
        );
        assert_eq!(f.order_id.as_str(), format!("paper-{}", v.signal_event_id));
    }

    #[test]
    fn slippage_is_adverse_on_grid_and_reproducible() {
        let t = trader(7, dec!(1), dec!(20));
        for i in 0..200 {
            let buy = validated(Side::Buy, OrderType::Market, None, dec!(1450.05), i);
            let sell = validated(Side::Sell, OrderType::Market, None, dec!(1450.05), i);
            let bp = fills(&t.clone().place(&buy, buy.signal_event_id).unwrap())[0].fill_price;
            let sp = fills(&t.clone().place(&sell, sell.signal_event_id).unwrap())[0].fill_price;
            assert!(bp.0 > dec!(1450.05) && bp.0 <= dec!(1453.05), "{bp}");
            assert!(sp.0 < dec!(1450.05) && sp.0 >= dec!(1447.05), "{sp}");
            assert!(bp.is_on_tick(dec!(0.05)) && sp.is_on_tick(dec!(0.05)));
            // Same seed + same event id → same price, whatever else happened in between.
            let mut other = trader(7, dec!(1), dec!(20));
            other.fill_resting(&tick(RELIANCE, dec!(9999), 1));
            let again = fills(&other.place(&buy, buy.signal_event_id).unwrap())[0].fill_price;
            assert_eq!(again, bp);
        }
        let id = EventId::new_root();
        assert_ne!(
            trader(1, dec!(0), dec!(20)).slippage_bps(id),
            trader(2, dec!(0), dec!(20)).slippage_bps(id)
        );
    }

    #[test]
    fn limit_orders_rest_and_fill_on_a_later_tick_through_the_limit() {
        let mut t = trader(1, dec!(0), dec!(5));
        let v = validated(
            Side::Buy,
            OrderType::Limit,
            Some(dec!(1440)),
            dec!(1450),
            10,
        );
        let events = t.place(&v, v.signal_event_id).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(t.resting_orders().len(), 1);
        // Redelivery does nothing.
        assert!(t.place(&v, v.signal_event_id).unwrap().is_empty());
        // Same or earlier exchange time never fills, even through the limit.
        assert!(t.fill_resting(&tick(RELIANCE, dec!(1430), 10)).is_empty());
        assert!(t.fill_resting(&tick(RELIANCE, dec!(1441), 11)).is_empty());
        assert!(t.fill_resting(&tick(408065, dec!(1), 12)).is_empty());
        let out = t.fill_resting(&tick(RELIANCE, dec!(1439.95), 13));
        let f = fills(&out)[0];
        assert_eq!(f.fill_price, Price(dec!(1440)));
        assert_eq!(f.filled_at, tick(RELIANCE, dec!(1), 13).exchange_timestamp);
        assert!(t.resting_orders().is_empty());

        let sell = validated(
            Side::Sell,
            OrderType::Limit,
            Some(dec!(1460)),
            dec!(1450),
            20,
        );
        t.place(&sell, sell.signal_event_id).unwrap();
        assert!(t
            .fill_resting(&tick(RELIANCE, dec!(1459.95), 21))
            .is_empty());
        assert_eq!(
            fills(&t.fill_resting(&tick(RELIANCE, dec!(1460), 22)))[0].fill_price,
            Price(dec!(1460))
        );
    }

    #[test]
    fn unpriceable_orders_fail_with_a_reason() {
        let mut t = trader(1, dec!(0), dec!(5));
        let v = validated(Side::Buy, OrderType::Market, None, dec!(0), 1);
        let events = t.place(&v, v.signal_event_id).unwrap();
        assert_eq!(events.len(), 2);
        match &events[1] {
            OrderEvent::Failed(f) => {
                assert!(f.reason.contains("no price"));
                assert!(!f.retryable);
            }
            other => panic!("{other:?}"),
        }
        let no_limit = validated(Side::Buy, OrderType::Limit, None, dec!(100), 1);
        assert!(matches!(
            t.place(&no_limit, no_limit.signal_event_id).unwrap()[1],
            OrderEvent::Failed(_)
        ));
    }

    #[test]
    fn state_round_trips_for_checkpointing() {
        let mut t = trader(3, dec!(0), dec!(5));
        let v = validated(
            Side::Buy,
            OrderType::Limit,
            Some(dec!(1440)),
            dec!(1450),
            10,
        );
        t.place(&v, v.signal_event_id).unwrap();
        let back: PaperTrader = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
