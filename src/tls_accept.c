/*
 * The TLS acceptor: handshakes run concurrently and non-blocking inside
 * the accepting thread. One poll() covers the listening socket, the wake
 * fd and every pending handshake; the first handshake to finish is
 * returned, the others stay pending for the next accept() call. Each
 * pending handshake has one total deadline; when the set is full the
 * oldest is dropped. Failed handshakes are counted and closed, never
 * returned, and never end accept() early.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ssock/tls.h"
#include "tls_backend.h"

/* New connections taken from the backlog per wake-up, at most. */
#define ACCEPT_BATCH 32

struct hs {
    ssock_socket *sock;
    ssock__deadline deadline;
    short events;
};

struct ssock__hs_set {
    int cap;
    int timeout_ms;
    int n;
    atomic_int in_flight; /* n, for other threads */
    struct hs *v;         /* oldest first, so deadlines ascend */
    struct pollfd *pfd;   /* 2 + cap */
    char last_error[256]; /* backend text of the last failed handshake */
};

int ssock__hs_open(ssock_server *srv)
{
    struct ssock__hs_set *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return SSOCK_ENOMEM;
    hs->cap = ssock__tls_config_max_handshakes(srv->tls);
    hs->timeout_ms = ssock__tls_config_handshake_timeout(srv->tls);
    atomic_init(&hs->in_flight, 0);
    hs->v = calloc((size_t)hs->cap, sizeof(*hs->v));
    hs->pfd = calloc((size_t)hs->cap + 2, sizeof(*hs->pfd));
    if (hs->v == NULL || hs->pfd == NULL) {
        free(hs->v);
        free(hs->pfd);
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
    for (int i = 0; i < hs->n; i++)
        ssock__socket_discard(hs->v[i].sock);
    atomic_fetch_add(&srv->n_hs_dropped, (unsigned long)hs->n);
    set_count(hs, 0);
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

/* Drop pending handshakes whose deadline has passed. */
static void expire(ssock_server *srv, struct ssock__hs_set *hs, uint64_t now)
{
    int i = 0;
    while (i < hs->n && hs->v[i].deadline <= now) {
        ssock__socket_discard(hs->v[i].sock);
        atomic_fetch_add(&srv->n_hs_timed_out, 1);
        i++;
    }
    if (i > 0) {
        memmove(hs->v, hs->v + i, (size_t)(hs->n - i) * sizeof(*hs->v));
        set_count(hs, hs->n - i);
    }
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
    ssock__socket_discard(h->sock);
    return -1;
}

/* Step every handshake whose descriptor is ready, keeping the set in order.
 * Returns the first socket whose handshake finished, or NULL. */
static ssock_socket *step_ready(ssock_server *srv, struct ssock__hs_set *hs)
{
    ssock_socket *done = NULL;
    int j = 0;
    for (int i = 0; i < hs->n; i++) {
        struct hs h = hs->v[i];
        if (done == NULL && hs->pfd[2 + i].revents != 0) {
            int r = step(srv, &h);
            if (r == 0) {
                done = h.sock;
                continue;
            }
            if (r < 0)
                continue;
        }
        hs->v[j++] = h;
    }
    set_count(hs, j);
    return done;
}

/* Take new connections off the backlog and start their handshakes.
 * Returns 0, a finished socket in *done (rare: no handshake finishes in
 * one step on the server side), or -errno (EMFILE...) to report. */
static int take_new(ssock_server *srv, struct ssock__hs_set *hs,
                    ssock_socket **done)
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
        if (ssock__tls_socket_attach(sock, srv->tls) != 0) {
            atomic_fetch_add(&srv->n_hs_failed, 1);
            ssock__socket_discard(sock);
            continue;
        }
        if (hs->n == hs->cap) {
            /* Full: the oldest pending handshake makes room. */
            ssock__socket_discard(hs->v[0].sock);
            atomic_fetch_add(&srv->n_hs_dropped, 1);
            memmove(hs->v, hs->v + 1, (size_t)(hs->n - 1) * sizeof(*hs->v));
            set_count(hs, hs->n - 1);
        }
        struct hs h = {sock, ssock__deadline_in(hs->timeout_ms), POLLIN};
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
            ssock_socket *done = step_ready(srv, hs);
            if (done == NULL && hs->pfd[0].revents != 0) {
                rc = take_new(srv, hs, &done);
                if (rc != 0)
                    return rc;
            }
            if (done != NULL) {
                *out = done;
                return 0;
            }
        }
        if (ssock__deadline_expired(deadline))
            return SSOCK_ETIMEOUT;
    }
}

int ssock_server_tls_stats(const ssock_server *srv, ssock_tls_stats *st)
{
    if (st != NULL)
        memset(st, 0, sizeof(*st));
    if (srv == NULL || st == NULL)
        return SSOCK_EINVAL;
    if (srv->tls == NULL)
        return SSOCK_ENOTTLS;
    st->accepted = atomic_load(&srv->n_accepted);
    st->handshakes_ok = atomic_load(&srv->n_hs_ok);
    st->handshakes_failed = atomic_load(&srv->n_hs_failed);
    st->handshakes_timed_out = atomic_load(&srv->n_hs_timed_out);
    st->handshakes_dropped = atomic_load(&srv->n_hs_dropped);
    st->in_flight = (uint64_t)hs_in_flight(srv);
    return 0;
}

const char *ssock_server_tls_last_error(const ssock_server *srv)
{
    if (srv == NULL || srv->tls == NULL)
        return NULL;
    return srv->hs != NULL ? srv->hs->last_error : "";
}
