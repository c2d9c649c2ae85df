//! `FakeKite`: a local fake of Kite Connect (REST) and KiteTicker (websocket) on 127.0.0.1:0,
//! speaking the same protocol, with switches to inject the failures a real day brings (dropped
//! connections, silence, rejections, 429s, expired tokens) and to observe what clients sent. Its
//! websocket keeps Kite's limits: 3 connections per api_key, 3000 instruments per connection.

mod contract_note;
mod rest;
mod state;
mod ws;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::Price;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::{RateLimits, ZerodhaSettings};
use crate::ticker::{TickMode, TickPacket};

pub use state::{FakeOrder, FillBehaviour};
use state::{Injected, State, WsEvent};

/// A seeded random walk of prices streamed to every subscribed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomWalk {
    /// Seed of the generator (same seed → same prices).
    pub seed: u64,
    /// Time between frames.
    pub interval: Duration,
    /// Starting price of every token.
    pub start_price: Price,
}

/// How the fake server behaves at start.
#[derive(Debug, Clone)]
pub struct FakeKiteConfig {
    /// Accepted api_key.
    pub api_key: String,
    /// The secret used to check session checksums.
    pub api_secret: String,
    /// The request token the "browser login" handed out.
    pub request_token: String,
    /// The access token issued by `POST /session/token`.
    pub access_token: String,
    /// User id in session and profile responses.
    pub user_id: String,
    /// The instruments dump served (gzipped) at `GET /instruments`.
    pub instruments_csv: String,
    /// Interval of the 1-byte heartbeat on idle websockets.
    pub heartbeat_interval: Duration,
    /// Optional random-walk tick source.
    pub random_walk: Option<RandomWalk>,
}

/// A small NSE universe for the default instruments dump.
pub const DEFAULT_INSTRUMENTS_CSV: &str = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE
738561,2885,RELIANCE,RELIANCE INDUSTRIES,0.0,,0.0,0.05,1,EQ,NSE,NSE
779521,3045,SBIN,STATE BANK OF INDIA,0.0,,0.0,0.05,1,EQ,NSE,NSE
256265,1001,NIFTY 50,NIFTY 50,0.0,,0.0,0.0,0,EQ,INDICES,NSE
";

impl Default for FakeKiteConfig {
    fn default() -> Self {
        FakeKiteConfig {
            api_key: "fake_api_key".into(),
            api_secret: "fake_api_secret".into(),
            request_token: "fake_request_token".into(),
            access_token: "fake_access_token".into(),
            user_id: "AB1234".into(),
            instruments_csv: DEFAULT_INSTRUMENTS_CSV.into(),
            heartbeat_interval: Duration::from_secs(1),
            random_walk: None,
        }
    }
}

/// A running fake Kite server. Dropping it stops the server.
pub struct FakeKite {
    addr: SocketAddr,
    state: Arc<State>,
    sessions: Arc<ws::Sessions>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FakeKite {
    /// Binds 127.0.0.1:0 and serves until dropped.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(config: FakeKiteConfig) -> std::io::Result<FakeKite> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(config));
        let sessions = Arc::new(ws::Sessions::default());
        let app = rest::router(Arc::clone(&state))
            .merge(ws::router(Arc::clone(&state), Arc::clone(&sessions)));
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = shutdown_rx.changed().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "fake Kite server failed");
            }
        });
        Ok(FakeKite {
            addr,
            state,
            sessions,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// REST base URL (`http://127.0.0.1:port`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Websocket URL (`ws://127.0.0.1:port/`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Settings pointing a client at this server, with its credentials, fast retries and no
    /// client-side rate limits.
    pub fn settings(&self) -> ZerodhaSettings {
        ZerodhaSettings {
            api_key: self.state.config.api_key.clone(),
            api_secret: self.state.config.api_secret.clone(),
            api_url: self.api_url(),
            login_url: format!("{}/connect/login", self.api_url()),
            ws_url: self.ws_url(),
            request_timeout: Duration::from_secs(10),
            retry_base_delay: Duration::from_millis(20),
            rate_limits: RateLimits {
                orders_per_second: 0,
                orders_per_minute: 0,
                orders_per_day: 0,
                quotes_per_second: 0,
                other_per_second: 0,
            },
            ..ZerodhaSettings::default()
        }
    }

    /// The server's configuration.
    pub fn config(&self) -> &FakeKiteConfig {
        &self.state.config
    }

    // ---- switches ----

    /// Closes every open websocket abruptly (no close frame).
    pub fn drop_connections(&self) {
        let _ = self.state.events.send(WsEvent::Drop);
    }

    /// Stops (or resumes) every websocket frame, heartbeats included, keeping sockets open.
    pub fn set_silent(&self, silent: bool) {
        self.state.silent.store(silent, Ordering::SeqCst);
    }

    /// Makes `GET /orders/{id}` answer 503 `NetworkException` (or serve again with `false`), so a
    /// client can only learn of order changes through the websocket order updates (it still reads
    /// an order's trades, which is how its fills get their trade ids).
    pub fn set_order_history_unavailable(&self, unavailable: bool) {
        self.state
            .history_unavailable
            .store(unavailable, Ordering::SeqCst);
    }

    /// Makes the exchange reject every new order with this message (`None` accepts again).
    /// Placement still returns an order id, as Kite does; the order ends `REJECTED`.
    pub fn reject_orders(&self, message: Option<String>) {
        *self.state.reject.lock() = message;
    }

    /// The next REST request gets HTTP 429 (`NetworkException`, "Too many requests").
    pub fn rate_limit_next(&self) {
        self.fail_next(429, "NetworkException", "Too many requests");
    }

    /// The next REST request fails with this status, `error_type` and message.
    pub fn fail_next(&self, status: u16, error_type: &str, message: &str) {
        self.state.injected.lock().push_back(Injected {
            status,
            error_type: error_type.into(),
            message: message.into(),
        });
    }

    /// The next order placement fails with this status, `error_type` and message — after Kite
    /// took the order when `taken` (an answer lost on the way: the order exists), before when not.
    pub fn fail_next_placement(&self, taken: bool, status: u16, error_type: &str, message: &str) {
        *self.state.placement_fault.lock() = Some((
            taken,
            Injected {
                status,
                error_type: error_type.into(),
                message: message.into(),
            },
        ));
    }

    /// Invalidates the access token (REST answers 403 TokenException, websockets are dropped
    /// and refused) until a new session is generated.
    pub fn expire_token(&self) {
        self.state.token_valid.store(false, Ordering::SeqCst);
        self.drop_connections();
    }

    /// How new orders are filled.
    pub fn set_fill(&self, fill: FillBehaviour) {
        *self.state.fill.lock() = fill;
    }

    /// Fills an `OPEN` order completely at `average_price` (pushes an order update).
    /// Returns false when the order does not exist or is not open.
    pub fn complete_order(&self, order_id: &str, average_price: Decimal) -> bool {
        self.state.complete_order(order_id, average_price)
    }

    /// Fills `quantity` more units of an open order at `price` (one trade, an order update;
    /// `COMPLETE` when every unit is filled). Returns false when the order does not exist, is
    /// not open, or has fewer units pending.
    pub fn fill(&self, order_id: &str, quantity: u32, price: Decimal) -> bool {
        self.state.fill(order_id, quantity, price)
    }

    /// Sets the exchange's freeze quantity of a trading symbol: a larger order is refused unless
    /// it asks for autoslice, which cuts it into slices of this size (at most ten).
    pub fn set_freeze_quantity(&self, tradingsymbol: &str, quantity: u32) {
        self.state
            .freeze_quantities
            .lock()
            .insert(tradingsymbol.to_string(), quantity);
    }

    /// Makes `POST /charges/orders` answer 503 (`true`) or work again (`false`).
    pub fn set_contract_note_unavailable(&self, unavailable: bool) {
        self.state
            .contract_note_unavailable
            .store(unavailable, Ordering::SeqCst);
    }

    /// Cancels an open order as the user would in Kite (an order update follows).
    ///
    /// # Errors
    /// Kite's message when the order is not open.
    pub fn cancel(&self, order_id: &str) -> Result<(), String> {
        self.state.cancel(order_id)
    }

    /// Zerodha's auto square-off of an intraday position (15:20 for MIS): an untagged order of
    /// the opposite side for the whole net `product` position in `tradingsymbol`, filled at
    /// `price`. Returns its order id, or `None` when there is no position.
    pub fn square_off(&self, tradingsymbol: &str, product: &str, price: Decimal) -> Option<String> {
        let position = self
            .state
            .positions()
            .into_iter()
            .find(|p| p["tradingsymbol"] == tradingsymbol && p["product"] == product)?;
        let quantity = position["quantity"].as_i64().unwrap_or(0);
        let exchange = position["exchange"].as_str().unwrap_or("NSE").to_string();
        let units = u32::try_from(quantity.unsigned_abs())
            .ok()
            .filter(|u| *u > 0)?;
        Some(self.state.place_untagged(
            &exchange,
            tradingsymbol,
            product,
            quantity < 0,
            units,
            price,
        ))
    }

    /// An order placed by hand in Kite (untagged), filled at once at `price`.
    pub fn place_manual(
        &self,
        tradingsymbol: &str,
        buy: bool,
        quantity: u32,
        price: Decimal,
    ) -> String {
        self.state
            .place_untagged("NSE", tradingsymbol, "MIS", buy, quantity, price)
    }

    /// Sends a text frame of `kind` (`error` or `message`) with `data` to every websocket, as
    /// Kite does to tell of a problem or a broker message.
    pub fn send_text(&self, kind: &str, data: &str) {
        let _ = self.state.events.send(WsEvent::Text(
            serde_json::json!({"type": kind, "data": data}),
        ));
    }

    /// Streams these ticks to every connection subscribed to their tokens, each re-shaped to
    /// the connection's mode for the token.
    pub fn push_ticks(&self, ticks: Vec<TickPacket>) {
        let _ = self.state.events.send(WsEvent::Ticks(ticks));
    }

    // ---- observation ----

    /// Every order placed, in placement order.
    pub fn orders(&self) -> Vec<FakeOrder> {
        self.state.orders.lock().clone()
    }

    /// The last order placed with `tag`.
    pub fn order_by_tag(&self, tag: &str) -> Option<FakeOrder> {
        self.state
            .orders
            .lock()
            .iter()
            .rev()
            .find(|o| o.form.get("tag").map(String::as_str) == Some(tag))
            .cloned()
    }

    /// Token → mode of the most recent websocket connection (kept after it closes). With several
    /// connections open, it is the map of the one that last opened or changed its subscriptions;
    /// [`FakeKite::connection_subscriptions`] has each.
    pub fn subscriptions(&self) -> BTreeMap<u32, TickMode> {
        self.state.subscriptions.lock().clone()
    }

    /// Token → mode of each websocket connection open now, oldest connection first.
    pub fn connection_subscriptions(&self) -> Vec<BTreeMap<u32, TickMode>> {
        self.sessions.subscriptions()
    }

    /// Websocket connections accepted so far.
    pub fn ws_connections(&self) -> u64 {
        self.state.ws_connections.load(Ordering::SeqCst)
    }

    /// Websocket connections open now (at most 3 per api_key, as Kite allows).
    pub fn open_ws_connections(&self) -> usize {
        self.sessions.open()
    }

    /// Websocket upgrades refused with 429 because the api_key already had 3 connections open.
    pub fn refused_ws_connections(&self) -> u64 {
        self.sessions.refused()
    }

    /// Every control message clients sent over websockets, in order.
    pub fn ws_messages(&self) -> Vec<Value> {
        self.state.ws_messages.lock().clone()
    }

    /// REST requests served so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeKite {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.state.events.send(WsEvent::Drop);
        self.task.abort();
    }
}
