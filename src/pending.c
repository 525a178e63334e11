/*
 * The pending set: connections taken from the listener that are not
 * finished yet. A connection waits here for its PROXY protocol header
 * (servers with proxy_protocol on), then for its TLS handshake (TLS
 * servers), then in the ready queue until accept() hands it out. It is the
 * accept strategy of every server with a PROXY header or TLS to wait for
 * (ssock__acceptor_pending); plain servers use ssock__acceptor_plain.
 *
 * Everything is non-blocking and runs in the accepting thread, one bounded
 * step at a time:
 *  - every pending descriptor is registered in the server's epoll instance
 *    (srv->ep, with the listener and the wake fd), so a step costs
 *    O(ready), not O(pending), and the application's loop can watch the
 *    one descriptor (ssock_server_poll_fd());
 *  - each connection has one total deadline (the handshake timeout, or
 *    proxy_timeout_ms for a PROXY header on a plain server); the set is
 *    kept in deadline order, so expiring and next_deadline are O(1);
 *  - a step handles at most STEP_EVENTS ready descriptors and ACCEPT_BATCH
 *    new connections, each handshake step has a bounded transport budget
 *    (tls_socket.c) and the caller's deadline is checked after each, so
 *    a flood of records or a burst of ClientHellos cannot hold accept;
 *    epoll's ready list is served round-robin, so no ready connection
 *    starves behind others;
 *  - when the set is full the oldest connection is dropped, and one source
 *    (IPv4 address or IPv6 prefix) past its own limit drops its own
 *    oldest, never another source's: sources live in a hash table, so the
 *    check is O(1) however many are pending;
 *  - a PROXY header is read without ever consuming a byte past it (peek,
 *    then take only header bytes), from trusted sources only;
 *  - failed connections are counted and closed, never returned, and never
 *    end accept() early; a close wins over a timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "cidr.h"
#include "internal.h"
#include "proxy.h"
#if SSOCK_HAVE_TLS
#include "ssock/tls.h"
#include "tls_backend.h"
#endif

/* New connections taken from the backlog per step, at most. */
#define ACCEPT_BATCH 32
/* Ready descriptors handled per step, at most. */
#define STEP_EVENTS 64
/* Limits of a plain server with a PROXY header to wait for. */
#define PLAIN_CAP 1024
#define PLAIN_PER_SOURCE 64
#define PLAIN_PREFIX6 64

enum { STAGE_PROXY = 1, STAGE_TLS = 2 };

struct src;

struct pend {
    ssock_socket *sock;
    ssock__deadline deadline;
    struct pend *prev, *next;   /* deadline order */
    struct pend *sprev, *snext; /* the same source, oldest first */
    struct src *src;
    uint32_t events; /* registered in epoll */
    int stage;
    unsigned char *pbuf; /* PROXY header bytes so far */
    size_t plen, pcap;
};

struct src {
    unsigned char key[16];
    int count;
    struct pend *head, *tail;
    struct src *hnext;
};

struct ssock__hs_set {
    int cap, per_source, prefix6, timeout_ms;
    int n;
    atomic_int in_flight; /* n + ready, for other threads */
    /* The earliest deadline (1: a connection is ready; 0: none), kept by
     * the accepting thread after each step so that the loop's thread can
     * ask while a close from another thread empties the set. */
    atomic_ullong next_deadline;
    struct pend *head, *tail; /* earliest deadline first */
    struct src **bucket;
    size_t nbucket, nsrc;
    ssock_socket *ready_head, *ready_tail; /* finished, not handed out */
    int nready;
    char last_error[256]; /* backend text of the last failed handshake */
};

/* Sentinels for the epoll data of the listener and the wake fd. */
static char tag_listener, tag_wake;

/* ---- configuration ------------------------------------------------------ */

static void apply_limits(ssock_server *srv, struct ssock__hs_set *hs)
{
#if SSOCK_HAVE_TLS
    if (srv->tls != NULL) {
        hs->cap = ssock__tls_config_max_handshakes(srv->tls);
        hs->per_source = ssock__tls_config_max_per_source(srv->tls);
        hs->prefix6 = ssock__tls_config_source_prefix6(srv->tls);
        hs->timeout_ms = ssock__tls_config_handshake_timeout(srv->tls);
        return;
    }
#endif
    hs->cap = PLAIN_CAP;
    hs->per_source = PLAIN_PER_SOURCE;
    hs->prefix6 = PLAIN_PREFIX6;
    hs->timeout_ms = srv->proxy_timeout_ms;
}

/* A configuration from ssock_server_set_tls() takes effect here, in the
 * accepting thread: connections taken from now on use it. */
static void take_new_config(ssock_server *srv)
{
#if SSOCK_HAVE_TLS
    if (atomic_load(&srv->tls_next) == NULL)
        return;
    ssock_tls_config *c = atomic_exchange(&srv->tls_next, NULL);
    if (c == NULL)
        return;
    ssock__tls_config_unref(srv->tls);
    srv->tls = c;
    apply_limits(srv, srv->hs);
#else
    (void)srv;
#endif
}

int ssock__hs_open(ssock_server *srv)
{
    struct ssock__hs_set *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return SSOCK_ENOMEM;
    hs->nbucket = 64;
    hs->bucket = calloc(hs->nbucket, sizeof(*hs->bucket));
    if (hs->bucket == NULL) {
        free(hs);
        return SSOCK_ENOMEM;
    }
    atomic_init(&hs->in_flight, 0);
    atomic_init(&hs->next_deadline, 0);
    apply_limits(srv, hs);
    srv->hs = hs;
    return 0;
}

static void count_changed(struct ssock__hs_set *hs)
{
    atomic_store(&hs->in_flight, hs->n + hs->nready);
}

/* ---- sources ------------------------------------------------------------ */

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

static size_t key_hash(const unsigned char key[16], size_t nbucket)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29)) & (nbucket - 1);
}

static void rehash(struct ssock__hs_set *hs)
{
    size_t nb = hs->nbucket * 2;
    struct src **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* longer chains; still correct */
    for (size_t i = 0; i < hs->nbucket; i++) {
        struct src *s = hs->bucket[i], *next;
        for (; s != NULL; s = next) {
            next = s->hnext;
            size_t h = key_hash(s->key, nb);
            s->hnext = b[h];
            b[h] = s;
        }
    }
    free(hs->bucket);
    hs->bucket = b;
    hs->nbucket = nb;
}

/* The source node for `key`, created when `create`; NULL when absent or
 * out of memory. */
static struct src *find_src(struct ssock__hs_set *hs,
                            const unsigned char key[16], int create)
{
    size_t h = key_hash(key, hs->nbucket);
    for (struct src *s = hs->bucket[h]; s != NULL; s = s->hnext)
        if (memcmp(s->key, key, 16) == 0)
            return s;
    if (!create)
        return NULL;
    struct src *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    memcpy(s->key, key, 16);
    s->hnext = hs->bucket[h];
    hs->bucket[h] = s;
    if (++hs->nsrc > hs->nbucket)
        rehash(hs);
    return s;
}

static void drop_src(struct ssock__hs_set *hs, struct src *s)
{
    struct src **pp = &hs->bucket[key_hash(s->key, hs->nbucket)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    hs->nsrc--;
    free(s);
}

/* ---- entries ------------------------------------------------------------ */

/* Insert in deadline order (new entries almost always go last). */
static void link_entry(struct ssock__hs_set *hs, struct pend *p)
{
    struct pend *at = hs->tail;
    while (at != NULL && at->deadline > p->deadline)
        at = at->prev;
    p->prev = at;
    p->next = at != NULL ? at->next : hs->head;
    if (p->next != NULL)
        p->next->prev = p;
    else
        hs->tail = p;
    if (at != NULL)
        at->next = p;
    else
        hs->head = p;
    hs->n++;
    count_changed(hs);
}

/* Remove from the set and epoll; the socket is the caller's. */
static ssock_socket *unlink_entry(ssock_server *srv, struct pend *p)
{
    struct ssock__hs_set *hs = srv->hs;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        hs->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        hs->tail = p->prev;
    struct src *s = p->src;
    if (s != NULL) {
        if (p->sprev != NULL)
            p->sprev->snext = p->snext;
        else
            s->head = p->snext;
        if (p->snext != NULL)
            p->snext->sprev = p->sprev;
        else
            s->tail = p->sprev;
        if (--s->count == 0)
            drop_src(hs, s);
    }
    (void)epoll_ctl(srv->ep, EPOLL_CTL_DEL, p->sock->fd, NULL);
    hs->n--;
    count_changed(hs);
    ssock_socket *sock = p->sock;
    free(p->pbuf);
    free(p);
    return sock;
}

/* Drop an entry: event, count, discard. */
static void drop_entry(ssock_server *srv, struct pend *p, int type, int status,
                       const char *detail)
{
    ssock__server_event(srv, type, p->sock, status, detail);
    ssock__socket_discard(unlink_entry(srv, p));
}

static void make_ready(ssock_server *srv, ssock_socket *sock)
{
    struct ssock__hs_set *hs = srv->hs;
    sock->next = NULL;
    if (hs->ready_tail != NULL)
        hs->ready_tail->next = sock;
    else
        hs->ready_head = sock;
    hs->ready_tail = sock;
    hs->nready++;
    count_changed(hs);
}

static ssock_socket *pop_ready(struct ssock__hs_set *hs)
{
    ssock_socket *s = hs->ready_head;
    if (s == NULL)
        return NULL;
    hs->ready_head = s->next;
    if (hs->ready_head == NULL)
        hs->ready_tail = NULL;
    s->next = NULL;
    hs->nready--;
    count_changed(hs);
    return s;
}

static int set_events(ssock_server *srv, struct pend *p, uint32_t events)
{
    if (p->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = p};
    int op = p->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(srv->ep, op, p->sock->fd, &ev) != 0)
        return -errno;
    p->events = events;
    return 0;
}

/* ---- steps --------------------------------------------------------------- */

static void proxy_refused(ssock_server *srv, struct pend *p, atomic_ulong *ctr,
                          const char *why)
{
    atomic_fetch_add(ctr, 1);
    drop_entry(srv, p, SSOCK_EVENT_PROXY_REFUSED, SSOCK_EPROXY, why);
}

/* Bytes of the header that may be taken now without reading past it. */
static size_t proxy_room(const struct pend *p)
{
    if (p->plen > 0 && p->pbuf[0] == 'P')
        return SSOCK__PROXY_V1_MAX - p->plen;
    if (p->plen < 16)
        return 16 - p->plen;
    size_t total = 16 + ((size_t)p->pbuf[14] << 8 | p->pbuf[15]);
    if (total > SSOCK__PROXY_V2_MAX)
        return 0; /* the parser has said no already */
    return total - p->plen;
}

/*
 * Read what has arrived of the PROXY header: peek, take only header bytes
 * (a v1 line up to its LF, a v2 header up to its length), parse. Returns 1
 * still pending, 0 complete (the socket carries the result), -1 refused
 * (the entry is gone).
 */
static int proxy_step(ssock_server *srv, struct pend *p)
{
    for (;;) {
        size_t room = proxy_room(p);
        if (room == 0) {
            proxy_refused(srv, p, &srv->n_proxy_malformed, "malformed header");
            return -1;
        }
        if (p->pcap < p->plen + room) {
            size_t cap = p->plen + room < 128 ? 128 : p->plen + room;
            unsigned char *b = realloc(p->pbuf, cap);
            if (b == NULL) {
                drop_entry(srv, p, SSOCK_EVENT_REFUSED, SSOCK_ENOMEM, NULL);
                return -1;
            }
            p->pbuf = b;
            p->pcap = cap;
        }
        ssock_socket *s = p->sock;
        ssize_t n = s->sys->recv(s->fd, p->pbuf + p->plen, room,
                                 MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (n <= 0) {
            proxy_refused(srv, p, &srv->n_proxy_malformed, "malformed header");
            return -1;
        }
        size_t take = (size_t)n;
        const unsigned char *nl = NULL;
        if (p->pbuf[0] == 'P') /* v1: the line ends at its LF */
            nl = memchr(p->pbuf + p->plen, '\n', take);
        if (nl != NULL)
            take = (size_t)(nl - (p->pbuf + p->plen)) + 1;
        /* The bytes just peeked are queued: taking them cannot block. A
         * "would block" here (a fault-injecting system-call table) is
         * retried once, then left for the next step. */
        ssize_t got;
        int tries = 0;
        do {
            got = s->sys->recv(s->fd, p->pbuf + p->plen, take, MSG_DONTWAIT);
        } while (got < 0 &&
                 (errno == EINTR ||
                  ((errno == EAGAIN || errno == EWOULDBLOCK) && tries++ == 0)));
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1; /* nothing taken: the bytes wait for the next step */
        if (got <= 0) {
            proxy_refused(srv, p, &srv->n_proxy_malformed, "malformed header");
            return -1;
        }
        p->plen += (size_t)got;
        struct ssock__proxy_result res;
        int rc = ssock__proxy_parse(srv->proxy_mode, p->pbuf, p->plen, &res);
        if (rc == SSOCK__PROXY_MORE)
            continue;
        if (rc != 0) {
            proxy_refused(srv, p, &srv->n_proxy_malformed, "malformed header");
            return -1;
        }
        if (ssock__socket_set_proxy(s, &res) != 0) {
            drop_entry(srv, p, SSOCK_EVENT_REFUSED, SSOCK_ENOMEM, NULL);
            return -1;
        }
        atomic_fetch_add(&srv->n_proxy_ok, 1);
        free(p->pbuf);
        p->pbuf = NULL;
        p->plen = p->pcap = 0;
        return 0;
    }
}

#if SSOCK_HAVE_TLS
/* One TLS handshake step: 1 still pending (events updated), 0 done, -1
 * failed (the entry is gone). */
static int tls_step(ssock_server *srv, struct pend *p)
{
    int rc = ssock__tls_socket_handshake(p->sock);
    if (rc == 0) {
        atomic_fetch_add(&srv->n_hs_ok, 1);
        return 0;
    }
    if (rc > 0) {
        uint32_t ev = rc & POLLOUT ? EPOLLOUT : EPOLLIN;
        if (set_events(srv, p, ev) != 0) {
            drop_entry(srv, p, SSOCK_EVENT_REFUSED, rc, NULL);
            return -1;
        }
        return 1;
    }
    atomic_fetch_add(&srv->n_hs_failed, 1);
    ssock__tls_socket_error(p->sock, srv->hs->last_error,
                            sizeof(srv->hs->last_error));
    drop_entry(srv, p, SSOCK_EVENT_HANDSHAKE_FAILED, rc, srv->hs->last_error);
    return -1;
}
#endif

static int join_source(ssock_server *srv, struct pend *p, int in_set);

/* Advance one entry as far as it goes now. A finished connection leaves
 * the set for the ready queue. */
static void advance(ssock_server *srv, struct pend *p)
{
    if (p->stage == STAGE_PROXY) {
        int r = proxy_step(srv, p);
        if (r != 0 || join_source(srv, p, 1) != 0)
            return;
#if SSOCK_HAVE_TLS
        if (srv->tls == NULL) {
            make_ready(srv, unlink_entry(srv, p));
            return;
        }
        p->stage = STAGE_TLS;
#else
        make_ready(srv, unlink_entry(srv, p));
        return;
#endif
    }
#if SSOCK_HAVE_TLS
    if (tls_step(srv, p) == 0)
        make_ready(srv, unlink_entry(srv, p));
#endif
}

/* Drop entries whose deadline has passed. */
static void expire(ssock_server *srv, uint64_t now)
{
    struct ssock__hs_set *hs = srv->hs;
    while (hs->head != NULL && hs->head->deadline <= now) {
        struct pend *p = hs->head;
        if (p->stage == STAGE_PROXY) {
            atomic_fetch_add(&srv->n_proxy_timed_out, 1);
            drop_entry(srv, p, SSOCK_EVENT_PROXY_REFUSED, SSOCK_EPROXY,
                       "header timed out");
        } else {
            atomic_fetch_add(&srv->n_hs_timed_out, 1);
            drop_entry(srv, p, SSOCK_EVENT_HANDSHAKE_TIMED_OUT, SSOCK_ETIMEOUT,
                       NULL);
        }
    }
}

/* Make room for a new connection from `src`: the source's own oldest goes
 * when the source is at its limit, the oldest of all when the set is
 * full. */
static void make_room(ssock_server *srv, struct src *src, struct pend *self)
{
    struct ssock__hs_set *hs = srv->hs;
    /* A per-source limit as large as the set is the set's own limit. */
    if (src != NULL && hs->per_source < hs->cap &&
        src->count >= hs->per_source) {
        atomic_fetch_add(&srv->n_hs_source_limited, 1);
        atomic_fetch_add(&srv->n_hs_dropped, 1);
        drop_entry(srv, src->head, SSOCK_EVENT_HANDSHAKE_DROPPED, 0, NULL);
    }
    /* `self` is already in the set (a PROXY header just finished): the
     * set is not growing. */
    if (self == NULL && hs->n >= hs->cap && hs->head != NULL) {
        atomic_fetch_add(&srv->n_hs_dropped, 1);
        drop_entry(srv, hs->head, SSOCK_EVENT_HANDSHAKE_DROPPED, 0, NULL);
    }
}

/* Count the entry under its source (the client a PROXY header named, else
 * the TCP peer), making room first: 0, or -1 when the entry is gone (no
 * memory). */
static int join_source(ssock_server *srv, struct pend *p, int in_set)
{
    struct ssock__hs_set *hs = srv->hs;
    unsigned char key[16];
    source_key(p->sock, hs->prefix6, key);
    struct src *src = find_src(hs, key, 0);
    make_room(srv, src, in_set ? p : NULL);
    src = find_src(hs, key, 1);
    if (src == NULL) {
        atomic_fetch_add(&srv->n_hs_dropped, 1);
        if (in_set) {
            drop_entry(srv, p, SSOCK_EVENT_REFUSED, SSOCK_ENOMEM, NULL);
        } else {
            ssock__server_event(srv, SSOCK_EVENT_REFUSED, p->sock, SSOCK_ENOMEM,
                                NULL);
            ssock__socket_discard(p->sock);
            free(p);
        }
        return -1;
    }
    p->src = src;
    p->sprev = src->tail;
    p->snext = NULL;
    if (src->tail != NULL)
        src->tail->snext = p;
    else
        src->head = p;
    src->tail = p;
    src->count++;
    return 0;
}

/* Start a new connection: trust check, room, registration, first step. */
static void start(ssock_server *srv, ssock_socket *sock)
{
    struct ssock__hs_set *hs = srv->hs;
    /* A configuration swapped in, even during this step, applies to every
     * connection taken from the listener after the swap. */
    take_new_config(srv);
    if (srv->proxy_mode != 0 &&
        !ssock__cidr_match(srv->proxy_trusted, &sock->tcp_peer.sa,
                           sock->tcp_peer.sa.sa_family == AF_INET
                               ? sizeof(sock->tcp_peer.in4)
                               : sizeof(sock->tcp_peer.in6))) {
        atomic_fetch_add(&srv->n_proxy_untrusted, 1);
        ssock__server_event(srv, SSOCK_EVENT_PROXY_REFUSED, sock, SSOCK_EPROXY,
                            "untrusted source");
        ssock__socket_discard(sock);
        return;
    }
#if SSOCK_HAVE_TLS
    if (srv->tls != NULL) {
        int rc = ssock__tls_socket_attach(sock, srv->tls);
        if (rc != 0) {
            atomic_fetch_add(&srv->n_hs_failed, 1);
            ssock__server_event(srv, SSOCK_EVENT_REFUSED, sock, rc, NULL);
            ssock__socket_discard(sock);
            return;
        }
    }
#endif
    struct pend *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        atomic_fetch_add(&srv->n_hs_dropped, 1);
        ssock__server_event(srv, SSOCK_EVENT_REFUSED, sock, SSOCK_ENOMEM, NULL);
        ssock__socket_discard(sock);
        return;
    }
    p->sock = sock;
    p->stage = srv->proxy_mode != 0 ? STAGE_PROXY : STAGE_TLS;
    p->deadline = ssock__deadline_in(hs->timeout_ms);
    /* Behind a balancer every connection comes from it: the per-source
     * limit applies once the header has named the client. */
    if (p->stage == STAGE_PROXY)
        make_room(srv, NULL, NULL);
    else if (join_source(srv, p, 0) != 0)
        return;
    link_entry(hs, p);
    int rc = set_events(srv, p, EPOLLIN);
    if (rc != 0) {
        drop_entry(srv, p, SSOCK_EVENT_REFUSED, rc, NULL);
        return;
    }
    /* The header or ClientHello is often queued already. */
    advance(srv, p);
}

/* Take new connections off the backlog until the batch is done, the
 * backlog is empty or the deadline passed: 0, or -errno to report. */
static int take_new(ssock_server *srv, ssock__deadline d)
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
        start(srv, sock);
        if (ssock__deadline_expired(d) ||
            atomic_load(&srv->state) != SSOCK__OPEN)
            return 0;
    }
    return 0;
}

static void note_deadline(struct ssock__hs_set *hs)
{
    ssock__deadline d = 0;
    if (hs->ready_head != NULL)
        d = 1; /* long past: no need to wait */
    else if (hs->head != NULL)
        d = hs->head->deadline;
    atomic_store(&hs->next_deadline, d);
}

static int pending_step_inner(ssock_server *srv, ssock__deadline d,
                              ssock_socket **out);

/* One step, then the earliest deadline noted for other threads. */
static int pending_step(ssock_server *srv, ssock__deadline d,
                        ssock_socket **out)
{
    int rc = pending_step_inner(srv, d, out);
    note_deadline(srv->hs);
    return rc;
}

static int pending_step_inner(ssock_server *srv, ssock__deadline d,
                              ssock_socket **out)
{
    struct ssock__hs_set *hs = srv->hs;
    struct epoll_event ev[STEP_EVENTS];
    int rc = 0;

    /* (A swapped configuration is taken in start(), per new connection.) */
    if (hs->ready_head == NULL) {
        expire(srv, ssock__now_ns());
        int n = epoll_wait(srv->ep, ev, STEP_EVENTS, 0);
        if (n < 0 && errno != EINTR) {
            atomic_store(&srv->last_os_error, errno);
            return -errno;
        }
        int listener = 0;
        for (int i = 0; i < n; i++) {
            void *tag = ev[i].data.ptr;
            if (tag == &tag_wake || atomic_load(&srv->state) != SSOCK__OPEN)
                return SSOCK_ECLOSED;
            if (tag == &tag_listener) {
                listener = 1;
                continue;
            }
            /* Entries dropped during this batch (to make room) are only
             * dropped by take_new, which runs after the batch. */
            advance(srv, tag);
            if (ssock__deadline_expired(d))
                break;
        }
        if (atomic_load(&srv->state) != SSOCK__OPEN)
            return SSOCK_ECLOSED;
        if (listener && !ssock__deadline_expired(d))
            rc = take_new(srv, d);
    }
    *out = pop_ready(hs);
    if (*out != NULL)
        return 0;
    return rc != 0 ? rc : SSOCK_EAGAIN;
}

static int pending_wait_fd(const ssock_server *srv)
{
    return srv->ep;
}

static ssock__deadline pending_next_deadline(const ssock_server *srv)
{
    return atomic_load(&srv->hs->next_deadline);
}

static int pending_count(const ssock_server *srv)
{
    return srv->hs == NULL ? 0 : atomic_load(&srv->hs->in_flight);
}

static void pending_close(ssock_server *srv)
{
    struct ssock__hs_set *hs = srv->hs;
    if (hs == NULL)
        return;
    while (hs->head != NULL) {
        atomic_fetch_add(&srv->n_hs_dropped, 1);
        drop_entry(srv, hs->head, SSOCK_EVENT_HANDSHAKE_DROPPED, SSOCK_ECLOSED,
                   NULL);
    }
    atomic_store(&hs->next_deadline, 0);
    ssock_socket *s;
    while ((s = pop_ready(hs)) != NULL) {
        atomic_fetch_add(&srv->n_hs_dropped, 1);
        ssock__server_event(srv, SSOCK_EVENT_HANDSHAKE_DROPPED, s,
                            SSOCK_ECLOSED, NULL);
        ssock__socket_discard(s);
    }
}

static void pending_free(ssock_server *srv)
{
    struct ssock__hs_set *hs = srv->hs;
    if (hs == NULL)
        return;
    pending_close(srv);
    srv->hs = NULL;
    free(hs->bucket);
    free(hs);
}

const struct ssock__acceptor ssock__acceptor_pending = {
    .step = pending_step,
    .wait_fd = pending_wait_fd,
    .next_deadline = pending_next_deadline,
    .pending = pending_count,
    .close = pending_close,
    .free = pending_free,
};

int ssock__epoll_add_server(ssock_server *srv)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_listener};
    if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->fd, &ev) != 0)
        return -errno;
    ev.data.ptr = &tag_wake;
    if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->wake.rd, &ev) != 0)
        return -errno;
    return 0;
}

const char *ssock__hs_last_error(const ssock_server *srv)
{
    return srv->hs != NULL ? srv->hs->last_error : "";
}
