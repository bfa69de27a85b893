# Shared by the bench-*.sh scripts (sourced, not run): process bookkeeping, readiness
# checks and the load generator. Functions read the calling script's variables
# (ENV_VARS, RUNNING, INGEST_BIN, ...) when they run.

print_command() {
    local words=() name
    for name in "${ENV_VARS[@]}"; do
        if [[ -n "${!name+set}" ]]; then words+=("$name=$(printf '%q' "${!name}")"); fi
    done
    echo "command: ${words[*]+${words[*]} }bash $0${*:+ $*}"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
}

die() {
    echo "error: $*" >&2
    exit 1
}

now_ms() { date +%s%3N; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# The generator is the `ingest` bench target. With the release build done, only the bench
# file compiles; its path comes from cargo's JSON output because the file name has a hash.
locate_generator() {
    if [[ -n "${INGEST_BIN:-}" ]]; then
        [[ -x "$INGEST_BIN" ]] || die "INGEST_BIN=$INGEST_BIN is not executable"
        return
    fi
    echo "building the load generator: CARGO_TARGET_DIR=$TARGET_DIR cargo bench --bench ingest --no-run" >&2
    INGEST_BIN=$(CARGO_TARGET_DIR=$TARGET_DIR cargo bench --bench ingest --no-run --message-format=json |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "ingest"
                      and any(.target.kind[]; . == "bench")) | .executable // empty' | tail -n 1)
    [[ -n "$INGEST_BIN" && -x "$INGEST_BIN" ]] || die "cargo did not produce the ingest bench binary"
}

# prepare_work_dir NAME: uses WORK_DIR if given (and then always keeps it), else a new
# /tmp/quiver-bench-NAME.XXXXXX that cleanup deletes after a successful run.
prepare_work_dir() {
    OWN_WORK_DIR=0
    if [[ -z "${WORK_DIR:-}" ]]; then
        WORK_DIR=$(mktemp -d "/tmp/quiver-bench-$1.XXXXXX")
        OWN_WORK_DIR=1
    fi
    mkdir -p "$WORK_DIR"
}

wait_ready() {
    local url=$1 pid=$2 log=$3 i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "server exited during startup (log: $log)"; }
        if curl -sf -o /dev/null "$url/-/ready"; then return; fi
        sleep 0.1
    done
    tail -n 30 "$log" >&2
    die "server at $url not ready after 60 s"
}

cleanup() {
    local status=$? pid
    for pid in "${RUNNING[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        # Bounded, so a hung server cannot keep the script from exiting.
        timeout 30 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 || "$KEEP_DATA" == 1 || $OWN_WORK_DIR == 0 ]]; then
        echo "logs and data kept in $WORK_DIR" >&2
    else
        rm -rf "$WORK_DIR"
    fi
}

# Sum of every series of one metric in a server's /metrics (Prometheus splits some by label).
metric_sum() {
    curl -sf "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f", s }'
}

# remember PID: stopped on exit (see cleanup). forget PID: it is stopped already.
remember() { RUNNING+=("$1"); }
forget() {
    local p kept=()
    for p in "${RUNNING[@]}"; do [[ "$p" == "$1" ]] || kept+=("$p"); done
    RUNNING=("${kept[@]+"${kept[@]}"}")
}

# terminate PID LOG: SIGTERM, then a bounded wait; a process that needs SIGKILL fails the
# run. Sets EXIT_STATUS to the process's exit status. (Not run in a $(...) subshell,
# because only this shell can wait for its children.)
terminate() {
    local pid=$1 log=$2 i
    EXIT_STATUS=0
    kill -TERM "$pid"
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        tail -n 30 "$log" >&2
        die "pid $pid ignored SIGTERM for 120 s and was killed (log: $log)"
    fi
    wait "$pid" || EXIT_STATUS=$?
    forget "$pid"
}

# Stops a server (see terminate) and sets STOP_SECS to the time it took. A server that
# exits non-zero fails the run too: its data dir would not be comparable.
stop_server() {
    local pid=$1 log=$2 start status
    start=$(now_ms)
    terminate "$pid" "$log"
    status=$EXIT_STATUS
    if [[ $status -ne 0 ]]; then
        tail -n 30 "$log" >&2
        die "pid $pid exited with status $status (log: $log)"
    fi
    STOP_SECS=$(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.1f", ms / 1000 }')
}

# Both servers use 2 h blocks. Prometheus's head range is fixed; Quiver's default config matches it.
BLOCK_MS=$((2 * 3600 * 1000))

# Quiver cuts window [s, s+2h) once its head reaches s+3h. Returns the end of the last window
# that the data reaching LAST_TS lets it cut.
quiver_expected_flush() {
    local last=$1
    echo $(((last - BLOCK_MS / 2) / BLOCK_MS * BLOCK_MS))
}

wait_quiver_blocks() {
    local dir=$1 want=$2 first=$3 i got=0
    # No window can be cut when the data does not reach 1 h past its first window's end.
    if ((want <= first)); then return; fi
    for ((i = 0; i < BLOCK_WAIT_SECS; i++)); do
        got=$(jq -r '.flushed_until // 0' "$dir/data/manifest.json" 2>/dev/null || echo 0)
        if ((got >= want)); then return; fi
        sleep 1
    done
    echo "  warning: Quiver flushed only until $got ms, expected $want ms, after ${BLOCK_WAIT_SECS}s" >&2
}

# Prometheus compacts its head while the head spans more than 1.5 block ranges. Once it spans
# less, every block it will cut is on disk.
wait_prometheus_blocks() {
    local url=$1 i min max
    for ((i = 0; i < BLOCK_WAIT_SECS; i++)); do
        min=$(metric_sum "$url" prometheus_tsdb_head_min_time)
        max=$(metric_sum "$url" prometheus_tsdb_head_max_time)
        if ((max - min <= BLOCK_MS * 3 / 2)); then return; fi
        sleep 1
    done
    echo "  warning: Prometheus head still spans $((max - min)) ms after ${BLOCK_WAIT_SECS}s" >&2
}

# Outputs "blocks bytes samples" for Prometheus's block dirs (ULID names), leaving out wal/
# and chunks_head/ as they are not blocks.
prometheus_block_stats() {
    local data=$1 blocks=0 bytes=0 samples=0 d
    for d in "$data"/*/; do
        d=${d%/}
        [[ "$(basename "$d")" =~ ^[0-9A-HJKMNP-TV-Z]{26}$ && -f "$d/meta.json" ]] || continue
        blocks=$((blocks + 1))
        bytes=$((bytes + $(du -sb "$d" | cut -f1)))
        samples=$((samples + $(jq '.stats.numSamples' "$d/meta.json")))
    done
    echo "$blocks $bytes $samples"
}

quiver_block_stats() {
    jq -r '[(.blocks | length), ([.blocks[].data_bytes] | add // 0),
            ([.blocks[].num_samples] | add // 0)] | @tsv' "$1/manifest.json" 2>/dev/null || echo "0 0 0"
}

median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# start_server quiver|prometheus DIR [PROMETHEUS FLAG...]: starts a fresh server with data
# under DIR (Quiver's WAL fsync is QUIVER_FSYNC) and sets SERVER_PID and SERVER_URL.
start_server() {
    local kind=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    case $kind in
    quiver)
        # No scrape_configs, so the benchmark is the only writer.
        printf 'storage:\n  wal:\n    fsync: %s\n' "$QUIVER_FSYNC" >"$dir/quiver.yml"
        SERVER_URL=http://127.0.0.1:$QUIVER_PORT
        "$QUIVER_BIN" --config.file="$dir/quiver.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$QUIVER_PORT" --postgres.listen-address= \
            >"$dir/server.log" 2>&1 &
        ;;
    prometheus)
        printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$dir/prometheus.yml"
        SERVER_URL=http://127.0.0.1:$PROM_PORT
        "$PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver "$@" \
            >"$dir/server.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    RUNNING+=("$SERVER_PID")
    wait_ready "$SERVER_URL" "$SERVER_PID" "$dir/server.log"
}

