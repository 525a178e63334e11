#!/usr/bin/env bash
# The test gate (`make test`, `.ci/run`). Runs the stages below in order,
# stops at the first failure and prints a summary with the test counts.
#
# Adding a stage is one line at the bottom:  stage NAME command args...
# Each stage's output is shown and kept in build/gate-logs/NAME.log; a
# stage's test count is read from ctest's "N tests failed out of T" line or
# from a line "WORD: P passed, F failed".
#
# Nothing the gate proves is reduced silently:
#  - SSOCK_GATE=1 is exported: a test case that would skip (IPv6 missing, a
#    client binary missing, a TLS backend not built) FAILS instead
#    (tests/helpers.h th_skip_check). Outside the gate a skip prints
#    "SKIP: reason" and is appended to $SSOCK_SKIP_LOG when that is set.
#  - Every stage that runs ctest checks that every entry of REQUIRED_TESTS
#    is registered and that at least its stated minimum number ran.
#  - Valgrind runs every ctest entry (each command must be under valgrind)
#    and fails on definite, indirect and possible leaks; TSan runs the whole
#    suite; the library is built and tested without TLS and with each
#    backend alone, where the only skips allowed are the missing backend's.
# Stage times on the 2-core shared dev VM are in the README (Testing).
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-2}
LOGS=build/gate-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$LOGS"/skips*.txt

export SSOCK_GATE=1
export SSOCK_SKIP_LOG=$PWD/$LOGS/skips.txt

# The ctest entries a full build must register (tests/CMakeLists.txt,
# tests/*.cmake, fuzz/): a missing one (a dropped program, an unbuilt
# backend, a client library not found) fails the stage.
REQUIRED_TESTS=(
  test_errors test_addr test_server test_socket test_lifecycle test_faults
  test_echo test_tls_config test_tls_backend test_tls_accept
  test_tls_defaults test_tls_socket test_hostile test_races
  test_race_regressions test_api test_tls_api test_proxy
  fuzz_replay_addr fuzz_replay_lifecycle fuzz_replay_tls_mbedtls
  fuzz_replay_tls_openssl fuzz_replay_proxy
  test_event test_event_races test_event_race_regressions test_cidr
  test_deploy test_tls_sni fuzz_replay_cidr
)
# Client programs the TLS tests drive; each must be installed.
REQUIRED_BINARIES=(openssl gnutls-cli socat valgrind clang systemd-socket-activate)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

VALGRIND=(valgrind --error-exitcode=99 --leak-check=full
          --errors-for-leak-kinds=definite --show-leak-kinds=definite
          --track-fds=no --quiet)

gate_start=$SECONDS
names=()
times=()
counts=()
total_passed=0
total_failed=0

summary() {
  local i
  echo
  echo "================================================================"
  echo " gate summary"
  echo "================================================================"
  for i in "${!names[@]}"; do
    printf '  %-16s %5ss  %s\n' "${names[$i]}" "${times[$i]}" "${counts[$i]}"
  done
  printf '  %-16s %5ss\n' "total" "$((SECONDS - gate_start))"
}

# Sum the test counts of one stage log into $stage_count and the totals.
count_tests() {
  local log=$1 p=0 f=0 line n
  stage_count=
  while IFS= read -r line; do
    if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
      n=${BASH_REMATCH[2]}
      f=$((f + BASH_REMATCH[1]))
      p=$((p + n - BASH_REMATCH[1]))
    elif [[ $line =~ ^[A-Za-z-]+:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
      p=$((p + BASH_REMATCH[1]))
      f=$((f + BASH_REMATCH[2]))
    fi
  done <"$log"
  ((p + f == 0)) || stage_count="$p passed, $f failed"
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
}

# stage NAME CMD...: run CMD with a banner; on failure print the summary
# and stop the gate.
stage() {
  local name=$1 start rc
  shift
  echo
  echo "================================================================"
  echo " stage: $name"
  echo "   \$ $*"
  echo "================================================================"
  start=$SECONDS
  set +e
  (set -e; "$@") 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  names+=("$name")
  times+=("$((SECONDS - start))")
  count_tests "$LOGS/$name.log"
  counts+=("$stage_count")
  if ((rc != 0)); then
    counts[-1]+=" FAILED (exit $rc, log $LOGS/$name.log)"
    summary
    echo "gate: FAILED at stage '$name'"
    exit 1
  fi
}

# The entries registered in a build tree, one per line.
list_tests() {
  ctest --test-dir "build/$1" -N | sed -n 's/^ *Test *#[0-9]*: *//p'
}

# require_tests DIR NAME...: every NAME is a ctest entry of build/DIR.
require_tests() {
  local dir=$1 have t missing=()
  shift
  have=$(list_tests "$dir")
  for t in "$@"; do
    grep -qx "$t" <<<"$have" || missing+=("$t")
  done
  if ((${#missing[@]} > 0)); then
    echo "gate: build/$dir lacks required ctest entries: ${missing[*]}"
    return 1
  fi
  echo "gate: build/$dir registers all $# required entries" \
    "($(wc -l <<<"$have") in all)"
}

# run_ctest DIR MIN [ctest args...]: run, and fail unless at least MIN
# entries ran (ctest's own "out of T" line).
run_ctest() {
  local dir=$1 min=$2 out rc ran
  shift 2
  out=$(mktemp)
  set +e
  ctest --test-dir "build/$dir" --output-on-failure -j "$JOBS" \
    --no-tests=error "$@" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  ran=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$out" | tail -n 1)
  rm -f "$out"
  ((rc == 0)) || return "$rc"
  if ((${ran:-0} < min)); then
    echo "gate: build/$dir ran ${ran:-0} ctest entries, expected at least $min"
    return 1
  fi
}

# The skips of a stage: none in the gate, except those named by an
# extended regex (a partial build's missing backend).
check_skips() {
  local allowed=${1:-} f=$SSOCK_SKIP_LOG bad
  [[ -s $f ]] || { echo "gate: no skipped cases"; return 0; }
  echo "gate: skipped cases:"
  sed 's/^/  /' "$f"
  if [[ -n $allowed ]]; then
    bad=$(grep -Ev "$allowed" "$f" || true)
  else
    bad=$(cat "$f")
  fi
  if [[ -n $bad ]]; then
    echo "gate: skips not allowed here:"
    echo "$bad"
    return 1
  fi
  echo "gate: skips: $(wc -l <"$f") passed, 0 failed"
}

# Every client program and backend the suite needs is present.
check_tools() {
  local b missing=()
  for b in "${REQUIRED_BINARIES[@]}"; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  if ((${#missing[@]} > 0)); then
    echo "gate: missing programs: ${missing[*]} (scripts/deps.sh installs them)"
    return 1
  fi
  echo "gate: programs: ${#REQUIRED_BINARIES[@]} passed, 0 failed"
}

check_features() {
  local f=build/$1/include/ssock/features.h m
  for m in SSOCK_HAVE_TLS SSOCK_HAVE_MBEDTLS SSOCK_HAVE_OPENSSL; do
    if ! grep -q "^#define $m 1" "$f"; then
      echo "gate: $f: $m is not 1: every backend must be built in the gate"
      return 1
    fi
  done
  echo "gate: $f: both TLS backends built"
  # The default build runs on the maintained mbedTLS LTS (make deps built
  # it from Debian's source); the mbedtls228 build on the system's 2.28.
  local want=${2:-3.6}
  if ! grep -q "^#define SSOCK_MBEDTLS_VERSION_STRING \"$want\." "$f"; then
    echo "gate: $f: mbedTLS is not $want.x:" \
      "$(grep SSOCK_MBEDTLS_VERSION_STRING "$f" || echo none)"
    return 1
  fi
  echo "gate: $f: mbedTLS $want"
}

test_full() {
  local dir=$1
  shift
  require_tests "$dir" "${REQUIRED_TESTS[@]}"
  : >"$SSOCK_SKIP_LOG"
  run_ctest "$dir" "${#REQUIRED_TESTS[@]}" "$@"
  check_skips
}

# A build of the library and its tests with other TLS options, for modes
# scripts/build.sh does not have:  partial_build NAME cmake-args...
partial_build() {
  local name=$1
  shift
  cmake -S . -B "build/$name" -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O0 -g" \
    -DSSOCK_WERROR=ON -DSSOCK_BUILD_EXAMPLES=OFF "$@"
  cmake --build "build/$name" -j "$JOBS"
}

# partial_test NAME SKIPS-ALLOWED-REGEX MIN-TESTS: ctest of build/NAME.
# Skips of the missing backend are expected there: reported, checked
# against the regex, not fatal.
partial_test() {
  local name=$1 allowed=$2 min=$3
  : >"$SSOCK_SKIP_LOG"
  # test_hostile runs on both backends in every full tree (gcc, Valgrind,
  # ASan, TSan, mbedTLS 2.28); a one-backend tree adds no case to it.
  SSOCK_GATE=0 run_ctest "$name" "$min" -E '^test_hostile$'
  check_skips "$allowed"
}

# The cross suites are built with the mbedTLS backend only: the OpenSSL runs
# may be skipped there (and only those), everything else must run.
cross_test() {
  : >"$SSOCK_SKIP_LOG"
  SSOCK_GATE=0 scripts/test-cross.sh "$1"
  check_skips '^SKIP: .*backend openssl not built'
}

# Install into build/stage and build tests/consumer against it, once through
# find_package(ssock) and once through pkg-config; run what was built.
consumer_build() {
  local stage_dir=$PWD/build/stage pcdir
  rm -rf "$stage_dir" build/consumer-cmake build/consumer-pc
  make --no-print-directory install PREFIX="$stage_dir"
  test -f "$stage_dir/include/ssock/ssock.h"

  cmake -S tests/consumer -B build/consumer-cmake \
    -DCMAKE_C_COMPILER=gcc -DCMAKE_PREFIX_PATH="$stage_dir" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  grep -q "^ssock_DIR:PATH=$stage_dir/" build/consumer-cmake/CMakeCache.txt
  cmake --build build/consumer-cmake -j "$JOBS"

  pcdir=$(dirname "$(find "$stage_dir" -name ssock.pc | head -n 1)")
  export PKG_CONFIG_PATH=$pcdir
  echo "pkg-config ssock: $(pkg-config --modversion ssock)" \
    "$(pkg-config --cflags --libs ssock)"
  mkdir -p build/consumer-pc
  # shellcheck disable=SC2046
  gcc -std=c11 -Wall -Wextra -Werror tests/consumer/consumer.c \
    -o build/consumer-pc/consumer $(pkg-config --cflags --libs ssock)
}

# The consumer programs, counted as they really run.
consumer_counted() {
  local p=0 f=0 prog
  consumer_build
  for prog in build/consumer-cmake/consumer build/consumer-cmake/consumer_static \
    build/consumer-pc/consumer; do
    if [[ ! -x $prog ]]; then
      echo "consumer: $prog was not built"
      f=$((f + 1))
    elif LD_LIBRARY_PATH=$(pkg-config --variable=libdir ssock) "$prog"; then
      p=$((p + 1))
    else
      echo "consumer: $prog failed"
      f=$((f + 1))
    fi
  done
  echo "consumer: $p passed, $f failed"
  ((f == 0 && p == 3))
}

# The Valgrind tree must really run every test under Valgrind.
run_ctest_valgrind() {
  local cmds bad
  cmds=$(ctest --test-dir build/valgrind -N -V | grep 'Test command:' || true)
  bad=$(grep -v valgrind <<<"$cmds" || true)
  if [[ -z $cmds || -n $bad ]]; then
    echo "build/valgrind: every test command must run under valgrind" \
      "(tests/CMakeLists.txt prefixes them with \${SSOCK_TEST_LAUNCHER}):"
    sed 's/^/  not under valgrind: /' <<<"${bad:-no test command at all}"
    return 1
  fi
  echo "build/valgrind: $(wc -l <<<"$cmds") commands, all under valgrind"
  test_full valgrind
}

# Leaks of every kind that is ours fail (still-reachable blocks are
# libcrypto's process-wide tables, not ours).
VALGRIND_LAUNCHER="valgrind;--error-exitcode=99;--leak-check=full"
VALGRIND_LAUNCHER+=";--errors-for-leak-kinds=definite,indirect,possible"
VALGRIND_LAUNCHER+=";--show-leak-kinds=definite,indirect,possible"
VALGRIND_LAUNCHER+=";--track-fds=no;--quiet"

examples_smoke() {
  scripts/smoke-examples.sh build/gcc "${VALGRIND[@]}"
  scripts/smoke-examples.sh build/asan
  scripts/smoke-examples.sh build/tsan
}

# ---------------------------------------------------------------- stages
stage deps        scripts/deps.sh
stage tools       check_tools
stage format      make --no-print-directory format-check
stage build-gcc   scripts/build.sh gcc
stage features    check_features gcc
stage abi         scripts/abi-check.sh build/gcc
stage test-gcc    test_full gcc
stage valgrind    scripts/build.sh valgrind "-DSSOCK_TEST_LAUNCHER=$VALGRIND_LAUNCHER"
stage test-valgrind run_ctest_valgrind
stage asan        scripts/build.sh asan
stage test-asan   test_full asan
stage tsan        scripts/build.sh tsan
stage test-tsan   test_full tsan
# Without TLS, and with each backend alone (option names: cmake/tls.cmake).
# Minimum counts: the plain programs (errors, addr, server, socket,
# lifecycle, faults, races, replays...) without TLS; + the TLS programs
# with one backend.
stage build-notls scripts/build.sh notls
stage test-notls  partial_test notls '^SKIP: (.*backend (mbedtls|openssl) not built|no TLS backend built)' 10
stage build-noopenssl scripts/build.sh noopenssl
stage test-noopenssl partial_test noopenssl '^SKIP: .*backend openssl not built' 16
stage build-nombedtls partial_build nombedtls -DSSOCK_TLS_MBEDTLS=OFF
stage test-nombedtls partial_test nombedtls '^SKIP: .*backend mbedtls not built' 16
# The other mbedTLS: the default builds use 3.6 LTS (build/deps); the
# system's 2.28 LTS stays supported, so the whole suite runs on it too.
stage build-mbedtls228 scripts/build.sh mbedtls228
stage features-228 check_features mbedtls228 2.28
stage test-mbedtls228  test_full mbedtls228
# Embedded Linux: cross-build for 64- and 32-bit ARM (mbedTLS 3.6 from the
# same Debian source, the target's cmocka) and run the suite under
# qemu-user. About 1.5-2 min each from a fresh clone, 1 min once cached.
stage cross-arm64 cross_test arm64
stage cross-armhf cross_test armhf
stage examples    examples_smoke
stage consumer    consumer_counted
stage fuzz        fuzz/run.sh all 10
# Mutation testing (scripts/mutants.sh, ~20 min on 2 cores) is too slow for
# every gate run: SSOCK_MUTANTS=1 adds it. CI sets it for every change that
# touches src/ (`git diff --quiet HEAD^ HEAD -- src/` fails), so each change
# of the library is mutation-tested once.
if [[ ${SSOCK_MUTANTS:-0} == 1 ]]; then
  stage mutants   scripts/mutants.sh
fi
# ----------------------------------------------------------------------

summary
echo "gate: $total_passed passed, $total_failed failed"
