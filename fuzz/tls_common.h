/*
 * The TLS acceptor harness, shared by fuzz_tls_mbedtls.c and
 * fuzz_tls_openssl.c (static helpers only). Define FUZZ_TLS_BACKEND (a
 * ssock_tls_backend_id) before including it.
 *
 * The fuzzer's bytes are everything one client sends. For each input:
 *  - a real ssock TLS server is opened on 127.0.0.1, port 0, with a private
 *    system-call table (struct ssock__sys) whose accept4() hands out the
 *    server end of a fresh AF_UNIX socketpair, and whose poll() reports
 *    the listening socket readable while that connection is pending;
 *  - the whole input is written into the client end, which is then shut
 *    for writing (the client has nothing more to say);
 *  - ssock_server_accept() runs the library's real acceptor: the handshake
 *    set, non-blocking handshake steps through the TLS socket's transport
 *    callbacks, the backend. Every other recv() on a connection says
 *    EAGAIN first, so handshakes also go through the pending set and poll;
 *  - if a handshake completes, the socket is read until end of stream,
 *    everything read is echoed back, and the socket and server are closed
 *    in an order the input picks (its last byte);
 *  - the documented rules are checked (abort() on violation): accept gives
 *    a socket exactly when it returns 0, and otherwise only ends because
 *    nothing is left to do (the harness's poll() then reports the wake
 *    descriptor, which accept reports as SSOCK_ECLOSED); the handshake
 *    counters add up; read never reports more than asked; the TLS getters
 *    answer on an open socket, and the same after close; after a
 *    server close the socket fails with SSOCK_ESERVERCLOSED; a second close
 *    gives SSOCK_ECLOSED; at the end no descriptor is left over.
 *
 * Pieces, stalls and floods: an input that starts with the two bytes
 * 0xFE 0x50 ('P'; 0xFE is no TLS record type) is a delivery program:
 *
 *     FE 50 L c[0] .. c[L-1] body...
 *
 * The body is what the client sends, but it is not queued up front: the
 * harness hands the server the next piece only when the server has read
 * everything so far (in its recv() and poll() hooks), one piece per control
 * byte c, in order, the rest of the body in one piece once the control
 * bytes run out, then end of stream. Each c:
 *   bits 0-3  piece length: 1 2 3 5 8 13 21 34 55 89 144 233 377 610 987,
 *             15 = the whole rest of the body;
 *   bits 4-5  0: nothing more; 1: a stall before the piece (bits 6-7: 0-1
 *             1 ms, 2-3 20 ms, longer than the socket's 5 ms read timeout:
 *             a read mid-record times out); 2: after the piece, a flood of
 *             64 small records of kind bits 6-7 (0 warning alert
 *             user_canceled, 1 empty handshake record, 2 ChangeCipherSpec,
 *             3 empty application data); 3: the same, 1024 records.
 * Stalls add up to at most TLS_STALL_MAX_MS per input, floods to at most
 * TLS_FLOOD_MAX records. The rules checked
 * are the same; only when the server sees the bytes changes. Seeds:
 * pieces-* (fuzz/make-tls-piece-seeds.py).
 *
 * Fixtures: one ssock_tls_config (ECDSA P-256 server certificate, client
 * certificates optional and checked against the test CA, ALPN h2 and
 * http/1.1) built on the first input and kept for the process, with the
 * fixed random stream below installed in it (where the backend allows).
 * The server, the socketpair and the position in the random stream are
 * fresh for every input: the stream restarts at its seed before each
 * server opens, so no state of one input reaches the next.
 *
 * Determinism: the input alone decides what the server reads and when
 * (everything is queued before the handshake starts, and the EAGAIN
 * pattern is fixed). The server's random numbers come from a fixed
 * stream (tls_rng): on mbedTLS through the library's internal hook
 * ssock__tls_config_set_test_rng(); on OpenSSL, which the hook cannot
 * serve, through a process-wide RAND_METHOD (tls_openssl_rng.h). So an
 * input gets the same server bytes every time, except on mbedTLS the 4
 * bytes of time at the start of ServerHello.random and what is computed
 * from them (the ServerKeyExchange signature; see fuzz/README.md).
 * With SSOCK_FUZZ_TRACE=1 the harness prints the length and a hash of
 * what the server sent, to compare runs. The clock otherwise matters for
 * the handshake deadline, which a well-behaved acceptor never reaches here
 * (5 s; reaching it aborts), and for the dates of a client certificate.
 */
#ifndef SSOCK_FUZZ_TLS_COMMON_H
#define SSOCK_FUZZ_TLS_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "internal.h"
#include "ssock/tls.h"
#include "tls_backend.h"

/* Live mode needs libssl for its client (linked when the OpenSSL backend
 * is built). */
#if SSOCK_HAVE_OPENSSL
#define TLS_LIVE 1
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/ssl.h>
#else
#define TLS_LIVE 0
#endif

#ifndef FUZZ_TLS_BACKEND
#error "define FUZZ_TLS_BACKEND before including tls_common.h"
#endif
#ifndef SSOCK_FUZZ_CERTS_DIR
#error "SSOCK_FUZZ_CERTS_DIR must name the certs/ folder (fuzz/CMakeLists.txt)"
#endif

/* Longest input written to the client end (a socketpair holds more). */
#define TLS_INPUT_MAX 65536
/* Far beyond what a handshake over a local socketpair needs, even under
 * Valgrind on a loaded machine (a live-mode handshake, both ends in this
 * process, took up to 2 s there); reaching it is a stall and aborts. */
#define TLS_DEADLINE_MS 5000
/* Piece mode: the most stalling per input, and the plan's limits. */
#define TLS_STALL_MAX_MS 100
#define TLS_PLAN_MAX 257
#define TLS_FLOOD_MAX 8192 /* flood records per input */
#define TLS_PLAN_BYTES (TLS_INPUT_MAX + TLS_FLOOD_MAX * 7)

#define TCHECK(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            tls_violation(__LINE__, #cond);                                    \
    } while (0)

/* SSOCK_FUZZ_TRACE=1 in the environment prints what each input did. */
static int tls_tracing(void)
{
    static int on = -1;
    if (on < 0)
        on = getenv("SSOCK_FUZZ_TRACE") != NULL;
    return on;
}

#define TTRACE(...)                                                            \
    do {                                                                       \
        if (tls_tracing())                                                     \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

static void tls_violation(int line, const char *what)
{
    fprintf(stderr, "fuzz_tls: %s:%d: rule violated: %s\n", __FILE__, line,
            what);
    abort();
}

/* The fixed random stream restarts here before every server (input). */
#define TLS_RNG_SEED 0x5eed5eed5eed5eedull

static struct {
    ssock_tls_config *cfg; /* fixture: built once, kept for the process */
    int listen_fd;         /* the server under test's descriptors */
    int wake_fd;
    int pending_fd; /* server end of the socketpair until accept4 takes it */
    int dummy_fd;   /* a real TCP client that makes the listener readable */
    ssock_server *srv;
    int taken;
    int proxy; /* the input starts with a PROXY header: proxy_protocol on */
    unsigned long recvs;
    uint64_t rng; /* position in the random stream, reset per input */
} T = {NULL, -1, -1, -1, -1, NULL, 0, 0, 0, TLS_RNG_SEED};

/* Piece mode: the chunks still to hand to the server, in order. */
static struct {
    int on;
    int client_fd; /* the client's end, written by the harness */
    int conn_fd;   /* the server's end */
    int n, next;
    int shut; /* end of stream sent */
    struct {
        size_t off, len; /* bytes of F.buf to send */
        size_t piece;    /* of which the body's piece (the rest: flood) */
        int stall_ms;
    } chunk[TLS_PLAN_MAX];
    uint8_t *buf;
} F = {0, -1, -1, 0, 0, 0, {{0, 0, 0, 0}}, NULL};

static int tls_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* ---- piece mode -------------------------------------------------------- */

static int tls_write_all(int fd, const uint8_t *p, size_t len);

/* Bytes queued for the server and not yet read. */
static int tls_queued(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) != 0)
        return 1; /* unknown: do not feed */
    return n;
}

static void tls_stall(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#if TLS_LIVE
/*
 * Live mode (input FE 4C v L c[..] body): a client on OpenSSL's libssl,
 * run by the harness inside the server's own recv()/poll() calls over
 * memory BIOs, does a real handshake with the server, then sends the body
 * as application data, piece by piece (each piece one SSL_write, the
 * plan's stalls before and floods, raw, after), then close_notify and end
 * of stream. It reads (and drops) whatever the server sends. `v`: bit 0
 * TLS 1.2 at most (else 1.3 allowed), bit 1 SNI "localhost", bit 2 ALPN
 * "h2". This is how the mbedTLS target reaches read/write/close_notify:
 * mbedTLS puts time() into its ServerHello, so recorded sessions cannot
 * finish a handshake there. Seeds: live-* (make-tls-piece-seeds.py).
 */
static struct {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int hs_done;
    int failed;
} LC;

static void live_start(uint8_t v)
{
    if (LC.ctx == NULL) {
        LC.ctx = SSL_CTX_new(TLS_client_method());
        TCHECK(LC.ctx != NULL);
        SSL_CTX_set_verify(LC.ctx, SSL_VERIFY_NONE, NULL);
    }
    LC.ssl = SSL_new(LC.ctx);
    TCHECK(LC.ssl != NULL);
    LC.rbio = BIO_new(BIO_s_mem());
    LC.wbio = BIO_new(BIO_s_mem());
    TCHECK(LC.rbio != NULL && LC.wbio != NULL);
    SSL_set_bio(LC.ssl, LC.rbio, LC.wbio);
    SSL_set_connect_state(LC.ssl);
    TCHECK(SSL_set_min_proto_version(LC.ssl, TLS1_2_VERSION) == 1);
    if (v & 1)
        TCHECK(SSL_set_max_proto_version(LC.ssl, TLS1_2_VERSION) == 1);
    if (v & 2)
        TCHECK(SSL_set_tlsext_host_name(LC.ssl, "localhost") == 1);
    if (v & 4) {
        static const unsigned char h2[] = {2, 'h', '2'};
        TCHECK(SSL_set_alpn_protos(LC.ssl, h2, sizeof(h2)) == 0);
    }
    LC.hs_done = LC.failed = 0;
}

static void live_end(void)
{
    SSL_free(LC.ssl);
    LC.ssl = NULL;
}

/* What the server sent, into the client. */
static void live_pump_in(void)
{
    static uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(F.client_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        TCHECK(BIO_write(LC.rbio, buf, (int)n) == (int)n);
    }
}

/* What the client wrote, to the server. */
static void live_pump_out(void)
{
    static uint8_t buf[16384];
    int n;
    while ((n = BIO_read(LC.wbio, buf, (int)sizeof(buf))) > 0)
        TCHECK(tls_write_all(F.client_fd, buf, (size_t)n) == 0);
}

static void live_feed(void)
{
    static uint8_t sink[16384];
    live_pump_in();
    if (!LC.hs_done && !LC.failed) {
        int r = SSL_do_handshake(LC.ssl);
        if (r == 1) {
            LC.hs_done = 1;
            TTRACE("fuzz_tls: live client: handshake done, %s\n",
                   SSL_get_version(LC.ssl));
        } else {
            int e = SSL_get_error(LC.ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                LC.failed = 1;
                TTRACE("fuzz_tls: live client: handshake failed\n");
            }
        }
    }
    if (LC.hs_done) {
        while (SSL_read(LC.ssl, sink, (int)sizeof(sink)) > 0)
            ; /* the server's echo, dropped */
    }
    live_pump_out();
    if (LC.failed || F.next == F.n) {
        if (tls_queued(F.conn_fd) > 0)
            return;
        if (LC.hs_done) {
            (void)SSL_shutdown(LC.ssl);
            live_pump_out();
        }
        TCHECK(shutdown(F.client_fd, SHUT_WR) == 0);
        F.shut = 1;
        return;
    }
    if (!LC.hs_done || tls_queued(F.conn_fd) > 0)
        return;
    int i = F.next++;
    tls_stall(F.chunk[i].stall_ms);
    if (F.chunk[i].piece > 0) {
        size_t done = 0;
        TCHECK(SSL_write_ex(LC.ssl, F.buf + F.chunk[i].off, F.chunk[i].piece,
                            &done) == 1);
        live_pump_out();
    }
    if (F.chunk[i].len > F.chunk[i].piece)
        TCHECK(tls_write_all(F.client_fd,
                             F.buf + F.chunk[i].off + F.chunk[i].piece,
                             F.chunk[i].len - F.chunk[i].piece) == 0);
}
#endif

/* Hand the server its next piece when it has read everything so far. */
static void tls_feed(int fd)
{
    if (!F.on || fd != F.conn_fd || F.shut)
        return;
#if TLS_LIVE
    if (F.on == 2) {
        live_feed();
        return;
    }
#endif
    if (tls_queued(fd) > 0)
        return;
    if (F.next == F.n) {
        TCHECK(shutdown(F.client_fd, SHUT_WR) == 0);
        F.shut = 1;
        return;
    }
    int i = F.next++;
    tls_stall(F.chunk[i].stall_ms);
    /* The queue is empty and a chunk is at most 64 KiB + 7 KiB: it fits
     * in the socketpair, so this write does not block. */
    TCHECK(tls_write_all(F.client_fd, F.buf + F.chunk[i].off, F.chunk[i].len) ==
           0);
}

/* Build the plan of a piece-mode input (see the top of this file). */
static void tls_plan(const uint8_t *data, size_t size)
{
    static const uint16_t piece[15] = {1,  2,  3,   5,   8,   13,  21, 34,
                                       55, 89, 144, 233, 377, 610, 987};
    static const uint8_t flood[4][7] = {
        {0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x5a}, /* warning alert */
        {0x16, 0x03, 0x03, 0x00, 0x00},             /* empty handshake */
        {0x14, 0x03, 0x03, 0x00, 0x01, 0x01},       /* ChangeCipherSpec */
        {0x17, 0x03, 0x03, 0x00, 0x00},             /* empty app data */
    };
    static const size_t flood_len[4] = {7, 5, 6, 5};

    /* FE 50 L c[0..L-1] body; any of it may be cut short. */
    size_t head = size < 3 ? size : 3;
    size_t L = size > 2 ? data[2] : 0;
    if (L > size - head)
        L = size - head;
    const uint8_t *ctl = data + head;
    const uint8_t *body = data + head + L;
    size_t left = size - head - L, used = 0;
    int stall_total = 0, flooded = 0;

    if (F.buf == NULL) {
        F.buf = malloc(TLS_PLAN_BYTES);
        TCHECK(F.buf != NULL);
    }
    F.n = F.next = F.shut = 0;
    for (size_t k = 0; left > 0 && F.n < TLS_PLAN_MAX - 1; k++) {
        uint8_t c = k < L ? ctl[k] : 0x0f;
        size_t len = (c & 15) == 15 ? left : piece[c & 15];
        if (len > left)
            len = left;
        int act = (c >> 4) & 3, arg = c >> 6;
        F.chunk[F.n].off = used;
        F.chunk[F.n].stall_ms = 0;
        if (act == 1) {
            int ms = arg < 2 ? 1 : 20;
            if (stall_total + ms <= TLS_STALL_MAX_MS) {
                F.chunk[F.n].stall_ms = ms;
                stall_total += ms;
            }
        }
        memcpy(F.buf + used, body, len);
        F.chunk[F.n].piece = len;
        used += len;
        body += len;
        left -= len;
        if (act >= 2) {
            int count = act == 2 ? 64 : 1024;
            if (count > TLS_FLOOD_MAX - flooded)
                count = TLS_FLOOD_MAX - flooded;
            flooded += count;
            for (int r = 0; r < count; r++) {
                memcpy(F.buf + used, flood[arg], flood_len[arg]);
                used += flood_len[arg];
            }
        }
        F.chunk[F.n].len = used - F.chunk[F.n].off;
        F.n++;
    }
    TTRACE("fuzz_tls: piece mode: %d chunks, %zu bytes, %d ms of stalls\n", F.n,
           used, stall_total);
}

/* ---- the system-call table ------------------------------------------ */

static int tls_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    if (fd != T.listen_fd || T.pending_fd < 0) {
        errno = EAGAIN;
        return -1;
    }
    /* Take the real connection that made the listener readable (the
     * acceptor waits on its epoll set, which sees only real readiness),
     * and hand out the socketpair end in its place. */
    int real = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (real >= 0)
        close(real);
    int s = T.pending_fd;
    T.pending_fd = -1;
    T.taken = 1;
    if ((flags & SOCK_NONBLOCK) &&
        fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) != 0) {
        close(s);
        return -1;
    }
    if (sa != NULL && len != NULL) {
        /* The peer of a loopback TCP connection, as accept4 would say. */
        struct sockaddr_in in4;
        memset(&in4, 0, sizeof(in4));
        in4.sin_family = AF_INET;
        in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in4.sin_port = htons(40000);
        socklen_t n = *len < sizeof(in4) ? *len : sizeof(in4);
        memcpy(sa, &in4, n);
        *len = sizeof(in4);
    }
    return s;
}

static int tls_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    nfds_t lst = n, wake = n;
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd == T.listen_fd)
            lst = i;
        else if (fds[i].fd == T.wake_fd)
            wake = i;
    }
    if (lst < n && T.pending_fd >= 0) {
        /* The connection is waiting in the (pretend) backlog. */
        int rc = poll(fds, n, 0);
        if (rc < 0)
            return rc;
        if (fds[lst].revents == 0)
            rc++;
        fds[lst].revents |= POLLIN;
        return rc;
    }
    int acceptor = 0; /* the accept loop's wait: epoll set + wake fd */
    for (nfds_t i = 0; i < n; i++)
        if (T.srv != NULL && fds[i].fd == ssock_server_poll_fd(T.srv))
            acceptor = 1;
    if (F.on) {
        /* The connection's descriptor is inside the acceptor's epoll set
         * while its handshake is pending. */
        for (nfds_t i = 0; i < n; i++)
            if ((fds[i].fd == F.conn_fd && (fds[i].events & POLLIN)) ||
                acceptor)
                tls_feed(F.conn_fd);
    }
    if (acceptor && wake < n && T.taken && T.srv->acc->pending(T.srv) == 0) {
        /* The connection was taken and no handshake is pending: nothing
         * can happen any more in this input. End the accept call the way a
         * close from another thread would, instead of waiting it out. */
        for (nfds_t i = 0; i < n; i++)
            fds[i].revents = 0;
        fds[wake].revents = POLLIN;
        return 1;
    }
    return poll(fds, n, timeout_ms);
}

static ssize_t tls_recv(int fd, void *buf, size_t len, int flags)
{
    tls_feed(fd);
    /* Data arrives in pieces: every other read would block first. */
    if (T.recvs++ % 2 == 0) {
        errno = EAGAIN;
        return -1;
    }
    return recv(fd, buf, len, flags);
}

static const struct ssock__sys tls_sys = {
    .socket = socket,
    .bind = bind,
    .listen = listen,
    .accept4 = tls_accept4,
    .poll = tls_poll,
    .recv = tls_recv,
    .send = send,
    .shutdown = shutdown,
    .close = close,
};

/* ---- the fixed random stream ------------------------------------------ */

/* splitmix64, a counter-mode generator: word i is a fixed mix of
 * seed + i * gamma. Fast, and good enough for the backends' checks (ECC
 * private keys in range, nonces). Each call starts a fresh word; the
 * OpenSSL RAND_METHOD depends on exactly this (recorded sess-* seeds). */
static void tls_rng_fill(uint64_t *state, unsigned char *buf, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        for (size_t j = 0; j < 8 && i + j < len; j++)
            buf[i + j] = (unsigned char)(z >> (8 * j));
    }
}

/* The RNG handed to ssock__tls_config_set_test_rng (p_rng = &T.rng). */
static int tls_rng(void *p_rng, unsigned char *buf, size_t len)
{
    tls_rng_fill(p_rng, buf, len);
    return 0;
}

/* ---- fixtures ---------------------------------------------------------- */

static void tls_fixtures(void)
{
    static const char *const alpn[] = {"h2", "http/1.1"};
    char err[SSOCK_TLS_ERRBUF_SIZE];
    ssock_tls_options o;

    if (T.cfg != NULL)
        return;
    ssock_tls_options_init(&o);
    o.backend = FUZZ_TLS_BACKEND;
    o.cert_file = SSOCK_FUZZ_CERTS_DIR "/server-ecdsa.pem";
    o.key_file = SSOCK_FUZZ_CERTS_DIR "/server-ecdsa.key";
    o.ca_file = SSOCK_FUZZ_CERTS_DIR "/ca.pem";
    o.verify_client = SSOCK_TLS_VERIFY_OPTIONAL;
    o.alpn = alpn;
    o.alpn_count = 2;
    o.handshake_timeout_ms = TLS_DEADLINE_MS;
    o.max_handshakes = 4;
    int rc = ssock_tls_config_new(&T.cfg, &o, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "fuzz_tls: cannot build the TLS fixture: %s: %s\n",
                ssock_err_name(rc), err);
        abort();
    }
    /* OpenSSL cannot take a per-config RNG (fuzz_tls_openssl.c fixes the
     * process-wide one instead); mbedTLS must. */
    int want =
        FUZZ_TLS_BACKEND == SSOCK_TLS_BACKEND_OPENSSL ? SSOCK_ENOBACKEND : 0;
    rc = ssock__tls_config_set_test_rng(T.cfg, tls_rng, &T.rng);
    TCHECK(rc == want);
}

/* ---- one input ------------------------------------------------------- */

static int tls_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void tls_check_str(const char *s, size_t max)
{
    if (s != NULL)
        TCHECK(strnlen(s, max + 1) <= max);
}

/* A finished handshake: read until the client is done, echo, close. */
static void tls_session(ssock_server *srv, ssock_socket *sock, int server_first)
{
    static uint8_t buf[16384];

    TCHECK(ssock_socket_tls_version(sock) != NULL);
    TCHECK(ssock_socket_tls_cipher(sock) != NULL);
    tls_check_str(ssock_socket_tls_version(sock), 16);
    tls_check_str(ssock_socket_tls_cipher(sock), 128);
    const char *alpn = ssock_socket_tls_alpn(sock);
    TCHECK(alpn == NULL || strcmp(alpn, "h2") == 0 ||
           strcmp(alpn, "http/1.1") == 0);
    tls_check_str(ssock_socket_tls_sni(sock), 255);
    tls_check_str(ssock_socket_tls_peer_subject(sock), 4096);
    TCHECK(ssock_socket_tls_last_error(sock) != NULL);
    /* Copies: the getters answer the same after close. */
    char info[5][512];
    const char *(*const get[5])(const ssock_socket *) = {
        ssock_socket_tls_version, ssock_socket_tls_cipher,
        ssock_socket_tls_alpn, ssock_socket_tls_sni,
        ssock_socket_tls_peer_subject};
    for (int i = 0; i < 5; i++) {
        const char *v = get[i](sock);
        snprintf(info[i], sizeof(info[i]), "%s", v != NULL ? v : "(none)");
    }

    for (int round = 0; round < 64; round++) {
        size_t n = 99999, w = 99999;
        /* Small reads now and then, so records are split across calls. */
        size_t want = round % 3 == 1 ? 7 : sizeof(buf);
        int rc = ssock_socket_read(sock, buf, want, &n);
        TTRACE("fuzz_tls: read: %s, %zu bytes\n", ssock_err_name(rc), n);
        if (rc != 0) {
            TCHECK(n == 0);
            TCHECK(rc == SSOCK_EOF || rc == SSOCK_ETRUNCATED ||
                   rc == SSOCK_ETIMEOUT || rc == SSOCK_ETLS ||
                   (rc < 0 && rc > -1000));
            break;
        }
        TCHECK(n >= 1 && n <= want);
        rc = ssock_socket_write(sock, buf, n, &w);
        TCHECK(w <= n);
        if (rc != 0)
            break;
        TCHECK(w == n);
    }

    if (server_first) {
        TCHECK(ssock_server_close(srv) == 0);
        size_t n = 5;
        TCHECK(ssock_socket_read(sock, buf, 1, &n) == SSOCK_ESERVERCLOSED);
        TCHECK(n == 0);
        TCHECK(ssock_socket_write(sock, buf, 1, NULL) == SSOCK_ESERVERCLOSED);
    }
    TCHECK(ssock_socket_close(sock) == 0);
    TCHECK(ssock_socket_close(sock) == SSOCK_ECLOSED);
    size_t n = 5;
    TCHECK(ssock_socket_read(sock, buf, 1, &n) == SSOCK_ECLOSED && n == 0);
    /* The session is gone with the close, but tls.h promises the
     * descriptive strings (the same ones) until free. */
    for (int i = 0; i < 5; i++) {
        const char *v = get[i](sock);
        TCHECK(strcmp(v != NULL ? v : "(none)", info[i]) == 0);
    }
    TCHECK(ssock_socket_tls_last_error(sock) != NULL);
    ssock_socket_free(sock);
}

/*
 * Open a TLS server, hand it `server_end` as its one connection, accept,
 * and run the session if the handshake completes. Checks the rules and
 * frees everything but the client's end. `read_ms` is the socket's read
 * timeout; `server_first` closes the server before the socket.
 */
static void tls_serve_one(int server_end, int read_ms, int server_first)
{
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;

    tls_fixtures();
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = TLS_DEADLINE_MS;
    o.read_timeout_ms = read_ms;
    o.write_timeout_ms = 50;
    o.tls = T.cfg;
    /* The fake peer is 127.0.0.1: trusted by the default list. */
    o.proxy_protocol = T.proxy ? SSOCK_PROXY_ANY : SSOCK_PROXY_OFF;
    T.rng = TLS_RNG_SEED; /* every input starts the stream afresh */
    int rc = ssock__server_open_sys(&srv, &o, &tls_sys);
    if (rc != 0) {
        fprintf(stderr, "fuzz_tls: cannot open the server: %s\n",
                ssock_err_name(rc));
        abort();
    }
    /* The hook refuses a config a server holds. */
    TCHECK(ssock__tls_config_set_test_rng(T.cfg, tls_rng, &T.rng) ==
           SSOCK_EINVAL);
    T.listen_fd = ssock_server_fd(srv);
    T.wake_fd = srv->wake.rd;
    T.pending_fd = server_end;
    T.srv = srv;
    {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)ssock_server_local_port(srv));
        T.dummy_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        TCHECK(T.dummy_fd >= 0 &&
               connect(T.dummy_fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    }
    T.taken = 0;
    T.recvs = 0;

    sock = (ssock_socket *)&o; /* must be reset */
    rc = ssock_server_accept(srv, &sock);

    ssock_tls_stats st;
    TCHECK(ssock_server_tls_stats(srv, &st) == 0);
    TTRACE("fuzz_tls: accept: %s; handshake ok %llu failed %llu (%s)\n",
           ssock_err_name(rc), (unsigned long long)st.handshakes_ok,
           (unsigned long long)st.handshakes_failed,
           ssock_server_tls_last_error(srv));
    if (rc == 0)
        TTRACE("fuzz_tls: %s %s alpn=%s sni=%s peer=%s\n",
               ssock_socket_tls_version(sock), ssock_socket_tls_cipher(sock),
               ssock_socket_tls_alpn(sock), ssock_socket_tls_sni(sock),
               ssock_socket_tls_peer_subject(sock));
    ssock_server_stats ss;
    TCHECK(ssock_server_stats(srv, &ss) == 0);
    TCHECK(T.taken && T.pending_fd < 0);
    TCHECK(st.accepted == 1 && ss.accepted == 1);
    TCHECK(T.proxy || ss.proxy_ok + ss.proxy_malformed == 0);
    TCHECK(ss.proxy_untrusted == 0 && ss.proxy_timed_out == 0);
    TCHECK(st.handshakes_ok + st.handshakes_failed + st.handshakes_timed_out +
               st.handshakes_dropped + st.in_flight + ss.proxy_malformed ==
           st.accepted);
    TCHECK(ssock_server_tls_last_error(srv) != NULL);
    if (rc == 0) {
        TCHECK(sock != NULL);
        TCHECK(st.handshakes_ok == 1);
        TCHECK(strcmp(ssock_socket_tcp_peer_host(sock), "127.0.0.1") == 0);
        TCHECK(ssock_socket_proxied(sock) ||
               strcmp(ssock_socket_peer_host(sock), "127.0.0.1") == 0);
        TCHECK(T.proxy || !ssock_socket_proxied(sock));
        tls_session(srv, sock, server_first);
    } else {
        /* Nothing else can end accept here: no close, no fault, and the
         * handshake deadline is never reached. */
        TCHECK(rc == SSOCK_ECLOSED);
        TCHECK(sock == NULL);
        TCHECK(st.handshakes_ok == 0 && st.in_flight == 0);
        TCHECK(st.handshakes_timed_out == 0 && st.handshakes_dropped == 0);
    }
    T.srv = NULL;
    ssock_server_free(srv);
    T.listen_fd = T.wake_fd = -1;
    close(T.dummy_fd);
    T.dummy_fd = -1;
}

static void tls_fuzz_one(const uint8_t *data, size_t size)
{
    int p[2];

    tls_fixtures(); /* before counting: its descriptors are closed again */
    int fds = tls_count_fds();
    if (size > TLS_INPUT_MAX)
        size = TLS_INPUT_MAX;
    TCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0);
    F.on = size >= 2 && data[0] == 0xfe && data[1] == 0x50;
#if TLS_LIVE
    if (size >= 3 && data[0] == 0xfe && data[1] == 0x4c)
        F.on = 2;
#endif
    if (F.on) {
        /* Piece mode: fed as the server reads. */
        F.client_fd = p[1];
        F.conn_fd = p[0];
        /* Live: FE 4C v, then the plan as from FE 50 (v in its place). */
        tls_plan(data + (F.on == 2), size - (F.on == 2));
#if TLS_LIVE
        if (F.on == 2)
            live_start(data[2]);
#endif
    } else {
        TCHECK(tls_write_all(p[1], data, size) == 0);
        TCHECK(shutdown(p[1], SHUT_WR) == 0);
    }

    /* A client that starts with a PROXY header (v1 text or the v2
     * signature) talks to a server with proxy_protocol on. */
    static const uint8_t v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    const uint8_t *body = data;
    size_t blen = size;
    if (F.on == 1) {
        body = F.buf;
        blen = F.n > 0 ? F.chunk[F.n - 1].off + F.chunk[F.n - 1].len : 0;
    }
    T.proxy = F.on != 2 && ((blen >= 5 && memcmp(body, "PROXY", 5) == 0) ||
                            (blen >= 12 && memcmp(body, v2sig, 12) == 0));
    tls_serve_one(p[0], 5, size > 0 && (data[size - 1] & 1));
    T.proxy = 0;
#if TLS_LIVE
    if (F.on == 2)
        live_end();
#endif
    F.on = 0;
    F.client_fd = F.conn_fd = -1;

    if (tls_tracing()) {
        /* What the server sent (FNV-1a), to compare runs of one input. */
        static uint8_t buf[16384];
        uint64_t h = 0xcbf29ce484222325ull;
        size_t total = 0;
        ssize_t n;
        while ((n = recv(p[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                h = (h ^ buf[i]) * 0x100000001b3ull;
            total += (size_t)n;
        }
        TTRACE("fuzz_tls: server sent %zu bytes, fnv1a %016llx\n", total,
               (unsigned long long)h);
    }
    close(p[1]);
    if (fds >= 0 && tls_count_fds() != fds) {
        fprintf(stderr, "fuzz_tls: %d descriptors before the input, %d after\n",
                fds, tls_count_fds());
        abort();
    }
}

#endif /* SSOCK_FUZZ_TLS_COMMON_H */
