#!/usr/bin/env bash
# Runs every example against a fresh, throw-away ivr-auth server (what CI runs).
#
# Usage: examples/run-against-live-server.sh [PATH_TO_IVR_AUTH_BINARY]
#   default binary: target/debug/ivr-auth under the repository root.
#
# Builds nothing. Creates a temporary SQLite database and tenant, starts
# `ivr-auth serve` with the simulator provider on a free local port, runs
# curl-walkthrough.sh and python/client.py (polling, then with --callback)
# against it, and stops the server on the way out. Exits non-zero if any
# example fails. Needs no stdin.
set -euo pipefail

examples_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$examples_dir")
bin=${1:-$repo_root/target/debug/ivr-auth}
READY_TIMEOUT_SECONDS=30

die() {
  echo "run-against-live-server: error: $*" >&2
  exit 1
}

[[ -x $bin ]] || die "no ivr-auth binary at $bin (build it first, or pass its path)"
command -v curl >/dev/null || die "curl is not installed"
command -v python3 >/dev/null || die "python3 is not installed"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ivr-auth-examples.XXXXXX")
server_pid=""
cleanup() {
  # Stop only the server this script started.
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

show_server_log() {
  echo "---- last lines of the server log ----" >&2
  tail -n 40 "$tmp/server.log" >&2 || true
  echo "--------------------------------------" >&2
}

# Pin the settings the examples depend on, so that IVR_AUTH_* variables
# already in the environment (e.g. a developer's twilio setup) cannot leak in.
export IVR_AUTH_DATABASE_URL="sqlite://$tmp/ivr.db"
export IVR_AUTH_PROVIDER=simulator
export IVR_AUTH_ALLOW_PRIVATE_CALLBACKS=true   # client.py --callback listens on 127.0.0.1
unset IVR_AUTH_PUBLIC_URL IVR_AUTH_INBOUND_NUMBER IVR_AUTH_DEFAULT_REGION

echo "==> Creating a tenant in $IVR_AUTH_DATABASE_URL"
tenant=$("$bin" tenant create examples </dev/null) || die "ivr-auth tenant create failed"
read -r API_KEY CALLBACK_SECRET < <(python3 -c '
import json, sys
t = json.loads(sys.argv[1])
print(t["api_key"], t["callback_secret"])
' "$tenant")
export API_KEY CALLBACK_SECRET

# Let the OS pick a free port. Another process could take it before the
# server binds; that shows up as the server exiting, reported below.
port=$(python3 -c '
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
')
export BASE_URL="http://127.0.0.1:$port"

echo "==> Starting ivr-auth serve on $BASE_URL (log: $tmp/server.log)"
IVR_AUTH_LISTEN="127.0.0.1:$port" "$bin" serve </dev/null >"$tmp/server.log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
until curl --silent --fail --max-time 2 "$BASE_URL/readyz" >/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    show_server_log
    die "the server exited before becoming ready"
  fi
  if ((SECONDS >= deadline)); then
    show_server_log
    die "the server was not ready within ${READY_TIMEOUT_SECONDS}s"
  fi
  sleep 0.2
done
echo "    ready"

# Run every example even if one fails, so one CI run reports them all.
failed=()
run_example() {
  local name=$1
  shift
  echo
  echo "######## $name"
  if "$@" </dev/null; then
    echo "######## $name: PASS"
  else
    echo "######## $name: FAIL (exit $?)"
    failed+=("$name")
  fi
}

run_example curl-walkthrough.sh bash "$examples_dir/curl-walkthrough.sh"
run_example python/client.py python3 "$examples_dir/python/client.py"
run_example "python/client.py --callback" python3 "$examples_dir/python/client.py" --callback

echo
if ((${#failed[@]})); then
  show_server_log
  die "failed: ${failed[*]}"
fi
echo "==> All examples passed"
