//! Kite REST bodies: any bytes are an order, a trade, a session, a profile or an error value, with
//! any status, without a panic.
#![no_main]

use alpha_panda_kite::rest::{KiteError, Order, Session, Trade, UserProfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&status, body)) = data.split_first() else {
        return;
    };
    let _ = serde_json::from_slice::<Order>(body);
    let _ = serde_json::from_slice::<Vec<Order>>(body);
    let _ = serde_json::from_slice::<Trade>(body);
    let _ = serde_json::from_slice::<Vec<Trade>>(body);
    let _ = serde_json::from_slice::<Session>(body);
    let _ = serde_json::from_slice::<UserProfile>(body);
    // The first byte picks a status around each class Kite answers with.
    let status = [200u16, 400, 403, 429, 500, 502, 503][usize::from(status) % 7];
    let error = KiteError::from_response(status, body);
    let _ = (error.class(), error.is_auth(), error.to_string());
});
