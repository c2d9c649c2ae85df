//! Errors of the log and the runtime, each knowing its [`ErrorClass`].

use alpha_panda_core::ErrorClass;

/// A failure talking to the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `log.url` is not `memory://` or `kafka://host:port[,host:port]`.
    #[error("invalid log.url {url:?}: {reason}")]
    InvalidUrl {
        /// The configured value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker refused or could not be reached.
    #[error("log broker error: {0}")]
    Broker(String),
    /// A produce was not acknowledged.
    #[error("produce to {topic} was not acknowledged: {reason}")]
    Produce {
        /// Target topic.
        topic: String,
        /// Broker's reason.
        reason: String,
    },
    /// The topic does not exist (run `alpha-panda bootstrap`).
    #[error("topic {0} does not exist; run `alpha-panda bootstrap` to create it")]
    UnknownTopic(String),
    /// The log was shut down.
    #[error("the log is shut down")]
    Closed,
}

impl LogError {
    /// How the runtime treats it.
    pub fn class(&self) -> ErrorClass {
        match self {
            LogError::InvalidUrl { .. } => ErrorClass::Poison,
            LogError::UnknownTopic(_) => ErrorClass::Infrastructure,
            LogError::Broker(_) | LogError::Produce { .. } | LogError::Closed => {
                ErrorClass::Infrastructure
            }
        }
    }
}
