#!/usr/bin/env bash
# A bounded schemathesis run against /openapi.json of a fresh server on the
# default configuration (SQLite, simulator): the OpenAPI document must say
# what the server does. Installs schemathesis (PyPI) into a venv under
# target/ once; needs no stdin.
#
# Usage: tests/schemathesis.sh [PATH_TO_IVR_AUTH_BINARY] [MAX_EXAMPLES]
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$repo_root/target/debug/ivr-auth}
max_examples=${2:-100}
version=4.32.5
venv=$repo_root/target/schemathesis-venv

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ivr-auth-schemathesis.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

db="sqlite://$tmp/st.db"
key=$("$bin" tenant create schemathesis --database-url "$db" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
# The default configuration; only the port and the database file are chosen here.
env -i PATH="$PATH" IVR_AUTH_DATABASE_URL="$db" IVR_AUTH_LISTEN=127.0.0.1:0 \
  IVR_AUTH_VOICE_PROMPTS_DIR="$repo_root/voice_prompts" "$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 1 300); do
  base=$(sed -n 's/^ivr-auth is listening on //p' "$tmp/server.log" | head -1)
  [[ -n $base ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $base ]] || { echo "the server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }

# From the temporary folder: schemathesis keeps a cache where it runs.
cd "$tmp"
"$venv/bin/st" run "$base/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth \
  --max-examples "$max_examples" --seed 1 --request-timeout 10 --no-color
