/*
 * base_openssl: the raw OpenSSL baseline. Accept, handshake, echo. One
 * SSL_CTX, configured the way ssock's OpenSSL backend is (same suites in
 * the same server-preferred order, same groups, no tickets, no session
 * cache, record buffers released when idle), so that both servers do the
 * same cryptography and only the serving code differs. See base_tls.h for
 * --serial and --threads.
 *
 *   base_openssl --tls --cert F --key F [--min-version 1.2|1.3]
 *                [--max-version 1.2|1.3] [--handshake-timeout MS]
 *                [--serial|--threads] [--port N] [--addr A] ...
 */
#include "base_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#define PROG "base_openssl"

static const char ciphers12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char ciphers13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                "TLS_CHACHA20_POLY1305_SHA256";
static const char groups[] = "X25519:P-256:P-384:P-521";

static void *ossl_session_new(void *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl != NULL && SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ssl = NULL;
    }
    return ssl;
}

static int ossl_handshake(void *sess)
{
    int r;

    ERR_clear_error();
    r = SSL_accept(sess);
    if (r == 1)
        return 0;
    switch (SSL_get_error(sess, r)) {
    case SSL_ERROR_WANT_READ:
        return POLLIN;
    case SSL_ERROR_WANT_WRITE:
        return POLLOUT;
    default:
        return -1;
    }
}

static long ossl_read(void *sess, void *buf, size_t len)
{
    int n;

    ERR_clear_error();
    n = SSL_read(sess, buf, len > 0x7fffffff ? 0x7fffffff : (int)len);
    return n > 0 ? n
                 : (SSL_get_error(sess, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
}

static int ossl_write(void *sess, const void *buf, size_t len)
{
    ERR_clear_error();
    return SSL_write(sess, buf, (int)len) == (int)len ? 0 : -1;
}

static void ossl_session_free(void *sess, int goodbye)
{
    if (goodbye) {
        ERR_clear_error();
        (void)SSL_shutdown(sess);
    }
    SSL_free(sess);
}

static const struct base_tls_ops ossl_ops = {
    .session_new = ossl_session_new,
    .handshake = ossl_handshake,
    .read = ossl_read,
    .write = ossl_write,
    .session_free = ossl_session_free,
};

int main(int argc, char **argv)
{
    struct bench_server_args a;
    SSL_CTX *ctx;
    int rc = bench_parse_server_args(PROG, true, argc, argv, &a);

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (!a.tls) {
        fprintf(stderr, PROG ": only --tls is served (use base_poll_echo)\n");
        return 2;
    }
    if (a.backend != NULL && strcmp(a.backend, "openssl") != 0) {
        fprintf(stderr, PROG ": --backend must be openssl\n");
        return 2;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL ||
        SSL_CTX_set_min_proto_version(
            ctx, a.min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(
            ctx, a.max_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
        fprintf(stderr, PROG ": cannot set up the SSL_CTX\n");
        return 1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    (void)SSL_CTX_set_num_tickets(ctx, 0);
    (void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    (void)SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, ciphers12) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, ciphers13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        fprintf(stderr, PROG ": cannot set the suites or groups\n");
        SSL_CTX_free(ctx);
        return 1;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, a.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, a.key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, PROG ": cannot load %s / %s\n", a.cert, a.key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return 1;
    }
    rc = base_tls_run(PROG, &ossl_ops, ctx, &a);
    SSL_CTX_free(ctx);
    return rc;
}
