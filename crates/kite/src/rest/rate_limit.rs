//! The client-side rate limiter (reference §2.5): sliding windows per endpoint class that delay a
//! call until it fits, a daily order cap that refuses instead, and a counter of delayed calls. The
//! order counts ([`OrderCounts`]) can be saved and restored, so a restart neither resets the day's
//! cap nor forgets the last minute's orders.

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

/// The orders counted against the caps, as wall-clock facts that survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct OrderCounts {
    /// The trading day (IST) of `placed_today`.
    pub day: Option<NaiveDate>,
    /// Order requests counted on that day.
    pub placed_today: u32,
    /// Unix milliseconds of the order requests of the last minute.
    pub last_minute_unix_ms: Vec<i64>,
}

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

    /// The order counts to save (see [`RateLimiter::restore_order_counts`]).
    pub fn order_counts(&self) -> OrderCounts {
        let state = self.state.lock();
        let (now, wall_ms) = (Instant::now(), Utc::now().timestamp_millis());
        let last_minute_unix_ms = state
            .orders_minute
            .stamps
            .iter()
            .map(|at| {
                let ago = i64::try_from(now.duration_since(*at).as_millis()).unwrap_or(i64::MAX);
                wall_ms.saturating_sub(ago)
            })
            .collect();
        OrderCounts {
            day: state.orders_day.0,
            placed_today: state.orders_day.1,
            last_minute_unix_ms,
        }
    }

    /// Takes over the counts an earlier process saved: the day's count if it is today's, and the
    /// orders of the last minute that are still within it.
    pub fn restore_order_counts(&self, counts: &OrderCounts) {
        let today = Utc::now().with_timezone(&Kolkata).date_naive();
        let mut state = self.state.lock();
        if counts.day == Some(today) {
            let known = state.orders_day.1;
            state.orders_day = (Some(today), known.max(counts.placed_today));
        }
        let (now, wall_ms) = (Instant::now(), Utc::now().timestamp_millis());
        let period = state.orders_minute.period;
        let mut stamps: Vec<Instant> = counts
            .last_minute_unix_ms
            .iter()
            .filter_map(|&at| {
                let ago = Duration::from_millis(u64::try_from(wall_ms - at).ok()?);
                (ago < period).then(|| now.checked_sub(ago)).flatten()
            })
            .collect();
        if state.orders_minute.limit > 0 {
            stamps.extend(state.orders_minute.stamps.iter().copied());
            stamps.sort();
            state.orders_minute.stamps = stamps.into();
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

    #[tokio::test]
    async fn order_counts_survive_a_restart() {
        let before = RateLimiter::new(&limits(0, 3, 2));
        before.acquire(EndpointClass::Order).await.unwrap();
        before.acquire(EndpointClass::Order).await.unwrap();
        let saved = before.order_counts();
        assert_eq!(saved.placed_today, 2);
        assert_eq!(saved.last_minute_unix_ms.len(), 2);

        // The restarted process refuses the third order of the day…
        let after = RateLimiter::new(&limits(0, 3, 2));
        after.restore_order_counts(&saved);
        let err = after.acquire(EndpointClass::Order).await.unwrap_err();
        assert!(matches!(err, KiteError::DailyOrderLimit { limit: 2 }));
        // …and remembers the last minute's orders: with room for one more this minute, the
        // second waits.
        let minute = RateLimiter::new(&limits(0, 3, 0));
        minute.restore_order_counts(&saved);
        minute.acquire(EndpointClass::Order).await.unwrap();
        assert_eq!(minute.delayed_calls(), 0);
        let waited = tokio::time::timeout(
            Duration::from_millis(200),
            minute.acquire(EndpointClass::Order),
        )
        .await;
        assert!(
            waited.is_err(),
            "the restored minute did not hold the order back"
        );
        // A count of another day is not today's.
        let stale = RateLimiter::new(&limits(0, 0, 2));
        stale.restore_order_counts(&OrderCounts {
            day: NaiveDate::from_ymd_opt(2020, 1, 1),
            placed_today: 2,
            last_minute_unix_ms: Vec::new(),
        });
        stale.acquire(EndpointClass::Order).await.unwrap();
    }
}
