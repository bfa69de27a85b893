#!/usr/bin/env bash
# Long-term retention on S3: Quiver with its blocks in an S3-compatible bucket (s3s-fs on
# loopback) against Prometheus holding the same data on local disk.
#
# Run from the repository root:   bash scripts/bench-longterm.sh
#
# The same exporter-like data (benches/ingest.rs: counters, slowly moving gauges; SERIES series
# over 100 instances, one sample every INTERVAL_MS with timestamps on the grid) covering DAYS
# days is remote-written oldest first into each server in turn. Each server cuts, compacts and
# (Quiver) downsamples as it goes; the script waits until both have settled, then reports:
#   - objects and bytes of blocks (Quiver: the bucket; Prometheus: its block directories,
#     without the WAL and head chunks) and bytes per sample;
#   - a DAYS-day dashboard query at a 1 h step, `sum by (instance) (rate(bench_metric_0[1h]))`,
#     cold (first query after a restart) and warm (median of RUNS); for Quiver with
#     max_source_resolution auto (reads 5 m data) and raw;
#   - a DAYS-day SQL aggregate (Quiver only): daily averages of a gauge per instance.
#
# Needs: a release build of Quiver, s3s-fs (the test command installs it), `prometheus`
# (2.42 from Debian), curl, jq and python3. Installs nothing. Never touches processes it did
# not start.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]   QUIVER_BIN  INGEST_BIN  PROMETHEUS_BIN
#   S3S_BIN [s3s-fs]  QUIVER_PORT [19190]  PROM_PORT [19191]  S3_PORT [19192]
#   DAYS [30]  SERIES [2000]  INTERVAL_MS [60000]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   RUNS [5]  SETTLE_SECS [30]: a server has settled when its block count has not changed for this long
#   WORK_DIR  KEEP_DATA [0]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/bench-query-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN S3S_BIN QUIVER_PORT PROM_PORT S3_PORT
    DAYS SERIES INTERVAL_MS BATCH_SIZE CONCURRENCY RUNS SETTLE_SECS WORK_DIR KEEP_DATA)
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
S3S_BIN=${S3S_BIN:-s3s-fs}
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
S3_PORT=${S3_PORT:-19192}
DAYS=${DAYS:-30}
SERIES=${SERIES:-2000}
INTERVAL_MS=${INTERVAL_MS:-60000}
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
RUNS=${RUNS:-5}
SETTLE_SECS=${SETTLE_SECS:-30}
KEEP_DATA=${KEEP_DATA:-0}
HISTOGRAM_INSTANCES=0
SAMPLES=$((DAYS * 86400000 / INTERVAL_MS))

for tool in curl jq python3 "$PROMETHEUS_BIN" "$S3S_BIN"; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x "$QUIVER_BIN" ]] || die "no Quiver binary at $QUIVER_BIN (CARGO_TARGET_DIR=$TARGET_DIR cargo build --release)"
for port in "$QUIVER_PORT" "$PROM_PORT" "$S3_PORT"; do
    ! curl -s -o /dev/null "http://127.0.0.1:$port/" || die "port $port on 127.0.0.1 is already in use"
done
locate_generator
prepare_work_dir longterm
echo "work dir: $WORK_DIR"
RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# The data ends one interval before now, on the interval grid.
NOW_MS=$(now_ms)
START_MS=$(((NOW_MS - SAMPLES * INTERVAL_MS) / INTERVAL_MS * INTERVAL_MS))
END_S=$(((START_MS + SAMPLES * INTERVAL_MS) / 1000))
BEGIN_S=$((START_MS / 1000 + 3600))
PROMQL='sum by (instance) (rate(bench_metric_0[1h]))'
SQL="SELECT instance, date_trunc('day', timestamp) AS day, avg(value) FROM bench_metric_1 GROUP BY 1, 2 ORDER BY 1, 2"

start_s3() {
    mkdir -p "$WORK_DIR/s3/metrics"
    "$S3S_BIN" --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key benchsecret \
        "$WORK_DIR/s3" >"$WORK_DIR/s3s.log" 2>&1 &
    RUNNING+=("$!")
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && return
        sleep 0.1
    done
    die "s3s-fs did not start (log: $WORK_DIR/s3s.log)"
}

# launch quiver|prometheus: starts the server on its data (kept across launches).
launch() {
    local kind=$1 dir=$WORK_DIR/$1
    mkdir -p "$dir"
    case $kind in
    quiver)
        cat >"$dir/quiver.yml" <<EOF
storage:
  out_of_order_time_window: 0s
  backend: s3
  s3:
    bucket: metrics
    endpoint: http://127.0.0.1:$S3_PORT
    region: us-east-1
    access_key_id: bench
    secret_access_key: benchsecret
    allow_http: true
  compaction:
    deletion_delay: 10s
EOF
        SERVER_URL=http://127.0.0.1:$QUIVER_PORT
        "$QUIVER_BIN" --config.file="$dir/quiver.yml" --storage.tsdb.path="$dir/data" \
            --storage.tsdb.retention.time=0 --web.listen-address="127.0.0.1:$QUIVER_PORT" \
            --postgres.listen-address= >>"$dir/server.log" 2>&1 &
        ;;
    prometheus)
        printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$dir/prometheus.yml"
        SERVER_URL=http://127.0.0.1:$PROM_PORT
        "$PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
            --storage.tsdb.retention.time=$((DAYS * 2))d --web.listen-address="127.0.0.1:$PROM_PORT" \
            --web.enable-remote-write-receiver >>"$dir/server.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    RUNNING+=("$SERVER_PID")
    wait_ready "$SERVER_URL" "$SERVER_PID" "$dir/server.log"
}

metric_sum() { curl -s "$SERVER_URL/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'; }

# Waits until the server's block count (and, for Quiver, deleted objects) stop changing.
settle() {
    local kind=$1 last="" now stable=0 waited=0
    while ((stable < SETTLE_SECS)); do
        if [[ $kind == quiver ]]; then
            now="$(metric_sum quiver_bucket_blocks) $(metric_sum quiver_bucket_objects_deleted_total) $(metric_sum quiver_tsdb_head_samples)"
        else
            now="$(metric_sum prometheus_tsdb_blocks_loaded) $(metric_sum prometheus_tsdb_compactions_total)"
        fi
        if [[ "$now" == "$last" ]]; then stable=$((stable + 5)); else stable=0; fi
        last=$now
        sleep 5
        waited=$((waited + 5))
        ((waited < 3600)) || die "$kind did not settle within an hour"
    done
    echo "  settled after ${waited} s: $now"
}

# time_query NAME PATH ARGS...: GET, checks the answer, prints seconds.
time_query() {
    local path=$1 out=$WORK_DIR/answer.json secs
    shift
    local args=()
    for a in "$@"; do args+=(--data-urlencode "$a"); done
    secs=$(curl -s -o "$out" -w '%{time_total}' --get "${args[@]}" "$SERVER_URL$path")
    [[ "$(jq -r .status "$out")" == success ]] || die "query failed: $(head -c 500 "$out")"
    echo "$secs"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# cold_warm NAME PATH ARGS...: restarts the server, times the first query and RUNS more.
declare -A R
cold_warm() {
    local kind=$1 name=$2 path=$3 i times=()
    shift 3
    stop_server "$SERVER_PID"
    launch "$kind"
    R[$kind.$name.cold]=$(time_query "$path" "$@")
    for ((i = 0; i < RUNS; i++)); do times+=("$(time_query "$path" "$@")"); done
    R[$kind.$name.warm]=$(median "${times[@]}")
    echo "  $name: cold ${R[$kind.$name.cold]} s, warm ${R[$kind.$name.warm]} s"
}

range_args=("query=$PROMQL" "start=$BEGIN_S" "end=$END_S" "step=3600")

start_s3
echo "quiver: $SERIES series x $SAMPLES samples ($DAYS days at ${INTERVAL_MS} ms) into s3s-fs"
launch quiver
run_generator "$SERVER_URL" "$WORK_DIR/quiver/generator.json"
settle quiver
R[quiver.objects]=$(find "$WORK_DIR/s3/metrics" -type f -name '*.parquet' | wc -l)
R[quiver.bytes]=$(find "$WORK_DIR/s3/metrics" -type f -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
R[quiver.blocks]=$(curl -s "$SERVER_URL/metrics" | grep '^quiver_bucket_blocks{' | sed 's/^quiver_bucket_blocks//' | tr '\n' ' ')
R[quiver.raw_bytes]=$(curl -s "$SERVER_URL/metrics" | awk '/^quiver_bucket_bytes\{/ && /resolution="raw"/ { s += $2 } END { print s + 0 }')
echo "  blocks: ${R[quiver.blocks]}"
cold_warm quiver promql /api/v1/query_range "${range_args[@]}"
cold_warm quiver promql_raw /api/v1/query_range "${range_args[@]}" max_source_resolution=raw
cold_warm quiver sql /api/v1/sql "query=$SQL"
stop_server "$SERVER_PID"

echo "prometheus: the same data"
launch prometheus
run_generator "$SERVER_URL" "$WORK_DIR/prometheus/generator.json"
settle prometheus
prom_blocks=$(find "$WORK_DIR/prometheus/data" -mindepth 1 -maxdepth 1 -type d -name '01*')
R[prometheus.objects]=$(find $prom_blocks -type f | wc -l)
R[prometheus.bytes]=$(find $prom_blocks -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
R[prometheus.blocks]=$(echo "$prom_blocks" | wc -l)
cold_warm prometheus promql /api/v1/query_range "${range_args[@]}"
stop_server "$SERVER_PID"

samples=$((SERIES * SAMPLES))
bps() { awk -v b="$1" -v n="$samples" 'BEGIN { printf "%.3f", b / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
echo
echo "## Long-term retention: $DAYS days of $SERIES series at $((INTERVAL_MS / 1000)) s ($samples samples)"
echo
echo "Quiver on s3s-fs (S3 over loopback), Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }') on local disk; both settled after loading."
echo "Quiver's blocks by resolution and level: ${R[quiver.blocks]}; Prometheus: ${R[prometheus.blocks]} blocks."
echo
echo "| measure | Quiver | Prometheus | ratio |"
echo "|---|---:|---:|---:|"
rate() { jq -r .samples_per_sec "$WORK_DIR/$1/generator.json"; }
echo "| remote-write ingest while cutting and compacting (samples/s) | $(printf '%.0f' "$(rate quiver)") | $(printf '%.0f' "$(rate prometheus)") | $(ratio "$(rate quiver)" "$(rate prometheus)") |"
echo "| block objects | ${R[quiver.objects]} | ${R[prometheus.objects]} | $(ratio "${R[quiver.objects]}" "${R[prometheus.objects]}") |"
echo "| raw block bytes per sample | $(bps "${R[quiver.raw_bytes]}") | $(bps "${R[prometheus.bytes]}") | $(ratio "${R[quiver.raw_bytes]}" "${R[prometheus.bytes]}") |"
echo "| block bytes per sample (Quiver: raw and downsampled) | $(bps "${R[quiver.bytes]}") | $(bps "${R[prometheus.bytes]}") | $(ratio "${R[quiver.bytes]}" "${R[prometheus.bytes]}") |"
for phase in cold warm; do
    q=${R[quiver.promql.$phase]} p=${R[prometheus.promql.$phase]}
    echo "| \`$PROMQL\`, $DAYS d at 1 h, $phase (ms) | $(ms "$q") | $(ms "$p") | $(ratio "$q" "$p") |"
done
for phase in cold warm; do
    q=${R[quiver.promql_raw.$phase]} p=${R[prometheus.promql.$phase]}
    echo "| the same from raw data (max_source_resolution=raw), $phase (ms) | $(ms "$q") | $(ms "$p") | $(ratio "$q" "$p") |"
done
for phase in cold warm; do
    echo "| SQL daily averages per instance over $DAYS d, $phase (ms) | $(ms "${R[quiver.sql.$phase]}") | – | – |"
done
