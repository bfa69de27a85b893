#!/usr/bin/env bash
# kill -9 at many moments: runs the two kill -9 tests of tests/it/crash.rs (during ingest;
# during block cuts and WAL checkpoints) ROUNDS times. Each round kills the server 6 times at
# different points (3 + 3), each time checking that every acknowledged sample survived once.
# Stops at the first lost or doubled sample.
#
#   bash scripts/stress-crash.sh [ROUNDS]   # default 9: 54 kills
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-9}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target}"
cargo test --test it --no-run
for ((i = 1; i <= rounds; i++)); do
  if ! out=$(cargo test --test it -- crash::acknowledged_samples_survive_kill_9 --test-threads=1 2>&1); then
    echo "$out" | tail -30
    echo "round $i of $rounds: FAILED"
    exit 1
  fi
  echo "round $i of $rounds: $((i * 6)) kills so far, every acknowledged sample survived once"
done
