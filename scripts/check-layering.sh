#!/bin/sh
# The core owns its contract (docs/ARCHITECTURE.md): src/rules includes only src/rules,
# src/common and system headers — nothing from engine/, io/, store/ or ops/ — so the
# rules stay pure functions of (state, event) that any shell can drive. CI runs this.
cd "$(dirname "$0")/.." || exit 2
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' src/rules/*.[ch] |
  grep -vE '#[[:space:]]*include[[:space:]]*"(rules|common)/')
if [ -n "$bad" ]; then
  echo "src/rules may include only rules/ and common/ headers:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "layering: src/rules includes only rules/ and common/"
