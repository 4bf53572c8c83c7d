#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Rust unit, property and
# integration tests (real server, real HTTP, on SQLite and on PostgreSQL),
# then the examples against a live server. Installs nothing it does not need;
# safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

echo "== PostgreSQL for the tests (started or installed if missing)"
bash tests/ensure-postgres.sh

echo "== SIPp and the speech engines for the SIP trunk tests (installed if missing)"
bash tests/ensure-sip-tools.sh

echo "== cargo test (integration tests on SQLite; store contract, multi-node and outage tests on PostgreSQL)"
cargo test --all-targets 2>&1

echo "== integration tests again, on PostgreSQL (a schema per test)"
IVR_AUTH_TEST_BACKEND=postgres cargo test --test api -- --skip store:: --skip cluster:: --skip outage:: 2>&1

echo "== examples against a live server"
cargo build --quiet
bash examples/run-against-live-server.sh target/debug/ivr-auth

echo "== the OpenAPI document against the server: a bounded schemathesis run (installs it from PyPI once)"
bash tests/schemathesis.sh target/debug/ivr-auth 100

echo "== browser tests (headless Chromium: /demo and /dev/phone)"
bash tests/browser/run.sh target/debug/ivr-auth

echo "== load generator smoke run (checks it works and errs 0; no timing asserted)"
bench_json="$(mktemp)"
target/debug/ivr-auth bench run --duration 3 --warmup 0.5 --concurrency 8 --healthz-seconds 0.5 \
  --inbound-share 0.3 --wrong-share 0.2 --fail-on-error --json "$bench_json"
# The report names the CPU of the server and of the generator, and the commits, per lifecycle,
# and the server's CPU per trivial request (the floor of an exchange).
python3 - "$bench_json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keys = ("server_cpu_per_lifecycle_us", "generator_cpu_per_lifecycle_us", "commits_per_lifecycle_under_load",
        "server_cpu_per_healthz_us")
for k in keys:
    assert isinstance(r.get(k), (int, float)) and r[k] > 0, f"{k}: {r.get(k)!r}"
print("per lifecycle: server %.0f µs, generator %.0f µs, %.2f commits; per /healthz: server %.1f µs" % tuple(
    r[k] for k in keys))
PY
rm -f "$bench_json"

echo "== load generator smoke run with 1000 callers who take their time: every lifecycle ends, the run reports (bounded)"
timeout 120 target/debug/ivr-auth bench run --concurrency 1000 --think-ms 500 --max-connections 1000 --duration 3 \
  --warmup 1 --healthz-seconds 0.5 --fail-on-error

echo "== burst smoke run: two paced accounts, no request lost or called twice (no timing asserted)"
target/debug/ivr-auth bench burst --registrations 60 --rates 20,10 --fail-on-error

echo "== SIP trunk smoke run: 20 SIPp calls held together on one node, every one verified (no timing asserted)"
target/debug/ivr-auth bench sip --calls 20 --hold 3 --fail-unverified

echo "== load generator smoke run on PostgreSQL, three servers (a fresh schema; no timing asserted)"
pg="${IVR_AUTH_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
# Named like the integration tests' schemas (tests/api/stale.rs): this boot, this shell's pid. Dropped
# on the way out, also when the run fails; if this shell is killed, the next test run drops it.
schema="ivrt_$(tr -d -- - </proc/sys/kernel/random/boot_id | cut -c1-8)_$$_bench"
drop_bench_schema() { PGOPTIONS="-c client_min_messages=warning" psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE"; }
trap drop_bench_schema EXIT
PGOPTIONS="-c client_min_messages=warning" psql "$pg" -qc "CREATE SCHEMA $schema"
target/debug/ivr-auth bench run --database-url "$pg?options=-csearch_path%3D$schema" --nodes 3 \
  --duration 3 --warmup 0.5 --concurrency 8 --healthz-seconds 0.5 --inbound-share 0.3 --wrong-share 0.2 --fail-on-error

echo "== all tests passed"
