#!/usr/bin/env bash
# Fails when a C file differs from .clang-format's layout (fix: scripts/check-format.sh --fix).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { apt-get update -qq && apt-get install -y -qq clang-format >/dev/null; }
files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'bench/*.c')
if [ "${1:-}" = "--fix" ]; then clang-format -i $files; exit 0; fi
clang-format --dry-run -Werror $files
echo "format: $(echo "$files" | wc -w) files ok"
