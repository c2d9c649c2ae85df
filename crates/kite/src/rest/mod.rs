//! Kite Connect v3 REST: the client, its request/response types, errors and rate limiter.

pub mod client;
pub mod error;
pub mod rate_limit;
pub mod types;

pub use client::{session_checksum, KiteClient, SharedAccessToken};
pub use error::KiteError;
pub use rate_limit::{EndpointClass, OrderCounts, RateLimiter};
pub use types::{
    AutosliceChild, AutosliceError, AutoslicePlacement, ContractNoteEntry, ContractNoteGst,
    ContractNoteOrder, KiteOrderId, KiteOrderStatus, KiteOrderType, MarketProtection, ModifyParams,
    Order, OrderCharges, OrderParams, Position, Positions, Session, Trade, UserProfile, Variety,
    MAX_AUTOSLICES,
};
