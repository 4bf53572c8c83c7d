#!/usr/bin/env bash
# The server's instructions per lifecycle, counted by callgrind (valgrind):
# two `bench run --lifecycles` runs of N1 and N2 lifecycles at low
# concurrency, each with the server under callgrind; the difference of their
# totals over N2 - N1 is the cost of one lifecycle (start-up, shut-down and
# the write probes after the load cancel out). Instructions do not depend on
# what else the machine does, so the figure holds within about 1 % from run
# to run. See docs/profiling.md.
#
#   bash scripts/count-instructions.sh [target/release/ivr-auth]
#   N1=100 N2=600 CONCURRENCY=4 bash scripts/count-instructions.sh
#   GENERATOR=target/release/ivr-auth bash scripts/count-instructions.sh /tmp/old/ivr-auth
#
# GENERATOR is the build whose bench drives the server (the counted binary's
# own by default): give two builds the same one to compare the servers
# alone, as the generator's requests cost the server too. An old build's
# server reads `voice_prompts/` from the working directory: run the script
# from that build's checkout.
#
# Prints the instructions per lifecycle, then the functions with the most
# inclusive cost in the N2 run (callgrind_annotate). Needs Debian's valgrind.
set -euo pipefail

bin="$(realpath "${1:-target/release/ivr-auth}")"
generator="$(realpath "${GENERATOR:-$bin}")"
n1="${N1:-100}"
n2="${N2:-600}"
concurrency="${CONCURRENCY:-4}"
[ -x "$bin" ] || { echo "not an executable: $bin (cargo build --release first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }

out="$(mktemp -d)"
# The bench starts the server through this wrapper: `serve` under callgrind,
# anything else (the bench's `tenant create`) as it is.
cat >"$out/server" <<WRAP
#!/bin/sh
if [ "\$1" = serve ]; then
  exec valgrind --tool=callgrind --callgrind-out-file="\$IVR_AUTH_CALLGRIND_OUT" -q "$bin" "\$@"
fi
exec "$bin" "\$@"
WRAP
chmod +x "$out/server"

total() { grep -m1 '^summary:\|^totals:' "$1" | awk '{print $2}'; }

for n in "$n1" "$n2"; do
  IVR_AUTH_CALLGRIND_OUT="$out/callgrind.$n" "$generator" bench run --lifecycles "$n" --concurrency "$concurrency" \
    --healthz-seconds 0 --server-bin "$out/server" --fail-on-error >"$out/bench.$n.txt"
  export IVR_AUTH_CALLGRIND_OUT
done
i1="$(total "$out/callgrind.$n1")"
i2="$(total "$out/callgrind.$n2")"
echo "server instructions: $i1 for $n1 lifecycles, $i2 for $n2"
echo "instructions per lifecycle: $(( (i2 - i1) / (n2 - n1) ))"
# Calls into the allocator, from the call counts callgrind records (`calls=`
# after each `cfn=`; a function's name is given once, in an `fn=` or a `cfn=`
# line, then only its number).
allocations() {
  python3 - "$1" <<'PY'
import re, sys
# jemalloc's entry points (the server's allocator) and glibc's (SQLite's).
ALLOCATORS = {"_rjem_malloc", "_rjem_mallocx", "_rjem_calloc", "_rjem_realloc", "_rjem_rallocx",
              "malloc", "calloc", "realloc"}
names, current, total = {}, None, 0
for line in open(sys.argv[1], errors="replace"):
    if line.startswith(("fn=", "cfn=")):
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
        if m:
            if m.group(2) is not None:
                names[m.group(1)] = m.group(2)
            if line.startswith("cfn="):
                current = names.get(m.group(1))
    elif line.startswith("calls=") and current in ALLOCATORS:
        total += int(line[6:].split()[0])
print(total)
PY
}
a1="$(allocations "$out/callgrind.$n1")"
a2="$(allocations "$out/callgrind.$n2")"
echo "allocations per lifecycle (jemalloc and glibc: malloc, calloc, realloc): $(( (a2 - a1) / (n2 - n1) ))"
echo
echo "top functions by inclusive cost ($n2 lifecycles; $out/callgrind.$n2):"
callgrind_annotate --inclusive=yes "$out/callgrind.$n2" 2>/dev/null \
  | awk '/file:function/ { body = 1; getline; next } body && NF' | sed 's|/rustc/[0-9a-f]*/library/||; s| \[.*\]$||' | head -40
