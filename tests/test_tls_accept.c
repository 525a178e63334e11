/* src/tls_accept.c + src/tls_socket.c: the TLS acceptor and TLS sockets,
 * end to end over loopback, once per built backend.
 *
 * Peers: the in-test libssl client (tls_client.c), `openssl s_client` and
 * `gnutls-cli` (spawned, stdin/stdout/stderr redirected; gnutls-cli is
 * skipped with a printed reason when missing).
 *
 * Cases: handshake + echo and the session accessors (both certificate
 * types, TLS 1.2, TLS 1.3 on OpenSSL, SNI, ALPN); real peers; mutual TLS;
 * handshake failures that must never be returned nor end accept() early;
 * slowloris (figures printed); the per-handshake deadline; the accept
 * timeout while clients stall; a handshake pending across accept() calls;
 * the in-flight cap; server close (acceptor, pending handshakes, accepted
 * sockets, a blocked reader); TLS socket semantics (timeouts, close_notify
 * both ways, vanished peer without SIGPIPE, 1 MiB echo).
 *
 * Timing: lower bounds are exact (1 ms rounding); upper bounds get
 * slack_ms(), larger under Valgrind. Threads are synchronised with joins
 * and events; the only sleeps create a delay whose effect is measured, or
 * pace a bounded wait for a counter. */
#include "helpers.h"
#include "tls_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "internal.h"
#include "ssock/tls.h"

#if defined(SSOCK_HAVE_VALGRIND_H)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#ifndef SSOCK_CERTS_DIR
#error "SSOCK_CERTS_DIR must name the certs/ directory"
#endif
#define CERT(f) SSOCK_CERTS_DIR "/" f

#ifndef SSOCK_OPENSSL_BIN
#define SSOCK_OPENSSL_BIN ""
#endif
#ifndef SSOCK_GNUTLS_CLI
#define SSOCK_GNUTLS_CLI ""
#endif

/* Generous wait for things that must happen ("the handshake finishes"). */
#define LONG_MS 10000

/* Slack over a documented TLS bound: th_slack_ms() plus one handshake
 * step (the header allows accept() one step past its timeout): 30 + 20 ms
 * natively, 100 + 100 ms under a sanitizer; under Valgrind (every
 * handshake step takes hundreds of ms) 3000 ms. */
static int slack_ms(void)
{
    if (RUNNING_ON_VALGRIND)
        return 3000;
    return th_slow_mode() ? th_slack_ms() + 100 : th_slack_ms() + 20;
}

/* ---- backends ---------------------------------------------------------- */

static int g_be[2];
static int g_nbe;
static int g_missing[2]; /* backends not built: reported as skips */
static int g_nmissing;
static uint8_t g_hello[4096]; /* a real ClientHello (SNI localhost) */
static size_t g_hello_len;

static int group_setup(void **state)
{
    static const int all[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                              SSOCK_TLS_BACKEND_OPENSSL};
    tc_opts o;

    const char *only = getenv("TLS_ACCEPT_BACKEND");

    (void)state;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (only != NULL && only[0] != '\0' &&
            strcmp(only, ssock_tls_backend_name(all[i])) != 0)
            print_message("[  INFO    ] TLS_ACCEPT_BACKEND=%s: %s skipped\n",
                          only, ssock_tls_backend_name(all[i]));
        else if (ssock_tls_backend_available(all[i]))
            g_be[g_nbe++] = all[i];
        else
            g_missing[g_nmissing++] = all[i];
    }
    tc_opts_init(&o);
    o.sni = "localhost";
    if (tc_client_hello(&o, g_hello, sizeof g_hello, &g_hello_len) != TC_OK ||
        g_hello_len < 100) {
        print_message("cannot build a ClientHello\n");
        return -1;
    }
    print_message("[  INFO    ] %s; ClientHello %zu bytes\n",
                  RUNNING_ON_VALGRIND ? "under Valgrind" : "native",
                  g_hello_len);
    return 0;
}

static void each_backend(void (*fn)(int backend))
{
    for (int i = 0; i < g_nmissing; i++)
        if (th_skip_check("backend %s not built: its runs are skipped",
                          ssock_tls_backend_name(g_missing[i])))
            fail_msg("SSOCK_GATE=1: every TLS backend must be built");
    if (g_nbe == 0)
        TH_SKIP("no TLS backend built");
    for (int i = 0; i < g_nbe; i++) {
        print_message("[ backend  ] %s\n", ssock_tls_backend_name(g_be[i]));
        fn(g_be[i]);
    }
}

/* Whether the backend as built offers TLS 1.3 (OpenSSL 3; mbedTLS 3.6,
 * not 2.28): asked of the library itself, so the expectations follow the
 * mbedTLS the build found. */
static int has_tls13(int backend)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    int rc;
    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.min_version = SSOCK_TLS_VERSION_1_3;
    rc = ssock_tls_config_new(&cfg, &t, NULL, 0);
    ssock_tls_config_free(cfg);
    if (rc != 0 && rc != SSOCK_EVERSION)
        fail_msg("TLS 1.3 probe: %s", ssock_err_name(rc));
    return rc == 0;
}

/* ---- server set-up ----------------------------------------------------- */

typedef struct spec {
    int backend;
    int rsa;           /* server-rsa instead of server-ecdsa */
    int verify;        /* ssock_tls_verify (CA certs/ca.pem when not none) */
    int min_version;   /* ssock_tls_version */
    int alpn;          /* 1: {"h2", "http/1.1"} */
    int hs_timeout_ms; /* 0: default */
    int max_hs;        /* 0: default */
} spec;

static void spec_init(spec *s, int backend)
{
    memset(s, 0, sizeof *s);
    s->backend = backend;
    s->verify = SSOCK_TLS_VERIFY_NONE;
    s->min_version = SSOCK_TLS_VERSION_1_2;
}

/* Open a TLS server on 127.0.0.1, port 0. The config is freed right after
 * the open: the server keeps its own reference. */
static ssock_server *open_srv(const spec *s, int accept_timeout_ms, int *port)
{
    static const char *const alpn[] = {"h2", "http/1.1"};
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    int rc;

    ssock_tls_options_init(&t);
    t.backend = s->backend;
    t.cert_file = s->rsa ? CERT("server-rsa.pem") : CERT("server-ecdsa.pem");
    t.key_file = s->rsa ? CERT("server-rsa.key") : CERT("server-ecdsa.key");
    if (s->verify != SSOCK_TLS_VERIFY_NONE)
        t.ca_file = CERT("ca.pem");
    t.verify_client = s->verify;
    t.min_version = s->min_version;
    if (s->alpn) {
        t.alpn = alpn;
        t.alpn_count = 2;
    }
    if (s->hs_timeout_ms > 0)
        t.handshake_timeout_ms = s->hs_timeout_ms;
    if (s->max_hs > 0)
        t.max_handshakes = s->max_hs;
    /* Every client here comes from 127.0.0.1, so one source: these tests
     * are about the whole set (the per-source limit is test_hostile's). */
    t.max_handshakes_per_source = SSOCK_TLS_MAX_HANDSHAKES_LIMIT;
    rc = ssock_tls_config_new(&cfg, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("ssock_tls_config_new: %s: %s", ssock_err_name(rc), err);
    assert_int_equal(ssock_tls_config_backend(cfg), s->backend);

    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.port = 0;
    o.accept_timeout_ms = accept_timeout_ms;
    o.backlog = 512; /* the slowloris clients must all get through connect */
    o.tls = cfg;
    /* Through the system-call spy, so "still blocked" is observed. */
    th_spy_reset();
    rc = ssock__server_open_sys(&srv, &o, th_spy_sys());
    ssock_tls_config_free(cfg);
    if (rc != 0)
        fail_msg("ssock_server_open: %s", ssock_err_name(rc));
    *port = ssock_server_local_port(srv);
    assert_true(*port > 0);
    return srv;
}

static ssock_tls_stats get_stats(const ssock_server *srv)
{
    ssock_tls_stats st;
    assert_int_equal(ssock_server_tls_stats(srv, &st), 0);
    return st;
}

static void print_stats(const char *what, const ssock_server *srv)
{
    ssock_tls_stats st = get_stats(srv);
    print_message("    %s: accepted %llu ok %llu failed %llu timed_out %llu "
                  "dropped %llu in_flight %llu\n",
                  what, (unsigned long long)st.accepted,
                  (unsigned long long)st.handshakes_ok,
                  (unsigned long long)st.handshakes_failed,
                  (unsigned long long)st.handshakes_timed_out,
                  (unsigned long long)st.handshakes_dropped,
                  (unsigned long long)st.in_flight);
}

/* Bounded wait for the acceptor (running in another thread) to hold
 * `want` handshakes in flight. 1 when reached. */
static int wait_in_flight(const ssock_server *srv, uint64_t want,
                          int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    for (;;) {
        if (get_stats(srv).in_flight == want)
            return 1;
        if (th_now_ms() > end)
            return 0;
        th_sleep_ms(1);
    }
}

/* ---- accept on a thread -------------------------------------------------- */

typedef struct acc {
    th_call call;
    ssock_server *srv;
    ssock_socket *sock;
} acc;

static int acc_fn(void *p)
{
    acc *a = p;
    return ssock_server_accept(a->srv, &a->sock);
}

static void acc_start(acc *a, ssock_server *srv)
{
    a->srv = srv;
    a->sock = NULL;
    assert_int_equal(th_call_start(&a->call, acc_fn, a), 0);
}

/* Join the accepting thread; its status. */
static int acc_wait(acc *a, int timeout_ms)
{
    if (!th_call_wait(&a->call, timeout_ms))
        fail_msg("accept still running after %d ms", timeout_ms);
    if (a->call.rc != 0)
        assert_null(a->sock);
    return a->call.rc;
}

static int64_t acc_elapsed_ms(const acc *a)
{
    return (a->call.end_us - a->call.start_us) / 1000;
}

/* ---- client side helpers ---------------------------------------------------
 */

static tc_opts client_opts(void)
{
    tc_opts o;
    tc_opts_init(&o);
    o.ca_file = CERT("ca.pem");
    o.verify_host = "localhost";
    o.sni = "localhost";
    return o;
}

/* The client handshakes with a server whose accept() runs in `a`; the
 * accepted socket is returned. */
static ssock_socket *handshake_with(ssock_server *srv, int port, tc_conn *c,
                                    const tc_opts *o)
{
    acc a;
    int rc;

    acc_start(&a, srv);
    rc = tc_open(c, port, o, LONG_MS);
    if (rc == TC_OK)
        rc = tc_handshake(c, LONG_MS);
    if (rc != TC_OK) {
        int arc = acc_wait(&a, LONG_MS + slack_ms());
        fail_msg("client handshake: %d %s (accept: %s, server: %s)", rc, c->err,
                 ssock_err_name(arc), ssock_server_tls_last_error(srv));
    }
    rc = acc_wait(&a, LONG_MS + slack_ms());
    if (rc != 0)
        fail_msg("accept: %s", ssock_err_name(rc));
    assert_non_null(a.sock);
    return a.sock;
}

/* Server reads exactly len bytes. */
static void sock_read_exact(ssock_socket *s, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        int rc = ssock_socket_read(s, (char *)buf + done, len - done, &n);
        if (rc != 0)
            fail_msg("ssock_socket_read: %s (%s)", ssock_err_name(rc),
                     ssock_socket_tls_last_error(s));
        done += n;
    }
}

/* Client sends msg, the server echoes it, the client checks it. */
static void echo_once(ssock_socket *s, tc_conn *c, const char *msg)
{
    char got[256], back[256];
    size_t len = strlen(msg);

    assert_true(len < sizeof got);
    if (tc_write_all(c, msg, len, LONG_MS) != TC_OK)
        fail_msg("client write: %s", c->err);
    sock_read_exact(s, got, len);
    assert_memory_equal(got, msg, len);
    assert_int_equal(ssock_socket_write(s, got, len, NULL), 0);
    if (tc_read_exact(c, back, len, LONG_MS) != TC_OK)
        fail_msg("client read: %s", c->err);
    assert_memory_equal(back, msg, len);
}

/* A TLS connection: server, accepted socket, client. */
typedef struct tpair {
    ssock_server *srv;
    ssock_socket *sock;
    tc_conn c;
    int port;
} tpair;

/* One live pair at a time, in static storage, so that the teardown of a
 * test that failed half way can still free it (cmocka longjmps out). */
static tpair g_tp;
static int g_tp_live;

static tpair *tpair_open(int backend, int accept_timeout_ms)
{
    tpair *p = &g_tp;
    spec s;
    tc_opts o = client_opts();

    assert_false(g_tp_live);
    memset(p, 0, sizeof *p);
    p->c.fd = -1;
    spec_init(&s, backend);
    s.alpn = 1;
    o.alpn = "h2";
    p->srv = open_srv(&s, accept_timeout_ms, &p->port);
    g_tp_live = 1;
    p->sock = handshake_with(p->srv, p->port, &p->c, &o);
    return p;
}

static void tpair_free(tpair *p)
{
    tc_close(&p->c);
    ssock_socket_free(p->sock);
    ssock_server_free(p->srv);
    p->sock = NULL;
    p->srv = NULL;
    g_tp_live = 0;
}

/* ---- misbehaving clients --------------------------------------------------
 */

enum bad_kind {
    BAD_HTTP,          /* a plain HTTP request, connection kept open */
    BAD_TRUNCATED,     /* first 40 bytes of a ClientHello, then close */
    BAD_RANDOM,        /* 256 garbage bytes, connection kept open */
    BAD_CONNECT_CLOSE, /* connect, then close at once */
    BAD_SILENT,        /* connect, never speak */
    BAD_HALF_HELLO     /* half a ClientHello, then silence */
};

static const char *bad_name(int kind)
{
    static const char *const names[] = {
        "plain HTTP request",
        "truncated ClientHello (40 bytes, close)",
        "random bytes",
        "connect and close",
        "silent",
        "half ClientHello"};
    return names[kind];
}

/* Connect a misbehaving client. The fd, or -1 when the client already
 * closed its side (it is gone). */
static int bad_client(int kind, int port)
{
    static const char http[] = "GET / HTTP/1.0\r\n\r\n";
    uint8_t junk[256];
    int fd = th_connect(AF_INET, port, LONG_MS);

    if (fd < 0)
        fail_msg("connect: %s", strerror(-fd));
    switch (kind) {
    case BAD_HTTP:
        assert_int_equal(th_send_all(fd, http, sizeof http - 1), 0);
        return fd;
    case BAD_TRUNCATED:
        assert_int_equal(th_send_all(fd, g_hello, 40), 0);
        close(fd);
        return -1;
    case BAD_RANDOM:
        th_fill(junk, sizeof junk, 0x5eed, 0);
        /* Keep it garbage: neither a TLS record type (20..24) nor an
         * SSLv2-style header (high bit), which could wait for more. */
        junk[0] = (uint8_t)(0x30 + junk[0] % 0x40);
        assert_int_equal(th_send_all(fd, junk, sizeof junk), 0);
        return fd;
    case BAD_CONNECT_CLOSE:
        close(fd);
        return -1;
    case BAD_SILENT:
        return fd;
    case BAD_HALF_HELLO:
        assert_int_equal(th_send_all(fd, g_hello, g_hello_len / 2), 0);
        return fd;
    default:
        fail_msg("bad kind %d", kind);
    }
    return -1;
}

/* The server closed this connection: reading gives end of stream or a
 * reset (after any alert bytes), within timeout_ms. */
static int closed_by_server(int fd, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    char buf[512];
    for (;;) {
        int64_t left = end - th_now_ms();
        ssize_t n = th_recv_some(fd, buf, sizeof buf, left > 0 ? (int)left : 0);
        if (n > 0)
            continue; /* an alert */
        return n == 0 || n == -ECONNRESET || n == -EPIPE;
    }
}

/* Still open: nothing to read right now, no end of stream. */
static int still_open(int fd)
{
    char b;
    return th_recv_some(fd, &b, 1, 0) == -ETIMEDOUT;
}

/* ======================================================================= */
/* Handshake, echo and accessors                                            */
/* ======================================================================= */

static void check_session(int backend, int rsa, int tls13)
{
    spec s;
    tc_opts o = client_opts();
    tc_conn c;
    ssock_server *srv;
    ssock_socket *sock;
    int port;
    char alpn[64];
    const char *want_cipher = tls13 ? "TLS_AES_128_GCM_SHA256"
                              : rsa ? "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                                    : "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";

    print_message("    %s certificate, TLS %s\n",
                  rsa ? "RSA-2048" : "ECDSA P-256", tls13 ? "1.3" : "1.2");
    spec_init(&s, backend);
    s.rsa = rsa;
    s.alpn = 1;
    srv = open_srv(&s, LONG_MS, &port);
    o.min_version = o.max_version = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    o.alpn = "http/1.1,h2"; /* the server's order decides: h2 */
    sock = handshake_with(srv, port, &c, &o);

    assert_string_equal(ssock_socket_tls_version(sock),
                        tls13 ? "TLSv1.3" : "TLSv1.2");
    assert_string_equal(ssock_socket_tls_version(sock), tc_version(&c));
    assert_non_null(ssock_socket_tls_cipher(sock));
    assert_string_equal(ssock_socket_tls_cipher(sock), tc_cipher(&c));
    if (tls13 && strcmp(ssock_socket_tls_cipher(sock), want_cipher) != 0) {
        /* TLS 1.3: OpenSSL uses the server's order; mbedTLS 3.6 the
         * client's. Either way one of the three allowed AEAD suites. */
        const char *c13 = ssock_socket_tls_cipher(sock);
        if (strcmp(c13, "TLS_AES_256_GCM_SHA384") != 0 &&
            strcmp(c13, "TLS_CHACHA20_POLY1305_SHA256") != 0)
            fail_msg("TLS 1.3 suite %s is not one of the defaults", c13);
        print_message("      TLS 1.3 suite %s (client's preference)\n", c13);
    } else {
        assert_string_equal(ssock_socket_tls_cipher(sock), want_cipher);
    }
    assert_non_null(ssock_socket_tls_sni(sock));
    assert_string_equal(ssock_socket_tls_sni(sock), "localhost");
    assert_non_null(ssock_socket_tls_alpn(sock));
    assert_string_equal(ssock_socket_tls_alpn(sock), "h2");
    assert_string_equal(tc_alpn(&c, alpn, sizeof alpn), "h2");
    assert_null(ssock_socket_tls_peer_subject(sock));
    assert_non_null(ssock_socket_tls_last_error(sock));
    assert_string_equal(ssock_socket_peer_host(sock), "127.0.0.1");
    assert_int_equal(ssock_socket_peer_port(sock), th_local_port(c.fd));

    echo_once(sock, &c, "hello over TLS");
    echo_once(sock, &c, "and once more");

    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.handshakes_ok, 1);
    assert_int_equal(st.handshakes_failed, 0);
    assert_int_equal(st.in_flight, 0);

    tc_close(&c);
    ssock_socket_free(sock);
    ssock_server_free(srv);
}

static void run_handshake_echo(int backend)
{
    for (int rsa = 0; rsa <= 1; rsa++) {
        check_session(backend, rsa, 0);
        if (has_tls13(backend))
            check_session(backend, rsa, 1);
    }
}

static void test_handshake_echo(void **state)
{
    (void)state;
    each_backend(run_handshake_echo);
}

/* No SNI, no ALPN offered (server has ALPN): both accessors NULL. And a
 * server without ALPN accepts a client that offers some. */
static void run_no_sni_no_alpn(int backend)
{
    for (int server_alpn = 1; server_alpn >= 0; server_alpn--) {
        spec s;
        tc_opts o = client_opts();
        tc_conn c;
        int port;
        char alpn[64];

        spec_init(&s, backend);
        s.alpn = server_alpn;
        ssock_server *srv = open_srv(&s, LONG_MS, &port);
        o.sni = NULL;
        o.verify_host = "127.0.0.1"; /* verified through the IP SAN */
        o.alpn = server_alpn ? NULL : "h2";
        ssock_socket *sock = handshake_with(srv, port, &c, &o);
        assert_null(ssock_socket_tls_sni(sock));
        assert_null(ssock_socket_tls_alpn(sock));
        assert_string_equal(tc_alpn(&c, alpn, sizeof alpn), "");
        assert_non_null(ssock_socket_tls_version(sock));
        echo_once(sock, &c, "no sni");
        tc_close(&c);
        ssock_socket_free(sock);
        ssock_server_free(srv);
    }
}

static void test_no_sni_no_alpn(void **state)
{
    (void)state;
    each_backend(run_no_sni_no_alpn);
}

/* A client whose ALPN list has nothing the server accepts: handshake fails,
 * counted, never returned, accept() runs its full timeout. */
static void run_alpn_mismatch(int backend)
{
    spec s;
    tc_opts o = client_opts();
    tc_conn c;
    acc a;
    int port;

    spec_init(&s, backend);
    s.alpn = 1;
    ssock_server *srv = open_srv(&s, 500, &port);
    o.alpn = "spdy/1,imap";
    acc_start(&a, srv);
    if (tc_open(&c, port, &o, LONG_MS) != TC_OK)
        fail_msg("connect: %s", c.err);
    int crc = tc_handshake(&c, LONG_MS);
    int rc = acc_wait(&a, 500 + LONG_MS);
    print_message("    client: %d %s\n", crc, c.err);
    assert_int_equal(rc, SSOCK_ETIMEOUT);
    assert_true(acc_elapsed_ms(&a) >= 499);
    assert_int_not_equal(crc, TC_OK);
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.handshakes_failed, 1);
    assert_int_equal(st.handshakes_ok, 0);
    assert_int_equal(st.in_flight, 0);
    print_message("    server: %s\n", ssock_server_tls_last_error(srv));
    tc_close(&c);
    ssock_server_free(srv);
}

static void test_alpn_mismatch(void **state)
{
    (void)state;
    each_backend(run_alpn_mismatch);
}

/* ======================================================================= */
/* Real peers: openssl s_client, gnutls-cli                                 */
/* ======================================================================= */

typedef struct proc {
    pid_t pid;
    int in;  /* our end of the child's stdin (a socket: MSG_NOSIGNAL) */
    int out; /* child's stdout */
    int err; /* child's stderr */
    char obuf[65536];
    size_t olen;
} proc;

static proc g_proc = {.pid = -1, .in = -1, .out = -1, .err = -1};

static void proc_close_fds(proc *p)
{
    if (p->in >= 0)
        close(p->in);
    if (p->out >= 0)
        close(p->out);
    if (p->err >= 0)
        close(p->err);
    p->in = p->out = p->err = -1;
}

/* Teardown of every test: a child left behind by a failed assertion is
 * killed (only that PID) and reaped. */
static int teardown_proc(void **state)
{
    (void)state;
    if (g_proc.pid > 0) {
        kill(g_proc.pid, SIGKILL);
        (void)waitpid(g_proc.pid, NULL, 0);
        g_proc.pid = -1;
    }
    proc_close_fds(&g_proc);
    if (g_tp_live)
        tpair_free(&g_tp);
    return 0;
}

static void proc_spawn(proc *p, char *const argv[])
{
    int sv[2], po[2], pe[2];

    p->olen = 0;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        if (dup2(sv[1], 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(sv[1]);
    close(po[1]);
    close(pe[1]);
    p->in = sv[0];
    p->out = po[0];
    p->err = pe[0];
}

/* Read the child's stdout until `needle` shows up. 1 found, 0 not. */
static int proc_expect(proc *p, const char *needle, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd pfd = {.fd = p->out, .events = POLLIN, .revents = 0};
        int64_t left = end - th_now_ms();
        ssize_t n;
        int rc;

        p->obuf[p->olen] = '\0';
        if (strstr(p->obuf, needle) != NULL)
            return 1;
        if (left <= 0 || p->olen + 1 >= sizeof p->obuf)
            return 0;
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return 0;
        n = read(p->out, p->obuf + p->olen, sizeof p->obuf - 1 - p->olen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        p->olen += (size_t)n;
    }
}

/* Wait for the child to exit; its wait status, or -1 (then it is killed). */
static int proc_wait(proc *p, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = -1;
            return status;
        }
        if (th_now_ms() > end) {
            kill(p->pid, SIGKILL);
            (void)waitpid(p->pid, NULL, 0);
            p->pid = -1;
            return -1;
        }
        th_sleep_ms(5);
    }
}

static void proc_dump_stderr(proc *p)
{
    char buf[4096];
    ssize_t n;
    int fl = fcntl(p->err, F_GETFL);
    if (fl >= 0)
        (void)fcntl(p->err, F_SETFL, fl | O_NONBLOCK);
    n = read(p->err, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = '\0';
        print_message("    child stderr: %s\n", buf);
    }
}

/* Server side of a real-peer run: accept, check the session, echo one
 * line the peer sends from its stdin, close (close_notify), wait for the
 * peer to exit. */
static void real_peer_echo(proc *p, ssock_server *srv, const char *want_ver,
                           const char *want_alpn)
{
    static const char line[] = "ping from a real peer\n";
    ssock_socket *sock = NULL;
    char got[sizeof line];
    int rc = ssock_server_accept(srv, &sock);

    if (rc != 0) {
        proc_dump_stderr(p);
        fail_msg("accept: %s (%s)", ssock_err_name(rc),
                 ssock_server_tls_last_error(srv));
    }
    print_message("      %s %s sni=%s alpn=%s\n",
                  ssock_socket_tls_version(sock), ssock_socket_tls_cipher(sock),
                  ssock_socket_tls_sni(sock) ? ssock_socket_tls_sni(sock) : "-",
                  ssock_socket_tls_alpn(sock) ? ssock_socket_tls_alpn(sock)
                                              : "-");
    assert_string_equal(ssock_socket_tls_version(sock), want_ver);
    assert_non_null(ssock_socket_tls_sni(sock));
    assert_string_equal(ssock_socket_tls_sni(sock), "localhost");
    if (want_alpn != NULL) {
        assert_non_null(ssock_socket_tls_alpn(sock));
        assert_string_equal(ssock_socket_tls_alpn(sock), want_alpn);
    }
    assert_int_equal(send(p->in, line, sizeof line - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof line - 1));
    sock_read_exact(sock, got, sizeof line - 1);
    assert_memory_equal(got, line, sizeof line - 1);
    assert_int_equal(ssock_socket_write(sock, "pong\n", 5, NULL), 0);
    if (!proc_expect(p, "pong\n", LONG_MS)) {
        proc_dump_stderr(p);
        fail_msg("the peer did not print the echo; stdout: %s", p->obuf);
    }
    assert_int_equal(ssock_socket_close(sock), 0);
    ssock_socket_free(sock);
    int status = proc_wait(p, LONG_MS);
    if (status == -1)
        fail_msg("the peer did not exit after close_notify");
    print_message("      peer exit status %d\n",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    proc_close_fds(p);
}

static int have_binary(const char *path, const char *what)
{
    if (path[0] == '\0' || access(path, X_OK) != 0) {
        if (th_skip_check("%s not found (%s): its cases are skipped", what,
                          path[0] ? path : "not found at configure time"))
            fail_msg("SSOCK_GATE=1: %s must be installed", what);
        return 0;
    }
    return 1;
}

static void run_s_client(int backend)
{
    static const char *const vers[] = {"-tls1_2", "-tls1_3"};
    for (int rsa = 0; rsa <= 1; rsa++) {
        for (size_t v = 0; v < 2; v++) {
            int ok = v == 0 || has_tls13(backend);
            spec s;
            int port;
            char connect[64];

            spec_init(&s, backend);
            s.rsa = rsa;
            s.alpn = 1;
            ssock_server *srv = open_srv(&s, ok ? LONG_MS : 500, &port);
            snprintf(connect, sizeof connect, "127.0.0.1:%d", port);
            char *argv[] = {(char *)SSOCK_OPENSSL_BIN,
                            "s_client",
                            "-connect",
                            connect,
                            "-servername",
                            "localhost",
                            "-CAfile",
                            (char *)CERT("ca.pem"),
                            "-verify_return_error",
                            "-verify_hostname",
                            "localhost",
                            "-alpn",
                            "http/1.1,h2",
                            "-quiet",
                            (char *)vers[v],
                            NULL};
            print_message("    s_client %s, %s certificate, expect %s\n",
                          vers[v], rsa ? "RSA" : "ECDSA",
                          ok ? "success" : "rejection");
            proc_spawn(&g_proc, argv);
            if (ok) {
                real_peer_echo(&g_proc, srv, v ? "TLSv1.3" : "TLSv1.2", "h2");
            } else {
                /* No TLS 1.3 (mbedTLS 2.28): refused, counted, not
                 * returned, accept runs its whole timeout. */
                ssock_socket *sock = NULL;
                int64_t t0 = th_now_ms();
                int rc = ssock_server_accept(srv, &sock);
                assert_int_equal(rc, SSOCK_ETIMEOUT);
                assert_true(th_now_ms() - t0 >= 499);
                assert_int_equal(get_stats(srv).handshakes_failed, 1);
                print_message("      server: %s\n",
                              ssock_server_tls_last_error(srv));
                int status = proc_wait(&g_proc, LONG_MS);
                assert_int_not_equal(status, -1);
                proc_close_fds(&g_proc);
            }
            ssock_server_free(srv);
        }
    }
}

static void test_openssl_s_client(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_OPENSSL_BIN, "openssl"))
        skip();
    each_backend(run_s_client);
}

static void run_gnutls_cli(int backend)
{
    for (int rsa = 0; rsa <= 1; rsa++) {
        for (int only12 = 0; only12 <= 1; only12++) {
            spec s;
            int port;
            char portarg[32];

            spec_init(&s, backend);
            s.rsa = rsa;
            s.alpn = 1;
            ssock_server *srv = open_srv(&s, LONG_MS, &port);
            snprintf(portarg, sizeof portarg, "--port=%d", port);
            char *argv[] = {(char *)SSOCK_GNUTLS_CLI,
                            "--x509cafile=" CERT("ca.pem"),
                            portarg,
                            "--sni-hostname=localhost",
                            "--verify-hostname=localhost",
                            "--alpn=h2",
                            only12 ? "--priority=NORMAL:-VERS-ALL:+VERS-TLS1.2"
                                   : "--priority=NORMAL",
                            "127.0.0.1",
                            NULL};
            const char *want =
                only12 || !has_tls13(backend) ? "TLSv1.2" : "TLSv1.3";
            print_message("    gnutls-cli %s, %s certificate\n",
                          only12 ? "TLS 1.2 only" : "default priority",
                          rsa ? "RSA" : "ECDSA");
            proc_spawn(&g_proc, argv);
            real_peer_echo(&g_proc, srv, want, "h2");
            ssock_server_free(srv);
        }
    }
}

static void test_gnutls_cli(void **state)
{
    (void)state;
    if (!have_binary(SSOCK_GNUTLS_CLI, "gnutls-cli"))
        skip();
    each_backend(run_gnutls_cli);
}

/* ======================================================================= */
/* Mutual TLS                                                               */
/* ======================================================================= */

/* verify mode, client cert (NULL: none); expect accepted or not. */
static void mtls_case(int backend, int verify, const char *cert,
                      const char *key, int expect_ok)
{
    spec s;
    tc_opts o = client_opts();
    tc_conn c;
    int port;

    print_message("    verify %s, client cert %s: expect %s\n",
                  verify == SSOCK_TLS_VERIFY_REQUIRED ? "required" : "optional",
                  cert ? strrchr(cert, '/') + 1 : "(none)",
                  expect_ok ? "accepted" : "rejected");
    spec_init(&s, backend);
    s.verify = verify;
    o.cert_file = cert;
    o.key_file = key;
    /* The rejection must happen inside one accept() call: under Valgrind a
     * handshake step takes far longer, so the window is scaled. */
    const int rej_ms = RUNNING_ON_VALGRIND ? 5000 : 500;
    ssock_server *srv = open_srv(&s, expect_ok ? LONG_MS : rej_ms, &port);
    if (expect_ok) {
        ssock_socket *sock = handshake_with(srv, port, &c, &o);
        const char *subj = ssock_socket_tls_peer_subject(sock);
        if (cert != NULL) {
            assert_non_null(subj);
            print_message("      peer subject: %s\n", subj);
            assert_string_equal(subj,
                                "O=ssock DEV-TEST ONLY, CN=ssock test client");
        } else {
            assert_null(subj);
        }
        echo_once(sock, &c, "mutual");
        ssock_socket_free(sock);
    } else {
        acc a;
        char b[16];
        size_t n;

        acc_start(&a, srv);
        if (tc_open(&c, port, &o, LONG_MS) != TC_OK)
            fail_msg("connect: %s", c.err);
        int crc = tc_handshake(&c, LONG_MS);
        /* TLS 1.3 clients finish before the server has seen their
         * certificate: their first read gets the alert. */
        if (crc == TC_OK)
            crc = tc_read_some(&c, b, sizeof b, &n, LONG_MS);
        print_message("      client: %d %s\n", crc, c.err);
        int rc = acc_wait(&a, rej_ms + LONG_MS);
        assert_int_equal(rc, SSOCK_ETIMEOUT);
        assert_true(acc_elapsed_ms(&a) >= rej_ms - 1);
        assert_int_not_equal(crc, TC_OK);
        ssock_tls_stats st = get_stats(srv);
        assert_int_equal(st.accepted, 1);
        assert_int_equal(st.handshakes_failed, 1);
        assert_int_equal(st.handshakes_ok, 0);
        assert_int_equal(st.in_flight, 0);
        print_message("      server: %s\n", ssock_server_tls_last_error(srv));
        assert_string_not_equal(ssock_server_tls_last_error(srv), "");
    }
    tc_close(&c);
    ssock_server_free(srv);
}

static void run_mtls(int backend)
{
    const int req = SSOCK_TLS_VERIFY_REQUIRED, opt = SSOCK_TLS_VERIFY_OPTIONAL;
    mtls_case(backend, req, CERT("client.pem"), CERT("client.key"), 1);
    mtls_case(backend, req, NULL, NULL, 0);
    mtls_case(backend, req, CERT("client-unknown.pem"),
              CERT("client-unknown.key"), 0);
    mtls_case(backend, opt, NULL, NULL, 1);
    mtls_case(backend, opt, CERT("client.pem"), CERT("client.key"), 1);
    mtls_case(backend, opt, CERT("client-unknown.pem"),
              CERT("client-unknown.key"), 0);
}

static void test_mutual_tls(void **state)
{
    (void)state;
    each_backend(run_mtls);
}

/* ======================================================================= */
/* Failed handshakes: never returned, never end accept() early              */
/* ======================================================================= */

static void fail_case(int backend, int kind)
{
    spec s;
    int port;
    ssock_socket *sock = (ssock_socket *)&port; /* must be set to NULL */

    print_message("    %s\n", bad_name(kind));
    spec_init(&s, backend);
    ssock_server *srv = open_srv(&s, 500, &port);
    int fd = bad_client(kind, port);
    int64_t t0 = th_now_ms();
    int rc = ssock_server_accept(srv, &sock);
    int64_t el = th_now_ms() - t0;
    print_message("      accept: %s after %lld ms; server: %s\n",
                  ssock_err_name(rc), (long long)el,
                  ssock_server_tls_last_error(srv));
    assert_int_equal(rc, SSOCK_ETIMEOUT);
    assert_null(sock);
    assert_true(el >= 499);
    assert_true(el <= 500 + slack_ms());
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.handshakes_failed, 1);
    assert_int_equal(st.handshakes_ok, 0);
    assert_int_equal(st.handshakes_timed_out, 0);
    assert_int_equal(st.in_flight, 0);
    assert_string_not_equal(ssock_server_tls_last_error(srv), "");
    if (fd >= 0) {
        assert_true(closed_by_server(fd, LONG_MS));
        close(fd);
    }
    ssock_server_free(srv);
}

static void run_fail_http(int backend)
{
    fail_case(backend, BAD_HTTP);
}
static void run_fail_truncated(int backend)
{
    fail_case(backend, BAD_TRUNCATED);
}
static void run_fail_random(int backend)
{
    fail_case(backend, BAD_RANDOM);
}
static void run_fail_connect_close(int backend)
{
    fail_case(backend, BAD_CONNECT_CLOSE);
}

static void test_fail_plain_http(void **state)
{
    (void)state;
    each_backend(run_fail_http);
}
static void test_fail_truncated_hello(void **state)
{
    (void)state;
    each_backend(run_fail_truncated);
}
static void test_fail_random_bytes(void **state)
{
    (void)state;
    each_backend(run_fail_random);
}
static void test_fail_connect_close(void **state)
{
    (void)state;
    each_backend(run_fail_connect_close);
}

/* All four bad clients, then a good one: the good one is returned. */
static void run_fail_then_good(int backend)
{
    static const int kinds[] = {BAD_HTTP, BAD_TRUNCATED, BAD_RANDOM,
                                BAD_CONNECT_CLOSE};
    int fds[4];
    spec s;
    tc_opts o = client_opts();
    tc_conn c;
    int port;
    const int to = RUNNING_ON_VALGRIND ? 5000 : 1000;

    spec_init(&s, backend);
    ssock_server *srv = open_srv(&s, to, &port);
    for (int i = 0; i < 4; i++)
        fds[i] = bad_client(kinds[i], port);
    ssock_socket *sock = handshake_with(srv, port, &c, &o);
    assert_int_equal(ssock_socket_peer_port(sock), th_local_port(c.fd));
    echo_once(sock, &c, "the good one");
    /* Stragglers, if any, are settled by one more (empty) accept. */
    ssock_socket *none = NULL;
    assert_int_equal(ssock_server_accept(srv, &none), SSOCK_ETIMEOUT);
    assert_null(none);
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.accepted, 5);
    assert_int_equal(st.handshakes_ok, 1);
    assert_int_equal(st.handshakes_failed, 4);
    assert_int_equal(st.in_flight, 0);
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    tc_close(&c);
    ssock_socket_free(sock);
    ssock_server_free(srv);
}

static void test_fail_then_good_client(void **state)
{
    (void)state;
    each_backend(run_fail_then_good);
}

/* ======================================================================= */
/* Slowloris                                                                */
/* ======================================================================= */

/* Connect a good client while accept() runs on a thread `a` started by
 * the caller (NULL: start one here). Times in ms: TCP connect + handshake
 * until accept() returned the socket, then one echo. */
typedef struct good_times {
    double handshake, echo, total;
} good_times;

static good_times good_client(ssock_server *srv, int port, acc *running)
{
    tc_opts o = client_opts();
    tc_conn c;
    acc own;
    acc *a = running;
    good_times t;

    if (a == NULL) {
        a = &own;
        acc_start(a, srv);
    }
    int64_t t0 = th_now_us();
    int rc = tc_open(&c, port, &o, LONG_MS);
    if (rc == TC_OK)
        rc = tc_handshake(&c, LONG_MS);
    int arc = acc_wait(a, LONG_MS + slack_ms());
    if (rc != TC_OK || arc != 0)
        fail_msg("good client: %d %s; accept %s", rc, c.err,
                 ssock_err_name(arc));
    int64_t t1 = th_now_us();
    echo_once(a->sock, &c, "slowloris? not today");
    int64_t t2 = th_now_us();
    t.handshake = (double)(t1 - t0) / 1000.0;
    t.echo = (double)(t2 - t1) / 1000.0;
    t.total = (double)(t2 - t0) / 1000.0;
    tc_close(&c);
    ssock_socket_free(a->sock);
    return t;
}

static void run_slowloris(int backend)
{
    const int n = RUNNING_ON_VALGRIND ? 20 : 100;
    const double bound = RUNNING_ON_VALGRIND ? 1000.0 + slack_ms() : 1000.0;
    int *silent = calloc((size_t)n, sizeof *silent);
    int *half = calloc((size_t)n, sizeof *half);
    spec s;
    int port;
    acc a;

    assert_non_null(silent);
    assert_non_null(half);
    spec_init(&s, backend);
    ssock_server *srv = open_srv(&s, LONG_MS, &port);

    good_times base = good_client(srv, port, NULL);

    for (int i = 0; i < n; i++) {
        silent[i] = bad_client(BAD_SILENT, port);
        half[i] = bad_client(BAD_HALF_HELLO, port);
    }
    /* Let the acceptor take them all into its in-flight set first ... */
    acc_start(&a, srv);
    if (!wait_in_flight(srv, (uint64_t)(2 * n), LONG_MS)) {
        print_stats("stuck", srv);
        fail_msg("the acceptor did not take the %d stalled clients", 2 * n);
    }
    /* ... then a good client; `a` is the accept() that returns it. */
    good_times loaded = good_client(srv, port, &a);

    print_message(
        "[ FIGURE   ] slowloris %s: %d silent + %d half-ClientHello "
        "clients in flight: good client connect+handshake+echo "
        "%.1f ms (handshake %.1f + echo %.1f); alone: %.1f ms "
        "(%.1f + %.1f); bound %.0f ms%s\n",
        ssock_tls_backend_name(backend), n, n, loaded.total, loaded.handshake,
        loaded.echo, base.total, base.handshake, base.echo, bound,
        RUNNING_ON_VALGRIND ? " (Valgrind: reduced count, relaxed bound)" : "");
    assert_true(loaded.total < bound);
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.handshakes_ok, 2);
    assert_int_equal(st.handshakes_failed, 0);
    assert_int_equal(st.in_flight, (uint64_t)(2 * n));

    ssock_server_free(srv);
    for (int i = 0; i < n; i++) {
        close(silent[i]);
        close(half[i]);
    }
    free(silent);
    free(half);
}

static void test_slowloris(void **state)
{
    (void)state;
    each_backend(run_slowloris);
}

/* ======================================================================= */
/* Deadlines, timeouts, cap                                                 */
/* ======================================================================= */

/* handshake_timeout_ms 300; a client trickles its ClientHello one byte
 * every 50 ms (it would need ~g_hello_len * 50 ms): dropped at ~300 ms
 * from the connect, the deadline not moved by any byte. */
static void run_trickle(int backend)
{
    spec s;
    int port;
    acc a;
    size_t sent = 0;
    int64_t closed_at = -1;

    spec_init(&s, backend);
    s.hs_timeout_ms = 300;
    ssock_server *srv = open_srv(&s, 1000, &port);
    acc_start(&a, srv);
    int64_t t0 = th_now_ms();
    int fd = th_connect(AF_INET, port, LONG_MS);
    assert_true(fd >= 0);
    while (sent < g_hello_len && closed_at < 0) {
        ssize_t n = send(fd, g_hello + sent, 1, MSG_NOSIGNAL);
        if (n == 1) {
            sent++;
        } else {
            closed_at = th_now_ms();
            break;
        }
        char b[64];
        ssize_t r = th_recv_some(fd, b, sizeof b, 50); /* the pace */
        if (r == -ETIMEDOUT)
            continue;
        if (r > 0)
            fail_msg("server sent %zd bytes to a trickling client", r);
        closed_at = th_now_ms();
    }
    assert_int_equal(acc_wait(&a, 1000 + LONG_MS), SSOCK_ETIMEOUT);
    print_message("    closed by the server after %lld ms, %zu of %zu "
                  "ClientHello bytes sent\n",
                  (long long)(closed_at - t0), sent, g_hello_len);
    assert_true(closed_at >= 0);
    assert_true(closed_at - t0 >= 299);
    assert_true(closed_at - t0 <= 300 + slack_ms());
    assert_true(sent < g_hello_len / 2);
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.handshakes_timed_out, 1);
    assert_int_equal(st.handshakes_failed, 0);
    assert_int_equal(st.handshakes_dropped, 0);
    assert_int_equal(st.in_flight, 0);
    close(fd);
    ssock_server_free(srv);
}

static void test_handshake_deadline_trickle(void **state)
{
    (void)state;
    each_backend(run_trickle);
}

/* Stalled clients do not stretch accept(): 300 ms means 300 ms, twice. */
static void run_accept_timeout_stall(int backend)
{
    enum { NSILENT = 6, NHALF = 2 };
    int fds[NSILENT + NHALF];
    spec s;
    int port;

    spec_init(&s, backend);
    ssock_server *srv = open_srv(&s, 300, &port);
    for (int i = 0; i < NSILENT + NHALF; i++)
        fds[i] = bad_client(i < NSILENT ? BAD_SILENT : BAD_HALF_HELLO, port);
    for (int round = 0; round < 2; round++) {
        ssock_socket *sock = NULL;
        int64_t t0 = th_now_ms();
        int rc = ssock_server_accept(srv, &sock);
        int64_t el = th_now_ms() - t0;
        print_message("    accept #%d: %s after %lld ms\n", round + 1,
                      ssock_err_name(rc), (long long)el);
        assert_int_equal(rc, SSOCK_ETIMEOUT);
        assert_null(sock);
        assert_true(el >= 299);
        assert_true(el <= 300 + slack_ms());
        assert_int_equal(get_stats(srv).in_flight, NSILENT + NHALF);
    }
    for (int i = 0; i < NSILENT + NHALF; i++)
        close(fds[i]);
    ssock_server_free(srv);
}

static void test_accept_timeout_with_stalled_clients(void **state)
{
    (void)state;
    each_backend(run_accept_timeout_stall);
}

/* One thread, step by step: the client sends its ClientHello; accept()
 * (300 ms) answers it and times out while the client pauses; the client
 * resumes; the next accept() returns that same connection. */
static void pending_case(int backend, int tls13)
{
    spec s;
    tc_opts o = client_opts();
    tc_conn c;
    int port;
    ssock_socket *sock = NULL;

    print_message("    TLS %s\n", tls13 ? "1.3" : "1.2");
    spec_init(&s, backend);
    ssock_server *srv = open_srv(&s, 300, &port);
    o.min_version = o.max_version = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (tc_open(&c, port, &o, LONG_MS) != TC_OK)
        fail_msg("connect: %s", c.err);
    assert_int_equal(tc_step(&c), TC_WANT); /* ClientHello out */

    int64_t t0 = th_now_ms();
    assert_int_equal(ssock_server_accept(srv, &sock), SSOCK_ETIMEOUT);
    assert_true(th_now_ms() - t0 >= 299);
    assert_null(sock);
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.handshakes_ok, 0);

    /* The server's flight is there: the client processes it and sends
     * its own (TLS 1.2: then waits for the server's Finished). */
    int crc = tc_step(&c);
    assert_int_equal(crc, tls13 ? TC_OK : TC_WANT);

    t0 = th_now_ms();
    int rc = ssock_server_accept(srv, &sock);
    int64_t el = th_now_ms() - t0;
    if (rc != 0)
        fail_msg("second accept: %s (%s)", ssock_err_name(rc),
                 ssock_server_tls_last_error(srv));
    assert_true(el < 300);
    assert_int_equal(ssock_socket_peer_port(sock), th_local_port(c.fd));
    if (tc_handshake(&c, LONG_MS) != TC_OK)
        fail_msg("client: %s", c.err);
    echo_once(sock, &c, "I waited");
    st = get_stats(srv);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.handshakes_ok, 1);
    assert_int_equal(st.in_flight, 0);
    tc_close(&c);
    ssock_socket_free(sock);
    ssock_server_free(srv);
}

static void run_pending(int backend)
{
    pending_case(backend, 0);
    if (has_tls13(backend))
        pending_case(backend, 1);
}

static void test_pending_survives_accept_timeout(void **state)
{
    (void)state;
    each_backend(run_pending);
}

/* max_handshakes 4; five silent clients in order: the first is dropped. */
static void run_cap(int backend)
{
    int fds[5];
    spec s;
    int port;
    ssock_socket *sock = NULL;

    spec_init(&s, backend);
    s.max_hs = 4;
    ssock_server *srv = open_srv(&s, 300, &port);
    for (int i = 0; i < 5; i++)
        fds[i] = bad_client(BAD_SILENT, port);
    assert_int_equal(ssock_server_accept(srv, &sock), SSOCK_ETIMEOUT);
    assert_null(sock);
    ssock_tls_stats st = get_stats(srv);
    print_stats("after accept", srv);
    assert_int_equal(st.accepted, 5);
    assert_int_equal(st.handshakes_dropped, 1);
    assert_int_equal(st.in_flight, 4);
    assert_int_equal(st.handshakes_failed, 0);
    assert_true(closed_by_server(fds[0], LONG_MS));
    for (int i = 1; i < 5; i++)
        assert_true(still_open(fds[i]));
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    ssock_server_free(srv);
}

static void test_cap_drops_oldest(void **state)
{
    (void)state;
    each_backend(run_cap);
}

/* ======================================================================= */
/* Server close                                                             */
/* ======================================================================= */

typedef struct reader {
    th_call call;
    ssock_socket *sock;
} reader;

static int reader_fn(void *p)
{
    reader *r = p;
    char b[64];
    size_t n;
    return ssock_socket_read(r->sock, b, sizeof b, &n);
}

static void run_server_close(int backend)
{
    enum { NBAD = 4 };
    int fds[NBAD];
    spec s;
    tc_opts o = client_opts();
    tc_conn c;
    int port;
    acc a;
    reader rd;
    char b[16];
    size_t n;

    spec_init(&s, backend);
    ssock_server *srv = open_srv(&s, SSOCK_WAIT_FOREVER, &port);
    for (int i = 0; i < NBAD; i++)
        fds[i] = bad_client(i == 0 ? BAD_HALF_HELLO : BAD_SILENT, port);
    /* The good client comes after the bad ones: when it is returned, they
     * are all pending. */
    ssock_socket *sock = handshake_with(srv, port, &c, &o);
    assert_int_equal(get_stats(srv).in_flight, NBAD);
    echo_once(sock, &c, "before close");

    assert_int_equal(ssock_socket_set_read_timeout(sock, SSOCK_WAIT_FOREVER),
                     0);
    rd.sock = sock;
    assert_int_equal(th_call_start(&rd.call, reader_fn, &rd), 0);
    acc_start(&a, srv);
    /* Both are inside the library's poll/recv now. */
    if (!th_spy_wait_blocked(2, TH_STUCK_MS))
        fail_msg("acceptor and reader not both blocked (%d inside)",
                 th_spy_inside());
    assert_false(th_event_wait(&a.call.t.done, 0));
    assert_false(th_event_wait(&rd.call.t.done, 0));

    int64_t tc0 = th_now_us();
    assert_int_equal(ssock_server_close(srv), 0);
    int64_t tc1 = th_now_us();

    assert_int_equal(acc_wait(&a, TH_STUCK_MS), SSOCK_ECLOSED);
    if (!th_call_wait(&rd.call, TH_STUCK_MS))
        fail_msg("the blocked reader did not wake");
    int64_t acc_ms = (a.call.end_us - tc0) / 1000;
    int64_t rd_ms = (rd.call.end_us - tc0) / 1000;
    print_message("    close took %.1f ms; acceptor woke after %lld ms, "
                  "reader after %lld ms (%s)\n",
                  (double)(tc1 - tc0) / 1000.0, (long long)acc_ms,
                  (long long)rd_ms, ssock_err_name(rd.call.rc));
    assert_true(acc_ms <= TH_WAKE_MS + slack_ms());
    assert_int_equal(rd.call.rc, SSOCK_ESERVERCLOSED);
    assert_true(rd_ms <= TH_WAKE_MS + slack_ms());

    /* Pending handshakes were freed: their clients see the end. */
    ssock_tls_stats st = get_stats(srv);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.handshakes_dropped, NBAD);
    for (int i = 0; i < NBAD; i++) {
        assert_true(closed_by_server(fds[i], LONG_MS));
        close(fds[i]);
    }
    /* The accepted TLS socket fails its I/O. */
    assert_int_equal(ssock_socket_read(sock, b, sizeof b, &n),
                     SSOCK_ESERVERCLOSED);
    assert_int_equal(ssock_socket_write(sock, "x", 1, NULL),
                     SSOCK_ESERVERCLOSED);
    /* accept on a closed server */
    ssock_socket *none = NULL;
    assert_int_equal(ssock_server_accept(srv, &none), SSOCK_ECLOSED);
    assert_null(none);

    tc_close(&c);
    ssock_socket_free(sock);
    ssock_server_free(srv);
}

/* A TLS socket closed from another thread: the blocked reader returns
 * SSOCK_ECLOSED within TH_WAKE_MS (+ slack), the close is prompt. */
static int64_t measure_socket_close_wakes(int backend)
{
    tpair *p = tpair_open(backend, LONG_MS);
    reader rd;

    assert_int_equal(ssock_socket_set_read_timeout(p->sock, SSOCK_WAIT_FOREVER),
                     0);
    rd.sock = p->sock;
    assert_int_equal(th_call_start(&rd.call, reader_fn, &rd), 0);
    if (!th_spy_wait_blocked(1, TH_STUCK_MS))
        fail_msg("the TLS reader never blocked");
    int64_t t0 = th_now_us();
    assert_int_equal(ssock_socket_close(p->sock), 0);
    int64_t t1 = th_now_us();
    if (!th_call_wait(&rd.call, TH_STUCK_MS))
        fail_msg("the blocked TLS reader did not wake after close");
    if (rd.call.rc != SSOCK_ECLOSED)
        fail_msg("blocked TLS read after close: %s (%d), want SSOCK_ECLOSED",
                 ssock_err_name(rd.call.rc), rd.call.rc);
    assert_int_equal(ssock_socket_close(p->sock), SSOCK_ECLOSED);
    int64_t woke = (rd.call.end_us - t0) / 1000;
    print_message("    close took %.1f ms, reader woke after %lld ms\n",
                  (double)(t1 - t0) / 1000.0, (long long)woke);
    tpair_free(p);
    return woke;
}

static void run_socket_close_wakes(int backend)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < TH_TRIES && best > TH_WAKE_MS + slack_ms(); i++) {
        int64_t ms = measure_socket_close_wakes(backend);
        if (ms < best)
            best = ms;
    }
    if (best > TH_WAKE_MS + slack_ms())
        fail_msg("TLS reader woke %lld ms after close at best (bound %d + %d)",
                 (long long)best, TH_WAKE_MS, slack_ms());
}

static void test_tls_socket_close_from_other_thread(void **state)
{
    (void)state;
    each_backend(run_socket_close_wakes);
}

/* TLS write timeout: a client that never reads; the write that finds no
 * room fails with SSOCK_ETIMEOUT after the write timeout (200 ms) +
 * slack_ms(). Run on a thread so that a write that ignores its timeout
 * fails this test at once instead of hanging the program. */
typedef struct tlswriter {
    th_call call;
    ssock_socket *sock;
    int64_t last_ms; /* duration of the write that failed */
} tlswriter;

static int tlswriter_fn(void *p)
{
    tlswriter *w = p;
    static uint8_t chunk[16384];
    for (int i = 0; i < 4096; i++) {
        int64_t t0 = th_now_ms();
        int rc = ssock_socket_write(w->sock, chunk, sizeof chunk, NULL);
        w->last_ms = th_now_ms() - t0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void run_tls_write_timeout(int backend)
{
    tpair *p = tpair_open(backend, LONG_MS);
    tlswriter w;
    int small = 4096;

    assert_int_equal(ssock_socket_set_write_timeout(p->sock, 200), 0);
    /* Small kernel buffers: the path fills in a few writes. */
    assert_int_equal(setsockopt(ssock_socket_fd(p->sock), SOL_SOCKET, SO_SNDBUF,
                                &small, sizeof small),
                     0);
    assert_int_equal(
        setsockopt(p->c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    w.sock = p->sock;
    w.last_ms = 0;
    assert_int_equal(th_call_start(&w.call, tlswriter_fn, &w), 0);
    if (!th_call_wait(&w.call, TH_STUCK_MS + slack_ms())) {
        g_tp_live = 0; /* the teardown must not free what the thread uses */
        fail_msg("TLS write to a client that never reads still blocked after "
                 "%d ms (write timeout 200 ms)",
                 TH_STUCK_MS); /* thread and pair leaked on purpose */
    }
    print_message("    failing write: %s after %lld ms\n",
                  ssock_err_name(w.call.rc), (long long)w.last_ms);
    if (w.call.rc != SSOCK_ETIMEOUT)
        fail_msg("TLS write to a client that never reads: %s (%d), want "
                 "SSOCK_ETIMEOUT",
                 ssock_err_name(w.call.rc), w.call.rc);
    assert_true(w.last_ms >= 199);
    if (w.last_ms > 200 + slack_ms())
        fail_msg("TLS write timed out after %lld ms (bound 200 + %d ms)",
                 (long long)w.last_ms, slack_ms());
    tpair_free(p);
}

static void test_tls_write_timeout(void **state)
{
    (void)state;
    each_backend(run_tls_write_timeout);
}

/* close_notify is best effort, bounded by min(write timeout, 1000 ms),
 * also when the write timeout is SSOCK_WAIT_FOREVER: with the path to a
 * client that never reads full, close returns after 1000 ms (+ slack).
 * The close runs on a thread so an unbounded one fails at once. */
static int close_fn(void *p)
{
    return ssock_socket_close(p);
}

static void run_close_notify_bounded(int backend)
{
    tpair *p = tpair_open(backend, LONG_MS);
    static char junk[65536];
    int small = 4096, fd, quiet = 0;
    th_call cl;

    assert_int_equal(
        ssock_socket_set_write_timeout(p->sock, SSOCK_WAIT_FOREVER), 0);
    fd = ssock_socket_fd(p->sock);
    assert_int_equal(
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(
        setsockopt(p->c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    /* Fill the kernel's buffers behind the library's back (the session
     * stays intact, so close tries to send close_notify). */
    while (quiet < 3) {
        ssize_t sent = 0, n;
        while ((n = send(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL)) >
               0)
            sent += n;
        quiet = sent == 0 ? quiet + 1 : 0;
        th_sleep_ms(20);
    }
    assert_int_equal(th_call_start(&cl, close_fn, p->sock), 0);
    if (!th_call_wait(&cl, 1000 + TH_STUCK_MS)) {
        g_tp_live = 0; /* the thread still uses the pair: leak it */
        fail_msg("close with a full path and write timeout forever still "
                 "blocked after %d ms (bound 1000 ms)",
                 1000 + TH_STUCK_MS);
    }
    int64_t ms = (cl.end_us - cl.start_us) / 1000;
    print_message("    close with a full path took %lld ms\n", (long long)ms);
    assert_int_equal(cl.rc, 0);
    assert_true(ms >= 999);
    if (ms > 1000 + slack_ms())
        fail_msg("close took %lld ms (bound 1000 + %d ms)", (long long)ms,
                 slack_ms());
    tpair_free(p);
}

static void test_close_notify_bounded_forever(void **state)
{
    (void)state;
    each_backend(run_close_notify_bounded);
}

/* A corrupt record after the handshake: the read fails with SSOCK_ETLS and
 * ssock_socket_tls_last_error() says why. */
static void run_etls(int backend)
{
    static const uint8_t bad[] = {
        0x17, 0x03, 0x03, 0x00, 0x20, 1,  2,  3,  4,  5,  6,  7,  8,
        9,    10,   11,   12,   13,   14, 15, 16, 17, 18, 19, 20, 21,
        22,   23,   24,   25,   26,   27, 28, 29, 30, 31, 32};
    tpair *p = tpair_open(backend, LONG_MS);
    char b[16];
    size_t n = 99;

    echo_once(p->sock, &p->c, "before the garbage");
    assert_string_equal(ssock_socket_tls_last_error(p->sock), "");
    assert_int_equal(ssock_socket_set_read_timeout(p->sock, LONG_MS), 0);
    assert_int_equal(th_send_all(p->c.fd, bad, sizeof bad), 0);
    int rc = ssock_socket_read(p->sock, b, sizeof b, &n);
    print_message("    corrupt record: %s (%s)\n", ssock_err_name(rc),
                  ssock_socket_tls_last_error(p->sock));
    assert_int_equal(rc, SSOCK_ETLS);
    assert_int_equal(n, 0);
    assert_non_null(ssock_socket_tls_last_error(p->sock));
    assert_true(strlen(ssock_socket_tls_last_error(p->sock)) > 0);
    /* A TLS error is not an OS error. */
    assert_int_equal(ssock_socket_last_os_error(p->sock), 0);
    tpair_free(p);
}

static void test_etls_through_public_api(void **state)
{
    (void)state;
    each_backend(run_etls);
}

static void test_server_close_wakes_and_frees(void **state)
{
    (void)state;
    each_backend(run_server_close);
}

/* ssock_server_tls_stats() is documented safe from any thread while the
 * handle is alive, "still answers after close": read it in a loop on one
 * thread while another closes the server, which frees the pending
 * handshakes. Repeated, as a race shows only now and then. */
typedef struct statser {
    th_thread t;
    const ssock_server *srv;
    th_event running;
    atomic_int stop;
    long reads;
} statser;

static void *statser_fn(void *p)
{
    statser *s = p;
    ssock_tls_stats st;
    while (!atomic_load(&s->stop)) {
        (void)ssock_server_tls_stats(s->srv, &st);
        if (++s->reads == 1000)
            th_event_set(&s->running);
    }
    return NULL;
}

static void run_stats_during_close(int backend)
{
    const int rounds = RUNNING_ON_VALGRIND ? 3 : 25;
    long reads = 0;

    for (int r = 0; r < rounds; r++) {
        int fds[2];
        spec s;
        int port;
        acc a;
        statser ss;

        spec_init(&s, backend);
        ssock_server *srv = open_srv(&s, SSOCK_WAIT_FOREVER, &port);
        for (int i = 0; i < 2; i++)
            fds[i] = bad_client(BAD_SILENT, port);
        acc_start(&a, srv);
        assert_true(wait_in_flight(srv, 2, LONG_MS));
        ss.srv = srv;
        ss.reads = 0;
        atomic_init(&ss.stop, 0);
        th_event_init(&ss.running);
        assert_int_equal(th_thread_start(&ss.t, statser_fn, &ss), 0);
        assert_true(th_event_wait(&ss.running, LONG_MS));
        assert_int_equal(ssock_server_close(srv), 0);
        assert_int_equal(acc_wait(&a, TH_STUCK_MS), SSOCK_ECLOSED);
        atomic_store(&ss.stop, 1);
        assert_true(th_thread_join(&ss.t, TH_STUCK_MS));
        th_event_destroy(&ss.running);
        reads += ss.reads;
        ssock_tls_stats st = get_stats(srv);
        assert_int_equal(st.in_flight, 0);
        assert_int_equal(st.handshakes_dropped, 2);
        for (int i = 0; i < 2; i++)
            close(fds[i]);
        ssock_server_free(srv);
    }
    print_message("    %d closes, %ld stats reads around them\n", rounds,
                  reads);
}

static void test_stats_during_close(void **state)
{
    (void)state;
    each_backend(run_stats_during_close);
}

/* ======================================================================= */
/* TLS socket semantics                                                     */
/* ======================================================================= */

static void run_read_timeout(int backend)
{
    tpair *p;
    char b[16];
    size_t n = 99;

    p = tpair_open(backend, LONG_MS);
    assert_int_equal(ssock_socket_set_read_timeout(p->sock, 200), 0);
    /* Bound 200 ms + slack_ms(), best of TH_TRIES reads. */
    int64_t best = INT64_MAX;
    for (int i = 0; i < TH_TRIES && best > 200 + slack_ms(); i++) {
        int64_t t0 = th_now_ms();
        assert_int_equal(ssock_socket_read(p->sock, b, sizeof b, &n),
                         SSOCK_ETIMEOUT);
        int64_t el = th_now_ms() - t0;
        assert_int_equal(n, 0);
        print_message("    read timed out after %lld ms\n", (long long)el);
        assert_true(el >= 199);
        if (el < best)
            best = el;
    }
    if (best > 200 + slack_ms())
        fail_msg("TLS read(200 ms) timed out after %lld ms at best (bound "
                 "200 + %d)",
                 (long long)best, slack_ms());
    /* still usable */
    echo_once(p->sock, &p->c, "after the timeout");
    tpair_free(p);
}

static void test_read_timeout(void **state)
{
    (void)state;
    each_backend(run_read_timeout);
}

static void run_client_close_notify(int backend)
{
    tpair *p;
    char b[16];
    size_t n = 99;

    p = tpair_open(backend, LONG_MS);
    echo_once(p->sock, &p->c, "bye soon");
    /* Bounded, so that a read that waits instead shows as ETIMEOUT. */
    assert_int_equal(ssock_socket_set_read_timeout(p->sock, 1000), 0);
    assert_int_equal(tc_shutdown(&p->c), TC_OK);
    assert_int_equal(ssock_socket_read(p->sock, b, sizeof b, &n), SSOCK_EOF);
    assert_int_equal(n, 0);
    /* End of stream is sticky, as on a plain socket: the next read says
     * SSOCK_EOF again at once (the peer's TCP side is still open). */
    int64_t t0 = th_now_ms();
    int rc = ssock_socket_read(p->sock, b, sizeof b, &n);
    if (rc != SSOCK_EOF)
        fail_msg("second read after close_notify: %s after %lld ms, want "
                 "SSOCK_EOF at once",
                 ssock_err_name(rc), (long long)(th_now_ms() - t0));
    tpair_free(p);
}

static void test_client_close_notify_is_eof(void **state)
{
    (void)state;
    each_backend(run_client_close_notify);
}

static void run_vanished_peer(int backend)
{
    tpair *p;
    static uint8_t chunk[16384];
    int rc = 0, i;

    th_sigpipe_default();
    p = tpair_open(backend, LONG_MS);
    assert_int_equal(ssock_socket_set_write_timeout(p->sock, 2000), 0);
    tc_close(&p->c); /* no close_notify: the peer just goes away */
    for (i = 0; i < 1000 && rc == 0; i++)
        rc = ssock_socket_write(p->sock, chunk, sizeof chunk, NULL);
    print_message("    write #%d failed: %s (%s)\n", i, ssock_err_name(rc),
                  ssock_socket_tls_last_error(p->sock));
    if (rc != -EPIPE && rc != -ECONNRESET)
        fail_msg("TLS write to a vanished peer: %s (%d), want -EPIPE or "
                 "-ECONNRESET",
                 ssock_err_name(rc), rc);
    /* Still alive: no SIGPIPE. */
    tpair_free(p);
}

static void test_write_to_vanished_peer_no_sigpipe(void **state)
{
    (void)state;
    each_backend(run_vanished_peer);
}

static void run_close_sends_close_notify(int backend)
{
    tpair *p;
    char b[16];
    size_t n;

    p = tpair_open(backend, LONG_MS);
    echo_once(p->sock, &p->c, "closing");
    assert_int_equal(ssock_socket_close(p->sock), 0);
    int rc = tc_read_some(&p->c, b, sizeof b, &n, LONG_MS);
    if (rc != TC_CLOSE_NOTIFY)
        fail_msg("client read after server close: %d (%s), want "
                 "SSL_ERROR_ZERO_RETURN",
                 rc, p->c.err);
    assert_int_equal(ssock_socket_close(p->sock), SSOCK_ECLOSED);
    tpair_free(p);
}

static void test_close_sends_close_notify(void **state)
{
    (void)state;
    each_backend(run_close_sends_close_notify);
}

/* 1 MiB through the server's read/write while the client writes and reads
 * at the same time (flow control both ways: WANT_WRITE on the server). */
typedef struct echoer {
    th_call call;
    ssock_socket *sock;
    size_t total;
    size_t echoed;
} echoer;

static int echoer_fn(void *p)
{
    echoer *e = p;
    char buf[16384];
    while (e->echoed < e->total) {
        size_t n = 0;
        int rc = ssock_socket_read(e->sock, buf, sizeof buf, &n);
        if (rc != 0)
            return rc;
        rc = ssock_socket_write(e->sock, buf, n, NULL);
        if (rc != 0)
            return rc;
        e->echoed += n;
    }
    return 0;
}

static void run_echo_1mib(int backend)
{
    const size_t len = 1u << 20;
    uint8_t *out = malloc(len), *in = malloc(len);
    tpair *p;
    echoer e;

    assert_non_null(out);
    assert_non_null(in);
    th_fill(out, len, 0xec40, 0);
    p = tpair_open(backend, LONG_MS);
    e.sock = p->sock;
    e.total = len;
    e.echoed = 0;
    int64_t t0 = th_now_us();
    assert_int_equal(th_call_start(&e.call, echoer_fn, &e), 0);
    int rc = tc_echo(&p->c, out, in, len, 30000);
    if (!th_call_wait(&e.call, 30000))
        fail_msg("echo thread stuck");
    if (rc != TC_OK)
        fail_msg("client echo: %d %s (server %s)", rc, p->c.err,
                 ssock_err_name(e.call.rc));
    assert_int_equal(e.call.rc, 0);
    print_message("    1 MiB round trip in %.1f ms\n",
                  (double)(th_now_us() - t0) / 1000.0);
    assert_int_equal(th_check(in, len, 0xec40, 0), len);
    tpair_free(p);
    free(out);
    free(in);
}

static void test_echo_1mib(void **state)
{
    (void)state;
    each_backend(run_echo_1mib);
}

/* tls.h: the accessors' strings are "valid until ssock_socket_free() (also
 * after close)". */
static void run_info_after_close(int backend)
{
    tpair *p;
    char ver[32], cipher[96], sni[64], alpn[16];

    p = tpair_open(backend, LONG_MS);
    snprintf(ver, sizeof ver, "%s", ssock_socket_tls_version(p->sock));
    snprintf(cipher, sizeof cipher, "%s", ssock_socket_tls_cipher(p->sock));
    snprintf(sni, sizeof sni, "%s", ssock_socket_tls_sni(p->sock));
    snprintf(alpn, sizeof alpn, "%s", ssock_socket_tls_alpn(p->sock));
    assert_int_equal(ssock_socket_close(p->sock), 0);
    const char *v = ssock_socket_tls_version(p->sock);
    const char *cs = ssock_socket_tls_cipher(p->sock);
    const char *sn = ssock_socket_tls_sni(p->sock);
    const char *al = ssock_socket_tls_alpn(p->sock);
    print_message("    after close: version %s cipher %s sni %s alpn %s\n",
                  v ? v : "NULL", cs ? cs : "NULL", sn ? sn : "NULL",
                  al ? al : "NULL");
    if (v == NULL || cs == NULL || sn == NULL || al == NULL)
        fail_msg("TLS accessors return NULL after ssock_socket_close(); "
                 "tls.h: \"valid until ssock_socket_free() (also after "
                 "close)\"");
    assert_string_equal(v, ver);
    assert_string_equal(cs, cipher);
    assert_string_equal(sn, sni);
    assert_string_equal(al, alpn);
    tpair_free(p);
}

static void test_info_after_close(void **state)
{
    (void)state;
    each_backend(run_info_after_close);
}

/* Optional: argv[1] is a cmocka test-name filter (e.g. "test_slowloris"),
 * TLS_ACCEPT_BACKEND=mbedtls|openssl limits the run to one backend. */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_teardown(fn, teardown_proc)
        T(test_handshake_echo),
        T(test_no_sni_no_alpn),
        T(test_alpn_mismatch),
        T(test_openssl_s_client),
        T(test_gnutls_cli),
        T(test_mutual_tls),
        T(test_fail_plain_http),
        T(test_fail_truncated_hello),
        T(test_fail_random_bytes),
        T(test_fail_connect_close),
        T(test_fail_then_good_client),
        T(test_slowloris),
        T(test_handshake_deadline_trickle),
        T(test_accept_timeout_with_stalled_clients),
        T(test_pending_survives_accept_timeout),
        T(test_cap_drops_oldest),
        T(test_server_close_wakes_and_frees),
        T(test_stats_during_close),
        T(test_read_timeout),
        T(test_client_close_notify_is_eof),
        T(test_write_to_vanished_peer_no_sigpipe),
        T(test_close_sends_close_notify),
        T(test_echo_1mib),
        T(test_info_after_close),
        T(test_tls_socket_close_from_other_thread),
        T(test_etls_through_public_api),
        T(test_tls_write_timeout),
        T(test_close_notify_bounded_forever),
#undef T
    };
    /* SIGPIPE stays at its default disposition for the whole run: any
     * write that raised it would kill the program. */
    th_sigpipe_default();
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
