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
