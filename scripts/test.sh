#!/usr/bin/env bash
# README command 2: install what is missing, then build and run every test: ctest in the
# Release build (-O3) and under AddressSanitizer + UndefinedBehaviorSanitizer, valgrind
# memcheck over the unit tests and one integration run (scripts/memcheck.sh), and a
# short libFuzzer smoke of every fuzz target (scripts/fuzz.sh, KEFU_FUZZ_SECONDS each,
# default 30). Long runs (fuzzing for hours, 50-kill crash runs) are in docs/TESTING.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
passed=0 failed=0
stage() { # stage NAME COMMAND...: runs one stage, counts it
  local name=$1
  shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "== $name FAILED"; fi
}
# -j4 on 2 cores: the integration tests spend most of their time waiting on Kafka group
# joins and on conditions (a CI run used 10 CPU minutes in 32), not computing.
run_ctest() { # run_ctest BUILD-FLAGS...
  local dir
  dir=$("$root/scripts/build.sh" "$@") || return 1
  echo "ctest in $dir"
  (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j4)
}
stage "ctest (Release build)" run_ctest
stage "ctest (ASan+UBSan build)" run_ctest --sanitize
stage "valgrind memcheck" env JOBS="$(nproc)" bash "$root/scripts/memcheck.sh"
stage "fuzz smoke" bash "$root/scripts/fuzz.sh" "${KEFU_FUZZ_SECONDS:-30}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
