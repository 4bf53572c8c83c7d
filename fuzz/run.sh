#!/usr/bin/env bash
# A bounded, coverage-guided fuzz run of every target (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 30 s, every target)
#
# Stable toolchain: cargo-fuzz with `--sanitizer none` (libFuzzer and
# SanitizerCoverage, no AddressSanitizer; none is needed: the crate forbids
# unsafe code). Builds with one job into fuzz/target. Each target starts from
# its committed seeds (fuzz/corpus/<target>) plus what earlier runs on this
# machine learned (fuzz/work/corpus/<target>, git-ignored); a crashing input is
# written to fuzz/artifacts/<target>/. Exits non-zero if any target crashed,
# timed out or ran out of memory, or if nothing could be built.
#
# IVR_FUZZ_KNOWN=tolerate lets the known, reported findings pass (their
# inputs are in fuzz/artifacts/), to look past them for new ones.
set -euo pipefail

secs=${1:-30}
shift || true
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET ...]" >&2; exit 2 ;; esac

fuzz=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$fuzz")
cd "$root"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in "$fuzz"/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

export CARGO_TARGET_DIR="$fuzz/target"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked -j "$CARGO_BUILD_JOBS"
fi

echo "== building ${#targets[@]} targets (sanitizer none, $CARGO_BUILD_JOBS job(s))"
start=$SECONDS
for t in "${targets[@]}"; do
  cargo fuzz build --sanitizer none --target-dir "$CARGO_TARGET_DIR" "$t"
done
echo "== built in $((SECONDS - start)) s"

bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
logs="$fuzz/work/logs"
mkdir -p "$logs"
failed=()
printf '%-18s %6s %10s %8s %8s %8s %8s %8s\n' target secs execs exec/s cov ft corpus crashes > "$logs/summary.txt"

for t in "${targets[@]}"; do
  work="$fuzz/work/corpus/$t"
  artifacts="$fuzz/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  marker=$(mktemp)
  log="$logs/$t.log"
  echo "== fuzzing $t for $secs s"
  t0=$SECONDS
  set +e
  # The first corpus directory receives what the run learns: the seeds stay as committed.
  "$bin_dir/$t" "$work" "$fuzz/corpus/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  found=$(find "$artifacts" -type f -newer "$marker" \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  rm -f "$marker"
  # After a crash libFuzzer prints no final stats: the last status line says how far it got.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")}
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  printf '%-18s %6s %10s %8s %8s %8s %8s %8s\n' "$t" "$((SECONDS - t0))" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$found" \
    >> "$logs/summary.txt"
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed+=("$t")
    echo "!! $t: exit $rc, $found new artifact(s) in ${artifacts#"$root"/}/ (log: ${log#"$root"/})"
    grep -m1 -A1 "panicked at" "$log" || tail -20 "$log"
    grep -m1 "Test unit written to" "$log" || true
  fi
done

mode="every property enforced"
[ "${IVR_FUZZ_KNOWN:-}" = tolerate ] && mode="known findings tolerated (IVR_FUZZ_KNOWN=tolerate)"
echo "== summary (${secs} s per target, $mode; log and summary in ${logs#"$root"/}/)"
cat "$logs/summary.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "no crash found"
