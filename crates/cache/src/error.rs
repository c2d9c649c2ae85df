//! The cache crate's single error type.

use alpha_panda_core::ErrorClass;

/// Everything the cache can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The URL names no supported backend (not `memory://` or `redis://`).
    #[error("unsupported cache url scheme: {0}")]
    UnsupportedUrl(String),
    /// Redis refused or could not be reached; never silently replaced by memory.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl CacheError {
    /// The runtime's treatment: a bad URL is a configuration mistake the operator must fix, and
    /// a Redis failure is retried like any infrastructure outage.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Infrastructure
    }
}
