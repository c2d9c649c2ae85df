//! What Kite sends is outside input: any JSON where an order, a trade or a profile is expected,
//! and any instruments file, is parsed or refused with an error, never a panic.

use alpha_panda_kite::{parse_instruments_csv, Order, Trade, UserProfile};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[ -~]{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("order_id".to_string()),
                    Just("status".to_string()),
                    Just("filled_quantity".to_string()),
                    Just("average_price".to_string()),
                    Just("trade_id".to_string()),
                    Just("quantity".to_string()),
                    Just("tag".to_string()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_json_is_an_order_a_trade_a_profile_or_an_error(value in json_value()) {
        let text = value.to_string();
        let _ = serde_json::from_str::<Order>(&text);
        let _ = serde_json::from_str::<Vec<Order>>(&text);
        let _ = serde_json::from_str::<Trade>(&text);
        let _ = serde_json::from_str::<UserProfile>(&text);
    }

    #[test]
    fn any_instruments_file_is_parsed_or_refused(
        rows in proptest::collection::vec("[ -~]{0,60}", 0..6),
    ) {
        let header = "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,\
                      tick_size,lot_size,instrument_type,segment,exchange";
        let text = format!("{header}\n{}\n", rows.join("\n"));
        let _ = parse_instruments_csv(text.as_bytes());
        let _ = parse_instruments_csv(rows.join("\n").as_bytes());
    }
}
