#!/usr/bin/env bash
# System calls and context switches per lifecycle, of the server and of the
# generator, counted by `perf stat` (Linux perf, software events and syscall
# tracepoints only: no hardware counters needed). Two `bench run
# --lifecycles` runs of N1 and N2 lifecycles at concurrency 64; the
# difference over N2 - N1 is the cost of one lifecycle. callgrind counts
# instructions in user space only; this counts what the kernel is asked to
# do. Counts move by a few per cent between runs (batching depends on load).
# See docs/profiling.md.
#
#   bash scripts/count-syscalls.sh [target/release/ivr-auth]
#   N1=1000 N2=6000 CONCURRENCY=64 bash scripts/count-syscalls.sh
set -euo pipefail

bin="$(realpath "${1:-target/release/ivr-auth}")"
n1="${N1:-1000}"
n2="${N2:-6000}"
concurrency="${CONCURRENCY:-64}"
[ -x "$bin" ] || { echo "not an executable: $bin (cargo build --release first)" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 2; }

events="task-clock,context-switches,raw_syscalls:sys_enter"
for call in getrandom sched_yield futex epoll_wait write writev sendto recvfrom pwrite64 pread64 fsync fcntl; do
  events="$events,syscalls:sys_enter_$call"
done

out="$(mktemp -d)"
# The bench starts the server through this wrapper: `serve` under perf stat
# (which writes its counts when the server exits on the bench's SIGTERM),
# anything else (the bench's `tenant create`) as it is.
cat >"$out/server" <<WRAP
#!/bin/sh
if [ "\$1" = serve ]; then
  perf stat -x, -o "\$IVR_AUTH_PERF_OUT" -e "$events" "$bin" "\$@" &
  perf=\$!
  trap 'pkill -TERM -P \$perf' TERM INT
  wait \$perf; wait \$perf
  exit 0
fi
exec "$bin" "\$@"
WRAP
chmod +x "$out/server"

for n in "$n1" "$n2"; do
  IVR_AUTH_PERF_OUT="$out/server.$n" perf stat -x, -o "$out/all.$n" -e "$events" \
    "$bin" bench run --lifecycles "$n" --concurrency "$concurrency" --healthz-seconds 0 \
    --server-bin "$out/server" --fail-on-error >"$out/bench.$n.txt"
done
python3 - "$out" "$n1" "$n2" <<'PY'
import sys
out, n1, n2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def counts(path):
    found = {}
    for line in open(path):
        cells = line.strip().split(",")
        if len(cells) > 3 and cells[0][:1].isdigit():
            found[cells[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "all system calls")] = float(cells[0])
    return found
s1, s2 = counts(f"{out}/server.{n1}"), counts(f"{out}/server.{n2}")
a1, a2 = counts(f"{out}/all.{n1}"), counts(f"{out}/all.{n2}")
print(f"per lifecycle ({n2} - {n1} lifecycles)     server  generator")
for name in s2:
    server = (s2[name] - s1.get(name, 0)) / (n2 - n1)
    generator = (a2.get(name, 0) - a1.get(name, 0)) / (n2 - n1) - server
    unit = "  (ms of CPU)" if name == "task-clock" else ""
    print(f"{name:30s} {server:10.2f} {generator:10.2f}{unit}")
PY
grep '^lifecycles:' "$out/bench.$n2.txt"
rm -rf "$out"
