#!/usr/bin/env bash
# The test gate (`make test`, `.ci/run`). Runs the stages below in order,
# stops at the first failure and prints a summary with the test counts.
#
# Adding a stage is one line at the bottom:  stage NAME command args...
# Each stage's output is shown and kept in build/gate-logs/NAME.log; a
# stage's test count is read from ctest's "N tests failed out of T" line or
# from a line "WORD: P passed, F failed".
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-2}
LOGS=build/gate-logs
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log

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

run_ctest() {
  local dir=$1
  shift
  ctest --test-dir "build/$dir" --output-on-failure -j "$JOBS" \
    --no-tests=error "$@"
}

# Install into build/stage and build tests/consumer against it, once through
# find_package(ssock) and once through pkg-config; run what was built.
consumer() {
  local stage_dir=$PWD/build/stage pcdir
  rm -rf "$stage_dir" build/consumer-cmake build/consumer-pc
  make --no-print-directory install PREFIX="$stage_dir"
  test -f "$stage_dir/include/ssock/ssock.h"

  cmake -S tests/consumer -B build/consumer-cmake \
    -DCMAKE_C_COMPILER=gcc -DCMAKE_PREFIX_PATH="$stage_dir" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  grep -q "^ssock_DIR:PATH=$stage_dir/" build/consumer-cmake/CMakeCache.txt
  cmake --build build/consumer-cmake -j "$JOBS"
  build/consumer-cmake/consumer
  build/consumer-cmake/consumer_static

  pcdir=$(dirname "$(find "$stage_dir" -name ssock.pc | head -n 1)")
  export PKG_CONFIG_PATH=$pcdir
  echo "pkg-config ssock: $(pkg-config --modversion ssock)" \
    "$(pkg-config --cflags --libs ssock)"
  mkdir -p build/consumer-pc
  # shellcheck disable=SC2046
  gcc -std=c11 -Wall -Wextra -Werror tests/consumer/consumer.c \
    -o build/consumer-pc/consumer $(pkg-config --cflags --libs ssock)
  LD_LIBRARY_PATH=$(pkg-config --variable=libdir ssock) \
    build/consumer-pc/consumer
  echo "consumer: 3 passed, 0 failed"
}

# The Valgrind tree must really run its tests under Valgrind.
run_ctest_valgrind() {
  local cmds
  cmds=$(ctest --test-dir build/valgrind -N -V | grep 'Test command:' || true)
  if ! grep -q valgrind <<<"$cmds"; then
    echo "no test command in build/valgrind runs under valgrind:" \
      "tests/CMakeLists.txt must prefix them with \${SSOCK_TEST_LAUNCHER}"
    return 1
  fi
  grep -v valgrind <<<"$cmds" | sed 's/^/not under valgrind: /' || true
  run_ctest valgrind
}

examples_smoke() {
  scripts/smoke-examples.sh build/gcc "${VALGRIND[@]}"
  scripts/smoke-examples.sh build/asan
  scripts/smoke-examples.sh build/tsan
}

# ---------------------------------------------------------------- stages
stage deps        scripts/deps.sh
stage format      make --no-print-directory format-check
stage build-gcc   scripts/build.sh gcc
stage test-gcc    run_ctest gcc
stage valgrind    scripts/build.sh valgrind
stage test-valgrind run_ctest_valgrind
stage asan        scripts/build.sh asan
stage test-asan   run_ctest asan
stage tsan        scripts/build.sh tsan
stage test-tsan   run_ctest tsan -L concurrency
stage examples    examples_smoke
stage consumer    consumer
stage fuzz        fuzz/run.sh all 60
# ----------------------------------------------------------------------

summary
echo "gate: $total_passed passed, $total_failed failed"
