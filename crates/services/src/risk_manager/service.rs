//! The risk manager service for one broker namespace: every raw signal is checked against every rule
//! and answered with a `validated_signal` or a `rejected_signal` listing each failed rule. Positions
//! come from fills; the state is checkpointed with its offsets and mirrored to the cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use alpha_panda_cache::RiskStateCache;
use alpha_panda_core::{
    calendar, keys, Broker, EventBroker, EventType, Instrument, InstrumentToken, Payload,
    RejectedSignal, StrategyId, Timestamp, TopicMap, TradingSignal, ValidatedSignal,
};
use alpha_panda_store::{Store, StoreError};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, LogIdentity, Output,
};
use tracing::info;

use crate::durable::Durable;
use crate::risk_manager::{evaluate, rule_names, RiskDecision, RiskLimits, RiskState};

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
        })
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

    fn decide(
        &mut self,
        signal: &TradingSignal,
        signal_event_id: alpha_panda_core::EventId,
        now: Timestamp,
    ) -> Output {
        let at = self.decision_time(signal, now);
        let instrument = self.instruments.get(&signal.instrument_token);
        let key = keys::strategy_instrument_key(&signal.strategy_id, signal.instrument_token);
        let broker = EventBroker::from(self.broker);
        match evaluate(signal, &self.state, &self.limits, instrument, at) {
            RiskDecision::Approved => {
                self.state
                    .record_approved(&signal.strategy_id, calendar::trading_day(at));
                self.durable.changed();
                Output {
                    topic: self.topics.signals_validated(),
                    key,
                    payload: Payload::ValidatedSignal(ValidatedSignal {
                        signal: signal.clone(),
                        signal_event_id,
                        rules_checked: self.rules_checked.clone(),
                    }),
                    broker,
                    id: None,
                }
            }
            RiskDecision::Rejected(violations) => Output {
                topic: self.topics.signals_rejected(),
                key,
                payload: Payload::RejectedSignal(RejectedSignal {
                    signal: signal.clone(),
                    signal_event_id,
                    violations,
                }),
                broker,
                id: None,
            },
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
        ]
    }

    fn broker(&self) -> EventBroker {
        EventBroker::from(self.broker)
    }

    /// A tick only refreshes the fallback last price: the latest one fetched is all that counts.
    fn conflates(&self, event_type: EventType) -> bool {
        event_type == EventType::MarketTick
    }

    fn attach_log(&mut self, log: &LogIdentity) {
        self.durable.attach_log(log);
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
            Payload::TradingSignal(signal) => {
                Ok(vec![self.decide(signal, input.envelope.id, input.now)])
            }
            Payload::OrderFilled(fill) => {
                self.state
                    .apply_fill(fill, calendar::trading_day(fill.filled_at));
                self.durable.changed();
                Ok(Vec::new())
            }
            other => Err(HandlerError::poison(format!(
                "{} event on {}: the risk manager reads trading_signal, market_tick and order_filled",
                other.event_type(),
                input.position.topic
            ))),
        }
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
