//! The per-instrument indicator states of one strategy, looked up once per tick.
//!
//! Every tick of every traded instrument reaches every strategy that trades it, so the lookup is a
//! single hash probe that answers both "is this instrument traded?" and "where is its state?".
//! States are saved and restored as one map ordered by token, so the same states always give the
//! same checkpoint.

use std::collections::BTreeMap;

use alpha_panda_core::{InstrumentToken, MarketTick};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The traded instruments of a strategy and the indicator state of each that has seen a tick.
#[derive(Debug, Clone)]
pub(crate) struct InstrumentStates<S> {
    /// The instruments as configured (what `Strategy::instruments` returns).
    instruments: Vec<InstrumentToken>,
    /// The slot in `states` of each traded instrument (a duplicated token shares one slot).
    slots: FxHashMap<InstrumentToken, usize>,
    /// One per distinct traded instrument; `None` until its first usable tick.
    states: Vec<Option<S>>,
    /// Restored states of instruments the strategy no longer trades: never updated, but kept so a
    /// save after a restore writes back what was read, as a plain map of states did.
    untraded: BTreeMap<InstrumentToken, S>,
}

impl<S> InstrumentStates<S> {
    /// No state yet for any of `instruments`.
    pub(crate) fn new(instruments: Vec<InstrumentToken>) -> Self {
        let mut slots = FxHashMap::default();
        for token in &instruments {
            let next = slots.len();
            slots.entry(*token).or_insert(next);
        }
        let states = std::iter::repeat_with(|| None).take(slots.len()).collect();
        Self {
            instruments,
            slots,
            states,
            untraded: BTreeMap::new(),
        }
    }

    /// The instruments as configured.
    pub(crate) fn instruments(&self) -> &[InstrumentToken] {
        &self.instruments
    }

    /// The state of `token`, if it has one (traded and ticked, or restored).
    pub(crate) fn get(&self, token: InstrumentToken) -> Option<&S> {
        match self.slots.get(&token) {
            Some(&slot) => self.states[slot].as_ref(),
            None => self.untraded.get(&token),
        }
    }

    /// The indicator input of `tick` ([`super::indicator_price`]) and the state of its instrument,
    /// created with `S::default()` on its first usable tick; `None` when the strategy does not trade
    /// the instrument or the price is not usable (no state is created then).
    pub(crate) fn tick_input(&mut self, tick: &MarketTick) -> Option<(f64, &mut S)>
    where
        S: Default,
    {
        let slot = *self.slots.get(&tick.instrument_token)?;
        let x = super::indicator_price(tick)?;
        Some((x, self.states[slot].get_or_insert_with(S::default)))
    }

    /// Every state, as a JSON object keyed by token (the checkpoint format).
    pub(crate) fn save(&self) -> serde_json::Value
    where
        S: Serialize,
    {
        let mut all: BTreeMap<InstrumentToken, &S> =
            self.untraded.iter().map(|(t, s)| (*t, s)).collect();
        for (token, &slot) in &self.slots {
            if let Some(state) = &self.states[slot] {
                all.insert(*token, state);
            }
        }
        serde_json::to_value(&all).unwrap_or_default()
    }

    /// Replaces every state with one saved by [`InstrumentStates::save`]; on error nothing changes.
    ///
    /// # Errors
    /// When `saved` does not decode into a map of states.
    pub(crate) fn restore(&mut self, saved: serde_json::Value) -> Result<(), serde_json::Error>
    where
        S: DeserializeOwned,
    {
        let saved: BTreeMap<InstrumentToken, S> = serde_json::from_value(saved)?;
        self.states.iter_mut().for_each(|s| *s = None);
        self.untraded.clear();
        for (token, state) in saved {
            match self.slots.get(&token) {
                Some(&slot) => self.states[slot] = Some(state),
                None => {
                    self.untraded.insert(token, state);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::tick;
    use rust_decimal::Decimal;

    fn table() -> InstrumentStates<u64> {
        InstrumentStates::new(vec![
            InstrumentToken(7),
            InstrumentToken(3),
            InstrumentToken(7),
        ])
    }

    #[test]
    fn only_traded_instruments_with_usable_prices_get_a_state() {
        let mut t = table();
        assert_eq!(
            t.instruments(),
            &[InstrumentToken(7), InstrumentToken(3), InstrumentToken(7)]
        );
        assert!(t.tick_input(&tick(9, Decimal::ONE, 0)).is_none());
        assert!(t.tick_input(&tick(3, Decimal::ZERO, 0)).is_none());
        assert!(t.get(InstrumentToken(3)).is_none());
        let (x, state) = t.tick_input(&tick(3, Decimal::new(1005, 1), 0)).unwrap();
        assert_eq!(x, 100.5);
        *state += 1;
        *t.tick_input(&tick(7, Decimal::ONE, 1)).unwrap().1 += 5;
        assert_eq!(t.get(InstrumentToken(3)), Some(&1));
        assert_eq!(t.get(InstrumentToken(7)), Some(&5));
        assert_eq!(t.get(InstrumentToken(9)), None);
    }

    #[test]
    fn save_is_a_token_ordered_map_and_restore_round_trips_untraded_states() {
        let mut t = table();
        *t.tick_input(&tick(7, Decimal::ONE, 0)).unwrap().1 = 70;
        *t.tick_input(&tick(3, Decimal::ONE, 0)).unwrap().1 = 30;
        let saved = t.save();
        let plain: BTreeMap<InstrumentToken, u64> =
            [(InstrumentToken(3), 30), (InstrumentToken(7), 70)].into();
        assert_eq!(saved, serde_json::to_value(&plain).unwrap());

        // A checkpoint holding an instrument no longer traded, and missing a traded one.
        let old: BTreeMap<InstrumentToken, u64> =
            [(InstrumentToken(1), 10), (InstrumentToken(3), 31)].into();
        t.restore(serde_json::to_value(&old).unwrap()).unwrap();
        assert_eq!(t.get(InstrumentToken(7)), None);
        assert_eq!(t.get(InstrumentToken(3)), Some(&31));
        assert_eq!(t.get(InstrumentToken(1)), Some(&10));
        assert_eq!(t.save(), serde_json::to_value(&old).unwrap());

        // A state that does not decode changes nothing.
        assert!(t.restore(serde_json::json!({"3": "x"})).is_err());
        assert_eq!(t.get(InstrumentToken(3)), Some(&31));
    }
}
