/* The accept/handshake/echo skeleton of the raw TLS baselines (base_tls.h). */
#include "base_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_BUF 16384
#define STOP_WAIT_MS 2000

struct conn;

struct base {
    const struct base_tls_ops *ops;
    void *ctx;
    int handshake_timeout_ms;
    bool nodelay;
    pthread_mutex_t lock;
    pthread_cond_t gone; /* a connection thread ended */
    struct conn *conns;  /* every connection, for the shutdown at stop */
    int live;            /* connections in the list */
    atomic_bool stopping;
};

struct conn {
    struct base *b;
    int fd;
    void *sess;
    struct conn *prev;
    struct conn *next;
};

static void link_conn(struct base *b, struct conn *c)
{
    pthread_mutex_lock(&b->lock);
    c->prev = NULL;
    c->next = b->conns;
    if (b->conns != NULL)
        b->conns->prev = c;
    b->conns = c;
    b->live++;
    pthread_mutex_unlock(&b->lock);
}

/* Unlink, then release: the stop path never touches a closed fd. */
static void end_conn(struct conn *c, bool goodbye)
{
    struct base *b = c->b;

    pthread_mutex_lock(&b->lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    b->live--;
    pthread_cond_broadcast(&b->gone);
    pthread_mutex_unlock(&b->lock);

    if (c->sess != NULL)
        b->ops->session_free(c->sess, goodbye && !atomic_load(&b->stopping));
    close(c->fd);
    free(c);
}

/* Run the handshake to its end on the non-blocking fd, within the
 * handshake timeout; a readable `stop_fd` (>= 0) ends it early. */
static bool handshake(struct conn *c, int stop_fd)
{
    struct base *b = c->b;
    uint64_t deadline =
        bench_now_ns() + (uint64_t)b->handshake_timeout_ms * 1000000u;

    for (;;) {
        int want = b->ops->handshake(c->sess);
        struct pollfd p[2];
        int ms, n;

        if (want == 0)
            return true;
        if (want < 0)
            return false;
        ms = bench_ms_left(deadline);
        if (ms == 0)
            return false;
        p[0] = (struct pollfd){c->fd, (short)want, 0};
        p[1] = (struct pollfd){stop_fd, POLLIN, 0};
        n = poll(p, stop_fd >= 0 ? 2 : 1, ms);
        if (n < 0 && errno != EINTR)
            return false;
        if (n > 0 && stop_fd >= 0 && p[1].revents != 0)
            return false;
    }
}

static void echo(struct conn *c)
{
    const struct base_tls_ops *ops = c->b->ops;
    char *buf = malloc(ECHO_BUF);
    int fl = fcntl(c->fd, F_GETFL);

    if (buf == NULL || fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        free(buf);
        return;
    }
    for (;;) {
        long n = ops->read(c->sess, buf, ECHO_BUF);
        if (n <= 0 || ops->write(c->sess, buf, (size_t)n) != 0)
            break;
    }
    free(buf);
}

/* --serial: the handshake already ran in the accept loop. */
static void *echo_main(void *arg)
{
    struct conn *c = arg;

    echo(c);
    end_conn(c, true);
    return NULL;
}

/* --threads: handshake, then echo, in this thread. */
static void *conn_main(void *arg)
{
    struct conn *c = arg;
    bool ok = handshake(c, -1);

    if (ok)
        echo(c);
    end_conn(c, ok);
    return NULL;
}

static bool start_thread(struct conn *c, void *(*fn)(void *))
{
    pthread_attr_t attr;
    pthread_t t;
    int err;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&t, &attr, fn, c);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        fprintf(stderr, "cannot start a thread: %s\n", strerror(err));
        return false;
    }
    return true;
}

static void take_one(struct base *b, int fd, bool serial, int stop_fd)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return;
    }
    c->b = b;
    c->fd = fd;
    if (b->nodelay) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->sess = b->ops->session_new(b->ctx, fd);
    link_conn(b, c);
    if (c->sess == NULL) {
        end_conn(c, false);
        return;
    }
    if (serial) {
        if (!handshake(c, stop_fd) || !start_thread(c, echo_main))
            end_conn(c, false);
    } else if (!start_thread(c, conn_main)) {
        end_conn(c, false);
    }
}

/* Returns the connections still alive after the wait. */
static int stop_all(struct base *b)
{
    struct timespec until;
    int live;

    atomic_store(&b->stopping, true);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STOP_WAIT_MS / 1000;
    pthread_mutex_lock(&b->lock);
    for (struct conn *c = b->conns; c != NULL; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (b->live > 0 &&
           pthread_cond_timedwait(&b->gone, &b->lock, &until) == 0) {
    }
    live = b->live;
    pthread_mutex_unlock(&b->lock);
    return live;
}

int base_tls_run(const char *prog, const struct base_tls_ops *ops, void *ctx,
                 const struct bench_server_args *a)
{
    struct base b;
    int lfd, sfd, left;

    memset(&b, 0, sizeof(b));
    b.ops = ops;
    b.ctx = ctx;
    b.handshake_timeout_ms = a->handshake_timeout_ms;
    b.nodelay = a->nodelay;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.gone, NULL);
    atomic_init(&b.stopping, false);

    bench_raise_nofile();
    sfd = bench_stop_signals();
    if (sfd < 0)
        return 1;
    lfd = bench_listen(prog, a->addr, a->port, a->backlog);
    if (lfd < 0)
        return 1;

    for (;;) {
        struct pollfd p[2] = {{lfd, POLLIN, 0}, {sfd, POLLIN, 0}};
        int n = poll(p, 2, -1);

        if (n < 0 && errno != EINTR) {
            perror("poll");
            break;
        }
        if (n <= 0)
            continue;
        if (p[1].revents != 0)
            break;
        for (;;) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            bool full;

            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                break; /* EAGAIN; EMFILE waits for the next wake-up */
            }
            pthread_mutex_lock(&b.lock);
            full = b.live >= a->max_conns;
            pthread_mutex_unlock(&b.lock);
            if (full) {
                close(fd);
                continue;
            }
            take_one(&b, fd, a->serial, sfd);
            if (a->serial)
                break; /* check the stop signal between handshakes */
        }
    }

    close(lfd);
    left = stop_all(&b);
    close(sfd);
    if (left != 0)
        fprintf(stderr, "%s: %d connection threads did not stop\n", prog, left);
    return left == 0 ? 0 : 1;
}
