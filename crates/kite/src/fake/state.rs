//! The fake server's shared state: credentials, switches, the order book, and the event
//! broadcast that feeds every websocket.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Utc;
use chrono_tz::Asia::Kolkata;
use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::FakeKiteConfig;
use crate::ticker::{TickMode, TickPacket};

/// How the fake exchange fills new orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillBehaviour {
    /// Fill completely at once: LIMIT orders at their price, MARKET orders at `market_price`.
    Complete {
        /// Fill price of MARKET orders.
        market_price: Decimal,
    },
    /// Leave orders `OPEN` (fill later with `FakeKite::complete_order`).
    Open,
}

/// An order as the fake server holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeOrder {
    /// Kite order id.
    pub order_id: String,
    /// The variety from the path.
    pub variety: String,
    /// The form fields exactly as received.
    pub form: BTreeMap<String, String>,
    /// Every state snapshot (`GET /orders/{id}`), oldest first.
    pub history: Vec<Value>,
    /// Fills (`GET /orders/{id}/trades`).
    pub trades: Vec<Value>,
}

impl FakeOrder {
    /// The latest state.
    pub fn latest(&self) -> Option<&Value> {
        self.history.last()
    }

    /// The latest status.
    pub fn status(&self) -> Option<&str> {
        self.latest()?.get("status")?.as_str()
    }
}

/// A one-shot failure to answer the next REST request with.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub status: u16,
    pub error_type: String,
    pub message: String,
}

/// What the websocket tasks react to.
#[derive(Debug, Clone)]
pub(crate) enum WsEvent {
    Ticks(Vec<TickPacket>),
    Order(Value),
    Drop,
}

pub(crate) struct State {
    pub config: FakeKiteConfig,
    pub token_valid: AtomicBool,
    pub silent: AtomicBool,
    pub history_unavailable: AtomicBool,
    pub reject: Mutex<Option<String>>,
    pub injected: Mutex<VecDeque<Injected>>,
    pub fill: Mutex<FillBehaviour>,
    pub orders: Mutex<Vec<FakeOrder>>,
    pub next_order: AtomicU64,
    pub next_trade: AtomicU64,
    pub events: broadcast::Sender<WsEvent>,
    pub subscriptions: Mutex<BTreeMap<u32, TickMode>>,
    pub ws_connections: AtomicU64,
    pub ws_messages: Mutex<Vec<Value>>,
    pub requests: AtomicU64,
}

/// IST wall time as Kite writes it.
pub(crate) fn kite_now() -> String {
    Utc::now()
        .with_timezone(&Kolkata)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A decimal as a JSON number, as Kite sends prices. serde_json (without arbitrary precision)
/// stores numbers as f64; the shortest round-trip text of a price with few digits is the same
/// decimal, so clients that parse the text (as `KiteClient` does) get the exact value back.
pub(crate) fn kite_number(value: Decimal) -> Value {
    serde_json::from_str(&value.normalize().to_string()).unwrap_or(Value::Null)
}

impl State {
    pub fn new(config: FakeKiteConfig) -> State {
        let (events, _) = broadcast::channel(1024);
        State {
            config,
            token_valid: AtomicBool::new(true),
            silent: AtomicBool::new(false),
            history_unavailable: AtomicBool::new(false),
            reject: Mutex::new(None),
            injected: Mutex::new(VecDeque::new()),
            fill: Mutex::new(FillBehaviour::Open),
            orders: Mutex::new(Vec::new()),
            next_order: AtomicU64::new(1),
            next_trade: AtomicU64::new(1),
            events,
            subscriptions: Mutex::new(BTreeMap::new()),
            ws_connections: AtomicU64::new(0),
            ws_messages: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        }
    }

    pub fn token_ok(&self, api_key: &str, access_token: &str) -> bool {
        self.token_valid.load(Ordering::SeqCst)
            && api_key == self.config.api_key
            && access_token == self.config.access_token
    }

    fn order_snapshot(
        order_id: &str,
        variety: &str,
        form: &BTreeMap<String, String>,
        status: &str,
        status_message: Option<&str>,
        (average_price, filled): (Decimal, u32),
        placed_at: &str,
    ) -> Value {
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        let quantity: u32 = field("quantity").parse().unwrap_or(0);
        let price = form
            .get("price")
            .and_then(|p| p.parse::<Decimal>().ok())
            .unwrap_or(Decimal::ZERO);
        let tag = form.get("tag").cloned();
        let open = matches!(
            status,
            "OPEN" | "OPEN PENDING" | "VALIDATION PENDING" | "PUT ORDER REQ RECEIVED"
        );
        let exchange_side = !matches!(
            status,
            "PUT ORDER REQ RECEIVED" | "VALIDATION PENDING" | "OPEN PENDING" | "REJECTED"
        );
        json!({
            "placed_by": "AB1234",
            "order_id": order_id,
            "exchange_order_id": if exchange_side { Some(format!("13{order_id}")) } else { None },
            "parent_order_id": null,
            "status": status,
            "status_message": status_message,
            "status_message_raw": status_message,
            "order_timestamp": placed_at,
            "exchange_update_timestamp": if exchange_side { Some(kite_now()) } else { None },
            "exchange_timestamp": if exchange_side { Some(placed_at.to_string()) } else { None },
            "variety": variety,
            "modified": false,
            "exchange": field("exchange"),
            "tradingsymbol": field("tradingsymbol"),
            "instrument_token": 0,
            "order_type": field("order_type"),
            "transaction_type": field("transaction_type"),
            "validity": form.get("validity").cloned().unwrap_or_else(|| "DAY".into()),
            "validity_ttl": 0,
            "product": field("product"),
            "quantity": quantity,
            "disclosed_quantity": 0,
            "price": kite_number(price),
            "trigger_price": 0,
            "average_price": kite_number(average_price),
            "filled_quantity": filled,
            "pending_quantity": if open { quantity - filled.min(quantity) } else { 0 },
            "cancelled_quantity": 0,
            "market_protection": 0,
            "meta": {},
            "tag": tag,
            "tags": tag.iter().collect::<Vec<_>>(),
            "guid": format!("guid-{order_id}"),
        })
    }

    /// Records a placed order, runs it through its states and returns its id.
    pub fn place(&self, variety: &str, form: BTreeMap<String, String>) -> String {
        let n = self.next_order.fetch_add(1, Ordering::SeqCst);
        let order_id = format!("{}", 250_101_000_000_000u64 + n);
        let placed_at = kite_now();
        let snap = |status: &str, message: Option<&str>, avg: Decimal, filled: u32| {
            Self::order_snapshot(
                &order_id,
                variety,
                &form,
                status,
                message,
                (avg, filled),
                &placed_at,
            )
        };
        let mut history = vec![
            snap("PUT ORDER REQ RECEIVED", None, Decimal::ZERO, 0),
            snap("VALIDATION PENDING", None, Decimal::ZERO, 0),
            snap("OPEN PENDING", None, Decimal::ZERO, 0),
        ];
        let mut updates = Vec::new();
        let mut trades = Vec::new();
        let reject = self.reject.lock().clone();
        if let Some(message) = reject {
            let rejected = snap("REJECTED", Some(&message), Decimal::ZERO, 0);
            updates.push(rejected.clone());
            history.push(rejected);
        } else {
            let open = snap("OPEN", None, Decimal::ZERO, 0);
            updates.push(open.clone());
            history.push(open);
            if let FillBehaviour::Complete { market_price } = *self.fill.lock() {
                let price = form
                    .get("price")
                    .and_then(|p| p.parse::<Decimal>().ok())
                    .filter(|_| form.get("order_type").map(String::as_str) == Some("LIMIT"))
                    .unwrap_or(market_price);
                let quantity: u32 = form
                    .get("quantity")
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(0);
                let complete = snap("COMPLETE", None, price, quantity);
                trades.push(self.trade(&order_id, &form, price, quantity));
                updates.push(complete.clone());
                history.push(complete);
            }
        }
        self.orders.lock().push(FakeOrder {
            order_id: order_id.clone(),
            variety: variety.to_string(),
            form,
            history,
            trades,
        });
        for update in updates {
            let _ = self.events.send(WsEvent::Order(update));
        }
        order_id
    }

    fn trade(
        &self,
        order_id: &str,
        form: &BTreeMap<String, String>,
        price: Decimal,
        quantity: u32,
    ) -> Value {
        let n = self.next_trade.fetch_add(1, Ordering::SeqCst);
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        let now = kite_now();
        json!({
            "trade_id": format!("{}", 10_000_000 + n),
            "order_id": order_id,
            "exchange": field("exchange"),
            "tradingsymbol": field("tradingsymbol"),
            "instrument_token": 0,
            "product": field("product"),
            "average_price": kite_number(price),
            "quantity": quantity,
            "exchange_order_id": format!("13{order_id}"),
            "transaction_type": field("transaction_type"),
            "fill_timestamp": now,
            "order_timestamp": now.get(11..).unwrap_or_default(),
            "exchange_timestamp": now,
        })
    }

    pub fn complete_order(&self, order_id: &str, average_price: Decimal) -> bool {
        let update = {
            let mut orders = self.orders.lock();
            let Some(order) = orders.iter_mut().find(|o| o.order_id == order_id) else {
                return false;
            };
            if order.status() != Some("OPEN") {
                return false;
            }
            let placed_at = order
                .history
                .first()
                .and_then(|h| h.get("order_timestamp"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(kite_now);
            let quantity: u32 = order
                .form
                .get("quantity")
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            let complete = Self::order_snapshot(
                &order.order_id,
                &order.variety,
                &order.form,
                "COMPLETE",
                None,
                (average_price, quantity),
                &placed_at,
            );
            let trade = self.trade(&order.order_id, &order.form, average_price, quantity);
            order.trades.push(trade);
            order.history.push(complete.clone());
            complete
        };
        let _ = self.events.send(WsEvent::Order(update));
        true
    }
}
