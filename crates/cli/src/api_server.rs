//! Starting the operator surface: the API's state from this process's backends, the first admin
//! on an empty user table, the log tail that feeds the event stream, and the server on
//! `api.bind`.

use std::sync::Arc;

use alpha_panda_api::{tail_log, ApiState, EventHub, ReadinessCheck};
use alpha_panda_core::Broker;
use alpha_panda_kite::KiteClient;
use alpha_panda_store::Role;
use anyhow::Context;
use futures::FutureExt;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::container::Backends;
use crate::settings::Settings;

/// The running surface.
pub struct ApiServer {
    /// Where it listens.
    pub address: std::net::SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    tail: JoinHandle<()>,
    status: JoinHandle<()>,
}

impl ApiServer {
    /// Stops serving and waits for the server and the log tail.
    pub async fn stop(self) {
        self.stop.cancel();
        match self.server.await {
            Ok(Err(e)) => warn!(error = %e, "the API server stopped with an error"),
            Err(e) => warn!(error = %e, "the API server task failed"),
            Ok(Ok(())) => {}
        }
        let _ = self.tail.await;
        let _ = self.status.await;
    }
}

/// A password to print once (the first admin's, `alpha-panda user` without `--password-stdin`).
pub(crate) fn generated_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// On an empty user table, creates `admin` with a generated password and prints it, once: the
/// next start finds a user and prints nothing.
///
/// # Errors
/// When the store cannot be read or written.
pub async fn ensure_first_admin(backends: &Backends) -> anyhow::Result<()> {
    let users = backends.store.users();
    if users.count().await? > 0 {
        return Ok(());
    }
    let password = generated_password();
    match users.create("admin", &password, Role::Admin).await {
        Ok(_) => {
            eprintln!(
                "created the first user: admin / {password}\n  (shown this once; change it with \
                 `alpha-panda user password admin`, add others with `alpha-panda user add`)"
            );
            Ok(())
        }
        // Another process created it first.
        Err(alpha_panda_store::StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The API's state over this process's backends, with its readiness checks.
pub fn state(
    settings: &Settings,
    backends: &Backends,
    kite: Option<Arc<KiteClient>>,
    events: EventHub,
) -> ApiState {
    let mut state = ApiState::new(
        &settings.api,
        backends.store.clone(),
        settings.brokers.clone(),
    )
    .with_cache(backends.cache.clone())
    .with_log(backends.log.clone())
    .with_logs(crate::logging::log_hub())
    .with_events(events);
    for broker in &settings.brokers {
        state = state.with_risk_limits(*broker, settings.risk.for_broker(*broker).clone());
    }
    let store = backends.store.clone();
    state = state.with_check(ReadinessCheck {
        name: "database",
        probe: Box::new(move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
        }),
    });
    let cache = backends.cache.clone();
    state = state.with_check(ReadinessCheck {
        name: "cache",
        probe: Box::new(move || {
            let cache = cache.clone();
            async move { cache.ping().await.map_err(|e| e.to_string()) }.boxed()
        }),
    });
    let log = backends.log.clone();
    state = state.with_check(ReadinessCheck {
        name: "log",
        probe: Box::new(move || {
            let log = log.clone();
            async move {
                log.broker_count()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            .boxed()
        }),
    });
    let log = backends.log.clone();
    let brokers = settings.brokers.clone();
    state = state.with_check(ReadinessCheck {
        name: "topics",
        probe: Box::new(move || {
            let (log, brokers) = (log.clone(), brokers.clone());
            async move {
                let existing: std::collections::BTreeSet<String> = log
                    .describe_topics()
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|t| t.name)
                    .collect();
                let missing: Vec<String> = alpha_panda_core::TopicMap::all_topics(&brokers)
                    .into_iter()
                    .map(|t| t.name)
                    .filter(|name| !existing.contains(name))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "missing topics: {}; run `alpha-panda bootstrap`",
                        missing.join(", ")
                    ))
                }
            }
            .boxed()
        }),
    });
    if settings.brokers.contains(&Broker::Zerodha) {
        let kite = kite.clone();
        state = state.with_check(ReadinessCheck {
            name: "zerodha",
            probe: Box::new(move || {
                let kite = kite.clone();
                async move {
                    let Some(client) = kite else {
                        return Err("no Kite session; run `alpha-panda kite login`".to_string());
                    };
                    client
                        .profile()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                .boxed()
            }),
        });
    }
    state
}

/// Starts the surface on `api.bind`, fed by the log. A port in use is an error when `must_listen`
/// (production, or `alpha-panda api` itself); otherwise a warning, and the pipeline runs on
/// without the API.
///
/// # Errors
/// When `api.bind` cannot be listened on and `must_listen`, or the store cannot be read.
pub async fn start(
    settings: &Settings,
    backends: &Backends,
    kite: Option<Arc<KiteClient>>,
    must_listen: bool,
) -> anyhow::Result<Option<ApiServer>> {
    ensure_first_admin(backends).await?;
    let listener = match tokio::net::TcpListener::bind(settings.api.bind).await {
        Ok(listener) => listener,
        Err(e) if !must_listen => {
            warn!(bind = %settings.api.bind, error = %e,
                "could not listen on api.bind; the pipeline runs without the API and dashboard \
                 (set api.bind to a free address, or api.enabled = false)");
            return Ok(None);
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("api.bind: cannot listen on {}", settings.api.bind))
        }
    };
    let address = listener.local_addr()?;
    let events = EventHub::default();
    let state = Arc::new(state(settings, backends, kite, events.clone()));
    let stop = CancellationToken::new();
    let tail = tokio::spawn(tail_log(
        backends.log.clone(),
        alpha_panda_api::events::live_topics(&settings.brokers),
        events,
        stop.clone(),
    ));
    let status = tokio::spawn(alpha_panda_api::routes::pipeline::publish_status(
        state.clone(),
        stop.clone(),
    ));
    let api_settings = settings.api.clone();
    let server_stop = stop.clone();
    let server = tokio::spawn(async move {
        alpha_panda_api::serve(listener, state, &api_settings, server_stop).await
    });
    info!(url = %format!("http://{address}/"), "dashboard and API listening");
    eprintln!("dashboard and API: http://{address}/");
    Ok(Some(ApiServer {
        address,
        stop,
        server,
        tail,
        status,
    }))
}
