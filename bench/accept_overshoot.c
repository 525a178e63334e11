/*
 * accept_overshoot: how late ssock_server_accept() returns when nothing
 * arrives. For each timeout T it opens a server on 127.0.0.1:0 with accept
 * timeout T and calls accept with no client, measuring (returned-after - T)
 * on the monotonic clock; the baseline is a raw poll() on a raw listening
 * socket with the same T, alternated with the ssock runs. One line per T:
 *
 *   timeout_ms=T runs=N ssock_p50_ms= ssock_p99_ms= ssock_early=
 *   raw_p50_ms= raw_p99_ms=
 *
 * (early counts returns before T, which must never happen.)
 *
 *   accept_overshoot [--runs-10ms N] [--runs-100ms N] [--runs-1s N]
 */
#include <ssock/ssock.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *v, int n, int pct)
{
    int i = n * pct / 100;

    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    return (double)v[i < n ? i : n - 1] / 1e6;
}

static int measure(int timeout_ms, int runs)
{
    ssock_server *srv = NULL;
    int64_t *ss = calloc((size_t)runs, sizeof(int64_t));
    int64_t *raw = calloc((size_t)runs, sizeof(int64_t));
    int64_t t_ns = (int64_t)timeout_ms * 1000000;
    struct sockaddr_in sin;
    int early = 0, lfd, rc;

    if (ss == NULL || raw == NULL)
        return 1;
    rc = ssock_server_open_addr(&srv, 0, timeout_ms, "127.0.0.1");
    if (rc != 0) {
        fprintf(stderr, "accept_overshoot: open: %s\n", ssock_strerror(rc));
        return 1;
    }
    /* The raw baseline's listener prints nothing: stdout is ours. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(lfd, 16) != 0) {
        perror("accept_overshoot: raw listener");
        return 1;
    }
    for (int r = 0; r < runs; r++) {
        ssock_socket *s = NULL;
        struct pollfd p = {lfd, POLLIN, 0};
        uint64_t t0 = bench_now_ns();

        rc = ssock_server_accept(srv, &s);
        ss[r] = (int64_t)(bench_now_ns() - t0) - t_ns;
        if (rc != SSOCK_ETIMEOUT) {
            fprintf(stderr, "accept_overshoot: accept gave %s\n",
                    ssock_err_name(rc));
            ssock_socket_free(s);
            return 1;
        }
        if (ss[r] < 0)
            early++;

        t0 = bench_now_ns();
        (void)poll(&p, 1, timeout_ms);
        raw[r] = (int64_t)(bench_now_ns() - t0) - t_ns;
    }
    printf("timeout_ms=%d runs=%d ssock_p50_ms=%.3f ssock_p99_ms=%.3f "
           "ssock_early=%d raw_p50_ms=%.3f raw_p99_ms=%.3f\n",
           timeout_ms, runs, pct_ms(ss, runs, 50), pct_ms(ss, runs, 99), early,
           pct_ms(raw, runs, 50), pct_ms(raw, runs, 99));
    fflush(stdout);
    close(lfd);
    ssock_server_free(srv);
    free(ss);
    free(raw);
    return 0;
}

int main(int argc, char **argv)
{
    int runs[3] = {50, 50, 5};
    static const int timeouts[3] = {10, 100, 1000};
    static const char *const flags[3] = {"--runs-10ms", "--runs-100ms",
                                         "--runs-1s"};

    for (int i = 1; i < argc; i += 2) {
        int k;

        for (k = 0; k < 3; k++)
            if (strcmp(argv[i], flags[k]) == 0)
                break;
        if (k == 3 || i + 1 >= argc ||
            !bench_parse_int(argv[i + 1], 1, 100000, &runs[k])) {
            fprintf(stderr, "usage: accept_overshoot [--runs-10ms N] "
                            "[--runs-100ms N] [--runs-1s N]\n");
            return 2;
        }
    }
    for (int k = 0; k < 3; k++)
        if (measure(timeouts[k], runs[k]) != 0)
            return 1;
    return 0;
}
