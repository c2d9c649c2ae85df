//! Exponential backoff with jitter, and the retry budget.

use std::time::Duration;

use rand::Rng;

/// How the runtime retries transient and infrastructure failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of one input before it goes to the DLQ (infrastructure errors of the log itself are
    /// retried until shutdown instead: sending the input to a DLQ on a dead log cannot work).
    pub max_retries: u32,
    /// First delay.
    pub initial_backoff: Duration,
    /// Largest delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): `initial × 2^attempt`, capped, then "full
    /// jitter" between half of it and all of it so that retrying consumers do not move in lockstep.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.min(30)));
        let capped = exp.min(self.max_backoff);
        let nanos = capped.as_nanos() as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.gen_range(nanos / 2..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..10 {
            let d = policy.backoff(attempt, &mut rng);
            let full = (Duration::from_millis(100) * 2u32.pow(attempt.min(20)))
                .min(Duration::from_secs(1));
            assert!(d <= full && d >= full / 2, "attempt {attempt}: {d:?}");
        }
    }
}
