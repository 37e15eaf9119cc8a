#!/usr/bin/env bash
# README command 2: install what is missing, then build and run every test twice: in
# the normal build and under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
status=0
for mode in normal sanitize; do
  if [ $mode = normal ]; then dir=$("$root/scripts/build.sh"); else dir=$("$root/scripts/build.sh" --sanitize); fi
  echo "== ctest ($mode build: $dir)"
  export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1
  (cd "$dir" && ctest --output-on-failure -j2) || status=1
done
exit $status
