//! Settings: defaults, then `alpha-panda.toml`, then `ALPHA_PANDA__SECTION__KEY` environment
//! variables (ARCHITECTURE §7). Built once by the binary and passed down; nothing else constructs them.
//!
//! Unknown keys, in the file or the environment, are errors naming the key. [`Settings::guard`]
//! refuses unsafe combinations before anything starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alpha_panda_api::ApiSettings;
use alpha_panda_core::{Broker, Environment, TopicSpecOverlay};
use alpha_panda_kite::ZerodhaSettings;
use alpha_panda_services::portfolio_manager::service::PortfolioSettings;
use alpha_panda_services::{PaperConfig, RiskLimits};
use alpha_panda_stream::memory::MemoryLogConfig;
use alpha_panda_stream::{Log, ProcessorConfig, RetryPolicy};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The file read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "alpha-panda.toml";
/// Prefix of the environment overrides; `__` separates sections from keys.
pub const ENV_PREFIX: &str = "ALPHA_PANDA__";

/// Every setting of Alpha Panda.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// development, testing or production.
    pub environment: Environment,
    /// Active trading namespaces; `paper` is always wanted, `zerodha` trades real money.
    pub brokers: Vec<Broker>,
    /// Where embedded backends keep their files (the SQLite database).
    pub data_dir: PathBuf,
    /// The unified log.
    pub log: LogSettings,
    /// The SQL store.
    pub database: DatabaseSettings,
    /// The cache.
    pub cache: CacheSettings,
    /// Retry, dedup and commit behaviour of every processor.
    pub runtime: RuntimeSettings,
    /// Log output.
    pub logging: LoggingSettings,
    /// Where ticks come from.
    pub market_feed: MarketFeedSettings,
    /// Risk limits per broker namespace.
    pub risk: RiskSettings,
    /// The paper trader: slippage and fees.
    pub paper: PaperConfig,
    /// Portfolio accounting and snapshots.
    pub portfolio: PortfolioSettings,
    /// Zerodha Kite Connect: credentials, endpoints, order product, rate limits, ticker policy.
    pub zerodha: ZerodhaSettings,
    /// The operator surface: the HTTP API, its tokens and the dashboard.
    pub api: ApiSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            brokers: vec![Broker::Paper],
            data_dir: PathBuf::from("alpha-panda-data"),
            log: LogSettings::default(),
            database: DatabaseSettings::default(),
            cache: CacheSettings::default(),
            runtime: RuntimeSettings::default(),
            logging: LoggingSettings::default(),
            market_feed: MarketFeedSettings::default(),
            risk: RiskSettings::default(),
            paper: PaperConfig::default(),
            portfolio: PortfolioSettings::default(),
            zerodha: ZerodhaSettings::default(),
            api: ApiSettings::default(),
        }
    }
}

/// `[market_feed]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketFeedSettings {
    /// `simulated`, `csv:PATH` or `kite`.
    pub source: String,
    /// Seed of the simulated random walk.
    pub seed: u64,
    /// Pace of the simulator or replay; 0 publishes as fast as possible.
    pub ticks_per_second: u32,
    /// Stop the simulator after this many ticks (0: until stopped).
    pub max_ticks: u64,
    /// Exchange time of the first simulated tick (RFC 3339); empty: the moment the feed starts.
    pub start_time: String,
    /// Instrument tokens to simulate or subscribe; empty: the bundled NSE universe.
    pub instruments: Vec<u32>,
    /// A tick further than this many percent from its instrument's last accepted price is refused
    /// to `market.ticks.dlq` (0: no limit). NSE's widest price band for a stock is 20 %.
    pub max_price_jump_pct: Decimal,
}

impl Default for MarketFeedSettings {
    fn default() -> Self {
        Self {
            source: "simulated".into(),
            seed: 42,
            ticks_per_second: 500,
            max_ticks: 0,
            start_time: String::new(),
            instruments: Vec::new(),
            max_price_jump_pct: Decimal::from(20),
        }
    }
}

/// `[risk.paper]` and `[risk.zerodha]`: each namespace's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskSettings {
    /// Limits of the paper namespace.
    pub paper: RiskLimits,
    /// Limits of the zerodha namespace.
    pub zerodha: RiskLimits,
}

impl Default for RiskSettings {
    fn default() -> Self {
        Self {
            paper: RiskLimits::default_for(Broker::Paper),
            zerodha: RiskLimits::default_for(Broker::Zerodha),
        }
    }
}

impl RiskSettings {
    /// The limits of `broker`.
    pub fn for_broker(&self, broker: Broker) -> &RiskLimits {
        match broker {
            Broker::Paper => &self.paper,
            Broker::Zerodha => &self.zerodha,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `memory://` (in-process) or `kafka://host:port[,host:port]`.
    pub url: String,
    /// librdkafka properties passed through as they are (security, timeouts, compression).
    pub kafka: BTreeMap<String, String>,
    /// Production multiplies every topic's partitions by this.
    pub partition_multiplier: u32,
    /// The memory log keeps at most this many records per partition…
    pub memory_retention_records: usize,
    /// …and this many bytes per partition…
    pub memory_retention_bytes: usize,
    /// …and drops records older than this (none by default); never one a group has not read.
    #[serde(with = "humantime_serde")]
    pub memory_retention: Option<Duration>,
}

impl Default for LogSettings {
    fn default() -> Self {
        let memory = MemoryLogConfig::default();
        Self {
            url: "memory://".into(),
            kafka: BTreeMap::new(),
            partition_multiplier: 1,
            memory_retention_records: memory.max_records_per_partition,
            memory_retention_bytes: memory.max_bytes_per_partition,
            memory_retention: memory.max_age,
        }
    }
}

impl LogSettings {
    /// The memory log's configuration these settings describe.
    pub fn memory_config(&self) -> MemoryLogConfig {
        MemoryLogConfig {
            max_records_per_partition: self.memory_retention_records,
            max_bytes_per_partition: self.memory_retention_bytes,
            max_age: self.memory_retention,
            ..MemoryLogConfig::default()
        }
    }

    /// Connects the log these settings name.
    ///
    /// # Errors
    /// As [`Log::connect_with`].
    pub fn connect(&self) -> Result<Log, alpha_panda_stream::LogError> {
        Log::connect_with(&self.url, &self.kafka, self.memory_config())
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://PATH`; empty means `sqlite://{data_dir}/alpha-panda.db`.
    pub url: String,
}

/// `[cache]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// `memory://` or `redis://host:port[/db]`.
    pub url: String,
    /// Prefix of every cache key (several deployments can share one Redis).
    pub prefix: String,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            prefix: "alpha_panda:".into(),
        }
    }
}

/// `[runtime]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Retries of one input before it goes to its DLQ.
    pub max_retries: u32,
    /// First retry delay.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Largest retry delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long a processed event id is remembered for deduplication.
    #[serde(with = "humantime_serde")]
    pub dedup_ttl: Duration,
    /// Commit after this many processed records…
    pub commit_batch: usize,
    /// …or after this long, whichever comes first.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// A checkpoint write still running after this long counts as failed and is retried.
    #[serde(with = "humantime_serde")]
    pub checkpoint_timeout: Duration,
    /// Records a service may process without a durable checkpoint before it stops taking input.
    pub max_unsaved_records: usize,
    /// How long a stateful service's writer lease lasts unless renewed: a standby instance takes
    /// over this long after its writer died.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        let processor = ProcessorConfig::default();
        Self {
            max_retries: processor.retry.max_retries,
            initial_backoff: processor.retry.initial_backoff,
            max_backoff: processor.retry.max_backoff,
            dedup_ttl: processor.dedup_ttl,
            commit_batch: processor.commit_batch,
            commit_interval: processor.commit_interval,
            checkpoint_timeout: processor.checkpoint_timeout,
            max_unsaved_records: processor.max_unsaved,
            lease_ttl: alpha_panda_store::DEFAULT_LEASE_TTL,
        }
    }
}

impl RuntimeSettings {
    /// The processor configuration these settings describe.
    pub fn processor_config(&self) -> ProcessorConfig {
        ProcessorConfig {
            retry: RetryPolicy {
                max_retries: self.max_retries,
                initial_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
            },
            dedup_ttl: self.dedup_ttl,
            commit_batch: self.commit_batch.max(1),
            commit_interval: self.commit_interval,
            checkpoint_timeout: self.checkpoint_timeout,
            // At least a commit batch, or input would stop before its checkpoint is even due.
            max_unsaved: self.max_unsaved_records.max(self.commit_batch.max(1) * 2),
            ..ProcessorConfig::default()
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (the development default).
    Human,
    /// One JSON object per line (the production default).
    Json,
}

/// `[logging]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSettings {
    /// A `tracing` filter (`info`, `alpha_panda_stream=debug,info`, …). `RUST_LOG` wins when set.
    pub level: String,
    /// Empty: human in development and testing, JSON in production.
    pub format: Option<LogFormat>,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: None,
        }
    }
}

/// Settings could not be loaded or are unsafe.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file named with `--config` does not exist.
    #[error("config file {0} does not exist; create it or drop --config to use the defaults")]
    MissingFile(PathBuf),
    /// A key is unknown, or a value has the wrong type (figment names the key and its source).
    #[error("invalid settings: {0}")]
    Invalid(String),
    /// A production guard refused the settings.
    #[error("refusing to start: {0}")]
    Refused(String),
}

/// Where each effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Dotted key (`log.url`).
    pub key: String,
    /// The effective value as text, secrets redacted.
    pub value: String,
    /// `default`, the file path, or the environment variable.
    pub source: String,
}

/// Settings together with the figment they were extracted from (for provenance).
pub struct LoadedSettings {
    /// The settings.
    pub settings: Settings,
    figment: Figment,
}

impl Settings {
    /// Loads settings from defaults, `config_file` (or `alpha-panda.toml` when present) and the
    /// process environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending key.
    pub fn load(config_file: Option<&Path>) -> Result<LoadedSettings, SettingsError> {
        Self::load_from(config_file, Env::prefixed(ENV_PREFIX).split("__"))
    }

    /// Like [`Settings::load`] with an explicit environment provider (tests).
    ///
    /// # Errors
    /// [`SettingsError`] naming the offending key.
    pub fn load_from(
        config_file: Option<&Path>,
        env: Env,
    ) -> Result<LoadedSettings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match config_file {
            Some(path) if !path.is_file() => {
                return Err(SettingsError::MissingFile(path.to_path_buf()))
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => {
                let default = Path::new(DEFAULT_CONFIG_FILE);
                if default.is_file() {
                    figment = figment.merge(Toml::file_exact(default));
                }
            }
        }
        figment = figment.merge(env);
        let settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError::Invalid(describe_figment_error(e)))?;
        settings.validate()?;
        Ok(LoadedSettings { settings, figment })
    }

    /// Checks that do not depend on the environment.
    fn validate(&self) -> Result<(), SettingsError> {
        self.api.validate(false).map_err(SettingsError::Invalid)?;
        if self.brokers.is_empty() {
            return Err(SettingsError::Invalid(
                "brokers: at least one broker namespace is required (e.g. [\"paper\"])".into(),
            ));
        }
        if self.log.partition_multiplier == 0 {
            return Err(SettingsError::Invalid(
                "log.partition_multiplier: must be at least 1".into(),
            ));
        }
        let source = self.market_feed.source.as_str();
        if !(source == "simulated" || source == "kite" || source.starts_with("csv:")) {
            return Err(SettingsError::Invalid(format!(
                "market_feed.source: {source:?} is not simulated, kite or csv:PATH"
            )));
        }
        if !self.market_feed.start_time.is_empty()
            && chrono::DateTime::parse_from_rfc3339(&self.market_feed.start_time).is_err()
        {
            return Err(SettingsError::Invalid(format!(
                "market_feed.start_time: {:?} is not an RFC 3339 time such as 2026-01-05T09:15:00+05:30",
                self.market_feed.start_time
            )));
        }
        if self.market_feed.max_price_jump_pct.is_sign_negative() {
            return Err(SettingsError::Invalid(
                "market_feed.max_price_jump_pct: must be 0 (no limit) or a positive percentage"
                    .into(),
            ));
        }
        if self.paper.slippage_bps_min > self.paper.slippage_bps_max
            || self.paper.slippage_bps_min.is_sign_negative()
        {
            return Err(SettingsError::Invalid(
                "paper.slippage_bps_min: must be between 0 and paper.slippage_bps_max".into(),
            ));
        }
        if self.portfolio.snapshot_interval.is_zero() {
            return Err(SettingsError::Invalid(
                "portfolio.snapshot_interval: must be longer than zero".into(),
            ));
        }
        if let Err(reason) =
            alpha_panda_kite::MarketProtection::from_setting(self.zerodha.market_protection)
        {
            return Err(SettingsError::Invalid(format!(
                "zerodha.market_protection: {reason}"
            )));
        }
        if self.zerodha.protected_order_timeout < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "zerodha.protected_order_timeout: must be at least 1s (e.g. \"30s\")".into(),
            ));
        }
        if let Some((name, _)) = self
            .zerodha
            .freeze_quantities
            .iter()
            .find(|(_, q)| **q == 0)
        {
            return Err(SettingsError::Invalid(format!(
                "zerodha.freeze_quantities.{name}: must be at least 1 unit (the exchange's \
                 freeze quantity of the instrument)"
            )));
        }
        if self.zerodha.reconcile_interval < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "zerodha.reconcile_interval: must be at least 1s (e.g. \"60s\")".into(),
            ));
        }
        if self.zerodha.max_signal_age < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "zerodha.max_signal_age: must be at least 1s (e.g. \"60s\")".into(),
            ));
        }
        if self.log.memory_retention_records == 0 {
            return Err(SettingsError::Invalid(
                "log.memory_retention_records: must be at least 1".into(),
            ));
        }
        if self.log.memory_retention_bytes < 1024 * 1024 {
            return Err(SettingsError::Invalid(
                "log.memory_retention_bytes: must be at least 1048576 (1 MiB per partition)".into(),
            ));
        }
        if self
            .log
            .memory_retention
            .is_some_and(|age| age < Duration::from_secs(1))
        {
            return Err(SettingsError::Invalid(
                "log.memory_retention: must be at least 1s (e.g. \"1h\"), or left out".into(),
            ));
        }
        if self.runtime.lease_ttl < Duration::from_secs(1) {
            return Err(SettingsError::Invalid(
                "runtime.lease_ttl: must be at least 1s (e.g. \"10s\")".into(),
            ));
        }
        if self.runtime.checkpoint_timeout.is_zero() {
            return Err(SettingsError::Invalid(
                "runtime.checkpoint_timeout: must be longer than zero (e.g. \"30s\")".into(),
            ));
        }
        if self.runtime.initial_backoff > self.runtime.max_backoff {
            return Err(SettingsError::Invalid(
                "runtime.initial_backoff: must not exceed runtime.max_backoff".into(),
            ));
        }
        Ok(())
    }

    /// The guards of ARCHITECTURE §7 that can be decided from settings alone: Zerodha without
    /// credentials in every environment, and the production guards (the migrations guard and the
    /// Kite session check run against the database and Kite at start-up).
    ///
    /// # Errors
    /// [`SettingsError::Refused`] listing every problem.
    pub fn guard(&self) -> Result<(), SettingsError> {
        let mut problems = Vec::new();
        if self.brokers.contains(&Broker::Zerodha) {
            let mut missing = Vec::new();
            if self.zerodha.api_key.trim().is_empty() {
                missing.push("zerodha.api_key");
            }
            if self.zerodha.api_secret.trim().is_empty() {
                missing.push("zerodha.api_secret");
            }
            if !missing.is_empty() {
                problems.push(format!(
                    "brokers includes \"zerodha\" but {} {} empty: set {} (e.g. {}) or remove \"zerodha\" from brokers",
                    missing.join(" and "),
                    if missing.len() == 1 { "is" } else { "are" },
                    if missing.len() == 1 { "it" } else { "them" },
                    missing
                        .iter()
                        .map(|k| format!("{ENV_PREFIX}{}", k.replace('.', "__").to_uppercase()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if self.environment == Environment::Production {
            if self.log.url.starts_with("memory") {
                problems.push(
                    "log.url is memory:// in production: events would not survive a restart; \
                     point it at kafka://host:port"
                        .to_string(),
                );
            }
            if self.log.url.starts_with("kafka") && self.cache.url.starts_with("memory") {
                // The log outlives the process; an in-memory dedup store does not. After a restart
                // every re-sent event (a risk decision, an order event) would be handled again.
                problems.push(
                    "cache.url is memory:// with a Kafka log in production: processed event ids \
                     would be forgotten at every restart while the log keeps the events; point \
                     it at redis://host:port"
                        .to_string(),
                );
            }
            if let Some(password) = url_password(&self.database_url()) {
                if password.is_empty() || password == "postgres" || password == "password" {
                    problems.push(
                        "database.url uses an empty or default password in production".to_string(),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::Refused(problems.join("; ")))
        }
    }

    /// The API's settings as the environment needs them to serve (production: a secret of its
    /// own, no CORS wildcard). Checked by the processes that serve the API, before they start.
    ///
    /// # Errors
    /// [`SettingsError::Refused`] naming the `api.*` key.
    pub fn guard_api(&self) -> Result<(), SettingsError> {
        self.api
            .validate(self.environment == Environment::Production)
            .map_err(SettingsError::Refused)
    }

    /// The effective database URL (`sqlite://{data_dir}/alpha-panda.db` when none is set).
    pub fn database_url(&self) -> String {
        if self.database.url.trim().is_empty() {
            format!(
                "sqlite://{}",
                self.data_dir.join("alpha-panda.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }

    /// The topic-spec overlay for this environment on a cluster of `broker_count` brokers.
    pub fn topic_overlay(&self, broker_count: u32) -> TopicSpecOverlay {
        TopicSpecOverlay {
            environment: self.environment,
            broker_count,
            partition_multiplier: self.log.partition_multiplier,
        }
    }

    /// The log format in force.
    pub fn log_format(&self) -> LogFormat {
        self.logging.format.unwrap_or(match self.environment {
            Environment::Production => LogFormat::Json,
            Environment::Development | Environment::Testing => LogFormat::Human,
        })
    }
}

impl LoadedSettings {
    /// Every effective value with its source, secrets redacted, sorted by key.
    pub fn provenance(&self) -> Vec<Provenance> {
        let value = serde_json::to_value(&self.settings).unwrap_or_default();
        let mut leaves = Vec::new();
        flatten("", &value, &mut leaves);
        leaves
            .into_iter()
            .map(|(key, value)| {
                let source = self
                    .figment
                    .find_metadata(&key)
                    .map(|m| describe_source(m, &key))
                    .unwrap_or_else(|| "default".to_string());
                let value = redact(&key, &value);
                Provenance { key, value, source }
            })
            .collect()
    }
}

/// `default`, `file PATH` or `environment ALPHA_PANDA__SECTION__KEY`.
fn describe_source(metadata: &figment::Metadata, key: &str) -> String {
    match &metadata.source {
        Some(figment::Source::File(path)) => format!("file {}", path.display()),
        Some(figment::Source::Custom(custom)) => custom.clone(),
        Some(figment::Source::Code(_)) => "default".to_string(),
        _ if metadata.name.contains("environment") => format!(
            "environment {ENV_PREFIX}{}",
            key.replace('.', "__").to_uppercase()
        ),
        _ => metadata.name.to_string(),
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Whether a key holds a secret (never printed, never logged).
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    ["secret", "password", "token", "api_key", "sasl"]
        .iter()
        .any(|s| last.contains(s))
}

/// The value as shown to people: secrets become `<redacted>`, URL passwords `***`.
pub fn redact(key: &str, value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if is_secret_key(key) {
        return if text.is_empty() {
            "<empty>".into()
        } else {
            "<redacted>".into()
        };
    }
    redact_url_password(&text)
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub fn redact_url_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return text.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => text.to_string(),
    }
}

fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.split_once('@')?;
    Some(
        userinfo
            .split_once(':')
            .map(|(_, p)| p.to_string())
            .unwrap_or_default(),
    )
}

/// Figment's messages name the key but not always the fix; say both.
fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("key `{}`: ", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", describe_source(m, &e.path.join("."))))
                .unwrap_or_default();
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_secrets_and_url_passwords() {
        assert_eq!(
            redact("zerodha.api_secret", &serde_json::json!("abc")),
            "<redacted>"
        );
        assert_eq!(
            redact(
                "database.url",
                &serde_json::json!("postgres://u:hunter2@db/x")
            ),
            "postgres://u:***@db/x"
        );
        assert_eq!(
            redact("log.url", &serde_json::json!("memory://")),
            "memory://"
        );
    }

    #[test]
    fn database_defaults_to_sqlite_under_data_dir() {
        let s = Settings {
            data_dir: PathBuf::from("/tmp/x"),
            ..Settings::default()
        };
        assert_eq!(s.database_url(), "sqlite:///tmp/x/alpha-panda.db");
    }
}
