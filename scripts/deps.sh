#!/usr/bin/env bash
# Check the Debian packages the build, the gate and the examples need.
# As root, install the missing ones; otherwise print the command and fail.
# Then build mbedTLS 3.6 LTS from Debian's trixie source package into
# build/deps/ (scripts/deps-mbedtls.sh; instant once built; one line and the
# system's 2.28 where that source cannot be had).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake gcc clang
  libclang-rt-dev   # clang's sanitizer runtimes (a Recommends of clang)
  valgrind pkg-config
  libcmocka-dev libmbedtls-dev libssl-dev gnutls-bin
  socat afl++ clang-format
  dpkg-dev python3  # apt-get source + dpkg-source; mbedTLS's config.py
  abigail-tools     # abidw/abidiff: the ABI check (scripts/abi-check.sh)
  libuv1-dev        # examples/libuv_echo.c (ssock in a libuv loop)
  systemd           # systemd-socket-activate: the socket-activation test
  nginx libnginx-mod-stream  # bench/: the TLS-terminator anchor
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exec scripts/deps-mbedtls.sh
fi

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: run as root:" >&2
  echo "  $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
exec scripts/deps-mbedtls.sh
