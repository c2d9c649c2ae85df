//! The composition root: builds every backend once from settings and hands them to what needs them.
//! Nothing else in Alpha Panda constructs settings, a log, a store or a cache.

use std::collections::HashMap;
use std::sync::Arc;

use alpha_panda_cache::Cache;
use alpha_panda_core::{Environment, Instrument, InstrumentToken, Timestamp};
use alpha_panda_kite::{InstrumentRegistry, KiteClient};
use alpha_panda_services::strategy_runner::RunnerStrategy;
use alpha_panda_services::{build_strategy, default_strategy_set, nse_universe};
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
