//! Counters a running processor keeps, readable by the API, metrics and the run summary.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Retries made.
    pub retries: AtomicU64,
    /// Inputs sent to a DLQ.
    pub dead_lettered: AtomicU64,
    /// Offsets commits made.
    pub commits: AtomicU64,
    lag: Mutex<Vec<PartitionLag>>,
}

impl ProcessorStats {
    pub(crate) fn incr(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
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
