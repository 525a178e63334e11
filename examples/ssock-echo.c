/*
 * ssock-echo: a multi-connection TCP echo server on top of ssock.
 *
 * Contract (other tools rely on it):
 *   ssock-echo [--port N] [--addr A] [--timeout MS] [--backlog N]
 *              [--max-conns N] [--poll | --event [--workers N]]
 *              [--idle-timeout MS] [--verbose] [--log-accepts]
 *              [--proxy-protocol off|v1|v2|any] [--proxy-trusted LIST]
 *              [--help] [--version]
 *              [--tls] [--cert F --key F]... [--ca F]
 *              [--verify-client none|optional|required]
 *              [--backend mbedtls|openssl] [--min-version 1.2|1.3]
 *              [--alpn LIST] [--handshake-timeout MS] [--max-handshakes N]
 *   - --tls alone uses the development certificate pair in certs/; any
 *     TLS flag implies --tls; --cert/--key pairs repeat: the first pair is
 *     the default, SNI picks among them (ssock_tls_options.extra_certs);
 *   - bad flag values or combinations: a message on stderr, exit status 2;
 *   - once listening: exactly one line "listening on HOST:PORT" on stdout
 *     (IPv6 hosts in brackets), flushed. Nothing else is written there
 *     unless asked for: --verbose ("event ..." lines), --log-accepts
 *     ("accepted HOST PORT[ sni=NAME]") and SIGHUP ("reloaded" or
 *     "reload failed: REASON");
 *   - every byte received on a connection is written back to it: one
 *     thread per connection (default), one poll() loop (--poll, plain TCP
 *     only) or N epoll loops over non-blocking sockets (--event); beyond
 *     --max-conns (counted across all workers) a new connection is closed
 *     at once;
 *   - socket activation: when LISTEN_PID is this process and LISTEN_FDS
 *     >= 1 it serves on descriptor 3 instead of binding (--port and --addr
 *     are then ignored; with --event --workers N every worker serves a
 *     dup() of that one listener);
 *   - SIGHUP re-reads every certificate, key and CA file and swaps the
 *     configuration of every server (ssock_server_set_tls()); on failure
 *     the old configuration keeps serving;
 *   - SIGINT or SIGTERM: the server is closed, connections end, and the
 *     process exits 0 within 2 s.
 *
 * Signals are handled by one thread that waits for them with sigwait(); every
 * other thread has them blocked, so no handler runs and nothing is
 * interrupted (and a reload reads its files in that thread, not in a
 * handler). The library itself never touches signals.
 */
#include <ssock/ssock.h>
#include <ssock/tls.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define ECHO_DEFAULT_PORT 7000
#define ECHO_DEFAULT_MAX_CONNS 1024
/* Connection threads wake this often to notice a shutdown on their own. */
#define ECHO_READ_TIMEOUT_MS 1000
/* How long shutdown waits for connection threads before closing them. */
#define ECHO_DRAIN_MS 1000
#define ECHO_BUF_SIZE 16384
/* --cert/--key pairs and --event workers at most. */
#define ECHO_MAX_CERTS 16
#define ECHO_MAX_WORKERS 64
/* --event: read/write rounds one connection gets per wake-up, and
 * connections taken per accept step, before the loop serves the others. */
#define ECHO_DRIVE_ROUNDS 8
#define ECHO_ACCEPT_BATCH 64
#define ECHO_EPOLL_EVENTS 128
/* --event: a worker left with no connection after holding this many at once
 * returns free memory to the system (glibc's malloc_trim()). */
#define ECHO_TRIM_PEAK 64
#ifndef ECHO_CERTS_DIR
#define ECHO_CERTS_DIR "certs"
#endif

enum echo_mode { MODE_THREADS, MODE_POLL, MODE_EVENT, MODE_CONFLICT };

/* --alpn h2,http/1.1 split in place into at most 16 names. */
struct alpn_list {
    char buf[1024];
    char *v[16];
    size_t count;
};

/* The command line, read-only once parsed. */
struct echo_args {
    ssock_server_options opts;
    ssock_tls_options tls;
    struct alpn_list alpn;
    const char *certs[ECHO_MAX_CERTS], *keys[ECHO_MAX_CERTS];
    size_t ncerts, nkeys;
    enum echo_mode mode;
    int workers; /* 0: not given */
    int max_conns;
    int idle_timeout_ms; /* 0: connections never time out */
    bool use_tls, log_accepts;
};

/* A connection and its detached thread, which frees both when it ends. */
struct conn {
    struct echo *echo;
    ssock_socket *sock;
    struct conn *prev, *next; /* in echo.conns, under echo.lock */
};

/* The running server, shared by every thread. */
struct echo {
    const struct echo_args *args;
    ssock_server *servers[ECHO_MAX_WORKERS];
    int nservers;
    int stop_fd;          /* eventfd, readable once stopping (poll, event) */
    atomic_bool stopping; /* SIGINT/SIGTERM seen, or a fatal error */
    atomic_int nconns;    /* --poll and --event: connections open */
    /* The threaded mode's connections. */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a connection thread finished */
    struct conn *conns;     /* connections whose socket is still ours */
    int active;             /* connection threads still running */
    bool stuck;             /* some did not stop: leave their state alone */
    pthread_attr_t detached;
};

static void usage(FILE *out)
{
    fputs("usage: ssock-echo [--port N] [--addr A] [--timeout MS] "
          "[--backlog N] [--max-conns N] [mode] [TLS flags]\n"
          "  --port N          port to listen on, 0..65535 (default 7000; "
          "0 = ephemeral)\n"
          "  --addr A          local address to bind (default: every "
          "interface)\n"
          "  --timeout MS      accept timeout in ms, >= 0 (default 10000; "
          "0 = forever;\n"
          "                    --poll and --event never wait in accept)\n"
          "  --backlog N       listen backlog, > 0 (default 100)\n"
          "  --max-conns N     concurrent connections, > 0, across all "
          "workers\n"
          "                    (default 1024)\n"
          "  --idle-timeout MS close a connection that moved no byte for MS "
          "ms\n"
          "                    (default 0: never; not with --poll)\n"
          "  --verbose         print one line per server event on stdout:\n"
          "                    event TYPE HOST PORT STATUS [DETAIL]\n"
          "  --log-accepts     print \"accepted HOST PORT[ sni=NAME]\" on "
          "stdout for\n"
          "                    each connection served (HOST: the PROXY "
          "header's client)\n"
          "  --proxy-protocol M\n"
          "                    off|v1|v2|any (default off): every connection "
          "must start\n"
          "                    with a PROXY protocol header of that version\n"
          "  --proxy-trusted L comma-separated CIDRs allowed to send one "
          "(default\n"
          "                    127.0.0.0/8,::1/128); others are closed "
          "unread\n"
          "  --help            show this text\n"
          "  --version         print the ssock, mbedTLS and OpenSSL "
          "versions\n"
          "Mode (default: one thread per connection):\n"
          "  --poll            one thread and one poll() loop (plain TCP "
          "only)\n"
          "  --event           worker threads, each with its own SO_REUSEPORT "
          "server\n"
          "                    and one epoll loop over non-blocking sockets\n"
          "  --workers N       --event only: worker threads, 1..64 (default "
          "1)\n"
          "TLS (any of these turns TLS on):\n"
          "  --tls                  serve TLS (default: the dev certs in "
          "certs/)\n"
          "  --cert F --key F       certificate chain and private key (PEM); "
          "repeat\n"
          "                         for SNI: the first pair is the default\n"
          "  --ca F                 CA bundle for client certificates\n"
          "  --verify-client M      none|optional|required (default none)\n"
          "  --backend B            mbedtls|openssl (default mbedtls)\n"
          "  --min-version V        1.2|1.3 (default 1.2)\n"
          "  --alpn LIST            comma-separated protocols, e.g. "
          "h2,http/1.1\n"
          "  --handshake-timeout MS per-connection handshake deadline "
          "(default 10000)\n"
          "  --max-handshakes N     handshakes in flight per server (default "
          "256)\n"
          "Prints \"listening on HOST:PORT\" once listening; SIGINT or "
          "SIGTERM stops it;\n"
          "SIGHUP re-reads the certificate, key and CA files (prints "
          "\"reloaded\" or\n"
          "\"reload failed: REASON\"). Socket activation: with LISTEN_PID = "
          "its pid and\n"
          "LISTEN_FDS >= 1 it serves on descriptor 3 (--port, --addr "
          "ignored; every\n"
          "--event worker gets a dup() of it).\n",
          out);
}

/* One line on stdout, flushed, whole (threads print concurrently). */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    flockfile(stdout);
    vprintf(fmt, ap);
    fflush(stdout);
    funlockfile(stdout);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Accept errors after which the server is still worth accepting on: the
 * library's classifier says which. */
static bool is_transient(int rc)
{
    return ssock_err_is_transient(rc) != 0;
}

static bool is_arg_error(int rc)
{
    return rc == SSOCK_EBADPORT || rc == SSOCK_EBADTIMEOUT ||
           rc == SSOCK_EBADBACKLOG || rc == SSOCK_EBADADDR ||
           rc == SSOCK_ERESOLVE;
}

/* --log-accepts: one line per connection served. */
static void log_accept(const struct echo *echo, const ssock_socket *sock)
{
    const char *sni;

    if (!echo->args->log_accepts)
        return;
    sni = echo->args->use_tls ? ssock_socket_tls_sni(sock) : NULL;
    say("accepted %s %d%s%s\n", ssock_socket_peer_host(sock),
        ssock_socket_peer_port(sock), sni ? " sni=" : "", sni ? sni : "");
}

/* --verbose: one line per server event, from the accepting thread. */
static void print_event(const ssock_event *ev, void *arg)
{
    static const char *const names[] = {
        [SSOCK_EVENT_ACCEPTED] = "accepted",
        [SSOCK_EVENT_REFUSED] = "refused",
        [SSOCK_EVENT_HANDSHAKE_FAILED] = "handshake-failed",
        [SSOCK_EVENT_HANDSHAKE_TIMED_OUT] = "handshake-timed-out",
        [SSOCK_EVENT_HANDSHAKE_DROPPED] = "handshake-dropped",
        [SSOCK_EVENT_PROXY_REFUSED] = "proxy-refused",
    };
    const char *name = ev->type > 0 && ev->type <= SSOCK_EVENT_PROXY_REFUSED
                           ? names[ev->type]
                           : "unknown";
    (void)arg;
    say("event %s %s %d %s%s%s\n", name,
        ev->peer_host[0] != '\0' ? ev->peer_host : "-", ev->peer_port,
        ssock_err_name(ev->status), ev->detail[0] != '\0' ? " " : "",
        ev->detail);
}

/* ------------------------------------------------------------------ */
/* Flags                                                               */
/* ------------------------------------------------------------------ */

/* Parse a decimal int in [min, max]; false on anything else. */
static bool parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    long v;

    if (*s == '\0')
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_alpn(struct alpn_list *a, const char *val)
{
    if (strlen(val) >= sizeof(a->buf))
        return false;
    strcpy(a->buf, val);
    a->count = 0;
    for (char *save = NULL, *tok = strtok_r(a->buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (a->count == sizeof(a->v) / sizeof(a->v[0]))
            return false;
        a->v[a->count++] = tok;
    }
    return a->count > 0;
}

static bool parse_proxy_mode(const char *val, int *out)
{
    static const char *const names[] = {
        [SSOCK_PROXY_OFF] = "off",
        [SSOCK_PROXY_V1] = "v1",
        [SSOCK_PROXY_V2] = "v2",
        [SSOCK_PROXY_ANY] = "any",
    };

    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
        if (strcmp(val, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

#define IS(name) (flen == strlen(name) && strncmp(flag, name, flen) == 0)

/* One TLS flag; false on a bad value. */
static bool parse_tls_flag(struct echo_args *a, const char *flag, size_t flen,
                           const char *val)
{
    ssock_tls_options *t = &a->tls;

    if (IS("--cert") || IS("--key")) {
        const char **list = IS("--cert") ? a->certs : a->keys;
        size_t *n = IS("--cert") ? &a->ncerts : &a->nkeys;

        if (*n == ECHO_MAX_CERTS)
            return false;
        list[(*n)++] = val;
    } else if (IS("--ca")) {
        t->ca_file = val;
    } else if (IS("--verify-client")) {
        if (strcmp(val, "none") == 0)
            t->verify_client = SSOCK_TLS_VERIFY_NONE;
        else if (strcmp(val, "optional") == 0)
            t->verify_client = SSOCK_TLS_VERIFY_OPTIONAL;
        else if (strcmp(val, "required") == 0)
            t->verify_client = SSOCK_TLS_VERIFY_REQUIRED;
        else
            return false;
    } else if (IS("--backend")) {
        int id = ssock_tls_backend_from_name(val);
        if (id < 0)
            return false;
        t->backend = id;
    } else if (IS("--min-version")) {
        if (strcmp(val, "1.2") == 0)
            t->min_version = SSOCK_TLS_VERSION_1_2;
        else if (strcmp(val, "1.3") == 0)
            t->min_version = SSOCK_TLS_VERSION_1_3;
        else
            return false;
    } else if (IS("--alpn")) {
        return parse_alpn(&a->alpn, val);
    } else if (IS("--handshake-timeout")) {
        return parse_int(val, 1, INT_MAX, &t->handshake_timeout_ms);
    } else if (IS("--max-handshakes")) {
        return parse_int(val, 1, INT_MAX, &t->max_handshakes);
    } else {
        return false;
    }
    return *val != '\0';
}

/* A flag that takes a value; false on a bad value. */
static bool parse_value(struct echo_args *a, const char *flag, size_t flen,
                        const char *val)
{
    ssock_server_options *o = &a->opts;

    if (IS("--port"))
        return parse_int(val, 0, 65535, &o->port);
    if (IS("--timeout"))
        return parse_int(val, 0, INT_MAX, &o->accept_timeout_ms);
    if (IS("--backlog"))
        return parse_int(val, 1, INT_MAX, &o->backlog);
    if (IS("--max-conns"))
        return parse_int(val, 1, INT_MAX, &a->max_conns);
    if (IS("--workers"))
        return parse_int(val, 1, ECHO_MAX_WORKERS, &a->workers);
    if (IS("--idle-timeout"))
        return parse_int(val, 0, INT_MAX, &a->idle_timeout_ms);
    if (IS("--proxy-protocol"))
        return parse_proxy_mode(val, &o->proxy_protocol);
    if (IS("--proxy-trusted") || IS("--addr")) {
        *(IS("--addr") ? &o->addr : &o->proxy_trusted) = val;
        return *val != '\0';
    }
    a->use_tls = true;
    return parse_tls_flag(a, flag, flen, val);
}

static bool is_value_flag(const char *flag, size_t flen)
{
    static const char *const names[] = {
        "--port",
        "--addr",
        "--timeout",
        "--backlog",
        "--max-conns",
        "--workers",
        "--idle-timeout",
        "--proxy-protocol",
        "--proxy-trusted",
        "--cert",
        "--key",
        "--ca",
        "--verify-client",
        "--backend",
        "--min-version",
        "--alpn",
        "--handshake-timeout",
        "--max-handshakes",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (IS(names[i]))
            return true;
    return false;
}

/* A flag without a value; false when `flag` is not one. */
static bool parse_switch(struct echo_args *a, const char *flag, size_t flen)
{
    if (IS("--tls"))
        a->use_tls = true;
    else if (IS("--poll"))
        a->mode = a->mode == MODE_EVENT ? MODE_CONFLICT : MODE_POLL;
    else if (IS("--event"))
        a->mode = a->mode == MODE_POLL ? MODE_CONFLICT : MODE_EVENT;
    else if (IS("--verbose"))
        a->opts.on_event = print_event;
    else if (IS("--log-accepts"))
        a->log_accepts = true;
    else
        return false;
    return true;
}

#undef IS

static int print_version(void)
{
    /* The TLS library versions are those ssock was built with. */
    printf("ssock-echo (ssock %s)\n", ssock_version_string());
    printf("mbedTLS: %s\n",
           SSOCK_HAVE_MBEDTLS ? SSOCK_MBEDTLS_VERSION_STRING : "not built");
    printf("OpenSSL: %s\n",
           SSOCK_HAVE_OPENSSL ? SSOCK_OPENSSL_VERSION_STRING : "not built");
    return 0;
}

/* Flags that do not go together; 0 or exit status 2 (said why). */
static int check_args(const struct echo_args *a)
{
    const char *why = NULL;

    if (a->mode == MODE_CONFLICT)
        why = "--poll and --event exclude each other";
    else if (a->workers > 0 && a->mode != MODE_EVENT)
        why = "--workers needs --event";
    else if (a->mode == MODE_POLL && a->use_tls)
        why = "--poll serves plain TCP only";
    else if (a->mode == MODE_POLL && a->idle_timeout_ms > 0)
        why = "--poll has no --idle-timeout (use --event)";
    else if (a->ncerts != a->nkeys)
        why = "--cert and --key come in pairs";
    if (why == NULL)
        return 0;
    fprintf(stderr, "ssock-echo: %s\n", why);
    return 2;
}

/* Fill `a` from the command line. -1 to run, else the exit status. */
static int parse_args(int argc, char **argv, struct echo_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *eq = strchr(flag, '=');
        size_t flen = eq ? (size_t)(eq - flag) : strlen(flag);
        const char *val;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(flag, "--version") == 0)
            return print_version();
        if (!eq && parse_switch(a, flag, flen))
            continue;
        if (!is_value_flag(flag, flen)) {
            fprintf(stderr, "ssock-echo: unknown argument '%s'\n", flag);
            usage(stderr);
            return 2;
        }
        if (eq == NULL && i + 1 == argc) {
            fprintf(stderr, "ssock-echo: %s needs a value\n", flag);
            return 2;
        }
        val = eq ? eq + 1 : argv[++i];
        if (!parse_value(a, flag, flen, val)) {
            fprintf(stderr, "ssock-echo: bad value '%s' for %.*s\n", val,
                    (int)flen, flag);
            return 2;
        }
    }
    return check_args(a) == 0 ? -1 : 2;
}

/* ------------------------------------------------------------------ */
/* TLS configuration (start-up and SIGHUP)                             */
/* ------------------------------------------------------------------ */

/* Build the TLS configuration from the command line, reading every file
 * again. 0 or a status, with the backend's words in `err`. */
static int build_tls(const struct echo_args *a, ssock_tls_config **out,
                     char *err, size_t errlen)
{
    ssock_tls_options t = a->tls;
    ssock_tls_cert extra[ECHO_MAX_CERTS];

    if (a->ncerts == 0) {
        t.cert_file = ECHO_CERTS_DIR "/server-ecdsa.pem";
        t.key_file = ECHO_CERTS_DIR "/server-ecdsa.key";
    } else {
        t.cert_file = a->certs[0];
        t.key_file = a->keys[0];
    }
    for (size_t i = 1; i < a->ncerts; i++) {
        memset(&extra[i - 1], 0, sizeof(extra[i - 1]));
        extra[i - 1].cert_file = a->certs[i];
        extra[i - 1].key_file = a->keys[i];
    }
    if (a->ncerts > 1) {
        t.extra_certs = extra;
        t.extra_cert_count = a->ncerts - 1;
    }
    t.alpn = a->alpn.count ? (const char *const *)a->alpn.v : NULL;
    t.alpn_count = a->alpn.count;
    return ssock_tls_config_new(out, &t, err, errlen);
}

/* SIGHUP: re-read the files, swap every server's configuration. */
static void reload(struct echo *echo)
{
    char err[SSOCK_TLS_ERRBUF_SIZE] = "";
    ssock_tls_config *tls = NULL;
    int rc = 0;

    if (echo->args->use_tls)
        rc = build_tls(echo->args, &tls, err, sizeof(err));
    for (int i = 0; rc == 0 && tls && i < echo->nservers; i++) {
        rc = ssock_server_set_tls(echo->servers[i], tls);
        if (rc != 0)
            snprintf(err, sizeof(err), "server %d", i);
    }
    ssock_tls_config_free(tls); /* the servers keep their references */
    if (rc == 0) {
        say("reloaded\n");
        return;
    }
    say("reload failed: %s (%s): %s\n", ssock_strerror(rc), ssock_err_name(rc),
        err);
    fprintf(stderr, "ssock-echo: reload failed: %s (%s): %s\n",
            ssock_strerror(rc), ssock_err_name(rc), err);
}

/* ------------------------------------------------------------------ */
/* Threaded mode: one thread per connection                            */
/* ------------------------------------------------------------------ */

/* Echo until the peer leaves, an error, a shutdown or the idle timeout. */
static int conn_echo(struct echo *echo, ssock_socket *sock, unsigned char *buf)
{
    int idle_ms = echo->args->idle_timeout_ms;
    int64_t last = now_ms();
    int rc = 0;

    while (rc == 0) {
        size_t n = 0;

        rc = ssock_socket_read(sock, buf, ECHO_BUF_SIZE, &n);
        if (rc == SSOCK_ETIMEOUT) {
            if (atomic_load(&echo->stopping))
                return SSOCK_ESERVERCLOSED;
            rc = idle_ms > 0 && now_ms() - last >= idle_ms ? rc : 0;
            continue;
        }
        if (rc == 0)
            rc = ssock_socket_write(sock, buf, n, NULL);
        last = now_ms();
    }
    return rc;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct echo *echo = c->echo;
    unsigned char *buf = malloc(ECHO_BUF_SIZE);

    if (buf)
        (void)conn_echo(echo, c->sock, buf);
    free(buf);

    /* Leave the list first, so close_all() never sees a freed socket; the
     * count drops last, so shutdown waits until the memory is back. */
    pthread_mutex_lock(&echo->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        echo->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&echo->lock);
    ssock_socket_free(c->sock);
    free(c);

    pthread_mutex_lock(&echo->lock);
    echo->active--;
    pthread_cond_broadcast(&echo->changed);
    pthread_mutex_unlock(&echo->lock);
    return NULL;
}

/* Hand a new connection to its own thread, or drop it when over the cap.
 * Threads are detached: the accept loop never joins or reaps. */
static void start_conn(struct echo *echo, ssock_socket *sock)
{
    struct conn *c = calloc(1, sizeof(*c));
    pthread_t thread;
    int err;

    if (!c) {
        fprintf(stderr, "ssock-echo: out of memory, connection dropped\n");
        ssock_socket_free(sock);
        return;
    }
    c->echo = echo;
    c->sock = sock;

    pthread_mutex_lock(&echo->lock);
    if (echo->active >= echo->args->max_conns) {
        pthread_mutex_unlock(&echo->lock);
        ssock_socket_free(sock);
        free(c);
        return;
    }
    log_accept(echo, sock);
    c->next = echo->conns;
    if (echo->conns)
        echo->conns->prev = c;
    echo->conns = c;
    echo->active++;
    err = pthread_create(&thread, &echo->detached, conn_main, c);
    if (err != 0) {
        echo->conns = c->next;
        if (c->next)
            c->next->prev = NULL;
        echo->active--;
    }
    pthread_mutex_unlock(&echo->lock);
    if (err != 0) {
        fprintf(stderr, "ssock-echo: cannot start a thread: %s\n",
                strerror(err));
        ssock_socket_free(sock);
        free(c);
    }
}

/* Wait up to `ms` for every connection thread to finish. */
static bool drain(struct echo *echo, long ms)
{
    struct timespec deadline;
    bool empty;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&echo->lock);
    while (echo->active > 0 &&
           pthread_cond_timedwait(&echo->changed, &echo->lock, &deadline) !=
               ETIMEDOUT) {
    }
    empty = echo->active == 0;
    pthread_mutex_unlock(&echo->lock);
    return empty;
}

/* Force every connection still open to fail; safe from any thread. */
static void close_all(struct echo *echo)
{
    pthread_mutex_lock(&echo->lock);
    for (struct conn *c = echo->conns; c; c = c->next)
        (void)ssock_socket_close(c->sock);
    pthread_mutex_unlock(&echo->lock);
}

/* The blocking accept loop. 0, or 1 on a fatal accept error. */
static int serve_threads(struct echo *echo)
{
    for (;;) {
        ssock_socket *sock = NULL;
        int rc = ssock_server_accept(echo->servers[0], &sock);

        if (rc == 0) {
            start_conn(echo, sock);
        } else if (rc == SSOCK_ETIMEOUT) {
            continue; /* nothing yet: still waiting */
        } else if (rc == SSOCK_ECLOSED) {
            return 0; /* closed by the signal watcher */
        } else if (is_transient(rc)) {
            fprintf(stderr, "ssock-echo: accept: %s\n", ssock_strerror(rc));
            sleep_ms(10);
        } else {
            fprintf(stderr, "ssock-echo: accept failed: %s (%s)\n",
                    ssock_strerror(rc), ssock_err_name(rc));
            return 1;
        }
    }
}

/* After serve_threads(): let the connection threads end. 0 or 1. */
static int stop_threads(struct echo *echo)
{
    (void)ssock_server_close(echo->servers[0]);
    /* Closing the server fails every connection within 100 ms; give the
     * threads a moment, then close their sockets ourselves. */
    if (drain(echo, ECHO_DRAIN_MS))
        return 0;
    close_all(echo);
    if (drain(echo, ECHO_DRAIN_MS / 2))
        return 0;
    fprintf(stderr, "ssock-echo: connection threads did not stop\n");
    echo->stuck = true;
    return 1;
}

/* ------------------------------------------------------------------ */
/* --poll: one thread, one poll() loop, blocking plain sockets         */
/* ------------------------------------------------------------------ */

/* Take every finished connection: 0, or 1 on a fatal accept error. */
static int poll_accept(struct echo *echo, ssock_socket **socks, size_t *n)
{
    for (;;) {
        ssock_socket *sock = NULL;
        int rc = ssock_server_try_accept(echo->servers[0], &sock);

        if (rc == SSOCK_EAGAIN || rc == SSOCK_ECLOSED)
            return 0;
        if (rc == 0 && *n < (size_t)echo->args->max_conns) {
            log_accept(echo, sock);
            socks[(*n)++] = sock;
        } else if (rc == 0) {
            ssock_socket_free(sock);
        } else if (is_transient(rc)) {
            fprintf(stderr, "ssock-echo: accept: %s\n", ssock_strerror(rc));
            return 0;
        } else {
            fprintf(stderr, "ssock-echo: accept failed: %s (%s)\n",
                    ssock_strerror(rc), ssock_err_name(rc));
            return 1;
        }
    }
}

/*
 * --poll: one thread, one poll() over the server's poll descriptor, the
 * stop descriptor and every connection; a readable connection gets one
 * read and its echo (a blocking write). Plain TCP only. Returns 0, or 1
 * on a fatal error.
 */
static int serve_poll(struct echo *echo)
{
    size_t n = 0, cap = (size_t)echo->args->max_conns;
    struct pollfd *pfd = calloc(cap + 2, sizeof(*pfd));
    ssock_socket **socks = calloc(cap, sizeof(*socks));
    unsigned char *buf = malloc(ECHO_BUF_SIZE);
    ssock_server *server = echo->servers[0];
    int status = pfd && socks && buf ? 0 : 1;

    if (status != 0)
        fprintf(stderr, "ssock-echo: out of memory\n");
    while (status == 0) {
        pfd[0] = (struct pollfd){ssock_server_poll_fd(server), POLLIN, 0};
        pfd[1] = (struct pollfd){echo->stop_fd, POLLIN, 0};
        for (size_t i = 0; i < n; i++)
            pfd[2 + i] = (struct pollfd){ssock_socket_fd(socks[i]), POLLIN, 0};
        if (poll(pfd, (nfds_t)(n + 2), ssock_server_next_timeout(server)) < 0) {
            status = errno == EINTR ? 0 : 1;
            continue;
        }
        if (pfd[1].revents)
            break;
        /* Backwards, so removing entry i (swap with the last) is safe. */
        for (size_t i = n; i-- > 0;) {
            size_t got = 0;
            int rc;

            if (!pfd[2 + i].revents)
                continue;
            rc = ssock_socket_read(socks[i], buf, ECHO_BUF_SIZE, &got);
            if (rc == 0)
                rc = ssock_socket_write(socks[i], buf, got, NULL);
            if (rc != 0) {
                ssock_socket_free(socks[i]);
                socks[i] = socks[--n];
            }
        }
        status = poll_accept(echo, socks, &n);
    }
    for (size_t i = 0; i < n; i++)
        ssock_socket_free(socks[i]);
    free(buf);
    free(socks);
    free(pfd);
    return status;
}

/* ------------------------------------------------------------------ */
/* --event: N workers, one epoll loop each, non-blocking sockets       */
/* ------------------------------------------------------------------ */

/* A connection of an event worker. */
struct econn {
    ssock_socket *sock;
    /* Backpressure: bytes read but not yet taken by the socket. While any
     * are left (or the library holds queued output: `flush`), the
     * connection is not read. Allocated only while needed, so an idle
     * connection costs no buffer. */
    unsigned char *pend;
    size_t pend_off, pend_len;
    bool flush;
    bool again;     /* its round budget ran out with bytes still pending */
    uint32_t armed; /* EPOLLIN or EPOLLOUT, as registered */
    struct econn *prev, *next;
};

struct worker {
    struct echo *echo;
    ssock_server *server;
    int epfd;
    pthread_t thread;
    struct econn *conns;
    int nagain;        /* connections with `again` set */
    int nconns, peak;  /* connections open; most since the last trim */
    bool accept_again; /* the last accept step ran out of budget */
    int64_t sweep_at;  /* next idle-timeout check (now_ms()), -1: none */
    int status;
    char tag_server, tag_stop; /* epoll data of the two fixed descriptors */
    unsigned char buf[ECHO_BUF_SIZE];
};

static void econn_close(struct worker *w, struct econn *c)
{
    /* Freeing closes the descriptor, which leaves the epoll set by itself
     * (it is never duplicated): no EPOLL_CTL_DEL needed. */
    ssock_socket_free(c->sock);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->again)
        w->nagain--;
    free(c->pend);
    free(c);
    atomic_fetch_sub(&w->echo->nconns, 1);
    if (--w->nconns == 0 && w->peak >= ECHO_TRIM_PEAK) {
        /* Many connections just went: give their memory back to the
         * system, so an idle server's RSS returns to where it started. */
        w->peak = 0;
#if defined(__GLIBC__)
        (void)malloc_trim(0);
#endif
    }
}

/* Wait for what the socket asked for (ssock_socket_want()). */
static void econn_arm(struct worker *w, struct econn *c)
{
    uint32_t ev =
        ssock_socket_want(c->sock) == SSOCK_WANT_WRITE ? EPOLLOUT : EPOLLIN;
    struct epoll_event e = {.events = ev, .data.ptr = c};

    if (ev != c->armed &&
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, ssock_socket_fd(c->sock), &e) == 0)
        c->armed = ev;
}

/* Send what is left over: 0 when nothing is, else SSOCK_EAGAIN or an
 * error. */
static int econn_push(struct econn *c)
{
    size_t n = 0;
    int rc;

    if (c->pend_len > 0) {
        rc =
            ssock_socket_write(c->sock, c->pend + c->pend_off, c->pend_len, &n);
        c->pend_off += n;
        c->pend_len -= n;
        if (c->pend_len == 0) {
            free(c->pend);
            c->pend = NULL;
            c->pend_off = 0;
            c->flush = rc == SSOCK_EAGAIN; /* all taken, part still queued */
        }
        return rc;
    }
    if (!c->flush)
        return 0;
    rc = ssock_socket_flush(c->sock);
    c->flush = rc == SSOCK_EAGAIN;
    return rc;
}

/* Write back `len` bytes just read; keep what the socket did not take. */
static int econn_echo(struct econn *c, const unsigned char *buf, size_t len)
{
    size_t n = 0;
    int rc = ssock_socket_write(c->sock, buf, len, &n);

    if (rc != SSOCK_EAGAIN)
        return rc;
    if (n == len) {
        c->flush = true; /* all taken, part still queued in the library */
        return rc;
    }
    c->pend = malloc(len - n);
    if (c->pend == NULL)
        return SSOCK_ENOMEM;
    memcpy(c->pend, buf + n, len - n);
    c->pend_off = 0;
    c->pend_len = len - n;
    return rc;
}

/* Move a connection as far as it goes without waiting: left-over output
 * first (backpressure), then read and echo. Closes it on any end. */
static void econn_drive(struct worker *w, struct econn *c)
{
    if (c->again) {
        c->again = false;
        w->nagain--;
    }
    for (int round = 0; round < ECHO_DRIVE_ROUNDS; round++) {
        size_t n = 0;
        int rc = econn_push(c);

        if (rc == 0)
            rc = ssock_socket_read(c->sock, w->buf, sizeof(w->buf), &n);
        if (rc == 0)
            rc = econn_echo(c, w->buf, n);
        if (rc == 0 && n < sizeof(w->buf) &&
            ssock_socket_pending(c->sock) == 0) {
            /* A short read drained the kernel's buffer: epoll (level-
             * triggered) says when more comes; no read to learn EAGAIN. */
            econn_arm(w, c);
            return;
        }
        if (rc == SSOCK_EAGAIN) {
            econn_arm(w, c);
            return;
        }
        if (rc != 0) { /* end of stream, error, idle timeout */
            econn_close(w, c);
            return;
        }
    }
    /* Out of budget. The descriptor's readiness brings it back, except for
     * bytes already decrypted inside the library: those need a turn. */
    if (ssock_socket_pending(c->sock) > 0) {
        c->again = true;
        w->nagain++;
    }
}

/* Take a connection from try_accept() into the loop (or drop it when
 * --max-conns are open). */
static void econn_open(struct worker *w, ssock_socket *sock)
{
    struct echo *echo = w->echo;
    struct econn *c;
    struct epoll_event e = {.events = EPOLLIN};

    if (atomic_fetch_add(&echo->nconns, 1) >= echo->args->max_conns ||
        (c = calloc(1, sizeof(*c))) == NULL) {
        atomic_fetch_sub(&echo->nconns, 1);
        ssock_socket_free(sock);
        return;
    }
    log_accept(echo, sock);
    c->sock = sock;
    c->armed = EPOLLIN;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    if (++w->nconns > w->peak)
        w->peak = w->nconns;
    e.data.ptr = c;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, ssock_socket_fd(sock), &e) != 0) {
        fprintf(stderr, "ssock-echo: epoll_ctl: %s\n", strerror(errno));
        econn_close(w, c);
        return;
    }
    if (echo->args->idle_timeout_ms > 0) {
        int left = ssock_socket_next_timeout(sock);
        int64_t at = now_ms() + (left >= 0 ? left : ECHO_READ_TIMEOUT_MS);

        if (w->sweep_at < 0 || at < w->sweep_at)
            w->sweep_at = at;
    }
    /* A TLS client's first bytes may be decrypted already. */
    econn_drive(w, c);
}

/* One accept step: 0 to go on, 1 on a fatal error, 2 when closed. */
static int worker_accept(struct worker *w)
{
    w->accept_again = false;
    for (int i = 0; i < ECHO_ACCEPT_BATCH; i++) {
        ssock_socket *sock = NULL;
        int rc = ssock_server_try_accept(w->server, &sock);

        if (rc == 0) {
            econn_open(w, sock);
        } else if (rc == SSOCK_EAGAIN) {
            return 0;
        } else if (rc == SSOCK_ECLOSED) {
            return 2;
        } else if (is_transient(rc)) {
            fprintf(stderr, "ssock-echo: accept: %s\n", ssock_strerror(rc));
            return 0;
        } else {
            fprintf(stderr, "ssock-echo: accept failed: %s (%s)\n",
                    ssock_strerror(rc), ssock_err_name(rc));
            return 1;
        }
    }
    w->accept_again = true;
    return 0;
}

/* --idle-timeout: drive the connections whose idle timeout has passed
 * (their read or write then fails with SSOCK_ETIMEOUT and they close) and
 * find the next deadline. A connection's deadline only moves later, and a
 * new one lowers sweep_at itself (econn_open()), so this walk runs once per
 * deadline, not per wake-up. */
static void worker_sweep(struct worker *w)
{
    int next = -1;

    for (struct econn *c = w->conns, *after; c; c = after) {
        int left = ssock_socket_next_timeout(c->sock);

        after = c->next;
        if (left == 0) {
            econn_drive(w, c);
            next = 1; /* look again soon, in case it is still open */
            continue;
        }
        if (left > 0 && (next < 0 || left < next))
            next = left;
    }
    w->sweep_at =
        next < 0 ? (w->conns ? now_ms() + 1000 : -1) : now_ms() + next;
}

/* epoll_wait()'s timeout: the server's next deadline, the sweep, or 0
 * when work is left over. */
static int worker_timeout(const struct worker *w)
{
    int t = ssock_server_next_timeout(w->server);

    if (w->accept_again || w->nagain > 0)
        return 0;
    if (w->sweep_at >= 0) {
        int64_t d = w->sweep_at - now_ms();
        int s = d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;

        t = t < 0 || s < t ? s : t;
    }
    return t;
}

/* One pass over what epoll reported. false once stopping. */
static bool worker_events(struct worker *w, struct epoll_event *ev, int n,
                          bool *accept)
{
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == &w->tag_stop)
            return false;
        if (ev[i].data.ptr == &w->tag_server)
            *accept = true;
        else
            econn_drive(w, ev[i].data.ptr);
    }
    if (w->nagain > 0) {
        for (struct econn *c = w->conns, *after; c; c = after) {
            after = c->next;
            if (c->again)
                econn_drive(w, c);
        }
    }
    return true;
}

static int worker_loop(struct worker *w)
{
    struct epoll_event ev[ECHO_EPOLL_EVENTS];

    for (;;) {
        int timeout = worker_timeout(w);
        int n = epoll_wait(w->epfd, ev, ECHO_EPOLL_EVENTS, timeout);
        bool accept = w->accept_again;
        int rc;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "ssock-echo: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        if (!worker_events(w, ev, n, &accept))
            return 0;
        if (ssock_server_next_timeout(w->server) == 0)
            accept = true;
        rc = accept ? worker_accept(w) : 0;
        if (rc != 0)
            return rc == 1 ? 1 : 0;
        if (w->sweep_at >= 0 && now_ms() >= w->sweep_at)
            worker_sweep(w);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event srv = {.events = EPOLLIN, .data.ptr = &w->tag_server};
    struct epoll_event stop = {.events = EPOLLIN, .data.ptr = &w->tag_stop};

    w->sweep_at = -1;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, ssock_server_poll_fd(w->server),
                  &srv) != 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->echo->stop_fd, &stop) != 0) {
        fprintf(stderr, "ssock-echo: epoll_ctl: %s\n", strerror(errno));
        w->status = 1;
    } else {
        w->status = worker_loop(w);
    }
    while (w->conns)
        econn_close(w, w->conns);
    /* A worker that failed stops the others too. */
    if (w->status != 0) {
        uint64_t one = 1;
        (void)!write(w->echo->stop_fd, &one, sizeof(one));
    }
    return NULL;
}

/* Run one worker per server until stopped. 0, or 1 if one failed. */
static int serve_event(struct echo *echo)
{
    struct worker *w = calloc((size_t)echo->nservers, sizeof(*w));
    int started = 0, status = 0;

    if (w == NULL) {
        fprintf(stderr, "ssock-echo: out of memory\n");
        return 1;
    }
    for (; started < echo->nservers; started++) {
        struct worker *k = &w[started];
        int err;

        k->echo = echo;
        k->server = echo->servers[started];
        k->epfd = epoll_create1(EPOLL_CLOEXEC);
        err = k->epfd < 0 ? errno
                          : pthread_create(&k->thread, NULL, worker_main, k);
        if (err != 0) {
            fprintf(stderr, "ssock-echo: cannot start worker %d: %s\n", started,
                    strerror(err));
            if (k->epfd >= 0)
                close(k->epfd);
            uint64_t one = 1;
            (void)!write(echo->stop_fd, &one, sizeof(one));
            status = 1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].thread, NULL);
        close(w[i].epfd);
        status |= w[i].status;
    }
    free(w);
    return status;
}

/* ------------------------------------------------------------------ */
/* Servers, signals, main                                              */
/* ------------------------------------------------------------------ */

/* Open one server (bound, or on a dup() of the activation descriptor). */
static int open_one(ssock_server **out, ssock_server_options *opts, int i,
                    bool activated)
{
    int fd = SSOCK_LISTEN_FDS_START;

    if (!activated)
        return ssock_server_open(out, opts);
    if (i > 0)
        fd = fcntl(SSOCK_LISTEN_FDS_START, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    return ssock_server_open_fd(out, fd, opts);
}

/* Open every server: one, or one per --event worker (SO_REUSEPORT on the
 * port the first one got). 0, or the exit status (said why). */
static int open_servers(struct echo *echo, ssock_server_options *opts)
{
    int n = echo->args->mode == MODE_EVENT ? echo->args->workers : 1;
    bool activated = ssock_listen_fds() >= 1;

    if (echo->args->mode == MODE_EVENT) {
        opts->reuse_port = 1;
        opts->nonblocking = 1;
    }
    for (echo->nservers = 0; echo->nservers < n; echo->nservers++) {
        ssock_server **srv = &echo->servers[echo->nservers];
        int rc = open_one(srv, opts, echo->nservers, activated);

        if (rc != 0 && activated) {
            fprintf(stderr,
                    "ssock-echo: cannot serve on descriptor %d: "
                    "%s (%s)\n",
                    SSOCK_LISTEN_FDS_START, ssock_strerror(rc),
                    ssock_err_name(rc));
            return 1;
        }
        if (rc != 0) {
            fprintf(stderr,
                    "ssock-echo: cannot listen on %s port %d: %s (%s)\n",
                    opts->addr ? opts->addr : "every interface", opts->port,
                    ssock_strerror(rc), ssock_err_name(rc));
            return is_arg_error(rc) ? 2 : 1;
        }
        if (echo->nservers == 0)
            opts->port = ssock_server_local_port(*srv);
    }
    return 0;
}

/* The server options and TLS configuration from the command line, then
 * every server. 0 or the exit status. */
static int setup_servers(struct echo *echo)
{
    ssock_server_options opts = echo->args->opts;
    ssock_tls_config *tls = NULL;
    int status;

    /* The threaded mode's reads wake every ECHO_READ_TIMEOUT_MS to check
     * for shutdown (and the idle timeout); writes wait as long as the peer
     * does (a server close still wakes them). The loops' sockets time out
     * only with --idle-timeout (non-blocking: idle timeouts). */
    if (echo->args->mode == MODE_THREADS) {
        int idle = echo->args->idle_timeout_ms;

        opts.read_timeout_ms = idle > 0 && idle < ECHO_READ_TIMEOUT_MS
                                   ? idle
                                   : ECHO_READ_TIMEOUT_MS;
        opts.write_timeout_ms = idle;
    } else {
        opts.read_timeout_ms = echo->args->idle_timeout_ms;
        opts.write_timeout_ms = echo->args->idle_timeout_ms;
    }
    if (echo->args->use_tls) {
        char err[SSOCK_TLS_ERRBUF_SIZE];
        int rc = build_tls(echo->args, &tls, err, sizeof(err));

        if (rc != 0) {
            fprintf(stderr, "ssock-echo: TLS configuration: %s (%s): %s\n",
                    ssock_strerror(rc), ssock_err_name(rc), err);
            return 2;
        }
        opts.tls = tls;
    }
    status = open_servers(echo, &opts);
    ssock_tls_config_free(tls); /* the servers keep their own references */
    return status;
}

struct watcher {
    sigset_t signals;
    struct echo *echo;
};

/* Waits for SIGINT/SIGTERM (then stops the servers' loops) and SIGHUP
 * (then reloads the TLS files, in this thread). */
static void *watch_signals(void *arg)
{
    struct watcher *w = arg;
    struct echo *echo = w->echo;
    uint64_t one = 1;

    for (;;) {
        int sig = 0;

        if (sigwait(&w->signals, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (!atomic_load(&echo->stopping))
                reload(echo);
            continue;
        }
        /* Already stopping: main woke us to end (see main); nothing to
         * do. */
        if (atomic_exchange(&echo->stopping, true))
            return NULL;
        /* The loops watch stop_fd; the threaded mode's accept wakes when
         * its server closes (and every connection fails). */
        (void)!write(echo->stop_fd, &one, sizeof(one));
        if (echo->args->mode == MODE_THREADS)
            (void)ssock_server_close(echo->servers[0]);
        return NULL;
    }
}

static void print_ready(const ssock_server *server)
{
    char host[SSOCK_HOST_MAX + 2];

    snprintf(host, sizeof(host),
             strchr(ssock_server_host(server), ':') ? "[%s]" : "%s",
             ssock_server_host(server));
    say("listening on %s:%d\n", host, ssock_server_local_port(server));
}

static void echo_init(struct echo *echo, const struct echo_args *args)
{
    pthread_condattr_t cattr;

    memset(echo, 0, sizeof(*echo));
    echo->args = args;
    pthread_mutex_init(&echo->lock, NULL);
    pthread_attr_init(&echo->detached);
    pthread_attr_setdetachstate(&echo->detached, PTHREAD_CREATE_DETACHED);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&echo->changed, &cattr);
    pthread_condattr_destroy(&cattr);
    atomic_init(&echo->stopping, false);
    atomic_init(&echo->nconns, 0);
    echo->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void echo_destroy(struct echo *echo)
{
    if (echo->stuck)
        return; /* threads still use all of it; exit() releases it */
    for (int i = 0; i < echo->nservers; i++)
        ssock_server_free(echo->servers[i]);
    if (echo->stop_fd >= 0)
        close(echo->stop_fd);
    pthread_attr_destroy(&echo->detached);
    pthread_cond_destroy(&echo->changed);
    pthread_mutex_destroy(&echo->lock);
}

static int serve(struct echo *echo)
{
    struct watcher w = {.echo = echo};
    pthread_t watcher;
    int status, rc;

    sigemptyset(&w.signals);
    sigaddset(&w.signals, SIGINT);
    sigaddset(&w.signals, SIGTERM);
    sigaddset(&w.signals, SIGHUP);
    /* Ready first: a SIGHUP already pending prints after this line. */
    print_ready(echo->servers[0]);
    rc = pthread_create(&watcher, NULL, watch_signals, &w);
    if (rc != 0) {
        fprintf(stderr, "ssock-echo: cannot start a thread: %s\n",
                strerror(rc));
        return 1;
    }
    if (echo->args->mode == MODE_POLL)
        status = serve_poll(echo);
    else if (echo->args->mode == MODE_EVENT)
        status = serve_event(echo);
    else
        status = serve_threads(echo);

    /* If the loop ended on its own (a fatal error), wake the watcher from
     * sigwait(). Only then: a signal sent to a watcher that is already past
     * sigwait() would stay pending, and some runtimes (Valgrind) deliver
     * it to the process instead. */
    if (!atomic_exchange(&echo->stopping, true))
        pthread_kill(watcher, SIGTERM);
    pthread_join(watcher, NULL);
    if (echo->args->mode == MODE_THREADS)
        status |= stop_threads(echo);
    return status;
}

int main(int argc, char **argv)
{
    struct echo_args args = {.max_conns = ECHO_DEFAULT_MAX_CONNS};
    struct echo echo;
    struct rlimit lim;
    sigset_t signals;
    int status;

    ssock_server_options_init(&args.opts);
    args.opts.port = ECHO_DEFAULT_PORT;
    ssock_tls_options_init(&args.tls);
    status = parse_args(argc, argv, &args);
    if (status >= 0)
        return status;
    if (args.mode == MODE_EVENT && args.workers == 0)
        args.workers = 1;

    /* One descriptor per connection: allow as many as the hard limit. */
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &lim);
    }
    /* Block the signals in every thread; the watcher takes them. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    echo_init(&echo, &args);
    if (echo.stop_fd < 0) {
        fprintf(stderr, "ssock-echo: eventfd: %s\n", strerror(errno));
        status = 1;
    } else {
        status = setup_servers(&echo);
    }
    if (status == 0)
        status = serve(&echo);
    echo_destroy(&echo);
    return status;
}
