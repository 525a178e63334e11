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
# BUDGET_S (1500), ONLY (a regex: run only the sections it matches:
# plain, scaling, tls, tlsbulk, tlsscaling, slowloris, memory, overshoot,
# and the nginx-anchored event-serving set of issue 11: nginx-cpu,
# nginx-mem, nginx-inflight, nginx-idle10k, nginx-plain; ONLY=nginx runs
# that set). Issue 11's knobs: CPU_N (2000 handshakes per CPU run),
# CPU_CONNS (8), CPU_ONLY (regex over the server specs of nginx-cpu and
# nginx-mem, e.g. 'nginx|event-tls:openssl'), INFLIGHT ("10 100 1000 5000" stalled handshakes),
# INFLIGHT_N (600 good handshakes measured at each), BIG_IDLE (10000),
# NGINX (nginx binary; its rows say "not run: nginx missing" without it),
# ECHO_BIN (ssock-echo to test, default BUILD/examples/ssock-echo),
# B228 (optional build tree whose mbedTLS is the system's 2.28: adds the
# mbedTLS 2.28 rows).
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
BUDGET_S=${BUDGET_S:-1500}
ONLY=${ONLY:-.}
CPU_N=${CPU_N:-2000}
CPU_CONNS=${CPU_CONNS:-8}
CPU_ONLY=${CPU_ONLY:-.}
INFLIGHT=${INFLIGHT:-10 100 1000 5000}
INFLIGHT_N=${INFLIGHT_N:-600}
BIG_IDLE=${BIG_IDLE:-10000}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}
B228=${B228:-}
[[ -z $B228 || $B228 = /* ]] || B228=$repo/$B228
echo_bin=${ECHO_BIN:-$echo_bin}
[[ $echo_bin = /* ]] || echo_bin=$repo/$echo_bin
# Thousands of connections on both sides: the hard limit for everyone.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

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
backend_pid= # nginx rows: the plain echo server behind nginx
worker_pid=  # nginx rows: nginx's worker (server_pid is its master)
start_s=$SECONDS

cleanup() {
  [[ -n $client_pid ]] && kill -KILL "$client_pid" 2>/dev/null
  [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
  [[ -n $worker_pid ]] && kill -KILL "$worker_pid" 2>/dev/null
  [[ -n $backend_pid ]] && kill -KILL "$backend_pid" 2>/dev/null
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
# ssock-echo --event (issue 11): its rows run once the flag exists.
ssock_event=no
if "$echo_bin" --help 2>&1 | grep -q -- '--event'; then ssock_event=yes; fi
have_nginx=no
[[ -x $NGINX && -f $NGINX_MODULE ]] && have_nginx=yes
have() { [[ -x $bin/$1 ]]; }

say() { printf '%s\n' "$*" | tee -a "$log" >&2; }
over_budget() { ((SECONDS - start_s >= BUDGET_S)); }

# ------------------------------------------------------------ servers
# A server is named by a spec string; server_cmd fills CMD for it.
#   ssock-plain | ssock-poll | poll | epoll | rawthreads |
#   ssock-tls:BACKEND:CERT | base:BACKEND:MODE:CERT |
#   ssock-event | ssock-event-tls:BACKEND:CERT | nginx:CERT
# CERT is ecdsa or rsa; MODE is serial or threads. BACKEND mbedtls228 is
# mbedtls from the B228 tree (ssock-echo and base_mbedtls built there).
# HS_TIMEOUT (ms) and MAX_HS set the TLS servers' handshake timeout and
# handshakes in flight (the in-flight curve raises both).
HS_TIMEOUT=10000
MAX_HS=1024
tree_bins() { # BACKEND -> EBIN (ssock-echo), BBIN (bench dir), BK (backend)
  EBIN=$echo_bin BBIN=$bin BK=$1
  if [[ $1 = mbedtls228 ]]; then
    EBIN=$B228/examples/ssock-echo BBIN=$B228/bench BK=mbedtls
  fi
}
server_cmd() {
  local spec=$1 kind backend mode cert
  IFS=: read -r kind backend mode cert <<<"$spec"
  case $kind in
    ssock-event)
      CMD=("$echo_bin" --event --workers 1 --port 0 --addr 127.0.0.1
           --backlog 1024 --max-conns 16384) ;;
    ssock-event-tls)
      tree_bins "$backend"
      CMD=("$EBIN" --event --workers 1 --port 0 --addr 127.0.0.1
           --backlog 1024 --max-conns 16384 --tls --backend "$BK"
           --cert "$certs/server-$mode.pem" --key "$certs/server-$mode.key"
           --max-handshakes "$MAX_HS" --handshake-timeout "$HS_TIMEOUT") ;;
    epoll)
      CMD=("$bin/base_epoll_echo" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 16384) ;;
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
      tree_bins "$backend"
      CMD=("$EBIN" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 16384 --tls --backend "$BK"
           --cert "$certs/server-$cert.pem" --key "$certs/server-$cert.key"
           --max-handshakes "$MAX_HS" --handshake-timeout "$HS_TIMEOUT") ;;
    base)
      tree_bins "$backend"
      CMD=("$BBIN/base_$BK" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 4096 --tls --"$mode"
           --cert "$certs/server-$cert.pem" --key "$certs/server-$cert.key"
           --handshake-timeout "$HS_TIMEOUT") ;;
    nginx) # started by start_nginx; CMD is its plain backend
      CMD=("$bin/base_poll_echo" --port 0 --addr 127.0.0.1 --backlog 1024
           --max-conns 16384) ;;
    *) echo "run.sh: bad server spec $spec" >&2; return 1 ;;
  esac
}

# Is the server of this spec available in this build?
server_ok() {
  local kind backend
  IFS=: read -r kind backend _ <<<"$1"
  if [[ $backend = mbedtls228 ]]; then
    [[ -n $B228 ]] || return 1
    tree_bins "$backend"
    case $kind in
      ssock-tls) [[ -x $EBIN ]] ;;
      ssock-event-tls) [[ -x $EBIN ]] && "$EBIN" --help 2>&1 | grep -q -- '--event' ;;
      base) [[ -x $BBIN/base_mbedtls ]] ;;
      *) false ;;
    esac
    return
  fi
  case $kind in
    ssock-tls) [[ $ssock_tls = yes ]] ;;
    ssock-event) [[ $ssock_event = yes ]] ;;
    ssock-event-tls) [[ $ssock_event = yes && $ssock_tls = yes ]] ;;
    epoll) have base_epoll_echo ;;
    nginx) [[ $have_nginx = yes ]] ;;
    base) have "base_$backend" ;;
    *) true ;;
  esac
}

# Why a server of this spec is not run (for the table).
server_why() {
  case $1 in
    nginx*) echo "not run: nginx missing ($NGINX, $NGINX_MODULE)" ;;
    ssock-event*) echo "not run: ssock-echo has no --event yet" ;;
    *mbedtls228*) echo "not run: no B228 tree (system mbedTLS 2.28)" ;;
    *) echo "not run: not built" ;;
  esac
}

# A free loopback port for nginx (which cannot report an ephemeral one):
# below the kernel's ephemeral range (so no client socket takes it), used
# by no socket in /proc/net/tcp{,6}; a collision is caught by the start
# check and retried.
free_port() {
  local p hex lo i
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  ((lo > 12000)) || lo=32768
  for ((i = 0; i < 50; i++)); do
    p=$((10000 + RANDOM % (lo - 10000)))
    printf -v hex '%04X' "$p"
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ":$hex " ||
      { echo "$p"; return; }
  done
  echo 0
}

# nginx (master + one worker) in front of base_poll_echo, both pinned like
# every server. Sets server_pid (master), worker_pid, backend_pid, port.
start_nginx() {
  local cert=${1#nginx:} dir=$tmp/nginx bport try i hex
  server_cmd "$1" || return 1
  mkdir -p "$dir"
  : >"$tmp/be.out"
  "${srv_cpu[@]}" "${CMD[@]}" >"$tmp/be.out" 2>"$tmp/be.err" &
  backend_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -q '^listening on ' "$tmp/be.out" && break
    sleep 0.05
  done
  bport=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$tmp/be.out")
  [[ -n $bport ]] || { say "  nginx backend did not start"; stop_server; return 1; }
  for ((try = 0; try < 5; try++)); do
    port=$(free_port)
    sed -e "s|@DIR@|$dir|g; s|@PORT@|$port|; s|@BACKEND_PORT@|$bport|" \
      -e "s|@CERT@|$certs/server-$cert.pem|; s|@KEY@|$certs/server-$cert.key|" \
      -e "s|@MODULE@|$NGINX_MODULE|; s|@NOFILE@|$(ulimit -Hn)|" \
      -e "s|@WORKER_CONNS@|$(($(ulimit -Hn) - 100))|" \
      "$repo/bench/nginx/nginx.conf.in" >"$dir/nginx.conf"
    : >"$dir/error.log"
    "${srv_cpu[@]}" "$NGINX" -p "$dir" -e "$dir/error.log" \
      -c "$dir/nginx.conf" -g 'daemon off;' >"$tmp/srv.out" 2>"$tmp/srv.err" &
    server_pid=$!
    printf -v hex '%04X' "$port"
    for ((i = 0; i < 100; i++)); do
      worker_pid=$(ps -o pid= --ppid "$server_pid" 2>/dev/null | tr -d ' ' | head -n 1)
      [[ -n $worker_pid ]] && grep -q ":$hex 00000000:0000 0A" /proc/net/tcp && return 0
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    say "  nginx did not start on $port: $(head -c 300 "$dir/error.log" "$tmp/srv.err")"
    stop_nginx_only
  done
  stop_server
  return 1
}

stop_nginx_only() {
  local i
  [[ -n $server_pid ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null # fast shutdown: the worker too
  for ((i = 0; i < 60; i++)); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  # A worker outlives a SIGKILLed master: stop it by its PID too.
  [[ -n $worker_pid ]] && kill -KILL "$worker_pid" 2>/dev/null
  server_pid=''
  worker_pid=''
}

# start_server SPEC: sets server_pid and port, or returns 1.
start_server() {
  local i
  [[ $1 = nginx* ]] && { start_nginx "$1"; return; }
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
  if [[ -n $worker_pid || -n $backend_pid ]]; then # nginx and its backend
    stop_nginx_only
    [[ -n $backend_pid ]] && kill -TERM "$backend_pid" 2>/dev/null
    for ((i = 0; i < 60; i++)); do
      kill -0 "$backend_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$backend_pid" 2>/dev/null
    wait "$backend_pid" 2>/dev/null
    backend_pid=
    return 0
  fi
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
    epoll) echo "epoll" ;;
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

# ------------------------------------------------------------ issue 11
# The event-serving figures, anchored on nginx (section names nginx-*).

# not_run LABEL SPEC TARGET: a row for a server this run could not start.
not_run() {
  row "$1" "n/a" "n/a" "n/a" "$3" lower "NO" "$(server_why "$2")"
}

# cpu_run SPEC LOADGEN-ARGS...: one handshake run from a fresh server with
# server CPU read by loadgen (--cpu-pids) around it. Prints
# "SERVER_US BACKEND_US RATE ERRORS STALLED_AT_END SYS_US" (µs of CPU per
# handshake; for nginx SERVER is master + worker and BACKEND its echo
# backend, else BACKEND is "-"; SYS: the stime part of SERVER), or
# "failed".
cpu_run() {
  local spec=$1 line pids cms sms ops a b c srv be sys st
  shift
  if ! start_server "$spec"; then echo failed; return; fi
  pids=$server_pid
  [[ $spec = nginx* ]] && pids="$server_pid,$worker_pid,$backend_pid"
  line=$(loadgen --mode handshake --conns "$CPU_CONNS" --size 32 \
    --tls-version 1.2 --cpu-pids "$pids" "$@")
  stop_server
  echo "    $spec cpu $*: $line" >>"$log"
  ops=$(field "$line" ops)
  cms=$(field "$line" cpu_ms)
  if [[ -z $line || ! $ops =~ ^[0-9]+$ || $ops == 0 || -z $cms ]]; then
    echo failed
    return
  fi
  sms=$(field "$line" cpu_sys_ms)
  IFS=, read -r a b c <<<"$sms"
  if [[ $spec = nginx* ]]; then
    sys=$(awk -v a="$a" -v b="$b" -v n="$ops" 'BEGIN { printf "%.1f", (a + b) * 1000 / n }')
  else
    sys=$(awk -v a="$a" -v n="$ops" 'BEGIN { printf "%.1f", a * 1000 / n }')
  fi
  IFS=, read -r a b c <<<"$cms"
  if [[ $spec = nginx* ]]; then
    srv=$(awk -v a="$a" -v b="$b" -v n="$ops" 'BEGIN { printf "%.1f", (a + b) * 1000 / n }')
    be=$(awk -v c="$c" -v n="$ops" 'BEGIN { printf "%.1f", c * 1000 / n }')
  else
    srv=$(awk -v a="$a" -v n="$ops" 'BEGIN { printf "%.1f", a * 1000 / n }')
    be=-
  fi
  st=$(field "$line" stalled_at_end)
  echo "$srv $be $(field "$line" rate) $(field "$line" errors) ${st:--} $sys"
}

# rratios RESULTS BASE_RESULTS: per-round ratios of field 1 (round r of
# one over round r of the other: neighbours in time, so the host's load
# drift cancels), "a,b,c (median m)".
rratios() {
  local -a rq
  mapfile -t rq < <(paste -d' ' <(awk 'NF { print $1 }' <<<"$1") \
    <(awk 'NF { print $1 }' <<<"$2") |
    awk '$1 ~ /^[0-9.]+$/ && $2 ~ /^[0-9.]+$/ && $2 > 0 { printf "%.2f\n", $1 / $2 }')
  ((${#rq[@]})) || { echo n/a; return; }
  echo "$(IFS=,; echo "${rq[*]}") (median $(median "${rq[@]}"))"
}

# col RESULTS N: the Nth field of each result line (one per line), for median.
# medcol RESULTS N: their median.
col() { awk -v n="$2" 'NF && $1 != "failed" { print $n }' <<<"$1"; }
medcol() {
  local -a mv
  mapfile -t mv < <(col "$1" "$2")
  median "${mv[@]}"
}
# cnote RESULTS: "R ok, E errors" over cpu_run results.
cnote() {
  awk '$1 == "failed" { f++; next } NF { ok++; e += $4 }
       END { printf "%d ok%s, %d errors", ok, f ? " + " f " FAILED" : "", e }' <<<"$1"
}
spec_label() {
  case $1 in
    nginx:*) echo "nginx 1 worker (master+worker)" ;;
    ssock-event-tls:*) echo "ssock-echo --event --workers 1, ${1#*:}" | sed 's/:ecdsa//' ;;
    ssock-tls:*) echo "ssock-echo threaded, ${1#*:}" | sed 's/:ecdsa//' ;;
    base:*:threads:*) echo "raw thread per connection, $(cut -d: -f2 <<<"$1")" ;;
    base:*:serial:*) echo "raw serial accept loop, $(cut -d: -f2 <<<"$1")" ;;
    *) echo "$1" ;;
  esac
}

TLS_SPECS=(nginx:ecdsa
  ssock-event-tls:openssl:ecdsa ssock-tls:openssl:ecdsa
  base:openssl:threads:ecdsa base:openssl:serial:ecdsa
  ssock-event-tls:mbedtls:ecdsa ssock-tls:mbedtls:ecdsa
  base:mbedtls:threads:ecdsa
  ssock-event-tls:mbedtls228:ecdsa ssock-tls:mbedtls228:ecdsa
  base:mbedtls228:threads:ecdsa)

if want nginx-cpu && ! over_budget; then
  section "server CPU us per full TLS 1.2 handshake, ECDSA P-256, + 32 B echo: $CPU_N handshakes (mbedTLS: $((CPU_N / 2))) at $CPU_CONNS clients, utime+stime (/proc/PID/stat) around them; baseline = nginx master+worker in the same run; medians of $ROUNDS (lower is better)"
  say "  CPU per handshake"
  declare -A res=()
  for ((r = 0; r < ROUNDS; r++)); do
    for sp in "${TLS_SPECS[@]}"; do
      { server_ok "$sp" && [[ $sp =~ $CPU_ONLY ]]; } || continue
      # mbedTLS handshakes cost ~3x OpenSSL's: half as many still make
      # ~1.5 s of server CPU (150 ticks).
      cn=$CPU_N
      [[ $sp = *mbedtls* ]] && cn=$((CPU_N / 2))
      res[$sp]+="$(cpu_run "$sp" --count "$cn")"$'\n'
    done
  done
  n=$(medcol "${res[nginx:ecdsa]:-}" 1)
  for sp in "${TLS_SPECS[@]}"; do
    [[ $sp =~ $CPU_ONLY ]] || continue
    t=-
    case $sp in ssock-event-tls:openssl:*) t="<= 0.9" ;; esac
    if ! server_ok "$sp"; then
      not_run "$(spec_label "$sp")" "$sp" "$t"
      continue
    fi
    v=$(medcol "${res[$sp]}" 1)
    q=$(ratio "$v" "$n")
    m=-
    [[ $t != - ]] && m=$(met "$q" "$t")
    row "$(spec_label "$sp")" "$v" "$n" "$q" "$t" lower "$m" \
      "$(cnote "${res[$sp]}"); $(fmt "$(medcol "${res[$sp]}" 3)")/s; sys $(fmt "$(medcol "${res[$sp]}" 6)") us; per round $(rratios "${res[$sp]}" "${res[nginx:ecdsa]:-}")"
    if [[ $sp = nginx* ]]; then
      b=$(medcol "${res[$sp]}" 2)
      w=$(awk -v a="$v" -v b="$b" 'BEGIN { printf "%.1f", a + b }')
      row "  - nginx's echo backend (base_poll_echo) alone" "$b" "$n" "$(ratio "$b" "$n")" - lower - ""
      row "  - nginx + its echo backend" "$w" "$n" "$(ratio "$w" "$n")" - lower - ""
    fi
  done
  unset res
fi

# idle_tls SPEC: "SERVER_B BACKEND_B HELD": VmRSS growth x 1024 / held over
# IDLE_CONNS idle TLS 1.2 connections (handshake + 1 byte echo each); for
# nginx SERVER is the worker and BACKEND its echo backend, else "-".
idle_tls() {
  local spec=$1 r0 r1 b0 b1 held i sp
  if ! start_server "$spec"; then echo failed; return; fi
  sp=$server_pid
  [[ $spec = nginx* ]] && sp=$worker_pid
  sleep 0.2
  r0=$(rss_kib "$sp")
  b0=$([[ -n $backend_pid ]] && rss_kib "$backend_pid")
  : >"$tmp/idle.out"
  timeout -k 2 180 "${cli_cpu[@]}" "$bin/loadgen" --host 127.0.0.1 \
    --port "$port" --mode idle --conns "$IDLE_CONNS" --hold 120 --tls \
    --tls-version 1.2 --size 1 >"$tmp/idle.out" 2>>"$tmp/lg.err" &
  client_pid=$!
  for ((i = 0; i < 2400; i++)); do
    grep -q '^ready' "$tmp/idle.out" && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.05
  done
  sleep 0.5
  r1=$(rss_kib "$sp")
  b1=$([[ -n $backend_pid ]] && rss_kib "$backend_pid")
  held=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$tmp/idle.out")
  kill -TERM "$client_pid" 2>/dev/null
  wait "$client_pid" 2>/dev/null
  client_pid=
  stop_server
  echo "    $spec idle tls: rss ${r0} -> ${r1} KiB (backend ${b0:--} -> ${b1:--}), held=${held:-0}" >>"$log"
  if [[ -z $held || $held == 0 || -z $r0 || -z $r1 ]]; then
    echo failed
    return
  fi
  awk -v a="$r0" -v b="$r1" -v c="${b0:-}" -v d="${b1:-}" -v n="$held" 'BEGIN {
    printf "%.0f %s %d\n", (b - a) * 1024 / n,
      c == "" ? "-" : sprintf("%.0f", (d - c) * 1024 / n), n }'
}

if want nginx-mem && ! over_budget; then
  section "server memory per idle TLS 1.2 connection, bytes (VmRSS growth x 1024 / held, $IDLE_CONNS connections, ECDSA, each did 1 B echo); baseline = nginx worker; medians of $ROUNDS (lower is better)"
  say "  memory per idle TLS connection"
  declare -A res=()
  for ((r = 0; r < ROUNDS; r++)); do
    for sp in "${TLS_SPECS[@]}"; do
      [[ $sp = *serial* ]] && continue
      { server_ok "$sp" && [[ $sp =~ $CPU_ONLY ]]; } || continue
      res[$sp]+="$(idle_tls "$sp")"$'\n'
    done
  done
  n=$(medcol "${res[nginx:ecdsa]:-}" 1)
  for sp in "${TLS_SPECS[@]}"; do
    [[ $sp = *serial* || ! $sp =~ $CPU_ONLY ]] && continue
    t=-
    case $sp in
      ssock-event-tls:openssl:*) t="<= 18432 B" ;;
      ssock-event-tls:mbedtls*) t="<= 40960 B" ;;
    esac
    if ! server_ok "$sp"; then
      not_run "$(spec_label "$sp")" "$sp" "$t"
      continue
    fi
    v=$(medcol "${res[$sp]}" 1)
    held=$(medcol "${res[$sp]}" 3)
    note="$(awk '$1 == "failed" { f++ } NF && $1 != "failed" { ok++ }
      END { printf "%d ok%s", ok, f ? " + " f " FAILED" : "" }' <<<"${res[$sp]}"), held $held"
    row "$(spec_label "$sp")" "$v" "$n" "$(ratio "$v" "$n")" "$t" lower \
      "$([[ $t != - ]] && met "$v" "$t" || echo -)" "$note"
    if [[ $sp = nginx* ]]; then
      b=$(medcol "${res[$sp]}" 2)
      w=$(awk -v a="$v" -v b="$b" 'BEGIN { printf "%.0f", a + b }')
      row "  - nginx's echo backend (base_poll_echo) alone" "$b" "$n" "$(ratio "$b" "$n")" - lower - ""
      row "  - nginx worker + its echo backend" "$w" "$n" "$(ratio "$w" "$n")" - lower - ""
    fi
  done
  unset res
fi

# Open fds of a process.
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

if want nginx-idle10k && ! over_budget; then
  section "$BIG_IDLE idle TLS 1.2 connections (OpenSSL backend, ECDSA) held by one event worker: VmRSS KiB"
  sp=ssock-event-tls:openssl:ecdsa
  if ! server_ok "$sp"; then
    not_run "$BIG_IDLE idle TLS: RSS after close - start, KiB" "$sp" "<= 512 KiB"
  elif start_server "$sp"; then
    say "  $BIG_IDLE idle TLS connections"
    sleep 0.3
    r0=$(rss_kib "$server_pid")
    fd0=$(nfds "$server_pid")
    : >"$tmp/idle.out"
    timeout -k 2 300 "${cli_cpu[@]}" "$bin/loadgen" --host 127.0.0.1 \
      --port "$port" --mode idle --conns "$BIG_IDLE" --hold 240 --tls \
      --tls-version 1.2 --size 1 >"$tmp/idle.out" 2>>"$tmp/lg.err" &
    client_pid=$!
    for ((i = 0; i < 3000; i++)); do
      grep -q '^ready' "$tmp/idle.out" && break
      kill -0 "$client_pid" 2>/dev/null || break
      sleep 0.05
    done
    sleep 1
    r1=$(rss_kib "$server_pid")
    fd1=$(nfds "$server_pid")
    held=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$tmp/idle.out")
    kill -TERM "$client_pid" 2>/dev/null
    wait "$client_pid" 2>/dev/null
    client_pid=
    # Wait (bounded: 30 s) until the server has closed them all.
    for ((i = 0; i < 600; i++)); do
      (($(nfds "$server_pid") <= fd0)) && break
      sleep 0.05
    done
    fd2=$(nfds "$server_pid")
    sleep 1
    r2=$(rss_kib "$server_pid")
    stop_server
    echo "    $sp idle10k: rss $r0 -> $r1 -> $r2 KiB, fds $fd0 -> $fd1 -> $fd2, held=${held:-0}" >>"$log"
    pc=n/a
    [[ ${held:-0} -gt 0 ]] && pc=$(awk -v a="$r0" -v b="$r1" -v n="$held" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    row "connections held (of $BIG_IDLE)" "${held:-0}" "$BIG_IDLE" "-" "-" higher \
      "$([[ ${held:-0} == "$BIG_IDLE" ]] && echo yes || echo NO)" "fds $fd0 -> $fd1 -> $fd2 (start, held, closed)"
    row "bytes per connection while held" "$pc" "-" "-" "<= 18432 B" lower "$(met "$pc" "<= 18432 B")" ""
    row "RSS KiB: start / held" "$r0" "$r1" "-" "-" lower - ""
    d=$((r2 - r0))
    row "RSS after all closed minus start, KiB (slack 512)" "$d" "$r2" "-" "<= 512 KiB" lower "$(met "$d" "<= 512 KiB")" "after ${i} x 50 ms + 1 s"
  else
    row "$BIG_IDLE idle TLS" failed failed n/a "-" lower NO "server did not start"
  fi
fi

if want nginx-inflight && ! over_budget; then
  section "handshakes in flight: K clients stalled mid-handshake (ClientHello sent, server's first flight received but never processed, then silence; each from its own 127.2.x.x source), meanwhile $INFLIGHT_N good TLS 1.2 ECDSA handshakes at $CPU_CONNS clients: server CPU us per good handshake; baseline = nginx at the same K; medians of $ROUNDS"
  say "  handshakes in flight"
  HS_TIMEOUT=120000 MAX_HS=8192
  IF_SPECS=(nginx:ecdsa ssock-event-tls:openssl:ecdsa ssock-tls:openssl:ecdsa)
  declare -A res=()
  # Rounds outermost: each round sweeps every K, so the host's load drift
  # spreads over all of them instead of tilting the curve.
  for ((r = 0; r < ROUNDS; r++)); do
    for k in $INFLIGHT; do
      over_budget && break
      for sp in "${IF_SPECS[@]}"; do
        server_ok "$sp" || continue
        res[$sp:$k]+="$(cpu_run "$sp" --count "$INFLIGHT_N" --stall "$k")"$'\n'
      done
    done
  done
  for sp in "${IF_SPECS[@]}"; do
    if ! server_ok "$sp"; then
      not_run "$(spec_label "$sp")" "$sp" "-"
      continue
    fi
    first=
    for k in $INFLIGHT; do
      [[ -n ${res[$sp:$k]:-} ]] || { row "$(spec_label "$sp"), K=$k" skipped skipped n/a - lower NO "skipped: time budget"; continue; }
      v=$(medcol "${res[$sp:$k]}" 1)
      n=$(medcol "${res[nginx:ecdsa:$k]:-}" 1)
      rt=$(medcol "${res[$sp:$k]}" 3)
      st=$(col "${res[$sp:$k]}" 5 | sort -g | head -n 1)
      [[ -z $first ]] && first=$v
      row "$(spec_label "$sp"), K=$k" "$v" "$n" "$(ratio "$v" "$n")" - lower - \
        "$(cnote "${res[$sp:$k]}"); $(fmt "$rt") good/s; stalled still open at end >= ${st:-?}/$k; per round $(rratios "${res[$sp:$k]}" "${res[nginx:ecdsa:$k]:-}")"
    done
    q=$(ratio "$v" "$first")
    t=-
    [[ $sp = ssock-event-tls:* ]] && t="<= 1.1"
    row "  - CPU at K=${k} / CPU at K=${INFLIGHT%% *} (flat = 1)" "$v" "$first" "$q" "$t" lower \
      "$([[ $t != - ]] && met "$q" "$t" || echo -)" ""
  done
  HS_TIMEOUT=10000 MAX_HS=1024
  unset res
fi

if want nginx-plain && ! over_budget; then
  section "plain TCP: ssock-echo --event --workers 1 vs base_epoll_echo (epoll loop) and base_poll_echo (poll loop)"
  if ! server_ok ssock-event; then
    not_run "connections/s and echo round trips/s" ssock-event ">= 1.0"
  else
    compare "connections/s, 8 clients" ">= 1.0" rate ssock-event "epoll,poll" \
      --mode connect --conns 8 "${W[@]}"
    compare "echo round trips/s, 1 client, 64 B" ">= 1.0" rate,p50_us \
      ssock-event "epoll,poll" --mode echo --conns 1 --size 64 "${W[@]}"
    compare "echo round trips/s, 8 clients, 64 B" ">= 1.0" rate,p99_us \
      ssock-event "epoll,poll" --mode echo --conns 8 --size 64 "${W[@]}"
    sw 1000 2
    compare "echo round trips/s, 1000 clients, 64 B" ">= 1.0" rate,p99_us \
      ssock-event "epoll,poll" --mode echo --conns 1000 --size 64 "${SW[@]}"
    # Server CPU per operation: steadier than throughput on a shared host.
    declare -A res=()
    for ((r = 0; r < ROUNDS; r++)); do
      for sp in ssock-event epoll poll; do
        server_ok "$sp" || continue
        for m in connect echo; do
          if ! start_server "$sp"; then res[$sp:$m]+=$'failed\n'; continue; fi
          if [[ $m = connect ]]; then
            line=$(loadgen --mode connect --conns 8 --count 30000 --cpu-pids "$server_pid")
          else
            line=$(loadgen --mode echo --conns 8 --size 64 --warmup-ms 0 \
              --duration-ms "$DUR_MS" --cpu-pids "$server_pid")
          fi
          stop_server
          echo "    $sp cpu $m: $line" >>"$log"
          v=$(field "$line" cpu_us_per_op)
          res[$sp:$m]+="${v:-failed} - - $(field "$line" errors)"$'\n'
        done
      done
    done
    for m in connect echo; do
      s=$(medcol "${res[ssock-event:$m]:-}" 1)
      for sp in epoll poll; do
        b=$(medcol "${res[$sp:$m]:-}" 1)
        l="CPU us per connection (connect+close), 8 clients"
        [[ $m = echo ]] && l="CPU us per echo round trip, 8 clients, 64 B"
        row "$l (vs $(spec_name "$sp"))" "$s" "$b" "$(ratio "$s" "$b")" "<= 1.0" lower \
          "$(met "$(ratio "$s" "$b")" "<= 1.0")" \
          "$(cnote "${res[ssock-event:$m]:-}") / $(cnote "${res[$sp:$m]:-}"); per round $(rratios "${res[ssock-event:$m]:-}" "${res[$sp:$m]:-}")"
      done
    done
    unset res
  fi
fi

echo
echo "total $((SECONDS - start_s)) s; table saved in $table; raw runs in $log"
