//! `ConflatingBuffer`: the bounded hand-off between the ticker socket and its consumer. It keeps
//! only the latest tick per instrument token, so a slow consumer sees fresh prices, memory stays
//! bounded, and the socket reader never waits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::packet::TickPacket;

#[derive(Debug, Default)]
struct Inner {
    latest: HashMap<u32, TickPacket>,
    queue: VecDeque<u32>,
    closed: bool,
}

/// A bounded, per-token conflating queue of ticks (one producer, one consumer).
#[derive(Debug)]
pub struct ConflatingBuffer {
    inner: Mutex<Inner>,
    notify: Notify,
    capacity: usize,
    conflated: AtomicU64,
    dropped: AtomicU64,
}

impl ConflatingBuffer {
    /// A buffer holding at most `capacity` distinct tokens (at least 1). Size it to the number
    /// of subscribed instruments (Kite allows 3000 per connection).
    pub fn new(capacity: usize) -> ConflatingBuffer {
        ConflatingBuffer {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            conflated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds a tick without ever waiting. A pending tick of the same token is replaced (counted
    /// as conflated) and keeps its place in line; when `capacity` distinct tokens are already
    /// pending, the oldest pending tick is discarded (counted as dropped). Ticks pushed after
    /// [`ConflatingBuffer::close`] are ignored.
    pub fn push(&self, tick: TickPacket) {
        let mut inner = self.inner.lock();
        if inner.closed {
            return;
        }
        let token = tick.instrument_token.0;
        if inner.latest.insert(token, tick).is_some() {
            self.conflated.fetch_add(1, Ordering::Relaxed);
        } else {
            if inner.queue.len() >= self.capacity {
                if let Some(oldest) = inner.queue.pop_front() {
                    inner.latest.remove(&oldest);
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            inner.queue.push_back(token);
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Takes the oldest pending token's latest tick without waiting.
    pub fn try_pop(&self) -> Option<TickPacket> {
        let mut inner = self.inner.lock();
        while let Some(token) = inner.queue.pop_front() {
            if let Some(tick) = inner.latest.remove(&token) {
                return Some(tick);
            }
        }
        None
    }

    /// Waits for the next tick; `None` once the buffer is closed and drained.
    pub async fn pop(&self) -> Option<TickPacket> {
        loop {
            let notified = self.notify.notified();
            if let Some(tick) = self.try_pop() {
                return Some(tick);
            }
            if self.inner.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// Marks the end of the stream; pending ticks can still be popped.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.notify.notify_one();
    }

    /// Number of pending ticks (distinct tokens).
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ticks replaced by a newer tick of the same token before the consumer took them.
    pub fn conflated(&self) -> u64 {
        self.conflated.load(Ordering::Relaxed)
    }

    /// Ticks discarded because `capacity` distinct tokens were pending.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::{InstrumentToken, Price};
    use rust_decimal::Decimal;

    fn tick(token: u32, price: i64) -> TickPacket {
        TickPacket::ltp(InstrumentToken(token), Price(Decimal::new(price, 2)))
    }

    #[test]
    fn keeps_only_the_latest_tick_per_token_in_arrival_order() {
        let buffer = ConflatingBuffer::new(10);
        buffer.push(tick(1, 100));
        buffer.push(tick(2, 200));
        buffer.push(tick(1, 101));
        buffer.push(tick(1, 102));
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.conflated(), 2);
        assert_eq!(buffer.try_pop(), Some(tick(1, 102)));
        assert_eq!(buffer.try_pop(), Some(tick(2, 200)));
        assert_eq!(buffer.try_pop(), None);
    }

    #[test]
    fn bounded_by_distinct_tokens() {
        let buffer = ConflatingBuffer::new(2);
        buffer.push(tick(1, 100));
        buffer.push(tick(2, 200));
        buffer.push(tick(3, 300));
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.dropped(), 1);
        assert_eq!(buffer.try_pop(), Some(tick(2, 200)));
        assert_eq!(buffer.try_pop(), Some(tick(3, 300)));
    }

    #[tokio::test]
    async fn pop_waits_then_ends_after_close() {
        let buffer = std::sync::Arc::new(ConflatingBuffer::new(4));
        let consumer = {
            let buffer = buffer.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(t) = buffer.pop().await {
                    got.push(t);
                }
                got
            })
        };
        buffer.push(tick(7, 700));
        buffer.close();
        buffer.push(tick(8, 800));
        let got = consumer.await.unwrap();
        assert_eq!(got, vec![tick(7, 700)]);
    }
}
