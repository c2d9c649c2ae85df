//! Topic names and topic specs (ARCHITECTURE §3).
//!
//! [`TopicMap`] is the only place in Alpha Panda that builds a topic name. Topic *classes* carry a
//! development spec; [`TopicSpecOverlay`] turns it into the spec for an environment and cluster.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Broker, Environment, EventType};

/// Suffix of every dead-letter topic.
const DLQ_SUFFIX: &str = ".dlq";

/// The kinds of topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicClass {
    /// `market.ticks` (shared by every namespace).
    MarketTicks,
    /// `{broker}.signals.raw`
    SignalsRaw,
    /// `{broker}.signals.validated`
    SignalsValidated,
    /// `{broker}.signals.rejected`
    SignalsRejected,
    /// `{broker}.signals.at_target`
    SignalsAtTarget,
    /// `{broker}.orders.submitted`
    OrdersSubmitted,
    /// `{broker}.orders.ack`
    OrdersAck,
    /// `{broker}.orders.filled`
    OrdersFilled,
    /// `{broker}.orders.failed`
    OrdersFailed,
    /// `{broker}.pnl.snapshots`
    PnlSnapshots,
    /// `system.alerts` (shared by every namespace; an alert's envelope names its namespace).
    Alerts,
    /// `{topic}.dlq` of any of the above.
    Dlq,
}

impl TopicClass {
    /// The per-broker classes, in pipeline order.
    pub const PER_BROKER: [TopicClass; 9] = [
        TopicClass::SignalsRaw,
        TopicClass::SignalsValidated,
        TopicClass::SignalsRejected,
        TopicClass::SignalsAtTarget,
        TopicClass::OrdersSubmitted,
        TopicClass::OrdersAck,
        TopicClass::OrdersFilled,
        TopicClass::OrdersFailed,
        TopicClass::PnlSnapshots,
    ];

    fn suffix(self) -> &'static str {
        match self {
            TopicClass::MarketTicks => "market.ticks",
            TopicClass::SignalsRaw => "signals.raw",
            TopicClass::SignalsValidated => "signals.validated",
            TopicClass::SignalsRejected => "signals.rejected",
            TopicClass::SignalsAtTarget => "signals.at_target",
            TopicClass::OrdersSubmitted => "orders.submitted",
            TopicClass::OrdersAck => "orders.ack",
            TopicClass::OrdersFilled => "orders.filled",
            TopicClass::OrdersFailed => "orders.failed",
            TopicClass::PnlSnapshots => "pnl.snapshots",
            TopicClass::Alerts => "system.alerts",
            TopicClass::Dlq => "dlq",
        }
    }

    /// The one event type topics of this class carry.
    pub fn event_type(self) -> EventType {
        match self {
            TopicClass::MarketTicks => EventType::MarketTick,
            TopicClass::SignalsRaw => EventType::TradingSignal,
            TopicClass::SignalsValidated => EventType::ValidatedSignal,
            TopicClass::SignalsRejected => EventType::RejectedSignal,
            TopicClass::SignalsAtTarget => EventType::SignalAtTarget,
            TopicClass::OrdersSubmitted => EventType::OrderSubmitted,
            TopicClass::OrdersAck => EventType::OrderAck,
            TopicClass::OrdersFilled => EventType::OrderFilled,
            TopicClass::OrdersFailed => EventType::OrderFailed,
            TopicClass::PnlSnapshots => EventType::PnlSnapshot,
            TopicClass::Alerts => EventType::Alert,
            TopicClass::Dlq => EventType::DlqMessage,
        }
    }

    /// The development spec of this class: RF 1, modest partitions.
    pub fn base_spec(self) -> TopicSpec {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        let (partitions, retention_ms) = match self {
            TopicClass::MarketTicks => (6, DAY_MS),
            TopicClass::SignalsRaw
            | TopicClass::SignalsValidated
            | TopicClass::SignalsRejected
            | TopicClass::SignalsAtTarget => (3, 7 * DAY_MS),
            TopicClass::OrdersSubmitted
            | TopicClass::OrdersAck
            | TopicClass::OrdersFilled
            | TopicClass::OrdersFailed
            | TopicClass::PnlSnapshots => (3, 30 * DAY_MS),
            TopicClass::Alerts | TopicClass::Dlq => (1, 30 * DAY_MS),
        };
        TopicSpec {
            partitions,
            replication_factor: 1,
            retention_ms,
        }
    }
}

/// Partitions, replication and retention of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// `retention.ms`.
    pub retention_ms: i64,
}

/// Turns development specs into the specs of an environment and cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpecOverlay {
    /// The environment.
    pub environment: Environment,
    /// Brokers in the cluster (caps the replication factor).
    pub broker_count: u32,
    /// Production multiplies partitions by this (at least 1).
    pub partition_multiplier: u32,
}

impl TopicSpecOverlay {
    /// Development: specs as they are.
    pub fn development() -> Self {
        Self {
            environment: Environment::Development,
            broker_count: 1,
            partition_multiplier: 1,
        }
    }

    /// The spec of `class` under this overlay: production uses RF 3 (never more than the cluster's
    /// broker count) and multiplies partitions; other environments keep RF 1.
    pub fn apply(&self, class: TopicClass) -> TopicSpec {
        let base = class.base_spec();
        match self.environment {
            Environment::Production => {
                let brokers = i16::try_from(self.broker_count.max(1)).unwrap_or(i16::MAX);
                let multiplier = i32::try_from(self.partition_multiplier.max(1)).unwrap_or(1);
                TopicSpec {
                    partitions: base.partitions.saturating_mul(multiplier),
                    replication_factor: 3.min(brokers),
                    retention_ms: base.retention_ms,
                }
            }
            Environment::Development | Environment::Testing => base,
        }
    }
}

/// A topic name together with its class.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName {
    /// The full name.
    pub name: String,
    /// Its class.
    pub class: TopicClass,
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The name of `$class` in the namespace `$broker` (a literal), spelled out at compile time.
macro_rules! topic_name_in {
    ($broker:literal, $class:expr) => {
        match $class {
            TopicClass::MarketTicks => "market.ticks",
            TopicClass::Alerts => "system.alerts",
            TopicClass::SignalsRaw => concat!($broker, ".signals.raw"),
            TopicClass::SignalsValidated => concat!($broker, ".signals.validated"),
            TopicClass::SignalsRejected => concat!($broker, ".signals.rejected"),
            TopicClass::SignalsAtTarget => concat!($broker, ".signals.at_target"),
            TopicClass::OrdersSubmitted => concat!($broker, ".orders.submitted"),
            TopicClass::OrdersAck => concat!($broker, ".orders.ack"),
            TopicClass::OrdersFilled => concat!($broker, ".orders.filled"),
            TopicClass::OrdersFailed => concat!($broker, ".orders.failed"),
            TopicClass::PnlSnapshots => concat!($broker, ".pnl.snapshots"),
            TopicClass::Dlq => concat!($broker, ".dlq"),
        }
    };
}

/// Topic names of one broker namespace.
///
/// The names are static strings chosen by a table, not formatted: services ask for a topic name
/// for every event they emit. A test checks the table against the `{broker}.{suffix}` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicMap {
    broker: Broker,
}

impl TopicMap {
    /// The topics of `broker`.
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }

    /// The namespace.
    pub fn broker(&self) -> Broker {
        self.broker
    }

    /// `market.ticks`, shared by every namespace.
    pub fn market_ticks() -> String {
        Self::market_ticks_str().to_string()
    }

    /// As [`TopicMap::market_ticks`], borrowed: a feed names it on every record without allocating.
    pub fn market_ticks_str() -> &'static str {
        TopicClass::MarketTicks.suffix()
    }

    /// `system.alerts`, shared by every namespace.
    pub fn alerts() -> &'static str {
        TopicClass::Alerts.suffix()
    }

    /// The topic of a per-broker class (`MarketTicks` and `Alerts` give the shared topics).
    pub fn topic(&self, class: TopicClass) -> String {
        self.topic_str(class).to_owned()
    }

    /// As [`TopicMap::topic`], borrowed: for callers that need no owned name.
    pub fn topic_str(&self, class: TopicClass) -> &'static str {
        match self.broker {
            Broker::Paper => topic_name_in!("paper", class),
            Broker::Zerodha => topic_name_in!("zerodha", class),
        }
    }

    /// `{broker}.signals.raw`
    pub fn signals_raw(&self) -> String {
        self.topic(TopicClass::SignalsRaw)
    }
    /// `{broker}.signals.validated`
    pub fn signals_validated(&self) -> String {
        self.topic(TopicClass::SignalsValidated)
    }
    /// `{broker}.signals.rejected`
    pub fn signals_rejected(&self) -> String {
        self.topic(TopicClass::SignalsRejected)
    }
    /// `{broker}.signals.at_target`
    pub fn signals_at_target(&self) -> String {
        self.topic(TopicClass::SignalsAtTarget)
    }
    /// `{broker}.orders.submitted`
    pub fn orders_submitted(&self) -> String {
        self.topic(TopicClass::OrdersSubmitted)
    }
    /// `{broker}.orders.ack`
    pub fn orders_ack(&self) -> String {
        self.topic(TopicClass::OrdersAck)
    }
    /// `{broker}.orders.filled`
    pub fn orders_filled(&self) -> String {
        self.topic(TopicClass::OrdersFilled)
    }
    /// `{broker}.orders.failed`
    pub fn orders_failed(&self) -> String {
        self.topic(TopicClass::OrdersFailed)
    }
    /// `{broker}.pnl.snapshots`
    pub fn pnl_snapshots(&self) -> String {
        self.topic(TopicClass::PnlSnapshots)
    }

    /// The dead-letter topic of `topic`: `{topic}.dlq`.
    pub fn dlq(topic: &str) -> String {
        format!("{topic}{DLQ_SUFFIX}")
    }

    /// The event type the topic `name` carries, when it is one of the names this map gives out
    /// (looked up in the name table, never parsed); `None` for any other name.
    pub fn event_type_of(name: &str) -> Option<EventType> {
        if Self::is_dlq(name) {
            return Some(EventType::DlqMessage);
        }
        if name == Self::market_ticks_str() {
            return Some(EventType::MarketTick);
        }
        if name == Self::alerts() {
            return Some(EventType::Alert);
        }
        Broker::ALL.into_iter().find_map(|broker| {
            let map = TopicMap::new(broker);
            TopicClass::PER_BROKER
                .into_iter()
                .find(|class| map.topic_str(*class) == name)
                .map(TopicClass::event_type)
        })
    }

    /// Whether `topic` is a dead-letter topic.
    pub fn is_dlq(topic: &str) -> bool {
        topic.ends_with(DLQ_SUFFIX)
    }

    /// The topic a dead-letter topic belongs to.
    pub fn dlq_origin(topic: &str) -> Option<&str> {
        topic.strip_suffix(DLQ_SUFFIX)
    }

    /// Every topic the given namespaces need, each followed by its `.dlq` (alerts have none:
    /// nothing consumes them for an effect), market ticks first.
    pub fn all_topics(brokers: &[Broker]) -> Vec<TopicName> {
        let mut primary = vec![TopicName {
            name: Self::market_ticks(),
            class: TopicClass::MarketTicks,
        }];
        let mut seen = Vec::new();
        for &broker in brokers {
            if seen.contains(&broker) {
                continue;
            }
            seen.push(broker);
            let map = TopicMap::new(broker);
            primary.extend(TopicClass::PER_BROKER.iter().map(|&class| TopicName {
                name: map.topic(class),
                class,
            }));
        }
        let mut all = Vec::with_capacity(primary.len() * 2 + 1);
        all.push(TopicName {
            name: Self::alerts().to_string(),
            class: TopicClass::Alerts,
        });
        for topic in primary {
            let dlq = TopicName {
                name: Self::dlq(&topic.name),
                class: TopicClass::Dlq,
            };
            all.push(topic);
            all.push(dlq);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let paper = TopicMap::new(Broker::Paper);
        let zerodha = TopicMap::new(Broker::Zerodha);
        assert_eq!(TopicMap::market_ticks(), "market.ticks");
        assert_eq!(paper.signals_raw(), "paper.signals.raw");
        assert_eq!(zerodha.orders_filled(), "zerodha.orders.filled");
        assert_eq!(zerodha.pnl_snapshots(), "zerodha.pnl.snapshots");
        assert_eq!(TopicMap::dlq("market.ticks"), "market.ticks.dlq");
        assert_eq!(
            TopicMap::dlq_origin("paper.orders.ack.dlq"),
            Some("paper.orders.ack")
        );
        let all = TopicMap::all_topics(&[Broker::Paper, Broker::Zerodha]);
        assert_eq!(all.len(), 1 + 2 * (1 + 2 * 9));
        assert_eq!(TopicMap::alerts(), "system.alerts");
        assert!(all.iter().all(|t| !t.name.contains("live")));
    }

    #[test]
    fn each_topic_carries_one_event_type() {
        let paper = TopicMap::new(Broker::Paper);
        assert_eq!(
            TopicMap::event_type_of("market.ticks"),
            Some(EventType::MarketTick)
        );
        assert_eq!(
            TopicMap::event_type_of(&paper.orders_filled()),
            Some(EventType::OrderFilled)
        );
        assert_eq!(
            TopicMap::event_type_of(&TopicMap::new(Broker::Zerodha).signals_at_target()),
            Some(EventType::SignalAtTarget)
        );
        assert_eq!(
            TopicMap::event_type_of("paper.orders.filled.dlq"),
            Some(EventType::DlqMessage)
        );
        assert_eq!(
            TopicMap::event_type_of("system.alerts"),
            Some(EventType::Alert)
        );
        assert_eq!(TopicMap::event_type_of("rt.input"), None);
        assert_eq!(TopicMap::event_type_of("live.orders.filled"), None);
    }

    #[test]
    fn the_static_name_table_follows_the_naming_rule() {
        let classes = [TopicClass::MarketTicks, TopicClass::Alerts, TopicClass::Dlq]
            .into_iter()
            .chain(TopicClass::PER_BROKER);
        for class in classes {
            for broker in Broker::ALL {
                let map = TopicMap::new(broker);
                let want = match class {
                    TopicClass::MarketTicks => "market.ticks".to_string(),
                    TopicClass::Alerts => "system.alerts".to_string(),
                    TopicClass::Dlq => format!("{}{DLQ_SUFFIX}", broker.as_str()),
                    other => format!("{}.{}", broker.as_str(), other.suffix()),
                };
                assert_eq!(map.topic_str(class), want, "{broker} {class:?}");
                assert_eq!(map.topic(class), want);
            }
        }
    }

    #[test]
    fn production_overlay_caps_rf_by_brokers_and_multiplies_partitions() {
        let dev = TopicSpecOverlay::development().apply(TopicClass::MarketTicks);
        assert_eq!(dev.replication_factor, 1);
        let prod = TopicSpecOverlay {
            environment: Environment::Production,
            broker_count: 5,
            partition_multiplier: 2,
        };
        assert_eq!(prod.apply(TopicClass::MarketTicks).replication_factor, 3);
        assert_eq!(prod.apply(TopicClass::MarketTicks).partitions, 12);
        let small = TopicSpecOverlay {
            broker_count: 2,
            ..prod
        };
        assert_eq!(small.apply(TopicClass::OrdersFilled).replication_factor, 2);
    }
}
