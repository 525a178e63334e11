/* Server and accepted sockets together: a closed server fails its sockets,
 * closes wake blocked threads, handles are closed and freed in every order.
 * Meant to be run under Valgrind and TSan too. */
#include "helpers.h"

#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_WRITE ((size_t)64 << 20)

/* A server with several accepted sockets. */
#define MAX_CONNS 4
struct multi {
    ssock_server *srv;
    ssock_socket *sock[MAX_CONNS];
    int cfd[MAX_CONNS];
    int n;
};

static void multi_open(struct multi *m, int n)
{
    ssock_server_options o;

    memset(m, 0, sizeof *m);
    m->n = n;
    ssock_server_options_init(&o);
    o.accept_timeout_ms = TH_STUCK_MS;
    o.addr = "127.0.0.1";
    th_spy_reset();
    assert_int_equal(ssock__server_open_sys(&m->srv, &o, th_spy_sys()), 0);
    for (int i = 0; i < n; i++) {
        m->cfd[i] =
            th_connect(AF_INET, ssock_server_local_port(m->srv), TH_STUCK_MS);
        assert_true(m->cfd[i] >= 0);
        assert_int_equal(ssock_server_accept(m->srv, &m->sock[i]), 0);
    }
}

static void multi_free(struct multi *m)
{
    for (int i = 0; i < m->n; i++) {
        ssock_socket_free(m->sock[i]);
        m->sock[i] = NULL;
        if (m->cfd[i] >= 0)
            close(m->cfd[i]);
        m->cfd[i] = -1;
    }
    ssock_server_free(m->srv);
    m->srv = NULL;
}

static void expect_server_closed_io(ssock_socket *s)
{
    uint8_t buf[16];
    size_t n = 99;
    int rc = ssock_socket_read(s, buf, sizeof buf, &n);
    if (rc != SSOCK_ESERVERCLOSED)
        fail_msg("read on a socket of a closed server: %s (%d)",
                 ssock_err_name(rc), rc);
    assert_int_equal(n, 0);
    n = 99;
    rc = ssock_socket_write(s, "abc", 3, &n);
    if (rc != SSOCK_ESERVERCLOSED)
        fail_msg("write on a socket of a closed server: %s (%d)",
                 ssock_err_name(rc), rc);
    assert_int_equal(n, 0);
}

/* ---- a closed server fails its sockets ------------------------------ */

static void test_server_close_fails_sockets(void **state)
{
    struct multi m;
    (void)state;

    multi_open(&m, 2);
    /* Data is waiting: the read must still fail (documented IOException). */
    assert_int_equal(th_send_all(m.cfd[0], "pending", 7), 0);
    assert_int_equal(th_send_all(m.cfd[1], "pending", 7), 0);
    assert_int_equal(ssock_server_close(m.srv), 0);
    for (int i = 0; i < 2; i++) {
        expect_server_closed_io(m.sock[i]);
        expect_server_closed_io(m.sock[i]); /* every later call */
        assert_int_equal(ssock_socket_shutdown_write(m.sock[i]),
                         SSOCK_ESERVERCLOSED);
        /* Accessors still answer. */
        assert_string_equal(ssock_socket_peer_host(m.sock[i]), "127.0.0.1");
        assert_int_equal(ssock_socket_peer_port(m.sock[i]),
                         th_local_port(m.cfd[i]));
        /* The first close of the socket itself succeeds, the second not. */
        assert_int_equal(ssock_socket_close(m.sock[i]), 0);
        assert_int_equal(ssock_socket_close(m.sock[i]), SSOCK_ECLOSED);
        assert_int_equal(ssock_socket_fd(m.sock[i]), -1);
    }
    multi_free(&m);
}

/* ---- closes wake blocked threads ------------------------------------ */

enum op { OP_READ, OP_WRITE };
enum how { BY_SERVER_CLOSE, BY_SERVER_FREE, BY_SOCKET_CLOSE };

struct blocked {
    ssock_socket *sock;
    enum op op;
    uint8_t *buf;
    size_t len;
    th_event started;
    int rc;
    size_t n;
    int64_t returned_us;
};

static void *blocked_main(void *p)
{
    struct blocked *b = p;
    th_event_set(&b->started);
    if (b->op == OP_READ)
        b->rc = ssock_socket_read(b->sock, b->buf, b->len, &b->n);
    else
        b->rc = ssock_socket_write(b->sock, b->buf, b->len, &b->n);
    b->returned_us = th_now_us();
    return NULL;
}

struct closer {
    enum how how;
    ssock_server *srv;
    ssock_socket *sock;
};

static int do_close(void *p)
{
    struct closer *c = p;
    switch (c->how) {
    case BY_SERVER_CLOSE:
        return ssock_server_close(c->srv);
    case BY_SERVER_FREE:
        ssock_server_free(c->srv);
        return 0;
    default:
        return ssock_socket_close(c->sock);
    }
}

static const char *const how_names[] = {
    "ssock_server_close", "ssock_server_free", "ssock_socket_close"};

static int64_t measure_wake(enum op op, enum how how)
{
    th_pair p;
    struct blocked b;
    struct closer cl;
    th_thread t;
    th_call call;
    int64_t closed_us, woke_ms;
    int want = how == BY_SOCKET_CLOSE ? SSOCK_ECLOSED : SSOCK_ESERVERCLOSED;

    memset(&b, 0, sizeof b);
    assert_int_equal(th_pair_open_spy(&p, "127.0.0.1", AF_INET, NULL), 0);
    assert_int_equal(ssock_socket_set_read_timeout(p.sock, SSOCK_WAIT_FOREVER),
                     0);
    assert_int_equal(ssock_socket_set_write_timeout(p.sock, SSOCK_WAIT_FOREVER),
                     0);
    b.sock = p.sock;
    b.op = op;
    b.len = op == OP_READ ? 4096 : BIG_WRITE;
    b.buf = calloc(1, b.len);
    b.n = 99;
    assert_non_null(b.buf);
    th_event_init(&b.started);
    assert_int_equal(th_thread_start(&t, blocked_main, &b), 0);
    assert_true(th_event_wait(&b.started, TH_STUCK_MS));
    /* Proof that it blocks: the thread sits inside the library's recv or
     * poll (a writer first fills the socket buffers). */
    if (!th_spy_wait_blocked(1, TH_STUCK_MS))
        fail_msg("%s never blocked inside a system call",
                 op == OP_READ ? "read" : "write");

    if (th_event_wait(&t.done, 0))
        fail_msg("%s returned %s before anything was closed",
                 op == OP_READ ? "read" : "write", ssock_err_name(b.rc));
    cl.how = how;
    cl.srv = p.srv;
    cl.sock = p.sock;
    assert_int_equal(th_call_start(&call, do_close, &cl), 0);
    if (!th_call_wait(&call, TH_STUCK_MS))
        fail_msg("%s blocked > %d ms while another thread was in %s",
                 how_names[how], TH_STUCK_MS, op == OP_READ ? "read" : "write");
    assert_int_equal(call.rc, 0);
    closed_us = call.start_us;
    if (how == BY_SERVER_FREE)
        p.srv = NULL;
    if (!th_thread_join(&t, TH_STUCK_MS))
        fail_msg("%s blocked (timeout forever) still not woken %d ms after "
                 "%s from another thread",
                 op == OP_READ ? "read" : "write", TH_STUCK_MS,
                 how_names[how]); /* thread and handles leaked on purpose */
    th_event_destroy(&b.started);
    free(b.buf);
    if (b.rc != want)
        fail_msg("blocked %s after %s: %s (%d), want %s",
                 op == OP_READ ? "read" : "write", how_names[how],
                 ssock_err_name(b.rc), b.rc, ssock_err_name(want));
    if (b.returned_us < closed_us - 1000)
        fail_msg("blocked %s returned before %s",
                 op == OP_READ ? "read" : "write", how_names[how]);
    woke_ms = (b.returned_us - closed_us) / 1000;
    if (op == OP_READ) {
        assert_int_equal(b.n, 0);
    } else {
        /* Part of the data reached the kernel before the wait. */
        assert_true(b.n > 0);
        assert_true(b.n < BIG_WRITE);
    }
    if (how == BY_SOCKET_CLOSE)
        assert_int_equal(ssock_socket_close(p.sock), SSOCK_ECLOSED);
    else
        assert_int_equal(ssock_socket_close(p.sock), 0);
    th_pair_free(&p);
    return woke_ms;
}

/* Bound: TH_WAKE_MS + th_slack_ms(), best of TH_TRIES. */
static void check_wake(enum op op, enum how how)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < TH_TRIES && best > TH_WAKE_MS + TH_SLACK_MS; i++) {
        int64_t ms = measure_wake(op, how);
        if (ms < best)
            best = ms;
    }
    if (best > TH_WAKE_MS + TH_SLACK_MS)
        fail_msg("blocked %s woke %lld ms after %s at best (promise: %d ms, "
                 "+%d ms slack)",
                 op == OP_READ ? "read" : "write", (long long)best,
                 how_names[how], TH_WAKE_MS, TH_SLACK_MS);
}

static void test_server_close_wakes_reader(void **state)
{
    (void)state;
    check_wake(OP_READ, BY_SERVER_CLOSE);
}

static void test_server_close_wakes_writer(void **state)
{
    (void)state;
    check_wake(OP_WRITE, BY_SERVER_CLOSE);
}

static void test_server_free_wakes_reader(void **state)
{
    (void)state;
    check_wake(OP_READ, BY_SERVER_FREE);
}

static void test_socket_close_wakes_reader(void **state)
{
    (void)state;
    check_wake(OP_READ, BY_SOCKET_CLOSE);
}

static void test_socket_close_wakes_writer(void **state)
{
    (void)state;
    check_wake(OP_WRITE, BY_SOCKET_CLOSE);
}

static void test_server_close_wakes_every_reader(void **state)
{
    struct multi m;
    struct blocked b[MAX_CONNS];
    th_thread t[MAX_CONNS];
    int64_t closed_us;
    (void)state;

    multi_open(&m, MAX_CONNS);
    memset(b, 0, sizeof b);
    for (int i = 0; i < MAX_CONNS; i++) {
        assert_int_equal(ssock_socket_set_read_timeout(m.sock[i], 0), 0);
        b[i].sock = m.sock[i];
        b[i].op = OP_READ;
        b[i].len = 64;
        b[i].buf = malloc(64);
        assert_non_null(b[i].buf);
        th_event_init(&b[i].started);
        assert_int_equal(th_thread_start(&t[i], blocked_main, &b[i]), 0);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        assert_true(th_event_wait(&b[i].started, TH_STUCK_MS));
    /* Every reader is inside the library's recv/poll. */
    if (!th_spy_wait_blocked(MAX_CONNS, TH_STUCK_MS))
        fail_msg("only %d of %d readers blocked", th_spy_inside(), MAX_CONNS);
    {
        struct closer cl = {BY_SERVER_CLOSE, m.srv, NULL};
        th_call call;
        assert_int_equal(th_call_start(&call, do_close, &cl), 0);
        if (!th_call_wait(&call, TH_STUCK_MS))
            fail_msg("ssock_server_close blocked with %d readers", MAX_CONNS);
        assert_int_equal(call.rc, 0);
        closed_us = call.start_us;
    }
    for (int i = 0; i < MAX_CONNS; i++) {
        if (!th_thread_join(&t[i], TH_STUCK_MS))
            fail_msg("reader %d not woken by server close", i);
        th_event_destroy(&b[i].started);
        free(b[i].buf);
    }
    for (int i = 0; i < MAX_CONNS; i++) {
        int64_t woke_ms = (b[i].returned_us - closed_us) / 1000;
        if (b[i].rc != SSOCK_ESERVERCLOSED)
            fail_msg("reader %d: %s (%d), want SSOCK_ESERVERCLOSED", i,
                     ssock_err_name(b[i].rc), b[i].rc);
        if (woke_ms > TH_WAKE_MS + TH_SLACK_MS || woke_ms < -1)
            fail_msg("reader %d woke %lld ms after the server close", i,
                     (long long)woke_ms);
    }
    multi_free(&m);
}

/* ---- close and free in every order ---------------------------------- */

static void test_order_server_close_socket_close(void **state)
{
    th_pair p;
    (void)state;
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_server_close(p.srv), 0);
    assert_int_equal(ssock_socket_close(p.sock), 0);
    assert_int_equal(ssock_socket_close(p.sock), SSOCK_ECLOSED);
    assert_int_equal(ssock_server_close(p.srv), SSOCK_ECLOSED);
    ssock_socket_free(p.sock);
    p.sock = NULL;
    ssock_server_free(p.srv);
    p.srv = NULL;
    th_pair_free(&p);
}

static void test_order_socket_close_server_close(void **state)
{
    th_pair p;
    uint8_t buf[4];
    size_t n;
    (void)state;
    assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
    assert_int_equal(ssock_socket_close(p.sock), 0);
    assert_int_equal(ssock_server_close(p.srv), 0);
    assert_int_equal(ssock_socket_close(p.sock), SSOCK_ECLOSED);
    /* A closed socket stays "closed", whatever the server did after. */
    n = 99;
    assert_true(ssock_socket_read(p.sock, buf, sizeof buf, &n) < 0);
    assert_int_equal(n, 0);
    ssock_server_free(p.srv); /* server first, then the socket */
    p.srv = NULL;
    ssock_socket_free(p.sock);
    p.sock = NULL;
    th_pair_free(&p);
}

static void test_order_free_server_first(void **state)
{
    struct multi m;
    (void)state;
    multi_open(&m, 3);
    ssock_server_free(m.srv); /* sockets still open */
    m.srv = NULL;
    for (int i = 0; i < 3; i++) {
        expect_server_closed_io(m.sock[i]);
        assert_true(ssock_socket_peer_port(m.sock[i]) > 0);
        assert_non_null(ssock_socket_peer_host(m.sock[i]));
        assert_int_equal(ssock_socket_set_read_timeout(m.sock[i], 10), 0);
    }
    assert_int_equal(ssock_socket_close(m.sock[0]), 0);
    assert_int_equal(ssock_socket_close(m.sock[0]), SSOCK_ECLOSED);
    ssock_socket_free(m.sock[0]); /* closed, then freed */
    m.sock[0] = NULL;
    ssock_socket_free(m.sock[1]); /* freed without close */
    m.sock[1] = NULL;
    assert_int_equal(ssock_socket_close(m.sock[2]), 0);
    multi_free(&m);
}

static void test_order_free_socket_then_close_server(void **state)
{
    struct multi m;
    (void)state;
    multi_open(&m, 3);
    /* The server must forget freed sockets before it closes the rest. */
    ssock_socket_free(m.sock[1]);
    m.sock[1] = NULL;
    assert_int_equal(ssock_socket_close(m.sock[0]), 0);
    ssock_socket_free(m.sock[0]);
    m.sock[0] = NULL;
    assert_int_equal(ssock_server_close(m.srv), 0);
    expect_server_closed_io(m.sock[2]);
    multi_free(&m);
}

static void test_order_free_everything_unclosed(void **state)
{
    struct multi m;
    (void)state;
    multi_open(&m, 2);
    ssock_socket_free(m.sock[0]);
    m.sock[0] = NULL;
    ssock_server_free(m.srv);
    m.srv = NULL;
    ssock_socket_free(m.sock[1]);
    m.sock[1] = NULL;
    multi_free(&m);
}

static void test_accept_after_sockets_freed(void **state)
{
    /* A server whose sockets came and went keeps accepting. */
    ssock_server *srv = NULL;
    (void)state;
    assert_int_equal(ssock_server_open_addr(&srv, 0, TH_STUCK_MS, "127.0.0.1"),
                     0);
    for (int i = 0; i < 20; i++) {
        ssock_socket *s = NULL;
        int cfd =
            th_connect(AF_INET, ssock_server_local_port(srv), TH_STUCK_MS);
        assert_true(cfd >= 0);
        assert_int_equal(ssock_server_accept(srv, &s), 0);
        if (i % 2)
            assert_int_equal(ssock_socket_close(s), 0);
        ssock_socket_free(s);
        close(cfd);
    }
    ssock_server_free(srv);
}

/* ---- concurrent closes ---------------------------------------------- */

struct racer {
    pthread_barrier_t *bar;
    struct closer c;
};

static int race_close(void *p)
{
    struct racer *r = p;
    pthread_barrier_wait(r->bar);
    return do_close(&r->c);
}

static void test_concurrent_server_and_socket_close(void **state)
{
    (void)state;
    for (int iter = 0; iter < 20; iter++) {
        th_pair p;
        pthread_barrier_t bar;
        struct racer rs, rv;
        struct blocked b;
        th_thread tb;
        th_call cs, cv;

        assert_int_equal(th_pair_open(&p, "127.0.0.1", AF_INET), 0);
        assert_int_equal(ssock_socket_set_read_timeout(p.sock, 0), 0);
        memset(&b, 0, sizeof b);
        b.sock = p.sock;
        b.op = OP_READ;
        b.len = 64;
        b.buf = malloc(64);
        assert_non_null(b.buf);
        th_event_init(&b.started);
        assert_int_equal(th_thread_start(&tb, blocked_main, &b), 0);
        assert_true(th_event_wait(&b.started, TH_STUCK_MS));

        /* Socket close and server close at the same moment. */
        pthread_barrier_init(&bar, NULL, 2);
        rs.bar = rv.bar = &bar;
        rs.c.how = BY_SOCKET_CLOSE;
        rv.c.how = BY_SERVER_CLOSE;
        rs.c.srv = rv.c.srv = p.srv;
        rs.c.sock = rv.c.sock = p.sock;
        assert_int_equal(th_call_start(&cs, race_close, &rs), 0);
        assert_int_equal(th_call_start(&cv, race_close, &rv), 0);
        if (!th_call_wait(&cs, TH_STUCK_MS) || !th_call_wait(&cv, TH_STUCK_MS))
            fail_msg("iteration %d: a concurrent close blocked", iter);
        pthread_barrier_destroy(&bar);
        if (!th_thread_join(&tb, TH_STUCK_MS))
            fail_msg("iteration %d: reader not woken by the closes", iter);
        th_event_destroy(&b.started);
        free(b.buf);
        assert_int_equal(cs.rc, 0);
        assert_int_equal(cv.rc, 0);
        if (b.rc != SSOCK_ECLOSED && b.rc != SSOCK_ESERVERCLOSED)
            fail_msg("iteration %d: blocked read ended with %s (%d)", iter,
                     ssock_err_name(b.rc), b.rc);
        assert_int_equal(ssock_socket_close(p.sock), SSOCK_ECLOSED);
        assert_int_equal(ssock_server_close(p.srv), SSOCK_ECLOSED);
        th_pair_free(&p);
    }
}

static int setup(void **state)
{
    (void)state;
    th_sigpipe_default();
    return 0;
}

/* ---- never prints, never touches signal dispositions ---------------- */

struct sigsnap {
    struct sigaction sa[NSIG];
    int ok[NSIG];
    sigset_t mask;
};

static void sig_snapshot(struct sigsnap *ss)
{
    memset(ss, 0, sizeof *ss);
    for (int i = 1; i < NSIG; i++)
        ss->ok[i] = sigaction(i, NULL, &ss->sa[i]) == 0;
    pthread_sigmask(SIG_SETMASK, NULL, &ss->mask);
}

static void sig_compare(const struct sigsnap *a, const struct sigsnap *b)
{
    for (int i = 1; i < NSIG; i++) {
        if (a->ok[i] != b->ok[i])
            fail_msg("signal %d: sigaction answer changed", i);
        if (!a->ok[i])
            continue;
        if (a->sa[i].sa_handler != b->sa[i].sa_handler ||
            a->sa[i].sa_flags != b->sa[i].sa_flags)
            fail_msg("signal %d (%s): disposition changed by the library", i,
                     strsignal(i));
    }
    for (int i = 1; i < NSIG; i++)
        if (sigismember(&a->mask, i) != sigismember(&b->mask, i))
            fail_msg("signal %d: blocked mask changed by the library", i);
}

/* Everything a plain server does, good and bad paths. */
static void whole_lifecycle(void)
{
    ssock_server *srv = NULL, *bad = NULL;
    ssock_socket *sock = NULL;
    uint8_t buf[64];
    size_t n;
    int cfd;

    assert_int_equal(ssock_server_open_port(&bad, 70000), SSOCK_EBADPORT);
    assert_int_equal(ssock_server_open_addr(&bad, 0, 100, ""), SSOCK_EBADADDR);
    assert_int_equal(ssock_server_open_addr(&srv, 0, 50, "127.0.0.1"), 0);
    assert_int_equal(ssock_server_open_addr(&bad, ssock_server_local_port(srv),
                                            50, "127.0.0.1"),
                     -EADDRINUSE);
    assert_int_equal(ssock_server_accept(srv, &sock), SSOCK_ETIMEOUT);
    cfd = th_connect(AF_INET, ssock_server_local_port(srv), TH_STUCK_MS);
    assert_true(cfd >= 0);
    assert_int_equal(ssock_server_accept(srv, &sock), 0);
    assert_int_equal(ssock_socket_set_read_timeout(sock, 20), 0);
    assert_int_equal(ssock_socket_read(sock, buf, sizeof buf, &n),
                     SSOCK_ETIMEOUT);
    assert_int_equal(th_send_all(cfd, "ping", 4), 0);
    assert_int_equal(ssock_socket_set_read_timeout(sock, TH_STUCK_MS), 0);
    assert_int_equal(ssock_socket_read(sock, buf, sizeof buf, &n), 0);
    assert_int_equal(ssock_socket_write(sock, "pong", 4, &n), 0);
    assert_int_equal(ssock_socket_shutdown_write(sock), 0);
    close(cfd);
    while (ssock_socket_read(sock, buf, sizeof buf, &n) == 0) {
    }
    /* After shutdown_write: -EPIPE, without a print or a signal. */
    assert_int_equal(ssock_socket_write(sock, "x", 1, &n), -EPIPE);
    assert_int_equal(ssock_server_close(srv), 0);
    assert_int_equal(ssock_server_close(srv), SSOCK_ECLOSED);
    assert_int_equal(ssock_socket_read(sock, buf, sizeof buf, &n),
                     SSOCK_ESERVERCLOSED);
    assert_int_equal(ssock_socket_close(sock), 0);
    assert_int_equal(ssock_socket_close(sock), SSOCK_ECLOSED);
    ssock_socket_free(sock);
    ssock_server_free(srv);
    for (int i = -1200; i <= 0; i++) {
        (void)ssock_strerror(i);
        (void)ssock_err_name(i);
    }
}

static void test_never_prints_never_touches_signals(void **state)
{
    struct sigsnap before, after;
    int pfd[2], saved_out, saved_err;
    char buf[256];
    ssize_t got;
    (void)state;

    sig_snapshot(&before);
    fflush(stdout);
    fflush(stderr);
    assert_int_equal(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    saved_out = dup(1);
    saved_err = dup(2);
    assert_true(saved_out >= 0 && saved_err >= 0);
    assert_true(dup2(pfd[1], 1) == 1 && dup2(pfd[1], 2) == 2);

    whole_lifecycle();

    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(pfd[1]);
    got = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    if (got > 0) {
        buf[got] = '\0';
        fail_msg("the library printed %zd bytes: \"%s\"", got, buf);
    }
    sig_snapshot(&after);
    sig_compare(&before, &after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_close_fails_sockets),
        cmocka_unit_test(test_server_close_wakes_reader),
        cmocka_unit_test(test_server_close_wakes_writer),
        cmocka_unit_test(test_server_free_wakes_reader),
        cmocka_unit_test(test_socket_close_wakes_reader),
        cmocka_unit_test(test_socket_close_wakes_writer),
        cmocka_unit_test(test_server_close_wakes_every_reader),
        cmocka_unit_test(test_order_server_close_socket_close),
        cmocka_unit_test(test_order_socket_close_server_close),
        cmocka_unit_test(test_order_free_server_first),
        cmocka_unit_test(test_order_free_socket_then_close_server),
        cmocka_unit_test(test_order_free_everything_unclosed),
        cmocka_unit_test(test_accept_after_sockets_freed),
        cmocka_unit_test(test_concurrent_server_and_socket_close),
        cmocka_unit_test(test_never_prints_never_touches_signals),
    };
    return cmocka_run_group_tests_name("lifecycle", tests, setup, NULL);
}
