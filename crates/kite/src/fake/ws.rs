//! The fake KiteTicker websocket: authenticates the upgrade, follows subscribe / unsubscribe /
//! mode messages, and streams binary ticks (pushed script or seeded random walk), heartbeats and
//! JSON order updates.
//!
//! It enforces Kite's limits (reference §1.1: "up to 3000 instruments per connection and 3
//! connections per api_key"), so a client that breaks them fails its tests instead of production:
//! - A 4th concurrent connection of one api_key is refused at the upgrade with HTTP 429 and
//!   Kite's error body (`NetworkException`, "Too many connections"): a refused handshake is what a
//!   client sees as a failed attempt, and it is never counted as a connection. The slot is freed
//!   before the socket closes, so a client that sees its connection end can reconnect at once.
//! - A `subscribe` or `mode` that would take one connection beyond 3000 tokens subscribes tokens
//!   up to the cap, in the order sent, and answers with the text frame
//!   `{"type":"error","data":"Maximum 3000 instruments can be subscribed per connection"}`; the
//!   extra tokens are not subscribed. (What Kite itself does with the overflow is not documented;
//!   refusing loudly is the strict reading.)

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alpha_panda_core::{InstrumentToken, Ohlc, Price};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::state::{State, WsEvent};
use super::RandomWalk;
use crate::ticker::{encode_message, heartbeat, PacketKind, TickMode, TickPacket};

/// Concurrent websocket connections Kite accepts per api_key (reference §1.1). Kept apart from
/// the client's constant on purpose: the fake states Kite's rule, the client must keep to it.
pub(crate) const MAX_CONNECTIONS_PER_API_KEY: usize = 3;

/// Instruments one websocket connection may subscribe (reference §1.1).
pub(crate) const MAX_TOKENS_PER_CONNECTION: usize = 3000;

/// The text of the error frame answering a subscription beyond [`MAX_TOKENS_PER_CONNECTION`].
pub(crate) const TOO_MANY_TOKENS: &str =
    "Maximum 3000 instruments can be subscribed per connection";

/// The open websocket connections: how many per api_key, and what each has subscribed.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, usize>>,
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, BTreeMap<u32, TickMode>>>,
    refused: AtomicU64,
}

impl Sessions {
    /// Takes a connection slot of `api_key`; `None` when it already has the most Kite allows.
    fn acquire(self: &Arc<Self>, api_key: &str) -> Option<Slot> {
        let mut open = self.open.lock();
        let count = open.entry(api_key.to_string()).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_API_KEY {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        *count += 1;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.live.lock().insert(id, BTreeMap::new());
        Some(Slot {
            sessions: Arc::clone(self),
            api_key: api_key.to_string(),
            id,
        })
    }

    /// Token → mode of each open connection, oldest connection first.
    pub(crate) fn subscriptions(&self) -> Vec<BTreeMap<u32, TickMode>> {
        self.live.lock().values().cloned().collect()
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.live.lock().len()
    }

    /// Upgrades refused because the api_key had every connection it may have.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

/// One open connection's place in [`Sessions`]; freed when dropped (the session ended, or the
/// upgrade never completed).
struct Slot {
    sessions: Arc<Sessions>,
    api_key: String,
    id: u64,
}

impl Slot {
    fn record(&self, subscriptions: &BTreeMap<u32, TickMode>) {
        self.sessions
            .live
            .lock()
            .insert(self.id, subscriptions.clone());
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.sessions.live.lock().remove(&self.id);
        let mut open = self.sessions.open.lock();
        if let Some(count) = open.get_mut(&self.api_key) {
            *count = count.saturating_sub(1);
        }
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<State>,
    sessions: Arc<Sessions>,
}

pub(crate) fn router(state: Arc<State>, sessions: Arc<Sessions>) -> Router {
    Router::new()
        .route("/", get(upgrade))
        .with_state(Shared { state, sessions })
}

async fn upgrade(
    AxumState(Shared { state, sessions }): AxumState<Shared>,
    Query(params): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let key = params
        .get("api_key")
        .map(String::as_str)
        .unwrap_or_default();
    let token = params
        .get("access_token")
        .map(String::as_str)
        .unwrap_or_default();
    if !state.token_ok(key, token) {
        return (StatusCode::FORBIDDEN, "invalid api_key or access_token").into_response();
    }
    let Some(slot) = sessions.acquire(key) else {
        let body = serde_json::json!({
            "status": "error",
            "message": "Too many connections",
            "error_type": "NetworkException",
        });
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    };
    ws.on_upgrade(move |socket| session(socket, state, slot))
}

/// Prices of a seeded random walk, in paise per token.
struct Walk {
    config: RandomWalk,
    rng: ChaCha8Rng,
    paise: BTreeMap<u32, (i64, Ohlc, u32)>,
}

impl Walk {
    fn step(&mut self, token: u32) -> Option<TickPacket> {
        let start = (self.config.start_price.0 * Decimal::ONE_HUNDRED)
            .trunc()
            .to_i64()
            .unwrap_or(0);
        let entry = self.paise.entry(token).or_insert_with(|| {
            let p = Price(Decimal::new(start, 2));
            (
                start,
                Ohlc {
                    open: p,
                    high: p,
                    low: p,
                    close: p,
                },
                0,
            )
        });
        let step: i64 = self.rng.gen_range(-3..=3) * 5;
        entry.0 = (entry.0 + step).max(5);
        entry.2 = entry.2.saturating_add(self.rng.gen_range(1..=50));
        let price = Price(Decimal::new(entry.0, 2));
        entry.1.high = entry.1.high.max(price);
        entry.1.low = entry.1.low.min(price);
        let mut packet = TickPacket::ltp(InstrumentToken(token), price);
        packet.kind = PacketKind::Quote;
        packet.ohlc = Some(entry.1);
        packet.volume_traded = Some(entry.2);
        packet.last_traded_quantity = Some(1);
        packet.average_traded_price = Some(price);
        packet.total_buy_quantity = Some(0);
        packet.total_sell_quantity = Some(0);
        Some(packet)
    }
}

/// What a control message did.
struct Control {
    /// The message as received (recorded for tests).
    message: Value,
    /// Tokens not subscribed because the connection already had [`MAX_TOKENS_PER_CONNECTION`].
    refused: usize,
}

/// Subscribes `token` in `mode` (or updates its mode) unless that takes the connection beyond
/// [`MAX_TOKENS_PER_CONNECTION`]; `false` when refused.
fn admit(subscriptions: &mut BTreeMap<u32, TickMode>, token: u32, mode: Option<TickMode>) -> bool {
    if let Some(current) = subscriptions.get_mut(&token) {
        if let Some(mode) = mode {
            *current = mode;
        }
        return true;
    }
    if subscriptions.len() >= MAX_TOKENS_PER_CONNECTION {
        return false;
    }
    subscriptions.insert(token, mode.unwrap_or(TickMode::Quote));
    true
}

fn handle_control(text: &str, subscriptions: &mut BTreeMap<u32, TickMode>) -> Option<Control> {
    let message: Value = serde_json::from_str(text).ok()?;
    let tokens = |v: &Value| -> Vec<u32> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_u64())
                    .filter_map(|t| u32::try_from(t).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let value = message.get("v")?;
    let mut refused = 0;
    match message.get("a")?.as_str()? {
        "subscribe" => {
            for token in tokens(value) {
                if !admit(subscriptions, token, None) {
                    refused += 1;
                }
            }
        }
        "unsubscribe" => {
            for token in tokens(value) {
                subscriptions.remove(&token);
            }
        }
        "mode" => {
            let mode = TickMode::parse(value.get(0)?.as_str()?)?;
            for token in tokens(value.get(1)?) {
                if !admit(subscriptions, token, Some(mode)) {
                    refused += 1;
                }
            }
        }
        _ => return None,
    }
    Some(Control { message, refused })
}

/// The ticks of `packets` this connection subscribed to, each in its mode.
fn frame_for(packets: &[TickPacket], subscriptions: &BTreeMap<u32, TickMode>) -> Option<Vec<u8>> {
    let selected: Vec<TickPacket> = packets
        .iter()
        .filter_map(|p| {
            subscriptions
                .get(&p.instrument_token.0)
                .map(|mode| p.project(*mode))
        })
        .collect();
    if selected.is_empty() {
        return None;
    }
    match encode_message(&selected) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "fake Kite: cannot encode ticks");
            None
        }
    }
}

async fn session(mut socket: WebSocket, state: Arc<State>, slot: Slot) {
    serve(&mut socket, &state, &slot).await;
    // The slot is freed before the socket closes: a client that sees the close and reconnects at
    // once must not be refused for a connection that is already over.
    drop(slot);
    drop(socket);
}

async fn serve(socket: &mut WebSocket, state: &State, slot: &Slot) {
    state.ws_connections.fetch_add(1, Ordering::SeqCst);
    let mut events = state.events.subscribe();
    let mut subscriptions: BTreeMap<u32, TickMode> = BTreeMap::new();
    state.subscriptions.lock().clear();
    let mut heartbeat_timer = tokio::time::interval(state.config.heartbeat_interval);
    let mut walk = state.config.random_walk.clone().map(|config| Walk {
        rng: ChaCha8Rng::seed_from_u64(config.seed),
        config,
        paise: BTreeMap::new(),
    });
    let walk_period = walk
        .as_ref()
        .map_or(std::time::Duration::from_secs(3600), |w| w.config.interval);
    let mut walk_timer = tokio::time::interval(walk_period);
    loop {
        let silent = || state.silent.load(Ordering::SeqCst);
        let outgoing: Option<Message> = tokio::select! {
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => {
                    match handle_control(text.as_str(), &mut subscriptions) {
                        Some(Control { message, refused }) => {
                            state.ws_messages.lock().push(message);
                            *state.subscriptions.lock() = subscriptions.clone();
                            slot.record(&subscriptions);
                            (refused > 0).then(|| {
                                tracing::debug!(refused, "fake Kite: tokens beyond the connection's cap");
                                Message::Text(
                                    serde_json::json!({"type": "error", "data": TOO_MANY_TOKENS})
                                        .to_string()
                                        .into(),
                                )
                            })
                        }
                        None => None,
                    }
                }
                Some(Ok(_)) => None,
            },
            event = events.recv() => match event {
                Ok(WsEvent::Drop) | Err(RecvError::Closed) => return,
                Ok(WsEvent::Ticks(packets)) => frame_for(&packets, &subscriptions).map(|b| Message::Binary(b.into())),
                Ok(WsEvent::Order(order)) => Some(Message::Text(
                    serde_json::json!({"type": "order", "data": order}).to_string().into(),
                )),
                Ok(WsEvent::Text(message)) => Some(Message::Text(message.to_string().into())),
                Err(RecvError::Lagged(_)) => None,
            },
            _ = heartbeat_timer.tick() => Some(Message::Binary(heartbeat().into())),
            _ = walk_timer.tick(), if walk.is_some() => {
                let walk = walk.as_mut();
                let packets: Vec<TickPacket> = match walk {
                    Some(walk) => subscriptions.keys().filter_map(|t| walk.step(*t)).collect(),
                    None => Vec::new(),
                };
                frame_for(&packets, &subscriptions).map(|b| Message::Binary(b.into()))
            }
        };
        if let Some(message) = outgoing {
            if silent() {
                continue;
            }
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }
}
