//! The KiteTicker binary decoder: one websocket binary message → the packets it frames.
//!
//! Framing (reference §1.4): a big-endian u16 packet count, then per packet a u16 length and the
//! packet. Layouts are chosen by length (§1.6–1.7); unknown lengths are skipped as the official
//! clients do. A 0- or 1-byte message is a heartbeat. Every failure names its byte offset, and no
//! input can make the decoder panic.

use alpha_panda_core::{DepthLevel, InstrumentToken, MarketDepth, Ohlc};

use super::packet::{PacketKind, Segment, TickPacket};

/// Why a binary ticker message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ended inside a header or packet.
    #[error(
        "ticker message truncated at byte {offset}: needed {needed} more byte(s) for {what}, \
         {available} available; the frame is corrupt or was cut, drop it"
    )]
    Truncated {
        /// Offset (from the message start) where the missing bytes begin.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Bytes remain after the number of packets the header announced.
    #[error(
        "ticker message has {extra} unexpected byte(s) at offset {offset} after its {count} \
         announced packet(s); the frame is inconsistent, drop it"
    )]
    TrailingBytes {
        /// Offset of the first unexpected byte.
        offset: usize,
        /// How many bytes are left over.
        extra: usize,
        /// The announced packet count.
        count: u16,
    },
}

/// Big-endian reader over one packet.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn u32_at(&self, at: usize) -> u32 {
        match self.bytes.get(at..at + 4) {
            Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            None => 0,
        }
    }

    fn i32_at(&self, at: usize) -> i32 {
        self.u32_at(at) as i32
    }

    fn u16_at(&self, at: usize) -> u16 {
        match self.bytes.get(at..at + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => 0,
        }
    }
}

fn read_u16(message: &[u8], offset: usize, what: &'static str) -> Result<u16, DecodeError> {
    match message.get(offset..offset + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(DecodeError::Truncated {
            offset,
            what,
            needed: 2,
            available: message.len().saturating_sub(offset),
        }),
    }
}

/// Decodes one binary websocket message into its packets (empty for a heartbeat).
///
/// # Errors
/// [`DecodeError::Truncated`] when a header or packet runs past the end of the message, and
/// [`DecodeError::TrailingBytes`] when bytes follow the announced packets.
pub fn decode_message(bytes: &[u8]) -> Result<Vec<TickPacket>, DecodeError> {
    if bytes.len() < 2 {
        return Ok(Vec::new());
    }
    let count = read_u16(bytes, 0, "packet count")?;
    let mut offset = 2;
    let mut packets = Vec::with_capacity(usize::from(count).min(bytes.len() / 10 + 1));
    for _ in 0..count {
        let len = usize::from(read_u16(bytes, offset, "packet length")?);
        offset += 2;
        let Some(body) = bytes.get(offset..offset + len) else {
            return Err(DecodeError::Truncated {
                offset,
                what: "packet body",
                needed: len,
                available: bytes.len() - offset,
            });
        };
        if let Some(packet) = decode_packet(body) {
            packets.push(packet);
        }
        offset += len;
    }
    if offset != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset,
            extra: bytes.len() - offset,
            count,
        });
    }
    Ok(packets)
}

/// Decodes one unframed packet; `None` when its length matches no known layout.
pub fn decode_packet(body: &[u8]) -> Option<TickPacket> {
    let kind = PacketKind::from_len(body.len())?;
    let r = Reader { bytes: body };
    let token = r.u32_at(0);
    let segment = Segment::of(token);
    let price = |at: usize| segment.price_from_raw(r.u32_at(at));
    let mut packet = TickPacket::ltp(InstrumentToken(token), price(4));
    packet.kind = kind;
    match kind {
        PacketKind::Ltp => {}
        PacketKind::IndexQuote | PacketKind::IndexFull => {
            packet.ohlc = Some(Ohlc {
                high: price(8),
                low: price(12),
                open: price(16),
                close: price(20),
            });
            packet.index_change_raw = Some(r.i32_at(24));
            if kind == PacketKind::IndexFull {
                packet.exchange_timestamp = Some(r.u32_at(28));
            }
        }
        PacketKind::Quote | PacketKind::Full => {
            packet.last_traded_quantity = Some(r.u32_at(8));
            packet.average_traded_price = Some(price(12));
            packet.volume_traded = Some(r.u32_at(16));
            packet.total_buy_quantity = Some(r.u32_at(20));
            packet.total_sell_quantity = Some(r.u32_at(24));
            packet.ohlc = Some(Ohlc {
                open: price(28),
                high: price(32),
                low: price(36),
                close: price(40),
            });
            if kind == PacketKind::Full {
                packet.last_trade_time = Some(r.u32_at(44));
                packet.oi = Some(r.u32_at(48));
                packet.oi_day_high = Some(r.u32_at(52));
                packet.oi_day_low = Some(r.u32_at(56));
                packet.exchange_timestamp = Some(r.u32_at(60));
                let level = |at: usize| DepthLevel {
                    quantity: r.u32_at(at),
                    price: segment.price_from_raw(r.u32_at(at + 4)),
                    orders: r.u16_at(at + 8),
                };
                packet.depth = Some(MarketDepth {
                    buy: (0..5).map(|i| level(64 + i * 12)).collect(),
                    sell: (0..5).map(|i| level(124 + i * 12)).collect(),
                });
            }
        }
    }
    Some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn heartbeats_and_empty_frames_decode_to_nothing() {
        assert_eq!(decode_message(&[]), Ok(vec![]));
        assert_eq!(decode_message(&[0x01]), Ok(vec![]));
        assert_eq!(decode_message(&[0, 0]), Ok(vec![]));
    }

    #[test]
    fn truncation_names_the_offset() {
        assert_eq!(
            decode_message(&[0, 1, 0]),
            Err(DecodeError::Truncated {
                offset: 2,
                what: "packet length",
                needed: 2,
                available: 1
            })
        );
        let err = decode_message(&[0, 1, 0, 8, 1, 2, 3]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                offset: 4,
                what: "packet body",
                needed: 8,
                available: 3
            }
        );
        assert!(err.to_string().contains("byte 4"));
    }

    #[test]
    fn trailing_bytes_are_inconsistent() {
        let mut msg = vec![0, 1, 0, 8];
        msg.extend_from_slice(&[0, 6, 58, 1, 0, 2, 102, 186]);
        msg.push(9);
        assert_eq!(
            decode_message(&msg),
            Err(DecodeError::TrailingBytes {
                offset: 12,
                extra: 1,
                count: 1
            })
        );
    }

    #[test]
    fn unknown_packet_lengths_are_skipped() {
        let msg = [0, 1, 0, 3, 1, 2, 3];
        assert_eq!(decode_message(&msg), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_message(&bytes);
        }

        #[test]
        fn framed_arbitrary_packets_never_panic(
            count in 0u16..5,
            lens in proptest::collection::vec(prop_oneof![Just(8u16), Just(28), Just(32), Just(44), Just(184), 0u16..300], 0..5),
            fill in any::<u8>(),
        ) {
            let mut msg = count.to_be_bytes().to_vec();
            for len in lens {
                msg.extend_from_slice(&len.to_be_bytes());
                msg.extend(std::iter::repeat_n(fill, usize::from(len)));
            }
            let _ = decode_message(&msg);
        }
    }
}
