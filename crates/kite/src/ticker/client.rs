//! `KiteTicker`: the KiteTicker websocket client. It connects with the api_key and access token,
//! keeps a local token → mode map and re-sends it after every reconnect, decodes binary frames
//! into a [`ConflatingBuffer`], forwards JSON order updates to a channel, reconnects when no frame
//! arrives within the read-idle timeout, and backs off exponentially (with jitter, capped) up to
//! a retry budget.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// conventions: 2 s first delay, 30 s connect timeout, 4096-token buffer.
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
            buffer_capacity: 4096,
            order_update_capacity: 4096,
        }
    }
}

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
}

impl TickerError {
    /// How the runtime should treat it.
    pub fn class(&self) -> ErrorClass {
        match self {
            TickerError::Forbidden { .. } => ErrorClass::Business,
            TickerError::RetriesExhausted { .. }
            | TickerError::InvalidUrl { .. }
            | TickerError::Stopped => ErrorClass::Infrastructure,
        }
    }
}

/// Counters of the ticker's life, for metrics.
#[derive(Debug, Default)]
pub struct TickerMetrics {
    /// Successful connections (the first one included).
    pub connects: AtomicU64,
    /// Successful connections after the first.
    pub reconnects: AtomicU64,
    /// Connections closed by the read-idle watchdog.
    pub watchdog_timeouts: AtomicU64,
    /// Binary frames received (heartbeats included).
    pub binary_frames: AtomicU64,
    /// Tick packets decoded.
    pub ticks: AtomicU64,
    /// Binary frames that failed to decode (dropped).
    pub decode_errors: AtomicU64,
    /// Order updates received.
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

/// A running KiteTicker connection. Dropping it stops the connection task.
pub struct KiteTicker {
    commands: mpsc::Sender<Command>,
    buffer: Arc<ConflatingBuffer>,
    order_updates: Mutex<Option<mpsc::Receiver<OrderUpdate>>>,
    notices: Mutex<Option<mpsc::Receiver<BrokerNotice>>>,
    metrics: Arc<TickerMetrics>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), TickerError>>,
}

impl KiteTicker {
    /// Starts the connection task (it connects in the background and keeps reconnecting).
    ///
    /// # Errors
    /// [`TickerError::InvalidUrl`] when the URL cannot carry the credentials.
    pub fn start(config: TickerConfig) -> Result<KiteTicker, TickerError> {
        let url = url::Url::parse(&config.ws_url).map_err(|e| TickerError::InvalidUrl {
            url: config.ws_url.clone(),
            reason: e.to_string(),
        })?;
        let (commands, command_rx) = mpsc::channel(64);
        let buffer = Arc::new(ConflatingBuffer::new(config.buffer_capacity));
        let (updates_tx, updates_rx) = mpsc::channel(config.order_update_capacity.max(1));
        let (notices_tx, notices_rx) = mpsc::channel(NOTICE_CAPACITY);
        let metrics = Arc::new(TickerMetrics::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let worker = Worker {
            url,
            config,
            commands: command_rx,
            buffer: Arc::clone(&buffer),
            updates: updates_tx,
            notices: notices_tx,
            metrics: Arc::clone(&metrics),
            shutdown: shutdown_rx,
            subscriptions: BTreeMap::new(),
        };
        let task = tokio::spawn(worker.run());
        Ok(KiteTicker {
            commands,
            buffer,
            order_updates: Mutex::new(Some(updates_rx)),
            notices: Mutex::new(Some(notices_rx)),
            metrics,
            shutdown,
            task,
        })
    }

    /// Subscribes tokens and sets their mode (kept across reconnects).
    ///
    /// # Errors
    /// [`TickerError::Stopped`] when the connection task has ended.
    pub async fn subscribe(
        &self,
        tokens: &[InstrumentToken],
        mode: TickMode,
    ) -> Result<(), TickerError> {
        self.send(Command::Subscribe(raw_tokens(tokens), mode))
            .await
    }

    /// Unsubscribes tokens.
    ///
    /// # Errors
    /// [`TickerError::Stopped`] when the connection task has ended.
    pub async fn unsubscribe(&self, tokens: &[InstrumentToken]) -> Result<(), TickerError> {
        self.send(Command::Unsubscribe(raw_tokens(tokens))).await
    }

    /// Changes the mode of tokens (subscribing them if needed).
    ///
    /// # Errors
    /// [`TickerError::Stopped`] when the connection task has ended.
    pub async fn set_mode(
        &self,
        tokens: &[InstrumentToken],
        mode: TickMode,
    ) -> Result<(), TickerError> {
        self.send(Command::Mode(raw_tokens(tokens), mode)).await
    }

    async fn send(&self, command: Command) -> Result<(), TickerError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| TickerError::Stopped)
    }

    /// The next tick (latest per token); `None` once the ticker has stopped and the buffer is
    /// drained — then [`KiteTicker::shutdown`] tells why.
    pub async fn next_tick(&self) -> Option<TickPacket> {
        self.buffer.pop().await
    }

    /// The tick buffer (for its `conflated` and `dropped` counters).
    pub fn buffer(&self) -> &Arc<ConflatingBuffer> {
        &self.buffer
    }

    /// Ticks replaced by newer ones of the same token before the consumer took them.
    pub fn conflated_ticks(&self) -> u64 {
        self.buffer.conflated()
    }

    /// The order-update channel; `Some` only on the first call.
    pub fn take_order_updates(&self) -> Option<mpsc::Receiver<OrderUpdate>> {
        self.order_updates.lock().take()
    }

    /// Takes the receiver of the broker's `error` and `message` frames (once).
    pub fn take_notices(&self) -> Option<mpsc::Receiver<BrokerNotice>> {
        self.notices.lock().take()
    }

    /// Connection counters.
    pub fn metrics(&self) -> &Arc<TickerMetrics> {
        &self.metrics
    }

    /// Whether the connection task has ended (given up, refused, or shut down).
    pub fn is_stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the connection and waits for the task.
    ///
    /// # Errors
    /// The error that had already stopped the ticker, if any.
    pub async fn shutdown(self) -> Result<(), TickerError> {
        let _ = self.shutdown.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(_) => Err(TickerError::Stopped),
        }
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

struct Worker {
    url: url::Url,
    config: TickerConfig,
    commands: mpsc::Receiver<Command>,
    buffer: Arc<ConflatingBuffer>,
    updates: mpsc::Sender<OrderUpdate>,
    notices: mpsc::Sender<BrokerNotice>,
    metrics: Arc<TickerMetrics>,
    shutdown: watch::Receiver<bool>,
    subscriptions: BTreeMap<u32, TickMode>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Worker {
    async fn run(mut self) -> Result<(), TickerError> {
        let result = self.connect_loop().await;
        self.buffer.close();
        if let Err(err) = &result {
            tracing::error!(error = %err, "KiteTicker stopped");
        }
        result
    }

    async fn connect_loop(&mut self) -> Result<(), TickerError> {
        let backoff = Backoff {
            base: self.config.reconnect_base_delay,
            max: self.config.max_reconnect_delay,
        };
        let mut failures = 0u32;
        let mut ever_connected = false;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            let last_error = match self.connect().await {
                Ok(socket) => {
                    TickerMetrics::bump(&self.metrics.connects);
                    if ever_connected {
                        TickerMetrics::bump(&self.metrics.reconnects);
                    }
                    ever_connected = true;
                    tracing::info!(tokens = self.subscriptions.len(), "KiteTicker connected");
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
                    let Some(shared) = self.config.shared_token.clone() else {
                        return Err(TickerError::Forbidden { status });
                    };
                    tracing::warn!(
                        "KiteTicker refused (403): the session expired; reconnecting once \
                         `alpha-panda kite login` gives a new one"
                    );
                    // Tries again at once when the token changes, and after `session_retry`
                    // anyway (a session revoked and granted again may keep its token).
                    let give_up_waiting = Instant::now() + self.config.session_retry;
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
            if failures > self.config.max_reconnect_attempts {
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
        self.config
            .shared_token
            .as_ref()
            .and_then(|shared| shared.read().clone())
            .unwrap_or_else(|| self.config.access_token.clone())
    }

    async fn connect(&self) -> Result<Socket, ConnectError> {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("api_key", &self.config.api_key)
            .append_pair("access_token", &self.access_token());
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Failed(e.to_string()))?;
        request
            .headers_mut()
            .insert("X-Kite-Version", HeaderValue::from_static("3"));
        let attempt = tokio::time::timeout(
            self.config.connect_timeout,
            tokio_tungstenite::connect_async(request),
        )
        .await;
        match attempt {
            Err(_) => Err(ConnectError::Failed(format!(
                "connection timed out after {:?}",
                self.config.connect_timeout
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
        let idle = self.config.read_idle_timeout;
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
                    TickerMetrics::bump(&self.metrics.watchdog_timeouts);
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
        TickerMetrics::bump(&self.metrics.binary_frames);
        match decode_message(bytes) {
            Ok(packets) => {
                self.metrics
                    .ticks
                    .fetch_add(packets.len() as u64, Ordering::Relaxed);
                for packet in packets {
                    self.buffer.push(packet);
                }
            }
            Err(e) => {
                TickerMetrics::bump(&self.metrics.decode_errors);
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
            Some("order") => match serde_json::from_value::<Order>(data.clone()) {
                Ok(order) => {
                    TickerMetrics::bump(&self.metrics.order_updates);
                    if self
                        .updates
                        .try_send(OrderUpdate { order, raw: data })
                        .is_err()
                    {
                        TickerMetrics::bump(&self.metrics.order_updates_dropped);
                        tracing::error!("order update dropped: consumer is not keeping up; reconcile with the order book");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "KiteTicker order update not understood"),
            },
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
