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

    /// The ordered quantity, as the form now says.
    pub fn quantity(&self) -> u32 {
        self.form
            .get("quantity")
            .and_then(|q| q.parse().ok())
            .unwrap_or(0)
    }

    /// Units filled so far and their value (sum of trade price × quantity).
    pub fn filled(&self) -> (u32, Decimal) {
        self.trades.iter().fold((0, Decimal::ZERO), |(q, v), t| {
            let quantity = t
                .get("quantity")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            let price = t
                .get("average_price")
                .map(|p| p.to_string())
                .and_then(|p| p.parse::<Decimal>().ok())
                .unwrap_or(Decimal::ZERO);
            (q + quantity, v + price * Decimal::from(quantity))
        })
    }

    /// The average price of what is filled (0 before the first trade).
    pub fn average_price(&self) -> Decimal {
        match self.filled() {
            (0, _) => Decimal::ZERO,
            (filled, value) => (value / Decimal::from(filled)).round_dp(4).normalize(),
        }
    }

    /// When it was placed, as Kite writes it.
    fn placed_at(&self) -> String {
        self.history
            .first()
            .and_then(|h| h.get("order_timestamp"))
            .and_then(Value::as_str)
            .map_or_else(kite_now, str::to_string)
    }
}

/// Units and value bought and sold of one instrument and product (a position's makings).
#[derive(Debug, Default)]
struct Traded {
    bought: i64,
    bought_value: Decimal,
    sold: i64,
    sold_value: Decimal,
    token: u32,
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
    /// A text frame of another type (`error`, `message`).
    Text(Value),
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
    /// The calendar second of the last order request and how many came in it (Kite's strict
    /// 10 order requests per second, reference §2.3).
    pub order_second: Mutex<(i64, u32)>,
    /// What the next placement gets instead of its answer: whether the order is taken anyway,
    /// and the error (status, type, message).
    pub placement_fault: Mutex<Option<(bool, Injected)>>,
    /// Instrument tokens of the instruments dump, by (exchange, tradingsymbol).
    pub tokens: BTreeMap<(String, String), u32>,
    /// The exchange's freeze quantity by trading symbol: an order above it is refused unless
    /// it asks for autoslice.
    pub freeze_quantities: Mutex<BTreeMap<String, u32>>,
    /// Whether `POST /charges/orders` answers 503 (Kite's OMS down).
    pub contract_note_unavailable: AtomicBool,
}

/// The form key under which the fake remembers the parent of an autoslice child (never sent by a
/// client: Kite's form has no such field).
pub(crate) const AUTOSLICE_PARENT: &str = "__autoslice_parent";

/// An order's `tags`: its own tag, and for a slice of an autoslice order Kite's `autoslice` and
/// `autoslice:{parent}` (as Kite's staff describe them on the forum).
fn order_tags(tag: Option<&str>, parent: Option<&str>) -> Vec<String> {
    let mut tags: Vec<String> = tag.iter().map(|t| t.to_string()).collect();
    if let Some(parent) = parent {
        tags.push("autoslice".into());
        tags.push(format!("autoslice:{parent}"));
    }
    tags
}

/// Modifications Kite allows one order (reference §2.5, from Kite's staff on the forum; the
/// refusal's text is ours, the reference quotes none).
pub(crate) const MAX_MODIFICATIONS: usize = 25;

/// Order requests (placements, modifications, cancellations) Kite takes in one calendar second.
pub(crate) const ORDERS_PER_SECOND: u32 = 10;

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
        let tokens = crate::parse_instruments_csv(config.instruments_csv.as_bytes())
            .unwrap_or_default()
            .into_iter()
            .map(|i| ((i.exchange, i.tradingsymbol), i.instrument_token.0))
            .collect();
        State {
            tokens,
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
            order_second: Mutex::new((0, 0)),
            placement_fault: Mutex::new(None),
            freeze_quantities: Mutex::new(BTreeMap::new()),
            contract_note_unavailable: AtomicBool::new(false),
        }
    }

    /// Counts an order request in the current calendar second; `false` when it is over Kite's
    /// limit (the request is refused with 429).
    pub fn take_order_slot(&self) -> bool {
        let second = Utc::now().timestamp();
        let mut slot = self.order_second.lock();
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
        slot.1 <= ORDERS_PER_SECOND
    }

    /// The form of an order as it stands (after modifications).
    pub fn order_form(&self, order_id: &str) -> Option<BTreeMap<String, String>> {
        self.orders
            .lock()
            .iter()
            .find(|o| o.order_id == order_id)
            .map(|o| o.form.clone())
    }

    pub fn token_ok(&self, api_key: &str, access_token: &str) -> bool {
        self.token_valid.load(Ordering::SeqCst)
            && api_key == self.config.api_key
            && access_token == self.config.access_token
    }

    #[allow(clippy::too_many_arguments)]
    fn order_snapshot(
        &self,
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
            "instrument_token": self.token_of(form),
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
            "market_protection": form
                .get("market_protection")
                .and_then(|p| p.parse::<Decimal>().ok())
                .map_or(Value::from(0), kite_number),
            "meta": {},
            "tag": tag,
            "tags": order_tags(tag.as_deref(), form.get(AUTOSLICE_PARENT).map(String::as_str)),
            "guid": format!("guid-{order_id}"),
        })
    }

    /// The instrument token of the order's instrument in the instruments dump (0 if absent).
    fn token_of(&self, form: &BTreeMap<String, String>) -> u32 {
        let key = (
            form.get("exchange").cloned().unwrap_or_default(),
            form.get("tradingsymbol").cloned().unwrap_or_default(),
        );
        self.tokens.get(&key).copied().unwrap_or(0)
    }

    /// Marks the first slice of an autoslice order as the parent of its slices (its `tags`).
    pub fn mark_autoslice_parent(&self, order_id: &str) {
        let mut orders = self.orders.lock();
        if let Some(order) = orders.iter_mut().find(|o| o.order_id == order_id) {
            order
                .form
                .insert(AUTOSLICE_PARENT.into(), order_id.to_string());
            for snapshot in &mut order.history {
                if let Some(tags) = snapshot.get_mut("tags").and_then(Value::as_array_mut) {
                    tags.push(Value::from("autoslice"));
                    tags.push(Value::from(format!("autoslice:{order_id}")));
                }
            }
        }
    }

    /// Records a placed order, runs it through its states and returns its id.
    pub fn place(&self, variety: &str, form: BTreeMap<String, String>) -> String {
        let n = self.next_order.fetch_add(1, Ordering::SeqCst);
        let order_id = format!("{}", 250_101_000_000_000u64 + n);
        let placed_at = kite_now();
        let snap = |status: &str, message: Option<&str>, avg: Decimal, filled: u32| {
            self.order_snapshot(
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
            "instrument_token": self.token_of(form),
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

    /// Fills `quantity` more units of an open order at `price`: one trade, and a new state
    /// (`COMPLETE` once every unit is filled) pushed as an order update. `false` when the order
    /// does not exist, is not open, or has fewer units pending.
    pub fn fill(&self, order_id: &str, quantity: u32, price: Decimal) -> bool {
        let update = {
            let mut orders = self.orders.lock();
            let Some(order) = orders.iter_mut().find(|o| o.order_id == order_id) else {
                return false;
            };
            if order.status() != Some("OPEN") || quantity == 0 {
                return false;
            }
            let ordered = order.quantity();
            let (filled, value) = order.filled();
            if filled + quantity > ordered {
                return false;
            }
            let filled = filled + quantity;
            let average = ((value + price * Decimal::from(quantity)) / Decimal::from(filled))
                .round_dp(4)
                .normalize();
            let status = if filled == ordered {
                "COMPLETE"
            } else {
                "OPEN"
            };
            let snapshot = self.order_snapshot(
                &order.order_id,
                &order.variety,
                &order.form,
                status,
                None,
                (average, filled),
                &order.placed_at(),
            );
            let trade = self.trade(&order.order_id, &order.form, price, quantity);
            order.trades.push(trade);
            order.history.push(snapshot.clone());
            snapshot
        };
        let _ = self.events.send(WsEvent::Order(update));
        true
    }

    /// Cancels an open order: what was filled stays filled, the rest is cancelled.
    ///
    /// # Errors
    /// Kite's message when the order does not exist or is no longer open.
    pub fn cancel(&self, order_id: &str) -> Result<(), String> {
        let update = {
            let mut orders = self.orders.lock();
            let Some(order) = orders.iter_mut().find(|o| o.order_id == order_id) else {
                return Err("Couldn't find that `order_id`.".into());
            };
            if order.status() != Some("OPEN") {
                return Err(format!(
                    "Order cannot be cancelled as it is being processed. Status: {}",
                    order.status().unwrap_or("unknown")
                ));
            }
            let (filled, average) = (order.filled().0, order.average_price());
            let mut snapshot = self.order_snapshot(
                &order.order_id,
                &order.variety,
                &order.form,
                "CANCELLED",
                Some("Cancelled by the user"),
                (average, filled),
                &order.placed_at(),
            );
            snapshot["cancelled_quantity"] = Value::from(order.quantity() - filled);
            order.history.push(snapshot.clone());
            snapshot
        };
        let _ = self.events.send(WsEvent::Order(update));
        Ok(())
    }

    /// Replaces an open order's fields with `form` (already checked): a `MODIFIED` state, then
    /// `OPEN` again, pushed as an order update.
    ///
    /// # Errors
    /// Kite's message when the order is not open, or the new quantity is below what is filled.
    pub fn modify(&self, order_id: &str, form: BTreeMap<String, String>) -> Result<(), String> {
        let update = {
            let mut orders = self.orders.lock();
            let Some(order) = orders.iter_mut().find(|o| o.order_id == order_id) else {
                return Err("Couldn't find that `order_id`.".into());
            };
            if order.status() != Some("OPEN") {
                return Err(format!(
                    "Order cannot be modified as it is being processed. Status: {}",
                    order.status().unwrap_or("unknown")
                ));
            }
            let (filled, average) = (order.filled().0, order.average_price());
            let quantity: u32 = form
                .get("quantity")
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            if quantity <= filled {
                return Err("Quantity must be more than the filled quantity.".into());
            }
            let modifications = order
                .history
                .iter()
                .filter(|h| h.get("status").and_then(Value::as_str) == Some("MODIFIED"))
                .count();
            if modifications >= MAX_MODIFICATIONS {
                return Err(format!(
                    "Maximum allowed order modifications exceeded ({MAX_MODIFICATIONS})."
                ));
            }
            order.form = form;
            let placed_at = order.placed_at();
            let mut modified = self.order_snapshot(
                &order.order_id,
                &order.variety,
                &order.form,
                "MODIFIED",
                None,
                (average, filled),
                &placed_at,
            );
            modified["modified"] = Value::from(true);
            let mut open = self.order_snapshot(
                &order.order_id,
                &order.variety,
                &order.form,
                "OPEN",
                None,
                (average, filled),
                &placed_at,
            );
            open["modified"] = Value::from(true);
            order.history.push(modified);
            order.history.push(open.clone());
            open
        };
        let _ = self.events.send(WsEvent::Order(update));
        Ok(())
    }

    /// The account's positions from every trade of the day (Kite's `net` and `day` lists are the
    /// same for a fake that carries nothing overnight).
    pub fn positions(&self) -> Vec<Value> {
        let mut by_instrument: BTreeMap<(String, String, String), Traded> = BTreeMap::new();
        for order in self.orders.lock().iter() {
            let field = |name: &str| order.form.get(name).cloned().unwrap_or_default();
            let key = (field("exchange"), field("tradingsymbol"), field("product"));
            let token = self.token_of(&order.form);
            let buy = field("transaction_type") == "BUY";
            for trade in &order.trades {
                let quantity = trade.get("quantity").and_then(Value::as_i64).unwrap_or(0);
                let price = trade
                    .get("average_price")
                    .map(|p| p.to_string())
                    .and_then(|p| p.parse::<Decimal>().ok())
                    .unwrap_or(Decimal::ZERO);
                let traded = by_instrument.entry(key.clone()).or_insert(Traded {
                    token,
                    ..Traded::default()
                });
                if buy {
                    traded.bought += quantity;
                    traded.bought_value += price * Decimal::from(quantity);
                } else {
                    traded.sold += quantity;
                    traded.sold_value += price * Decimal::from(quantity);
                }
            }
        }
        by_instrument
            .into_iter()
            .map(|((exchange, tradingsymbol, product), traded)| {
                let Traded {
                    bought: bq,
                    bought_value: bv,
                    sold: sq,
                    sold_value: sv,
                    token,
                } = traded;
                let quantity = bq - sq;
                let average = |value: Decimal, units: i64| {
                    if units == 0 {
                        Decimal::ZERO
                    } else {
                        (value / Decimal::from(units)).round_dp(4)
                    }
                };
                let average_price = match quantity.signum() {
                    1 => average(bv, bq),
                    -1 => average(sv, sq),
                    _ => Decimal::ZERO,
                };
                json!({
                    "tradingsymbol": tradingsymbol,
                    "exchange": exchange,
                    "instrument_token": token,
                    "product": product,
                    "quantity": quantity,
                    "overnight_quantity": 0,
                    "multiplier": 1,
                    "average_price": kite_number(average_price),
                    "buy_quantity": bq,
                    "buy_price": kite_number(average(bv, bq)),
                    "buy_value": kite_number(bv),
                    "sell_quantity": sq,
                    "sell_price": kite_number(average(sv, sq)),
                    "sell_value": kite_number(sv),
                    "day_buy_quantity": bq,
                    "day_sell_quantity": sq,
                })
            })
            .collect()
    }

    /// Places an order the way Zerodha or a person in Kite would (no tag), filled at once at
    /// `price`; returns its id.
    pub fn place_untagged(
        &self,
        exchange: &str,
        tradingsymbol: &str,
        product: &str,
        buy: bool,
        quantity: u32,
        price: Decimal,
    ) -> String {
        let form: BTreeMap<String, String> = [
            ("exchange", exchange.to_string()),
            ("tradingsymbol", tradingsymbol.to_string()),
            (
                "transaction_type",
                if buy { "BUY" } else { "SELL" }.to_string(),
            ),
            ("quantity", quantity.to_string()),
            ("product", product.to_string()),
            ("order_type", "MARKET".to_string()),
            ("market_protection", "-1".to_string()),
            ("validity", "DAY".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // Neither the fill switch nor the rejection switch applies to it: it is not an API order.
        let previous = std::mem::replace(&mut *self.fill.lock(), FillBehaviour::Open);
        let rejecting = self.reject.lock().take();
        let order_id = self.place("regular", form);
        *self.fill.lock() = previous;
        *self.reject.lock() = rejecting;
        self.fill(&order_id, quantity, price);
        order_id
    }

    /// Fills every unit still pending of an open order at `price`.
    pub fn complete_order(&self, order_id: &str, price: Decimal) -> bool {
        let pending = {
            let orders = self.orders.lock();
            let Some(order) = orders.iter().find(|o| o.order_id == order_id) else {
                return false;
            };
            order.quantity().saturating_sub(order.filled().0)
        };
        self.fill(order_id, pending, price)
    }
}
