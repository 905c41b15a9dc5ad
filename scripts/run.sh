#!/usr/bin/env bash
# Quick start: builds Agora, makes sure Postgres and Redis answer (starting project-local ones
# when they do not), migrates, seeds the demo store and serves on http://127.0.0.1:8080.
# Ctrl-C stops Agora gracefully and then everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh

export AGORA__HTTP__ADDR="${AGORA__HTTP__ADDR:-127.0.0.1:8080}"
# The operator console needs a token: a fresh one for this run unless one is configured.
export AGORA__OPERATOR__TOKEN="${AGORA__OPERATOR__TOKEN:-$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')}"
trap stop_local_services EXIT

cargo build --release --locked --bin agora
agora="${CARGO_TARGET_DIR:-target}/release/agora"

start_local_services
"$agora" migrate
"$agora" seed
base="http://$AGORA__HTTP__ADDR"
say "storefront:       $base/"
say "seller console:   $base/seller    (sign in with a seller's API key printed above)"
say "operator console: $base/operator  (token: $AGORA__OPERATOR__TOKEN)"
say "JSON API:         $base/api/v1    (contract: $base/openapi.json)"
say "serving on $base (Ctrl-C stops)"
# In the foreground, so Ctrl-C reaches Agora directly and it stops gracefully.
"$agora" serve
