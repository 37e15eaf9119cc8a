#!/usr/bin/env bash
# valgrind memcheck over every unit test and one integration run of `kefu run`
# (tests/integration/test_pipeline.py with KEFU_VALGRIND=1, see tests/lib/kefutest.py),
# in a Debug build without sanitizers (build-memcheck/). Prints one line per program
# (errors, bytes definitely lost) and fails on any error or definite leak; "possibly
# lost" and "still reachable" blocks (library threads and caches) do not count.
# Suppressions: tests/valgrind.supp (library frames only, each explained).
# JOBS=N limits the build's parallelism (default: every core).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/build-memcheck
logs=$dir/valgrind
if ! command -v valgrind >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DKEFU_SANITIZE=OFF >/dev/null
cmake --build "$dir" -j"${JOBS:-$(nproc)}" >&2
rm -rf "$logs" && mkdir -p "$logs"
vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --suppressions="$root/tests/valgrind.supp")
status=0

for t in "$dir"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  # KEFU_TEST_QUICK: the randomised unit tests run a hundredth of their iterations
  if ! (cd "$dir/tests" && KEFU_TEST_QUICK=1 "${vg[@]}" --log-file="$logs/$name.log" "$t" \
    >"$logs/$name.out" 2>&1); then
    echo "memcheck: $name failed (exit code), see $logs/$name.out and $logs/$name.log"
    status=1
  fi
done

echo "== memcheck: tests/integration/test_pipeline.py with kefu run under valgrind" >&2
if ! env KEFU_VALGRIND=1 KEFU_VALGRIND_LOG_DIR="$logs" KEFU_BIN="$dir/kefu" \
    KEFU_SOURCE_DIR="$root" PYTHONPATH="$root/tests/lib" PYTHONDONTWRITEBYTECODE=1 \
    /usr/bin/python3 "$root/tests/integration/test_pipeline.py" >"$logs/integration.out" 2>&1; then
  echo "memcheck: test_pipeline.py failed, see $logs/integration.out"
  status=1
fi
ls "$logs"/kefu-run.*.log >/dev/null 2>&1 || { echo "memcheck: no kefu run was checked"; status=1; }

# One summary line per program from valgrind's own report.
for log in "$logs"/*.log; do
  name=$(basename "$log" .log)
  case $name in kefu-run.*) name="kefu run (pid ${name#kefu-run.})" ;; esac
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tr -d , | tail -1)
  lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d , | tail -1)
  if [ -z "$errors" ]; then
    echo "memcheck: $name: no valgrind summary (killed?), see $log"
    status=1
    continue
  fi
  echo "memcheck: $name: $errors errors, ${lost:-0} bytes definitely lost"
  if [ "$errors" != 0 ] || [ "${lost:-0}" != 0 ]; then status=1; fi
done
[ $status = 0 ] && echo "memcheck: ok" || echo "memcheck: FAILED (reports in $logs)"
exit $status
