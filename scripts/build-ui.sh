#!/usr/bin/env bash
# Rebuilds the web UI bundle (web/ui/dist, committed and embedded in the binary) from
# web/ui/src with the npm packages pinned by web/ui/package-lock.json. Run after changing
# the UI's source, then commit web/ui/dist; the test suite checks the two match.
set -euo pipefail
cd "$(dirname "$0")/../web/ui"
npm ci --no-audit --no-fund --loglevel=error
node build.mjs
gzip -c dist/assets/app.js | wc -c | awk '{printf "web/ui/dist/assets/app.js: %.0f kB gzipped\n", $1 / 1024}'
