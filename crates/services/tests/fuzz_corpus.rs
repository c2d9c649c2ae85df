//! The fuzzer's committed corpus of replay files (`fuzz/corpus/csv_replay`, grown by
//! `bash scripts/fuzz.sh`) replayed on the stable toolchain: every file parses, with its bad rows
//! reported, or is refused, never a panic.

use std::path::Path;

use alpha_panda_services::parse_ticks_csv;

#[test]
fn every_corpus_file_is_parsed_or_reported() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/csv_replay");
    let mut ticks = 0;
    for entry in std::fs::read_dir(&dir).expect("the committed corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(replay) = parse_ticks_csv(text) {
            for tick in &replay.ticks {
                let _ = tick.check_plausible();
                ticks += 1;
            }
        }
    }
    assert!(ticks >= 2, "only {ticks} ticks parsed");
}
