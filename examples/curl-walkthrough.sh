#!/usr/bin/env bash
# One outbound phone authentication, end to end, with nothing but curl.
#
# Plays both sides against a server running the `simulator` provider:
#   * the web site: registers a request, shows the code, polls the result;
#   * the user's phone: answers the simulated call and types the code.
#
# Usage:
#   API_KEY=ivr_... [BASE_URL=http://127.0.0.1:8080] examples/curl-walkthrough.sh
#
# Exits 0 only if the request ends `verified`.
# Needs curl and python3 (used only to read JSON).
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
BASE_URL="${BASE_URL%/}"
API_KEY="${API_KEY:-}"

# The number the site has on file for the user, in Japanese national format;
# the server stores it as E.164, which is what the simulator lists calls by.
PHONE_NATIONAL="090-1234-5678"
PHONE_E164_URLENCODED="%2B819012345678"   # "+" must be escaped in a query string
TIMEOUT_SECONDS=30

die() {
  echo "curl-walkthrough: error: $*" >&2
  exit 1
}

[[ -n $API_KEY ]] || die "API_KEY is not set (create a tenant with: cargo run -q -- tenant create NAME)"

# http AUTH METHOD PATH [JSON_BODY]
# Prints the response body. Dies with the server's answer on anything but 2xx,
# so that every later step can assume it got the object it asked for.
# AUTH is "site" (send the tenant's API key) or "phone" (the simulator's
# unauthenticated API; the key is not sent where it is not needed).
http() {
  local auth=$1 method=$2 path=$3 body=${4-}
  local args=(--silent --show-error --max-time 10 -X "$method" -w '\n%{http_code}')
  if [[ $auth == site ]]; then
    args+=(-H "Authorization: Bearer $API_KEY")
  fi
  if [[ -n $body ]]; then
    args+=(-H 'Content-Type: application/json' --data "$body")
  fi

  local out status
  out=$(curl "${args[@]}" "$BASE_URL$path") || die "$method $path: cannot reach $BASE_URL"
  # -w appended the status code on its own last line.
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $status == 2?? ]] || die "$method $path answered HTTP $status: $out"
  printf '%s\n' "$out"
}

# field NAME  (JSON object on stdin) -> that top-level field, "" when null.
field() {
  python3 -c '
import json, sys
value = json.load(sys.stdin).get(sys.argv[1])
print("" if value is None else value)
' "$1"
}

# call_for REQUEST_ID  (a /simulator/calls listing on stdin)
# -> "SID STATE AWAITING_DIGITS" of the newest call for that request, or nothing.
# Other requests may be calling the same number, so match on request_id.
call_for() {
  python3 -c '
import json, sys
for call in json.load(sys.stdin)["calls"]:  # newest first
    if call.get("request_id") == sys.argv[1]:
        print(call["sid"], call["state"], "true" if call["awaiting_digits"] else "false")
        break
' "$1"
}

# phone_call REQUEST_ID -> "SID STATE AWAITING_DIGITS" (see call_for).
phone_call() {
  http phone GET "/simulator/calls?to=$PHONE_E164_URLENCODED" | call_for "$1"
}

# --- 1. The site registers the request ------------------------------------
echo "==> Registering an outbound request for $PHONE_NATIONAL at $BASE_URL"
created=$(http site POST /v1/auth-requests \
  "{\"phone_number\": \"$PHONE_NATIONAL\", \"user_id\": \"curl-walkthrough\"}")
id=$(field id <<<"$created")
code=$(field code <<<"$created")
[[ -n $id && -n $code ]] || die "registration answer lacks id or code: $created"
echo "    id:   $id"
echo "    code: $code   (the site shows this on its page; it is returned only once)"

# --- 2. The phone rings -----------------------------------------------------
echo "==> Waiting for the simulated call to ring"
deadline=$((SECONDS + TIMEOUT_SECONDS))
while :; do
  call=$(phone_call "$id")
  read -r sid state awaiting <<<"$call"
  [[ $state == ringing ]] && break
  if [[ -n $state ]]; then
    die "call $sid for request $id is '$state', expected it to ring"
  fi
  ((SECONDS < deadline)) || die "no ringing call for request $id within ${TIMEOUT_SECONDS}s"
  sleep 0.5
done
echo "    call $sid is ringing"

# --- 3. The user answers and listens to the prompt --------------------------
echo "==> Answering"
http phone POST "/simulator/calls/$sid/answer" >/dev/null

# The guidance prompt plays first; keys pressed before the Gather starts
# would be lost, so wait until the call is actually listening for digits.
echo "==> Waiting for the prompt to ask for the code"
deadline=$((SECONDS + TIMEOUT_SECONDS))
while :; do
  call=$(phone_call "$id")
  read -r _ state awaiting <<<"$call"
  [[ $awaiting == true ]] && break
  case $state in
    ringing | in-progress) ;; # the answer may not have been processed yet
    *) die "call $sid ended ('${state:-gone}') before asking for the code" ;;
  esac
  ((SECONDS < deadline)) || die "call $sid did not ask for the code within ${TIMEOUT_SECONDS}s"
  sleep 0.5
done

# --- 4. The user types the code shown on the web page -----------------------
echo "==> Typing $code on the keypad"
http phone POST "/simulator/calls/$sid/digits" "{\"digits\": \"$code\"}" >/dev/null

# --- 5. The site polls the result API ---------------------------------------
echo "==> Polling the result"
deadline=$((SECONDS + TIMEOUT_SECONDS))
while :; do
  result=$(http site GET "/v1/auth-requests/$id")
  status=$(field status <<<"$result")
  case $status in
    verified | failed | expired | canceled) break ;;
  esac
  ((SECONDS < deadline)) || die "request $id still '$status' after ${TIMEOUT_SECONDS}s"
  sleep 1
done

python3 -m json.tool <<<"$result"
if [[ $status != verified ]]; then
  die "request $id ended '$status' (failure_reason: $(field failure_reason <<<"$result"))"
fi
echo "==> OK: request $id is verified"
