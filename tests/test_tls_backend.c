/*
 * test_tls_backend.c — drive each built TLS backend through the internal
 * table (src/tls_backend.h) over a non-blocking socketpair, with an
 * OpenSSL client (blocking, in a thread) on the other end. Also feeds the
 * backends through in-memory io callbacks for the error mappings.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/ssl.h>

#include "ssock/tls.h"
#include "tls_backend.h"

/* Under Valgrind the heavy loops do less work (the checks stay the same). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#ifndef SSOCK_CERTS_DIR
#error "SSOCK_CERTS_DIR must be defined by the build"
#endif

#define OP_TIMEOUT_MS 10000
#define BULK_LEN (1024u * 1024u)

static const int all_backends[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                                   SSOCK_TLS_BACKEND_OPENSSL};

#define FOR_EACH_BACKEND(b)                                                    \
    for (size_t b##_i = 0;                                                     \
         b##_i < sizeof all_backends / sizeof all_backends[0]; b##_i++)        \
        for (int b = all_backends[b##_i], b##_once = 1;                        \
             b##_once && ssock_tls_backend_available(b); b##_once = 0)

#define CERT(name) SSOCK_CERTS_DIR "/" name

#if SSOCK_HAVE_MBEDTLS
/* In every mbedTLS (MBEDTLS_VERSION_C); declared here so that this file
 * does not depend on which mbedTLS headers (2.28 or 3.6) are on the
 * include path. */
unsigned int mbedtls_version_get_number(void);
#else
static unsigned int mbedtls_version_get_number(void)
{
    return 0;
}
#endif

static const char MSG[] = "hello, tls!";

/* ------------------------------------------------------------------ */
/* Client (OpenSSL, blocking, own thread)                              */
/* ------------------------------------------------------------------ */

enum client_mode {
    CLIENT_ECHO,  /* send MSG, expect it back, expect close_notify */
    CLIENT_BULK,  /* read BULK_LEN pattern bytes, expect close_notify */
    CLIENT_CLOSE, /* send close_notify right after the handshake */
    CLIENT_RAW    /* no TLS: send raw bytes, shut down writing, drain */
};

struct client {
    int fd;
    enum client_mode mode;
    const char *cert, *key; /* client certificate, or NULL */
    const char *sni;        /* SNI to send, or NULL */
    const char *alpn;       /* one protocol to offer, or NULL */
    int max_version;        /* 0 = library default */
    const unsigned char *raw;
    size_t raw_len;
    /* results */
    int connected;
    int echo_ok;
    int got_close_notify;
    size_t bulk_got;
    int bulk_ok;
    char version[16];
};

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 31u + 7u) & 0xff);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    struct timeval tv = {OP_TIMEOUT_MS / 1000, 0};
    unsigned char buf[16384];

    sigset_t pipe_set;

    /* OpenSSL's fd BIO uses write(): keep a peer that hung up from raising
     * SIGPIPE, in this thread only (no process-wide change). */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    (void)pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (c->mode == CLIENT_RAW) {
        size_t off = 0;

        while (off < c->raw_len) {
            ssize_t n =
                send(c->fd, c->raw + off, c->raw_len - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        (void)shutdown(c->fd, SHUT_WR);
        while (recv(c->fd, buf, sizeof buf, 0) > 0)
            ;
        return NULL;
    }

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, CERT("ca.pem"), NULL) != 1)
        goto out;
    if (c->max_version != 0)
        (void)SSL_CTX_set_max_proto_version(ctx, c->max_version);
    if (c->cert != NULL &&
        (SSL_CTX_use_certificate_file(ctx, c->cert, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1))
        goto out;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1)
        goto out;
    (void)SSL_set1_host(ssl, "localhost"); /* checks the server's SAN */
    if (c->sni != NULL)
        (void)SSL_set_tlsext_host_name(ssl, c->sni);
    if (c->alpn != NULL) {
        unsigned char wire[256];
        size_t n = strlen(c->alpn);

        wire[0] = (unsigned char)n;
        memcpy(wire + 1, c->alpn, n);
        if (SSL_set_alpn_protos(ssl, wire, (unsigned)(n + 1)) != 0)
            goto out;
    }
    if (SSL_connect(ssl) != 1)
        goto out;
    c->connected = 1;
    (void)snprintf(c->version, sizeof c->version, "%s", SSL_get_version(ssl));

    switch (c->mode) {
    case CLIENT_ECHO: {
        size_t got = 0, n;

        if (SSL_write(ssl, MSG, (int)strlen(MSG)) != (int)strlen(MSG))
            goto out;
        while (got < strlen(MSG)) {
            if (SSL_read_ex(ssl, buf + got, sizeof buf - got, &n) != 1)
                goto out;
            got += n;
        }
        c->echo_ok = got == strlen(MSG) && memcmp(buf, MSG, got) == 0;
        break;
    }
    case CLIENT_BULK: {
        struct timespec nap = {0, 10 * 1000 * 1000};
        size_t n, i;
        int queued = -1, same = 0;

        /* let the server fill the socket first: its writes must block.
         * Wait until the unread bytes stop growing for 100 ms (at most
         * 10 s): a fixed nap was too short under TSan, where encrypting
         * the first buffer-full takes longer than the nap. */
        for (int t = 0; t < 1000 && same < 10; t++) {
            int q = 0;
            (void)nanosleep(&nap, NULL);
            if (ioctl(c->fd, FIONREAD, &q) != 0)
                break;
            same = q > 0 && q == queued ? same + 1 : 0;
            queued = q;
        }
        c->bulk_ok = 1;
        while (c->bulk_got < BULK_LEN) {
            if (SSL_read_ex(ssl, buf, sizeof buf, &n) != 1)
                goto out;
            for (i = 0; i < n; i++)
                if (buf[i] != pattern(c->bulk_got + i))
                    c->bulk_ok = 0;
            c->bulk_got += n;
        }
        break;
    }
    case CLIENT_CLOSE:
        (void)SSL_shutdown(ssl);
        break;
    case CLIENT_RAW:
        break;
    }
    if (c->mode != CLIENT_CLOSE) {
        size_t n;
        int r = SSL_read_ex(ssl, buf, sizeof buf, &n);

        c->got_close_notify =
            r == 0 && SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN;
    }
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Server side: the backend table over a non-blocking fd               */
/* ------------------------------------------------------------------ */

static ssize_t fd_send(void *ctx, const void *buf, size_t len)
{
    return send(*(int *)ctx, buf, len, MSG_NOSIGNAL);
}

static ssize_t fd_recv(void *ctx, void *buf, size_t len)
{
    return recv(*(int *)ctx, buf, len, 0);
}

static int wait_fd(int fd, int want)
{
    struct pollfd p = {fd, want == SSOCK__TLS_WANT_READ ? POLLIN : POLLOUT, 0};
    int r;

    do
        r = poll(&p, 1, OP_TIMEOUT_MS);
    while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : SSOCK_ETIMEOUT;
}

static int srv_handshake(const struct ssock__tls_backend *be, void *s, int fd)
{
    for (;;) {
        int r = be->handshake(s);

        if (r <= 0)
            return r;
        if (wait_fd(fd, r) != 0)
            return SSOCK_ETIMEOUT;
    }
}

static int srv_read(const struct ssock__tls_backend *be, void *s, int fd,
                    void *buf, size_t len, size_t *n)
{
    for (;;) {
        int r = be->read(s, buf, len, n);

        if (r <= 0)
            return r;
        if (wait_fd(fd, r) != 0)
            return SSOCK_ETIMEOUT;
    }
}

/* Write everything; retries after WANT_* with the same remaining bytes.
 * Counts the WANTs so the test knows the retry path ran. */
static int srv_write_all(const struct ssock__tls_backend *be, void *s, int fd,
                         const unsigned char *buf, size_t len, int *wants)
{
    size_t off = 0;

    while (off < len) {
        size_t n = 0;
        int r = be->write(s, buf + off, len - off, &n);

        if (r < 0)
            return r;
        if (r > 0) {
            if (wants != NULL)
                (*wants)++;
            if (wait_fd(fd, r) != 0)
                return SSOCK_ETIMEOUT;
            continue;
        }
        if (n == 0 || n > len - off)
            return SSOCK_ETLS; /* contract broken: 0 must move bytes */
        off += n;
    }
    return 0;
}

static int srv_close_notify(const struct ssock__tls_backend *be, void *s,
                            int fd)
{
    for (;;) {
        int r = be->close_notify(s);

        if (r <= 0)
            return r;
        if (wait_fd(fd, r) != 0)
            return SSOCK_ETIMEOUT;
    }
}

struct server_opts {
    int backend;
    const char *cert, *key, *ca;
    int verify;
    int min_version;
    const char *const *alpn;
    size_t alpn_count;
};

struct outcome {
    int hs; /* handshake result */
    char version[16], cipher[64], alpn[64], sni[256], subject[2048];
    int has_alpn, has_sni, has_subject;
    int echo_rc; /* server-side result of the scenario after hs */
    int write_wants;
    char err[256];
};

static void server_defaults(struct server_opts *so, int backend)
{
    memset(so, 0, sizeof *so);
    so->backend = backend;
    so->cert = CERT("server-ecdsa.pem");
    so->key = CERT("server-ecdsa.key");
    so->min_version = SSOCK_TLS_VERSION_1_2;
}

static void copy_opt(char *dst, size_t n, const char *src, int *has)
{
    *has = src != NULL;
    (void)snprintf(dst, n, "%s", src != NULL ? src : "");
}

static void run(const struct server_opts *so, struct client *cl,
                struct outcome *out)
{
    ssock_tls_options o;
    ssock_tls_config *cfg = NULL;
    const struct ssock__tls_backend *be;
    struct ssock__tls_io io;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    void *sess = NULL;
    pthread_t th;
    int sv[2];

    memset(out, 0, sizeof *out);
    ssock_tls_options_init(&o);
    o.backend = so->backend;
    o.cert_file = so->cert;
    o.key_file = so->key;
    o.ca_file = so->ca;
    o.verify_client = so->verify;
    o.min_version = so->min_version;
    o.alpn = so->alpn;
    o.alpn_count = so->alpn_count;
    if (ssock_tls_config_new(&cfg, &o, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    be = ssock__tls_config_backend(cfg);
    assert_non_null(be);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    {
        int small = 16384; /* small buffers: the bulk test must see WANT */
        assert_int_equal(
            setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
        assert_int_equal(
            setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    }
    cl->fd = sv[1];
    io.ctx = &sv[0];
    io.send = fd_send;
    io.recv = fd_recv;
    assert_int_equal(be->session_new(ssock__tls_config_bcfg(cfg), &io, &sess),
                     0);
    assert_int_equal(pthread_create(&th, NULL, client_main, cl), 0);

    out->hs = srv_handshake(be, sess, sv[0]);
    if (out->hs == 0) {
        struct ssock__tls_info info;
        unsigned char buf[64];
        size_t n = 0, got = 0;

        be->info(sess, &info);
        assert_non_null(info.version);
        assert_non_null(info.cipher);
        (void)snprintf(out->version, sizeof out->version, "%s", info.version);
        (void)snprintf(out->cipher, sizeof out->cipher, "%s", info.cipher);
        copy_opt(out->alpn, sizeof out->alpn, info.alpn, &out->has_alpn);
        copy_opt(out->sni, sizeof out->sni, info.sni, &out->has_sni);
        copy_opt(out->subject, sizeof out->subject, info.peer_subject,
                 &out->has_subject);
        switch (cl->mode) {
        case CLIENT_ECHO:
            /* read 4 bytes first: the rest of the record is pending */
            out->echo_rc = srv_read(be, sess, sv[0], buf, 4, &n);
            if (out->echo_rc != 0)
                break;
            got = n;
            assert_int_equal(n, 4);
            assert_int_equal(be->pending(sess), strlen(MSG) - 4);
            while (got < strlen(MSG) && out->echo_rc == 0) {
                out->echo_rc =
                    srv_read(be, sess, sv[0], buf + got, sizeof buf - got, &n);
                got += n;
            }
            if (out->echo_rc != 0)
                break;
            assert_int_equal(be->pending(sess), 0);
            out->echo_rc = srv_write_all(be, sess, sv[0], buf, got, NULL);
            if (out->echo_rc == 0)
                out->echo_rc = srv_close_notify(be, sess, sv[0]);
            break;
        case CLIENT_BULK: {
            unsigned char *big = malloc(BULK_LEN);
            size_t i;

            assert_non_null(big);
            for (i = 0; i < BULK_LEN; i++)
                big[i] = pattern(i);
            out->echo_rc = srv_write_all(be, sess, sv[0], big, BULK_LEN,
                                         &out->write_wants);
            if (out->echo_rc == 0)
                out->echo_rc = srv_close_notify(be, sess, sv[0]);
            free(big);
            break;
        }
        case CLIENT_CLOSE:
            out->echo_rc = srv_read(be, sess, sv[0], buf, sizeof buf, &n);
            assert_int_equal(n, 0);
            break;
        case CLIENT_RAW:
            break;
        }
    }
    (void)snprintf(out->err, sizeof out->err, "%s", be->session_error(sess));
    if (getenv("SSOCK_TEST_VERBOSE") != NULL)
        fprintf(stderr, "  [%s] hs=%d %s %s alpn=%s sni=%s subject=%s err=%s\n",
                be->name, out->hs, out->version, out->cipher, out->alpn,
                out->sni, out->subject, out->err);
    /* Close our end: a client still waiting sees EOF and ends. */
    (void)shutdown(sv[0], SHUT_RDWR);
    assert_int_equal(pthread_join(th, NULL), 0);
    be->session_free(sess);
    ssock_tls_config_free(cfg);
    close(sv[0]);
    close(sv[1]);
}

/* Does this backend, as built, do TLS 1.3 (OpenSSL 3, mbedTLS 3.6; not
 * mbedTLS 2.28)? Asked the way a user would: a TLS 1.3-only config.
 * test_tls_config checks that the refusal is SSOCK_EVERSION. */
static int has_tls13(int backend)
{
    ssock_tls_options o;
    ssock_tls_config *cfg = NULL;
    int rc;

    ssock_tls_options_init(&o);
    o.backend = backend;
    o.cert_file = CERT("server-ecdsa.pem");
    o.key_file = CERT("server-ecdsa.key");
    o.min_version = SSOCK_TLS_VERSION_1_3;
    rc = ssock_tls_config_new(&cfg, &o, NULL, 0);
    ssock_tls_config_free(cfg);
    if (rc != 0 && rc != SSOCK_EVERSION)
        fail_msg("TLS 1.3 config: %d", rc);
    return rc == 0;
}

/* The TLS 1.3 suite chosen with an OpenSSL client's default offer
 * (AES-256 first): OpenSSL's server follows its own order (AES-128 first);
 * mbedTLS 3.6 takes the first suite of the client's list it supports. */
static const char *tls13_cipher(int backend)
{
    return backend == SSOCK_TLS_BACKEND_OPENSSL ? "TLS_AES_128_GCM_SHA256"
                                                : "TLS_AES_256_GCM_SHA384";
}

static void client_init(struct client *c, enum client_mode mode)
{
    memset(c, 0, sizeof *c);
    c->mode = mode;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void test_echo_each_cert(void **state)
{
    static const struct {
        const char *cert, *key, *cipher12;
    } certs[] = {
        {CERT("server-ecdsa.pem"), CERT("server-ecdsa.key"),
         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
        {CERT("server-rsa.pem"), CERT("server-rsa.key"),
         "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    };
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        for (size_t i = 0; i < 2; i++) {
            struct server_opts so;
            struct client cl;
            struct outcome out;

            server_defaults(&so, b);
            so.cert = certs[i].cert;
            so.key = certs[i].key;
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = TLS1_2_VERSION;
            run(&so, &cl, &out);
            if (out.hs != 0)
                fail_msg("%s %s: handshake %d: %s", ssock_tls_backend_name(b),
                         so.cert, out.hs, out.err);
            assert_int_equal(out.echo_rc, 0);
            assert_true(cl.connected);
            assert_true(cl.echo_ok);
            assert_true(cl.got_close_notify);
            assert_string_equal(out.version, "TLSv1.2");
            assert_string_equal(cl.version, "TLSv1.2");
            assert_string_equal(out.cipher, certs[i].cipher12);
            assert_false(out.has_alpn);
            assert_false(out.has_sni);
            assert_false(out.has_subject);

            /* the client's own default (TLS 1.3 where the backend has it) */
            client_init(&cl, CLIENT_ECHO);
            run(&so, &cl, &out);
            assert_int_equal(out.hs, 0);
            assert_true(cl.echo_ok);
            assert_true(cl.got_close_notify);
            if (has_tls13(b)) {
                assert_string_equal(out.version, "TLSv1.3");
                assert_string_equal(out.cipher, tls13_cipher(b));
            } else {
                assert_string_equal(out.version, "TLSv1.2");
            }
        }
    }
}

static void test_tls13(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        struct server_opts so;
        struct client cl;
        struct outcome out;

        if (!has_tls13(b)) {
            /* only mbedTLS 2.28 lacks it (test_tls_config: SSOCK_EVERSION) */
            assert_int_equal(b, SSOCK_TLS_BACKEND_MBEDTLS);
            assert_true(mbedtls_version_get_number() < 0x03000000u);
            continue;
        }
        for (int rsa = 0; rsa <= 1; rsa++) {
            server_defaults(&so, b);
            if (rsa) {
                so.cert = CERT("server-rsa.pem");
                so.key = CERT("server-rsa.key");
            }
            so.min_version = SSOCK_TLS_VERSION_1_3;
            client_init(&cl, CLIENT_ECHO);
            run(&so, &cl, &out);
            if (out.hs != 0)
                fail_msg("%s %s: %d %s", ssock_tls_backend_name(b), so.cert,
                         out.hs, out.err);
            assert_string_equal(out.version, "TLSv1.3");
            assert_string_equal(cl.version, "TLSv1.3");
            assert_string_equal(out.cipher, tls13_cipher(b));
            assert_true(cl.echo_ok);
            assert_true(cl.got_close_notify);

            /* a TLS 1.2-only client is refused by a 1.3-only server */
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = TLS1_2_VERSION;
            run(&so, &cl, &out);
            assert_int_equal(out.hs, SSOCK_ETLS);
            assert_false(cl.connected);
            assert_true(out.err[0] != '\0');
        }
    }
}

static void test_bulk_write_retry(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        struct server_opts so;
        struct client cl;
        struct outcome out;

        server_defaults(&so, b);
        client_init(&cl, CLIENT_BULK);
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_int_equal(out.echo_rc, 0);
        assert_int_equal(cl.bulk_got, BULK_LEN);
        assert_true(cl.bulk_ok);
        assert_true(cl.got_close_notify);
        /* 1 MiB does not fit a socketpair buffer: WANT_WRITE happened */
        assert_true(out.write_wants > 0);
    }
}

static void test_client_close_notify(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        struct server_opts so;
        struct client cl;
        struct outcome out;

        server_defaults(&so, b);
        client_init(&cl, CLIENT_CLOSE);
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_int_equal(out.echo_rc, SSOCK_EOF);
    }
}

static void test_alpn(void **state)
{
    static const char *const protos[] = {"h2", "http/1.1"};

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        struct server_opts so;
        struct client cl;
        struct outcome out;

        server_defaults(&so, b);
        so.alpn = protos;
        so.alpn_count = 2;

        client_init(&cl, CLIENT_ECHO);
        cl.alpn = "http/1.1";
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_true(out.has_alpn);
        assert_string_equal(out.alpn, "http/1.1");
        assert_true(cl.echo_ok);

        client_init(&cl, CLIENT_ECHO);
        cl.alpn = "h2";
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_string_equal(out.alpn, "h2");

        /* no ALPN offered: accepted, none selected */
        client_init(&cl, CLIENT_ECHO);
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_false(out.has_alpn);

        /* nothing in common: the handshake fails */
        client_init(&cl, CLIENT_ECHO);
        cl.alpn = "spdy/3";
        run(&so, &cl, &out);
        assert_int_equal(out.hs, SSOCK_ETLS);
        assert_false(cl.connected);

        /* server without ALPN ignores the client's list */
        server_defaults(&so, b);
        client_init(&cl, CLIENT_ECHO);
        cl.alpn = "h2";
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_false(out.has_alpn);
    }
}

static void test_sni(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        struct server_opts so;
        struct client cl;
        struct outcome out;

        server_defaults(&so, b);
        client_init(&cl, CLIENT_ECHO);
        cl.sni = "localhost";
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_true(out.has_sni);
        assert_string_equal(out.sni, "localhost");

        /* any name is recorded; the one certificate is served */
        client_init(&cl, CLIENT_ECHO);
        cl.sni = "www.example.test";
        run(&so, &cl, &out);
        assert_int_equal(out.hs, 0);
        assert_string_equal(out.sni, "www.example.test");
    }
}

static void test_mutual_tls(void **state)
{
    static const char subject[] = "O=ssock DEV-TEST ONLY, CN=ssock test client";

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        for (int max = 0; max <= 1; max++) {
            int maxv = max ? TLS1_2_VERSION : 0;
            struct server_opts so;
            struct client cl;
            struct outcome out;

            server_defaults(&so, b);
            so.ca = CERT("ca.pem");
            so.verify = SSOCK_TLS_VERIFY_REQUIRED;

            /* good client certificate */
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            cl.cert = CERT("client.pem");
            cl.key = CERT("client.key");
            run(&so, &cl, &out);
            if (out.hs != 0)
                fail_msg("%s: %d %s", ssock_tls_backend_name(b), out.hs,
                         out.err);
            assert_true(cl.echo_ok);
            assert_true(out.has_subject);
            assert_string_equal(out.subject, subject);

            /* none: required -> fail */
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            run(&so, &cl, &out);
            assert_int_equal(out.hs, SSOCK_ETLS);
            assert_false(cl.echo_ok);
            assert_true(out.err[0] != '\0');

            /* signed by an unknown CA -> fail */
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            cl.cert = CERT("client-unknown.pem");
            cl.key = CERT("client-unknown.key");
            run(&so, &cl, &out);
            assert_int_equal(out.hs, SSOCK_ETLS);
            assert_false(cl.echo_ok);

            /* optional: none is fine, subject NULL */
            so.verify = SSOCK_TLS_VERIFY_OPTIONAL;
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            run(&so, &cl, &out);
            assert_int_equal(out.hs, 0);
            assert_true(cl.echo_ok);
            assert_false(out.has_subject);

            /* optional: a good one is verified and reported */
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            cl.cert = CERT("client.pem");
            cl.key = CERT("client.key");
            run(&so, &cl, &out);
            assert_int_equal(out.hs, 0);
            assert_string_equal(out.subject, subject);

            /* optional: a bad one still fails */
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            cl.cert = CERT("client-unknown.pem");
            cl.key = CERT("client-unknown.key");
            run(&so, &cl, &out);
            assert_int_equal(out.hs, SSOCK_ETLS);
            assert_false(cl.echo_ok);

            /* verify none: a client certificate is not even asked for */
            so.verify = SSOCK_TLS_VERIFY_NONE;
            client_init(&cl, CLIENT_ECHO);
            cl.max_version = maxv;
            cl.cert = CERT("client.pem");
            cl.key = CERT("client.key");
            run(&so, &cl, &out);
            assert_int_equal(out.hs, 0);
            assert_false(out.has_subject);
        }
    }
}

/* Issue 8 item 10: a client certificate whose extendedKeyUsage lacks
 * clientAuth, or whose keyUsage lacks digitalSignature, is refused by both
 * backends, with verification OPTIONAL as well as REQUIRED, TLS 1.2 and
 * the client's default version. */
static void test_client_cert_usage(void **state)
{
    static const char *const bad[][2] = {
        {CERT("client-serverauth.pem"), CERT("client-serverauth.key")},
        {CERT("client-nodigsig.pem"), CERT("client-nodigsig.key")},
        {CERT("client-anyeku.pem"), CERT("client-anyeku.key")},
    };

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        for (int v = SSOCK_TLS_VERIFY_OPTIONAL; v <= SSOCK_TLS_VERIFY_REQUIRED;
             v++) {
            for (int max = 0; max <= 1; max++) {
                for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
                    struct server_opts so;
                    struct client cl;
                    struct outcome out;

                    server_defaults(&so, b);
                    so.ca = CERT("ca.pem");
                    so.verify = v;
                    client_init(&cl, CLIENT_ECHO);
                    cl.max_version = max ? TLS1_2_VERSION : 0;
                    cl.cert = bad[k][0];
                    cl.key = bad[k][1];
                    run(&so, &cl, &out);
                    if (out.hs != SSOCK_ETLS)
                        fail_msg("%s verify %d max %d %s: handshake %d "
                                 "(want SSOCK_ETLS) subject '%s' err '%s'",
                                 ssock_tls_backend_name(b), v, max, bad[k][0],
                                 out.hs, out.subject, out.err);
                    assert_false(cl.echo_ok);
                    assert_false(out.has_subject);
                    assert_true(out.err[0] != '\0');
                }
                /* the good client still passes with the same server */
                if (max == 0) {
                    struct server_opts so;
                    struct client cl;
                    struct outcome out;

                    server_defaults(&so, b);
                    so.ca = CERT("ca.pem");
                    so.verify = v;
                    client_init(&cl, CLIENT_ECHO);
                    cl.max_version = max ? TLS1_2_VERSION : 0;
                    cl.cert = CERT("client.pem");
                    cl.key = CERT("client.key");
                    run(&so, &cl, &out);
                    assert_int_equal(out.hs, 0);
                    assert_true(cl.echo_ok);
                    assert_true(out.has_subject);
                }
            }
        }
    }
}

/* Issue 8 item 11: a verified client whose subject formats to more than
 * 512 characters gets its whole subject, on both backends. */
static void test_long_subject(void **state)
{
    char want[2048];
    size_t at;

    (void)state;
    at = (size_t)snprintf(want, sizeof want, "O=ssock DEV-TEST ONLY");
    for (int i = 1; i <= 12; i++)
        at += (size_t)snprintf(
            want + at, sizeof want - at,
            ", OU=ssock long subject test unit %02d ......................", i);
    (void)snprintf(want + at, sizeof want - at,
                   ", CN=ssock long subject client");
    assert_true(strlen(want) > 512);
    FOR_EACH_BACKEND(b)
    {
        for (int v = SSOCK_TLS_VERIFY_OPTIONAL; v <= SSOCK_TLS_VERIFY_REQUIRED;
             v++) {
            struct server_opts so;
            struct client cl;
            struct outcome out;

            server_defaults(&so, b);
            so.ca = CERT("ca.pem");
            so.verify = v;
            client_init(&cl, CLIENT_ECHO);
            cl.cert = CERT("client-long.pem");
            cl.key = CERT("client-long.key");
            run(&so, &cl, &out);
            if (out.hs != 0)
                fail_msg("%s: handshake %d: %s", ssock_tls_backend_name(b),
                         out.hs, out.err);
            assert_true(cl.echo_ok);
            if (!out.has_subject)
                fail_msg("%s: no subject for a verified long-subject client",
                         ssock_tls_backend_name(b));
            assert_string_equal(out.subject, want);
        }
    }
}

static void test_not_tls(void **state)
{
    static const char http[] =
        "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n";
    unsigned char rnd[4096];
    uint32_t x = 0x12345678u; /* fixed seed: deterministic */
    size_t i;

    (void)state;
    for (i = 0; i < sizeof rnd; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        rnd[i] = (unsigned char)x;
    }
    FOR_EACH_BACKEND(b)
    {
        struct server_opts so;
        struct client cl;
        struct outcome out;

        server_defaults(&so, b);

        client_init(&cl, CLIENT_RAW);
        cl.raw = (const unsigned char *)http;
        cl.raw_len = strlen(http);
        run(&so, &cl, &out);
        if (out.hs >= 0 || out.hs == SSOCK_ETIMEOUT)
            fail_msg("%s: plain HTTP gave %d", ssock_tls_backend_name(b),
                     out.hs);
        assert_int_equal(out.hs, SSOCK_ETLS);
        assert_true(out.err[0] != '\0');

        client_init(&cl, CLIENT_RAW);
        cl.raw = rnd;
        cl.raw_len = sizeof rnd;
        run(&so, &cl, &out);
        assert_true(out.hs < 0 && out.hs != SSOCK_ETIMEOUT);

        /* connect and close at once: end of stream */
        client_init(&cl, CLIENT_RAW);
        cl.raw_len = 0;
        run(&so, &cl, &out);
        assert_int_equal(out.hs, SSOCK_EOF);

        /* a truncated ClientHello, then close */
        client_init(&cl, CLIENT_RAW);
        cl.raw = (const unsigned char *)"\x16\x03\x01\x02\x00\x01\x00\x01\xfc"
                                        "\x03\x03";
        cl.raw_len = 11;
        run(&so, &cl, &out);
        assert_true(out.hs < 0 && out.hs != SSOCK_ETIMEOUT);
    }
}

/* In-memory io: the backends reach nothing but these callbacks. */
struct memio {
    int recv_errno; /* 0: EOF */
    int send_errno;
    int sends;
};

static ssize_t mem_send(void *ctx, const void *buf, size_t len)
{
    struct memio *m = ctx;

    (void)buf;
    m->sends++;
    if (m->send_errno != 0) {
        errno = m->send_errno;
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t mem_recv(void *ctx, void *buf, size_t len)
{
    struct memio *m = ctx;

    (void)buf;
    (void)len;
    if (m->recv_errno != 0) {
        errno = m->recv_errno;
        return -1;
    }
    return 0;
}

static void test_io_errors(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        ssock_tls_options o;
        ssock_tls_config *cfg;
        const struct ssock__tls_backend *be;
        struct ssock__tls_io io = {NULL, mem_send, mem_recv};
        struct memio m;
        struct ssock__tls_info info;
        void *s;
        size_t n = 99;
        char c;

        ssock_tls_options_init(&o);
        o.backend = b;
        o.cert_file = CERT("server-ecdsa.pem");
        o.key_file = CERT("server-ecdsa.key");
        assert_int_equal(ssock_tls_config_new(&cfg, &o, NULL, 0), 0);
        be = ssock__tls_config_backend(cfg);
        io.ctx = &m;

        /* would block -> WANT_READ, repeatedly, no error text */
        memset(&m, 0, sizeof m);
        m.recv_errno = EAGAIN;
        assert_int_equal(be->session_new(ssock__tls_config_bcfg(cfg), &io, &s),
                         0);
        assert_int_equal(be->handshake(s), SSOCK__TLS_WANT_READ);
        assert_int_equal(be->handshake(s), SSOCK__TLS_WANT_READ);
        m.recv_errno = EINTR; /* treated as "try again" */
        assert_int_equal(be->handshake(s), SSOCK__TLS_WANT_READ);
        /* info before the handshake: nothing known yet */
        be->info(s, &info);
        assert_null(info.version);
        assert_null(info.cipher);
        assert_null(info.sni);
        assert_int_equal(be->pending(s), 0);
        /* then a reset -> -ECONNRESET */
        m.recv_errno = ECONNRESET;
        assert_int_equal(be->handshake(s), -ECONNRESET);
        assert_non_null(strstr(be->session_error(s), "reset"));
        be->session_free(s);

        /* EOF before anything: the handshake says SSOCK_EOF; a read
         * says SSOCK_ETRUNCATED (the transport ended, no close_notify) */
        memset(&m, 0, sizeof m);
        assert_int_equal(be->session_new(ssock__tls_config_bcfg(cfg), &io, &s),
                         0);
        assert_int_equal(be->handshake(s), SSOCK_EOF);
        assert_int_equal(be->read(s, &c, 1, &n), SSOCK_ETRUNCATED);
        assert_int_equal(n, 0);
        be->session_free(s);
        be->session_free(NULL);

        ssock_tls_config_free(cfg);
    }
}

static void test_session_lifetime(void **state)
{
    /* a session outlives the user's config handle when a ref is held */
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        ssock_tls_options o;
        ssock_tls_config *cfg, *ref;
        const struct ssock__tls_backend *be;
        struct ssock__tls_io io = {NULL, mem_send, mem_recv};
        struct memio m = {EAGAIN, 0, 0};
        void *s;

        ssock_tls_options_init(&o);
        o.backend = b;
        o.cert_file = CERT("server-rsa.pem");
        o.key_file = CERT("server-rsa.key");
        assert_int_equal(ssock_tls_config_new(&cfg, &o, NULL, 0), 0);
        ref = ssock__tls_config_ref(cfg);
        ssock_tls_config_free(cfg);
        be = ssock__tls_config_backend(ref);
        io.ctx = &m;
        assert_int_equal(be->session_new(ssock__tls_config_bcfg(ref), &io, &s),
                         0);
        assert_int_equal(be->handshake(s), SSOCK__TLS_WANT_READ);
        be->session_free(s);
        ssock__tls_config_unref(ref);
    }
}

/* Many sessions of ONE configuration on several threads at once (the
 * shared DRBG, certificate and key must be thread-safe). No cmocka asserts
 * off the main thread: workers count failures. */
#define WORKERS 4
#define ROUNDS 6

struct worker {
    ssock_tls_config *cfg;
    int ok;
};

static int echo_once(ssock_tls_config *cfg)
{
    const struct ssock__tls_backend *be = ssock__tls_config_backend(cfg);
    struct ssock__tls_io io;
    struct client cl;
    unsigned char buf[64];
    size_t n = 0, got = 0;
    void *sess = NULL;
    pthread_t th;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
        return 0;
    client_init(&cl, CLIENT_ECHO);
    cl.fd = sv[1];
    io.ctx = &sv[0];
    io.send = fd_send;
    io.recv = fd_recv;
    if (be->session_new(ssock__tls_config_bcfg(cfg), &io, &sess) != 0)
        return 0;
    if (pthread_create(&th, NULL, client_main, &cl) != 0)
        return 0;
    rc = srv_handshake(be, sess, sv[0]);
    while (rc == 0 && got < strlen(MSG)) {
        rc = srv_read(be, sess, sv[0], buf + got, sizeof buf - got, &n);
        got += n;
    }
    if (rc == 0)
        rc = srv_write_all(be, sess, sv[0], buf, got, NULL);
    if (rc == 0)
        rc = srv_close_notify(be, sess, sv[0]);
    (void)shutdown(sv[0], SHUT_RDWR);
    (void)pthread_join(th, NULL);
    be->session_free(sess);
    close(sv[0]);
    close(sv[1]);
    return rc == 0 && cl.echo_ok && cl.got_close_notify;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < ROUNDS; i++)
        w->ok += echo_once(w->cfg);
    OPENSSL_thread_stop();
    return NULL;
}

/* Issue 8 item 14: configurations built and freed in a loop do not use up
 * anything process-wide (OpenSSL: one BIO_METHOD per process; a BIO index
 * per config would hit OpenSSL's limit of 255 after a few hundred), and
 * sessions still open and complete afterwards. */
static void test_many_configs(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        /* 400 > 255 (newer OpenSSL's last BIO index); the index count
         * below catches a per-config BIO_METHOD with any count, so Valgrind
         * runs 40 */
        int rounds = b != SSOCK_TLS_BACKEND_OPENSSL ? 20
                     : RUNNING_ON_VALGRIND          ? 40
                                                    : 400;
        ssock_tls_options o;
        char err[SSOCK_TLS_ERRBUF_SIZE];
        /* BIO indexes are process-wide and never given back: count how
         * many the loop takes (at most one, the first time: OpenSSL 3.0
         * does not yet refuse indexes above 255, so this is what fails
         * there when each config takes its own). */
        int idx0 = BIO_get_new_index(), idx1;

        ssock_tls_options_init(&o);
        o.backend = b;
        o.cert_file = CERT("server-ecdsa.pem");
        o.key_file = CERT("server-ecdsa.key");
        for (int i = 0; i < rounds; i++) {
            ssock_tls_config *cfg = NULL;
            const struct ssock__tls_backend *be;
            struct ssock__tls_io io = {NULL, mem_send, mem_recv};
            struct memio m = {EAGAIN, 0, 0};
            void *s = NULL;
            int rc = ssock_tls_config_new(&cfg, &o, err, sizeof err);

            if (rc != 0)
                fail_msg("%s: config #%d: %d %s", ssock_tls_backend_name(b), i,
                         rc, err);
            be = ssock__tls_config_backend(cfg);
            io.ctx = &m;
            rc = be->session_new(ssock__tls_config_bcfg(cfg), &io, &s);
            if (rc != 0)
                fail_msg("%s: session of config #%d: %d",
                         ssock_tls_backend_name(b), i, rc);
            assert_int_equal(be->handshake(s), SSOCK__TLS_WANT_READ);
            be->session_free(s);
            ssock_tls_config_free(cfg);
        }
        idx1 = BIO_get_new_index();
        assert_true(idx0 > 0);
        if (idx1 - idx0 > 2)
            fail_msg("%s: %d configs took %d BIO indexes",
                     ssock_tls_backend_name(b), rounds, idx1 - idx0 - 1);
        /* and a real handshake afterwards */
        {
            struct server_opts so;
            struct client cl;
            struct outcome out;

            server_defaults(&so, b);
            client_init(&cl, CLIENT_ECHO);
            run(&so, &cl, &out);
            assert_int_equal(out.hs, 0);
            assert_true(cl.echo_ok);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Floods (issue 8 item 4): empty records, ChangeCipherSpec, 1-byte    */
/* handshake fragments, warning alerts, KeyUpdate storms               */
/* ------------------------------------------------------------------ */

/*
 * The acceptor gives every backend call (handshake step or read) a budget
 * of transport reads: after FLOOD_BUDGET recv() calls within one call the
 * transport says EAGAIN. These tests put the same budget in their recv
 * callback and check, for each flood, that the backend call comes back
 * (WANT_READ) instead of spinning inside the backend, and that the
 * connection then completes (echo) or fails cleanly with SSOCK_ETLS.
 */
#define FLOOD_BUDGET 64
/* ...and of bytes, as src/tls_socket.c (RECV_BYTES_BUDGET): with OpenSSL's
 * read-ahead during the handshake one recv() brings many tiny records. */
#define FLOOD_BYTES_BUDGET (2 * (16384 + 2048))
#define FLOOD_RECORDS 3000
#define FLOOD_MAX_CALLS 200000

enum flood_kind {
    /* plaintext, before the ClientHello */
    FLOOD_PRE_EMPTY_HS,   /* handshake records of length 0 */
    FLOOD_PRE_EMPTY_APP,  /* application_data records of length 0 */
    FLOOD_PRE_CCS,        /* ChangeCipherSpec records */
    FLOOD_PRE_WARN_ALERT, /* warning alerts (unrecognized_name) */
    FLOOD_FRAG1,          /* the ClientHello in 1-byte records */
    /* encrypted (TLS 1.2, AES-128-GCM), after the handshake */
    FLOOD_POST_EMPTY,      /* application_data records of length 0 */
    FLOOD_POST_WARN_ALERT, /* warning alerts */
    FLOOD_POST_CCS,        /* ChangeCipherSpec */
    /* TLS 1.3 after the handshake (OpenSSL only) */
    FLOOD_POST_KEYUPDATE /* KeyUpdate(update_not_requested) */
};

static const char *const flood_names[] = {
    "pre-handshake empty handshake records",
    "pre-handshake empty application records",
    "pre-handshake ChangeCipherSpec",
    "pre-handshake warning alerts",
    "ClientHello in 1-byte fragments",
    "post-handshake empty application records",
    "post-handshake warning alerts",
    "post-handshake ChangeCipherSpec",
    "post-handshake KeyUpdate storm",
};

struct budget_io {
    int fd;
    int calls;    /* recv calls in the current backend call */
    size_t bytes; /* bytes received in the current backend call */
    int hits;     /* times the budget said EAGAIN */
    long total;
};

static ssize_t budget_send(void *ctx, const void *buf, size_t len)
{
    struct budget_io *b = ctx;

    return send(b->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t budget_recv(void *ctx, void *buf, size_t len)
{
    struct budget_io *b = ctx;

    if (b->calls >= FLOOD_BUDGET || b->bytes >= FLOOD_BYTES_BUDGET) {
        b->hits++;
        errno = EAGAIN;
        return -1;
    }
    b->calls++;
    b->total++;
    if (len > FLOOD_BYTES_BUDGET - b->bytes)
        len = FLOOD_BYTES_BUDGET - b->bytes;
    ssize_t n = recv(b->fd, buf, len, 0);
    if (n > 0)
        b->bytes += (size_t)n;
    return n;
}

struct flood_client {
    int fd;
    enum flood_kind kind;
    int records;
    int tls13;
    int connected, echo_ok;
    /* set (under mu) once the whole flood is in the socket, or the client
     * gave up: the server starts reading only then, so every flood is
     * read from a full buffer and the budget is reached deterministically */
    int sent_all;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char why[128];
};

static int send_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Plain records of one kind, `count` of them, in one buffer. */
static int send_plain_flood(int fd, enum flood_kind k, int count)
{
    unsigned char rec[7];
    size_t rlen;
    unsigned char *buf;
    int rc;

    switch (k) {
    case FLOOD_PRE_EMPTY_HS:
        memcpy(rec, "\x16\x03\x01\x00\x00", 5);
        rlen = 5;
        break;
    case FLOOD_PRE_EMPTY_APP:
        memcpy(rec, "\x17\x03\x01\x00\x00", 5);
        rlen = 5;
        break;
    case FLOOD_PRE_CCS:
        memcpy(rec, "\x14\x03\x01\x00\x01\x01", 6);
        rlen = 6;
        break;
    default: /* warning alert, unrecognized_name (112) */
        memcpy(rec, "\x15\x03\x01\x00\x02\x01\x70", 7);
        rlen = 7;
        break;
    }
    buf = malloc(rlen * (size_t)count);
    if (buf == NULL)
        return -1;
    for (int i = 0; i < count; i++)
        memcpy(buf + rlen * (size_t)i, rec, rlen);
    rc = send_all(fd, buf, rlen * (size_t)count);
    free(buf);
    return rc;
}

/* TLS 1.2 AES-128-GCM client write state, derived from the session. */
struct gcm_writer {
    unsigned char key[16], salt[4];
    uint64_t seq;
};

static int gcm_derive(SSL *ssl, struct gcm_writer *g)
{
    unsigned char ms[48], seed[13 + 64], kb[40];
    size_t mslen;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM p[4];
    int ok = 0;

    mslen = SSL_SESSION_get_master_key(SSL_get_session(ssl), ms, sizeof ms);
    memcpy(seed, "key expansion", 13);
    if (mslen != 48 || SSL_get_server_random(ssl, seed + 13, 32) != 32 ||
        SSL_get_client_random(ssl, seed + 45, 32) != 32 || kctx == NULL)
        goto out;
    p[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string("secret", ms, mslen);
    p[2] = OSSL_PARAM_construct_octet_string("seed", seed, sizeof seed);
    p[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, kb, sizeof kb, p) != 1)
        goto out;
    /* client_write_key, server_write_key, client_write_IV, server_IV */
    memcpy(g->key, kb, 16);
    memcpy(g->salt, kb + 32, 4);
    g->seq = 1; /* the client's Finished was record 0 */
    ok = 1;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ok;
}

/* One encrypted record of `type` with `len` bytes of plaintext. */
static int gcm_record(struct gcm_writer *g, int type, const unsigned char *pt,
                      size_t len, unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    unsigned char nonce[12], aad[13];
    int n = 0, ok = 0;

    if (c == NULL)
        return 0;
    for (int i = 0; i < 8; i++) {
        unsigned char b = (unsigned char)(g->seq >> (56 - 8 * i));
        nonce[4 + i] = b;
        aad[i] = b;
    }
    memcpy(nonce, g->salt, 4);
    aad[8] = (unsigned char)type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = (unsigned char)(len >> 8);
    aad[12] = (unsigned char)len;
    out[0] = (unsigned char)type;
    out[1] = 3;
    out[2] = 3;
    out[3] = (unsigned char)((8 + len + 16) >> 8);
    out[4] = (unsigned char)(8 + len + 16);
    memcpy(out + 5, nonce + 4, 8);
    if (EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, g->key, nonce) != 1 ||
        EVP_EncryptUpdate(c, NULL, &n, aad, sizeof aad) != 1 ||
        (len > 0 && EVP_EncryptUpdate(c, out + 13, &n, pt, (int)len) != 1) ||
        EVP_EncryptFinal_ex(c, out + 13 + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 13 + len) != 1)
        goto out;
    *outlen = 13 + len + 16;
    g->seq++;
    ok = 1;
out:
    EVP_CIPHER_CTX_free(c);
    return ok;
}

static int send_encrypted_flood(SSL *ssl, int fd, enum flood_kind k, int count)
{
    static const unsigned char alert[2] = {1, 112}, ccs[1] = {1};
    struct gcm_writer g;
    unsigned char *buf, *p;
    size_t one, cap;
    int rc = -1;

    if (!gcm_derive(ssl, &g))
        return -1;
    cap = (size_t)(count + 1) * (13 + 16 + 64);
    buf = malloc(cap);
    if (buf == NULL)
        return -1;
    p = buf;
    for (int i = 0; i < count; i++) {
        int ok = k == FLOOD_POST_EMPTY ? gcm_record(&g, 23, NULL, 0, p, &one)
                 : k == FLOOD_POST_WARN_ALERT
                     ? gcm_record(&g, 21, alert, sizeof alert, p, &one)
                     : gcm_record(&g, 20, ccs, sizeof ccs, p, &one);
        if (!ok)
            goto out;
        p += one;
    }
    /* then the message itself, encrypted the same way */
    if (!gcm_record(&g, 23, (const unsigned char *)MSG, strlen(MSG), p, &one))
        goto out;
    p += one;
    rc = send_all(fd, buf, (size_t)(p - buf));
out:
    free(buf);
    return rc;
}

/* Client over memory BIOs: everything it writes goes through here, so the
 * first flight (the ClientHello) can be cut into 1-byte records. */
static int pump_out(BIO *wb, int fd, int *frag1)
{
    char *d;
    long n = BIO_get_mem_data(wb, &d);
    int rc = 0;

    if (n <= 0)
        return 0;
    if (*frag1) {
        const unsigned char *u = (const unsigned char *)d;
        long off = 0;

        while (rc == 0 && off + 5 <= n) {
            size_t body = ((size_t)u[off + 3] << 8) | u[off + 4];

            for (size_t i = 0; rc == 0 && i < body; i++) {
                unsigned char r[6] = {u[off], u[off + 1], u[off + 2],
                                      0,      1,          u[off + 5 + (long)i]};
                rc = send_all(fd, r, sizeof r);
            }
            off += 5 + (long)body;
        }
        *frag1 = 0;
    } else {
        rc = send_all(fd, (const unsigned char *)d, (size_t)n);
    }
    (void)BIO_reset(wb);
    return rc;
}

static int pump_in(BIO *rb, int fd)
{
    unsigned char buf[16384];
    ssize_t n = recv(fd, buf, sizeof buf, 0);

    if (n <= 0)
        return -1;
    return BIO_write(rb, buf, (int)n) == (int)n ? 0 : -1;
}

static void flood_sent(struct flood_client *fc)
{
    pthread_mutex_lock(&fc->mu);
    fc->sent_all = 1;
    pthread_cond_signal(&fc->cv);
    pthread_mutex_unlock(&fc->mu);
}

static void flood_wait_sent(struct flood_client *fc)
{
    struct timespec until;
    int r = 0;

    assert_int_equal(clock_gettime(CLOCK_REALTIME, &until), 0);
    until.tv_sec += OP_TIMEOUT_MS / 1000;
    pthread_mutex_lock(&fc->mu);
    while (!fc->sent_all && r == 0)
        r = pthread_cond_timedwait(&fc->cv, &fc->mu, &until);
    pthread_mutex_unlock(&fc->mu);
    assert_int_equal(r, 0);
}

static void *flood_client_main(void *arg)
{
    struct flood_client *fc = arg;
    struct timeval tv = {OP_TIMEOUT_MS / 1000, 0};
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    BIO *rb = NULL, *wb = NULL;
    unsigned char buf[256];
    size_t got = 0, n;
    int frag1 = fc->kind == FLOOD_FRAG1;
    /* over memory BIOs: the ClientHello can be cut up, and a KeyUpdate
     * storm leaves in one piece */
    int pumped = frag1 || fc->kind == FLOOD_POST_KEYUPDATE;
    sigset_t pipe_set;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    (void)pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    (void)setsockopt(fc->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    if (fc->kind <= FLOOD_PRE_WARN_ALERT) {
        if (send_plain_flood(fc->fd, fc->kind, fc->records) != 0) {
            (void)snprintf(fc->why, sizeof fc->why, "flood send failed");
            goto out;
        }
    }
    if (fc->kind <= FLOOD_PRE_WARN_ALERT)
        flood_sent(fc);
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, CERT("ca.pem"), NULL) != 1)
        goto out;
    if (!fc->tls13) {
        (void)SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
        (void)SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256");
    } else {
        (void)SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL)
        goto out;
    if (pumped) {
        rb = BIO_new(BIO_s_mem());
        wb = BIO_new(BIO_s_mem());
        if (rb == NULL || wb == NULL)
            goto out;
        SSL_set_bio(ssl, rb, wb); /* owned by ssl from here */
    } else if (SSL_set_fd(ssl, fc->fd) != 1) {
        goto out;
    }
    for (;;) {
        int r = SSL_connect(ssl);

        if (pumped && frag1) {
            if (pump_out(wb, fc->fd, &frag1) != 0)
                goto out;
            flood_sent(fc); /* the fragmented ClientHello */
        } else if (pumped && pump_out(wb, fc->fd, &frag1) != 0) {
            goto out;
        }
        if (r == 1)
            break;
        if (!pumped || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ ||
            pump_in(rb, fc->fd) != 0) {
            (void)snprintf(fc->why, sizeof fc->why, "connect failed");
            goto out;
        }
    }
    fc->connected = 1;
    if (fc->kind == FLOOD_POST_KEYUPDATE) {
        for (int i = 0; i < fc->records; i++)
            if (SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 ||
                SSL_do_handshake(ssl) != 1) {
                (void)snprintf(fc->why, sizeof fc->why, "key update %d failed",
                               i);
                goto out;
            }
    }
    if (fc->kind >= FLOOD_POST_EMPTY && fc->kind <= FLOOD_POST_CCS) {
        if (send_encrypted_flood(ssl, fc->fd, fc->kind, fc->records) != 0) {
            (void)snprintf(fc->why, sizeof fc->why, "flood send failed");
            goto out;
        }
    } else if (SSL_write(ssl, MSG, (int)strlen(MSG)) != (int)strlen(MSG)) {
        goto out;
    }
    if (pumped && pump_out(wb, fc->fd, &frag1) != 0)
        goto out;
    flood_sent(fc);
    while (got < strlen(MSG)) {
        int r = SSL_read_ex(ssl, buf + got, sizeof buf - got, &n);

        if (r == 1) {
            got += n;
            continue;
        }
        if (!pumped || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ ||
            pump_in(rb, fc->fd) != 0) {
            (void)snprintf(fc->why, sizeof fc->why, "read failed: %d %lx",
                           SSL_get_error(ssl, r), ERR_peek_error());
            goto out;
        }
    }
    fc->echo_ok = got == strlen(MSG) && memcmp(buf, MSG, got) == 0;
out:
    flood_sent(fc); /* also when it gave up: the server must not wait */
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    OPENSSL_thread_stop();
    return NULL;
}

struct flood_outcome {
    int hs, rd;     /* handshake result; read result (1: not reached) */
    int calls;      /* backend calls made */
    int budget_ret; /* calls that came back because of the budget */
    long recvs;     /* recv calls in all */
    char err[256];
};

/* One backend call under the budget; loops on WANT_*. Returns the final
 * result of the backend (0 or negative) and counts into `fo`. */
static int budget_drive(const struct ssock__tls_backend *be, void *sess,
                        struct budget_io *bio, struct flood_outcome *fo,
                        int is_read, void *buf, size_t len, size_t *n)
{
    for (;;) {
        int h0 = bio->hits, r;

        if (fo->calls >= FLOOD_MAX_CALLS)
            return SSOCK_ETIMEOUT; /* no progress: a backend that spins */
        bio->calls = 0;
        bio->bytes = 0;
        r = is_read ? be->read(sess, buf, len, n) : be->handshake(sess);
        fo->calls++;
        if (bio->calls > FLOOD_BUDGET)
            return SSOCK_EINVAL; /* cannot happen: the callback refuses */
        if (r <= 0)
            return r;
        if (bio->hits > h0) {
            fo->budget_ret++;
            continue; /* more may be waiting: call again at once */
        }
        if (wait_fd(bio->fd, r) != 0)
            return SSOCK_ETIMEOUT;
    }
}

/* records: how many flood records (0: the default for the kind). */
static void run_flood(int backend, enum flood_kind kind, int tls13, int records,
                      struct flood_client *fc, struct flood_outcome *fo)
{
    ssock_tls_options o;
    ssock_tls_config *cfg = NULL;
    const struct ssock__tls_backend *be;
    struct ssock__tls_io io;
    struct budget_io bio;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    void *sess = NULL;
    pthread_t th;
    int sv[2];

    memset(fo, 0, sizeof *fo);
    memset(fc, 0, sizeof *fc);
    memset(&bio, 0, sizeof bio);
    fo->rd = 1;
    ssock_tls_options_init(&o);
    o.backend = backend;
    o.cert_file = CERT("server-ecdsa.pem");
    o.key_file = CERT("server-ecdsa.key");
    if (ssock_tls_config_new(&cfg, &o, err, sizeof err) != 0)
        fail_msg("config: %s", err);
    be = ssock__tls_config_backend(cfg);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    bio.fd = sv[0];
    io.ctx = &bio;
    io.send = budget_send;
    io.recv = budget_recv;
    assert_int_equal(be->session_new(ssock__tls_config_bcfg(cfg), &io, &sess),
                     0);
    fc->fd = sv[1];
    fc->kind = kind;
    fc->tls13 = tls13;
    assert_int_equal(pthread_mutex_init(&fc->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&fc->cv, NULL), 0);
    /* Valgrind: a fifth of the flood, still many budgets' worth */
    fc->records = records > 0
                      ? records
                      : (kind == FLOOD_POST_KEYUPDATE ? FLOOD_RECORDS / 3
                                                      : FLOOD_RECORDS) /
                            (RUNNING_ON_VALGRIND ? 5 : 1);
    assert_int_equal(pthread_create(&th, NULL, flood_client_main, fc), 0);

    if (kind <= FLOOD_FRAG1)
        flood_wait_sent(fc);
    fo->hs = budget_drive(be, sess, &bio, fo, 0, NULL, 0, NULL);
    if (fo->hs == 0) {
        unsigned char buf[64];
        size_t n = 0, got = 0;

        if (kind > FLOOD_FRAG1)
            flood_wait_sent(fc);
        do {
            fo->rd = budget_drive(be, sess, &bio, fo, 1, buf + got,
                                  sizeof buf - got, &n);
            got += n;
        } while (fo->rd == 0 && got < strlen(MSG));
        if (fo->rd == 0) {
            assert_int_equal(got, strlen(MSG));
            assert_memory_equal(buf, MSG, got);
            fo->rd = srv_write_all(be, sess, sv[0], buf, got, NULL);
        }
    }
    fo->recvs = bio.total;
    (void)snprintf(fo->err, sizeof fo->err, "%s", be->session_error(sess));
    (void)shutdown(sv[0], SHUT_RDWR);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (getenv("SSOCK_TEST_VERBOSE") != NULL)
        fprintf(stderr,
                "  [%s] %-42s hs=%d rd=%d calls=%d budget_returns=%d "
                "recvs=%ld client: connected=%d echo=%d %s err=%s\n",
                be->name, flood_names[kind], fo->hs, fo->rd, fo->calls,
                fo->budget_ret, fo->recvs, fc->connected, fc->echo_ok, fc->why,
                fo->err);
    be->session_free(sess);
    ssock_tls_config_free(cfg);
    close(sv[0]);
    close(sv[1]);
    pthread_cond_destroy(&fc->cv);
    pthread_mutex_destroy(&fc->mu);
}

/* What each backend does with each flood (FLOOD_RECORDS records, or 1000
 * KeyUpdates), fed through a transport with the acceptor's read budget:
 * DONE = the connection completes and the message is echoed; FAIL = the
 * handshake or read fails with SSOCK_ETLS after few transport reads. */
enum { DONE, FAIL };

static int flood_expect(int backend, enum flood_kind k)
{
    if (backend == SSOCK_TLS_BACKEND_MBEDTLS) {
        int v3 = mbedtls_version_get_number() >= 0x03000000u;

        switch (k) {
        case FLOOD_POST_WARN_ALERT: /* ignored one by one, no limit */
            return DONE;
        case FLOOD_PRE_CCS:        /* 3.6: ignored before the ClientHello */
        case FLOOD_PRE_WARN_ALERT: /* (TLS 1.3 middlebox compatibility) */
            return v3 ? DONE : FAIL;
        default: /* FRAG1: neither reassembles a ClientHello cut that fine;
                    KeyUpdate: 3.6 does not implement it */
            return FAIL;
        }
    }
    switch (k) {
    case FLOOD_FRAG1:          /* reassembled */
    case FLOOD_POST_KEYUPDATE: /* no limit on KeyUpdates */
        return DONE;
    default: /* 32 empty records, 5 warning alerts, CCS: fatal */
        return FAIL;
    }
}

static void test_floods(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        int tls13_ok = has_tls13(b);

        for (int k = FLOOD_PRE_EMPTY_HS; k <= FLOOD_POST_KEYUPDATE; k++) {
            struct flood_client fc;
            struct flood_outcome fo;
            int tls13 = k == FLOOD_POST_KEYUPDATE;
            const char *name = ssock_tls_backend_name(b);

            if (tls13 && !tls13_ok)
                continue; /* mbedTLS 2.28: no TLS 1.3 (test_tls13) */
            run_flood(b, (enum flood_kind)k, tls13, 0, &fc, &fo);
            if (flood_expect(b, (enum flood_kind)k) == DONE) {
                if (fo.hs != 0 || fo.rd != 0 || !fc.echo_ok)
                    fail_msg("%s, %s: hs %d read %d echo %d (%s; %s): want "
                             "the connection to complete",
                             name, flood_names[k], fo.hs, fo.rd, fc.echo_ok,
                             fo.err, fc.why);
                /* the budget cut the flood into many backend calls, and
                 * the backend picked up where it stopped each time; except
                 * OpenSSL's 1-byte fragments: with read-ahead during the
                 * handshake the whole fragmented ClientHello (a few KB,
                 * under the byte budget) comes in one recv(); and, when
                 * the server runs slower than its client (Valgrind), the
                 * KeyUpdate storm: the handshake's last read-ahead recv()
                 * then brings a buffer of KeyUpdates too, which are
                 * processed from that buffer (bounded by its bytes) with
                 * no further recv() to count */
                int small = b == SSOCK_TLS_BACKEND_OPENSSL &&
                            (k == FLOOD_FRAG1 || (k == FLOOD_POST_KEYUPDATE &&
                                                  RUNNING_ON_VALGRIND));
                if (fo.budget_ret < (small ? 0 : 2))
                    fail_msg("%s, %s: only %d budget returns", name,
                             flood_names[k], fo.budget_ret);
            } else {
                int r = fo.hs != 0 ? fo.hs : fo.rd;

                if (r != SSOCK_ETLS)
                    fail_msg("%s, %s: hs %d read %d (%s): want SSOCK_ETLS",
                             name, flood_names[k], fo.hs, fo.rd, fo.err);
                assert_true(fo.err[0] != '\0');
                assert_false(fc.echo_ok);
                /* refused early: far fewer reads than records */
                if (fo.recvs > 200)
                    fail_msg("%s, %s: %ld transport reads before failing", name,
                             flood_names[k], fo.recvs);
            }
        }
    }
}

/* One TLS 1.3 KeyUpdate from the client: OpenSSL updates its keys and
 * reads on; mbedTLS 3.6 does not implement KeyUpdate: SSOCK_ETLS with a
 * message that says so (not a bare "unexpected message"). */
static void test_keyupdate(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        struct flood_client fc;
        struct flood_outcome fo;

        if (!has_tls13(b))
            continue; /* mbedTLS 2.28: no TLS 1.3 (test_tls13) */
        run_flood(b, FLOOD_POST_KEYUPDATE, 1, 1, &fc, &fo);
        assert_int_equal(fo.hs, 0);
        if (b == SSOCK_TLS_BACKEND_OPENSSL) {
            assert_int_equal(fo.rd, 0);
            assert_true(fc.echo_ok);
        } else {
            if (fo.rd != SSOCK_ETLS)
                fail_msg("mbedtls: KeyUpdate gave %d (%s)", fo.rd, fo.err);
            if (strstr(fo.err, "KeyUpdate") == NULL)
                fail_msg("mbedtls: message does not name KeyUpdate: %s",
                         fo.err);
            assert_false(fc.echo_ok);
        }
    }
}

/* A few empty application records (what some stacks send) are not the end
 * of the stream: the data after them is read (mbedTLS once reported EOF). */
static void test_few_empty_records(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        for (int count = 1; count <= 3; count++) {
            struct flood_client fc;
            struct flood_outcome fo;

            run_flood(b, FLOOD_POST_EMPTY, 0, count, &fc, &fo);
            if (fo.hs != 0 || fo.rd != 0 || !fc.echo_ok)
                fail_msg("%s, %d empty records: hs %d read %d echo %d (%s)",
                         ssock_tls_backend_name(b), count, fo.hs, fo.rd,
                         fc.echo_ok, fo.err);
        }
    }
}

/* Configs built on several threads at once, from the very first one of
 * the process (so this test runs first): the OpenSSL BIO_METHOD is made
 * once under pthread_once, and mbedTLS 3.6's psa_crypto_init() runs from
 * every config_new (TSan checks both). */
#define PAR_THREADS 4
#define PAR_CONFIGS 12

static int par_configs(void)
{
    return RUNNING_ON_VALGRIND ? 4 : PAR_CONFIGS;
}

struct par_arg {
    int backend;
    pthread_barrier_t *start;
    int ok;
};

static void *par_main(void *arg)
{
    struct par_arg *pa = arg;

    (void)pthread_barrier_wait(pa->start);
    for (int i = 0; i < par_configs(); i++) {
        ssock_tls_options o;
        ssock_tls_config *cfg = NULL;
        struct ssock__tls_io io = {NULL, mem_send, mem_recv};
        struct memio m = {EAGAIN, 0, 0};
        void *s = NULL;

        ssock_tls_options_init(&o);
        o.backend = pa->backend;
        o.cert_file =
            (i & 1) ? CERT("server-rsa.pem") : CERT("server-ecdsa.pem");
        o.key_file =
            (i & 1) ? CERT("server-rsa.key") : CERT("server-ecdsa.key");
        if (ssock_tls_config_new(&cfg, &o, NULL, 0) != 0)
            continue;
        io.ctx = &m;
        if (ssock__tls_config_backend(cfg)->session_new(
                ssock__tls_config_bcfg(cfg), &io, &s) == 0 &&
            ssock__tls_config_backend(cfg)->handshake(s) ==
                SSOCK__TLS_WANT_READ)
            pa->ok++;
        ssock__tls_config_backend(cfg)->session_free(s);
        ssock_tls_config_free(cfg);
    }
    OPENSSL_thread_stop();
    return NULL;
}

static void test_parallel_configs(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        pthread_barrier_t start;
        pthread_t th[PAR_THREADS];
        struct par_arg pa[PAR_THREADS];

        assert_int_equal(pthread_barrier_init(&start, NULL, PAR_THREADS), 0);
        for (int i = 0; i < PAR_THREADS; i++) {
            pa[i].backend = b;
            pa[i].start = &start;
            pa[i].ok = 0;
            assert_int_equal(pthread_create(&th[i], NULL, par_main, &pa[i]), 0);
        }
        for (int i = 0; i < PAR_THREADS; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(pa[i].ok, par_configs());
        }
        pthread_barrier_destroy(&start);
        /* and a real handshake with a config built afterwards */
        {
            struct server_opts so;
            struct client cl;
            struct outcome out;

            server_defaults(&so, b);
            client_init(&cl, CLIENT_ECHO);
            run(&so, &cl, &out);
            assert_int_equal(out.hs, 0);
            assert_true(cl.echo_ok);
        }
    }
}

static void test_shared_config_threads(void **state)
{
    (void)state;
    FOR_EACH_BACKEND(b)
    {
        /* RSA: mbedTLS's RSA blinding state is shared and mutex-guarded */
        const char *cert[2] = {CERT("server-rsa.pem"),
                               CERT("server-ecdsa.pem")};
        const char *key[2] = {CERT("server-rsa.key"), CERT("server-ecdsa.key")};

        for (int k = 0; k < 2; k++) {
            struct worker w[WORKERS];
            pthread_t th[WORKERS];
            ssock_tls_options o;
            ssock_tls_config *cfg;

            ssock_tls_options_init(&o);
            o.backend = b;
            o.cert_file = cert[k];
            o.key_file = key[k];
            assert_int_equal(ssock_tls_config_new(&cfg, &o, NULL, 0), 0);
            for (int i = 0; i < WORKERS; i++) {
                w[i].cfg = ssock__tls_config_ref(cfg);
                w[i].ok = 0;
                assert_int_equal(
                    pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
            }
            ssock_tls_config_free(cfg); /* workers hold their references */
            for (int i = 0; i < WORKERS; i++) {
                assert_int_equal(pthread_join(th[i], NULL), 0);
                assert_int_equal(w[i].ok, ROUNDS);
                ssock__tls_config_unref(w[i].cfg);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_configs), /* first: see its comment */
        cmocka_unit_test(test_echo_each_cert),
        cmocka_unit_test(test_tls13),
        cmocka_unit_test(test_bulk_write_retry),
        cmocka_unit_test(test_client_close_notify),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_client_cert_usage),
        cmocka_unit_test(test_long_subject),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_many_configs),
        cmocka_unit_test(test_floods),
        cmocka_unit_test(test_few_empty_records),
        cmocka_unit_test(test_keyupdate),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_session_lifetime),
        cmocka_unit_test(test_shared_config_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
