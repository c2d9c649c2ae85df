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
//! raw bytes are decoded one by one, so that poison reaches its DLQ. Kafka hands records over one
//! at a time, so nothing is conflated there.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use alpha_panda_core::EventType;
use rustc_hash::FxHasher;

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

    /// Marks `superseded[i]` for every record `i` of one partition's batch, given as `(key, type)`
    /// in log order (`type` is `None` for raw bytes), whose type this conflates and that a later
    /// record with the same key follows. Records without a key or a known type are never marked,
    /// nor is the last record of any key.
    pub fn mark_superseded<'a>(
        &self,
        batch: impl DoubleEndedIterator<Item = (Option<&'a str>, Option<EventType>)> + ExactSizeIterator,
        superseded: &mut Vec<bool>,
    ) {
        superseded.clear();
        superseded.resize(batch.len(), false);
        let mut later: HashSet<&str, BuildHasherDefault<FxHasher>> = HashSet::default();
        for (index, (key, event_type)) in batch.enumerate().rev() {
            let (Some(key), Some(event_type)) = (key, event_type) else {
                continue;
            };
            if self.applies(event_type) && !later.insert(key) {
                superseded[index] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Option<EventType> = Some(EventType::MarketTick);
    const ACK: Option<EventType> = Some(EventType::OrderAck);

    fn marks(conflation: Conflation, batch: &[(Option<&str>, Option<EventType>)]) -> Vec<bool> {
        let mut superseded = vec![true; 9];
        conflation.mark_superseded(batch.iter().copied(), &mut superseded);
        superseded
    }

    fn ticks() -> Conflation {
        Conflation::of(|t| t == EventType::MarketTick)
    }

    #[test]
    fn only_the_last_tick_of_each_key_is_kept() {
        let batch = [
            (Some("1"), TICK),
            (Some("2"), TICK),
            (Some("1"), TICK),
            (Some("2"), TICK),
            (Some("1"), TICK),
        ];
        assert_eq!(marks(ticks(), &batch), [true, true, true, false, false]);
    }

    #[test]
    fn other_types_keyless_and_raw_records_are_never_skipped() {
        let batch = [
            (Some("1"), ACK),
            (Some("1"), ACK),
            (None, TICK),
            (None, TICK),
            // Raw bytes: a type they claim is not enough, they may be poison bound for the DLQ.
            (Some("2"), None),
            (Some("2"), None),
        ];
        assert_eq!(marks(ticks(), &batch), [false; 6]);
    }

    #[test]
    fn nothing_is_skipped_without_conflation() {
        let batch = [(Some("1"), TICK), (Some("1"), TICK)];
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
}
