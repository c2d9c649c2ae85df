//! The strategy runner service: feeds every tick to the strategies that trade its instrument and
//! publishes their signals — always to `paper.signals.raw` when `paper` is active, and to
//! `zerodha.signals.raw` only for strategies with `zerodha_trading_enabled` while `zerodha` is active.
//!
//! Strategies are pure ([`Strategy::on_tick`]); this handler only routes.

use std::collections::HashMap;

use alpha_panda_core::{
    keys, Broker, EventBroker, InstrumentToken, Payload, TopicMap, TradingSignal,
};
use alpha_panda_stream::{Handler, HandlerError, Input, Output};

use crate::strategy::Strategy;

/// The service name.
pub const SERVICE: &str = "strategy_runner";

/// A strategy and where its signals may go.
pub struct RunnerStrategy {
    /// The strategy.
    pub strategy: Box<dyn Strategy>,
    /// Whether its signals also go to the `zerodha` namespace.
    pub zerodha_trading_enabled: bool,
}

/// The strategy runner.
pub struct StrategyRunner {
    strategies: Vec<RunnerStrategy>,
    by_token: HashMap<InstrumentToken, Vec<usize>>,
    paper: Option<TopicMap>,
    zerodha: Option<TopicMap>,
}

impl StrategyRunner {
    /// A runner over `strategies` for the active `brokers`.
    pub fn new(strategies: Vec<RunnerStrategy>, brokers: &[Broker]) -> Self {
        let mut by_token: HashMap<InstrumentToken, Vec<usize>> = HashMap::new();
        for (index, s) in strategies.iter().enumerate() {
            for token in s.strategy.instruments() {
                by_token.entry(*token).or_default().push(index);
            }
        }
        let active = |b: Broker| brokers.contains(&b).then(|| TopicMap::new(b));
        Self {
            strategies,
            by_token,
            paper: active(Broker::Paper),
            zerodha: active(Broker::Zerodha),
        }
    }

    /// How many strategies run.
    pub fn strategy_count(&self) -> usize {
        self.strategies.len()
    }

    fn route(&self, signal: TradingSignal, zerodha_enabled: bool, outputs: &mut Vec<Output>) {
        let key = keys::strategy_instrument_key(&signal.strategy_id, signal.instrument_token);
        let zerodha = self.zerodha.filter(|_| zerodha_enabled);
        for topics in [self.paper, zerodha].into_iter().flatten() {
            outputs.push(Output {
                topic: topics.signals_raw(),
                key: key.clone(),
                payload: Payload::TradingSignal(signal.clone()),
                broker: EventBroker::from(topics.broker()),
                id: None,
            });
        }
    }
}

impl Handler for StrategyRunner {
    fn name(&self) -> &str {
        SERVICE
    }

    fn topics(&self) -> Vec<String> {
        vec![TopicMap::market_ticks()]
    }

    fn broker(&self) -> EventBroker {
        EventBroker::Shared
    }

    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        let Payload::MarketTick(tick) = &input.envelope.payload else {
            return Err(HandlerError::poison(format!(
                "{} event on {}: only market_tick belongs there",
                input.envelope.event_type(),
                input.position.topic
            )));
        };
        let mut outputs = Vec::new();
        let Some(indexes) = self.by_token.get(&tick.instrument_token) else {
            return Ok(outputs);
        };
        for &index in indexes {
            let entry = &mut self.strategies[index];
            let zerodha_enabled = entry.zerodha_trading_enabled;
            let signals = entry.strategy.on_tick(tick, input.envelope.id);
            for signal in signals {
                self.route(signal, zerodha_enabled, &mut outputs);
            }
        }
        Ok(outputs)
    }
}
