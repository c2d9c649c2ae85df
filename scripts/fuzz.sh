#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through cargo-fuzz on the nightly toolchain) of every entry
# point that reads outside input: Kite's binary ticker frames, the replay CSV, log records
# (envelopes) and Kite REST bodies. Each target runs from its committed corpus under fuzz/corpus/,
# which grows with what it finds and is then minimised; commit the corpus changes. A crash stops
# the script, with the input that caused it under fuzz/artifacts/TARGET/; the stable test suite
# replays the committed corpora (the fuzz_corpus tests).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # default 60 s, every target
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(ticker_decode csv_replay envelope_decode kite_rest_json)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Without AddressSanitizer: the code under test is safe Rust, and what the fuzzer hunts is a panic
# (an unwrap on input, an overflow, an index out of range), which debug assertions make loud.
for target in "${targets[@]}"; do
  echo "== $target: ${seconds}s"
  cargo +nightly fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=8192 -print_final_stats=1
done
for target in "${targets[@]}"; do
  cargo +nightly fuzz cmin --sanitizer none "$target" "fuzz/corpus/$target" >/dev/null 2>&1
  echo "$target: $(ls "fuzz/corpus/$target" | wc -l) inputs in the corpus"
done
