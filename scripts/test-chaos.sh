#!/usr/bin/env bash
# The chaos suite's short run: `agora-load-tests chaos` starts a Postgres, a Redis and three
# `agora serve` processes of its own (loopback ports, a scratch directory), runs three rounds of
# a checkout race and a flash sale through them while it SIGKILLs servers 8 times, crashes and
# restarts Postgres and Redis, flushes Redis and stalls the payment gateway; then it checks that
# nothing was oversold, lost, charged without an order or twice, and that no hold is stuck.
# About a minute on two cores. Ends with `chaos: N passed, N failed`. The long run and its
# figures: docs/operations.md, "Faults survived".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh

[[ -n $(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null) ]] || install_debian_package postgresql postgres
command -v redis-server >/dev/null || install_debian_package redis-server redis-server
# Postgres refuses to run as root: root runs the suite's Postgres as `postgres`.
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
fi

cargo build --locked -p agora -p agora-load-tests --bins
bin="${CARGO_TARGET_DIR:-target}/debug"
report=$(mktemp /tmp/agora-chaos-report.XXXXXX.json)
if timeout 600 "$bin/agora-load-tests" chaos --agora "$bin/agora" \
    --window-secs 30 --kills 8 --rounds 3 \
    --race-shoppers 80 --race-stock 50 --sale-shoppers 40 --sale-quantity 15 \
    --settle-secs 60 --report "$report" >/dev/null; then
    rm -f "$report"
    echo "chaos: 1 passed, 0 failed"
else
    say "the chaos run failed; its report: $report"
    echo "chaos: 0 passed, 1 failed"
    exit 1
fi
