#!/usr/bin/env bash
# The ssock benchmark driver (`make bench`): bench/run.sh BUILD_DIR
#
# Starts every server on 127.0.0.1, port 0 (the port is read from its
# "listening on HOST:PORT" line), runs each figure against ssock-echo and
# against the matching baseline in the same run, alternating, ROUNDS times,
# and prints one table (medians of the rounds): figure | ssock | baseline |
# ratio | target. Servers run pinned to CPU 1 and the load generator to
# CPU 0 when taskset and two CPUs exist. Every process it starts is stopped
# by its PID; every count and duration is bounded; past BUDGET_S seconds
# the remaining figures are skipped, so the run always ends by itself.
#
# Environment: ROUNDS (3), DUR_MS (1500, measuring window per run),
# SCALE_DUR_MS (1000), WARMUP_MS (300), IDLE_CONNS (1000), SLOW_K (200),
# BUDGET_S (570), ONLY (a regex: run only the sections it matches:
# plain, scaling, tls, tlsbulk, tlsscaling, slowloris, memory, overshoot).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build/gcc}
[[ $build = /* ]] || build=$repo/$build
bin=$build/bench
echo_bin=$build/examples/ssock-echo
certs=$repo/certs

ROUNDS=${ROUNDS:-3}
DUR_MS=${DUR_MS:-1500}
SCALE_DUR_MS=${SCALE_DUR_MS:-1000}
WARMUP_MS=${WARMUP_MS:-300}
IDLE_CONNS=${IDLE_CONNS:-1000}
SLOW_K=${SLOW_K:-200}
BUDGET_S=${BUDGET_S:-570}
ONLY=${ONLY:-.}

for t in loadgen base_poll_echo accept_overshoot idle_mem; do
  if [[ ! -x $bin/$t ]]; then
    echo "run.sh: $bin/$t is missing: build first (make build)" >&2
    exit 1
  fi
done
[[ -x $echo_bin ]] || { echo "run.sh: $echo_bin is missing" >&2; exit 1; }

tmp=$(mktemp -d)
log=$build/bench-raw.log
table=$build/bench-table.txt
: >"$log"
: >"$table"
server_pid=
client_pid=
start_s=$SECONDS

cleanup() {
  [[ -n $client_pid ]] && kill -KILL "$client_pid" 2>/dev/null
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

srv_cpu=()
cli_cpu=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
  srv_cpu=(taskset -c 1)
  cli_cpu=(taskset -c 0)
fi

ssock_tls=no
if "$echo_bin" --help 2>&1 | grep -q -- '--tls'; then ssock_tls=yes; fi
have() { [[ -x $bin/$1 ]]; }

say() { printf '%s\n' "$*" | tee -a "$log" >&2; }
over_budget() { ((SECONDS - start_s >= BUDGET_S)); }

# ------------------------------------------------------------ servers
# A server is named by a spec string; server_cmd fills CMD for it.
#   ssock-plain | ssock-poll | poll | rawthreads | ssock-tls:BACKEND:CERT |
#   base:BACKEND:MODE:CERT
# CERT is ecdsa or rsa; MODE is serial or threads.
server_cmd() {
  local spec=$1 kind backend mode cert
  IFS=: read -r kind backend mode cert <<<"$spec"
  case $kind in
    ssock-plain)
      CMD=("$echo_bin" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 4096) ;;
    ssock-poll)
      CMD=("$echo_bin" --poll --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 4096) ;;
    poll)
      CMD=("$bin/base_poll_echo" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 4096) ;;
    rawthreads)
      CMD=("$bin/base_poll_echo" --threads --port 0 --addr 127.0.0.1
           --backlog 1024 --max-conns 4096) ;;
    ssock-tls)
      cert=$mode
      CMD=("$echo_bin" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 4096 --tls --backend "$backend"
           --cert "$certs/server-$cert.pem" --key "$certs/server-$cert.key"
           --max-handshakes 1024 --handshake-timeout 10000) ;;
    base)
      CMD=("$bin/base_$backend" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 4096 --tls --"$mode"
           --cert "$certs/server-$cert.pem" --key "$certs/server-$cert.key"
           --handshake-timeout 10000) ;;
    *) echo "run.sh: bad server spec $spec" >&2; return 1 ;;
  esac
}

# Is the server of this spec available in this build?
server_ok() {
  local kind backend
  IFS=: read -r kind backend _ <<<"$1"
  case $kind in
    ssock-tls) [[ $ssock_tls = yes ]] ;;
    base) have "base_$backend" ;;
    *) true ;;
  esac
}

# start_server SPEC: sets server_pid and port, or returns 1.
start_server() {
  local i
  server_cmd "$1" || return 1
  : >"$tmp/srv.out"
  "${srv_cpu[@]}" "${CMD[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" &
  server_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -q '^listening on ' "$tmp/srv.out" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/srv.out")
  if [[ -z $port ]]; then
    say "  server $1 did not start: $(head -c 300 "$tmp/srv.err")"
    stop_server
    return 1
  fi
}

# SIGTERM, up to 3 s, then SIGKILL; always by PID.
stop_server() {
  local i
  [[ -n $server_pid ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null
  for ((i = 0; i < 60; i++)); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=
}

# loadgen ARGS...: one run against $port; prints its result line.
loadgen() {
  timeout -k 2 120 "${cli_cpu[@]}" "$bin/loadgen" --host 127.0.0.1 \
    --port "$port" "$@" 2>>"$tmp/lg.err"
}

# field LINE KEY
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

# measure SPEC LOADGEN-ARGS...: one loadgen result line from a fresh server.
measure() {
  local spec=$1 line
  shift
  if ! start_server "$spec"; then echo "failed=1"; return; fi
  line=$(loadgen "$@")
  stop_server
  echo "    $spec $*: $line" >>"$log"
  echo "${line:-failed=1}"
}

median() {
  local v=("$@") n
  mapfile -t v < <(printf '%s\n' "${v[@]}" | grep -E '^[0-9.]+$' | sort -g)
  n=${#v[@]}
  ((n > 0)) || { echo n/a; return; }
  echo "${v[$((n / 2))]}"
}

ratio() {
  [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] || { echo n/a; return; }
  awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'
}

fmt() {
  [[ $1 =~ ^[0-9.]+$ ]] || { echo "$1"; return; }
  awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else printf "%.2f", x }'
}

# met VALUE TARGET: "yes", "NO" or "-" for a target ">= X", ">= X vs serial"
# (VALUE is the ratio) or "<= X ms" / "<= +X B" (VALUE is ssock's figure or
# the difference).
met() {
  local val=$1 tgt=$2 op lim
  read -r op lim _ <<<"$tgt"
  lim=${lim#+}
  [[ $val =~ ^[-+]?[0-9.]+$ && $lim =~ ^[0-9.]+$ ]] || { echo -; return; }
  val=${val#+}
  case $op in
    ">=") awk -v a="$val" -v b="$lim" 'BEGIN { print (a >= b) ? "yes" : "NO" }' ;;
    "<=") awk -v a="$val" -v b="$lim" 'BEGIN { print (a <= b) ? "yes" : "NO" }' ;;
    *) echo - ;;
  esac
}

# row FIGURE SSOCK BASELINE RATIO TARGET [BETTER] [MET] [RUNS]
# ratio = ssock / baseline; BETTER says which direction is better for this
# figure (higher: throughput; lower: latency, memory, overshoot); MET is
# computed from the value and the target; RUNS counts the runs behind the
# medians and every loadgen error and failed run (ssock / baseline).
row() {
  printf '%-58s | %10s | %10s | %8s | %-6s | %-16s | %-3s | %s\n' "$1" \
    "$(fmt "$2")" "$(fmt "$3")" "$4" "${6:--}" "$5" "${7:--}" "${8:--}" |
    tee -a "$table"
}

section() {
  printf '\n%s\n' "$1" | tee -a "$table"
  printf '%-58s | %10s | %10s | %8s | %-6s | %-16s | %-3s | %s\n' figure \
    ssock baseline "ssock/bl" better target met \
    "runs ok, errors (ssock / baseline)" | tee -a "$table"
}

# runs_note LINES: "N ok, E errors" over loadgen result lines (one per
# line); a run that printed no result or failed counts as not ok.
runs_note() {
  local ok=0 bad=0 err=0 l e
  while IFS= read -r l; do
    [[ -z $l ]] && continue
    e=$(field "$l" errors)
    [[ $e =~ ^[0-9]+$ ]] && err=$((err + e))
    if [[ $l == *failed=1* || -z $(field "$l" ops)$(field "$l" held) ]]; then
      bad=$((bad + 1))
    else
      ok=$((ok + 1))
    fi
  done <<<"$1"
  if ((bad > 0)); then
    echo "$ok ok + $bad FAILED, $err errors"
  else
    echo "$ok ok, $err errors"
  fi
}

want() { [[ $1 =~ $ONLY ]]; }

spec_name() {
  case $1 in
    poll) echo "poll loop" ;;
    rawthreads) echo "raw threads" ;;
    base:*:serial:*) echo "serial" ;;
    base:*:threads:*) echo "threads" ;;
    *) echo "$1" ;;
  esac
}

# compare LABEL TARGET KEYS SSOCK_SPEC BASE_SPECS LOADGEN-ARGS...
# KEYS: result keys, comma-separated (the first is the figure, the others
# get "  - KEY" rows); BASE_SPECS: comma-separated. Alternates ssock and
# the baselines for ROUNDS rounds; one row per key and baseline, medians.
compare() {
  local label=$1 target=$2 keys=$3 sspec=$4 bspecs=$5 r i k
  shift 5
  local -a bases keyv ssl=()
  local -A bl=()
  IFS=, read -r -a bases <<<"$bspecs"
  IFS=, read -r -a keyv <<<"$keys"
  if over_budget; then
    row "$label" skipped skipped n/a "$target" - "NO" "skipped: time budget"
    return
  fi
  say "  $label"
  for ((r = 0; r < ROUNDS; r++)); do
    server_ok "$sspec" && ssl+=("$(measure "$sspec" "$@")")
    for i in "${!bases[@]}"; do
      server_ok "${bases[$i]}" || continue
      bl[$i]+="$(measure "${bases[$i]}" "$@")"$'\n'
    done
  done
  local snote
  snote=$(runs_note "$(printf '%s\n' "${ssl[@]}")")
  for k in "${!keyv[@]}"; do
    local key=${keyv[$k]} s b l t v q m better
    local -a vals=()
    for v in "${ssl[@]}"; do vals+=("$(field "$v" "$key")"); done
    s=$(median "${vals[@]}")
    server_ok "$sspec" || s=n/a
    case $key in
      *_us | *_ms) better=lower ;;
      *) better=higher ;;
    esac
    for i in "${!bases[@]}"; do
      vals=()
      while IFS= read -r v; do
        [[ -n $v ]] && vals+=("$(field "$v" "$key")")
      done <<<"${bl[$i]:-}"
      b=$(median "${vals[@]}")
      server_ok "${bases[$i]}" || b=n/a
      q=$(ratio "$s" "$b")
      if ((k == 0)); then l=$label t=$target; else l="  - $key" t="-"; fi
      ((${#bases[@]} > 1)) && l="$l (vs $(spec_name "${bases[$i]}"))"
      # A target "vs serial" is judged on the serial row only.
      m=-
      if [[ $t != - ]]; then
        if [[ $t != *"vs serial"* || ${bases[$i]} == *:serial:* ]]; then
          m=$(met "$q" "$t")
        fi
      fi
      row "$l" "$s" "$b" "$q" "$t" "$better" "$m" \
        "$snote / $(runs_note "${bl[$i]:-}")"
    done
  done
}

echo "ssock benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs," \
  "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)" | tee -a "$table"
echo "rounds=$ROUNDS window=${DUR_MS}ms warmup=${WARMUP_MS}ms" \
  "pinning=${srv_cpu[*]:-none} (server) ${cli_cpu[*]:-none} (loadgen)" \
  "ssock-echo TLS: $ssock_tls" | tee -a "$table"
echo "(raw per-round lines: $log)" >&2

W=(--warmup-ms "$WARMUP_MS" --duration-ms "$DUR_MS")
PB=poll,rawthreads
# Scaling runs warm up longer with more clients: a thread-per-connection
# server needs ~1-2 ms per new thread on one core, and with N handshakes in
# lockstep the first one finishes only after ~N of them were worked on.
# sw CLIENTS MS_PER_CLIENT: sets SW to the loadgen timing flags.
sw() {
  local w=$(($1 * $2))
  ((w < WARMUP_MS)) && w=$WARMUP_MS
  SW=(--warmup-ms "$w" --duration-ms "$SCALE_DUR_MS")
}

# ------------------------------------------------------------ plain
if want plain; then
  section "plain: ssock-echo vs base_poll_echo (poll loop; --threads: raw thread per connection like ssock-echo)"
  compare "connections/s, 8 clients" ">= 0.95" rate ssock-plain "$PB" \
    --mode connect --conns 8 "${W[@]}"
  compare "echo round trips/s, 1 client, 64 B" ">= 0.95" rate,p50_us,p99_us \
    ssock-plain "$PB" --mode echo --conns 1 --size 64 "${W[@]}"
  compare "echo round trips/s, 8 clients, 64 B" ">= 0.95" rate,p50_us,p99_us \
    ssock-plain "$PB" --mode echo --conns 8 --size 64 "${W[@]}"
  compare "bulk MiB/s, 1 client" ">= 0.95" mibps ssock-plain "$PB" \
    --mode bulk --conns 1 "${W[@]}"
  # Same design on both sides: one poll() loop (ssock-echo --poll).
  compare "echo round trips/s, 8 clients, 64 B, poll loop both sides" \
    ">= 0.95" rate,p99_us ssock-poll poll --mode echo --conns 8 --size 64 \
    "${W[@]}"
  compare "connections/s, 8 clients, poll loop both sides" ">= 0.95" rate \
    ssock-poll poll --mode connect --conns 8 "${W[@]}"
fi

if want scaling; then
  section "plain scaling (same servers)"
  for c in 10 100 1000; do
    sw "$c" 2
    compare "connections/s, $c clients" ">= 0.95" rate ssock-plain "$PB" \
      --mode connect --conns "$c" "${SW[@]}"
  done
  for c in 10 100 1000; do
    sw "$c" 2
    compare "echo round trips/s, $c clients" ">= 0.95" rate,p99_us \
      ssock-plain "$PB" --mode echo --conns "$c" --size 64 "${SW[@]}"
  done
fi

# ------------------------------------------------------------ TLS
if want tls; then
  section "TLS handshakes/s (full, no resumption, + 32 B echo), 8 clients; server on 1 CPU"
  for backend in openssl mbedtls; do
    for ver in 1.2 1.3; do
      [[ $backend = mbedtls && $ver = 1.3 ]] && continue # 2.28: TLS 1.2 only
      for cert in ecdsa rsa; do
        compare "$backend TLS $ver ${cert^^}" ">= 1.0 vs serial" rate \
          "ssock-tls:$backend:$cert" \
          "base:$backend:serial:$cert,base:$backend:threads:$cert" \
          --mode handshake --conns 8 --size 32 --tls-version "$ver" "${W[@]}"
      done
    done
  done
fi

if want tlsbulk; then
  section "TLS bulk MiB/s, 1 client (ECDSA; baseline: thread per connection)"
  for backend in openssl mbedtls; do
    compare "$backend bulk MiB/s" ">= 0.95" mibps "ssock-tls:$backend:ecdsa" \
      "base:$backend:threads:ecdsa" --mode bulk --tls --conns 1 "${W[@]}"
  done
fi

if want tlsscaling; then
  section "TLS scaling: handshakes/s (openssl, TLS 1.3, ECDSA)"
  for c in 10 100 1000; do
    sw "$c" 3
    compare "handshakes/s, $c clients" ">= 1.0 vs serial" rate,p99_us \
      ssock-tls:openssl:ecdsa \
      "base:openssl:serial:ecdsa,base:openssl:threads:ecdsa" \
      --mode handshake --conns "$c" --size 32 --tls-version 1.3 "${SW[@]}"
  done
fi

# ------------------------------------------------------------ slowloris
slowloris_one() { # SPEC -> "p50 ms" or "> N ms"
  local line
  if ! server_ok "$1" || ! start_server "$1"; then echo n/a; return; fi
  line=$(loadgen --mode slowloris --conns "$SLOW_K" --samples 5 --wait-ms 3000)
  stop_server
  echo "    $1 slowloris: $line" >>"$log"
  if [[ -z $line ]]; then
    echo "failed"
  elif [[ $(field "$line" timeouts) != 0 ]]; then
    echo "> 3000"
  else
    field "$line" p50_ms
  fi
}

if want slowloris && ! over_budget; then
  section "good client's handshake ms with $SLOW_K silent + $SLOW_K half-ClientHello clients (lower is better)"
  for backend in openssl mbedtls; do
    say "  slowloris $backend"
    s=$(slowloris_one "ssock-tls:$backend:ecdsa")
    b=$(slowloris_one "base:$backend:serial:ecdsa")
    t=$(slowloris_one "base:$backend:threads:ecdsa")
    row "$backend vs serial baseline" "$s" "$b" "$(ratio "$s" "$b")" \
      "<= 50 ms" lower "$(met "$s" "<= 50 ms")" "p50 of 5 good clients"
    row "$backend vs threads baseline" "$s" "$t" "$(ratio "$s" "$t")" \
      "<= 50 ms" lower "$(met "$s" "<= 50 ms")" "p50 of 5 good clients"
  done
fi

# ------------------------------------------------------------ memory
rss_kib() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2>/dev/null; }

# idle_bytes SPEC LOADGEN-ARGS...: server VmRSS delta / connections held.
idle_bytes() {
  local spec=$1 r0 r1 held i line
  shift
  if ! server_ok "$spec" || ! start_server "$spec"; then echo n/a; return; fi
  sleep 0.2
  r0=$(rss_kib "$server_pid")
  : >"$tmp/idle.out"
  timeout -k 2 120 "${cli_cpu[@]}" "$bin/loadgen" --host 127.0.0.1 \
    --port "$port" --mode idle --conns "$IDLE_CONNS" --hold 60 "$@" \
    >"$tmp/idle.out" 2>>"$tmp/lg.err" &
  client_pid=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q '^ready' "$tmp/idle.out" && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.05
  done
  sleep 0.5
  r1=$(rss_kib "$server_pid")
  held=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$tmp/idle.out")
  kill -TERM "$client_pid" 2>/dev/null
  wait "$client_pid" 2>/dev/null
  client_pid=
  stop_server
  echo "    $spec idle: rss ${r0} -> ${r1} KiB, held=${held:-0}" >>"$log"
  if [[ -z $held || $held == 0 || -z $r0 || -z $r1 ]]; then
    echo err
  else
    awk -v a="$r0" -v b="$r1" -v n="$held" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }'
  fi
}

if want memory && ! over_budget; then
  section "server memory per idle connection, bytes (1 KiB = 1024 B; VmRSS delta x 1024 / connections held of $IDLE_CONNS; lower is better)"
  say "  memory"
  line=$("$bin/idle_mem" --conns "$IDLE_CONNS")
  echo "    idle_mem: $line" >>"$log"
  s=$(field "$line" ssock_bytes_per_conn)
  b=$(field "$line" raw_bytes_per_conn)
  d=$(awk -v a="$s" -v b="$b" 'BEGIN { printf "%+.0f", a - b }')
  row "plain, library only (idle_mem: ssock_socket vs raw fd)" "$s" "$b" \
    "$d B" "<= +512 B" lower "$(met "$d" "<= +512 B")"
  s=$(idle_bytes ssock-plain --size 1)
  b=$(idle_bytes rawthreads --size 1)
  d=n/a
  [[ $s =~ ^-?[0-9]+$ && $b =~ ^-?[0-9]+$ ]] && d="$(printf '%+d B' $((s - b)))"
  row "plain, whole server: ssock-echo vs raw threads" "$s" "$b" "$d" "-" lower
  b=$(idle_bytes poll --size 1)
  row "plain, whole server: ssock-echo vs poll loop" "$s" "$b" "n/a" "-" lower
  for backend in openssl mbedtls; do
    s=$(idle_bytes "ssock-tls:$backend:ecdsa" --tls --size 1)
    b=$(idle_bytes "base:$backend:threads:ecdsa" --tls --size 1)
    d=n/a
    [[ $s =~ ^-?[0-9]+$ && $b =~ ^-?[0-9]+$ ]] && d="$(printf '%+d B' $((s - b)))"
    row "TLS $backend: ssock-echo vs threads baseline" "$s" "$b" "$d" \
      "<= +2048 B" lower "$(met "${d% B}" "<= +2048 B")"
  done
fi

# ------------------------------------------------------------ overshoot
if want overshoot && ! over_budget; then
  section "accept() timeout overshoot, ms (ssock accept vs raw poll(); lower is better)"
  say "  accept overshoot"
  while read -r line; do
    echo "    accept_overshoot: $line" >>"$log"
    t=$(field "$line" timeout_ms)
    n=$(field "$line" runs)
    for p in p50 p99; do
      s=$(field "$line" "ssock_${p}_ms")
      b=$(field "$line" "raw_${p}_ms")
      pl=$p
      # Fewer than 100 runs: the "p99" is the maximum; say so.
      [[ $p = p99 && $n =~ ^[0-9]+$ ]] && ((n < 100)) && pl="max"
      if [[ $p = p99 ]]; then
        row "timeout $t ms, $pl of $n runs, $(field "$line" ssock_early) early" \
          "$s" "$b" "-" "<= 5 ms" lower "$(met "$s" "<= 5 ms")" \
          "$([[ $pl = max ]] && echo "p99 needs >= 100 runs: this is the maximum")"
      else
        row "timeout $t ms, $pl of $n runs, $(field "$line" ssock_early) early" \
          "$s" "$b" "-" "-" lower
      fi
    done
  done < <("${srv_cpu[@]}" "$bin/accept_overshoot")
fi

echo
echo "total $((SECONDS - start_s)) s; table saved in $table; raw runs in $log"
