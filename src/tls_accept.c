/*
 * The TLS side of a server's public API: handshake counters, the last
 * handshake error, and certificate rotation. The handshakes themselves run
 * in the pending set (pending.c).
 */
#include <string.h>

#include "internal.h"
#include "ssock/tls.h"
#include "tls_backend.h"

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
    if (!srv->is_tls)
        return SSOCK_ENOTTLS;
    memset(&st, 0, sizeof(st));
    st.accepted = atomic_load(&srv->n_accepted);
    st.handshakes_ok = atomic_load(&srv->n_hs_ok);
    st.handshakes_failed = atomic_load(&srv->n_hs_failed);
    st.handshakes_timed_out = atomic_load(&srv->n_hs_timed_out);
    st.handshakes_dropped = atomic_load(&srv->n_hs_dropped);
    st.handshakes_source_limited = atomic_load(&srv->n_hs_source_limited);
    st.in_flight = (uint64_t)srv->acc->pending(srv);
    memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
    return 0;
}

const char *ssock_server_tls_last_error(const ssock_server *srv)
{
    if (srv == NULL || !srv->is_tls)
        return NULL;
    return ssock__hs_last_error(srv);
}

int ssock_server_set_tls(ssock_server *srv, const ssock_tls_config *cfg)
{
    if (srv == NULL || cfg == NULL)
        return SSOCK_EINVAL;
    if (!srv->is_tls)
        return SSOCK_ENOTTLS;
    if (atomic_load(&srv->state) != SSOCK__OPEN)
        return SSOCK_ECLOSED;
    /* The accepting thread takes it at its next step (pending.c); a config
     * set before that and not yet taken is replaced. */
    ssock_tls_config *old =
        atomic_exchange(&srv->tls_next, ssock__tls_config_ref(cfg));
    ssock__tls_config_unref(old);
    return 0;
}
