/*
 * idle_mem: ssock's own memory per accepted plain connection. In one
 * process, N clients connect to a ssock server and to a raw listener on
 * 127.0.0.1; the process's VmRSS is read before and after accepting all N
 * with ssock_server_accept() (handles kept) and with accept4() (fds kept
 * in a preallocated array). Kernel socket memory is not in VmRSS, so the
 * ssock figure is the library's overhead beyond the kernel's:
 *
 *   conns=N ssock_bytes_per_conn= raw_bytes_per_conn=
 *
 * (One warm-up accept on each first, so one-time allocations are not
 * counted; RSS moves in 4 KiB pages, so N should be >= 1000.)
 *
 *   idle_mem [--conns N]
 */
#include <ssock/ssock.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static long vm_rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Connect n clients to 127.0.0.1:port (blocking connect: the kernel
 * completes it from the backlog). */
static bool connect_all(int *fds, int n, int port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 ||
            connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)) != 0) {
            perror("idle_mem: connect");
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    int n = 1000;
    int m; /* n + the warm-up connection */
    int *cli, *raw;
    ssock_socket **socks;
    ssock_server *srv = NULL;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    long r0 = -1, r1, r2 = -1, r3;
    int lfd, rc;

    if (argc == 3 && strcmp(argv[1], "--conns") == 0) {
        if (!bench_parse_int(argv[2], 1, 100000, &n))
            argc = 0;
    }
    if (argc != 1 && argc != 3) {
        fputs("usage: idle_mem [--conns N]\n", stderr);
        return 2;
    }
    m = n + 1;
    bench_raise_nofile();
    cli = calloc((size_t)m, sizeof(int));
    raw = calloc((size_t)m, sizeof(int));
    socks = calloc((size_t)m, sizeof(*socks));
    if (cli == NULL || raw == NULL || socks == NULL)
        return 1;

    /* ssock: backlog m, so every client is queued before accepting. */
    rc = ssock_server_open_backlog(&srv, 0, 2000, m, "127.0.0.1");
    if (rc != 0) {
        fprintf(stderr, "idle_mem: open: %s\n", ssock_strerror(rc));
        return 1;
    }
    if (!connect_all(cli, m, ssock_server_local_port(srv)))
        return 1;
    for (int i = 0; i < m; i++) {
        if (i == 1)
            r0 = vm_rss_kib();
        rc = ssock_server_accept(srv, &socks[i]);
        if (rc != 0) {
            fprintf(stderr, "idle_mem: accept: %s\n", ssock_strerror(rc));
            return 1;
        }
    }
    r1 = vm_rss_kib();
    for (int i = 0; i < m; i++) {
        ssock_socket_free(socks[i]);
        close(cli[i]);
    }
    ssock_server_free(srv);

    /* Raw accept4() into the preallocated array. */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(lfd, m) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
        perror("idle_mem: raw listener");
        return 1;
    }
    if (!connect_all(cli, m, ntohs(sin.sin_port)))
        return 1;
    for (int i = 0; i < m; i++) {
        if (i == 1)
            r2 = vm_rss_kib();
        raw[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (raw[i] < 0) {
            perror("idle_mem: accept4");
            return 1;
        }
    }
    r3 = vm_rss_kib();
    for (int i = 0; i < m; i++) {
        close(raw[i]);
        close(cli[i]);
    }
    close(lfd);

    printf("conns=%d ssock_bytes_per_conn=%.0f raw_bytes_per_conn=%.0f\n", n,
           (double)(r1 - r0) * 1024.0 / n, (double)(r3 - r2) * 1024.0 / n);
    free(cli);
    free(raw);
    free(socks);
    return 0;
}
