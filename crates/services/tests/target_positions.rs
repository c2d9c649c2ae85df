//! Signals state a target, executions close the gap (ARCHITECTURE §6; review C3). On the Zerodha
//! namespace, where any order may fail or fill in part, a long/flat strategy's belief drifts from
//! what the namespace holds — entries rejected by a daily limit,
//! orders failed or filled in part, the broker squaring a position off, fills re-sent, restarts —
//! and whatever the sequence, the risk manager never lets the namespace go short, and applies each
//! fill once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alpha_panda_core::{
    derive_event_id, Broker, Envelope, EventBroker, EventId, ExecutionMode, FeeBreakdown,
    InstrumentToken, OrderFailed, OrderFilled, OrderId, OrderType, Payload, Price, Quantity, Side,
    StrategyId, TickRef, Timestamp, TradingSignal,
};
use alpha_panda_services::nse_universe;
use alpha_panda_services::risk_manager::service::RiskManager;
use alpha_panda_services::risk_manager::RiskLimits;
use alpha_panda_services::trading_engine::zerodha::zerodha_order_id;
use alpha_panda_store::testing::TestStore;
use alpha_panda_store::{SqlBackend, Store};
use alpha_panda_stream::{checkpoint_now, CommitOffset};
use proptest::prelude::*;
use rust_decimal::Decimal;

mod common;

const INFY: InstrumentToken = InstrumentToken(common::INFY);
const UNITS: i64 = 2;

/// One thing that happens to the namespace.
#[derive(Debug, Clone)]
enum Step {
    /// The strategy asks to be long `UNITS` (`true`) or flat.
    Signal(bool),
    /// The oldest open order fills this many units (at least one, at most what it has left).
    Fill(u8),
    /// The oldest open order fails with what it has left.
    Fail,
    /// A fill seen before is delivered again, under a new offset.
    Resend(u8),
    /// The broker cancels the open orders and squares the position off with an order of its own
    /// (Zerodha's MIS square-off near the close).
    SquareOff,
    /// The risk manager checkpoints, stops and starts again from the checkpoint.
    Restart,
    /// The next trading day begins: yesterday's open day orders expired at the close, and
    /// nothing says so.
    NextDay,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<bool>().prop_map(Step::Signal),
        3 => (1u8..=3).prop_map(Step::Fill),
        1 => Just(Step::Fail),
        1 => any::<u8>().prop_map(Step::Resend),
        1 => Just(Step::SquareOff),
        1 => Just(Step::Restart),
        1 => Just(Step::NextDay),
    ]
}

/// A world around one Zerodha risk manager: what it approved, what filled, and the log offsets.
struct World {
    store: Store,
    manager: RiskManager,
    offset: i64,
    day: i64,
    n: u64,
    /// Approved orders not yet done: (order id, side, units left).
    open: Vec<(OrderId, Side, u32)>,
    fills_sent: Vec<Envelope>,
    /// Units filled by distinct fill ids, per order: never more than the order asked for.
    filled_per_order: BTreeMap<String, (u32, u32)>,
    /// Raw signals sent, and answers received (each signal gets one, perhaps later).
    signals: u64,
    answers: u64,
    /// The last raw signal sent.
    last_signal: Option<Envelope>,
}

fn limits() -> RiskLimits {
    RiskLimits {
        // Entries are refused now and then: the strategy's belief then drifts from its position.
        max_daily_trades_per_strategy: 3,
        enforce_market_hours: false,
        ..RiskLimits::default()
    }
}

async fn open(store: &Store) -> RiskManager {
    let instruments: HashMap<_, _> = nse_universe()
        .into_iter()
        .map(|i| (i.instrument_token, i))
        .collect();
    RiskManager::open(
        Broker::Zerodha,
        limits(),
        Arc::new(instruments),
        store.clone(),
        None,
    )
    .await
    .unwrap()
}

impl World {
    fn now(&self) -> Timestamp {
        // 10:00 IST on consecutive calendar days, a second per step: days off the NSE calendar
        // do not matter without market hours.
        Timestamp::from_unix_micros(
            1_767_590_400_000_000 + self.day * 86_400_000_000 + self.n as i64 * 1_000_000,
        )
        .unwrap()
    }

    /// Hands `envelope` to the risk manager; the orders it approves (now, or released by a fill
    /// or a failure) are followed from here on.
    async fn deliver(&mut self, topic: &str, envelope: &Envelope) {
        let now = self.now();
        let outputs = common::deliver(&mut self.manager, topic, self.offset, envelope, now)
            .await
            .unwrap();
        self.offset += 1;
        for output in outputs {
            self.answers += 1;
            if let Payload::ValidatedSignal(validated) = &output.payload {
                let id = output.id.expect("the risk manager names its answers");
                assert_eq!(
                    id,
                    derive_event_id(validated.signal_event_id, "risk_manager", 0)
                );
                let order_id = zerodha_order_id(id).unwrap();
                self.filled_per_order
                    .insert(order_id.to_string(), (0, validated.signal.quantity.0));
                self.open
                    .push((order_id, validated.signal.side, validated.signal.quantity.0));
            }
        }
    }

    fn fill_envelope(&mut self, order_id: OrderId, side: Side, units: u32) -> Envelope {
        self.n += 1;
        Envelope::root(
            Payload::OrderFilled(OrderFilled {
                order_id,
                broker_order_id: None,
                strategy_id: StrategyId::new("long_only").unwrap(),
                instrument_token: INFY,
                tradingsymbol: None,
                side,
                quantity: Quantity(units),
                fill_price: Price(Decimal::from(1500)),
                fees: FeeBreakdown::default(),
                fees_source: Default::default(),
                execution_mode: ExecutionMode::Zerodha,
                filled_at: self.now(),
            }),
            "long_only:408065".into(),
            EventBroker::Zerodha,
            "trading_engine",
            self.now(),
        )
    }

    /// The oldest open order fails with what it has left.
    async fn fail_oldest(&mut self) {
        let Some((order_id, side, left)) = self.open.first().cloned() else {
            return;
        };
        self.open.remove(0);
        let failed = Envelope::root(
            Payload::OrderFailed(OrderFailed {
                order_id,
                broker_order_id: None,
                strategy_id: StrategyId::new("long_only").unwrap(),
                instrument_token: INFY,
                side,
                quantity: Quantity(left),
                reason: "rejected by the exchange".into(),
                retryable: false,
                execution_mode: ExecutionMode::Zerodha,
            }),
            "long_only:408065".into(),
            EventBroker::Zerodha,
            "trading_engine",
            self.now(),
        );
        self.deliver("zerodha.orders.failed", &failed).await;
    }

    async fn apply(&mut self, step: &Step) {
        self.n += 1;
        match step {
            Step::Signal(long) => {
                let (side, target) = if *long {
                    (Side::Buy, UNITS)
                } else {
                    (Side::Sell, 0)
                };
                let tick_id = EventId::new_root();
                let signal = Envelope::root(
                    Payload::TradingSignal(TradingSignal {
                        strategy_id: StrategyId::new("long_only").unwrap(),
                        instrument_token: INFY,
                        side,
                        quantity: Quantity(UNITS as u32),
                        target_quantity: target,
                        order_type: OrderType::Market,
                        limit_price: None,
                        reason: "test".into(),
                        tick: TickRef {
                            instrument_token: INFY,
                            last_price: Price(Decimal::from(1500)),
                            exchange_timestamp: self.now(),
                            event_id: tick_id,
                        },
                    }),
                    "long_only:408065".into(),
                    EventBroker::Zerodha,
                    "strategy_runner",
                    self.now(),
                );
                self.signals += 1;
                self.deliver("zerodha.signals.raw", &signal).await;
                self.last_signal = Some(signal);
            }
            Step::Fill(units) => {
                let Some((order_id, side, left)) = self.open.first().cloned() else {
                    return;
                };
                let units = u32::from(*units).min(left);
                let fill = self.fill_envelope(order_id.clone(), side, units);
                self.deliver("zerodha.orders.filled", &fill).await;
                self.fills_sent.push(fill);
                self.filled_per_order
                    .get_mut(order_id.as_str())
                    .expect("approved")
                    .0 += units;
                if units == left {
                    self.open.remove(0);
                } else {
                    self.open[0].2 -= units;
                }
            }
            Step::Fail => self.fail_oldest().await,
            Step::Resend(which) => {
                if self.fills_sent.is_empty() {
                    return;
                }
                let fill = self.fills_sent[*which as usize % self.fills_sent.len()].clone();
                self.deliver("zerodha.orders.filled", &fill).await;
            }
            Step::SquareOff => {
                while !self.open.is_empty() {
                    self.fail_oldest().await;
                }
                let held = self
                    .manager
                    .state()
                    .position(&StrategyId::new("long_only").unwrap(), INFY);
                if held > 0 {
                    let fill = self.fill_envelope(
                        OrderId::new(format!("broker-square-off-{}", self.n)).unwrap(),
                        Side::Sell,
                        held as u32,
                    );
                    self.deliver("zerodha.orders.filled", &fill).await;
                    self.fills_sent.push(fill);
                }
            }
            Step::Restart => {
                let offsets = [CommitOffset {
                    topic: Arc::from("zerodha.signals.raw"),
                    partition: 0,
                    next_offset: self.offset,
                    last_event_id: None,
                }];
                checkpoint_now(&mut self.manager, &offsets).await.unwrap();
                self.manager = open(&self.store).await;
            }
            Step::NextDay => {
                self.day += 1;
                self.open.clear();
            }
        }
    }
}

fn check_loop(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = TestStore::new(SqlBackend::Sqlite).await.unwrap();
        let manager = open(&db.store).await;
        let mut world = World {
            store: db.store.clone(),
            manager,
            offset: 0,
            day: 0,
            n: 0,
            open: Vec::new(),
            fills_sent: Vec::new(),
            filled_per_order: BTreeMap::new(),
            signals: 0,
            answers: 0,
            last_signal: None,
        };
        let strategy = StrategyId::new("long_only").unwrap();
        let mut unique_fills: BTreeMap<EventId, i64> = BTreeMap::new();
        for step in &steps {
            world.apply(step).await;
            for fill in &world.fills_sent {
                if let Payload::OrderFilled(f) = &fill.payload {
                    unique_fills.insert(fill.id, f.side.sign() * f.quantity.as_i64());
                }
            }
            let position = world.manager.state().position(&strategy, INFY);
            let exposure = world.manager.state().exposure(&strategy, INFY);
            prop_assert!(position >= 0, "short {position} after {step:?}");
            prop_assert!(exposure >= 0, "exposure {exposure} after {step:?}");
            prop_assert!(exposure <= UNITS, "exposure {exposure} past the target");
            prop_assert_eq!(
                position,
                unique_fills.values().sum::<i64>(),
                "a fill was applied twice or lost"
            );
        }
        let waiting = world.manager.state().deferred.len() as u64;
        prop_assert_eq!(
            world.answers + waiting,
            world.signals,
            "a signal was never answered"
        );
        for (order, (filled, asked)) in &world.filled_per_order {
            prop_assert!(filled <= asked, "{order} filled {filled} of {asked}");
        }
        db.cleanup().await.unwrap();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_long_only_strategy_is_never_short_and_each_fill_counts_once(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        check_loop(steps)?;
    }
}

/// The review's scenario (C3 b): the entry is refused by the daily limit, the strategy believes it
/// is long anyway, and its exit the next day is answered "already at target" instead of a short.
#[test]
fn an_exit_after_a_refused_entry_is_no_order() {
    check_loop(vec![
        Step::Signal(true),
        Step::Fill(2),
        Step::Signal(false),
        Step::Fill(2),
        Step::Signal(true),
        Step::Fill(2),
        Step::Signal(false), // the third approval; the fourth signal is refused:
        Step::Fill(2),
        Step::Signal(true),
        Step::NextDay,
        Step::Signal(false),
    ])
    .unwrap();
}

/// A signal judged again after a crash gets the answer it got before, even when the fill of the
/// order it became is read back first (the two come from different topics): the same validated
/// signal, under the same id, not "already at target".
#[tokio::test]
async fn a_signal_judged_again_after_its_fill_gets_the_same_answer() {
    let db = TestStore::new(SqlBackend::Sqlite).await.unwrap();
    let mut world = World {
        store: db.store.clone(),
        manager: open(&db.store).await,
        offset: 0,
        day: 0,
        n: 0,
        open: Vec::new(),
        fills_sent: Vec::new(),
        filled_per_order: BTreeMap::new(),
        signals: 0,
        answers: 0,
        last_signal: None,
    };
    world.apply(&Step::Signal(true)).await;
    let (order_id, side, units) = world.open[0].clone();
    let signal_offset = world.offset - 1;
    world.apply(&Step::Fill(units as u8)).await;
    let fill = world.fills_sent[0].clone();
    // The crash: nothing was checkpointed; the restarted instance reads the fill first, then the
    // signal again.
    world.manager = open(&db.store).await;
    let now = world.now();
    common::deliver(&mut world.manager, "zerodha.orders.filled", 0, &fill, now)
        .await
        .unwrap();
    let signal = world.last_signal.clone().expect("a signal was sent");
    let again = common::deliver(
        &mut world.manager,
        "zerodha.signals.raw",
        signal_offset,
        &signal,
        now,
    )
    .await
    .unwrap();
    assert_eq!(again.len(), 1);
    let Payload::ValidatedSignal(validated) = &again[0].payload else {
        panic!(
            "answered differently the second time: {:?}",
            again[0].payload
        );
    };
    assert_eq!(validated.signal.side, side);
    assert_eq!(validated.signal.quantity.0, units);
    assert_eq!(
        zerodha_order_id(again[0].id.unwrap()).unwrap(),
        order_id,
        "the same order"
    );
    let strategy = StrategyId::new("long_only").unwrap();
    assert_eq!(world.manager.state().exposure(&strategy, INFY), UNITS);
    assert!(
        world.manager.state().in_flight.is_empty(),
        "nothing left in flight"
    );
    db.cleanup().await.unwrap();
}
