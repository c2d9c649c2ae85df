//! Decoding a Kafka record once per process, however many groups of the process read it.
//!
//! On the memory log every consumer shares the one typed envelope the log holds. Kafka hands each
//! consumer group its own copy of the bytes, and each decoded it again: with the four services in
//! one process reading every tick, most of a tick's decoding was done four times over. A consumer
//! of a topic that other consumers of the same [`crate::kafka::KafkaLog`] also read asks here
//! first: the first reader of an offset decodes it and leaves the envelope for the others, who
//! take it while its bytes are the very bytes they fetched (a topic deleted and created again
//! holds other bytes at the same offset). Every consumer reads its records here, decoded from the
//! bytes librdkafka holds, so a record's value is never copied out of the client for each reader.
//!
//! Only envelopes are shared: bytes that do not decode are left to each reader, so every group
//! still dead-letters its poison itself. An envelope is kept until every other reader has taken
//! it, or until a record [`SLOTS`] offsets later in its partition takes its slot (a reader that
//! far behind decodes for itself), so what is kept is bounded by the slots, not by the log.

use std::collections::HashMap;
use std::sync::Arc;

use alpha_panda_core::Envelope;
use parking_lot::{Mutex, RwLock};

/// Envelopes kept per partition: the offsets one reader may be ahead of another and still share.
pub const SLOTS: usize = 4096;

/// The envelopes the readers of one process share, by topic and partition.
#[derive(Debug, Default)]
pub struct SharedDecodes {
    topics: RwLock<HashMap<Arc<str>, SharedTopic>>,
}

#[derive(Debug, Default)]
struct SharedTopic {
    /// Consumers reading the topic now.
    readers: u32,
    /// One ring of slots per partition, locked one partition at a time.
    partitions: HashMap<i32, Arc<Mutex<Ring>>>,
}

#[derive(Debug)]
struct Ring {
    slots: Vec<Option<Slot>>,
}

#[derive(Debug)]
struct Slot {
    offset: i64,
    /// What was decoded, to tell the same bytes at the same place from others.
    bytes: Box<[u8]>,
    envelope: Arc<Envelope>,
    /// Readers yet to take it.
    takers_left: u32,
}

impl SharedDecodes {
    /// Counts a reader of `topics` until the returned registration is dropped.
    pub fn register(self: &Arc<Self>, topics: &[Arc<str>]) -> Registration {
        let mut shared = self.topics.write();
        for topic in topics {
            shared.entry(topic.clone()).or_default().readers += 1;
        }
        Registration {
            shared: self.clone(),
            topics: topics.to_vec(),
        }
    }

    /// The envelope `payload`, at `offset` of `topic`'s `partition`, decodes to: another
    /// reader's when it decoded these bytes there, else decoded here, and kept for the others
    /// when the topic has any in this process. `None` when the bytes are not an envelope this
    /// build reads (the caller's own decoding says why).
    pub fn decode(
        &self,
        topic: &Arc<str>,
        partition: i32,
        offset: i64,
        payload: &[u8],
    ) -> Option<Arc<Envelope>> {
        let Some((ring, others)) = self.ring(topic, partition) else {
            return Envelope::from_json(payload).ok().map(Arc::new);
        };
        let index = offset.rem_euclid(SLOTS as i64) as usize;
        {
            let mut ring = ring.lock();
            let slot = &mut ring.slots[index];
            if let Some(kept) = slot
                .as_mut()
                .filter(|kept| kept.offset == offset && *kept.bytes == *payload)
            {
                let envelope = kept.envelope.clone();
                kept.takers_left = kept.takers_left.saturating_sub(1);
                if kept.takers_left == 0 {
                    *slot = None;
                }
                return Some(envelope);
            }
        }
        // Decoded outside the lock: the other readers of the partition need not wait for it.
        let envelope = Arc::new(Envelope::from_json(payload).ok()?);
        ring.lock().slots[index] = Some(Slot {
            offset,
            bytes: payload.into(),
            envelope: envelope.clone(),
            takers_left: others,
        });
        Some(envelope)
    }

    /// The slots of `topic`'s `partition` and how many other readers it has, when it has any.
    fn ring(&self, topic: &Arc<str>, partition: i32) -> Option<(Arc<Mutex<Ring>>, u32)> {
        {
            let shared = self.topics.read();
            let entry = shared.get(topic)?;
            if entry.readers < 2 {
                return None;
            }
            if let Some(ring) = entry.partitions.get(&partition) {
                return Some((ring.clone(), entry.readers - 1));
            }
        }
        let mut shared = self.topics.write();
        let entry = shared.get_mut(topic)?;
        let ring = entry
            .partitions
            .entry(partition)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Ring {
                    slots: (0..SLOTS).map(|_| None).collect(),
                }))
            })
            .clone();
        Some((ring, entry.readers.saturating_sub(1)))
    }
}

/// A reader counted by [`SharedDecodes::register`]; dropping it stops the count. When a topic
/// has one reader left, what was kept of it is let go.
#[derive(Debug)]
pub struct Registration {
    shared: Arc<SharedDecodes>,
    topics: Vec<Arc<str>>,
}

impl Registration {
    /// The share this reader is counted in.
    pub fn shared(&self) -> &SharedDecodes {
        &self.shared
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut shared = self.shared.topics.write();
        for topic in &self.topics {
            if let Some(entry) = shared.get_mut(topic) {
                entry.readers = entry.readers.saturating_sub(1);
                if entry.readers < 2 {
                    entry.partitions.clear();
                }
                if entry.readers == 0 {
                    shared.remove(topic);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::{EventBroker, InstrumentToken, MarketTick, Payload, Price, Timestamp};
    use bytes::Bytes;
    use rust_decimal::Decimal;

    fn tick_bytes(paise: i64) -> Bytes {
        let at = Timestamp::from_unix_micros(1_763_800_000_000_000).unwrap();
        let tick = MarketTick {
            instrument_token: InstrumentToken(408065),
            tradingsymbol: None,
            last_price: Price(Decimal::new(paise, 2)),
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
            EventBroker::Paper,
            "market_feed",
            at,
        );
        Bytes::from(envelope.to_json())
    }

    fn topic() -> Arc<str> {
        Arc::from("market.ticks")
    }

    #[test]
    fn the_readers_of_a_topic_share_one_decode_of_the_same_bytes() {
        let shared = Arc::new(SharedDecodes::default());
        let (a, b, c) = (
            shared.register(&[topic()]),
            shared.register(&[topic()]),
            shared.register(&[topic()]),
        );
        let bytes = tick_bytes(10_000);
        let first = a.shared().decode(&topic(), 0, 7, &bytes).unwrap();
        let second = b.shared().decode(&topic(), 0, 7, &bytes.clone()).unwrap();
        let third = c.shared().decode(&topic(), 0, 7, &bytes).unwrap();
        assert!(Arc::ptr_eq(&first, &second) && Arc::ptr_eq(&first, &third));
        assert_eq!(*first, Envelope::from_json(&bytes).unwrap());
        // Every other reader took it: nothing is kept of it, and a reader reading it again (after
        // a rebalance) decodes it afresh.
        let again = a.shared().decode(&topic(), 0, 7, &bytes).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(first, again);
    }

    #[test]
    fn other_bytes_at_the_same_place_are_decoded_afresh() {
        let shared = Arc::new(SharedDecodes::default());
        let (_a, _b) = (shared.register(&[topic()]), shared.register(&[topic()]));
        let before = shared.decode(&topic(), 0, 7, &tick_bytes(10_000)).unwrap();
        // The topic was deleted and created again: offset 7 now holds another tick.
        let after = shared.decode(&topic(), 0, 7, &tick_bytes(20_000)).unwrap();
        assert!(!Arc::ptr_eq(&before, &after));
        assert_ne!(before.payload, after.payload);
        // Nor does another partition's offset 7 share it.
        let elsewhere = shared.decode(&topic(), 1, 7, &tick_bytes(20_000)).unwrap();
        assert!(!Arc::ptr_eq(&after, &elsewhere));
    }

    #[test]
    fn poison_is_never_kept_for_another_reader() {
        let shared = Arc::new(SharedDecodes::default());
        let (_a, _b) = (shared.register(&[topic()]), shared.register(&[topic()]));
        let poison = Bytes::from_static(b"{\"not\": \"an envelope\"}");
        assert!(shared.decode(&topic(), 0, 3, &poison).is_none());
        assert!(shared.decode(&topic(), 0, 3, &poison).is_none());
        let ring = shared.ring(&topic(), 0).unwrap().0;
        assert!(ring.lock().slots.iter().all(Option::is_none));
    }

    #[test]
    fn a_topic_with_one_reader_keeps_nothing() {
        let shared = Arc::new(SharedDecodes::default());
        let only = shared.register(&[topic()]);
        let bytes = tick_bytes(10_000);
        let decoded = only.shared().decode(&topic(), 0, 7, &bytes).unwrap();
        assert_eq!(*decoded, Envelope::from_json(&bytes).unwrap());
        assert!(shared.ring(&topic(), 0).is_none());
        // A second reader comes, and goes: what was kept for it is let go with it.
        let second = shared.register(&[topic()]);
        shared.decode(&topic(), 0, 8, &bytes).unwrap();
        assert!(shared.topics.read()[&topic()].partitions.contains_key(&0));
        drop(second);
        assert!(shared.topics.read()[&topic()].partitions.is_empty());
        drop(only);
        assert!(shared.topics.read().is_empty());
    }

    #[test]
    fn a_reader_further_behind_than_the_slots_decodes_for_itself() {
        let shared = Arc::new(SharedDecodes::default());
        let (_a, _b) = (shared.register(&[topic()]), shared.register(&[topic()]));
        let bytes = tick_bytes(10_000);
        let early = shared.decode(&topic(), 0, 5, &bytes).unwrap();
        // The first reader runs a whole ring ahead before the second reads offset 5.
        shared
            .decode(&topic(), 0, 5 + SLOTS as i64, &bytes)
            .unwrap();
        let late = shared.decode(&topic(), 0, 5, &bytes).unwrap();
        assert!(!Arc::ptr_eq(&early, &late));
        assert_eq!(early, late);
    }
}
