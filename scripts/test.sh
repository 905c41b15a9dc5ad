#!/usr/bin/env bash
# The whole test suite: unit and integration tests against real Postgres and Redis (started
# project-local where none answer, as scripts/run.sh does), then the quick start's own test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh
log=$(mktemp)
trap 'rm -f "$log"; stop_local_services' EXIT

start_local_services
# One integration test restarts a private redis-server to prove reconnection.
command -v redis-server >/dev/null || install_debian_package redis-server redis-server

scripts/test-quickstart.sh 2>&1 | tee "$log"
cargo test --workspace --locked 2>&1 | tee -a "$log"

# One closing line for the whole suite, summed over every runner above.
awk '/^test result:/ { passed += $4; failed += $6 }
     /^quickstart: [0-9]+ passed/ { passed += $2; failed += $4 }
     END { printf "%d passed, %d failed\n", passed, failed }' "$log"
