#!/usr/bin/env bash
# Side-by-side PromQL query latency: Quiver against a real Prometheus, same data.
#
# Run from the repository root:   bash scripts/bench-promql.sh
#
# Each server in turn (never both at once, as they would compete for the CPU) is started fresh
# with no scrape targets, gets SERIES series x SAMPLES samples from the remote-write load
# generator (benches/ingest.rs; 2000 x 1440 at 15 s = 6 h ending one interval before the
# script started), and then answers a fixed set of dashboard-style range queries, RUNS times
# each. The table shows the median latency per query for both servers and the ratio.
#
# Both servers get exactly the same timestamps and the same query windows, so their answers
# must match: every response must be status "success" (the run fails otherwise), and a
# query whose number of result series differs between the servers is flagged in the table.
#
# HISTOGRAM_INSTANCES instances also get the classic histogram bench_request_seconds
# (9 _bucket series each), for histogram_quantile.
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
#   SERIES [2000]  HISTOGRAM_INSTANCES [100]  SAMPLES [1440]  INTERVAL_MS [15000]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   RUNS [5]  timed runs per query; the table shows the median
#   TRIVIAL_RUNS [50]  timed runs of the instant query vector(1), the fixed per-request cost
#   SETTLE_SECS [5]  wait after loading before the first query
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run; a given one is kept]
#   KEEP_DATA [0]  set to 1 to keep the data dirs, logs and raw timings
set -euo pipefail

# Shared helpers.
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-query-common.sh"
ITEM_NOUN=query
ITEMS_NOUN=queries
COUNT_NOUN=series

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN QUIVER_PORT PROM_PORT
    SERIES HISTOGRAM_INSTANCES SAMPLES INTERVAL_MS BATCH_SIZE CONCURRENCY RUNS TRIVIAL_RUNS SETTLE_SECS WORK_DIR KEEP_DATA)

# Printed first so that a result can always be reproduced.
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
SERIES=${SERIES:-2000}
HISTOGRAM_INSTANCES=${HISTOGRAM_INSTANCES:-100}
SAMPLES=${SAMPLES:-1440}
INTERVAL_MS=${INTERVAL_MS:-15000}
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
RUNS=${RUNS:-5}
TRIVIAL_RUNS=${TRIVIAL_RUNS:-50}
SETTLE_SECS=${SETTLE_SECS:-5}
KEEP_DATA=${KEEP_DATA:-0}

check_prerequisites() {
    check_servers_and_tools SERIES SAMPLES RUNS TRIVIAL_RUNS
    [[ "$HISTOGRAM_INSTANCES" =~ ^[0-9]+$ ]] || die "HISTOGRAM_INSTANCES must be a whole number"
}

check_prerequisites
locate_generator
prepare_work_dir promql
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

# The query set. Even bench_metric_N are counters, odd ones gauges (benches/ingest.rs); each
# metric has SERIES/10 series over 100 instances, all with job="bench".
write_spec() {
    local end_s start1h_s start6h_s spec=$WORK_DIR/queries.tsv
    # The steps fall half an interval before a sample, never on one: Prometheus 2.42's
    # range windows include a sample at their lower edge and 3.x's (Quiver's) do not, so
    # on-grid steps would give the two servers different answers.
    local query_end_ms=$((END_MS - INTERVAL_MS / 2))
    # Seconds with millisecond precision, so both servers see the same step grid.
    end_s=$(awk -v ms="$query_end_ms" 'BEGIN { printf "%.3f", ms / 1000 }')
    start1h_s=$(awk -v ms="$query_end_ms" 'BEGIN { printf "%.3f", ms / 1000 - 3600 }')
    start6h_s=$(awk -v ms="$query_end_ms" 'BEGIN { printf "%.3f", ms / 1000 - 6 * 3600 }')
    : >"$spec"
    add() { printf '%s\t%s\t%s' "$1" "$2" "$3" >>"$spec"; shift 3; printf '\t%s' "$@" >>"$spec"; echo >>"$spec"; }
    add 'vector(1) (instant)' /api/v1/query "$TRIVIAL_RUNS" 'query=vector(1)' "time=$end_s"
    range1h() { add "$1" /api/v1/query_range "$RUNS" "query=$1" "start=$start1h_s" "end=$end_s" step=15; }
    # The median ratio starts with this row (vector(1) is reported on its own).
    range1h 'sum by (job) (rate(bench_metric_0[5m]))'
    range1h 'sum by (instance) (rate(bench_metric_2[5m]))'
    range1h 'topk(5, rate(bench_metric_4[5m]))'
    # The right side is made one series per instance, which group_left needs.
    range1h 'rate(bench_metric_6[5m]) / on(instance) group_left sum by (instance) (rate(bench_metric_8[5m]))'
    add 'avg_over_time(bench_metric_5[1h]) (6 h, step 60 s)' /api/v1/query_range "$RUNS" \
        'query=avg_over_time(bench_metric_5[1h])' "start=$start6h_s" "end=$end_s" step=60
    range1h 'max by (job) (bench_metric_7)'
    range1h 'count(bench_metric_9)'
    range1h 'count by (instance) ({job="bench"})'
    # Broad selections: every series of the store, as a cardinality panel asks.
    range1h 'count({__name__=~".+"})'
    range1h 'count by (job) ({job=~".+"})'
    range1h 'histogram_quantile(0.9, sum by (instance, le) (rate(bench_request_seconds_bucket[5m])))'
    SUMMARY_FROM='sum by (job) (rate(bench_metric_0[5m]))'
}

declare -A R
measure_server() {
    local kind=$1 dir=$WORK_DIR/$1
    echo "$kind: $SERIES series + $((HISTOGRAM_INSTANCES * 9)) bucket series x $SAMPLES samples"
    start_server "$kind" "$dir"
    run_generator "$SERVER_URL" "$dir/generator.json"
    R[$kind.load_secs]=$(jq '.seconds * 10 | round / 10' "$dir/generator.json")
    sleep "$SETTLE_SECS"
    python3 "$WORK_DIR/timer.py" measure "$SERVER_URL" "$WORK_DIR/queries.tsv" "$WORK_DIR/$kind.json"
    R[$kind.rss]=$(rss_kib "$SERVER_PID")
    stop_server "$SERVER_PID"
}

# Same timestamps for both servers; the data ends one interval before the script started.
START_MS=$(($(now_ms) - SAMPLES * INTERVAL_MS))
END_MS=$((START_MS + (SAMPLES - 1) * INTERVAL_MS))
write_timer
write_spec
for kind in quiver prometheus; do measure_server "$kind"; done

echo
echo "## PromQL range-query latency: Quiver vs Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "$SERIES series and $((HISTOGRAM_INSTANCES * 9)) histogram bucket series x $SAMPLES samples, ${INTERVAL_MS} ms apart ($(((SERIES + HISTOGRAM_INSTANCES * 9) * SAMPLES)) samples)," \
    "remote-written to fresh servers. Range queries cover the last 1 h at step 15 s unless noted; median of $RUNS runs" \
    "(vector(1): $TRIVIAL_RUNS runs), one keep-alive connection, uncompressed answers." \
    "Load time: Quiver ${R[quiver.load_secs]} s, Prometheus ${R[prometheus.load_secs]} s." \
    "RSS after the queries: Quiver $((R[quiver.rss] / 1024)) MiB, Prometheus $((R[prometheus.rss] / 1024)) MiB."
echo
python3 "$WORK_DIR/timer.py" report "$WORK_DIR/quiver.json" "$WORK_DIR/prometheus.json" \
    "$WORK_DIR/queries.tsv" "$SUMMARY_FROM"
