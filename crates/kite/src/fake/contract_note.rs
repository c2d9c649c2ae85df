//! The fake's virtual contract note (`POST /charges/orders`): Zerodha's charges of an executed
//! order, itemised and unrounded as Kite sends them.
//!
//! The rates are NSE equity's in force since 2024-10-01 (reviews/zerodha.md §1.1), and the rules
//! are those both samples in `reference/kite-mocks/virtual_contract_note.json` reproduce under
//! (§1.3): `exchange_turnover_charge` is the transaction charge plus IPFT, GST is 18 % of
//! brokerage, the transaction charge *without* IPFT and the SEBI fee, stamp duty is rounded to the
//! rupee and everything else is left unrounded. It is written apart from the trading engine's
//! charge model on purpose: a test that compares the two compares two computations, not one with
//! itself.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

use super::state::kite_number;

/// The rates of one product.
struct Rates {
    brokerage_rate: Decimal,
    brokerage_cap: Decimal,
    stt_buy: Decimal,
    stt_sell: Decimal,
    stamp_buy: Decimal,
}

const TRANSACTION_CHARGE: Decimal = dec!(0.0000297);
const IPFT: Decimal = dec!(0.000001);
const SEBI_FEE: Decimal = dec!(0.000001);
const GST: Decimal = dec!(0.18);

fn rates(product: &str) -> Rates {
    match product {
        "CNC" => Rates {
            brokerage_rate: Decimal::ZERO,
            brokerage_cap: Decimal::ZERO,
            stt_buy: dec!(0.001),
            stt_sell: dec!(0.001),
            stamp_buy: dec!(0.00015),
        },
        // MIS, and NRML on cash equity, are charged as intraday.
        _ => Rates {
            brokerage_rate: dec!(0.0003),
            brokerage_cap: dec!(20),
            stt_buy: Decimal::ZERO,
            stt_sell: dec!(0.00025),
            stamp_buy: dec!(0.00003),
        },
    }
}

/// A field the contract note request must carry (Kite's docs list them).
pub(crate) const FIELDS: [&str; 9] = [
    "order_id",
    "exchange",
    "tradingsymbol",
    "transaction_type",
    "variety",
    "product",
    "order_type",
    "quantity",
    "average_price",
];

/// The contract note entry of one requested order, or the name of the first field that is
/// missing or malformed.
pub(crate) fn entry(order: &Value) -> Result<Value, &'static str> {
    for field in FIELDS {
        if order.get(field).is_none_or(Value::is_null) {
            return Err(field);
        }
    }
    let text = |field: &'static str| {
        order
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(field)
    };
    let quantity = order
        .get("quantity")
        .and_then(Value::as_u64)
        .ok_or("quantity")?;
    let price: Decimal = order
        .get("average_price")
        .filter(|p| p.is_number())
        .map(Value::to_string)
        .and_then(|p| p.parse().ok())
        .ok_or("average_price")?;
    let side = text("transaction_type")?;
    let buy = match side.as_str() {
        "BUY" => true,
        "SELL" => false,
        _ => return Err("transaction_type"),
    };
    let product = text("product")?;
    let rates = rates(&product);
    let turnover = price * Decimal::from(quantity);
    let brokerage = (turnover * rates.brokerage_rate).min(rates.brokerage_cap);
    let stt = turnover * if buy { rates.stt_buy } else { rates.stt_sell };
    let transaction = turnover * TRANSACTION_CHARGE;
    let exchange = transaction + turnover * IPFT;
    let sebi = turnover * SEBI_FEE;
    let stamp = if buy {
        (turnover * rates.stamp_buy)
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    } else {
        Decimal::ZERO
    };
    let gst = (brokerage + transaction + sebi) * GST;
    let total = stt + exchange + sebi + brokerage + stamp + gst;
    Ok(json!({
        "transaction_type": side,
        "tradingsymbol": text("tradingsymbol")?,
        "exchange": text("exchange")?,
        "variety": text("variety")?,
        "product": product,
        "order_type": text("order_type")?,
        "quantity": quantity,
        "price": kite_number(price),
        "charges": {
            "transaction_tax": kite_number(stt),
            "transaction_tax_type": "stt",
            "exchange_turnover_charge": kite_number(exchange),
            "sebi_turnover_charge": kite_number(sebi),
            "brokerage": kite_number(brokerage),
            "stamp_duty": kite_number(stamp),
            "gst": {
                "igst": kite_number(gst),
                "cgst": 0,
                "sgst": 0,
                "total": kite_number(gst),
            },
            "total": kite_number(total),
        }
    }))
}
