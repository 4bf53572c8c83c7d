#!/usr/bin/env python3
"""Self-test RTP receiver: prints the keys SIPp sent to it.

    rtp_sink.py PORT SECONDS

Listens on 127.0.0.1:PORT, then prints one line: the keys read from RFC 2833
events (PT 101: one key per new RTP timestamp) and from in-band mu-law tones
(PT 0: Goertzel per 20 ms packet, one key per run of tone packets), and the
source addresses seen. It checks that the scenarios send what they claim.
"""

import math
import socket
import struct
import sys
import time

EVENTS = "0123456789*#"
LOW, HIGH = (697, 770, 852, 941), (1209, 1336, 1477)
PAD = ["123", "456", "789", "*0#"]


def ulaw(b: int) -> int:
    b = ~b & 0xFF
    v = (((b & 0x0F) << 3) + 0x84) << ((b >> 4) & 7)
    return -(v - 0x84) if b & 0x80 else v - 0x84


def power(x, f):
    k = 2 * math.cos(2 * math.pi * f / 8000)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def tone_key(payload: bytes):
    x = [ulaw(b) for b in payload]
    if max(abs(v) for v in x) < 1000:
        return None
    lo = max(range(4), key=lambda i: power(x, LOW[i]))
    hi = max(range(3), key=lambda i: power(x, HIGH[i]))
    return PAD[lo][hi]


def main() -> int:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.2)
    end = time.time() + seconds
    keys, seen_events, last_tone, sources = [], set(), None, set()
    while time.time() < end:
        try:
            data, src = sock.recvfrom(2048)
        except socket.timeout:
            continue
        sources.add(f"{src[0]}:{src[1]}")
        pt = data[1] & 0x7F
        ts, ssrc = struct.unpack_from("!II", data, 4)
        if pt == 101:
            if (ssrc, ts) not in seen_events:
                seen_events.add((ssrc, ts))
                keys.append(EVENTS[data[12]])
        elif pt == 0:
            key = tone_key(data[12:])
            if key and key != last_tone:
                keys.append(key)
            last_tone = key
    print(f"keys={''.join(keys)} sources={','.join(sorted(sources))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
