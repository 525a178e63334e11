/*
 * ssock-echo: a multi-connection TCP echo server on top of ssock.
 *
 * Contract (other tools rely on it):
 *   ssock-echo [--port N] [--addr A] [--timeout MS] [--backlog N]
 *              [--max-conns N] [--poll] [--help] [--version]
 *              [--tls] [--cert F --key F] [--ca F]
 *              [--verify-client none|optional|required]
 *              [--backend mbedtls|openssl] [--min-version 1.2|1.3]
 *              [--alpn LIST] [--handshake-timeout MS] [--max-handshakes N]
 *   - --tls alone uses the development certificate pair in certs/; any
 *     TLS flag implies --tls;
 *   - bad flag values: a message on stderr, exit status 2;
 *   - once listening: exactly one line "listening on HOST:PORT" on stdout
 *     (IPv6 hosts in brackets), flushed; nothing else is ever written there;
 *   - every byte received on a connection is written back to it, one thread
 *     per connection; beyond --max-conns a new connection is closed at once;
 *   - SIGINT or SIGTERM: the server is closed, connection threads end, and
 *     the process exits 0 within 2 s.
 *
 * Signals are handled by one thread that waits for them with sigwait(); every
 * other thread has them blocked, so no handler runs and nothing is
 * interrupted. The library itself never touches signals.
 */
#include <ssock/ssock.h>
#include <ssock/tls.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#ifndef ECHO_CERTS_DIR
#define ECHO_CERTS_DIR "certs"
#endif

struct echo;

/* A connection and its detached thread, which frees both when it ends. */
struct conn {
    struct echo *echo;
    ssock_socket *sock;
    struct conn *prev, *next; /* in echo.conns, under echo.lock */
};

struct echo {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a connection thread finished */
    struct conn *conns;     /* connections whose socket is still ours */
    int active;             /* connection threads still running */
    pthread_attr_t detached;
    atomic_bool stopping;
};

static void usage(FILE *out)
{
    fputs("usage: ssock-echo [--port N] [--addr A] [--timeout MS] "
          "[--backlog N] [--max-conns N] [TLS flags]\n"
          "  --port N       port to listen on, 0..65535 (default 7000; "
          "0 = ephemeral)\n"
          "  --addr A       local address to bind (default: every "
          "interface)\n"
          "  --timeout MS   accept timeout in ms, >= 0 (default 10000; "
          "0 = forever)\n"
          "  --backlog N    listen backlog, > 0 (default 100)\n"
          "  --max-conns N  concurrent connections, > 0 (default 1024)\n"
          "  --poll         one thread and one poll() loop instead of a "
          "thread per\n"
          "                 connection (plain TCP only)\n"
          "  --verbose      print one line per server event on stdout:\n"
          "                 event TYPE HOST PORT STATUS [DETAIL]\n"
          "  --help         show this text\n"
          "  --version      print the ssock, mbedTLS and OpenSSL versions\n"
          "TLS (any of these turns TLS on):\n"
          "  --tls                  serve TLS (default: the dev certs in "
          "certs/)\n"
          "  --cert F --key F       certificate chain and private key (PEM)\n"
          "  --ca F                 CA bundle for client certificates\n"
          "  --verify-client M      none|optional|required (default none)\n"
          "  --backend B            mbedtls|openssl (default mbedtls)\n"
          "  --min-version V        1.2|1.3 (default 1.2)\n"
          "  --alpn LIST            comma-separated protocols, e.g. "
          "h2,http/1.1\n"
          "  --handshake-timeout MS per-connection handshake deadline "
          "(default 10000)\n"
          "  --max-handshakes N     handshakes in flight (default 256)\n"
          "Prints \"listening on HOST:PORT\" once listening; SIGINT or "
          "SIGTERM stops it.\n",
          out);
}

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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct echo *echo = c->echo;
    unsigned char *buf = malloc(ECHO_BUF_SIZE);
    int rc = buf ? 0 : SSOCK_ENOMEM;

    while (rc == 0) {
        size_t n = 0;

        rc = ssock_socket_read(c->sock, buf, ECHO_BUF_SIZE, &n);
        if (rc == SSOCK_ETIMEOUT) {
            rc = atomic_load(&echo->stopping) ? SSOCK_ESERVERCLOSED : 0;
            continue;
        }
        if (rc == 0)
            rc = ssock_socket_write(c->sock, buf, n, NULL);
    }
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
static void start_conn(struct echo *echo, ssock_socket *sock, int max_conns)
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
    if (echo->active >= max_conns) {
        pthread_mutex_unlock(&echo->lock);
        ssock_socket_free(sock);
        free(c);
        return;
    }
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

static bool is_transient(int rc);

struct watcher {
    sigset_t signals;
    ssock_server *server;
    struct echo *echo;
    int wake_wr; /* --poll: the loop's wake pipe; -1 otherwise */
};

/* Waits for SIGINT/SIGTERM, then closes the server (which wakes accept and
 * fails every accepted socket with SSOCK_ESERVERCLOSED). */
static void *watch_signals(void *arg)
{
    struct watcher *w = arg;
    int sig = 0;

    while (sigwait(&w->signals, &sig) != 0) {
    }
    /* Already stopping: main woke us to end (see below); nothing to do. */
    if (atomic_exchange(&w->echo->stopping, true))
        return NULL;
    if (w->wake_wr >= 0) {
        /* --poll: the loop owns the server; tell it to stop. */
        while (write(w->wake_wr, "x", 1) < 0 && errno == EINTR) {
        }
    } else {
        (void)ssock_server_close(w->server);
    }
    return NULL;
}

/*
 * --poll: one thread, one poll() over the listening socket, the wake pipe
 * and every connection; a readable connection gets one read and its echo.
 * Plain TCP only. Returns 0, or 1 on a fatal accept error.
 */
static int poll_loop(ssock_server *server, int wake_rd, int max_conns)
{
    size_t n = 0, cap = (size_t)max_conns;
    struct pollfd *pfd = calloc(cap + 2, sizeof(*pfd));
    ssock_socket **socks = calloc(cap, sizeof(*socks));
    unsigned char *buf = malloc(ECHO_BUF_SIZE);
    int status = 0;

    if (!pfd || !socks || !buf) {
        fprintf(stderr, "ssock-echo: out of memory\n");
        status = 1;
        goto out;
    }
    for (;;) {
        pfd[0] = (struct pollfd){ssock_server_fd(server), POLLIN, 0};
        pfd[1] = (struct pollfd){wake_rd, POLLIN, 0};
        for (size_t i = 0; i < n; i++)
            pfd[2 + i] = (struct pollfd){ssock_socket_fd(socks[i]), POLLIN, 0};
        if (poll(pfd, (nfds_t)(n + 2), -1) < 0) {
            if (errno == EINTR)
                continue;
            status = 1;
            break;
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
        if (pfd[0].revents) {
            ssock_socket *sock = NULL;
            int rc = ssock_server_accept(server, &sock);

            if (rc == 0 && n < cap)
                socks[n++] = sock;
            else if (rc == 0)
                ssock_socket_free(sock);
            else if (rc != SSOCK_ETIMEOUT && !is_transient(rc)) {
                fprintf(stderr, "ssock-echo: accept failed: %s (%s)\n",
                        ssock_strerror(rc), ssock_err_name(rc));
                status = 1;
                break;
            }
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        ssock_socket_free(socks[i]);
    free(buf);
    free(socks);
    free(pfd);
    return status;
}

/* --alpn h2,http/1.1 split in place into at most 16 names. */
struct alpn_list {
    char buf[1024];
    char *v[16];
    size_t count;
};

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

/* One TLS flag; false on a bad value. */
static bool parse_tls_flag(ssock_tls_options *t, struct alpn_list *alpn,
                           const char *flag, size_t flen, const char *val)
{
#define IS(name) (flen == strlen(name) && strncmp(flag, name, flen) == 0)
    if (IS("--cert")) {
        t->cert_file = val;
    } else if (IS("--key")) {
        t->key_file = val;
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
        return parse_alpn(alpn, val);
    } else if (IS("--handshake-timeout")) {
        return parse_int(val, 1, INT_MAX, &t->handshake_timeout_ms);
    } else if (IS("--max-handshakes")) {
        return parse_int(val, 1, INT_MAX, &t->max_handshakes);
    } else {
        return false;
    }
    return *val != '\0';
#undef IS
}

static bool is_arg_error(int rc)
{
    return rc == SSOCK_EBADPORT || rc == SSOCK_EBADTIMEOUT ||
           rc == SSOCK_EBADBACKLOG || rc == SSOCK_EBADADDR ||
           rc == SSOCK_ERESOLVE;
}

/* Accept errors after which the server is still worth accepting on: the
 * library's classifier says which. */
static bool is_transient(int rc)
{
    return ssock_err_is_transient(rc) != 0;
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
    };
    const char *name = ev->type > 0 && ev->type <= SSOCK_EVENT_HANDSHAKE_DROPPED
                           ? names[ev->type]
                           : "unknown";
    (void)arg;
    printf("event %s %s %d %s%s%s\n", name,
           ev->peer_host[0] != '\0' ? ev->peer_host : "-", ev->peer_port,
           ssock_err_name(ev->status), ev->detail[0] != '\0' ? " " : "",
           ev->detail);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    ssock_server_options opts;
    ssock_server *server = NULL;
    struct echo echo = {.conns = NULL, .active = 0};
    struct watcher w;
    pthread_condattr_t cattr;
    struct rlimit lim;
    pthread_t watcher;
    char host[SSOCK_HOST_MAX + 2];
    int max_conns = ECHO_DEFAULT_MAX_CONNS;
    ssock_tls_options tls_opts;
    ssock_tls_config *tls = NULL;
    struct alpn_list alpn = {.count = 0};
    bool use_tls = false;
    bool poll_mode = false;
    int wake[2] = {-1, -1};
    int status = 0;
    int rc;

    ssock_server_options_init(&opts);
    opts.port = ECHO_DEFAULT_PORT;
    ssock_tls_options_init(&tls_opts);

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *val = NULL;
        const char *eq = strchr(flag, '=');
        size_t flen = eq ? (size_t)(eq - flag) : strlen(flag);
        bool ok;

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(flag, "--version") == 0) {
            /* The TLS library versions are those ssock was built with. */
            printf("ssock-echo (ssock %s)\n", ssock_version_string());
            printf("mbedTLS: %s\n", SSOCK_HAVE_MBEDTLS
                                        ? SSOCK_MBEDTLS_VERSION_STRING
                                        : "not built");
            printf("OpenSSL: %s\n", SSOCK_HAVE_OPENSSL
                                        ? SSOCK_OPENSSL_VERSION_STRING
                                        : "not built");
            return 0;
        }
#define IS(name) (flen == strlen(name) && strncmp(flag, name, flen) == 0)
        if (IS("--tls") && !eq) {
            use_tls = true;
            continue;
        }
        if (IS("--poll") && !eq) {
            poll_mode = true;
            continue;
        }
        if (IS("--verbose") && !eq) {
            opts.on_event = print_event;
            continue;
        }
        if (!(IS("--port") || IS("--addr") || IS("--timeout") ||
              IS("--backlog") || IS("--max-conns") || IS("--cert") ||
              IS("--key") || IS("--ca") || IS("--verify-client") ||
              IS("--backend") || IS("--min-version") || IS("--alpn") ||
              IS("--handshake-timeout") || IS("--max-handshakes"))) {
            fprintf(stderr, "ssock-echo: unknown argument '%s'\n", flag);
            usage(stderr);
            return 2;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "ssock-echo: %s needs a value\n", flag);
            return 2;
        }
        if (IS("--port")) {
            ok = parse_int(val, 0, 65535, &opts.port);
        } else if (IS("--timeout")) {
            ok = parse_int(val, 0, INT_MAX, &opts.accept_timeout_ms);
        } else if (IS("--backlog")) {
            ok = parse_int(val, 1, INT_MAX, &opts.backlog);
        } else if (IS("--max-conns")) {
            ok = parse_int(val, 1, INT_MAX, &max_conns);
        } else if (!IS("--addr")) {
            use_tls = true;
            ok = parse_tls_flag(&tls_opts, &alpn, flag, flen, val);
        } else {
            opts.addr = val;
            ok = *val != '\0';
        }
#undef IS
        if (!ok) {
            fprintf(stderr, "ssock-echo: bad value '%s' for %.*s\n", val,
                    (int)flen, flag);
            return 2;
        }
    }

    /* One descriptor per connection: allow as many as the hard limit. */
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &lim);
    }

    /* Block the stop signals in every thread; the watcher takes them. */
    sigemptyset(&w.signals);
    sigaddset(&w.signals, SIGINT);
    sigaddset(&w.signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &w.signals, NULL);

    /* The connections never time out on their own: reads wake every
     * ECHO_READ_TIMEOUT_MS to check for shutdown; writes wait as long as the
     * peer does (a server close still wakes them). */
    opts.read_timeout_ms = ECHO_READ_TIMEOUT_MS;
    opts.write_timeout_ms = SSOCK_WAIT_FOREVER;
    if (poll_mode && use_tls) {
        fprintf(stderr, "ssock-echo: --poll serves plain TCP only\n");
        return 2;
    }
    if (poll_mode) {
        /* Readable means a connection is queued: accept need not wait. */
        opts.accept_timeout_ms = 1;
        if (pipe(wake) != 0 || fcntl(wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(wake[1], F_SETFD, FD_CLOEXEC) != 0) {
            fprintf(stderr, "ssock-echo: pipe: %s\n", strerror(errno));
            return 1;
        }
    }
    if (use_tls) {
        char err[SSOCK_TLS_ERRBUF_SIZE];

        if (tls_opts.cert_file == NULL && tls_opts.key_file == NULL) {
            tls_opts.cert_file = ECHO_CERTS_DIR "/server-ecdsa.pem";
            tls_opts.key_file = ECHO_CERTS_DIR "/server-ecdsa.key";
        }
        tls_opts.alpn = alpn.count ? (const char *const *)alpn.v : NULL;
        tls_opts.alpn_count = alpn.count;
        rc = ssock_tls_config_new(&tls, &tls_opts, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "ssock-echo: TLS configuration: %s (%s): %s\n",
                    ssock_strerror(rc), ssock_err_name(rc), err);
            return 2;
        }
        opts.tls = tls;
    }
    rc = ssock_server_open(&server, &opts);
    ssock_tls_config_free(tls); /* the server keeps its own reference */
    if (rc != 0) {
        fprintf(stderr, "ssock-echo: cannot listen on %s port %d: %s (%s)\n",
                opts.addr ? opts.addr : "every interface", opts.port,
                ssock_strerror(rc), ssock_err_name(rc));
        return is_arg_error(rc) ? 2 : 1;
    }

    pthread_mutex_init(&echo.lock, NULL);
    pthread_attr_init(&echo.detached);
    pthread_attr_setdetachstate(&echo.detached, PTHREAD_CREATE_DETACHED);
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&echo.changed, &cattr);
    pthread_condattr_destroy(&cattr);
    atomic_init(&echo.stopping, false);

    w.server = server;
    w.echo = &echo;
    w.wake_wr = wake[1];
    rc = pthread_create(&watcher, NULL, watch_signals, &w);
    if (rc != 0) {
        fprintf(stderr, "ssock-echo: cannot start a thread: %s\n",
                strerror(rc));
        ssock_server_free(server);
        return 1;
    }

    snprintf(host, sizeof(host),
             strchr(ssock_server_host(server), ':') ? "[%s]" : "%s",
             ssock_server_host(server));
    printf("listening on %s:%d\n", host, ssock_server_local_port(server));
    fflush(stdout);

    if (poll_mode)
        status = poll_loop(server, wake[0], max_conns);
    for (; !poll_mode;) {
        ssock_socket *sock = NULL;

        rc = ssock_server_accept(server, &sock);
        if (rc == 0) {
            start_conn(&echo, sock, max_conns);
        } else if (rc == SSOCK_ETIMEOUT) {
            continue; /* nothing yet: still waiting */
        } else if (rc == SSOCK_ECLOSED) {
            break; /* closed by the signal watcher */
        } else if (is_transient(rc)) {
            fprintf(stderr, "ssock-echo: accept: %s\n", ssock_strerror(rc));
            sleep_ms(10);
        } else {
            fprintf(stderr, "ssock-echo: accept failed: %s (%s)\n",
                    ssock_strerror(rc), ssock_err_name(rc));
            status = 1;
            break;
        }
    }

    /* If the loop ended on its own (a fatal error), wake the watcher from
     * sigwait(). Only then: a signal sent to a watcher that is already past
     * sigwait() would stay pending, and some runtimes (Valgrind) deliver
     * it to the process instead. */
    if (!atomic_exchange(&echo.stopping, true))
        pthread_kill(watcher, SIGTERM);
    pthread_join(watcher, NULL);
    (void)ssock_server_close(server);

    /* Closing the server fails every connection within 100 ms; give the
     * threads a moment, then close their sockets ourselves. */
    if (!drain(&echo, ECHO_DRAIN_MS)) {
        close_all(&echo);
        if (!drain(&echo, ECHO_DRAIN_MS / 2)) {
            fprintf(stderr, "ssock-echo: connection threads did not stop\n");
            return status ? status : 1;
        }
    }
    ssock_server_free(server);
    pthread_attr_destroy(&echo.detached);
    if (poll_mode) {
        close(wake[0]);
        close(wake[1]);
    }
    pthread_cond_destroy(&echo.changed);
    pthread_mutex_destroy(&echo.lock);
    return status;
}
