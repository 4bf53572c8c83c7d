#!/usr/bin/env bash
# Makes sure the PostgreSQL server the tests use answers on 127.0.0.1:5432
# (IVR_AUTH_TEST_PG_URL overrides the URL). Starts the local cluster if it is
# down, installs Debian's postgresql if there is none (as root or with sudo -n),
# and drops test schemas that killed test runs left behind. Idempotent.
set -euo pipefail

url="${IVR_AUTH_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "== installing PostgreSQL (Debian's postgresql package)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
if ! ready; then
  echo "== starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

# The tests connect as postgres to database "test" (trust auth on this machine).
if ! psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  as_root su postgres -c "createdb test" 2>/dev/null || true
fi
psql "$url" -Atqc 'SELECT 1' >/dev/null || { echo "cannot connect to $url" >&2; exit 1; }

# Schemas that earlier runs left behind are dropped by the tests themselves
# (tests/api/stale.rs): only those of dead processes or old ones, never the
# schema of a run going on beside this one.
echo "== PostgreSQL ready at ${url%%\?*}"
