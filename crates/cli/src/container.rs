//! The composition root: builds every backend once from settings and hands them to what needs them,
//! and builds every service from settings over them ([`Services`]): `run` and `bench` start what it
//! builds as processors, `backtest` drives the same decision cores without the log. Nothing else in
//! Alpha Panda constructs settings, a log, a store, a cache or a service.

use std::collections::HashMap;
use std::sync::Arc;

use alpha_panda_backtest::BacktestSetup;
use alpha_panda_cache::Cache;
use alpha_panda_core::{Broker, Environment, Instrument, InstrumentToken, Money, Timestamp};
use alpha_panda_kite::{InstrumentRegistry, KiteClient, KiteTicker, MarketProtection};
use alpha_panda_services::market_feed::TickGuard;
use alpha_panda_services::portfolio_manager::service::PortfolioManager;
use alpha_panda_services::risk_manager::service::RiskManager;
use alpha_panda_services::strategy_runner::{RunnerStrategy, StrategyRunner};
use alpha_panda_services::trading_engine::service::TradingEngine;
use alpha_panda_services::trading_engine::{ZerodhaConfig, ZerodhaTrader};
use alpha_panda_services::{build_strategy, default_strategy_set, nse_universe, PaperTrader};
use alpha_panda_store::{apply_policy, Store, StrategyConfiguration};
use alpha_panda_stream::{reconcile_topics, Log};
use anyhow::{bail, Context};
use tracing::{error, info, warn};

use crate::settings::Settings;

/// The backends of one process.
#[derive(Clone)]
pub struct Backends {
    /// The unified log.
    pub log: Log,
    /// The SQL store.
    pub store: Store,
    /// The cache.
    pub cache: Cache,
}

impl Backends {
    /// Connects the log, the store (applying the migration policy) and the cache, and makes sure
    /// every topic exists.
    ///
    /// # Errors
    /// When a backend cannot be reached, migrations are not current in production, or topics are
    /// missing in production.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        settings.guard()?;
        let log = settings.log.connect()?;
        ensure_topics(&log, settings).await?;
        let store = store(settings).await?;
        let cache = Cache::connect(&settings.cache.url, &settings.cache.prefix)
            .await
            .context("could not reach cache.url")?;
        Ok(Self { log, store, cache })
    }
}

/// Builds the services of one process from settings: the one place that knows which setting goes
/// into which service. `cache` is `None` where no read model is kept (a bench, a backtest).
pub struct Services<'a> {
    settings: &'a Settings,
    store: Store,
    cache: Option<Cache>,
    instruments: Arc<HashMap<InstrumentToken, Instrument>>,
}

impl<'a> Services<'a> {
    /// The services of `settings` over `store` (and `cache`), trading `instruments`.
    pub fn new(
        settings: &'a Settings,
        store: Store,
        cache: Option<Cache>,
        instruments: Arc<HashMap<InstrumentToken, Instrument>>,
    ) -> Self {
        Self {
            settings,
            store,
            cache,
            instruments,
        }
    }

    /// The instruments master the services trade.
    pub fn instruments(&self) -> &Arc<HashMap<InstrumentToken, Instrument>> {
        &self.instruments
    }

    fn master(&self) -> Vec<Instrument> {
        let mut master: Vec<Instrument> = self.instruments.values().cloned().collect();
        master.sort_by_key(|i| i.instrument_token);
        master
    }

    /// The strategy runner over `strategies` for the configured brokers, resumed from its
    /// checkpoint.
    ///
    /// # Errors
    /// When the checkpoint cannot be read.
    pub async fn strategy_runner(
        &self,
        strategies: Vec<RunnerStrategy>,
        brokers: &[Broker],
    ) -> anyhow::Result<StrategyRunner> {
        Ok(StrategyRunner::open(strategies, brokers, self.store.clone()).await?)
    }

    /// The risk manager of `broker` under the settings' limits.
    ///
    /// # Errors
    /// When its checkpoint or the kill switch cannot be read.
    pub async fn risk_manager(&self, broker: Broker) -> anyhow::Result<RiskManager> {
        Ok(RiskManager::open(
            broker,
            self.settings.risk.for_broker(broker).clone(),
            self.instruments.clone(),
            self.store.clone(),
            self.cache.as_ref().map(Cache::risk_state),
        )
        .await?)
    }

    /// The paper trader: the settings' fill model (slippage, fees) over the master.
    pub fn paper_trader(&self) -> PaperTrader {
        PaperTrader::new(self.settings.paper.clone(), &self.master())
    }

    /// The paper namespace's trading engine.
    ///
    /// # Errors
    /// When its checkpoint cannot be read.
    pub async fn paper_trading_engine(&self) -> anyhow::Result<TradingEngine> {
        Ok(TradingEngine::open_paper(self.paper_trader(), self.store.clone()).await?)
    }

    /// The Zerodha namespace's trading engine: the live trader over `client`, with the settings'
    /// market protection and timeouts, following order updates and notices from `ticker`.
    ///
    /// # Errors
    /// When `zerodha.market_protection` is out of range or the checkpoint cannot be read.
    pub async fn zerodha_trading_engine(
        &self,
        client: Arc<KiteClient>,
        registry: Arc<InstrumentRegistry>,
        ticker: Option<&KiteTicker>,
    ) -> anyhow::Result<TradingEngine> {
        let zerodha = &self.settings.zerodha;
        let config = ZerodhaConfig {
            product: zerodha.product.clone(),
            // Checked when the settings were loaded.
            market_protection: MarketProtection::from_setting(zerodha.market_protection)
                .map_err(|reason| anyhow::anyhow!("zerodha.market_protection: {reason}"))?,
            protected_order_timeout: zerodha.protected_order_timeout,
            max_signal_age: zerodha.max_signal_age,
            reconcile_interval: zerodha.reconcile_interval,
            freeze_quantities: zerodha.freeze_quantities.clone(),
            contract_notes: zerodha.contract_notes,
            // An instrument Zerodha's schedule has no rates for: the paper estimate.
            fallback_fees: self.settings.paper.fees.clone(),
            ..ZerodhaConfig::default()
        };
        let mut trader = ZerodhaTrader::new(client, registry, config)
            .with_session_store(self.store.clone(), zerodha.api_key.clone());
        if let Some(updates) = ticker.and_then(KiteTicker::take_order_updates) {
            trader = trader.with_order_updates(updates);
        }
        if let Some(notices) = ticker.and_then(KiteTicker::take_notices) {
            trader = trader.with_notices(notices);
        }
        Ok(TradingEngine::open_zerodha(trader, self.store.clone()).await?)
    }

    /// The portfolio manager of `broker`.
    ///
    /// # Errors
    /// When its checkpoint cannot be read.
    pub async fn portfolio_manager(&self, broker: Broker) -> anyhow::Result<PortfolioManager> {
        Ok(PortfolioManager::open(
            broker,
            self.settings.portfolio.clone(),
            self.store.clone(),
            self.cache.as_ref().map(Cache::portfolios),
        )
        .await?)
    }

    /// The market feed's check of every tick (tick grids, price jumps).
    pub fn tick_guard(&self) -> TickGuard {
        TickGuard::new(&self.master(), self.settings.market_feed.max_price_jump_pct)
    }

    /// What a backtest of `strategies` runs: the paper namespace's limits, fill model and
    /// accounting, as `run` trades them; `initial_cash` overrides the portfolios' setting.
    pub fn backtest(
        &self,
        strategies: Vec<RunnerStrategy>,
        initial_cash: Option<Money>,
    ) -> BacktestSetup {
        BacktestSetup {
            strategies,
            limits: self.settings.risk.for_broker(Broker::Paper).clone(),
            paper: self.settings.paper.clone(),
            instruments: self.instruments.clone(),
            initial_cash: initial_cash.unwrap_or(self.settings.portfolio.initial_cash),
            equity_every: std::time::Duration::from_secs(60),
            from: None,
            to: None,
            chart: None,
        }
    }
}

/// Creates missing topics outside production; in production only checks, and refuses to run
/// without them (`alpha-panda bootstrap` creates them).
async fn ensure_topics(log: &Log, settings: &Settings) -> anyhow::Result<()> {
    let broker_count = log
        .broker_count()
        .await
        .context("could not read the log's brokers; is log.url reachable?")?;
    let overlay = settings.topic_overlay(broker_count);
    let create = settings.environment != Environment::Production;
    let report = reconcile_topics(log, &settings.brokers, &overlay, create).await?;
    let problems = report.problems();
    if problems.is_empty() {
        return Ok(());
    }
    if create {
        // Drift that bootstrap must not fix by itself (fewer partitions, replication) is reported
        // but does not stop a development run.
        for problem in &problems {
            warn!(%problem, "topic drift; run `alpha-panda bootstrap` for the full report");
        }
        return Ok(());
    }
    bail!(
        "topics are missing or drift from their specs: {}; run `alpha-panda bootstrap`",
        problems.join("; ")
    )
}

/// The instruments master, seeded with the bundled NSE universe on a fresh database.
///
/// # Errors
/// When the store cannot be read or written.
pub async fn instruments(
    store: &Store,
) -> anyhow::Result<Arc<HashMap<InstrumentToken, Instrument>>> {
    let repository = store.instruments();
    if repository.count().await? == 0 {
        let seeded = repository.upsert_many(&nse_universe()).await?;
        info!(
            seeded,
            "instruments master was empty; seeded the bundled NSE universe"
        );
    }
    Ok(Arc::new(
        repository
            .all()
            .await?
            .into_iter()
            .map(|i| (i.instrument_token, i))
            .collect(),
    ))
}

/// The active strategies from `strategy_configurations` (seeded with the default set on the first
/// run). A strategy whose configuration is invalid is refused with its reason; the others run.
///
/// # Errors
/// When the store cannot be read or written.
pub async fn strategies(store: &Store, now: Timestamp) -> anyhow::Result<Vec<RunnerStrategy>> {
    let repository = store.strategy_configurations();
    let seeds: Vec<StrategyConfiguration> = default_strategy_set()
        .into_iter()
        .map(|seed| StrategyConfiguration {
            id: seed.id,
            strategy_type: seed.strategy_type,
            instruments: seed.instruments,
            parameters: seed.parameters,
            is_active: true,
            zerodha_trading_enabled: seed.zerodha_trading_enabled,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let seeded = repository.seed_if_empty(&seeds).await?;
    if seeded > 0 {
        info!(seeded, "no strategies configured; seeded the default set");
    }
    let mut strategies = Vec::new();
    for config in repository.list_active().await? {
        match build_strategy(
            &config.id,
            &config.strategy_type,
            &config.instruments,
            &config.parameters,
        ) {
            Ok(strategy) => strategies.push(RunnerStrategy {
                strategy,
                zerodha_trading_enabled: config.zerodha_trading_enabled,
                configuration: format!("{}:{}", config.strategy_type, config.parameters),
            }),
            Err(e) => {
                error!(strategy = %config.id, error = %e, "strategy refused; the others keep running")
            }
        }
    }
    Ok(strategies)
}

/// The Kite client of a run that trades on or streams from Zerodha: the session stored by
/// `alpha-panda kite login` for `zerodha.api_key`, validated with `/user/profile`. Refuses to start
/// when the credentials are missing, or the session is missing, expired or refused by Kite.
///
/// # Errors
/// A message naming the missing key or saying to run `alpha-panda kite login`.
pub async fn zerodha_session(
    settings: &Settings,
    store: &Store,
    now: Timestamp,
) -> anyhow::Result<Arc<KiteClient>> {
    let zerodha = &settings.zerodha;
    if !zerodha.has_credentials() {
        bail!(
            "Zerodha needs zerodha.api_key and zerodha.api_secret; set them in alpha-panda.toml or \
             ALPHA_PANDA__ZERODHA__API_KEY / ALPHA_PANDA__ZERODHA__API_SECRET"
        );
    }
    let session = store
        .trading_sessions()
        .current(&zerodha.api_key, now)
        .await
        .context("could not read trading_sessions")?;
    let Some(session) = session else {
        bail!(
            "no current Kite session for api_key {}: it is missing or expired (Kite tokens expire \
             at 06:00 IST); run `alpha-panda kite login`",
            zerodha.api_key
        );
    };
    let client = KiteClient::new(zerodha)?.with_access_token(session.access_token.expose());
    match client.profile().await {
        Ok(profile) => {
            info!(user_id = %profile.user_id, expires_at = %session.expires_at, "Kite session valid");
            Ok(Arc::new(client))
        }
        Err(e) if e.is_auth() => {
            bail!("Kite refused the stored session ({e}); run `alpha-panda kite login`")
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "could not validate the Kite session through {}/user/profile",
            zerodha.api_url
        ))),
    }
}

/// The Kite instrument registry (token → exchange, tradingsymbol, lot and tick size) built from
/// the store's instruments master.
pub fn instrument_registry(
    instruments: &HashMap<InstrumentToken, Instrument>,
) -> Arc<InstrumentRegistry> {
    Arc::new(InstrumentRegistry::from_rows(instruments.values().cloned()))
}

/// Opens the store and applies the migration policy (development migrates, production only
/// verifies); used by `run` and, on its own, by the `kite` commands.
///
/// # Errors
/// When the database cannot be opened, or its migrations are not current in production.
pub async fn store(settings: &Settings) -> anyhow::Result<Store> {
    let database_url = settings.database_url();
    let store = Store::connect(&database_url).await.with_context(|| {
        format!(
            "could not open the database {}",
            alpha_panda_store::redact_url(&database_url)
        )
    })?;
    let applied = apply_policy(&store, settings.environment).await?;
    if !applied.is_empty() {
        info!(?applied, "database migrations applied");
    }
    Ok(store.with_lease_ttl(settings.runtime.lease_ttl))
}
