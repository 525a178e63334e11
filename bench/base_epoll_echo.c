/*
 * base_epoll_echo: the plain epoll baseline ("a hand-written epoll loop").
 * base_poll_echo's design on epoll: one thread, non-blocking sockets,
 * accept4() until EAGAIN, one shared read buffer, a per-connection backlog
 * only when the peer is slower than we are (then EPOLLOUT instead of
 * EPOLLIN until it is flushed), TCP_NODELAY on accepted sockets, level-
 * triggered. A wake costs O(ready), not O(connections): this is what
 * ssock-echo --event is measured against, and what nginx's backend is.
 *
 *   base_epoll_echo [--port N] [--addr A] [--backlog N] [--max-conns N]
 */
#include "common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF 65536
#define MAX_EVENTS 256

struct conn {
    int fd;
    char *pending; /* bytes still to echo, NULL when none */
    size_t len;
    size_t off;
};

/* The listener and the signal fd are told apart by these markers. */
static char listener_tag, signal_tag;

/* close() takes the fd out of the epoll set (it is never dup()ed): no
 * EPOLL_CTL_DEL, one system call less per connection. */
static void drop(struct conn *c, int *n)
{
    close(c->fd);
    free(c->pending);
    free(c);
    (*n)--;
}

static void watch(int ep, struct conn *c, uint32_t ev)
{
    struct epoll_event ee = {.events = ev, .data.ptr = c};

    (void)epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ee);
}

/* Send what the socket takes now; false when the peer is gone. */
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

static bool echo_fresh(int ep, struct conn *c, const char *buf, size_t len)
{
    size_t sent;

    if (!send_some(c->fd, buf, len, &sent))
        return false;
    if (sent == len)
        return true;
    c->pending = malloc(len - sent);
    if (c->pending == NULL)
        return false;
    memcpy(c->pending, buf + sent, len - sent);
    c->len = len - sent;
    c->off = 0;
    watch(ep, c, EPOLLOUT);
    return true;
}

static bool echo_pending(int ep, struct conn *c)
{
    size_t sent;

    if (!send_some(c->fd, c->pending + c->off, c->len - c->off, &sent))
        return false;
    c->off += sent;
    if (c->off == c->len) {
        free(c->pending);
        c->pending = NULL;
        watch(ep, c, EPOLLIN);
    }
    return true;
}

static void accept_all(int ep, int lfd, int max_conns, int *n)
{
    int one = 1;

    for (;;) {
        struct epoll_event ee;
        struct conn *c;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE: try again on the next wake-up */
        }
        c = *n < max_conns ? calloc(1, sizeof(*c)) : NULL;
        if (c == NULL) {
            close(fd);
            continue;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        ee.events = EPOLLIN;
        ee.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee) != 0) {
            close(fd);
            free(c);
            continue;
        }
        (*n)++;
    }
}

int main(int argc, char **argv)
{
    static char buf[READ_BUF];
    struct bench_server_args a;
    struct epoll_event evs[MAX_EVENTS], ee;
    int rc = bench_parse_server_args("base_epoll_echo", false, argc, argv, &a);
    int lfd, sfd, ep, n = 0;
    bool stop = false;

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (a.threads) {
        fputs("base_epoll_echo: --threads is base_poll_echo's\n", stderr);
        return 2;
    }
    bench_raise_nofile();
    sfd = bench_stop_signals();
    if (sfd < 0)
        return 1;
    lfd = bench_listen("base_epoll_echo", a.addr, a.port, a.backlog);
    if (lfd < 0)
        return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    ee.events = EPOLLIN;
    ee.data.ptr = &listener_tag;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ee) != 0)
        return 1;
    ee.data.ptr = &signal_tag;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ee) != 0)
        return 1;

    while (!stop) {
        int ready = epoll_wait(ep, evs, MAX_EVENTS, -1);

        if (ready < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < ready; i++) {
            void *p = evs[i].data.ptr;
            uint32_t re = evs[i].events;
            struct conn *c = p;
            bool ok = true;

            if (p == &signal_tag) {
                stop = true;
                continue;
            }
            if (p == &listener_tag) {
                accept_all(ep, lfd, a.max_conns, &n);
                continue;
            }
            if (c->pending != NULL) {
                if (re & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    ok = echo_pending(ep, c);
            } else if (re & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (r > 0)
                    ok = echo_fresh(ep, c, buf, (size_t)r);
                else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    ok = false;
            }
            if (!ok)
                drop(c, &n);
        }
    }
    /* Connections still open are closed by exit (the baseline keeps no
     * list of them). */
    close(ep);
    close(lfd);
    close(sfd);
    return 0;
}
