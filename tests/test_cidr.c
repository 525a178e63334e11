/* src/cidr.c: CIDR lists of trusted PROXY sources. Every prefix length of
 * both families is parsed and matched at its boundaries (first and last
 * address inside, the neighbours outside, the last prefix bit and the
 * first host bit), IPv4 both as AF_INET and IPv4-mapped AF_INET6; then
 * the list syntax, malformed items of every kind, and the capacity. */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cidr.h"

/* ---- addresses --------------------------------------------------------- */

static struct sockaddr_in v4(uint32_t host_order)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(host_order);
    a.sin_port = htons(4242);
    return a;
}

static struct sockaddr_in6 v6(const unsigned char b[16])
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    memcpy(&a.sin6_addr, b, 16);
    a.sin6_port = htons(4242);
    return a;
}

static struct sockaddr_in6 v6_mapped(uint32_t host_order)
{
    unsigned char b[16] = {0};
    b[10] = 0xFF;
    b[11] = 0xFF;
    b[12] = (unsigned char)(host_order >> 24);
    b[13] = (unsigned char)(host_order >> 16);
    b[14] = (unsigned char)(host_order >> 8);
    b[15] = (unsigned char)host_order;
    return v6(b);
}

static struct sockaddr_in6 v6_text(const char *t)
{
    unsigned char b[16];
    assert_int_equal(inet_pton(AF_INET6, t, b), 1);
    return v6(b);
}

static int match4(const struct ssock__cidr_list *l, uint32_t a)
{
    struct sockaddr_in s = v4(a);
    struct sockaddr_in6 m = v6_mapped(a);
    int r1 = ssock__cidr_match(l, (struct sockaddr *)&s, sizeof s);
    int r2 = ssock__cidr_match(l, (struct sockaddr *)&m, sizeof m);
    /* An IPv4 peer and the same peer IPv4-mapped are one peer. */
    assert_int_equal(r1, r2);
    return r1;
}

static int match6(const struct ssock__cidr_list *l, const unsigned char b[16])
{
    struct sockaddr_in6 s = v6(b);
    return ssock__cidr_match(l, (struct sockaddr *)&s, sizeof s);
}

static int match6t(const struct ssock__cidr_list *l, const char *t)
{
    struct sockaddr_in6 s = v6_text(t);
    return ssock__cidr_match(l, (struct sockaddr *)&s, sizeof s);
}

static void parse_ok(const char *text, struct ssock__cidr_list *l, int n)
{
    int rc = ssock__cidr_parse(text, l);
    if (rc != 0)
        fail_msg("\"%s\": %s, expected 0", text, ssock_err_name(rc));
    assert_int_equal(l->n, n);
}

static void parse_bad(const char *text)
{
    struct ssock__cidr_list *l = malloc(sizeof *l);
    assert_non_null(l);
    memset(l, 0x5A, sizeof *l);
    int rc = ssock__cidr_parse(text, l);
    if (rc != SSOCK_EBADADDR)
        fail_msg("\"%s\": %s, expected SSOCK_EBADADDR", text,
                 ssock_err_name(rc));
    assert_int_equal(l->n, 0); /* a failed parse leaves the empty list */
    struct sockaddr_in a = v4(0x7F000001);
    assert_int_equal(ssock__cidr_match(l, (struct sockaddr *)&a, sizeof a), 0);
    free(l);
}

/* ---- every IPv4 prefix length ------------------------------------------ */

static uint32_t mask4(int n)
{
    return n == 0 ? 0 : (uint32_t)(0xFFFFFFFFu << (32 - n));
}

static void test_v4_every_prefix(void **state)
{
    (void)state;
    static struct ssock__cidr_list l;
    /* Two base patterns: alternating bits, and all ones. */
    const uint32_t bases[] = {0xA5C3F00Fu, 0xFFFFFFFFu, 0x00000001u};
    char text[64], ip[INET_ADDRSTRLEN];

    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        for (int n = 0; n <= 32; n++) {
            uint32_t net = bases[b] & mask4(n);
            uint32_t last = net | ~mask4(n);
            struct in_addr ia = {htonl(net)};
            inet_ntop(AF_INET, &ia, ip, sizeof ip);
            snprintf(text, sizeof text, "%s/%d", ip, n);
            parse_ok(text, &l, 1);
            assert_int_equal(l.v[0].bits, 96 + n);

            assert_int_equal(match4(&l, net), 1);
            assert_int_equal(match4(&l, last), 1);
            if (n < 32) {
                /* the first host bit, inside */
                assert_int_equal(match4(&l, net | (1u << (31 - n))), 1);
                /* the first host bit set in the text: rejected */
                ia.s_addr = htonl(net | (1u << (31 - n)));
                inet_ntop(AF_INET, &ia, ip, sizeof ip);
                snprintf(text, sizeof text, "%s/%d", ip, n);
                parse_bad(text);
                /* the lowest host bit set: rejected too */
                ia.s_addr = htonl(net | 1u);
                inet_ntop(AF_INET, &ia, ip, sizeof ip);
                snprintf(text, sizeof text, "%s/%d", ip, n);
                parse_bad(text);
            }
            if (n > 0) {
                /* the last prefix bit flipped: outside */
                uint32_t flip = 1u << (32 - n);
                assert_int_equal(match4(&l, net ^ flip), 0);
                assert_int_equal(match4(&l, last ^ flip), 0);
                /* the neighbours of the range, where they exist */
                if (net != 0)
                    assert_int_equal(match4(&l, net - 1), 0);
                if (last != 0xFFFFFFFFu)
                    assert_int_equal(match4(&l, last + 1), 0);
            } else {
                assert_int_equal(match4(&l, 0), 1);
                assert_int_equal(match4(&l, 0xFFFFFFFFu), 1);
            }
            /* An IPv4 prefix never covers a native IPv6 address. */
            assert_int_equal(match6t(&l, "::1"), 0);
            assert_int_equal(match6t(&l, "2001:db8::1"), 0);
        }
    }
    /* Bare IPv4: a /32. */
    parse_ok("192.0.2.7", &l, 1);
    assert_int_equal(l.v[0].bits, 128);
    assert_int_equal(match4(&l, 0xC0000207u), 1);
    assert_int_equal(match4(&l, 0xC0000206u), 0);
    assert_int_equal(match4(&l, 0xC0000208u), 0);
}

/* ---- every IPv6 prefix length ------------------------------------------ */

static void mask6(unsigned char out[16], const unsigned char in[16], int n,
                  int ones_after)
{
    for (int i = 0; i < 16; i++) {
        int keep = n - 8 * i;
        unsigned char m = (unsigned char)(keep >= 8   ? 0xFFu
                                          : keep <= 0 ? 0u
                                                      : 0xFFu << (8 - keep));
        out[i] = (unsigned char)((in[i] & m) | (ones_after ? ~m & 0xFF : 0));
    }
}

static void flip_bit(unsigned char a[16], int bit) /* bit 0 = MSB of a[0] */
{
    a[bit / 8] ^= (unsigned char)(0x80u >> (bit % 8));
}

static void test_v6_every_prefix(void **state)
{
    (void)state;
    static struct ssock__cidr_list l;
    unsigned char bases[3][16];
    char ip[INET6_ADDRSTRLEN], text[80];

    memset(bases[0], 0xA5, 16);
    bases[0][0] = 0x20; /* outside ::ffff:0:0/96 for the long prefixes */
    memset(bases[1], 0xFF, 16);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", bases[2]), 1);

    for (int b = 0; b < 3; b++) {
        for (int n = 0; n <= 128; n++) {
            unsigned char net[16], last[16], t[16];
            mask6(net, bases[b], n, 0);
            mask6(last, bases[b], n, 1);
            inet_ntop(AF_INET6, net, ip, sizeof ip);
            /* with and without brackets */
            snprintf(text, sizeof text, (n & 1) ? "%s/%d" : "[%s]/%d", ip, n);
            parse_ok(text, &l, 1);
            assert_int_equal(l.v[0].bits, n);
            assert_memory_equal(l.v[0].addr, net, 16);

            assert_int_equal(match6(&l, net), 1);
            assert_int_equal(match6(&l, last), 1);
            if (n < 128) {
                memcpy(t, net, 16);
                flip_bit(t, n); /* first host bit: inside */
                assert_int_equal(match6(&l, t), 1);
                inet_ntop(AF_INET6, t, ip, sizeof ip);
                snprintf(text, sizeof text, "%s/%d", ip, n);
                parse_bad(text); /* host bit set: rejected */
                memcpy(t, net, 16);
                t[15] ^= 1; /* lowest bit */
                inet_ntop(AF_INET6, t, ip, sizeof ip);
                snprintf(text, sizeof text, "%s/%d", ip, n);
                parse_bad(text);
            }
            if (n > 0) {
                memcpy(t, net, 16);
                flip_bit(t, n - 1); /* last prefix bit: outside */
                assert_int_equal(match6(&l, t), 0);
                memcpy(t, last, 16);
                flip_bit(t, n - 1);
                assert_int_equal(match6(&l, t), 0);
            } else {
                /* ::/0 covers everything, IPv4 too (stored mapped). */
                assert_int_equal(match6t(&l, "::"), 1);
                assert_int_equal(match4(&l, 0x0A000001u), 1);
            }
        }
    }
    /* Bare IPv6: a /128, bracketed or not. */
    parse_ok("2001:db8::1", &l, 1);
    assert_int_equal(l.v[0].bits, 128);
    assert_int_equal(match6t(&l, "2001:db8::1"), 1);
    assert_int_equal(match6t(&l, "2001:db8::"), 0);
    assert_int_equal(match6t(&l, "2001:db8::2"), 0);
    parse_ok("[::1]", &l, 1);
    assert_int_equal(l.v[0].bits, 128);
    assert_int_equal(match6t(&l, "::1"), 1);
    assert_int_equal(match4(&l, 0x7F000001u), 0);
}

/* ---- IPv4-mapped addresses --------------------------------------------- */

static void test_mapped(void **state)
{
    (void)state;
    static struct ssock__cidr_list l, l2;

    parse_ok("10.0.0.0/8", &l, 1);
    assert_int_equal(match4(&l, 0x0A010203u), 1);
    assert_int_equal(match6t(&l, "::ffff:10.1.2.3"), 1);
    /* IPv4-compatible (deprecated) and NAT64 forms are not IPv4. */
    assert_int_equal(match6t(&l, "::10.1.2.3"), 0);
    assert_int_equal(match6t(&l, "64:ff9b::10.1.2.3"), 0);
    assert_int_equal(match6t(&l, "::ffff:11.1.2.3"), 0);

    /* The mapped spelling is the same entry. */
    parse_ok("::ffff:10.0.0.0/104", &l2, 1);
    assert_int_equal(l2.v[0].bits, l.v[0].bits);
    assert_memory_equal(l2.v[0].addr, l.v[0].addr, 16);
    assert_int_equal(match4(&l2, 0x0A010203u), 1);
    assert_int_equal(match4(&l2, 0x0B010203u), 0);

    /* ::ffff:0:0/96 is "every IPv4 address". */
    parse_ok("::ffff:0.0.0.0/96", &l, 1);
    assert_int_equal(match4(&l, 0), 1);
    assert_int_equal(match4(&l, 0xFFFFFFFFu), 1);
    assert_int_equal(match6t(&l, "::1"), 0);

    /* 0.0.0.0/0 is IPv4 only. */
    parse_ok("0.0.0.0/0", &l, 1);
    assert_int_equal(match4(&l, 0x01020304u), 1);
    assert_int_equal(match6t(&l, "::1"), 0);
    assert_int_equal(match6t(&l, "2001:db8::1"), 0);
    assert_int_equal(match6t(&l, "::ffff:1.2.3.4"), 1);

    /* The default list: loopback of both families, nothing else. */
    parse_ok(SSOCK_PROXY_DEFAULT_TRUSTED, &l, 2);
    assert_int_equal(match4(&l, 0x7F000001u), 1);
    assert_int_equal(match4(&l, 0x7FFFFFFFu), 1);
    assert_int_equal(match4(&l, 0x80000000u), 0);
    assert_int_equal(match4(&l, 0x7EFFFFFFu), 0);
    assert_int_equal(match6t(&l, "::1"), 1);
    assert_int_equal(match6t(&l, "::2"), 0);
    assert_int_equal(match6t(&l, "::"), 0);
    assert_int_equal(match4(&l, 0x0A000001u), 0);
}

/* ---- list syntax --------------------------------------------------------- */

static void test_list_syntax(void **state)
{
    (void)state;
    static struct ssock__cidr_list l;

    parse_ok("", &l, 0);
    parse_ok(" ", &l, 0);
    parse_ok(" \t ", &l, 0);
    /* The empty list matches nobody. */
    assert_int_equal(match4(&l, 0x7F000001u), 0);
    assert_int_equal(match6t(&l, "::1"), 0);

    parse_ok("127.0.0.0/8,::1/128", &l, 2);
    assert_int_equal(l.v[0].bits, 104);
    assert_int_equal(l.v[1].bits, 128);
    parse_ok(" 10.0.0.0/8 ,\t192.168.0.0/16\t, [2001:db8::]/32 ", &l, 3);
    assert_int_equal(match4(&l, 0x0AFFFFFFu), 1);
    assert_int_equal(match4(&l, 0xC0A8FFFFu), 1);
    assert_int_equal(match4(&l, 0xC0A90000u), 0);
    assert_int_equal(match6t(&l, "2001:db8:ffff::1"), 1);
    assert_int_equal(match6t(&l, "2001:db9::"), 0);
    /* Order does not matter for matching; duplicates are allowed. */
    parse_ok("::1,::1,1.2.3.4/32,1.2.3.4", &l, 4);
    assert_int_equal(match4(&l, 0x01020304u), 1);
    /* Embedded IPv4 tail, uppercase hex. */
    parse_ok("2001:DB8::192.0.2.0/120", &l, 1);
    assert_int_equal(match6t(&l, "2001:db8::c000:2ff"), 1);
    assert_int_equal(match6t(&l, "2001:db8::c000:300"), 0);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* empty items */
        ",",
        " , ",
        "10.0.0.0/8,",
        ",10.0.0.0/8",
        "10.0.0.0/8,,::1",
        "10.0.0.0/8, ,::1",
        /* prefix syntax */
        "10.0.0.0/",
        "/8",
        "/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/08",
        "10.0.0.0/00",
        "10.0.0.0/8/8",
        "10.0.0.0/8a",
        "10.0.0.0/ 8",
        "10.0.0.0 /8",
        "10.0.0.0/1000",
        "10.0.0.0/4294967304",
        "::/129",
        "::/256",
        "::/-0",
        "::/0x10",
        "[::]/",
        "::/1 28",
        /* IPv4 syntax */
        "10.0.0",
        "10.0.0.0.0",
        "256.0.0.0",
        "10.0.0.-1",
        "010.0.0.0",
        "10.00.0.0",
        "10..0.0",
        "10.0.0.0.",
        ".10.0.0.0",
        "0x0a.0.0.0",
        "1e1.0.0.0",
        "10.0.0.0 8",
        "10 .0.0.0",
        "10.0.0.1/8",
        /* IPv6 syntax */
        ":",
        ":::",
        "1::2::3",
        "2001:db8:::1",
        "12345::",
        "g::",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "::1/64",
        "::1.2.3",
        ":1::",
        "1::2:",
        "::ffff:256.1.1.1",
        /* brackets */
        "[]",
        "[",
        "]",
        "[::1",
        "::1]",
        "[[::1]]",
        "[::1]]",
        "[::1]/",
        "[::1/128]",
        "[1.2.3.4]",
        "[1.2.3.4]/32",
        "[::1] /128",
        "[ ::1]",
        /* zone ids */
        "fe80::1%eth0",
        "fe80::%1/64",
        "[fe80::1%lo]",
        "fe80::1%",
        /* names and junk */
        "localhost",
        "any",
        "*",
        "0",
        "-",
        "10.0.0.0/8;::1",
        "10.0.0.0/8 ::1",
        "10.0.0.0/8\n",
        "\n",
        "10.0.0.0/8\r",
        "\xff",
        "10.0.0.0/8,\x80",
        /* far too long */
        ("1111111111111111111111111111111111111111111111111111111111111111111"
         "111111111111111111111111111111"),
        "0000:0000:0000:0000:0000:0000:0000:0000:0000/128",
        "[0000:0000:0000:0000:0000:0000:255.255.255.255]/128x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i]);

    /* The longest valid item text parses (nothing is cut short). */
    static struct ssock__cidr_list l;
    parse_ok("[0000:0000:0000:0000:0000:ffff:255.255.255.255]/128", &l, 1);
    parse_ok(" [ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/128 ", &l, 1);
}

static void test_capacity(void **state)
{
    (void)state;
    static struct ssock__cidr_list l;
    char text[SSOCK__CIDR_MAX * 24 + 64];
    size_t used = 0;

    for (int i = 0; i < SSOCK__CIDR_MAX; i++)
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "%s10.%d.0.0/16", i ? "," : "", i);
    parse_ok(text, &l, SSOCK__CIDR_MAX);
    /* The last entry is used. */
    assert_int_equal(
        match4(&l, 0x0A000000u | ((uint32_t)(SSOCK__CIDR_MAX - 1) << 16) | 5),
        1);
    assert_int_equal(
        match4(&l, 0x0A000000u | ((uint32_t)SSOCK__CIDR_MAX << 16)), 0);

    /* One more: rejected, however good it is. */
    snprintf(text + used, sizeof text - used, ",::1");
    parse_bad(text);
    /* Spaces alone do not count as entries. */
    snprintf(text + used, sizeof text - used, "   ");
    parse_ok(text, &l, SSOCK__CIDR_MAX);
}

static void test_args(void **state)
{
    (void)state;
    static struct ssock__cidr_list l;
    struct sockaddr_in a = v4(0x7F000001);
    struct sockaddr_in6 b = v6_text("::1");
    struct sockaddr_un u;

    assert_int_equal(ssock__cidr_parse(NULL, &l), SSOCK_EINVAL);
    assert_int_equal(l.n, 0);
    assert_int_equal(ssock__cidr_parse("::1", NULL), SSOCK_EINVAL);

    parse_ok(SSOCK_PROXY_DEFAULT_TRUSTED, &l, 2);
    assert_int_equal(ssock__cidr_match(NULL, (struct sockaddr *)&a, sizeof a),
                     0);
    assert_int_equal(ssock__cidr_match(&l, NULL, sizeof a), 0);
    /* Short lengths. */
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&a, sizeof a), 1);
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&a, sizeof a - 1),
                     0);
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&b, sizeof b), 1);
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&b, sizeof b - 1),
                     0);
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&b, 0), 0);
    /* Other families. */
    memset(&u, 0, sizeof u);
    u.sun_family = AF_UNIX;
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&u, sizeof u), 0);
    a.sin_family = AF_UNSPEC;
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&a, sizeof a), 0);
    /* The scope id and the port do not matter. */
    parse_ok("fe80::/10", &l, 1);
    b = v6_text("fe80::1");
    b.sin6_scope_id = 7;
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&b, sizeof b), 1);
    b = v6_text("fec0::1");
    assert_int_equal(ssock__cidr_match(&l, (struct sockaddr *)&b, sizeof b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_every_prefix),
        cmocka_unit_test(test_v6_every_prefix),
        cmocka_unit_test(test_mapped),
        cmocka_unit_test(test_list_syntax),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
