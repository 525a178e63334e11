#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#if defined(SSOCK_HAVE_VALGRIND_H)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define TH_SANITIZED 1
#endif
#endif
#ifndef TH_SANITIZED
#define TH_SANITIZED 0
#endif

int64_t th_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t th_now_ms(void)
{
    return th_now_us() / 1000;
}

void th_sleep_ms(int ms)
{
    struct timespec req, rem;
    req.tv_sec = ms / 1000;
    req.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}

const char *th_loopback(int family)
{
    return family == AF_INET6 ? "::1" : "127.0.0.1";
}

int th_has_ipv6(char *why, size_t whylen)
{
    struct sockaddr_in6 sin6;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = 0;

    if (fd < 0) {
        if (why)
            snprintf(why, whylen, "socket(AF_INET6): %s", strerror(errno));
        return 0;
    }
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    if (bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0)
        ok = 1;
    else if (why)
        snprintf(why, whylen, "bind(::1): %s", strerror(errno));
    close(fd);
    return ok;
}

int th_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

static int fill_addr(struct sockaddr_storage *ss, socklen_t *len,
                     const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
            return -EINVAL;
        *len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
            return -EINVAL;
        *len = sizeof *s4;
    }
    return 0;
}

int th_connect_fd(int fd, const char *ip, int port, int timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int flags, rc, err = 0;
    socklen_t errlen = sizeof err;
    int64_t deadline = th_now_ms() + timeout_ms;

    rc = fill_addr(&ss, &len, ip, port);
    if (rc)
        return rc;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, len) == 0)
        goto done;
    if (errno != EINPROGRESS) {
        err = errno;
        goto done;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
        int64_t left = deadline - th_now_ms();
        if (left <= 0) {
            err = ETIMEDOUT;
            goto done;
        }
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            err = errno;
            goto done;
        }
        if (rc > 0)
            break;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        err = errno;
done:
    if (fcntl(fd, F_SETFL, flags) < 0 && err == 0)
        err = errno;
    return -err;
}

int th_connect(int family, int port, int timeout_ms)
{
    int fd = th_socket(family);
    int rc;

    if (fd < 0)
        return fd;
    rc = th_connect_fd(fd, th_loopback(family), port, timeout_ms);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int th_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int th_send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t th_recv_some(int fd, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        int64_t left = deadline - th_now_ms();
        int rc;
        ssize_t n;
        if (left < 0)
            left = 0;
        rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            return -ETIMEDOUT;
        n = recv(fd, buf, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return n < 0 ? -errno : n;
    }
}

int th_recv_all(int fd, void *buf, size_t len, int timeout_ms)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = th_recv_some(fd, p, len, timeout_ms);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void th_close_rst(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

uint8_t th_pattern(uint32_t seed, uint64_t i)
{
    /* A cheap hash of (seed, i): no short period, differs per stream. */
    uint64_t x = i * 0x9E3779B97F4A7C15ull + seed * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 32;
    return (uint8_t)x;
}

void th_fill(uint8_t *buf, size_t len, uint32_t seed, uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = th_pattern(seed, offset + i);
}

size_t th_check(const uint8_t *buf, size_t len, uint32_t seed, uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != th_pattern(seed, offset + i))
            return i;
    return len;
}

void th_event_init(th_event *e)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->set = 0;
}

void th_event_destroy(th_event *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

void th_event_set(th_event *e)
{
    pthread_mutex_lock(&e->mu);
    e->set = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

int th_event_wait(th_event *e, int timeout_ms)
{
    struct timespec ts;
    int set;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&e->mu);
    while (!e->set) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) != 0)
            break;
    }
    set = e->set;
    pthread_mutex_unlock(&e->mu);
    return set;
}

static void *thread_trampoline(void *arg)
{
    th_thread *t = arg;
    void *ret = t->fn(t->arg);
    th_event_set(&t->done);
    return ret;
}

int th_thread_start(th_thread *t, void *(*fn)(void *), void *arg)
{
    int rc;
    t->fn = fn;
    t->arg = arg;
    th_event_init(&t->done);
    rc = pthread_create(&t->tid, NULL, thread_trampoline, t);
    if (rc != 0)
        th_event_destroy(&t->done);
    return rc;
}

int th_thread_join(th_thread *t, int timeout_ms)
{
    if (!th_event_wait(&t->done, timeout_ms))
        return 0;
    pthread_join(t->tid, NULL);
    th_event_destroy(&t->done);
    return 1;
}

static void *call_main(void *arg)
{
    th_call *c = arg;
    c->start_us = th_now_us();
    c->rc = c->fn(c->arg);
    c->end_us = th_now_us();
    return NULL;
}

int th_call_start(th_call *c, int (*fn)(void *), void *arg)
{
    c->fn = fn;
    c->arg = arg;
    c->rc = 0;
    c->start_us = c->end_us = 0;
    return th_thread_start(&c->t, call_main, c);
}

int th_call_wait(th_call *c, int timeout_ms)
{
    return th_thread_join(&c->t, timeout_ms);
}

int th_pair_open_sys_(th_pair *p, const char *addr, int family,
                      const ssock_server_options *opts,
                      const struct ssock__sys *sys)
{
    ssock_server_options o;
    int rc;

    memset(p, 0, sizeof *p);
    p->cfd = -1;
    p->family = family;
    if (opts)
        o = *opts;
    else
        ssock_server_options_init(&o);
    o.port = 0;
    o.addr = addr;
    if (o.accept_timeout_ms == 0 || o.accept_timeout_ms > TH_STUCK_MS)
        o.accept_timeout_ms = TH_STUCK_MS;
    rc = sys != NULL ? ssock__server_open_sys(&p->srv, &o, sys)
                     : ssock_server_open(&p->srv, &o);
    if (rc != 0)
        goto fail;
    p->port = ssock_server_local_port(p->srv);
    p->cfd = th_connect(family, p->port, TH_STUCK_MS);
    if (p->cfd < 0) {
        rc = p->cfd;
        goto fail;
    }
    rc = ssock_server_accept(p->srv, &p->sock);
    if (rc != 0)
        goto fail;
    return 0;
fail:
    th_pair_free(p);
    return rc;
}

int th_pair_open_opts(th_pair *p, const char *addr, int family,
                      const ssock_server_options *opts)
{
    return th_pair_open_sys_(p, addr, family, opts, NULL);
}

int th_pair_open(th_pair *p, const char *addr, int family)
{
    return th_pair_open_opts(p, addr, family, NULL);
}

void th_pair_free(th_pair *p)
{
    ssock_socket_free(p->sock);
    p->sock = NULL;
    ssock_server_free(p->srv);
    p->srv = NULL;
    if (p->cfd >= 0)
        close(p->cfd);
    p->cfd = -1;
}

void th_sigpipe_default(void)
{
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int th_slow_mode(void)
{
    /* Under qemu-user (scripts/test-cross.sh exports SSOCK_TEST_EMULATED)
     * the code runs 5-10x slower: scale like Valgrind. */
    if (RUNNING_ON_VALGRIND || getenv("SSOCK_TEST_EMULATED") != NULL)
        return 1;
    return TH_SANITIZED ? 2 : 0;
}

int th_slack_ms(void)
{
    switch (th_slow_mode()) {
    case 1:
        return 400; /* Valgrind */
    case 2:
        return 100; /* ASan / TSan */
    default:
        return 30;
    }
}

int th_skip_check(const char *fmt, ...)
{
    char why[512];
    va_list ap;
    const char *gate = getenv("SSOCK_GATE");
    const char *log = getenv("SSOCK_SKIP_LOG");

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fprintf(stderr, "SKIP: %s\n", why);
    fflush(stderr);
    if (log != NULL && *log != '\0') {
        FILE *f = fopen(log, "a");
        if (f != NULL) {
            fprintf(f, "SKIP: %s\n", why);
            fclose(f);
        }
    }
    return gate != NULL && strcmp(gate, "1") == 0;
}

/* ---- the system-call spy ------------------------------------------- */

static struct {
    atomic_int inside;
    atomic_long events; /* calls started + calls ended */
} th_spy;

static void spy_enter(void)
{
    atomic_fetch_add(&th_spy.inside, 1);
    atomic_fetch_add(&th_spy.events, 1);
}

static void spy_leave(void)
{
    atomic_fetch_sub(&th_spy.inside, 1);
    atomic_fetch_add(&th_spy.events, 1);
}

static int spy_socket(int domain, int type, int protocol)
{
    return socket(domain, type, protocol);
}

static int spy_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return bind(fd, sa, len);
}

static int spy_listen(int fd, int backlog)
{
    return listen(fd, backlog);
}

static int spy_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    int rc, e;
    spy_enter();
    rc = accept4(fd, sa, len, flags);
    e = errno;
    spy_leave();
    errno = e;
    return rc;
}

static int spy_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    int rc, e;
    spy_enter();
    rc = poll(fds, n, timeout_ms);
    e = errno;
    spy_leave();
    errno = e;
    return rc;
}

static ssize_t spy_recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t rc;
    int e;
    spy_enter();
    rc = recv(fd, buf, len, flags);
    e = errno;
    spy_leave();
    errno = e;
    return rc;
}

static ssize_t spy_send(int fd, const void *buf, size_t len, int flags)
{
    ssize_t rc;
    int e;
    spy_enter();
    rc = send(fd, buf, len, flags);
    e = errno;
    spy_leave();
    errno = e;
    return rc;
}

static int spy_shutdown(int fd, int how)
{
    return shutdown(fd, how);
}

static int spy_close(int fd)
{
    return close(fd);
}

static const struct ssock__sys th_spy_table = {
    spy_socket, spy_bind, spy_listen,   spy_accept4, spy_poll,
    spy_recv,   spy_send, spy_shutdown, spy_close,
};

const struct ssock__sys *th_spy_sys(void)
{
    return &th_spy_table;
}

void th_spy_reset(void)
{
    atomic_store(&th_spy.inside, 0);
    atomic_store(&th_spy.events, 0);
}

int th_spy_inside(void)
{
    return atomic_load(&th_spy.inside);
}

int th_spy_wait_blocked(int n, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    long last = -1;
    int64_t stable_since = 0;

    for (;;) {
        long ev = atomic_load(&th_spy.events);
        int in = atomic_load(&th_spy.inside);
        int64_t now = th_now_ms();
        if (in >= n && ev == last) {
            if (now - stable_since >= 20)
                return 1;
        } else {
            last = ev;
            stable_since = now;
        }
        if (now >= deadline)
            return 0;
        th_sleep_ms(2);
    }
}

int th_pair_open_spy(th_pair *p, const char *addr, int family,
                     const ssock_server_options *opts)
{
    th_spy_reset();
    return th_pair_open_sys_(p, addr, family, opts, th_spy_sys());
}
