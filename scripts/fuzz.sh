#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 300) and prints a table of
# executions and outcomes for the README. Not part of the test suite (the suite has a short
# PromQL fuzz test of its own, tests/it/promql_fuzz.rs).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz if missing. Corpora grow in fuzz/corpus/<target> (seeded from the
# repository's examples and Prometheus's test scripts in ../shared); a crash leaves its input
# in fuzz/artifacts/<target>/ and makes the script exit 1: turn it into a regression test.
# Builds with RUSTC_BOOTSTRAP=1 (cargo-fuzz's flags are nightly-only) and no sanitizer by
# default (safe Rust: panics and failed assertions are the findings); SANITIZER=address to
# add ASan.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds="${1:-300}"
shift || true
export CARGO_TARGET_DIR="${QUIVER_FUZZ_TARGET_DIR:-$HOME/.cache/quiver-target-fuzz}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cd fuzz
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)

seed() {
  local target=$1 dir=corpus/$1
  mkdir -p "$dir"
  case $target in
  exposition)
    cp -n "$root"/tests/it/data/*.prom "$dir"/ 2>/dev/null || true
    ;;
  promql)
    local shared="$root/../shared/promqltest"
    if [[ -d $shared ]] && [[ -z $(ls -A "$dir") ]]; then
      grep -h '^\s*eval' "$shared"/*.test 2>/dev/null |
        sed -E 's/^\s*eval(_fail|_warn|_info|_ordered)?\s+(instant|range)\s+(at\s+\S+\s*)?(from\s+\S+\s+to\s+\S+\s+step\s+\S+\s*)?//' |
        sort -u | head -3000 | split -l 1 - "$dir/seed-"
    fi
    ;;
  web_config)
    cp -n "$root"/deploy/prod/web.yml "$dir"/ 2>/dev/null || true
    ;;
  esac
}

status=0
printf '| target | seconds | executions | exec/s | corpus | outcome |\n|---|---:|---:|---:|---:|---|\n' >"$root/fuzz/last-run.md"
for target in "${targets[@]}"; do
  seed "$target"
  log=$(mktemp)
  if cargo fuzz run --release --sanitizer "${SANITIZER:-none}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    outcome="no crash"
  else
    outcome="CRASH: see fuzz/artifacts/$target"
    status=1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  corpus=$(ls "corpus/$target" | wc -l)
  rate=$((${runs:-0} / seconds))
  printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "${runs:-?}" "$rate" "$corpus" "$outcome" |
    tee -a "$root/fuzz/last-run.md"
  [[ $outcome == "no crash" ]] || tail -40 "$log"
  rm -f "$log"
done
exit $status
