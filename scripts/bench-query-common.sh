# Shared by bench-promql.sh and bench-lookups.sh (sourced, not run): starting and stopping
# the servers, loading data with the generator, and the request timer. The timer's table
# names what it times through ITEM_NOUN and ITEMS_NOUN ("query"/"queries", "request"/"requests") and COUNT_NOUN ("series",
# "entries"), which the calling script sets.

# check_servers_and_tools NAME...: dies unless Prometheus, curl, jq, python3 and the Quiver
# release binary are there, the script runs from the repository root, each variable NAME
# is a positive integer, and neither server's port is taken.
check_servers_and_tools() {
    command -v "$PROMETHEUS_BIN" >/dev/null ||
        die "Prometheus not found ('$PROMETHEUS_BIN'). Install it (Debian: apt-get install prometheus) or set PROMETHEUS_BIN."
    local tool
    for tool in curl jq python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
    [[ -x "$QUIVER_BIN" ]] ||
        die "no Quiver binary at $QUIVER_BIN. Build it with: CARGO_TARGET_DIR=$TARGET_DIR cargo build --release (or set QUIVER_BIN)"
    [[ -f Cargo.toml && -f benches/ingest.rs ]] || die "run this from the repository root"
    local n
    for n in "$@"; do
        [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer"
    done
    local port
    for port in "$QUIVER_PORT" "$PROM_PORT"; do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
            die "port $port on 127.0.0.1 is already in use"
        fi
    done
}

# start_server quiver|prometheus DIR: starts a fresh server with data under DIR and sets
# SERVER_PID and SERVER_URL; SERVER_EXTRA_CONFIG, if set, is appended to both
# configuration files (top-level YAML, such as `rule_files`). Neither server scrapes anything, so the generator is the only
# writer and the requests see only its series.
start_server() {
    local kind=$1 dir=$2
    mkdir -p "$dir"
    case $kind in
    quiver)
        # No out-of-order window, as in Prometheus's default, so both accept the same samples.
        printf 'storage:\n  out_of_order_time_window: 0s\n%s\n' "${SERVER_EXTRA_CONFIG:-}" >"$dir/quiver.yml"
        SERVER_URL=http://127.0.0.1:$QUIVER_PORT
        "$QUIVER_BIN" --config.file="$dir/quiver.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$QUIVER_PORT" --postgres.listen-address= \
            >"$dir/server.log" 2>&1 &
        ;;
    prometheus)
        printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n%s\n' "${SERVER_EXTRA_CONFIG:-}" >"$dir/prometheus.yml"
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
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# run_generator URL OUT: loads the data set and leaves the generator's JSON report in OUT.
run_generator() {
    local cmd=("$INGEST_BIN" --url "$1/api/v1/write" --series "$SERIES" --samples-per-series "$SAMPLES"
        --batch-size "$BATCH_SIZE" --concurrency "$CONCURRENCY" --interval-ms "$INTERVAL_MS"
        --start-ms "$START_MS" --histogram-instances "${HISTOGRAM_INSTANCES:-0}")
    echo "  \$ ${cmd[*]}"
    "${cmd[@]}" >"$2" 2>"$2.stderr" || {
        cat "$2.stderr" >&2
        die "the load generator failed against $1"
    }
    echo "  $(cat "$2")"
}

# The timing client: Python's http.client over one keep-alive connection, without
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
        print(f"  {statistics.median(times) * 1000:9.2f} ms  {series:>8} @COUNT@  {name}", flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)

def report(quiver_path, prom_path, spec_path, summary_from):
    """Markdown table; rows named from summary_from onwards go into the median ratio."""
    q, p = json.load(open(quiver_path)), json.load(open(prom_path))
    print("| @ITEM@ | Quiver, ms | Prometheus, ms | Quiver/Prometheus | @COUNT@ (Q / P) | check |")
    print("|---|---:|---:|---:|---:|---|")
    ratios, in_summary = [], False
    for name, *_ in load_spec(spec_path):
        in_summary = in_summary or name == summary_from
        a, b = q[name], p[name]
        ratio = a["median"] / b["median"]
        if in_summary:
            ratios.append(ratio)
        check = "ok" if a["series"] == b["series"] else "**@COUNT@ differ**"
        if a["series"] == b["series"] and a["points"] != b["points"]:
            check = f"**points differ** ({a['points']} / {b['points']})"
        warned = [s for s, r in (("Quiver", a), ("Prometheus", b)) if r["warnings"]]
        if warned:
            check += f" (warnings from {' and '.join(warned)})"
        label = name.replace("|", "\\|")
        print(f"| `{label}` | {a['median'] * 1000:.2f} | {b['median'] * 1000:.2f} | {ratio:.2f} "
              f"| {a['series']} / {b['series']} | {check} |")
    if ratios:
        print(f"| **median ratio over {len(ratios)} @ITEMS@** | | | **{statistics.median(ratios):.2f}** | | |")

if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(*sys.argv[2:5])
    else:
        report(*sys.argv[2:6])
PY
    # The timer names what it measures after the calling script.
    sed -i "s/@ITEMS@/$ITEMS_NOUN/g; s/@ITEM@/$ITEM_NOUN/g; s/@COUNT@/$COUNT_NOUN/g" "$WORK_DIR/timer.py"
}
