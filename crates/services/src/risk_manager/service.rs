//! The risk manager service for one broker namespace: every raw signal's target is turned into the
//! order that reaches it from the namespace's position and orders in flight, and answered with a
//! `validated_signal`, a `rejected_signal` listing each failed rule, or `signal_at_target` when no
//! order is needed. Positions come from fills, orders leave the in-flight set when they fill or
//! fail; the state is checkpointed with its offsets and mirrored to the cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alpha_panda_cache::RiskStateCache;
use alpha_panda_core::{
    calendar, derive_event_id, keys, Broker, EventBroker, EventId, EventType, Instrument,
    InstrumentToken, OrderId, OrderType, Payload, Quantity, RejectedSignal, RuleViolation, Side,
    SignalAtTarget, StrategyId, Timestamp, TopicMap, TradingSignal, ValidatedSignal,
};
use alpha_panda_store::{Store, StoreError};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, LogIdentity, Output,
    PartitionAnchor,
};
use tracing::{debug, info, warn};

use crate::durable::Durable;
use crate::risk_manager::{
    evaluate, rule_names, size_order, RiskDecision, RiskLimits, RiskState, Sizing,
};
use crate::trading_engine::paper::paper_order_id;
use crate::trading_engine::zerodha::zerodha_order_id;

/// The service name.
pub const SERVICE: &str = "risk_manager";

/// The risk manager of one namespace.
pub struct RiskManager {
    broker: Broker,
    topics: TopicMap,
    limits: RiskLimits,
    rules_checked: Vec<String>,
    state: RiskState,
    instruments: Arc<HashMap<InstrumentToken, Instrument>>,
    durable: Durable,
    cache: Option<RiskStateCache>,
    stats: Arc<RiskStats>,
    kill_switch: KillSwitchWatch,
}

/// The namespace's kill switch as last read from the store (operators set it through the API or
/// `alpha-panda kill-switch`); read again every [`KILL_SWITCH_CHECK`].
struct KillSwitchWatch {
    store: Store,
    /// Why it is engaged, while it is.
    engaged: Option<String>,
}

/// How often the risk manager looks at the kill switch.
pub const KILL_SWITCH_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The id of the one answer to the raw signal `signal_event_id` (validated, rejected or at target):
/// the id the runtime would derive for the first output of that input, named here because a
/// deferred answer is published while another input (a fill) is handled.
fn answer_id(signal_event_id: EventId) -> EventId {
    derive_event_id(signal_event_id, SERVICE, 0)
}

/// Counters the status line and metrics read.
#[derive(Debug, Default)]
pub struct RiskStats {
    /// Signals answered `signal_at_target`: no order was needed.
    pub at_target: AtomicU64,
    /// Fills skipped because they were applied before.
    pub duplicate_fills: AtomicU64,
}

impl RiskManager {
    /// Opens the risk manager of `broker`, resuming from its checkpoint when there is one.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open(
        broker: Broker,
        limits: RiskLimits,
        instruments: Arc<HashMap<InstrumentToken, Instrument>>,
        store: Store,
        cache: Option<RiskStateCache>,
    ) -> Result<Self, StoreError> {
        let engaged = store
            .kill_switches()
            .get(broker)
            .await?
            .filter(|s| s.engaged)
            .map(|s| s.reason);
        if let Some(reason) = &engaged {
            warn!(%broker, %reason, "the kill switch is engaged: new entries are rejected");
        }
        let kill_switch = KillSwitchWatch {
            store: store.clone(),
            engaged,
        };
        let (durable, state) = Durable::open(store, format!("{SERVICE}:{broker}")).await?;
        if state.is_some() {
            info!(%broker, "risk manager resumed from its checkpoint");
        }
        Ok(Self {
            broker,
            topics: TopicMap::new(broker),
            rules_checked: rule_names(&limits),
            limits,
            state: state.unwrap_or_default(),
            instruments,
            durable,
            cache,
            stats: Arc::default(),
            kill_switch,
        })
    }

    /// Whether the namespace's kill switch halts new entries.
    pub fn kill_switch_engaged(&self) -> bool {
        self.kill_switch.engaged.is_some()
    }

    /// The kill switch's violation for `order`, when the switch is engaged and the order would
    /// add exposure (exits still go).
    fn kill_switch_violation(&self, order: &TradingSignal) -> Option<RuleViolation> {
        let reason = self.kill_switch.engaged.as_ref()?;
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

    /// The live counters.
    pub fn stats(&self) -> Arc<RiskStats> {
        self.stats.clone()
    }

    /// The current state (positions, counters).
    pub fn state(&self) -> &RiskState {
        &self.state
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
            self.durable.changed();
        }
        let (strategy, token) = (&signal.strategy_id, signal.instrument_token);
        // Judged again after a restart, a signal must get the answer it got before: if the order
        // it became was already filled (its fill read back before the signal), those units are
        // its own and do not count against it.
        let own_filled = self
            .own_order(signal_event_id)
            .map_or(0, |order| self.state.filled_of(&order));
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
                self.durable.changed();
            }
            sizing => {
                if let Some(old) = self.state.take_deferred(strategy, token) {
                    outputs.push(self.at_target(
                        &old.signal,
                        old.signal_event_id,
                        position,
                        in_flight,
                    ));
                    self.durable.changed();
                }
                outputs.push(match sizing {
                    Sizing::AtTarget => {
                        self.at_target(signal, signal_event_id, position, in_flight)
                    }
                    Sizing::Order { side, quantity } => {
                        self.judge(signal, signal_event_id, side, quantity, at)
                    }
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
        let id = answer_id(signal_event_id);
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
                if let Some(order_id) = self.own_order(signal_event_id) {
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
                self.durable.changed();
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

    /// The order the trading engine makes of the raw signal `signal_event_id` once approved.
    fn own_order(&self, signal_event_id: EventId) -> Option<OrderId> {
        let id = answer_id(signal_event_id);
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
                self.durable.changed();
                self.decide(&deferred.signal, deferred.signal_event_id, now)
            }
            None => Vec::new(),
        }
    }

    /// The write that mirrors positions, as they are now, to the cache for readers outside this
    /// process (the checkpoint stays the source of truth; the cache is a read model).
    fn mirror_to_cache(&self) -> Option<impl Future<Output = Result<(), HandlerError>> + 'static> {
        let cache = self.cache.clone()?;
        let broker = self.broker;
        let positions: Vec<(StrategyId, InstrumentToken, i64)> = self
            .state
            .positions
            .iter()
            .flat_map(|(strategy, positions)| {
                positions
                    .iter()
                    .map(|(token, position)| (strategy.clone(), *token, position.quantity))
            })
            .collect();
        Some(async move {
            for (strategy, token, quantity) in positions {
                cache
                    .set_position(broker, &strategy, token, quantity)
                    .await
                    .map_err(|e| HandlerError {
                        class: e.class(),
                        message: format!("risk state cache: {e}"),
                    })?;
            }
            Ok(())
        })
    }
}

impl Handler for RiskManager {
    fn name(&self) -> &str {
        SERVICE
    }

    fn topics(&self) -> Vec<String> {
        vec![
            self.topics.signals_raw(),
            TopicMap::market_ticks(),
            self.topics.orders_filled(),
            self.topics.orders_failed(),
        ]
    }

    fn broker(&self) -> EventBroker {
        EventBroker::from(self.broker)
    }

    /// A tick only refreshes the fallback last price: the latest one fetched is all that counts.
    fn conflates(&self, event_type: EventType) -> bool {
        event_type == EventType::MarketTick
    }

    fn health(&self) -> Result<(), String> {
        self.durable.health()
    }

    async fn leave(&mut self) {
        self.durable.release().await;
    }

    fn checkpoint_anchors(&self) -> Vec<PartitionAnchor> {
        self.durable.anchors()
    }

    fn attach_log(&mut self, log: &LogIdentity, foreign: &[(String, i32)]) {
        self.durable.attach_log(log, foreign);
    }

    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        if self.durable.already_applied(input.position) {
            return Ok(Vec::new());
        }
        self.durable.saw(input.now);
        match &input.envelope.payload {
            Payload::MarketTick(tick) => {
                // Soft state: the rules price from the signal's own tick; this is only a fallback,
                // rebuilt by the next tick after a restart, so it does not force a checkpoint.
                self.state.on_tick(tick.instrument_token, tick.last_price);
                Ok(Vec::new())
            }
            Payload::TradingSignal(signal) => Ok(self.decide(signal, input.envelope.id, input.now)),
            Payload::OrderFilled(fill) => {
                let day = calendar::trading_day(fill.filled_at);
                // Orders of earlier days expired at their close: a fill today cannot be theirs.
                if self.state.roll_to(day) {
                    self.durable.changed();
                }
                if !self.state.apply_fill(input.envelope.id, fill, day) {
                    debug!(event_id = %input.envelope.id, "fill applied before; skipped");
                    self.stats.duplicate_fills.fetch_add(1, Ordering::Relaxed);
                    return Ok(Vec::new());
                }
                self.durable.changed();
                Ok(self.release_deferred(&fill.strategy_id, fill.instrument_token, input.now))
            }
            Payload::OrderFailed(failure) => {
                if !self.state.order_failed(&failure.order_id) {
                    return Ok(Vec::new());
                }
                self.durable.changed();
                Ok(
                    self.release_deferred(
                        &failure.strategy_id,
                        failure.instrument_token,
                        input.now,
                    ),
                )
            }
            other => Err(HandlerError::poison(format!(
                "{} event on {}: the risk manager reads trading_signal, market_tick, order_filled \
                 and order_failed",
                other.event_type(),
                input.position.topic
            ))),
        }
    }

    fn timer_interval(&self) -> Option<std::time::Duration> {
        Some(KILL_SWITCH_CHECK)
    }

    /// Reads the kill switch. A store that cannot be read keeps the last state known (logged):
    /// the checkpoint path reports the store's outage.
    async fn on_timer(&mut self, _now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        match self
            .kill_switch
            .store
            .kill_switches()
            .get(self.broker)
            .await
        {
            Ok(switch) => {
                let engaged = switch.filter(|s| s.engaged).map(|s| s.reason);
                if engaged != self.kill_switch.engaged {
                    match &engaged {
                        Some(reason) => warn!(broker = %self.broker, %reason,
                            "kill switch engaged: new entries are rejected"),
                        None => info!(broker = %self.broker, "kill switch released"),
                    }
                    self.kill_switch.engaged = engaged;
                }
            }
            Err(e) => debug!(error = %e, "could not read the kill switch; keeping the last state"),
        }
        Ok(Vec::new())
    }

    fn begin_checkpoint(
        &mut self,
        offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        let Some(save) = self.durable.begin_save(&self.state, offsets)? else {
            return Ok(None);
        };
        Ok(Some(save.into_checkpoint_then(self.mirror_to_cache())))
    }

    fn end_checkpoint(&mut self, offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        self.durable.end_save(offsets, outcome.is_ok());
    }
}
