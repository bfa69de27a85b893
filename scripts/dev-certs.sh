#!/usr/bin/env bash
# Self-signed certificate for the development stack's TLS (Quiver's PostgreSQL port): an
# EC key and a certificate for quiver, localhost and 127.0.0.1, valid for a year.
# Idempotent: keeps an existing pair unless it expires within a week.
#
#   bash scripts/dev-certs.sh [DIR]     # DIR defaults to deploy/dev/certs
#
# deploy/docker-compose.yml runs it in a one-shot container before Quiver starts.
set -euo pipefail
dir="${1:-$(dirname "$0")/../deploy/dev/certs}"
mkdir -p "$dir"
if [[ -f "$dir/tls.crt" && -f "$dir/tls.key" ]] &&
  openssl x509 -checkend 604800 -noout -in "$dir/tls.crt" >/dev/null 2>&1; then
  echo "kept $dir/tls.crt"
  exit 0
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
  -subj "/CN=quiver" \
  -addext "subjectAltName=DNS:quiver,DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
# Readable by Quiver's user in the container (a development key, never a production one).
chmod 644 "$dir/tls.crt" "$dir/tls.key"
echo "wrote $dir/tls.crt and $dir/tls.key"
