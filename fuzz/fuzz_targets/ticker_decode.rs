//! Kite's binary ticker frames: any bytes decode into packets or are refused, and every decoded
//! packet turns into a tick whose figures can be checked, without a panic.
#![no_main]

use alpha_panda_kite::ticker::decode_message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packets) = decode_message(data) {
        for packet in packets {
            let _ = packet.to_market_tick(None).check_plausible();
        }
    }
});
