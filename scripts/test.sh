#!/usr/bin/env bash
# The whole test suite: unit and integration tests against real Postgres and Redis (started
# project-local where none answer, as scripts/run.sh does), then the quick start's own test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh
trap stop_local_services EXIT

start_local_services
# One integration test restarts a private redis-server to prove reconnection.
command -v redis-server >/dev/null || install_debian_package redis-server redis-server

scripts/test-quickstart.sh
cargo test --workspace --locked
