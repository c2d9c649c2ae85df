//! The cache crate's single error type.

use alpha_panda_core::ErrorClass;

/// Everything the cache can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The URL names no supported backend (not `memory://` or `redis://`).
    #[error(
        "unsupported cache url scheme {0:?}: set the cache url to memory:// or redis://host:port"
    )]
    UnsupportedUrl(String),
    /// Redis refused or could not be reached; never silently replaced by memory.
    #[error(
        "redis unavailable or refused the command: {0} (check that Redis is up and reachable)"
    )]
    Redis(#[from] redis::RedisError),
    /// A stored value could not be read back (wrong type, undecodable JSON or decimal, a count out
    /// of range). Retrying will not help: an operator must inspect and delete the key.
    #[error("cache key {key:?} holds an unreadable value ({detail}); inspect and delete the key")]
    CorruptValue {
        /// The full key (or `key/field`) that holds the value.
        key: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl CacheError {
    /// The runtime's treatment. Every cache failure is infrastructure: the input is fine, the
    /// store is not (down, misconfigured, or holding a bad value), so the runtime retries without
    /// committing and alerts rather than dead-lettering a good event.
    pub fn class(&self) -> ErrorClass {
        match self {
            CacheError::UnsupportedUrl(_)
            | CacheError::Redis(_)
            | CacheError::CorruptValue { .. } => ErrorClass::Infrastructure,
        }
    }

    pub(crate) fn corrupt(key: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        CacheError::CorruptValue {
            key: key.into(),
            detail: detail.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_is_infrastructure_and_says_what_to_do() {
        let corrupt = CacheError::corrupt("p:risk", "not an integer");
        assert_eq!(corrupt.class(), ErrorClass::Infrastructure);
        assert!(corrupt.to_string().contains("delete the key"));
        let url = CacheError::UnsupportedUrl("postgres".into());
        assert_eq!(url.class(), ErrorClass::Infrastructure);
        assert!(url.to_string().contains("redis://"));
    }
}
