#!/usr/bin/env bash
# End-to-end checks of the example programs' contracts (examples/ssock-echo.c
# and examples/server_socket_test.c) from the outside, with socat and bash's
# /dev/tcp. Binds port 0 only.
#
#   scripts/smoke-examples.sh BUILD_DIR [LAUNCHER ARGS...]
#
# A launcher (e.g. "valgrind --error-exitcode=99 --quiet") runs every server
# under it; the shutdown bound then grows from 2 s to 15 s.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: scripts/smoke-examples.sh BUILD_DIR [LAUNCHER...]}
shift
launch=("$@")
echo_bin=$build/examples/ssock-echo
sst_bin=$build/examples/server_socket_test
stop_limit=2
((${#launch[@]} == 0)) || stop_limit=15

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL $*"; }

# start OUT CMD... : run a server in the background, wait for its
# "listening on" line; sets $pid and $port.
start() {
  local out=$1 i
  shift
  "${launch[@]}" "$@" >"$out" 2>"$out.err" &
  pid=$!
  pids+=("$pid")
  port=
  for ((i = 0; i < 300; i++)); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
    [[ -n $port ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "  server did not start: $*" >&2
  cat "$out" "$out.err" >&2
  return 1
}

# stop_server: SIGTERM, then the exit status must be 0 within the bound.
stop_server() {
  local what=$1 i rc
  kill -TERM "$pid"
  for ((i = 0; i < stop_limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    bad "$what: still running ${stop_limit}s after SIGTERM"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    return
  fi
  rc=0
  wait "$pid" || rc=$?
  if ((rc == 0)); then
    ok "$what: exits 0 within ${stop_limit}s of SIGTERM"
  else
    bad "$what: exit status $rc after SIGTERM"
    cat "$out.err" >&2 || true
  fi
}

echo "ssock-echo ($echo_bin${launch[*]:+ under ${launch[0]}})"

# Flags: bad values exit 2 with a message on stderr; --help exits 0.
for args in "--port 70000" "--port -1" "--port abc" "--port" "--timeout -5" \
            "--backlog 0" "--max-conns 0" "--addr=" "--bogus" "--port=7x"; do
  rc=0
  # shellcheck disable=SC2086
  "$echo_bin" $args >"$tmp/flag.out" 2>"$tmp/flag.err" || rc=$?
  if ((rc == 2)) && [[ -s $tmp/flag.err && ! -s $tmp/flag.out ]]; then
    ok "'$args' -> exit 2, message on stderr"
  else
    bad "'$args' -> exit $rc (stdout $(wc -c <"$tmp/flag.out") bytes, stderr $(wc -c <"$tmp/flag.err") bytes)"
  fi
done
if "$echo_bin" --help >/dev/null 2>&1; then ok "--help exits 0"; else bad "--help"; fi

# Echo, one connection and then 20 at once, 1 MiB each.
out=$tmp/echo.out
start "$out" "$echo_bin" --port 0 --addr 127.0.0.1 --timeout 500
if grep -qx "listening on 127.0.0.1:$port" "$out"; then
  ok "prints 'listening on 127.0.0.1:$port'"
else
  bad "listening line: $(cat "$out")"
fi
reply=$(printf 'hello, ssock' | socat -t 5 -T 10 - "TCP:127.0.0.1:$port")
[[ $reply == "hello, ssock" ]] && ok "echoes one message" || bad "echo: got '$reply'"

head -c 1048576 /dev/urandom >"$tmp/blob"
cpids=()
for i in $(seq 1 20); do
  socat -t 10 -T 30 - "TCP:127.0.0.1:$port" <"$tmp/blob" >"$tmp/blob.$i" &
  cpids+=($!)
done
same=0
for i in $(seq 1 20); do
  wait "${cpids[$((i - 1))]}" || true
  cmp -s "$tmp/blob" "$tmp/blob.$i" && same=$((same + 1))
done
((same == 20)) && ok "20 concurrent clients x 1 MiB echoed intact" ||
  bad "only $same of 20 concurrent clients got their bytes back"

# Shut down while a client is connected and idle.
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'x' >&3
r=
read -r -t 10 -n 1 r <&3 || true
[[ $r == x ]] && ok "idle client connected" || bad "idle client: got '$r'"
stop_server "ssock-echo with an open connection"
exec 3>&-
lines=$(wc -l <"$out")
((lines == 1)) && ok "stdout is exactly one line" || bad "stdout has $lines lines"

# --max-conns 1: a second connection is closed at once.
out=$tmp/max.out
start "$out" "$echo_bin" --port 0 --addr 127.0.0.1 --max-conns 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'a' >&3
r=
read -r -t 10 -n 1 r <&3 || true
exec 4<>"/dev/tcp/127.0.0.1/$port"
rc=0
r2=
read -r -t 10 -n 1 r2 <&4 || rc=$?
if [[ $r == a ]] && ((rc == 1)) && [[ -z $r2 ]]; then
  ok "--max-conns 1: second connection closed at once"
else
  bad "--max-conns 1: first got '$r', second read status $rc '$r2'"
fi
exec 4>&-
printf 'b' >&3
r=
read -r -t 10 -n 1 r <&3 || true
[[ $r == b ]] && ok "--max-conns 1: first connection still served" ||
  bad "--max-conns 1: first connection got '$r'"
exec 3>&-
stop_server "ssock-echo --max-conns 1"

# Event mode: two workers, 20 plain clients x 1 MiB, then one TLS echo
# through openssl s_client.
out=$tmp/event.out
start "$out" "$echo_bin" --event --workers 2 --port 0 --addr 127.0.0.1 --timeout 500
cpids=()
for i in $(seq 1 20); do
  socat -t 10 -T 30 - "TCP:127.0.0.1:$port" <"$tmp/blob" >"$tmp/eblob.$i" &
  cpids+=($!)
done
same=0
for i in $(seq 1 20); do
  wait "${cpids[$((i - 1))]}" || true
  cmp -s "$tmp/blob" "$tmp/eblob.$i" && same=$((same + 1))
done
((same == 20)) && ok "--event --workers 2: 20 clients x 1 MiB echoed intact" ||
  bad "--event --workers 2: only $same of 20 clients got their bytes back"
stop_server "ssock-echo --event --workers 2"
if "$echo_bin" --help 2>/dev/null | grep -q -- '--tls'; then
  out=$tmp/event-tls.out
  start "$out" "$echo_bin" --event --workers 2 --tls --port 0 --addr 127.0.0.1
  wait_s=1
  ((${#launch[@]} == 0)) || wait_s=5
  reply=$( (printf 'event tls'; sleep "$wait_s") | timeout 30 openssl s_client -quiet -no_ign_eof \
    -connect "127.0.0.1:$port" -CAfile certs/ca.pem -servername localhost 2>/dev/null)
  [[ $reply == "event tls" ]] && ok "--event --tls echoes through openssl s_client" ||
    bad "--event --tls: got '$reply'"
  stop_server "ssock-echo --event --tls"
fi

# IPv6, when the machine has it.
if grep -qs '00000000000000000000000000000001' /proc/net/if_inet6; then
  out=$tmp/v6.out
  start "$out" "$echo_bin" --port 0 --addr ::1
  grep -qx "listening on \[::1\]:$port" "$out" && ok "IPv6 host in brackets" ||
    bad "IPv6 listening line: $(cat "$out")"
  reply=$(printf 'v6' | socat -t 5 -T 10 - "TCP6:[::1]:$port")
  [[ $reply == v6 ]] && ok "echoes over IPv6" || bad "IPv6 echo: got '$reply'"
  stop_server "ssock-echo on ::1"
else
  echo "  skip IPv6 checks: no ::1 on this machine"
fi

echo "server_socket_test ($sst_bin)"
out=$tmp/sst.out
start "$out" "$sst_bin" --port 0 --once
reply=$(printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' |
  socat -t 5 -T 10 - "TCP:127.0.0.1:$port" | tr -d '\r')
if [[ $reply == "HTTP/1.0 200 OK"* && $reply == *"<html>"* ]]; then
  ok "answers an HTTP request with an HTML page"
else
  bad "HTTP reply: '$reply'"
fi
rc=0
for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid" || rc=$?
((rc == 0)) && ok "--once exits 0 after one request" || bad "--once: exit status $rc"
grep -q '^  GET / HTTP/1.0$' "$out" && ok "logged the request line" ||
  bad "request line not logged: $(cat "$out")"

echo "smoke: $passed passed, $failed failed"
((failed == 0))
