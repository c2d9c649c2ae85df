//! The fake KiteTicker websocket: authenticates the upgrade, follows subscribe / unsubscribe /
//! mode messages, and streams binary ticks (pushed script or seeded random walk), heartbeats and
//! JSON order updates.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use alpha_panda_core::{InstrumentToken, Ohlc, Price};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::state::{State, WsEvent};
use super::RandomWalk;
use crate::ticker::{encode_message, heartbeat, PacketKind, TickMode, TickPacket};

type Shared = Arc<State>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new().route("/", get(upgrade)).with_state(state)
}

async fn upgrade(
    AxumState(state): AxumState<Shared>,
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
    ws.on_upgrade(move |socket| session(socket, state))
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

fn handle_control(text: &str, subscriptions: &mut BTreeMap<u32, TickMode>) -> Option<Value> {
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
    match message.get("a")?.as_str()? {
        "subscribe" => {
            for token in tokens(value) {
                subscriptions.entry(token).or_insert(TickMode::Quote);
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
                subscriptions.insert(token, mode);
            }
        }
        _ => return None,
    }
    Some(message)
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

async fn session(mut socket: WebSocket, state: Shared) {
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
                    if let Some(message) = handle_control(text.as_str(), &mut subscriptions) {
                        state.ws_messages.lock().push(message);
                        *state.subscriptions.lock() = subscriptions.clone();
                    }
                    None
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
