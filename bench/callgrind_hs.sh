#!/usr/bin/env bash
# Instructions per full TLS 1.2 ECDSA handshake (+ 32 B echo), counted by
# valgrind --tool=callgrind in the server: the noise-free companion of
# run.sh's nginx-cpu section (CPU time moves with the host's load, the
# instruction count does not).
#
#   bash bench/callgrind_hs.sh BUILD_DIR [SERVER...]
#
# SERVER: nginx | event-openssl | threaded-openssl | raw-openssl |
# event-mbedtls | threaded-mbedtls (default: nginx event-openssl
# threaded-openssl raw-openssl). For each, two runs under callgrind, with
# LO and HI handshakes (env, default 50 and 250) at 8 clients; the
# difference of the total instruction counts divided by HI - LO is the cost
# of one handshake without start-up and shutdown. nginx runs with
# `master_process off` (its worker loop in one process, same code path),
# without its echo backend's instructions (those are printed separately).
# Every process is started here, stopped by its PID, and bounded.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build/gcc}
[[ $build = /* ]] || build=$repo/$build
shift || true
servers=("$@")
((${#servers[@]})) || servers=(nginx event-openssl threaded-openssl raw-openssl)
LO=${LO:-50}
HI=${HI:-250}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_stream_module.so}
certs=$repo/certs
tmp=$(mktemp -d)
pid=
bpid=
cleanup() {
  [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  [[ -n $bpid ]] && kill -KILL "$bpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v valgrind >/dev/null || { echo "callgrind_hs.sh: valgrind missing" >&2; exit 1; }

wait_listen() { # FILE -> port from "listening on" (bounded 30 s)
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q '^listening on ' "$1" 2>/dev/null && break
    sleep 0.05
  done
  sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$1"
}

stop() { # PID: SIGTERM, 20 s (valgrind writes its output), then SIGKILL
  local i
  kill -TERM "$1" 2>/dev/null
  for ((i = 0; i < 400; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

total_ir() { # callgrind.out files -> summed "summary:" / "totals:" Ir
  awk '/^(summary|totals):/ { s += $2 } END { print s + 0 }' "$@"
}

# one SERVER N -> prints "server_Ir backend_Ir"
one() {
  local srv=$1 n=$2 out=$tmp/cg.$1.$2 port bport cmd=() i hex
  rm -f "$out".*
  local vg=(valgrind --tool=callgrind --callgrind-out-file="$out.%p")
  case $srv in
    nginx)
      "$build/bench/base_poll_echo" --port 0 --addr 127.0.0.1 >"$tmp/be.out" 2>&1 &
      bpid=$!
      bport=$(wait_listen "$tmp/be.out")
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
      "${vg[@]}" "$NGINX" -p "$tmp/ngx" -e "$tmp/ngx/error.log" \
        -c "$tmp/ngx/nginx.conf" -g 'daemon off; master_process off;' \
        >"$tmp/srv.out" 2>&1 &
      pid=$!
      for ((i = 0; i < 600; i++)); do
        grep -q ":$hex 00000000:0000 0A" /proc/net/tcp && break
        sleep 0.05
      done
      ;;
    *)
      local b=${srv#*-}
      case $srv in
        event-*) cmd=("$build/examples/ssock-echo" --event --workers 1 --tls --backend "$b") ;;
        threaded-*) cmd=("$build/examples/ssock-echo" --tls --backend "$b") ;;
        raw-*) cmd=("$build/bench/base_$b" --tls --threads) ;;
        *) echo "callgrind_hs.sh: unknown server $srv" >&2; return 1 ;;
      esac
      cmd+=(--port 0 --addr 127.0.0.1 --cert "$certs/server-ecdsa.pem"
            --key "$certs/server-ecdsa.key")
      "${vg[@]}" "${cmd[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" &
      pid=$!
      port=$(wait_listen "$tmp/srv.out")
      ;;
  esac
  timeout -k 2 300 "$build/bench/loadgen" --host 127.0.0.1 --port "$port" \
    --mode handshake --conns 8 --size 32 --tls-version 1.2 --count "$n" \
    >"$tmp/lg.out" 2>&1
  sleep 0.5
  stop "$pid"
  pid=
  if [[ -n $bpid ]]; then stop "$bpid"; bpid=; fi
  echo "$(total_ir "$out".*) $(sed -n 's/.* ops=\([0-9]*\).*/\1/p' "$tmp/lg.out")"
}

echo "instructions per full TLS 1.2 ECDSA handshake (+32 B echo), callgrind, ($HI - $LO) handshakes"
for s in "${servers[@]}"; do
  read -r lo_ir lo_ops < <(one "$s" "$LO")
  read -r hi_ir hi_ops < <(one "$s" "$HI")
  awk -v s="$s" -v a="$lo_ir" -v b="$hi_ir" -v x="$lo_ops" -v y="$hi_ops" 'BEGIN {
    if (y - x <= 0) { printf "%-18s failed (ops %s / %s)\n", s, x, y; exit }
    printf "%-18s %8.0f k instructions per handshake (runs: %d and %d handshakes)\n",
      s, (b - a) / (y - x) / 1000, x, y }'
done
