/* src/errors.c: ssock_strerror(), ssock_err_name(), the version. */
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "ssock/features.h"
#include "ssock/tls.h"

struct code {
    int value;
    const char *name;
    const char *msg;
};

static const struct code codes[] = {
#define X(n, v, m) {SSOCK_##n, "SSOCK_" #n, m},
    SSOCK_ERROR_MAP(X)
#undef X
};
#define NCODES (sizeof codes / sizeof codes[0])

/* System errors the library is documented to return. */
static const struct {
    int err;
    const char *name;
} sys_errors[] = {
    {EADDRINUSE, "EADDRINUSE"},
    {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
    {EACCES, "EACCES"},
    {EMFILE, "EMFILE"},
    {ENFILE, "ENFILE"},
    {ECONNRESET, "ECONNRESET"},
    {EPIPE, "EPIPE"},
    {ECONNABORTED, "ECONNABORTED"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {EINTR, "EINTR"},
    {ENOBUFS, "ENOBUFS"},
    {EAFNOSUPPORT, "EAFNOSUPPORT"},
    {ENOTCONN, "ENOTCONN"},
};
#define NSYS (sizeof sys_errors / sizeof sys_errors[0])

static void test_every_code_has_its_message_and_name(void **state)
{
    (void)state;
    assert_true(NCODES >= 11);
    for (size_t i = 0; i < NCODES; i++) {
        /* Appended one after the other from -1000 down. */
        assert_int_equal(codes[i].value, -1000 - (int)i);
        const char *msg = ssock_strerror(codes[i].value);
        const char *name = ssock_err_name(codes[i].value);
        assert_true(codes[i].value <= -1000);
        assert_non_null(msg);
        assert_non_null(name);
        assert_string_equal(msg, codes[i].msg);
        assert_string_equal(name, codes[i].name);
    }
}

static void test_values_are_stable(void **state)
{
    (void)state;
    /* Codes are only ever appended; values never change. */
    assert_int_equal(SSOCK_OK, 0);
    assert_int_equal(SSOCK_EINVAL, -1000);
    assert_int_equal(SSOCK_EBADPORT, -1001);
    assert_int_equal(SSOCK_EBADTIMEOUT, -1002);
    assert_int_equal(SSOCK_EBADBACKLOG, -1003);
    assert_int_equal(SSOCK_EBADADDR, -1004);
    assert_int_equal(SSOCK_ERESOLVE, -1005);
    assert_int_equal(SSOCK_ENOMEM, -1006);
    assert_int_equal(SSOCK_ETIMEOUT, -1007);
    assert_int_equal(SSOCK_ECLOSED, -1008);
    assert_int_equal(SSOCK_ESERVERCLOSED, -1009);
    assert_int_equal(SSOCK_EOF, -1010);
}

static void test_messages_and_names_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *mi = ssock_strerror(codes[i].value);
        const char *ni = ssock_err_name(codes[i].value);
        assert_true(strlen(mi) > 0);
        assert_string_not_equal(mi, "unknown error");
        assert_string_not_equal(ni, "UNKNOWN");
        assert_string_not_equal(mi, ssock_strerror(0));
        assert_string_not_equal(ni, ssock_err_name(0));
        for (size_t j = i + 1; j < NCODES; j++) {
            assert_int_not_equal(codes[i].value, codes[j].value);
            assert_string_not_equal(mi, ssock_strerror(codes[j].value));
            assert_string_not_equal(ni, ssock_err_name(codes[j].value));
        }
        for (size_t k = 0; k < NSYS; k++) {
            assert_string_not_equal(mi, ssock_strerror(-sys_errors[k].err));
            assert_string_not_equal(ni, ssock_err_name(-sys_errors[k].err));
        }
    }
}

static void test_ok(void **state)
{
    (void)state;
    assert_non_null(ssock_strerror(0));
    assert_true(strlen(ssock_strerror(0)) > 0);
    assert_string_not_equal(ssock_strerror(0), "unknown error");
    assert_string_equal(ssock_err_name(0), "SSOCK_OK");
    assert_string_equal(ssock_err_name(SSOCK_OK), "SSOCK_OK");
}

static void test_errno_codes(void **state)
{
    (void)state;
    assert_non_null(strstr(ssock_strerror(-EADDRINUSE), "in use"));
    for (size_t i = 0; i < NSYS; i++) {
        const char *msg = ssock_strerror(-sys_errors[i].err);
        const char *name = ssock_err_name(-sys_errors[i].err);
        assert_non_null(msg);
        assert_non_null(name);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, "unknown error");
        assert_string_equal(name, sys_errors[i].name);
        for (size_t j = i + 1; j < NSYS; j++) {
            assert_string_not_equal(msg, ssock_strerror(-sys_errors[j].err));
            assert_string_not_equal(name, ssock_err_name(-sys_errors[j].err));
        }
    }
    /* EAGAIN == EWOULDBLOCK on Linux: either name will do. */
    {
        const char *n = ssock_err_name(-EAGAIN);
        assert_true(strcmp(n, "EAGAIN") == 0 || strcmp(n, "EWOULDBLOCK") == 0);
    }
}

static void test_unknown_codes(void **state)
{
    /* Negative values that are neither a library code nor an errno: just
     * past the last code, far past it, just above the library range. */
    const int last = codes[NCODES - 1].value;
    const int unknown[] = {-999,    last - 1, last - 100,
                           -500000, INT_MIN,  INT_MIN + 1};
    (void)state;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *msg = ssock_strerror(unknown[i]);
        const char *name = ssock_err_name(unknown[i]);
        assert_non_null(msg);
        assert_non_null(name);
        if (strcmp(msg, "unknown error") != 0 || strcmp(name, "UNKNOWN") != 0)
            fail_msg("code %d: got \"%s\" / \"%s\", want \"unknown error\" / "
                     "\"UNKNOWN\"",
                     unknown[i], msg, name);
    }
    /* Positive values are not statuses: at least never NULL. */
    assert_non_null(ssock_strerror(1));
    assert_non_null(ssock_err_name(1));
    assert_non_null(ssock_strerror(INT_MAX));
    assert_non_null(ssock_err_name(INT_MAX));
}

struct hammer_arg {
    int mismatches;
};

static void *hammer(void *p)
{
    struct hammer_arg *a = p;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < NCODES; i++) {
            if (strcmp(ssock_strerror(codes[i].value), codes[i].msg) != 0 ||
                strcmp(ssock_err_name(codes[i].value), codes[i].name) != 0)
                a->mismatches++;
        }
        for (size_t i = 0; i < NSYS; i++) {
            if (strcmp(ssock_err_name(-sys_errors[i].err), sys_errors[i].name))
                a->mismatches++;
            if (ssock_strerror(-sys_errors[i].err) == NULL)
                a->mismatches++;
        }
    }
    return NULL;
}

static void test_thread_safe(void **state)
{
    pthread_t t[4];
    struct hammer_arg args[4];
    (void)state;
    memset(args, 0, sizeof args);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].mismatches, 0);
    }
}

static void test_version(void **state)
{
    (void)state;
    assert_non_null(ssock_version_string());
    assert_string_equal(ssock_version_string(), SSOCK_VERSION_STRING);
}

/* The TLS API in a library built without TLS (-DSSOCK_TLS=OFF): every
 * entry point exists and answers SSOCK_ENOBACKEND / "not built"; plain
 * servers are unaffected. Compiled in every build, asserting what that
 * build promises. */
static void test_tls_api_matches_build(void **state)
{
    ssock_tls_options t;
    ssock_tls_config *cfg = (ssock_tls_config *)&t;
    char err[SSOCK_TLS_ERRBUF_SIZE];
    int rc;
    (void)state;

    assert_int_equal(ssock_tls_backend_available(SSOCK_TLS_BACKEND_MBEDTLS),
                     SSOCK_HAVE_MBEDTLS);
    assert_int_equal(ssock_tls_backend_available(SSOCK_TLS_BACKEND_OPENSSL),
                     SSOCK_HAVE_OPENSSL);
    assert_int_equal(ssock_tls_backend_available(SSOCK_TLS_BACKEND_DEFAULT),
                     SSOCK_HAVE_TLS);
#if !SSOCK_HAVE_TLS
    ssock_tls_options_init(&t);
    t.cert_file = "/nonexistent/cert.pem";
    t.key_file = "/nonexistent/key.pem";
    err[0] = 'x';
    rc = ssock_tls_config_new(&cfg, &t, err, sizeof err);
    assert_int_equal(rc, SSOCK_ENOBACKEND);
    assert_null(cfg);
    assert_true(strlen(err) > 0); /* says why */
    for (int be = SSOCK_TLS_BACKEND_DEFAULT; be <= SSOCK_TLS_BACKEND_OPENSSL;
         be++) {
        cfg = (ssock_tls_config *)&t;
        t.backend = be;
        assert_int_equal(ssock_tls_config_new(&cfg, &t, NULL, 0),
                         SSOCK_ENOBACKEND);
        assert_null(cfg);
    }
    /* A plain server still works, and its TLS calls say "not TLS". */
    {
        ssock_server *srv = NULL;
        ssock_tls_stats st;
        assert_int_equal(ssock_server_open_addr(&srv, 0, 10, "127.0.0.1"), 0);
        assert_int_equal(ssock_server_tls_stats(srv, &st), SSOCK_ENOTTLS);
        assert_null(ssock_server_tls_last_error(srv));
        ssock_server_free(srv);
    }
    print_message("[  INFO    ] built without TLS: SSOCK_ENOBACKEND checked\n");
#else
    (void)cfg;
    (void)err;
    (void)rc;
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_its_message_and_name),
        cmocka_unit_test(test_values_are_stable),
        cmocka_unit_test(test_messages_and_names_are_distinct),
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_errno_codes),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_thread_safe),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_tls_api_matches_build),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
