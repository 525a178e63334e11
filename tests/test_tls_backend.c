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
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ssock/tls.h"
#include "tls_backend.h"

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
        struct timespec nap = {0, 50 * 1000 * 1000};
        size_t n, i;

        /* let the server fill the socket first: its writes must block */
        (void)nanosleep(&nap, NULL);
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
    char version[16], cipher[64], alpn[64], sni[256], subject[256];
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
            if (b == SSOCK_TLS_BACKEND_OPENSSL) {
                assert_string_equal(out.version, "TLSv1.3");
                assert_string_equal(out.cipher, "TLS_AES_128_GCM_SHA256");
            } else {
                assert_string_equal(out.version, "TLSv1.2");
            }
        }
    }
}

static void test_tls13(void **state)
{
    struct server_opts so;
    struct client cl;
    struct outcome out;

    (void)state;
    if (!ssock_tls_backend_available(SSOCK_TLS_BACKEND_OPENSSL))
        skip();
    server_defaults(&so, SSOCK_TLS_BACKEND_OPENSSL);
    so.min_version = SSOCK_TLS_VERSION_1_3;
    client_init(&cl, CLIENT_ECHO);
    run(&so, &cl, &out);
    assert_int_equal(out.hs, 0);
    assert_string_equal(out.version, "TLSv1.3");
    assert_true(cl.echo_ok);

    /* a TLS 1.2-only client is refused by a 1.3-only server */
    client_init(&cl, CLIENT_ECHO);
    cl.max_version = TLS1_2_VERSION;
    run(&so, &cl, &out);
    assert_int_equal(out.hs, SSOCK_ETLS);
    assert_false(cl.connected);
    assert_true(out.err[0] != '\0');
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

        /* EOF before anything -> SSOCK_EOF */
        memset(&m, 0, sizeof m);
        assert_int_equal(be->session_new(ssock__tls_config_bcfg(cfg), &io, &s),
                         0);
        assert_int_equal(be->handshake(s), SSOCK_EOF);
        assert_int_equal(be->read(s, &c, 1, &n), SSOCK_EOF);
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
        cmocka_unit_test(test_echo_each_cert),
        cmocka_unit_test(test_tls13),
        cmocka_unit_test(test_bulk_write_retry),
        cmocka_unit_test(test_client_close_notify),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_session_lifetime),
        cmocka_unit_test(test_shared_config_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
