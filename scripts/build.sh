#!/usr/bin/env bash
# Builds kefu into build/ (or build-asan/ with --sanitize). Prints the build directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/build; flags=()
if [ "${1:-}" = "--sanitize" ]; then dir=$root/build-asan; flags=(-DKEFU_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug); fi
cmake -S "$root" -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)" >&2
echo "$dir"
