/* Races between threads, explored through the system-call seam (issue 8).
 *
 * `test_races` (no argument, or "chaos"): race exploration. Every test opens
 * its servers with the chaos table (tests/chaos.h), which yields or sleeps
 * 0-2 ms around every system call, randomly and seeded, and drives the
 * patterns the threading contract allows from several threads:
 *  - the owner reads/writes/shuts down while another thread closes the
 *    socket (and, in some runs, a third closes the server); the owner frees
 *    the socket right after a call returned SSOCK_ECLOSED; TLS getters run
 *    on another thread during the close;
 *  - the acceptor frees the server right after accept() returned
 *    SSOCK_ECLOSED while the closing thread may still be discarding pending
 *    handshakes.
 * Each run asserts exact statuses, that no call touched a descriptor the
 * library no longer held, and that no descriptor leaked. Many seeds per
 * test, time-bounded: SSOCK_RACES_SECONDS in total (default 20 s natively,
 * 16 s under a sanitizer, 6 s under Valgrind). A failure prints its seed
 * (a crash or a sanitizer report too); SSOCK_RACES_SEED=<seed>
 * SSOCK_RACES_ONLY=<test> replays that seed again and again for the
 * budget (the random streams repeat exactly; the kernel's scheduling does
 * not, so a replay finds it again often, not always).
 *
 * `test_races regress`: deterministic regression tests for issue 8 items 2,
 * 3, 15 and 16 (and item 3's plain twin): a gate in the table holds one
 * chosen system call (close_notify's send, the discarding close, the
 * handshake's recv) until the test has set up the bad interleaving, so it
 * happens on every run.
 */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "chaos.h"
#include "internal.h"
#include "ssock/ssock.h"

#if SSOCK_RACES_TLS
#include "ssock/tls.h"
#include "tls_client.h"
#ifndef SSOCK_CERTS_DIR
#error "SSOCK_CERTS_DIR must name the certs/ directory"
#endif
#define CERT(f) SSOCK_CERTS_DIR "/" f
#endif

/* Backends: 0 = plain, then the TLS ones built. */
#define BE_PLAIN 0
#define BE_MBEDTLS 1
#define BE_OPENSSL 2

/* ---- seeds, budget and failure reports -------------------------------- */

static volatile const char *g_test = "";
static volatile uint64_t g_seed;
static uint64_t g_base_seed;
static int g_fixed_seed; /* SSOCK_RACES_SEED given: replay that seed */
static double g_budget_s;

#define N_CHAOS_TESTS 6

static void say_seed(void)
{
    char buf[256];
    int n;
    if (g_seed == 0) {
        n = snprintf(buf, sizeof buf, "\n[ RACES    ] failing test: %s\n",
                     (const char *)g_test);
        if (n > 0)
            (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : 0);
        return;
    }
    n = snprintf(buf, sizeof buf,
                 "\n[ RACES    ] failing run: test %s seed 0x%016" PRIx64
                 " (replay: SSOCK_RACES_ONLY=%s SSOCK_RACES_SEED=0x%016" PRIx64
                 ")\n",
                 (const char *)g_test, (uint64_t)g_seed, (const char *)g_test,
                 (uint64_t)g_seed);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
}

static void on_fatal(int sig)
{
    say_seed();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Sanitizers call this before they end the process. */
extern void __sanitizer_set_death_callback(void (*cb)(void))
    __attribute__((weak));
/* A data race ends the run at once, so the seed printed is the racing one. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "halt_on_error=1";
}

static uint64_t seed_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Runs of one chaos test: call until it returns 0. */
typedef struct budget {
    int64_t end_ms;
    uint64_t runs;
} budget;

/* cmocka installs its own SIGSEGV (...) handlers around each test, which
 * cannot cope with a crash on another thread: put ours back, so a crash
 * prints the seed and ends the process with the signal. */
static void install_fatal(void)
{
    signal(SIGSEGV, on_fatal);
    signal(SIGBUS, on_fatal);
    signal(SIGABRT, on_fatal);
    signal(SIGILL, on_fatal);
    signal(SIGFPE, on_fatal);
}

static void budget_start(budget *b, const char *test)
{
    install_fatal();
    g_test = test;
    b->runs = 0;
    b->end_ms = th_now_ms() + (int64_t)(g_budget_s * 1000.0 / N_CHAOS_TESTS);
}

/* 1 and the next seed in g_seed while there is time (at least one run). */
static int budget_next(budget *b)
{
    if (b->runs > 0 && th_now_ms() >= b->end_ms)
        return 0;
    /* A fixed seed is replayed again and again: the streams are the same
     * each time, the kernel's scheduling is not. */
    g_seed = g_fixed_seed ? g_base_seed : seed_mix(g_base_seed + b->runs);
    b->runs++;
    chaos_reset();
    chaos_start(g_seed);
    chaos_role(0);
    return 1;
}

#define RACE_FAIL(...)                                                         \
    do {                                                                       \
        say_seed();                                                            \
        fail_msg(__VA_ARGS__);                                                 \
    } while (0)

/* ---- servers --------------------------------------------------------- */

#if SSOCK_RACES_TLS
static ssock_tls_config *g_cfg[3];
static uint8_t g_hello[4096];
static size_t g_hello_len;
#endif
static int g_backends[3];
static int g_nbackends;

static const char *be_name(int be)
{
    switch (be) {
    case BE_MBEDTLS:
        return "mbedtls";
    case BE_OPENSSL:
        return "openssl";
    default:
        return "plain";
    }
}

static ssock_server *open_server(int be, int accept_timeout_ms, int *port)
{
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.port = 0;
    o.accept_timeout_ms = accept_timeout_ms;
    o.read_timeout_ms = 5000;
    o.write_timeout_ms = 2000;
    o.backlog = 64;
#if SSOCK_RACES_TLS
    if (be != BE_PLAIN)
        o.tls = g_cfg[be];
#else
    (void)be;
#endif
    int rc = ssock__server_open_sys(&srv, &o, &chaos_sys);
    if (rc != 0)
        RACE_FAIL("server open (%s): %s", be_name(be), ssock_err_name(rc));
    *port = ssock_server_local_port(srv);
    return srv;
}

/* A connected pair: server `srv`, accepted socket `s`, client. */
typedef struct pair {
    ssock_server *srv;
    ssock_socket *s;
    int port;
    int be;
    int cfd; /* plain client */
#if SSOCK_RACES_TLS
    tc_conn tc; /* TLS client */
    int tc_rc;
#endif
    int sfd; /* the accepted descriptor, as the table saw it */
} pair;

#if SSOCK_RACES_TLS
static void *client_handshake(void *arg)
{
    pair *p = arg;
    tc_opts o;
    tc_opts_init(&o);
    o.sni = "localhost";
    chaos_role(7);
    p->tc_rc = tc_open(&p->tc, p->port, &o, TH_STUCK_MS);
    if (p->tc_rc == TC_OK)
        p->tc_rc = tc_handshake(&p->tc, TH_STUCK_MS);
    return NULL;
}
#endif

/* Open a server and a connected pair; the client has sent `presend` bytes
 * of pattern 1 (the owner reads them) and reads nothing. */
static void pair_open(pair *p, int be, size_t presend)
{
    static uint8_t data[16384];
    memset(p, 0, sizeof *p);
    p->be = be;
    p->cfd = -1;
    p->srv = open_server(be, TH_STUCK_MS, &p->port);
    th_fill(data, sizeof data, 1, 0);
    if (presend > sizeof data)
        presend = sizeof data;
    if (be == BE_PLAIN) {
        p->cfd = th_connect(AF_INET, p->port, TH_STUCK_MS);
        if (p->cfd < 0)
            RACE_FAIL("connect: %s", strerror(-p->cfd));
        int rc = ssock_server_accept(p->srv, &p->s);
        if (rc != 0)
            RACE_FAIL("accept: %s", ssock_err_name(rc));
        if (presend > 0 && th_send_all(p->cfd, data, presend) != 0)
            RACE_FAIL("client send");
    }
#if SSOCK_RACES_TLS
    else {
        th_thread t;
        p->tc.fd = -1;
        assert_int_equal(th_thread_start(&t, client_handshake, p), 0);
        int rc = ssock_server_accept(p->srv, &p->s);
        if (!th_thread_join(&t, TH_STUCK_MS))
            RACE_FAIL("TLS client stuck");
        if (rc != 0 || p->tc_rc != TC_OK)
            RACE_FAIL("TLS accept: %s, client %d: %s", ssock_err_name(rc),
                      p->tc_rc, p->tc.err);
        if (presend > 0 &&
            tc_write_all(&p->tc, data, presend, TH_STUCK_MS) != TC_OK)
            RACE_FAIL("TLS client write: %s", p->tc.err);
    }
#endif
    p->sfd = ssock_socket_fd(p->s);
}

static void pair_client_close(pair *p)
{
    if (p->cfd >= 0)
        close(p->cfd);
    p->cfd = -1;
#if SSOCK_RACES_TLS
    if (p->be != BE_PLAIN)
        tc_close(&p->tc);
#endif
}

static void check_table(const char *what)
{
    long stale = chaos_stale_calls();
    if (stale != 0) {
        long first = chaos_first_stale();
        RACE_FAIL("%s: %ld system call(s) on a descriptor the library no "
                  "longer held (first: call %ld on fd %ld)",
                  what, stale, first >> 16, first & 0xffff);
    }
}

static void check_fds(int before, const char *what)
{
    int after = chaos_fd_count();
    if (after != before)
        RACE_FAIL("%s: %d descriptors before, %d after", what, before, after);
}

/* ---- chaos: I/O against a socket close (and a server close) ----------- */

typedef struct io_race {
    pair *p;
    int with_getters;
    int with_srv_close;
    int close_delay_us;
    int srv_close_delay_us;
    int owner_ops;
    /* the expected TLS facts */
    char version[32];
    char cipher[128];
    /* results (read by the main thread after the joins) */
    int bad_rc;        /* first unexpected status */
    char bad_what[64]; /* ... of which call */
    int close_rc;      /* the closing thread's */
    int srv_close_rc;  /* the server-closing thread's */
    int getters_bad;   /* getters that answered something else */
    atomic_int closed; /* the close returned */
    int owner_freed;
} io_race;

static void note_bad(io_race *r, const char *what, int rc)
{
    if (r->bad_what[0] == '\0') {
        r->bad_rc = rc;
        snprintf(r->bad_what, sizeof r->bad_what, "%s", what);
    }
}

static void delay_us(int us)
{
    if (us <= 0)
        return;
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A status a call may end with when the socket (or its server) is closed
 * under it: the close's code. */
static int dead_ok(const io_race *r, int rc)
{
    return rc == SSOCK_ECLOSED ||
           (r->with_srv_close && rc == SSOCK_ESERVERCLOSED);
}

static void *owner_main(void *arg)
{
    io_race *r = arg;
    ssock_socket *s = r->p->s;
    uint8_t buf[1024];
    int dead = 0, shut = 0;
    chaos_role(1);
    for (int i = 0; !dead; i++) {
        int op = (int)(chaos_rand() % 8);
        int rc;
        size_t n = 0;
        if (i >= r->owner_ops || shut)
            op = 0; /* then read until the close ends it */
        if (op <= 3) {
            rc = ssock_socket_read(s, buf, 1 + chaos_rand() % sizeof buf, &n);
            if (rc == 0 && n == 0)
                note_bad(r, "read: 0 bytes", rc);
            else if (rc != 0 && !dead_ok(r, rc))
                note_bad(r, "read", rc);
        } else if (op <= 5) {
            th_fill(buf, 256, 2, 0);
            rc = ssock_socket_write(s, buf, 1 + chaos_rand() % 256, &n);
            if (rc != 0 && !dead_ok(r, rc))
                note_bad(r, "write", rc);
        } else if (op == 6) {
            size_t pend = ssock_socket_pending(s);
            rc = 0;
            if (r->p->be == BE_PLAIN && pend != 0)
                note_bad(r, "pending on a plain socket", (int)pend);
        } else {
            rc = ssock_socket_shutdown_write(s);
            if (rc != 0 && !dead_ok(r, rc))
                note_bad(r, "shutdown_write", rc);
            shut = 1;
        }
        if (rc == SSOCK_ECLOSED)
            dead = 1;
        if (rc == SSOCK_ESERVERCLOSED && !atomic_load(&r->closed)) {
            /* Server closed but the socket not yet: keep going until the
             * socket close says so (reads fail at once meanwhile). */
            delay_us(100);
        }
    }
    /* Right after a call said SSOCK_ECLOSED: the close may still run. */
    if (r->with_getters) {
        /* ... but the getters' thread must end before the handle goes. */
        while (!atomic_load(&r->closed))
            delay_us(50);
        return NULL;
    }
    ssock_socket_free(s);
    r->owner_freed = 1;
    return NULL;
}

static void *closer_main(void *arg)
{
    io_race *r = arg;
    chaos_role(2);
    delay_us(r->close_delay_us);
    r->close_rc = ssock_socket_close(r->p->s);
    atomic_store(&r->closed, 1);
    return NULL;
}

static void *srv_closer_main(void *arg)
{
    io_race *r = arg;
    chaos_role(3);
    delay_us(r->srv_close_delay_us);
    r->srv_close_rc = ssock_server_close(r->p->srv);
    return NULL;
}

#if SSOCK_RACES_TLS
static int same(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

static void *getters_main(void *arg)
{
    io_race *r = arg;
    ssock_socket *s = r->p->s;
    chaos_role(4);
    int after = 0;
    /* Until a few rounds after the close returned. */
    while (after < 20) {
        if (atomic_load(&r->closed))
            after++;
        if (!same(ssock_socket_tls_version(s), r->version) ||
            !same(ssock_socket_tls_cipher(s), r->cipher) ||
            ssock_socket_tls_alpn(s) != NULL ||
            !same(ssock_socket_tls_sni(s), "localhost") ||
            ssock_socket_tls_peer_subject(s) != NULL)
            r->getters_bad++;
        sched_yield();
    }
    return NULL;
}
#endif

static void io_race_run(int be)
{
    pair p;
    io_race r;
    th_thread owner, closer, srv_closer, getters;
    int fds = chaos_fd_count();

    memset(&r, 0, sizeof r);
    /* The pair is set up calmly; the races run under chaos. */
    chaos_stop();
    pair_open(&p, be, 2048);
    r.p = &p;
    r.owner_ops = (int)(chaos_rand() % 12);
    r.close_delay_us = (int)(chaos_rand() % 3000);
    r.with_srv_close = chaos_rand() % 3 == 0;
    r.srv_close_delay_us = (int)(chaos_rand() % 3000);
#if SSOCK_RACES_TLS
    if (be != BE_PLAIN) {
        r.with_getters = chaos_rand() % 2 == 0;
        snprintf(r.version, sizeof r.version, "%s",
                 ssock_socket_tls_version(p.s));
        snprintf(r.cipher, sizeof r.cipher, "%s", ssock_socket_tls_cipher(p.s));
    }
#endif
    chaos_start(g_seed);

    assert_int_equal(th_thread_start(&owner, owner_main, &r), 0);
    assert_int_equal(th_thread_start(&closer, closer_main, &r), 0);
    if (r.with_srv_close)
        assert_int_equal(th_thread_start(&srv_closer, srv_closer_main, &r), 0);
#if SSOCK_RACES_TLS
    if (r.with_getters)
        assert_int_equal(th_thread_start(&getters, getters_main, &r), 0);
#else
    (void)getters;
#endif
    int ok = th_thread_join(&owner, TH_STUCK_MS * 2);
    ok &= th_thread_join(&closer, TH_STUCK_MS * 2);
    if (r.with_srv_close)
        ok &= th_thread_join(&srv_closer, TH_STUCK_MS * 2);
#if SSOCK_RACES_TLS
    if (r.with_getters)
        ok &= th_thread_join(&getters, TH_STUCK_MS * 2);
#endif
    chaos_stop();
    if (!ok)
        RACE_FAIL("%s: a thread is stuck (owner, close or server close)",
                  be_name(be));
    if (!r.owner_freed)
        ssock_socket_free(p.s);
    if (r.bad_what[0] != '\0')
        RACE_FAIL("%s: %s returned %s (%d)", be_name(be), r.bad_what,
                  ssock_err_name(r.bad_rc), r.bad_rc);
    if (r.close_rc != 0)
        RACE_FAIL("%s: the only socket close returned %s", be_name(be),
                  ssock_err_name(r.close_rc));
    if (r.with_srv_close && r.srv_close_rc != 0)
        RACE_FAIL("%s: the only server close returned %s", be_name(be),
                  ssock_err_name(r.srv_close_rc));
    if (r.getters_bad != 0)
        RACE_FAIL("%s: %d getter rounds answered other than the handshake's "
                  "facts during/after the close",
                  be_name(be), r.getters_bad);
    ssock_server_free(p.srv);
    pair_client_close(&p);
    check_table(be_name(be));
    check_fds(fds, be_name(be));
}

static void chaos_io_vs_close(void **state, int be, const char *name)
{
    budget b;
    (void)state;
    budget_start(&b, name);
    while (budget_next(&b))
        io_race_run(be);
    print_message("[ RACES    ] %s: %" PRIu64 " seeds\n", name, b.runs);
}

static void test_chaos_plain_io_vs_close(void **state)
{
    chaos_io_vs_close(state, BE_PLAIN, "chaos_plain_io_vs_close");
}

static int have_backend(int be)
{
    for (int i = 0; i < g_nbackends; i++)
        if (g_backends[i] == be)
            return 1;
    return 0;
}

static void require_backend(int be)
{
    if (!have_backend(be))
        TH_SKIP("TLS backend %s not built", be_name(be));
}

static void test_chaos_mbedtls_io_vs_close(void **state)
{
    require_backend(BE_MBEDTLS);
    chaos_io_vs_close(state, BE_MBEDTLS, "chaos_mbedtls_io_vs_close");
}

static void test_chaos_openssl_io_vs_close(void **state)
{
    require_backend(BE_OPENSSL);
    chaos_io_vs_close(state, BE_OPENSSL, "chaos_openssl_io_vs_close");
}

/* ---- chaos: accept against a server close, acceptor frees ------------- */

typedef struct acc_race {
    ssock_server *srv;
    int close_delay_us;
    ssock_socket *kept[16];
    int n_kept;
    int bad_rc;
    int n_bad;
    int close_rc;
    int accepted;
    int freed; /* the acceptor freed the server */
} acc_race;

static void *acceptor_main(void *arg)
{
    acc_race *r = arg;
    chaos_role(1);
    for (;;) {
        ssock_socket *s = NULL;
        int rc = ssock_server_accept(r->srv, &s);
        if (rc == 0) {
            r->accepted++;
            if (s == NULL) {
                r->bad_rc = 1;
                r->n_bad++;
            } else if (r->n_kept < 16 && chaos_rand() % 2 == 0) {
                r->kept[r->n_kept++] = s; /* freed after the server */
            } else {
                ssock_socket_free(s);
            }
            continue;
        }
        if (s != NULL)
            r->n_bad++;
        if (rc == SSOCK_ETIMEOUT)
            continue;
        if (rc == SSOCK_ECLOSED) {
            /* At once, while the close may still be discarding. */
            ssock_server_free(r->srv);
            r->freed = 1;
            break;
        }
        r->bad_rc = rc;
        r->n_bad++;
        break;
    }
    for (int i = 0; i < r->n_kept; i++)
        ssock_socket_free(r->kept[i]);
    return NULL;
}

static void *srv_close_main(void *arg)
{
    acc_race *r = arg;
    chaos_role(2);
    delay_us(r->close_delay_us);
    r->close_rc = ssock_server_close(r->srv);
    return NULL;
}

static void acc_race_run(int be)
{
    acc_race r;
    int cfd[12];
    int ncli, port;
    th_thread acc, closer;
    int fds = chaos_fd_count();

    memset(&r, 0, sizeof r);
    chaos_stop();
    r.srv = open_server(be, 5 + (int)(chaos_rand() % 20), &port);
    ncli = (int)(chaos_rand() % 13);
    r.close_delay_us = (int)(chaos_rand() % 5000);
    for (int i = 0; i < ncli; i++) {
        cfd[i] = th_connect(AF_INET, port, TH_STUCK_MS);
        if (cfd[i] < 0)
            RACE_FAIL("connect: %s", strerror(-cfd[i]));
#if SSOCK_RACES_TLS
        if (be != BE_PLAIN) {
            /* Nothing, half a ClientHello, or all of it (the server's
             * flight goes out, then it waits for the client's). */
            size_t n = (size_t)(chaos_rand() % 3) * g_hello_len / 2;
            if (n > 0 && th_send_all(cfd[i], g_hello, n) != 0)
                RACE_FAIL("client send");
        }
#endif
    }
    chaos_start(g_seed);
    assert_int_equal(th_thread_start(&acc, acceptor_main, &r), 0);
    assert_int_equal(th_thread_start(&closer, srv_close_main, &r), 0);
    int ok = th_thread_join(&acc, TH_STUCK_MS * 2);
    ok &= th_thread_join(&closer, TH_STUCK_MS * 2);
    chaos_stop();
    if (!ok)
        RACE_FAIL("%s: acceptor or server close stuck", be_name(be));
    for (int i = 0; i < ncli; i++)
        close(cfd[i]);
    if (r.n_bad != 0)
        RACE_FAIL("%s: accept: %d unexpected results (last %s)", be_name(be),
                  r.n_bad, ssock_err_name(r.bad_rc));
    if (r.close_rc != 0)
        RACE_FAIL("%s: the only server close returned %s", be_name(be),
                  ssock_err_name(r.close_rc));
    if (!r.freed)
        RACE_FAIL("%s: accept never returned SSOCK_ECLOSED", be_name(be));
    if (be != BE_PLAIN && r.accepted != 0)
        RACE_FAIL("%s: accept returned a socket no client finished",
                  be_name(be));
    check_table(be_name(be));
    check_fds(fds, be_name(be));
}

static void chaos_accept_vs_close(int be, const char *name)
{
    budget b;
    budget_start(&b, name);
    while (budget_next(&b))
        acc_race_run(be);
    print_message("[ RACES    ] %s: %" PRIu64 " seeds\n", name, b.runs);
}

static void test_chaos_plain_accept_vs_close(void **state)
{
    (void)state;
    chaos_accept_vs_close(BE_PLAIN, "chaos_plain_accept_vs_close");
}

static void test_chaos_mbedtls_accept_vs_close(void **state)
{
    (void)state;
    require_backend(BE_MBEDTLS);
    chaos_accept_vs_close(BE_MBEDTLS, "chaos_mbedtls_accept_vs_close");
}

static void test_chaos_openssl_accept_vs_close(void **state)
{
    (void)state;
    require_backend(BE_OPENSSL);
    chaos_accept_vs_close(BE_OPENSSL, "chaos_openssl_accept_vs_close");
}

/* ---- deterministic regressions (issue 8) ------------------------------ */

typedef struct call_arg {
    ssock_socket *s;
    ssock_server *srv;
    int rc;
} call_arg;

static int do_socket_close(void *arg)
{
    call_arg *a = arg;
    return ssock_socket_close(a->s);
}

static int do_socket_free(void *arg)
{
    call_arg *a = arg;
    ssock_socket_free(a->s);
    return 0;
}

static int do_server_close(void *arg)
{
    call_arg *a = arg;
    return ssock_server_close(a->srv);
}

/* Item 3: another thread's close is inside its goodbye (TLS close_notify's
 * send; for plain sockets, the descriptor's close); the owner's read
 * returns SSOCK_ECLOSED at once and the owner frees the socket. Free may
 * return at once (hand-off) or wait, but the session, the handle and the
 * descriptor must stay the closing thread's until it is done: its held
 * send must still find the descriptor open (the table checks that after
 * the gate), and ASan/Valgrind see any use after free. */
static void free_during_close(int be)
{
    pair p;
    th_call closer, freer;
    call_arg a;
    uint8_t buf[64];
    size_t n = 99;

    install_fatal();
    chaos_reset();
    g_seed = 0;
    g_test = "regress_free_during_close";
    int fds = chaos_fd_count();
    pair_open(&p, be, 0);
    a.s = p.s;
    chaos_gate_arm(be == BE_PLAIN ? CH_CLOSE : CH_SEND, p.sfd);
    assert_int_equal(th_call_start(&closer, do_socket_close, &a), 0);
    if (!chaos_gate_reached(TH_STUCK_MS)) {
        chaos_gate_release();
        fail_msg("%s: the close never reached its %s", be_name(be),
                 be == BE_PLAIN ? "close()" : "close_notify send()");
    }
    int read_rc = ssock_socket_read(p.s, buf, sizeof buf, &n);
    assert_int_equal(th_call_start(&freer, do_socket_free, &a), 0);
    /* Free may hand the handle over and return, or wait. */
    int free_early = th_call_wait(&freer, 200);
    chaos_gate_release();
    int close_done = th_call_wait(&closer, TH_STUCK_MS);
    int free_done = free_early || th_call_wait(&freer, TH_STUCK_MS);
    if (!close_done || !free_done)
        fail_msg("%s: close (%d) or free (%d) stuck after the release",
                 be_name(be), close_done, free_done);
    pair_client_close(&p);
    ssock_server_free(p.srv);
    print_message("[ regress  ] %s: read %s, free returned %s the close\n",
                  be_name(be), ssock_err_name(read_rc),
                  free_early ? "BEFORE" : "after");
    assert_int_equal(read_rc, SSOCK_ECLOSED);
    assert_int_equal(n, 0);
    assert_int_equal(closer.rc, 0);
    check_table(be_name(be));
    check_fds(fds, be_name(be));
}

static void test_regress_free_during_close_plain(void **state)
{
    (void)state;
    free_during_close(BE_PLAIN);
}

static void test_regress_free_during_close_mbedtls(void **state)
{
    (void)state;
    require_backend(BE_MBEDTLS);
    free_during_close(BE_MBEDTLS);
}

static void test_regress_free_during_close_openssl(void **state)
{
    (void)state;
    require_backend(BE_OPENSSL);
    free_during_close(BE_OPENSSL);
}

typedef struct tid_arg {
    ssock_socket *s;
    atomic_int tid;
} tid_arg;

static int do_socket_close_tid(void *arg)
{
    tid_arg *a = arg;
    atomic_store(&a->tid, (int)syscall(SYS_gettid));
    return ssock_socket_close(a->s);
}

/* State letter of one of our threads (/proc/self/task/<tid>/stat), or 0. */
static char thread_state(int tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : 0;
}

/* Found by the chaos test (seed 0x77b23e3b393bfa96 on the work tree of
 * 29 Nov): a close whose last step (releasing the descriptor) is still
 * running when the owner, whose read returned SSOCK_ECLOSED, frees the
 * socket. Here the releasing close waits for the server's lock, held by a
 * server close that is itself held in its shutdown() of this socket; the
 * free must not take the handle away from either of them. */
static void test_regress_free_while_close_releases(void **state)
{
    pair p;
    th_call srv_closer, closer, freer;
    call_arg a;
    tid_arg t;
    uint8_t buf[64];
    size_t n = 99;

    (void)state;
    install_fatal();
    chaos_reset();
    g_seed = 0;
    g_test = "regress_free_while_close_releases";
    int fds = chaos_fd_count();
    pair_open(&p, BE_PLAIN, 0);
    a.s = p.s;
    a.srv = p.srv;
    t.s = p.s;
    atomic_init(&t.tid, 0);
    chaos_gate_arm(CH_SHUTDOWN, p.sfd);
    assert_int_equal(th_call_start(&srv_closer, do_server_close, &a), 0);
    if (!chaos_gate_reached(TH_STUCK_MS)) {
        chaos_gate_release();
        fail_msg("the server close never shut the socket down");
    }
    assert_int_equal(th_call_start(&closer, do_socket_close_tid, &t), 0);
    /* Wait until the close blocks (on the server's lock) or ends. */
    int64_t end = th_now_ms() + TH_STUCK_MS;
    int blocked = 0;
    while (th_now_ms() < end && !blocked) {
        int tid = atomic_load(&t.tid);
        if (tid != 0 && thread_state(tid) == 'S')
            blocked = 1;
        else if (th_call_wait(&closer, 1))
            break;
    }
    int read_rc = ssock_socket_read(p.s, buf, sizeof buf, &n);
    assert_int_equal(th_call_start(&freer, do_socket_free, &a), 0);
    int free_early = th_call_wait(&freer, 100);
    chaos_gate_release();
    int ok = th_call_wait(&srv_closer, TH_STUCK_MS);
    ok &= th_call_wait(&closer, TH_STUCK_MS);
    ok &= free_early || th_call_wait(&freer, TH_STUCK_MS);
    if (!ok)
        fail_msg("server close, socket close or free stuck");
    pair_client_close(&p);
    ssock_server_free(p.srv);
    print_message("[ regress  ] close %s while the server close held the "
                  "lock; read %s; free returned %s\n",
                  blocked ? "blocked" : "did not block",
                  ssock_err_name(read_rc), free_early ? "at once" : "later");
    assert_int_equal(read_rc, SSOCK_ECLOSED);
    assert_int_equal(srv_closer.rc, 0);
    assert_int_equal(closer.rc, 0);
    check_table("plain");
    check_fds(fds, "plain");
}

#if SSOCK_RACES_TLS
static int do_accept_then_free(void *arg)
{
    call_arg *a = arg;
    ssock_socket *s = NULL;
    a->rc = ssock_server_accept(a->srv, &s);
    if (s != NULL)
        ssock_socket_free(s);
    if (a->rc == SSOCK_ECLOSED)
        ssock_server_free(a->srv); /* the README's pattern */
    return a->rc;
}

static int wait_in_flight(ssock_server *srv, uint64_t n)
{
    int64_t end = th_now_ms() + TH_STUCK_MS;
    ssock_tls_stats st;
    do {
        if (ssock_server_tls_stats(srv, &st) == 0 && st.in_flight == n)
            return 1;
        th_sleep_ms(2);
    } while (th_now_ms() < end);
    return 0;
}
#endif

/* Item 2: thread B closes the server while thread A is in accept() with
 * handshakes pending; B is held while it discards the first one; A gets
 * SSOCK_ECLOSED and frees the server. Nothing may be freed under B, and
 * nothing discarded twice. */
static void server_free_during_close(int be)
{
#if SSOCK_RACES_TLS
    th_call acc, closer;
    call_arg a;
    int port, cfd[2];

    install_fatal();
    chaos_reset();
    g_seed = 0;
    g_test = "regress_server_free_during_close";
    int fds = chaos_fd_count();
    memset(&a, 0, sizeof a);
    a.srv = open_server(be, 10000, &port);
    assert_int_equal(th_call_start(&acc, do_accept_then_free, &a), 0);
    for (int i = 0; i < 2; i++) {
        cfd[i] = th_connect(AF_INET, port, TH_STUCK_MS);
        assert_true(cfd[i] >= 0);
        assert_int_equal(th_send_all(cfd[i], g_hello, g_hello_len / 2), 0);
    }
    if (!wait_in_flight(a.srv, 2))
        fail_msg("%s: the two handshakes never became pending", be_name(be));
    int hs_fd = chaos_accepted_fd(0);
    assert_true(hs_fd >= 0);
    chaos_gate_arm(CH_CLOSE, hs_fd);
    assert_int_equal(th_call_start(&closer, do_server_close, &a), 0);
    if (!chaos_gate_reached(TH_STUCK_MS)) {
        chaos_gate_release();
        fail_msg("%s: the server close never discarded the handshake",
                 be_name(be));
    }
    /* B is held inside the discard; A has left accept() (close waited for
     * it) and frees the server now. */
    int acc_early = th_call_wait(&acc, 200);
    chaos_gate_release();
    int ok = th_call_wait(&closer, TH_STUCK_MS);
    ok &= acc_early || th_call_wait(&acc, TH_STUCK_MS);
    for (int i = 0; i < 2; i++)
        close(cfd[i]);
    if (!ok)
        fail_msg("%s: accept+free or close stuck", be_name(be));
    print_message("[ regress  ] %s: accept %s; its free returned %s the "
                  "close\n",
                  be_name(be), ssock_err_name(acc.rc),
                  acc_early ? "before" : "after");
    assert_int_equal(acc.rc, SSOCK_ECLOSED);
    assert_int_equal(closer.rc, 0);
    check_table(be_name(be));
    check_fds(fds, be_name(be));
#else
    (void)be;
#endif
}

static void test_regress_server_free_during_close_mbedtls(void **state)
{
    (void)state;
    require_backend(BE_MBEDTLS);
    server_free_during_close(BE_MBEDTLS);
}

static void test_regress_server_free_during_close_openssl(void **state)
{
    (void)state;
    require_backend(BE_OPENSSL);
    server_free_during_close(BE_OPENSSL);
}

#if SSOCK_RACES_TLS
static int do_accept(void *arg)
{
    call_arg *a = arg;
    ssock_socket *s = NULL;
    int rc = ssock_server_accept(a->srv, &s);
    a->s = s;
    return rc;
}
#endif

/* Item 15: the server is closed while accept() is inside a handshake step
 * (held in the handshake's recv) and the accept timeout passes meanwhile:
 * accept() must say SSOCK_ECLOSED, not SSOCK_ETIMEOUT. */
static void close_during_step(int be)
{
#if SSOCK_RACES_TLS
    th_call acc, closer;
    call_arg a;
    int port;
    const int timeout_ms = 300;

    install_fatal();
    chaos_reset();
    g_seed = 0;
    g_test = "regress_close_during_step";
    int fds = chaos_fd_count();
    memset(&a, 0, sizeof a);
    a.srv = open_server(be, timeout_ms, &port);
    chaos_gate_arm(CH_RECV, -1);
    assert_int_equal(th_call_start(&acc, do_accept, &a), 0);
    int cfd = th_connect(AF_INET, port, TH_STUCK_MS);
    assert_true(cfd >= 0);
    assert_int_equal(th_send_all(cfd, g_hello, g_hello_len), 0);
    if (!chaos_gate_reached(TH_STUCK_MS)) {
        chaos_gate_release();
        fail_msg("%s: the handshake never read", be_name(be));
    }
    assert_int_equal(th_call_start(&closer, do_server_close, &a), 0);
    int64_t end = th_now_ms() + TH_STUCK_MS;
    while (ssock_server_fd(a.srv) != -1 && th_now_ms() < end)
        th_sleep_ms(1);
    int closed = ssock_server_fd(a.srv) == -1;
    /* Let the accept timeout pass inside the step. */
    int64_t past = acc.start_us / 1000 + timeout_ms + 50;
    while (th_now_ms() < past)
        th_sleep_ms(5);
    chaos_gate_release();
    int ok = th_call_wait(&acc, TH_STUCK_MS);
    ok &= th_call_wait(&closer, TH_STUCK_MS);
    close(cfd);
    if (!ok)
        fail_msg("%s: accept or close stuck", be_name(be));
    if (a.s != NULL)
        ssock_socket_free(a.s);
    ssock_server_free(a.srv);
    print_message("[ regress  ] %s: accept returned %s\n", be_name(be),
                  ssock_err_name(acc.rc));
    assert_true(closed);
    assert_int_equal(acc.rc, SSOCK_ECLOSED);
    assert_int_equal(closer.rc, 0);
    check_table(be_name(be));
    check_fds(fds, be_name(be));
#else
    (void)be;
#endif
}

static void test_regress_close_during_step_mbedtls(void **state)
{
    (void)state;
    require_backend(BE_MBEDTLS);
    close_during_step(BE_MBEDTLS);
}

static void test_regress_close_during_step_openssl(void **state)
{
    (void)state;
    require_backend(BE_OPENSSL);
    close_during_step(BE_OPENSSL);
}

/* Item 16: TLS getters on one thread while another thread's close sends
 * close_notify (held) and then releases the session. They answer the
 * handshake's facts throughout, and (under TSan) without a data race. */
static void getters_during_close(int be)
{
#if SSOCK_RACES_TLS
    pair p;
    io_race r;
    th_thread getters;
    th_call closer;
    call_arg a;

    install_fatal();
    chaos_reset();
    g_seed = 0;
    g_test = "regress_getters_during_close";
    int fds = chaos_fd_count();
    pair_open(&p, be, 0);
    memset(&r, 0, sizeof r);
    r.p = &p;
    snprintf(r.version, sizeof r.version, "%s", ssock_socket_tls_version(p.s));
    snprintf(r.cipher, sizeof r.cipher, "%s", ssock_socket_tls_cipher(p.s));
    assert_int_not_equal(r.version[0], '\0');
    a.s = p.s;
    chaos_gate_arm(CH_SEND, p.sfd);
    assert_int_equal(th_call_start(&closer, do_socket_close, &a), 0);
    int reached = chaos_gate_reached(TH_STUCK_MS);
    assert_int_equal(th_thread_start(&getters, getters_main, &r), 0);
    th_sleep_ms(20);
    chaos_gate_release();
    int ok = th_call_wait(&closer, TH_STUCK_MS);
    if (ok)
        atomic_store(&r.closed, 1);
    ok &= th_thread_join(&getters, TH_STUCK_MS);
    if (!ok)
        fail_msg("%s: close or getters stuck", be_name(be));
    ssock_socket_free(p.s);
    ssock_server_free(p.srv);
    pair_client_close(&p);
    assert_true(reached);
    assert_int_equal(closer.rc, 0);
    assert_int_equal(r.getters_bad, 0);
    check_table(be_name(be));
    check_fds(fds, be_name(be));
#else
    (void)be;
#endif
}

static void test_regress_getters_during_close_mbedtls(void **state)
{
    (void)state;
    require_backend(BE_MBEDTLS);
    getters_during_close(BE_MBEDTLS);
}

static void test_regress_getters_during_close_openssl(void **state)
{
    (void)state;
    require_backend(BE_OPENSSL);
    getters_during_close(BE_OPENSSL);
}

/* ---- set-up ------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    th_sigpipe_default();
    if (__sanitizer_set_death_callback != NULL)
        __sanitizer_set_death_callback(say_seed);

    const char *secs = getenv("SSOCK_RACES_SECONDS");
    switch (th_slow_mode()) {
    case 1:
        g_budget_s = 6;
        break;
    case 2:
        g_budget_s = 16;
        break;
    default:
        g_budget_s = 20;
    }
    if (secs != NULL && *secs != '\0')
        g_budget_s = atof(secs);
    const char *seed = getenv("SSOCK_RACES_SEED");
    if (seed != NULL && *seed != '\0') {
        g_base_seed = strtoull(seed, NULL, 0);
        g_fixed_seed = 1;
    } else {
        g_base_seed = seed_mix((uint64_t)th_now_us() ^ (uint64_t)getpid());
    }

    g_backends[g_nbackends++] = BE_PLAIN;
#if SSOCK_RACES_TLS
    static const int ids[3] = {0, SSOCK_TLS_BACKEND_MBEDTLS,
                               SSOCK_TLS_BACKEND_OPENSSL};
    for (int be = BE_MBEDTLS; be <= BE_OPENSSL; be++) {
        ssock_tls_options t;
        char err[SSOCK_TLS_ERRBUF_SIZE];
        if (!ssock_tls_backend_available(ids[be]))
            continue;
        ssock_tls_options_init(&t);
        t.backend = ids[be];
        t.cert_file = CERT("server-ecdsa.pem");
        t.key_file = CERT("server-ecdsa.key");
        t.min_version = SSOCK_TLS_VERSION_1_2;
        int rc = ssock_tls_config_new(&g_cfg[be], &t, err, sizeof err);
        if (rc != 0) {
            print_message("ssock_tls_config_new(%s): %s: %s\n", be_name(be),
                          ssock_err_name(rc), err);
            return -1;
        }
        g_backends[g_nbackends++] = be;
    }
    tc_opts o;
    tc_opts_init(&o);
    o.sni = "localhost";
    if (tc_client_hello(&o, g_hello, sizeof g_hello, &g_hello_len) != TC_OK)
        return -1;
#endif
    print_message("[ RACES    ] base seed 0x%016" PRIx64 "%s, %.1f s of "
                  "chaos in all\n",
                  g_base_seed, g_fixed_seed ? " (fixed)" : "", g_budget_s);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
#if SSOCK_RACES_TLS
    for (int be = BE_MBEDTLS; be <= BE_OPENSSL; be++)
        ssock_tls_config_free(g_cfg[be]);
#endif
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest chaos_tests[N_CHAOS_TESTS] = {
        cmocka_unit_test(test_chaos_plain_io_vs_close),
        cmocka_unit_test(test_chaos_mbedtls_io_vs_close),
        cmocka_unit_test(test_chaos_openssl_io_vs_close),
        cmocka_unit_test(test_chaos_plain_accept_vs_close),
        cmocka_unit_test(test_chaos_mbedtls_accept_vs_close),
        cmocka_unit_test(test_chaos_openssl_accept_vs_close),
    };
    const struct CMUnitTest regress_tests[] = {
        cmocka_unit_test(test_regress_free_during_close_plain),
        cmocka_unit_test(test_regress_free_during_close_mbedtls),
        cmocka_unit_test(test_regress_free_during_close_openssl),
        cmocka_unit_test(test_regress_free_while_close_releases),
        cmocka_unit_test(test_regress_server_free_during_close_mbedtls),
        cmocka_unit_test(test_regress_server_free_during_close_openssl),
        cmocka_unit_test(test_regress_close_during_step_mbedtls),
        cmocka_unit_test(test_regress_close_during_step_openssl),
        cmocka_unit_test(test_regress_getters_during_close_mbedtls),
        cmocka_unit_test(test_regress_getters_during_close_openssl),
    };
    const char *only = getenv("SSOCK_RACES_ONLY");
    if (only != NULL && *only != '\0') {
        static char filter[128];
        snprintf(filter, sizeof filter, "test_%s", only);
        cmocka_set_test_filter(filter);
    }
    if (argc > 1 && strcmp(argv[1], "regress") == 0)
        return cmocka_run_group_tests_name("race_regressions", regress_tests,
                                           group_setup, group_teardown);
    return cmocka_run_group_tests_name("races", chaos_tests, group_setup,
                                       group_teardown);
}
