//! The trading engine service for one broker namespace: turns validated signals into orders through
//! the namespace's trader and publishes the order lifecycle (`order_submitted`, `order_ack`, then
//! `order_filled` or `order_failed`) on `{broker}.orders.*`. Resting orders are durable state.

use alpha_panda_core::{keys, Broker, EventBroker, Payload, Timestamp, TopicMap};
use alpha_panda_store::{Store, StoreError};
use alpha_panda_stream::{CommitOffset, Handler, HandlerError, Input, Output};
use tracing::info;

use crate::durable::Durable;
use crate::trading_engine::paper::RestingOrder;
use crate::trading_engine::{PaperEvent, PaperTrader};

/// The service name.
pub const SERVICE: &str = "trading_engine";

/// The trading engine of one namespace.
pub struct TradingEngine {
    broker: Broker,
    topics: TopicMap,
    trader: PaperTrader,
    durable: Durable,
    last_input_at: Option<Timestamp>,
}

impl TradingEngine {
    /// Opens the paper trading engine, resuming its resting orders from the checkpoint.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open_paper(trader: PaperTrader, store: Store) -> Result<Self, StoreError> {
        let broker = Broker::Paper;
        let (durable, saved) =
            Durable::open::<Vec<RestingOrder>>(store, format!("{SERVICE}:{broker}")).await?;
        let mut trader = trader;
        if let Some(resting) = saved {
            info!(%broker, resting = resting.len(), "trading engine resumed from its checkpoint");
            trader.restore_resting(resting);
        }
        Ok(Self {
            broker,
            topics: TopicMap::new(broker),
            trader,
            durable,
            last_input_at: None,
        })
    }

    fn outputs(&self, events: Vec<PaperEvent>) -> Vec<Output> {
        let broker = EventBroker::from(self.broker);
        events
            .into_iter()
            .map(|event| {
                let (topic, strategy, token, payload) = match event {
                    PaperEvent::Submitted(o) => (
                        self.topics.orders_submitted(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderSubmitted(o),
                    ),
                    PaperEvent::Acknowledged(o) => (
                        self.topics.orders_ack(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderAck(o),
                    ),
                    PaperEvent::Filled(o) => (
                        self.topics.orders_filled(),
                        o.strategy_id.clone(),
                        o.instrument_token,
                        Payload::OrderFilled(o),
                    ),
                    PaperEvent::Failed(o) => (
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
                    id: None,
                }
            })
            .collect()
    }
}

impl Handler for TradingEngine {
    fn name(&self) -> &str {
        SERVICE
    }

    fn consumer_group(&self) -> String {
        format!("alpha-panda.{SERVICE}.{}", self.broker)
    }

    fn topics(&self) -> Vec<String> {
        vec![self.topics.signals_validated(), TopicMap::market_ticks()]
    }

    fn broker(&self) -> EventBroker {
        EventBroker::from(self.broker)
    }

    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        if self.durable.already_applied(input.position) {
            return Ok(Vec::new());
        }
        self.last_input_at = Some(input.now);
        let events = match &input.envelope.payload {
            Payload::ValidatedSignal(validated) => {
                let events = self
                    .trader
                    .on_validated(validated, input.envelope.id)
                    .map_err(|e| HandlerError {
                        class: e.class(),
                        message: e.to_string(),
                    })?;
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
        Ok(self.outputs(events))
    }

    async fn checkpoint(&mut self, offsets: &[CommitOffset]) -> Result<(), HandlerError> {
        let now = self
            .last_input_at
            .unwrap_or_else(|| Timestamp::from_datetime(chrono::Utc::now()));
        self.durable
            .save(&self.trader.resting_orders(), offsets, now)
            .await
            .map(|_| ())
    }
}
