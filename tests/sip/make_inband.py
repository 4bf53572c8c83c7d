#!/usr/bin/env python3
"""Make in-band DTMF pcaps for SIPp's play_pcap_audio: one file per key.

Each file holds a 100 ms dual tone then 100 ms of silence, G.711 mu-law
made by sox, cut into 20 ms RTP packets (payload type 0, 160 bytes, sequence
and timestamp increasing) inside Ethernet/IPv4/UDP frames, as SIPp's pcap
reader expects. SIPp rewrites the addresses and ports when it plays them.

    python3 tests/sip/make_inband.py            # writes tests/sip/inband/*.pcap

Only the standard library and the `sox` binary are needed.
"""

import os
import struct
import subprocess
import sys

# key -> (low Hz, high Hz), ITU-T Q.23
KEYS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
    "star": (941, 1209), "0": (941, 1336), "pound": (941, 1477),
}
TONE_S = 0.1
SILENCE_S = 0.1
PACKET = 160  # 20 ms at 8 kHz, one byte a sample
SSRC = 0x1B0DD7F0
SRC = ("10.0.0.1", 49170)  # rewritten by SIPp when played
DST = ("10.0.0.2", 10000)


def mulaw(low: int, high: int) -> bytes:
    """The tone as sox renders it (both sines mixed to mono, no dither), then
    digital silence (0xFF is mu-law zero; sox's own padding rings a little)."""
    tone = subprocess.run(
        ["sox", "-D", "-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", "-",
         "synth", str(TONE_S), "sine", str(low), "sine", str(high)],
        check=True, capture_output=True).stdout
    return tone + b"\xff" * int(SILENCE_S * 8000)


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP (checksum 0: none) around one RTP packet."""
    udp = struct.pack("!HHHH", SRC[1], DST[1], 8 + len(payload), 0) + payload
    src = bytes(int(p) for p in SRC[0].split("."))
    dst = bytes(int(p) for p in DST[0].split("."))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def pcap(audio: bytes) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n in range(len(audio) // PACKET):
        chunk = audio[n * PACKET:(n + 1) * PACKET]
        rtp = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0x00, 1000 + n,
                          n * PACKET, SSRC) + chunk
        data = frame(rtp)
        micros = n * 20_000
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000,
                               len(data), len(data)))
        out.append(data)
    return b"".join(out)


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.path.join(here, "inband")
    os.makedirs(target, exist_ok=True)
    for key, (low, high) in KEYS.items():
        audio = mulaw(low, high)
        if len(audio) != int((TONE_S + SILENCE_S) * 8000):
            print(f"sox gave {len(audio)} bytes for {key}", file=sys.stderr)
            return 1
        path = os.path.join(target, f"dtmf_inband_{key}.pcap")
        with open(path, "wb") as f:
            f.write(pcap(audio))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
