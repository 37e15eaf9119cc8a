#!/usr/bin/env bash
# README command 1: install what is missing, build, run `kefu demo`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
dir=$("$root/scripts/build.sh")
exec "$dir/kefu" demo "$@"
