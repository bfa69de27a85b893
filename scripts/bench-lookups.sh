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

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN PROMETHEUS_BIN QUIVER_PORT PROM_PORT
    SERIES BATCH_SIZE CONCURRENCY RUNS SETTLE_SECS WORK_DIR KEEP_DATA)

# Printed first so that a result can always be reproduced.
print_command() {
    local words=() name
    for name in "${ENV_VARS[@]}"; do
        if [[ -n "${!name+set}" ]]; then words+=("$name=$(printf '%q' "${!name}")"); fi
    done
    echo "command: ${words[*]+${words[*]} }bash $0${*:+ $*}"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
}
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

die() {
    echo "error: $*" >&2
    exit 1
}

check_prerequisites() {
    command -v "$PROMETHEUS_BIN" >/dev/null ||
        die "Prometheus not found ('$PROMETHEUS_BIN'). Install it (Debian: apt-get install prometheus) or set PROMETHEUS_BIN."
    local tool
    for tool in curl jq python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
    [[ -x "$QUIVER_BIN" ]] ||
        die "no Quiver binary at $QUIVER_BIN. Build it with: CARGO_TARGET_DIR=$TARGET_DIR cargo build --release (or set QUIVER_BIN)"
    [[ -f Cargo.toml && -f benches/ingest.rs ]] || die "run this from the repository root"
    local n
    for n in SERIES RUNS; do
        [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer"
    done
    local port
    for port in "$QUIVER_PORT" "$PROM_PORT"; do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
            die "port $port on 127.0.0.1 is already in use"
        fi
    done
}

# The generator is the `ingest` bench target; its file name carries a hash, so the path is
# taken from cargo's JSON output.
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

check_prerequisites
locate_generator
# Only a directory this script created is ever deleted; a given WORK_DIR is always kept.
OWN_WORK_DIR=0
if [[ -z "${WORK_DIR:-}" ]]; then
    WORK_DIR=$(mktemp -d /tmp/quiver-bench-lookups.XXXXXX)
    OWN_WORK_DIR=1
fi
mkdir -p "$WORK_DIR"
for d in "$WORK_DIR"/quiver "$WORK_DIR"/prometheus; do
    [[ ! -e "$d" ]] || die "$d exists from an earlier run; use an empty WORK_DIR"
done
echo "work dir: $WORK_DIR"
echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
echo "prometheus: $(command -v "$PROMETHEUS_BIN") ($("$PROMETHEUS_BIN" --version 2>&1 | head -n 1))"
echo "generator: $INGEST_BIN"

# PIDs of servers still running, stopped on any exit so no server outlives the script.
RUNNING=()
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
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

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

# start_server quiver|prometheus DIR: starts a fresh server with data under DIR and sets
# SERVER_PID and SERVER_URL. Neither server scrapes anything, so the generator is the only
# writer and the queries see only its series.
start_server() {
    local kind=$1 dir=$2
    mkdir -p "$dir"
    case $kind in
    quiver)
        # No out-of-order window, as in Prometheus's default, so both accept the same samples.
        printf 'storage:\n  out_of_order_time_window: 0s\n' >"$dir/quiver.yml"
        SERVER_URL=http://127.0.0.1:$QUIVER_PORT
        "$QUIVER_BIN" --config.file="$dir/quiver.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$QUIVER_PORT" >"$dir/server.log" 2>&1 &
        ;;
    prometheus)
        printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$dir/prometheus.yml"
        SERVER_URL=http://127.0.0.1:$PROM_PORT
        "$PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
            >"$dir/server.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    RUNNING+=("$SERVER_PID")
    wait_ready "$SERVER_URL" "$SERVER_PID" "$dir/server.log"
}

# SIGTERM, bounded wait, then SIGKILL. Run in this shell (not a subshell) so it can `wait`.
stop_server() {
    local pid=$1 i p kept=()
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${RUNNING[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
    RUNNING=("${kept[@]+"${kept[@]}"}")
}

# run_generator URL OUT: loads the data set and leaves the generator's JSON report in OUT.
run_generator() {
    local cmd=("$INGEST_BIN" --url "$1/api/v1/write" --series "$SERIES" --samples-per-series "$SAMPLES"
        --batch-size "$BATCH_SIZE" --concurrency "$CONCURRENCY" --interval-ms "$INTERVAL_MS"
        --start-ms "$START_MS")
    echo "  \$ ${cmd[*]}"
    "${cmd[@]}" >"$2" 2>"$2.stderr" || {
        cat "$2.stderr" >&2
        die "the load generator failed against $1"
    }
    echo "  $(cat "$2")"
}

# The timing client. Python's http.client over one keep-alive connection, without
# Accept-Encoding, so neither server compresses and no connection setup is timed. The clock
# runs from sending the request to reading the last byte of the body; the JSON is parsed
# after the clock stops.
write_timer() {
    cat >"$WORK_DIR/timer.py" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse

def load_spec(path):
    """Tab-separated: name, path, runs, then name=value parameters (values not encoded)."""
    spec = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, api, runs, *params = line.split("\t")
            spec.append((name, api, int(runs), [tuple(p.split("=", 1)) for p in params if p]))
    return spec

def shape(data):
    """(series, points) of an answer: result series for queries, entries for metadata lists."""
    if isinstance(data, dict) and "resultType" in data:
        result = data["result"]
        if data["resultType"] == "matrix":
            return len(result), sum(len(s.get("values", [])) for s in result)
        if data["resultType"] == "vector":
            return len(result), len(result)
        return 1, 1
    return len(data), len(data)

def measure(base, spec_path, out_path):
    host, port = urllib.parse.urlsplit(base).netloc.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    results = {}
    for name, api, runs, params in load_spec(spec_path):
        url = api + ("?" + urllib.parse.urlencode(params) if params else "")
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            conn.request("GET", url)
            resp = conn.getresponse()
            body = resp.read()
            times.append(time.perf_counter() - start)
            try:
                doc = json.loads(body)
            except ValueError:
                doc = {}
            if resp.status != 200 or doc.get("status") != "success":
                sys.exit(f"error: {base}{url} answered HTTP {resp.status}: {body[:500]!r}")
        series, points = shape(doc["data"])
        results[name] = {"url": url, "times": times, "median": statistics.median(times),
                         "series": series, "points": points, "bytes": len(body),
                         "warnings": doc.get("warnings", [])}
        for warning in doc.get("warnings", []):
            print(f"  warning for {name}: {warning}", flush=True)
        print(f"  {statistics.median(times) * 1000:9.2f} ms  {series:>8} entries  {name}", flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)

def report(quiver_path, prom_path, spec_path, summary_from):
    """Markdown table; rows named from summary_from onwards go into the median ratio."""
    q, p = json.load(open(quiver_path)), json.load(open(prom_path))
    print("| request | Quiver, ms | Prometheus, ms | Quiver/Prometheus | entries (Q / P) | check |")
    print("|---|---:|---:|---:|---:|---|")
    ratios, in_summary = [], False
    for name, *_ in load_spec(spec_path):
        in_summary = in_summary or name == summary_from
        a, b = q[name], p[name]
        ratio = a["median"] / b["median"]
        if in_summary:
            ratios.append(ratio)
        check = "ok" if a["series"] == b["series"] else "**entries differ**"
        if a["series"] == b["series"] and a["points"] != b["points"]:
            check = f"**points differ** ({a['points']} / {b['points']})"
        warned = [s for s, r in (("Quiver", a), ("Prometheus", b)) if r["warnings"]]
        if warned:
            check += f" (warnings from {' and '.join(warned)})"
        label = name.replace("|", "\\|")
        print(f"| `{label}` | {a['median'] * 1000:.2f} | {b['median'] * 1000:.2f} | {ratio:.2f} "
              f"| {a['series']} / {b['series']} | {check} |")
    if ratios:
        print(f"| **median ratio over {len(ratios)} requests** | | | **{statistics.median(ratios):.2f}** | | |")

if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(*sys.argv[2:5])
    else:
        report(*sys.argv[2:6])
PY
}

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
