#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang into build-fuzz/ and runs each
# for SECONDS (default 30) on a copy of its seed corpus (the committed corpus does not
# grow). KEFU_FUZZ_RUNS=N runs N executions per target instead (the long run of
# docs/TESTING.md); a SECONDS given with it caps each target's time. Names after
# SECONDS pick targets (default: all).
# Prints one line per target; exits non-zero on any crash, leak, timeout or failed check
# (the input is kept in build-fuzz/fuzz-artifacts/, the log in build-fuzz/fuzz-logs/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-}
shift || true
dir=$root/build-fuzz
"$root/scripts/deps.sh"
cmake -S "$root" -B "$dir" -DCMAKE_C_COMPILER=clang -DKEFU_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" >/dev/null
cmake --build "$dir" --target fuzz -j1 >&2
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in "$root"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
mkdir -p "$dir/fuzz-logs" "$dir/fuzz-artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${KEFU_FUZZ_RUNS:-}" ]; then
  limit=(-runs="$KEFU_FUZZ_RUNS" -max_total_time="${seconds:-0}")
else
  limit=(-max_total_time="${seconds:-30}")
fi
status=0
for t in "${targets[@]}"; do
  cp -r "$root/tests/fuzz/corpus/$t" "$work/$t"
  log=$dir/fuzz-logs/$t.log
  start=$(date +%s)
  rc=0
  (cd "$work" && "$dir/tests/fuzz/$t" "${limit[@]}" -detect_leaks=1 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/$t-" "$work/$t") >"$log" 2>&1 || rc=$?
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "$t: ${runs:-?} runs in $took s, 0 crashes"
  else
    status=1
    echo "$t: FAILED (exit $rc) after ${runs:-?} runs in $took s; log: $log"
    grep -E "ERROR|FUZZ_CHECK|runtime error|SUMMARY|Test unit written" "$log" | head -8 >&2 || true
  fi
done
exit $status
