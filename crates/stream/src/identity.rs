//! [`LogIdentity`]: which log a set of offsets belongs to (ARCHITECTURE §4 rule 5).
//!
//! Offsets are positions in one particular log. A memory log starts empty in every process, and a
//! Kafka topic that is deleted and created again starts at offset 0, so an offset saved against one
//! log says nothing about another: a checkpoint records the identity of its log, and a stateful
//! service uses its saved offsets to skip input only when they belong to the log it reads now.

use std::fmt;

/// The identity of a log: `memory:{incarnation}` (a fresh UUID per memory log) or
/// `kafka:{cluster id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogIdentity(String);

impl LogIdentity {
    /// The identity of the memory log with this incarnation.
    pub fn memory(incarnation: uuid::Uuid) -> Self {
        Self(format!("memory:{incarnation}"))
    }

    /// The identity of the Kafka cluster with this id.
    pub fn kafka(cluster_id: &str) -> Self {
        Self(format!("kafka:{cluster_id}"))
    }

    /// The identity as stored with a checkpoint.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_different_logs_differ() {
        let a = LogIdentity::memory(uuid::Uuid::now_v7());
        let b = LogIdentity::memory(uuid::Uuid::now_v7());
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("memory:"));
        assert_eq!(LogIdentity::kafka("c1").as_str(), "kafka:c1");
        assert_ne!(LogIdentity::kafka("c1"), LogIdentity::kafka("c2"));
    }
}
