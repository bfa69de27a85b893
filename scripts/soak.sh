#!/usr/bin/env bash
# The sustained mixed-load test (tests/it/soak.rs) for longer than the suite's 45 s, against
# a release build: remote write from 4 senders, scrapes, rules, PromQL and SQL at once.
# Prints acknowledged samples/s, queries/s and RSS; fails on any unexpected answer, memory
# that keeps growing, or an acknowledged sample missing.
#
#   bash scripts/soak.sh [SECONDS]     # default 300
set -euo pipefail
cd "$(dirname "$0")/.."
release="${QUIVER_RELEASE_TARGET_DIR:-$HOME/.cache/quiver-target-release}"
CARGO_TARGET_DIR="$release" cargo build --release --bin quiver
QUIVER_BIN="$release/release/quiver" QUIVER_SOAK_SECONDS="${1:-300}" \
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target}" \
  cargo test --test it -- soak --nocapture
