//! One suite for every `Cache` method, run against the memory backend (with a manual clock) and
//! the real Redis (with a random per-test prefix, so tests run in parallel and never collide).

use std::{sync::Arc, time::Duration};

use alpha_panda_cache::{
    ist_trading_day_end, Cache, CacheError, PositionEntry, PutOutcome, ServiceMetrics,
    ServiceMetricsEntry,
};
use alpha_panda_core::{
    Broker, Clock, DedupStore, ErrorClass, EventBroker, EventId, InstrumentToken, ManualClock,
    Money, PnlSnapshot, PortfolioId, PositionSnapshot, Price, SnapshotType, StrategyId,
    SystemClock, Timestamp,
};
use chrono::{Days, NaiveDate};
use rust_decimal_macros::dec;

fn redis_url() -> String {
    std::env::var("ALPHA_PANDA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn at(rfc3339: &str) -> Timestamp {
    serde_json::from_value(serde_json::Value::String(rfc3339.into())).unwrap()
}

fn strategy(id: &str) -> StrategyId {
    StrategyId::new(id).unwrap()
}

/// A cache on one backend plus what the suite needs to know about that backend's time.
struct Harness {
    cache: Cache,
    /// The memory backend's clock; `None` for Redis, which uses its own.
    clock: Option<Arc<ManualClock>>,
    /// The Redis key prefix to clean up; `None` for memory.
    redis_prefix: Option<String>,
}

impl Harness {
    async fn memory() -> Self {
        // 10:00 IST on Monday 2 March 2026.
        let clock = Arc::new(ManualClock::new(at("2026-03-02T04:30:00Z")));
        let cache = Cache::connect_with_clock("memory://", "t:", clock.clone())
            .await
            .unwrap();
        Self {
            cache,
            clock: Some(clock),
            redis_prefix: None,
        }
    }

    async fn redis() -> Self {
        let prefix = format!("t_{}:", uuid::Uuid::now_v7().simple());
        let cache = Cache::connect(&redis_url(), &prefix).await.unwrap();
        Self {
            cache,
            clock: None,
            redis_prefix: Some(prefix),
        }
    }

    fn now(&self) -> Timestamp {
        match &self.clock {
            Some(clock) => clock.now(),
            None => SystemClock.now(),
        }
    }

    /// A trading day whose end lies at least a day after "now" on this backend's clock, so no
    /// expiry can fire while a test runs.
    fn trading_day(&self) -> NaiveDate {
        let ist = self.now().as_datetime() + chrono::Duration::minutes(330);
        ist.date_naive() + Days::new(1)
    }

    /// Deletes this test's Redis keys, checking that every one carries the prefix.
    async fn cleanup(self) {
        let Some(prefix) = self.redis_prefix else {
            return;
        };
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The shared suite.
// ---------------------------------------------------------------------------------------------

async fn ping_answers(h: &Harness) {
    h.cache.ping().await.unwrap();
}

async fn dedup_shares_the_connection_and_prefix(h: &Harness) {
    let dedup = h.cache.dedup();
    let event = EventId::new_root();
    assert!(!dedup.is_processed("alpha-panda.risk", event).await.unwrap());
    dedup
        .mark_processed("alpha-panda.risk", event, Duration::from_secs(60))
        .await
        .unwrap();
    // A second handle from the same cache sees the mark: same store, same keys.
    assert!(h
        .cache
        .dedup()
        .is_processed("alpha-panda.risk", event)
        .await
        .unwrap());
    assert!(!dedup
        .is_processed("alpha-panda.portfolio", event)
        .await
        .unwrap());
}

async fn positions_are_per_broker_and_strategy(h: &Harness) {
    let risk = h.cache.risk_state();
    let (ema, momentum) = (strategy("ema_cross"), strategy("momentum:nifty"));
    let (nifty, infy) = (InstrumentToken(256_265), InstrumentToken(408_065));

    assert_eq!(risk.position(Broker::Paper, &ema, nifty).await.unwrap(), 0);
    risk.set_position(Broker::Paper, &ema, nifty, 10)
        .await
        .unwrap();
    risk.set_position(Broker::Zerodha, &ema, nifty, -5)
        .await
        .unwrap();
    risk.set_position(Broker::Paper, &momentum, infy, 3)
        .await
        .unwrap();

    assert_eq!(risk.position(Broker::Paper, &ema, nifty).await.unwrap(), 10);
    assert_eq!(
        risk.position(Broker::Zerodha, &ema, nifty).await.unwrap(),
        -5
    );
    assert_eq!(risk.position(Broker::Paper, &ema, infy).await.unwrap(), 0);
    assert_eq!(
        risk.positions(Broker::Paper).await.unwrap(),
        vec![
            PositionEntry {
                strategy_id: ema.clone(),
                instrument_token: nifty,
                quantity: 10
            },
            PositionEntry {
                strategy_id: momentum.clone(),
                instrument_token: infy,
                quantity: 3
            },
        ]
    );
    assert_eq!(
        risk.positions(Broker::Zerodha).await.unwrap(),
        vec![PositionEntry {
            strategy_id: ema.clone(),
            instrument_token: nifty,
            quantity: -5
        }]
    );

    // Fills adjust atomically; a position brought to zero is flat and not listed.
    assert_eq!(
        risk.add_to_position(Broker::Paper, &ema, nifty, -4)
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        risk.add_to_position(Broker::Paper, &momentum, infy, -3)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        risk.add_to_position(Broker::Zerodha, &momentum, infy, 7)
            .await
            .unwrap(),
        7
    );
    let paper = risk.positions(Broker::Paper).await.unwrap();
    assert_eq!(paper.len(), 1);
    assert_eq!((paper[0].instrument_token, paper[0].quantity), (nifty, 6));

    // Setting zero removes the position.
    risk.set_position(Broker::Paper, &ema, nifty, 0)
        .await
        .unwrap();
    assert_eq!(risk.position(Broker::Paper, &ema, nifty).await.unwrap(), 0);
    assert!(risk.positions(Broker::Paper).await.unwrap().is_empty());
    assert_eq!(risk.positions(Broker::Zerodha).await.unwrap().len(), 2);
}

async fn daily_trades_count_per_day_and_expire_at_end_of_day(h: &Harness) {
    let risk = h.cache.risk_state();
    let ema = strategy("ema_cross");
    let day = h.trading_day();
    let end = ist_trading_day_end(day);

    for expected in 1..=3 {
        let count = risk
            .increment_daily_trades(Broker::Paper, &ema, day, end)
            .await
            .unwrap();
        assert_eq!(count, expected);
    }
    assert_eq!(
        risk.daily_trades(Broker::Paper, &ema, day).await.unwrap(),
        3
    );
    // The counter expires exactly at the end of the IST day.
    assert_eq!(
        risk.daily_trades_expire_at(Broker::Paper, &ema, day)
            .await
            .unwrap(),
        Some(end)
    );
    // Other broker, strategy and day start from zero.
    assert_eq!(
        risk.daily_trades(Broker::Zerodha, &ema, day).await.unwrap(),
        0
    );
    assert_eq!(
        risk.daily_trades(Broker::Paper, &strategy("other"), day)
            .await
            .unwrap(),
        0
    );
    let yesterday = day - Days::new(1);
    assert_eq!(
        risk.daily_trades(Broker::Paper, &ema, yesterday)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        risk.daily_trades_expire_at(Broker::Zerodha, &ema, day)
            .await
            .unwrap(),
        None
    );

    // A day that has already ended keeps nothing: the key expires as it is written.
    let past = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let count = risk
        .increment_daily_trades(Broker::Paper, &ema, past, ist_trading_day_end(past))
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(
        risk.daily_trades(Broker::Paper, &ema, past).await.unwrap(),
        0
    );
}

async fn daily_pnl_is_exact_decimal_per_portfolio(h: &Harness) {
    let risk = h.cache.risk_state();
    let ema = strategy("ema_cross");
    let paper = PortfolioId::for_strategy(Broker::Paper, &ema);
    let zerodha = PortfolioId::for_strategy(Broker::Zerodha, &ema);
    let day = h.trading_day();
    let end = ist_trading_day_end(day);

    assert_eq!(
        risk.daily_pnl(Broker::Paper, &paper, day).await.unwrap(),
        Money::ZERO
    );
    // 0.1 + 0.2 is exactly 0.3 (it is not in binary floating point).
    let mut total = Money::ZERO;
    for amount in [dec!(0.1), dec!(0.2)] {
        total = risk
            .add_daily_pnl(Broker::Paper, &paper, day, end, Money(amount))
            .await
            .unwrap();
    }
    assert_eq!(total, Money(dec!(0.3)));
    assert_eq!(total.0.to_string(), "0.3");
    let total = risk
        .add_daily_pnl(Broker::Paper, &paper, day, end, Money(dec!(-1250.35)))
        .await
        .unwrap();
    assert_eq!(total.0.to_string(), "-1250.05");
    assert_eq!(
        risk.daily_pnl(Broker::Paper, &paper, day).await.unwrap(),
        Money(dec!(-1250.05))
    );
    assert_eq!(
        risk.daily_pnl_expire_at(Broker::Paper, &paper, day)
            .await
            .unwrap(),
        Some(end)
    );

    // Namespaces and days never mix.
    assert_eq!(
        risk.daily_pnl(Broker::Zerodha, &zerodha, day)
            .await
            .unwrap(),
        Money::ZERO
    );
    assert_eq!(
        risk.daily_pnl(Broker::Zerodha, &paper, day).await.unwrap(),
        Money::ZERO
    );
    assert_eq!(
        risk.daily_pnl(Broker::Paper, &paper, day - Days::new(1))
            .await
            .unwrap(),
        Money::ZERO
    );
    let zerodha_total = risk
        .add_daily_pnl(Broker::Zerodha, &zerodha, day, end, Money(dec!(99.999)))
        .await
        .unwrap();
    assert_eq!(zerodha_total, Money(dec!(99.999)));
    assert_eq!(
        risk.daily_pnl(Broker::Paper, &paper, day).await.unwrap(),
        Money(dec!(-1250.05))
    );

    // A day that has already ended keeps nothing.
    let past = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let total = risk
        .add_daily_pnl(
            Broker::Paper,
            &paper,
            past,
            ist_trading_day_end(past),
            Money(dec!(-10)),
        )
        .await
        .unwrap();
    assert_eq!(total, Money(dec!(-10)));
    assert_eq!(
        risk.daily_pnl(Broker::Paper, &paper, past).await.unwrap(),
        Money::ZERO
    );
}

fn snapshot(broker: Broker, strategy_id: &str, as_of: &str, realized: Money) -> PnlSnapshot {
    let strategy_id = strategy(strategy_id);
    PnlSnapshot {
        portfolio_id: PortfolioId::for_strategy(broker, &strategy_id),
        strategy_id,
        broker,
        as_of: at(as_of),
        realized_pnl: realized,
        unrealized_pnl: Money(dec!(12.50)),
        fees: Money(dec!(0.0236)),
        total_pnl: Money(realized.0 + dec!(12.50) - dec!(0.0236)),
        cash: Money(dec!(100000.00)),
        positions: vec![PositionSnapshot {
            instrument_token: InstrumentToken(256_265),
            quantity: 2,
            average_price: Price(dec!(2450.05)),
            last_price: Price(dec!(2456.30)),
            realized_pnl: realized,
            unrealized_pnl: Money(dec!(12.50)),
        }],
        snapshot_type: SnapshotType::Periodic,
        checksum: String::new(),
    }
    .seal()
}

async fn portfolio_latest_wins_and_lists_per_broker(h: &Harness) {
    let portfolios = h.cache.portfolios();
    let first = snapshot(
        Broker::Paper,
        "ema_cross",
        "2026-03-02T04:31:00Z",
        Money(dec!(1.10)),
    );
    let second = snapshot(
        Broker::Paper,
        "ema_cross",
        "2026-03-02T04:32:00Z",
        Money(dec!(2.20)),
    );
    let other = snapshot(
        Broker::Paper,
        "breakout",
        "2026-03-02T04:31:30Z",
        Money(dec!(-3)),
    );
    let live = snapshot(
        Broker::Zerodha,
        "ema_cross",
        "2026-03-02T04:33:00Z",
        Money(dec!(9)),
    );

    assert_eq!(
        portfolios
            .get(Broker::Paper, &first.portfolio_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(portfolios.put(&first).await.unwrap(), PutOutcome::Stored);
    assert_eq!(portfolios.put(&second).await.unwrap(), PutOutcome::Stored);
    // A late, older snapshot does not replace the newer one; a repeat of the same one does.
    assert_eq!(portfolios.put(&first).await.unwrap(), PutOutcome::Stale);
    assert_eq!(portfolios.put(&second).await.unwrap(), PutOutcome::Stored);
    assert_eq!(portfolios.put(&other).await.unwrap(), PutOutcome::Stored);
    assert_eq!(portfolios.put(&live).await.unwrap(), PutOutcome::Stored);

    let got = portfolios
        .get(Broker::Paper, &second.portfolio_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, second);
    assert!(got.checksum_is_valid());
    assert_eq!(got.fees.0.to_string(), "0.0236");

    assert_eq!(
        portfolios.list(Broker::Paper).await.unwrap(),
        vec![other.clone(), second.clone()]
    );
    assert_eq!(
        portfolios.list(Broker::Zerodha).await.unwrap(),
        vec![live.clone()]
    );
    // The zerodha portfolio is not visible under paper.
    assert_eq!(
        portfolios
            .get(Broker::Paper, &live.portfolio_id)
            .await
            .unwrap(),
        None
    );
}

fn metrics(events_in: u64, last_event_at: Option<&str>, updated_at: &str) -> ServiceMetrics {
    ServiceMetrics {
        events_in,
        events_out: events_in / 2,
        duplicates: 3,
        retries: 2,
        dead_lettered: 1,
        lag: 42,
        last_event_at: last_event_at.map(at),
        updated_at: at(updated_at),
        handler_latency: Some(alpha_panda_cache::LatencyBuckets {
            bounds_micros: vec![100, 1_000],
            counts: vec![events_in / 2, events_in],
            count: events_in,
            sum_micros: events_in * 300,
        }),
        partition_lag: vec![alpha_panda_cache::PartitionLagEntry {
            topic: "paper.signals.raw".into(),
            partition: 0,
            lag: 42,
        }],
    }
}

async fn metrics_round_trip_per_broker(h: &Harness) {
    let cache = h.cache.metrics();
    let risk = metrics(
        100,
        Some("2026-03-02T04:31:00.123456Z"),
        "2026-03-02T04:31:01Z",
    );
    let feed = metrics(5_000, None, "2026-03-02T04:31:02Z");
    let engine = metrics(7, Some("2026-03-02T04:31:03Z"), "2026-03-02T04:31:04Z");

    assert_eq!(
        cache.get(Broker::Paper, "risk_manager").await.unwrap(),
        None
    );
    cache
        .record(Broker::Paper, "risk_manager", &risk)
        .await
        .unwrap();
    cache
        .record(EventBroker::Shared, "market_feed", &feed)
        .await
        .unwrap();
    cache
        .record(EventBroker::Paper, "trading_engine", &engine)
        .await
        .unwrap();

    // Broker and EventBroker name the same namespace.
    assert_eq!(
        cache.get(EventBroker::Paper, "risk_manager").await.unwrap(),
        Some(risk.clone())
    );
    assert_eq!(
        cache.get(Broker::Zerodha, "risk_manager").await.unwrap(),
        None
    );
    assert_eq!(
        cache.list(Broker::Paper).await.unwrap(),
        vec![
            ServiceMetricsEntry {
                service: "risk_manager".into(),
                metrics: risk
            },
            ServiceMetricsEntry {
                service: "trading_engine".into(),
                metrics: engine
            },
        ]
    );
    assert_eq!(
        cache.list(EventBroker::Shared).await.unwrap(),
        vec![ServiceMetricsEntry {
            service: "market_feed".into(),
            metrics: feed
        }]
    );
    assert!(cache.list(Broker::Zerodha).await.unwrap().is_empty());

    // A new report replaces the old one.
    let later = metrics(150, Some("2026-03-02T04:35:00Z"), "2026-03-02T04:35:01Z");
    cache
        .record(Broker::Paper, "risk_manager", &later)
        .await
        .unwrap();
    assert_eq!(
        cache.get(Broker::Paper, "risk_manager").await.unwrap(),
        Some(later)
    );
}

macro_rules! on_both_backends {
    ($($suite:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test]
                async fn $suite() {
                    let h = super::Harness::memory().await;
                    super::$suite(&h).await;
                    h.cleanup().await;
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test]
                async fn $suite() {
                    let h = super::Harness::redis().await;
                    super::$suite(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

on_both_backends!(
    ping_answers,
    dedup_shares_the_connection_and_prefix,
    positions_are_per_broker_and_strategy,
    daily_trades_count_per_day_and_expire_at_end_of_day,
    daily_pnl_is_exact_decimal_per_portfolio,
    portfolio_latest_wins_and_lists_per_broker,
    metrics_round_trip_per_broker,
);

// ---------------------------------------------------------------------------------------------
// Backend-specific checks.
// ---------------------------------------------------------------------------------------------

/// The memory backend expires daily state when the injected clock reaches the end of the IST day.
#[tokio::test]
async fn memory_daily_state_expires_when_the_clock_reaches_end_of_day() {
    let h = Harness::memory().await;
    let clock = h.clock.clone().unwrap();
    let risk = h.cache.risk_state();
    let ema = strategy("ema_cross");
    let portfolio = PortfolioId::for_strategy(Broker::Paper, &ema);
    let today = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let end = ist_trading_day_end(today);
    assert_eq!(end, at("2026-03-02T18:30:00Z"));

    for _ in 0..2 {
        risk.increment_daily_trades(Broker::Paper, &ema, today, end)
            .await
            .unwrap();
    }
    risk.add_daily_pnl(Broker::Paper, &portfolio, today, end, Money(dec!(-500.25)))
        .await
        .unwrap();

    clock.set(at("2026-03-02T18:29:59.999999Z"));
    assert_eq!(
        risk.daily_trades(Broker::Paper, &ema, today).await.unwrap(),
        2
    );
    assert_eq!(
        risk.daily_pnl(Broker::Paper, &portfolio, today)
            .await
            .unwrap(),
        Money(dec!(-500.25))
    );

    clock.set(end);
    assert_eq!(
        risk.daily_trades(Broker::Paper, &ema, today).await.unwrap(),
        0
    );
    assert_eq!(
        risk.daily_trades_expire_at(Broker::Paper, &ema, today)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        risk.daily_pnl(Broker::Paper, &portfolio, today)
            .await
            .unwrap(),
        Money::ZERO
    );

    // The next trading day starts from zero and expires at its own end.
    let tomorrow = today + Days::new(1);
    let next_end = ist_trading_day_end(tomorrow);
    assert_eq!(
        risk.increment_daily_trades(Broker::Paper, &ema, tomorrow, next_end)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        risk.daily_trades_expire_at(Broker::Paper, &ema, tomorrow)
            .await
            .unwrap(),
        Some(next_end)
    );
}

/// The memory dedup mark expires with the injected clock too.
#[tokio::test]
async fn memory_dedup_mark_expires_with_the_clock() {
    let h = Harness::memory().await;
    let clock = h.clock.clone().unwrap();
    let dedup = h.cache.dedup();
    let event = EventId::new_root();
    dedup
        .mark_processed("alpha-panda.risk", event, Duration::from_secs(60))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(dedup.is_processed("alpha-panda.risk", event).await.unwrap());
    clock.advance(Duration::from_secs(1));
    assert!(!dedup.is_processed("alpha-panda.risk", event).await.unwrap());
}

/// Redis keys are written with the prefix and the broker namespace, and nothing else.
#[tokio::test]
async fn redis_keys_carry_prefix_and_broker() {
    let h = Harness::redis().await;
    let prefix = h.redis_prefix.clone().unwrap();
    let ema = strategy("ema_cross");
    let day = h.trading_day();
    let risk = h.cache.risk_state();
    risk.set_position(Broker::Zerodha, &ema, InstrumentToken(1), 1)
        .await
        .unwrap();
    risk.increment_daily_trades(Broker::Zerodha, &ema, day, ist_trading_day_end(day))
        .await
        .unwrap();
    h.cache
        .metrics()
        .record(
            Broker::Zerodha,
            "risk_manager",
            &metrics(1, None, "2026-03-02T04:31:00Z"),
        )
        .await
        .unwrap();

    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    let expected_day = day.format("%Y-%m-%d");
    assert_eq!(
        keys,
        vec![
            format!("{prefix}metrics:zerodha:services"),
            format!("{prefix}risk:zerodha:daily_trades:{expected_day}:ema_cross"),
            format!("{prefix}risk:zerodha:positions"),
        ]
    );
    h.cleanup().await;
}

/// Redis down is an infrastructure error, never a silent fallback to memory.
#[tokio::test]
async fn redis_on_a_closed_port_is_an_infrastructure_error() {
    // Bind and release a port so nothing listens on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Cache::connect(&format!("redis://127.0.0.1:{port}"), "t:")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, CacheError::Redis(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Infrastructure);
}

#[tokio::test]
async fn unknown_scheme_is_refused_not_defaulted() {
    let err = Cache::connect("postgres://user:secret@db/x", "t:")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, CacheError::UnsupportedUrl(ref s) if s == "postgres"));
    assert!(!err.to_string().contains("secret"));
    assert_eq!(err.class(), ErrorClass::Infrastructure);
}
