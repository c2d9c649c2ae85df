//! Alpha Panda's Zerodha adapter. It speaks Kite Connect v3 exactly as
//! the kite-protocol reference describes it: the KiteTicker binary format (decoded
//! into exact decimals, never floats), a reconnecting ticker client with a conflating buffer, a
//! rate-limited and retrying REST client whose errors know their [`alpha_panda_core::ErrorClass`],
//! the instruments master, and (feature `fake`) a local fake Kite server for tests.
//!
//! # Layout
//! - [`ticker`]: packet layouts, `decode_message`, the encoder, `ConflatingBuffer`, `KiteTicker`.
//! - [`rest`]: `KiteClient`, request/response types, `KiteError`, the rate limiter.
//! - [`instruments`]: instruments CSV parsing and `InstrumentRegistry`.
//! - [`settings`]: `ZerodhaSettings` and `RateLimits`.
//! - [`backoff`]: exponential backoff with jitter shared by the REST client and the ticker.
//! - [`fake`] (feature `fake`): `FakeKite`, a fake Kite REST + websocket server on 127.0.0.1:0.
#![deny(unsafe_code)]

pub mod backoff;
#[cfg(feature = "fake")]
pub mod fake;
pub mod instruments;
pub mod rest;
pub mod settings;
pub mod ticker;

pub use instruments::{parse_instruments_csv, InstrumentRegistry, InstrumentsError};
pub use rest::{
    session_checksum, AutoslicePlacement, ContractNoteEntry, ContractNoteOrder, KiteClient,
    KiteError, KiteOrderId, KiteOrderStatus, KiteOrderType, MarketProtection, ModifyParams, Order,
    OrderCharges, OrderParams, Position, Positions, RateLimiter, Session, Trade, UserProfile,
    Variety, MAX_AUTOSLICES,
};
pub use settings::{RateLimits, ZerodhaSettings};
pub use ticker::{
    decode_message, BrokerNotice, ConflatingBuffer, DecodeError, KiteTicker, OrderUpdate, TickMode,
    TickPacket, TickerConfig, TickerError, TickerMetrics,
};
