#!/usr/bin/env bash
# Installs what `ivr-auth prompts render` needs: Open JTalk with its
# dictionary (Japanese), espeak-ng (English), sox (conversion to 8 kHz) and
# the HTS voice "mei" (CC BY 3.0, Nagoya Institute of Technology), taken from
# the pyopenjtalk 0.4.1 source archive on PyPI because Debian packages no
# HTS voice. Idempotent: run it again and it changes nothing. Run as root.
set -euo pipefail

VOICE_DIR=/usr/local/share/ivr-auth
VOICE="$VOICE_DIR/mei_normal.htsvoice"
ARCHIVE_URL=https://files.pythonhosted.org/packages/58/74/ccd31c696f047ba381f9b11a504bf1199756c3f30f3de64e3eeb83e10b4a/pyopenjtalk-0.4.1.tar.gz
ARCHIVE_SHA256=d5ada46f7fc2b52c1c79c273eb9668ff6ad7ab276a8db9d8be119ef93440f0dc
MEMBER=pyopenjtalk-0.4.1/pyopenjtalk/htsvoice

packages=(open-jtalk open-jtalk-mecab-naist-jdic espeak-ng sox libsox-fmt-mp3 curl ca-certificates)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ -s "$VOICE" ]; then
    echo "voice present: $VOICE"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    curl -fsSL --retry 3 -o "$work/pyopenjtalk.tar.gz" "$ARCHIVE_URL"
    echo "$ARCHIVE_SHA256  $work/pyopenjtalk.tar.gz" | sha256sum -c --quiet -
    tar -xzf "$work/pyopenjtalk.tar.gz" -C "$work" "$MEMBER"
    install -d "$VOICE_DIR"
    install -m 0644 "$work/$MEMBER/mei_normal.htsvoice" "$VOICE"
    install -m 0644 "$work/$MEMBER/LICENSE_mei_normal.htsvoice" "$VOICE_DIR/LICENSE_mei_normal.htsvoice"
    echo "voice installed: $VOICE"
fi
echo "text-to-speech ready: open_jtalk, espeak-ng, sox, $VOICE"
