//! Alpha Panda's unified log and the processor runtime that every service runs on.
//!
//! The log has two backends behind one [`Log`] type: an in-process `memory://` log (the embedded
//! default) and `kafka://` over rdkafka (Redpanda or Kafka). The runtime ([`Processor`]) owns consume →
//! decode → dedup → handle → produce → commit, retries, the DLQ and correlation; services only
//! implement [`Handler`].
//!
//! # Layout
//! - [`log`]: [`Log`] and [`LogConsumer`], chosen by `log.url`.
//! - [`memory`], [`kafka`]: the two backends.
//! - [`identity`]: which log a set of offsets belongs to.
//! - [`record`]: records, headers, deliveries, lag, the key partitioner.
//! - [`handler`]: what a service implements.
//! - [`processor`]: the runtime.
//! - [`shared_decode`]: decoding a Kafka record once for all the groups of a process.
//! - [`conflation`]: skipping last-value updates a later one already fetched supersedes.
//! - [`emitter`]: root events from sources (the market feed).
//! - [`retry`]: backoff with jitter.
//! - [`dedup`]: the in-memory dedup store.
//! - [`bootstrap`]: topic creation and drift report.
//! - [`dlq`]: list, replay, purge dead letters.
//! - [`stats`]: live counters and consumer lag.
//! - [`testing`]: a real tansu broker for tests.
#![deny(unsafe_code)]

pub mod bootstrap;
pub mod conflation;
pub mod dedup;
pub mod dlq;
pub mod emitter;
mod error;
pub mod handler;
pub mod identity;
pub mod kafka;
pub mod log;
pub mod memory;
pub mod processor;
pub mod record;
pub mod retry;
pub mod shared_decode;
pub mod stats;
pub mod testing;

pub use bootstrap::{reconcile_topics, TopicReport, TopicStatus};
pub use dedup::MemoryDedupStore;
pub use emitter::Emitter;
pub use error::LogError;
pub use handler::{
    checkpoint_now, CheckpointWrite, CommitOffset, Handler, HandlerError, Input, Output,
    PartitionAnchor,
};
pub use identity::LogIdentity;
pub use log::{Log, LogConsumer, Unacknowledged};
pub use processor::{Processor, ProcessorConfig, ProcessorError};
pub use record::{OutgoingRecord, PartitionLag, Record, RecordPosition, RecordValue};
pub use retry::RetryPolicy;
pub use stats::{LatencyHistogram, LatencySnapshot, ProcessorStats, LATENCY_BOUNDS_MICROS};
