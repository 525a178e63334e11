/*
 * An accepted connection: reads and writes with timeouts, and a close that
 * is safe from any thread.
 *
 * Lifetime of the descriptor. Every I/O call is bracketed by op_enter() and
 * op_exit(), which count it in `busy`. Closing (by the owner, from another
 * thread, or by the server) first marks the socket and shutdown()s the
 * descriptor, which wakes a thread blocked in poll() on it; the descriptor
 * itself is closed by whoever sees `busy` drop to zero on a closed socket
 * (the close call, or the last I/O call to leave). So a descriptor is never
 * closed under a running call, and its number cannot be reused under one.
 * All of this is sequentially consistent atomics: no lock on the I/O path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "internal.h"

static const struct ssock__conn_ops plain_ops;

int ssock__socket_new(ssock_server *srv, int fd, const struct sockaddr *peer,
                      socklen_t peer_len, ssock_socket **out)
{
    const struct ssock__sys *sys = srv->sys;
    ssock_socket *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        sys->close(fd);
        return SSOCK_ENOMEM;
    }
    s->ops = &plain_ops;
    s->srv = srv;
    s->sys = sys;
    s->fd = fd;
    atomic_init(&s->state, SSOCK__OPEN);
    atomic_init(&s->srv_closed, 0);
    atomic_init(&s->busy, 0);
    atomic_init(&s->fd_owned, 1);
    atomic_init(&s->last_os_error, 0);
    s->read_timeout_ms = srv->read_timeout_ms;
    s->write_timeout_ms = srv->write_timeout_ms;
    /* An accepted TCP socket always has the listening socket's port. */
    s->local_port = srv->port;
    /* Only the address is kept: formatting it costs about a quarter of
     * an accept, so ssock_socket_peer_host() does it on first use. */
    if (peer_len <= sizeof(s->peer) &&
        (peer->sa_family == AF_INET || peer->sa_family == AF_INET6))
        memcpy(&s->peer, peer, peer_len);
    else
        s->peer.sa.sa_family = AF_UNSPEC;
    ssock__server_ref(srv);
    *out = s;
    return 0;
}

/* Close the descriptor exactly once, after it left the server's list. */
static void release_fd(ssock_socket *s)
{
    int expected = 1;
    if (!atomic_compare_exchange_strong(&s->fd_owned, &expected, 0))
        return;
    ssock__server_unlink(s->srv, s);
    s->ops->release(s);
    s->sys->close(s->fd);
}

/* The status of a socket that can no longer do I/O, or 0. */
static int dead_status(ssock_socket *s)
{
    if (atomic_load(&s->state) != SSOCK__OPEN)
        return SSOCK_ECLOSED;
    if (atomic_load(&s->srv_closed))
        return SSOCK_ESERVERCLOSED;
    return 0;
}

static void op_exit(ssock_socket *s)
{
    if (atomic_fetch_sub(&s->busy, 1) == 1 &&
        atomic_load(&s->state) != SSOCK__OPEN)
        release_fd(s);
}

static int op_enter(ssock_socket *s)
{
    atomic_fetch_add(&s->busy, 1);
    int rc = dead_status(s);
    if (rc != 0)
        op_exit(s);
    return rc;
}

/* An I/O call failed or saw end of stream: if the socket was closed under
 * it, that is the real cause. */
static int io_status(ssock_socket *s, int rc)
{
    int dead = dead_status(s);
    if (dead != 0)
        return dead;
    if (rc < 0 && rc > -4096)
        atomic_store(&s->last_os_error, -rc);
    return rc;
}

void ssock__socket_server_closed(ssock_socket *s)
{
    atomic_store(&s->srv_closed, 1);
    /* The descriptor is still ours: we are on the server's list. */
    s->sys->shutdown(s->fd, SHUT_RDWR);
}

int ssock__socket_wait(ssock_socket *s, short events, ssock__deadline d)
{
    struct pollfd p = {.fd = s->fd, .events = events, .revents = 0};
    int rc = ssock__poll(s->sys, &p, 1, d);
    if (rc == 0)
        return SSOCK_ETIMEOUT;
    return rc < 0 ? rc : 0;
}

/*
 * Accepted descriptors block (every other call passes MSG_DONTWAIT), so a
 * plain read is one recv() bounded by SO_RCVTIMEO, the way a hand-written
 * thread-per-connection server reads. A close from another thread wakes it
 * with shutdown(). If the recv() ends early (a signal) or the kernel's
 * timer disagrees with ours, the rest of the wait goes through poll() on
 * the exact monotonic deadline.
 */
static int set_rcvtimeo(ssock_socket *s)
{
    int ms = s->read_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
        return -errno;
    s->rcvtimeo_ms = ms; /* 0, the kernel's default, waits forever too */
    return 0;
}

static int plain_read(ssock_socket *s, void *buf, size_t len, size_t *nread)
{
    if (s->rcvtimeo_ms != s->read_timeout_ms) {
        int rc = set_rcvtimeo(s);
        if (rc != 0)
            return rc;
    }
    ssock__deadline d = ssock__deadline_in(s->read_timeout_ms);
    int flags = 0;
    for (;;) {
        ssize_t n = s->sys->recv(s->fd, buf, len, flags);
        if (n > 0) {
            *nread = (size_t)n;
            return 0;
        }
        if (n == 0)
            return SSOCK_EOF;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = ssock__socket_wait(s, POLLIN, d);
        if (rc != 0)
            return rc;
        flags = MSG_DONTWAIT;
    }
}

static int plain_write(ssock_socket *s, const char *buf, size_t len,
                       size_t *nwritten)
{
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t n = s->sys->send(s->fd, buf + done, len - done,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -errno;
            break;
        }
        /* Each wait for buffer space gets the whole write timeout. */
        rc = ssock__socket_wait(s, POLLOUT,
                                ssock__deadline_in(s->write_timeout_ms));
        if (rc != 0)
            break;
    }
    *nwritten = done;
    return rc;
}

static void plain_nothing(ssock_socket *s)
{
    (void)s;
}

static const struct ssock__conn_ops plain_ops = {
    .read = plain_read,
    .write = plain_write,
    .goodbye = plain_nothing,
    .release = plain_nothing,
    .destroy = plain_nothing,
};

int ssock_socket_read(ssock_socket *s, void *buf, size_t len, size_t *nread)
{
    if (nread != NULL)
        *nread = 0;
    if (s == NULL || buf == NULL || len == 0 || nread == NULL)
        return SSOCK_EINVAL;
    int rc = op_enter(s);
    if (rc != 0)
        return rc;
    rc = s->ops->read(s, buf, len, nread);
    if (rc != 0) {
        *nread = 0;
        rc = io_status(s, rc);
    }
    op_exit(s);
    return rc;
}

int ssock_socket_write(ssock_socket *s, const void *buf, size_t len,
                       size_t *nwritten)
{
    size_t done = 0;
    if (nwritten != NULL)
        *nwritten = 0;
    if (s == NULL || (buf == NULL && len > 0))
        return SSOCK_EINVAL;
    int rc = op_enter(s);
    if (rc != 0)
        return rc;
    rc = s->ops->write(s, buf, len, &done);
    if (rc != 0)
        rc = io_status(s, rc);
    op_exit(s);
    if (nwritten != NULL)
        *nwritten = done;
    return rc;
}

int ssock_socket_shutdown_write(ssock_socket *s)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    int rc = op_enter(s);
    if (rc != 0)
        return rc;
    if (s->sys->shutdown(s->fd, SHUT_WR) != 0)
        rc = io_status(s, -errno);
    op_exit(s);
    return rc;
}

int ssock_socket_close(ssock_socket *s)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    int expected = SSOCK__OPEN;
    if (!atomic_compare_exchange_strong(&s->state, &expected, SSOCK__CLOSED))
        return SSOCK_ECLOSED;
    /* Count ourselves in, so the descriptor stays ours while we use it. */
    if (atomic_fetch_add(&s->busy, 1) != 0) {
        /* Another thread is inside a call: wake it. */
        s->sys->shutdown(s->fd, SHUT_RDWR);
    } else if (!atomic_load(&s->srv_closed)) {
        /* Alone: calls that start now see the socket closed and leave. */
        s->ops->goodbye(s);
    }
    op_exit(s); /* the last one out closes the descriptor */
    return 0;
}

void ssock__socket_discard(ssock_socket *s)
{
    atomic_store(&s->state, SSOCK__CLOSED);
    release_fd(s);
    s->ops->destroy(s);
    ssock__server_unref(s->srv);
    free(s);
}

void ssock_socket_free(ssock_socket *s)
{
    if (s == NULL)
        return;
    (void)ssock_socket_close(s);
    release_fd(s);
    s->ops->destroy(s);
    ssock__server_unref(s->srv);
    free(s);
}

int ssock_socket_set_read_timeout(ssock_socket *s, int timeout_ms)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    if (timeout_ms < 0)
        return SSOCK_EBADTIMEOUT;
    s->read_timeout_ms = timeout_ms;
    return 0;
}

int ssock_socket_set_write_timeout(ssock_socket *s, int timeout_ms)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    if (timeout_ms < 0)
        return SSOCK_EBADTIMEOUT;
    s->write_timeout_ms = timeout_ms;
    return 0;
}

int ssock_socket_read_timeout(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : s->read_timeout_ms;
}

int ssock_socket_write_timeout(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : s->write_timeout_ms;
}

const char *ssock_socket_peer_host(const ssock_socket *s)
{
    if (s == NULL)
        return NULL;
    /* The handle is the library's own (never const-defined): filling the
     * cache through a const pointer is fine. */
    ssock_socket *m = (ssock_socket *)s;
    if (m->peer_host[0] == '\0' && m->peer.sa.sa_family != AF_UNSPEC)
        (void)ssock__addr_format(&m->peer.sa, m->peer_host, NULL);
    return m->peer_host;
}

int ssock_socket_peer_port(const ssock_socket *s)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    if (s->peer.sa.sa_family == AF_INET)
        return ntohs(s->peer.in4.sin_port);
    if (s->peer.sa.sa_family == AF_INET6)
        return ntohs(s->peer.in6.sin6_port);
    return 0;
}

int ssock_socket_local_port(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : s->local_port;
}

int ssock_socket_fd(const ssock_socket *s)
{
    if (s == NULL || atomic_load(&s->state) != SSOCK__OPEN)
        return -1;
    return s->fd;
}

int ssock_socket_last_os_error(const ssock_socket *s)
{
    return s == NULL ? 0 : atomic_load(&s->last_os_error);
}
