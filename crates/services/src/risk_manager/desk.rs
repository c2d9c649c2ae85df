//! The risk desk of one broker namespace: the risk manager's decisions without the log. Every raw
//! signal's target becomes the order that reaches it from the namespace's position and orders in
//! flight, judged against every rule and the kill switch; fills and failures move positions and
//! release deferred signals. It has no I/O and no clock: the [`super::service::RiskManager`]
//! handler feeds it from the log and makes its state durable, and the backtest drives it directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alpha_panda_core::{
    calendar, derive_event_id, keys, Broker, EventBroker, EventId, Instrument, InstrumentToken,
    OrderFailed, OrderFilled, OrderId, OrderType, Payload, Price, Quantity, RejectedSignal,
    RuleViolation, Side, SignalAtTarget, StrategyId, Timestamp, TopicMap, TradingSignal,
    ValidatedSignal,
};
use alpha_panda_stream::Output;

use crate::risk_manager::{
    evaluate, rule_names, size_order, RiskDecision, RiskLimits, RiskState, Sizing,
};
use crate::trading_engine::paper::paper_order_id;
use crate::trading_engine::zerodha::zerodha_order_id;

/// The service name: the scope of the answers' ids.
pub const SERVICE: &str = "risk_manager";

/// The id of the one answer to the raw signal `signal_event_id` (validated, rejected or at target):
/// the id the runtime would derive for the first output of that input, named here because a
/// deferred answer is published while another input (a fill) is handled.
fn answer_id(signal_event_id: EventId) -> EventId {
    derive_event_id(signal_event_id, SERVICE, 0)
}

/// A raw signal's answer as `decide` worked it out once: its id, and the order an approval
/// becomes (both derived by hashing, so not derived again in `judge`).
struct Answer {
    id: EventId,
    own_order: Option<OrderId>,
}

/// Counters the status line and metrics read.
#[derive(Debug, Default)]
pub struct RiskStats {
    /// Signals answered `signal_at_target`: no order was needed.
    pub at_target: AtomicU64,
    /// Fills skipped because they were applied before.
    pub duplicate_fills: AtomicU64,
}

/// The risk decisions of one namespace.
pub struct RiskDesk {
    broker: Broker,
    topics: TopicMap,
    limits: RiskLimits,
    rules_checked: Arc<[String]>,
    state: RiskState,
    instruments: Arc<HashMap<InstrumentToken, Instrument>>,
    /// Why the namespace's kill switch is engaged, while it is.
    kill_switch: Option<String>,
    stats: Arc<RiskStats>,
    /// Whether the state changed since [`RiskDesk::take_changed`] last asked.
    changed: bool,
}

impl RiskDesk {
    /// The desk of `broker` under `limits`, starting from `state`.
    pub fn new(
        broker: Broker,
        limits: RiskLimits,
        instruments: Arc<HashMap<InstrumentToken, Instrument>>,
        state: RiskState,
    ) -> Self {
        Self {
            broker,
            topics: TopicMap::new(broker),
            rules_checked: rule_names(&limits).into(),
            limits,
            state,
            instruments,
            kill_switch: None,
            stats: Arc::default(),
            changed: false,
        }
    }

    /// The state the decisions stand on.
    pub fn state(&self) -> &RiskState {
        &self.state
    }

    /// The counters.
    pub fn stats(&self) -> Arc<RiskStats> {
        self.stats.clone()
    }

    /// Why the kill switch is engaged, while it is.
    pub fn kill_switch(&self) -> Option<&str> {
        self.kill_switch.as_deref()
    }

    /// Engages the kill switch with a reason, or releases it (`None`).
    pub fn set_kill_switch(&mut self, engaged: Option<String>) {
        self.kill_switch = engaged;
    }

    /// Whether the state changed since the last call (what must be checkpointed).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// A tick: the fallback price of the rules. Soft state (the rules price from the signal's own
    /// tick), rebuilt by the next tick after a restart, so it does not count as a change.
    pub fn on_tick(&mut self, token: InstrumentToken, price: Price) {
        self.state.on_tick(token, price);
    }

    /// A raw signal: its answers, in order (an earlier deferred signal's first).
    pub fn on_signal(
        &mut self,
        signal: &TradingSignal,
        signal_event_id: EventId,
        now: Timestamp,
    ) -> Vec<Output> {
        self.decide(signal, signal_event_id, now)
    }

    /// A fill: moves the position and releases a signal deferred behind it. `None` when the fill
    /// was applied before.
    pub fn on_fill(
        &mut self,
        fill_event_id: EventId,
        fill: &OrderFilled,
        now: Timestamp,
    ) -> Option<Vec<Output>> {
        let day = calendar::trading_day(fill.filled_at);
        // Orders of earlier days expired at their close: a fill today cannot be theirs.
        if self.state.roll_to(day) {
            self.changed = true;
        }
        if !self.state.apply_fill(fill_event_id, fill, day) {
            self.stats.duplicate_fills.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.changed = true;
        Some(self.release_deferred(&fill.strategy_id, fill.instrument_token, now))
    }

    /// A failed order: it leaves the orders in flight and releases a signal deferred behind it.
    pub fn on_failed(&mut self, failure: &OrderFailed, now: Timestamp) -> Vec<Output> {
        if !self.state.order_failed(&failure.order_id) {
            return Vec::new();
        }
        self.changed = true;
        self.release_deferred(&failure.strategy_id, failure.instrument_token, now)
    }

    /// The kill switch's violation for `order`, when the switch is engaged and the order would
    /// add exposure (exits still go).
    fn kill_switch_violation(&self, order: &TradingSignal) -> Option<RuleViolation> {
        let reason = self.kill_switch.as_ref()?;
        let (strategy, token) = (&order.strategy_id, order.instrument_token);
        let now = self.state.position(strategy, token) + self.state.in_flight(strategy, token);
        let after = now + order.side.sign() * order.quantity.as_i64();
        let reduces = after.abs() < now.abs() && after.signum() * now.signum() >= 0;
        (!reduces).then(|| RuleViolation {
            rule: "kill_switch".into(),
            limit: "engaged".into(),
            actual: format!("{now} → {after}"),
            message: format!(
                "kill switch: new entries in {} are halted ({reason}); only orders that reduce a                  position go until an operator releases it",
                self.broker
            ),
        })
    }

    /// The instant rules are judged at. Paper decides at the causing tick's exchange time, so a
    /// replay of the same ticks decides the same way whatever the scheduling; Zerodha decides at
    /// the wall clock (never later than the tick), since real orders go out now.
    fn decision_time(&self, signal: &TradingSignal, now: Timestamp) -> Timestamp {
        match self.broker {
            Broker::Paper => signal.tick.exchange_timestamp,
            Broker::Zerodha => now.max(signal.tick.exchange_timestamp),
        }
    }

    /// Answers `signal`: the order that reaches its target from the namespace's position and
    /// orders in flight, judged by every rule; no order when that is the target already; or, when
    /// the order would go against an order still in flight, nothing yet (see
    /// [`DeferredSignal`](crate::risk_manager::state::DeferredSignal)).
    /// Every raw signal gets exactly one answer, under the id derived from it, whenever it comes.
    fn decide(
        &mut self,
        signal: &TradingSignal,
        signal_event_id: EventId,
        now: Timestamp,
    ) -> Vec<Output> {
        let at = self.decision_time(signal, now);
        let day = calendar::trading_day(at);
        if self.state.roll_to(day) {
            self.changed = true;
        }
        let (strategy, token) = (&signal.strategy_id, signal.instrument_token);
        // Judged again after a restart, a signal must get the answer it got before: if the order
        // it became was already filled (its fill read back before the signal), those units are
        // its own and do not count against it.
        let answer = answer_id(signal_event_id);
        let own_order = self.order_of(answer);
        let own_filled = own_order
            .as_ref()
            .map_or(0, |order| self.state.filled_of(order));
        let position = self.state.position(strategy, token) - own_filled;
        let in_flight = self.state.in_flight(strategy, token);
        // Orders in flight count as filled when sizing; one that may still fail (any Zerodha
        // order, a resting LIMIT) must not be traded against: the order would overshoot the
        // target if it failed.
        let (uncertain_buys, uncertain_sells) = self.state.may_fail_by_side(strategy, token);
        let mut outputs = Vec::new();
        match size_order(signal.target_quantity, position + in_flight) {
            Sizing::Order { side, .. }
                if (side == Side::Buy && uncertain_sells < 0)
                    || (side == Side::Sell && uncertain_buys > 0) =>
            {
                if let Some(old) = self.state.defer(signal.clone(), signal_event_id) {
                    outputs.push(self.at_target(
                        &old.signal,
                        old.signal_event_id,
                        position,
                        in_flight,
                    ));
                }
                self.changed = true;
            }
            sizing => {
                if let Some(old) = self.state.take_deferred(strategy, token) {
                    outputs.push(self.at_target(
                        &old.signal,
                        old.signal_event_id,
                        position,
                        in_flight,
                    ));
                    self.changed = true;
                }
                outputs.push(match sizing {
                    Sizing::AtTarget => {
                        self.at_target(signal, signal_event_id, position, in_flight)
                    }
                    Sizing::Order { side, quantity } => self.judge(
                        signal,
                        signal_event_id,
                        Answer {
                            id: answer,
                            own_order,
                        },
                        side,
                        quantity,
                        at,
                    ),
                });
            }
        }
        outputs
    }

    /// Judges the order `side` `quantity` that `signal` needs, by every rule.
    fn judge(
        &mut self,
        signal: &TradingSignal,
        signal_event_id: EventId,
        answer: Answer,
        side: Side,
        quantity: Quantity,
        at: Timestamp,
    ) -> Output {
        let day = calendar::trading_day(at);
        let (strategy, token) = (&signal.strategy_id, signal.instrument_token);
        let order = TradingSignal {
            side,
            quantity,
            ..signal.clone()
        };
        let id = answer.id;
        let instrument = self.instruments.get(&token);
        let mut decision = evaluate(&order, &self.state, &self.limits, instrument, at);
        if let Some(violation) = self.kill_switch_violation(&order) {
            decision = match decision {
                RiskDecision::Approved => RiskDecision::Rejected(vec![violation]),
                RiskDecision::Rejected(mut violations) => {
                    violations.push(violation);
                    RiskDecision::Rejected(violations)
                }
            };
        }
        let (topic, payload) = match decision {
            RiskDecision::Approved => {
                // The order the trading engine makes of it is followed until it fills or fails.
                if let Some(order_id) = answer.own_order {
                    let ordered = side.sign() * quantity.as_i64();
                    let signed = ordered - self.state.filled_of(&order_id);
                    // Nothing of it is left in flight when its fills were read back before it.
                    if signed != 0 && signed.signum() == ordered.signum() {
                        // A paper MARKET order fills at its own tick, always; others may not.
                        let may_fail =
                            self.broker == Broker::Zerodha || order.order_type != OrderType::Market;
                        self.state
                            .record_in_flight(order_id, strategy, token, signed, may_fail, day);
                    }
                }
                self.state.record_approved(strategy, day);
                self.changed = true;
                (
                    self.topics.signals_validated(),
                    Payload::ValidatedSignal(ValidatedSignal {
                        signal: order,
                        signal_event_id,
                        rules_checked: self.rules_checked.clone(),
                    }),
                )
            }
            RiskDecision::Rejected(violations) => (
                self.topics.signals_rejected(),
                Payload::RejectedSignal(RejectedSignal {
                    signal: order,
                    signal_event_id,
                    violations,
                }),
            ),
        };
        Output {
            topic,
            key: keys::strategy_instrument_key(strategy, token),
            payload,
            broker: EventBroker::from(self.broker),
            id: Some(id),
        }
    }

    /// The order the trading engine makes of the validated signal whose id is `id`.
    fn order_of(&self, id: EventId) -> Option<OrderId> {
        match self.broker {
            Broker::Paper => paper_order_id(id).ok(),
            Broker::Zerodha => zerodha_order_id(id).ok(),
        }
    }

    /// The answer to a signal whose target needs no order.
    fn at_target(
        &self,
        signal: &TradingSignal,
        signal_event_id: EventId,
        position: i64,
        in_flight: i64,
    ) -> Output {
        self.stats.at_target.fetch_add(1, Ordering::Relaxed);
        Output {
            topic: self.topics.signals_at_target(),
            key: keys::strategy_instrument_key(&signal.strategy_id, signal.instrument_token),
            payload: Payload::SignalAtTarget(SignalAtTarget {
                signal: signal.clone(),
                signal_event_id,
                position,
                in_flight,
            }),
            broker: EventBroker::from(self.broker),
            id: Some(answer_id(signal_event_id)),
        }
    }

    /// A fill or a failure changed what is in flight for `strategy` in `token`: a signal that
    /// waited for it is answered now.
    fn release_deferred(
        &mut self,
        strategy: &StrategyId,
        token: InstrumentToken,
        now: Timestamp,
    ) -> Vec<Output> {
        match self.state.take_deferred(strategy, token) {
            Some(deferred) => {
                self.changed = true;
                self.decide(&deferred.signal, deferred.signal_event_id, now)
            }
            None => Vec::new(),
        }
    }
}
