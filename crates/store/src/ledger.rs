//! The order and fill ledger per broker namespace, keyed by event id so a replayed event is a no-op.

use alpha_panda_core::{
    Broker, EventId, ExecutionMode, FeeBreakdown, InstrumentToken, Money, OrderAck, OrderFailed,
    OrderFilled, OrderId, OrderSubmitted, OrderType, PortfolioId, Price, Quantity, Side,
    StrategyId, Timestamp,
};

use crate::sql::{serde_enum_text, Param, Pool, Row, Tx};
use crate::StoreError;

/// Where an order stood when an event was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Sent to the trader (`order_submitted`).
    Submitted,
    /// Accepted by the venue (`order_ack`).
    Acknowledged,
    /// Failed or rejected (`order_failed`).
    Failed,
}

impl OrderStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Submitted => "submitted",
            OrderStatus::Acknowledged => "acknowledged",
            OrderStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "submitted" => Ok(OrderStatus::Submitted),
            "acknowledged" => Ok(OrderStatus::Acknowledged),
            "failed" => Ok(OrderStatus::Failed),
            other => Err(format!(
                "unknown order status {other:?}: expected submitted, acknowledged or failed"
            )),
        }
    }
}

/// One order-lifecycle event as the ledger keeps it. Build it with [`OrderRecord::submitted`],
/// [`OrderRecord::acknowledged`] or [`OrderRecord::failed`]; fields an event does not carry are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Which lifecycle event.
    pub status: OrderStatus,
    /// Alpha Panda's order id.
    pub order_id: OrderId,
    /// The strategy.
    pub strategy_id: StrategyId,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Buy or sell (not on an ack).
    pub side: Option<Side>,
    /// Units (not on an ack).
    pub quantity: Option<Quantity>,
    /// MARKET or LIMIT (submissions only).
    pub order_type: Option<OrderType>,
    /// Limit price of a LIMIT submission.
    pub limit_price: Option<Price>,
    /// The venue's order id when known.
    pub broker_order_id: Option<String>,
    /// Why it failed (failures only).
    pub reason: Option<String>,
    /// Whether a failure could succeed if retried (failures only).
    pub retryable: Option<bool>,
    /// Paper or Zerodha.
    pub execution_mode: ExecutionMode,
    /// The event's timestamp (envelope `ts`).
    pub recorded_at: Timestamp,
}

impl OrderRecord {
    /// From an `order_submitted` payload and its envelope timestamp.
    pub fn submitted(order: &OrderSubmitted, at: Timestamp) -> Self {
        Self {
            status: OrderStatus::Submitted,
            order_id: order.order_id.clone(),
            strategy_id: order.strategy_id.clone(),
            instrument_token: order.instrument_token,
            side: Some(order.side),
            quantity: Some(order.quantity),
            order_type: Some(order.order_type),
            limit_price: order.limit_price,
            broker_order_id: None,
            reason: None,
            retryable: None,
            execution_mode: order.execution_mode,
            recorded_at: at,
        }
    }

    /// From an `order_ack` payload and its envelope timestamp.
    pub fn acknowledged(ack: &OrderAck, at: Timestamp) -> Self {
        Self {
            status: OrderStatus::Acknowledged,
            order_id: ack.order_id.clone(),
            strategy_id: ack.strategy_id.clone(),
            instrument_token: ack.instrument_token,
            side: None,
            quantity: None,
            order_type: None,
            limit_price: None,
            broker_order_id: Some(ack.broker_order_id.clone()),
            reason: None,
            retryable: None,
            execution_mode: ack.execution_mode,
            recorded_at: at,
        }
    }

    /// From an `order_failed` payload and its envelope timestamp.
    pub fn failed(failure: &OrderFailed, at: Timestamp) -> Self {
        Self {
            status: OrderStatus::Failed,
            order_id: failure.order_id.clone(),
            strategy_id: failure.strategy_id.clone(),
            instrument_token: failure.instrument_token,
            side: Some(failure.side),
            quantity: Some(failure.quantity),
            order_type: None,
            limit_price: None,
            broker_order_id: failure.broker_order_id.clone(),
            reason: Some(failure.reason.clone()),
            retryable: Some(failure.retryable),
            execution_mode: failure.execution_mode,
            recorded_at: at,
        }
    }
}

/// An order event read back from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOrder {
    /// The event's id.
    pub event_id: EventId,
    /// The namespace.
    pub broker: Broker,
    /// What was recorded.
    pub record: OrderRecord,
}

/// A fill read back from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerFill {
    /// The `order_filled` event's id.
    pub event_id: EventId,
    /// The namespace.
    pub broker: Broker,
    /// `{broker}:{strategy_id}`.
    pub portfolio_id: PortfolioId,
    /// The fill, every field as received.
    pub fill: OrderFilled,
}

/// Read side of the ledger (writes go through [`crate::StoreTx`]).
#[derive(Debug, Clone, Copy)]
pub struct Ledger<'a> {
    pool: &'a Pool,
}

const ORDER_COLUMNS: &str = "event_id, broker, order_id, status, strategy_id, instrument_token, \
                             side, quantity, order_type, limit_price, broker_order_id, reason, \
                             retryable, execution_mode, recorded_at";

const FILL_COLUMNS: &str = "event_id, broker, portfolio_id, order_id, broker_order_id, \
                            strategy_id, instrument_token, tradingsymbol, side, quantity, \
                            fill_price, brokerage, stt, exchange_charges, sebi_charges, gst, \
                            stamp_duty, fees_total, execution_mode, filled_at, fees_source, dp_charges";

impl<'a> Ledger<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// The latest `limit` order events of `broker`, newest first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn orders(&self, broker: Broker, limit: u32) -> Result<Vec<LedgerOrder>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE broker = $1 ORDER BY seq DESC LIMIT $2"
        );
        self.pool
            .fetch_all(
                OP_ORDERS,
                &sql,
                &[
                    Param::Text(broker.as_str().to_owned()),
                    Param::Int(i64::from(limit)),
                ],
            )
            .await?
            .iter()
            .map(order_from_row)
            .collect()
    }

    /// Every recorded event of one order, oldest first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn order_history(
        &self,
        broker: Broker,
        order_id: &OrderId,
    ) -> Result<Vec<LedgerOrder>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE broker = $1 AND order_id = $2 ORDER BY seq"
        );
        self.pool
            .fetch_all(
                OP_ORDERS,
                &sql,
                &[
                    Param::Text(broker.as_str().to_owned()),
                    Param::Text(order_id.as_str().to_owned()),
                ],
            )
            .await?
            .iter()
            .map(order_from_row)
            .collect()
    }

    /// The latest `limit` fills of `broker`, newest first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn fills(&self, broker: Broker, limit: u32) -> Result<Vec<LedgerFill>, StoreError> {
        let sql = format!(
            "SELECT {FILL_COLUMNS} FROM fills WHERE broker = $1 ORDER BY seq DESC LIMIT $2"
        );
        self.pool
            .fetch_all(
                OP_FILLS,
                &sql,
                &[
                    Param::Text(broker.as_str().to_owned()),
                    Param::Int(i64::from(limit)),
                ],
            )
            .await?
            .iter()
            .map(fill_from_row)
            .collect()
    }

    /// The fill recorded under the `order_filled` event `event_id`, if any: how a stateful service
    /// tells a fill it applied before a restart from a new one, whatever its dedup cache forgot.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or the row is corrupt.
    pub async fn fill(&self, event_id: EventId) -> Result<Option<LedgerFill>, StoreError> {
        let sql = format!("SELECT {FILL_COLUMNS} FROM fills WHERE event_id = $1");
        self.pool
            .fetch_optional(OP_FILLS, &sql, &[Param::Text(event_id.to_string())])
            .await?
            .as_ref()
            .map(fill_from_row)
            .transpose()
    }

    /// The latest `limit` fills of one portfolio (`{broker}:{strategy_id}`), newest first.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read or a row is corrupt.
    pub async fn fills_for_portfolio(
        &self,
        portfolio_id: &PortfolioId,
        limit: u32,
    ) -> Result<Vec<LedgerFill>, StoreError> {
        let sql = format!(
            "SELECT {FILL_COLUMNS} FROM fills WHERE portfolio_id = $1 ORDER BY seq DESC LIMIT $2"
        );
        self.pool
            .fetch_all(
                OP_FILLS,
                &sql,
                &[
                    Param::Text(portfolio_id.as_str().to_owned()),
                    Param::Int(i64::from(limit)),
                ],
            )
            .await?
            .iter()
            .map(fill_from_row)
            .collect()
    }
}

const OP_ORDERS: &str = "read orders";
const OP_FILLS: &str = "read fills";

/// Records an order event; `false` when the event id is already there.
pub(crate) async fn insert_order(
    tx: &mut Tx,
    broker: Broker,
    event_id: EventId,
    order: &OrderRecord,
) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (event_id) DO NOTHING"
    );
    let params = [
        Param::Text(event_id.to_string()),
        Param::Text(broker.as_str().to_owned()),
        Param::Text(order.order_id.as_str().to_owned()),
        Param::Text(order.status.as_str().to_owned()),
        Param::Text(order.strategy_id.as_str().to_owned()),
        Param::Int(i64::from(order.instrument_token.0)),
        Param::OptText(order.side.map(|s| serde_enum_text(&s))),
        Param::OptInt(order.quantity.map(|q| q.as_i64())),
        Param::OptText(order.order_type.map(|t| serde_enum_text(&t))),
        Param::OptDecimal(order.limit_price.map(|p| p.0)),
        Param::OptText(order.broker_order_id.clone()),
        Param::OptText(order.reason.clone()),
        Param::OptBool(order.retryable),
        Param::Text(serde_enum_text(&order.execution_mode)),
        Param::Timestamp(order.recorded_at),
    ];
    Ok(tx.execute("record order", &sql, &params).await? > 0)
}

/// Records a fill; `false` when the event id is already there.
pub(crate) async fn insert_fill(
    tx: &mut Tx,
    broker: Broker,
    event_id: EventId,
    fill: &OrderFilled,
) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO fills ({FILL_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) \
         ON CONFLICT (event_id) DO NOTHING"
    );
    let fees = &fill.fees;
    let params = [
        Param::Text(event_id.to_string()),
        Param::Text(broker.as_str().to_owned()),
        Param::Text(PortfolioId::for_strategy(broker, &fill.strategy_id).to_string()),
        Param::Text(fill.order_id.as_str().to_owned()),
        Param::OptText(fill.broker_order_id.clone()),
        Param::Text(fill.strategy_id.as_str().to_owned()),
        Param::Int(i64::from(fill.instrument_token.0)),
        Param::OptText(fill.tradingsymbol.clone()),
        Param::Text(serde_enum_text(&fill.side)),
        Param::Int(fill.quantity.as_i64()),
        Param::Decimal(fill.fill_price.0),
        Param::Decimal(fees.brokerage.0),
        Param::Decimal(fees.stt.0),
        Param::Decimal(fees.exchange_charges.0),
        Param::Decimal(fees.sebi_charges.0),
        Param::Decimal(fees.gst.0),
        Param::Decimal(fees.stamp_duty.0),
        Param::Decimal(fees.total.0),
        Param::Text(serde_enum_text(&fill.execution_mode)),
        Param::Timestamp(fill.filled_at),
        Param::Text(serde_enum_text(&fill.fees_source)),
        Param::Decimal(fees.dp_charges.0),
    ];
    Ok(tx.execute("record fill", &sql, &params).await? > 0)
}

fn order_from_row(row: &Row) -> Result<LedgerOrder, StoreError> {
    const OP: &str = OP_ORDERS;
    Ok(LedgerOrder {
        event_id: row.parsed(OP, "event_id")?,
        broker: row.parsed(OP, "broker")?,
        record: OrderRecord {
            status: row.parsed(OP, "status")?,
            order_id: row.parsed(OP, "order_id")?,
            strategy_id: row.parsed(OP, "strategy_id")?,
            instrument_token: InstrumentToken(row.u32(OP, "instrument_token")?),
            side: row.opt_serde_enum(OP, "side")?,
            quantity: row.opt_u32(OP, "quantity")?.map(Quantity),
            order_type: row.opt_serde_enum(OP, "order_type")?,
            limit_price: row.opt_decimal(OP, "limit_price")?.map(Price),
            broker_order_id: row.opt_text(OP, "broker_order_id")?,
            reason: row.opt_text(OP, "reason")?,
            retryable: row.opt_bool(OP, "retryable")?,
            execution_mode: row.serde_enum(OP, "execution_mode")?,
            recorded_at: row.timestamp(OP, "recorded_at")?,
        },
    })
}

fn fill_from_row(row: &Row) -> Result<LedgerFill, StoreError> {
    const OP: &str = OP_FILLS;
    let money = |col| row.decimal(OP, col).map(Money);
    Ok(LedgerFill {
        event_id: row.parsed(OP, "event_id")?,
        broker: row.parsed(OP, "broker")?,
        portfolio_id: row.parsed(OP, "portfolio_id")?,
        fill: OrderFilled {
            order_id: row.parsed(OP, "order_id")?,
            broker_order_id: row.opt_text(OP, "broker_order_id")?,
            strategy_id: row.parsed(OP, "strategy_id")?,
            instrument_token: InstrumentToken(row.u32(OP, "instrument_token")?),
            tradingsymbol: row.opt_text(OP, "tradingsymbol")?,
            side: row.serde_enum(OP, "side")?,
            quantity: Quantity(row.u32(OP, "quantity")?),
            fill_price: Price(row.decimal(OP, "fill_price")?),
            fees_source: row.serde_enum(OP, "fees_source")?,
            fees: FeeBreakdown {
                brokerage: money("brokerage")?,
                stt: money("stt")?,
                exchange_charges: money("exchange_charges")?,
                sebi_charges: money("sebi_charges")?,
                gst: money("gst")?,
                stamp_duty: money("stamp_duty")?,
                dp_charges: money("dp_charges")?,
                total: money("fees_total")?,
            },
            execution_mode: row.serde_enum(OP, "execution_mode")?,
            filled_at: row.timestamp(OP, "filled_at")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_status_round_trips_through_text() {
        for status in [
            OrderStatus::Submitted,
            OrderStatus::Acknowledged,
            OrderStatus::Failed,
        ] {
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        assert!("filled".parse::<OrderStatus>().is_err());
        assert_eq!(serde_enum_text(&Side::Buy), "BUY");
        assert_eq!(serde_enum_text(&ExecutionMode::Zerodha), "zerodha");
    }
}
