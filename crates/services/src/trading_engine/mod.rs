//! The trading engine: the fee model, Zerodha's dated charge schedule, the causal paper trader, the
//! Zerodha live trader, and the stream handler that routes a namespace's validated signals through
//! one of them.

pub mod charges;
pub mod fees;
pub mod paper;
pub mod service;
pub mod zerodha;

pub use charges::{
    ChargeSchedule, ChargesError, DpCharge, Exchange, Fill, OrderFills, OrderTerms, Segment,
};
pub use fees::FeeModel;
pub use paper::{PaperConfig, PaperEvent, PaperTrader};
pub use service::Trader;
pub use zerodha::{OpenOrder, TraderOutput, ZerodhaConfig, ZerodhaTrader};

/// The order lifecycle events either trader emits (`order_submitted`, `order_ack`,
/// `order_filled`, `order_failed`); the paper trader named them first.
pub type OrderEvent = PaperEvent;
