/*
 * libuv_echo: the TLS echo server on a libuv loop, to show that ssock fits
 * the event loop an application already has.
 *
 *   libuv_echo [--port N] [--addr A] [--cert F --key F]
 *              [--backend mbedtls|openssl] [--max-conns N]
 *              [--idle-timeout MS]
 *
 * Prints "listening on HOST:PORT" once listening (IPv6 hosts in brackets),
 * echoes every byte of every TLS connection, and exits 0 on SIGINT or
 * SIGTERM. Bad flags: a message on stderr, exit status 2.
 *
 * How it fits together:
 *  - one uv_poll_t (UV_READABLE) on ssock_server_poll_fd(): it covers the
 *    listener and every handshake in flight, and is readable when
 *    ssock_server_try_accept() has work;
 *  - one uv_timer_t for ssock_server_next_timeout(), the next handshake
 *    deadline;
 *  - per connection: a uv_poll_t on ssock_socket_fd() for the direction
 *    ssock_socket_want() asks for after SSOCK_EAGAIN, and a uv_timer_t for
 *    ssock_socket_next_timeout() (--idle-timeout);
 *  - backpressure: bytes a non-blocking write did not take are kept, and
 *    the connection is not read until they are gone.
 */
#include <ssock/ssock.h>
#include <ssock/tls.h>

#include <uv.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ECHO_CERTS_DIR
#define ECHO_CERTS_DIR "certs"
#endif
#define BUF_SIZE 16384
#define ROUNDS 8 /* read/write rounds per wake-up before others get a turn */

struct app {
    uv_loop_t *loop;
    ssock_server *server;
    uv_poll_t server_poll;
    uv_timer_t server_timer;
    uv_signal_t sigint, sigterm;
    int nconns, max_conns;
    int status; /* exit status: 1 after a fatal accept error */
    struct conn *conns;
    unsigned char buf[BUF_SIZE];
};

struct conn {
    struct app *app;
    ssock_socket *sock;
    uv_poll_t poll;
    uv_timer_t timer;
    int events;          /* UV_READABLE or UV_WRITABLE, as started */
    int handles;         /* libuv handles still to close before free */
    unsigned char *pend; /* bytes the socket has not taken yet */
    size_t pend_off, pend_len;
    bool flush; /* all taken, part still queued inside the library */
    struct conn *prev, *next; /* in app.conns while open */
};

static void conn_on_io(uv_poll_t *h, int status, int events);

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->handles > 0)
        return;
    ssock_socket_free(c->sock); /* closes the descriptor: after uv_close */
    free(c->pend);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->poll))
        return;
    c->app->nconns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->app->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->poll, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void conn_on_timer(uv_timer_t *t)
{
    conn_on_io(&((struct conn *)t->data)->poll, 0, 0);
}

/* Wait for what ssock asked for, and for the next idle deadline. */
static void conn_arm(struct conn *c)
{
    int ev = ssock_socket_want(c->sock) == SSOCK_WANT_WRITE ? UV_WRITABLE
                                                            : UV_READABLE;
    int left = ssock_socket_next_timeout(c->sock);

    if (ev != c->events) {
        c->events = ev;
        uv_poll_start(&c->poll, ev, conn_on_io);
    }
    if (left >= 0)
        uv_timer_start(&c->timer, conn_on_timer, (uint64_t)left, 0);
    else
        uv_timer_stop(&c->timer);
}

/* Left-over output first: 0 when nothing is left, else SSOCK_EAGAIN or an
 * error. */
static int conn_push(struct conn *c)
{
    size_t n = 0;
    int rc;

    if (c->pend_len == 0) {
        rc = c->flush ? ssock_socket_flush(c->sock) : 0;
        c->flush = rc == SSOCK_EAGAIN;
        return rc;
    }
    rc = ssock_socket_write(c->sock, c->pend + c->pend_off, c->pend_len, &n);
    c->pend_off += n;
    c->pend_len -= n;
    if (c->pend_len == 0) {
        free(c->pend);
        c->pend = NULL;
        c->pend_off = 0;
        c->flush = rc == SSOCK_EAGAIN;
    }
    return rc;
}

/* Echo `len` bytes just read, keeping what the socket did not take. */
static int conn_echo(struct conn *c, const unsigned char *buf, size_t len)
{
    size_t n = 0;
    int rc = ssock_socket_write(c->sock, buf, len, &n);

    if (rc != SSOCK_EAGAIN)
        return rc;
    if (n == len) {
        c->flush = true;
        return rc;
    }
    c->pend = malloc(len - n);
    if (c->pend == NULL)
        return SSOCK_ENOMEM;
    memcpy(c->pend, buf + n, len - n);
    c->pend_len = len - n;
    return rc;
}

static void conn_on_io(uv_poll_t *h, int status, int events)
{
    struct conn *c = h->data;
    struct app *app = c->app;

    (void)status; /* an error shows in the read or write below */
    (void)events;
    for (int round = 0; round < ROUNDS; round++) {
        size_t n = 0;
        int rc = conn_push(c);

        if (rc == 0)
            rc = ssock_socket_read(c->sock, app->buf, sizeof(app->buf), &n);
        if (rc == 0)
            rc = conn_echo(c, app->buf, n);
        if (rc == SSOCK_EAGAIN) {
            conn_arm(c);
            return;
        }
        if (rc != 0) { /* end of stream, error, idle timeout */
            conn_close(c);
            return;
        }
    }
    /* Out of budget: come back on the next loop turn (a timer of 0 also
     * covers bytes already decrypted, which the descriptor does not show). */
    uv_timer_start(&c->timer, conn_on_timer, 0, 0);
}

static void conn_open(struct app *app, ssock_socket *sock)
{
    struct conn *c;

    if (app->nconns >= app->max_conns || (c = calloc(1, sizeof(*c))) == NULL) {
        ssock_socket_free(sock);
        return;
    }
    c->app = app;
    c->sock = sock;
    c->handles = 2;
    c->poll.data = c;
    c->timer.data = c;
    app->nconns++;
    uv_timer_init(app->loop, &c->timer);
    if (uv_poll_init(app->loop, &c->poll, ssock_socket_fd(sock)) != 0) {
        c->handles = 1;
        uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
        app->nconns--;
        return;
    }
    c->next = app->conns;
    if (app->conns)
        app->conns->prev = c;
    app->conns = c;
    /* The first bytes of a TLS client may be decrypted already. */
    conn_on_io(&c->poll, 0, 0);
}

static void server_on_timer(uv_timer_t *t);

/* Take every finished connection, then re-arm the deadline timer. */
static void server_step(struct app *app)
{
    for (;;) {
        ssock_socket *sock = NULL;
        int rc = ssock_server_try_accept(app->server, &sock);

        if (rc == 0) {
            conn_open(app, sock);
            continue;
        }
        if (rc != SSOCK_EAGAIN && !ssock_err_is_transient(rc)) {
            fprintf(stderr, "libuv_echo: accept failed: %s (%s)\n",
                    ssock_strerror(rc), ssock_err_name(rc));
            app->status = 1;
            uv_stop(app->loop);
        }
        break;
    }
    int left = ssock_server_next_timeout(app->server);
    if (left >= 0)
        uv_timer_start(&app->server_timer, server_on_timer, (uint64_t)left, 0);
    else
        uv_timer_stop(&app->server_timer);
}

static void server_on_io(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    server_step(h->data);
}

static void server_on_timer(uv_timer_t *t)
{
    server_step(t->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(((struct app *)s->data)->loop);
}

/* Stopped: close every handle; connections free their sockets as their
 * handles close. */
static void close_all(struct app *app)
{
    while (app->conns)
        conn_close(app->conns);
    uv_close((uv_handle_t *)&app->server_poll, NULL);
    uv_close((uv_handle_t *)&app->server_timer, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

static int parse_args(int argc, char **argv, ssock_server_options *o,
                      ssock_tls_options *t, struct app *app)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long n = v ? strtol(v, &end, 10) : -1;
        bool num = v && *v && *end == '\0';

        if (strcmp(f, "--help") == 0) {
            puts("usage: libuv_echo [--port N] [--addr A] [--cert F --key F]"
                 " [--backend mbedtls|openssl]\n"
                 "                  [--max-conns N] [--idle-timeout MS]");
            return 0;
        }
        if (v == NULL) {
            fprintf(stderr, "libuv_echo: %s needs a value\n", f);
            return 2;
        }
        i++;
        if (strcmp(f, "--port") == 0 && num && n >= 0 && n <= 65535)
            o->port = (int)n;
        else if (strcmp(f, "--addr") == 0)
            o->addr = v;
        else if (strcmp(f, "--cert") == 0)
            t->cert_file = v;
        else if (strcmp(f, "--key") == 0)
            t->key_file = v;
        else if (strcmp(f, "--backend") == 0 &&
                 ssock_tls_backend_from_name(v) >= 0)
            t->backend = ssock_tls_backend_from_name(v);
        else if (strcmp(f, "--max-conns") == 0 && num && n > 0 && n < INT_MAX)
            app->max_conns = (int)n;
        else if (strcmp(f, "--idle-timeout") == 0 && num && n >= 0 &&
                 n < INT_MAX)
            o->read_timeout_ms = o->write_timeout_ms = (int)n;
        else {
            fprintf(stderr, "libuv_echo: bad argument %s %s (see --help)\n", f,
                    v);
            return 2;
        }
    }
    return -1;
}

/* The TLS server: 0 or the exit status (said why). */
static int open_server(struct app *app, ssock_server_options *o,
                       ssock_tls_options *t)
{
    char err[SSOCK_TLS_ERRBUF_SIZE];
    ssock_tls_config *tls = NULL;
    int rc = ssock_tls_config_new(&tls, t, err, sizeof(err));

    if (rc != 0) {
        fprintf(stderr, "libuv_echo: TLS configuration: %s (%s): %s\n",
                ssock_strerror(rc), ssock_err_name(rc), err);
        return 2;
    }
    o->tls = tls;
    o->nonblocking = 1;
    rc = ssock_server_open(&app->server, o);
    ssock_tls_config_free(tls); /* the server keeps its own reference */
    if (rc != 0) {
        fprintf(stderr, "libuv_echo: cannot listen: %s (%s)\n",
                ssock_strerror(rc), ssock_err_name(rc));
        return rc == SSOCK_EBADADDR || rc == SSOCK_ERESOLVE ? 2 : 1;
    }
    return 0;
}

static void start_loop(struct app *app)
{
    char host[SSOCK_HOST_MAX + 2];
    const char *h = ssock_server_host(app->server);

    uv_poll_init(app->loop, &app->server_poll,
                 ssock_server_poll_fd(app->server));
    app->server_poll.data = app;
    uv_poll_start(&app->server_poll, UV_READABLE, server_on_io);
    uv_timer_init(app->loop, &app->server_timer);
    app->server_timer.data = app;
    uv_signal_init(app->loop, &app->sigint);
    uv_signal_init(app->loop, &app->sigterm);
    app->sigint.data = app->sigterm.data = app;
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);

    snprintf(host, sizeof(host), strchr(h, ':') ? "[%s]" : "%s", h);
    printf("listening on %s:%d\n", host, ssock_server_local_port(app->server));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static struct app app = {.max_conns = 1024};
    ssock_server_options o;
    ssock_tls_options t;
    int status;

    ssock_server_options_init(&o);
    ssock_tls_options_init(&t);
    o.port = 7000;
    o.read_timeout_ms = o.write_timeout_ms = SSOCK_WAIT_FOREVER;
    t.cert_file = ECHO_CERTS_DIR "/server-ecdsa.pem";
    t.key_file = ECHO_CERTS_DIR "/server-ecdsa.key";
    status = parse_args(argc, argv, &o, &t, &app);
    if (status >= 0)
        return status;
    app.loop = uv_default_loop();
    status = open_server(&app, &o, &t);
    if (status != 0)
        return status;
    start_loop(&app);
    uv_run(app.loop, UV_RUN_DEFAULT);

    /* Let the closes finish (the poll handle leaves the server's poll
     * descriptor before the server is freed). */
    close_all(&app);
    uv_run(app.loop, UV_RUN_DEFAULT);
    ssock_server_free(app.server);
    return uv_loop_close(app.loop) == 0 ? app.status : 1;
}
