//! The crate's error type: what went wrong in the pure service logic, and how the runtime treats it.

use alpha_panda_core::ErrorClass;

use crate::strategy::StrategyConfigError;

/// Errors of the service logic. Each knows its [`ErrorClass`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A strategy configuration row is invalid.
    #[error(transparent)]
    StrategyConfig(#[from] StrategyConfigError),
    /// The tick simulator was given an unusable universe.
    #[error("tick simulator: {0}; pass at least one instrument with a positive base price and tick size")]
    SimulatorUniverse(String),
    /// A tick CSV lacks a required column.
    #[error("tick CSV is missing the required column {column:?}; the header must name exchange_timestamp, instrument_token and last_price")]
    CsvMissingColumn {
        /// The missing column.
        column: &'static str,
    },
    /// A tick CSV header could not be read at all.
    #[error("tick CSV header is unreadable: {0}; check the file is UTF-8 CSV with a header row")]
    CsvHeader(String),
    /// An order id could not be derived from an event id.
    #[error("cannot derive an order id from event {event_id}: {reason}")]
    OrderId {
        /// The signal event id.
        event_id: String,
        /// Why the id was refused.
        reason: String,
    },
}

impl ServiceError {
    /// How the processor runtime should treat this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ServiceError::StrategyConfig(_)
            | ServiceError::SimulatorUniverse(_)
            | ServiceError::CsvMissingColumn { .. }
            | ServiceError::CsvHeader(_) => ErrorClass::Business,
            ServiceError::OrderId { .. } => ErrorClass::Poison,
        }
    }
}
