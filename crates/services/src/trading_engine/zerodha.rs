//! The Zerodha live trader: places validated signals on Kite Connect and follows each order to a
//! terminal status through websocket order updates, with polling of its history as the fallback.
//!
//! **Placement.** The instrument is resolved in the [`InstrumentRegistry`] built from the store's
//! instruments master; a token missing there becomes `order_failed` (never a made-up symbol). The
//! order is MARKET or LIMIT with the configured product (default MIS) and a Kite `tag` derived from
//! the signal event id ([`order_tag`]: 20 ASCII letters and digits, Kite's limit). Every order emits
//! `order_submitted` first, then `order_ack` with Kite's order id, or `order_failed`.
//!
//! **Crash safety.** Before placing, the trader asks Kite for an order with the same tag and adopts
//! it instead of placing a second one: a crash between placement and the checkpoint (or an ambiguous
//! placement failure that the runtime retries) can never place the order twice. Open orders are the
//! trading engine's durable state.
//!
//! **Fills.** `order_filled` is emitted for each newly filled quantity (a partial fill is its own
//! fill, priced from the change in Kite's average price), and `order_failed` for `REJECTED` or
//! `CANCELLED` with Kite's status message. Fill and failure events are time-driven, so their ids are
//! derived from the signal event id and the filled quantity so far ([`fill_event_id`]): after a
//! restart the same fill has the same id and downstream deduplication drops the repeat.
//!
//! **Fees.** Kite reports no charges with an order; fills carry the same itemised [`FeeModel`]
//! estimate as the paper trader (Zerodha's published equity charges), not the contract note.
//!
//! **Errors.** A Kite error of class business (rejected input, margin, expired session) becomes
//! `order_failed`; transient and infrastructure errors are returned to the runtime, which retries the
//! input (the tag lookup then finds an order that Kite did take).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    derive_event_id, ErrorClass, EventId, ExecutionMode, InstrumentToken, OrderAck, OrderFailed,
    OrderFilled, OrderId, OrderSubmitted, OrderType, Price, Quantity, Side, StrategyId, Timestamp,
    ValidatedSignal,
};
use alpha_panda_kite::{
    InstrumentRegistry, KiteClient, KiteError, KiteOrderId, Order, OrderParams, OrderUpdate,
};
use alpha_panda_stream::HandlerError;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{FeeModel, OrderEvent};

/// Live trading configuration (from the `[zerodha]` settings and the shared fee model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZerodhaConfig {
    /// Kite product of every order (`MIS` intraday, `CNC` delivery, `NRML` F&O carry).
    pub product: String,
    /// How often open orders are checked (order updates drained, history polled as fallback).
    pub poll_interval: Duration,
    /// The fee estimate applied to each fill (the paper trader's model).
    pub fees: FeeModel,
}

impl Default for ZerodhaConfig {
    fn default() -> Self {
        Self {
            product: "MIS".into(),
            poll_interval: Duration::from_secs(2),
            fees: FeeModel::default(),
        }
    }
}

/// An order placed on Kite and not yet terminal. Serialized in the trading engine's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    /// Alpha Panda's order id (`zerodha-{signal event id}`).
    pub order_id: OrderId,
    /// Kite's order id.
    pub kite_order_id: String,
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
}

/// An order event with the id it must carry: `None` lets the runtime derive it from the input,
/// `Some` is a deterministic id for a time-driven event (fills, late failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraderOutput {
    /// The event.
    pub event: OrderEvent,
    /// Its fixed id, if any.
    pub id: Option<EventId>,
}

impl TraderOutput {
    fn derived(event: OrderEvent) -> Self {
        Self { event, id: None }
    }
}

/// The live trader of the `zerodha` namespace.
pub struct ZerodhaTrader {
    client: Arc<KiteClient>,
    registry: Arc<InstrumentRegistry>,
    config: ZerodhaConfig,
    open: Vec<OpenOrder>,
    updates: Option<mpsc::Receiver<OrderUpdate>>,
}

impl std::fmt::Debug for ZerodhaTrader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZerodhaTrader")
            .field("client", &self.client)
            .field("instruments", &self.registry.len())
            .field("config", &self.config)
            .field("open", &self.open.len())
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

/// The id of the fill that brings the order caused by `signal_event_id` to `filled_so_far` units.
pub fn fill_event_id(signal_event_id: EventId, filled_so_far: u32) -> EventId {
    derive_event_id(signal_event_id, "zerodha_fill", filled_so_far)
}

/// The id of the `order_failed` that ends the order caused by `signal_event_id` after it was placed.
pub fn failure_event_id(signal_event_id: EventId) -> EventId {
    derive_event_id(signal_event_id, "zerodha_failed", 0)
}

/// A Kite failure that is the order's answer (business) or the runtime's to retry (the rest).
fn classify(context: &str, error: &KiteError) -> Result<String, HandlerError> {
    match error.class() {
        ErrorClass::Business => Ok(error.to_string()),
        class => Err(HandlerError {
            class,
            message: format!("{context}: {error}"),
        }),
    }
}

/// Kite timestamps are India Standard Time (UTC+05:30, no daylight saving).
fn kite_time(naive: Option<chrono::NaiveDateTime>) -> Option<Timestamp> {
    naive.map(|t| Timestamp::from_datetime((t - chrono::Duration::minutes(330)).and_utc()))
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
            config,
            open: Vec::new(),
            updates: None,
        }
    }

    /// Feeds Kite's websocket order updates (`KiteTicker::take_order_updates`) to the trader.
    pub fn with_order_updates(mut self, updates: mpsc::Receiver<OrderUpdate>) -> Self {
        self.updates = Some(updates);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ZerodhaConfig {
        &self.config
    }

    /// Orders placed and not yet terminal.
    pub fn open_orders(&self) -> &[OpenOrder] {
        &self.open
    }

    /// Restores open orders saved by an earlier run.
    pub fn restore_open(&mut self, open: Vec<OpenOrder>) {
        self.open = open;
    }

    /// Handles an approved signal: resolves, adopts or places the order, and reports it.
    ///
    /// # Errors
    /// A transient or infrastructure [`HandlerError`] when Kite cannot be reached (the runtime
    /// retries the signal); poison when no order id can be formed.
    pub async fn on_validated(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
        now: Timestamp,
    ) -> Result<Vec<TraderOutput>, HandlerError> {
        let signal = &validated.signal;
        let order_id = zerodha_order_id(signal_event_id)?;
        if self.open.iter().any(|o| o.order_id == order_id) {
            // A redelivery of a signal whose order is already being followed.
            return Ok(Vec::new());
        }
        let token = signal.instrument_token;
        let mut outputs = vec![TraderOutput::derived(OrderEvent::Submitted(
            OrderSubmitted {
                order_id: order_id.clone(),
                signal_event_id,
                strategy_id: signal.strategy_id.clone(),
                instrument_token: token,
                side: signal.side,
                quantity: signal.quantity,
                order_type: signal.order_type,
                limit_price: signal.limit_price,
                execution_mode: ExecutionMode::Zerodha,
            },
        ))];
        let failed = |reason: String, broker_order_id: Option<String>| {
            TraderOutput::derived(OrderEvent::Failed(OrderFailed {
                order_id: order_id.clone(),
                broker_order_id,
                strategy_id: signal.strategy_id.clone(),
                instrument_token: token,
                side: signal.side,
                quantity: signal.quantity,
                reason,
                retryable: false,
                execution_mode: ExecutionMode::Zerodha,
            }))
        };
        let Some(instrument) = self.registry.get(token) else {
            outputs.push(failed(
                format!(
                    "instrument {token} is not in the instruments master; run `alpha-panda kite \
                     instruments` to load it"
                ),
                None,
            ));
            return Ok(outputs);
        };
        let (exchange, tradingsymbol) = (
            instrument.exchange.clone(),
            instrument.tradingsymbol.clone(),
        );
        let params = match signal.order_type {
            OrderType::Market => {
                OrderParams::market(&exchange, &tradingsymbol, signal.side, signal.quantity)
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
                    outputs.push(failed(
                        "a LIMIT order needs a positive limit price".into(),
                        None,
                    ));
                    return Ok(outputs);
                }
            },
        };
        let tag = order_tag(signal_event_id);
        let params = params
            .with_tag(tag.clone())
            .with_product(self.config.product.clone());
        if let Err(reason) = params.validate() {
            outputs.push(failed(format!("order not sent to Kite: {reason}"), None));
            return Ok(outputs);
        }

        // Crash safety: an order with this tag means an earlier attempt reached Kite.
        let existing = match self.client.order_by_tag(&tag).await {
            Ok(existing) => existing,
            Err(e) => {
                let reason = classify("looking up the order by tag on Kite", &e)?;
                outputs.push(failed(reason, None));
                return Ok(outputs);
            }
        };
        let (kite_order_id, adopted) = match existing {
            Some(order) => {
                info!(%order_id, kite_order_id = %order.order_id.as_str(), %tag,
                    "adopting the Kite order placed before a restart instead of placing again");
                (order.order_id.clone(), Some(order))
            }
            None => match self.client.place_order(&params).await {
                Ok(id) => (id, None),
                Err(e) => {
                    let reason = classify("placing the order on Kite", &e)?;
                    outputs.push(failed(reason, None));
                    return Ok(outputs);
                }
            },
        };
        info!(%order_id, kite_order_id = %kite_order_id.as_str(), %exchange, %tradingsymbol,
            side = %signal.side, quantity = signal.quantity.0, "order placed on Kite");
        outputs.push(TraderOutput::derived(OrderEvent::Acknowledged(OrderAck {
            order_id: order_id.clone(),
            broker_order_id: kite_order_id.as_str().to_string(),
            strategy_id: signal.strategy_id.clone(),
            instrument_token: token,
            execution_mode: ExecutionMode::Zerodha,
        })));
        self.open.push(OpenOrder {
            order_id,
            kite_order_id: kite_order_id.as_str().to_string(),
            signal_event_id,
            strategy_id: signal.strategy_id.clone(),
            instrument_token: token,
            tradingsymbol,
            side: signal.side,
            quantity: signal.quantity,
            filled_quantity: 0,
            filled_value: Decimal::ZERO,
        });
        if let Some(order) = adopted {
            outputs.extend(self.apply(&order, now));
        }
        Ok(outputs)
    }

    /// Drains the websocket order updates, then polls the history of every open order that got
    /// none, and reports what changed.
    ///
    /// # Errors
    /// Never fails as a whole: an order whose history cannot be read is logged and polled again at
    /// the next tick.
    pub async fn on_timer(&mut self, now: Timestamp) -> Result<Vec<TraderOutput>, HandlerError> {
        let mut outputs = Vec::new();
        let mut updated = BTreeSet::new();
        if let Some(updates) = self.updates.as_mut() {
            let mut received = Vec::new();
            while let Ok(update) = updates.try_recv() {
                received.push(update.order);
            }
            for order in received {
                updated.insert(order.order_id.as_str().to_string());
                outputs.extend(self.apply(&order, now));
            }
        }
        let to_poll: Vec<String> = self
            .open
            .iter()
            .map(|o| o.kite_order_id.clone())
            .filter(|id| !updated.contains(id))
            .collect();
        for kite_order_id in to_poll {
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
                        outputs.extend(self.apply(order, now));
                    }
                }
                Err(e) => warn!(%kite_order_id, error = %e,
                    "could not read the order's history from Kite; polling again at the next tick"),
            }
        }
        Ok(outputs)
    }

    /// Applies Kite's latest state of one order: a fill for newly filled units, and for a terminal
    /// state the end of following it (`order_failed` for `REJECTED` / `CANCELLED`). Updates for
    /// orders this trader does not follow (placed elsewhere, or already terminal) are ignored.
    pub fn apply(&mut self, order: &Order, now: Timestamp) -> Vec<TraderOutput> {
        let Some(index) = self
            .open
            .iter()
            .position(|o| o.kite_order_id == order.order_id.as_str())
        else {
            return Vec::new();
        };
        let fees = &self.config.fees;
        let open = &mut self.open[index];
        let mut outputs = Vec::new();
        let filled = order.filled_quantity.min(open.quantity.0);
        if filled > open.filled_quantity && order.average_price > Decimal::ZERO {
            let delta = filled - open.filled_quantity;
            let total_value = order.average_price * Decimal::from(filled);
            let price = ((total_value - open.filled_value) / Decimal::from(delta)).round_dp(4);
            let fill_price = Price(price);
            let quantity = Quantity(delta);
            open.filled_quantity = filled;
            open.filled_value += price * Decimal::from(delta);
            let filled_at = kite_time(order.exchange_update_timestamp.or(order.exchange_timestamp))
                .unwrap_or(now);
            outputs.push(TraderOutput {
                event: OrderEvent::Filled(OrderFilled {
                    order_id: open.order_id.clone(),
                    broker_order_id: Some(open.kite_order_id.clone()),
                    strategy_id: open.strategy_id.clone(),
                    instrument_token: open.instrument_token,
                    tradingsymbol: Some(open.tradingsymbol.clone()),
                    side: open.side,
                    quantity,
                    fill_price,
                    // Kite sends no charges with an order: the paper trader's itemised estimate.
                    fees: fees.charges(open.side, quantity, fill_price),
                    execution_mode: ExecutionMode::Zerodha,
                    filled_at,
                }),
                id: Some(fill_event_id(open.signal_event_id, filled)),
            });
        }
        if matches!(order.status.as_str(), "REJECTED" | "CANCELLED") {
            let message = order
                .status_message
                .clone()
                .or_else(|| order.status_message_raw.clone())
                .unwrap_or_else(|| "no message from Kite".into());
            outputs.push(TraderOutput {
                event: OrderEvent::Failed(OrderFailed {
                    order_id: open.order_id.clone(),
                    broker_order_id: Some(open.kite_order_id.clone()),
                    strategy_id: open.strategy_id.clone(),
                    instrument_token: open.instrument_token,
                    side: open.side,
                    quantity: Quantity(open.quantity.0.saturating_sub(open.filled_quantity)),
                    reason: format!("Kite {}: {message}", order.status),
                    retryable: false,
                    execution_mode: ExecutionMode::Zerodha,
                }),
                id: Some(failure_event_id(open.signal_event_id)),
            });
        }
        if order.is_terminal() {
            info!(order_id = %open.order_id, kite_order_id = %open.kite_order_id,
                status = %order.status, filled = open.filled_quantity, "Kite order finished");
            self.open.remove(index);
        }
        outputs
    }
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
        ZerodhaTrader::new(client, registry, ZerodhaConfig::default())
    }

    fn open_order(signal: EventId) -> OpenOrder {
        OpenOrder {
            order_id: zerodha_order_id(signal).unwrap(),
            kite_order_id: "250101000000001".into(),
            signal_event_id: signal,
            strategy_id: StrategyId::new("ema_cross_infy").unwrap(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: "INFY".into(),
            side: Side::Buy,
            quantity: Quantity(10),
            filled_quantity: 0,
            filled_value: Decimal::ZERO,
        }
    }

    fn kite_state(status: &str, filled: u32, average: Decimal) -> Order {
        Order {
            order_id: KiteOrderId("250101000000001".into()),
            status: status.into(),
            filled_quantity: filled,
            average_price: average,
            quantity: 10,
            ..Order::default()
        }
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

    #[test]
    fn partial_fills_are_separate_fills_priced_from_the_average() {
        let signal = EventId::new_root();
        let mut t = trader();
        t.restore_open(vec![open_order(signal)]);
        let now = Timestamp::from_datetime(chrono::Utc::now());
        let first = t.apply(&kite_state("OPEN", 4, dec!(100)), now);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, Some(fill_event_id(signal, 4)));
        let OrderEvent::Filled(f) = &first[0].event else {
            panic!("expected a fill, got {:?}", first[0].event)
        };
        assert_eq!((f.quantity, f.fill_price), (Quantity(4), Price(dec!(100))));
        // The same state again (update and poll both seen) reports nothing new.
        assert!(t.apply(&kite_state("OPEN", 4, dec!(100)), now).is_empty());
        // 6 more at 101.5: average (400 + 609) / 10 = 100.9.
        let rest = t.apply(&kite_state("COMPLETE", 10, dec!(100.9)), now);
        assert_eq!(rest.len(), 1);
        let OrderEvent::Filled(f) = &rest[0].event else {
            panic!("expected a fill, got {:?}", rest[0].event)
        };
        assert_eq!(
            (f.quantity, f.fill_price),
            (Quantity(6), Price(dec!(101.5)))
        );
        assert_eq!(rest[0].id, Some(fill_event_id(signal, 10)));
        assert!(t.open_orders().is_empty());
    }

    #[test]
    fn cancelled_after_a_partial_fill_fails_the_rest_with_kites_message() {
        let signal = EventId::new_root();
        let mut t = trader();
        t.restore_open(vec![open_order(signal)]);
        let now = Timestamp::from_datetime(chrono::Utc::now());
        let mut state = kite_state("CANCELLED", 3, dec!(99.95));
        state.status_message = Some("Cancelled by user".into());
        let out = t.apply(&state, now);
        assert_eq!(out.len(), 2);
        let OrderEvent::Failed(f) = &out[1].event else {
            panic!("expected a failure, got {:?}", out[1].event)
        };
        assert_eq!(f.quantity, Quantity(7));
        assert!(f.reason.contains("Cancelled by user"), "{}", f.reason);
        assert_eq!(out[1].id, Some(failure_event_id(signal)));
        assert!(t.open_orders().is_empty());
    }

    #[test]
    fn kite_times_are_ist() {
        let naive = chrono::NaiveDate::from_ymd_opt(2025, 1, 6)
            .unwrap()
            .and_hms_opt(9, 15, 0)
            .unwrap();
        let t = kite_time(Some(naive)).unwrap();
        assert_eq!(t.as_datetime().to_rfc3339(), "2025-01-06T03:45:00+00:00");
    }
}
