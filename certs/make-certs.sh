#!/bin/sh
# make-certs.sh -- regenerate the ssock DEV/TEST PKI in this directory.
#
# DEVELOPMENT AND TESTS ONLY. The private keys below are published in the
# source tree: never use any of these files to protect real traffic.
#
# Needs only the openssl command line (tested with OpenSSL 3.0). Run from any
# directory; files are written next to this script. Names, subjects, key types
# and validity windows are fixed; keys and signatures are new on every run, so
# commit the result.
#
#   ca.pem / ca.key                 dev CA (ECDSA P-256)
#   server-ecdsa.pem / .key         localhost, ECDSA P-256, signed by ca
#   server-ecdsa.der / .key.der     the same certificate and key (PKCS#8) in DER
#   server-rsa.pem / .key           localhost, RSA-2048, signed by ca
#   client.pem / .key               TLS client cert (ECDSA P-256), signed by ca
#   other-ca.pem / .key             a second, throwaway CA nobody trusts
#   client-unknown.pem / .key       client cert signed by other-ca
#   expired.pem / .key              localhost, valid 2000-01-01 .. 2001-01-01
#   notyet.pem / .key               localhost, valid 2090-01-01 .. 2100-01-01
#   mismatch.key                    a P-256 key that matches no certificate
#   garbage.pem                     PEM armour around bytes that are not base64
#
# The "extra" set (client certificates for the usage and long-subject tests),
# all signed by ca:
#   client-serverauth.pem / .key    extendedKeyUsage serverAuth only (no
#                                   clientAuth): must be rejected as a client
#   client-nodigsig.pem / .key      keyUsage keyAgreement only (no
#                                   digitalSignature), EKU clientAuth: rejected
#   client-anyeku.pem / .key        EKU anyExtendedKeyUsage only: rejected
#                                   (OpenSSL's rule, applied on both backends)
#   client-long.pem / .key          a subject of 12 OU attributes, longer than
#                                   512 characters when formatted
#
# The "sni" set (server certificates for SNI selection, ssock_tls_options
# .extra_certs), all signed by ca, server_ext usages:
#   sni-a.pem / .key                ECDSA P-256, CN cn-ignored.example.org,
#                                   SAN DNS:a.example.com,
#                                   DNS:Mixed.Example.NET (the CN is not a
#                                   name: there are SAN DNS names)
#   sni-wild.pem / .key             RSA-2048, CN wild.example.com, SAN
#                                   DNS:*.example.com
#   sni-cn.pem / .key               ECDSA P-256, CN cn-only.example.org, no
#                                   subjectAltName (the CN is the name)
#   sni-ipsan.pem / .key            ECDSA P-256, CN ipsan.example.org, SAN
#                                   IP:127.0.0.2 only (no DNS name: the CN is
#                                   the name)
#   sni-badwild.pem / .key          ECDSA P-256, CN badwild.example.net,
#                                   SAN DNS:f*.example.net, DNS:*.net,
#                                   DNS:a.*.example.net (no name SNI can match;
#                                   the CN is not a name: there are SAN DNS
#                                   names)
#   sni-weak.pem / .key             RSA-1024, CN weak.example.com, SAN
#                                   DNS:weak.example.com (too weak to load)
#
#   ./make-certs.sh          regenerate everything (the extras and sni too)
#   ./make-certs.sh extra    (re)make only the extras, with the existing ca
#                            (the other files stay as they are)
#   ./make-certs.sh sni      (re)make only the sni-* set, with the existing ca
#
# Everything else is valid 2024-01-01 .. 2044-01-01 (20 years). Server
# certificates carry SAN DNS:localhost, IP:127.0.0.1, IP:::1.
#
# Every certificate is issued with `openssl ca` so that the validity window
# is fixed and independent of the clock of the machine running this script
# (OpenSSL 3.0's `x509 -req` can only count days from now, and cannot put
# notAfter in the past).
set -eu

cd "$(dirname "$0")"
NOT_BEFORE=20240101000000Z
NOT_AFTER=20440101000000Z
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ec_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$1"
}
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"; }
rsa1024_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$1"; }

cat >"$WORK/ext.cnf" <<'EOF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[sni_a_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.example.com, DNS:Mixed.Example.NET
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[sni_wild_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:*.example.com
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[sni_cn_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[sni_ipsan_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.2
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[sni_badwild_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:f*.example.net, DNS:*.net, DNS:a.*.example.net
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[sni_weak_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:weak.example.com
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_serverauth_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_anyeku_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = anyExtendedKeyUsage
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_nodigsig_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

cat >"$WORK/ca.cnf" <<EOF
[ca]
default_ca = dev
[dev]
dir = $WORK/db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
organizationName = optional
commonName = supplied
EOF

# sign OUT CSR EXT START END ISSUER_OPTIONS...
sign() {
    out=$1 csr=$2 ext=$3 sd=$4 ed=$5
    shift 5
    rm -rf "$WORK/db"
    mkdir -p "$WORK/db"
    : >"$WORK/db/index.txt"
    openssl rand -hex 16 >"$WORK/db/serial"
    if ! openssl ca -batch -notext -config "$WORK/ca.cnf" "$@" \
        -startdate "$sd" -enddate "$ed" -extfile "$WORK/ext.cnf" \
        -extensions "$ext" -in "$csr" -out "$out" 2>"$WORK/ca.log"; then
        cat "$WORK/ca.log" >&2
        exit 1
    fi
}

# make_ca BASENAME CN: self-signed CA
make_ca() {
    ec_key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=ssock DEV-TEST ONLY/CN=$2" \
        -out "$WORK/$1.csr"
    sign "$1.pem" "$WORK/$1.csr" ca_ext "$NOT_BEFORE" "$NOT_AFTER" \
        -selfsign -keyfile "$1.key"
}

# make_leaf BASENAME ec|rsa CN EXT ISSUER [START END]
make_leaf() {
    "${2}_key" "$1.key"
    openssl req -new -key "$1.key" -subj "/O=ssock DEV-TEST ONLY/CN=$3" \
        -out "$WORK/$1.csr"
    sign "$1.pem" "$WORK/$1.csr" "$4" "${6:-$NOT_BEFORE}" "${7:-$NOT_AFTER}" \
        -cert "$5.pem" -keyfile "$5.key"
}

# The extras: client certificates signed by the existing ca.
make_extras() {
    make_leaf client-serverauth ec "ssock serverAuth-only client" \
        client_serverauth_ext ca
    make_leaf client-nodigsig ec "ssock keyAgreement-only client" \
        client_nodigsig_ext ca
    make_leaf client-anyeku ec "ssock anyExtendedKeyUsage client" \
        client_anyeku_ext ca
    # 12 OU attributes of 50 characters: > 512 characters formatted.
    # -preserveDN keeps the OUs (the CA policy would drop them) and the order.
    ec_key client-long.key
    ou=""
    for i in 01 02 03 04 05 06 07 08 09 10 11 12; do
        ou="$ou/OU=ssock long subject test unit $i ......................"
    done
    openssl req -new -key client-long.key \
        -subj "/O=ssock DEV-TEST ONLY$ou/CN=ssock long subject client" \
        -out "$WORK/client-long.csr"
    sign client-long.pem "$WORK/client-long.csr" client_ext "$NOT_BEFORE" \
        "$NOT_AFTER" -cert ca.pem -keyfile ca.key -preserveDN
    chmod 0644 client-serverauth.pem client-serverauth.key \
        client-nodigsig.pem client-nodigsig.key client-anyeku.pem \
        client-anyeku.key client-long.pem client-long.key
}

# The sni set: server certificates signed by the existing ca.
make_sni() {
    make_leaf sni-a ec cn-ignored.example.org sni_a_ext ca
    make_leaf sni-wild rsa wild.example.com sni_wild_ext ca
    make_leaf sni-cn ec cn-only.example.org sni_cn_ext ca
    make_leaf sni-ipsan ec ipsan.example.org sni_ipsan_ext ca
    make_leaf sni-badwild ec badwild.example.net sni_badwild_ext ca
    make_leaf sni-weak rsa1024 weak.example.com sni_weak_ext ca
    chmod 0644 sni-*.pem sni-*.key
}

if [ "${1:-}" = sni ]; then
    make_sni
    echo "sni certs made in $(pwd) -- DEV/TEST ONLY"
    exit 0
fi

if [ "${1:-}" = extra ]; then
    make_extras
    echo "extra certs made in $(pwd) -- DEV/TEST ONLY"
    exit 0
fi

make_ca ca "ssock DEV-TEST CA (do not trust)"
make_ca other-ca "ssock OTHER DEV-TEST CA (unknown to servers)"

make_leaf server-ecdsa ec localhost server_ext ca
make_leaf server-rsa rsa localhost server_ext ca
make_leaf client ec "ssock test client" client_ext ca
make_leaf client-unknown ec "ssock unknown client" client_ext other-ca
make_leaf expired ec localhost server_ext ca 20000101000000Z 20010101000000Z
make_leaf notyet ec localhost server_ext ca 20900101000000Z 21000101000000Z

make_extras
make_sni

ec_key mismatch.key

openssl x509 -in server-ecdsa.pem -outform DER -out server-ecdsa.der
openssl pkcs8 -topk8 -nocrypt -in server-ecdsa.key -outform DER -out server-ecdsa.key.der

cat >garbage.pem <<'EOF'
-----BEGIN CERTIFICATE-----
This is not base64 at all: ssock tests use it as an unparsable PEM file!!
-----END CERTIFICATE-----
EOF

chmod 0644 ./*.pem ./*.key ./*.der
echo "certs regenerated in $(pwd) -- DEV/TEST ONLY"
