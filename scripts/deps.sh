#!/usr/bin/env bash
# Installs the Debian packages asynchost needs to build and test, if any is
# missing (as root, or through sudo).  Safe to run again: installs nothing
# when everything is there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4 libuv1-dev libcurl4-openssl-dev
  lua-cjson lua-cjson-dev lua-busted lua-lpeg lua-filesystem libmimalloc-dev libhttp-parser-dev curl wrk clang libclang-rt-14-dev
  nginx libreadline-dev chromium valgrind
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "asynchost: installing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
