#!/usr/bin/env bash
# fuzz/run.sh TARGET SECONDS [libFuzzer args...]
#
# Build the libFuzzer binary fuzz_TARGET with clang in build/fuzz
# (-DSSOCK_BUILD_FUZZ=ON) and fuzz for SECONDS seconds, starting from the
# committed corpus fuzz/corpus/TARGET/. New inputs go to a scratch corpus,
# build/fuzz/new-corpus/TARGET/, never into the committed one; crashes,
# leaks and timeouts go to build/fuzz/artifacts/TARGET/ and make the script
# fail. TARGET "all" runs every target built, one after the other.
#
# Used by `make fuzz TARGET=<name> SECONDS=<n>` and by the gate (60 s per
# target). Without clang it says so and exits 0.
#
# Environment: FUZZ_BUILD (default build/fuzz), FUZZ_JOBS (parallel build
# jobs), FUZZ_TIMEOUT (seconds per input before it counts as a hang, 10).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: fuzz/run.sh TARGET|all SECONDS [libFuzzer args...]}
seconds=${2:?usage: fuzz/run.sh TARGET|all SECONDS [libFuzzer args...]}
shift 2

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz/run.sh: clang not found: libFuzzer campaigns skipped"
  exit 0
fi

build=${FUZZ_BUILD:-build/fuzz}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DSSOCK_BUILD_FUZZ=ON -DSSOCK_BUILD_TESTS=OFF -DSSOCK_BUILD_EXAMPLES=OFF \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }

targets=()
if [[ $target == all ]]; then
  for f in fuzz/fuzz_*.c; do
    t=${f#fuzz/fuzz_}
    t=${t%.c}
    # Only the targets this configuration builds (TLS needs its backend).
    if grep -q "^fuzz_$t:" <(cmake --build "$build" --target help | sed 's/^\.\.\. //;s/$/:/'); then
      targets+=("$t")
    fi
  done
else
  targets=("$target")
fi

for t in "${targets[@]}"; do
  if [[ ! -d fuzz/corpus/$t ]]; then
    echo "fuzz/run.sh: no corpus fuzz/corpus/$t (see fuzz/corpus/)" >&2
    exit 2
  fi
  cmake --build "$build" -j "$jobs" --target "fuzz_$t"
done

passed=0
failed=0
for t in "${targets[@]}"; do
  new=$build/new-corpus/$t
  art=$build/artifacts/$t
  mkdir -p "$new" "$art"
  args=(-max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}"
        -print_final_stats=1 -artifact_prefix="$art/")
  case $t in
    tls_*) args+=(-dict=fuzz/tls.dict -max_len=32768) ;;
    lifecycle) args+=(-max_len=256) ;;
    addr) args+=(-max_len=128) ;;
    proxy) args+=(-dict=fuzz/proxy.dict -max_len=4200) ;;
    cidr) args+=(-dict=fuzz/cidr.dict -max_len=2048) ;;
  esac
  echo "fuzz/run.sh: fuzz_$t for ${seconds}s (new inputs: $new, crashes: $art)"
  # The scratch corpus comes first: libFuzzer writes new inputs there.
  if "$build/fuzz/fuzz_$t" "${args[@]}" "$@" "$new" "fuzz/corpus/$t"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "fuzz/run.sh: fuzz_$t FAILED; the input is in $art/" >&2
  fi
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
