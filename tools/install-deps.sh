#!/bin/sh
# Installs the Debian 12 packages NanoVM needs to build and test, skipping what is present.
# Needs root (or sudo) only when something is missing. usage: install-deps.sh [bench]
set -e
PKGS="build-essential cmake pkg-config python3 libjansson-dev libsqlite3-dev libseccomp-dev libcmocka-dev libssl-dev openssl clang lld wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev wabt nodejs"
# "bench" adds the peers and tools the benchmark runner uses.
[ "${1:-}" = bench ] && PKGS="$PKGS lua5.4 luajit hyperfine time gnuplot-nox"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
