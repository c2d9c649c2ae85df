//! The trading engine: the order events and the [`Venue`] interface, the two venues (the causal
//! paper trader and the Zerodha live trader), the fee model and Zerodha's dated charge schedule,
//! and the stream handler that routes a namespace's validated signals to its venue.

pub mod charges;
pub mod fees;
pub mod order_event;
pub mod paper;
pub mod service;
pub mod venue;
pub mod zerodha;

pub use charges::{
    ChargeSchedule, ChargesError, DpCharge, Exchange, Fill, OrderFills, OrderTerms, Segment,
};
pub use fees::FeeModel;
pub use order_event::{OrderEvent, OrderRef, TraderOutput};
pub use paper::{PaperConfig, PaperTrader};
pub use venue::{Trader, Venue};
pub use zerodha::{OpenOrder, ZerodhaConfig, ZerodhaTrader};
