#!/usr/bin/env bash
# Side-by-side metadata lookups (the metric-browser case): Quiver against a real Prometheus.
#
# Run from the repository root:   bash scripts/bench-lookups.sh
#
# Each server in turn (never both at once) is started fresh with no scrape targets, gets
# SERIES series with ONE sample each from the remote-write load generator (benches/ingest.rs),
# and then answers the label and series lookups a metric browser or Grafana's query editor
# makes, RUNS times each. The table shows the median latency per request and the ratio, and
# the RSS of each server after loading.
#
# The generator's series are bench_metric_{0..9} x instance host-{0..99} x series_id, so with
# the default 1 000 000 series: bench_metric_3 matches 100 000 series, and
# bench_metric_1{instance="host-7"} matches 1000.
#
# Every response must be status "success" (the run fails otherwise); a request whose number
# of returned entries differs between the servers is flagged in the table.
#
# Needs: a release build of Quiver, `prometheus` (2.42 from Debian), curl, jq and python3
# (standard library only). Installs nothing.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]  where the release build lives
#   QUIVER_BIN        [$CARGO_TARGET_DIR/release/quiver]
#   INGEST_BIN        [built with `cargo bench --bench ingest --no-run`]  the load generator
#   PROMETHEUS_BIN    [prometheus]
#   QUIVER_PORT [19190]  PROM_PORT [19191]  (both on 127.0.0.1)
#   SERIES [1000000]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   RUNS [5]  timed runs per request; the table shows the median
#   SETTLE_SECS [5]  wait after loading before reading RSS and the first request
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run; a given one is kept]
#   KEEP_DATA [0]  set to 1 to keep the data dirs, logs and raw timings

set -euo pipefail

# Shared helpers.
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-query-common.sh"
ITEM_NOUN=request
ITEMS_NOUN=requests
COUNT_NOUN=entries

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN QUIVER_PORT PROM_PORT
    SERIES BATCH_SIZE CONCURRENCY RUNS SETTLE_SECS WORK_DIR KEEP_DATA)

# Printed first so that a result can always be reproduced.
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
SERIES=${SERIES:-1000000}
# One sample per series: the lookups only read the index.
SAMPLES=1
INTERVAL_MS=15000
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
RUNS=${RUNS:-5}
SETTLE_SECS=${SETTLE_SECS:-5}
KEEP_DATA=${KEEP_DATA:-0}

check_prerequisites() {
    check_servers_and_tools SERIES RUNS
}

check_prerequisites
locate_generator
prepare_work_dir lookups
for d in "$WORK_DIR"/quiver "$WORK_DIR"/prometheus; do
    [[ ! -e "$d" ]] || die "$d exists from an earlier run; use an empty WORK_DIR"
done
echo "work dir: $WORK_DIR"
echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
echo "prometheus: $(command -v "$PROMETHEUS_BIN") ($("$PROMETHEUS_BIN" --version 2>&1 | head -n 1))"
echo "generator: $INGEST_BIN"

# PIDs of servers still running, stopped on any exit so no server outlives the script.
RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# The requests. Without start/end both servers look at all time, which is what a metric
# browser asks for.
write_spec() {
    local spec=$WORK_DIR/requests.tsv
    : >"$spec"
    add() { printf '%s\t%s\t%s' "$1" "$2" "$RUNS" >>"$spec"; shift 2; printf '\t%s' "$@" >>"$spec"; echo >>"$spec"; }
    add '/api/v1/label/__name__/values' /api/v1/label/__name__/values
    add '/api/v1/label/instance/values' /api/v1/label/instance/values
    add '/api/v1/labels' /api/v1/labels
    add '/api/v1/series?match[]=bench_metric_1{instance="host-7"}' /api/v1/series 'match[]=bench_metric_1{instance="host-7"}'
    add '/api/v1/label/instance/values?match[]=bench_metric_2' /api/v1/label/instance/values 'match[]=bench_metric_2'
    add '/api/v1/series?match[]=bench_metric_3' /api/v1/series 'match[]=bench_metric_3'
    # One value per series: the largest label-values answer.
    add '/api/v1/label/series_id/values' /api/v1/label/series_id/values
    SUMMARY_FROM='/api/v1/label/__name__/values'
}

declare -A R
measure_server() {
    local kind=$1 dir=$WORK_DIR/$1
    echo "$kind: $SERIES series x 1 sample"
    start_server "$kind" "$dir"
    sleep 2
    R[$kind.idle_rss]=$(rss_kib "$SERVER_PID")
    run_generator "$SERVER_URL" "$dir/generator.json"
    R[$kind.load_secs]=$(jq '.seconds * 10 | round / 10' "$dir/generator.json")
    sleep "$SETTLE_SECS"
    R[$kind.rss]=$(rss_kib "$SERVER_PID")
    python3 "$WORK_DIR/timer.py" measure "$SERVER_URL" "$WORK_DIR/requests.tsv" "$WORK_DIR/$kind.json"
    R[$kind.rss_after]=$(rss_kib "$SERVER_PID")
    stop_server "$SERVER_PID"
}

# Same timestamp for both servers: one interval before the script started.
START_MS=$(($(now_ms) - INTERVAL_MS))
write_timer
write_spec
for kind in quiver prometheus; do measure_server "$kind"; done

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
ratio() { awk -v q="$1" -v p="$2" 'BEGIN { printf "%.2f", q / p }'; }
per_series() { awk -v k="$1" -v n="$SERIES" 'BEGIN { printf "%.0f", k * 1024 / n }'; }
echo
echo "## Metadata lookups: Quiver vs Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "$SERIES series with one sample each, remote-written to fresh servers; median of $RUNS runs per request," \
    "one keep-alive connection, uncompressed answers, no start/end (all time)."
echo
python3 "$WORK_DIR/timer.py" report "$WORK_DIR/quiver.json" "$WORK_DIR/prometheus.json" \
    "$WORK_DIR/requests.tsv" "$SUMMARY_FROM"
echo
echo "| measure | Quiver | Prometheus | Quiver/Prometheus |"
echo "|---|---:|---:|---:|"
echo "| load time, s | ${R[quiver.load_secs]} | ${R[prometheus.load_secs]} | $(ratio "${R[quiver.load_secs]}" "${R[prometheus.load_secs]}") |"
echo "| RSS idle, MiB | $(mib "${R[quiver.idle_rss]}") | $(mib "${R[prometheus.idle_rss]}") | $(ratio "${R[quiver.idle_rss]}" "${R[prometheus.idle_rss]}") |"
echo "| RSS after loading, MiB | $(mib "${R[quiver.rss]}") | $(mib "${R[prometheus.rss]}") | $(ratio "${R[quiver.rss]}" "${R[prometheus.rss]}") |"
echo "| RSS after loading per series, bytes | $(per_series "${R[quiver.rss]}") | $(per_series "${R[prometheus.rss]}") | $(ratio "${R[quiver.rss]}" "${R[prometheus.rss]}") |"
echo "| RSS after the lookups, MiB | $(mib "${R[quiver.rss_after]}") | $(mib "${R[prometheus.rss_after]}") | $(ratio "${R[quiver.rss_after]}" "${R[prometheus.rss_after]}") |"
