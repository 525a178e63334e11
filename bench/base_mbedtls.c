/*
 * base_mbedtls: the raw mbedTLS baseline (2.28 or 3.6, whichever the
 * library is built with). Accept, handshake, echo.
 * One mbedtls_ssl_config (default preset, own certificate and key,
 * CTR-DRBG seeded from the entropy pool) with the same suites and curves
 * in the same order as ssock's mbedTLS backend, so that both servers do
 * the same cryptography; one mbedtls_ssl_context per connection reaching
 * its socket through send/recv callbacks. mbedTLS 2.28 serves TLS 1.2
 * only; 3.6 serves 1.2 and 1.3 (--min-version/--max-version). See
 * base_tls.h for --serial and --threads.
 *
 *   base_mbedtls --tls --cert F --key F [--min-version 1.2|1.3]
 *                [--max-version 1.2|1.3]
 *                [--handshake-timeout MS] [--serial|--threads] ...
 */
#include "base_tls.h"

#include <errno.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define PROG "base_mbedtls"

static const int suites[] = {
#if MBEDTLS_VERSION_MAJOR >= 3
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0};
#if MBEDTLS_VERSION_MAJOR >= 3
static const uint16_t groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE};
#else
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE};
#endif

struct mctx {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg; /* thread-safe: MBEDTLS_THREADING_C */
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
};

struct msess {
    mbedtls_ssl_context ssl;
    int fd;
};

static int io_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct msess *s = ctx;

    for (;;) {
        ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int io_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct msess *s = ctx;

    for (;;) {
        ssize_t n = recv(s->fd, buf, len, 0);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_READ;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

static void *m_session_new(void *ctx, int fd)
{
    struct mctx *m = ctx;
    struct msess *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->fd = fd;
    mbedtls_ssl_init(&s->ssl);
    if (mbedtls_ssl_setup(&s->ssl, &m->conf) != 0) {
        mbedtls_ssl_free(&s->ssl);
        free(s);
        return NULL;
    }
    mbedtls_ssl_set_bio(&s->ssl, s, io_send, io_recv, NULL);
    return s;
}

static int m_handshake(void *sess)
{
    struct msess *s = sess;
    int r = mbedtls_ssl_handshake(&s->ssl);

    if (r == 0)
        return 0;
    if (r == MBEDTLS_ERR_SSL_WANT_READ)
        return POLLIN;
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return POLLOUT;
    return -1;
}

static long m_read(void *sess, void *buf, size_t len)
{
    struct msess *s = sess;

    for (;;) {
        int n = mbedtls_ssl_read(&s->ssl, buf, len);
        if (n > 0)
            return n;
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        return n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ? 0 : -1;
    }
}

static int m_write(void *sess, const void *buf, size_t len)
{
    struct msess *s = sess;
    const unsigned char *p = buf;

    while (len > 0) {
        int n = mbedtls_ssl_write(&s->ssl, p, len);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void m_session_free(void *sess, int goodbye)
{
    struct msess *s = sess;

    if (goodbye)
        (void)mbedtls_ssl_close_notify(&s->ssl);
    mbedtls_ssl_free(&s->ssl);
    free(s);
}

static const struct base_tls_ops m_ops = {
    .session_new = m_session_new,
    .handshake = m_handshake,
    .read = m_read,
    .write = m_write,
    .session_free = m_session_free,
};

static int fail(const char *what, int err)
{
    char msg[160];

    mbedtls_strerror(err, msg, sizeof(msg));
    fprintf(stderr, PROG ": %s: %s (-0x%04x)\n", what, msg, (unsigned)-err);
    return 1;
}

int main(int argc, char **argv)
{
    static const char pers[] = "ssock-bench-base-mbedtls";
    struct bench_server_args a;
    struct mctx m;
    int rc = bench_parse_server_args(PROG, true, argc, argv, &a);

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (!a.tls) {
        fprintf(stderr, PROG ": only --tls is served (use base_poll_echo)\n");
        return 2;
    }
    if (a.backend != NULL && strcmp(a.backend, "mbedtls") != 0) {
        fprintf(stderr, PROG ": --backend must be mbedtls\n");
        return 2;
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    if (psa_crypto_init() != PSA_SUCCESS) {
        fprintf(stderr, PROG ": psa_crypto_init failed\n");
        return 1;
    }
#else
    if (a.min_version == 13) {
        fprintf(stderr, PROG ": mbedTLS %s has no TLS 1.3 server\n",
                MBEDTLS_VERSION_STRING);
        return 2;
    }
#endif

    mbedtls_entropy_init(&m.entropy);
    mbedtls_ctr_drbg_init(&m.drbg);
    mbedtls_x509_crt_init(&m.crt);
    mbedtls_pk_init(&m.key);
    mbedtls_ssl_config_init(&m.conf);
    rc = mbedtls_ctr_drbg_seed(&m.drbg, mbedtls_entropy_func, &m.entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        rc = fail("seeding the DRBG", rc);
        goto out;
    }
    rc = mbedtls_x509_crt_parse_file(&m.crt, a.cert);
    if (rc != 0) {
        rc = fail(a.cert, rc);
        goto out;
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    rc = mbedtls_pk_parse_keyfile(&m.key, a.key, NULL, mbedtls_ctr_drbg_random,
                                  &m.drbg);
#else
    rc = mbedtls_pk_parse_keyfile(&m.key, a.key, NULL);
#endif
    if (rc != 0) {
        rc = fail(a.key, rc);
        goto out;
    }
    rc = mbedtls_ssl_config_defaults(&m.conf, MBEDTLS_SSL_IS_SERVER,
                                     MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        rc = fail("mbedtls_ssl_config_defaults", rc);
        goto out;
    }
    mbedtls_ssl_conf_rng(&m.conf, mbedtls_ctr_drbg_random, &m.drbg);
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_ssl_conf_min_tls_version(&m.conf, a.min_version == 13
                                                  ? MBEDTLS_SSL_VERSION_TLS1_3
                                                  : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(&m.conf, a.max_version == 12
                                                  ? MBEDTLS_SSL_VERSION_TLS1_2
                                                  : MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_ciphersuites(&m.conf, suites);
    mbedtls_ssl_conf_groups(&m.conf, groups);
#else
    mbedtls_ssl_conf_min_version(&m.conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&m.conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&m.conf, suites);
    mbedtls_ssl_conf_curves(&m.conf, curves);
#endif
    mbedtls_ssl_conf_renegotiation(&m.conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    rc = mbedtls_ssl_conf_own_cert(&m.conf, &m.crt, &m.key);
    if (rc != 0) {
        rc = fail("mbedtls_ssl_conf_own_cert", rc);
        goto out;
    }
    rc = base_tls_run(PROG, &m_ops, &m, &a);
out:
    mbedtls_ssl_config_free(&m.conf);
    mbedtls_pk_free(&m.key);
    mbedtls_x509_crt_free(&m.crt);
    mbedtls_ctr_drbg_free(&m.drbg);
    mbedtls_entropy_free(&m.entropy);
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_psa_crypto_free();
#endif
    return rc;
}
