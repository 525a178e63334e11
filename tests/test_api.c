/*
 * The 0.2 API surface of ssock.h: sized options (ABI), version numbers,
 * error classes, the event callback, drain, keepalive, the before-bind
 * hook, IPv6-only listeners, user data and binary addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"
#include "ssock/ssock.h"
#if SSOCK_HAVE_TLS
#include "ssock/tls.h"
#endif

/* ---- ABI: sized options -------------------------------------------------- */

static void test_options_sized(void **state)
{
    ssock_server_options o;
    ssock_server *srv = NULL;
    (void)state;

    ssock_server_options_init(NULL); /* no-op, no crash */
    memset(&o, 0xab, sizeof o);
    ssock_server_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.port, 0);
    assert_int_equal(o.accept_timeout_ms, SSOCK_DEFAULT_ACCEPT_TIMEOUT_MS);
    assert_int_equal(o.backlog, SSOCK_DEFAULT_BACKLOG);
    assert_null(o.addr);
    assert_null(o.tls);
    assert_int_equal(o.ipv6_only, 0);
    assert_int_equal(o.keepalive, 0);
    assert_null(o.before_bind);
    assert_null(o.on_event);
    assert_null(o.user_data);

    /* Not filled by init: refused, nothing opened. */
    o.struct_size = 0;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EINVAL);
    assert_null(srv);
}

/* A program built against the 0.2.0 layout up to `tls` (what a later
 * version's program with fewer fields looks like): the library uses
 * defaults for the rest and never reads past the caller's struct. */
struct options_short {
    size_t struct_size;
    int port;
    int accept_timeout_ms;
    int backlog;
    const char *addr;
    int read_timeout_ms;
    int write_timeout_ms;
    const ssock_tls_config *tls;
};

static void test_options_older_caller(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct options_short),
                     offsetof(ssock_server_options, ipv6_only));
    /* Exactly the short size on the heap: ASan and Valgrind catch any
     * access past it. */
    struct options_short *o = malloc(sizeof *o);
    assert_non_null(o);
    ssock_server_options_init_sized((ssock_server_options *)(void *)o,
                                    sizeof *o);
    assert_int_equal(o->struct_size, sizeof *o);
    assert_int_equal(o->backlog, SSOCK_DEFAULT_BACKLOG);
    o->addr = "127.0.0.1";
    ssock_server *srv = NULL;
    assert_int_equal(ssock_server_open(&srv, (ssock_server_options *)(void *)o),
                     0);
    assert_true(ssock_server_local_port(srv) > 0);
    ssock_server_free(srv);
    free(o);
}

/* A program built against a newer header (a longer struct) on this
 * library: zero extra fields are fine, a set one is SSOCK_ENOTSUP. */
static void test_options_newer_caller(void **state)
{
    (void)state;
    size_t newer = sizeof(ssock_server_options) + 32;
    unsigned char *mem = calloc(1, newer);
    assert_non_null(mem);
    ssock_server_options_init_sized((ssock_server_options *)mem, newer);
    ssock_server_options *o = (ssock_server_options *)mem;
    assert_int_equal(o->struct_size, newer);
    o->addr = "127.0.0.1";
    ssock_server *srv = NULL;
    assert_int_equal(ssock_server_open(&srv, o), 0);
    ssock_server_free(srv);
    srv = NULL;
    mem[sizeof(ssock_server_options) + 5] = 1;
    assert_int_equal(ssock_server_open(&srv, o), SSOCK_ENOTSUP);
    assert_null(srv);
    free(mem);
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(ssock_version(), SSOCK_VERSION_HEX);
    assert_int_equal(SSOCK_VERSION_HEX, (SSOCK_VERSION_MAJOR << 16) |
                                            (SSOCK_VERSION_MINOR << 8) |
                                            SSOCK_VERSION_PATCH);
    assert_string_equal(ssock_version_string(), SSOCK_VERSION_STRING);
}

/* ---- error classes ---------------------------------------------------------
 */

static void test_err_classes(void **state)
{
    static const struct {
        int status;
        ssock_err_class cls;
    } cases[] = {
        {0, SSOCK_ERRCLASS_OK},
        {SSOCK_ETIMEOUT, SSOCK_ERRCLASS_RETRY},
        {SSOCK_ENOMEM, SSOCK_ERRCLASS_RETRY},
        {-EINTR, SSOCK_ERRCLASS_RETRY},
        {-EAGAIN, SSOCK_ERRCLASS_RETRY},
        {-EMFILE, SSOCK_ERRCLASS_RETRY},
        {-ENFILE, SSOCK_ERRCLASS_RETRY},
        {-ECONNABORTED, SSOCK_ERRCLASS_RETRY},
        {SSOCK_EOF, SSOCK_ERRCLASS_PEER},
        {SSOCK_ETRUNCATED, SSOCK_ERRCLASS_PEER},
        {SSOCK_ETLS, SSOCK_ERRCLASS_PEER},
        {SSOCK_EBROKEN, SSOCK_ERRCLASS_PEER},
        {-ECONNRESET, SSOCK_ERRCLASS_PEER},
        {-EPIPE, SSOCK_ERRCLASS_PEER},
        {-ETIMEDOUT, SSOCK_ERRCLASS_PEER}, /* not SSOCK_ETIMEOUT's class */
        {SSOCK_ECLOSED, SSOCK_ERRCLASS_CLOSED},
        {SSOCK_ESERVERCLOSED, SSOCK_ERRCLASS_CLOSED},
        {SSOCK_EINVAL, SSOCK_ERRCLASS_USAGE},
        {SSOCK_EBADPORT, SSOCK_ERRCLASS_USAGE},
        {SSOCK_ETLSCONFIG, SSOCK_ERRCLASS_USAGE},
        {SSOCK_ENOTSUP, SSOCK_ERRCLASS_USAGE},
        {-EADDRINUSE, SSOCK_ERRCLASS_USAGE},
        {-EIO, SSOCK_ERRCLASS_SYSTEM},
        {-99999, SSOCK_ERRCLASS_SYSTEM},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ssock_err_classify(cases[i].status) != cases[i].cls)
            fail_msg("%s: class %d, want %d", ssock_err_name(cases[i].status),
                     ssock_err_classify(cases[i].status), cases[i].cls);
        assert_int_equal(ssock_err_is_transient(cases[i].status),
                         cases[i].cls == SSOCK_ERRCLASS_RETRY);
    }
    assert_string_equal(ssock_err_name(SSOCK_ETRUNCATED), "SSOCK_ETRUNCATED");
    assert_string_equal(ssock_err_name(SSOCK_ENOTSUP), "SSOCK_ENOTSUP");
}

/* ---- events
 * ------------------------------------------------------------------ */

typedef struct evlog {
    int n;
    int type[64];
    int status[64];
    int port[64];
    char host[64][SSOCK_HOST_MAX];
    ssock_socket *sock[64];
} evlog;

static void on_event(const ssock_event *ev, void *arg)
{
    evlog *l = arg;
    if (l->n >= 64)
        return;
    l->type[l->n] = ev->type;
    l->status[l->n] = ev->status;
    l->port[l->n] = ev->peer_port;
    snprintf(l->host[l->n], SSOCK_HOST_MAX, "%s", ev->peer_host);
    l->sock[l->n] = ev->sock;
    assert_non_null(ev->detail);
    l->n++;
}

static void test_event_accepted(void **state)
{
    evlog log;
    ssock_server_options o;
    th_pair p;
    (void)state;
    memset(&log, 0, sizeof log);
    ssock_server_options_init(&o);
    o.on_event = on_event;
    o.on_event_arg = &log;
    assert_int_equal(th_pair_open_opts(&p, "127.0.0.1", AF_INET, &o), 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.type[0], SSOCK_EVENT_ACCEPTED);
    assert_int_equal(log.status[0], 0);
    assert_ptr_equal(log.sock[0], p.sock);
    assert_string_equal(log.host[0], "127.0.0.1");
    assert_int_equal(log.port[0], th_local_port(p.cfd));
    th_pair_free(&p);
    assert_int_equal(log.n, 1); /* closing is not an event */
}

/* accept4 fails with EMFILE once: the pending connection is shed and the
 * callback hears of it. */
static _Atomic int g_emfile;
static int emfile_accept4(int fd, struct sockaddr *sa, socklen_t *len,
                          int flags)
{
    if (atomic_exchange(&g_emfile, 0)) {
        errno = EMFILE;
        return -1;
    }
    return ssock__sys_default.accept4(fd, sa, len, flags);
}

static void test_event_refused(void **state)
{
    struct ssock__sys sys = ssock__sys_default;
    evlog log;
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *s = NULL;
    (void)state;
    sys.accept4 = emfile_accept4;
    memset(&log, 0, sizeof log);
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = 2000;
    o.on_event = on_event;
    o.on_event_arg = &log;
    assert_int_equal(ssock__server_open_sys(&srv, &o, &sys), 0);
    int fd = th_connect(AF_INET, ssock_server_local_port(srv), 2000);
    assert_true(fd >= 0);
    atomic_store(&g_emfile, 1);
    assert_int_equal(ssock_server_accept(srv, &s), -EMFILE);
    assert_null(s);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.type[0], SSOCK_EVENT_REFUSED);
    assert_int_equal(log.status[0], -EMFILE);
    assert_string_equal(log.host[0], "");
    close(fd);
    ssock_server_free(srv);
}

#if SSOCK_HAVE_TLS
static void test_event_tls(void **state)
{
    evlog log;
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *s = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    (void)state;

    if (!ssock_tls_backend_available(SSOCK_TLS_BACKEND_DEFAULT))
        TH_SKIP("no TLS backend built");
    memset(&log, 0, sizeof log);
    ssock_tls_options_init(&t);
    t.cert_file = SSOCK_CERTS_DIR "/server-ecdsa.pem";
    t.key_file = SSOCK_CERTS_DIR "/server-ecdsa.key";
    t.handshake_timeout_ms = 300;
    t.max_handshakes = 2;
    assert_int_equal(ssock_tls_config_new(&cfg, &t, err, sizeof err), 0);
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = 100;
    o.tls = cfg;
    o.on_event = on_event;
    o.on_event_arg = &log;
    assert_int_equal(ssock_server_open(&srv, &o), 0);
    ssock_tls_config_free(cfg);
    int port = ssock_server_local_port(srv);

    /* Not TLS at all: handshake failed. */
    int bad = th_connect(AF_INET, port, 2000);
    assert_int_equal(th_send_all(bad, "GET / HTTP/1.0\r\n\r\n", 18), 0);
    assert_int_equal(ssock_server_accept(srv, &s), SSOCK_ETIMEOUT);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.type[0], SSOCK_EVENT_HANDSHAKE_FAILED);
    assert_true(log.status[0] < 0);
    assert_string_equal(log.host[0], "127.0.0.1");
    close(bad);

    /* Three silent clients, room for two: the oldest is dropped. */
    int q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = th_connect(AF_INET, port, 2000);
        assert_true(q[i] >= 0);
    }
    assert_int_equal(ssock_server_accept(srv, &s), SSOCK_ETIMEOUT);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.type[1], SSOCK_EVENT_HANDSHAKE_DROPPED);
    assert_int_equal(log.status[1], 0);
    assert_int_equal(log.port[1], th_local_port(q[0]));

    /* The other two reach their deadline. */
    int64_t end = th_now_ms() + 2000;
    while (log.n < 4 && th_now_ms() < end)
        assert_int_equal(ssock_server_accept(srv, &s), SSOCK_ETIMEOUT);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.type[2], SSOCK_EVENT_HANDSHAKE_TIMED_OUT);
    assert_int_equal(log.type[3], SSOCK_EVENT_HANDSHAKE_TIMED_OUT);
    assert_int_equal(log.status[2], SSOCK_ETIMEOUT);

    /* One pending when the server closes: dropped with SSOCK_ECLOSED. */
    int last = th_connect(AF_INET, port, 2000);
    assert_int_equal(ssock_server_accept(srv, &s), SSOCK_ETIMEOUT);
    assert_int_equal(ssock_server_close(srv), 0);
    assert_int_equal(log.n, 5);
    assert_int_equal(log.type[4], SSOCK_EVENT_HANDSHAKE_DROPPED);
    assert_int_equal(log.status[4], SSOCK_ECLOSED);
    assert_int_equal(log.port[4], th_local_port(last));
    ssock_server_free(srv);
    for (int i = 0; i < 3; i++)
        close(q[i]);
    close(last);
}
#endif

/* ---- drain -----------------------------------------------------------------
 */

static void test_drain(void **state)
{
    th_pair p;
    ssock_socket *s = NULL;
    char buf[8];
    size_t n = 0;
    (void)state;
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_server_drain(p.srv), 0);
    assert_int_equal(ssock_server_drain(p.srv), SSOCK_ECLOSED);
    assert_int_equal(ssock_server_accept(p.srv, &s), SSOCK_ECLOSED);
    assert_int_equal(ssock_server_fd(p.srv), -1);
    /* Nobody listens any more. */
    assert_int_equal(th_connect(AF_INET, p.port, 1000), -ECONNREFUSED);
    /* The accepted socket carries on. */
    assert_int_equal(th_send_all(p.cfd, "ping", 4), 0);
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ssock_socket_write(p.sock, "pong", 4, NULL), 0);
    /* A close after the drain is still the IOException for children. */
    assert_int_equal(ssock_server_close(p.srv), 0);
    assert_int_equal(ssock_server_close(p.srv), SSOCK_ECLOSED);
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n),
                     SSOCK_ESERVERCLOSED);
    th_pair_free(&p);
}

static void test_drain_then_free(void **state)
{
    th_pair p;
    char buf[8];
    size_t n = 0;
    (void)state;
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_server_drain(p.srv), 0);
    ssock_server_free(p.srv); /* the socket keeps the memory alive */
    p.srv = NULL;
    assert_int_equal(th_send_all(p.cfd, "ping", 4), 0);
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 4);
    th_pair_free(&p);
}

/* A drain wakes a blocked accept like a close does. */
static int accept_fn(void *arg)
{
    ssock_socket *s = NULL;
    return ssock_server_accept(arg, &s);
}

static void test_drain_wakes_accept(void **state)
{
    ssock_server *srv = NULL;
    th_call c;
    (void)state;
    assert_int_equal(ssock_server_open_addr(&srv, 0, 0, "127.0.0.1"), 0);
    assert_int_equal(th_call_start(&c, accept_fn, srv), 0);
    th_sleep_ms(50);
    int64_t t0 = th_now_us();
    assert_int_equal(ssock_server_drain(srv), 0);
    assert_true(th_call_wait(&c, TH_STUCK_MS));
    assert_int_equal(c.rc, SSOCK_ECLOSED);
    assert_true((c.end_us - t0) / 1000 <= TH_WAKE_MS + TH_SLACK_MS);
    ssock_server_free(srv);
}

/* ---- socket options
 * ------------------------------------------------------------ */

static void test_keepalive(void **state)
{
    ssock_server_options o;
    th_pair p;
    int v = 0;
    socklen_t len = sizeof v;
    (void)state;
    ssock_server_options_init(&o);
    o.keepalive = 1;
    o.keepalive_idle_s = 17;
    o.keepalive_interval_s = 5;
    o.keepalive_count = 3;
    assert_int_equal(th_pair_open_opts(&p, "127.0.0.1", AF_INET, &o), 0);
    int fd = ssock_socket_fd(p.sock);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len), 0);
    assert_int_equal(v, 17);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, &len), 0);
    assert_int_equal(v, 5);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, &len), 0);
    assert_int_equal(v, 3);
    th_pair_free(&p);

    /* Off by default. */
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(
        getsockopt(ssock_socket_fd(p.sock), SOL_SOCKET, SO_KEEPALIVE, &v, &len),
        0);
    assert_int_equal(v, 0);
    th_pair_free(&p);

    ssock_server *srv = NULL;
    ssock_server_options_init(&o);
    o.keepalive = 1;
    o.keepalive_count = -1;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EBADTIMEOUT);
}

static int g_hook_fd = -1;
static int hook_rcvbuf(int fd, void *arg)
{
    g_hook_fd = fd;
    int v = *(int *)arg;
    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == 0 ? 0
                                                                    : -errno;
}
static int hook_refuse(int fd, void *arg)
{
    (void)fd;
    return *(int *)arg;
}

static void test_before_bind(void **state)
{
    ssock_server_options o;
    ssock_server *srv = NULL;
    int size = 8192, v = 0;
    socklen_t len = sizeof v;
    (void)state;
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.before_bind = hook_rcvbuf;
    o.before_bind_arg = &size;
    assert_int_equal(ssock_server_open(&srv, &o), 0);
    assert_int_equal(g_hook_fd, ssock_server_fd(srv));
    assert_int_equal(
        getsockopt(ssock_server_fd(srv), SOL_SOCKET, SO_RCVBUF, &v, &len), 0);
    assert_int_equal(v, 2 * size); /* Linux doubles it */
    ssock_server_free(srv);

    int refuse = -EPERM;
    o.before_bind = hook_refuse;
    o.before_bind_arg = &refuse;
    assert_int_equal(ssock_server_open(&srv, &o), -EPERM);
    assert_null(srv);
    refuse = 7; /* not a status */
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EINVAL);
    assert_null(srv);
}

static void test_ipv6_only(void **state)
{
    ssock_server_options o;
    ssock_server *v6 = NULL, *v4 = NULL;
    int v = 0;
    socklen_t len = sizeof v;
    (void)state;
    TH_REQUIRE_IPV6();
    ssock_server_options_init(&o);
    o.ipv6_only = 1;
    assert_int_equal(ssock_server_open(&v6, &o), 0);
    assert_string_equal(ssock_server_host(v6), "::");
    assert_int_equal(
        getsockopt(ssock_server_fd(v6), IPPROTO_IPV6, IPV6_V6ONLY, &v, &len),
        0);
    assert_int_equal(v, 1);
    /* The same port is free for IPv4. */
    assert_int_equal(ssock_server_open_addr(&v4, ssock_server_local_port(v6),
                                            1000, "0.0.0.0"),
                     0);
    ssock_server_free(v4);
    ssock_server_free(v6);

    /* Dual-stack by default: the IPv4 bind then collides. */
    ssock_server_options_init(&o);
    assert_int_equal(ssock_server_open(&v6, &o), 0);
    assert_int_equal(ssock_server_open_addr(&v4, ssock_server_local_port(v6),
                                            1000, "0.0.0.0"),
                     -EADDRINUSE);
    ssock_server_free(v6);
}

/* ---- user data, binary addresses
 * --------------------------------------------- */

static void test_user_data_and_addresses(void **state)
{
    ssock_server_options o;
    th_pair p;
    int tag = 0, tag2 = 0;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    (void)state;
    ssock_server_options_init(&o);
    o.user_data = &tag;
    assert_int_equal(th_pair_open_opts(&p, "127.0.0.1", AF_INET, &o), 0);
    assert_ptr_equal(ssock_server_user_data(p.srv), &tag);
    ssock_server_set_user_data(p.srv, &tag2);
    assert_ptr_equal(ssock_server_user_data(p.srv), &tag2);
    assert_null(ssock_socket_user_data(p.sock));
    ssock_socket_set_user_data(p.sock, &tag);
    assert_ptr_equal(ssock_socket_user_data(p.sock), &tag);
    assert_null(ssock_server_user_data(NULL));
    assert_null(ssock_socket_user_data(NULL));

    assert_ptr_equal(ssock_server_local_host(p.srv), ssock_server_host(p.srv));
    assert_string_equal(ssock_server_local_host(p.srv), "127.0.0.1");
    assert_null(ssock_server_local_host(NULL));
    assert_int_equal(ssock_server_local_addr(p.srv, &ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), p.port);

    assert_int_equal(ssock_socket_peer_addr(p.sock, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port),
                     th_local_port(p.cfd));
    assert_int_equal(ssock_socket_local_addr(p.sock, &ss, &len), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), p.port);
    assert_string_equal(ssock_socket_local_host(p.sock), "127.0.0.1");

    assert_int_equal(ssock_socket_peer_addr(NULL, &ss, &len), SSOCK_EINVAL);
    assert_int_equal(ssock_socket_local_addr(p.sock, NULL, &len), SSOCK_EINVAL);
    assert_int_equal(ssock_server_local_addr(p.srv, &ss, NULL), SSOCK_EINVAL);
    /* After close: what was read answers; the server's address too. */
    assert_int_equal(ssock_socket_close(p.sock), 0);
    assert_string_equal(ssock_socket_local_host(p.sock), "127.0.0.1");
    assert_int_equal(ssock_server_close(p.srv), 0);
    assert_int_equal(ssock_server_local_addr(p.srv, &ss, &len), 0);
    th_pair_free(&p);

    /* Never asked before close: SSOCK_ECLOSED, "" for the text. */
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_socket_close(p.sock), 0);
    assert_int_equal(ssock_socket_local_addr(p.sock, &ss, &len), SSOCK_ECLOSED);
    assert_string_equal(ssock_socket_local_host(p.sock), "");
    th_pair_free(&p);
}

int main(void)
{
    th_sigpipe_default();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_sized),
        cmocka_unit_test(test_options_older_caller),
        cmocka_unit_test(test_options_newer_caller),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_err_classes),
        cmocka_unit_test(test_event_accepted),
        cmocka_unit_test(test_event_refused),
#if SSOCK_HAVE_TLS
        cmocka_unit_test(test_event_tls),
#endif
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_drain_then_free),
        cmocka_unit_test(test_drain_wakes_accept),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_before_bind),
        cmocka_unit_test(test_ipv6_only),
        cmocka_unit_test(test_user_data_and_addresses),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
