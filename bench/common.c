/* Shared helpers of the benchmark programs (see common.h). */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_ms_left(uint64_t deadline_ns)
{
    uint64_t now = bench_now_ns();

    if (now >= deadline_ns)
        return 0;
    return (int)((deadline_ns - now + 999999u) / 1000000u);
}

bool bench_parse_int(const char *s, long min, long max, int *out)
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

void bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void server_usage(const char *prog, bool tls_ok, FILE *out)
{
    fprintf(out,
            "usage: %s [--port N] [--addr A] [--backlog N] [--max-conns N]\n",
            prog);
    if (!tls_ok)
        fputs("       [--threads]   one thread per connection, blocking "
              "recv/send (default: one poll() loop)\n",
              out);
    if (tls_ok)
        fprintf(out, "       [--tls --cert F --key F] [--backend NAME] "
                     "[--min-version 1.2|1.3]\n"
                     "       [--max-version 1.2|1.3] [--max-handshakes N] "
                     "[--handshake-timeout MS]\n"
                     "       [--serial | --threads]\n"
                     "  --serial    handshakes one at a time in the accept "
                     "loop, then a thread echoes\n"
                     "  --threads   one thread per connection does the "
                     "handshake and the echo (default)\n"
                     "  --no-nodelay  leave Nagle on (default: TCP_NODELAY "
                     "on accepted sockets)\n");
    fputs("Prints \"listening on HOST:PORT\" once listening; SIGINT or "
          "SIGTERM stops it.\n",
          out);
}

static bool parse_version(const char *s, int *out)
{
    if (strcmp(s, "1.2") == 0)
        *out = 12;
    else if (strcmp(s, "1.3") == 0)
        *out = 13;
    else
        return false;
    return true;
}

int bench_parse_server_args(const char *prog, bool tls_ok, int argc,
                            char **argv, struct bench_server_args *a)
{
    memset(a, 0, sizeof(*a));
    a->port = 7000;
    a->addr = "127.0.0.1";
    a->backlog = 1024;
    a->max_conns = 4096;
    a->min_version = 12;
    a->max_version = 13;
    a->max_handshakes = 1024;
    a->handshake_timeout_ms = 10000;
    a->nodelay = true;

    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v;
        bool ok;

        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            server_usage(prog, tls_ok, stdout);
            return 1;
        }
        if (tls_ok && strcmp(f, "--tls") == 0) {
            a->tls = true;
            continue;
        }
        if (tls_ok && strcmp(f, "--serial") == 0) {
            a->serial = true;
            continue;
        }
        if (strcmp(f, "--threads") == 0) {
            a->serial = false;
            a->threads = true;
            continue;
        }
        if (tls_ok && strcmp(f, "--no-nodelay") == 0) {
            a->nodelay = false;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value (or is unknown)\n", prog, f);
            server_usage(prog, tls_ok, stderr);
            return 2;
        }
        v = argv[++i];
        if (strcmp(f, "--port") == 0) {
            ok = bench_parse_int(v, 0, 65535, &a->port);
        } else if (strcmp(f, "--addr") == 0) {
            a->addr = v;
            ok = *v != '\0';
        } else if (strcmp(f, "--backlog") == 0) {
            ok = bench_parse_int(v, 1, 65535, &a->backlog);
        } else if (strcmp(f, "--max-conns") == 0) {
            ok = bench_parse_int(v, 1, 1000000, &a->max_conns);
        } else if (tls_ok && strcmp(f, "--cert") == 0) {
            a->cert = v;
            ok = *v != '\0';
        } else if (tls_ok && strcmp(f, "--key") == 0) {
            a->key = v;
            ok = *v != '\0';
        } else if (tls_ok && strcmp(f, "--backend") == 0) {
            a->backend = v;
            ok = true;
        } else if (tls_ok && strcmp(f, "--min-version") == 0) {
            ok = parse_version(v, &a->min_version);
        } else if (tls_ok && strcmp(f, "--max-version") == 0) {
            ok = parse_version(v, &a->max_version);
        } else if (tls_ok && strcmp(f, "--max-handshakes") == 0) {
            ok = bench_parse_int(v, 1, 1000000, &a->max_handshakes);
        } else if (tls_ok && strcmp(f, "--handshake-timeout") == 0) {
            ok = bench_parse_int(v, 1, 3600000, &a->handshake_timeout_ms);
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", prog, f);
            server_usage(prog, tls_ok, stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "%s: bad value '%s' for %s\n", prog, v, f);
            return 2;
        }
    }
    if (a->min_version > a->max_version) {
        fprintf(stderr, "%s: --min-version is above --max-version\n", prog);
        return 2;
    }
    if (a->tls && (a->cert == NULL || a->key == NULL)) {
        fprintf(stderr, "%s: --tls needs --cert and --key\n", prog);
        return 2;
    }
    return 0;
}

int bench_listen(const char *prog, const char *addr, int port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char host[INET6_ADDRSTRLEN];
    int one = 1;
    int fd;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, addr,
                         &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in6);
    } else {
        fprintf(stderr, "%s: --addr must be an IP literal: '%s'\n", prog, addr);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        listen(fd, backlog) != 0) {
        fprintf(stderr, "%s: cannot listen on %s port %d: %s\n", prog, addr,
                port, strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        perror("getsockname");
        close(fd);
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        printf("listening on %s:%d\n", host, ntohs(sin->sin_port));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        printf("listening on [%s]:%d\n", host, ntohs(sin6->sin6_port));
    }
    fflush(stdout);
    return fd;
}

int bench_stop_signals(void)
{
    sigset_t set;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        perror("signalfd");
    return fd;
}
