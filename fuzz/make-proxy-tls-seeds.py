#!/usr/bin/env python3
"""Write the proxy-* seeds of the TLS targets (fuzz/corpus/tls_openssl/ and
fuzz/corpus/tls_mbedtls/): recorded ClientHellos and sessions behind a PROXY
protocol header. An input whose client bytes start with a PROXY header (v1
text or the v2 signature) runs against a server with proxy_protocol ANY
(see fuzz/tls_common.h), so the header is read by the acceptor's pending set
before the handshake. Plain inputs send everything at once; pieces-* inputs
(FE 50 L c...) send the header one byte at a time, then the rest.
"""
import os
import struct
import sys

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, addrs, tlvs=b""):
    return V2SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(addrs) + len(tlvs)) + addrs + tlvs


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


HEADERS = {
    "v1-tcp4": b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n",
    "v1-tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n",
    "v1-unknown": b"PROXY UNKNOWN\r\n",
    "v2-inet-tlvs": v2(1, 0x11, bytes([203, 0, 113, 7, 192, 0, 2, 1]) +
                       struct.pack(">HH", 51234, 443),
                       tlv(0x02, b"example.test") + tlv(0x01, b"h2") +
                       tlv(0x05, b"id-42") + tlv(0x04, b"")),
    "v2-inet6": v2(1, 0x21, bytes(15) + b"\x07" + bytes(15) + b"\x01" +
                   struct.pack(">HH", 51234, 443)),
    "v2-local": v2(0, 0x00, b""),
}


def main(corpus_root):
    for target in ("tls_openssl", "tls_mbedtls"):
        d = os.path.join(corpus_root, target)
        for src in ("ch-openssl-tls12-sni-alpn", "ch-openssl-tls13-sni-alpn"):
            path = os.path.join(d, src)
            if not os.path.exists(path):
                continue
            body = open(path, "rb").read()
            for name, h in HEADERS.items():
                with open(os.path.join(d, "proxy-%s-%s" % (name, src)), "wb") as f:
                    f.write(h + body)
            # The header byte by byte (piece 1 = index 0), then the rest.
            for name in ("v1-tcp4", "v2-inet-tlvs"):
                h = HEADERS[name]
                prog = bytes([0xfe, 0x50, len(h)]) + bytes(len(h)) + h + body
                with open(os.path.join(d, "pieces-proxy-bytewise-%s-%s" % (name, src)), "wb") as f:
                    f.write(prog)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
