#!/usr/bin/env python3
"""Write the hand-made seeds of fuzz/corpus/lifecycle/ (seed-*).

Each seed is a program in the byte code that fuzz_lifecycle.c decodes: an
opcode byte (taken modulo the number of ops) and its parameter bytes. The
fuzzer's own finds live next to them under other names; this script only
(re)writes the seed-* files.
"""
import os
import sys

(OPEN, CONNECT, ACCEPT, READ, WRITE, SHUTDOWN, CLOSE_SOCK, FREE_SOCK,
 CLOSE_SRV, FREE_SRV, CLI_SEND, CLI_RECV, CLI_CLOSE, FAULT, ASYNC,
 SET_TIMEOUTS, MISUSE) = range(17)

# struct ssock__sys entries, and the index of each fault in fault_defs[].
SOCKET, BIND, LISTEN, ACCEPT4, POLL, RECV, SEND, SHUTDOWN_, CLOSE = range(9)
FAULTS = {SOCKET: 4, BIND: 3, LISTEN: 2, ACCEPT4: 9, POLL: 4, RECV: 5,
          SEND: 5, SHUTDOWN_: 2, CLOSE: 2}
T20 = 239  # timeout byte for 20 ms; 0 gives 1 ms


MBEDTLS, OPENSSL = 8, 8 + 16  # variant bits asking for a TLS server


def open_(k=0, backlog=4, acc=0, rd=0, wr=0, tls=0):
    return [OPEN, k, 0x80 + tls + backlog - 1, acc, rd, wr]


def fault(call, idx, skip=0, param=0):
    return [FAULT, call + (skip << 4), idx + (param << 4)]


def conn(k=0, c=0, small_window=0):
    return [CONNECT, k, c, small_window]


def pair(k=0, c=0, small_window=0, **kw):
    return open_(k, **kw) + conn(k, c, small_window) + [ACCEPT, k]


# op_async's delay byte for a close that starts at the main thread's nth
# system call (see "Time through the seam" below).
def seam(n=1, wait=0, free=0):
    return 0x80 | ((n - 1) << 3) | wait | (0x40 if free else 0)


seeds = {
    "echo": pair() + [CLI_SEND, 0, 10, READ, 0, 20, WRITE, 0, 10,
                      CLI_RECV, 0, SHUTDOWN, 0, CLI_CLOSE, 0, 0, READ, 0, 5,
                      CLOSE_SOCK, 0, FREE_SOCK, 0, CLOSE_SRV, 0, FREE_SRV, 0],
    "server-close-fails-socket": pair() + [
        CLI_SEND, 0, 7, CLOSE_SRV, 0, READ, 0, 9, WRITE, 0, 3, SHUTDOWN, 0,
        CLOSE_SOCK, 0, CLOSE_SOCK, 0, READ, 0, 1],
    "server-free-first": pair() + [FREE_SRV, 0, READ, 0, 4, WRITE, 0, 4,
                                   CLOSE_SOCK, 0, FREE_SOCK, 0],
    "accept-timeout": open_() + [ACCEPT, 0, ACCEPT, 0, CLOSE_SRV, 0,
                                 ACCEPT, 0],
    "read-timeout": pair(rd=3) + [READ, 0, 10, READ, 0, 10],
    "write-timeout": pair(wr=2, small_window=1) + [WRITE, 0, 255] * 8 + [CLI_RECV, 0,
                                                         WRITE, 0, 10],
    "client-reset": pair() + [CLI_SEND, 0, 50, CLI_CLOSE, 0, 1, READ, 0, 60,
                              READ, 0, 60, WRITE, 0, 10, WRITE, 0, 10],
    "client-fin": pair() + [CLI_CLOSE, 0, 2, READ, 0, 60, WRITE, 0, 5,
                            CLI_RECV, 0, CLI_CLOSE, 0, 0, WRITE, 0, 5,
                            WRITE, 0, 5],
    "two-servers": open_(0) + open_(1, backlog=1) + conn(0, 0) + conn(1, 1) +
    conn(1, 2) + [ACCEPT, 1, ACCEPT, 0, ACCEPT, 1, CLI_SEND, 2, 30,
                  READ, 2, 30, CLOSE_SRV, 1, READ, 0, 1, READ, 1, 1,
                  FREE_SRV, 0, READ, 1, 1],
    "big-transfer": pair() + [CLI_SEND, 0, 230, READ, 0, 250, READ, 0, 250,
                              WRITE, 0, 210, CLI_RECV, 0],
    "misuse-timeouts": pair() + [MISUSE, 0, SET_TIMEOUTS, 0, 5, 239,
                                 READ, 0, 3, MISUSE, 1],
    "bad-options": [OPEN, 0, 0x00, 0, 0, 0, OPEN, 0, 0x21, 0, 0, 0,
                    OPEN, 0, 0x40, 0, 0, 0, OPEN, 0, 0x41, 0, 0, 0,
                    OPEN, 0, 0x60, 0, 0, 0, OPEN, 0, 0x61, 0, 0, 0,
                    OPEN, 0, 0x62, 0, 0, 0],
    "emfile-shed": open_() + conn(0, 0) + conn(0, 1) +
    fault(ACCEPT4, 3) + [ACCEPT, 0, ACCEPT, 0, CLI_RECV, 0, CLI_RECV, 1,
                         ACCEPT, 0],
    "async-server-close-accept": open_(acc=T20) + [ASYNC, 1, 2, ACCEPT, 0,
                                                  ACCEPT, 0],
    "async-server-close-read": pair(rd=T20) + [ASYNC, 1, 2, READ, 0, 10,
                                               READ, 0, 10],
    "async-server-close-write": pair(wr=T20, small_window=1) + [ASYNC, 1, 2, WRITE, 0, 255,
                                                WRITE, 0, 1],
    "async-socket-close-read": pair(rd=T20) + [ASYNC, 0, 2, READ, 0, 10,
                                               READ, 0, 10],
    "async-socket-close-write": pair(wr=T20, small_window=1) + [ASYNC, 0, 3, WRITE, 0, 255],
    "async-close-race-server": pair() + [ASYNC, 1, 0, CLOSE_SRV, 0,
                                         READ, 0, 1],
    "async-close-race-socket": pair() + [ASYNC, 0, 0, CLOSE_SOCK, 0],
    "async-server-close-free-socket": pair() + [ASYNC, 1, 1, FREE_SOCK, 0],
    "async-socket-close-free-server": pair() + [ASYNC, 0, 1, FREE_SRV, 0],
    "async-socket-close-shutdown-fault": pair(rd=T20) + fault(SHUTDOWN_, 0) +
    [ASYNC, 0, 1, READ, 0, 10],
}

# TLS servers: raw clients never finish a handshake; the acceptor's pending
# set, deadlines (8 ms), cap (2) and close are what is exercised.
HELLO = [CLI_CLOSE, 0, 3]


def hello(c):
    return [CLI_CLOSE, c, 3]


for name, tls in (("mbedtls", MBEDTLS), ("openssl", OPENSSL)):
    t = "tls-%s-" % name
    seeds[t + "garbage"] = (open_(tls=tls) + conn(0, 0) +
                            [CLI_SEND, 0, 20, ACCEPT, 0, ACCEPT, 0])
    seeds[t + "hello-expires"] = (open_(acc=T20, tls=tls) + conn(0, 0) +
                                  hello(0) + [ACCEPT, 0, ACCEPT, 0])
    seeds[t + "cap-drops-oldest"] = (
        open_(tls=tls) + conn(0, 0) + conn(0, 1) + conn(0, 2) + hello(0) +
        hello(1) + hello(2) + [ACCEPT, 0, ACCEPT, 0, CLI_RECV, 0])
    seeds[t + "close-with-pending"] = (open_(tls=tls) + conn(0, 0) +
                                       hello(0) + [ACCEPT, 0, CLOSE_SRV, 0,
                                                   ACCEPT, 0])
    seeds[t + "free-with-pending"] = (open_(tls=tls) + conn(0, 0) + hello(0) +
                                      [ACCEPT, 0, FREE_SRV, 0])
    seeds[t + "async-close-accept"] = (open_(acc=T20, tls=tls) + conn(0, 0) +
                                       hello(0) + [ASYNC, 1, 3, ACCEPT, 0])
    # The acceptor's server is closed at its nth system call with
    # handshakes pending, and freed at once after accept said ECLOSED.
    for n in (1, 3, 6):
        for wait in (1, 2):
            seeds[t + "seam-close-accept-free-n%d-w%d" % (n, wait)] = (
                open_(tls=tls) + conn(0, 0) + conn(0, 1) + hello(0) +
                hello(1) + [ACCEPT, 0, ASYNC, 1, seam(n, wait, 1), ACCEPT, 0])
    seeds[t + "emfile"] = (open_(tls=tls) + conn(0, 0) + conn(0, 1) +
                           fault(ACCEPT4, 3) + [ACCEPT, 0, ACCEPT, 0])
    seeds[t + "reset-in-handshake"] = (open_(tls=tls) + conn(0, 0) +
                                       hello(0) + fault(RECV, 3) +
                                       [ACCEPT, 0, ACCEPT, 0])
    seeds[t + "poll-faults"] = (open_(acc=2, tls=tls) + conn(0, 0) + hello(0) +
                                fault(POLL, 0) + fault(POLL, 2) +
                                fault(POLL, 3, skip=1) + [ACCEPT, 0] * 3)
    seeds[t + "plain-next-door"] = (open_(0, tls=tls) + open_(1) + conn(0, 0) +
                                    conn(1, 1) + hello(0) + [ACCEPT, 1,
                                                             ACCEPT, 0,
                                                             CLOSE_SRV, 0,
                                                             READ, 0, 1])

# Time through the seam: the second thread's close starts exactly at the
# main thread's nth system call (the main thread waiting: 0 no, 1 until the
# close started, 2 until it returned); `free`: the main thread then frees
# the handle as soon as a close of its own says SSOCK_ECLOSED, while the
# second thread's close may still run.



for n in (1, 2):
    for wait in (0, 1, 2):
        for free in (0, 1):
            tag = "n%d-w%d%s" % (n, wait, "-free" if free else "")
            seeds["seam-socket-close-read-" + tag] = pair(rd=T20) + [
                CLI_SEND, 0, 3, ASYNC, 0, seam(n, wait, free), READ, 0, 2,
                READ, 0, 10, READ, 0, 10]
for n in (1, 3):
    for free in (0, 1):
        tag = "n%d%s" % (n, "-free" if free else "")
        seeds["seam-socket-close-write-" + tag] = pair(
            wr=T20, small_window=1) + [
            ASYNC, 0, seam(n, 2, free), WRITE, 0, 255, WRITE, 0, 1]
        seeds["seam-server-close-accept-" + tag] = open_(acc=T20) + conn(
            0, 0) + [ASYNC, 1, seam(n, 1, free), ACCEPT, 0, ACCEPT, 0,
                     ACCEPT, 0]
        seeds["seam-server-close-read-" + tag] = pair(rd=T20) + [
            ASYNC, 1, seam(n, 2, free), READ, 0, 10, READ, 0, 10,
            CLOSE_SOCK, 0]
seeds["seam-server-close-free-socket"] = pair() + [
    ASYNC, 1, seam(1, 1, 0), FREE_SOCK, 0]

# Every fault on its own, where it bites.
for i in range(FAULTS[SOCKET]):
    seeds["fault-socket-%d" % i] = fault(SOCKET, i) + open_() + open_(1)
for i in range(FAULTS[BIND]):
    seeds["fault-bind-%d" % i] = fault(BIND, i) + open_()
for i in range(FAULTS[LISTEN]):
    seeds["fault-listen-%d" % i] = fault(LISTEN, i) + open_()
for i in range(FAULTS[ACCEPT4]):
    seeds["fault-accept-%d" % i] = (open_(acc=2) + conn(0, 0) + conn(0, 1) +
                                    fault(ACCEPT4, i) +
                                    [ACCEPT, 0, ACCEPT, 0, ACCEPT, 0])
for i in range(FAULTS[POLL]):
    seeds["fault-poll-%d" % i] = (pair(rd=1) + fault(POLL, i) +
                                  [READ, 0, 5] + fault(POLL, i) +
                                  [ACCEPT, 0])
for i in range(FAULTS[RECV]):
    seeds["fault-recv-%d" % i] = (pair() + [CLI_SEND, 0, 40] +
                                  fault(RECV, i, param=2) +
                                  [READ, 0, 40, READ, 0, 40])
for i in range(FAULTS[SEND]):
    seeds["fault-send-%d" % i] = (pair() + fault(SEND, i, param=3) +
                                  [WRITE, 0, 40, CLI_RECV, 0, WRITE, 0, 40])
for i in range(FAULTS[SHUTDOWN_]):
    seeds["fault-shutdown-%d" % i] = (pair() + fault(SHUTDOWN_, i) +
                                      [SHUTDOWN, 0, CLOSE_SRV, 0])
for i in range(FAULTS[CLOSE]):
    seeds["fault-close-%d" % i] = (pair() + fault(CLOSE, i) +
                                   [CLOSE_SOCK, 0] + fault(CLOSE, i) +
                                   [CLOSE_SRV, 0])

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus", "lifecycle")
os.makedirs(out, exist_ok=True)
for name, prog in seeds.items():
    assert all(0 <= b < 256 for b in prog), name
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(bytes(prog))
print("%d seeds in %s" % (len(seeds), out))
