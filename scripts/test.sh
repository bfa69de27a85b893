#!/usr/bin/env bash
# Runs Quiver's whole test suite on a fresh machine: installs the real peers the tests start
# (idempotently), then runs unit and integration tests on one (debug) profile.
set -euo pipefail
cd "$(dirname "$0")/.."

# A persistent target directory outside the clone, so a rebuild compiles only Quiver.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quiver-target}"
export PATH="$HOME/.cargo/bin:$PATH"

apt_packages=()
command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || apt_packages+=(prometheus-node-exporter)
command -v prometheus-alertmanager >/dev/null 2>&1 || apt_packages+=(prometheus-alertmanager)
command -v psql >/dev/null 2>&1 || apt_packages+=(postgresql-client)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
# curl is the HTTP client of the web-config tests; mount puts a small tmpfs under the
# full-disk test (the test command runs as root, as its apt-get needs).
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
command -v mount >/dev/null 2>&1 || apt_packages+=(mount)
# Databases and their exporters for the databases/ dashboards' panels (the tests start
# their own servers in temporary directories, on ports they choose).
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
command -v prometheus-redis-exporter >/dev/null 2>&1 || apt_packages+=(prometheus-redis-exporter)
command -v mariadb-install-db >/dev/null 2>&1 || apt_packages+=(mariadb-server)
command -v prometheus-mysqld-exporter >/dev/null 2>&1 || apt_packages+=(prometheus-mysqld-exporter)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_packages+=(postgresql)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || apt_packages+=(prometheus-postgres-exporter)
# The web UI's browser tests: Debian's Chromium and its WebDriver; Node.js and npm rebuild
# the UI bundle to check the committed one.
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_packages+=(chromium-driver)
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if ((${#apt_packages[@]})); then
  echo "installing ${apt_packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
# Debian's packages may start their services. They are left alone (they may be the user's
# own): the tests start their own instances on free ports they choose, and stop only those.

# PostgreSQL drivers for the wire-protocol tests; the official Python client library as
# an OpenMetrics exporter for the scrape tests.
if ! python3 -c "import psycopg, psycopg2, prometheus_client" >/dev/null 2>&1; then
  python3 -m pip install --quiet "psycopg[binary]" psycopg2-binary prometheus-client
fi

# Python tools in a venv of their own, pinned: the dashboard generator's SDK
# (provisioning/generator/requirements.txt; the tests check the committed dashboards are what
# it generates) and the validators of the deployment files (scripts/test-tools.txt).
tools_venv="$HOME/.cache/quiver-tools-venv"
tools_pins="$(cat provisioning/generator/requirements.txt scripts/test-tools.txt)"
if [[ "$(cat "$tools_venv/pins.txt" 2>/dev/null)" != "$tools_pins" ]]; then
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/pip" install --quiet -r provisioning/generator/requirements.txt -r scripts/test-tools.txt
  printf '%s' "$tools_pins" >"$tools_venv/pins.txt"
fi
export QUIVER_TOOLS_VENV="$tools_venv"

# Prometheus 3.5, promtool and Alertmanager 0.33 as the reference peers (Debian 12's 2.42
# differs from the 3.x semantics Quiver implements): fetched from Debian's packages into a
# cache, not installed. Without ../shared (a clone on its own), the system's packages serve.
if [[ -z "${QUIVER_PROMETHEUS3_DIR:-}" && -f ../shared/tools/prometheus3.sh ]]; then
  QUIVER_PROMETHEUS3_DIR="$(bash ../shared/tools/prometheus3.sh alertmanager)"
  export QUIVER_PROMETHEUS3_DIR
fi
echo "reference peers: ${QUIVER_PROMETHEUS3_DIR:-prometheus, promtool and alertmanager from the system}"

# S3-compatible server for the object-store tests (0.14.1: later releases need a newer rustc).
if ! command -v s3s-fs >/dev/null 2>&1; then
  cargo install s3s-fs@0.14.1 --features binary --locked
fi

# --nocapture: the PromQL suite prints its per-file pass-rate table, the differential
# and fuzz tests their counts.
cargo test --no-fail-fast -- --nocapture "$@"
