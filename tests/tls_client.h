/* An in-test TLS client on OpenSSL's libssl, for tests/test_tls_accept.c.
 *
 * The descriptor is non-blocking; every call that waits takes a timeout
 * and poll()s, so the same functions serve a blocking style ("handshake
 * within 5 s") and a step-by-step one (tc_step: one SSL_connect call).
 * Sends go through a small BIO that uses send(MSG_NOSIGNAL), so a client
 * writing to a server that dropped it never raises SIGPIPE (the tests keep
 * SIGPIPE at its default disposition). TCP_NODELAY is set, as real
 * clients do, so timings measure the server. Not thread-safe per connection;
 * different connections may be used from different threads. */
#ifndef SSOCK_TESTS_TLS_CLIENT_H
#define SSOCK_TESTS_TLS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* Results. */
#define TC_OK 0
#define TC_ERR (-1)          /* TLS or socket error: text in c->err */
#define TC_TIMEOUT (-2)      /* nothing within the time given */
#define TC_CLOSE_NOTIFY (-3) /* the peer sent close_notify (ZERO_RETURN) */
#define TC_EOF (-4)          /* TCP end of stream without close_notify */
#define TC_WANT (1)          /* tc_step: call again when c->want is ready */

typedef struct tc_opts {
    /* TLS1_2_VERSION / TLS1_3_VERSION; 0 = OpenSSL's default (lowest:
     * TLS 1.2 is forced here, highest: 1.3). */
    int min_version;
    int max_version;
    /* Verify the server against this CA (and verify_host, when set);
     * NULL: no verification. */
    const char *ca_file;
    const char *verify_host;
    /* Client certificate and key (both or neither). */
    const char *cert_file;
    const char *key_file;
    /* SNI host name, NULL: none sent. */
    const char *sni;
    /* ALPN offer, comma separated ("http/1.1,h2"); NULL: none. */
    const char *alpn;
} tc_opts;

typedef struct tc_conn {
    int fd;
    void *ctx;    /* SSL_CTX */
    void *ssl;    /* SSL */
    void *meth;   /* BIO_METHOD */
    int eof;      /* recv() returned 0 */
    int io_errno; /* errno of the last failed send/recv */
    short want;   /* POLLIN / POLLOUT after TC_WANT */
    char err[320];
} tc_conn;

void tc_opts_init(tc_opts *o);

/* Connect to 127.0.0.1:port (within timeout_ms) and prepare the TLS
 * session; no TLS byte is sent yet. TC_OK or TC_ERR (c->fd is -1 and
 * nothing is left to free on failure). */
int tc_open(tc_conn *c, int port, const tc_opts *o, int timeout_ms);

/* One non-blocking SSL_connect: TC_OK done, TC_WANT (c->want set), or
 * TC_ERR / TC_EOF. */
int tc_step(tc_conn *c);
/* Finish the handshake within timeout_ms: TC_OK, TC_TIMEOUT, TC_ERR,
 * TC_EOF. */
int tc_handshake(tc_conn *c, int timeout_ms);

/* Write everything within timeout_ms: TC_OK, TC_TIMEOUT, TC_ERR. */
int tc_write_all(tc_conn *c, const void *buf, size_t len, int timeout_ms);
/* Wait up to timeout_ms for data and read what is there: TC_OK with
 * *n > 0, TC_TIMEOUT, TC_CLOSE_NOTIFY, TC_EOF, TC_ERR. */
int tc_read_some(tc_conn *c, void *buf, size_t len, size_t *n, int timeout_ms);
/* Read exactly len bytes, within timeout_ms in total. */
int tc_read_exact(tc_conn *c, void *buf, size_t len, int timeout_ms);
/* Send `len` bytes of `out` and receive `len` bytes into `in` at the same
 * time (for an echoing peer), within timeout_ms in total. */
int tc_echo(tc_conn *c, const void *out, void *in, size_t len, int timeout_ms);
/* Send close_notify (does not wait for the peer's). TC_OK or TC_ERR. */
int tc_shutdown(tc_conn *c);
/* Free everything and close the descriptor (a plain FIN). Idempotent. */
void tc_close(tc_conn *c);

/* Negotiated values as the client sees them ("" when none). */
const char *tc_version(const tc_conn *c);
const char *tc_cipher(const tc_conn *c);
/* ALPN selected, copied into buf; "" when none. */
const char *tc_alpn(const tc_conn *c, char *buf, size_t len);

/* The bytes of a real ClientHello (as tc_open + tc_step would send for
 * these options), without any network: TC_OK with *len set, or TC_ERR. */
int tc_client_hello(const tc_opts *o, uint8_t *buf, size_t cap, size_t *len);

#endif
