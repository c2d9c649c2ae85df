//! The strategy runner service: feeds every tick to the strategies that trade its instrument and
//! publishes their signals — always to `paper.signals.raw` when `paper` is active, and to
//! `zerodha.signals.raw` only for strategies with `zerodha_trading_enabled` while `zerodha` is active.
//!
//! Strategies are pure ([`Strategy::on_tick`]); this handler routes their signals and checkpoints
//! their indicator state with the offsets it reflects, so a restarted runner continues exactly where
//! it stopped (a strategy whose configuration changed in between starts afresh).
//!
//! With [`StrategyRunner::with_reload`], the runner reads the active configurations again every
//! [`RELOAD_EVERY`]: a strategy disabled through the API or the CLI stops, an enabled or new one
//! starts, one whose parameters or instruments changed starts afresh, and one whose Zerodha
//! switch changed keeps its indicators and routes its next signal the new way. No restart.

use std::collections::{BTreeMap, HashMap};

use alpha_panda_core::{
    derive_event_id, keys, Broker, EventBroker, EventId, InstrumentToken, MarketTick, Payload,
    Timestamp, TopicMap, TradingSignal,
};
use alpha_panda_store::{Store, StoreError, StrategyConfiguration};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, LogIdentity, Output,
    PartitionAnchor,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::durable::{Durable, SaveWrite};
use crate::strategy::{build_strategy, Strategy};

/// The service name.
pub const SERVICE: &str = "strategy_runner";

/// How often a reloading runner reads the strategy configurations again.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// A strategy and where its signals may go.
pub struct RunnerStrategy {
    /// The strategy.
    pub strategy: Box<dyn Strategy>,
    /// Whether its signals also go to the `zerodha` namespace.
    pub zerodha_trading_enabled: bool,
    /// The configuration it was built from (type and parameters): saved indicator state is
    /// restored only into the same configuration.
    pub configuration: String,
}

/// One strategy's checkpointed indicator state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedStrategy {
    configuration: String,
    state: serde_json::Value,
}

/// The strategy runner.
pub struct StrategyRunner {
    strategies: Vec<RunnerStrategy>,
    /// Fx rather than SipHash: one lookup per tick, keyed by tokens no outsider chooses.
    by_token: rustc_hash::FxHashMap<InstrumentToken, Vec<usize>>,
    paper: Option<TopicMap>,
    zerodha: Option<TopicMap>,
    durable: Option<Durable>,
    reload: Option<Store>,
    /// Configurations refused (by id, with what was refused), so each is reported once.
    refused: HashMap<String, String>,
}

impl StrategyRunner {
    /// A runner over `strategies` for the active `brokers`.
    pub fn new(strategies: Vec<RunnerStrategy>, brokers: &[Broker]) -> Self {
        let active = |b: Broker| brokers.contains(&b).then(|| TopicMap::new(b));
        let mut runner = Self {
            strategies,
            by_token: Default::default(),
            paper: active(Broker::Paper),
            zerodha: active(Broker::Zerodha),
            durable: None,
            reload: None,
            refused: HashMap::new(),
        };
        runner.index();
        runner
    }

    /// Reads the active configurations from `store` every [`RELOAD_EVERY`] and follows them.
    pub fn with_reload(mut self, store: Store) -> Self {
        self.reload = Some(store);
        self
    }

    fn index(&mut self) {
        self.by_token.clear();
        for (index, s) in self.strategies.iter().enumerate() {
            for token in s.strategy.instruments() {
                self.by_token.entry(*token).or_default().push(index);
            }
        }
    }

    /// The ids of the strategies running.
    pub fn strategy_ids(&self) -> Vec<String> {
        self.strategies
            .iter()
            .map(|s| s.strategy.id().to_string())
            .collect()
    }

    /// Follows the active configurations: stops the strategies no longer active, starts the new
    /// ones, restarts (with fresh indicators) those whose type, parameters or instruments
    /// changed, and switches Zerodha routing in place. Returns whether anything changed.
    pub fn follow_configurations(&mut self, configs: &[StrategyConfiguration]) -> bool {
        let mut changed = false;
        let wanted: HashMap<&str, &StrategyConfiguration> =
            configs.iter().map(|c| (c.id.as_str(), c)).collect();
        let before = self.strategies.len();
        self.strategies.retain(|entry| {
            let keep = wanted.contains_key(entry.strategy.id().as_str());
            if !keep {
                info!(strategy = %entry.strategy.id(), "strategy disabled; it stops");
            }
            keep
        });
        changed |= self.strategies.len() != before;
        for config in configs {
            let configuration = format!("{}:{}", config.strategy_type, config.parameters);
            let mut instruments = config.instruments.clone();
            instruments.sort_unstable();
            let running = self
                .strategies
                .iter()
                .position(|e| e.strategy.id().as_str() == config.id);
            if let Some(index) = running {
                let entry = &mut self.strategies[index];
                let mut has: Vec<u32> = entry.strategy.instruments().iter().map(|t| t.0).collect();
                has.sort_unstable();
                if entry.configuration == configuration && has == instruments {
                    if entry.zerodha_trading_enabled != config.zerodha_trading_enabled {
                        info!(strategy = %config.id, enabled = config.zerodha_trading_enabled,
                            "Zerodha trading switched");
                        entry.zerodha_trading_enabled = config.zerodha_trading_enabled;
                        changed = true;
                    }
                    continue;
                }
            }
            match build_strategy(
                &config.id,
                &config.strategy_type,
                &config.instruments,
                &config.parameters,
            ) {
                Ok(strategy) => {
                    let entry = RunnerStrategy {
                        strategy,
                        zerodha_trading_enabled: config.zerodha_trading_enabled,
                        configuration,
                    };
                    match running {
                        Some(index) => {
                            info!(strategy = %config.id, "configuration changed; the strategy starts afresh");
                            self.strategies[index] = entry;
                        }
                        None => {
                            info!(strategy = %config.id, "strategy enabled; it starts");
                            self.strategies.push(entry);
                        }
                    }
                    changed = true;
                }
                Err(e) => {
                    let refused = format!("{configuration}:{instruments:?}");
                    if self.refused.get(&config.id) != Some(&refused) {
                        tracing::error!(strategy = %config.id, error = %e,
                            "strategy configuration refused; it does not run");
                        self.refused.insert(config.id.clone(), refused);
                    }
                    if let Some(index) = running {
                        self.strategies.remove(index);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.index();
        }
        changed
    }

    /// A runner whose indicator state is durable in `store`, resumed from its checkpoint.
    ///
    /// # Errors
    /// [`StoreError`] when the checkpoint cannot be read.
    pub async fn open(
        strategies: Vec<RunnerStrategy>,
        brokers: &[Broker],
        store: Store,
    ) -> Result<Self, StoreError> {
        let (durable, saved) =
            Durable::open::<BTreeMap<String, SavedStrategy>>(store, SERVICE).await?;
        let mut runner = Self::new(strategies, brokers);
        for entry in &mut runner.strategies {
            let id = entry.strategy.id().to_string();
            let Some(saved) = saved.as_ref().and_then(|s| s.get(&id)) else {
                continue;
            };
            if saved.configuration != entry.configuration {
                info!(strategy = %id, "configuration changed since the checkpoint; indicators start afresh");
                continue;
            }
            if let Err(e) = entry.strategy.restore_state(saved.state.clone()) {
                info!(strategy = %id, error = %e, "saved indicators do not fit; they start afresh");
            }
        }
        runner.durable = Some(durable);
        Ok(runner)
    }

    /// How many strategies run.
    pub fn strategy_count(&self) -> usize {
        self.strategies.len()
    }

    /// Feeds `tick` to every strategy trading its instrument and appends their routed signals to
    /// `outputs`. `tick_event_id` is asked only when a strategy signals: most ticks cause nothing,
    /// and a host that derives tick ids (the backtest) need not derive the id of every tick. Each
    /// strategy sees a placeholder id and its signals get the real one, which is all a strategy
    /// does with it ([`Strategy::on_tick`]).
    pub fn on_tick(
        &mut self,
        tick: &MarketTick,
        tick_event_id: impl FnOnce() -> EventId,
        outputs: &mut Vec<Output>,
    ) {
        let Some(indexes) = self.by_token.get(&tick.instrument_token) else {
            return;
        };
        let mut tick_event_id = Some(tick_event_id);
        let mut cause: Option<EventId> = None;
        for &index in indexes {
            let entry = &mut self.strategies[index];
            let zerodha_enabled = entry.zerodha_trading_enabled;
            let signals = entry.strategy.on_tick(tick, EventId::PLACEHOLDER);
            if signals.is_empty() {
                continue;
            }
            let cause = *cause.get_or_insert_with(|| {
                tick_event_id.take().map_or(EventId::PLACEHOLDER, |id| id())
            });
            for (ordinal, mut signal) in signals.into_iter().enumerate() {
                signal.tick.event_id = cause;
                self.route(cause, ordinal as u32, signal, zerodha_enabled, outputs);
            }
        }
    }

    /// Routes the `ordinal`-th signal a strategy emitted for the tick `cause` to each namespace it
    /// trades in. Its ids derive from the tick, the strategy and the namespace alone, never from
    /// where the strategy stands in the list of active ones: a restart with a strategy added or
    /// switched re-emits every other strategy's signals under the ids they had.
    fn route(
        &self,
        cause: EventId,
        ordinal: u32,
        signal: TradingSignal,
        zerodha_enabled: bool,
        outputs: &mut Vec<Output>,
    ) {
        let key = keys::strategy_instrument_key(&signal.strategy_id, signal.instrument_token);
        let output = |topics: TopicMap, key: String, signal: TradingSignal| {
            let scope = format!("{SERVICE}:{}:{}", signal.strategy_id, topics.broker());
            Output {
                topic: topics.signals_raw(),
                key,
                payload: Payload::TradingSignal(signal),
                broker: EventBroker::from(topics.broker()),
                id: Some(derive_event_id(cause, &scope, ordinal)),
            }
        };
        // Paper first; the signal and key are cloned only when both namespaces get it.
        match (self.paper, self.zerodha.filter(|_| zerodha_enabled)) {
            (Some(paper), Some(zerodha)) => {
                outputs.push(output(paper, key.clone(), signal.clone()));
                outputs.push(output(zerodha, key, signal));
            }
            (Some(only), None) | (None, Some(only)) => outputs.push(output(only, key, signal)),
            (None, None) => {}
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

    fn health(&self) -> Result<(), String> {
        self.durable.as_ref().map_or(Ok(()), Durable::health)
    }

    async fn leave(&mut self) {
        if let Some(durable) = &mut self.durable {
            durable.release().await;
        }
    }

    fn checkpoint_anchors(&self) -> Vec<PartitionAnchor> {
        self.durable
            .as_ref()
            .map_or_else(Vec::new, Durable::anchors)
    }

    fn attach_log(&mut self, log: &LogIdentity, foreign: &[(String, i32)]) {
        if let Some(durable) = &mut self.durable {
            durable.attach_log(log, foreign);
        }
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
        if let Some(durable) = &mut self.durable {
            if durable.already_applied(input.position) {
                return Ok(outputs);
            }
            durable.saw(input.now);
        }
        if !self.by_token.contains_key(&tick.instrument_token) {
            return Ok(outputs);
        }
        if let Some(durable) = &mut self.durable {
            durable.changed();
        }
        self.on_tick(tick, || input.envelope.id, &mut outputs);
        Ok(outputs)
    }

    fn begin_checkpoint(
        &mut self,
        offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        let Some(durable) = &mut self.durable else {
            return Ok(None);
        };
        let saved: BTreeMap<String, SavedStrategy> = self
            .strategies
            .iter()
            .map(|entry| {
                (
                    entry.strategy.id().to_string(),
                    SavedStrategy {
                        configuration: entry.configuration.clone(),
                        state: entry.strategy.save_state(),
                    },
                )
            })
            .collect();
        Ok(durable
            .begin_save(&saved, offsets)?
            .map(SaveWrite::into_checkpoint))
    }

    fn end_checkpoint(&mut self, offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        if let Some(durable) = &mut self.durable {
            durable.end_save(offsets, outcome.is_ok());
        }
    }

    fn timer_interval(&self) -> Option<std::time::Duration> {
        self.reload.as_ref().map(|_| RELOAD_EVERY)
    }

    /// Reads the active configurations again. A store that cannot be read keeps the strategies
    /// running as they are.
    async fn on_timer(&mut self, _now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        let Some(store) = self.reload.clone() else {
            return Ok(Vec::new());
        };
        match store.strategy_configurations().list_active().await {
            Ok(configs) => {
                if self.follow_configurations(&configs) {
                    if let Some(durable) = &mut self.durable {
                        durable.changed();
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not read the strategy configurations"),
        }
        Ok(Vec::new())
    }
}
