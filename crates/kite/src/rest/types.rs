//! Kite Connect request and response types: sessions, profiles, orders, trades. Prices are exact
//! `Decimal`s parsed from Kite's JSON numbers through their text, never through `f64`.

use std::fmt;
use std::str::FromStr;

use alpha_panda_core::{OrderType, Price, Quantity, Side};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Kite's order id (a numeric string such as `151220000000000`), distinct from Alpha Panda's
/// own `OrderId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct KiteOrderId(pub String);

impl KiteOrderId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KiteOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a Kite number (JSON number, numeric string, or null → 0) into an exact decimal.
pub(crate) fn decimal_from_value(value: &Value) -> Result<Decimal, String> {
    match value {
        Value::Null => Ok(Decimal::ZERO),
        Value::Number(n) => parse_decimal_text(&n.to_string()),
        Value::String(s) if s.trim().is_empty() => Ok(Decimal::ZERO),
        Value::String(s) => parse_decimal_text(s.trim()),
        other => Err(format!("expected a number, got {other}")),
    }
}

/// Parses decimal text, accepting scientific notation (`1e-05`).
pub(crate) fn parse_decimal_text(text: &str) -> Result<Decimal, String> {
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| format!("{text:?} is not a decimal number: {e}"))
}

fn kite_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let value = Value::deserialize(d)?;
    decimal_from_value(&value).map_err(serde::de::Error::custom)
}

/// Parses `yyyy-mm-dd hh:mm:ss` (IST wall time); anything else (null, time-only) is `None`.
fn kite_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.and_then(|s| NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The result of `POST /session/token`. `Debug` hides the tokens.
#[derive(Clone, Deserialize)]
pub struct Session {
    /// Kite user id (`AB1234`).
    pub user_id: String,
    /// Full name.
    #[serde(default)]
    pub user_name: String,
    /// Short name.
    #[serde(default)]
    pub user_shortname: String,
    /// E-mail.
    #[serde(default)]
    pub email: String,
    /// `individual`, …
    #[serde(default)]
    pub user_type: String,
    /// `ZERODHA`.
    #[serde(default)]
    pub broker: String,
    /// Enabled exchanges.
    #[serde(default, deserialize_with = "null_as_default")]
    pub exchanges: Vec<String>,
    /// Enabled products.
    #[serde(default, deserialize_with = "null_as_default")]
    pub products: Vec<String>,
    /// Enabled order types.
    #[serde(default, deserialize_with = "null_as_default")]
    pub order_types: Vec<String>,
    /// The app's api_key.
    #[serde(default)]
    pub api_key: String,
    /// The access token for `Authorization` and the ticker (valid until 06:00 IST next day).
    pub access_token: String,
    /// Public token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub public_token: String,
    /// Refresh token (empty for most apps).
    #[serde(default, deserialize_with = "null_as_default")]
    pub refresh_token: String,
    /// Login time, IST wall clock.
    #[serde(default, deserialize_with = "kite_time")]
    pub login_time: Option<NaiveDateTime>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("broker", &self.broker)
            .field("api_key", &self.api_key)
            .field("access_token", &"<redacted>")
            .field("login_time", &self.login_time)
            .finish_non_exhaustive()
    }
}

/// `GET /user/profile`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserProfile {
    /// Kite user id.
    pub user_id: String,
    /// `individual`, …
    #[serde(default)]
    pub user_type: String,
    /// E-mail.
    #[serde(default)]
    pub email: String,
    /// Full name.
    #[serde(default)]
    pub user_name: String,
    /// Short name.
    #[serde(default)]
    pub user_shortname: String,
    /// `ZERODHA`.
    #[serde(default)]
    pub broker: String,
    /// Enabled exchanges.
    #[serde(default, deserialize_with = "null_as_default")]
    pub exchanges: Vec<String>,
    /// Enabled products.
    #[serde(default, deserialize_with = "null_as_default")]
    pub products: Vec<String>,
    /// Enabled order types.
    #[serde(default, deserialize_with = "null_as_default")]
    pub order_types: Vec<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// One state of an order, from `GET /orders` or `GET /orders/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct Order {
    /// Kite's order id.
    pub order_id: KiteOrderId,
    /// The exchange's order id (null until the exchange has it).
    pub exchange_order_id: Option<String>,
    /// Parent order (cover / bracket legs).
    pub parent_order_id: Option<String>,
    /// Who placed it.
    pub placed_by: Option<String>,
    /// Status: `OPEN`, `COMPLETE`, `CANCELLED`, `REJECTED`, or a transient state (open set).
    pub status: String,
    /// Why it was rejected or cancelled.
    pub status_message: Option<String>,
    /// Raw OMS message.
    pub status_message_raw: Option<String>,
    /// When the order was placed (IST).
    #[serde(deserialize_with = "kite_time")]
    pub order_timestamp: Option<NaiveDateTime>,
    /// Last update from the exchange (IST).
    #[serde(deserialize_with = "kite_time")]
    pub exchange_update_timestamp: Option<NaiveDateTime>,
    /// Exchange acceptance time (IST).
    #[serde(deserialize_with = "kite_time")]
    pub exchange_timestamp: Option<NaiveDateTime>,
    /// `regular`, `amo`, `co`, `iceberg`, `auction`.
    #[serde(deserialize_with = "null_as_default")]
    pub variety: String,
    /// Whether it was modified.
    #[serde(deserialize_with = "null_as_default")]
    pub modified: bool,
    /// Exchange.
    #[serde(deserialize_with = "null_as_default")]
    pub exchange: String,
    /// Trading symbol.
    #[serde(deserialize_with = "null_as_default")]
    pub tradingsymbol: String,
    /// Instrument token.
    #[serde(deserialize_with = "null_as_default")]
    pub instrument_token: u32,
    /// `MARKET`, `LIMIT`, `SL`, `SL-M`.
    #[serde(deserialize_with = "null_as_default")]
    pub order_type: String,
    /// `BUY` or `SELL`.
    #[serde(deserialize_with = "null_as_default")]
    pub transaction_type: String,
    /// `DAY`, `IOC`, `TTL`.
    pub validity: Option<String>,
    /// `CNC`, `NRML`, `MIS`, `MTF`.
    #[serde(deserialize_with = "null_as_default")]
    pub product: String,
    /// Ordered quantity.
    #[serde(deserialize_with = "null_as_default")]
    pub quantity: u32,
    /// Disclosed quantity.
    #[serde(deserialize_with = "null_as_default")]
    pub disclosed_quantity: u32,
    /// Limit price (0 for MARKET).
    #[serde(deserialize_with = "kite_decimal")]
    pub price: Decimal,
    /// Trigger price (SL orders).
    #[serde(deserialize_with = "kite_decimal")]
    pub trigger_price: Decimal,
    /// Average fill price (0 until filled).
    #[serde(deserialize_with = "kite_decimal")]
    pub average_price: Decimal,
    /// Filled quantity.
    #[serde(deserialize_with = "null_as_default")]
    pub filled_quantity: u32,
    /// Quantity still pending.
    #[serde(deserialize_with = "null_as_default")]
    pub pending_quantity: u32,
    /// Cancelled quantity.
    #[serde(deserialize_with = "null_as_default")]
    pub cancelled_quantity: u32,
    /// The tag given at placement.
    pub tag: Option<String>,
    /// All tags.
    #[serde(deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Kite's guid.
    pub guid: Option<String>,
}

/// An order's status as Kite reports it (reference §2.3). Kite's set is open: any other value is
/// a transient state, kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KiteOrderStatus {
    /// Working at the exchange.
    Open,
    /// A stop-loss order waiting for its trigger.
    TriggerPending,
    /// Filled completely.
    Complete,
    /// Cancelled (by the user, or by Kite); what filled stays filled.
    Cancelled,
    /// Refused by Kite's risk checks or the exchange.
    Rejected,
    /// On its way (`PUT ORDER REQ RECEIVED`, `VALIDATION PENDING`, `MODIFY PENDING`, …).
    Transient(String),
}

impl KiteOrderStatus {
    /// The status of Kite's text.
    pub fn parse(status: &str) -> KiteOrderStatus {
        match status {
            "OPEN" => KiteOrderStatus::Open,
            "TRIGGER PENDING" => KiteOrderStatus::TriggerPending,
            "COMPLETE" => KiteOrderStatus::Complete,
            "CANCELLED" => KiteOrderStatus::Cancelled,
            "REJECTED" => KiteOrderStatus::Rejected,
            other => KiteOrderStatus::Transient(other.to_string()),
        }
    }

    /// Whether it is final.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            KiteOrderStatus::Complete | KiteOrderStatus::Cancelled | KiteOrderStatus::Rejected
        )
    }

    /// Whether it ended with units unfilled for a reason the order's owner must hear.
    pub fn is_failure(&self) -> bool {
        matches!(self, KiteOrderStatus::Cancelled | KiteOrderStatus::Rejected)
    }
}

impl Order {
    /// The status, typed.
    pub fn state(&self) -> KiteOrderStatus {
        KiteOrderStatus::parse(&self.status)
    }

    /// Whether the order is filled completely.
    pub fn is_complete(&self) -> bool {
        self.state() == KiteOrderStatus::Complete
    }

    /// Whether the order reached a final state (`COMPLETE`, `CANCELLED`, `REJECTED`).
    pub fn is_terminal(&self) -> bool {
        self.state().is_terminal()
    }

    /// Rank for choosing the latest state among snapshots whose order is not guaranteed
    /// (reference §2.3): terminal beats open beats transient.
    pub(crate) fn status_rank(&self) -> u8 {
        match self.state() {
            status if status.is_terminal() => 3,
            KiteOrderStatus::Open | KiteOrderStatus::TriggerPending => 2,
            _ => 1,
        }
    }
}

/// One fill, from `GET /trades` or `GET /orders/{id}/trades`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct Trade {
    /// Exchange trade id.
    #[serde(deserialize_with = "null_as_default")]
    pub trade_id: String,
    /// Kite order id.
    pub order_id: KiteOrderId,
    /// Exchange.
    #[serde(deserialize_with = "null_as_default")]
    pub exchange: String,
    /// Trading symbol.
    #[serde(deserialize_with = "null_as_default")]
    pub tradingsymbol: String,
    /// Instrument token.
    #[serde(deserialize_with = "null_as_default")]
    pub instrument_token: u32,
    /// Product.
    #[serde(deserialize_with = "null_as_default")]
    pub product: String,
    /// Fill price.
    #[serde(deserialize_with = "kite_decimal")]
    pub average_price: Decimal,
    /// Filled quantity.
    #[serde(deserialize_with = "null_as_default")]
    pub quantity: u32,
    /// Exchange order id.
    pub exchange_order_id: Option<String>,
    /// `BUY` or `SELL`.
    #[serde(deserialize_with = "null_as_default")]
    pub transaction_type: String,
    /// Fill time (IST).
    #[serde(deserialize_with = "kite_time")]
    pub fill_timestamp: Option<NaiveDateTime>,
    /// Order time as sent (often time-only, e.g. `09:16:39`).
    pub order_timestamp: Option<String>,
    /// Exchange time (IST).
    #[serde(deserialize_with = "kite_time")]
    pub exchange_timestamp: Option<NaiveDateTime>,
}

/// One position, from `GET /portfolio/positions` (`net`: the position as it stands, `day`: today's
/// part of it). Only the fields reconciliation reads are typed; quantities are signed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct Position {
    /// Trading symbol.
    #[serde(deserialize_with = "null_as_default")]
    pub tradingsymbol: String,
    /// Exchange.
    #[serde(deserialize_with = "null_as_default")]
    pub exchange: String,
    /// Instrument token.
    #[serde(deserialize_with = "null_as_default")]
    pub instrument_token: u32,
    /// Product (`MIS`, `CNC`, `NRML`).
    #[serde(deserialize_with = "null_as_default")]
    pub product: String,
    /// Net quantity: positive long, negative short.
    #[serde(deserialize_with = "null_as_default")]
    pub quantity: i64,
    /// Average price of the net position.
    #[serde(deserialize_with = "kite_decimal")]
    pub average_price: Decimal,
    /// Units bought.
    #[serde(deserialize_with = "null_as_default")]
    pub buy_quantity: i64,
    /// Units sold.
    #[serde(deserialize_with = "null_as_default")]
    pub sell_quantity: i64,
}

/// `GET /portfolio/positions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct Positions {
    /// Positions as they stand (carried over and today's).
    #[serde(deserialize_with = "null_as_default")]
    pub net: Vec<Position>,
    /// Today's trading.
    #[serde(deserialize_with = "null_as_default")]
    pub day: Vec<Position>,
}

/// Order variety: the path segment of `POST /orders/{variety}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Variety {
    /// A normal order.
    #[default]
    Regular,
    /// After-market order.
    Amo,
    /// Cover order.
    Co,
    /// Iceberg order.
    Iceberg,
    /// Auction order.
    Auction,
}

impl Variety {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Variety::Regular => "regular",
            Variety::Amo => "amo",
            Variety::Co => "co",
            Variety::Iceberg => "iceberg",
            Variety::Auction => "auction",
        }
    }
}

/// Kite's order types (`order_type` of a placement or modification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KiteOrderType {
    /// At the market, within the order's market protection.
    #[serde(rename = "MARKET")]
    Market,
    /// At `price` or better.
    #[serde(rename = "LIMIT")]
    Limit,
    /// Stop-loss: a LIMIT at `price` once the market touches `trigger_price`.
    #[serde(rename = "SL")]
    StopLoss,
    /// Stop-loss market: a MARKET (within its protection) once the market touches
    /// `trigger_price`.
    #[serde(rename = "SL-M")]
    StopLossMarket,
}

impl KiteOrderType {
    /// Kite's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KiteOrderType::Market => "MARKET",
            KiteOrderType::Limit => "LIMIT",
            KiteOrderType::StopLoss => "SL",
            KiteOrderType::StopLossMarket => "SL-M",
        }
    }

    /// Whether the exchange requires `market_protection` on it (MARKET and SL-M, since April
    /// 2026).
    pub fn needs_market_protection(self) -> bool {
        matches!(self, KiteOrderType::Market | KiteOrderType::StopLossMarket)
    }
}

impl From<OrderType> for KiteOrderType {
    fn from(order_type: OrderType) -> Self {
        match order_type {
            OrderType::Market => KiteOrderType::Market,
            OrderType::Limit => KiteOrderType::Limit,
        }
    }
}

/// How far from the reference price a MARKET or SL-M order may fill: a percentage (above 0, at
/// most 100), or Kite's automatic band. An order that cannot fill inside its band rests at the
/// band's edge as a LIMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarketProtection {
    /// This percentage of the reference price.
    Percent(Decimal),
    /// Kite's automatic band (`-1` on the wire).
    Automatic,
}

impl MarketProtection {
    /// From the `zerodha.market_protection` setting: `-1` for automatic, or a percentage above
    /// 0 and at most 100.
    ///
    /// # Errors
    /// A sentence saying what the value must be (0, which Kite rejects, included).
    pub fn from_setting(value: Decimal) -> Result<MarketProtection, String> {
        if value == Decimal::NEGATIVE_ONE {
            return Ok(MarketProtection::Automatic);
        }
        if value > Decimal::ZERO && value <= Decimal::ONE_HUNDRED {
            return Ok(MarketProtection::Percent(value.normalize()));
        }
        Err(format!(
            "{value} is not a market protection: use a percentage above 0 and at most 100 \
             (e.g. 2.5), or -1 for Kite's automatic band; Kite rejects MARKET and SL-M orders \
             without one (0 included)"
        ))
    }

    /// The form value Kite expects.
    pub fn form_value(self) -> String {
        match self {
            MarketProtection::Percent(p) => p.normalize().to_string(),
            MarketProtection::Automatic => "-1".into(),
        }
    }
}

/// What to place with `KiteClient::place_order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderParams {
    /// Variety (default `regular`).
    pub variety: Variety,
    /// Exchange (`NSE`, `BSE`, `NFO`, …).
    pub exchange: String,
    /// Trading symbol.
    pub tradingsymbol: String,
    /// BUY or SELL.
    pub transaction_type: Side,
    /// Quantity in units (a multiple of the lot size for derivatives).
    pub quantity: Quantity,
    /// Product; `None` uses the configured default (MIS).
    pub product: Option<String>,
    /// MARKET, LIMIT, SL or SL-M.
    pub order_type: KiteOrderType,
    /// Limit price (LIMIT and SL).
    pub price: Option<Price>,
    /// Trigger price (SL and SL-M).
    pub trigger_price: Option<Price>,
    /// Required on MARKET and SL-M orders.
    pub market_protection: Option<MarketProtection>,
    /// Validity (default `DAY`).
    pub validity: String,
    /// Alphanumeric tag, at most 20 characters; used to find the order again after a timeout.
    pub tag: Option<String>,
    /// Asks Kite to slice an order above the instrument's freeze quantity into several orders
    /// (at most [`MAX_AUTOSLICES`]); see `KiteClient::place_autoslice_order`.
    pub autoslice: bool,
}

/// The most orders Kite slices one autoslice order into (reference §2.3).
pub const MAX_AUTOSLICES: u32 = 10;

impl OrderParams {
    /// A regular DAY MARKET order with the default product (give it a market protection).
    pub fn market(
        exchange: impl Into<String>,
        tradingsymbol: impl Into<String>,
        transaction_type: Side,
        quantity: Quantity,
    ) -> OrderParams {
        OrderParams {
            variety: Variety::Regular,
            exchange: exchange.into(),
            tradingsymbol: tradingsymbol.into(),
            transaction_type,
            quantity,
            product: None,
            order_type: KiteOrderType::Market,
            price: None,
            trigger_price: None,
            market_protection: None,
            validity: "DAY".into(),
            tag: None,
            autoslice: false,
        }
    }

    /// A regular DAY LIMIT order with the default product.
    pub fn limit(
        exchange: impl Into<String>,
        tradingsymbol: impl Into<String>,
        transaction_type: Side,
        quantity: Quantity,
        price: Price,
    ) -> OrderParams {
        OrderParams {
            order_type: KiteOrderType::Limit,
            price: Some(price),
            ..OrderParams::market(exchange, tradingsymbol, transaction_type, quantity)
        }
    }

    /// A regular DAY SL order: a LIMIT at `price` once the market touches `trigger_price`.
    pub fn stop_loss(
        exchange: impl Into<String>,
        tradingsymbol: impl Into<String>,
        transaction_type: Side,
        quantity: Quantity,
        price: Price,
        trigger_price: Price,
    ) -> OrderParams {
        OrderParams {
            order_type: KiteOrderType::StopLoss,
            price: Some(price),
            trigger_price: Some(trigger_price),
            ..OrderParams::market(exchange, tradingsymbol, transaction_type, quantity)
        }
    }

    /// A regular DAY SL-M order: a MARKET once the market touches `trigger_price` (give it a
    /// market protection).
    pub fn stop_loss_market(
        exchange: impl Into<String>,
        tradingsymbol: impl Into<String>,
        transaction_type: Side,
        quantity: Quantity,
        trigger_price: Price,
    ) -> OrderParams {
        OrderParams {
            order_type: KiteOrderType::StopLossMarket,
            trigger_price: Some(trigger_price),
            ..OrderParams::market(exchange, tradingsymbol, transaction_type, quantity)
        }
    }

    /// Sets the tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> OrderParams {
        self.tag = Some(tag.into());
        self
    }

    /// Sets the product.
    pub fn with_product(mut self, product: impl Into<String>) -> OrderParams {
        self.product = Some(product.into());
        self
    }

    /// Asks Kite to slice the order at the instrument's freeze quantity.
    pub fn with_autoslice(mut self) -> OrderParams {
        self.autoslice = true;
        self
    }

    /// Sets the market protection (used by MARKET and SL-M orders, ignored by the others).
    pub fn with_market_protection(mut self, protection: MarketProtection) -> OrderParams {
        self.market_protection = Some(protection);
        self
    }

    /// Checks the order before it leaves the process: what Kite would reject is refused here,
    /// with the reason.
    ///
    /// # Errors
    /// A description of the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        if self.exchange.trim().is_empty() || self.tradingsymbol.trim().is_empty() {
            return Err("exchange and tradingsymbol are required".into());
        }
        if self.quantity.0 == 0 {
            return Err("quantity must be positive".into());
        }
        let positive = |name: &str, p: Option<Price>| match p {
            None => Err(format!(
                "a {} order needs a {name}",
                self.order_type.as_str()
            )),
            Some(p) if p.0 <= Decimal::ZERO => Err(format!("{name} {p} must be positive")),
            Some(_) => Ok(()),
        };
        let absent = |name: &str, p: Option<Price>| match p {
            Some(_) => Err(format!(
                "a {} order takes no {name}",
                self.order_type.as_str()
            )),
            None => Ok(()),
        };
        match self.order_type {
            KiteOrderType::Market => {
                absent("price", self.price)?;
                absent("trigger price", self.trigger_price)?;
            }
            KiteOrderType::Limit => {
                positive("price", self.price)?;
                absent("trigger price", self.trigger_price)?;
            }
            KiteOrderType::StopLoss => {
                positive("price", self.price)?;
                positive("trigger price", self.trigger_price)?;
            }
            KiteOrderType::StopLossMarket => {
                absent("price", self.price)?;
                positive("trigger price", self.trigger_price)?;
            }
        }
        if self.order_type.needs_market_protection() && self.market_protection.is_none() {
            return Err(format!(
                "a {} order needs a market protection (zerodha.market_protection): Kite rejects \
                 it without one",
                self.order_type.as_str()
            ));
        }
        if let Some(tag) = &self.tag {
            if tag.is_empty() || tag.len() > 20 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "tag {tag:?} must be 1 to 20 ASCII letters or digits"
                ));
            }
        }
        Ok(())
    }

    /// The form fields, in Kite's names; `None` values are left out as the official client does.
    pub fn form_fields(&self, default_product: &str) -> Vec<(&'static str, String)> {
        let side = match self.transaction_type {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let mut fields = vec![
            ("exchange", self.exchange.clone()),
            ("tradingsymbol", self.tradingsymbol.clone()),
            ("transaction_type", side.to_string()),
            ("quantity", self.quantity.0.to_string()),
            (
                "product",
                self.product
                    .clone()
                    .unwrap_or_else(|| default_product.to_string()),
            ),
            ("order_type", self.order_type.as_str().to_string()),
            ("validity", self.validity.clone()),
        ];
        if let Some(price) = self.price {
            fields.push(("price", price.0.to_string()));
        }
        if let Some(trigger) = self.trigger_price {
            fields.push(("trigger_price", trigger.0.to_string()));
        }
        if let Some(protection) = self
            .market_protection
            .filter(|_| self.order_type.needs_market_protection())
        {
            fields.push(("market_protection", protection.form_value()));
        }
        if let Some(tag) = &self.tag {
            fields.push(("tag", tag.clone()));
        }
        if self.autoslice {
            fields.push(("autoslice", "true".to_string()));
        }
        fields
    }
}

/// What to change with `KiteClient::modify_order` (`PUT /orders/{variety}/{order_id}`); `None`
/// leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModifyParams {
    /// A new order type.
    pub order_type: Option<KiteOrderType>,
    /// A new total quantity.
    pub quantity: Option<Quantity>,
    /// A new limit price.
    pub price: Option<Price>,
    /// A new trigger price.
    pub trigger_price: Option<Price>,
    /// The market protection, when the new type needs one.
    pub market_protection: Option<MarketProtection>,
}

impl ModifyParams {
    /// The form fields, in Kite's names.
    pub fn form_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        if let Some(order_type) = self.order_type {
            fields.push(("order_type", order_type.as_str().to_string()));
        }
        if let Some(quantity) = self.quantity {
            fields.push(("quantity", quantity.0.to_string()));
        }
        if let Some(price) = self.price {
            fields.push(("price", price.0.to_string()));
        }
        if let Some(trigger) = self.trigger_price {
            fields.push(("trigger_price", trigger.0.to_string()));
        }
        if let Some(protection) = self.market_protection {
            fields.push(("market_protection", protection.form_value()));
        }
        fields
    }
}

/// A price as the JSON number Kite's JSON endpoints take (prices have at most two decimals, which
/// an `f64` carries exactly enough for its shortest text to be the price).
fn json_number<S: serde::Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    use rust_decimal::prelude::ToPrimitive;
    let number = value
        .to_f64()
        .ok_or_else(|| serde::ser::Error::custom(format!("{value} is not a JSON number")))?;
    s.serialize_f64(number)
}

/// One slice of an autoslice order as Kite answered it: placed, with its order id, or refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AutosliceChild {
    /// The slice's order id, when it was placed.
    #[serde(default)]
    pub order_id: Option<KiteOrderId>,
    /// Why the slice was not placed.
    #[serde(default)]
    pub error: Option<AutosliceError>,
}

/// Kite's error for one slice that was not placed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AutosliceError {
    /// HTTP-like code.
    #[serde(default)]
    pub code: u16,
    /// Kite's error type (`InputException`, `MarginException`, …).
    #[serde(default)]
    pub error_type: String,
    /// Kite's message.
    #[serde(default)]
    pub message: String,
}

/// The answer to an autoslice placement: the parent order id and one result per slice.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AutoslicePlacement {
    /// The parent order id.
    pub order_id: KiteOrderId,
    /// The slices, placed or refused, in order.
    #[serde(default)]
    pub children: Vec<AutosliceChild>,
}

impl AutoslicePlacement {
    /// The order ids of the slices Kite placed (the parent alone when it sliced nothing).
    pub fn placed(&self) -> Vec<KiteOrderId> {
        let placed: Vec<KiteOrderId> = self
            .children
            .iter()
            .filter_map(|c| c.order_id.clone())
            .collect();
        if placed.is_empty() && self.children.is_empty() {
            vec![self.order_id.clone()]
        } else {
            placed
        }
    }
}

/// One executed order to price with Kite's virtual contract note (`POST /charges/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractNoteOrder {
    /// Kite's order id.
    pub order_id: String,
    /// Exchange.
    pub exchange: String,
    /// Trading symbol.
    pub tradingsymbol: String,
    /// `BUY` or `SELL`.
    pub transaction_type: String,
    /// Variety (`regular`).
    pub variety: String,
    /// Product (`MIS`, `CNC`, `NRML`).
    pub product: String,
    /// Order type as placed.
    pub order_type: String,
    /// Units executed.
    pub quantity: u32,
    /// Average price of the units executed.
    #[serde(serialize_with = "json_number")]
    pub average_price: Decimal,
}

/// Kite's itemised charges of one order, as its virtual contract note gives them (amounts are
/// unrounded; `exchange_turnover_charge` includes IPFT).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct OrderCharges {
    /// STT (or CTT on commodities).
    #[serde(deserialize_with = "kite_decimal")]
    pub transaction_tax: Decimal,
    /// `stt` or `ctt`.
    pub transaction_tax_type: String,
    /// Exchange transaction charge plus IPFT.
    #[serde(deserialize_with = "kite_decimal")]
    pub exchange_turnover_charge: Decimal,
    /// SEBI turnover fee.
    #[serde(deserialize_with = "kite_decimal")]
    pub sebi_turnover_charge: Decimal,
    /// Brokerage.
    #[serde(deserialize_with = "kite_decimal")]
    pub brokerage: Decimal,
    /// Stamp duty.
    #[serde(deserialize_with = "kite_decimal")]
    pub stamp_duty: Decimal,
    /// GST, by kind.
    pub gst: ContractNoteGst,
    /// Sum of the above.
    #[serde(deserialize_with = "kite_decimal")]
    pub total: Decimal,
}

/// GST on a contract note.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default)]
pub struct ContractNoteGst {
    /// Integrated GST.
    #[serde(deserialize_with = "kite_decimal")]
    pub igst: Decimal,
    /// Central GST.
    #[serde(deserialize_with = "kite_decimal")]
    pub cgst: Decimal,
    /// State GST.
    #[serde(deserialize_with = "kite_decimal")]
    pub sgst: Decimal,
    /// All GST.
    #[serde(deserialize_with = "kite_decimal")]
    pub total: Decimal,
}

/// One order of a virtual contract note as Kite answered it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContractNoteEntry {
    /// `BUY` or `SELL`.
    #[serde(default)]
    pub transaction_type: String,
    /// Trading symbol.
    #[serde(default)]
    pub tradingsymbol: String,
    /// Exchange.
    #[serde(default)]
    pub exchange: String,
    /// Product.
    #[serde(default)]
    pub product: String,
    /// Units.
    #[serde(default)]
    pub quantity: u32,
    /// The order's charges.
    pub charges: OrderCharges,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn kite_numbers_become_exact_decimals() {
        let v: Value = serde_json::from_str("[109.4, 72.755, 0, null, \"12.30\", 1e-05]").unwrap();
        let parsed: Vec<Decimal> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| decimal_from_value(x).unwrap())
            .collect();
        assert_eq!(
            parsed,
            vec![
                dec!(109.4),
                dec!(72.755),
                dec!(0),
                dec!(0),
                dec!(12.30),
                dec!(0.00001)
            ]
        );
    }

    #[test]
    fn order_params_validation() {
        let ok = OrderParams::limit("NSE", "INFY", Side::Buy, Quantity(1), Price(dec!(1500)))
            .with_tag("sig123");
        assert_eq!(ok.validate(), Ok(()));
        let fields = ok.form_fields("MIS");
        assert!(fields.contains(&("product", "MIS".to_string())));
        assert!(fields.contains(&("price", "1500".to_string())));
        let mut no_price = ok.clone();
        no_price.price = None;
        assert!(no_price.validate().is_err());
        assert!(ok.clone().with_tag("has space").validate().is_err());
        assert!(ok.clone().with_tag("a".repeat(21)).validate().is_err());
        let mut zero = OrderParams::market("NSE", "INFY", Side::Sell, Quantity(0))
            .with_market_protection(MarketProtection::Automatic);
        assert!(zero.validate().is_err());
        zero.quantity = Quantity(2);
        assert_eq!(zero.validate(), Ok(()));
    }

    #[test]
    fn market_and_sl_m_orders_carry_market_protection() {
        let bare = OrderParams::market("NSE", "INFY", Side::Buy, Quantity(1));
        let err = bare.validate().unwrap_err();
        assert!(err.contains("zerodha.market_protection"), "{err}");
        let protected = bare.with_market_protection(MarketProtection::Percent(dec!(2.5)));
        assert_eq!(protected.validate(), Ok(()));
        assert!(protected
            .form_fields("MIS")
            .contains(&("market_protection", "2.5".to_string())));
        let slm = OrderParams::stop_loss_market(
            "NSE",
            "INFY",
            Side::Sell,
            Quantity(1),
            Price(dec!(1490)),
        )
        .with_market_protection(MarketProtection::Automatic);
        assert_eq!(slm.validate(), Ok(()));
        let fields = slm.form_fields("MIS");
        assert!(fields.contains(&("order_type", "SL-M".to_string())));
        assert!(fields.contains(&("trigger_price", "1490".to_string())));
        assert!(fields.contains(&("market_protection", "-1".to_string())));
        // LIMIT and SL orders send none, even when one is set.
        let limit = OrderParams::limit("NSE", "INFY", Side::Buy, Quantity(1), Price(dec!(1500)))
            .with_market_protection(MarketProtection::Automatic);
        assert!(!limit
            .form_fields("MIS")
            .iter()
            .any(|(k, _)| *k == "market_protection"));
        let sl = OrderParams::stop_loss(
            "NSE",
            "INFY",
            Side::Sell,
            Quantity(1),
            Price(dec!(1489)),
            Price(dec!(1490)),
        );
        assert_eq!(sl.validate(), Ok(()));
        let mut no_trigger = sl.clone();
        no_trigger.trigger_price = None;
        assert!(no_trigger.validate().is_err());
    }

    #[test]
    fn kite_statuses_are_typed_and_the_set_stays_open() {
        assert_eq!(
            KiteOrderStatus::parse("COMPLETE"),
            KiteOrderStatus::Complete
        );
        assert_eq!(
            KiteOrderStatus::parse("TRIGGER PENDING"),
            KiteOrderStatus::TriggerPending
        );
        let transient = KiteOrderStatus::parse("MODIFY VALIDATION PENDING");
        assert_eq!(
            transient,
            KiteOrderStatus::Transient("MODIFY VALIDATION PENDING".into())
        );
        assert!(!transient.is_terminal());
        assert!(KiteOrderStatus::Rejected.is_terminal() && KiteOrderStatus::Rejected.is_failure());
        assert!(KiteOrderStatus::Complete.is_terminal() && !KiteOrderStatus::Complete.is_failure());
    }

    #[test]
    fn market_protection_setting_refuses_zero_and_out_of_range() {
        assert_eq!(
            MarketProtection::from_setting(dec!(-1)),
            Ok(MarketProtection::Automatic)
        );
        assert_eq!(
            MarketProtection::from_setting(dec!(2.50)),
            Ok(MarketProtection::Percent(dec!(2.5)))
        );
        for bad in [dec!(0), dec!(-2), dec!(100.5)] {
            assert!(MarketProtection::from_setting(bad).is_err(), "{bad}");
        }
    }
}
