#!/usr/bin/env python3
"""Expand a SIPp scenario template from tests/sip/scenarios into a runnable file.

The same expansion as tests/api/sipp.rs, for the self-test and for running a
scenario by hand (see tests/sip/README.md):

  @@name@@ / @@name:default@@   replaced by --set name=value, else the default;
                                a placeholder with neither is an error.
  @@DIGITS@@                    the digit plan: --digits "1234 5678" (groups
                                split by spaces, --group-pause-ms between
                                groups, --gap-ms after each key) sent as
                                --dtmf rfc2833 | inband | info | info-dtmf.

For rfc2833 and inband each key occurrence gets its own copy of the pcap in
the output directory, renumbered so that sequence numbers keep rising and every
key press is a new event (own RTP timestamp) under one SSRC: the stock
dtmf_2833_N.pcap files all restart at fixed numbers, so "55" would otherwise
look like one key sent twice. --no-renumber plays the stock files.
"""

import argparse
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RFC2833_DIR = "/usr/share/sip-tester"
KEY_NAMES = {"*": "star", "#": "pound"}
SSRC = 0x51BB1E57
RTP_OFFSET = 14 + 20 + 8  # Ethernet + IPv4 + UDP


def stock_pcap(dtmf: str, key: str) -> str:
    name = KEY_NAMES.get(key, key)
    if dtmf == "rfc2833":
        return os.path.join(RFC2833_DIR, f"dtmf_2833_{name}.pcap")
    return os.path.join(HERE, "inband", f"dtmf_inband_{name}.pcap")


class Renumber:
    """Rewrites RTP sequence numbers, timestamps and SSRC across key presses."""

    def __init__(self) -> None:
        self.seq = 1
        self.ts = 8000

    def copy(self, src: str, dst: str) -> int:
        """Writes the renumbered copy; returns how long it plays, in ms."""
        data = bytearray(open(src, "rb").read())
        off, first_ts, first_time, last_time = 24, None, None, 0.0
        while off < len(data):
            sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
            rtp = off + 16 + RTP_OFFSET
            ts = struct.unpack_from("!I", data, rtp + 4)[0]
            first_ts = ts if first_ts is None else first_ts
            when = sec + usec / 1e6
            first_time = when if first_time is None else first_time
            last_time = when
            struct.pack_into("!HII", data, rtp + 2, self.seq & 0xFFFF,
                             (self.ts + ts - first_ts) & 0xFFFFFFFF, SSRC)
            self.seq += 1
            off += 16 + incl
        with open(dst, "wb") as f:
            f.write(data)
        return int(round((last_time - first_time) * 1000)) + 20

    def advance(self, ms: int) -> None:
        self.ts += ms * 8


def pcap_span_ms(path: str) -> int:
    data = open(path, "rb").read()
    off, times = 24, []
    while off < len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        times.append(sec + usec / 1e6)
        off += 16 + incl
    return int(round((times[-1] - times[0]) * 1000)) + 20


def info_step(key: str, dtmf: str) -> str:
    if dtmf == "info":
        ctype, body = "application/dtmf-relay", f"Signal={key}\nDuration=160"
    else:
        ctype, body = "application/dtmf", key
    # [last_From:]/[last_To:] are the INVITE's 200 (or the previous INFO's):
    # our From and the server's To with its tag.
    return f"""<send><![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] INFO
      Contact: <sip:[caller]@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: {ctype}
      Content-Length: [len]

      {body}

    ]]></send>
  <recv response="200" crlf="true"/>"""


def digits(plan: str, dtmf: str, gap_ms: int, group_pause_ms: int,
           outdir: str, renumber: bool) -> str:
    steps, renum, n = [], Renumber(), 0
    for g, group in enumerate(plan.split()):
        if g:
            steps.append(f'<pause milliseconds="{group_pause_ms}"/>')
            renum.advance(group_pause_ms)
        for key in group:
            if key not in "0123456789*#":
                raise SystemExit(f"not a key: {key!r}")
            if dtmf in ("info", "info-dtmf"):
                steps.append(info_step(key, dtmf))
                steps.append(f'<pause milliseconds="{gap_ms}"/>')
                continue
            src = stock_pcap(dtmf, key)
            if renumber:
                n += 1
                path = os.path.join(outdir, f"key{n:02}_{KEY_NAMES.get(key, key)}.pcap")
                span = renum.copy(src, path)
                renum.advance(span + gap_ms)
            else:
                path, span = src, pcap_span_ms(src)
            # A new play_pcap_audio cancels the one still playing: pause
            # for the whole file, then the gap.
            steps.append(f'<nop><action><exec play_pcap_audio="{path}"/></action></nop>')
            steps.append(f'<pause milliseconds="{span + gap_ms}"/>')
    return "\n  ".join(steps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("template")
    ap.add_argument("output")
    ap.add_argument("--digits", default="")
    ap.add_argument("--dtmf", default="rfc2833",
                    choices=["rfc2833", "inband", "info", "info-dtmf"])
    ap.add_argument("--gap-ms", type=int, default=300)
    ap.add_argument("--group-pause-ms", type=int, default=2000)
    ap.add_argument("--no-renumber", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    a = ap.parse_args()

    values = dict(s.split("=", 1) for s in a.set)
    text = open(a.template).read()
    outdir = os.path.dirname(os.path.abspath(a.output))
    if "@@DIGITS@@" in text:
        text = text.replace("@@DIGITS@@", digits(
            a.digits, a.dtmf, a.gap_ms, a.group_pause_ms, outdir, not a.no_renumber))

    missing = []

    def fill(m: re.Match) -> str:
        name, default = m.group(1), m.group(3)
        if name in values:
            return values[name]
        if default is None:
            missing.append(name)
            return m.group(0)
        return default

    text = re.sub(r"@@([A-Za-z_]+)(:(.*?))?@@", fill, text)
    if missing:
        print(f"{a.template}: no value for {', '.join(missing)}", file=sys.stderr)
        return 2
    with open(a.output, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
