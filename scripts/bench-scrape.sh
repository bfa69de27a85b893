#!/usr/bin/env bash
# Scraping benchmark: the CPU each server spends per scraped sample, Quiver against a real
# Prometheus, scraping the same simulated targets.
#
# Run from the repository root:   bash scripts/bench-scrape.sh
#
# For each server in turn (never both at once, so they do not compete for the CPU):
#   1. start a fresh target simulator (the `scrape` bench target): TARGETS listeners on
#      127.0.0.1:BASE_PORT.., each with SERIES series whose values change on every request;
#   2. start the server with a fresh data dir and a config that scrapes every target each
#      SCRAPE_INTERVAL (one job, static_configs);
#   3. after WARMUP_SECS (series creation happens in the first scrapes), read the server's CPU
#      time (utime + stime from /proc/PID/stat) and its own samples-appended counter, wait
#      WINDOW_SECS, and read both again;
#   4. read RSS and the targets' health, then stop the server and the simulator.
#
# Needs: a release build of Quiver, `prometheus` (2.42 from Debian), curl and jq. Installs nothing.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]  where the release build lives
#   QUIVER_BIN        [$CARGO_TARGET_DIR/release/quiver]
#   SCRAPE_BIN        [built with `cargo bench --bench scrape --no-run`]  the target simulator
#   PROMETHEUS_BIN    [prometheus]
#   TARGETS [500]  SERIES [1000]  series per target
#   SCRAPE_INTERVAL [15s]  SCRAPE_TIMEOUT [10s]
#   WARMUP_SECS [30]  WINDOW_SECS [180]
#   BASE_PORT [20000]  first simulator port; QUIVER_PORT [19290]  PROM_PORT [19291]
#   QUIVER_FSYNC [unset: Quiver's default]  storage.wal.fsync for Quiver, when set
#   SIM_THREADS [1]  worker threads of the simulator
#   SERVERS ["quiver prometheus"]  which servers to run, in this order
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run; a given one is kept]
#   KEEP_DATA [0]  set to 1 to keep the data dirs and logs
set -euo pipefail

# Shared helpers.
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN SCRAPE_BIN PROMETHEUS_BIN TARGETS SERIES SCRAPE_INTERVAL
    SCRAPE_TIMEOUT WARMUP_SECS WINDOW_SECS BASE_PORT QUIVER_PORT PROM_PORT QUIVER_FSYNC
    SIM_THREADS SERVERS WORK_DIR KEEP_DATA)

# Printed first so that a result can always be reproduced.
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-prometheus}
TARGETS=${TARGETS:-500}
SERIES=${SERIES:-1000}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-15s}
SCRAPE_TIMEOUT=${SCRAPE_TIMEOUT:-10s}
WARMUP_SECS=${WARMUP_SECS:-30}
WINDOW_SECS=${WINDOW_SECS:-180}
BASE_PORT=${BASE_PORT:-20000}
QUIVER_PORT=${QUIVER_PORT:-19290}
PROM_PORT=${PROM_PORT:-19291}
QUIVER_FSYNC=${QUIVER_FSYNC:-}
SIM_THREADS=${SIM_THREADS:-1}
SERVERS=${SERVERS:-quiver prometheus}
KEEP_DATA=${KEEP_DATA:-0}
CLK_TCK=$(getconf CLK_TCK)
# Both servers add these per scrape: up, scrape_duration_seconds, scrape_samples_scraped,
# scrape_samples_post_metric_relabeling, scrape_series_added.
REPORT_SERIES=5

# Seconds in a Prometheus duration made of one number and s or m, which is all this needs.
duration_secs() {
    case $1 in
    *m) echo $((${1%m} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) die "SCRAPE_INTERVAL must look like 15s or 1m, not '$1'" ;;
    esac
}
INTERVAL_SECS=$(duration_secs "$SCRAPE_INTERVAL")

port_in_use() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }

check_prerequisites() {
    command -v "$PROMETHEUS_BIN" >/dev/null ||
        die "Prometheus not found ('$PROMETHEUS_BIN'). Install it (Debian: apt-get install prometheus) or set PROMETHEUS_BIN."
    command -v curl >/dev/null || die "curl is required"
    command -v jq >/dev/null || die "jq is required"
    [[ -x "$QUIVER_BIN" ]] ||
        die "no Quiver binary at $QUIVER_BIN. Build it with: CARGO_TARGET_DIR=$TARGET_DIR cargo build --release (or set QUIVER_BIN)"
    [[ -f Cargo.toml && -f benches/scrape.rs ]] || die "run this from the repository root"
    ((TARGETS > 0 && SERIES > 0 && WINDOW_SECS > 0)) || die "TARGETS, SERIES and WINDOW_SECS must be positive"
    ((BASE_PORT + TARGETS - 1 <= 65535)) || die "BASE_PORT + TARGETS does not fit below port 65536"
    local port kind
    for kind in $SERVERS; do
        [[ $kind == quiver || $kind == prometheus ]] || die "SERVERS may list only quiver and prometheus, not '$kind'"
    done
    # The simulator itself refuses to start on any taken port; these are the servers' ports
    # and the ends of the simulator's range, for an early and clear message.
    for port in "$QUIVER_PORT" "$PROM_PORT" "$BASE_PORT" $((BASE_PORT + TARGETS - 1)); do
        if port_in_use "$port"; then die "port $port on 127.0.0.1 is already in use"; fi
    done
    if ((QUIVER_PORT >= BASE_PORT && QUIVER_PORT < BASE_PORT + TARGETS)) ||
        ((PROM_PORT >= BASE_PORT && PROM_PORT < BASE_PORT + TARGETS)); then
        die "QUIVER_PORT and PROM_PORT must be outside the simulator's ports $BASE_PORT..$((BASE_PORT + TARGETS - 1))"
    fi
}

# The simulator is the `scrape` bench target. With the release build already done, only the
# bench file is compiled. The path is taken from cargo's JSON output, because the file name
# carries a hash.
locate_simulator() {
    if [[ -n "${SCRAPE_BIN:-}" ]]; then
        [[ -x "$SCRAPE_BIN" ]] || die "SCRAPE_BIN=$SCRAPE_BIN is not executable"
        return
    fi
    echo "building the target simulator: CARGO_TARGET_DIR=$TARGET_DIR cargo bench --bench scrape --no-run" >&2
    SCRAPE_BIN=$(CARGO_TARGET_DIR=$TARGET_DIR cargo bench --bench scrape --no-run --message-format=json |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "scrape"
                      and any(.target.kind[]; . == "bench")) | .executable // empty' | tail -n 1)
    [[ -n "$SCRAPE_BIN" && -x "$SCRAPE_BIN" ]] || die "cargo did not produce the scrape bench binary"
}

check_prerequisites
locate_simulator
prepare_work_dir scrape
# Servers must start fresh; an old data dir would add its replay to the figures.
for d in quiver prometheus; do
    [[ ! -e "$WORK_DIR/$d" ]] || die "$WORK_DIR/$d exists from an earlier run; use an empty WORK_DIR"
done
echo "work dir: $WORK_DIR"
echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
echo "prometheus: $(command -v "$PROMETHEUS_BIN") ($("$PROMETHEUS_BIN" --version 2>&1 | head -n 1))"
echo "simulator: $SCRAPE_BIN"

# PIDs still running, stopped on any exit (bench-common's cleanup) so that nothing outlives
# the script.
RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# "utime stime" of a whole process (all its threads), in clock ticks. The command name in
# field 2 may hold spaces, so fields are counted after its closing parenthesis.
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    awk '{ print $12, $13 }' <<<"$stat"
}

# Busy clock ticks of the whole machine (every CPU, idle and iowait left out). Over the window,
# what neither the server nor the simulator used shows how busy the shared host was.
machine_busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Sum of every series of one metric in a server's /metrics; Prometheus splits the appended
# counter by a `type` label.
metric_sum() {
    curl -sf --max-time 10 "$1/metrics" |
        awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f", s }'
}

# Outputs "up total max_scrape_seconds" from /api/v1/targets, which both servers have.
target_health() {
    curl -sf --max-time 10 "$1/api/v1/targets" | jq -r '[.data.activeTargets[]] |
        [(map(select(.health == "up")) | length), length,
         (map(.lastScrapeDuration // 0) | max // 0)] | @tsv' || echo "n/a n/a n/a"
}

# wait_for URL PID LOG: polls URL until it answers, for at most 60 s.
wait_for() {
    local url=$1 pid=$2 log=$3 i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "pid $pid exited during startup (log: $log)"; }
        if curl -sf -o /dev/null --max-time 5 "$url"; then return; fi
        sleep 0.1
    done
    tail -n 30 "$log" >&2
    die "$url did not answer within 60 s"
}

# stop PID LOG: terminate (bench-common); a non-zero exit is only reported.
stop() {
    terminate "$1" "$2"
    ((EXIT_STATUS == 0)) || echo "  warning: pid $1 exited with status $EXIT_STATUS (log: $2)" >&2
}

start_simulator() {
    local dir=$1
    "$SCRAPE_BIN" serve --base-port "$BASE_PORT" --targets "$TARGETS" --series "$SERIES" \
        --threads "$SIM_THREADS" >"$dir/simulator.out" 2>"$dir/simulator.log" &
    SIM_PID=$!
    remember "$SIM_PID"
    # The last listener is bound last, so once it answers all of them do.
    wait_for "http://127.0.0.1:$((BASE_PORT + TARGETS - 1))/metrics" "$SIM_PID" "$dir/simulator.log"
    echo "  $(cat "$dir/simulator.log")"
}

# The same scrape config for both servers: one job listing every target.
write_scrape_config() {
    local file=$1 port
    {
        printf 'global:\n  scrape_interval: %s\n  scrape_timeout: %s\n' "$SCRAPE_INTERVAL" "$SCRAPE_TIMEOUT"
        printf 'scrape_configs:\n  - job_name: simulator\n    static_configs:\n      - targets:\n'
        for ((port = BASE_PORT; port < BASE_PORT + TARGETS; port++)); do
            printf '          - "127.0.0.1:%d"\n' "$port"
        done
    } >"$file"
}

# start_server quiver|prometheus DIR: sets SERVER_PID and SERVER_URL.
start_server() {
    local kind=$1 dir=$2
    write_scrape_config "$dir/$kind.yml"
    case $kind in
    quiver)
        if [[ -n "$QUIVER_FSYNC" ]]; then
            printf 'storage:\n  wal:\n    fsync: %s\n' "$QUIVER_FSYNC" >>"$dir/$kind.yml"
        fi
        SERVER_URL=http://127.0.0.1:$QUIVER_PORT
        "$QUIVER_BIN" --config.file="$dir/$kind.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$QUIVER_PORT" --postgres.listen-address= \
            >"$dir/server.log" 2>&1 &
        ;;
    prometheus)
        SERVER_URL=http://127.0.0.1:$PROM_PORT
        "$PROMETHEUS_BIN" --config.file="$dir/$kind.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$PROM_PORT" >"$dir/server.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    remember "$SERVER_PID"
    wait_for "$SERVER_URL/-/ready" "$SERVER_PID" "$dir/server.log"
}

# Results live in an associative array keyed "<server>.<name>".
declare -A R

# measure_window KIND: the CPU and samples of the running server over WINDOW_SECS.
measure_window() {
    local kind=$1 samples0 user0 sys0 user1 sys1 sim0 sim1 busy0 start_ms
    samples0=$(metric_sum "$SERVER_URL" "${kind}_tsdb_head_samples_appended_total")
    read -r user0 sys0 < <(cpu_ticks "$SERVER_PID")
    read -r sim0 < <(cpu_ticks "$SIM_PID" | awk '{ print $1 + $2 }')
    busy0=$(machine_busy_ticks)
    start_ms=$(now_ms)
    sleep "$WINDOW_SECS"
    read -r user1 sys1 < <(cpu_ticks "$SERVER_PID")
    read -r sim1 < <(cpu_ticks "$SIM_PID" | awk '{ print $1 + $2 }')
    R[$kind.busy_ticks]=$(($(machine_busy_ticks) - busy0))
    R[$kind.window_ms]=$(($(now_ms) - start_ms))
    R[$kind.samples]=$(($(metric_sum "$SERVER_URL" "${kind}_tsdb_head_samples_appended_total") - samples0))
    R[$kind.user_ticks]=$((user1 - user0))
    R[$kind.sys_ticks]=$((sys1 - sys0))
    R[$kind.sim_ticks]=$((sim1 - sim0))
}

# Warnings and errors in a server log, except the notice of the SIGTERM this script sent.
log_problems() { grep -iE 'warn|error' "$1" | grep -v 'Received SIGTERM' || true; }

run() {
    local kind=$1 dir=$WORK_DIR/$1 up total max_dur problems
    mkdir -p "$dir"
    echo "$kind: simulator + server, ${WARMUP_SECS}s warm-up, then a ${WINDOW_SECS}s window"
    start_simulator "$dir"
    start_server "$kind" "$dir"
    sleep "$WARMUP_SECS"
    measure_window "$kind"
    R[$kind.rss]=$(rss_kib "$SERVER_PID")
    R[$kind.hwm]=$(hwm_kib "$SERVER_PID")
    R[$kind.head_series]=$(metric_sum "$SERVER_URL" "${kind}_tsdb_head_series")
    read -r up total max_dur < <(target_health "$SERVER_URL")
    R[$kind.up]="$up/$total"
    R[$kind.max_scrape]=$max_dur
    stop "$SERVER_PID" "$dir/server.log"
    stop "$SIM_PID" "$dir/simulator.log"
    R[$kind.sim_summary]=$(cat "$dir/simulator.out")
    echo "  window: ${R[$kind.samples]} samples, CPU user $(fmt "${R[$kind.user_ticks]}" "$CLK_TCK" 2) s +" \
        "system $(fmt "${R[$kind.sys_ticks]}" "$CLK_TCK" 2) s; simulator: ${R[$kind.sim_summary]}"
    problems=$(log_problems "$dir/server.log")
    if [[ -n "$problems" ]]; then
        echo "  $kind log has $(wc -l <<<"$problems") warning/error lines, the first ones:"
        head -n 5 <<<"$problems" | cut -c1-300 | sed 's/^/    /'
    fi
}

# fmt VALUE SCALE DECIMALS: VALUE / SCALE, printed with DECIMALS; "n/a" when there is no value.
fmt() { awk -v v="$1" -v s="$2" -v d="$3" 'BEGIN { if (v == "" || v == "n/a") print "n/a"; else printf "%.*f", d, v / s }'; }
ratio() {
    awk -v q="$1" -v p="$2" 'BEGIN { if (q == "" || p == "" || p + 0 == 0) print "n/a"; else printf "%.2f", q / p }'
}
# div A B: A / B with enough digits for the tables, or nothing when B is zero or missing.
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print ""; else printf "%.9g", a / b }'; }

for kind in $SERVERS; do run "$kind"; done

# ---- report ---------------------------------------------------------------------------------

# Each target is scraped once per interval, with SERIES samples plus the report series.
EXPECTED=$((TARGETS * (SERIES + REPORT_SERIES) * WINDOW_SECS / INTERVAL_SECS))
for kind in $SERVERS; do
    R[$kind.cpu_secs]=$(div "$((R[$kind.user_ticks] + R[$kind.sys_ticks]))" "$CLK_TCK")
    R[$kind.sys_secs]=$(div "${R[$kind.sys_ticks]}" "$CLK_TCK")
    R[$kind.us_per_sample]=$(div "$(awk -v s="${R[$kind.cpu_secs]}" 'BEGIN { print s * 1e6 }')" "${R[$kind.samples]}")
    R[$kind.pct_expected]=$(div "$((R[$kind.samples] * 100))" "$EXPECTED")
    R[$kind.sim_cpu]=$(div "${R[$kind.sim_ticks]}" "$CLK_TCK")
    # The rest of the machine: busy time not spent by the server or the simulator. The two
    # sources are read a moment apart, so a quiet host can come out a tick or two below zero.
    other=$((R[$kind.busy_ticks] - R[$kind.user_ticks] - R[$kind.sys_ticks] - R[$kind.sim_ticks]))
    R[$kind.other_cpu]=$(div "$((other > 0 ? other : 0))" "$CLK_TCK")
done

q() { echo "${R[quiver.$1]:-}"; }
p() { echo "${R[prometheus.$1]:-}"; }
row() {
    local kind=$1 name=$2
    [[ -n "${R[$kind.samples]:-}" ]] || return 0
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${R[$kind.samples]}" \
        "$(fmt "${R[$kind.pct_expected]}" 1 1)" "$(fmt "${R[$kind.cpu_secs]}" 1 2)" \
        "$(fmt "${R[$kind.sys_secs]}" 1 2)" "$(fmt "${R[$kind.us_per_sample]}" 1 3)" \
        "$(fmt "${R[$kind.rss]}" 1024 1)" "$(fmt "${R[$kind.hwm]}" 1024 1)" "${R[$kind.head_series]}" \
        "${R[$kind.up]}" "$(fmt "${R[$kind.max_scrape]}" 1 3)"
}

echo
echo "## Scraping: Quiver vs Prometheus $("$PROMETHEUS_BIN" --version 2>&1 | awk 'NR == 1 { print $3 }')"
echo
echo "$TARGETS targets x $SERIES series, scraped every $SCRAPE_INTERVAL (timeout $SCRAPE_TIMEOUT)." \
    "Window: ${WINDOW_SECS}s after a ${WARMUP_SECS}s warm-up; expected $EXPECTED samples in it" \
    "($REPORT_SERIES report series per scrape included). Quiver WAL fsync: ${QUIVER_FSYNC:-default}." \
    "CPU is utime+stime of the server process over the window (CLK_TCK $CLK_TCK)."
echo
echo "| server | samples scraped in window | % of expected | CPU s | of which system, s | CPU µs/sample | RSS at end, MiB | peak RSS, MiB | head series | targets up | max last scrape, s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row quiver Quiver
row prometheus Prometheus
printf '| Quiver/Prometheus | %s | | %s | %s | %s | %s | %s | | | |\n' \
    "$(ratio "$(q samples)" "$(p samples)")" "$(ratio "$(q cpu_secs)" "$(p cpu_secs)")" \
    "$(ratio "$(q sys_secs)" "$(p sys_secs)")" "$(ratio "$(q us_per_sample)" "$(p us_per_sample)")" \
    "$(ratio "$(q rss)" "$(p rss)")" "$(ratio "$(q hwm)" "$(p hwm)")"
echo
for kind in $SERVERS; do
    echo "- $kind run: simulator CPU in the window $(fmt "${R[$kind.sim_cpu]}" 1 2) s;" \
        "other processes on the host $(fmt "${R[$kind.other_cpu]}" 1 2) s of $(($(nproc) * WINDOW_SECS)) s;" \
        "simulator over the whole run: ${R[$kind.sim_summary]}"
done
