/* examples/ssock-echo (and examples/libuv_echo) end to end, from the
 * outside: start it on port 0, read the port from its ready line, talk to
 * it as clients do, stop it with SIGTERM. The same checks run against the
 * threaded mode and against `--event --workers 2`: echo for 200 concurrent
 * clients, plain and TLS on both backends, big payloads with a slow reader
 * (the byte stream compared), --max-conns, --timeout, --idle-timeout,
 * SIGTERM's exit status and time; then the deployment flags of issue 12:
 * --log-accepts, --proxy-protocol (headers in 1-byte pieces, then TLS),
 * untrusted sources, SIGHUP reload, SNI with several pairs, and socket
 * activation through systemd-socket-activate.
 *
 * Build-time switches (tests/CMakeLists.txt):
 *   SSOCK_ECHO_PATH        the ssock-echo binary (required)
 *   SSOCK_CERTS_DIR        certs/ (required for the TLS cases)
 *   SSOCK_ECHO_TLS_CLIENT  1 when tls_client.c and OpenSSL are linked in
 *   SSOCK_LIBUV_ECHO_PATH  the libuv_echo binary, when it is built
 */
#include "helpers.h"

#include <ssock/tls.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(SSOCK_ECHO_TLS_CLIENT)
#include "tls_client.h"
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#endif

#ifndef SSOCK_ECHO_PATH
#error "SSOCK_ECHO_PATH must name the ssock-echo binary"
#endif
#ifndef SSOCK_CERTS_DIR
#define SSOCK_CERTS_DIR "certs"
#endif
#define CERT(name) SSOCK_CERTS_DIR "/" name

#define NCLIENTS 200
#define NWORKERS 4
#define PER_WORKER (NCLIENTS / NWORKERS)
#define PER_CLIENT ((size_t)64 * 1024)
#define IDLE_MS 15000 /* no progress for this long: fail */
/* The documented shutdown bound: SIGTERM -> exit 0 within 2 s. */
#define STOP_MS 2000
#define SOCKET_ACTIVATE "/usr/bin/systemd-socket-activate"

/* ------------------------------------------------------------------ */
/* The server process                                                  */
/* ------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid;
    int out;  /* its stdout */
    int port; /* from the ready line */
    char host[SSOCK_HOST_MAX];
} proc;

/* Every process a case starts lives here (not on the case's stack, which
 * is gone when a failure jumps out), so the teardown can kill it. */
#define MAX_PROCS 4
static proc procs[MAX_PROCS];
static int procs_used[MAX_PROCS];

static proc *proc_new(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        if (!procs_used[i]) {
            procs_used[i] = 1;
            procs[i].pid = -1;
            procs[i].out = -1;
            return &procs[i];
        }
    }
    fail_msg("more than %d processes in one case", MAX_PROCS);
    return NULL;
}

static void proc_kill(proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        p->pid = -1;
    }
    if (p->out >= 0)
        close(p->out);
    p->out = -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs_used[i])
            proc_kill(&procs[i]); /* only failure paths leave any */
        procs_used[i] = 0;
    }
    return 0;
}

/* Start argv[0] with stdout on a pipe (stderr stays the test's). */
static void proc_spawn(proc *p, char *const argv[])
{
    int fds[2];

    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->out = -1;
    if (pipe2(fds, O_CLOEXEC) != 0)
        fail_msg("pipe2: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    p->pid = fork();
    if (p->pid == 0) {
        /* Never outlive the test (a crash or a ctest timeout). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
            dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    if (p->pid < 0) {
        close(fds[0]);
        fail_msg("fork: %s", strerror(errno));
    }
    p->out = fds[0];
}

/* Read one line (without '\n') within timeout_ms; 0 or -1. */
static int read_line(int fd, char *line, size_t size, int timeout_ms)
{
    size_t len = 0;
    int64_t deadline = th_now_ms() + timeout_ms;

    while (len + 1 < size) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        int64_t left = deadline - th_now_ms();
        ssize_t n;
        if (left <= 0)
            break;
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        n = read(fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (line[len] == '\n') {
            line[len] = '\0';
            return 0;
        }
        len++;
    }
    line[len] = '\0';
    return -1;
}

/* The next line on the server's stdout must be exactly `want`. */
static void expect_line(proc *p, const char *want, int timeout_ms)
{
    char line[512];

    if (read_line(p->out, line, sizeof line, timeout_ms) != 0)
        fail_msg("no line \"%s\" within %d ms (got \"%s\")", want, timeout_ms,
                 line);
    if (strcmp(line, want) != 0)
        fail_msg("expected line \"%s\", got \"%s\"", want, line);
}

/* The next line must start with `prefix`; copied to `line`. */
static void expect_prefix(proc *p, const char *prefix, char *line, size_t size,
                          int timeout_ms)
{
    if (read_line(p->out, line, size, timeout_ms) != 0)
        fail_msg("no line \"%s...\" within %d ms (got \"%s\")", prefix,
                 timeout_ms, line);
    if (strncmp(line, prefix, strlen(prefix)) != 0)
        fail_msg("expected a line \"%s...\", got \"%s\"", prefix, line);
}

/* Nothing more on stdout right now. */
static void expect_no_line(proc *p, int wait_ms)
{
    struct pollfd pfd = {.fd = p->out, .events = POLLIN, .revents = 0};
    char extra[256];
    ssize_t n;

    if (poll(&pfd, 1, wait_ms) <= 0)
        return;
    n = read(p->out, extra, sizeof extra - 1);
    if (n > 0) {
        extra[n] = '\0';
        fail_msg("unexpected output on stdout: \"%s\"", extra);
    }
}

/* Parse "listening on HOST:PORT" into p->host / p->port. */
static void parse_ready(proc *p, const char *line)
{
    char *colon, *end;
    long port;
    size_t hl;

    if (strncmp(line, "listening on ", 13) != 0)
        fail_msg("first line \"%s\" does not start with \"listening on \"",
                 line);
    colon = strrchr(line + 13, ':');
    if (!colon || colon == line + 13)
        fail_msg("line \"%s\" is not \"listening on HOST:PORT\"", line);
    hl = (size_t)(colon - (line + 13));
    if (hl >= sizeof p->host)
        fail_msg("host too long in \"%s\"", line);
    memcpy(p->host, line + 13, hl);
    p->host[hl] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || end == colon + 1 || port <= 0 || port > 65535)
        fail_msg("bad port in \"%s\"", line);
    p->port = (int)port;
    /* IPv6 hosts come in brackets ("[::]:7000"), IPv4 without. */
    if (strchr(p->host, ':')) {
        if (p->host[0] != '[' || p->host[hl - 1] != ']')
            fail_msg("IPv6 host without brackets in \"%s\"", line);
        memmove(p->host, p->host + 1, hl - 2);
        p->host[hl - 2] = '\0';
    } else if (strchr(p->host, '[') || strchr(p->host, ']')) {
        fail_msg("brackets around a non-IPv6 host in \"%s\"", line);
    }
    if (p->host[0] == '\0')
        fail_msg("empty host in \"%s\"", line);
}

static void proc_ready(proc *p)
{
    char line[256];

    if (read_line(p->out, line, sizeof line, 10000) != 0)
        fail_msg("no line from the server within 10 s (got \"%s\")", line);
    parse_ready(p, line);
}

/* An argument vector under construction. */
typedef struct args {
    char *v[64];
    int n;
} args;

static void args_add(args *a, const char *s)
{
    if (a->n + 2 > (int)(sizeof a->v / sizeof a->v[0]))
        fail_msg("too many arguments");
    a->v[a->n++] = (char *)s;
    a->v[a->n] = NULL;
}

static void args_addv(args *a, const char *const *list)
{
    for (; list != NULL && *list != NULL; list++)
        args_add(a, *list);
}

/* ssock-echo --port 0 MODE... EXTRA... (NULL-terminated), ready. */
static void echo_start(proc *p, const char *const *mode, ...)
{
    args a = {.n = 0};
    va_list ap;
    const char *s;

    args_add(&a, SSOCK_ECHO_PATH);
    args_add(&a, "--port");
    args_add(&a, "0");
    args_addv(&a, mode);
    va_start(ap, mode);
    while ((s = va_arg(ap, const char *)) != NULL)
        args_add(&a, s);
    va_end(ap);
    proc_spawn(p, a.v);
    proc_ready(p);
}

static void proc_forget(proc *p)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (&procs[i] == p)
            procs_used[i] = 0;
}

/* Wait up to timeout_ms for the process to end; 1 and *status, or 0. */
static int proc_wait(proc *p, int timeout_ms, int *status)
{
    int64_t t0 = th_now_ms();

    for (;;) {
        pid_t r = waitpid(p->pid, status, WNOHANG);
        if (r == p->pid) {
            p->pid = -1;
            return 1;
        }
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (th_now_ms() - t0 >= timeout_ms)
            return 0;
        th_sleep_ms(5);
    }
}

/* SIGTERM: exit status 0 within STOP_MS (+ slack); nothing more on stdout
 * unless `allow_output`. */
static void proc_stop(proc *p, int allow_output)
{
    int64_t t0;
    int status = 0;

    assert_int_equal(kill(p->pid, SIGTERM), 0);
    t0 = th_now_ms();
    if (!proc_wait(p, STOP_MS + TH_SLACK_MS, &status))
        fail_msg("still running %d ms after SIGTERM (limit %d + %d slack)",
                 (int)(th_now_ms() - t0), STOP_MS, TH_SLACK_MS);
    if (!allow_output)
        expect_no_line(p, 0);
    close(p->out);
    p->out = -1;
    proc_forget(p);
    if (!WIFEXITED(status))
        fail_msg("killed by signal %d after SIGTERM",
                 WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Modes under test. */
static const char *const MODE_THREADS[] = {NULL};
static const char *const MODE_EVENT2[] = {"--event", "--workers", "2", NULL};
static const char *const MODE_POLL[] = {"--poll", NULL};

static const char *mode_name(const char *const *mode)
{
    return mode[0] == NULL ? "threaded" : mode[0];
}

/* ------------------------------------------------------------------ */
/* Plain clients                                                       */
/* ------------------------------------------------------------------ */

static int connect_port(int port)
{
    int fd = th_connect(AF_INET, port, 5000);

    if (fd < 0)
        fail_msg("connect to port %d: %s", port, strerror(-fd));
    return fd;
}

/* Send `len` pattern bytes and read them back, byte-exact. */
static void plain_echo(int fd, size_t len, uint32_t seed)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    int rc;

    assert_non_null(out);
    assert_non_null(in);
    th_fill(out, len, seed, 0);
    assert_int_equal(th_send_all(fd, out, len), 0);
    rc = th_recv_all(fd, in, len, 5000);
    if (rc != 0)
        fail_msg("echo of %zu bytes: %s", len,
                 rc == 1 ? "end of stream" : strerror(-rc));
    assert_memory_equal(in, out, len);
    free(out);
    free(in);
}

/* The server closed this connection without a byte: end of stream or a
 * reset within timeout_ms. */
static void expect_closed(int fd, int timeout_ms)
{
    char b[64];
    ssize_t r = th_recv_some(fd, b, sizeof b, timeout_ms);

    if (r > 0)
        fail_msg("got %zd bytes from a connection the server must drop", r);
    if (r == -ETIMEDOUT)
        fail_msg("connection still open after %d ms", timeout_ms);
}

/* The local port of a client socket. */
static int client_port(int fd)
{
    int port = th_local_port(fd);

    assert_true(port > 0);
    return port;
}

/* ---- 200 concurrent clients: each worker drives PER_WORKER with poll ---- */

struct conn {
    int fd;
    int connected;
    int done;
    size_t sent, received;
    uint32_t seed;
};

struct worker {
    int first;
    const char *ip;
    int port;
    pthread_barrier_t *bar;
    struct conn conns[PER_WORKER];
    int completed;
    char err[256];
    uint8_t buf[16 * 1024];
};

#define WFAIL(w, ...)                                                          \
    do {                                                                       \
        if ((w)->err[0] == '\0')                                               \
            snprintf((w)->err, sizeof(w)->err, __VA_ARGS__);                   \
    } while (0)

static int start_connect(struct worker *w, struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = th_socket(strchr(w->ip, ':') ? AF_INET6 : AF_INET);

    c->fd = fd;
    if (fd < 0) {
        WFAIL(w, "socket: %s", strerror(-fd));
        return -1;
    }
    /* Starts a non-blocking connect; completion is polled below. */
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        WFAIL(w, "fcntl: %s", strerror(errno));
        return -1;
    }
    memset(&ss, 0, sizeof ss);
    if (strchr(w->ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)w->port);
        inet_pton(AF_INET6, w->ip, &s6->sin6_addr);
        len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)w->port);
        inet_pton(AF_INET, w->ip, &s4->sin_addr);
        len = sizeof *s4;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
        c->connected = 1;
        return 1;
    }
    if (errno != EINPROGRESS) {
        WFAIL(w, "connect: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void connect_all(struct worker *w)
{
    struct pollfd pfds[PER_WORKER];
    int pending = PER_WORKER;
    int64_t deadline = th_now_ms() + IDLE_MS;

    for (int i = 0; i < PER_WORKER; i++) {
        struct conn *c = &w->conns[i];
        int rc;

        c->seed = (uint32_t)(w->first + i + 1);
        rc = start_connect(w, c);
        if (rc < 0)
            return;
        pending -= rc;
    }
    while (pending > 0) {
        int n = 0, rc;
        int64_t left = deadline - th_now_ms();
        if (left <= 0) {
            WFAIL(w, "%d connects still pending after %d ms", pending, IDLE_MS);
            return;
        }
        for (int i = 0; i < PER_WORKER; i++) {
            if (w->conns[i].connected)
                continue;
            pfds[n].fd = w->conns[i].fd;
            pfds[n].events = POLLOUT;
            pfds[n].revents = 0;
            n++;
        }
        rc = poll(pfds, (nfds_t)n, (int)left);
        if (rc < 0 && errno != EINTR) {
            WFAIL(w, "poll: %s", strerror(errno));
            return;
        }
        for (int k = 0; k < n && rc > 0; k++) {
            if (!pfds[k].revents)
                continue;
            for (int i = 0; i < PER_WORKER; i++) {
                struct conn *c = &w->conns[i];
                int err = 0;
                socklen_t el = sizeof err;
                if (c->fd != pfds[k].fd)
                    continue;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    WFAIL(w, "connect (client %d): %s", w->first + i,
                          strerror(err));
                    return;
                }
                c->connected = 1;
                pending--;
            }
        }
    }
}

/* One readable connection: receive and check; -1 on failure. */
static int receive_some(struct worker *w, struct conn *c, int idx)
{
    ssize_t r = recv(c->fd, w->buf, sizeof w->buf, 0);
    size_t bad;

    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r < 0) {
        WFAIL(w, "recv (client %d): %s", w->first + idx, strerror(errno));
        return -1;
    }
    if (r == 0) {
        WFAIL(w, "client %d: end of stream after %zu of %zu bytes",
              w->first + idx, c->received, PER_CLIENT);
        return -1;
    }
    if (c->received + (size_t)r > PER_CLIENT) {
        WFAIL(w, "client %d: more data than it sent", w->first + idx);
        return -1;
    }
    bad = th_check(w->buf, (size_t)r, c->seed, c->received);
    if (bad != (size_t)r) {
        WFAIL(w, "client %d: echo differs at byte %zu", w->first + idx,
              c->received + bad);
        return -1;
    }
    c->received += (size_t)r;
    if (c->received == PER_CLIENT) {
        c->done = 1;
        w->completed++;
        close(c->fd);
        c->fd = -1;
    }
    return 0;
}

static int send_some(struct worker *w, struct conn *c, int idx)
{
    size_t len = PER_CLIENT - c->sent;
    ssize_t s;

    if (len > sizeof w->buf)
        len = sizeof w->buf;
    th_fill(w->buf, len, c->seed, c->sent);
    s = send(c->fd, w->buf, len, MSG_NOSIGNAL);
    if (s < 0 && errno != EAGAIN && errno != EINTR) {
        WFAIL(w, "send (client %d): %s", w->first + idx, strerror(errno));
        return -1;
    }
    if (s > 0)
        c->sent += (size_t)s;
    return 0;
}

static void exchange_all(struct worker *w)
{
    struct pollfd pfds[PER_WORKER];
    int idx[PER_WORKER];

    while (w->completed < PER_WORKER) {
        int n = 0, rc;
        for (int i = 0; i < PER_WORKER; i++) {
            struct conn *c = &w->conns[i];
            if (c->done)
                continue;
            pfds[n].fd = c->fd;
            pfds[n].events = POLLIN;
            if (c->sent < PER_CLIENT)
                pfds[n].events |= POLLOUT;
            pfds[n].revents = 0;
            idx[n++] = i;
        }
        rc = poll(pfds, (nfds_t)n, IDLE_MS);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0) {
            WFAIL(w, "no progress for %d ms (%d of %d clients done)", IDLE_MS,
                  w->completed, PER_WORKER);
            return;
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = &w->conns[idx[k]];
            if ((pfds[k].revents & POLLOUT) && c->sent < PER_CLIENT &&
                send_some(w, c, idx[k]) != 0)
                return;
            if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) &&
                receive_some(w, c, idx[k]) != 0)
                return;
        }
    }
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    connect_all(w);
    /* Every worker reaches the barrier, also after a failure: then all
     * NCLIENTS connections are open at the same time before any data. */
    pthread_barrier_wait(w->bar);
    if (w->err[0] == '\0')
        exchange_all(w);
    for (int i = 0; i < PER_WORKER; i++)
        if (w->conns[i].fd >= 0)
            close(w->conns[i].fd);
    return NULL;
}

/* NCLIENTS connections open at once, each echoing PER_CLIENT bytes. */
static void run_200_clients(const proc *p)
{
    const char *ip = strcmp(p->host, "::1") == 0 ? "::1" : "127.0.0.1";
    struct worker *w = calloc(NWORKERS, sizeof *w);
    pthread_t t[NWORKERS];
    pthread_barrier_t bar;
    char err[300] = "";
    int completed = 0;

    assert_non_null(w);
    assert_int_equal(pthread_barrier_init(&bar, NULL, NWORKERS), 0);
    for (int i = 0; i < NWORKERS; i++) {
        w[i].first = i * PER_WORKER;
        w[i].ip = ip;
        w[i].port = p->port;
        w[i].bar = &bar;
        for (int k = 0; k < PER_WORKER; k++)
            w[i].conns[k].fd = -1;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < NWORKERS; i++) {
        completed += w[i].completed;
        if (w[i].err[0] && !err[0])
            snprintf(err, sizeof err, "%s", w[i].err);
    }
    free(w);
    if (err[0])
        fail_msg("%d of %d clients echoed; first error: %s", completed,
                 NCLIENTS, err);
    assert_int_equal(completed, NCLIENTS);
}

static void test_200_clients(void **state)
{
    const char *const *mode = *state;
    proc *p = proc_new();

    echo_start(p, mode, "--max-conns", "256", (char *)NULL);
    print_message("[  INFO    ] ssock-echo %s: listening on %s:%d\n",
                  mode_name(mode), p->host, p->port);
    run_200_clients(p);
    proc_stop(p, 0); /* nothing else was ever written to stdout */
}

/* ------------------------------------------------------------------ */
/* Streams: the same slow reader over plain TCP and TLS                */
/* ------------------------------------------------------------------ */

typedef struct stream {
    int fd;
#if defined(SSOCK_ECHO_TLS_CLIENT)
    tc_conn tc; /* used when tls */
#endif
    int tls;
    short want; /* POLLIN / POLLOUT after "would block" */
    char err[320];
} stream;

/* > 0 bytes moved; 0 would block (s->want set); -1 error or end (s->err).
 * A TLS write that would block must be retried with the same arguments. */
static long st_io(stream *s, int writing, void *buf, size_t len)
{
#if defined(SSOCK_ECHO_TLS_CLIENT)
    if (s->tls) {
        SSL *ssl = s->tc.ssl;
        size_t n = 0;
        int r, e;

        ERR_clear_error();
        r = writing ? SSL_write_ex(ssl, buf, len, &n)
                    : SSL_read_ex(ssl, buf, len, &n);
        if (r == 1)
            return (long)n;
        e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            s->want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            return 0;
        }
        snprintf(s->err, sizeof s->err, "TLS %s failed (SSL error %d)",
                 writing ? "write" : "read", e);
        return -1;
    }
#endif
    ssize_t n = writing ? send(s->fd, buf, len, MSG_NOSIGNAL)
                        : recv(s->fd, buf, len, 0);
    if (n > 0)
        return (long)n;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        s->want = writing ? POLLOUT : POLLIN;
        return 0;
    }
    snprintf(s->err, sizeof s->err, "%s: %s", writing ? "send" : "recv",
             n == 0 ? "end of stream" : strerror(errno));
    return -1;
}

static void st_close(stream *s)
{
#if defined(SSOCK_ECHO_TLS_CLIENT)
    if (s->tls) {
        tc_close(&s->tc);
        s->fd = -1;
        return;
    }
#endif
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* Small client buffers, so the server's backpressure shows sooner. */
static void small_buffers(int fd)
{
    int sz = 32 * 1024;

    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
}

/* Connect (TLS: `backend` names the server's, for messages only; sni may
 * be NULL). The descriptor is non-blocking. */
static void st_open(stream *s, int port, int tls, const char *sni)
{
    memset(s, 0, sizeof *s);
    s->tls = tls;
    if (!tls) {
        s->fd = connect_port(port);
        if (fcntl(s->fd, F_SETFL, O_NONBLOCK) != 0)
            fail_msg("fcntl: %s", strerror(errno));
        small_buffers(s->fd);
        return;
    }
#if defined(SSOCK_ECHO_TLS_CLIENT)
    tc_opts o;
    tc_opts_init(&o);
    o.sni = sni;
    if (tc_open(&s->tc, port, &o, 5000) != TC_OK)
        fail_msg("TLS connect: %s", s->tc.err);
    small_buffers(s->tc.fd);
    if (tc_handshake(&s->tc, 10000) != TC_OK)
        fail_msg("TLS handshake: %s", s->tc.err);
    s->fd = s->tc.fd;
#else
    (void)sni;
    fail_msg("TLS stream without the in-test TLS client");
#endif
}

/* Wait for `events` on the stream: 1 ready, 0 timeout. */
static int st_wait(stream *s, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = s->fd, .events = events, .revents = 0};
    int rc;

    do {
        rc = poll(&pfd, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
}

/* A writer of pattern bytes that keeps a chunk until it is all taken (TLS
 * retries need the same arguments). */
typedef struct pattern_writer {
    uint8_t buf[16384];
    size_t base, len, off; /* buf holds [base, base + len); off sent */
    uint32_t seed;
} pattern_writer;

/* Write what the stream takes now, up to `limit` bytes in total; the
 * number of bytes written so far, or -1. */
static long pw_write(stream *s, pattern_writer *w, size_t limit)
{
    for (;;) {
        long n;

        if (w->off == w->len) {
            size_t left = limit - (w->base + w->len);

            if (left == 0)
                return (long)(w->base + w->len);
            w->base += w->len;
            w->len = left < sizeof w->buf ? left : sizeof w->buf;
            w->off = 0;
            th_fill(w->buf, w->len, w->seed, w->base);
        }
        n = st_io(s, 1, w->buf + w->off, w->len - w->off);
        if (n < 0)
            return -1;
        if (n == 0)
            return (long)(w->base + w->off);
        w->off += (size_t)n;
    }
}

/* Read up to `max` bytes and check them against the pattern at *rcvd:
 * bytes read (0: would block) or -1. */
static long checked_read(stream *s, uint32_t seed, size_t *rcvd, size_t total,
                         size_t max)
{
    uint8_t buf[16384];
    long n = st_io(s, 0, buf, max < sizeof buf ? max : sizeof buf);
    size_t bad;

    if (n <= 0)
        return n;
    if (*rcvd + (size_t)n > total) {
        snprintf(s->err, sizeof s->err, "%zu bytes more than were sent",
                 *rcvd + (size_t)n - total);
        return -1;
    }
    bad = th_check(buf, (size_t)n, seed, *rcvd);
    if (bad != (size_t)n) {
        snprintf(s->err, sizeof s->err,
                 "echo differs at byte %zu (lost or duplicated bytes)",
                 *rcvd + bad);
        return -1;
    }
    *rcvd += (size_t)n;
    return n;
}

/* While a connection is stalled, another one is served at once. */
static void probe_echo(int port, int tls)
{
    stream s;
    uint8_t out[512], in[512];
    size_t got = 0, sent = 0;
    int64_t deadline;

    st_open(&s, port, tls, NULL);
    th_fill(out, sizeof out, 99, 0);
    deadline = th_now_ms() + TH_STUCK_MS;
    while (got < sizeof in) {
        long n =
            sent < sizeof out ? st_io(&s, 1, out + sent, sizeof out - sent) : 0;
        if (n < 0)
            fail_msg("probe: %s", s.err);
        sent += (size_t)n;
        n = st_io(&s, 0, in + got, sizeof in - got);
        if (n < 0)
            fail_msg("probe: %s", s.err);
        got += (size_t)n;
        if (n == 0 && !st_wait(&s, POLLIN, 50) && th_now_ms() > deadline)
            fail_msg("a second client got no echo within %d ms while the "
                     "first one stalled",
                     TH_STUCK_MS);
    }
    assert_memory_equal(in, out, sizeof out);
    st_close(&s);
}

#define STALL_MS 300
#define NO_BACKPRESSURE ((size_t)256 * 1024 * 1024)

/* Phase 1: write without reading until the server stops taking bytes. The
 * bytes written then. */
static size_t fill_until_stall(stream *s, pattern_writer *w)
{
    for (;;) {
        long sent = pw_write(s, w, NO_BACKPRESSURE);

        if (sent < 0)
            fail_msg("writing without reading: %s", s->err);
        if ((size_t)sent >= NO_BACKPRESSURE)
            fail_msg("the server took %zu bytes from a client that reads "
                     "nothing: no backpressure",
                     NO_BACKPRESSURE);
        if (!st_wait(s, s->want, STALL_MS))
            return (size_t)sent;
    }
}

/* Phases 2 and 3: read slowly (small reads with pauses), then at full
 * speed, while writing the rest; every byte checked. */
static void drain_slowly(stream *s, pattern_writer *w, size_t total)
{
    size_t rcvd = 0;
    int slow_reads = 200;

    while (rcvd < total) {
        long sent = pw_write(s, w, total), n;
        short wr_want = s->want;

        if (sent < 0)
            fail_msg("write: %s", s->err);
        n = checked_read(s, w->seed, &rcvd, total,
                         slow_reads > 0 ? 1024 : 16384);
        if (n < 0)
            fail_msg("after %zu of %zu bytes: %s", rcvd, total, s->err);
        if (n > 0 && slow_reads > 0 && slow_reads-- % 4 == 0)
            th_sleep_ms(2);
        if (n == 0 &&
            !st_wait(s, (short)(s->want | ((size_t)sent < total ? wr_want : 0)),
                     IDLE_MS))
            fail_msg("no progress for %d ms after %zu of %zu bytes echoed",
                     IDLE_MS, rcvd, total);
    }
    /* Nothing more may come. */
    {
        uint8_t extra[64];
        long n = st_wait(s, POLLIN, 200) ? st_io(s, 0, extra, sizeof extra) : 0;
        if (n > 0)
            fail_msg("%ld bytes more than were sent", n);
    }
}

static void slow_reader(int port, int tls)
{
    stream s;
    pattern_writer *w = calloc(1, sizeof *w);
    size_t stalled_at, total;

    assert_non_null(w);
    w->seed = 4242;
    st_open(&s, port, tls, NULL);
    stalled_at = fill_until_stall(&s, w);
    print_message("[  INFO    ] server stopped taking bytes after %zu KiB\n",
                  stalled_at / 1024);
    probe_echo(port, tls);
    total = stalled_at + (size_t)1024 * 1024;
    drain_slowly(&s, w, total);
    st_close(&s);
    free(w);
}

/* ------------------------------------------------------------------ */
/* Plain-TCP cases, threaded and --event --workers 2                   */
/* ------------------------------------------------------------------ */

static void test_slow_reader_plain(void **state)
{
    const char *const *mode = *state;
    proc *p = proc_new();

    echo_start(p, mode, (char *)NULL);
    slow_reader(p->port, 0);
    proc_stop(p, 0);
}

/* --max-conns 3 counts across all workers; a freed slot is reused. */
static void test_max_conns(void **state)
{
    const char *const *mode = *state;
    int fds[3], extra;
    int64_t deadline;
    proc *p = proc_new();

    echo_start(p, mode, "--max-conns", "3", (char *)NULL);
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_port(p->port);
        plain_echo(fds[i], 100, (uint32_t)i + 1); /* served */
    }
    for (int i = 0; i < 4; i++) { /* 4 more: every worker refuses */
        extra = connect_port(p->port);
        (void)th_send_all(extra, "x", 1);
        expect_closed(extra, TH_STUCK_MS);
        close(extra);
    }
    close(fds[0]);
    /* The server notices the close on its own time: bounded retry. */
    deadline = th_now_ms() + TH_STUCK_MS;
    for (;;) {
        char b[4];
        ssize_t r;

        extra = connect_port(p->port);
        assert_int_equal(th_send_all(extra, "ping", 4), 0);
        r = th_recv_some(extra, b, sizeof b, 1000);
        close(extra);
        if (r == 4 && memcmp(b, "ping", 4) == 0)
            break;
        if (th_now_ms() > deadline)
            fail_msg("no connection served within %d ms after one of the 3 "
                     "closed",
                     TH_STUCK_MS);
        th_sleep_ms(20);
    }
    plain_echo(fds[1], 1000, 7); /* the others still work */
    plain_echo(fds[2], 1000, 8);
    close(fds[1]);
    close(fds[2]);
    proc_stop(p, 0);
}

/* --timeout is the accept timeout: the server keeps serving past it, and
 * an idle connection is not closed by it. */
static void test_accept_timeout(void **state)
{
    const char *const *mode = *state;
    int early, late;
    proc *p = proc_new();

    echo_start(p, mode, "--timeout", "100", (char *)NULL);
    early = connect_port(p->port);
    plain_echo(early, 10, 1);
    th_sleep_ms(350); /* several accept timeouts pass */
    late = connect_port(p->port);
    plain_echo(late, 10, 2);
    plain_echo(early, 10, 3);
    close(early);
    close(late);
    proc_stop(p, 0);
}

/* One try: an idle connection is closed after --idle-timeout MS, not
 * before, while a busy one stays. Returns the idle one's lifetime. */
static int64_t idle_once(int port, int idle_ms)
{
    /* Taken before connecting: the server's idle clock starts later. */
    int64_t t0 = th_now_ms(), end = t0 + 3 * idle_ms, closed_after = -1;
    int idle = connect_port(port), busy = connect_port(port);
    char b[8];

    while (th_now_ms() < end) {
        ssize_t r = th_recv_some(idle, b, sizeof b, idle_ms / 3);

        if (r > 0)
            fail_msg("data on an idle connection");
        if (r != -ETIMEDOUT && closed_after < 0)
            closed_after = th_now_ms() - t0;
        plain_echo(busy, 1, 5); /* moves a byte every idle/3 ms */
        if (closed_after >= 0)
            break;
    }
    close(idle);
    close(busy);
    if (closed_after < 0)
        fail_msg("an idle connection was still open after %d ms "
                 "(--idle-timeout %d)",
                 3 * idle_ms, idle_ms);
    if (closed_after < idle_ms - 1)
        fail_msg("an idle connection closed after %d ms, before the "
                 "--idle-timeout of %d ms",
                 (int)closed_after, idle_ms);
    return closed_after;
}

static void test_idle_timeout(void **state)
{
    const char *const *mode = *state;
    const int idle_ms = 300;
    int64_t best = INT64_MAX;
    proc *p = proc_new();

    echo_start(p, mode, "--idle-timeout", "300", (char *)NULL);
    for (int i = 0; i < TH_TRIES && best > idle_ms + TH_SLACK_MS; i++) {
        int64_t t = idle_once(p->port, idle_ms);
        best = t < best ? t : best;
    }
    print_message("[  INFO    ] idle connection closed after %d ms "
                  "(limit %d + %d)\n",
                  (int)best, idle_ms, TH_SLACK_MS);
    if (best > idle_ms + TH_SLACK_MS)
        fail_msg("idle connection closed after %d ms, limit %d + %d slack "
                 "(best of %d)",
                 (int)best, idle_ms, TH_SLACK_MS, TH_TRIES);
    proc_stop(p, 0);
}

/* SIGTERM with connections open (idle, and one stalled mid-stream):
 * exit 0 within the bound. */
static void test_sigterm_busy(void **state)
{
    const char *const *mode = *state;
    pattern_writer *w = calloc(1, sizeof *w);
    int idle;
    stream s;
    proc *p = proc_new();

    assert_non_null(w);
    echo_start(p, mode, (char *)NULL);
    idle = connect_port(p->port);
    plain_echo(idle, 10, 1);
    st_open(&s, p->port, 0, NULL);
    (void)fill_until_stall(&s, w);
    proc_stop(p, 0);
    expect_closed(idle, TH_STUCK_MS);
    close(idle);
    st_close(&s);
    free(w);
}

/* --log-accepts: one line per connection, with the client's port. */
static void test_log_accepts_plain(void **state)
{
    const char *const *mode = *state;
    char want[128];
    proc *p = proc_new();

    echo_start(p, mode, "--log-accepts", (char *)NULL);
    for (int i = 0; i < 4; i++) {
        int fd = connect_port(p->port);

        plain_echo(fd, 10, 1); /* served, so logged */
        snprintf(want, sizeof want, "accepted 127.0.0.1 %d", client_port(fd));
        expect_line(p, want, 5000);
        close(fd);
    }
    proc_stop(p, 0);
}

/* ------------------------------------------------------------------ */
/* PROXY protocol                                                      */
/* ------------------------------------------------------------------ */

static const char V1_HEADER[] =
    "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";

/* v2: PROXY command, TCP over IPv4, 203.0.113.7:40000 -> 198.51.100.2:443 */
static const uint8_t V2_HEADER[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
    0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 203,  0,    113,  7,
    198,  51,   100,  2,    0x9C, 0x40, 0x01, 0xBB,
};

/* Send a header one byte per segment. */
static void send_pieces(int fd, const void *buf, size_t len)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (size_t i = 0; i < len; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};

        if (poll(&pfd, 1, 5000) != 1)
            fail_msg("cannot send byte %zu of the PROXY header", i);
        if (send(fd, (const char *)buf + i, 1, MSG_NOSIGNAL) != 1)
            fail_msg("send byte %zu of the PROXY header: %s", i,
                     strerror(errno));
        th_sleep_ms(1);
    }
}

static void test_proxy_plain(void **state)
{
    const char *const *mode = *state;
    char want[64];
    proc *p = proc_new();
    int fd;

    echo_start(p, mode, "--proxy-protocol", "any", "--log-accepts",
               (char *)NULL);
    fd = connect_port(p->port);
    send_pieces(fd, V1_HEADER, sizeof V1_HEADER - 1);
    plain_echo(fd, 5000, 3);
    expect_line(p, "accepted 192.0.2.1 56324", 5000);
    close(fd);
    fd = connect_port(p->port);
    send_pieces(fd, V2_HEADER, sizeof V2_HEADER);
    plain_echo(fd, 5000, 4);
    expect_line(p, "accepted 203.0.113.7 40000", 5000);
    close(fd);
    /* v1 UNKNOWN names no client: the TCP peer is logged. */
    fd = connect_port(p->port);
    send_pieces(fd, "PROXY UNKNOWN\r\n", 15);
    plain_echo(fd, 100, 5);
    snprintf(want, sizeof want, "accepted 127.0.0.1 %d", client_port(fd));
    expect_line(p, want, 5000);
    close(fd);
    proc_stop(p, 0);
}

/* A source outside --proxy-trusted is closed unread: no echo, no
 * "accepted" line (--verbose says why). */
static void test_proxy_untrusted(void **state)
{
    const char *const *mode = *state;
    char line[512];
    proc *p = proc_new();
    int fd;

    echo_start(p, mode, "--proxy-protocol", "v1", "--proxy-trusted",
               "10.0.0.0/8", "--log-accepts", "--verbose", (char *)NULL);
    fd = connect_port(p->port);
    (void)th_send_all(fd, V1_HEADER, sizeof V1_HEADER - 1);
    (void)th_send_all(fd, "hello", 5);
    expect_closed(fd, TH_STUCK_MS);
    close(fd);
    expect_prefix(p, "event proxy-refused 127.0.0.1 ", line, sizeof line, 5000);
    if (strstr(line, "SSOCK_EPROXY") == NULL)
        fail_msg("refusal line without SSOCK_EPROXY: \"%s\"", line);
    proc_stop(p, 0); /* and no "accepted" line */
}

/* A malformed header is closed unread too. */
static void test_proxy_malformed(void **state)
{
    const char *const *mode = *state;
    proc *p = proc_new();
    int fd;

    echo_start(p, mode, "--proxy-protocol", "v1", "--log-accepts",
               (char *)NULL);
    fd = connect_port(p->port);
    (void)th_send_all(fd, "PROXY TCP4 192.0.2.1\r\nhello", 27);
    expect_closed(fd, TH_STUCK_MS);
    close(fd);
    fd = connect_port(p->port); /* the server goes on */
    (void)th_send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    expect_closed(fd, TH_STUCK_MS);
    close(fd);
    proc_stop(p, 0);
}

/* ------------------------------------------------------------------ */
/* Bad flags, --help                                                   */
/* ------------------------------------------------------------------ */

static int run_status(char *const argv[], char *out, size_t outlen)
{
    proc *p = proc_new();
    int status = 0;
    ssize_t n;
    size_t len = 0;

    proc_spawn(p, argv);
    while (len + 1 < outlen &&
           (n = read(p->out, out + len, outlen - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    if (!proc_wait(p, 10000, &status))
        fail_msg("%s %s did not end within 10 s", argv[0], argv[1]);
    close(p->out);
    p->out = -1;
    proc_forget(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_bad_flags(void **state)
{
    static const char *const bad[][8] = {
        {"--poll", "--tls"},
        {"--poll", "--event"},
        {"--workers", "2"},
        {"--event", "--workers", "0"},
        {"--event", "--workers", "65"},
        {"--poll", "--idle-timeout", "100"},
        {"--cert", CERT("server-ecdsa.pem")},
        {"--proxy-protocol", "v3"},
        {"--proxy-trusted", "10.0.0.0/33", "--proxy-protocol", "v1"},
        {"--timeout", "-1", "--event"},
        {"--idle-timeout", "-5"},
        {"--event", "--nonsense"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        args a = {.n = 0};
        char out[256];
        int rc;

        args_add(&a, SSOCK_ECHO_PATH);
        args_add(&a, "--port");
        args_add(&a, "0");
        args_addv(&a, bad[i]);
        rc = run_status(a.v, out, sizeof out);
        if (rc != 2)
            fail_msg("ssock-echo %s %s %s: exit status %d, expected 2 (out: "
                     "\"%s\")",
                     bad[i][0], bad[i][1] ? bad[i][1] : "",
                     bad[i][1] && bad[i][2] ? bad[i][2] : "", rc, out);
        if (out[0] != '\0')
            fail_msg("ssock-echo %s: wrote \"%s\" on stdout", bad[i][0], out);
    }
}

static void test_help_lists_flags(void **state)
{
    static const char *const flags[] = {
        "--port",
        "--addr",
        "--timeout",
        "--backlog",
        "--max-conns",
        "--poll",
        "--event",
        "--workers",
        "--idle-timeout",
        "--verbose",
        "--log-accepts",
        "--proxy-protocol",
        "--proxy-trusted",
        "--help",
        "--version",
        "--tls",
        "--cert",
        "--key",
        "--ca",
        "--verify-client",
        "--backend",
        "--min-version",
        "--alpn",
        "--handshake-timeout",
        "--max-handshakes",
        "SIGHUP",
        "LISTEN_FDS",
    };
    char *argv[] = {SSOCK_ECHO_PATH, "--help", NULL};
    char out[8192];
    (void)state;

    assert_int_equal(run_status(argv, out, sizeof out), 0);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strstr(out, flags[i]) == NULL)
            fail_msg("--help does not mention %s", flags[i]);
}

/* ------------------------------------------------------------------ */
/* Socket activation                                                   */
/* ------------------------------------------------------------------ */

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
    int fd = th_socket(AF_INET), port;
    struct sockaddr_in sin = {.sin_family = AF_INET};

    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    port = th_local_port(fd);
    close(fd);
    return port;
}

/* systemd-socket-activate -l 127.0.0.1:PORT ssock-echo --port 1 ...: it
 * listens, and on the first connection execs ssock-echo in its place with
 * LISTEN_FDS=1. The ready line names the inherited listener. */
static void activate(proc *p, const char *const *extra, int *first_fd)
{
    char listen_arg[64];
    args a = {.n = 0};
    int64_t deadline = th_now_ms() + TH_STUCK_MS;
    int port = free_port();

    if (access(SOCKET_ACTIVATE, X_OK) != 0)
        TH_SKIP("%s not installed (Debian package systemd)", SOCKET_ACTIVATE);
    snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%d", port);
    args_add(&a, SOCKET_ACTIVATE);
    args_add(&a, "-l");
    args_add(&a, listen_arg);
    args_add(&a, SSOCK_ECHO_PATH);
    args_add(&a, "--port");
    args_add(&a, "1"); /* ignored: the inherited socket is used */
    args_addv(&a, extra);
    proc_spawn(p, a.v);
    for (;;) { /* until systemd-socket-activate listens */
        int fd = th_connect(AF_INET, port, 1000);

        if (fd >= 0) {
            *first_fd = fd;
            break;
        }
        if (th_now_ms() > deadline)
            fail_msg("%s does not listen on %s within %d ms", SOCKET_ACTIVATE,
                     listen_arg, TH_STUCK_MS);
        th_sleep_ms(20);
    }
    proc_ready(p);
    if (p->port != port || strcmp(p->host, "127.0.0.1") != 0)
        fail_msg("ready line names %s:%d, expected the inherited 127.0.0.1:%d",
                 p->host, p->port, port);
}

static void test_socket_activation(void **state)
{
    const char *const *mode = *state;
    const char *extra[8] = {NULL};
    char want[64];
    int fd, n = 0;
    proc *p = proc_new();

    for (; mode[n] != NULL; n++)
        extra[n] = mode[n];
    extra[n] = "--log-accepts";
    activate(p, extra, &fd);
    plain_echo(fd, 10000, 1); /* the connection that started it */
    snprintf(want, sizeof want, "accepted 127.0.0.1 %d", client_port(fd));
    expect_line(p, want, 5000);
    for (int i = 0; i < 6; i++) { /* more, spread over the workers */
        int more = connect_port(p->port);

        plain_echo(more, 1000, (uint32_t)i + 2);
        snprintf(want, sizeof want, "accepted 127.0.0.1 %d", client_port(more));
        expect_line(p, want, 5000);
        close(more);
    }
    close(fd);
    proc_stop(p, 0);
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */
/* ------------------------------------------------------------------ */

#if defined(SSOCK_ECHO_TLS_CLIENT)

typedef struct tls_case {
    const char *const *mode;
    const char *backend;
} tls_case;

static void require_backend(const char *backend)
{
    int id = ssock_tls_backend_from_name(backend);

    if (!ssock_tls_backend_available(id))
        TH_SKIP("TLS backend %s not built into this library", backend);
}

/* TLS connect, handshake, and (optionally) SNI. */
static void tls_open(tc_conn *c, int port, const char *sni)
{
    tc_opts o;

    tc_opts_init(&o);
    o.sni = sni;
    if (tc_open(c, port, &o, 5000) != TC_OK)
        fail_msg("TLS connect: %s", c->err);
    if (tc_handshake(c, 10000) != TC_OK)
        fail_msg("TLS handshake: %s", c->err);
}

static void tls_echo(tc_conn *c, size_t len, uint32_t seed)
{
    uint8_t *out = malloc(len), *in = malloc(len);

    assert_non_null(out);
    assert_non_null(in);
    th_fill(out, len, seed, 0);
    if (tc_echo(c, out, in, len, IDLE_MS) != TC_OK)
        fail_msg("TLS echo of %zu bytes: %s", len, c->err);
    assert_memory_equal(in, out, len);
    free(out);
    free(in);
}

/* 1 when the server presented the first certificate of `pem_file`. */
static int presented(tc_conn *c, const char *pem_file)
{
    X509 *peer = SSL_get1_peer_certificate((SSL *)c->ssl);
    FILE *f = fopen(pem_file, "r");
    X509 *want = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    int same = peer && want && X509_cmp(peer, want) == 0;

    if (f)
        fclose(f);
    if (!want)
        fail_msg("cannot read the certificate %s", pem_file);
    X509_free(peer);
    X509_free(want);
    return same;
}

static void echo_start_tls(proc *p, const tls_case *tc, const char *a1,
                           const char *a2, const char *a3, const char *a4)
{
    require_backend(tc->backend);
    echo_start(p, tc->mode, "--backend", tc->backend, a1, a2, a3, a4,
               (char *)NULL);
}

/* ---- many concurrent TLS clients ---- */

#define TLS_THREADS 4
#define TLS_PER_THREAD 16

struct tls_worker {
    int port;
    pthread_barrier_t *bar;
    int first;
    char err[400];
};

static void *tls_worker_main(void *arg)
{
    struct tls_worker *w = arg;
    tc_conn c[TLS_PER_THREAD];
    uint8_t out[32768], in[32768];
    int opened = 0;
    tc_opts o;

    tc_opts_init(&o);
    for (; opened < TLS_PER_THREAD && !w->err[0]; opened++) {
        if (tc_open(&c[opened], w->port, &o, 5000) != TC_OK ||
            tc_handshake(&c[opened], IDLE_MS) != TC_OK) {
            snprintf(w->err, sizeof w->err, "client %d: %s", w->first + opened,
                     c[opened].err);
            tc_close(&c[opened]);
            break;
        }
    }
    pthread_barrier_wait(w->bar); /* all connections open at once */
    for (int i = 0; i < opened && !w->err[0]; i++) {
        th_fill(out, sizeof out, (uint32_t)(w->first + i), 0);
        if (tc_echo(&c[i], out, in, sizeof out, IDLE_MS) != TC_OK)
            snprintf(w->err, sizeof w->err, "client %d echo: %s", w->first + i,
                     c[i].err);
        else if (memcmp(in, out, sizeof out) != 0)
            snprintf(w->err, sizeof w->err, "client %d: echo differs",
                     w->first + i);
    }
    for (int i = 0; i < opened; i++)
        tc_close(&c[i]);
    return NULL;
}

static void test_tls_many_clients(void **state)
{
    const tls_case *tc = *state;
    struct tls_worker w[TLS_THREADS];
    pthread_t t[TLS_THREADS];
    pthread_barrier_t bar;
    proc *p = proc_new();

    echo_start_tls(p, tc, "--tls", NULL, NULL, NULL);
    assert_int_equal(pthread_barrier_init(&bar, NULL, TLS_THREADS), 0);
    for (int i = 0; i < TLS_THREADS; i++) {
        w[i] = (struct tls_worker){
            .port = p->port, .bar = &bar, .first = i * TLS_PER_THREAD};
        assert_int_equal(pthread_create(&t[i], NULL, tls_worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < TLS_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < TLS_THREADS; i++)
        if (w[i].err[0])
            fail_msg("%s", w[i].err);
    proc_stop(p, 0);
}

static void test_tls_slow_reader(void **state)
{
    const tls_case *tc = *state;
    proc *p = proc_new();

    echo_start_tls(p, tc, "--tls", NULL, NULL, NULL);
    slow_reader(p->port, 1);
    proc_stop(p, 0);
}

/* --max-conns and --timeout keep their meaning with TLS. */
static void test_tls_max_conns(void **state)
{
    const tls_case *tc = *state;
    tc_conn c[2], extra;
    uint8_t b[16];
    size_t n = 0;
    proc *p = proc_new();

    echo_start_tls(p, tc, "--max-conns", "2", "--timeout", "100");
    for (int i = 0; i < 2; i++) {
        tls_open(&c[i], p->port, NULL);
        tls_echo(&c[i], 1000, (uint32_t)i);
    }
    th_sleep_ms(300); /* accept timeouts pass */
    /* The third finishes its handshake, then the server drops it. */
    tls_open(&extra, p->port, NULL);
    int rc = tc_read_some(&extra, b, sizeof b, &n, TH_STUCK_MS);
    if (rc == TC_OK || rc == TC_TIMEOUT)
        fail_msg("a connection over --max-conns 2 was served (rc %d)", rc);
    tc_close(&extra);
    tls_echo(&c[0], 1000, 9);
    tc_close(&c[0]);
    tc_close(&c[1]);
    proc_stop(p, 0);
}

/* --idle-timeout on TLS sockets: an idle one ends (close_notify or end of
 * stream) not before the limit; a busy one stays. */
static void test_tls_idle_timeout(void **state)
{
    const tls_case *tc = *state;
    int64_t t0 = th_now_ms(), closed = -1;
    tc_conn idle, busy;
    uint8_t b[16];
    proc *p = proc_new();

    echo_start_tls(p, tc, "--idle-timeout", "300", NULL, NULL);
    t0 = th_now_ms(); /* before connecting: the server's clock starts later */
    tls_open(&idle, p->port, NULL);
    tls_open(&busy, p->port, NULL);
    while (closed < 0 && th_now_ms() - t0 < TH_STUCK_MS) {
        size_t n = 0;
        int rc = tc_read_some(&idle, b, sizeof b, &n, 100);

        if (rc == TC_OK)
            fail_msg("data on an idle TLS connection");
        if (rc != TC_TIMEOUT)
            closed = th_now_ms() - t0;
        tls_echo(&busy, 10, 3);
    }
    if (closed < 0)
        fail_msg("idle TLS connection open after %d ms (--idle-timeout 300)",
                 TH_STUCK_MS);
    if (closed < 299)
        fail_msg("idle TLS connection closed after %d ms, before 300",
                 (int)closed);
    print_message("[  INFO    ] idle TLS connection closed after %d ms\n",
                  (int)closed);
    tls_echo(&busy, 1000, 4);
    tc_close(&idle);
    tc_close(&busy);
    proc_stop(p, 0);
}

/* --log-accepts with SNI; --proxy-protocol v1 and v2 in 1-byte pieces,
 * then TLS. */
static void test_tls_log_and_proxy(void **state)
{
    const tls_case *tc = *state;
    tc_conn c;
    proc *p = proc_new();

    echo_start_tls(p, tc, "--log-accepts", "--proxy-protocol", "any", NULL);
    for (int v = 1; v <= 2; v++) {
        tc_opts o;

        tc_opts_init(&o);
        o.sni = v == 1 ? "echo.example.org" : NULL;
        if (tc_open(&c, p->port, &o, 5000) != TC_OK)
            fail_msg("TLS connect: %s", c.err);
        if (v == 1)
            send_pieces(c.fd, V1_HEADER, sizeof V1_HEADER - 1);
        else
            send_pieces(c.fd, V2_HEADER, sizeof V2_HEADER);
        if (tc_handshake(&c, 10000) != TC_OK)
            fail_msg("TLS handshake after a PROXY v%d header: %s", v, c.err);
        tls_echo(&c, 20000, (uint32_t)v);
        expect_line(p,
                    v == 1 ? "accepted 192.0.2.1 56324 sni=echo.example.org"
                           : "accepted 203.0.113.7 40000",
                    5000);
        tc_close(&c);
    }
    proc_stop(p, 0);
}

/* SNI: two pairs and a wildcard; the right certificate is presented. */
static void test_tls_sni(void **state)
{
    static const struct {
        const char *name, *cert;
    } cases[] = {
        {NULL, CERT("server-ecdsa.pem")},
        {"a.example.com", CERT("sni-a.pem")},
        {"A.EXAMPLE.COM", CERT("sni-a.pem")},
        {"b.example.com", CERT("sni-wild.pem")},
        {"x.b.example.com", CERT("server-ecdsa.pem")},
        {"unknown.test", CERT("server-ecdsa.pem")},
    };
    const tls_case *tc = *state;
    char want[128];
    proc *p = proc_new();

    require_backend(tc->backend);
    echo_start(p, tc->mode, "--backend", tc->backend, "--log-accepts", "--cert",
               CERT("server-ecdsa.pem"), "--key", CERT("server-ecdsa.key"),
               "--cert", CERT("sni-a.pem"), "--key", CERT("sni-a.key"),
               "--cert", CERT("sni-wild.pem"), "--key", CERT("sni-wild.key"),
               (char *)NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tc_conn c;

        tls_open(&c, p->port, cases[i].name);
        if (!presented(&c, cases[i].cert))
            fail_msg("SNI \"%s\": the server did not present %s",
                     cases[i].name ? cases[i].name : "(none)", cases[i].cert);
        tls_echo(&c, 100, (uint32_t)i);
        snprintf(want, sizeof want, "accepted 127.0.0.1 %d%s%s",
                 client_port(c.fd), cases[i].name ? " sni=" : "",
                 cases[i].name ? cases[i].name : "");
        expect_line(p, want, 5000);
        tc_close(&c);
    }
    proc_stop(p, 0);
}

/* ---- SIGHUP: reload ---- */

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "rb"), *out;
    size_t n;

    if (in == NULL)
        fail_msg("open %s: %s", from, strerror(errno));
    out = fopen(to, "wb");
    if (out == NULL)
        fail_msg("create %s: %s", to, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

struct tmpdir {
    char dir[64], cert[96], key[96];
};

static void tmpdir_make(struct tmpdir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/ssock-echo-test.XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
    snprintf(t->key, sizeof t->key, "%s/key.pem", t->dir);
}

static void tmpdir_remove(struct tmpdir *t)
{
    unlink(t->cert);
    unlink(t->key);
    rmdir(t->dir);
}

static void expect_cert(int port, const char *pem)
{
    tc_conn c;

    tls_open(&c, port, NULL);
    if (!presented(&c, pem))
        fail_msg("the server does not present %s", pem);
    tls_echo(&c, 1000, 11);
    tc_close(&c);
}

static void test_tls_reload(void **state)
{
    const tls_case *tc = *state;
    struct tmpdir t;
    char line[512];
    tc_conn before;
    proc *p = proc_new();

    require_backend(tc->backend);
    tmpdir_make(&t);
    copy_file(CERT("server-ecdsa.pem"), t.cert);
    copy_file(CERT("server-ecdsa.key"), t.key);
    echo_start(p, tc->mode, "--backend", tc->backend, "--cert", t.cert, "--key",
               t.key, (char *)NULL);
    expect_cert(p->port, CERT("server-ecdsa.pem"));
    tls_open(&before, p->port, NULL); /* in use across the reloads */

    copy_file(CERT("server-rsa.pem"), t.cert);
    copy_file(CERT("server-rsa.key"), t.key);
    assert_int_equal(kill(p->pid, SIGHUP), 0);
    expect_line(p, "reloaded", 10000);
    expect_cert(p->port, CERT("server-rsa.pem"));
    tls_echo(&before, 5000, 12);

    /* A broken file: the old configuration keeps serving. */
    copy_file(CERT("garbage.pem"), t.cert);
    assert_int_equal(kill(p->pid, SIGHUP), 0);
    expect_prefix(p, "reload failed: ", line, sizeof line, 10000);
    print_message("[  INFO    ] %s\n", line);
    expect_cert(p->port, CERT("server-rsa.pem"));
    tls_echo(&before, 5000, 13);
    tc_close(&before);
    proc_stop(p, 0);
    tmpdir_remove(&t);
}

static void test_tls_activation(void **state)
{
    const tls_case *tc = *state;
    const char *extra[10] = {NULL};
    tc_conn c;
    proc *p = proc_new();
    int fd, n = 0;

    require_backend(tc->backend);
    for (; tc->mode[n] != NULL; n++)
        extra[n] = tc->mode[n];
    extra[n++] = "--backend";
    extra[n++] = tc->backend;
    activate(p, extra, &fd);
    close(fd); /* started it; a plain client the TLS server drops */
    tls_open(&c, p->port, NULL);
    tls_echo(&c, 20000, 5);
    tc_close(&c);
    proc_stop(p, 0);
}

#if defined(SSOCK_LIBUV_ECHO_PATH)
static void test_libuv_echo(void **state)
{
    const tls_case *tc = *state;
    char *argv[] = {SSOCK_LIBUV_ECHO_PATH, "--port", "0", "--backend",
                    (char *)tc->backend,   NULL};
    tc_conn c[8];
    proc *p = proc_new();

    require_backend(tc->backend);
    proc_spawn(p, argv);
    proc_ready(p);
    for (int i = 0; i < 8; i++)
        tls_open(&c[i], p->port, NULL);
    for (int i = 0; i < 8; i++)
        tls_echo(&c[i], i == 0 ? (size_t)2 * 1024 * 1024 : 10000, (uint32_t)i);
    for (int i = 0; i < 8; i++)
        tc_close(&c[i]);
    slow_reader(p->port, 1);
    proc_stop(p, 0);
}
#endif

#define TLS_CASES(name)                                                        \
    cmocka_unit_test_prestate_setup_teardown(name, NULL, teardown,             \
                                             (void *)&tls_threads_mbed),       \
        cmocka_unit_test_prestate_setup_teardown(name, NULL, teardown,         \
                                                 (void *)&tls_threads_ossl),   \
        cmocka_unit_test_prestate_setup_teardown(name, NULL, teardown,         \
                                                 (void *)&tls_event_mbed),     \
        cmocka_unit_test_prestate_setup_teardown(name, NULL, teardown,         \
                                                 (void *)&tls_event_ossl)

#endif /* SSOCK_ECHO_TLS_CLIENT */

#if !defined(SSOCK_ECHO_TLS_CLIENT) || !defined(SSOCK_LIBUV_ECHO_PATH)
/* A stand-in that says what is missing (a skip fails the gate; the
 * messages match the gate's allowed skips of its no-TLS builds). */
static void test_tls_missing(void **state)
{
    (void)state;
#if !SSOCK_HAVE_TLS
    TH_SKIP("no TLS backend built: the TLS cases of ssock-echo and "
            "libuv_echo did not run");
#elif !defined(SSOCK_ECHO_TLS_CLIENT)
    TH_SKIP("test_echo built without the in-test TLS client (OpenSSL): "
            "the TLS cases of ssock-echo did not run");
#else
    TH_SKIP("examples/libuv_echo not built (pkg-config libuv not found; "
            "Debian: libuv1-dev)");
#endif
}
#endif

#define PLAIN_CASES(name)                                                      \
    cmocka_unit_test_prestate_setup_teardown(name, NULL, teardown,             \
                                             (void *)MODE_THREADS),            \
        cmocka_unit_test_prestate_setup_teardown(name, NULL, teardown,         \
                                                 (void *)MODE_EVENT2)

int main(void)
{
#if defined(SSOCK_ECHO_TLS_CLIENT)
    static const tls_case tls_threads_mbed = {MODE_THREADS, "mbedtls"};
    static const tls_case tls_threads_ossl = {MODE_THREADS, "openssl"};
    static const tls_case tls_event_mbed = {MODE_EVENT2, "mbedtls"};
    static const tls_case tls_event_ossl = {MODE_EVENT2, "openssl"};
#endif
    const struct CMUnitTest tests[] = {
        PLAIN_CASES(test_200_clients),
        cmocka_unit_test_prestate_setup_teardown(test_200_clients, NULL,
                                                 teardown, (void *)MODE_POLL),
        PLAIN_CASES(test_slow_reader_plain),
        PLAIN_CASES(test_max_conns),
        PLAIN_CASES(test_accept_timeout),
        PLAIN_CASES(test_idle_timeout),
        PLAIN_CASES(test_sigterm_busy),
        PLAIN_CASES(test_log_accepts_plain),
        PLAIN_CASES(test_proxy_plain),
        cmocka_unit_test_prestate_setup_teardown(test_proxy_plain, NULL,
                                                 teardown, (void *)MODE_POLL),
        PLAIN_CASES(test_proxy_untrusted),
        PLAIN_CASES(test_proxy_malformed),
        PLAIN_CASES(test_socket_activation),
        cmocka_unit_test_teardown(test_bad_flags, teardown),
        cmocka_unit_test_teardown(test_help_lists_flags, teardown),
#if defined(SSOCK_ECHO_TLS_CLIENT)
        TLS_CASES(test_tls_many_clients),
        TLS_CASES(test_tls_slow_reader),
        TLS_CASES(test_tls_max_conns),
        TLS_CASES(test_tls_idle_timeout),
        TLS_CASES(test_tls_log_and_proxy),
        TLS_CASES(test_tls_sni),
        TLS_CASES(test_tls_reload),
        TLS_CASES(test_tls_activation),
#if defined(SSOCK_LIBUV_ECHO_PATH)
        cmocka_unit_test_prestate_setup_teardown(
            test_libuv_echo, NULL, teardown, (void *)&tls_event_mbed),
        cmocka_unit_test_prestate_setup_teardown(
            test_libuv_echo, NULL, teardown, (void *)&tls_event_ossl),
#else
        cmocka_unit_test(test_tls_missing),
#endif
#else
        cmocka_unit_test(test_tls_missing),
#endif
    };
    th_sigpipe_default();
    return cmocka_run_group_tests_name("echo", tests, NULL, NULL);
}
