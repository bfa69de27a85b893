#!/usr/bin/env bash
# Native against classic histograms, Quiver side by side with Prometheus 3.5, same data:
# bytes per sample in blocks, and the latency of `histogram_quantile` over each form.
#
# Run from the repository root:   bash scripts/bench-histograms.sh
#
# The load generator sends HIST_INSTANCES instances' request latencies for SAMPLES scrapes
# (6 h at 15 s by default, from a 2 h boundary) by remote write 1.0, either as the classic
# histogram `bench_request_seconds_bucket` (9 bucket series per instance) or as the native
# histogram `bench_request_seconds` (one series per instance, schema 3, about 60 buckets),
# the same observations in both. Each (form, server) pair runs on a fresh server, one at a
# time; after the servers cut their blocks, the quantile query runs QUERY_RUNS times as a
# range query over the data's last 4 h at a 60 s step (the first run only warms up):
#   classic: histogram_quantile(0.9, sum by (le) (rate(bench_request_seconds_bucket[5m])))
#   native:  histogram_quantile(0.9, sum(rate(bench_request_seconds[5m])))
#
# Needs: a release build of Quiver, Prometheus 3.5 (../shared/tools/prometheus3.sh fetches
# it), curl and jq. Installs nothing.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]  where the release build lives
#   QUIVER_BIN        [$CARGO_TARGET_DIR/release/quiver]
#   INGEST_BIN        [built with `cargo bench --bench ingest --no-run`]  the load generator
#   PROMETHEUS_BIN    [Prometheus 3.5 from ../shared/tools/prometheus3.sh]
#   QUIVER_PORT [19190]  PROM_PORT [19191]  (both on 127.0.0.1)
#   HIST_INSTANCES [1000]  SAMPLES [1440]  INTERVAL_MS [15000]  BATCH_SIZE [2000]
#   CONCURRENCY [4]  QUERY_RUNS [6]  BLOCK_WAIT_SECS [120]
#   QUIVER_FSYNC [never]  storage.wal.fsync for Quiver (Prometheus never fsyncs per write)
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run]  KEEP_DATA [0]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN QUIVER_PORT PROM_PORT
    HIST_INSTANCES SAMPLES INTERVAL_MS BATCH_SIZE CONCURRENCY QUERY_RUNS BLOCK_WAIT_SECS
    QUIVER_FSYNC WORK_DIR KEEP_DATA)
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
if [[ -z "${PROMETHEUS_BIN:-}" ]]; then
    PROMETHEUS_BIN="$(bash ../shared/tools/prometheus3.sh | tail -n 1)/prometheus"
fi
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
HIST_INSTANCES=${HIST_INSTANCES:-1000}
SAMPLES=${SAMPLES:-1440}
INTERVAL_MS=${INTERVAL_MS:-15000}
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
QUERY_RUNS=${QUERY_RUNS:-6}
BLOCK_WAIT_SECS=${BLOCK_WAIT_SECS:-120}
KEEP_DATA=${KEEP_DATA:-0}
# Prometheus never fsyncs per write.
QUIVER_FSYNC=${QUIVER_FSYNC:-never}

[[ -x "$QUIVER_BIN" ]] ||
    die "no Quiver binary at $QUIVER_BIN. Build it with: CARGO_TARGET_DIR=$TARGET_DIR cargo build --release"
[[ -x "$PROMETHEUS_BIN" ]] || die "no Prometheus 3.5 at $PROMETHEUS_BIN"
command -v jq >/dev/null || die "jq is required"
[[ "$QUERY_RUNS" =~ ^[2-9]$|^[1-9][0-9]+$ ]] || die "QUERY_RUNS must be at least 2"
locate_generator
prepare_work_dir histograms
echo "work dir: $WORK_DIR"
echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
echo "prometheus: $PROMETHEUS_BIN ($("$PROMETHEUS_BIN" --version 2>&1 | head -n 1))"

RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$((($(now_ms) - SAMPLES * INTERVAL_MS) / BLOCK_MS * BLOCK_MS))
END=$((START + (SAMPLES - 1) * INTERVAL_MS))
QUERY_START=$(((END - 4 * 3600 * 1000) / 1000))
QUERY_END=$((END / 1000))
declare -A R

run() {
    local form=$1 kind=$2 dir=$WORK_DIR/$1-$2 json native=() query times=() i t blocks bytes samples
    echo "$form histograms, $kind: $HIST_INSTANCES instances x $SAMPLES scrapes from $START"
    [[ $form == native ]] && native=(--native-histograms)
    start_server "$kind" "$dir" --enable-feature=native-histograms
    json=$dir/generator.json
    "$INGEST_BIN" --url "$SERVER_URL/api/v1/write" --series 1 --histogram-instances "$HIST_INSTANCES" \
        "${native[@]}" --samples-per-series "$SAMPLES" --batch-size "$BATCH_SIZE" \
        --concurrency "$CONCURRENCY" --interval-ms "$INTERVAL_MS" --start-ms "$START" \
        >"$json" 2>"$json.stderr" || {
        cat "$json.stderr" >&2
        die "the load generator failed against $SERVER_URL"
    }
    echo "  $(cat "$json")"
    R[$form.$kind.ingest]=$(jq '.samples_per_sec' "$json")
    case $kind in
    quiver) wait_quiver_blocks "$dir" "$(quiver_expected_flush "$END")" "$START" ;;
    prometheus) wait_prometheus_blocks "$SERVER_URL" ;;
    esac
    case $form in
    classic) query='histogram_quantile(0.9, sum by (le) (rate(bench_request_seconds_bucket[5m])))' ;;
    native) query='histogram_quantile(0.9, sum(rate(bench_request_seconds[5m])))' ;;
    esac
    for ((i = 0; i < QUERY_RUNS; i++)); do
        t=$(curl -sf -o "$dir/query.json" -w '%{time_total}' "$SERVER_URL/api/v1/query_range" \
            --data-urlencode "query=$query" --data-urlencode "start=$QUERY_START" \
            --data-urlencode "end=$QUERY_END" --data-urlencode "step=60") ||
            die "the query failed on $SERVER_URL"
        ((i == 0)) || times+=("$(awk -v t="$t" 'BEGIN { printf "%.1f", t * 1000 }')")
    done
    R[$form.$kind.query_ms]=$(median "${times[@]}")
    R[$form.$kind.points]=$(jq '[.data.result[].values | length] | add // 0' "$dir/query.json")
    R[$form.$kind.p90]=$(jq -r '.data.result[0].values[-1][1] // "none"' "$dir/query.json")
    stop_server "$SERVER_PID" "$dir/server.log"
    case $kind in
    quiver) read -r blocks bytes samples < <(quiver_block_stats "$dir/data") ;;
    prometheus) read -r blocks bytes samples < <(prometheus_block_stats "$dir/data") ;;
    esac
    R[$form.$kind.blocks]=$blocks
    R[$form.$kind.bytes]=$bytes
    R[$form.$kind.samples]=$samples
}

for form in classic native; do
    for kind in quiver prometheus; do run "$form" "$kind"; done
done

# per_scrape FORM KIND: block bytes per instance and scrape (9 samples of the classic form,
# one of the native).
per_scrape() {
    local n=1
    [[ $1 == classic ]] && n=9
    awk -v b="${R[$1.$2.bytes]}" -v s="${R[$1.$2.samples]}" -v n="$n" \
        'BEGIN { if (s == 0) print "n/a"; else printf "%.2f", b / (s / n) }'
}
per_sample() {
    awk -v b="${R[$1.$2.bytes]}" -v s="${R[$1.$2.samples]}" 'BEGIN { if (s == 0) print "n/a"; else printf "%.2f", b / s }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo
echo "## Native vs classic histograms: Quiver vs Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "$HIST_INSTANCES instances x $SAMPLES scrapes ${INTERVAL_MS} ms apart; quantile query: range over the last 4 h, step 60 s, median of $((QUERY_RUNS - 1)) runs after a warm-up."
echo
echo "| form | server | blocks | samples in blocks | block MiB | bytes/sample | bytes per histogram per scrape | ingest samples/s | p90 query ms | points | last p90 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for form in classic native; do
    for kind in quiver prometheus; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n' "$form" "$kind" \
            "${R[$form.$kind.blocks]}" "${R[$form.$kind.samples]}" \
            "$(awk -v b="${R[$form.$kind.bytes]}" 'BEGIN { printf "%.2f", b / 1048576 }')" \
            "$(per_sample "$form" "$kind")" "$(per_scrape "$form" "$kind")" "${R[$form.$kind.ingest]}" \
            "${R[$form.$kind.query_ms]}" "${R[$form.$kind.points]}" "${R[$form.$kind.p90]}"
    done
done
echo
echo "| ratio | classic | native |"
echo "|---|---:|---:|"
echo "| Quiver/Prometheus, bytes per histogram per scrape | $(ratio "$(per_scrape classic quiver)" "$(per_scrape classic prometheus)") | $(ratio "$(per_scrape native quiver)" "$(per_scrape native prometheus)") |"
echo "| Quiver/Prometheus, p90 query time | $(ratio "${R[classic.quiver.query_ms]}" "${R[classic.prometheus.query_ms]}") | $(ratio "${R[native.quiver.query_ms]}" "${R[native.prometheus.query_ms]}") |"
echo
echo "| native/classic | Quiver | Prometheus |"
echo "|---|---:|---:|"
echo "| bytes per histogram per scrape | $(ratio "$(per_scrape native quiver)" "$(per_scrape classic quiver)") | $(ratio "$(per_scrape native prometheus)" "$(per_scrape classic prometheus)") |"
echo "| p90 query time | $(ratio "${R[native.quiver.query_ms]}" "${R[classic.quiver.query_ms]}") | $(ratio "${R[native.prometheus.query_ms]}" "${R[classic.prometheus.query_ms]}") |"
