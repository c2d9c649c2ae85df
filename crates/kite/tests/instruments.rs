//! Instruments CSV tests on the reference mocks.

use alpha_panda_core::InstrumentToken;
use alpha_panda_kite::{parse_instruments_csv, InstrumentRegistry};
use rust_decimal_macros::dec;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn both_mock_dumps_parse_completely() {
    for name in ["instruments_all.csv", "instruments_nse.csv"] {
        let raw = fixture(name);
        let lines = raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        let rows = parse_instruments_csv(&raw[..]).unwrap();
        assert_eq!(rows.len(), lines - 1, "{name}");
        let registry = InstrumentRegistry::from_rows(rows);
        assert_eq!(registry.len(), lines - 1);
        let first = registry.get(InstrumentToken(3813889)).unwrap();
        assert_eq!(first.tradingsymbol, "CENTRALBK-BE");
        assert_eq!(first.name, "CENTRAL BANK OF INDIA");
        assert_eq!(first.exchange_token, 14898);
        assert_eq!(first.tick_size, dec!(0.05));
        assert_eq!(first.lot_size, 1);
        assert_eq!(first.expiry, None);
        assert_eq!(first.strike, None);
        assert_eq!(first.instrument_type, "EQ");
        assert_eq!(registry.segment(InstrumentToken(3813889)), Some("NSE"));
        let etf = registry.by_symbol("NSE", "MIDCAPIWIN-BL").unwrap();
        assert_eq!(etf.tick_size, dec!(0.01));
        assert_eq!(registry.tick_size(etf.instrument_token), Some(dec!(0.01)));
        assert!(registry.iter().all(|row| !row.tradingsymbol.is_empty()));
        if name != "instruments_all.csv" {
            continue;
        }
        let option = registry.by_symbol("NFO", "BANKNIFTY18JAN23500CE").unwrap();
        assert_eq!(option.instrument_token, InstrumentToken(12073986));
        assert_eq!(option.strike, Some(dec!(23500)));
        assert_eq!(option.expiry, chrono::NaiveDate::from_ymd_opt(2018, 1, 25));
        assert_eq!(option.lot_size, 40);
        assert_eq!(option.last_price, dec!(2528.4));
        assert_eq!(option.segment, "NFO-OPT");
        assert_eq!(option.instrument_type, "CE");
    }
}
