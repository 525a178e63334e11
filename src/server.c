/*
 * The listening server: argument checks, bind, accept with a deadline, and
 * close (which wakes accept and fails every socket accepted from it).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/stat.h>

#include "addr.h"
#include "cidr.h"
#include "internal.h"
#if SSOCK_HAVE_TLS
#include "tls_backend.h"
#endif

void ssock_server_options_init_sized(ssock_server_options *opts, size_t size)
{
    if (opts == NULL)
        return;
    /* A caller built against an older header has a shorter struct: fill
     * only what it has. */
    ssock_server_options d;
    memset(&d, 0, sizeof(d));
    d.struct_size = size;
    d.accept_timeout_ms = SSOCK_DEFAULT_ACCEPT_TIMEOUT_MS;
    d.backlog = SSOCK_DEFAULT_BACKLOG;
    d.read_timeout_ms = SSOCK_DEFAULT_READ_TIMEOUT_MS;
    d.write_timeout_ms = SSOCK_DEFAULT_WRITE_TIMEOUT_MS;
    if (size >= sizeof(d)) {
        memset(opts, 0, size); /* a newer caller: its extra fields are 0 */
        memcpy(opts, &d, sizeof(d));
    } else if (size >= sizeof(d.struct_size)) {
        memcpy(opts, &d, size);
    }
}

/* The caller's options as this library knows them: its struct_size says
 * how much of the struct it has; fields it lacks keep their defaults, and
 * fields this library lacks must be zero. */
static int copy_options(ssock_server_options *o, const ssock_server_options *in)
{
    size_t size = in->struct_size;
    const size_t v01 = offsetof(ssock_server_options, ipv6_only);
    if (size < v01)
        return SSOCK_EINVAL; /* not filled by ssock_server_options_init() */
    ssock_server_options_init_sized(o, sizeof(*o));
    if (size > sizeof(*o)) {
        const unsigned char *extra = (const unsigned char *)in + sizeof(*o);
        for (size_t i = 0; i < size - sizeof(*o); i++)
            if (extra[i] != 0)
                return SSOCK_ENOTSUP;
        size = sizeof(*o);
    }
    memcpy(o, in, size);
    o->struct_size = sizeof(*o);
    return 0;
}

static int check_options(const ssock_server_options *o)
{
    if (o->port < 0 || o->port > 65535)
        return SSOCK_EBADPORT;
    if (o->accept_timeout_ms < 0 || o->read_timeout_ms < 0 ||
        o->write_timeout_ms < 0)
        return SSOCK_EBADTIMEOUT;
    if (o->keepalive_idle_s < 0 || o->keepalive_interval_s < 0 ||
        o->keepalive_count < 0)
        return SSOCK_EBADTIMEOUT;
    if (o->backlog <= 0)
        return SSOCK_EBADBACKLOG;
    if (o->addr != NULL && o->addr[0] == '\0')
        return SSOCK_EBADADDR;
    if (o->proxy_protocol < SSOCK_PROXY_OFF ||
        o->proxy_protocol > SSOCK_PROXY_ANY)
        return SSOCK_EINVAL;
    if (o->proxy_timeout_ms < 0)
        return SSOCK_EBADTIMEOUT;
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* socket + options + bind + listen for one address; -errno (or what the
 * before_bind hook said) on failure. */
static int listen_on(const struct ssock__sys *sys, struct sockaddr_storage *ss,
                     socklen_t len, const ssock_server_options *o, int *out_fd)
{
    int one = 1, zero = 0, rc = 0;
    int v6only = o->ipv6_only ? 1 : 0;
    int fd = sys->socket(ss->ss_family,
                         SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (o->reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    /* Accepted sockets inherit it: a write (or a TLS flight of several
     * records) goes out at once instead of waiting ~40 ms for the peer's
     * delayed ACK. Best effort. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Explicit: the system default (net.ipv6.bindv6only) may say otherwise. */
    if (ss->ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? &one : &zero,
                   sizeof(one)) != 0)
        goto fail;
    if (o->before_bind != NULL) {
        rc = o->before_bind(fd, o->before_bind_arg);
        if (rc != 0) {
            sys->close(fd);
            return rc < 0 ? rc : SSOCK_EINVAL;
        }
    }
    if (sys->bind(fd, (struct sockaddr *)ss, len) != 0)
        goto fail;
    if (sys->listen(fd, o->backlog) != 0)
        goto fail;
    *out_fd = fd;
    return 0;
fail:
    rc = -errno;
    sys->close(fd);
    return rc;
}

/* Try every candidate address in turn; the last error wins. */
static int bind_any(const struct ssock__sys *sys, const ssock_server_options *o,
                    int *out_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc;

    if (o->addr == NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        memset(&ss, 0, sizeof(ss));
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons((uint16_t)o->port);
        rc = listen_on(sys, &ss, sizeof(*in6), o, out_fd);
        if (o->ipv6_only || (rc != -EAFNOSUPPORT && rc != -EADDRNOTAVAIL &&
                             rc != -EPROTONOSUPPORT))
            return rc;
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)o->port);
        return listen_on(sys, &ss, sizeof(*in4), o, out_fd);
    }

    rc = ssock__addr_parse_literal(o->addr, &ss, &len);
    if (rc == 0) {
        set_port(&ss, o->port);
        return listen_on(sys, &ss, len, o, out_fd);
    }
    if (rc != SSOCK_ERESOLVE)
        return rc;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(o->addr, NULL, &hints, &res);
    if (gai != 0) {
        if (gai == EAI_MEMORY)
            return SSOCK_ENOMEM;
        if (gai == EAI_SYSTEM && errno != 0)
            return -errno;
        return SSOCK_ERESOLVE;
    }
    rc = SSOCK_ERESOLVE;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(ss))
            continue;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        set_port(&ss, o->port);
        rc = listen_on(sys, &ss, ai->ai_addrlen, o, out_fd);
        if (rc == 0)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Everything but the listening descriptor: the handle from the options. */
static int server_new(const ssock_server_options *o,
                      const struct ssock__sys *sys, ssock_server **out)
{
    ssock_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return SSOCK_ENOMEM;
    srv->fd = -1;
    srv->ep = -1;
    srv->reserve_fd = -1;
    srv->wake.rd = srv->wake.wr = -1;
    srv->sys = sys;
    srv->acc = &ssock__acceptor_plain;
    srv->accept_timeout_ms = o->accept_timeout_ms;
    srv->read_timeout_ms = o->read_timeout_ms;
    srv->write_timeout_ms = o->write_timeout_ms;
    srv->keepalive = o->keepalive;
    srv->keepalive_idle_s = o->keepalive_idle_s;
    srv->keepalive_interval_s = o->keepalive_interval_s;
    srv->keepalive_count = o->keepalive_count;
    srv->on_event = o->on_event;
    srv->on_event_arg = o->on_event_arg;
    srv->user_data = o->user_data;
    srv->nonblocking_sockets = o->nonblocking != 0;
    srv->proxy_mode = o->proxy_protocol;
    srv->proxy_timeout_ms = o->proxy_timeout_ms > 0
                                ? o->proxy_timeout_ms
                                : SSOCK_DEFAULT_PROXY_TIMEOUT_MS;
    atomic_init(&srv->refs, 1);
    atomic_init(&srv->state, SSOCK__OPEN);
    atomic_init(&srv->last_os_error, 0);
    atomic_init(&srv->tls_next, NULL);
    if (pthread_mutex_init(&srv->lock, NULL) != 0) {
        free(srv);
        return SSOCK_ENOMEM;
    }
    if (pthread_cond_init(&srv->idle, NULL) != 0) {
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        return SSOCK_ENOMEM;
    }
    *out = srv;
    int rc = 0;
    /* A list is checked even when the protocol is off: a typo in a
     * configuration must not wait until someone turns it on. */
    if (srv->proxy_mode != SSOCK_PROXY_OFF || o->proxy_trusted != NULL) {
        srv->proxy_trusted = calloc(1, sizeof(*srv->proxy_trusted));
        if (srv->proxy_trusted == NULL)
            return SSOCK_ENOMEM;
        rc = ssock__cidr_parse(o->proxy_trusted != NULL
                                   ? o->proxy_trusted
                                   : SSOCK_PROXY_DEFAULT_TRUSTED,
                               srv->proxy_trusted);
        if (rc != 0)
            return rc;
    }
    if (o->tls != NULL) {
#if SSOCK_HAVE_TLS
        srv->tls = ssock__tls_config_ref(o->tls);
        srv->is_tls = 1;
#else
        return SSOCK_ENOBACKEND;
#endif
    }
    return 0;
}

/* Free what server_new and finish_open made (a failed open, or the last
 * reference gone). */
static void server_destroy(ssock_server *srv)
{
    if (srv->fd >= 0)
        srv->sys->close(srv->fd);
    if (srv->ep >= 0)
        close(srv->ep);
    ssock__wake_close(&srv->wake);
    srv->acc->free(srv);
#if SSOCK_HAVE_TLS
    ssock__tls_config_unref(srv->tls);
    ssock__tls_config_unref(atomic_load(&srv->tls_next));
#endif
    free(srv->proxy_trusted);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

/* With srv->fd listening: addresses, the wake fd, the poll fd and the
 * accept strategy. */
static int finish_open(ssock_server *srv)
{
    srv->local_len = sizeof(srv->local);
    if (getsockname(srv->fd, (struct sockaddr *)&srv->local, &srv->local_len) !=
        0)
        return -errno;
    ssock__addr_format((struct sockaddr *)&srv->local, srv->host, &srv->port);
    int rc = ssock__wake_open(&srv->wake);
    if (rc != 0)
        return rc;
    srv->ep = epoll_create1(EPOLL_CLOEXEC);
    if (srv->ep < 0)
        return -errno;
    rc = ssock__epoll_add_server(srv);
    if (rc != 0)
        return rc;
    if (srv->is_tls || srv->proxy_mode != SSOCK_PROXY_OFF) {
        rc = ssock__hs_open(srv);
        if (rc != 0)
            return rc;
        srv->acc = &ssock__acceptor_pending;
    }
    /* Best effort: without it EMFILE is still reported, just not shed. */
    srv->reserve_fd = open_reserve();
    return 0;
}

static int open_fail(ssock_server *srv, int rc)
{
    if (SSOCK__IS_ERRNO(rc))
        atomic_store(&srv->last_os_error, -rc);
    server_destroy(srv);
    return rc;
}

int ssock__server_open_sys(ssock_server **out, const ssock_server_options *opts,
                           const struct ssock__sys *sys)
{
    ssock_server *srv = NULL;
    ssock_server_options oc;
    const ssock_server_options *o = &oc;
    int rc;

    if (out == NULL)
        return SSOCK_EINVAL;
    *out = NULL;
    if (opts == NULL || sys == NULL)
        return SSOCK_EINVAL;
    rc = copy_options(&oc, opts);
    if (rc != 0)
        return rc;
    rc = check_options(o);
    if (rc != 0)
        return rc;
    rc = server_new(o, sys, &srv);
    if (rc == 0)
        rc = bind_any(sys, o, &srv->fd);
    if (rc == 0)
        rc = finish_open(srv);
    if (rc != 0)
        return srv != NULL ? open_fail(srv, rc) : rc;
    *out = srv;
    return 0;
}

/* A listening TCP socket? 0, SSOCK_ENOTLISTENING, or -errno. */
static int check_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0)
        return SSOCK_ENOTLISTENING; /* not a socket, or not open */
    if (v != SOCK_STREAM)
        return SSOCK_ENOTLISTENING;
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v == 0)
        return SSOCK_ENOTLISTENING;
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) != 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return SSOCK_ENOTLISTENING;
    return 0;
}

int ssock_server_open_fd(ssock_server **out, int fd,
                         const ssock_server_options *opts)
{
    ssock_server_options oc;
    ssock_server *srv = NULL;
    int rc;

    if (out == NULL)
        return SSOCK_EINVAL;
    *out = NULL;
    if (fd < 0)
        return SSOCK_EINVAL;
    if (opts != NULL) {
        rc = copy_options(&oc, opts);
        if (rc == SSOCK_EINVAL)
            return rc; /* not filled by ssock_server_options_init() */
    } else {
        ssock_server_options_init(&oc);
        rc = 0;
    }
    int lrc = check_listening(fd);
    if (lrc != 0)
        return lrc; /* not ours: left open */
    /* From here on the descriptor is ours, whatever happens. */
    oc.port = 0; /* ignored: the socket is bound */
    oc.addr = NULL;
    oc.backlog = SSOCK_DEFAULT_BACKLOG;
    if (rc == 0)
        rc = check_options(&oc);
    if (rc == SSOCK_EINVAL)
        return rc; /* a bad argument: the descriptor is left alone */
    if (rc == 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = server_new(&oc, &ssock__sys_default, &srv);
    if (srv != NULL)
        srv->fd = fd; /* ours from here on, also on failure */
    else
        close(fd);
    if (rc == 0)
        rc = finish_open(srv);
    if (rc != 0)
        return srv != NULL ? open_fail(srv, rc) : rc;
    *out = srv;
    return 0;
}

int ssock_listen_fds(void)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    char *end;
    if (pid == NULL || fds == NULL)
        return 0;
    errno = 0;
    unsigned long p = strtoul(pid, &end, 10);
    if (errno != 0 || end == pid || *end != '\0' ||
        p != (unsigned long)getpid())
        return 0;
    long n = strtol(fds, &end, 10);
    if (errno != 0 || end == fds || *end != '\0' || n <= 0 ||
        n > 0x7fff - SSOCK_LISTEN_FDS_START)
        return 0;
    return (int)n;
}

int ssock_server_open(ssock_server **out, const ssock_server_options *opts)
{
    return ssock__server_open_sys(out, opts, &ssock__sys_default);
}

int ssock_server_open_port(ssock_server **out, int port)
{
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.port = port;
    return ssock_server_open(out, &o);
}

int ssock_server_open_timeout(ssock_server **out, int port, int timeout_ms)
{
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.port = port;
    o.accept_timeout_ms = timeout_ms;
    return ssock_server_open(out, &o);
}

int ssock_server_open_addr(ssock_server **out, int port, int timeout_ms,
                           const char *addr)
{
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.port = port;
    o.accept_timeout_ms = timeout_ms;
    o.addr = addr;
    return ssock_server_open(out, &o);
}

int ssock_server_open_backlog(ssock_server **out, int port, int timeout_ms,
                              int backlog, const char *addr)
{
    ssock_server_options o;
    ssock_server_options_init(&o);
    o.port = port;
    o.accept_timeout_ms = timeout_ms;
    o.backlog = backlog;
    o.addr = addr;
    return ssock_server_open(out, &o);
}

/* Out of descriptors: give the reserve back, take the pending connection
 * and drop it, so the listening socket does not stay readable forever. */
static void shed_one(ssock_server *srv)
{
    if (srv->reserve_fd < 0)
        return;
    close(srv->reserve_fd);
    srv->reserve_fd = -1;
    int fd = srv->sys->accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        srv->sys->close(fd);
    srv->reserve_fd = open_reserve();
}

/* TCP keepalive on an accepted descriptor; best effort (a failure is kept
 * as the server's last OS error). */
static void set_keepalive(ssock_server *srv, int fd)
{
    int one = 1;
    int ok = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0;
    if (ok && srv->keepalive_idle_s > 0)
        ok = setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &srv->keepalive_idle_s,
                        sizeof(int)) == 0;
    if (ok && srv->keepalive_interval_s > 0)
        ok = setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL,
                        &srv->keepalive_interval_s, sizeof(int)) == 0;
    if (ok && srv->keepalive_count > 0)
        ok = setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &srv->keepalive_count,
                        sizeof(int)) == 0;
    if (!ok)
        atomic_store(&srv->last_os_error, errno);
}

void ssock__server_event(ssock_server *srv, int type, ssock_socket *sock,
                         int status, const char *detail)
{
    if (srv->on_event == NULL)
        return;
    ssock_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = type;
    ev.peer_host = "";
    if (sock != NULL) {
        ev.peer_host = ssock_socket_peer_host(sock);
        ev.peer_port = ssock_socket_peer_port(sock);
    }
    ev.status = status;
    ev.detail = detail != NULL ? detail : "";
    ev.sock = type == SSOCK_EVENT_ACCEPTED ? sock : NULL;
    srv->on_event(&ev, srv->on_event_arg);
}

/* accept4 errors that mean "this connection is gone, try the next". */
static int is_transient(int err)
{
    switch (err) {
    case EINTR:
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM: /* firewall rules */
        return 1;
    default:
        return 0;
    }
}

int ssock__server_accept_fd(ssock_server *srv, ssock_socket **out)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    /* Blocking: plain reads block in recv() under SO_RCVTIMEO; every
     * other call on the descriptor passes MSG_DONTWAIT. */
    int fd = srv->sys->accept4(srv->fd, (struct sockaddr *)&peer, &plen,
                               SOCK_CLOEXEC);
    if (fd >= 0) {
        atomic_fetch_add(&srv->n_accepted, 1);
        if (srv->keepalive)
            set_keepalive(srv, fd);
        int rc =
            ssock__socket_new(srv, fd, (struct sockaddr *)&peer, plen, out);
        if (rc != 0)
            ssock__server_event(srv, SSOCK_EVENT_REFUSED, NULL, rc, NULL);
        return rc;
    }
    int err = errno;
    /* A vanished client: back to poll(), which sees the deadline and
     * the wake fd, so a stream of aborts cannot hold accept() past
     * its timeout or past a close. */
    if (is_transient(err))
        return -EAGAIN;
    atomic_store(&srv->last_os_error, err);
    if (err == EMFILE || err == ENFILE) {
        shed_one(srv);
        ssock__server_event(srv, SSOCK_EVENT_REFUSED, NULL, -err, NULL);
    }
    return -err;
}

/* ---- accept strategies ----------------------------------------------- */

static int plain_step(ssock_server *srv, ssock__deadline d, ssock_socket **out)
{
    (void)d;
    int rc = ssock__server_accept_fd(srv, out);
    return rc == -EAGAIN ? SSOCK_EAGAIN : rc;
}

static int plain_wait_fd(const ssock_server *srv)
{
    return srv->fd;
}

static ssock__deadline plain_next_deadline(const ssock_server *srv)
{
    (void)srv;
    return 0;
}

static int plain_pending(const ssock_server *srv)
{
    (void)srv;
    return 0;
}

static void plain_nothing(ssock_server *srv)
{
    (void)srv;
}

const struct ssock__acceptor ssock__acceptor_plain = {
    .step = plain_step,
    .wait_fd = plain_wait_fd,
    .next_deadline = plain_next_deadline,
    .pending = plain_pending,
    .close = plain_nothing,
    .free = plain_nothing,
};

/*
 * The blocking accept: steps of the strategy, and between them one poll()
 * over its descriptor (the listener, or the epoll instance of the pending
 * set) and the wake fd, until the accept deadline or the strategy's own
 * next deadline (a pending handshake's).
 */
static int blocking_accept(ssock_server *srv, ssock__deadline deadline,
                           ssock_socket **out)
{
    struct pollfd pfd[2];
    for (;;) {
        int rc = srv->acc->step(srv, deadline, out);
        if (rc != SSOCK_EAGAIN)
            return rc;
        /* A close during a step wins over the deadline. */
        if (atomic_load(&srv->state) != SSOCK__OPEN)
            return SSOCK_ECLOSED;
        if (ssock__deadline_expired(deadline))
            return SSOCK_ETIMEOUT;
        ssock__deadline wake_at = deadline, next = srv->acc->next_deadline(srv);
        if (next != 0 && (wake_at == 0 || next < wake_at))
            wake_at = next;
        pfd[0] = (struct pollfd){srv->acc->wait_fd(srv), POLLIN, 0};
        pfd[1] = (struct pollfd){srv->wake.rd, POLLIN, 0};
        rc = srv->sys->poll(pfd, 2, ssock__deadline_poll_ms(wake_at));
        if (atomic_load(&srv->state) != SSOCK__OPEN ||
            (rc > 0 && pfd[1].revents != 0))
            return SSOCK_ECLOSED;
        if (rc < 0 && errno != EINTR && errno != EAGAIN) {
            atomic_store(&srv->last_os_error, errno);
            return -errno;
        }
        if (rc == 0 && wake_at == deadline && ssock__deadline_expired(deadline))
            return SSOCK_ETIMEOUT;
    }
}

/* Enter as the accepting thread: 0, or SSOCK_ECLOSED. */
static int begin_accept(ssock_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    if (atomic_load(&srv->state) != SSOCK__OPEN) {
        pthread_mutex_unlock(&srv->lock);
        return SSOCK_ECLOSED;
    }
    srv->accepting = 1;
    pthread_mutex_unlock(&srv->lock);
    if (srv->reserve_fd < 0)
        srv->reserve_fd = open_reserve();
    return 0;
}

/* Leave, handing `sock` out (linked to the server) when rc is 0 and the
 * server is still open. Returns the final status. */
static int end_accept(ssock_server *srv, int rc, ssock_socket **sock)
{
    pthread_mutex_lock(&srv->lock);
    if (rc == 0 && atomic_load(&srv->state) != SSOCK__OPEN) {
        /* Closed while we were accepting: the new socket never escapes. */
        rc = SSOCK_ECLOSED;
    } else if (rc == 0) {
        ssock_socket *s = *sock;
        s->prev = NULL;
        s->next = srv->children;
        if (srv->children != NULL)
            srv->children->prev = s;
        srv->children = s;
    }
    srv->accepting = 0;
    pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);

    if (rc != 0 && *sock != NULL) {
        ssock__socket_discard(*sock);
        *sock = NULL;
    }
    if (rc == 0) {
        atomic_fetch_add(&srv->n_handed_out, 1);
        if ((*sock)->nonblocking)
            (*sock)->read_idle_since = ssock__now_ns();
        ssock__server_event(srv, SSOCK_EVENT_ACCEPTED, *sock, 0, NULL);
    }
    return rc;
}

int ssock_server_accept(ssock_server *srv, ssock_socket **out)
{
    ssock_socket *sock = NULL;

    if (out != NULL)
        *out = NULL;
    if (srv == NULL || out == NULL)
        return SSOCK_EINVAL;
    int rc = begin_accept(srv);
    if (rc != 0)
        return rc;
    rc =
        blocking_accept(srv, ssock__deadline_in(srv->accept_timeout_ms), &sock);
    rc = end_accept(srv, rc, &sock);
    *out = sock;
    return rc;
}

int ssock_server_try_accept(ssock_server *srv, ssock_socket **out)
{
    ssock_socket *sock = NULL;

    if (out != NULL)
        *out = NULL;
    if (srv == NULL || out == NULL)
        return SSOCK_EINVAL;
    int rc = begin_accept(srv);
    if (rc != 0)
        return rc;
    rc = srv->acc->step(srv, 0, &sock);
    if (rc == SSOCK_EAGAIN && atomic_load(&srv->state) != SSOCK__OPEN)
        rc = SSOCK_ECLOSED;
    rc = end_accept(srv, rc, &sock);
    *out = sock;
    return rc;
}

int ssock_server_poll_fd(const ssock_server *srv)
{
    return srv == NULL ? -1 : srv->ep;
}

int ssock_server_next_timeout(const ssock_server *srv)
{
    if (srv == NULL || atomic_load(&srv->state) != SSOCK__OPEN)
        return -1;
    return ssock__deadline_poll_ms(srv->acc->next_deadline(srv));
}

int ssock_server_stats_sized(const ssock_server *srv, ssock_server_stats *out,
                             size_t size)
{
    ssock_server_stats st;
    if (out != NULL)
        memset(out, 0, size);
    if (srv == NULL || out == NULL || size == 0)
        return SSOCK_EINVAL;
    memset(&st, 0, sizeof(st));
    st.accepted = atomic_load(&srv->n_accepted);
    st.handed_out = atomic_load(&srv->n_handed_out);
    st.pending = (unsigned long long)srv->acc->pending(srv);
    st.proxy_ok = atomic_load(&srv->n_proxy_ok);
    st.proxy_malformed = atomic_load(&srv->n_proxy_malformed);
    st.proxy_untrusted = atomic_load(&srv->n_proxy_untrusted);
    st.proxy_timed_out = atomic_load(&srv->n_proxy_timed_out);
    memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
    return 0;
}

const char *ssock_server_host(const ssock_server *srv)
{
    return srv == NULL ? NULL : srv->host;
}

const char *ssock_server_local_host(const ssock_server *srv)
{
    return ssock_server_host(srv);
}

int ssock_server_local_port(const ssock_server *srv)
{
    return srv == NULL ? SSOCK_EINVAL : srv->port;
}

int ssock_server_accept_timeout(const ssock_server *srv)
{
    return srv == NULL ? SSOCK_EINVAL : srv->accept_timeout_ms;
}

int ssock_server_last_os_error(const ssock_server *srv)
{
    return srv == NULL ? 0 : atomic_load(&srv->last_os_error);
}

int ssock_server_fd(const ssock_server *srv)
{
    if (srv == NULL || atomic_load(&srv->state) != SSOCK__OPEN)
        return -1;
    return srv->fd;
}

/* Close (`drain` 0) or drain (1). A close after a drain only fails the
 * children: the rest was done by the drain. */
static int shut(ssock_server *srv, int drain)
{
    if (srv == NULL)
        return SSOCK_EINVAL;
    pthread_mutex_lock(&srv->lock);
    int was = atomic_load(&srv->state);
    if (was == SSOCK__CLOSED || (was == SSOCK__DRAINED && drain)) {
        pthread_mutex_unlock(&srv->lock);
        return SSOCK_ECLOSED;
    }
    atomic_store(&srv->state, drain ? SSOCK__DRAINED : SSOCK__CLOSED);
    if (!drain)
        for (ssock_socket *s = srv->children; s != NULL; s = s->next)
            ssock__socket_server_closed(s);
    if (was == SSOCK__DRAINED) {
        pthread_mutex_unlock(&srv->lock);
        return 0;
    }
    /* Our own reference: the accepting thread may see the close, return
     * and free the server while we are still discarding its pending
     * handshakes below; the memory then goes when we leave. */
    ssock__server_ref(srv);
    ssock__wake_signal(&srv->wake);
    /* The accepting thread still uses the descriptors: let it leave. */
    while (srv->accepting)
        pthread_cond_wait(&srv->idle, &srv->lock);
    /* The wake fd and the epoll instance stay until the memory goes: the
     * poll fd an application watches stays valid, and readable. */
    srv->sys->close(srv->fd);
    srv->fd = -1;
    if (srv->reserve_fd >= 0)
        close(srv->reserve_fd);
    srv->reserve_fd = -1;
    pthread_mutex_unlock(&srv->lock);
    /* Outside the lock: discarding a socket takes it. No accept() runs
     * now, and none will touch the set again (the server is closed). */
    srv->acc->close(srv);
    ssock__server_unref(srv);
    return 0;
}

int ssock_server_close(ssock_server *srv)
{
    return shut(srv, 0);
}

int ssock_server_drain(ssock_server *srv)
{
    return shut(srv, 1);
}

void *ssock_server_user_data(const ssock_server *srv)
{
    return srv == NULL ? NULL : srv->user_data;
}

void ssock_server_set_user_data(ssock_server *srv, void *data)
{
    if (srv != NULL)
        srv->user_data = data;
}

int ssock_server_local_addr(const ssock_server *srv,
                            struct sockaddr_storage *addr, socklen_t *len)
{
    if (srv == NULL || addr == NULL || len == NULL)
        return SSOCK_EINVAL;
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, &srv->local, srv->local_len);
    *len = srv->local_len;
    return 0;
}

void ssock__server_ref(ssock_server *srv)
{
    atomic_fetch_add(&srv->refs, 1);
}

void ssock__server_unref(ssock_server *srv)
{
    if (atomic_fetch_sub(&srv->refs, 1) != 1)
        return;
    server_destroy(srv);
}

void ssock_server_free(ssock_server *srv)
{
    if (srv == NULL)
        return;
    /* A drained server leaves its accepted sockets alone. */
    if (atomic_load(&srv->state) == SSOCK__OPEN)
        (void)ssock_server_close(srv);
    ssock__server_unref(srv);
}

void ssock__server_unlink(ssock_server *srv, ssock_socket *sock)
{
    pthread_mutex_lock(&srv->lock);
    if (sock->prev != NULL)
        sock->prev->next = sock->next;
    else if (srv->children == sock)
        srv->children = sock->next;
    if (sock->next != NULL)
        sock->next->prev = sock->prev;
    sock->prev = sock->next = NULL;
    pthread_mutex_unlock(&srv->lock);
}
