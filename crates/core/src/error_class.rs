//! How the processor runtime treats a failure (ARCHITECTURE §4).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The class every handler or infrastructure error maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Likely to succeed if tried again soon (a timeout, a 429): retried with backoff, not committed.
    Transient,
    /// A dependency is down (log, database, cache): retried with backoff, not committed.
    Infrastructure,
    /// The input can never be handled (undecodable, schema violation, unknown type): straight to DLQ.
    Poison,
    /// A domain refusal, answered with a domain event (`rejected_signal`, `order_failed`).
    Business,
}

impl ErrorClass {
    /// Whether the runtime should retry the input.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::Infrastructure)
    }

    /// The wire / label name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Infrastructure => "infrastructure",
            ErrorClass::Poison => "poison",
            ErrorClass::Business => "business",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
