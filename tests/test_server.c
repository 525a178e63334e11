/* src/server.c: constructors, argument checks, ports, accept timeouts,
 * EINTR, close from another thread, running out of descriptors. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ssock/tls.h"

static char sentinel_obj;
#define SENTINEL_SRV ((ssock_server *)(void *)&sentinel_obj)
#define SENTINEL_SOCK ((ssock_socket *)(void *)&sentinel_obj)

/* ---- argument validation -------------------------------------------- */

enum ctor { C_PORT, C_TIMEOUT, C_ADDR, C_BACKLOG, C_OPTS, C_COUNT };
static const char *const ctor_names[C_COUNT] = {
    "ssock_server_open_port", "ssock_server_open_timeout",
    "ssock_server_open_addr", "ssock_server_open_backlog", "ssock_server_open"};

#define NEED_T 1 /* row sets a non-default timeout */
#define NEED_B 2 /* ... backlog */
#define NEED_A 4 /* ... address */
static const int ctor_caps[C_COUNT] = {0, NEED_T, NEED_T | NEED_A,
                                       NEED_T | NEED_B | NEED_A,
                                       NEED_T | NEED_B | NEED_A};

static int open_with(enum ctor c, ssock_server **out, int port, int timeout,
                     int backlog, const char *addr)
{
    ssock_server_options o;
    switch (c) {
    case C_PORT:
        return ssock_server_open_port(out, port);
    case C_TIMEOUT:
        return ssock_server_open_timeout(out, port, timeout);
    case C_ADDR:
        return ssock_server_open_addr(out, port, timeout, addr);
    case C_BACKLOG:
        return ssock_server_open_backlog(out, port, timeout, backlog, addr);
    default:
        ssock_server_options_init(&o);
        o.port = port;
        o.accept_timeout_ms = timeout;
        o.backlog = backlog;
        o.addr = addr;
        return ssock_server_open(out, &o);
    }
}

struct arg_row {
    int port, timeout, backlog;
    const char *addr;
    int needs;
    int want;
};

#define DT SSOCK_DEFAULT_ACCEPT_TIMEOUT_MS
#define DB SSOCK_DEFAULT_BACKLOG
#define BADHOST "no.such.host.invalid"

static const struct arg_row arg_rows[] = {
    /* one bad argument */
    {-1, DT, DB, NULL, 0, SSOCK_EBADPORT},
    {65536, DT, DB, NULL, 0, SSOCK_EBADPORT},
    {INT_MIN, DT, DB, NULL, 0, SSOCK_EBADPORT},
    {INT_MAX, DT, DB, NULL, 0, SSOCK_EBADPORT},
    {0, -1, DB, NULL, NEED_T, SSOCK_EBADTIMEOUT},
    {0, INT_MIN, DB, NULL, NEED_T, SSOCK_EBADTIMEOUT},
    {0, DT, 0, NULL, NEED_B, SSOCK_EBADBACKLOG},
    {0, DT, -1, NULL, NEED_B, SSOCK_EBADBACKLOG},
    {0, DT, INT_MIN, NULL, NEED_B, SSOCK_EBADBACKLOG},
    {0, DT, DB, "", NEED_A, SSOCK_EBADADDR},
    /* order: port, timeout, backlog, addr */
    {-1, -1, DB, NULL, NEED_T, SSOCK_EBADPORT},
    {65536, -1, 0, "", NEED_T | NEED_B | NEED_A, SSOCK_EBADPORT},
    {-1, DT, DB, "", NEED_A, SSOCK_EBADPORT},
    {-1, DT, DB, BADHOST, NEED_A, SSOCK_EBADPORT},
    {0, -1, 0, NULL, NEED_T | NEED_B, SSOCK_EBADTIMEOUT},
    {0, -1, DB, "", NEED_T | NEED_A, SSOCK_EBADTIMEOUT},
    {0, -1, DB, BADHOST, NEED_T | NEED_A, SSOCK_EBADTIMEOUT},
    {0, DT, 0, "", NEED_B | NEED_A, SSOCK_EBADBACKLOG},
    {0, DT, -1, BADHOST, NEED_B | NEED_A, SSOCK_EBADBACKLOG},
    /* valid edges */
    {0, 0, DB, NULL, NEED_T, 0},
    {0, 1, 1, "127.0.0.1", NEED_T | NEED_B | NEED_A, 0},
    {0, INT_MAX, INT_MAX, "127.0.0.1", NEED_T | NEED_B | NEED_A, 0},
};

static void test_argument_validation(void **state)
{
    (void)state;
    for (int c = 0; c < C_COUNT; c++) {
        for (size_t i = 0; i < sizeof arg_rows / sizeof arg_rows[0]; i++) {
            const struct arg_row *r = &arg_rows[i];
            ssock_server *srv = SENTINEL_SRV;
            int rc;
            if (r->needs & ~ctor_caps[c])
                continue;
            rc = open_with((enum ctor)c, &srv, r->port, r->timeout, r->backlog,
                           r->addr);
            if (rc != r->want)
                fail_msg("%s(port %d, timeout %d, backlog %d, addr %s%s%s): "
                         "%s (%d), want %s",
                         ctor_names[c], r->port, r->timeout, r->backlog,
                         r->addr ? "\"" : "", r->addr ? r->addr : "NULL",
                         r->addr ? "\"" : "", ssock_err_name(rc), rc,
                         ssock_err_name(r->want));
            if (rc != 0) {
                if (srv != NULL)
                    fail_msg("%s row %zu: *out not NULL after failure",
                             ctor_names[c], i);
            } else {
                assert_non_null(srv);
                assert_true(srv != SENTINEL_SRV);
                if (r->needs & NEED_T)
                    assert_int_equal(ssock_server_accept_timeout(srv),
                                     r->timeout);
                ssock_server_free(srv);
            }
        }
    }
}

static void test_null_out_and_opts(void **state)
{
    ssock_server_options o;
    ssock_server *srv = SENTINEL_SRV;
    (void)state;

    assert_int_equal(ssock_server_open_port(NULL, 0), SSOCK_EINVAL);
    assert_int_equal(ssock_server_open_timeout(NULL, 0, 100), SSOCK_EINVAL);
    assert_int_equal(ssock_server_open_addr(NULL, 0, 100, "127.0.0.1"),
                     SSOCK_EINVAL);
    assert_int_equal(ssock_server_open_backlog(NULL, 0, 100, 5, "127.0.0.1"),
                     SSOCK_EINVAL);
    ssock_server_options_init(&o);
    assert_int_equal(ssock_server_open(NULL, &o), SSOCK_EINVAL);
    assert_int_equal(ssock_server_open(&srv, NULL), SSOCK_EINVAL);
    assert_null(srv);
}

static void test_options_defaults_and_socket_timeouts(void **state)
{
    ssock_server_options o;
    ssock_server *srv = SENTINEL_SRV;
    (void)state;

    memset(&o, 0x5A, sizeof o);
    ssock_server_options_init(&o);
    assert_int_equal(o.port, 0);
    assert_int_equal(o.accept_timeout_ms, 10000);
    assert_int_equal(o.backlog, 100);
    assert_null(o.addr);
    assert_int_equal(o.read_timeout_ms, 5000);
    assert_int_equal(o.write_timeout_ms, 2000);

    o.read_timeout_ms = -1;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EBADTIMEOUT);
    assert_null(srv);
    o.read_timeout_ms = 0;
    o.write_timeout_ms = -1;
    srv = SENTINEL_SRV;
    assert_int_equal(ssock_server_open(&srv, &o), SSOCK_EBADTIMEOUT);
    assert_null(srv);

    /* The defaults of the convenience constructors. */
    assert_int_equal(ssock_server_open_port(&srv, 0), 0);
    assert_int_equal(ssock_server_accept_timeout(srv),
                     SSOCK_DEFAULT_ACCEPT_TIMEOUT_MS);
    ssock_server_free(srv);
    assert_int_equal(ssock_server_open_timeout(&srv, 0, 1234), 0);
    assert_int_equal(ssock_server_accept_timeout(srv), 1234);
    ssock_server_free(srv);
}

static void test_null_handles(void **state)
{
    ssock_socket *sock = SENTINEL_SOCK;
    (void)state;
    ssock_server_free(NULL);
    assert_null(ssock_server_host(NULL));
    assert_int_equal(ssock_server_local_port(NULL), SSOCK_EINVAL);
    assert_int_equal(ssock_server_close(NULL), SSOCK_EINVAL);
    assert_int_equal(ssock_server_accept(NULL, &sock), SSOCK_EINVAL);
    assert_null(sock);
}

/* ---- ports, descriptors --------------------------------------------- */

static void check_ephemeral(const char *addr, int family)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    int port, fd, cfd, flags;

    assert_int_equal(ssock_server_open_addr(&srv, 0, TH_STUCK_MS, addr), 0);
    port = ssock_server_local_port(srv);
    assert_true(port > 0 && port <= 65535);
    fd = ssock_server_fd(srv);
    assert_true(fd >= 0);
    assert_int_equal(th_local_port(fd), port);
    flags = fcntl(fd, F_GETFD);
    assert_true(flags >= 0 && (flags & FD_CLOEXEC));

    cfd = th_connect(family, port, TH_STUCK_MS);
    if (cfd < 0)
        fail_msg("connect to %s port %d: %s", th_loopback(family), port,
                 strerror(-cfd));
    assert_int_equal(ssock_server_accept(srv, &sock), 0);
    assert_non_null(sock);
    assert_int_equal(ssock_socket_local_port(sock), port);
    assert_int_equal(ssock_socket_peer_port(sock), th_local_port(cfd));
    flags = fcntl(ssock_socket_fd(sock), F_GETFD);
    assert_true(flags >= 0 && (flags & FD_CLOEXEC));
    ssock_socket_free(sock);
    close(cfd);
    ssock_server_free(srv);
}

static void test_ephemeral_port_ipv4(void **state)
{
    (void)state;
    check_ephemeral("127.0.0.1", AF_INET);
}

static void test_ephemeral_port_ipv6(void **state)
{
    (void)state;
    TH_REQUIRE_IPV6();
    check_ephemeral("::1", AF_INET6);
}

static void test_any_address_is_dual_stack(void **state)
{
    (void)state;
    check_ephemeral(NULL, AF_INET);
    TH_REQUIRE_IPV6();
    check_ephemeral(NULL, AF_INET6);
}

static void test_two_ephemeral_servers_differ(void **state)
{
    ssock_server *a = NULL, *b = NULL;
    (void)state;
    assert_int_equal(ssock_server_open_addr(&a, 0, 100, "127.0.0.1"), 0);
    assert_int_equal(ssock_server_open_addr(&b, 0, 100, "127.0.0.1"), 0);
    assert_int_not_equal(ssock_server_local_port(a),
                         ssock_server_local_port(b));
    ssock_server_free(a);
    ssock_server_free(b);
}

static void check_addr_in_use(const char *addr)
{
    ssock_server *a = NULL, *b = SENTINEL_SRV;
    int rc;

    assert_int_equal(ssock_server_open_addr(&a, 0, 100, addr), 0);
    rc = ssock_server_open_addr(&b, ssock_server_local_port(a), 100, addr);
    if (rc != -EADDRINUSE)
        fail_msg("second server on %s port %d: %s (%d), want EADDRINUSE", addr,
                 ssock_server_local_port(a), ssock_err_name(rc), rc);
    assert_null(b);
    assert_string_equal(ssock_err_name(rc), "EADDRINUSE");
    if (!strstr(ssock_strerror(rc), "in use"))
        fail_msg("message for EADDRINUSE: \"%s\"", ssock_strerror(rc));
    /* The first server is unharmed. */
    {
        ssock_socket *s = NULL;
        int cfd = th_connect(strchr(addr, ':') ? AF_INET6 : AF_INET,
                             ssock_server_local_port(a), TH_STUCK_MS);
        assert_true(cfd >= 0);
        assert_int_equal(ssock_server_accept(a, &s), 0);
        ssock_socket_free(s);
        close(cfd);
    }
    ssock_server_free(a);
}

static void test_addr_in_use_ipv4(void **state)
{
    (void)state;
    check_addr_in_use("127.0.0.1");
}

static void test_addr_in_use_ipv6(void **state)
{
    (void)state;
    TH_REQUIRE_IPV6();
    check_addr_in_use("::1");
}

/* ---- promises with no test before issue 9 ---------------------------- */

/* "SO_REUSEADDR is set" (ssock_server_open). */
static void test_so_reuseaddr(void **state)
{
    ssock_server *srv = NULL;
    int one = 0;
    socklen_t len = sizeof one;
    (void)state;

    assert_int_equal(ssock_server_open_addr(&srv, 0, 1000, "127.0.0.1"), 0);
    assert_int_equal(
        getsockopt(ssock_server_fd(srv), SOL_SOCKET, SO_REUSEADDR, &one, &len),
        0);
    if (one == 0)
        fail_msg("SO_REUSEADDR is not set on the listening socket");
    ssock_server_free(srv);
    /* Dual-stack default too. */
    srv = NULL;
    assert_int_equal(ssock_server_open_port(&srv, 0), 0);
    one = 0;
    assert_int_equal(
        getsockopt(ssock_server_fd(srv), SOL_SOCKET, SO_REUSEADDR, &one, &len),
        0);
    assert_int_not_equal(one, 0);
    ssock_server_free(srv);
}

/* A system without IPv6: socket(AF_INET6) fails with EAFNOSUPPORT. */
static atomic_int no6_calls;
static int no6_socket(int domain, int type, int protocol)
{
    if (domain == AF_INET6) {
        atomic_fetch_add(&no6_calls, 1);
        errno = EAFNOSUPPORT;
        return -1;
    }
    return socket(domain, type, protocol);
}

static void test_ipv4_fallback_without_ipv6(void **state)
{
    struct ssock__sys sys = ssock__sys_default;
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    int cfd;
    (void)state;

    sys.socket = no6_socket;
    atomic_store(&no6_calls, 0);
    ssock_server_options_init(&o);
    o.accept_timeout_ms = TH_STUCK_MS;
    /* addr NULL: "::" first, then "0.0.0.0" where IPv6 is unavailable. */
    assert_int_equal(ssock__server_open_sys(&srv, &o, &sys), 0);
    assert_int_equal(atomic_load(&no6_calls), 1);
    assert_string_equal(ssock_server_host(srv), "0.0.0.0");
    cfd = th_connect(AF_INET, ssock_server_local_port(srv), TH_STUCK_MS);
    assert_true(cfd >= 0);
    assert_int_equal(ssock_server_accept(srv, &sock), 0);
    assert_string_equal(ssock_socket_peer_host(sock), "127.0.0.1");
    ssock_socket_free(sock);
    close(cfd);
    ssock_server_free(srv);

    /* An explicit IPv6 address is not silently replaced by IPv4. */
    srv = NULL;
    o.addr = "::1";
    assert_int_equal(ssock__server_open_sys(&srv, &o, &sys), -EAFNOSUPPORT);
    assert_null(srv);
}

/* TLS-only calls on a plain server and socket. */
static void test_tls_calls_on_plain(void **state)
{
    th_pair p;
    ssock_tls_stats st;
    (void)state;

    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    memset(&st, 0xff, sizeof st);
    assert_int_equal(ssock_server_tls_stats(p.srv, &st), SSOCK_ENOTTLS);
    {
        ssock_tls_stats zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(&st, &zero, sizeof st); /* "stats is zeroed" */
    }
    assert_int_equal(ssock_server_tls_stats(NULL, &st), SSOCK_EINVAL);
    assert_int_equal(ssock_server_tls_stats(p.srv, NULL), SSOCK_EINVAL);
    assert_null(ssock_server_tls_last_error(p.srv));
    assert_null(ssock_server_tls_last_error(NULL));
    assert_null(ssock_socket_tls_version(p.sock));
    assert_null(ssock_socket_tls_cipher(p.sock));
    assert_null(ssock_socket_tls_alpn(p.sock));
    assert_null(ssock_socket_tls_sni(p.sock));
    assert_null(ssock_socket_tls_peer_subject(p.sock));
    assert_null(ssock_socket_tls_last_error(p.sock));
    assert_null(ssock_socket_tls_last_error(NULL));
    /* Still the same after close. */
    assert_int_equal(ssock_server_close(p.srv), 0);
    assert_int_equal(ssock_server_tls_stats(p.srv, &st), SSOCK_ENOTTLS);
    assert_null(ssock_socket_tls_version(p.sock));
    th_pair_free(&p);
}

static void test_fd_is_pollable(void **state)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    struct pollfd pfd;
    int cfd;
    int64_t t0;
    (void)state;

    assert_int_equal(ssock_server_open_addr(&srv, 0, TH_STUCK_MS, "127.0.0.1"),
                     0);
    pfd.fd = ssock_server_fd(srv);
    pfd.events = POLLIN;
    pfd.revents = 0;
    assert_int_equal(poll(&pfd, 1, 0), 0);
    cfd = th_connect(AF_INET, ssock_server_local_port(srv), TH_STUCK_MS);
    assert_true(cfd >= 0);
    assert_int_equal(poll(&pfd, 1, TH_STUCK_MS), 1);
    assert_true(pfd.revents & POLLIN);
    t0 = th_now_ms();
    assert_int_equal(ssock_server_accept(srv, &sock), 0);
    assert_true(th_now_ms() - t0 < TH_SLACK_MS);
    ssock_socket_free(sock);
    close(cfd);
    ssock_server_free(srv);
}

/* ---- accept timeouts ------------------------------------------------ */

static void check_accept_timeout(const char *addr, int timeout)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = SENTINEL_SOCK;
    int64_t t0, elapsed_us;
    int rc;

    int64_t best = INT64_MAX;

    assert_int_equal(ssock_server_open_addr(&srv, 0, timeout, addr), 0);
    /* Bound: the timeout + th_slack_ms(), best of TH_TRIES. */
    for (int i = 0; i < TH_TRIES; i++) {
        t0 = th_now_us();
        rc = ssock_server_accept(srv, &sock);
        elapsed_us = th_now_us() - t0;
        assert_int_equal(rc, SSOCK_ETIMEOUT);
        assert_null(sock);
        /* 1 ms for millisecond rounding inside the library. */
        if (elapsed_us < (int64_t)timeout * 1000 - 1000)
            fail_msg("accept(%d ms) returned after %.1f ms: too early", timeout,
                     elapsed_us / 1000.0);
        if (elapsed_us < best)
            best = elapsed_us;
        if (best <= (int64_t)(timeout + TH_SLACK_MS) * 1000)
            break;
    }
    if (best > (int64_t)(timeout + TH_SLACK_MS) * 1000)
        fail_msg("accept(%d ms) returned after %.1f ms at best: too late "
                 "(bound %d + %d ms)",
                 timeout, best / 1000.0, timeout, TH_SLACK_MS);
    /* Still usable after a timeout. */
    {
        int cfd = th_connect(strchr(addr, ':') ? AF_INET6 : AF_INET,
                             ssock_server_local_port(srv), TH_STUCK_MS);
        assert_true(cfd >= 0);
        assert_int_equal(ssock_server_accept(srv, &sock), 0);
        assert_non_null(sock);
        ssock_socket_free(sock);
        close(cfd);
    }
    ssock_server_free(srv);
}

static void test_accept_timeout_100ms(void **state)
{
    (void)state;
    check_accept_timeout("127.0.0.1", 100);
}

static void test_accept_timeout_300ms(void **state)
{
    (void)state;
    check_accept_timeout("127.0.0.1", 300);
}

static void test_accept_timeout_ipv6(void **state)
{
    (void)state;
    TH_REQUIRE_IPV6();
    check_accept_timeout("::1", 100);
}

struct late_client {
    int port;
    int delay_ms;
    int fd; /* result: connected fd or -errno */
};

static void *late_client_main(void *p)
{
    struct late_client *lc = p;
    th_sleep_ms(lc->delay_ms);
    lc->fd = th_connect(AF_INET, lc->port, TH_STUCK_MS);
    return NULL;
}

static void test_wait_forever_really_waits(void **state)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    struct late_client lc;
    pthread_t t;
    int64_t t0, elapsed;
    int rc;
    (void)state;

    assert_int_equal(
        ssock_server_open_addr(&srv, 0, SSOCK_WAIT_FOREVER, "127.0.0.1"), 0);
    assert_int_equal(ssock_server_accept_timeout(srv), 0);
    lc.port = ssock_server_local_port(srv);
    lc.delay_ms = 300;
    lc.fd = -1;
    t0 = th_now_ms();
    assert_int_equal(pthread_create(&t, NULL, late_client_main, &lc), 0);
    rc = ssock_server_accept(srv, &sock);
    elapsed = th_now_ms() - t0;
    pthread_join(t, NULL);
    assert_true(lc.fd >= 0);
    assert_int_equal(rc, 0);
    assert_non_null(sock);
    if (elapsed < 250)
        fail_msg("accept with WAIT_FOREVER returned after %lld ms, before the "
                 "client connected at ~300 ms",
                 (long long)elapsed);
    assert_int_equal(ssock_socket_peer_port(sock), th_local_port(lc.fd));
    ssock_socket_free(sock);
    close(lc.fd);
    ssock_server_free(srv);
}

/* ---- EINTR ---------------------------------------------------------- */

static volatile sig_atomic_t sigusr1_count;

static void on_sigusr1(int sig)
{
    (void)sig;
    sigusr1_count++;
}

struct signaller {
    pthread_t target;
    int sent;
};

static void *signaller_main(void *p)
{
    struct signaller *s = p;
    /* Five signals between ~40 ms and ~280 ms into a 400 ms accept. */
    for (int i = 0; i < 5; i++) {
        th_sleep_ms(i == 0 ? 40 : 60);
        if (pthread_kill(s->target, SIGUSR1) == 0)
            s->sent++;
    }
    return NULL;
}

/* One accept(400 ms) interrupted by five signals; its duration in us. */
static int64_t measure_accept_with_signals(void)
{
    struct sigaction sa, old;
    struct signaller sg;
    ssock_server *srv = NULL;
    ssock_socket *sock = SENTINEL_SOCK;
    pthread_t t;
    int64_t t0, elapsed_us;
    int rc;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls fail with EINTR */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    sigusr1_count = 0;

    assert_int_equal(ssock_server_open_addr(&srv, 0, 400, "127.0.0.1"), 0);
    sg.target = pthread_self();
    sg.sent = 0;
    t0 = th_now_us();
    assert_int_equal(pthread_create(&t, NULL, signaller_main, &sg), 0);
    rc = ssock_server_accept(srv, &sock);
    elapsed_us = th_now_us() - t0;
    pthread_join(t, NULL);
    sigaction(SIGUSR1, &old, NULL);

    assert_int_equal(sg.sent, 5);
    assert_true(sigusr1_count >= 1);
    if (rc != SSOCK_ETIMEOUT)
        fail_msg("accept interrupted by %d signals: %s (%d), want "
                 "SSOCK_ETIMEOUT",
                 (int)sigusr1_count, ssock_err_name(rc), rc);
    assert_null(sock);
    if (elapsed_us < 399000)
        fail_msg("accept(400 ms) with signals returned after %.1f ms",
                 elapsed_us / 1000.0);
    ssock_server_free(srv);
    return elapsed_us;
}

static void test_accept_continues_after_eintr(void **state)
{
    int64_t best = INT64_MAX;
    (void)state;
    /* Five signal deliveries and their handlers cost microseconds: the
     * bound is the timeout + th_slack_ms(), best of TH_TRIES. */
    for (int i = 0; i < TH_TRIES && best > (400 + TH_SLACK_MS) * 1000; i++) {
        int64_t us = measure_accept_with_signals();
        if (us < best)
            best = us;
    }
    if (best > (400 + TH_SLACK_MS) * 1000)
        fail_msg("accept(400 ms) with signals returned after %.1f ms at best: "
                 "late (bound 400 + %d ms)",
                 best / 1000.0, TH_SLACK_MS);
}

/* ---- close from another thread -------------------------------------- */

struct acc_arg {
    ssock_server *srv;
    ssock_socket *sock;
};

static int call_accept(void *p)
{
    struct acc_arg *a = p;
    return ssock_server_accept(a->srv, &a->sock);
}

static int call_server_close(void *p)
{
    return ssock_server_close(p);
}

/* One thread blocks in accept, another closes the server: accept returns
 * SSOCK_ECLOSED within 100 ms (+ slack) of the close, and the close itself
 * does not block. */
static int64_t measure_close_wakes_accept(const char *addr, int timeout)
{
    struct acc_arg a;
    th_call acc, cl;
    int64_t woke_ms;

    ssock_server_options o;

    a.srv = NULL;
    a.sock = SENTINEL_SOCK;
    ssock_server_options_init(&o);
    o.accept_timeout_ms = timeout;
    o.addr = addr;
    th_spy_reset();
    assert_int_equal(ssock__server_open_sys(&a.srv, &o, th_spy_sys()), 0);
    assert_int_equal(th_call_start(&acc, call_accept, &a), 0);
    /* Proof that it blocks: the thread is inside the library's poll. */
    if (!th_spy_wait_blocked(1, TH_STUCK_MS))
        fail_msg("accept (timeout %d) never blocked in poll", timeout);
    if (th_event_wait(&acc.t.done, 0))
        fail_msg("accept (timeout %d) returned %s before the close", timeout,
                 ssock_err_name(acc.rc));
    assert_int_equal(th_call_start(&cl, call_server_close, a.srv), 0);
    if (!th_call_wait(&cl, TH_STUCK_MS))
        fail_msg("ssock_server_close blocked > %d ms while another thread "
                 "was in accept",
                 TH_STUCK_MS); /* threads and server leaked on purpose */
    assert_int_equal(cl.rc, 0);
    if (!th_call_wait(&acc, TH_STUCK_MS))
        fail_msg("accept (timeout %d) still blocked %d ms after "
                 "ssock_server_close from another thread",
                 timeout, TH_STUCK_MS);
    if (acc.rc != SSOCK_ECLOSED)
        fail_msg("accept woken by close: %s (%d), want SSOCK_ECLOSED",
                 ssock_err_name(acc.rc), acc.rc);
    assert_null(a.sock);
    woke_ms = (acc.end_us - cl.start_us) / 1000;
    print_message("[  INFO    ] accept woke %lld ms after close\n",
                  (long long)woke_ms);
    assert_int_equal(ssock_server_close(a.srv), SSOCK_ECLOSED);
    ssock_server_free(a.srv);
    return woke_ms;
}

/* Bound: TH_WAKE_MS + th_slack_ms(), best of TH_TRIES. */
static void check_close_wakes_accept(const char *addr, int timeout)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < TH_TRIES && best > TH_WAKE_MS + TH_SLACK_MS; i++) {
        int64_t ms = measure_close_wakes_accept(addr, timeout);
        if (ms < best)
            best = ms;
    }
    if (best > TH_WAKE_MS + TH_SLACK_MS)
        fail_msg("accept woke %lld ms after close at best (promise: %d ms, "
                 "+%d ms slack)",
                 (long long)best, TH_WAKE_MS, TH_SLACK_MS);
}

static void test_close_wakes_accept_ipv4(void **state)
{
    (void)state;
    check_close_wakes_accept("127.0.0.1", SSOCK_WAIT_FOREVER);
}

static void test_close_wakes_accept_ipv6(void **state)
{
    (void)state;
    TH_REQUIRE_IPV6();
    check_close_wakes_accept("::1", SSOCK_WAIT_FOREVER);
}

static void test_close_wakes_accept_with_timeout(void **state)
{
    /* A finite (long) timeout: close must not wait for it. */
    (void)state;
    check_close_wakes_accept("127.0.0.1", 3000);
}

static void test_after_close(void **state)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = SENTINEL_SOCK;
    char host[SSOCK_HOST_MAX];
    int port;
    int64_t t0;
    (void)state;

    assert_int_equal(ssock_server_open_addr(&srv, 0, 2000, "127.0.0.1"), 0);
    port = ssock_server_local_port(srv);
    snprintf(host, sizeof host, "%s", ssock_server_host(srv));
    assert_true(ssock_server_fd(srv) >= 0);

    assert_int_equal(ssock_server_close(srv), 0);
    assert_int_equal(ssock_server_close(srv), SSOCK_ECLOSED);
    assert_int_equal(ssock_server_close(srv), SSOCK_ECLOSED);
    t0 = th_now_ms();
    assert_int_equal(ssock_server_accept(srv, &sock), SSOCK_ECLOSED);
    assert_true(th_now_ms() - t0 < TH_SLACK_MS); /* not after the timeout */
    assert_null(sock);
    assert_int_equal(ssock_server_fd(srv), -1);
    assert_int_equal(ssock_server_local_port(srv), port);
    assert_non_null(ssock_server_host(srv));
    assert_string_equal(ssock_server_host(srv), host);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(ssock_server_accept_timeout(srv), 2000);
    /* The port is released: nothing listens there any more. */
    {
        int cfd = th_connect(AF_INET, port, TH_STUCK_MS);
        if (cfd >= 0) {
            close(cfd);
            fail_msg("a client could still connect after close");
        }
        assert_int_equal(cfd, -ECONNREFUSED);
    }
    ssock_server_free(srv);
    ssock_server_free(NULL);
}

static void test_free_without_close(void **state)
{
    ssock_server *srv = NULL;
    int port, cfd;
    (void)state;

    assert_int_equal(ssock_server_open_addr(&srv, 0, 100, "127.0.0.1"), 0);
    port = ssock_server_local_port(srv);
    ssock_server_free(srv); /* closes */
    cfd = th_connect(AF_INET, port, TH_STUCK_MS);
    if (cfd >= 0)
        close(cfd);
    assert_int_equal(cfd, -ECONNREFUSED);
}

/* ---- out of descriptors (in a child process) ------------------------ */

/* Runs in the forked child: no cmocka asserts here (they would longjmp into
 * the child's copy of the runner). Failures are reported as text on `out`
 * and a non-zero exit status. */
#define CHILD_FAIL(...)                                                        \
    do {                                                                       \
        char m_[256];                                                          \
        int n_ = snprintf(m_, sizeof m_, __VA_ARGS__);                         \
        if (n_ > 0)                                                            \
            (void)!write(out, m_,                                              \
                         (size_t)n_ < sizeof m_ ? (size_t)n_ : sizeof m_ - 1); \
        status = 1;                                                            \
        goto done;                                                             \
    } while (0)

#define MAX_DUMMIES 4096

static int emfile_child(int out, const char *addr, int family)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    int dummies[MAX_DUMMIES];
    int ndummies = 0;
    int c1 = -1, c2 = -1;
    int status = 0, rc, port, maxfd = -1;
    struct rlimit rl;
    int64_t t0, elapsed;

    rc = ssock_server_open_addr(&srv, 0, 3000, addr);
    if (rc != 0)
        CHILD_FAIL("open: %s", ssock_err_name(rc));
    port = ssock_server_local_port(srv);
    c1 = th_socket(family); /* before the exhaustion */
    if (c1 < 0)
        CHILD_FAIL("socket: %s", strerror(-c1));

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        CHILD_FAIL("getrlimit: %s", strerror(errno));
    {
        int limit = (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 65536)
                        ? 65536
                        : (int)rl.rlim_cur;
        for (int fd = 0; fd < limit; fd++)
            if (fcntl(fd, F_GETFD) >= 0)
                maxfd = fd;
    }
    rl.rlim_cur = (rlim_t)maxfd + 1 + 16; /* just above current usage */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        CHILD_FAIL("setrlimit(%d): %s", maxfd + 17, strerror(errno));
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != EMFILE)
                CHILD_FAIL("open dummy: %s, want EMFILE", strerror(errno));
            break;
        }
        if (ndummies == MAX_DUMMIES) {
            close(fd);
            CHILD_FAIL("no EMFILE after %d dummies", MAX_DUMMIES);
        }
        dummies[ndummies++] = fd;
    }

    rc = th_connect_fd(c1, th_loopback(family), port, TH_STUCK_MS);
    if (rc != 0)
        CHILD_FAIL("connect: %s", strerror(-rc));
    {
        ssock_socket *acc = SENTINEL_SOCK;
        t0 = th_now_ms();
        rc = ssock_server_accept(srv, &acc);
        elapsed = th_now_ms() - t0;
        if (rc == 0) {
            ssock_socket_free(acc);
            CHILD_FAIL("accept with no descriptor left returned 0");
        }
        if (acc != NULL)
            CHILD_FAIL("accept failed (%s) but *out is not NULL",
                       ssock_err_name(rc));
    }
    if (rc != -EMFILE && rc != -ENFILE)
        CHILD_FAIL("accept with no descriptor left: %s (%d) after %lld ms, "
                   "want -EMFILE",
                   ssock_err_name(rc), rc, (long long)elapsed);
    if (elapsed >= 1000)
        CHILD_FAIL("accept took %lld ms to report EMFILE (timeout 3000)",
                   (long long)elapsed);
    if (ssock_server_last_os_error(srv) != -rc)
        CHILD_FAIL("last_os_error %d, want %d", ssock_server_last_os_error(srv),
                   -rc);
    /* Shed: the pending connection was taken and closed, so the client
     * sees end of stream (or a reset) at once instead of waiting in the
     * backlog. */
    {
        char b;
        ssize_t r = th_recv_some(c1, &b, 1, 1000);
        if (r != 0 && r != -ECONNRESET)
            CHILD_FAIL("the connection pending at EMFILE was not shed: "
                       "client recv %zd, want 0 (end of stream) or "
                       "-ECONNRESET",
                       r);
    }

    /* Free descriptors: the server accepts again. */
    while (ndummies > 0)
        close(dummies[--ndummies]);
    close(c1);
    c1 = -1;
    c2 = th_connect(family, port, TH_STUCK_MS);
    if (c2 < 0)
        CHILD_FAIL("second connect: %s", strerror(-c2));
    rc = ssock_server_accept(srv, &sock);
    if (rc != 0) {
        CHILD_FAIL("accept after freeing descriptors: %s (%d)",
                   ssock_err_name(rc), rc);
    }
    /* The new client, not the shed one. */
    if (ssock_socket_peer_port(sock) != th_local_port(c2))
        CHILD_FAIL("accept after EMFILE returned port %d, want the new "
                   "client's %d",
                   ssock_socket_peer_port(sock), th_local_port(c2));
done:
    while (ndummies > 0)
        close(dummies[--ndummies]);
    ssock_socket_free(sock);
    ssock_server_free(srv);
    if (c1 >= 0)
        close(c1);
    if (c2 >= 0)
        close(c2);
    return status;
}

static void check_emfile(const char *addr, int family)
{
    int pipefd[2];
    pid_t pid;
    int wstatus = 0;
    char msg[300];
    ssize_t n;
    size_t got = 0;

    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int st;
        close(pipefd[0]);
        st = emfile_child(pipefd[1], addr, family);
        close(pipefd[1]);
        _exit(st);
    }
    close(pipefd[1]);
    /* The child finishes in well under a second; 10 s means it is stuck
     * (an accept that spins, say): kill it rather than hang. */
    {
        int64_t deadline = th_now_ms() + 10000;
        for (;;) {
            struct pollfd pfd = {
                .fd = pipefd[0], .events = POLLIN, .revents = 0};
            int64_t left = deadline - th_now_ms();
            int prc;
            if (left <= 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(pipefd[0]);
                fail_msg("EMFILE child (%s) stuck for 10 s; killed", addr);
            }
            prc = poll(&pfd, 1, (int)left);
            if (prc <= 0)
                continue;
            n = read(pipefd[0], msg + got, sizeof msg - 1 - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
            if (got == sizeof msg - 1)
                break;
        }
    }
    msg[got] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (got > 0)
        fail_msg("EMFILE child (%s): %s", addr, msg);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        fail_msg("EMFILE child (%s) ended with status 0x%x", addr, wstatus);
}

static void test_emfile_ipv4(void **state)
{
    (void)state;
    check_emfile("127.0.0.1", AF_INET);
}

static void test_emfile_ipv6(void **state)
{
    (void)state;
    TH_REQUIRE_IPV6();
    check_emfile("::1", AF_INET6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argument_validation),
        cmocka_unit_test(test_null_out_and_opts),
        cmocka_unit_test(test_options_defaults_and_socket_timeouts),
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_ephemeral_port_ipv4),
        cmocka_unit_test(test_ephemeral_port_ipv6),
        cmocka_unit_test(test_any_address_is_dual_stack),
        cmocka_unit_test(test_two_ephemeral_servers_differ),
        cmocka_unit_test(test_addr_in_use_ipv4),
        cmocka_unit_test(test_addr_in_use_ipv6),
        cmocka_unit_test(test_fd_is_pollable),
        cmocka_unit_test(test_accept_timeout_100ms),
        cmocka_unit_test(test_accept_timeout_300ms),
        cmocka_unit_test(test_accept_timeout_ipv6),
        cmocka_unit_test(test_wait_forever_really_waits),
        cmocka_unit_test(test_accept_continues_after_eintr),
        cmocka_unit_test(test_close_wakes_accept_ipv4),
        cmocka_unit_test(test_close_wakes_accept_ipv6),
        cmocka_unit_test(test_close_wakes_accept_with_timeout),
        cmocka_unit_test(test_after_close),
        cmocka_unit_test(test_free_without_close),
        cmocka_unit_test(test_emfile_ipv4),
        cmocka_unit_test(test_emfile_ipv6),
        cmocka_unit_test(test_so_reuseaddr),
        cmocka_unit_test(test_ipv4_fallback_without_ipv6),
        cmocka_unit_test(test_tls_calls_on_plain),
    };
    return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
