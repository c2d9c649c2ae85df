//! Decoder tests against the reference: the gokiteconnect test vector, the two `.packet` mocks
//! and their JSON decodes, every packet size, and every price divisor.

use std::str::FromStr;

use alpha_panda_core::{InstrumentToken, Price};
use alpha_panda_kite::ticker::{
    decode_message, decode_packet, encode_message, encode_packet, PacketKind, Segment, TickMode,
    TickPacket,
};
use base64::Engine;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn packet_bytes(name: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(fixture(name).trim())
        .unwrap()
}

/// Wraps one packet in the message framing.
fn frame(packet: &[u8]) -> Vec<u8> {
    let mut msg = vec![0, 1];
    msg.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    msg.extend_from_slice(packet);
    msg
}

fn json_decimal(v: &Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap()
}

fn p(d: Decimal) -> Price {
    Price(d)
}

#[test]
fn reference_test_vector_full_packet_decodes_exactly() {
    let bytes = packet_bytes("ticker_full.packet");
    assert_eq!(bytes.len(), 184);
    let packets = decode_message(&frame(&bytes)).unwrap();
    assert_eq!(packets.len(), 1);
    let t = &packets[0];
    assert_eq!(t.kind, PacketKind::Full);
    assert_eq!(t.mode(), TickMode::Full);
    assert_eq!(t.instrument_token, InstrumentToken(408065));
    assert!(t.tradable());
    assert_eq!(t.last_price, p(dec!(1573.70)));
    assert_eq!(t.last_traded_quantity, Some(7));
    assert_eq!(t.average_traded_price, Some(p(dec!(1570.37))));
    assert_eq!(t.volume_traded, Some(1192471));
    assert_eq!(t.total_buy_quantity, Some(256443));
    assert_eq!(t.total_sell_quantity, Some(363009));
    let ohlc = t.ohlc.unwrap();
    assert_eq!(
        (ohlc.open, ohlc.high, ohlc.low, ohlc.close),
        (
            p(dec!(1569.15)),
            p(dec!(1575.00)),
            p(dec!(1561.05)),
            p(dec!(1567.80))
        )
    );
    assert_eq!(t.last_trade_time, Some(1625461887));
    assert_eq!(t.exchange_timestamp, Some(1625461887));
    assert_eq!(
        (t.oi, t.oi_day_high, t.oi_day_low),
        (Some(0), Some(0), Some(0))
    );
    let depth = t.depth.as_ref().unwrap();
    let bids: Vec<(Decimal, u32, u16)> = depth
        .buy
        .iter()
        .map(|l| (l.price.0, l.quantity, l.orders))
        .collect();
    assert_eq!(
        bids,
        vec![
            (dec!(1573.40), 5, 1),
            (dec!(1573.00), 140, 2),
            (dec!(1572.95), 2, 1),
            (dec!(1572.90), 219, 7),
            (dec!(1572.85), 50, 1)
        ]
    );
    let asks: Vec<(Decimal, u32, u16)> = depth
        .sell
        .iter()
        .map(|l| (l.price.0, l.quantity, l.orders))
        .collect();
    assert_eq!(
        asks,
        vec![
            (dec!(1573.70), 172, 3),
            (dec!(1573.75), 44, 3),
            (dec!(1573.85), 302, 3),
            (dec!(1573.90), 141, 2),
            (dec!(1573.95), 724, 5)
        ]
    );
    // The encoder reproduces the packet byte for byte.
    assert_eq!(encode_packet(t).unwrap(), bytes);
}

#[test]
fn reference_quote_vector_decodes_exactly() {
    let bytes = packet_bytes("ticker_quote.packet");
    assert_eq!(bytes.len(), 44);
    let t = decode_packet(&bytes).unwrap();
    assert_eq!(t.kind, PacketKind::Quote);
    assert_eq!(t.last_price, p(dec!(1573.15)));
    assert_eq!(t.last_traded_quantity, Some(1));
    assert_eq!(t.average_traded_price, Some(p(dec!(1570.33))));
    assert_eq!(t.volume_traded, Some(1175986));
    assert_eq!(t.total_buy_quantity, Some(256511));
    assert_eq!(t.total_sell_quantity, Some(360503));
    assert_eq!(t.ohlc.unwrap().close, p(dec!(1567.80)));
    assert_eq!(t.depth, None);
    assert_eq!(t.exchange_timestamp, None);
    assert_eq!(encode_packet(&t).unwrap(), bytes);
}

/// The mocks name fields like the JS client; map them to §1.8 names and compare every value.
/// `change` is not compared: the JS mock writes an absolute difference (and the quote mock
/// reuses the full packet's value), while §1.8 asks for a percentage.
fn assert_matches_js_mock(packet_file: &str, json_file: &str) {
    let decoded = decode_packet(&packet_bytes(packet_file)).unwrap();
    let ours = decoded.to_json_value();
    let mock: Value = serde_json::from_str(&fixture(json_file)).unwrap();
    let renames = [
        ("instrument_token", "instrument_token"),
        ("last_quantity", "last_traded_quantity"),
        ("volume", "volume_traded"),
        ("buy_quantity", "total_buy_quantity"),
        ("sell_quantity", "total_sell_quantity"),
        ("oi", "oi"),
        ("oi_day_high", "oi_day_high"),
        ("oi_day_low", "oi_day_low"),
    ];
    assert_eq!(ours["mode"], mock["mode"]);
    assert_eq!(ours["tradable"], mock["tradable"]);
    for (js, name) in renames {
        if let Some(value) = mock.get(js) {
            assert_eq!(&ours[name], value, "{json_file}: {js} → {name}");
        }
    }
    let dec_of = |v: &Value| Decimal::from_str(v.as_str().unwrap()).unwrap();
    assert_eq!(
        dec_of(&ours["last_price"]),
        json_decimal(&mock["last_price"])
    );
    assert_eq!(
        dec_of(&ours["average_traded_price"]),
        json_decimal(&mock["average_price"])
    );
    for field in ["open", "high", "low", "close"] {
        assert_eq!(
            dec_of(&ours["ohlc"][field]),
            json_decimal(&mock["ohlc"][field]),
            "ohlc.{field}"
        );
    }
    for (js, name) in [
        ("timestamp", "exchange_timestamp"),
        ("last_trade_time", "last_trade_time"),
    ] {
        if let Some(text) = mock.get(js).and_then(Value::as_str) {
            let expected = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp();
            assert_eq!(ours[name].as_i64(), Some(expected), "{js}");
        }
    }
    if let Some(depth) = mock.get("depth") {
        for side in ["buy", "sell"] {
            let theirs = depth[side].as_array().unwrap();
            let mine = ours["depth"][side].as_array().unwrap();
            assert_eq!(theirs.len(), mine.len());
            for (a, b) in theirs.iter().zip(mine) {
                assert_eq!(json_decimal(&a["price"]), dec_of(&b["price"]));
                assert_eq!(a["quantity"], b["quantity"]);
                assert_eq!(a["orders"], b["orders"]);
            }
        }
    } else {
        assert!(ours.get("depth").is_none());
    }
    // §1.8: change is a percentage against close.
    let last = dec_of(&ours["last_price"]);
    let close = dec_of(&ours["ohlc"]["close"]);
    let expected = ((last - close) * dec!(100) / close).round_dp(4);
    assert_eq!(dec_of(&ours["change"]), expected);
}

#[test]
fn full_packet_mock_matches_its_json() {
    assert_matches_js_mock("ticker_full.packet", "ticker_full.json");
}

#[test]
fn quote_packet_mock_matches_its_json() {
    assert_matches_js_mock("ticker_quote.packet", "ticker_quote.json");
}

#[test]
fn json_uses_reference_names_and_decimal_strings() {
    let t = decode_packet(&packet_bytes("ticker_full.packet")).unwrap();
    let v = t.to_json_value();
    assert_eq!(v["instrument_token"], 408065);
    assert_eq!(v["mode"], "full");
    assert_eq!(v["tradable"], true);
    assert_eq!(v["last_price"], "1573.70");
    assert_eq!(v["change"], "0.3763");
    assert_eq!(v["exchange_timestamp"], 1625461887);
    assert_eq!(v["depth"]["buy"][0]["price"], "1573.40");
    let ltp = TickPacket::ltp(InstrumentToken(408065), p(dec!(1573.15))).to_json_value();
    let keys: Vec<&str> = ltp
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

#[test]
fn every_packet_size_round_trips() {
    let full = decode_packet(&packet_bytes("ticker_full.packet")).unwrap();
    let mut index = TickPacket::ltp(InstrumentToken(256265), p(dec!(15790.45)));
    index.ohlc = Some(alpha_panda_core::Ohlc {
        open: p(dec!(15700.10)),
        high: p(dec!(15800.00)),
        low: p(dec!(15690.55)),
        close: p(dec!(15722.20)),
    });
    index.index_change_raw = Some(-6825);
    index.exchange_timestamp = Some(1625461887);
    let cases = [
        (full.project(TickMode::Ltp), 8, PacketKind::Ltp),
        (full.project(TickMode::Quote), 44, PacketKind::Quote),
        (full.clone(), 184, PacketKind::Full),
        (index.project(TickMode::Ltp), 8, PacketKind::Ltp),
        (index.project(TickMode::Quote), 28, PacketKind::IndexQuote),
        (index.project(TickMode::Full), 32, PacketKind::IndexFull),
    ];
    let mut all = Vec::new();
    for (packet, len, kind) in cases {
        assert_eq!(packet.kind, kind);
        let bytes = encode_packet(&packet).unwrap();
        assert_eq!(bytes.len(), len, "{kind:?}");
        assert_eq!(decode_packet(&bytes).as_ref(), Some(&packet), "{kind:?}");
        all.push(packet);
    }
    let index_full = &all[5];
    assert!(!index_full.tradable());
    assert_eq!(index_full.ohlc.unwrap().high, p(dec!(15800.00)));
    assert_eq!(index_full.index_change_raw, Some(-6825));
    assert_eq!(index_full.mode(), TickMode::Full);
    assert_eq!(all[4].mode(), TickMode::Quote);
    // One message with all six packets.
    let message = encode_message(&all).unwrap();
    assert_eq!(message.len(), 2 + 6 * 2 + 8 + 44 + 184 + 8 + 28 + 32);
    assert_eq!(decode_message(&message).unwrap(), all);
}

#[test]
fn every_divisor_applies_to_prices_only() {
    let cases = [
        (Segment::NSE, dec!(1234567.89)),
        (Segment::NFO, dec!(1234567.89)),
        (Segment::CDS, dec!(12.3456789)),
        (Segment::BSE, dec!(1234567.89)),
        (Segment::BFO, dec!(1234567.89)),
        (Segment::BCD, dec!(12345.6789)),
        (Segment::MCX, dec!(1234567.89)),
        (Segment::MCXSX, dec!(1234567.89)),
        (Segment::INDICES, dec!(1234567.89)),
        (Segment::NCO, dec!(12345.6789)),
    ];
    for (segment, expected) in cases {
        let token = (1594u32 << 8) | u32::from(segment.0);
        let mut body = Vec::new();
        body.extend_from_slice(&token.to_be_bytes());
        body.extend_from_slice(&123_456_789u32.to_be_bytes());
        body.extend_from_slice(&7u32.to_be_bytes()); // quantity stays raw
        body.extend_from_slice(&123_456_789u32.to_be_bytes());
        body.extend_from_slice(&[0; 28]);
        let t = decode_packet(&body).unwrap();
        assert_eq!(t.last_price.0, expected, "segment {}", segment.0);
        assert_eq!(t.average_traded_price.unwrap().0, expected);
        assert_eq!(t.last_traded_quantity, Some(7));
        assert_eq!(t.tradable(), segment != Segment::INDICES);
    }
}

#[test]
fn market_tick_carries_the_packet() {
    let t = decode_packet(&packet_bytes("ticker_full.packet")).unwrap();
    let tick = t.to_market_tick(Some("INFY".into()));
    assert_eq!(tick.instrument_token, InstrumentToken(408065));
    assert_eq!(tick.tradingsymbol.as_deref(), Some("INFY"));
    assert_eq!(tick.last_price, p(dec!(1573.70)));
    assert_eq!(tick.volume_traded, 1192471);
    assert_eq!(tick.oi, Some(0));
    assert_eq!(tick.exchange_timestamp.unix_micros(), 1_625_461_887_000_000);
    assert_eq!(tick.depth.as_ref().map(|d| d.buy.len()), Some(5));
}
