//! Identifier newtypes and event-id generation.
//!
//! Event ids are UUIDv7 so they sort by creation time. A *derived* event id (an output produced while
//! handling an input) is a pure function of the input's id, the deriving scope and the output's ordinal,
//! so re-processing an input after a crash reproduces exactly the same output ids and downstream
//! deduplication recognises them (ARCHITECTURE §4 rule 2).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The unique id of one event: a UUIDv7.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// The nil id: stands in for an id not known yet, and is never published.
    pub const PLACEHOLDER: Self = Self(Uuid::nil());

    /// A fresh, time-ordered id for a root event (one with no cause, such as a tick).
    pub fn new_root() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Derives the id of the `ordinal`-th output that `scope` (a service, a strategy) emits while handling
/// the event `cause`.
///
/// The result keeps the cause's 48-bit millisecond timestamp, so it is still a valid, time-ordered UUIDv7;
/// the remaining 74 bits come from SHA-256 over (cause, scope, ordinal). Same inputs, same id.
pub fn derive_event_id(cause: EventId, scope: &str, ordinal: u32) -> EventId {
    let mut hasher = Sha256::new();
    hasher.update(cause.0.as_bytes());
    hasher.update((scope.len() as u64).to_be_bytes());
    hasher.update(scope.as_bytes());
    hasher.update(ordinal.to_be_bytes());
    let digest = hasher.finalize();

    let mut bytes = [0u8; 16];
    // 48-bit unix-ms timestamp of the cause (bytes 0..6 of a v7 UUID; for a non-v7 cause these are
    // still the leading bytes, which keeps the derivation total).
    bytes[..6].copy_from_slice(&cause.0.as_bytes()[..6]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    EventId(Uuid::from_bytes(bytes))
}

/// Ties every event of one causal chain together; a root event starts a new one.
// Shared: every event of a chain carries the same text, so a derived event copies a pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct CorrelationId(pub Arc<str>);

impl CorrelationId {
    /// The correlation id a root event starts: its own event id, so every root starts a new one.
    pub fn of_root(root: EventId) -> Self {
        let mut buffer = Uuid::encode_buffer();
        Self(Arc::from(&*root.0.hyphenated().encode_lower(&mut buffer)))
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Zerodha / exchange instrument token.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct InstrumentToken(pub u32);

impl fmt::Display for InstrumentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Error from building a string identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct InvalidId {
    /// Which identifier was being built.
    pub kind: &'static str,
    /// The rejected value.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        // The text is shared: an id is cloned into every event, order and record it names, and a
        // clone is a count, not a copy. (A comment, not a doc line: docs are the wire schema's.)
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an identifier: 1 to 128 characters of `[A-Za-z0-9_.:-]`.
            ///
            /// # Errors
            /// [`InvalidId`] when the value is empty, too long or has other characters.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let reason = if value.is_empty() {
                    Some("must not be empty")
                } else if value.len() > 128 {
                    Some("must be at most 128 characters")
                } else if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
                {
                    Some("may contain only letters, digits, '_', '-', '.' and ':'")
                } else {
                    None
                };
                match reason {
                    Some(reason) => Err(InvalidId { kind: $kind, value, reason }),
                    None => Ok(Self(value.into())),
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A strategy's configured id (`momentum_nifty`, …).
    StrategyId,
    "strategy id"
);
string_id!(
    /// An order's id inside Alpha Panda (derived from the signal that caused it).
    OrderId,
    "order id"
);
string_id!(
    /// A portfolio: one per (broker, strategy), written `{broker}:{strategy_id}`.
    PortfolioId,
    "portfolio id"
);

impl PortfolioId {
    /// The portfolio of `strategy` in `broker`'s namespace.
    pub fn for_strategy(broker: crate::Broker, strategy: &StrategyId) -> Self {
        Self(format!("{}:{}", broker.as_str(), strategy.as_str()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_deterministic_valid_v7_and_distinct_per_ordinal() {
        let cause = EventId::new_root();
        let a = derive_event_id(cause, "strategy_runner", 0);
        let b = derive_event_id(cause, "strategy_runner", 0);
        let c = derive_event_id(cause, "strategy_runner", 1);
        let d = derive_event_id(cause, "risk_manager", 0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.0.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(a.0.as_bytes()[..6], cause.0.as_bytes()[..6]);
    }

    #[test]
    fn string_ids_are_validated_on_construction_and_deserialization() {
        assert!(StrategyId::new("momentum_1").is_ok());
        assert!(StrategyId::new("").is_err());
        assert!(StrategyId::new("has space").is_err());
        let err = serde_json::from_str::<StrategyId>("\"bad id\"").unwrap_err();
        assert!(err.to_string().contains("strategy id"));
    }
}
