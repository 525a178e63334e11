/*
 * test_tls_config.c — the TLS configuration front (src/tls.c) and every
 * configuration error, once per built backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ssock/tls.h"
#include "tls_backend.h"

#ifndef SSOCK_CERTS_DIR
#error "SSOCK_CERTS_DIR must be defined by the build"
#endif

static const int all_backends[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                                   SSOCK_TLS_BACKEND_OPENSSL};

#define FOR_EACH_BACKEND(b)                                                    \
    for (size_t b##_i = 0;                                                     \
         b##_i < sizeof all_backends / sizeof all_backends[0]; b##_i++)        \
        for (int b = all_backends[b##_i], b##_once = 1;                        \
             b##_once && ssock_tls_backend_available(b); b##_once = 0)

static char path_buf[8][512];
static int path_next;

/* Absolute path of a file in certs/ (a few live at once). */
static const char *cert(const char *name)
{
    char *p = path_buf[path_next++ % 8];

    (void)snprintf(p, sizeof path_buf[0], "%s/%s", SSOCK_CERTS_DIR, name);
    return p;
}

static unsigned char *slurp(const char *name, size_t *len)
{
    FILE *f = fopen(cert(name), "rb");
    unsigned char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void base_opts(ssock_tls_options *o, int backend)
{
    ssock_tls_options_init(o);
    o->backend = backend;
    o->cert_file = cert("server-ecdsa.pem");
    o->key_file = cert("server-ecdsa.key");
}

/* Build, expect `want`; on success free. Returns errbuf for inspection. */
static char errbuf[SSOCK_TLS_ERRBUF_SIZE];

static int try_new(const ssock_tls_options *o)
{
    ssock_tls_config *c = (ssock_tls_config *)(uintptr_t)1;
    int rc;

    memset(errbuf, 'x', sizeof errbuf);
    rc = ssock_tls_config_new(&c, o, errbuf, sizeof errbuf);
    assert_non_null(memchr(errbuf, 0, sizeof errbuf));
    if (rc == 0) {
        assert_non_null(c);
        assert_string_equal(ssock_tls_config_message(c), errbuf);
        assert_int_equal(ssock_tls_config_backend(c),
                         o->backend == SSOCK_TLS_BACKEND_DEFAULT
                             ? (SSOCK_HAVE_MBEDTLS ? SSOCK_TLS_BACKEND_MBEDTLS
                                                   : SSOCK_TLS_BACKEND_OPENSSL)
                             : o->backend);
        ssock_tls_config_free(c);
    } else {
        assert_null(c);
        assert_true(errbuf[0] != '\0');
    }
    return rc;
}

static void expect(const ssock_tls_options *o, int want, const char *needle)
{
    int rc = try_new(o);

    if (rc != want)
        fail_msg("backend %s: got %d, want %d; message: %s",
                 ssock_tls_backend_name(o->backend), rc, want, errbuf);
    if (needle != NULL && strstr(errbuf, needle) == NULL)
        fail_msg("backend %s: message lacks \"%s\": %s",
                 ssock_tls_backend_name(o->backend), needle, errbuf);
}

/* ------------------------------------------------------------------ */

static void test_options_init(void **state)
{
    ssock_tls_options o;

    (void)state;
    memset(&o, 0x5a, sizeof o);
    ssock_tls_options_init(&o);
    assert_int_equal(o.backend, SSOCK_TLS_BACKEND_DEFAULT);
    assert_null(o.cert_file);
    assert_null(o.cert_mem);
    assert_int_equal(o.cert_len, 0);
    assert_null(o.key_file);
    assert_null(o.ca_file);
    assert_null(o.ca_mem);
    assert_int_equal(o.verify_client, SSOCK_TLS_VERIFY_NONE);
    assert_int_equal(o.min_version, SSOCK_TLS_VERSION_1_2);
    assert_null(o.alpn);
    assert_int_equal(o.alpn_count, 0);
    assert_int_equal(o.handshake_timeout_ms, 10000);
    assert_int_equal(o.max_handshakes, 256);
    assert_int_equal(o.allow_expired_cert, 0);
    assert_int_equal(o.max_handshakes_per_source, 0);
    assert_int_equal(o.source_prefix_v6, 0);
    ssock_tls_options_init(NULL); /* no-op */
}

static void test_null_args(void **state)
{
    ssock_tls_options o;
    ssock_tls_config *c = NULL;

    (void)state;
    base_opts(&o, SSOCK_TLS_BACKEND_DEFAULT);
    assert_int_equal(ssock_tls_config_new(NULL, &o, errbuf, sizeof errbuf),
                     SSOCK_EINVAL);
    assert_int_equal(ssock_tls_config_new(&c, NULL, errbuf, sizeof errbuf),
                     SSOCK_EINVAL);
    assert_null(c);
    assert_non_null(strstr(errbuf, "opts"));
    ssock_tls_config_free(NULL);
    ssock__tls_config_unref(NULL);
    assert_null(ssock__tls_config_ref(NULL));
    assert_null(ssock_tls_config_message(NULL));
    assert_int_equal(ssock_tls_config_backend(NULL), SSOCK_EINVAL);
    assert_null(ssock__tls_config_backend(NULL));
    assert_null(ssock__tls_config_bcfg(NULL));
}

static void test_backend_names(void **state)
{
    (void)state;
    assert_int_equal(ssock_tls_backend_available(SSOCK_TLS_BACKEND_MBEDTLS),
                     SSOCK_HAVE_MBEDTLS);
    assert_int_equal(ssock_tls_backend_available(SSOCK_TLS_BACKEND_OPENSSL),
                     SSOCK_HAVE_OPENSSL);
    assert_int_equal(ssock_tls_backend_available(SSOCK_TLS_BACKEND_DEFAULT),
                     SSOCK_HAVE_TLS);
    assert_int_equal(ssock_tls_backend_available(99), 0);
    assert_int_equal(ssock_tls_backend_available(-1), 0);
    assert_string_equal(ssock_tls_backend_name(SSOCK_TLS_BACKEND_MBEDTLS),
                        "mbedtls");
    assert_string_equal(ssock_tls_backend_name(SSOCK_TLS_BACKEND_OPENSSL),
                        "openssl");
    assert_string_equal(ssock_tls_backend_name(SSOCK_TLS_BACKEND_DEFAULT),
                        SSOCK_HAVE_MBEDTLS   ? "mbedtls"
                        : SSOCK_HAVE_OPENSSL ? "openssl"
                                             : "none");
    assert_null(ssock_tls_backend_name(3));
    assert_int_equal(ssock_tls_backend_from_name("mbedtls"),
                     SSOCK_TLS_BACKEND_MBEDTLS);
    assert_int_equal(ssock_tls_backend_from_name("OpenSSL"),
                     SSOCK_TLS_BACKEND_OPENSSL);
    assert_int_equal(ssock_tls_backend_from_name("default"),
                     SSOCK_TLS_BACKEND_DEFAULT);
    assert_int_equal(ssock_tls_backend_from_name("gnutls"), SSOCK_ENOBACKEND);
    assert_int_equal(ssock_tls_backend_from_name(""), SSOCK_ENOBACKEND);
    assert_int_equal(ssock_tls_backend_from_name(NULL), SSOCK_EINVAL);
}

static void test_unknown_backend(void **state)
{
    ssock_tls_options o;

    (void)state;
    base_opts(&o, 99);
    expect(&o, SSOCK_ENOBACKEND, "99");
    base_opts(&o, -1);
    expect(&o, SSOCK_ENOBACKEND, NULL);
    if (!SSOCK_HAVE_OPENSSL) {
        base_opts(&o, SSOCK_TLS_BACKEND_OPENSSL);
        expect(&o, SSOCK_ENOBACKEND, "not built");
    }
    if (!SSOCK_HAVE_MBEDTLS) {
        base_opts(&o, SSOCK_TLS_BACKEND_MBEDTLS);
        expect(&o, SSOCK_ENOBACKEND, "not built");
    }
}

static void test_good_configs(void **state)
{
    ssock_tls_options o;

    (void)state;
    if (!SSOCK_HAVE_TLS)
        skip();
    base_opts(&o, SSOCK_TLS_BACKEND_DEFAULT);
    expect(&o, 0, NULL);
    assert_string_equal(errbuf, "");
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        expect(&o, 0, NULL);
        assert_string_equal(errbuf, "");
        o.cert_file = cert("server-rsa.pem");
        o.key_file = cert("server-rsa.key");
        expect(&o, 0, NULL);
        /* errbuf is optional */
        {
            ssock_tls_config *c = NULL;
            assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), 0);
            assert_string_equal(ssock_tls_config_message(c), "");
            ssock_tls_config_free(c);
        }
    }
}

static void test_missing_files(void **state)
{
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.cert_file = "/nonexistent/ssock/cert.pem";
        expect(&o, SSOCK_EFILE, "No such file or directory");
        assert_non_null(strstr(errbuf, "/nonexistent/ssock/cert.pem"));
        assert_non_null(strstr(errbuf, "certificate"));

        base_opts(&o, b);
        o.key_file = "/nonexistent/ssock/key.pem";
        expect(&o, SSOCK_EFILE, "key file '/nonexistent/ssock/key.pem'");

        base_opts(&o, b);
        o.ca_file = "/nonexistent/ssock/ca.pem";
        expect(&o, SSOCK_EFILE, "CA file");

        base_opts(&o, b);
        o.cert_file = SSOCK_CERTS_DIR; /* a directory */
        expect(&o, SSOCK_EFILE, "Is a directory");
    }
}

/* A FIFO (no writer) or a device as an input must not block
 * ssock_tls_config_new(): SSOCK_EFILE at once with a clear message. The
 * call runs on a thread; if it is still blocked after 5 s, the test opens
 * the FIFO for writing (which unblocks an open() waiting for a writer)
 * and fails. */
struct fifo_call {
    ssock_tls_options o;
    int rc;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void *fifo_thread(void *arg)
{
    struct fifo_call *fc = arg;
    ssock_tls_config *c = NULL;
    int rc = ssock_tls_config_new(&c, &fc->o, fc->err, sizeof fc->err);

    ssock_tls_config_free(c);
    pthread_mutex_lock(&fc->mu);
    fc->rc = rc;
    fc->done = 1;
    pthread_cond_signal(&fc->cv);
    pthread_mutex_unlock(&fc->mu);
    return NULL;
}

static void config_must_not_block(const ssock_tls_options *o, const char *fifo,
                                  const char *needle)
{
    struct fifo_call fc;
    struct timespec until;
    pthread_t th;
    int timed_out = 0;

    memset(&fc, 0, sizeof fc);
    fc.o = *o;
    assert_int_equal(pthread_mutex_init(&fc.mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&fc.cv, NULL), 0);
    assert_int_equal(pthread_create(&th, NULL, fifo_thread, &fc), 0);
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &until), 0);
    until.tv_sec += 5;
    pthread_mutex_lock(&fc.mu);
    while (!fc.done && !timed_out)
        if (pthread_cond_timedwait(&fc.cv, &fc.mu, &until) == ETIMEDOUT)
            timed_out = !fc.done;
    pthread_mutex_unlock(&fc.mu);
    if (timed_out && fifo != NULL) {
        int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (w >= 0)
            (void)close(w); /* the reader then sees EOF */
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_cond_destroy(&fc.cv);
    pthread_mutex_destroy(&fc.mu);
    if (timed_out)
        fail_msg("ssock_tls_config_new() blocked on a FIFO for 5 s");
    if (fc.rc != SSOCK_EFILE)
        fail_msg("got %d, want SSOCK_EFILE; message: %s", fc.rc, fc.err);
    if (strstr(fc.err, needle) == NULL)
        fail_msg("message lacks \"%s\": %s", needle, fc.err);
}

static void test_special_files(void **state)
{
    char dir[] = "/tmp/ssock-fifo-XXXXXX";
    char fifo[sizeof dir + 16];
    ssock_tls_options o;

    (void)state;
    assert_non_null(mkdtemp(dir));
    (void)snprintf(fifo, sizeof fifo, "%s/in.pem", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.cert_file = fifo;
        config_must_not_block(&o, fifo, "not a regular file (a FIFO)");
        base_opts(&o, b);
        o.key_file = fifo;
        config_must_not_block(&o, fifo, "key file");
        base_opts(&o, b);
        o.ca_file = fifo;
        o.verify_client = SSOCK_TLS_VERIFY_REQUIRED;
        config_must_not_block(&o, fifo, "CA file");

        base_opts(&o, b);
        o.cert_file = "/dev/zero";
        config_must_not_block(&o, NULL,
                              "not a regular file (a character device)");
        base_opts(&o, b);
        o.key_file = "/dev/null";
        config_must_not_block(&o, NULL, "'/dev/null'");
    }
    assert_int_equal(unlink(fifo), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_garbage(void **state)
{
    static const unsigned char junk[] = {0x30, 0x82, 0x01, 0x00, 0xde, 0xad,
                                         0xbe, 0xef, 0x00, 0x01, 0x02};
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        const char *backend_mark =
            b == SSOCK_TLS_BACKEND_MBEDTLS ? "(-0x" : "error:";
        base_opts(&o, b);
        o.cert_file = cert("garbage.pem");
        expect(&o, SSOCK_ECERTPARSE, "garbage.pem");
        /* the backend's own words are kept (OpenSSL 3.0 has none for bad
         * base64 in a certificate block; it has for keys, below) */
        if (b == SSOCK_TLS_BACKEND_MBEDTLS)
            assert_non_null(strstr(errbuf, backend_mark));

        base_opts(&o, b);
        o.key_file = cert("garbage.pem");
        expect(&o, SSOCK_ECERTPARSE, backend_mark);

        base_opts(&o, b);
        o.cert_file = cert("server-ecdsa.key"); /* a key is no certificate */
        expect(&o, SSOCK_ECERTPARSE, NULL);

        base_opts(&o, b);
        o.key_file = cert("server-ecdsa.pem"); /* a certificate is no key */
        expect(&o, SSOCK_ECERTPARSE, NULL);

        base_opts(&o, b);
        o.ca_file = cert("garbage.pem");
        expect(&o, SSOCK_ECERTPARSE, "CA");

        base_opts(&o, b);
        o.cert_file = NULL;
        o.cert_mem = junk;
        o.cert_len = sizeof junk;
        expect(&o, SSOCK_ECERTPARSE, "(memory)");
    }
}

static void test_mismatch(void **state)
{
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.key_file = cert("mismatch.key");
        expect(&o, SSOCK_EKEYMISMATCH, "mismatch.key");

        base_opts(&o, b);
        o.key_file = cert("server-rsa.key"); /* RSA key, ECDSA cert */
        expect(&o, SSOCK_EKEYMISMATCH, "does not match");
    }
}

static void test_cert_time(void **state)
{
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.cert_file = cert("expired.pem");
        o.key_file = cert("expired.key");
        expect(&o, SSOCK_ECERTTIME, "expired on 2001-01-01");

        o.allow_expired_cert = 1;
        expect(&o, 0, "expired on 2001-01-01 (accepted");

        base_opts(&o, b);
        o.cert_file = cert("notyet.pem");
        o.key_file = cert("notyet.key");
        expect(&o, SSOCK_ECERTTIME, "not valid before 2090-01-01");
        o.allow_expired_cert = 1;
        expect(&o, 0, "not valid before 2090-01-01 (accepted");

        /* time is checked on our chain only, so a valid cert is quiet */
        base_opts(&o, b);
        o.allow_expired_cert = 1;
        expect(&o, 0, NULL);
        assert_string_equal(errbuf, "");
    }
}

#if SSOCK_HAVE_MBEDTLS
/* From the mbedTLS linked in (2.28 or 3.6), declared here so that this
 * file does not depend on which mbedTLS headers are on the include path. */
int mbedtls_version_check_feature(const char *feature);

/* Does the mbedTLS in use have TLS 1.3 (3.6 as built by `make deps`)? */
static int mbedtls_has_tls13(void)
{
    return mbedtls_version_check_feature("MBEDTLS_SSL_PROTO_TLS1_3") == 0;
}
#else
static int mbedtls_has_tls13(void)
{
    return 0;
}
#endif

static void test_versions(void **state)
{
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.min_version = SSOCK_TLS_VERSION_1_3;
        if (b == SSOCK_TLS_BACKEND_MBEDTLS && !mbedtls_has_tls13())
            expect(&o, SSOCK_EVERSION, "TLS 1.3"); /* 2.28 */
        else
            expect(&o, 0, NULL); /* OpenSSL 3, mbedTLS 3.6 */

        base_opts(&o, b);
        o.min_version = 0x0302; /* TLS 1.1: never */
        expect(&o, SSOCK_ETLSCONFIG, "min_version");
        o.min_version = 0;
        expect(&o, SSOCK_ETLSCONFIG, "min_version");
    }
}

static void test_alpn(void **state)
{
    static const char *const good[] = {"h2", "http/1.1"};
    static const char *const empty[] = {"h2", ""};
    static const char *const with_null[] = {"h2", NULL};
    char big[300];
    const char *one[1];
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.alpn = good;
        o.alpn_count = 2;
        expect(&o, 0, NULL);

        o.alpn = empty;
        expect(&o, SSOCK_ETLSCONFIG, "alpn[1]");
        o.alpn = with_null;
        expect(&o, SSOCK_ETLSCONFIG, "alpn[1] is NULL");
        o.alpn = NULL;
        expect(&o, SSOCK_ETLSCONFIG, "alpn");
        o.alpn_count = 0; /* NULL + 0: no ALPN */
        expect(&o, 0, NULL);

        memset(big, 'a', sizeof big);
        big[255] = '\0';
        one[0] = big;
        o.alpn = one;
        o.alpn_count = 1;
        expect(&o, 0, NULL); /* 255 bytes: the maximum */
        big[255] = 'a';
        big[256] = '\0';
        expect(&o, SSOCK_ETLSCONFIG, "256 bytes");
    }
}

static void test_verify_modes(void **state)
{
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.verify_client = SSOCK_TLS_VERIFY_REQUIRED;
        expect(&o, SSOCK_ETLSCONFIG, "needs a CA");
        o.verify_client = SSOCK_TLS_VERIFY_OPTIONAL;
        expect(&o, SSOCK_ETLSCONFIG, "needs a CA");
        o.ca_file = cert("ca.pem");
        expect(&o, 0, NULL);
        assert_string_equal(errbuf, "");
        o.verify_client = SSOCK_TLS_VERIFY_REQUIRED;
        expect(&o, 0, NULL);
        o.verify_client = 3;
        expect(&o, SSOCK_ETLSCONFIG, "verify_client");
        o.verify_client = SSOCK_TLS_VERIFY_NONE; /* CA unused: a warning */
        expect(&o, 0, "unused");
    }
}

static void test_limits(void **state)
{
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.handshake_timeout_ms = 0;
        expect(&o, SSOCK_EBADTIMEOUT, "handshake_timeout_ms");
        o.handshake_timeout_ms = -5;
        expect(&o, SSOCK_EBADTIMEOUT, NULL);
        o.handshake_timeout_ms = 1;
        expect(&o, 0, NULL);

        base_opts(&o, b);
        o.max_handshakes = 0;
        expect(&o, SSOCK_ETLSCONFIG, "max_handshakes");
        o.max_handshakes = -1;
        expect(&o, SSOCK_ETLSCONFIG, NULL);
        o.max_handshakes = 1;
        expect(&o, 0, NULL);
        o.max_handshakes = SSOCK_TLS_MAX_HANDSHAKES_LIMIT;
        expect(&o, 0, NULL);
        o.max_handshakes = SSOCK_TLS_MAX_HANDSHAKES_LIMIT + 1;
        expect(&o, SSOCK_ETLSCONFIG, "max_handshakes must be <= 65536");
        o.max_handshakes = 2147483647;
        expect(&o, SSOCK_ETLSCONFIG, "max_handshakes");
    }
    assert_int_equal(SSOCK_TLS_MAX_HANDSHAKES_LIMIT, 65536);
}

/* max_handshakes_per_source and source_prefix_v6: validation, defaults,
 * normalised values behind the accessors the acceptor uses. */
static void test_per_source(void **state)
{
    ssock_tls_options o;
    ssock_tls_config *c = NULL;

    (void)state;
    assert_int_equal(SSOCK_TLS_DEFAULT_MAX_HANDSHAKES_PER_SOURCE, 64);
    assert_int_equal(SSOCK_TLS_DEFAULT_SOURCE_PREFIX_V6, 64);
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.max_handshakes_per_source = -1;
        expect(&o, SSOCK_ETLSCONFIG, "max_handshakes_per_source");
        o.max_handshakes_per_source = -2147483647 - 1;
        expect(&o, SSOCK_ETLSCONFIG, "max_handshakes_per_source");
        o.max_handshakes_per_source = 1;
        expect(&o, 0, NULL);

        base_opts(&o, b);
        o.source_prefix_v6 = -1;
        expect(&o, SSOCK_ETLSCONFIG, "source_prefix_v6");
        o.source_prefix_v6 = 129;
        expect(&o, SSOCK_ETLSCONFIG, "source_prefix_v6");
        o.source_prefix_v6 = 1;
        expect(&o, 0, NULL);
        o.source_prefix_v6 = 128;
        expect(&o, 0, NULL);

        /* Defaults: 0 stands for 64 / 64; never 0 behind the accessor. */
        base_opts(&o, b);
        assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), 0);
        assert_int_equal(ssock__tls_config_max_per_source(c), 64);
        assert_int_equal(ssock__tls_config_source_prefix6(c), 64);
        ssock_tls_config_free(c);

        /* Explicit values kept. */
        o.max_handshakes_per_source = 3;
        o.source_prefix_v6 = 48;
        assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), 0);
        assert_int_equal(ssock__tls_config_max_per_source(c), 3);
        assert_int_equal(ssock__tls_config_source_prefix6(c), 48);
        ssock_tls_config_free(c);

        /* A per-source cap above the total cap is the total cap (the
         * default 64 too, with a total of 5). */
        o.max_handshakes = 5;
        o.max_handshakes_per_source = 1000;
        assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), 0);
        assert_int_equal(ssock__tls_config_max_per_source(c), 5);
        ssock_tls_config_free(c);
        o.max_handshakes_per_source = 0;
        assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), 0);
        assert_int_equal(ssock__tls_config_max_per_source(c), 5);
        ssock_tls_config_free(c);
    }
    assert_int_equal(ssock__tls_config_max_per_source(NULL), SSOCK_EINVAL);
    assert_int_equal(ssock__tls_config_source_prefix6(NULL), SSOCK_EINVAL);
}

static void test_sources(void **state)
{
    static const char pem[] = "-----BEGIN CERTIFICATE-----\n";
    ssock_tls_options o;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.cert_file = NULL;
        expect(&o, SSOCK_ETLSCONFIG, "certificate is required");
        base_opts(&o, b);
        o.key_file = NULL;
        expect(&o, SSOCK_ETLSCONFIG, "key is required");
        base_opts(&o, b);
        o.cert_mem = pem;
        o.cert_len = sizeof pem - 1;
        expect(&o, SSOCK_ETLSCONFIG, "not both");
        base_opts(&o, b);
        o.cert_file = NULL;
        o.cert_mem = pem;
        o.cert_len = 0;
        expect(&o, SSOCK_ETLSCONFIG, "length");
        o.cert_mem = NULL;
        o.cert_len = 10;
        expect(&o, SSOCK_ETLSCONFIG, "pointer");
        base_opts(&o, b);
        o.cert_file = "";
        expect(&o, SSOCK_ETLSCONFIG, "empty");
    }
}

static void test_memory_loads(void **state)
{
    size_t cl, kl, cal, dl, dkl;
    unsigned char *c = slurp("server-ecdsa.pem", &cl);
    unsigned char *k = slurp("server-ecdsa.key", &kl);
    unsigned char *ca = slurp("ca.pem", &cal);
    unsigned char *d = slurp("server-ecdsa.der", &dl);
    unsigned char *dk = slurp("server-ecdsa.key.der", &dkl);
    unsigned char *chain_pem, *chain_der;
    ssock_tls_options o;

    (void)state;
    /* PEM chain: leaf then CA, no terminating NUL */
    chain_pem = malloc(cl + cal);
    assert_non_null(chain_pem);
    memcpy(chain_pem, c, cl);
    memcpy(chain_pem + cl, ca, cal);
    /* DER chain: leaf DER twice (any concatenation parses) */
    chain_der = malloc(2 * dl);
    assert_non_null(chain_der);
    memcpy(chain_der, d, dl);
    memcpy(chain_der + dl, d, dl);

    FOR_EACH_BACKEND(b)
    {
        /* PEM from memory (length without NUL) */
        ssock_tls_options_init(&o);
        o.backend = b;
        o.cert_mem = c;
        o.cert_len = cl;
        o.key_mem = k;
        o.key_len = kl;
        o.ca_mem = ca;
        o.ca_len = cal;
        o.verify_client = SSOCK_TLS_VERIFY_REQUIRED;
        expect(&o, 0, NULL);

        /* DER certificate and PKCS#8 DER key from memory */
        ssock_tls_options_init(&o);
        o.backend = b;
        o.cert_mem = d;
        o.cert_len = dl;
        o.key_mem = dk;
        o.key_len = dkl;
        expect(&o, 0, NULL);

        /* DER key with the PEM file cert, DER cert from file */
        base_opts(&o, b);
        o.key_file = NULL;
        o.key_mem = dk;
        o.key_len = dkl;
        expect(&o, 0, NULL);
        base_opts(&o, b);
        o.cert_file = cert("server-ecdsa.der");
        o.key_file = cert("server-ecdsa.key.der");
        expect(&o, 0, NULL);

        /* chains */
        ssock_tls_options_init(&o);
        o.backend = b;
        o.cert_mem = chain_pem;
        o.cert_len = cl + cal;
        o.key_mem = k;
        o.key_len = kl;
        expect(&o, 0, NULL);
        o.cert_mem = chain_der;
        o.cert_len = 2 * dl;
        expect(&o, 0, NULL);
        /* a truncated DER chain fails */
        o.cert_len = 2 * dl - 7;
        expect(&o, SSOCK_ECERTPARSE, NULL);

        /* DER key that does not belong to the (RSA) cert */
        base_opts(&o, b);
        o.cert_file = cert("server-rsa.pem");
        o.key_file = NULL;
        o.key_mem = dk;
        o.key_len = dkl;
        expect(&o, SSOCK_EKEYMISMATCH, NULL);
    }
    free(chain_pem);
    free(chain_der);
    free(c);
    free(k);
    free(ca);
    free(d);
    free(dk);
}

static void test_small_errbuf(void **state)
{
    ssock_tls_options o;
    ssock_tls_config *c = NULL;
    char small[8];

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.cert_file = "/nonexistent/ssock/cert.pem";
        memset(small, 'x', sizeof small);
        assert_int_equal(ssock_tls_config_new(&c, &o, small, sizeof small),
                         SSOCK_EFILE);
        assert_int_equal(strlen(small), sizeof small - 1);
        assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), SSOCK_EFILE);
        small[0] = 'x';
        assert_int_equal(ssock_tls_config_new(&c, &o, small, 0), SSOCK_EFILE);
        assert_int_equal(small[0], 'x'); /* errlen 0: untouched */
        assert_null(c);
    }
}

static void test_refcount_and_accessors(void **state)
{
    ssock_tls_options o;
    ssock_tls_config *c = NULL, *r;

    (void)state;
    FOR_EACH_BACKEND(b)
    {
        base_opts(&o, b);
        o.handshake_timeout_ms = 1234;
        o.max_handshakes = 7;
        assert_int_equal(ssock_tls_config_new(&c, &o, NULL, 0), 0);
        r = ssock__tls_config_ref(c); /* e.g. a server */
        assert_ptr_equal(r, c);
        ssock_tls_config_free(c); /* the user lets go right away */
        assert_non_null(ssock__tls_config_backend(r));
        assert_string_equal(ssock__tls_config_backend(r)->name,
                            ssock_tls_backend_name(b));
        assert_ptr_equal(ssock__tls_config_backend(r),
                         ssock__tls_backend_get(b));
        assert_non_null(ssock__tls_config_bcfg(r));
        assert_int_equal(ssock__tls_config_handshake_timeout(r), 1234);
        assert_int_equal(ssock__tls_config_max_handshakes(r), 7);
        assert_int_equal(ssock_tls_config_backend(r), b);
        ssock__tls_config_unref(r); /* last reference: freed (Valgrind) */
    }
    assert_null(ssock__tls_backend_get(42));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_backend_names),
        cmocka_unit_test(test_unknown_backend),
        cmocka_unit_test(test_good_configs),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_special_files),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_cert_time),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_verify_modes),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_per_source),
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_memory_loads),
        cmocka_unit_test(test_small_errbuf),
        cmocka_unit_test(test_refcount_and_accessors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
