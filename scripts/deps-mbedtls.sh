#!/usr/bin/env bash
# Build mbedTLS 3.6 LTS from Debian's own source package of the next release
# (trixie) into build/deps/ (and, for cross builds, unpack Debian's cmocka
# for the target).
#
#   scripts/deps-mbedtls.sh [host|arm64|armhf] [--cmocka] [--libssl]
#
#   host   (default) build/deps/mbedtls-3.6/          (static, -fPIC)
#   arm64  build/deps/aarch64-linux-gnu/mbedtls-3.6/   (cross, same source)
#   armhf  build/deps/arm-linux-gnueabihf/mbedtls-3.6/
#   --cmocka  also fetch Debian's libcmocka-dev for that target (the
#             system's release) into .../cmocka/ (cross builds only)
#   --libssl  also fetch Debian's libssl-dev for that target into .../libssl/
#             (for the tests' OpenSSL client only; cross builds only)
#
# The sources come from `apt-get source` with a PRIVATE apt configuration
# (sources list, lists, cache under build/deps/apt/): the system's apt
# configuration and state are only read (keyrings), never written. Nothing
# else is downloaded. A stamp per install makes a second run instant.
#
# Where the source cannot be had (no apt-get, no dpkg-source, no network,
# no trixie on the mirror), this prints ONE line and exits 0: CMake then
# uses the system's mbedTLS (2.28 on Debian 12, past its end of life).
# Set SSOCK_DEPS_OFFLINE=1 to skip the download on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

arch=host
want_cmocka=0
want_libssl=0
for a in "$@"; do
  case $a in
    host | arm64 | armhf) arch=$a ;;
    --cmocka) want_cmocka=1 ;;
    --libssl) want_libssl=1 ;;
    *) echo "deps-mbedtls.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done

deps=$root/build/deps
case $arch in
  host)  triplet=""; prefix_dir=$deps; toolchain="" ;;
  arm64) triplet=aarch64-linux-gnu ;;
  armhf) triplet=arm-linux-gnueabihf ;;
esac
if [[ -n $triplet ]]; then
  prefix_dir=$deps/$triplet
  toolchain=$root/cmake/toolchains/$triplet.cmake
fi
mb_prefix=$prefix_dir/mbedtls-3.6
jobs=$(nproc 2>/dev/null || echo 2)
((jobs > 2)) && jobs=2

# What makes an install stale: the options below, the target, and this
# revision (bump it when the build steps change).
MB_STAMP_REV=1
MB_OPTIONS=(
  "set MBEDTLS_THREADING_C"           # one ssock config is shared by threads
  "set MBEDTLS_THREADING_PTHREAD"     #   (and PSA's global state needs locks)
  "set MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH" # shrink I/O buffers after the
                                      #   handshake to the negotiated
                                      #   max_fragment_length
  "unset MBEDTLS_SSL_CONTEXT_SERIALIZATION" # 64 bytes per session we never use
  "unset MBEDTLS_SSL_PROTO_DTLS"      # ssock is TCP only: DTLS code, CID
  "unset MBEDTLS_SSL_DTLS_ANTI_REPLAY" #   and its per-session state go away
  "unset MBEDTLS_SSL_DTLS_HELLO_VERIFY"
  "unset MBEDTLS_SSL_DTLS_CLIENT_PORT_REUSE"
  "unset MBEDTLS_SSL_DTLS_CONNECTION_ID"
  "unset MBEDTLS_SSL_COOKIE_C"
  "set MBEDTLS_SSL_PROTO_TLS1_3"      # the default in 3.6; stated anyway
  "set MBEDTLS_SSL_PROTO_TLS1_2"
)

note() { echo "deps: $*"; }
# One line, exit 0: the build goes on with the system's mbedTLS.
give_up() {
  echo "deps: mbedTLS 3.6 source not available ($*): using the system's mbedTLS (2.28 is past its end of life)"
  exit 0
}

stamp_ok() { # stamp-file key
  [[ -f $1 ]] && [[ $(cat "$1") == "$2" ]]
}

# ---- private apt -------------------------------------------------------------
apt_dir=$deps/apt
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::Etc::preferencesparts=-"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Dir::Cache::archives=$apt_dir/cache/archives"
  -o "Dir::Cache::pkgcache=$apt_dir/cache/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$apt_dir/cache/srcpkgcache.bin"
  -o "APT::Get::List-Cleanup=false"
  -o "Acquire::Languages=none"
  -o "Debug::NoLocking=true"
)
# As root, apt drops to _apt for downloads, which cannot write build/deps/.
[[ $(id -u) -eq 0 ]] && APT_OPTS+=(-o "APT::Sandbox::User=root")

# The mirror the system already uses (deb822 or one-line format).
system_mirror() {
  local f url
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    url=$(grep -Eo 'https?://[^ ]+/debian/?( |$)' "$f" 2>/dev/null |
      grep -v security | head -n1 | tr -d ' ') || true
    if [[ -n $url ]]; then
      echo "${url%/}"
      return
    fi
  done
  echo "http://deb.debian.org/debian"
}

apt_ready=0
apt_prepare() {
  ((apt_ready)) && return 0
  [[ ${SSOCK_DEPS_OFFLINE:-0} == 1 ]] && give_up "SSOCK_DEPS_OFFLINE=1"
  command -v apt-get >/dev/null || give_up "no apt-get: not a Debian system"
  command -v dpkg-source >/dev/null ||
    give_up "dpkg-source missing: apt-get install dpkg-dev"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -r $keyring ]] || give_up "no $keyring"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  local mirror
  mirror=$(system_mirror)
  echo "deb-src [signed-by=$keyring] $mirror trixie main" >"$apt_dir/sources.list"
  # One update per hour at most.
  if [[ -z $(find "$apt_dir/lists" -maxdepth 1 -name '*trixie*Sources*' -mmin -60 2>/dev/null) ]]; then
    if ! apt-get "${APT_OPTS[@]}" -qq update >"$apt_dir/update.log" 2>&1; then
      give_up "apt-get update of trixie sources from $mirror failed, see $apt_dir/update.log"
    fi
  fi
  apt_ready=1
}

# fetch_source PKG VERSION-REGEX: sets SRC_DIR to the unpacked source
# (not a $(...) subshell: give_up must end the script).
SRC_DIR=""
fetch_source() {
  local pkg=$1 want=$2 ver dir
  ver=$(apt-cache "${APT_OPTS[@]}" showsrc "$pkg" 2>/dev/null |
    awk '/^Version:/ {print $2}' | grep -E "$want" | sort -V | tail -n1) || true
  [[ -n $ver ]] || give_up "no $pkg matching '$want' in trixie"
  local upstream=${ver#*:}
  upstream=${upstream%-*}
  dir=$deps/src/$pkg-$upstream
  if [[ ! -f $dir/.ssock-unpacked ]]; then
    rm -rf "$dir"
    mkdir -p "$deps/src"
    if ! (cd "$deps/src" && apt-get "${APT_OPTS[@]}" -qq source "$pkg=$ver" \
      >"$deps/src/$pkg.log" 2>&1); then
      give_up "apt-get source $pkg=$ver failed, see $deps/src/$pkg.log"
    fi
    [[ -d $dir ]] || give_up "apt-get source $pkg gave no $dir"
    echo "$ver" >"$dir/.ssock-unpacked"
  fi
  SRC_DIR=$dir
}

# ---- mbedTLS 3.6 -------------------------------------------------------------
build_mbedtls() {
  local key
  key="mbedtls $arch $MB_STAMP_REV ${MB_OPTIONS[*]}"
  if stamp_ok "$mb_prefix/.ssock-stamp" "$key" && [[ -f $mb_prefix/lib/libmbedtls.a ]]; then
    note "mbedTLS $(cat "$mb_prefix/.ssock-version") already in ${mb_prefix#"$root"/}"
    return
  fi
  apt_prepare
  local src ver t0
  fetch_source mbedtls '^3\.6\.'
  src=$SRC_DIR
  ver=$(basename "$src")
  ver=${ver#mbedtls-}
  t0=$SECONDS
  note "building mbedTLS $ver ($arch) from Debian's source into ${mb_prefix#"$root"/}"

  # The options go into the unpacked tree's mbedtls_config.h (as Debian's
  # own rules do), always starting again from Debian's copy, so the
  # installed headers carry them and no -DMBEDTLS_CONFIG_FILE (a build
  # path) leaks into consumers.
  local cfg=$src/include/mbedtls/mbedtls_config.h
  [[ -f $cfg.debian ]] || cp "$cfg" "$cfg.debian"
  cp "$cfg.debian" "$cfg"
  local o
  for o in "${MB_OPTIONS[@]}"; do
    # shellcheck disable=SC2086
    python3 "$src/scripts/config.py" -f "$cfg" $o
  done

  # Installed into a new directory and renamed at the end, so builds using
  # the old one see it whole until the last moment.
  local bdir=$deps/build/mbedtls-$ver-$arch
  rm -rf "$bdir" "$mb_prefix.new"
  local tc=()
  [[ -n $toolchain ]] && tc=(-DCMAKE_TOOLCHAIN_FILE="$toolchain")
  nice cmake -S "$src" -B "$bdir" "${tc[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="-Os" \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DCMAKE_INSTALL_PREFIX="$mb_prefix.new" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DUSE_STATIC_MBEDTLS_LIBRARY=ON -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
    -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF \
    -DMBEDTLS_FATAL_WARNINGS=OFF -DGEN_FILES=OFF \
    >"$deps/build/mbedtls-$ver-$arch.log" 2>&1 ||
    { tail -n 30 "$deps/build/mbedtls-$ver-$arch.log" >&2; exit 1; }
  nice cmake --build "$bdir" -j "$jobs" >>"$deps/build/mbedtls-$ver-$arch.log" 2>&1 ||
    { tail -n 30 "$deps/build/mbedtls-$ver-$arch.log" >&2; exit 1; }
  cmake --install "$bdir" >>"$deps/build/mbedtls-$ver-$arch.log" 2>&1
  # The install prefix is only in the pkg-config files: make them relocatable.
  sed -i "s|^prefix=.*|prefix=\${pcfiledir}/../..|" "$mb_prefix.new"/lib/pkgconfig/*.pc
  echo "$ver" >"$mb_prefix.new/.ssock-version"
  echo "$key" >"$mb_prefix.new/.ssock-stamp"
  rm -rf "$mb_prefix" "$bdir"
  mv "$mb_prefix.new" "$mb_prefix"
  note "mbedTLS $ver ($arch) built in $((SECONDS - t0)) s"
}

# ---- target packages (cross builds only) -------------------------------------
# Debian's own binary packages for the target architecture, from the system's
# release (the same glibc as the cross libc6-dev), fetched with
# `apt-get download` through a private configuration for that architecture
# (build/deps/apt-ARCH/; no `dpkg --add-architecture`) and unpacked with
# `dpkg -x` into build/deps/<triplet>/NAME/:
#   cmocka  libcmocka-dev + libcmocka0 (its CMake config file is relocatable)
#   libssl  libssl-dev + libssl3: only for the tests' in-test OpenSSL client
#           (the library itself is built with -DSSOCK_TLS_OPENSSL=OFF)
# The tests link them by absolute path, hence an rpath that qemu -L resolves.
target_debs() { # NAME CHECK-FILE MAIN-PKG OTHER-PKGS...
  local name=$1 check=$2 main=$3
  shift 3
  local dest=$prefix_dir/$name key="$name $arch $MB_STAMP_REV"
  if stamp_ok "$dest/.ssock-stamp" "$key" && [[ -e $dest/$check ]]; then
    note "$name $(cat "$dest/.ssock-version") ($arch) already in ${dest#"$root"/}"
    return
  fi
  [[ $arch != host ]] || { echo "deps: --$name is for cross builds only" >&2; exit 2; }
  command -v apt-get >/dev/null || { echo "deps: no apt-get: cannot fetch $name for $arch" >&2; exit 1; }
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  local suite mirror adir=$deps/apt-$arch
  suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [[ -n $suite ]] || suite=bookworm
  mirror=$(system_mirror)
  mkdir -p "$adir/lists/partial" "$adir/cache/archives/partial" "$adir/debs-$name"
  echo "deb [arch=$arch signed-by=$keyring] $mirror $suite main" >"$adir/sources.list"
  local O=(
    -o "Dir::Etc::sourcelist=$adir/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferencesparts=-"
    -o "Dir::State::Lists=$adir/lists" -o "Dir::Cache=$adir/cache"
    -o "Dir::Cache::pkgcache=$adir/cache/pkgcache.bin"
    -o "Dir::Cache::srcpkgcache=$adir/cache/srcpkgcache.bin"
    -o "Dir::State::status=/dev/null"
    -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
    -o "APT::Get::List-Cleanup=false" -o "Acquire::Languages=none"
    -o "Debug::NoLocking=true")
  [[ $(id -u) -eq 0 ]] && O+=(-o "APT::Sandbox::User=root")
  local t0=$SECONDS p pkgs=()
  if [[ -z $(find "$adir/lists" -maxdepth 1 -name "*_binary-${arch}_Packages*" -mmin -60 2>/dev/null) ]]; then
    apt-get "${O[@]}" -qq update >"$adir/update.log" 2>&1 ||
      { echo "deps: apt-get update of $suite $arch packages failed, see $adir/update.log" >&2; exit 1; }
  fi
  for p in "$main" "$@"; do pkgs+=("$p:$arch"); done
  rm -f "$adir/debs-$name"/*.deb
  (cd "$adir/debs-$name" && apt-get "${O[@]}" -qq download "${pkgs[@]}" \
    >"$adir/download-$name.log" 2>&1) ||
    { echo "deps: apt-get download ${pkgs[*]} failed, see $adir/download-$name.log" >&2; exit 1; }
  rm -rf "$dest"
  mkdir -p "$dest"
  local d
  for d in "$adir/debs-$name"/*.deb; do dpkg -x "$d" "$dest"; done
  dpkg-deb -f "$adir/debs-$name/${main}"_*.deb Version >"$dest/.ssock-version"
  echo "$key" >"$dest/.ssock-stamp"
  note "$name $(cat "$dest/.ssock-version") ($arch, Debian $suite) unpacked into ${dest#"$root"/} in $((SECONDS - t0)) s"
}

mkdir -p "$deps/build"
build_mbedtls
((want_cmocka)) && target_debs cmocka usr/include/cmocka.h libcmocka-dev libcmocka0
((want_libssl)) && target_debs libssl usr/include/openssl/ssl.h libssl-dev libssl3
exit 0
