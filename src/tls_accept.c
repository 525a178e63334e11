/*
 * The TLS acceptor: handshakes run concurrently and non-blocking inside
 * the accepting thread. One poll() covers the listening socket, the wake
 * fd and every pending handshake; the first handshake to finish is
 * returned, the others stay pending for the next accept() call.
 *
 * What holds whatever clients do:
 *  - accept() ends within its timeout plus at most one handshake step: the
 *    deadline is checked after every step, and every step has a bounded
 *    budget of transport reads (tls_socket.c), so a flood of records or a
 *    burst of ClientHellos cannot hold it;
 *  - steps are served fairly: each call starts stepping where the last one
 *    stopped, so no ready handshake starves behind others;
 *  - each pending handshake has one total deadline; when the set is full
 *    the oldest is dropped, and one source (IPv4 address or IPv6 prefix)
 *    past its own limit drops its own oldest, never another source's;
 *  - failed handshakes are counted and closed, never returned, and never
 *    end accept() early; a close wins over a timeout.
 * The set is kept oldest first (so deadlines ascend) and grows with use up
 * to max_handshakes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ssock/tls.h"
#include "tls_backend.h"

/* New connections taken from the backlog per wake-up, at most. */
#define ACCEPT_BATCH 32
/* First allocation of the pending set. */
#define FIRST_ALLOC 16

struct hs {
    ssock_socket *sock;
    ssock__deadline deadline;
    short events;
    unsigned char src[16]; /* source key: address masked to its prefix */
};

struct ssock__hs_set {
    int cap;   /* max_handshakes */
    int alloc; /* entries allocated in v (pfd has 2 more) */
    int per_source;
    int prefix6;
    int timeout_ms;
    int n;
    int cursor;           /* where the next stepping pass starts */
    atomic_int in_flight; /* n, for other threads */
    struct hs *v;         /* oldest first, so deadlines ascend */
    struct pollfd *pfd;   /* 2 + alloc */
    char last_error[256]; /* backend text of the last failed handshake */
};

int ssock__hs_open(ssock_server *srv)
{
    struct ssock__hs_set *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return SSOCK_ENOMEM;
    hs->cap = ssock__tls_config_max_handshakes(srv->tls);
    hs->per_source = ssock__tls_config_max_per_source(srv->tls);
    hs->prefix6 = ssock__tls_config_source_prefix6(srv->tls);
    hs->timeout_ms = ssock__tls_config_handshake_timeout(srv->tls);
    atomic_init(&hs->in_flight, 0);
    hs->pfd = calloc(2, sizeof(*hs->pfd));
    if (hs->pfd == NULL) {
        free(hs);
        return SSOCK_ENOMEM;
    }
    srv->hs = hs;
    return 0;
}

static void set_count(struct ssock__hs_set *hs, int n)
{
    hs->n = n;
    atomic_store(&hs->in_flight, n);
}

void ssock__hs_close(ssock_server *srv)
{
    struct ssock__hs_set *hs = srv->hs;
    if (hs == NULL)
        return;
    /* Empty the set before discarding, so nothing can reach an entry
     * twice. */
    int n = hs->n;
    set_count(hs, 0);
    atomic_fetch_add(&srv->n_hs_dropped, (unsigned long)n);
    for (int i = 0; i < n; i++) {
        ssock__server_event(srv, SSOCK_EVENT_HANDSHAKE_DROPPED, hs->v[i].sock,
                            SSOCK_ECLOSED, NULL);
        ssock__socket_discard(hs->v[i].sock);
    }
}

void ssock__hs_free(ssock_server *srv)
{
    struct ssock__hs_set *hs = srv->hs;
    if (hs == NULL)
        return;
    ssock__hs_close(srv);
    srv->hs = NULL;
    free(hs->v);
    free(hs->pfd);
    free(hs);
}

static int hs_in_flight(const ssock_server *srv)
{
    struct ssock__hs_set *hs = srv->hs;
    return hs == NULL ? 0 : atomic_load(&hs->in_flight);
}

/* Room for one more entry: 0, or SSOCK_ENOMEM. */
static int grow(struct ssock__hs_set *hs)
{
    if (hs->n < hs->alloc)
        return 0;
    int alloc = hs->alloc == 0 ? FIRST_ALLOC : hs->alloc * 2;
    if (alloc > hs->cap)
        alloc = hs->cap;
    struct hs *v = realloc(hs->v, (size_t)alloc * sizeof(*v));
    if (v == NULL)
        return SSOCK_ENOMEM;
    hs->v = v;
    struct pollfd *pfd = realloc(hs->pfd, (size_t)(alloc + 2) * sizeof(*pfd));
    if (pfd == NULL)
        return SSOCK_ENOMEM;
    hs->pfd = pfd;
    hs->alloc = alloc;
    return 0;
}

/* Remove entry i, keeping the order. */
static void remove_at(struct ssock__hs_set *hs, int i)
{
    memmove(hs->v + i, hs->v + i + 1, (size_t)(hs->n - i - 1) * sizeof(*hs->v));
    set_count(hs, hs->n - 1);
    if (hs->cursor > i)
        hs->cursor--;
}

/* Drop pending handshakes whose deadline has passed. */
static void expire(ssock_server *srv, struct ssock__hs_set *hs, uint64_t now)
{
    int i = 0;
    while (i < hs->n && hs->v[i].deadline <= now) {
        ssock__server_event(srv, SSOCK_EVENT_HANDSHAKE_TIMED_OUT, hs->v[i].sock,
                            SSOCK_ETIMEOUT, NULL);
        ssock__socket_discard(hs->v[i].sock);
        atomic_fetch_add(&srv->n_hs_timed_out, 1);
        i++;
    }
    if (i > 0) {
        memmove(hs->v, hs->v + i, (size_t)(hs->n - i) * sizeof(*hs->v));
        set_count(hs, hs->n - i);
        hs->cursor = hs->cursor > i ? hs->cursor - i : 0;
    }
}

/* The source key of a peer: IPv4 (plain or mapped) as ::ffff:a.b.c.d,
 * IPv6 masked to the prefix. */
static void source_key(const ssock_socket *s, int prefix6,
                       unsigned char key[16])
{
    memset(key, 0, 16);
    if (s->peer.sa.sa_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &s->peer.in4.sin_addr, 4);
        return;
    }
    if (s->peer.sa.sa_family != AF_INET6)
        return; /* unknown: all such peers are one source */
    const unsigned char *a = s->peer.in6.sin6_addr.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) {
        memcpy(key, a, 16);
        return;
    }
    int bits = prefix6;
    for (int i = 0; i < 16 && bits > 0; i++, bits -= 8)
        key[i] =
            bits >= 8 ? a[i] : (unsigned char)(a[i] & (0xff << (8 - bits)));
}

/* Run one handshake step: 1 still pending (events updated), 0 done, -1
 * failed (the socket is gone). */
static int step(ssock_server *srv, struct hs *h)
{
    int rc = ssock__tls_socket_handshake(h->sock);
    if (rc == 0) {
        atomic_fetch_add(&srv->n_hs_ok, 1);
        return 0;
    }
    if (rc > 0) {
        h->events = (short)rc;
        return 1;
    }
    atomic_fetch_add(&srv->n_hs_failed, 1);
    ssock__tls_socket_error(h->sock, srv->hs->last_error,
                            sizeof(srv->hs->last_error));
    ssock__server_event(srv, SSOCK_EVENT_HANDSHAKE_FAILED, h->sock, rc,
                        srv->hs->last_error);
    ssock__socket_discard(h->sock);
    return -1;
}

/*
 * Step the handshakes whose descriptor is ready, starting at the cursor
 * and going round once, until one finishes or the accept deadline passes.
 * Returns the finished socket, or NULL.
 */
static ssock_socket *step_ready(ssock_server *srv, struct ssock__hs_set *hs,
                                ssock__deadline deadline)
{
    ssock_socket *done = NULL;
    int n = hs->n, start = n > 0 ? hs->cursor % n : 0, last = -1;
    for (int t = 0; t < n && done == NULL; t++) {
        int i = (start + t) % n;
        if (hs->pfd[2 + i].revents == 0)
            continue;
        last = i;
        int r = step(srv, &hs->v[i]);
        if (r <= 0) {
            if (r == 0)
                done = hs->v[i].sock;
            hs->v[i].sock = NULL; /* gone from the set */
        }
        if (ssock__deadline_expired(deadline) ||
            atomic_load(&srv->state) != SSOCK__OPEN)
            break;
    }
    /* Compact, keeping the order; the next pass starts after `last`. */
    int j = 0, cursor = 0;
    for (int i = 0; i < n; i++) {
        if (i == last + 1)
            cursor = j;
        if (hs->v[i].sock != NULL)
            hs->v[j++] = hs->v[i];
    }
    if (last + 1 >= n)
        cursor = 0;
    set_count(hs, j);
    hs->cursor = last < 0 ? hs->cursor : cursor;
    return done;
}

/* Make room for a new handshake from `key`: the source's own oldest goes
 * when the source is at its limit, the oldest of all when the set is
 * full. */
static void make_room(ssock_server *srv, struct ssock__hs_set *hs,
                      const unsigned char key[16])
{
    if (hs->per_source < hs->cap) {
        int count = 0, oldest = -1;
        for (int i = 0; i < hs->n; i++) {
            if (memcmp(hs->v[i].src, key, 16) == 0) {
                if (oldest < 0)
                    oldest = i;
                count++;
            }
        }
        if (count >= hs->per_source) {
            ssock__server_event(srv, SSOCK_EVENT_HANDSHAKE_DROPPED,
                                hs->v[oldest].sock, 0, NULL);
            ssock__socket_discard(hs->v[oldest].sock);
            remove_at(hs, oldest);
            atomic_fetch_add(&srv->n_hs_source_limited, 1);
            atomic_fetch_add(&srv->n_hs_dropped, 1);
        }
    }
    if (hs->n == hs->cap) {
        ssock__server_event(srv, SSOCK_EVENT_HANDSHAKE_DROPPED, hs->v[0].sock,
                            0, NULL);
        ssock__socket_discard(hs->v[0].sock);
        remove_at(hs, 0);
        atomic_fetch_add(&srv->n_hs_dropped, 1);
    }
}

/* Take new connections off the backlog and start their handshakes, until
 * the batch is done, the backlog is empty or the accept deadline passed.
 * Returns 0, a finished socket in *done (rare: no handshake finishes in
 * one step on the server side), or -errno (EMFILE...) to report. */
static int take_new(ssock_server *srv, struct ssock__hs_set *hs,
                    ssock__deadline deadline, ssock_socket **done)
{
    for (int k = 0; k < ACCEPT_BATCH; k++) {
        ssock_socket *sock = NULL;
        int rc = ssock__server_accept_fd(srv, &sock);
        if (rc == -EAGAIN)
            return 0;
        if (rc == SSOCK_ENOMEM)
            continue;
        if (rc != 0)
            return rc;
        rc = ssock__tls_socket_attach(sock, srv->tls);
        if (rc != 0) {
            atomic_fetch_add(&srv->n_hs_failed, 1);
            ssock__server_event(srv, SSOCK_EVENT_REFUSED, sock, rc, NULL);
            ssock__socket_discard(sock);
            continue;
        }
        struct hs h = {sock, ssock__deadline_in(hs->timeout_ms), POLLIN, {0}};
        source_key(sock, hs->prefix6, h.src);
        make_room(srv, hs, h.src);
        if (grow(hs) != 0) {
            atomic_fetch_add(&srv->n_hs_dropped, 1);
            ssock__server_event(srv, SSOCK_EVENT_REFUSED, sock, SSOCK_ENOMEM,
                                NULL);
            ssock__socket_discard(sock);
            continue;
        }
        /* The ClientHello is often queued already: start right away. */
        int r = step(srv, &h);
        if (r == 0) {
            *done = sock;
            return 0;
        }
        if (r > 0) {
            hs->v[hs->n] = h;
            set_count(hs, hs->n + 1);
        }
        if (ssock__deadline_expired(deadline))
            return 0;
    }
    return 0;
}

int ssock__hs_accept(ssock_server *srv, ssock__deadline deadline,
                     ssock_socket **out)
{
    struct ssock__hs_set *hs = srv->hs;
    for (;;) {
        expire(srv, hs, ssock__now_ns());

        /* Wake for whichever comes first: our deadline or a handshake's. */
        ssock__deadline wake_at = deadline;
        if (hs->n > 0 && (wake_at == 0 || hs->v[0].deadline < wake_at))
            wake_at = hs->v[0].deadline;

        hs->pfd[0] = (struct pollfd){srv->fd, POLLIN, 0};
        hs->pfd[1] = (struct pollfd){srv->wake.rd, POLLIN, 0};
        for (int i = 0; i < hs->n; i++)
            hs->pfd[2 + i] =
                (struct pollfd){hs->v[i].sock->fd, hs->v[i].events, 0};
        int rc = srv->sys->poll(hs->pfd, (nfds_t)hs->n + 2,
                                ssock__deadline_poll_ms(wake_at));
        if (atomic_load(&srv->state) != SSOCK__OPEN ||
            (rc > 0 && hs->pfd[1].revents != 0))
            return SSOCK_ECLOSED;
        if (rc < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            atomic_store(&srv->last_os_error, errno);
            return -errno;
        }
        if (rc > 0) {
            ssock_socket *done = step_ready(srv, hs, deadline);
            if (done == NULL && hs->pfd[0].revents != 0 &&
                !ssock__deadline_expired(deadline) &&
                atomic_load(&srv->state) == SSOCK__OPEN) {
                rc = take_new(srv, hs, deadline, &done);
                if (rc != 0 && done == NULL)
                    return rc;
            }
            if (done != NULL) {
                *out = done;
                return 0;
            }
        }
        /* A close during a step wins over the deadline. */
        if (atomic_load(&srv->state) != SSOCK__OPEN)
            return SSOCK_ECLOSED;
        if (ssock__deadline_expired(deadline))
            return SSOCK_ETIMEOUT;
    }
}

/* Fills only the caller's `size` bytes: a program built against an older
 * header has a shorter ssock_tls_stats, one built against a newer header
 * gets its extra counters zeroed. */
int ssock_server_tls_stats_sized(const ssock_server *srv, ssock_tls_stats *out,
                                 size_t size)
{
    ssock_tls_stats st;
    if (out != NULL)
        memset(out, 0, size);
    if (srv == NULL || out == NULL || size == 0)
        return SSOCK_EINVAL;
    if (srv->tls == NULL)
        return SSOCK_ENOTTLS;
    memset(&st, 0, sizeof(st));
    st.accepted = atomic_load(&srv->n_accepted);
    st.handshakes_ok = atomic_load(&srv->n_hs_ok);
    st.handshakes_failed = atomic_load(&srv->n_hs_failed);
    st.handshakes_timed_out = atomic_load(&srv->n_hs_timed_out);
    st.handshakes_dropped = atomic_load(&srv->n_hs_dropped);
    st.handshakes_source_limited = atomic_load(&srv->n_hs_source_limited);
    st.in_flight = (uint64_t)hs_in_flight(srv);
    memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
    return 0;
}

const char *ssock_server_tls_last_error(const ssock_server *srv)
{
    if (srv == NULL || srv->tls == NULL)
        return NULL;
    return srv->hs != NULL ? srv->hs->last_error : "";
}
