//! Trading namespaces. `paper` and `zerodha` never mix: state, topics and metrics are per broker.
//! The envelope also knows `shared`, used only on market data that every namespace reads.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A trading namespace. Configured, never parsed out of a topic name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Broker {
    /// Simulated execution.
    Paper,
    /// Real orders through Zerodha Kite Connect.
    Zerodha,
}

impl Broker {
    /// Every broker namespace, in a fixed order.
    pub const ALL: [Broker; 2] = [Broker::Paper, Broker::Zerodha];

    /// The namespace's name as it appears in topics and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Broker::Paper => "paper",
            Broker::Zerodha => "zerodha",
        }
    }
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown broker name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown broker {0:?}: expected \"paper\" or \"zerodha\"")]
pub struct UnknownBroker(pub String);

impl FromStr for Broker {
    type Err = UnknownBroker;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "paper" => Ok(Broker::Paper),
            "zerodha" => Ok(Broker::Zerodha),
            other => Err(UnknownBroker(other.to_string())),
        }
    }
}

/// The envelope's `broker` field: a namespace, or `shared` for market data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventBroker {
    /// Paper namespace.
    Paper,
    /// Zerodha namespace.
    Zerodha,
    /// Market data read by every namespace.
    Shared,
}

impl From<Broker> for EventBroker {
    fn from(b: Broker) -> Self {
        match b {
            Broker::Paper => EventBroker::Paper,
            Broker::Zerodha => EventBroker::Zerodha,
        }
    }
}

impl EventBroker {
    /// The trading namespace, if this is not `shared`.
    pub fn namespace(self) -> Option<Broker> {
        match self {
            EventBroker::Paper => Some(Broker::Paper),
            EventBroker::Zerodha => Some(Broker::Zerodha),
            EventBroker::Shared => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventBroker::Paper => "paper",
            EventBroker::Zerodha => "zerodha",
            EventBroker::Shared => "shared",
        }
    }
}
