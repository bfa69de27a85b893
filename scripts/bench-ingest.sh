#!/usr/bin/env bash
# Side-by-side remote-write ingest benchmark: Quiver against a real Prometheus, same data.
#
# Run from the repository root:   bash scripts/bench-ingest.sh
#
# Two passes, each on freshly started servers (one server at a time, so they never compete
# for the CPU):
#   1. throughput + memory: TPUT_SERIES series x TPUT_SAMPLES samples (1 h at 15 s by default),
#      TPUT_RUNS times per server. This measures samples/s, RSS when idle and after ingest, and
#      the WAL size. No block is cut.
#   2. disk: DISK_SERIES series x DISK_SAMPLES samples (6 h by default), starting on a 2 h
#      boundary. Both servers then cut the same 2 h windows into blocks. This measures bytes
#      per sample in blocks, after a clean SIGTERM shutdown.
#
# Needs: a release build of Quiver, `prometheus` (2.42 from Debian), curl and jq. Installs nothing.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]  where the release build lives
#   QUIVER_BIN        [$CARGO_TARGET_DIR/release/quiver]
#   INGEST_BIN        [built with `cargo bench --bench ingest --no-run`]  the load generator
#   PROMETHEUS_BIN    [prometheus]
#   QUIVER_PORT [19190]  PROM_PORT [19191]  (both on 127.0.0.1)
#   TPUT_SERIES [10000]  TPUT_SAMPLES [240]  DISK_SERIES [2000]  DISK_SAMPLES [1440]
#   TPUT_RUNS [3]  pass 1 runs per server, each on a fresh server; the table shows medians
#   INTERVAL_MS [15000]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   QUIVER_FSYNC [always]  storage.wal.fsync for Quiver (Prometheus never fsyncs per write)
#   SETTLE_SECS [5]  wait after ingest before reading RSS
#   BLOCK_WAIT_SECS [90]  longest wait for each server to cut its blocks
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run; a given one is kept]
#   KEEP_DATA [0]  set to 1 to keep the data dirs and logs
#   TPUT_ALIGN [0]  set to 1 to start pass 1 on a 2 h boundary (no block is cut in 3 h of data)
#   SKIP_DISK [0]  set to 1 to run pass 1 only
#
# The full-head memory measurement (20 000 series x 3 h at 15 s, before any block cut):
#   TPUT_SERIES=20000 TPUT_SAMPLES=719 TPUT_ALIGN=1 TPUT_RUNS=1 SKIP_DISK=1 bash scripts/bench-ingest.sh
set -euo pipefail

# Shared helpers.
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN QUIVER_PORT PROM_PORT
    TPUT_SERIES TPUT_SAMPLES TPUT_RUNS DISK_SERIES DISK_SAMPLES INTERVAL_MS BATCH_SIZE CONCURRENCY
    QUIVER_FSYNC SETTLE_SECS BLOCK_WAIT_SECS WORK_DIR KEEP_DATA TPUT_ALIGN SKIP_DISK)

# Printed first so that a result can always be reproduced.
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
QUIVER_PORT=${QUIVER_PORT:-19190}
PROM_PORT=${PROM_PORT:-19191}
TPUT_SERIES=${TPUT_SERIES:-10000}
TPUT_SAMPLES=${TPUT_SAMPLES:-240}
TPUT_RUNS=${TPUT_RUNS:-3}
DISK_SERIES=${DISK_SERIES:-2000}
DISK_SAMPLES=${DISK_SAMPLES:-1440}
INTERVAL_MS=${INTERVAL_MS:-15000}
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
QUIVER_FSYNC=${QUIVER_FSYNC:-always}
SETTLE_SECS=${SETTLE_SECS:-5}
BLOCK_WAIT_SECS=${BLOCK_WAIT_SECS:-90}
KEEP_DATA=${KEEP_DATA:-0}
TPUT_ALIGN=${TPUT_ALIGN:-0}
SKIP_DISK=${SKIP_DISK:-0}

check_prerequisites() {
    command -v "$PROMETHEUS_BIN" >/dev/null ||
        die "Prometheus not found ('$PROMETHEUS_BIN'). Install it (Debian: apt-get install prometheus) or set PROMETHEUS_BIN."
    command -v curl >/dev/null || die "curl is required"
    command -v jq >/dev/null || die "jq is required"
    [[ -x "$QUIVER_BIN" ]] ||
        die "no Quiver binary at $QUIVER_BIN. Build it with: CARGO_TARGET_DIR=$TARGET_DIR cargo build --release (or set QUIVER_BIN)"
    [[ -f Cargo.toml && -f benches/ingest.rs ]] || die "run this from the repository root"
    [[ "$TPUT_RUNS" =~ ^[1-9][0-9]*$ ]] || die "TPUT_RUNS must be a positive integer"
    local port
    for port in "$QUIVER_PORT" "$PROM_PORT"; do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
            die "port $port on 127.0.0.1 is already in use"
        fi
    done
}

check_prerequisites
locate_generator
prepare_work_dir ingest
# Servers must start fresh; an old data dir would mix earlier samples into the figures.
for d in "$WORK_DIR"/tput-* "$WORK_DIR"/disk-*; do
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

dir_bytes() { if [[ -d "$1" ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }

CLK_TCK=$(getconf CLK_TCK)
# User + system CPU ticks of a process (fields 14 and 15 of /proc/PID/stat; counted from the
# ')' that closes the command name, which may contain spaces).
proc_ticks() { awk '{ sub(/^.*\) /, ""); split($0, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }

# CPU taken by processes other than the server and the generator while the generator was
# sending, as a percentage of all cores. Well above 0, the run competed with other work.
other_cpu_percent() {
    jq -r --argjson server "$2" --argjson hz "$CLK_TCK" --argjson cores "$(nproc)" '
        if .cpu_ticks_machine_busy == null then ""
        else ((.cpu_ticks_machine_busy - .cpu_ticks_self - $server) / $hz / .seconds / $cores * 100)
             | if . < 0 then 0 else . end end' "$1"
}

# run_generator URL SERIES SAMPLES START_MS OUT: runs the load generator and leaves its JSON
# report in OUT.
run_generator() {
    local cmd=("$INGEST_BIN" --url "$1/api/v1/write" --series "$2" --samples-per-series "$3"
        --batch-size "$BATCH_SIZE" --concurrency "$CONCURRENCY" --interval-ms "$INTERVAL_MS"
        --start-ms "$4")
    echo "  \$ ${cmd[*]}"
    "${cmd[@]}" >"$5" 2>"$5.stderr" || {
        cat "$5.stderr" >&2
        die "the load generator failed against $1"
    }
    echo "  $(cat "$5")"
}

# Results live in an associative array keyed "<server>.<name>" so the table can take its
# values from either server.
declare -A R

# Pass 1: ingest throughput, memory per series, and the WAL size with every sample still in it.
# Run RUN stores each figure as R[<server>.<name>.RUN]; summarize_pass1 takes the medians.
PASS1_FIELDS=(tput tput_secs tput_samples lat_p99 lat_max idle_rss rss hwm appended head_series tput_wal tput_stop
    server_cpu server_cpu_us other_cpu)
throughput_pass() {
    local kind=$1 run=$2 dir=$WORK_DIR/tput-$1-$2 json
    echo "pass 1 ($kind, run $run of $TPUT_RUNS): $TPUT_SERIES series x $TPUT_SAMPLES samples"
    start_server "$kind" "$dir"
    sleep 2
    R[$kind.idle_rss.$run]=$(rss_kib "$SERVER_PID")
    json=$dir/generator.json
    local ticks_before server_ticks
    ticks_before=$(proc_ticks "$SERVER_PID")
    run_generator "$SERVER_URL" "$TPUT_SERIES" "$TPUT_SAMPLES" "$TPUT_START" "$json"
    server_ticks=$(($(proc_ticks "$SERVER_PID") - ticks_before))
    R[$kind.tput.$run]=$(jq '.samples_per_sec' "$json")
    R[$kind.tput_secs.$run]=$(jq '.seconds' "$json")
    R[$kind.tput_samples.$run]=$(jq '.samples' "$json")
    R[$kind.lat_p99.$run]=$(jq '.latency_ms_p99' "$json")
    R[$kind.lat_max.$run]=$(jq '.latency_ms_max' "$json")
    R[$kind.server_cpu.$run]=$(awk -v t="$server_ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }')
    R[$kind.server_cpu_us.$run]=$(awk -v t="$server_ticks" -v hz="$CLK_TCK" -v n="${R[$kind.tput_samples.$run]}" \
        'BEGIN { printf "%.4f", t / hz * 1e6 / n }')
    R[$kind.other_cpu.$run]=$(other_cpu_percent "$json" "$server_ticks")
    # Let the server finish any work left over from the ingest before reading its memory.
    sleep "$SETTLE_SECS"
    R[$kind.rss.$run]=$(rss_kib "$SERVER_PID")
    R[$kind.hwm.$run]=$(hwm_kib "$SERVER_PID")
    R[$kind.appended.$run]=$(metric_sum "$SERVER_URL" "${kind}_tsdb_head_samples_appended_total")
    R[$kind.head_series.$run]=$(metric_sum "$SERVER_URL" "${kind}_tsdb_head_series")
    R[$kind.tput_wal.$run]=$(dir_bytes "$dir/data/wal")
    stop_server "$SERVER_PID" "$dir/server.log"
    R[$kind.tput_stop.$run]=$STOP_SECS
}

summarize_pass1() {
    local kind field run values
    for kind in quiver prometheus; do
        for field in "${PASS1_FIELDS[@]}"; do
            values=()
            for ((run = 1; run <= TPUT_RUNS; run++)); do values+=("${R[$kind.$field.$run]}"); done
            R[$kind.$field]=$(median "${values[@]}")
        done
        values=()
        for ((run = 1; run <= TPUT_RUNS; run++)); do
            values+=("$(awk -v v="${R[$kind.tput.$run]}" 'BEGIN { printf "%.0f", v }')")
        done
        R[$kind.tput_all]=${values[*]}
    done
}

# Pass 2: bytes per sample in blocks, after a clean shutdown.
disk_pass() {
    local kind=$1 dir=$WORK_DIR/disk-$1 json last waited blocks bytes samples
    echo "pass 2 ($kind): $DISK_SERIES series x $DISK_SAMPLES samples from $DISK_START"
    start_server "$kind" "$dir"
    json=$dir/generator.json
    run_generator "$SERVER_URL" "$DISK_SERIES" "$DISK_SAMPLES" "$DISK_START" "$json"
    R[$kind.disk_tput]=$(jq '.samples_per_sec' "$json")
    R[$kind.disk_lat_p99]=$(jq '.latency_ms_p99' "$json")
    R[$kind.disk_lat_max]=$(jq '.latency_ms_max' "$json")
    last=$(jq '.end_ms' "$json")
    waited=$(now_ms)
    case $kind in
    quiver) wait_quiver_blocks "$dir" "$(quiver_expected_flush "$last")" "$DISK_START" ;;
    prometheus) wait_prometheus_blocks "$SERVER_URL" ;;
    esac
    R[$kind.block_wait]=$(awk -v ms=$(($(now_ms) - waited)) 'BEGIN { printf "%.0f", ms / 1000 }')
    R[$kind.disk_rss]=$(rss_kib "$SERVER_PID")
    stop_server "$SERVER_PID" "$dir/server.log"
    R[$kind.disk_stop]=$STOP_SECS
    case $kind in
    quiver) read -r blocks bytes samples < <(quiver_block_stats "$dir/data") ;;
    prometheus) read -r blocks bytes samples < <(prometheus_block_stats "$dir/data") ;;
    esac
    R[$kind.blocks]=$blocks
    R[$kind.block_bytes]=$bytes
    R[$kind.block_samples]=$samples
    R[$kind.disk_wal]=$(dir_bytes "$dir/data/wal")
    R[$kind.chunks_head]=$(dir_bytes "$dir/data/chunks_head")
    R[$kind.data_dir]=$(dir_bytes "$dir/data")
}

# Same timestamps for both servers. Pass 1 ends one interval before now, or with
# TPUT_ALIGN=1 starts on a 2 h boundary, so that up to 3 h of samples fill the head without
# either server cutting a block (the full-head memory measurement).
TPUT_START=$(($(now_ms) - TPUT_SAMPLES * INTERVAL_MS))
if ((TPUT_ALIGN)); then
    TPUT_START=$((TPUT_START / BLOCK_MS * BLOCK_MS))
fi
# Pass 2 starts on a block boundary so both servers cut the same whole windows.
DISK_START=$((($(now_ms) - DISK_SAMPLES * INTERVAL_MS) / BLOCK_MS * BLOCK_MS))
if ((DISK_SAMPLES * INTERVAL_MS < 3 * BLOCK_MS)); then
    echo "warning: DISK_SAMPLES x INTERVAL_MS spans less than 6 h; few or no blocks will be cut" >&2
fi

# The servers take turns, so a slow phase of the machine does not hit only one of them.
for ((run = 1; run <= TPUT_RUNS; run++)); do
    for kind in quiver prometheus; do throughput_pass "$kind" "$run"; done
done
summarize_pass1
if ((!SKIP_DISK)); then
    for kind in quiver prometheus; do disk_pass "$kind"; done
fi

# ---- report ---------------------------------------------------------------------------------

# fmt VALUE SCALE DECIMALS: VALUE / SCALE, printed with DECIMALS; "n/a" when there is no value.
fmt() { awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { if (v == "") print "n/a"; else printf "%.*f", d, v / s }'; }
ratio() {
    awk -v q="$1" -v p="$2" 'BEGIN { if (q == "" || p == "" || p + 0 == 0) print "n/a"; else printf "%.2f", q / p }'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print ""; else printf "%.6f", a / b }'; }
# row LABEL QUIVER PROMETHEUS SCALE DECIMALS [-]: a trailing "-" leaves the ratio out where
# it would mean nothing.
row() {
    local r
    if [[ "${6:-}" == - ]]; then r=""; else r=$(ratio "$2" "$3"); fi
    printf '| %s | %s | %s | %s |\n' "$1" "$(fmt "$2" "$4" "$5")" "$(fmt "$3" "$4" "$5")" "$r"
}

q() { echo "${R[quiver.$1]:-}"; }
p() { echo "${R[prometheus.$1]:-}"; }
for kind in quiver prometheus; do
    # RSS figures are in KiB, and medians of an even number of runs are not whole numbers.
    R[$kind.rss_per_series]=$(div "$(awk -v r="${R[$kind.rss]}" 'BEGIN { print r * 1024 }')" "$TPUT_SERIES")
    R[$kind.delta_per_series]=$(div "$(awk -v r="${R[$kind.rss]}" -v i="${R[$kind.idle_rss]}" \
        'BEGIN { print (r - i) * 1024 }')" "$TPUT_SERIES")
    R[$kind.wal_per_sample]=$(div "${R[$kind.tput_wal]}" "${R[$kind.tput_samples]}")
    R[$kind.bytes_per_sample]=$(div "${R[$kind.block_bytes]:-}" "${R[$kind.block_samples]:-}")
done

MIB=1048576
echo
echo "## Remote-write ingest: Quiver vs Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "Pass 1: $TPUT_SERIES series x $TPUT_SAMPLES samples ($((TPUT_SERIES * TPUT_SAMPLES)) samples, ${INTERVAL_MS} ms apart)," \
    "$TPUT_RUNS runs per server on fresh servers; pass 1 rows are medians." \
    "Pass 2: $DISK_SERIES series x $DISK_SAMPLES samples, from a 2 h boundary. Batches of $BATCH_SIZE samples," \
    "$CONCURRENCY senders. Quiver WAL fsync: $QUIVER_FSYNC. Prometheus never fsyncs per write." \
    "The generator shares the machine's $(nproc) cores with the server."
echo
echo "| Measure | Quiver | Prometheus | Quiver/Prometheus |"
echo "|---|---:|---:|---:|"
row "(1) Ingest throughput, samples/s (pass 1, median)" "$(q tput)" "$(p tput)" 1 0
printf '| Pass 1 runs, samples/s | %s | %s | |\n' "$(q tput_all)" "$(p tput_all)"
row "Ingest wall time, s (pass 1)" "$(q tput_secs)" "$(p tput_secs)" 1 2
row "Server CPU during ingest, s (pass 1)" "$(q server_cpu)" "$(p server_cpu)" 1 2
row "Server CPU per sample, µs (pass 1)" "$(q server_cpu_us)" "$(p server_cpu_us)" 1 3
row "Other processes' CPU during ingest, % of all cores (pass 1)" "$(q other_cpu)" "$(p other_cpu)" 1 0 -
row "Request latency p99, ms (pass 1)" "$(q lat_p99)" "$(p lat_p99)" 1 0
row "Longest request, ms (pass 1)" "$(q lat_max)" "$(p lat_max)" 1 0
row "Ingest throughput, samples/s (pass 2)" "$(q disk_tput)" "$(p disk_tput)" 1 0
row "Request latency p99, ms (pass 2, blocks cut meanwhile)" "$(q disk_lat_p99)" "$(p disk_lat_p99)" 1 0
row "(4) Longest request, ms (pass 2, blocks cut meanwhile)" "$(q disk_lat_max)" "$(p disk_lat_max)" 1 0
row "Samples appended, server's own counter (pass 1)" "$(q appended)" "$(p appended)" 1 0
row "Head series, server's own gauge (pass 1)" "$(q head_series)" "$(p head_series)" 1 0
row "RSS idle, just started, MiB" "$(q idle_rss)" "$(p idle_rss)" 1024 1
row "RSS after ingest, MiB (pass 1)" "$(q rss)" "$(p rss)" 1024 1
row "Peak RSS (VmHWM), MiB (pass 1)" "$(q hwm)" "$(p hwm)" 1024 1
row "(2) RSS after ingest per active series, bytes" "$(q rss_per_series)" "$(p rss_per_series)" 1 0
row "(RSS after ingest - idle RSS) per series, bytes" "$(q delta_per_series)" "$(p delta_per_series)" 1 0
row "WAL after pass 1 (nothing cut yet), MiB" "$(q tput_wal)" "$(p tput_wal)" $MIB 1
row "WAL after pass 1, bytes/sample" "$(q wal_per_sample)" "$(p wal_per_sample)" 1 2
row "Blocks written (pass 2)" "$(q blocks)" "$(p blocks)" 1 0
row "Samples in blocks (pass 2)" "$(q block_samples)" "$(p block_samples)" 1 0
row "Block bytes on disk, MiB (pass 2)" "$(q block_bytes)" "$(p block_bytes)" $MIB 2
row "(3) Disk bytes per sample in blocks" "$(q bytes_per_sample)" "$(p bytes_per_sample)" 1 3
row "WAL after blocks cut and shutdown, MiB (pass 2)" "$(q disk_wal)" "$(p disk_wal)" $MIB 1
row "chunks_head dir, MiB (pass 2; Prometheus only)" "" "$(p chunks_head)" $MIB 1 -
row "Whole data dir after shutdown, MiB (pass 2)" "$(q data_dir)" "$(p data_dir)" $MIB 1
row "Wait for blocks after ingest, s (pass 2)" "$(q block_wait)" "$(p block_wait)" 1 0 -
row "SIGTERM to exit, s (pass 1)" "$(q tput_stop)" "$(p tput_stop)" 1 1
row "SIGTERM to exit, s (pass 2)" "$(q disk_stop)" "$(p disk_stop)" 1 1
