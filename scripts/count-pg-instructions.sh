#!/usr/bin/env bash
# PostgreSQL's own instructions per lifecycle, counted by callgrind: a private
# PostgreSQL cluster (initdb in a temp dir, its own port) runs under
# valgrind, and two `bench run --lifecycles` runs of N1 and N2 lifecycles
# use it; the difference of the totals of all its processes (every backend,
# the WAL writer, the checkpointer...) over N2 - N1 is PostgreSQL's cost of
# one lifecycle. At concurrency 64, so that the group commit batches as it
# does under load. See docs/profiling.md.
#
#   bash scripts/count-pg-instructions.sh [target/release/ivr-auth]
#   N1=200 N2=1200 CONCURRENCY=64 bash scripts/count-pg-instructions.sh
#
# Needs Debian's valgrind and PostgreSQL server binaries, and root (the
# cluster runs as the postgres user).
set -euo pipefail

bin="$(realpath "${1:-target/release/ivr-auth}")"
n1="${N1:-200}"
n2="${N2:-1200}"
concurrency="${CONCURRENCY:-64}"
port="${PORT:-5499}"
[ -x "$bin" ] || { echo "not an executable: $bin (cargo build --release first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind" >&2; exit 2; }
pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$pgbin/postgres" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 2; }

dir="$(mktemp -d)"
chown postgres "$dir"
stop() { su postgres -c "$pgbin/pg_ctl -D $dir/data -m fast stop" >/dev/null 2>&1 || true; }
trap 'stop; rm -rf "$dir"' EXIT
su postgres -c "$pgbin/initdb -D $dir/data -A trust -U postgres" >/dev/null

total() {
  local sum=0 file n
  for file in "$dir"/cg.*; do
    n="$(grep -m1 '^summary:\|^totals:' "$file" | awk '{print $2}')"
    sum=$((sum + ${n:-0}))
  done
  echo "$sum"
}

declare -A counted
for n in "$n1" "$n2"; do
  rm -f "$dir"/cg.*
  su postgres -c "valgrind --tool=callgrind -q --callgrind-out-file=$dir/cg.%p $pgbin/postgres -D $dir/data \
    -p $port -k $dir -c listen_addresses=127.0.0.1 -c jit=off >$dir/postgres.$n.log 2>&1 &"
  for _ in $(seq 120); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
  "$bin" bench run --lifecycles "$n" --concurrency "$concurrency" --healthz-seconds 0 --fail-on-error \
    --database-url "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/bench.$n.txt"
  stop
  for _ in $(seq 60); do pgrep -f "$dir/data" >/dev/null || break; sleep 1; done
  counted[$n]="$(total)"
done
echo "postgres instructions: ${counted[$n1]} for $n1 lifecycles, ${counted[$n2]} for $n2"
echo "instructions per lifecycle: $(( (counted[$n2] - counted[$n1]) / (n2 - n1) ))"
