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
 * With --tls BACKEND, the same for idle TLS connections: a forked child
 * (its memory is not in the server's VmRSS) makes N TLS connections, one
 * after the other, with an mbedTLS client (the library's own mbedTLS), and
 * keeps each TCP connection open without a byte after the handshake; the
 * server accepts them with ssock_server_accept() and keeps the sockets:
 *
 *   conns=N backend= mbedtls= version= cert= mfl= ssock_tls_bytes_per_conn=
 *
 * --mfl makes the client ask for a max_fragment_length (RFC 6066, TLS 1.2):
 * with MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH (our mbedTLS 3.6 build) the
 * server then shrinks its 16 KiB record buffers after the handshake.
 *
 *   idle_mem [--conns N] [--tls mbedtls|openssl [--tls-version 1.2|1.3]
 *            [--cert ecdsa|rsa] [--mfl 512|1024|2048|4096]]
 */
#include <ssock/ssock.h>
#include <ssock/tls.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(IDLE_MEM_MBEDTLS_CLIENT)
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif
#endif

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

#if defined(IDLE_MEM_MBEDTLS_CLIENT)
static int fd_send(void *ctx, const unsigned char *buf, size_t len)
{
    ssize_t n = send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EINTR ? MBEDTLS_ERR_SSL_WANT_WRITE
                              : MBEDTLS_ERR_NET_SEND_FAILED;
    return (int)n;
}

static int fd_recv(void *ctx, unsigned char *buf, size_t len)
{
    ssize_t n = recv(*(int *)ctx, buf, len, 0);
    if (n < 0)
        return errno == EINTR ? MBEDTLS_ERR_SSL_WANT_READ
                              : MBEDTLS_ERR_NET_RECV_FAILED;
    return (int)n;
}

/* The child: m TLS clients, one after the other, each left open (TCP only:
 * its mbedTLS context is freed, so the child's memory stays flat). Writes
 * one byte to `ready` when all are connected, then waits for `done` to
 * close. */
static int tls_clients(int port, int m, int tls13, int mfl, int ready, int done)
{
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    struct sockaddr_in sin;
    int *fds = calloc((size_t)m, sizeof(int));
    int rc;
    char c = 1;

#if MBEDTLS_VERSION_MAJOR >= 3
    if (psa_crypto_init() != PSA_SUCCESS)
        return 1;
#endif
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ssl_config_init(&conf);
    if (fds == NULL ||
        mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) ||
        mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
                                    MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        return 1;
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
    if (mfl != 0) {
        /* RFC 6066 codes: 512 -> 1 ... 4096 -> 4 */
        unsigned char code = (unsigned char)(mfl == 512    ? 1
                                             : mfl == 1024 ? 2
                                             : mfl == 2048 ? 3
                                                           : 4);
        if (mbedtls_ssl_conf_max_frag_len(&conf, code) != 0)
            return 1;
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_ssl_conf_min_tls_version(&conf, tls13 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                  : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(&conf, tls13 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                  : MBEDTLS_SSL_VERSION_TLS1_2);
#else
    if (tls13) {
        fprintf(stderr, "idle_mem: mbedTLS %s has no TLS 1.3 client\n",
                MBEDTLS_VERSION_STRING);
        return 1;
    }
    mbedtls_ssl_conf_min_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
#endif
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < m; i++) {
        mbedtls_ssl_context ssl;

        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 ||
            connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)) != 0) {
            perror("idle_mem: connect");
            return 1;
        }
        mbedtls_ssl_init(&ssl);
        rc = mbedtls_ssl_setup(&ssl, &conf);
        if (rc == 0) {
            mbedtls_ssl_set_bio(&ssl, &fds[i], fd_send, fd_recv, NULL);
            do
                rc = mbedtls_ssl_handshake(&ssl);
            while (rc == MBEDTLS_ERR_SSL_WANT_READ ||
                   rc == MBEDTLS_ERR_SSL_WANT_WRITE);
        }
        mbedtls_ssl_free(&ssl);
        if (rc != 0) {
            char msg[160];
            mbedtls_strerror(rc, msg, sizeof(msg));
            fprintf(stderr, "idle_mem: client handshake %d: %s (-0x%04x)\n", i,
                    msg, (unsigned)-rc);
            return 1;
        }
    }
    if (write(ready, &c, 1) != 1)
        return 1;
    while (read(done, &c, 1) < 0 && errno == EINTR)
        ;
    for (int i = 0; i < m; i++)
        close(fds[i]);
    free(fds);
    mbedtls_ssl_config_free(&conf);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_psa_crypto_free();
#endif
    return 0;
}

static int tls_idle(int n, const char *backend, int tls13, const char *cert,
                    int mfl)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    ssock_socket **socks;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    char certf[512], keyf[512];
    int ready[2], done[2];
    int m = n + 1, rc, status = 0;
    long r0 = -1, r1;
    pid_t pid;
    char c;

    snprintf(certf, sizeof(certf), "%s/server-%s.pem", IDLE_MEM_CERTS_DIR,
             cert);
    snprintf(keyf, sizeof(keyf), "%s/server-%s.key", IDLE_MEM_CERTS_DIR, cert);
    ssock_tls_options_init(&t);
    t.backend = ssock_tls_backend_from_name(backend);
    t.cert_file = certf;
    t.key_file = keyf;
    t.min_version = tls13 ? SSOCK_TLS_VERSION_1_3 : SSOCK_TLS_VERSION_1_2;
    rc = ssock_tls_config_new(&cfg, &t, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "idle_mem: tls config: %s: %s\n", ssock_err_name(rc),
                err);
        return 1;
    }
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.port = 0;
    o.backlog = 128;
    o.accept_timeout_ms = 10000;
    o.tls = cfg;
    rc = ssock_server_open(&srv, &o);
    ssock_tls_config_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "idle_mem: open: %s\n", ssock_strerror(rc));
        return 1;
    }
    socks = calloc((size_t)m, sizeof(*socks));
    if (socks == NULL || pipe(ready) != 0 || pipe(done) != 0)
        return 1;
    pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(ready[0]);
        close(done[1]);
        _exit(tls_clients(ssock_server_local_port(srv), m, tls13, mfl, ready[1],
                          done[0]));
    }
    close(ready[1]);
    close(done[0]);
    for (int i = 0; i < m; i++) {
        if (i == 1)
            r0 = vm_rss_kib();
        rc = ssock_server_accept(srv, &socks[i]);
        if (rc != 0) {
            fprintf(stderr, "idle_mem: tls accept %d: %s\n", i,
                    ssock_strerror(rc));
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
            return 1;
        }
    }
    r1 = vm_rss_kib();
    if (read(ready[0], &c, 1) != 1) {
        fputs("idle_mem: TLS clients failed\n", stderr);
        status = 1;
    }
    printf("conns=%d backend=%s mbedtls=%s version=%s cert=%s mfl=%d "
           "ssock_tls_bytes_per_conn=%.0f\n",
           n, backend, SSOCK_MBEDTLS_VERSION_STRING,
           ssock_socket_tls_version(socks[m - 1]), cert, mfl,
           (double)(r1 - r0) * 1024.0 / n);
    close(done[1]);
    if (waitpid(pid, &rc, 0) != pid || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        status = 1;
    for (int i = 0; i < m; i++)
        ssock_socket_free(socks[i]);
    ssock_server_free(srv);
    close(ready[0]);
    free(socks);
    return status;
}
#endif

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

    const char *tls = NULL, *cert = "ecdsa";
    int tls13 = 0, mfl = 0;
    bool ok = true;

    for (int i = 1; ok && i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            ok = false;
        else if (strcmp(argv[i], "--conns") == 0)
            ok = bench_parse_int(v, 1, 100000, &n);
        else if (strcmp(argv[i], "--tls") == 0)
            tls = v;
        else if (strcmp(argv[i], "--tls-version") == 0 &&
                 (strcmp(v, "1.2") == 0 || strcmp(v, "1.3") == 0))
            tls13 = strcmp(v, "1.3") == 0;
        else if (strcmp(argv[i], "--mfl") == 0)
            ok = bench_parse_int(v, 512, 4096, &mfl) &&
                 (mfl == 512 || mfl == 1024 || mfl == 2048 || mfl == 4096);
        else if (strcmp(argv[i], "--cert") == 0 &&
                 (strcmp(v, "ecdsa") == 0 || strcmp(v, "rsa") == 0))
            cert = v;
        else
            ok = false;
    }
    if (!ok) {
        fputs("usage: idle_mem [--conns N] [--tls mbedtls|openssl "
              "[--tls-version 1.2|1.3] [--cert ecdsa|rsa] "
              "[--mfl 512|1024|2048|4096]]\n",
              stderr);
        return 2;
    }
    if (tls != NULL) {
#if defined(IDLE_MEM_MBEDTLS_CLIENT)
        bench_raise_nofile();
        return tls_idle(n, tls, tls13, cert, mfl);
#else
        (void)tls13;
        (void)cert;
        (void)mfl;
        fputs("idle_mem: built without mbedTLS: no TLS client for --tls\n",
              stderr);
        return 2;
#endif
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
