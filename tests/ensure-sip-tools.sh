#!/usr/bin/env bash
# What the SIP trunk tests and `prompts render` need: SIPp (Debian's
# sip-tester; it plays RTP from pcap files through a raw socket, so the
# tests that send keys run as root) and the speech engines with the
# Japanese voice (scripts/install-tts.sh). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v sipp >/dev/null 2>&1; then
  echo "== installing SIPp (Debian's sip-tester)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q sip-tester >/dev/null
fi
as_root bash scripts/install-tts.sh >/dev/null
echo "SIP test tools ready: $(command -v sipp), open_jtalk, espeak-ng, sox"
