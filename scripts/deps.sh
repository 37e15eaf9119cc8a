#!/usr/bin/env bash
# Installs what kefu needs from Debian 12's packages, only when something is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config librdkafka-dev libavro-dev libhiredis-dev
      libjansson-dev libmicrohttpd-dev libcmocka-dev zlib1g-dev libcurl4-openssl-dev redis-server kcat python3
      python3-confluent-kafka python3-avro python3-yaml clang-format valgrind clang
      libclang-rt-14-dev nodejs prometheus)
# Debian 12 packages npm apart from nodejs; NodeSource's nodejs carries its own.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# tests/interop/test_registry_js.py: a real Schema Registry client from npm, installed
# from the committed lockfile (the test runs `npm ci` itself when this did not).
if [ ! -d "$(dirname "$0")/../tests/interop/registry_js/node_modules/@kafkajs" ]; then
  (cd "$(dirname "$0")/../tests/interop/registry_js" && npm ci --no-audit --no-fund >/dev/null)
fi
