#!/usr/bin/env bash
# End-to-end browser tests of the dev phone (/dev/phone), the demo site
# (/demo) and the console (/console): Debian's Chromium, driven by playwright-core under node:test,
# against a real `ivr-auth serve` on a free port with its own database.
#
#   bash tests/browser/run.sh target/debug/ivr-auth
#   bash tests/browser/run.sh target/debug/ivr-auth tests/channels.test.js   # only these files
#
# Installs what is missing (Chromium and a Japanese font from apt, the npm
# packages from package-lock.json), and nothing when all is there, so it is
# safe to re-run. Screenshots land in tests/browser/screenshots/.
set -euo pipefail

usage="usage: $0 <path-to-ivr-auth-binary> [test file, relative to tests/browser …]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$bin" ] || { echo "not an executable file: $1" >&2; exit 2; }
shift

here="$(cd "$(dirname "$0")" && pwd)"
export CHROMIUM_PATH=/usr/bin/chromium
export IVR_AUTH_INBOUND_NUMBER=+81312345678
# Prompts take no time here; the pacing people need is tested in the Rust suite.
export IVR_AUTH_SIMULATOR_PACING=false
# The console's operator sign-in (tests/console.test.js).
export IVR_AUTH_OPERATOR_TOKEN=browser-tests-operator-token-0123456789

# ---- Chromium, and fonts for Latin and Japanese text (the pages load no
# web fonts, so the screenshots show what these render).
packages=()
for pkg in chromium fonts-dejavu-core fonts-noto-cjk; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || packages+=("$pkg")
done
if [ ${#packages[@]} -gt 0 ]; then
  echo "== apt-get install ${packages[*]}"
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq </dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" </dev/null >/dev/null
fi

# ---- npm packages, reinstalled only when package-lock.json changed.
cd "$here"
stamp=node_modules/.lock-sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== npm ci"
  # playwright-core never downloads a browser; the variable makes sure of it.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts </dev/null
  echo "$want" >"$stamp"
fi

# ---- The server, on a free port, with a database of its own.
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    # Graceful stop is quick; do not hang on it.
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  node -e 'const s = require("net").createServer();
           s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

start_server() {
  port="$(free_port)"
  IVR_AUTH_LISTEN="127.0.0.1:$port" \
  IVR_AUTH_DATABASE_URL="sqlite://$tmp/ivr.db" \
  IVR_AUTH_LOG_FORMAT=text \
    "$bin" serve >"$tmp/server.log" 2>&1 </dev/null &
  server_pid=$!
  # Ready within 30 s, or give up.
  for _ in $(seq 300); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Another process may take the port between choosing and binding it: try again.
started=no
for _ in 1 2 3; do
  if start_server; then started=yes; break; fi
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
done
if [ "$started" != yes ]; then
  echo "ivr-auth did not become ready; its log:" >&2
  tail -n 50 "$tmp/server.log" >&2
  exit 1
fi
export IVR_AUTH_BASE_URL="http://127.0.0.1:$port"
# For the console tests: the CLI on the server's database (tenants, sign-in links).
export IVR_AUTH_BIN="$bin"
export IVR_AUTH_TEST_DATABASE_URL="sqlite://$tmp/ivr.db"
echo "== ivr-auth serving on $IVR_AUTH_BASE_URL"

# ---- The tests, one file at a time: they share the server's call list.
status=0
if [ $# -gt 0 ]; then files=("$@"); else files=(tests/*.test.js); fi
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" </dev/null || status=$?
if [ "$status" -ne 0 ]; then
  echo "== browser tests failed; the server's last log lines:" >&2
  tail -n 40 "$tmp/server.log" >&2
fi
exit "$status"
