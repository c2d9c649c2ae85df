//! The trading engine service for one broker namespace: turns validated signals into orders through
//! the namespace's [`Trader`] (the paper trader or the Zerodha live trader) and publishes the order
//! lifecycle (`order_submitted`, `order_ack`, then `order_filled` or `order_failed`) on
//! `{broker}.orders.*`. Resting paper orders and open Zerodha orders are durable state.

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
use crate::trading_engine::zerodha::{
    SavedZerodhaState, TraderOutput, ZerodhaState, ZerodhaTrader, UPDATE_DRAIN,
};
use crate::trading_engine::{OrderEvent, PaperTrader};

/// The service name.
pub const SERVICE: &str = "trading_engine";

/// The trader behind a namespace: one interface, two venues.
#[derive(Debug)]
pub enum Trader {
    /// The causal paper trader (`paper` namespace).
    Paper(PaperTrader),
    /// The Kite live trader (`zerodha` namespace).
    Zerodha(ZerodhaTrader),
}

impl Trader {
    /// The namespace this trader works for.
    pub fn broker(&self) -> Broker {
        match self {
            Trader::Paper(_) => Broker::Paper,
            Trader::Zerodha(_) => Broker::Zerodha,
        }
    }
}

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
    /// The alerts the live trader raised, as outputs on `system.alerts`.
    fn alerts(&mut self) -> Vec<Output> {
        let Trader::Zerodha(live) = &mut self.trader else {
            return Vec::new();
        };
        let broker = EventBroker::from(self.broker);
        live.take_alerts()
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

fn derived(events: Vec<OrderEvent>) -> Vec<TraderOutput> {
    events
        .into_iter()
        .map(|event| TraderOutput { event, id: None })
        .collect()
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

    /// Without a resting LIMIT order a tick changes nothing but the last price, so only the latest
    /// one fetched per instrument matters; with one, every tick may trade through its limit. Kite
    /// fills its own orders, so the live engine never needs a tick.
    fn conflates(&self, event_type: EventType) -> bool {
        event_type == EventType::MarketTick
            && match &self.trader {
                Trader::Paper(paper) => paper.resting_orders().is_empty(),
                Trader::Zerodha(_) => true,
            }
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
        let events = match (&input.envelope.payload, &mut self.trader) {
            (Payload::ValidatedSignal(validated), Trader::Paper(paper)) => {
                let events = paper
                    .on_validated(validated, input.envelope.id)
                    .map_err(|e| HandlerError {
                        class: e.class(),
                        message: e.to_string(),
                    })?;
                self.durable.changed();
                derived(events)
            }
            (Payload::ValidatedSignal(validated), Trader::Zerodha(live)) => {
                let events = live
                    .on_validated(validated, input.envelope.id, input.envelope.ts, input.now)
                    .await?;
                self.durable.changed();
                events
            }
            (Payload::MarketTick(tick), Trader::Paper(paper)) => {
                let events = paper.on_tick(tick);
                if !events.is_empty() {
                    self.durable.changed();
                }
                derived(events)
            }
            // Kite fills orders itself; ticks only keep the engine's consumer current.
            (Payload::MarketTick(_), Trader::Zerodha(_)) => Vec::new(),
            (other, _) => {
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
        match &self.trader {
            Trader::Paper(_) => None,
            // Order updates are applied as they arrive; the trader asks Kite less often.
            Trader::Zerodha(live) => Some(live.config().poll_interval.min(UPDATE_DRAIN)),
        }
    }

    /// Follows open Kite orders. The state change (an order leaving the open set, a partial fill)
    /// is checkpointed by the runtime once the outputs are acknowledged, even when no input comes,
    /// and never before: after a crash in between the same fills are reported again under the same
    /// ids, and downstream deduplication drops them.
    async fn on_timer(&mut self, now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        let events = match &mut self.trader {
            Trader::Paper(_) => return Ok(Vec::new()),
            Trader::Zerodha(live) => live.on_timer(now).await?,
        };
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
