//! A decoded KiteTicker packet: the five layouts, segments, price divisors, and conversions to JSON
//! (reference §1.8 names) and to the domain's `MarketTick`.

use std::fmt;
use std::sync::Arc;

use alpha_panda_core::{
    Clock, DepthLevel, InstrumentToken, MarketDepth, MarketTick, Ohlc, Price, SystemClock,
    Timestamp,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Streaming mode of a subscription (what the client asks for with `{"a":"mode"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TickMode {
    /// Last traded price only (8-byte packets).
    Ltp,
    /// Quote without depth (44 bytes; 28 for indices). Kite's default for a new subscription.
    Quote,
    /// Quote with OI, timestamps and five-level depth (184 bytes; 32 for indices).
    Full,
}

impl TickMode {
    /// The wire name (`ltp`, `quote`, `full`).
    pub fn as_str(self) -> &'static str {
        match self {
            TickMode::Ltp => "ltp",
            TickMode::Quote => "quote",
            TickMode::Full => "full",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<TickMode> {
        match name {
            "ltp" => Some(TickMode::Ltp),
            "quote" => Some(TickMode::Quote),
            "full" => Some(TickMode::Full),
            _ => None,
        }
    }
}

impl fmt::Display for TickMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the five binary layouts a packet used (dispatch is on packet length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// 8 bytes: token, last price.
    Ltp,
    /// 28 bytes: index token, last price, high, low, open, close, change.
    IndexQuote,
    /// 32 bytes: index quote plus exchange timestamp.
    IndexFull,
    /// 44 bytes: tradable quote.
    Quote,
    /// 184 bytes: tradable quote, OI, timestamps, 5 + 5 depth levels.
    Full,
}

impl PacketKind {
    /// Length of the packet on the wire, in bytes.
    pub fn wire_len(self) -> usize {
        match self {
            PacketKind::Ltp => 8,
            PacketKind::IndexQuote => 28,
            PacketKind::IndexFull => 32,
            PacketKind::Quote => 44,
            PacketKind::Full => 184,
        }
    }

    /// The layout with this wire length, if any.
    pub fn from_len(len: usize) -> Option<PacketKind> {
        match len {
            8 => Some(PacketKind::Ltp),
            28 => Some(PacketKind::IndexQuote),
            32 => Some(PacketKind::IndexFull),
            44 => Some(PacketKind::Quote),
            184 => Some(PacketKind::Full),
            _ => None,
        }
    }

    /// The streaming mode this layout belongs to.
    pub fn mode(self) -> TickMode {
        match self {
            PacketKind::Ltp => TickMode::Ltp,
            PacketKind::IndexQuote | PacketKind::Quote => TickMode::Quote,
            PacketKind::IndexFull | PacketKind::Full => TickMode::Full,
        }
    }

    /// The layout a token streams with in `mode` (indices use the short index layouts).
    pub fn for_mode(mode: TickMode, segment: Segment) -> PacketKind {
        match (mode, segment.is_index()) {
            (TickMode::Ltp, _) => PacketKind::Ltp,
            (TickMode::Quote, true) => PacketKind::IndexQuote,
            (TickMode::Full, true) => PacketKind::IndexFull,
            (TickMode::Quote, false) => PacketKind::Quote,
            (TickMode::Full, false) => PacketKind::Full,
        }
    }
}

/// The exchange segment encoded in the low byte of an instrument token (reference §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment(pub u8);

impl Segment {
    /// NSE cash.
    pub const NSE: Segment = Segment(1);
    /// NSE F&O.
    pub const NFO: Segment = Segment(2);
    /// NSE currency derivatives.
    pub const CDS: Segment = Segment(3);
    /// BSE cash.
    pub const BSE: Segment = Segment(4);
    /// BSE F&O.
    pub const BFO: Segment = Segment(5);
    /// BSE currency derivatives.
    pub const BCD: Segment = Segment(6);
    /// MCX commodities.
    pub const MCX: Segment = Segment(7);
    /// MCX-SX.
    pub const MCXSX: Segment = Segment(8);
    /// Indices (not tradable).
    pub const INDICES: Segment = Segment(9);
    /// NSE commodities.
    pub const NCO: Segment = Segment(12);

    /// The segment of a token: `token & 0xff`.
    pub fn of(token: u32) -> Segment {
        Segment((token & 0xff) as u8)
    }

    /// Whether this is the indices segment.
    pub fn is_index(self) -> bool {
        self == Segment::INDICES
    }

    /// Decimal places of prices on the wire: CDS ÷ 10^7, BCD and NCO ÷ 10^4, all others ÷ 100.
    pub fn price_scale(self) -> u32 {
        match self {
            Segment::CDS => 7,
            Segment::BCD | Segment::NCO => 4,
            _ => 2,
        }
    }

    /// The divisor applied to raw wire prices (10^`price_scale`).
    pub fn price_divisor(self) -> u32 {
        10u32.pow(self.price_scale())
    }

    /// Converts a raw wire price to rupees exactly (no floating point).
    pub fn price_from_raw(self, raw: u32) -> Price {
        Price(Decimal::new(i64::from(raw), self.price_scale()))
    }

    /// Converts rupees back to the raw wire integer; `None` when the price is negative, finer
    /// than the segment's precision, or beyond 32 bits.
    pub fn price_to_raw(self, price: Price) -> Option<u32> {
        let scaled = price.0.checked_mul(Decimal::from(self.price_divisor()))?;
        if !scaled.fract().is_zero() || scaled.is_sign_negative() {
            return None;
        }
        scaled.to_u32()
    }

    /// Short exchange name for known codes.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "NSE",
            2 => "NFO",
            3 => "CDS",
            4 => "BSE",
            5 => "BFO",
            6 => "BCD",
            7 => "MCX",
            8 => "MCXSX",
            9 => "INDICES",
            12 => "NCO",
            _ => return None,
        })
    }
}

/// One decoded ticker packet. Fields absent from the packet's layout are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickPacket {
    /// The binary layout this packet came in.
    pub kind: PacketKind,
    /// The instrument.
    pub instrument_token: InstrumentToken,
    /// Last traded price.
    pub last_price: Price,
    /// Quantity of the last trade (quote, full).
    pub last_traded_quantity: Option<u32>,
    /// Day's volume-weighted average price (quote, full).
    pub average_traded_price: Option<Price>,
    /// Day's volume (quote, full).
    pub volume_traded: Option<u32>,
    /// Total pending buy quantity (quote, full).
    pub total_buy_quantity: Option<u32>,
    /// Total pending sell quantity (quote, full).
    pub total_sell_quantity: Option<u32>,
    /// Day's open/high/low and previous close (every layout except LTP).
    pub ohlc: Option<Ohlc>,
    /// Bytes 24–28 of an index packet, raw (units UNCONFIRMED in the reference).
    pub index_change_raw: Option<i32>,
    /// Time of the last trade, Unix seconds (full).
    pub last_trade_time: Option<u32>,
    /// Open interest (full).
    pub oi: Option<u32>,
    /// Day's highest open interest (full).
    pub oi_day_high: Option<u32>,
    /// Day's lowest open interest (full).
    pub oi_day_low: Option<u32>,
    /// Exchange time of the quote, Unix seconds (full, index full).
    pub exchange_timestamp: Option<u32>,
    /// Five levels of bids and offers (full).
    pub depth: Option<MarketDepth>,
}

impl TickPacket {
    /// A last-price-only packet.
    pub fn ltp(instrument_token: InstrumentToken, last_price: Price) -> TickPacket {
        TickPacket {
            kind: PacketKind::Ltp,
            instrument_token,
            last_price,
            last_traded_quantity: None,
            average_traded_price: None,
            volume_traded: None,
            total_buy_quantity: None,
            total_sell_quantity: None,
            ohlc: None,
            index_change_raw: None,
            last_trade_time: None,
            oi: None,
            oi_day_high: None,
            oi_day_low: None,
            exchange_timestamp: None,
            depth: None,
        }
    }

    /// The segment of the instrument.
    pub fn segment(&self) -> Segment {
        Segment::of(self.instrument_token.0)
    }

    /// The streaming mode of the packet.
    pub fn mode(&self) -> TickMode {
        self.kind.mode()
    }

    /// Whether the instrument can be traded (everything but indices).
    pub fn tradable(&self) -> bool {
        !self.segment().is_index()
    }

    /// Percentage change of the last price against the previous close, `(last − close) × 100 /
    /// close` rounded to 4 places, or 0 when the close is 0. `None` without OHLC.
    pub fn change_percent(&self) -> Option<Decimal> {
        let close = self.ohlc?.close.0;
        if close.is_zero() {
            return Some(Decimal::ZERO);
        }
        let change = (self.last_price.0 - close) * Decimal::ONE_HUNDRED / close;
        Some(
            change
                .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
                .normalize(),
        )
    }

    /// The same market data re-shaped for another mode, as the exchange would send it to a
    /// subscriber in that mode: fields the target layout lacks are dropped, fields it has but
    /// this packet lacks are zero (Kite sends zeros for, e.g., OI of an equity).
    pub fn project(&self, mode: TickMode) -> TickPacket {
        let kind = PacketKind::for_mode(mode, self.segment());
        let zero = Price(Decimal::ZERO);
        let mut out = TickPacket::ltp(self.instrument_token, self.last_price);
        out.kind = kind;
        let ohlc = self.ohlc.unwrap_or(Ohlc {
            open: zero,
            high: zero,
            low: zero,
            close: zero,
        });
        match kind {
            PacketKind::Ltp => {}
            PacketKind::IndexQuote | PacketKind::IndexFull => {
                out.ohlc = Some(ohlc);
                out.index_change_raw = Some(self.index_change_raw.unwrap_or(0));
                if kind == PacketKind::IndexFull {
                    out.exchange_timestamp = Some(self.exchange_timestamp.unwrap_or(0));
                }
            }
            PacketKind::Quote | PacketKind::Full => {
                out.last_traded_quantity = Some(self.last_traded_quantity.unwrap_or(0));
                out.average_traded_price = Some(self.average_traded_price.unwrap_or(zero));
                out.volume_traded = Some(self.volume_traded.unwrap_or(0));
                out.total_buy_quantity = Some(self.total_buy_quantity.unwrap_or(0));
                out.total_sell_quantity = Some(self.total_sell_quantity.unwrap_or(0));
                out.ohlc = Some(ohlc);
                if kind == PacketKind::Full {
                    out.last_trade_time = Some(self.last_trade_time.unwrap_or(0));
                    out.oi = Some(self.oi.unwrap_or(0));
                    out.oi_day_high = Some(self.oi_day_high.unwrap_or(0));
                    out.oi_day_low = Some(self.oi_day_low.unwrap_or(0));
                    out.exchange_timestamp = Some(self.exchange_timestamp.unwrap_or(0));
                    let empty = || DepthLevel {
                        quantity: 0,
                        price: zero,
                        orders: 0,
                    };
                    out.depth = Some(self.depth.clone().unwrap_or_else(|| MarketDepth {
                        buy: vec![empty(); 5],
                        sell: vec![empty(); 5],
                    }));
                }
            }
        }
        out
    }

    /// The packet as JSON with the reference §1.8 field names; prices are decimal strings,
    /// quantities and Unix-second timestamps are numbers, `change` is a percentage string.
    pub fn to_json_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("instrument_token".into(), json!(self.instrument_token.0));
        map.insert("mode".into(), json!(self.mode().as_str()));
        map.insert("tradable".into(), json!(self.tradable()));
        map.insert("last_price".into(), json!(self.last_price.0.to_string()));
        let mut put_u32 = |name: &str, value: Option<u32>| {
            if let Some(v) = value {
                map.insert(name.into(), json!(v));
            }
        };
        put_u32("last_traded_quantity", self.last_traded_quantity);
        put_u32("volume_traded", self.volume_traded);
        put_u32("total_buy_quantity", self.total_buy_quantity);
        put_u32("total_sell_quantity", self.total_sell_quantity);
        put_u32("last_trade_time", self.last_trade_time);
        put_u32("oi", self.oi);
        put_u32("oi_day_high", self.oi_day_high);
        put_u32("oi_day_low", self.oi_day_low);
        put_u32("exchange_timestamp", self.exchange_timestamp);
        if let Some(atp) = self.average_traded_price {
            map.insert("average_traded_price".into(), json!(atp.0.to_string()));
        }
        if let Some(ohlc) = self.ohlc {
            map.insert(
                "ohlc".into(),
                json!({
                    "open": ohlc.open.0.to_string(),
                    "high": ohlc.high.0.to_string(),
                    "low": ohlc.low.0.to_string(),
                    "close": ohlc.close.0.to_string(),
                }),
            );
        }
        if let Some(change) = self.change_percent() {
            map.insert("change".into(), json!(change.to_string()));
        }
        if let Some(depth) = &self.depth {
            let side = |levels: &[DepthLevel]| -> Value {
                levels
                    .iter()
                    .map(|l| {
                        json!({
                            "quantity": l.quantity,
                            "price": l.price.0.to_string(),
                            "orders": l.orders,
                        })
                    })
                    .collect()
            };
            map.insert(
                "depth".into(),
                json!({ "buy": side(&depth.buy), "sell": side(&depth.sell) }),
            );
        }
        Value::Object(map)
    }

    /// The domain tick. Its `exchange_timestamp` is the packet's exchange timestamp when the
    /// layout carries one (full, index full) and the system clock's "now" otherwise; use
    /// [`TickPacket::to_market_tick_at`] to supply the receive time from an injected clock.
    pub fn to_market_tick(&self, tradingsymbol: Option<Arc<str>>) -> MarketTick {
        self.to_market_tick_at(tradingsymbol, SystemClock.now())
    }

    /// The domain tick, stamped with the packet's exchange timestamp when it has one and with
    /// `received_at` otherwise.
    pub fn to_market_tick_at(
        &self,
        tradingsymbol: Option<Arc<str>>,
        received_at: Timestamp,
    ) -> MarketTick {
        let exchange_timestamp = self
            .exchange_timestamp
            .and_then(|secs| Timestamp::from_unix_micros(i64::from(secs) * 1_000_000))
            .unwrap_or(received_at);
        MarketTick {
            instrument_token: self.instrument_token,
            tradingsymbol,
            last_price: self.last_price,
            last_traded_quantity: self.last_traded_quantity.unwrap_or(0),
            average_traded_price: self.average_traded_price,
            volume_traded: self.volume_traded.map(u64::from).unwrap_or(0),
            total_buy_quantity: self.total_buy_quantity.map(u64::from).unwrap_or(0),
            total_sell_quantity: self.total_sell_quantity.map(u64::from).unwrap_or(0),
            ohlc: self.ohlc,
            oi: self.oi.map(u64::from),
            exchange_timestamp,
            depth: self.depth.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn divisors_by_segment() {
        let cases = [
            (1u8, 100u32),
            (2, 100),
            (3, 10_000_000),
            (4, 100),
            (5, 100),
            (6, 10_000),
            (7, 100),
            (8, 100),
            (9, 100),
            (12, 10_000),
        ];
        for (code, divisor) in cases {
            assert_eq!(Segment(code).price_divisor(), divisor, "segment {code}");
        }
        assert_eq!(Segment::of(408065), Segment::NSE);
        assert_eq!(Segment::of(256265), Segment::INDICES);
        assert_eq!(Segment::of(5720322), Segment::NFO);
    }

    #[test]
    fn raw_prices_convert_exactly_both_ways() {
        assert_eq!(Segment::NSE.price_from_raw(157370), Price(dec!(1573.70)));
        assert_eq!(Segment::CDS.price_from_raw(727550000), Price(dec!(72.755)));
        assert_eq!(Segment::BCD.price_from_raw(727550), Price(dec!(72.755)));
        assert_eq!(Segment::NSE.price_to_raw(Price(dec!(1573.7))), Some(157370));
        assert_eq!(
            Segment::CDS.price_to_raw(Price(dec!(72.755))),
            Some(727550000)
        );
        assert_eq!(Segment::NSE.price_to_raw(Price(dec!(1.005))), None);
        assert_eq!(Segment::NSE.price_to_raw(Price(dec!(-1))), None);
        assert_eq!(Segment::NSE.price_to_raw(Price(dec!(50000000))), None);
    }

    #[test]
    fn change_is_a_percentage_of_close() {
        let mut p = TickPacket::ltp(InstrumentToken(408065), Price(dec!(110)));
        assert_eq!(p.change_percent(), None);
        p.ohlc = Some(Ohlc {
            open: Price(dec!(100)),
            high: Price(dec!(110)),
            low: Price(dec!(99)),
            close: Price(dec!(100)),
        });
        assert_eq!(p.change_percent(), Some(dec!(10)));
        p.ohlc = p.ohlc.map(|o| Ohlc {
            close: Price(Decimal::ZERO),
            ..o
        });
        assert_eq!(p.change_percent(), Some(Decimal::ZERO));
    }

    #[test]
    fn market_tick_falls_back_to_receive_time_without_exchange_time() {
        let received = Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap();
        let p = TickPacket::ltp(InstrumentToken(408065), Price(dec!(1573.7)));
        let tick = p.to_market_tick_at(Some("INFY".into()), received);
        assert_eq!(tick.exchange_timestamp, received);
        assert_eq!(tick.tradingsymbol.as_deref(), Some("INFY"));
        let full = p.project(TickMode::Full);
        let mut full = full;
        full.exchange_timestamp = Some(1625461887);
        let tick = full.to_market_tick_at(None, received);
        assert_eq!(tick.exchange_timestamp.unix_micros(), 1_625_461_887_000_000);
    }
}
