//! Conflation: skipping a last-value update that a later update of the same key, fetched in the
//! same batch, makes obsolete.
//!
//! A tick is a last-value update: a service that only keeps the latest price of an instrument (the
//! risk manager's fallback price, the portfolio manager's marks, a trading engine with no resting
//! order) ends a fetched batch in exactly the same state whether it folds in every tick of an
//! instrument or only the last one. Under load a batch holds dozens of ticks per instrument, so
//! skipping the superseded ones is most of such a consumer's work saved.
//!
//! Before each poll the runtime asks the handler which event types it conflates
//! ([`crate::Handler::conflates`]) and hands the answer to the consumer as a [`Conflation`]. The
//! memory log applies it while fetching one partition's batch: a superseded record is not even
//! copied out of the log, only counted, and it is committed with the rest because the last record
//! of every key (so the batch's last record) is always handed over. Only typed events take part:
//! raw bytes are decoded one by one, so that poison reaches its DLQ. Kafka's records are bytes: the
//! runtime decodes a polled batch first and conflates what decoded and would be handled
//! (`processor/conflate.rs`).
//!
//! The log works out each record's [`LastValue`] identity (type and key) once, when it is
//! appended, and keeps it beside the record: marking a batch then compares small integers held in
//! the log itself, instead of every consumer following every record to its envelope for the key.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use alpha_panda_core::EventType;
use rustc_hash::FxHasher;

/// A record key packed into an integer, for keys of at most [`ShortKey::MAX_LEN`] bytes (an
/// instrument token, a strategy and instrument pair). Exact: the bytes and the length are both in
/// it, so two keys pack equal only when they are equal. A longer key has none, and its records
/// are never conflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortKey([u64; 2]);

impl ShortKey {
    /// The longest key that packs.
    pub const MAX_LEN: usize = 15;

    /// `key` packed, or `None` when it is longer than [`ShortKey::MAX_LEN`].
    pub fn of(key: &str) -> Option<Self> {
        let bytes = key.as_bytes();
        if bytes.len() > Self::MAX_LEN {
            return None;
        }
        let mut packed = [0u8; 16];
        packed[..bytes.len()].copy_from_slice(bytes);
        packed[Self::MAX_LEN] = bytes.len() as u8;
        let packed = u128::from_le_bytes(packed);
        // Two halves rather than a `u128`, whose 16-byte alignment would pad every stored record.
        Some(Self([packed as u64, (packed >> 64) as u64]))
    }
}

/// What a record is a last value of: its event type and its key. Only typed events with a short
/// key have one; raw bytes never do (they may be poison bound for the DLQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastValue {
    /// The record's event type.
    pub event_type: EventType,
    /// The record's key.
    pub key: ShortKey,
}

impl LastValue {
    /// The identity of a typed record of `event_type` keyed `key`, when the key packs.
    pub fn of(event_type: EventType, key: Option<&str>) -> Option<Self> {
        Some(Self {
            event_type,
            key: ShortKey::of(key?)?,
        })
    }
}

/// Scratch space for marking batches, kept by a consumer to reuse its allocations.
#[derive(Debug, Default)]
pub struct Marks {
    superseded: Vec<bool>,
    later: HashSet<ShortKey, BuildHasherDefault<FxHasher>>,
}

impl Marks {
    /// One flag per record of the batch last marked: whether a later record supersedes it.
    pub fn superseded(&self) -> &[bool] {
        &self.superseded
    }
}

/// The event types a consumer may conflate, asked of the handler before a poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conflation {
    by_type: [bool; EventType::ALL.len()],
}

impl Conflation {
    /// Nothing is conflated.
    pub fn none() -> Self {
        Self::default()
    }

    /// The types `conflates` accepts.
    pub fn of(conflates: impl Fn(EventType) -> bool) -> Self {
        Self {
            by_type: EventType::ALL.map(conflates),
        }
    }

    /// Whether `event_type` is conflated.
    pub fn applies(&self, event_type: EventType) -> bool {
        self.by_type[event_type as usize]
    }

    /// Whether no type is conflated.
    pub fn is_none(&self) -> bool {
        !self.by_type.contains(&true)
    }

    /// Marks every record of one partition's batch, given by its [`LastValue`] identity in log
    /// order, whose type this conflates and that a later record of the same type and key follows;
    /// the answer is [`Marks::superseded`], one flag per record. A record without an identity is
    /// never marked, nor is the last record of any key.
    pub fn mark_superseded(
        &self,
        batch: impl DoubleEndedIterator<Item = Option<LastValue>> + ExactSizeIterator,
        marks: &mut Marks,
    ) {
        marks.superseded.clear();
        marks.superseded.resize(batch.len(), false);
        if self.is_none() {
            return;
        }
        marks.later.clear();
        for (index, identity) in batch.enumerate().rev() {
            let Some(LastValue { event_type, key }) = identity else {
                continue;
            };
            if self.applies(event_type) && !marks.later.insert(key) {
                marks.superseded[index] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: EventType = EventType::MarketTick;
    const ACK: EventType = EventType::OrderAck;

    fn typed(key: &str, event_type: EventType) -> Option<LastValue> {
        LastValue::of(event_type, Some(key))
    }

    fn marks(conflation: Conflation, batch: &[Option<LastValue>]) -> Vec<bool> {
        let mut marks = Marks::default();
        // Left over from an earlier batch: must not leak into this one.
        conflation.mark_superseded([typed("1", TICK); 9].into_iter(), &mut marks);
        conflation.mark_superseded(batch.iter().copied(), &mut marks);
        marks.superseded().to_vec()
    }

    fn ticks() -> Conflation {
        Conflation::of(|t| t == EventType::MarketTick)
    }

    #[test]
    fn only_the_last_tick_of_each_key_is_kept() {
        let batch = [
            typed("1", TICK),
            typed("2", TICK),
            typed("1", TICK),
            typed("2", TICK),
            typed("1", TICK),
        ];
        assert_eq!(marks(ticks(), &batch), [true, true, true, false, false]);
    }

    #[test]
    fn other_types_keyless_and_raw_records_are_never_skipped() {
        let batch = [
            typed("1", ACK),
            typed("1", ACK),
            LastValue::of(TICK, None),
            LastValue::of(TICK, None),
            // Raw bytes have no identity: they may be poison bound for the DLQ.
            None,
            None,
        ];
        assert_eq!(marks(ticks(), &batch), [false; 6]);
    }

    #[test]
    fn nothing_is_skipped_without_conflation() {
        let batch = [typed("1", TICK), typed("1", TICK)];
        assert!(Conflation::none().is_none());
        assert!(!ticks().is_none());
        assert_eq!(marks(Conflation::none(), &batch), [false, false]);
    }

    #[test]
    fn the_mask_answers_per_type() {
        let conflation = Conflation::of(|t| t == EventType::OrderAck);
        for event_type in EventType::ALL {
            assert_eq!(
                conflation.applies(event_type),
                event_type == EventType::OrderAck
            );
        }
    }

    #[test]
    fn short_keys_are_equal_exactly_when_the_keys_are() {
        let keys = [
            "",
            "1",
            "10",
            "100",
            "408065",
            "408065\0",
            "1\0",
            "abcdefghijklmno",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(ShortKey::of(a) == ShortKey::of(b), a == b, "{a:?} vs {b:?}");
            }
        }
        assert!(ShortKey::of("abcdefghijklmnop").is_none());
        // A record whose key is too long to pack is never conflated.
        let long = "a-key-longer-than-fifteen-bytes";
        assert_eq!(
            marks(ticks(), &[typed(long, TICK), typed(long, TICK)]),
            [false, false]
        );
    }
}
