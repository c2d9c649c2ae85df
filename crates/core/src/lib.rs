//! Alpha Panda's domain: the event envelope and every payload, brokers, topics and their specs,
//! identifiers, money, and the error classes the processor runtime acts on.
//!
//! Nothing in this crate performs I/O or reads a clock implicitly; every other crate builds on it.
//!
//! # Layout
//! - [`ids`]: identifier newtypes, UUIDv7 event ids and the derived-id function.
//! - [`money`]: `Price`, `Quantity`, `Money` over exact decimals.
//! - [`broker`]: the trading namespaces (`paper`, `zerodha`) and the envelope's `shared` marker.
//! - [`clock`]: the injected clock.
//! - [`calendar`]: the NSE trading calendar and session hours in IST.
//! - [`dedup`]: the deduplication port the runtime uses.
//! - [`envelope`]: the wire envelope and `EventType`.
//! - [`events`]: one typed payload per event type.
//! - [`topics`]: `TopicMap` (the only place a topic name is built), topic classes and specs.
//! - [`instrument`]: a row of the instruments master.
//! - [`keys`]: partition keys.
//! - [`error_class`]: how a failure is treated (transient, infrastructure, poison, business).
//! - [`environment`]: development / testing / production.
//! - [`schema`]: JSON Schema generation for the envelope and payloads.
#![deny(unsafe_code)]

pub mod broker;
pub mod calendar;
pub mod clock;
pub mod dedup;
pub mod envelope;
pub mod environment;
pub mod error_class;
pub mod events;
pub mod ids;
pub mod instrument;
pub mod keys;
pub mod money;
pub mod schema;
pub mod time;
pub mod topics;

pub use broker::{Broker, EventBroker};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dedup::{DedupError, DedupStore};
pub use envelope::{Envelope, EnvelopeError, EventType, CURRENT_VERSION};
pub use environment::Environment;
pub use error_class::ErrorClass;
pub use events::{
    Alert, AlertKind, AlertSeverity, DepthLevel, DlqMessage, DlqPayload, ExecutionMode,
    FeeBreakdown, FeesSource, MarketDepth, MarketTick, Ohlc, OrderAck, OrderFailed, OrderFilled,
    OrderSubmitted, OrderType, Payload, PnlSnapshot, PositionSnapshot, RejectedSignal,
    RuleViolation, Side, SignalAtTarget, SnapshotType, TickRef, TradingSignal, ValidatedSignal,
};
pub use ids::{
    derive_event_id, CorrelationId, EventId, InstrumentToken, OrderId, PortfolioId, StrategyId,
};
pub use instrument::Instrument;
pub use money::{Money, Price, Quantity};
pub use time::Timestamp;
pub use topics::{TopicClass, TopicMap, TopicSpec, TopicSpecOverlay};
