//! The fuzzer's committed corpus of log records (`fuzz/corpus/envelope_decode`, grown by
//! `bash scripts/fuzz.sh`) replayed on the stable toolchain: each input decodes and re-encodes to
//! itself, or is poison, as the fuzz target demands.

use std::path::Path;

use alpha_panda_core::{Envelope, ErrorClass};

#[test]
fn every_corpus_record_decodes_or_is_poison() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/envelope_decode");
    let mut decoded = 0;
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).expect("the committed corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        inputs += 1;
        match Envelope::from_json(&data) {
            Ok(envelope) => {
                let _ = envelope.payload.check_plausible();
                assert_eq!(Envelope::from_json(&envelope.to_json()).unwrap(), envelope);
                decoded += 1;
            }
            Err(e) => assert_eq!(e.class(), ErrorClass::Poison),
        }
    }
    // The seeds are the golden events: the corpus holds good records, not only noise.
    assert!(decoded >= 12, "{decoded} of {inputs} decoded");
}
