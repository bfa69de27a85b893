#!/usr/bin/env bash
# Side-by-side rule evaluation: CPU per recording rule, Quiver against a real Prometheus.
#
# Run from the repository root:   bash scripts/bench-rules.sh
#
# Each server in turn (never both at once) is started fresh with the same rule file: RULES
# recording rules in RULE_GROUPS groups, every RULE_INTERVAL. It gets SERIES series x SAMPLES
# samples from the remote-write load generator (benches/ingest.rs; 1 h at 15 s ending when
# the script started, so every evaluation sees full 5 m windows), then runs its rules for
# MEASURE_SECS while nothing else happens. The table shows the process CPU time spent in
# that window per rule evaluation, the evaluations done, and the median group duration the
# server itself reports (Prometheus: prometheus_rule_group_last_duration_seconds; Quiver:
# quiver_rule_group_last_duration_seconds), sampled once per second.
#
# The rules are what recording-rule files hold: of every ten, eight aggregate one
# instance's series of a metric (10 series at the default SERIES: per-service rules) and two
# aggregate a whole metric (SERIES/10 series: fleet-wide rules); rates of counters, averages
# and maxima of gauges, and a ratio of two rates.
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
#   SERIES [10000]  SAMPLES [240]  INTERVAL_MS [15000]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   RULES [500]  RULE_GROUPS [10]  RULE_INTERVAL [15s]
#   MEASURE_SECS [60]  the measured window, after a first full round of evaluations
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run; a given one is kept]
#   KEEP_DATA [0]  set to 1 to keep the data dirs and logs
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-query-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN QUIVER_PORT PROM_PORT
    SERIES SAMPLES INTERVAL_MS BATCH_SIZE CONCURRENCY RULES RULE_GROUPS RULE_INTERVAL MEASURE_SECS
    WORK_DIR KEEP_DATA)

print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
SERIES=${SERIES:-10000}
SAMPLES=${SAMPLES:-240}
INTERVAL_MS=${INTERVAL_MS:-15000}
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
RULES=${RULES:-500}
RULE_GROUPS=${RULE_GROUPS:-10}
RULE_INTERVAL=${RULE_INTERVAL:-15s}
MEASURE_SECS=${MEASURE_SECS:-60}
KEEP_DATA=${KEEP_DATA:-0}
HISTOGRAM_INSTANCES=0

check_prerequisites() {
    check_servers_and_tools SERIES SAMPLES RULES RULE_GROUPS MEASURE_SECS
    ((SERIES >= 1000)) || die "SERIES must be at least 1000 (100 instances x 10 metrics)"
    [[ "$RULE_INTERVAL" =~ ^[1-9][0-9]*s$ ]] || die "RULE_INTERVAL must be whole seconds, like 15s"
}

# The rule file both servers load. Counters are the even bench_metric_N, gauges the odd
# ones (benches/ingest.rs); instances are host-0 .. host-99.
write_rules() {
    python3 - "$RULES" "$RULE_GROUPS" "$RULE_INTERVAL" >"$WORK_DIR/rules.yml" <<'PY'
import sys
rules, groups, interval = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
per_group = -(-rules // groups)
print("groups:")
for g in range(groups):
    first = g * per_group
    if first >= rules:
        break
    print(f"  - name: bench_{g}\n    interval: {interval}\n    rules:")
    for k in range(first, min(rules, first + per_group)):
        counter, gauge = 2 * (k % 5), 2 * (k % 5) + 1
        host = f'instance="host-{k % 100}"'
        kind = k % 10
        if kind < 3:
            expr = f"sum by (instance) (rate(bench_metric_{counter}{{{host}}}[5m]))"
        elif kind < 5:
            expr = f"avg by (instance) (bench_metric_{gauge}{{{host}}})"
        elif kind < 7:
            expr = f"max by (instance, job) (bench_metric_{gauge}{{{host}}})"
        elif kind < 8:
            expr = (f"sum by (instance) (rate(bench_metric_{counter}{{{host}}}[5m]))"
                    f" / on (instance) sum by (instance) (rate(bench_metric_{(counter + 2) % 10}{{{host}}}[5m]))")
        elif kind < 9:
            expr = f"sum by (job) (rate(bench_metric_{counter}[5m]))"
        else:
            expr = f"quantile by (job) (0.9, bench_metric_{gauge})"
        print(f"      - record: bench:rule_{k}\n        expr: '{expr}'")
PY
}

# CPU seconds (user + system) the process has used.
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# scrape_value URL METRIC: the sum of the metric's samples on the server's /metrics.
scrape_value() {
    curl -sf "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.6f", s }'
}

declare -A R
measure_server() {
    local kind=$1 dir=$WORK_DIR/$1 prefix
    [[ $kind == quiver ]] && prefix=quiver || prefix=prometheus
    echo "$kind: $SERIES series x $SAMPLES samples, $RULES rules in $RULE_GROUPS groups every $RULE_INTERVAL"
    SERVER_EXTRA_CONFIG="rule_files: [\"$WORK_DIR/rules.yml\"]"
    start_server "$kind" "$dir"
    run_generator "$SERVER_URL" "$dir/generator.json"
    # One whole round on the full data before the window opens.
    sleep $((${RULE_INTERVAL%s} + 2))
    local evals0 cpu0 evals1 cpu1 durations=() i
    evals0=$(scrape_value "$SERVER_URL" "${prefix}_rule_evaluations_total")
    cpu0=$(cpu_secs "$SERVER_PID")
    for ((i = 0; i < MEASURE_SECS; i++)); do
        sleep 1
        durations+=("$(scrape_value "$SERVER_URL" "${prefix}_rule_group_last_duration_seconds")")
    done
    cpu1=$(cpu_secs "$SERVER_PID")
    evals1=$(scrape_value "$SERVER_URL" "${prefix}_rule_evaluations_total")
    R[$kind.evals]=$(awk -v a="$evals0" -v b="$evals1" 'BEGIN { printf "%d", b - a }')
    R[$kind.cpu]=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.3f", b - a }')
    # The groups' summed last durations: one round's wall time, median over the window.
    R[$kind.round_ms]=$(printf '%s\n' "${durations[@]}" | sort -g |
        awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] * 1000 }')
    R[$kind.rss]=$(rss_kib "$SERVER_PID")
    ((R[$kind.evals] > 0)) || die "$kind evaluated no rule in the window (log: $dir/server.log)"
    echo "  ${R[$kind.evals]} evaluations, ${R[$kind.cpu]} CPU s, round ${R[$kind.round_ms]} ms"
    stop_server "$SERVER_PID"
}

check_prerequisites
locate_generator
prepare_work_dir rules
echo "work dir: $WORK_DIR"
echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
echo "prometheus: $(command -v "$PROMETHEUS_BIN") ($("$PROMETHEUS_BIN" --version 2>&1 | head -n 1))"
RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM

START_MS=$(($(now_ms) - SAMPLES * INTERVAL_MS))
write_rules
for kind in quiver prometheus; do measure_server "$kind"; done

per_eval() { awk -v c="${R[$1.cpu]}" -v e="${R[$1.evals]}" 'BEGIN { printf "%.3f", c * 1000 / e }'; }
q=$(per_eval quiver)
p=$(per_eval prometheus)
echo
echo "## Rule evaluation: Quiver vs Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "$RULES recording rules in $RULE_GROUPS groups every $RULE_INTERVAL over $SERIES series ($SAMPLES samples each," \
    "${INTERVAL_MS} ms apart), measured for $MEASURE_SECS s after a first round."
echo
echo "| measure | Quiver | Prometheus | Quiver/Prometheus |"
echo "|---|---:|---:|---:|"
echo "| CPU per rule evaluation, ms | $q | $p | $(awk -v a="$q" -v b="$p" 'BEGIN { printf "%.2f", a / b }') |"
echo "| rule evaluations in the window | ${R[quiver.evals]} | ${R[prometheus.evals]} | |"
echo "| sum of the groups' last durations (median), ms | ${R[quiver.round_ms]} | ${R[prometheus.round_ms]} | $(awk -v a="${R[quiver.round_ms]}" -v b="${R[prometheus.round_ms]}" 'BEGIN { printf "%.2f", a / b }') |"
echo "| RSS at the end, MiB | $((R[quiver.rss] / 1024)) | $((R[prometheus.rss] / 1024)) | |"
