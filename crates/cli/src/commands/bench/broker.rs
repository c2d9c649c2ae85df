//! The broker alone, with the pipeline's own client: what a Kafka-protocol broker carries when no
//! service stands between a producer and a consumer. The pipeline's figures are printed as ratios
//! of these, measured in the same run, so that a reader on any machine sees how close to the
//! broker the pipeline is rather than an absolute number that moves with the machine.
//!
//! - **produce**: records of a tick's size (an enveloped tick, serialised once) enqueued as fast as
//!   the producer takes them, until the broker acknowledged the last; idempotent, `acks=all`,
//!   exactly the producer the services use.
//! - **consume**: the same records read back by a consumer-group member configured as the services'
//!   consumers are, from its first record to its last.
//! - **one hop**: records paced at the latency phase's rate, each stamped when it is sent, and the
//!   time until the consumer has it: what one service-to-service hop costs at best.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alpha_panda_core::{Envelope, EventBroker, Payload, TopicMap};
use alpha_panda_services::TickSimulator;
use alpha_panda_stream::kafka::KafkaLog;
use alpha_panda_stream::{Log, OutgoingRecord, RecordValue};
use anyhow::{bail, Context};
use serde::Serialize;

use super::{percentiles, Percentiles};

/// The header a one-hop record carries its send time in, microseconds since the probe began.
const SENT_AT_HEADER: &str = "bench-sent-at-us";
/// How long the consumer may take to join its group and read the first record.
const JOIN_LIMIT: Duration = Duration::from_secs(60);

/// What the broker carries alone.
#[derive(Debug, Serialize)]
pub struct BrokerReport {
    /// Records produced (and consumed).
    pub records: u64,
    /// Size of one record's value, bytes.
    pub record_bytes: usize,
    /// Records per second acknowledged by the broker.
    pub produce_per_second: f64,
    /// Records per second read back by one consumer.
    pub consume_per_second: f64,
    /// The rate of the one-hop probe, records per second.
    pub hop_rate: u32,
    /// From send to receipt, one producer to one consumer, microseconds.
    pub hop_us: Percentiles,
}

/// Measures the broker behind `log` (a Kafka log) with `records` records for the throughputs and
/// `hop_rate` records per second for `hop_duration` for one hop's latency.
///
/// # Errors
/// When the topics cannot be created or the broker does not answer.
pub async fn measure(
    log: &Log,
    records: u64,
    hop_rate: u32,
    hop_duration: Duration,
) -> anyhow::Result<BrokerReport> {
    let Log::Kafka(kafka) = log else {
        bail!("the broker alone is measured on Kafka only");
    };
    let partitions = log
        .describe_topics()
        .await?
        .into_iter()
        .find(|t| t.name == TopicMap::market_ticks())
        .map(|t| t.partitions)
        .unwrap_or(1);
    let records_like = TickRecords::new()?;
    let record_bytes = records_like.value.len();
    let topic = format!("bench.broker.{}", uuid::Uuid::now_v7().simple());
    log.create_topic(&topic, partitions, 1, 3_600_000).await?;

    // Produce: enqueue everything, then wait for the acknowledgements in order.
    let started = Instant::now();
    let mut pending = Vec::with_capacity(records as usize);
    for n in 0..records {
        pending.push(kafka.enqueue(&records_like.record(&topic, n)).await?);
    }
    for delivery in pending {
        delivery.acknowledged().await?;
    }
    let produce_seconds = started.elapsed().as_secs_f64();

    // Consume: a group member like the services', from its first record to its last.
    let mut consumer = log.consumer(&topic, std::slice::from_ref(&topic))?;
    let mut read = 0u64;
    let mut first_at = None;
    let deadline = Instant::now() + JOIN_LIMIT + Duration::from_secs(records / 1_000 + 10);
    while read < records {
        if Instant::now() > deadline {
            bail!("the broker handed back {read} of {records} records in time");
        }
        if consumer.poll(Duration::from_millis(100)).await?.is_some() {
            first_at.get_or_insert_with(Instant::now);
            read += 1;
        }
    }
    let consume_seconds = first_at.map_or(0.0, |at| at.elapsed().as_secs_f64());
    let _ = consumer.close(&[]).await;

    let hop_us = one_hop(
        kafka,
        &topic,
        partitions,
        hop_rate,
        hop_duration,
        &records_like,
    )
    .await?;
    Ok(BrokerReport {
        records,
        record_bytes,
        produce_per_second: records as f64 / produce_seconds.max(1e-9),
        consume_per_second: (records.saturating_sub(1)) as f64 / consume_seconds.max(1e-9),
        hop_rate,
        hop_us,
    })
}

/// One hop's latency: a consumer that has joined its group, and records paced at `rate`.
async fn one_hop(
    kafka: &KafkaLog,
    topic: &str,
    partitions: i32,
    rate: u32,
    duration: Duration,
    records_like: &TickRecords,
) -> anyhow::Result<Percentiles> {
    let log = Log::Kafka(kafka.clone());
    let hop_topic = format!("{topic}.hop");
    log.create_topic(&hop_topic, partitions, 1, 3_600_000)
        .await?;
    let mut consumer = log.consumer(
        &format!("{hop_topic}.reader"),
        std::slice::from_ref(&hop_topic),
    )?;
    let base = Instant::now();
    // Warm up until the consumer has joined and reads what is sent; only later records count.
    let joined_by = Instant::now() + JOIN_LIMIT;
    let mut n = 0u64;
    loop {
        kafka
            .send(&records_like.stamped(&hop_topic, n, base))
            .await?;
        n += 1;
        if consumer.poll(Duration::from_millis(200)).await?.is_some() {
            break;
        }
        if Instant::now() > joined_by {
            bail!("the one-hop consumer read nothing within {JOIN_LIMIT:?}");
        }
    }
    // Drain the warm-up, then pace the probe from a producer task of its own.
    while consumer.poll(Duration::from_millis(300)).await?.is_some() {}
    let probes = (u64::from(rate.max(1)) * duration.as_secs().max(1)).max(100);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let producer = {
        let kafka = kafka.clone();
        let records_like = records_like.clone();
        let hop_topic = hop_topic.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending = Vec::new();
            for k in n..n + probes {
                ticker.tick().await;
                pending.push(
                    kafka
                        .enqueue(&records_like.stamped(&hop_topic, k, base))
                        .await?,
                );
            }
            for p in pending {
                p.acknowledged().await?;
            }
            Ok::<_, alpha_panda_stream::LogError>(())
        })
    };
    let mut latencies = Vec::with_capacity(probes as usize);
    let mut seen = HashSet::new();
    let deadline = Instant::now() + duration + Duration::from_secs(30);
    while (latencies.len() as u64) < probes && Instant::now() < deadline {
        let Some(received) = consumer.poll(Duration::from_millis(100)).await? else {
            continue;
        };
        let now = micros_since(base);
        if !seen.insert((received.partition, received.offset)) {
            continue;
        }
        if let Some(sent) = received
            .header(SENT_AT_HEADER)
            .and_then(|v| v.parse::<i64>().ok())
        {
            latencies.push(now - sent);
        }
    }
    producer.await.context("the one-hop producer stopped")??;
    let _ = consumer.close(&[]).await;
    if (latencies.len() as u64) < probes {
        bail!(
            "the one-hop probe read {} of {probes} records in time",
            latencies.len()
        );
    }
    Ok(percentiles(latencies))
}

/// Records of a tick's size: one enveloped tick, serialised once, under the keys of 50 instruments.
#[derive(Clone)]
struct TickRecords {
    value: bytes::Bytes,
    keys: Vec<Arc<str>>,
}

impl TickRecords {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            value: sample_tick()?,
            keys: (0..50)
                .map(|n| Arc::from((408_065 + n).to_string()))
                .collect(),
        })
    }

    /// The `n`th record for `topic`.
    fn record(&self, topic: &str, n: u64) -> OutgoingRecord {
        OutgoingRecord {
            topic: topic.to_string().into(),
            key: Some(self.keys[(n % self.keys.len() as u64) as usize].clone()),
            value: RecordValue::Bytes(self.value.clone()),
            headers: Vec::new(),
        }
    }

    /// The same, stamped with the time it is sent, in microseconds since `base`.
    fn stamped(&self, topic: &str, n: u64, base: Instant) -> OutgoingRecord {
        let mut record = self.record(topic, n);
        record.headers = vec![(SENT_AT_HEADER.into(), micros_since(base).to_string())];
        record
    }
}

fn micros_since(base: Instant) -> i64 {
    i64::try_from(base.elapsed().as_micros()).unwrap_or(i64::MAX)
}

/// One simulated tick, enveloped and serialised as the feed writes it.
fn sample_tick() -> anyhow::Result<bytes::Bytes> {
    let universe = alpha_panda_services::nse_universe();
    let mut simulator = TickSimulator::new(7, universe)?;
    let at = alpha_panda_core::Timestamp::from_datetime(chrono::Utc::now());
    let tick = simulator.next_tick(at);
    let envelope = Envelope::root(
        Payload::MarketTick(tick),
        "408065".into(),
        EventBroker::Shared,
        "market_feed",
        at,
    );
    Ok(bytes::Bytes::from(envelope.to_json()))
}
