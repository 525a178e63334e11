#!/usr/bin/env bash
# fuzz/record-sessions.sh — record whole TLS sessions (everything a real
# client sends: handshake, application data, close) against the server of
# the OpenSSL fuzz target, as seeds fuzz/corpus/tls_openssl/sess-*.
#
# tls_record (built from fuzz/tls_record.c) runs that server with the same
# fixture and the same fixed random stream as fuzz_tls_openssl, so these
# files replay through the whole handshake and into read/echo/close. They
# stop replaying to the end only if the fixture, the certificates, the
# OpenSSL version or the server's use of randomness change: then re-run
# this script. The TLS 1.2 sessions are also copied to the mbedTLS corpus
# (sess12-*): there the plaintext part (ClientHello, client Certificate,
# ClientKeyExchange) is still meaningful.
#
# Usage: fuzz/record-sessions.sh [BUILD_DIR]   (default build/gcc; it must
#        have been built with the OpenSSL backend: target tls_record)
# Needs: openssl, gnutls-cli.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build/gcc}
rec=$build/fuzz/tls_record
if [[ ! -x $rec ]]; then
  cmake --build "$build" --target tls_record
fi
out=fuzz/corpus/tls_openssl
mbed=fuzz/corpus/tls_mbedtls
certs=certs
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# record NAME PAYLOAD CLIENT-COMMAND... (PORT is substituted)
record() {
  local name=$1 payload=$2 pid port
  shift 2
  "$rec" "$tmp/$name" >"$tmp/port" &
  pid=$!
  for _ in $(seq 100); do
    [[ -s $tmp/port ]] && break
    sleep 0.05
  done
  port=$(awk '{print $2}' "$tmp/port")
  local cmd=("${@//PORT/$port}")
  printf '%s' "$payload" | timeout 10 "${cmd[@]}" >"$tmp/client.log" 2>&1 || true
  wait "$pid"
  cp "$tmp/$name" "$out/sess-$name"
  case $name in *tls12*) cp "$tmp/$name" "$mbed/sess12-$name" ;; esac
  printf '  %-36s %6d bytes\n' "sess-$name" "$(stat -c %s "$tmp/$name")"
}

S=(openssl s_client -connect 127.0.0.1:PORT -CAfile "$certs/ca.pem")
G=(gnutls-cli --x509cafile "$certs/ca.pem" --port PORT 127.0.0.1)
CERT=(-cert "$certs/client.pem" -key "$certs/client.key")
big=$(head -c 20000 /dev/zero | tr '\0' 'x')

echo "recording sessions into $out (and TLS 1.2 ones into $mbed)"
record openssl-tls13-sni-alpn  $'hello ssock\n' "${S[@]}" -tls1_3 -servername localhost -alpn h2,http/1.1
record openssl-tls12-sni-alpn  $'hello ssock\n' "${S[@]}" -tls1_2 -servername localhost -alpn http/1.1
record openssl-tls13-clientcert $'mutual\n' "${S[@]}" -tls1_3 -servername localhost "${CERT[@]}"
record openssl-tls12-clientcert $'mutual\n' "${S[@]}" -tls1_2 -servername localhost "${CERT[@]}"
record openssl-tls12-chacha    $'chacha\n' "${S[@]}" -tls1_2 -noservername -cipher ECDHE-ECDSA-CHACHA20-POLY1305
record openssl-tls13-hrr       $'retry\n'  "${S[@]}" -tls1_3 -servername localhost -groups ffdhe2048:X25519
record openssl-tls13-p384-big  "$big"      "${S[@]}" -tls1_3 -servername localhost -groups P-384
record openssl-tls13-empty     ''          "${S[@]}" -tls1_3 -servername localhost
record gnutls-tls13-sni-alpn   $'gnutls 1.3\n' "${G[@]}" --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.3' --sni-hostname localhost --alpn h2
record gnutls-tls12-sni-alpn   $'gnutls 1.2\n' "${G[@]}" --priority 'NORMAL:-VERS-ALL:+VERS-TLS1.2' --sni-hostname localhost --alpn http/1.1
echo "done"
