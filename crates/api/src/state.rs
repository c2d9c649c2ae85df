//! What every handler shares: the store, the cache's read models, the active namespaces and their
//! risk limits, token signing, the login limiter and the readiness checks.

use std::collections::BTreeMap;

use alpha_panda_cache::Cache;
use alpha_panda_core::Broker;
use alpha_panda_services::risk_manager::RiskLimits;
use alpha_panda_store::Store;
use futures::future::BoxFuture;

use crate::auth::{Auth, LoginLimiter};
use crate::error::ApiError;
use crate::events::EventHub;
use crate::settings::ApiSettings;

/// One readiness check: a name (`database`, `cache`, `log`, `topics`, `zerodha`) and a probe that
/// answers why it fails.
pub struct ReadinessCheck {
    /// The check's name in `/health/ready`.
    pub name: &'static str,
    /// The probe.
    pub probe: Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The shared state of the API.
pub struct ApiState {
    /// The SQL store.
    pub store: Store,
    /// The cache (portfolio read models, service metrics), when the API has one.
    pub cache: Option<Cache>,
    /// The active namespaces.
    pub brokers: Vec<Broker>,
    /// Risk limits per namespace, as the risk managers apply them.
    pub risk_limits: BTreeMap<Broker, RiskLimits>,
    /// Token signing and checking.
    pub auth: Auth,
    /// Failed logins.
    pub limiter: LoginLimiter,
    /// What `/health/ready` checks.
    pub readiness: Vec<ReadinessCheck>,
    /// Live events for the event stream and the metrics.
    pub events: EventHub,
    /// The log (dead letters), when the API has one.
    pub log: Option<alpha_panda_stream::Log>,
    /// The process's log lines.
    pub logs: crate::logs::LogHub,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("brokers", &self.brokers)
            .field("cache", &self.cache.is_some())
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state for `settings` over `store`, serving `brokers`.
    pub fn new(settings: &ApiSettings, store: Store, brokers: Vec<Broker>) -> Self {
        Self {
            store,
            cache: None,
            brokers,
            risk_limits: BTreeMap::new(),
            auth: Auth::new(
                &settings.jwt_secret,
                settings.token_ttl,
                settings.refresh_ttl,
            ),
            limiter: LoginLimiter::new(settings.max_failed_logins, settings.login_lockout),
            readiness: Vec::new(),
            events: EventHub::default(),
            log: None,
            logs: crate::logs::LogHub::default(),
        }
    }

    /// With the log (dead letters).
    pub fn with_log(mut self, log: alpha_panda_stream::Log) -> Self {
        self.log = Some(log);
        self
    }

    /// With the hub the process's log lines go to.
    pub fn with_logs(mut self, logs: crate::logs::LogHub) -> Self {
        self.logs = logs;
        self
    }

    /// With the cache's read models.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// With a namespace's risk limits.
    pub fn with_risk_limits(mut self, broker: Broker, limits: RiskLimits) -> Self {
        self.risk_limits.insert(broker, limits);
        self
    }

    /// With one more readiness check.
    pub fn with_check(mut self, check: ReadinessCheck) -> Self {
        self.readiness.push(check);
        self
    }

    /// With the hub live events come through.
    pub fn with_events(mut self, events: EventHub) -> Self {
        self.events = events;
        self
    }

    /// The namespace named in a path, if it is active.
    ///
    /// # Errors
    /// [`ApiError::not_found`] for an unknown or inactive namespace, listing the active ones.
    pub fn broker(&self, name: &str) -> Result<Broker, ApiError> {
        let active: Vec<&str> = self.brokers.iter().map(|b| b.as_str()).collect();
        match name.parse::<Broker>() {
            Ok(broker) if self.brokers.contains(&broker) => Ok(broker),
            _ => Err(ApiError::not_found(format!(
                "no active broker namespace `{name}`; active: {}",
                active.join(", ")
            ))),
        }
    }
}
