//! The bundled universe: real NSE cash-market equities with their real Kite instrument tokens.
//!
//! Every token is `exchange_token × 256 + 1` (segment 1 = NSE), as in Kite's instruments master;
//! symbols, tokens and exchange tokens come from the instruments master (a test checks the relation).
//! Lot size 1 and tick size 0.05 as on the NSE cash segment. `last_price` is a plausible base price
//! for the simulator (roughly the 2025 trading range), not a live quote.

use alpha_panda_core::{Instrument, InstrumentToken};
use rust_decimal::Decimal;

/// `(instrument_token, tradingsymbol, name, base price in paise)`.
const UNIVERSE: &[(u32, &str, &str, i64)] = &[
    (738561, "RELIANCE", "RELIANCE INDUSTRIES", 145_000),
    (341249, "HDFCBANK", "HDFC BANK", 98_000),
    (1270529, "ICICIBANK", "ICICI BANK", 138_000),
    (408065, "INFY", "INFOSYS", 152_000),
    (2953217, "TCS", "TATA CONSULTANCY SERV", 310_000),
    (779521, "SBIN", "STATE BANK OF INDIA", 85_000),
    (424961, "ITC", "ITC", 41_000),
    (1510401, "AXISBANK", "AXIS BANK", 118_000),
    (492033, "KOTAKBANK", "KOTAK MAHINDRA BANK", 210_000),
    (2939649, "LT", "LARSEN & TOUBRO", 360_000),
    (2714625, "BHARTIARTL", "BHARTI AIRTEL", 195_000),
    (356865, "HINDUNILVR", "HINDUSTAN UNILEVER", 245_000),
    (969473, "WIPRO", "WIPRO", 25_000),
    (2815745, "MARUTI", "MARUTI SUZUKI INDIA", 1_250_000),
    (884737, "TATAMOTORS", "TATA MOTORS", 68_000),
    (895745, "TATASTEEL", "TATA STEEL", 16_000),
    (857857, "SUNPHARMA", "SUN PHARMACEUTICAL IND", 170_000),
    (81153, "BAJFINANCE", "BAJAJ FINANCE", 95_000),
    (60417, "ASIANPAINT", "ASIAN PAINTS", 240_000),
    (1850625, "HCLTECH", "HCL TECHNOLOGIES", 155_000),
    (2952193, "ULTRACEMCO", "ULTRATECH CEMENT", 1_200_000),
    (2977281, "NTPC", "NTPC", 34_000),
    (3834113, "POWERGRID", "POWER GRID CORP", 29_000),
    (633601, "ONGC", "OIL AND NATURAL GAS CORP", 24_500),
    (3465729, "TECHM", "TECH MAHINDRA", 150_000),
    (3861249, "ADANIPORTS", "ADANI PORT & SEZ", 140_000),
    (6401, "ADANIENT", "ADANI ENTERPRISES", 240_000),
    (4598529, "NESTLEIND", "NESTLE INDIA", 120_000),
    (897537, "TITAN", "TITAN COMPANY", 350_000),
    (519937, "M&M", "MAHINDRA & MAHINDRA", 320_000),
    (4268801, "BAJAJFINSV", "BAJAJ FINSERV", 200_000),
    (348929, "HINDALCO", "HINDALCO INDUSTRIES", 70_000),
    (3001089, "JSWSTEEL", "JSW STEEL", 105_000),
    (315393, "GRASIM", "GRASIM INDUSTRIES", 270_000),
    (177665, "CIPLA", "CIPLA", 150_000),
    (225537, "DRREDDY", "DR. REDDY'S LABORATORIES", 125_000),
    (5215745, "COALINDIA", "COAL INDIA", 38_500),
    (1346049, "INDUSINDBK", "INDUSIND BANK", 75_000),
    (134657, "BPCL", "BHARAT PETROLEUM CORP", 32_000),
    (232961, "EICHERMOT", "EICHER MOTORS", 620_000),
    (345089, "HEROMOTOCO", "HERO MOTOCORP", 480_000),
    (140033, "BRITANNIA", "BRITANNIA INDUSTRIES", 580_000),
    (2800641, "DIVISLAB", "DIVI'S LABORATORIES", 620_000),
    (5582849, "SBILIFE", "SBI LIFE INSURANCE CO", 180_000),
    (119553, "HDFCLIFE", "HDFC LIFE INSURANCE CO", 75_000),
    (4267265, "BAJAJ-AUTO", "BAJAJ AUTO", 850_000),
    (2889473, "UPL", "UPL", 65_000),
    (794369, "SHREECEM", "SHREE CEMENT", 2_900_000),
    (212481, "DEEPAKNITR", "DEEPAK NITRITE", 190_000),
    (2883073, "IGL", "INDRAPRASTHA GAS", 21_000),
    (4774913, "ICICIPRULI", "ICICI PRU LIFE INS CO", 62_000),
];

/// The bundled NSE universe (51 instruments), ordered as listed above.
pub fn nse_universe() -> Vec<Instrument> {
    UNIVERSE
        .iter()
        .map(|&(token, symbol, name, paise)| Instrument {
            instrument_token: InstrumentToken(token),
            exchange_token: token >> 8,
            tradingsymbol: symbol.to_string(),
            name: name.to_string(),
            last_price: Decimal::new(paise, 2),
            expiry: None,
            strike: None,
            tick_size: Decimal::new(5, 2),
            lot_size: 1,
            instrument_type: "EQ".to_string(),
            segment: "NSE".to_string(),
            exchange: "NSE".to_string(),
        })
        .collect()
}

/// The token of a bundled symbol.
pub fn symbol_token(tradingsymbol: &str) -> Option<u32> {
    UNIVERSE
        .iter()
        .find(|(_, s, _, _)| *s == tradingsymbol)
        .map(|(t, _, _, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn fifty_one_unique_nse_instruments_on_the_kite_token_scheme() {
        let u = nse_universe();
        assert_eq!(u.len(), 51);
        let tokens: BTreeSet<_> = u.iter().map(|i| i.instrument_token).collect();
        let symbols: BTreeSet<_> = u.iter().map(|i| i.tradingsymbol.clone()).collect();
        assert_eq!(tokens.len(), u.len());
        assert_eq!(symbols.len(), u.len());
        for i in &u {
            assert_eq!(
                i.instrument_token.0,
                i.exchange_token * 256 + 1,
                "{}",
                i.tradingsymbol
            );
            assert_eq!(i.lot_size, 1);
            assert!(i.last_price > Decimal::ZERO);
            assert!(alpha_panda_core::Price(i.last_price).is_on_tick(i.tick_size));
        }
        assert_eq!(symbol_token("RELIANCE"), Some(738561));
        assert_eq!(symbol_token("NOPE"), None);
    }
}
