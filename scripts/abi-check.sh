#!/usr/bin/env bash
# ABI check (issue "A 1.0-ready API"): compare the shared library a build
# tree produced with the committed baseline abi/libssock.abi, using
# libabigail's abidw/abidiff (Debian: abigail-tools).
#
#   scripts/abi-check.sh BUILD_DIR            check (the gate runs this)
#   scripts/abi-check.sh BUILD_DIR --update   write a new baseline
#
# Policy (README "API and ABI stability"): until 1.0 the SONAME is
# libssock.so.0.MINOR; after 1.0, libssock.so.MAJOR. An incompatible change
# (a symbol removed, a type changed in a way old programs notice) fails the
# check unless the SONAME moved too; then the baseline is regenerated with
# --update in the same commit. Compatible changes (new functions) pass and
# are listed; update the baseline when a release is made.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: scripts/abi-check.sh BUILD_DIR [--update]}
mode=${2:-check}
baseline=abi/libssock.abi

for tool in abidw abidiff; do
  if ! command -v "$tool" >/dev/null; then
    echo "abi-check: $tool not found (Debian: apt-get install abigail-tools)" >&2
    exit 1
  fi
done

lib=$(find "$build" -maxdepth 1 -name 'libssock.so.*.*' -type f | sort | tail -n 1)
if [[ -z $lib ]]; then
  echo "abi-check: no libssock.so.* in $build" >&2
  exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
mkdir -p "$build/abi"
current=$build/abi/libssock.abi
abidw --no-corpus-path --headers-dir include/ssock --out-file "$current" "$lib"

# Only ssock_* may be exported (the version script says so).
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^ssock_' |
      grep -v '^SSOCK_' || true)
if [[ -n $bad ]]; then
  echo "abi-check: symbols exported that are not ssock_*:" >&2
  echo "$bad" >&2
  exit 1
fi
nsyms=$(nm -D --defined-only "$lib" | awk '$3 ~ /^ssock_/' | wc -l)

if [[ $mode == --update ]]; then
  cp "$current" "$baseline"
  echo "abi-check: baseline $baseline written for $soname ($nsyms symbols)"
  exit 0
fi
if [[ ! -f $baseline ]]; then
  echo "abi-check: no baseline $baseline: run scripts/abi-check.sh $build --update" >&2
  exit 1
fi

base_soname=$(sed -n 's/.*soname=.\([^"'\'']*\).*/\1/p' "$baseline" | head -n 1)
set +e
abidiff --no-added-syms "$baseline" "$current" >"$build/abi/abidiff.txt" 2>&1
rc=$?
set -e
# abidiff's status is a bit field: 1 error, 2 usage, 4 ABI change,
# 8 incompatible ABI change.
if ((rc & 3)); then
  cat "$build/abi/abidiff.txt" >&2
  echo "abi-check: abidiff failed (status $rc)" >&2
  exit 1
fi
if ((rc & 8)); then
  cat "$build/abi/abidiff.txt"
  if [[ $soname != "$base_soname" ]]; then
    echo "abi-check: incompatible change and the SONAME moved ($base_soname -> $soname):" \
      "regenerate the baseline with --update in this commit" >&2
  else
    echo "abi-check: INCOMPATIBLE ABI change with the same SONAME $soname" >&2
  fi
  exit 1
fi
if ((rc & 4)); then
  echo "abi-check: compatible changes against the baseline:"
  cat "$build/abi/abidiff.txt"
fi
echo "abi-check: $soname compatible with $baseline ($nsyms ssock_* symbols)"
echo "abi-check: 1 passed, 0 failed"
