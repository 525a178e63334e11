/* examples/ssock-echo end to end: start it on port 0, read the port from
 * its one line of output, echo data for 200 concurrent clients, stop it
 * with SIGTERM. */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SSOCK_ECHO_PATH
#error "SSOCK_ECHO_PATH must name the ssock-echo binary"
#endif

#define NCLIENTS 200
#define NWORKERS 4
#define PER_WORKER (NCLIENTS / NWORKERS)
#define PER_CLIENT ((size_t)64 * 1024)
#define IDLE_MS 15000 /* no progress for this long: fail */

static pid_t echo_pid = -1;
static int echo_out = -1;

static void stop_echo_hard(void)
{
    if (echo_pid > 0) {
        kill(echo_pid, SIGKILL);
        while (waitpid(echo_pid, NULL, 0) < 0 && errno == EINTR) {
        }
        echo_pid = -1;
    }
    if (echo_out >= 0) {
        close(echo_out);
        echo_out = -1;
    }
}

static int teardown(void **state)
{
    (void)state;
    stop_echo_hard(); /* only on failure paths is anything left */
    return 0;
}

static pid_t start_echo(int *out)
{
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(126);
        execl(SSOCK_ECHO_PATH, "ssock-echo", "--port", "0", "--max-conns",
              "256", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    *out = p[0];
    return pid;
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

/* ---- clients: each worker drives PER_WORKER connections with poll ---- */

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

static void connect_all(struct worker *w)
{
    struct pollfd pfds[PER_WORKER];
    int pending = PER_WORKER;
    int64_t deadline = th_now_ms() + IDLE_MS;

    for (int i = 0; i < PER_WORKER; i++) {
        struct conn *c = &w->conns[i];
        int fd = th_socket(strchr(w->ip, ':') ? AF_INET6 : AF_INET);
        c->fd = fd;
        c->seed = (uint32_t)(w->first + i + 1);
        if (fd < 0) {
            WFAIL(w, "socket: %s", strerror(-fd));
            return;
        }
        /* Starts a non-blocking connect; completion is polled below. */
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
            WFAIL(w, "fcntl: %s", strerror(errno));
            return;
        }
        {
            struct sockaddr_storage ss;
            socklen_t len;
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
                pending--;
            } else if (errno != EINPROGRESS) {
                WFAIL(w, "connect: %s", strerror(errno));
                return;
            }
        }
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
            if ((pfds[k].revents & POLLOUT) && c->sent < PER_CLIENT) {
                size_t len = PER_CLIENT - c->sent;
                ssize_t s;
                if (len > sizeof w->buf)
                    len = sizeof w->buf;
                th_fill(w->buf, len, c->seed, c->sent);
                s = send(c->fd, w->buf, len, MSG_NOSIGNAL);
                if (s < 0 && errno != EAGAIN && errno != EINTR) {
                    WFAIL(w, "send (client %d): %s", w->first + idx[k],
                          strerror(errno));
                    return;
                }
                if (s > 0)
                    c->sent += (size_t)s;
            }
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(c->fd, w->buf, sizeof w->buf, 0);
                size_t bad;
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r < 0) {
                    WFAIL(w, "recv (client %d): %s", w->first + idx[k],
                          strerror(errno));
                    return;
                }
                if (r == 0) {
                    WFAIL(w, "client %d: end of stream after %zu of %zu bytes",
                          w->first + idx[k], c->received, PER_CLIENT);
                    return;
                }
                if (c->received + (size_t)r > PER_CLIENT) {
                    WFAIL(w, "client %d: more data than it sent",
                          w->first + idx[k]);
                    return;
                }
                bad = th_check(w->buf, (size_t)r, c->seed, c->received);
                if (bad != (size_t)r) {
                    WFAIL(w, "client %d: echo differs at byte %zu",
                          w->first + idx[k], c->received + bad);
                    return;
                }
                c->received += (size_t)r;
                if (c->received == PER_CLIENT) {
                    c->done = 1;
                    w->completed++;
                    close(c->fd);
                    c->fd = -1;
                }
            }
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

static void test_echo_200_clients(void **state)
{
    char line[256];
    char host[SSOCK_HOST_MAX];
    const char *ip;
    char *colon, *end;
    long port;
    struct worker *w;
    pthread_t t[NWORKERS];
    pthread_barrier_t bar;
    int wstatus = 0, exited = 0;
    int64_t t0;
    (void)state;

    echo_pid = start_echo(&echo_out);
    assert_true(echo_pid > 0);

    /* "listening on HOST:PORT" */
    if (read_line(echo_out, line, sizeof line, 10000) != 0)
        fail_msg("no line from ssock-echo within 10 s (got \"%s\")", line);
    if (strncmp(line, "listening on ", 13) != 0)
        fail_msg("first line \"%s\" does not start with \"listening on \"",
                 line);
    colon = strrchr(line + 13, ':');
    if (!colon || colon == line + 13)
        fail_msg("line \"%s\" is not \"listening on HOST:PORT\"", line);
    if ((size_t)(colon - (line + 13)) >= sizeof host)
        fail_msg("host too long in \"%s\"", line);
    memcpy(host, line + 13, (size_t)(colon - (line + 13)));
    host[colon - (line + 13)] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || end == colon + 1 || port <= 0 || port > 65535)
        fail_msg("bad port in \"%s\"", line);
    /* IPv6 hosts come in brackets ("[::]:7000"), IPv4 without. */
    if (strchr(host, ':')) {
        size_t hl = strlen(host);
        if (host[0] != '[' || host[hl - 1] != ']')
            fail_msg("IPv6 host without brackets in \"%s\"", line);
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    } else if (strchr(host, '[') || strchr(host, ']')) {
        fail_msg("brackets around a non-IPv6 host in \"%s\"", line);
    }
    if (host[0] == '\0')
        fail_msg("empty host in \"%s\"", line);
    print_message("[  INFO    ] ssock-echo: %s\n", line);

    if (strcmp(host, "::1") == 0)
        ip = "::1";
    else
        ip = "127.0.0.1"; /* "::", "0.0.0.0" or "127.0.0.1" */

    w = calloc(NWORKERS, sizeof *w);
    assert_non_null(w);
    assert_int_equal(pthread_barrier_init(&bar, NULL, NWORKERS), 0);
    for (int i = 0; i < NWORKERS; i++) {
        w[i].first = i * PER_WORKER;
        w[i].ip = ip;
        w[i].port = (int)port;
        w[i].bar = &bar;
        for (int k = 0; k < PER_WORKER; k++)
            w[i].conns[k].fd = -1;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    {
        char err[300] = "";
        int completed = 0;
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

    /* SIGTERM: exit status 0 within 2 s. */
    assert_int_equal(kill(echo_pid, SIGTERM), 0);
    t0 = th_now_ms();
    while (th_now_ms() - t0 < 2000) {
        pid_t r = waitpid(echo_pid, &wstatus, WNOHANG);
        if (r == echo_pid) {
            exited = 1;
            break;
        }
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        th_sleep_ms(10);
    }
    if (!exited)
        fail_msg("ssock-echo still running 2 s after SIGTERM");
    echo_pid = -1;
    /* Nothing else was ever written to stdout. */
    {
        char extra[128];
        ssize_t n;
        while ((n = read(echo_out, extra, sizeof extra - 1)) < 0 &&
               errno == EINTR) {
        }
        close(echo_out);
        echo_out = -1;
        if (n > 0) {
            extra[n] = '\0';
            fail_msg("ssock-echo wrote more to stdout: \"%s\"", extra);
        }
    }
    if (!WIFEXITED(wstatus))
        fail_msg("ssock-echo killed by signal %d after SIGTERM",
                 WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : -1);
    assert_int_equal(WEXITSTATUS(wstatus), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_echo_200_clients, teardown),
    };
    th_sigpipe_default();
    return cmocka_run_group_tests_name("echo", tests, NULL, NULL);
}
