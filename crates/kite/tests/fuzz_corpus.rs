//! The fuzzer's committed corpora of Kite input (`fuzz/corpus/ticker_decode` and
//! `fuzz/corpus/kite_rest_json`, grown by `bash scripts/fuzz.sh`) replayed on the stable
//! toolchain: every input is parsed or refused, never a panic.

use std::path::{Path, PathBuf};

use alpha_panda_kite::rest::{KiteError, Order, Session, Trade, UserProfile};
use alpha_panda_kite::ticker::decode_message;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::read_dir(&dir)
        .expect("the committed corpus")
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn every_corpus_frame_decodes_or_is_refused() {
    let mut ticks = 0;
    for data in corpus("ticker_decode") {
        if let Ok(packets) = decode_message(&data) {
            for packet in packets {
                let _ = packet.to_market_tick(None).check_plausible();
                ticks += 1;
            }
        }
    }
    // The seeds are the reference's frames: the corpus holds real ticks, not only noise.
    assert!(ticks >= 4, "only {ticks} ticks decoded");
}

#[test]
fn every_corpus_body_is_a_value_or_an_error() {
    let mut orders = 0;
    for data in corpus("kite_rest_json") {
        let Some((&status, body)) = data.split_first() else {
            continue;
        };
        orders += usize::from(serde_json::from_slice::<Order>(body).is_ok());
        let _ = serde_json::from_slice::<Vec<Order>>(body);
        let _ = serde_json::from_slice::<Trade>(body);
        let _ = serde_json::from_slice::<Vec<Trade>>(body);
        let _ = serde_json::from_slice::<Session>(body);
        let _ = serde_json::from_slice::<UserProfile>(body);
        let status = [200u16, 400, 403, 429, 500, 502, 503][usize::from(status) % 7];
        let error = KiteError::from_response(status, body);
        let _ = (error.class(), error.is_auth(), error.to_string());
    }
    assert!(orders >= 1, "no corpus body is an order");
}
