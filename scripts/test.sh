#!/usr/bin/env bash
# The whole test suite: the alert rules (promtool), the quick start's own test, the unit and
# integration tests against real Postgres and Redis (started project-local where none answer,
# as scripts/run.sh does), then the contract run (schemathesis against a real server) and the
# chaos suite's short run (a cluster of its own, broken on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh
log=$(mktemp)
trap 'rm -f "$log"; stop_local_services' EXIT

start_local_services
# One integration test restarts a private redis-server to prove reconnection; another runs a
# real Prometheus against Agora; the alert rules are checked and unit-tested with promtool.
command -v redis-server >/dev/null || install_debian_package redis-server redis-server
command -v prometheus >/dev/null || install_debian_package prometheus prometheus
# The browser tests drive a headless Chromium through chromedriver; the CJK fonts make the
# Japanese pages' screenshots legible.
command -v chromium >/dev/null || install_debian_package chromium chromium
command -v chromedriver >/dev/null || install_debian_package chromium-driver chromedriver
[[ -d /usr/share/fonts/opentype/noto ]] || install_debian_package fonts-noto-cjk "CJK fonts" || true

(
    cd grafana/prometheus
    promtool check rules alerts.yml
    promtool check config prometheus.yml
    promtool test rules alerts_test.yml
    echo "promtool: 1 passed, 0 failed"
) 2>&1 | tee "$log"
scripts/test-quickstart.sh 2>&1 | tee -a "$log"
cargo test --workspace --locked 2>&1 | tee -a "$log"
# The contract kept by a machine: schemathesis against /openapi.json on a real server.
scripts/test-contract.sh 2>&1 | tee -a "$log"
# Faults survived: servers killed, Postgres and Redis restarted, the gateway stalled.
scripts/test-chaos.sh 2>&1 | tee -a "$log"

# One closing line for the whole suite, summed over every runner above.
awk '/^test result:/ { passed += $4; failed += $6 }
     /^(quickstart|promtool|contract|chaos): [0-9]+ passed/ { passed += $2; failed += $4 }
     END { printf "%d passed, %d failed\n", passed, failed }' "$log"
