#!/usr/bin/env bash
# The contract kept by a machine: schemathesis (pinned, installed in a venv under the cache
# directory when missing) fuzzes every operation of /openapi.json against a real `agora serve`
# on a fresh database and Redis prefix, as a seller, a shopper and the operator, and fails on any
# 5xx, any status the document does not list, any response that is not its documented content
# type or does not match its schema. Needs Postgres and Redis at AGORA__DATABASE__URL and
# AGORA__REDIS__URL (scripts/test.sh makes sure of both); ends with `contract: N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/local-services.sh

SCHEMATHESIS_VERSION=4.32.5
venv="${XDG_CACHE_HOME:-$HOME/.cache}/agora/schemathesis-$SCHEMATHESIS_VERSION"
if [[ ! -x $venv/bin/st ]]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv" 2>/dev/null || {
        install_debian_package python3-venv python3-venv && rm -rf "$venv" && python3 -m venv "$venv"
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked --bin agora
agora="${CARGO_TARGET_DIR:-target}/debug/agora"

work=$(mktemp -d /tmp/agora-contract.XXXXXX)
db="agora_contract_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
maintenance=$(sed -E 's#^([a-z]+://[^/]+)/[^?]*#\1/postgres#' <<<"$AGORA__DATABASE__URL")
database_url=$(sed -E "s#^([a-z]+://[^/]+)/[^?]*#\1/$db#" <<<"$AGORA__DATABASE__URL")
redis_prefix="agora-contract-$db"
server_pid=""
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    psql "$maintenance" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    if command -v redis-cli >/dev/null; then
        redis-cli -u "$AGORA__REDIS__URL" --scan --pattern "$redis_prefix:*" 2>/dev/null |
            xargs -r redis-cli -u "$AGORA__REDIS__URL" DEL >/dev/null 2>&1 || true
    fi
    [[ -n ${KEEP:-} ]] && cp -r "$work" /tmp/agora-contract-last
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "contract: FAILED: $*" >&2
    echo "contract: 0 passed, 1 failed"
    exit 1
}

psql "$maintenance" -qc "CREATE DATABASE \"$db\"" >/dev/null
port=$(free_port)
base="http://127.0.0.1:$port"
operator_token="contract-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# The run draws many 401s from one address by design (every wrong token it generates):
# its budget is lifted so the run keeps reaching the handlers.
AGORA_ENV=test \
AGORA__DATABASE__URL="$database_url" \
AGORA__REDIS__PREFIX="$redis_prefix" \
AGORA__HTTP__ADDR="127.0.0.1:$port" \
AGORA__OPERATOR__TOKEN="$operator_token" \
AGORA__AUTH__UNAUTHORIZED_PER_ADDRESS=1000000000 \
AGORA__AUTH__SIGN_IN_FAILURES_PER_ACCOUNT=1000000000 \
AGORA__AUTH__SIGN_IN_FAILURES_PER_ADDRESS=1000000000 \
AGORA__LOG__LEVEL=warn \
AGORA__LOG__FORMAT=json \
    "$agora" serve >"$work/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 300); do
    if curl -fsS "$base/ready" >/dev/null 2>&1; then ready=yes; break; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "agora serve exited"; }
    sleep 0.2
done
[[ -n $ready ]] || fail "agora serve did not become ready within 60 s"

# The principals: the operator with a region, a seller with a product, a registered shopper
# with a cart.
call() { curl -fsS -X "$1" "$base$2" -H 'Content-Type: application/json' "${@:4}" -d "$3"; }
post() { call POST "$@"; }
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
call PUT /api/v1/regions/EU '{"name": "EU", "currency": "EUR", "countries": ["DE", "FR"],
    "tax_inclusive": true, "tax_rates": {"default": "0.20"}, "shipping_options": [{"id": "flat",
    "name": "Standard", "carrier": "DHL", "rate": {"type": "flat", "amount": "4.90"},
    "delivery_days": {"min": 2, "max": 4}}]}' -H "Authorization: Bearer $operator_token" >/dev/null
seller_key=$(post /api/v1/sellers '{"name": "Contract Shop", "email": "contract-seller@example.com"}' | json_field api_key)
post /api/v1/products '{"default_locale": "en", "content": {"en": {"title": "Contract mug"}},
    "variants": [{"sku": "CONTRACT-1", "prices": {"EUR": "9.90"}, "stock": 50}]}' \
    -H "Authorization: Bearer $seller_key" >/dev/null
shopper_email="contract-shopper@example.com"
shopper_password="contract-password-1"
shopper_token=$(post /api/v1/shoppers "{\"email\": \"$shopper_email\", \"password\": \"$shopper_password\"}" | json_field token)
post /api/v1/carts '{"region": "EU"}' -H "Authorization: Bearer $shopper_token" >/dev/null

export AGORA_CONTRACT_SELLER_KEY="$seller_key"
export AGORA_CONTRACT_OPERATOR_TOKEN="$operator_token"
export AGORA_CONTRACT_SHOPPER_EMAIL="$shopper_email"
export AGORA_CONTRACT_SHOPPER_PASSWORD="$shopper_password"
status=0
# Bounded by examples per operation (scripts/schemathesis.toml), about two minutes on two
# cores; the timeout only guards against a hang.
timeout "${AGORA_CONTRACT_TIMEOUT_SECS:-900}" \
    "$venv/bin/st" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
    --no-color --report junit --report-dir "$work/report" 2>&1 | tee "$work/run.log" || status=$?
# Junk must never be logged as a fault of the server.
if grep -q '"level":"ERROR"' "$work/server.log"; then
    echo "contract: agora serve logged at ERROR:" >&2
    grep -m 10 '"level":"ERROR"' "$work/server.log" >&2
    status=1
fi
if [[ $status -ne 0 ]]; then
    echo "--- agora serve's warnings and errors ---" >&2
    grep -E '"level":"(WARN|ERROR)"' "$work/server.log" | tail -n 40 >&2 || true
    echo "contract: 0 passed, 1 failed"
    exit 1
fi
echo "contract: 1 passed, 0 failed"
