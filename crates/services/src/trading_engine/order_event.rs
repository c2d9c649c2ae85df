//! The order lifecycle events a venue emits (`order_submitted`, `order_ack`, `order_filled`,
//! `order_failed`), and the builders both venues share, so an order's events say the same things
//! the same way on paper and on Zerodha.

use alpha_panda_core::{
    EventId, ExecutionMode, InstrumentToken, OrderAck, OrderFailed, OrderFilled, OrderId,
    OrderSubmitted, Quantity, Side, StrategyId, TradingSignal,
};

/// One event of an order's life; each variant carries the core payload of its event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// `order_submitted`.
    Submitted(OrderSubmitted),
    /// `order_ack`.
    Acknowledged(OrderAck),
    /// `order_filled`.
    Filled(OrderFilled),
    /// `order_failed`.
    Failed(OrderFailed),
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
    /// An event whose id the runtime derives from the input that caused it.
    pub fn derived(event: OrderEvent) -> Self {
        Self { event, id: None }
    }

    /// An event with a fixed id (one a timer emits, which has no input to derive it from).
    pub fn with_id(event: OrderEvent, id: EventId) -> Self {
        Self {
            event,
            id: Some(id),
        }
    }
}

/// What every event of one order names: the order, its strategy, instrument and side, and the
/// venue.
#[derive(Debug, Clone, Copy)]
pub struct OrderRef<'a> {
    /// Alpha Panda's order id.
    pub order_id: &'a OrderId,
    /// The strategy.
    pub strategy_id: &'a StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell.
    pub side: Side,
    /// Paper or Zerodha.
    pub execution_mode: ExecutionMode,
}

impl<'a> OrderRef<'a> {
    /// The order a signal becomes.
    pub fn of_signal(
        order_id: &'a OrderId,
        signal: &'a TradingSignal,
        execution_mode: ExecutionMode,
    ) -> Self {
        Self {
            order_id,
            strategy_id: &signal.strategy_id,
            instrument_token: signal.instrument_token,
            side: signal.side,
            execution_mode,
        }
    }

    /// `order_submitted` of the order `signal` (the validated signal event `signal_event_id`)
    /// becomes.
    pub fn submitted(&self, signal_event_id: EventId, signal: &TradingSignal) -> OrderEvent {
        OrderEvent::Submitted(OrderSubmitted {
            order_id: self.order_id.clone(),
            signal_event_id,
            strategy_id: self.strategy_id.clone(),
            instrument_token: self.instrument_token,
            side: self.side,
            quantity: signal.quantity,
            order_type: signal.order_type,
            limit_price: signal.limit_price,
            execution_mode: self.execution_mode,
        })
    }

    /// `order_ack`: the venue took the order, as `broker_order_id`.
    pub fn acknowledged(&self, broker_order_id: impl Into<String>) -> OrderEvent {
        OrderEvent::Acknowledged(OrderAck {
            order_id: self.order_id.clone(),
            broker_order_id: broker_order_id.into(),
            strategy_id: self.strategy_id.clone(),
            instrument_token: self.instrument_token,
            execution_mode: self.execution_mode,
        })
    }

    /// `order_failed`: `quantity` units of the order will not fill, for `reason`; `retryable`
    /// when the same order may succeed later (a strategy may send it again).
    pub fn failed(
        &self,
        broker_order_id: Option<String>,
        quantity: Quantity,
        reason: impl Into<String>,
        retryable: bool,
    ) -> OrderEvent {
        OrderEvent::Failed(OrderFailed {
            order_id: self.order_id.clone(),
            broker_order_id,
            strategy_id: self.strategy_id.clone(),
            instrument_token: self.instrument_token,
            side: self.side,
            quantity,
            reason: reason.into(),
            retryable,
            execution_mode: self.execution_mode,
        })
    }
}
