#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (light: the modules under test compiled directly) and
# fuzz/engine/ (the whole crate: config and rule files, SQL, PromQL planned and executed) for
# SECONDS each (default 300) and prints a table of executions and outcomes for the README. Not part of the test suite (the suite has a short
# PromQL fuzz test of its own, tests/it/promql_fuzz.rs).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz if missing. Corpora grow in <folder>/corpus/<target> (seeded from the
# repository's examples and Prometheus's test scripts in ../shared); a crash leaves its input
# in <folder>/artifacts/<target>/ and makes the script exit 1: turn it into a regression test.
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
targets=("$@")
if ! ((${#targets[@]})); then
  for dir in fuzz fuzz/engine; do
    mapfile -t -O "${#targets[@]}" targets < <(cargo fuzz list --fuzz-dir "$dir" | sed "s|^|$dir:|")
  done
fi

seed() {
  local target=$1 dir=$2/corpus/$1
  mkdir -p "$dir"
  case $target in
  exposition)
    cp -n "$root"/tests/it/data/*.prom "$dir"/ 2>/dev/null || true
    ;;
  promql | promql_engine)
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
  config_files)
    cp -n "$root"/deploy/prod/quiver.yml "$root"/deploy/dev/quiver.yml "$root"/rules/*.yml "$dir"/ 2>/dev/null || true
    ;;
  sql)
    [[ -n $(ls -A "$dir") ]] || {
      echo "SELECT job, count(*), avg(value) FROM http_requests_total GROUP BY job" >"$dir/a"
      echo "SELECT metric, labels['job'] FROM series ORDER BY 1" >"$dir/b"
      echo "SELECT date_bin(INTERVAL '1 minute', timestamp) AS t, max(value) FROM node_load1 GROUP BY 1" >"$dir/c"
    }
    ;;
  esac
}

status=0
printf '| target | seconds | executions | exec/s | corpus | outcome |\n|---|---:|---:|---:|---:|---|\n' >"$root/fuzz/last-run.md"
for entry in "${targets[@]}"; do
  dir=${entry%%:*} target=${entry#*:}
  [[ $entry == *:* ]] || { dir=fuzz; [[ -f fuzz/engine/fuzz_targets/$target.rs ]] && dir=fuzz/engine; }
  seed "$target" "$dir"
  log=$(mktemp)
  if cargo fuzz run --fuzz-dir "$dir" --release --sanitizer "${SANITIZER:-none}" "$target" "$dir/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    outcome="no crash"
  else
    outcome="CRASH: see $dir/artifacts/$target"
    status=1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  corpus=$(ls "$dir/corpus/$target" | wc -l)
  rate=$((${runs:-0} / seconds))
  printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "${runs:-?}" "$rate" "$corpus" "$outcome" |
    tee -a "$root/fuzz/last-run.md"
  [[ $outcome == "no crash" ]] || grep -B2 -A12 "panicked\|ERROR: libFuzzer\|deadly signal" "$log" | head -40
  rm -f "$log"
done
exit $status
