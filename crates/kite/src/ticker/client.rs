//! `KiteTicker`: the KiteTicker websocket client. It connects with the api_key and access token,
//! keeps a local token → mode map and re-sends it after every reconnect, decodes binary frames
//! into a [`ConflatingBuffer`], forwards JSON order updates to a channel, reconnects when no frame
//! arrives within the read-idle timeout, and backs off exponentially (with jitter, capped) up to
//! a retry budget.
//!
//! # Sharding
//! Kite streams "up to 3000 instruments per connection and 3 connections per api_key"
//! (Kite Connect documentation; kite-protocol reference §1.1), so one `KiteTicker` is up to
//! [`MAX_CONNECTIONS`] connections (shards), each a task of its own with its own token → mode
//! map, reconnects and retry budget:
//! - Shard 0 connects at [`KiteTicker::start`]; another is opened only when the shards open are
//!   full, so up to [`MAX_INSTRUMENTS_PER_CONNECTION`] tokens take exactly one connection. Opened
//!   shards stay open (idle ones cost a heartbeat), even when unsubscribing empties them.
//! - Each token lives on exactly one shard. A new token goes to the first shard with room
//!   (fill-first): it keeps the connections few, and refills the holes unsubscribing leaves before
//!   it opens anything. `unsubscribe` and `set_mode` go to the token's shard (`set_mode` places a
//!   new token as `subscribe` does).
//! - A subscription that would take the ticker beyond [`MAX_INSTRUMENTS`] distinct tokens is
//!   refused whole with [`TickerError::TooManyInstruments`]; nothing of it is applied.
//! - After a reconnect a shard re-sends only its own tokens.
//! - Every shard feeds the same tick buffer, order-update and notice channels, and
//!   [`TickerMetrics`] (its counters are sums over the shards).
//! - A shard that stops for good (refused, retries exhausted) stops every shard: a feed silently
//!   missing a third of its instruments is worse than one that ends and says why. The buffer
//!   closes, and [`KiteTicker::is_stopped`] turns true, once every shard has ended.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{ErrorClass, InstrumentToken};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::conflate::ConflatingBuffer;
use super::decode::decode_message;
use super::packet::{TickMode, TickPacket};
use crate::backoff::Backoff;
use crate::rest::types::Order;
use crate::settings::ZerodhaSettings;

/// How the ticker connects and recovers. `Debug` hides the access token.
#[derive(Clone)]
pub struct TickerConfig {
    /// Websocket URL (`wss://ws.kite.trade`).
    pub ws_url: String,
    /// The app's api_key.
    pub api_key: String,
    /// The session's access token.
    pub access_token: String,
    /// The REST client's token, when the ticker follows it: refused with 403 (the session
    /// expired), the ticker waits for a new token there and reconnects with it, instead of
    /// stopping.
    pub shared_token: Option<crate::rest::SharedAccessToken>,
    /// Refused for an expired session, how long the ticker waits for a new token before it tries
    /// the one it has again (a session granted again may keep its token).
    pub session_retry: Duration,
    /// Reconnect when no frame (heartbeats included) arrives for this long.
    pub read_idle_timeout: Duration,
    /// First reconnect delay; doubled per failed attempt.
    pub reconnect_base_delay: Duration,
    /// Cap on the reconnect delay (before jitter).
    pub max_reconnect_delay: Duration,
    /// Consecutive failed connection attempts before giving up.
    pub max_reconnect_attempts: u32,
    /// Timeout of one connection attempt (TCP + TLS + upgrade).
    pub connect_timeout: Duration,
    /// Distinct tokens the tick buffer holds before discarding the oldest.
    pub buffer_capacity: usize,
    /// Order updates buffered for the consumer before new ones are dropped (and counted).
    pub order_update_capacity: usize,
}

impl std::fmt::Debug for TickerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickerConfig")
            .field("ws_url", &self.ws_url)
            .field("api_key", &self.api_key)
            .field("access_token", &"<redacted>")
            .field("read_idle_timeout", &self.read_idle_timeout)
            .field("reconnect_base_delay", &self.reconnect_base_delay)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .field("max_reconnect_attempts", &self.max_reconnect_attempts)
            .finish_non_exhaustive()
    }
}

impl TickerConfig {
    /// Follows the REST client's session (see [`TickerConfig::shared_token`]).
    pub fn with_shared_token(mut self, token: crate::rest::SharedAccessToken) -> Self {
        self.shared_token = Some(token);
        self
    }

    /// The configuration from settings and a session's access token, with the reference's
    /// conventions: 2 s first delay, 30 s connect timeout, a tick buffer for every instrument the
    /// ticker can stream ([`MAX_INSTRUMENTS`]).
    pub fn from_settings(settings: &ZerodhaSettings, access_token: impl Into<String>) -> Self {
        TickerConfig {
            ws_url: settings.ws_url.clone(),
            api_key: settings.api_key.clone(),
            access_token: access_token.into(),
            shared_token: None,
            session_retry: Duration::from_secs(30),
            read_idle_timeout: settings.ws_read_idle_timeout,
            reconnect_base_delay: Duration::from_secs(2),
            max_reconnect_delay: settings.ws_max_reconnect_delay,
            max_reconnect_attempts: settings.ws_max_reconnect_attempts,
            connect_timeout: Duration::from_secs(30),
            buffer_capacity: MAX_INSTRUMENTS,
            order_update_capacity: 4096,
        }
    }
}

/// Connections Kite accepts per api_key (reference §1.1: "up to 3000 instruments per connection
/// and 3 connections per api_key"); a 4th is refused.
pub const MAX_CONNECTIONS: usize = 3;

/// Instruments Kite streams on one connection (reference §1.1); more are not subscribed.
pub const MAX_INSTRUMENTS_PER_CONNECTION: usize = 3000;

/// Distinct instruments one ticker (one api_key) can stream:
/// [`MAX_CONNECTIONS`] × [`MAX_INSTRUMENTS_PER_CONNECTION`].
pub const MAX_INSTRUMENTS: usize = MAX_CONNECTIONS * MAX_INSTRUMENTS_PER_CONNECTION;

/// Why the ticker stopped or a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TickerError {
    /// The upgrade was refused (403): wrong api_key or expired access token.
    #[error(
        "KiteTicker refused the connection (HTTP {status}): the access token is invalid or \
         expired; run `alpha-panda kite login` again"
    )]
    Forbidden {
        /// HTTP status of the refused upgrade.
        status: u16,
    },
    /// Too many consecutive failed connection attempts.
    #[error(
        "KiteTicker gave up after {attempts} failed connection attempts (last: {last_error}); \
         check connectivity to the websocket URL and restart the feed"
    )]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// The websocket URL cannot be used.
    #[error("invalid KiteTicker URL {url:?}: {reason}; fix zerodha.ws_url")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The ticker task has stopped; commands can no longer be sent.
    #[error("KiteTicker is stopped; start a new one")]
    Stopped,
    /// A subscription would take the ticker beyond what Kite streams to one api_key.
    #[error(
        "KiteTicker can stream at most {limit} instruments ({MAX_CONNECTIONS} connections × \
         {MAX_INSTRUMENTS_PER_CONNECTION} instruments per api_key), and this subscription would \
         make {requested}; nothing of it was subscribed: subscribe fewer instruments (e.g. set \
         market_feed.instruments)"
    )]
    TooManyInstruments {
        /// Distinct tokens the ticker would stream with the subscription.
        requested: usize,
        /// The most it can stream ([`MAX_INSTRUMENTS`]).
        limit: usize,
    },
}

impl TickerError {
    /// How the runtime should treat it.
    pub fn class(&self) -> ErrorClass {
        match self {
            // Asking again does not help: the session or the subscription must change.
            TickerError::Forbidden { .. } | TickerError::TooManyInstruments { .. } => {
                ErrorClass::Business
            }
            TickerError::RetriesExhausted { .. }
            | TickerError::InvalidUrl { .. }
            | TickerError::Stopped => ErrorClass::Infrastructure,
        }
    }
}

/// Counters of the ticker's life, for metrics: sums over its connections (shards).
#[derive(Debug, Default)]
pub struct TickerMetrics {
    /// Successful connections (the first one of each shard included).
    pub connects: AtomicU64,
    /// Successful connections after a shard's first.
    pub reconnects: AtomicU64,
    /// Connections closed by the read-idle watchdog.
    pub watchdog_timeouts: AtomicU64,
    /// Binary frames received (heartbeats included).
    pub binary_frames: AtomicU64,
    /// Tick packets decoded.
    pub ticks: AtomicU64,
    /// Binary frames that failed to decode (dropped).
    pub decode_errors: AtomicU64,
    /// Order updates received (a copy per connection Kite pushed it on).
    pub order_updates: AtomicU64,
    /// Order updates dropped because the consumer's channel was full.
    pub order_updates_dropped: AtomicU64,
}

impl TickerMetrics {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// An order update pushed over the websocket (`{"type":"order","data":{…}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderUpdate {
    /// The order's new state.
    pub order: Order,
    /// The payload as received (postback fields not modelled in [`Order`]).
    pub raw: Value,
}

/// A text message of the broker's (`error` or `message` frames): something to tell an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNotice {
    /// Whether Kite sent it as an error.
    pub error: bool,
    /// What it says.
    pub text: String,
}

/// Notices buffered for the consumer before new ones are dropped.
const NOTICE_CAPACITY: usize = 64;

enum Command {
    Subscribe(Vec<u32>, TickMode),
    Unsubscribe(Vec<u32>),
    Mode(Vec<u32>, TickMode),
}

/// How often a ticker refused for an expired session looks for a new token.
const SESSION_WAIT: Duration = Duration::from_secs(2);

/// What every shard shares: where and how to connect, where its output goes, and the stop switch.
struct Hub {
    url: url::Url,
    config: TickerConfig,
    buffer: Arc<ConflatingBuffer>,
    metrics: Arc<TickerMetrics>,
    stop: watch::Sender<bool>,
    /// The channels' senders new shards clone; dropped when the last shard ends, so the
    /// consumers see their channels close once the ticker has stopped.
    outputs: Mutex<Option<Outputs>>,
    /// Shards running. Once it falls to 0 the ticker is over and no shard is opened again.
    live: AtomicUsize,
}

#[derive(Clone)]
struct Outputs {
    updates: mpsc::Sender<OrderUpdate>,
    notices: mpsc::Sender<BrokerNotice>,
}

impl Hub {
    /// Starts shard `index`'s task; `None` when the ticker is stopping or stopped.
    fn spawn(self: &Arc<Self>, index: usize) -> Option<Shard> {
        if *self.stop.borrow() {
            return None;
        }
        let outputs = self.outputs.lock().clone()?;
        // The first shard is counted by `KiteTicker::start`; a later one only while another runs.
        if index > 0
            && self
                .live
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n > 0).then_some(n + 1)
                })
                .is_err()
        {
            return None;
        }
        let (commands, command_rx) = mpsc::channel(64);
        let worker = Worker {
            shard: index,
            hub: Arc::clone(self),
            commands: command_rx,
            updates: outputs.updates,
            notices: outputs.notices,
            shutdown: self.stop.subscribe(),
            subscriptions: BTreeMap::new(),
        };
        Some(Shard {
            commands,
            task: tokio::spawn(worker.run()),
        })
    }

    /// A shard's task has ended (however it ended, a panic included).
    fn shard_ended(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.buffer.close();
            self.outputs.lock().take();
        }
    }
}

/// Runs [`Hub::shard_ended`] when a shard's task ends, even by a panic (which also stops the
/// other shards, as an error does).
struct ShardExit(Arc<Hub>);

impl Drop for ShardExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop.send_replace(true);
        }
        self.0.shard_ended();
    }
}

/// One connection of the ticker: its command channel and its task.
struct Shard {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<Result<(), TickerError>>,
}

/// Which shard holds each token, and how many each holds.
#[derive(Debug, Default)]
struct Routing {
    shard_of: HashMap<u32, usize>,
    /// Tokens per shard, by shard index.
    sizes: Vec<usize>,
}

/// Where the tokens of one `subscribe` / `set_mode` go.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// The tokens for each shard, in the order asked, without repeats; as many entries as shards
    /// must be open.
    per_shard: Vec<Vec<u32>>,
    /// The tokens new to the ticker, with their shard.
    placed: Vec<(u32, usize)>,
}

impl Routing {
    /// Places `tokens` (known ones on their shard, new ones fill-first) without changing
    /// anything yet.
    fn plan(&self, tokens: &[u32]) -> Result<Plan, TickerError> {
        let mut seen = HashSet::new();
        let new = tokens
            .iter()
            .filter(|t| !self.shard_of.contains_key(t) && seen.insert(**t))
            .count();
        let requested = self.shard_of.len() + new;
        if requested > MAX_INSTRUMENTS {
            return Err(TickerError::TooManyInstruments {
                requested,
                limit: MAX_INSTRUMENTS,
            });
        }
        let mut sizes = self.sizes.clone();
        let mut per_shard = vec![Vec::new(); sizes.len()];
        let mut placed = Vec::new();
        let mut seen = HashSet::new();
        for &token in tokens {
            if !seen.insert(token) {
                continue;
            }
            let shard = match self.shard_of.get(&token) {
                Some(shard) => *shard,
                None => {
                    let shard = sizes
                        .iter()
                        .position(|n| *n < MAX_INSTRUMENTS_PER_CONNECTION)
                        .unwrap_or(sizes.len());
                    if shard == sizes.len() {
                        sizes.push(0);
                        per_shard.push(Vec::new());
                    }
                    sizes[shard] += 1;
                    placed.push((token, shard));
                    shard
                }
            };
            per_shard[shard].push(token);
        }
        // At most MAX_INSTRUMENTS tokens, at most MAX_INSTRUMENTS_PER_CONNECTION on each.
        debug_assert!(per_shard.len() <= MAX_CONNECTIONS);
        Ok(Plan { per_shard, placed })
    }

    fn commit(&mut self, plan: &Plan) {
        if self.sizes.len() < plan.per_shard.len() {
            self.sizes.resize(plan.per_shard.len(), 0);
        }
        for &(token, shard) in &plan.placed {
            self.shard_of.insert(token, shard);
            self.sizes[shard] += 1;
        }
    }

    /// Forgets the known ones of `tokens`; returns them by shard.
    fn remove(&mut self, tokens: &[u32]) -> Vec<Vec<u32>> {
        let mut per_shard = vec![Vec::new(); self.sizes.len()];
        for token in tokens {
            if let Some(shard) = self.shard_of.remove(token) {
                self.sizes[shard] -= 1;
                per_shard[shard].push(*token);
            }
        }
        per_shard
    }
}

/// A running KiteTicker: up to [`MAX_CONNECTIONS`] connections (see the module docs on
/// sharding). Dropping it stops every connection task.
pub struct KiteTicker {
    hub: Arc<Hub>,
    /// Held across the sends of one command, so the shards get the commands in the order the
    /// routing saw them.
    routing: tokio::sync::Mutex<Routing>,
    shards: Mutex<Vec<Shard>>,
    order_updates: Mutex<Option<mpsc::Receiver<OrderUpdate>>>,
    notices: Mutex<Option<mpsc::Receiver<BrokerNotice>>>,
}

impl Drop for KiteTicker {
    fn drop(&mut self) {
        // The shards hold the hub (and its stop switch) too, so dropping the ticker alone would
        // leave them running: tell them to stop.
        self.hub.stop.send_replace(true);
    }
}

impl KiteTicker {
    /// Starts the first connection task (it connects in the background and keeps reconnecting);
    /// more are opened when subscriptions need them.
    ///
    /// # Errors
    /// [`TickerError::InvalidUrl`] when the URL cannot carry the credentials.
    pub fn start(config: TickerConfig) -> Result<KiteTicker, TickerError> {
        let url = url::Url::parse(&config.ws_url).map_err(|e| TickerError::InvalidUrl {
            url: config.ws_url.clone(),
            reason: e.to_string(),
        })?;
        let buffer = Arc::new(ConflatingBuffer::new(config.buffer_capacity));
        let (updates, updates_rx) = mpsc::channel(config.order_update_capacity.max(1));
        let (notices, notices_rx) = mpsc::channel(NOTICE_CAPACITY);
        let (stop, _) = watch::channel(false);
        let hub = Arc::new(Hub {
            url,
            config,
            buffer,
            metrics: Arc::new(TickerMetrics::default()),
            stop,
            outputs: Mutex::new(Some(Outputs { updates, notices })),
            live: AtomicUsize::new(1),
        });
        let first = hub.spawn(0).ok_or(TickerError::Stopped)?;
        Ok(KiteTicker {
            hub,
            routing: tokio::sync::Mutex::new(Routing::default()),
            shards: Mutex::new(vec![first]),
            order_updates: Mutex::new(Some(updates_rx)),
            notices: Mutex::new(Some(notices_rx)),
        })
    }

    /// Subscribes tokens and sets their mode (kept across reconnects).
    ///
    /// # Errors
    /// [`TickerError::TooManyInstruments`] (nothing subscribed) when the ticker would stream more
    /// than [`MAX_INSTRUMENTS`] distinct tokens; [`TickerError::Stopped`] when the ticker has
    /// ended.
    pub async fn subscribe(
        &self,
        tokens: &[InstrumentToken],
        mode: TickMode,
    ) -> Result<(), TickerError> {
        self.place(tokens, |tokens| Command::Subscribe(tokens, mode))
            .await
    }

    /// Unsubscribes tokens (each on its connection; tokens never subscribed are ignored).
    ///
    /// # Errors
    /// [`TickerError::Stopped`] when the ticker has ended.
    pub async fn unsubscribe(&self, tokens: &[InstrumentToken]) -> Result<(), TickerError> {
        let mut routing = self.routing.lock().await;
        let per_shard = routing.remove(&raw_tokens(tokens));
        self.send(per_shard, Command::Unsubscribe).await
    }

    /// Changes the mode of tokens (subscribing them if needed).
    ///
    /// # Errors
    /// As [`KiteTicker::subscribe`].
    pub async fn set_mode(
        &self,
        tokens: &[InstrumentToken],
        mode: TickMode,
    ) -> Result<(), TickerError> {
        self.place(tokens, |tokens| Command::Mode(tokens, mode))
            .await
    }

    /// Routes `tokens` to their shards (opening the ones needed) and sends each its command.
    async fn place(
        &self,
        tokens: &[InstrumentToken],
        command: impl Fn(Vec<u32>) -> Command,
    ) -> Result<(), TickerError> {
        let mut routing = self.routing.lock().await;
        let plan = routing.plan(&raw_tokens(tokens))?;
        self.open_shards(plan.per_shard.len())?;
        routing.commit(&plan);
        self.send(plan.per_shard, command).await
    }

    /// Opens shards until there are `count`.
    fn open_shards(&self, count: usize) -> Result<(), TickerError> {
        let mut shards = self.shards.lock();
        while shards.len() < count {
            let shard = self.hub.spawn(shards.len()).ok_or(TickerError::Stopped)?;
            tracing::info!(shard = shards.len(), "KiteTicker opens another connection");
            shards.push(shard);
        }
        Ok(())
    }

    async fn send(
        &self,
        per_shard: Vec<Vec<u32>>,
        command: impl Fn(Vec<u32>) -> Command,
    ) -> Result<(), TickerError> {
        let senders: Vec<mpsc::Sender<Command>> = self
            .shards
            .lock()
            .iter()
            .map(|s| s.commands.clone())
            .collect();
        let mut sent = false;
        for (shard, tokens) in per_shard.into_iter().enumerate() {
            if tokens.is_empty() {
                continue;
            }
            let sender = senders.get(shard).ok_or(TickerError::Stopped)?;
            sender
                .send(command(tokens))
                .await
                .map_err(|_| TickerError::Stopped)?;
            sent = true;
        }
        if !sent && self.is_stopped() {
            return Err(TickerError::Stopped);
        }
        Ok(())
    }

    /// Connections (shards) opened: 1 up to [`MAX_INSTRUMENTS_PER_CONNECTION`] tokens, at most
    /// [`MAX_CONNECTIONS`].
    pub fn connections(&self) -> usize {
        self.shards.lock().len()
    }

    /// The next tick (latest per token); `None` once the ticker has stopped and the buffer is
    /// drained — then [`KiteTicker::shutdown`] tells why.
    pub async fn next_tick(&self) -> Option<TickPacket> {
        self.hub.buffer.pop().await
    }

    /// The tick buffer (for its `conflated` and `dropped` counters).
    pub fn buffer(&self) -> &Arc<ConflatingBuffer> {
        &self.hub.buffer
    }

    /// Ticks replaced by newer ones of the same token before the consumer took them.
    pub fn conflated_ticks(&self) -> u64 {
        self.hub.buffer.conflated()
    }

    /// The order-update channel; `Some` only on the first call.
    pub fn take_order_updates(&self) -> Option<mpsc::Receiver<OrderUpdate>> {
        self.order_updates.lock().take()
    }

    /// Takes the receiver of the broker's `error` and `message` frames (once).
    pub fn take_notices(&self) -> Option<mpsc::Receiver<BrokerNotice>> {
        self.notices.lock().take()
    }

    /// Connection counters (summed over the connections).
    pub fn metrics(&self) -> &Arc<TickerMetrics> {
        &self.hub.metrics
    }

    /// Whether every connection task has ended (given up, refused, or shut down). One that ends
    /// with an error stops the others, so this turns true soon after any shard fails.
    pub fn is_stopped(&self) -> bool {
        self.shards.lock().iter().all(|s| s.task.is_finished())
    }

    /// Stops every connection and waits for their tasks.
    ///
    /// # Errors
    /// The first error (in shard order) that had already stopped a connection, if any.
    pub async fn shutdown(self) -> Result<(), TickerError> {
        self.hub.stop.send_replace(true);
        let shards = std::mem::take(&mut *self.shards.lock());
        let mut first_error = None;
        for shard in shards {
            let result = shard.task.await.unwrap_or(Err(TickerError::Stopped));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn raw_tokens(tokens: &[InstrumentToken]) -> Vec<u32> {
    tokens.iter().map(|t| t.0).collect()
}

/// How one connection ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// One connection (shard) of the ticker, with the tokens routed to it.
struct Worker {
    shard: usize,
    hub: Arc<Hub>,
    commands: mpsc::Receiver<Command>,
    updates: mpsc::Sender<OrderUpdate>,
    notices: mpsc::Sender<BrokerNotice>,
    shutdown: watch::Receiver<bool>,
    /// This shard's tokens only: what it re-sends after a reconnect.
    subscriptions: BTreeMap<u32, TickMode>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Worker {
    async fn run(mut self) -> Result<(), TickerError> {
        let _exit = ShardExit(Arc::clone(&self.hub));
        let result = self.connect_loop().await;
        if let Err(err) = &result {
            tracing::error!(shard = self.shard, error = %err, "KiteTicker stopped");
            // The other shards stop too: their instruments alone are not the feed asked for.
            self.hub.stop.send_replace(true);
        }
        result
    }

    async fn connect_loop(&mut self) -> Result<(), TickerError> {
        let backoff = Backoff {
            base: self.hub.config.reconnect_base_delay,
            max: self.hub.config.max_reconnect_delay,
        };
        let mut failures = 0u32;
        let mut ever_connected = false;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            let last_error = match self.connect().await {
                Ok(socket) => {
                    TickerMetrics::bump(&self.hub.metrics.connects);
                    if ever_connected {
                        TickerMetrics::bump(&self.hub.metrics.reconnects);
                    }
                    ever_connected = true;
                    tracing::info!(
                        shard = self.shard,
                        tokens = self.subscriptions.len(),
                        "KiteTicker connected"
                    );
                    let (end, received_frames) = self.session(socket).await;
                    // A connection that delivered data resets the budget; one that was accepted
                    // and lost before any frame counts as a failed attempt, so a server that
                    // accepts and drops cannot keep the client looping forever.
                    if received_frames {
                        failures = 0;
                    }
                    failures += 1;
                    match end {
                        SessionEnd::Shutdown => return Ok(()),
                        SessionEnd::Lost(reason) => {
                            tracing::warn!(%reason, "KiteTicker connection lost; reconnecting");
                            reason
                        }
                    }
                }
                Err(ConnectError::Forbidden(status)) => {
                    let refused = self.access_token();
                    let Some(shared) = self.hub.config.shared_token.clone() else {
                        return Err(TickerError::Forbidden { status });
                    };
                    tracing::warn!(
                        "KiteTicker refused (403): the session expired; reconnecting once \
                         `alpha-panda kite login` gives a new one"
                    );
                    // Tries again at once when the token changes, and after `session_retry`
                    // anyway (a session revoked and granted again may keep its token).
                    let give_up_waiting = Instant::now() + self.hub.config.session_retry;
                    loop {
                        if self.wait(SESSION_WAIT).await {
                            return Ok(());
                        }
                        if shared.read().as_deref() != Some(refused.as_str())
                            || Instant::now() >= give_up_waiting
                        {
                            break;
                        }
                    }
                    failures = 0;
                    continue;
                }
                Err(ConnectError::Failed(reason)) => {
                    failures += 1;
                    tracing::warn!(%reason, attempt = failures, "KiteTicker connection failed");
                    reason
                }
            };
            if failures > self.hub.config.max_reconnect_attempts {
                return Err(TickerError::RetriesExhausted {
                    attempts: failures,
                    last_error,
                });
            }
            let delay = backoff.delay_with_jitter(failures.saturating_sub(1));
            if self.wait(delay).await {
                return Ok(());
            }
        }
    }

    /// Sleeps for `delay` while still accepting commands; `true` when shut down meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        return true;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => { self.apply(command); }
                    None => return true,
                },
            }
        }
    }

    /// The token to connect with: the shared one when the ticker follows the REST client.
    fn access_token(&self) -> String {
        self.hub
            .config
            .shared_token
            .as_ref()
            .and_then(|shared| shared.read().clone())
            .unwrap_or_else(|| self.hub.config.access_token.clone())
    }

    async fn connect(&self) -> Result<Socket, ConnectError> {
        let mut url = self.hub.url.clone();
        url.query_pairs_mut()
            .append_pair("api_key", &self.hub.config.api_key)
            .append_pair("access_token", &self.access_token());
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        request
            .headers_mut()
            .insert("X-Kite-Version", HeaderValue::from_static("3"));
        let attempt = tokio::time::timeout(
            self.hub.config.connect_timeout,
            tokio_tungstenite::connect_async(request),
        )
        .await;
        match attempt {
            Err(_) => Err(ConnectError::Failed(format!(
                "connection timed out after {:?}",
                self.hub.config.connect_timeout
            ))),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(WsError::Http(response))) if response.status().as_u16() == 403 => {
                Err(ConnectError::Forbidden(403))
            }
            Ok(Err(e)) => Err(ConnectError::Failed(e.to_string())),
        }
    }

    /// Updates the local subscription map; returns the messages to send.
    fn apply(&mut self, command: Command) -> Vec<Value> {
        match command {
            Command::Subscribe(tokens, mode) => {
                for token in &tokens {
                    self.subscriptions.insert(*token, mode);
                }
                vec![
                    json!({"a": "subscribe", "v": tokens}),
                    json!({"a": "mode", "v": [mode.as_str(), tokens]}),
                ]
            }
            Command::Unsubscribe(tokens) => {
                for token in &tokens {
                    self.subscriptions.remove(token);
                }
                vec![json!({"a": "unsubscribe", "v": tokens})]
            }
            Command::Mode(tokens, mode) => {
                for token in &tokens {
                    self.subscriptions.insert(*token, mode);
                }
                vec![json!({"a": "mode", "v": [mode.as_str(), tokens]})]
            }
        }
    }

    /// `subscribe` for every stored token, then one `mode` per mode group.
    fn resubscribe_messages(&self) -> Vec<Value> {
        if self.subscriptions.is_empty() {
            return Vec::new();
        }
        let tokens: Vec<u32> = self.subscriptions.keys().copied().collect();
        let mut messages = vec![json!({"a": "subscribe", "v": tokens})];
        for mode in [TickMode::Ltp, TickMode::Quote, TickMode::Full] {
            let group: Vec<u32> = self
                .subscriptions
                .iter()
                .filter(|(_, m)| **m == mode)
                .map(|(t, _)| *t)
                .collect();
            if !group.is_empty() {
                messages.push(json!({"a": "mode", "v": [mode.as_str(), group]}));
            }
        }
        messages
    }

    /// Runs one connection; returns how it ended and whether any frame arrived.
    async fn session(&mut self, socket: Socket) -> (SessionEnd, bool) {
        let mut received_frames = false;
        let end = self.session_loop(socket, &mut received_frames).await;
        (end, received_frames)
    }

    async fn session_loop(&mut self, socket: Socket, received_frames: &mut bool) -> SessionEnd {
        let (mut sink, mut stream) = socket.split();
        for message in self.resubscribe_messages() {
            if let Err(e) = sink.send(Message::text(message.to_string())).await {
                return SessionEnd::Lost(format!("resubscribe failed: {e}"));
            }
        }
        let idle = self.hub.config.read_idle_timeout;
        let mut deadline = Instant::now() + idle;
        loop {
            tokio::select! {
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        let _ = sink.send(Message::Close(None)).await;
                        return SessionEnd::Shutdown;
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        let _ = sink.send(Message::Close(None)).await;
                        return SessionEnd::Shutdown;
                    };
                    for message in self.apply(command) {
                        if let Err(e) = sink.send(Message::text(message.to_string())).await {
                            return SessionEnd::Lost(format!("send failed: {e}"));
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    TickerMetrics::bump(&self.hub.metrics.watchdog_timeouts);
                    return SessionEnd::Lost(format!("no frame for {idle:?} (read-idle watchdog)"));
                }
                frame = stream.next() => {
                    deadline = Instant::now() + idle;
                    if matches!(frame, Some(Ok(_))) {
                        *received_frames = true;
                    }
                    match frame {
                        None => return SessionEnd::Lost("connection closed".into()),
                        Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                        Some(Ok(Message::Binary(bytes))) => self.on_binary(&bytes),
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
                        Some(Ok(Message::Close(frame))) => {
                            return SessionEnd::Lost(format!("server closed the connection: {frame:?}"));
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    fn on_binary(&self, bytes: &[u8]) {
        TickerMetrics::bump(&self.hub.metrics.binary_frames);
        match decode_message(bytes) {
            Ok(packets) => {
                self.hub
                    .metrics
                    .ticks
                    .fetch_add(packets.len() as u64, Ordering::Relaxed);
                for packet in packets {
                    self.hub.buffer.push(packet);
                }
            }
            Err(e) => {
                TickerMetrics::bump(&self.hub.metrics.decode_errors);
                tracing::warn!(error = %e, len = bytes.len(), "undecodable KiteTicker frame dropped");
            }
        }
    }

    fn on_text(&self, text: &str) {
        let parsed: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "KiteTicker text message is not JSON");
                return;
            }
        };
        let data = parsed.get("data").cloned().unwrap_or(Value::Null);
        match parsed.get("type").and_then(Value::as_str) {
            // Kite may push an order's postback on every connection of the api_key, so with
            // several shards one update can arrive more than once; each copy is forwarded (the
            // consumer applies order states idempotently), and none is lost while one shard
            // reconnects.
            Some("order") => match serde_json::from_value::<Order>(data.clone()) {
                Ok(order) => {
                    TickerMetrics::bump(&self.hub.metrics.order_updates);
                    if self
                        .updates
                        .try_send(OrderUpdate { order, raw: data })
                        .is_err()
                    {
                        TickerMetrics::bump(&self.hub.metrics.order_updates_dropped);
                        tracing::error!("order update dropped: consumer is not keeping up; reconcile with the order book");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "KiteTicker order update not understood"),
            },
            // A broker message Kite sends on every connection reaches the consumer once per
            // shard, like an order update; an `error` is usually about one connection's request.
            Some(kind @ ("error" | "message")) => {
                let text = data
                    .as_str()
                    .map_or_else(|| data.to_string(), str::to_string);
                let error = kind == "error";
                if error {
                    tracing::error!(message = %text, "KiteTicker error message");
                } else {
                    tracing::info!(message = %text, "KiteTicker broker message");
                }
                if self.notices.try_send(BrokerNotice { error, text }).is_err() {
                    tracing::warn!("a broker notice was dropped: its consumer is not keeping up");
                }
            }
            other => tracing::debug!(kind = ?other, "KiteTicker text message ignored"),
        }
    }
}

enum ConnectError {
    Forbidden(u16),
    Failed(String),
}
