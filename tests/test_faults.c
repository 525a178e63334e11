/* src/sys.c and src/wait.c: faults injected through the internal system-call
 * table (EINTR, ECONNABORTED, short sends, spurious EAGAIN, early poll
 * returns, failing socket/bind/listen), and the monotonic deadlines. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* ---- the fault-injecting table -------------------------------------- */

/* Each counter: the next N calls fail with the matching errno. `_until_us`:
 * every call fails until that monotonic time. All reset before each test. */
static struct {
    atomic_int socket_errno, bind_errno, listen_errno;
    atomic_int accept_errno, accept_count;
    atomic_llong accept_until_us;
    atomic_int poll_errno, poll_count, poll_zero_count;
    atomic_int recv_errno, recv_count;
    atomic_int send_errno, send_count, send_every_other;
    atomic_int send_armed, send_ok_left; /* armed: fail after ok_left */
    atomic_long send_max;
    atomic_int calls_recv, calls_send, calls_accept;
} F;

static int take(atomic_int *count)
{
    int c = atomic_load(count);
    while (c > 0) {
        if (atomic_compare_exchange_weak(count, &c, c - 1))
            return 1;
    }
    return 0;
}

static int f_socket(int domain, int type, int protocol)
{
    int e = atomic_load(&F.socket_errno);
    if (e) {
        errno = e;
        return -1;
    }
    return socket(domain, type, protocol);
}

static int f_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    int e = atomic_load(&F.bind_errno);
    if (e) {
        errno = e;
        return -1;
    }
    return bind(fd, sa, len);
}

static int f_listen(int fd, int backlog)
{
    int e = atomic_load(&F.listen_errno);
    if (e) {
        errno = e;
        return -1;
    }
    return listen(fd, backlog);
}

static int f_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    atomic_fetch_add(&F.calls_accept, 1);
    if (atomic_load(&F.accept_until_us) > th_now_us() ||
        take(&F.accept_count)) {
        errno = atomic_load(&F.accept_errno);
        return -1;
    }
    return accept4(fd, sa, len, flags);
}

static int f_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    if (take(&F.poll_zero_count)) {
        /* A poll that comes back early, as if its clock ran ahead. */
        for (nfds_t i = 0; i < n; i++)
            fds[i].revents = 0;
        return 0;
    }
    if (take(&F.poll_count)) {
        errno = atomic_load(&F.poll_errno);
        return -1;
    }
    return poll(fds, n, timeout_ms);
}

static ssize_t f_recv(int fd, void *buf, size_t len, int flags)
{
    atomic_fetch_add(&F.calls_recv, 1);
    if (take(&F.recv_count)) {
        errno = atomic_load(&F.recv_errno);
        return -1;
    }
    return recv(fd, buf, len, flags);
}

static ssize_t f_send(int fd, const void *buf, size_t len, int flags)
{
    int call = atomic_fetch_add(&F.calls_send, 1);
    long max = atomic_load(&F.send_max);
    if (take(&F.send_count) ||
        (atomic_load(&F.send_every_other) && call % 2 == 0) ||
        (atomic_load(&F.send_armed) && !take(&F.send_ok_left))) {
        errno = atomic_load(&F.send_errno);
        return -1;
    }
    if (max > 0 && len > (size_t)max)
        len = (size_t)max;
    return send(fd, buf, len, flags);
}

static int f_shutdown(int fd, int how)
{
    return shutdown(fd, how);
}

static int f_close(int fd)
{
    return close(fd);
}

static const struct ssock__sys fault_sys = {
    .socket = f_socket,
    .bind = f_bind,
    .listen = f_listen,
    .accept4 = f_accept4,
    .poll = f_poll,
    .recv = f_recv,
    .send = f_send,
    .shutdown = f_shutdown,
    .close = f_close,
};

static int reset_faults(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F); /* before any thread uses it */
    return 0;
}

static int open_fault_server(ssock_server **srv, int timeout_ms)
{
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = timeout_ms;
    return ssock__server_open_sys(srv, &o, &fault_sys);
}

/* A fault server with one client connected and (optionally) accepted. */
struct fpair {
    ssock_server *srv;
    ssock_socket *sock;
    int cfd;
};

static void fpair_open(struct fpair *p, int timeout_ms, int do_accept)
{
    p->sock = NULL;
    assert_int_equal(open_fault_server(&p->srv, timeout_ms), 0);
    p->cfd = th_connect(AF_INET, ssock_server_local_port(p->srv), TH_STUCK_MS);
    assert_true(p->cfd >= 0);
    if (do_accept)
        assert_int_equal(ssock_server_accept(p->srv, &p->sock), 0);
}

static void fpair_free(struct fpair *p)
{
    ssock_socket_free(p->sock);
    ssock_server_free(p->srv);
    if (p->cfd >= 0)
        close(p->cfd);
}

/* ---- accept ---------------------------------------------------------- */

static void check_accept_skips(int err, int count)
{
    struct fpair p;
    int64_t t0;
    fpair_open(&p, 2000, 0);
    atomic_store(&F.accept_errno, err);
    atomic_store(&F.accept_count, count);
    t0 = th_now_ms();
    assert_int_equal(ssock_server_accept(p.srv, &p.sock), 0);
    assert_true(th_now_ms() - t0 < 1000);
    assert_int_equal(atomic_load(&F.accept_count), 0);
    assert_int_equal(ssock_socket_peer_port(p.sock), th_local_port(p.cfd));
    fpair_free(&p);
}

static void test_accept_skips_aborted_connections(void **state)
{
    (void)state;
    check_accept_skips(ECONNABORTED, 3);
}

static void test_accept_retries_eintr(void **state)
{
    (void)state;
    check_accept_skips(EINTR, 2);
}

static void test_accept_spurious_eagain(void **state)
{
    (void)state;
    /* poll said readable, accept4 says EAGAIN: wait again, then accept. */
    check_accept_skips(EAGAIN, 1);
}

static void test_accept_deadline_with_endless_aborts(void **state)
{
    /* Every accept4 fails with ECONNABORTED for 3 s while a client waits
     * (so poll keeps reporting the listener readable). The accept timeout
     * is 200 ms: "blocks for at most the server's accept timeout", and
     * aborted connections are skipped "inside the same deadline". */
    struct fpair p;
    int64_t t0, elapsed;
    int rc;
    (void)state;

    /* Bound: 200 ms + th_slack_ms(), best of TH_TRIES. */
    for (int i = 0; i < TH_TRIES; i++) {
        fpair_open(&p, 200, 0);
        atomic_store(&F.accept_errno, ECONNABORTED);
        atomic_store(&F.accept_until_us, th_now_us() + 3000000);
        t0 = th_now_ms();
        rc = ssock_server_accept(p.srv, &p.sock);
        elapsed = th_now_ms() - t0;
        atomic_store(&F.accept_until_us, 0);
        if (rc != 0 && p.sock != NULL)
            fail_msg("accept failed (%s) but *out is not NULL",
                     ssock_err_name(rc));
        fpair_free(&p);
        if (rc != SSOCK_ETIMEOUT || elapsed <= 200 + TH_SLACK_MS)
            break;
    }
    if (rc != SSOCK_ETIMEOUT || elapsed > 200 + TH_SLACK_MS || elapsed < 199)
        fail_msg("accept(200 ms) while every accept4 fails with ECONNABORTED: "
                 "%s (%d) after %lld ms (%d accept4 calls), want "
                 "SSOCK_ETIMEOUT after 200..%d ms",
                 ssock_err_name(rc), rc, (long long)elapsed,
                 atomic_load(&F.calls_accept), 200 + TH_SLACK_MS);
}

static void test_accept_other_error_reported(void **state)
{
    struct fpair p;
    int rc;
    (void)state;
    fpair_open(&p, 2000, 0);
    atomic_store(&F.accept_errno, ENOBUFS);
    atomic_store(&F.accept_count, 1);
    rc = ssock_server_accept(p.srv, &p.sock);
    assert_int_equal(rc, -ENOBUFS);
    assert_null(p.sock);
    assert_int_equal(ssock_server_last_os_error(p.srv), ENOBUFS);
    /* Next call works. */
    assert_int_equal(ssock_server_accept(p.srv, &p.sock), 0);
    fpair_free(&p);
}

/* ---- poll ------------------------------------------------------------ */

static void check_accept_timeout_with_poll_faults(int zero, int eintr)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    int64_t t0, us;
    int rc;

    assert_int_equal(open_fault_server(&srv, 150), 0);
    atomic_store(&F.poll_zero_count, zero);
    atomic_store(&F.poll_errno, EINTR);
    atomic_store(&F.poll_count, eintr);
    t0 = th_now_us();
    rc = ssock_server_accept(srv, &sock);
    us = th_now_us() - t0;
    assert_int_equal(rc, SSOCK_ETIMEOUT);
    assert_null(sock);
    if (us < 149000 || us > 650000)
        fail_msg("accept(150 ms) with %d early and %d EINTR polls: %.1f ms",
                 zero, eintr, us / 1000.0);
    assert_int_equal(atomic_load(&F.poll_zero_count), 0);
    assert_int_equal(atomic_load(&F.poll_count), 0);
    ssock_server_free(srv);
}

static void test_poll_early_return_keeps_deadline(void **state)
{
    (void)state;
    check_accept_timeout_with_poll_faults(5, 0);
}

static void test_poll_eintr_keeps_deadline(void **state)
{
    (void)state;
    check_accept_timeout_with_poll_faults(0, 10);
}

static void test_poll_failure_reported(void **state)
{
    ssock_server *srv = NULL;
    ssock_socket *sock = NULL;
    (void)state;
    assert_int_equal(open_fault_server(&srv, 1000), 0);
    atomic_store(&F.poll_errno, ENOMEM);
    atomic_store(&F.poll_count, 1);
    assert_int_equal(ssock_server_accept(srv, &sock), -ENOMEM);
    assert_null(sock);
    assert_int_equal(ssock_server_last_os_error(srv), ENOMEM);
    ssock_server_free(srv);
}

static void test_read_timeout_with_early_polls(void **state)
{
    struct fpair p;
    char buf[8];
    size_t n = 9;
    int64_t t0, us;
    (void)state;
    fpair_open(&p, 2000, 1);
    assert_int_equal(ssock_socket_set_read_timeout(p.sock, 120), 0);
    atomic_store(&F.poll_zero_count, 4);
    t0 = th_now_us();
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n),
                     SSOCK_ETIMEOUT);
    us = th_now_us() - t0;
    assert_int_equal(n, 0);
    if (us < 119000)
        fail_msg("read(120 ms) with early polls timed out after %.1f ms",
                 us / 1000.0);
    fpair_free(&p);
}

/* ---- recv / send ------------------------------------------------------ */

static void test_recv_eintr(void **state)
{
    struct fpair p;
    char buf[16];
    size_t n = 0;
    (void)state;
    fpair_open(&p, 2000, 1);
    assert_int_equal(th_send_all(p.cfd, "ping", 4), 0);
    atomic_store(&F.recv_errno, EINTR);
    atomic_store(&F.recv_count, 3);
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n), 0);
    assert_true(n >= 1 && n <= 4);
    assert_memory_equal(buf, "ping", n);
    assert_int_equal(atomic_load(&F.recv_count), 0);
    fpair_free(&p);
}

static void test_recv_spurious_eagain(void **state)
{
    struct fpair p;
    char buf[16];
    size_t n = 0;
    (void)state;
    fpair_open(&p, 2000, 1);
    assert_int_equal(th_send_all(p.cfd, "ping", 4), 0);
    atomic_store(&F.recv_errno, EAGAIN);
    atomic_store(&F.recv_count, 2);
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n), 0);
    assert_true(n >= 1 && n <= 4);
    fpair_free(&p);
}

static void test_recv_reset(void **state)
{
    struct fpair p;
    char buf[16];
    size_t n = 9;
    (void)state;
    fpair_open(&p, 2000, 1);
    assert_int_equal(th_send_all(p.cfd, "ping", 4), 0);
    atomic_store(&F.recv_errno, ECONNRESET);
    atomic_store(&F.recv_count, 1);
    assert_int_equal(ssock_socket_read(p.sock, buf, sizeof buf, &n),
                     -ECONNRESET);
    assert_int_equal(n, 0);
    assert_int_equal(ssock_socket_last_os_error(p.sock), ECONNRESET);
    fpair_free(&p);
}

static void test_send_short_eintr_eagain(void **state)
{
    const size_t len = 48 * 1024;
    static uint8_t out[48 * 1024], in[48 * 1024];
    struct fpair p;
    size_t n = 0;
    (void)state;
    fpair_open(&p, 2000, 1);
    th_fill(out, len, 7, 0);
    atomic_store(&F.send_max, 777);
    atomic_store(&F.send_errno, EINTR);
    atomic_store(&F.send_every_other, 1);
    assert_int_equal(ssock_socket_write(p.sock, out, len, &n), 0);
    assert_int_equal(n, len);
    atomic_store(&F.send_every_other, 0);
    /* One spurious EAGAIN: wait for space (there is some) and go on. */
    atomic_store(&F.send_errno, EAGAIN);
    atomic_store(&F.send_count, 1);
    assert_int_equal(ssock_socket_write(p.sock, out, 100, &n), 0);
    assert_int_equal(n, 100);
    assert_int_equal(th_recv_all(p.cfd, in, len, TH_STUCK_MS), 0);
    assert_int_equal(th_check(in, len, 7, 0), len);
    assert_int_equal(th_recv_all(p.cfd, in, 100, TH_STUCK_MS), 0);
    assert_int_equal(th_check(in, 100, 7, 0), 100);
    fpair_free(&p);
}

static void test_send_failure_part_way(void **state)
{
    static uint8_t out[8192];
    struct fpair p;
    size_t n = 0;
    int rc;
    (void)state;
    fpair_open(&p, 2000, 1);
    /* 1000 bytes per send; three go through, the fourth is reset. */
    atomic_store(&F.send_max, 1000);
    atomic_store(&F.send_errno, ECONNRESET);
    atomic_store(&F.send_ok_left, 3);
    atomic_store(&F.send_armed, 1);
    rc = ssock_socket_write(p.sock, out, sizeof out, &n);
    atomic_store(&F.send_armed, 0);
    assert_int_equal(rc, -ECONNRESET);
    assert_int_equal(n, 3000);
    assert_int_equal(ssock_socket_last_os_error(p.sock), ECONNRESET);
    fpair_free(&p);
}

/* ---- failing opens leave nothing behind ------------------------------ */

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void check_open_fails(atomic_int *which, int err, const char *addr)
{
    ssock_server_options o;
    ssock_server *srv = (ssock_server *)(void *)&o;
    int before = count_fds();
    int rc;

    ssock_server_options_init(&o);
    o.addr = addr;
    atomic_store(which, err);
    rc = ssock__server_open_sys(&srv, &o, &fault_sys);
    atomic_store(which, 0);
    if (rc != -err)
        fail_msg("open on %s with an injected %s: %s (%d)",
                 addr ? addr : "(any)", ssock_err_name(-err),
                 ssock_err_name(rc), rc);
    assert_null(srv);
    assert_int_equal(count_fds(), before);
}

static void test_open_failures_leave_nothing(void **state)
{
    (void)state;
    check_open_fails(&F.socket_errno, EMFILE, "127.0.0.1");
    check_open_fails(&F.bind_errno, EACCES, "127.0.0.1");
    check_open_fails(&F.listen_errno, EADDRINUSE, "127.0.0.1");
    check_open_fails(&F.socket_errno, EMFILE, NULL);
    check_open_fails(&F.bind_errno, EADDRNOTAVAIL, NULL);
    check_open_fails(&F.listen_errno, ENOBUFS, NULL);
    check_open_fails(&F.bind_errno, EACCES, "localhost");
}

/* ---- wait.c: deadlines ------------------------------------------------ */

static void test_deadlines(void **state)
{
    ssock__deadline d;
    int ms;
    (void)state;

    d = ssock__deadline_in(SSOCK_WAIT_FOREVER);
    assert_int_equal(ssock__deadline_poll_ms(d), -1);
    assert_false(ssock__deadline_expired(d));

    d = ssock__deadline_in(100);
    ms = ssock__deadline_poll_ms(d);
    assert_true(ms >= 90 && ms <= 101);
    assert_false(ssock__deadline_expired(d));

    d = ssock__deadline_in(1);
    th_sleep_ms(5);
    assert_true(ssock__deadline_expired(d));
    assert_int_equal(ssock__deadline_poll_ms(d), 0);

    /* Large timeouts do not overflow. */
    d = ssock__deadline_in(2147483647);
    assert_false(ssock__deadline_expired(d));
    assert_true(ssock__deadline_poll_ms(d) > 2147000000);

    {
        uint64_t a = ssock__now_ns(), b = ssock__now_ns();
        assert_true(b >= a);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, reset_faults)
    const struct CMUnitTest tests[] = {
        T(test_accept_skips_aborted_connections),
        T(test_accept_retries_eintr),
        T(test_accept_spurious_eagain),
        T(test_accept_deadline_with_endless_aborts),
        T(test_accept_other_error_reported),
        T(test_poll_early_return_keeps_deadline),
        T(test_poll_eintr_keeps_deadline),
        T(test_poll_failure_reported),
        T(test_read_timeout_with_early_polls),
        T(test_recv_eintr),
        T(test_recv_spurious_eagain),
        T(test_recv_reset),
        T(test_send_short_eintr_eagain),
        T(test_send_failure_part_way),
        T(test_open_failures_leave_nothing),
        T(test_deadlines),
    };
#undef T
    th_sigpipe_default();
    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
