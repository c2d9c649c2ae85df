//! How the consume loop looks up from a fetched batch: the speed tricks of the loop, in one place.
//!
//! A poll hands over every record the log has already fetched, and the loop works through them
//! without going back to its select for each (see [`crate::kafka::KafkaConsumer::poll`]). Between
//! two records it must still notice shutdown, the timer and the commit cadence, and each of those
//! looks was a good part of a tick's cost when done for every record:
//!
//! - the clock is read every [`LOOK_STRIDE`] records while records go by quickly, and for every
//!   record once they are slow ([`Looks`]);
//! - the timer is peeked with a waker that does nothing, and only once it is due ([`ticked`]),
//!   rather than polled in a select;
//! - shutdown is a flag mirrored from the cancellation token ([`StopFlag`]): reading the token
//!   takes a lock every processor shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::AbortOnDrop;

/// Within a fetched batch, the commit cadence and the timer are looked at every this many records
/// while records go by quickly…
pub(super) const LOOK_STRIDE: u32 = 16;
/// …that is, while the last stride took less than this; slower records are looked at one by one.
pub(super) const LOOK_SPAN: Duration = Duration::from_millis(1);

/// When the loop next reads the clock to look at its timer and commit cadence.
#[derive(Debug)]
pub(super) struct Looks {
    last: Instant,
    /// Records to let by before the next look.
    until_next: u32,
}

impl Looks {
    /// A batch about to be worked through: its first record is looked at.
    pub(super) fn new() -> Self {
        Self {
            last: Instant::now(),
            until_next: 0,
        }
    }

    /// The time now, when the loop should look after this record; `None` while it lets records
    /// by. `forced` looks at once (a commit is due by count, which needs no clock to tell).
    pub(super) fn due(&mut self, forced: bool) -> Option<Instant> {
        if self.until_next > 0 && !forced {
            self.until_next -= 1;
            return None;
        }
        let at = Instant::now();
        self.until_next = if at.duration_since(self.last) < LOOK_SPAN {
            LOOK_STRIDE - 1
        } else {
            0
        };
        self.last = at;
        Some(at)
    }
}

/// Whether `timer` has ticked, without waiting and without registering for a wake-up: the loop
/// is busy with records and looks again itself.
pub(super) fn ticked(timer: &mut Interval) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    timer.poll_tick(&mut cx).is_ready()
}

/// Shutdown, as a flag cheap to read between two buffered records.
#[derive(Debug)]
pub(super) struct StopFlag {
    stopping: Arc<AtomicBool>,
    _watch: AbortOnDrop,
}

impl StopFlag {
    /// A flag set once `shutdown` is cancelled, by a task that lives as long as the flag.
    pub(super) fn watch(shutdown: &CancellationToken) -> Self {
        let stopping = Arc::new(AtomicBool::new(shutdown.is_cancelled()));
        let set = stopping.clone();
        let token = shutdown.clone();
        let watch = AbortOnDrop(tokio::spawn(async move {
            token.cancelled().await;
            set.store(true, Ordering::Release);
        }));
        Self {
            stopping,
            _watch: watch,
        }
    }

    /// Whether shutdown has come.
    pub(super) fn is_set(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fast_records_are_looked_at_once_a_stride_and_slow_ones_each() {
        let mut looks = Looks::new();
        // The first record of a batch is looked at; while records are fast, then every stride.
        assert!(looks.due(false).is_some());
        for _ in 0..3 {
            let skipped = (0..LOOK_STRIDE - 1)
                .filter(|_| looks.due(false).is_none())
                .count();
            assert_eq!(skipped as u32, LOOK_STRIDE - 1);
            assert!(looks.due(false).is_some());
        }
        // A commit due by count is looked at at once, whatever the stride.
        assert!(looks.due(false).is_none());
        assert!(looks.due(true).is_some());

        // Once a stride takes longer than the span, every record is looked at.
        let mut looks = Looks::new();
        for _ in 0..5 {
            tokio::time::advance(LOOK_SPAN * 2).await;
            assert!(looks.due(false).is_some());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_is_peeked_without_waiting() {
        let period = Duration::from_millis(100);
        let mut timer = tokio::time::interval_at(Instant::now() + period, period);
        assert!(!ticked(&mut timer));
        tokio::time::advance(period).await;
        assert!(ticked(&mut timer));
        assert!(!ticked(&mut timer));
    }

    #[tokio::test]
    async fn the_stop_flag_follows_its_token() {
        let shutdown = CancellationToken::new();
        let flag = StopFlag::watch(&shutdown);
        assert!(!flag.is_set());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), async {
            while !flag.is_set() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the flag is set once the token is cancelled");
        assert!(StopFlag::watch(&shutdown).is_set());
    }
}
