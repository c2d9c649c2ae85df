//! The risk manager service for one broker namespace: every raw signal's target is turned into the
//! order that reaches it from the namespace's position and orders in flight, and answered with a
//! `validated_signal`, a `rejected_signal` listing each failed rule, or `signal_at_target` when no
//! order is needed. Positions come from fills, orders leave the in-flight set when they fill or
//! fail; the state is checkpointed with its offsets and mirrored to the cache. The decisions are
//! the [`RiskDesk`]'s; this handler feeds it from the log, watches the kill switch and makes its
//! state durable.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use alpha_panda_cache::RiskStateCache;
use alpha_panda_core::{
    Broker, EventBroker, EventType, Instrument, InstrumentToken, Payload, StrategyId, Timestamp,
    TopicMap,
};
use alpha_panda_store::{Store, StoreError};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, LogIdentity, Output,
    PartitionAnchor,
};
use tracing::{debug, info, warn};

use crate::durable::Durable;
pub use crate::risk_manager::desk::{RiskStats, SERVICE};
use crate::risk_manager::{RiskDesk, RiskLimits};

/// The risk manager of one namespace.
pub struct RiskManager {
    broker: Broker,
    topics: TopicMap,
    desk: RiskDesk,
    durable: Durable,
    cache: Option<RiskStateCache>,
    /// Where the namespace's kill switch is read (operators set it through the API or
    /// `alpha-panda kill-switch`), every [`KILL_SWITCH_CHECK`].
    kill_switches: Store,
}

/// How often the risk manager looks at the kill switch.
pub const KILL_SWITCH_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

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
        let (durable, state) = Durable::open(store.clone(), format!("{SERVICE}:{broker}")).await?;
        if state.is_some() {
            info!(%broker, "risk manager resumed from its checkpoint");
        }
        let mut desk = RiskDesk::new(broker, limits, instruments, state.unwrap_or_default());
        desk.set_kill_switch(engaged);
        Ok(Self {
            broker,
            topics: TopicMap::new(broker),
            desk,
            durable,
            cache,
            kill_switches: store,
        })
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<RiskStats> {
        self.desk.stats()
    }

    /// The current state (positions, counters).
    pub fn state(&self) -> &crate::risk_manager::RiskState {
        self.desk.state()
    }

    /// Whether the namespace's kill switch halts new entries.
    pub fn kill_switch_engaged(&self) -> bool {
        self.desk.kill_switch().is_some()
    }

    /// The write that mirrors positions, as they are now, to the cache for readers outside this
    /// process (the checkpoint stays the source of truth; the cache is a read model).
    fn mirror_to_cache(&self) -> Option<impl Future<Output = Result<(), HandlerError>> + 'static> {
        let cache = self.cache.clone()?;
        let broker = self.broker;
        let positions: Vec<(StrategyId, InstrumentToken, i64)> = self
            .desk
            .state()
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
        let outputs = match &input.envelope.payload {
            Payload::MarketTick(tick) => {
                self.desk.on_tick(tick.instrument_token, tick.last_price);
                Vec::new()
            }
            Payload::TradingSignal(signal) => {
                self.desk.on_signal(signal, input.envelope.id, input.now)
            }
            Payload::OrderFilled(fill) => self
                .desk
                .on_fill(input.envelope.id, fill, input.now)
                .unwrap_or_else(|| {
                    debug!(event_id = %input.envelope.id, "fill applied before; skipped");
                    Vec::new()
                }),
            Payload::OrderFailed(failure) => self.desk.on_failed(failure, input.now),
            other => {
                return Err(HandlerError::poison(format!(
                    "{} event on {}: the risk manager reads trading_signal, market_tick, \
                     order_filled and order_failed",
                    other.event_type(),
                    input.position.topic
                )))
            }
        };
        if self.desk.take_changed() {
            self.durable.changed();
        }
        Ok(outputs)
    }

    fn timer_interval(&self) -> Option<std::time::Duration> {
        Some(KILL_SWITCH_CHECK)
    }

    /// Reads the kill switch. A store that cannot be read keeps the last state known (logged):
    /// the checkpoint path reports the store's outage.
    async fn on_timer(&mut self, _now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        match self.kill_switches.kill_switches().get(self.broker).await {
            Ok(switch) => {
                let engaged = switch.filter(|s| s.engaged).map(|s| s.reason);
                if engaged.as_deref() != self.desk.kill_switch() {
                    match &engaged {
                        Some(reason) => warn!(broker = %self.broker, %reason,
                            "kill switch engaged: new entries are rejected"),
                        None => info!(broker = %self.broker, "kill switch released"),
                    }
                    self.desk.set_kill_switch(engaged);
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
        let Some(save) = self.durable.begin_save(self.desk.state(), offsets)? else {
            return Ok(None);
        };
        Ok(Some(save.into_checkpoint_then(self.mirror_to_cache())))
    }

    fn end_checkpoint(&mut self, offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        self.durable.end_save(offsets, outcome.is_ok());
    }
}
