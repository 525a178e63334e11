#!/usr/bin/env bash
# make mutants — mutation testing of the header's promises.
#
# Each mutant in scripts/mutants/list.tsv (one semantic change to src/:
# a timeout scaled, a wake-up delayed, a counter skipped, close_notify
# dropped, a cipher list widened, a check inverted, a socket option
# dropped, ...) is applied to a COPY of the tree, built, and run through
# ctest. A mutant is "caught" when some ctest entry that passed on the
# unmutated copy fails; it "survived" when they all pass. The list itself
# fails when a mutant's pattern no longer matches the source ("did not
# apply") or the mutated copy does not build: fix the list then.
#
#   scripts/mutants.sh [ID-REGEX]        all mutants, or those whose id matches
#
# Environment:
#   MUTANTS_DIR    work directory (default build/mutants): tree/ is the copy,
#                  build/ its build, logs/ one log per mutant
#   MUTANTS_LIST   the list (default scripts/mutants/list.tsv)
#   MUTANTS_EXCLUDE  ctest -E regex of entries not run (default: the fuzz
#                  corpus replays, test_hostile and test_races: those prove
#                  robustness, not the promises mutated here, and take most
#                  of the time). MUTANTS_EXCLUDE="" runs every entry.
#   MUTANTS_TIMEOUT  seconds one mutant's ctest may take (default 180, ~8x the
#                  unmutated run; timeout kills the whole process group; a
#                  mutant that makes the suite hang that long is caught)
#   MUTANTS_CMAKE_ARGS  extra configure arguments
#   JOBS           build and ctest parallelism (default 2)
#
# Exit status: 0 when every mutant applied, built and was caught; 1 otherwise.
# Cost: one configure + full build, then per mutant an incremental build
# (one source file + relinks) and a ctest run that stops at the first
# failure (ctest --stop-on-failure). See the README for measured times.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

WORK=${MUTANTS_DIR:-build/mutants}
LIST=${MUTANTS_LIST:-scripts/mutants/list.tsv}
JOBS=${JOBS:-2}
TIMEOUT=${MUTANTS_TIMEOUT:-180}
EXCLUDE=${MUTANTS_EXCLUDE-'^(fuzz_|test_hostile$|test_races$)'}
ONLY=${1:-}
CMAKE_ARGS=${MUTANTS_CMAKE_ARGS:-}
# The copy has no build/: point it at the same mbedTLS 3.6 the gate's build
# uses (build/deps from `make deps`) when there is one.
if [[ -z $CMAKE_ARGS && -d $ROOT/build/deps/mbedtls-3.6 ]]; then
  CMAKE_ARGS="-DSSOCK_MBEDTLS_ROOT=$ROOT/build/deps/mbedtls-3.6"
fi

case $WORK in /*) ;; *) WORK=$ROOT/$WORK ;; esac
TREE=$WORK/tree
BUILD=$WORK/build
LOGS=$WORK/logs
mkdir -p "$WORK" "$LOGS"
rm -f "$LOGS"/*.log

start=$SECONDS
say() { printf '%s\n' "$*"; }

# ---- the copy ----------------------------------------------------------------
# Everything the build reads, never build/ or .git/. Copied fresh each run
# (tar keeps the mtimes, so an unchanged file is not rebuilt).
mkdir -p "$TREE"
tar -C "$ROOT" --exclude=./build --exclude=./.git -cf - . | tar -C "$TREE" -xf -

build() {
  nice cmake --build "$BUILD" -j "$JOBS" >>"$1" 2>&1
}

# failed_tests LOG: the entries that did not pass: finished and not
# "Passed", or started and never finished (the run was killed).
failed_tests() {
  local started finished
  started=$(sed -n 's/^ *Start *[0-9]*: *\([^ ]*\).*/\1/p' "$1" | sort -u)
  finished=$(sed -n 's/^.*Test *#[0-9]*: *\([^ ]*\) .*/\1/p' "$1" | sort -u)
  {
    grep -E 'Test +#[0-9]+: ' "$1" | grep -v ' Passed ' |
      sed -n 's/^.*Test *#[0-9]*: *\([^ ]*\) .*/\1/p'
    comm -23 <(echo "$started") <(echo "$finished")
  } | grep -v '^$' | sort -u
}

run_ctest() {
  local sel=()
  [[ -n $EXCLUDE ]] && sel=(-E "$EXCLUDE")
  timeout --kill-after=10 "$TIMEOUT" \
    ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure "${sel[@]}" "$@"
}

say "mutants: configuring $BUILD (copy of the tree in $TREE)"
# A fresh cache: options left from an earlier run (another mbedTLS, say)
# must not mix with this one's.
rm -f "$BUILD/CMakeCache.txt"
# shellcheck disable=SC2086
if ! nice cmake -S "$TREE" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DSSOCK_WERROR=OFF \
  -DSSOCK_BUILD_FUZZ=OFF $CMAKE_ARGS >"$LOGS/configure.log" 2>&1; then
  say "mutants: configure failed (log $LOGS/configure.log)"
  exit 1
fi
if ! build "$LOGS/baseline-build.log"; then
  say "mutants: the unmutated copy does not build (log $LOGS/baseline-build.log)"
  exit 1
fi

# ---- baseline ----------------------------------------------------------------
# Entries that fail without any mutant cannot judge one: they are listed,
# excluded, and make the run fail (in CI the baseline must be clean).
say "mutants: baseline ctest"
t0=$SECONDS
run_ctest >"$LOGS/baseline.log" 2>&1
base_rc=$?
baseline_s=$((SECONDS - t0))
mapfile -t base_failed < <(failed_tests "$LOGS/baseline.log")
ntests=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$LOGS/baseline.log" | tail -n 1)
say "mutants: baseline: ${ntests:-?} entries in ${baseline_s}s, exit $base_rc"
if ((${#base_failed[@]} > 0)); then
  say "mutants: WARNING: failing without a mutant (excluded from judging):" \
    "${base_failed[*]}"
  EXCLUDE="${EXCLUDE:+$EXCLUDE|}^($(IFS='|'; echo "${base_failed[*]}"))\$"
fi
if ((base_rc != 0 && ${#base_failed[@]} == 0)); then
  say "mutants: baseline ctest failed without naming a test (log $LOGS/baseline.log)"
  exit 1
fi

# ---- the mutants -------------------------------------------------------------
ids=()
results=()
caught=0
survived=0
broken=0
# The list is read on fd 3 and every command gets /dev/null as stdin, so
# nothing a test or a build does can eat lines of the list.
exec </dev/null
while IFS=$'\t' read -r -u 3 id file code what; do
  [[ -z $id || $id == \#* ]] && continue
  [[ -n $ONLY && ! $id =~ $ONLY ]] && continue
  log=$LOGS/$id.log
  src=$TREE/$file
  ids+=("$id")
  m0=$SECONDS
  if [[ ! -f $src ]]; then
    results+=("LIST-ERROR  no such file $file")
    broken=$((broken + 1))
    continue
  fi
  cp "$src" "$WORK/orig"
  if ! perl -0777 -pi -e "$code" "$src" >"$log" 2>&1 || cmp -s "$src" "$WORK/orig"; then
    cp "$WORK/orig" "$src"
    results+=("LIST-ERROR  did not apply ($file): $what")
    broken=$((broken + 1))
    say "  $id: did not apply"
    continue
  fi
  diff -u "$WORK/orig" "$src" >>"$log"
  if ! build "$log"; then
    cp "$WORK/orig" "$src"
    touch "$src"
    results+=("LIST-ERROR  does not build: $what (log $log)")
    broken=$((broken + 1))
    say "  $id: does not build"
    continue
  fi
  run_ctest --stop-on-failure >>"$log" 2>&1
  rc=$?
  cp "$WORK/orig" "$src"
  touch "$src"
  secs=$((SECONDS - m0))
  if ((rc == 0)); then
    results+=("SURVIVED    ${secs}s  $what")
    survived=$((survived + 1))
  else
    by=$(failed_tests "$log" | paste -sd, -)
    ((rc == 124 || rc == 137)) && by="${by:+$by, }ctest timed out after ${TIMEOUT}s"
    results+=("caught      ${secs}s  $what  [by ${by:-?}]")
    caught=$((caught + 1))
  fi
  say "  $id: ${results[-1]%%  *} (${secs}s)"
done 3<"$LIST"
# Leave the copy unmutated and built for the next run.
build "$LOGS/restore-build.log" || true

# ---- report ------------------------------------------------------------------
say ""
say "================================================================"
say " mutants ($LIST)"
say "================================================================"
for i in "${!ids[@]}"; do
  printf '  %-26s %s\n' "${ids[$i]}" "${results[$i]}"
done
total=${#ids[@]}
say ""
say "mutants: $caught caught, $survived survived, $broken did not apply or" \
  "build, of $total; baseline ${baseline_s}s; total $((SECONDS - start))s"
if ((total > 0)); then
  say "mutants: score $((100 * caught / total))%"
fi
# The gate's count line ("WORD: P passed, F failed").
say "mutants: $caught passed, $((survived + broken)) failed"
((survived == 0 && broken == 0 && total > 0 && ${#base_failed[@]} == 0))
