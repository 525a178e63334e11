#!/usr/bin/env bash
# System calls per operation in the server, counted by perf's syscall
# tracepoints (counting works on this host even where sampling does not):
# the stable companion of run.sh's wall-clock plain figures and of the
# CPU-per-handshake figures.
#
#   bash bench/syscalls_per_op.sh BUILD_DIR
#
# Servers: ssock-echo --event --workers 1 (plain and TLS/OpenSSL),
# base_epoll_echo, base_poll_echo, nginx's worker (TLS). Operations: plain
# connect (8 clients, 20000 connections), plain echo (8 clients, 64 B, 2 s),
# full TLS 1.2 ECDSA handshake + 32 B echo (8 clients, 1000). Prints, per
# server and operation, the total and the main calls per operation.
# Every process is started here and stopped by its PID; bounded.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build/gcc}
[[ $build = /* ]] || build=$repo/$build
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}
certs=$repo/certs
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v perf >/dev/null || { echo "syscalls_per_op.sh: perf missing" >&2; exit 1; }
calls=(recvfrom sendto read write writev epoll_wait epoll_ctl accept4 close
       poll getpid)
ev=raw_syscalls:sys_enter
for c in "${calls[@]}"; do ev+=",syscalls:sys_enter_$c"; done

wait_listen() {
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q '^listening on ' "$1" 2>/dev/null && break
    sleep 0.05
  done
  sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$1"
}

stop_all() {
  local p i
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for ((i = 0; i < 60; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  pids=()
}

# start NAME -> sets port and target (the PID perf watches)
start() {
  local i hex bport
  case $1 in
    event) "$build/examples/ssock-echo" --event --workers 1 --port 0 \
             --addr 127.0.0.1 --backlog 1024 >"$tmp/s.out" 2>&1 & ;;
    event-tls) "$build/examples/ssock-echo" --event --workers 1 --port 0 \
             --addr 127.0.0.1 --backlog 1024 --tls --backend openssl \
             --cert "$certs/server-ecdsa.pem" --key "$certs/server-ecdsa.key" \
             >"$tmp/s.out" 2>&1 & ;;
    epoll) "$build/bench/base_epoll_echo" --port 0 --addr 127.0.0.1 \
             --backlog 1024 >"$tmp/s.out" 2>&1 & ;;
    poll) "$build/bench/base_poll_echo" --port 0 --addr 127.0.0.1 \
             --backlog 1024 >"$tmp/s.out" 2>&1 & ;;
    nginx)
      "$build/bench/base_poll_echo" --port 0 --addr 127.0.0.1 >"$tmp/b.out" 2>&1 &
      pids+=($!)
      bport=$(wait_listen "$tmp/b.out")
      for ((i = 0; i < 50; i++)); do
        port=$((10000 + RANDOM % 20000))
        printf -v hex '%04X' "$port"
        cat /proc/net/tcp /proc/net/tcp6 | grep -q ":$hex " || break
      done
      mkdir -p "$tmp/ngx"
      sed -e "s|@DIR@|$tmp/ngx|g; s|@PORT@|$port|; s|@BACKEND_PORT@|$bport|" \
        -e "s|@CERT@|$certs/server-ecdsa.pem|; s|@KEY@|$certs/server-ecdsa.key|" \
        -e "s|@MODULE@|$NGINX_MODULE|; s|@NOFILE@|4096|; s|@WORKER_CONNS@|4000|" \
        "$repo/bench/nginx/nginx.conf.in" >"$tmp/ngx/nginx.conf"
      "$NGINX" -p "$tmp/ngx" -e "$tmp/ngx/error.log" -c "$tmp/ngx/nginx.conf" \
        -g 'daemon off;' >"$tmp/s.out" 2>&1 &
      pids+=($!)
      for ((i = 0; i < 100; i++)); do
        target=$(ps -o pid= --ppid "${pids[-1]}" | tr -d ' ' | head -n 1)
        [[ -n $target ]] && grep -q ":$hex 00000000:0000 0A" /proc/net/tcp && return
        sleep 0.05
      done
      return 1 ;;
  esac
  pids+=($!)
  target=$!
  port=$(wait_listen "$tmp/s.out")
}

# one SERVER LABEL LOADGEN-ARGS...
one() {
  local srv=$1 label=$2 line ops
  shift 2
  start "$srv" || { echo "$srv $label: did not start"; stop_all; return; }
  perf stat -x, -e "$ev" -p "$target" -o "$tmp/perf.out" &
  local perf_pid=$!
  sleep 0.3
  line=$(timeout -k 2 60 "$build/bench/loadgen" --host 127.0.0.1 --port "$port" "$@")
  sleep 0.3
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null
  stop_all
  ops=$(sed -n 's/.* ops=\([0-9]*\).*/\1/p' <<<" $line")
  [[ -n $ops && $ops != 0 ]] || { echo "$srv $label: no result ($line)"; return; }
  awk -F, -v s="$srv" -v l="$label" -v n="$ops" '
    $3 ~ /raw_syscalls/ { tot = $1 }
    $3 ~ /sys_enter_/ { sub(/.*sys_enter_/, "", $3); if ($1 > 0) d = d sprintf(" %s %.2f", $3, $1 / n) }
    END { printf "%-10s %-26s %6.2f syscalls/op:%s (ops %d)\n", s, l, tot / n, d, n }' \
    "$tmp/perf.out"
}

for s in event epoll poll; do
  one "$s" "connect, 8 clients" --mode connect --conns 8 --count 20000
done
for s in event epoll poll; do
  one "$s" "echo 64 B, 8 clients" --mode echo --conns 8 --size 64 \
    --warmup-ms 0 --duration-ms 2000
done
for s in event epoll poll; do
  one "$s" "echo 64 B, 1000 clients" --mode echo --conns 1000 --size 64 \
    --warmup-ms 0 --duration-ms 3000
done
if [[ -x $NGINX && -f $NGINX_MODULE ]]; then list=(event-tls nginx); else list=(event-tls); fi
for s in "${list[@]}"; do
  one "$s" "TLS 1.2 handshake+echo" --mode handshake --conns 8 --size 32 \
    --tls-version 1.2 --count 1000
done
