//! Counters a running processor keeps, readable by the API, metrics and the run summary.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use alpha_panda_core::Timestamp;

use parking_lot::Mutex;

use crate::record::PartitionLag;

/// Live counters of one processor.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Records read.
    pub events_in: AtomicU64,
    /// Events produced.
    pub events_out: AtomicU64,
    /// Inputs skipped as already processed.
    pub duplicates: AtomicU64,
    /// Last-value inputs skipped because a later one of the same key was already fetched.
    pub conflated: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    /// Inputs sent to a DLQ.
    pub dead_lettered: AtomicU64,
    /// Offsets commits made.
    pub commits: AtomicU64,
    /// Checkpoint writes that failed or timed out (each one holds its commit back).
    pub checkpoint_failures: AtomicU64,
    /// Records the group handed over again after a rebalance, passed over by position.
    pub reread: AtomicU64,
    /// Alerts raised (on `system.alerts`).
    pub alerts: AtomicU64,
    /// Whether input is held back until a checkpoint succeeds (1) or flows (0).
    pub held_back: AtomicU64,
    /// Records read and not yet covered by a durable commit: a pipeline is drained only when this
    /// is 0 everywhere, not merely when nothing moves (a database may be away).
    pub unsaved: AtomicU64,
    /// How long the handler took per input (retries included).
    pub handler_latency: LatencyHistogram,
    /// Unix microseconds of the last record read (0: none yet).
    last_event_micros: AtomicI64,
    lag: Mutex<Vec<PartitionLag>>,
}

/// Bucket bounds of [`LatencyHistogram`], in microseconds: 10 µs to 10 s.
pub const LATENCY_BOUNDS_MICROS: [u64; 13] = [
    10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000, 1_000_000, 10_000_000,
];

/// Durations in fixed buckets, recorded without a lock.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations at or below each bound of [`LATENCY_BOUNDS_MICROS`] (cumulative).
    buckets: [AtomicU64; LATENCY_BOUNDS_MICROS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A [`LatencyHistogram`] read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatencySnapshot {
    /// Cumulative counts per bound of [`LATENCY_BOUNDS_MICROS`].
    pub buckets: Vec<u64>,
    /// Observations.
    pub count: u64,
    /// Their sum, microseconds.
    pub sum_micros: u64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        for (bound, bucket) in LATENCY_BOUNDS_MICROS.iter().zip(&self.buckets) {
            if micros <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

impl ProcessorStats {
    pub(crate) fn incr(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// When the last record was read, if any.
    pub fn last_event_at(&self) -> Option<Timestamp> {
        match self.last_event_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Timestamp::from_unix_micros(micros),
        }
    }

    pub(crate) fn touch(&self, at: Timestamp) {
        self.last_event_micros
            .store(at.unix_micros(), Ordering::Relaxed);
    }

    /// The last measured lag, per partition.
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.lag.lock().clone()
    }

    /// Total lag over all partitions.
    pub fn total_lag(&self) -> i64 {
        self.lag.lock().iter().map(|l| l.lag).sum()
    }

    pub(crate) fn set_lag(&self, lag: Vec<PartitionLag>) {
        *self.lag.lock() = lag;
    }
}
