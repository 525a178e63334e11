/*
 * An accepted connection: reads and writes with timeouts, and a close that
 * is safe from any thread.
 *
 * Lifetime. Every call that uses the descriptor is bracketed by op_enter()
 * and op_exit(), which count it in the socket's one atomic word `ctl`
 * (src/internal.h). Closing (by the owner, from another thread, or by the
 * server) marks the word CLOSED in the same atomic step that counts the
 * closer in, then shutdown()s the descriptor to wake a thread blocked on
 * it. Whoever brings the count to zero on a closed socket releases the
 * descriptor and the TLS session (the close, or the last I/O call to
 * leave); whoever brings it to zero once the owner has called free frees
 * the handle. So a descriptor is never closed under a running call, its
 * number cannot be reused under one, a free never pulls memory from under
 * a close still sending close_notify, and nothing on the I/O path locks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "internal.h"
#include "proxy.h"

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
    atomic_init(&s->ctl, 0u);
    atomic_init(&s->srv_closed, 0);
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
    s->tcp_peer = s->peer;
    s->nonblocking = srv->nonblocking_sockets;
    ssock__server_ref(srv);
    *out = s;
    return 0;
}

/* Release the descriptor and the heavy state, after leaving the server's
 * list (so server close never shuts down a released descriptor). */
static void release(ssock_socket *s)
{
    ssock__server_unlink(s->srv, s);
    s->ops->release(s);
    s->sys->close(s->fd);
}

static void destroy(ssock_socket *s)
{
    s->ops->destroy(s);
    free(s->proxy_tlvs);
    ssock__server_unref(s->srv);
    free(s);
}

/*
 * Leave: count ourselves out. The last one out of a closed socket first
 * releases it *while still counted in* (so a free arriving meanwhile cannot
 * see the count at zero and free the memory under the release), then
 * leaves; whoever brings the count to zero on a freed socket frees it. The
 * caller must not touch `s` afterwards unless it still holds a count.
 */
static void op_exit_as(ssock_socket *s, int may_release)
{
    unsigned old = atomic_load(&s->ctl), nv;
    for (;;) {
        /* A close that holds the release back (non-blocking mode) still
         * releases once the owner has freed the handle. */
        if ((may_release || (old & SSOCK__CTL_FREED)) &&
            old < 2 * SSOCK__CTL_BUSY && (old & SSOCK__CTL_CLOSED) &&
            !(old & SSOCK__CTL_RELEASED)) {
            /* We are the only one in: claim the release, then do it. */
            if (atomic_compare_exchange_weak(&s->ctl, &old,
                                             old | SSOCK__CTL_RELEASED)) {
                release(s);
                old = atomic_load(&s->ctl);
            }
            continue;
        }
        nv = old - SSOCK__CTL_BUSY;
        if (atomic_compare_exchange_weak(&s->ctl, &old, nv))
            break;
    }
    if (nv < SSOCK__CTL_BUSY && (nv & SSOCK__CTL_FREED))
        destroy(s);
}

static void op_exit(ssock_socket *s)
{
    op_exit_as(s, 1);
}

/* Leave after a call of the owner that returned `rc`. In non-blocking
 * mode an event loop may be waiting on the descriptor in its own set: it
 * is released only by a call that reports the close (SSOCK_ECLOSED), the
 * next one that starts, or free, never on the way out of a call that
 * succeeded, which would drop it from the loop's set unseen. */
static void op_done(ssock_socket *s, int rc)
{
    op_exit_as(s, rc == SSOCK_ECLOSED || !atomic_load(&s->nonblocking));
}

/* The status of a socket that can no longer do I/O, or 0. */
int ssock__socket_dead(ssock_socket *s)
{
    if (atomic_load(&s->ctl) & SSOCK__CTL_CLOSED)
        return SSOCK_ECLOSED;
    if (atomic_load(&s->srv_closed))
        return SSOCK_ESERVERCLOSED;
    return 0;
}

static int op_enter(ssock_socket *s)
{
    unsigned old = atomic_fetch_add(&s->ctl, SSOCK__CTL_BUSY);
    int rc = (old & SSOCK__CTL_CLOSED) ? SSOCK_ECLOSED : ssock__socket_dead(s);
    /* Non-blocking: the descriptor may sit in the owner's own loop set;
     * only free (or a call that reports the close from inside) releases
     * it, not every call that finds the socket closed (pending() and the
     * address getters report nothing). */
    if (rc != 0)
        op_exit_as(s, !atomic_load(&s->nonblocking));
    return rc;
}

/* Mark the socket closed (and, with `extra`, freed) and count the caller
 * in, in one step. Returns the word as it was. */
static unsigned mark_closed(ssock_socket *s, unsigned extra)
{
    unsigned old = atomic_load(&s->ctl), nv;
    do {
        nv = (old | SSOCK__CTL_CLOSED | extra) + SSOCK__CTL_BUSY;
    } while (!atomic_compare_exchange_weak(&s->ctl, &old, nv));
    return old;
}

static int io_status(ssock_socket *s, int rc)
{
    int dead = ssock__socket_dead(s);
    if (dead != 0)
        return dead;
    if (SSOCK__IS_ERRNO(rc))
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

static int plain_read_nb(ssock_socket *s, void *buf, size_t len, size_t *nread)
{
    for (;;) {
        ssize_t n = s->sys->recv(s->fd, buf, len, MSG_DONTWAIT);
        if (n > 0) {
            *nread = (size_t)n;
            return 0;
        }
        if (n == 0)
            return SSOCK_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return ssock__nb_read_blocked(s, SSOCK_WANT_READ);
        return -errno;
    }
}

static int plain_read(ssock_socket *s, void *buf, size_t len, size_t *nread)
{
    if (s->nonblocking)
        return plain_read_nb(s, buf, len, nread);
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
        if (s->nonblocking) {
            rc = ssock__nb_write_blocked(s, SSOCK_WANT_WRITE, done > 0);
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

static int plain_shutdown_write(ssock_socket *s)
{
    (void)s;
    return 0;
}

static size_t plain_pending(ssock_socket *s)
{
    (void)s;
    return 0;
}

static int plain_flush(ssock_socket *s)
{
    (void)s;
    return 0;
}

static const struct ssock__conn_ops plain_ops = {
    .read = plain_read,
    .write = plain_write,
    .shutdown_write = plain_shutdown_write,
    .goodbye = plain_nothing,
    .pending = plain_pending,
    .flush = plain_flush,
    .release = plain_nothing,
    .destroy = plain_nothing,
};

/* ---- non-blocking mode ----------------------------------------------------
 */

static uint64_t ms_ns(int ms)
{
    return (uint64_t)ms * 1000000u;
}

int ssock__nb_read_blocked(ssock_socket *s, int want)
{
    s->want = want;
    if (s->read_timeout_ms == SSOCK_WAIT_FOREVER)
        return SSOCK_EAGAIN;
    uint64_t now = ssock__now_ns();
    if (now - s->read_idle_since < ms_ns(s->read_timeout_ms))
        return SSOCK_EAGAIN;
    s->read_idle_since = now; /* the idle clock starts again */
    return SSOCK_ETIMEOUT;
}

int ssock__nb_write_blocked(ssock_socket *s, int want, int progressed)
{
    uint64_t now = ssock__now_ns();
    s->want = want;
    if (progressed || s->write_stall_since == 0) {
        s->write_stall_since = now;
        return SSOCK_EAGAIN;
    }
    if (s->write_timeout_ms != SSOCK_WAIT_FOREVER &&
        now - s->write_stall_since >= ms_ns(s->write_timeout_ms)) {
        s->write_stall_since = 0;
        return SSOCK_ETIMEOUT;
    }
    return SSOCK_EAGAIN;
}

/* After a call in non-blocking mode: what to wait for, and progress. */
static void nb_after(ssock_socket *s, int rc, int read_progress)
{
    if (!s->nonblocking)
        return;
    if (rc != SSOCK_EAGAIN)
        s->want = s->queued ? SSOCK_WANT_WRITE : 0;
    if (read_progress)
        s->read_idle_since = ssock__now_ns();
    if (rc == 0 && !s->queued)
        s->write_stall_since = 0;
}

int ssock_socket_set_nonblocking(ssock_socket *s, int on)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    int rc = op_enter(s);
    if (rc != 0)
        return rc;
    if (on && !s->nonblocking) {
        s->read_idle_since = ssock__now_ns();
        s->write_stall_since = 0;
    }
    s->nonblocking = on != 0;
    s->want = 0;
    op_done(s, 0);
    return 0;
}

int ssock_socket_nonblocking(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : s->nonblocking;
}

int ssock_socket_want(const ssock_socket *s)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    if (s->want != 0)
        return s->want;
    return s->queued ? SSOCK_WANT_WRITE : 0;
}

int ssock_socket_flush(ssock_socket *s)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    int rc = op_enter(s);
    if (rc != 0)
        return rc;
    rc = s->ops->flush(s);
    if (rc != 0)
        rc = io_status(s, rc);
    nb_after(s, rc, 0);
    op_done(s, rc);
    return rc;
}

int ssock_socket_next_timeout(const ssock_socket *s)
{
    if (s == NULL || !s->nonblocking ||
        (atomic_load(&s->ctl) & SSOCK__CTL_CLOSED))
        return -1;
    /* Idle clocks as deadlines: ssock__deadline_poll_ms() rounds up, says
     * 0 once passed and -1 for "never" (0). */
    ssock__deadline r = 0, w = 0;
    if (s->read_timeout_ms != SSOCK_WAIT_FOREVER)
        r = s->read_idle_since + ms_ns(s->read_timeout_ms);
    if (s->write_timeout_ms != SSOCK_WAIT_FOREVER && s->write_stall_since != 0)
        w = s->write_stall_since + ms_ns(s->write_timeout_ms);
    return ssock__deadline_poll_ms(r == 0 || (w != 0 && w < r) ? w : r);
}

/* ---- I/O ------------------------------------------------------------------
 */

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
    nb_after(s, rc, rc == 0);
    op_done(s, rc);
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
    nb_after(s, rc, 0);
    op_done(s, rc);
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
    rc = s->ops->shutdown_write(s);
    if (rc == 0 && s->sys->shutdown(s->fd, SHUT_WR) != 0)
        rc = -errno;
    if (rc != 0)
        rc = io_status(s, rc);
    nb_after(s, rc, 0);
    op_done(s, rc);
    return rc;
}

size_t ssock_socket_pending(const ssock_socket *cs)
{
    if (cs == NULL)
        return 0;
    /* The handle is the library's own: counting ourselves in through a
     * const pointer is fine, and keeps the session alive while we ask. */
    ssock_socket *s = (ssock_socket *)cs;
    if (op_enter(s) != 0)
        return 0;
    size_t n = s->ops->pending(s);
    op_done(s, 0);
    return n;
}

int ssock_socket_close(ssock_socket *s)
{
    if (s == NULL)
        return SSOCK_EINVAL;
    unsigned old = atomic_load(&s->ctl);
    if (old & SSOCK__CTL_CLOSED)
        return SSOCK_ECLOSED;
    /* Closed and counted in, in one step; a racing close loses here. */
    old = mark_closed(s, 0);
    if (old & SSOCK__CTL_CLOSED) {
        op_exit(s);
        return SSOCK_ECLOSED;
    }
    if (old >= SSOCK__CTL_BUSY) {
        /* Another thread is inside a call: wake it; the last one out
         * releases. Our count keeps the descriptor ours meanwhile. */
        s->sys->shutdown(s->fd, SHUT_RDWR);
    } else if (!atomic_load(&s->srv_closed)) {
        /* Alone: calls that start now see the socket closed and leave. */
        s->ops->goodbye(s);
    }
    if (atomic_load(&s->nonblocking)) {
        /* An event loop may be waiting on the descriptor in its own
         * epoll/poll, outside any call of ours: closing the descriptor
         * would drop it from that set silently. Shut the connection down
         * (the loop wakes: readable, hang-up) and leave the release to
         * the owner's next call or free. */
        s->sys->shutdown(s->fd, SHUT_RDWR);
        op_exit_as(s, 0);
        return 0;
    }
    op_exit(s); /* the last one out releases (and frees, after free) */
    return 0;
}

void ssock__socket_discard(ssock_socket *s)
{
    /* Never handed out: nobody else holds it. */
    (void)mark_closed(s, SSOCK__CTL_FREED);
    op_exit(s);
}

void ssock_socket_free(ssock_socket *s)
{
    if (s == NULL)
        return;
    (void)ssock_socket_close(s);
    /* Hand the handle over: if a close from another thread is still
     * running (sending close_notify), it frees the handle when it leaves;
     * otherwise we free it here. Either way free returns at once. */
    (void)mark_closed(s, SSOCK__CTL_FREED);
    op_exit(s);
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

int ssock_socket_peer_addr(const ssock_socket *s, struct sockaddr_storage *addr,
                           socklen_t *len)
{
    if (s == NULL || addr == NULL || len == NULL)
        return SSOCK_EINVAL;
    memset(addr, 0, sizeof(*addr));
    socklen_t n = 0;
    if (s->peer.sa.sa_family == AF_INET)
        n = sizeof(s->peer.in4);
    else if (s->peer.sa.sa_family == AF_INET6)
        n = sizeof(s->peer.in6);
    memcpy(addr, &s->peer, n);
    *len = n;
    return 0;
}

const char *ssock_socket_tcp_peer_host(const ssock_socket *s)
{
    if (s == NULL)
        return NULL;
    if (!s->proxied)
        return ssock_socket_peer_host(s);
    ssock_socket *m = (ssock_socket *)s; /* the library's own handle */
    if (m->tcp_peer_host[0] == '\0' && m->tcp_peer.sa.sa_family != AF_UNSPEC)
        (void)ssock__addr_format(&m->tcp_peer.sa, m->tcp_peer_host, NULL);
    return m->tcp_peer_host;
}

static int port_of(const union ssock__peer *p)
{
    if (p->sa.sa_family == AF_INET)
        return ntohs(p->in4.sin_port);
    if (p->sa.sa_family == AF_INET6)
        return ntohs(p->in6.sin6_port);
    return 0;
}

int ssock_socket_tcp_peer_port(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : port_of(&s->tcp_peer);
}

static socklen_t len_of(const union ssock__peer *p)
{
    if (p->sa.sa_family == AF_INET)
        return sizeof(p->in4);
    if (p->sa.sa_family == AF_INET6)
        return sizeof(p->in6);
    return 0;
}

int ssock_socket_tcp_peer_addr(const ssock_socket *s,
                               struct sockaddr_storage *addr, socklen_t *len)
{
    if (s == NULL || addr == NULL || len == NULL)
        return SSOCK_EINVAL;
    memset(addr, 0, sizeof(*addr));
    *len = len_of(&s->tcp_peer);
    memcpy(addr, &s->tcp_peer, *len);
    return 0;
}

int ssock_socket_proxied(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : s->proxied;
}

static int tlv_slot(int type)
{
    switch (type) {
    case SSOCK_PROXY_TLV_ALPN:
        return 0;
    case SSOCK_PROXY_TLV_AUTHORITY:
        return 1;
    case SSOCK_PROXY_TLV_UNIQUE_ID:
        return 2;
    default:
        return -1;
    }
}

const void *ssock_socket_proxy_tlv(const ssock_socket *s, int type, size_t *len)
{
    if (len != NULL)
        *len = 0;
    int i = tlv_slot(type);
    if (s == NULL || len == NULL || i < 0 || s->proxy_tlvs == NULL ||
        s->tlv_off[i] == (size_t)-1)
        return NULL;
    *len = s->tlv_len[i];
    return s->proxy_tlvs + s->tlv_off[i];
}

int ssock__socket_set_proxy(ssock_socket *s,
                            const struct ssock__proxy_result *r)
{
    const uint8_t *v[3] = {r->alpn, r->authority, r->unique_id};
    size_t n[3] = {r->alpn_len, r->authority_len, r->unique_id_len};
    size_t total = 0;
    for (int i = 0; i < 3; i++)
        total += v[i] != NULL ? n[i] : 0;
    if (v[0] != NULL || v[1] != NULL || v[2] != NULL) {
        s->proxy_tlvs = malloc(total > 0 ? total : 1);
        if (s->proxy_tlvs == NULL)
            return SSOCK_ENOMEM;
        size_t off = 0;
        for (int i = 0; i < 3; i++) {
            s->tlv_off[i] = (size_t)-1;
            if (v[i] == NULL)
                continue;
            memcpy(s->proxy_tlvs + off, v[i], n[i]);
            s->tlv_off[i] = off;
            s->tlv_len[i] = n[i];
            off += n[i];
        }
    }
    if (r->local)
        return 0;
    s->tcp_peer_host[0] = '\0';
    memset(&s->peer, 0, sizeof(s->peer));
    if (r->src_len <= sizeof(s->peer))
        memcpy(&s->peer, &r->src, r->src_len);
    s->peer_host[0] = '\0';
    s->proxied = 1;
    return 0;
}

/* getsockname() once, on first use, inside the busy count (the descriptor
 * stays ours). The owner's thread only, like every getter. */
static int fetch_local(ssock_socket *s)
{
    if (s->local_len != 0)
        return 0;
    if (op_enter(s) != 0)
        return SSOCK_ECLOSED;
    socklen_t len = sizeof(s->local);
    int rc = 0;
    if (getsockname(s->fd, (struct sockaddr *)&s->local, &len) != 0)
        rc = -errno;
    else
        s->local_len = len;
    op_done(s, rc);
    return rc;
}

int ssock_socket_local_addr(const ssock_socket *cs,
                            struct sockaddr_storage *addr, socklen_t *len)
{
    if (cs == NULL || addr == NULL || len == NULL)
        return SSOCK_EINVAL;
    ssock_socket *s = (ssock_socket *)cs; /* the library's own handle */
    int rc = fetch_local(s);
    if (rc != 0)
        return rc;
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, &s->local, s->local_len);
    *len = s->local_len;
    return 0;
}

const char *ssock_socket_local_host(const ssock_socket *cs)
{
    if (cs == NULL)
        return NULL;
    ssock_socket *s = (ssock_socket *)cs;
    if (s->local_host[0] == '\0' && fetch_local(s) == 0)
        (void)ssock__addr_format((struct sockaddr *)&s->local, s->local_host,
                                 NULL);
    return s->local_host;
}

void *ssock_socket_user_data(const ssock_socket *s)
{
    return s == NULL ? NULL : s->user_data;
}

void ssock_socket_set_user_data(ssock_socket *s, void *data)
{
    if (s != NULL)
        s->user_data = data;
}

int ssock_socket_local_port(const ssock_socket *s)
{
    return s == NULL ? SSOCK_EINVAL : s->local_port;
}

int ssock_socket_fd(const ssock_socket *s)
{
    if (s == NULL || (atomic_load(&s->ctl) & SSOCK__CTL_CLOSED))
        return -1;
    return s->fd;
}

int ssock_socket_last_os_error(const ssock_socket *s)
{
    return s == NULL ? 0 : atomic_load(&s->last_os_error);
}
