//! Records read from the log: any bytes decode into an envelope whose payload can be checked, or
//! are poison, without a panic; what decodes encodes and decodes again to itself.
#![no_main]

use alpha_panda_core::{Envelope, ErrorClass};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Envelope::from_json(data) {
        Ok(envelope) => {
            let _ = envelope.payload.check_plausible();
            let again = Envelope::from_json(&envelope.to_json()).expect("an envelope re-encodes");
            assert_eq!(again, envelope);
        }
        Err(e) => assert_eq!(e.class(), ErrorClass::Poison),
    }
});
