//! The wire contract: checked-in JSON Schemas match the types, one golden envelope per event type
//! stays byte-identical, and any valid event survives encode → decode unchanged.
//!
//! Regenerate the checked-in files after an intended change with
//! `UPDATE_WIRE=1 cargo test -p alpha-panda-core --test wire`, then review the diff.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use alpha_panda_core::schema::{all_schemas, render};
use alpha_panda_core::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_WIRE").is_some()
}

/// Compares `actual` with the checked-in file, or rewrites it when updating.
fn check_file(path: &Path, actual: &str) {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); run UPDATE_WIRE=1 cargo test -p alpha-panda-core --test wire",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} drifted from the types; if the change is intended run \
         UPDATE_WIRE=1 cargo test -p alpha-panda-core --test wire and review the diff",
        path.display()
    );
}

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = workspace_root().join("schemas");
    let schemas = all_schemas();
    for (file, schema) in &schemas {
        check_file(&dir.join(file), &render(schema));
    }
    if !updating() {
        // A schema file with no type behind it is drift too.
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let mut expected: Vec<String> = schemas.iter().map(|(f, _)| f.to_string()).collect();
        expected.sort();
        assert_eq!(on_disk, expected, "stale schema files in schemas/");
    }
}

fn id(n: u128) -> EventId {
    // A fixed UUIDv7-shaped id so golden files are stable.
    EventId(uuid::Uuid::from_u128(
        0x0193_5f2a_7c00_7000_8000_0000_0000_0000 | n,
    ))
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_763_702_100_000_000 + micros).unwrap()
}

fn strategy() -> StrategyId {
    StrategyId::new("ema_cross_infy").unwrap()
}

fn tick_ref() -> TickRef {
    TickRef {
        instrument_token: InstrumentToken(408065),
        last_price: Price(dec!(1512.35)),
        exchange_timestamp: ts(0),
        event_id: id(1),
    }
}

fn signal() -> TradingSignal {
    TradingSignal {
        strategy_id: strategy(),
        instrument_token: InstrumentToken(408065),
        side: Side::Buy,
        quantity: Quantity(10),
        target_quantity: 10,
        order_type: OrderType::Limit,
        limit_price: Some(Price(dec!(1512.30))),
        reason: "fast EMA crossed above slow EMA".into(),
        tick: tick_ref(),
    }
}

fn fees() -> FeeBreakdown {
    FeeBreakdown {
        brokerage: Money(dec!(4.54)),
        stt: Money(dec!(0)),
        exchange_charges: Money(dec!(0.45)),
        sebi_charges: Money(dec!(0.02)),
        gst: Money(dec!(0.90)),
        stamp_duty: Money(dec!(0.45)),
        dp_charges: Default::default(),
        total: Money(dec!(6.36)),
    }
}

fn order_id() -> OrderId {
    OrderId::new("ord-0193").unwrap()
}

/// One representative payload of every event type.
fn samples() -> Vec<Payload> {
    let tick = MarketTick {
        instrument_token: InstrumentToken(408065),
        tradingsymbol: Some("INFY".into()),
        last_price: Price(dec!(1512.35)),
        last_traded_quantity: 5,
        average_traded_price: Some(Price(dec!(1510.12))),
        volume_traded: 1_234_567,
        total_buy_quantity: 50_000,
        total_sell_quantity: 61_000,
        ohlc: Some(Ohlc {
            open: Price(dec!(1500)),
            high: Price(dec!(1520.5)),
            low: Price(dec!(1498.05)),
            close: Price(dec!(1505.6)),
        }),
        oi: None,
        exchange_timestamp: ts(0),
        depth: Some(MarketDepth {
            buy: vec![DepthLevel {
                quantity: 10,
                price: Price(dec!(1512.3)),
                orders: 2,
            }],
            sell: vec![DepthLevel {
                quantity: 7,
                price: Price(dec!(1512.4)),
                orders: 1,
            }],
        }),
    };
    let portfolio = PortfolioId::for_strategy(Broker::Paper, &strategy());
    vec![
        Payload::MarketTick(tick),
        Payload::TradingSignal(signal()),
        Payload::ValidatedSignal(ValidatedSignal {
            signal: signal(),
            signal_event_id: id(2),
            rules_checked: vec!["max_order_value".into(), "market_hours".into()].into(),
        }),
        Payload::RejectedSignal(RejectedSignal {
            signal: signal(),
            signal_event_id: id(2),
            violations: vec![RuleViolation {
                rule: "max_order_value".into(),
                limit: "100000".into(),
                actual: "151230.00".into(),
                message: "order value 151230.00 exceeds the limit 100000".into(),
            }],
        }),
        Payload::SignalAtTarget(SignalAtTarget {
            signal: signal(),
            signal_event_id: id(2),
            position: 10,
            in_flight: 0,
        }),
        Payload::OrderSubmitted(OrderSubmitted {
            order_id: order_id(),
            signal_event_id: id(3),
            strategy_id: strategy(),
            instrument_token: InstrumentToken(408065),
            side: Side::Buy,
            quantity: Quantity(10),
            order_type: OrderType::Market,
            limit_price: None,
            execution_mode: ExecutionMode::Paper,
        }),
        Payload::OrderAck(OrderAck {
            order_id: order_id(),
            broker_order_id: "paper-0001".into(),
            strategy_id: strategy(),
            instrument_token: InstrumentToken(408065),
            execution_mode: ExecutionMode::Paper,
        }),
        Payload::OrderFilled(OrderFilled {
            order_id: order_id(),
            broker_order_id: Some("paper-0001".into()),
            strategy_id: strategy(),
            instrument_token: InstrumentToken(408065),
            tradingsymbol: Some("INFY".into()),
            side: Side::Buy,
            quantity: Quantity(10),
            fill_price: Price(dec!(1512.40)),
            fees: fees(),
            fees_source: Default::default(),
            execution_mode: ExecutionMode::Paper,
            filled_at: ts(1),
        }),
        Payload::OrderFailed(OrderFailed {
            order_id: order_id(),
            broker_order_id: None,
            strategy_id: strategy(),
            instrument_token: InstrumentToken(408065),
            side: Side::Sell,
            quantity: Quantity(10),
            reason: "no known price for instrument 408065".into(),
            retryable: false,
            execution_mode: ExecutionMode::Paper,
        }),
        Payload::PnlSnapshot(
            PnlSnapshot {
                portfolio_id: portfolio,
                strategy_id: strategy(),
                broker: Broker::Paper,
                as_of: ts(2),
                realized_pnl: Money(dec!(120.50)),
                unrealized_pnl: Money(dec!(-3.5)),
                fees: Money(dec!(12.72)),
                total_pnl: Money(dec!(104.28)),
                cash: Money(dec!(984876.00)),
                positions: vec![PositionSnapshot {
                    instrument_token: InstrumentToken(408065),
                    quantity: 10,
                    average_price: Price(dec!(1512.40)),
                    last_price: Price(dec!(1512.05)),
                    realized_pnl: Money(dec!(120.50)),
                    unrealized_pnl: Money(dec!(-3.5)),
                }],
                snapshot_type: SnapshotType::Periodic,
                checksum: String::new(),
            }
            .seal(),
        ),
        Payload::DlqMessage(DlqMessage {
            original_topic: "market.ticks".into(),
            original_partition: 2,
            original_offset: 41,
            original_key: Some("408065".into()),
            original: DlqPayload::Raw {
                value_base64: "bm90IGpzb24=".into(),
            },
            error_class: ErrorClass::Poison,
            error_message: "undecodable envelope: expected value at line 1 column 1".into(),
            retry_count: 0,
            service: "strategy_runner".into(),
            broker: EventBroker::Paper,
            failed_at: ts(3),
        }),
        Payload::Alert(Alert {
            kind: AlertKind::CheckpointFailing,
            severity: AlertSeverity::Warning,
            service: "portfolio_manager".into(),
            message: "portfolio_manager cannot save its state: connection refused".into(),
            since: ts(4),
        }),
    ]
}

fn envelope_of(payload: Payload, n: u128) -> Envelope {
    let (broker, key) = match &payload {
        Payload::MarketTick(t) => (
            EventBroker::Shared,
            keys::market_tick_key(t.instrument_token),
        ),
        _ => (
            EventBroker::Paper,
            keys::strategy_instrument_key(&strategy(), InstrumentToken(408065)),
        ),
    };
    Envelope {
        id: id(100 + n),
        correlation_id: CorrelationId("01935f2a-7c00-7000-8000-000000000001".into()),
        causation_id: (n > 0).then(|| id(99 + n)),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        broker,
        ts: ts(10 + n as i64),
        key,
        source: "golden".into(),
        version: CURRENT_VERSION,
        payload,
    }
}

#[test]
fn every_event_type_has_a_stable_golden_encoding() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let samples = samples();
    let types: Vec<EventType> = samples.iter().map(Payload::event_type).collect();
    assert_eq!(types, EventType::ALL.to_vec(), "one sample per event type");
    for (n, payload) in samples.into_iter().enumerate() {
        let envelope = envelope_of(payload, n as u128);
        let mut text = serde_json::to_string_pretty(&envelope).unwrap();
        text.push('\n');
        check_file(&dir.join(format!("{}.json", envelope.event_type())), &text);
        let back = Envelope::from_json(text.as_bytes()).unwrap();
        assert_eq!(back, envelope);
        // The compact wire form decodes to the same event too.
        assert_eq!(Envelope::from_json(&envelope.to_json()).unwrap(), envelope);
    }
}

#[test]
fn envelope_fields_are_the_eleven_of_the_design() {
    let envelope = envelope_of(samples().remove(0), 0);
    let value: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap();
    let mut fields: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "broker",
            "causation_id",
            "correlation_id",
            "data",
            "id",
            "key",
            "source",
            "trace_id",
            "ts",
            "type",
            "version"
        ]
    );
    // Money is a string on the wire, never a JSON number.
    assert_eq!(value["data"]["last_price"], serde_json::json!("1512.35"));
}

#[test]
fn malformed_input_is_poison_with_a_reason() {
    for bad in [
        &b"not json"[..],
        br#"{"id":"x"}"#,
        br#"{"id":"01935f2a-7c00-7000-8000-000000000001","correlation_id":"c","causation_id":null,"trace_id":"t","broker":"paper","ts":"2025-11-21T05:15:00Z","key":"k","source":"s","version":1,"type":"no_such_type","data":{}}"#,
    ] {
        let err = Envelope::from_json(bad).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Poison);
    }
    let mut future = envelope_of(samples().remove(0), 0);
    future.version = CURRENT_VERSION + 1;
    let err = Envelope::from_json(&future.to_json()).unwrap_err();
    assert!(err.to_string().contains(&format!(
        "unsupported payload version {}",
        CURRENT_VERSION + 1
    )));
    // Version 1 signals carried no target; a build of version 2 refuses them as poison.
    let mut old = envelope_of(samples().remove(1), 1);
    old.version = 1;
    let err = Envelope::from_json(&old.to_json()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Poison);
}

// ---- property: any valid event survives encode → decode ----

fn decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=10).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
}

fn price() -> impl Strategy<Value = Price> {
    decimal().prop_map(Price)
}

fn money() -> impl Strategy<Value = Money> {
    decimal().prop_map(Money)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_102_444_800_000_000).prop_map(|m| Timestamp::from_unix_micros(m).unwrap())
}

fn event_id() -> impl Strategy<Value = EventId> {
    any::<u128>().prop_map(|n| EventId(uuid::Uuid::from_u128(n)))
}

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:-]{1,40}"
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn arb_tick() -> impl Strategy<Value = MarketTick> {
    (
        any::<u32>(),
        proptest::option::of(text()),
        price(),
        any::<u32>(),
        proptest::option::of(price()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
        proptest::option::of((price(), price(), price(), price())),
        proptest::option::of(any::<u64>()),
        timestamp(),
        proptest::option::of(proptest::collection::vec(
            (any::<u32>(), price(), any::<u16>()),
            0..5,
        )),
    )
        .prop_map(
            |(token, symbol, last, ltq, atp, (vol, buy, sell), ohlc, oi, at, depth)| MarketTick {
                instrument_token: InstrumentToken(token),
                tradingsymbol: symbol.map(Into::into),
                last_price: last,
                last_traded_quantity: ltq,
                average_traded_price: atp,
                volume_traded: vol,
                total_buy_quantity: buy,
                total_sell_quantity: sell,
                ohlc: ohlc.map(|(open, high, low, close)| Ohlc {
                    open,
                    high,
                    low,
                    close,
                }),
                oi,
                exchange_timestamp: at,
                depth: depth.map(|levels| {
                    let levels: Vec<DepthLevel> = levels
                        .into_iter()
                        .map(|(quantity, price, orders)| DepthLevel {
                            quantity,
                            price,
                            orders,
                        })
                        .collect();
                    MarketDepth {
                        buy: levels.clone(),
                        sell: levels,
                    }
                }),
            },
        )
}

fn arb_signal() -> impl Strategy<Value = TradingSignal> {
    (
        ident(),
        any::<u32>(),
        side(),
        any::<u32>(),
        proptest::option::of(price()),
        text(),
        (price(), timestamp(), event_id()),
    )
        .prop_map(
            |(sid, token, side, qty, limit, reason, (p, at, eid))| TradingSignal {
                strategy_id: StrategyId::new(sid).unwrap(),
                instrument_token: InstrumentToken(token),
                side,
                quantity: Quantity(qty),
                target_quantity: side.sign() * i64::from(qty),
                order_type: if limit.is_some() {
                    OrderType::Limit
                } else {
                    OrderType::Market
                },
                limit_price: limit,
                reason,
                tick: TickRef {
                    instrument_token: InstrumentToken(token),
                    last_price: p,
                    exchange_timestamp: at,
                    event_id: eid,
                },
            },
        )
}

fn arb_fees() -> impl Strategy<Value = FeeBreakdown> {
    proptest::collection::vec(money(), 7).prop_map(|m| FeeBreakdown {
        brokerage: m[0],
        stt: m[1],
        exchange_charges: m[2],
        sebi_charges: m[3],
        gst: m[4],
        stamp_duty: m[5],
        dp_charges: Default::default(),
        total: m[6],
    })
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        arb_tick().prop_map(Payload::MarketTick),
        arb_signal().prop_map(Payload::TradingSignal),
        (
            arb_signal(),
            event_id(),
            proptest::collection::vec(ident(), 0..4)
        )
            .prop_map(
                |(signal, signal_event_id, rules_checked)| Payload::ValidatedSignal(
                    ValidatedSignal {
                        signal,
                        signal_event_id,
                        rules_checked: rules_checked.into()
                    }
                )
            ),
        (arb_signal(), event_id(), any::<i64>(), any::<i64>()).prop_map(
            |(signal, signal_event_id, position, in_flight)| Payload::SignalAtTarget(
                SignalAtTarget {
                    signal,
                    signal_event_id,
                    position,
                    in_flight,
                }
            )
        ),
        (
            arb_signal(),
            event_id(),
            proptest::collection::vec((ident(), text(), text(), text()), 1..4)
        )
            .prop_map(|(signal, signal_event_id, v)| Payload::RejectedSignal(
                RejectedSignal {
                    signal,
                    signal_event_id,
                    violations: v
                        .into_iter()
                        .map(|(rule, limit, actual, message)| RuleViolation {
                            rule,
                            limit,
                            actual,
                            message
                        })
                        .collect(),
                }
            )),
        (
            ident(),
            ident(),
            any::<u32>(),
            side(),
            any::<u32>(),
            arb_fees(),
            price(),
            timestamp()
        )
            .prop_map(
                |(oid, sid, token, side, qty, fees, p, at)| Payload::OrderFilled(OrderFilled {
                    order_id: OrderId::new(oid).unwrap(),
                    broker_order_id: None,
                    strategy_id: StrategyId::new(sid).unwrap(),
                    instrument_token: InstrumentToken(token),
                    tradingsymbol: None,
                    side,
                    quantity: Quantity(qty),
                    fill_price: p,
                    fees,
                    fees_source: Default::default(),
                    execution_mode: ExecutionMode::Zerodha,
                    filled_at: at,
                })
            ),
        (
            ident(),
            ident(),
            any::<u32>(),
            side(),
            any::<u32>(),
            text(),
            any::<bool>()
        )
            .prop_map(|(oid, sid, token, side, qty, reason, retryable)| {
                Payload::OrderFailed(OrderFailed {
                    order_id: OrderId::new(oid).unwrap(),
                    broker_order_id: Some("kite-1".into()),
                    strategy_id: StrategyId::new(sid).unwrap(),
                    instrument_token: InstrumentToken(token),
                    side,
                    quantity: Quantity(qty),
                    reason,
                    retryable,
                    execution_mode: ExecutionMode::Paper,
                })
            }),
        (
            ident(),
            timestamp(),
            proptest::collection::vec(money(), 5),
            proptest::collection::vec((any::<u32>(), any::<i64>(), price(), price()), 0..4)
        )
            .prop_map(|(sid, at, m, positions)| {
                let strategy_id = StrategyId::new(sid).unwrap();
                Payload::PnlSnapshot(
                    PnlSnapshot {
                        portfolio_id: PortfolioId::for_strategy(Broker::Zerodha, &strategy_id),
                        strategy_id,
                        broker: Broker::Zerodha,
                        as_of: at,
                        realized_pnl: m[0],
                        unrealized_pnl: m[1],
                        fees: m[2],
                        total_pnl: m[3],
                        cash: m[4],
                        positions: positions
                            .into_iter()
                            .map(
                                |(token, quantity, average_price, last_price)| PositionSnapshot {
                                    instrument_token: InstrumentToken(token),
                                    quantity,
                                    average_price,
                                    last_price,
                                    realized_pnl: m[0],
                                    unrealized_pnl: m[1],
                                },
                            )
                            .collect(),
                        snapshot_type: SnapshotType::EndOfDay,
                        checksum: String::new(),
                    }
                    .seal(),
                )
            }),
    ]
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        arb_payload(),
        event_id(),
        proptest::option::of(event_id()),
        text(),
        timestamp(),
        text(),
        prop_oneof![
            Just(EventBroker::Paper),
            Just(EventBroker::Zerodha),
            Just(EventBroker::Shared)
        ],
    )
        .prop_map(
            |(payload, id, causation_id, correlation, ts, key, broker)| Envelope {
                id,
                correlation_id: CorrelationId(correlation.into()),
                causation_id,
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                broker,
                ts,
                key,
                source: "proptest".into(),
                version: CURRENT_VERSION,
                payload,
            },
        )
}

proptest! {
    #[test]
    fn any_valid_event_survives_encode_decode(envelope in arb_envelope()) {
        let back = Envelope::from_json(&envelope.to_json()).unwrap();
        prop_assert_eq!(back, envelope);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Envelope::from_json(&bytes);
    }
}

#[test]
fn ids_parse_from_text() {
    let id = id(7);
    assert_eq!(EventId::from_str(&id.to_string()).unwrap(), id);
}

/// Replaces the `n`-th scalar of `value` (depth first) by `replacement`; returns whether one was.
fn replace_nth_scalar(
    value: &mut serde_json::Value,
    n: &mut usize,
    replacement: &serde_json::Value,
) -> bool {
    match value {
        serde_json::Value::Object(map) => map
            .values_mut()
            .any(|v| replace_nth_scalar(v, n, replacement)),
        serde_json::Value::Array(items) => items
            .iter_mut()
            .any(|v| replace_nth_scalar(v, n, replacement)),
        scalar => {
            if *n == 0 {
                *scalar = replacement.clone();
                true
            } else {
                *n -= 1;
                false
            }
        }
    }
}

proptest! {
    /// Records come from the log, and the log takes bytes from anyone: any bytes decode or are
    /// refused with a poison error, never a panic.
    #[test]
    fn any_bytes_decode_or_are_poison(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Err(e) = Envelope::from_json(&bytes) {
            prop_assert_eq!(e.class(), ErrorClass::Poison);
        }
    }

    /// Every golden event with one field replaced by a number too large, a wrong type or an empty
    /// string decodes or is poison; what decodes is checked for plausibility without a panic.
    #[test]
    fn any_mutated_event_decodes_or_is_poison(
        which in 0usize..11,
        field in 0usize..40,
        replacement in prop_oneof![
            Just(serde_json::json!("99999999999999999999999999999.99")),
            Just(serde_json::json!(0)),
            Just(serde_json::json!(-1)),
            Just(serde_json::json!(u64::MAX)),
            Just(serde_json::json!("")),
            Just(serde_json::json!(null)),
            Just(serde_json::json!([])),
            Just(serde_json::json!("NaN")),
        ],
    ) {
        let samples = samples();
        let envelope = envelope_of(samples[which % samples.len()].clone(), which as u128);
        let mut value: serde_json::Value = serde_json::from_slice(&envelope.to_json()).unwrap();
        let mut n = field;
        replace_nth_scalar(&mut value, &mut n, &replacement);
        match Envelope::from_json(value.to_string().as_bytes()) {
            Ok(decoded) => {
                let _ = decoded.payload.check_plausible();
            }
            Err(e) => prop_assert_eq!(e.class(), ErrorClass::Poison),
        }
    }
}
