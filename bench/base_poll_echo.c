/*
 * base_poll_echo: the plain baseline. A single-threaded poll() echo server
 * written the way a competent user writes one without ssock: non-blocking
 * sockets, accept until EAGAIN, one shared read buffer, and a per-
 * connection backlog only when the peer is slower than we are (then we
 * stop reading from it until the backlog is flushed). Accepted sockets get
 * TCP_NODELAY, as ssock's do.
 *
 * With --threads it is instead the same architecture as ssock-echo, on
 * raw sockets: the accept loop hands each connection to its own thread,
 * which echoes with blocking recv()/send() through a 16 KiB buffer (the
 * skeleton of base_tls.c with a no-op handshake). Comparing ssock-echo with
 * that isolates what the library costs; comparing it with the poll() loop
 * shows what thread-per-connection costs.
 *
 *   base_poll_echo [--threads] [--port N] [--addr A] [--backlog N]
 *                  [--max-conns N]
 */
#include "base_tls.h"
#include "common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF 65536

struct conn {
    char *pending; /* bytes still to echo, NULL when none */
    size_t len;
    size_t off;
};

struct server {
    struct pollfd *pfd; /* [0] listener, [1] signals, then connections */
    struct conn *conn;  /* parallel to pfd */
    int n;
    int cap;
};

static void drop(struct server *s, int i)
{
    close(s->pfd[i].fd);
    free(s->conn[i].pending);
    s->n--;
    s->pfd[i] = s->pfd[s->n];
    s->conn[i] = s->conn[s->n];
}

/* Send as much of buf as the socket takes now. False when the peer is
 * gone. */
static bool send_some(int fd, const char *buf, size_t len, size_t *sent)
{
    *sent = 0;
    while (*sent < len) {
        ssize_t w =
            send(fd, buf + *sent, len - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        *sent += (size_t)w;
    }
    return true;
}

/* Echo freshly read bytes; keep what the peer cannot take yet and stop
 * reading from it until that is flushed. */
static bool echo_fresh(struct server *s, int i, const char *buf, size_t len)
{
    struct conn *c = &s->conn[i];
    size_t sent;

    if (!send_some(s->pfd[i].fd, buf, len, &sent))
        return false;
    if (sent == len)
        return true;
    c->pending = malloc(len - sent);
    if (c->pending == NULL)
        return false;
    memcpy(c->pending, buf + sent, len - sent);
    c->len = len - sent;
    c->off = 0;
    s->pfd[i].events = POLLOUT;
    return true;
}

static bool echo_pending(struct server *s, int i)
{
    struct conn *c = &s->conn[i];
    size_t sent;

    if (!send_some(s->pfd[i].fd, c->pending + c->off, c->len - c->off, &sent))
        return false;
    c->off += sent;
    if (c->off == c->len) {
        free(c->pending);
        c->pending = NULL;
        s->pfd[i].events = POLLIN;
    }
    return true;
}

static void accept_all(struct server *s, int max_conns)
{
    int one = 1;

    for (;;) {
        int fd =
            accept4(s->pfd[0].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE: try again on the next wake-up */
        }
        if (s->n - 2 >= max_conns || s->n == s->cap) {
            close(fd);
            continue;
        }
        /* As ssock does (its listener's TCP_NODELAY is inherited). */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        s->pfd[s->n] = (struct pollfd){fd, POLLIN, 0};
        s->conn[s->n] = (struct conn){NULL, 0, 0};
        s->n++;
    }
}

/* --threads: the "session" is the fd itself. */
static void *plain_new(void *ctx, int fd)
{
    (void)ctx;
    return (void *)(intptr_t)(fd + 1);
}

static int plain_handshake(void *sess)
{
    (void)sess;
    return 0;
}

static long plain_read(void *sess, void *buf, size_t len)
{
    int fd = (int)(intptr_t)sess - 1;

    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return (long)n;
        if (errno != EINTR)
            return -1;
    }
}

static int plain_write(void *sess, const void *buf, size_t len)
{
    int fd = (int)(intptr_t)sess - 1;
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL); /* blocking fd */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void plain_free(void *sess, int goodbye)
{
    (void)sess;
    (void)goodbye;
}

static const struct base_tls_ops plain_ops = {
    .session_new = plain_new,
    .handshake = plain_handshake,
    .read = plain_read,
    .write = plain_write,
    .session_free = plain_free,
};

int main(int argc, char **argv)
{
    struct bench_server_args a;
    struct server s;
    static char buf[READ_BUF];
    int rc = bench_parse_server_args("base_poll_echo", false, argc, argv, &a);
    int lfd, sfd;

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (a.threads) {
        return base_tls_run("base_poll_echo", &plain_ops, NULL, &a);
    }
    bench_raise_nofile();
    sfd = bench_stop_signals();
    if (sfd < 0)
        return 1;
    lfd = bench_listen("base_poll_echo", a.addr, a.port, a.backlog);
    if (lfd < 0)
        return 1;

    s.cap = a.max_conns + 2;
    s.pfd = calloc((size_t)s.cap, sizeof(*s.pfd));
    s.conn = calloc((size_t)s.cap, sizeof(*s.conn));
    if (s.pfd == NULL || s.conn == NULL) {
        fputs("base_poll_echo: out of memory\n", stderr);
        return 1;
    }
    s.pfd[0] = (struct pollfd){lfd, POLLIN, 0};
    s.pfd[1] = (struct pollfd){sfd, POLLIN, 0};
    s.n = 2;

    for (;;) {
        int ready = poll(s.pfd, (nfds_t)s.n, -1);
        int n_before;

        if (ready < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        if (s.pfd[1].revents != 0)
            break;
        /* Walk backwards so that drop()'s swap never skips an entry. */
        n_before = s.n;
        for (int i = n_before - 1; i >= 2; i--) {
            struct conn *c = &s.conn[i];
            short re = s.pfd[i].revents;
            bool ok = true;

            if (re == 0)
                continue;
            s.pfd[i].revents = 0;
            if (c->pending != NULL) {
                if (re & (POLLOUT | POLLERR | POLLHUP))
                    ok = echo_pending(&s, i);
            } else if (re & (POLLIN | POLLERR | POLLHUP)) {
                ssize_t r = recv(s.pfd[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (r > 0)
                    ok = echo_fresh(&s, i, buf, (size_t)r);
                else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    ok = false;
            }
            if (!ok)
                drop(&s, i);
        }
        if (s.pfd[0].revents & POLLIN)
            accept_all(&s, a.max_conns);
    }

    while (s.n > 2)
        drop(&s, s.n - 1);
    close(lfd);
    close(sfd);
    free(s.pfd);
    free(s.conn);
    return 0;
}
