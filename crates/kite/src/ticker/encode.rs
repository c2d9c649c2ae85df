//! The KiteTicker binary encoder: the exact inverse of the decoder, used by the fake Kite server
//! and by round-trip tests.

use alpha_panda_core::{DepthLevel, Price};

use super::packet::{PacketKind, TickPacket};

/// Why a packet could not be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A price is negative, finer than the segment's precision, or larger than 32 bits allow.
    #[error(
        "price {price} of instrument {token} cannot be encoded with the segment's divisor \
         {divisor}; use a non-negative price on the segment's grid"
    )]
    UnrepresentablePrice {
        /// The instrument.
        token: u32,
        /// The offending price.
        price: Price,
        /// The segment divisor.
        divisor: u32,
    },
    /// More packets than a u16 count can announce.
    #[error("{count} packets do not fit in one ticker message (at most 65535); split them")]
    TooManyPackets {
        /// Packets given.
        count: usize,
    },
}

/// Encodes one packet in its own layout (`packet.kind`); absent fields are written as zero,
/// depth beyond five levels is ignored and missing levels are zero.
///
/// # Errors
/// [`EncodeError::UnrepresentablePrice`] for a price the segment cannot carry.
pub fn encode_packet(packet: &TickPacket) -> Result<Vec<u8>, EncodeError> {
    let token = packet.instrument_token.0;
    let segment = packet.segment();
    let raw = |price: Price| {
        segment
            .price_to_raw(price)
            .ok_or(EncodeError::UnrepresentablePrice {
                token,
                price,
                divisor: segment.price_divisor(),
            })
    };
    let zero = Price::default();
    let ohlc = packet.ohlc;
    let mut out = Vec::with_capacity(packet.kind.wire_len());
    out.extend_from_slice(&token.to_be_bytes());
    out.extend_from_slice(&raw(packet.last_price)?.to_be_bytes());
    match packet.kind {
        PacketKind::Ltp => {}
        PacketKind::IndexQuote | PacketKind::IndexFull => {
            for price in [
                ohlc.map_or(zero, |o| o.high),
                ohlc.map_or(zero, |o| o.low),
                ohlc.map_or(zero, |o| o.open),
                ohlc.map_or(zero, |o| o.close),
            ] {
                out.extend_from_slice(&raw(price)?.to_be_bytes());
            }
            out.extend_from_slice(&packet.index_change_raw.unwrap_or(0).to_be_bytes());
            if packet.kind == PacketKind::IndexFull {
                out.extend_from_slice(&packet.exchange_timestamp.unwrap_or(0).to_be_bytes());
            }
        }
        PacketKind::Quote | PacketKind::Full => {
            out.extend_from_slice(&packet.last_traded_quantity.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&raw(packet.average_traded_price.unwrap_or(zero))?.to_be_bytes());
            out.extend_from_slice(&packet.volume_traded.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&packet.total_buy_quantity.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&packet.total_sell_quantity.unwrap_or(0).to_be_bytes());
            for price in [
                ohlc.map_or(zero, |o| o.open),
                ohlc.map_or(zero, |o| o.high),
                ohlc.map_or(zero, |o| o.low),
                ohlc.map_or(zero, |o| o.close),
            ] {
                out.extend_from_slice(&raw(price)?.to_be_bytes());
            }
            if packet.kind == PacketKind::Full {
                for value in [
                    packet.last_trade_time,
                    packet.oi,
                    packet.oi_day_high,
                    packet.oi_day_low,
                    packet.exchange_timestamp,
                ] {
                    out.extend_from_slice(&value.unwrap_or(0).to_be_bytes());
                }
                let empty: &[DepthLevel] = &[];
                let (buy, sell) = packet
                    .depth
                    .as_ref()
                    .map_or((empty, empty), |d| (&d.buy[..], &d.sell[..]));
                for side in [buy, sell] {
                    for i in 0..5 {
                        let (quantity, price, orders) = side
                            .get(i)
                            .map_or((0, zero, 0), |l| (l.quantity, l.price, l.orders));
                        out.extend_from_slice(&quantity.to_be_bytes());
                        out.extend_from_slice(&raw(price)?.to_be_bytes());
                        out.extend_from_slice(&orders.to_be_bytes());
                        out.extend_from_slice(&[0, 0]);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Frames packets into one binary websocket message (count, then length + packet each).
///
/// # Errors
/// [`EncodeError`] when a packet cannot be encoded or there are more than 65535 packets.
pub fn encode_message(packets: &[TickPacket]) -> Result<Vec<u8>, EncodeError> {
    let count = u16::try_from(packets.len()).map_err(|_| EncodeError::TooManyPackets {
        count: packets.len(),
    })?;
    let mut out = count.to_be_bytes().to_vec();
    for packet in packets {
        let body = encode_packet(packet)?;
        // Every layout is at most 184 bytes, so the length always fits a u16.
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// The 1-byte heartbeat message the server sends when idle.
pub fn heartbeat() -> Vec<u8> {
    vec![0]
}
