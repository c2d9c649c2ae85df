//! Exponential backoff with jitter, shared by the REST retry loop and the ticker's reconnects.

use std::time::Duration;

use rand::Rng;

/// An exponential backoff policy: `min(base × 2^attempt, max)` plus up to 25 % random jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (attempt 0).
    pub base: Duration,
    /// Cap on the delay before jitter.
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `attempt`, plus up to 25 % jitter so that many clients
    /// do not retry in step.
    pub fn delay_with_jitter(&self, attempt: u32) -> Duration {
        let delay = self.delay(attempt);
        let jitter_ceiling = delay.as_millis() as u64 / 4;
        let jitter = if jitter_ceiling == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=jitter_ceiling)
        };
        delay + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let secs: Vec<u64> = (0..8).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(200), Duration::from_secs(60));
        for attempt in 0..10 {
            let d = b.delay_with_jitter(attempt);
            assert!(d >= b.delay(attempt) && d <= b.delay(attempt) * 5 / 4);
        }
    }
}
