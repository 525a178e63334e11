/*
 * loadgen: the load generator of the ssock benchmarks (OpenSSL client side).
 *
 * One epoll loop per thread drives `--conns` connections through a small
 * state machine; every figure is counted only inside the measuring window
 * (after `--warmup`), and the run ends by itself after --warmup+--duration.
 * The result is one line of key=value pairs on stdout.
 *
 *   --mode connect    connect, shutdown(SHUT_WR), wait for the server's
 *                     end of stream, close, again: conns/s (plain)
 *   --mode echo       --size bytes out, the same back, again: rtt/s and
 *                     p50/p99 latency (plain, or over TLS with --tls)
 *   --mode handshake  connect, full TLS handshake (no resumption: no
 *                     session reuse, no tickets asked), --size byte echo,
 *                     close_notify, close, again: handshakes/s
 *   --mode bulk       stream 16 KiB writes and read the echo back, at most
 *                     1 MiB in flight per connection: MiB/s echoed
 *   --mode idle       open --conns connections (each does one --size echo,
 *                     so the server has accepted and, with --tls, finished
 *                     its handshake), print "ready N", hold them until
 *                     SIGTERM/SIGINT or --hold seconds, then close
 *   --mode slowloris  --conns silent clients plus --conns clients that sent
 *                     the first 43 bytes of a ClientHello and trickle one
 *                     more byte a second; meanwhile one good client does
 *                     --samples handshakes (+ echo) one after another, each
 *                     bounded by --wait-ms: p50/max latency in ms, or a
 *                     timeout (the run then stops)
 *
 * Server CPU per operation (connect and handshake modes):
 *   --count N         start exactly N connections in all (no warmup, no
 *                     window), run until every one has finished; rate and
 *                     secs are then over that whole phase
 *   --cpu-pids P,...  read utime+stime of these processes (/proc/P/stat,
 *                     every thread, exited ones included) just before the
 *                     measured phase and 200 ms after its end; prints
 *                     cpu_ms=A,B,... (per PID), cpu_sys_ms= (the stime
 *                     part) and cpu_us_per_op= (the sum of cpu_ms over the
 *                     operations completed)
 *   --stall K         handshake mode: first open K connections that send a
 *                     ClientHello, see the server's first flight arrive
 *                     (never read into TLS) and then stall (the server holds K
 * handshakes in flight), held until the end; stalled=K' says how many got there
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BULK_CHUNK 16384
#define BULK_WINDOW (1024 * 1024)
#define IDLE_SETUP_CONCURRENCY 100
#define IDLE_SETUP_LIMIT_MS 60000
#define MAX_EVENTS 256

enum mode { M_CONNECT, M_ECHO, M_HANDSHAKE, M_BULK, M_IDLE, M_SLOWLORIS };

static const char *const mode_names[] = {"connect", "echo", "handshake",
                                         "bulk",    "idle", "slowloris"};

struct opts {
    enum mode mode;
    const char *host;
    int port;
    int conns;
    int threads;
    int warmup_ms;
    int duration_ms;
    int size;
    bool tls;
    int tls_version; /* 0 any, 12, 13 */
    int hold_s;
    int wait_ms;
    int samples;
    int count; /* --count: connections in all, 0 = timed window */
    int stall; /* --stall: handshakes held in flight meanwhile */
    int npids; /* --cpu-pids */
    int pids[8];
};

static struct opts opt = {
    .mode = M_ECHO,
    .host = "127.0.0.1",
    .port = 0,
    .conns = 1,
    .threads = 1,
    .warmup_ms = 300,
    .duration_ms = 2000,
    .size = 64,
    .tls = false,
    .tls_version = 0,
    .hold_s = 60,
    .wait_ms = 3000,
    .samples = 5,
    .count = 0,
    .stall = 0,
    .npids = 0,
};

static struct sockaddr_storage server_addr;
static socklen_t server_alen;
static SSL_CTX *client_ctx;
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/*
 * Idle and stalled connections each come from their own loopback source
 * address (127.2.0.0 + idx) when the server is on 127.x: a server that caps
 * handshakes per source (ssock: 64 by default) then sees many clients, as
 * it would in the field, instead of one client opening thousands.
 */
static void bind_source(int fd, int idx)
{
    const struct sockaddr_in *srv = (const struct sockaddr_in *)&server_addr;
    struct sockaddr_in a;
    int one = 1;

    if (server_addr.ss_family != AF_INET ||
        (ntohl(srv->sin_addr.s_addr) >> 24) != 127)
        return;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f020000u + (uint32_t)idx);
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* The port is chosen by connect(), knowing the whole 4-tuple: a port
     * whose 4-tuple is still in TIME_WAIT from an earlier run against the
     * same server is then never picked. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof(one));
#endif
    (void)bind(fd, (struct sockaddr *)&a, sizeof(a));
}

/* ------------------------------------------------------------------ */
/* One connection and its state machine                               */
/* ------------------------------------------------------------------ */

enum state {
    ST_FREE,
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_SEND,
    ST_RECV,
    ST_DRAIN,
    ST_BULK,
    ST_IDLE
};

struct conn {
    int fd;
    enum state st;
    SSL *ssl;
    uint32_t ev;      /* events registered with epoll */
    uint64_t t_start; /* connect() called */
    uint64_t t_op;    /* this round trip started */
    size_t off;       /* bytes of the message sent / received so far */
    uint64_t inflight;
    bool want_write;
};

struct engine {
    int ep;
    struct conn *c;
    int n;
    uint64_t t_measure; /* window start */
    uint64_t t_end;     /* window end */
    uint64_t ops;
    uint64_t errors;
    uint64_t bytes;
    uint64_t *lat; /* ns, completions inside the window */
    size_t nlat;
    size_t caplat;
    int started; /* idle: connections started so far */
    int idle;    /* idle: connections holding */
    int lost;    /* idle: connections the server closed */
    int failed;  /* idle: connections that never got to holding */
    int budget;  /* --count: connections this engine may start */
    int begun;   /* --count: connections started so far */
    char *sbuf;
    char *rbuf;
    char first_error[96];
};

static void note_error(struct engine *e, const char *what, int err)
{
    e->errors++;
    if (e->first_error[0] == '\0') {
        snprintf(e->first_error, sizeof(e->first_error), "%s:%s", what,
                 err ? strerror(err) : "-");
        /* One token in the key=value result line. */
        for (char *p = e->first_error; *p != '\0'; p++)
            if (*p == ' ' || *p == '=')
                *p = '_';
    }
}

static void record(struct engine *e, uint64_t now, uint64_t t0)
{
    if (now < e->t_measure || now > e->t_end)
        return;
    e->ops++;
    if (e->nlat == e->caplat) {
        size_t cap = e->caplat ? e->caplat * 2 : 4096;
        uint64_t *p = realloc(e->lat, cap * sizeof(*p));
        if (p == NULL)
            return;
        e->lat = p;
        e->caplat = cap;
    }
    e->lat[e->nlat++] = now - t0;
}

static void set_events(struct engine *e, struct conn *c, uint32_t ev)
{
    struct epoll_event ee = {.events = ev, .data.ptr = c};

    if (c->ev == ev)
        return;
    if (epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ee) == 0)
        c->ev = ev;
}

static void conn_close(struct conn *c, bool goodbye)
{
    if (c->ssl != NULL) {
        if (goodbye)
            (void)SSL_shutdown(c->ssl); /* send close_notify, do not wait */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->st = ST_FREE;
    c->ev = 0;
}

static bool conn_start(struct engine *e, struct conn *c);
static void idle_start_next(struct engine *e);
static void drive(struct engine *e, struct conn *c, uint32_t events);

/* A connection failed: count it, and start over where the mode does. */
static void conn_fail(struct engine *e, struct conn *c, const char *what,
                      int err)
{
    note_error(e, what, err);
    conn_close(c, false);
    if (opt.mode == M_IDLE) {
        e->failed++;
        idle_start_next(e);
    } else if (bench_now_ns() < e->t_end) {
        (void)conn_start(e, c);
    }
}

/* Start connecting; false (counted) when that failed at once. */
static bool conn_start(struct engine *e, struct conn *c)
{
    struct epoll_event ee;
    int one = 1;
    int fd;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    if (opt.count > 0) {
        if (e->begun >= e->budget)
            return false;
        e->begun++;
    }
    fd = socket(server_addr.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(e, "socket", errno);
        return false;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.mode == M_IDLE)
        bind_source(fd, (int)(c - e->c));
    c->fd = fd;
    c->st = ST_CONNECTING;
    c->t_start = bench_now_ns();
    c->ev = EPOLLOUT;
    ee.events = EPOLLOUT;
    ee.data.ptr = c;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ee) != 0) {
        note_error(e, "epoll_ctl", errno);
        conn_close(c, false);
        return false;
    }
    if (connect(fd, (struct sockaddr *)&server_addr, server_alen) != 0 &&
        errno != EINPROGRESS) {
        note_error(e, "connect", errno);
        conn_close(c, false);
        return false;
    }
    return true;
}

/* idle: start the next connection not yet started, if any. */
static void idle_start_next(struct engine *e)
{
    while (e->started < e->n) {
        if (conn_start(e, &e->c[e->started++]))
            return;
        e->failed++;
    }
}

/* The application part begins (after TCP, or after the TLS handshake). */
static void begin_app(struct engine *e, struct conn *c)
{
    switch (opt.mode) {
    case M_CONNECT:
        if (shutdown(c->fd, SHUT_WR) != 0) {
            conn_fail(e, c, "shutdown", errno);
            return;
        }
        c->st = ST_DRAIN;
        set_events(e, c, EPOLLIN);
        return;
    case M_BULK:
        c->st = ST_BULK;
        c->inflight = 0;
        c->want_write = false;
        set_events(e, c, EPOLLIN | EPOLLOUT);
        return;
    default:
        c->st = ST_SEND;
        c->off = 0;
        c->t_op = bench_now_ns();
        set_events(e, c, EPOLLOUT);
        return;
    }
}

/* Non-blocking transfer through TLS or the plain socket: bytes moved
 * (> 0), 0 at the end of the stream, -1 would block (*want says for
 * what), -2 on an error. */
static long xfer(struct conn *c, bool out, char *buf, size_t len,
                 uint32_t *want)
{
    if (c->ssl != NULL) {
        int n;

        ERR_clear_error();
        n = out ? SSL_write(c->ssl, buf, (int)len)
                : SSL_read(c->ssl, buf, (int)len);
        if (n > 0)
            return n;
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            *want = EPOLLIN;
            return -1;
        case SSL_ERROR_WANT_WRITE:
            *want = EPOLLOUT;
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;
        default:
            errno = 0;
            return -2;
        }
    }
    for (;;) {
        ssize_t n = out ? send(c->fd, buf, len, MSG_NOSIGNAL)
                        : recv(c->fd, buf, len, 0);
        if (n >= 0)
            return (long)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want = out ? EPOLLOUT : EPOLLIN;
            return -1;
        }
        return -2;
    }
}

static void on_connected(struct engine *e, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        conn_fail(e, c, "connect", err);
        return;
    }
    if (!opt.tls) {
        begin_app(e, c);
        return;
    }
    c->ssl = SSL_new(client_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail(e, c, "SSL_new", 0);
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->st = ST_HANDSHAKE;
}

/* One exchange of the echo-like modes finished. */
static void round_done(struct engine *e, struct conn *c, uint64_t now)
{
    switch (opt.mode) {
    case M_ECHO:
        record(e, now, c->t_op);
        c->st = ST_SEND;
        c->off = 0;
        c->t_op = now;
        set_events(e, c, EPOLLOUT);
        break;
    case M_HANDSHAKE:
        record(e, now, c->t_start);
        conn_close(c, true);
        if (now < e->t_end)
            (void)conn_start(e, c);
        break;
    default: /* M_IDLE */
        c->st = ST_IDLE;
        e->idle++;
        set_events(e, c, EPOLLIN);
        idle_start_next(e);
        break;
    }
}

static void drive_bulk(struct engine *e, struct conn *c)
{
    uint32_t want = 0;
    uint64_t now;

    for (;;) {
        long n = xfer(c, false, e->rbuf, BULK_CHUNK, &want);
        if (n == -1)
            break;
        if (n <= 0) {
            conn_fail(e, c, "bulk read", n == 0 ? ECONNRESET : errno);
            return;
        }
        c->inflight -= (uint64_t)n < c->inflight ? (uint64_t)n : c->inflight;
        now = bench_now_ns();
        if (now >= e->t_measure && now <= e->t_end)
            e->bytes += (uint64_t)n;
    }
    c->want_write = false;
    while (c->inflight < BULK_WINDOW) {
        long n = xfer(c, true, e->sbuf, BULK_CHUNK, &want);
        if (n == -1) {
            c->want_write = want == EPOLLOUT;
            break;
        }
        if (n <= 0) {
            conn_fail(e, c, "bulk write", errno);
            return;
        }
        c->inflight += (uint64_t)n;
    }
    set_events(e, c, EPOLLIN | (c->want_write ? EPOLLOUT : 0));
}

static void drive(struct engine *e, struct conn *c, uint32_t events)
{
    for (;;) {
        uint32_t want = 0;
        long n;

        switch (c->st) {
        case ST_CONNECTING:
            on_connected(e, c);
            if (c->st == ST_CONNECTING || c->st == ST_FREE)
                return;
            continue;
        case ST_HANDSHAKE: {
            int r;

            ERR_clear_error();
            r = SSL_connect(c->ssl);
            if (r == 1) {
                begin_app(e, c);
                if (c->st == ST_FREE)
                    return;
                continue;
            }
            switch (SSL_get_error(c->ssl, r)) {
            case SSL_ERROR_WANT_READ:
                set_events(e, c, EPOLLIN);
                return;
            case SSL_ERROR_WANT_WRITE:
                set_events(e, c, EPOLLOUT);
                return;
            default:
                conn_fail(e, c, "handshake", errno);
                return;
            }
        }
        case ST_SEND:
            n = xfer(c, true, e->sbuf + c->off, (size_t)opt.size - c->off,
                     &want);
            if (n == -1) {
                set_events(e, c, want);
                return;
            }
            if (n <= 0) {
                conn_fail(e, c, "send", errno);
                return;
            }
            c->off += (size_t)n;
            if (c->off == (size_t)opt.size) {
                c->st = ST_RECV;
                c->off = 0;
                set_events(e, c, EPOLLIN);
            }
            continue;
        case ST_RECV:
            n = xfer(c, false, e->rbuf + c->off, (size_t)opt.size - c->off,
                     &want);
            if (n == -1) {
                set_events(e, c, want);
                return;
            }
            if (n <= 0) {
                conn_fail(e, c, "recv", n == 0 ? ECONNRESET : errno);
                return;
            }
            c->off += (size_t)n;
            if (c->off == (size_t)opt.size) {
                round_done(e, c, bench_now_ns());
                if (c->st != ST_SEND)
                    return;
            }
            continue;
        case ST_DRAIN:
            n = xfer(c, false, e->rbuf, BULK_CHUNK, &want);
            if (n == -1)
                return;
            if (n < 0) {
                conn_fail(e, c, "drain", errno);
                return;
            }
            if (n == 0) {
                uint64_t now = bench_now_ns();
                record(e, now, c->t_start);
                conn_close(c, false);
                if (now < e->t_end)
                    (void)conn_start(e, c);
                return;
            }
            continue; /* unexpected bytes: keep draining */
        case ST_BULK:
            drive_bulk(e, c);
            return;
        case ST_IDLE:
            if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                e->lost++;
                e->idle--;
                note_error(e, "idle_closed_by_server", 0);
                conn_close(c, false);
            }
            return;
        case ST_FREE:
            return;
        }
    }
}

static void engine_loop(struct engine *e, bool idle)
{
    struct epoll_event evs[MAX_EVENTS];
    bool announced = false;
    uint64_t hold_until = 0;
    uint64_t setup_until = bench_now_ns() + IDLE_SETUP_LIMIT_MS * 1000000ull;

    while (!stop_requested) {
        uint64_t now = bench_now_ns();
        int timeout = 100;
        int n;

        if (!idle && now >= e->t_end)
            break;
        if (!idle && opt.count > 0 && e->begun >= e->budget) {
            bool busy = false;
            for (int i = 0; i < e->n && !busy; i++)
                busy = e->c[i].st != ST_FREE;
            if (!busy)
                break;
        }
        if (idle && !announced) {
            if (e->idle + e->lost + e->failed >= e->n && e->started == e->n) {
                printf("ready %d\n", e->idle);
                fflush(stdout);
                announced = true;
                hold_until = now + (uint64_t)opt.hold_s * 1000000000ull;
            } else if (now >= setup_until) {
                note_error(e, "idle_setup_too_long", 0);
                break;
            }
        }
        if (idle && announced && now >= hold_until)
            break;
        if (!idle) {
            int left = bench_ms_left(e->t_end);
            timeout = left < timeout ? left : timeout;
        }
        n = epoll_wait(e->ep, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++)
            drive(e, evs[i].data.ptr, evs[i].events);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    bool idle = opt.mode == M_IDLE;

    if (idle) {
        for (int i = 0; i < IDLE_SETUP_CONCURRENCY && i < e->n; i++)
            idle_start_next(e);
    } else {
        for (int i = 0; i < e->n; i++)
            (void)conn_start(e, &e->c[i]);
    }
    engine_loop(e, idle);
    for (int i = 0; i < e->n; i++)
        if (e->c[i].st != ST_FREE)
            conn_close(&e->c[i], idle);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* slowloris                                                          */
/* ------------------------------------------------------------------ */

/* A non-blocking connect; src >= 0 binds that source (bind_source()). */
static int connect_nb(int src)
{
    int one = 1;
    int fd = socket(server_addr.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src >= 0)
        bind_source(fd, src);
    if (connect(fd, (struct sockaddr *)&server_addr, server_alen) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool wait_fd(int fd, short ev, uint64_t deadline)
{
    struct pollfd p = {fd, ev, 0};

    for (;;) {
        int ms = bench_ms_left(deadline);
        int n;

        if (ms == 0)
            return false;
        n = poll(&p, 1, ms);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* One good client: handshake and a 32-byte echo, bounded by --wait-ms.
 * Milliseconds taken, or -1 on a timeout or a failure. */
static double good_client(void)
{
    uint64_t t0 = bench_now_ns();
    uint64_t deadline = t0 + (uint64_t)opt.wait_ms * 1000000u;
    char out[32], in[32];
    size_t got = 0;
    double ms = -1;
    int err = 0;
    socklen_t elen = sizeof(err);
    SSL *ssl = NULL;
    int fd = connect_nb(-1);

    memset(out, 'g', sizeof(out));
    if (fd < 0 || !wait_fd(fd, POLLOUT, deadline) ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0)
        goto out;
    ssl = SSL_new(client_ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto out;
    for (;;) {
        int r, e;

        ERR_clear_error();
        r = SSL_connect(ssl);
        if (r == 1)
            break;
        e = SSL_get_error(ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            !wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
            goto out;
    }
    for (;;) {
        int r = SSL_write(ssl, out, sizeof(out));
        if (r > 0)
            break;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE ||
            !wait_fd(fd, POLLOUT, deadline))
            goto out;
    }
    while (got < sizeof(in)) {
        int r = SSL_read(ssl, in + got, (int)(sizeof(in) - got));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ ||
            !wait_fd(fd, POLLIN, deadline))
            goto out;
    }
    ms = (double)(bench_now_ns() - t0) / 1e6;
    (void)SSL_shutdown(ssl);
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    return ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_slowloris(void)
{
    /* The start of a TLS 1.2-style ClientHello announcing a 512-byte
     * record: record header, handshake header, version, then random. */
    static const unsigned char hello[43] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                            0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a};
    int k = opt.conns;
    int *silent = calloc((size_t)k, sizeof(int));
    int *slow = calloc((size_t)k, sizeof(int));
    double *lat = calloc((size_t)opt.samples + 1, sizeof(double));
    uint64_t deadline = bench_now_ns() + 10000000000ull;
    uint64_t last_trickle;
    int nlat = 0, timeouts = 0, open_at_end = 0, failed = 0;

    if (silent == NULL || slow == NULL || lat == NULL)
        return 1;
    for (int i = 0; i < k; i++) {
        silent[i] = connect_nb(-1);
        slow[i] = connect_nb(-1);
    }
    for (int i = 0; i < k; i++) {
        if (silent[i] < 0 || !wait_fd(silent[i], POLLOUT, deadline))
            failed++;
        if (slow[i] < 0 || !wait_fd(slow[i], POLLOUT, deadline) ||
            send(slow[i], hello, sizeof(hello), MSG_NOSIGNAL) < 0)
            failed++;
    }
    last_trickle = bench_now_ns();
    /* Let the server take them in before the good client arrives. */
    usleep(300000);
    for (int s = 0; s < opt.samples && !stop_requested; s++) {
        double ms = good_client();

        if (ms < 0) {
            timeouts++;
            break;
        }
        lat[nlat++] = ms;
        if (bench_now_ns() - last_trickle >= 1000000000ull) {
            unsigned char b = 0;
            for (int i = 0; i < k; i++)
                if (slow[i] >= 0)
                    (void)send(slow[i], &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            last_trickle = bench_now_ns();
        }
    }
    for (int i = 0; i < k; i++) {
        char b;
        if (silent[i] >= 0 &&
            recv(silent[i], &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
            errno == EAGAIN)
            open_at_end++;
        if (slow[i] >= 0 && recv(slow[i], &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
            errno == EAGAIN)
            open_at_end++;
        if (silent[i] >= 0)
            close(silent[i]);
        if (slow[i] >= 0)
            close(slow[i]);
    }
    qsort(lat, (size_t)nlat, sizeof(*lat), cmp_double);
    printf("mode=slowloris conns=%d samples=%d timeouts=%d wait_ms=%d "
           "p50_ms=%.2f max_ms=%.2f held_open=%d setup_failed=%d\n",
           k, nlat, timeouts, opt.wait_ms, nlat ? lat[nlat / 2] : -1.0,
           nlat ? lat[nlat - 1] : -1.0, open_at_end, failed);
    free(silent);
    free(slow);
    free(lat);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Stalled handshakes and server CPU                                  */
/* ------------------------------------------------------------------ */

struct stalled {
    int fd;
    SSL *ssl;
};

#define STALL_BATCH 200

/*
 * Open up to `k` connections that send their ClientHello and wait for the
 * server's first flight (so the server has done that part of its work and
 * now waits for the client's next flight), then stall. Batches of
 * STALL_BATCH, each bounded at 30 s. Returns how many got there; *out
 * holds them all (fd -1 for the ones that did not) for close_stalled().
 */
static int open_stalled(int k, struct stalled **out)
{
    struct stalled *st = calloc((size_t)k + 1, sizeof(*st));
    int ready = 0;

    *out = st;
    if (st == NULL)
        return 0;
    for (int i = 0; i < k; i++)
        st[i].fd = -1;
    for (int b = 0; b < k && !stop_requested; b += STALL_BATCH) {
        int end = b + STALL_BATCH < k ? b + STALL_BATCH : k;
        uint64_t deadline = bench_now_ns() + 30000000000ull;

        for (int i = b; i < end; i++)
            st[i].fd = connect_nb(i);
        for (int i = b; i < end; i++) {
            int r, err = 0;
            socklen_t elen = sizeof(err);
            BIO *rb, *wb;
            char *hello = NULL;
            long hlen;

            if (st[i].fd < 0 || !wait_fd(st[i].fd, POLLOUT, deadline) ||
                getsockopt(st[i].fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 ||
                err != 0)
                goto drop;
            /* The ClientHello is written into a memory BIO and sent from
             * here: the client never reads the server's answer, so the
             * handshake stays half-way whatever the version and timing. */
            st[i].ssl = SSL_new(client_ctx);
            rb = BIO_new(BIO_s_mem());
            wb = BIO_new(BIO_s_mem());
            if (st[i].ssl == NULL || rb == NULL || wb == NULL) {
                BIO_free(rb);
                BIO_free(wb);
                goto drop;
            }
            SSL_set_bio(st[i].ssl, rb, wb);
            SSL_set_connect_state(st[i].ssl);
            ERR_clear_error();
            r = SSL_connect(st[i].ssl);
            hlen = BIO_get_mem_data(wb, &hello);
            if (r == 1 || SSL_get_error(st[i].ssl, r) != SSL_ERROR_WANT_READ ||
                hlen <= 0 ||
                send(st[i].fd, hello, (size_t)hlen, MSG_NOSIGNAL) != hlen)
                goto drop;
            continue;
        drop:
            SSL_free(st[i].ssl);
            st[i].ssl = NULL;
            if (st[i].fd >= 0)
                close(st[i].fd);
            st[i].fd = -1;
        }
        for (int i = b; i < end; i++) {
            char c;

            if (st[i].fd < 0)
                continue;
            /* The server's first flight is there: peek, do not consume. */
            if (wait_fd(st[i].fd, POLLIN, deadline) &&
                recv(st[i].fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
                ready++;
            } else {
                SSL_free(st[i].ssl);
                st[i].ssl = NULL;
                close(st[i].fd);
                st[i].fd = -1;
            }
        }
    }
    return ready;
}

/* How many stalled connections the server still holds open. */
static int count_stalled(const struct stalled *st, int k)
{
    int open_now = 0;

    for (int i = 0; i < k; i++) {
        char buf[4096];
        ssize_t n;

        if (st[i].fd < 0)
            continue;
        /* Drain what the server sent; EAGAIN = still open. */
        do
            n = recv(st[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
        while (n > 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            open_now++;
    }
    return open_now;
}

static void close_stalled(struct stalled *st, int k)
{
    if (st == NULL)
        return;
    for (int i = 0; i < k; i++) {
        SSL_free(st[i].ssl);
        if (st[i].fd >= 0)
            close(st[i].fd);
    }
    free(st);
}

/* utime + stime of a process in ms (every thread, exited ones too), or
 * -1; *sys_ms gets the stime part. */
static double proc_cpu_ms(int pid, double *sys_ms)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, stt = 0;
    const char *p;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name "(...)": state is field 3, utime 14,
     * stime 15. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                            "%*u %llu %llu",
                            &ut, &stt) != 2)
        return -1;
    *sys_ms = (double)stt * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    return (double)(ut + stt) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static void read_cpu(double *ms, double *sys_ms)
{
    for (int i = 0; i < opt.npids; i++)
        ms[i] = proc_cpu_ms(opt.pids[i], &sys_ms[i]);
}

static bool parse_pids(const char *v)
{
    char *copy = strdup(v), *save = NULL;
    bool ok = copy != NULL;

    opt.npids = 0;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t != NULL && ok;
         t = strtok_r(NULL, ",", &save)) {
        int pid;
        ok = opt.npids < (int)(sizeof(opt.pids) / sizeof(opt.pids[0])) &&
             bench_parse_int(t, 1, 1 << 30, &pid);
        if (ok)
            opt.pids[opt.npids++] = pid;
    }
    free(copy);
    return ok && opt.npids > 0;
}

/* ------------------------------------------------------------------ */
/* main                                                               */
/* ------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fputs("usage: loadgen --port N [--host A] --mode "
          "connect|echo|handshake|bulk|idle|slowloris\n"
          "               [--conns N] [--threads N] [--warmup-ms MS] "
          "[--duration-ms MS]\n"
          "               [--size B] [--tls] [--tls-version 1.2|1.3] "
          "[--hold S]\n"
          "               [--wait-ms MS] [--samples N]\n"
          "               [--count N] [--cpu-pids P,...] [--stall K]\n",
          out);
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v;
        bool ok = true;

        if (strcmp(f, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(f, "--tls") == 0) {
            opt.tls = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: %s needs a value (or is unknown)\n", f);
            return 2;
        }
        v = argv[++i];
        if (strcmp(f, "--mode") == 0) {
            ok = false;
            for (int m = 0; m <= M_SLOWLORIS; m++)
                if (strcmp(v, mode_names[m]) == 0) {
                    opt.mode = (enum mode)m;
                    ok = true;
                }
        } else if (strcmp(f, "--host") == 0) {
            opt.host = v;
        } else if (strcmp(f, "--port") == 0) {
            ok = bench_parse_int(v, 1, 65535, &opt.port);
        } else if (strcmp(f, "--conns") == 0) {
            ok = bench_parse_int(v, 1, 100000, &opt.conns);
        } else if (strcmp(f, "--threads") == 0) {
            ok = bench_parse_int(v, 1, 64, &opt.threads);
        } else if (strcmp(f, "--warmup-ms") == 0) {
            ok = bench_parse_int(v, 0, 600000, &opt.warmup_ms);
        } else if (strcmp(f, "--duration-ms") == 0) {
            ok = bench_parse_int(v, 1, 600000, &opt.duration_ms);
        } else if (strcmp(f, "--size") == 0) {
            ok = bench_parse_int(v, 1, BULK_CHUNK, &opt.size);
        } else if (strcmp(f, "--tls-version") == 0) {
            ok = strcmp(v, "1.2") == 0 || strcmp(v, "1.3") == 0;
            opt.tls_version = strcmp(v, "1.2") == 0 ? 12 : 13;
        } else if (strcmp(f, "--hold") == 0) {
            ok = bench_parse_int(v, 1, 3600, &opt.hold_s);
        } else if (strcmp(f, "--wait-ms") == 0) {
            ok = bench_parse_int(v, 1, 600000, &opt.wait_ms);
        } else if (strcmp(f, "--samples") == 0) {
            ok = bench_parse_int(v, 1, 100000, &opt.samples);
        } else if (strcmp(f, "--count") == 0) {
            ok = bench_parse_int(v, 1, 10000000, &opt.count);
        } else if (strcmp(f, "--stall") == 0) {
            ok = bench_parse_int(v, 0, 100000, &opt.stall);
        } else if (strcmp(f, "--cpu-pids") == 0) {
            ok = parse_pids(v);
        } else {
            fprintf(stderr, "loadgen: unknown argument '%s'\n", f);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "loadgen: bad value '%s' for %s\n", v, f);
            return 2;
        }
    }
    if (opt.port == 0) {
        fputs("loadgen: --port is required\n", stderr);
        return 2;
    }
    if (opt.mode == M_HANDSHAKE || opt.mode == M_SLOWLORIS)
        opt.tls = true;
    if (opt.mode == M_IDLE || opt.mode == M_SLOWLORIS)
        opt.threads = 1;
    if (opt.threads > opt.conns)
        opt.threads = opt.conns;
    if (opt.count > 0 && opt.mode != M_HANDSHAKE && opt.mode != M_CONNECT) {
        fputs("loadgen: --count needs --mode handshake or connect\n", stderr);
        return 2;
    }
    if (opt.stall > 0 && opt.mode != M_HANDSHAKE) {
        fputs("loadgen: --stall needs --mode handshake\n", stderr);
        return 2;
    }
    return 0;
}

static bool resolve(void)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&server_addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&server_addr;

    memset(&server_addr, 0, sizeof(server_addr));
    if (inet_pton(AF_INET, opt.host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)opt.port);
        server_alen = sizeof(*sin);
        return true;
    }
    if (inet_pton(AF_INET6, opt.host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)opt.port);
        server_alen = sizeof(*sin6);
        return true;
    }
    fprintf(stderr, "loadgen: --host must be an IP literal: '%s'\n", opt.host);
    return false;
}

static bool make_client_ctx(void)
{
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (client_ctx == NULL)
        return false;
    /* Full handshakes only: no session cache, no tickets. The server is
     * not verified (the cost measured is the server's; the client still
     * checks the handshake signature, which TLS always requires). */
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(client_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(client_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (opt.tls_version != 0) {
        int v = opt.tls_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
        if (SSL_CTX_set_min_proto_version(client_ctx, v) != 1 ||
            SSL_CTX_set_max_proto_version(client_ctx, v) != 1)
            return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    struct engine *eng;
    pthread_t *tid;
    uint64_t t0, ops = 0, errors = 0, bytes = 0;
    size_t nlat = 0;
    uint64_t *lat;
    int lost = 0, idle = 0;
    const char *first_error = "";
    double secs;
    double cpu0[8] = {0}, cpu1[8] = {0}, sys0[8] = {0}, sys1[8] = {0};
    struct stalled *stalled = NULL;
    int nstalled = 0, stalled_end = 0;
    int rc = parse_args(argc, argv);

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (!resolve())
        return 2;
    bench_raise_nofile();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (opt.tls && !make_client_ctx()) {
        fputs("loadgen: cannot set up the TLS client\n", stderr);
        return 1;
    }
    if (opt.mode == M_SLOWLORIS) {
        rc = run_slowloris();
        SSL_CTX_free(client_ctx);
        return rc;
    }

    if (opt.stall > 0) {
        nstalled = open_stalled(opt.stall, &stalled);
        usleep(300000); /* let the server settle */
    }
    eng = calloc((size_t)opt.threads, sizeof(*eng));
    tid = calloc((size_t)opt.threads, sizeof(*tid));
    if (eng == NULL || tid == NULL)
        return 1;
    read_cpu(cpu0, sys0);
    t0 = bench_now_ns();
    for (int t = 0; t < opt.threads; t++) {
        struct engine *e = &eng[t];

        e->n = opt.conns / opt.threads + (t < opt.conns % opt.threads);
        e->c = calloc((size_t)e->n, sizeof(*e->c));
        e->sbuf = malloc(BULK_CHUNK);
        e->rbuf = malloc(BULK_CHUNK);
        e->ep = epoll_create1(EPOLL_CLOEXEC);
        if (e->c == NULL || e->sbuf == NULL || e->rbuf == NULL || e->ep < 0)
            return 1;
        memset(e->sbuf, 'x', BULK_CHUNK);
        for (int i = 0; i < e->n; i++)
            e->c[i].fd = -1;
        e->t_measure = t0 + (uint64_t)opt.warmup_ms * 1000000u;
        e->t_end = e->t_measure + (uint64_t)opt.duration_ms * 1000000u;
        if (opt.count > 0) {
            /* Every connection counts; the window only bounds the run. */
            e->budget = opt.count / opt.threads + (t < opt.count % opt.threads);
            e->t_measure = t0;
            e->t_end = t0 + 600000000000ull;
        }
    }
    for (int t = 0; t < opt.threads; t++)
        if (pthread_create(&tid[t], NULL, engine_main, &eng[t]) != 0)
            return 1;
    for (int t = 0; t < opt.threads; t++) {
        pthread_join(tid[t], NULL);
        ops += eng[t].ops;
        errors += eng[t].errors;
        bytes += eng[t].bytes;
        nlat += eng[t].nlat;
        lost += eng[t].lost;
        idle += eng[t].idle;
        if (first_error[0] == '\0')
            first_error = eng[t].first_error;
    }
    lat = malloc((nlat + 1) * sizeof(*lat));
    if (lat == NULL)
        return 1;
    nlat = 0;
    for (int t = 0; t < opt.threads; t++) {
        if (eng[t].nlat > 0)
            memcpy(lat + nlat, eng[t].lat, eng[t].nlat * sizeof(*lat));
        nlat += eng[t].nlat;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_u64);
    secs = opt.duration_ms / 1000.0;
    if (opt.count > 0)
        secs = (double)(bench_now_ns() - t0) / 1e9;
    if (opt.npids > 0) {
        usleep(200000); /* the server's side of the last closes */
        read_cpu(cpu1, sys1);
    }
    if (stalled != NULL)
        stalled_end = count_stalled(stalled, opt.stall);
    if (opt.mode == M_IDLE) {
        printf("mode=idle conns=%d held=%d lost=%d errors=%llu "
               "first_error=%s\n",
               opt.conns, idle, lost, (unsigned long long)errors,
               first_error[0] ? first_error : "-");
    } else {
        printf("mode=%s conns=%d tls=%d ops=%llu secs=%.2f rate=%.1f "
               "p50_us=%.1f p99_us=%.1f mibps=%.1f errors=%llu "
               "first_error=%s",
               mode_names[opt.mode], opt.conns, opt.tls ? 1 : 0,
               (unsigned long long)ops, secs, (double)ops / secs,
               nlat ? (double)lat[nlat / 2] / 1e3 : 0.0,
               nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0.0,
               (double)bytes / secs / (1024.0 * 1024.0),
               (unsigned long long)errors, first_error[0] ? first_error : "-");
        if (opt.stall > 0)
            printf(" stall=%d stalled=%d stalled_at_end=%d", opt.stall,
                   nstalled, stalled_end);
        if (opt.npids > 0) {
            double sum = 0;
            bool ok = true;

            fputs(" cpu_ms=", stdout);
            for (int i = 0; i < opt.npids; i++) {
                double d = cpu1[i] - cpu0[i];
                ok = ok && cpu0[i] >= 0 && cpu1[i] >= 0;
                sum += d;
                printf("%s%.0f", i ? "," : "",
                       cpu0[i] >= 0 && cpu1[i] >= 0 ? d : -1.0);
            }
            fputs(" cpu_sys_ms=", stdout);
            for (int i = 0; i < opt.npids; i++)
                printf("%s%.0f", i ? "," : "",
                       cpu0[i] >= 0 && cpu1[i] >= 0 ? sys1[i] - sys0[i] : -1.0);
            if (ok && ops > 0)
                printf(" cpu_us_per_op=%.1f", sum * 1000.0 / (double)ops);
            else
                fputs(" cpu_us_per_op=n/a", stdout);
        }
        putchar('\n');
    }
    close_stalled(stalled, opt.stall);
    for (int t = 0; t < opt.threads; t++) {
        free(eng[t].c);
        free(eng[t].lat);
        free(eng[t].sbuf);
        free(eng[t].rbuf);
        close(eng[t].ep);
    }
    free(eng);
    free(tid);
    free(lat);
    SSL_CTX_free(client_ctx);
    return errors > 0 && ops == 0 && opt.mode != M_IDLE ? 1 : 0;
}
