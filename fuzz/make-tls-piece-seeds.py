#!/usr/bin/env python3
"""Write the piece-mode and live-mode seeds of the TLS targets (pieces-*
in fuzz/corpus/tls_openssl/ and fuzz/corpus/tls_mbedtls/).

A piece-mode input (see fuzz/tls_common.h) is FE 50 L c[0..L-1] body: the
body (what the client sends) reaches the server one piece per control byte,
as the server reads, with stalls before pieces and floods of small records
after them. These seeds take recorded sessions and ClientHellos from the
corpora, cut them at record boundaries, and add stalls and floods at chosen
records (after the ClientHello; before the last record). The live-*
seeds drive the harness's own client (see tls_common.h, "Live mode"): a
real handshake, then application data in pieces, stalls and floods.
"""
import os
import sys

PIECE = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987]
NOTHING, STALL, FLOOD64, FLOOD1024 = 0, 1, 2, 3
SHORT_STALL, LONG_STALL = 0, 2  # bits 6-7 of a stall: 1 ms, 20 ms
ALERT, EMPTY_HS, CCS, EMPTY_APPDATA = range(4)  # bits 6-7 of a flood


def records(body):
    """Byte lengths of the TLS records in body (the tail as one)."""
    out, i = [], 0
    while i < len(body):
        n = 5 + (body[i + 3] << 8 | body[i + 4]) if i + 5 <= len(body) else \
            len(body) - i
        n = min(n, len(body) - i)
        out.append(n)
        i += n
    return out


def cut(n):
    """Control bytes (lengths only) that cut exactly n bytes."""
    out = []
    while n > 0:
        k = max(j for j, p in enumerate(PIECE) if p <= n)
        out.append(k)
        n -= PIECE[k]
    return out


def program(body, before=None, after=None, bytewise=0, mid=None):
    """before/after/mid: {record index: (action, arg)} for the record's
    first piece (a stall), last piece (a flood), or a stall before its last
    piece (the server has part of the record)."""
    before, after, mid = before or {}, after or {}, mid or {}
    ctl = []
    if bytewise:
        ctl = [0] * bytewise + [15]
        return bytes([0xfe, 0x50, len(ctl)] + ctl) + body
    for r, n in enumerate(records(body)):
        pieces = cut(n)
        if r in before:
            act, arg = before[r]
            pieces[0] |= act << 4 | arg << 6
        if r in after:
            act, arg = after[r]
            pieces[-1] |= act << 4 | arg << 6
        if r in mid and len(pieces) > 1:
            act, arg = mid[r]
            pieces[-1] |= act << 4 | arg << 6
        ctl += pieces
    assert len(ctl) < 256, len(ctl)
    return bytes([0xfe, 0x50, len(ctl)] + ctl) + body


def seeds_for(corpus, sources):
    out = {}
    for src in sources:
        path = os.path.join(corpus, src)
        if not os.path.exists(path):
            continue
        body = open(path, "rb").read()
        nrec = len(records(body))
        out["bytewise-" + src] = program(body, bytewise=40)
        out["records-stalls-" + src] = program(
            body, before={r: (STALL, SHORT_STALL) for r in range(nrec)})
        out["long-stall-" + src] = program(
            body, before={1: (STALL, LONG_STALL)})
        for r in range(nrec):
            if len(cut(records(body)[r])) > 1:
                # the last record split: a read times out mid-record
                last = r
        out["long-stall-mid-record-" + src] = program(
            body, mid={last: (STALL, LONG_STALL)})
        for name, kind in (("alerts", ALERT), ("empty-hs", EMPTY_HS),
                           ("ccs", CCS), ("empty-appdata", EMPTY_APPDATA)):
            out["flood-%s-after-hello-%s" % (name, src)] = program(
                body, after={0: (FLOOD1024, kind)})
        if nrec > 2:
            out["flood-empty-appdata-late-" + src] = program(
                body, after={nrec - 2: (FLOOD1024, EMPTY_APPDATA)})
            out["flood-alerts-late-" + src] = program(
                body, after={nrec - 2: (FLOOD64, ALERT)})
    return out


# Live mode (FE 4C v L c[..] body): a client inside the harness does a real
# handshake, then sends the body as application data, one SSL_write per
# piece. v: bit 0 TLS 1.2 at most, bit 1 SNI, bit 2 ALPN h2.
TLS12, SNI, ALPN = 1, 2, 4


def live(v, ctl, body):
    assert len(ctl) < 256
    return bytes([0xfe, 0x4c, v, len(ctl)] + ctl) + body


def text(n, seed=1):
    return bytes((i * 7 + seed) % 94 + 33 for i in range(n))


def live_seeds():
    out = {}
    for ver, vname in ((TLS12, "tls12"), (0, "tls13")):
        v = ver | SNI | ALPN
        out["live-%s-echo" % vname] = live(v, [4, 9, 15], text(200))
        out["live-%s-bare" % vname] = live(ver, [15], text(31))
        out["live-%s-bytewise" % vname] = live(v, [0] * 24 + [15], text(40))
        # 16 KiB in 987-byte records, then one odd byte: server closes first
        out["live-%s-big-server-first" % vname] = live(
            v, [14] * 17, text(16 * 1024) + b"\x01")
        out["live-%s-stall-mid-data" % vname] = live(
            v, [5, 5 | STALL << 4 | LONG_STALL << 6, 15], text(64))
        out["live-%s-short-stalls" % vname] = live(
            v, [3 | STALL << 4 | SHORT_STALL << 6] * 8 + [15], text(100))
        for name, kind in (("alerts", ALERT), ("ccs", CCS),
                           ("empty-appdata", EMPTY_APPDATA)):
            out["live-%s-flood-%s" % (vname, name)] = live(
                v, [5 | FLOOD1024 << 4 | kind << 6, 15], text(20))
        out["live-%s-no-data" % vname] = live(v, [], b"")
    return out


here = os.path.dirname(os.path.abspath(__file__))
targets = {
    "tls_openssl": ["sess-openssl-tls13-sni-alpn",
                    "sess-openssl-tls12-sni-alpn",
                    "sess-openssl-tls13-hrr"],
    "tls_mbedtls": ["sess12-openssl-tls12-sni-alpn",
                    "ch-openssl-tls12-sni-alpn"],
}
total = 0
for t, sources in targets.items():
    corpus = os.path.join(here, "corpus", t)
    both = seeds_for(corpus, sources)
    both.update(live_seeds())
    for name, data in both.items():
        with open(os.path.join(corpus, "pieces-" + name), "wb") as f:
            f.write(data)
        total += 1
print("%d piece- and live-mode seeds written" % total)
