#!/usr/bin/env bash
# fuzz/record-clienthellos.sh — record real TLS ClientHellos as seeds for the
# TLS acceptor targets (fuzz/corpus/tls_mbedtls/ and fuzz/corpus/tls_openssl/).
#
# For each client command below: start a socat listener on 127.0.0.1 on a
# free port, connect the client to it, save everything the client sends
# before it gives up waiting for a ServerHello (its first flight), and stop
# both. Clients: `openssl s_client` and `gnutls-cli`, TLS 1.2 and 1.3, with
# and without SNI and ALPN. The listener never answers, so nothing depends on
# a server.
#
# Usage: fuzz/record-clienthellos.sh [OUTDIR...]
#   default OUTDIRs: fuzz/corpus/tls_mbedtls fuzz/corpus/tls_openssl
# Files are named ch-<client>-<what>; re-running overwrites them (the bytes
# change each time: client randoms and key shares are random).
# Needs: socat, openssl, gnutls-cli (Debian: socat, openssl, gnutls-bin),
# python3 (to find a free port).
set -euo pipefail
cd "$(dirname "$0")/.."

outs=("$@")
((${#outs[@]})) || outs=(fuzz/corpus/tls_mbedtls fuzz/corpus/tls_openssl)
for tool in socat openssl gnutls-cli python3; do
  command -v "$tool" >/dev/null || { echo "record-clienthellos.sh: $tool not found" >&2; exit 1; }
done
mkdir -p "${outs[@]}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# record NAME CLIENT-COMMAND... (the command gets PORT substituted)
record() {
  local name=$1 port pid i
  shift
  port=$(free_port)
  socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "CREATE:$tmp/$name" &
  pid=$!
  for i in $(seq 50); do  # wait until it listens (without connecting)
    if command -v ss >/dev/null; then
      [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]] && break
    elif ((i > 6)); then
      break
    fi
    sleep 0.05
  done
  local cmd=("${@//PORT/$port}")
  timeout 2 "${cmd[@]}" </dev/null >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
  if [[ ! -s $tmp/$name ]]; then
    echo "record-clienthellos.sh: $name: nothing recorded" >&2
    return 1
  fi
  for o in "${outs[@]}"; do cp "$tmp/$name" "$o/ch-$name"; done
  printf '  %-34s %5d bytes\n' "ch-$name" "$(stat -c %s "$tmp/$name")"
}

S=(openssl s_client -connect 127.0.0.1:PORT)
G=(gnutls-cli --insecure --port PORT 127.0.0.1)

echo "recording ClientHellos into: ${outs[*]}"
record openssl-tls13-sni-alpn   "${S[@]}" -tls1_3 -servername localhost -alpn h2,http/1.1
record openssl-tls12-sni-alpn   "${S[@]}" -tls1_2 -servername localhost -alpn h2,http/1.1
record openssl-any-sni-alpn     "${S[@]}" -servername example.com -alpn http/1.1
record openssl-tls12-nosni      "${S[@]}" -tls1_2 -noservername
record openssl-tls13-nosni      "${S[@]}" -tls1_3 -noservername
record openssl-tls13-p256       "${S[@]}" -tls1_3 -groups P-256:X25519 -servername localhost
record openssl-tls13-alpn-other "${S[@]}" -tls1_3 -servername localhost -alpn spdy/3,foo
record openssl-tls12-ecdsa-gcm  "${S[@]}" -tls1_2 -servername localhost -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -sigalgs ECDSA+SHA256
record openssl-tls12-chacha     "${S[@]}" -tls1_2 -servername localhost -cipher ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
record openssl-tls12-rsa-only   "${S[@]}" -tls1_2 -servername localhost -cipher ECDHE-RSA-AES256-GCM-SHA384
record openssl-tls11            "${S[@]}" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -servername localhost
record gnutls-tls13-sni-alpn    "${G[@]}" --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.3' --sni-hostname localhost --alpn h2 --alpn http/1.1
record gnutls-tls12-sni-alpn    "${G[@]}" --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.2' --sni-hostname localhost --alpn h2 --alpn http/1.1
record gnutls-any-sni           "${G[@]}" --priority NORMAL --sni-hostname example.org
record gnutls-tls12-nosni       "${G[@]}" --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.2' --disable-sni
record gnutls-tls13-secp384     "${G[@]}" --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-SECP384R1' --sni-hostname localhost --alpn h2
echo "done"
