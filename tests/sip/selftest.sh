#!/usr/bin/env bash
# Self-test of tests/sip/scenarios: each scenario runs SIPp-against-SIPp on
# loopback with a throwaway peer from tests/sip/selftest/, and where keys are
# sent as RTP a small receiver (selftest/rtp_sink.py) checks which arrived.
# Prints one PASS/FAIL line per case; exits 1 if any failed. Logs stay in the
# printed work directory. Usage: tests/sip/selftest.sh [case-name-filter]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SC=$HERE/scenarios
ST=$HERE/selftest
FILTER=${1:-}
WORK=$(mktemp -d /tmp/sipp-selftest.XXXXXX)
BASE=$((20000 + (RANDOM % 400) * 100))
PASS=0
FAIL=0
SIPP_COMMON=(-m 1 -nostdin -trace_err -trace_msg -timeout 30s -timeout_error)

expand() { python3 "$HERE/expand.py" "$@"; }

# run_case NAME EXPECT_KEYS SERVER_RC CLIENT_RC  (an exit code, "fail" or "any")
#   uses: SRV_XML SRV_ARGS CLI_XML CLI_ARGS (set by the caller), SINK=1 to listen
run_case() {
  local name=$1 expect=$2 want_srv=$3 want_cli=$4
  [[ -n $FILTER && $name != *$FILTER* ]] && { CHECK=""; return; }
  local d=$WORK/$name sp=$BASE
  BASE=$((BASE + 100))
  mkdir -p "$d"
  local sink_pid=""
  if [[ -n $expect ]]; then
    python3 "$ST/rtp_sink.py" $((sp + 30)) 12 >"$d/sink.out" 2>&1 &
    sink_pid=$!
  fi
  (cd "$d" && exec timeout 60 sipp -sf "$SRV_XML" "${SIPP_COMMON[@]}" \
      -i 127.0.0.1 -p $sp -mi 127.0.0.1 -mp $((sp + 10)) "${SRV_ARGS[@]}" \
      >server.out 2>&1) &
  local srv_pid=$!
  sleep 0.5
  (cd "$d" && exec timeout 60 sipp -sf "$CLI_XML" "${SIPP_COMMON[@]}" -l 1 \
      -mi 127.0.0.1 -mp $((sp + 20)) "${CLI_ARGS[@]}" >client.out 2>&1)
  local cli_rc=$?
  wait $srv_pid
  local srv_rc=$?
  local keys=""
  if [[ -n $sink_pid ]]; then
    wait $sink_pid
    keys=$(sed -n 's/^keys=\([^ ]*\) .*/\1/p' "$d/sink.out")
  fi
  local ok=1
  [[ $want_srv == any || $srv_rc == "$want_srv" || ($want_srv == fail && $srv_rc != 0) ]] || ok=0
  [[ $cli_rc == "$want_cli" || ($want_cli == fail && $cli_rc != 0) ]] || ok=0
  [[ -z $expect || $keys == "$expect" ]] || ok=0
  local extra=""
  [[ -n $expect ]] && extra=" keys=$keys (want $expect) $(sed -n 's/.*\(sources=.*\)/\1/p' "$d/sink.out")"
  if [[ -n ${CHECK:-} ]]; then
    if grep -q -- "$CHECK" "$d"/*messages.log; then extra+=" saw '$CHECK'"; else ok=0; extra+=" missing '$CHECK'"; fi
  fi
  if ((ok)); then PASS=$((PASS + 1)); echo "PASS $name (server rc=$srv_rc client rc=$cli_rc)$extra"
  else FAIL=$((FAIL + 1)); echo "FAIL $name (server rc=$srv_rc want $want_srv, client rc=$cli_rc want $want_cli)$extra  logs: $d"; fi
  CHECK=""
}

# An inbound case: the scenario is the client, selftest/uas_answer.xml the server.
inbound() { # name digits dtmf uas_hangup_ms [expand args for the client...]
  local name=$1 digits=$2 dtmf=$3 hang=$4; shift 4
  [[ -n $FILTER && $name != *$FILTER* ]] && { BASE=$((BASE + 100)); return; }
  local d=$WORK/$name; mkdir -p "$d"
  expand "$ST/uas_answer.xml" "$d/peer.xml" --set hangup_after_ms=$hang --set sink_port=$((BASE + 30))
  expand "$SC/inbound.xml" "$d/scenario.xml" --digits "$digits" --dtmf "$dtmf" \
    --set greeting_ms=500 "$@"
  SRV_XML=$d/peer.xml; SRV_ARGS=(${TRANSPORT:-})
  CLI_XML=$d/scenario.xml
  CLI_ARGS=(${TRANSPORT:-} -i 127.0.0.1 -p $((BASE + 1)) -key caller 0312345678 -key called 5000 127.0.0.1:$BASE)
}

inbound rfc2833_server_bye "15 55" rfc2833 3000 --gap-ms 200 --group-pause-ms 800 --set bye_wait_ms=8000
run_case rfc2833_server_bye 1555 0 0

inbound rfc2833_anonymous_client_bye "2#" rfc2833 20000 --set bye_wait_ms=1000 \
  --set bye_ontimeout='ontimeout="client_bye"' --set 'from="Anonymous" <sip:anonymous@anonymous.invalid>' \
  --set "pai=P-Asserted-Identity: <sip:[caller]@[local_ip]>
      Privacy: id"
CHECK="P-Asserted-Identity: <sip:0312345678@127.0.0.1>"
run_case rfc2833_anonymous_client_bye "2#" 0 0

# Over TCP the peer's own exit status is not checked: whichever SIPp exits
# first closes the connection, and SIPp fails a call still open on a closed
# connection (the peer lingers 500 ms so that it is the peer, not the caller).
TRANSPORT="-t t1" inbound rfc2833_tcp "907" rfc2833 3000
run_case rfc2833_tcp 907 any 0

inbound info_dtmf_relay "1234" info 3000
CHECK="Signal=4"
run_case info_dtmf_relay "" 0 0

inbound info_application_dtmf "90" info-dtmf 3000
CHECK="Content-Type: application/dtmf[^-]"
run_case info_application_dtmf "" 0 0

inbound inband "0123456789*#" inband 8000 --gap-ms 100
run_case inband "0123456789*#" 0 0

inbound no_renumber "12" rfc2833 3000 --no-renumber
run_case no_renumber 12 0 0

# The other inbound scenarios against their own peers.
one() { # name server_xml client_xml [client sipp args...]
  local name=$1 srv=$2 cli=$3; shift 3
  local d=$WORK/$name; mkdir -p "$d"
  expand "$srv" "$d/peer.xml" --set hangup_after_ms=10000
  expand "$cli" "$d/scenario.xml"
  SRV_XML=$d/peer.xml; SRV_ARGS=()
  CLI_XML=$d/scenario.xml
  CLI_ARGS=(-key caller 0312345678 -key called 5000 "$@" 127.0.0.1:$BASE)
}
one bye_early "$ST/uas_answer.xml" "$SC/inbound_bye_early.xml" -i 127.0.0.1 -p $((BASE + 1))
run_case bye_early "" 0 0
one cancel "$ST/uas_ring.xml" "$SC/inbound_cancel.xml" -i 127.0.0.1 -p $((BASE + 1))
run_case cancel "" 0 0
one forbidden "$ST/uas_forbid.xml" "$SC/inbound_forbidden.xml" -i 127.0.0.2 -p $((BASE + 1))
CHECK="Via: SIP/2.0/UDP 127.0.0.2"
run_case forbidden "" 0 0

# Outbound: the scenario is the server (the phone), a selftest UAC the engine.
outbound() { # name scenario peer digits peer_hangup_ms [client sipp args...]
  local name=$1 scen=$2 peer=$3 digits=$4 hang=$5; shift 5
  local d=$WORK/$name; mkdir -p "$d"
  expand "$SC/$scen" "$d/scenario.xml" --digits "$digits" --set greeting_ms=500 --set bye_wait_ms=8000
  expand "$ST/$peer" "$d/peer.xml" --set hangup_after_ms=$hang --set sink_port=$((BASE + 30))
  SRV_XML=$d/scenario.xml; SRV_ARGS=(-key callee 0901234567 -key user trunkuser -key pass s3cret)
  CLI_XML=$d/peer.xml
  CLI_ARGS=(-i 127.0.0.1 -p $((BASE + 1)) -key callee 0901234567 "$@" 127.0.0.1:$BASE)
}
outbound outbound_answer outbound_answer.xml uac_answered.xml "4321" 3500
run_case outbound_answer 4321 0 0
outbound outbound_busy outbound_busy.xml uac_busy.xml "" 0
run_case outbound_busy "" 0 0
outbound outbound_no_answer outbound_no_answer.xml uac_cancel.xml "" 0
run_case outbound_no_answer "" 0 0
outbound outbound_auth outbound_auth.xml uac_auth.xml "86" 3000 -au trunkuser -ap s3cret
CHECK="Authorization: Digest"
run_case outbound_auth 86 0 0
outbound outbound_auth_wrong_password outbound_auth.xml uac_auth.xml "86" 3000 -au trunkuser -ap wrong
run_case outbound_auth_wrong_password "" fail fail

echo "selftest: $PASS passed, $FAIL failed (logs in $WORK)"
((FAIL == 0))
