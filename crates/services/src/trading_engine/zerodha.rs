//! The Zerodha live trader: places validated signals on Kite Connect and follows each order to a
//! terminal status through websocket order updates, with polling of its history as the fallback.
//!
//! **Placement.** The instrument is resolved in the [`InstrumentRegistry`] built from the store's
//! instruments master; a token missing there becomes `order_failed` (never a made-up symbol). The
//! order is MARKET (with the configured market protection, which Kite requires since April 2026)
//! or LIMIT, with the configured product (default MIS) and a Kite `tag` derived from the signal
//! event id ([`order_tag`]: 20 ASCII letters and digits, Kite's limit). Every order emits
//! `order_submitted` first, then `order_ack` with Kite's order id, or `order_failed`. A validated
//! signal older than `max_signal_age` is not placed: read again after a long outage or on another
//! day, it can never become an order.
//!
//! **Crash safety.** Before placing, the trader asks Kite for an order with the same tag and adopts
//! it instead of placing a second one: a crash between placement and the checkpoint can never place
//! the order twice (the signal is read again and finds its order). A placement whose outcome is
//! unknown (a timeout, a 5xx) is never retried blindly and never dead-lettered: the order stays
//! pending in the durable state and every timer looks for its tag in the order book, adopting it
//! when it appears and failing it, unplaced, when it has not appeared within `placement_grace`.
//!
//! **Fills, one per Kite trade.** When Kite reports more units filled, the trader reads the order's
//! trades (`/orders/{id}/trades`) and emits one `order_filled` per trade it has not reported, at the
//! trade's price and time, with an id derived from the signal and Kite's `trade_id`
//! ([`fill_event_id`]). The trades reported are durable state, so a restart between two partial
//! fills reports neither twice (and a repeat carries the same id, which downstream deduplication
//! drops) and loses none. A terminal status ends the order only once all its trades are reported.
//!
//! **Protected orders that rest.** A MARKET order that cannot fill inside its market protection
//! rests at the band's edge. One still open with units unfilled after `protected_order_timeout` is
//! cancelled; what did not fill is reported in `order_failed` (and an alert), so the strategy's next
//! signal sizes a fresh order from the position it really has.
//!
//! **Slices.** An order above the instrument's freeze quantity (`freeze_quantities`) is placed
//! with Kite's autoslice: Kite cuts it into at most [`MAX_AUTOSLICES`] orders sharing the tag. The
//! trader follows each slice as it follows an order placed whole; the order's fills are every
//! slice's trades, and it ends, with one `order_failed` for what did not fill, when every slice
//! has. One that would need more slices is refused before Kite.
//!
//! **Fees.** Each fill is charged as part of its Kite order (a slice is an order of its own): its
//! fees are what the Kite order's charges come to with this fill, less what its earlier fills
//! were charged, so an order's fills add up to its charges, the ₹20 brokerage cap per order
//! included. The charges are Kite's own from its virtual contract note
//! ([`FeesSource::ContractNote`]); when Kite does not answer, Zerodha's dated [`ChargeSchedule`]
//! by exchange and segment stands in ([`FeesSource::Estimate`]), or the flat [`FeeModel`] for an
//! instrument the schedule has no rates for. A CNC sold on the day it was bought is charged as
//! intraday, its buy re-priced with it (an estimate: the contract note does so only at the day's
//! end).
//!
//! **Broker messages.** The ticker's `error` and `message` frames are raised as alerts.
//!
//! **Sessions.** A Kite answer that the session expired (403 `TokenException`) halts the namespace:
//! an alert is raised, new signals are answered `order_failed` with reason `session_expired`, open
//! orders stay followed, and every few seconds the trader looks for a new session in the store.
//! Once `alpha-panda kite login` has stored one that works, it trades again, without a restart.
//!
//! **Errors.** A Kite error of class business (rejected input, margin) becomes `order_failed`; when
//! Kite cannot be reached before anything was sent, the signal is returned to the runtime as an
//! infrastructure failure and waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    derive_event_id, Alert, AlertKind, AlertSeverity, ErrorClass, EventId, ExecutionMode,
    FeeBreakdown, FeesSource, InstrumentToken, Money, OrderFilled, OrderId, OrderType, Price,
    Quantity, Side, StrategyId, Timestamp, ValidatedSignal,
};
use alpha_panda_kite::rest::OrderCounts;
use alpha_panda_kite::{
    BrokerNotice, ContractNoteOrder, InstrumentRegistry, KiteClient, KiteError, KiteOrderId,
    KiteOrderStatus, MarketProtection, Order, OrderParams, OrderUpdate, Trade, Variety,
    MAX_AUTOSLICES,
};
use alpha_panda_store::Store;
use alpha_panda_stream::HandlerError;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::charges::{ChargeSchedule, Exchange, Fill, OrderFills, OrderTerms, Segment};
use super::order_event::{OrderEvent, OrderRef, TraderOutput};
use super::FeeModel;

/// How often a halted trader looks for a new Kite session in the store.
const SESSION_RECHECK: Duration = Duration::from_secs(5);
/// How often the websocket order updates are looked at: they are applied as they arrive, within
/// this long, while the rest of the timer's work waits for `poll_interval`.
pub const UPDATE_DRAIN: Duration = Duration::from_millis(200);

/// How often the trader reloads its instruments from the store, where the daily refresh from Kite
/// writes them: a running trader knows the day's new contracts within this long.
const INSTRUMENTS_RELOAD: Duration = Duration::from_secs(15 * 60);

/// Live trading configuration (from the `[zerodha]` settings).
#[derive(Debug, Clone)]
pub struct ZerodhaConfig {
    /// Kite product of every order (`MIS` intraday, `CNC` delivery, `NRML` F&O carry).
    pub product: String,
    /// How often Kite is asked about open orders (their history, as the fallback of the
    /// websocket order updates, which are applied as they arrive), pending placements, resting
    /// orders and the session.
    pub poll_interval: Duration,
    /// The market protection of MARKET orders.
    pub market_protection: MarketProtection,
    /// A protected MARKET order still open with units unfilled after this long is cancelled.
    pub protected_order_timeout: Duration,
    /// A validated signal older than this is not placed.
    pub max_signal_age: Duration,
    /// How long a placement whose outcome is unknown is looked for in the order book.
    pub placement_grace: Duration,
    /// How often the namespace's positions are reconciled with Kite's (and once at start-up).
    pub reconcile_interval: Duration,
    /// Zerodha's charges.
    pub charges: ChargeSchedule,
    /// The estimate for an instrument the schedule has no rates for.
    pub fallback_fees: FeeModel,
    /// The exchange's freeze quantities, by trading symbol or underlying name (`NIFTY`): an
    /// order above one is placed with Kite's autoslice, in at most ten slices.
    pub freeze_quantities: BTreeMap<String, u32>,
    /// Whether each fill's charges are asked of Kite's virtual contract note (the schedule is
    /// the estimate when Kite does not answer).
    pub contract_notes: bool,
}

impl Default for ZerodhaConfig {
    fn default() -> Self {
        Self {
            product: "MIS".into(),
            poll_interval: Duration::from_secs(2),
            market_protection: MarketProtection::Automatic,
            protected_order_timeout: Duration::from_secs(30),
            max_signal_age: Duration::from_secs(60),
            placement_grace: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(60),
            charges: ChargeSchedule::zerodha(),
            fallback_fees: FeeModel::default(),
            freeze_quantities: BTreeMap::new(),
            contract_notes: true,
        }
    }
}

/// A trade of an order already reported as a fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedTrade {
    /// Kite's trade id.
    pub trade_id: String,
    /// Units.
    pub quantity: u32,
    /// Price.
    pub price: Price,
    /// The Kite order (the slice, for an autoslice order) it belongs to; empty in checkpoints
    /// written before slices, where it is the order's one Kite order.
    #[serde(default)]
    pub kite_order_id: KiteOrderId,
    /// The fees reported with it.
    #[serde(default)]
    pub fees: FeeBreakdown,
}

/// A slice of an order (or the order placed whole) that reached a terminal status, or that
/// Kite refused to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedSlice {
    /// Kite's order id; empty for a slice Kite refused to place.
    pub kite_order_id: KiteOrderId,
    /// Kite's status (`COMPLETE`, `CANCELLED`, `REJECTED`), or `REFUSED` for a slice not placed.
    pub status: String,
    /// Kite's message, if any.
    pub message: Option<String>,
}

impl FinishedSlice {
    fn failed(&self) -> bool {
        self.status == "REFUSED" || KiteOrderStatus::parse(&self.status).is_failure()
    }
}

/// What one strategy's CNC buys of one instrument on one day left to sell that day: a CNC sold
/// on its buy day is charged as intraday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CncDayBuys {
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// The trading day (IST).
    pub date: NaiveDate,
    /// Units bought that day not yet sold that day.
    pub units: u32,
    /// Their value at the buy prices (the average price is `value / units`).
    pub value: Decimal,
}

/// An order placed on Kite (or being placed) and not yet terminal. Serialized in the trading
/// engine's checkpoint; fields added later default when an older checkpoint is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    /// Alpha Panda's order id (`zerodha-{signal event id}`).
    pub order_id: OrderId,
    /// Kite's order id; `None` while a placement whose outcome is unknown is looked for.
    pub kite_order_id: Option<KiteOrderId>,
    /// The validated signal event that caused the order (root of every derived fill id).
    pub signal_event_id: EventId,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Kite trading symbol.
    pub tradingsymbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Units ordered.
    pub quantity: Quantity,
    /// Units already reported in `order_filled` events.
    pub filled_quantity: u32,
    /// Notional already reported (sum of fill price × fill quantity).
    pub filled_value: Decimal,
    /// Exchange (`NSE`, `BSE`, `NFO`, …).
    #[serde(default)]
    pub exchange: String,
    /// Instrument type (`EQ`, `FUT`, `CE`, `PE`).
    #[serde(default)]
    pub instrument_type: String,
    /// Kite product.
    #[serde(default)]
    pub product: String,
    /// Whether it is a MARKET order under market protection.
    #[serde(default)]
    pub protected: bool,
    /// When it was submitted.
    #[serde(default)]
    pub submitted_at: Option<Timestamp>,
    /// The trades already reported as fills.
    #[serde(default)]
    pub trades: Vec<ReportedTrade>,
    /// Whether the trader asked Kite to cancel it (a protected order resting at its band).
    #[serde(default)]
    pub cancel_requested: bool,
    /// The Kite orders of its slices when it was placed with autoslice (the first is
    /// `kite_order_id`); empty for an order placed whole.
    #[serde(default)]
    pub slices: Vec<KiteOrderId>,
    /// Its Kite orders that finished (and slices Kite refused); the order ends when all did.
    #[serde(default)]
    pub finished: Vec<FinishedSlice>,
}

impl OpenOrder {
    /// What each of its events names.
    fn order_ref(&self) -> OrderRef<'_> {
        OrderRef {
            order_id: &self.order_id,
            strategy_id: &self.strategy_id,
            instrument_token: self.instrument_token,
            side: self.side,
            execution_mode: ExecutionMode::Zerodha,
        }
    }

    /// Its Kite orders: the slices, or the one order placed whole.
    pub fn kite_orders(&self) -> Vec<&str> {
        if self.slices.is_empty() {
            self.kite_order_id.iter().map(KiteOrderId::as_str).collect()
        } else {
            self.slices.iter().map(KiteOrderId::as_str).collect()
        }
    }

    /// Whether `kite_order_id` is one of its Kite orders.
    fn owns(&self, kite_order_id: &str) -> bool {
        self.kite_orders().contains(&kite_order_id)
    }

    /// The reported trades of one of its Kite orders.
    fn trades_of<'a>(&'a self, kite_order_id: &'a str) -> impl Iterator<Item = &'a ReportedTrade> {
        let whole = self.slices.is_empty();
        self.trades.iter().filter(move |t| {
            t.kite_order_id.as_str() == kite_order_id
                || (whole && t.kite_order_id.as_str().is_empty())
        })
    }

    fn is_finished(&self, kite_order_id: &str) -> bool {
        self.finished
            .iter()
            .any(|f| f.kite_order_id.as_str() == kite_order_id)
    }

    /// The exchange and segment its charges depend on.
    fn charge_terms(&self, trade_date: NaiveDate) -> Option<OrderTerms> {
        let exchange = match self.exchange.as_str() {
            "NSE" | "NFO" => Exchange::Nse,
            "BSE" | "BFO" => Exchange::Bse,
            _ => return None,
        };
        let segment = match self.instrument_type.as_str() {
            "FUT" => Segment::Futures,
            "CE" | "PE" => Segment::Options,
            _ if self.product == "CNC" => Segment::EquityDelivery,
            _ => Segment::EquityIntraday,
        };
        Some(OrderTerms {
            exchange,
            segment,
            side: self.side,
            trade_date,
        })
    }
}

/// A position of one strategy in one instrument, as the fills the trader reported make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPosition {
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Kite trading symbol.
    pub tradingsymbol: String,
    /// Exchange.
    pub exchange: String,
    /// Instrument type.
    pub instrument_type: String,
    /// Kite product.
    pub product: String,
    /// Signed units: positive long, negative short.
    pub quantity: i64,
}

/// The live trader's durable state: the orders it follows, what the namespace holds by its fills,
/// the Kite trades of orders it did not place that it has applied, and the instruments whose
/// position disagrees with Kite's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ZerodhaState {
    /// Open orders.
    pub open: Vec<OpenOrder>,
    /// Positions by strategy and instrument.
    #[serde(default)]
    pub held: Vec<HeldPosition>,
    /// Trade ids of orders placed outside the trader (a square-off, a manual order) already
    /// applied, with their trading day.
    #[serde(default)]
    pub external_trades: Vec<(String, NaiveDate)>,
    /// Instruments whose position disagrees with Kite's: new entries are refused there.
    #[serde(default)]
    pub mismatched: Vec<InstrumentToken>,
    /// The orders counted against the per-minute and per-day caps.
    #[serde(default)]
    pub order_counts: OrderCounts,
    /// CNC units bought today and not sold today, by strategy and instrument.
    #[serde(default)]
    pub cnc_day_buys: Vec<CncDayBuys>,
    /// The scrips and days whose depository charge a delivery sell has paid.
    #[serde(default)]
    pub dp_charged: Vec<(InstrumentToken, NaiveDate)>,
}

/// A checkpoint of the trading engine for `zerodha`, as written by this version or an earlier one
/// (which saved the open orders alone).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SavedZerodhaState {
    /// This version's.
    Current(ZerodhaState),
    /// Open orders only.
    OpenOrders(Vec<OpenOrder>),
}

impl From<SavedZerodhaState> for ZerodhaState {
    fn from(saved: SavedZerodhaState) -> Self {
        match saved {
            SavedZerodhaState::Current(state) => state,
            SavedZerodhaState::OpenOrders(open) => ZerodhaState {
                open,
                ..ZerodhaState::default()
            },
        }
    }
}

/// Whether `tag` is one the trader gives its orders ([`order_tag`]).
fn is_our_tag(tag: &str) -> bool {
    tag.len() == 20
        && tag.starts_with("AP")
        && tag[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Where a halted trader finds a new session: the store `alpha-panda kite login` writes to.
#[derive(Debug, Clone)]
struct SessionStore {
    store: Store,
    api_key: String,
}

/// The live trader of the `zerodha` namespace.
pub struct ZerodhaTrader {
    client: Arc<KiteClient>,
    registry: Arc<InstrumentRegistry>,
    // Boxed: the schedule and the fallback rates would make every trader enum as large.
    config: Box<ZerodhaConfig>,
    open: Vec<OpenOrder>,
    held: Vec<HeldPosition>,
    external_trades: Vec<(String, NaiveDate)>,
    mismatched: Vec<InstrumentToken>,
    cnc_day_buys: Vec<CncDayBuys>,
    dp_charged: Vec<(InstrumentToken, NaiveDate)>,
    last_reconciled: Option<Timestamp>,
    updates: Option<mpsc::Receiver<OrderUpdate>>,
    notices: Option<mpsc::Receiver<BrokerNotice>>,
    sessions: Option<SessionStore>,
    /// Since when the Kite session is known to have expired, while it has.
    session_expired_since: Option<Timestamp>,
    last_session_check: Option<Timestamp>,
    last_instruments_reload: Option<Timestamp>,
    last_poll: Option<Timestamp>,
    /// Alerts raised and not yet taken by the engine.
    alerts: Vec<Alert>,
}

impl std::fmt::Debug for ZerodhaTrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZerodhaTrader")
            .field("client", &self.client)
            .field("instruments", &self.registry.len())
            .field("config", &self.config)
            .field("open", &self.open.len())
            .field("session_expired_since", &self.session_expired_since)
            .finish_non_exhaustive()
    }
}

/// The Zerodha order id of a signal event.
///
/// # Errors
/// [`HandlerError`] (poison) if the id cannot be formed (not expected for UUID event ids).
pub fn zerodha_order_id(signal_event_id: EventId) -> Result<OrderId, HandlerError> {
    OrderId::new(format!("zerodha-{signal_event_id}")).map_err(|e| {
        HandlerError::poison(format!(
            "cannot derive an order id from event {signal_event_id}: {}",
            e.reason
        ))
    })
}

/// The Kite `tag` of the order caused by `signal_event_id`: `AP` and the first 18 hex digits of
/// SHA-256 of the event id — 20 ASCII letters and digits, Kite's limit, and the same after a restart.
pub fn order_tag(signal_event_id: EventId) -> String {
    let digest = Sha256::digest(signal_event_id.0.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("AP{}", &hex[..18])
}

/// The id of the fill of Kite trade `trade_id` of the order caused by `signal_event_id`.
pub fn fill_event_id(signal_event_id: EventId, trade_id: &str) -> EventId {
    derive_event_id(signal_event_id, &format!("zerodha_trade:{trade_id}"), 0)
}

/// The id of the fill of Kite trade `trade_id` (of an order the trader did not place) for
/// `strategy_id`: a pure function of both, the same at every reconciliation.
pub fn external_fill_event_id(trade_id: &str, strategy_id: &StrategyId) -> EventId {
    derive_event_id(
        EventId(uuid::Uuid::nil()),
        &format!("zerodha_external_trade:{trade_id}:{strategy_id}"),
        0,
    )
}

/// An order id for a holder's external fill when Kite's order id makes none.
fn holder_order_id(holder: &HeldPosition) -> OrderId {
    OrderId::new(format!("zerodha-external-{}", holder.strategy_id))
        .unwrap_or_else(|_| OrderId::new("zerodha-external").expect("a valid literal id"))
}

/// The id of the `order_failed` that ends the order caused by `signal_event_id` after it was placed.
pub fn failure_event_id(signal_event_id: EventId) -> EventId {
    derive_event_id(signal_event_id, "zerodha_failed", 0)
}

/// Kite timestamps are India Standard Time (UTC+05:30, no daylight saving).
fn kite_time(naive: Option<chrono::NaiveDateTime>) -> Option<Timestamp> {
    naive.map(|t| Timestamp::from_datetime((t - chrono::Duration::minutes(330)).and_utc()))
}

/// The trading day (IST) of `at`.
fn ist_date(at: Timestamp) -> NaiveDate {
    (at.as_datetime() + chrono::Duration::minutes(330)).date_naive()
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    let micros = now.unix_micros().saturating_sub(since.unix_micros());
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// What a failed Kite call means for the order.
enum Outcome {
    /// The session is gone: halt.
    SessionExpired(String),
    /// Kite answered no: the order's answer.
    Refused(String),
    /// Kite could not be reached, or did not say: unknown.
    Unknown(String),
}

fn outcome(error: &KiteError) -> Outcome {
    if error.is_auth() {
        return Outcome::SessionExpired(error.to_string());
    }
    match error.class() {
        ErrorClass::Business => Outcome::Refused(error.to_string()),
        _ => Outcome::Unknown(error.to_string()),
    }
}

impl ZerodhaTrader {
    /// A trader placing orders through `client` for the instruments in `registry`.
    pub fn new(
        client: Arc<KiteClient>,
        registry: Arc<InstrumentRegistry>,
        config: ZerodhaConfig,
    ) -> Self {
        Self {
            client,
            registry,
            config: Box::new(config),
            open: Vec::new(),
            held: Vec::new(),
            external_trades: Vec::new(),
            mismatched: Vec::new(),
            cnc_day_buys: Vec::new(),
            dp_charged: Vec::new(),
            last_reconciled: None,
            updates: None,
            notices: None,
            sessions: None,
            session_expired_since: None,
            last_session_check: None,
            last_instruments_reload: None,
            last_poll: None,
            alerts: Vec::new(),
        }
    }

    /// Feeds Kite's websocket order updates (`KiteTicker::take_order_updates`) to the trader.
    pub fn with_order_updates(mut self, updates: mpsc::Receiver<OrderUpdate>) -> Self {
        self.updates = Some(updates);
        self
    }

    /// Feeds the ticker's `error` and `message` frames (`KiteTicker::take_notices`): each is raised
    /// as an alert.
    pub fn with_notices(mut self, notices: mpsc::Receiver<BrokerNotice>) -> Self {
        self.notices = Some(notices);
        self
    }

    /// Where to look for a new session of `api_key` after the current one expired, and for the
    /// refreshed instruments master.
    pub fn with_session_store(mut self, store: Store, api_key: impl Into<String>) -> Self {
        self.sessions = Some(SessionStore {
            store,
            api_key: api_key.into(),
        });
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ZerodhaConfig {
        &self.config
    }

    /// Orders placed (or being placed) and not yet terminal.
    pub fn open_orders(&self) -> &[OpenOrder] {
        &self.open
    }

    /// Whether the namespace is halted because the Kite session expired.
    pub fn session_expired(&self) -> bool {
        self.session_expired_since.is_some()
    }

    /// Restores open orders saved by an earlier run.
    pub fn restore_open(&mut self, open: Vec<OpenOrder>) {
        self.open = open;
    }

    /// Restores the state saved by an earlier run.
    pub fn restore(&mut self, state: ZerodhaState) {
        self.open = state.open;
        self.held = state.held;
        self.external_trades = state.external_trades;
        self.mismatched = state.mismatched;
        self.cnc_day_buys = state.cnc_day_buys;
        self.dp_charged = state.dp_charged;
        self.client
            .rate_limiter()
            .restore_order_counts(&state.order_counts);
    }

    /// The state to save.
    pub fn state(&self) -> ZerodhaState {
        ZerodhaState {
            open: self.open.clone(),
            held: self.held.clone(),
            external_trades: self.external_trades.clone(),
            mismatched: self.mismatched.clone(),
            order_counts: self.client.rate_limiter().order_counts(),
            cnc_day_buys: self.cnc_day_buys.clone(),
            dp_charged: self.dp_charged.clone(),
        }
    }

    /// What the namespace holds by the fills reported.
    pub fn held_positions(&self) -> &[HeldPosition] {
        &self.held
    }

    /// Instruments whose position disagrees with Kite's.
    pub fn mismatched(&self) -> &[InstrumentToken] {
        &self.mismatched
    }

    /// Moves the held position of `strategy_id` in the instrument by `units`.
    fn hold(&mut self, template: HeldPosition, units: i64) {
        match self.held.iter_mut().find(|h| {
            h.strategy_id == template.strategy_id && h.instrument_token == template.instrument_token
        }) {
            Some(held) => held.quantity += units,
            None => self.held.push(HeldPosition {
                quantity: units,
                ..template
            }),
        }
        self.held.retain(|h| h.quantity != 0);
    }

    fn held_quantity(&self, strategy_id: &StrategyId, token: InstrumentToken) -> i64 {
        self.held
            .iter()
            .find(|h| &h.strategy_id == strategy_id && h.instrument_token == token)
            .map_or(0, |h| h.quantity)
    }

    /// The alerts raised since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.alerts)
    }

    fn alert(
        &mut self,
        kind: AlertKind,
        severity: AlertSeverity,
        message: String,
        since: Timestamp,
    ) {
        self.alerts.push(Alert {
            kind,
            severity,
            service: super::service::SERVICE.to_string(),
            message,
            since,
        });
    }

    /// The session expired (`reason` is Kite's answer): halts new orders and raises an alert,
    /// once.
    fn halt(&mut self, reason: &str, now: Timestamp) {
        if self.session_expired_since.is_some() {
            return;
        }
        self.session_expired_since = Some(now);
        self.last_session_check = Some(now);
        error!(%reason, "the Kite session expired; the zerodha namespace places no orders until `alpha-panda kite login`");
        self.alert(
            AlertKind::SessionExpired,
            AlertSeverity::Critical,
            format!(
                "the Kite session expired ({reason}); zerodha places no new orders and follows its \
                 open ones; run `alpha-panda kite login` and it trades again without a restart"
            ),
            now,
        );
    }

    /// Every [`INSTRUMENTS_RELOAD`]: takes the instruments master as the store holds it now (the
    /// daily refresh from Kite writes there), so new contracts reach a running trader.
    async fn reload_instruments(&mut self, now: Timestamp) {
        let Some(sessions) = &self.sessions else {
            return;
        };
        let Some(last) = self.last_instruments_reload else {
            // The registry the trader was built with is the store's as of now.
            self.last_instruments_reload = Some(now);
            return;
        };
        if elapsed(last, now) < INSTRUMENTS_RELOAD {
            return;
        }
        self.last_instruments_reload = Some(now);
        match sessions.store.instruments().all().await {
            Ok(rows) if !rows.is_empty() => {
                let registry = InstrumentRegistry::from_rows(rows);
                if registry.len() != self.registry.len() {
                    info!(
                        before = self.registry.len(),
                        after = registry.len(),
                        "the trader took up the refreshed instruments master"
                    );
                }
                self.registry = Arc::new(registry);
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "could not reload the instruments master; keeping the one in use")
            }
        }
    }

    /// A Kite read that failed in the background (a poll, a reconciliation): halts the namespace
    /// when the session expired, and otherwise logs that `what` is tried again at the next tick.
    fn read_failed(&mut self, error: &KiteError, what: &str, now: Timestamp) {
        match outcome(error) {
            Outcome::SessionExpired(reason) => self.halt(&reason, now),
            _ => warn!(%error, "could not {what} from Kite; trying again at the next tick"),
        }
    }

    /// What a failed Kite call means for the signal being placed: `Ok` with the reason of its
    /// `order_failed` (an expired session halts the namespace first), or `Err` with what is
    /// unknown — Kite could not be reached or did not say.
    fn placement_refusal(&mut self, error: &KiteError, now: Timestamp) -> Result<String, String> {
        match outcome(error) {
            Outcome::SessionExpired(reason) => {
                self.halt(&reason, now);
                Ok(format!("session_expired: {reason}"))
            }
            Outcome::Refused(reason) => Ok(reason),
            Outcome::Unknown(reason) => Err(reason),
        }
    }

    /// While halted, every [`SESSION_RECHECK`]: takes the session in the store, if one works.
    async fn try_restore(&mut self, now: Timestamp) {
        let Some(since) = self.session_expired_since else {
            return;
        };
        if self
            .last_session_check
            .is_some_and(|at| elapsed(at, now) < SESSION_RECHECK)
        {
            return;
        }
        self.last_session_check = Some(now);
        let Some(sessions) = &self.sessions else {
            return;
        };
        let stored = sessions
            .store
            .trading_sessions()
            .current(&sessions.api_key, now)
            .await;
        let session = match stored {
            Ok(Some(session)) => session,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "could not read the stored Kite session");
                return;
            }
        };
        let previous = self.client.access_token();
        self.client
            .set_access_token(session.access_token.expose().to_string());
        match self.client.profile().await {
            Ok(_) => {
                self.session_expired_since = None;
                info!("a working Kite session was found; the zerodha namespace trades again");
                self.alert(
                    AlertKind::SessionRestored,
                    AlertSeverity::Info,
                    "a new Kite session works; zerodha places orders again".into(),
                    since,
                );
            }
            Err(e) => {
                if let Some(previous) = previous {
                    self.client.set_access_token(previous);
                }
                warn!(error = %e, "the stored Kite session does not work yet");
            }
        }
    }

    /// Handles an approved signal: resolves, adopts or places the order, and reports it.
    /// `validated_at` is when the risk manager approved it.
    ///
    /// # Errors
    /// An infrastructure [`HandlerError`] when Kite cannot be reached before anything was sent (the
    /// runtime waits and retries the signal); poison when no order id can be formed.
    pub async fn place(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
        validated_at: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<TraderOutput>, HandlerError> {
        let signal = &validated.signal;
        let order_id = zerodha_order_id(signal_event_id)?;
        if self.open.iter().any(|o| o.order_id == order_id) {
            // A redelivery of a signal whose order is already being followed.
            return Ok(Vec::new());
        }
        let token = signal.instrument_token;
        let order = OrderRef::of_signal(&order_id, signal, ExecutionMode::Zerodha);
        let mut outputs = vec![TraderOutput::derived(
            order.submitted(signal_event_id, signal),
        )];
        let failed = |reason: String| {
            TraderOutput::derived(order.failed(None, signal.quantity, reason, false))
        };
        if let Some(since) = self.session_expired_since {
            outputs.push(failed(format!(
                "session_expired: the Kite session expired at {since}; run `alpha-panda kite \
                 login` to trade again"
            )));
            return Ok(outputs);
        }
        if self.mismatched.contains(&token) {
            let held = self.held_quantity(&signal.strategy_id, token);
            let after = held + signal.side.sign() * signal.quantity.as_i64();
            if after.abs() > held.abs() {
                outputs.push(failed(format!(
                    "position_mismatch: the position in instrument {token} disagrees with Kite's; \
                     new entries there are halted until it agrees again (exits still go)"
                )));
                return Ok(outputs);
            }
        }
        let age = elapsed(validated_at, now);
        if age > self.config.max_signal_age {
            outputs.push(failed(format!(
                "signal_too_old: validated {}s ago, more than zerodha.max_signal_age ({}s); not \
                 placed",
                age.as_secs(),
                self.config.max_signal_age.as_secs()
            )));
            return Ok(outputs);
        }
        let Some(instrument) = self.registry.get(token) else {
            outputs.push(failed(format!(
                "instrument {token} is not in the instruments master; run `alpha-panda kite \
                 instruments` to load it"
            )));
            return Ok(outputs);
        };
        let (exchange, tradingsymbol, instrument_type, instrument_name) = (
            instrument.exchange.clone(),
            instrument.tradingsymbol.clone(),
            instrument.instrument_type.clone(),
            instrument.name.clone(),
        );
        let params = match signal.order_type {
            OrderType::Market => {
                OrderParams::market(&exchange, &tradingsymbol, signal.side, signal.quantity)
                    .with_market_protection(self.config.market_protection)
            }
            OrderType::Limit => match signal.limit_price {
                Some(limit) if limit.0 > Decimal::ZERO => OrderParams::limit(
                    &exchange,
                    &tradingsymbol,
                    signal.side,
                    signal.quantity,
                    limit,
                ),
                _ => {
                    outputs.push(failed("a LIMIT order needs a positive limit price".into()));
                    return Ok(outputs);
                }
            },
        };
        let tag = order_tag(signal_event_id);
        let params = params
            .with_tag(tag.clone())
            .with_product(self.config.product.clone());
        if let Err(reason) = params.validate() {
            outputs.push(failed(format!("order not sent to Kite: {reason}")));
            return Ok(outputs);
        }

        // Above the exchange's freeze quantity an order goes only sliced, ten slices at most.
        let freeze = self
            .config
            .freeze_quantities
            .get(&tradingsymbol)
            .or_else(|| self.config.freeze_quantities.get(&instrument_name))
            .copied();
        let sliced = match freeze {
            Some(freeze) if signal.quantity.0 > freeze => {
                if signal.quantity.0 > freeze.saturating_mul(MAX_AUTOSLICES) {
                    outputs.push(failed(format!(
                        "exceeds_freeze_limit: {} units of {tradingsymbol} need more than \
                         {MAX_AUTOSLICES} slices of its freeze quantity {freeze} \
                         (zerodha.freeze_quantities); not placed",
                        signal.quantity.0
                    )));
                    return Ok(outputs);
                }
                true
            }
            _ => false,
        };

        // Crash safety: an order with this tag means an earlier attempt reached Kite.
        let existing = match self.client.orders_by_tag(&tag).await {
            Ok(existing) => existing,
            Err(e) => match self.placement_refusal(&e, now) {
                Ok(reason) => {
                    outputs.push(failed(reason));
                    return Ok(outputs);
                }
                // Nothing was sent yet: Kite is a dependency that is down; wait for it.
                Err(reason) => {
                    return Err(HandlerError::infrastructure(format!(
                        "looking up the order by tag on Kite: {reason}"
                    )))
                }
            },
        };
        let mut open = OpenOrder {
            order_id: order_id.clone(),
            kite_order_id: None,
            signal_event_id,
            strategy_id: signal.strategy_id.clone(),
            instrument_token: token,
            tradingsymbol: tradingsymbol.clone(),
            side: signal.side,
            quantity: signal.quantity,
            filled_quantity: 0,
            filled_value: Decimal::ZERO,
            exchange: exchange.clone(),
            instrument_type,
            product: self.config.product.clone(),
            protected: signal.order_type == OrderType::Market,
            submitted_at: Some(now),
            trades: Vec::new(),
            cancel_requested: false,
            slices: Vec::new(),
            finished: Vec::new(),
        };
        if !existing.is_empty() {
            info!(%order_id, kite_orders = existing.len(), %tag,
                "adopting the Kite order placed before a restart instead of placing again");
            outputs.extend(self.adopt(open, &existing, sliced, now).await);
            return Ok(outputs);
        }
        let placed = if sliced {
            self.client
                .place_autoslice_order(&params)
                .await
                .map(|placement| {
                    let refused: Vec<FinishedSlice> = placement
                        .children
                        .iter()
                        .filter_map(|c| c.error.as_ref())
                        .map(|e| FinishedSlice {
                            kite_order_id: KiteOrderId::default(),
                            status: "REFUSED".into(),
                            message: Some(format!("{}: {}", e.error_type, e.message)),
                        })
                        .collect();
                    (placement.order_id.clone(), placement.placed(), refused)
                })
        } else {
            self.client
                .place_order(&params)
                .await
                .map(|id| (id, Vec::new(), Vec::new()))
        };
        let (kite_order_id, slices, refused) = match placed {
            Ok(placed) => placed,
            Err(e) => match self.placement_refusal(&e, now) {
                Ok(reason) => {
                    outputs.push(failed(reason));
                    return Ok(outputs);
                }
                Err(reason) => {
                    // Kite may have the order: never place it again blindly; look for it.
                    warn!(%order_id, %tag, %reason,
                        "the placement's outcome is unknown; looking for the order by its tag");
                    self.open.push(open);
                    return Ok(outputs);
                }
            },
        };
        info!(%order_id, kite_order_id = %kite_order_id.as_str(), %exchange, %tradingsymbol,
            side = %signal.side, quantity = signal.quantity.0, slices = slices.len(),
            refused_slices = refused.len(), "order placed on Kite");
        outputs.push(self.acknowledged(&open, &kite_order_id));
        open.kite_order_id = Some(kite_order_id);
        if sliced {
            open.slices = slices;
            open.finished = refused;
        }
        self.open.push(open);
        if sliced && self.open.last().is_some_and(|o| o.slices.is_empty()) {
            // Kite placed no slice at all: the order ends here, failed with Kite's reasons.
            outputs.extend(self.end_if_finished(self.open.len() - 1));
        }
        Ok(outputs)
    }

    /// Follows the Kite orders found with an order's tag (placed before a restart, or by a
    /// placement whose answer was lost): the order whole, or the slices Kite cut it into.
    async fn adopt(
        &mut self,
        mut open: OpenOrder,
        found: &[Order],
        sliced: bool,
        now: Timestamp,
    ) -> Vec<TraderOutput> {
        let Some(first) = found.first() else {
            return Vec::new();
        };
        let mut outputs = vec![self.acknowledged(&open, &first.order_id)];
        open.kite_order_id = Some(first.order_id.clone());
        if sliced || found.len() > 1 {
            open.slices = found.iter().map(|o| o.order_id.clone()).collect();
        }
        self.open.push(open);
        for order in found {
            outputs.extend(self.follow(order, now).await);
        }
        outputs
    }

    fn acknowledged(&self, open: &OpenOrder, kite_order_id: &KiteOrderId) -> TraderOutput {
        TraderOutput::derived(open.order_ref().acknowledged(kite_order_id.as_str()))
    }

    /// Drains the websocket order updates (called every [`UPDATE_DRAIN`]); every `poll_interval`
    /// also resolves placements whose outcome was unknown, cancels protected orders resting at
    /// their band, polls the history of every open order that got no update, reconciles when due,
    /// and reports what changed. While the session is expired, it only looks for a new one.
    ///
    /// # Errors
    /// Never fails as a whole: an order whose state cannot be read is logged and looked at again at
    /// the next tick.
    pub async fn follow_orders(
        &mut self,
        now: Timestamp,
    ) -> Result<Vec<TraderOutput>, HandlerError> {
        let mut notices = Vec::new();
        if let Some(rx) = self.notices.as_mut() {
            while let Ok(notice) = rx.try_recv() {
                notices.push(notice);
            }
        }
        for notice in notices {
            let severity = if notice.error {
                AlertSeverity::Warning
            } else {
                AlertSeverity::Info
            };
            self.alert(
                AlertKind::BrokerMessage,
                severity,
                format!("Kite says: {}", notice.text),
                now,
            );
        }
        self.reload_instruments(now).await;
        self.try_restore(now).await;
        if self.session_expired_since.is_some() {
            return Ok(Vec::new());
        }
        let mut outputs = Vec::new();
        let mut updated = BTreeSet::new();
        if let Some(updates) = self.updates.as_mut() {
            let mut received = Vec::new();
            while let Ok(update) = updates.try_recv() {
                received.push(update.order);
            }
            for order in received {
                updated.insert(order.order_id.as_str().to_string());
                outputs.extend(self.follow(&order, now).await);
            }
        }
        // The rest asks Kite: every poll interval, not at every drain of the updates.
        if self
            .last_poll
            .is_some_and(|at| elapsed(at, now) < self.config.poll_interval)
        {
            return Ok(outputs);
        }
        self.last_poll = Some(now);
        outputs.extend(self.resolve_pending(now).await);
        self.cancel_resting(now).await;
        let to_poll: Vec<String> = self
            .open
            .iter()
            .flat_map(|o| {
                o.kite_orders()
                    .into_iter()
                    .filter(|id| !o.is_finished(id))
                    .map(str::to_string)
            })
            .filter(|id| !updated.contains(id))
            .collect();
        for kite_order_id in to_poll {
            if self.session_expired_since.is_some() {
                break;
            }
            match self
                .client
                .order_history(&KiteOrderId(kite_order_id.clone()))
                .await
            {
                Ok(history) => {
                    // Prefer a terminal state, then the most filled one; among equals the latest.
                    let latest = history
                        .iter()
                        .max_by_key(|o| (o.is_terminal(), o.filled_quantity));
                    if let Some(order) = latest {
                        outputs.extend(self.follow(order, now).await);
                    }
                }
                Err(e) => self.read_failed(
                    &e,
                    &format!("read the history of order {kite_order_id}"),
                    now,
                ),
            }
        }
        let due = self
            .last_reconciled
            .is_none_or(|at| elapsed(at, now) >= self.config.reconcile_interval);
        if due && self.session_expired_since.is_none() {
            outputs.extend(self.reconcile(now).await);
        }
        Ok(outputs)
    }

    /// Reconciles the namespace with Kite: the day's trades of orders the trader did not place
    /// (Zerodha's intraday square-off, an order placed by hand) become fills of the strategies
    /// whose positions they close, with ids from their trade ids; then each instrument's position
    /// is compared with `/portfolio/positions`. A difference it cannot explain raises an alert and
    /// halts new entries in the instrument until the two agree again.
    async fn reconcile(&mut self, now: Timestamp) -> Vec<TraderOutput> {
        let fetched = async {
            let book = self.client.orders().await?;
            let trades = self.client.trades().await?;
            let positions = self.client.positions().await?;
            Ok::<_, KiteError>((book, trades, positions))
        }
        .await;
        let (book, trades, positions) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                self.read_failed(
                    &e,
                    "read the order book, trades and positions to reconcile",
                    now,
                );
                return Vec::new();
            }
        };
        self.last_reconciled = Some(now);
        let ours: BTreeSet<&str> = book
            .iter()
            .filter(|o| {
                o.tag.as_deref().is_some_and(is_our_tag) || o.tags.iter().any(|t| is_our_tag(t))
            })
            .map(|o| o.order_id.as_str())
            .collect();
        let mut external: Vec<&Trade> = trades
            .iter()
            .filter(|t| !ours.contains(t.order_id.as_str()))
            .filter(|t| !self.external_trades.iter().any(|(id, _)| *id == t.trade_id))
            .collect();
        external
            .sort_by(|a, b| (a.fill_timestamp, &a.trade_id).cmp(&(b.fill_timestamp, &b.trade_id)));
        let mut outputs = Vec::new();
        for trade in external {
            let left = self.apply_external(trade, now, &mut outputs);
            if left > 0 {
                // It shows as a difference between the two positions, below.
                warn!(trade_id = %trade.trade_id, units = left, token = trade.instrument_token,
                    "a Kite trade the trader did not place closes no position of the namespace");
            }
        }
        // A week of external trade ids is more than Kite's day book can show again.
        let today = ist_date(now);
        self.external_trades
            .retain(|(_, day)| (today - *day).num_days() < 7);

        // Positions: the broker's against the fills', where no order of ours is still working.
        let product = self.config.product.clone();
        let mut tokens: BTreeSet<InstrumentToken> =
            self.held.iter().map(|h| h.instrument_token).collect();
        tokens.extend(
            positions
                .net
                .iter()
                .filter(|p| p.product == product)
                .map(|p| InstrumentToken(p.instrument_token)),
        );
        for token in tokens {
            if self.open.iter().any(|o| o.instrument_token == token) {
                continue;
            }
            let broker: i64 = positions
                .net
                .iter()
                .filter(|p| p.product == product && p.instrument_token == token.0)
                .map(|p| p.quantity)
                .sum();
            let ours: i64 = self
                .held
                .iter()
                .filter(|h| h.instrument_token == token)
                .map(|h| h.quantity)
                .sum();
            let flagged = self.mismatched.contains(&token);
            if broker != ours {
                if !flagged {
                    self.mismatched.push(token);
                    error!(%token, broker, ours, "the position disagrees with Kite's; new entries halted");
                    self.alert(
                        AlertKind::PositionMismatch,
                        AlertSeverity::Critical,
                        format!(
                            "instrument {token}: Kite holds {broker}, the zerodha namespace's fills \
                             account for {ours}; new entries there are halted until they agree \
                             (check the orders in Kite)"
                        ),
                        now,
                    );
                }
            } else if flagged {
                self.mismatched.retain(|t| *t != token);
                info!(%token, quantity = ours, "the position agrees with Kite's again");
                self.alert(
                    AlertKind::PositionReconciled,
                    AlertSeverity::Info,
                    format!("instrument {token}: the position agrees with Kite's again ({ours})"),
                    now,
                );
            }
        }
        outputs
    }

    /// Applies one Kite trade of an order the trader did not place: fills of the strategies whose
    /// positions it closes (in strategy order), as much as they hold. Returns the units it could
    /// not attribute.
    fn apply_external(
        &mut self,
        trade: &Trade,
        now: Timestamp,
        outputs: &mut Vec<TraderOutput>,
    ) -> u32 {
        self.external_trades
            .push((trade.trade_id.clone(), ist_date(now)));
        let side = match trade.transaction_type.as_str() {
            "BUY" => Side::Buy,
            "SELL" => Side::Sell,
            other => {
                warn!(trade_id = %trade.trade_id, transaction_type = %other, "an external trade of no side");
                return trade.quantity;
            }
        };
        let token = InstrumentToken(trade.instrument_token);
        let mut holders: Vec<HeldPosition> = self
            .held
            .iter()
            .filter(|h| h.instrument_token == token && h.quantity.signum() == -side.sign())
            .cloned()
            .collect();
        holders.sort_by(|a, b| a.strategy_id.cmp(&b.strategy_id));
        let price = Price(trade.average_price);
        let filled_at = kite_time(trade.fill_timestamp.or(trade.exchange_timestamp)).unwrap_or(now);
        let mut left = trade.quantity;
        for holder in holders {
            if left == 0 {
                break;
            }
            let take = left.min(u32::try_from(holder.quantity.unsigned_abs()).unwrap_or(u32::MAX));
            left -= take;
            let quantity = Quantity(take);
            let fees = self.charge_external(&holder, side, quantity, price, filled_at);
            let order_id = OrderId::new(format!("zerodha-external-{}", trade.order_id))
                .unwrap_or_else(|_| holder_order_id(&holder));
            info!(strategy_id = %holder.strategy_id, %token, %side, units = take,
                kite_order_id = %trade.order_id, "a Kite trade the trader did not place closes a position");
            outputs.push(TraderOutput {
                event: OrderEvent::Filled(OrderFilled {
                    order_id,
                    broker_order_id: Some(trade.order_id.as_str().to_string()),
                    strategy_id: holder.strategy_id.clone(),
                    instrument_token: token,
                    tradingsymbol: Some(holder.tradingsymbol.clone()),
                    side,
                    quantity,
                    fill_price: price,
                    fees,
                    fees_source: FeesSource::Estimate,
                    execution_mode: ExecutionMode::Zerodha,
                    filled_at,
                }),
                id: Some(external_fill_event_id(&trade.trade_id, &holder.strategy_id)),
            });
            self.hold(holder, side.sign() * i64::from(take));
        }
        left
    }

    /// The charges of an external fill (its own order, as Kite charges it).
    fn charge_external(
        &self,
        holder: &HeldPosition,
        side: Side,
        quantity: Quantity,
        price: Price,
        filled_at: Timestamp,
    ) -> FeeBreakdown {
        let probe = OpenOrder {
            order_id: holder_order_id(holder),
            kite_order_id: None,
            signal_event_id: EventId(uuid::Uuid::nil()),
            strategy_id: holder.strategy_id.clone(),
            instrument_token: holder.instrument_token,
            tradingsymbol: holder.tradingsymbol.clone(),
            side,
            quantity,
            filled_quantity: 0,
            filled_value: Decimal::ZERO,
            exchange: holder.exchange.clone(),
            instrument_type: holder.instrument_type.clone(),
            product: holder.product.clone(),
            protected: false,
            submitted_at: None,
            trades: Vec::new(),
            cancel_requested: false,
            slices: Vec::new(),
            finished: Vec::new(),
        };
        let fill = [Fill { quantity, price }];
        self.modelled(&probe, &fill, ist_date(filled_at))
            .unwrap_or_else(|reason| {
                warn!(strategy_id = %holder.strategy_id, %reason, "charged at the flat estimate");
                self.config.fallback_fees.charges(side, quantity, price)
            })
    }

    /// Looks for the orders whose placement's outcome was unknown in Kite's order book by tag:
    /// adopts each one found; fails, unplaced, one not found within `placement_grace`.
    async fn resolve_pending(&mut self, now: Timestamp) -> Vec<TraderOutput> {
        let pending: Vec<usize> = (0..self.open.len())
            .filter(|&i| self.open[i].kite_order_id.is_none())
            .collect();
        if pending.is_empty() {
            return Vec::new();
        }
        let book = match self.client.orders().await {
            Ok(book) => book,
            Err(e) => {
                self.read_failed(&e, "read the order book to resolve a placement", now);
                return Vec::new();
            }
        };
        let mut outputs = Vec::new();
        let mut give_up = Vec::new();
        let mut adopted = Vec::new();
        for i in pending {
            let open = &self.open[i];
            let tag = order_tag(open.signal_event_id);
            let mut found: Vec<Order> = book
                .iter()
                .filter(|o| o.tag.as_deref() == Some(tag.as_str()) || o.tags.contains(&tag))
                .cloned()
                .collect();
            found.sort_by(|a, b| a.order_id.cmp(&b.order_id));
            found.dedup_by(|a, b| a.order_id == b.order_id);
            match found.first() {
                Some(_) => adopted.push((i, found)),
                None => {
                    let waited = open
                        .submitted_at
                        .map_or(Duration::MAX, |at| elapsed(at, now));
                    if waited >= self.config.placement_grace {
                        give_up.push(i);
                    }
                }
            }
        }
        for (i, found) in &adopted {
            let first = &found[0].order_id;
            info!(order_id = %self.open[*i].order_id, kite_order_id = %first, kite_orders = found.len(),
                "the placement whose outcome was unknown reached Kite; following it");
            outputs.push(self.acknowledged(&self.open[*i], first));
            self.open[*i].kite_order_id = Some(first.clone());
            if found.len() > 1 {
                self.open[*i].slices = found.iter().map(|o| o.order_id.clone()).collect();
            }
        }
        for &i in give_up.iter().rev() {
            let open = self.open.remove(i);
            warn!(order_id = %open.order_id, "no order with its tag reached Kite; failing it unplaced");
            let reason = format!(
                "placement_unconfirmed: no order with tag {} reached Kite's order book within {}s \
                 of an ambiguous placement; not placed",
                order_tag(open.signal_event_id),
                self.config.placement_grace.as_secs()
            );
            outputs.push(TraderOutput::with_id(
                open.order_ref().failed(None, open.quantity, reason, true),
                failure_event_id(open.signal_event_id),
            ));
        }
        // An adopted order is followed from the book's state, like any other.
        for (_, found) in adopted {
            for order in found {
                outputs.extend(self.follow(&order, now).await);
            }
        }
        outputs
    }

    /// Cancels the protected MARKET orders still open with units unfilled after
    /// `protected_order_timeout`: they rest at their band and may never fill.
    async fn cancel_resting(&mut self, now: Timestamp) {
        let timeout = self.config.protected_order_timeout;
        for i in 0..self.open.len() {
            let open = &self.open[i];
            let resting = open.protected
                && !open.cancel_requested
                && open.kite_order_id.is_some()
                && open.filled_quantity < open.quantity.0
                && open
                    .submitted_at
                    .is_some_and(|at| elapsed(at, now) >= timeout);
            if !resting {
                continue;
            }
            let working: Vec<String> = open
                .kite_orders()
                .into_iter()
                .filter(|id| !open.is_finished(id))
                .map(str::to_string)
                .collect();
            let mut all_sent = true;
            for kite_order_id in working {
                match self
                    .client
                    .cancel_order(Variety::Regular, &KiteOrderId(kite_order_id.clone()))
                    .await
                {
                    Ok(_) => {
                        warn!(order_id = %self.open[i].order_id, %kite_order_id,
                            "a protected MARKET order rested unfilled at its band; cancelled");
                    }
                    Err(e) => match outcome(&e) {
                        Outcome::SessionExpired(reason) => {
                            self.halt(&reason, now);
                            return;
                        }
                        // No longer open (it filled or ended meanwhile): its update says so.
                        Outcome::Refused(reason) => {
                            info!(%kite_order_id, %reason, "not cancelled");
                        }
                        Outcome::Unknown(reason) => {
                            warn!(%kite_order_id, %reason, "could not cancel; trying again at the next tick");
                            all_sent = false;
                        }
                    },
                }
            }
            if all_sent {
                self.open[i].cancel_requested = true;
            }
        }
    }

    /// Follows Kite's latest state of one of an order's Kite orders: reads its trades when more
    /// units are filled than reported, reports each new trade as a fill, and finishes it at a
    /// terminal state once every trade is reported; the order ends when all its Kite orders
    /// (its slices) did. States of orders this trader does not follow are ignored.
    async fn follow(&mut self, order: &Order, now: Timestamp) -> Vec<TraderOutput> {
        let kite_order_id = order.order_id.as_str();
        let Some(index) = self.index_of(kite_order_id) else {
            return Vec::new();
        };
        let mut outputs = Vec::new();
        let reported: u32 = self.open[index]
            .trades_of(kite_order_id)
            .map(|t| t.quantity)
            .sum();
        if order.filled_quantity > reported {
            match self.client.order_trades(&order.order_id).await {
                Ok(trades) => outputs.extend(self.apply_trades(&trades, now).await),
                Err(e) => {
                    let what = format!("read the trades of order {}", order.order_id);
                    self.read_failed(&e, &what, now);
                    return outputs;
                }
            }
        }
        if order.is_terminal() {
            outputs.extend(self.apply_terminal(order));
        }
        outputs
    }

    fn index_of(&self, kite_order_id: &str) -> Option<usize> {
        self.open.iter().position(|o| o.owns(kite_order_id))
    }

    /// Reports every trade of `trades` not reported yet, each as one fill at the trade's price and
    /// time, with its id derived from Kite's trade id, charged as part of its Kite order.
    pub async fn apply_trades(&mut self, trades: &[Trade], now: Timestamp) -> Vec<TraderOutput> {
        let mut outputs = Vec::new();
        let mut trades: Vec<&Trade> = trades.iter().collect();
        trades
            .sort_by(|a, b| (a.fill_timestamp, &a.trade_id).cmp(&(b.fill_timestamp, &b.trade_id)));
        for trade in trades {
            let Some(index) = self.index_of(trade.order_id.as_str()) else {
                continue;
            };
            let open = &self.open[index];
            if trade.quantity == 0 || open.trades.iter().any(|t| t.trade_id == trade.trade_id) {
                continue;
            }
            if open.filled_quantity + trade.quantity > open.quantity.0 {
                error!(order_id = %open.order_id, trade_id = %trade.trade_id,
                    "Kite reports more units traded than ordered; the trade is not applied");
                continue;
            }
            let price = Price(trade.average_price);
            let quantity = Quantity(trade.quantity);
            let filled_at =
                kite_time(trade.fill_timestamp.or(trade.exchange_timestamp)).unwrap_or(now);
            let slice = trade.order_id.as_str().to_string();
            let (fees, fees_source) = self
                .fees_of_fill(index, &slice, quantity, price, filled_at)
                .await;
            let fees = fees.with_dp_charges(self.dp_charge_due(index, quantity, filled_at));
            self.note_cnc_day(index, quantity, price, filled_at);
            let open = &mut self.open[index];
            open.trades.push(ReportedTrade {
                trade_id: trade.trade_id.clone(),
                quantity: trade.quantity,
                price,
                kite_order_id: trade.order_id.clone(),
                fees,
            });
            open.filled_quantity += trade.quantity;
            open.filled_value += price.0 * Decimal::from(trade.quantity);
            let template = HeldPosition {
                strategy_id: open.strategy_id.clone(),
                instrument_token: open.instrument_token,
                tradingsymbol: open.tradingsymbol.clone(),
                exchange: open.exchange.clone(),
                instrument_type: open.instrument_type.clone(),
                product: open.product.clone(),
                quantity: 0,
            };
            let units = open.side.sign() * i64::from(trade.quantity);
            let open = &self.open[index];
            outputs.push(TraderOutput {
                event: OrderEvent::Filled(OrderFilled {
                    order_id: open.order_id.clone(),
                    broker_order_id: Some(slice),
                    strategy_id: open.strategy_id.clone(),
                    instrument_token: open.instrument_token,
                    tradingsymbol: Some(open.tradingsymbol.clone()),
                    side: open.side,
                    quantity,
                    fill_price: price,
                    fees,
                    fees_source,
                    execution_mode: ExecutionMode::Zerodha,
                    filled_at,
                }),
                id: Some(fill_event_id(open.signal_event_id, &trade.trade_id)),
            });
            self.hold(template, units);
        }
        outputs
    }

    /// The fees of a new fill of Kite order `slice` of the open order at `index`: what the Kite
    /// order's charges come to with this fill, less what its earlier fills were charged. Kite's
    /// virtual contract note gives the charges when it answers; otherwise (and for a CNC sold on
    /// its buy day, which the contract note re-prices only at the end of the day) the schedule's
    /// are the estimate. Either way the fees of a Kite order's fills add up to its charges from
    /// the last source asked (a rupee of STT lands on the fill that crosses it; an estimate a
    /// contract note corrects can make one line of a fill negative).
    async fn fees_of_fill(
        &self,
        index: usize,
        slice: &str,
        quantity: Quantity,
        price: Price,
        filled_at: Timestamp,
    ) -> (FeeBreakdown, FeesSource) {
        let open = &self.open[index];
        let earlier: Vec<&ReportedTrade> = open.trades_of(slice).collect();
        let charged = earlier
            .iter()
            .fold(FeeBreakdown::default(), |sum, t| sum.plus(&t.fees));
        // The depository charge is no part of the order's charges: not taken off again.
        let charged = charged.with_dp_charges(Money::default() - charged.dp_charges);
        let mut fills: Vec<Fill> = earlier
            .iter()
            .map(|t| Fill {
                quantity: Quantity(t.quantity),
                price: t.price,
            })
            .collect();
        fills.push(Fill { quantity, price });
        let trade_date = ist_date(filled_at);
        if let Some(fees) = self.cnc_sold_on_buy_day(open, &fills, quantity, trade_date) {
            return (fees.minus(&charged), FeesSource::Estimate);
        }
        if self.config.contract_notes {
            match self.contract_note(open, slice, &fills).await {
                Ok(total) => return (total.minus(&charged), FeesSource::ContractNote),
                Err(reason) => warn!(order_id = %open.order_id, kite_order_id = %slice, %reason,
                    "Kite's contract note did not answer; the fill's fees are an estimate"),
            }
        }
        match self.modelled(open, &fills, trade_date) {
            Ok(total) => (total.minus(&charged), FeesSource::Estimate),
            Err(reason) => {
                warn!(order_id = %open.order_id, %reason, "charged at the flat estimate");
                let fees = self
                    .config
                    .fallback_fees
                    .charges(open.side, quantity, price);
                (fees, FeesSource::Estimate)
            }
        }
    }

    /// The schedule's charges of one Kite order of `open` with `fills`.
    fn modelled(
        &self,
        open: &OpenOrder,
        fills: &[Fill],
        trade_date: NaiveDate,
    ) -> Result<FeeBreakdown, String> {
        let terms = open
            .charge_terms(trade_date)
            .ok_or_else(|| format!("no charges known for exchange {:?}", open.exchange))?;
        self.config
            .charges
            .charge_order(OrderFills { terms, fills })
            .map_err(|e| e.to_string())
    }

    /// Kite's charges of one Kite order with `fills`, from its virtual contract note, each line
    /// rounded to the paisa.
    async fn contract_note(
        &self,
        open: &OpenOrder,
        slice: &str,
        fills: &[Fill],
    ) -> Result<FeeBreakdown, String> {
        let quantity: u32 = fills.iter().map(|f| f.quantity.0).sum();
        let value: Decimal = fills
            .iter()
            .map(|f| f.price.0 * Decimal::from(f.quantity.0))
            .sum();
        if quantity == 0 {
            return Ok(FeeBreakdown::default());
        }
        let query = ContractNoteOrder {
            order_id: slice.to_string(),
            exchange: open.exchange.clone(),
            tradingsymbol: open.tradingsymbol.clone(),
            transaction_type: match open.side {
                Side::Buy => "BUY".into(),
                Side::Sell => "SELL".into(),
            },
            variety: Variety::Regular.as_str().into(),
            product: open.product.clone(),
            order_type: if open.protected { "MARKET" } else { "LIMIT" }.into(),
            quantity,
            average_price: (value / Decimal::from(quantity)).round_dp(4),
        };
        let note = self
            .client
            .contract_note(std::slice::from_ref(&query))
            .await
            .map_err(|e| e.to_string())?;
        let charges = &note
            .first()
            .ok_or_else(|| "an empty contract note".to_string())?
            .charges;
        let paisa = |d: Decimal| Money(d).round_to_paisa();
        Ok(FeeBreakdown::itemised(
            paisa(charges.brokerage),
            paisa(charges.transaction_tax),
            paisa(charges.exchange_turnover_charge),
            paisa(charges.sebi_turnover_charge),
            paisa(charges.gst.total),
            paisa(charges.stamp_duty),
        ))
    }

    /// For a CNC sell whose units were all bought (CNC) on the same day, the charges Zerodha
    /// makes of it: the sell order charged as intraday, plus what re-pricing the buy it closes
    /// as intraday changes (the buy was charged as delivery when it filled). `None` for any
    /// other fill. A sell of more than the day's buys is charged as delivery as a whole: an
    /// estimate the contract note corrects.
    fn cnc_sold_on_buy_day(
        &self,
        open: &OpenOrder,
        fills: &[Fill],
        quantity: Quantity,
        trade_date: NaiveDate,
    ) -> Option<FeeBreakdown> {
        if open.product != "CNC" || open.side != Side::Sell {
            return None;
        }
        let day = self.cnc_day_buys.iter().find(|d| {
            d.strategy_id == open.strategy_id
                && d.instrument_token == open.instrument_token
                && d.date == trade_date
        })?;
        if day.units < quantity.0 {
            return None;
        }
        let terms = open.charge_terms(trade_date)?;
        let intraday = |side: Side, fills: &[Fill]| {
            self.config
                .charges
                .charge_order(OrderFills {
                    terms: OrderTerms {
                        segment: Segment::EquityIntraday,
                        side,
                        ..terms
                    },
                    fills,
                })
                .ok()
        };
        let delivery = |fills: &[Fill]| {
            self.config
                .charges
                .charge_order(OrderFills {
                    terms: OrderTerms {
                        segment: Segment::EquityDelivery,
                        side: Side::Buy,
                        ..terms
                    },
                    fills,
                })
                .ok()
        };
        // The buy units this order's fills close, at the day's average buy price, re-priced
        // from delivery to intraday: with the sell's intraday charges, the order's total; what
        // its earlier fills were charged is taken off by the caller, as for any order.
        let closed: u32 = fills.iter().map(|f| f.quantity.0).sum();
        let average = Price(day.value / Decimal::from(day.units));
        let buy_leg = |units: u32| -> Option<FeeBreakdown> {
            if units == 0 {
                return Some(FeeBreakdown::default());
            }
            let leg = [Fill {
                quantity: Quantity(units),
                price: average,
            }];
            Some(intraday(Side::Buy, &leg)?.minus(&delivery(&leg)?))
        };
        let sell = intraday(Side::Sell, fills)?;
        Some(sell.plus(&buy_leg(closed)?))
    }

    /// The depository charge a new fill of the order at `index` owes: once per scrip and day, on
    /// the first sell from delivery (a CNC held overnight; a CNC sold on its buy day pays none).
    fn dp_charge_due(&mut self, index: usize, quantity: Quantity, at: Timestamp) -> Money {
        let open = &self.open[index];
        if open.product != "CNC" || open.side != Side::Sell {
            return Money::default();
        }
        let date = ist_date(at);
        let token = open.instrument_token;
        let bought_today = self.cnc_day_buys.iter().any(|d| {
            d.strategy_id == open.strategy_id
                && d.instrument_token == token
                && d.date == date
                && d.units >= quantity.0
        });
        if bought_today || self.dp_charged.contains(&(token, date)) {
            return Money::default();
        }
        match self.config.charges.dp_charge(date) {
            Ok(dp) => {
                self.dp_charged
                    .retain(|(_, day)| (date - *day).num_days() < 7);
                self.dp_charged.push((token, date));
                dp.total
            }
            Err(e) => {
                warn!(order_id = %open.order_id, reason = %e, "no DP charge known for the day");
                Money::default()
            }
        }
    }

    /// Keeps the day's CNC buys of the strategy and instrument up to date with a new fill.
    fn note_cnc_day(&mut self, index: usize, quantity: Quantity, price: Price, at: Timestamp) {
        let open = &self.open[index];
        if open.product != "CNC" {
            return;
        }
        let date = ist_date(at);
        let (strategy_id, token, side) =
            (open.strategy_id.clone(), open.instrument_token, open.side);
        self.cnc_day_buys.retain(|d| d.date == date);
        let entry = self
            .cnc_day_buys
            .iter_mut()
            .find(|d| d.strategy_id == strategy_id && d.instrument_token == token);
        match (side, entry) {
            (Side::Buy, Some(day)) => {
                day.units += quantity.0;
                day.value += price.0 * Decimal::from(quantity.0);
            }
            (Side::Buy, None) => self.cnc_day_buys.push(CncDayBuys {
                strategy_id,
                instrument_token: token,
                date,
                units: quantity.0,
                value: price.0 * Decimal::from(quantity.0),
            }),
            (Side::Sell, Some(day)) => {
                let sold = quantity.0.min(day.units);
                let average = day.value / Decimal::from(day.units);
                day.units -= sold;
                day.value = average * Decimal::from(day.units);
            }
            (Side::Sell, None) => {}
        }
        self.cnc_day_buys.retain(|d| d.units > 0);
    }

    /// Finishes one of an order's Kite orders at Kite's terminal `order` once all its trades are
    /// reported, and ends the order when every one of them finished.
    fn apply_terminal(&mut self, order: &Order) -> Vec<TraderOutput> {
        let kite_order_id = order.order_id.as_str();
        let Some(index) = self.index_of(kite_order_id) else {
            return Vec::new();
        };
        let open = &self.open[index];
        let reported: u32 = open.trades_of(kite_order_id).map(|t| t.quantity).sum();
        if reported < order.filled_quantity {
            // Trades still to be read: the order stays followed.
            return Vec::new();
        }
        if !open.is_finished(kite_order_id) {
            let message = order
                .status_message
                .clone()
                .or_else(|| order.status_message_raw.clone());
            self.open[index].finished.push(FinishedSlice {
                kite_order_id: order.order_id.clone(),
                status: order.status.clone(),
                message,
            });
        }
        self.end_if_finished(index)
    }

    /// Ends the order at `index` when every one of its Kite orders finished: `order_failed` for
    /// what a `REJECTED` or `CANCELLED` order (or a slice Kite refused) left unfilled.
    fn end_if_finished(&mut self, index: usize) -> Vec<TraderOutput> {
        let open = &self.open[index];
        if open.kite_orders().iter().any(|id| !open.is_finished(id)) {
            return Vec::new();
        }
        let mut outputs = Vec::new();
        let failures: Vec<&FinishedSlice> = open.finished.iter().filter(|f| f.failed()).collect();
        let unfilled = open.quantity.0.saturating_sub(open.filled_quantity);
        if !failures.is_empty() && unfilled > 0 {
            let rested = open.cancel_requested
                && failures
                    .iter()
                    .all(|f| KiteOrderStatus::parse(&f.status) == KiteOrderStatus::Cancelled);
            let reason = if rested {
                format!(
                    "rested_at_band: the protected MARKET order did not fill inside its market \
                     protection within {}s and was cancelled; {unfilled} units not filled",
                    self.config.protected_order_timeout.as_secs()
                )
            } else {
                let said: Vec<String> = failures
                    .iter()
                    .map(|f| {
                        format!(
                            "Kite {}: {}",
                            f.status,
                            f.message.as_deref().unwrap_or("no message from Kite")
                        )
                    })
                    .collect();
                if open.slices.is_empty() && failures.len() == 1 {
                    said[0].clone()
                } else {
                    format!(
                        "{} of {} slices failed ({unfilled} units not filled): {}",
                        failures.len(),
                        open.slices.len()
                            + failures
                                .iter()
                                .filter(|f| f.kite_order_id.as_str().is_empty())
                                .count(),
                        said.join("; ")
                    )
                }
            };
            outputs.push(TraderOutput::with_id(
                open.order_ref().failed(
                    open.kite_order_id
                        .as_ref()
                        .map(|id| id.as_str().to_string()),
                    Quantity(unfilled),
                    reason.clone(),
                    rested,
                ),
                failure_event_id(open.signal_event_id),
            ));
            if rested {
                let since = open.submitted_at.unwrap_or_else(open_fallback_time);
                let message = format!("{} {}: {reason}", open.order_id, open.tradingsymbol);
                self.alert(
                    AlertKind::OrderRestedAtBand,
                    AlertSeverity::Warning,
                    message,
                    since,
                );
            }
        }
        let open = self.open.remove(index);
        info!(order_id = %open.order_id, kite_order_id = ?open.kite_order_id,
            slices = open.slices.len(), filled = open.filled_quantity, "Kite order finished");
        outputs
    }
}

/// A time for an alert about an order saved before orders carried their submission time.
fn open_fallback_time() -> Timestamp {
    Timestamp::from_datetime(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::{Instrument, StrategyId};
    use alpha_panda_kite::ZerodhaSettings;
    use rust_decimal_macros::dec;

    fn trader() -> ZerodhaTrader {
        let client = Arc::new(KiteClient::new(&ZerodhaSettings::default()).unwrap());
        let registry = Arc::new(InstrumentRegistry::from_rows(Vec::<Instrument>::new()));
        // No contract notes: these tests have no Kite to ask, and test the schedule's charges.
        let config = ZerodhaConfig {
            contract_notes: false,
            ..ZerodhaConfig::default()
        };
        ZerodhaTrader::new(client, registry, config)
    }

    fn open_order(signal: EventId) -> OpenOrder {
        OpenOrder {
            order_id: zerodha_order_id(signal).unwrap(),
            kite_order_id: Some(KiteOrderId("250101000000001".into())),
            signal_event_id: signal,
            strategy_id: StrategyId::new("ema_cross_infy").unwrap(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: "INFY".into(),
            side: Side::Buy,
            quantity: Quantity(10),
            filled_quantity: 0,
            filled_value: Decimal::ZERO,
            exchange: "NSE".into(),
            instrument_type: "EQ".into(),
            product: "MIS".into(),
            protected: true,
            submitted_at: None,
            trades: Vec::new(),
            cancel_requested: false,
            slices: Vec::new(),
            finished: Vec::new(),
        }
    }

    fn trade(id: &str, quantity: u32, price: Decimal, second: u32) -> Trade {
        Trade {
            trade_id: id.into(),
            order_id: KiteOrderId("250101000000001".into()),
            quantity,
            average_price: price,
            fill_timestamp: chrono::NaiveDate::from_ymd_opt(2026, 3, 2)
                .unwrap()
                .and_hms_opt(10, 0, second),
            ..Trade::default()
        }
    }

    fn kite_state(status: &str, filled: u32) -> Order {
        Order {
            order_id: KiteOrderId("250101000000001".into()),
            status: status.into(),
            filled_quantity: filled,
            quantity: 10,
            ..Order::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }

    #[test]
    fn tag_follows_kite_rules_and_is_stable() {
        let id = EventId::new_root();
        let tag = order_tag(id);
        assert_eq!(tag.len(), 20);
        assert!(tag.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(tag, order_tag(id));
        assert_ne!(tag, order_tag(EventId::new_root()));
    }

    #[tokio::test]
    async fn each_kite_trade_is_one_fill_reported_once() {
        let signal = EventId::new_root();
        let mut t = trader();
        t.restore_open(vec![open_order(signal)]);
        let first = t.apply_trades(&[trade("T1", 4, dec!(100), 1)], now()).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, Some(fill_event_id(signal, "T1")));
        let OrderEvent::Filled(f) = &first[0].event else {
            panic!("expected a fill, got {:?}", first[0].event)
        };
        assert_eq!((f.quantity, f.fill_price), (Quantity(4), Price(dec!(100))));
        assert_eq!(f.filled_at.to_string(), "2026-03-02T04:30:01.000000Z");
        // The same trades again (an update and a poll both seen) report nothing new.
        let again = t.apply_trades(&[trade("T1", 4, dec!(100), 1)], now()).await;
        assert!(again.is_empty());
        // The next trade, read with the first, is the only new fill, at its own price.
        let rest = t
            .apply_trades(
                &[trade("T2", 6, dec!(101.5), 2), trade("T1", 4, dec!(100), 1)],
                now(),
            )
            .await;
        assert_eq!(rest.len(), 1);
        let OrderEvent::Filled(f) = &rest[0].event else {
            panic!("expected a fill, got {:?}", rest[0].event)
        };
        assert_eq!(
            (f.quantity, f.fill_price),
            (Quantity(6), Price(dec!(101.5)))
        );
        assert_eq!(rest[0].id, Some(fill_event_id(signal, "T2")));
        assert_eq!(t.open_orders()[0].filled_quantity, 10);
        // Complete, with every trade reported: the order ends.
        assert!(t.apply_terminal(&kite_state("COMPLETE", 10)).is_empty());
        assert!(t.open_orders().is_empty());
    }

    #[tokio::test]
    async fn brokerage_is_charged_once_per_order_across_its_trades() {
        let signal = EventId::new_root();
        let mut t = trader();
        t.restore_open(vec![open_order(signal)]);
        // 10 × ₹10,000: 0.03 % of each fill would be ₹3 per fill, under the cap; ₹20 cap per
        // order is what matters for a large order: 10 × ₹1,00,000 = ₹10 lakh → 0.03 % = ₹300.
        let out = t
            .apply_trades(
                &[
                    trade("T1", 3, dec!(100000), 1),
                    trade("T2", 3, dec!(100000), 2),
                    trade("T3", 4, dec!(100000), 3),
                ],
                now(),
            )
            .await;
        let brokerage: Decimal = out
            .iter()
            .map(|o| match &o.event {
                OrderEvent::Filled(f) => f.fees.brokerage.0,
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(brokerage, dec!(20));
    }

    #[test]
    fn a_terminal_state_waits_for_its_trades() {
        let signal = EventId::new_root();
        let mut t = trader();
        t.restore_open(vec![open_order(signal)]);
        // Kite says COMPLETE, but the trades were not read yet: still followed.
        assert!(t.apply_terminal(&kite_state("COMPLETE", 10)).is_empty());
        assert_eq!(t.open_orders().len(), 1);
    }

    #[tokio::test]
    async fn cancelled_after_a_partial_fill_fails_the_rest_with_kites_message() {
        let signal = EventId::new_root();
        let mut t = trader();
        t.restore_open(vec![open_order(signal)]);
        t.apply_trades(&[trade("T1", 3, dec!(99.95), 1)], now())
            .await;
        let mut state = kite_state("CANCELLED", 3);
        state.status_message = Some("Cancelled by user".into());
        let out = t.apply_terminal(&state);
        assert_eq!(out.len(), 1);
        let OrderEvent::Failed(f) = &out[0].event else {
            panic!("expected a failure, got {:?}", out[0].event)
        };
        assert_eq!(f.quantity, Quantity(7));
        assert!(f.reason.contains("Cancelled by user"), "{}", f.reason);
        assert_eq!(out[0].id, Some(failure_event_id(signal)));
        assert!(t.open_orders().is_empty());
        assert!(t.take_alerts().is_empty());
    }

    #[test]
    fn a_protected_order_cancelled_at_its_band_says_so_and_alerts() {
        let signal = EventId::new_root();
        let mut t = trader();
        let mut open = open_order(signal);
        open.cancel_requested = true;
        t.restore_open(vec![open]);
        let out = t.apply_terminal(&kite_state("CANCELLED", 0));
        let OrderEvent::Failed(f) = &out[0].event else {
            panic!("expected a failure, got {:?}", out[0].event)
        };
        assert!(f.reason.starts_with("rested_at_band"), "{}", f.reason);
        assert!(f.retryable);
        let alerts = t.take_alerts();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, AlertKind::OrderRestedAtBand);
    }

    #[test]
    fn checkpoints_of_earlier_versions_still_load() {
        let old = serde_json::json!([{
            "order_id": "zerodha-01935f2a-7c00-7000-8000-000000000001",
            "kite_order_id": "250101000000001",
            "signal_event_id": "01935f2a-7c00-7000-8000-000000000001",
            "strategy_id": "ema_cross_infy",
            "instrument_token": 408065,
            "tradingsymbol": "INFY",
            "side": "BUY",
            "quantity": 10,
            "filled_quantity": 0,
            "filled_value": "0"
        }]);
        let open: Vec<OpenOrder> = serde_json::from_value(old).unwrap();
        assert_eq!(
            open[0].kite_order_id,
            Some(KiteOrderId("250101000000001".into()))
        );
        assert!(open[0].trades.is_empty());
    }

    #[test]
    fn kite_times_are_ist() {
        let naive = chrono::NaiveDate::from_ymd_opt(2025, 1, 6)
            .unwrap()
            .and_hms_opt(9, 15, 0)
            .unwrap();
        let t = kite_time(Some(naive)).unwrap();
        assert_eq!(t.as_datetime().to_rfc3339(), "2025-01-06T03:45:00+00:00");
        assert_eq!(
            ist_date(t),
            chrono::NaiveDate::from_ymd_opt(2025, 1, 6).unwrap()
        );
    }
}
