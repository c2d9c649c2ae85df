//! The trading engine service for one broker namespace: turns validated signals into orders through
//! the namespace's [`Trader`] (the paper trader or the Zerodha live trader), which it asks only
//! through the [`Venue`] interface, and publishes the order lifecycle (`order_submitted`,
//! `order_ack`, then `order_filled` or `order_failed`) on `{broker}.orders.*` and the venue's alerts
//! on `system.alerts`. Resting paper orders and open Zerodha orders are durable state: the only
//! place the engine tells the two venues apart.

use std::time::Duration;

use alpha_panda_core::{keys, Broker, EventBroker, EventType, Payload, Timestamp, TopicMap};
use alpha_panda_store::{Store, StoreError};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, LogIdentity, Output,
    PartitionAnchor,
};
use tracing::info;

use crate::durable::{Durable, SaveWrite};
use crate::trading_engine::paper::RestingOrder;
use crate::trading_engine::zerodha::{SavedZerodhaState, ZerodhaState, ZerodhaTrader};
use crate::trading_engine::{OrderEvent, PaperTrader, Trader, TraderOutput, Venue};

/// The service name.
pub const SERVICE: &str = "trading_engine";

/// The trading engine of one namespace.
pub struct TradingEngine {
    broker: Broker,
    topics: TopicMap,
    trader: Trader,
    durable: Durable,
}

impl TradingEngine {
    /// Opens the paper trading engine, resuming its resting orders from the checkpoint.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open_paper(trader: PaperTrader, store: Store) -> Result<Self, StoreError> {
        Self::open(Trader::Paper(trader), store).await
    }

    /// Opens the Zerodha trading engine, resuming the open Kite orders it was following.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open_zerodha(trader: ZerodhaTrader, store: Store) -> Result<Self, StoreError> {
        Self::open(Trader::Zerodha(trader), store).await
    }

    /// Opens the engine of `trader`'s namespace, resuming its state from the checkpoint.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open(trader: Trader, store: Store) -> Result<Self, StoreError> {
        let broker = trader.broker();
        let key = format!("{SERVICE}:{broker}");
        let (durable, trader) = match trader {
            Trader::Paper(mut paper) => {
                let (durable, saved) = Durable::open::<Vec<RestingOrder>>(store, key).await?;
                if let Some(resting) = saved {
                    info!(%broker, resting = resting.len(), "trading engine resumed from its checkpoint");
                    paper.restore_resting(resting);
                }
                (durable, Trader::Paper(paper))
            }
            Trader::Zerodha(mut live) => {
                let (durable, saved) = Durable::open::<SavedZerodhaState>(store, key).await?;
                if let Some(saved) = saved {
                    let state = ZerodhaState::from(saved);
                    info!(%broker, open = state.open.len(), held = state.held.len(),
                        "trading engine resumed its open Kite orders and positions");
                    live.restore(state);
                }
                (durable, Trader::Zerodha(live))
            }
        };
        Ok(Self {
            broker,
            topics: TopicMap::new(broker),
            trader,
            durable,
        })
    }

    /// The trader (its open or resting orders).
    pub fn trader(&self) -> &Trader {
        &self.trader
    }

    fn outputs(&self, events: Vec<TraderOutput>) -> Vec<Output> {
        let broker = EventBroker::from(self.broker);
        events
            .into_iter()
            .map(|TraderOutput { event, id }| {
                let (topic, strategy, token, payload) = match event {
                    OrderEvent::Submitted(o) => (
                        self.topics.orders_submitted(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderSubmitted(o),
                    ),
                    OrderEvent::Acknowledged(o) => (
                        self.topics.orders_ack(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderAck(o),
                    ),
                    OrderEvent::Filled(o) => (
                        self.topics.orders_filled(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderFilled(o),
                    ),
                    OrderEvent::Failed(o) => (
                        self.topics.orders_failed(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderFailed(o),
                    ),
                };
                Output {
                    topic,
                    key: keys::strategy_instrument_key(&strategy, token),
                    payload,
                    broker,
                    id,
                }
            })
            .collect()
    }
}

impl TradingEngine {
    /// The alerts the venue raised, as outputs on `system.alerts`.
    fn alerts(&mut self) -> Vec<Output> {
        let broker = EventBroker::from(self.broker);
        self.trader
            .take_alerts()
            .into_iter()
            .map(|alert| Output {
                topic: TopicMap::alerts().to_string(),
                key: format!("{SERVICE}:{}", self.broker),
                payload: Payload::Alert(alert),
                broker,
                id: None,
            })
            .collect()
    }
}

impl Handler for TradingEngine {
    fn name(&self) -> &str {
        SERVICE
    }

    fn topics(&self) -> Vec<String> {
        vec![self.topics.signals_validated(), TopicMap::market_ticks()]
    }

    fn broker(&self) -> EventBroker {
        EventBroker::from(self.broker)
    }

    /// Only ticks conflate, and only while the venue needs no more than the latest one per
    /// instrument ([`Venue::conflates_ticks`]).
    fn conflates(&self, event_type: EventType) -> bool {
        event_type == EventType::MarketTick && self.trader.conflates_ticks()
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
        let events = match &input.envelope.payload {
            Payload::ValidatedSignal(validated) => {
                let events = self
                    .trader
                    .on_validated(validated, input.envelope.id, input.envelope.ts, input.now)
                    .await?;
                self.durable.changed();
                events
            }
            Payload::MarketTick(tick) => {
                let events = self.trader.on_tick(tick);
                if !events.is_empty() {
                    self.durable.changed();
                }
                events
            }
            other => {
                return Err(HandlerError::poison(format!(
                    "{} event on {}: the trading engine reads validated_signal and market_tick",
                    other.event_type(),
                    input.position.topic
                )))
            }
        };
        let mut outputs = self.outputs(events);
        outputs.extend(self.alerts());
        Ok(outputs)
    }

    fn timer_interval(&self) -> Option<Duration> {
        self.trader.timer_interval()
    }

    /// Follows the venue's open orders. The state change (an order leaving the open set, a partial fill)
    /// is checkpointed by the runtime once the outputs are acknowledged, even when no input comes,
    /// and never before: after a crash in between the same fills are reported again under the same
    /// ids, and downstream deduplication drops them.
    async fn on_timer(&mut self, now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        let events = self.trader.on_timer(now).await?;
        if !events.is_empty() {
            self.durable.changed();
        }
        let mut outputs = self.outputs(events);
        outputs.extend(self.alerts());
        Ok(outputs)
    }

    fn begin_checkpoint(
        &mut self,
        offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        let write = match &self.trader {
            Trader::Paper(paper) => self.durable.begin_save(&paper.resting_orders(), offsets)?,
            Trader::Zerodha(live) => self.durable.begin_save(&live.state(), offsets)?,
        };
        Ok(write.map(SaveWrite::into_checkpoint))
    }

    fn end_checkpoint(&mut self, offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        self.durable.end_save(offsets, outcome.is_ok());
    }
}
