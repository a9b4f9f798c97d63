#!/usr/bin/env bash
# Install the Debian packages rayc needs to build, test and fuzz.
# Idempotent and quiet: runs `apt-get update` only when a package is missing.
set -euo pipefail

PKGS=(build-essential pkg-config libevent-dev libprotobuf-c-dev protobuf-c-compiler
      libhiredis-dev libcriterion-dev redis-server clang libclang-rt-14-dev
      valgrind iproute2 procps clang-format xxd chromium yamllint python3-yaml)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system redis-server on install; rayc runs its own.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
$SUDO service redis-server stop >/dev/null 2>&1 || true
exit 0
