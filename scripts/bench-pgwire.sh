#!/usr/bin/env bash
# SQL through the PostgreSQL wire protocol against the HTTP SQL endpoint, on the same
# Quiver and the same data.
#
# Run from the repository root:   bash scripts/bench-pgwire.sh
#
# A fresh Quiver gets SERIES series x SAMPLES samples from the remote-write load generator
# (benches/ingest.rs: metrics bench_metric_{0..9}, so bench_metric_0 holds a tenth of the
# rows). Then, each RUNS times:
#   - a large result, `SELECT * FROM bench_metric_0`, read to the end by psql (wire protocol,
#     text format) and by curl from /api/v1/sql as CSV and as JSON: rows per second;
#   - small dashboard queries over one keep-alive connection each way (psycopg2 for the wire,
#     http.client for HTTP): median latency.
# The table gives the medians and the wire/HTTP ratio (below 1: the wire protocol is faster).
#
# Needs: a release build of Quiver, psql, curl, jq, python3 with psycopg2. Installs nothing.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR  [$HOME/.cache/quiver-target-release]  where the release build lives
#   QUIVER_BIN        [$CARGO_TARGET_DIR/release/quiver]
#   INGEST_BIN        [built with `cargo bench --bench ingest --no-run`]  the load generator
#   QUIVER_PORT [19190]  PG_PORT [19192]  (both on 127.0.0.1)
#   SERIES [20000]  SAMPLES [500]  BATCH_SIZE [2000]  CONCURRENCY [4]
#   RUNS [5] large-result runs; SMALL_RUNS [50] runs per small query
#   WORK_DIR [a new mktemp -d dir, deleted after a successful run; a given one is kept]
#   KEEP_DATA [0]  set to 1 to keep the data dir and logs

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

ENV_VARS=(CARGO_TARGET_DIR QUIVER_BIN INGEST_BIN QUIVER_PORT PG_PORT SERIES SAMPLES
    BATCH_SIZE CONCURRENCY RUNS SMALL_RUNS WORK_DIR KEEP_DATA)
print_command "$@"

TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target-release}
QUIVER_BIN=${QUIVER_BIN:-$TARGET_DIR/release/quiver}
QUIVER_PORT=${QUIVER_PORT:-19190}
PG_PORT=${PG_PORT:-19192}
SERIES=${SERIES:-20000}
SAMPLES=${SAMPLES:-500}
INTERVAL_MS=15000
BATCH_SIZE=${BATCH_SIZE:-2000}
CONCURRENCY=${CONCURRENCY:-4}
RUNS=${RUNS:-5}
SMALL_RUNS=${SMALL_RUNS:-50}
KEEP_DATA=${KEEP_DATA:-0}

for tool in psql curl jq python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
python3 -c "import psycopg2" 2>/dev/null || die "python3 needs psycopg2 (pip install psycopg2-binary)"
[[ -x "$QUIVER_BIN" ]] ||
    die "no Quiver binary at $QUIVER_BIN. Build it with: CARGO_TARGET_DIR=$TARGET_DIR cargo build --release (or set QUIVER_BIN)"
[[ -f Cargo.toml && -f benches/ingest.rs ]] || die "run this from the repository root"
locate_generator

prepare_work_dir pgwire
echo "work dir: $WORK_DIR"
echo "quiver: $QUIVER_BIN ($("$QUIVER_BIN" --version 2>&1 | head -n 1))"
RUNNING=()
trap cleanup EXIT
trap 'exit 130' INT TERM

URL=http://127.0.0.1:$QUIVER_PORT
printf 'storage:\n  out_of_order_time_window: 0s\n' >"$WORK_DIR/quiver.yml"
"$QUIVER_BIN" --config.file="$WORK_DIR/quiver.yml" --storage.tsdb.path="$WORK_DIR/data" \
    --web.listen-address="127.0.0.1:$QUIVER_PORT" --postgres.listen-address="127.0.0.1:$PG_PORT" \
    >"$WORK_DIR/server.log" 2>&1 &
RUNNING+=("$!")
wait_ready "$URL" "$!" "$WORK_DIR/server.log"

START_MS=$(($(now_ms) - SAMPLES * INTERVAL_MS))
cmd=("$INGEST_BIN" --url "$URL/api/v1/write" --series "$SERIES" --samples-per-series "$SAMPLES"
    --batch-size "$BATCH_SIZE" --concurrency "$CONCURRENCY" --interval-ms "$INTERVAL_MS" --start-ms "$START_MS")
echo "  \$ ${cmd[*]}"
"${cmd[@]}" >"$WORK_DIR/generator.json" || die "the load generator failed"
echo "  $(cat "$WORK_DIR/generator.json")"

python3 - "$URL" "$PG_PORT" "$RUNS" "$SMALL_RUNS" <<'EOF'
import http.client, json, statistics, subprocess, sys, time, urllib.parse
import psycopg2

url, pg_port, runs, small_runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = url.removeprefix("http://").split(":")
dsn = f"host=127.0.0.1 port={pg_port} dbname=quiver sslmode=disable"
large = "SELECT * FROM bench_metric_0"

def timed(cmd):
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True)
    secs = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {done.stderr.decode(errors='replace')[:500]}")
    return secs, done.stdout

rows = None
results = {}
for name in ("wire (psql, text)", "HTTP CSV (curl)", "HTTP JSON (curl)"):
    times = []
    for _ in range(runs):
        if name.startswith("wire"):
            secs, out = timed(["psql", "-X", "-A", "-t", dsn, "-c", large])
            n = out.count(b"\n")
        else:
            fmt = "csv" if "CSV" in name else "json"
            q = urllib.parse.urlencode({"query": large, "format": fmt})
            secs, out = timed(["curl", "-sf", f"{url}/api/v1/sql?{q}"])
            n = out.count(b"\n") - 1 if fmt == "csv" else len(json.loads(out)["data"]["rows"])
        rows = rows or n
        if n != rows:
            sys.exit(f"{name}: {n} rows, expected {rows}")
        times.append(secs)
    results[name] = statistics.median(times)

small = [
    "SELECT count(*) FROM bench_metric_1",
    "SELECT instance, avg(value) FROM bench_metric_2 GROUP BY instance ORDER BY 1 LIMIT 20",
    "SELECT max(timestamp) FROM bench_metric_3",
    "SELECT date_trunc('minute', timestamp) AS time, sum(value) FROM bench_metric_4 WHERE instance = 'host-7' GROUP BY 1 ORDER BY 1",
]
conn = psycopg2.connect(dsn)
conn.autocommit = True
cur = conn.cursor()
http = http.client.HTTPConnection(host, int(port))
small_results = []
for sql in small:
    wire, web = [], []
    for _ in range(small_runs):
        t = time.perf_counter(); cur.execute(sql); cur.fetchall(); wire.append(time.perf_counter() - t)
        t = time.perf_counter()
        http.request("GET", "/api/v1/sql?" + urllib.parse.urlencode({"query": sql}))
        body = http.getresponse().read(); web.append(time.perf_counter() - t)
        assert json.loads(body)["status"] == "success", body[:200]
    small_results.append((sql, statistics.median(wire) * 1e3, statistics.median(web) * 1e3))

print()
print(f"## SQL over the wire protocol vs HTTP ({rows} rows in the large result)")
print()
print("| large result | median s | rows/s | vs HTTP CSV |")
print("|---|---:|---:|---:|")
base = results["HTTP CSV (curl)"]
for name, secs in results.items():
    print(f"| {name} | {secs:.3f} | {rows / secs:,.0f} | {secs / base:.2f} |")
print()
print("| small query | wire ms | HTTP ms | wire/HTTP |")
print("|---|---:|---:|---:|")
for sql, w, h in small_results:
    print(f"| `{sql}` | {w:.2f} | {h:.2f} | {w / h:.2f} |")
ratios = [w / h for _, w, h in small_results]
print(f"\nmedian small-query ratio wire/HTTP: {statistics.median(ratios):.2f}")
EOF
