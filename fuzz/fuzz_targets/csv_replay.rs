//! The replay CSV: any text parses into ticks (bad rows reported) or is refused, and every tick
//! it gives can be checked, without a panic.
#![no_main]

use alpha_panda_services::parse_ticks_csv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(replay) = parse_ticks_csv(text) {
        for tick in &replay.ticks {
            let _ = tick.check_plausible();
        }
    }
});
