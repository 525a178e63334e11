/* Raw-socket attackers for tests/test_hostile.c.
 *
 *  - hc_connect(): a TCP client with an optional source address (bind()
 *    before connect(), e.g. 127.0.0.2 or ::1) and receive buffer (set
 *    before connect(), so the window stays small: a zero-window client).
 *  - hc_flood: a thread that sends a prefix (a ClientHello) and then one
 *    unit of records over and over, as fast as the server takes them,
 *    draining whatever the server sends, until the server closes the
 *    connection (EOF or reset: the time is recorded). With `reconnect`
 *    it then connects again and floods again, so the attack lasts until
 *    a stop request or the thread's own hard limit.
 *  - hc_tls: an OpenSSL client on memory BIOs over a connected descriptor,
 *    so that a test decides what reaches the wire and when (send half of
 *    the client's second flight, then reset; add a record after it).
 *
 * Every wait is bounded; every send uses MSG_NOSIGNAL. */
#ifndef SSOCK_TESTS_HOSTILE_CLIENT_H
#define SSOCK_TESTS_HOSTILE_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "helpers.h"

/* TLS record content types. */
#define HC_CCS 20
#define HC_ALERT 21
#define HC_HANDSHAKE 22
#define HC_APPDATA 23

/* A TCP connection to dst:port (an IPv4 or IPv6 literal) within
 * timeout_ms. src: local address to bind first, NULL for any. rcvbuf > 0:
 * SO_RCVBUF set before connect. The descriptor (blocking) or -errno. */
int hc_connect(const char *dst, int port, const char *src, int rcvbuf,
               int timeout_ms);

/* Write one record (version 03 03) with `len` bytes of `body` (NULL:
 * zeros) at `out`; returns its size (5 + len). */
size_t hc_record(uint8_t *out, uint8_t type, const uint8_t *body, size_t len);

/* What a flood repeats after its prefix. */
enum hc_flood_kind {
    HC_FLOOD_ALERT_WARN,    /* warning alerts: 15 03 03 00 02 01 5a */
    HC_FLOOD_EMPTY_HS,      /* empty handshake records: 16 03 03 00 00 */
    HC_FLOOD_EMPTY_APPDATA, /* empty application data: 17 03 03 00 00 */
    HC_FLOOD_CCS,           /* ChangeCipherSpec: 14 03 03 00 01 01 */
    HC_FLOOD_HS_FRAG1,      /* one huge handshake message in 1-byte records */
    HC_FLOOD_KEYUPDATE,     /* plaintext KeyUpdate messages */
    HC_FLOOD_APPDATA_JUNK,  /* 16 KiB application data records of junk */
    HC_FLOOD_KINDS
};

/* Name of a kind, for messages. */
const char *hc_flood_name(int kind);

/* Build the bytes of a flood of `kind` after `hello`: *prefix (malloc'd:
 * the ClientHello and the first part of the flood) and *unit (malloc'd,
 * about 16 KiB of whole records, sent again and again). 0 or -ENOMEM. */
int hc_flood_bytes(int kind, const uint8_t *hello, size_t hello_len,
                   uint8_t **prefix, size_t *prefix_len, uint8_t **unit,
                   size_t *unit_len);

typedef struct hc_flood {
    th_thread t;
    int fd;        /* the current connection (owned by the thread) */
    int port;      /* to reconnect to, on 127.0.0.1 */
    int reconnect; /* connect again when the server closed one */
    const uint8_t *prefix;
    size_t prefix_len;
    const uint8_t *unit;
    size_t unit_len;
    int max_ms;       /* the thread stops by itself after this long */
    atomic_int stop;  /* set by hc_flood_stop() */
    atomic_int ended; /* 1 once the server's close was seen */
    /* Results, valid after hc_flood_join(). About the FIRST connection: */
    int64_t start_ms;  /* th_now_ms() before its prefix went out */
    int64_t closed_ms; /* th_now_ms() when the server's close was seen,
                          or -1 */
    int how;           /* 0 never closed, 1 EOF, 2 reset / EPIPE */
    /* About all of them: */
    int conns;         /* connections made (>= 1) */
    int connect_error; /* errno of a failed reconnect, or 0 */
    uint64_t sent;     /* bytes sent */
    uint64_t received; /* bytes the server sent (its flight, alerts) */
} hc_flood;

/* Start flooding on `fd` (connected to 127.0.0.1:port; made non-blocking;
 * owned by the thread from now on: it closes every connection, the last
 * one with an RST). The buffers must outlive the thread. 0 or an error
 * (fd then still the caller's). */
int hc_flood_start(hc_flood *f, int fd, int port, int reconnect,
                   const uint8_t *prefix, size_t prefix_len,
                   const uint8_t *unit, size_t unit_len, int max_ms);
/* 1 once the server closed the first connection. */
int hc_flood_closed(hc_flood *f);
/* Ask the thread to stop and join it: 1 joined, 0 stuck (leaked). */
int hc_flood_join(hc_flood *f, int timeout_ms);

/* A thread that watches connections the test keeps open (silent clients)
 * and records when the server closes each one (EOF or reset; anything the
 * server sends first, e.g. an alert, is read and dropped). */
typedef struct hc_watch {
    th_thread t;
    int n;
    const int *fds;
    int64_t *closed_ms; /* n entries, -1 until closed; read after join */
    int max_ms;
    atomic_int nclosed;
    atomic_int stop;
} hc_watch;

/* Start watching fds[0..n) for at most max_ms. 0 or an error. */
int hc_watch_start(hc_watch *w, const int *fds, int n, int64_t *closed_ms,
                   int max_ms);
/* How many have been closed by the server so far. */
int hc_watch_count(hc_watch *w);
/* Stop and join: 1 joined, 0 stuck. */
int hc_watch_join(hc_watch *w, int timeout_ms);

/* ---- a TLS client on memory BIOs ------------------------------------ */

typedef struct hc_tls {
    int fd;
    void *ctx; /* SSL_CTX */
    void *ssl; /* SSL */
    void *rb;  /* BIO_s_mem the SSL reads from */
    void *wb;  /* BIO_s_mem the SSL writes to */
    int eof;
    char err[256];
} hc_tls;

/* Wrap a connected descriptor (made non-blocking; owned afterwards).
 * max_version: 0 (TLS 1.3 offered) or TLS1_2_VERSION / TLS1_3_VERSION.
 * SNI "localhost", no verification. 0 or -1 (fd closed, err set). */
int hc_tls_new(hc_tls *c, int fd, int max_version);
/* One SSL_connect(): 0 done, 1 wants input, -1 failed. Output stays in
 * the write BIO until flushed or taken. */
int hc_tls_step(hc_tls *c);
/* Bytes waiting in the write BIO. */
size_t hc_tls_pending_out(const hc_tls *c);
/* Move up to cap bytes of pending output to buf (not sent). */
size_t hc_tls_take(hc_tls *c, uint8_t *buf, size_t cap);
/* Send all pending output within timeout_ms: 0 or -errno / -ETIMEDOUT. */
int hc_tls_flush(hc_tls *c, int timeout_ms);
/* Wait up to timeout_ms for bytes from the server and feed them to the
 * SSL: 1 some arrived, 0 timeout, -1 end of stream or error. */
int hc_tls_pump(hc_tls *c, int timeout_ms);
/* Run the handshake to the end within timeout_ms: 0, or -1 (err set). */
int hc_tls_handshake(hc_tls *c, int timeout_ms);
/* Encrypt len bytes into the write BIO (not sent): 0 or -1. */
int hc_tls_write(hc_tls *c, const void *buf, size_t len);
/* Read exactly len bytes within timeout_ms: 0 or -1. */
int hc_tls_read_exact(hc_tls *c, void *buf, size_t len, int timeout_ms);
/* Free the session and close the descriptor (FIN). Idempotent. */
void hc_tls_free(hc_tls *c);
/* Same, with an RST instead of a FIN. */
void hc_tls_free_rst(hc_tls *c);

#endif
