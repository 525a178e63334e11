/*
 * SNI certificate selection (issue 12, ssock_tls_options.extra_certs), on
 * every built backend and, where the backend has it, TLS 1.2 and 1.3:
 *
 *  - the name rules, pure (src/tls.c: ssock__tls_sni_add / _pick): exact
 *    and case-insensitive, the one-label wildcard and its edges, a
 *    trailing dot, empty and over-long names, IDNA compared as bytes,
 *    exact before wildcard, the first pair first;
 *  - configuration: every extra pair is checked like pair 0 and a failure
 *    names it ("extra_certs[1] certificate '...'"), argument errors, the
 *    cap, an older caller's shorter struct;
 *  - handshakes: the leaf (and chain) the client receives, compared with
 *    the expected certificate file, for exact, wildcard, CN-only and
 *    unknown names, no name, RSA and ECDSA pairs mixed (either one as
 *    pair 0), and ssock_socket_tls_sni() / ssock_tls_info.sni give the name
 *    as sent; and `openssl s_client -servername` once per backend.
 *
 * Certificates: certs/sni-* (certs/make-certs.sh sni).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "helpers.h"
#include "ssock/tls.h"
#include "tls_backend.h"
#include "tls_client.h"

#ifndef SSOCK_CERTS_DIR
#error "SSOCK_CERTS_DIR must name the certs/ directory"
#endif
#define CERT(f) SSOCK_CERTS_DIR "/" f
#ifndef SSOCK_OPENSSL_BIN
#define SSOCK_OPENSSL_BIN ""
#endif

#define LONG_MS 10000

static const int all_backends[] = {SSOCK_TLS_BACKEND_MBEDTLS,
                                   SSOCK_TLS_BACKEND_OPENSSL};

/* ---- backends and versions ----------------------------------------- */

static int has_tls13(int backend)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;

    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.min_version = SSOCK_TLS_VERSION_1_3;
    int rc = ssock_tls_config_new(&cfg, &t, NULL, 0);
    ssock_tls_config_free(cfg);
    if (rc != 0 && rc != SSOCK_EVERSION)
        fail_msg("probing TLS 1.3: %s", ssock_err_name(rc));
    return rc == 0;
}

static void each_backend(void (*fn)(int backend))
{
    int ran = 0;
    for (size_t i = 0; i < sizeof all_backends / sizeof all_backends[0]; i++) {
        int be = all_backends[i];
        if (!ssock_tls_backend_available(be)) {
            if (th_skip_check("backend %s not built: its runs are skipped",
                              ssock_tls_backend_name(be)))
                fail_msg("SSOCK_GATE=1: every TLS backend must be built");
            continue;
        }
        print_message("[ backend  ] %s\n", ssock_tls_backend_name(be));
        fn(be);
        ran++;
    }
    if (ran == 0)
        TH_SKIP("no TLS backend built");
}

static void each_backend_version(void (*fn)(int backend, int version))
{
    int ran = 0;
    for (size_t i = 0; i < sizeof all_backends / sizeof all_backends[0]; i++) {
        int be = all_backends[i];
        if (!ssock_tls_backend_available(be)) {
            if (th_skip_check("backend %s not built: its runs are skipped",
                              ssock_tls_backend_name(be)))
                fail_msg("SSOCK_GATE=1: every TLS backend must be built");
            continue;
        }
        print_message("[ backend  ] %s TLS 1.2\n", ssock_tls_backend_name(be));
        fn(be, TLS1_2_VERSION);
        if (has_tls13(be)) {
            print_message("[ backend  ] %s TLS 1.3\n",
                          ssock_tls_backend_name(be));
            fn(be, TLS1_3_VERSION);
        } else {
            print_message("[ backend  ] %s has no TLS 1.3 (mbedTLS 2.28)\n",
                          ssock_tls_backend_name(be));
        }
        ran++;
    }
    if (ran == 0)
        TH_SKIP("no TLS backend built");
}

/* ---- 1. the name rules (pure) -------------------------------------- */

static int add(struct ssock__tls_sni *t, size_t pair, const char *name)
{
    return ssock__tls_sni_add(t, pair, name, strlen(name));
}

static size_t pick(const struct ssock__tls_sni *t, const char *name)
{
    return ssock__tls_sni_pick(t, name, strlen(name));
}

static void test_rules_add(void **state)
{
    struct ssock__tls_sni t;
    char big[300];
    (void)state;

    ssock__tls_sni_init(&t);
    assert_int_equal(add(&t, 0, "localhost"), 1);
    assert_int_equal(add(&t, 1, "A.Example.COM"), 1);
    assert_string_equal(t.v[1].name, "a.example.com"); /* stored lower case */
    assert_int_equal(t.v[1].wildcard, 0);
    assert_int_equal(add(&t, 2, "*.Example.com"), 1);
    assert_string_equal(t.v[2].name, "example.com"); /* after "*." */
    assert_int_equal(t.v[2].wildcard, 1);
    assert_int_equal(add(&t, 1, "trailing.example.com."), 1);
    assert_string_equal(t.v[3].name, "trailing.example.com");
    assert_int_equal(t.count, 4);

    /* Names that can never match are ignored (0), not errors. */
    assert_int_equal(add(&t, 1, ""), 0);
    assert_int_equal(add(&t, 1, "."), 0);
    assert_int_equal(add(&t, 1, ".example.com"), 0);
    assert_int_equal(add(&t, 1, "a..example.com"), 0);
    assert_int_equal(add(&t, 1, "a.example.com.."), 0);
    assert_int_equal(add(&t, 1, "*"), 0);
    assert_int_equal(add(&t, 1, "*."), 0);
    assert_int_equal(add(&t, 1, "*.com"), 0); /* two labels after "*" */
    assert_int_equal(add(&t, 1, "f*.example.com"), 0);
    assert_int_equal(add(&t, 1, "*foo.example.com"), 0);
    assert_int_equal(add(&t, 1, "a.*.example.com"), 0);
    assert_int_equal(add(&t, 1, "*.*.example.com"), 0);
    assert_int_equal(add(&t, 1, "**.example.com"), 0);
    assert_int_equal(ssock__tls_sni_add(&t, 1, "a\0b.example.com", 15), 0);
    assert_int_equal(ssock__tls_sni_add(&t, 1, NULL, 3), 0);
    memset(big, 'a', sizeof big);
    for (size_t i = 63; i < 255; i += 64)
        big[i] = '.';
    assert_int_equal(ssock__tls_sni_add(&t, 1, big, 256), 0);
    assert_int_equal(ssock__tls_sni_add(&t, 1, big, 255), 1);
    big[255] = '.'; /* 255 bytes and a trailing dot */
    assert_int_equal(ssock__tls_sni_add(&t, 1, big, 256), 1);
    assert_int_equal(t.v[t.count - 1].len, 255);
    assert_int_equal(t.count, 6);
    ssock__tls_sni_free(&t);
    assert_int_equal(t.count, 0);
    assert_null(t.v);
    ssock__tls_sni_free(&t); /* again: fine */
    ssock__tls_sni_free(NULL);
}

/* The matching rules in one table-driven test. */
static void test_rules(void **state)
{
    struct ssock__tls_sni t;
    char big[300];
    (void)state;

    ssock__tls_sni_init(&t);
    assert_int_equal(add(&t, 0, "localhost"), 1);
    assert_int_equal(add(&t, 1, "a.example.com"), 1);
    assert_int_equal(add(&t, 1, "Mixed.Example.NET"), 1);
    assert_int_equal(add(&t, 2, "*.example.com"), 1);
    assert_int_equal(add(&t, 3, "xn--bcher-kva.example"), 1);
    assert_int_equal(add(&t, 4, "*.wild.test"), 1);
    assert_int_equal(add(&t, 5,
                         "b\xc3\xbc"
                         "cher.example"),
                     1);

    static const struct {
        const char *name;
        size_t pair;
    } cases[] = {
        /* exact, any ASCII case, one trailing dot */
        {"localhost", 0},
        {"LocalHost.", 0},
        {"a.example.com", 1},
        {"A.EXAMPLE.COM", 1},
        {"a.example.com.", 1},
        {"mixed.example.net", 1},
        {"MIXED.EXAMPLE.NET.", 1},
        /* wildcard: exactly one non-empty left-most label */
        {"b.example.com", 2},
        {"B.Example.Com", 2},
        {"b.example.com.", 2},
        {"xn--bcher-kva.example.com", 2}, /* IDNA label: just bytes */
        {"a-b_c.example.com", 2},
        {"a.b.example.com", 0},
        {"example.com", 0},
        {".example.com", 0},
        {"..example.com", 0},
        {"*.example.com", 2}, /* a client's "*" is one label like any */
        {"x.wild.test", 4},
        {"wild.test", 0},
        {"x.y.wild.test", 0},
        /* not a match */
        {"a.example.com..", 0}, /* two trailing dots */
        {"a.example.co", 0},
        {"a.example.comm", 0},
        {"aa.example.com.x", 0},
        {"unknown.test", 0},
        {".", 0},
        {"..", 0},
        {"", 0},
        /* IDNA: the xn-- form is compared as bytes, case-insensitively;
         * UTF-8 only byte for byte (no Unicode case folding) */
        {"xn--bcher-kva.example", 3},
        {"XN--BCHER-KVA.EXAMPLE", 3},
        {"xn--bcher-kva.example.", 3},
        {"b\xc3\xbc"
         "cher.example",
         5},
        {"B\xc3\xbc"
         "CHER.EXAMPLE",
         5},
        {"b\xc3\x9c"
         "cher.example",
         0}, /* U+00DC is not U+00FC here */
        {"bucher.example", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = pick(&t, cases[i].name);
        if (got != cases[i].pair)
            fail_msg("pick(\"%s\") = %zu, want %zu", cases[i].name, got,
                     cases[i].pair);
    }

    /* length: the name, not a NUL, decides; NUL inside never matches */
    assert_int_equal(ssock__tls_sni_pick(&t, "a.example.comXYZ", 13), 1);
    assert_int_equal(ssock__tls_sni_pick(&t, "a.example.com\0", 14), 0);
    assert_int_equal(ssock__tls_sni_pick(&t, "b\0.example.com", 14), 0);
    assert_int_equal(ssock__tls_sni_pick(&t, NULL, 3), 0);
    assert_int_equal(ssock__tls_sni_pick(&t, "a.example.com", 0), 0);

    /* longer than 255 bytes (256 with a trailing dot): pair 0, even when
     * the wildcard would cover it */
    memset(big, 'a', sizeof big);
    /* one label of 243 bytes + ".example.com": 255 bytes */
    memcpy(big + 243, ".example.com", 12);
    assert_int_equal(ssock__tls_sni_pick(&t, big, 255), 2);
    big[255] = '.';
    assert_int_equal(ssock__tls_sni_pick(&t, big, 256), 2);
    /* one label of 244 bytes + ".example.com": 256 bytes */
    memset(big, 'a', sizeof big);
    memcpy(big + 244, ".example.com", 12);
    assert_int_equal(ssock__tls_sni_pick(&t, big, 256), 0);
    big[256] = '.';
    assert_int_equal(ssock__tls_sni_pick(&t, big, 257), 0);
    ssock__tls_sni_free(&t);
}

/* Exact beats wildcard whatever the order; the first pair wins. */
static void test_rules_order(void **state)
{
    struct ssock__tls_sni t;
    (void)state;

    ssock__tls_sni_init(&t);
    assert_int_equal(add(&t, 0, "localhost"), 1);
    assert_int_equal(add(&t, 1, "*.example.com"), 1); /* wildcard first */
    assert_int_equal(add(&t, 2, "a.example.com"), 1);
    assert_int_equal(add(&t, 3, "*.example.com"), 1); /* again, later */
    assert_int_equal(add(&t, 4, "a.example.com"), 1); /* again, later */
    assert_int_equal(add(&t, 5, "LOCALHOST"), 1);     /* pair 0 has it */
    assert_int_equal(pick(&t, "a.example.com"), 2);
    assert_int_equal(pick(&t, "b.example.com"), 1);
    assert_int_equal(pick(&t, "localhost"), 0);
    ssock__tls_sni_free(&t);

    /* a wildcard of pair 0 is still pair 0's */
    ssock__tls_sni_init(&t);
    assert_int_equal(add(&t, 0, "*.example.com"), 1);
    assert_int_equal(add(&t, 1, "*.example.com"), 1);
    assert_int_equal(add(&t, 2, "b.example.com"), 1);
    assert_int_equal(pick(&t, "a.example.com"), 0);
    assert_int_equal(pick(&t, "b.example.com"), 2);
    ssock__tls_sni_free(&t);
}

static void test_pair_what(void **state)
{
    char b[48];
    (void)state;
    assert_string_equal(ssock__tls_pair_what(b, sizeof b, 0, "certificate"),
                        "certificate");
    assert_string_equal(ssock__tls_pair_what(b, sizeof b, 1, "key"),
                        "extra_certs[0] key");
    assert_string_equal(ssock__tls_pair_what(b, sizeof b, 64, "certificate"),
                        "extra_certs[63] certificate");
}

/* ---- 2. configuration ---------------------------------------------- */

static int cfg_try(int backend, const ssock_tls_cert *extra, size_t n,
                   int allow_expired, char *err, size_t errlen,
                   ssock_tls_config **out)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;

    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.extra_certs = extra;
    t.extra_cert_count = n;
    t.allow_expired_cert = allow_expired;
    int rc = ssock_tls_config_new(&cfg, &t, err, errlen);
    if (rc != 0)
        assert_null(cfg);
    if (out != NULL)
        *out = cfg;
    else
        ssock_tls_config_free(cfg);
    return rc;
}

#define FILE_PAIR(c, k)                                                        \
    {                                                                          \
        CERT(c), NULL, 0, CERT(k), NULL, 0                                     \
    }

/* rc and a piece of the message, printed for the log. */
static void expect_err(int backend, const ssock_tls_cert *extra, size_t n,
                       int want_rc, const char *want_text)
{
    char err[SSOCK_TLS_ERRBUF_SIZE];
    int rc = cfg_try(backend, extra, n, 0, err, sizeof err, NULL);
    print_message("    %s: %s\n", ssock_err_name(rc), err);
    if (rc != want_rc)
        fail_msg("got %s, want %s: %s", ssock_err_name(rc),
                 ssock_err_name(want_rc), err);
    if (strstr(err, want_text) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, want_text);
}

static void run_config_errors(int be)
{
    static const ssock_tls_cert a = FILE_PAIR("sni-a.pem", "sni-a.key");
    char err[SSOCK_TLS_ERRBUF_SIZE];
    ssock_tls_config *cfg = NULL;

    /* arguments */
    expect_err(be, NULL, 1, SSOCK_ETLSCONFIG,
               "extra_certs is NULL but extra_cert_count is 1");
    {
        static ssock_tls_cert many[SSOCK_TLS_MAX_EXTRA_CERTS + 1];
        expect_err(be, many, SSOCK_TLS_MAX_EXTRA_CERTS + 1, SSOCK_ETLSCONFIG,
                   "extra_cert_count must be <= 64");
    }
    {
        ssock_tls_cert p[2] = {a, {NULL, NULL, 0, NULL, NULL, 0}};
        expect_err(be, p, 2, SSOCK_ETLSCONFIG,
                   "extra_certs[1] certificate is required");
        p[1].cert_file = CERT("sni-a.pem");
        expect_err(be, p, 2, SSOCK_ETLSCONFIG,
                   "extra_certs[1] key is required");
        p[1].key_file = CERT("sni-a.key");
        p[1].key_mem = "x";
        p[1].key_len = 1;
        expect_err(be, p, 2, SSOCK_ETLSCONFIG,
                   "extra_certs[1] key: give a file or memory, not both");
        p[1].key_file = NULL;
        p[1].key_mem = NULL;
        expect_err(be, p, 2, SSOCK_ETLSCONFIG,
                   "extra_certs[1] key: memory source needs a pointer");
        p[1].cert_file = "";
        expect_err(be, p, 2, SSOCK_ETLSCONFIG,
                   "extra_certs[1] certificate: file name is empty");
    }
    /* files */
    {
        ssock_tls_cert p[2] = {
            a, {CERT("no-such-file.pem"), NULL, 0, CERT("sni-a.key"), NULL, 0}};
        expect_err(be, p, 2, SSOCK_EFILE,
                   "cannot read extra_certs[1] certificate file '" CERT(
                       "no-such-file.pem") "'");
    }
    /* contents: each checked like pair 0, and named */
    {
        ssock_tls_cert p[2] = {a, FILE_PAIR("garbage.pem", "sni-a.key")};
        expect_err(be, p, 2, SSOCK_ECERTPARSE,
                   "extra_certs[1] certificate '" CERT("garbage.pem") "'");
    }
    {
        ssock_tls_cert p[1] = {FILE_PAIR("sni-a.pem", "garbage.pem")};
        expect_err(be, p, 1, SSOCK_ECERTPARSE,
                   "extra_certs[0] key '" CERT("garbage.pem") "'");
    }
    {
        ssock_tls_cert p[2] = {a, FILE_PAIR("sni-a.pem", "mismatch.key")};
        expect_err(be, p, 2, SSOCK_EKEYMISMATCH,
                   "extra_certs[1] key '" CERT(
                       "mismatch.key") "' does not match "
                                       "certificate '" CERT("sni-a.pem") "'");
    }
    {
        ssock_tls_cert p[1] = {FILE_PAIR("expired.pem", "expired.key")};
        expect_err(be, p, 1, SSOCK_ECERTTIME,
                   "extra_certs[0] certificate '" CERT(
                       "expired.pem") "' (#0 in chain) expired on 2001-01-01");
        assert_int_equal(cfg_try(be, p, 1, 1, err, sizeof err, &cfg), 0);
        assert_non_null(
            strstr(ssock_tls_config_message(cfg),
                   "extra_certs[0] certificate '" CERT(
                       "expired.pem") "' (#0 in chain) expired on 2001-01-01 "
                                      "(accepted: allow_expired_cert)"));
        ssock_tls_config_free(cfg);
    }
    {
        ssock_tls_cert p[1] = {FILE_PAIR("notyet.pem", "notyet.key")};
        expect_err(be, p, 1, SSOCK_ECERTTIME,
                   "extra_certs[0] certificate '" CERT(
                       "notyet.pem") "' (#0 in chain) is not valid before");
    }
    {
        /* RSA-1024: too weak for both (mbedTLS: our key-size floor;
         * OpenSSL: security level 2), like the same pair as pair 0 */
        ssock_tls_cert p[2] = {a, FILE_PAIR("sni-weak.pem", "sni-weak.key")};
        expect_err(be, p, 2, SSOCK_ETLSCONFIG, "extra_certs[1] ");
        ssock_tls_options t;
        ssock_tls_options_init(&t);
        t.backend = be;
        t.cert_file = CERT("sni-weak.pem");
        t.key_file = CERT("sni-weak.key");
        assert_int_equal(ssock_tls_config_new(&cfg, &t, NULL, 0),
                         SSOCK_ETLSCONFIG);
        assert_null(cfg);
    }
    /* a pair no name can select: accepted, with a warning */
    {
        ssock_tls_cert p[2] = {a,
                               FILE_PAIR("sni-badwild.pem", "sni-badwild.key")};
        assert_int_equal(cfg_try(be, p, 2, 0, err, sizeof err, &cfg), 0);
        print_message("    warning: %s\n", err);
        assert_non_null(
            strstr(ssock_tls_config_message(cfg),
                   "extra_certs[1] certificate '" CERT(
                       "sni-badwild.pem") "' has no usable DNS name"));
        assert_string_equal(err, ssock_tls_config_message(cfg));
        ssock_tls_config_free(cfg);
    }
    /* good pairs: no message */
    {
        ssock_tls_cert p[3] = {a, FILE_PAIR("sni-wild.pem", "sni-wild.key"),
                               FILE_PAIR("sni-cn.pem", "sni-cn.key")};
        assert_int_equal(cfg_try(be, p, 3, 0, err, sizeof err, &cfg), 0);
        assert_string_equal(err, "");
        ssock_tls_config_free(cfg);
    }
    /* the cap itself is fine */
    {
        static ssock_tls_cert many[SSOCK_TLS_MAX_EXTRA_CERTS];
        for (size_t i = 0; i < SSOCK_TLS_MAX_EXTRA_CERTS; i++)
            many[i] = a;
        assert_int_equal(cfg_try(be, many, SSOCK_TLS_MAX_EXTRA_CERTS, 0, err,
                                 sizeof err, NULL),
                         0);
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    each_backend(run_config_errors);
}

/* A caller built against the 0.2 header (struct up to verify_peer_arg):
 * the SNI fields are not read, whatever follows in memory; and a caller
 * with a longer struct whose unknown bytes are set gets SSOCK_ENOTSUP. */
static void run_config_sizes(int be)
{
    const size_t short_size = offsetof(ssock_tls_options, extra_certs);
    unsigned char *buf = malloc(sizeof(ssock_tls_options) + 16);
    ssock_tls_options *o = (ssock_tls_options *)(void *)buf;
    ssock_tls_config *cfg = NULL;

    assert_non_null(buf);
    memset(buf, 0xab, sizeof(ssock_tls_options) + 16);
    ssock_tls_options_init_sized(o, short_size);
    /* init wrote only short_size bytes */
    assert_int_equal(buf[short_size], 0xab);
    o->backend = be;
    o->cert_file = CERT("server-ecdsa.pem");
    o->key_file = CERT("server-ecdsa.key");
    assert_int_equal(ssock_tls_config_new(&cfg, o, NULL, 0), 0);
    ssock_tls_config_free(cfg);

    /* the current size: init clears them */
    ssock_tls_options_init(o);
    assert_null(o->extra_certs);
    assert_int_equal(o->extra_cert_count, 0);
    o->backend = be;
    o->cert_file = CERT("server-ecdsa.pem");
    o->key_file = CERT("server-ecdsa.key");
    /* a newer caller: 16 more bytes, one set */
    o->struct_size = sizeof(ssock_tls_options) + 16;
    memset(buf + sizeof(ssock_tls_options), 0, 16);
    buf[sizeof(ssock_tls_options) + 5] = 1;
    assert_int_equal(ssock_tls_config_new(&cfg, o, NULL, 0), SSOCK_ENOTSUP);
    assert_null(cfg);
    free(buf);
}

static void test_config_sizes(void **state)
{
    (void)state;
    each_backend(run_config_sizes);
}

/* ---- 3. handshakes ------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static X509 *load_x509(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;

    if (f == NULL)
        fail_msg("cannot open %s", path);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        fail_msg("cannot parse %s", path);
    return x;
}

static ssock_server *server_open(int backend, int version, const char *cert,
                                 const char *key, const ssock_tls_cert *extra,
                                 size_t n)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    ssock_server *srv = NULL;
    char err[SSOCK_TLS_ERRBUF_SIZE];

    ssock_tls_options_init(&t);
    t.backend = backend;
    t.cert_file = cert;
    t.key_file = key;
    t.extra_certs = extra;
    t.extra_cert_count = n;
    t.min_version = version == TLS1_3_VERSION ? SSOCK_TLS_VERSION_1_3
                                              : SSOCK_TLS_VERSION_1_2;
    int rc = ssock_tls_config_new(&cfg, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("ssock_tls_config_new: %s: %s", ssock_err_name(rc), err);
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = LONG_MS;
    o.tls = cfg;
    rc = ssock_server_open(&srv, &o);
    ssock_tls_config_free(cfg);
    assert_int_equal(rc, 0);
    return srv;
}

typedef struct acc {
    th_call call;
    ssock_server *srv;
    ssock_socket *sock;
} acc;

static int acc_fn(void *p)
{
    acc *a = p;
    return ssock_server_accept(a->srv, &a->sock);
}

/* What a client saw: the leaf, the length of the chain it was sent. */
typedef struct seen {
    X509 *leaf; /* owned */
    int chain_len;
    int group; /* NID of the key-exchange group */
    char version[16];
    char cipher[96];
} seen;

/* One connection to `srv` sending `sni` (NULL: none) with TLS `version`
 * (and, when not NULL, offering only the key-exchange `groups`); checks
 * both handshakes, the server's view of the name, and returns what the
 * client received. */
static seen connect_one(ssock_server *srv, int version, const char *sni,
                        const char *groups)
{
    tc_opts co;
    tc_conn c;
    acc a = {.srv = srv, .sock = NULL};
    seen s;
    ssock_tls_info info;

    memset(&s, 0, sizeof s);
    tc_opts_init(&co);
    co.min_version = version;
    co.max_version = version;
    co.ca_file = CERT("ca.pem"); /* the chain must verify */
    co.sni = sni;
    assert_int_equal(th_call_start(&a.call, acc_fn, &a), 0);
    int rc = tc_open(&c, ssock_server_local_port(srv), &co, LONG_MS);
    if (rc != TC_OK)
        fail_msg("tc_open: %s", c.err);
    if (groups != NULL)
        assert_int_equal(SSL_set1_groups_list((SSL *)c.ssl, groups), 1);
    rc = tc_handshake(&c, LONG_MS);
    assert_true(th_call_wait(&a.call, 3 * LONG_MS));
    if (rc != TC_OK)
        fail_msg("client handshake for \"%s\": %d %s (server: %s)",
                 sni ? sni : "(none)", rc, c.err,
                 ssock_server_tls_last_error(srv));
    assert_int_equal(a.call.rc, 0);
    assert_non_null(a.sock);

    SSL *ssl = c.ssl;
    X509 *leaf = SSL_get1_peer_certificate(ssl);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    assert_non_null(leaf);
    s.leaf = leaf;
    s.chain_len = chain != NULL ? sk_X509_num(chain) : 0;
    snprintf(s.version, sizeof s.version, "%s", tc_version(&c));
    snprintf(s.cipher, sizeof s.cipher, "%s", tc_cipher(&c));
    s.group = SSL_get_negotiated_group(ssl);

    /* the server's side: the name as sent, in both getters */
    const char *got = ssock_socket_tls_sni(a.sock);
    assert_int_equal(ssock_socket_tls_info(a.sock, &info), 0);
    if (sni == NULL) {
        assert_null(got);
        assert_null(info.sni);
    } else {
        assert_non_null(got);
        assert_string_equal(got, sni);
        assert_string_equal(info.sni, sni);
    }
    assert_string_equal(ssock_socket_tls_version(a.sock),
                        version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    /* and the connection works */
    {
        static const char msg[] = "sni";
        char back[sizeof msg];
        size_t n = 0;
        assert_int_equal(tc_write_all(&c, msg, sizeof msg, LONG_MS), TC_OK);
        assert_int_equal(ssock_socket_read(a.sock, back, sizeof back, &n), 0);
        assert_int_equal(n, sizeof msg);
        assert_memory_equal(back, msg, sizeof msg);
    }
    ssock_socket_free(a.sock);
    tc_close(&c);
    return s;
}

static void expect_leaf(const seen *s, const char *sni, const char *file,
                        int chain_len)
{
    X509 *want = load_x509(file);
    char subj[256];

    X509_NAME_oneline(X509_get_subject_name(s->leaf), subj, sizeof subj);
    print_message("    %-28s -> %s (%s, %s, chain %d)\n",
                  sni ? sni : "(no SNI)", subj, s->version, s->cipher,
                  s->chain_len);
    if (X509_cmp(s->leaf, want) != 0) {
        char w[256];
        X509_NAME_oneline(X509_get_subject_name(want), w, sizeof w);
        X509_free(want);
        fail_msg("\"%s\": the client got %s, want %s (%s)",
                 sni ? sni : "(none)", subj, w, file);
    }
    X509_free(want);
    if (chain_len > 0)
        assert_int_equal(s->chain_len, chain_len);
    /* TLS 1.2: the suite follows the key type of the pair */
    if (strcmp(s->version, "TLSv1.2") == 0) {
        int rsa =
            EVP_PKEY_get_base_id(X509_get0_pubkey(s->leaf)) == EVP_PKEY_RSA;
        if (strstr(s->cipher, rsa ? "_RSA_" : "_ECDSA_") == NULL)
            fail_msg("\"%s\": cipher %s for a%s key", sni ? sni : "(none)",
                     s->cipher, rsa ? "n RSA" : "n ECDSA");
    }
}

static void check(ssock_server *srv, int version, const char *sni,
                  const char *file, int chain_len)
{
    seen s = connect_one(srv, version, sni, NULL);
    expect_leaf(&s, sni, file, chain_len);
    X509_free(s.leaf);
}

/* TLS 1.3 with a HelloRetryRequest: the client's first key share is X448,
 * which the server does not take, so it asks again for X25519; the second
 * ClientHello goes through the name selection again and must end on the
 * same pair. */
static void run_select_hrr(int be)
{
    static const ssock_tls_cert extra[] = {
        FILE_PAIR("sni-a.pem", "sni-a.key"),
        FILE_PAIR("sni-wild.pem", "sni-wild.key"),
    };
    static const struct {
        const char *sni;
        const char *file;
    } cases[] = {
        {"b.example.com", CERT("sni-wild.pem")},
        {"a.example.com", CERT("sni-a.pem")},
        {"unknown.test", CERT("server-rsa.pem")},
        {NULL, CERT("server-rsa.pem")},
    };
    if (!has_tls13(be)) {
        print_message("    no TLS 1.3 (mbedTLS 2.28): no HelloRetryRequest\n");
        return;
    }
    ssock_server *srv = server_open(be, TLS1_3_VERSION, CERT("server-rsa.pem"),
                                    CERT("server-rsa.key"), extra, 2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seen s = connect_one(srv, TLS1_3_VERSION, cases[i].sni, "X448:X25519");
        /* X25519 negotiated although X448 was the share first sent: the
         * server did ask again */
        assert_int_equal(s.group, NID_X25519);
        expect_leaf(&s, cases[i].sni, cases[i].file, 1);
        X509_free(s.leaf);
    }
    ssock_server_free(srv);
}

static void test_select_hrr(void **state)
{
    (void)state;
    each_backend(run_select_hrr);
}

/* Pair 0 ECDSA (localhost), then: ECDSA with SAN names (and a CN that is
 * not a name), RSA wildcard, ECDSA CN only, ECDSA with an IP-only SAN (CN
 * is the name), ECDSA with unusable wildcards. */
static void run_select(int be, int version)
{
    static const ssock_tls_cert extra[] = {
        FILE_PAIR("sni-a.pem", "sni-a.key"),
        FILE_PAIR("sni-wild.pem", "sni-wild.key"),
        FILE_PAIR("sni-cn.pem", "sni-cn.key"),
        FILE_PAIR("sni-ipsan.pem", "sni-ipsan.key"),
        FILE_PAIR("sni-badwild.pem", "sni-badwild.key"),
    };
    static const struct {
        const char *sni;
        const char *file;
    } cases[] = {
        {NULL, CERT("server-ecdsa.pem")},
        {"localhost", CERT("server-ecdsa.pem")},
        {"a.example.com", CERT("sni-a.pem")},
        {"A.Example.COM", CERT("sni-a.pem")},
        {"a.example.com.", CERT("sni-a.pem")},
        {"mixed.example.net", CERT("sni-a.pem")},
        {"cn-ignored.example.org", CERT("server-ecdsa.pem")},
        {"b.example.com", CERT("sni-wild.pem")},
        {"xn--bcher-kva.example.com", CERT("sni-wild.pem")},
        {"a.b.example.com", CERT("server-ecdsa.pem")},
        {"example.com", CERT("server-ecdsa.pem")},
        {"cn-only.example.org", CERT("sni-cn.pem")},
        {"CN-ONLY.example.org", CERT("sni-cn.pem")},
        {"ipsan.example.org", CERT("sni-ipsan.pem")},
        {"fa.example.net", CERT("server-ecdsa.pem")},
        {"x.net", CERT("server-ecdsa.pem")},
        {"a.x.example.net", CERT("server-ecdsa.pem")},
        {"badwild.example.net", CERT("server-ecdsa.pem")},
        {"unknown.test", CERT("server-ecdsa.pem")},
    };
    ssock_server *srv = server_open(be, version, CERT("server-ecdsa.pem"),
                                    CERT("server-ecdsa.key"), extra,
                                    sizeof extra / sizeof extra[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(srv, version, cases[i].sni, cases[i].file, 1);
    ssock_tls_stats st;
    assert_int_equal(ssock_server_tls_stats(srv, &st), 0);
    assert_int_equal(st.handshakes_failed, 0);
    assert_int_equal(st.handshakes_ok, sizeof cases / sizeof cases[0]);
    ssock_server_free(srv);
}

static void test_select(void **state)
{
    (void)state;
    each_backend_version(run_select);
}

/* Pair 0 RSA, extra pairs ECDSA: the RSA certificate must not stay next
 * to the selected ECDSA one (the client offers both key types). */
static void run_select_rsa_default(int be, int version)
{
    static const ssock_tls_cert extra[] = {
        FILE_PAIR("sni-a.pem", "sni-a.key"),
        FILE_PAIR("sni-cn.pem", "sni-cn.key"),
        FILE_PAIR("sni-wild.pem", "sni-wild.key"),
    };
    ssock_server *srv =
        server_open(be, version, CERT("server-rsa.pem"), CERT("server-rsa.key"),
                    extra, sizeof extra / sizeof extra[0]);
    check(srv, version, NULL, CERT("server-rsa.pem"), 1);
    check(srv, version, "a.example.com", CERT("sni-a.pem"), 1);
    check(srv, version, "unknown.test", CERT("server-rsa.pem"), 1);
    check(srv, version, "cn-only.example.org", CERT("sni-cn.pem"), 1);
    check(srv, version, "z.example.com", CERT("sni-wild.pem"), 1);
    check(srv, version, "localhost", CERT("server-rsa.pem"), 1);
    ssock_server_free(srv);
}

static void test_select_rsa_default(void **state)
{
    (void)state;
    each_backend_version(run_select_rsa_default);
}

/* Order and chains: an exact name beats an earlier wildcard; of two pairs
 * with the same name the first wins; an extra pair's chain is sent whole
 * (sni-a + ca from memory: 2 certificates, sni-a alone: 1). */
static void run_select_order(int be, int version)
{
    size_t alen, calen, klen;
    char *a_pem = slurp(CERT("sni-a.pem"), &alen);
    char *ca_pem = slurp(CERT("ca.pem"), &calen);
    char *a_key = slurp(CERT("sni-a.key"), &klen);
    char *chain = malloc(alen + calen);
    assert_non_null(chain);
    memcpy(chain, a_pem, alen);
    memcpy(chain + alen, ca_pem, calen);

    ssock_tls_cert extra[] = {
        FILE_PAIR("sni-wild.pem", "sni-wild.key"),
        {NULL, chain, alen + calen, NULL, a_key, klen}, /* memory */
        FILE_PAIR("sni-a.pem", "sni-a.key"),
    };
    ssock_server *srv = server_open(be, version, CERT("server-ecdsa.pem"),
                                    CERT("server-ecdsa.key"), extra, 3);
    check(srv, version, "a.example.com", CERT("sni-a.pem"), 2);
    check(srv, version, "b.example.com", CERT("sni-wild.pem"), 1);
    ssock_server_free(srv);

    /* the other way round: the file pair first */
    extra[1] = extra[2];
    extra[2] = (ssock_tls_cert){NULL, chain, alen + calen, NULL, a_key, klen};
    srv = server_open(be, version, CERT("server-ecdsa.pem"),
                      CERT("server-ecdsa.key"), extra, 3);
    check(srv, version, "a.example.com", CERT("sni-a.pem"), 1);
    check(srv, version, "mixed.example.net", CERT("sni-a.pem"), 1);
    ssock_server_free(srv);

    /* pair 0 itself named by an extra pair: pair 0 wins */
    ssock_tls_cert same[] = {FILE_PAIR("server-rsa.pem", "server-rsa.key")};
    srv = server_open(be, version, CERT("server-ecdsa.pem"),
                      CERT("server-ecdsa.key"), same, 1);
    check(srv, version, "localhost", CERT("server-ecdsa.pem"), 1);
    ssock_server_free(srv);
    free(chain);
    free(a_pem);
    free(ca_pem);
    free(a_key);
}

static void test_select_order(void **state)
{
    (void)state;
    each_backend_version(run_select_order);
}

/* Without extra pairs: one certificate for every name (as before 0.3),
 * and the name is still reported. */
static void run_single(int be, int version)
{
    ssock_server *srv = server_open(be, version, CERT("server-ecdsa.pem"),
                                    CERT("server-ecdsa.key"), NULL, 0);
    check(srv, version, "a.example.com", CERT("server-ecdsa.pem"), 1);
    check(srv, version, NULL, CERT("server-ecdsa.pem"), 1);
    ssock_server_free(srv);
}

static void test_single(void **state)
{
    (void)state;
    each_backend_version(run_single);
}

/* One configuration used by two servers accepting on two threads at once
 * (the selection data is shared, read-only; OpenSSL shares the pairs'
 * certificates and keys by reference count, mbedTLS by pointer): every
 * client, on its own thread, gets the pair its name picks. For TSan. */
typedef struct par {
    ssock_server *srv;
    int version;
    int rounds;
    X509 *want[3]; /* pair for names[i % 3] */
    atomic_int bad;
    char why_s[400]; /* the last failure seen by the server thread */
    char why_c[400]; /* and by the client thread */
} par;

static const char *const par_names[3] = {"a.example.com", "q.example.com",
                                         "other.test"};

static void *par_server(void *p)
{
    par *w = p;
    for (int i = 0; i < w->rounds; i++) {
        ssock_socket *sock = NULL;
        int rc = ssock_server_accept(w->srv, &sock);
        if (rc != 0) {
            atomic_fetch_add(&w->bad, 1);
            snprintf(w->why_s, sizeof w->why_s, "accept: %s (%s)",
                     ssock_err_name(rc), ssock_server_tls_last_error(w->srv));
            break;
        }
        const char *sni = ssock_socket_tls_sni(sock);
        if (sni == NULL || strcmp(sni, par_names[i % 3]) != 0) {
            atomic_fetch_add(&w->bad, 1);
            snprintf(w->why_s, sizeof w->why_s, "server saw sni %s, want %s",
                     sni ? sni : "(none)", par_names[i % 3]);
        }
        ssock_socket_free(sock);
    }
    return NULL;
}

static void *par_client(void *p)
{
    par *w = p;
    for (int i = 0; i < w->rounds; i++) {
        tc_opts co;
        tc_conn c;
        tc_opts_init(&co);
        co.min_version = w->version;
        co.max_version = w->version;
        co.ca_file = CERT("ca.pem");
        co.sni = par_names[i % 3];
        if (tc_open(&c, ssock_server_local_port(w->srv), &co, LONG_MS) !=
            TC_OK) {
            atomic_fetch_add(&w->bad, 1);
            snprintf(w->why_c, sizeof w->why_c, "tc_open: %s", c.err);
            break;
        }
        if (tc_handshake(&c, LONG_MS) != TC_OK) {
            atomic_fetch_add(&w->bad, 1);
            snprintf(w->why_c, sizeof w->why_c, "handshake: %s", c.err);
            tc_close(&c);
            break;
        }
        X509 *leaf = SSL_get1_peer_certificate((SSL *)c.ssl);
        if (leaf == NULL || X509_cmp(leaf, w->want[i % 3]) != 0) {
            atomic_fetch_add(&w->bad, 1);
            snprintf(w->why_c, sizeof w->why_c, "%s: wrong certificate",
                     par_names[i % 3]);
        }
        X509_free(leaf);
        tc_close(&c);
    }
    return NULL;
}

static void run_parallel(int be, int version)
{
    static const ssock_tls_cert extra[] = {
        FILE_PAIR("sni-a.pem", "sni-a.key"),
        FILE_PAIR("sni-wild.pem", "sni-wild.key"),
    };
    ssock_tls_options t;
    ssock_tls_config *cfg = NULL;
    ssock_server_options o;
    par w[2];
    th_thread st[2], ct[2];
    /* Valgrind runs ~20x slower: fewer rounds, the same interleaving */
    int rounds = th_slow_mode() == 1 ? 3 : 12;

    ssock_tls_options_init(&t);
    t.backend = be;
    t.cert_file = CERT("server-ecdsa.pem");
    t.key_file = CERT("server-ecdsa.key");
    t.extra_certs = extra;
    t.extra_cert_count = 2;
    t.min_version = version == TLS1_3_VERSION ? SSOCK_TLS_VERSION_1_3
                                              : SSOCK_TLS_VERSION_1_2;
    assert_int_equal(ssock_tls_config_new(&cfg, &t, NULL, 0), 0);
    ssock_server_options_init(&o);
    o.addr = "127.0.0.1";
    o.accept_timeout_ms = LONG_MS;
    o.tls = cfg;
    for (int k = 0; k < 2; k++) {
        memset(&w[k], 0, sizeof w[k]);
        atomic_init(&w[k].bad, 0);
        w[k].version = version;
        w[k].rounds = rounds;
        w[k].want[0] = load_x509(CERT("sni-a.pem"));
        w[k].want[1] = load_x509(CERT("sni-wild.pem"));
        w[k].want[2] = load_x509(CERT("server-ecdsa.pem"));
        assert_int_equal(ssock_server_open(&w[k].srv, &o), 0);
    }
    ssock_tls_config_free(cfg); /* the servers hold it */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(th_thread_start(&st[k], par_server, &w[k]), 0);
        assert_int_equal(th_thread_start(&ct[k], par_client, &w[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        assert_true(th_thread_join(&ct[k], 6 * LONG_MS));
        assert_true(th_thread_join(&st[k], 6 * LONG_MS));
    }
    for (int k = 0; k < 2; k++) {
        if (atomic_load(&w[k].bad) != 0)
            fail_msg("thread pair %d: %d failures; server: %s; client: %s", k,
                     atomic_load(&w[k].bad), w[k].why_s, w[k].why_c);
        for (int i = 0; i < 3; i++)
            X509_free(w[k].want[i]);
        ssock_server_free(w[k].srv);
    }
    print_message("    2 servers x %d connections on one config: all right\n",
                  rounds);
}

static void test_parallel(void **state)
{
    (void)state;
    each_backend_version(run_parallel);
}

/* ---- 4. openssl s_client -servername ------------------------------- */

static pid_t g_pid = -1;

static int teardown_proc(void **state)
{
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        (void)waitpid(g_pid, NULL, 0);
        g_pid = -1;
    }
    return 0;
}

/* Run argv with stdin from /dev/null, stdout+stderr into buf (at most
 * LONG_MS). The exit status, or -1 if it had to be killed. */
static int run_capture(char *const argv[], char *buf, size_t cap)
{
    int po[2], status = 0;
    size_t len = 0;
    int64_t end = th_now_ms() + LONG_MS;

    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    g_pid = fork();
    assert_true(g_pid >= 0);
    if (g_pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(po[1], 1) < 0 ||
            dup2(po[1], 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    buf[0] = '\0';
    for (;;) {
        struct pollfd pfd = {.fd = po[0], .events = POLLIN, .revents = 0};
        int64_t left = end - th_now_ms();
        if (left <= 0 || len + 1 >= cap)
            break;
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        ssize_t n = read(po[0], buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    close(po[0]);
    for (;;) {
        pid_t r = waitpid(g_pid, &status, WNOHANG);
        if (r == g_pid)
            break;
        if (th_now_ms() > end) {
            kill(g_pid, SIGKILL);
            (void)waitpid(g_pid, NULL, 0);
            status = -1;
            break;
        }
        th_sleep_ms(5);
    }
    g_pid = -1;
    return status;
}

static void run_s_client(int be)
{
    static const ssock_tls_cert extra[] = {
        FILE_PAIR("sni-a.pem", "sni-a.key"),
        FILE_PAIR("sni-wild.pem", "sni-wild.key"),
    };
    static char out[65536];
    char port[64];
    int tls13 = has_tls13(be);
    ssock_server *srv =
        server_open(be, TLS1_2_VERSION, CERT("server-ecdsa.pem"),
                    CERT("server-ecdsa.key"), extra, 2);
    acc a = {.srv = srv, .sock = NULL};

    snprintf(port, sizeof port, "127.0.0.1:%d", ssock_server_local_port(srv));
    char *argv[] = {(char *)SSOCK_OPENSSL_BIN,
                    "s_client",
                    "-connect",
                    port,
                    "-servername",
                    "s-client.example.com",
                    "-CAfile",
                    (char *)CERT("ca.pem"),
                    "-verify_return_error",
                    "-verify_hostname",
                    "s-client.example.com",
                    tls13 ? "-tls1_3" : "-tls1_2",
                    NULL};
    assert_int_equal(th_call_start(&a.call, acc_fn, &a), 0);
    int status = run_capture(argv, out, sizeof out);
    assert_true(th_call_wait(&a.call, 3 * LONG_MS));
    print_message("    s_client -servername s-client.example.com (%s): "
                  "status %d\n",
                  tls13 ? "TLS 1.3" : "TLS 1.2", status);
    if (a.call.rc != 0)
        fail_msg("accept: %s (server: %s); s_client said:\n%s",
                 ssock_err_name(a.call.rc), ssock_server_tls_last_error(srv),
                 out);
    assert_string_equal(ssock_socket_tls_sni(a.sock), "s-client.example.com");
    ssock_socket_free(a.sock);
    ssock_server_free(srv);
    /* the wildcard certificate, verified for that host name */
    if (strstr(out, "CN = wild.example.com") == NULL ||
        strstr(out, "Verification: OK") == NULL ||
        strstr(out, "Verify return code: 0 (ok)") == NULL)
        fail_msg("s_client did not get the wildcard certificate:\n%s", out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_s_client(void **state)
{
    (void)state;
    if (SSOCK_OPENSSL_BIN[0] == '\0' || access(SSOCK_OPENSSL_BIN, X_OK) != 0)
        TH_SKIP("openssl not found (%s)", SSOCK_OPENSSL_BIN[0]
                                              ? SSOCK_OPENSSL_BIN
                                              : "not found at configure time");
    each_backend(run_s_client);
}

int main(void)
{
    th_sigpipe_default();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_add),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_rules_order),
        cmocka_unit_test(test_pair_what),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_sizes),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_select_rsa_default),
        cmocka_unit_test(test_select_order),
        cmocka_unit_test(test_select_hrr),
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_parallel),
        cmocka_unit_test_teardown(test_s_client, teardown_proc),
    };
    return cmocka_run_group_tests_name("tls_sni", tests, NULL, NULL);
}
