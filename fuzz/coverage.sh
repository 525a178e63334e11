#!/usr/bin/env bash
# fuzz/coverage.sh — line coverage of the library's own sources (src/*.c)
# reached by replaying each committed corpus, one fuzz target at a time.
#
# Configures build/cov with clang and source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping in CMAKE_C_FLAGS,
# RelWithDebInfo at -O1 -g, -DSSOCK_WERROR=ON like the other trees: the
# coverage flags add no warning), builds only the replay_<target> programs
# (replay_main.c + the harness + ssock_static, all instrumented), replays
# fuzz/corpus/<target>/ with LLVM_PROFILE_FILE set per target, merges each
# target's raw profiles with llvm-profdata and prints a Markdown table, one
# row per target plus one for the union of all targets:
#   - lines of src/ covered, out of all of src/*.c (`llvm-cov report`
#     restricted to src/ by path filter; every replay program is passed, so
#     files a target's program does not link count as 0 %);
#   - the same out of the src/ lines linked into the target's own program;
#   - the three most-covered src/ files (line %, then lines covered).
# The harnesses, replay_main.c and the TLS libraries (not instrumented) are
# not counted.
#
# Only the TLS targets of the backends this configuration finds are built
# (as in fuzz/CMakeLists.txt). Bounded in time: the build runs under
# `timeout 1800`, every replay under `timeout` (COV_TIMEOUT seconds, default
# 900); a replay that fails or times out is reported, its row marked, and
# the script exits 1 at the end. llvm-cov reports are kept in
# build/cov/coverage/<target>.txt (and union.txt); for a per-line view:
#   llvm-cov-14 show -instr-profile=build/cov/coverage/<t>.profdata \
#     build/cov/fuzz/replay_<t> src/<file>.c
#
# Environment: COV_BUILD (default build/cov), COV_JOBS (parallel build
# jobs, default 2), COV_TIMEOUT (seconds per replay, default 900),
# LLVM_SUFFIX (default -14: llvm-profdata-14, llvm-cov-14; empty for the
# unsuffixed tools).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

build=${COV_BUILD:-build/cov}
jobs=${COV_JOBS:-2}
limit=${COV_TIMEOUT:-900}
sfx=${LLVM_SUFFIX--14}
profdata=llvm-profdata$sfx
llvmcov=llvm-cov$sfx
for tool in clang "$profdata" "$llvmcov" timeout; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "fuzz/coverage.sh: $tool not found" >&2; exit 2; }
done

covflags="-fprofile-instr-generate -fcoverage-mapping"
mkdir -p "$build"
# CMAKE_C_FLAGS also reaches the link of the executables, which pulls in
# the profile runtime.
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_C_FLAGS="$covflags" -DSSOCK_WERROR=ON \
  -DSSOCK_BUILD_TESTS=OFF -DSSOCK_BUILD_EXAMPLES=OFF -DSSOCK_BUILD_FUZZ=OFF \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }

# The replay targets this configuration has (TLS ones need their backend).
targets=()
avail=$(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(replay_[a-z_]*\).*/\1/p')
for t in addr lifecycle proxy tls_mbedtls tls_openssl; do
  if grep -qx "replay_$t" <<<"$avail"; then
    targets+=("$t")
  else
    echo "fuzz/coverage.sh: replay_$t not in this configuration, skipped" >&2
  fi
done
((${#targets[@]} > 0)) || { echo "fuzz/coverage.sh: no replay target" >&2; exit 1; }

timeout 1800 nice cmake --build "$build" -j "$jobs" --target "${targets[@]/#/replay_}" \
  >"$build/build.log" 2>&1 || { tail -n 50 "$build/build.log"; exit 1; }

out=$(cd "$build" && pwd -P)/coverage
rm -rf "$out"
mkdir -p "$out"

# `llvm-cov report` restricted to src/ (path filter), one line per file
# plus TOTAL. The first binary is the target's own; the others come as
# -object so that src/ files its binary does not link (proxy.c in most,
# everything but addr.c in replay_addr) count as 0 %: every row then has
# the same denominator, all of src/*.c. Functions outside src/ with the
# same name in several programs (LLVMFuzzerTestOneInput, harness helpers)
# make llvm-cov warn about "mismatched data"; src/ is the same code in
# every program, so its figures are not affected (warnings kept in *.err).
report() { # name|union profdata
  local first=$build/fuzz/replay_$1 objs o
  [[ $1 == union ]] && first=${bins[0]}
  objs=("$first")
  for o in "${bins[@]}"; do
    if [[ $o != "$first" ]]; then objs+=(-object "$o"); fi
  done
  "$llvmcov" report -instr-profile="$2" "${objs[@]}" "$root/src/" \
    >"$out/$1.txt" 2>"$out/$1.err"
}
# Report text -> "file lines missed" (llvm-cov 14 columns: Filename,
# Regions, Missed Regions, Cover, Functions, Missed Functions, Executed,
# Lines, Missed Lines, Cover[, Branches, Missed Branches, Cover]).
line_rows() {
  awk 'NF >= 10 && $8 ~ /^[0-9]+$/ && $9 ~ /^[0-9]+$/ { print $1, $8, $9 }' "$1"
}
# Same for the target's own program alone: the src/ lines linked into it.
own_total() { # name profdata
  "$llvmcov" report -instr-profile="$2" "$build/fuzz/replay_$1" "$root/src/" \
    2>/dev/null | awk '$1 == "TOTAL" { print $8, $9 }'
}

bins=()
for t in "${targets[@]}"; do bins+=("$build/fuzz/replay_$t"); done

failed=()
declare -A note
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  if [[ ! -d $corpus ]]; then
    echo "fuzz/coverage.sh: no corpus $corpus" >&2
    failed+=("$t"); note[$t]=" (no corpus)"; continue
  fi
  start=$(date +%s)
  rc=0
  LLVM_PROFILE_FILE="$out/$t-%p.profraw" \
    timeout -k 10 "$limit" "$build/fuzz/replay_$t" "$corpus" \
    >"$out/$t.replay.log" 2>&1 || rc=$?
  echo "fuzz/coverage.sh: $(tail -n 1 "$out/$t.replay.log") [rc $rc, $(($(date +%s) - start)) s]" >&2
  if ((rc != 0)); then
    failed+=("$t")
    if ((rc == 124 || rc == 137)); then note[$t]=" (timed out after $limit s)"
    else note[$t]=" (replay failed, rc $rc)"; fi
  fi
  shopt -s nullglob
  raws=("$out/$t"-*.profraw)
  shopt -u nullglob
  if ((${#raws[@]} == 0)); then
    note[$t]="${note[$t]:-} (no profile written)"
    continue
  fi
  "$profdata" merge -sparse "${raws[@]}" -o "$out/$t.profdata"
  report "$t" "$out/$t.profdata"
done

# The union of every target's profile.
shopt -s nullglob
profs=("$out"/*.profdata)
shopt -u nullglob
if ((${#profs[@]} > 0)); then
  "$profdata" merge -sparse "${profs[@]}" -o "$out/union.profdata"
  report union "$out/union.profdata"
fi

pct() { awk -v c="$1" -v n="$2" 'BEGIN { if (n == 0) print "0.0"; else printf "%.1f", 100 * c / n }'; }
row() { # label name [own-program column]
  local label=$1 t=$2 lines missed top own=""
  read -r _ lines missed < <(line_rows "$out/$t.txt" | awk '$1 == "TOTAL"')
  # Most covered: by line %, then by lines covered; files with none left out.
  top=$(line_rows "$out/$t.txt" | awk '$1 != "TOTAL" && $2 > $3 {
          printf "%s %d %d %.6f\n", $1, $2 - $3, $2, ($2 - $3) / $2 }' |
        sort -k4,4gr -k2,2nr | head -n 3 |
        while read -r f c n _; do
          printf '`%s` %s%%, ' "${f##*/}" "$(pct "$c" "$n")"
        done)
  if [[ $t != union ]]; then
    local ol om
    read -r ol om < <(own_total "$t" "$out/$t.profdata")
    own=" $((ol - om)) / $ol ($(pct "$((ol - om))" "$ol")%) |"
  else
    own=" — |"
  fi
  printf '| %s | %d / %d (%s%%) |%s %s |\n' "$label" "$((lines - missed))" \
    "$lines" "$(pct "$((lines - missed))" "$lines")" "$own" "${top%, }"
}

echo
echo "| target | lines covered in src/ | of the src/ lines linked into its replay program | three most-covered src/ files |"
echo "|---|---|---|---|"
for t in "${targets[@]}"; do
  if [[ -f $out/$t.txt ]]; then
    row "\`$t\`${note[$t]:-}" "$t"
  else
    echo "| \`$t\`${note[$t]:-} | — | — | — |"
  fi
done
if [[ -f $out/union.txt ]]; then row "all targets (union)" union; fi
echo
echo "Reports: $out/<target>.txt (llvm-cov report, src/ only), union: $out/union.txt"

if ((${#failed[@]} > 0)); then
  echo "fuzz/coverage.sh: failed: ${failed[*]}" >&2
  exit 1
fi
