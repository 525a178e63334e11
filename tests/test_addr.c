/* src/addr.c: literal parsing and numeric formatting, and the host text a
 * server reports for each form of address it is opened with. */
#include "helpers.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"

/* ---- ssock__addr_parse_literal: numeric literals ------------------- */

struct literal {
    const char *text;
    int family;
    const char *addr; /* inet_pton form of the expected address */
    const char *zone; /* interface name of the expected scope id, or NULL */
    unsigned scope;   /* expected numeric scope id when zone is NULL */
};

static const struct literal literals[] = {
    {"127.0.0.1", AF_INET, "127.0.0.1", NULL, 0},
    {"0.0.0.0", AF_INET, "0.0.0.0", NULL, 0},
    {"255.255.255.255", AF_INET, "255.255.255.255", NULL, 0},
    {"10.1.2.3", AF_INET, "10.1.2.3", NULL, 0},
    {"::1", AF_INET6, "::1", NULL, 0},
    {"::", AF_INET6, "::", NULL, 0},
    {"[::1]", AF_INET6, "::1", NULL, 0},
    {"[::]", AF_INET6, "::", NULL, 0},
    {"2001:db8::42", AF_INET6, "2001:db8::42", NULL, 0},
    {"[2001:db8:0:0:1:0:0:1]", AF_INET6, "2001:db8::1:0:0:1", NULL, 0},
    {"::ffff:1.2.3.4", AF_INET6, "::ffff:1.2.3.4", NULL, 0},
    {"fe80::1%lo", AF_INET6, "fe80::1", "lo", 0},
    {"[fe80::1%lo]", AF_INET6, "fe80::1", "lo", 0},
    {"[fe80::1%1]", AF_INET6, "fe80::1", NULL, 1},
    {"fe80::1%1", AF_INET6, "fe80::1", NULL, 1},
};

static void check_literal(const struct literal *l)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc;

    memset(&ss, 0xA5, sizeof ss);
    rc = ssock__addr_parse_literal(l->text, &ss, &len);
    if (rc != 0)
        fail_msg("parse \"%s\": %s (%d), want 0", l->text, ssock_err_name(rc),
                 rc);
    assert_int_equal(ss.ss_family, l->family);
    if (l->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct in_addr want;
        assert_int_equal(len, sizeof(struct sockaddr_in));
        assert_int_equal(inet_pton(AF_INET, l->addr, &want), 1);
        assert_memory_equal(&s4->sin_addr, &want, sizeof want);
        assert_int_equal(ntohs(s4->sin_port), 0);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        struct in6_addr want;
        unsigned scope = l->zone ? if_nametoindex(l->zone) : l->scope;
        assert_int_equal(len, sizeof(struct sockaddr_in6));
        assert_int_equal(inet_pton(AF_INET6, l->addr, &want), 1);
        assert_memory_equal(&s6->sin6_addr, &want, sizeof want);
        assert_int_equal(ntohs(s6->sin6_port), 0);
        if (s6->sin6_scope_id != scope)
            fail_msg("parse \"%s\": scope id %u, want %u", l->text,
                     (unsigned)s6->sin6_scope_id, scope);
    }
}

static void test_parse_literals(void **state)
{
    (void)state;
    if (if_nametoindex("lo") == 0) {
        TH_SKIP("no interface named lo");
    }
    for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++)
        check_literal(&literals[i]);
}

/* ---- ssock__addr_parse_literal: names and malformed text ------------ */

static void expect_parse(const char *text, int want)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc = ssock__addr_parse_literal(text, &ss, &len);
    if (rc != want)
        fail_msg("parse \"%s\": %s (%d), want %s (%d)", text,
                 ssock_err_name(rc), rc, ssock_err_name(want), want);
}

static void test_parse_host_names(void **state)
{
    static const char *const names[] = {
        "localhost", "no.such.host.invalid", "example.com", "my-host", "a",
    };
    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        expect_parse(names[i], SSOCK_ERESOLVE);
}

static void test_parse_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "[::1",
        "::1]",
        "[]",
        "1.2.3.4%lo",
        "fe80::1%",
        "[fe80::1%]",
        "fe80::1%nosuchif0",
        "[fe80::1%nosuchif0]",
        "[fe80::1%1",
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_parse(bad[i], SSOCK_EBADADDR);
}

/* ---- ssock__addr_format -------------------------------------------- */

static void expect_format(const struct sockaddr *sa, const char *want,
                          int want_port)
{
    char buf[SSOCK_HOST_MAX];
    int port = -1;
    int rc;

    memset(buf, 'X', sizeof buf);
    rc = ssock__addr_format(sa, buf, &port);
    assert_int_equal(rc, 0);
    assert_non_null(memchr(buf, '\0', sizeof buf));
    assert_string_equal(buf, want);
    assert_int_equal(port, want_port);
}

static void v4(struct sockaddr_in *s, const char *ip, int port)
{
    memset(s, 0, sizeof *s);
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

static void v6(struct sockaddr_in6 *s, const char *ip, int port, unsigned scope)
{
    memset(s, 0, sizeof *s);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    s->sin6_scope_id = scope;
    assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
}

static void test_format(void **state)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    unsigned lo = if_nametoindex("lo");
    (void)state;

    v4(&s4, "127.0.0.1", 8080);
    expect_format((struct sockaddr *)&s4, "127.0.0.1", 8080);
    v4(&s4, "0.0.0.0", 0);
    expect_format((struct sockaddr *)&s4, "0.0.0.0", 0);
    v4(&s4, "255.255.255.255", 65535);
    expect_format((struct sockaddr *)&s4, "255.255.255.255", 65535);

    v6(&s6, "::1", 443, 0);
    expect_format((struct sockaddr *)&s6, "::1", 443);
    v6(&s6, "::", 1, 0);
    expect_format((struct sockaddr *)&s6, "::", 1);
    v6(&s6, "2001:db8::42", 7000, 0);
    expect_format((struct sockaddr *)&s6, "2001:db8::42", 7000);
    v6(&s6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 9, 0);
    expect_format((struct sockaddr *)&s6,
                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 9);

    /* IPv4-mapped peers of a dual-stack socket read as plain IPv4. */
    v6(&s6, "::ffff:1.2.3.4", 5555, 0);
    expect_format((struct sockaddr *)&s6, "1.2.3.4", 5555);
    v6(&s6, "::ffff:127.0.0.1", 40000, 0);
    expect_format((struct sockaddr *)&s6, "127.0.0.1", 40000);

    if (lo == 0)
        TH_SKIP("zone part: no interface named lo");
    v6(&s6, "fe80::1", 22, lo);
    expect_format((struct sockaddr *)&s6, "fe80::1%lo", 22);
    /* The longest text: a full address with a zone fits SSOCK_HOST_MAX. */
    v6(&s6, "fe80:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1, lo);
    expect_format((struct sockaddr *)&s6,
                  "fe80:ffff:ffff:ffff:ffff:ffff:ffff:ffff%lo", 1);
}

static void test_format_port_optional(void **state)
{
    struct sockaddr_in s4;
    char buf[SSOCK_HOST_MAX];
    (void)state;
    v4(&s4, "127.0.0.1", 80);
    assert_int_equal(ssock__addr_format((struct sockaddr *)&s4, buf, NULL), 0);
    assert_string_equal(buf, "127.0.0.1");
}

static void test_parse_format_round_trip(void **state)
{
    static const struct {
        const char *in, *out;
    } rt[] = {
        {"127.0.0.1", "127.0.0.1"},
        {"::1", "::1"},
        {"[::1]", "::1"},
        {"[::]", "::"},
        {"::ffff:10.0.0.1", "10.0.0.1"},
        {"fe80::1%lo", "fe80::1%lo"},
        {"[fe80::1%lo]", "fe80::1%lo"},
        {"2001:DB8::A", "2001:db8::a"},
    };
    char ifname[IF_NAMESIZE];
    char want1[SSOCK_HOST_MAX];
    (void)state;

    if (if_nametoindex("lo") == 0) {
        TH_SKIP("no interface named lo");
    }
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char buf[SSOCK_HOST_MAX];
        int port = -1;
        assert_int_equal(ssock__addr_parse_literal(rt[i].in, &ss, &len), 0);
        assert_int_equal(ssock__addr_format((struct sockaddr *)&ss, buf, &port),
                         0);
        if (strcmp(buf, rt[i].out) != 0)
            fail_msg("\"%s\" formats as \"%s\", want \"%s\"", rt[i].in, buf,
                     rt[i].out);
        assert_int_equal(port, 0);
    }
    /* A numeric zone comes back as the interface's name. */
    assert_non_null(if_indextoname(1, ifname));
    snprintf(want1, sizeof want1, "fe80::1%%%s", ifname);
    {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char buf[SSOCK_HOST_MAX];
        assert_int_equal(ssock__addr_parse_literal("[fe80::1%1]", &ss, &len),
                         0);
        assert_int_equal(ssock__addr_format((struct sockaddr *)&ss, buf, NULL),
                         0);
        assert_string_equal(buf, want1);
    }
}

/* ---- public API: what ssock_server_host() reports ------------------ */

static void expect_host(const char *addr, const char *want1, const char *want2)
{
    ssock_server *srv = (ssock_server *)&srv; /* not NULL: must be reset */
    int rc = ssock_server_open_addr(&srv, 0, 1000, addr);
    const char *host;

    if (rc != 0)
        fail_msg("open on \"%s\": %s (%d): %s", addr ? addr : "(NULL)",
                 ssock_err_name(rc), rc, ssock_strerror(rc));
    assert_non_null(srv);
    host = ssock_server_host(srv);
    assert_non_null(host);
    if (strcmp(host, want1) != 0 && (!want2 || strcmp(host, want2) != 0))
        fail_msg("open on \"%s\": host \"%s\", want \"%s\"%s%s%s",
                 addr ? addr : "(NULL)", host, want1, want2 ? " or \"" : "",
                 want2 ? want2 : "", want2 ? "\"" : "");
    assert_true(ssock_server_local_port(srv) > 0);
    assert_true(ssock_server_local_port(srv) <= 65535);
    ssock_server_free(srv);
}

static void expect_open_fails(const char *addr, int want)
{
    ssock_server *srv = (ssock_server *)&srv;
    int rc = ssock_server_open_addr(&srv, 0, 1000, addr);
    if (rc != want)
        fail_msg("open on \"%s\": %s (%d), want %s", addr, ssock_err_name(rc),
                 rc, ssock_err_name(want));
    assert_null(srv);
}

static void test_server_host_ipv4(void **state)
{
    (void)state;
    expect_host("127.0.0.1", "127.0.0.1", NULL);
    expect_host("0.0.0.0", "0.0.0.0", NULL);
    expect_host("localhost", "127.0.0.1", "::1");
}

static void test_server_host_any(void **state)
{
    char why[128];
    (void)state;
    if (th_has_ipv6(why, sizeof why)) {
        expect_host(NULL, "::", NULL);
    } else {
        print_message("[  INFO    ] no IPv6 (%s): expecting 0.0.0.0\n", why);
        expect_host(NULL, "0.0.0.0", NULL);
    }
}

static void test_server_host_ipv6(void **state)
{
    (void)state;
    TH_REQUIRE_IPV6();
    expect_host("::1", "::1", NULL);
    expect_host("[::1]", "::1", NULL);
    expect_host("::", "::", NULL);
    expect_host("[::]", "::", NULL);
}

static void test_server_bad_addresses(void **state)
{
    (void)state;
    expect_open_fails("no.such.host.invalid", SSOCK_ERESOLVE);
    expect_open_fails("", SSOCK_EBADADDR);
    expect_open_fails("[::1", SSOCK_EBADADDR);
    expect_open_fails("[]", SSOCK_EBADADDR);
    expect_open_fails("1.2.3.4%lo", SSOCK_EBADADDR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_literals),
        cmocka_unit_test(test_parse_host_names),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_port_optional),
        cmocka_unit_test(test_parse_format_round_trip),
        cmocka_unit_test(test_server_host_ipv4),
        cmocka_unit_test(test_server_host_any),
        cmocka_unit_test(test_server_host_ipv6),
        cmocka_unit_test(test_server_bad_addresses),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
