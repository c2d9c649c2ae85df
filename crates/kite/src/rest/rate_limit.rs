//! The client-side rate limiter (reference §2.5): sliding windows per endpoint class that delay a
//! call until it fits, a daily order cap that refuses instead, and a counter of delayed calls.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use chrono_tz::Asia::Kolkata;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::error::KiteError;
use crate::settings::RateLimits;

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointClass {
    /// Order placement, modification, cancellation.
    Order,
    /// Quote endpoints.
    Quote,
    /// Every other endpoint.
    Other,
}

/// A sliding window allowing `limit` calls per `period`; a limit of 0 means unlimited.
#[derive(Debug)]
struct Window {
    limit: usize,
    period: Duration,
    stamps: VecDeque<Instant>,
}

impl Window {
    fn new(limit: u32, period: Duration) -> Window {
        Window {
            limit: limit as usize,
            period,
            stamps: VecDeque::new(),
        }
    }

    /// How long until a call fits (zero when it fits now).
    fn wait(&mut self, now: Instant) -> Duration {
        if self.limit == 0 {
            return Duration::ZERO;
        }
        while let Some(first) = self.stamps.front() {
            if now.duration_since(*first) >= self.period {
                self.stamps.pop_front();
            } else {
                break;
            }
        }
        if self.stamps.len() < self.limit {
            return Duration::ZERO;
        }
        let oldest_blocking = self.stamps[self.stamps.len() - self.limit];
        (oldest_blocking + self.period).saturating_duration_since(now)
    }

    fn record(&mut self, now: Instant) {
        if self.limit > 0 {
            self.stamps.push_back(now);
        }
    }
}

#[derive(Debug)]
struct State {
    orders_second: Window,
    orders_minute: Window,
    quotes_second: Window,
    other_second: Window,
    orders_day: (Option<NaiveDate>, u32),
}

/// Delays calls that would exceed the configured limits. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    state: Arc<Mutex<State>>,
    orders_per_day: u32,
    delayed: Arc<AtomicU64>,
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(limits: &RateLimits) -> RateLimiter {
        RateLimiter {
            state: Arc::new(Mutex::new(State {
                orders_second: Window::new(limits.orders_per_second, Duration::from_secs(1)),
                orders_minute: Window::new(limits.orders_per_minute, Duration::from_secs(60)),
                quotes_second: Window::new(limits.quotes_per_second, Duration::from_secs(1)),
                other_second: Window::new(limits.other_per_second, Duration::from_secs(1)),
                orders_day: (None, 0),
            })),
            orders_per_day: limits.orders_per_day,
            delayed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many calls had to wait so far (for metrics).
    pub fn delayed_calls(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    /// The shared counter behind [`RateLimiter::delayed_calls`], for a metrics registry.
    pub fn delayed_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.delayed)
    }

    /// Waits until a call of `class` fits every window, then records it.
    ///
    /// # Errors
    /// [`KiteError::DailyOrderLimit`] when an order would exceed the daily cap (IST day).
    pub async fn acquire(&self, class: EndpointClass) -> Result<(), KiteError> {
        if class == EndpointClass::Order && self.orders_per_day > 0 {
            let today = Utc::now().with_timezone(&Kolkata).date_naive();
            let mut state = self.state.lock();
            if state.orders_day.0 != Some(today) {
                state.orders_day = (Some(today), 0);
            }
            if state.orders_day.1 >= self.orders_per_day {
                return Err(KiteError::DailyOrderLimit {
                    limit: self.orders_per_day,
                });
            }
            state.orders_day.1 += 1;
        }
        let mut delayed = false;
        loop {
            let wait = {
                let now = Instant::now();
                let mut state = self.state.lock();
                let state = &mut *state;
                let wait = match class {
                    EndpointClass::Order => state
                        .orders_second
                        .wait(now)
                        .max(state.orders_minute.wait(now)),
                    EndpointClass::Quote => state.quotes_second.wait(now),
                    EndpointClass::Other => state.other_second.wait(now),
                };
                if wait.is_zero() {
                    match class {
                        EndpointClass::Order => {
                            state.orders_second.record(now);
                            state.orders_minute.record(now);
                        }
                        EndpointClass::Quote => state.quotes_second.record(now),
                        EndpointClass::Other => state.other_second.record(now),
                    }
                }
                wait
            };
            if wait.is_zero() {
                return Ok(());
            }
            if !delayed {
                delayed = true;
                self.delayed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    ?class,
                    wait_ms = wait.as_millis() as u64,
                    "Kite rate limit: delaying call"
                );
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(orders_per_second: u32, orders_per_minute: u32, orders_per_day: u32) -> RateLimits {
        RateLimits {
            orders_per_second,
            orders_per_minute,
            orders_per_day,
            quotes_per_second: 1,
            other_per_second: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delays_calls_beyond_the_per_second_limit() {
        let limiter = RateLimiter::new(&limits(3, 0, 0));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire(EndpointClass::Order).await.unwrap();
        }
        assert_eq!(limiter.delayed_calls(), 0);
        assert_eq!(Instant::now(), start);
        limiter.acquire(EndpointClass::Order).await.unwrap();
        assert_eq!(limiter.delayed_calls(), 1);
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn per_minute_limit_and_classes_are_separate() {
        let limiter = RateLimiter::new(&limits(100, 2, 0));
        let start = Instant::now();
        limiter.acquire(EndpointClass::Order).await.unwrap();
        limiter.acquire(EndpointClass::Order).await.unwrap();
        limiter.acquire(EndpointClass::Other).await.unwrap();
        limiter.acquire(EndpointClass::Quote).await.unwrap();
        assert_eq!(Instant::now(), start);
        limiter.acquire(EndpointClass::Order).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(60));
        limiter.acquire(EndpointClass::Quote).await.unwrap();
        assert_eq!(limiter.delayed_calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn daily_cap_refuses_instead_of_waiting() {
        let limiter = RateLimiter::new(&limits(0, 0, 2));
        limiter.acquire(EndpointClass::Order).await.unwrap();
        limiter.acquire(EndpointClass::Order).await.unwrap();
        let err = limiter.acquire(EndpointClass::Order).await.unwrap_err();
        assert!(matches!(err, KiteError::DailyOrderLimit { limit: 2 }));
        limiter.acquire(EndpointClass::Other).await.unwrap();
    }
}
