//! The run summary, read back from the log itself so that a single process and a fleet of processes
//! on Kafka report the same thing: per broker, ticks, signals raw/validated/rejected with the top
//! rejection reasons, orders filled/failed, and each portfolio's latest snapshot; and every alert
//! raised on `system.alerts`.
//!
//! Events are counted once per event id: a redelivery after a crash carries the same id.

use std::collections::{BTreeMap, HashSet};

use alpha_panda_core::{AlertSeverity, Broker, Envelope, EventId, Payload, PnlSnapshot, TopicMap};
use alpha_panda_stream::{Log, LogError, RecordValue};
use serde::Serialize;

/// The whole summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Per broker namespace.
    pub brokers: BTreeMap<String, BrokerSummary>,
    /// Alerts raised during the run, in the order they were raised.
    pub alerts: Vec<AlertSummary>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertSummary {
    /// When it was raised (RFC 3339).
    pub at: String,
    /// `checkpoint_failing`, `checkpoint_recovered`, …
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: AlertSeverity,
    /// The service that raised it.
    pub service: String,
    /// The namespace of that service (`shared` for one that serves every namespace).
    pub broker: String,
    /// What happened and what to do.
    pub message: String,
}

/// One namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerSummary {
    /// Ticks on `market.ticks`.
    pub ticks: u64,
    /// Ticks refused to `market.ticks.dlq` (impossible prices, off the tick grid, jumps).
    pub ticks_refused: u64,
    /// Signals.
    pub signals: SignalCounts,
    /// The most frequent failed rules, most frequent first (among the rejections the log holds).
    pub top_rejection_reasons: Vec<RejectionCount>,
    /// Orders.
    pub orders: OrderCounts,
    /// Portfolios, by id.
    pub portfolios: Vec<PortfolioSummary>,
}

/// Signal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SignalCounts {
    /// `{broker}.signals.raw`
    pub raw: u64,
    /// `{broker}.signals.validated`
    pub validated: u64,
    /// `{broker}.signals.rejected`
    pub rejected: u64,
    /// `{broker}.signals.at_target`: no order was needed to reach the signal's target.
    pub at_target: u64,
}

/// How often one rule failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionCount {
    /// Rule name.
    pub rule: String,
    /// Failures.
    pub count: u64,
}

/// Order counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OrderCounts {
    /// Fills.
    pub filled: u64,
    /// Failures.
    pub failed: u64,
}

/// A portfolio as of its latest snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortfolioSummary {
    /// `{broker}:{strategy}`.
    pub id: String,
    /// The strategy.
    pub strategy_id: String,
    /// Cash.
    pub cash: String,
    /// Realized PnL.
    pub realized_pnl: String,
    /// Unrealized PnL.
    pub unrealized_pnl: String,
    /// Fees.
    pub fees: String,
    /// realized + unrealized − fees.
    pub total_pnl: String,
    /// Open and closed positions.
    pub positions: Vec<PositionSummary>,
}

/// One position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionSummary {
    /// The instrument.
    pub instrument_token: u32,
    /// Signed quantity.
    pub quantity: i64,
    /// Average price of the open quantity.
    pub average_price: String,
    /// Last price marked.
    pub last_price: String,
}

/// Distinct events of a topic, in log order.
async fn events(log: &Log, topic: &str) -> Result<Vec<Envelope>, LogError> {
    Ok(read_topic(log, topic).await?.events)
}

/// What a topic holds: its distinct events, and how many records retention dropped before them.
struct TopicContents {
    events: Vec<Envelope>,
    /// Records below the first one kept, summed over partitions: offsets start at 0, so a
    /// partition whose first kept record has offset n had n records dropped. A partition that
    /// retention emptied entirely is not seen.
    dropped: u64,
}

async fn read_topic(log: &Log, topic: &str) -> Result<TopicContents, LogError> {
    let mut seen: HashSet<EventId> = HashSet::new();
    let mut first_kept: BTreeMap<i32, i64> = BTreeMap::new();
    let mut events = Vec::new();
    for record in log.read_all(topic).await? {
        let first = first_kept.entry(record.partition).or_insert(record.offset);
        *first = (*first).min(record.offset);
        let envelope = match record.value {
            RecordValue::Event(e) => Envelope::clone(&e),
            // Undecodable records are not events; they are counted by the DLQ tools.
            RecordValue::Bytes(bytes) => match Envelope::from_json(&bytes) {
                Ok(e) => e,
                Err(_) => continue,
            },
        };
        if seen.insert(envelope.id) {
            events.push(envelope);
        }
    }
    let dropped = first_kept
        .values()
        .map(|&offset| u64::try_from(offset).unwrap_or(0))
        .sum();
    Ok(TopicContents { events, dropped })
}

/// Events of a topic: the distinct ones kept, and those retention dropped (which were distinct
/// too as far as anyone can tell: a redelivery after a crash is rare next to a day of records).
async fn count(log: &Log, topic: &str) -> Result<u64, LogError> {
    let contents = read_topic(log, topic).await?;
    Ok(contents.events.len() as u64 + contents.dropped)
}

/// Reads the summary of `brokers` from the log.
///
/// # Errors
/// [`LogError`] when a topic cannot be read.
pub async fn collect(log: &Log, brokers: &[Broker]) -> Result<RunSummary, LogError> {
    let ticks = count(log, &TopicMap::market_ticks()).await?;
    let ticks_refused = refused_ticks(log).await?;
    let mut out = BTreeMap::new();
    for &broker in brokers {
        let topics = TopicMap::new(broker);
        let rejected = read_topic(log, &topics.signals_rejected()).await?;
        let rejected_count = rejected.events.len() as u64 + rejected.dropped;
        let rejected = rejected.events;
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for envelope in &rejected {
            if let Payload::RejectedSignal(r) = &envelope.payload {
                for violation in &r.violations {
                    *reasons.entry(violation.rule.clone()).or_default() += 1;
                }
            }
        }
        let mut top: Vec<RejectionCount> = reasons
            .into_iter()
            .map(|(rule, count)| RejectionCount { rule, count })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then(a.rule.cmp(&b.rule)));
        top.truncate(5);

        let mut latest: BTreeMap<String, PnlSnapshot> = BTreeMap::new();
        for envelope in events(log, &topics.pnl_snapshots()).await? {
            if let Payload::PnlSnapshot(snapshot) = envelope.payload {
                let id = snapshot.portfolio_id.to_string();
                let newer = latest.get(&id).is_none_or(|s| snapshot.as_of >= s.as_of);
                if newer {
                    latest.insert(id, snapshot);
                }
            }
        }
        out.insert(
            broker.to_string(),
            BrokerSummary {
                ticks,
                ticks_refused,
                signals: SignalCounts {
                    raw: count(log, &topics.signals_raw()).await?,
                    validated: count(log, &topics.signals_validated()).await?,
                    rejected: rejected_count,
                    at_target: count(log, &topics.signals_at_target()).await?,
                },
                top_rejection_reasons: top,
                orders: OrderCounts {
                    filled: count(log, &topics.orders_filled()).await?,
                    failed: count(log, &topics.orders_failed()).await?,
                },
                portfolios: latest.into_values().map(portfolio_summary).collect(),
            },
        );
    }
    let alerts = events(log, TopicMap::alerts())
        .await?
        .into_iter()
        .filter_map(|envelope| match envelope.payload {
            Payload::Alert(alert) => Some(AlertSummary {
                at: envelope.ts.to_string(),
                kind: alert.kind.as_str().to_string(),
                severity: alert.severity,
                service: alert.service,
                broker: envelope.broker.as_str().to_string(),
                message: alert.message,
            }),
            _ => None,
        })
        .collect();
    Ok(RunSummary {
        brokers: out,
        alerts,
    })
}

/// The market feed's refusals on `market.ticks.dlq` (consumers' dead letters of ticks are not
/// refusals: the feed published those).
async fn refused_ticks(log: &Log) -> Result<u64, LogError> {
    let dlq = events(log, &TopicMap::dlq(TopicMap::market_ticks_str())).await?;
    Ok(dlq
        .iter()
        .filter(|e| matches!(&e.payload, Payload::DlqMessage(m) if m.original_offset < 0))
        .count() as u64)
}

fn portfolio_summary(s: PnlSnapshot) -> PortfolioSummary {
    PortfolioSummary {
        id: s.portfolio_id.to_string(),
        strategy_id: s.strategy_id.to_string(),
        cash: s.cash.to_string(),
        realized_pnl: s.realized_pnl.to_string(),
        unrealized_pnl: s.unrealized_pnl.to_string(),
        fees: s.fees.to_string(),
        total_pnl: s.total_pnl.to_string(),
        positions: s
            .positions
            .into_iter()
            .map(|p| PositionSummary {
                instrument_token: p.instrument_token.0,
                quantity: p.quantity,
                average_price: p.average_price.to_string(),
                last_price: p.last_price.to_string(),
            })
            .collect(),
    }
}

impl RunSummary {
    /// The summary as text for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (broker, b) in &self.brokers {
            out.push_str(&format!(
                "== {broker} ==\nticks {} (refused {})   signals raw {} / validated {} / rejected {} / at target {}   orders filled {} / failed {}\n",
                b.ticks, b.ticks_refused, b.signals.raw, b.signals.validated, b.signals.rejected, b.signals.at_target, b.orders.filled, b.orders.failed
            ));
            if !b.top_rejection_reasons.is_empty() {
                let reasons: Vec<String> = b
                    .top_rejection_reasons
                    .iter()
                    .map(|r| format!("{} ×{}", r.rule, r.count))
                    .collect();
                out.push_str(&format!("top rejection reasons: {}\n", reasons.join(", ")));
            }
            if b.portfolios.is_empty() {
                out.push_str("no portfolio has a fill yet\n");
            }
            for p in &b.portfolios {
                out.push_str(&format!(
                    "{:<28} realized {:>12}  unrealized {:>12}  fees {:>10}  total {:>12}  cash {:>14}\n",
                    p.id, p.realized_pnl, p.unrealized_pnl, p.fees, p.total_pnl, p.cash
                ));
                for pos in p.positions.iter().filter(|pos| pos.quantity != 0) {
                    out.push_str(&format!(
                        "    {:>10}  qty {:>6}  avg {:>12}  last {:>12}\n",
                        pos.instrument_token, pos.quantity, pos.average_price, pos.last_price
                    ));
                }
            }
        }
        for alert in &self.alerts {
            out.push_str(&format!(
                "alert {} {} {} ({}): {}\n",
                alert.at, alert.kind, alert.service, alert.broker, alert.message
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use alpha_panda_core::{
        EventBroker, InstrumentToken, MarketTick, Payload, Price, Timestamp, TopicMap,
    };
    use alpha_panda_stream::memory::{MemoryLog, MemoryLogConfig};
    use alpha_panda_stream::{Log, OutgoingRecord};
    use rust_decimal::Decimal;

    use super::*;

    fn tick(n: i64) -> OutgoingRecord {
        let at = Timestamp::from_unix_micros(1_763_800_000_000_000 + n).unwrap();
        let tick = MarketTick {
            instrument_token: InstrumentToken(408065),
            tradingsymbol: None,
            last_price: Price(Decimal::new(151_240 + n, 2)),
            last_traded_quantity: 1,
            average_traded_price: None,
            volume_traded: 10,
            total_buy_quantity: 0,
            total_sell_quantity: 0,
            ohlc: None,
            oi: None,
            exchange_timestamp: at,
            depth: None,
        };
        let envelope = Envelope::root(
            Payload::MarketTick(tick),
            "408065".into(),
            EventBroker::Shared,
            "test_feed",
            at,
        );
        OutgoingRecord::event(TopicMap::market_ticks(), envelope)
    }

    /// Records retention dropped (every group had read them) still count: the summary of a long
    /// run is not the summary of its last minutes.
    #[tokio::test]
    async fn records_dropped_by_retention_are_counted() {
        let log = Log::Memory(MemoryLog::new(MemoryLogConfig {
            default_partitions: 1,
            max_records_per_partition: 10,
            ..MemoryLogConfig::default()
        }));
        for n in 0..25 {
            log.send(tick(n)).await.unwrap();
        }
        assert_eq!(
            log.read_all(&TopicMap::market_ticks()).await.unwrap().len(),
            10
        );
        let summary = collect(&log, &[Broker::Paper]).await.unwrap();
        assert_eq!(summary.brokers["paper"].ticks, 25);
    }
}
