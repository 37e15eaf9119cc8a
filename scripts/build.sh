#!/usr/bin/env bash
# Builds kefu into build/ (Release, -O3: what packagers build) or build-asan/ with
# --sanitize (Debug, ASan+UBSan). Prints the build directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/build; flags=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--sanitize" ]; then dir=$root/build-asan; flags=(-DKEFU_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug); fi
cmake -S "$root" -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)" >&2
echo "$dir"
