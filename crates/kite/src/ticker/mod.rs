//! KiteTicker: the binary packet format (decode and encode), the conflating tick buffer, and the
//! reconnecting websocket client.

pub mod client;
pub mod conflate;
pub mod decode;
pub mod encode;
pub mod packet;

pub use client::{
    BrokerNotice, KiteTicker, OrderUpdate, TickerConfig, TickerError, TickerMetrics,
    MAX_CONNECTIONS, MAX_INSTRUMENTS, MAX_INSTRUMENTS_PER_CONNECTION,
};
pub use conflate::ConflatingBuffer;
pub use decode::{decode_message, decode_packet, DecodeError};
pub use encode::{encode_message, encode_packet, heartbeat, EncodeError};
pub use packet::{PacketKind, Segment, TickMode, TickPacket};
