#!/usr/bin/env bash
# Ingest throughput by wire protocol: remote write 1.0, remote write 2.0 and OTLP/HTTP
# (protobuf) into Quiver, and remote write 1.0 and 2.0 into Prometheus 3.5, all carrying the
# same data (the `ingest` load generator's exporter-like series; OTLP as one resource per
# instance with the series' labels as attributes, so the stored series are the same).
# Debian's Prometheus 3.5 is built without the OTLP receiver, so OTLP has no Prometheus
# figure.
#
# Run from the repository root:   bash scripts/bench-protocols.sh
#
# Each run is on a freshly started server, one server at a time. Reported: median samples/s
# and the server's CPU per sample over RUNS runs.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]  where the release build lives
#   QUIVER_BIN        [$CARGO_TARGET_DIR/release/quiver]
#   INGEST_BIN        [built with `cargo bench --bench ingest --no-run`]  the load generator
#   PROMETHEUS3_BIN   [the prometheus of `bash ../shared/tools/prometheus3.sh`, if present]
#   QUIVER_PORT [19190]  PROM_PORT [19191]
#   SERIES [10000]  SAMPLES [240]  RUNS [3]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   INTERVAL_MS [15000]  QUIVER_FSYNC [always]
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run]  KEEP_DATA [0]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS3_BIN QUIVER_PORT PROM_PORT SERIES
    SAMPLES RUNS BATCH_SIZE CONCURRENCY INTERVAL_MS QUIVER_FSYNC WORK_DIR KEEP_DATA)
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
if [[ -z "${PROMETHEUS3_BIN:-}" && -f ../shared/tools/prometheus3.sh ]]; then
    PROMETHEUS3_BIN="$(bash ../shared/tools/prometheus3.sh)/prometheus"
fi
PROMETHEUS3_BIN=${PROMETHEUS3_BIN:-}
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
SERIES=${SERIES:-10000}
SAMPLES=${SAMPLES:-240}
RUNS=${RUNS:-3}
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
INTERVAL_MS=${INTERVAL_MS:-15000}
QUIVER_FSYNC=${QUIVER_FSYNC:-always}
KEEP_DATA=${KEEP_DATA:-0}

command -v jq >/dev/null || die "jq is required"
command -v curl >/dev/null || die "curl is required"
[[ -x "$QUIVER_BIN" ]] || die "no Quiver binary at $QUIVER_BIN (CARGO_TARGET_DIR=$TARGET_DIR cargo build --release)"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
locate_generator
prepare_work_dir protocols
RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() { awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }

echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
[[ -n "$PROMETHEUS3_BIN" ]] && echo "prometheus: $PROMETHEUS3_BIN ($("$PROMETHEUS3_BIN" --version 2>&1 | head -n 1))"
echo "generator: $INGEST_BIN"

# run_once SERVER PROTOCOL N: a fresh server, one generator run; appends
# "server protocol samples_per_sec cpu_us_per_sample" to $WORK_DIR/results.
run_once() {
    local server=$1 protocol=$2 n=$3 dir="$WORK_DIR/$1-$2-$3" url path pid
    mkdir -p "$dir"
    case $server in
    quiver)
        printf 'storage:\n  wal:\n    fsync: %s\n' "$QUIVER_FSYNC" >"$dir/quiver.yml"
        url=http://127.0.0.1:$QUIVER_PORT
        "$QUIVER_BIN" --config.file="$dir/quiver.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$QUIVER_PORT" --postgres.listen-address= \
            --web.enable-otlp-receiver >"$dir/server.log" 2>&1 &
        ;;
    prometheus)
        printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$dir/prometheus.yml"
        url=http://127.0.0.1:$PROM_PORT
        "$PROMETHEUS3_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
            --web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest \
            --web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request \
            >"$dir/server.log" 2>&1 &
        ;;
    esac
    pid=$!
    RUNNING+=("$pid")
    wait_ready "$url" "$pid" "$dir/server.log"
    case $protocol in otlp) path=/api/v1/otlp/v1/metrics ;; *) path=/api/v1/write ;; esac
    local before after
    before=$(proc_ticks "$pid")
    "$INGEST_BIN" --url "$url$path" --protocol "$protocol" --series "$SERIES" \
        --samples-per-series "$SAMPLES" --batch-size "$BATCH_SIZE" --concurrency "$CONCURRENCY" \
        --interval-ms "$INTERVAL_MS" >"$dir/report.json" 2>"$dir/generator.log" || {
        cat "$dir/generator.log" >&2
        die "the generator failed: $server $protocol"
    }
    after=$(proc_ticks "$pid")
    kill -TERM "$pid"
    wait "$pid" || true
    local kept=() p
    for p in "${RUNNING[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
    RUNNING=("${kept[@]+"${kept[@]}"}")
    jq -r --arg s "$server" --arg p "$protocol" --argjson ticks $((after - before)) --argjson hz "$CLK_TCK" \
        '"\($s) \($p) \(.samples_per_sec) \($ticks / $hz * 1e6 / .samples)"' "$dir/report.json" |
        tee -a "$WORK_DIR/results"
}

for ((n = 1; n <= RUNS; n++)); do
    for protocol in rw1 rw2 otlp; do run_once quiver "$protocol" "$n"; done
    if [[ -n "$PROMETHEUS3_BIN" ]]; then
        for protocol in rw1 rw2; do run_once prometheus "$protocol" "$n"; done
    fi
done

# The median of the numbers on stdin; nothing for none.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
figure() { awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { print $c }' "$WORK_DIR/results" | median; }

echo
echo "## Ingest by protocol: $SERIES series x $SAMPLES samples, $CONCURRENCY senders, median of $RUNS runs"
echo
echo "| protocol | Quiver samples/s | Quiver CPU µs/sample | Prometheus 3.5 samples/s | Prometheus CPU µs/sample | Quiver / Prometheus |"
echo "|---|---:|---:|---:|---:|---:|"
for protocol in rw1 rw2 otlp; do
    q=$(figure quiver "$protocol" 3)
    qc=$(figure quiver "$protocol" 4)
    p=$(figure prometheus "$protocol" 3)
    pc=$(figure prometheus "$protocol" 4)
    awk -v pr="$protocol" -v q="$q" -v qc="$qc" -v p="$p" -v pc="$pc" 'BEGIN {
        name = (pr == "rw1") ? "remote write 1.0" : (pr == "rw2") ? "remote write 2.0" : "OTLP/HTTP protobuf"
        if (p == "") printf "| %s | %.0f | %.2f | — | — | — |\n", name, q, qc
        else printf "| %s | %.0f | %.2f | %.0f | %.2f | %.2f× |\n", name, q, qc, p, pc, q / p
    }'
done
